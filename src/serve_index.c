/*
 * serve_index.c - the index routes of `sembed serve`: embedding, index and
 * query as one service (issue 11).
 *
 *   --index [NAME=]FILE                  an index made by `sembed index build`, opened writable
 *   POST   /search                       {index?, query, k?, filters?, ef?, mode?, alpha?, fusion?}
 *                                         -> {index, model, hits}
 *   GET    /indexes                      {indexes: [{name, file, model, documents, chunks, ...}]}
 *   GET    /indexes/{name}               one of those
 *   POST   /indexes/{name}/documents     {documents: [{id, text, meta?}, ...]} (or one document)
 *                                        -> {added, replaced, chunks}
 *   DELETE /indexes/{name}/documents/{id} -> {deleted: true}, or 404
 *
 * The same numbers as the CLI. A query is encoded as `sembed search`
 * encodes it (se_encode with default parameters: the model's default
 * prompt, if any) and searched with the same parameters, so hits and scores
 * are those of `sembed search INDEX QUERY`. Documents are chunked with the
 * chunk size and overlap the index records and encoded as `sembed index
 * add` does, so an index grown over HTTP equals one grown offline.
 *
 * Models. An index holds one model's vectors (it records that model's
 * folder and fingerprint). Each index is paired at start with a -m model
 * of the same fingerprint, or else loads its recorded folder as its own
 * model (not served on the embedding routes); a recorded model that cannot
 * be found, or no longer matches, stops the server at start.
 *
 * Threads. Each index has a query context and a write context (se_ctx is
 * one thread at a time), each behind its own mutex; a write mutex orders
 * the writes (one transaction per request: se_index_add / se_index_delete)
 * and a readers-writer lock makes each search and the fetches of its hits
 * one consistent view: writers hold it only while the index changes, not
 * while they encode, so searches run during writes. se_index itself allows
 * searches during writes, but a hit's document could be replaced between
 * se_index_search and se_index_fetch (a new text under the old chunk's
 * span); the lock rules that out.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli_pull.h"
#include "serve_index.h"

#define SV_INDEXES_MAX 16
#define SV_K_MAX 100000     /* as `sembed search -k` */
#define SV_EF_MAX 100000    /* as `sembed search --ef` */
#define SV_ENCODE_BATCH 64  /* texts per se_encode call (as `sembed index add`) */

/* ==== State ==== */

/* One open index and what it needs to answer. */
typedef struct sv_ix {
    char name[128];
    const char *file;        /* the path given to --index */
    dev_t dev;               /* the file's identity (a file given twice is refused) */
    ino_t ino;
    se_index *idx;
    const se_model *m;       /* the model that built it (a -m model, or own_model) */
    se_model *own_model;     /* the recorded folder, loaded for this index; NULL when a -m model matched */
    char model_name[256];    /* the -m name, or the recorded folder's last component (FOLDER@NAME when a -m
                                model has that name) */
    size_t dim;
    size_t chunk, overlap;   /* what se_chunk_text gets (the index's recorded chunking) */
    se_ctx *q_ctx, *w_ctx;   /* queries, writes */
    pthread_mutex_t q_mu;    /* q_ctx */
    pthread_mutex_t w_mu;    /* one write request at a time (and w_ctx) */
    pthread_rwlock_t rw;     /* searches + fetches (read) vs index changes (write) */
    bool locks;              /* the three locks were initialised */
} sv_ix;

static struct {
    const char *specs[SV_INDEXES_MAX]; /* the --index arguments */
    sv_ix ix[SV_INDEXES_MAX];
    size_t n_specs, n;                 /* given; opened (or being opened) */
} X;

/* ==== Options and start ==== */

bool sv_index_spec(const char *spec, char *msg, size_t cap) {
    if (X.n_specs == SV_INDEXES_MAX) {
        snprintf(msg, cap, "at most %d --index options", SV_INDEXES_MAX);
        return false;
    }
    sv_ix *x = &X.ix[X.n_specs];
    const char *eq = strchr(spec, '=');
    if (eq && memchr(spec, '/', (size_t)(eq - spec))) eq = NULL; /* a path with '=' in a folder name */
    if (eq) {
        if (eq == spec || (size_t)(eq - spec) >= sizeof x->name) {
            snprintf(msg, cap, "--index %s: NAME must be 1 to %zu bytes (--index NAME=FILE)", spec, sizeof x->name - 1);
            return false;
        }
        snprintf(x->name, sizeof x->name, "%.*s", (int)(eq - spec), spec);
        x->file = eq + 1;
    } else { /* the file's name without its extension */
        const char *base = strrchr(spec, '/');
        base = base ? base + 1 : spec;
        const char *dot = strrchr(base, '.');
        size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
        if (n == 0 || n >= sizeof x->name) {
            snprintf(msg, cap, "--index %s: cannot name the index after the file; use --index NAME=FILE", spec);
            return false;
        }
        snprintf(x->name, sizeof x->name, "%.*s", (int)n, base);
        x->file = spec;
    }
    if (!x->file[0]) {
        snprintf(msg, cap, "--index %s: missing FILE (--index NAME=FILE)", spec);
        return false;
    }
    for (size_t i = 0; i < X.n_specs; i++)
        if (!strcmp(X.ix[i].name, x->name)) {
            snprintf(msg, cap, "two indexes are named '%s' (use --index NAME=FILE)", x->name);
            return false;
        }
    X.specs[X.n_specs++] = spec;
    return true;
}

/* The last path component of dir (trailing slashes dropped) into buf. */
static void last_component(const char *dir, char *buf, size_t cap) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && dir[s - 1] != '/') s--;
    snprintf(buf, cap, "%.*s", (int)(n - s), dir + s);
}

/* Whether folders a and b are the same folder (by their real paths; by
 * their text when one cannot be resolved). */
static bool same_folder(const char *a, const char *b) {
    char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
    bool same = ra && rb ? !strcmp(ra, rb) : !strcmp(a, b);
    free(ra);
    free(rb);
    return same;
}

