/*
 * model_blocks.c - the building blocks of post-LN transformer encoders
 * (Hugging Face BertModel and the models built like it: XLM-R, MPNet),
 * shared by the architectures in src/models/.
 *
 * Over T packed tokens of S sentences with no padding (each sentence
 * attends only to itself, which is exactly what the padding mask achieves
 * in a padded batch):
 *   embeddings:  x = LN_emb((word[id] + type[tt]) + pos[p + pos_offset])
 *                (RoBERTa: p counts only the tokens that are not padding)
 *   a layer:     q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv   (one fused GEMM)
 *                ctx[h] = softmax(q[h] k[h]^T / sqrt(HD) (+ rel[h][t - i])) v[h]
 *                         per sentence, per head (the relative bias: MPNet)
 *                x = LN1(ctx Wo^T + bo + x)
 *                x = LN2(act(x W1^T + b1) W2^T + b2 + x)
 * Every step computes each value with a fixed operation order whatever the
 * batch, so outputs are bit-identical under any batching.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "json.h"
#include "kernels.h"
#include "model_blocks.h"
#include "model_gemm.h"
#include "model_weights.h"

/* ==== config.json ==== */

se_status se_encoder_read_config(se_folder_cfg *c, const json_t *j, const char *f, int64_t type_vocab_default,
                                 double eps_default, se_error *err) {
    const char *act, *pet;
    int64_t v;
    double eps;
    se_status s = se_json_str_strict(j, f, "position_embedding_type", "absolute", &pet, err);
    if (s != SE_OK) return s;
    if (strcmp(pet, "absolute") != 0)
        return se_err(err, SE_E_UNSUPPORTED, "%s: position_embedding_type '%s' is not supported (absolute only)", f, pet);
    static const char *req[] = {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                "intermediate_size", "max_position_embeddings"};
    int32_t *dst[] = {&c->n_vocab, &c->n_embd, &c->n_layer, &c->n_head, &c->n_ff, &c->n_pos};
    int64_t hi[] = {1 << 24, SE_MAX_DIM, SE_MAX_LAYERS, 1024, 1 << 18, 1 << 20};
    for (int i = 0; i < 6; i++) {
        if (!json_object_get(j, req[i])) return se_err(err, SE_E_FORMAT, "%s: missing field '%s'", f, req[i]);
        if ((s = se_json_int_strict(j, f, req[i], 1, hi[i], 0, &v, err)) != SE_OK) return s;
        *dst[i] = (int32_t)v;
    }
    if ((s = se_json_int_strict(j, f, "type_vocab_size", 0, 1 << 16, type_vocab_default, &v, err)) != SE_OK) return s;
    c->n_type = (int32_t)v;
    if ((s = se_json_real_strict(j, f, "layer_norm_eps", 1e-30, 1.0, eps_default, &eps, err)) != SE_OK) return s;
    c->norm_eps = (float)eps;
    if ((s = se_json_str_strict(j, f, "hidden_act", "gelu", &act, err)) != SE_OK) return s;
    if (!se_act_parse(act, false, &c->act))
        return se_err(err, SE_E_UNSUPPORTED, "%s: hidden_act '%s' is not supported (gelu, gelu_new, relu)", f, act);
    snprintf(c->act_name, sizeof c->act_name, "%s", act);
    if (c->n_embd % c->n_head != 0)
        return se_err(err, SE_E_FORMAT, "%s: hidden_size %d is not divisible by num_attention_heads %d", f, c->n_embd,
                      c->n_head);
    return SE_OK;
}

/* ==== Binding ==== */

const se_layer_names se_bert_layer_names = {
    "attention.self.query.weight",   "attention.self.query.bias",      "attention.self.key.weight",
    "attention.self.key.bias",       "attention.self.value.weight",    "attention.self.value.bias",
    "attention.output.dense.weight", "attention.output.dense.bias",    "attention.output.LayerNorm.weight",
    "attention.output.LayerNorm.bias", "intermediate.dense.weight",    "intermediate.dense.bias",
    "output.dense.weight",           "output.dense.bias",              "output.LayerNorm.weight",
    "output.LayerNorm.bias",
};

