#!/usr/bin/python3
"""Independent reference for sentence-transformers' `util` search / clustering helpers
and `quantize_embeddings`, used to test sembed's C implementation.

Run from the project root with Debian's Python (python3-torch, python3-numpy):

    /usr/bin/python3 tools/gen_util_reference.py

It writes tests/fixtures/util/util-reference.json (via a temporary file + rename).
The output is deterministic (fixed seed, one torch thread): a rerun is byte-identical.

Source followed
---------------
The behaviour below was worked out by reading sentence-transformers' own source
(UKPLab/sentence-transformers, master at version string "5.2.0.dev0"):
  * sentence_transformers/util/retrieval.py  @ e2f1fdcf300a74bc4e8838b220c92174d6384998
    (semantic_search, paraphrase_mining_embeddings, community_detection)
  * sentence_transformers/util/similarity.py @ 83888b6653b74f63f6a85df94faf47a73231ccfd
    (cos_sim, dot_score, euclidean_sim, manhattan_sim)
  * sentence_transformers/util/tensor.py     @ 2b69412bf42c9b6e1a6b137891b8f300c26c6ddc
    (normalize_embeddings)
  * sentence_transformers/quantization.py    @ 2b29783f9a3c9a791805f6a51d1dbbc68847c3c0
    and @ 61fa9c97c6c0a5d42338d099e7a6c88149b38ba1 (quantize_embeddings; the arithmetic
    is the same in both).
Nothing from that package is imported or copied; the code here is a fresh
implementation of the algorithms as described below, and every result is produced by
two independent paths (an ST-structured torch path with chunking / heaps / top-k, and a
brute-force numpy path) that must agree before anything is written.

Algorithms (in my words)
------------------------
Similarities (matrix of every query row against every corpus row):
  cosine    a.b / (max(|a|,1e-12) * max(|b|,1e-12))   (rows are L2-normalised first)
  dot       a.b
  euclidean -||a-b||_2     ("similarity" = negative distance)
  manhattan -||a-b||_1
  The fixture holds these computed in float64 from the float32 inputs.

semantic_search(queries, corpus, query_chunk_size, corpus_chunk_size, top_k, score):
  Queries are processed in blocks of query_chunk_size rows and, inside each block, the
  corpus in blocks of corpus_chunk_size rows.  For every (query block, corpus block) the
  score matrix is computed and, per query row, the best min(top_k, block length) entries
  of that corpus block are taken (unordered).  Their local column index is turned into a
  global one (block start + local index).  Each query keeps a min-heap of at most top_k
  (score, corpus_id) tuples: while the heap is short the entry is pushed, otherwise it is
  pushed and the smallest tuple is popped.  So chunking never changes the answer: each
  query ends with its global top min(top_k, n_corpus) corpus rows.  Output: for every
  query, a list of {"corpus_id", "score"} sorted by score, highest first (top_k larger
  than the corpus just returns every corpus row, sorted).  Only under an exact float tie
  would chunking matter: at the heap cut the tuple (score, id) order evicts the smaller
  corpus_id first, and the final sort is a stable sort on score alone applied to the
  heap's internal array order.  The fixture has no such ties.

paraphrase_mining_embeddings(emb, query_chunk_size=5000, corpus_chunk_size=100000,
                             max_pairs=500000, top_k=100, score=cos_sim):
  1. k = top_k + 1 (a row's best match is normally itself).
  2. Outer loop over corpus blocks, inner loop over query blocks (both over the same
     embeddings).  Per query row i and corpus block, the best min(k, block length)
     columns of that block are candidates j.  NB: this is per block, so with several
     corpus blocks a row contributes up to k candidates from EVERY block, and the row
     itself only uses up a slot in the block that contains it.
  3. Every candidate with i != j is offered, as the directed triple (score, i, j), to a
     min-priority-queue (tuples compared lexicographically) under this rule: it is
     inserted only if score > min_score (strict; min_score starts at -1, so a score
     <= -1 is never kept).  After an insertion a counter num_added is incremented and,
     if num_added >= max_pairs, the smallest tuple is popped and min_score becomes its
     score.  num_added is never decreased, so once it reaches max_pairs every further
     insertion is followed by a pop: the queue holds at most max_pairs - 1 directed
     triples (max_pairs = 1 therefore returns nothing).  With distinct scores the queue
     ends up holding exactly the max_pairs - 1 highest-scoring directed candidates.
  4. The queue is drained lowest-first; each triple becomes the pair
     (min(i,j), max(i,j)); a pair already seen is skipped, so (i,j) and (j,i) collapse
     to one pair (score taken from whichever direction was drained first - both
     directions have the same exact score).  Both directions count against the
     max_pairs - 1 slots, so the number of distinct pairs is usually about half of it;
     a pair is present if at least one of its directions survived the cut.
  5. Output: [score, i, j] with i < j, sorted by score, highest first (Python's stable
     sort; among equal scores the drain order, i.e. ascending (score, i, j), would be
     kept - no such ties in the fixture).

community_detection(emb, threshold=0.75, min_community_size=10, batch_size=1024):
  1. Rows are L2-normalised (so this is always cosine).
     min_community_size m := min(m, n)   (so m > n is clamped to n);
     sort_max_size := min(max(2*m, 50), n).
  2. Rows are processed in blocks of batch_size (this does not change the result).  For
     each row i in index order: compute cos(i, *) over all n rows (itself included).  If
     the m-th largest value is >= threshold (i.e. at least m rows, counting i itself,
     have cos >= threshold), row i is a community centre: take the top sort_max_size
     values; while the smallest of them is > threshold (strict) and sort_max_size < n,
     double sort_max_size (capped at n) and redo; then keep every index whose cos is
     >= threshold.  The growth persists for later rows; it never changes the answer
     (without exact ties) because it only ensures that all rows >= threshold are seen.
     The candidate community is therefore {j : cos(i,j) >= threshold} listed by
     decreasing cos(i,j) - i itself first.
  3. All candidates are sorted by length, longest first, with a STABLE sort (equal
     lengths keep row-index order).
  4. Overlap removal, greedy in that order: drop members already assigned to an accepted
     community (keeping the remaining members in their existing order); if at least m
     remain, accept the reduced list and mark its members assigned.  The first member of
     an accepted community is therefore not necessarily its centre (the centre may have
     been taken already).
  5. The accepted communities are sorted again by length, longest first, stable (so a
     community that lost members can move behind a later, larger one; equal lengths keep
     acceptance order).
  Threshold comparisons: ">= threshold" for membership and for the m-th-value test,
  "> threshold" only in the sort_max_size growth test.  ST compares float32 scores with
  a float32 threshold; the fixture keeps every cos at least min_gap away from each
  threshold so that precision cannot matter.

quantize_embeddings(emb, precision, ranges=None, calibration_embeddings=None):
  * int8 / uint8: ranges is a 2 x dim array [per-dim min; per-dim max]; if not given it
    is the per-dim min/max of calibration_embeddings, else of emb itself.
    step = (max - min) / 255 per dim; q = (x - min) / step.
      uint8 = q converted to uint8,    int8 = (q - 128) converted to int8,
    where the conversion is numpy's float->int astype, i.e. C truncation TOWARDS ZERO
    (no rounding, no clamping; out-of-range values are undefined behaviour, which the
    fixture avoids by using calibration ranges that strictly contain the embeddings).
    Consequences: uint8 = floor(q); int8 = trunc(q - 128), which for q < 128 is
    ceil(q) - 128, so int8 != uint8 - 128 whenever q < 128 is not an integer; int8 = 0
    for every q in (127, 129); int8 = -128 only when q == 0 exactly (x == min).
    ST does the arithmetic in float32 (numpy float32 arrays): step is a float32
    division, q a float32 subtract + divide, then a float32 "- 128".  With ranges taken
    from the data itself the extremes sit exactly on a boundary (q = 0 and q = 255
    mathematically); for x == max the float32 q may come out as 254.99998 (-> uint8 254
    / int8 126) or 255.0 (-> 255 / 127).  The fixture's *_self arrays follow that
    float32 arithmetic (as ST and a plain C float implementation do) and
    "self_f32_vs_exact" lists where exact arithmetic would differ.
  * binary / ubinary: bit = (x > 0) (strict: 0.0 and -0.0 give 0); bits are packed
    with numpy.packbits, i.e. 8 consecutive dims per byte, the FIRST dim in the MOST
    significant bit (big-endian bit order).  ST packs the flattened array and reshapes to
    (n, -1), which equals per-row packing only when dim % 8 == 0 (it is: dim 24).
    ubinary = packed bytes (uint8); binary = packed - 128 stored as int8 (numerically
    packed - 128, i.e. the byte with its top bit flipped, read as signed).

Fixture construction
--------------------
90 float32 embeddings of dim 24 (6 clusters of sizes 25/20/14/10/7/4 with different
spreads, one pair of clusters close to each other, plus 10 outliers, all rows shuffled
and rescaled by random norms so cosine and dot differ; a few components are exactly
0.0 to test the strict "> 0" of binary quantisation), 7 queries, and 40 calibration
vectors whose per-dim ranges strictly contain the embeddings.  The data are then nudged
(deterministic hill-climb on tiny perturbations: whole-row random jitter, targeted moves
that shift one cosine while holding the at-risk ones, row rescaling, single-component
nudges) until no answer depends on a near-tie:
  * every top-k cut (per corpus block too), the max_pairs cut, every threshold
    comparison (|cos - threshold| over all i != j) and every adjacent pair of a sorted
    output (search results, all paraphrase lists including the 4005-pair one, the members
    of every candidate community) is separated by >= GAP = 1e-5 (float64, exact inputs);
  * every int8/uint8 q value is >= QMARGIN = 1e-3 buckets from an integer (the
    x == min / x == max extremes of the *_self ranges excepted, see above), and every
    component that is not an exact 0.0 has |x| >= 1e-4 for the binary sign test.
The smallest gaps/margins actually observed are written to "min_gap".
"""

