#!/usr/bin/python3
"""bench/index/make_data.py - the index benchmark's datasets (see README.md).

  bench/index/make_data.py [--datasets real,synthetic] [--out DIR] [--n 100000] [--force]

Writes, per dataset, into OUT/NAME/ (default bench/index/.work/data/NAME, with NAME real or
synthetic, or real-N / synthetic-N when --n is not 100000):
  base.npy     float32 [n, dim], L2-normalised, C order
  queries.npy  float32 [nq, dim], L2-normalised, none of them in base
  gt.npy       int32 [nq, 100]: exact top-100 base ids by inner product (= cosine), best first
               (float64 dot products, ties broken by the smaller id)
  gt_ip.npy    float32 [nq, 100]: those inner products
  meta.json    how it was made; written last, so a folder without it is incomplete
and for real also base.txt / queries.txt (one sentence a line, row i of the .npy is line i+1).

real: English sentences from Debian packages, embedded with sembed's CLI and its default
  model (build/sembed encode -m models/use-lite --normalize, 512-dim): the glosses of WordNet 3.0
  (package wordnet-base, /usr/share/wordnet/data.{adj,adv,noun,verb}), each split into its
  definition and its quoted example sentences, plus the sentence pairs of STS-B
  (tests/fixtures/eval/stsbenchmark.tsv.gz). Whitespace is collapsed (so no text holds a
  newline), texts of fewer than 3 words are dropped, the rest de-duplicated, sorted and
  shuffled with --seed; the first --nq are the queries, the next --n the base. The CLI's
  vectors are de-duplicated too (two texts can embed identically), keeping the first.
synthetic: a Gaussian mixture of --clusters clusters in --dim dimensions: centres N(0, I/dim),
  per-cluster spread log-uniform in [0.15, 0.8] (x the centre's norm of ~1), cluster weights
  log-normal (sigma 1); base and queries are independent draws, L2-normalised.

Progress goes to stderr; stdout gets ONE JSON object: each dataset's meta.json (with
"cached": true when the folder was already complete for the same parameters).
"""
import argparse
import glob
import gzip
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GT_K = 100
WORDNET = "/usr/share/wordnet"
STSB = os.path.join(ROOT, "tests/fixtures/eval/stsbenchmark.tsv.gz")


def log(msg):
    print(f"[make_data] {msg}", file=sys.stderr, flush=True)


def save_npy(path, a):
    tmp = path + ".tmp.npy"
    np.save(tmp, np.ascontiguousarray(a))
    os.replace(tmp, path)


def normalize(x):
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1
    return (x / n).astype(np.float32)


def ground_truth(base, queries, k=GT_K, block=100):
    """exact top-k by float64 inner product, ties to the smaller id"""
    t0 = time.time()
    k = min(k, base.shape[0])
    b64 = base.astype(np.float64)
    ids = np.empty((queries.shape[0], k), np.int32)
    ips = np.empty((queries.shape[0], k), np.float32)
    for s in range(0, queries.shape[0], block):
        q = queries[s : s + block].astype(np.float64)
        sim = q @ b64.T  # [block, n]
        # a candidate set that surely holds the top k (with ties at the k-th value), then exact order
        part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(sim, part, axis=1).min(axis=1)
        for r in range(sim.shape[0]):
            cand = np.nonzero(sim[r] >= kth[r])[0]
            order = np.lexsort((cand, -sim[r, cand]))[:k]
            ids[s + r] = cand[order]
            ips[s + r] = sim[r, cand[order]]
        if s // block % 2 == 0:
            log(f"  ground truth {min(s + block, queries.shape[0])}/{queries.shape[0]} queries")
    log(f"  ground truth: {time.time() - t0:.1f} s")
    return ids, ips, time.time() - t0


def wordnet_texts():
    files = sorted(glob.glob(os.path.join(WORDNET, "data.*")))
    files = [f for f in files if os.path.basename(f) in ("data.adj", "data.adv", "data.noun", "data.verb")]
    if len(files) != 4:
        sys.exit(f"error: WordNet data files not found in {WORDNET}; install them with: apt-get install wordnet-base")
    out = []
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("  ") or " | " not in line:  # the licence header
                    continue
                gloss = line.split(" | ", 1)[1].strip()
                out.append(gloss.split('"', 1)[0].strip().rstrip(";").strip())  # the definition
                out.extend(re.findall(r'"([^"]+)"', gloss))  # its example sentences
    return out