/* Picks the model of index x (info: its description): a served model with
 * the recorded fingerprint (exactly, then up to the dtype), or with an
 * index that recorded none, the served model loaded from the recorded
 * folder; otherwise loads the recorded folder. Sets x->m, x->model_name
 * (and x->own_model). false with a message in msg. */
static bool pick_model(sv_ix *x, const se_index_info *info, const sv_index_model *models, size_t n_models, int dtype,
                       se_log_fn log_fn, char *msg, size_t cap) {
    const char *rec_fp = info->params.model_fingerprint && info->params.model_fingerprint[0] ? info->params.model_fingerprint
                                                                                             : NULL;
    const char *rec_dir = info->params.model && info->params.model[0] ? info->params.model : NULL;
    se_error err = {0};
    char fp[SE_FINGERPRINT_MAX];
    const sv_index_model *found = NULL;
    for (int pass = 0; pass < 2 && !found && rec_fp; pass++)
        for (size_t i = 0; i < n_models && !found; i++) {
            if (se_model_fingerprint(models[i].m, fp, sizeof fp, &err) != SE_OK) {
                snprintf(msg, cap, "-m %s: %s", models[i].name, err.msg);
                return false;
            }
            /* pass 0: the very model; pass 1: the same model at another
             * dtype (se_index_check_model accepts it; it records nothing
             * here, as the index has a fingerprint) */
            if (pass == 0 ? !strcmp(fp, rec_fp) : se_index_check_model(x->idx, fp, NULL, NULL, NULL) == SE_OK)
                found = &models[i];
        }
    for (size_t i = 0; i < n_models && !found && !rec_fp && rec_dir; i++)
        if (same_folder(models[i].dir, rec_dir)) found = &models[i];
    if (found) {
        x->m = found->m;
        snprintf(x->model_name, sizeof x->model_name, "%s", found->name);
    } else {
        if (!rec_dir) {
            snprintf(msg, cap, "the index records no model folder, and no -m model has its fingerprint; serve the model "
                               "that built it with -m");
            return false;
        }
        se_model_params mp = se_model_default_params();
        mp.log_fn = log_fn;
        mp.dtype = (se_dtype)dtype;
        if (cli_model_load(rec_dir, &mp, &x->own_model, &err) != SE_OK) {
            snprintf(msg, cap, "the index was built with the model %s, which no -m model matches and which cannot be "
                               "loaded (%s); serve that model with -m", rec_dir, err.msg);
            return false;
        }
        x->m = x->own_model;
        last_component(rec_dir, x->model_name, sizeof x->model_name);
        for (size_t i = 0; i < n_models; i++) /* another model than the -m of that name: say whose it is */
            if (!strcmp(models[i].name, x->model_name)) {
                char folder[200];
                snprintf(folder, sizeof folder, "%s", x->model_name);
                snprintf(x->model_name, sizeof x->model_name, "%s@%s", folder, x->name);
            }
    }
    /* the same check `sembed search` makes (and, for an index without a
     * fingerprint, the recording of this one) */
    if (se_model_fingerprint(x->m, fp, sizeof fp, &err) != SE_OK || se_index_check_model(x->idx, fp, log_fn, NULL, &err) != SE_OK) {
        if (x->own_model)
            snprintf(msg, cap, "%s (the model folder the index records, %s, no longer holds the model that built it; "
                               "serve that model with -m)", err.msg, rec_dir);
        else
            snprintf(msg, cap, "%s (model %s)", err.msg, x->model_name);
        return false;
    }
    return true;
}

/* Works out what se_chunk_text gets for x, as `sembed index add` does
 * (fit_chunk in cli_index.c): the recorded chunk size, lowered to what the
 * model reads (max_seq_length less its special tokens) with a warning; 0
 * stays 0 (the model's limit). An overlap of a whole chunk is refused. */
static bool fit_chunking(sv_ix *x, const se_index_info *info, se_log_fn log_fn, char *msg, size_t cap) {
    const se_tokenizer *tok = se_model_tokenizer(x->m);
    se_tokenize_params tp = se_tokenize_default_params(tok);
    int32_t ids[16];
    size_t n_special = 0;
    if (se_tokenize(tok, "", 0, NULL, 0, &tp, ids, NULL, 16, &n_special, NULL, NULL) != SE_OK) n_special = 0;
    size_t limit = se_tokenizer_n_tokens_max(tok), room = limit > n_special ? limit - n_special : 1;
    if (!limit) room = SIZE_MAX;
    x->chunk = info->params.chunk_tokens;
    x->overlap = info->params.chunk_overlap;
    if (x->chunk > room) {
        char note[300];
        snprintf(note, sizeof note, "index %s: its chunks of %zu tokens exceed what the model reads; chunks of %zu tokens "
                                    "are used for new documents", x->name, x->chunk, room);
        if (log_fn) log_fn(SE_LOG_WARN, note, NULL);
        x->chunk = room;
    }
    size_t eff = x->chunk ? x->chunk : room;
    if (x->overlap >= eff) {
        snprintf(msg, cap, "its chunk overlap (%zu tokens) is not smaller than the chunk size (%zu tokens)", x->overlap, eff);
        return false;
    }
    return true;
}

