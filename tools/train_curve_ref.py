#!/usr/bin/python3
"""train_curve_ref.py - PyTorch's loss curve for `sembed train --loss mnrl` (issue 15).

"50 steps of MNRL from the same initial weights, data order and learning rate
give the same loss curve as PyTorch, within 0.1% at every step." This tool is
the PyTorch side: it trains the model of a sentence-transformers folder (BERT,
XLM-R or MPNet; mean / CLS / max pooling, Dense, Normalize) in torch float32
on 2 threads, as `sembed train -m FOLDER --loss mnrl` would with the same
options, and prints (or writes) the loss of every step as JSON.

What is the same as sembed's run, and how:
  - the initial weights: the folder's model.safetensors (and N_Dense/), read as
    tools/train_grad_ref.py reads them;
  - the token ids: `sembed tokenize` of each text (the tokenizer is not what
    this checks), truncated to --max-seq-length as sembed train truncates;
  - the data order: each epoch's permutation is recomputed here from its
    definition in src/cli_train.c (epoch_order: Fisher-Yates over splitmix64
    seeded with seed ^ 0xD1B54A32D192ED03 * (epoch + 1)), cut into batches of
    --batch-size rows (the last one shorter); a batch's sentences are all its
    anchors, then all its positives, ... (sembed's packing order);
  - dropout: the same masks. sembed draws element e of dropout site s with a
    counter-based hash of (key, s, e) (src/train/train_kernels.h; the numpy
    twin is train_grad_ref.drop_u24), the key of micro-batch mb of epoch ep
    being splitmix64(seed * 0x9E3779B97F4A7C15 + ep * batches_per_epoch + mb
    + 1); sites: 0 the embeddings, per layer l 1 + 3l the attention weights
    (indexed sentence after sentence, head after head, row after row), 2 + 3l
    the attention output, 3 + 3l the FFN output (hidden states indexed t * H +
    i, t in the packed batch). Inverted dropout: kept values * 1 / (1 - p);
  - the optimiser: torch.optim.AdamW (no weight decay on biases and
    LayerNorm, as Hugging Face's Trainer groups them), Hugging Face's
    get_linear_schedule_with_warmup (ceil(warmup_ratio * steps) warm-up
    steps, linear decay to 0 at the last step) as a LambdaLR, and
    torch.nn.utils.clip_grad_norm_ before each step;
  - the loss: MultipleNegativesRankingLoss (scale * cos_sim of anchors
    against positives and negatives, cross-entropy with label i).
  - --grad-accum K: K micro-batches a step (the last step of an epoch may have
    fewer), each one's loss divided by K before its backward pass, one
    clipping and AdamW step after them; the logged loss is the mean of the
    micro-batches' losses (sembed's).
Not covered: the losses other than MNRL, token types.

The encoder runs on the packed batch (every token's row of every sentence,
as sembed packs it, no padding) for everything but attention, which runs per
sentence padded to the longest with the padded keys masked out.

Usage (Debian's python3-torch; OpenBLAS for speed, as bench/README says):
    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OMP_NUM_THREADS=2 \\
    /usr/bin/python3 tools/train_curve_ref.py -m MODEL_DIR --data pairs.jsonl --batch-size 10 --epochs 10 \\
        --lr 1e-3 --warmup-ratio 0.1 --weight-decay 0.01 --seed 42 [--sembed build/sembed] [-o curve.json]
"""
import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_grad_ref as ref  # noqa: E402  the folder reader, the dropout hash, MPNet's buckets

M64 = (1 << 64) - 1


def mix64(st):
    """splitmix64: (the new state, the next value) from state st."""
    st = (st + 0x9E3779B97F4A7C15) & M64
    z = st
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return st, z ^ (z >> 31)


def epoch_order(n, seed, ep):
    """The row order of epoch ep (src/cli_train.c's epoch_order)."""
    st = (seed ^ ((0xD1B54A32D192ED03 * (ep + 1)) & M64)) & M64
    perm = list(range(n))
    for i in range(n, 1, -1):
        st, r = mix64(st)
        j = r % i
        perm[i - 1], perm[j] = perm[j], perm[i - 1]
    return perm


