/*
 * train/train_forward.c - the trainable encoder's forward pass: embeddings
 * and LayerNorm, post-LN BERT layers (masked self-attention per sentence:
 * each sentence attends over its own tokens only, no padding), pooling,
 * Dense and Normalize, keeping on a tape what the backward reads.
 *
 * The arithmetic follows the library's forward (model_blocks.c, pool.c,
 * encode.c): the same formulas in float32, so the embeddings agree with
 * se_encode to rounding (~1e-6).
 */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "model_blocks.h"
#include "models/models.h"
#include "threadpool.h"
#include "train/train_kernels.h"
#include "train/train_tape.h"

/* The widest stage or pooling width of the model. */
static size_t widest(const se_tmodel *m) {
    size_t w = m->cfg.pool_dim > m->cfg.H ? m->cfg.pool_dim : m->cfg.H;
    for (int i = 0; i < m->n_stages; i++)
        if (m->stages[i].kind == SE_STAGE_DENSE) {
            if (m->stages[i].n_in > w) w = m->stages[i].n_in;
            if (m->stages[i].n_out > w) w = m->stages[i].n_out;
        }
    return w;
}

/* Carves the tape's buffers for batch b out of its arenas (grown as
 * needed), with carve == NULL only counting: returns the floats needed
 * and, in *n_idx, the size_t entries. */
static size_t layout(const se_tmodel *m, se_ttape *tp, const se_tbatch *b, float *base, size_t *idx_base,
                     size_t *n_idx) {
    const se_tcfg *c = &m->cfg;
    size_t T = b->starts[b->S], S = b->S, H = c->H, FF = c->FF, NH = c->NH, W = widest(m);
    size_t att = 0, tmax = 0;
    for (size_t s = 0; s < S; s++) {
        size_t n = b->starts[s + 1] - b->starts[s];
        att += NH * n * n;
        tmax = n > tmax ? n : tmax;
    }
    size_t off = 0;
#define CARVE(ptr, n)                                                                                                  \
    do {                                                                                                               \
        if (base) *(ptr) = base + off;                                                                                 \
        off += (n);                                                                                                    \
    } while (0)
    float *dummy = NULL;
    CARVE(tp ? &tp->emb_xhat : &dummy, T * H);
    CARVE(tp ? &tp->emb_rs : &dummy, T);
    for (size_t l = 0; l < c->L; l++) {
        se_tlayer_tape *lt = tp ? &tp->layers[l] : NULL;
        CARVE(lt ? &lt->x_in : &dummy, T * H);
        CARVE(lt ? &lt->qkv : &dummy, T * 3 * H);
        CARVE(lt ? &lt->probs : &dummy, att);
        bool keep_d = b->train && c->attn_dropout > 0.0f; /* the dropped weights, for the backward */
        CARVE(lt ? &lt->probs_d : &dummy, keep_d ? att : 0);
        if (lt && !keep_d) lt->probs_d = NULL;
        CARVE(lt ? &lt->ctx : &dummy, T * H);
        CARVE(lt ? &lt->ln1_xhat : &dummy, T * H);
        CARVE(lt ? &lt->ln1_rs : &dummy, T);
        CARVE(lt ? &lt->h1 : &dummy, T * H);
        CARVE(lt ? &lt->ff_pre : &dummy, T * FF);
        CARVE(lt ? &lt->ff_act : &dummy, T * FF);
        CARVE(lt ? &lt->ln2_xhat : &dummy, T * H);
        CARVE(lt ? &lt->ln2_rs : &dummy, T);
    }
    size_t nrel = c->rel_bias ? NH * (2 * c->P - 1) : 0;
    CARVE(tp ? &tp->rel : &dummy, nrel);
    CARVE(tp ? &tp->d_rel : &dummy, nrel);
    CARVE(tp ? &tp->x_out : &dummy, T * H);
    CARVE(tp ? &tp->pooled : &dummy, S * c->pool_dim);
    for (int i = 0, w = (int)c->pool_dim; i < m->n_stages; i++) { /* w: the stage's input width */
        size_t o = m->stages[i].kind == SE_STAGE_DENSE ? m->stages[i].n_out : (size_t)w;
        CARVE(tp ? &tp->st_in[i] : &dummy, S * (size_t)w);
        CARVE(tp ? &tp->st_pre[i] : &dummy, S * o);
        CARVE(tp ? &tp->st_out[i] : &dummy, S * o);
        w = (int)o;
    }
    CARVE(tp ? &tp->d_x : &dummy, T * H);
    CARVE(tp ? &tp->d_h : &dummy, T * H);
    CARVE(tp ? &tp->d_qkv : &dummy, T * 3 * H);
    CARVE(tp ? &tp->d_ctx : &dummy, T * H);
    CARVE(tp ? &tp->d_ff : &dummy, T * FF);
    size_t nthr = m->pool ? (size_t)se_threadpool_n_threads(m->pool) : 1;
    CARVE(tp ? &tp->d_p : &dummy, nthr * se_tk_attn_scratch(tmax, H / NH));
    if (tp) tp->d_p_ld = se_tk_attn_scratch(tmax, H / NH), tp->n_threads = nthr;
    CARVE(tp ? &tp->d_st_a : &dummy, S * W);
    CARVE(tp ? &tp->d_st_b : &dummy, S * W);
    /* the GEMMs' packed panels: inner sizes up to the tokens (a weight
     * gradient), H, FF or a stage's width; outputs up to H, FF or a width */
    size_t kmax = T > W ? T : W, nmax = FF > W ? FF : W;
    kmax = kmax > FF ? kmax : FF, kmax = kmax > H ? kmax : H, nmax = nmax > H ? nmax : H;
    size_t g = se_tk_gemm_scratch((int)nthr, kmax, nmax);
    CARVE(tp ? &tp->gemm_scratch : &dummy, g);
    CARVE(tp ? &tp->ln_scratch : &dummy, se_tk_ln_bwd_scratch(T, H));
#undef CARVE
    (void)dummy;
    *n_idx = (S + 1) + S + S * H + T + (S + 1);
    if (idx_base && tp) {
        tp->starts = idx_base;
        tp->first = idx_base + S + 1;
        tp->argmax = idx_base + 2 * S + 1;
        tp->pos = tp->argmax + S * H;
        tp->att_off = tp->pos + T;
    }
    return off;
}