bool sv_indexes_open(const sv_index_model *models, size_t n_models, int dtype, int n_threads, se_log_fn log_fn,
                     char *msg, size_t cap) {
    char why[SE_ERROR_MSG_MAX + 400];
    for (size_t i = 0; i < X.n_specs; i++) {
        sv_ix *x = &X.ix[i];
        X.n = i + 1;
        pthread_rwlockattr_t ra;
        pthread_rwlockattr_init(&ra);
        /* a steady stream of searches must not starve a writer */
        pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&x->rw, &ra);
        pthread_rwlockattr_destroy(&ra);
        pthread_mutex_init(&x->q_mu, NULL);
        pthread_mutex_init(&x->w_mu, NULL);
        x->locks = true;
        se_error err = {0};
        struct stat st;
        if (stat(x->file, &st) == 0) {
            /* two handles on one file would each keep their own graph, blind to the other's writes */
            for (size_t j = 0; j < i; j++)
                if (X.ix[j].dev == st.st_dev && X.ix[j].ino == st.st_ino) {
                    snprintf(msg, cap, "--index %s: the same file as --index %s (serve it once)", X.specs[i], X.specs[j]);
                    return false;
                }
            x->dev = st.st_dev, x->ino = st.st_ino;
        }
        if (se_index_open(x->file, false, log_fn, NULL, &x->idx, &err) != SE_OK) {
            snprintf(msg, cap, "--index %s: %s", X.specs[i], err.msg);
            return false;
        }
        se_index_info info;
        if (se_index_get_info(x->idx, &info, &err) != SE_OK) {
            snprintf(msg, cap, "--index %s: %s", X.specs[i], err.msg);
            return false;
        }
        if (!pick_model(x, &info, models, n_models, dtype, log_fn, why, sizeof why) ||
            !fit_chunking(x, &info, log_fn, why, sizeof why)) {
            snprintf(msg, cap, "--index %s: %s", X.specs[i], why);
            return false;
        }
        x->dim = se_encode_dim(x->m, NULL);
        if (x->dim != info.dim) {
            snprintf(msg, cap, "--index %s: the model %s gives %zu-dimensional vectors, the index holds %zu", X.specs[i],
                     x->model_name, x->dim, info.dim);
            return false;
        }
        se_ctx_params cp = se_ctx_default_params();
        if (n_threads > 0) cp.n_threads = n_threads;
        if (se_ctx_new(x->m, &cp, &x->q_ctx, &err) != SE_OK || se_ctx_new(x->m, &cp, &x->w_ctx, &err) != SE_OK) {
            snprintf(msg, cap, "--index %s: %s", X.specs[i], err.msg);
            return false;
        }
        if (log_fn) {
            char note[SE_ERROR_MSG_MAX];
            snprintf(note, sizeof note, "index %s: %s, %zu documents, %zu chunks, model %s%s", x->name, x->file, info.n_docs,
                     info.n_vectors, x->model_name, x->own_model ? " (loaded from the folder the index records)" : "");
            log_fn(SE_LOG_INFO, note, NULL);
        }
    }
    return true;
}

bool sv_indexes_close(char *msg, size_t cap) {
    bool ok = true;
    for (size_t i = 0; i < X.n; i++) {
        sv_ix *x = &X.ix[i];
        se_error err = {0};
        if (x->idx && se_index_close(x->idx, &err) != SE_OK) {
            if (ok) snprintf(msg, cap, "index %s (%s): %s", x->name, x->file, err.msg);
            ok = false;
        }
        x->idx = NULL;
        se_ctx_free(x->q_ctx);
        se_ctx_free(x->w_ctx);
        x->q_ctx = x->w_ctx = NULL;
        se_model_free(x->own_model);
        x->own_model = NULL;
        if (x->locks) {
            pthread_rwlock_destroy(&x->rw);
            pthread_mutex_destroy(&x->q_mu);
            pthread_mutex_destroy(&x->w_mu);
            x->locks = false;
        }
    }
    X.n = 0;
    return ok;
}

/* ==== Response text ==== */

/* Appends n bytes of s as a JSON string, each byte sequence that is not
 * valid UTF-8 written as U+FFFD: a stored text comes from the index file,
 * which the request's JSON parser never saw. */
static void json_str_utf8(sv_buf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, ok_from = 0;
    sv_buf_add(b, "\"", 1);
    while (i < n) {
        unsigned char c = u[i];
        size_t k = c < 0x80 ? 1 : c >= 0xC2 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xF0 && c < 0xF5 ? 4 : 0;
        bool valid = k && i + k <= n;
        for (size_t j = 1; valid && j < k; j++) valid = (u[i + j] & 0xC0) == 0x80;
        if (valid && k == 3) valid = !(c == 0xE0 && u[i + 1] < 0xA0) && !(c == 0xED && u[i + 1] >= 0xA0);
        if (valid && k == 4) valid = !(c == 0xF0 && u[i + 1] < 0x90) && !(c == 0xF4 && u[i + 1] >= 0x90);
        if (valid) {
            i += k;
            continue;
        }
        /* flush the valid run (escaped), then the replacement character */
        sv_buf tmp = {0};
        sv_buf_json_str(&tmp, s + ok_from, i - ok_from);
        if (tmp.n >= 2) sv_buf_add(b, tmp.p + 1, tmp.n - 2);
        b->oom |= tmp.oom;
        sv_buf_free(&tmp);
        sv_buf_puts(b, "\\ufffd");
        i++;
        ok_from = i;
    }
    sv_buf tmp = {0};
    sv_buf_json_str(&tmp, s + ok_from, n - ok_from);
    if (tmp.n >= 2) sv_buf_add(b, tmp.p + 1, tmp.n - 2);
    b->oom |= tmp.oom;
    sv_buf_free(&tmp);
    sv_buf_add(b, "\"", 1);
}

/* Appends the stored metadata text as JSON: the object, re-serialised (as
 * the index stores it: compact, sorted keys), or null when there is none
 * or the stored text is not a JSON object. */
static void json_meta(sv_buf *b, const char *meta) {
    json_t *o = meta ? json_loads(meta, 0, NULL) : NULL;
    char *t = json_is_object(o) ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII) : NULL;
    sv_buf_puts(b, t ? t : "null");
    free(t);
    json_decref(o);
}

/* Appends index x's description: {"name", "file", "model", "documents",
 * "chunks", "dim", "metric", "kind"}. */
static void index_entry(sv_buf *b, sv_ix *x) {
    se_index_info in;
    pthread_rwlock_rdlock(&x->rw);
    bool ok = se_index_get_info(x->idx, &in, NULL) == SE_OK;
    pthread_rwlock_unlock(&x->rw);
    sv_buf_puts(b, "{\"name\":");
    sv_buf_json_str(b, x->name, strlen(x->name));
    sv_buf_puts(b, ",\"file\":");
    json_str_utf8(b, x->file, strlen(x->file));
    sv_buf_puts(b, ",\"model\":");
    sv_buf_json_str(b, x->model_name, strlen(x->model_name));
    if (ok)
        sv_buf_printf(b, ",\"documents\":%zu,\"chunks\":%zu,\"dim\":%zu,\"metric\":\"%s\",\"kind\":\"%s\"}", in.n_docs,
                      in.n_vectors, in.dim,
                      in.params.metric == SE_METRIC_DOT ? "dot" : in.params.metric == SE_METRIC_L2 ? "l2" : "cosine",
                      in.params.kind == SE_INDEX_FLAT ? "flat" : "hnsw");
    else
        sv_buf_puts(b, ",\"documents\":null,\"chunks\":null}");
}

