#!/usr/bin/python3
"""fusion_sweep.py - choose hybrid search's default fusion by measurement.

Runs build/sembed on two retrieval sets and prints JSON with nDCG@10 for
dense (vector) search, BM25 (keyword) search, reciprocal rank fusion and
normalised score fusion over a sweep of alpha (the vector weight), with and
without ignoring a flat vector side, plus each set's distribution of the
vector side's score spread (best minus 10th score):

  scifact  BEIR SciFact test (5,183 abstracts, title + text; 300 queries;
           qrels.tsv at the top level or BEIR's qrels/test.tsv; graded gains)
  zh       a Chinese question -> passage set made from zh-STS-B test: the
           corpus is every first sentence (1,361 pairs), the queries are
           the second sentences of the pairs scored >= 4, each relevant to
           its own pair's first sentence

The fusion is replayed here in numpy from each side's top-100 candidate
lists (`sembed search --json -k 100`, vector and --keyword; the vector list cut
to the --vector-cand a hybrid search fuses) exactly as
src/index_fusion.c does it, and checked against `sembed search --hybrid`
for the chosen setting. nDCG@10 as trec_eval computes it (linear gains
from the qrels, ideal DCG over all judged documents).

usage: tools/fusion_sweep.py [--sembed build/sembed] [--model models/use-lite]
           [--data ../shared/data/eval] [--work /tmp/fusion-sweep] [--k 100] [--sets scifact,zh]
Indexes are built under --work on the first run (SciFact: minutes). On SciFact it
also times se_index_search per mode (one thread, k 10, p50/p95; "latency").
"""
import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np

FLAT_N = 10  # se_fuse_spread's rank (src/index_fts.h SE_FUSE_FLAT_N)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), r.stderr))
    return r.stdout


