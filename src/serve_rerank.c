/*
 * serve_rerank.c - `sembed serve`: the cross-encoder routes.
 *
 *   POST /rerank      TEI: {query, texts, raw_scores, return_text, truncate}
 *                     -> [{index, text?, score}], best first
 *   POST /v1/rerank   Jina/Cohere (as llama.cpp serves it; also /rerank with
 *                     documents and no texts, /reranking, /v1/reranking):
 *                     {query, documents, top_n, return_documents}
 *                     -> {model, object, usage, results: [{index,
 *                     relevance_score, document?: {text}}]}, best first
 *   POST /predict     TEI: {inputs, raw_scores, truncate} -> per input
 *                     [{score, label}], best first (one input: a flat list)
 *
 * Each pair is prepared as sentence-transformers' CrossEncoder does (and
 * se_predict): both texts stripped (str.strip), tokenised with the pair
 * template and truncated longest_first to the model's max_seq_length
 * (truncation_direction "left": each text cut from its start, Hugging
 * Face's truncation_side "left"), on the request thread; the token ids go to the model's batcher, which
 * scores them with se_predict_ids together with other requests' pairs
 * (bit-identical whatever shares the pass). A single /predict text uses
 * the single template.
 *
 * Scores: TEI's raw_scores true is the logits; false TEI's activation,
 * sigmoid for one label and a softmax over several. The Jina route gives
 * the model's own activation (se_model_info.activation, what `sembed
 * rerank` and se_rank give: CrossEncoder.rank's default). Ties keep input
 * order (se_rank's order).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

/* One scored input, for sorting. */
typedef struct ranked {
    float score;
    size_t index;
} ranked;

/* Highest score first, then input order (se_rank's order). */
static int by_score(const void *x, const void *y) {
    const ranked *a = x, *b = y;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* Whether code point cp is whitespace to Python's str.strip(). */
static bool is_py_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

/* Decodes the code point at s[0..n) (valid UTF-8, as jansson checked) into
 * *cp; returns its byte length. */
static size_t utf8_at(const unsigned char *s, size_t n, uint32_t *cp) {
    size_t k = s[0] < 0x80 ? 1 : s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
    if (k > n) k = n;
    uint32_t v = k == 1 ? s[0] : k == 2 ? s[0] & 0x1Fu : k == 3 ? s[0] & 0x0Fu : s[0] & 0x07u;
    for (size_t i = 1; i < k; i++) v = v << 6 | (s[i] & 0x3Fu);
    *cp = v;
    return k;
}

/* Narrows *s / *n (valid UTF-8) to the text without Python whitespace
 * (str.strip) at either end, as se_predict strips each text of a pair. */
static void strip_span(const char **s, size_t *n) {
    const unsigned char *u = (const unsigned char *)*s;
    size_t b = 0, e = *n;
    while (b < e) {
        uint32_t cp;
        size_t k = utf8_at(u + b, e - b, &cp);
        if (!is_py_space(cp)) break;
        b += k;
    }
    while (e > b) {
        size_t t = e - 1;
        while (t > b && (u[t] & 0xC0) == 0x80) t--;
        uint32_t cp;
        utf8_at(u + t, e - t, &cp);
        if (!is_py_space(cp)) break;
        e = t;
    }
    *s += b, *n = e - b;
}

/* Tokenises pair (a, b) (b NULL: a single text) as se_predict does
 * (CrossEncoder's preparation): both stripped, the model's template,
 * truncated longest_first to the model's n_tokens_max, from the end of
 * each text or, with left, from its start (truncation_direction "left").
 * *ids and *types are malloc'd (cap n_tokens_max + 8). */
static se_status tokenize_pair(const sv_model *sm, const char *a, size_t la, const char *b, size_t lb, bool left,
                               int32_t **ids, int32_t **types, size_t *n, bool *cut, se_error *err) {
    size_t cap = (size_t)sm->info.n_tokens_max + 8;
    *ids = malloc(cap * sizeof **ids);
    *types = malloc(cap * sizeof **types);
    if (!*ids || !*types) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return SE_E_NOMEM;
    }
    strip_span(&a, &la);
    if (b) strip_span(&b, &lb);
    se_tokenize_params tp = se_tokenize_default_params(sm->tok);
    tp.n_tokens_max = (size_t)sm->info.n_tokens_max;
    tp.add_special = true;
    tp.truncate_left = left;
    return se_tokenize(sm->tok, a, la, b, lb, &tp, *ids, *types, cap, n, cut, err);
}

