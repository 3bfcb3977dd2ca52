/*
 * train/train_kernels.h - the kernels of the trainable encoder
 * (train_kernels.c, train_gemm.c, train_attn_avx2.c, train_act_avx2.c,
 * train_adamw_avx2.c).
 * Every fast kernel has a scalar reference twin (*_ref) that
 * tests/test_train_kernels.c (and test_train_grad.c) compares it against;
 * the GEMMs run on se_tk_gemm (strided operands, packed AVX2 tiles).
 *
 * Matrices are row-major; a weight w is (N, K), torch Linear's layout.
 */
#ifndef SE_TRAIN_KERNELS_H
#define SE_TRAIN_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model_folder.h"
#include "threadpool.h"

/* The fast kernels take a thread pool (NULL: the calling thread) and a
 * scratch of se_tk_gemm_scratch(the pool's threads, K, N) floats, K and N
 * at least the GEMM's inner size and output columns: they split the
 * output into blocks, each element computed by one thread in the GEMM's
 * fixed order, so the result is the same bits whatever the number of
 * threads. */

/* Floats of scratch a GEMM of inner size K and N output columns needs on
 * n_threads threads (B's packed panels, each thread's A block and partial
 * sums); enough for any smaller K and N. */
size_t se_tk_gemm_scratch(int n_threads, size_t K, size_t N);

/* C (M, N) = A (M, K) B (K, N) + bias (NULL: none), or C += A B when acc
 * (bias unused), C rows ldc apart; A(m, k) = a[m ars + k acs], B(k, n) =
 * b[k brs + n bcs]. Every element is a chain of fused multiply-adds over
 * k in order from 0, then stored or added: the twin gives the same bits.
 * (train_gemm.c; AVX2 when the dispatched kernels are not the reference.) */
void se_tk_gemm(se_threadpool *tp, size_t M, size_t N, size_t K, const float *a, size_t ars, size_t acs, const float *b,
                size_t brs, size_t bcs, const float *bias, bool acc, float *c, size_t ldc, float *scratch);
void se_tk_gemm_ref(size_t M, size_t N, size_t K, const float *a, size_t ars, size_t acs, const float *b, size_t brs,
                    size_t bcs, const float *bias, bool acc, float *c, size_t ldc);

/* C = (A B) times f's elements, f laid out as C (rows ldc apart; not C
 * itself): each sum as se_tk_gemm stores it, then multiplied, as the twin
 * does in two passes, so the same bits (the GELU backward's factor taken
 * as the product's tiles are stored). */
void se_tk_gemm_mul(se_threadpool *tp, size_t M, size_t N, size_t K, const float *a, size_t ars, size_t acs,
                    const float *b, size_t brs, size_t bcs, const float *f, float *c, size_t ldc, float *scratch);
void se_tk_gemm_mul_ref(size_t M, size_t N, size_t K, const float *a, size_t ars, size_t acs, const float *b, size_t brs,
                        size_t bcs, const float *f, float *c, size_t ldc);

/* se_tk_gemm that also adds each row of A's sum into rs (M): rs[m] +=
 * A(m, k) for k in order, the bits of se_tk_rowsum_ref. An A^T (ars 1,
 * a weight gradient's dy^T) is summed as it is packed (or, when the
 * product runs transposed, as it is packed as the B of C^T), so the bias
 * gradient costs no pass of its own over dy. */
void se_tk_gemm_rowsum(se_threadpool *tp, size_t M, size_t N, size_t K, const float *a, size_t ars, size_t acs,
                       const float *b, size_t brs, size_t bcs, const float *bias, bool acc, float *c, size_t ldc,
                       float *rs, float *scratch);
void se_tk_rowsum_ref(size_t M, size_t K, const float *a, size_t ars, size_t acs, float *rs);

/* y (M, N) = x (M, K) w^T + b (b NULL: none): the forward Linear. */
void se_tk_linear(se_threadpool *tp, const float *x, size_t M, size_t K, const float *w, size_t N, const float *b,
                  float *y, size_t ldy, float *scratch);
void se_tk_linear_ref(const float *x, size_t M, size_t K, const float *w, size_t N, const float *b, float *y,
                      size_t ldy);

/* dx (M, K) += dy (M, N; rows ldy apart) w (N, K): a Linear's input
 * gradient (the reference needs no scratch). */
