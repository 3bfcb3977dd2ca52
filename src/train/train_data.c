/*
 * train/train_data.c - training rows from JSONL, TSV or CSV, with the
 * columns of sentence-transformers' trainer: texts by position (anchor,
 * positive, negatives... or sentence1, sentence2) and a label column
 * named "score" or "label". CSV is RFC 4180 (the reader of
 * cli_classify.c, copied: the library cannot call the CLI's code).
 */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "alloc.h"
#include "error.h"
#include "train/train_data.h"

#define MAX_COLS 64
#define MAX_FILE ((size_t)1 << 32)

/* A copy of s[0..n) (se_malloc'd), NULL on OOM. */
static char *dupn(const char *s, size_t n) {
    char *d = se_malloc(n + 1);
    if (d) memcpy(d, s, n), d[n] = 0;
    return d;
}

/* True when s ends with suffix. */
static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* True when s[0..n) is valid UTF-8 (shortest forms, no surrogates). */
static bool utf8_ok(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 0;
        if (!k || k >= n - i) return false;
        unsigned cp = c & (0x3F >> k);
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

/* Splits one CSV record at *pos (RFC 4180: commas, double quotes with ""
 * for a quote; a quoted field may span lines) into fields (new strings,
 * at most max; *nf their count). Advances *pos past the record and *line
 * by the lines it spans. SE_E_FORMAT on an unterminated quote. */
static se_status csv_record(const char *buf, size_t len, size_t *pos, size_t *line, char **fields, int max, int *nf,
                            const char *name, se_error *err) {
    size_t i = *pos, start_line = *line;
    *nf = 0;
    while (1) {
        size_t cap = 64, n = 0;
        char *f = se_malloc(cap);
        if (!f) return se_err(err, SE_E_NOMEM, "%s: out of memory", name);
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
                char *g = se_realloc(f, cap *= 2);
                if (!g) {
                    se_free(f);
                    return se_err(err, SE_E_NOMEM, "%s: out of memory", name);
                }
                f = g;
            }
            f[n++] = buf[i++];
        }
        f[n] = 0;
        if (quoted) {
            se_free(f);
            for (int k = 0; k < *nf; k++) se_free(fields[k]);
            *nf = 0;
            return se_err(err, SE_E_FORMAT, "%s:%zu: a quoted field is not closed", name, start_line);
        }
        if (*nf < max) fields[(*nf)++] = f;
        else se_free(f);
        if (i < len && buf[i] == ',') {
            i++;
            continue;
        }
        if (i < len && buf[i] == '\r') i++;
        if (i < len && buf[i] == '\n') i++;
        break;
    }
    *pos = i;
    return SE_OK;
}

/* The rank of a JSONL column name in sentence-transformers' order
 * (anchor first, then positive, then negatives); 1000 for other names. */
static int col_rank(const char *s) {
    if (!strcmp(s, "anchor") || !strcmp(s, "sentence1") || !strcmp(s, "sentence_A") || !strcmp(s, "query")) return 0;
    if (!strcmp(s, "positive") || !strcmp(s, "sentence2") || !strcmp(s, "sentence_B")) return 1;
    if (!strcmp(s, "negative")) return 2;
    if (!strncmp(s, "negative_", 9)) {
        char *e;
        long k = strtol(s + 9, &e, 10);
        if (!*e && k >= 0 && k < 900) return 3 + (int)k;
    }
    return 1000;
}

/* qsort order of column names: by rank, then by name. */
static int col_cmp(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int rx = col_rank(x), ry = col_rank(y);
    return rx != ry ? (rx < ry ? -1 : 1) : strcmp(x, y);
}

/* True for the name of a label column. */
static bool is_label(const char *s) {
    return !strcmp(s, "score") || !strcmp(s, "label");
}

/* Appends a row (texts taken over) to d, growing its arrays. */
static se_status push_row(se_tdata *d, char **texts, float label, size_t line, size_t *cap, se_error *err) {
    if (d->n_rows == *cap) {
        size_t c = *cap ? 2 * *cap : 256;
        char **t = se_realloc(d->text, c * d->n_cols * sizeof *t);
        if (t) d->text = t;
        float *l = se_realloc(d->label, c * sizeof *l);
        if (l) d->label = l;
        size_t *ln = se_realloc(d->line, c * sizeof *ln);
        if (ln) d->line = ln;
        if (!t || !l || !ln) return se_err(err, SE_E_NOMEM, "training data: out of memory");
        *cap = c;
    }
    memcpy(d->text + d->n_rows * d->n_cols, texts, d->n_cols * sizeof *texts);
    d->label[d->n_rows] = label;
    d->line[d->n_rows++] = line;
    return SE_OK;
}

