/*
 * serve_req.c - `sembed serve`: binding request bodies (JSON) to requests,
 * and the text helpers responses are written with.
 *
 * Request bodies (jansson parses them; it rejects invalid UTF-8, NUL
 * characters in strings and duplicate keys):
 *   POST /v1/embeddings  {input, model?, encoding_format?, dimensions?, user?}
 *   POST /embed, POST /  {inputs, normalize?, truncate?, truncation_direction?,
 *                         prompt_name?, dimensions?, model?}
 *   POST /embed_all      {inputs, truncate?, truncation_direction?, prompt_name?, model?}
 *   POST /tokenize       {inputs, add_special_tokens?, prompt_name?, model?}
 *   POST /decode         {ids (a list of token ids or a list of lists), skip_special_tokens?, model?}
 *   POST /rerank         TEI: {query, texts, raw_scores?, return_text?, truncate?,
 *                        truncation_direction?, model?}
 *   POST /v1/rerank      Jina/Cohere: {query, documents (strings or {"text": ...}),
 *                        top_n?, return_documents?, model?}
 *                        (on every rerank path, a body with texts is TEI's and one
 *                        with documents Jina's: llama.cpp tells them apart so)
 *   POST /predict        TEI: {inputs, raw_scores?, truncate?, truncation_direction?,
 *                        model?}; inputs a string, a pair [a, b], or a list of
 *                        [a] / [a, b] lists
 *   POST /similarity     TEI: {inputs: {source_sentence, sentences}, parameters?:
 *                        {truncate?, truncation_direction?, prompt_name?}, model?}
 * input / inputs: a string, a list of strings, a list of token ids (one
 * sequence) or a list of lists of token ids (OpenAI's and TEI's forms).
 * truncation_direction "Left" keeps the last tokens (of a text, or of an id
 * list). Status codes follow TEI: 400 for a body that is not JSON and for empty
 * input, 422 for a field of the wrong type or out of range. Limits that
 * need the model (ids in the vocabulary, dimensions <= the model's) are
 * checked by serve.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "serve.h"

/* ==== Text buffer ==== */

/* Makes room for n more bytes (and a NUL); false (and b->oom) when that
 * cannot be had. */
static bool buf_reserve(sv_buf *b, size_t n) {
    if (b->oom) return false;
    if (b->n + n + 1 <= b->cap) return true;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->n + n + 1) {
        if (nc > ((size_t)-1) / 2) {
            b->oom = true;
            return false;
        }
        nc *= 2;
    }
    char *p = realloc(b->p, nc);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p, b->cap = nc;
    return true;
}

void sv_buf_add(sv_buf *b, const char *s, size_t n) {
    if (!buf_reserve(b, n)) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void sv_buf_puts(sv_buf *b, const char *s) { sv_buf_add(b, s, strlen(s)); }

void sv_buf_printf(sv_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0 || !buf_reserve(b, (size_t)k)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

void sv_buf_json_str(sv_buf *b, const char *s, size_t n) {
    sv_buf_add(b, "\"", 1);
    size_t run = 0; /* bytes copied as they are, flushed before each escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        sv_buf_add(b, s + i - run, run);
        run = 0;
        char esc[8];
        if (c == '"' || c == '\\') snprintf(esc, sizeof esc, "\\%c", c);
        else if (c == '\n') strcpy(esc, "\\n");
        else if (c == '\t') strcpy(esc, "\\t");
        else if (c == '\r') strcpy(esc, "\\r");
        else snprintf(esc, sizeof esc, "\\u%04x", c);
        sv_buf_puts(b, esc);
    }
    sv_buf_add(b, s + n - run, run);
    sv_buf_add(b, "\"", 1);
}

void sv_buf_float(sv_buf *b, float v) {
    char t[32];
    if (v != v || v - v != 0.0f) { /* NaN or infinity: the encoder refuses them; never expected */
        sv_buf_puts(b, "null");
        return;
    }
    sv_buf_add(b, t, sv_fmt_f32(t, v)); /* 9 digits, always the same float32 back */
}

void sv_buf_float_array(sv_buf *b, const float *v, size_t n) {
    sv_buf_add(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i) sv_buf_add(b, ",", 1);
        sv_buf_float(b, v[i]);
    }
    sv_buf_add(b, "]", 1);
}

