/*
 * test_train_kernels.c - the training engine's fast kernels against their
 * scalar twins (src/train/train_gemm.c, train_kernels.c, train_optim.c):
 *   - the strided GEMM (se_tk_gemm) in its three uses (x w^T + b, dy w
 *     added, dy^T x added) on shapes with edges in every direction and K
 *     past one packed chunk: the same bits as se_tk_gemm_ref, on one
 *     thread and on three
 *   - one attention head forward and backward, each fast way (the
 *     dispatcher, the GEMM path, the AVX2 kernels), against the scalar
 *     references (to rounding)
 *   - GELU's 8-lane forward and backward against the scalar twin (the same
 *     bits) and libm (1e-6)
 *   - AdamW's 8-lane update against the scalar (the same bits), and a
 *     whole step on one thread and on three (the same bits)
 * Each test runs in well under a second.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "test.h"
#include "threadpool.h"
#include "train/train.h"
#include "train/train_adamw.h"
#include "train/train_kernels.h"

/* Fills n floats with values in [-1, 1) from a small LCG. */
static void fill(float *x, size_t n, uint32_t *st) {
    for (size_t i = 0; i < n; i++) {
        *st = *st * 1664525u + 1013904223u;
        x[i] = (float)((*st >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

/* se_tk_gemm against se_tk_gemm_ref, bit for bit: A plain or transposed,
 * B plain or transposed, stored (with a bias on even shapes) or added into
 * C; on no pool and on three threads. The last two shapes are wider than
 * tall with K over a chunk: the kernel runs them transposed (C^T = B^T A^T,
 * the row sums taken as B is packed). */
TEST(test_train_gemm_twin) {
    static const size_t shapes[][3] = {{1, 1, 1},     {6, 16, 8},     {7, 17, 3}, {97, 129, 257},
                                       {13, 300, 40}, {200, 33, 600}, {1001, 20, 9}, {5, 5, 0},
                                       {13, 300, 900}, {40, 97, 777}};
    uint32_t st = 11;
    se_threadpool *pool = se_threadpool_new(3);
    CHECK(pool != NULL);
    float *scr = malloc(se_tk_gemm_scratch(3, 900, 300) * sizeof *scr);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        size_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ldc = N + 5;
        size_t na = M * K + 1, nb = K * N + 1;
        float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b), *bias = malloc(N * sizeof *bias);
        float *c0 = malloc(M * ldc * sizeof *c0), *c1 = malloc(M * ldc * sizeof *c1), *c2 = malloc(M * ldc * sizeof *c2);
        fill(a, na, &st), fill(b, nb, &st), fill(bias, N, &st), fill(c0, M * ldc, &st);
        for (int form = 0; form < 8; form++) {
            bool at = form & 1, bt = form & 2, acc = form & 4;
            const float *bi = acc || (s & 1) ? NULL : bias;
            size_t ars = at ? 1 : K, acs = at ? M : 1, brs = bt ? 1 : N, bcs = bt ? K : 1;
            memcpy(c1, c0, M * ldc * sizeof *c1), memcpy(c2, c0, M * ldc * sizeof *c2);
            se_tk_gemm_ref(M, N, K, a, ars, acs, b, brs, bcs, bi, acc, c1, ldc);
            se_tk_gemm(NULL, M, N, K, a, ars, acs, b, brs, bcs, bi, acc, c2, ldc, scr);
            CHECK_MSG(!memcmp(c1, c2, M * ldc * sizeof *c1), "shape %zux%zux%zu form %d: one thread differs from the twin",
                      M, N, K, form);
            memcpy(c2, c0, M * ldc * sizeof *c2);
            se_tk_gemm(pool, M, N, K, a, ars, acs, b, brs, bcs, bi, acc, c2, ldc, scr);
            CHECK_MSG(!memcmp(c1, c2, M * ldc * sizeof *c1), "shape %zux%zux%zu form %d: three threads differ", M, N, K,
                      form);
            /* the product times a factor per element (the GELU backward's),
             * on no pool and on three threads; c0 serves as the factors */
            if (!acc && !bi) {
                float *f1 = malloc(M * ldc * sizeof *f1);
                memcpy(f1, c1, M * ldc * sizeof *f1);
                for (size_t m = 0; m < M; m++)
                    for (size_t n = 0; n < N; n++) f1[m * ldc + n] *= c0[m * ldc + n];
                for (int nt = 0; nt < 2; nt++) {
                    memcpy(c2, c0, M * ldc * sizeof *c2);
                    se_tk_gemm_mul(nt ? pool : NULL, M, N, K, a, ars, acs, b, brs, bcs, c0, c2, ldc, scr);
                    CHECK_MSG(!memcmp(f1, c2, M * ldc * sizeof *f1),
                              "shape %zux%zux%zu form %d threads %d: the product times factors differs", M, N, K, form,
                              nt ? 3 : 1);
                }
                free(f1);
            }
            /* the row sums (a weight gradient's bias) ride on A's packing: the
             * bits of the loop over k, one thread or three */
            float *rs0 = malloc((M + 1) * sizeof *rs0), *rs1 = malloc((M + 1) * sizeof *rs1);
            fill(rs0, M + 1, &st), memcpy(rs1, rs0, (M + 1) * sizeof *rs1);
            se_tk_rowsum_ref(M, K, a, ars, acs, rs0);
            for (int nt = 0; nt < 2; nt++) {
                memcpy(c2, c0, M * ldc * sizeof *c2);
                float *rs2 = malloc((M + 1) * sizeof *rs2);
                memcpy(rs2, rs1, (M + 1) * sizeof *rs2);
                se_tk_gemm_rowsum(nt ? pool : NULL, M, N, K, a, ars, acs, b, brs, bcs, bi, acc, c2, ldc,
                                  rs2, scr);
                CHECK_MSG(!memcmp(c1, c2, M * ldc * sizeof *c1) && !memcmp(rs0, rs2, (M + 1) * sizeof *rs0),
                          "shape %zux%zux%zu form %d threads %d: the GEMM with row sums differs from the twins", M, N, K,
                          form, nt ? 3 : 1);
                free(rs2);
            }
            double ds = 0.0; /* and the sums are the sums */
            for (size_t m = 0; m < M; m++) {
                double t = rs1[m];
                for (size_t k = 0; k < K; k++) t += a[m * ars + k * acs];
                ds = fabs(t - rs0[m]) > ds ? fabs(t - rs0[m]) : ds;
            }
            CHECK_MSG(ds < 1e-3, "shape %zux%zux%zu: row sums off by %g", M, N, K, ds);
            free(rs0), free(rs1);
        }
        free(a), free(b), free(bias), free(c0), free(c1), free(c2);
    }
    free(scr);
    se_threadpool_free(pool);
}

/* Relative error of a rows x cols block (rows lda and ldb apart) against
 * a reference: max |a - b| over max |b|. */
static double rel_err_rows(const float *a, size_t lda, const float *b, size_t ldb, size_t rows, size_t cols) {
    double e = 0.0, m = 1e-30;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            double x = a[r * lda + c], y = b[r * ldb + c], d = fabs(x - y);
            e = d > e ? d : e;
            m = fabs(y) > m ? fabs(y) : m;
        }
    return e / m;
}

/* The same over n floats. */
static double rel_err(const float *a, const float *b, size_t n) {
    return rel_err_rows(a, n, b, n, 1, n);
}

/* The fast attention head against the scalar references (se_tk_attn_fwd,
 * se_tk_attn_bwd), each of its ways: se_tk_attn_*_fast (the dispatcher),
 * the GEMM path (se_tk_attn_*_gemm) and, where the CPU has AVX2 and FMA,
 * train_attn_avx2.c's kernels (se_tk_attn_*_avx2; HD a multiple of 8).
 * Sentence lengths 1, 5, 17, 33 and 128 (a partial last vector, one
 * block of rows and several), HD 20 (the dispatcher's GEMM fallback), 24,
 * 32 and 64; with and without the relative bias and dropout, the dropped
 * weights kept by the forward (and read back by the backward) or drawn
 * again. Checked: the weights and the context to 1e-5 of their largest
 * value, the context's columns past HD untouched, the kept dropped
 * weights exactly p times se_tk_drop_at's factors, what the backward
 * writes into dq, dk, dv (rows 3 HD + 5 apart, over nonzero values: the
 * five columns past 3 HD untouched) and adds to the bias gradient, to
 * 1e-5 of the largest value. */
TEST(test_train_attn_twin) {
    static const size_t lens[] = {1, 5, 17, 33, 128}, hds[] = {20, 24, 32, 64};
    static const char *const names[] = {"fast", "gemm", "avx2"};
    static se_tk_attn_fwd_fn *const fwds[] = {se_tk_attn_fwd_fast, se_tk_attn_fwd_gemm, se_tk_attn_fwd_avx2};
    static se_tk_attn_bwd_fn *const bwds[] = {se_tk_attn_bwd_fast, se_tk_attn_bwd_gemm, se_tk_attn_bwd_avx2};
    int n_ways = se_kernels_get()->gemm != se_gemm_ref ? 3 : 2; /* the AVX2 kernels only where the CPU has them */
    const size_t P = 130, NR = 2 * P - 1, center = P - 1;
    const float sentinel = 7.0f;
    uint32_t st = 5;
    for (size_t hi = 0; hi < sizeof hds / sizeof *hds; hi++)
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++)
            for (int form = 0; form < 8; form++) {
                size_t HD = hds[hi], T = lens[li], ld = 3 * HD + 5, ldo = HD + 3, nq = T * ld, no = T * ldo;
                bool use_rel = form & 1, use_drop = form & 2, keep = form & 4;
                if (keep && !use_drop) continue;
                float scale = 1.0f / sqrtf((float)HD);
                float *qkv = malloc(nq * sizeof *qkv), *rel = malloc(NR * sizeof *rel), *dout = malloc(no * sizeof *dout);
                float *g_in = malloc(nq * sizeof *g_in), *r_in = malloc(NR * sizeof *r_in);
                float *p0 = malloc(T * T * sizeof *p0), *o0 = malloc(no * sizeof *o0), *dp = malloc(T * sizeof *dp);
                float *g0 = malloc(nq * sizeof *g0), *r0 = malloc(NR * sizeof *r0);
                fill(qkv, nq, &st), fill(rel, NR, &st), fill(dout, no, &st), fill(g_in, nq, &st), fill(r_in, NR, &st);
                se_tk_drop drb = {.key = 99, .site = 4, .base = 1000, .thr = (uint32_t)(0.3 * 16777216.0), .inv = 1.0f / 0.7f};
                const se_tk_drop *dr = use_drop ? &drb : NULL;
                const float *q = qkv, *k = qkv + HD, *v = qkv + 2 * HD, *rb = use_rel ? rel : NULL;
                for (size_t e = 0; e < no; e++) o0[e] = sentinel;
                memcpy(g0, g_in, nq * sizeof *g0), memcpy(r0, r_in, NR * sizeof *r0);
                se_tk_attn_fwd(q, k, v, ld, T, HD, scale, rb, center, dr, p0, o0, ldo);
                se_tk_attn_bwd(q, k, v, ld, T, HD, scale, p0, dout, ldo, g0, g0 + HD, g0 + 2 * HD, use_rel ? r0 : NULL,
                               center, dr, dp);
                for (size_t e = 0; e < NR; e++) r0[e] -= r_in[e]; /* what the reference added to the bias */
                CHECK_MSG(se_tk_attn_avx2_scratch(T, HD) <= se_tk_attn_scratch(T, HD), "T %zu HD %zu: scratch", T, HD);
                for (int w = 0; w < n_ways; w++) {
                    if (w == 2 && HD % 8) continue; /* the AVX2 kernels take HD a multiple of 8 */
                    float *p1 = malloc(T * T * sizeof *p1), *pd = malloc(T * T * sizeof *pd), *o1 = malloc(no * sizeof *o1);
                    float *g1 = malloc(nq * sizeof *g1), *r1 = malloc(NR * sizeof *r1);
                    /* the AVX2 kernels get exactly their own scratch (the sanitizer build checks they keep in it) */
                    size_t ns = w == 2 ? se_tk_attn_avx2_scratch(T, HD) : se_tk_attn_scratch(T, HD);
                    float *scr = malloc(ns * sizeof *scr);
                    for (size_t e = 0; e < no; e++) o1[e] = sentinel;
                    memcpy(g1, g_in, nq * sizeof *g1), memcpy(r1, r_in, NR * sizeof *r1);
                    fwds[w](q, k, v, ld, T, HD, scale, rb, center, dr, p1, keep ? pd : NULL, o1, ldo, scr);
                    double e1 = rel_err(p1, p0, T * T), e2 = rel_err_rows(o1, ldo, o0, ldo, T, HD);
                    CHECK_MSG(e1 < 1e-5 && e2 < 1e-5, "%s T %zu HD %zu form %d forward: weights %.2e, context %.2e",
                              names[w], T, HD, form, e1, e2);
                    size_t bad = 0;
                    for (size_t i = 0; i < T; i++)
                        for (size_t c = HD; c < ldo; c++) bad += o1[i * ldo + c] != sentinel;
                    if (keep)
                        for (size_t e = 0; e < T * T; e++) bad += pd[e] != p1[e] * se_tk_drop_at(dr, e);
                    CHECK_MSG(!bad, "%s T %zu HD %zu form %d: %zu context gap or kept weight values wrong", names[w], T,
                              HD, form, bad);
                    bwds[w](q, k, v, ld, T, HD, scale, p0, keep ? pd : NULL, dout, ldo, g1, g1 + HD, g1 + 2 * HD,
                            use_rel ? r1 : NULL, center, dr, scr);
                    for (size_t e = 0; e < NR; e++) r1[e] -= r_in[e];
                    double e3 = rel_err_rows(g1, ld, g0, ld, T, 3 * HD), e4 = use_rel ? rel_err(r1, r0, NR) : 0.0;
                    size_t rbad = 0;
                    for (size_t i = 0; i < T; i++) /* the columns past q, k, v: not written */
                        for (size_t c = 3 * HD; c < ld; c++) rbad += g1[i * ld + c] != g_in[i * ld + c];
                    if (!use_rel)
                        for (size_t e = 0; e < NR; e++) rbad += r1[e] != 0.0f; /* no bias: drel untouched */
                    CHECK_MSG(e3 < 1e-5 && e4 < 1e-5 && !rbad, "%s T %zu HD %zu form %d backward: q k v %.2e, bias %.2e",
                              names[w], T, HD, form, e3, e4);
                    free(p1), free(pd), free(o1), free(g1), free(r1), free(scr);
                }
                free(qkv), free(rel), free(dout), free(g_in), free(r_in), free(p0), free(o0), free(dp), free(g0), free(r0);
            }
}

