/*
 * kernels_int8.c - int8 GEMM with AVX512-VNNI (compiled with -mavx512f
 * -mavx512bw -mavx512vnni; used when a model is loaded with dtype int8 and
 * the CPU has AVX512-VNNI).
 *
 * Weights: symmetric int8 per output column, quantised once at load:
 *   wq[n][k] = round(W[n][k] / sw[n]),  sw[n] = max_k |W[n][k]| / 127
 * Activations: asymmetric uint8 per row, quantised per product (dynamic):
 *   xq[m][k] = clamp(round(x[m][k] / sx[m]) + zx[m], 0, 255),
 *   sx[m] = (max - min) / 255 over the row (min <= 0 <= max), zx = round(-min / sx)
 * VPDPBUSD accumulates sum_k xq wq exactly in int32, then
 *   y[m][n] = sx[m] sw[n] (acc - zx[m] colsum[n]) + b[n],  colsum[n] = sum_k wq[n][k].
 * Integer accumulation is exact, and each row's quantisation depends only on
 * that row, so results do not depend on batching.
 *
 * Panels of 32 columns by quads of k (K padded to a multiple of 4 with zero
 * weights): packed[p][kq][h][j][e] = wq[32 p + 16 h + j][4 kq + e], i.e. one
 * 64-byte vector per (quad, half) holding 16 columns x 4 bytes.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#define NR 32
#define MR 6

size_t se_int8_kpad(size_t K) { return (K + 3) & ~(size_t)3; }

size_t se_pack_int8_size(size_t N, size_t K) { return (N + NR - 1) / NR * NR * se_int8_kpad(K); }

void se_pack_weights_int8(const float *w, size_t N, size_t K, int8_t *out, float *scale, int32_t *colsum) {
    size_t np = (N + NR - 1) / NR, Kp = se_int8_kpad(K);
    for (size_t n = 0; n < np * NR; n++) {
        float mx = 0.0f;
        if (n < N)
            for (size_t k = 0; k < K; k++) mx = fmaxf(mx, fabsf(w[n * K + k]));
        scale[n] = mx > 0.0f ? mx / 127.0f : 1.0f;
        colsum[n] = 0;
    }
    for (size_t p = 0; p < np; p++)
        for (size_t kq = 0; kq < Kp / 4; kq++)
            for (size_t h = 0; h < 2; h++)
                for (size_t j = 0; j < 16; j++)
                    for (size_t e = 0; e < 4; e++) {
                        size_t n = p * NR + 16 * h + j, k = 4 * kq + e;
                        int v = 0;
                        if (n < N && k < K) {
                            v = (int)lrintf(w[n * K + k] / scale[n]);
                            v = v > 127 ? 127 : v < -127 ? -127 : v;
                        }
                        out[(((p * (Kp / 4) + kq) * 2 + h) * 16 + j) * 4 + e] = (int8_t)v;
                        colsum[n] += v;
                    }
}

void se_quantize_rows_u8(const float *x, size_t M, size_t K, size_t ldx, uint8_t *out, float *sx, int32_t *zx) {
    size_t Kp = se_int8_kpad(K);
    for (size_t m = 0; m < M; m++) {
        const float *r = x + m * ldx;
        __m512 vlo = _mm512_setzero_ps(), vhi = _mm512_setzero_ps();
        size_t k = 0;
        for (; k + 16 <= K; k += 16) {
            __m512 v = _mm512_loadu_ps(r + k);
            vlo = _mm512_min_ps(vlo, v), vhi = _mm512_max_ps(vhi, v);
        }
        float lo = _mm512_reduce_min_ps(vlo), hi = _mm512_reduce_max_ps(vhi);
        for (; k < K; k++) lo = fminf(lo, r[k]), hi = fmaxf(hi, r[k]);
        float s = hi > lo ? (hi - lo) / 255.0f : 1.0f;
        int32_t z = (int32_t)lrintf(-lo / s);
        z = z < 0 ? 0 : z > 255 ? 255 : z;
        float inv = 1.0f / s;
        uint8_t *o = out + m * Kp;
        __m512 vinv = _mm512_set1_ps(inv);
        __m512i vz = _mm512_set1_epi32(z);
        for (k = 0; k + 16 <= K; k += 16) {
            /* round to nearest even, add the zero point, saturate to [0, 255] */
            __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(r + k), vinv)), vz);
            q = _mm512_max_epi32(q, _mm512_setzero_si512());
            _mm_storeu_si128((__m128i *)(void *)(o + k), _mm512_cvtusepi32_epi8(q));
        }
        for (; k < K; k++) {
            int v = (int)lrintf(r[k] * inv) + z;
            o[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        for (k = K; k < Kp; k++) o[k] = (uint8_t)z; /* pads meet zero weights */
        sx[m] = s, zx[m] = z;
    }
}

