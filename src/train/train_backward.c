/*
 * train/train_backward.c - the backward pass of the trainable encoder:
 * from the gradient of a scalar w.r.t. the sentence embeddings, through
 * Normalize, Dense and its activation, pooling, every post-LN layer
 * (LN2, FFN, LN1, attention per sentence and head) and the embeddings'
 * LayerNorm into the word, position and token type tables. Gradients are
 * added into se_tparam.g (zero them with se_tmodel_zero_grad).
 */
#include <math.h>
#include <string.h>

#include "error.h"
#include "models/models.h"
#include "threadpool.h"
#include "train/train_kernels.h"
#include "train/train_tape.h"

/* The gradient of pooling: d_pool (S, pool_dim) into dx (T, H), zeroed
 * first. */
static void pool_bwd(const se_tmodel *m, const se_ttape *tp, const float *d_pool, float *dx) {
    size_t H = m->cfg.H;
    uint32_t modes = m->cfg.pooling;
    memset(dx, 0, tp->T * H * sizeof *dx);
    for (size_t s = 0; s < tp->S; s++) {
        const float *d = d_pool + s * m->cfg.pool_dim;
        size_t a = tp->starts[s], e = tp->starts[s + 1], T = e - a, first = tp->first[s];
        size_t cnt = T > first ? T - first : 0;
        if (modes & SE_POOL_CLS) {
            if (T)
                for (size_t i = 0; i < H; i++) dx[a * H + i] += d[i];
            d += H;
        }
        if (modes & SE_POOL_MAX) {
            const size_t *am = tp->argmax + s * H;
            for (size_t i = 0; i < H; i++)
                if (am[i] != SIZE_MAX) dx[am[i] * H + i] += d[i];
            d += H;
        }
        float n = (float)cnt, dn = n > 1e-9f ? n : 1e-9f, sq = sqrtf(dn);
        if (modes & SE_POOL_MEAN) {
            for (size_t t = a + first; t < e; t++)
                for (size_t i = 0; i < H; i++) dx[t * H + i] += d[i] / dn;
            d += H;
        }
        if (modes & SE_POOL_MEAN_SQRT_LEN) {
            for (size_t t = a + first; t < e; t++)
                for (size_t i = 0; i < H; i++) dx[t * H + i] += d[i] / sq;
            d += H;
        }
        if (modes & SE_POOL_WEIGHTED_MEAN) {
            float wsum = 0.0f;
            for (size_t t = first; t < T; t++) wsum += (float)(t + 1);
            float wd = wsum > 1e-9f ? wsum : 1e-9f;
            for (size_t t = first; t < T; t++)
                for (size_t i = 0; i < H; i++) dx[(a + t) * H + i] += d[i] * (float)(t + 1) / wd;
            d += H;
        }
        if ((modes & SE_POOL_LAST_TOKEN) && cnt)
            for (size_t i = 0; i < H; i++) dx[(e - 1) * H + i] += d[i];
    }
}

/* The attention of one layer's backward (split as se_ttape_attn_run
 * says). */
typedef struct attn_job {
    const se_tmodel *m;
    se_ttape *tp;
    const se_tlayer_tape *lt;
    size_t l;
} attn_job;

/* Head h of sentence s: adds into d_qkv's head columns and the head's row
 * of the relative bias gradient (d_p: the thread's row of scratch). */
static void attn_one(const void *arg, size_t s, size_t h, int thread) {
    const attn_job *j = arg;
    const se_tcfg *c = &j->m->cfg;
    size_t H = c->H, HD = H / c->NH;
    float scale = 1.0f / sqrtf((float)HD);
    float *drel = c->rel_bias ? j->tp->d_rel + h * (2 * c->P - 1) : NULL, *dp = j->tp->d_p + (size_t)thread * j->tp->d_p_ld;
    se_tk_drop drb;
    se_tk_drop *dr = se_ttape_drop(j->tp, j->m, 1 + 3 * j->l, true, &drb);
    size_t a = j->tp->starts[s], n = j->tp->starts[s + 1] - a, off = j->tp->att_off[s] + h * n * n;
    const float *q = j->lt->qkv + a * 3 * H + h * HD;
    float *dq = j->tp->d_qkv + a * 3 * H + h * HD;
    if (dr) dr->base = off;
    se_tk_attn_bwd_fast(q, q + H, q + 2 * H, 3 * H, n, HD, scale, j->lt->probs + off,
                        dr && j->lt->probs_d ? j->lt->probs_d + off : NULL, j->tp->d_ctx + a * H + h * HD, H, dq, dq + H,
                        dq + 2 * H, drel, c->P - 1, dr, dp);
}

/* The embedding tables' gradients: the tape, dx (T, H), the word,
 * position and type gradients (gt NULL: no types). */
typedef struct emb_bwd_job {
    const se_ttape *tp;
    const float *dx;
    float *gw, *gp, *gt;
    size_t T, H;
} emb_bwd_job;

