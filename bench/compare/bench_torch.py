#!/usr/bin/python3
"""PyTorch engine of the side-by-side benchmark (driven by compare.py; see README.md).

    /usr/bin/python3 bench/compare/bench_torch.py --model DIR --shape minilm|bge-base|mpnet-base

Loads the model folder's model.safetensors into make_model.py's BertModel or MPNetModel (+ mean
pooling + Normalize) and answers one JSON command per stdin line with one JSON line on stdout:

    {"op":"load","name":N,"texts":F,"ids":F[,"limit":K]}  read a workload (texts only for their
                                               lengths); limit: the first K sentences in encode order
    {"op":"run","name":N,"calls":C,"threads":T} C timed encodes; {"times":[seconds, ...]}
    {"op":"embed","texts":F,"ids":F,"out":F}   encode once, write float32 rows to F
    {"op":"quit"}

Encoding is what sentence-transformers' encode() does with already-tokenized input: sort by
text length (longest first, as SentenceTransformer.encode sorts), batches of 32 padded to
their longest member with the tokenizer's pad id (make_model.PAD_ID), forward under torch.inference_mode(), rows put back in input order.
The padded tensors are built when the workload is loaded, so a timed call is the model only.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_model  # noqa: E402

BATCH = 32


def log(msg):
    print(f"[torch] {msg}", file=sys.stderr, flush=True)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def make_batches(texts, ids, limit=0, pad_id=0):
    """sentence-transformers' order and padding: returns [(rows, input_ids, mask, types)].
    limit > 0 keeps only the first `limit` sentences of that order (a warm-up subset)."""
    if len(texts) != len(ids):
        raise ValueError(f"{len(texts)} texts but {len(ids)} id lists")
    order = np.argsort([-len(t) for t in texts])
    if limit:
        order = order[:limit]
    batches = []
    for s in range(0, len(order), BATCH):
        rows = order[s:s + BATCH]
        T = max(len(ids[i]) for i in rows)
        a = np.full((len(rows), T), pad_id, dtype=np.int64)
        m = np.zeros((len(rows), T), dtype=np.int64)
        for j, i in enumerate(rows):
            a[j, :len(ids[i])] = ids[i]
            m[j, :len(ids[i])] = 1
        batches.append((torch.from_numpy(rows.copy()), torch.from_numpy(a), torch.from_numpy(m),
                        torch.zeros((len(rows), T), dtype=torch.int64)))
    return batches


def encode(model, batches, n, dim):
    out = torch.empty((n, dim), dtype=torch.float32)
    with torch.inference_mode():
        for rows, a, m, t in batches:
            out[rows] = model(a, m, t)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--shape", required=True, choices=sorted(make_model.SHAPES))
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    model = make_model.load_model(args.model, args.shape)
    load_ms = 1e3 * (time.perf_counter() - t0)
    dim = make_model.SHAPES[args.shape][0]
    pad_id = make_model.PAD_ID[make_model.ARCH[args.shape]]
    work = {}
    blas = sorted({ln.split()[-1] for ln in open("/proc/self/maps") if "blas" in ln and "/" in ln})
    print(json.dumps({"ready": True, "engine": "torch", "version": torch.__version__, "load_ms": load_ms,
                      "blas_libraries": blas, "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
                      "parallel_info": torch.__config__.parallel_info().strip().splitlines()[:4]}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        op = cmd.get("op")
        if op == "load":
            texts, ids = read_jsonl(cmd["texts"]), read_jsonl(cmd["ids"])
            batches = make_batches(texts, ids, int(cmd.get("limit", 0)), pad_id)
            n = sum(len(b[0]) for b in batches)
            work[cmd["name"]] = (batches, len(texts))
            padded = sum(b[1].numel() for b in batches)
            reply = {"ok": True, "n": n, "tokens": sum(int(b[2].sum()) for b in batches), "padded_tokens": padded,
                     "batches": len(batches)}
        elif op == "run":
            batches, n = work[cmd["name"]]
            torch.set_num_threads(int(cmd.get("threads", 2)))
            times = []
            for _ in range(int(cmd.get("calls", 1))):
                t0 = time.perf_counter()
                encode(model, batches, n, dim)
                times.append(time.perf_counter() - t0)
            reply = {"times": times, "threads": torch.get_num_threads()}
        elif op == "embed":
            torch.set_num_threads(int(cmd.get("threads", 2)))
            texts, ids = read_jsonl(cmd["texts"]), read_jsonl(cmd["ids"])
            out = encode(model, make_batches(texts, ids, pad_id=pad_id), len(texts), dim)
            out.numpy().astype("<f4").tofile(cmd["out"])
            reply = {"ok": True, "n": len(texts), "dim": dim}
        elif op == "quit":
            break
        else:
            reply = {"error": f"unknown op {op!r}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
