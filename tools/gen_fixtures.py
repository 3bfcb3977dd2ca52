#!/usr/bin/python3
"""Independent PyTorch reference for sembed: writes tiny random-weight model folders
in the exact Hugging Face / sentence-transformers layout, plus the expected outputs.

Run from the project root with Debian's Python (python3-torch, python3-numpy):

    /usr/bin/python3 tools/gen_fixtures.py

Nothing here imports transformers, tokenizers, safetensors or sentence-transformers:
the BERT tokenizer, the BertModel forward pass, the sentence-transformers pooling /
Dense / Normalize modules and the safetensors writer are written out below from their
published definitions, so that the C code is tested against a second implementation
rather than against itself.

Since issue 10 it also writes MPNet, XLM-R, BERT-with-XLM-R-tokenizer and cross-encoder
folders (MPNetModel, XLMRobertaModel, Bert/XLMRobertaForSequenceClassification, the
CrossEncoder activations and rank), in F16/BF16, sharded safetensors and pytorch_model.bin;
their sentencepiece ids come from Debian's python3-sentencepiece (apt-get install
python3-sentencepiece) with XLMRobertaTokenizer's fairseq offset, their tokenizer.json from
tools/gen_sentencepiece_oracles.py, and, when node and @anush008/tokenizers are installed
($NPM_ORACLES), the ids are compared with the real Hugging Face tokenizers library.  See
tests/fixtures/models/README.md.

Before writing anything the tokenizer is checked against every `bert` and `mpnet`
case in ../shared/data/tokenizer-cases.jsonl (real Hugging Face outputs); any mismatch
aborts the run.  Output is deterministic (fixed seeds, one torch thread): running the
script twice gives byte-identical files.

Environment: SEMBED_SHARED overrides the location of the shared data folder
(default: <project root>/../shared).
"""

