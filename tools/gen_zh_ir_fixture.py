#!/usr/bin/python3
"""gen_zh_ir_fixture.py - makes tests/fixtures/eval/zh-stsb-ir, a Chinese
question -> passage set in the BEIR layout, from the Chinese STS-B test file.

    tools/gen_zh_ir_fixture.py ../shared/data/eval/zh-STS-B.test.data tests/fixtures/eval/zh-stsb-ir

Corpus: every distinct second sentence of the 1361 pairs. Queries: the first
sentence of each pair scored >= 4 (near paraphrases), relevant: its own
second sentence (score 1). Lines keep their order; CR line ends stripped.
"""
import gzip
import json
import os
import sys


def main(src, dst):
    pairs = []
    with open(src, encoding="utf-8") as f:
        for line in f:
            s1, s2, sc = line.rstrip("\r\n").split("\t")
            pairs.append((s1.strip(), s2.strip(), float(sc)))
    doc_id, docs = {}, []
    for _, s2, _ in pairs:
        if s2 not in doc_id:
            doc_id[s2] = "zd%d" % len(docs)
            docs.append(s2)
    queries, qrels, seen = [], [], {}
    for s1, s2, sc in pairs:
        if sc < 4:
            continue
        if s1 not in seen:
            seen[s1] = "zq%d" % len(queries)
            queries.append(s1)
        qrels.append((seen[s1], doc_id[s2]))
    qrels = sorted(set(qrels), key=lambda r: (int(r[0][2:]), int(r[1][2:])))
    os.makedirs(dst, exist_ok=True)
    with gzip.GzipFile(os.path.join(dst, "corpus.jsonl.gz"), "wb", mtime=0) as f:
        for i, t in enumerate(docs):
            f.write((json.dumps({"_id": "zd%d" % i, "title": "", "text": t}, ensure_ascii=False) + "\n").encode())
    with gzip.GzipFile(os.path.join(dst, "queries.jsonl.gz"), "wb", mtime=0) as f:
        for i, t in enumerate(queries):
            f.write((json.dumps({"_id": "zq%d" % i, "text": t}, ensure_ascii=False) + "\n").encode())
    with open(os.path.join(dst, "qrels.tsv"), "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, d in qrels:
            f.write("%s\t%s\t1\n" % (q, d))
    print(len(docs), "documents,", len(queries), "queries,", len(qrels), "qrels")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
