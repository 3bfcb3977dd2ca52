/*
 * eval_ir.c - information-retrieval metrics (se_ir_evaluate), with the
 * definitions of sentence-transformers' InformationRetrievalEvaluator
 * (compute_metrics) for the cut-offs `sembed eval ir` reports:
 *
 *   accuracy@k   1 if a relevant document is in the top k
 *   precision@k  relevant in the top k / k (k even when fewer hits)
 *   recall@k     relevant in the top k / relevant documents
 *   MRR@k        1 / rank of the first relevant document in the top k
 *   nDCG@k       DCG of the top k / ideal DCG, DCG = sum gain_i / log2(i + 2)
 *                (i from 0); gain = the qrel score (graded, BEIR), or 1
 *                per relevant document with binary_ndcg (sentence-transformers)
 *   MAP@k        sum over relevant hits in the top k of (relevant so far /
 *                rank), divided by min(k, relevant documents)
 *
 * each averaged over the evaluated queries (those with a relevant document).
 * Ranking: score descending, equal scores by document id descending
 * (strcmp), the order sentence-transformers' heap of (score, corpus_id)
 * keeps and trec_eval uses (sembed.h says more).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"

/* ==== a string-keyed hash table (open addressing, linear probing) ==== */

/* One slot: key (borrowed from the caller's arrays) and a value. */
typedef struct slot {
    const char *a, *b; /* the key: one string, or a pair (b may be NULL) */
    size_t val;
} slot;

typedef struct table {
    slot *s;
    size_t cap, n; /* cap a power of two */
} table;

/* FNV-1a over a and then (after a separator byte) b. */
static uint64_t hash2(const char *a, const char *b) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)a; *p; p++) h = (h ^ *p) * 1099511628211ull;
    if (b) {
        h = (h ^ 0xff) * 1099511628211ull; /* 0xff never occurs in UTF-8 */
        for (const unsigned char *p = (const unsigned char *)b; *p; p++) h = (h ^ *p) * 1099511628211ull;
    }
    return h;
}

/* Sizes t for up to n keys (load <= 1/2); -1 when out of memory. */
static int table_init(table *t, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 2) cap *= 2;
    t->s = se_calloc(cap, sizeof *t->s);
    t->cap = cap, t->n = 0;
    return t->s ? 0 : -1;
}

/* Finds the key (a, b); returns its slot, which is empty (a NULL) when the
 * key is absent (insert by filling it). */
static slot *table_find(table *t, const char *a, const char *b) {
    size_t i = (size_t)hash2(a, b) & (t->cap - 1);
    for (;;) {
        slot *s = &t->s[i];
        if (!s->a) return s;
        if (strcmp(s->a, a) == 0 && (!b || strcmp(s->b, b) == 0)) return s;
        i = (i + 1) & (t->cap - 1);
    }
}

/* ==== ranking ==== */

/* qsort order of hits: score descending, then doc id descending. */
static int by_rank(const void *pa, const void *pb) {
    const se_ir_hit *x = *(const se_ir_hit *const *)pa, *y = *(const se_ir_hit *const *)pb;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return -strcmp(x->doc_id, y->doc_id);
}

/* Descending order of doubles (the ideal gains). */
static int by_gain_desc(const void *pa, const void *pb) {
    double x = *(const double *)pa, y = *(const double *)pb;
    return x > y ? -1 : x < y;
}

/* ==== the metrics of one query ==== */

/* Per-query values, summed over queries then divided. */
typedef struct sums {
    double ndcg10, mrr10, r1, r10, r100, map100, p1, p10, a1, a3, a5, a10;
} sums;

/* Adds one query's metrics to s: ranked are its hits in rank order (n of
 * them), gain(i) the qrel gain of ranked[i] (0 when not relevant), rel its
 * number of relevant documents, ideal its relevant gains sorted descending. */
