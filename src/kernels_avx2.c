/*
 * kernels_avx2.c - AVX2+FMA GEMM and dot product (this file is compiled
 * with -mavx2 -mfma and only called when the CPU has both).
 *
 * The GEMM works in "dot form": y[m][n] is the dot product of row m of x
 * and row n of w (both contiguous in K), accumulated in one 8-lane register
 * over k in steps of 8, reduced by hsum8 in a fixed order, then the K % 8
 * tail added with scalar FMAs. A 3x4 register tile computes twelve such
 * dot products at once (12 accumulators + 3 x-vectors + 1 w-vector = 16
 * ymm registers); edge rows and columns use dot1, which performs the very
 * same operations. So every element's value is independent of M, of its
 * tile and of the thread: the batch-invariance guarantee rests on this.
 * Cache blocking: columns are visited in blocks of 64 rows of w so a block
 * stays in L2 while all rows of x stream past it.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels.h"

/* Horizontal sum of 8 lanes in a fixed order. */
static inline float hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    __m128 s = _mm_add_ps(lo, hi);                 /* 4 */
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));        /* 2 */
    s = _mm_add_ss(s, _mm_movehdup_ps(s));         /* 1 */
    return _mm_cvtss_f32(s);
}

/* One dot product, the reference sequence every tile reproduces. */
static inline float dot1(const float *a, const float *b, size_t K, size_t K8) {
    __m256 acc = _mm256_setzero_ps();
    for (size_t k = 0; k < K8; k += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc);
    float r = hsum8(acc);
    for (size_t k = K8; k < K; k++) r = fmaf(a[k], b[k], r);
    return r;
}

float se_dot_avx2(const float *a, const float *b, size_t K) { return dot1(a, b, K, K & ~(size_t)7); }

/* Tail of a tile element: add the K % 8 remainder after the reduction. */
static inline float tail(float r, const float *a, const float *b, size_t K8, size_t K) {
    for (size_t k = K8; k < K; k++) r = fmaf(a[k], b[k], r);
    return r;
}

/* 3 rows of x times 4 rows of w. */
static void tile3x4(const float *x0, const float *x1, const float *x2, const float *w0, const float *w1,
                    const float *w2, const float *w3, size_t K, size_t K8, float out[3][4]) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00;
    __m256 c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m256 c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    for (size_t k = 0; k < K8; k += 8) {
        __m256 a0 = _mm256_loadu_ps(x0 + k), a1 = _mm256_loadu_ps(x1 + k), a2 = _mm256_loadu_ps(x2 + k);
        __m256 b = _mm256_loadu_ps(w0 + k);
        c00 = _mm256_fmadd_ps(a0, b, c00), c10 = _mm256_fmadd_ps(a1, b, c10), c20 = _mm256_fmadd_ps(a2, b, c20);
        b = _mm256_loadu_ps(w1 + k);
        c01 = _mm256_fmadd_ps(a0, b, c01), c11 = _mm256_fmadd_ps(a1, b, c11), c21 = _mm256_fmadd_ps(a2, b, c21);
        b = _mm256_loadu_ps(w2 + k);
        c02 = _mm256_fmadd_ps(a0, b, c02), c12 = _mm256_fmadd_ps(a1, b, c12), c22 = _mm256_fmadd_ps(a2, b, c22);
        b = _mm256_loadu_ps(w3 + k);
        c03 = _mm256_fmadd_ps(a0, b, c03), c13 = _mm256_fmadd_ps(a1, b, c13), c23 = _mm256_fmadd_ps(a2, b, c23);
    }
    const float *xs[3] = {x0, x1, x2}, *ws[4] = {w0, w1, w2, w3};
    __m256 c[3][4] = {{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) out[i][j] = tail(hsum8(c[i][j]), xs[i], ws[j], K8, K);
}

void se_gemm_avx2(const float *x, size_t M, size_t K, size_t ldx, const float *w, const float *b,
                  float *y, size_t ldy, size_t n0, size_t n1) {
    size_t K8 = K & ~(size_t)7;
    const size_t NB = 64;
    for (size_t nb = n0; nb < n1; nb += NB) {
        size_t ne = nb + NB < n1 ? nb + NB : n1;
        size_t m = 0;
        for (; m + 3 <= M; m += 3) {
            const float *x0 = x + m * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx;
            size_t n = nb;
            for (; n + 4 <= ne; n += 4) {
                float o[3][4];
                tile3x4(x0, x1, x2, w + n * K, w + (n + 1) * K, w + (n + 2) * K, w + (n + 3) * K, K, K8, o);
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 4; j++) y[(m + (size_t)i) * ldy + n + (size_t)j] = o[i][j] + (b ? b[n + (size_t)j] : 0.0f);
            }
            for (; n < ne; n++)
                for (int i = 0; i < 3; i++)
                    y[(m + (size_t)i) * ldy + n] = dot1(x + (m + (size_t)i) * ldx, w + n * K, K, K8) + (b ? b[n] : 0.0f);
        }
        for (; m < M; m++)
            for (size_t n = nb; n < ne; n++) y[m * ldy + n] = dot1(x + m * ldx, w + n * K, K, K8) + (b ? b[n] : 0.0f);
    }
}

void se_axpy_avx2(float *y, float a, const float *x, size_t n) {
    __m256 va = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(va, _mm256_loadu_ps(x + i))));
    for (; i < n; i++) y[i] = y[i] + a * x[i];
}
