#!/usr/bin/python3
"""train_grad_ref.py - the PyTorch reference for sembed's backward pass (issue 15).

An independent implementation, written from the math of BERT and of
sentence-transformers' modules and losses (not from sembed's C), in float64
with torch.autograd: for tiny random model folders of tests/fixtures/models
and a fixed batch of token ids (no tokenizer in the way), it writes the loss
and every parameter's gradient to

    tests/fixtures/train/cases.json          the cases: model, batch, loss, loss value
    tests/fixtures/train/grads.safetensors.gz the gradients (F32), gzipped safetensors

which tests/test_train_grad.c checks sembed against. Run from the project root
with Debian's Python (python3-torch, numpy):

    /usr/bin/python3 tools/train_grad_ref.py

Cases:
  enc-<model>   the objective sum(embeddings * R), R a fixed random (S, dim)
                matrix: the gradient w.r.t. the embeddings is R, so the check
                covers the encoder, pooling and modules alone; one per model
                folder (mean / CLS / max / all six poolings, Dense, Normalize,
                gelu / gelu_new / relu, F32 / F16 / BF16 storage; BERT, XLM-R
                with RoBERTa's positions and a literal pad token, MPNet with
                its relative position bias)
  optim-adamw   three optimiser steps (MNRL, clip_grad_norm_, torch.optim.AdamW with no
                weight decay for biases and LayerNorm, Hugging Face's linear warm-up and
                decay) from en-plain-hf's weights: each step's loss, gradient norm and
                learning rate, and the parameters after the last step
  loss-<name>   a loss of sentence-transformers on en-plain-hf's embeddings
                of B examples of its columns: MNRL (hard negatives), the
                symmetric MNRL, CoSENT, CosineSimilarity, Triplet, MSE, and
                Matryoshka over MNRL and over MSE

The word embedding's gradient is stored for the rows the batch uses only (the
others are zero; the test checks that too). The output is deterministic:
rerunning gives the same bytes.
"""
import gzip
import json
import math
import os
import struct
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures", "models")
OUT = os.path.join(ROOT, "tests", "fixtures", "train")
DT = torch.float64


# ---- reading a model folder ---------------------------------------------------------------

def read_safetensors(path):
    """Every tensor of a safetensors file as a float64 torch tensor (F32, F16, BF16)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        buf = data[a:b]
        if t["dtype"] == "F32":
            v = np.frombuffer(buf, dtype="<f4").astype(np.float64)
        elif t["dtype"] == "F16":
            v = np.frombuffer(buf, dtype="<f2").astype(np.float64)
        elif t["dtype"] == "BF16":
            u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            v = u.view(np.float32).astype(np.float64)
        else:
            continue  # position_ids (I64) and the like
        out[name] = torch.tensor(v.reshape(t["shape"]), dtype=DT)
    return out


def read_checkpoint(d):
    """The transformer's tensors, names without the "bert." / "roberta." / "mpnet." prefix."""
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        files = sorted(set(json.load(open(idx))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    w = {}
    for f in files:
        for k, v in read_safetensors(os.path.join(d, f)).items():
            for pre in ("bert.", "roberta.", "mpnet."):
                if k.startswith(pre):
                    k = k[len(pre):]
            w[k] = v
    return w


def sublayers(cfg):
    """An encoder layer's modules: q, k, v, attention output, its LayerNorm, FFN in, out, LayerNorm."""
    if cfg["model_type"] == "mpnet":
        return ["attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o",
                "attention.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"]
    return ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
            "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"]


def rel_bucket(rel, num_buckets=32, max_distance=128):
    """MPNet's relative_position_bucket of rel = key position - query position (a long tensor),
    in float32 as torch computes it."""
    n = -rel
    half = num_buckets // 2
    ret = (n < 0).long() * half
    n = n.abs()
    exact = half // 2
    large = exact + (torch.log(n.float() / exact) / math.log(max_distance / exact) * (half - exact)).long()
    large = torch.clamp(large, max=half - 1)
    return ret + torch.where(n < exact, n, large)


def load_model(name):
    """A model folder: config, parameters (dict name -> leaf tensor), pooling and modules."""
    d = os.path.join(FIX, name)
    cfg = json.load(open(os.path.join(d, "config.json")))
    ck = read_checkpoint(d)
    L = cfg["num_hidden_layers"]
    names = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
             "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"]
    for i in range(L):
        for s in sublayers(cfg):
            names += ["encoder.layer.%d.%s.weight" % (i, s), "encoder.layer.%d.%s.bias" % (i, s)]
    if cfg["model_type"] == "mpnet":
        names.append("encoder.relative_attention_bias.weight")
    params = {}
    for n in names:
        if n in ck:  # token types are optional
            params[n] = ck[n].clone().requires_grad_(True)
    pooling = ["mean_tokens"]  # no modules.json: sentence-transformers pools the mean
    include_prompt = True
    modules = []  # ("dense", prefix, act, has_bias) or ("normalize",)
    mj = os.path.join(d, "modules.json")
    if os.path.exists(mj):
        for m in json.load(open(mj)):
            t = m["type"].rsplit(".", 1)[-1]
            p = os.path.join(d, m["path"])
            if t == "Pooling":
                pc = json.load(open(os.path.join(p, "config.json")))
                pooling = [k for k in ["cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens",
                                       "weightedmean_tokens", "lasttoken"] if pc.get("pooling_mode_" + k)]
                include_prompt = pc.get("include_prompt", True)
            elif t == "Dense":
                dc = json.load(open(os.path.join(p, "config.json")))
                dw = read_safetensors(os.path.join(p, "model.safetensors"))
                pre = m["path"] + "/linear."
                params[pre + "weight"] = dw["linear.weight"].clone().requires_grad_(True)
                if dc.get("bias", True):
                    params[pre + "bias"] = dw["linear.bias"].clone().requires_grad_(True)
                modules.append(("dense", pre, dc["activation_function"].rsplit(".", 1)[-1], dc.get("bias", True)))
            elif t == "Normalize":
                modules.append(("normalize",))
    return dict(cfg=cfg, params=params, pooling=pooling, include_prompt=include_prompt, modules=modules)


