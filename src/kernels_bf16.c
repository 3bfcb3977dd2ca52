/*
 * kernels_bf16.c - bf16 GEMM with AVX512-BF16 dot products (compiled with
 * -mavx512f -mavx512bf16; used only when the model is loaded with
 * dtype bf16 and the CPU has AVX512-BF16).
 *
 * Weights W (N, K) are rounded to bf16 (nearest even) and packed at load in
 * panels of 32 columns, by pairs of k:
 *   packed[p][kk][j][e] = bf16(W[32 p + j][2 kk + e])   (zero padding)
 * Activations x (M, K) are rounded to bf16 per GEMM into (M, Kp) rows
 * (Kp = K rounded up to even). VDPBF16PS then accumulates in f32:
 *   acc[j] += x[2kk] W[j][2kk] + x[2kk+1] W[j][2kk+1]
 * over kk in order: as in the f32 kernel, each value is the same sequence
 * of operations wherever it falls, so batching does not change results.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#define NR 32
#define MR 6

/* f32 -> bf16, round to nearest even (NaN kept quiet). */
static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x7FFFFFu)) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

size_t se_pack_bf16_size(size_t N, size_t K) { return (N + NR - 1) / NR * NR * ((K + 1) & ~(size_t)1); }

void se_pack_weights_bf16(const float *w, size_t N, size_t K, uint16_t *out) {
    size_t np = (N + NR - 1) / NR, Kp = (K + 1) & ~(size_t)1;
    for (size_t p = 0; p < np; p++) {
        uint16_t *dst = out + p * NR * Kp;
        for (size_t kk = 0; kk < Kp / 2; kk++)
            for (size_t j = 0; j < NR; j++)
                for (size_t e = 0; e < 2; e++) {
                    size_t n = p * NR + j, k = 2 * kk + e;
                    dst[(kk * NR + j) * 2 + e] = (n < N && k < K) ? to_bf16(w[n * K + k]) : 0;
                }
    }
}

void se_rows_to_bf16(const float *x, size_t M, size_t K, size_t ldx, uint16_t *out) {
    size_t Kp = (K + 1) & ~(size_t)1;
    for (size_t m = 0; m < M; m++) {
        const float *r = x + m * ldx;
        uint16_t *o = out + m * Kp;
        size_t k = 0;
        for (; k + 32 <= K; k += 32) {
            __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(r + k + 16), _mm512_loadu_ps(r + k));
            _mm512_storeu_si512((void *)(o + k), (__m512i)h);
        }
        for (; k < K; k++) o[k] = to_bf16(r[k]);
        if (K & 1) o[K] = 0;
    }
}

/* rows x 32 block (rows <= 6). */
static inline void block(const uint16_t *xb, size_t Kp, size_t rows, const uint16_t *pw, const float *b, float *y,
                         size_t ldy, size_t ncols) {
    __m512 c[MR][2];
    for (size_t r = 0; r < MR; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
    size_t nk = Kp / 2;
    for (size_t kk = 0; kk < nk; kk++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)(pw + kk * 2 * NR));
        __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(pw + kk * 2 * NR + NR));
        for (size_t r = 0; r < rows; r++) {
            /* broadcast the bf16 pair as a float: one vbroadcastss from memory */
            float pair;
            memcpy(&pair, xb + r * Kp + 2 * kk, 4);
            __m512bh a = (__m512bh)_mm512_castps_si512(_mm512_set1_ps(pair));
            c[r][0] = _mm512_dpbf16_ps(c[r][0], a, b0);
            c[r][1] = _mm512_dpbf16_ps(c[r][1], a, b1);
        }
    }
    __mmask16 m0 = ncols >= 16 ? 0xFFFF : (__mmask16)((1u << ncols) - 1);
    __mmask16 m1 = ncols >= 32 ? 0xFFFF : ncols <= 16 ? 0 : (__mmask16)((1u << (ncols - 16)) - 1);
    __m512 bb0 = b ? _mm512_maskz_loadu_ps(m0, b) : _mm512_setzero_ps();
    __m512 bb1 = b ? _mm512_maskz_loadu_ps(m1, b + 16) : _mm512_setzero_ps();
    for (size_t r = 0; r < rows; r++) {
        _mm512_mask_storeu_ps(y + r * ldy, m0, _mm512_add_ps(c[r][0], bb0));
        _mm512_mask_storeu_ps(y + r * ldy + 16, m1, _mm512_add_ps(c[r][1], bb1));
    }
}

void se_gemm_bf16_avx512(const uint16_t *xb, size_t M, size_t K, const uint16_t *pw, size_t N, const float *b, float *y,
                         size_t ldy, size_t n0, size_t n1) {
    size_t Kp = (K + 1) & ~(size_t)1;
    for (size_t n = n0; n < n1; n += NR) {
        const uint16_t *panel = pw + (n / NR) * NR * Kp;
        size_t nc = n1 - n < NR ? n1 - n : NR;
        if (n + nc > N) nc = N - n;
        for (size_t m = 0; m < M; m += MR) {
            size_t rows = M - m < MR ? M - m : MR;
            block(xb + m * Kp, Kp, rows, panel, b ? b + n : NULL, y + m * ldy + n, ldy, nc);
        }
    }
}