void sv_buf_float_base64(sv_buf *b, const float *v, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t nb = n * 4;
    if (n > ((size_t)-1) / 8 || !buf_reserve(b, (nb + 2) / 3 * 4 + 2)) return;
    char *o = b->p + b->n;
    *o++ = '"';
    /* the bytes of each float, least significant first (little-endian) */
    uint8_t tri[3];
    size_t k = 0;
    for (size_t i = 0; i < nb; i++) {
        uint32_t u;
        memcpy(&u, &v[i / 4], 4);
        tri[k++] = (uint8_t)(u >> (8 * (i % 4)));
        if (k == 3 || i == nb - 1) {
            uint32_t w = (uint32_t)tri[0] << 16 | (k > 1 ? (uint32_t)tri[1] << 8 : 0) | (k > 2 ? tri[2] : 0);
            *o++ = tab[(w >> 18) & 63];
            *o++ = tab[(w >> 12) & 63];
            *o++ = k > 1 ? tab[(w >> 6) & 63] : '=';
            *o++ = k > 2 ? tab[w & 63] : '=';
            k = 0;
        }
    }
    *o++ = '"';
    b->n = (size_t)(o - b->p);
    b->p[b->n] = 0;
}

void sv_buf_free(sv_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ==== Binding ==== */

bool sv_fail(sv_error *e, int status, const char *type, const char *param, const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->param = param;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return false;
}

/* Binds one list of token ids (JSON integers) at input position i of field
 * into *in; ids must be whole numbers in [0, 2^31). An empty list is 400. */
static bool bind_ids(const json_t *arr, const char *field, size_t i, sv_input *in, sv_error *e) {
    size_t n = json_array_size(arr);
    if (n == 0) return sv_fail(e, 400, "empty", field, "`%s`[%zu] is an empty list of token ids", field, i);
    in->ids = malloc(n * sizeof *in->ids);
    if (!in->ids) return sv_fail(e, 503, "overloaded", NULL, "out of memory");
    in->n_ids = n;
    for (size_t t = 0; t < n; t++) {
        const json_t *v = json_array_get(arr, t);
        if (!json_is_integer(v))
            return sv_fail(e, 422, "validation", field, "`%s`[%zu][%zu] is not an integer token id", field, i, t);
        json_int_t id = json_integer_value(v);
        if (id < 0 || id > INT32_MAX)
            return sv_fail(e, 422, "validation", field, "`%s`[%zu][%zu]: token id %lld is out of range", field, i, t,
                           (long long)id);
        in->ids[t] = (int32_t)id;
    }
    return true;
}

/* Allocates req's n inputs after checking n against max_inputs. */
static bool alloc_inputs(sv_request *req, const char *field, size_t n, size_t max_inputs, sv_error *e) {
    if (n == 0) return sv_fail(e, 400, "empty", field, "`%s` cannot be empty", field);
    if (n > max_inputs) {
        e->why = SV_FAIL_BATCH_SIZE;
        return sv_fail(e, 422, "validation", field,
                       "batch size %zu > maximum allowed batch size %zu (--max-client-batch-size)", n, max_inputs);
    }
    req->inputs = calloc(n, sizeof *req->inputs);
    if (!req->inputs) return sv_fail(e, 503, "overloaded", NULL, "out of memory");
    req->n_inputs = n;
    return true;
}

/* Binds the input field (a string, a list of strings, a list of ids or a
 * list of lists of ids; ids_ok false allows strings only) into req. */
static bool bind_inputs(const json_t *v, const char *field, bool ids_ok, size_t max_inputs, sv_request *req,
                        sv_error *e) {
    if (!v) return sv_fail(e, 422, "validation", field, "missing field `%s`", field);
    const char *forms = ids_ok ? "a string, a list of strings, a list of token ids or a list of lists of token ids"
                               : "a string or a list of strings";
    size_t n;
    int kind; /* 0 one string, 1 strings, 2 one id list, 3 id lists */
    if (json_is_string(v)) {
        kind = 0, n = 1;
    } else if (json_is_array(v)) {
        n = json_array_size(v);
        if (n == 0) return sv_fail(e, 400, "empty", field, "`%s` cannot be empty", field);
        const json_t *f = json_array_get(v, 0);
        kind = json_is_string(f) ? 1 : json_is_integer(f) ? 2 : json_is_array(f) ? 3 : -1;
        if (kind < 0 || (!ids_ok && kind != 1))
            return sv_fail(e, 422, "validation", field, "`%s` must be %s", field, forms);
        if (kind == 2) n = 1;
    } else {
        return sv_fail(e, 422, "validation", field, "`%s` must be %s", field, forms);
    }
    if (!alloc_inputs(req, field, n, max_inputs, e)) return false; /* n >= 1 here */
    req->single = kind == 0 || kind == 2;
    if (kind == 0) {
        req->inputs[0].text = json_string_value(v);
        req->inputs[0].text_len = json_string_length(v);
    } else if (kind == 2) {
        return bind_ids(v, field, 0, &req->inputs[0], e);
    } else {
        for (size_t i = 0; i < n; i++) {
            const json_t *x = json_array_get(v, i);
            if (kind == 1 && json_is_string(x)) {
                req->inputs[i].text = json_string_value(x);
                req->inputs[i].text_len = json_string_length(x);
            } else if (kind == 3 && json_is_array(x)) {
                if (!bind_ids(x, field, i, &req->inputs[i], e)) return false;
            } else {
                return sv_fail(e, 422, "validation", field, "`%s`[%zu] must be %s, as `%s`[0] is", field, i,
                               kind == 1 ? "a string" : "a list of token ids", field);
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (req->inputs[i].text && req->inputs[i].text_len == 0)
            return sv_fail(e, 400, "empty", field, "`%s`[%zu] is an empty string", field, i);
    return true;
}

/* Reads an optional boolean field into *out; false (422) when present
 * with another type. null counts as absent. */
static bool opt_bool(const json_t *o, const char *key, bool *out, bool *set, sv_error *e) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_boolean(v)) return sv_fail(e, 422, "validation", key, "`%s` must be true or false", key);
    *out = json_is_true(v);
    if (set) *set = true;
    return true;
}

/* Reads an optional string field (null counts as absent). */
static bool opt_str(const json_t *o, const char *key, const char **out, sv_error *e) {
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_string(v)) return sv_fail(e, 422, "validation", key, "`%s` must be a string", key);
    *out = json_string_value(v);
    return true;
}

/* Reads the optional dimensions field: a whole number >= 1 (the upper
 * bound, the model's dimension, is checked by the caller). */
static bool opt_dims(const json_t *o, int32_t *out, sv_error *e) {
    const json_t *v = json_object_get(o, "dimensions");
    if (!v || json_is_null(v)) return true;
    if (!json_is_integer(v)) return sv_fail(e, 422, "validation", "dimensions", "`dimensions` must be an integer");
    json_int_t d = json_integer_value(v);
    if (d < 1 || d > INT32_MAX)
        return sv_fail(e, 422, "validation", "dimensions", "`dimensions` must be at least 1, not %lld", (long long)d);
    *out = (int32_t)d;
    return true;
}

/* Reads TEI's optional truncation_direction ("Right"/"Left", any case):
 * "Left" keeps the last tokens of a text (se_tokenize_params.truncate_left)
 * or of a token id list. */
static bool opt_direction(const json_t *o, sv_request *req, sv_error *e) {
    const char *dir = NULL;
    if (!opt_str(o, "truncation_direction", &dir, e)) return false;
    if (dir && strcasecmp(dir, "right") != 0 && strcasecmp(dir, "left") != 0)
        return sv_fail(e, 422, "validation", "truncation_direction", "`truncation_direction` must be \"Right\" or \"Left\"");
    req->truncate_left = dir && !strcasecmp(dir, "left");
    return true;
}

/* Reads a required non-empty string field key of o into *s / *n. */
static bool req_str(const json_t *o, const char *key, const char **s, size_t *n, sv_error *e) {
    const json_t *v = json_object_get(o, key);
    if (!v) return sv_fail(e, 422, "validation", key, "missing field `%s`", key);
    if (!json_is_string(v)) return sv_fail(e, 422, "validation", key, "`%s` must be a string", key);
    if (json_string_length(v) == 0) return sv_fail(e, 400, "empty", key, "`%s` is an empty string", key);
    *s = json_string_value(v);
    *n = json_string_length(v);
    return true;
}

/* Binds one text of a list: x must be a non-empty string (or, when objs,
 * an object whose "text" is one: Jina's document form). */
static bool bind_text(const json_t *x, const char *field, size_t i, bool objs, const char **s, size_t *n, sv_error *e) {
    if (objs && json_is_object(x)) x = json_object_get(x, "text");
    if (!json_is_string(x))
        return sv_fail(e, 422, "validation", field, "`%s`[%zu] must be a string%s", field, i,
                       objs ? " or an object {\"text\": string}" : "");
    if (json_string_length(x) == 0) return sv_fail(e, 400, "empty", field, "`%s`[%zu] is an empty string", field, i);
    *s = json_string_value(x);
    *n = json_string_length(x);
    return true;
}

/* Binds a list of texts (field of o) into req's inputs; objs allows
 * Jina's {"text": ...} documents. */
static bool bind_texts(const json_t *o, const char *field, bool objs, size_t max_inputs, sv_request *req, sv_error *e) {
    const json_t *v = json_object_get(o, field);
    if (!v) return sv_fail(e, 422, "validation", field, "missing field `%s`", field);
    if (!json_is_array(v)) return sv_fail(e, 422, "validation", field, "`%s` must be a list of strings", field);
    if (!alloc_inputs(req, field, json_array_size(v), max_inputs, e)) return false;
    for (size_t i = 0; i < req->n_inputs; i++) {
        const json_t *x = json_array_get(v, i);
        if (objs && json_is_object(x)) req->doc_objects = true;
        if (!bind_text(x, field, i, objs, &req->inputs[i].text, &req->inputs[i].text_len, e)) return false;
    }
    return true;
}

/* Binds TEI's /predict inputs: a string, a pair [a, b] (or [a]), or a
 * list of [a] / [a, b] lists (each one input, a pair when two). */
static bool bind_predict(const json_t *v, size_t max_inputs, sv_request *req, sv_error *e) {
    static const char *forms = "a string, a pair of strings [string, string] or a batch of mixed strings and pairs "
                               "[[string], [string, string], ...]";
    if (!v) return sv_fail(e, 422, "validation", "inputs", "missing field `inputs`");
    if (json_is_string(v)) {
        req->single = true;
        if (!alloc_inputs(req, "inputs", 1, max_inputs, e)) return false;
        return bind_text(v, "inputs", 0, false, &req->inputs[0].text, &req->inputs[0].text_len, e);
    }
    if (!json_is_array(v)) return sv_fail(e, 422, "validation", "inputs", "`inputs` must be %s", forms);
    size_t n = json_array_size(v);
    if (n == 0) return sv_fail(e, 400, "empty", "inputs", "`inputs` cannot be empty");
    const json_t *f = json_array_get(v, 0);
    bool flat = json_is_string(f);
    if (flat) { /* one sequence: [a] or [a, b] */
        req->single = true;
        if (n > 2) return sv_fail(e, 422, "validation", "inputs", "`inputs` has %zu strings; one input is 1 or 2 (a pair)", n);
        if (!alloc_inputs(req, "inputs", 1, max_inputs, e)) return false;
        sv_input *x = &req->inputs[0];
        if (!bind_text(json_array_get(v, 0), "inputs", 0, false, &x->text, &x->text_len, e)) return false;
        return n < 2 || bind_text(json_array_get(v, 1), "inputs", 1, false, &x->pair, &x->pair_len, e);
    }
    if (!alloc_inputs(req, "inputs", n, max_inputs, e)) return false;
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(v, i);
        size_t k = json_array_size(s);
        if (!json_is_array(s) || k < 1 || k > 2)
            return sv_fail(e, 422, "validation", "inputs", "`inputs`[%zu] must be [string] or [string, string]: %s", i,
                           forms);
        sv_input *x = &req->inputs[i];
        if (!bind_text(json_array_get(s, 0), "inputs", i, false, &x->text, &x->text_len, e)) return false;
        if (k == 2 && !bind_text(json_array_get(s, 1), "inputs", i, false, &x->pair, &x->pair_len, e)) return false;
    }
    return true;
}