/* LayerNorm's fast twins against the references: rows of 1 to 70 (tails),
 * the backward's dx in place over dy, dg and db accumulated. */
TEST(test_train_ln_twin) {
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;
    uint32_t st = 23;
    float x0[80], x1[80], h0[80], h1[80], g[80], b[80], dy[80], d0[80], d1[80], dg0[80], dg1[80], db0[80], db1[80];
    for (size_t n = 1; n <= 70; n++) {
        float r0, r1;
        fill(x0, n, &st), fill(g, n, &st), fill(b, n, &st), fill(dy, n, &st), fill(dg0, n, &st), fill(db0, n, &st);
        for (size_t i = 0; i < n; i++) x0[i] = 3.0f * x0[i] + 0.5f, x1[i] = x0[i], dg1[i] = dg0[i], db1[i] = db0[i];
        se_tk_layernorm_fwd(x0, n, g, b, 1e-12f, h0, &r0);
        se_tk_layernorm_fwd_avx2(x1, n, g, b, 1e-12f, h1, &r1);
        double e1 = rel_err(x1, x0, n), e2 = rel_err(h1, h0, n), e3 = fabs((double)r1 - r0) / r0;
        CHECK_MSG(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5, "n %zu forward: y %.2e xhat %.2e rstd %.2e", n, e1, e2, e3);
        memcpy(d1, dy, n * sizeof *d1);
        se_tk_layernorm_bwd(dy, h0, r0, g, n, d0, dg0, db0);
        se_tk_layernorm_bwd_avx2(d1, h0, r0, g, n, d1, dg1, db1); /* in place */
        double e4 = rel_err(d1, d0, n), e5 = rel_err(dg1, dg0, n), e6 = rel_err(db1, db0, n);
        CHECK_MSG(e4 < 1e-4 && e5 < 1e-5 && e6 < 1e-5, "n %zu backward: dx %.2e dg %.2e db %.2e", n, e4, e5, e6);
    }
}

