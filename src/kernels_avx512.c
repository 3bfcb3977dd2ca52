/*
 * kernels_avx512.c - AVX-512 GEMM on pre-packed weights (compiled with
 * -mavx512f -mfma; called only when the CPU has AVX-512F).
 *
 * Layout: a weight matrix W (N, K) in torch Linear layout is packed once at
 * load into panels of 32 output columns, K-major within a panel:
 *   packed[p][k][j] = W[32 p + j][k]   (zero for 32 p + j >= N)
 * The same kernel runs on bf16 weights (packed by kernels_bf16.c), widened
 * to f32 in registers.
 * The micro-kernel computes a 6 x 32 block of y = x W^T: 12 zmm
 * accumulators, and for each k two 16-wide loads from the panel and six
 * broadcasts of x. Every y element is a plain sequence of FMAs over
 * k = 0..K-1 followed by one bias add, whatever its block, so results do
 * not depend on M, on tiling or on threads (the batch-invariance
 * guarantee), and edge blocks (fewer rows, masked columns) run the same
 * sequence.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
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

/* The 32 weights of step k of a panel as two 16-lane f32 vectors: f32
 * panels load directly; bf16 panels (kernels_bf16.c's interleaved layout)
 * widen in registers. */
static inline __attribute__((always_inline)) void load_w(const void *pw, size_t k, bool bf16, __m512 *b0, __m512 *b1) {
    if (bf16) {
        __m512i v = _mm512_loadu_si512((const void *)((const uint16_t *)pw + k * NR));
        *b0 = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        *b1 = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xFFFF0000u)));
    } else {
        *b0 = _mm512_loadu_ps((const float *)pw + k * NR);
        *b1 = _mm512_loadu_ps((const float *)pw + k * NR + 16);
    }
}

/* rows x 32 block (rows <= 6) of panel pw (f32 or bf16 weights, f32
 * arithmetic); writes columns [0, ncols). */
