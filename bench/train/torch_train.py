#!/usr/bin/python3
"""torch_train.py - the PyTorch 1.13 peer of bench_train.c: the same training step.

An independent float32 BERT written with torch.nn (the model of tools/train_grad_ref.py,
batched as Hugging Face's BertModel runs it: (S, N, H) tensors, heads as a (S, NH, N, HD)
view, scores = q k^T / sqrt(HD), softmax, dropout), mean pooling as sentence-transformers'
Pooling computes it (the mask-weighted sum over the count), then MultipleNegativesRankingLoss
(cosine x 20, cross-entropy over in-batch negatives, columns anchor and positive) or MSELoss
to teacher vectors, clip_grad_norm_(1.0) and torch.optim.AdamW (lr 2e-5, no weight decay,
constant rate). Dropout 0.1 (hidden and attention, torch's own RNG). Every sentence has
exactly --seq tokens (no padding, as the C driver). zero_grad(set_to_none=True).

With --lengths FILE (lines "anchor_length positive_length", bench_train's file) step k's sentences
take the lengths of rows k B .. k B + B - 1, and each column is encoded as sentence-transformers'
MultipleNegativesRankingLoss encodes it: its own forward pass, padded to the column's longest, the
padding masked out of the attention (HF's additive mask) and of the mean.

Prints one JSON object like bench_train: every step's seconds (wall and the process's CPU,
user + system), the medians after --warmup,
sentences per second and the process's peak RSS (getrusage). The BLAS is whatever libblas.so.3
the loader finds: LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp for OpenBLAS.
"""
import argparse
import json
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Layer(nn.Module):
    """A post-LN BERT layer."""

    def __init__(self, H, NH, FF, p):
        super().__init__()
        self.NH, self.p = NH, p
        self.q, self.k, self.v, self.o = nn.Linear(H, H), nn.Linear(H, H), nn.Linear(H, H), nn.Linear(H, H)
        self.ln1, self.ln2 = nn.LayerNorm(H, eps=1e-12), nn.LayerNorm(H, eps=1e-12)
        self.ff1, self.ff2 = nn.Linear(H, FF), nn.Linear(FF, H)

    def forward(self, x, amask=None):
        S, N, H = x.shape
        HD = H // self.NH
        sh = lambda t: t.view(S, N, self.NH, HD).transpose(1, 2)
        q, k, v = sh(self.q(x)), sh(self.k(x)), sh(self.v(x))
        sc = q @ k.transpose(-1, -2) / math.sqrt(HD)
        w = torch.softmax(sc if amask is None else sc + amask, dim=-1)
        a = (F.dropout(w, self.p, self.training) @ v).transpose(1, 2).reshape(S, N, H)
        x = self.ln1(F.dropout(self.o(a), self.p, self.training) + x)
        return self.ln2(F.dropout(self.ff2(F.gelu(self.ff1(x))), self.p, self.training) + x)


class Bert(nn.Module):
    """Embeddings (word + type + position, LayerNorm, dropout), L layers, mean pooling."""

    def __init__(self, V, H, NH, FF, L, P=512, p=0.1):
        super().__init__()
        self.word, self.pos, self.ttype = nn.Embedding(V, H), nn.Embedding(P, H), nn.Embedding(2, H)
        self.ln, self.p = nn.LayerNorm(H, eps=1e-12), p
        self.layers = nn.ModuleList([Layer(H, NH, FF, p) for _ in range(L)])
        for m in self.modules():  # BERT's init
            if isinstance(m, (nn.Linear, nn.Embedding)):
                m.weight.data.normal_(0.0, 0.02)
            if isinstance(m, nn.Linear):
                m.bias.data.zero_()

    def forward(self, ids, mask):
        S, N = ids.shape
        pos = torch.arange(N).unsqueeze(0)
        x = self.word(ids) + self.ttype(torch.zeros_like(ids)) + self.pos(pos)
        x = F.dropout(self.ln(x), self.p, self.training)
        amask = None if bool(mask.all()) else (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, amask)
        m = mask.unsqueeze(-1).to(x.dtype)
        return (x * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)


