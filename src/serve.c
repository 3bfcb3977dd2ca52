/*
 * serve.c - `sembed serve`: an HTTP embedding and reranking server speaking
 * OpenAI's embeddings API, Hugging Face text-embeddings-inference's (TEI)
 * and Jina's/Cohere's rerank API.
 *
 *   POST /v1/embeddings   OpenAI: input (string, list, int[], int[][]),
 *                         model, encoding_format (float | base64),
 *                         dimensions, user (ignored)
 *   GET  /v1/models       OpenAI: the loaded models
 *   POST /embed           TEI: inputs, normalize, truncate, truncation_direction,
 *                         prompt_name, dimensions
 *   POST /embed_all       TEI: inputs, truncate, truncation_direction, prompt_name
 *                         -> per input, per token, the last hidden state
 *   POST /similarity      TEI: inputs {source_sentence, sentences}, parameters
 *                         -> the model's similarity of the source with each
 *   POST /rerank          TEI: query, texts, raw_scores, return_text, truncate
 *                         (a cross-encoder; a Jina body is answered as /v1/rerank)
 *   POST /predict         TEI: inputs (a text, a pair, or a list), raw_scores
 *   POST /v1/rerank       Jina/Cohere (also /v1/reranking, /reranking): query,
 *                         documents, top_n, return_documents
 *   POST /                TEI: the default model's own route (/embed for an
 *                         embedding model, /predict for a cross-encoder)
 *   POST /tokenize        TEI: inputs, add_special_tokens, prompt_name -> per input
 *                         the tokens {id, text, special, start, stop} (byte offsets)
 *   POST /decode          TEI: ids (a list or a list of lists), skip_special_tokens
 *                         -> the text of each list
 *   GET  /info, /health   TEI
 *   GET  /                the web page, to a browser (Accept: text/html; serve_page.c)
 *   GET  /metrics         Prometheus text format, TEI's metric names
 *
 * HTTP is libmicrohttpd (Debian's libmicrohttpd12): a maintained C
 * library with HTTP/1.1 keep-alive, chunked uploads, header and
 * connection limits and timeouts, and no HTTP parsing of our own. It runs
 * one thread per connection (capped), so a handler may block while its
 * inputs are encoded. Request threads parse JSON and tokenise (texts
 * through se_encode_tokenize, the library's own preparation); one
 * inference thread per model batches (serve_batch.c), vectors, token
 * states and cross-encoder pairs alike (serve_rerank.c scores the pairs). A watchdog
 * thread cuts clients too slow to send their request (--request-timeout).
 * --cors-allow-origin adds CORS headers and answers preflights. Errors use
 * TEI's body {"error", "error_type"} and status codes, or under /v1/
 * OpenAI's envelope {"error": {"message", "type", "param", "code"}}.
 *
 * Like the CLI, this file uses the public API (sembed.h) only.
 */
#include <errno.h>
#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cli_io.h"
#include "cli_pull.h"
#include "serve.h"
#include "serve_index.h"
#include "serve_page.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define SV_MODELS_MAX 16
#define SV_TIMEOUT_S 30 /* a connection idle this long while its answer is read is closed */
#define SV_DRAIN_S 60   /* on SIGTERM, how long requests in flight may take to finish */
#define SV_HEADER_BYTES (32 * 1024) /* per connection: request line and headers (larger: 431) */
#define SV_CORS_MAX 16

/* ==== State ==== */

/* The server's configuration and shared state. */
static struct {
    sv_model models[SV_MODELS_MAX];
    size_t n_models;
    const char *host;
    long port;
    char *api_key;             /* NULL: no key */
    long max_batch_tokens;
    long max_client_batch;
    long max_concurrent;
    long payload_limit;
    bool auto_truncate;
    bool log_json;
    const char *cors[SV_CORS_MAX]; /* --cors-allow-origin values ("*": any) */
    size_t n_cors;
    long request_timeout;      /* seconds a request may take to arrive (headers + body) */
    int stopping;              /* set on SIGTERM/SIGINT (atomic) */
    int busy;                  /* work requests admitted and not finished (atomic) */
    int active;                /* requests of any kind between their first byte and their end (atomic) */
    pthread_mutex_t log_mu;
} S = {.host = "127.0.0.1", .port = 8080, .max_batch_tokens = 16384, .max_client_batch = 32, .request_timeout = 30,
       .max_concurrent = 512, .payload_limit = 2000000, .log_mu = PTHREAD_MUTEX_INITIALIZER};

/* Per-request state, kept by libmicrohttpd between calls of the handler. */
typedef struct conn_req {
    sv_buf body;      /* the upload, at most --payload-limit bytes */
    bool too_large;   /* more than that arrived: the rest is dropped, 413 at the end */
    bool admitted;    /* counted in S.busy */
    bool refused;     /* over --max-concurrent-requests: the body is read and dropped, 429 at the end */
    double t0;
    const char *model;/* for the log line */
    size_t n_inputs, n_tokens;
    bool work;        /* a work route, counted in GET /metrics when answered */
    bool embed;       /* an embedding route (else a cross-encoder one), for te_embed/te_predict_* */
    bool single;      /* one input (TEI's method "single"), else a list ("batch") */
    double t_tokenize, t_queue, t_infer; /* seconds (sv_stats) */
} conn_req;

/* ==== Logging ==== */

/* Appends s to a text log line with every byte a client could use to
 * forge or garble lines escaped as \xNN: control characters (a newline in
 * a model name or a %0A in a path), DEL, and bytes >= 0x80 when ascii
 * (paths are not checked for UTF-8). Also the double quote, which
 * delimits the error field. */
static void log_clean(sv_buf *b, const char *s, bool ascii) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7F || *p == '"' || *p == '\\' || (ascii && *p >= 0x80)) sv_buf_printf(b, "\\x%02x", *p);
        else sv_buf_add(b, (const char *)p, 1);
    }
}

/* Appends s as a JSON string for a JSON log line: escaped as any JSON
 * string (control characters included), with bytes >= 0x80 as \u00NN
 * when ascii (a path may hold any bytes; JSON wants UTF-8). */
static void log_json_str(sv_buf *b, const char *s, bool ascii) {
    if (!ascii) {
        sv_buf_json_str(b, s, strlen(s));
        return;
    }
    sv_buf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p >= 0x7F || *p == '"' || *p == '\\') sv_buf_printf(b, "\\u%04x", *p);
        else sv_buf_add(b, (const char *)p, 1);
    }
    sv_buf_add(b, "\"", 1);
}

/* Writes one log line for a finished request from ip to stderr: text
 * ("2026-01-01T00:00:00Z 127.0.0.1 POST /embed 200 1234B 3.2ms model=x
 * inputs=2 tokens=18") or, with --log-format json, one JSON object. */
static void log_line(const char *ip, const char *method, const char *url, int status, size_t bytes, const conn_req *r,
                     const char *err) {
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    double ms = (cli_now() - r->t0) * 1e3;
    sv_buf b = {0};
    if (S.log_json) {
        sv_buf_printf(&b, "{\"time\":\"%s\",\"remote\":\"%s\",\"method\":", ts, ip);
        log_json_str(&b, method, true);
        sv_buf_puts(&b, ",\"path\":");
        log_json_str(&b, url, true);
        sv_buf_printf(&b, ",\"status\":%d,\"bytes\":%zu,\"ms\":%.3f", status, bytes, ms);
        if (r->model) {
            sv_buf_puts(&b, ",\"model\":");
            sv_buf_json_str(&b, r->model, strlen(r->model));
        }
        if (r->n_inputs) sv_buf_printf(&b, ",\"inputs\":%zu,\"tokens\":%zu", r->n_inputs, r->n_tokens);
        if (err) {
            sv_buf_puts(&b, ",\"error\":");
            log_json_str(&b, err, false);
        }
        sv_buf_puts(&b, "}\n");
    } else {
        sv_buf_printf(&b, "%s %s ", ts, ip);
        log_clean(&b, method, true);
        sv_buf_puts(&b, " ");
        log_clean(&b, url, true);
        sv_buf_printf(&b, " %d %zuB %.1fms", status, bytes, ms);
        if (r->model) sv_buf_printf(&b, " model=%s", r->model);
        if (r->n_inputs) sv_buf_printf(&b, " inputs=%zu tokens=%zu", r->n_inputs, r->n_tokens);
        if (err) {
            sv_buf_puts(&b, " error=\"");
            log_clean(&b, err, false);
            sv_buf_puts(&b, "\"");
        }
        sv_buf_puts(&b, "\n");
    }
    if (!b.oom) {
        pthread_mutex_lock(&S.log_mu);
        fputs(b.p, stderr);
        fflush(stderr);
        pthread_mutex_unlock(&S.log_mu);
    }
    sv_buf_free(&b);
}

/* The client's address of connection c as text ("-" when unknown). */
static void client_ip(struct MHD_Connection *c, char *ip, size_t cap) {
    snprintf(ip, cap, "-");
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET) inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, ip, (socklen_t)cap);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, ip, (socklen_t)cap);
    }
}

