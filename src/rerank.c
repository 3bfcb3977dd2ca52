/*
 * rerank.c - cross-encoders, as sentence-transformers' CrossEncoder:
 * se_predict (pairs -> n_labels scores each), se_predict_ids (the same
 * from token ids) and se_rank (a query against documents, best first).
 *
 * A pair is stripped (each text, str.strip) and tokenized with the pair
 * template, truncated longest_first to the model's n_tokens_max (the
 * tokenizer's model_max_length); pairs are packed into forward passes as
 * se_encode packs sentences (ctx.h), so a pair's scores are bit-identical
 * whatever shares its pass; the head (model_head.c) reads each pair's
 * first token state and gives the logits, then the activation.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "ctx.h"
#include "error.h"
#include "model_head.h"
#include "model_weights.h"
#include "unicode.h"

se_predict_params se_predict_default_params(void) {
    se_predict_params p;
    memset(&p, 0, sizeof p);
    p.activation = SE_SCORE_MODEL;
    return p;
}

/* Checks the ctx's model is a cross-encoder and the params are valid;
 * *act is the activation to apply (the model's for SE_SCORE_MODEL). fn
 * names the caller in messages. */
static se_status check_call(se_ctx *c, const se_predict_params *p, const char *fn, se_score_act *act, se_error *err) {
    const se_folder_cfg *cfg = &c->m->cfg;
    if (!cfg->cross_encoder)
        return se_err(err, SE_E_INVALID,
                      "%s: %s is an embedding model, not a cross-encoder (config.json architectures has no "
                      "*ForSequenceClassification head): use se_encode",
                      fn, cfg->root);
    if ((unsigned)p->activation > SE_SCORE_SOFTMAX)
        return se_err(err, SE_E_INVALID, "%s: activation %d is not an se_score_act", fn, (int)p->activation);
    *act = p->activation == SE_SCORE_MODEL ? (se_score_act)cfg->ce_act : p->activation;
    return se_model_check_files(c->m, err);
}

/* Runs the S pairs gathered in the ctx (T tokens) and writes their scores
 * into their rows of out (n_labels each): the head's logits, refused when
 * not finite, then the activation and, with softmax, a softmax over the
 * labels (when there are several), as CrossEncoder.predict does. */
static se_status run_pairs(se_ctx *c, size_t S, size_t T, se_score_act act, bool softmax, float *out, se_error *err) {
    se_status s = se_ctx_forward(c, S, T, "pair", err);
    if (s != SE_OK) return s;
    const se_model *m = c->m;
    size_t H = (size_t)m->cfg.n_embd, NL = (size_t)m->cfg.n_labels;
    for (size_t i = 0; i < S; i++) {
        float *lg = out + c->index[i] * NL;
        se_head_logits(m, c->buf.x + c->starts[i] * H, c->stage, lg);
        if (!se_all_finite(lg, NL))
            return se_err(err, SE_E_RANGE,
                          "pair %zu: the logits have a NaN or infinite value (the model's weights or config are broken)",
                          c->index[i]);
        se_head_activate(act, lg, NL);
        if (softmax && NL > 1) se_head_activate(SE_SCORE_SOFTMAX, lg, NL);
    }
    return SE_OK;
}

/* Adds the tokens of one pair (c->tids / c->ttype) to the ctx's batch as
 * pair i, first running the batch gathered so far when it is full. */
static se_status add_pair(se_ctx *c, size_t i, const int32_t *ids, const int32_t *types, size_t nt, size_t *S, size_t *T,
                          se_score_act act, bool softmax, float *out, se_error *err) {
    if (*S > 0 && (*T + nt > c->n_batch_tokens || *S == S_CAP)) {
        se_status s = run_pairs(c, *S, *T, act, softmax, out, err);
        if (s != SE_OK) return s;
        *S = *T = 0;
    }
    memcpy(c->ids + *T, ids, nt * sizeof *c->ids);
    if (types) memcpy(c->type_ids + *T, types, nt * sizeof *c->type_ids);
    else memset(c->type_ids + *T, 0, nt * sizeof *c->type_ids);
    c->starts[*S] = *T;
    c->first[*S] = 0;
    c->index[*S] = i;
    (*S)++;
    *T += nt;
    return SE_OK;
}