void sv_indexes_info(sv_buf *b) {
    sv_buf_puts(b, ",\"indexes\":[");
    for (size_t i = 0; i < X.n; i++) {
        if (i) sv_buf_puts(b, ",");
        index_entry(b, &X.ix[i]);
    }
    sv_buf_puts(b, "]");
}

/* ==== Request binding ==== */

/* The index named name (NULL: the first), or NULL. */
static sv_ix *find_index(const char *name) {
    if (!name) return X.n ? &X.ix[0] : NULL;
    for (size_t i = 0; i < X.n; i++)
        if (!strcmp(X.ix[i].name, name)) return &X.ix[i];
    return NULL;
}

/* Fails e with 404 for an unknown index name (listing the loaded ones). */
static bool no_index(sv_error *e, const char *name) {
    char names[512] = "";
    for (size_t i = 0; i < X.n; i++) {
        if (i) strncat(names, ", ", sizeof names - strlen(names) - 1);
        strncat(names, X.ix[i].name, sizeof names - strlen(names) - 1);
    }
    if (!X.n) return sv_fail(e, 404, "not_found", "index", "no index is loaded (start the server with --index NAME=FILE)");
    return sv_fail(e, 404, "not_found", "index", "no index named `%.200s` (loaded: %s)", name, names);
}

/* Parses body as a JSON object into *root (the caller frees it): 400 for
 * malformed JSON (or invalid UTF-8, or a NUL in a string), 422 for another
 * JSON value. */
static bool parse_object(const char *body, size_t len, json_t **root, sv_error *e) {
    json_error_t je;
    *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    if (!*root) return sv_fail(e, 400, "validation", NULL, "malformed JSON at line %d, column %d: %s", je.line, je.column, je.text);
    if (!json_is_object(*root)) return sv_fail(e, 422, "validation", NULL, "the body must be a JSON object");
    return true;
}

/* Refuses (422) any field of object o (called where) not in the
 * NULL-terminated list known, so that a misspelt field (top_k for k) is
 * not silently ignored. */
static bool only_fields(json_t *o, const char *const *known, const char *where, sv_error *e) {
    const char *key;
    const json_t *v;
    json_object_foreach(o, key, v) {
        bool ok = false;
        for (size_t i = 0; known[i] && !ok; i++) ok = !strcmp(key, known[i]);
        if (!ok) {
            char list[200] = "";
            for (size_t i = 0; known[i]; i++) {
                if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
                strncat(list, known[i], sizeof list - strlen(list) - 1);
            }
            return sv_fail(e, 422, "validation", NULL, "%s: unknown field `%.100s` (the fields are: %s)", where, key, list);
        }
    }
    return true;
}

/* Reads the optional whole-number field key of o into *out, within
 * [lo, hi] (null counts as absent). */
static bool opt_int(const json_t *o, const char *key, long lo, long hi, long *out, sv_error *e) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return sv_fail(e, 422, "validation", key, "`%s` must be a whole number from %ld to %ld", key, lo, hi);
    *out = (long)json_integer_value(v);
    return true;
}

/* ==== POST /search ==== */

/* A filter value as the index compares it (se_index_filter: strings as
 * text, numbers and booleans by their JSON text), into buf; false for an
 * array or object. */
static bool filter_value(const json_t *v, char *buf, size_t cap, const char **out) {
    if (json_is_string(v)) {
        *out = json_string_value(v);
    } else if (json_is_integer(v)) {
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
        *out = buf;
    } else if (json_is_real(v) || json_is_boolean(v) || json_is_null(v)) {
        char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (!t) return false;
        snprintf(buf, cap, "%s", t);
        free(t);
        *out = buf;
    } else {
        return false;
    }
    return true;
}

/* Encodes the query text with x's query context, as `sembed search` does
 * (se_encode, default parameters), into vec (x->dim floats). */
static bool encode_query(sv_ix *x, const char *text, size_t len, float *vec, sv_error *e) {
    se_error err = {0};
    pthread_mutex_lock(&x->q_mu);
    se_status s = se_encode(x->q_ctx, &text, &len, 1, NULL, vec, x->dim, NULL, &err);
    pthread_mutex_unlock(&x->q_mu);
    if (s == SE_E_NOMEM) return sv_fail(e, 503, "overloaded", NULL, "out of memory");
    if (s != SE_OK) return sv_fail(e, 424, "backend", "query", "the query: %s", err.msg);
    return true;
}

/* POST /search: binds {index?, query, k?, filters?, ef?, mode?, alpha?,
 * fusion?}, encodes the query (not for mode "keyword"), searches (best
 * chunk per document, as `sembed search`; mode "vector" (default),
 * "keyword" or "hybrid" as its --keyword / --hybrid, fusion "score" or
 * "rrf" and alpha as --fusion / --alpha), and writes {"index", "model",
 * "hits": [{"id", "score", ["title",] "text", "chunk", "start", "end", "meta"}]} best
 * first, text the chunk's text; keyword and hybrid hits add
 * "vector_score" and "keyword_score" (null where that side did not return
 * the document). */