bool sv_route_pairs(sv_model *sm, sv_request *q, sv_buf *out, sv_stats *st, sv_error *e) {
    const se_model_info *in = &sm->info;
    size_t n = q->n_inputs, nl = (size_t)in->n_labels;
    bool jina = q->route == SV_ROUTE_JINA_RERANK, rerank = jina || q->route == SV_ROUTE_TEI_RERANK;
    int act = jina ? SE_SCORE_MODEL : q->raw_scores ? SE_SCORE_IDENTITY : nl == 1 ? SE_SCORE_SIGMOID : SE_SCORE_SOFTMAX;
    sv_item *items = calloc(n, sizeof *items);
    int32_t **ids = calloc(n, sizeof *ids), **types = calloc(n, sizeof *types);
    float *scores = nl && n <= ((size_t)-1) / sizeof(float) / nl ? malloc(n * nl * sizeof *scores) : NULL;
    ranked *rk = malloc((n > nl ? n : nl) * sizeof *rk); /* sorts documents, or one input's labels */
    bool ok = false;
    if (!items || !ids || !types || !scores || !rk) {
        sv_fail(e, 503, "overloaded", NULL, "out of memory");
        goto done;
    }
    double t0 = sv_now();
    const char *field = jina ? "documents" : rerank ? "texts" : "inputs";
    for (size_t i = 0; i < n; i++) {
        const sv_input *x = &q->inputs[i];
        const char *a = rerank ? q->query : x->text, *b = rerank ? x->text : x->pair;
        size_t la = rerank ? q->query_len : x->text_len, lb = rerank ? x->text_len : x->pair_len;
        size_t nt = 0;
        bool cut = false;
        se_error te = {0};
        se_status s = tokenize_pair(sm, a, la, b, lb, q->truncate_left, &ids[i], &types[i], &nt, &cut, &te);
        if (s != SE_OK) {
            sv_fail(e, s == SE_E_NOMEM ? 503 : 422, s == SE_E_NOMEM ? "overloaded" : "tokenizer", field,
                    "input %zu: %s", i, te.msg);
            goto done;
        }
        if (cut && !q->truncate) {
            sv_fail(e, 422, "validation", field,
                    "input %zu: %s is longer than the model's %d tokens (send truncate: true, or start the server "
                    "with --auto-truncate)", i, rerank ? "the query with this document" : b ? "the pair" : "the text",
                    in->n_tokens_max);
            goto done;
        }
        sv_metrics_input_length(nt);
        st->n_tokens += nt;
        items[i].index = i;
        items[i].kind = SV_ITEM_PAIR;
        items[i].act = act;
        items[i].ids = ids[i];
        items[i].type_ids = types[i];
        items[i].n_ids = nt;
        items[i].out = scores + i * nl;
    }
    st->t_tokenize = sv_now() - t0;
    sv_job job;
    if (!sv_batcher_run(sm->batcher, &job, items, n)) {
        sv_fail(e, 429, "overloaded", NULL, "Model is overloaded: the queue is full");
        goto done;
    }
    if (job.t_start > 0) st->t_queue = job.t_start - job.t_queued, st->t_infer = job.t_end - job.t_start;
    if (job.status != SE_OK) {
        sv_fail(e, 424, "backend", NULL, "input %zu: %s", job.err_item, job.msg);
        goto done;
    }
    if (rerank) {
        for (size_t i = 0; i < n; i++) rk[i].score = scores[i], rk[i].index = i;
        qsort(rk, n, sizeof *rk, by_score);
        size_t k = jina && q->top_n < n ? q->top_n : n;
        if (jina) {
            sv_buf_puts(out, "{\"model\":");
            sv_buf_json_str(out, sm->name, strlen(sm->name));
            sv_buf_printf(out, ",\"object\":\"list\",\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu},\"results\":[",
                          st->n_tokens, st->n_tokens);
        } else {
            sv_buf_puts(out, "[");
        }
        for (size_t r = 0; r < k; r++) {
            const sv_input *x = &q->inputs[rk[r].index];
            sv_buf_printf(out, "%s{\"index\":%zu", r ? "," : "", rk[r].index);
            if (q->return_text) {
                sv_buf_puts(out, jina ? ",\"document\":{\"text\":" : ",\"text\":");
                sv_buf_json_str(out, x->text, x->text_len);
                if (jina) sv_buf_puts(out, "}");
            }
            sv_buf_puts(out, jina ? ",\"relevance_score\":" : ",\"score\":");
            sv_buf_float(out, rk[r].score);
            sv_buf_puts(out, "}");
        }
        sv_buf_puts(out, jina ? "]}" : "]");
    } else {
        if (!q->single) sv_buf_puts(out, "[");
        for (size_t i = 0; i < n; i++) {
            for (size_t l = 0; l < nl; l++) rk[l].score = scores[i * nl + l], rk[l].index = l;
            qsort(rk, nl, sizeof *rk, by_score);
            sv_buf_puts(out, i ? ",[" : "[");
            for (size_t l = 0; l < nl; l++) {
                sv_buf_puts(out, l ? ",{\"score\":" : "{\"score\":");
                sv_buf_float(out, rk[l].score);
                sv_buf_puts(out, ",\"label\":");
                const char *name = in->labels ? in->labels[rk[l].index] : NULL;
                if (name) {
                    sv_buf_json_str(out, name, strlen(name));
                } else {
                    sv_buf_printf(out, "\"LABEL_%zu\"", rk[l].index);
                }
                sv_buf_puts(out, "}");
            }
            sv_buf_puts(out, "]");
        }
        if (!q->single) sv_buf_puts(out, "]");
    }
    ok = true;
done:
    for (size_t i = 0; ids && i < n; i++) free(ids[i]);
    for (size_t i = 0; types && i < n; i++) free(types[i]);
    free(ids);
    free(types);
    free(items);
    free(scores);
    free(rk);
    return ok;
}
