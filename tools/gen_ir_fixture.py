#!/usr/bin/python3
"""gen_ir_fixture.py - makes tests/fixtures/eval/scifact-mini from BEIR SciFact.

    tools/gen_ir_fixture.py ../shared/data/eval/beir-scifact tests/fixtures/eval/scifact-mini

A seeded sample: 30 queries that have relevant documents, their relevant
documents, 100 other documents, each abstract cut to its first 300
characters (at a word; small enough for a test of a few seconds), and 6 deliberate duplicates (the same title and text
under the id "dup-<id>": equal vectors, so equal scores, which exercises the
tie rule). Gzipped JSONL and the qrels TSV with its header.
"""
import gzip
import json
import os
import random
import sys


def cut(s, n=300):
    """The first n characters of s, ending at a word."""
    if len(s) <= n:
        return s
    s = s[:n]
    return s[: s.rfind(" ")] if " " in s else s


def main(src, dst):
    rnd = random.Random(14)
    corpus = [json.loads(l) for l in open(os.path.join(src, "corpus.jsonl"), encoding="utf-8")]
    queries = [json.loads(l) for l in open(os.path.join(src, "queries.jsonl"), encoding="utf-8")]
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(src, "qrels.tsv"), encoding="utf-8")][1:]
    rel = {}
    for q, d, s in rows:
        rel.setdefault(q, []).append((d, s))
    qids = sorted(rel)
    pick = set(rnd.sample(qids, 30))
    want = {d for q in pick for d, _ in rel[q]}
    others = [c["_id"] for c in corpus if c["_id"] not in want]
    want |= set(rnd.sample(others, 100))
    docs = [dict(_id=c["_id"], title=c["title"], text=cut(c["text"])) for c in corpus if c["_id"] in want]
    relevant = sorted({d for q in pick for d, _ in rel[q]} & {c["_id"] for c in docs})
    for d in rnd.sample(relevant, 4) + rnd.sample([c["_id"] for c in docs if c["_id"] not in relevant], 2):
        c = next(c for c in docs if c["_id"] == d)
        docs.append(dict(_id="dup-" + d, title=c["title"], text=c["text"]))
    os.makedirs(dst, exist_ok=True)
    with gzip.GzipFile(os.path.join(dst, "corpus.jsonl.gz"), "wb", mtime=0) as f:
        for c in docs:
            f.write((json.dumps(c, ensure_ascii=False) + "\n").encode())
    with gzip.GzipFile(os.path.join(dst, "queries.jsonl.gz"), "wb", mtime=0) as f:
        for q in queries:
            if q["_id"] in pick:
                f.write((json.dumps(dict(_id=q["_id"], text=q["text"]), ensure_ascii=False) + "\n").encode())
    with open(os.path.join(dst, "qrels.tsv"), "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, d, s in rows:
            if q in pick:
                f.write("%s\t%s\t%s\n" % (q, d, s))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