def main():
    ap = argparse.ArgumentParser()
    for k, d in [("layers", 6), ("hidden", 384), ("heads", 12), ("ff", 1536), ("vocab", 30522), ("batch", 32),
                 ("seq", 32), ("steps", 13), ("warmup", 3), ("threads", 2), ("teacher-dim", 0)]:
        ap.add_argument("--" + k, type=int, default=d)
    ap.add_argument("--loss", default="mnrl", choices=["mnrl", "mse"])
    ap.add_argument("--lengths", default="")
    a = ap.parse_args()
    rows = [tuple(int(x) for x in l.split()) for l in open(a.lengths)] if a.lengths else []
    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    model = Bert(a.vocab, a.hidden, a.heads, a.ff, a.layers)
    model.train()
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "ln" in n]
    decay = [p for n, p in model.named_parameters() if not ("bias" in n or "ln" in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.0}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=2e-5)
    cols = 1 if a.loss == "mse" else 2
    S, tdim = cols * a.batch, max(a.teacher_dim, a.hidden)
    g = torch.Generator().manual_seed(7)
    times, losses, cpus = [], [], []
    cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    tokens, padded = 0, 0
    for st in range(a.steps):
        if rows:  # per column: its sentences' lengths, padded to the longest
            batches = []
            for c in range(cols):
                ln = [rows[(st * a.batch + i) % len(rows)][c] for i in range(a.batch)]
                n = max(ln)
                ids = torch.randint(1000, a.vocab, (a.batch, n), generator=g)
                mask = (torch.arange(n).unsqueeze(0) < torch.tensor(ln).unsqueeze(1)).long()
                ids[:, 0] = 101
                ids[torch.arange(a.batch), torch.tensor(ln) - 1] = 102
                ids = ids * mask  # [PAD] = 0
                batches.append((ids, mask))
                if st >= a.warmup:
                    tokens, padded = tokens + sum(ln), padded + n * a.batch
        else:
            ids = torch.randint(1000, a.vocab, (S, a.seq), generator=g)
            ids[:, 0], ids[:, -1] = 101, 102
            mask = torch.ones(S, a.seq, dtype=torch.long)
            batches = [(ids, mask)]
        teacher = (torch.rand(a.batch, tdim, generator=g) - 0.5) * 0.2
        t0, c0 = time.perf_counter(), cpu()
        opt.zero_grad(set_to_none=True)
        e = torch.cat([model(i, m) for i, m in batches])
        if a.loss == "mnrl":
            an, po = e[:a.batch], e[a.batch:]
            sc = F.normalize(an, dim=1) @ F.normalize(po, dim=1).T * 20.0
            loss = F.cross_entropy(sc, torch.arange(a.batch))
        else:
            loss = F.mse_loss(e, teacher[:, :e.shape[1]])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        cpus.append(cpu() - c0)
        losses.append(float(loss))
    med = statistics.median(times[a.warmup:])
    print(json.dumps({"impl": "torch", "torch": torch.__version__, "layers": a.layers, "hidden": a.hidden,
                      "heads": a.heads, "ff": a.ff, "vocab": a.vocab, "batch": a.batch, "seq": a.seq, "loss": a.loss,
                      "columns": cols, "threads": a.threads, "warmup": a.warmup, "lengths": a.lengths,
                      "tokens_per_step": round(tokens / max(1, a.steps - a.warmup), 1) if rows else S * a.seq,
                      "padded_tokens_per_step": round(padded / max(1, a.steps - a.warmup), 1) if rows else S * a.seq,
                      "step_s": [round(t, 4) for t in times], "cpu_s": [round(t, 4) for t in cpus], "loss_values": [round(x, 5) for x in losses],
                      "median_step_s": round(med, 4), "median_cpu_s": round(statistics.median(cpus[a.warmup:]), 4), "sentences_per_s": round(S / med, 2),
                      "rss_after_import_mb": round(rss0, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}))


if __name__ == "__main__":
    main()
