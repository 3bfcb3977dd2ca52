/*
 * train/train_norm_avx2.c - LayerNorm's forward and backward for one row,
 * eight lanes at a time: the fast twins of se_tk_layernorm_fwd and
 * se_tk_layernorm_bwd (train_kernels.c, the references). The sums run in
 * eight partial sums (in float; the reference's backward sums in double),
 * so they agree with the references to rounding (~1e-6 relative;
 * tests/test_train_kernels.c). Compiled with -mavx2 -mfma; called only
 * when the CPU has both.
 */
#include <immintrin.h>
#include <math.h>

#include "train/train_kernels.h"

/* The sum of a vector's eight lanes. */
static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

void se_tk_layernorm_fwd_avx2(float *x, size_t n, const float *g, const float *b, float eps, float *xhat, float *rstd) {
    size_t n8 = n & ~(size_t)7, i;
    __m256 acc = _mm256_setzero_ps();
    for (i = 0; i < n8; i += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + i));
    float mean = hsum(acc);
    for (; i < n; i++) mean += x[i];
    mean /= (float)n;
    __m256 mv = _mm256_set1_ps(mean);
    acc = _mm256_setzero_ps();
    for (i = 0; i < n8; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), mv);
        acc = _mm256_fmadd_ps(d, d, acc);
    }
    float var = hsum(acc);
    for (; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= (float)n;
    float r = 1.0f / sqrtf(var + eps);
    __m256 rv = _mm256_set1_ps(r);
    for (i = 0; i < n8; i += 8) {
        __m256 h = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv), rv);
        _mm256_storeu_ps(xhat + i, h);
        _mm256_storeu_ps(x + i, _mm256_fmadd_ps(h, _mm256_loadu_ps(g + i), _mm256_loadu_ps(b + i)));
    }
    for (; i < n; i++) {
        xhat[i] = (x[i] - mean) * r;
        x[i] = xhat[i] * g[i] + b[i];
    }
    *rstd = r;
}

void se_tk_layernorm_bwd_avx2(const float *dy, const float *xhat, float rstd, const float *g, size_t n, float *dx,
                              float *dg, float *db) {
    size_t n8 = n & ~(size_t)7, i;
    __m256 a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps();
    for (i = 0; i < n8; i += 8) {
        __m256 y = _mm256_loadu_ps(dy + i), h = _mm256_loadu_ps(xhat + i), d = _mm256_mul_ps(y, _mm256_loadu_ps(g + i));
        a1 = _mm256_add_ps(a1, d), a2 = _mm256_fmadd_ps(d, h, a2);
        _mm256_storeu_ps(dg + i, _mm256_fmadd_ps(y, h, _mm256_loadu_ps(dg + i)));
        _mm256_storeu_ps(db + i, _mm256_add_ps(_mm256_loadu_ps(db + i), y));
    }
    float s1 = hsum(a1), s2 = hsum(a2);
    for (; i < n; i++) {
        float d = dy[i] * g[i];
        s1 += d, s2 += d * xhat[i];
        dg[i] += dy[i] * xhat[i], db[i] += dy[i];
    }
    float m1 = s1 / (float)n, m2 = s2 / (float)n;
    __m256 m1v = _mm256_set1_ps(m1), m2v = _mm256_set1_ps(m2), rv = _mm256_set1_ps(rstd);
    for (i = 0; i < n8; i += 8) { /* dx may alias dy: each lane read before written */
        __m256 d = _mm256_mul_ps(_mm256_loadu_ps(dy + i), _mm256_loadu_ps(g + i));
        __m256 v = _mm256_sub_ps(_mm256_sub_ps(d, m1v), _mm256_mul_ps(_mm256_loadu_ps(xhat + i), m2v));
        _mm256_storeu_ps(dx + i, _mm256_mul_ps(rv, v));
    }
    for (; i < n; i++) dx[i] = rstd * (dy[i] * g[i] - m1 - xhat[i] * m2);
}
