/*
 * test_kernels.c - every fast kernel against its scalar reference twin, and
 * the determinism contract: a GEMM element does not depend on M, its tile
 * or the column range it was computed in.
 */
#include <stdint.h>

#include "kernels.h"
#include "vec_dist.h"
#include "test.h"

/* Deterministic pseudo-random floats in [-1, 1). */
static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

TEST(gemm_matches_reference) {
    const se_kernels *k = se_kernels_get();
    printf("  kernels: %s\n", k->name);
    size_t shapes[][3] = {{1, 1, 1}, {3, 4, 8}, {5, 7, 9}, {17, 33, 31}, {40, 70, 384}, {64, 130, 100}, {2, 300, 1536}};
    unsigned seed = 1;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        size_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        float *x = malloc(M * K * sizeof *x), *w = malloc(N * K * sizeof *w), *b = malloc(N * sizeof *b);
        float *y = malloc(M * N * sizeof *y), *r = malloc(M * N * sizeof *r);
        for (size_t i = 0; i < M * K; i++) x[i] = frand(&seed);
        for (size_t i = 0; i < N * K; i++) w[i] = frand(&seed);
        for (size_t i = 0; i < N; i++) b[i] = frand(&seed);
        se_gemm_ref(x, M, K, K, w, b, r, N, 0, N);
        k->gemm(x, M, K, K, w, b, y, N, 0, N);
        char label[64];
        snprintf(label, sizeof label, "gemm %zux%zux%zu", M, N, K);
        CHECK_CLOSE(y, r, M * N, 1e-5 * (double)K, 1e-5, label);
        /* row m computed alone, and columns in two ranges, are bit-identical */
        float *y1 = malloc(N * sizeof *y1);
        for (size_t m = 0; m < M; m++) {
            k->gemm(x + m * K, 1, K, K, w, b, y1, N, 0, N / 2);
            k->gemm(x + m * K, 1, K, K, w, b, y1, N, N / 2, N);
            CHECK_MSG(memcmp(y1, y + m * N, N * sizeof *y1) == 0, "gemm %zux%zux%zu row %zu depends on M or tiling", M, N, K, m);
        }
        for (size_t m = 0; m < M; m++)
            for (size_t n = 0; n < N; n++)
                CHECK_MSG(k->dot(x + m * K, w + n * K, K) + b[n] == y[m * N + n], "dot and gemm element (%zu, %zu) differ", m, n);
        free(x), free(w), free(b), free(y), free(r), free(y1);
    }
}

/* The packed AVX-512 GEMM against the reference (when the CPU has it),
 * and its independence from M and from the column split. */
TEST(packed_gemm) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) {
        printf("  (no AVX-512F on this CPU: packed GEMM not run)\n");
        return;
    }
    size_t shapes[][3] = {{1, 1, 1}, {6, 32, 8}, {7, 33, 9}, {13, 70, 31}, {40, 384, 384}, {5, 1536, 384}, {97, 100, 1536}};
    unsigned seed = 3;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        size_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        float *x = malloc(M * K * sizeof *x), *w = malloc(N * K * sizeof *w), *b = malloc(N * sizeof *b);
        float *y = malloc(M * N * sizeof *y), *r = malloc(M * N * sizeof *r), *pw = malloc(se_pack_size(N, K) * sizeof *pw);
        for (size_t i = 0; i < M * K; i++) x[i] = frand(&seed);
        for (size_t i = 0; i < N * K; i++) w[i] = frand(&seed);
        for (size_t i = 0; i < N; i++) b[i] = frand(&seed);
        se_pack_weights(w, N, K, pw);
        se_gemm_ref(x, M, K, K, w, b, r, N, 0, N);
        se_gemm_packed_avx512(x, M, K, K, pw, N, b, y, N, 0, N);
        char label[64];
        snprintf(label, sizeof label, "packed gemm %zux%zux%zu", M, N, K);
        CHECK_CLOSE(y, r, M * N, 1e-5 * (double)K, 1e-5, label);
        float *y1 = malloc(N * sizeof *y1);
        for (size_t m = 0; m < M; m++) {
            size_t half = (N / 2) / 32 * 32;
            se_gemm_packed_avx512(x + m * K, 1, K, K, pw, N, b, y1, N, 0, half);
            se_gemm_packed_avx512(x + m * K, 1, K, K, pw, N, b, y1, N, half, N);
            CHECK_MSG(memcmp(y1, y + m * N, N * sizeof *y1) == 0, "packed %zux%zux%zu row %zu depends on M", M, N, K, m);
        }
        free(x), free(w), free(b), free(y), free(r), free(pw), free(y1);
    }