import heapq
import json
import math
import os
import sys
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "util")
OUT = os.path.join(OUT_DIR, "util-reference.json")

torch.set_num_threads(1)

SEED = 20240917
N, DIM, NQ, NCAL = 90, 24, 7, 40
GAP = 1e-5
GAP_FULL_ORDER = GAP  # the 4005-pair all-pairs paraphrase list (reported separately)
QMARGIN = 1e-3  # in quantisation buckets
BMARGIN = 1e-4  # |x| for the sign test (exact in float32 anyway)

ST_SOURCE = {
    "repo": "UKPLab/sentence-transformers",
    "version": "5.2.0.dev0 (master)",
    "files": {
        "sentence_transformers/util/retrieval.py": "e2f1fdcf300a74bc4e8838b220c92174d6384998",
        "sentence_transformers/util/similarity.py": "83888b6653b74f63f6a85df94faf47a73231ccfd",
        "sentence_transformers/util/tensor.py": "2b69412bf42c9b6e1a6b137891b8f300c26c6ddc",
        "sentence_transformers/quantization.py": "2b29783f9a3c9a791805f6a51d1dbbc68847c3c0 "
        "(same arithmetic as 61fa9c97c6c0a5d42338d099e7a6c88149b38ba1)",
    },
}

# ---------------------------------------------------------------------------
# Test cases
# ---------------------------------------------------------------------------