se_status se_bind_embeddings(se_model *m, se_error *err) {
    const se_folder_cfg *c = &m->cfg;
    int64_t H = c->n_embd;
    se_status s;
    const se_st_file *f;
    const se_st_tensor *we = se_model_find(m, "embeddings.word_embeddings.weight", &f);
    if (we) m->wdtype = we->dtype == SE_ST_F16 ? SE_DTYPE_F16 : we->dtype == SE_ST_BF16 ? SE_DTYPE_BF16 : SE_DTYPE_F32;
    if ((s = se_model_bind(m, "embeddings.word_embeddings.weight", c->n_vocab, H, &m->word_emb, err)) != SE_OK) return s;
    if ((s = se_model_bind(m, "embeddings.position_embeddings.weight", c->n_pos, H, &m->pos_emb, err)) != SE_OK) return s;
    if (c->n_type > 0 && (s = se_model_bind(m, "embeddings.token_type_embeddings.weight", c->n_type, H, &m->type_emb, err)) != SE_OK)
        return s;
    if ((s = se_model_bind(m, "embeddings.LayerNorm.weight", H, 0, &m->emb_ln_g, err)) != SE_OK) return s;
    return se_model_bind(m, "embeddings.LayerNorm.bias", H, 0, &m->emb_ln_b, err);
}

/* Builds the fused (3H, H) query/key/value matrix and (3H) bias of a
 * layer, owned by the model: one GEMM instead of three. */
static se_status fuse_qkv(se_model *m, se_layer_w *w, size_t H, se_error *err) {
    float *fw = se_model_own(m, 3 * H * H), *fb = fw ? se_model_own(m, 3 * H) : NULL;
    if (!fw || !fb) return se_err(err, SE_E_NOMEM, "out of memory fusing query/key/value");
    const float *ws[3] = {w->q_w, w->k_w, w->v_w}, *bs[3] = {w->q_b, w->k_b, w->v_b};
    for (int i = 0; i < 3; i++) {
        memcpy(fw + (size_t)i * H * H, ws[i], H * H * sizeof *fw);
        memcpy(fb + (size_t)i * H, bs[i], H * sizeof *fb);
    }
    w->qkv_w = fw, w->qkv_b = fb;
    /* the separate matrices are not read again once the fused one is packed */
    se_status s = SE_OK;
    for (int i = 0; i < 3 && s == SE_OK; i++) s = se_model_add_spent(m, ws[i], H * H * sizeof(float), err);
    return s;
}

se_status se_bind_layers(se_model *m, const se_layer_names *nm, se_error *err) {
    const se_folder_cfg *c = &m->cfg;
    int64_t H = c->n_embd, FF = c->n_ff;
    se_status s;
    m->layers = se_calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return se_err(err, SE_E_NOMEM, "out of memory");
    for (int l = 0; l < c->n_layer; l++) {
        se_layer_w *w = &m->layers[l];
        struct {
            const char *suffix;
            int64_t d0, d1;
            const float **dst;
        } spec[] = {
            {nm->q_w, H, H, &w->q_w},     {nm->q_b, H, 0, &w->q_b},     {nm->k_w, H, H, &w->k_w},
            {nm->k_b, H, 0, &w->k_b},     {nm->v_w, H, H, &w->v_w},     {nm->v_b, H, 0, &w->v_b},
            {nm->o_w, H, H, &w->o_w},     {nm->o_b, H, 0, &w->o_b},     {nm->ln1_g, H, 0, &w->ln1_g},
            {nm->ln1_b, H, 0, &w->ln1_b}, {nm->ff1_w, FF, H, &w->ff1_w}, {nm->ff1_b, FF, 0, &w->ff1_b},
            {nm->ff2_w, H, FF, &w->ff2_w}, {nm->ff2_b, H, 0, &w->ff2_b}, {nm->ln2_g, H, 0, &w->ln2_g},
            {nm->ln2_b, H, 0, &w->ln2_b},
        };
        for (size_t i = 0; i < sizeof spec / sizeof *spec; i++) {
            char name[256];
            snprintf(name, sizeof name, "encoder.layer.%d.%s", l, spec[i].suffix);
            if ((s = se_model_bind(m, name, spec[i].d0, spec[i].d1, spec[i].dst, err)) != SE_OK) return s;
        }
        if ((s = fuse_qkv(m, w, (size_t)H, err)) != SE_OK) return s;
        if ((s = se_model_add_gemm(m, w->qkv_w, 3 * (size_t)H, (size_t)H, err)) != SE_OK ||
            (s = se_model_add_gemm(m, w->o_w, (size_t)H, (size_t)H, err)) != SE_OK ||
            (s = se_model_add_gemm(m, w->ff1_w, (size_t)FF, (size_t)H, err)) != SE_OK ||
            (s = se_model_add_gemm(m, w->ff2_w, (size_t)H, (size_t)FF, err)) != SE_OK)
            return s;
    }
    /* a checkpoint with more layers than config.json says is inconsistent */
    char extra[320];
    const se_st_file *f;
    snprintf(extra, sizeof extra, "encoder.layer.%d.%s", c->n_layer, nm->ff2_w);
    if (se_model_find(m, extra, &f))
        return se_err(err, SE_E_FORMAT, "%s: has tensor '%s' but config.json says num_hidden_layers = %d", f->path, extra,
                      c->n_layer);
    return SE_OK;
}