/* Dropout's factors eight at a time against the scalar draw, bit for bit:
 * lengths 0 to 40 (tails), offsets, keys and sites with high bits set,
 * p 0.1 and 0.5 (where the CPU has AVX2). */
TEST(test_train_drop_twin) {
    if (!__builtin_cpu_supports("avx2")) return;
    static const uint64_t keys[] = {0, 1, 0x9E3779B97F4A7C15ull, 0xFFFFFFFFFFFFFFFFull};
    uint32_t st = 17;
    float src[48], got[48], want[48];
    size_t dropped = 0, total = 0;
    for (size_t ki = 0; ki < sizeof keys / sizeof *keys; ki++)
        for (int p = 0; p < 2; p++)
            for (size_t n = 0; n <= 40; n++) {
                fill(src, n + 1, &st);
                float pr = p ? 0.5f : 0.1f;
                se_tk_drop d = {.key = keys[ki], .site = 5 + ki * 1000, .base = ki * 0xFFFFFFFFFull + n,
                                .thr = (uint32_t)((double)pr * 16777216.0), .inv = 1.0f / (1.0f - pr)};
                uint64_t e0 = n * 7;
                for (size_t i = 0; i < n; i++) want[i] = src[i] * se_tk_drop_at(&d, e0 + i);
                se_tk_drop_mul_avx2(&d, e0, src, got, n);
                CHECK_MSG(!memcmp(got, want, n * sizeof *got), "key %zu p %d n %zu: the factors differ", ki, p, n);
                for (size_t i = 0; i < n; i++) dropped += want[i] == 0.0f, total++;
            }
    /* the draws are dropout's: about 0.3 of these zeroed (0.1 and 0.5 alike) */
    CHECK_MSG(dropped > total / 5 && dropped < total * 2 / 5, "%zu of %zu dropped", dropped, total);
}