static inline __attribute__((always_inline)) void block(const float *x, size_t ldx, size_t rows, size_t K, const void *pw,
                                                        bool bf16, const float *b, float *y, size_t ldy, size_t ncols) {
    __m512 c[MR][2];
    for (size_t r = 0; r < MR; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
    if (rows == MR) {
        const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx, *x4 = x + 4 * ldx, *x5 = x + 5 * ldx;
        for (size_t k = 0; k < K; k++) {
            __m512 b0, b1, a;
            load_w(pw, k, bf16, &b0, &b1);
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
            load_w(pw, k, bf16, &b0, &b1);
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

/* Column blocks [n0, n1) of y over all rows; n0 a multiple of NR. */
static inline __attribute__((always_inline)) void gemm_panels(const float *x, size_t M, size_t K, size_t ldx, const void *pw,
                                                              bool bf16, size_t N, const float *b, float *y, size_t ldy,
                                                              size_t n0, size_t n1) {
    size_t esz = bf16 ? sizeof(uint16_t) : sizeof(float);
    for (size_t n = n0; n < n1; n += NR) {
        const void *panel = (const uint8_t *)pw + (n / NR) * NR * K * esz;
        size_t nc = n1 - n < NR ? n1 - n : NR;
        if (n + nc > N) nc = N - n;
        for (size_t m = 0; m < M; m += MR) {
            size_t rows = M - m < MR ? M - m : MR;
            block(x + m * ldx, ldx, rows, K, panel, bf16, b ? b + n : NULL, y + m * ldy + n, ldy, nc);
        }
    }
}

void se_gemm_packed_avx512(const float *x, size_t M, size_t K, size_t ldx, const float *pw, size_t N, const float *b,
                           float *y, size_t ldy, size_t n0, size_t n1) {
    gemm_panels(x, M, K, ldx, pw, false, N, b, y, ldy, n0, n1);
}

void se_gemm_bf16_avx512(const float *x, size_t M, size_t K, size_t ldx, const uint16_t *pw, size_t N, const float *b,
                         float *y, size_t ldy, size_t n0, size_t n1) {
    gemm_panels(x, M, K, ldx, pw, true, N, b, y, ldy, n0, n1);
}

/* ==== Attention ==== */

/* e^x for 16 lanes: x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial
 * for e^r and 2^n applied with scalef. Relative error about 2 ulp; inputs
 * below -87.3 give 0 (softmax arguments are <= 0). */
static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.33654f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* One attention head (se_attn_fn), with the additive bias of
 * se_attn_bias_fn when bias is not NULL; inlined into both entry points so
 * that the unbiased one compiles to exactly the operations it had before
 * the bias existed. */
static inline __attribute__((always_inline)) void attn_head(const float *q, const float *k, const float *v, size_t ld,
                                                            float *out, size_t ldo, size_t T, size_t HD, float scale,
                                                            bool scale_q_first, const float *bias, ptrdiff_t ldb,
                                                            float *scratch) {
    enum { QB = 8 }; /* queries per block: eight independent FMA chains */
    size_t Tp = (T + 15) & ~(size_t)15;
    float *kt = scratch;          /* (HD, Tp) keys transposed, zero padded */
    float *s = kt + HD * Tp;      /* (QB, Tp) scores, then probabilities */
    float *qs = s + QB * Tp;      /* (QB, HD) scaled queries */
    if (T * ld < (size_t)INT32_MAX) { /* transpose K with gathers: 16 keys per instruction */
        for (size_t t = 0; t < Tp; t += 16) {
            __mmask16 m = T - t >= 16 ? 0xFFFF : (__mmask16)((1u << (T - t)) - 1);
            __m512i idx = _mm512_mullo_epi32(_mm512_add_epi32(_mm512_set1_epi32((int)t),
                                                              _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)),
                                             _mm512_set1_epi32((int)ld));
            for (size_t d = 0; d < HD; d++)
                _mm512_storeu_ps(kt + d * Tp + t, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, k + d, 4));
        }
    } else {
        for (size_t d = 0; d < HD; d++) {
            for (size_t t = 0; t < T; t++) kt[d * Tp + t] = k[t * ld + d];
            for (size_t t = T; t < Tp; t++) kt[d * Tp + t] = 0.0f;
        }
    }
    size_t nv = (HD + 15) / 16;
    __mmask16 last = (HD % 16) ? (__mmask16)((1u << (HD % 16)) - 1) : 0xFFFF;
    for (size_t i0 = 0; i0 < T; i0 += QB) {
        size_t nq = T - i0 < QB ? T - i0 : QB;
        for (size_t r = 0; r < QB; r++)
            for (size_t d = 0; d < HD; d++) {
                float x = r < nq ? q[(i0 + r) * ld + d] : 0.0f;
                qs[r * HD + d] = scale_q_first ? x * scale : x;
            }
        /* scores: s[r][t] = sum_d q_r[d] k[t][d], summed in d order (named
         * accumulators: an array of them gets spilled) */
        for (size_t t = 0; t < Tp; t += 16) {
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            for (size_t d = 0; d < HD; d++) {
                __m512 kv = _mm512_loadu_ps(kt + d * Tp + t);
                a0 = _mm512_fmadd_ps(_mm512_set1_ps(qs[d]), kv, a0);
                a1 = _mm512_fmadd_ps(_mm512_set1_ps(qs[HD + d]), kv, a1);
                a2 = _mm512_fmadd_ps(_mm512_set1_ps(qs[2 * HD + d]), kv, a2);
                a3 = _mm512_fmadd_ps(_mm512_set1_ps(qs[3 * HD + d]), kv, a3);
                a4 = _mm512_fmadd_ps(_mm512_set1_ps(qs[4 * HD + d]), kv, a4);
                a5 = _mm512_fmadd_ps(_mm512_set1_ps(qs[5 * HD + d]), kv, a5);
                a6 = _mm512_fmadd_ps(_mm512_set1_ps(qs[6 * HD + d]), kv, a6);
                a7 = _mm512_fmadd_ps(_mm512_set1_ps(qs[7 * HD + d]), kv, a7);
            }
            if (!scale_q_first) {
                __m512 sc = _mm512_set1_ps(scale);
                a0 = _mm512_mul_ps(a0, sc), a1 = _mm512_mul_ps(a1, sc), a2 = _mm512_mul_ps(a2, sc), a3 = _mm512_mul_ps(a3, sc);
                a4 = _mm512_mul_ps(a4, sc), a5 = _mm512_mul_ps(a5, sc), a6 = _mm512_mul_ps(a6, sc), a7 = _mm512_mul_ps(a7, sc);
            }
            if (bias) { /* + bias[i][t] for the block's real queries and keys (the rest stays unused) */
                __mmask16 m = T - t >= 16 ? 0xFFFF : (__mmask16)((1u << (T - t)) - 1);
                const float *b0 = bias + (ptrdiff_t)i0 * ldb + (ptrdiff_t)t;
#define SE_ADD_BIAS(r, a) \
    if (nq > r) a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(m, b0 + (ptrdiff_t)(r) * ldb))
                SE_ADD_BIAS(0, a0);
                SE_ADD_BIAS(1, a1);
                SE_ADD_BIAS(2, a2);
                SE_ADD_BIAS(3, a3);
                SE_ADD_BIAS(4, a4);
                SE_ADD_BIAS(5, a5);
                SE_ADD_BIAS(6, a6);
                SE_ADD_BIAS(7, a7);
#undef SE_ADD_BIAS
            }
            _mm512_storeu_ps(s + t, a0);
            _mm512_storeu_ps(s + Tp + t, a1);
            _mm512_storeu_ps(s + 2 * Tp + t, a2);
            _mm512_storeu_ps(s + 3 * Tp + t, a3);
            _mm512_storeu_ps(s + 4 * Tp + t, a4);
            _mm512_storeu_ps(s + 5 * Tp + t, a5);
            _mm512_storeu_ps(s + 6 * Tp + t, a6);
            _mm512_storeu_ps(s + 7 * Tp + t, a7);
        }
        /* softmax of each row over t < T: probabilities left in s */
        for (size_t r = 0; r < nq; r++) {
            float *sr = s + r * Tp;
            __m512 mx = _mm512_set1_ps(-INFINITY);
            for (size_t t = 0; t < Tp; t += 16) {
                __mmask16 m = T - t >= 16 ? 0xFFFF : (__mmask16)((1u << (T - t)) - 1);
                mx = _mm512_mask_max_ps(mx, m, mx, _mm512_loadu_ps(sr + t));
            }
            __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
            __m512 sum = _mm512_setzero_ps();
            for (size_t t = 0; t < Tp; t += 16) {
                __mmask16 m = T - t >= 16 ? 0xFFFF : (__mmask16)((1u << (T - t)) - 1);
                __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_loadu_ps(sr + t), vmax)));
                _mm512_storeu_ps(sr + t, e);
                sum = _mm512_add_ps(sum, e);
            }
            __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
            for (size_t t = 0; t < Tp; t += 16) _mm512_storeu_ps(sr + t, _mm512_mul_ps(_mm512_loadu_ps(sr + t), inv));
        }
        /* out_r = sum_t p_r[t] v_t, summed in t order, 16 columns at a time */
        for (size_t j = 0; j < nv; j++) {
            __mmask16 m = j + 1 == nv ? last : 0xFFFF;
            __m512 o0 = _mm512_setzero_ps(), o1 = o0, o2 = o0, o3 = o0, o4 = o0, o5 = o0, o6 = o0, o7 = o0;
            for (size_t t = 0; t < T; t++) {
                __m512 vv = _mm512_maskz_loadu_ps(m, v + t * ld + 16 * j);
                o0 = _mm512_fmadd_ps(_mm512_set1_ps(s[t]), vv, o0);
                o1 = _mm512_fmadd_ps(_mm512_set1_ps(s[Tp + t]), vv, o1);
                o2 = _mm512_fmadd_ps(_mm512_set1_ps(s[2 * Tp + t]), vv, o2);
                o3 = _mm512_fmadd_ps(_mm512_set1_ps(s[3 * Tp + t]), vv, o3);
                o4 = _mm512_fmadd_ps(_mm512_set1_ps(s[4 * Tp + t]), vv, o4);
                o5 = _mm512_fmadd_ps(_mm512_set1_ps(s[5 * Tp + t]), vv, o5);
                o6 = _mm512_fmadd_ps(_mm512_set1_ps(s[6 * Tp + t]), vv, o6);
                o7 = _mm512_fmadd_ps(_mm512_set1_ps(s[7 * Tp + t]), vv, o7);
            }
            float *orow = out + i0 * ldo + 16 * j;
            if (nq > 0) _mm512_mask_storeu_ps(orow, m, o0);
            if (nq > 1) _mm512_mask_storeu_ps(orow + ldo, m, o1);
            if (nq > 2) _mm512_mask_storeu_ps(orow + 2 * ldo, m, o2);
            if (nq > 3) _mm512_mask_storeu_ps(orow + 3 * ldo, m, o3);
            if (nq > 4) _mm512_mask_storeu_ps(orow + 4 * ldo, m, o4);
            if (nq > 5) _mm512_mask_storeu_ps(orow + 5 * ldo, m, o5);
            if (nq > 6) _mm512_mask_storeu_ps(orow + 6 * ldo, m, o6);
            if (nq > 7) _mm512_mask_storeu_ps(orow + 7 * ldo, m, o7);
        }
    }
}

