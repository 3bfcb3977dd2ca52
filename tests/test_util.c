/*
 * test_util.c - the embedding utilities against sentence-transformers'
 * algorithms: tests/fixtures/util/util-reference.json was written by an
 * independent Python implementation (tools/gen_util_reference.py) from
 * sentence-transformers' documented behaviour. Also k-means and binary
 * search sanity, and bad arguments.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sembed.h"
#include "test.h"

#define REF "tests/fixtures/util/util-reference.json"

static json_t *ref;
static float *emb, *qry;
static size_t n, nq, dim;

static float *matrix(json_t *a, size_t *rows, size_t *cols) {
    *rows = json_array_size(a);
    *cols = *rows ? json_array_size(json_array_get(a, 0)) : 0;
    float *m = malloc((*rows ? *rows : 1) * (*cols ? *cols : 1) * sizeof *m);
    for (size_t i = 0; i < *rows; i++)
        for (size_t j = 0; j < *cols; j++) m[i * *cols + j] = (float)json_number_value(json_array_get(json_array_get(a, i), j));
    return m;
}

static se_similarity fn_of(const char *s) {
    return !strcmp(s, "dot") ? SE_SIM_DOT : !strcmp(s, "euclidean") ? SE_SIM_EUCLIDEAN : !strcmp(s, "manhattan") ? SE_SIM_MANHATTAN : SE_SIM_COSINE;
}

TEST(similarity_matrices) {
    const char *names[4] = {"cosine", "dot", "euclidean", "manhattan"};
    json_t *sim = json_object_get(ref, "similarity");
    for (int f = 0; f < 4; f++) {
        size_t r, c;
        float *want = matrix(json_object_get(sim, names[f]), &r, &c);
        CHECK(r == nq && c == n);
        float *got = malloc(nq * n * sizeof *got);
        CHECK(se_similarity_matrix(fn_of(names[f]), qry, nq, emb, n, dim, got, NULL) == SE_OK);
        CHECK_CLOSE(got, want, nq * n, 2e-5, 2e-5, names[f]);
        free(got);
        free(want);
    }
}

TEST(semantic_search) {
    json_t *cases = json_object_get(ref, "semantic_search"), *c;
    size_t ci;
    CHECK(json_array_size(cases) >= 3);
    json_array_foreach(cases, ci, c) {
        size_t k = (size_t)json_integer_value(json_object_get(c, "top_k")), kk = k < n ? k : n;
        se_hit *h = malloc(nq * kk * sizeof *h);
        CHECK(se_semantic_search(fn_of(json_string_value(json_object_get(c, "score_function"))), qry, nq, emb, n, dim, k, h,
                                 NULL) == SE_OK);
        json_t *res = json_object_get(c, "result");
        CHECK(json_array_size(res) == nq);
        for (size_t q = 0; q < nq; q++) {
            json_t *r = json_array_get(res, q);
            CHECK(json_array_size(r) == kk);
            for (size_t t = 0; t < kk && t < json_array_size(r); t++) {
                json_t *e = json_array_get(r, t);
                int id = (int)json_integer_value(json_object_get(e, "corpus_id"));
                double sc = json_number_value(json_object_get(e, "score"));
                CHECK_MSG(h[q * kk + t].corpus_id == id, "case %zu query %zu rank %zu: id %d, want %d", ci, q, t,
                          h[q * kk + t].corpus_id, id);
                CHECK(fabs(h[q * kk + t].score - sc) <= 2e-5 * (1 + fabs(sc)));
            }
        }
        free(h);
    }
}

TEST(paraphrase_mining) {
    json_t *cases = json_object_get(ref, "paraphrase_mining"), *c;
    size_t ci;
    CHECK(json_array_size(cases) >= 2);
    json_array_foreach(cases, ci, c) {
        se_pair *p;
        size_t np;
        CHECK(se_paraphrase_mining(fn_of(json_string_value(json_object_get(c, "score_function"))), emb, n, dim,
                                   (size_t)json_integer_value(json_object_get(c, "top_k")),
                                   (size_t)json_integer_value(json_object_get(c, "max_pairs")),
                                   (size_t)json_integer_value(json_object_get(c, "corpus_chunk_size")), &p, &np, NULL) == SE_OK);
        json_t *res = json_object_get(c, "result");
        CHECK_MSG(np == json_array_size(res), "case %zu: %zu pairs, want %zu", ci, np, json_array_size(res));
        for (size_t t = 0; t < np && t < json_array_size(res); t++) {
            json_t *e = json_array_get(res, t);
            double sc = json_number_value(json_array_get(e, 0));
            int i = (int)json_integer_value(json_array_get(e, 1)), j = (int)json_integer_value(json_array_get(e, 2));
            CHECK_MSG(p[t].i == i && p[t].j == j, "case %zu pair %zu: (%d, %d), want (%d, %d)", ci, t, p[t].i, p[t].j, i, j);
            CHECK(fabs(p[t].score - sc) <= 2e-5 * (1 + fabs(sc)));
        }
        se_free(p);
    }
}

TEST(community_detection) {
    json_t *cases = json_object_get(ref, "community_detection"), *c;
    size_t ci;
    CHECK(json_array_size(cases) >= 3);
    json_array_foreach(cases, ci, c) {
        int32_t *m;
        size_t *st, nc;
        CHECK(se_community_detection(emb, n, dim, (float)json_number_value(json_object_get(c, "threshold")),
                                     (size_t)json_integer_value(json_object_get(c, "min_community_size")), &m, &st, &nc,
                                     NULL) == SE_OK);
        json_t *res = json_object_get(c, "result");
        CHECK_MSG(nc == json_array_size(res), "case %zu: %zu communities, want %zu", ci, nc, json_array_size(res));
        for (size_t k = 0; k < nc && k < json_array_size(res); k++) {
            json_t *want = json_array_get(res, k);
            CHECK_MSG(st[k + 1] - st[k] == json_array_size(want), "case %zu community %zu: size %zu, want %zu", ci, k,
                      st[k + 1] - st[k], json_array_size(want));
            for (size_t t = 0; t < json_array_size(want) && st[k] + t < st[k + 1]; t++)
                CHECK_MSG(m[st[k] + t] == (int32_t)json_integer_value(json_array_get(want, t)),
                          "case %zu community %zu member %zu: %d", ci, k, t, m[st[k] + t]);
        }
        se_free(m);
        se_free(st);
    }
}

static void check_bytes(const char *what, const uint8_t *got, json_t *want, size_t rows, size_t cols, int is_signed) {
    CHECK(json_array_size(want) == rows);
    size_t bad = 0;
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) {
            long w = (long)json_integer_value(json_array_get(json_array_get(want, i), j));
            long g = is_signed ? (long)(int8_t)got[i * cols + j] : (long)got[i * cols + j];
            if (g != w && bad++ < 3) fprintf(stderr, "  %s[%zu][%zu] = %ld, want %ld\n", what, i, j, g, w);
        }
    CHECK_MSG(bad == 0, "%s: %zu values differ", what, bad);
}

TEST(quantize) {
    json_t *qz = json_object_get(ref, "quantize");
    size_t cr, cc;
    float *cal = matrix(json_object_get(qz, "calibration"), &cr, &cc);
    CHECK(cc == dim);
    float *ranges = malloc(2 * dim * sizeof *ranges);
    CHECK(se_quant_ranges(cal, cr, dim, ranges, NULL) == SE_OK);
    size_t rr, rc;
    float *want_r = matrix(json_object_get(qz, "ranges"), &rr, &rc);
    CHECK(rr == 2 && rc == dim);
    CHECK_CLOSE(ranges, want_r, 2 * dim, 0, 0, "ranges");
    uint8_t *out = malloc(n * dim);
    CHECK(se_quantize_embeddings(SE_QUANT_INT8, emb, n, dim, ranges, out, NULL) == SE_OK);
    check_bytes("int8", out, json_object_get(qz, "int8"), n, dim, 1);
    CHECK(se_quantize_embeddings(SE_QUANT_UINT8, emb, n, dim, ranges, out, NULL) == SE_OK);
    check_bytes("uint8", out, json_object_get(qz, "uint8"), n, dim, 0);
    CHECK(se_quantize_embeddings(SE_QUANT_INT8, emb, n, dim, NULL, out, NULL) == SE_OK);
    check_bytes("int8_self", out, json_object_get(qz, "int8_self"), n, dim, 1);
    size_t rb = se_quant_row_bytes(SE_QUANT_BINARY, dim);
    CHECK(rb == (dim + 7) / 8);
    CHECK(se_quantize_embeddings(SE_QUANT_BINARY, emb, n, dim, NULL, out, NULL) == SE_OK);
    check_bytes("binary", out, json_object_get(qz, "binary"), n, rb, 1);
    CHECK(se_quantize_embeddings(SE_QUANT_UBINARY, emb, n, dim, NULL, out, NULL) == SE_OK);
    check_bytes("ubinary", out, json_object_get(qz, "ubinary"), n, rb, 0);
    /* binary search with rescoring finds each row itself first */
    se_hit h[3];
    size_t self = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(se_binary_search(emb + i * dim, 1, out, n, dim, 3, 4, h, NULL) == SE_OK);
        self += (size_t)h[0].corpus_id == i;
        CHECK(h[0].score >= h[1].score && h[1].score >= h[2].score);
    }
    CHECK(self >= n * 9 / 10);
    free(out);
    free(ranges);
    free(want_r);
    free(cal);
}