/* One text of a pair, checked: its bytes (NULL with length 0 is ""),
 * valid UTF-8, then stripped. which: "first" or "second", for messages. */
static se_status pair_text(const char *const *texts, const size_t *lens, size_t i, const char *which, const char **t,
                           size_t *len, se_error *err) {
    const char *p = texts[i];
    size_t n = lens ? lens[i] : (p ? strlen(p) : 0), bad;
    if (!p && n) return se_err(err, SE_E_INVALID, "pair %zu: the %s text is NULL", i, which);
    if (!p) p = "";
    if (!se_utf8_valid(p, n, &bad))
        return se_err(err, SE_E_UTF8, "pair %zu: the %s text has invalid UTF-8 at byte %zu", i, which, bad);
    size_t b, e;
    se_text_strip(p, n, &b, &e);
    *t = p + b, *len = e - b;
    return SE_OK;
}

se_status se_predict(se_ctx *c, const char *const *texts, const size_t *text_lens, const char *const *pairs,
                     const size_t *pair_lens, size_t n, const se_predict_params *params, float *out, size_t out_cap,
                     bool *truncated, se_error *err) {
    if (!c || (n && (!texts || !pairs || !out))) return se_err(err, SE_E_INVALID, "se_predict: NULL argument");
    se_predict_params p = params ? *params : se_predict_default_params();
    se_score_act act;
    se_status s = check_call(c, &p, "se_predict", &act, err);
    if (s != SE_OK) return s;
    const se_model *m = c->m;
    size_t NL = (size_t)m->cfg.n_labels;
    if (n && out_cap / n < NL)
        return se_err(err, SE_E_BUFFER, "output buffer of %zu floats is too small for %zu x %zu", out_cap, n, NL);
    size_t S = 0, T = 0;
    for (size_t i = 0; i < n; i++) {
        const char *a, *b;
        size_t la, lb;
        if ((s = pair_text(texts, text_lens, i, "first", &a, &la, err)) != SE_OK) return s;
        if ((s = pair_text(pairs, pair_lens, i, "second", &b, &lb, err)) != SE_OK) return s;
        bool cut = false;
        if ((s = se_tok_encode(m->tok, a, la, b, lb, (size_t)m->cfg.n_tokens_max, true, &c->sess, &c->tids, &c->ttype,
                               &cut, err)) != SE_OK) {
            se_err_prefix(err, "pair %zu", i);
            return s;
        }
        if (truncated) truncated[i] = cut;
        if (c->tids.n == 0) return se_err(err, SE_E_INTERNAL, "pair %zu: the tokenizer gave no ids", i);
        if ((s = add_pair(c, i, c->tids.v, c->ttype.v, c->tids.n, &S, &T, act, p.apply_softmax, out, err)) != SE_OK)
            return s;
    }
    return S > 0 ? run_pairs(c, S, T, act, p.apply_softmax, out, err) : SE_OK;
}