static bool route_search(const char *body, size_t len, sv_buf *out, const char **model, sv_error *e) {
    static const char *const known[] = {"index", "query", "k", "filters", "ef", "mode", "alpha", "fusion", NULL};
    json_t *root = NULL;
    float *vec = NULL;
    se_index_hit *hits = NULL;
    bool ok = false;
    long k = 10, ef = 0;
    se_index_filter filters[SE_INDEX_FILTERS_MAX];
    char fbuf[SE_INDEX_FILTERS_MAX][64];
    size_t nf = 0;
    if (!parse_object(body, len, &root, e) || !only_fields(root, known, "/search", e)) goto done;
    const json_t *jn = json_object_get(root, "index"), *jq = json_object_get(root, "query");
    json_t *jf = json_object_get(root, "filters");
    if (jn && !json_is_null(jn) && !json_is_string(jn)) {
        sv_fail(e, 422, "validation", "index", "`index` must be a string (the name given to --index)");
        goto done;
    }
    if (!jq) {
        sv_fail(e, 422, "validation", "query", "missing field `query`");
        goto done;
    }
    if (!json_is_string(jq)) {
        sv_fail(e, 422, "validation", "query", "`query` must be a string");
        goto done;
    }
    if (json_string_length(jq) == 0) {
        sv_fail(e, 400, "empty", "query", "`query` cannot be empty");
        goto done;
    }
    if (!opt_int(root, "k", 1, SV_K_MAX, &k, e) || !opt_int(root, "ef", 1, SV_EF_MAX, &ef, e)) goto done;
    se_search_mode mode = SE_SEARCH_VECTOR;
    se_fusion fusion = SE_FUSION_DEFAULT;
    float alpha = -1;
    const json_t *jm = json_object_get(root, "mode"), *ja = json_object_get(root, "alpha"),
                 *jfu = json_object_get(root, "fusion");
    if (jm && !json_is_null(jm)) {
        const char *m = json_is_string(jm) ? json_string_value(jm) : "";
        if (!strcmp(m, "vector")) mode = SE_SEARCH_VECTOR;
        else if (!strcmp(m, "keyword")) mode = SE_SEARCH_KEYWORD;
        else if (!strcmp(m, "hybrid")) mode = SE_SEARCH_HYBRID;
        else {
            sv_fail(e, 422, "validation", "mode", "`mode` must be \"vector\", \"keyword\" or \"hybrid\"");
            goto done;
        }
    }
    if (jfu && !json_is_null(jfu)) {
        const char *f = json_is_string(jfu) ? json_string_value(jfu) : "";
        if (!strcmp(f, "score")) fusion = SE_FUSION_SCORE;
        else if (!strcmp(f, "rrf")) fusion = SE_FUSION_RRF;
        else {
            sv_fail(e, 422, "validation", "fusion", "`fusion` must be \"score\" or \"rrf\"");
            goto done;
        }
    }
    if (ja && !json_is_null(ja)) {
        if (!json_is_number(ja) || json_number_value(ja) < 0 || json_number_value(ja) > 1) {
            sv_fail(e, 422, "validation", "alpha", "`alpha` must be a number from 0 to 1 (the vector side's weight)");
            goto done;
        }
        alpha = (float)json_number_value(ja);
    }
    if (mode != SE_SEARCH_HYBRID && ((ja && !json_is_null(ja)) || (jfu && !json_is_null(jfu)))) {
        sv_fail(e, 422, "validation", ja && !json_is_null(ja) ? "alpha" : "fusion",
                "`alpha` and `fusion` are for \"mode\": \"hybrid\"");
        goto done;
    }
    if (fusion == SE_FUSION_RRF && alpha >= 0) {
        sv_fail(e, 422, "validation", "alpha", "`alpha` weighs \"fusion\": \"score\", not rrf");
        goto done;
    }
    if (jf && !json_is_null(jf)) {
        if (!json_is_object(jf)) {
            sv_fail(e, 422, "validation", "filters", "`filters` must be an object of metadata field: value");
            goto done;
        }
        if (json_object_size(jf) > SE_INDEX_FILTERS_MAX) {
            sv_fail(e, 422, "validation", "filters", "`filters` has %zu terms; at most %d", json_object_size(jf),
                    SE_INDEX_FILTERS_MAX);
            goto done;
        }
        const char *key;
        const json_t *v;
        json_object_foreach(jf, key, v) {
            if (!key[0] || strchr(key, '"') || strlen(key) > 1000) {
                sv_fail(e, 422, "validation", "filters", "`filters`: a key must be 1 to 1000 bytes without '\"'");
                goto done;
            }
            if (!filter_value(v, fbuf[nf], sizeof fbuf[nf], &filters[nf].value)) {
                sv_fail(e, 422, "validation", "filters",
                        "`filters`.`%.100s` must be a string, number, boolean or null (a document matches when its field "
                        "equals it, or is an array holding it)", key);
                goto done;
            }
            filters[nf++].key = key;
        }
    }
    sv_ix *x = find_index(json_is_string(jn) ? json_string_value(jn) : NULL);
    if (!x) {
        no_index(e, json_is_string(jn) ? json_string_value(jn) : NULL);
        goto done;
    }
    *model = x->model_name;
    vec = malloc(x->dim * sizeof *vec);
    hits = malloc((size_t)k * sizeof *hits);
    if (!vec || !hits) {
        sv_fail(e, 503, "overloaded", NULL, "out of memory");
        goto done;
    }
    if (mode != SE_SEARCH_KEYWORD && !encode_query(x, json_string_value(jq), json_string_length(jq), vec, e)) goto done;
    se_index_search_params sp = se_index_search_default_params();
    sp.k = (size_t)k;
    sp.ef_search = (uint32_t)ef;
    sp.filters = filters;
    sp.n_filters = nf;
    sp.mode = mode;
    sp.text = json_string_value(jq);
    sp.fusion = fusion;
    sp.alpha = alpha;
    size_t nh = 0;
    se_error err = {0};
    sv_buf_puts(out, "{\"index\":");
    sv_buf_json_str(out, x->name, strlen(x->name));
    sv_buf_puts(out, ",\"model\":");
    sv_buf_json_str(out, x->model_name, strlen(x->model_name));
    sv_buf_puts(out, ",\"hits\":[");
    pthread_rwlock_rdlock(&x->rw);
    se_status s = se_index_search(x->idx, vec, &sp, hits, &nh, &err);
    for (size_t h = 0; h < nh && s == SE_OK; h++) {
        se_index_doc_out d;
        if ((s = se_index_fetch(x->idx, hits[h].doc, &d, &err)) != SE_OK) break;
        size_t tl = strlen(d.text);
        size_t s0 = hits[h].start < tl ? hits[h].start : tl, s1 = hits[h].end < tl ? hits[h].end : tl;
        if (s1 < s0) s1 = s0;
        sv_buf_puts(out, h ? ",{\"id\":" : "{\"id\":");
        json_str_utf8(out, d.id, strlen(d.id));
        sv_buf_puts(out, ",\"score\":");
        sv_buf_float(out, hits[h].score);
        if (mode != SE_SEARCH_VECTOR) {
            sv_buf_puts(out, ",\"vector_score\":");
            if (isnan(hits[h].vector_score)) sv_buf_puts(out, "null");
            else sv_buf_float(out, hits[h].vector_score);
            sv_buf_puts(out, ",\"keyword_score\":");
            if (isnan(hits[h].keyword_score)) sv_buf_puts(out, "null");
            else sv_buf_float(out, hits[h].keyword_score);
        }
        if (d.title) {
            sv_buf_puts(out, ",\"title\":");
            json_str_utf8(out, d.title, strlen(d.title));
        }
        sv_buf_puts(out, ",\"text\":");
        json_str_utf8(out, d.text + s0, s1 - s0);
        sv_buf_printf(out, ",\"chunk\":%u,\"start\":%zu,\"end\":%zu,\"meta\":", hits[h].chunk, s0, s1);
        json_meta(out, d.meta);
        sv_buf_puts(out, "}");
        se_free(d.id);
        se_free(d.text);
        se_free(d.meta);
        se_free(d.title);
    }
    pthread_rwlock_unlock(&x->rw);
    if (s != SE_OK) {
        if (s == SE_E_NOMEM) sv_fail(e, 503, "overloaded", NULL, "out of memory");
        else if (s == SE_E_INVALID || s == SE_E_RANGE || s == SE_E_UNSUPPORTED) sv_fail(e, 422, "validation", NULL, "%s", err.msg);
        else sv_fail(e, 500, "backend", NULL, "index %s: %s", x->name, err.msg);
        goto done;
    }
    sv_buf_puts(out, "]}");
    ok = true;
done:
    json_decref(root);
    free(vec);
    free(hits);
    return ok;
}