/* Checks batch b against the model: ids, types, lengths, pooling starts. */
static se_status check_batch(const se_tmodel *m, const se_tbatch *b, se_error *err) {
    const se_tcfg *c = &m->cfg;
    if (!b || !b->ids || !b->starts) return se_err(err, SE_E_INVALID, "se_ttape_forward: NULL batch");
    if (b->starts[0] != 0) return se_err(err, SE_E_INVALID, "se_ttape_forward: starts[0] is %zu, not 0", b->starts[0]);
    for (size_t s = 0; s < b->S; s++) {
        size_t a = b->starts[s], e = b->starts[s + 1];
        if (e < a) return se_err(err, SE_E_INVALID, "sentence %zu: starts go backwards (%zu after %zu)", s, e, a);
        size_t off = c->pad_id >= 0 ? (size_t)c->pad_id + 1 : 0; /* RoBERTa's first position */
        if (e - a + off > c->P)
            return se_err(err, SE_E_RANGE, "sentence %zu: %zu tokens, more than the %zu positions", s, e - a,
                          c->P - off);
        if (b->first && b->first[s] > e - a)
            return se_err(err, SE_E_RANGE, "sentence %zu: pooling start %zu past its %zu tokens", s, b->first[s], e - a);
        for (size_t t = a; t < e; t++) {
            if (b->ids[t] < 0 || (size_t)b->ids[t] >= c->V)
                return se_err(err, SE_E_RANGE, "sentence %zu, position %zu: token id %d outside the vocabulary of %zu",
                              s, t - a, (int)b->ids[t], c->V);
            int32_t ty = b->type_ids ? b->type_ids[t] : 0;
            if (ty < 0 || (ty > 0 && (size_t)ty >= c->n_type))
                return se_err(err, SE_E_RANGE, "sentence %zu, position %zu: token type %d outside the %zu types", s,
                              t - a, (int)ty, c->n_type);
        }
    }
    return SE_OK;
}

/* Pools sentence s of x_out into out (pool_dim), in sentence-transformers'
 * mode order, noting max pooling's tokens in argmax (H, absolute). */
