/*
 * kernels_avx512.c - AVX-512 GEMM on pre-packed weights (compiled with
 * -mavx512f -mfma; called only when the CPU has AVX-512F).
 *
 * Layout: a weight matrix W (N, K) in torch Linear layout is packed once at
 * load into panels of 32 output columns, K-major within a panel:
 *   packed[p][k][j] = W[32 p + j][k]   (zero for 32 p + j >= N)
 * The micro-kernel computes a 6 x 32 block of y = x W^T: 12 zmm
 * accumulators, and for each k two 16-wide loads from the panel and six
 * broadcasts of x. Every y element is a plain sequence of FMAs over
 * k = 0..K-1 followed by one bias add, whatever its block, so results do
 * not depend on M, on tiling or on threads (the batch-invariance
 * guarantee), and edge blocks (fewer rows, masked columns) run the same
 * sequence.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"

#define NR 32
#define MR 6

size_t se_pack_size(size_t N, size_t K) { return (N + NR - 1) / NR * NR * K; }

void se_pack_weights(const float *w, size_t N, size_t K, float *out) {
    size_t np = (N + NR - 1) / NR;
    for (size_t p = 0; p < np; p++) {
        float *dst = out + p * NR * K;
        for (size_t k = 0; k < K; k++)
            for (size_t j = 0; j < NR; j++) {
                size_t n = p * NR + j;
                dst[k * NR + j] = n < N ? w[n * K + k] : 0.0f;
            }
    }
}

/* rows x 32 block (rows <= 6) of panel pw; writes columns [0, ncols). */
static inline void block(const float *x, size_t ldx, size_t rows, size_t K, const float *pw, const float *b, float *y,
                         size_t ldy, size_t ncols) {
    __m512 c[MR][2];
    for (size_t r = 0; r < MR; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
    if (rows == MR) {
        const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx, *x4 = x + 4 * ldx, *x5 = x + 5 * ldx;
        for (size_t k = 0; k < K; k++) {
            __m512 b0 = _mm512_loadu_ps(pw + k * NR), b1 = _mm512_loadu_ps(pw + k * NR + 16);
            __m512 a;
            a = _mm512_set1_ps(x0[k]), c[0][0] = _mm512_fmadd_ps(a, b0, c[0][0]), c[0][1] = _mm512_fmadd_ps(a, b1, c[0][1]);
            a = _mm512_set1_ps(x1[k]), c[1][0] = _mm512_fmadd_ps(a, b0, c[1][0]), c[1][1] = _mm512_fmadd_ps(a, b1, c[1][1]);
            a = _mm512_set1_ps(x2[k]), c[2][0] = _mm512_fmadd_ps(a, b0, c[2][0]), c[2][1] = _mm512_fmadd_ps(a, b1, c[2][1]);
            a = _mm512_set1_ps(x3[k]), c[3][0] = _mm512_fmadd_ps(a, b0, c[3][0]), c[3][1] = _mm512_fmadd_ps(a, b1, c[3][1]);
            a = _mm512_set1_ps(x4[k]), c[4][0] = _mm512_fmadd_ps(a, b0, c[4][0]), c[4][1] = _mm512_fmadd_ps(a, b1, c[4][1]);
            a = _mm512_set1_ps(x5[k]), c[5][0] = _mm512_fmadd_ps(a, b0, c[5][0]), c[5][1] = _mm512_fmadd_ps(a, b1, c[5][1]);
        }
    } else {
        for (size_t k = 0; k < K; k++) {
            __m512 b0 = _mm512_loadu_ps(pw + k * NR), b1 = _mm512_loadu_ps(pw + k * NR + 16);
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

void se_gemm_packed_avx512(const float *x, size_t M, size_t K, size_t ldx, const float *pw, size_t N, const float *b,
                           float *y, size_t ldy, size_t n0, size_t n1) {
    /* n0 must be a multiple of NR (callers split work on panel bounds) */
    for (size_t n = n0; n < n1; n += NR) {
        const float *panel = pw + (n / NR) * NR * K;
        size_t nc = n1 - n < NR ? n1 - n : NR;
        if (n + nc > N) nc = N - n;
        for (size_t m = 0; m < M; m += MR) {
            size_t rows = M - m < MR ? M - m : MR;
            block(x + m * ldx, ldx, rows, K, panel, b ? b + n : NULL, y + m * ldy + n, ldy, nc);
        }
    }
}
