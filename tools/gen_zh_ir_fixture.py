#!/usr/bin/python3
"""gen_zh_ir_fixture.py - makes a question -> passage set in the BEIR layout
from STS pairs: tests/fixtures/eval/zh-stsb-ir (Chinese STS-B test),
tests/fixtures/eval/en-stsb-ir and en-stsb-ir-hard (English STS Benchmark).

    tools/gen_zh_ir_fixture.py ../shared/data/eval/zh-STS-B.test.data tests/fixtures/eval/zh-stsb-ir
    tools/gen_zh_ir_fixture.py --prefix e tests/fixtures/eval/stsbenchmark.tsv.gz tests/fixtures/eval/en-stsb-ir
    tools/gen_zh_ir_fixture.py --prefix h --distractors train,dev \\
        tests/fixtures/eval/stsbenchmark.tsv.gz tests/fixtures/eval/en-stsb-ir-hard

SRC is either `s1<TAB>s2<TAB>score` lines (the Chinese STS-B files) or the
STS Benchmark's own TSV (`split genre dataset year sid score sentence1
sentence2`, a header line, gzipped or not), of which the --split rows (test)
are used; CR characters are dropped (as `tr -d '\\r'`).

Corpus: every distinct second sentence of the pairs. Queries: the first
sentence of each pair scored >= 4 (near paraphrases), relevant: its own
second sentence (score 1). Lines keep their order. --distractors SPLITS (the
STS Benchmark's own format only) appends every distinct sentence (first and
second) of those splits' pairs to the corpus, in file order, except those
equal to a sentence of the --split pairs: unjudged documents that make the
set harder. Ids are PREFIX + "d" / "q" + a number (default prefix z).
"""
import argparse
import gzip
import json
import os


def read_pairs(src, split):
    """(s1, s2, score) of SRC's pairs, and the STS Benchmark rows by split
    ({} for the three-column format)."""
    op = gzip.open if src.endswith(".gz") else open
    with op(src, "rt", encoding="utf-8", newline="") as f:
        lines = [l.replace("\r", "").rstrip("\n") for l in f]
    if lines and lines[0].split("\t")[0] == "split":  # the STS Benchmark's own format
        by_split = {}
        for n, line in enumerate(lines[1:], 2):
            p = line.split("\t")
            if len(p) < 8:
                raise SystemExit("%s:%d: expected 8 tab-separated fields, got %d" % (src, n, len(p)))
            by_split.setdefault(p[0], []).append((p[6].strip(), p[7].strip(), float(p[5])))
        if split not in by_split:
            raise SystemExit("%s: no rows of split '%s'" % (src, split))
        return by_split[split], by_split
    pairs = []
    for n, line in enumerate(lines, 1):
        p = line.split("\t")
        if len(p) != 3:
            raise SystemExit("%s:%d: expected s1<TAB>s2<TAB>score, got %d fields" % (src, n, len(p)))
        pairs.append((p[0].strip(), p[1].strip(), float(p[2])))
    return pairs, {}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--split", default="test", help="the STS Benchmark split that gives the pairs (default test)")
    ap.add_argument("--distractors", default="", help="STS Benchmark splits whose sentences join the corpus (train,dev)")
    ap.add_argument("--prefix", default="z", help="id prefix (default z: zd0.., zq0..)")
    a = ap.parse_args()
    pairs, by_split = read_pairs(a.src, a.split)
    dp, qp = a.prefix + "d", a.prefix + "q"
    doc_id, docs = {}, []
    for _, s2, _ in pairs:
        if s2 not in doc_id:
            doc_id[s2] = "%s%d" % (dp, len(docs))
            docs.append(s2)
    queries, qrels, seen = [], [], {}
    for s1, s2, sc in pairs:
        if sc < 4:
            continue
        if s1 not in seen:
            seen[s1] = "%s%d" % (qp, len(queries))
            queries.append(s1)
        qrels.append((seen[s1], doc_id[s2]))
    qrels = sorted(set(qrels), key=lambda r: (int(r[0][len(qp):]), int(r[1][len(dp):])))
    n_test_docs = len(docs)
    if a.distractors:
        if not by_split:
            raise SystemExit("%s: --distractors needs the STS Benchmark's own format" % a.src)
        taken = {s for s1, s2, _ in pairs for s in (s1, s2)}
        for sp in a.distractors.split(","):
            if sp not in by_split:
                raise SystemExit("%s: no rows of split '%s'" % (a.src, sp))
            for s1, s2, _ in by_split[sp]:
                for s in (s1, s2):
                    if s and s not in taken:
                        taken.add(s)
                        docs.append(s)
    os.makedirs(a.dst, exist_ok=True)
    with gzip.GzipFile(os.path.join(a.dst, "corpus.jsonl.gz"), "wb", mtime=0) as f:
        for i, t in enumerate(docs):
            f.write((json.dumps({"_id": "%s%d" % (dp, i), "title": "", "text": t}, ensure_ascii=False) + "\n").encode())
    with gzip.GzipFile(os.path.join(a.dst, "queries.jsonl.gz"), "wb", mtime=0) as f:
        for i, t in enumerate(queries):
            f.write((json.dumps({"_id": "%s%d" % (qp, i), "text": t}, ensure_ascii=False) + "\n").encode())
    with open(os.path.join(a.dst, "qrels.tsv"), "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, d in qrels:
            f.write("%s\t%s\t1\n" % (q, d))
    print(len(docs), "documents (%d distractors)," % (len(docs) - n_test_docs) if a.distractors else "documents,",
          len(queries), "queries,", len(qrels), "qrels")


if __name__ == "__main__":
    main()