static void pool_fwd(const se_tmodel *m, const float *x, size_t a, size_t e, size_t first, float *out, size_t *argmax) {
    size_t H = m->cfg.H, T = e - a, cnt = T > first ? T - first : 0;
    uint32_t modes = m->cfg.pooling;
    if (modes & SE_POOL_CLS) {
        for (size_t i = 0; i < H; i++) out[i] = T ? x[a * H + i] : 0.0f;
        out += H;
    }
    if (modes & SE_POOL_MAX) {
        for (size_t i = 0; i < H; i++) out[i] = -1e9f, argmax[i] = SIZE_MAX;
        for (size_t t = a + first; t < e; t++)
            for (size_t i = 0; i < H; i++)
                if (x[t * H + i] > out[i]) out[i] = x[t * H + i], argmax[i] = t;
        out += H;
    }
    float n = (float)cnt, d = n > 1e-9f ? n : 1e-9f, sq = sqrtf(d);
    if (modes & (SE_POOL_MEAN | SE_POOL_MEAN_SQRT_LEN)) {
        float *sum = out;
        for (size_t i = 0; i < H; i++) sum[i] = 0.0f;
        for (size_t t = a + first; t < e; t++)
            for (size_t i = 0; i < H; i++) sum[i] += x[t * H + i];
        if ((modes & SE_POOL_MEAN) && (modes & SE_POOL_MEAN_SQRT_LEN))
            for (size_t i = 0; i < H; i++) out[H + i] = sum[i] / sq;
        if (modes & SE_POOL_MEAN)
            for (size_t i = 0; i < H; i++) out[i] = sum[i] / d;
        else
            for (size_t i = 0; i < H; i++) out[i] = sum[i] / sq;
        out += (modes & SE_POOL_MEAN) && (modes & SE_POOL_MEAN_SQRT_LEN) ? 2 * H : H;
    }
    if (modes & SE_POOL_WEIGHTED_MEAN) {
        float wsum = 0.0f;
        for (size_t i = 0; i < H; i++) out[i] = 0.0f;
        for (size_t t = first; t < T; t++) {
            float w = (float)(t + 1);
            wsum += w;
            for (size_t i = 0; i < H; i++) out[i] += w * x[(a + t) * H + i];
        }
        float wd = wsum > 1e-9f ? wsum : 1e-9f;
        for (size_t i = 0; i < H; i++) out[i] /= wd;
        out += H;
    }
    if (modes & SE_POOL_LAST_TOKEN)
        for (size_t i = 0; i < H; i++) out[i] = cnt ? x[(e - 1) * H + i] : 0.0f;
}

se_tk_drop *se_ttape_drop(const se_ttape *tp, const se_tmodel *m, uint64_t site, bool attn, se_tk_drop *dr) {
    float p = attn ? m->cfg.attn_dropout : m->cfg.hidden_dropout;
    if (!tp->drop || !(p > 0.0f)) return NULL;
    *dr = (se_tk_drop){.key = tp->key, .site = site, .base = 0, .thr = (uint32_t)((double)p * 16777216.0),
                       .inv = 1.0f / (1.0f - p)};
    return dr;
}

/* The attention of one layer's forward (split as se_ttape_attn_run says). */
typedef struct attn_job {
    const se_tmodel *m;
    se_ttape *tp;
    se_tlayer_tape *lt;
    size_t l;
} attn_job;

/* Head h of sentence s: its attention weights and context. */
static void attn_one(const void *arg, size_t s, size_t h, int thread) {
    const attn_job *j = arg;
    const se_tcfg *c = &j->m->cfg;
    size_t H = c->H, HD = H / c->NH;
    float scale = 1.0f / sqrtf((float)HD);
    const float *rel = c->rel_bias ? j->tp->rel + h * (2 * c->P - 1) : NULL;
    se_tk_drop drb;
    se_tk_drop *dr = se_ttape_drop(j->tp, j->m, 1 + 3 * j->l, true, &drb);
    size_t a = j->tp->starts[s], n = j->tp->starts[s + 1] - a, off = j->tp->att_off[s] + h * n * n;
    const float *q = j->lt->qkv + a * 3 * H + h * HD;
    if (dr) dr->base = off;
    se_tk_attn_fwd_fast(q, q + H, q + 2 * H, 3 * H, n, HD, scale, rel, c->P - 1, dr, j->lt->probs + off,
                        dr && j->lt->probs_d ? j->lt->probs_d + off : NULL, j->lt->ctx + a * H + h * HD, H,
                        j->tp->d_p + (size_t)thread * j->tp->d_p_ld);
}