/* Binds TEI's /similarity body: inputs {source_sentence, sentences} as
 * inputs[0] and inputs[1..], and the optional parameters object. */
static bool bind_similarity(const json_t *o, size_t max_inputs, sv_request *req, sv_error *e) {
    const json_t *in = json_object_get(o, "inputs");
    if (!in) return sv_fail(e, 422, "validation", "inputs", "missing field `inputs`");
    if (!json_is_object(in))
        return sv_fail(e, 422, "validation", "inputs", "`inputs` must be an object {source_sentence, sentences}");
    const char *src;
    size_t src_len;
    if (!req_str(in, "source_sentence", &src, &src_len, e)) return false;
    const json_t *v = json_object_get(in, "sentences");
    if (!v) return sv_fail(e, 422, "validation", "sentences", "missing field `inputs.sentences`");
    if (!json_is_array(v)) return sv_fail(e, 422, "validation", "sentences", "`inputs.sentences` must be a list of strings");
    size_t n = json_array_size(v);
    if (n == 0) return sv_fail(e, 400, "empty", "sentences", "`inputs.sentences` cannot be empty");
    /* + 1: the source sentence is encoded with them, as TEI counts it */
    if (!alloc_inputs(req, "sentences", n + 1, max_inputs, e)) return false;
    req->inputs[0].text = src, req->inputs[0].text_len = src_len;
    for (size_t i = 0; i < n; i++)
        if (!bind_text(json_array_get(v, i), "sentences", i, false, &req->inputs[i + 1].text,
                       &req->inputs[i + 1].text_len, e))
            return false;
    const json_t *p = json_object_get(o, "parameters");
    if (!p || json_is_null(p)) return true;
    if (!json_is_object(p)) return sv_fail(e, 422, "validation", "parameters", "`parameters` must be an object");
    return opt_bool(p, "truncate", &req->truncate, &req->truncate_set, e) && opt_direction(p, req, e) &&
           opt_str(p, "prompt_name", &req->prompt_name, e);
}

