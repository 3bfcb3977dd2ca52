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

## Licence

The vocabularies (`vocab.txt`) and `tokenizer.json` files are copies of the published
files of Google's BERT models (bert-base-uncased, bert-base-chinese) as distributed on the
Hugging Face hub (sentence-transformers/all-MiniLM-L6-v2's tokenizer.json), licensed
Apache-2.0.  Everything else here is generated by `tools/gen_fixtures.py`.
"""


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
    n_pairs = write_pair_cases()
    with open(os.path.join(OUT, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write(README)
    print("  sentences.jsonl: %d sentences; pair-cases.jsonl: %d cases" % (len(SENTENCES), n_pairs))
    print("total %s: %.2f MiB" % (os.path.relpath(OUT, ROOT), dir_size(OUT) / (1024 * 1024)))


if __name__ == "__main__":
    main()
