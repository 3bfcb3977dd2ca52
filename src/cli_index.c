/*
 * cli_index.c - the sembed commands built on embeddings of a whole
 * collection:
 *   sembed index build|add|delete|info   the persistent index (sembed.h se_index)
 *   sembed search INDEX QUERY...         search an index (the model is remembered)
 *   sembed cluster                       community detection or k-means
 *   sembed dedup                         near-duplicate removal, first kept
 *   sembed mine                          paraphrase mining
 * Progress goes to stderr; results to stdout or -o (written atomically).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_io.h"
#include "cli_pull.h"
#include "sembed.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

int cmd_search_corpus(int argc, char **argv); /* cli_eval.c: brute force over a text file */
int cmd_index(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_cluster(int argc, char **argv);
int cmd_dedup(int argc, char **argv);
int cmd_mine(int argc, char **argv);

/* ---- documents ---- */

typedef struct doc {
    char *id, *text, *meta; /* meta: JSON object text or NULL */
    size_t line;
    char *title; /* a JSONL row's "title" (NULL: none) */
} doc;

typedef struct docs {
    doc *v;
    size_t n, cap;
} docs;

static void docs_free(docs *d) {
    for (size_t i = 0; i < d->n; i++) free(d->v[i].id), free(d->v[i].text), free(d->v[i].meta), free(d->v[i].title);
    free(d->v);
    memset(d, 0, sizeof *d);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Appends d to out (taking its strings); on failure (out of memory,
 * message printed) frees them and returns -1. */
static int docs_push(docs *out, doc d) {
    if (d.id && d.text && out->n == out->cap) {
        size_t nc = out->cap ? out->cap * 2 : 1024;
        doc *t = realloc(out->v, nc * sizeof *t);
        if (t) out->v = t, out->cap = nc;
    }
    if (!d.id || !d.text || out->n == out->cap) {
        fprintf(stderr, "sembed: out of memory\n");
        free(d.id), free(d.text), free(d.meta), free(d.title);
        return -1;
    }
    out->v[out->n++] = d;
    return 0;
}

/* Reads documents: JSONL (one object per line: the text field, the id
 * field or the line number, a string "title" (unless it is the text
 * field) as the document's title, every other field as metadata) or plain text
 * (one document per line, id = line number). jsonl: 1 JSONL, 0 text, -1
 * guess (a .jsonl/.json/.ndjson name, else the first non-empty line being
 * a JSON object, with a note). Errors name the line. */
static int read_docs(const char *path, int jsonl, const char *field, const char *id_field, docs *out) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "sembed: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    if (jsonl < 0 && (ends_with(path, ".jsonl") || ends_with(path, ".json") || ends_with(path, ".ndjson"))) jsonl = 1;
    const char *name = strcmp(path, "-") ? path : "<stdin>";
    char *line = NULL;
    size_t cap = 0, no = 0, n_blank = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        no++;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if ((size_t)len != strlen(line)) {
            fprintf(stderr, "sembed: %s:%zu: line contains a NUL byte\n", path, no);
            rc = -1;
            break;
        }
        if (jsonl < 0) {
            /* format not given: the first non-empty line decides (a JSON
             * object = JSONL); blank lines before it wait for the verdict */
            if (!len) {
                n_blank++;
                continue;
            }
            json_t *probe = json_loadb(line, (size_t)len, 0, NULL);
            jsonl = json_is_object(probe);
            json_decref(probe);
            if (jsonl) {
                if (!cli_quiet)
                    fprintf(stderr, "sembed: note: %s: line %zu is a JSON object, so the input is read as JSONL "
                                    "(--text to index the lines as plain text)\n", name, no);
            } else {
                for (size_t b = 0; b < n_blank && !rc; b++) { /* the blank lines were documents */
                    char buf[32];
                    snprintf(buf, sizeof buf, "%zu", no - n_blank + b);
                    rc = docs_push(out, (doc){strdup(buf), strdup(""), NULL, no - n_blank + b, NULL});
                }
                if (rc) break;
            }
        }
        doc d = {0};
        d.line = no;
        if (jsonl) {
            if (!len) continue; /* blank lines between records */
            json_error_t je;
            json_t *o = json_loadb(line, (size_t)len, 0, &je);
            if (!o || !json_is_object(o)) {
                fprintf(stderr, "sembed: %s:%zu: %s\n", path, no, o ? "expected a JSON object" : je.text);
                json_decref(o);
                rc = -1;
                break;
            }
            json_t *t = json_object_get(o, field);
            if (!json_is_string(t)) {
                fprintf(stderr, "sembed: %s:%zu: field \"%s\" is missing or not a string (choose it with --field)\n", path, no, field);
                json_decref(o);
                rc = -1;
                break;
            }
            d.text = strdup(json_string_value(t));
            json_t *idv = json_object_get(o, id_field);
            char buf[64];
            if (json_is_string(idv)) d.id = strdup(json_string_value(idv));
            else if (json_is_integer(idv)) snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(idv)), d.id = strdup(buf);
            else if (!idv) snprintf(buf, sizeof buf, "%zu", no), d.id = strdup(buf);
            else {
                fprintf(stderr, "sembed: %s:%zu: field \"%s\" must be a string or an integer\n", path, no, id_field);
                json_decref(o);
                free(d.text);
                rc = -1;
                break;
            }
            json_t *tv = strcmp(field, "title") && strcmp(id_field, "title") ? json_object_get(o, "title") : NULL;
            if (tv && !json_is_string(tv) && !json_is_null(tv)) {
                fprintf(stderr, "sembed: %s:%zu: field \"title\" must be a string (or null: no title)\n", path, no);
                json_decref(o);
                free(d.text), free(d.id);
                rc = -1;
                break;
            }
            if (json_is_string(tv) && json_string_value(tv)[0] && !(d.title = strdup(json_string_value(tv)))) {
                json_decref(o);
                free(d.text), free(d.id);
                fprintf(stderr, "sembed: out of memory\n");
                rc = -1;
                break;
            }
            if (tv) json_object_del(o, "title");
            json_object_del(o, field);
            json_object_del(o, id_field);
            if (json_object_size(o)) d.meta = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
            json_decref(o);
        } else {
            char buf[32];
            snprintf(buf, sizeof buf, "%zu", no);
            d.id = strdup(buf);
            d.text = strdup(line);
        }
        if (docs_push(out, d)) {
            rc = -1;
            break;
        }
    }
    for (size_t b = 0; !rc && jsonl < 0 && b < n_blank; b++) { /* only blank lines: plain text */
        char buf[32];
        snprintf(buf, sizeof buf, "%zu", b + 1);
        rc = docs_push(out, (doc){strdup(buf), strdup(""), NULL, b + 1, NULL});
    }
    if (!rc && ferror(f)) {
        fprintf(stderr, "sembed: %s: read error\n", path);
        rc = -1;
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

/* ---- model ---- */

typedef struct enc {
    se_model *m;
    se_ctx *ctx;
    size_t dim;
    se_model_info info;
} enc;

static int enc_open(enc *e, const char *model, int dtype, long threads) {
    se_error err = {0};
    se_model_params mp = se_model_default_params();
    mp.log_fn = cli_log;
    if (dtype >= 0) mp.dtype = (se_dtype)dtype;
    se_ctx_params cp = se_ctx_default_params();
    if (threads > 0) cp.n_threads = (int32_t)threads;
    if (cli_model_load(model, &mp, &e->m, &err) != SE_OK || se_ctx_new(e->m, &cp, &e->ctx, &err) != SE_OK ||
        se_model_get_info(e->m, &e->info, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        return -1;
    }
    e->dim = se_encode_dim(e->m, NULL);
    return 0;
}

static void enc_close(enc *e) {
    se_ctx_free(e->ctx);
    se_model_free(e->m);
}

/* Encodes n texts (lens may be NULL) into out, 64 at a time. Progress p
 * (may be NULL) moves from base to base + span items over the n texts.
 * Returns 0, -1 on an error (printed) or -2 when cli_stop was set. */
static int enc_texts(enc *e, const char *const *texts, const size_t *lens, size_t n, float *out, cli_progress *p,
                     size_t base, size_t span) {
    size_t n_trunc = 0, step = p && p->mode ? 8 : 64;
    bool tr[64];
    for (size_t i = 0, b; i < n; i += b) {
        /* with progress on, calls sized to take about 0.2 s so the line
         * moves at least once a second however slow the model */
        double t = cli_now();
        b = n - i < step ? n - i : step;
        if (cli_stop) return -2;
        se_error err = {0};
        if (se_encode(e->ctx, texts + i, lens ? lens + i : NULL, b, NULL, out + i * e->dim, b * e->dim, tr, &err) != SE_OK) {
            fprintf(stderr, "sembed: text %zu: %s\n", i + 1, err.msg);
            return -1;
        }
        for (size_t j = 0; j < b; j++) n_trunc += tr[j];
        if (p) cli_progress_update(p, base + (size_t)((double)span * (double)(i + b) / (double)n), -1);
        if (p && p->mode) {
            double per = (cli_now() - t) / (double)b, want = per > 0 ? 0.2 / per : 64;
            step = want < 1 ? 1 : want > 64 ? 64 : (size_t)want;
        }
    }
    if (n_trunc)
        fprintf(stderr, "sembed: warning: %zu of %zu texts were truncated to max_seq_length %d tokens\n", n_trunc, n,
                e->info.n_tokens_max);
    return 0;
}

/* Reads one text per line (for cluster / dedup / mine). */
static int read_lines(const char *path, docs *d) { return read_docs(path, 0, NULL, NULL, d); }

static const char **doc_texts(const docs *d) {
    const char **t = malloc((d->n ? d->n : 1) * sizeof *t);
    if (t)
        for (size_t i = 0; i < d->n; i++) t[i] = d->v[i].text;
    return t;
}

/* ==== index build / add ==== */

static const docs *dup_sort_docs;

/* qsort order of document indices: by id, then by input position. */
static int by_id_then_pos(const void *a, const void *b) {
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(dup_sort_docs->v[i].id, dup_sort_docs->v[j].id);
    return c ? c : (i > j) - (i < j);
}

/* Finds ids that occur more than once in one input: each repetition is
 * reported naming both lines (the first 5, then a count), and the later
 * document replaces the earlier, as adding an existing id replaces it.
 * Returns the number of documents dropped that way, or (size_t)-1 when out
 * of memory. */
static size_t drop_duplicate_ids(docs *d, const char *input) {
    if (d->n < 2) return 0;
    size_t *ix = malloc(d->n * sizeof *ix);
    bool *gone = calloc(d->n, sizeof *gone);
    if (!ix || !gone) {
        free(ix), free(gone);
        fprintf(stderr, "sembed: out of memory\n");
        return (size_t)-1;
    }
    for (size_t i = 0; i < d->n; i++) ix[i] = i;
    dup_sort_docs = d;
    qsort(ix, d->n, sizeof *ix, by_id_then_pos);
    const char *name = strcmp(input, "-") ? input : "<stdin>";
    size_t n_dup = 0;
    for (size_t k = 1; k < d->n; k++) {
        const doc *prev = &d->v[ix[k - 1]], *cur = &d->v[ix[k]];
        if (strcmp(prev->id, cur->id) != 0) continue;
        gone[ix[k - 1]] = true;
        if (n_dup++ < 5)
            fprintf(stderr, "sembed: warning: %s:%zu: id \"%s\" was already given at line %zu; the later document replaces "
                            "the earlier\n", name, cur->line, cur->id, prev->line);
    }
    if (n_dup > 5) fprintf(stderr, "sembed: warning: ... and %zu more repeated ids\n", n_dup - 5);
    size_t o = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (gone[i]) free(d->v[i].id), free(d->v[i].text), free(d->v[i].meta), free(d->v[i].title);
        else d->v[o++] = d->v[i];
    }
    d->n = o;
    free(ix), free(gone);
    return n_dup;
}

typedef struct build_opts {
    const char *model, *input, *field, *id_field;
    int jsonl, dtype;
    long chunk, overlap, threads, batch;
} build_opts;

/* Chunks, encodes and adds docs to idx in batches (one transaction each).
 * *n_done: the documents committed. Returns 0, -1 on an error (printed)
 * or -2 when a signal asked to stop (between batches or encode calls). */
static int index_docs(se_index *idx, enc *e, docs *d, long chunk, long overlap, long batch, size_t n_dup, size_t *n_done) {
    const se_tokenizer *tok = se_model_tokenizer(e->m);
    cli_progress p;
    cli_progress_start(&p, "indexing", "docs", d->n);
    size_t n_split = 0, n_chunks = 0;
    int rc = 0;
    *n_done = 0;
    for (size_t i = 0; i < d->n && !rc; i += (size_t)batch) {
        if (cli_stop) {
            rc = -2;
            break;
        }
        size_t b = d->n - i < (size_t)batch ? d->n - i : (size_t)batch;
        uint32_t **spans = calloc(b, sizeof *spans);
        size_t *nch = calloc(b, sizeof *nch), total = 0;
        se_index_doc *id = calloc(b, sizeof *id);
        const char **ct = NULL;
        size_t *cl = NULL;
        float *vec = NULL;
        if (!spans || !nch || !id) rc = -1;
        for (size_t j = 0; j < b && !rc; j++) {
            se_error err = {0};
            const doc *dj = &d->v[i + j];
            if (se_chunk_text(tok, dj->text, strlen(dj->text), (size_t)chunk, (size_t)overlap, &spans[j], &nch[j], &err) != SE_OK) {
                fprintf(stderr, "sembed: document %s (line %zu): %s\n", dj->id, dj->line, err.msg);
                rc = -1;
            }
            total += nch[j];
            n_split += nch[j] > 1;
        }
        if (!rc) {
            ct = malloc(total * sizeof *ct);
            cl = malloc(total * sizeof *cl);
            vec = malloc(total * e->dim * sizeof *vec);
            if (!ct || !cl || !vec) {
                fprintf(stderr, "sembed: out of memory\n");
                rc = -1;
            }
        }
        /* a titled document's chunks are embedded as title + " " + chunk
         * (as BEIR's SBERT joins them); the spans stay offsets into text */
        char **joined = rc ? NULL : calloc(total ? total : 1, sizeof *joined);
        if (!rc && !joined) {
            fprintf(stderr, "sembed: out of memory\n");
            rc = -1;
        }
        for (size_t j = 0, c = 0; j < b && !rc; j++)
            for (size_t k = 0; k < nch[j] && !rc; k++, c++) {
                const doc *dj = &d->v[i + j];
                ct[c] = dj->text + spans[j][2 * k];
                cl[c] = spans[j][2 * k + 1] - spans[j][2 * k];
                if (!dj->title) continue;
                size_t tl = strlen(dj->title);
                if (!(joined[c] = malloc(tl + 1 + cl[c] + 1))) {
                    fprintf(stderr, "sembed: out of memory\n");
                    rc = -1;
                    break;
                }
                memcpy(joined[c], dj->title, tl);
                joined[c][tl] = ' ';
                memcpy(joined[c] + tl + 1, ct[c], cl[c]);
                joined[c][tl + 1 + cl[c]] = 0;
                ct[c] = joined[c];
                cl[c] += tl + 1;
            }
        if (!rc) rc = enc_texts(e, ct, cl, total, vec, &p, i, b);
        for (size_t c = 0; joined && c < total; c++) free(joined[c]);
        free(joined);
        for (size_t j = 0, c = 0; j < b && !rc; j++) {
            id[j] = (se_index_doc){d->v[i + j].id, d->v[i + j].text, d->v[i + j].meta, nch[j], spans[j], vec + c * e->dim,
                                   d->v[i + j].title};
            c += nch[j];
        }
        se_error err = {0};
        if (!rc && se_index_add(idx, id, b, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s\n", err.msg);
            rc = -1;
        }
        if (!rc) *n_done = i + b;
        n_chunks += total;
        for (size_t j = 0; j < b; j++)
            if (spans) se_free(spans[j]);
        free(spans), free(nch), free(id), free(ct), free(cl), free(vec);
        if (!rc) cli_progress_update(&p, i + b, -1);
    }
    cli_progress_end(&p);
    if (rc == -2) fprintf(stderr, "sembed: stopped by %s\n", cli_stop == SIGTERM ? "SIGTERM" : "SIGINT");
    if (!rc && !cli_quiet) {
        char dups[64] = "";
        if (n_dup) snprintf(dups, sizeof dups, ", %zu duplicate id%s", n_dup, n_dup == 1 ? "" : "s");
        fprintf(stderr, "sembed: added %zu documents, %zu chunks (%zu documents longer than one chunk were split)%s in %.1f s\n",
                d->n, n_chunks, n_split, dups, cli_now() - p.t0);
    }
    return rc;
}

static const char index_usage[] =
    "usage: sembed index build -m MODEL -i DOCS -o INDEX [options]\n"
    "       sembed index add INDEX -i DOCS [options]\n"
    "       sembed index delete INDEX ID... | -i IDS\n"
    "       sembed index info INDEX [--json]\n"
    "       sembed index upgrade INDEX\n"
    "\n"
    "A persistent semantic index: documents, their metadata and their embeddings in one file\n"
    "(SQLite), searched with `sembed search INDEX QUERY`. Adding an existing id replaces it.\n"
    "Every index has a keyword index (BM25) over its texts too; `upgrade` adds it in place to an\n"
    "index made by an older sembed (format 1), or rebuilds it with today's words (format 2) and\n"
    "a title field (format 3: existing documents have no title); any writable open, e.g. `index\n"
    "add`, does it too.\n"
    "\n"
    "  -m, --model DIR         model folder (build; remembered by the index, add may override)\n"
    "  -i, --input FILE        documents: .jsonl (one object per line) or text (one per line; id =\n"
    "                          line number); `-` is stdin. delete: one id per line\n"
    "  -o, --output FILE       the index to create (build; must not exist)\n"
    "      --jsonl / --text    input format (default: JSONL for a .jsonl/.json/.ndjson name or when\n"
    "                          the first non-empty line is a JSON object, else text)\n"
    "      --field NAME        JSONL text field (default text)\n"
    "      --id-field NAME     JSONL id field (default id; absent = line number); a string field\n"
    "                          \"title\" is the document's title: stored, keyword-searched as its own\n"
    "                          BM25 field, and embedded as title + \" \" + text (each chunk); the other\n"
    "                          fields are stored as metadata, for --filter\n"
    "      --metric M          cosine (default), dot or l2\n"
    "      --hnsw M,EF         HNSW graph with M links and ef_construction EF (default 16,200)\n"
    "      --flat              exact search instead of HNSW\n"
    "      --ef-search N       least ef of searches without --ef (default 64; raised with k)\n"
    "      --chunk N           split documents into chunks of at most N tokens (default: the\n"
    "                          model's max_seq_length); long documents are never truncated\n"
    "      --overlap K         tokens shared by consecutive chunks (default 0)\n"
    "  -b, --batch-size N      documents per transaction (default 256)\n"
    "  -t, --threads N         encoder threads\n"
    "      --dtype D           f32 (default), bf16 or int8\n"
    "  -q, --quiet             no progress on stderr\n"
    "      --progress          progress (docs/s, ETA) once a second even when stderr is not a terminal\n"
    "  -h, --help              this help\n";

/* Checks --chunk and --overlap against what the model reads: a chunk
 * larger than max_seq_length minus the special tokens is lowered to that
 * with a warning (so the index records the size really used); an overlap
 * of a whole chunk or more is refused. *chunk 0 means the model's limit.
 * Returns 0, or 2 (a usage error, message printed). */
static int fit_chunk(const enc *e, const char *cmd, long *chunk, long overlap) {
    const se_tokenizer *tok = se_model_tokenizer(e->m);
    se_tokenize_params tp = se_tokenize_default_params(tok);
    int32_t ids[16];
    size_t n_special = 0;
    if (se_tokenize(tok, "", 0, NULL, 0, &tp, ids, NULL, 16, &n_special, NULL, NULL) != SE_OK) n_special = 0;
    long limit = (long)se_tokenizer_n_tokens_max(tok), room = limit > (long)n_special ? limit - (long)n_special : 1;
    if (!limit) room = LONG_MAX;
    if (*chunk > room) {
        fprintf(stderr, "sembed: warning: %s: --chunk %ld exceeds what the model reads (max_seq_length %ld, %zu of them "
                        "special tokens); chunks of %ld tokens are used and recorded\n", cmd, *chunk, limit, n_special, room);
        *chunk = room;
    }
    long eff = *chunk ? *chunk : room;
    if (overlap >= eff) {
        fprintf(stderr, "sembed: %s: --overlap %ld must be smaller than the chunk size (%ld tokens%s)\n", cmd, overlap, eff,
                *chunk ? "" : ", the model's max_seq_length less its special tokens");
        return EXIT_USAGE;
    }
    return 0;
}

/* Removes an index file and the SQLite side files next to it (-wal,
 * -shm, -journal). */
static void remove_index_files(const char *path) {
    static const char *side[] = {"", "-wal", "-shm", "-journal"};
    char p[4200];
    for (size_t i = 0; i < sizeof side / sizeof *side; i++) {
        snprintf(p, sizeof p, "%s%s", path, side[i]);
        unlink(p);
    }
}

/* Removes what killed builds of idx_path left behind (SIGKILL cannot be
 * caught): files named "<idx_path>.tmp.<pid>" (and their -wal, -shm,
 * -journal) whose process no longer exists. Nothing else is touched. */
static void remove_stale_builds(const char *idx_path) {
    const char *slash = strrchr(idx_path, '/');
    char dir[4096];
    const char *base = slash ? slash + 1 : idx_path;
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - idx_path) + 1 : 1, slash ? idx_path : ".");
    DIR *dh = opendir(dir);
    if (!dh) return;
    size_t bl = strlen(base);
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        const char *nm = de->d_name;
        if (strncmp(nm, base, bl) != 0 || strncmp(nm + bl, ".tmp.", 5) != 0) continue;
        const char *q = nm + bl + 5;
        char *end;
        if (*q < '1' || *q > '9') continue;
        errno = 0;
        long pid = strtol(q, &end, 10);
        if (errno || pid <= 0 || pid > INT_MAX) continue;
        if (*end && strcmp(end, "-wal") && strcmp(end, "-shm") && strcmp(end, "-journal")) continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours to judge) */
        char p[8300];
        snprintf(p, sizeof p, "%s%s", slash ? dir : "", nm);
        if (unlink(p) == 0 && !*end)
            fprintf(stderr, "sembed: note: removed %s, left by a build that was killed\n", p);
    }
    closedir(dh);
}

