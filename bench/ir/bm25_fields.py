#!/usr/bin/python3
"""bench/ir/bm25_fields.py - sembed's BM25 against the published Lucene figures on BEIR SciFact:
which of the setups (one field or two, k1 and b) gives which nDCG@10, over sembed's own tokens.

    bench/ir/bm25_fields.py [--scifact DIR] [--work DIR] [--keyword-json FILE] [-o FILE]

The tokens come from the keyword index's tokenizer itself (src/index_fts.c, through
bench/ir/tokens.c, built here against build/libsembed.a); stop words and the s of a possessive are
dropped as src/index_bm25.c drops them; the scoring is Lucene's BM25 (idf ln(1 + (N - n + 0.5) /
(n + 0.5)), tf / (tf + k1 (1 - b + b dl / avgdl)), lengths as Lucene's one-byte norms keep them,
a repeated query term counted again), per field when there are two (each field its own N, avgdl
and lengths), as:
  flat        title + " " + text as one field (what sembed indexes; eval ir's document)
  two_sum     title and text as two fields, their scores added (Anserini's multifield runs:
              a BooleanQuery of one SHOULD clause per field)
  best_fields title and text as two fields, the best field's score + 0.5 x the other's
              (Elasticsearch's multi_match best_fields, tie_breaker 0.5: BEIR's query)
each at Lucene/Elasticsearch's defaults (k1 1.2, b 0.75) and at Anserini's (k1 0.9, b 0.4).
nDCG@10 as trec_eval computes it (ties by document order). With --keyword-json (eval ir's JSON
of a --keyword run, bench/ir/.work/keyword.json) the flat figure at k1 1.2, b 0.75 is checked
against sembed's own in-memory scorer. Prints one JSON object.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STOP = set("a an and are as at be but by for if in into is it no not of on or such that the their then there "
           "these they this to was will with".split())
PUBLISHED = {"beir_elasticsearch": 66.5, "anserini_flat_k1_0.9_b_0.4": 67.89, "anserini_multifield_k1_0.9_b_0.4": 66.47}


def tokens_tool(work):
    """bench/ir/tokens.c built against build/libsembed.a (rebuilt when either is newer)."""
    exe, src, lib = os.path.join(work, "tokens"), os.path.join(ROOT, "bench", "ir", "tokens.c"), os.path.join(
        ROOT, "build", "libsembed.a")
    if not os.path.exists(lib):
        subprocess.run(["make", "-C", ROOT, "-j2", "build/libsembed.a"], check=True, stdout=sys.stderr)
    if not os.path.exists(exe) or os.path.getmtime(exe) < max(os.path.getmtime(src), os.path.getmtime(lib)):
        subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-I" + os.path.join(ROOT, "include"),
                        "-I" + os.path.join(ROOT, "src"), src, lib, "-ljansson", "-lutf8proc", "-lsqlite3", "-lz",
                        "-lcurl", "-lcrypto", "-lm", "-pthread", "-o", exe], check=True)
    return exe


def tokenize(exe, texts, query):
    """Each text's kept tokens (stop words and possessive s dropped as src/index_bm25.c does)."""
    data = "".join(t.replace("\n", "\x01") + "\n" for t in texts).encode("utf-8")
    out = subprocess.run([exe] + (["q"] if query else []), input=data, stdout=subprocess.PIPE, check=True).stdout
    lines = out.split(b"\n")[:len(texts)]
    res = []
    for text, line in zip(texts, lines):
        b = text.replace("\n", "\x01").encode("utf-8").replace(b"\x01", b"\n")
        kept = []
        for item in line.split(b"\t"):
            if not item:
                continue
            tok, s, e = item.split(b"\x1f")
            s, e = int(s), int(e)
            span = b[s:e]
            if span.lower() in STOP_B:
                continue
            if span in (b"s", b"S") and (b[s - 1:s] == b"'" or (s >= 3 and b[s - 3:s] == b"\xe2\x80\x99")):
                continue
            kept.append(tok.decode("utf-8", "surrogateescape"))
        res.append(kept)
    return res


STOP_B = {w.encode() for w in STOP}


def lucene_len(n):
    """SmallFloat.byte4ToInt(intToByte4(n)): exact below 24, then 4 significant bits."""
    if n < 32:
        return n
    i = n - 24
    sh = i.bit_length() - 4
    return 24 + (((i >> sh) & 7) | 8) * (1 << sh)


