/*
 * train/train_model.c - the trainable model: f32 parameters and their
 * gradients for a BERT encoder and its sentence-transformers modules
 * (pooling, Dense, Normalize), made from a folder the library loads or
 * from BERT's random init.
 *
 * XLM-R is BERT with RoBERTa's positions (se_tcfg.pad_id) and one token
 * type; MPNet has those positions (padding_idx 1), no token types, its own
 * layer names and a relative position bias (se_tcfg.rel_bias). The parameters are listed in a fixed order (embeddings, each layer's
 * SE_TL_* slots, the Dense modules), each under its Hugging Face name, so
 * a checkpoint writer and the gradient checks name them as PyTorch does.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "json.h"
#include "model.h"
#include "model_weights.h"
#include "threadpool.h"
#include "models/models.h"
#include "train/train.h"

/* The names of an encoder layer's slots, after "encoder.layer.N.":
 * BertLayer's (XLM-R's too), and MPNetLayer's. */
static const char *const mpnet_names[SE_TL_N] = {
    "attention.attn.q.weight", "attention.attn.q.bias", "attention.attn.k.weight", "attention.attn.k.bias",
    "attention.attn.v.weight", "attention.attn.v.bias", "attention.attn.o.weight", "attention.attn.o.bias",
    "attention.LayerNorm.weight", "attention.LayerNorm.bias", "intermediate.dense.weight", "intermediate.dense.bias",
    "output.dense.weight", "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"};
static const char *const layer_names[SE_TL_N] = {
    "attention.self.query.weight", "attention.self.query.bias", "attention.self.key.weight",
    "attention.self.key.bias",     "attention.self.value.weight", "attention.self.value.bias",
    "attention.output.dense.weight", "attention.output.dense.bias", "attention.output.LayerNorm.weight",
    "attention.output.LayerNorm.bias", "intermediate.dense.weight", "intermediate.dense.bias",
    "output.dense.weight", "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"};

/* A parameter list being built: names and shapes first, the arenas after. */
typedef struct plist {
    se_tparam *p;
    size_t n, cap;
} plist;

/* Appends a parameter of rows x cols; returns its index or -1 on OOM. */
static int plist_add(plist *l, const char *name, size_t rows, size_t cols, bool no_decay) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        se_tparam *p = se_realloc(l->p, cap * sizeof *p);
        if (!p) return -1;
        l->p = p, l->cap = cap;
    }
    se_tparam *t = &l->p[l->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows, t->cols = cols, t->n = rows * cols, t->no_decay = no_decay;
    return (int)l->n++;
}

/* Lays out every parameter of a model of shape c with the given stages
 * (Dense modules named by their index among the folder's modules, first
 * module index stage_mod0), then allocates the arenas (values zeroed). */
