/*
 * train/train_adamw_avx2.c - AdamW's element-wise update (train_optim.c),
 * 8 lanes at a time: the operations of the scalar twin in the same order,
 * each rounded alike (multiplies, adds, a division and a square root, no
 * fused multiply-add), so both give the same bits (the vector version
 * skips eight elements whose gradient and moments are all +0, which the
 * update leaves exactly as they are); and the gradient's sum
 * of squares for clipping, 16 partial sums in double. Compiled with
 * -mavx2; called only when the CPU has it.
 */
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>

#include "train/train_kernels.h"

/* One element: clip, decay, moments, step (torch.optim.AdamW's order). */
static inline void adamw_one(float *w, float *g, float *m, float *v, const se_tk_adamw_consts *c) {
    float gg = *g * c->coef;
    *g = 0.0f;
    if (c->decay_on) *w *= c->decay;
    *m = *m * c->b1 + gg * c->omb1;
    *v = *v * c->b2 + c->omb2 * gg * gg;
    float denom = sqrtf(*v) / c->bc2_sqrt + c->eps;
    *w += c->neg_step * (*m / denom);
}

void se_tk_adamw_update_ref(float *w, float *g, float *m, float *v, size_t n, const se_tk_adamw_consts *c) {
    for (size_t k = 0; k < n; k++) adamw_one(w + k, g + k, m + k, v + k, c);
}

void se_tk_adamw_update_avx2(float *w, float *g, float *m, float *v, size_t n, const se_tk_adamw_consts *c) {
    __m256 coef = _mm256_set1_ps(c->coef), decay = _mm256_set1_ps(c->decay), b1 = _mm256_set1_ps(c->b1);
    __m256 omb1 = _mm256_set1_ps(c->omb1), b2 = _mm256_set1_ps(c->b2), omb2 = _mm256_set1_ps(c->omb2);
    __m256 bc2 = _mm256_set1_ps(c->bc2_sqrt), eps = _mm256_set1_ps(c->eps), ns = _mm256_set1_ps(c->neg_step);
    /* eight elements whose gradient and moments are all +0 (an embedding
     * row no batch has had yet) would come out exactly as they are (m, v
     * +0, the step 0 / eps): skipped, unless weight decay would scale w */
    bool may_skip = !c->decay_on || c->decay == 1.0f;
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 g8 = _mm256_loadu_ps(g + k);
        if (may_skip) {
            __m256i z = _mm256_castps_si256(_mm256_or_ps(g8, _mm256_or_ps(_mm256_loadu_ps(m + k), _mm256_loadu_ps(v + k))));
            if (_mm256_testz_si256(z, z)) continue;
        }
        __m256 gg = _mm256_mul_ps(g8, coef), ww = _mm256_loadu_ps(w + k);
        _mm256_storeu_ps(g + k, _mm256_setzero_ps());
        if (c->decay_on) ww = _mm256_mul_ps(ww, decay);
        __m256 mm = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + k), b1), _mm256_mul_ps(gg, omb1));
        __m256 vv = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + k), b2), _mm256_mul_ps(_mm256_mul_ps(omb2, gg), gg));
        __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), bc2), eps);
        ww = _mm256_add_ps(ww, _mm256_mul_ps(ns, _mm256_div_ps(mm, den)));
        _mm256_storeu_ps(m + k, mm), _mm256_storeu_ps(v + k, vv), _mm256_storeu_ps(w + k, ww);
    }
    for (; k < n; k++) adamw_one(w + k, g + k, m + k, v + k, c);
}

/* The 16 partial sums in the fixed order both twins use. */
static double sumsq_combine(const double s[16]) {
    double t = 0.0;
    for (int l = 0; l < 16; l++) t += s[l];
    return t;
}

double se_tk_sumsq_ref(const float *x, size_t n) {
    double s[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) s[l] += (double)x[i + l] * x[i + l];
    for (int l = 0; i < n; i++, l++) s[l] += (double)x[i] * x[i];
    return sumsq_combine(s);
}

double se_tk_sumsq_avx2(const float *x, size_t n) {
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) { /* a float's square is exact in double: add, no FMA needed */
        __m256d x0 = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), x1 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        __m256d x2 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 8)), x3 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 12));
        a0 = _mm256_add_pd(a0, _mm256_mul_pd(x0, x0)), a1 = _mm256_add_pd(a1, _mm256_mul_pd(x1, x1));
        a2 = _mm256_add_pd(a2, _mm256_mul_pd(x2, x2)), a3 = _mm256_add_pd(a3, _mm256_mul_pd(x3, x3));
    }
    double s[16];
    _mm256_storeu_pd(s, a0), _mm256_storeu_pd(s + 4, a1), _mm256_storeu_pd(s + 8, a2), _mm256_storeu_pd(s + 12, a3);
    for (int l = 0; i < n; i++, l++) s[l] += (double)x[i] * x[i];
    return sumsq_combine(s);
}