/* log_line for a request on connection c. */
static void log_request(struct MHD_Connection *c, const char *method, const char *url, int status, size_t bytes,
                        const conn_req *r, const char *err) {
    char ip[INET6_ADDRSTRLEN];
    client_ip(c, ip, sizeof ip);
    log_line(ip, method, url, status, bytes, r, err);
}

/* libmicrohttpd's own messages (e.g. a failed bind) on stderr. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    pthread_mutex_lock(&S.log_mu);
    fputs("sembed: serve: ", stderr);
    vfprintf(stderr, fmt, ap);
    pthread_mutex_unlock(&S.log_mu);
}

/* ==== Request deadline (--request-timeout) ====
 *
 * libmicrohttpd's connection timeout is an idle timeout: a client sending
 * a byte a second (headers or body) holds its connection and thread
 * forever. So every connection is watched from its start: a watchdog
 * thread cuts one whose request has not arrived whole within
 * --request-timeout seconds, writing a 408 with a JSON body straight to
 * the socket (libmicrohttpd has queued nothing yet: the request is still
 * arriving) and shutting the socket down, which makes libmicrohttpd's
 * thread close the connection. The deadline runs from the connection's
 * start for its first request (headers and body); for a later request on
 * a kept-alive connection, from the previous answer until its headers
 * (then the connection is closed without a 408: nothing was asked yet, as
 * an idle timeout does) and again from its headers for its body. Once a
 * request has arrived whole, its processing is not limited. The socket is
 * only touched under the watch mutex, and a connection leaves the list
 * (libmicrohttpd's "closed" notice) before libmicrohttpd closes its
 * descriptor, so a reused descriptor is never shut down by mistake. */

typedef enum { CONN_NEW, CONN_IDLE, CONN_BODY, CONN_BUSY } conn_phase;

/* One watched connection. */
typedef struct conn_watch {
    int fd;
    conn_phase phase;  /* NEW: first request's headers; IDLE: between requests; BODY: a body arriving; BUSY: answering */
    double since;      /* when the running deadline started (cli_now) */
    bool fired;        /* cut by the watchdog */
    char method[16], url[128]; /* for the log line, once the headers are in */
    char ip[INET6_ADDRSTRLEN];
    struct conn_watch *prev, *next;
} conn_watch;

static struct {
    pthread_mutex_t mu; /* guards the list, every entry, and writing to a watched socket */
    conn_watch *head;
    int stop;           /* atomic */
    pthread_t thread;
    bool running;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* libmicrohttpd's connection notices: a started connection joins the
 * watch list (its entry is the connection's socket context), a closed
 * one leaves it. */
static void watch_notify(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_ConnectionNotificationCode code) {
    (void)cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_watch *w = calloc(1, sizeof *w);
        if (!w || !ci) {
            free(w);
            return;
        }
        w->fd = ci->connect_fd;
        w->phase = CONN_NEW;
        w->since = cli_now();
        client_ip(c, w->ip, sizeof w->ip);
        pthread_mutex_lock(&W.mu);
        w->next = W.head;
        if (W.head) W.head->prev = w;
        W.head = w;
        pthread_mutex_unlock(&W.mu);
        *ctx = w;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *ctx) {
        conn_watch *w = *ctx;
        pthread_mutex_lock(&W.mu);
        if (w->prev) w->prev->next = w->next;
        else W.head = w->next;
        if (w->next) w->next->prev = w->prev;
        pthread_mutex_unlock(&W.mu);
        free(w);
        *ctx = NULL;
    }
}

/* Moves connection c's watch to phase (see above): BODY restarts the
 * deadline after an IDLE wait and records the request line for the log;
 * IDLE restarts it. */
static void watch_phase(struct MHD_Connection *c, conn_phase phase, const char *method, const char *url) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_watch *w = ci ? ci->socket_context : NULL;
    if (!w) return;
    pthread_mutex_lock(&W.mu);
    if ((phase == CONN_BODY && w->phase == CONN_IDLE) || phase == CONN_IDLE) w->since = cli_now();
    if (phase == CONN_BODY) {
        snprintf(w->method, sizeof w->method, "%s", method);
        snprintf(w->url, sizeof w->url, "%s", url);
    }
    w->phase = phase;
    pthread_mutex_unlock(&W.mu);
}

/* The watchdog thread: ten times a second, cuts the connections whose
 * request is late (408 when a request was under way), until W.stop. */
static void *watchdog_main(void *arg) {
    (void)arg;
    while (!__atomic_load_n(&W.stop, __ATOMIC_SEQ_CST)) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        double now = cli_now();
        pthread_mutex_lock(&W.mu);
        for (conn_watch *w = W.head; w; w = w->next) {
            if (w->fired || w->phase == CONN_BUSY || now - w->since < (double)S.request_timeout) continue;
            w->fired = true;
            if (w->phase != CONN_IDLE) {
                char body[160], msg[512];
                snprintf(body, sizeof body,
                         "{\"error\":\"the request did not arrive whole within %ld s (--request-timeout)\","
                         "\"error_type\":\"timeout\"}", S.request_timeout);
                int n = snprintf(msg, sizeof msg,
                                 "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(body), body);
                if (send(w->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) { /* the client is gone: nothing to say */
                }
                conn_req r = {.t0 = w->since};
                log_line(w->ip, w->method[0] ? w->method : "-", w->url[0] ? w->url : "-", 408, strlen(body), &r,
                         "the request did not arrive in time (--request-timeout)");
            }
            shutdown(w->fd, SHUT_RDWR);
        }
        pthread_mutex_unlock(&W.mu);
    }
    return NULL;
}

/* ==== Responses ==== */

/* Adds Access-Control-Allow-Origin (and Vary: Origin) to resp when the
 * request's Origin is one --cors-allow-origin allows; nothing without the
 * option or for another origin. */
static void add_cors(struct MHD_Connection *c, struct MHD_Response *resp) {
    if (!S.n_cors) return;
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!origin) return;
    bool any = false, match = false;
    for (size_t i = 0; i < S.n_cors; i++) {
        if (!strcmp(S.cors[i], "*")) any = true;
        else if (!strcmp(S.cors[i], origin)) match = true;
    }
    if (!any && !match) return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", match ? origin : "*");
    if (match) MHD_add_response_header(resp, "Vary", "Origin");
}

/* Queues body (malloc'd, taken over) with status and a JSON content type,
 * logs the request, and returns libmicrohttpd's result. close asks the
 * client to close the connection (after a refused upload). */
static enum MHD_Result send_body(struct MHD_Connection *c, const char *method, const char *url, conn_req *r,
                                 int status, sv_buf *body, const char *ctype, const char *err) {
    watch_phase(c, CONN_BUSY, NULL, NULL); /* an answer before the body (401, 413, 429): not the watchdog's */
    if (body->oom) {
        sv_buf_free(body);
        sv_buf_puts(body, "{\"error\":\"out of memory\",\"error_type\":\"backend\"}");
        status = 503;
    }
    size_t n = body->n;
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, n ? body->p : (void *)"",
                                                                n ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        sv_buf_free(body);
        return MHD_NO;
    }
    if (!n) free(body->p);
    body->p = NULL;
    if (ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (__atomic_load_n(&S.stopping, __ATOMIC_SEQ_CST)) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    add_cors(c, resp);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (r->work && status == 200) {
        sv_stats st = {.t_tokenize = r->t_tokenize, .t_queue = r->t_queue, .t_infer = r->t_infer};
        sv_metrics_request(!r->single, r->embed);
        sv_metrics_success(!r->single, r->embed, cli_now() - r->t0, &st);
    }
    log_request(c, method, url, status, n, r, err);
    return ret;
}

/* Answers with an error: TEI's {"error", "error_type"}, or, for a route
 * under /v1/, OpenAI's {"error": {"message", "type", "param", "code"}}. */