/* Four activation bytes as one 32-bit lane. */
static inline int32_t load4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

void se_gemm_int8_avx512(const uint8_t *xq, const float *sx, const int32_t *zx, size_t M, size_t K, const int8_t *pw,
                         const float *sw, const int32_t *colsum, size_t N, const float *b, float *y, size_t ldy, size_t n0,
                         size_t n1) {
    size_t Kp = se_int8_kpad(K), nq = Kp / 4;
    for (size_t n = n0; n < n1; n += NR) {
        const int8_t *panel = pw + (n / NR) * NR * Kp;
        size_t nc = n1 - n < NR ? n1 - n : NR;
        if (n + nc > N) nc = N - n;
        __mmask16 m0 = nc >= 16 ? 0xFFFF : (__mmask16)((1u << nc) - 1);
        __mmask16 m1 = nc >= 32 ? 0xFFFF : nc <= 16 ? 0 : (__mmask16)((1u << (nc - 16)) - 1);
        __m512 sw0 = _mm512_loadu_ps(sw + n), sw1 = _mm512_loadu_ps(sw + n + 16);
        __m512i cs0 = _mm512_loadu_si512((const void *)(colsum + n)), cs1 = _mm512_loadu_si512((const void *)(colsum + n + 16));
        __m512 bb0 = b ? _mm512_maskz_loadu_ps(m0, b + n) : _mm512_setzero_ps();
        __m512 bb1 = b ? _mm512_maskz_loadu_ps(m1, b + n + 16) : _mm512_setzero_ps();
        for (size_t m = 0; m < M; m += MR) {
            size_t rows = M - m < MR ? M - m : MR;
            __m512i c[MR][2];
            for (size_t r = 0; r < MR; r++) c[r][0] = c[r][1] = _mm512_setzero_si512();
            const uint8_t *xr = xq + m * Kp;
            if (rows == MR) {
                /* twelve named accumulators: with an array GCC shuffles and
                 * spills them inside the loop */
                const uint8_t *x0 = xr, *x1 = xr + Kp, *x2 = xr + 2 * Kp, *x3 = xr + 3 * Kp, *x4 = xr + 4 * Kp, *x5 = xr + 5 * Kp;
                __m512i a00 = _mm512_setzero_si512(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00,
                        a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
                const int8_t *pk = panel;
                for (size_t kq = 0; kq < nq; kq++, pk += 128) {
                    __m512i w0 = _mm512_loadu_si512((const void *)pk);
                    __m512i w1 = _mm512_loadu_si512((const void *)(pk + 64));
                    __m512i a;
#define SE_ROW(A0, A1, XR)                                                                                             \
    a = _mm512_set1_epi32(load4(XR + 4 * kq));                                                                         \
    A0 = _mm512_dpbusd_epi32(A0, a, w0), A1 = _mm512_dpbusd_epi32(A1, a, w1)
                    SE_ROW(a00, a01, x0);
                    SE_ROW(a10, a11, x1);
                    SE_ROW(a20, a21, x2);
                    SE_ROW(a30, a31, x3);
                    SE_ROW(a40, a41, x4);
                    SE_ROW(a50, a51, x5);
#undef SE_ROW
                }
                c[0][0] = a00, c[0][1] = a01, c[1][0] = a10, c[1][1] = a11, c[2][0] = a20, c[2][1] = a21;
                c[3][0] = a30, c[3][1] = a31, c[4][0] = a40, c[4][1] = a41, c[5][0] = a50, c[5][1] = a51;
            } else {
                for (size_t kq = 0; kq < nq; kq++) {
                    __m512i w0 = _mm512_loadu_si512((const void *)(panel + kq * 128));
                    __m512i w1 = _mm512_loadu_si512((const void *)(panel + kq * 128 + 64));
                    for (size_t r = 0; r < rows; r++) {
                        __m512i a = _mm512_set1_epi32(load4(xr + r * Kp + 4 * kq));
                        c[r][0] = _mm512_dpbusd_epi32(c[r][0], a, w0);
                        c[r][1] = _mm512_dpbusd_epi32(c[r][1], a, w1);
                    }
                }
            }
            for (size_t r = 0; r < rows; r++) {
                __m512i z = _mm512_set1_epi32(zx[m + r]);
                __m512 s = _mm512_set1_ps(sx[m + r]);
                __m512 v0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(c[r][0], _mm512_mullo_epi32(z, cs0)));
                __m512 v1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(c[r][1], _mm512_mullo_epi32(z, cs1)));
                float *yr = y + (m + r) * ldy + n;
                _mm512_mask_storeu_ps(yr, m0, _mm512_fmadd_ps(_mm512_mul_ps(s, sw0), v0, bb0));
                _mm512_mask_storeu_ps(yr + 16, m1, _mm512_fmadd_ps(_mm512_mul_ps(s, sw1), v1, bb1));
            }
        }
    }
}
