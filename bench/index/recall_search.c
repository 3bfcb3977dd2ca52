/*
 * recall_search.c - the timing side of recall_scifact.py: opens an index
 * made by `sembed index build`, encodes each query with the model (timed),
 * and searches it through the public API at each requested ef (timed, one
 * thread, one query at a time), printing one JSON line per (ef, query):
 *
 *   recall_search INDEX MODEL QUERIES.txt [--ef 0,128,...] [--k 10] [--reps 3] [--vecs OUT.f32]
 *
 *   {"ef": 0, "q": 12, "encode_us": 812.1, "search_us": 95.3, "docs": [...], "scores": [...]}
 *
 * ef 0 is the index's default settings (what `sembed search` does). docs
 * are the documents' row ids (chunks.doc in the index file), best chunk per
 * document, best first. search_us is the median of --reps searches of the
 * same query, after one untimed pass over all queries. --vecs writes the
 * query vectors (float32, row-major) for the exact reference.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sembed.h"

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

static void die(const char *what, const se_error *err) {
    fprintf(stderr, "recall_search: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: recall_search INDEX MODEL QUERIES.txt [--ef 0,128] [--k 10] [--reps 3] [--vecs F]\n");
        return 2;
    }
    const char *efs = "0", *vecs_out = NULL;
    size_t k = 10;
    int reps = 3;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ef")) efs = argv[i + 1];
        else if (!strcmp(argv[i], "--k")) k = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--vecs")) vecs_out = argv[i + 1];
        else {
            fprintf(stderr, "recall_search: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (reps < 1 || reps > 99 || k < 1) return 2;
    se_error err;
    se_index *idx;
    if (se_index_open(argv[1], true, NULL, NULL, &idx, &err)) die(argv[1], &err);
    se_model *m;
    if (se_model_load(argv[2], NULL, &m, &err)) die(argv[2], &err);
    se_ctx_params cp = se_ctx_default_params();
    cp.n_threads = 1;
    se_ctx *c;
    if (se_ctx_new(m, &cp, &c, &err)) die("ctx", &err);
    size_t dim = se_encode_dim(m, NULL);

    FILE *f = fopen(argv[3], "r");
    if (!f) die(argv[3], NULL);
    char **qs = NULL;
    size_t nq = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (nq == cap) qs = realloc(qs, (cap = cap ? 2 * cap : 512) * sizeof *qs);
        qs[nq++] = strdup(line);
    }
    free(line);
    fclose(f);

    float *vecs = malloc(nq * dim * sizeof *vecs);
    double *enc_us = malloc(nq * sizeof *enc_us);
    for (size_t q = 0; q < nq; q++) {
        const char *t = qs[q];
        double t0 = now_us();
        if (se_encode(c, &t, NULL, 1, NULL, vecs + q * dim, dim, NULL, &err)) die("encode", &err);
        enc_us[q] = now_us() - t0;
    }
    if (vecs_out) {
        FILE *vf = fopen(vecs_out, "wb");
        if (!vf || fwrite(vecs, sizeof *vecs, nq * dim, vf) != nq * dim || fclose(vf)) die(vecs_out, NULL);
    }

    se_index_hit *hits = malloc(k * sizeof *hits);
    double times[100];
    for (const char *e = efs; *e;) {
        long ef = strtol(e, (char **)&e, 10);
        if (*e == ',') e++;
        se_index_search_params sp = se_index_search_default_params();
        sp.k = k;
        sp.ef_search = (uint32_t)ef;
        /* one warm-up pass over every query */
        size_t nh;
        for (size_t q = 0; q < nq; q++)
            if (se_index_search(idx, vecs + q * dim, &sp, hits, &nh, &err)) die("search", &err);
        for (size_t q = 0; q < nq; q++) {
            for (int r = 0; r < reps; r++) {
                double t0 = now_us();
                if (se_index_search(idx, vecs + q * dim, &sp, hits, &nh, &err)) die("search", &err);
                times[r] = now_us() - t0;
            }
            qsort(times, (size_t)reps, sizeof *times, cmp_double);
            printf("{\"ef\": %ld, \"q\": %zu, \"encode_us\": %.1f, \"search_us\": %.1f, \"docs\": [", ef, q, enc_us[q],
                   times[reps / 2]);
            for (size_t i = 0; i < nh; i++) printf("%s%lld", i ? ", " : "", (long long)hits[i].doc);
            printf("], \"scores\": [");
            for (size_t i = 0; i < nh; i++) printf("%s%.7g", i ? ", " : "", (double)hits[i].score);
            printf("]}\n");
        }
    }
    for (size_t q = 0; q < nq; q++) free(qs[q]);
    free(qs);
    free(vecs);
    free(enc_us);
    free(hits);
    se_ctx_free(c);
    se_model_free(m);
    se_index_close(idx, NULL);
    return 0;
}