void se_attn_head_avx512(const float *q, const float *k, const float *v, size_t ld, float *out, size_t ldo, size_t T,
                         size_t HD, float scale, bool scale_q_first, float *scratch) {
    attn_head(q, k, v, ld, out, ldo, T, HD, scale, scale_q_first, NULL, 0, scratch);
}

void se_attn_head_bias_avx512(const float *q, const float *k, const float *v, size_t ld, float *out, size_t ldo,
                              size_t T, size_t HD, float scale, const float *bias, ptrdiff_t ldb, float *scratch) {
    attn_head(q, k, v, ld, out, ldo, T, HD, scale, false, bias, ldb, scratch);
}

/* ==== GELU ==== */

/* erf(x) for 16 lanes: Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7, the
 * form oneDNN uses for gelu_erf), odd symmetry. */
static inline __m512 erf16(__m512 x) {
    __m512 ax = _mm512_abs_ps(x);
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), ax, _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(1.061405429f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
    p = _mm512_mul_ps(p, t);
    __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(ax, ax)));
    __m512 y = _mm512_fnmadd_ps(p, e, _mm512_set1_ps(1.0f));
    /* copy the sign of x */
    __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(y), sign));
}

void se_gelu_avx512(float *x, size_t n) {
    size_t i = 0;
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f), rs2 = _mm512_set1_ps(0.70710678118654752f);
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, erf16(_mm512_mul_ps(v, rs2)))));
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, erf16(_mm512_mul_ps(v, rs2)))));
    }
}