/* ==== POST /indexes/{name}/documents ==== */

/* One document of a request, bound. */
typedef struct sv_doc {
    const char *id, *text;   /* id: into the JSON or idbuf; text: into the JSON */
    size_t text_len;
    const char *title;       /* into the JSON; NULL: none (absent, null or "") */
    size_t title_len;
    char idbuf[32];          /* an integer id as text */
    char *meta;              /* malloc'd (jansson) JSON object text, or NULL */
    bool dropped;            /* a later document of the request has the same id */
    uint32_t *spans;         /* se_chunk_text's (se_free) */
    size_t n_chunks;
} sv_doc;

/* Binds document i (the JSON object v; the whole body when alone) into
 * *d: id (a non-empty string or an integer, as a JSONL id), text (a
 * string), title (a string or null: stored and keyword-indexed as its own
 * field, embedded as title + " " + each chunk, as `sembed index add`
 * does with a JSONL "title"), meta (an object or null; stored as `sembed index add` stores a
 * JSONL line's other fields: compact, sorted keys, ASCII; an empty object
 * is no metadata). Messages name documents[i] (or the body). */
static bool bind_doc(json_t *v, size_t i, bool alone, sv_doc *d, sv_error *e) {
    static const char *const known[] = {"id", "text", "title", "meta", NULL};
    char where[64];
    if (alone) snprintf(where, sizeof where, "the document (a body without `documents`)");
    else snprintf(where, sizeof where, "documents[%zu]", i);
    if (!json_is_object(v)) return sv_fail(e, 422, "validation", "documents", "%s must be an object {id, text, title, meta}", where);
    if (!only_fields(v, known, where, e)) return false;
    const json_t *id = json_object_get(v, "id"), *t = json_object_get(v, "text"), *m = json_object_get(v, "meta");
    if (json_is_string(id) && json_string_length(id) > 0) {
        d->id = json_string_value(id);
    } else if (json_is_integer(id)) {
        snprintf(d->idbuf, sizeof d->idbuf, "%lld", (long long)json_integer_value(id));
        d->id = d->idbuf;
    } else {
        return sv_fail(e, 422, "validation", "documents", "%s.id %s", where,
                       id ? "must be a non-empty string or an integer" : "is missing");
    }
    if (!json_is_string(t))
        return sv_fail(e, 422, "validation", "documents", "%s.text %s", where, t ? "must be a string" : "is missing");
    d->text = json_string_value(t);
    d->text_len = json_string_length(t);
    const json_t *ti = json_object_get(v, "title");
    if (ti && !json_is_null(ti) && !json_is_string(ti))
        return sv_fail(e, 422, "validation", "documents", "%s.title must be a string or null", where);
    if (json_is_string(ti) && json_string_length(ti)) {
        d->title = json_string_value(ti);
        d->title_len = json_string_length(ti);
        if (strlen(d->title) != d->title_len)
            return sv_fail(e, 422, "validation", "documents", "%s.title contains a NUL character", where);
    }
    if (m && !json_is_null(m)) {
        if (!json_is_object(m)) return sv_fail(e, 422, "validation", "documents", "%s.meta must be an object or null", where);
        if (json_object_size(m) && !(d->meta = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)))
            return sv_fail(e, 503, "overloaded", NULL, "out of memory");
    }
    return true;
}

/* Chunks and encodes the kept documents of one request with x's write
 * context (the caller holds x->w_mu), 64 chunks per se_encode call as
 * `sembed index add`; *vecs (malloc'd) gets every chunk's vector in
 * document order, *n_total their number. */
