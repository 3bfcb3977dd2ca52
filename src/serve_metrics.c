/*
 * serve_metrics.c - `sembed serve`: GET /metrics, the server's counters and
 * histograms in Prometheus' text exposition format (version 0.0.4).
 *
 * The names, labels and bucket bounds are text-embeddings-inference's
 * (router/src/prometheus.rs and its metrics::counter!/histogram!/gauge!
 * calls), so TEI dashboards read sembed too:
 *   te_request_count{method}   work requests received ("single": one input,
 *                              "batch": a list); te_request_success{method};
 *   te_request_failure{err}    validation, tokenization, batch_size,
 *                              model_type, overloaded, inference;
 *   te_embed_count, te_embed_success, te_predict_count, te_predict_success:
 *                              the same split by embedding / cross-encoder;
 *   te_request_duration, te_request_tokenization_duration,
 *   te_request_queue_duration, te_request_inference_duration: seconds, 35
 *                              buckets from 1.5e-5 growing by 1.5;
 *   te_request_input_length    tokens per input, buckets 2^k up to the
 *                              default model's max_input_length;
 *   te_batch_next_size, te_batch_next_tokens: items and tokens per forward
 *                              pass, buckets 2^0..2^12 and 2^0..2^20;
 *   te_queue_size              items waiting in the batchers (a gauge).
 * Counters are written without a _total suffix, as TEI's exporter does.
 * Every series is present from the start (zero until counted), so a
 * scraper sees the same set each time.
 *
 * One mutex guards everything; each request takes it a few times, which
 * is nothing next to a forward pass.
 */
#include <math.h>
#include <string.h>

#include "serve.h"

#define N_DUR 35      /* duration buckets */
#define N_LEN 20      /* input length buckets 2^0..2^19 (rendered up to max_input_length) */
#define N_BSIZE 13    /* batch size buckets 2^0..2^12 */
#define N_BTOK 21     /* batch token buckets 2^0..2^20 */
#define N_BUCKETS_MAX 35

/* One histogram: cumulative counts are computed when rendering. */
typedef struct hist {
    const char *name, *help;
    int n;                        /* buckets (bounds) */
    int kind;                     /* 0 durations, 1 input length, 2 batch size, 3 batch tokens */
    uint64_t counts[N_BUCKETS_MAX + 1]; /* per bucket, the last is +Inf */
    double sum;
    uint64_t count;
} hist;

enum { H_DUR, H_TOK, H_QUEUE, H_INFER, H_EMBED_DUR, H_PREDICT_DUR, H_LEN, H_BSIZE, H_BTOK, H_N };

static const char *const fail_names[SV_FAIL_N] = {"validation", "tokenization", "batch_size",
                                                  "model_type", "overloaded",   "inference"};

static struct {
    pthread_mutex_t mu;
    uint64_t count[2], success[2]; /* [0] single, [1] batch */
    uint64_t failure[SV_FAIL_N];
    uint64_t embed_count, embed_success, predict_count, predict_success;
    hist h[H_N];
} M = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .h = {
        [H_DUR] = {"te_request_duration", "Seconds from a work request's first byte to its answer", N_DUR, 0, {0}, 0, 0},
        [H_TOK] = {"te_request_tokenization_duration", "Seconds a work request spent tokenising", N_DUR, 0, {0}, 0, 0},
        [H_QUEUE] = {"te_request_queue_duration", "Seconds a work request's inputs waited for a forward pass", N_DUR, 0,
                     {0}, 0, 0},
        [H_INFER] = {"te_request_inference_duration", "Seconds from a work request's first forward pass to its last",
                     N_DUR, 0, {0}, 0, 0},
        [H_EMBED_DUR] = {"te_embed_duration", "Seconds per successful embedding request", N_DUR, 0, {0}, 0, 0},
        [H_PREDICT_DUR] = {"te_predict_duration", "Seconds per successful cross-encoder request", N_DUR, 0, {0}, 0, 0},
        [H_LEN] = {"te_request_input_length", "Tokens per input (special tokens included)", N_LEN, 1, {0}, 0, 0},
        [H_BSIZE] = {"te_batch_next_size", "Sequences per forward pass", N_BSIZE, 2, {0}, 0, 0},
        [H_BTOK] = {"te_batch_next_tokens", "Tokens per forward pass", N_BTOK, 3, {0}, 0, 0},
    }};

/* The upper bound of bucket i of a histogram kind (TEI's bounds). */
static double bound(int kind, int i) {
    if (kind == 0) return 0.00001 * pow(1.5, i + 1);
    return ldexp(1.0, i); /* 2^i */
}