/* AdamW's update, 8 lanes against the scalar twin: the same bits, with and
 * without weight decay and clipping, n not a multiple of 8. */
TEST(test_train_adamw_twin) {
    const size_t n = 1003;
    uint32_t st = 3;
    float *w0 = malloc(n * sizeof *w0), *g0 = malloc(n * sizeof *g0), *m0 = malloc(n * sizeof *m0);
    float *v0 = malloc(n * sizeof *v0), *w1 = malloc(n * sizeof *w1), *g1 = malloc(n * sizeof *g1);
    float *m1 = malloc(n * sizeof *m1), *v1 = malloc(n * sizeof *v1);
    for (int form = 0; form < 2; form++) {
        fill(w0, n, &st), fill(g0, n, &st), fill(m0, n, &st), fill(v0, n, &st);
        for (size_t i = 0; i < n; i++) v0[i] = v0[i] * v0[i]; /* a second moment is >= 0 */
        /* rows no batch has touched yet (gradient and moments +0), which the
         * vector version skips, and blocks where one of the three is not
         * +0 (-0 included), which it must not */
        for (size_t i = 200; i < 400; i++) g0[i] = m0[i] = v0[i] = 0.0f;
        g0[211] = -0.0f, m0[300] = 1e-30f, v0[333] = 1e-38f, m0[350] = -0.0f;
        memcpy(w1, w0, n * sizeof *w1), memcpy(g1, g0, n * sizeof *g1), memcpy(m1, m0, n * sizeof *m1);
        memcpy(v1, v0, n * sizeof *v1);
        se_tk_adamw_consts c = {.coef = form ? 0.37f : 1.0f, .decay_on = form, .decay = 1.0f - 1e-3f * 0.01f,
                                .b1 = 0.9f, .omb1 = 1.0f - 0.9f, .b2 = 0.999f, .omb2 = 1.0f - 0.999f,
                                .bc2_sqrt = 0.0447f, .eps = 1e-8f, .neg_step = -1e-3f / 0.19f};
        se_tk_adamw_update_ref(w0, g0, m0, v0, n, &c);
        se_tk_adamw_update_avx2(w1, g1, m1, v1, n, &c);
        CHECK_MSG(!memcmp(w0, w1, n * sizeof *w0) && !memcmp(g0, g1, n * sizeof *g0) &&
                      !memcmp(m0, m1, n * sizeof *m0) && !memcmp(v0, v1, n * sizeof *v0),
                  "form %d: the AVX2 update differs from the scalar", form);
        size_t nz = 0; /* the gradients are used up: zero for the next step */
        for (size_t i = 0; i < n; i++) nz += g0[i] != 0.0f || g1[i] != 0.0f;
        CHECK_MSG(nz == 0, "form %d: %zu gradients left after the update", form, nz);
    }
    free(w0), free(g0), free(m0), free(v0), free(w1), free(g1), free(m1), free(v1);
}

