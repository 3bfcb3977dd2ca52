/*
 * kernels.c - scalar reference kernels, the element-wise kernels, and the
 * run-time choice of the fast kernels.
 *
 * The reference GEMM is the naive triple loop (llm.c's
 * matmul_forward_naive): the thing the fast kernels are tested against.
 * Element-wise kernels (layer norm, activations, softmax) are scalar C
 * everywhere: they are a small share of the time and libm's erff/tanhf/expf
 * keep them exact.
 */
#include "kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void se_gemm_ref(const float *x, size_t M, size_t K, size_t ldx, const float *w, const float *b,
                 float *y, size_t ldy, size_t n0, size_t n1) {
    for (size_t m = 0; m < M; m++) {
        for (size_t n = n0; n < n1; n++) {
            float acc = 0.0f;
            for (size_t k = 0; k < K; k++) acc += x[m * ldx + k] * w[n * K + k];
            y[m * ldy + n] = acc + (b ? b[n] : 0.0f);
        }
    }
}

float se_dot_ref(const float *a, const float *b, size_t K) {
    float acc = 0.0f;
    for (size_t k = 0; k < K; k++) acc += a[k] * b[k];
    return acc;
}

void se_axpy_ref(float *y, float a, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = y[i] + a * x[i];
}

static se_kernels kernels_ref = {"ref", se_gemm_ref, se_dot_ref, se_axpy_ref, false};
static se_kernels kernels_avx2 = {"avx2", se_gemm_avx2, se_dot_avx2, se_axpy_avx2, false};
static se_kernels kernels_avx512 = {"avx512", se_gemm_avx2, se_dot_avx2, se_axpy_avx2, true};
static const se_kernels *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

/* Picks the kernels once: the best the CPU has, capped by SE_KERNELS. */
static void choose(void) {
    const char *env = getenv("SE_KERNELS");
    chosen = &kernels_ref;
    if (env && strcmp(env, "ref") == 0) return;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;
    chosen = &kernels_avx2;
    if (env && strcmp(env, "avx2") == 0) return;
    if (__builtin_cpu_supports("avx512f")) chosen = &kernels_avx512;
#endif
}

const se_kernels *se_kernels_get(void) {
    pthread_once(&chosen_once, choose);
    return chosen;
}

void se_layernorm(float *x, size_t n, const float *g, const float *b, float eps) {
    float mean = 0.0f;
    for (size_t i = 0; i < n; i++) mean += x[i];
    mean /= (float)n;
    float var = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float d = x[i] - mean;
        var += d * d;
    }
    var /= (float)n;
    float rstd = 1.0f / sqrtf(var + eps);
    for (size_t i = 0; i < n; i++) x[i] = (x[i] - mean) * rstd * g[i] + b[i];
}

void se_gelu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void se_gelu_tanh(float *x, size_t n) {
    const float c = 0.79788456080286536f; /* sqrt(2/pi) */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(c * (v + 0.044715f * v * v * v)));
    }
}

void se_relu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void se_tanh(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
}

void se_sigmoid(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));
}

void se_softmax(float *x, size_t n) {
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}