void se_tk_dx(se_threadpool *tp, const float *dy, size_t ldy, size_t M, size_t N, const float *w, size_t K, float *dx,
              float *scratch);
void se_tk_dx_ref(const float *dy, size_t ldy, size_t M, size_t N, const float *w, size_t K, float *dx);

/* dw (N, K) += dy^T (N, M) x (M, K), x rows ldx apart; db (N) += the
 * column sums of dy (each over the rows in order) when db is not NULL: a
 * Linear's weight and bias gradients (the sums taken as the GEMM packs
 * dy^T: se_tk_gemm_rowsum). */
void se_tk_dw(se_threadpool *tp, const float *dy, size_t ldy, size_t M, size_t N, const float *x, size_t ldx, size_t K,
              float *dw, float *db, float *scratch);
void se_tk_dw_ref(const float *dy, size_t ldy, size_t M, size_t N, const float *x, size_t ldx, size_t K, float *dw,
                  float *db);

/* Dropout's random draw: 24 uniform bits for element e of site s under
 * key (splitmix64's finaliser of key ^ (s << 48) ^ e, e < 2^48). Sites:
 * 0 the embeddings, then per layer l: 1 + 3l the attention weights,
 * 2 + 3l the attention output, 3 + 3l the FFN output. Elements: a hidden
 * state's t * H + i (t in the packed batch); an attention weight's index
 * in the tape's probs (sentence after sentence, head after head, row
 * after row). */
static inline uint32_t se_tk_drop_u24(uint64_t key, uint64_t site, uint64_t e) {
    uint64_t z = (key ^ (site << 48) ^ e) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint32_t)(z >> 40);
}

/* A dropout site of one forward pass: elements with a draw below thr are
 * zeroed, the others scaled by inv (1 / (1 - p)). */
typedef struct se_tk_drop {
    uint64_t key, site, base; /* base: the first element's index */
    uint32_t thr;
    float inv;
} se_tk_drop;

/* The factor of element base + e: 0 or inv. */
static inline float se_tk_drop_at(const se_tk_drop *d, uint64_t e) {
    return se_tk_drop_u24(d->key, d->site, d->base + e) < d->thr ? 0.0f : d->inv;
}

/* dst[i] = src[i] times the factor of element e0 + i, i < n (dst may be
 * src): se_tk_drop_at's bits, eight at a time (train_drop_avx2.c; call it
 * only when the CPU has AVX2). */
void se_tk_drop_mul_avx2(const se_tk_drop *d, uint64_t e0, const float *src, float *dst, size_t n);

/* LayerNorm of one row of n in place, keeping xhat (n) and its 1/std. */
void se_tk_layernorm_fwd(float *x, size_t n, const float *g, const float *b, float eps, float *xhat, float *rstd);

/* LayerNorm's backward for one row: dx (n) = the input gradient from the
 * output gradient dy, xhat and rstd of the forward; dg, db (n) += their
 * gradients. dx may alias dy. */
void se_tk_layernorm_bwd(const float *dy, const float *xhat, float rstd, const float *g, size_t n, float *dx, float *dg,
                         float *db);

/* Their fast twins, eight lanes at a time (train_norm_avx2.c; the sums in
 * eight partial float sums: equal to rounding). Call them only when the
 * CPU has AVX2 and FMA. */
void se_tk_layernorm_fwd_avx2(float *x, size_t n, const float *g, const float *b, float eps, float *xhat, float *rstd);
void se_tk_layernorm_bwd_avx2(const float *dy, const float *xhat, float rstd, const float *g, size_t n, float *dx,
                              float *dg, float *db);

/* An activation's backward over n values: dx[i] = dy[i] * act'(pre[i]),
 * pre the input of the forward (out its output, used by tanh and
 * sigmoid). dx may alias dy. */
void se_tk_act_bwd(se_act a, const float *pre, const float *out, const float *dy, float *dx, size_t n);

/* One attention head of one sentence of T tokens, forward: p (T, T) the
 * softmax over t of (q_i . k_t) * scale + rel[center + t - i] (rel NULL:
 * no bias; MPNet's relative position bias of this head, by distance),
 * out (rows ldo apart) = dropout(p) v (dr NULL: no dropout; dr->base the
 * index of p[0][0]). q, k, v rows ld apart, offset to the head. p keeps
 * the weights before dropout. */