#endif
}

/* Every attention kernel against the reference, both scaling orders. */
TEST(attention_matches_reference) {
    unsigned seed = 11;
    size_t cases[][2] = {{1, 32}, {2, 8}, {17, 64}, {33, 128}, {128, 32}, {5, 20}};
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        size_t T = cases[ci][0], HD = cases[ci][1], ld = 3 * HD + 5;
        float *qkv = malloc(T * ld * sizeof *qkv), *o1 = malloc(T * HD * sizeof *o1), *o2 = malloc(T * HD * sizeof *o2);
        float *scr = malloc(se_attn_scratch(T, HD) * sizeof *scr);
        for (size_t i = 0; i < T * ld; i++) qkv[i] = 2.0f * frand(&seed);
        for (int sq = 0; sq < 2; sq++) {
            se_attn_head_ref(qkv, qkv + HD, qkv + 2 * HD, ld, o1, HD, T, HD, 0.125f, sq, scr);
            se_kernels_get()->attn(qkv, qkv + HD, qkv + 2 * HD, ld, o2, HD, T, HD, 0.125f, sq, scr);
            char label[64];
            snprintf(label, sizeof label, "attention T=%zu HD=%zu scale_q_first=%d", T, HD, sq);
            CHECK_CLOSE(o2, o1, T * HD, 2e-6, 1e-5, label);
        }
        free(qkv), free(o1), free(o2), free(scr);
    }
}

/* The biased attention of every kernel set against the scalar twin, for
 * a full (T, T) bias, a bias shared by all queries (ldb 0) and a relative
 * one (t - i, ldb -1); a zero bias gives the unbiased output bit for bit
 * (scalar twin), and a bias that masks all keys but one selects that
 * key's value. */
TEST(test_attention_bias_matches_reference) {
    unsigned seed = 23;
    const se_kernels *kk = se_kernels_get();
    size_t cases[][2] = {{1, 32}, {2, 8}, {17, 64}, {33, 64}, {130, 32}, {5, 20}, {9, 4}};
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        size_t T = cases[ci][0], HD = cases[ci][1], ld = 3 * HD + 5;
        float *qkv = malloc(T * ld * sizeof *qkv), *o1 = malloc(T * HD * sizeof *o1), *o2 = malloc(T * HD * sizeof *o2);
        float *full = malloc(T * T * sizeof *full), *rel = malloc((2 * T - 1) * sizeof *rel);
        float *scr = malloc(se_attn_scratch(T, HD) * sizeof *scr);
        for (size_t i = 0; i < T * ld; i++) qkv[i] = 2.0f * frand(&seed);
        for (size_t i = 0; i < T * T; i++) full[i] = 3.0f * frand(&seed);
        for (size_t i = 0; i < 2 * T - 1; i++) rel[i] = 3.0f * frand(&seed);
        struct {
            const char *name;
            const float *bias;
            ptrdiff_t ldb;
        } forms[] = {{"full", full, (ptrdiff_t)T}, {"shared", full, 0}, {"relative", rel + T - 1, -1}};
        for (size_t fi = 0; fi < sizeof forms / sizeof *forms; fi++) {
            se_attn_head_bias_ref(qkv, qkv + HD, qkv + 2 * HD, ld, o1, HD, T, HD, 0.125f, forms[fi].bias, forms[fi].ldb, scr);
            kk->attn_bias(qkv, qkv + HD, qkv + 2 * HD, ld, o2, HD, T, HD, 0.125f, forms[fi].bias, forms[fi].ldb, scr);
            char label[96];
            snprintf(label, sizeof label, "%s attention bias %s T=%zu HD=%zu", kk->name, forms[fi].name, T, HD);
            CHECK_CLOSE(o2, o1, T * HD, 2e-6, 1e-5, label);
        }
        /* the relative form is the full form with bias[i][t] = rel[t - i] */
        for (size_t i = 0; i < T; i++)
            for (size_t t = 0; t < T; t++) full[i * T + t] = rel[T - 1 + t - i];
        se_attn_head_bias_ref(qkv, qkv + HD, qkv + 2 * HD, ld, o1, HD, T, HD, 0.125f, full, (ptrdiff_t)T, scr);
        kk->attn_bias(qkv, qkv + HD, qkv + 2 * HD, ld, o2, HD, T, HD, 0.125f, rel + T - 1, -1, scr);
        CHECK_CLOSE(o2, o1, T * HD, 2e-6, 1e-5, "relative bias = its full matrix");
        /* zero bias: the unbiased reference, bit for bit */
        memset(full, 0, T * T * sizeof *full);
        se_attn_head_ref(qkv, qkv + HD, qkv + 2 * HD, ld, o1, HD, T, HD, 0.125f, false, scr);
        se_attn_head_bias_ref(qkv, qkv + HD, qkv + 2 * HD, ld, o2, HD, T, HD, 0.125f, full, (ptrdiff_t)T, scr);
        CHECK_MSG(memcmp(o1, o2, T * HD * sizeof *o1) == 0, "zero bias changes the reference attention (T=%zu)", T);
        /* -1e4 on every key but (i + 1) % T: query i reads v[(i + 1) % T] */
        for (size_t i = 0; i < T; i++)
            for (size_t t = 0; t < T; t++) full[i * T + t] = t == (i + 1) % T ? 0.0f : -1e4f;
        kk->attn_bias(qkv, qkv + HD, qkv + 2 * HD, ld, o2, HD, T, HD, 0.125f, full, (ptrdiff_t)T, scr);
        double worst = 0;
        for (size_t i = 0; i < T; i++)
            for (size_t d = 0; d < HD; d++) worst = fmax(worst, fabs(o2[i * HD + d] - qkv[((i + 1) % T) * ld + 2 * HD + d]));
        CHECK_MSG(worst < 1e-6, "%s: a masking bias leaves %.3g of other values (T=%zu)", kk->name, worst, T);
        free(qkv), free(o1), free(o2), free(full), free(rel), free(scr);
    }
}