static void add_query(sums *s, const double *gain, size_t n, size_t rel, const double *ideal) {
    size_t found = 0, first = 0; /* first: 1-based rank of the first relevant hit, 0 none */
    double ap = 0, dcg = 0;
    size_t c1 = 0, c10 = 0, c100 = 0;
    for (size_t i = 0; i < n && i < 100; i++) {
        if (gain[i] <= 0) continue;
        found++;
        if (!first) first = i + 1;
        ap += (double)found / (double)(i + 1);
        if (i < 1) c1++;
        if (i < 10) c10++, dcg += gain[i] / log2((double)i + 2.0);
        c100++;
    }
    double idcg = 0;
    for (size_t i = 0; i < rel && i < 10; i++) idcg += ideal[i] / log2((double)i + 2.0);
    s->ndcg10 += idcg > 0 ? dcg / idcg : 0;
    s->mrr10 += first && first <= 10 ? 1.0 / (double)first : 0;
    s->r1 += (double)c1 / (double)rel, s->r10 += (double)c10 / (double)rel, s->r100 += (double)c100 / (double)rel;
    s->map100 += ap / (double)(rel < 100 ? rel : 100);
    s->p1 += (double)c1, s->p10 += (double)c10 / 10.0;
    s->a1 += first == 1, s->a3 += first && first <= 3, s->a5 += first && first <= 5, s->a10 += first && first <= 10;
}

se_ir_params se_ir_default_params(void) {
    se_ir_params p;
    memset(&p, 0, sizeof p);
    return p;
}

/* Per evaluated query: its id, relevant documents and run. */
typedef struct qinfo {
    const char *id;
    size_t n_rel;
    size_t first; /* where its relevant qrels start in by_query */
    size_t run;   /* SIZE_MAX: none */
} qinfo;

