/*
 * serve_batch.c - `sembed serve`: the dynamic batcher of one model.
 *
 * Request threads tokenise their inputs and queue one item per sequence
 * (sv_batcher_run); one inference thread per model takes items from the
 * queue's head until the next would pass the token budget
 * (--max-batch-tokens), and computes them: vectors with the same
 * parameters (normalize, dimensions; each its own pooling start) in one
 * se_encode_ids call, token states (/embed_all) in one
 * se_encode_ids_tokens call, cross-encoder pairs with one activation in one
 * se_predict_ids call; the ctx's budget is the same, so a call is one
 * forward pass without padding. The library's results do not depend on
 * what a sequence is batched with, so neither do the server's. When a
 * call fails (a NaN from broken weights, say), its items are run one by
 * one, so that only the faulty input's request gets the error.
 *
 * The queue is bounded (max_queue_items): a request that does not fit is
 * refused at once (HTTP 429) instead of waiting, so memory stays bounded.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"

struct sv_batcher {
    const se_model *model;
    size_t n_labels;         /* scores per pair (cross-encoders), 0 for an embedding model */
    size_t n_embd;           /* floats per token state (SV_ITEM_TOKENS) */
    se_ctx *ctx;             /* used by the inference thread only */
    size_t max_batch_tokens; /* token budget of one pass */
    size_t max_queue_items;
    pthread_t thread;
    pthread_mutex_t mu;      /* guards everything below and every job's n_left/status */
    pthread_cond_t cv;       /* the queue got items, or stop */
    sv_item *head, *tail;    /* FIFO */
    size_t n_queued;
    size_t n_passes;         /* forward passes run (stats) */
    size_t n_mixed;          /* of those, passes whose sequences came from more than one request */
    bool stop;
};

/* Whether two items can share one encode call. */
static bool same_params(const sv_item *a, const sv_item *b) {
    if (a->kind != b->kind) return false;
    if (a->kind == SV_ITEM_PAIR) return a->act == b->act;
    if (a->kind == SV_ITEM_TOKENS) return true;
    return a->truncate_dim == b->truncate_dim && a->normalize == b->normalize && a->skip_normalize == b->skip_normalize;
}

/* Scores the n pair items of group g (one activation) into their out rows
 * (n_labels each) with one se_predict_ids call. Returns the library's
 * status; err says why. */
static se_status predict_group(sv_batcher *b, sv_item **g, size_t n, se_error *err) {
    se_predict_params p = se_predict_default_params();
    p.activation = (se_score_act)g[0]->act;
    size_t nl = b->n_labels;
    const int32_t **ids = malloc(n * sizeof *ids), **types = malloc(n * sizeof *types);
    size_t *lens = malloc(n * sizeof *lens);
    float *out = nl && n <= ((size_t)-1) / sizeof(float) / nl ? malloc(n * nl * sizeof *out) : NULL;
    se_status s;
    if (!ids || !types || !lens || !out) {
        s = SE_E_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        err->code = s;
        goto done;
    }
    for (size_t i = 0; i < n; i++) ids[i] = g[i]->ids, types[i] = g[i]->type_ids, lens[i] = g[i]->n_ids;
    s = se_predict_ids(b->ctx, ids, types, lens, n, &p, out, n * nl, err);
    if (s == SE_OK)
        for (size_t i = 0; i < n; i++) memcpy(g[i]->out, out + i * nl, nl * sizeof *out);
done:
    free(ids);
    free(types);
    free(lens);
    free(out);
    return s;
}

/* Computes the token states of the n SV_ITEM_TOKENS items of group g into
 * their out rows (n_ids * n_embd floats each) with one
 * se_encode_ids_tokens call. Returns the library's status; err says why. */
static se_status tokens_group(sv_batcher *b, sv_item **g, size_t n, se_error *err) {
    const int32_t **ids = calloc(n, sizeof *ids);
    size_t *lens = calloc(n, sizeof *lens), total = 0;
    for (size_t i = 0; lens && i < n; i++) total += g[i]->n_ids;
    size_t cap = total * b->n_embd;
    float *out = malloc((cap ? cap : 1) * sizeof *out);
    se_status s;
    if (!ids || !lens || !out) {
        s = SE_E_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        err->code = s;
        goto done;
    }
    for (size_t i = 0; i < n; i++) ids[i] = g[i]->ids, lens[i] = g[i]->n_ids;
    s = se_encode_ids_tokens(b->ctx, ids, lens, n, out, cap, err);
    if (s == SE_OK)
        for (size_t i = 0, row = 0; i < n; row += g[i]->n_ids, i++)
            memcpy(g[i]->out, out + row * b->n_embd, g[i]->n_ids * b->n_embd * sizeof *out);
done:
    free(ids);
    free(lens);
    free(out);
    return s;
}

