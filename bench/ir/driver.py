#!/usr/bin/python3
"""bench/ir/driver.py - retrieval quality and search latency on BEIR SciFact (and a Chinese set),
through `sembed eval ir`; prints one JSON object (README.md in bench/ describes it).

    bench/ir/driver.py [--sembed build/sembed] [--model models/use-lite] [--rerank CE_DIR]
                       [--scifact DIR] [--zh DIR] [--work DIR] [--threads N] [-o FILE]

Every step is one `sembed eval ir ... --json --run FILE` into --work (default bench/ir/.work);
a step whose JSON and run file are already there is reused (delete them to redo it), because
embedding SciFact's 20,000 chunks takes half an hour on one loaded core. Steps:
  exact          dense, exact, whole documents (truncated to max_seq_length): the evaluator's way
  exact_chunks   dense, exact over the index's chunks, best chunk per document
  hnsw_vector    dense through the index at default settings (HNSW, ef 64, chunks)
  keyword        BM25 through the index
  hybrid         default fusion; hybrid_rrf, hybrid_score: the two fusions by name
  rerank         hybrid + --rerank CE_DIR (top 100) when --rerank is given
  zh_*           the same on the Chinese set (dense exact, keyword, hybrid), index in --work
Derived: recall@10 of hnsw_vector against exact_chunks (documents shared by the two top 10s,
per query, averaged); search latency p50 (se_index_search alone, one thread; the query vector is
encoded before the clock starts) for vector and hybrid; every step's metrics against
tools/ir_eval_ref.py on its run file (the largest absolute difference).
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(*a):
    print("bench/ir:", *a, file=sys.stderr, flush=True)


def step(args, name, folder, *extra):
    """Runs (or reuses) one eval ir step; returns its JSON, with the run file's path."""
    js, run = os.path.join(args.work, name + ".json"), os.path.join(args.work, name + ".run")
    if os.path.exists(js) and os.path.exists(run):
        log(f"{name}: reusing {js}")
    else:
        cmd = [args.sembed, "eval", "ir", "-m", args.model, folder, "--json", "--run", run, "-t", str(args.threads),
               *extra]
        log(f"{name}: " + " ".join(cmd))
        t0 = time.time()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            log(f"{name}: failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
            return {"error": p.stderr.strip()[-500:]}
        with open(js, "w") as f:
            f.write(p.stdout)
        log(f"{name}: {time.time() - t0:.0f} s")
    with open(js) as f:
        out = json.load(f)
    out["run_file"] = run
    return out


def reference_diff(folder, res):
    """The largest |sembed - tools/ir_eval_ref.py| over the step's metrics."""
    if "metrics" not in res:
        return None
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "ir_eval_ref.py"), folder, res["run_file"]],
                       stdout=subprocess.PIPE, text=True, check=True)
    ref = json.loads(p.stdout)["metrics"]
    return max(abs(res["metrics"][k] - ref[k]) for k in ref)


def read_run(path):
    """{qid: [docid, ...]} in rank order."""
    out = {}
    with open(path) as f:
        for line in f:
            q, _, d, r, _, _ = line.split()
            out.setdefault(q, []).append((int(r), d))
    return {q: [d for _, d in sorted(v)] for q, v in out.items()}


def recall_vs(approx, exact, k=10):
    """Mean over queries of |top k(approx) & top k(exact)| / |top k(exact)|."""
    a, e = read_run(approx), read_run(exact)
    vals = [len(set(a.get(q, [])[:k]) & set(e[q][:k])) / len(e[q][:k]) for q in e if e[q]]
    return sum(vals) / len(vals), sum(v == 1.0 for v in vals), len(vals)