SS_CASES = [  # (score_function, top_k, query_chunk_size, corpus_chunk_size)
    ("cosine", 5, 3, 17),
    ("cosine", 12, 3, 17),  # last corpus block has 5 rows < top_k
    ("dot", 10, 100, 500000),
    ("dot", 10, 2, 7),
    ("cosine", 200, 100, 500000),  # top_k > corpus size: everything, sorted
    ("cosine", 1, 1, 30),
]

PM_CASES = [  # (top_k, max_pairs, query_chunk_size, corpus_chunk_size)
    (5, 40, 20, 30),
    (100, 500000, 5000, 100000),  # every pair, full order
    (5, 500000, 5000, 100000),
    (3, 25, 7, 13),
    (5, 1, 5000, 100000),  # max_pairs = 1 keeps nothing
]
FULL_ORDER_CASE = 1

CD_CASES = [  # (threshold, min_community_size, batch_size); "mid" is data-derived
    (0.75, 3, 16),
    (0.9, 2, 1024),
    (0.5, 10, 32),
    (0.75, 10, 1024),
    (0.1, 25, 64),  # rows with > sort_max_size (50) members: growth path
    ("mid", 1000, 1024),  # m clamped to n; threshold between the two largest row minima
    (-1.0, 1000, 7),  # m clamped to n; every row qualifies -> row 0 wins
    (0.9995, 2, 1024),
]


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def unit(v):
    return v / np.linalg.norm(v)


def draw_data(rng):
    sizes = [25, 20, 14, 10, 7, 4]
    spread = [0.72, 0.36, 0.2, 0.42, 0.25, 0.1]
    centres = [unit(rng.standard_normal(DIM)) for _ in sizes]
    centres[3] = unit(centres[1] + 0.95 * unit(rng.standard_normal(DIM)))  # near cluster 1
    pts, labels = [], []
    for k, (size, s) in enumerate(zip(sizes, spread)):
        for _ in range(size):
            noise = rng.standard_normal(DIM) / np.sqrt(DIM) * s * rng.uniform(0.6, 1.4)
            pts.append((centres[k] + noise) * 1.4 * np.exp(rng.normal(0, 0.35)))
            labels.append(k)
    for _ in range(N - sum(sizes)):
        pts.append(rng.standard_normal(DIM) / np.sqrt(DIM) * 1.4 * np.exp(rng.normal(0, 0.35)))
        labels.append(-1)
    perm = rng.permutation(N)
    emb = np.array(pts, dtype=np.float64)[perm].astype(np.float32)
    labels = np.array(labels)[perm]

    # exact zeros (binary quantisation: 0.0 is not > 0), pinned during the nudging
    zero_mask = np.zeros((N, DIM), dtype=bool)
    for r, c in [(3, 5), (17, 0), (40, 23), (41, 11), (77, 8)]:
        emb[r, c] = 0.0
        zero_mask[r, c] = True

    qs = []
    qs.append(centres[0] * 1.1 + rng.standard_normal(DIM) * 0.05)
    qs.append(centres[2] * 2.3 + rng.standard_normal(DIM) * 0.08)
    qs.append((centres[1] + centres[3]) * 0.9)
    qs.append((centres[4] + centres[5]) * 0.7 + rng.standard_normal(DIM) * 0.05)
    for _ in range(NQ - 4):
        qs.append(rng.standard_normal(DIM) / np.sqrt(DIM) * 1.4 * np.exp(rng.normal(0, 0.35)))
    queries = np.array(qs, dtype=np.float64).astype(np.float32)

    # calibration set: same kind of vectors, then per-dim extremes pushed strictly
    # outside the embeddings' range so the calibrated int8/uint8 never leave 0..255
    cal = []
    for _ in range(NCAL):
        k = rng.integers(len(sizes))
        noise = rng.standard_normal(DIM) / np.sqrt(DIM) * spread[k]
        cal.append((centres[k] + noise) * 1.4 * np.exp(rng.normal(0, 0.35)))
    cal = np.array(cal, dtype=np.float64)
    lo, hi = emb.min(0).astype(np.float64), emb.max(0).astype(np.float64)
    width = hi - lo
    for d in range(DIM):
        cal[(2 * d) % NCAL, d] = min(cal[:, d].min(), lo[d] - rng.uniform(0.03, 0.2) * width[d])
        cal[(2 * d + 1) % NCAL, d] = max(cal[:, d].max(), hi[d] + rng.uniform(0.03, 0.2) * width[d])
    cal = cal.astype(np.float32)
    return emb, queries, cal, zero_mask, labels


# ---------------------------------------------------------------------------
# Path B: brute force numpy float64 (also used by the tie checks)
# ---------------------------------------------------------------------------


def np_normalize(x):
    x = x.astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def np_scores(a, b, fn):
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if fn == "cosine":
        return np_normalize(a) @ np_normalize(b).T
    if fn == "dot":
        return a @ b.T
    diff = a[:, None, :] - b[None, :, :]
    if fn == "euclidean":
        return -np.sqrt((diff * diff).sum(-1))
    if fn == "manhattan":
        return -np.abs(diff).sum(-1)
    raise ValueError(fn)