def dropout_key(seed, ep, nb, mb):
    """The dropout key of micro-batch mb of epoch ep (nb micro-batches an epoch)."""
    return mix64((seed * 0x9E3779B97F4A7C15 + ep * nb + mb + 1) & M64)[1]


def factors(key, site, base, n, p):
    """The inverted-dropout factors (float32: 0 or 1 / (1 - p)) of elements base .. base + n of a site."""
    p32 = np.float32(p)
    thr = int(float(p32) * 16777216.0)
    u = ref.drop_u24(key, site, np.arange(base, base + n, dtype=np.uint64))
    inv = np.float32(1.0) / (np.float32(1.0) - p32)
    return np.where(u < thr, np.float32(0.0), inv).astype(np.float32)


def load(folder):
    """The folder's model in float32: ref.load_model's config, parameters (leaf tensors), pooling, modules."""
    M = ref.load_model(os.path.abspath(folder))
    M["params"] = {k: v.detach().to(torch.float32).requires_grad_(True) for k, v in M["params"].items()}
    return M


def forward(M, sents, key):
    """The embeddings (S, dim) of sentences sents (lists of token ids); key None: no dropout."""
    c, P = M["cfg"], M["params"]
    H, NH, L = c["hidden_size"], c["num_attention_heads"], c["num_hidden_layers"]
    HD = H // NH
    eps = c.get("layer_norm_eps", 1e-12)
    ph, pa = c.get("hidden_dropout_prob", 0.1), c.get("attention_probs_dropout_prob", 0.1)
    act = {"gelu": lambda z: F.gelu(z), "relu": F.relu,
           "gelu_new": lambda z: F.gelu(z, approximate="tanh")}[c.get("hidden_act", "gelu")]
    S = len(sents)
    lens = [len(s) for s in sents]
    T, Tm = sum(lens), max(lens)
    ids = torch.tensor([t for s in sents for t in s], dtype=torch.long)
    if c["model_type"] in ("xlm-roberta", "mpnet"):  # RoBERTa's positions
        pad = 1 if c["model_type"] == "mpnet" else c["pad_token_id"]
        pos = []
        for s in sents:
            keep = (torch.tensor(s) != pad).long()
            pos.append(torch.cumsum(keep, 0) * keep + pad)
        pos = torch.cat(pos)
    else:
        pos = torch.cat([torch.arange(n) for n in lens])
    sidx = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(lens)])
    tidx = torch.cat([torch.arange(n) for n in lens])

    def drop(x, site):  # a hidden-state site: element t * H + i of the packed batch
        if key is None or ph <= 0:
            return x
        return x * torch.from_numpy(factors(key, site, 0, T * H, ph).reshape(T, H))

    x = F.embedding(ids, P["embeddings.word_embeddings.weight"]) + \
        F.embedding(pos, P["embeddings.position_embeddings.weight"])
    if "embeddings.token_type_embeddings.weight" in P:
        x = x + P["embeddings.token_type_embeddings.weight"][0]
    x = F.layer_norm(x, (H,), P["embeddings.LayerNorm.weight"], P["embeddings.LayerNorm.bias"], eps)
    x = drop(x, 0)
    kmask = torch.full((S, 1, 1, Tm), float("-inf"))
    for i, n in enumerate(lens):
        kmask[i, 0, 0, :n] = 0.0
    bias = 0.0
    if c["model_type"] == "mpnet":  # the bias of bucket(key - query): depends on the positions' distance alone
        ar = torch.arange(Tm)
        bias = P["encoder.relative_attention_bias.weight"][ref.rel_bucket(ar[None, :] - ar[:, None])].permute(2, 0, 1)
    sq, sk, sv, so, sln1, sff1, sff2, sln2 = ref.sublayers(c)
    att0 = np.cumsum([0] + [NH * n * n for n in lens])
    for li in range(L):
        p = lambda s: P["encoder.layer.%d.%s" % (li, s)]
        lin = lambda v, s: F.linear(v, p(s + ".weight"), p(s + ".bias"))

        def padded(v):  # (T, H) -> (S, NH, Tm, HD)
            out = torch.zeros(S, Tm, H)
            out = out.index_put((sidx, tidx), v)
            return out.view(S, Tm, NH, HD).transpose(1, 2)
        q, k, v = padded(lin(x, sq)), padded(lin(x, sk)), padded(lin(x, sv))
        w = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(HD) + bias + kmask, dim=-1)
        if key is not None and pa > 0:
            f = np.ones((S, NH, Tm, Tm), np.float32)
            for i, n in enumerate(lens):
                f[i, :, :n, :n] = factors(key, 1 + 3 * li, int(att0[i]), NH * n * n, pa).reshape(NH, n, n)
            w = w * torch.from_numpy(f)
        a = (w @ v).transpose(1, 2).reshape(S, Tm, H)[sidx, tidx]
        x = F.layer_norm(drop(lin(a, so), 2 + 3 * li) + x, (H,), p(sln1 + ".weight"), p(sln1 + ".bias"), eps)
        h = lin(act(lin(x, sff1)), sff2)
        x = F.layer_norm(drop(h, 3 + 3 * li) + x, (H,), p(sln2 + ".weight"), p(sln2 + ".bias"), eps)
    outs = []
    cnt = torch.tensor(lens, dtype=torch.float32).unsqueeze(1)
    for mode in M["pooling"]:
        if mode == "mean_tokens":
            outs.append(torch.zeros(S, H).index_add(0, sidx, x) / cnt)
        elif mode == "cls_token":
            outs.append(x[torch.tensor(np.cumsum([0] + lens[:-1]))])
        elif mode == "max_tokens":
            xp = torch.full((S, Tm, H), float("-inf")).index_put((sidx, tidx), x)
            outs.append(xp.max(1)[0])
        else:
            raise SystemExit("train_curve_ref: pooling %s is not covered" % mode)
    e = torch.cat(outs, 1)
    for m in M["modules"]:
        if m[0] == "dense":
            e = F.linear(e, P[m[1] + "weight"], P[m[1] + "bias"] if m[3] else None)
            e = {"Tanh": torch.tanh, "Identity": lambda z: z, "ReLU": torch.relu, "Sigmoid": torch.sigmoid}[m[2]](e)
        else:
            e = F.normalize(e, dim=1, eps=1e-12)
    return e