import json
import math
import os
import platform
import shutil
import struct
import sys
import unicodedata

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("SEMBED_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
DATA = os.path.join(SHARED, "data")
TOKDIR = os.path.join(DATA, "tokenizers")
OUT = os.path.join(ROOT, "tests", "fixtures", "models")

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


# ---------------------------------------------------------------------------
# BERT tokenizer (HF BertNormalizer + BertPreTokenizer + WordPiece + template)
# ---------------------------------------------------------------------------
#
# Semantics follow the Rust `tokenizers` crate (what sentence-transformers uses
# through AutoTokenizer's fast tokenizer), which differs from the slow Python
# BertTokenizer in a few corners:
#   * "control" characters removed by clean_text are Unicode categories Cc, Cf
#     and Co (the crate's `is_other`), except \t \n \r.  Unassigned code points
#     (Cn) are KEPT (the slow tokenizer drops them).
#   * whitespace mapped to ' ' is Rust's char::is_whitespace (the Unicode
#     White_Space property) plus \t \n \r.  Removal happens before mapping, so
#     \v \f U+0085 (which are Cc) are removed, not turned into spaces.
#   * lowercasing is per code point (Rust char::to_lowercase), so there is no
#     Greek final-sigma rule: 'Σ' always becomes 'σ'.
#   * the special tokens ([CLS] [SEP] [PAD] [UNK] [MASK]) are "added tokens" with
#     normalized=false: an exact occurrence in the raw input text is split out
#     before normalisation and becomes that token's id.

RUST_WHITESPACE = set(
    [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680]
    + list(range(0x2000, 0x200B))
    + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
)


def is_bert_whitespace(ch):
    return ch in "\t\n\r" or ord(ch) in RUST_WHITESPACE


def is_bert_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Co")


def is_chinese_char(cp):
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B920 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def is_bert_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def load_vocab_txt(path):
    with open(path, encoding="utf-8") as f:
        toks = [line.rstrip("\n") for line in f]
    return toks


class BertTokenizer:
    """template 'bert': [CLS] A [SEP] / [CLS] A [SEP] B [SEP]   (B and its [SEP] type 1)
    template 'mpnet': <s> A </s> / <s> A </s> </s> B </s>       (all type 0)"""

    def __init__(self, vocab_list, lowercase, strip_accents=None, chinese_chars=True,
                 template="bert", unk_token="[UNK]"):
        self.vocab = {}
        for i, t in enumerate(vocab_list):
            self.vocab[t] = i  # a later duplicate would win, as in HF's load_vocab
        self.inv = {i: t for t, i in self.vocab.items()}
        self.lowercase = lowercase
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.chinese_chars = chinese_chars
        self.template = template
        self.unk_token = unk_token
        self.unk_id = self.vocab[unk_token]
        if template == "bert":
            self.cls_tok, self.sep_tok = "[CLS]", "[SEP]"
            self.specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        elif template == "mpnet":
            self.cls_tok, self.sep_tok = "<s>", "</s>"
            self.specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        else:
            raise ValueError(template)
        self.cls_id = self.vocab[self.cls_tok]
        self.sep_id = self.vocab[self.sep_tok]
        self.max_input_chars_per_word = 100

    # -- normaliser ---------------------------------------------------------
    def normalize(self, text):
        out = []
        for ch in text:  # clean_text: remove first, then map whitespace
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or is_bert_control(ch):
                continue
            out.append(" " if is_bert_whitespace(ch) else ch)
        text = "".join(out)
        if self.chinese_chars:
            text = "".join(" " + ch + " " if is_chinese_char(ord(ch)) else ch for ch in text)
        if self.strip_accents:
            text = "".join(ch for ch in unicodedata.normalize("NFD", text)
                           if unicodedata.category(ch) != "Mn")
        if self.lowercase:
            text = "".join(ch.lower() for ch in text)  # per code point
        return text

    # -- pre-tokeniser ------------------------------------------------------
    @staticmethod
    def pre_tokenize(text):
        words, cur = [], []
        for ch in text:
            if is_bert_whitespace(ch):
                if cur:
                    words.append("".join(cur))
                    cur = []
            elif is_bert_punctuation(ch):
                if cur:
                    words.append("".join(cur))
                    cur = []
                words.append(ch)
            else:
                cur.append(ch)
        if cur:
            words.append("".join(cur))
        return words

    # -- WordPiece ----------------------------------------------------------
    def wordpiece(self, word):
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        pieces, start = [], 0
        while start < len(word):
            end, cur = len(word), None
            while start < end:
                sub = word[start:end]
                if start > 0:
                    sub = "##" + sub
                if sub in self.vocab:
                    cur = sub
                    break
                end -= 1
            if cur is None:
                return [self.unk_token]
            pieces.append(cur)
            start = end
        return pieces

    def split_specials(self, text):
        """Split raw text on exact occurrences of the special tokens (leftmost, longest)."""
        segs, i, last = [], 0, 0
        while i < len(text):
            best = None
            for s in self.specials:
                if text.startswith(s, i) and (best is None or len(s) > len(best)):
                    best = s
            if best is None:
                i += 1
                continue
            if last < i:
                segs.append((False, text[last:i]))
            segs.append((True, best))
            i += len(best)
            last = i
        if last < len(text):
            segs.append((False, text[last:]))
        return segs

    def tokenize(self, text):
        """Tokens (strings) of one sequence, without the template's special tokens."""
        toks = []
        for is_special, seg in self.split_specials(text):
            if is_special:
                toks.append(seg)
                continue
            for w in self.pre_tokenize(self.normalize(seg)):
                toks.extend(self.wordpiece(w))
        return toks

    def ids_of(self, toks):
        return [self.vocab.get(t, self.unk_id) for t in toks]

    def n_added(self, pair):
        if self.template == "bert":
            return 3 if pair else 2
        return 4 if pair else 2

    @staticmethod
    def truncate_longest_first(a, b, budget):
        """HF tokenizers' TruncationStrategy::LongestFirst (utils/truncation.rs),
        budget = max_length - number of template special tokens."""
        if b is None:
            return a[:budget], None
        if len(a) + len(b) <= budget:
            return a, b
        if budget == 0:
            return [], []
        n1, n2 = len(a), len(b)
        swap = n1 > n2
        if swap:
            n1, n2 = n2, n1            # n1 = shorter, n2 = longer
        if n1 > budget:
            n2 = n1
        else:
            n2 = max(n1, budget - n1)
        if n1 + n2 > budget:           # both must be cut: split evenly,
            n1 = budget // 2           # the odd token goes to the longer one
            n2 = n1 + budget % 2       # (to the second when equally long)
        if swap:
            n1, n2 = n2, n1
        return a[:n1], b[:n2]

    def encode(self, text, pair=None, max_length=None):
        ta = self.tokenize(text)
        tb = self.tokenize(pair) if pair is not None else None
        na, nb = len(ta), (len(tb) if tb is not None else 0)
        if max_length is not None:
            budget = max_length - self.n_added(pair is not None)
            if budget < 0:
                raise ValueError("max_length smaller than the number of special tokens")
            ta, tb = self.truncate_longest_first(ta, tb, budget)
        truncated = len(ta) != na or (tb is not None and len(tb) != nb)
        ia = self.ids_of(ta)
        if tb is None:
            ids = [self.cls_id] + ia + [self.sep_id]
            types = [0] * len(ids)
            toks = [self.cls_tok] + ta + [self.sep_tok]
        elif self.template == "bert":
            ib = self.ids_of(tb)
            ids = [self.cls_id] + ia + [self.sep_id] + ib + [self.sep_id]
            types = [0] * (len(ia) + 2) + [1] * (len(ib) + 1)
            toks = [self.cls_tok] + ta + [self.sep_tok] + tb + [self.sep_tok]
        else:
            ib = self.ids_of(tb)
            ids = [self.cls_id] + ia + [self.sep_id, self.sep_id] + ib + [self.sep_id]
            types = [0] * len(ids)
            toks = [self.cls_tok] + ta + [self.sep_tok, self.sep_tok] + tb + [self.sep_tok]
        return {"ids": ids, "token_type_ids": types, "tokens": toks, "truncated": truncated,
                "lengths": [na, nb] if tb is not None else [na]}


_TOKENIZER_CACHE = {}


def tokenizer_for(vocab_file, lowercase, template="bert"):
    key = (vocab_file, lowercase, template)
    if key not in _TOKENIZER_CACHE:
        vocab = load_vocab_txt(os.path.join(TOKDIR, vocab_file))
        _TOKENIZER_CACHE[key] = BertTokenizer(vocab, lowercase=lowercase, template=template)
    return _TOKENIZER_CACHE[key]


def verify_tokenizer():
    """Check against every bert/mpnet case of the shared real HF tokenizations."""
    n_ok, failures, skipped = 0, [], 0
    path = os.path.join(DATA, "tokenizer-cases.jsonl")
    with open(path, encoding="utf-8") as f:
        cases = [json.loads(line) for line in f if line.strip()]
    for c in cases:
        if c["template"] not in ("bert", "mpnet"):
            skipped += 1
            continue
        tok = tokenizer_for(c["vocab"], c["lowercase"], c["template"])
        enc = tok.encode(c["text"], c.get("text_pair"))
        ok = enc["ids"] == c["ids"]
        if ok and c.get("text_pair") is None and "tokens" in c:
            ok = enc["tokens"][1:-1] == c["tokens"]
        if ok:
            n_ok += 1
        else:
            failures.append((c["model"], c["case"], c["ids"], enc["ids"]))
    # The same kind of cases for other models: use those whose vocabulary we have.
    extra = {
        "Xenova/bert-base-uncased": ("bert-base-uncased.vocab.txt", True, "bert"),
        "Xenova/distilbert-base-uncased-finetuned-sst-2-english": ("bert-base-uncased.vocab.txt", True, "bert"),
        "Xenova/bge-small-zh-v1.5": ("bert-base-chinese.vocab.txt", False, "bert"),
        "Xenova/bge-base-zh-v1.5": ("bert-base-chinese.vocab.txt", True, "bert"),
        "Xenova/all-mpnet-base-v2": ("mpnet-derived.vocab.txt", True, "mpnet"),
    }
    n_extra = 0
    p29 = os.path.join(DATA, "tokenizer-cases-29-models.json")
    if os.path.exists(p29):
        with open(p29, encoding="utf-8") as f:
            d29 = json.load(f)
        for model, (vocab, lower, template) in extra.items():
            for name, c in d29.get(model, {}).items():
                tok = tokenizer_for(vocab, lower, template)
                enc = tok.encode(c["text"], c.get("text_pair"))
                if enc["ids"] == c["ids"]:
                    n_extra += 1
                else:
                    failures.append((model, name, c["ids"], enc["ids"]))
    if failures:
        for model, case, want, got in failures:
            print("TOKENIZER MISMATCH %s %s\n  want %s\n  got  %s" % (model, case, want, got),
                  file=sys.stderr)
        sys.exit("tokenizer verification failed: %d mismatches" % len(failures))
    return n_ok, n_extra


# ---------------------------------------------------------------------------
# safetensors writer
# ---------------------------------------------------------------------------

def tensor_bytes(t, dtype):
    """t: torch tensor (float32 or int64).  Returns (stored bytes, float32 tensor of
    the values exactly as stored, upcast)."""
    if dtype == "F32":
        a = t.to(torch.float32).contiguous()
        return a.numpy().astype("<f4").tobytes(), a
    if dtype == "F16":
        a = t.to(torch.float16).contiguous()
        return a.numpy().astype("<f2").tobytes(), a.to(torch.float32)
    if dtype == "BF16":
        a = t.to(torch.bfloat16).contiguous()
        return a.view(torch.int16).numpy().astype("<i2").tobytes(), a.to(torch.float32)
    if dtype == "I64":
        a = t.to(torch.int64).contiguous()
        return a.numpy().astype("<i8").tobytes(), a
    raise ValueError(dtype)


def write_safetensors(path, tensors):
    """tensors: {name: (dtype, shape, bytes)}.  8-byte LE header length, JSON header
    (padded with spaces to a multiple of 8, as the reference writer does), raw data
    of each tensor in sorted name order."""
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    names = sorted(tensors)
    for n in names:
        dtype, shape, data = tensors[n]
        header[n] = {"dtype": dtype, "shape": list(shape),
                     "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for n in names:
            f.write(tensors[n][2])
    return offset


# ---------------------------------------------------------------------------
# random weights
# ---------------------------------------------------------------------------

class Rand:
    def __init__(self, seed):
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def normal(self, shape, std):
        return torch.from_numpy(self.rng.standard_normal(shape).astype(np.float32) * np.float32(std))


def make_bert_params(rng, cfg, pooler):
    """float32 parameters under HF BertModel names (no prefix)."""
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    P, T = cfg["max_position_embeddings"], cfg["type_vocab_size"]
    p = {}

    def ln(name):
        p[name + ".weight"] = 1.0 + rng.normal((H,), 0.1)
        p[name + ".bias"] = rng.normal((H,), 0.1)

    def lin(name, out_f, in_f, std=0.2):
        p[name + ".weight"] = rng.normal((out_f, in_f), std)
        p[name + ".bias"] = rng.normal((out_f,), 0.1)

    # query/key get a larger spread so that attention is far from uniform
    qk_std = 1.6 / math.sqrt(H)

    p["embeddings.word_embeddings.weight"] = rng.normal((V, H), 0.5)
    p["embeddings.position_embeddings.weight"] = rng.normal((P, H), 0.5)
    p["embeddings.token_type_embeddings.weight"] = rng.normal((T, H), 0.5)
    ln("embeddings.LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        pre = "encoder.layer.%d." % i
        lin(pre + "attention.self.query", H, H, qk_std)
        lin(pre + "attention.self.key", H, H, qk_std)
        lin(pre + "attention.self.value", H, H)
        lin(pre + "attention.output.dense", H, H)
        ln(pre + "attention.output.LayerNorm")
        lin(pre + "intermediate.dense", I, H)
        lin(pre + "output.dense", H, I)
        ln(pre + "output.LayerNorm")
    if pooler:
        lin("pooler.dense", H, H)
    return p


# ---------------------------------------------------------------------------
# BertModel forward (HF modeling_bert, eager attention), float32, batch of one
# ---------------------------------------------------------------------------

def act_fn(name):
    if name == "gelu":
        return lambda x: F.gelu(x)  # exact erf GELU
    if name == "gelu_new":
        c = math.sqrt(2.0 / math.pi)
        return lambda x: 0.5 * x * (1.0 + torch.tanh(c * (x + 0.044715 * torch.pow(x, 3.0))))
    if name == "relu":
        return F.relu
    raise ValueError(name)


def bert_forward(W, cfg, ids, types):
    """W: float32 tensors under BertModel names.  Returns the L+1 hidden states (T, H):
    embeddings LayerNorm output, then each layer's output."""
    H, NH = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = H // NH
    eps = cfg["layer_norm_eps"]
    act = act_fn(cfg["hidden_act"])
    ids_t = torch.tensor(ids, dtype=torch.int64)
    tt = torch.tensor(types, dtype=torch.int64)
    T = len(ids)
    pos = torch.arange(T, dtype=torch.int64)
    x = W["embeddings.word_embeddings.weight"][ids_t] + W["embeddings.token_type_embeddings.weight"][tt]
    x = x + W["embeddings.position_embeddings.weight"][pos]
    x = F.layer_norm(x, (H,), W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    states = [x]
    mask = torch.ones(T, dtype=torch.float32)
    ext = (1.0 - mask)[None, None, :] * torch.finfo(torch.float32).min  # all zero: no padding
    for i in range(cfg["num_hidden_layers"]):
        pre = "encoder.layer.%d." % i

        def lin(name, inp):
            return F.linear(inp, W[pre + name + ".weight"], W[pre + name + ".bias"])

        q = lin("attention.self.query", x).view(T, NH, hd).transpose(0, 1)
        k = lin("attention.self.key", x).view(T, NH, hd).transpose(0, 1)
        v = lin("attention.self.value", x).view(T, NH, hd).transpose(0, 1)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)
        scores = scores + ext[0]
        probs = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v).transpose(0, 1).reshape(T, H)
        a = lin("attention.output.dense", ctx)
        x = F.layer_norm(a + x, (H,), W[pre + "attention.output.LayerNorm.weight"],
                         W[pre + "attention.output.LayerNorm.bias"], eps)
        h = act(lin("intermediate.dense", x))
        o = lin("output.dense", h)
        x = F.layer_norm(o + x, (H,), W[pre + "output.LayerNorm.weight"],
                         W[pre + "output.LayerNorm.bias"], eps)
        states.append(x)
    return states


# ---------------------------------------------------------------------------
# sentence-transformers modules
# ---------------------------------------------------------------------------

POOL_KEYS = ["pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_tokens",
             "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
             "pooling_mode_lasttoken"]


def st_pool(pcfg, tok_emb, mask):
    """sentence_transformers.models.Pooling.forward for one sentence.
    tok_emb (T, H) float32; mask (T,) float32 (prompt positions already zeroed).
    Output order: cls, max, mean, mean_sqrt_len, weightedmean, lasttoken."""
    x = tok_emb[None].clone()
    m = mask[None]
    T, H = tok_emb.shape
    out = []
    if pcfg.get("pooling_mode_cls_token"):
        out.append(x[:, 0])
    if pcfg.get("pooling_mode_max_tokens"):
        me = m.unsqueeze(-1).expand(x.size())
        xm = x.clone()
        xm[me == 0] = -1e9
        out.append(torch.max(xm, 1)[0])
    if pcfg.get("pooling_mode_mean_tokens") or pcfg.get("pooling_mode_mean_sqrt_len_tokens"):
        me = m.unsqueeze(-1).expand(x.size())
        s = torch.sum(x * me, 1)
        n = torch.clamp(me.sum(1), min=1e-9)
        if pcfg.get("pooling_mode_mean_tokens"):
            out.append(s / n)
        if pcfg.get("pooling_mode_mean_sqrt_len_tokens"):
            out.append(s / torch.sqrt(n))
    if pcfg.get("pooling_mode_weightedmean_tokens"):
        me = m.unsqueeze(-1).expand(x.size())
        w = torch.arange(1, T + 1, dtype=torch.float32)[None, :, None].expand(x.size())
        me = me * w
        s = torch.sum(x * me, 1)
        n = torch.clamp(me.sum(1), min=1e-9)
        out.append(s / n)
    if pcfg.get("pooling_mode_lasttoken"):
        vals, idx = m.flip(1).max(1)
        idx = torch.where(vals == 0, torch.full_like(idx, T - 1), idx)
        g = T - idx - 1
        me = m.unsqueeze(-1).expand(x.size())
        out.append((x * me)[0, g[0]][None])
    return torch.cat(out, 1)[0]


def st_dense(dcfg, Wd, v):
    y = F.linear(v[None], Wd["linear.weight"], Wd.get("linear.bias"))
    a = dcfg["activation_function"]
    if a == "torch.nn.modules.activation.Tanh":
        y = torch.tanh(y)
    elif a != "torch.nn.modules.linear.Identity":
        raise ValueError(a)
    return y[0]


def st_normalize(v):
    return F.normalize(v[None], p=2, dim=1)[0]


# ---------------------------------------------------------------------------
# fixture content
# ---------------------------------------------------------------------------

LONG_EN = ("In the beginning of the twentieth century, researchers across Europe and North America "
           "began to systematically measure how quickly ordinary people could read printed text, "
           "and they discovered that comprehension depended far less on the speed of the eyes than "
           "on the familiarity of the vocabulary, the structure of the sentences, and the reader's "
           "prior knowledge of the subject being discussed.")
LONG_ZH = ("自然语言处理是人工智能领域中的一个重要方向，它研究能实现人与计算机之间用自然语言进行有效通信的"
           "各种理论和方法，融语言学、计算机科学、数学于一体。")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar.",
    "Hello, world!",
    "Héllo café naïve résumé Ångström",
    "UNwantéd,running",
    "我爱北京天安门。",
    "今天天气很好，我们去公园散步吧！",
    "我在用 Python 写代码，version 3.11 很好用。",
    "ah博推zz",
    "Emoji test 😀🎉 with 👍 and ❤️ hearts",
    "Punctuation!!! Does it... work? (yes) [maybe] {no} \"quoted\" 'single' — dash – en-dash",
    "Numbers: 3.14159, 2,718, 1e-9, $100.00, 50% and #42",
    LONG_EN,
    "",
    "   \t  ",
    "\t  Leading and trailing whitespace with tabs \t ",
    "Control\u0007char and zero\u200bwidth space",
    "tab\tseparated\tvalues and non\u00a0breaking\u00a0space",
    "Don't stop-believing: it's 9:30 a.m. in the U.S.A.",
    LONG_ZH,
    "The [MASK] sat on the [SEP] mat.",
    "ÀÉÎÕÜ àéîõü ß ø æ œ İstanbul",
    "https://example.com/path?query=1&x=y email@test.org",
    "C'est la vie, mon ami. ¿Qué tal? ¡Hola!",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "Long word: " + "abc" * 40 + " end",
    "こんにちは世界 안녕하세요 Привет мир",
    "ΟΔΟΣ Ἀθῆναι Greek letters",
    "Mixed 中文 and English 混合 text 123。",
    "ＦＵＬＬ-width ｔｅｘｔ and ～ tilde",
    "I.B.M. vs. IBM — co-operate, re-enter; well-known.",
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen",
    "   多 空格   中文   ",
    "what is the capital of france?",
]

# max_length for every pair case is the whole sequence length including specials.
PAIR_TEXTS = [
    # (text, text_pair, max_length)
    ("hello", "world", 16),                                              # no truncation
    ("How are you doing today my friend?", "Fine.", 8),                  # only the first is cut
    ("Fine.", "How are you doing today my friend?", 8),                  # only the second is cut
    ("one two three four five six", "seven eight nine ten eleven twelve", 9),   # equal, odd budget 6->3/3
    ("one two three four five six", "seven eight nine ten eleven twelve", 10),  # equal, budget 7 -> 3/4
    ("one two three four five six seven eight", "nine ten eleven twelve", 10),  # first longer, budget 7 -> 4/3
    ("one two three four", "five six seven eight nine ten eleven twelve", 10),  # second longer, budget 7 -> 3/4
    ("a b c d e f g h i j", "k l m", 9),                                 # first cut to budget - len(second)
    ("a b c", "d e f g h i j k l m", 9),
    ("a b c d e f g h i j", "k l m n o p q r s t", 4),                   # budget 1 -> 0/1
    ("a b c d e f g h i j", "k l m n o p q r s t", 3),                   # budget 0 -> 0/0
    ("", "k l m n o p", 6),                                              # empty first
    ("unaffable unwanted running", "supercalifragilistic", 10),          # word pieces cut mid-word
    ("The [MASK] sat on the mat", "A cat [SEP] here", 9),                # special tokens in text
]
PAIR_TEXTS_ZH = [
    ("我爱北京天安门", "天安门上太阳升", 20),
    ("我爱北京天安门", "天安门上太阳升", 11),                              # equal 7/7, budget 8 -> 4/4
    ("今天天气很好我们去公园散步吧", "好的", 10),
    ("好的", "今天天气很好我们去公园散步吧", 10),
    ("自然语言处理是人工智能", "机器学习", 12),                              # 11/4 budget 9 -> 5/4
    ("我在用 Python 写代码", "version 3.11 很好用", 9),
]


def f32list(t):
    return [float(v) for v in t.reshape(-1).tolist()]


def dump_json(path, obj, indent=2):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


def jsonl_line(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def bert_config(arch, V, H, L, NH, I, act, P, eps, dtype):
    return {
        "architectures": [arch],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "gradient_checkpointing": False,
        "hidden_act": act,
        "hidden_dropout_prob": 0.1,
        "hidden_size": H,
        "initializer_range": 0.02,
        "intermediate_size": I,
        "layer_norm_eps": eps,
        "max_position_embeddings": P,
        "model_type": "bert",
        "num_attention_heads": NH,
        "num_hidden_layers": L,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": dtype,
        "transformers_version": "4.41.2",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": V,
    }


def tokenizer_config(lower, model_max_length=512):
    return {
        "clean_up_tokenization_spaces": True,
        "cls_token": "[CLS]",
        "do_basic_tokenize": True,
        "do_lower_case": lower,
        "mask_token": "[MASK]",
        "model_max_length": model_max_length,
        "never_split": None,
        "pad_token": "[PAD]",
        "sep_token": "[SEP]",
        "strip_accents": None,
        "tokenize_chinese_chars": True,
        "tokenizer_class": "BertTokenizer",
        "unk_token": "[UNK]",
    }


SPECIAL_TOKENS_MAP = {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]",
                      "sep_token": "[SEP]", "unk_token": "[UNK]"}


def pooling_config(H, modes, include_prompt=True):
    c = {"word_embedding_dimension": H}
    for k in ["pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
              "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
              "pooling_mode_lasttoken"]:
        c[k] = k in modes
    c["include_prompt"] = include_prompt
    return c


def modules_json(entries):
    return [{"idx": i, "name": str(i), "path": path, "type": "sentence_transformers.models." + t}
            for i, (t, path) in enumerate(entries)]


# Each model: how its folder is laid out and what the pipeline is.
MODELS = [
    dict(name="en-mean-norm", seed=1001, vocab="bert-base-uncased.vocab.txt", lower=True,
         tokenizer_json="all-minilm-l6-v2.tokenizer.json", vocab_txt=False,
         arch="BertModel", H=32, L=2, NH=4, I=64, act="gelu", P=64, eps=1e-12,
         dtype="F32", prefix="", position_ids=True, pooler=True, extra_heads=False,
         max_seq_length=24, pool=["pooling_mode_mean_tokens"], include_prompt=True,
         dense=None, normalize="2_Normalize",
         st_config={"__version__": {"sentence_transformers": "2.0.0", "transformers": "4.6.1",
                                    "pytorch": "1.8.1"}},
         prompt_name=None, sharded=False, sentence_transformers=True),
    dict(name="zh-cls-dense-f16", seed=1002, vocab="bert-base-chinese.vocab.txt", lower=False,
         tokenizer_json=None, vocab_txt=True,
         arch="BertForPreTraining", H=16, L=3, NH=2, I=48, act="gelu_new", P=40, eps=1e-5,
         dtype="F16", prefix="bert.", position_ids=False, pooler=True, extra_heads=True,
         max_seq_length=32, pool=["pooling_mode_cls_token"], include_prompt=True,
         dense=dict(out=12, bias=True, act="torch.nn.modules.activation.Tanh"),
         normalize="3_Normalize", st_config=None, prompt_name=None, sharded=False,
         sentence_transformers=True),
    dict(name="en-max-relu-bf16", seed=1003, vocab="bert-base-uncased.vocab.txt", lower=True,
         tokenizer_json=None, vocab_txt=True,
         arch="BertModel", H=16, L=2, NH=2, I=32, act="relu", P=32, eps=1e-12,
         dtype="BF16", prefix="", position_ids=False, pooler=False, extra_heads=False,
         max_seq_length=20, pool=["pooling_mode_max_tokens"], include_prompt=True,
         dense=None, normalize=None, st_config=None, prompt_name=None, sharded=False,
         sentence_transformers=True),
    dict(name="en-allpool-prompt", seed=1004, vocab="bert-base-uncased.vocab.txt", lower=True,
         tokenizer_json="all-minilm-l6-v2.tokenizer.json", vocab_txt=False,
         arch="BertModel", H=16, L=1, NH=4, I=32, act="gelu", P=40, eps=1e-12,
         dtype="F32", prefix="", position_ids=False, pooler=False, extra_heads=False,
         max_seq_length=28, pool=list(POOL_KEYS), include_prompt=False,
         dense=dict(out=8, bias=False, act="torch.nn.modules.linear.Identity"),
         normalize=None,
         st_config={"prompts": {"query": "query: ", "passage": "passage: "},
                    "default_prompt_name": None, "similarity_fn_name": "dot"},
         prompt_name="query", sharded=False, sentence_transformers=True),
    dict(name="en-plain-hf", seed=1005, vocab="bert-base-uncased.vocab.txt", lower=True,
         tokenizer_json=None, vocab_txt=True,
         arch="BertModel", H=16, L=2, NH=2, I=32, act="gelu", P=48, eps=1e-12,
         dtype="F32", prefix="", position_ids=False, pooler=True, extra_heads=False,
         max_seq_length=None, pool=["pooling_mode_mean_tokens"], include_prompt=True,
         dense=None, normalize=None, st_config=None, prompt_name=None, sharded=True,
         sentence_transformers=False),
]

DTYPE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def build_model(m, versions):
    name = m["name"]
    d = os.path.join(OUT, name)
    os.makedirs(d)
    rng = Rand(m["seed"])
    V = len(load_vocab_txt(os.path.join(TOKDIR, m["vocab"])))
    H, L, NH, I, P = m["H"], m["L"], m["NH"], m["I"], m["P"]
    cfg = bert_config(m["arch"], V, H, L, NH, I, m["act"], P, m["eps"], DTYPE_NAMES[m["dtype"]])
    dump_json(os.path.join(d, "config.json"), cfg)

    # --- tokenizer files
    tok = tokenizer_for(m["vocab"], m["lower"], "bert")
    if m["tokenizer_json"]:
        shutil.copyfile(os.path.join(TOKDIR, m["tokenizer_json"]), os.path.join(d, "tokenizer.json"))
    if m["vocab_txt"]:
        shutil.copyfile(os.path.join(TOKDIR, m["vocab"]), os.path.join(d, "vocab.txt"))
    dump_json(os.path.join(d, "tokenizer_config.json"), tokenizer_config(m["lower"]))
    dump_json(os.path.join(d, "special_tokens_map.json"), SPECIAL_TOKENS_MAP)

    # --- transformer weights
    params = make_bert_params(rng, cfg, m["pooler"])
    W = {}        # float32 values used by the reference (exactly the stored values)
    stored = {}   # name -> (dtype, shape, bytes)
    for k, t in params.items():
        data, back = tensor_bytes(t, m["dtype"])
        stored[m["prefix"] + k] = (m["dtype"], tuple(t.shape), data)
        W[k] = back
    if m["position_ids"]:
        pid = torch.arange(P, dtype=torch.int64)[None]
        data, _ = tensor_bytes(pid, "I64")
        stored[m["prefix"] + "embeddings.position_ids"] = ("I64", (1, P), data)
    if m["extra_heads"]:
        # BertForPreTraining heads: present in the checkpoint, unused by BertModel.
        extra = {
            "cls.predictions.bias": rng.normal((V,), 0.1),
            "cls.predictions.transform.dense.weight": rng.normal((H, H), 0.2),
            "cls.predictions.transform.dense.bias": rng.normal((H,), 0.1),
            "cls.predictions.transform.LayerNorm.weight": 1.0 + rng.normal((H,), 0.1),
            "cls.predictions.transform.LayerNorm.bias": rng.normal((H,), 0.1),
            "cls.seq_relationship.weight": rng.normal((2, H), 0.2),
            "cls.seq_relationship.bias": rng.normal((2,), 0.1),
        }
        for k, t in extra.items():
            data, _ = tensor_bytes(t, m["dtype"])
            stored[k] = (m["dtype"], tuple(t.shape), data)
    if m["sharded"]:
        names = sorted(stored)
        first = [n for n in names if n.startswith("embeddings.")]
        rest = [n for n in names if n not in first]
        shards = [("model-00001-of-00002.safetensors", first),
                  ("model-00002-of-00002.safetensors", rest)]
        weight_map, total = {}, 0
        for fname, group in shards:
            total += write_safetensors(os.path.join(d, fname), {n: stored[n] for n in group})
            for n in group:
                weight_map[n] = fname
        dump_json(os.path.join(d, "model.safetensors.index.json"),
                  {"metadata": {"total_size": total},
                   "weight_map": {k: weight_map[k] for k in sorted(weight_map)}})
    else:
        write_safetensors(os.path.join(d, "model.safetensors"), stored)

    # --- sentence-transformers modules
    max_seq = m["max_seq_length"]
    if max_seq is None:  # plain HF folder: min(max_position_embeddings, model_max_length)
        max_seq = min(P, 512)
    pcfg = pooling_config(H, m["pool"], m["include_prompt"])
    Wd, dcfg = None, None
    if m["sentence_transformers"]:
        entries = [("Transformer", ""), ("Pooling", "1_Pooling")]
        dump_json(os.path.join(d, "sentence_bert_config.json"),
                  {"max_seq_length": max_seq, "do_lower_case": False})
        os.makedirs(os.path.join(d, "1_Pooling"))
        dump_json(os.path.join(d, "1_Pooling", "config.json"), pcfg)
        if m["dense"]:
            pool_dim = H * len(m["pool"])
            dcfg = {"in_features": pool_dim, "out_features": m["dense"]["out"],
                    "bias": m["dense"]["bias"], "activation_function": m["dense"]["act"]}
            os.makedirs(os.path.join(d, "2_Dense"))
            dump_json(os.path.join(d, "2_Dense", "config.json"), dcfg)
            Wd, dstored = {}, {}
            wt = rng.normal((dcfg["out_features"], pool_dim), 0.2)
            data, Wd["linear.weight"] = tensor_bytes(wt, "F32")
            dstored["linear.weight"] = ("F32", tuple(wt.shape), data)
            if dcfg["bias"]:
                bt = rng.normal((dcfg["out_features"],), 0.1)
                data, Wd["linear.bias"] = tensor_bytes(bt, "F32")
                dstored["linear.bias"] = ("F32", tuple(bt.shape), data)
            write_safetensors(os.path.join(d, "2_Dense", "model.safetensors"), dstored)
            entries.append(("Dense", "2_Dense"))
        if m["normalize"]:
            entries.append(("Normalize", m["normalize"]))
        dump_json(os.path.join(d, "modules.json"), modules_json(entries))
        if m["st_config"] is not None:
            dump_json(os.path.join(d, "config_sentence_transformers.json"), m["st_config"])

    # --- expected outputs
    prompt = None
    if m["prompt_name"]:
        prompt = m["st_config"]["prompts"][m["prompt_name"]]
    do_lower_case = False  # sentence_bert_config do_lower_case (false everywhere here)

    def st_tokenize(s):
        s = s.strip()
        if do_lower_case:
            s = s.lower()
        return tok.encode(s, max_length=max_seq)

    prompt_length = None
    if prompt is not None:
        prompt_length = len(st_tokenize(prompt)["ids"]) - 1

    pipeline = ["Transformer(max_seq_length=%d)" % max_seq,
                "Pooling(%s, include_prompt=%s)" % (
                    "+".join(k[len("pooling_mode_"):] for k in POOL_KEYS if pcfg[k]),
                    str(m["include_prompt"]).lower())]
    if m["dense"]:
        pipeline.append("Dense(%d->%d, bias=%s, %s)" % (dcfg["in_features"], dcfg["out_features"],
                                                      str(dcfg["bias"]).lower(),
                                                      dcfg["activation_function"].split(".")[-1]))
    if m["normalize"]:
        pipeline.append("Normalize")
    notes = ("Random weights (seed %d); weights stored as %s, reference computed in float32 from "
             "exactly the stored values. Pipeline: %s. Input text is the sentence (prompt + sentence "
             "when a prompt is used), then Python str.strip(), "
             "tokenized with truncation to max_seq_length (counting [CLS]/[SEP]); BertModel on the "
             "unpadded sequence (batch of one). hidden_states[0] = embeddings LayerNorm output, "
             "hidden_states[i] = output of layer i, each T*H row-major. 'embedding' is the output "
             "of the last module." % (m["seed"], m["dtype"], " -> ".join(pipeline)))
    if not m["sentence_transformers"]:
        notes += (" Plain Hugging Face folder (no modules.json): sentence-transformers uses "
                  "Transformer + mean Pooling, max_seq_length = min(max_position_embeddings, "
                  "tokenizer model_max_length) = %d." % max_seq)
    if prompt is not None:
        notes += (" Computed with prompt_name %r (prompt %r); prompt_length = len(tokenize(prompt)) - 1 "
                  "= %d (tokenize = strip + tokenize with specials); include_prompt=false sets the "
                  "pooling mask of positions [0, prompt_length) to 0 (cls still takes token 0)."
                  % (m["prompt_name"], prompt, prompt_length))
    header = {"magic": "sembed-fixture", "version": 1, "generator": "tools/gen_fixtures.py",
              "torch": versions["torch"], "numpy": versions["numpy"], "python": versions["python"],
              "model": name, "prompt_name": m["prompt_name"], "prompt": prompt,
              "prompt_length": prompt_length, "max_seq_length": max_seq,
              "num_hidden_layers": L, "hidden_size": H, "notes": notes}
    lines = [jsonl_line(header)]
    for s in SENTENCES:
        text_in = s if prompt is None else prompt + s
        enc = st_tokenize(text_in)
        states = bert_forward(W, cfg, enc["ids"], enc["token_type_ids"])
        T = len(enc["ids"])
        mask = torch.ones(T, dtype=torch.float32)
        if prompt is not None and not m["include_prompt"]:
            mask[:prompt_length] = 0
        pooled = st_pool(pcfg, states[-1], mask)
        emb = pooled
        if m["dense"]:
            emb = st_dense(dcfg, Wd, emb)
        if m["normalize"]:
            emb = st_normalize(emb)
        rec = {"text": s}
        if prompt is not None:
            rec["input_text"] = text_in
        rec.update({"ids": enc["ids"], "token_type_ids": enc["token_type_ids"],
                    "tokens": enc["tokens"], "truncated": enc["truncated"]})
        if prompt is not None and not m["include_prompt"]:
            rec["pooling_mask"] = [int(v) for v in mask.tolist()]
        rec["hidden_states"] = [f32list(h) for h in states]
        if m["dense"] or m["normalize"]:
            rec["pooled"] = f32list(pooled)
        rec["embedding"] = f32list(emb)
        lines.append(jsonl_line(rec))
    with open(os.path.join(d, "expected.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)
    return max_seq


def write_pair_cases():
    lines = []
    groups = [("en-max-relu-bf16", "bert-base-uncased.vocab.txt", True, PAIR_TEXTS),
              ("zh-cls-dense-f16", "bert-base-chinese.vocab.txt", False, PAIR_TEXTS_ZH)]
    for model, vocab, lower, cases in groups:
        tok = tokenizer_for(vocab, lower, "bert")
        for a, b, ml in cases:
            enc = tok.encode(a, b, max_length=ml)
            lines.append(jsonl_line({
                "model": model, "vocab": vocab, "lowercase": lower, "text": a, "text_pair": b,
                "max_length": ml, "lengths_before": enc["lengths"],
                "ids": enc["ids"], "token_type_ids": enc["token_type_ids"],
                "tokens": enc["tokens"], "truncated": enc["truncated"]}))
    with open(os.path.join(OUT, "pair-cases.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)
    return len(lines)


README = """# tests/fixtures/models — reference model folders for sembed

Generated by `tools/gen_fixtures.py`, an independent PyTorch implementation of the
Hugging Face BERT tokenizer, `BertModel` and the sentence-transformers modules
(no transformers / tokenizers / sentence-transformers code is used).  Regenerate from the
project root with Debian's Python and `python3-torch`, `python3-numpy` installed:

    /usr/bin/python3 tools/gen_fixtures.py

The script first checks its tokenizer against the real Hugging Face tokenizations in
`../shared/data/tokenizer-cases.jsonl` (and the matching models of
`tokenizer-cases-29-models.json`) and aborts on any mismatch.  Weights are random
(fixed seeds), so the outputs mean nothing linguistically; they pin the arithmetic.
Rerunning gives byte-identical files.

## Folders

| folder | tokenizer | model | modules |
| --- | --- | --- | --- |
| `en-mean-norm` | `tokenizer.json` (all-MiniLM-L6-v2's, lowercase) | H=32 L=2 heads=4 I=64 gelu, eps 1e-12, 64 positions, F32, with `embeddings.position_ids` (I64) and `pooler.*` | max_seq_length 24, mean pooling, Normalize (`2_Normalize`) |
| `zh-cls-dense-f16` | `vocab.txt` (bert-base-chinese) + `tokenizer_config.json`, do_lower_case false, no tokenizer.json | H=16 L=3 heads=2 I=48 gelu_new, eps 1e-5, 40 positions, F16, names prefixed `bert.`, plus unused `cls.*` pre-training heads | max_seq_length 32, CLS pooling, Dense 16->12 Tanh with bias (F32), Normalize (`3_Normalize`) |
| `en-max-relu-bf16` | `vocab.txt` (bert-base-uncased) + `tokenizer_config.json`, do_lower_case true | H=16 L=2 heads=2 I=32 relu, 32 positions, BF16 | max_seq_length 20, max pooling, no Normalize |
| `en-allpool-prompt` | `tokenizer.json` | H=16 L=1 heads=4 I=32 gelu, 40 positions, F32 | max_seq_length 28, all six pooling modes, include_prompt false, Dense 96->8 Identity no bias; prompts in `config_sentence_transformers.json`; expected outputs use prompt_name `query` |
| `en-plain-hf` | `vocab.txt` + `tokenizer_config.json` (model_max_length 512) | H=16 L=2 heads=2 I=32 gelu, 48 positions, F32, sharded into two safetensors files with `model.safetensors.index.json` | no modules.json / sentence_bert_config.json: sentence-transformers falls back to mean pooling and max_seq_length = min(48, 512) = 48 |

The reference for F16/BF16 folders is computed in float32 from exactly the stored
half-precision values.

## Issue 10 folders: MPNet, XLM-R, BERT with an XLM-R tokenizer, cross-encoders

The same script writes these from forward passes written out from Hugging Face's
`modeling_mpnet.py`, `modeling_xlm_roberta.py` (RoBERTa's embeddings, BERT's post-LN body) and
`BertForSequenceClassification` / `XLMRobertaClassificationHead`, and sentence-transformers'
`CrossEncoder`.  Configurations carry every field of the named real model's `config.json`,
with the shape scaled down.  The forward is batched with an attention mask; for every folder
the script checks that each sentence (pair) alone gives the same hidden states and logits,
within 1e-5, as inside one right-padded batch of all of them (`batch_self_check_max_diff` in
the header), and aborts otherwise.  The expected values are those of the sentence alone.

| folder | like | tokenizer | model | storage | modules |
| --- | --- | --- | --- | --- | --- |
| `mpnet-mean-norm` | all-mpnet-base-v2 | `vocab.txt` (`mpnet-derived`) + `tokenizer_config.json` (MPNetTokenizer, lowercase, unk `[UNK]`), `<s> A </s>` | MPNet H=12 L=2 heads=3 I=24 gelu, eps 1e-5, 40 positions, no prefix, `pooler.*`, I64 `embeddings.position_ids` | F32 `model.safetensors` | max_seq_length 24, mean, Normalize |
| `mpnet-prefix-max-f16` | an MPNetForMaskedLM checkpoint | as above | MPNet H=8 L=1 heads=2 I=16, 30 positions, names prefixed `mpnet.`, no pooler, unused `lm_head.*` (decoder tied, absent) | F16 `model.safetensors` | max_seq_length 28, max, no Normalize |
| `xlmr-mean-norm-bf16` | multilingual-e5-base | `sentencepiece.bpe.model` (= `test_model.model`, 1000 pieces) + `tokenizer.json` (legacy converter) | XLMRobertaModel H=24 L=2 heads=4 I=48, eps 1e-5, 34 positions, type_vocab_size 1, names prefixed `roberta.` | BF16, two shards + `model.safetensors.index.json` | max_seq_length 32, mean, Normalize |
| `xlmr-cls-norm-bin` | BAAI/bge-m3 | `sentencepiece.bpe.model` (= `test_ja_model.model`, 8000 pieces) + `tokenizer.json` (current converter) | XLMRobertaModel H=12 L=2 heads=2 I=24, 42 positions, no prefix, I64 `embeddings.position_ids` | F32 `pytorch_model.bin` only (torch.save, zip) | max_seq_length 40, CLS, Normalize |
| `bert-xlmr-tok-f16` | paraphrase-multilingual-MiniLM-L12-v2 | XLM-R files (`test_model`, legacy converter), XLMRobertaTokenizer | `model_type: bert`, BertModel H=16 L=2 heads=4 I=32, 40 positions, vocab 1002, `pad_token_id` 0 in the config as in the real one (the tokenizer pads with `<pad>` = 1; BERT's positions do not depend on it), token types all 0 | F16 `model.safetensors`, I64 `embeddings.position_ids` | max_seq_length 20, mean, no Normalize |
| `ce-bert-1` | cross-encoder/ms-marco-MiniLM-L6-v2 | `vocab.txt` (bert-base-uncased), model_max_length 32, `[CLS] A [SEP] B [SEP]`, types 0/1 | BertForSequenceClassification H=8 L=2 heads=2 I=16, 40 positions, `bert.` prefix, `bert.pooler.dense` + `classifier`, num_labels 1, config `sentence_transformers.activation_fn` Sigmoid | F32 `model.safetensors`, I64 position_ids | CrossEncoder, sigmoid |
| `ce-bert-3-bin` | a 3-label NLI cross-encoder | as above, model_max_length 36 | the same head with num_labels 3 (contradiction/entailment/neutral), H=8 L=1, 36 positions | F32 `pytorch_model.bin` only, I64 position_ids | CrossEncoder, identity (softmax given too) |
| `ce-xlmr-1` | BAAI/bge-reranker-base | XLM-R files (`test_model`, legacy converter), model_max_length 32, `<s> A </s></s> B </s>` | XLMRobertaForSequenceClassification H=16 L=2 heads=4 I=32, 34 positions, `roberta.` prefix (no pooler), `classifier.dense` + `classifier.out_proj`, num_labels 1 | F32 `model.safetensors` | CrossEncoder, sigmoid |

Details every implementation must match:

- **RoBERTa positions** (XLM-R and MPNet): position id = padding_idx + 1 + the token's index
  among the real tokens, padding positions = padding_idx (padding_idx = `pad_token_id` = 1); so a
  sequence of T tokens uses rows 2..T+1 and `max_position_embeddings` = max_seq_length + 2.
- **MPNet relative position bias**: `encoder.relative_attention_bias.weight` is (32 buckets,
  heads); bucket of (key position - query position) over the padded length with
  `relative_position_bucket` (bidirectional: 16 buckets a side, 8 exact distances, then
  logarithmic in float32 up to distance 128, truncated toward zero, capped at the side's last
  bucket); computed once, added to every layer's scaled scores before the mask.  No token types.
- **XLM-R ids**: python3-sentencepiece's segmentation of the text with XLMRobertaTokenizer's
  fairseq offset: `<s>`=0 `<pad>`=1 `</s>`=2 `<unk>`=3, sentencepiece piece i -> i+1
  (its own `<unk>` 0 -> 3), `<mask>` = pieces + 1 (vocab_size = pieces + 2).  The folder's
  `tokenizer.json` is the one `tools/gen_sentencepiece_oracles.py` builds the way Hugging Face's
  XLMRobertaConverter does; the script runs the real Hugging Face tokenizers library
  (`@anush008/tokenizers` via `tools/sentencepiece_hf_oracle.js`, when installed in
  `$NPM_ORACLES`, default /work/npm-oracles) on every fixture text and pair (untruncated) and
  records the result in the header's `hf_tokenizers_check`; a sentence where it disagrees with
  sentencepiece would carry `hf_ids` (none does today).
- **Cross-encoders**: CrossEncoder strips each text (Python str.strip; the fixture pairs have
  no surrounding whitespace) and adds nothing else before the tokenizer; truncation is `longest_first` to `max_length` = the tokenizer's model_max_length
  (the fast tokenizer's algorithm, as for `pair-cases.jsonl`), counting 3 specials for BERT and
  4 for XLM-R.  The BERT head is `classifier(tanh(bert.pooler.dense(h[CLS])))`, the XLM-R head
  `out_proj(tanh(classifier.dense(h[<s>])))`.  CrossEncoder.predict's default activation is
  sigmoid for one label and identity for more (`apply_softmax=True` gives the softmax).

## Files

- `sentences.jsonl` — the sentences (one JSON string a line, UTF-8, no raw newlines), shared
  by every model.
- `<model>/expected.jsonl` — line 1 a header (`magic` "sembed-fixture", `version` 1, tool
  versions, `model`, `prompt_name`, `prompt`, `prompt_length`, `max_seq_length`, `notes`);
  then one object per sentence, in `sentences.jsonl` order: `text`, (`input_text` = prompt +
  text where a prompt is used), `ids` and `token_type_ids` (with specials, after truncation),
  `tokens`, `truncated` (whether content tokens were cut), (`pooling_mask` where
  include_prompt is false), `hidden_states` (L+1 flat T*H row-major lists: embeddings
  LayerNorm output, then each layer), (`pooled` = Pooling output where later modules exist),
  `embedding` (final output).  Floats are the exact float32 values written as Python floats.
- `pair-cases.jsonl` — tokenizer cases for sentence pairs with `longest_first` truncation
  (`text`, `text_pair`, `max_length` counting the 3 specials, `lengths_before`, `ids`,
  `token_type_ids`, `tokens`), for the English uncased and the Chinese vocabulary (`model`
  names the folder whose tokenizer applies).

- `<cross-encoder>/expected.jsonl` — line 1 a header (`magic`, `version`, tool versions,
  `model`, `architecture`, `num_labels`, `max_length`, `activation`, `rank`, `notes`); `rank` is
  `CrossEncoder.rank(query, documents)` for the first six pairs (`query`, `documents`, `order` =
  document indices by descending score, `scores` and `raw_scores` in that order; null for
  several labels, where rank does not apply).  Then one object per pair: `text`, `text_pair`,
  `ids`, `token_type_ids`, `tokens`, `lengths_before` (content tokens of each text before
  truncation), `truncated`, `hidden_states` (as above), `logits` (raw, num_labels floats),
  `scores` (the default activation applied), (`softmax` where num_labels > 1).
- The issue-10 encoder folders' headers add `architecture`, `model_type`, `like`,
  `batch_self_check_max_diff` and `hf_tokenizers_check`.

## Licence

The vocabularies (`vocab.txt`) and `tokenizer.json` files are copies of the published
files of Google's BERT models (bert-base-uncased, bert-base-chinese) as distributed on the
Hugging Face hub (sentence-transformers/all-MiniLM-L6-v2's tokenizer.json), licensed
Apache-2.0.  `mpnet-*/vocab.txt` is all-mpnet-base-v2's vocabulary (the same BERT vocabulary
with `<s> <pad> </s> <unk>` first and `<mask>` last), Apache-2.0.  The `sentencepiece.bpe.model`
files are copies of `test_model.model` and `test_ja_model.model` from the sentencepiece
project's tests (Apache-2.0); the `tokenizer.json` beside them is derived from them.
Everything else here is generated by `tools/gen_fixtures.py`.
"""



# ===========================================================================
# Issue 10: MPNet, XLM-R, BERT with an XLM-R tokenizer, cross-encoders,
# F16/BF16, sharded safetensors and pytorch_model.bin
# ===========================================================================
#
# Everything below is written out from the published definitions (Hugging Face
# transformers' modeling_mpnet.py, modeling_roberta.py / modeling_xlm_roberta.py,
# modeling_bert.py's BertForSequenceClassification, XLMRobertaTokenizer, and
# sentence-transformers' Transformer / Pooling / Normalize / CrossEncoder); no
# code of those libraries is imported.  The forward pass is batched (B, T) with an
# attention mask so that the script can check, for every new model, that a
# sentence alone gives the same numbers as the same sentence inside a right-padded
# batch (self_check_batching); the expected values are those of the sentence
# alone (a batch of one, no padding).

SPM_DIR = os.path.join(DATA, "sentencepiece")
NPM_ORACLES = os.environ.get("NPM_ORACLES", "/work/npm-oracles")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class XlmrTokenizer:
    """XLMRobertaTokenizer over a sentencepiece Unigram model: python3-sentencepiece
    segments the text; ids get the fairseq offset (<s>=0 <pad>=1 </s>=2 <unk>=3,
    sentencepiece piece i -> i + 1, sentencepiece's own <unk> (0) -> 3, <mask> =
    pieces + 1).  Template <s> A </s> / <s> A </s></s> B </s>, all token type 0."""

    def __init__(self, model_name):
        import sentencepiece as spm
        self.path = os.path.join(SPM_DIR, model_name + ".model")
        self.sp = spm.SentencePieceProcessor(model_file=self.path)
        n = self.sp.get_piece_size()
        assert (self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id()) == (0, 1, 2), model_name
        self.vocab_size = n + 2
        self.mask_id = n + 1
        self.cls_id, self.pad_id, self.sep_id, self.unk_id = 0, 1, 2, 3
        self.template = "xlmr"

    def tokenize(self, text):
        ids = self.sp.encode(text)
        toks = ["<unk>" if i == 0 else self.sp.id_to_piece(i) for i in ids]
        return list(zip(toks, [3 if i == 0 else i + 1 for i in ids]))

    def encode(self, text, pair=None, max_length=None):
        ta = self.tokenize(text)
        tb = self.tokenize(pair) if pair is not None else None
        na, nb = len(ta), (len(tb) if tb is not None else 0)
        if max_length is not None:
            budget = max_length - (4 if pair is not None else 2)
            ta, tb = BertTokenizer.truncate_longest_first(ta, tb, budget)
        truncated = len(ta) != na or (tb is not None and len(tb) != nb)
        seq = [("<s>", 0)] + ta + [("</s>", 2)]
        if tb is not None:
            seq += [("</s>", 2)] + tb + [("</s>", 2)]
        return {"ids": [i for _, i in seq], "token_type_ids": [0] * len(seq),
                "tokens": [t for t, _ in seq], "truncated": truncated,
                "lengths": [na, nb] if tb is not None else [na]}


_XLMR_CACHE = {}


def xlmr_tokenizer(model_name):
    if model_name not in _XLMR_CACHE:
        _XLMR_CACHE[model_name] = XlmrTokenizer(model_name)
    return _XLMR_CACHE[model_name]


def hf_oracle_ids(tokenizer_json_path, charsmap, texts, pairs=()):
    """Ids the real Hugging Face tokenizers library (npm @anush008/tokenizers, run by
    tools/sentencepiece_hf_oracle.js) gives for texts with the folder's tokenizer.json;
    None when node or the package is missing.  Pairs are encoded without truncation."""
    import subprocess
    import tempfile
    js = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sentencepiece_hf_oracle.js")
    if not os.path.isdir(os.path.join(NPM_ORACLES, "node_modules", "@anush008")) or not shutil.which("node"):
        return None
    tmp = tempfile.mkdtemp(prefix="sembed-fix-")
    try:
        lines = list(texts)
        for a, b in pairs:
            lines += [a, b]
        cp = os.path.join(tmp, "charsmap")
        with open(cp, "wb") as f:
            f.write(charsmap)
        corpus = os.path.join(tmp, "corpus.jsonl")
        with open(corpus, "w", encoding="utf-8") as f:
            for t in lines:
                f.write(json.dumps(t, ensure_ascii=False) + "\n")
        outp = os.path.join(tmp, "out.jsonl")
        env = dict(os.environ, NODE_PATH=os.path.join(NPM_ORACLES, "node_modules"))
        subprocess.run(["node", js, tokenizer_json_path, cp, corpus, outp, str(len(lines))],
                       check=True, env=env)
        with open(outp, encoding="utf-8") as f:
            recs = [json.loads(l) for l in f if l.strip()]
        singles = [r["ids"] for r in recs[:len(texts)]]
        pair_ids = [recs[len(texts) + 2 * i]["pair_ids"] for i in range(len(pairs))]
        return singles, pair_ids
    finally:
        shutil.rmtree(tmp)


def make_mpnet_params(rng, cfg, pooler=True):
    """float32 parameters under HF MPNetModel names (no prefix)."""
    H, I, V, P = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["max_position_embeddings"]
    p = {}

    def ln(name):
        p[name + ".weight"] = 1.0 + rng.normal((H,), 0.1)
        p[name + ".bias"] = rng.normal((H,), 0.1)

    def lin(name, out_f, in_f, std=0.2):
        p[name + ".weight"] = rng.normal((out_f, in_f), std)
        p[name + ".bias"] = rng.normal((out_f,), 0.1)

    qk_std = 1.6 / math.sqrt(H)
    p["embeddings.word_embeddings.weight"] = rng.normal((V, H), 0.5)
    p["embeddings.position_embeddings.weight"] = rng.normal((P, H), 0.5)
    ln("embeddings.LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        pre = "encoder.layer.%d." % i
        lin(pre + "attention.attn.q", H, H, qk_std)
        lin(pre + "attention.attn.k", H, H, qk_std)
        lin(pre + "attention.attn.v", H, H)
        lin(pre + "attention.attn.o", H, H)
        ln(pre + "attention.LayerNorm")
        lin(pre + "intermediate.dense", I, H)
        lin(pre + "output.dense", H, I)
        ln(pre + "output.LayerNorm")
    # a large spread so that the bias visibly changes attention
    p["encoder.relative_attention_bias.weight"] = rng.normal(
        (cfg["relative_attention_num_buckets"], cfg["num_attention_heads"]), 1.0)
    if pooler:
        lin("pooler.dense", H, H)
    return p


def mpnet_relative_bucket(rel, num_buckets=32, max_distance=128):
    """MPNetEncoder.relative_position_bucket: rel = key position - query position.
    Half the buckets for keys before the query (n > 0 below), half after; within a
    half, distances < max_exact exact, then logarithmic up to max_distance (the
    float32 log of torch, truncated toward zero), capped at the last bucket."""
    n = -rel
    half = num_buckets // 2
    ret = (n < 0).to(torch.long) * half
    n = torch.abs(n)
    max_exact = half // 2
    is_small = n < max_exact
    large = max_exact + (torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
                         * (half - max_exact)).to(torch.long)
    large = torch.min(large, torch.full_like(large, half - 1))
    return ret + torch.where(is_small, n, large)


def encoder_forward(W, cfg, kind, ids, mask, types=None):
    """Batched encoder forward, float32, eager attention.  kind: 'bert' (BertModel:
    positions 0..T-1, token types), 'xlmr' (XLMRobertaModel: BERT's post-LN body,
    positions padding_idx+1.. over real tokens, padding positions = padding_idx,
    token type 0), 'mpnet' (MPNetModel: RoBERTa positions, no token types, q/k/v/o
    attention plus the relative position bias computed once over the padded length
    and added to every layer's scores).  ids, mask: (B, T) int64 / float32.
    Returns the L+1 hidden states (B, T, H)."""
    H, NH = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = H // NH
    eps = cfg["layer_norm_eps"]
    act = act_fn(cfg["hidden_act"])
    B, T = ids.shape
    if kind == "bert":
        pos = torch.arange(T, dtype=torch.int64)[None].expand(B, T)
    else:
        pad = cfg["pad_token_id"]
        real = (ids != pad).to(torch.int64)
        pos = torch.cumsum(real, dim=1) * real + pad
    x = W["embeddings.word_embeddings.weight"][ids]
    if kind != "mpnet":  # XLM-R has one token type (0); BERT takes the tokenizer's
        tt = torch.zeros_like(ids) if types is None or kind == "xlmr" else types
        x = x + W["embeddings.token_type_embeddings.weight"][tt]
    x = x + W["embeddings.position_embeddings.weight"][pos]
    x = F.layer_norm(x, (H,), W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    states = [x]
    ext = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
    bias = None
    if kind == "mpnet":
        ar = torch.arange(T, dtype=torch.int64)
        bucket = mpnet_relative_bucket(ar[None, :] - ar[:, None],
                                       num_buckets=cfg["relative_attention_num_buckets"])
        bias = W["encoder.relative_attention_bias.weight"][bucket].permute(2, 0, 1)[None]  # 1,NH,T,T
    names = {"bert": ("attention.self.query", "attention.self.key", "attention.self.value",
                      "attention.output.dense", "attention.output.LayerNorm"),
             "mpnet": ("attention.attn.q", "attention.attn.k", "attention.attn.v",
                       "attention.attn.o", "attention.LayerNorm")}[
        "mpnet" if kind == "mpnet" else "bert"]
    for i in range(cfg["num_hidden_layers"]):
        pre = "encoder.layer.%d." % i

        def lin(name, inp):
            return F.linear(inp, W[pre + name + ".weight"], W[pre + name + ".bias"])

        q = lin(names[0], x).view(B, T, NH, hd).transpose(1, 2)
        k = lin(names[1], x).view(B, T, NH, hd).transpose(1, 2)
        v = lin(names[2], x).view(B, T, NH, hd).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)
        if bias is not None:
            scores = scores + bias
        scores = scores + ext
        probs = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v).transpose(1, 2).reshape(B, T, H)
        a = lin(names[3], ctx)
        x = F.layer_norm(a + x, (H,), W[pre + names[4] + ".weight"], W[pre + names[4] + ".bias"], eps)
        h = act(lin("intermediate.dense", x))
        o = lin("output.dense", h)
        x = F.layer_norm(o + x, (H,), W[pre + "output.LayerNorm.weight"],
                         W[pre + "output.LayerNorm.bias"], eps)
        states.append(x)
    return states


def check_against_bert_forward(name, W, cfg, encs, alone):
    """The batched encoder_forward in BERT mode must reproduce bert_forward (the
    single-sequence forward behind the original fixtures) to 1e-6 on every input."""
    for e, st in zip(encs, alone):
        ref = bert_forward(W, cfg, e["ids"], e["token_type_ids"])
        d = max((a - b).abs().max().item() for a, b in zip(ref, st))
        if d > 1e-6:
            sys.exit("%s: encoder_forward differs from bert_forward by %g" % (name, d))


def classifier_head(Wh, head, h0):
    """Sequence-classification heads on the first token's final hidden state h0 (B, H).
    'bert': BertForSequenceClassification = BertPooler (dense, tanh) then classifier;
    'xlmr': XLMRobertaClassificationHead = dense, tanh, out_proj.  Dropout is off."""
    if head == "bert":
        p = torch.tanh(F.linear(h0, Wh["bert.pooler.dense.weight"], Wh["bert.pooler.dense.bias"]))
        return F.linear(p, Wh["classifier.weight"], Wh["classifier.bias"])
    p = torch.tanh(F.linear(h0, Wh["classifier.dense.weight"], Wh["classifier.dense.bias"]))
    return F.linear(p, Wh["classifier.out_proj.weight"], Wh["classifier.out_proj.bias"])


def batch_of(encs, pad_id):
    """Right-padded (B, T) ids / types / mask of a list of encodings."""
    T = max(len(e["ids"]) for e in encs)
    ids = torch.full((len(encs), T), pad_id, dtype=torch.int64)
    types = torch.zeros((len(encs), T), dtype=torch.int64)
    mask = torch.zeros((len(encs), T), dtype=torch.float32)
    for b, e in enumerate(encs):
        n = len(e["ids"])
        ids[b, :n] = torch.tensor(e["ids"], dtype=torch.int64)
        types[b, :n] = torch.tensor(e["token_type_ids"], dtype=torch.int64)
        mask[b, :n] = 1.0
    return ids, types, mask


def self_check_batching(name, W, cfg, kind, encs, pad_id, alone):
    """Every sentence's states inside one right-padded batch must equal (1e-5) the
    states of the sentence alone; returns the largest difference seen."""
    ids, types, mask = batch_of(encs, pad_id)
    states = encoder_forward(W, cfg, kind, ids, mask, types)
    worst = 0.0
    for b, e in enumerate(encs):
        n = len(e["ids"])
        for layer, s in enumerate(states):
            d = (s[b, :n] - alone[b][layer]).abs().max().item()
            worst = max(worst, d)
    if worst > 1e-5:
        sys.exit("%s: batched forward differs from the forward alone by %g" % (name, worst))
    return worst


def mpnet_config(V, H, L, NH, I, P, dtype):
    """all-mpnet-base-v2's config.json, every field, with the shape scaled down."""
    return {
        "_name_or_path": "microsoft/mpnet-base",
        "architectures": ["MPNetForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": H,
        "initializer_range": 0.02,
        "intermediate_size": I,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": P,
        "model_type": "mpnet",
        "num_attention_heads": NH,
        "num_hidden_layers": L,
        "pad_token_id": 1,
        "relative_attention_num_buckets": 32,
        "torch_dtype": dtype,
        "transformers_version": "4.8.2",
        "vocab_size": V,
    }


def xlmr_config(arch, V, H, L, NH, I, P, dtype, extra=None):
    """multilingual-e5-base / bge-m3 / bge-reranker-base's config.json (XLM-R), scaled down."""
    c = {
        "architectures": [arch],
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": 0,
        "classifier_dropout": None,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": H,
        "initializer_range": 0.02,
        "intermediate_size": I,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": P,
        "model_type": "xlm-roberta",
        "num_attention_heads": NH,
        "num_hidden_layers": L,
        "output_past": True,
        "pad_token_id": 1,
        "position_embedding_type": "absolute",
        "torch_dtype": dtype,
        "transformers_version": "4.29.0.dev0",
        "type_vocab_size": 1,
        "use_cache": True,
        "vocab_size": V,
    }
    c.update(extra or {})
    return dict(sorted(c.items()))


def labels_config(n):
    """id2label / label2id of a sequence-classification config."""
    names = ["LABEL_0"] if n == 1 else ["contradiction", "entailment", "neutral"][:n]
    return {"id2label": {str(i): s for i, s in enumerate(names)},
            "label2id": {s: i for i, s in enumerate(names)}}


MPNET_TOKENIZER_CONFIG = {
    "bos_token": "<s>", "clean_up_tokenization_spaces": True, "cls_token": "<s>",
    "do_lower_case": True, "eos_token": "</s>",
    "mask_token": {"__type": "AddedToken", "content": "<mask>", "lstrip": True, "normalized": True,
                   "rstrip": False, "single_word": False},
    "model_max_length": 512, "name_or_path": "microsoft/mpnet-base", "pad_token": "<pad>",
    "sep_token": "</s>", "special_tokens_map_file": None, "strip_accents": None,
    "tokenize_chinese_chars": True, "tokenizer_class": "MPNetTokenizer", "unk_token": "[UNK]"}
MPNET_SPECIAL_TOKENS_MAP = {
    "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>",
    "mask_token": {"content": "<mask>", "lstrip": True, "normalized": False, "rstrip": False,
                   "single_word": False},
    "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "[UNK]"}


def xlmr_tokenizer_config(model_max_length):
    return {
        "bos_token": "<s>", "clean_up_tokenization_spaces": True, "cls_token": "<s>",
        "eos_token": "</s>",
        "mask_token": {"__type": "AddedToken", "content": "<mask>", "lstrip": True, "normalized": True,
                       "rstrip": False, "single_word": False},
        "model_max_length": model_max_length, "pad_token": "<pad>", "sep_token": "</s>",
        "sp_model_kwargs": {}, "tokenizer_class": "XLMRobertaTokenizer", "unk_token": "<unk>"}


XLMR_SPECIAL_TOKENS_MAP = {
    "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>",
    "mask_token": {"content": "<mask>", "lstrip": True, "normalized": False, "rstrip": False,
                   "single_word": False},
    "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>"}


def write_weights(d, stored, storage, state_order):
    """Write the checkpoint: storage 'safetensors' (model.safetensors), 'sharded'
    (two safetensors files split after the embeddings, plus model.safetensors.index.json
    as transformers writes it) or 'bin' (pytorch_model.bin by torch.save, zip format, a
    state dict in module order, no safetensors).  stored: name -> (dtype, shape, bytes,
    tensor as stored)."""
    if storage == "safetensors":
        write_safetensors(os.path.join(d, "model.safetensors"),
                          {n: v[:3] for n, v in stored.items()})
    elif storage == "sharded":
        names = sorted(stored)
        first = [n for n in names if ".embeddings." in n or n.startswith("embeddings.")]
        rest = [n for n in names if n not in first]
        shards = [("model-00001-of-00002.safetensors", first),
                  ("model-00002-of-00002.safetensors", rest)]
        weight_map, total = {}, 0
        for fname, group in shards:
            total += write_safetensors(os.path.join(d, fname), {n: stored[n][:3] for n in group})
            for n in group:
                weight_map[n] = fname
        dump_json(os.path.join(d, "model.safetensors.index.json"),
                  {"metadata": {"total_size": total},
                   "weight_map": {k: weight_map[k] for k in sorted(weight_map)}})
    elif storage == "bin":
        import collections
        sd = collections.OrderedDict()
        for n in state_order:
            sd[n] = stored[n][3].clone()
        torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    else:
        raise ValueError(storage)


def store_params(params, prefix, dtype, stored, W):
    """Convert float32 params to dtype; record the stored bytes and the float32 values
    exactly as stored (what the reference computes with)."""
    tdt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    for k, t in params.items():
        data, back = tensor_bytes(t, dtype)
        stored[prefix + k] = (dtype, tuple(t.shape), data, t.to(tdt).contiguous())
        W[prefix + k] = back


# The new encoder fixtures (sentence-transformers pipelines).
NEW_MODELS = [
    dict(name="mpnet-mean-norm", kind="mpnet", seed=2001, tok="mpnet", H=12, L=2, NH=3, I=24, P=40,
         dtype="F32", prefix="", position_ids=True, storage="safetensors", max_seq_length=24,
         pool=["pooling_mode_mean_tokens"], normalize="2_Normalize",
         like="sentence-transformers/all-mpnet-base-v2"),
    dict(name="mpnet-prefix-max-f16", kind="mpnet", seed=2005, tok="mpnet", H=8, L=1, NH=2, I=16,
         P=30, dtype="F16", prefix="mpnet.", position_ids=False, pooler=False, lm_head=True,
         storage="safetensors", max_seq_length=28, pool=["pooling_mode_max_tokens"], normalize=None,
         like="an MPNetForMaskedLM checkpoint (microsoft/mpnet-base)"),
    dict(name="xlmr-mean-norm-bf16", kind="xlmr", seed=2002, tok="test_model", legacy_json=True,
         H=24, L=2, NH=4, I=48, P=34, dtype="BF16", prefix="roberta.", position_ids=False,
         storage="sharded", max_seq_length=32, pool=["pooling_mode_mean_tokens"],
         normalize="2_Normalize", like="intfloat/multilingual-e5-base"),
    dict(name="xlmr-cls-norm-bin", kind="xlmr", seed=2003, tok="test_ja_model", legacy_json=False,
         H=12, L=2, NH=2, I=24, P=42, dtype="F32", prefix="", position_ids=True, storage="bin",
         max_seq_length=40, pool=["pooling_mode_cls_token"], normalize="2_Normalize",
         like="BAAI/bge-m3"),
    dict(name="bert-xlmr-tok-f16", kind="bert", seed=2004, tok="test_model", legacy_json=True,
         H=16, L=2, NH=4, I=32, P=40, dtype="F16", prefix="", position_ids=True,
         storage="safetensors", max_seq_length=20, pool=["pooling_mode_mean_tokens"], normalize=None,
         like="sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"),
]

# Cross-encoders: query/documents for rank(), then pairs that exercise truncation.
CE_QUERY = "how many people live in berlin?"
CE_DOCS = [
    "Berlin has a population of 3,520,031 registered inhabitants in an area of 891.82 square kilometers.",
    "New York City is famous for the Metropolitan Museum of Art.",
    "Berlin is the capital and largest city of Germany.",
    "The quick brown fox jumps over the lazy dog.",
    "In 2019 about 3.7 million people lived in Berlin, making it the most populous city of the European Union.",
    "Berliner Weiße ist ein Bier.",
]
CE_EXTRA_PAIRS = [
    ("A man is eating pasta.", "A man is eating food."),
    ("A man is eating pasta.", "Nobody is eating."),
    (LONG_EN, "short answer"),
    ("short question", LONG_EN),
    (LONG_EN, LONG_EN[::-1]),
    ("", "empty query"),
    ("我爱北京天安门", "天安门上太阳升"),
]

NEW_CROSS = [
    dict(name="ce-bert-1", kind="bert", head="bert", seed=2101, tok="bert-uncased", num_labels=1,
         H=8, L=2, NH=2, I=16, P=40, dtype="F32", prefix="bert.", position_ids=True,
         storage="safetensors", model_max_length=32, like="cross-encoder/ms-marco-MiniLM-L6-v2"),
    dict(name="ce-bert-3-bin", kind="bert", head="bert", seed=2102, tok="bert-uncased", num_labels=3,
         H=8, L=1, NH=2, I=16, P=36, dtype="F32", prefix="bert.", position_ids=True, storage="bin",
         model_max_length=36, like="a 3-label NLI cross-encoder (BertForSequenceClassification)"),
    dict(name="ce-xlmr-1", kind="xlmr", head="xlmr", seed=2103, tok="test_model", legacy_json=True,
         num_labels=1, H=16, L=2, NH=4, I=32, P=34, dtype="F32", prefix="roberta.",
         position_ids=False, storage="safetensors", model_max_length=32,
         like="BAAI/bge-reranker-base"),
]


VOCAB_FILES = {"mpnet": "mpnet-derived.vocab.txt", "bert-uncased": "bert-base-uncased.vocab.txt"}


def write_tokenizer_files(d, m, model_max_length):
    """Tokenizer files of a new folder; returns (tokenizer, charsmap or None)."""
    if m["tok"] == "mpnet":
        shutil.copyfile(os.path.join(TOKDIR, "mpnet-derived.vocab.txt"), os.path.join(d, "vocab.txt"))
        c = dict(MPNET_TOKENIZER_CONFIG, model_max_length=model_max_length)
        dump_json(os.path.join(d, "tokenizer_config.json"), c)
        dump_json(os.path.join(d, "special_tokens_map.json"), MPNET_SPECIAL_TOKENS_MAP)
        return tokenizer_for("mpnet-derived.vocab.txt", True, "mpnet"), None
    if m["tok"] == "bert-uncased":
        shutil.copyfile(os.path.join(TOKDIR, "bert-base-uncased.vocab.txt"), os.path.join(d, "vocab.txt"))
        dump_json(os.path.join(d, "tokenizer_config.json"), tokenizer_config(True, model_max_length))
        dump_json(os.path.join(d, "special_tokens_map.json"), SPECIAL_TOKENS_MAP)
        return tokenizer_for("bert-base-uncased.vocab.txt", True, "bert"), None
    import gen_sentencepiece_oracles as spo
    src = os.path.join(SPM_DIR, m["tok"] + ".model")
    data = open(src, "rb").read()
    shutil.copyfile(src, os.path.join(d, "sentencepiece.bpe.model"))
    pm = spo.parse_model(data)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(spo.tokenizer_json(pm, m["legacy_json"]), f, ensure_ascii=False)
        f.write("\n")
    dump_json(os.path.join(d, "tokenizer_config.json"), xlmr_tokenizer_config(model_max_length))
    dump_json(os.path.join(d, "special_tokens_map.json"), XLMR_SPECIAL_TOKENS_MAP)
    tok = xlmr_tokenizer(m["tok"])
    assert tok.vocab_size == len(pm["pieces"]) + 2
    return tok, pm["normalizer"]["charsmap"]


def model_config(m, tok, arch, extra=None):
    H, L, NH, I, P = m["H"], m["L"], m["NH"], m["I"], m["P"]
    if isinstance(tok, XlmrTokenizer):
        V = tok.vocab_size
    else:
        V = len(load_vocab_txt(os.path.join(TOKDIR, VOCAB_FILES[m["tok"]])))
    dt = DTYPE_NAMES[m["dtype"]]
    if m["kind"] == "mpnet":
        return mpnet_config(V, H, L, NH, I, P, dt)
    if m["kind"] == "xlmr":
        return xlmr_config(arch, V, H, L, NH, I, P, dt, extra)
    c = bert_config(arch, V, H, L, NH, I, "gelu", P, 1e-12, dt)
    if isinstance(tok, XlmrTokenizer):
        # paraphrase-multilingual-MiniLM-L12-v2: BERT weights, pad_token_id 0 in the config
        # (the tokenizer's <pad> is 1; BertModel's positions do not depend on it)
        c["transformers_version"] = "4.7.0"
    c.update(extra or {})
    return dict(sorted(c.items()))


def make_params(m, cfg, rng):
    if m["kind"] == "mpnet":
        return make_mpnet_params(rng, cfg, m.get("pooler", True))
    return make_bert_params(rng, cfg, pooler=m.get("pooler", True))


def hf_check(d, charsmap, tok, texts, pairs, max_length):
    """Compare the sentencepiece + fairseq-offset ids (the expected ids) with what
    the real HF tokenizers library gives for the folder's tokenizer.json; returns
    (status string, {index: hf ids} of the single texts that differ, pair indices that
    differ).  Pairs are compared before truncation."""
    if charsmap is None:
        return "n/a", {}, []
    got = hf_oracle_ids(os.path.join(d, "tokenizer.json"), charsmap, texts, pairs)
    if got is None:
        return "not run (node or @anush008/tokenizers missing)", {}, []
    singles, pair_ids = got
    diff = {}
    for i, t in enumerate(texts):
        want = tok.encode(t)["ids"]
        if singles[i] != want:
            diff[i] = singles[i]
    pdiff = [i for i, (a, b) in enumerate(pairs) if pair_ids[i] != tok.encode(a, b)["ids"]]
    return "run", diff, pdiff


def build_new_model(m, versions):
    """An issue-10 sentence-transformers folder and its expected.jsonl."""
    name = m["name"]
    d = os.path.join(OUT, name)
    os.makedirs(d)
    rng = Rand(m["seed"])
    tok, charsmap = write_tokenizer_files(d, m, 512)
    arch = {"mpnet": "MPNetForMaskedLM", "xlmr": "XLMRobertaModel", "bert": "BertModel"}[m["kind"]]
    cfg = model_config(m, tok, arch)
    dump_json(os.path.join(d, "config.json"), cfg)
    params = make_params(m, cfg, rng)
    stored, Wp = {}, {}
    store_params(params, m["prefix"], m["dtype"], stored, Wp)
    order = [m["prefix"] + k for k in params]
    if m["position_ids"]:
        pid = torch.arange(cfg["max_position_embeddings"], dtype=torch.int64)[None]
        data, _ = tensor_bytes(pid, "I64")
        stored[m["prefix"] + "embeddings.position_ids"] = ("I64", tuple(pid.shape), data, pid)
        order.insert(0, m["prefix"] + "embeddings.position_ids")
    if m.get("lm_head"):
        # MPNetForMaskedLM's head: in the checkpoint, unused by MPNetModel (the decoder
        # weight is tied to the word embeddings and so absent from safetensors)
        V, Hh = cfg["vocab_size"], cfg["hidden_size"]
        lm = {"lm_head.dense.weight": rng.normal((Hh, Hh), 0.2), "lm_head.dense.bias": rng.normal((Hh,), 0.1),
              "lm_head.layer_norm.weight": 1.0 + rng.normal((Hh,), 0.1),
              "lm_head.layer_norm.bias": rng.normal((Hh,), 0.1), "lm_head.bias": rng.normal((V,), 0.1)}
        store_params(lm, "", m["dtype"], stored, {})
        order += list(lm)
    write_weights(d, stored, m["storage"], order)
    W = {k[len(m["prefix"]):]: v for k, v in Wp.items()}

    max_seq = m["max_seq_length"]
    H = m["H"]
    pcfg = pooling_config(H, m["pool"])
    dump_json(os.path.join(d, "sentence_bert_config.json"),
              {"max_seq_length": max_seq, "do_lower_case": False})
    os.makedirs(os.path.join(d, "1_Pooling"))
    dump_json(os.path.join(d, "1_Pooling", "config.json"), pcfg)
    entries = [("Transformer", ""), ("Pooling", "1_Pooling")]
    if m["normalize"]:
        entries.append(("Normalize", m["normalize"]))
    dump_json(os.path.join(d, "modules.json"), modules_json(entries))
    dump_json(os.path.join(d, "config_sentence_transformers.json"),
              {"__version__": {"sentence_transformers": "2.2.2", "transformers": "4.29.0", "pytorch": "1.13.0"},
               "prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"})

    texts = [s.strip() for s in SENTENCES]
    encs = [tok.encode(t, max_length=max_seq) for t in texts]
    pad_id = 1 if isinstance(tok, XlmrTokenizer) or m["kind"] == "mpnet" else 0
    alone = []
    for e in encs:
        ids, types, mask = batch_of([e], pad_id)
        alone.append([s[0] for s in encoder_forward(W, cfg, m["kind"], ids, mask, types)])
    worst = self_check_batching(name, W, cfg, m["kind"], encs, pad_id, alone)
    if m["kind"] == "bert":
        check_against_bert_forward(name, W, cfg, encs, alone)
    hf_status, hf_diff, _ = hf_check(d, charsmap, tok, texts, [], None)

    pipeline = "Transformer(max_seq_length=%d) -> Pooling(%s)%s" % (
        max_seq, "+".join(k[len("pooling_mode_"):] for k in POOL_KEYS if pcfg[k]),
        " -> Normalize" if m["normalize"] else "")
    notes = ("Random weights (seed %d) in the layout of %s (%s, tensor prefix %r, %s, storage %s%s); "
             "reference computed in float32 from exactly the stored values. Pipeline: %s. Input = "
             "str.strip(sentence), tokenized with truncation to max_seq_length counting the specials; "
             "forward of the unpadded sequence (batch of one); the script checked that the same "
             "sentences in one right-padded batch give the same states (max diff %.3g). "
             "hidden_states[0] = embeddings LayerNorm output, then each layer, T*H row-major."
             % (m["seed"], m["like"], cfg["model_type"], m["prefix"], m["dtype"], m["storage"],
                ", with the int64 embeddings.position_ids buffer" if m["position_ids"] else "",
                pipeline, worst))
    if m["kind"] in ("xlmr", "mpnet"):
        notes += (" Position ids: padding_idx + 1 + index among real tokens (padding_idx = "
                  "pad_token_id = 1), as RoBERTa's create_position_ids_from_input_ids.")
    if m["kind"] == "mpnet":
        notes += (" Relative position bias: 32 buckets, max distance 128, bidirectional, from key "
                  "minus query position over the padded length, computed once and added to the "
                  "attention scores of every layer (before the mask).")
    if isinstance(tok, XlmrTokenizer):
        notes += (" Ids: python3-sentencepiece %s on %s with XLMRobertaTokenizer's fairseq offset "
                  "(<s>=0 <pad>=1 </s>=2 <unk>=3, pieces +1, <mask>=%d). tokenizer.json (%s "
                  "converter) checked with the real Hugging Face tokenizers library: %s; sentences where "
                  "it differs carry 'hf_ids'." % (
                      getattr(__import__("sentencepiece"), "__version__", "?"), m["tok"] + ".model",
                      tok.mask_id, "legacy" if m["legacy_json"] else "current", hf_status))
    header = {"magic": "sembed-fixture", "version": 1, "generator": "tools/gen_fixtures.py",
              "torch": versions["torch"], "numpy": versions["numpy"], "python": versions["python"],
              "model": name, "architecture": cfg["architectures"][0], "model_type": cfg["model_type"],
              "like": m["like"], "prompt_name": None, "prompt": None, "prompt_length": None,
              "max_seq_length": max_seq, "num_hidden_layers": m["L"], "hidden_size": H,
              "batch_self_check_max_diff": worst, "hf_tokenizers_check": hf_status, "notes": notes}
    lines = [jsonl_line(header)]
    for i, (s, e) in enumerate(zip(SENTENCES, encs)):
        states = alone[i]
        T = len(e["ids"])
        pooled = st_pool(pcfg, states[-1], torch.ones(T, dtype=torch.float32))
        emb = st_normalize(pooled) if m["normalize"] else pooled
        rec = {"text": s, "ids": e["ids"], "token_type_ids": e["token_type_ids"],
               "tokens": e["tokens"], "truncated": e["truncated"]}
        if i in hf_diff:
            rec["hf_ids"] = hf_diff[i]
        rec["hidden_states"] = [f32list(h) for h in states]
        if m["normalize"]:
            rec["pooled"] = f32list(pooled)
        rec["embedding"] = f32list(emb)
        lines.append(jsonl_line(rec))
    with open(os.path.join(d, "expected.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)
    return max_seq, hf_status, len(hf_diff)


def build_cross_encoder(m, versions):
    """A cross-encoder folder (BertForSequenceClassification or
    XLMRobertaForSequenceClassification) and its expected.jsonl: per pair the ids,
    per-layer states, raw logits and CrossEncoder's activated scores; the header holds
    rank() of CE_QUERY over CE_DOCS."""
    name = m["name"]
    d = os.path.join(OUT, name)
    os.makedirs(d)
    rng = Rand(m["seed"])
    max_len = m["model_max_length"]
    tok, charsmap = write_tokenizer_files(d, m, max_len)
    arch = "BertForSequenceClassification" if m["head"] == "bert" else "XLMRobertaForSequenceClassification"
    extra = labels_config(m["num_labels"])
    if m["head"] == "bert":
        extra["sentence_transformers"] = {"activation_fn": "torch.nn.modules.activation.Sigmoid"
                                          if m["num_labels"] == 1 else
                                          "torch.nn.modules.linear.Identity", "version": "4.0.1"}
    cfg = model_config(m, tok, arch, extra)
    dump_json(os.path.join(d, "config.json"), cfg)
    H, NL = m["H"], m["num_labels"]
    params = make_bert_params(rng, cfg, pooler=(m["head"] == "bert"))
    heads = {}
    if m["head"] == "bert":
        heads["classifier.weight"] = rng.normal((NL, H), 3.0)  # spread scores apart
        heads["classifier.bias"] = rng.normal((NL,), 0.1)
    else:
        heads["classifier.dense.weight"] = rng.normal((H, H), 0.3)
        heads["classifier.dense.bias"] = rng.normal((H,), 0.1)
        heads["classifier.out_proj.weight"] = rng.normal((NL, H), 3.0)
        heads["classifier.out_proj.bias"] = rng.normal((NL,), 0.1)
    stored, Wp = {}, {}
    store_params(params, m["prefix"], m["dtype"], stored, Wp)
    store_params(heads, "", m["dtype"], stored, Wp)
    order = [m["prefix"] + k for k in params] + list(heads)
    if m["position_ids"]:
        pid = torch.arange(cfg["max_position_embeddings"], dtype=torch.int64)[None]
        data, _ = tensor_bytes(pid, "I64")
        stored[m["prefix"] + "embeddings.position_ids"] = ("I64", tuple(pid.shape), data, pid)
        order.insert(0, m["prefix"] + "embeddings.position_ids")
    write_weights(d, stored, m["storage"], order)
    W = {k[len(m["prefix"]):]: v for k, v in Wp.items() if k.startswith(m["prefix"])}
    Wh = {k: v for k, v in Wp.items() if k.startswith("classifier.")}
    if m["head"] == "bert":
        Wh["bert.pooler.dense.weight"] = W["pooler.dense.weight"]
        Wh["bert.pooler.dense.bias"] = W["pooler.dense.bias"]

    pairs = [(CE_QUERY, doc) for doc in CE_DOCS] + CE_EXTRA_PAIRS
    encs = [tok.encode(a, b, max_length=max_len) for a, b in pairs]
    pad_id = 1 if m["kind"] == "xlmr" else 0
    alone, logits = [], []
    for e in encs:
        ids, types, mask = batch_of([e], pad_id)
        st = encoder_forward(W, cfg, m["kind"], ids, mask, types)
        alone.append([s[0] for s in st])
        logits.append(classifier_head(Wh, m["head"], st[-1][:, 0])[0])
    worst = self_check_batching(name, W, cfg, m["kind"], encs, pad_id, alone)
    if m["kind"] == "bert":
        check_against_bert_forward(name, W, cfg, encs, alone)
    ids, types, mask = batch_of(encs, pad_id)
    blog = classifier_head(Wh, m["head"], encoder_forward(W, cfg, m["kind"], ids, mask, types)[-1][:, 0])
    worst = max(worst, (blog - torch.stack(logits)).abs().max().item())
    if worst > 1e-5:
        sys.exit("%s: batched logits differ by %g" % (name, worst))
    hf_status, _, hf_pdiff = hf_check(d, charsmap, tok, [], pairs, max_len)

    def activate(z):
        return torch.sigmoid(z) if NL == 1 else z

    rank = None
    if NL == 1:
        sc = [float(activate(logits[i])[0]) for i in range(len(CE_DOCS))]
        order_ = sorted(range(len(CE_DOCS)), key=lambda i: -sc[i])
        rank = {"query": CE_QUERY, "documents": CE_DOCS, "order": order_,
                "scores": [sc[i] for i in order_],
                "raw_scores": [float(logits[i][0]) for i in order_]}
    notes = ("Random weights (seed %d) in the layout of %s (%s, encoder prefix %r, head %s, %d label%s, "
             "%s, storage %s%s). CrossEncoder tokenizes each (text, text_pair) with truncation "
             "'longest_first' to the tokenizer's model_max_length %d (CrossEncoder max_length unset), "
             "%s. 'logits' are the raw model outputs; 'scores' what CrossEncoder.predict returns by "
             "default: %s; 'softmax' what predict(apply_softmax=True) returns. Header 'rank': "
             "CrossEncoder.rank(query, documents) = documents sorted by score, highest first "
             "(stable for ties). Batch self-check max diff %.3g."
             % (m["seed"], m["like"], arch, m["prefix"],
                "bert.pooler.dense+tanh on [CLS], then classifier" if m["head"] == "bert"
                else "classifier.dense, tanh, classifier.out_proj on <s>",
                NL, "" if NL == 1 else "s", m["dtype"], m["storage"],
                ", with the int64 embeddings.position_ids buffer" if m["position_ids"] else "",
                max_len,
                "[CLS] A [SEP] B [SEP] with token types 0 then 1" if m["head"] == "bert"
                else "<s> A </s></s> B </s>, all token types 0, position ids from padding_idx + 1",
                "sigmoid (one label)" if NL == 1 else "identity (more than one label)", worst))
    if m["kind"] == "xlmr":
        notes += (" Ids: python3-sentencepiece + fairseq offset; the untruncated pairs checked with "
                  "the real HF tokenizers library on tokenizer.json: %s, %d differ." % (hf_status, len(hf_pdiff)))
    header = {"magic": "sembed-fixture", "version": 1, "generator": "tools/gen_fixtures.py",
              "torch": versions["torch"], "numpy": versions["numpy"], "python": versions["python"],
              "model": name, "architecture": arch, "model_type": cfg["model_type"], "like": m["like"],
              "num_labels": NL, "max_length": max_len, "num_hidden_layers": m["L"], "hidden_size": H,
              "activation": "sigmoid" if NL == 1 else "identity", "rank": rank,
              "batch_self_check_max_diff": worst, "hf_tokenizers_check": hf_status, "notes": notes}
    lines = [jsonl_line(header)]
    for i, ((a, b), e) in enumerate(zip(pairs, encs)):
        z = logits[i]
        rec = {"text": a, "text_pair": b, "ids": e["ids"], "token_type_ids": e["token_type_ids"],
               "tokens": e["tokens"], "lengths_before": e["lengths"], "truncated": e["truncated"],
               "hidden_states": [f32list(h) for h in alone[i]], "logits": f32list(z),
               "scores": f32list(activate(z))}
        if NL > 1:
            rec["softmax"] = f32list(torch.softmax(z, dim=0))
        lines.append(jsonl_line(rec))
    with open(os.path.join(d, "expected.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)
    return max_len, hf_status, len(hf_pdiff)


def dir_size(path):
    total = 0
    for dp, _, files in os.walk(path):
        for fn in files:
            total += os.path.getsize(os.path.join(dp, fn))
    return total


def main():
    n_cases, n_extra = verify_tokenizer()
    print("tokenizer verified: %d cases of tokenizer-cases.jsonl (bert+mpnet), "
          "%d of tokenizer-cases-29-models.json" % (n_cases, n_extra))
    for s in SENTENCES:
        assert "\n" not in s and "\r" not in s and "\u2028" not in s and "\u2029" not in s \
            and "\x85" not in s, repr(s)
    versions = {"torch": torch.__version__, "numpy": np.__version__,
                "python": platform.python_version()}
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    with open(os.path.join(OUT, "sentences.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for s in SENTENCES:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    for m in MODELS:
        max_seq = build_model(m, versions)
        print("  %-20s max_seq_length %2d  %8.1f KiB" % (m["name"], max_seq,
                                                          dir_size(os.path.join(OUT, m["name"])) / 1024))
    for m in NEW_MODELS:
        max_seq, hf, nd = build_new_model(m, versions)
        print("  %-20s max_seq_length %2d  %8.1f KiB  HF tokenizers check: %s%s" % (
            m["name"], max_seq, dir_size(os.path.join(OUT, m["name"])) / 1024, hf,
            ", %d sentences differ" % nd if hf == "run" else ""))
    for m in NEW_CROSS:
        max_len, hf, nd = build_cross_encoder(m, versions)
        print("  %-20s max_length     %2d  %8.1f KiB  HF tokenizers check: %s%s" % (
            m["name"], max_len, dir_size(os.path.join(OUT, m["name"])) / 1024, hf,
            ", %d pairs differ" % nd if hf == "run" else ""))
    n_pairs = write_pair_cases()
    with open(os.path.join(OUT, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write(README)
    print("  sentences.jsonl: %d sentences; pair-cases.jsonl: %d cases" % (len(SENTENCES), n_pairs))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gen_bin_twins  # pytorch_model.bin twins of two folders above (test_model_bin_twins)
    gen_bin_twins.main()
    print("total %s: %.2f MiB" % (os.path.relpath(OUT, ROOT), dir_size(OUT) / (1024 * 1024)))


if __name__ == "__main__":
    main()
