/*
 * model_blocks.h - the building blocks of post-LN transformer encoders
 * (model_blocks.c): binding the embeddings and layers of a Hugging Face
 * checkpoint, and the forward steps over packed sentences.
 */
#ifndef SE_MODEL_BLOCKS_H
#define SE_MODEL_BLOCKS_H

#include <jansson.h>

#include "model.h"

/* The tensor names of one encoder layer, after "encoder.layer.N.". */
typedef struct se_layer_names {
    const char *q_w, *q_b, *k_w, *k_b, *v_w, *v_b; /* attention projections */
    const char *o_w, *o_b, *ln1_g, *ln1_b;         /* attention output dense and LayerNorm */
    const char *ff1_w, *ff1_b, *ff2_w, *ff2_b;     /* intermediate and output dense */
    const char *ln2_g, *ln2_b;                     /* output LayerNorm */
} se_layer_names;

/* BertLayer's tensor names, which XLM-R's checkpoints share. */
extern const se_layer_names se_bert_layer_names;

/* Reads the config.json fields every post-LN encoder has
 * (position_embedding_type, which must be absolute, vocab_size,
 * hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
 * max_position_embeddings, type_vocab_size, layer_norm_eps, hidden_act),
 * each checked (f names the file in messages); the defaults are the
 * architecture's. */
se_status se_encoder_read_config(se_folder_cfg *c, const json_t *j, const char *f, int64_t type_vocab_default,
                                 double eps_default, se_error *err);

/* Binds embeddings.{word,position,token_type}_embeddings and
 * embeddings.LayerNorm (token types only when config.json has
 * type_vocab_size > 0), and notes the checkpoint's weight dtype. */
se_status se_bind_embeddings(se_model *m, se_error *err);

/* Binds config.json's num_hidden_layers encoder layers into m->layers,
 * fuses each one's q/k/v, and registers the GEMM weights. A checkpoint
 * with a layer more is SE_E_FORMAT naming the tensor. */
se_status se_bind_layers(se_model *m, const se_layer_names *names, se_error *err);

/* Checks a batch before the forward pass: every id inside the vocabulary,
 * every token type inside type_vocab_size (when the model has token
 * types), and every sentence within the positions (max_position_embeddings
 * less pos_offset). SE_E_RANGE naming the first that is not. */
se_status se_encoder_check(const se_model *m, const int32_t *ids, const int32_t *type_ids, const size_t *starts, size_t S,
                           size_t pos_offset, se_error *err);

/* buf->x = LN_emb((word[id] + type[tt]) + pos[p + pos_offset]) for every
 * token, p its index in its sentence (type only when the model has them). */
void se_encoder_embed(const se_model *m, se_fwd_buf *buf, se_threadpool *tp, const int32_t *ids, const int32_t *type_ids,
                      const size_t *starts, size_t S, size_t pos_offset);

/* buf->x as se_encoder_embed with RoBERTa's position ids (fairseq's
 * make_positions, Hugging Face's create_position_ids_from_input_ids):
 * padding_idx + 1 + the token's index among the sentence's tokens that are
 * not padding_idx, and padding_idx for a padding_idx token itself (a
 * literal "<pad>" in the text). Token types as se_encoder_embed (type_ids
 * NULL: none). se_encoder_check with pos_offset padding_idx + 1 bounds
 * these positions. */
void se_encoder_embed_roberta(const se_model *m, se_fwd_buf *buf, se_threadpool *tp, const int32_t *ids,
                              const int32_t *type_ids, const size_t *starts, size_t S, int32_t padding_idx);

/* One post-LN encoder layer over buf->x, in place: self-attention per
 * sentence and head, residual and LN1, the FFN with config.json's
 * activation, residual and LN2. */
void se_encoder_layer(const se_model *m, const se_layer_w *w, se_fwd_buf *buf, se_threadpool *tp, const size_t *starts,
                      size_t S);

/* A relative position attention bias (MPNet, T5): head h adds
 *   rel[h * ld + center + (t - i)]
 * to the scaled score of query i and key t of a sentence, so it must hold
 * every t - i of the longest sentence: |t - i| <= center and
 * center + (t - i) < ld. */
typedef struct se_rel_bias {
    const float *rel;
    size_t ld, center;
} se_rel_bias;

/* se_encoder_layer with the relative position bias rb added to every
 * head's scores (rb NULL: exactly se_encoder_layer). */
void se_encoder_layer_rel(const se_model *m, const se_layer_w *w, se_fwd_buf *buf, se_threadpool *tp, const size_t *starts,
                          size_t S, const se_rel_bias *rb);

/* Parses an activation's name: config.json's hidden_act (dense false:
 * gelu, gelu_new, gelu_pytorch_tanh, relu) or a Dense module's
 * activation_function (dense true: torch.nn.modules class names). Returns
 * false when unknown. */
bool se_act_parse(const char *name, bool dense, se_act *out);

/* Applies an activation in place (the dispatched kernel for exact GELU). */
void se_act_apply(se_act a, float *x, size_t n);

#endif
