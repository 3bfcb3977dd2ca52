/*
 * util.c - sentence-transformers' util functions on embedding matrices
 * (sembed.h: semantic_search, paraphrase_mining, community_detection,
 * quantize_embeddings, binary search with rescoring) and k-means.
 *
 * The algorithms follow sentence-transformers' documented behaviour; the
 * committed reference (tests/fixtures/util, written by an independent
 * Python script) pins the outputs. Scores are computed with the index's
 * distance kernels (vec_dist.c); cosine = a.b / (max(|a|, 1e-12) max(|b|, 1e-12)).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "vec_dist.h"

/* 1 / max(|v|, 1e-12). */
static float inv_norm(const float *v, size_t dim) {
    double ss = 0.0;
    for (size_t i = 0; i < dim; i++) ss += (double)v[i] * v[i];
    double n = sqrt(ss);
    return (float)(1.0 / (n > 1e-12 ? n : 1e-12));
}

/* Inverse norms of n rows (cosine), or all ones. NULL on OOM. */
static float *row_scales(se_similarity fn, const float *x, size_t n, size_t dim) {
    float *s = se_malloc_array(n ? n : 1, sizeof *s);
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) s[i] = fn == SE_SIM_COSINE ? inv_norm(x + i * dim, dim) : 1.0f;
    return s;
}

/* Min-heap of hits by (score asc, id desc): the root is the worst kept. */
static int hit_worse(se_hit a, se_hit b) { return a.score < b.score || (a.score == b.score && a.corpus_id > b.corpus_id); }

