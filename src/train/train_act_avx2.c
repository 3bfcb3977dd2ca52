/*
 * train/train_act_avx2.c - GELU (exact-erf form) forward and backward for
 * training, 8 lanes at a time, and their scalar twins.
 *
 *   gelu(x)  = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
 *   gelu'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
 *
 * erf is Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7, as the library's
 * AVX-512 GELU), exp Cephes' expf polynomial; exp(-x^2 / 2) serves both
 * erf(x / sqrt 2) and phi. The scalar twin performs the very same
 * operations (fmaf where the vector code fuses), so both give the same
 * bits; against libm's erf and exp they agree to ~3e-7. The training
 * forward is the _d form: it writes gelu(x) and, over x, gelu'(x) (both
 * from one exp), so the backward is dy times the saved factor (taken in
 * the GEMM that makes dy, se_tk_gemm_mul); se_tk_gelu_fwd_ref and
 * se_tk_gelu_bwd_ref are the two passes' scalar definitions it is checked
 * against. Compiled with
 * -mavx2 -mfma; the vector versions are called only when the CPU has both.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "train/train_avx2.h"
#include "train/train_kernels.h"

/* The constants of both versions. */
#define AS_P 0.3275911f
#define AS_A1 0.254829592f
#define AS_A2 (-0.284496736f)
#define AS_A3 1.421413741f
#define AS_A4 (-1.453152027f)
#define AS_A5 1.061405429f
#define RSQRT2 0.70710678118654752f
#define RSQRT2PI 0.39894228040143268f

/* exp(x), Cephes' polynomial on the reduced argument. */
static inline float exp_s(float x) {
    x = x < EXP_HI ? x : EXP_HI;
    x = x > EXP_LO ? x : EXP_LO;
    float n = rintf(x * LOG2E);
    float r = fmaf(-n, LN2_C1, x);
    r = fmaf(-n, LN2_C2, r);
    float y = fmaf(P0, r, P1);
    y = fmaf(y, r, P2), y = fmaf(y, r, P3), y = fmaf(y, r, P4), y = fmaf(y, r, P5);
    y = fmaf(y, r * r, r);
    y = y + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float sc;
    memcpy(&sc, &bits, sizeof sc);
    return y * sc;
}

/* Phi(x) from e = exp(-x^2 / 2): (1 + sign(x) (1 - poly(t) e)) / 2. */
static inline float phi_cdf_s(float x, float e) {
    float ax = fabsf(x) * RSQRT2, t = 1.0f / fmaf(AS_P, ax, 1.0f);
    float p = fmaf(AS_A5, t, AS_A4);
    p = fmaf(p, t, AS_A3), p = fmaf(p, t, AS_A2), p = fmaf(p, t, AS_A1);
    float erf_abs = 1.0f - p * t * e;
    return 0.5f * (1.0f + (x < 0.0f ? -erf_abs : erf_abs));
}

void se_tk_gelu_fwd_ref(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], e = exp_s(-0.5f * v * v);
        x[i] = v * phi_cdf_s(v, e);
    }
}

void se_tk_gelu_bwd_ref(const float *pre, const float *dy, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = pre[i], e = exp_s(-0.5f * v * v);
        float d = phi_cdf_s(v, e) + v * (RSQRT2PI * e);
        dx[i] = dy[i] * d;
    }
}

void se_tk_gelu_fwd_d_ref(float *pre_d, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = pre_d[i], e = exp_s(-0.5f * v * v), cdf = phi_cdf_s(v, e);
        out[i] = v * cdf;
        pre_d[i] = cdf + v * (RSQRT2PI * e);
    }
}

/* 8 lanes of phi_cdf_s. */
static inline __m256 phi_cdf_v(__m256 x, __m256 e) {
    __m256 sign = _mm256_set1_ps(-0.0f), ax = _mm256_mul_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(RSQRT2));
    __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(AS_P), ax, _mm256_set1_ps(1.0f)));
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(AS_A5), t, _mm256_set1_ps(AS_A4));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(AS_A3));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(AS_A2));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(AS_A1));
    __m256 ea = _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_mul_ps(_mm256_mul_ps(p, t), e));
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    ea = _mm256_blendv_ps(ea, _mm256_xor_ps(ea, sign), neg);
    return _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_add_ps(_mm256_set1_ps(1.0f), ea));
}

void se_tk_gelu_fwd_d_avx2(float *pre_d, float *out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(pre_d + i);
        __m256 e = se_tk_exp8(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(-0.5f), v), v)), cdf = phi_cdf_v(v, e);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(v, cdf));
        _mm256_storeu_ps(pre_d + i, _mm256_add_ps(cdf, _mm256_mul_ps(v, _mm256_mul_ps(_mm256_set1_ps(RSQRT2PI), e))));
    }
    se_tk_gelu_fwd_d_ref(pre_d + i, out + i, n - i);
}

void se_tk_exp_ref(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = exp_s(x[i]);
}

void se_tk_exp_avx2(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, se_tk_exp8(_mm256_loadu_ps(x + i)));
    se_tk_exp_ref(x + i, n - i);
}