def sym_cos(emb):
    s = np_scores(emb, emb, "cosine")
    return (s + s.T) / 2  # mathematically symmetric; kill last-bit asymmetry


def order_desc(v):
    return np.argsort(-v, kind="stable")


def ss_bruteforce(scores, top_k):
    out = []
    for row in scores:
        o = order_desc(row)[: min(top_k, len(row))]
        out.append([(int(j), float(row[j])) for j in o])
    return out


def pm_candidates(S, top_k, ccs):
    """Directed candidates (score, i, j) as generated per corpus block; also the gaps at
    every per-block cut."""
    n = len(S)
    k = top_k + 1
    cands, cut_gaps = [], []
    for c0 in range(0, n, ccs):
        c1 = min(c0 + ccs, n)
        blk = S[:, c0:c1]
        kk = min(k, c1 - c0)
        for i in range(n):
            o = order_desc(blk[i])
            if kk < c1 - c0:
                cut_gaps.append((blk[i, o[kk - 1]] - blk[i, o[kk]], i, c0 + o[kk - 1], c0 + o[kk]))
            for t in o[:kk]:
                j = c0 + int(t)
                if i != j:
                    cands.append((float(S[i, j]), i, j))
    return cands, cut_gaps


def pm_bruteforce(S, top_k, max_pairs, ccs):
    """Characterisation: keep the max_pairs-1 best directed candidates (score > -1),
    collapse to unordered pairs, sort by score."""
    cands, cut_gaps = pm_candidates(S, top_k, ccs)
    cands = [c for c in cands if c[0] > -1]
    cands.sort(key=lambda c: -c[0])
    keep = max(max_pairs - 1, 0)
    kept = cands[:keep]
    pairs = {}
    for s, i, j in kept:
        pairs[(min(i, j), max(i, j))] = S[min(i, j), max(i, j)]
    result = sorted(([float(s), a, b] for (a, b), s in pairs.items()), key=lambda r: -r[0])
    # cut gap between the worst kept pair and the best pair with no kept direction
    cut = None
    if 0 < keep < len(cands):
        dropped = [(s, min(i, j), max(i, j)) for s, i, j in cands[keep:]
                   if (min(i, j), max(i, j)) not in pairs]
        if dropped:
            worst_kept = min(pairs.items(), key=lambda kv: kv[1])
            best_dropped = max(dropped)
            cut = (worst_kept[1] - best_dropped[0], worst_kept[0], best_dropped[1:])
    return result, cut_gaps, cut


def cd_bruteforce(C, threshold, m):
    n = len(C)
    m = min(m, n)
    cands = []
    for i in range(n):
        members = np.nonzero(C[i] >= threshold)[0]
        if len(members) >= m:
            members = members[order_desc(C[i, members])]
            cands.append((i, [int(x) for x in members]))
    cands.sort(key=lambda rc: (-len(rc[1]), rc[0]))
    taken = np.zeros(n, dtype=bool)
    accepted = []
    for order, (i, members) in enumerate(cands):
        rest = [x for x in members if not taken[x]]
        if len(rest) >= m:
            accepted.append((order, i, rest))
            taken[rest] = True
    final = sorted(accepted, key=lambda a: (-len(a[2]), a[0]))
    info = {
        "centres": [i for _, i, _ in final],
        "resort_changed_order": [a[0] for a in final] != [a[0] for a in accepted],
        "dropped_by_overlap": len(cands) - len(accepted),
    }
    return [c for _, _, c in final], cands, info


def mid_threshold(C):
    mins = np.sort(C.min(1))
    return float(np.round((mins[-1] + mins[-2]) / 2, 4))


def quant_f64(x, lo, hi):
    x = x.astype(np.float64)
    lo = lo.astype(np.float64)
    hi = hi.astype(np.float64)
    q = (x - lo) / ((hi - lo) / 255.0)
    return q, np.floor(q).astype(np.int64), np.trunc(q - 128).astype(np.int64)


def quant_exact(x, lo, hi):
    """Exact rational arithmetic: uint8 = floor(q), int8 = trunc(q - 128)."""
    u8 = np.zeros(x.shape, dtype=np.int64)
    i8 = np.zeros(x.shape, dtype=np.int64)
    for r in range(x.shape[0]):
        for d in range(x.shape[1]):
            q = (Fraction(float(x[r, d])) - Fraction(float(lo[d]))) * 255 / (
                Fraction(float(hi[d])) - Fraction(float(lo[d])))
            u8[r, d] = math.floor(q)
            i8[r, d] = math.trunc(q - 128)
    return u8, i8


def quant_f32(x, lo, hi):
    """float32 arithmetic in the order ST uses."""
    x = x.astype(np.float32)
    lo = lo.astype(np.float32)
    hi = hi.astype(np.float32)
    step = (hi - lo) / np.float32(255)
    q = (x - lo) / step
    u8 = np.trunc(q).astype(np.int64)
    i8 = np.trunc(q - np.float32(128)).astype(np.int64)
    assert q.dtype == np.float32
    return u8, i8


