/*
 * train/train_kernels.h - the backward kernels of the trainable encoder
 * (train_kernels.c). Every fast kernel has a scalar reference twin
 * (*_ref) that tests/test_train_grad.c compares it against; the fast
 * GEMMs are the forward's dispatched GEMM (se_kernels_get) on transposed
 * operands.
 *
 * Matrices are row-major; a weight w is (N, K), torch Linear's layout.
 */
#ifndef SE_TRAIN_KERNELS_H
#define SE_TRAIN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "model_folder.h"
#include "threadpool.h"

/* The fast kernels take a thread pool (NULL: the calling thread): they
 * split the output's columns into blocks, each element computed by one
 * thread in the GEMM's fixed order, so the result is the same bits
 * whatever the number of threads. */

/* y (M, N) = x (M, K) w^T + b (b NULL: none): the forward Linear. */
void se_tk_linear(se_threadpool *tp, const float *x, size_t M, size_t K, const float *w, size_t N, const float *b,
                  float *y, size_t ldy);
void se_tk_linear_ref(const float *x, size_t M, size_t K, const float *w, size_t N, const float *b, float *y,
                      size_t ldy);

/* The scratch se_tk_dx and se_tk_dw need, in floats. */
size_t se_tk_dx_scratch(size_t M, size_t N, size_t K);
size_t se_tk_dw_scratch(size_t M, size_t N, size_t K);

/* dx (M, K) += dy (M, N; rows ldy apart) w (N, K): a Linear's input
 * gradient. scratch: se_tk_dx_scratch floats (the reference needs none). */
void se_tk_dx(se_threadpool *tp, const float *dy, size_t ldy, size_t M, size_t N, const float *w, size_t K, float *dx,
              float *scratch);
void se_tk_dx_ref(const float *dy, size_t ldy, size_t M, size_t N, const float *w, size_t K, float *dx);

/* dw (N, K) += dy^T (N, M) x (M, K), x rows ldx apart; db (N) += the
 * column sums of dy when db is not NULL: a Linear's weight and bias
 * gradients. scratch: se_tk_dw_scratch floats. */
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

/* LayerNorm of one row of n in place, keeping xhat (n) and its 1/std. */
void se_tk_layernorm_fwd(float *x, size_t n, const float *g, const float *b, float eps, float *xhat, float *rstd);

/* LayerNorm's backward for one row: dx (n) = the input gradient from the
 * output gradient dy, xhat and rstd of the forward; dg, db (n) += their
 * gradients. dx may alias dy. */
void se_tk_layernorm_bwd(const float *dy, const float *xhat, float rstd, const float *g, size_t n, float *dx, float *dg,
                         float *db);

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

/* Its backward: from dout (rows ldo apart) and the forward's p, adds dq,
 * dk, dv (rows ld apart, offset to the head) and, when drel is not NULL,
 * the bias's gradient by distance into drel[center + t - i]; dr the
 * forward's dropout (or NULL). dp: (T) scratch. */
void se_tk_attn_bwd(const float *q, const float *k, const float *v, size_t ld, size_t T, size_t HD, float scale,
                    const float *p, const float *dout, size_t ldo, float *dq, float *dk, float *dv, float *drel,
                    size_t center, const se_tk_drop *dr, float *dp);

#endif