/* Computes the n items of group g (one kind, the same parameters) into
 * their out rows in one call; scratch arrays are malloc'd per call.
 * Vectors go through se_encode_ids with each item's pooling start, token
 * states to tokens_group, pairs to predict_group. Returns the library's
 * status; err says why. */
static se_status encode_group(sv_batcher *b, sv_item **g, size_t n, se_error *err) {
    if (g[0]->kind == SV_ITEM_PAIR) return predict_group(b, g, n, err);
    if (g[0]->kind == SV_ITEM_TOKENS) return tokens_group(b, g, n, err);
    se_encode_params p = se_encode_default_params();
    p.truncate_dim = g[0]->truncate_dim;
    p.normalize = g[0]->normalize;
    p.skip_normalize = g[0]->skip_normalize;
    size_t dim = se_encode_dim(b->model, &p);
    const int32_t **ids = malloc(n * sizeof *ids);
    size_t *lens = malloc(n * sizeof *lens), *starts = malloc(n * sizeof *starts);
    float *out = dim && n <= ((size_t)-1) / sizeof(float) / dim ? malloc(n * dim * sizeof *out) : NULL;
    se_status s;
    if (!ids || !lens || !starts || !out) {
        s = SE_E_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        err->code = s;
        goto done;
    }
    for (size_t i = 0; i < n; i++) ids[i] = g[i]->ids, lens[i] = g[i]->n_ids, starts[i] = g[i]->pool_start;
    p.pool_starts = starts;
    s = se_encode_ids(b->ctx, ids, lens, n, &p, out, n * dim, err);
    if (s == SE_OK)
        for (size_t i = 0; i < n; i++) memcpy(g[i]->out, out + i * dim, dim * sizeof *out);
done:
    free(ids);
    free(lens);
    free(starts);
    free(out);
    return s;
}

/* Records an item's result under the batcher's lock: the first error of a
 * job is kept; the job's thread is woken when its last item is done. */
static void finish_item(sv_item *it, se_status s, const se_error *err) {
    sv_job *j = it->job;
    if (s != SE_OK && j->status == SE_OK) {
        j->status = s;
        j->err_item = it->index;
        snprintf(j->msg, sizeof j->msg, "%s", err->msg);
    }
    if (--j->n_left == 0) {
        j->t_end = sv_now();
        pthread_cond_signal(&j->cv);
    }
}

double sv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The inference thread: takes a budget's worth of items, encodes them by
 * groups of equal parameters, reports, and repeats until stopped with an
 * empty queue. */
