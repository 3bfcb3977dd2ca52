/*
 * kernels.h - the numeric kernels of the encoder, each with a scalar
 * reference twin (*_ref) that tests compare the fast version against.
 *
 * Determinism contract: every output element of se_gemm and se_dot is
 * computed by the same sequence of operations whatever M, the tile it falls
 * in or the thread that computes it. That is what makes a sentence's
 * embedding bit-identical however it is batched.
 */
#ifndef SE_KERNELS_H
#define SE_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* y[m][n] = sum_k x[m][k] * w[n][k] (+ b[n]) for m < M and n0 <= n < n1.
 *   x: (M, K) with row stride ldx; w: (N, K) row-major (torch Linear
 *   layout); b: (N) or NULL; y: (M, ldy), columns n0..n1 written. */
typedef void (*se_gemm_fn)(const float *x, size_t M, size_t K, size_t ldx, const float *w,
                           const float *b, float *y, size_t ldy, size_t n0, size_t n1);

void se_gemm_ref(const float *x, size_t M, size_t K, size_t ldx, const float *w, const float *b,
                 float *y, size_t ldy, size_t n0, size_t n1);
void se_gemm_avx2(const float *x, size_t M, size_t K, size_t ldx, const float *w, const float *b,
                  float *y, size_t ldy, size_t n0, size_t n1);

/* Dot product of two K-vectors, with the same operation order as one
 * se_gemm element of the same implementation. */
typedef float (*se_dot_fn)(const float *a, const float *b, size_t K);
float se_dot_ref(const float *a, const float *b, size_t K);
float se_dot_avx2(const float *a, const float *b, size_t K);

/* Packed weights for the AVX-512 GEMM: se_pack_size(N, K) floats hold W
 * (N, K) as panels of 32 columns, K-major (see kernels_avx512.c). */
size_t se_pack_size(size_t N, size_t K);
void se_pack_weights(const float *w, size_t N, size_t K, float *out);

/* y[m][n] = sum_k x[m][k] W[n][k] (+ b[n]) from packed W, for columns
 * n0 <= n < n1 (n0 a multiple of 32). Same determinism contract as
 * se_gemm. */
void se_gemm_packed_avx512(const float *x, size_t M, size_t K, size_t ldx, const float *pw, size_t N, const float *b,
                           float *y, size_t ldy, size_t n0, size_t n1);

/* One attention head of one sentence (no mask: the T tokens all attend):
 *   out[i][d] = sum_t softmax_t(score(i, t)) v[t][d],  i, t < T, d < HD
 * with score = (q_i . k_t) * scale, or (scale q_i) . k_t when
 * scale_q_first (USE lite scales q first). q, k, v: rows ld apart, already
 * offset to the head; out: rows ldo apart. scratch: se_attn_scratch(T, HD)
 * floats. Each value depends only on this sentence's q, k, v. */
typedef void (*se_attn_fn)(const float *q, const float *k, const float *v, size_t ld, float *out, size_t ldo,
                           size_t T, size_t HD, float scale, bool scale_q_first, float *scratch);
size_t se_attn_scratch(size_t T, size_t HD);
void se_attn_head_ref(const float *q, const float *k, const float *v, size_t ld, float *out, size_t ldo, size_t T,
                      size_t HD, float scale, bool scale_q_first, float *scratch);
void se_attn_head_avx512(const float *q, const float *k, const float *v, size_t ld, float *out, size_t ldo, size_t T,
                         size_t HD, float scale, bool scale_q_first, float *scratch);

/* One attention head with an additive bias per (query, key) pair (MPNet's
 * relative position bias):
 *   out[i][d] = sum_t softmax_t((q_i . k_t) * scale + bias[i * ldb + t]) v[t][d]
 * bias row i starts at bias + i * ldb; ldb may be negative or zero, so a
 * bias that depends only on t - i is one row of 2T - 1 values per head
 * (pass its element for t - i = 0 and ldb = -1). The score is rounded
 * after the scale and again after the bias, as torch's scores / sqrt(HD) +
 * bias. Other arguments as se_attn_fn. */
typedef void (*se_attn_bias_fn)(const float *q, const float *k, const float *v, size_t ld, float *out, size_t ldo,
                                size_t T, size_t HD, float scale, const float *bias, ptrdiff_t ldb, float *scratch);
void se_attn_head_bias_ref(const float *q, const float *k, const float *v, size_t ld, float *out, size_t ldo, size_t T,
                           size_t HD, float scale, const float *bias, ptrdiff_t ldb, float *scratch);
void se_attn_head_bias_avx512(const float *q, const float *k, const float *v, size_t ld, float *out, size_t ldo,
                              size_t T, size_t HD, float scale, const float *bias, ptrdiff_t ldb, float *scratch);

/* GEMM on bf16 weights with f32 activations and arithmetic (AVX-512F):
 * weights packed by se_pack_weights_bf16 (se_pack_bf16_size(N, K)
 * uint16s; layout in kernels_bf16.c). Same determinism contract as
 * se_gemm. */
size_t se_pack_bf16_size(size_t N, size_t K);
void se_pack_weights_bf16(const float *w, size_t N, size_t K, uint16_t *out);
void se_gemm_bf16_avx512(const float *x, size_t M, size_t K, size_t ldx, const uint16_t *pw, size_t N, const float *b,
                         float *y, size_t ldy, size_t n0, size_t n1);