static enum MHD_Result send_error(struct MHD_Connection *c, const char *method, const char *url, conn_req *r,
                                  const sv_error *e) {
    if (r->work) { /* te_request_failure{err}: by what went wrong */
        const char *t = e->type ? e->type : "";
        sv_fail_kind why = e->why                    ? (sv_fail_kind)e->why
                           : !strcmp(t, "tokenizer")  ? SV_FAIL_TOKENIZATION
                           : !strcmp(t, "overloaded") ? SV_FAIL_OVERLOADED
                           : !strcmp(t, "backend")    ? SV_FAIL_INFERENCE
                                                      : SV_FAIL_VALIDATION;
        sv_metrics_request(!r->single, r->embed);
        sv_metrics_failure(why);
        r->work = false; /* counted once */
    }
    sv_buf b = {0};
    if (!strncmp(url, "/v1/", 4)) {
        const char *type = e->status == 401   ? "invalid_request_error"
                           : e->status == 429 ? "rate_limit_error"
                           : e->status >= 500 ? "server_error"
                                              : "invalid_request_error";
        const char *code = e->status == 401 ? "invalid_api_key"
                           : e->status == 404 && e->param && !strcmp(e->param, "model") ? "model_not_found"
                                                                                       : e->type;
        sv_buf_puts(&b, "{\"error\":{\"message\":");
        sv_buf_json_str(&b, e->msg, strlen(e->msg));
        sv_buf_printf(&b, ",\"type\":\"%s\",\"param\":", type);
        if (e->param) sv_buf_json_str(&b, e->param, strlen(e->param));
        else sv_buf_puts(&b, "null");
        sv_buf_puts(&b, ",\"code\":");
        if (code) sv_buf_json_str(&b, code, strlen(code));
        else sv_buf_puts(&b, "null");
        sv_buf_puts(&b, "}}");
    } else {
        sv_buf_puts(&b, "{\"error\":");
        sv_buf_json_str(&b, e->msg, strlen(e->msg));
        sv_buf_printf(&b, ",\"error_type\":\"%s\"}", e->type ? e->type : "validation");
    }
    return send_body(c, method, url, r, e->status, &b, "application/json", e->msg);
}

/* ==== Models ==== */

/* The model a request names (NULL: the default, the first -m), or NULL
 * when no loaded model has that name. */
static sv_model *find_model(const char *name) {
    if (!name) return &S.models[0];
    for (size_t i = 0; i < S.n_models; i++)
        if (!strcmp(S.models[i].name, name)) return &S.models[i];
    return NULL;
}

/* The loaded models' names, comma-separated, cut to cap bytes. */
static void model_names(char *out, size_t cap) {
    out[0] = 0;
    for (size_t i = 0; i < S.n_models; i++) {
        if (i) strncat(out, ", ", cap - strlen(out) - 1);
        strncat(out, S.models[i].name, cap - strlen(out) - 1);
    }
}

/* The name of a pooling bit set, as sentence-transformers spells the modes
 * (several joined with '+'). */
static void pooling_name(uint32_t p, char *out, size_t cap) {
    static const char *names[] = {"cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"};
    out[0] = 0;
    for (int i = 0; i < 6; i++)
        if (p & (1u << i)) {
            if (out[0]) strncat(out, "+", cap - strlen(out) - 1);
            strncat(out, names[i], cap - strlen(out) - 1);
        }
}

/* ==== Routes ==== */

/* Fills e for a route the model cannot serve (TEI's 424, counted as
 * model_type): an embedding route on a cross-encoder, or a cross-encoder
 * route on an embedding model (or /rerank on a classifier), naming the
 * model, what it is and the routes it has. */
static void wrong_model_type(const sv_model *sm, const char *url, sv_error *e) {
    const se_model_info *in = &sm->info;
    e->why = SV_FAIL_MODEL_TYPE;
    if (!in->head)
        sv_fail(e, 424, "backend", "model",
                "%s: the model `%s` is an embedding model, not a cross-encoder (reranker or classifier): use /embed, "
                "/v1/embeddings or /similarity", url, sm->name);
    else if (in->n_labels == 1)
        sv_fail(e, 424, "backend", "model",
                "%s: the model `%s` is a reranker (a cross-encoder, %s, one label), not an embedding model: use /rerank, "
                "/v1/rerank or /predict", url, sm->name, in->head);
    else
        sv_fail(e, 424, "backend", "model",
                "%s: the model `%s` is a classifier (a cross-encoder, %s, %d labels), not %s: use /predict", url, sm->name,
                in->head, in->n_labels, strstr(url, "rerank") ? "a reranker (one label)" : "an embedding model");
}

/* POST /v1/embeddings, /embed, / (on an embedding model), /similarity and
 * /embed_all: binds the body, refuses a cross-encoder (424), tokenises
 * each text on this thread as se_encode prepares it (se_encode_tokenize:
 * prompt, strip, lowercasing, truncation from either end) or checks the
 * token ids, queues the sequences on the model's batcher (each with its
 * pooling start), waits, and writes the vectors (bit-identical to
 * se_encode's), /embed_all every token's hidden state, or for /similarity
 * the model's similarity of the first (the source sentence) with each
 * other, on the vectors as the model gives them (no extra normalisation). */