TEST(kmeans) {
    /* the fixture's clusters: k-means on them is deterministic per seed and
     * never worse than a single centroid */
    size_t k = 6;
    float *cent = malloc(k * dim * sizeof *cent), *c2 = malloc(k * dim * sizeof *c2);
    int32_t *lab = malloc(n * sizeof *lab), *lab2 = malloc(n * sizeof *lab2);
    double in1, in2, in_one;
    CHECK(se_kmeans(emb, n, dim, k, true, 7, 100, cent, lab, &in1, NULL) == SE_OK);
    CHECK(se_kmeans(emb, n, dim, k, true, 7, 100, c2, lab2, &in2, NULL) == SE_OK);
    CHECK(in1 == in2 && memcmp(lab, lab2, n * sizeof *lab) == 0);
    CHECK(se_kmeans(emb, n, dim, 1, true, 7, 100, c2, lab2, &in_one, NULL) == SE_OK);
    CHECK(in1 < in_one * 0.6);
    int used[6] = {0};
    for (size_t i = 0; i < n; i++) {
        CHECK(lab[i] >= 0 && lab[i] < 6);
        if (lab[i] >= 0 && lab[i] < 6) used[lab[i]] = 1;
    }
    for (int c = 0; c < 6; c++) CHECK(used[c]);
    se_error err;
    CHECK(se_kmeans(emb, n, dim, n + 1, true, 7, 100, cent, lab, NULL, &err) == SE_E_RANGE);
    free(cent), free(c2), free(lab), free(lab2);
}

