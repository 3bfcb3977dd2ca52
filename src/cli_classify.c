/*
 * cli_classify.c - `sembed classify fit` and `sembed classify predict`:
 * SetFit-style text classification, a logistic-regression head
 * (se_classifier) on the frozen embeddings of a model. On the public API
 * only.
 *
 *   fit      labelled texts (JSONL, TSV or CSV with a header) -> head.json,
 *            with train (and --eval dev) accuracy and macro-F1
 *   predict  texts (plain lines or JSONL) -> one JSON object a line:
 *            {"label": ...} (+ "proba": {class: p, ...} with --proba)
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_io.h"
#include "cli_pull.h"
#include "sembed.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

int cmd_classify(int argc, char **argv);

static const char classify_usage[] =
    "usage: sembed classify fit -m MODEL --data FILE -o HEAD.json [options]\n"
    "       sembed classify predict -m MODEL --head HEAD.json [options] [FILE|-]\n"
    "\n"
    "SetFit-style text classification: a logistic-regression head (L2, C = 1, as\n"
    "scikit-learn's LogisticRegression()) on the model's frozen sentence embeddings.\n";

static const char fit_usage[] =
    "usage: sembed classify fit -m MODEL --data FILE -o HEAD.json [options]\n"
    "\n"
    "Encodes the labelled texts of FILE with MODEL and fits a logistic-regression head\n"
    "on the embeddings (multinomial for 3+ classes, with an L2 penalty: scikit-learn's\n"
    "LogisticRegression(C=1) objective, solved with L-BFGS to convergence). Prints the\n"
    "training accuracy and macro-F1 (and the --eval set's) to stderr, and writes the\n"
    "head (classes, weights, the model's fingerprint and the encode settings) to -o.\n"
    "\n"
    "  -m, --model DIR|ORG/NAME   embedding model (a folder, or a hub name)\n"
    "  -d, --data FILE            training data: .jsonl (one object a line), .tsv or .csv\n"
    "                             (a header row naming the columns)\n"
    "      --text-field NAME      the text field or column (default text)\n"
    "      --label-field NAME     the label field or column (default label; JSONL labels may\n"
    "                             be strings or integers)\n"
    "      --eval FILE            held-out data in the same form: accuracy and macro-F1\n"
    "  -o, --output FILE          the head (JSON), written atomically\n"
    "      --C X                  inverse penalty strength (default 1.0)\n"
    "      --max-iter N           L-BFGS iterations at most (default 10000)\n"
    "      --normalize            L2-normalise the embeddings (recorded in the head)\n"
    "      --prompt-name NAME     encode with one of the model's prompts (recorded)\n"
    "      --json                 the figures as one JSON object on stdout\n"
    "  -t, --threads N            threads\n"
    "      --dtype D              f32 (default), bf16 or int8 compute\n"
    "  -q, --quiet                no progress or notes\n"
    "      --progress             progress even when stderr is not a terminal\n"
    "  -h, --help                 this help\n";

static const char predict_usage[] =
    "usage: sembed classify predict -m MODEL --head HEAD.json [options] [FILE|-]\n"
    "\n"
    "Classifies texts (one per line of FILE or stdin; JSONL with --jsonl or a .jsonl\n"
    "name) with a head from `sembed classify fit`, which must have been fitted on the\n"
    "same model (checked by its fingerprint). Prints one JSON object a line:\n"
    "{\"label\": L} and, with --proba, {\"label\": L, \"proba\": {CLASS: P, ...}}.\n"
    "\n"
    "  -m, --model DIR|ORG/NAME   the embedding model the head was fitted on\n"
    "      --head FILE            the head (JSON)\n"
    "      --proba                the probability of every class too\n"
    "      --jsonl                the input is JSONL (objects with --text-field, or strings)\n"
    "      --text-field NAME      JSONL text field (default text)\n"
    "  -t, --threads N            threads\n"
    "      --dtype D              f32 (default), bf16 or int8 compute\n"
    "  -q, --quiet                no progress or notes\n"
    "      --progress             progress even when stderr is not a terminal\n"
    "  -h, --help                 this help\n";

/* Texts with labels (labels NULL for predict's input) and their lines. */
typedef struct dataset {
    char **text, **label;
    size_t *line;
    size_t n, cap;
} dataset;

static void dataset_free(dataset *d) {
    for (size_t i = 0; i < d->n; i++) {
        free(d->text[i]);
        if (d->label) free(d->label[i]);
    }
    free(d->text), free(d->label), free(d->line);
    memset(d, 0, sizeof *d);
}

