#!/usr/bin/python3
"""fusion_sweep.py - choose hybrid search's default fusion by measurement.

For each retrieval set (a BEIR folder) it caches both sides' candidate lists
once (se_index_search through the Python binding: the vector side's best
chunk per document, top 200, and BM25's top 1000, with their scores), then
replays fusions over them in numpy-free Python exactly as
src/index_fusion.c computes them, and prints JSON with nDCG@10 (x100) per set
and method, each at the candidate counts of a top-10 search (vector 20,
keyword 100: `sembed search`) and of a top-100 one (200, 1000: `sembed eval
ir`), plus each method's worst margin over max(dense, BM25) across the sets:

  scifact  BEIR SciFact test (5,183 abstracts, 300 queries): dense is weak
  zh       tests/fixtures/eval/zh-stsb-ir: Chinese, the default model reads nothing
  en       tests/fixtures/eval/en-stsb-ir: English paraphrases, dense the better side
  en-hard  tests/fixtures/eval/en-stsb-ir-hard: en with 2,833 distractors

Methods: rrf (k 60, and a vector weight); score (min-max over the lists,
alpha 0..1; "+flat": alpha 0 when the vector spread, best minus 10th score,
is < 0.02: the previous default was score 0.2 +flat); z (z-scores over the
lists); conf (a per-query alpha from each side's own relative top gap);
depth (min-max against the 20th vector and 100th BM25 score, floored at 0:
the same ranking whatever the candidate counts) and ramp (depth with a
per-query alpha from lo to hi as the vector spread grows from s0 to s1;
the default: lo 0.2, hi 0.8, s0 0.1, s1 0.3, flat 0.02).

"vector_cand": the default with the vector list cut to 10, 20, 50, 200
candidates (BM25's to 100). The C build is checked against the replay: `sembed eval ir --hybrid` (the
default fusion, top 100) must give the replay's nDCG@10, and a top-10
se_index_search --hybrid the replay's top 10 on every query ("c_check").

usage: tools/fusion_sweep.py [--sembed build/sembed] [--model models/use-lite]
           [--work /tmp/fusion-sweep] [--sets scifact,zh,en,en-hard] [--scifact DIR]
           [--index NAME=FILE ...] [--full] [--latency]
Run from the repository root. Indexes are built under --work by `sembed eval
ir --index` when missing (SciFact: tens of minutes; --index reuses one);
rankings are cached there too (NAME.rank.json; delete to redo). --full adds
the whole grid (slow: minutes per set); --latency times se_index_search per
mode (one thread, k 10, p50/p95) on each set.
"""
import argparse
import ctypes
import gzip
import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VK, KK = 200, 1000  # cached candidates: a top-100 hybrid search's (src/index.c: 2 k and 10 k)
REGIMES = {"k10": (20, 100), "k100": (200, 1000)}
FLAT_N = 10  # se_fuse_spread's rank (src/index_fts.h SE_FUSE_FLAT_N)
DEFAULT = ("ramp", {"lo": 0.2, "hi": 0.8, "s0": 0.1, "s1": 0.3, "flat": 0.02})  # src/index_fts.h
BIG = 1 << 40


def opengz(d, name):
    for p, op in ((os.path.join(d, name), open), (os.path.join(d, name + ".gz"), gzip.open)):
        if os.path.exists(p):
            return op(p, "rt", encoding="utf-8")
    return None


def load_beir(d):
    """The queries with a relevant document (qrels order) and the qrels {query: {doc: gain}}."""
    queries = {}
    for line in opengz(d, "queries.jsonl"):
        o = json.loads(line)
        queries[o["_id"]] = o["text"]
    f = opengz(d, "qrels.tsv") or opengz(d, os.path.join("qrels", "test.tsv"))
    qrels = {}
    for i, line in enumerate(f):
        p = line.rstrip("\n").split("\t") if "\t" in line else line.split()
        if i == 0 and not p[-1].lstrip("-").isdigit():
            continue  # the header
        if int(p[-1]) > 0:
            qrels.setdefault(p[0], {})[p[1] if len(p) == 3 else p[2]] = int(p[-1])
    return [(q, queries[q]) for q in qrels], qrels