/* bf16 GEMM with AVX512-BF16 dot products (kernels_bf16dp.c): weights
 * packed by pairs of k (se_pack_bf16dp_size(N, K) uint16s), activations
 * rounded to bf16 per product by se_rows_to_bf16 into (M, Kp) rows, Kp =
 * se_bf16dp_kpad(K); f32 accumulation. Same determinism contract as
 * se_gemm. */
uint16_t se_f32_to_bf16(float f); /* round to nearest even, NaN kept quiet */
size_t se_bf16dp_kpad(size_t K);
size_t se_pack_bf16dp_size(size_t N, size_t K);
void se_pack_weights_bf16dp(const float *w, size_t N, size_t K, uint16_t *out);
void se_rows_to_bf16(const float *x, size_t M, size_t K, size_t ldx, uint16_t *out);
void se_gemm_bf16dp_avx512(const uint16_t *xb, size_t M, size_t K, const uint16_t *pw, size_t N, const float *b, float *y,
                           size_t ldy, size_t n0, size_t n1);

/* Whether the CPU has AVX512-BF16 for se_gemm_bf16dp_avx512 (SE_KERNELS=ref
 * or avx2 say no; SE_BF16=widen forces the widening kernel). */
bool se_cpu_has_avx512bf16(void);

/* int8 GEMM (AVX512-VNNI): weights s8 per column (scale sw, column sums),
 * activations u8 per row (scale sx, zero point zx), exact int32
 * accumulation. Layout and formulas in kernels_int8.c. Kp = K rounded up
 * to a multiple of 4; packed weights take se_pack_int8_size(N, K) bytes,
 * sw and colsum N rounded up to 32 entries; xq is (M, Kp). */
size_t se_int8_kpad(size_t K);
size_t se_pack_int8_size(size_t N, size_t K);
void se_pack_weights_int8(const float *w, size_t N, size_t K, int8_t *out, float *sw, int32_t *colsum);
void se_quantize_rows_u8(const float *x, size_t M, size_t K, size_t ldx, uint8_t *xq, float *sx, int32_t *zx);
void se_gemm_int8_avx512(const uint8_t *xq, const float *sx, const int32_t *zx, size_t M, size_t K, const int8_t *pw,
                         const float *sw, const int32_t *colsum, size_t N, const float *b, float *y, size_t ldy, size_t n0,
                         size_t n1);

/* Whether the CPU has AVX512-VNNI for the int8 GEMM. */
bool se_cpu_has_vnni(void);

/* Whether the CPU can run the bf16-weight GEMM (AVX-512F; SE_KERNELS=ref
 * or avx2 say no). */
bool se_cpu_has_avx512(void);

/* y[i] += a * x[i] for i < n (a multiply then an add: the fast version
 * gives the same bits as the reference). */
typedef void (*se_axpy_fn)(float *y, float a, const float *x, size_t n);
void se_axpy_ref(float *y, float a, const float *x, size_t n);
void se_axpy_avx2(float *y, float a, const float *x, size_t n);

/* The dispatched kernels, best for this CPU: AVX-512 packed GEMM (+ AVX2
 * dot products), else AVX2, else the scalar reference. The environment
 * variable SE_KERNELS=ref|avx2 caps the choice (tests use it to compare).
 * Thread-safe; resolved once per process. */
typedef struct se_kernels {
    const char *name;
    se_gemm_fn gemm;
    se_dot_fn dot;
    se_attn_fn attn;
    se_attn_bias_fn attn_bias; /* attention with a per-(query, key) additive bias */
    void (*gelu)(float *x, size_t n); /* exact-erf GELU (AVX-512: A&S 7.1.26 erf, |err| <= 1.5e-7) */
    void (*layernorm)(float *x, size_t n, const float *g, const float *b, float eps);
    void (*add)(float *x, const float *y, size_t n); /* x[i] = y[i] + x[i]: the same bits in every set */
    bool packed; /* weights are packed for se_gemm_packed_avx512 */
} se_kernels;
const se_kernels *se_kernels_get(void);

/* In place: x = (x - mean) / sqrt(var + eps) * g + b over n values (two
 * passes: mean, then the mean of squared deviations). The reference sums
 * sequentially; the AVX-512 twin in 16 lanes (agrees to a few ulps). */
void se_layernorm(float *x, size_t n, const float *g, const float *b, float eps);
void se_layernorm_avx512(float *x, size_t n, const float *g, const float *b, float eps);

/* x[i] = y[i] + x[i] over n values (the residual connection; one addition
 * per element, so both versions give the same bits). */
void se_add(float *x, const float *y, size_t n);
void se_add_avx512(float *x, const float *y, size_t n);

/* In place activations over n values. */
void se_gelu(float *x, size_t n);      /* 0.5 x (1 + erf(x / sqrt 2)), libm erff: the reference */
void se_gelu_avx512(float *x, size_t n);
void se_gelu_tanh(float *x, size_t n); /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
void se_relu(float *x, size_t n);
void se_tanh(float *x, size_t n);
void se_sigmoid(float *x, size_t n);

/* In place softmax over n values. */
void se_softmax(float *x, size_t n);

#endif