/* Appends one record (taking ownership of text and label). -1 on OOM
 * (after freeing them). */
static int dataset_push(dataset *d, char *text, char *label, size_t line, bool labelled) {
    if (!text || (labelled && !label)) goto oom;
    if (d->n == d->cap) {
        size_t nc = d->cap ? 2 * d->cap : 256;
        char **t = realloc(d->text, nc * sizeof *t);
        if (t) d->text = t;
        char **l = labelled ? realloc(d->label, nc * sizeof *l) : NULL;
        if (l) d->label = l;
        size_t *ln = realloc(d->line, nc * sizeof *ln);
        if (ln) d->line = ln;
        if (!t || (labelled && !l) || !ln) goto oom;
        d->cap = nc;
    }
    d->text[d->n] = text;
    if (labelled) d->label[d->n] = label;
    d->line[d->n++] = line;
    return 0;
oom:
    free(text), free(label);
    fprintf(stderr, "sembed: classify: out of memory\n");
    return -1;
}

/* Reads the whole of path ("-": stdin) into a new NUL-terminated buffer.
 * NULL after printing the error. A NUL byte inside is an error naming its
 * line. */
static char *slurp(const char *path, const char *name, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "sembed: %s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf), buf = NULL;
                break;
            }
            buf = b, cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    bool bad = ferror(f);
    if (f != stdin) fclose(f);
    if (!buf || bad) {
        fprintf(stderr, "sembed: %s: %s\n", name, buf ? "read error" : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (strlen(buf) != n) {
        size_t line = 1;
        for (size_t i = 0; i < strlen(buf); i++) line += buf[i] == '\n';
        fprintf(stderr, "sembed: %s:%zu: line contains a NUL byte\n", name, line);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* True when s ends with suffix. */
static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* True when s[0..n) is valid UTF-8 (shortest forms, no surrogates, at most
 * U+10FFFF); *bad gets the offset of the first invalid byte otherwise. */
static bool utf8_ok(const char *s, size_t n, size_t *bad) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 0;
        if (!k || k >= n - i) goto fail; /* a stray continuation byte, or cut short */
        unsigned cp = c & (0x3F >> k);
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) goto fail;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            goto fail;
        i += k + 1;
    }
    return true;
fail:
    *bad = i;
    return false;
}

/* Splits one CSV record starting at *pos (RFC 4180: fields separated by
 * commas, optionally in double quotes with "" for a quote; a quoted field
 * may span lines) into fields (new strings, at most max). Returns the
 * field count, or -1 on an unterminated quote (message printed). Advances
 * *pos past the record's line end and *line by the lines it spans. */
static int csv_record(const char *buf, size_t len, size_t *pos, size_t *line, char **fields, int max, const char *name) {
    size_t i = *pos, start_line = *line;
    int nf = 0;
    while (1) {
        size_t cap = 64, n = 0;
        char *f = malloc(cap);
        if (!f) return -1;
        bool quoted = i < len && buf[i] == '"';
        if (quoted) i++;
        while (i < len) {
            char ch = buf[i];
            if (quoted) {
                if (ch == '"') {
                    if (i + 1 < len && buf[i + 1] == '"') i++;
                    else {
                        quoted = false;
                        i++;
                        continue;
                    }
                } else if (ch == '\n') {
                    (*line)++;
                }
            } else if (ch == ',' || ch == '\n' || (ch == '\r' && (i + 1 == len || buf[i + 1] == '\n'))) {
                break;
            }
            if (n + 2 > cap) {
                char *g = realloc(f, cap *= 2);
                if (!g) {
                    free(f);
                    return -1;
                }
                f = g;
            }
            f[n++] = buf[i++];
        }
        f[n] = 0;
        if (quoted) {
            fprintf(stderr, "sembed: %s:%zu: a quoted field is not closed\n", name, start_line);
            free(f);
            for (int k = 0; k < nf; k++) free(fields[k]);
            return -1;
        }
        if (nf < max) fields[nf++] = f;
        else free(f);
        if (i < len && buf[i] == ',') {
            i++;
            continue;
        }
        if (i < len && buf[i] == '\r') i++;
        if (i < len && buf[i] == '\n') i++;
        break;
    }
    *pos = i;
    return nf;
}

#define MAX_COLS 256