/* Sets d's columns from names (n of them, the label among them or not):
 * the texts in the given order, the label apart. *map gets, per name,
 * the text column index or -1 for the label. */
static se_status set_columns(se_tdata *d, char **names, int n, int *map, const char *name, size_t line, se_error *err) {
    d->col = se_calloc((size_t)n + 1, sizeof *d->col);
    if (!d->col) return se_err(err, SE_E_NOMEM, "training data: out of memory");
    for (int k = 0; k < n; k++) {
        for (int j = 0; j < k; j++)
            if (!strcmp(names[j], names[k]))
                return se_err(err, SE_E_FORMAT, "%s:%zu: column \"%s\" appears twice", name, line, names[k]);
        if (is_label(names[k])) {
            if (d->label_col)
                return se_err(err, SE_E_FORMAT, "%s:%zu: two label columns (\"%s\" and \"%s\")", name, line,
                              d->label_col, names[k]);
            if (!(d->label_col = dupn(names[k], strlen(names[k])))) return se_err(err, SE_E_NOMEM, "out of memory");
            map[k] = -1;
            continue;
        }
        if (!(d->col[d->n_cols] = dupn(names[k], strlen(names[k])))) return se_err(err, SE_E_NOMEM, "out of memory");
        map[k] = (int)d->n_cols++;
    }
    if (d->n_cols == 0) return se_err(err, SE_E_FORMAT, "%s:%zu: no text columns", name, line);
    return SE_OK;
}

/* A label value s (a number) of the row at line. */
static se_status parse_label(const char *s, float *out, const char *col, const char *name, size_t line, se_error *err) {
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    while (*e == ' ' || *e == '\t') e++;
    if (e == s || *e || errno || v != v || v > 1e30 || v < -1e30)
        return se_err(err, SE_E_FORMAT, "%s:%zu: %s \"%.40s\" is not a number", name, line, col, s);
    *out = (float)v;
    return SE_OK;
}

