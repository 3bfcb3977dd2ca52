/*
 * tokenizer.h - the tokenizer object shared by the tokenizer_*.c files.
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

/* A growable int32 array. */
typedef struct se_i32vec {
    int32_t *v;
    size_t n, cap;
} se_i32vec;

/* Appends x; returns false on OOM. */
bool se_i32vec_push(se_i32vec *a, int32_t x);
void se_i32vec_free(se_i32vec *a);

/* Open-addressing hash from piece string to id. */
typedef struct se_vocab {
    char *blob;          /* all pieces, NUL-separated */
    size_t blob_len;
    uint32_t *offs;      /* (n) offset of each id's piece in blob, UINT32_MAX = hole */
    uint32_t *lens;      /* (n) byte length of each piece */
    size_t n;            /* number of ids (largest id + 1) */
    size_t index_from;   /* ids below this are not looked up (USE lite's specials) */
    int32_t *slots;      /* (n_slots) ids, -1 = empty */
    size_t n_slots;      /* power of two */
} se_vocab;

/* An added (special) token, matched in the raw text before normalisation. */
typedef struct se_added_token {
    char *content;
    size_t len;
    int32_t id;
    bool special;
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

/* The most pieces a vocabulary may have (LaBSE, among the largest real
 * ones, has 501k; XLM-R 250k). Checked while loading. */
#define SE_VOCAB_MAX_ENTRIES ((size_t)2 << 20)

/* Unigram (sentencepiece) settings. */
typedef struct se_unigram {
    double *scores;          /* (n_vocab) piece log-probabilities */
    uint32_t *n_chars;       /* (n_vocab) piece length in code points */
    size_t max_chars;        /* longest piece, in code points */
    double unk_score;        /* min score - 10, as HF */
    bool nfkc;               /* normalizer NFKC */
    bool metaspace;          /* pre_tokenizer Metaspace: ' ' -> replacement */
    bool prepend;            /* prepend the replacement to non-empty text */
    bool split;              /* Metaspace split: Viterbi per ▁-word */
    uint32_t replacement;    /* U+2581 */
    bool energetic;          /* the @energetic-ai JS tokenizer's Viterbi conventions */
    uint64_t *cp_bmp;        /* (1024) bitmap of the BMP code points found in matchable pieces */
    uint32_t *cp_astral;     /* (n_cp_astral) sorted code points above U+FFFF found in them */
    size_t n_cp_astral;
} se_unigram;

struct se_tokenizer {
    int kind;                       /* SE_TOK_WORDPIECE or SE_TOK_UNIGRAM */
    se_unigram uni;
    se_vocab vocab;
    int32_t unk_id;                 /* -1 when the model has no unknown token */
    char cont_prefix[16];           /* "##" */
    size_t cont_prefix_len;
    size_t max_chars_per_word;      /* 100 */
    /* BertNormalizer */
    bool has_normalizer;
    bool clean_text, handle_chinese, strip_accents, lowercase;
    /* added tokens, and an index by first byte */
    se_added_token *added;
    size_t n_added;
    bool added_first_byte[256];
    /* post-processing */
    se_tpl_item single[SE_TPL_MAX], pair[SE_TPL_MAX];
    int n_single, n_pair;
    int n_special_single, n_special_pair; /* ids added by each template */
    size_t n_tokens_max;            /* default truncation (max_seq_length) */
    char *source;                   /* "tokenizer.json" or "vocab.txt", for messages */
};

/* Per-call scratch; zero-initialise, reuse, free with se_tok_session_free.
 * With a token budget, every buffer is bounded by it or by a word / window
 * size, never by the length of the text (issue 9 item 10). */
typedef struct se_tok_session {
    se_i32vec a, b;   /* ids of sequence A and B before templating */
    uint32_t *word;   /* WordPiece: normalised code points of the current word;
                         Unigram: the lattice window's code points */
    size_t word_n, word_cap;
    char *wbuf;       /* the word (window) in UTF-8 */
    size_t wbuf_cap;
    uint32_t *bpos;   /* char -> byte offsets within wbuf */
    size_t bpos_cap;
    /* WordPiece: the current word's length after strip_accents and
     * lowercase, and whether it passed max_input_chars_per_word (then its
     * code points are no longer stored: the word is [UNK] whatever follows) */
    size_t word_len, word_src, src_pending;
    bool word_over;
    /* Unigram lattice over the window: lat_cap (> window length) entries each */
    double *best;     /* best path score ending at each position */
    int32_t *lid;     /* id of the last piece of that path, -1 = unset */
    uint32_t *llen;   /* that piece's length in code points (HF: length + 1, 0 = unreached) */
    uint32_t *reach;  /* end of the longest piece matched from each start */
    uint32_t *run;    /* code points ending at each one that all occur in some piece */
    size_t lat_cap;
    /* se_tokenize_stats: when stats is set, the encoders push into nch, for
     * every id they push, the number of non-whitespace code points of the
     * text that id stands for */
    bool stats;
    se_i32vec nch;
} se_tok_session;

void se_tok_session_free(se_tok_session *s);

/* Makes the session's buffers hold n code points: word (n), bpos (n + 1)
 * and wbuf (8 n + 64 bytes: the text in UTF-8, then room for a candidate
 * piece with its prefix). Returns false on OOM. */
bool se_tok_session_reserve(se_tok_session *s, size_t n);

/* Vocabulary: build from (piece, id) pairs already in v->offs/lens/blob,
 * then look up. se_vocab_find returns -1 when absent. */
se_status se_vocab_build_index(se_vocab *v, se_error *err);
int32_t se_vocab_find(const se_vocab *v, const char *s, size_t len);
void se_vocab_free(se_vocab *v);

/* WordPiece: appends the ids of one text (no special tokens) to out.
 * With n_total NULL, stops early once out holds more than `limit` ids from
 * this call (pass SIZE_MAX for all): the text past that point is not read.
 * With n_total set, reads the whole text but keeps only the first limit + 1
 * ids in out, and stores in *n_total how many ids the whole text has (the
 * pair truncation needs to know which side is longer). Memory is bounded by
 * limit and max_input_chars_per_word, whatever the text's length.
 * Returns SE_E_UTF8 naming the byte offset for invalid UTF-8. */
se_status se_wordpiece_encode(const se_tokenizer *tok, const char *text, size_t len, size_t limit,
                              se_tok_session *s, se_i32vec *out, size_t *n_total, se_error *err);

/* Unigram: the same contract as se_wordpiece_encode. The text is
 * normalised and segmented in bounded windows (see tokenizer_unigram.c), so
 * memory follows limit, not len, except for texts that offer no safe place
 * to cut a window. */
se_status se_unigram_encode(const se_tokenizer *tok, const char *text, size_t len, size_t limit, se_tok_session *s,
                            se_i32vec *out, size_t *n_total, se_error *err);

/* Loads a tokenizer.json whose model is Unigram (called by tokenizer.c
 * with the parsed root). */
struct json_t;
se_status se_unigram_load(se_tokenizer *t, const struct json_t *root, const char *path, se_error *err);

/* Appends a piece with a given id while building a vocabulary. */
se_status se_vocab_add(se_vocab *v, size_t *blob_cap, size_t *id_cap, const char *s, size_t len, size_t id,
                       const char *file, se_error *err);

/* Full tokenization into ids/type_ids (growable), with truncation to
 * n_tokens_max (0 = none) and templating. */
se_status se_tok_encode(const se_tokenizer *tok, const char *text, size_t len, const char *pair,
                        size_t pair_len, size_t n_tokens_max, bool add_special, se_tok_session *s,
                        se_i32vec *ids, se_i32vec *type_ids, bool *truncated, se_error *err);

/* Number of special ids the template adds (pair or single). */
int se_tok_n_special(const se_tokenizer *tok, bool pair);

#endif