def pack_manual(x):
    out = np.zeros((x.shape[0], (x.shape[1] + 7) // 8), dtype=np.int64)
    for r in range(x.shape[0]):
        for d in range(x.shape[1]):
            if x[r, d] > 0:
                out[r, d // 8] |= 1 << (7 - d % 8)
    return out


# ---------------------------------------------------------------------------
# Path A: ST-structured torch implementation (chunks, heaps, bounded queue, top-k)
# ---------------------------------------------------------------------------


def t_score(a, b, fn):
    if fn == "cosine":
        return F.normalize(a, p=2, dim=1) @ F.normalize(b, p=2, dim=1).T
    return a @ b.T


def ss_torch(queries, corpus, fn, top_k, qcs, ccs):
    q = torch.from_numpy(queries.astype(np.float64))
    c = torch.from_numpy(corpus.astype(np.float64))
    heaps = [[] for _ in range(len(q))]
    for q0 in range(0, len(q), qcs):
        qb = q[q0: q0 + qcs]
        for c0 in range(0, len(c), ccs):
            cb = c[c0: c0 + ccs]
            sc = t_score(qb, cb, fn)
            vals, idx = torch.topk(sc, min(top_k, sc.shape[1]), dim=1, largest=True, sorted=False)
            for r in range(sc.shape[0]):
                h = heaps[q0 + r]
                for v, j in zip(vals[r].tolist(), idx[r].tolist()):
                    item = (v, c0 + j)
                    if len(h) < top_k:
                        heapq.heappush(h, item)
                    else:
                        heapq.heappushpop(h, item)
    return [[(j, s) for s, j in sorted(h, key=lambda t: t[0], reverse=True)] for h in heaps]


def pm_torch(emb, top_k, max_pairs, qcs, ccs):
    e = torch.from_numpy(emb.astype(np.float64))
    n = len(e)
    k = top_k + 1
    pq = []
    floor = -1.0
    added = 0
    for c0 in range(0, n, ccs):
        for q0 in range(0, n, qcs):
            sc = t_score(e[q0: q0 + qcs], e[c0: c0 + ccs], "cosine")
            vals, idx = torch.topk(sc, min(k, sc.shape[1]), dim=1, largest=True, sorted=False)
            for r in range(sc.shape[0]):
                for v, t in zip(vals[r].tolist(), idx[r].tolist()):
                    i, j = q0 + r, c0 + t
                    if i == j or not v > floor:
                        continue
                    heapq.heappush(pq, (v, i, j))
                    added += 1
                    if added >= max_pairs:
                        floor = heapq.heappop(pq)[0]
    seen, out = set(), []
    while pq:
        s, i, j = heapq.heappop(pq)
        key = (min(i, j), max(i, j))
        if key[0] != key[1] and key not in seen:
            seen.add(key)
            out.append([s, key[0], key[1]])
    out.sort(key=lambda r: r[0], reverse=True)
    return out


def cd_torch(emb, threshold, m, batch):
    e = F.normalize(torch.from_numpy(emb.astype(np.float64)), p=2, dim=1)
    n = len(e)
    thr = torch.tensor(threshold, dtype=torch.float64)
    m = min(m, n)
    sms = min(max(2 * m, 50), n)
    grew = False
    found = []
    for b0 in range(0, n, batch):
        sc = e[b0: b0 + batch] @ e.T
        kth, _ = sc.topk(k=m, largest=True)
        for r in range(len(sc)):
            if kth[r][-1] >= thr:
                vals, idx = sc[r].topk(k=sms, largest=True)
                while vals[-1] > thr and sms < n:
                    sms = min(2 * sms, n)
                    grew = True
                    vals, idx = sc[r].topk(k=sms, largest=True)
                found.append(idx[vals >= thr].tolist())
    found = sorted(found, key=len, reverse=True)
    used, keep = set(), []
    for comm in found:
        rest = [x for x in comm if x not in used]
        if len(rest) >= m:
            keep.append(rest)
            used.update(rest)
    return sorted(keep, key=len, reverse=True), grew


# ---------------------------------------------------------------------------
# Near-tie detection
# ---------------------------------------------------------------------------


def cd_thresholds(C):
    return [mid_threshold(C) if t == "mid" else t for t, _, _ in CD_CASES]


def check(emb, queries, cal_lo, cal_hi, zero_mask):
    """Return (violations, minima).  A violation is (deficit in [0,1], kind, items) where
    items are ('e', row) / ('q', row) / ('c', row, dim) that can be nudged to fix it."""
    viol = []
    mins = {}

    def note(name, gap, req, items):
        if name not in mins or gap < mins[name]:
            mins[name] = float(gap)
        if gap < req:
            viol.append(((req - gap) / req, name, items))

    # semantic search
    for fn, top_k, _, ccs in SS_CASES:
        S = np_scores(queries, emb, fn)
        for qi, row in enumerate(S):
            o = order_desc(row)
            upto = min(top_k, len(row) - 1)
            for r in range(upto):
                note("semantic_search", row[o[r]] - row[o[r + 1]], GAP,
                     [("q", qi), ("e", int(o[r])), ("e", int(o[r + 1]))])
            for c0 in range(0, len(row), ccs):
                blk = row[c0: c0 + ccs]
                if top_k < len(blk):
                    ob = order_desc(blk)
                    note("semantic_search", blk[ob[top_k - 1]] - blk[ob[top_k]], GAP,
                         [("q", qi), ("e", c0 + int(ob[top_k - 1])), ("e", c0 + int(ob[top_k]))])

    # paraphrase mining
    C = sym_cos(emb)
    for ci, (top_k, max_pairs, _, ccs) in enumerate(PM_CASES):
        result, cut_gaps, cut = pm_bruteforce(C, top_k, max_pairs, ccs)
        for g, i, a, b in cut_gaps:
            note("paraphrase_cut", g, GAP, [("p", i, int(a)), ("p", i, int(b))])
        if cut is not None:
            g, p1, p2 = cut
            note("paraphrase_cut", g, GAP, [("p", p1[0], p1[1]), ("p", p2[0], p2[1])])
        name, req = ("paraphrase_full_order", GAP_FULL_ORDER) if ci == FULL_ORDER_CASE else (
            "paraphrase_order", GAP)
        for a, b in zip(result, result[1:]):
            note(name, a[0] - b[0], req, [("p", a[1], a[2]), ("p", b[1], b[2])])

    # community detection: threshold margins and member order of every centre row
    off = ~np.eye(N, dtype=bool)
    for thr, (_, m, _) in zip(cd_thresholds(C), CD_CASES):
        dist = np.abs(C - thr)
        dist[~off] = np.inf
        i, j = np.unravel_index(np.argmin(dist), dist.shape)
        note("community_threshold", dist[i, j], GAP, [("t", int(i), int(j), thr)])
        bad = np.argwhere(dist < GAP)
        for i, j in bad[:20]:
            if i < j:
                note("community_threshold", dist[i, j], GAP, [("t", int(i), int(j), thr)])
        _, cands, _ = cd_bruteforce(C, thr, m)
        for i, members in cands:
            v = C[i, members]
            for r in range(len(members) - 1):
                note("community_order", v[r] - v[r + 1], GAP,
                     [("p", i, members[r]), ("p", i, members[r + 1])])

    # quantisation margins
    def qmargins(lo, hi, name, allow_extremes):
        q, _, _ = quant_f64(emb, lo, hi)
        frac = np.abs(q - np.round(q))
        if allow_extremes:
            exact = (emb == lo[None, :]) | (emb == hi[None, :])
            frac = np.where(exact, np.inf, frac)
        r, d = np.unravel_index(np.argmin(frac), frac.shape)
        note(name, frac[r, d], QMARGIN, [("c", int(r), int(d))])
        for r, d in np.argwhere(frac < QMARGIN)[:50]:
            note(name, frac[r, d], QMARGIN, [("c", int(r), int(d))])

    qmargins(cal_lo, cal_hi, "quantize_calibrated", False)
    qmargins(emb.min(0), emb.max(0), "quantize_self", True)
    a = np.where(zero_mask, np.inf, np.abs(emb.astype(np.float64)))
    r, d = np.unravel_index(np.argmin(a), a.shape)
    note("binary_sign", a[r, d], BMARGIN, [("c", int(r), int(d))])
    for r, d in np.argwhere(a < BMARGIN):
        note("binary_sign", a[r, d], BMARGIN, [("c", int(r), int(d))])
    return viol, mins


def objective(viol):
    return sum(1.0 + d for d, _, _ in viol)


def targeted_move(emb, item, kind, zero_mask, rng):
    """Change cos(a, b) by a chosen small amount, moving only row a, while keeping (to
    first order) the cosines of a with the rows most at risk of a near-tie unchanged."""
    if item[0] == "t":
        _, a, b, thr = item
    else:
        _, a, b = item
    if rng.random() < 0.5:
        a, b = b, a
    req = GAP_FULL_ORDER if kind == "paraphrase_full_order" else GAP
    C = sym_cos(emb)
    if item[0] == "t":
        delta = np.sign(C[a, b] - thr) * rng.uniform(1.2, 3) * GAP
    else:
        delta = rng.choice([-1, 1]) * rng.uniform(1.0, 2.5) * req
    # risk of each pair (a, x): distance to the closest other pair score
    iu = np.triu_indices(N, 1)
    allv = np.sort(C[iu])
    others = [x for x in range(N) if x not in (a, b)]
    risk = []
    for x in others:
        pos = np.searchsorted(allv, C[a, x])
        near = allv[max(pos - 2, 0): pos + 2]
        d = np.abs(near - C[a, x])
        d = d[d > 0]
        risk.append(d.min() if len(d) else np.inf)
    prot = [others[k] for k in np.argsort(risk)[:16]]
    v = emb[a].astype(np.float64)
    nv = np.linalg.norm(v)
    vh = v / nv
    free = ~zero_mask[a]

    def grad(x):
        xh = emb[x].astype(np.float64)
        xh = xh / np.linalg.norm(xh)
        return ((xh - (vh @ xh) * vh) / nv)[free]

    J = np.array([grad(b)] + [grad(x) for x in prot])
    rhs = np.zeros(len(J))
    rhs[0] = delta
    step = np.linalg.lstsq(J, rhs, rcond=None)[0]
    v2 = v.copy()
    v2[free] += step
    out = emb.copy()
    out[a] = v2.astype(np.float32)
    return out


def nudge(emb, queries, cal_lo, cal_hi, zero_mask, rng, max_iter=20000):
    emb = emb.copy()
    queries = queries.copy()
    viol, _ = check(emb, queries, cal_lo, cal_hi, zero_mask)
    obj = objective(viol)
    print(f"initial: {len(viol)} near-ties", file=sys.stderr)
    it = 0
    while viol:
        it += 1
        if it > max_iter:
            raise SystemExit(f"could not remove near-ties: {len(viol)} left, e.g. {viol[:5]}")
        _, kind, items = viol[rng.integers(len(viol))]
        item = items[rng.integers(len(items))]
        e2, q2 = emb.copy(), queries.copy()
        if item[0] == "c" and kind == "binary_sign":
            _, r, d = item
            x = float(e2[r, d])
            sign = 1.0 if x > 0 else -1.0
            e2[r, d] = np.float32(sign * (abs(x) + rng.uniform(1.5, 3) * BMARGIN))
        elif item[0] == "c" and abs(float(e2[item[1], item[2]])) > 0.05 and rng.random() < 0.5:
            # rescale the whole row: moves q of this component, leaves every cosine alone
            _, r, d = item
            step = (float(cal_hi[d]) - float(cal_lo[d])) / 255.0
            eps = rng.choice([-1, 1]) * rng.uniform(2, 6) * QMARGIN * step / abs(float(e2[r, d]))
            e2[r] = (e2[r].astype(np.float64) * (1 + eps)).astype(np.float32)
        elif item[0] == "c":
            _, r, d = item
            step = (float(cal_hi[d]) - float(cal_lo[d])) / 255.0
            e2[r, d] = np.float32(e2[r, d] + rng.choice([-1, 1]) * rng.uniform(2, 6) * QMARGIN * step)
        elif item[0] in "pt":
            e2 = targeted_move(e2, item, kind, zero_mask, rng)
        else:
            arr = e2 if item[0] == "e" else q2
            r = item[1]
            v = arr[r].astype(np.float64)
            u = rng.standard_normal(DIM)
            eta = 10 ** rng.uniform(-6, -4)
            v = v + eta * np.linalg.norm(v) * u / np.linalg.norm(u)
            if item[0] == "e":
                v[zero_mask[r]] = 0.0
            arr[r] = v.astype(np.float32)
        v2, _ = check(e2, q2, cal_lo, cal_hi, zero_mask)
        o2 = objective(v2)
        if o2 < obj:
            emb, queries, viol, obj = e2, q2, v2, o2
            if it % 20 == 0 or not viol:
                print(f"  iter {it}: {len(viol)} near-ties left", file=sys.stderr)
    print(f"clean after {it} proposals", file=sys.stderr)
    return emb, queries


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def fl(x):
    return [float(v) for v in x]


def dumps(obj, indent=0):
    """Compact JSON with one row / record per line."""
    pad = " " * indent

    def flat(o):
        return json.dumps(o, separators=(",", ":"), allow_nan=False)

    def shallow(o):
        if isinstance(o, dict):
            return all(not isinstance(v, (list, dict)) for v in o.values())
        if isinstance(o, list):
            return all(not isinstance(v, (list, dict)) or shallow(v) for v in o)
        return True

    if isinstance(obj, dict):
        if shallow(obj) and len(flat(obj)) < 200:
            return flat(obj)
        items = [f'{pad}  {json.dumps(k)}: {dumps(v, indent + 2)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if (all(not isinstance(v, (list, dict)) for v in obj)
                or (shallow(obj) and len(flat(obj)) < 200)
                or (obj and all(isinstance(v, dict) for v in obj) and shallow(obj) and len(flat(obj)) < 6000)):
            return flat(obj)
        items = [pad + "  " + dumps(v, indent + 2) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return flat(obj)


def main():
    rng = np.random.default_rng(SEED)
    emb, queries, cal, zero_mask, labels = draw_data(rng)
    cal_lo, cal_hi = cal.min(0), cal.max(0)
    emb, queries = nudge(emb, queries, cal_lo, cal_hi, zero_mask, rng)
    viol, mins = check(emb, queries, cal_lo, cal_hi, zero_mask)
    assert not viol

    assert emb.dtype == np.float32 and queries.dtype == np.float32 and cal.dtype == np.float32
    assert (emb > cal_lo).all() and (emb < cal_hi).all(), "calibration must strictly contain data"
    assert (emb[zero_mask] == 0).all()

    doc = {
        "generator": "tools/gen_util_reference.py",
        "st_source": ST_SOURCE,
        "seed": SEED,
        "n": N,
        "dim": DIM,
        "cluster_labels": [int(x) for x in labels],
    }
    doc["embeddings"] = [fl(r) for r in emb]
    doc["queries"] = [fl(r) for r in queries]

    # --- similarities: numpy (direct formulas) vs torch float64
    sim = {}
    qt = torch.from_numpy(queries.astype(np.float64))
    et = torch.from_numpy(emb.astype(np.float64))
    torch_sim = {
        "cosine": t_score(qt, et, "cosine"),
        "dot": qt @ et.T,
        "euclidean": -torch.cdist(qt, et, p=2.0),
        "manhattan": -torch.cdist(qt, et, p=1.0),
    }
    for fn in ("cosine", "dot", "euclidean", "manhattan"):
        s = np_scores(queries, emb, fn)
        assert np.allclose(s, torch_sim[fn].numpy(), rtol=1e-12, atol=1e-12), fn
        sim[fn] = [fl(r) for r in s]
    doc["similarity"] = sim

    # --- semantic search
    ss = []
    for fn, top_k, qcs, ccs in SS_CASES:
        a = ss_torch(queries, emb, fn, top_k, qcs, ccs)
        b = ss_bruteforce(np_scores(queries, emb, fn), top_k)
        for ra, rb in zip(a, b):
            assert [j for j, _ in ra] == [j for j, _ in rb], (fn, top_k)
            assert np.allclose([s for _, s in ra], [s for _, s in rb], rtol=0, atol=1e-12)
        ss.append({
            "score_function": fn, "top_k": top_k, "query_chunk_size": qcs, "corpus_chunk_size": ccs,
            "result": [[{"corpus_id": j, "score": s} for j, s in rb] for rb in b],
        })
    doc["semantic_search"] = ss

    # --- paraphrase mining
    C = sym_cos(emb)
    pm = []
    for top_k, max_pairs, qcs, ccs in PM_CASES:
        a = pm_torch(emb, top_k, max_pairs, qcs, ccs)
        b, _, _ = pm_bruteforce(C, top_k, max_pairs, ccs)
        assert [r[1:] for r in a] == [r[1:] for r in b], (top_k, max_pairs)
        assert all(abs(x[0] - y[0]) < 1e-12 for x, y in zip(a, b))
        pm.append({
            "top_k": top_k, "max_pairs": max_pairs, "query_chunk_size": qcs, "corpus_chunk_size": ccs,
            "score_function": "cosine", "result": b,
        })
        print(f"paraphrase top_k={top_k} max_pairs={max_pairs}: {len(b)} pairs", file=sys.stderr)
    doc["paraphrase_mining"] = pm

    # --- community detection
    cd = []
    for thr, (_, m, bs) in zip(cd_thresholds(C), CD_CASES):
        a, grew = cd_torch(emb, thr, m, bs)
        b, cands, info = cd_bruteforce(C, thr, m)
        assert a == b, (thr, m)
        cd.append({"threshold": thr, "min_community_size": m, "batch_size": bs, "result": b})
        lens = [len(c) for c in b]
        print(f"community t={thr} m={m}: sizes {lens}, {len(cands)} candidate centres, "
              f"{info['dropped_by_overlap']} dropped by overlap, final re-sort changed order="
              f"{info['resort_changed_order']}, equal-length neighbours="
              f"{sum(x == y for x, y in zip(lens, lens[1:]))}, first member != centre="
              f"{sum(c[0] != i for c, i in zip(b, info['centres']))}, sort_max_size grew={grew}",
              file=sys.stderr)
    doc["community_detection"] = cd

    # --- quantisation
    lo32, hi32 = cal_lo, cal_hi
    u8, i8 = quant_f32(emb, lo32, hi32)
    _, u8d, i8d = quant_f64(emb, lo32, hi32)
    u8x, i8x = quant_exact(emb, lo32, hi32)
    assert (u8 == u8x).all() and (i8 == i8x).all() and (u8 == u8d).all() and (i8 == i8d).all()
    # numpy's own float32 -> uint8 / int8 cast (what ST relies on) agrees with trunc()
    step32 = (hi32 - lo32) / np.float32(255)
    assert (((emb - lo32) / step32).astype(np.uint8) == u8).all()
    assert (((emb - lo32) / step32 - np.float32(128)).astype(np.int8) == i8).all()
    assert u8.min() >= 0 and u8.max() <= 255 and i8.min() >= -128 and i8.max() <= 127
    slo, shi = emb.min(0), emb.max(0)
    su8, si8 = quant_f32(emb, slo, shi)
    su8x, si8x = quant_exact(emb, slo, shi)
    sstep = (shi - slo) / np.float32(255)
    assert (((emb - slo) / sstep).astype(np.uint8) == su8).all()
    assert (((emb - slo) / sstep - np.float32(128)).astype(np.int8) == si8).all()
    assert su8.min() >= 0 and su8.max() <= 255 and si8.min() >= -128 and si8.max() <= 127
    diffs = []
    for r, d in np.argwhere((su8 != su8x) | (si8 != si8x)):
        diffs.append({"row": int(r), "dim": int(d), "uint8_f32": int(su8[r, d]), "uint8_exact": int(su8x[r, d]),
                      "int8_f32": int(si8[r, d]), "int8_exact": int(si8x[r, d])})
        assert emb[r, d] in (slo[d], shi[d]), "only the extremes may depend on precision"
    packed = np.packbits(emb > 0, axis=1).astype(np.int64)
    assert (packed == pack_manual(emb)).all()
    assert (np.packbits(emb > 0).reshape(N, -1) == packed).all()  # flat packing == per row (dim % 8 == 0)
    assert ((np.packbits(emb > 0, axis=1) - 128).astype(np.int8) == packed - 128).all()
    n_trunc_differs = int(((i8 != u8 - 128)).sum())
    doc["quantize"] = {
        "calibration": [fl(r) for r in cal],
        "ranges": [fl(lo32), fl(hi32)],
        "int8": i8.tolist(),
        "uint8": u8.tolist(),
        "binary": (packed - 128).tolist(),
        "ubinary": packed.tolist(),
        "self_ranges": [fl(slo), fl(shi)],
        "int8_self": si8.tolist(),
        "uint8_self": su8.tolist(),
        "self_f32_vs_exact": diffs,
    }
    print(f"quantize: int8 != uint8-128 at {n_trunc_differs} values; self-range f32/exact diffs: {len(diffs)}",
          file=sys.stderr)

    doc["min_gap"] = {
        "required": {"default": GAP, "paraphrase_full_order": GAP_FULL_ORDER, "quantize": QMARGIN},
        "observed": mins,
        "notes": "score gaps across every top-k/max_pairs cut and between neighbours of sorted "
                 "outputs; community_threshold = min |cos - threshold| over all i != j; quantize_* = "
                 "min distance of q=(x-min)/step from an integer (bucket units, self extremes excluded); "
                 "binary_sign = min |x| over non-zero components",
    }

    os.makedirs(OUT_DIR, exist_ok=True)
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        f.write(dumps(doc) + "\n")
    os.replace(tmp, OUT)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)", file=sys.stderr)
    for k, v in sorted(mins.items()):
        print(f"  min {k}: {v:.3g}", file=sys.stderr)


if __name__ == "__main__":
    main()