static enum MHD_Result route_embed(struct MHD_Connection *c, const char *method, const char *url, conn_req *r,
                                   sv_route route) {
    sv_request q;
    sv_error e = {0};
    sv_item *items = NULL;
    int32_t **tok_ids = NULL;
    float *vecs = NULL;
    enum MHD_Result ret;
    if (!sv_request_parse(route, r->body.p ? r->body.p : "", r->body.n, (size_t)S.max_client_batch, S.auto_truncate,
                          &q, &e))
        return send_error(c, method, url, r, &e);
    r->n_inputs = q.n_inputs;
    sv_model *sm = find_model(q.model);
    if (!sm) {
        char names[256];
        model_names(names, sizeof names);
        sv_fail(&e, route == SV_ROUTE_OPENAI_EMBED ? 404 : 422, "validation", "model",
                "The model `%.96s` does not exist (loaded: %s)", q.model, names);
        goto fail;
    }
    r->model = sm->name;
    r->single = q.single;
    const se_model_info *in = &sm->info;
    if (in->head) {
        wrong_model_type(sm, url, &e);
        goto fail;
    }
    bool all = route == SV_ROUTE_TEI_EMBED_ALL; /* token states, not vectors */
    if (route == SV_ROUTE_TEI_SIMILARITY) q.normalize = false; /* the model's own vectors, as TEI */
    if (q.dimensions > in->dim) {
        sv_fail(&e, 422, "validation", "dimensions", "`dimensions` %d is larger than the model's %d", q.dimensions, in->dim);
        goto fail;
    }
    if (q.prompt_name && !se_model_prompt_find(sm->m, q.prompt_name)) {
        sv_fail(&e, 422, "validation", "prompt_name", "the model has no prompt named `%.64s`", q.prompt_name);
        goto fail;
    }
    const char *field = route == SV_ROUTE_OPENAI_EMBED ? "input" : "inputs";
    int32_t dim_out = q.dimensions && q.dimensions < in->dim ? q.dimensions : 0;
    se_encode_params ep = se_encode_default_params();
    ep.truncate_dim = dim_out;
    ep.prompt_name = q.prompt_name; /* NULL: the model's default prompt (se_encode_tokenize) */
    size_t dim = se_encode_dim(sm->m, &ep), max_tok = (size_t)in->n_tokens_max, n_embd = (size_t)in->n_embd;
    items = calloc(q.n_inputs, sizeof *items);
    tok_ids = calloc(q.n_inputs, sizeof *tok_ids);
    double t_tok = cli_now();
    if (!items || !tok_ids) {
        sv_fail(&e, 503, "overloaded", NULL, "out of memory");
        goto fail;
    }
    se_tokenize_params tp = se_tokenize_default_params(sm->tok);
    tp.n_tokens_max = max_tok;
    tp.add_special = true;
    tp.truncate_left = q.truncate_left;
    for (size_t i = 0; i < q.n_inputs; i++) {
        sv_input *x = &q.inputs[i];
        sv_item *it = &items[i];
        it->index = i;
        it->kind = all ? SV_ITEM_TOKENS : SV_ITEM_VECTOR;
        it->truncate_dim = dim_out;
        /* normalize: the model's own Normalize already did it; doing it again could move the last bit.
         * normalize false leaves out the model's Normalize (TEI), but /similarity keeps the model's vectors */
        it->normalize = q.normalize && !in->normalize;
        it->skip_normalize = !q.normalize && in->normalize && route == SV_ROUTE_TEI_EMBED;
        if (x->ids) {
            if (q.prompt_name) {
                sv_fail(&e, 422, "validation", "prompt_name", "`prompt_name` does not apply to token ids (input %zu)", i);
                goto fail;
            }
            for (size_t t = 0; t < x->n_ids; t++)
                if (x->ids[t] >= in->n_vocab) {
                    sv_fail(&e, 422, "validation", field,
                            "input %zu: token id %d at position %zu is outside the vocabulary (%d ids)", i, x->ids[t], t,
                            in->n_vocab);
                    goto fail;
                }
            it->ids = x->ids;
            if (x->n_ids > max_tok) {
                if (!q.truncate) {
                    sv_fail(&e, 422, "validation", field,
                            "input %zu has %zu tokens; the model reads at most %zu (send truncate: true, or start the "
                            "server with --auto-truncate)", i, x->n_ids, max_tok);
                    goto fail;
                }
                if (q.truncate_left) it->ids = x->ids + (x->n_ids - max_tok); /* the last max_tok ids */
                x->n_ids = max_tok;
            }
            it->n_ids = x->n_ids;
        } else {
            /* se_encode's own preparation: prompt, strip, lowercasing, truncation */
            size_t n = 0, pool = 0;
            bool cut = false;
            se_error te = {0};
            tok_ids[i] = malloc((max_tok + 8) * sizeof **tok_ids);
            se_status s = tok_ids[i] ? se_encode_tokenize(sm->m, x->text, x->text_len, &ep, &tp, tok_ids[i], max_tok + 8,
                                                          &n, &pool, &cut, &te)
                                     : SE_E_NOMEM;
            if (s != SE_OK) {
                sv_fail(&e, s == SE_E_NOMEM ? 503 : 422, s == SE_E_NOMEM ? "overloaded" : "tokenizer", field,
                        "input %zu: %s", i, s == SE_E_NOMEM ? "out of memory" : te.msg);
                goto fail;
            }
            if (cut && !q.truncate) {
                sv_fail(&e, 422, "validation", field,
                        "input %zu is longer than the model's %zu tokens (send truncate: true, or start the server with "
                        "--auto-truncate)", i, max_tok);
                goto fail;
            }
            it->ids = tok_ids[i];
            it->n_ids = n;
            it->pool_start = pool;
        }
        r->n_tokens += it->n_ids;
        sv_metrics_input_length(it->n_ids);
    }
    /* the results: dim floats per input, or (/embed_all) n_embd per token, once the counts are known */
    size_t total = 0;
    for (size_t i = 0; i < q.n_inputs; i++) total += all ? items[i].n_ids * n_embd : dim;
    vecs = total <= ((size_t)-1) / sizeof(float) ? malloc((total ? total : 1) * sizeof *vecs) : NULL;
    if (!vecs) {
        sv_fail(&e, 503, "overloaded", NULL, "out of memory");
        goto fail;
    }
    for (size_t i = 0, at = 0; i < q.n_inputs; at += all ? items[i].n_ids * n_embd : dim, i++) items[i].out = vecs + at;
    r->t_tokenize = cli_now() - t_tok;
    sv_job job;
    if (!sv_batcher_run(sm->batcher, &job, items, q.n_inputs)) {
        sv_fail(&e, 429, "overloaded", NULL, "Model is overloaded: the queue is full");
        goto fail;
    }
    if (job.t_start > 0) r->t_queue = job.t_start - job.t_queued, r->t_infer = job.t_end - job.t_start;
    if (job.status != SE_OK) {
        sv_fail(&e, 424, "backend", NULL, "input %zu: %s", job.err_item, job.msg);
        goto fail;
    }
    sv_buf b = {0};
    if (route == SV_ROUTE_TEI_SIMILARITY) { /* the source sentence against each sentence */
        float *sim = malloc((q.n_inputs - 1) * sizeof *sim);
        se_error se = {0};
        if (!sim || se_similarity_matrix(in->similarity, vecs, 1, vecs + dim, q.n_inputs - 1, dim, sim, &se) != SE_OK) {
            free(sim);
            sv_fail(&e, 424, "backend", NULL, "similarity: %s", sim ? se.msg : "out of memory");
            goto fail;
        }
        sv_buf_float_array(&b, sim, q.n_inputs - 1);
        free(sim);
    } else if (route == SV_ROUTE_OPENAI_EMBED) {
        sv_buf_puts(&b, "{\"object\":\"list\",\"data\":[");
        for (size_t i = 0; i < q.n_inputs; i++) {
            sv_buf_printf(&b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
            if (q.base64) sv_buf_float_base64(&b, vecs + i * dim, dim);
            else sv_buf_float_array(&b, vecs + i * dim, dim);
            sv_buf_puts(&b, "}");
        }
        sv_buf_puts(&b, "],\"model\":");
        sv_buf_json_str(&b, sm->name, strlen(sm->name));
        sv_buf_printf(&b, ",\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}", r->n_tokens, r->n_tokens);
    } else if (all) { /* per input, per token, the hidden state */
        sv_buf_puts(&b, "[");
        for (size_t i = 0; i < q.n_inputs; i++) {
            sv_buf_puts(&b, i ? ",[" : "[");
            for (size_t t = 0; t < items[i].n_ids; t++) {
                if (t) sv_buf_puts(&b, ",");
                sv_buf_float_array(&b, items[i].out + t * n_embd, n_embd);
            }
            sv_buf_puts(&b, "]");
        }
        sv_buf_puts(&b, "]");
    } else {
        sv_buf_puts(&b, "[");
        for (size_t i = 0; i < q.n_inputs; i++) {
            if (i) sv_buf_puts(&b, ",");
            sv_buf_float_array(&b, vecs + i * dim, dim);
        }
        sv_buf_puts(&b, "]");
    }
    ret = send_body(c, method, url, r, 200, &b, "application/json", NULL);
    goto done;
fail:
    ret = send_error(c, method, url, r, &e);
done:
    for (size_t i = 0; tok_ids && i < q.n_inputs; i++) free(tok_ids[i]);
    free(tok_ids);
    free(items);
    free(vecs);
    sv_request_free(&q);
    return ret;
}

/* POST /rerank, /predict, /v1/rerank (and POST / on a cross-encoder):
 * binds the body, checks the model is a cross-encoder (a reranker, one
 * label, for the rerank routes) and lets serve_rerank.c score the pairs. */
static enum MHD_Result route_pairs(struct MHD_Connection *c, const char *method, const char *url, conn_req *r,
                                   sv_route route) {
    sv_request q;
    sv_error e = {0};
    if (!sv_request_parse(route, r->body.p ? r->body.p : "", r->body.n, (size_t)S.max_client_batch, S.auto_truncate,
                          &q, &e))
        return send_error(c, method, url, r, &e);
    r->n_inputs = q.n_inputs;
    r->single = q.single;
    sv_model *sm = find_model(q.model);
    if (!sm) {
        char names[256];
        model_names(names, sizeof names);
        sv_fail(&e, !strncmp(url, "/v1/", 4) ? 404 : 422, "validation", "model",
                "The model `%.96s` does not exist (loaded: %s)", q.model, names);
        sv_request_free(&q);
        return send_error(c, method, url, r, &e);
    }
    r->model = sm->name;
    if (!sm->info.head || (q.route != SV_ROUTE_TEI_PREDICT && sm->info.n_labels != 1)) {
        wrong_model_type(sm, url, &e);
        sv_request_free(&q);
        return send_error(c, method, url, r, &e);
    }
    sv_buf b = {0};
    sv_stats st = {0};
    bool ok = sv_route_pairs(sm, &q, &b, &st, &e);
    sv_request_free(&q);
    r->n_tokens = st.n_tokens;
    r->t_tokenize = st.t_tokenize, r->t_queue = st.t_queue, r->t_infer = st.t_infer;
    if (!ok) {
        sv_buf_free(&b);
        return send_error(c, method, url, r, &e);
    }
    return send_body(c, method, url, r, 200, &b, "application/json", NULL);
}

/* GET /metrics: Prometheus' text format (serve_metrics.c), with the items
 * waiting in every model's batcher as te_queue_size. */
static enum MHD_Result route_metrics(struct MHD_Connection *c, const char *method, const char *url, conn_req *r) {
    size_t queued = 0;
    for (size_t i = 0; i < S.n_models; i++) {
        size_t q, passes, mixed;
        sv_batcher_stats(S.models[i].batcher, &q, &passes, &mixed);
        queued += q;
    }
    sv_buf b = {0};
    sv_metrics_render(&b, queued, (size_t)S.models[0].info.n_tokens_max);
    return send_body(c, method, url, r, 200, &b, "text/plain; version=0.0.4", NULL);
}

/* Binds r's body for route (no --auto-truncate: these routes do not
 * encode) into *q and finds the model it names (NULL: the default),
 * recording both for the log line. NULL when the body does not bind or
 * no loaded model has that name (422 naming the loaded ones): e says why
 * and q is freed. */
static sv_model *bind_request(sv_route route, conn_req *r, sv_request *q, sv_error *e) {
    if (!sv_request_parse(route, r->body.p ? r->body.p : "", r->body.n, (size_t)S.max_client_batch, false, q, e))
        return NULL;
    r->n_inputs = q->n_inputs;
    sv_model *sm = find_model(q->model);
    if (!sm) {
        char names[256];
        model_names(names, sizeof names);
        sv_fail(e, 422, "validation", "model", "The model `%.96s` does not exist (loaded: %s)", q->model, names);
        sv_request_free(q);
        return NULL;
    }
    r->model = sm->name;
    return sm;
}

/* POST /tokenize: per input, TEI's [{id, text, special, start, stop}]
 * (se_tokenize_offsets, no truncation). The tokenised text is the model's
 * prompt (prompt_name, or its default prompt) followed by the input, as TEI
 * tokenises it; start and stop are byte offsets into that text and a
 * token's text is its bytes [start, stop); a special token ([CLS], </s>)
 * has null start and stop and its vocabulary piece as text. */
static enum MHD_Result route_tokenize(struct MHD_Connection *c, const char *method, const char *url, conn_req *r) {
    sv_request q;
    sv_error e = {0};
    sv_model *sm = bind_request(SV_ROUTE_TEI_TOKENIZE, r, &q, &e);
    if (!sm) return send_error(c, method, url, r, &e);
    const char *prompt = "", *pname = q.prompt_name ? q.prompt_name : sm->info.default_prompt_name;
    if (pname && !(prompt = se_model_prompt_find(sm->m, pname))) {
        if (q.prompt_name) {
            sv_fail(&e, 422, "validation", "prompt_name", "the model has no prompt named `%.64s`", q.prompt_name);
            sv_request_free(&q);
            return send_error(c, method, url, r, &e);
        }
        prompt = "";
    }
    size_t pl = strlen(prompt);
    sv_buf b = {0};
    sv_buf_puts(&b, "[");
    for (size_t i = 0; i < q.n_inputs; i++) {
        const sv_input *x = &q.inputs[i];
        size_t tl = pl + x->text_len, n = 0, cap = tl + 16;
        char *text = malloc(tl + 1);
        se_token *tk = malloc(cap * sizeof *tk);
        se_tokenize_params tp = se_tokenize_default_params(sm->tok);
        tp.n_tokens_max = 0;
        tp.add_special = q.add_special;
        se_error te = {0};
        se_status s = SE_E_NOMEM;
        if (text && tk) {
            memcpy(text, prompt, pl);
            memcpy(text + pl, x->text, x->text_len);
            text[tl] = 0;
            s = se_tokenize_offsets(sm->tok, text, tl, NULL, 0, &tp, tk, cap, &n, NULL, &te);
            if (s == SE_E_BUFFER) { /* more tokens than bytes + 16: grow once to the count asked for */
                se_token *t2 = realloc(tk, (cap = n) * sizeof *tk);
                s = t2 ? se_tokenize_offsets(sm->tok, text, tl, NULL, 0, &tp, tk = t2, cap, &n, NULL, &te) : SE_E_NOMEM;
            }
        }
        if (s != SE_OK) {
            free(text);
            free(tk);
            sv_buf_free(&b);
            sv_fail(&e, s == SE_E_NOMEM ? 503 : 422, s == SE_E_NOMEM ? "overloaded" : "tokenizer", "inputs",
                    "input %zu: %s", i, s == SE_E_NOMEM ? "out of memory" : te.msg);
            sv_request_free(&q);
            return send_error(c, method, url, r, &e);
        }
        r->n_tokens += n;
        sv_buf_puts(&b, i ? ",[" : "[");
        for (size_t t = 0; t < n; t++) {
            sv_buf_printf(&b, "%s{\"id\":%d,\"text\":", t ? "," : "", tk[t].id);
            if (tk[t].special) {
                const char *piece = se_tokenizer_piece(sm->tok, tk[t].id);
                if (piece) sv_buf_json_str(&b, piece, strlen(piece));
                else sv_buf_puts(&b, "null");
                sv_buf_puts(&b, ",\"special\":true,\"start\":null,\"stop\":null}");
            } else {
                uint32_t st = tk[t].start <= tl ? tk[t].start : (uint32_t)tl;
                uint32_t en = tk[t].end <= tl && tk[t].end >= st ? tk[t].end : st;
                sv_buf_json_str(&b, text + st, en - st);
                sv_buf_printf(&b, ",\"special\":false,\"start\":%u,\"stop\":%u}", st, en);
            }
        }
        sv_buf_puts(&b, "]");
        free(text);
        free(tk);
    }
    sv_buf_puts(&b, "]");
    sv_request_free(&q);
    return send_body(c, method, url, r, 200, &b, "application/json", NULL);
}

/* POST /decode: TEI's {ids, skip_special_tokens} -> the text of each id
 * list (se_detokenize with the model's decoder): a list of strings, one per
 * list. An id outside the vocabulary is 422 naming the list and position. */
static enum MHD_Result route_decode(struct MHD_Connection *c, const char *method, const char *url, conn_req *r) {
    sv_request q;
    sv_error e = {0};
    sv_model *sm = bind_request(SV_ROUTE_TEI_DECODE, r, &q, &e);
    if (!sm) return send_error(c, method, url, r, &e);
    sv_buf b = {0};
    sv_buf_puts(&b, "[");
    for (size_t i = 0; i < q.n_inputs; i++) {
        const sv_input *x = &q.inputs[i];
        size_t cap = 64 + x->n_ids * 16, len = 0;
        char *out = malloc(cap);
        se_error te = {0};
        se_status s = out ? se_detokenize(sm->tok, x->ids, x->n_ids, q.skip_special, out, cap, &len, &te) : SE_E_NOMEM;
        if (s == SE_E_BUFFER) {
            char *o2 = realloc(out, cap = len + 1);
            s = o2 ? se_detokenize(sm->tok, x->ids, x->n_ids, q.skip_special, out = o2, cap, &len, &te) : SE_E_NOMEM;
        }
        if (s != SE_OK) {
            free(out);
            sv_buf_free(&b);
            sv_fail(&e, s == SE_E_NOMEM ? 503 : 422, s == SE_E_NOMEM ? "overloaded" : "tokenizer", "ids",
                    "ids %zu: %s", i, s == SE_E_NOMEM ? "out of memory" : te.msg);
            sv_request_free(&q);
            return send_error(c, method, url, r, &e);
        }
        r->n_tokens += x->n_ids;
        if (i) sv_buf_puts(&b, ",");
        sv_buf_json_str(&b, out, len);
        free(out);
    }
    sv_buf_puts(&b, "]");
    sv_request_free(&q);
    return send_body(c, method, url, r, 200, &b, "application/json", NULL);
}

/* Writes TEI's model_type of a model: {"embedding": {"pooling"}} or, for
 * a cross-encoder, {"reranker": {id2label, label2id}} with one label and
 * {"classifier": {...}} with more, as TEI's /info. */
static void model_type(sv_buf *b, const sv_model *m) {
    if (!m->info.head) {
        char pool[96];
        pooling_name(m->info.pooling, pool, sizeof pool);
        sv_buf_printf(b, "{\"embedding\":{\"pooling\":\"%s\"}}", pool);
        return;
    }
    sv_buf_puts(b, m->info.n_labels == 1 ? "{\"reranker\":{\"id2label\":{" : "{\"classifier\":{\"id2label\":{");
    for (int32_t k = 0; k < m->info.n_labels; k++) {
        const char *l = m->info.labels && m->info.labels[k] ? m->info.labels[k] : "";
        sv_buf_printf(b, "%s\"%d\":", k ? "," : "", k);
        sv_buf_json_str(b, l, strlen(l));
    }
    sv_buf_puts(b, "},\"label2id\":{");
    for (int32_t k = 0; k < m->info.n_labels; k++) {
        const char *l = m->info.labels && m->info.labels[k] ? m->info.labels[k] : "";
        if (k) sv_buf_puts(b, ",");
        sv_buf_json_str(b, l, strlen(l));
        sv_buf_printf(b, ":%d", k);
    }
    sv_buf_puts(b, "}}}");
}

/* GET /info: TEI's description of the server (the default model first),
 * with every loaded model under "models" (model_type: "embedding",
 * "reranker" or "classifier"). */
static enum MHD_Result route_info(struct MHD_Connection *c, const char *method, const char *url, conn_req *r) {
    const sv_model *d = &S.models[0];
    static const char *dt[] = {"float32", "float16", "bfloat16", "int8"};
    char pool[96];
    sv_buf b = {0};
    sv_buf_puts(&b, "{\"model_id\":");
    sv_buf_json_str(&b, d->name, strlen(d->name));
    sv_buf_printf(&b, ",\"model_sha\":null,\"model_dtype\":\"%s\",\"model_type\":", dt[d->info.compute_dtype & 3]);
    model_type(&b, d);
    sv_buf_printf(&b,
                  ",\"max_concurrent_requests\":%ld,\"max_input_length\":%d,\"max_batch_tokens\":%ld,"
                  "\"max_batch_requests\":null,\"max_client_batch_size\":%ld,\"auto_truncate\":%s,"
                  "\"tokenization_workers\":null,\"version\":\"%s\",\"sha\":null,\"docker_label\":null,\"models\":[",
                  S.max_concurrent, d->info.n_tokens_max, S.max_batch_tokens, S.max_client_batch,
                  S.auto_truncate ? "true" : "false", se_version());
    for (size_t i = 0; i < S.n_models; i++) {
        const sv_model *m = &S.models[i];
        size_t queued, passes, mixed;
        sv_batcher_stats(m->batcher, &queued, &passes, &mixed);
        pooling_name(m->info.pooling, pool, sizeof pool);
        sv_buf_puts(&b, i ? ",{\"id\":" : "{\"id\":");
        sv_buf_json_str(&b, m->name, strlen(m->name));
        sv_buf_puts(&b, ",\"dir\":");
        sv_buf_json_str(&b, m->dir, strlen(m->dir));
        sv_buf_printf(&b, ",\"model_type\":\"%s\"",
                      !m->info.head ? "embedding" : m->info.n_labels == 1 ? "reranker" : "classifier");
        sv_buf_printf(&b, ",\"arch\":\"%s\",\"dim\":%d,\"max_input_length\":%d,\"pooling\":\"%s\",\"normalize\":%s,"
                          "\"dtype\":\"%s\",\"queued\":%zu,\"batches\":%zu,\"mixed_batches\":%zu}",
                      m->info.arch, m->info.dim, m->info.n_tokens_max, pool, m->info.normalize ? "true" : "false",
                      dt[m->info.compute_dtype & 3], queued, passes, mixed);
    }
    sv_buf_puts(&b, "]");
    sv_indexes_info(&b);
    sv_buf_puts(&b, "}");
    return send_body(c, method, url, r, 200, &b, "application/json", NULL);
}

/* GET /v1/models: OpenAI's model list. */
static enum MHD_Result route_models(struct MHD_Connection *c, const char *method, const char *url, conn_req *r) {
    sv_buf b = {0};
    sv_buf_puts(&b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < S.n_models; i++) {
        sv_buf_puts(&b, i ? ",{\"id\":" : "{\"id\":");
        sv_buf_json_str(&b, S.models[i].name, strlen(S.models[i].name));
        sv_buf_puts(&b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"sembed\"}");
    }
    sv_buf_puts(&b, "]}");
    return send_body(c, method, url, r, 200, &b, "application/json", NULL);
}

/* The index routes (serve_index.c): /search, /indexes, /indexes/... */
static enum MHD_Result route_index(struct MHD_Connection *c, const char *method, const char *url, conn_req *r) {
    sv_buf b = {0};
    sv_error e = {0};
    int status;
    if (!sv_index_route(method, url, r->body.p, r->body.n, &b, &status, &r->model, &e)) return send_error(c, method, url, r, &e);
    return send_body(c, method, url, r, status, &b, "application/json", NULL);
}

/* Whether the request carries "Authorization: Bearer <--api-key>",
 * compared in time independent of where the strings differ. */
static bool authorized(struct MHD_Connection *c) {
    if (!S.api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    size_t a = strlen(h), k = strlen(S.api_key);
    unsigned diff = (unsigned)(a ^ k);
    for (size_t i = 0; i < k; i++) diff |= (unsigned)(unsigned char)S.api_key[i] ^ (unsigned char)(i < a ? h[i] : 0);
    return diff == 0;
}

/* The work routes (POST, admitted against --max-concurrent-requests). */
static int work_route(const char *url) {
    if (!strcmp(url, "/v1/embeddings")) return SV_ROUTE_OPENAI_EMBED;
    if (!strcmp(url, "/embed")) return SV_ROUTE_TEI_EMBED;
    /* POST / is the default model's own route, as TEI's */
    if (!strcmp(url, "/")) return S.models[0].info.head ? SV_ROUTE_TEI_PREDICT : SV_ROUTE_TEI_EMBED;
    if (!strcmp(url, "/tokenize")) return SV_ROUTE_TEI_TOKENIZE;
    if (!strcmp(url, "/decode")) return SV_ROUTE_TEI_DECODE;
    if (!strcmp(url, "/embed_all")) return SV_ROUTE_TEI_EMBED_ALL;
    if (!strcmp(url, "/rerank")) return SV_ROUTE_TEI_RERANK;
    if (!strcmp(url, "/predict")) return SV_ROUTE_TEI_PREDICT;
    if (!strcmp(url, "/similarity")) return SV_ROUTE_TEI_SIMILARITY;
    if (!strcmp(url, "/v1/rerank") || !strcmp(url, "/v1/reranking") || !strcmp(url, "/reranking"))
        return SV_ROUTE_JINA_RERANK;
    return -1;
}

/* Answers a CORS preflight (OPTIONS with --cors-allow-origin): 204 with
 * the allowed methods and headers (Authorization, Content-Type) for an
 * allowed Origin, 403 for another. No API key is asked for: browsers send
 * preflights without credentials. */
static enum MHD_Result send_preflight(struct MHD_Connection *c, const char *method, const char *url, conn_req *r) {
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    bool ok = false;
    for (size_t i = 0; origin && i < S.n_cors; i++) ok = ok || !strcmp(S.cors[i], "*") || !strcmp(S.cors[i], origin);
    if (!ok) {
        sv_error e = {0};
        sv_fail(&e, 403, "validation", NULL, "CORS: the origin %.96s is not allowed (--cors-allow-origin)",
                origin ? origin : "(none)");
        return send_error(c, method, url, r, &e);
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    watch_phase(c, CONN_BUSY, NULL, NULL);
    add_cors(c, resp);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    enum MHD_Result ret = MHD_queue_response(c, 204, resp);
    MHD_destroy_response(resp);
    log_request(c, method, url, 204, 0, r, NULL);
    return ret;
}

/* libmicrohttpd's request handler. The first call (headers read) refuses
 * at once what can be refused without the body: a missing or wrong key
 * (401), a declared body over --payload-limit (413) or a stopping server
 * (503). A full server (429) is decided there too, but answered once the
 * body is read and dropped: a response sent before the body makes
 * libmicrohttpd close the connection, and a client pool under overload
 * would then reconnect for every 429. The calls with upload data collect
 * the body, dropping it past the limit; the last call answers. */
static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)cls, (void)version;
    conn_req *r = *con_cls;
    sv_error e = {0};
    bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int wr = work_route(url);
    /* a browser's GET / gets the web page, without the API key: the page
     * holds no data and asks for the key itself */
    bool page = get && !strcmp(url, "/") &&
                sv_page_wanted(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT));
    if (!r) {
        if (!(r = calloc(1, sizeof *r))) return MHD_NO;
        r->t0 = cli_now();
        *con_cls = r;
        __atomic_add_fetch(&S.active, 1, __ATOMIC_SEQ_CST);
        watch_phase(c, CONN_BODY, method, url);
        if (__atomic_load_n(&S.stopping, __ATOMIC_SEQ_CST)) {
            sv_fail(&e, 503, "unhealthy", NULL, "the server is shutting down");
            return send_error(c, method, url, r, &e);
        }
        if (S.n_cors && !strcmp(method, "OPTIONS")) return send_preflight(c, method, url, r);
        if (strcmp(url, "/health") != 0 && !page && !authorized(c)) {
            sv_fail(&e, 401, "unauthorized", NULL, "missing or wrong API key (send Authorization: Bearer KEY)");
            return send_error(c, method, url, r, &e);
        }
        if ((post && wr >= 0) || sv_index_is_route(url)) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl && strtoull(cl, NULL, 10) > (unsigned long long)S.payload_limit) {
                sv_fail(&e, 413, "payload_too_large", NULL, "the body (%s bytes) is larger than the limit of %ld bytes (--payload-limit)",
                        cl, S.payload_limit);
                return send_error(c, method, url, r, &e);
            }
            if (__atomic_add_fetch(&S.busy, 1, __ATOMIC_SEQ_CST) > S.max_concurrent) {
                __atomic_sub_fetch(&S.busy, 1, __ATOMIC_SEQ_CST);
                r->work = wr != SV_ROUTE_TEI_TOKENIZE && wr != SV_ROUTE_TEI_DECODE;
                r->embed = wr == SV_ROUTE_OPENAI_EMBED || wr == SV_ROUTE_TEI_EMBED || wr == SV_ROUTE_TEI_SIMILARITY ||
                           wr == SV_ROUTE_TEI_EMBED_ALL;
                r->refused = true; /* answered 429 once the body is read and dropped: the connection stays open */
                return MHD_YES;
            }
            r->admitted = true;
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (r->refused) *upload_size = 0;
        else if (!r->too_large && r->body.n + *upload_size <= (size_t)S.payload_limit) sv_buf_add(&r->body, upload, *upload_size);
        else r->too_large = true, sv_buf_free(&r->body);
        *upload_size = 0;
        return MHD_YES;
    }
    watch_phase(c, CONN_BUSY, NULL, NULL); /* the request is in: answering is not limited */
    if (r->refused) {
        sv_fail(&e, 429, "overloaded", NULL, "Model is overloaded: %ld requests in flight (--max-concurrent-requests)",
                S.max_concurrent);
        return send_error(c, method, url, r, &e);
    }
    if (r->too_large) {
        sv_fail(&e, 413, "payload_too_large", NULL, "the body is larger than the limit of %ld bytes (--payload-limit)",
                S.payload_limit);
        return send_error(c, method, url, r, &e);
    }
    if (r->body.oom) {
        sv_fail(&e, 503, "overloaded", NULL, "out of memory for the body");
        return send_error(c, method, url, r, &e);
    }
    if (post && wr >= 0 && wr != SV_ROUTE_TEI_TOKENIZE && wr != SV_ROUTE_TEI_DECODE) r->work = true;
    if (post && (wr == SV_ROUTE_OPENAI_EMBED || wr == SV_ROUTE_TEI_EMBED || wr == SV_ROUTE_TEI_SIMILARITY ||
                 wr == SV_ROUTE_TEI_EMBED_ALL)) {
        r->embed = true;
        return route_embed(c, method, url, r, (sv_route)wr);
    }
    if (post && (wr == SV_ROUTE_TEI_RERANK || wr == SV_ROUTE_TEI_PREDICT || wr == SV_ROUTE_JINA_RERANK))
        return route_pairs(c, method, url, r, (sv_route)wr);
    if (post && wr == SV_ROUTE_TEI_TOKENIZE) return route_tokenize(c, method, url, r);
    if (post && wr == SV_ROUTE_TEI_DECODE) return route_decode(c, method, url, r);
    if (sv_index_is_route(url)) return route_index(c, method, url, r);
    if (get && !strcmp(url, "/health")) {
        sv_buf b = {0};
        return send_body(c, method, url, r, 200, &b, NULL, NULL);
    }
    if (page) {
        size_t n;
        const char *html = sv_page(&n);
        sv_buf b = {0};
        sv_buf_add(&b, html, n);
        return send_body(c, method, url, r, 200, &b, "text/html; charset=utf-8", NULL);
    }
    if (get && !strcmp(url, "/info")) return route_info(c, method, url, r);
    if (get && !strcmp(url, "/v1/models")) return route_models(c, method, url, r);
    if (get && !strcmp(url, "/metrics")) return route_metrics(c, method, url, r);
    bool known = wr >= 0 || !strcmp(url, "/health") || !strcmp(url, "/info") || !strcmp(url, "/v1/models") ||
                 !strcmp(url, "/metrics");
    if (known) sv_fail(&e, 405, "validation", NULL, "%s is not allowed on %s", method, url);
    else sv_fail(&e, 404, "not_found", NULL, "no route %s %s", method, url);
    return send_error(c, method, url, r, &e);
}