def summary(res):
    """The figures worth a table: nDCG@10 and friends, x100."""
    if "metrics" not in res:
        return res
    m = res["metrics"]
    return {"ndcg@10": round(100 * m["ndcg@10"], 2), "mrr@10": round(100 * m["mrr@10"], 2),
            "recall@100": round(100 * m["recall@100"], 2), "map@100": round(100 * m["map@100"], 2),
            "search_ms_p50": res.get("search_ms_p50")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sembed", default=os.path.join(ROOT, "build", "sembed"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "use-lite"))
    ap.add_argument("--rerank")
    ap.add_argument("--rerank-meaningless", action="store_true",
                    help="the --rerank model is a test fixture: its figures only show the pipeline runs")
    ap.add_argument("--scifact", default=os.path.join(ROOT, "..", "shared", "data", "eval", "beir-scifact"))
    ap.add_argument("--zh", default=os.path.join(ROOT, "tests", "fixtures", "eval", "zh-stsb-ir"))
    ap.add_argument("--work", default=os.path.join(ROOT, "bench", "ir", ".work"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--note", action="append", default=[], help="a line about the conditions, kept in the JSON")
    ap.add_argument("-o", "--output")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    sf, zh = args.scifact, args.zh
    idx, zidx = os.path.join(args.work, "scifact.idx"), os.path.join(args.work, "zh.idx")
    steps = {}
    steps["exact"] = step(args, "exact", sf)
    steps["exact_chunks"] = step(args, "exact_chunks", sf, "--chunks")
    steps["hnsw_vector"] = step(args, "hnsw_vector", sf, "--index", idx)
    steps["keyword"] = step(args, "keyword", sf, "--index", idx, "--keyword")
    steps["hybrid"] = step(args, "hybrid", sf, "--index", idx, "--hybrid")
    steps["hybrid_rrf"] = step(args, "hybrid_rrf", sf, "--index", idx, "--hybrid", "--fusion", "rrf")
    steps["hybrid_score"] = step(args, "hybrid_score", sf, "--index", idx, "--hybrid", "--fusion", "score")
    if args.rerank:
        steps["rerank"] = step(args, "rerank", sf, "--index", idx, "--hybrid", "--rerank", args.rerank,
                               "--rerank-top", "100")
    steps["zh_dense"] = step(args, "zh_dense", zh)
    steps["zh_keyword"] = step(args, "zh_keyword", zh, "--index", zidx, "--keyword")
    steps["zh_hybrid"] = step(args, "zh_hybrid", zh, "--index", zidx, "--hybrid")
    folder = {n: (zh if n.startswith("zh_") else sf) for n in steps}
    diffs = {n: reference_diff(folder[n], r) for n, r in steps.items()}
    out = {"benchmark": "ir", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "model": args.model,
           "threads": args.threads, "scifact": sf, "zh": zh, "notes": args.note,
           "ndcg@10_x100": {n: summary(r).get("ndcg@10") for n, r in steps.items()},
           "summary": {n: summary(r) for n, r in steps.items()}}
    if "metrics" in steps["exact_chunks"] and "metrics" in steps["hnsw_vector"]:
        r, full, n = recall_vs(steps["hnsw_vector"]["run_file"], steps["exact_chunks"]["run_file"])
        out["recall@10_default_vs_exact_chunks"] = {"recall": round(r, 4), "queries_complete": full, "queries": n,
                                                    "goal": 0.97}
    v, h = steps["hnsw_vector"].get("search_ms_p50"), steps["hybrid"].get("search_ms_p50")
    out["latency_p50_ms"] = {"vector": v, "hybrid": h, "ratio": round(h / v, 2) if v and h else None, "goal_ratio": 2.0}
    kw = steps["keyword"].get("metrics", {}).get("ndcg@10")
    out["bm25_vs_beir"] = {"sembed_ndcg@10_x100": round(100 * kw, 2) if kw is not None else None, "beir_published": 66.5,
                           "difference": round(100 * kw - 66.5, 2) if kw is not None else None}
    out["reference_max_abs_diff"] = diffs
    out["reference_ok"] = all(d is not None and d <= 1e-4 for d in diffs.values())
    if args.rerank:
        out["rerank_note"] = ("no real cross-encoder exists on this machine: the rerank step used a test fixture, so its "
                              "figures only show that the pipeline runs; they are meaningless as quality"
                              if args.rerank_meaningless else "cross-encoder: " + args.rerank)
    else:
        out["rerank_note"] = "no --rerank given (no real cross-encoder exists on this machine)"
    out["steps"] = {n: {k: v for k, v in r.items() if k != "run_file"} for n, r in steps.items()}
    text = json.dumps(out, indent=1).replace(ROOT + "/", "")  # paths relative to the project
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