# ---- the encoder, from the math ------------------------------------------------------------

def act_fn(name):
    if name == "gelu":
        return lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "relu":
        return lambda x: torch.clamp(x, min=0.0)
    raise SystemExit("unknown activation " + name)


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * g + b


def drop_u24(key, site, e):
    """sembed's dropout draw (src/train/train_kernels.h): splitmix64's finaliser of
    key ^ (site << 48) ^ e, its top 24 bits; e an array of element indices."""
    with np.errstate(over="ignore"):
        z = (np.uint64(key) ^ (np.uint64(site) << np.uint64(48)) ^ e.astype(np.uint64)) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.int64)


def drop_mask(drop, site, base, shape, p):
    """The inverted-dropout factors (0 or 1 / (1 - p), p as float32) of elements base .. base + size."""
    if drop is None or p <= 0:
        return 1.0
    p32 = float(np.float32(p))
    thr = int(p32 * 16777216.0)
    n = int(np.prod(shape))
    u = drop_u24(drop["key"], site, np.arange(base, base + n, dtype=np.uint64))
    inv = float(np.float32(1.0) / (np.float32(1.0) - np.float32(p32)))
    return torch.tensor(np.where(u < thr, 0.0, inv).reshape(shape), dtype=DT)


def encode_one(M, ids, first, types=None, drop=None):
    """One sentence (a list of token ids, no padding; token types, default all 0) -> its embedding.
    drop: None, or training-mode dropout as sembed draws it: {"key", "t0" (the sentence's first token in
    the packed batch), "att0" (its first attention weight in the tape's layout)}."""
    c, P = M["cfg"], M["params"]
    ph, pa = c.get("hidden_dropout_prob", 0.1), c.get("attention_probs_dropout_prob", 0.1)
    H, NH = c["hidden_size"], c["num_attention_heads"]
    eps = c.get("layer_norm_eps", 1e-12)
    act = act_fn(c.get("hidden_act", "gelu"))
    T = len(ids)
    idx = torch.tensor(ids, dtype=torch.long)
    if c["model_type"] in ("xlm-roberta", "mpnet"):  # RoBERTa's positions: padding_idx + cumsum of the non-pad mask
        pad = 1 if c["model_type"] == "mpnet" else c["pad_token_id"]  # MPNetEmbeddings hard-codes 1
        keep = (idx != pad).long()
        pos = torch.cumsum(keep, 0) * keep + pad
    else:
        pos = torch.arange(T)
    x = P["embeddings.word_embeddings.weight"][idx] + P["embeddings.position_embeddings.weight"][pos]
    if "embeddings.token_type_embeddings.weight" in P:
        x = x + P["embeddings.token_type_embeddings.weight"][torch.tensor(types or [0] * T, dtype=torch.long)]
    x = layer_norm(x, P["embeddings.LayerNorm.weight"], P["embeddings.LayerNorm.bias"], eps)
    t0 = drop["t0"] * H if drop else 0
    x = x * drop_mask(drop, 0, t0, (T, H), ph)
    HD = H // NH
    bias = 0.0
    if c["model_type"] == "mpnet":  # (NH, T, T): the bias of bucket(key - query), every layer
        ar = torch.arange(T)
        bias = P["encoder.relative_attention_bias.weight"][rel_bucket(ar[None, :] - ar[:, None])].permute(2, 0, 1)
    sq, sk, sv, so, sln1, sff1, sff2, sln2 = sublayers(c)
    for i in range(c["num_hidden_layers"]):
        p = lambda s: P["encoder.layer.%d.%s" % (i, s)]
        lin = lambda v, s: v @ p(s + ".weight").T + p(s + ".bias")
        q = lin(x, sq).view(T, NH, HD).transpose(0, 1)
        k = lin(x, sk).view(T, NH, HD).transpose(0, 1)
        v = lin(x, sv).view(T, NH, HD).transpose(0, 1)
        w = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(HD) + bias, dim=-1)
        a = (w * drop_mask(drop, 1 + 3 * i, drop["att0"] if drop else 0, (NH, T, T), pa)) @ v
        a = a.transpose(0, 1).reshape(T, H)
        x = layer_norm(lin(a, so) * drop_mask(drop, 2 + 3 * i, t0, (T, H), ph) + x, p(sln1 + ".weight"),
                       p(sln1 + ".bias"), eps)
        f = lin(act(lin(x, sff1)), sff2)
        x = layer_norm(f * drop_mask(drop, 3 + 3 * i, t0, (T, H), ph) + x, p(sln2 + ".weight"),
                       p(sln2 + ".bias"), eps)
    # Pooling (sentence-transformers' Pooling.forward; tokens before `first` masked)
    mask = torch.zeros(T, 1, dtype=DT)
    mask[first:] = 1.0
    cnt = mask.sum()
    outs = []
    for mode in M["pooling"]:
        if mode == "cls_token":
            outs.append(x[0])
        elif mode == "max_tokens":
            outs.append(torch.where(mask > 0, x, torch.full_like(x, -1e9)).max(0)[0])
        elif mode == "mean_tokens":
            outs.append((x * mask).sum(0) / torch.clamp(cnt, min=1e-9))
        elif mode == "mean_sqrt_len_tokens":
            outs.append((x * mask).sum(0) / torch.sqrt(torch.clamp(cnt, min=1e-9)))
        elif mode == "weightedmean_tokens":
            w = mask * torch.arange(1, T + 1, dtype=DT).unsqueeze(1)
            outs.append((x * w).sum(0) / torch.clamp(w.sum(), min=1e-9))
        elif mode == "lasttoken":
            outs.append(x[T - 1] if cnt > 0 else torch.zeros(H, dtype=DT))
    e = torch.cat(outs)
    for m in M["modules"]:
        if m[0] == "dense":
            e = e @ P[m[1] + "weight"].T + (P[m[1] + "bias"] if m[3] else 0.0)
            e = {"Tanh": torch.tanh, "Identity": lambda z: z, "ReLU": torch.relu,
                 "Sigmoid": torch.sigmoid}[m[2]](e)
        else:
            e = e / torch.clamp(e.norm(), min=1e-12)
    return e