def mnrl(emb, B, scale):
    """MultipleNegativesRankingLoss of embeddings (n_cols * B, dim), column after column."""
    a = F.normalize(emb[:B], dim=1, eps=1e-12)
    cand = F.normalize(emb[B:], dim=1, eps=1e-12)
    return F.cross_entropy(scale * a @ cand.T, torch.arange(B))


def col_rank(k):
    """sembed's order of JSONL columns (src/train/train_data.c, col_rank): anchor, positive, negative,
    negative_1, ..., then the other names alphabetically."""
    if k in ("anchor", "sentence1", "sentence_A", "query"):
        return (0, k)
    if k in ("positive", "sentence2", "sentence_B"):
        return (1, k)
    if k == "negative":
        return (2, k)
    if k.startswith("negative_") and k[9:].isdigit() and int(k[9:]) < 900:
        return (3 + int(k[9:]), k)
    return (1000, k)


def read_rows(path, columns):
    """The text columns of a JSONL file: rows of strings, in the order of columns (default the first row's
    keys in sembed's order; a score or label field is not a text)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            o = json.loads(line)
            columns = columns or sorted((k for k in o if k not in ("score", "label")), key=col_rank)
            rows.append([o[k] for k in columns])
    return rows


def tokenize(sembed, folder, texts, max_len):
    """The token ids of texts by `sembed tokenize` (one JSON string a line)."""
    args = [sembed, "tokenize", "-m", folder, "--jsonl-input"] + (["--max-length", str(max_len)] if max_len else [])
    p = subprocess.run(args, input="".join(json.dumps(t) + "\n" for t in texts).encode(), capture_output=True)
    if p.returncode:
        raise SystemExit("train_curve_ref: sembed tokenize: " + p.stderr.decode())
    ids = [json.loads(l) for l in p.stdout.decode().splitlines()]
    assert len(ids) == len(texts)
    return ids


def train(a):
    """Runs the training; returns a dict with the options and the per-step loss, lr and gradient norm."""
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    M = load(a.model)
    rows = read_rows(a.data, a.columns.split(",") if a.columns else None)
    n, nc = len(rows), len(rows[0])
    ids = tokenize(a.sembed, a.model, [t for r in rows for t in r], a.max_seq_length)
    ids = [ids[i * nc:(i + 1) * nc] for i in range(n)]
    B, K = a.batch_size, a.grad_accum
    nb = (n + B - 1) // B
    spe = (nb + K - 1) // K
    total = spe * a.epochs
    warm = math.ceil(a.warmup_ratio * total)
    P = M["params"]
    nodecay = [v for k, v in P.items() if "bias" in k or "LayerNorm" in k]
    decay = [v for k, v in P.items() if not ("bias" in k or "LayerNorm" in k)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": nodecay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.999), eps=1e-8)

    def sched(s):  # transformers.get_linear_schedule_with_warmup
        if s < warm:
            return s / max(1, warm)
        return max(0.0, (total - s) / max(1, total - warm))
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, sched)
    losses, lrs, norms = [], [], []
    for step in range(min(total, a.stop_after or total)):
        ep = step // spe
        if step % spe == 0:
            perm = epoch_order(n, a.seed, ep)
        opt.zero_grad()
        step_loss = []
        for k in range(K):
            mb = (step % spe) * K + k
            if mb >= nb:
                break
            rws = perm[mb * B:(mb + 1) * B]
            sents = [ids[r][c] for c in range(nc) for r in rws]
            key = dropout_key(a.seed, ep, nb, mb) if not a.no_dropout else None
            loss = mnrl(forward(M, sents, key), len(rws), a.scale)
            (loss / K if K > 1 else loss).backward()
            step_loss.append(loss.item())
        lrs.append(opt.param_groups[0]["lr"])
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(P.values()), a.max_grad_norm))
                     if a.max_grad_norm > 0 else 0.0)
        opt.step()
        lr_sched.step()
        losses.append(sum(step_loss) / len(step_loss))
        if a.dump_step == step + 1:  # the parameters after this step, to compare with a sembed checkpoint
            st = {"exp_avg/" + k: opt.state[v]["exp_avg"].numpy() for k, v in P.items()}
            st.update({"exp_avg_sq/" + k: opt.state[v]["exp_avg_sq"].numpy() for k, v in P.items()})
            np.savez(a.dump, **{k: v.detach().numpy() for k, v in P.items()}, **st)
        if a.verbose:
            print("step %d loss %.6f lr %.3g norm %.4f" % (step + 1, losses[-1], lrs[-1], norms[-1]), file=sys.stderr)
    return {"model": a.model, "data": a.data, "batch_size": B, "grad_accum": K, "epochs": a.epochs, "lr": a.lr,
            "warmup_ratio": a.warmup_ratio, "weight_decay": a.weight_decay, "max_grad_norm": a.max_grad_norm,
            "seed": a.seed, "scale": a.scale, "dropout": not a.no_dropout, "steps": total,
            "torch": torch.__version__, "threads": a.threads, "loss": losses, "learning_rate": lrs, "grad_norm": norms}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--columns")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--warmup-ratio", type=float, default=0.0)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--scale", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--max-seq-length", type=int, default=0)
    ap.add_argument("--no-dropout", action="store_true", help="eval-mode forward (compare with a dropout-0 config)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sembed", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                     "build", "sembed"))
    ap.add_argument("-o", "--output", help="write the JSON here (default stdout)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--dump-step", type=int, default=0, help="after this step, write the parameters to --dump (.npz)")
    ap.add_argument("--dump", default="params.npz")
    ap.add_argument("--stop-after", type=int, default=0, help="stop after this many steps (the schedule unchanged)")
    a = ap.parse_args()
    # sembed's lr and the rates are float32: give torch the same peak rate
    a.lr = float(np.float32(a.lr))
    r = train(a)
    r = {"command": " ".join(["tools/train_curve_ref.py"] + sys.argv[1:]), **r}
    s = json.dumps(r, indent=1)
    if a.output:
        with open(a.output, "w") as f:
            f.write(s + "\n")
    else:
        print(s)


if __name__ == "__main__":
    main()
