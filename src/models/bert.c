/*
 * models/bert.c - BertModel (model_type "bert"): all-MiniLM-L6-v2, the
 * bge-*-zh family, m3e-base, text2vec-base-chinese and the many BERT
 * fine-tunes, also with an XLM-R tokenizer
 * (paraphrase-multilingual-MiniLM-L12-v2).
 *
 * The post-LN encoder of model_blocks.c as it is: absolute positions from
 * 0, token types. Tensor names are BertModel's, bare or prefixed "bert."
 * (BertForPreTraining and friends).
 */
#include <string.h>

#include "error.h"
#include "json.h"
#include "model_blocks.h"
#include "models/models.h"

/* BertConfig: the shared encoder fields, BERT's defaults (two token
 * types, layer_norm_eps 1e-12). */
static se_status bert_read_config(se_folder_cfg *c, const json_t *j, const char *f, se_error *err) {
    return se_encoder_read_config(c, j, f, 2, 1e-12, err);
}

/* Binds BertEmbeddings and every BertLayer. */
static se_status bert_bind(se_model *m, se_error *err) {
    se_status s = se_bind_embeddings(m, err);
    return s == SE_OK ? se_bind_layers(m, &se_bert_layer_names, err) : s;
}

/* The forward pass: embeddings ("emb_norm"), then each layer ("layer_out"). */
static se_status bert_forward(const se_model *m, se_fwd_buf *buf, se_threadpool *tp, const int32_t *ids,
                              const int32_t *type_ids, const size_t *starts, size_t S, se_debug_fn dbg, void *dbg_user,
                              se_error *err) {
    const se_folder_cfg *c = &m->cfg;
    size_t T = starts[S], H = (size_t)c->n_embd;
    se_status s = se_encoder_check(m, ids, type_ids, starts, S, 0, err);
    if (s != SE_OK || T == 0) return s;
    se_encoder_embed(m, buf, tp, ids, type_ids, starts, S, 0);
    if (dbg) dbg("emb_norm", -1, buf->x, T, H, dbg_user);
    for (int l = 0; l < c->n_layer; l++) {
        se_encoder_layer(m, &m->layers[l], buf, tp, starts, S);
        if (dbg) dbg("layer_out", l, buf->x, T, H, dbg_user);
    }
    return SE_OK;
}

static const char *const bert_prefixes[] = {"bert.", NULL};

/* BertForSequenceClassification: classifier(tanh(bert.pooler.dense(h[CLS]))). */
static const se_head_names bert_head = {"BertForSequenceClassification", "pooler.dense.weight", "pooler.dense.bias",
                                        "classifier.weight", "classifier.bias"};

const se_arch se_arch_bert = {
    .model_type = "bert",
    .name = "BertModel",
    .prefixes = bert_prefixes,
    .st_module = true,
    .strip_text = true,
    .read_config = bert_read_config,
    .bind = bert_bind,
    .forward = bert_forward,
    .head = &bert_head,
};