def binding():
    sys.path.insert(0, os.path.join(ROOT, "python"))
    os.environ.setdefault("SEMBED_LIBRARY", os.path.join(ROOT, "build", "libsembed.so"))
    import sembed
    from sembed import _lib
    return sembed, _lib, _lib.lib


def searches(idx_path, model, qs, mode, k):
    """se_index_search for every query: [[(ext id, score)]] (mode 0 vector, 1 keyword, 2 hybrid default)."""
    sembed, _lib, lib = binding()
    Q = None
    if mode != 1:
        import numpy as np
        Q = np.ascontiguousarray(sembed.SentenceTransformer(model).encode([t for _, t in qs]), dtype=np.float32)
    ext, out = {}, []
    with sembed.Index.open(idx_path, read_only=True) as ix:
        ptr, err = ix._ptr(), _lib.se_error()
        p = lib.se_index_search_default_params()
        p.k, p.mode, p.best_chunk_per_doc = k, mode, True
        hits, nh = (_lib.se_index_hit * k)(), ctypes.c_size_t()
        for i, (_, t) in enumerate(qs):
            p.text = t.encode("utf-8")
            _lib.check(lib.se_index_search(ptr, _lib.float_ptr(Q[i]) if Q is not None else None, ctypes.byref(p), hits,
                                           ctypes.byref(nh), ctypes.byref(err)), err)
            row = []
            for h in hits[:nh.value]:
                if h.doc not in ext:
                    d = _lib.se_index_doc_out()
                    _lib.check(lib.se_index_fetch(ptr, h.doc, ctypes.byref(d), ctypes.byref(err)), err)
                    ext[h.doc] = ctypes.string_at(d.id).decode()
                    lib.se_free(d.id), lib.se_free(d.text), lib.se_free(d.meta)
                row.append((ext[h.doc], float(h.score)))
            out.append(row)
    return out


def ndcg10(ranked, rel):
    """nDCG@10 as trec_eval: linear gains from the qrels, ideal DCG over every judged document."""
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(rel.values(), reverse=True)[:10]
    return dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))


def spread(s):
    return s[0] - s[min(FLAT_N, len(s)) - 1] if len(s) >= 2 else 0.0


def minmax(s):
    if not s:
        return []
    lo, hi = min(s), max(s)
    return [(x - lo) / (hi - lo) for x in s] if hi > lo else [1.0] * len(s)


def depth(s, n):
    """min-max against the best and the n-th score (the last when shorter), floored at 0."""
    if not s:
        return []
    lo, hi = s[min(n, len(s)) - 1], s[0]
    return [max((x - lo) / (hi - lo), 0.0) for x in s] if hi > lo else [1.0] * len(s)


def zscore(s):
    if not s:
        return []
    m = sum(s) / len(s)
    sd = math.sqrt(sum((x - m) ** 2 for x in s) / len(s))
    z = [(x - m) / sd for x in s] if sd > 0 else [0.0] * len(s)
    lo = min(z)
    return [x - lo for x in z]  # a side that did not return a document adds 0: its own bottom


def rel_gap(s):
    """a side's own relative confidence: (best - 10th) / (best - last)."""
    if len(s) < 2 or s[0] <= s[-1]:
        return 0.0
    return (s[0] - s[min(FLAT_N, len(s)) - 1]) / (s[0] - s[-1])


def ramp_alpha(vs, p):
    """src/index_fusion.c se_fuse_default_alpha."""
    sp = spread(vs)
    if sp < p["flat"]:
        return 0.0
    t = min(max((sp - p["s0"]) / (p["s1"] - p["s0"]), 0.0), 1.0)
    return p["lo"] + t * (p["hi"] - p["lo"])