class Field:
    """One field's postings, lengths and statistics."""

    def __init__(self, docs):
        self.dl = [lucene_len(len(d)) for d in docs]
        self.n_docs = sum(1 for d in docs if d)
        self.avgdl = sum(len(d) for d in docs) / self.n_docs
        self.post = defaultdict(list)
        for i, d in enumerate(docs):
            for t, f in Counter(d).items():
                self.post[t].append((i, f))

    def score(self, query, k1, b):
        s = defaultdict(float)
        for t in query:
            p = self.post.get(t)
            if not p:
                continue
            idf = math.log(1 + (self.n_docs - len(p) + 0.5) / (len(p) + 0.5))
            for i, f in p:
                s[i] += idf * f / (f + k1 * (1 - b + b * self.dl[i] / self.avgdl))
        return s


def ndcg10(ranked, qrels):
    tot = 0.0
    for qid, docs in ranked.items():
        rel = qrels[qid]
        dcg = sum(rel.get(d, 0) / math.log2(r + 2) for r, d in enumerate(docs[:10]))
        ideal = sorted((g for g in rel.values() if g > 0), reverse=True)[:10]
        tot += dcg / sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
    return 100 * tot / len(ranked)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scifact", default=os.path.join(ROOT, "..", "shared", "data", "eval", "beir-scifact"))
    ap.add_argument("--work", default=os.path.join(ROOT, "bench", "ir", ".work"))
    ap.add_argument("--keyword-json")
    ap.add_argument("-o", "--output")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    exe = tokens_tool(args.work)
    d = args.scifact
    docs = [json.loads(x) for x in open(os.path.join(d, "corpus.jsonl"), encoding="utf-8")]
    queries = {}
    for x in open(os.path.join(d, "queries.jsonl"), encoding="utf-8"):
        o = json.loads(x)
        queries[o["_id"]] = o["text"]
    qp = os.path.join(d, "qrels.tsv")
    if not os.path.exists(qp):
        qp = os.path.join(d, "qrels", "test.tsv")
    qrels = {}
    for i, x in enumerate(open(qp, encoding="utf-8")):
        p = x.rstrip("\n").split("\t")
        if i == 0 and not p[-1].lstrip("-").isdigit():
            continue
        qrels.setdefault(p[0], {})[p[1]] = int(p[2])
    qids = [q for q in qrels if q in queries]
    ids = [o["_id"] for o in docs]
    t0 = time.time()
    flat = tokenize(exe, [(o.get("title", "") + " " + o["text"]).strip() for o in docs], False)
    title = tokenize(exe, [o.get("title", "") for o in docs], False)
    text = tokenize(exe, [o["text"] for o in docs], False)
    qtok = dict(zip(qids, tokenize(exe, [queries[q] for q in qids], True)))
    fields = {"flat": [Field(flat)], "two": [Field(title), Field(text)]}
    combine = {"flat": ("flat", sum), "two_sum": ("two", sum),
               "best_fields": ("two", lambda v: max(v) + 0.5 * (sum(v) - max(v)))}
    out = {"benchmark": "ir-bm25-fields", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "scifact": d, "docs": len(docs), "queries": len(qids), "ndcg@10_x100": {}, "published": PUBLISHED}
    for k1, b in ((1.2, 0.75), (0.9, 0.4)):
        for name, (fk, comb) in combine.items():
            ranked = {}
            for q in qids:
                per = [f.score(qtok[q], k1, b) for f in fields[fk]]
                keys = set().union(*per)
                sc = {i: comb([p.get(i, 0.0) for p in per]) for i in keys}
                ranked[q] = [ids[i] for i, _ in sorted(sc.items(), key=lambda x: (-x[1], x[0]))[:10]]
            out["ndcg@10_x100"][f"{name}_k1_{k1}_b_{b}"] = round(ndcg10(ranked, qrels), 2)
    out["seconds"] = round(time.time() - t0, 1)
    if args.keyword_json:
        with open(args.keyword_json) as f:
            kw = 100 * json.load(f)["metrics"]["ndcg@10"]
        out["sembed_keyword_ndcg@10_x100"] = round(kw, 2)
        out["flat_equals_sembed"] = abs(kw - out["ndcg@10_x100"]["flat_k1_1.2_b_0.75"]) < 0.005
    text = json.dumps(out, indent=1).replace(ROOT + "/", "")
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