/* LayerNorm in 16 lanes (see kernels.h): masked loads for the tail, so any
 * n works. Same two-pass formula as the reference. Thread-safe. */
void se_layernorm_avx512(float *x, size_t n, const float *g, const float *b, float eps) {
    __m512 acc = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(x + i));
    __mmask16 tail = (__mmask16)((1u << (n - i)) - 1);
    if (i < n) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(tail, x + i));
    float mean = _mm512_reduce_add_ps(acc) / (float)n;
    __m512 vm = _mm512_set1_ps(mean);
    acc = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i), vm);
        acc = _mm512_fmadd_ps(d, d, acc);
    }
    if (i < n) {
        __m512 d = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, x + i), vm);
        acc = _mm512_fmadd_ps(d, d, acc);
    }
    float var = _mm512_reduce_add_ps(acc) / (float)n;
    __m512 vr = _mm512_set1_ps(1.0f / sqrtf(var + eps));
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm), vr);
        _mm512_storeu_ps(x + i, _mm512_fmadd_ps(v, _mm512_loadu_ps(g + i), _mm512_loadu_ps(b + i)));
    }
    if (i < n) {
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + i), vm), vr);
        _mm512_mask_storeu_ps(x + i, tail,
                              _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(tail, g + i), _mm512_maskz_loadu_ps(tail, b + i)));
    }
}

/* x[i] = y[i] + x[i], 16 lanes, masked tail (see kernels.h). Thread-safe. */
void se_add_avx512(float *x, const float *y, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_add_ps(_mm512_loadu_ps(y + i), _mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
    }
}