void se_tk_attn_fwd(const float *q, const float *k, const float *v, size_t ld, size_t T, size_t HD, float scale,
                    const float *rel, size_t center, const se_tk_drop *dr, float *p, float *out, size_t ldo);

/* Its backward: from dout (rows ldo apart) and the forward's p, writes
 * dq, dk, dv (T rows of HD, ld apart, offset to the head: the head's whole
 * gradient, so no clearing before) and, when drel is not NULL, adds the
 * bias's gradient by distance into drel[center + t - i]; dr the
 * forward's dropout (or NULL). dp: (T) scratch. */
void se_tk_attn_bwd(const float *q, const float *k, const float *v, size_t ld, size_t T, size_t HD, float scale,
                    const float *p, const float *dout, size_t ldo, float *dq, float *dk, float *dv, float *drel,
                    size_t center, const se_tk_drop *dr, float *dp);

/* Runs fn(arg, a, b) over [0, n) in chunks of chunk, split over the pool
 * (each chunk's work must not depend on the others'). */
void se_tk_parallel(se_threadpool *tp, size_t n, size_t chunk, void (*fn)(void *arg, size_t a, size_t b), void *arg);

/* The element-wise steps of a pass on the pool, each element computed as
 * the one-thread loop computes it (the same bits for every thread count):
 * dropout's factors (dr NULL: none); x = LayerNorm(res + dropout(x)) over
 * T rows of H (res, dr NULL: none; element t H + i's factor; xhat and
 * rstd kept, se_tk_layernorm_fwd). */
void se_tk_drop_apply(se_threadpool *tp, const se_tk_drop *dr, float *x, size_t n);
void se_tk_add_layernorm_rows(se_threadpool *tp, float *x, const float *res, size_t T, size_t H, const float *g,
                              const float *b, float eps, float *xhat, float *rstd, const se_tk_drop *dr);

/* An activation on the pool, element-wise (the same bits for every thread
 * count): x = act(pre) (pre NULL: in place; se_act_apply); dx = dy
 * act'(pre) (se_tk_act_bwd). The fast GELU takes se_tk_act_fwd_d. */
void se_tk_act_fwd(se_threadpool *tp, se_act a, const float *pre, float *x, size_t n);
void se_tk_act_bwd_mt(se_threadpool *tp, se_act a, const float *pre, const float *out, const float *dy, float *dx,
                      size_t n);
/* The forward for a tape: x = act(pre), and where that is the fast GELU,
 * pre becomes act'(pre) (se_tk_gelu_fwd_d_avx2; returns true) so the
 * backward is dy times pre (se_tk_gemm_mul); otherwise pre is kept
 * (false). */
bool se_tk_act_fwd_d(se_threadpool *tp, se_act a, float *pre, float *x, size_t n);

/* LayerNorm's backward over T rows of H in place in dx, on the pool: rows
 * in blocks of 32, each block's dg and db summed in scratch
 * (se_tk_ln_bwd_scratch floats), then the blocks added into dg and db in
 * order: the same bits for every thread count. Then, row by row while it
 * is in cache, the input gradient is copied into copy (NULL: not; the
 * residual's share) and dx gets dropout's factors (dr NULL: none; the
 * gradient into the dropped branch). */
size_t se_tk_ln_bwd_scratch(size_t T, size_t H);
void se_tk_layernorm_bwd_rows(se_threadpool *tp, float *dx, const float *xhat, const float *rstd, const float *g,
                              size_t T, size_t H, float *dg, float *db, float *scratch, float *copy,
                              const se_tk_drop *dr);

/* GELU (exact-erf form) in place, and its backward dx = dy gelu'(pre),
 * with A&S 7.1.26's erf and Cephes' exp (train_act_avx2.c), within ~3e-7
 * of libm's: the scalar definitions of the two passes. dx may alias dy. */
void se_tk_gelu_fwd_ref(float *x, size_t n);
void se_tk_gelu_bwd_ref(const float *pre, const float *dy, float *dx, size_t n);
/* The forward that also keeps the backward's factor: out = gelu(x) and
 * pre_d = gelu'(x), from x in pre_d (the same bits as the two above: dy
 * times it is se_tk_gelu_bwd's dx). */
void se_tk_gelu_fwd_d_ref(float *pre_d, float *out, size_t n);
void se_tk_gelu_fwd_d_avx2(float *pre_d, float *out, size_t n);