static bool encode_docs(sv_ix *x, sv_doc *docs, size_t n, float **vecs, size_t *n_total, sv_error *e) {
    const se_tokenizer *tok = se_model_tokenizer(x->m);
    size_t total = 0;
    se_error err = {0};
    for (size_t i = 0; i < n; i++) {
        if (docs[i].dropped) continue;
        se_status s = se_chunk_text(tok, docs[i].text, docs[i].text_len, x->chunk, x->overlap, &docs[i].spans,
                                    &docs[i].n_chunks, &err);
        if (s == SE_E_NOMEM) return sv_fail(e, 503, "overloaded", NULL, "out of memory");
        if (s != SE_OK) return sv_fail(e, 422, "tokenizer", "documents", "documents[%zu] (id %.100s): %s", i, docs[i].id, err.msg);
        total += docs[i].n_chunks;
    }
    const char **ct = malloc((total ? total : 1) * sizeof *ct);
    size_t *cl = malloc((total ? total : 1) * sizeof *cl);
    float *v = malloc((total ? total : 1) * x->dim * sizeof *v);
    char **joined = calloc(total ? total : 1, sizeof *joined); /* a titled document's title + " " + chunk */
    if (!ct || !cl || !v || !joined) {
        free(ct), free(cl), free(v), free(joined);
        return sv_fail(e, 503, "overloaded", NULL, "out of memory");
    }
    size_t c = 0;
    bool oom = false;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; !docs[i].dropped && k < docs[i].n_chunks; k++, c++) {
            ct[c] = docs[i].text + docs[i].spans[2 * k];
            cl[c] = docs[i].spans[2 * k + 1] - docs[i].spans[2 * k];
            if (!docs[i].title || oom) continue;
            size_t tl = docs[i].title_len;
            if (!(joined[c] = malloc(tl + 1 + cl[c]))) {
                oom = true;
                continue;
            }
            memcpy(joined[c], docs[i].title, tl);
            joined[c][tl] = ' ';
            memcpy(joined[c] + tl + 1, ct[c], cl[c]);
            ct[c] = joined[c];
            cl[c] += tl + 1;
        }
    if (oom) {
        for (size_t j = 0; j < total; j++) free(joined[j]);
        free(ct), free(cl), free(v), free(joined);
        return sv_fail(e, 503, "overloaded", NULL, "out of memory");
    }
    se_status s = SE_OK;
    size_t at = 0;
    for (; at < total && s == SE_OK; at += SV_ENCODE_BATCH) {
        size_t b = total - at < SV_ENCODE_BATCH ? total - at : SV_ENCODE_BATCH;
        s = se_encode(x->w_ctx, ct + at, cl + at, b, NULL, v + at * x->dim, b * x->dim, NULL, &err);
    }
    for (size_t j = 0; j < total; j++) free(joined[j]);
    free(joined);
    free(ct);
    free(cl);
    if (s != SE_OK) {
        free(v);
        if (s == SE_E_NOMEM) return sv_fail(e, 503, "overloaded", NULL, "out of memory");
        return sv_fail(e, 424, "backend", "documents", "encoding the chunks: %s", err.msg);
    }
    *vecs = v;
    *n_total = total;
    return true;
}

/* qsort_r order of document positions (into docs, the context) by id,
 * then by position. */
static int by_id(const void *a, const void *b, void *ctx) {
    const sv_doc *docs = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(docs[i].id, docs[j].id);
    return c ? c : (i > j) - (i < j);
}

/* Marks the earlier of documents with the same id as dropped: the later
 * one replaces it, as in `sembed index add`. false when out of memory. */
static bool drop_repeats(sv_doc *docs, size_t n) {
    if (n < 2) return true;
    size_t *ix = malloc(n * sizeof *ix);
    if (!ix) return false;
    for (size_t i = 0; i < n; i++) ix[i] = i;
    qsort_r(ix, n, sizeof *ix, by_id, docs);
    for (size_t k = 1; k < n; k++)
        if (!strcmp(docs[ix[k - 1]].id, docs[ix[k]].id)) docs[ix[k - 1]].dropped = true;
    free(ix);
    return true;
}

/* POST /indexes/{name}/documents: binds {"documents": [...]} (or
 * {"documents": {...}}, or one document as the whole body), chunks and
 * encodes every document, then adds them in one transaction. Answers
 * {"added": new documents, "replaced": documents whose id existed,
 * "chunks": chunks written}. A request with an id twice keeps the later
 * document. Nothing is written unless every document is valid. */