/* Reads labelled (labelled) or unlabelled data from path: JSONL (one
 * object a line, or for unlabelled input a JSON string), TSV or CSV with a
 * header row, or (unlabelled, fmt 'p') plain lines. fmt: 'j', 't', 'c',
 * 'p'. Errors name the file and line; labelled data with no examples is
 * one. 0 or -1. */
static int read_data(const char *path, char fmt, const char *text_field, const char *label_field, bool labelled,
                     dataset *d) {
    const char *name = strcmp(path, "-") ? path : "<stdin>";
    size_t len = 0;
    char *buf = slurp(path, name, &len);
    if (!buf) return -1;
    int rc = -1;
    size_t pos = 0, line = 1, bad;
    int ti = -1, li = -1, ncol = 0;
    char *cols[MAX_COLS];
    bool header_done = fmt == 'j' || fmt == 'p';
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) pos = 3; /* a byte-order mark (spreadsheets' CSV) */
    while (pos < len) {
        size_t lno = line, end = pos;
        char *text = NULL, *label = NULL;
        if (fmt == 'c') {
            char *f[MAX_COLS];
            int nf = csv_record(buf, len, &pos, &line, f, MAX_COLS, name);
            line++;
            if (nf < 0) goto done;
            if (nf == 1 && !f[0][0] && header_done) { /* a blank line */
                free(f[0]);
                continue;
            }
            if (!header_done) {
                memcpy(cols, f, (size_t)nf * sizeof *f);
                ncol = nf;
                header_done = true;
                goto header;
            }
            if (nf != ncol) {
                fprintf(stderr, "sembed: %s:%zu: %d fields, the header has %d\n", name, lno, nf, ncol);
                for (int k = 0; k < nf; k++) free(f[k]);
                goto done;
            }
            text = f[ti], f[ti] = NULL;
            if (labelled) label = f[li], f[li] = NULL;
            for (int k = 0; k < nf; k++) free(f[k]);
        } else {
            while (end < len && buf[end] != '\n') end++;
            size_t e = end;
            if (e > pos && buf[e - 1] == '\r') e--;
            char *s = buf + pos;
            size_t n = e - pos;
            pos = end < len ? end + 1 : end;
            line++;
            if (fmt == 'p') {
                text = strndup(s, n);
            } else if (fmt == 't') {
                if (!n && header_done) continue;
                char *f[MAX_COLS];
                int nf = 0;
                for (size_t a = 0, b = 0; b <= n; b++)
                    if (b == n || s[b] == '\t') {
                        if (nf < MAX_COLS) f[nf++] = strndup(s + a, b - a);
                        a = b + 1;
                    }
                if (!header_done) {
                    memcpy(cols, f, (size_t)nf * sizeof *f);
                    ncol = nf;
                    header_done = true;
                    goto header;
                }
                if (nf != ncol) {
                    fprintf(stderr, "sembed: %s:%zu: %d tab-separated fields, the header has %d\n", name, lno, nf, ncol);
                    for (int k = 0; k < nf; k++) free(f[k]);
                    goto done;
                }
                text = f[ti], f[ti] = NULL;
                if (labelled) label = f[li], f[li] = NULL;
                for (int k = 0; k < nf; k++) free(f[k]);
            } else { /* JSONL */
                size_t k = 0;
                while (k < n && (s[k] == ' ' || s[k] == '\t')) k++;
                if (k == n) continue; /* blank lines between records */
                json_error_t je;
                json_t *o = json_loadb(s, n, JSON_DECODE_ANY, &je);
                if (!o) {
                    fprintf(stderr, "sembed: %s:%zu: %s\n", name, lno, je.text);
                    goto done;
                }
                if (!labelled && json_is_string(o)) {
                    text = strdup(json_string_value(o));
                } else if (!json_is_object(o)) {
                    fprintf(stderr, "sembed: %s:%zu: expected a JSON object%s\n", name, lno, labelled ? "" : " or string");
                    json_decref(o);
                    goto done;
                } else {
                    json_t *t = json_object_get(o, text_field), *l = json_object_get(o, label_field);
                    if (!json_is_string(t)) {
                        fprintf(stderr, "sembed: %s:%zu: field \"%s\" is missing or not a string (choose it with --text-field)\n",
                                name, lno, text_field);
                        json_decref(o);
                        goto done;
                    }
                    text = strdup(json_string_value(t));
                    if (labelled) {
                        char nb[32];
                        if (json_is_string(l)) label = strdup(json_string_value(l));
                        else if (json_is_integer(l))
                            snprintf(nb, sizeof nb, "%lld", (long long)json_integer_value(l)), label = strdup(nb);
                        else {
                            fprintf(stderr,
                                    "sembed: %s:%zu: field \"%s\" is %s (a label is a string or an integer; choose the "
                                    "field with --label-field)\n",
                                    name, lno, label_field, l ? "not a string or an integer" : "missing");
                            json_decref(o);
                            free(text);
                            goto done;
                        }
                    }
                }
                json_decref(o);
            }
        }
        if (text && !utf8_ok(text, strlen(text), &bad)) {
            fprintf(stderr, "sembed: %s:%zu: the text is not valid UTF-8 (byte %zu)\n", name, lno, bad);
            free(text), free(label);
            goto done;
        }
        if (labelled && label) {
            if (!label[0]) {
                fprintf(stderr, "sembed: %s:%zu: the label (\"%s\") is empty\n", name, lno, label_field);
                free(text), free(label);
                goto done;
            }
            if (!utf8_ok(label, strlen(label), &bad)) {
                fprintf(stderr, "sembed: %s:%zu: the label is not valid UTF-8 (byte %zu)\n", name, lno, bad);
                free(text), free(label);
                goto done;
            }
        }
        if (dataset_push(d, text, label, lno, labelled)) goto done;
        continue;
    header:
        for (int k = 0; k < ncol; k++) {
            if (!strcmp(cols[k], text_field) && ti < 0) ti = k;
            if (labelled && !strcmp(cols[k], label_field) && li < 0) li = k;
        }
        if (ti < 0 || (labelled && li < 0)) {
            char have[400] = "";
            size_t off = 0;
            for (int k = 0; k < ncol && off < sizeof have; k++)
                off += (size_t)snprintf(have + off, sizeof have - off, "%s\"%s\"", k ? ", " : "", cols[k]);
            fprintf(stderr, "sembed: %s:%zu: the header has no column \"%s\" (columns: %s; choose with %s)\n", name, lno,
                    ti < 0 ? text_field : label_field, have, ti < 0 ? "--text-field" : "--label-field");
            for (int k = 0; k < ncol; k++) free(cols[k]);
            goto done;
        }
        for (int k = 0; k < ncol; k++) free(cols[k]);
    }
    if (d->n == 0 && labelled) {
        fprintf(stderr, "sembed: %s: no %s in the file%s\n", name, labelled ? "examples" : "texts",
                (fmt == 't' || fmt == 'c') && !header_done ? " (it is empty: a header row naming the columns comes first)" : "");
        goto done;
    }
    rc = 0;
