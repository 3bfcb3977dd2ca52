/*
 * bench_sembed.c - the sembed engine of the side-by-side benchmark (bench/compare).
 *
 * Built by run.sh against the static library:
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -o OUT bench/compare/bench_sembed.c \
 *      build/libsembed.a -ljansson -lutf8proc -lm -pthread
 *
 * Inputs are token-free: a workload is a JSONL file of texts (one JSON string per line).
 * sembed tokenizes them itself inside se_encode, so its timings include tokenization (the
 * ORT and PyTorch engines are handed token ids); the load step reports how long tokenizing
 * the workload alone takes, so that it can be subtracted.
 *
 * One-shot mode (prints one JSON object):
 *   bench_sembed --model DIR --threads N --workload FILE [--expect-tokens L] [--ids FILE]
 *                [--runs R] [--calls C]
 *     one warm-up call, then R runs of C calls; reports the median and min seconds per call
 *     and sentences per second.
 *
 * Serve mode (driven by compare.py; one JSON command per stdin line, one JSON reply line):
 *   bench_sembed --model DIR --threads N --serve
 *     {"op":"load","name":N,"texts":F,"ids":F,"expect_tokens":L[,"limit":K]}  read a workload
 *          (limit: only its first K texts, for a warm-up); check
 *          that se_tokenize gives exactly the ids in F (the ids the other engines get, from
 *          `sembed tokenize`), and, when L is given, exactly L tokens per text
 *     {"op":"run","name":N,"calls":C}       C timed se_encode calls: {"times":[seconds...]}
 *     {"op":"embed","texts":F,"ids":F,"out":F}  se_encode once (checking the ids when given),
 *                                           write float32 rows to F
 *     {"op":"quit"}
 *
 * Every workload is one se_encode call over all its texts, in their original order, with
 * the default ctx params (n_batch_tokens 4096) except n_threads.
 *
 * Exit status: 0 on success, 1 on error (the message goes to stderr), 2 on bad usage.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sembed.h"

#define MAX_WORK 16

/* ==== Utilities ==== */

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_sembed: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void die_se(const char *what, const se_error *err) {
    die("%s failed: %s (%s)", what, err->msg, se_status_str(err->code));
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory");
    return p;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n values (sorts them). */
static double median(double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ==== Workloads ==== */

typedef struct work {
    char name[64];
    char **texts;   /* n texts, NUL-terminated (they contain no NUL: they come from JSON strings without \u0000) */
    size_t *lens;   /* their byte lengths */
    size_t n;
    size_t tokens;  /* total token count, specials included */
    size_t max_tokens;
    double tokenize_s; /* se_tokenize over all texts, once */
} work;

static void work_free(work *w) {
    for (size_t i = 0; i < w->n; i++) free(w->texts[i]);
    free(w->texts);
    free(w->lens);
    memset(w, 0, sizeof *w);
}

/* Reads a JSONL file of strings. */
static void read_texts(const char *path, work *w) {
    FILE *f = fopen(path, "r");
    if (!f) die("%s: %s", path, strerror(errno));
    size_t cap = 64;
    w->texts = xmalloc(cap * sizeof *w->texts);
    w->lens = xmalloc(cap * sizeof *w->lens);
    w->n = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    size_t lineno = 0;
    while ((len = getline(&line, &lcap, f)) != -1) {
        lineno++;
        if (len == 0 || line[0] == '\n') continue;
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)len, JSON_DECODE_ANY, &je);
        if (!j || !json_is_string(j)) die("%s:%zu: expected a JSON string (%s)", path, lineno, j ? "not a string" : je.text);
        size_t sl = json_string_length(j);
        if (w->n == cap) {
            cap *= 2;
            w->texts = realloc(w->texts, cap * sizeof *w->texts);
            w->lens = realloc(w->lens, cap * sizeof *w->lens);
            if (!w->texts || !w->lens) die("out of memory");
        }
        w->texts[w->n] = xmalloc(sl + 1);
        memcpy(w->texts[w->n], json_string_value(j), sl + 1);
        w->lens[w->n] = sl;
        w->n++;
        json_decref(j);
    }
    free(line);
    fclose(f);
    if (w->n == 0) die("%s: no texts", path);
}

