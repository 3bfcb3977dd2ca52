#!/usr/bin/python3
"""Writes the random-weight models of the side-by-side benchmark (bench/compare).

Run with Debian's Python (python3-torch, python3-numpy), from anywhere:

    /usr/bin/python3 bench/compare/make_model.py [--shape minilm|bge-base|mpnet-base|all] [--cache DIR]

minilm and bge-base are BertModels; mpnet-base is an MPNetModel in all-mpnet-base-v2's
configuration (see MPNET below: its own vocabulary, RoBERTa positions, the relative position
bias, no token types). For each shape it writes, under DIR/<shape>/ (default DIR:
bench/compare/.work) -- for BERT:

    config.json                  BertModel config (model_type bert, gelu, layer_norm_eps 1e-12)
    model.safetensors            F32, Hugging Face BertModel tensor names (written here, by hand)
    vocab.txt                    the bert-base-uncased vocabulary (tests/fixtures/tokenizers),
                                 30522 lines: [PAD]=0 [UNK]=100 [CLS]=101 [SEP]=102 [MASK]=103
    tokenizer_config.json        BertTokenizer, do_lower_case
    modules.json                 Transformer -> Pooling (mean) -> Normalize
    sentence_bert_config.json    max_seq_length 512
    1_Pooling/config.json        mean pooling
    onnx/model.onnx              the SAME weights as an ONNX graph: BertModel + mean pooling +
                                 L2 normalisation; inputs input_ids, attention_mask,
                                 token_type_ids (int64 [batch, seq]); output
                                 sentence_embedding (float32 [batch, hidden])
    stamp                        what the folder was made from (generator version, shape,
                                 seed, opset, torch version): a folder whose stamp matches is
                                 reused as it is

and for MPNet the same files with all-mpnet-base-v2's config.json (model_type mpnet, 514
positions, layer_norm_eps 1e-5, relative_attention_num_buckets 32), its vocabulary
(tests/fixtures/models/mpnet-mean-norm/vocab.txt: the BERT vocabulary with <s> <pad> </s>
<unk> first and <mask> last, 30527 lines; Apache-2.0, see that folder's README), an
MPNetTokenizer tokenizer_config.json, max_seq_length 384, MPNetModel tensor names, and an ONNX
graph whose inputs are input_ids and attention_mask only.

The real bert-base-uncased vocabulary (which all-MiniLM-L6-v2 and bge-base-en-v1.5 use) is
taken rather than filler words so that the STS-B sentences tokenize to realistic lengths.

No transformers / safetensors / onnx package is used: the BertModel below is written from the
Hugging Face definition (modeling_bert.py), with the padding mask applied as HF applies it
((1 - mask) * finfo(float32).min added to the attention scores), and mean pooling / Normalize
as sentence-transformers' Pooling and Normalize modules compute them. bench_torch.py imports
this module for the PyTorch side of the benchmark, so PyTorch runs exactly this code.
"""

import argparse
import json
import math
import os
import shutil
import struct
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VOCAB_SRC = os.path.join(ROOT, "tests", "fixtures", "tokenizers", "bert-base-uncased", "vocab.txt")
MPNET_VOCAB_SRC = os.path.join(ROOT, "tests", "fixtures", "models", "mpnet-mean-norm", "vocab.txt")
DEFAULT_CACHE = os.path.join(HERE, ".work")

SHAPES = {
    # name: (hidden, layers, heads, ffn)
    "minilm": (384, 6, 12, 1536),  # all-MiniLM-L6-v2
    "bge-base": (768, 12, 12, 3072),  # bge-base-en-v1.5 (bert-base)
    "mpnet-base": (768, 12, 12, 3072),  # all-mpnet-base-v2 (MPNet)
}
ARCH = {"minilm": "bert", "bge-base": "bert", "mpnet-base": "mpnet"}
# the special ids that open and close every single-text encoding
SPECIAL_IDS = {"bert": (101, 102), "mpnet": (0, 2)}
PAD_ID = {"bert": 0, "mpnet": 1}  # what the tokenizer pads a batch with
# all-mpnet-base-v2's config.json values that differ from the BERT shapes'
MPNET = {"vocab": 30527, "n_pos": 514, "max_seq": 384, "eps": 1e-5, "buckets": 32, "max_distance": 128,
         "padding_idx": 1}