typedef struct row_job {
    const se_model *m;
    const se_layer_w *w;
    se_fwd_buf *buf;
    const int32_t *ids, *type_ids;
    const size_t *starts;
    size_t S, T;
    size_t pos_offset; /* position id of each sentence's first token */
    int stage;         /* which row-wise step */
    int32_t pad_idx;   /* >= 0: RoBERTa positions around this padding id (se_encoder_embed_roberta) */
    const se_rel_bias *rb; /* relative position bias of the attention, or NULL */
} row_job;

enum { ROWS_PER_TASK = 16 };

bool se_act_parse(const char *name, bool dense, se_act *out) {
    static const struct {
        const char *name;
        se_act act;
    } hf[] = {{"gelu", SE_ACT_GELU},           {"gelu_new", SE_ACT_GELU_TANH},
              {"gelu_pytorch_tanh", SE_ACT_GELU_TANH}, {"relu", SE_ACT_RELU}},
      st[] = {{"torch.nn.modules.activation.Tanh", SE_ACT_TANH},
              {"torch.nn.modules.linear.Identity", SE_ACT_IDENTITY},
              {"torch.nn.modules.activation.ReLU", SE_ACT_RELU},
              {"torch.nn.modules.activation.Sigmoid", SE_ACT_SIGMOID},
              {"torch.nn.modules.activation.GELU", SE_ACT_GELU}};
    if (dense) {
        for (size_t i = 0; i < sizeof st / sizeof *st; i++)
            if (strcmp(name, st[i].name) == 0) return *out = st[i].act, true;
    } else {
        for (size_t i = 0; i < sizeof hf / sizeof *hf; i++)
            if (strcmp(name, hf[i].name) == 0) return *out = hf[i].act, true;
    }
    return false;
}

void se_act_apply(se_act a, float *x, size_t n) {
    switch (a) {
    case SE_ACT_GELU: se_kernels_get()->gelu(x, n); break;
    case SE_ACT_GELU_TANH: se_gelu_tanh(x, n); break;
    case SE_ACT_RELU: se_relu(x, n); break;
    case SE_ACT_TANH: se_tanh(x, n); break;
    case SE_ACT_SIGMOID: se_sigmoid(x, n); break;
    case SE_ACT_IDENTITY: break;
    }
}

/* Row-wise steps over tokens [t0, t1): 0 embeddings, 1 x = LN1(tmp + x),
 * 2 activation, 3 x = LN2(tmp + x). */