done:
    free(buf);
    return rc;
}

/* The data format of a path by its name: 'j' .jsonl/.json/.ndjson, 't'
 * .tsv, 'c' .csv; 0 otherwise. */
static char data_format(const char *path) {
    if (ends_with(path, ".jsonl") || ends_with(path, ".ndjson") || ends_with(path, ".json")) return 'j';
    if (ends_with(path, ".tsv")) return 't';
    if (ends_with(path, ".csv")) return 'c';
    return 0;
}

/* Encodes the texts of d into a new (n, dim) array, 64 at a time with a
 * progress line. NULL after printing the error (naming the line). */
static float *encode_all(se_ctx *ctx, const se_encode_params *ep, size_t dim, const dataset *d, const char *name,
                         const char *what) {
    float *emb = malloc(d->n * dim * sizeof *emb);
    if (!emb) {
        fprintf(stderr, "sembed: classify: out of memory for %zu x %zu floats\n", d->n, dim);
        return NULL;
    }
    cli_progress prog;
    cli_progress_start(&prog, what, "texts", d->n);
    if (prog.mode == 3) prog.mode = 0; /* not a terminal: only with --progress */
    se_error err = {0};
    for (size_t i = 0; i < d->n; i += 64) {
        size_t nb = d->n - i < 64 ? d->n - i : 64;
        if (se_encode(ctx, (const char *const *)d->text + i, NULL, nb, ep, emb + i * dim, nb * dim, NULL, &err) != SE_OK) {
            cli_progress_end(&prog);
            size_t k;
            const char *rest = strchr(err.msg, ':');
            if (sscanf(err.msg, "text %zu", &k) == 1 && rest && k < nb)
                fprintf(stderr, "sembed: %s:%zu: %s\n", name, d->line[i + k], rest + 2);
            else
                fprintf(stderr, "sembed: %s\n", err.msg);
            free(emb);
            return NULL;
        }
        cli_progress_update(&prog, i + nb, -1);
        if (cli_stop) break;
    }
    cli_progress_end(&prog);
    return emb;
}