/* Refuses to mix embedding spaces: checks that the model e (folder
 * model_dir) is the one whose fingerprint the index recorded
 * (se_index_check_model's message names the index and the fields that
 * differ). Returns 0 when it is, -1 (message printed) when not. */
static int check_index_model(se_index *idx, const enc *e, const char *model_dir) {
    char fp[SE_FINGERPRINT_MAX];
    se_error err = {0};
    if (se_model_fingerprint(e->m, fp, sizeof fp, &err) != SE_OK || se_index_check_model(idx, fp, cli_log, NULL, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s (model %s; an index holds one model's vectors: use the model it was built with, or "
                        "build another index)\n", err.msg, model_dir);
        return -1;
    }
    return 0;
}

/* Absolute path of a model folder, for the index to remember. */
static char *abs_path(const char *p) {
    char *r = realpath(p, NULL);
    return r ? r : strdup(p);
}

static int index_build_or_add(int argc, char **argv, int add) {
    const char *cmd = add ? "index add" : "index build";
    build_opts o = {0};
    o.field = "text";
    o.id_field = "id";
    o.jsonl = -1;
    o.dtype = -1;
    o.batch = 256;
    o.overlap = -1;
    const char *out = NULL, *metric = "cosine", *hnsw = NULL;
    long ef_search = 64;
    int flat = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"input", required_argument, 0, 'i'}, {"output", required_argument, 0, 'o'},
        {"jsonl", no_argument, 0, 'J'}, {"text", no_argument, 0, 'T'}, {"field", required_argument, 0, 'F'},
        {"id-field", required_argument, 0, 'I'}, {"metric", required_argument, 0, 'M'}, {"hnsw", required_argument, 0, 'H'},
        {"flat", no_argument, 0, 'L'}, {"ef-search", required_argument, 0, 'E'}, {"chunk", required_argument, 0, 'C'},
        {"overlap", required_argument, 0, 'O'}, {"batch-size", required_argument, 0, 'b'}, {"threads", required_argument, 0, 't'},
        {"dtype", required_argument, 0, 'D'}, {"quiet", no_argument, 0, 'q'}, {"progress", no_argument, 0, 'G'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:o:b:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'i': o.input = optarg; break;
        case 'o': out = optarg; break;
        case 'J': o.jsonl = 1; break;
        case 'T': o.jsonl = 0; break;
        case 'F': o.field = optarg; break;
        case 'I': o.id_field = optarg; break;
        case 'M': metric = optarg; break;
        case 'H': hnsw = optarg; break;
        case 'L': flat = 1; break;
        case 'E': if (cli_opt_long(cmd, "--ef-search", optarg, 1, 100000, &ef_search)) return EXIT_USAGE; break;
        case 'C': if (cli_opt_long(cmd, "--chunk", optarg, 1, 1 << 20, &o.chunk)) return EXIT_USAGE; break;
        case 'O': if (cli_opt_long(cmd, "--overlap", optarg, 0, 1 << 20, &o.overlap)) return EXIT_USAGE; break;
        case 'b': if (cli_opt_long(cmd, "-b/--batch-size", optarg, 1, 1 << 20, &o.batch)) return EXIT_USAGE; break;
        case 't': if (cli_opt_long(cmd, "-t/--threads", optarg, 1, 256, &o.threads)) return EXIT_USAGE; break;
        case 'D':
            o.dtype = cli_parse_dtype(optarg);
            if (o.dtype < 0) {
                fprintf(stderr, "sembed: --dtype must be f32, bf16 or int8\n");
                return EXIT_USAGE;
            }
            break;
        case 'q': cli_quiet = 1; break;
        case 'G': cli_progress_force = 1; break;
        case 'h': fputs(index_usage, stdout); return 0;
        default: fputs(index_usage, stderr); return EXIT_USAGE;
        }
    }
    const char *idx_path = add ? (optind < argc ? argv[optind++] : NULL) : out;
    if (add && !idx_path) return cli_usage_error(index_usage, "index add: missing INDEX");
    if (!add && !o.model) return cli_usage_error(index_usage, "index build: missing -m MODEL");
    if (!o.input) return cli_usage_error(index_usage, "%s: missing -i DOCS (`-` for stdin)", cmd);
    if (!add && !out) return cli_usage_error(index_usage, "index build: missing -o INDEX");
    if (add && out) return cli_usage_error(index_usage, "index add: -o is for build; add writes INDEX in place");
    if (optind != argc) return cli_usage_error(index_usage, "%s: unexpected argument '%s'", cmd, argv[optind]);
    if (o.chunk && o.overlap >= o.chunk) {
        fprintf(stderr, "sembed: %s: --overlap %ld must be smaller than --chunk %ld\n", cmd, o.overlap, o.chunk);
        return EXIT_USAGE;
    }
    se_index_params ip = se_index_default_params();
    if (!strcmp(metric, "cosine")) ip.metric = SE_METRIC_COSINE;
    else if (!strcmp(metric, "dot")) ip.metric = SE_METRIC_DOT;
    else if (!strcmp(metric, "l2")) ip.metric = SE_METRIC_L2;
    else {
        fprintf(stderr, "sembed: --metric must be cosine, dot or l2\n");
        return EXIT_USAGE;
    }
    if (flat) ip.kind = SE_INDEX_FLAT;
    if (hnsw) {
        long M, efc;
        char buf[64];
        char *comma = strlen(hnsw) < sizeof buf ? strchr(strcpy(buf, hnsw), ',') : NULL;
        if (!comma) {
            fprintf(stderr, "sembed: %s: --hnsw takes M,ef_construction (e.g. 16,200)\n", cmd);
            return EXIT_USAGE;
        }
        *comma = 0;
        if (cli_opt_long(cmd, "--hnsw M", buf, 2, 1024, &M) || cli_opt_long(cmd, "--hnsw ef_construction", comma + 1, 1, 100000, &efc))
            return EXIT_USAGE;
        ip.M = (uint32_t)M;
        ip.ef_construction = (uint32_t)efc;
    }
    ip.ef_search = (uint32_t)ef_search;
    struct stat sb;
    if (!add && stat(idx_path, &sb) == 0) {
        fprintf(stderr, "sembed: %s: already exists (will not overwrite an index; use `sembed index add`)\n", idx_path);
        return EXIT_RUNTIME;
    }
    docs d = {0};
    size_t n_dup = 0;
    if (read_docs(o.input, o.jsonl, o.field, o.id_field, &d) || (n_dup = drop_duplicate_ids(&d, o.input)) == (size_t)-1) {
        docs_free(&d);
        return EXIT_RUNTIME;
    }
    /* from here on (the input read; Ctrl-C while typing it still ends the
     * program at once), SIGINT / SIGTERM stop between batches and clean up */
    cli_catch_stop_signals();
    int rc = EXIT_RUNTIME;
    se_error err = {0};
    se_index *idx = NULL;
    enc e = {0};
    char *model_abs = NULL, tmp[4096] = "", fingerprint[SE_FINGERPRINT_MAX];
    if (add) {
        if (se_index_open(idx_path, false, cli_log, NULL, &idx, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s\n", err.msg);
            goto done;
        }
        se_index_info info;
        se_index_get_info(idx, &info, NULL);
        if (!o.model) o.model = info.params.model;
        if (!o.model || !o.model[0]) {
            fprintf(stderr, "sembed: %s: the index records no model; pass -m\n", idx_path);
            goto done;
        }
        if (!o.chunk) o.chunk = info.params.chunk_tokens;
        if (o.overlap < 0) o.overlap = info.params.chunk_overlap;
        if (enc_open(&e, o.model, o.dtype, o.threads)) goto done;
        if (e.dim != info.dim) {
            fprintf(stderr, "sembed: model %s gives %zu-dimensional vectors, the index holds %zu\n", o.model, e.dim, info.dim);
            goto done;
        }
        if (check_index_model(idx, &e, o.model)) goto done;
        if ((rc = fit_chunk(&e, cmd, &o.chunk, o.overlap)) != 0) goto done;
        rc = EXIT_RUNTIME;
    } else {
        if (o.overlap < 0) o.overlap = 0;
        if (enc_open(&e, o.model, o.dtype, o.threads)) goto done;
        if ((rc = fit_chunk(&e, cmd, &o.chunk, o.overlap)) != 0) goto done;
        rc = EXIT_RUNTIME;
        model_abs = abs_path(o.model);
        ip.model = model_abs;
        if (se_model_fingerprint(e.m, fingerprint, sizeof fingerprint, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s\n", err.msg);
            goto done;
        }
        ip.model_fingerprint = fingerprint;
        ip.chunk_tokens = (uint32_t)o.chunk;
        ip.chunk_overlap = (uint32_t)o.overlap;
        /* built under a temporary name, renamed into place when complete */
        remove_stale_builds(idx_path);
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", idx_path, (long)getpid());
        remove_index_files(tmp);
        if (se_index_create(tmp, e.dim, &ip, &idx, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s\n", err.msg);
            goto done; /* removes what the failed create left */
        }
    }
    { /* documents the model cannot read are named before the work starts */
        cli_unk unk;
        cli_unk_init(&unk, se_model_tokenizer(e.m));
        const char *name = strcmp(o.input, "-") ? o.input : "<stdin>";
        for (size_t i = 0; i < d.n; i++) {
            char where[700];
            snprintf(where, sizeof where, "%s:%zu (id %.100s)", name, d.v[i].line, d.v[i].id);
            cli_unk_check(&unk, d.v[i].text, strlen(d.v[i].text), where);
        }
        cli_unk_finish(&unk, "documents");
    }
    size_t n_done = 0;
    int r = index_docs(idx, &e, &d, o.chunk, o.overlap, o.batch, n_dup, &n_done);
    if (r) {
        se_index_close(idx, NULL);
        idx = NULL;
        if (r == -2) rc = 128 + cli_stop;
        if (add) {
            fprintf(stderr, "sembed: index add: %zu of %zu documents were added to %s%s; to finish, run `sembed index add %s -i %s` "
                            "again (ids already added are replaced)\n",
                    n_done, d.n, idx_path, n_done ? " (whole batches, in input order)" : "", idx_path, o.input);
        } else {
            remove_index_files(tmp);
            tmp[0] = 0;
            fprintf(stderr, "sembed: index build: nothing was written (the partial index was removed). Run the build again; "
                            "or build from part of the input and add the rest with `sembed index add %s -i REST`\n", idx_path);
        }
        goto done;
    }
    if (se_index_close(idx, &err) != SE_OK) {
        idx = NULL;
        fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    idx = NULL;
    if (!add) {
        if (link(tmp, idx_path) != 0) {
            fprintf(stderr, "sembed: %s: cannot create: %s\n", idx_path, strerror(errno));
            goto done;
        }
        unlink(tmp);
        tmp[0] = 0;
        if (!cli_quiet) fprintf(stderr, "sembed: wrote %s\n", idx_path);
    }
    rc = 0;
done:
    if (idx) se_index_close(idx, NULL);
    if (tmp[0]) remove_index_files(tmp);
    enc_close(&e);
    docs_free(&d);
    free(model_abs);
    return rc;
}

static int index_delete(int argc, char **argv) {
    const char *input = NULL;
    static const struct option opts[] = {{"input", required_argument, 0, 'i'}, {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'i': input = optarg; break;
        case 'q': cli_quiet = 1; break;
        case 'h': fputs(index_usage, stdout); return 0;
        default: fputs(index_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) return cli_usage_error(index_usage, "index delete: missing INDEX");
    if (!input && optind + 1 >= argc) return cli_usage_error(index_usage, "index delete: missing the ids (ID... or -i IDS)");
    const char *path = argv[optind++];
    docs ids = {0};
    if (input && read_lines(input, &ids)) return EXIT_RUNTIME;
    size_t n = input ? ids.n : (size_t)(argc - optind);
    const char **v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = input ? ids.v[i].text : argv[optind + i];
    se_error err = {0};
    se_index *idx = NULL;
    int rc = EXIT_RUNTIME;
    size_t nd = 0;
    if (se_index_open(path, false, cli_log, NULL, &idx, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
    } else if (se_index_delete(idx, v, n, &nd, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        se_index_close(idx, NULL); /* the index is closed on failure too */
    } else if (se_index_close(idx, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
    } else {
        if (!cli_quiet) fprintf(stderr, "sembed: deleted %zu of %zu ids\n", nd, n);
        rc = 0;
    }
    free(v);
    docs_free(&ids);
    return rc;
}

static int index_info(int argc, char **argv) {
    int json = 0;
    static const struct option opts[] = {{"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': fputs(index_usage, stdout); return 0;
        default: fputs(index_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind == argc) return cli_usage_error(index_usage, "index info: missing INDEX");
    if (optind != argc - 1) return cli_usage_error(index_usage, "index info: unexpected argument '%s'", argv[optind + 1]);
    se_error err = {0};
    se_index *idx;
    if (se_index_open(argv[optind], true, cli_log, NULL, &idx, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        return EXIT_RUNTIME;
    }
    se_index_info in;
    if (se_index_get_info(idx, &in, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        se_index_close(idx, NULL);
        return EXIT_RUNTIME;
    }
    struct stat sb;
    long long fsize = stat(argv[optind], &sb) == 0 ? (long long)sb.st_size : -1;
    const char *kind = in.params.kind == SE_INDEX_FLAT ? "flat" : "hnsw";
    const char *metric = in.params.metric == SE_METRIC_DOT ? "dot" : in.params.metric == SE_METRIC_L2 ? "l2" : "cosine";
    if (json) {
        printf("{\"path\": ");
        cli_print_json_string(stdout, argv[optind]);
        printf(", \"format_version\": %d, \"kind\": \"%s\", \"metric\": \"%s\", \"dim\": %zu, \"M\": %u, "
               "\"ef_construction\": %u, \"ef_search\": %u, \"documents\": %zu, \"vectors\": %zu, \"free_slots\": %zu, "
               "\"chunk_tokens\": %u, \"chunk_overlap\": %u, \"memory_bytes\": %zu, \"file_bytes\": %lld, \"model\": ",
               in.format_version, kind, metric, in.dim, in.params.M, in.params.ef_construction, in.params.ef_search, in.n_docs,
               in.n_vectors, in.n_free_slots, in.params.chunk_tokens, in.params.chunk_overlap, in.memory_bytes, fsize);
        cli_print_json_string(stdout, in.params.model ? in.params.model : "");
        fputs(", \"model_fingerprint\": ", stdout);
        if (in.params.model_fingerprint && in.params.model_fingerprint[0]) cli_print_json_string(stdout, in.params.model_fingerprint);
        else fputs("null", stdout);
        printf("}\n");
    } else {
        printf("index        %s (format %d, %lld bytes)\n", argv[optind], in.format_version, fsize);
        printf("model        %s\n", in.params.model && in.params.model[0] ? in.params.model : "(none)");
        printf("fingerprint  %s\n", in.params.model_fingerprint && in.params.model_fingerprint[0]
                                          ? in.params.model_fingerprint
                                          : "(none recorded: made before fingerprints; recorded by the next index add)");
        printf("kind         %s", kind);
        if (in.params.kind == SE_INDEX_HNSW)
            printf(" (M %u, ef_construction %u, ef_search %u)", in.params.M, in.params.ef_construction, in.params.ef_search);
        printf("\nmetric       %s\ndimension    %zu\ndocuments    %zu\nvectors      %zu (%zu free slots)\n", metric, in.dim,
               in.n_docs, in.n_vectors, in.n_free_slots);
        if (in.params.chunk_tokens) printf("chunks       %u tokens, overlap %u\n", in.params.chunk_tokens, in.params.chunk_overlap);
        else printf("chunks       max_seq_length, overlap %u\n", in.params.chunk_overlap);
        printf("memory       %.1f MB in memory when open\n", in.memory_bytes / 1e6);
    }
    se_index_close(idx, NULL);
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}

/* `sembed index upgrade INDEX`: opens the index writable, which upgrades
 * an older format in place (se_index_open), and says what it is now. */
static int index_upgrade(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        fputs(index_usage, stdout);
        return 0;
    }
    if (argc < 2) return cli_usage_error(index_usage, "index upgrade: missing INDEX");
    if (argc > 2) return cli_usage_error(index_usage, "index upgrade: unexpected argument '%s'", argv[2]);
    se_error err = {0};
    se_index *idx = NULL;
    se_index_info in;
    if (se_index_open(argv[1], false, cli_log, NULL, &idx, &err) != SE_OK || se_index_get_info(idx, &in, &err) != SE_OK ||
        se_index_close(idx, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        return EXIT_RUNTIME;
    }
    printf("%s: index format %d (vector and keyword search)\n", argv[1], in.format_version);
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}

int cmd_index(int argc, char **argv) {
    if (argc < 2) return cli_usage_error(index_usage, "index: missing the subcommand (build, add, delete, info or upgrade)");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(index_usage, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "build")) return index_build_or_add(argc - 1, argv + 1, 0);
    if (!strcmp(argv[1], "add")) return index_build_or_add(argc - 1, argv + 1, 1);
    if (!strcmp(argv[1], "delete")) return index_delete(argc - 1, argv + 1);
    if (!strcmp(argv[1], "info")) return index_info(argc - 1, argv + 1);
    if (!strcmp(argv[1], "upgrade")) return index_upgrade(argc - 1, argv + 1);
    fprintf(stderr, "sembed: index: unknown subcommand '%s'\n\n%s", argv[1], index_usage);
    return EXIT_USAGE;
}

/* ==== search ==== */

static const char search_index_usage[] =
    "usage: sembed search INDEX [options] QUERY...\n"
    "       sembed search -m MODEL -c CORPUS [-k N] QUERY...   (brute force over a text file)\n"
    "\n"
    "Searches an index made by `sembed index build` with the model it remembers: by vector\n"
    "(default), by keyword (BM25 over the texts) or both fused; optionally reranked.\n"
    "\n"
    "  -k, --top-k N          results per query (default 10)\n"
    "      --keyword          BM25 keyword search over the documents' text (no model needed)\n"
    "      --hybrid           vector and keyword search fused (default fusion: normalised scores,\n"
    "                         vector weight 0.2-0.8 by how far its best scores stand apart, 0 when\n"
    "                         they are flat)\n"
    "      --fusion F         hybrid fusion: score (alpha * vector + (1 - alpha) * BM25, each\n"
    "                         min-max normalised) or rrf (reciprocal rank fusion, k 60)\n"
    "      --alpha A          the vector weight of --fusion score, 0..1 (default 0.2)\n"
    "      --rerank MODEL     rescore the first stage's top hits with this cross-encoder (a folder\n"
    "                         or ORG/NAME) on (query, chunk text) and reorder them\n"
    "      --rerank-top N     how many first-stage hits to rerank (default 100)\n"
    "      --filter KEY=VALUE documents whose metadata field KEY equals VALUE (or whose array\n"
    "                         KEY contains it); repeat to require several\n"
    "      --ef N             HNSW candidate list size (default: adapted to k and the chunks per\n"
    "                         document, at least the index's ef_search; small indexes are\n"
    "                         scanned exactly)\n"
    "      --all-chunks       several chunks of one document may be listed (default: its best)\n"
    "  -i, --input FILE       queries, one per line (as well as / instead of QUERY arguments)\n"
    "  -m, --model DIR        encode queries with this model instead of the remembered one\n"
    "      --json             one JSON object per query: {\"query\", \"results\": [{\"id\", \"score\",\n"
    "                         [\"title\",] \"chunk\", \"text\", \"metadata\"}]} (\"title\" for a titled\n"
    "                         document); --keyword/--hybrid add \"vector_score\" and\n"
    "                         \"keyword_score\" (null: that side did not return it), --rerank\n"
    "                         \"first_stage_score\" (\"score\" is then the cross-encoder's)\n"
    "  -t, --threads N        encoder threads\n"
    "  -q, --quiet            no notes on stderr\n"
    "  -h, --help             this help\n";

/* Prints a component score for JSON: the number, or null for NaN (that
 * side did not return the document). */
static void print_score_or_null(float v) {
    if (isnan(v)) fputs("null", stdout);
    else cli_print_float(stdout, v);
}

/* A first-stage hit with its document fetched: the chunk text the reranker
 * reads and prints, and the rerank score. */
typedef struct search_hit {
    se_index_hit h;
    se_index_doc_out d;
    char *chunk;
    float rerank;
} search_hit;

static int search_index(int argc, char **argv) {
    long k = 10, ef = 0, threads = 0, rerank_top = 100;
    int json = 0, all_chunks = 0, keyword = 0, hybrid = 0;
    float alpha = -1;
    se_fusion fusion = SE_FUSION_DEFAULT;
    const char *input = NULL, *model = NULL, *rerank = NULL;
    se_index_filter filters[SE_INDEX_FILTERS_MAX];
    size_t nf = 0;
    static const struct option opts[] = {
        {"top-k", required_argument, 0, 'k'}, {"filter", required_argument, 0, 'f'}, {"ef", required_argument, 0, 'e'},
        {"all-chunks", no_argument, 0, 'a'}, {"input", required_argument, 0, 'i'}, {"model", required_argument, 0, 'm'},
        {"json", no_argument, 0, 'j'}, {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'},
        {"keyword", no_argument, 0, 'K'}, {"hybrid", no_argument, 0, 'H'}, {"alpha", required_argument, 0, 'A'},
        {"fusion", required_argument, 0, 'F'}, {"rerank", required_argument, 0, 'R'},
        {"rerank-top", required_argument, 0, 'N'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:i:m:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'k': if (cli_opt_long("search", "-k/--top-k", optarg, 1, 100000, &k)) return EXIT_USAGE; break;
        case 'e': if (cli_opt_long("search", "--ef", optarg, 1, 100000, &ef)) return EXIT_USAGE; break;
        case 'f': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                fprintf(stderr, "sembed: search: --filter takes KEY=VALUE, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            if (nf == SE_INDEX_FILTERS_MAX) {
                fprintf(stderr, "sembed: search: at most %d --filter terms\n", SE_INDEX_FILTERS_MAX);
                return EXIT_USAGE;
            }
            *eq = 0;
            filters[nf++] = (se_index_filter){optarg, eq + 1};
            break;
        }
        case 'a': all_chunks = 1; break;
        case 'i': input = optarg; break;
        case 'm': model = optarg; break;
        case 'j': json = 1; break;
        case 't': if (cli_opt_long("search", "-t/--threads", optarg, 1, 256, &threads)) return EXIT_USAGE; break;
        case 'q': cli_quiet = 1; break;
        case 'K': keyword = 1; break;
        case 'H': hybrid = 1; break;
        case 'A': if (cli_opt_float("search", "--alpha", optarg, 0, 1, &alpha)) return EXIT_USAGE; break;
        case 'F':
            if (!strcmp(optarg, "rrf")) fusion = SE_FUSION_RRF;
            else if (!strcmp(optarg, "score")) fusion = SE_FUSION_SCORE;
            else return cli_usage_error(search_index_usage, "search: --fusion takes rrf or score, not '%s'", optarg);
            break;
        case 'R': rerank = optarg; break;
        case 'N': if (cli_opt_long("search", "--rerank-top", optarg, 1, 100000, &rerank_top)) return EXIT_USAGE; break;
        case 'h': fputs(search_index_usage, stdout); return 0;
        default: fputs(search_index_usage, stderr); return EXIT_USAGE;
        }
    }
    if (keyword && hybrid) return cli_usage_error(search_index_usage, "search: --keyword and --hybrid exclude each other");
    if (!hybrid && (alpha >= 0 || fusion != SE_FUSION_DEFAULT))
        return cli_usage_error(search_index_usage, "search: --alpha and --fusion are for --hybrid");
    if (alpha >= 0 && fusion == SE_FUSION_RRF)
        return cli_usage_error(search_index_usage, "search: --alpha weighs --fusion score, not rrf");
    if (keyword && all_chunks)
        return cli_usage_error(search_index_usage, "search: --all-chunks is for vector search (--keyword ranks documents)");
    if (optind >= argc) return cli_usage_error(search_index_usage, "search: missing INDEX (or -m MODEL -c CORPUS)");
    if (optind + 1 >= argc && !input) return cli_usage_error(search_index_usage, "search: missing QUERY (or -i FILE)");
    const char *path = argv[optind++];
    docs qd = {0};
    if (input && read_lines(input, &qd)) return EXIT_RUNTIME;
    size_t nq = (size_t)(argc - optind) + qd.n;
    const char **qs = malloc(nq * sizeof *qs);
    for (size_t i = 0; i < (size_t)(argc - optind); i++) qs[i] = argv[optind + i];
    for (size_t i = 0; i < qd.n; i++) qs[argc - optind + i] = qd.v[i].text;
    se_error err = {0};
    se_index *idx = NULL;
    enc e = {0};
    se_model *rm = NULL;
    se_ctx *rctx = NULL;
    float *qe = NULL;
    se_index_hit *hits = NULL;
    search_hit *sh = NULL;
    const char **rdocs = NULL;
    size_t *rlens = NULL;
    se_hit *rhits = NULL;
    int rc = EXIT_RUNTIME;
    if (se_index_open(path, true, cli_log, NULL, &idx, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    se_index_info info;
    se_index_get_info(idx, &info, NULL);
    if (!keyword) {
        if (!model) model = info.params.model;
        if (!model || !model[0]) {
            fprintf(stderr, "sembed: %s: the index records no model; pass -m\n", path);
            goto done;
        }
        if (enc_open(&e, model, -1, threads)) goto done;
        if (e.dim != info.dim) {
            fprintf(stderr, "sembed: model %s gives %zu-dimensional vectors, the index holds %zu\n", model, e.dim, info.dim);
            goto done;
        }
        if (check_index_model(idx, &e, model)) goto done;
    }
    for (size_t f = 0; f < nf; f++) { /* a misspelt key would match nothing without a word */
        bool found = true;
        if (se_index_has_meta_key(idx, filters[f].key, &found, &err) == SE_OK && !found)
            fprintf(stderr, "sembed: warning: search: no document has a metadata field \"%s\", so --filter %s=%s matches "
                            "nothing\n", filters[f].key, filters[f].key, filters[f].value);
    }
    if (!keyword) {
        cli_unk unk;
        cli_unk_init(&unk, se_model_tokenizer(e.m));
        for (size_t q = 0; q < nq; q++) {
            char where[600];
            size_t na = (size_t)(argc - optind);
            if (q < na) snprintf(where, sizeof where, "query %zu", q + 1);
            else snprintf(where, sizeof where, "%s:%zu", strcmp(input, "-") ? input : "<stdin>", qd.v[q - na].line);
            cli_unk_check(&unk, qs[q], strlen(qs[q]), where);
        }
        cli_unk_finish(&unk, "queries");
    }
    if (rerank) {
        se_model_params mp = se_model_default_params();
        mp.log_fn = cli_log;
        se_model_info ri;
        se_ctx_params cp = se_ctx_default_params();
        if (threads > 0) cp.n_threads = (int32_t)threads;
        if (cli_model_load(rerank, &mp, &rm, &err) != SE_OK || se_model_get_info(rm, &ri, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s\n", err.msg);
            goto done;
        }
        if (!ri.head) {
            fprintf(stderr, "sembed: search: --rerank %s is an embedding model, not a cross-encoder\n", rerank);
            goto done;
        }
        if (ri.n_labels != 1) {
            fprintf(stderr, "sembed: search: --rerank %s has %d labels; reranking needs one score per pair\n", rerank,
                    ri.n_labels);
            goto done;
        }
        if (se_ctx_new(rm, &cp, &rctx, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s\n", err.msg);
            goto done;
        }
    }
    /* the first stage: k hits, or the rerank-top ones when more */
    size_t k1 = rerank && (size_t)rerank_top > (size_t)k ? (size_t)rerank_top : (size_t)k;
    if (!keyword) qe = malloc(nq * e.dim * sizeof *qe);
    hits = malloc(k1 * sizeof *hits);
    sh = calloc(k1, sizeof *sh);
    rdocs = malloc(k1 * sizeof *rdocs);
    rlens = malloc(k1 * sizeof *rlens);
    rhits = malloc(k1 * sizeof *rhits);
    if ((!keyword && !qe) || !hits || !sh || !rdocs || !rlens || !rhits) {
        fprintf(stderr, "sembed: search: out of memory\n");
        goto done;
    }
    if (!keyword && enc_texts(&e, qs, NULL, nq, qe, NULL, 0, 0)) goto done;
    se_index_search_params sp = se_index_search_default_params();
    sp.k = k1;
    sp.ef_search = (uint32_t)ef;
    sp.filters = filters;
    sp.n_filters = nf;
    sp.best_chunk_per_doc = !all_chunks;
    sp.mode = keyword ? SE_SEARCH_KEYWORD : hybrid ? SE_SEARCH_HYBRID : SE_SEARCH_VECTOR;
    sp.fusion = fusion;
    sp.alpha = alpha;
    for (size_t q = 0; q < nq; q++) {
        size_t nh;
        sp.text = qs[q];
        if (se_index_search(idx, keyword ? NULL : qe + q * e.dim, &sp, hits, &nh, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s\n", err.msg);
            goto done;
        }
        for (size_t h = 0; h < nh; h++) {
            sh[h].h = hits[h];
            if (se_index_fetch(idx, hits[h].doc, &sh[h].d, &err) != SE_OK) {
                fprintf(stderr, "sembed: %s\n", err.msg);
                for (size_t j = 0; j < h; j++) {
                    free(sh[j].chunk);
                    se_free(sh[j].d.id), se_free(sh[j].d.text), se_free(sh[j].d.meta), se_free(sh[j].d.title);
                }
                goto done;
            }
            size_t tl = strlen(sh[h].d.text);
            uint32_t s0 = hits[h].start < tl ? hits[h].start : (uint32_t)tl;
            uint32_t s1 = hits[h].end < tl ? hits[h].end : (uint32_t)tl;
            sh[h].chunk = strndup(sh[h].d.text + s0, s1 > s0 ? s1 - s0 : 0);
            sh[h].rerank = NAN;
        }
        int failed = 0;
        if (rerank && nh) { /* the first rerank_top hits, reordered by the cross-encoder */
            size_t nr = nh < (size_t)rerank_top ? nh : (size_t)rerank_top, nrh = 0;
            for (size_t h = 0; h < nr; h++) {
                rdocs[h] = sh[h].chunk ? sh[h].chunk : "";
                rlens[h] = strlen(rdocs[h]);
            }
            se_predict_params pp = se_predict_default_params();
            if (se_rank(rctx, qs[q], strlen(qs[q]), rdocs, rlens, nr, &pp, 0, rhits, &nrh, &err) != SE_OK) {
                fprintf(stderr, "sembed: search: --rerank: %s\n", err.msg);
                failed = 1;
            } else {
                for (size_t h = 0; h < nrh; h++) sh[rhits[h].corpus_id].rerank = rhits[h].score;
                /* stable: a merge of the order se_rank gave */
                search_hit *tmp = malloc(nr * sizeof *tmp);
                if (!tmp) {
                    fprintf(stderr, "sembed: search: out of memory\n");
                    failed = 1;
                } else {
                    for (size_t h = 0; h < nrh; h++) tmp[h] = sh[rhits[h].corpus_id];
                    memcpy(sh, tmp, nr * sizeof *tmp);
                    free(tmp);
                }
            }
        }
        size_t nshow = nh < (size_t)k ? nh : (size_t)k;
        if (!failed) {
            if (json) {
                fputs("{\"query\": ", stdout);
                cli_print_json_string(stdout, qs[q]);
                fputs(", \"results\": [", stdout);
            } else {
                printf("%s%s\n", q ? "\n" : "", qs[q]);
            }
            for (size_t h = 0; h < nshow; h++) {
                const search_hit *s = &sh[h];
                float score = rerank && !isnan(s->rerank) ? s->rerank : s->h.score;
                if (json) {
                    fputs(h ? ", {\"id\": " : "{\"id\": ", stdout);
                    cli_print_json_string(stdout, s->d.id);
                    fputs(", \"score\": ", stdout);
                    cli_print_float(stdout, score);
                    if (rerank) {
                        fputs(", \"first_stage_score\": ", stdout);
                        cli_print_float(stdout, s->h.score);
                    }
                    if (keyword || hybrid) {
                        fputs(", \"vector_score\": ", stdout);
                        print_score_or_null(s->h.vector_score);
                        fputs(", \"keyword_score\": ", stdout);
                        print_score_or_null(s->h.keyword_score);
                    }
                    if (s->d.title) {
                        fputs(", \"title\": ", stdout);
                        cli_print_json_string(stdout, s->d.title);
                    }
                    printf(", \"chunk\": %u, \"text\": ", s->h.chunk);
                    cli_print_json_string(stdout, s->chunk ? s->chunk : "");
                    printf(", \"metadata\": %s}", s->d.meta ? s->d.meta : "{}");
                } else {
                    printf("  %2zu. %.4f  [%s] %s%s%s%s\n", h + 1, (double)score, s->d.id, s->d.title ? s->d.title : "",
                           s->d.title ? ": " : "", s->h.chunk ? "... " : "", s->chunk ? s->chunk : "");
                }
            }
            if (json) fputs("]}\n", stdout);
        }
        for (size_t h = 0; h < nh; h++) {
            free(sh[h].chunk);
            se_free(sh[h].d.id);
            se_free(sh[h].d.text);
            se_free(sh[h].d.meta);
            se_free(sh[h].d.title);
        }
        if (failed) goto done;
    }
    rc = fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
done:
    se_index_close(idx, NULL);
    enc_close(&e);
    se_ctx_free(rctx);
    se_model_free(rm);
    free(qe);
    free(hits);
    free(sh);
    free(rdocs);
    free(rlens);
    free(rhits);
    free(qs);
    docs_free(&qd);
    return rc;
}

int cmd_search(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-c") || !strncmp(argv[i], "--corpus", 8)) return cmd_search_corpus(argc, argv);
    return search_index(argc, argv);
}

/* ==== cluster / dedup / mine ==== */

typedef struct coll_opts {
    const char *cmd; /* for messages */
    const char *model, *input, *output;
    int json, dtype;
    long threads;
} coll_opts;

/* The long options cluster, dedup and mine share (spliced into each
 * table). */
#define COLL_LONG_OPTS                                                                                           \
    {"model", required_argument, 0, 'm'}, {"input", required_argument, 0, 'i'},                                 \
        {"output", required_argument, 0, 'o'}, {"threshold", required_argument, 0, 'T'},                        \
        {"json", no_argument, 0, 'j'}, {"threads", required_argument, 0, 't'}, {"dtype", required_argument, 0, 'D'}, \
        {"quiet", no_argument, 0, 'q'}, {"progress", no_argument, 0, 'G'}, {"help", no_argument, 0, 'h'}

/* Handles an option the three commands share: 1 when c was one, 0 when
 * not, -1 on a bad value (message printed). --threshold goes to *thr,
 * within [lo, hi]. */
static int coll_option(int c, coll_opts *o, float *thr, float lo, float hi) {
    switch (c) {
    case 'm': o->model = optarg; return 1;
    case 'i': o->input = optarg; return 1;
    case 'o': o->output = optarg; return 1;
    case 'j': o->json = 1; return 1;
    case 't': return cli_opt_long(o->cmd, "-t/--threads", optarg, 1, 256, &o->threads) ? -1 : 1;
    case 'q': cli_quiet = 1; return 1;
    case 'G': cli_progress_force = 1; return 1;
    case 'D':
        o->dtype = cli_parse_dtype(optarg);
        if (o->dtype >= 0) return 1;
        fprintf(stderr, "sembed: --dtype must be f32, bf16 or int8\n");
        return -1;
    case 'T': return cli_opt_float(o->cmd, "--threshold", optarg, lo, hi, thr) ? -1 : 1;
    }
    return 0;
}

/* Reports what cluster, dedup or mine is missing (a usage error, 1) or
 * 0 when the options are complete. */
static int coll_missing(const coll_opts *o, int argc, char **argv, const char *usage) {
    if (!o->model) return cli_usage_error(usage, "%s: missing -m MODEL", o->cmd) != 0;
    if (!o->input) return cli_usage_error(usage, "%s: missing -i TEXTS (`-` for stdin)", o->cmd) != 0;
    if (optind != argc) return cli_usage_error(usage, "%s: unexpected argument '%s'", o->cmd, argv[optind]) != 0;
    return 0;
}

/* Loads the texts and their embeddings (normalised), warning about texts
 * of mostly unknown tokens; *unknown (may be NULL; malloc'd) flags them. */
static int embed_collection(const coll_opts *o, docs *d, enc *e, float **vec, bool **unknown) {
    if (read_lines(o->input, d)) return -1;
    if (enc_open(e, o->model, o->dtype, o->threads)) return -1;
    if (unknown && !(*unknown = calloc(d->n ? d->n : 1, sizeof **unknown))) {
        fprintf(stderr, "sembed: out of memory\n");
        return -1;
    }
    /* texts the model cannot read are named (dedup keeps them) */
    cli_unk unk;
    cli_unk_init(&unk, se_model_tokenizer(e->m));
    for (size_t i = 0; i < d->n; i++) {
        char where[600];
        snprintf(where, sizeof where, "%s:%zu", strcmp(o->input, "-") ? o->input : "<stdin>", d->v[i].line);
        bool u = cli_unk_check(&unk, d->v[i].text, strlen(d->v[i].text), where);
        if (unknown) (*unknown)[i] = u;
    }
    cli_unk_finish(&unk, "lines");
    *vec = malloc((d->n ? d->n : 1) * e->dim * sizeof **vec);
    const char **t = doc_texts(d);
    if (!*vec || !t) {
        free(t);
        fprintf(stderr, "sembed: out of memory\n");
        return -1;
    }
    cli_progress p;
    cli_progress_start(&p, "encoding", "texts", d->n);
    int rc = enc_texts(e, t, NULL, d->n, *vec, &p, 0, d->n);
    cli_progress_end(&p);
    free(t);
    return rc;
}

static const char cluster_usage[] =
    "usage: sembed cluster -m MODEL -i TEXTS [--threshold T --min-size N | --kmeans K] [options]\n"
    "\n"
    "Groups the lines of TEXTS. Default: sentence-transformers' community_detection (a\n"
    "community = a central text and every text with cosine >= T to it, at least N of them, no\n"
    "text in two communities; largest first). --kmeans K: k-means on the unit sphere instead.\n"
    "\n"
    "  -m, --model DIR        model folder\n"
    "  -i, --input FILE       one text per line\n"
    "      --threshold T      community threshold (default 0.75)\n"
    "      --min-size N       smallest community (default 2)\n"
    "      --kmeans K         k-means with K clusters (k-means++ seeding, --seed, default 42)\n"
    "      --json             JSONL: {\"cluster\", \"size\", \"members\": [{\"line\", \"text\"}]}\n"
    "  -o, --output FILE      output (default stdout; written atomically)\n"
    "  -t, --threads N / --dtype D / -q / --progress / -h\n";

static int cmd_cluster_impl(int argc, char **argv) {
    coll_opts o = {0};
    o.cmd = "cluster";
    o.dtype = -1;
    float thr = 0.75f;
    long min_size = 2, kmeans = 0, seed = 42;
    static const struct option opts[] = {COLL_LONG_OPTS, {"min-size", required_argument, 0, 'N'},
                                         {"kmeans", required_argument, 0, 'K'}, {"seed", required_argument, 0, 'S'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:o:t:qh", opts, NULL)) != -1) {
        int r = coll_option(c, &o, &thr, -1.0f, 1.0f);
        if (r < 0) return EXIT_USAGE;
        if (r) continue;
        switch (c) {
        case 'N': if (cli_opt_long("cluster", "--min-size", optarg, 1, LONG_MAX, &min_size)) return EXIT_USAGE; break;
        case 'K': if (cli_opt_long("cluster", "--kmeans", optarg, 1, 1 << 24, &kmeans)) return EXIT_USAGE; break;
        case 'S': if (cli_opt_long("cluster", "--seed", optarg, 0, LONG_MAX, &seed)) return EXIT_USAGE; break;
        case 'h': fputs(cluster_usage, stdout); return 0;
        default: fputs(cluster_usage, stderr); return EXIT_USAGE;
        }
    }
    if (coll_missing(&o, argc, argv, cluster_usage)) return EXIT_USAGE;
    docs d = {0};
    enc e = {0};
    float *vec = NULL, *cent = NULL;
    int32_t *members = NULL, *labels = NULL;
    size_t *starts = NULL, ncomm = 0;
    int rc = EXIT_RUNTIME;
    cli_out out = {0};
    char ebuf[512];
    se_error err = {0};
    if (embed_collection(&o, &d, &e, &vec, NULL)) goto done;
    if (kmeans) {
        if ((size_t)kmeans > d.n) {
            fprintf(stderr, "sembed: --kmeans %ld: only %zu texts\n", kmeans, d.n);
            goto done;
        }
        cent = malloc((size_t)kmeans * e.dim * sizeof *cent);
        labels = malloc(d.n * sizeof *labels);
        members = malloc(d.n * sizeof *members);
        starts = calloc((size_t)kmeans + 1, sizeof *starts);
        if (!cent || !labels || !members || !starts) goto done;
        double inertia;
        if (se_kmeans(vec, d.n, e.dim, (size_t)kmeans, true, (uint64_t)seed, 300, cent, labels, &inertia, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s\n", err.msg);
            goto done;
        }
        /* group by cluster, in input order */
        size_t *cnt = calloc((size_t)kmeans + 1, sizeof *cnt);
        for (size_t i = 0; i < d.n; i++) cnt[labels[i] + 1]++;
        for (long k = 0; k < kmeans; k++) cnt[k + 1] += cnt[k];
        memcpy(starts, cnt, ((size_t)kmeans + 1) * sizeof *starts);
        for (size_t i = 0; i < d.n; i++) members[cnt[labels[i]]++] = (int32_t)i;
        free(cnt);
        ncomm = (size_t)kmeans;
    } else {
        size_t *st = NULL;
        if (se_community_detection(vec, d.n, e.dim, thr, (size_t)min_size, &members, &st, &ncomm, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s\n", err.msg);
            goto done;
        }
        starts = malloc((ncomm + 1) * sizeof *starts);
        memcpy(starts, st, (ncomm + 1) * sizeof *starts);
        se_free(st);
    }
    if (cli_out_open(&out, o.output, ebuf, sizeof ebuf)) {
        fprintf(stderr, "sembed: %s\n", ebuf);
        goto done;
    }
    size_t clustered = 0;
    for (size_t k = 0; k < ncomm; k++) {
        size_t n = starts[k + 1] - starts[k];
        clustered += n;
        if (o.json) {
            fprintf(out.f, "{\"cluster\": %zu, \"size\": %zu, \"members\": [", k + 1, n);
            for (size_t t = 0; t < n; t++) {
                int32_t i = members[starts[k] + t];
                fprintf(out.f, "%s{\"line\": %zu, \"text\": ", t ? ", " : "", d.v[i].line);
                cli_print_json_string(out.f, d.v[i].text);
                fputc('}', out.f);
            }
            fputs("]}\n", out.f);
        } else {
            fprintf(out.f, "%scluster %zu (%zu texts)\n", k ? "\n" : "", k + 1, n);
            for (size_t t = 0; t < n; t++) {
                int32_t i = members[starts[k] + t];
                fprintf(out.f, "  %6zu  %s\n", d.v[i].line, d.v[i].text);
            }
        }
    }
    if (cli_out_commit(&out, ebuf, sizeof ebuf)) {
        fprintf(stderr, "sembed: %s\n", ebuf);
        goto done;
    }
    if (!cli_quiet) fprintf(stderr, "sembed: %zu clusters covering %zu of %zu texts\n", ncomm, clustered, d.n);
    rc = 0;
done:
    if (rc && out.f) cli_out_abort(&out);
    enc_close(&e);
    docs_free(&d);
    free(vec), free(cent), free(labels), free(starts);
    if (kmeans) free(members);
    else se_free(members);
    return rc;
}

int cmd_cluster(int argc, char **argv) { return cmd_cluster_impl(argc, argv); }

static const char dedup_usage[] =
    "usage: sembed dedup -m MODEL -i TEXTS [--threshold T] [-o KEPT] [--report FILE]\n"
    "\n"
    "Removes near-duplicates: each line is dropped when its cosine to an earlier kept line is\n"
    ">= T (the first occurrence is kept). The kept lines go to stdout or -o; --report writes\n"
    "JSONL {\"line\", \"duplicate_of\", \"score\", \"text\"} for every dropped line. Exact search.\n"
    "\n"
    "  -m, --model DIR       model folder\n"
    "  -i, --input FILE      one text per line\n"
    "      --threshold T     similarity at which two lines are duplicates (default 0.95)\n"
    "  -o, --output FILE     kept lines (default stdout; written atomically)\n"
    "      --report FILE     what went where (JSONL; written atomically)\n"
    "  -t, --threads N / --dtype D / -q / --progress / -h\n";

int cmd_dedup(int argc, char **argv) {
    coll_opts o = {0};
    o.cmd = "dedup";
    o.dtype = -1;
    float thr = 0.95f;
    const char *report = NULL;
    static const struct option opts[] = {COLL_LONG_OPTS, {"report", required_argument, 0, 'R'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:o:t:qh", opts, NULL)) != -1) {
        int r = coll_option(c, &o, &thr, -1.0f, 1.0f);
        if (r < 0) return EXIT_USAGE;
        if (r) continue;
        switch (c) {
        case 'R': report = optarg; break;
        case 'h': fputs(dedup_usage, stdout); return 0;
        default: fputs(dedup_usage, stderr); return EXIT_USAGE;
        }
    }
    if (coll_missing(&o, argc, argv, dedup_usage)) return EXIT_USAGE;
    docs d = {0};
    enc e = {0};
    float *vec = NULL;
    int rc = EXIT_RUNTIME;
    cli_out out = {0}, rep = {0};
    char ebuf[512];
    int32_t *kept = NULL, *dup_of = NULL, *kv_of = NULL;
    float *dup_score = NULL, *kv = NULL;
    bool *unknown = NULL;
    if (embed_collection(&o, &d, &e, &vec, &unknown)) goto done;
    kept = malloc((d.n ? d.n : 1) * sizeof *kept);
    dup_of = malloc((d.n ? d.n : 1) * sizeof *dup_of);
    dup_score = malloc((d.n ? d.n : 1) * sizeof *dup_score);
    kv_of = malloc((d.n ? d.n : 1) * sizeof *kv_of);
    kv = malloc((d.n ? d.n : 1) * e.dim * sizeof *kv);
    if (!kept || !dup_of || !dup_score || !kv || !kv_of) goto done;
    /* exact: each line against the lines kept so far. A line of mostly
     * unknown tokens is kept and left out of the comparisons: its vector
     * says nothing about it (every such line looks like every other). */
    size_t nk = 0, nv = 0, n_unk = 0;
    cli_progress p;
    cli_progress_start(&p, "deduplicating", "texts", d.n);
    for (size_t i = 0; i < d.n; i++) {
        se_hit h;
        se_error err = {0};
        dup_of[i] = -1;
        if (unknown[i]) {
            kept[nk++] = (int32_t)i;
            n_unk++;
        } else if (nv && se_semantic_search(SE_SIM_COSINE, vec + i * e.dim, 1, kv, nv, e.dim, 1, &h, &err) == SE_OK &&
                   h.score >= thr) {
            dup_of[i] = kv_of[h.corpus_id];
            dup_score[i] = h.score;
        } else {
            kept[nk++] = (int32_t)i;
            kv_of[nv] = (int32_t)i;
            memcpy(kv + nv * e.dim, vec + i * e.dim, e.dim * sizeof *kv);
            nv++;
        }
        if (i % 256 == 255 || i + 1 == d.n) cli_progress_update(&p, i + 1, -1);
    }
    cli_progress_end(&p);
    if (cli_out_open(&out, o.output, ebuf, sizeof ebuf) || (report && cli_out_open(&rep, report, ebuf, sizeof ebuf))) {
        fprintf(stderr, "sembed: %s\n", ebuf);
        goto done;
    }
    for (size_t t = 0; t < nk; t++) fprintf(out.f, "%s\n", d.v[kept[t]].text);
    if (report)
        for (size_t i = 0; i < d.n; i++) {
            if (unknown[i]) {
                fprintf(rep.f, "{\"line\": %zu, \"kept\": \"mostly unknown tokens: not compared\", \"text\": ", d.v[i].line);
                cli_print_json_string(rep.f, d.v[i].text);
                fputs("}\n", rep.f);
            }
            if (dup_of[i] < 0) continue;
            fprintf(rep.f, "{\"line\": %zu, \"duplicate_of\": %zu, \"score\": ", d.v[i].line, d.v[dup_of[i]].line);
            cli_print_float(rep.f, dup_score[i]);
            fputs(", \"text\": ", rep.f);
            cli_print_json_string(rep.f, d.v[i].text);
            fputs("}\n", rep.f);
        }
    if (cli_out_commit(&out, ebuf, sizeof ebuf) || (report && cli_out_commit(&rep, ebuf, sizeof ebuf))) {
        fprintf(stderr, "sembed: %s\n", ebuf);
        goto done;
    }
    if (!cli_quiet) {
        fprintf(stderr, "sembed: kept %zu of %zu lines (%zu near-duplicates removed", nk, d.n, d.n - nk);
        if (n_unk) fprintf(stderr, "; %zu line%s of mostly unknown tokens kept without comparing", n_unk, n_unk == 1 ? "" : "s");
        fputs(")\n", stderr);
    }
    rc = 0;
done:
    if (rc && out.f) cli_out_abort(&out);
    if (rc && rep.f) cli_out_abort(&rep);
    enc_close(&e);
    docs_free(&d);
    free(vec), free(kept), free(dup_of), free(dup_score), free(kv), free(kv_of), free(unknown);
    return rc;
}

static const char mine_usage[] =
    "usage: sembed mine -m MODEL -i TEXTS [--top-k N] [--max-pairs N] [--threshold T]\n"
    "\n"
    "Paraphrase mining (sentence-transformers' paraphrase_mining): for every line its top-k most\n"
    "similar other lines; prints the pairs best first as score<TAB>line_i<TAB>line_j<TAB>text_i\n"
    "<TAB>text_j (or JSONL with --json).\n"
    "\n"
    "  -m, --model DIR       model folder\n"
    "  -i, --input FILE      one text per line\n"
    "      --top-k N         neighbours per line (default 100)\n"
    "      --max-pairs N     at most N pairs (default 500000)\n"
    "      --threshold T     only pairs scoring >= T (default: all)\n"
    "      --json            JSONL {\"score\", \"i\", \"j\", \"text_i\", \"text_j\"} (lines 1-based)\n"
    "  -o, --output FILE     output (default stdout; written atomically)\n"
    "  -t, --threads N / --dtype D / -q / --progress / -h\n";

int cmd_mine(int argc, char **argv) {
    coll_opts o = {0};
    o.cmd = "mine";
    o.dtype = -1;
    long top_k = 100, max_pairs = 500000;
    float thr = -INFINITY;
    static const struct option opts[] = {COLL_LONG_OPTS, {"top-k", required_argument, 0, 'k'},
                                         {"max-pairs", required_argument, 0, 'P'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:o:k:t:qh", opts, NULL)) != -1) {
        int r = coll_option(c, &o, &thr, -1e30f, 1e30f);
        if (r < 0) return EXIT_USAGE;
        if (r) continue;
        switch (c) {
        case 'k': if (cli_opt_long("mine", "-k/--top-k", optarg, 1, 1 << 20, &top_k)) return EXIT_USAGE; break;
        case 'P': if (cli_opt_long("mine", "--max-pairs", optarg, 1, LONG_MAX, &max_pairs)) return EXIT_USAGE; break;
        case 'h': fputs(mine_usage, stdout); return 0;
        default: fputs(mine_usage, stderr); return EXIT_USAGE;
        }
    }
    if (coll_missing(&o, argc, argv, mine_usage)) return EXIT_USAGE;
    docs d = {0};
    enc e = {0};
    float *vec = NULL;
    se_pair *pairs = NULL;
    size_t np = 0;
    int rc = EXIT_RUNTIME;
    cli_out out = {0};
    char ebuf[512];
    se_error err = {0};
    if (embed_collection(&o, &d, &e, &vec, NULL)) goto done;
    se_similarity fn = e.info.similarity == SE_SIM_DOT ? SE_SIM_DOT : SE_SIM_COSINE;
    if (se_paraphrase_mining(fn, vec, d.n, e.dim, (size_t)top_k, (size_t)max_pairs, 0, &pairs, &np, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    if (cli_out_open(&out, o.output, ebuf, sizeof ebuf)) {
        fprintf(stderr, "sembed: %s\n", ebuf);
        goto done;
    }
    size_t shown = 0;
    for (size_t t = 0; t < np; t++) {
        if (pairs[t].score < thr) break;
        const doc *a = &d.v[pairs[t].i], *b = &d.v[pairs[t].j];
        if (o.json) {
            fputs("{\"score\": ", out.f);
            cli_print_float(out.f, pairs[t].score);
            fprintf(out.f, ", \"i\": %zu, \"j\": %zu, \"text_i\": ", a->line, b->line);
            cli_print_json_string(out.f, a->text);
            fputs(", \"text_j\": ", out.f);
            cli_print_json_string(out.f, b->text);
            fputs("}\n", out.f);
        } else {
            fprintf(out.f, "%.4f\t%zu\t%zu\t%s\t%s\n", (double)pairs[t].score, a->line, b->line, a->text, b->text);
        }
        shown++;
    }
    if (cli_out_commit(&out, ebuf, sizeof ebuf)) {
        fprintf(stderr, "sembed: %s\n", ebuf);
        goto done;
    }
    if (!cli_quiet) fprintf(stderr, "sembed: %zu pairs\n", shown);
    rc = 0;
done:
    if (rc && out.f) cli_out_abort(&out);
    enc_close(&e);
    docs_free(&d);
    free(vec);
    se_free(pairs);
    return rc;
}