/* exp in place over n values (Cephes' expf polynomial, inputs clamped to
 * [-87.3, 88]; within 2 ulp of libm's expf): 8 lanes and the scalar twin
 * give the same bits. */
void se_tk_exp_ref(float *x, size_t n);
void se_tk_exp_avx2(float *x, size_t n);

/* AdamW's per-step constants (train_optim.c). */
typedef struct se_tk_adamw_consts {
    float coef;          /* the clipping factor (1: none) */
    bool decay_on;       /* weight decay for this tensor */
    float decay;         /* 1 - lr * weight_decay */
    float b1, omb1, b2, omb2; /* beta1, 1 - beta1, beta2, 1 - beta2 */
    float bc2_sqrt, eps, neg_step; /* sqrt(1 - beta2^t), eps, -lr / (1 - beta1^t) */
} se_tk_adamw_consts;

/* AdamW over n elements: g *= coef (then g set to 0: used), w *= decay (decay_on),
 * m = m b1 + g (1 - b1), v = v b2 + (1 - b2) g g, w += neg_step m /
 * (sqrt(v) / bc2_sqrt + eps), in float in torch's order; the AVX2 twin
 * (train_adamw_avx2.c) gives the same bits. */
void se_tk_adamw_update_ref(float *w, float *g, float *m, float *v, size_t n, const se_tk_adamw_consts *c);
void se_tk_adamw_update_avx2(float *w, float *g, float *m, float *v, size_t n, const se_tk_adamw_consts *c);

/* The sum of squares of x (n), in double: element i into partial sum
 * i mod 16 in order, the 16 then added in order; the AVX2 twin
 * (train_adamw_avx2.c) gives the same bits. */
double se_tk_sumsq_ref(const float *x, size_t n);
double se_tk_sumsq_avx2(const float *x, size_t n);

/* The fast twins of se_tk_attn_fwd and se_tk_attn_bwd (the references),
 * with the same arguments and results: where the CPU has AVX2 and FMA and
 * HD is a multiple of 8, the register-tiled kernels of train_attn_avx2.c
 * (se_tk_attn_*_avx2); otherwise the products q k^T, dropout(p) v,
 * dout v^T, ds k and ds^T q as se_tk_gemm on the calling thread and the
 * softmax and its backward as the references do them (se_tk_attn_*_gemm,
 * exp se_tk_exp_avx2 where the CPU has AVX2). scratch:
 * se_tk_attn_scratch(T, HD) floats (the thread's own), enough for either.
 * They agree with the references to rounding (the sums run in another
 * order). With dropout, the forward can keep the dropped weights (p times
 * the factors) in pd_out and the backward read them from pd_in, so the
 * factors are drawn once (NULL: drawn again in scratch). */
size_t se_tk_attn_scratch(size_t T, size_t HD);
typedef void se_tk_attn_fwd_fn(const float *q, const float *k, const float *v, size_t ld, size_t T, size_t HD,
                               float scale, const float *rel, size_t center, const se_tk_drop *dr, float *p,
                               float *pd_out, float *out, size_t ldo, float *scratch);
typedef void se_tk_attn_bwd_fn(const float *q, const float *k, const float *v, size_t ld, size_t T, size_t HD,
                               float scale, const float *p, const float *pd_in, const float *dout, size_t ldo,
                               float *dq, float *dk, float *dv, float *drel, size_t center, const se_tk_drop *dr,
                               float *scratch);
se_tk_attn_fwd_fn se_tk_attn_fwd_fast;
se_tk_attn_bwd_fn se_tk_attn_bwd_fast;

/* The two ways se_tk_attn_*_fast can take, callable apart so the tests
 * check both against the references on any kernel set: the GEMM path
 * (any CPU, any HD) and the AVX2 kernels (train_attn_avx2.c: HD a
 * multiple of 8, the CPU with AVX2 and FMA; se_tk_attn_avx2_scratch(T,
 * HD) floats of scratch, at most se_tk_attn_scratch's). */
se_tk_attn_fwd_fn se_tk_attn_fwd_gemm, se_tk_attn_fwd_avx2;
se_tk_attn_bwd_fn se_tk_attn_bwd_gemm, se_tk_attn_bwd_avx2;
size_t se_tk_attn_avx2_scratch(size_t T, size_t HD);

#endif