/* Accuracy and macro-F1 (scikit-learn's f1_score(average="macro"): the
 * mean F1 over the labels that occur in the truth or the predictions; an
 * F1 of 0 where a label has no true or predicted example) of predictions
 * pred (indices into classes) against the truth (label strings). */
static void metrics(const dataset *d, const int32_t *pred, const char *const *classes, size_t K, double *acc,
                    double *f1) {
    /* the labels: the classes, then truth labels outside them */
    size_t nl = K, cap = K + d->n;
    const char **lab = malloc(cap * sizeof *lab);
    size_t *tp = calloc(cap, sizeof *tp), *np = calloc(cap, sizeof *np), *nt = calloc(cap, sizeof *nt);
    size_t correct = 0;
    if (!lab || !tp || !np || !nt) {
        *acc = *f1 = 0;
        goto done;
    }
    memcpy(lab, classes, K * sizeof *lab);
    for (size_t i = 0; i < d->n; i++) {
        size_t t = 0;
        while (t < nl && strcmp(lab[t], d->label[i])) t++;
        if (t == nl) lab[nl++] = d->label[i];
        nt[t]++;
        np[pred[i]]++;
        if ((size_t)pred[i] == t) tp[t]++, correct++;
    }
    double sum = 0;
    size_t used = 0;
    for (size_t l = 0; l < nl; l++) {
        if (!nt[l] && !np[l]) continue;
        sum += 2.0 * (double)tp[l] / (double)(nt[l] + np[l]);
        used++;
    }
    *acc = (double)correct / (double)d->n;
    *f1 = used ? sum / (double)used : 0;
done:
    free(lab), free(tp), free(np), free(nt);
}

