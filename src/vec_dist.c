/*
 * vec_dist.c - inner product and squared L2 kernels for the vector index
 * (see vec_dist.h). The AVX-512 versions are compiled for that target with
 * a function attribute and only called when the CPU has AVX-512F.
 */
#include "vec_dist.h"

#include <immintrin.h>
#include <pthread.h>

#include "kernels.h"

/* 16-lane scalar dot: lane j sums a[i]*b[i] for i = j mod 16, then the
 * lanes are added pairwise. Pure function; thread-safe. */
float se_vdot_ref(const float *a, const float *b, size_t n) {
    float lane[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) lane[j] += a[i + j] * b[i + j];
    for (int j = 0; i + (size_t)j < n; j++) lane[j] += a[i + j] * b[i + j];
    for (int w = 8; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) lane[j] += lane[j + w];
    return lane[0];
}

/* 16-lane scalar squared L2, same order as se_vdot_ref. Thread-safe. */
float se_vl2sq_ref(const float *a, const float *b, size_t n) {
    float lane[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) {
            float d = a[i + j] - b[i + j];
            lane[j] += d * d;
        }
    for (int j = 0; i + (size_t)j < n; j++) {
        float d = a[i + j] - b[i + j];
        lane[j] += d * d;
    }
    for (int w = 8; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) lane[j] += lane[j + w];
    return lane[0];
}

/* AVX-512 dot: two accumulators over 32 floats a step, masked tail.
 * Thread-safe. */
__attribute__((target("avx512f"))) float se_vdot_avx512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/* AVX-512 squared L2, as se_vdot_avx512. Thread-safe. */
__attribute__((target("avx512f"))) float se_vl2sq_avx512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static se_vdist g_vdist;
static pthread_once_t g_vdist_once = PTHREAD_ONCE_INIT;

static void vdist_init(void) {
    if (se_cpu_has_avx512()) {
        g_vdist.dot = se_vdot_avx512;
        g_vdist.l2sq = se_vl2sq_avx512;
    } else {
        g_vdist.dot = se_vdot_ref;
        g_vdist.l2sq = se_vl2sq_ref;
    }
}

/* Returns the dispatched kernels (see vec_dist.h). Thread-safe. */
const se_vdist *se_vdist_get(void) {
    pthread_once(&g_vdist_once, vdist_init);
    return &g_vdist;
}
