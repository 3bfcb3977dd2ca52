/*
 * kernels_bf16.c - GEMM on bf16 weights with f32 arithmetic (compiled with
 * -mavx512f; used when a model is loaded with dtype bf16).
 *
 * Weights W (N, K) are rounded to bf16 (nearest even) at load: half the
 * memory and half the bytes streamed per product. Activations stay f32 and
 * the products accumulate in f32 with the same FMAs as the f32 kernel; the
 * weights are widened in registers. Measured here, a VDPBF16PS kernel
 * (which also rounds the activations) ran at ~0.6x the f32 FMA kernel, while
 * this one runs at the f32 rate: the widening costs a shift and an AND per
 * 32 weights, on ports the FMAs do not use.
 *
 * Panels of 32 columns, K-major, the two 16-column halves interleaved so one
 * 64-byte load widens into both halves:
 *   packed[p][k][2 j]     = bf16(W[32 p + j][k])        (j < 16)
 *   packed[p][k][2 j + 1] = bf16(W[32 p + 16 + j][k])
 * A 32-bit lane holding (even, odd) gives the even column's f32 by a left
 * shift of 16 and the odd column's by clearing the low 16 bits. Every y
 * value is the same sequence of FMAs over k wherever it falls (batch
 * invariance).
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

size_t se_pack_bf16_size(size_t N, size_t K) { return (N + NR - 1) / NR * NR * K; }

void se_pack_weights_bf16(const float *w, size_t N, size_t K, uint16_t *out) {
    size_t np = (N + NR - 1) / NR;
    for (size_t p = 0; p < np; p++)
        for (size_t k = 0; k < K; k++) {
            uint16_t *dst = out + (p * K + k) * NR;
            for (size_t j = 0; j < 16; j++) {
                size_t n0 = p * NR + j, n1 = p * NR + 16 + j;
                dst[2 * j] = n0 < N ? to_bf16(w[n0 * K + k]) : 0;
                dst[2 * j + 1] = n1 < N ? to_bf16(w[n1 * K + k]) : 0;
            }
        }
}

/* The 32 weights of one k: columns 0..15 and 16..31 as f32. */
static inline void widen(const uint16_t *p, __m512 *lo, __m512 *hi) {
    __m512i v = _mm512_loadu_si512((const void *)p);
    *lo = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    *hi = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xFFFF0000u)));
}

/* rows x 32 block (rows <= 6) of panel pw; writes columns [0, ncols). */
static inline void block(const float *x, size_t ldx, size_t rows, size_t K, const uint16_t *pw, const float *b, float *y,
                         size_t ldy, size_t ncols) {
    __m512 c[MR][2];
    for (size_t r = 0; r < MR; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
    if (rows == MR) {
        const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx, *x4 = x + 4 * ldx, *x5 = x + 5 * ldx;
        for (size_t k = 0; k < K; k++) {
            __m512 b0, b1, a;
            widen(pw + k * NR, &b0, &b1);
            a = _mm512_set1_ps(x0[k]), c[0][0] = _mm512_fmadd_ps(a, b0, c[0][0]), c[0][1] = _mm512_fmadd_ps(a, b1, c[0][1]);
            a = _mm512_set1_ps(x1[k]), c[1][0] = _mm512_fmadd_ps(a, b0, c[1][0]), c[1][1] = _mm512_fmadd_ps(a, b1, c[1][1]);
            a = _mm512_set1_ps(x2[k]), c[2][0] = _mm512_fmadd_ps(a, b0, c[2][0]), c[2][1] = _mm512_fmadd_ps(a, b1, c[2][1]);
            a = _mm512_set1_ps(x3[k]), c[3][0] = _mm512_fmadd_ps(a, b0, c[3][0]), c[3][1] = _mm512_fmadd_ps(a, b1, c[3][1]);
            a = _mm512_set1_ps(x4[k]), c[4][0] = _mm512_fmadd_ps(a, b0, c[4][0]), c[4][1] = _mm512_fmadd_ps(a, b1, c[4][1]);
            a = _mm512_set1_ps(x5[k]), c[5][0] = _mm512_fmadd_ps(a, b0, c[5][0]), c[5][1] = _mm512_fmadd_ps(a, b1, c[5][1]);
        }
    } else {
        for (size_t k = 0; k < K; k++) {
            __m512 b0, b1;
            widen(pw + k * NR, &b0, &b1);
            for (size_t r = 0; r < rows; r++) {
                __m512 a = _mm512_set1_ps(x[r * ldx + k]);
                c[r][0] = _mm512_fmadd_ps(a, b0, c[r][0]);
                c[r][1] = _mm512_fmadd_ps(a, b1, c[r][1]);
            }
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

void se_gemm_bf16_avx512(const float *x, size_t M, size_t K, size_t ldx, const uint16_t *pw, size_t N, const float *b,
                         float *y, size_t ldy, size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; n += NR) {
        const uint16_t *panel = pw + (n / NR) * NR * K;
        size_t nc = n1 - n < NR ? n1 - n : NR;
        if (n + nc > N) nc = N - n;
        for (size_t m = 0; m < M; m += MR) {
            size_t rows = M - m < MR ? M - m : MR;
            block(x + m * ldx, ldx, rows, K, panel, b ? b + n : NULL, y + m * ldy + n, ldy, nc);
        }
    }
}