VOCAB_SIZE = 30522
N_POS = 512
N_TYPE = 2
MAX_SEQ = 512
LN_EPS = 1e-12
SEED = 20240504
ONNX_OPSET = 14
GENERATOR_VERSION = 1  # the BERT folders' (unchanged since the first version)
MPNET_GENERATOR_VERSION = 1


def log(msg):
    print(f"[make_model] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# BertModel, from Hugging Face's modeling_bert.py (eval mode: no dropout)
# ---------------------------------------------------------------------------


class BertEmbeddings(nn.Module):
    def __init__(self, H):
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB_SIZE, H, padding_idx=0)
        self.position_embeddings = nn.Embedding(N_POS, H)
        self.token_type_embeddings = nn.Embedding(N_TYPE, H)
        self.LayerNorm = nn.LayerNorm(H, eps=LN_EPS)
        self.register_buffer("position_ids", torch.arange(N_POS).expand((1, -1)), persistent=False)

    def forward(self, input_ids, token_type_ids):
        seq_length = input_ids.size(1)
        position_ids = self.position_ids[:, :seq_length]
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.LayerNorm(embeddings)


class BertSelfAttention(nn.Module):
    def __init__(self, H, NH):
        super().__init__()
        self.num_attention_heads = NH
        self.attention_head_size = H // NH
        self.all_head_size = H
        self.query = nn.Linear(H, H)
        self.key = nn.Linear(H, H)
        self.value = nn.Linear(H, H)

    def transpose_for_scores(self, x):
        new_x_shape = x.size()[:-1] + (self.num_attention_heads, self.attention_head_size)
        x = x.view(new_x_shape)
        return x.permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask):
        query_layer = self.transpose_for_scores(self.query(hidden_states))
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        attention_scores = attention_scores / math.sqrt(self.attention_head_size)
        attention_scores = attention_scores + attention_mask
        attention_probs = F.softmax(attention_scores, dim=-1)
        context_layer = torch.matmul(attention_probs, value_layer)
        context_layer = context_layer.permute(0, 2, 1, 3).contiguous()
        new_context_layer_shape = context_layer.size()[:-2] + (self.all_head_size,)
        return context_layer.view(new_context_layer_shape)


class BertSelfOutput(nn.Module):
    def __init__(self, H):
        super().__init__()
        self.dense = nn.Linear(H, H)
        self.LayerNorm = nn.LayerNorm(H, eps=LN_EPS)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dense(hidden_states) + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, H, NH):
        super().__init__()
        self.self = BertSelfAttention(H, NH)
        self.output = BertSelfOutput(H)

    def forward(self, hidden_states, attention_mask):
        return self.output(self.self(hidden_states, attention_mask), hidden_states)


class BertIntermediate(nn.Module):
    def __init__(self, H, FF):
        super().__init__()
        self.dense = nn.Linear(H, FF)

    def forward(self, hidden_states):
        return F.gelu(self.dense(hidden_states))  # hidden_act "gelu": the exact erf form


class BertOutput(nn.Module):
    def __init__(self, H, FF):
        super().__init__()
        self.dense = nn.Linear(FF, H)
        self.LayerNorm = nn.LayerNorm(H, eps=LN_EPS)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dense(hidden_states) + input_tensor)


class BertLayer(nn.Module):
    def __init__(self, H, NH, FF):
        super().__init__()
        self.attention = BertAttention(H, NH)
        self.intermediate = BertIntermediate(H, FF)
        self.output = BertOutput(H, FF)

    def forward(self, hidden_states, attention_mask):
        attention_output = self.attention(hidden_states, attention_mask)
        return self.output(self.intermediate(attention_output), attention_output)


class BertEncoder(nn.Module):
    def __init__(self, H, L, NH, FF):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(H, NH, FF) for _ in range(L)])

    def forward(self, hidden_states, attention_mask):
        for layer_module in self.layer:
            hidden_states = layer_module(hidden_states, attention_mask)
        return hidden_states


