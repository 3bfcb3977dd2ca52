#!/usr/bin/python3
"""bm25_reference.py - an independent BM25 reference for src/index_bm25.c's test.

Writes tests/fixtures/bm25/reference.tsv: a synthetic corpus (300 documents
over 60 made-up words that the porter stemmer leaves as they are, mixed
with English stop words, capitals and possessives 's), 40 queries, and each
query's top 10 as Lucene's BM25 ranks them, computed here in numpy:

  idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))
  score  = sum over query tokens (repeats count) idf(t) tf / (tf + k1 (1 - b + b dl / avgdl))

k1 1.2, b 0.75; tokens: lower-cased runs of letters and digits, Lucene's
English stop words and the s of a possessive dropped; dl the document's
token count as Lucene's norms keep it (SmallFloat.intToByte4 then
byte4ToInt: exact below 24, 4 significant bits above), avgdl exact.
Ranking: score descending, ties by row id. Lines:
  D <tab> row id <tab> text
  Q <tab> text
  R <tab> rank <tab> row id <tab> score       (after its Q)

usage: tools/bm25_reference.py [OUT]
"""
import math
import re
import sys

import numpy as np

STOP = set("a an and are as at be but by for if in into is it no not of on or such that the their then there "
           "these they this to was will with".split())
K1, B = 1.2, 0.75


def tokens(text):
    out = []
    for m in re.finditer(r"[A-Za-z0-9]+", text):
        w = m.group(0).lower()
        if w in STOP:
            continue
        if w == "s" and m.start() > 0 and text[m.start() - 1] == "'":
            continue
        out.append(w)
    return out


def lucene_len(n):
    if n < 24:
        return n
    i = n - 24
    bits = i.bit_length()
    if bits < 4:
        return n
    shift = bits - 4
    return 24 + ((((i >> shift) & 7) | 8) << shift)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/bm25/reference.tsv"
    rng = np.random.default_rng(14)
    syl = ["ba", "do", "ki", "mu", "te", "zo", "ra", "ni"]
    vocab = sorted({a + b + c for a in syl for b in syl for c in "kp"})[:60]
    stop = sorted(STOP)
    # Zipf-like word frequencies, so that idf varies
    pw = 1.0 / np.arange(1, len(vocab) + 1)
    pw /= pw.sum()
    docs = []
    for d in range(300):
        n = int(rng.integers(3, 80))
        words = []
        for _ in range(n):
            r = rng.random()
            if r < 0.2:
                words.append(stop[int(rng.integers(len(stop)))])
            else:
                w = vocab[int(rng.choice(len(vocab), p=pw))]
                if r > 0.95:
                    w = w.capitalize()
                elif r > 0.92:
                    w += "'s"
                words.append(w)
        docs.append((d * 3 + 1, " ".join(words) + "."))
    toks = [tokens(t) for _, t in docs]
    N = len(docs)
    avgdl = sum(len(t) for t in toks) / N
    df = {}
    for t in toks:
        for w in set(t):
            df[w] = df.get(w, 0) + 1
    tf = [{} for _ in toks]
    for i, t in enumerate(toks):
        for w in t:
            tf[i][w] = tf[i].get(w, 0) + 1
    dl = np.array([lucene_len(len(t)) for t in toks], dtype=np.float64)
    norm = K1 * (1 - B + B * dl / avgdl)
    queries = []
    for q in range(40):
        n = int(rng.integers(1, 8))
        ws = [vocab[int(rng.integers(len(vocab)))] for _ in range(n)]
        if q % 5 == 0:
            ws += ["the", "of", ws[0]]  # stop words, and a repeated term
        if q % 7 == 0:
            ws.append("unknownword")
        queries.append(" ".join(ws) + "?")
    with open(out, "w", encoding="utf-8") as f:
        for rid, t in docs:
            f.write("D\t%d\t%s\n" % (rid, t))
        for q in queries:
            f.write("Q\t%s\n" % q)
            qt = tokens(q)
            order = []
            cnt = {}
            for w in qt:  # distinct terms in first-seen order, with their counts
                if w not in cnt:
                    order.append(w)
                cnt[w] = cnt.get(w, 0) + 1
            score = np.zeros(N)
            for w in order:
                if w not in df:
                    continue
                idf = math.log(1 + (N - df[w] + 0.5) / (df[w] + 0.5))
                x = np.array([tf[i].get(w, 0) for i in range(N)], dtype=np.float64)
                score += cnt[w] * idf * x / (x + norm)
            hit = [i for i in range(N) if score[i] > 0]
            hit.sort(key=lambda i: (-score[i], docs[i][0]))
            for r, i in enumerate(hit[:10]):
                f.write("R\t%d\t%d\t%.9f\n" % (r, docs[i][0], score[i]))


if __name__ == "__main__":
    main()