se_status se_predict_ids(se_ctx *c, const int32_t *const *ids, const int32_t *const *type_ids, const size_t *lens,
                         size_t n, const se_predict_params *params, float *out, size_t out_cap, se_error *err) {
    if (!c || (n && (!ids || !lens || !out))) return se_err(err, SE_E_INVALID, "se_predict_ids: NULL argument");
    se_predict_params p = params ? *params : se_predict_default_params();
    se_score_act act;
    se_status s = check_call(c, &p, "se_predict_ids", &act, err);
    if (s != SE_OK) return s;
    const se_folder_cfg *cfg = &c->m->cfg;
    size_t NL = (size_t)cfg->n_labels;
    if (n && out_cap / n < NL)
        return se_err(err, SE_E_BUFFER, "output buffer of %zu floats is too small for %zu x %zu", out_cap, n, NL);
    /* every pair is checked before any is run: an error writes no output */
    int32_t n_type = cfg->n_type > 0 ? cfg->n_type : 1;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == 0) return se_err(err, SE_E_INVALID, "pair %zu has no token ids", i);
        if (!ids[i]) return se_err(err, SE_E_INVALID, "pair %zu: NULL ids", i);
        if (lens[i] > (size_t)cfg->n_tokens_max)
            return se_err(err, SE_E_RANGE, "pair %zu has %zu token ids; the model reads at most %d", i, lens[i],
                          cfg->n_tokens_max);
        const int32_t *tt = type_ids ? type_ids[i] : NULL;
        for (size_t t = 0; t < lens[i]; t++) {
            if (ids[i][t] < 0 || ids[i][t] >= cfg->n_vocab)
                return se_err(err, SE_E_RANGE, "pair %zu: token id %d at position %zu is outside the vocabulary (%d)", i,
                              ids[i][t], t, cfg->n_vocab);
            if (tt && (tt[t] < 0 || tt[t] >= n_type))
                return se_err(err, SE_E_RANGE, "pair %zu: token type %d at position %zu is outside type_vocab_size (%d)",
                              i, tt[t], t, n_type);
        }
    }
    size_t S = 0, T = 0;
    for (size_t i = 0; i < n; i++)
        if ((s = add_pair(c, i, ids[i], type_ids ? type_ids[i] : NULL, lens[i], &S, &T, act, p.apply_softmax, out,
                          err)) != SE_OK)
            return s;
    return S > 0 ? run_pairs(c, S, T, act, p.apply_softmax, out, err) : SE_OK;
}

/* Orders hits by score, highest first, then by input index (a stable
 * sort: CrossEncoder.rank's sorted(..., reverse=True) keeps ties in input
 * order). */
static int by_score(const void *x, const void *y) {
    const se_hit *a = x, *b = y;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->corpus_id > b->corpus_id) - (a->corpus_id < b->corpus_id);
}

se_status se_rank(se_ctx *c, const char *query, size_t query_len, const char *const *docs, const size_t *doc_lens,
                  size_t n, const se_predict_params *params, size_t top_k, se_hit *hits, size_t *n_hits, se_error *err) {
    if (!c || !query || !n_hits || (n && (!docs || !hits))) return se_err(err, SE_E_INVALID, "se_rank: NULL argument");
    *n_hits = 0;
    se_predict_params p = params ? *params : se_predict_default_params();
    p.apply_softmax = false;
    se_score_act act;
    se_status s = check_call(c, &p, "se_rank", &act, err);
    if (s != SE_OK) return s;
    if (c->m->cfg.n_labels != 1)
        return se_err(err, SE_E_INVALID, "se_rank: the model has %d labels; ranking needs one score per document (use se_predict)",
                      c->m->cfg.n_labels);
    if (n > (size_t)INT32_MAX) return se_err(err, SE_E_RANGE, "se_rank: %zu documents (at most %d)", n, INT32_MAX);
    if (n == 0) return SE_OK;
    const char **qs = se_malloc_array(n, sizeof *qs);
    size_t *ql = se_malloc_array(n, sizeof *ql);
    float *scores = se_malloc_array(n, sizeof *scores);
    se_hit *all = se_malloc_array(n, sizeof *all);
    if (!qs || !ql || !scores || !all) {
        s = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) qs[i] = query, ql[i] = query_len;
    if ((s = se_predict(c, qs, ql, docs, doc_lens, n, &p, scores, n, NULL, err)) != SE_OK) {
        se_err_prefix(err, "se_rank");
        goto done;
    }
    for (size_t i = 0; i < n; i++) all[i].corpus_id = (int32_t)i, all[i].score = scores[i];
    qsort(all, n, sizeof *all, by_score);
    size_t k = top_k && top_k < n ? top_k : n;
    memcpy(hits, all, k * sizeof *hits);
    *n_hits = k;
done:
    se_free(qs);
    se_free(ql);
    se_free(scores);
    se_free(all);
    return s;
}