TEST(bad_arguments) {
    se_error err;
    se_hit h;
    CHECK(se_semantic_search(SE_SIM_EUCLIDEAN, qry, 1, emb, n, dim, 1, &h, &err) == SE_E_UNSUPPORTED);
    CHECK(se_semantic_search(SE_SIM_COSINE, NULL, 1, emb, n, dim, 1, &h, &err) == SE_E_INVALID);
    CHECK(se_semantic_search(SE_SIM_COSINE, qry, 1, emb, 0, dim, 1, &h, &err) == SE_OK); /* empty corpus */
    int32_t *m;
    size_t *st, nc;
    CHECK(se_community_detection(emb, 0, dim, 0.5f, 2, &m, &st, &nc, &err) == SE_OK && nc == 0);
    se_free(m);
    se_free(st);
    CHECK(se_quantize_embeddings((se_quant)9, emb, 1, dim, NULL, &h, &err) == SE_E_INVALID);
}

int main(void) {
    json_error_t je;
    ref = json_load_file(REF, 0, &je);
    if (!ref) {
        fprintf(stderr, "%s: %s (line %d)\n", REF, je.text, je.line);
        return 1;
    }
    size_t qd;
    emb = matrix(json_object_get(ref, "embeddings"), &n, &dim);
    qry = matrix(json_object_get(ref, "queries"), &nq, &qd);
    if (n < 10 || qd != dim) {
        fprintf(stderr, "%s: unexpected shapes\n", REF);
        return 1;
    }
    RUN(similarity_matrices);
    RUN(semantic_search);
    RUN(paraphrase_mining);
    RUN(community_detection);
    RUN(quantize);
    RUN(kmeans);
    RUN(bad_arguments);
    json_decref(ref);
    free(emb);
    free(qry);
    return test_report("test_util");
}