/* The dispatched GELU against libm's erff. */
TEST(gelu_matches_reference) {
    float x[1000], a[1000], b[1000];
    for (int i = 0; i < 1000; i++) x[i] = -8.0f + 16.0f * (float)i / 999.0f;
    memcpy(a, x, sizeof x), memcpy(b, x, sizeof x);
    se_gelu(a, 1000);
    se_kernels_get()->gelu(b, 999); /* odd length: the masked tail */
    b[999] = a[999];
    CHECK_CLOSE(b, a, 1000, 1e-6, 1e-6, "gelu fast vs erff");
}

/* The dispatched LayerNorm against the reference, on lengths with and
 * without a tail, with an offset mean (cancellation) and eps 1e-12 / 1e-5. */
TEST(layernorm_matches_reference) {
    size_t lens[4] = {384, 768, 100, 7};
    for (int t = 0; t < 4; t++) {
        size_t n = lens[t];
        float x[768], a[768], b[768], g[768], be[768];
        for (size_t i = 0; i < n; i++) {
            x[i] = 3.0f + sinf((float)i * 0.37f) * 2.0f;
            g[i] = 0.5f + (float)(i % 5) * 0.1f;
            be[i] = (float)(i % 3) * 0.01f - 0.01f;
        }
        for (int e = 0; e < 2; e++) {
            float eps = e ? 1e-5f : 1e-12f;
            memcpy(a, x, n * sizeof *x);
            memcpy(b, x, n * sizeof *x);
            se_layernorm(a, n, g, be, eps);
            se_kernels_get()->layernorm(b, n, g, be, eps);
            CHECK_CLOSE(b, a, n, 2e-6, 2e-6, "layernorm fast vs reference");
        }
    }
}

/* The index's distance kernels (vec_dist.c) against their scalar twins,
 * on every length up to 70 (tails included). */
TEST(vec_dist_matches_reference) {
    if (!se_cpu_has_avx512()) return;
    unsigned seed = 11;
    float a[70], b[70];
    for (size_t n = 0; n <= 70; n++) {
        for (size_t i = 0; i < n; i++) a[i] = frand(&seed), b[i] = frand(&seed);
        float d0 = se_vdot_ref(a, b, n), d1 = se_vdot_avx512(a, b, n);
        float l0 = se_vl2sq_ref(a, b, n), l1 = se_vl2sq_avx512(a, b, n);
        CHECK_CLOSE(&d1, &d0, 1, 1e-5, 1e-5, "vdot avx512 vs ref");
        CHECK_CLOSE(&l1, &l0, 1, 1e-5, 1e-5, "vl2sq avx512 vs ref");
    }
}

