#!/usr/bin/python3
"""ir_eval_ref.py - an independent reference for `sembed eval ir`'s metrics.

Written from the metric definitions (sentence-transformers'
InformationRetrievalEvaluator; nDCG's graded gain as BEIR / trec_eval's
ndcg_cut), not from sembed's C code. numpy only.

    tools/ir_eval_ref.py BEIR_DIR RUN_FILE [--binary-ndcg]

BEIR_DIR: qrels.tsv or qrels/test.tsv (plain or .gz; "query-id corpus-id
score" or TREC's "qid 0 docid score"; a header line); queries.jsonl and
corpus.jsonl are not needed. RUN_FILE: a TREC run ("qid Q0 docid rank score
tag"), e.g. from `sembed eval ir --run FILE`. Prints one JSON object with
the metrics.

Definitions, per query with at least one relevant document (qrel score > 0),
then the mean over those queries (a query absent from the run counts as an
empty ranking):
  ranking        the run's documents sorted by score descending, equal
                 scores by document id descending (the rank column is
                 ignored); the first 100 kept
  accuracy@k     1 if a relevant document is among the first k
  precision@k    (relevant among the first k) / k
  recall@k       (relevant among the first k) / (relevant documents)
  MRR@k          1 / (position of the first relevant document) if <= k
  nDCG@k         sum_{i<k} g_i / log2(i+2) over the ranking divided by the
                 same sum over the qrel gains sorted descending; g = the
                 qrel score (graded) or 1 (--binary-ndcg)
  MAP@k          sum over relevant positions i <= k of (relevant in the
                 first i) / i, divided by min(k, relevant documents)
"""
import gzip
import json
import os
import sys

import numpy as np


def open_text(path):
    """Opens a plain or gzipped text file for reading."""
    return gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")


def find(d, name):
    """d/name or d/name.gz, or None."""
    for p in (os.path.join(d, name), os.path.join(d, name + ".gz")):
        if os.path.isfile(p):
            return p
    return None


def read_qrels(path):
    """{qid: {docid: score}}; a first line whose score is not an integer is a header."""
    qrels = {}
    with open_text(path) as f:
        for no, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            qid, did, sc = parts[0], parts[-2], parts[-1]
            try:
                s = int(sc)
            except ValueError:
                if no == 1:
                    continue
                raise
            qrels.setdefault(qid, {})[did] = s
    return qrels


def read_run(path):
    """{qid: [(docid, score)]} from a TREC run file."""
    run = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            qid, _, did, _, score = parts[:5]
            run.setdefault(qid, []).append((did, float(np.float32(score))))
    return run


def rank(hits):
    """Document ids by score descending, equal scores by id descending."""
    # two stable sorts: by id descending, then by score descending
    by_id = sorted(hits, key=lambda h: h[0], reverse=True)
    by_score = sorted(by_id, key=lambda h: -h[1])
    return [h[0] for h in by_score][:100]


def dcg(gains, k):
    """sum_{i<k} gains[i] / log2(i + 2)."""
    g = np.asarray(gains[:k], dtype=np.float64)
    return float(np.sum(g / np.log2(np.arange(len(g)) + 2.0)))


def evaluate(qrels, run, binary_ndcg=False):
    """The mean metrics over queries with a relevant document."""
    rows = []
    for qid in sorted(qrels):
        rel = {d: s for d, s in qrels[qid].items() if s > 0}
        if not rel:
            continue
        ranked = rank(run.get(qid, []))
        is_rel = np.array([d in rel for d in ranked], dtype=bool)
        n_rel = len(rel)
        pos = np.nonzero(is_rel)[0]  # 0-based positions of relevant hits
        first = pos[0] + 1 if len(pos) else None
        r = {}
        for k in (1, 3, 5, 10):
            r["accuracy@%d" % k] = 1.0 if first is not None and first <= k else 0.0
        for k in (1, 10):
            r["precision@%d" % k] = is_rel[:k].sum() / k
        for k in (1, 10, 100):
            r["recall@%d" % k] = is_rel[:k].sum() / n_rel
        r["mrr@10"] = 1.0 / first if first is not None and first <= 10 else 0.0
        gain = (lambda d: 1.0) if binary_ndcg else (lambda d: float(rel[d]))
        got = [gain(d) if d in rel else 0.0 for d in ranked]
        ideal = sorted((gain(d) for d in rel), reverse=True)
        r["ndcg@10"] = dcg(got, 10) / dcg(ideal, 10)
        p100 = pos[pos < 100]
        r["map@100"] = float(np.sum((np.arange(len(p100)) + 1.0) / (p100 + 1.0))) / min(100, n_rel)
        rows.append(r)
    keys = ["ndcg@10", "mrr@10", "recall@1", "recall@10", "recall@100", "map@100", "precision@1", "precision@10",
            "accuracy@1", "accuracy@3", "accuracy@5", "accuracy@10"]
    return {"queries": len(rows), "metrics": {k: float(np.mean([r[k] for r in rows])) for k in keys}}


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        sys.exit(__doc__)
    d, run_path = args
    qp = find(d, "qrels.tsv") or find(d, os.path.join("qrels", "test.tsv"))
    if not qp:
        sys.exit("ir_eval_ref: %s: no qrels.tsv or qrels/test.tsv" % d)
    out = evaluate(read_qrels(qp), read_run(run_path), "--binary-ndcg" in argv)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