/* Adds v to histogram h. Called with M.mu held. */
static void observe(hist *h, double v) {
    int i = 0;
    while (i < h->n && v > bound(h->kind, i)) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void sv_metrics_request(bool batch, bool embed) {
    pthread_mutex_lock(&M.mu);
    M.count[batch]++;
    if (embed) M.embed_count++;
    else M.predict_count++;
    pthread_mutex_unlock(&M.mu);
}

void sv_metrics_success(bool batch, bool embed, double t_total, const sv_stats *st) {
    pthread_mutex_lock(&M.mu);
    M.success[batch]++;
    if (embed) M.embed_success++;
    else M.predict_success++;
    observe(&M.h[H_DUR], t_total);
    observe(&M.h[embed ? H_EMBED_DUR : H_PREDICT_DUR], t_total);
    if (st) {
        observe(&M.h[H_TOK], st->t_tokenize);
        observe(&M.h[H_QUEUE], st->t_queue);
        observe(&M.h[H_INFER], st->t_infer);
    }
    pthread_mutex_unlock(&M.mu);
}

void sv_metrics_failure(sv_fail_kind why) {
    if ((unsigned)why >= SV_FAIL_N) return;
    pthread_mutex_lock(&M.mu);
    M.failure[why]++;
    pthread_mutex_unlock(&M.mu);
}

void sv_metrics_input_length(size_t n_tokens) {
    pthread_mutex_lock(&M.mu);
    observe(&M.h[H_LEN], (double)n_tokens);
    pthread_mutex_unlock(&M.mu);
}

void sv_metrics_batch(size_t n_items, size_t n_tokens) {
    pthread_mutex_lock(&M.mu);
    observe(&M.h[H_BSIZE], (double)n_items);
    observe(&M.h[H_BTOK], (double)n_tokens);
    pthread_mutex_unlock(&M.mu);
}

/* Writes a counter's HELP and TYPE lines. */
static void head(sv_buf *b, const char *name, const char *type, const char *help) {
    sv_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Writes one histogram: its buckets (cumulative; for the input length only
 * bounds up to max_len, the rest folded into +Inf), _sum and _count. */
static void render_hist(sv_buf *b, const hist *h, size_t max_len) {
    head(b, h->name, "histogram", h->help);
    uint64_t cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += h->counts[i];
        double le = bound(h->kind, i);
        if (h->kind == 1 && le > (double)max_len) continue;
        sv_buf_printf(b, "%s_bucket{le=\"%.9g\"} %llu\n", h->name, le, (unsigned long long)cum);
    }
    sv_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", h->name, (unsigned long long)h->count);
    sv_buf_printf(b, "%s_sum %.9g\n%s_count %llu\n", h->name, h->sum, h->name, (unsigned long long)h->count);
}

void sv_metrics_render(sv_buf *b, size_t queued, size_t max_input_length) {
    pthread_mutex_lock(&M.mu);
    head(b, "te_request_count", "counter", "Work requests received, by one input (single) or a list (batch)");
    sv_buf_printf(b, "te_request_count{method=\"single\"} %llu\nte_request_count{method=\"batch\"} %llu\n",
                  (unsigned long long)M.count[0], (unsigned long long)M.count[1]);
    head(b, "te_request_success", "counter", "Work requests answered 200");
    sv_buf_printf(b, "te_request_success{method=\"single\"} %llu\nte_request_success{method=\"batch\"} %llu\n",
                  (unsigned long long)M.success[0], (unsigned long long)M.success[1]);
    head(b, "te_request_failure", "counter", "Work requests answered with an error, by cause");
    for (int i = 0; i < SV_FAIL_N; i++)
        sv_buf_printf(b, "te_request_failure{err=\"%s\"} %llu\n", fail_names[i], (unsigned long long)M.failure[i]);
    head(b, "te_embed_count", "counter", "Embedding requests received");
    sv_buf_printf(b, "te_embed_count %llu\n", (unsigned long long)M.embed_count);
    head(b, "te_embed_success", "counter", "Embedding requests answered 200");
    sv_buf_printf(b, "te_embed_success %llu\n", (unsigned long long)M.embed_success);
    head(b, "te_predict_count", "counter", "Cross-encoder requests received (rerank, predict)");
    sv_buf_printf(b, "te_predict_count %llu\n", (unsigned long long)M.predict_count);
    head(b, "te_predict_success", "counter", "Cross-encoder requests answered 200");
    sv_buf_printf(b, "te_predict_success %llu\n", (unsigned long long)M.predict_success);
    for (int i = 0; i < H_N; i++) render_hist(b, &M.h[i], max_input_length);
    pthread_mutex_unlock(&M.mu);
    head(b, "te_queue_size", "gauge", "Sequences waiting for a forward pass");
    sv_buf_printf(b, "te_queue_size %zu\n", queued);
}