/* The dispatched residual add gives the reference's bits. */
TEST(add_matches_reference) {
    float x[37], y[37], a[37], b[37];
    for (int i = 0; i < 37; i++) x[i] = sinf((float)i) * 3.0f, y[i] = cosf((float)i * 1.3f) * 1e-3f;
    memcpy(a, x, sizeof x), memcpy(b, x, sizeof x);
    se_add(a, y, 37);
    se_kernels_get()->add(b, y, 37);
    CHECK(memcmp(a, b, sizeof a) == 0);
}

/* Rounds to bf16 (nearest even), as the kernel's packing does. */
static float round_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFFu + ((u >> 16) & 1u);
    u &= 0xFFFF0000u;
    memcpy(&f, &u, 4);
    return f;
}

/* The bf16-weight GEMM against a double-precision product of the exact
 * activations and the bf16-rounded weights, and independent of M. */
TEST(bf16_gemm) {
    if (!se_cpu_has_avx512()) {
        printf("  (no AVX-512: bf16 GEMM not run)\n");
        return;
    }
    size_t shapes[][3] = {{1, 1, 1}, {6, 32, 8}, {7, 33, 9}, {13, 70, 31}, {40, 384, 384}, {5, 100, 1536}};
    unsigned seed = 5;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        size_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        float *x = malloc(M * K * sizeof *x), *w = malloc(N * K * sizeof *w), *b = malloc(N * sizeof *b);
        float *y = malloc(M * N * sizeof *y), *r = malloc(M * N * sizeof *r), *y1 = malloc(N * sizeof *y1);
        uint16_t *pw = malloc(se_pack_bf16_size(N, K) * sizeof *pw);
        for (size_t i = 0; i < M * K; i++) x[i] = frand(&seed);
        for (size_t i = 0; i < N * K; i++) w[i] = frand(&seed);
        for (size_t i = 0; i < N; i++) b[i] = frand(&seed);
        for (size_t m = 0; m < M; m++)
            for (size_t n = 0; n < N; n++) {
                double acc = 0;
                for (size_t k = 0; k < K; k++) acc += (double)x[m * K + k] * round_bf16(w[n * K + k]);
                r[m * N + n] = (float)(acc + b[n]);
            }
        se_pack_weights_bf16(w, N, K, pw);
        se_gemm_bf16_avx512(x, M, K, K, pw, N, b, y, N, 0, N);
        char label[64];
        snprintf(label, sizeof label, "bf16 gemm %zux%zux%zu", M, N, K);
        CHECK_CLOSE(y, r, M * N, 1e-5 * (double)K, 1e-5, label);
        for (size_t m = 0; m < M; m++) {
            size_t half = (N / 2) / 32 * 32;
            se_gemm_bf16_avx512(x + m * K, 1, K, K, pw, N, b, y1, N, 0, half);
            se_gemm_bf16_avx512(x + m * K, 1, K, K, pw, N, b, y1, N, half, N);
            CHECK_MSG(memcmp(y1, y + m * N, N * sizeof *y1) == 0, "bf16 %zux%zux%zu row %zu depends on M", M, N, K, m);
        }
        free(x), free(w), free(b), free(y), free(r), free(y1), free(pw);
    }
}

/* The AVX512-BF16 GEMM against a double-precision product of the
 * bf16-rounded activations and weights, and independent of M. */
