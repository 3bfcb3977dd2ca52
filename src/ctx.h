/*
 * ctx.h - the context (se_ctx: activation arena, thread pool, tokenizer
 * scratch) shared by encode.c (se_encode) and rerank.c (se_predict), and
 * the forward step both run over a batch gathered in it.
 */
#ifndef SE_CTX_H
#define SE_CTX_H

#include "model.h"
#include "tokenizer.h"

#define S_CAP 256 /* sentences per forward pass at most */

struct se_ctx {
    const se_model *m;
    se_ctx_params p;
    se_threadpool *tp;
    float *arena;          /* everything below points into it */
    se_fwd_buf buf;
    float *pooled;         /* (S_CAP, max_stage_dim) */
    float *stage;          /* (S_CAP, max_stage_dim) */
    int32_t *ids;          /* (n_batch_tokens) */
    int32_t *type_ids;     /* (n_batch_tokens) */
    size_t *starts;        /* (S_CAP + 1) */
    size_t *first;         /* (S_CAP) first pooled token of each sentence */
    size_t *index;         /* (S_CAP) input index of each sentence */
    size_t n_batch_tokens;
    se_tok_session sess;   /* tokenizer scratch */
    se_i32vec tids, ttype; /* one text's ids */
    se_i32vec all_ids, all_types; /* se_encode_tokens: every text's ids, tokenized before any is run */
    char *text;            /* prompt + text, stripped, maybe lowercased */
    size_t text_cap;
};

/* Runs the architecture's forward pass over the S sentences (T tokens)
 * gathered in c (ids, type_ids, starts[0..S), index), leaving the last
 * hidden states in c->buf.x. A NaN or infinity in a sentence's states is
 * SE_E_RANGE naming it as "<what> <input index>". */
se_status se_ctx_forward(se_ctx *c, size_t S, size_t T, const char *what, se_error *err);

/* Python's str.strip() on n bytes of valid UTF-8: [*begin, *end) is the
 * text without the whitespace at both ends. */
void se_text_strip(const char *text, size_t n, size_t *begin, size_t *end);

/* Whether all n floats are finite: no NaN, no infinity. */
bool se_all_finite(const float *v, size_t n);

#endif