static void hit_push(se_hit *h, size_t *n, size_t cap, se_hit x) {
    if (*n == cap) {
        if (!hit_worse(h[0], x)) return;
        /* replace the root and sift down */
        size_t i = 0;
        for (;;) {
            size_t l = 2 * i + 1, r = l + 1, m = i;
            se_hit best = x;
            if (l < cap && hit_worse(h[l], best)) m = l, best = h[l];
            if (r < cap && hit_worse(h[r], best)) m = r;
            if (m == i) break;
            h[i] = h[m];
            i = m;
        }
        h[i] = x;
        return;
    }
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hit_worse(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static int hit_cmp_desc(const void *a, const void *b) {
    const se_hit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->corpus_id > y->corpus_id) - (x->corpus_id < y->corpus_id);
}

/* Top-k search (see sembed.h). Thread-safe. */
se_status se_semantic_search(se_similarity fn, const float *queries, size_t nq, const float *corpus, size_t nc,
                             size_t dim, size_t top_k, se_hit *hits, se_error *err) {
    if ((nq && !queries) || (nc && !corpus) || dim == 0 || (nq && nc && top_k && !hits))
        return se_err(err, SE_E_INVALID, "se_semantic_search: invalid arguments");
    if (fn != SE_SIM_COSINE && fn != SE_SIM_DOT)
        return se_err(err, SE_E_UNSUPPORTED, "se_semantic_search: score function must be cosine or dot");
    if (nc > INT32_MAX) return se_err(err, SE_E_RANGE, "se_semantic_search: corpus too large");
    size_t k = top_k < nc ? top_k : nc;
    if (!k || !nq) return SE_OK;
    float *qs = row_scales(fn, queries, nq, dim), *cs = row_scales(fn, corpus, nc, dim);
    if (!qs || !cs) {
        se_free(qs);
        se_free(cs);
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    se_vdist_fn dot = se_vdist_get()->dot;
    const size_t QB = 16, CB = 2048; /* blocks: a few queries against a cache-sized corpus slice */
    size_t *cnt = se_calloc(nq, sizeof *cnt);
    if (!cnt) {
        se_free(qs);
        se_free(cs);
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    for (size_t c0 = 0; c0 < nc; c0 += CB) {
        size_t c1 = c0 + CB < nc ? c0 + CB : nc;
        for (size_t q0 = 0; q0 < nq; q0 += QB) {
            size_t q1 = q0 + QB < nq ? q0 + QB : nq;
            for (size_t q = q0; q < q1; q++) {
                const float *x = queries + q * dim;
                se_hit *h = hits + q * k;
                for (size_t c = c0; c < c1; c++) {
                    float s = dot(x, corpus + c * dim, dim) * qs[q] * cs[c];
                    hit_push(h, &cnt[q], k, (se_hit){(int32_t)c, s});
                }
            }
        }
    }
    for (size_t q = 0; q < nq; q++) qsort(hits + q * k, k, sizeof *hits, hit_cmp_desc);
    se_free(cnt);
    se_free(qs);
    se_free(cs);
    return SE_OK;
}

/* ---- paraphrase mining ---- */

static int pair_cmp_desc(const void *a, const void *b) {
    const se_pair *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->i != y->i) return x->i < y->i ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

/* Candidate pairs (score, i, j), i != j: for every row and every slice of
 * corpus_chunk rows, the top_k + 1 most similar rows of the slice (itself
 * included, then dropped) - sentence-transformers' chunked top-k. Of those,
 * the max_pairs - 1 best are kept (its priority queue holds max_pairs - 1
 * once full), then each unordered pair once (i < j), best first. */
se_status se_paraphrase_mining(se_similarity fn, const float *emb, size_t n, size_t dim, size_t top_k,
                               size_t max_pairs, size_t corpus_chunk, se_pair **pairs, size_t *n_pairs, se_error *err) {
    if ((n && !emb) || dim == 0 || !pairs || !n_pairs)
        return se_err(err, SE_E_INVALID, "se_paraphrase_mining: invalid arguments");
    *pairs = NULL;
    *n_pairs = 0;
    if (n > INT32_MAX) return se_err(err, SE_E_RANGE, "se_paraphrase_mining: too many rows");
    if (n < 2 || top_k == 0 || max_pairs == 0) {
        *pairs = se_malloc(0);
        return *pairs ? SE_OK : se_err(err, SE_E_NOMEM, "out of memory");
    }
    if (corpus_chunk == 0) corpus_chunk = 100000;
    size_t n_chunks = (n + corpus_chunk - 1) / corpus_chunk, k1 = top_k + 1;
    size_t cap = n * (k1 < corpus_chunk ? k1 : corpus_chunk) * n_chunks;
    se_hit *h = se_malloc_array(n, (k1 < corpus_chunk ? k1 : corpus_chunk) * sizeof *h);
    se_pair *cand = se_malloc_array(cap, sizeof *cand);
    if (!h || !cand) {
        se_free(h);
        se_free(cand);
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    se_status st = SE_OK;
    size_t nc = 0;
    for (size_t c0 = 0; c0 < n && !st; c0 += corpus_chunk) {
        size_t len = n - c0 < corpus_chunk ? n - c0 : corpus_chunk, k = k1 < len ? k1 : len;
        st = se_semantic_search(fn, emb, n, emb + c0 * dim, len, dim, k, h, err);
        for (size_t i = 0; !st && i < n; i++)
            for (size_t t = 0; t < k; t++) {
                size_t j = c0 + (size_t)h[i * k + t].corpus_id;
                if (j != i) cand[nc++] = (se_pair){h[i * k + t].score, (int32_t)i, (int32_t)j};
            }
    }
    se_free(h);
    if (st) {
        se_free(cand);
        return st;
    }
    qsort(cand, nc, sizeof *cand, pair_cmp_desc);
    if (nc >= max_pairs) nc = max_pairs - 1;
    /* unordered pairs once: canonicalise then drop repeats (keeping the
     * first, i.e. the better-scored occurrence) */
    size_t m = 0;
    for (size_t a = 0; a < nc; a++) {
        se_pair p = cand[a];
        if (p.i > p.j) {
            int32_t t = p.i;
            p.i = p.j;
            p.j = t;
        }
        bool dup = false;
        /* repeats of (i, j) are (j, i) candidates; find them with a search
         * over what we kept (pairs are few per row: a linear probe over
         * the same score neighbourhood is enough) */
        for (size_t b = m; b-- > 0;) {
            if (cand[b].score != p.score && fabsf(cand[b].score - p.score) > 1e-6f * (1.0f + fabsf(p.score))) break;
            if (cand[b].i == p.i && cand[b].j == p.j) {
                dup = true;
                break;
            }
        }
        if (!dup) cand[m++] = p;
    }
    qsort(cand, m, sizeof *cand, pair_cmp_desc);
    *pairs = cand;
    *n_pairs = m;
    return SE_OK;
}

/* ---- community detection ---- */

typedef struct comm {
    size_t off, len, order;
} comm;

static int comm_cmp(const void *a, const void *b) { /* size desc, then extraction order (a stable sort) */
    const comm *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

se_status se_community_detection(const float *emb, size_t n, size_t dim, float threshold, size_t min_size,
                                 int32_t **members, size_t **starts, size_t *n_comm, se_error *err) {
    if ((n && !emb) || dim == 0 || !members || !starts || !n_comm)
        return se_err(err, SE_E_INVALID, "se_community_detection: invalid arguments");
    *members = NULL;
    *starts = NULL;
    *n_comm = 0;
    if (n > INT32_MAX) return se_err(err, SE_E_RANGE, "se_community_detection: too many rows");
    if (min_size > n) min_size = n;
    if (min_size == 0) min_size = 1;
    float *nv = se_malloc_array(n ? n : 1, dim * sizeof *nv);
    se_hit *row = se_malloc_array(n ? n : 1, sizeof *row);
    int32_t *all = NULL;
    comm *cs = NULL;
    size_t n_all = 0, cap_all = 0, n_cs = 0, cap_cs = 0;
    se_status st = SE_OK;
    if (!nv || !row) goto oom;
    for (size_t i = 0; i < n; i++) {
        float s = inv_norm(emb + i * dim, dim);
        for (size_t d = 0; d < dim; d++) nv[i * dim + d] = emb[i * dim + d] * s;
    }
    se_vdist_fn dot = se_vdist_get()->dot;
    for (size_t i = 0; i < n; i++) {
        size_t m = 0;
        for (size_t j = 0; j < n; j++) {
            float s = dot(nv + i * dim, nv + j * dim, dim);
            if (s >= threshold) row[m++] = (se_hit){(int32_t)j, s};
        }
        if (m < min_size) continue;
        qsort(row, m, sizeof *row, hit_cmp_desc);
        if (n_all + m > cap_all) {
            size_t c = cap_all ? cap_all : 1024;
            while (c < n_all + m) c *= 2;
            int32_t *t = se_realloc(all, c * sizeof *t);
            if (!t) goto oom;
            all = t;
            cap_all = c;
        }
        if (n_cs == cap_cs) {
            cap_cs = cap_cs ? 2 * cap_cs : 64;
            comm *t = se_realloc(cs, cap_cs * sizeof *t);
            if (!t) goto oom;
            cs = t;
        }
        cs[n_cs] = (comm){n_all, m, n_cs};
        n_cs++;
        for (size_t t = 0; t < m; t++) all[n_all++] = row[t].corpus_id;
    }
    if (n_cs) qsort(cs, n_cs, sizeof *cs, comm_cmp);
    /* remove overlaps: larger communities claim their members first */
    uint8_t *taken = se_calloc(n ? n : 1, 1);
    int32_t *out = se_malloc_array(n_all ? n_all : 1, sizeof *out);
    size_t *so = se_malloc_array(n_cs + 1, sizeof *so);
    if (!taken || !out || !so) {
        se_free(taken);
        se_free(out);
        se_free(so);
        goto oom;
    }
    size_t no = 0, nk = 0;
    so[0] = 0;
    for (size_t c = 0; c < n_cs; c++) {
        size_t start = no;
        for (size_t t = 0; t < cs[c].len; t++) {
            int32_t x = all[cs[c].off + t];
            if (!taken[x]) out[no++] = x;
        }
        if (no - start >= min_size) {
            for (size_t t = start; t < no; t++) taken[out[t]] = 1;
            so[++nk] = no;
        } else {
            no = start;
        }
    }
    se_free(taken);
    /* the accepted communities sorted by size again (stable): one that lost
     * members to a larger one may now come after a later, larger one */
    comm *acc = se_malloc_array(nk ? nk : 1, sizeof *acc);
    int32_t *out2 = se_malloc_array(no ? no : 1, sizeof *out2);
    if (!acc || !out2) {
        se_free(acc);
        se_free(out2);
        se_free(out);
        se_free(so);
        goto oom;
    }
    for (size_t c = 0; c < nk; c++) acc[c] = (comm){so[c], so[c + 1] - so[c], c};
    if (nk) qsort(acc, nk, sizeof *acc, comm_cmp);
    size_t w = 0;
    for (size_t c = 0; c < nk; c++) {
        memcpy(out2 + w, out + acc[c].off, acc[c].len * sizeof *out2);
        w += acc[c].len;
        so[c + 1] = w;
    }
    se_free(acc);
    se_free(out);
    *members = out2;
    *starts = so;
    *n_comm = nk;
    goto done;
oom:
    st = se_err(err, SE_E_NOMEM, "out of memory");
done:
    se_free(nv);
    se_free(row);
    se_free(all);
    se_free(cs);
    return st;
}

/* ---- k-means ---- */

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

se_status se_kmeans(const float *emb, size_t n, size_t dim, size_t k, bool normalize, uint64_t seed, int max_iter,
                    float *centroids, int32_t *labels, double *inertia, se_error *err) {
    if (!emb || !centroids || !labels || dim == 0 || n == 0)
        return se_err(err, SE_E_INVALID, "se_kmeans: invalid arguments");
    if (k < 1 || k > n) return se_err(err, SE_E_RANGE, "se_kmeans: k = %zu (allowed 1..%zu, the number of rows)", k, n);
    if (n > INT32_MAX) return se_err(err, SE_E_RANGE, "se_kmeans: too many rows");
    float *x = se_malloc_array(n, dim * sizeof *x);
    double *d2 = se_malloc_array(n, sizeof *d2), *sum = se_malloc_array(k, dim * sizeof(double));
    size_t *cnt = se_malloc_array(k, sizeof *cnt);
    if (!x || !d2 || !sum || !cnt) {
        se_free(x);
        se_free(d2);
        se_free(sum);
        se_free(cnt);
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        float s = normalize ? inv_norm(emb + i * dim, dim) : 1.0f;
        for (size_t d = 0; d < dim; d++) x[i * dim + d] = emb[i * dim + d] * s;
    }
    se_vdist_fn l2 = se_vdist_get()->l2sq;
    uint64_t rng = seed;
    /* k-means++: first centre uniform, then proportional to D^2 */
    size_t first = (size_t)(rng_unit(&rng) * (double)n);
    memcpy(centroids, x + first * dim, dim * sizeof *x);
    for (size_t i = 0; i < n; i++) d2[i] = l2(x + i * dim, centroids, dim);
    for (size_t c = 1; c < k; c++) {
        double tot = 0;
        for (size_t i = 0; i < n; i++) tot += d2[i];
        size_t pick = 0;
        if (tot > 0) {
            double r = rng_unit(&rng) * tot, acc = 0;
            for (pick = 0; pick < n - 1; pick++) {
                acc += d2[pick];
                if (acc > r && d2[pick] > 0) break;
            }
        } else {
            pick = (size_t)(rng_unit(&rng) * (double)n);
        }
        memcpy(centroids + c * dim, x + pick * dim, dim * sizeof *x);
        for (size_t i = 0; i < n; i++) {
            double d = l2(x + i * dim, centroids + c * dim, dim);
            if (d < d2[i]) d2[i] = d;
        }
    }
    for (size_t i = 0; i < n; i++) labels[i] = -1;
    double total = 0;
    for (int it = 0; it < (max_iter > 0 ? max_iter : 1); it++) {
        size_t changed = 0;
        total = 0;
        for (size_t i = 0; i < n; i++) {
            int32_t best = 0;
            float bd = INFINITY;
            for (size_t c = 0; c < k; c++) {
                float d = l2(x + i * dim, centroids + c * dim, dim);
                if (d < bd) bd = d, best = (int32_t)c;
            }
            if (labels[i] != best) changed++;
            labels[i] = best;
            d2[i] = bd;
            total += bd;
        }
        if (!changed && it > 0) break;
        memset(sum, 0, k * dim * sizeof *sum);
        memset(cnt, 0, k * sizeof *cnt);
        for (size_t i = 0; i < n; i++) {
            cnt[labels[i]]++;
            for (size_t d = 0; d < dim; d++) sum[labels[i] * dim + d] += x[i * dim + d];
        }
        for (size_t c = 0; c < k; c++) {
            if (!cnt[c]) { /* empty cluster: restart it at the worst-served row */
                size_t far = 0;
                for (size_t i = 1; i < n; i++)
                    if (d2[i] > d2[far]) far = i;
                memcpy(centroids + c * dim, x + far * dim, dim * sizeof *x);
                d2[far] = 0;
                continue;
            }
            for (size_t d = 0; d < dim; d++) centroids[c * dim + d] = (float)(sum[c * dim + d] / (double)cnt[c]);
            if (normalize) {
                float s = inv_norm(centroids + c * dim, dim);
                for (size_t d = 0; d < dim; d++) centroids[c * dim + d] *= s;
            }
        }
    }
    if (inertia) *inertia = total;
    se_free(x);
    se_free(d2);
    se_free(sum);
    se_free(cnt);
    return SE_OK;
}

/* ---- quantisation ---- */

size_t se_quant_row_bytes(se_quant q, size_t dim) {
    return q == SE_QUANT_BINARY || q == SE_QUANT_UBINARY ? (dim + 7) / 8 : dim;
}

se_status se_quant_ranges(const float *calib, size_t n, size_t dim, float *ranges, se_error *err) {
    if (!calib || !ranges || !n || !dim) return se_err(err, SE_E_INVALID, "se_quant_ranges: invalid arguments");
    for (size_t d = 0; d < dim; d++) ranges[d] = ranges[dim + d] = calib[d];
    for (size_t i = 1; i < n; i++)
        for (size_t d = 0; d < dim; d++) {
            float v = calib[i * dim + d];
            if (v < ranges[d]) ranges[d] = v;
            if (v > ranges[dim + d]) ranges[dim + d] = v;
        }
    return SE_OK;
}

/* Float-to-integer as numpy's astype after the float32 arithmetic
 * ((x - start) / step [- 128]): truncation toward zero; values outside the
 * calibration range are clamped (numpy leaves them undefined). */
se_status se_quantize_embeddings(se_quant q, const float *emb, size_t n, size_t dim, const float *ranges, void *out,
                                 se_error *err) {
    if ((n && (!emb || !out)) || dim == 0) return se_err(err, SE_E_INVALID, "se_quantize_embeddings: invalid arguments");
    if (q != SE_QUANT_INT8 && q != SE_QUANT_UINT8 && q != SE_QUANT_BINARY && q != SE_QUANT_UBINARY)
        return se_err(err, SE_E_INVALID, "se_quantize_embeddings: unknown precision %d", (int)q);
    if (!n) return SE_OK;
    uint8_t *o = out;
    if (q == SE_QUANT_BINARY || q == SE_QUANT_UBINARY) {
        size_t rb = (dim + 7) / 8;
        for (size_t i = 0; i < n; i++) {
            for (size_t b = 0; b < rb; b++) {
                uint8_t v = 0;
                for (size_t t = 0; t < 8; t++) {
                    size_t d = b * 8 + t;
                    if (d < dim && emb[i * dim + d] > 0) v |= (uint8_t)(0x80u >> t);
                }
                o[i * rb + b] = q == SE_QUANT_BINARY ? (uint8_t)(v ^ 0x80u) : v;
            }
        }
        return SE_OK;
    }
    float *own = NULL;
    if (!ranges) {
        own = se_malloc_array(2, dim * sizeof *own);
        if (!own) return se_err(err, SE_E_NOMEM, "out of memory");
        se_quant_ranges(emb, n, dim, own, NULL);
        ranges = own;
    }
    for (size_t d = 0; d < dim; d++) {
        float start = ranges[d], step = (ranges[dim + d] - ranges[d]) / 255.0f;
        for (size_t i = 0; i < n; i++) {
            float v = step > 0 ? (emb[i * dim + d] - start) / step : 0.0f;
            if (q == SE_QUANT_INT8) {
                v -= 128.0f;
                v = v < -128.0f ? -128.0f : v > 127.0f ? 127.0f : v;
                ((int8_t *)o)[i * dim + d] = (int8_t)truncf(v);
            } else {
                v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
                o[i * dim + d] = (uint8_t)truncf(v);
            }
        }
    }
    se_free(own);
    return SE_OK;
}

se_status se_binary_search(const float *queries, size_t nq, const uint8_t *corpus_bits, size_t nc, size_t dim,
                           size_t top_k, size_t rescore_multiplier, se_hit *hits, se_error *err) {
    if ((nq && !queries) || (nc && !corpus_bits) || dim == 0 || (nq && nc && top_k && !hits))
        return se_err(err, SE_E_INVALID, "se_binary_search: invalid arguments");
    if (nc > INT32_MAX) return se_err(err, SE_E_RANGE, "se_binary_search: corpus too large");
    size_t k = top_k < nc ? top_k : nc;
    if (!k || !nq) return SE_OK;
    if (rescore_multiplier < 1) rescore_multiplier = 1;
    size_t kc = k * rescore_multiplier < nc ? k * rescore_multiplier : nc;
    size_t rb = (dim + 7) / 8;
    uint8_t *qb = se_malloc(rb);
    se_hit *cand = se_malloc_array(kc, sizeof *cand);
    if (!qb || !cand) {
        se_free(qb);
        se_free(cand);
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    for (size_t q = 0; q < nq; q++) {
        const float *x = queries + q * dim;
        se_quantize_embeddings(SE_QUANT_UBINARY, x, 1, dim, NULL, qb, NULL);
        size_t nk = 0;
        for (size_t c = 0; c < nc; c++) {
            const uint8_t *cb = corpus_bits + c * rb;
            int ham = 0;
            size_t b = 0;
            for (; b + 8 <= rb; b += 8) {
                uint64_t u, v;
                memcpy(&u, qb + b, 8);
                memcpy(&v, cb + b, 8);
                ham += __builtin_popcountll(u ^ v);
            }
            for (; b < rb; b++) ham += __builtin_popcount((unsigned)(qb[b] ^ cb[b]));
            hit_push(cand, &nk, kc, (se_hit){(int32_t)c, (float)-ham});
        }
        /* rescore with the float query against the +-1 bits */
        for (size_t t = 0; t < nk; t++) {
            const uint8_t *cb = corpus_bits + (size_t)cand[t].corpus_id * rb;
            float s = 0;
            for (size_t d = 0; d < dim; d++) s += (cb[d / 8] & (0x80u >> (d % 8))) ? x[d] : -x[d];
            cand[t].score = s;
        }
        qsort(cand, nk, sizeof *cand, hit_cmp_desc);
        memcpy(hits + q * k, cand, k * sizeof *cand);
    }
    se_free(qb);
    se_free(cand);
    return SE_OK;
}
