/*
 * serve.h - private declarations of `sembed serve`, the HTTP embedding
 * server (serve.c: options, HTTP, the embedding routes, logging, CORS and
 * the request deadline; serve_batch.c: the dynamic batcher; serve_req.c:
 * request JSON binding and response text; serve_rerank.c: the
 * cross-encoder routes; serve_metrics.c: GET /metrics).
 * Like the CLI, the server is a program on the public API (sembed.h) only.
 */
#ifndef SE_SERVE_H
#define SE_SERVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sembed.h"

/* ==== Growable text buffer (response bodies, log lines) ==== */

typedef struct sv_buf {
    char *p;    /* malloc'd, NUL-terminated when ok */
    size_t n;   /* bytes used */
    size_t cap; /* bytes allocated */
    bool oom;   /* an append failed: the content is incomplete */
} sv_buf;

/* Appends n bytes of s; on allocation failure sets b->oom and keeps going
 * as a no-op, so callers check once at the end. */
void sv_buf_add(sv_buf *b, const char *s, size_t n);
/* Appends a NUL-terminated string. */
void sv_buf_puts(sv_buf *b, const char *s);
/* Appends printf-formatted text. */
void sv_buf_printf(sv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s (n bytes of valid UTF-8) as a JSON string literal. */
void sv_buf_json_str(sv_buf *b, const char *s, size_t n);
/* Appends a float32 with 9 significant digits (%.9g), which always read
 * back as the same float32 (JSON has no NaN: a non-finite value is
 * written as null). */
void sv_buf_float(sv_buf *b, float v);
/* Writes float32 v as JSON number text into out (at least 24 bytes): 9
 * significant digits with trailing zeros dropped, plain or with an
 * exponent as %g would choose, which always reads back as v; "null" for a
 * NaN or infinity. Returns the length (no NUL is written). serve_float.c. */
size_t sv_fmt_f32(char *out, float v);
/* Appends n floats as a JSON array. */
void sv_buf_float_array(sv_buf *b, const float *v, size_t n);
/* Appends n floats as base64 of their little-endian float32 bytes, in
 * quotes (OpenAI's encoding_format "base64"). */
void sv_buf_float_base64(sv_buf *b, const float *v, size_t n);
/* Frees the buffer's memory. */
void sv_buf_free(sv_buf *b);

/* ==== Request binding (serve_req.c) ==== */

/* The routes whose bodies are bound. */
typedef enum sv_route {
    SV_ROUTE_OPENAI_EMBED = 0,   /* POST /v1/embeddings */
    SV_ROUTE_TEI_EMBED = 1,      /* POST /embed (and POST / on an embedding model) */
    SV_ROUTE_TEI_TOKENIZE = 2,   /* POST /tokenize */
    SV_ROUTE_TEI_RERANK = 3,     /* POST /rerank {query, texts} */
    SV_ROUTE_TEI_PREDICT = 4,    /* POST /predict (and POST / on a cross-encoder) */
    SV_ROUTE_JINA_RERANK = 5,    /* POST /v1/rerank, /v1/reranking, /reranking {query, documents};
                                    on every rerank path a body with texts is bound as TEI's and
                                    one with documents (and no texts) as Jina's, as llama.cpp does */
    SV_ROUTE_TEI_SIMILARITY = 6, /* POST /similarity */
    SV_ROUTE_TEI_EMBED_ALL = 7,  /* POST /embed_all: every token's hidden state */
    SV_ROUTE_TEI_DECODE = 8,     /* POST /decode {ids, skip_special_tokens} */
    SV_ROUTE_N = 9
} sv_route;

/* One input: a text (ids == NULL) or a token id sequence (/decode: may be
 * empty); for /predict a text may have a second text (a pair). */
typedef struct sv_input {
    const char *text; /* points into the parsed JSON (valid UTF-8, no NUL) */
    size_t text_len;
    const char *pair; /* /predict: the pair's second text, or NULL */
    size_t pair_len;
    int32_t *ids;     /* malloc'd, n_ids entries; NULL for a text */
    size_t n_ids;
} sv_input;

/* A bound request. Strings point into root, which the request owns. */
typedef struct sv_request {
    json_t *root;
    sv_input *inputs;        /* n_inputs entries (malloc'd) */
    size_t n_inputs;
    const char *model;       /* NULL: the default model */
    const char *prompt_name; /* NULL: the model's default prompt */
    int32_t dimensions;      /* 0: all */
    bool base64;             /* OpenAI encoding_format "base64" */
    bool normalize;          /* TEI normalize (default true); OpenAI: true */
    bool truncate;           /* truncate long inputs (default: --auto-truncate) */
    bool truncate_set;       /* the request said truncate */
    bool truncate_left;      /* TEI truncation_direction "left": keep the last tokens */
    bool add_special;        /* /tokenize add_special_tokens (default true) */
    bool skip_special;       /* /decode skip_special_tokens (default true) */
    /* cross-encoder routes */
    sv_route route;          /* the route bound (SV_ROUTE_JINA_RERANK for a Jina body on /rerank) */
    const char *query;       /* rerank: the query (inputs are the documents) */
    size_t query_len;
    bool raw_scores;         /* TEI raw_scores: the logits instead of sigmoid/softmax */
    bool return_text;        /* TEI return_text / Jina return_documents */
    bool single;             /* inputs was one string, one id list or (/predict) one pair: TEI's
                                "single" method; /predict answers it with a flat list */
    bool doc_objects;        /* Jina: documents given as {"text": ...} objects */
    size_t top_n;            /* Jina top_n (default: all) */
} sv_request;

/* A binding error: the HTTP status, TEI's error_type, and for OpenAI the
 * parameter at fault. */
typedef struct sv_error {
    int status;             /* 400, 413, 422, ... */
    const char *type;       /* TEI error_type: "empty", "validation", "overloaded", ... */
    const char *param;      /* the JSON field at fault, or NULL */
    int why;                /* sv_fail_kind when the type alone does not say (batch size, model type); 0 */
    char msg[SE_ERROR_MSG_MAX];
} sv_error;

/* Sets e to (status, type, param, printf message); returns false, so a
 * binding function can `return sv_fail(...)`. */
bool sv_fail(sv_error *e, int status, const char *type, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Parses and checks body (len bytes) for route into *req: malformed JSON or
 * invalid UTF-8 is 400, a field of the wrong type or out of range 422, an
 * empty input 400, more than max_inputs inputs 422. n_vocab bounds token
 * ids (0: not checked here). On failure *req is freed and e says why.
 * Thread-safe. */
bool sv_request_parse(sv_route route, const char *body, size_t len, size_t max_inputs, bool auto_truncate,
                      sv_request *req, sv_error *e);

/* Frees what sv_request_parse allocated. Safe on a zeroed request. */
void sv_request_free(sv_request *req);

/* ==== Dynamic batcher (serve_batch.c) ==== */

/* One request's share of the batcher: its items finish in any order; the
 * request thread waits until all have. */
typedef struct sv_job {
    pthread_cond_t cv;      /* signalled when n_left reaches 0 (under the batcher's mutex) */
    size_t n_left;          /* items not yet computed */
    double t_queued;        /* when its items were queued (sv_now) */
    double t_start;         /* when the first of its items went into a pass (0: not yet) */
    double t_end;           /* when its last item finished */
    se_status status;       /* the first error of any item, SE_OK otherwise */
    size_t err_item;        /* which item failed */
    char msg[SE_ERROR_MSG_MAX];
} sv_job;

/* What the inference thread computes for an item. */
typedef enum sv_item_kind {
    SV_ITEM_VECTOR = 0, /* a pooled embedding: se_encode_ids */
    SV_ITEM_TOKENS = 1, /* every token's hidden state (/embed_all): se_encode_ids_tokens */
    SV_ITEM_PAIR = 2    /* a cross-encoder sequence: scored with se_predict_ids */
} sv_item_kind;

/* One sequence to compute, as token ids tokenised on the request thread
 * (se_encode_tokenize for texts: prompt, strip, lowercasing and
 * truncation as se_encode does them). Items of one kind with the same
 * parameters are computed in one call. */
typedef struct sv_item {
    sv_job *job;
    size_t index;            /* position in the request (for messages) */
    sv_item_kind kind;
    int act;                 /* pair: the se_score_act to apply */
    const int32_t *type_ids; /* pair: n_ids token types (NULL: all 0) */
    const int32_t *ids;      /* n_ids ids (none for USE lite's empty text) */
    size_t n_ids;
    size_t pool_start;       /* vector: leading tokens pooling leaves out (se_encode_params.pool_starts) */
    int32_t truncate_dim;    /* vector: se_encode_params.truncate_dim */
    bool normalize;          /* vector: se_encode_params.normalize */
    bool skip_normalize;     /* vector: se_encode_params.skip_normalize (TEI normalize: false) */
    float *out;              /* OUT: vector: se_encode_dim floats; tokens: n_ids * n_embd; pair: n_labels scores */
    struct sv_item *next;    /* queue link */
} sv_item;

typedef struct sv_batcher sv_batcher;

/* Starts a batcher for model: one inference thread with its own se_ctx of
 * n_threads threads, forward passes of at most max_batch_tokens tokens, a
 * queue of at most max_queue_items items. */
se_status sv_batcher_start(const se_model *model, int n_threads, size_t max_batch_tokens, size_t max_queue_items,
                           sv_batcher **out, se_error *err);

/* Queues n items of one job and waits until all are computed. Returns
 * false at once, queueing nothing, when the queue cannot take n more items
 * (the caller answers 429) or the batcher is stopping. Thread-safe. */
bool sv_batcher_run(sv_batcher *b, sv_job *job, sv_item *items, size_t n);

/* For /info: the items waiting now, the passes (packs of items taken
 * from the queue) run so far, and how many of those held sequences of
 * more than one request. Thread-safe. */
void sv_batcher_stats(sv_batcher *b, size_t *queued, size_t *passes, size_t *mixed);

/* Finishes the items already queued, stops the thread and frees b. NULL is
 * a no-op. */
void sv_batcher_stop(sv_batcher *b);

/* Seconds on a monotonic clock. */
double sv_now(void);

/* ==== Models and routes shared by serve.c and serve_rerank.c ==== */

/* One loaded model. */
typedef struct sv_model {
    const char *name, *dir;
    se_model *m;
    const se_tokenizer *tok;
    se_model_info info;
    sv_batcher *batcher;
} sv_model;

/* What a work route measured, for the log line and GET /metrics. */
typedef struct sv_stats {
    const char *model;  /* the model's name */
    size_t n_inputs;    /* inputs (pairs for the cross-encoder routes) */
    size_t n_tokens;    /* their tokens, special tokens included */
    double t_tokenize;  /* seconds spent tokenising on the request thread */
    double t_queue;     /* seconds from queueing to the first pass */
    double t_infer;     /* seconds from the first pass to the last result */
} sv_stats;

/* POST /rerank, /predict, /v1/rerank (and POST / on a cross-encoder):
 * scores the bound request q's pairs with the cross-encoder sm through its
 * batcher and writes the answer into out. False with e set on an error
 * (e->type "tokenizer", "validation", "overloaded", "backend"). Each
 * pair's token count goes to sv_metrics_input_length. Thread-safe. */
bool sv_route_pairs(sv_model *sm, sv_request *q, sv_buf *out, sv_stats *st, sv_error *e);

/* ==== Metrics (serve_metrics.c) ==== */

/* Why a request failed, TEI's te_request_failure{err} label. */
typedef enum sv_fail_kind {
    SV_FAIL_VALIDATION = 0,
    SV_FAIL_TOKENIZATION,
    SV_FAIL_BATCH_SIZE,
    SV_FAIL_MODEL_TYPE,
    SV_FAIL_OVERLOADED,
    SV_FAIL_INFERENCE,
    SV_FAIL_N
} sv_fail_kind;

/* Counts one work request (te_request_count{method}); batch: the input
 * was a list (TEI's "batch"), else one input ("single"). embed: an
 * embedding route (te_embed_count) or a cross-encoder one (te_predict_count). */
void sv_metrics_request(bool batch, bool embed);
/* Counts one successful work request with its timings
 * (te_request_success{method}, te_request_duration and the tokenization,
 * queue and inference histograms, te_embed/predict_success). */
void sv_metrics_success(bool batch, bool embed, double t_total, const sv_stats *st);
/* Counts one failed work request (te_request_failure{err}). */
void sv_metrics_failure(sv_fail_kind why);
/* Records one input's token count (te_request_input_length). */
void sv_metrics_input_length(size_t n_tokens);
/* Records one forward pass of the batcher (te_batch_next_size, te_batch_next_tokens). */
void sv_metrics_batch(size_t n_items, size_t n_tokens);
/* Writes every metric in Prometheus' text format (version 0.0.4) into b;
 * queued is the te_queue_size gauge (items waiting in every batcher) and
 * max_input_length bounds te_request_input_length's buckets, as TEI's do. */
void sv_metrics_render(sv_buf *b, size_t queued, size_t max_input_length);

#endif