static se_status build(se_tmodel *m, const se_tcfg *c, const se_stage *st, int n_st, int stage_mod0, se_error *err) {
    plist l = {0};
    bool ok = true;
    m->cfg = *c;
    m->word = plist_add(&l, "embeddings.word_embeddings.weight", c->V, c->H, false);
    m->pos = plist_add(&l, "embeddings.position_embeddings.weight", c->P, c->H, false);
    m->type = c->n_type ? plist_add(&l, "embeddings.token_type_embeddings.weight", c->n_type, c->H, false) : -1;
    m->emb_ln_g = plist_add(&l, "embeddings.LayerNorm.weight", c->H, 1, true);
    m->emb_ln_b = plist_add(&l, "embeddings.LayerNorm.bias", c->H, 1, true);
    /* no weight decay on the bias table, as Hugging Face's Trainer decides it: "bias" is in its name */
    m->rel = c->rel_bias ? plist_add(&l, "encoder.relative_attention_bias.weight", SE_T_BUCKETS, c->NH, true) : -1;
    ok = m->word >= 0 && m->pos >= 0 && (m->type >= 0 || !c->n_type) && m->emb_ln_g >= 0 && m->emb_ln_b >= 0 &&
         (m->rel >= 0 || !c->rel_bias);
    m->layer = se_calloc(c->L ? c->L : 1, sizeof *m->layer);
    m->stages = se_calloc(n_st ? (size_t)n_st : 1, sizeof *m->stages);
    ok = ok && m->layer && m->stages;
    /* each layer's query, key and value weights side by side, then their
     * biases, so the three projections run as one GEMM of 3 H outputs */
    static const int order[SE_TL_N] = {SE_TL_Q_W,   SE_TL_K_W,   SE_TL_V_W,   SE_TL_Q_B,    SE_TL_K_B,    SE_TL_V_B,
                                       SE_TL_O_W,   SE_TL_O_B,   SE_TL_LN1_G, SE_TL_LN1_B,  SE_TL_FF1_W,  SE_TL_FF1_B,
                                       SE_TL_FF2_W, SE_TL_FF2_B, SE_TL_LN2_G, SE_TL_LN2_B};
    for (size_t i = 0; ok && i < c->L; i++)
        for (int o = 0, k; ok && o < SE_TL_N && (k = order[o], 1); o++) {
            char nm[96];
            snprintf(nm, sizeof nm, "encoder.layer.%zu.%s", i, c->rel_bias ? mpnet_names[k] : layer_names[k]);
            bool is_w = k == SE_TL_Q_W || k == SE_TL_K_W || k == SE_TL_V_W || k == SE_TL_O_W || k == SE_TL_FF1_W ||
                        k == SE_TL_FF2_W;
            size_t rows = k == SE_TL_FF1_W || k == SE_TL_FF1_B ? c->FF : c->H;
            size_t cols = !is_w ? 1 : k == SE_TL_FF2_W ? c->FF : c->H;
            m->layer[i][k] = plist_add(&l, nm, rows, cols, !is_w);
            ok = m->layer[i][k] >= 0;
        }
    m->n_stages = n_st;
    for (int i = 0; ok && i < n_st; i++) {
        se_tstage *t = &m->stages[i];
        t->kind = st[i].kind, t->n_in = (size_t)st[i].n_in, t->n_out = (size_t)st[i].n_out, t->act = st[i].act;
        t->w_idx = t->b_idx = -1;
        if (t->kind != SE_STAGE_DENSE) continue;
        char nm[96];
        snprintf(nm, sizeof nm, "%d_Dense/linear.weight", stage_mod0 + i);
        t->w_idx = plist_add(&l, nm, t->n_out, t->n_in, false);
        ok = t->w_idx >= 0;
        if (ok && st[i].bias) {
            snprintf(nm, sizeof nm, "%d_Dense/linear.bias", stage_mod0 + i);
            t->b_idx = plist_add(&l, nm, t->n_out, 1, true);
            ok = t->b_idx >= 0;
        }
    }
    m->p = l.p, m->n_p = l.n;
    if (!ok) return se_err(err, SE_E_NOMEM, "train: out of memory listing the parameters");
    size_t n = 0;
    for (size_t i = 0; i < l.n; i++) n += l.p[i].n;
    m->w_arena = se_calloc(n ? n : 1, sizeof(float));
    m->g_arena = se_calloc(n ? n : 1, sizeof(float));
    if (!m->w_arena || !m->g_arena) return se_err(err, SE_E_NOMEM, "train: out of memory for %zu parameters", n);
    m->n_floats = n;
    size_t off = 0;
    for (size_t i = 0; i < l.n; i++) {
        l.p[i].w = m->w_arena + off, l.p[i].g = m->g_arena + off;
        off += l.p[i].n;
    }
    return SE_OK;
}

bool se_tmodel_qkv_packed(const se_tmodel *m, size_t l) {
    const int *ix = m->layer[l];
    size_t hh = m->cfg.H * m->cfg.H, h = m->cfg.H;
    const se_tparam *p = m->p;
    return p[ix[SE_TL_K_W]].w == p[ix[SE_TL_Q_W]].w + hh && p[ix[SE_TL_V_W]].w == p[ix[SE_TL_K_W]].w + hh &&
           p[ix[SE_TL_K_B]].w == p[ix[SE_TL_Q_B]].w + h && p[ix[SE_TL_V_B]].w == p[ix[SE_TL_K_B]].w + h &&
           p[ix[SE_TL_K_W]].g == p[ix[SE_TL_Q_W]].g + hh && p[ix[SE_TL_V_W]].g == p[ix[SE_TL_K_W]].g + hh &&
           p[ix[SE_TL_K_B]].g == p[ix[SE_TL_Q_B]].g + h && p[ix[SE_TL_V_B]].g == p[ix[SE_TL_K_B]].g + h;
}

/* The embedding width after pooling (one H per mode). */
static size_t pool_width(uint32_t modes, size_t H) {
    size_t k = 0;
    for (uint32_t b = modes; b; b &= b - 1) k++;
    return k * H;
}

/* Copies n floats of a bound tensor into a parameter (src NULL: leaves
 * zeros, for an absent optional tensor). */