class BertPooler(nn.Module):
    """Present in every Hugging Face checkpoint; sentence-transformers does not use it."""

    def __init__(self, H):
        super().__init__()
        self.dense = nn.Linear(H, H)


class BertModel(nn.Module):
    def __init__(self, H, L, NH, FF):
        super().__init__()
        self.embeddings = BertEmbeddings(H)
        self.encoder = BertEncoder(H, L, NH, FF)
        self.pooler = BertPooler(H)

    def forward(self, input_ids, attention_mask, token_type_ids):
        # get_extended_attention_mask: [B, T] -> [B, 1, 1, T], 0 where attended, finfo.min where padded
        extended = attention_mask[:, None, None, :].to(dtype=torch.float32)
        extended = (1.0 - extended) * torch.finfo(torch.float32).min
        embedding_output = self.embeddings(input_ids, token_type_ids)
        return self.encoder(embedding_output, extended)  # last_hidden_state


# ---------------------------------------------------------------------------
# MPNetModel, from Hugging Face's modeling_mpnet.py (eval mode: no dropout)
# ---------------------------------------------------------------------------


def create_position_ids_from_input_ids(input_ids, padding_idx):
    """RoBERTa/MPNet positions: padding_idx + 1 + index among the non-padding tokens;
    padding tokens get padding_idx."""
    mask = input_ids.ne(padding_idx).int()
    incremental_indices = torch.cumsum(mask, dim=1).type_as(mask) * mask
    return incremental_indices.long() + padding_idx


class MPNetEmbeddings(nn.Module):
    def __init__(self, H):
        super().__init__()
        self.padding_idx = MPNET["padding_idx"]  # hard-coded in MPNetEmbeddings
        self.word_embeddings = nn.Embedding(MPNET["vocab"], H, padding_idx=self.padding_idx)
        self.position_embeddings = nn.Embedding(MPNET["n_pos"], H, padding_idx=self.padding_idx)
        self.LayerNorm = nn.LayerNorm(H, eps=MPNET["eps"])

    def forward(self, input_ids):
        position_ids = create_position_ids_from_input_ids(input_ids, self.padding_idx)
        embeddings = self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
        return self.LayerNorm(embeddings)


class MPNetSelfAttention(nn.Module):
    def __init__(self, H, NH):
        super().__init__()
        self.num_attention_heads = NH
        self.attention_head_size = H // NH
        self.all_head_size = H
        self.q = nn.Linear(H, H)
        self.k = nn.Linear(H, H)
        self.v = nn.Linear(H, H)
        self.o = nn.Linear(H, H)

    def transpose_for_scores(self, x):
        new_x_shape = x.size()[:-1] + (self.num_attention_heads, self.attention_head_size)
        return x.view(*new_x_shape).permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask, position_bias):
        q = self.transpose_for_scores(self.q(hidden_states))
        k = self.transpose_for_scores(self.k(hidden_states))
        v = self.transpose_for_scores(self.v(hidden_states))
        attention_scores = torch.matmul(q, k.transpose(-1, -2))
        attention_scores = attention_scores / math.sqrt(self.attention_head_size)
        attention_scores += position_bias
        attention_scores = attention_scores + attention_mask
        attention_probs = F.softmax(attention_scores, dim=-1)
        c = torch.matmul(attention_probs, v)
        c = c.permute(0, 2, 1, 3).contiguous()
        c = c.view(*c.size()[:-2], self.all_head_size)
        return self.o(c)


class MPNetAttention(nn.Module):
    def __init__(self, H, NH):
        super().__init__()
        self.attn = MPNetSelfAttention(H, NH)
        self.LayerNorm = nn.LayerNorm(H, eps=MPNET["eps"])

    def forward(self, hidden_states, attention_mask, position_bias):
        return self.LayerNorm(self.attn(hidden_states, attention_mask, position_bias) + hidden_states)


class MPNetIntermediate(nn.Module):
    def __init__(self, H, FF):
        super().__init__()
        self.dense = nn.Linear(H, FF)

    def forward(self, hidden_states):
        return F.gelu(self.dense(hidden_states))


class MPNetOutput(nn.Module):
    def __init__(self, H, FF):
        super().__init__()
        self.dense = nn.Linear(FF, H)
        self.LayerNorm = nn.LayerNorm(H, eps=MPNET["eps"])

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dense(hidden_states) + input_tensor)


