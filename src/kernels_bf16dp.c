/*
 * kernels_bf16dp.c - bf16 GEMM with AVX512-BF16 dot products (compiled with
 * -mavx512f -mavx512bf16; used for dtype bf16 when the CPU has AVX512-BF16,
 * otherwise kernels_bf16.c's widening kernel runs).
 *
 * Weights W (N, K) are rounded to bf16 at load and packed in panels of 32
 * columns by pairs of k:
 *   packed[p][kk][j][e] = bf16(W[32 p + j][2 kk + e])   (zero padded)
 * Activations are rounded to bf16 per product into (M, Kp) rows (Kp = K
 * rounded up to even). VDPBF16PS then accumulates in f32, pair by pair in kk
 * order: each value is the same sequence of operations wherever it falls in
 * a batch (batch invariance). VDPBF16PS runs at ~1.8x the f32 FMA rate here.
 *
 * The 6-row block keeps its twelve accumulators in named variables: with an
 * array of them GCC 12 shuffles and spills inside the loop (the first
 * version of this kernel ran at 0.6x the f32 GEMM for that reason).
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#define NR 32
#define MR 6

size_t se_bf16dp_kpad(size_t K) { return (K + 1) & ~(size_t)1; }

size_t se_pack_bf16dp_size(size_t N, size_t K) { return (N + NR - 1) / NR * NR * se_bf16dp_kpad(K); }

void se_pack_weights_bf16dp(const float *w, size_t N, size_t K, uint16_t *out) {
    size_t np = (N + NR - 1) / NR, Kp = se_bf16dp_kpad(K);
    for (size_t p = 0; p < np; p++)
        for (size_t kk = 0; kk < Kp / 2; kk++)
            for (size_t j = 0; j < NR; j++)
                for (size_t e = 0; e < 2; e++) {
                    size_t n = p * NR + j, k = 2 * kk + e;
                    out[((p * (Kp / 2) + kk) * NR + j) * 2 + e] = (n < N && k < K) ? se_f32_to_bf16(w[n * K + k]) : 0;
                }
}

void se_rows_to_bf16(const float *x, size_t M, size_t K, size_t ldx, uint16_t *out) {
    size_t Kp = se_bf16dp_kpad(K);
    for (size_t m = 0; m < M; m++) {
        const float *r = x + m * ldx;
        uint16_t *o = out + m * Kp;
        size_t k = 0;
        for (; k + 32 <= K; k += 32) {
            __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(r + k + 16), _mm512_loadu_ps(r + k));
            _mm512_storeu_si512((void *)(o + k), (__m512i)h);
        }
        for (; k < K; k++) o[k] = se_f32_to_bf16(r[k]);
        if (K & 1) o[K] = 0;
    }
}

/* A bf16 pair of row xr at pair kk, broadcast to every lane. */
static inline __m512bh pair_of(const uint16_t *xr, size_t kk) {
    float pr;
    memcpy(&pr, xr + 2 * kk, 4);
    return (__m512bh)_mm512_castps_si512(_mm512_set1_ps(pr));
}

/* Stores one row's two accumulators (+ bias) into columns [0, ncols). */
static inline void store_row(float *y, __m512 c0, __m512 c1, __m512 bb0, __m512 bb1, __mmask16 m0, __mmask16 m1) {
    _mm512_mask_storeu_ps(y, m0, _mm512_add_ps(c0, bb0));
    _mm512_mask_storeu_ps(y + 16, m1, _mm512_add_ps(c1, bb1));
}

void se_gemm_bf16dp_avx512(const uint16_t *xb, size_t M, size_t K, const uint16_t *pw, size_t N, const float *b, float *y,
                           size_t ldy, size_t n0, size_t n1) {
    size_t Kp = se_bf16dp_kpad(K), nk = Kp / 2;
    for (size_t n = n0; n < n1; n += NR) {
        const uint16_t *panel = pw + (n / NR) * NR * Kp;
        size_t nc = n1 - n < NR ? n1 - n : NR;
        if (n + nc > N) nc = N - n;
        __mmask16 m0 = nc >= 16 ? 0xFFFF : (__mmask16)((1u << nc) - 1);
        __mmask16 m1 = nc >= 32 ? 0xFFFF : nc <= 16 ? 0 : (__mmask16)((1u << (nc - 16)) - 1);
        __m512 bb0 = b ? _mm512_maskz_loadu_ps(m0, b + n) : _mm512_setzero_ps();
        __m512 bb1 = b ? _mm512_maskz_loadu_ps(m1, b + n + 16) : _mm512_setzero_ps();
        size_t m = 0;
        for (; m + MR <= M; m += MR) {
            const uint16_t *x0 = xb + m * Kp, *x1 = x0 + Kp, *x2 = x1 + Kp, *x3 = x2 + Kp, *x4 = x3 + Kp, *x5 = x4 + Kp;
            __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00,
                   a40 = a00, a41 = a00, a50 = a00, a51 = a00;
            const uint16_t *pk = panel;
            for (size_t kk = 0; kk < nk; kk++, pk += 2 * NR) {
                __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)pk);
                __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(pk + NR));
                __m512bh a;
#define SE_ROW(A0, A1, XR)                                                                                             \
    a = pair_of(XR, kk);                                                                                               \
    A0 = _mm512_dpbf16_ps(A0, a, b0), A1 = _mm512_dpbf16_ps(A1, a, b1)
                SE_ROW(a00, a01, x0);
                SE_ROW(a10, a11, x1);
                SE_ROW(a20, a21, x2);
                SE_ROW(a30, a31, x3);
                SE_ROW(a40, a41, x4);
                SE_ROW(a50, a51, x5);
#undef SE_ROW
            }
            float *yr = y + m * ldy + n;
            store_row(yr, a00, a01, bb0, bb1, m0, m1);
            store_row(yr + ldy, a10, a11, bb0, bb1, m0, m1);
            store_row(yr + 2 * ldy, a20, a21, bb0, bb1, m0, m1);
            store_row(yr + 3 * ldy, a30, a31, bb0, bb1, m0, m1);
            store_row(yr + 4 * ldy, a40, a41, bb0, bb1, m0, m1);
            store_row(yr + 5 * ldy, a50, a51, bb0, bb1, m0, m1);
        }
        for (; m < M; m++) { /* the last rows, one at a time: the same operations per value */
            const uint16_t *xr = xb + m * Kp, *pk = panel;
            __m512 c0 = _mm512_setzero_ps(), c1 = c0;
            for (size_t kk = 0; kk < nk; kk++, pk += 2 * NR) {
                __m512bh a = pair_of(xr, kk);
                c0 = _mm512_dpbf16_ps(c0, a, (__m512bh)_mm512_loadu_si512((const void *)pk));
                c1 = _mm512_dpbf16_ps(c1, a, (__m512bh)_mm512_loadu_si512((const void *)(pk + NR)));
            }
            store_row(y + m * ldy + n, c0, c1, bb0, bb1, m0, m1);
        }
    }
}