def fuse(name, p, v, kw):
    """One method's top 10 (ids) over the lists v, kw [(id, score)], ties as src/index_fusion.c."""
    vs, ks = [x[1] for x in v], [x[1] for x in kw]
    if name == "rrf":
        a = 0.0 if p.get("flat") and spread(vs) < p["flat"] else p.get("wv", 0.5)
        nv = [1.0 / (60 + i + 1) for i in range(len(v))]
        nk = [1.0 / (60 + i + 1) for i in range(len(kw))]
        wv, wk, vfirst = a, 1 - a, a >= 0.5 or "wv" not in p
    else:
        if name == "ramp":
            a = ramp_alpha(vs, p)
        elif name == "conf":
            cv, ck = rel_gap(vs), rel_gap(ks)
            cv = 0.0 if spread(vs) < p["flat"] else cv
            a = cv / (cv + ck) if cv + ck > 0 else 0.5
        else:
            a = 0.0 if p.get("flat") and spread(vs) < p["flat"] else p["a"]
        if name in ("ramp", "depth"):
            nv, nk = depth(vs, 20), depth(ks, 100)
        elif name == "z":
            nv, nk = zscore(vs), zscore(ks)
        else:
            nv, nk = minmax(vs), minmax(ks)
        wv, wk, vfirst = a, 1 - a, a >= 0.5
    docs = {}
    for i, (d, _) in enumerate(v):
        docs.setdefault(d, [-1, -1])[0] = i
    for i, (d, _) in enumerate(kw):
        docs.setdefault(d, [-1, -1])[1] = i
    rows = []
    for d, (vi, ki) in docs.items():
        s = (wv * nv[vi] if vi >= 0 else 0.0) + (wk * nk[ki] if ki >= 0 else 0.0)
        r1, r2 = (vi, ki) if vfirst else (ki, vi)
        rows.append((-s, r1 if r1 >= 0 else BIG, r2 if r2 >= 0 else BIG, d))
    rows.sort()
    return [r[3] for r in rows[:10]]


def methods(full):
    yield "rrf", {}
    yield "rrf", {"wv": 0.3, "flat": 0.02}
    for a in (0.2, 0.3, 0.5):
        yield "score", {"a": a}
        yield "score", {"a": a, "flat": 0.02}
        yield "z", {"a": a, "flat": 0.02}
        yield "depth", {"a": a, "flat": 0.02}
    yield "conf", {"flat": 0.02}
    yield DEFAULT
    if full:
        for a in (0.1, 0.4, 0.6, 0.7):
            yield "score", {"a": a, "flat": 0.02}
            yield "depth", {"a": a, "flat": 0.02}
        for lo in (0.15, 0.2, 0.25, 0.3):
            for hi in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
                for s0, s1 in ((0.05, 0.2), (0.05, 0.3), (0.1, 0.2), (0.1, 0.3), (0.1, 0.4), (0.15, 0.3)):
                    if (lo, hi, s0, s1) != (0.2, 0.8, 0.1, 0.3):
                        yield "ramp", {"lo": lo, "hi": hi, "s0": s0, "s1": s1, "flat": 0.02}


def label(name, p):
    return name + (" " + " ".join("%s=%g" % kv for kv in sorted(p.items())) if p else "")


def latency(idx_path, qs, model, reps=3):
    """p50 / p95 latency (ms) of se_index_search on one thread for each mode, k 10, over the
    queries (vectors encoded beforehand; the call alone is timed, best of reps per query)."""
    import time
    import numpy as np
    sembed, _lib, lib = binding()
    Q = np.ascontiguousarray(sembed.SentenceTransformer(model).encode([t for _, t in qs]), dtype=np.float32)
    out = {}
    with sembed.Index.open(idx_path, read_only=True) as ix:
        ptr, err = ix._ptr(), _lib.se_error()
        hits, nh = (_lib.se_index_hit * 10)(), ctypes.c_size_t()
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


