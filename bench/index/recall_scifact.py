#!/usr/bin/python3
"""Recall of sembed's vector search at default settings against exact search,
counted per document (best chunk per document), on BEIR SciFact (and a
synthetic clustered set that is harder for HNSW). Prints one JSON object.

    bench/index/recall_scifact.py [-o FILE] [--chunks default,64] [--ef 0,64,128,256]
                                  [--reps 3] [--data DIR] [--helper EXE]

For each chunking it builds (once; reused from bench/index/.work/scifact/)
an index of the 5,183 abstracts (title + " " + text) with `build/sembed
index build` and the default model, at the default index settings (HNSW, M
16, ef_construction 200). recall_search.c (built here against
build/libsembed.a) encodes the 300 queries and searches them one at a time
on one thread through se_index_search at default search settings (ef 0 =
the index's default; further --ef values for the curve). The exact
reference is computed here with numpy from the chunk vectors the index file
stores: each document scores its best chunk, top 10 documents (what a flat
index returns).

recall@10 of a query = |exact top-10 documents found in the returned top 10|
/ 10. Reported per chunking and ef: mean, per-query minimum, the share of
queries below 0.97, and latency p50 per query (search only, and encode +
search). tests/test_index_recall.c has the synthetic collection that is
harder for HNSW than SciFact (documents of 8 chunks in tight topics).
"""
import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORK = os.path.join(HERE, ".work", "scifact")


def log(msg):
    print("recall_scifact: " + msg, file=sys.stderr, flush=True)


def prepare(data):
    """Writes corpus.jsonl ({id, text}) and queries.txt (one per line) into WORK."""
    os.makedirs(WORK, exist_ok=True)
    corpus, queries = os.path.join(WORK, "corpus.jsonl"), os.path.join(WORK, "queries.txt")
    if not os.path.exists(corpus):
        with open(os.path.join(data, "corpus.jsonl")) as f, open(corpus + ".tmp", "w") as o:
            for line in f:
                d = json.loads(line)
                text = (d.get("title", "") + " " + d["text"]).strip()
                o.write(json.dumps({"id": d["_id"], "text": text}) + "\n")
        os.replace(corpus + ".tmp", corpus)
    if not os.path.exists(queries):
        with open(os.path.join(data, "queries.jsonl")) as f, open(queries + ".tmp", "w") as o:
            for line in f:
                o.write(" ".join(json.loads(line)["text"].split()) + "\n")
        os.replace(queries + ".tmp", queries)
    return corpus, queries


def build_index(corpus, chunk, model):
    """The index for one chunking ("default" or a token count), built once."""
    path = os.path.join(WORK, "chunk-%s.idx" % chunk)
    if os.path.exists(path):
        return path, 0.0
    cmd = [os.path.join(ROOT, "build", "sembed"), "index", "build", "-m", model, "-i", corpus, "-o", path + ".tmp.idx",
           "-q"]
    if chunk != "default":
        cmd += ["--chunk", str(chunk)]
    log("building %s" % os.path.basename(path))
    t0 = time.time()
    if os.path.exists(path + ".tmp.idx"):
        os.remove(path + ".tmp.idx")
    subprocess.run(cmd, check=True)
    os.replace(path + ".tmp.idx", path)
    return path, time.time() - t0


def build_helper():
    """Compiles recall_search.c against build/libsembed.a (when stale)."""
    subprocess.run(["make", "-s", "-C", ROOT, "build/libsembed.a"], check=True, stdout=sys.stderr)
    exe, src, lib = os.path.join(HERE, ".work", "recall_search"), os.path.join(HERE, "recall_search.c"), \
        os.path.join(ROOT, "build", "libsembed.a")
    if os.path.exists(exe) and os.path.getmtime(exe) > max(os.path.getmtime(src), os.path.getmtime(lib)):
        return exe
    libs = "-ljansson -lutf8proc -lsqlite3 -lz -lcurl -lcrypto -lm -pthread"
    with open(os.path.join(ROOT, "Makefile")) as f:
        for line in f:
            if line.startswith("LIBS") and ":=" in line:
                libs = line.split(":=", 1)[1].strip()
    subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-I" + os.path.join(ROOT, "include"), "-o", exe, src, lib]
                   + libs.split(), check=True)
    return exe


