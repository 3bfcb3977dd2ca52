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

size_t se_attn_scratch(size_t T, size_t HD) {
    size_t Tp = (T + 15) & ~(size_t)15;
    return HD * Tp + 8 * Tp + 8 * HD; /* keys transposed, 8 score rows, 8 queries (AVX-512 block) */
}

/* The dot/axpy formulation of one attention head, shared by the scalar
 * reference and the AVX2 set (which passes its vector dot and axpy); bias
 * NULL or rows ldb apart (se_attn_bias_fn). */
static void attn_head_dot(se_dot_fn dot, se_axpy_fn axpy, const float *q, const float *k, const float *v, size_t ld,
                          float *out, size_t ldo, size_t T, size_t HD, float scale, bool scale_q_first, const float *bias,
                          ptrdiff_t ldb, float *scratch) {
    float *s = scratch, *qs = scratch + T; /* (T) scores, (HD) query */
    for (size_t i = 0; i < T; i++) {
        for (size_t d = 0; d < HD; d++) qs[d] = scale_q_first ? q[i * ld + d] * scale : q[i * ld + d];
        for (size_t t = 0; t < T; t++) {
            float acc = dot(qs, k + t * ld, HD);
            s[t] = scale_q_first ? acc : acc * scale;
        }
        if (bias) {
            const float *br = bias + (ptrdiff_t)i * ldb;
            for (size_t t = 0; t < T; t++) s[t] = s[t] + br[t];
        }
        se_softmax(s, T);
        float *o = out + i * ldo;
        for (size_t d = 0; d < HD; d++) o[d] = 0.0f;
        for (size_t t = 0; t < T; t++) axpy(o, s[t], v + t * ld, HD);
    }
}

void se_attn_head_ref(const float *q, const float *k, const float *v, size_t ld, float *out, size_t ldo, size_t T,
                      size_t HD, float scale, bool scale_q_first, float *scratch) {
    attn_head_dot(se_dot_ref, se_axpy_ref, q, k, v, ld, out, ldo, T, HD, scale, scale_q_first, NULL, 0, scratch);
}

void se_attn_head_bias_ref(const float *q, const float *k, const float *v, size_t ld, float *out, size_t ldo, size_t T,
                           size_t HD, float scale, const float *bias, ptrdiff_t ldb, float *scratch) {
    attn_head_dot(se_dot_ref, se_axpy_ref, q, k, v, ld, out, ldo, T, HD, scale, false, bias, ldb, scratch);
}

/* The AVX2 set's attention: the reference structure with vector dot
 * products and axpy. */
static void attn_head_avx2(const float *q, const float *k, const float *v, size_t ld, float *out, size_t ldo, size_t T,
                           size_t HD, float scale, bool scale_q_first, float *scratch) {
    attn_head_dot(se_dot_avx2, se_axpy_avx2, q, k, v, ld, out, ldo, T, HD, scale, scale_q_first, NULL, 0, scratch);
}

/* The AVX2 set's attention with an additive bias (se_attn_bias_fn). */
static void attn_head_bias_avx2(const float *q, const float *k, const float *v, size_t ld, float *out, size_t ldo,
                                size_t T, size_t HD, float scale, const float *bias, ptrdiff_t ldb, float *scratch) {
    attn_head_dot(se_dot_avx2, se_axpy_avx2, q, k, v, ld, out, ldo, T, HD, scale, false, bias, ldb, scratch);
}

static se_kernels kernels_ref = {"ref", se_gemm_ref, se_dot_ref, se_attn_head_ref, se_attn_head_bias_ref, se_gelu,
                                 se_layernorm, se_add, false};
static se_kernels kernels_avx2 = {"avx2", se_gemm_avx2, se_dot_avx2, attn_head_avx2, attn_head_bias_avx2, se_gelu,
                                  se_layernorm, se_add, false};
static se_kernels kernels_avx512 = {"avx512", se_gemm_avx2, se_dot_avx2, se_attn_head_avx512, se_attn_head_bias_avx512,
                                    se_gelu_avx512, se_layernorm_avx512, se_add_avx512, true};
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

bool se_cpu_has_avx512(void) {
#if defined(__x86_64__) || defined(__i386__)
    const char *env = getenv("SE_KERNELS");
    if (env && (strcmp(env, "ref") == 0 || strcmp(env, "avx2") == 0)) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

bool se_cpu_has_avx512bf16(void) {
#if defined(__x86_64__) || defined(__i386__)
    const char *env = getenv("SE_BF16");
    if (env && strcmp(env, "widen") == 0) return false;
    return se_cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

bool se_cpu_has_vnni(void) {
#if defined(__x86_64__) || defined(__i386__)
    return se_cpu_has_avx512() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
#else
    return false;
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

void se_add(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = y[i] + x[i];
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
