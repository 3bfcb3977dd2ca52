/*
 * model_head.c - the sequence-classification heads of cross-encoders:
 * binding their two linear layers and computing a pair's logits from its
 * first token's state, then CrossEncoder's activations.
 *
 * Both heads sembed supports are the same computation under different
 * names (models/models.h, se_head_names):
 *   BertForSequenceClassification        classifier(tanh(pooler.dense(h[CLS])))
 *   XLMRobertaForSequenceClassification  out_proj(tanh(classifier.dense(h[<s>])))
 * (dropout is the identity at inference). The head is tiny next to the
 * encoder (H * (H + n_labels) multiply-adds a pair), so it runs as plain
 * scalar code: the same bits on every kernel set and in every batch.
 */
#include "model_head.h"

#include <math.h>

#include "error.h"
#include "model_weights.h"
#include "models/models.h"

se_status se_head_bind(se_model *m, se_error *err) {
    const se_folder_cfg *c = &m->cfg;
    if (!c->cross_encoder) return SE_OK;
    const se_head_names *h = c->arch->head;
    if (!h) return se_err(err, SE_E_INTERNAL, "se_head_bind: model_type '%s' has no head", c->model_type);
    int64_t H = c->n_embd, NL = c->n_labels;
    se_status s;
    if ((s = se_model_bind(m, h->dense_w, H, H, &m->head.dense_w, err)) != SE_OK) return s;
    if ((s = se_model_bind(m, h->dense_b, H, 0, &m->head.dense_b, err)) != SE_OK) return s;
    if ((s = se_model_bind(m, h->out_w, NL, H, &m->head.out_w, err)) != SE_OK) return s;
    return se_model_bind(m, h->out_b, NL, 0, &m->head.out_b, err);
}

void se_head_logits(const se_model *m, const float *x, float *tmp, float *logits) {
    const se_head_w *w = &m->head;
    size_t H = (size_t)m->cfg.n_embd, NL = (size_t)m->cfg.n_labels;
    for (size_t j = 0; j < H; j++) {
        const float *row = w->dense_w + j * H;
        double acc = 0;
        for (size_t k = 0; k < H; k++) acc += (double)row[k] * x[k];
        tmp[j] = tanhf((float)acc + w->dense_b[j]);
    }
    for (size_t j = 0; j < NL; j++) {
        const float *row = w->out_w + j * H;
        double acc = 0;
        for (size_t k = 0; k < H; k++) acc += (double)row[k] * tmp[k];
        logits[j] = (float)acc + w->out_b[j];
    }
}

void se_head_activate(se_score_act act, float *v, size_t n) {
    switch (act) {
    case SE_SCORE_SIGMOID:
        for (size_t i = 0; i < n; i++) v[i] = 1.0f / (1.0f + expf(-v[i]));
        break;
    case SE_SCORE_TANH:
        for (size_t i = 0; i < n; i++) v[i] = tanhf(v[i]);
        break;
    case SE_SCORE_SOFTMAX: {
        /* torch.softmax: subtract the max, exponentiate, divide by the sum */
        float mx = -INFINITY;
        for (size_t i = 0; i < n; i++) mx = v[i] > mx ? v[i] : mx;
        double sum = 0;
        for (size_t i = 0; i < n; i++) v[i] = expf(v[i] - mx), sum += v[i];
        for (size_t i = 0; i < n; i++) v[i] = (float)(v[i] / sum);
        break;
    }
    case SE_SCORE_MODEL:
    case SE_SCORE_IDENTITY:
        break;
    }
}

const char *se_score_act_name(se_score_act act) {
    switch (act) {
    case SE_SCORE_SIGMOID: return "sigmoid";
    case SE_SCORE_TANH: return "tanh";
    case SE_SCORE_SOFTMAX: return "softmax";
    case SE_SCORE_IDENTITY: return "identity";
    case SE_SCORE_MODEL: break;
    }
    return "model";
}
