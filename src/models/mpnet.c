/*
 * models/mpnet.c - MPNetModel (model_type "mpnet"): all-mpnet-base-v2,
 * multi-qa-mpnet-base-dot-v1 and the other MPNet fine-tunes.
 *
 * The post-LN encoder of model_blocks.c with three differences, as Hugging
 * Face's modeling_mpnet.py has them:
 *   - RoBERTa positions: padding_idx + 1 + the token's index among the
 *     tokens that are not padding, padding_idx fixed at 1 (MPNetEmbeddings
 *     hard-codes it; config.json's pad_token_id does not move it);
 *   - no token types;
 *   - a relative position bias added to every layer's scaled attention
 *     scores: encoder.relative_attention_bias.weight (32 buckets, heads),
 *     the bucket of (key position - query position) from
 *     relative_position_bucket (bidirectional, 16 buckets a side, 8 exact
 *     distances, then logarithmic up to distance 128).
 * The bias depends only on the key-query distance and on the weights, so
 * the (heads, distance) table is built once at load for every distance a
 * sentence can have, and shared by every forward pass and every layer
 * (Hugging Face builds the same values per batch as a (B, heads, T, T)
 * tensor). Tensor names are MPNetModel's, bare or prefixed "mpnet."
 * (MPNetForMaskedLM and friends).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "json.h"
#include "model_blocks.h"
#include "model_weights.h"
#include "models/models.h"

enum {
    MPNET_PAD = 1,      /* MPNetEmbeddings.padding_idx */
    MPNET_BUCKETS = 32, /* the only relative_attention_num_buckets MPNetEncoder uses */
    MPNET_MAX_DIST = 128,
};

int se_mpnet_rel_bucket(int64_t rel) {
    /* relative_position_bucket(rel, num_buckets=32, max_distance=128) in
     * torch's float32 arithmetic: n = -rel, keys after the query (n < 0)
     * in the upper half */
    int64_t n = -rel;
    int half = MPNET_BUCKETS / 2, exact = half / 2, ret = 0;
    if (n < 0) ret = half, n = -n;
    if (n < exact) return ret + (int)n;
    /* torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
     * * (num_buckets - max_exact), each step rounded to float, truncated */
    float f = logf((float)n / (float)exact) / (float)log((double)MPNET_MAX_DIST / exact) * (float)(half - exact);
    int64_t v = exact + (int64_t)f;
    return ret + (int)(v < half - 1 ? v : half - 1);
}

/* MPNetConfig: the shared encoder fields (layer_norm_eps defaults to
 * 1e-12, no token types whatever type_vocab_size says), and
 * relative_attention_num_buckets, which must be 32: MPNetEncoder computes
 * the buckets with 32 whatever the config says, so another value would
 * give a table the model does not use. */
static se_status mpnet_read_config(se_folder_cfg *c, const json_t *j, const char *f, se_error *err) {
    int64_t nb;
    se_status s = se_json_int_strict(j, f, "relative_attention_num_buckets", 1, 1 << 16, MPNET_BUCKETS, &nb, err);
    if (s != SE_OK) return s;
    if (nb != MPNET_BUCKETS)
        return se_err(err, SE_E_UNSUPPORTED,
                      "%s: relative_attention_num_buckets %lld is not supported (32 only, the number MPNetEncoder uses)", f,
                      (long long)nb);
    if ((s = se_encoder_read_config(c, j, f, 0, 1e-12, err)) != SE_OK) return s;
    c->n_type = 0;
    return SE_OK;
}

/* MPNetLayer's tensor names. */
static const se_layer_names mpnet_layer = {
    "attention.attn.q.weight", "attention.attn.q.bias", "attention.attn.k.weight", "attention.attn.k.bias",
    "attention.attn.v.weight", "attention.attn.v.bias", "attention.attn.o.weight", "attention.attn.o.bias",
    "attention.LayerNorm.weight", "attention.LayerNorm.bias", "intermediate.dense.weight", "intermediate.dense.bias",
    "output.dense.weight",     "output.dense.bias",     "output.LayerNorm.weight", "output.LayerNorm.bias",
};

/* The model's own weights (m->arch_w): the relative position bias of
 * head h and distance d = key - query at rel[h * ld + center + d], for
 * |d| <= center (the longest sentence the positions allow, less one). */
typedef struct mpnet_w {
    size_t ld, center;
    float rel[];
} mpnet_w;

/* Binds the embeddings, every MPNetLayer and the relative attention bias,
 * and builds the bias table. */
static se_status mpnet_bind(se_model *m, se_error *err) {
    const se_folder_cfg *c = &m->cfg;
    size_t NH = (size_t)c->n_head;
    const float *w;
    se_status s = se_bind_embeddings(m, err);
    if (s == SE_OK) s = se_bind_layers(m, &mpnet_layer, err);
    if (s == SE_OK) s = se_model_bind(m, "encoder.relative_attention_bias.weight", MPNET_BUCKETS, (int64_t)NH, &w, err);
    if (s != SE_OK) return s;
    size_t tmax = c->n_pos > MPNET_PAD + 1 ? (size_t)c->n_pos - (MPNET_PAD + 1) : 1; /* tokens a sentence may have */
    size_t ld = 2 * tmax - 1;
    mpnet_w *mw = se_malloc(sizeof *mw + NH * ld * sizeof(float));
    if (!mw) return se_err(err, SE_E_NOMEM, "out of memory for the relative position bias (%zu heads, %zu distances)", NH, ld);
    mw->ld = ld, mw->center = tmax - 1;
    for (size_t i = 0; i < ld; i++) {
        int b = se_mpnet_rel_bucket((int64_t)i - (int64_t)mw->center);
        for (size_t h = 0; h < NH; h++) mw->rel[h * ld + i] = w[(size_t)b * NH + h];
    }
    m->arch_w = mw;
    return SE_OK;
}

/* The forward pass: embeddings ("emb_norm"), then each layer with the
 * relative position bias ("layer_out"). */
static se_status mpnet_forward(const se_model *m, se_fwd_buf *buf, se_threadpool *tp, const int32_t *ids,
                               const int32_t *type_ids, const size_t *starts, size_t S, se_debug_fn dbg, void *dbg_user,
                               se_error *err) {
    const se_folder_cfg *c = &m->cfg;
    const mpnet_w *mw = m->arch_w;
    size_t T = starts[S], H = (size_t)c->n_embd;
    se_status s = se_encoder_check(m, ids, type_ids, starts, S, MPNET_PAD + 1, err);
    if (s != SE_OK || T == 0) return s;
    se_encoder_embed_roberta(m, buf, tp, ids, NULL, starts, S, MPNET_PAD);
    if (dbg) dbg("emb_norm", -1, buf->x, T, H, dbg_user);
    se_rel_bias rb = {mw->rel, mw->ld, mw->center};
    for (int l = 0; l < c->n_layer; l++) {
        se_encoder_layer_rel(m, &m->layers[l], buf, tp, starts, S, &rb);
        if (dbg) dbg("layer_out", l, buf->x, T, H, dbg_user);
    }
    return SE_OK;
}

static const char *const mpnet_prefixes[] = {"mpnet.", NULL};

const se_arch se_arch_mpnet = {
    .model_type = "mpnet",
    .name = "MPNetModel",
    .prefixes = mpnet_prefixes,
    .st_module = true,
    .strip_text = true,
    .read_config = mpnet_read_config,
    .bind = mpnet_bind,
    .forward = mpnet_forward,
};