TEST(bf16dp_gemm) {
    if (!se_cpu_has_avx512bf16()) {
        printf("  (no AVX512-BF16: bf16 dot-product GEMM not run)\n");
        return;
    }
    size_t shapes[][3] = {{1, 1, 1}, {6, 32, 8}, {7, 33, 9}, {13, 70, 31}, {40, 384, 384}, {5, 100, 1536}, {12, 64, 2}};
    unsigned seed = 9;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        size_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], Kp = se_bf16dp_kpad(K);
        float *x = malloc(M * K * sizeof *x), *w = malloc(N * K * sizeof *w), *b = malloc(N * sizeof *b);
        float *y = malloc(M * N * sizeof *y), *r = malloc(M * N * sizeof *r), *y1 = malloc(N * sizeof *y1);
        uint16_t *pw = malloc(se_pack_bf16dp_size(N, K) * sizeof *pw), *xb = malloc(M * Kp * sizeof *xb);
        for (size_t i = 0; i < M * K; i++) x[i] = frand(&seed);
        for (size_t i = 0; i < N * K; i++) w[i] = frand(&seed);
        for (size_t i = 0; i < N; i++) b[i] = frand(&seed);
        for (size_t m = 0; m < M; m++)
            for (size_t n = 0; n < N; n++) {
                double acc = 0;
                for (size_t k = 0; k < K; k++) acc += (double)round_bf16(x[m * K + k]) * round_bf16(w[n * K + k]);
                r[m * N + n] = (float)(acc + b[n]);
            }
        se_pack_weights_bf16dp(w, N, K, pw);
        se_rows_to_bf16(x, M, K, K, xb);
        se_gemm_bf16dp_avx512(xb, M, K, pw, N, b, y, N, 0, N);
        char label[64];
        snprintf(label, sizeof label, "bf16dp gemm %zux%zux%zu", M, N, K);
        CHECK_CLOSE(y, r, M * N, 1e-5 * (double)K, 1e-5, label);
        for (size_t m = 0; m < M; m++) {
            size_t half = (N / 2) / 32 * 32;
            se_gemm_bf16dp_avx512(xb + m * Kp, 1, K, pw, N, b, y1, N, 0, half);
            se_gemm_bf16dp_avx512(xb + m * Kp, 1, K, pw, N, b, y1, N, half, N);
            CHECK_MSG(memcmp(y1, y + m * N, N * sizeof *y1) == 0, "bf16dp %zux%zux%zu row %zu depends on M", M, N, K, m);
        }
        free(x), free(w), free(b), free(y), free(r), free(y1), free(pw), free(xb);
    }
}

/* The int8 GEMM against the same formula computed in double from the
 * kernel's own quantised values (so only the arithmetic is compared), then
 * against the float product within the quantisation error, and
 * independent of M. */
TEST(int8_gemm) {
    if (!se_cpu_has_vnni()) {
        printf("  (no AVX512-VNNI: int8 GEMM not run)\n");
        return;
    }
    size_t shapes[][3] = {{1, 1, 1}, {6, 32, 8}, {7, 33, 9}, {13, 70, 31}, {40, 384, 384}, {5, 100, 1536}};
    unsigned seed = 9;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        size_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], Kp = se_int8_kpad(K), Np = (N + 31) / 32 * 32;
        float *x = malloc(M * K * sizeof *x), *w = malloc(N * K * sizeof *w), *b = malloc(N * sizeof *b);
        float *y = malloc(M * N * sizeof *y), *r = malloc(M * N * sizeof *r), *f = malloc(M * N * sizeof *f), *y1 = malloc(N * sizeof *y1);
        int8_t *pw = malloc(se_pack_int8_size(N, K));
        float *sw = malloc(Np * sizeof *sw), *sx = malloc(M * sizeof *sx);
        int32_t *cs = malloc(Np * sizeof *cs), *zx = malloc(M * sizeof *zx);
        uint8_t *xq = malloc(M * Kp);
        for (size_t i = 0; i < M * K; i++) x[i] = frand(&seed);
        for (size_t i = 0; i < N * K; i++) w[i] = frand(&seed);
        for (size_t i = 0; i < N; i++) b[i] = frand(&seed);
        se_pack_weights_int8(w, N, K, pw, sw, cs);
        se_quantize_rows_u8(x, M, K, K, xq, sx, zx);
        se_gemm_int8_avx512(xq, sx, zx, M, K, pw, sw, cs, N, b, y, N, 0, N);
        for (size_t m = 0; m < M; m++)
            for (size_t n = 0; n < N; n++) {
                /* dequantised operands in double: (xq - zx) sx and wq sw, wq = round(w / sw) */
                double acc = 0, exact = 0;
                for (size_t k = 0; k < K; k++) {
                    double wq = rintf(w[n * K + k] / sw[n]); /* as the packer: float division, round to even */
                    wq = wq > 127 ? 127 : wq < -127 ? -127 : wq;
                    acc += ((double)xq[m * Kp + k] - zx[m]) * wq;
                    exact += (double)x[m * K + k] * w[n * K + k];
                }
                r[m * N + n] = (float)(acc * sx[m] * sw[n] + b[n]);
                f[m * N + n] = (float)(exact + b[n]);
            }
        char label[64];
        snprintf(label, sizeof label, "int8 gemm %zux%zux%zu (arithmetic)", M, N, K);
        CHECK_CLOSE(y, r, M * N, 1e-5 * (double)K, 1e-5, label);
        snprintf(label, sizeof label, "int8 gemm %zux%zux%zu (vs float)", M, N, K);
        CHECK_CLOSE(y, f, M * N, 0.02 * sqrt((double)K), 0.0, label); /* per-term error ~1/255 + 1/254 of |x||w| <= 1 */
        for (size_t m = 0; m < M; m++) {
            se_gemm_int8_avx512(xq + m * Kp, sx + m, zx + m, 1, K, pw, sw, cs, N, b, y1, N, 0, N);
            CHECK_MSG(memcmp(y1, y + m * N, N * sizeof *y1) == 0, "int8 %zux%zux%zu row %zu depends on M", M, N, K, m);
        }
        free(x), free(w), free(b), free(y), free(r), free(f), free(y1), free(pw), free(sw), free(sx), free(cs), free(zx), free(xq);
    }
}