def run_set(a, name, folder, idx):
    qs, qrels = load_beir(folder)
    if not os.path.exists(idx):
        print("fusion_sweep: building %s (sembed eval ir --index)" % idx, file=sys.stderr)
        subprocess.run([a.sembed, "eval", "ir", "-m", a.model, folder, "--index", idx, "-q", "--json"], check=True,
                       stdout=subprocess.DEVNULL)
    cache = os.path.join(a.work, name + ".rank.json")
    if os.path.exists(cache):
        with open(cache) as f:
            runs = json.load(f)
    else:
        runs = {"v": searches(idx, a.model, qs, 0, VK), "k": searches(idx, a.model, qs, 1, KK)}
        with open(cache, "w") as f:
            json.dump(runs, f)
    mean = lambda ranked: 100.0 * sum(ndcg10(r, qrels[q]) for r, (q, _) in zip(ranked, qs)) / len(qs)
    out = {"queries": len(qs), "dense": mean([[d for d, _ in r] for r in runs["v"]]),
           "bm25": mean([[d for d, _ in r] for r in runs["k"]]), "methods": {}}
    sp = sorted(spread([s for _, s in r]) for r in runs["v"])
    out["vector_spread"] = {"p5": sp[len(sp) // 20], "p50": sp[len(sp) // 2], "p95": sp[len(sp) * 19 // 20]}
    replay = {}
    for m, p in methods(a.full):
        res = {}
        for reg, (nv, nk) in REGIMES.items():
            tops = [fuse(m, p, v[:nv], k[:nk]) for v, k in zip(runs["v"], runs["k"])]
            res[reg] = mean(tops)
            if (m, p) == DEFAULT:
                replay[reg] = tops
        out["methods"][label(m, p)] = res
    # how many vector candidates the default needs (HNSW's cost grows with them; src/index_fts.h
    # SE_FUSE_VECTOR_MIN): the vector list cut to kv, BM25's to a top-10 search's 100
    out["vector_cand"] = {str(kv): mean([fuse(*DEFAULT, v[:kv], k[:100]) for v, k in zip(runs["v"], runs["k"])])
                          for kv in (10, 20, 50, 200)}
    # the C build against the replay
    ev = subprocess.run([a.sembed, "eval", "ir", "-m", a.model, folder, "--index", idx, "-q", "--json", "--hybrid"],
                        capture_output=True, text=True, check=True)
    c10 = searches(idx, a.model, qs, 2, 10)
    same = sum([d for d, _ in h] == r for h, r in zip(c10, replay["k10"]))
    out["c_check"] = {"eval_ir_hybrid": 100.0 * json.loads(ev.stdout)["metrics"]["ndcg@10"],
                      "replay_k100": out["methods"][label(*DEFAULT)]["k100"],
                      "search_k10_top10_equal": "%d/%d" % (same, len(qs))}
    if a.latency:
        out["latency"] = latency(idx, qs, a.model)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sembed", default="build/sembed")
    ap.add_argument("--model", default="models/use-lite")
    ap.add_argument("--work", default="/tmp/fusion-sweep")
    ap.add_argument("--sets", default="scifact,zh,en,en-hard")
    ap.add_argument("--scifact", default="../shared/data/eval/beir-scifact")
    ap.add_argument("--index", action="append", default=[], help="NAME=FILE: an index already built for a set")
    ap.add_argument("--full", action="store_true", help="the whole grid")
    ap.add_argument("--latency", action="store_true", help="also time se_index_search per mode (k 10, one thread)")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    folders = {"scifact": a.scifact, "zh": "tests/fixtures/eval/zh-stsb-ir", "en": "tests/fixtures/eval/en-stsb-ir",
               "en-hard": "tests/fixtures/eval/en-stsb-ir-hard"}
    given = dict(x.split("=", 1) for x in a.index)
    res = {"model": a.model, "default": label(*DEFAULT), "regimes": {k: {"vector": v[0], "keyword": v[1]}
                                                                     for k, v in REGIMES.items()}, "sets": {}}
    for name in a.sets.split(","):
        print("fusion_sweep: %s" % name, file=sys.stderr)
        res["sets"][name] = run_set(a, name, folders[name], given.get(name, os.path.join(a.work, name + ".idx")))
    # each method's worst margin over the better side, across sets and regimes
    worst = {}
    for s in res["sets"].values():
        best = max(s["dense"], s["bm25"])
        for m, r in s["methods"].items():
            worst[m] = min([worst.get(m, 1e9)] + [x - best for x in r.values()])
    res["worst_margin"] = dict(sorted(worst.items(), key=lambda kv: -kv[1]))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