/* Binds TEI's /decode ids: one list of token ids or a list of such lists
 * (an id list may be empty: it decodes to ""). */
static bool bind_decode(const json_t *v, size_t max_inputs, sv_request *req, sv_error *e) {
    static const char *forms = "a list of token ids or a list of lists of token ids";
    if (!v) return sv_fail(e, 422, "validation", "ids", "missing field `ids`");
    if (!json_is_array(v)) return sv_fail(e, 422, "validation", "ids", "`ids` must be %s", forms);
    size_t n = json_array_size(v);
    const json_t *f = json_array_get(v, 0);
    bool batch = n > 0 && json_is_array(f);
    req->single = !batch;
    if (!alloc_inputs(req, "ids", batch ? n : 1, max_inputs, e)) return false;
    for (size_t i = 0; i < req->n_inputs; i++) {
        const json_t *arr = batch ? json_array_get(v, i) : v;
        if (!json_is_array(arr))
            return sv_fail(e, 422, "validation", "ids", "`ids`[%zu] must be a list of token ids, as `ids`[0] is", i);
        size_t k = json_array_size(arr);
        sv_input *in = &req->inputs[i];
        in->ids = malloc((k ? k : 1) * sizeof *in->ids);
        if (!in->ids) return sv_fail(e, 503, "overloaded", NULL, "out of memory");
        for (size_t t = 0; t < k; t++) {
            const json_t *x = json_array_get(arr, t);
            json_int_t id = json_is_integer(x) ? json_integer_value(x) : -1;
            const char *why = json_is_integer(x) ? "a token id out of range" : "not an integer token id";
            if (!json_is_integer(x) || id < 0 || id > INT32_MAX)
                return batch ? sv_fail(e, 422, "validation", "ids", "`ids`[%zu][%zu]: %s", i, t, why)
                             : sv_fail(e, 422, "validation", "ids", "`ids`[%zu]: %s", t, why);
            in->ids[t] = (int32_t)id;
        }
        in->n_ids = k;
    }
    return true;
}