/* Tokenizes every text once with the model's tokenizer (timed), checks the counts against
 * expect (0 = no check) and the ids against ids_path (NULL = no check). */
static void check_tokens(const se_model *m, work *w, size_t expect, const char *ids_path) {
    const se_tokenizer *tok = se_model_tokenizer(m);
    se_tokenize_params tp = se_tokenize_default_params(tok);
    size_t cap = se_tokenizer_n_tokens_max(tok) + 8;
    int32_t *ids = xmalloc(cap * sizeof *ids);
    se_error err;
    FILE *f = NULL;
    char *line = NULL;
    size_t lcap = 0;
    if (ids_path && !(f = fopen(ids_path, "r"))) die("%s: %s", ids_path, strerror(errno));
    w->tokens = 0;
    w->max_tokens = 0;
    double t0 = now_s();
    for (size_t i = 0; i < w->n; i++) {
        size_t n_ids = 0;
        if (se_tokenize(tok, w->texts[i], w->lens[i], NULL, 0, &tp, ids, NULL, cap, &n_ids, NULL, &err) != SE_OK)
            die_se("se_tokenize", &err);
        w->tokens += n_ids;
        if (n_ids > w->max_tokens) w->max_tokens = n_ids;
    }
    w->tokenize_s = now_s() - t0;
    /* the checks, untimed */
    for (size_t i = 0; i < w->n; i++) {
        size_t n_ids = 0;
        bool cut = false;
        if (se_tokenize(tok, w->texts[i], w->lens[i], NULL, 0, &tp, ids, NULL, cap, &n_ids, &cut, &err) != SE_OK)
            die_se("se_tokenize", &err);
        if (expect && (n_ids != expect || cut))
            die("%s: text %zu tokenizes to %zu tokens%s, expected exactly %zu", w->name, i, n_ids,
                cut ? " (truncated)" : "", expect);
        if (f) {
            ssize_t len;
            do len = getline(&line, &lcap, f);
            while (len > 0 && line[0] == '\n');
            if (len <= 0) die("%s: fewer id lines than texts (%zu)", ids_path, w->n);
            json_error_t je;
            json_t *a = json_loadb(line, (size_t)len, 0, &je);
            if (!a || !json_is_array(a)) die("%s: line %zu: expected a JSON array", ids_path, i + 1);
            bool same = json_array_size(a) == n_ids;
            for (size_t k = 0; same && k < n_ids; k++)
                same = json_integer_value(json_array_get(a, k)) == ids[k];
            if (!same) die("%s: text %zu: se_tokenize disagrees with the ids file", w->name, i);
            json_decref(a);
        }
    }
    if (f) fclose(f);
    free(line);
    free(ids);
}

/* One timed se_encode over the whole workload. */
static double encode_once(se_ctx *ctx, const work *w, float *out, size_t out_cap) {
    se_error err;
    double t0 = now_s();
    if (se_encode(ctx, (const char *const *)w->texts, w->lens, w->n, NULL, out, out_cap, NULL, &err) != SE_OK)
        die_se("se_encode", &err);
    return now_s() - t0;
}

/* ==== Serve mode ==== */

static work *find_work(work *ws, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(ws[i].name, name) == 0) return &ws[i];
    return NULL;
}

static const char *str_field(json_t *cmd, const char *key) {
    const char *s = json_string_value(json_object_get(cmd, key));
    if (!s) die("command without a string \"%s\"", key);
    return s;
}

static void reply(json_t *r) {
    char *s = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (!s) die("out of memory");
    puts(s);
    fflush(stdout);
    free(s);
    json_decref(r);
}

