/*
 * tokenizers/unigram.h - the sentencepiece Unigram tokenizer model: its
 * vocabulary with piece scores, the normaliser and Metaspace settings it
 * applies while streaming, its loaders (the `model` section of a
 * tokenizer.json, and a sentencepiece `.model` in XLMRobertaTokenizer's
 * fairseq id layout) and its streaming Viterbi encoder.
 */
#ifndef SE_TOKENIZERS_UNIGRAM_H
#define SE_TOKENIZERS_UNIGRAM_H

#include "normalizer_precompiled.h"
#include "sentencepiece_model.h"
#include "tokenizer_vocab.h"

struct json_t;

/* One step of a tokenizer.json normalizer Sequence, in order. */
typedef enum {
    SE_UNI_NORM_PRECOMPILED, /* sentencepiece's charsmap, the Hugging Face way (se_precompiled_normalize_hf) */
    SE_UNI_NORM_STRIP,       /* trim Unicode White_Space: left and/or right */
    SE_UNI_NORM_REPLACE,     /* the Regex " {2,}" -> content the XLM-R converters write */
    SE_UNI_NORM_NFKC,        /* Unicode NFKC */
} se_uni_norm_kind;

typedef struct se_uni_norm_step {
    se_uni_norm_kind kind;
    bool left, right;   /* STRIP */
    char content[8];    /* REPLACE: the replacement (UTF-8, NUL-terminated) */
} se_uni_norm_step;

#define SE_UNI_NORM_MAX 8

/* Metaspace prepend schemes. */
enum { SE_PREPEND_NEVER = 0, SE_PREPEND_ALWAYS = 1, SE_PREPEND_FIRST = 2 };

/* A Unigram model. Immutable after load. */
typedef struct se_unigram {
    se_vocab vocab;
    double *scores;          /* (vocab.n) piece log-probabilities (spm: see se_unigram_load_spm) */
    uint32_t *n_chars;       /* (vocab.n) piece length in code points */
    size_t max_chars;        /* longest matchable piece, in code points */
    double unk_score;        /* min score - 10, as HF and sentencepiece */
    int32_t unk_id;          /* -1 when the model has none */
    bool byte_fallback;      /* unknown text becomes <0xNN> pieces */
    int32_t byte_ids[256];   /* their ids (with byte_fallback) */
    /* the normaliser: a sequence of steps (tokenizer.json) */
    se_uni_norm_step steps[SE_UNI_NORM_MAX];
    int n_steps;
    se_precompiled *pc;      /* the charsmap of a Precompiled step or of the .model (owned), or NULL */
    bool cut_pairs;          /* long texts are normalised in chunks cut between two ASCII letters/digits */
    /* Metaspace pre-tokenizer */
    bool metaspace;          /* ' ' -> replacement */
    int prepend;             /* SE_PREPEND_* */
    bool split;              /* Viterbi per replacement-word */
    uint32_t replacement;    /* U+2581 */
    /* modes */
    bool energetic;          /* the @energetic-ai JS tokenizer's Viterbi conventions (USE lite) */
    bool spm;                /* sentencepiece's own encoder (.model): its normaliser and float path scores */
    se_spm_norm_opts spm_opts;
    uint64_t *cp_bmp;        /* (1024) bitmap of the BMP code points found in matchable pieces */
    uint32_t *cp_astral;     /* (n_cp_astral) sorted code points above U+FFFF found in them */
    size_t n_cp_astral;
} se_unigram;

/* Per-call scratch; zero-initialise, reuse, free with se_uni_scratch_free. */
typedef struct se_uni_scratch {
    uint32_t *word;   /* the lattice window's code points */
    size_t word_cap;
    char *wbuf;       /* the window in UTF-8 */
    size_t wbuf_cap;
    uint32_t *bpos;   /* char -> byte offsets within wbuf */
    uint32_t *ssb, *sse; /* with offsets: the section's bytes [ssb[i], sse[i]) window code point i came from */
    size_t span_cap;     /* their entries (word_cap once a call with offsets ran) */
    /* the lattice over the window: lat_cap (> window length) entries each */
    double *best;     /* best path score ending at each position */
    int32_t *lid;     /* id of the last piece of that path, -1 = unset */
    uint32_t *llen;   /* that piece's length in code points (HF: length + 1, 0 = unreached) */
    uint32_t *reach;  /* end of the longest piece matched from each start */
    uint32_t *run;    /* code points ending at each one that all occur in some piece */
    size_t lat_cap;
} se_uni_scratch;

void se_uni_scratch_free(se_uni_scratch *s);

/* Loads the `model` object of a tokenizer.json of type Unigram: vocab
 * [[piece, score], ...], unk_id, byte_fallback. The index is built by
 * se_unigram_finish once the pipeline has added its added tokens (which
 * stay hidden from the Viterbi) and set the normaliser and Metaspace. */
se_status se_unigram_load_json(se_unigram *u, const struct json_t *model, const char *path, se_error *err);

/* Loads a sentencepiece Unigram `.model` in the fairseq layout of
 * XLMRobertaTokenizer: <s>=0 <pad>=1 </s>=2 <unk>=3, piece i -> i + 1,
 * <mask> last; only NORMAL and USER_DEFINED pieces are matched, as in
 * sentencepiece. Takes the charsmap and normaliser options from the model
 * (encoding is sentencepiece's: its normaliser and whitespace rules, no
 * pre-tokenizer, float32 path scores). `name` labels errors. */
se_status se_unigram_load_spm(se_unigram *u, const se_spm_model *m, const char *name, se_error *err);

/* Finishes loading: checks byte_fallback's <0xNN> pieces, builds the
 * index and the code point sets, decides how long texts are cut. */
se_status se_unigram_finish(se_unigram *u, const char *path, se_error *err);

/* Frees the model's memory (not u itself). */
void se_unigram_free(se_unigram *u);

/* Appends the ids of one section of text (no added tokens: the pipeline
 * splits them off) to out; the contract of se_wordpiece_encode (limit,
 * nch, offs, n_total). Offsets follow Hugging Face's alignments through
 * the normaliser steps and Metaspace (NFKC approximately: per run of code
 * points that compose together), or sentencepiece's norm_to_orig for a
 * `.model`. at_start says the section starts the text (Metaspace's
 * prepend_scheme "first"). The text is normalised and segmented in
 * bounded windows, so memory follows limit, not len, except for texts that
 * offer no safe place to cut. */
se_status se_unigram_encode(const se_unigram *u, const char *text, size_t len, bool at_start, size_t limit,
                            se_uni_scratch *s, se_i32vec *out, se_i32vec *nch, se_i32vec *offs, size_t *n_total,
                            se_error *err);

#endif
