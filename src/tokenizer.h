/*
 * tokenizer.h - the tokenizer object: the pipeline of tokenizer.c around
 * one tokenizer model (tokenizers/wordpiece.h, tokenizers/unigram.h).
 *
 * se_tokenizer is immutable after load. Per-call scratch lives in an
 * se_tok_session, which se_encode keeps in its ctx so tokenization does not
 * allocate once the buffers have grown (LC's llm_tokenizer_wpm vs
 * llm_tokenizer_wpm_session split).
 */
#ifndef SE_TOKENIZER_H
#define SE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sembed.h"
#include "tokenizer_vocab.h"
#include "tokenizers/unigram.h"
#include "tokenizers/wordpiece.h"

/* An added (special) token, matched in the raw text before normalisation
 * and split off before the model runs. */
typedef struct se_added_token {
    char *content;
    size_t len;
    int32_t id;
    bool special;
    bool lstrip, rstrip; /* it takes the whitespace before / after it with it */
} se_added_token;

/* One element of a post-processing template. */
typedef struct se_tpl_item {
    int32_t seq;     /* -1: special token(s); 0: sequence A; 1: sequence B */
    int32_t type_id; /* token_type_id for this element */
    int32_t n_ids;   /* special ids (1..4) when seq == -1 */
    int32_t ids[4];
} se_tpl_item;

#define SE_TPL_MAX 8

enum { SE_TOK_WORDPIECE = 0, SE_TOK_UNIGRAM = 1 };

/* The decoder se_detokenize applies (tokenizer.json's "decoder"). */
enum {
    SE_DEC_NONE = 0,    /* pieces joined by spaces */
    SE_DEC_WORDPIECE,   /* prefix glued, a space before other pieces, cleanup */
    SE_DEC_METASPACE,   /* replacement -> ' ', none in the first token (prepend scheme not never) */
    SE_DEC_SPM,         /* sentencepiece's DecodeIds (.model folders) */
    SE_DEC_UNSUPPORTED  /* a decoder type we do not implement: dec_name */
};

struct se_tokenizer {
    int kind;                       /* SE_TOK_WORDPIECE or SE_TOK_UNIGRAM: which model below */
    se_wordpiece wp;
    se_unigram uni;
    int32_t unk_id;                 /* the model's, -1 when it has none */
    /* added tokens, and an index by first byte */
    se_added_token *added;
    size_t n_added;
    bool added_first_byte[256];
    /* post-processing */
    se_tpl_item single[SE_TPL_MAX], pair[SE_TPL_MAX];
    int n_single, n_pair;
    int n_special_single, n_special_pair; /* ids added by each template */
    size_t n_tokens_max;            /* default truncation (max_seq_length) */
    char *source;                   /* "tokenizer.json", "vocab.txt", "sentencepiece.bpe.model", for messages */
    char normalizer[96];            /* what se_tokenizer_describe reports */
    char post[96];                  /* the templates, for se_tokenizer_describe */
    /* decoding */
    int dec;                        /* SE_DEC_* */
    char dec_prefix[16];            /* WordPiece: "##" */
    bool dec_cleanup;               /* WordPiece: cleanup */
    bool dec_strip_first;           /* Metaspace: prepend_scheme is not never */
    uint32_t dec_replacement;       /* Metaspace: U+2581 */
    char dec_name[32];              /* SE_DEC_UNSUPPORTED: the type */
};

/* Per-call scratch; zero-initialise, reuse, free with se_tok_session_free.
 * With a token budget, every buffer is bounded by it or by a word / window
 * size, never by the length of the text (issue 9 item 10). */
typedef struct se_tok_session {
    se_i32vec a, b;     /* ids of sequence A and B before templating */
    se_wp_scratch wp;   /* the models' scratch */
    se_uni_scratch uni;
    /* se_tokenize_stats: when stats is set, the encoders push into nch, for
     * every id they push, the number of non-whitespace code points of the
     * text that id stands for */
    bool stats;
    se_i32vec nch;
    /* offsets: when `offsets` is set, the encoders push into oa / ob two
     * entries per id of a / b, its bytes [start, end) in its text */
    bool offsets;
    se_i32vec oa, ob;
} se_tok_session;

void se_tok_session_free(se_tok_session *s);

/* Full tokenization into ids/type_ids (growable), with truncation to
 * n_tokens_max (0 = none) and templating. */
se_status se_tok_encode(const se_tokenizer *tok, const char *text, size_t len, const char *pair,
                        size_t pair_len, size_t n_tokens_max, bool add_special, se_tok_session *s,
                        se_i32vec *ids, se_i32vec *type_ids, bool *truncated, se_error *err);

/* se_tok_encode with the choices of se_tokenize_params and offsets:
 * left keeps the last tokens of each sequence when truncating (Hugging
 * Face's truncation_side "left"; both texts are then read whole); with
 * spans not NULL, pushes three entries per output id: its bytes [start,
 * end) in its text and its sequence (0, 1; -1 for a special token of the
 * template, whose span is 0, 0). */
se_status se_tok_encode_ex(const se_tokenizer *tok, const char *text, size_t len, const char *pair, size_t pair_len,
                           size_t n_tokens_max, bool add_special, bool left, se_tok_session *s, se_i32vec *ids,
                           se_i32vec *type_ids, se_i32vec *spans, bool *truncated, se_error *err);

/* Number of special ids the template adds (pair or single). */
int se_tok_n_special(const se_tokenizer *tok, bool pair);

#endif