static void serve(const se_model *m, se_ctx *ctx, size_t dim) {
    work ws[MAX_WORK];
    size_t n_ws = 0;
    float *out = NULL;
    size_t out_cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, stdin)) != -1) {
        if (len <= 1) continue;
        json_error_t je;
        json_t *cmd = json_loadb(line, (size_t)len, 0, &je);
        if (!cmd || !json_is_object(cmd)) die("bad command line: %s", je.text);
        const char *op = str_field(cmd, "op");
        if (strcmp(op, "quit") == 0) {
            json_decref(cmd);
            break;
        } else if (strcmp(op, "load") == 0) {
            const char *name = str_field(cmd, "name");
            work *w = find_work(ws, n_ws, name);
            if (w) work_free(w);
            else if (n_ws == MAX_WORK) die("too many workloads");
            else w = &ws[n_ws++];
            snprintf(w->name, sizeof w->name, "%s", name);
            read_texts(str_field(cmd, "texts"), w);
            json_int_t limit = json_integer_value(json_object_get(cmd, "limit"));
            if (limit > 0 && (size_t)limit < w->n) { /* a warm-up subset: the first texts */
                for (size_t i = (size_t)limit; i < w->n; i++) free(w->texts[i]);
                w->n = (size_t)limit;
            }
            json_t *ids = json_object_get(cmd, "ids");
            check_tokens(m, w, (size_t)json_integer_value(json_object_get(cmd, "expect_tokens")),
                         json_is_string(ids) && limit <= 0 ? json_string_value(ids) : NULL);
            if (w->n * dim > out_cap) {
                free(out);
                out_cap = w->n * dim;
                out = xmalloc(out_cap * sizeof *out);
            }
            reply(json_pack("{s:b,s:I,s:I,s:I,s:f}", "ok", 1, "n", (json_int_t)w->n, "tokens", (json_int_t)w->tokens,
                            "max_tokens", (json_int_t)w->max_tokens, "tokenize_s", w->tokenize_s));
        } else if (strcmp(op, "run") == 0) {
            work *w = find_work(ws, n_ws, str_field(cmd, "name"));
            if (!w) die("run: unknown workload");
            json_int_t calls = json_integer_value(json_object_get(cmd, "calls"));
            if (calls < 1) calls = 1;
            json_t *times = json_array();
            for (json_int_t c = 0; c < calls; c++) json_array_append_new(times, json_real(encode_once(ctx, w, out, out_cap)));
            reply(json_pack("{s:o}", "times", times));
        } else if (strcmp(op, "embed") == 0) {
            work w;
            memset(&w, 0, sizeof w);
            snprintf(w.name, sizeof w.name, "embed");
            read_texts(str_field(cmd, "texts"), &w);
            json_t *ids = json_object_get(cmd, "ids");
            if (json_is_string(ids)) check_tokens(m, &w, 0, json_string_value(ids));
            float *e = xmalloc(w.n * dim * sizeof *e);
            encode_once(ctx, &w, e, w.n * dim);
            const char *path = str_field(cmd, "out");
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(e, sizeof *e, w.n * dim, f) != w.n * dim || fclose(f) != 0)
                die("%s: cannot write: %s", path, strerror(errno));
            reply(json_pack("{s:b,s:I,s:I}", "ok", 1, "n", (json_int_t)w.n, "dim", (json_int_t)dim));
            free(e);
            work_free(&w);
        } else {
            die("unknown op '%s'", op);
        }
        json_decref(cmd);
    }
    free(line);
    free(out);
    for (size_t i = 0; i < n_ws; i++) work_free(&ws[i]);
}

/* ==== Main ==== */

static void usage(FILE *f) {
    fprintf(f,
            "usage: bench_sembed --model DIR [--threads N] (--serve | --workload FILE [--expect-tokens L]\n"
            "                    [--ids FILE] [--runs R] [--calls C])\n"
            "\n"
            "Times se_encode on a workload of texts (a JSONL file of strings): one warm-up call,\n"
            "then R runs (default 5) of C calls (default 1); prints one JSON object. --serve\n"
            "answers JSON commands on stdin instead (see the file header; used by compare.py).\n");
}