def encode(M, batch, firsts, types=None, key=None):
    """A batch; key not None: training-mode dropout under that key (sembed's layout of the packed batch)."""
    out, t0, att0, NH = [], 0, 0, M["cfg"]["num_attention_heads"]
    for s, f, t in zip(batch, firsts, types or [None] * len(batch)):
        drop = None if key is None else {"key": key, "t0": t0, "att0": att0}
        out.append(encode_one(M, s, f, t, drop))
        t0 += len(s)
        att0 += NH * len(s) * len(s)
    return torch.stack(out)


# ---- the losses, as sentence-transformers defines them -------------------------------------

def cos_sim(a, b):
    an = a / torch.clamp(a.norm(dim=1, keepdim=True), min=1e-12)
    bn = b / torch.clamp(b.norm(dim=1, keepdim=True), min=1e-12)
    return an @ bn.T


def pairwise_cos(a, b):
    an = a / torch.clamp(a.norm(dim=1, keepdim=True), min=1e-12)
    bn = b / torch.clamp(b.norm(dim=1, keepdim=True), min=1e-12)
    return (an * bn).sum(-1)


def loss_fn(kind, cols, labels, teacher, scale=20.0, margin=5.0):
    B = cols[0].shape[0]
    ce = torch.nn.functional.cross_entropy
    if kind == "mnrl":
        s = cos_sim(cols[0], torch.cat(cols[1:])) * scale
        return ce(s, torch.arange(B))
    if kind == "mnrl_sym":
        s = cos_sim(cols[0], torch.cat(cols[1:])) * scale
        return (ce(s, torch.arange(B)) + ce(s[:, :B].T, torch.arange(B))) / 2
    if kind == "cosent":
        s = pairwise_cos(cols[0], cols[1]) * scale
        s = s[:, None] - s[None, :]
        lab = (labels[:, None] < labels[None, :]).to(DT)
        s = s - (1 - lab) * 1e12
        return torch.logsumexp(torch.cat([torch.zeros(1, dtype=DT), s.view(-1)]), dim=0)
    if kind == "cosine":
        return ((pairwise_cos(cols[0], cols[1]) - labels) ** 2).mean()
    if kind == "triplet":
        d = lambda a, b: (a - b + 1e-6).norm(dim=1)  # F.pairwise_distance
        return torch.relu(d(cols[0], cols[1]) - d(cols[0], cols[2]) + margin).mean()
    if kind == "mse":
        e = torch.cat(cols)
        t = teacher[:, :e.shape[1]].repeat(len(cols), 1)
        return ((e - t) ** 2).mean()
    raise SystemExit(kind)