class MPNetLayer(nn.Module):
    def __init__(self, H, NH, FF):
        super().__init__()
        self.attention = MPNetAttention(H, NH)
        self.intermediate = MPNetIntermediate(H, FF)
        self.output = MPNetOutput(H, FF)

    def forward(self, hidden_states, attention_mask, position_bias):
        attention_output = self.attention(hidden_states, attention_mask, position_bias)
        return self.output(self.intermediate(attention_output), attention_output)


class MPNetEncoder(nn.Module):
    def __init__(self, H, L, NH, FF):
        super().__init__()
        self.n_heads = NH
        self.layer = nn.ModuleList([MPNetLayer(H, NH, FF) for _ in range(L)])
        self.relative_attention_bias = nn.Embedding(MPNET["buckets"], NH)

    def forward(self, hidden_states, attention_mask):
        position_bias = self.compute_position_bias(hidden_states)  # once, shared by every layer
        for layer_module in self.layer:
            hidden_states = layer_module(hidden_states, attention_mask, position_bias)
        return hidden_states

    def compute_position_bias(self, x, num_buckets=32):
        bsz, qlen, klen = x.size(0), x.size(1), x.size(1)
        context_position = torch.arange(qlen, dtype=torch.long)[:, None]
        memory_position = torch.arange(klen, dtype=torch.long)[None, :]
        relative_position = memory_position - context_position
        rp_bucket = self.relative_position_bucket(relative_position, num_buckets=num_buckets)
        values = self.relative_attention_bias(rp_bucket)
        values = values.permute([2, 0, 1]).unsqueeze(0)
        return values.expand((bsz, -1, qlen, klen)).contiguous()

    @staticmethod
    def relative_position_bucket(relative_position, num_buckets=32, max_distance=128):
        ret = 0
        n = -relative_position
        num_buckets //= 2
        ret += (n < 0).to(torch.long) * num_buckets
        n = torch.abs(n)
        max_exact = num_buckets // 2
        is_small = n < max_exact
        val_if_large = max_exact + (
            torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
        ).to(torch.long)
        val_if_large = torch.min(val_if_large, torch.full_like(val_if_large, num_buckets - 1))
        ret += torch.where(is_small, n, val_if_large)
        return ret


class MPNetPooler(nn.Module):
    """Present in all-mpnet-base-v2's checkpoint; sentence-transformers does not use it."""

    def __init__(self, H):
        super().__init__()
        self.dense = nn.Linear(H, H)


class MPNetModel(nn.Module):
    def __init__(self, H, L, NH, FF):
        super().__init__()
        self.embeddings = MPNetEmbeddings(H)
        self.encoder = MPNetEncoder(H, L, NH, FF)
        self.pooler = MPNetPooler(H)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        extended = attention_mask[:, None, None, :].to(dtype=torch.float32)
        extended = (1.0 - extended) * torch.finfo(torch.float32).min
        return self.encoder(self.embeddings(input_ids), extended)  # last_hidden_state (no token types)