static void put(se_tmodel *m, int idx, const float *src) {
    if (idx >= 0 && src) memcpy(m->p[idx].w, src, m->p[idx].n * sizeof(float));
}

se_status se_tmodel_from_folder(const char *dir, se_tmodel **out, se_error *err) {
    if (!dir || !out) return se_err(err, SE_E_INVALID, "se_tmodel_from_folder: NULL argument");
    *out = NULL;
    se_model *lm = NULL;
    se_status s = se_model_load(dir, NULL, &lm, err);
    if (s != SE_OK) return s;
    const se_folder_cfg *fc = &lm->cfg;
    bool xlmr = fc->arch == &se_arch_xlmr, mpnet = fc->arch == &se_arch_mpnet;
    if ((fc->arch != &se_arch_bert && !xlmr && !mpnet) || fc->cross_encoder) {
        se_err(err, SE_E_UNSUPPORTED,
               "%s/config.json: model_type \"%s\"%s: training supports BERT, XLM-R and MPNet sentence encoders only",
               dir, fc->model_type, fc->cross_encoder ? " (a cross-encoder)" : "");
        se_model_free(lm);
        return SE_E_UNSUPPORTED;
    }
    se_tmodel *m = se_calloc(1, sizeof *m);
    if (!m) {
        se_model_free(lm);
        return se_err(err, SE_E_NOMEM, "train: out of memory");
    }
    se_tcfg c = {.V = (size_t)fc->n_vocab, .H = (size_t)fc->n_embd, .NH = (size_t)fc->n_head, .FF = (size_t)fc->n_ff,
                 .L = (size_t)fc->n_layer, .P = (size_t)fc->n_pos, .n_type = lm->type_emb ? (size_t)fc->n_type : 0,
                 .pad_id = xlmr ? fc->pos_offset - 1 : mpnet ? 1 : -1, .rel_bias = mpnet, .eps = fc->norm_eps, .act = fc->act, .pooling = fc->pooling, .include_prompt = fc->include_prompt,
                 .pool_dim = (size_t)fc->pool_dim, .dim = (size_t)fc->dim};
    /* dropout: config.json's probabilities (the library's config has no use for them) */
    char path[4096];
    json_t *j = NULL;
    double hd = 0.1, ad = 0.1;
    snprintf(path, sizeof path, "%s/config.json", fc->tf_dir);
    s = se_json_load_file(path, &j, err);
    if (s == SE_OK) s = se_json_real(j, path, "hidden_dropout_prob", 0.0, 0.999, 0.1, &hd, err);
    if (s == SE_OK) s = se_json_real(j, path, "attention_probs_dropout_prob", 0.0, 0.999, 0.1, &ad, err);
    json_decref(j);
    c.hidden_dropout = (float)hd, c.attn_dropout = (float)ad;
    /* Dense modules are numbered after Transformer (0) and Pooling (1). */
    if (s == SE_OK) s = build(m, &c, fc->stages, fc->n_stages, 2, err);
    if (s == SE_OK) {
        put(m, m->word, lm->word_emb);
        put(m, m->pos, lm->pos_emb);
        put(m, m->type, lm->type_emb);
        put(m, m->emb_ln_g, lm->emb_ln_g);
        put(m, m->emb_ln_b, lm->emb_ln_b);
        if (mpnet) { /* the bias table as stored (the library keeps it expanded per distance) */
            const se_st_file *file = NULL;
            const se_st_tensor *t = se_model_find(lm, "encoder.relative_attention_bias.weight", &file);
            const float *rel = NULL;
            if (!t) s = se_err(err, SE_E_FORMAT, "%s: no encoder.relative_attention_bias.weight", dir);
            else s = se_model_as_f32(lm, t, file->path, &rel, err);
            put(m, m->rel, rel);
        }
        for (size_t i = 0; i < c.L; i++) {
            const se_layer_w *w = &lm->layers[i];
            const float *src[SE_TL_N] = {w->q_w, w->q_b, w->k_w, w->k_b, w->v_w, w->v_b, w->o_w, w->o_b,
                                         w->ln1_g, w->ln1_b, w->ff1_w, w->ff1_b, w->ff2_w, w->ff2_b, w->ln2_g, w->ln2_b};
            for (int k = 0; k < SE_TL_N; k++) put(m, m->layer[i][k], src[k]);
        }
        for (int i = 0; i < m->n_stages; i++) {
            if (m->stages[i].kind != SE_STAGE_DENSE) continue;
            put(m, m->stages[i].w_idx, lm->dense[i].w);
            put(m, m->stages[i].b_idx, lm->dense[i].b);
        }
    }
    se_model_free(lm);
    if (s != SE_OK) {
        se_tmodel_free(m);
        return s;
    }
    *out = m;
    return SE_OK;
}

