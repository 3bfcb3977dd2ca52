/*
 * serve_index.h - the index routes of `sembed serve` (serve_index.c):
 * `--index NAME=FILE`, POST /search, GET /indexes, POST and DELETE
 * /indexes/{name}/documents. serve.c calls these few functions; the
 * indexes, their models and their locks live in serve_index.c. Like the
 * rest of the server, on the public API (sembed.h) only.
 */
#ifndef SE_SERVE_INDEX_H
#define SE_SERVE_INDEX_H

#include <stdbool.h>
#include <stddef.h>

#include "sembed.h"
#include "serve.h"

/* A model serve.c loaded (-m), offered to the indexes. The pointers must
 * stay valid until sv_indexes_close. */
typedef struct sv_index_model {
    const char *name; /* the -m name (responses say it) */
    const char *dir;  /* the folder given to -m */
    se_model *m;
} sv_index_model;

/* Records one `--index [NAME=]FILE` (NAME defaults to the file's name
 * without its extension). false, with a message in msg, when NAME is empty
 * or holds '/', is given twice, or there are too many indexes. spec must
 * outlive the server (an argv string). */
bool sv_index_spec(const char *spec, char *msg, size_t cap);

/* Opens every index given, writable (the server is its writer), and pairs
 * each with the model that built it: a -m model whose fingerprint matches
 * the recorded one (the same model at another dtype is accepted with a
 * notice), or else the model folder the index records, loaded as an extra
 * model of that index (dtype as -m's). An index whose recorded model is
 * neither served nor loadable, or no longer the model that built it, is
 * refused. Each index gets two contexts of n_threads threads (queries,
 * writes). false, with a message naming the index and file in msg, on any
 * failure (what was opened stays open: sv_indexes_close frees it). Notices
 * go to log_fn. Call once, before serving. */
bool sv_indexes_open(const sv_index_model *models, size_t n_models, int dtype, int n_threads, se_log_fn log_fn,
                     char *msg, size_t cap);

/* Whether url is one of the index routes (/search, /indexes,
 * /indexes/...), so that serve.c admits, limits and dispatches it. */
bool sv_index_is_route(const char *url);

/* Answers an index route: method and url (unescaped, as libmicrohttpd
 * gives it), the request body (len bytes; NULL when none). true: *out is
 * the JSON body to send with *status (200); false: e says the error (TEI's
 * statuses and error types: 400 malformed JSON or empty input, 404 unknown
 * index or document, 405 wrong method, 422 a bad field, 424 the model
 * failed, 500 the index failed, 503 out of memory). *model (for the log
 * line) is the index's model name, or NULL. Thread-safe: searches run in
 * parallel, also during writes; writes to one index are serialised. */
bool sv_index_route(const char *method, const char *url, const char *body, size_t len, sv_buf *out, int *status,
                    const char **model, sv_error *e);

/* Appends `,"indexes":[{"name","file","model","documents","chunks"}, ...]`
 * (an empty list without --index) for GET /info. Thread-safe. */
void sv_indexes_info(sv_buf *b);

/* Flushes and closes every index (its graph snapshot written; its file
 * back to one file, no -wal or -shm) and frees the contexts and the extra
 * models. Call after the HTTP daemon has stopped (no request may run).
 * false, with a message in msg, when a flush failed (the committed
 * documents are safe: they are in the file before each write answers). */
bool sv_indexes_close(char *msg, size_t cap);

#endif