static bool route_add(sv_ix *x, const char *body, size_t len, sv_buf *out, sv_error *e) {
    json_t *root = NULL;
    sv_doc *docs = NULL;
    float *vecs = NULL;
    se_index_doc *id = NULL;
    size_t n = 0, total = 0;
    bool ok = false, locked = false;
    if (!parse_object(body, len, &root, e)) goto done;
    json_t *list = json_object_get(root, "documents");
    if (list) {
        static const char *const known[] = {"documents", NULL};
        if (!only_fields(root, known, "the body", e)) goto done;
        if (!json_is_array(list) && !json_is_object(list)) {
            sv_fail(e, 422, "validation", "documents", "`documents` must be a list of {id, text, title, meta} (or one)");
            goto done;
        }
    } else {
        list = root; /* one document as the body */
    }
    n = json_is_array(list) ? json_array_size(list) : 1;
    if (n == 0) {
        sv_fail(e, 400, "empty", "documents", "`documents` cannot be empty");
        goto done;
    }
    docs = calloc(n, sizeof *docs);
    if (!docs) {
        sv_fail(e, 503, "overloaded", NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if (!bind_doc(json_is_array(list) ? json_array_get(list, i) : list, i, list == root, &docs[i], e)) goto done;
    if (!drop_repeats(docs, n)) {
        sv_fail(e, 503, "overloaded", NULL, "out of memory");
        goto done;
    }
    pthread_mutex_lock(&x->w_mu);
    locked = true;
    if (!encode_docs(x, docs, n, &vecs, &total, e)) goto done;
    size_t n_kept = 0;
    if (!(id = calloc(n, sizeof *id))) {
        sv_fail(e, 503, "overloaded", NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0, c = 0; i < n; i++) {
        if (docs[i].dropped) continue;
        id[n_kept++] = (se_index_doc){docs[i].id, docs[i].text, docs[i].meta, docs[i].n_chunks, docs[i].spans,
                                      vecs + c * x->dim, docs[i].title};
        c += docs[i].n_chunks;
    }
    se_index_info before, after;
    se_error err = {0};
    /* the counts (a COUNT(*) each) are taken outside the readers-writer
     * lock: w_mu already keeps other writes out */
    se_status s = se_index_get_info(x->idx, &before, &err);
    if (s == SE_OK) {
        pthread_rwlock_wrlock(&x->rw);
        s = se_index_add(x->idx, id, n_kept, &err);
        pthread_rwlock_unlock(&x->rw);
    }
    se_status s2 = s == SE_OK ? se_index_get_info(x->idx, &after, &err) : s;
    if (s != SE_OK) {
        if (s == SE_E_NOMEM) sv_fail(e, 503, "overloaded", NULL, "out of memory");
        else if (s == SE_E_INVALID || s == SE_E_FORMAT || s == SE_E_RANGE) sv_fail(e, 422, "validation", "documents", "%s", err.msg);
        else sv_fail(e, 500, "backend", NULL, "index %s: %s", x->name, err.msg);
        goto done;
    }
    /* writes are serialised by w_mu, so the count moved by this request only */
    size_t added = s2 == SE_OK && after.n_docs >= before.n_docs ? after.n_docs - before.n_docs : 0;
    sv_buf_printf(out, "{\"added\":%zu,\"replaced\":%zu,\"chunks\":%zu}", added, n_kept - added, total);
    ok = true;
done:
    if (locked) pthread_mutex_unlock(&x->w_mu);
    for (size_t i = 0; docs && i < n; i++) {
        free(docs[i].meta);
        se_free(docs[i].spans);
    }
    free(docs);
    free(id);
    free(vecs);
    json_decref(root);
    return ok;
}

/* DELETE /indexes/{name}/documents/{id}: {"deleted": true}, or 404 when
 * the index has no document with that id. */
static bool route_delete(sv_ix *x, const char *doc_id, sv_buf *out, sv_error *e) {
    if (!doc_id[0]) return sv_fail(e, 404, "not_found", NULL, "no document id in the path (/indexes/%s/documents/ID)", x->name);
    size_t nd = 0;
    se_error err = {0};
    pthread_mutex_lock(&x->w_mu);
    pthread_rwlock_wrlock(&x->rw);
    se_status s = se_index_delete(x->idx, &doc_id, 1, &nd, &err);
    pthread_rwlock_unlock(&x->rw);
    pthread_mutex_unlock(&x->w_mu);
    if (s == SE_E_NOMEM) return sv_fail(e, 503, "overloaded", NULL, "out of memory");
    if (s != SE_OK) return sv_fail(e, 500, "backend", NULL, "index %s: %s", x->name, err.msg);
    if (!nd) return sv_fail(e, 404, "not_found", NULL, "index %s has no document with id `%.200s`", x->name, doc_id);
    sv_buf_puts(out, "{\"deleted\":true}");
    return true;
}

/* ==== Dispatch ==== */

bool sv_index_is_route(const char *url) {
    return !strcmp(url, "/search") || !strcmp(url, "/indexes") || !strncmp(url, "/indexes/", 9);
}

/* sv_index_route without the clean-up of a failed answer's body. */
static bool dispatch(const char *method, const char *url, const char *body, size_t len, sv_buf *out, int *status,
                     const char **model, sv_error *e) {
    *status = 200;
    *model = NULL;
    bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET") || !strcmp(method, "HEAD"),
         del = !strcmp(method, "DELETE");
    if (!strcmp(url, "/search")) {
        if (!post) return sv_fail(e, 405, "validation", NULL, "%s is not allowed on /search (POST)", method);
        return route_search(body, len, out, model, e);
    }
    if (!strcmp(url, "/indexes")) {
        if (!get) return sv_fail(e, 405, "validation", NULL, "%s is not allowed on /indexes (GET)", method);
        sv_buf_puts(out, "{\"indexes\":[");
        for (size_t i = 0; i < X.n; i++) {
            if (i) sv_buf_puts(out, ",");
            index_entry(out, &X.ix[i]);
        }
        sv_buf_puts(out, "]}");
        return true;
    }
    /* /indexes/{name}[/documents[/{id}]]; the id may hold '/' */
    const char *name = url + 9, *slash = strchr(name, '/');
    size_t nl = slash ? (size_t)(slash - name) : strlen(name);
    sv_ix *x = NULL;
    for (size_t i = 0; i < X.n && !x; i++)
        if (strlen(X.ix[i].name) == nl && !memcmp(X.ix[i].name, name, nl)) x = &X.ix[i];
    if (!x) {
        char nm[256];
        snprintf(nm, sizeof nm, "%.*s", (int)(nl < 200 ? nl : 200), name);
        return no_index(e, nm);
    }
    *model = x->model_name;
    if (!slash) {
        if (!get) return sv_fail(e, 405, "validation", NULL, "%s is not allowed on /indexes/%s (GET)", method, x->name);
        index_entry(out, x);
        return true;
    }
    if (!strcmp(slash, "/documents")) {
        if (!post) return sv_fail(e, 405, "validation", NULL, "%s is not allowed on /indexes/%s/documents (POST)", method, x->name);
        return route_add(x, body, len, out, e);
    }
    if (!strncmp(slash, "/documents/", 11)) {
        if (!del)
            return sv_fail(e, 405, "validation", NULL, "%s is not allowed on /indexes/%s/documents/ID (DELETE)", method, x->name);
        return route_delete(x, slash + 11, out, e);
    }
    return sv_fail(e, 404, "not_found", NULL, "no route %s %s", method, url);
}

bool sv_index_route(const char *method, const char *url, const char *body, size_t len, sv_buf *out, int *status,
                    const char **model, sv_error *e) {
    bool ok = dispatch(method, url, body, len, out, status, model, e);
    if (ok && out->oom) ok = sv_fail(e, 503, "overloaded", NULL, "out of memory for the answer");
    if (!ok) sv_buf_free(out);
    return ok;
}