/* Reads the file's bytes (NUL-terminated) into *buf. */
static se_status slurp(const char *path, char **buf, size_t *len, se_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return se_err(err, SE_E_IO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, r;
    char *b = se_malloc(cap);
    while (b && (r = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *g = cap < MAX_FILE ? se_realloc(b, cap *= 2) : NULL;
            if (!g) se_free(b);
            b = g;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (!b) return se_err(err, SE_E_NOMEM, "%s: out of memory (or larger than 4 GiB)", path);
    if (bad) {
        se_free(b);
        return se_err(err, SE_E_IO, "%s: read error", path);
    }
    b[n] = 0;
    *buf = b, *len = n;
    return SE_OK;
}

/* Splits the comma-separated list s into names (new strings); *n their
 * count. */
static se_status split_list(const char *s, char **names, int *n, se_error *err) {
    *n = 0;
    for (const char *a = s;;) {
        const char *c = strchr(a, ',');
        size_t l = c ? (size_t)(c - a) : strlen(a);
        if (!l) return se_err(err, SE_E_INVALID, "--columns \"%s\": an empty name", s);
        if (*n == MAX_COLS) return se_err(err, SE_E_INVALID, "--columns: more than %d names", MAX_COLS);
        if (!(names[(*n)++] = dupn(a, l))) return se_err(err, SE_E_NOMEM, "out of memory");
        if (!c) break;
        a = c + 1;
    }
    return SE_OK;
}

/* Reads a JSONL file's rows. */
static se_status read_jsonl(se_tdata *d, const char *buf, size_t len, const char *columns, const char *name,
                            se_error *err) {
    char *names[MAX_COLS];
    int nn = 0, map[MAX_COLS];
    size_t cap = 0, pos = 0, line = 0;
    se_status s = SE_OK;
    if (columns && (s = split_list(columns, names, &nn, err)) != SE_OK) goto done;
    while (s == SE_OK && pos < len) {
        size_t end = pos;
        while (end < len && buf[end] != '\n') end++;
        const char *ln = buf + pos;
        size_t n = end - pos, k = 0;
        pos = end + 1, line++;
        while (k < n && (ln[k] == ' ' || ln[k] == '\t' || ln[k] == '\r')) k++;
        if (k == n) continue;
        json_error_t je;
        json_t *o = json_loadb(ln, n, 0, &je);
        if (!o || !json_is_object(o)) {
            s = se_err(err, SE_E_FORMAT, "%s:%zu: %s", name, line, o ? "not a JSON object" : je.text);
            json_decref(o);
            break;
        }
        if (!d->col) { /* the first object names the columns */
            if (!columns) {
                const char *key;
                json_t *v;
                json_object_foreach(o, key, v) {
                    if (nn == MAX_COLS) break;
                    names[nn++] = dupn(key, strlen(key));
                }
                qsort(names, (size_t)nn, sizeof *names, col_cmp);
            }
            s = set_columns(d, names, nn, map, name, line, err);
            if (s != SE_OK) {
                json_decref(o);
                break;
            }
        }
        if (!columns && json_object_size(o) != (size_t)nn)
            s = se_err(err, SE_E_FORMAT, "%s:%zu: %zu fields, the first row has %d", name, line, json_object_size(o), nn);
        char *texts[MAX_COLS] = {0};
        float label = 0.0f;
        for (int c = 0; s == SE_OK && c < nn; c++) {
            json_t *v = json_object_get(o, names[c]);
            if (map[c] < 0) {
                if (!json_is_number(v))
                    s = se_err(err, SE_E_FORMAT, "%s:%zu: field \"%s\" is %s", name, line, names[c],
                               v ? "not a number" : "missing");
                else label = (float)json_number_value(v);
            } else if (!json_is_string(v)) {
                s = se_err(err, SE_E_FORMAT, "%s:%zu: field \"%s\" is %s", name, line, names[c],
                           v ? "not a string" : "missing");
            } else {
                texts[map[c]] = dupn(json_string_value(v), json_string_length(v));
                if (!texts[map[c]]) s = se_err(err, SE_E_NOMEM, "out of memory");
                else if (strlen(texts[map[c]]) != json_string_length(v))
                    s = se_err(err, SE_E_FORMAT, "%s:%zu: field \"%s\" contains a NUL character", name, line, names[c]);
            }
        }
        json_decref(o);
        if (s == SE_OK) s = push_row(d, texts, label, line, &cap, err);
        if (s != SE_OK)
            for (size_t c = 0; c < d->n_cols; c++) se_free(texts[c]);
    }
done:
    for (int k = 0; k < nn; k++) se_free(names[k]);
    return s;
}

/* Reads a TSV (sep '\t') or CSV (sep ',') file's rows. */
static se_status read_table(se_tdata *d, const char *buf, size_t len, char sep, const char *columns, const char *name,
                            se_error *err) {
    char *names[MAX_COLS];
    int nn = 0, map[MAX_COLS];
    size_t cap = 0, pos = 0, line = 1;
    se_status s = SE_OK;
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) pos = 3;
    if (columns) {
        if ((s = split_list(columns, names, &nn, err)) != SE_OK) goto done;
        if ((s = set_columns(d, names, nn, map, "--columns", 0, err)) != SE_OK) goto done;
    }
    while (s == SE_OK && pos < len) {
        size_t lno = line;
        char *f[MAX_COLS];
        int nf = 0;
        if (sep == ',') {
            s = csv_record(buf, len, &pos, &line, f, MAX_COLS, &nf, name, err);
            line++;
            if (s != SE_OK) break;
        } else {
            size_t end = pos;
            while (end < len && buf[end] != '\n') end++;
            size_t e = end > pos && buf[end - 1] == '\r' ? end - 1 : end;
            for (size_t a = pos, b = pos; b <= e; b++)
                if (b == e || buf[b] == '\t') {
                    if (nf < MAX_COLS) f[nf++] = dupn(buf + a, b - a);
                    a = b + 1;
                }
            pos = end + 1, line++;
        }
        bool blank = nf == 1 && f[0] && !f[0][0];
        if (!d->col && !blank) { /* the header row */
            memcpy(names, f, (size_t)nf * sizeof *f);
            nn = nf;
            s = set_columns(d, names, nn, map, name, lno, err);
            continue;
        }
        if (columns && lno == 1 && nf == nn) { /* a header given twice? */
            bool same = true;
            for (int c = 0; c < nf && same; c++) same = !strcmp(f[c], names[c]);
            if (same) {
                for (int c = 0; c < nf; c++) se_free(f[c]);
                s = se_err(err, SE_E_FORMAT, "%s:1: a header row (the --columns names); --columns is for a file without one",
                           name);
                break;
            }
        }
        char *texts[MAX_COLS] = {0};
        float label = 0.0f;
        if (!blank && nf != nn)
            s = se_err(err, SE_E_FORMAT, "%s:%zu: %d fields, %s %d", name, lno, nf,
                       columns ? "--columns names" : "the header has", nn);
        for (int c = 0; s == SE_OK && !blank && c < nf; c++) {
            if (map[c] < 0) s = parse_label(f[c], &label, names[c], name, lno, err);
            else if (!utf8_ok(f[c], strlen(f[c])))
                s = se_err(err, SE_E_UTF8, "%s:%zu: column \"%s\" is not valid UTF-8", name, lno, names[c]);
            else texts[map[c]] = f[c], f[c] = NULL;
        }
        for (int c = 0; c < nf; c++) se_free(f[c]);
        if (s == SE_OK && !blank) s = push_row(d, texts, label, lno, &cap, err);
        if (s != SE_OK)
            for (size_t c = 0; c < d->n_cols; c++) se_free(texts[c]);
    }
done:
    for (int k = 0; k < nn; k++) se_free(names[k]);
    return s;
}

se_status se_tdata_read(const char *path, const char *columns, se_tdata **out, se_error *err) {
    if (!path || !out) return se_err(err, SE_E_INVALID, "se_tdata_read: NULL argument");
    *out = NULL;
    char fmt = ends_with(path, ".jsonl") || ends_with(path, ".json") || ends_with(path, ".ndjson") ? 'j'
               : ends_with(path, ".tsv")                                                           ? 't'
               : ends_with(path, ".csv")                                                           ? 'c'
                                                                                                   : 0;
    if (!fmt) return se_err(err, SE_E_INVALID, "%s: the name must end in .jsonl, .tsv or .csv (its format)", path);
    char *buf = NULL;
    size_t len = 0;
    se_status s = slurp(path, &buf, &len, err);
    if (s != SE_OK) return s;
    if (strlen(buf) != len) {
        size_t line = 1;
        for (size_t i = 0; i < strlen(buf); i++) line += buf[i] == '\n';
        se_free(buf);
        return se_err(err, SE_E_FORMAT, "%s:%zu: line contains a NUL byte", path, line);
    }
    se_tdata *d = se_calloc(1, sizeof *d);
    if (!d) {
        se_free(buf);
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    s = fmt == 'j' ? read_jsonl(d, buf, len, columns, path, err) : read_table(d, buf, len, fmt == 't' ? '\t' : ',', columns, path, err);
    se_free(buf);
    if (s == SE_OK && d->n_rows == 0)
        s = se_err(err, SE_E_FORMAT, "%s: no training rows%s", path, fmt != 'j' && !columns ? " (a header row names the columns, then one row per example)" : "");
    if (s == SE_OK && !d->label_col) {
        se_free(d->label);
        d->label = NULL;
    }
    if (s != SE_OK) {
        se_tdata_free(d);
        return s;
    }
    *out = d;
    return SE_OK;
}

se_status se_tdata_read_sts(const char *path, const char *split, se_tdata **out, se_error *err) {
    if (!path || !out) return se_err(err, SE_E_INVALID, "se_tdata_read_sts: NULL argument");
    *out = NULL;
    gzFile g = gzopen(path, "rb");
    if (!g) return se_err(err, SE_E_IO, "%s: %s", path, strerror(errno));
    se_tdata *d = se_calloc(1, sizeof *d);
    char *line = se_malloc(1 << 16);
    se_status s = d && line ? SE_OK : se_err(err, SE_E_NOMEM, "out of memory");
    char *names[] = {"sentence1", "sentence2", "score"};
    int map[3];
    if (s == SE_OK) s = set_columns(d, names, 3, map, path, 0, err);
    size_t no = 0, cap = 0;
    int stsb = -1;
    while (s == SE_OK && gzgets(g, line, 1 << 16)) {
        no++;
        size_t len = strlen(line);
        if (len == (1 << 16) - 1 && line[len - 1] != '\n') {
            s = se_err(err, SE_E_FORMAT, "%s:%zu: line too long", path, no);
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!len) continue;
        if (stsb < 0 && (stsb = !strncmp(line, "split\tgenre", 11))) continue;
        char *f[9];
        int nf = 0;
        f[nf++] = line;
        for (char *q = line; *q && nf < 9; q++)
            if (*q == '\t') *q = 0, f[nf++] = q + 1;
        if (nf != (stsb ? 8 : 3)) {
            s = se_err(err, SE_E_FORMAT, "%s:%zu: %d tab-separated fields, expected %s", path, no, nf,
                       stsb ? "8 (STS Benchmark format)" : "3 (s1<TAB>s2<TAB>score)");
            break;
        }
        const char *sc = stsb ? f[5] : f[2], *a = stsb ? f[6] : f[0], *b = stsb ? f[7] : f[1];
        float score;
        if ((s = parse_label(sc, &score, "score", path, no, err)) != SE_OK) break;
        if (stsb && split && strcmp(f[0], split)) continue;
        if (!utf8_ok(a, strlen(a)) || !utf8_ok(b, strlen(b))) {
            s = se_err(err, SE_E_UTF8, "%s:%zu: a sentence is not valid UTF-8", path, no);
            break;
        }
        char *texts[2] = {dupn(a, strlen(a)), dupn(b, strlen(b))};
        s = texts[0] && texts[1] ? push_row(d, texts, score, no, &cap, err) : se_err(err, SE_E_NOMEM, "out of memory");
        if (s != SE_OK) se_free(texts[0]), se_free(texts[1]);
    }
    if (s == SE_OK && !gzeof(g)) s = se_err(err, SE_E_IO, "%s: read error (corrupt gzip?)", path);
    if (s == SE_OK && d->n_rows < 2)
        s = se_err(err, SE_E_FORMAT, "%s: %zu pairs%s%s (a correlation needs two or more)", path, d->n_rows,
                   stsb && split ? " in split " : "", stsb && split ? split : "");
    gzclose(g);
    se_free(line);
    if (s != SE_OK) {
        se_tdata_free(d);
        return s;
    }
    *out = d;
    return SE_OK;
}

se_status se_tdata_tokenize(se_tdata *d, const se_tokenizer *tok, size_t n_tokens_max, se_error *err) {
    size_t n = d->n_rows * d->n_cols, cap = 1024, used = 0;
    se_tokenize_params tp = se_tokenize_default_params(tok);
    if (n_tokens_max) tp.n_tokens_max = n_tokens_max;
    se_free(d->ids), se_free(d->off);
    d->ids = se_malloc(cap * sizeof *d->ids);
    d->off = se_malloc((n + 1) * sizeof *d->off);
    if (!d->ids || !d->off) return se_err(err, SE_E_NOMEM, "training data: out of memory");
    d->off[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = d->text[i];
        size_t got = 0;
        for (;;) {
            se_status s = se_tokenize(tok, t, strlen(t), NULL, 0, &tp, d->ids + used, NULL, cap - used, &got, NULL, err);
            if (s == SE_OK) break;
            if (s != SE_E_BUFFER) {
                char msg[sizeof err->msg];
                snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
                return se_err(err, s, "line %zu, column \"%s\": %s", d->line[i / d->n_cols], d->col[i % d->n_cols],
                              msg);
            }
            size_t c = 2 * cap > used + got ? 2 * cap : used + got + 1024;
            int32_t *g = se_realloc(d->ids, c * sizeof *g);
            if (!g) return se_err(err, SE_E_NOMEM, "training data: out of memory");
            d->ids = g, cap = c;
        }
        used += got;
        d->off[i + 1] = used;
    }
    return SE_OK;
}

void se_tdata_free(se_tdata *d) {
    if (!d) return;
    for (size_t i = 0; d->text && i < d->n_rows * d->n_cols; i++) se_free(d->text[i]);
    for (size_t c = 0; d->col && c < d->n_cols; c++) se_free(d->col[c]);
    se_free(d->col), se_free(d->label_col), se_free(d->text), se_free(d->label), se_free(d->line);
    se_free(d->ids), se_free(d->off);
    se_free(d);
}