/* The pool job of se_ttape_attn_run. */
typedef struct attn_run_job {
    const se_tmodel *m;
    const se_ttape *tp;
    se_ttape_attn_fn one;
    const void *job;
} attn_run_job;

/* Task i: every head of sentence i, or head i of every sentence. */
static void attn_task(void *arg, size_t i, int thread) {
    const attn_run_job *r = arg;
    if (r->m->cfg.rel_bias)
        for (size_t s = 0; s < r->tp->S; s++) r->one(r->job, s, i, thread);
    else
        for (size_t h = 0; h < r->m->cfg.NH; h++) r->one(r->job, i, h, thread);
}

/* The embeddings' pool job: the model, the tape, the rows' destination. */
typedef struct emb_job {
    const se_tmodel *m;
    const se_ttape *tp;
    float *x;
} emb_job;

/* Tokens [a, b): x row = LN((word + type) + pos), each element added in
 * that order (so the bits of one thread). */
static void emb_rows(void *arg, size_t a, size_t b) {
    const emb_job *j = arg;
    const se_tmodel *m = j->m;
    const se_ttape *tp = j->tp;
    size_t H = m->cfg.H;
    const float *we = m->p[m->word].w, *pe = m->p[m->pos].w, *te = m->type >= 0 ? m->p[m->type].w : NULL;
    for (size_t t = a; t < b; t++) {
        float *restrict r = j->x + t * H;
        const float *restrict wr = we + (size_t)tp->ids[t] * H, *restrict pr = pe + tp->pos[t] * H;
        for (size_t i = 0; i < H; i++) r[i] = wr[i];
        if (te) {
            const float *restrict tr = te + (size_t)tp->types[t] * H;
            for (size_t i = 0; i < H; i++) r[i] += tr[i];
        }
        for (size_t i = 0; i < H; i++) r[i] += pr[i];
        se_tk_layernorm_fwd(r, H, m->p[m->emb_ln_g].w, m->p[m->emb_ln_b].w, m->cfg.eps, tp->emb_xhat + t * H,
                            tp->emb_rs + t);
    }
}

void se_ttape_attn_run(const se_tmodel *m, const se_ttape *tp, se_ttape_attn_fn one, const void *job) {
    attn_run_job r = {m, tp, one, job};
    se_threadpool_run(m->pool, m->cfg.rel_bias ? m->cfg.NH : tp->S, attn_task, &r);
}

/* One encoder layer l from its input (T, H), already in lt->x_in (kept
 * for the backward), into x (the next layer's x_in, or the tape's x_out),
 * recording into lt. */
static void layer_fwd(const se_tmodel *m, size_t l, se_ttape *tp, float *x) {
    const se_tcfg *c = &m->cfg;
    size_t T = tp->T, H = c->H, FF = c->FF;
    se_tlayer_tape *lt = &tp->layers[l];
    const int *ix = m->layer[l];
    const float *xin = lt->x_in;
#define W(k) (m->p[ix[k]].w)
    /* q | k | v as one product of 3 H outputs (the builder lays their weights side by side) */
    se_tk_linear(m->pool, xin, T, H, W(SE_TL_Q_W), 3 * H, W(SE_TL_Q_B), lt->qkv, 3 * H, tp->gemm_scratch);
    attn_job aj = {m, tp, lt, l};
    se_ttape_attn_run(m, tp, attn_one, &aj);
    /* h1 = LN1(dropout(ctx Wo^T + bo) + x_in) */
    float *h1 = lt->h1;
    se_tk_drop dr;
    se_tk_linear(m->pool, lt->ctx, T, H, W(SE_TL_O_W), H, W(SE_TL_O_B), h1, H, tp->gemm_scratch);
    se_tk_add_layernorm_rows(m->pool, h1, xin, T, H, W(SE_TL_LN1_G), W(SE_TL_LN1_B), c->eps, lt->ln1_xhat, lt->ln1_rs,
                             se_ttape_drop(tp, m, 2 + 3 * l, false, &dr));
    se_tk_linear(m->pool, h1, T, H, W(SE_TL_FF1_W), FF, W(SE_TL_FF1_B), lt->ff_pre, FF, tp->gemm_scratch);
    lt->ff_d = se_tk_act_fwd_d(m->pool, c->act, lt->ff_pre, lt->ff_act, T * FF);
    se_tk_linear(m->pool, lt->ff_act, T, FF, W(SE_TL_FF2_W), H, W(SE_TL_FF2_B), x, H, tp->gemm_scratch);
    /* x = LN2(dropout(o2) + h1) */
    se_tk_add_layernorm_rows(m->pool, x, h1, T, H, W(SE_TL_LN2_G), W(SE_TL_LN2_B), c->eps, lt->ln2_xhat, lt->ln2_rs,
                             se_ttape_drop(tp, m, 3 + 3 * l, false, &dr));
#undef W
}