/* A whole AdamW step (norm, clipping, update) on one thread and on three:
 * the same bits, on a model with more than one chunk of the step. */
/* The clipping norm's sum of squares: the twins alike, and the sum. */
TEST(test_train_sumsq_twin) {
    static const size_t ns[] = {0, 1, 15, 16, 17, 65536, 100003};
    uint32_t st = 29;
    for (size_t t = 0; t < sizeof ns / sizeof *ns; t++) {
        size_t n = ns[t];
        float *x = malloc((n + 1) * sizeof *x);
        fill(x, n + 1, &st);
        double r = se_tk_sumsq_ref(x, n), a = se_tk_sumsq_avx2(x, n), e = 0.0;
        for (size_t i = 0; i < n; i++) e += (double)x[i] * x[i];
        CHECK_MSG(!memcmp(&r, &a, sizeof r), "n %zu: the twins differ (%.17g, %.17g)", n, r, a);
        CHECK_MSG(fabs(r - e) <= 1e-12 * (e + 1e-300), "n %zu: %.17g, the loop's %.17g", n, r, e);
        free(x);
    }
}

TEST(test_train_adamw_threads) {
    se_tmodel_random_params rp = {.V = 700, .H = 96, .NH = 4, .FF = 128, .L = 1, .P = 16, .n_type = 2,
                                  .act = SE_ACT_GELU, .seed = 9};
    se_error err = {0};
    se_tmodel *a = NULL, *b = NULL;
    se_adamw *oa = NULL, *ob = NULL;
    CHECK(se_tmodel_random(&rp, &a, &err) == SE_OK && se_tmodel_random(&rp, &b, &err) == SE_OK);
    if (!a || !b) return;
    CHECK(a->n_floats > 65536 * 2);
    CHECK(se_tmodel_set_threads(b, 3, &err) == SE_OK);
    se_adamw_params p = se_adamw_default_params();
    p.weight_decay = 0.01f, p.lr = 1e-3f;
    CHECK(se_adamw_new(a, &p, &oa, &err) == SE_OK && se_adamw_new(b, &p, &ob, &err) == SE_OK);
    uint32_t st = 1;
    for (int step = 0; step < 2; step++) {
        fill(a->g_arena, a->n_floats, &st);
        memcpy(b->g_arena, a->g_arena, a->n_floats * sizeof(float));
        double na = 0, nb = 0;
        CHECK(se_adamw_step(oa, a, &na, &err) == SE_OK && se_adamw_step(ob, b, &nb, &err) == SE_OK);
        CHECK(na == nb && na > 1.0);
    }
    CHECK(!memcmp(a->w_arena, b->w_arena, a->n_floats * sizeof(float)));
    CHECK(!memcmp(oa->m, ob->m, a->n_floats * sizeof(float)) && !memcmp(oa->v, ob->v, a->n_floats * sizeof(float)));
    se_adamw_free(oa), se_adamw_free(ob), se_tmodel_free(a), se_tmodel_free(b);
}