static void row_task(void *arg, size_t task, int thread) {
    (void)thread;
    const row_job *j = arg;
    const se_model *m = j->m;
    size_t H = (size_t)m->cfg.n_embd, FF = (size_t)m->cfg.n_ff;
    size_t t0 = task * ROWS_PER_TASK, t1 = t0 + ROWS_PER_TASK < j->T ? t0 + ROWS_PER_TASK : j->T;
    se_fwd_buf *b = j->buf;
    if (j->stage == 0) { /* embeddings: (word + type) + pos, then LN */
        size_t s = 0;
        while (j->starts[s + 1] <= t0) s++;
        size_t n_pad = 0; /* padding ids before t in its sentence (RoBERTa positions) */
        if (j->pad_idx >= 0)
            for (size_t u = j->starts[s]; u < t0; u++) n_pad += j->ids[u] == j->pad_idx;
        for (size_t t = t0; t < t1; t++) {
            if (j->starts[s + 1] <= t) {
                while (j->starts[s + 1] <= t) s++;
                n_pad = 0;
                if (j->pad_idx >= 0)
                    for (size_t u = j->starts[s]; u < t; u++) n_pad += j->ids[u] == j->pad_idx;
            }
            size_t pos = t - j->starts[s] + j->pos_offset;
            if (j->pad_idx >= 0) {
                if (j->ids[t] == j->pad_idx) pos = (size_t)j->pad_idx, n_pad++;
                else pos -= n_pad;
            }
            const float *we = m->word_emb + (size_t)j->ids[t] * H;
            const float *te = m->type_emb && j->type_ids ? m->type_emb + (size_t)j->type_ids[t] * H : NULL;
            const float *pe = m->pos_emb + pos * H;
            float *x = b->x + t * H;
            for (size_t i = 0; i < H; i++) x[i] = (we[i] + (te ? te[i] : 0.0f)) + pe[i];
            se_kernels_get()->layernorm(x, H, m->emb_ln_g, m->emb_ln_b, m->cfg.norm_eps);
        }
    } else if (j->stage == 1) { /* x = LN1(tmp + x) */
        for (size_t t = t0; t < t1; t++) {
            float *x = b->x + t * H, *y = b->tmp + t * H;
            se_kernels_get()->add(x, y, H);
            se_kernels_get()->layernorm(x, H, j->w->ln1_g, j->w->ln1_b, m->cfg.norm_eps);
        }
    } else if (j->stage == 2) { /* ff = act(ff) */
        se_act_apply(m->cfg.act, b->ff + t0 * FF, (t1 - t0) * FF);
    } else { /* x = LN2(tmp + x) */
        for (size_t t = t0; t < t1; t++) {
            float *x = b->x + t * H, *y = b->tmp + t * H;
            se_kernels_get()->add(x, y, H);
            se_kernels_get()->layernorm(x, H, j->w->ln2_g, j->w->ln2_b, m->cfg.norm_eps);
        }
    }
}

/* Runs one row-wise step over every token, ROWS_PER_TASK tokens a task. */
static void run_rows(se_threadpool *tp, row_job *j, int stage) {
    j->stage = stage;
    se_threadpool_run(tp, (j->T + ROWS_PER_TASK - 1) / ROWS_PER_TASK, row_task, j);
}

/* Attention for one (sentence, head) pair (the dispatched kernel). */
static void attn_task(void *arg, size_t task, int thread) {
    const row_job *j = arg;
    const se_model *m = j->m;
    size_t NH = (size_t)m->cfg.n_head, H = (size_t)m->cfg.n_embd, HD = H / NH;
    size_t s = task / NH, h = task % NH;
    size_t a = j->starts[s], T = j->starts[s + 1] - a;
    se_fwd_buf *b = j->buf;
    const float *q = b->qkv + a * 3 * H + h * HD; /* rows of the fused (T, 3H) q|k|v */
    if (j->rb) /* row i of the bias starts at t - i = -i: rel[h ld + center - i] */
        se_kernels_get()->attn_bias(q, q + H, q + 2 * H, 3 * H, b->ctx + a * H + h * HD, H, T, HD, 1.0f / sqrtf((float)HD),
                                    j->rb->rel + h * j->rb->ld + j->rb->center, -1, b->att + (size_t)thread * b->att_stride);
    else
        se_kernels_get()->attn(q, q + H, q + 2 * H, 3 * H, b->ctx + a * H + h * HD, H, T, HD, 1.0f / sqrtf((float)HD),
                               false, b->att + (size_t)thread * b->att_stride);
}