/* Called by libmicrohttpd when a request is over (answered or not): frees
 * its state and leaves the counters. */
static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)toe;
    watch_phase(c, CONN_IDLE, NULL, NULL);
    conn_req *r = *con_cls;
    if (!r) return;
    if (r->admitted) __atomic_sub_fetch(&S.busy, 1, __ATOMIC_SEQ_CST);
    __atomic_sub_fetch(&S.active, 1, __ATOMIC_SEQ_CST);
    sv_buf_free(&r->body);
    free(r);
    *con_cls = NULL;
}

/* ==== Command line ==== */

static const char serve_usage[] =
    "usage: sembed serve -m DIR [-m NAME=DIR ...] [options]\n"
    "\n"
    "An HTTP embedding and reranking server: OpenAI's POST /v1/embeddings and GET /v1/models;\n"
    "text-embeddings-inference's POST /embed, /embed_all, /similarity, /rerank, /predict,\n"
    "/tokenize, /decode and / (the default model's own route), GET /info, /health and /metrics\n"
    "(Prometheus); Jina's and Cohere's POST /v1/rerank. Requests from all connections are\n"
    "batched together by the token budget; every vector and score is the same, bit for bit,\n"
    "whatever it is batched with.\n"
    "SIGTERM or SIGINT: stop accepting, finish the requests in flight, exit 0.\n"
    "\n"
    "  -m, --model [NAME=]DIR           a model folder (an embedding model or a cross-encoder), under\n"
    "                                   NAME (default: the folder's name); repeat for several models,\n"
    "                                   chosen by the request's \"model\"; the first is the default\n"
    "      --host ADDR                  address to listen on (default 127.0.0.1; 0.0.0.0 for all)\n"
    "      --port N                     port (default 8080; 0: any free port, printed at start)\n"
    "      --api-key KEY                require \"Authorization: Bearer KEY\" (not on /health)\n"
    "      --api-key-file F             the same, with the key read from the first line of F\n"
    "      --max-batch-tokens N         tokens in one forward pass (default 16384)\n"
    "      --max-client-batch-size N    inputs in one request (default 32)\n"
    "      --max-concurrent-requests N  requests in flight; more get 429 at once (default 512)\n"
    "      --payload-limit BYTES        largest request body; larger get 413 (default 2000000)\n"
    "      --auto-truncate              truncate inputs longer than the model reads (default: 422)\n"
    "  -t, --threads N                  threads per model's forward pass (default: all cores, at most 8)\n"
    "      --dtype D                    f32 (default), bf16 (AVX-512) or int8 (AVX512-VNNI)\n"
    "      --log-format F               text (default) or json: one line per request on stderr\n"
    "      --index [NAME=]FILE          serve an index of `sembed index build` (repeatable; NAME: the\n"
    "                                   file's name): POST /search, GET /indexes, POST and DELETE\n"
    "                                   /indexes/NAME/documents[/ID]; written by the server while it runs\n"
    "      --cors-allow-origin ORIGIN   allow browser pages from ORIGIN (repeatable; * for any):\n"
    "                                   Access-Control-Allow-Origin, OPTIONS preflights answered 204\n"
    "      --request-timeout SECONDS    a request must arrive whole (headers and body) within this;\n"
    "                                   slower clients get 408 and are disconnected (default 30)\n"
    "  -h, --help                       this help\n"
    "\n"
    "  sembed serve -m models/use-lite --port 8080\n"
    "  curl -s localhost:8080/embed -H 'Content-Type: application/json' -d '{\"inputs\": \"Hello\"}'\n";