/* GELU's forward that keeps the backward's factor: 8 lanes and the
 * scalar twin against the two passes' scalar definitions (the same bits)
 * and those against libm's erf and exp (within 1e-6), over [-10, 10];
 * exp likewise. */
TEST(test_train_gelu_twin) {
    const size_t n = 4003;
    float *x = malloc(n * sizeof *x), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    float *dy = malloc(n * sizeof *dy), *da = malloc(n * sizeof *da);
    uint32_t st = 17;
    fill(dy, n, &st);
    for (size_t i = 0; i < n; i++) x[i] = -10.0f + 20.0f * (float)i / (float)(n - 1);
    memcpy(a, x, n * sizeof *a);
    se_tk_gelu_fwd_ref(a, n);
    se_tk_gelu_bwd_ref(x, dy, da, n);
    /* the forward that keeps the factor: the same gelu, and dy times the
     * factor is the backward's dx, bit for bit, in both twins */
    float *pd = malloc(n * sizeof *pd), *od = malloc(n * sizeof *od);
    for (int twin = 0; twin < 2; twin++) {
        memcpy(pd, x, n * sizeof *pd);
        (twin ? se_tk_gelu_fwd_d_avx2 : se_tk_gelu_fwd_d_ref)(pd, od, n);
        CHECK(!memcmp(od, a, n * sizeof *od));
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += dy[i] * pd[i] != da[i];
        CHECK_MSG(!bad, "twin %d: %zu of dy gelu'(x) differ from the backward's", twin, bad);
    }
    free(pd), free(od);
    double ef = 0.0, eb = 0.0;
    for (size_t i = 0; i < n; i++) {
        double v = x[i], cdf = 0.5 * (1.0 + erf(v / sqrt(2.0)));
        double d = cdf + v * exp(-0.5 * v * v) / sqrt(2.0 * M_PI);
        ef = fmax(ef, fabs(a[i] - v * cdf));
        eb = fmax(eb, fabs(da[i] - dy[i] * d));
    }
    CHECK_MSG(ef < 1e-6 && eb < 1e-6, "GELU against libm: forward %.2e, backward %.2e", ef, eb);
    /* exp over [-90, 10]: the twins alike, within 2.5e-7 (relative) of libm's expf */
    for (size_t i = 0; i < n; i++) x[i] = a[i] = b[i] = -90.0f + 100.0f * (float)i / (float)(n - 1);
    se_tk_exp_ref(a, n);
    se_tk_exp_avx2(b, n);
    CHECK(!memcmp(a, b, n * sizeof *a));
    double ee = 0.0;
    for (size_t i = 0; i < n; i++) {
        double r = exp((double)x[i]);
        if (x[i] > -87.0f) ee = fmax(ee, fabs(a[i] - r) / r);
    }
    CHECK_MSG(ee < 2.5e-7, "exp against libm: %.2e", ee);
    free(x), free(a), free(b), free(dy), free(da);
}

int main(void) {
    RUN(test_train_gemm_twin);
    RUN(test_train_attn_twin);
    RUN(test_train_drop_twin);
    RUN(test_train_ln_twin);
    RUN(test_train_adamw_twin);
    RUN(test_train_gelu_twin);
    RUN(test_train_sumsq_twin);
    RUN(test_train_adamw_threads);
    return test_report("test_train_kernels");
}