se_status se_ir_evaluate(const se_ir_run *runs, size_t n_runs, const se_ir_qrel *qrels, size_t n_qrels,
                         const se_ir_params *params, se_ir_metrics *out, se_error *err) {
    if ((n_runs && !runs) || (n_qrels && !qrels) || !out)
        return se_err(err, SE_E_INVALID, "se_ir_evaluate: invalid arguments");
    se_ir_params p = params ? *params : se_ir_default_params();
    memset(out, 0, sizeof *out);
    se_status st = SE_OK;
    table pairs = {0}, queries = {0}, seen = {0};
    qinfo *q = NULL;
    double *gains = NULL, *ideal = NULL;
    const se_ir_hit **order = NULL;
    size_t *by_query = NULL;
    size_t nq = 0, max_hits = 0, max_rel = 0;
    if (table_init(&pairs, n_qrels) || table_init(&queries, n_qrels + n_runs) ||
        !(q = se_malloc_array(n_qrels ? n_qrels : 1, sizeof *q))) {
        st = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    /* the judged pairs (val: the qrel's index) and the evaluated queries */
    for (size_t i = 0; i < n_qrels; i++) {
        const se_ir_qrel *r = &qrels[i];
        if (!r->query_id || !r->doc_id) {
            st = se_err(err, SE_E_INVALID, "se_ir_evaluate: qrel %zu: NULL %s id", i, r->query_id ? "document" : "query");
            goto done;
        }
        slot *s = table_find(&pairs, r->query_id, r->doc_id);
        if (s->a) {
            st = se_err(err, SE_E_INVALID, "qrels: query '%s', document '%s' judged twice", r->query_id, r->doc_id);
            goto done;
        }
        s->a = r->query_id, s->b = r->doc_id, s->val = i, pairs.n++;
        if (r->score <= 0) continue;
        s = table_find(&queries, r->query_id, NULL);
        if (!s->a) {
            s->a = r->query_id, s->val = nq, queries.n++;
            q[nq].id = r->query_id, q[nq].n_rel = 0, q[nq].run = SIZE_MAX;
            nq++;
        }
        q[s->val].n_rel++;
        out->n_relevant++;
    }
    if (nq == 0) {
        st = se_err(err, SE_E_INVALID, "qrels: no query has a relevant document (score > 0)");
        goto done;
    }
    for (size_t i = 0; i < nq; i++)
        if (q[i].n_rel > max_rel) max_rel = q[i].n_rel;
    /* runs: attach each to its query; runs of other queries are skipped */
    for (size_t r = 0; r < n_runs; r++) {
        if (!runs[r].query_id || (runs[r].n_hits && !runs[r].hits)) {
            st = se_err(err, SE_E_INVALID, "se_ir_evaluate: run %zu: NULL query id or hits", r);
            goto done;
        }
        slot *s = table_find(&queries, runs[r].query_id, NULL);
        if (!s->a) {
            /* a query without a relevant document: remember it to catch a
             * second run of it too */
            s->a = runs[r].query_id, s->val = SIZE_MAX - 1 - r, queries.n++;
            out->n_skipped_runs++;
            continue;
        }
        if (s->val >= nq || q[s->val].run != SIZE_MAX) {
            st = se_err(err, SE_E_INVALID, "run: query '%s' has two rankings", runs[r].query_id);
            goto done;
        }
        q[s->val].run = r;
        if (runs[r].n_hits > max_hits) max_hits = runs[r].n_hits;
    }
    if (!(gains = se_malloc_array(max_hits ? max_hits : 1, sizeof *gains)) ||
        !(ideal = se_malloc_array(max_rel, sizeof *ideal)) ||
        !(order = se_malloc_array(max_hits ? max_hits : 1, sizeof *order)) || table_init(&seen, max_hits)) {
        st = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    /* the relevant qrels grouped by query (a counting sort): query qi's
     * are by_query[q[qi].first ..][0 .. n_rel) */
    if (!(by_query = se_malloc_array(out->n_relevant, sizeof *by_query))) {
        st = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t qi = 0, at = 0; qi < nq; qi++) q[qi].first = at, at += q[qi].n_rel, q[qi].n_rel = 0;
    for (size_t i = 0; i < n_qrels; i++) {
        if (qrels[i].score <= 0) continue;
        qinfo *qq = &q[table_find(&queries, qrels[i].query_id, NULL)->val];
        by_query[qq->first + qq->n_rel++] = i;
    }
    sums sm;
    memset(&sm, 0, sizeof sm);
    for (size_t qi = 0; qi < nq; qi++) {
        const se_ir_run *run = q[qi].run == SIZE_MAX ? NULL : &runs[q[qi].run];
        size_t n = run ? run->n_hits : 0;
        memset(seen.s, 0, seen.cap * sizeof *seen.s);
        for (size_t i = 0; i < n; i++) {
            const se_ir_hit *h = &run->hits[i];
            if (!h->doc_id) {
                st = se_err(err, SE_E_INVALID, "run: query '%s': hit %zu has a NULL document id", q[qi].id, i);
                goto done;
            }
            if (isnan(h->score)) {
                st = se_err(err, SE_E_INVALID, "run: query '%s': document '%s' has a NaN score", q[qi].id, h->doc_id);
                goto done;
            }
            slot *s = table_find(&seen, h->doc_id, NULL);
            if (s->a) {
                st = se_err(err, SE_E_INVALID, "run: query '%s': document '%s' retrieved twice", q[qi].id, h->doc_id);
                goto done;
            }
            s->a = h->doc_id;
            order[i] = h;
        }
        qsort(order, n, sizeof *order, by_rank);
        for (size_t i = 0; i < n; i++) {
            slot *s = table_find(&pairs, q[qi].id, order[i]->doc_id);
            int32_t g = s->a ? qrels[s->val].score : 0;
            gains[i] = g > 0 ? (p.binary_ndcg ? 1.0 : (double)g) : 0.0;
        }
        if (!run) out->n_no_run++;
        /* the ideal: this query's relevant gains, sorted */
        size_t k = q[qi].n_rel;
        for (size_t i = 0; i < k; i++) {
            int32_t g = qrels[by_query[q[qi].first + i]].score;
            ideal[i] = p.binary_ndcg ? 1.0 : (double)g;
        }
        qsort(ideal, k, sizeof *ideal, by_gain_desc);
        add_query(&sm, gains, n, q[qi].n_rel, ideal);
    }
    double d = (double)nq;
    out->n_queries = nq;
    out->ndcg_at_10 = sm.ndcg10 / d, out->mrr_at_10 = sm.mrr10 / d;
    out->recall_at_1 = sm.r1 / d, out->recall_at_10 = sm.r10 / d, out->recall_at_100 = sm.r100 / d;
    out->map_at_100 = sm.map100 / d;
    out->precision_at_1 = sm.p1 / d, out->precision_at_10 = sm.p10 / d;
    out->accuracy_at_1 = sm.a1 / d, out->accuracy_at_3 = sm.a3 / d, out->accuracy_at_5 = sm.a5 / d;
    out->accuracy_at_10 = sm.a10 / d;
done:
    se_free(pairs.s), se_free(queries.s), se_free(seen.s);
    se_free(q), se_free(gains), se_free(ideal), se_free((void *)order), se_free(by_query);
    return st;
}