def load_scifact(d):
    docs = []
    with open(os.path.join(d, "corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            docs.append({"id": o["_id"], "text": (o.get("title", "") + " " + o["text"]).strip()})
    queries = {}
    with open(os.path.join(d, "queries.jsonl"), encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            queries[o["_id"]] = o["text"]
    qp = os.path.join(d, "qrels.tsv")
    if not os.path.exists(qp):
        qp = os.path.join(d, "qrels", "test.tsv")
    qrels = {}
    with open(qp, encoding="utf-8") as f:
        for i, line in enumerate(f):
            p = line.rstrip("\n").split("\t")
            if i == 0 and not p[-1].lstrip("-").isdigit():
                continue  # the header
            qrels.setdefault(p[0], {})[p[1]] = int(p[2])
    qs = [(q, queries[q]) for q in sorted(qrels, key=lambda x: int(x) if x.isdigit() else x) if q in queries]
    return docs, qs, qrels


def load_zh(path):
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) == 3:
                pairs.append((p[0], p[1], float(p[2])))
    ids = {}
    docs = []
    for s1, _, _ in pairs:
        if s1 not in ids:
            ids[s1] = "z%d" % len(ids)
            docs.append({"id": ids[s1], "text": s1})
    qs, qrels = [], {}
    for i, (s1, s2, sc) in enumerate(pairs):
        if sc >= 4 and s2 != s1:
            qid = "q%d" % i
            qs.append((qid, s2))
            qrels[qid] = {ids[s1]: 1}
    return docs, qs, qrels


def build_index(sembed, model, docs, path):
    if os.path.exists(path):
        return
    src = path + ".jsonl"
    with open(src, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    run([sembed, "index", "build", "-m", model, "-i", src, "-o", path, "-q"])


def search(sembed, idx, qs, work, name, extra):
    qf = os.path.join(work, name + ".queries.txt")
    with open(qf, "w", encoding="utf-8") as f:
        for _, t in qs:
            f.write(t.replace("\n", " ") + "\n")
    out = run([sembed, "search", idx, "-i", qf, "--json", "-q"] + extra)
    res = [json.loads(l) for l in out.splitlines() if l.strip()]
    if len(res) != len(qs):
        sys.exit("%s: %d answers for %d queries" % (name, len(res), len(qs)))
    return [[(h["id"], h["score"]) for h in r["results"]] for r in res]


def ndcg10(ranked, rel):
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(rel.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mean_ndcg(runs, qs, qrels):
    return 100.0 * float(np.mean([ndcg10(r, qrels[q]) for r, (q, _) in zip(runs, qs)]))


def fuse(v, kw, method, alpha, rrf_k=60):
    """src/index_fusion.c se_fuse, in float32 as there; returns ids best first."""
    f32 = np.float32
    docs = {}
    for i, (d, _) in enumerate(v):
        docs.setdefault(d, [-1, -1])[0] = i
    for i, (d, _) in enumerate(kw):
        docs.setdefault(d, [-1, -1])[1] = i

    def mm(lst):
        s = np.array([x[1] for x in lst], dtype=f32)
        return (s.min(), s.max()) if len(s) else (f32(0), f32(0))

    vlo, vhi = mm(v)
    klo, khi = mm(kw)
    a = f32(min(max(alpha, 0.0), 1.0))
    vfirst = method == "rrf" or alpha >= 0.5
    rows = []
    for d, (vi, ki) in docs.items():
        if method == "rrf":
            s = 0.0
            if vi >= 0:
                s += 1.0 / (rrf_k + vi + 1)
            if ki >= 0:
                s += 1.0 / (rrf_k + ki + 1)
            s = f32(s)
        else:
            sv = (f32(v[vi][1]) - vlo) / (vhi - vlo) if vi >= 0 and vhi > vlo else (f32(1) if vi >= 0 else f32(0))
            sk = (f32(kw[ki][1]) - klo) / (khi - klo) if ki >= 0 and khi > klo else (f32(1) if ki >= 0 else f32(0))
            s = f32(a * f32(sv) + (f32(1) - a) * f32(sk))
        big = 1 << 40
        r1 = (vi if vfirst else ki) if (vi if vfirst else ki) >= 0 else big
        r2 = (ki if vfirst else vi) if (ki if vfirst else vi) >= 0 else big
        rows.append((-float(s), r1, r2, d))
    rows.sort()
    return [r[3] for r in rows]


def spread(v):
    if len(v) < 2:
        return 0.0
    return float(np.float32(v[0][1]) - np.float32(v[min(FLAT_N, len(v)) - 1][1]))


def evaluate(name, sembed, idx, qs, qrels, work, k, alphas, thresholds, default, vcand):
    vec_all = search(sembed, idx, qs, work, name + ".vec", ["-k", str(k)])
    kw = search(sembed, idx, qs, work, name + ".kw", ["-k", str(k), "--keyword"])
    out = {"queries": len(qs), "dense": mean_ndcg([[d for d, _ in r] for r in vec_all], qs, qrels),
           "bm25": mean_ndcg([[d for d, _ in r] for r in kw], qs, qrels)}
    # how many vector candidates the fusion needs (HNSW's cost grows with them): the default
    # setting's alpha and threshold with the vector list cut to kv
    da, dt = default
    out["vector_cand"] = {str(kv): {"%.2f" % al: mean_ndcg([fuse(a[:kv], b, "score", 0.0 if spread(a[:kv]) < dt else al)
                                                           for a, b in zip(vec_all, kw)], qs, qrels)
                                   for al in alphas if 0.05 <= al <= 0.45} for kv in (10, 20, 30, 50, 100) if kv <= k}
    # what src/index.c's hybrid search fuses at k 10: the vector search's own top vcand (SE_FUSE_VECTOR_MIN;
    # HNSW searched for vcand, not cut from a search for k: its candidate list differs)
    vec = search(sembed, idx, qs, work, name + ".vecc", ["-k", str(vcand)])
    out["rrf60"] = mean_ndcg([fuse(a, b, "rrf", 0) for a, b in zip(vec, kw)], qs, qrels)
    out["score"] = {"%.2f" % al: mean_ndcg([fuse(a, b, "score", al) for a, b in zip(vec, kw)], qs, qrels)
                    for al in alphas}
    sp = np.array([spread(a) for a in vec])
    out["vector_spread"] = {"p5": float(np.percentile(sp, 5)), "p50": float(np.percentile(sp, 50)),
                            "p95": float(np.percentile(sp, 95)), "max": float(sp.max())}
    out["flat_share"] = {"%.3f" % t: float(np.mean(sp < t)) for t in thresholds}
    # the default's two settings together: alpha with a vector side ignored below each threshold
    out["score_flat"] = {"%.3f" % t: {"%.2f" % al: mean_ndcg([fuse(a, b, "score", 0.0 if spread(a) < t else al)
                                                             for a, b in zip(vec, kw)], qs, qrels)
                                     for al in alphas if 0.05 <= al <= 0.45} for t in thresholds}
    runs = [fuse(a, b, "score", 0.0 if spread(a) < dt else da) for a, b in zip(vec, kw)]
    out["default"] = mean_ndcg(runs, qs, qrels)
    # the C implementation gives the same ranking (top 10) as this replay
    hy = search(sembed, idx, qs, work, name + ".hybrid", ["-k", "10", "--hybrid"])
    same = sum([d for d, _ in h] == r[:10] for h, r in zip(hy, runs))
    out["default_c"] = mean_ndcg([[d for d, _ in h] for h in hy], qs, qrels)
    out["c_equals_replay"] = "%d/%d" % (same, len(qs))
    return out


def latency(idx_path, qs, model, reps=3):
    """p50 / p95 latency (ms) of se_index_search on one thread for each mode, k 10, over the
    queries (vectors encoded beforehand; the call alone is timed, best of reps per query)."""
    import ctypes
    import time
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(root, "python"))
    os.environ.setdefault("SEMBED_LIBRARY", os.path.join(root, "build", "libsembed.so"))
    import sembed
    from sembed import _lib
    from sembed._lib import lib
    st = sembed.SentenceTransformer(model)
    Q = np.ascontiguousarray(st.encode([t for _, t in qs]), dtype=np.float32)
    with sembed.Index.open(idx_path, read_only=True) as idx:
        ptr = idx._ptr()
        hits = (_lib.se_index_hit * 10)()
        nh = ctypes.c_size_t()
        err = _lib.se_error()
        out = {}
        for name, mode in (("vector", 0), ("keyword", 1), ("hybrid", 2)):
            p = lib.se_index_search_default_params()
            p.k, p.mode = 10, mode
            ts = []
            for i, (_, t) in enumerate(qs):
                p.text = t.encode("utf-8")
                best = 1e9
                for _ in range(reps):
                    t0 = time.perf_counter()
                    _lib.check(lib.se_index_search(ptr, _lib.float_ptr(Q[i]), ctypes.byref(p), hits, ctypes.byref(nh),
                                                   ctypes.byref(err)), err)
                    best = min(best, time.perf_counter() - t0)
                ts.append(best * 1e3)
            out[name] = {"p50_ms": float(np.percentile(ts, 50)), "p95_ms": float(np.percentile(ts, 95))}
        out["hybrid_over_vector_p50"] = out["hybrid"]["p50_ms"] / out["vector"]["p50_ms"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sembed", default="build/sembed")
    ap.add_argument("--model", default="models/use-lite")
    ap.add_argument("--data", default="../shared/data/eval")
    ap.add_argument("--work", default="/tmp/fusion-sweep")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--alpha", type=float, default=0.2, help="the default's alpha (checked against the C build)")
    ap.add_argument("--flat", type=float, default=0.02, help="the default's flat-spread threshold")
    ap.add_argument("--vector-cand", type=int, default=20,
                    help="the vector candidates a hybrid search fuses at k 10 (src/index_fts.h SE_FUSE_VECTOR_MIN)")
    ap.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    ap.add_argument("--sets", default="scifact,zh", help="which sets (comma-separated)")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    alphas = [i / 20 for i in range(21)]
    thresholds = [0.005, 0.01, 0.02, 0.03, 0.05]
    res = {"model": a.model, "k": a.k, "default": {"fusion": "score", "alpha": a.alpha, "flat_spread": a.flat,
                                                          "vector_cand": a.vector_cand}}
    sets = a.sets.split(",")
    if "scifact" in sets:
        docs, qs, qrels = load_scifact(os.path.join(a.data, "beir-scifact"))
        idx = os.path.join(a.work, "scifact.idx")
        build_index(a.sembed, a.model, docs, idx)
        res["scifact"] = evaluate("scifact", a.sembed, idx, qs, qrels, a.work, a.k, alphas, thresholds, (a.alpha, a.flat),
                                  a.vector_cand)
        if not a.no_latency:
            res["scifact"]["latency"] = latency(idx, qs, a.model)
    if "zh" in sets:
        docs, qs, qrels = load_zh(os.path.join(a.data, "zh-STS-B.test.data"))
        idx = os.path.join(a.work, "zh.idx")
        build_index(a.sembed, a.model, docs, idx)
        res["zh"] = evaluate("zh", a.sembed, idx, qs, qrels, a.work, a.k, alphas, thresholds, (a.alpha, a.flat),
                             a.vector_cand)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