TEST(axpy_matches_reference) {
    if (strcmp(se_kernels_get()->name, "ref") == 0) return; /* no AVX2 on this CPU */
    unsigned seed = 7;
    for (size_t n = 0; n < 70; n += 3) {
        float x[70] = {0}, y1[70] = {0}, y2[70] = {0};
        for (size_t i = 0; i < n; i++) x[i] = frand(&seed), y1[i] = y2[i] = frand(&seed);
        se_axpy_ref(y1, 0.37f, x, n);
        se_axpy_avx2(y2, 0.37f, x, n);
        CHECK_MSG(memcmp(y1, y2, n * sizeof *y1) == 0, "axpy n=%zu differs from the reference", n);
    }
}

TEST(elementwise) {
    float x[5] = {-3, -0.5f, 0, 0.5f, 3};
    float g[5];
    memcpy(g, x, sizeof x);
    se_gelu(g, 5);
    float want[5] = {-0.00404969f, -0.15426877f, 0, 0.34573123f, 2.99595031f};
    CHECK_CLOSE(g, want, 5, 1e-6, 1e-6, "gelu");
    memcpy(g, x, sizeof x);
    se_gelu_tanh(g, 5);
    float want_t[5] = {-0.00363752f, -0.15428598f, 0, 0.34571402f, 2.99636248f};
    CHECK_CLOSE(g, want_t, 5, 1e-6, 1e-6, "gelu_tanh");
    float s[3] = {1, 2, 3};
    se_softmax(s, 3);
    float want_s[3] = {0.09003057f, 0.24472847f, 0.66524096f};
    CHECK_CLOSE(s, want_s, 3, 1e-7, 1e-6, "softmax");
    float l[4] = {1, 2, 3, 4}, ga[4] = {1, 1, 2, 1}, be[4] = {0, 0, 0, 1};
    se_layernorm(l, 4, ga, be, 1e-12f);
    float want_l[4] = {-1.34164079f, -0.44721360f, 0.89442719f, 2.34164079f};
    CHECK_CLOSE(l, want_l, 4, 1e-6, 1e-6, "layernorm");
    float e[2] = {1, 1}; /* eps matters: var 0 -> (x - mean) * 1/sqrt(eps) = 0 */
    float one[2] = {1, 1}, zero[2] = {0, 0};
    se_layernorm(e, 2, one, zero, 1e-5f);
    CHECK(e[0] == 0 && e[1] == 0);
}

int main(void) {
    RUN(gemm_matches_reference);
    RUN(packed_gemm);
    RUN(attention_matches_reference);
    RUN(test_attention_bias_matches_reference);
    RUN(gelu_matches_reference);
    RUN(layernorm_matches_reference);
    RUN(add_matches_reference);
    RUN(vec_dist_matches_reference);
    RUN(bf16_gemm);
    RUN(bf16dp_gemm);
    RUN(int8_gemm);
    RUN(axpy_matches_reference);
    RUN(elementwise);
    return test_report("test_kernels");
}