se_status se_ttape_forward(const se_tmodel *m, const se_tbatch *b, se_ttape **tape, float *emb, se_error *err) {
    if (!m || !tape || !emb) return se_err(err, SE_E_INVALID, "se_ttape_forward: NULL argument");
    se_status s = check_batch(m, b, err);
    if (s != SE_OK) return s;
    const se_tcfg *c = &m->cfg;
    for (size_t l = 0; l < c->L; l++) /* the layout the fused q | k | v products rely on */
        if (!se_tmodel_qkv_packed(m, l))
            return se_err(err, SE_E_INVALID, "se_ttape_forward: layer %zu's query, key and value weights are not "
                          "side by side", l);
    se_ttape *tp = *tape;
    if (!tp) {
        tp = se_calloc(1, sizeof *tp);
        if (!tp) return se_err(err, SE_E_NOMEM, "train: out of memory for the tape");
        tp->layers = se_calloc(c->L ? c->L : 1, sizeof *tp->layers);
        size_t ns = m->n_stages ? (size_t)m->n_stages : 1;
        tp->st_in = se_calloc(ns, sizeof *tp->st_in);
        tp->st_pre = se_calloc(ns, sizeof *tp->st_pre);
        tp->st_out = se_calloc(ns, sizeof *tp->st_out);
        tp->n_layers = c->L, tp->n_stages = m->n_stages;
        *tape = tp;
        if (!tp->layers || !tp->st_in || !tp->st_pre || !tp->st_out)
            return se_err(err, SE_E_NOMEM, "train: out of memory for the tape");
    }
    if (tp->n_layers != c->L || tp->n_stages != m->n_stages)
        return se_err(err, SE_E_INVALID, "se_ttape_forward: the tape was made for a model of %zu layers and %d modules, "
                      "this one has %zu and %d", tp->n_layers, tp->n_stages, c->L, m->n_stages);
    size_t T = b->starts[b->S], S = b->S, H = c->H, n_idx;
    size_t nf = layout(m, NULL, b, NULL, NULL, &n_idx);
    if (nf > tp->cap_f) {
        se_free(tp->arena);
        tp->arena = se_malloc(nf * sizeof(float));
        tp->cap_f = tp->arena ? nf : 0;
        if (!tp->arena) return se_err(err, SE_E_NOMEM, "train: out of memory for a tape of %zu floats", nf);
    }
    if (n_idx > tp->cap_i || !tp->idx_arena) {
        se_free(tp->idx_arena);
        tp->idx_arena = se_malloc(n_idx * sizeof(size_t));
        tp->cap_i = tp->idx_arena ? n_idx : 0;
        if (!tp->idx_arena) return se_err(err, SE_E_NOMEM, "train: out of memory for the tape's indices");
    }
    se_free(tp->ids);
    tp->ids = se_malloc((T ? T : 1) * 2 * sizeof(int32_t));
    if (!tp->ids) return se_err(err, SE_E_NOMEM, "train: out of memory for the tape's ids");
    tp->types = tp->ids + T;
    tp->T = T, tp->S = S, tp->drop = b->train, tp->key = b->dropout_key;
    layout(m, tp, b, tp->arena, tp->idx_arena, &n_idx);
    memcpy(tp->starts, b->starts, (S + 1) * sizeof(size_t));
    tp->att_off[0] = 0;
    for (size_t i = 0; i < S; i++) {
        size_t n = b->starts[i + 1] - b->starts[i];
        tp->att_off[i + 1] = tp->att_off[i] + c->NH * n * n;
    }
    for (size_t i = 0; i < S; i++) tp->first[i] = b->first ? b->first[i] : 0;
    for (size_t t = 0; t < T; t++) tp->ids[t] = b->ids[t], tp->types[t] = b->type_ids ? b->type_ids[t] : 0;

    /* position ids: the index, or RoBERTa's (pad_id + 1 + the index among
     * the tokens that are not pad_id; pad_id for a pad_id token) */
    for (size_t si = 0; si < S; si++) {
        size_t n_pad = 0;
        for (size_t t = tp->starts[si]; t < tp->starts[si + 1]; t++) {
            size_t i = t - tp->starts[si];
            if (c->pad_id < 0) tp->pos[t] = i;
            else if (tp->ids[t] == c->pad_id) tp->pos[t] = (size_t)c->pad_id, n_pad++;
            else tp->pos[t] = (size_t)c->pad_id + 1 + i - n_pad;
        }
    }
    /* embeddings: LN((word + type) + pos), into the first layer's input,
     * the tokens split over the pool */
    float *x = c->L ? tp->layers[0].x_in : tp->x_out;
    emb_job ej = {m, tp, x};
    se_tk_parallel(m->pool, T, 64, emb_rows, &ej);
    if (c->rel_bias) /* the bias of every head and distance d = key - query, at rel[h][P - 1 + d] */
        for (size_t h = 0; h < c->NH; h++)
            for (size_t i = 0; i < 2 * c->P - 1; i++)
                tp->rel[h * (2 * c->P - 1) + i] =
                    m->p[m->rel].w[(size_t)se_mpnet_rel_bucket((int64_t)i - (int64_t)(c->P - 1)) * c->NH + h];
    se_tk_drop dr;
    se_tk_drop_apply(m->pool, se_ttape_drop(tp, m, 0, false, &dr), x, T * H);
    for (size_t l = 0; l < c->L; l++) layer_fwd(m, l, tp, l + 1 < c->L ? tp->layers[l + 1].x_in : tp->x_out);
    x = tp->x_out;
    for (size_t si = 0; si < S; si++)
        pool_fwd(m, x, tp->starts[si], tp->starts[si + 1], tp->first[si], tp->pooled + si * c->pool_dim,
                 tp->argmax + si * H);
    const float *cur = tp->pooled;
    size_t width = c->pool_dim;
    for (int i = 0; i < m->n_stages; i++) {
        const se_tstage *st = &m->stages[i];
        memcpy(tp->st_in[i], cur, S * width * sizeof(float));
        if (st->kind == SE_STAGE_DENSE) {
            se_tk_linear(m->pool, cur, S, st->n_in, m->p[st->w_idx].w, st->n_out, st->b_idx >= 0 ? m->p[st->b_idx].w : NULL,
                         tp->st_pre[i], st->n_out, tp->gemm_scratch);
            memcpy(tp->st_out[i], tp->st_pre[i], S * st->n_out * sizeof(float));
            se_act_apply(st->act, tp->st_out[i], S * st->n_out);
            width = st->n_out;
        } else { /* Normalize: x / max(||x||, 1e-12), F.normalize */
            for (size_t si = 0; si < S; si++) {
                const float *r = cur + si * width;
                double ss = 0.0;
                for (size_t k = 0; k < width; k++) ss += (double)r[k] * r[k];
                float nrm = (float)sqrt(ss);
                nrm = nrm > 1e-12f ? nrm : 1e-12f;
                tp->st_pre[i][si] = nrm;
                for (size_t k = 0; k < width; k++) tp->st_out[i][si * width + k] = r[k] / nrm;
            }
        }
        cur = tp->st_out[i];
    }
    memcpy(emb, cur, S * width * sizeof(float));
    return SE_OK;
}

void se_ttape_free(se_ttape *tp) {
    if (!tp) return;
    se_free(tp->arena);
    se_free(tp->idx_arena);
    se_free(tp->ids);
    se_free(tp->layers);
    se_free(tp->st_in);
    se_free(tp->st_pre);
    se_free(tp->st_out);
    se_free(tp);
}