/* Reads the API key from the first line of path (trailing newline and
 * blanks dropped) into a malloc'd string; NULL with a message on error. */
static char *read_key_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "sembed: serve: --api-key-file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char line[4096];
    char *k = NULL;
    if (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) line[--n] = 0;
        if (n) k = strdup(line);
    }
    fclose(f);
    if (!k) fprintf(stderr, "sembed: serve: --api-key-file %s: the first line is empty\n", path);
    return k;
}

/* The default name of a model folder: its last path component. */
static const char *dir_name(const char *dir, char *buf, size_t cap) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && dir[s - 1] != '/') s--;
    snprintf(buf, cap, "%.*s", (int)(n - s), dir + s);
    return buf;
}

int cmd_serve(int argc, char **argv);

/* `sembed serve`: parses options, loads the models, starts one batcher per
 * model and the HTTP daemon, then waits for SIGTERM or SIGINT and shuts
 * down in order (stop accepting, drain, stop the daemon, the batchers). */
int cmd_serve(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},          {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'p'},           {"api-key", required_argument, 0, 'k'},
        {"api-key-file", required_argument, 0, 'K'},   {"max-batch-tokens", required_argument, 0, 'B'},
        {"max-client-batch-size", required_argument, 0, 'C'}, {"max-concurrent-requests", required_argument, 0, 'R'},
        {"payload-limit", required_argument, 0, 'L'},  {"auto-truncate", no_argument, 0, 'A'},
        {"threads", required_argument, 0, 't'},        {"dtype", required_argument, 0, 'T'},
        {"log-format", required_argument, 0, 'F'},     {"help", no_argument, 0, 'h'},
        {"index", required_argument, 0, 'X'},
        {"cors-allow-origin", required_argument, 0, 'O'}, {"request-timeout", required_argument, 0, 'W'},
        {0, 0, 0, 0}};
    const char *specs[SV_MODELS_MAX], *key_file = NULL;
    char names[SV_MODELS_MAX][256];
    size_t n_specs = 0;
    long threads = 0;
    int dtype = SE_DTYPE_F32, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            if (n_specs == SV_MODELS_MAX) return cli_usage_error(serve_usage, "serve: at most %d models", SV_MODELS_MAX);
            specs[n_specs++] = optarg;
            break;
        case 'H': S.host = optarg; break;
        case 'p': if (cli_opt_long("serve", "--port", optarg, 0, 65535, &S.port)) return EXIT_USAGE; break;
        case 'k': free(S.api_key); S.api_key = strdup(optarg); break;
        case 'K': key_file = optarg; break;
        case 'B': if (cli_opt_long("serve", "--max-batch-tokens", optarg, 1, 1 << 24, &S.max_batch_tokens)) return EXIT_USAGE; break;
        case 'C': if (cli_opt_long("serve", "--max-client-batch-size", optarg, 1, 1 << 20, &S.max_client_batch)) return EXIT_USAGE; break;
        case 'R': if (cli_opt_long("serve", "--max-concurrent-requests", optarg, 1, 1 << 16, &S.max_concurrent)) return EXIT_USAGE; break;
        case 'L': if (cli_opt_long("serve", "--payload-limit", optarg, 1, 1L << 32, &S.payload_limit)) return EXIT_USAGE; break;
        case 'A': S.auto_truncate = true; break;
        case 't': if (cli_opt_long("serve", "-t/--threads", optarg, 1, 256, &threads)) return EXIT_USAGE; break;
        case 'T':
            if ((dtype = cli_parse_dtype(optarg)) < 0) return cli_usage_error(serve_usage, "serve: --dtype must be f32, bf16 or int8");
            break;
        case 'F':
            if (strcmp(optarg, "text") != 0 && strcmp(optarg, "json") != 0)
                return cli_usage_error(serve_usage, "serve: --log-format must be text or json");
            S.log_json = !strcmp(optarg, "json");
            break;
        case 'X': {
            char msg[512];
            if (!sv_index_spec(optarg, msg, sizeof msg)) return cli_usage_error(serve_usage, "serve: %s", msg);
            break;
        }
        case 'O':
            if (S.n_cors == SV_CORS_MAX)
                return cli_usage_error(serve_usage, "serve: at most %d --cors-allow-origin", SV_CORS_MAX);
            if (!optarg[0]) return cli_usage_error(serve_usage, "serve: --cors-allow-origin is empty");
            S.cors[S.n_cors++] = optarg;
            break;
        case 'W':
            if (cli_opt_long("serve", "--request-timeout", optarg, 1, 86400, &S.request_timeout)) return EXIT_USAGE;
            break;
        case 'h': fputs(serve_usage, stdout); return 0;
        default: fputs(serve_usage, stderr); return EXIT_USAGE;
        }
    }
    if (!n_specs) return cli_usage_error(serve_usage, "serve: missing -m MODEL");
    if (optind != argc) return cli_usage_error(serve_usage, "serve: unexpected argument '%s'", argv[optind]);
    if (S.api_key && key_file) return cli_usage_error(serve_usage, "serve: give --api-key or --api-key-file, not both");
    if (S.api_key && !S.api_key[0]) return cli_usage_error(serve_usage, "serve: --api-key is empty");
    if (key_file && !(S.api_key = read_key_file(key_file))) return EXIT_USAGE;
    struct sockaddr_in sa4 = {0};
    struct sockaddr_in6 sa6 = {0};
    bool v6 = strchr(S.host, ':') != NULL;
    if (!strcmp(S.host, "localhost")) S.host = "127.0.0.1";
    if (v6 ? inet_pton(AF_INET6, S.host, &sa6.sin6_addr) != 1 : inet_pton(AF_INET, S.host, &sa4.sin_addr) != 1)
        return cli_usage_error(serve_usage, "serve: --host '%s' is not an IPv4 or IPv6 address", S.host);
    sa4.sin_family = AF_INET, sa4.sin_port = htons((uint16_t)S.port);
    sa6.sin6_family = AF_INET6, sa6.sin6_port = htons((uint16_t)S.port);

    /* every thread started from here on (ctx pools, batchers, connections)
     * inherits this mask, so the signals reach sigwait below only */
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    signal(SIGPIPE, SIG_IGN);
#ifdef __GLIBC__
    /* one thread per connection: glibc would give each of them its own
     * malloc arena, which keep fragments, and resident memory crept up by
     * ~6% over a 10-minute soak (bench/serve); two arenas keep it flat.
     * A fixed mmap threshold: glibc raises its dynamic one after each
     * large free, and then keeps request buffers of every size (bodies up
     * to the payload limit) on the heap, where they fragment it; fixed,
     * blocks above 64 KiB go back to the system when freed */
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
#endif

    int rc = EXIT_RUNTIME;
    struct MHD_Daemon *d = NULL;
    se_error err = {0};
    for (size_t i = 0; i < n_specs; i++) {
        sv_model *sm = &S.models[i];
        const char *eq = strchr(specs[i], '=');
        if (eq && eq != specs[i] && !memchr(specs[i], '/', (size_t)(eq - specs[i]))) {
            snprintf(names[i], sizeof names[i], "%.*s", (int)(eq - specs[i]), specs[i]);
            sm->dir = eq + 1;
        } else {
            dir_name(specs[i], names[i], sizeof names[i]);
            sm->dir = specs[i];
        }
        sm->name = names[i];
        for (size_t j = 0; j < i; j++)
            if (!strcmp(S.models[j].name, sm->name)) {
                rc = cli_usage_error(serve_usage, "serve: two models are named '%s' (use -m NAME=DIR)", sm->name);
                goto out;
            }
        se_model_params mp = se_model_default_params();
        mp.log_fn = cli_log;
        mp.dtype = (se_dtype)dtype;
        if (cli_model_load(sm->dir, &mp, &sm->m, &err) != SE_OK) {
            fprintf(stderr, "sembed: serve: %s\n", err.msg);
            goto out;
        }
        S.n_models = i + 1;
        se_model_get_info(sm->m, &sm->info, NULL);
        sm->tok = se_model_tokenizer(sm->m);
        size_t budget = (size_t)S.max_batch_tokens;
        if (budget < (size_t)sm->info.n_tokens_max) budget = (size_t)sm->info.n_tokens_max;
        size_t queue_cap = (size_t)S.max_concurrent * (size_t)S.max_client_batch;
        if (sv_batcher_start(sm->m, (int)threads, budget, queue_cap, &sm->batcher, &err) != SE_OK) {
            fprintf(stderr, "sembed: serve: %s: %s\n", sm->name, err.msg);
            goto out;
        }
    }
    { /* the indexes, each paired with the model that built it */
        sv_index_model im[SV_MODELS_MAX];
        char msg[SE_ERROR_MSG_MAX + 600];
        for (size_t i = 0; i < S.n_models; i++) im[i] = (sv_index_model){S.models[i].name, S.models[i].dir, S.models[i].m};
        if (!sv_indexes_open(im, S.n_models, dtype, (int)threads, cli_log, msg, sizeof msg)) {
            fprintf(stderr, "sembed: serve: %s\n", msg);
            goto out;
        }
    }
    /* libmicrohttpd's idle timeout, for clients slow to read their answer;
     * the watchdog cuts slow senders first */
    unsigned mhd_timeout = (unsigned)(S.request_timeout + 1 > SV_TIMEOUT_S ? S.request_timeout + 1 : SV_TIMEOUT_S);
    /* connections are not requests: idle keep-alive connections (client
     * pools, a proxy's keepalive) stay open, and one over the limit is
     * reset without an answer, so the floor is well above small
     * --max-concurrent-requests values */
    unsigned conn_limit = S.max_concurrent * 2 < 1024 ? 1024 : S.max_concurrent * 2 > 4096 ? 4096 : (unsigned)S.max_concurrent * 2;
    d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                             MHD_USE_AUTO | (v6 ? MHD_USE_IPv6 : 0),
                         (uint16_t)S.port, NULL, NULL, handler, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                         MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                         MHD_OPTION_NOTIFY_CONNECTION, watch_notify, NULL,
                         MHD_OPTION_SOCK_ADDR, v6 ? (struct sockaddr *)&sa6 : (struct sockaddr *)&sa4,
                         MHD_OPTION_CONNECTION_LIMIT, conn_limit, MHD_OPTION_CONNECTION_TIMEOUT, mhd_timeout,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SV_HEADER_BYTES,
                         MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "sembed: serve: cannot listen on %s port %ld (in use, or not an address of this machine)\n",
                S.host, S.port);
        goto out;
    }
    if (pthread_create(&W.thread, NULL, watchdog_main, NULL) != 0) {
        fprintf(stderr, "sembed: serve: cannot start the request deadline thread\n");
        goto out;
    }
    W.running = true;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = di ? di->port : (unsigned)S.port;
    fprintf(stderr, "sembed: serving %s", S.models[0].name);
    for (size_t i = 1; i < S.n_models; i++) fprintf(stderr, ", %s", S.models[i].name);
    fprintf(stderr, " on http://%s%s%s:%u/\n", v6 ? "[" : "", S.host, v6 ? "]" : "", port);
    fflush(stderr);

    int sig = 0;
    sigwait(&stop_set, &sig);
    __atomic_store_n(&S.stopping, 1, __ATOMIC_SEQ_CST);
    fprintf(stderr, "sembed: serve: %s: no new connections; finishing the requests in flight\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    MHD_socket ls = MHD_quiesce_daemon(d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    double t_end = cli_now() + SV_DRAIN_S;
    while (__atomic_load_n(&S.active, __ATOMIC_SEQ_CST) > 0 && cli_now() < t_end) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    rc = __atomic_load_n(&S.active, __ATOMIC_SEQ_CST) > 0 ? EXIT_RUNTIME : 0;
    if (rc) fprintf(stderr, "sembed: serve: requests still running after %d s; stopping anyway\n", SV_DRAIN_S);
out:
    if (d) MHD_stop_daemon(d);
    if (W.running) {
        __atomic_store_n(&W.stop, 1, __ATOMIC_SEQ_CST);
        pthread_join(W.thread, NULL);
    }
    { /* after the daemon: no request can be using an index */
        char msg[SE_ERROR_MSG_MAX + 300];
        if (!sv_indexes_close(msg, sizeof msg)) {
            fprintf(stderr, "sembed: serve: %s\n", msg);
            rc = EXIT_RUNTIME;
        }
    }
    for (size_t i = 0; i < S.n_models; i++) {
        sv_batcher_stop(S.models[i].batcher);
        se_model_free(S.models[i].m);
    }
    free(S.api_key);
    if (rc == 0) fprintf(stderr, "sembed: serve: stopped\n");
    return rc;
}