/* Columns [c0, c1) of every token's row of dx into its word, position and
 * type rows, token after token. */
static void emb_bwd_cols(void *arg, size_t c0, size_t c1) {
    const emb_bwd_job *j = arg;
    size_t H = j->H;
    for (size_t t = 0; t < j->T; t++) {
        const float *restrict r = j->dx + t * H;
        float *restrict a = j->gw + (size_t)j->tp->ids[t] * H, *restrict b = j->gp + j->tp->pos[t] * H;
        for (size_t i = c0; i < c1; i++) a[i] += r[i];
        for (size_t i = c0; i < c1; i++) b[i] += r[i];
        if (j->gt) {
            float *restrict g = j->gt + (size_t)j->tp->types[t] * H;
            for (size_t i = c0; i < c1; i++) g[i] += r[i];
        }
    }
}

/* Layer l's backward: dx (T, H) is the gradient of its output on entry
 * and of its input on return. */
static void layer_bwd(se_tmodel *m, size_t l, se_ttape *tp, float *dx) {
    const se_tcfg *c = &m->cfg;
    size_t T = tp->T, H = c->H, FF = c->FF;
    se_tlayer_tape *lt = &tp->layers[l];
    const int *ix = m->layer[l];
    float *scr = tp->gemm_scratch, *dh = tp->d_h, *dff = tp->d_ff, *dctx = tp->d_ctx, *dqkv = tp->d_qkv;
#define W(k) (m->p[ix[k]].w)
#define G(k) (m->p[ix[k]].g)
    se_tk_drop dr;
    /* LN2: dz2 = d(dropout(o2) + h1); dh1 starts as dz2 (the residual), dx
     * becomes the gradient of o2 (dz2 times dropout's factors) */
    se_tk_layernorm_bwd_rows(m->pool, dx, lt->ln2_xhat, lt->ln2_rs, W(SE_TL_LN2_G), T, H, G(SE_TL_LN2_G),
                             G(SE_TL_LN2_B), tp->ln_scratch, dh, se_ttape_drop(tp, m, 3 + 3 * l, false, &dr));
    /* o2 = ff_act W2^T + b2 */
    se_tk_dw(m->pool, dx, H, T, H, lt->ff_act, FF, FF, G(SE_TL_FF2_W), G(SE_TL_FF2_B), scr);
    if (lt->ff_d) /* dff = (dx W2) act'(pre), the factor the forward kept, taken as the tiles are stored */
        se_tk_gemm_mul(m->pool, T, FF, H, dx, H, 1, W(SE_TL_FF2_W), FF, 1, lt->ff_pre, dff, FF, scr);
    else {
        se_tk_gemm(m->pool, T, FF, H, dx, H, 1, W(SE_TL_FF2_W), FF, 1, NULL, false, dff, FF, scr); /* dff = dx W2 */
        se_tk_act_bwd_mt(m->pool, c->act, lt->ff_pre, lt->ff_act, dff, dff, T * FF);
    }
    /* ff_pre = h1 W1^T + b1; dh1 = dz2 + dff W1 */
    se_tk_dw(m->pool, dff, FF, T, FF, lt->h1, H, H, G(SE_TL_FF1_W), G(SE_TL_FF1_B), scr);
    se_tk_dx(m->pool, dff, FF, T, FF, W(SE_TL_FF1_W), H, dh, scr);
    /* LN1: dz1 = d(dropout(attn_out) + x_in); dx_in starts as dz1 (the
     * residual), dh becomes the gradient of attn_out */
    se_tk_layernorm_bwd_rows(m->pool, dh, lt->ln1_xhat, lt->ln1_rs, W(SE_TL_LN1_G), T, H, G(SE_TL_LN1_G),
                             G(SE_TL_LN1_B), tp->ln_scratch, dx, se_ttape_drop(tp, m, 2 + 3 * l, false, &dr));
    /* attn_out = ctx Wo^T + bo */
    se_tk_dw(m->pool, dh, H, T, H, lt->ctx, H, H, G(SE_TL_O_W), G(SE_TL_O_B), scr);
    se_tk_gemm(m->pool, T, H, H, dh, H, 1, W(SE_TL_O_W), H, 1, NULL, false, dctx, H, scr); /* dctx = dh Wo */
    /* attention per sentence and head: each writes its rows and columns of dqkv */
    attn_job aj = {m, tp, lt, l};
    se_ttape_attn_run(m, tp, attn_one, &aj);
    /* q, k, v = x_in W^T + b; dx_in = dz1 + sum dq W. The key bias gets no
     * gradient: it adds q_i . b_k to every score of query i, which the
     * softmax cancels, so its gradient is exactly zero (autograd's is
     * rounding noise, ~1e-17 of the others, which would make Adam move
     * it) */
    /* the three as one product of 3 H, their bias sums into the three bias
     * gradients (se_ttape_forward checked that weights and biases lie side
     * by side), the key's then set back to its zero */
    se_tk_dw(m->pool, dqkv, 3 * H, T, 3 * H, lt->x_in, H, H, G(SE_TL_Q_W), G(SE_TL_Q_B), scr);
    memset(G(SE_TL_K_B), 0, H * sizeof(float));
    se_tk_dx(m->pool, dqkv, 3 * H, T, 3 * H, W(SE_TL_Q_W), H, dx, scr);
#undef W
#undef G
}