class SentenceEncoder(nn.Module):
    """sentence-transformers' Transformer -> Pooling(mean) -> Normalize."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        token_embeddings = self.bert(input_ids, attention_mask, token_type_ids)
        input_mask_expanded = attention_mask.unsqueeze(-1).expand(token_embeddings.size()).to(token_embeddings.dtype)
        sum_embeddings = torch.sum(token_embeddings * input_mask_expanded, 1)
        sum_mask = torch.clamp(input_mask_expanded.sum(1), min=1e-9)
        return F.normalize(sum_embeddings / sum_mask, p=2, dim=1)


# ---------------------------------------------------------------------------
# safetensors, by hand
# ---------------------------------------------------------------------------


def write_safetensors(path, tensors):
    """tensors: list of (name, float32 numpy array). 8-byte LE header length, JSON header
    padded with spaces to a multiple of 8, then the data, in order."""
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, a in tensors:
        assert a.dtype == np.float32 and a.flags["C_CONTIGUOUS"]
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((-len(hb)) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for _, a in tensors:
            f.write(a.astype("<f4", copy=False).tobytes())
    os.replace(tmp, path)


def read_safetensors(path):
    """Returns {name: torch.Tensor} of an F32 safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: {name}: dtype {info['dtype']}, expected F32")
        b, e = info["data_offsets"]
        a = np.frombuffer(data, dtype="<f4", count=(e - b) // 4, offset=b).reshape(info["shape"])
        out[name] = torch.from_numpy(a.copy())
    return out


# ---------------------------------------------------------------------------
# Model folders
# ---------------------------------------------------------------------------


def build_model(shape):
    H, L, NH, FF = SHAPES[shape]
    return SentenceEncoder((MPNetModel if ARCH[shape] == "mpnet" else BertModel)(H, L, NH, FF))


def init_weights(enc, seed):
    """HF-like random init (normal, std 0.02), but with non-trivial biases and LayerNorm
    parameters so that every tensor matters to the agreement check."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in enc.bert.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif "relative_attention_bias" in name:  # trained values are O(1): let the bias matter
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))


def load_model(folder, shape):
    """The SentenceEncoder of a written folder, weights read back from model.safetensors."""
    enc = build_model(shape)
    state = read_safetensors(os.path.join(folder, "model.safetensors"))
    missing, unexpected = enc.bert.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{folder}: missing tensors {missing}, unexpected {unexpected}")
    enc.eval()
    return enc


def stamp_of(shape):
    """What the folder's content depends on; bump GENERATOR_VERSION when the output changes."""
    stamp = {"generator": GENERATOR_VERSION, "shape": shape, "dims": SHAPES[shape], "seed": SEED,
             "opset": ONNX_OPSET, "torch": torch.__version__}
    if ARCH[shape] != "bert":
        stamp.update(arch=ARCH[shape], arch_generator=MPNET_GENERATOR_VERSION)
    return json.dumps(stamp, sort_keys=True)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_folder(shape, cache):
    H, L, NH, FF = SHAPES[shape]
    final = os.path.join(cache, shape)
    stamp = stamp_of(shape)
    try:
        with open(os.path.join(final, "stamp")) as f:
            if f.read().strip() == stamp:
                log(f"{shape}: up to date in {final}")
                return final
    except OSError:
        pass
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "1_Pooling"))
    os.makedirs(os.path.join(tmp, "2_Normalize"))  # as sentence-transformers saves it (empty)
    os.makedirs(os.path.join(tmp, "onnx"))
    log(f"{shape}: H={H} L={L} heads={NH} FF={FF}: writing {final}")

    mpnet = ARCH[shape] == "mpnet"
    if mpnet:
        write_mpnet_files(tmp, H, L, NH, FF)
    else:
        write_bert_files(tmp, H, L, NH, FF)
    write_json(os.path.join(tmp, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    write_json(os.path.join(tmp, "sentence_bert_config.json"),
               {"max_seq_length": MPNET["max_seq"] if mpnet else MAX_SEQ, "do_lower_case": False})
    write_json(os.path.join(tmp, "1_Pooling", "config.json"), {
        "word_embedding_dimension": H,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    })

    torch.manual_seed(SEED)
    enc = build_model(shape)
    init_weights(enc, SEED + {"minilm": 0, "bge-base": 1}.get(shape, 2))
    enc.eval()
    tensors = [(name, p.detach().contiguous().numpy()) for name, p in enc.bert.named_parameters()]
    write_safetensors(os.path.join(tmp, "model.safetensors"), tensors)
    n_params = sum(a.size for _, a in tensors)
    log(f"{shape}: {n_params / 1e6:.1f}M parameters written to model.safetensors")

    # Export what the folder holds, read back, so that ONNX gets exactly the file's weights.
    enc = load_model(tmp, shape)
    if mpnet:  # <s> hello world </s> <pad> <pad>; <s> this is a test </s>
        ids = torch.tensor([[0, 7596, 2092, 2, 1, 1], [0, 2027, 2007, 1041, 3235, 2]], dtype=torch.int64)
        mask = (ids != 1).to(torch.int64)
        args, names = (ids, mask), ["input_ids", "attention_mask"]
    else:
        ids = torch.tensor([[101, 7592, 2088, 102, 0, 0], [101, 2023, 2003, 1037, 3231, 102]], dtype=torch.int64)
        mask = (ids != 0).to(torch.int64)
        args, names = (ids, mask, torch.zeros_like(ids)), ["input_ids", "attention_mask", "token_type_ids"]
    onnx_path = os.path.join(tmp, "onnx", "model.onnx")
    dyn = {n: {0: "batch", 1: "seq"} for n in names}
    dyn["sentence_embedding"] = {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 1.13's "shape inference of prim::Constant" notices
        torch.onnx.export(enc, args, onnx_path, input_names=names, output_names=["sentence_embedding"],
                          dynamic_axes=dyn, opset_version=ONNX_OPSET, do_constant_folding=True)
    log(f"{shape}: exported onnx/model.onnx (opset {ONNX_OPSET}, {os.path.getsize(onnx_path) / 2**20:.0f} MiB)")
    with open(os.path.join(tmp, "stamp"), "w") as f:
        f.write(stamp + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def write_bert_files(tmp, H, L, NH, FF):
    """config.json, tokenizer_config.json and vocab.txt of a BERT shape."""
    write_json(os.path.join(tmp, "config.json"), {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": VOCAB_SIZE,
        "hidden_size": H,
        "num_hidden_layers": L,
        "num_attention_heads": NH,
        "intermediate_size": FF,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": N_POS,
        "type_vocab_size": N_TYPE,
        "initializer_range": 0.02,
        "layer_norm_eps": LN_EPS,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    })
    write_json(os.path.join(tmp, "tokenizer_config.json"), {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "model_max_length": MAX_SEQ,
        "pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    })
    with open(VOCAB_SRC, encoding="utf-8") as f:
        vocab = f.read().split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    expect = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"}
    if len(vocab) != VOCAB_SIZE or any(vocab[i] != t for i, t in expect.items()):
        raise SystemExit(f"{VOCAB_SRC}: not the 30522-token bert-base-uncased vocabulary")
    with open(os.path.join(tmp, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")


def write_mpnet_files(tmp, H, L, NH, FF):
    """config.json (all-mpnet-base-v2's, every field), tokenizer_config.json
    (MPNetTokenizer) and vocab.txt of the MPNet shape."""
    write_json(os.path.join(tmp, "config.json"), {
        "_name_or_path": "microsoft/mpnet-base",
        "architectures": ["MPNetForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": H,
        "initializer_range": 0.02,
        "intermediate_size": FF,
        "layer_norm_eps": MPNET["eps"],
        "max_position_embeddings": MPNET["n_pos"],
        "model_type": "mpnet",
        "num_attention_heads": NH,
        "num_hidden_layers": L,
        "pad_token_id": MPNET["padding_idx"],
        "relative_attention_num_buckets": MPNET["buckets"],
        "torch_dtype": "float32",
        "transformers_version": "4.8.2",
        "vocab_size": MPNET["vocab"],
    })
    write_json(os.path.join(tmp, "tokenizer_config.json"), {
        "tokenizer_class": "MPNetTokenizer",
        "do_lower_case": True,
        "model_max_length": 512,
        "bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>",
        "pad_token": "<pad>", "unk_token": "[UNK]", "mask_token": "<mask>",
        "tokenize_chinese_chars": True, "strip_accents": None,
    })
    with open(MPNET_VOCAB_SRC, encoding="utf-8") as f:
        vocab = f.read().split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    expect = {0: "<s>", 1: "<pad>", 2: "</s>", 3: "<unk>", 104: "[UNK]", MPNET["vocab"] - 1: "<mask>"}
    if len(vocab) != MPNET["vocab"] or any(vocab[i] != t for i, t in expect.items()):
        raise SystemExit(f"{MPNET_VOCAB_SRC}: not all-mpnet-base-v2's 30527-token vocabulary")
    with open(os.path.join(tmp, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="all", choices=sorted(SHAPES) + ["all"])
    ap.add_argument("--cache", default=DEFAULT_CACHE)
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(args.cache, exist_ok=True)
    for shape in (sorted(SHAPES, key=lambda s: SHAPES[s][0]) if args.shape == "all" else [args.shape]):
        print(write_folder(shape, args.cache))


if __name__ == "__main__":
    main()