static void *batcher_main(void *arg) {
    sv_batcher *b = arg;
    sv_item **take = NULL, **grp = NULL;
    size_t take_cap = 0;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->head && !b->stop) pthread_cond_wait(&b->cv, &b->mu);
        if (!b->head) break; /* stopping, and nothing left */
        size_t n = 0, tokens = 0;
        while (b->head && (n == 0 || tokens + b->head->n_ids <= b->max_batch_tokens)) {
            if (n == take_cap) {
                size_t nc = take_cap ? 2 * take_cap : 256;
                sv_item **t1 = realloc(take, nc * sizeof *t1), **t2 = t1 ? realloc(grp, nc * sizeof *t2) : NULL;
                if (t1) take = t1;
                if (t2) grp = t2;
                if (!t1 || !t2) break;
                take_cap = nc;
            }
            sv_item *it = b->head;
            b->head = it->next;
            if (!b->head) b->tail = NULL;
            b->n_queued--;
            take[n++] = it;
            tokens += it->n_ids;
        }
        if (n == 0) { /* no memory for even one slot: fail the head item rather than spin */
            sv_item *it = b->head;
            b->head = it->next;
            if (!b->head) b->tail = NULL;
            b->n_queued--;
            se_error e = {SE_E_NOMEM, "out of memory"};
            finish_item(it, SE_E_NOMEM, &e);
            continue;
        }
        b->n_passes++;
        for (size_t i = 1; i < n; i++)
            if (take[i]->job != take[0]->job) {
                b->n_mixed++;
                break;
            }
        double now = sv_now();
        for (size_t i = 0; i < n; i++)
            if (take[i]->job->t_start == 0) take[i]->job->t_start = now;
        pthread_mutex_unlock(&b->mu);
        sv_metrics_batch(n, tokens);
        /* group by parameters, keeping queue order within a group (a taken
         * item's slot is cleared); each group is reported when it is done */
        for (size_t i = 0; i < n; i++) {
            sv_item *lead = take[i];
            if (!lead) continue;
            size_t ng = 0;
            for (size_t k = i; k < n; k++)
                if (take[k] && same_params(lead, take[k])) grp[ng++] = take[k], take[k] = NULL;
            se_error e = {0};
            se_status s = encode_group(b, grp, ng, &e);
            if (s != SE_OK && ng > 1) { /* find the faulty input(s): one by one */
                for (size_t k = 0; k < ng; k++) {
                    se_error e1 = {0};
                    se_status s1 = encode_group(b, &grp[k], 1, &e1);
                    pthread_mutex_lock(&b->mu);
                    finish_item(grp[k], s1, &e1);
                    pthread_mutex_unlock(&b->mu);
                }
            } else {
                pthread_mutex_lock(&b->mu);
                for (size_t k = 0; k < ng; k++) finish_item(grp[k], s, &e);
                pthread_mutex_unlock(&b->mu);
            }
        }
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    free(take);
    free(grp);
    return NULL;
}

se_status sv_batcher_start(const se_model *model, int n_threads, size_t max_batch_tokens, size_t max_queue_items,
                           sv_batcher **out, se_error *err) {
    sv_batcher *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return err->code = SE_E_NOMEM;
    }
    b->model = model;
    se_model_info info;
    if (se_model_get_info(model, &info, NULL) == SE_OK) {
        if (info.head) b->n_labels = (size_t)info.n_labels;
        b->n_embd = (size_t)info.n_embd;
    }
    b->max_batch_tokens = max_batch_tokens;
    b->max_queue_items = max_queue_items;
    se_ctx_params cp = se_ctx_default_params();
    cp.n_threads = n_threads;
    cp.n_batch_tokens = max_batch_tokens > INT32_MAX ? INT32_MAX : (int32_t)max_batch_tokens;
    se_status s = se_ctx_new(model, &cp, &b->ctx, err);
    if (s != SE_OK) {
        free(b);
        return s;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    if (pthread_create(&b->thread, NULL, batcher_main, b) != 0) {
        se_ctx_free(b->ctx);
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        free(b);
        snprintf(err->msg, sizeof err->msg, "cannot start the inference thread");
        return err->code = SE_E_NOMEM;
    }
    *out = b;
    return SE_OK;
}

bool sv_batcher_run(sv_batcher *b, sv_job *job, sv_item *items, size_t n) {
    pthread_cond_init(&job->cv, NULL);
    job->n_left = n;
    job->t_queued = sv_now();
    job->t_start = job->t_end = 0;
    job->status = SE_OK;
    job->msg[0] = 0;
    pthread_mutex_lock(&b->mu);
    if (b->stop || n > b->max_queue_items - b->n_queued) {
        pthread_mutex_unlock(&b->mu);
        pthread_cond_destroy(&job->cv);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        items[i].job = job;
        items[i].next = NULL;
        if (b->tail) b->tail->next = &items[i];
        else b->head = &items[i];
        b->tail = &items[i];
    }
    b->n_queued += n;
    pthread_cond_signal(&b->cv);
    while (job->n_left > 0) pthread_cond_wait(&job->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    pthread_cond_destroy(&job->cv);
    return true;
}

void sv_batcher_stats(sv_batcher *b, size_t *queued, size_t *passes, size_t *mixed) {
    pthread_mutex_lock(&b->mu);
    *queued = b->n_queued;
    *passes = b->n_passes;
    *mixed = b->n_mixed;
    pthread_mutex_unlock(&b->mu);
}

void sv_batcher_stop(sv_batcher *b) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    se_ctx_free(b->ctx);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}
