/*
 * models/xlmr.c - XLMRobertaModel (model_type "xlm-roberta"):
 * multilingual-e5-*, BAAI/bge-m3, paraphrase-multilingual-mpnet-base-v2,
 * and the body of the bge-reranker cross-encoders.
 *
 * BERT's post-LN body (model_blocks.c) with RoBERTa's positions: a
 * sentence's tokens take position ids padding_idx + 1, padding_idx + 2, ...
 * (padding_idx = pad_token_id, 1 in every real model), so
 * max_position_embeddings is max_seq_length + 2. Padding never reaches the
 * model here, since sentences are packed; but a literal "<pad>" in a text
 * is the padding id, and takes position padding_idx without advancing the
 * others, as create_position_ids_from_input_ids does. type_vocab_size is
 * 1: every token type is 0.
 * Tensor names are BertModel's, bare or prefixed "roberta.".
 */
#include <string.h>

#include "error.h"
#include "json.h"
#include "model_blocks.h"
#include "models/models.h"

/* XLMRobertaConfig: the shared encoder fields (one token type,
 * layer_norm_eps 1e-5 by default), and pad_token_id: absolute positions
 * start after it. */
static se_status xlmr_read_config(se_folder_cfg *c, const json_t *j, const char *f, se_error *err) {
    int64_t pad;
    se_status s = se_encoder_read_config(c, j, f, 1, 1e-5, err);
    if (s != SE_OK) return s;
    if ((s = se_json_int_strict(j, f, "pad_token_id", 0, c->n_pos - 2, 1, &pad, err)) != SE_OK) return s;
    c->pos_offset = (int32_t)pad + 1;
    return SE_OK;
}

/* Binds the embeddings and every layer (BertLayer's names). */
static se_status xlmr_bind(se_model *m, se_error *err) {
    se_status s = se_bind_embeddings(m, err);
    return s == SE_OK ? se_bind_layers(m, &se_bert_layer_names, err) : s;
}

/* The forward pass: embeddings at RoBERTa's positions ("emb_norm"), then
 * each layer ("layer_out"). */
static se_status xlmr_forward(const se_model *m, se_fwd_buf *buf, se_threadpool *tp, const int32_t *ids,
                              const int32_t *type_ids, const size_t *starts, size_t S, se_debug_fn dbg, void *dbg_user,
                              se_error *err) {
    const se_folder_cfg *c = &m->cfg;
    size_t T = starts[S], H = (size_t)c->n_embd, off = (size_t)c->pos_offset;
    se_status s = se_encoder_check(m, ids, type_ids, starts, S, off, err);
    if (s != SE_OK || T == 0) return s;
    se_encoder_embed_roberta(m, buf, tp, ids, type_ids, starts, S, c->pos_offset - 1);
    if (dbg) dbg("emb_norm", -1, buf->x, T, H, dbg_user);
    for (int l = 0; l < c->n_layer; l++) {
        se_encoder_layer(m, &m->layers[l], buf, tp, starts, S);
        if (dbg) dbg("layer_out", l, buf->x, T, H, dbg_user);
    }
    return SE_OK;
}

static const char *const xlmr_prefixes[] = {"roberta.", NULL};

/* XLMRobertaForSequenceClassification (the bge-rerankers):
 * classifier.out_proj(tanh(classifier.dense(h[<s>]))); the encoder has no
 * pooler. */
static const se_head_names xlmr_head = {"XLMRobertaForSequenceClassification", "classifier.dense.weight",
                                        "classifier.dense.bias", "classifier.out_proj.weight",
                                        "classifier.out_proj.bias"};

const se_arch se_arch_xlmr = {
    .model_type = "xlm-roberta",
    .name = "XLMRobertaModel",
    .prefixes = xlmr_prefixes,
    .st_module = true,
    .strip_text = true,
    .read_config = xlmr_read_config,
    .bind = xlmr_bind,
    .forward = xlmr_forward,
    .head = &xlmr_head,
};