# ---- the cases ----------------------------------------------------------------------------

def batch_ids(g, V, lengths):
    return [torch.randint(0, V, (n,), generator=g).tolist() for n in lengths]


def grads_of(M, used):
    """Gradients, the word embedding's restricted to the rows used (sorted)."""
    out = {}
    for n, p in M["params"].items():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        if n == "embeddings.word_embeddings.weight":
            g = g[torch.tensor(used, dtype=torch.long)]
        out[n] = g.detach().to(torch.float32).numpy()
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(15)
    cases, tensors = [], {}

    # encoder cases: sum(emb * R)
    enc = [("en-mean-norm", [5, 9, 3, 12, 1], None),
           ("en-plain-hf-dropout", [7, 4, 11, 6], None),
           ("mpnet-mean-norm-dropout", [8, 13, 5], None),
           ("zh-cls-dense-f16", [7, 2, 11, 5], None),
           ("en-max-relu-bf16", [6, 10, 4, 8], None),
           ("en-allpool-prompt", [6, 9, 4, 7], [0, 2, 1, 3]),
           ("en-plain-hf", [8, 3, 13, 6], None),
           ("xlmr-mean-norm-bf16", [6, 11, 3, 9], None),
           ("mpnet-mean-norm", [5, 14, 2, 20], None),
           ("mpnet-prefix-max-f16", [9, 4, 16], None)]
    for name, lengths, firsts in enc:
        key = None
        if name.endswith("-dropout"):  # training mode: dropout under a fixed key
            name, key = name[:-len("-dropout")], 0x5EED0000 + len(cases)
        M = load_model(name)
        V = M["cfg"]["vocab_size"]
        ids = batch_ids(g, V, lengths)
        if M["cfg"]["model_type"] in ("xlm-roberta", "mpnet"):
            ids[1][2] = 1  # a literal pad token (padding_idx 1 in these): position padding_idx
        fs = firsts or [0] * len(ids)
        # en-mean-norm: the second half of each sentence is token type 1 (a pair's second text)
        types = [[int(i >= len(s) // 2) for i in range(len(s))] for s in ids] \
            if name == "en-mean-norm" and key is None else None
        e = encode(M, ids, fs, types, key)
        R = torch.randn(e.shape, generator=g, dtype=DT).to(torch.float32).to(DT)  # exact in the fixture's F32
        obj = (e * R).sum()
        obj.backward()
        used = sorted(set(t for s in ids for t in s))
        cid = "enc-" + name + ("-dropout" if key is not None else "")
        cases.append(dict(id=cid, model=name, kind="encoder", ids=ids, types=types, first=firsts, dim=e.shape[1],
                          loss=obj.item(), word_rows=used, dropout_key=key))
        tensors[cid + "/d_emb"] = R.to(torch.float32).numpy()
        tensors[cid + "/emb"] = e.detach().to(torch.float32).numpy()
        for n, v in grads_of(M, used).items():
            tensors[cid + "/" + n] = v

    # loss cases on en-plain-hf: B examples, columns one after another
    B = 4
    losses = [("mnrl", "mnrl", 3, None), ("mnrl_sym", "mnrl_sym", 3, None), ("cosent", "cosent", 2, None),
              ("cosine", "cosine", 2, None), ("triplet", "triplet", 3, None), ("mse", "mse", 2, None),
              ("matryoshka-mnrl", "mnrl", 2, ([16, 8, 4], [1.0, 0.5, 0.25])),
              ("matryoshka-mse", "mse", 1, ([16, 6], [1.0, 2.0]))]
    for cid, kind, n_cols, mat in losses:
        M = load_model("en-plain-hf")
        V = M["cfg"]["vocab_size"]
        lengths = torch.randint(2, 10, (B * n_cols,), generator=g).tolist()
        ids = batch_ids(g, V, lengths)
        e = encode(M, ids, [0] * len(ids))
        dim = e.shape[1]
        cols = [e[c * B:(c + 1) * B] for c in range(n_cols)]
        labels = torch.tensor([0.1, 0.9, 0.4, 0.65], dtype=torch.float32).to(DT)
        teacher = (torch.randn(B, dim + 4, generator=g, dtype=DT) * 0.5).to(torch.float32).to(DT)
        if mat:
            loss = sum(w * loss_fn(kind, [c[:, :d] for c in cols], labels, teacher) for d, w in zip(*mat))
        else:
            loss = loss_fn(kind, cols, labels, teacher)
        loss.backward()
        used = sorted(set(t for s in ids for t in s))
        case = dict(id="loss-" + cid, model="en-plain-hf", kind=kind, ids=ids, first=None, dim=dim, B=B,
                    n_cols=n_cols, loss=loss.item(), word_rows=used)
        if kind in ("cosent", "cosine"):
            case["labels"] = [float(np.float32(x)) for x in labels.tolist()]
        if kind == "mse":
            tensors["loss-" + cid + "/teacher"] = teacher.to(torch.float32).numpy()
            case["teacher_dim"] = dim + 4
        if mat:
            case["dims"], case["weights"] = mat
        cases.append(case)
        for n, v in grads_of(M, used).items():
            tensors["loss-" + cid + "/" + n] = v

    # the optimiser: 3 steps of MNRL on en-plain-hf, each on its own batch, as Hugging Face's Trainer
    # runs them: clip_grad_norm_, AdamW (no weight decay for biases and LayerNorm), the linear schedule
    M = load_model("en-plain-hf")
    V = M["cfg"]["vocab_size"]
    hp = dict(lr=1e-3, weight_decay=0.01, warmup_steps=1, total_steps=4, max_grad_norm=1.0)
    nd = lambda n: "bias" in n or "LayerNorm" in n
    groups = [{"params": [p for n, p in M["params"].items() if not nd(n)], "weight_decay": hp["weight_decay"]},
              {"params": [p for n, p in M["params"].items() if nd(n)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=hp["lr"], betas=(0.9, 0.999), eps=1e-8)
    w, tot = hp["warmup_steps"], hp["total_steps"]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / max(1, w) if s < w else max(0.0, (tot - s) / max(1, tot - w)))
    steps, used = [], set()
    for k in range(3):
        lengths = torch.randint(2, 10, (B * 2,), generator=g).tolist()
        ids = batch_ids(g, V, lengths)
        used |= set(t for s in ids for t in s)
        e = encode(M, ids, [0] * len(ids))
        loss = loss_fn("mnrl", [e[:B], e[B:]], None, None)
        opt.zero_grad()
        loss.backward()
        lr = opt.param_groups[0]["lr"]
        norm = torch.nn.utils.clip_grad_norm_(list(M["params"].values()), hp["max_grad_norm"])
        opt.step()
        sched.step()
        steps.append(dict(ids=ids, loss=loss.item(), grad_norm=float(norm), lr=lr))
    used = sorted(used)
    cases.append(dict(id="optim-adamw", model="en-plain-hf", kind="optim", B=B, n_cols=2, params=hp, steps=steps,
                      word_rows=used))
    for n, p in M["params"].items():
        v = p.detach()
        if n == "embeddings.word_embeddings.weight":
            v = v[torch.tensor(used, dtype=torch.long)]
        tensors["optim-adamw/" + n] = v.to(torch.float32).numpy()
    write(cases, tensors)


def write(cases, tensors):
    hdr, off, blobs = {}, 0, []
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k], dtype="<f4")
        b = a.tobytes()
        hdr[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    raw = struct.pack("<Q", len(h)) + h + b"".join(blobs)
    with open(os.path.join(OUT, "grads.safetensors.gz"), "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, compresslevel=9) as z:
            z.write(raw)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"generator": "tools/train_grad_ref.py", "cases": cases}, f, indent=1)
        f.write("\n")
    print("%d cases, %d tensors, %d bytes raw" % (len(cases), len(tensors), len(raw)), file=sys.stderr)


if __name__ == "__main__":
    main()