/* Reads Jina's optional top_n: a whole number >= 1 (default: all). */
static bool opt_top_n(const json_t *o, size_t *out, sv_error *e) {
    const json_t *v = json_object_get(o, "top_n");
    if (!v || json_is_null(v)) return true;
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return sv_fail(e, 422, "validation", "top_n", "`top_n` must be a whole number >= 1");
    *out = (size_t)json_integer_value(v);
    return true;
}

bool sv_request_parse(sv_route route, const char *body, size_t len, size_t max_inputs, bool auto_truncate,
                      sv_request *req, sv_error *e) {
    memset(req, 0, sizeof *req);
    req->normalize = true;
    req->truncate = auto_truncate;
    req->add_special = true;
    req->skip_special = true;
    req->top_n = (size_t)-1;
    req->route = route;
    json_error_t je;
    req->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    bool ok = false;
    if (!req->root) {
        sv_fail(e, 400, "validation", NULL, "malformed JSON at line %d, column %d: %s", je.line, je.column, je.text);
        goto done;
    }
    if (!json_is_object(req->root)) {
        sv_fail(e, 422, "validation", NULL, "the body must be a JSON object");
        goto done;
    }
    const json_t *o = req->root;
    if (!opt_str(o, "model", &req->model, e)) goto done;
    if (route == SV_ROUTE_OPENAI_EMBED) {
        const char *fmt = NULL;
        if (!opt_str(o, "encoding_format", &fmt, e)) goto done;
        if (fmt && strcmp(fmt, "float") != 0 && strcmp(fmt, "base64") != 0) {
            sv_fail(e, 422, "validation", "encoding_format", "`encoding_format` must be \"float\" or \"base64\", not \"%s\"",
                    fmt);
            goto done;
        }
        req->base64 = fmt && !strcmp(fmt, "base64");
        if (!opt_dims(o, &req->dimensions, e)) goto done;
        if (!bind_inputs(json_object_get(o, "input"), "input", true, max_inputs, req, e)) goto done;
    } else if (route == SV_ROUTE_TEI_EMBED || route == SV_ROUTE_TEI_EMBED_ALL) {
        if (route == SV_ROUTE_TEI_EMBED && !opt_bool(o, "normalize", &req->normalize, NULL, e)) goto done;
        if (!opt_bool(o, "truncate", &req->truncate, &req->truncate_set, e)) goto done;
        if (!opt_direction(o, req, e)) goto done;
        if (!opt_str(o, "prompt_name", &req->prompt_name, e)) goto done;
        if (route == SV_ROUTE_TEI_EMBED && !opt_dims(o, &req->dimensions, e)) goto done;
        if (!bind_inputs(json_object_get(o, "inputs"), "inputs", true, max_inputs, req, e)) goto done;
    } else if (route == SV_ROUTE_TEI_TOKENIZE) {
        if (!opt_bool(o, "add_special_tokens", &req->add_special, NULL, e)) goto done;
        if (!opt_str(o, "prompt_name", &req->prompt_name, e)) goto done;
        if (!bind_inputs(json_object_get(o, "inputs"), "inputs", false, max_inputs, req, e)) goto done;
    } else if (route == SV_ROUTE_TEI_RERANK || route == SV_ROUTE_JINA_RERANK) {
        /* llama.cpp's rule, on every rerank path: a body with texts is TEI's, one
         * with documents Jina's; with neither, the path's own */
        bool jina = !json_object_get(o, "texts") && (route == SV_ROUTE_JINA_RERANK || json_object_get(o, "documents"));
        req->route = jina ? SV_ROUTE_JINA_RERANK : SV_ROUTE_TEI_RERANK;
        if (!req_str(o, "query", &req->query, &req->query_len, e)) goto done;
        if (jina) {
            if (!opt_top_n(o, &req->top_n, e)) goto done;
            if (!opt_bool(o, "return_documents", &req->return_text, NULL, e)) goto done;
            if (!bind_texts(o, "documents", true, max_inputs, req, e)) goto done;
        } else {
            if (!opt_bool(o, "raw_scores", &req->raw_scores, NULL, e)) goto done;
            if (!opt_bool(o, "return_text", &req->return_text, NULL, e)) goto done;
            if (!opt_bool(o, "truncate", &req->truncate, &req->truncate_set, e)) goto done;
            if (!opt_direction(o, req, e)) goto done;
            if (!bind_texts(o, "texts", false, max_inputs, req, e)) goto done;
        }
    } else if (route == SV_ROUTE_TEI_PREDICT) {
        if (!opt_bool(o, "raw_scores", &req->raw_scores, NULL, e)) goto done;
        if (!opt_bool(o, "truncate", &req->truncate, &req->truncate_set, e)) goto done;
        if (!opt_direction(o, req, e)) goto done;
        if (!bind_predict(json_object_get(o, "inputs"), max_inputs, req, e)) goto done;
    } else if (route == SV_ROUTE_TEI_SIMILARITY) {
        if (!bind_similarity(o, max_inputs, req, e)) goto done;
    } else if (route == SV_ROUTE_TEI_DECODE) {
        if (!opt_bool(o, "skip_special_tokens", &req->skip_special, NULL, e)) goto done;
        if (!bind_decode(json_object_get(o, "ids"), max_inputs, req, e)) goto done;
    } else {
        sv_fail(e, 404, "not_found", NULL, "no such route");
        goto done;
    }
    ok = true;
done:
    if (!ok) sv_request_free(req);
    return ok;
}

void sv_request_free(sv_request *req) {
    for (size_t i = 0; i < req->n_inputs; i++) free(req->inputs[i].ids);
    free(req->inputs);
    if (req->root) json_decref(req->root);
    memset(req, 0, sizeof *req);
}