def stsb_texts():
    out = []
    with gzip.open(STSB, "rt", encoding="utf-8") as fh:
        head = fh.readline().rstrip("\n").split("\t")
        c1, c2 = head.index("sentence1"), head.index("sentence2")
        for line in fh:
            row = line.rstrip("\n").split("\t")
            if len(row) > max(c1, c2):
                out += [row[c1], row[c2]]
    return out


def make_real(d, args, sembed, model):
    t0 = time.time()
    wn, st = wordnet_texts(), stsb_texts()
    texts = set()
    for t in wn + st:
        t = " ".join(t.split())  # collapses every whitespace run: no newline, tab or CR is left
        if len(t.split(" ")) >= 3:
            texts.add(t)
    texts = sorted(texts)
    rng = np.random.default_rng(args.seed)
    texts = [texts[i] for i in rng.permutation(len(texts))]
    need = args.nq + args.n
    log(
        f"real: {len(wn)} WordNet texts + {len(st)} STS-B sentences -> {len(texts)} unique texts of >= 3 words; "
        f"need {need}"
    )
    if len(texts) < need:
        sys.exit(f"error: only {len(texts)} texts for {need}")
    take = texts[: min(len(texts), need + max(200, need // 100))]  # a margin for duplicate vectors
    pool_txt = os.path.join(d, "pool.txt")
    with open(pool_txt, "w", encoding="utf-8") as fh:
        fh.write("\n".join(take) + "\n")
    pool_npy = os.path.join(d, "pool.npy")
    log(f"real: encoding {len(take)} texts: {os.path.relpath(sembed, ROOT)} encode -m {os.path.relpath(model, ROOT)}")
    t1 = time.time()
    cmd = [sembed, "encode", "-m", model, "-i", pool_txt, "-o", pool_npy, "-f", "npy", "--normalize", "-q"]
    if args.threads:
        cmd += ["-t", str(args.threads)]
    subprocess.run(cmd, check=True)
    encode_s = time.time() - t1
    vecs = np.load(pool_npy)
    if vecs.shape[0] != len(take) or vecs.dtype != np.float32:
        sys.exit(f"error: sembed gave {vecs.shape} {vecs.dtype} for {len(take)} texts")
    log(f"real: encoded {vecs.shape[0]} x {vecs.shape[1]} in {encode_s:.1f} s ({vecs.shape[0] / encode_s:.0f} texts/s)")
    _, first = np.unique(vecs.view(np.dtype((np.void, vecs.dtype.itemsize * vecs.shape[1]))), return_index=True)
    keep = np.sort(first)
    dup_vectors = len(take) - len(keep)
    if len(keep) < need:
        sys.exit(f"error: {dup_vectors} duplicate vectors left {len(keep)} for {need}")
    keep = keep[:need]
    qi, bi = keep[: args.nq], keep[args.nq :]
    queries, base = vecs[qi], vecs[bi]
    norms = np.linalg.norm(base, axis=1)
    log(f"real: {dup_vectors} duplicate vectors dropped; norms in [{norms.min():.6f}, {norms.max():.6f}]")
    for name, idx in (("queries.txt", qi), ("base.txt", bi)):
        with open(os.path.join(d, name), "w", encoding="utf-8") as fh:
            fh.write("\n".join(take[i] for i in idx) + "\n")
    save_npy(os.path.join(d, "base.npy"), base)
    save_npy(os.path.join(d, "queries.npy"), queries)
    os.remove(pool_npy)
    os.remove(pool_txt)
    gt, ip, gt_s = ground_truth(base, queries)
    save_npy(os.path.join(d, "gt.npy"), gt)
    save_npy(os.path.join(d, "gt_ip.npy"), ip)
    return {
        "source": "WordNet 3.0 glosses (Debian wordnet-base: definitions + example sentences) + STS-B sentences",
        "model": os.path.relpath(model, ROOT),
        "unique_texts": len(texts),
        "encoded": len(take),
        "duplicate_vectors": int(dup_vectors),
        "encode_s": round(encode_s, 2),
        "encode_texts_per_s": round(len(take) / encode_s, 1),
        "gt_s": round(gt_s, 2),
        "total_s": round(time.time() - t0, 2),
        "n": int(base.shape[0]),
        "nq": int(queries.shape[0]),
        "dim": int(base.shape[1]),
    }


def make_synthetic(d, args):
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    C, dim, total = args.clusters, args.dim, args.n + args.nq
    centres = rng.standard_normal((C, dim)) / np.sqrt(dim)
    spread = np.exp(rng.uniform(np.log(0.15), np.log(0.8), C))
    w = rng.lognormal(0.0, 1.0, C)
    w /= w.sum()
    label = rng.choice(C, size=total, p=w)
    x = centres[label] + spread[label, None] * rng.standard_normal((total, dim)) / np.sqrt(dim)
    x = normalize(x)
    base, queries = x[: args.n], x[args.n :]
    sizes = np.bincount(label[: args.n], minlength=C)
    log(
        f"synthetic: {args.n} + {args.nq} points, dim {dim}, {C} clusters "
        f"(sizes {sizes.min()}..{sizes.max()}, median {int(np.median(sizes))}; spread 0.15..0.8)"
    )
    save_npy(os.path.join(d, "base.npy"), base)
    save_npy(os.path.join(d, "queries.npy"), queries)
    np.save(os.path.join(d, "labels.npy"), label.astype(np.int32))
    gt, ip, gt_s = ground_truth(base, queries)
    save_npy(os.path.join(d, "gt.npy"), gt)
    save_npy(os.path.join(d, "gt_ip.npy"), ip)
    return {
        "source": f"Gaussian mixture: {C} clusters, spread log-uniform 0.15..0.8, log-normal weights",
        "clusters": C,
        "cluster_size_min": int(sizes.min()),
        "cluster_size_max": int(sizes.max()),
        "gt_s": round(gt_s, 2),
        "total_s": round(time.time() - t0, 2),
        "n": int(base.shape[0]),
        "nq": int(queries.shape[0]),
        "dim": int(base.shape[1]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="real,synthetic", help="comma-separated: real, synthetic")
    ap.add_argument("--out", default=os.path.join(HERE, ".work", "data"), help="parent folder of the datasets")
    ap.add_argument("--n", type=int, default=100000, help="base vectors per dataset (default 100000)")
    ap.add_argument("--nq", type=int, default=1000, help="queries per dataset (default 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dim", type=int, default=128, help="synthetic: dimensions (default 128)")
    ap.add_argument("--clusters", type=int, default=1000, help="synthetic: clusters (default 1000)")
    ap.add_argument("--sembed", default=os.path.join(ROOT, "build", "sembed"), help="real: the sembed CLI")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "use-lite"), help="real: the model folder")
    ap.add_argument("--threads", type=int, default=0, help="real: sembed encode -t (default: its own)")
    ap.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = ap.parse_args()

    out = {}
    for name in [s for s in args.datasets.split(",") if s]:
        if name not in ("real", "synthetic"):
            sys.exit(f"error: unknown dataset {name!r} (real, synthetic)")
        params = {"dataset": name, "n": args.n, "nq": args.nq, "seed": args.seed, "gt_k": GT_K}
        if name == "synthetic":
            params.update(dim=args.dim, clusters=args.clusters)
        folder = name if args.n == 100000 else f"{name}-{args.n}"
        d = os.path.join(args.out, folder)
        meta_path = os.path.join(d, "meta.json")
        if not args.force and os.path.exists(meta_path):
            with open(meta_path) as fh:
                meta = json.load(fh)
            if meta.get("params") == params:
                log(f"{folder}: cached in {os.path.relpath(d, ROOT)}")
                meta["cached"] = True
                out[name] = meta
                continue
        os.makedirs(d, exist_ok=True)
        if os.path.exists(meta_path):
            os.remove(meta_path)
        if name == "real":
            for p in (args.sembed, os.path.join(args.model, "config.json")):
                if not os.path.exists(p):
                    sys.exit(f"error: {p} is missing: run ./setup.sh --no-demo (or make) in {ROOT} first")
            info = make_real(d, args, args.sembed, args.model)
        else:
            info = make_synthetic(d, args)
        meta = {"params": params, "path": os.path.relpath(d, ROOT), **info, "made": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with open(meta_path, "w") as fh:
            json.dump(meta, fh, indent=1)
        meta["cached"] = False
        out[name] = meta
    print(json.dumps(out))


if __name__ == "__main__":
    main()
