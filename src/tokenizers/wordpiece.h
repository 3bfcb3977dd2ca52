/*
 * tokenizers/wordpiece.h - the WordPiece tokenizer model (BERT, MPNet):
 * its vocabulary and settings, its two loaders (vocab.txt, and the `model`
 * section of a tokenizer.json), and its streaming encoder, which applies
 * the BertNormalizer and BertPreTokenizer on the way.
 */
#ifndef SE_TOKENIZERS_WORDPIECE_H
#define SE_TOKENIZERS_WORDPIECE_H

#include "tokenizer_vocab.h"

struct json_t;

/* A WordPiece model and the BertNormalizer settings it applies. Immutable
 * after load. */
typedef struct se_wordpiece {
    se_vocab vocab;
    int32_t unk_id;            /* the unknown token (the loaders require one) */
    char cont_prefix[16];      /* "##" */
    size_t cont_prefix_len;
    size_t max_chars_per_word; /* 100 */
    /* BertNormalizer (set by the pipeline's normalizer parsing) */
    bool has_normalizer;
    bool clean_text, handle_chinese, strip_accents, lowercase;
} se_wordpiece;

/* Per-call scratch of the encoder; zero-initialise, reuse, free with
 * se_wp_scratch_free. Bounded by max_input_chars_per_word, never by the
 * text's length. */
typedef struct se_wp_scratch {
    uint32_t *word;   /* normalised code points of the current word */
    size_t word_n, word_cap;
    char *wbuf;       /* the word in UTF-8, then room for a candidate piece */
    size_t wbuf_cap;
    uint32_t *bpos;   /* char -> byte offsets within wbuf */
    /* the current word's length after strip_accents and lowercase, its
     * source code points (for stats), and whether it passed
     * max_input_chars_per_word (then its code points are no longer stored:
     * the word is [UNK] whatever follows) */
    size_t word_len, word_src, src_pending;
    bool word_over;
    se_i32vec *nch;   /* the call's stats counts, NULL without stats */
    /* offsets: the source bytes [wsb[i], wse[i]) each code point of word
     * came from (relative to the section), the span of the code point
     * being fed, and the span of the current word (kept when word_over
     * stops storing its code points); offs is the call's output, NULL
     * without offsets */
    uint32_t *wsb, *wse;
    size_t span_cap;  /* entries of wsb and wse (word_cap once a call with offsets ran) */
    uint32_t cur_b, cur_e, span_b, span_e;
    bool span_open;
    se_i32vec *offs;
} se_wp_scratch;

/* Frees the scratch buffers and zeroes s. */
void se_wp_scratch_free(se_wp_scratch *s);

/* Loads the `model` object of a tokenizer.json of type WordPiece: vocab
 * (every id below id_limit), unk_token (*unk points into model),
 * continuing_subword_prefix, max_input_chars_per_word. The index is not
 * built yet: the pipeline adds the added tokens first, then calls
 * se_wordpiece_finish. Errors name path and the field. */
se_status se_wordpiece_load_json(se_wordpiece *wp, const struct json_t *model, long long id_limit, const char *path,
                                 const char **unk, se_error *err);

/* Loads vocab.txt (one piece per line, id = line number - 1) with the
 * defaults of BertTokenizer ("##", 100 characters per word, the
 * BertNormalizer on). The index is built by se_wordpiece_finish. */
se_status se_wordpiece_load_txt(se_wordpiece *wp, const char *path, se_error *err);

/* Builds the vocabulary index and looks up the unknown token unk, which
 * must be there (Hugging Face fails at encode time on the first word it
 * cannot split; we refuse at load). `what` names the setting in the error
 * ("model.unk_token", "the unknown token"). */
se_status se_wordpiece_finish(se_wordpiece *wp, const char *unk, const char *path, const char *what, se_error *err);

/* Frees the model's memory (not wp itself). */
void se_wordpiece_free(se_wordpiece *wp);

/* Appends the ids of text[0..len) (no added tokens: the pipeline splits
 * them off first; no special tokens) to out. With nch not NULL, pushes for
 * every id the number of non-whitespace code points of the text it stands
 * for. With offs not NULL, pushes for every id two entries, the bytes
 * [start, end) of text it stands for, as Hugging Face aligns them (a piece
 * spans the source characters of its first and last normalised code
 * points; an unknown word, the whole word). With n_total NULL, stops early once out holds more than `limit` ids
 * from this call (SIZE_MAX for all): the text past that point is not read.
 * With n_total set, reads the whole text but keeps only the first
 * limit + 1 ids in out, and stores in *n_total how many ids the whole text
 * has. Returns SE_E_UTF8 naming the byte offset for invalid UTF-8. */
se_status se_wordpiece_encode(const se_wordpiece *wp, const char *text, size_t len, size_t limit, se_wp_scratch *s,
                              se_i32vec *out, se_i32vec *nch, se_i32vec *offs, size_t *n_total, se_error *err);

#endif