/* ==== The forward pass ==== */

se_status se_encoder_check(const se_model *m, const int32_t *ids, const int32_t *type_ids, const size_t *starts, size_t S,
                           size_t pos_offset, se_error *err) {
    const se_folder_cfg *c = &m->cfg;
    size_t T = starts[S];
    for (size_t t = 0; t < T; t++) {
        if (ids[t] < 0 || ids[t] >= c->n_vocab)
            return se_err(err, SE_E_RANGE, "token id %d at position %zu is outside the vocabulary (%d)", ids[t], t, c->n_vocab);
        if (m->type_emb && (type_ids[t] < 0 || type_ids[t] >= c->n_type))
            return se_err(err, SE_E_RANGE, "token type id %d at position %zu is outside type_vocab_size %d", type_ids[t], t,
                          c->n_type);
    }
    for (size_t s = 0; s < S; s++) {
        size_t n = starts[s + 1] - starts[s];
        if (n + pos_offset <= (size_t)c->n_pos) continue;
        if (!pos_offset)
            return se_err(err, SE_E_RANGE, "sentence %zu has %zu tokens, more than max_position_embeddings %d", s, n, c->n_pos);
        return se_err(err, SE_E_RANGE, "sentence %zu has %zu tokens, more than the %zu that max_position_embeddings %d allows (positions start at %zu)",
                      s, n, (size_t)c->n_pos - pos_offset, c->n_pos, pos_offset);
    }
    return SE_OK;
}

void se_encoder_embed(const se_model *m, se_fwd_buf *buf, se_threadpool *tp, const int32_t *ids, const int32_t *type_ids,
                      const size_t *starts, size_t S, size_t pos_offset) {
    row_job j = {m, NULL, buf, ids, type_ids, starts, S, starts[S], pos_offset, 0, -1, NULL};
    if (j.T) run_rows(tp, &j, 0);
}

void se_encoder_embed_roberta(const se_model *m, se_fwd_buf *buf, se_threadpool *tp, const int32_t *ids,
                              const int32_t *type_ids, const size_t *starts, size_t S, int32_t padding_idx) {
    row_job j = {m, NULL, buf, ids, type_ids, starts, S, starts[S], (size_t)padding_idx + 1, 0, padding_idx, NULL};
    if (j.T) run_rows(tp, &j, 0);
}

void se_encoder_layer(const se_model *m, const se_layer_w *w, se_fwd_buf *buf, se_threadpool *tp, const size_t *starts,
                      size_t S) {
    se_encoder_layer_rel(m, w, buf, tp, starts, S, NULL);
}

void se_encoder_layer_rel(const se_model *m, const se_layer_w *w, se_fwd_buf *buf, se_threadpool *tp, const size_t *starts,
                          size_t S, const se_rel_bias *rb) {
    const se_folder_cfg *c = &m->cfg;
    size_t T = starts[S], H = (size_t)c->n_embd, FF = (size_t)c->n_ff;
    if (T == 0) return;
    row_job j = {m, w, buf, NULL, NULL, starts, S, T, 0, 0, -1, rb};
    se_par_gemm(tp, m, buf, buf->x, T, H, w->qkv_w, w->qkv_b, buf->qkv, 3 * H); /* (T, 3H) */
    se_threadpool_run(tp, S * (size_t)c->n_head, attn_task, &j);
    se_par_gemm(tp, m, buf, buf->ctx, T, H, w->o_w, w->o_b, buf->tmp, H);
    run_rows(tp, &j, 1);
    se_par_gemm(tp, m, buf, buf->x, T, H, w->ff1_w, w->ff1_b, buf->ff, FF);
    run_rows(tp, &j, 2);
    se_par_gemm(tp, m, buf, buf->ff, T, FF, w->ff2_w, w->ff2_b, buf->tmp, H);
    run_rows(tp, &j, 3);
}