static long parse_pos(const char *opt, const char *v) {
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || x < 1 || x > 1000000) {
        fprintf(stderr, "bench_sembed: %s needs a positive integer\n", opt);
        usage(stderr);
        exit(2);
    }
    return x;
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *workload = NULL, *ids_path = NULL;
    long threads = 2, runs = 5, calls = 1, expect = 0;
    bool serve_mode = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--serve")) {
            serve_mode = true;
        } else if (!strcmp(a, "--model") && v) {
            model_dir = v, i++;
        } else if (!strcmp(a, "--workload") && v) {
            workload = v, i++;
        } else if (!strcmp(a, "--ids") && v) {
            ids_path = v, i++;
        } else if (!strcmp(a, "--threads")) {
            threads = parse_pos(a, v), i++;
        } else if (!strcmp(a, "--runs")) {
            runs = parse_pos(a, v), i++;
        } else if (!strcmp(a, "--calls")) {
            calls = parse_pos(a, v), i++;
        } else if (!strcmp(a, "--expect-tokens")) {
            expect = parse_pos(a, v), i++;
        } else {
            fprintf(stderr, "bench_sembed: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model_dir || (!serve_mode && !workload)) {
        usage(stderr);
        return 2;
    }

    se_error err;
    se_model *m = NULL;
    double t0 = now_s();
    /* SEMBED_DTYPE=bf16|int8 benchmarks reduced precision against the same f32 engines */
    se_model_params mp = se_model_default_params();
    const char *dt = getenv("SEMBED_DTYPE");
    if (dt && !strcmp(dt, "bf16")) mp.dtype = SE_DTYPE_BF16;
    else if (dt && !strcmp(dt, "int8")) mp.dtype = SE_DTYPE_INT8;
    if (se_model_load(model_dir, &mp, &m, &err) != SE_OK) die_se("se_model_load", &err);
    double load_ms = 1e3 * (now_s() - t0);
    se_ctx_params cp = se_ctx_default_params();
    cp.n_threads = (int32_t)threads;
    se_ctx *ctx = NULL;
    if (se_ctx_new(m, &cp, &ctx, &err) != SE_OK) die_se("se_ctx_new", &err);
    size_t dim = se_encode_dim(m, NULL);

    if (serve_mode) {
        json_t *r = json_pack("{s:b,s:s,s:s,s:f,s:I,s:I}", "ready", 1, "engine", "sembed", "version", se_version(),
                              "load_ms", load_ms, "threads", (json_int_t)threads, "n_batch_tokens",
                              (json_int_t)cp.n_batch_tokens);
        const char *kenv = getenv("SE_KERNELS");
        if (kenv) json_object_set_new(r, "se_kernels_env", json_string(kenv));
        reply(r);
        serve(m, ctx, dim);
    } else {
        work w;
        memset(&w, 0, sizeof w);
        snprintf(w.name, sizeof w.name, "%s", workload);
        read_texts(workload, &w);
        check_tokens(m, &w, (size_t)expect, ids_path);
        size_t out_cap = w.n * dim;
        float *out = xmalloc(out_cap * sizeof *out);
        double warm = encode_once(ctx, &w, out, out_cap);
        size_t n_t = (size_t)(runs * calls);
        double *times = xmalloc(n_t * sizeof *times);
        for (size_t r = 0; r < n_t; r++) times[r] = encode_once(ctx, &w, out, out_cap);
        double ss = 0.0;
        for (size_t k = 0; k < dim; k++) ss += (double)out[k] * out[k];
        if (!(fabs(ss - 1.0) < 1e-3)) die("embedding 0 has squared norm %g, expected 1", ss);
        double med = median(times, n_t);
        json_t *r = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:I}", "engine", "sembed", "workload",
                              workload, "threads", (json_int_t)threads, "n", (json_int_t)w.n, "tokens",
                              (json_int_t)w.tokens, "max_tokens", (json_int_t)w.max_tokens, "load_ms", load_ms,
                              "warmup_s", warm, "median_s", med, "min_s", times[0], "sentences_per_s",
                              (double)w.n / med, "tokenize_s", w.tokenize_s, "calls", (json_int_t)n_t);
        reply(r);
        free(times);
        free(out);
        work_free(&w);
    }
    se_ctx_free(ctx);
    se_model_free(m);
    return 0;
}