def chunk_vectors(path):
    """(doc row ids, L2-normalised chunk vectors) from the index file."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    meta = dict(db.execute("SELECT key, value FROM meta"))
    dim = int(meta["dim"])
    rows = db.execute("SELECT doc, vec FROM chunks ORDER BY id").fetchall()
    db.close()
    docs = np.array([r[0] for r in rows], dtype=np.int64)
    V = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim).astype(np.float64)
    V /= np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-12)
    return docs, V


def exact_top_docs(docs, V, Q, k):
    """Per query, the k documents with the best chunk (cosine), best first."""
    Q = Q.astype(np.float64)
    Q /= np.maximum(np.linalg.norm(Q, axis=1, keepdims=True), 1e-12)
    udocs, inv = np.unique(docs, return_inverse=True)
    out = []
    for q in Q:
        s = V @ q
        best = np.full(len(udocs), -np.inf)
        np.maximum.at(best, inv, s)
        top = np.argsort(-best, kind="stable")[:k]
        out.append([int(udocs[i]) for i in top])
    return out


def summarize(rows, exact, k):
    """recall@k per document against exact, and latency p50s."""
    rec = np.array([len(set(r["docs"][:k]) & set(exact[r["q"]])) / float(len(exact[r["q"]])) for r in rows])
    s = np.array([r["search_us"] for r in rows])
    e = np.array([r["encode_us"] for r in rows])
    return {"recall_at_%d" % k: round(float(rec.mean()), 4), "recall_min": round(float(rec.min()), 4),
            "queries_below_0.97": int((rec < 0.97).sum()), "queries": len(rows),
            "search_p50_us": round(float(np.median(s)), 1), "search_p90_us": round(float(np.percentile(s, 90)), 1),
            "encode_plus_search_p50_us": round(float(np.median(s + e)), 1)}


def run_scifact(args):
    corpus, queries = prepare(args.data)
    exe = args.helper or build_helper()
    out = []
    for chunk in args.chunks.split(","):
        path, build_s = build_index(corpus, chunk, args.model)
        docs, V = chunk_vectors(path)
        vecs = os.path.join(WORK, "queries-%s.f32" % chunk)
        log("searching %s (ef %s)" % (os.path.basename(path), args.ef))
        res = subprocess.run([exe, path, args.model, queries, "--ef", args.ef, "--k", str(args.k), "--reps",
                              str(args.reps), "--vecs", vecs], check=True, capture_output=True, text=True)
        rows = [json.loads(line) for line in res.stdout.splitlines()]
        Q = np.fromfile(vecs, dtype=np.float32).reshape(-1, V.shape[1])
        exact = exact_top_docs(docs, V, Q, args.k)
        entry = {"chunk": chunk, "documents": int(len(np.unique(docs))), "chunks": int(len(docs)),
                 "chunks_per_doc": round(len(docs) / float(len(np.unique(docs))), 2), "points": []}
        if build_s:
            entry["build_s"] = round(build_s, 1)
        for ef in [int(x) for x in args.ef.split(",")]:
            pt = {"ef": ef if ef else "default"}
            pt.update(summarize([r for r in rows if r["ef"] == ef], exact, args.k))
            entry["points"].append(pt)
        out.append(entry)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", help="also write the JSON here")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "eval", "beir-scifact"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "use-lite"))
    ap.add_argument("--chunks", default="default,64", help="chunkings: 'default' and/or token counts")
    ap.add_argument("--ef", default="0,64,128,256", help="search ef values; 0 = default settings")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3, help="timed searches per query (median)")
    ap.add_argument("--helper", help="a recall_search built against another libsembed (before/after comparisons)")
    args = ap.parse_args()
    t0 = time.time()
    result = {"benchmark": "recall_scifact", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "model": os.path.relpath(args.model, ROOT), "k": args.k, "threads": 1,
              "scifact": run_scifact(args)}
    result["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(result, indent=1)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