se_status se_ttape_backward(se_tmodel *m, se_ttape *tp, const float *d_emb, se_error *err) {
    if (!m || !tp || !d_emb) return se_err(err, SE_E_INVALID, "se_ttape_backward: NULL argument");
    if (tp->n_layers != m->cfg.L) return se_err(err, SE_E_INVALID, "se_ttape_backward: the tape is another model's");
    if ((m->pool ? (size_t)se_threadpool_n_threads(m->pool) : 1) > tp->n_threads)
        return se_err(err, SE_E_INVALID, "se_ttape_backward: the model's threads changed since the forward pass");
    const se_tcfg *c = &m->cfg;
    size_t S = tp->S, H = c->H, T = tp->T;
    float *scr = tp->gemm_scratch;
    /* the stages, last first: d flows between d_st_a and d_st_b */
    size_t width = c->pool_dim, in_w[64];
    if (m->n_stages > 64) return se_err(err, SE_E_UNSUPPORTED, "se_ttape_backward: %d modules after pooling (64 at most)",
                                        m->n_stages);
    for (int i = 0; i < m->n_stages; i++) {
        in_w[i] = width;
        if (m->stages[i].kind == SE_STAGE_DENSE) width = m->stages[i].n_out;
    }
    float *d = tp->d_st_a, *d2 = tp->d_st_b;
    memcpy(d, d_emb, S * width * sizeof *d);
    for (int i = m->n_stages - 1; i >= 0; i--) {
        const se_tstage *st = &m->stages[i];
        if (st->kind == SE_STAGE_DENSE) {
            se_tk_act_bwd(st->act, tp->st_pre[i], tp->st_out[i], d, d, S * st->n_out);
            se_tk_dw(m->pool, d, st->n_out, S, st->n_out, tp->st_in[i], st->n_in, st->n_in, m->p[st->w_idx].g,
                     st->b_idx >= 0 ? m->p[st->b_idx].g : NULL, scr);
            memset(d2, 0, S * st->n_in * sizeof *d2);
            se_tk_dx(m->pool, d, st->n_out, S, st->n_out, m->p[st->w_idx].w, st->n_in, d2, scr);
        } else { /* y = x / n: dx = (dy - y (y . dy)) / n */
            size_t w = in_w[i];
            for (size_t s = 0; s < S; s++) {
                const float *y = tp->st_out[i] + s * w, *dy = d + s * w;
                float nrm = tp->st_pre[i][s];
                double dot = 0.0;
                for (size_t k = 0; k < w; k++) dot += (double)y[k] * dy[k];
                /* below the clamp the divisor is the constant 1e-12 */
                bool clamped = !(nrm > 1e-12f);
                for (size_t k = 0; k < w; k++)
                    d2[s * w + k] = clamped ? dy[k] / nrm : (float)((dy[k] - y[k] * dot) / nrm);
            }
        }
        float *tmp = d;
        d = d2, d2 = tmp;
    }
    float *dx = tp->d_x;
    pool_bwd(m, tp, d, dx);
    size_t nrel = 2 * c->P - 1;
    if (c->rel_bias) memset(tp->d_rel, 0, c->NH * nrel * sizeof(float));
    for (size_t l = c->L; l-- > 0;) layer_bwd(m, l, tp, dx);
    if (c->rel_bias) /* every layer's bias gradient by distance, into its bucket */
        for (size_t h = 0; h < c->NH; h++)
            for (size_t i = 0; i < nrel; i++)
                m->p[m->rel].g[(size_t)se_mpnet_rel_bucket((int64_t)i - (int64_t)(c->P - 1)) * c->NH + h] +=
                    tp->d_rel[h * nrel + i];
    /* the embeddings' dropout and LN, then the tables */
    se_tk_drop dr;
    se_tk_drop_apply(m->pool, se_ttape_drop(tp, m, 0, false, &dr), dx, T * H);
    float *gw = m->p[m->word].g, *gp = m->p[m->pos].g, *gt = m->type >= 0 ? m->p[m->type].g : NULL;
    se_tk_layernorm_bwd_rows(m->pool, dx, tp->emb_xhat, tp->emb_rs, m->p[m->emb_ln_g].w, T, H, m->p[m->emb_ln_g].g,
                             m->p[m->emb_ln_b].g, tp->ln_scratch, NULL, NULL);
    /* into the tables' gradient rows, token after token (two tokens may
     * share a row): the columns split over the pool, so each element's
     * additions keep the one-thread order */
    emb_bwd_job ej = {tp, dx, gw, gp, gt, T, H};
    se_tk_parallel(m->pool, H, 64, emb_bwd_cols, &ej);
    return SE_OK;
}
