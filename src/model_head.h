/*
 * model_head.h - the sequence-classification heads of cross-encoders
 * (model_head.c), shared by the architectures: logits =
 * out(tanh(dense(h[first token]))), the tensors named by the row's
 * se_head_names (BertForSequenceClassification's pooler.dense and
 * classifier, XLMRobertaForSequenceClassification's classifier.dense and
 * classifier.out_proj), and the activations CrossEncoder applies to them.
 */
#ifndef SE_MODEL_HEAD_H
#define SE_MODEL_HEAD_H

#include "model.h"

/* Binds the head of a cross-encoder (m->cfg.cross_encoder) into m->head,
 * every tensor checked for shape against config.json (hidden_size and
 * num_labels / id2label): a missing or misshapen one is SE_E_FORMAT naming
 * the tensor. A no-op for an embedding model. */
se_status se_head_bind(se_model *m, se_error *err);

/* The logits of one sequence: x (H) is its first token's last hidden
 * state, tmp (H) scratch, logits (n_labels) the output. Scalar, in a fixed
 * order (double sums rounded to float), so a pair's logits never depend on
 * the batch or the kernel set. */
void se_head_logits(const se_model *m, const float *x, float *tmp, float *logits);

/* Applies an activation (an se_score_act other than SE_SCORE_MODEL) to n
 * values in place; SE_SCORE_SOFTMAX over all n. */
void se_head_activate(se_score_act act, float *v, size_t n);

/* The name of an activation, as se_model_info.activation says it. */
const char *se_score_act_name(se_score_act act);

#endif