/* Loads the model and a ctx for -m. 0 or -1 (message printed). */
static int open_model(const char *model, int dtype, long threads, se_model **m, se_ctx **ctx) {
    se_error err = {0};
    se_model_params mp = se_model_default_params();
    mp.log_fn = cli_log;
    mp.dtype = (se_dtype)dtype;
    if (cli_model_load(model, &mp, m, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        return -1;
    }
    se_model_info info;
    if (se_model_get_info(*m, &info, &err) == SE_OK && info.head) {
        fprintf(stderr, "sembed: classify: %s is a cross-encoder, not an embedding model\n", model);
        return -1;
    }
    se_ctx_params cp = se_ctx_default_params();
    cp.n_threads = (int32_t)threads;
    if (se_ctx_new(*m, &cp, ctx, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* Warns about texts that are mostly unknown pieces (they all get about the
 * same vector). */
static void warn_unknown(const se_model *m, const dataset *d, const char *name) {
    cli_unk unk;
    cli_unk_init(&unk, se_model_tokenizer(m));
    for (size_t i = 0; i < d->n; i++) {
        char where[600];
        snprintf(where, sizeof where, "%s:%zu", name, d->line[i]);
        cli_unk_check(&unk, d->text[i], strlen(d->text[i]), where);
    }
    cli_unk_finish(&unk, "lines");
}

/* `sembed classify fit`. */
static int cmd_fit(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *eval = NULL, *out = NULL, *text_field = "text", *label_field = "label";
    const char *prompt_name = NULL;
    long threads = 0, max_iter = 10000;
    double C = 1.0;
    int json = 0, dtype = 0, normalize = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"data", required_argument, 0, 'd'},
        {"eval", required_argument, 0, 'E'},    {"output", required_argument, 0, 'o'},
        {"text-field", required_argument, 0, 'F'}, {"label-field", required_argument, 0, 'L'},
        {"C", required_argument, 0, 'C'},       {"max-iter", required_argument, 0, 'I'},
        {"normalize", no_argument, 0, 'N'},     {"prompt-name", required_argument, 0, 'P'},
        {"json", no_argument, 0, 'j'},          {"threads", required_argument, 0, 't'},
        {"dtype", required_argument, 0, 'T'},   {"quiet", no_argument, 0, 'q'},
        {"progress", no_argument, 0, 'G'},      {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:d:o:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case 'E': eval = optarg; break;
        case 'o': out = optarg; break;
        case 'F': text_field = optarg; break;
        case 'L': label_field = optarg; break;
        case 'C': {
            float cf; /* checked as a float, kept as the double it spells */
            if (cli_opt_float("classify fit", "--C", optarg, 1e-6, 1e6, &cf)) return EXIT_USAGE;
            C = strtod(optarg, NULL);
            break;
        }
        case 'I': if (cli_opt_long("classify fit", "--max-iter", optarg, 1, 10000000, &max_iter)) return EXIT_USAGE; break;
        case 'N': normalize = 1; break;
        case 'P': prompt_name = optarg; break;
        case 'j': json = 1; break;
        case 't': if (cli_opt_long("classify fit", "-t/--threads", optarg, 1, 256, &threads)) return EXIT_USAGE; break;
        case 'T':
            if ((dtype = cli_parse_dtype(optarg)) < 0)
                return cli_usage_error(fit_usage, "classify fit: --dtype must be f32, bf16 or int8");
            break;
        case 'q': cli_quiet = 1; break;
        case 'G': cli_progress_force = 1; break;
        case 'h': fputs(fit_usage, stdout); return 0;
        default: fputs(fit_usage, stderr); return EXIT_USAGE;
        }
    }
    if (!model) return cli_usage_error(fit_usage, "classify fit: missing -m MODEL");
    if (!data) return cli_usage_error(fit_usage, "classify fit: missing --data FILE");
    if (!out) return cli_usage_error(fit_usage, "classify fit: missing -o HEAD.json");
    if (optind != argc) return cli_usage_error(fit_usage, "classify fit: unexpected argument '%s'", argv[optind]);
    char fmt = data_format(data), efmt = eval ? data_format(eval) : 'j';
    if (!fmt || !efmt)
        return cli_usage_error(fit_usage, "classify fit: %s: the name must end in .jsonl, .tsv or .csv (its format)",
                               !fmt ? data : eval);
    int rc = EXIT_RUNTIME;
    se_model *m = NULL;
    se_ctx *ctx = NULL;
    se_classifier *clf = NULL;
    dataset tr = {0}, dv = {0};
    float *x = NULL, *xd = NULL;
    int32_t *pred = NULL;
    se_error err = {0};
    if (read_data(data, fmt, text_field, label_field, true, &tr)) goto done;
    if (eval && read_data(eval, efmt, text_field, label_field, true, &dv)) goto done;
    if (open_model(model, dtype, threads, &m, &ctx)) goto done;
    se_encode_params ep = se_encode_default_params();
    ep.normalize = normalize;
    ep.prompt_name = prompt_name;
    size_t dim = se_encode_dim(m, &ep);
    warn_unknown(m, &tr, data);
    if (eval) warn_unknown(m, &dv, eval);
    cli_catch_stop_signals();
    double t0 = cli_now();
    if (!(x = encode_all(ctx, &ep, dim, &tr, data, "encoding"))) goto done;
    if (cli_stop) goto stopped;
    char fp[SE_FINGERPRINT_MAX];
    if (se_model_fingerprint(m, fp, sizeof fp, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    se_classifier_params cp = se_classifier_default_params();
    cp.C = C;
    cp.max_iter = (int32_t)max_iter;
    cp.model_fingerprint = fp;
    cp.encode = ep;
    double t1 = cli_now();
    if (se_classifier_fit(x, tr.n, dim, (const char *const *)tr.label, &cp, &clf, &err) != SE_OK) {
        size_t k;
        int at = 0;
        /* "classifier: example K: what" or "classifier: example K has ...": name the line */
        if (sscanf(err.msg, "classifier: example %zu%n", &k, &at) == 1 && k < tr.n)
            fprintf(stderr, "sembed: %s:%zu: the example%s\n", data, tr.line[k], err.msg + at);
        else
            fprintf(stderr, "sembed: %s: %s\n", data, strncmp(err.msg, "classifier: ", 12) ? err.msg : err.msg + 12);
        goto done;
    }
    double t2 = cli_now();
    se_classifier_info ci;
    se_classifier_get_info(clf, &ci, NULL);
    if (!(pred = malloc((tr.n > dv.n ? tr.n : dv.n) * sizeof *pred))) {
        fprintf(stderr, "sembed: classify: out of memory\n");
        goto done;
    }
    double acc, f1, dacc = 0, df1 = 0;
    se_classifier_predict(clf, x, tr.n, pred, NULL);
    metrics(&tr, pred, ci.classes, ci.n_classes, &acc, &f1);
    if (!cli_quiet) {
        fprintf(stderr, "sembed: classify: %zu examples, %zu classes (", tr.n, ci.n_classes);
        for (size_t k = 0; k < ci.n_classes && k < 12; k++) {
            size_t cnt = 0;
            for (size_t i = 0; i < tr.n; i++) cnt += !strcmp(tr.label[i], ci.classes[k]);
            fprintf(stderr, "%s%s %zu", k ? ", " : "", ci.classes[k], cnt);
        }
        fprintf(stderr, "%s), dim %zu; encoded in %.1f s\n", ci.n_classes > 12 ? ", ..." : "", dim, t1 - t0);
        fprintf(stderr, "sembed: classify: L-BFGS %s in %d iterations (largest gradient entry %.2g), %.2f s\n",
                ci.converged ? "converged" : "stopped before converging", (int)ci.n_iter, ci.grad_max, t2 - t1);
    }
    if (!ci.converged)
        fprintf(stderr, "sembed: warning: classify: the fit did not reach its tolerance in %d iterations (raise --max-iter)\n",
                (int)ci.n_iter);
    fprintf(stderr, "train: accuracy %.4f, macro-F1 %.4f (%zu examples)\n", acc, f1, tr.n);
    if (eval) {
        if (!(xd = encode_all(ctx, &ep, dim, &dv, eval, "encoding eval"))) goto done;
        if (cli_stop) goto stopped;
        se_classifier_predict(clf, xd, dv.n, pred, NULL);
        metrics(&dv, pred, ci.classes, ci.n_classes, &dacc, &df1);
        size_t unseen = 0;
        for (size_t i = 0; i < dv.n; i++) {
            size_t k = 0;
            while (k < ci.n_classes && strcmp(ci.classes[k], dv.label[i])) k++;
            unseen += k == ci.n_classes;
        }
        if (unseen)
            fprintf(stderr, "sembed: warning: %s: %zu examples have labels the training data lacks (counted as errors)\n",
                    eval, unseen);
        fprintf(stderr, "eval: accuracy %.4f, macro-F1 %.4f (%zu examples)\n", dacc, df1, dv.n);
    }
    if (se_classifier_save(clf, out, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    if (json) {
        printf("{\"classes\": [");
        for (size_t k = 0; k < ci.n_classes; k++) {
            if (k) fputs(", ", stdout);
            cli_print_json_string(stdout, ci.classes[k]);
        }
        printf("], \"dim\": %zu, \"n_iter\": %d, \"converged\": %s, \"train\": {\"n\": %zu, \"accuracy\": %.6f, "
               "\"macro_f1\": %.6f}",
               dim, (int)ci.n_iter, ci.converged ? "true" : "false", tr.n, acc, f1);
        if (eval) printf(", \"eval\": {\"n\": %zu, \"accuracy\": %.6f, \"macro_f1\": %.6f}", dv.n, dacc, df1);
        printf(", \"head\": ");
        cli_print_json_string(stdout, out);
        printf("}\n");
    }
    if (!cli_quiet) fprintf(stderr, "sembed: wrote %s\n", out);
    rc = fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
    goto done;
stopped:
    fprintf(stderr, "sembed: classify: stopped by signal %d; nothing written\n", (int)cli_stop);
    rc = 128 + (int)cli_stop;
done:
    dataset_free(&tr), dataset_free(&dv);
    free(x), free(xd), free(pred);
    se_classifier_free(clf);
    se_ctx_free(ctx);
    se_model_free(m);
    return rc;
}

/* `sembed classify predict`. */
static int cmd_predict(int argc, char **argv) {
    const char *model = NULL, *head = NULL, *text_field = "text";
    long threads = 0;
    int proba = 0, jsonl = 0, dtype = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"head", required_argument, 0, 'H'},
        {"proba", no_argument, 0, 'p'},       {"jsonl", no_argument, 0, 'J'},
        {"text-field", required_argument, 0, 'F'}, {"threads", required_argument, 0, 't'},
        {"dtype", required_argument, 0, 'T'}, {"quiet", no_argument, 0, 'q'},
        {"progress", no_argument, 0, 'G'},    {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'H': head = optarg; break;
        case 'p': proba = 1; break;
        case 'J': jsonl = 1; break;
        case 'F': text_field = optarg; break;
        case 't': if (cli_opt_long("classify predict", "-t/--threads", optarg, 1, 256, &threads)) return EXIT_USAGE; break;
        case 'T':
            if ((dtype = cli_parse_dtype(optarg)) < 0)
                return cli_usage_error(predict_usage, "classify predict: --dtype must be f32, bf16 or int8");
            break;
        case 'q': cli_quiet = 1; break;
        case 'G': cli_progress_force = 1; break;
        case 'h': fputs(predict_usage, stdout); return 0;
        default: fputs(predict_usage, stderr); return EXIT_USAGE;
        }
    }
    if (!model) return cli_usage_error(predict_usage, "classify predict: missing -m MODEL");
    if (!head) return cli_usage_error(predict_usage, "classify predict: missing --head HEAD.json");
    if (optind + 1 < argc) return cli_usage_error(predict_usage, "classify predict: unexpected argument '%s' (one input FILE)", argv[optind + 1]);
    const char *input = optind < argc ? argv[optind] : "-";
    const char *name = strcmp(input, "-") ? input : "<stdin>";
    if (data_format(input) == 'j') jsonl = 1;
    int rc = EXIT_RUNTIME;
    se_model *m = NULL;
    se_ctx *ctx = NULL;
    se_classifier *clf = NULL;
    dataset d = {0};
    float *x = NULL, *pr = NULL;
    se_error err = {0};
    if (se_classifier_load(head, &clf, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    if (open_model(model, dtype, threads, &m, &ctx)) goto done;
    char fp[SE_FINGERPRINT_MAX];
    if (se_model_fingerprint(m, fp, sizeof fp, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    if (se_classifier_check_model(clf, fp, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s: %s; predict with the model it was fitted on (%s)\n", head, err.msg, model);
        goto done;
    }
    se_classifier_info ci;
    se_classifier_get_info(clf, &ci, NULL);
    se_encode_params ep = ci.encode;
    size_t dim = se_encode_dim(m, &ep);
    if (dim != ci.dim) {
        fprintf(stderr, "sembed: %s: the head takes %zu-dimensional vectors, the model makes %zu\n", head, ci.dim, dim);
        goto done;
    }
    if (read_data(input, jsonl ? 'j' : 'p', text_field, NULL, false, &d)) goto done;
    if (d.n == 0) { /* no texts: no output, as rerank with no documents */
        rc = 0;
        goto done;
    }
    warn_unknown(m, &d, name);
    cli_catch_stop_signals();
    if (!(x = encode_all(ctx, &ep, dim, &d, name, "classifying"))) goto done;
    if (cli_stop) {
        fprintf(stderr, "sembed: classify: stopped by signal %d\n", (int)cli_stop);
        rc = 128 + (int)cli_stop;
        goto done;
    }
    if (!(pr = malloc(d.n * ci.n_classes * sizeof *pr))) {
        fprintf(stderr, "sembed: classify: out of memory\n");
        goto done;
    }
    if (se_classifier_predict_proba(clf, x, d.n, pr, d.n * ci.n_classes, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    for (size_t i = 0; i < d.n; i++) {
        const float *p = pr + i * ci.n_classes;
        size_t best = 0;
        for (size_t k = 1; k < ci.n_classes; k++)
            if (p[k] > p[best]) best = k;
        fputs("{\"label\": ", stdout);
        cli_print_json_string(stdout, ci.classes[best]);
        if (proba) {
            fputs(", \"proba\": {", stdout);
            for (size_t k = 0; k < ci.n_classes; k++) {
                if (k) fputs(", ", stdout);
                cli_print_json_string(stdout, ci.classes[k]);
                fputs(": ", stdout);
                cli_print_float(stdout, p[k]);
            }
            fputc('}', stdout);
        }
        fputs("}\n", stdout);
    }
    rc = fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
done:
    dataset_free(&d);
    free(x), free(pr);
    se_classifier_free(clf);
    se_ctx_free(ctx);
    se_model_free(m);
    return rc;
}

/* `sembed classify fit|predict ...`. */
int cmd_classify(int argc, char **argv) {
    if (argc < 2) return cli_usage_error(classify_usage, "classify: missing the subcommand (fit or predict)");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        /* both subcommands' options too: the man page is made from this */
        printf("%s\n%s\n%s", classify_usage, fit_usage, predict_usage);
        return 0;
    }
    if (!strcmp(sub, "fit")) return cmd_fit(argc - 1, argv + 1);
    if (!strcmp(sub, "predict")) return cmd_predict(argc - 1, argv + 1);
    return cli_usage_error(classify_usage, "classify: unknown subcommand '%s' (fit or predict)", sub);
}