/* splitmix64: the seed's stream of 64-bit values. */
static uint64_t next_u64(uint64_t *st) {
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A standard normal value (Box-Muller on two uniforms in (0, 1)). */
static double next_normal(uint64_t *st) {
    double u1 = ((double)(next_u64(st) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = ((double)(next_u64(st) >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

se_status se_tmodel_random(const se_tmodel_random_params *rp, se_tmodel **out, se_error *err) {
    if (!rp || !out) return se_err(err, SE_E_INVALID, "se_tmodel_random: NULL argument");
    *out = NULL;
    if (!(rp->hidden_dropout >= 0.0f && rp->hidden_dropout < 1.0f && rp->attn_dropout >= 0.0f &&
          rp->attn_dropout < 1.0f))
        return se_err(err, SE_E_INVALID, "se_tmodel_random: dropout %g / %g outside [0, 1)", (double)rp->hidden_dropout,
                      (double)rp->attn_dropout);
    if (!rp->V || !rp->H || !rp->NH || rp->H % rp->NH || !rp->FF || !rp->P || rp->H > SE_MAX_DIM ||
        rp->FF > SE_MAX_DIM || rp->L > SE_MAX_LAYERS)
        return se_err(err, SE_E_INVALID,
                      "se_tmodel_random: shape V=%zu H=%zu heads=%zu FF=%zu P=%zu L=%zu (H a multiple of heads, "
                      "none 0, H and FF <= %d, L <= %d)",
                      rp->V, rp->H, rp->NH, rp->FF, rp->P, rp->L, SE_MAX_DIM, SE_MAX_LAYERS);
    se_tmodel *m = se_calloc(1, sizeof *m);
    if (!m) return se_err(err, SE_E_NOMEM, "train: out of memory");
    uint32_t pool = rp->pooling ? rp->pooling : SE_POOL_MEAN;
    se_tcfg c = {.V = rp->V, .H = rp->H, .NH = rp->NH, .FF = rp->FF, .L = rp->L, .P = rp->P, .n_type = rp->n_type,
                 .pad_id = -1, .eps = rp->eps > 0 ? rp->eps : 1e-12f, .hidden_dropout = rp->hidden_dropout,
                 .attn_dropout = rp->attn_dropout, .act = rp->act, .pooling = pool, .include_prompt = true};
    c.pool_dim = c.dim = pool_width(pool, rp->H);
    se_stage norm = {.kind = SE_STAGE_NORMALIZE, .n_in = (int32_t)c.dim, .n_out = (int32_t)c.dim};
    se_status s = build(m, &c, &norm, rp->normalize ? 1 : 0, 2, err);
    if (s != SE_OK) {
        se_tmodel_free(m);
        return s;
    }
    uint64_t st = rp->seed;
    for (size_t i = 0; i < m->n_p; i++) {
        se_tparam *p = &m->p[i];
        bool ln_w = strstr(p->name, "LayerNorm.weight") != NULL;
        for (size_t k = 0; k < p->n; k++)
            p->w[k] = ln_w ? 1.0f : p->no_decay ? 0.0f : (float)(0.02 * next_normal(&st));
    }
    *out = m;
    return SE_OK;
}

se_status se_tmodel_set_threads(se_tmodel *m, int n_threads, se_error *err) {
    if (!m) return se_err(err, SE_E_INVALID, "se_tmodel_set_threads: NULL model");
    se_threadpool_free(m->pool);
    m->pool = NULL;
    if (n_threads <= 1) return SE_OK;
    m->pool = se_threadpool_new(n_threads);
    return m->pool ? SE_OK : se_err(err, SE_E_NOMEM, "train: cannot start %d threads", n_threads);
}

void se_tmodel_free(se_tmodel *m) {
    if (!m) return;
    se_threadpool_free(m->pool);
    se_free(m->w_arena);
    se_free(m->g_arena);
    se_free(m->p);
    se_free(m->layer);
    se_free(m->stages);
    se_free(m);
}

void se_tmodel_zero_grad(se_tmodel *m) {
    memset(m->g_arena, 0, m->n_floats * sizeof(float));
}

se_tparam *se_tmodel_param(se_tmodel *m, const char *name) {
    for (size_t i = 0; i < m->n_p; i++)
        if (!strcmp(m->p[i].name, name)) return &m->p[i];
    return NULL;
}
