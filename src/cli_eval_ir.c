/*
 * cli_eval_ir.c - `sembed eval ir -m MODEL DIR`: retrieval metrics on a
 * BEIR-layout folder, as sentence-transformers' InformationRetrievalEvaluator
 * computes them (se_ir_evaluate: nDCG@10, MRR@10, Recall@{1,10,100},
 * MAP@100, Precision@{1,10}, Accuracy@{1,3,5,10}).
 *
 * The folder: corpus.jsonl ({"_id", "title", "text"}; a document is
 * (title + " " + text) stripped, as BEIR's SentenceBERT wrapper joins them),
 * queries.jsonl ({"_id", "text"}), and qrels.tsv or qrels/test.tsv
 * ("query-id corpus-id score", tab- or blank-separated, a header line;
 * TREC's four columns "qid 0 docid score" too). Each may be gzipped (.gz).
 *
 * Search: exact by default, as the evaluator does it: every document
 * embedded whole (truncated to max_seq_length), each query scored against
 * all of them with the model's similarity function, the top 100 kept. With
 * --index FILE: through a persistent index (built there when missing, with
 * the index defaults: HNSW, chunks of max_seq_length, best chunk per
 * document; reused when its model fingerprint matches), which also gives
 * --keyword and --hybrid. --rerank re-scores the first stage's top N with a
 * cross-encoder.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cli_io.h"
#include "cli_pull.h"
#include "sembed.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define TOP_K 100 /* the largest cut-off: what each query keeps */

int cmd_eval_ir(int argc, char **argv);

/* ==== reading the folder ==== */

/* A line reader over a plain or gzipped file, counting lines. */
typedef struct lreader {
    gzFile g;
    const char *path;
    size_t no;
    char *buf;
    size_t cap;
} lreader;

/* Reads the next line (without "\n" / "\r\n") into r->buf: 1 a line, 0 at
 * the end, -1 on a read error (printed). */
static int lr_next(lreader *r, size_t *len) {
    size_t n = 0;
    for (;;) {
        if (r->cap - n < 2) {
            size_t cap = r->cap ? 2 * r->cap : 65536;
            char *b = realloc(r->buf, cap);
            if (!b) {
                fprintf(stderr, "sembed: out of memory\n");
                return -1;
            }
            r->buf = b, r->cap = cap;
        }
        if (!gzgets(r->g, r->buf + n, (int)(r->cap - n))) {
            if (!gzeof(r->g)) {
                fprintf(stderr, "sembed: %s: read error (corrupt gzip?)\n", r->path);
                return -1;
            }
            if (!n) return 0;
            break;
        }
        n += strlen(r->buf + n);
        if (n && r->buf[n - 1] == '\n') break;
    }
    r->no++;
    while (n && (r->buf[n - 1] == '\n' || r->buf[n - 1] == '\r')) r->buf[--n] = 0;
    *len = n;
    return 1;
}

/* Finds DIR/name or DIR/name.gz; returns a malloc'd path or NULL. */
static char *find_file(const char *dir, const char *name) {
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) return strdup(p);
    snprintf(p, sizeof p, "%s/%s.gz", dir, name);
    if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) return strdup(p);
    return NULL;
}

/* Texts with ids, from corpus.jsonl or queries.jsonl; sorted is the index
 * order by id (strcmp), for lookups. */
typedef struct texts {
    char **id, **text;
    size_t n, cap;
    size_t *sorted;
    /* a corpus's (with_title) fields as given: the title (NULL when none)
     * and the text, and where that text starts in text[i] (the joined,
     * stripped string; negative when its leading blanks were stripped) */
    char **title, **body;
    long *body_off;
} texts;

static const texts *sort_texts;

/* qsort order of texts' indices by id. */
static int by_id(const void *a, const void *b) {
    return strcmp(sort_texts->id[*(const size_t *)a], sort_texts->id[*(const size_t *)b]);
}

/* The index of id in t, or SIZE_MAX. */
static size_t texts_find(const texts *t, const char *id) {
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->id[t->sorted[mid]], id);
        if (!c) return t->sorted[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return SIZE_MAX;
}

static void texts_free(texts *t) {
    for (size_t i = 0; i < t->n; i++) {
        free(t->id[i]), free(t->text[i]);
        if (t->title) free(t->title[i]), free(t->body[i]);
    }
    free(t->id), free(t->text), free(t->sorted), free(t->title), free(t->body), free(t->body_off);
}

/* A JSON id: a string, or an integer written as text; NULL otherwise. */
static char *json_id(json_t *v) {
    if (json_is_string(v)) return strdup(json_string_value(v));
    if (json_is_integer(v)) {
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)json_integer_value(v));
        return strdup(b);
    }
    return NULL;
}

/* Reads corpus.jsonl (with_title: title + " " + text, and each field as
 * given for the index's title and text) or queries.jsonl into t. Errors
 * name the file and line: bad JSON, a missing or non-text _id or text, a
 * duplicate _id. */
static int read_texts(const char *path, bool with_title, texts *t) {
    lreader r = {0};
    r.path = path;
    if (!(r.g = gzopen(path, "rb"))) {
        fprintf(stderr, "sembed: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    size_t len;
    int rc, bad = 0;
    while (!bad && (rc = lr_next(&r, &len)) == 1) {
        if (!len) continue;
        json_error_t je;
        json_t *j = json_loadb(r.buf, len, 0, &je);
        if (!j || !json_is_object(j)) {
            fprintf(stderr, "sembed: %s:%zu: %s\n", path, r.no, j ? "not a JSON object" : je.text);
            json_decref(j);
            bad = 1;
            break;
        }
        char *id = json_id(json_object_get(j, "_id"));
        json_t *tx = json_object_get(j, "text"), *ti = json_object_get(j, "title");
        if (!id || !json_is_string(tx) || (ti && !json_is_null(ti) && !json_is_string(ti))) {
            fprintf(stderr, "sembed: %s:%zu: %s\n", path, r.no,
                    !id ? "\"_id\" missing (a string or an integer)" : !json_is_string(tx) ? "\"text\" missing or not a string"
                                                                         : "\"title\" is not a string");
            free(id);
            json_decref(j);
            bad = 1;
            break;
        }
        const char *title = with_title && json_is_string(ti) ? json_string_value(ti) : "";
        const char *text = json_string_value(tx);
        /* (title + " " + text).strip(), as BEIR joins them */
        size_t lt = strlen(title), lx = strlen(text);
        char *s = malloc(lt + lx + 2);
        if (t->n == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 1024;
            t->id = realloc(t->id, t->cap * sizeof *t->id);
            t->text = realloc(t->text, t->cap * sizeof *t->text);
            if (with_title) {
                t->title = realloc(t->title, t->cap * sizeof *t->title);
                t->body = realloc(t->body, t->cap * sizeof *t->body);
                t->body_off = realloc(t->body_off, t->cap * sizeof *t->body_off);
            }
        }
        char *tcopy = with_title && lt ? strdup(title) : NULL, *bcopy = with_title ? strdup(text) : NULL;
        if (!s || !t->id || !t->text || (with_title && (!t->title || !t->body || !t->body_off || !bcopy || (lt && !tcopy)))) {
            free(tcopy), free(bcopy);
            fprintf(stderr, "sembed: out of memory\n");
            free(id), free(s);
            json_decref(j);
            bad = 1;
            break;
        }
        memcpy(s, title, lt);
        s[lt] = ' ';
        memcpy(s + lt + 1, text, lx + 1);
        char *a = s, *e = s + lt + 1 + lx;
        while (*a == ' ' || *a == '\t' || *a == '\n' || *a == '\r') a++;
        while (e > a && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) e--;
        if (with_title) t->title[t->n] = tcopy, t->body[t->n] = bcopy, t->body_off[t->n] = (long)(lt + 1) - (long)(a - s);
        memmove(s, a, (size_t)(e - a));
        s[e - a] = 0;
        t->id[t->n] = id, t->text[t->n] = s, t->n++;
        json_decref(j);
    }
    gzclose(r.g);
    free(r.buf);
    if (bad || rc < 0) return -1;
    if (!(t->sorted = malloc((t->n ? t->n : 1) * sizeof *t->sorted))) return -1;
    for (size_t i = 0; i < t->n; i++) t->sorted[i] = i;
    sort_texts = t;
    qsort(t->sorted, t->n, sizeof *t->sorted, by_id);
    for (size_t i = 1; i < t->n; i++)
        if (!strcmp(t->id[t->sorted[i]], t->id[t->sorted[i - 1]])) {
            size_t a = t->sorted[i - 1] < t->sorted[i] ? t->sorted[i] : t->sorted[i - 1];
            fprintf(stderr, "sembed: %s: _id '%s' appears twice (record %zu is the second)\n", path, t->id[a], a + 1);
            return -1;
        }
    return 0;
}

/* The judgements, with owned strings. */
typedef struct qrels {
    se_ir_qrel *v;
    size_t n, cap;
    size_t n_unknown_docs; /* judged documents missing from the corpus */
} qrels;

static void qrels_free(qrels *q) {
    for (size_t i = 0; i < q->n; i++) free((void *)(uintptr_t)q->v[i].query_id), free((void *)(uintptr_t)q->v[i].doc_id);
    free(q->v);
}

/* Reads the qrels: "qid docid score" or "qid 0 docid score" per line,
 * tabs or blanks between fields; a first line whose score is not a number
 * is the header. Errors name the line (a wrong field count, a score that is
 * not an integer, a query missing from queries.jsonl); judged documents
 * missing from the corpus are counted (a warning; BEIR tolerates them). */
static int read_qrels(const char *path, const texts *queries, const texts *corpus, qrels *q) {
    lreader r = {0};
    r.path = path;
    if (!(r.g = gzopen(path, "rb"))) {
        fprintf(stderr, "sembed: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    size_t len;
    int rc, bad = 0;
    const char *first_unknown = NULL;
    char first_unknown_buf[256] = "";
    while (!bad && (rc = lr_next(&r, &len)) == 1) {
        char *f[5];
        int nf = 0;
        for (char *p = strtok(r.buf, " \t"); p && nf < 5; p = strtok(NULL, " \t")) f[nf++] = p;
        if (!nf) continue;
        if (nf != 3 && nf != 4) {
            fprintf(stderr, "sembed: %s:%zu: expected query-id, corpus-id, score (3 fields, or TREC's 4), got %d\n", path,
                    r.no, nf);
            bad = 1;
            break;
        }
        const char *qid = f[0], *did = f[nf - 2], *sc = f[nf - 1];
        char *end;
        errno = 0;
        long s = strtol(sc, &end, 10);
        if (end == sc || *end || errno || s < INT32_MIN || s > INT32_MAX) {
            if (r.no == 1) continue; /* the header */
            fprintf(stderr, "sembed: %s:%zu: score '%s' is not an integer\n", path, r.no, sc);
            bad = 1;
            break;
        }
        if (texts_find(queries, qid) == SIZE_MAX) {
            fprintf(stderr, "sembed: %s:%zu: query '%s' is not in queries.jsonl\n", path, r.no, qid);
            bad = 1;
            break;
        }
        if (texts_find(corpus, did) == SIZE_MAX) {
            if (!q->n_unknown_docs++) snprintf(first_unknown_buf, sizeof first_unknown_buf, "%s:%zu: '%s'", path, r.no, did);
            first_unknown = first_unknown_buf;
        }
        if (q->n == q->cap) {
            q->cap = q->cap ? 2 * q->cap : 1024;
            se_ir_qrel *v = realloc(q->v, q->cap * sizeof *v);
            if (!v) {
                fprintf(stderr, "sembed: out of memory\n");
                bad = 1;
                break;
            }
            q->v = v;
        }
        q->v[q->n++] = (se_ir_qrel){strdup(qid), strdup(did), (int32_t)s};
    }
    gzclose(r.g);
    free(r.buf);
    if (bad || rc < 0) return -1;
    if (q->n_unknown_docs)
        fprintf(stderr, "sembed: warning: %s: %zu judged document%s not in the corpus (first: %s); they count as relevant "
                        "and are never retrieved\n", path, q->n_unknown_docs, q->n_unknown_docs == 1 ? " is" : "s are",
                first_unknown);
    return 0;
}

/* ==== search ==== */

/* One query's ranking: corpus indices and scores, best first. */
typedef struct ranking {
    size_t doc[TOP_K];
    float score[TOP_K];
    size_t n;
} ranking;

static const float *rank_sc;
static char *const *rank_ids;

/* Rank order over corpus indices: score descending, then id descending
 * (the tie rule se_ir_evaluate applies). */
static int by_score_id(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    if (rank_sc[x] != rank_sc[y]) return rank_sc[x] > rank_sc[y] ? -1 : 1;
    return -strcmp(rank_ids[x], rank_ids[y]);
}

/* Encodes texts[idx[i]] for i < n (idx NULL: texts[i]) in batches of 64
 * into out, with a progress line. */
static int encode_texts(se_ctx *ctx, char **all, const size_t *idx, size_t n, const se_encode_params *ep, size_t dim,
                        float *out, const char *what) {
    cli_progress p;
    cli_progress_start(&p, what, "texts", n);
    const char *batch[64];
    for (size_t i = 0; i < n; i += 64) {
        size_t k = n - i < 64 ? n - i : 64;
        for (size_t j = 0; j < k; j++) batch[j] = all[idx ? idx[i + j] : i + j];
        se_error err = {0};
        if (se_encode(ctx, batch, NULL, k, ep, out + i * dim, k * dim, NULL, &err) != SE_OK) {
            cli_progress_end(&p);
            fprintf(stderr, "sembed: %s\n", err.msg);
            return -1;
        }
        cli_progress_update(&p, i + k, -1);
        if (cli_stop) break;
    }
    cli_progress_end(&p);
    return cli_stop ? -1 : 0;
}

/* Exact search: the top TOP_K documents of each query by the model's
 * similarity, ties by id descending. de holds nv vectors; of_doc (NULL:
 * vector i is document i) gives each vector's document, whose score is its
 * best vector's (best chunk per document). */
static int search_exact(se_similarity sim, const texts *corpus, const float *de, size_t nv, const size_t *of_doc,
                        const float *qe, size_t nq, size_t dim, ranking *out) {
    size_t nd = corpus->n;
    float *sc = malloc((nd ? nd : 1) * sizeof *sc), *cs = of_doc ? malloc((nv ? nv : 1) * sizeof *cs) : NULL;
    size_t *idx = malloc((nd ? nd : 1) * sizeof *idx);
    if (!sc || !idx || (of_doc && !cs)) {
        free(sc), free(idx), free(cs);
        fprintf(stderr, "sembed: out of memory\n");
        return -1;
    }
    for (size_t q = 0; q < nq; q++) {
        se_error err = {0};
        if (nv && se_similarity_matrix(sim, qe + q * dim, 1, de, nv, dim, of_doc ? cs : sc, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s\n", err.msg);
            free(sc), free(idx), free(cs);
            return -1;
        }
        if (of_doc) {
            for (size_t i = 0; i < nd; i++) sc[i] = -INFINITY;
            for (size_t v = 0; v < nv; v++)
                if (cs[v] > sc[of_doc[v]]) sc[of_doc[v]] = cs[v];
        }
        for (size_t i = 0; i < nd; i++) idx[i] = i;
        rank_sc = sc, rank_ids = corpus->id;
        qsort(idx, nd, sizeof *idx, by_score_id);
        out[q].n = nd < TOP_K ? nd : TOP_K;
        for (size_t i = 0; i < out[q].n; i++) out[q].doc[i] = idx[i], out[q].score[i] = sc[idx[i]];
    }
    free(sc), free(idx), free(cs);
    return 0;
}

/* Splits every document as the index does (chunks of default_chunk
 * tokens, no overlap): *texts (free each, then the array) and *of_doc
 * (the document of each chunk), *n chunks. */
static size_t default_chunk(const se_model *m);
static int chunk_corpus(const se_model *m, const texts *corpus, char ***texts_out, size_t **of_doc, size_t *n) {
    const se_tokenizer *tok = se_model_tokenizer(m);
    size_t chunk = default_chunk(m), cap = corpus->n + 16, k = 0;
    char **t = malloc(cap * sizeof *t);
    size_t *od = malloc(cap * sizeof *od);
    int rc = t && od ? 0 : -1;
    for (size_t i = 0; i < corpus->n && !rc; i++) {
        uint32_t *spans = NULL;
        size_t nch = 0;
        se_error err = {0};
        const char *x = corpus->text[i];
        if (se_chunk_text(tok, x, strlen(x), chunk, 0, &spans, &nch, &err) != SE_OK) {
            fprintf(stderr, "sembed: corpus document '%s': %s\n", corpus->id[i], err.msg);
            rc = -1;
            break;
        }
        if (k + nch > cap) {
            cap = 2 * (k + nch);
            char **t2 = realloc(t, cap * sizeof *t);
            size_t *od2 = t2 ? realloc(od, cap * sizeof *od) : NULL;
            if (t2) t = t2;
            if (od2) od = od2;
            if (!t2 || !od2) rc = -1;
        }
        for (size_t c = 0; c < nch && !rc; c++, k++) {
            t[k] = strndup(x + spans[2 * c], spans[2 * c + 1] - spans[2 * c]);
            od[k] = i;
            if (!t[k]) rc = -1;
        }
        se_free(spans);
    }
    if (rc) {
        if (t)
            for (size_t i = 0; i < k; i++) free(t[i]);
        free(t), free(od);
        fprintf(stderr, "sembed: out of memory\n");
        return -1;
    }
    *texts_out = t, *of_doc = od, *n = k;
    return 0;
}

/* The chunk size index build uses by default: max_seq_length less the
 * special tokens the tokenizer adds. */
static size_t default_chunk(const se_model *m) {
    const se_tokenizer *tok = se_model_tokenizer(m);
    se_tokenize_params tp = se_tokenize_default_params(tok);
    int32_t ids[16];
    size_t n_special = 0, limit = se_tokenizer_n_tokens_max(tok);
    if (se_tokenize(tok, "", 0, NULL, 0, &tp, ids, NULL, 16, &n_special, NULL, NULL) != SE_OK) n_special = 0;
    return limit > n_special ? limit - n_special : 1;
}

/* Builds a new index at path from the corpus: documents (title + " " +
 * text) chunked at the default size, chunks embedded with the document
 * prompt, 256 documents per transaction; stored as BEIR's Elasticsearch
 * indexes them, the title and the text as two keyword fields, the chunks'
 * spans mapped into the text (a chunk's title part left out). The file is
 * removed when the build fails. */
static int build_index(const char *path, const char *model_dir, se_model *m, se_ctx *ctx, const texts *corpus,
                       const se_encode_params *ep, size_t dim) {
    se_error err = {0};
    char fp[SE_FINGERPRINT_MAX];
    if (se_model_fingerprint(m, fp, sizeof fp, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        return -1;
    }
    size_t chunk = default_chunk(m);
    se_index_params ip = se_index_default_params();
    ip.model = model_dir, ip.model_fingerprint = fp, ip.chunk_tokens = (uint32_t)chunk, ip.chunk_overlap = 0;
    se_index *idx = NULL;
    if (se_index_create(path, dim, &ip, &idx, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        return -1;
    }
    const se_tokenizer *tok = se_model_tokenizer(m);
    cli_progress p;
    cli_progress_start(&p, "indexing", "docs", corpus->n);
    int rc = 0;
    for (size_t i = 0; i < corpus->n && !rc; i += 256) {
        size_t b = corpus->n - i < 256 ? corpus->n - i : 256, total = 0;
        uint32_t *spans[256] = {0};
        size_t nch[256] = {0};
        se_index_doc docs[256];
        for (size_t j = 0; j < b && !rc; j++) {
            const char *t = corpus->text[i + j];
            if (se_chunk_text(tok, t, strlen(t), chunk, 0, &spans[j], &nch[j], &err) != SE_OK) {
                fprintf(stderr, "sembed: corpus document '%s': %s\n", corpus->id[i + j], err.msg);
                rc = -1;
            }
            total += nch[j];
        }
        char **ct = rc ? NULL : malloc(total * sizeof *ct);
        float *vec = rc ? NULL : malloc(total * dim * sizeof *vec);
        if (!rc && (!ct || !vec)) {
            fprintf(stderr, "sembed: out of memory\n");
            rc = -1;
        }
        for (size_t j = 0, c = 0; j < b && !rc; j++)
            for (size_t k = 0; k < nch[j]; k++, c++)
                ct[c] = strndup(corpus->text[i + j] + spans[j][2 * k], spans[j][2 * k + 1] - spans[j][2 * k]);
        for (size_t c = 0; c < total && !rc; c += 64) {
            size_t k = total - c < 64 ? total - c : 64;
            if (se_encode(ctx, (const char *const *)ct + c, NULL, k, ep, vec + c * dim, k * dim, NULL, &err) != SE_OK) {
                fprintf(stderr, "sembed: %s\n", err.msg);
                rc = -1;
            }
        }
        for (size_t j = 0, c = 0; j < b && !rc; j++) {
            long off = corpus->body_off[i + j], lb = (long)strlen(corpus->body[i + j]);
            for (size_t k = 0; nch[j] > 1 && k < 2 * nch[j]; k++) {
                long x = (long)spans[j][k] - off;
                spans[j][k] = (uint32_t)(x < 0 ? 0 : x > lb ? lb : x);
            }
            docs[j] = (se_index_doc){corpus->id[i + j], corpus->body[i + j], NULL, nch[j], nch[j] > 1 ? spans[j] : NULL,
                                     vec + c * dim, corpus->title[i + j]};
            c += nch[j];
        }
        if (!rc && se_index_add(idx, docs, b, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s\n", err.msg);
            rc = -1;
        }
        if (ct)
            for (size_t c = 0; c < total; c++) free(ct[c]);
        free(ct), free(vec);
        for (size_t j = 0; j < b; j++) se_free(spans[j]);
        if (!rc) cli_progress_update(&p, i + b, -1);
        if (cli_stop) rc = -1;
    }
    cli_progress_end(&p);
    if (se_index_close(idx, &err) != SE_OK && !rc) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        rc = -1;
    }
    if (rc) unlink(path);
    return rc;
}

/* What a search through the index asks for. */
typedef struct isearch {
    se_search_mode mode;
    se_fusion fusion;
    float alpha;
    long ef;
} isearch;

/* Searches the index for each query (text and vector; vector NULL in
 * keyword mode): the best chunk per document, TOP_K documents, mapped back
 * to corpus indices through their ids. A hit without the title its corpus
 * document has (an index built before index format 4, one keyword field)
 * is reported once, on stderr. */
static int search_index(se_index *idx, const isearch *s, const texts *corpus, char **qtext, const size_t *qidx,
                        const float *qe, size_t nq, size_t dim, ranking *out, double *ms) {
    se_index_hit hits[TOP_K];
    int untitled = 0;
    se_index_search_params sp = se_index_search_default_params();
    sp.k = TOP_K, sp.best_chunk_per_doc = true, sp.mode = s->mode, sp.fusion = s->fusion, sp.alpha = s->alpha;
    sp.ef_search = (uint32_t)s->ef;
    cli_progress p;
    cli_progress_start(&p, "searching", "queries", nq);
    for (size_t q = 0; q < nq; q++) {
        se_error err = {0};
        size_t n = 0;
        sp.text = qtext[qidx[q]];
        double t0 = cli_now();
        if (se_index_search(idx, s->mode == SE_SEARCH_KEYWORD ? NULL : qe + q * dim, &sp, hits, &n, &err) != SE_OK) {
            cli_progress_end(&p);
            fprintf(stderr, "sembed: query '%s': %s\n", qtext[qidx[q]], err.msg);
            return -1;
        }
        ms[q] = (cli_now() - t0) * 1e3;
        out[q].n = 0;
        for (size_t i = 0; i < n; i++) {
            se_index_doc_out d = {0};
            if (se_index_fetch(idx, hits[i].doc, &d, &err) != SE_OK) {
                cli_progress_end(&p);
                fprintf(stderr, "sembed: %s\n", err.msg);
                return -1;
            }
            size_t c = texts_find(corpus, d.id);
            if (c != SIZE_MAX && !d.title && corpus->title && corpus->title[c] && s->mode != SE_SEARCH_VECTOR && !untitled) {
                untitled = 1;
                fprintf(stderr, "sembed: warning: the index stores no title for document '%s' (built before index format 4): "
                                "its keyword side sees title and text as one field; delete the index to rebuild it with "
                                "two\n", d.id);
            }
            se_free(d.id), se_free(d.text), se_free(d.meta), se_free(d.title);
            if (c == SIZE_MAX) continue; /* not in this corpus (the index holds more) */
            out[q].doc[out[q].n] = c, out[q].score[out[q].n] = hits[i].score, out[q].n++;
        }
        cli_progress_update(&p, q + 1, -1);
    }
    cli_progress_end(&p);
    return 0;
}

/* Re-scores each query's first top documents with the cross-encoder; they
 * take the cross-encoder's scores, ranked; the documents below keep their
 * order with scores below the lowest of those (min - 1 - position), so the
 * ranking se_ir_evaluate makes from the scores is this one. */
static int rerank(se_ctx *ce, const texts *corpus, char **qtext, const size_t *qidx, size_t nq, size_t top,
                  ranking *r) {
    cli_progress p;
    cli_progress_start(&p, "reranking", "queries", nq);
    const char *docs[TOP_K];
    se_hit hits[TOP_K];
    for (size_t q = 0; q < nq; q++) {
        size_t n = r[q].n < top ? r[q].n : top, nh = 0;
        for (size_t i = 0; i < n; i++) docs[i] = corpus->text[r[q].doc[i]];
        se_error err = {0};
        const char *qt = qtext[qidx[q]];
        if (n && se_rank(ce, qt, strlen(qt), docs, NULL, n, NULL, 0, hits, &nh, &err) != SE_OK) {
            cli_progress_end(&p);
            fprintf(stderr, "sembed: rerank: %s\n", err.msg);
            return -1;
        }
        size_t old[TOP_K];
        memcpy(old, r[q].doc, n * sizeof *old);
        float lo = INFINITY;
        for (size_t i = 0; i < nh; i++) {
            r[q].doc[i] = old[hits[i].corpus_id], r[q].score[i] = hits[i].score;
            if (hits[i].score < lo) lo = hits[i].score;
        }
        for (size_t i = n; i < r[q].n; i++) r[q].score[i] = lo - 1.0f - (float)(i - n);
        cli_progress_update(&p, q + 1, -1);
    }
    cli_progress_end(&p);
    return 0;
}

/* ==== the command ==== */

static const char usage[] =
    "usage: sembed eval ir -m MODEL DIR [options]\n"
    "\n"
    "Retrieval metrics on a BEIR-layout folder, as sentence-transformers' InformationRetrievalEvaluator\n"
    "computes them: nDCG@10, MRR@10, Recall@{1,10,100}, MAP@100, Precision@{1,10}, Accuracy@{1,3,5,10}.\n"
    "DIR: corpus.jsonl (_id, title, text), queries.jsonl (_id, text), qrels.tsv or qrels/test.tsv\n"
    "(query-id corpus-id score, a header line; score > 0 relevant, graded gains for nDCG); each may\n"
    "be gzipped (.gz). Equal scores rank by document id, the larger first (as the evaluator's heap\n"
    "and trec_eval). Search is exact (every document embedded whole, truncated to max_seq_length)\n"
    "unless --index is given (--chunks: exact over the chunks an index would hold).\n"
    "\n"
    "  -m, --model DIR            embedding model folder\n"
    "      --index FILE           search through this index: built there (HNSW, chunks of\n"
    "                             max_seq_length, best chunk per document) when missing, reused when\n"
    "                             made by the same model; title + \" \" + text embedded, title and text\n"
    "                             keyword-indexed as two BM25 fields (BEIR's Elasticsearch layout)\n"
    "      --chunks               exact search over documents chunked as an index chunks them (max_seq_length\n"
    "                             tokens), a document scored by its best chunk\n"
    "      --keyword              BM25 only (needs --index)\n"
    "      --hybrid               BM25 and vectors fused (needs --index)\n"
    "      --fusion F             hybrid fusion: default, rrf or score\n"
    "      --alpha A              score fusion's vector weight in [0, 1]\n"
    "      --ef-search N          HNSW candidate list (default: the index's)\n"
    "      --rerank DIR           re-score the first stage's top documents with this cross-encoder\n"
    "      --rerank-top N         how many (default 100)\n"
    "      --query-prompt TEXT    prepend TEXT to queries (default: the model's prompt 'query', if any)\n"
    "      --query-prompt-name N  the model's prompt N for queries\n"
    "      --doc-prompt TEXT      prepend TEXT to documents (default: the model's prompt 'document',\n"
    "                             'passage' or 'corpus', the first it has)\n"
    "      --doc-prompt-name N    the model's prompt N for documents\n"
    "      --binary-ndcg          nDCG with gain 1 per relevant document (the evaluator's; graded\n"
    "                             qrels otherwise use their score as the gain, as BEIR)\n"
    "      --run FILE             write the top 100 per query as a TREC run (qid Q0 docid rank score tag)\n"
    "      --json                 one JSON object: metrics, counts, settings\n"
    "  -t, --threads N            threads\n"
    "      --dtype D              f32 (default), bf16 or int8\n"
    "  -q, --quiet                no progress on stderr\n"
    "  -h, --help                 this help\n";

/* Resolves the prompt of one side: an explicit text, else an explicit name
 * (which must exist), else the first of the candidate names the model has.
 * Returns 0, or 2 after printing a usage error. */
static int pick_prompt(const se_model *m, const char *text, const char *name, const char *const *cands,
                       se_encode_params *ep, const char **shown) {
    if (text && name) {
        fprintf(stderr, "sembed: eval ir: give a prompt's text or its name, not both\n");
        return EXIT_USAGE;
    }
    *shown = NULL;
    if (text) {
        ep->prompt = text, *shown = text;
        return 0;
    }
    if (name) {
        if (!se_model_prompt_find(m, name)) {
            fprintf(stderr, "sembed: eval ir: the model has no prompt named '%s'\n", name);
            return EXIT_USAGE;
        }
        ep->prompt_name = name, *shown = se_model_prompt_find(m, name);
        return 0;
    }
    for (size_t i = 0; cands[i]; i++)
        if (se_model_prompt_find(m, cands[i])) {
            ep->prompt_name = cands[i], *shown = se_model_prompt_find(m, cands[i]);
            return 0;
        }
    return 0;
}

/* Prints s as a JSON string, or null. */
static void json_str_or_null(const char *s) {
    if (s) cli_print_json_string(stdout, s);
    else fputs("null", stdout);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int cmd_eval_ir(int argc, char **argv) {
    const char *model = NULL, *index = NULL, *rerank_dir = NULL, *run_path = NULL;
    const char *qprompt = NULL, *qprompt_name = NULL, *dprompt = NULL, *dprompt_name = NULL;
    int json = 0, binary = 0, keyword = 0, hybrid = 0, chunks = 0;
    long threads = 0, rerank_top = 100, ef = 0;
    float alpha = -1.0f;
    const char *fusion_s = NULL;
    se_model_params mp = se_model_default_params();
    enum { O_INDEX = 256, O_KEYWORD, O_HYBRID, O_FUSION, O_ALPHA, O_EF, O_RERANK, O_RERANK_TOP, O_QP, O_QPN, O_DP, O_DPN,
           O_BIN, O_RUN, O_JSON, O_DTYPE, O_CHUNKS };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},       {"index", required_argument, 0, O_INDEX},
        {"keyword", no_argument, 0, O_KEYWORD},      {"hybrid", no_argument, 0, O_HYBRID},
        {"fusion", required_argument, 0, O_FUSION},  {"alpha", required_argument, 0, O_ALPHA},
        {"ef-search", required_argument, 0, O_EF},   {"rerank", required_argument, 0, O_RERANK},
        {"rerank-top", required_argument, 0, O_RERANK_TOP}, {"query-prompt", required_argument, 0, O_QP},
        {"query-prompt-name", required_argument, 0, O_QPN}, {"doc-prompt", required_argument, 0, O_DP},
        {"doc-prompt-name", required_argument, 0, O_DPN},   {"binary-ndcg", no_argument, 0, O_BIN},
        {"run", required_argument, 0, O_RUN},        {"json", no_argument, 0, O_JSON},
        {"dtype", required_argument, 0, O_DTYPE},    {"threads", required_argument, 0, 't'},
        {"chunks", no_argument, 0, O_CHUNKS},
        {"quiet", no_argument, 0, 'q'},              {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case O_INDEX: index = optarg; break;
        case O_KEYWORD: keyword = 1; break;
        case O_HYBRID: hybrid = 1; break;
        case O_FUSION: fusion_s = optarg; break;
        case O_ALPHA: if (cli_opt_float("eval ir", "--alpha", optarg, 0, 1, &alpha)) return EXIT_USAGE; break;
        case O_EF: if (cli_opt_long("eval ir", "--ef-search", optarg, 1, 100000, &ef)) return EXIT_USAGE; break;
        case O_RERANK: rerank_dir = optarg; break;
        case O_RERANK_TOP: if (cli_opt_long("eval ir", "--rerank-top", optarg, 1, TOP_K, &rerank_top)) return EXIT_USAGE; break;
        case O_QP: qprompt = optarg; break;
        case O_QPN: qprompt_name = optarg; break;
        case O_DP: dprompt = optarg; break;
        case O_DPN: dprompt_name = optarg; break;
        case O_BIN: binary = 1; break;
        case O_RUN: run_path = optarg; break;
        case O_JSON: json = 1; break;
        case O_CHUNKS: chunks = 1; break;
        case O_DTYPE:
            if (cli_parse_dtype(optarg) < 0) {
                fprintf(stderr, "sembed: eval ir: --dtype must be f32, bf16 or int8\n");
                return EXIT_USAGE;
            }
            mp.dtype = (se_dtype)cli_parse_dtype(optarg);
            break;
        case 't': if (cli_opt_long("eval ir", "-t/--threads", optarg, 1, 256, &threads)) return EXIT_USAGE; break;
        case 'q': cli_quiet = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    /* argv[optind] is "ir" (cmd_eval passes its arguments through) */
    if (optind < argc && !strcmp(argv[optind], "ir")) optind++;
    if (!model) return cli_usage_error(usage, "eval ir: missing -m MODEL");
    if (optind == argc) return cli_usage_error(usage, "eval ir: missing DIR");
    if (optind != argc - 1) return cli_usage_error(usage, "eval ir: unexpected argument '%s'", argv[optind + 1]);
    if (keyword && hybrid) return cli_usage_error(usage, "eval ir: give --keyword or --hybrid, not both");
    if ((keyword || hybrid) && !index)
        return cli_usage_error(usage, "eval ir: --%s needs --index FILE (the keyword index lives in the index file)",
                               keyword ? "keyword" : "hybrid");
    if ((fusion_s || alpha >= 0) && !hybrid) return cli_usage_error(usage, "eval ir: --fusion and --alpha go with --hybrid");
    se_fusion fusion = SE_FUSION_DEFAULT;
    if (fusion_s) {
        if (!strcmp(fusion_s, "rrf")) fusion = SE_FUSION_RRF;
        else if (!strcmp(fusion_s, "score")) fusion = SE_FUSION_SCORE;
        else if (strcmp(fusion_s, "default")) return cli_usage_error(usage, "eval ir: --fusion must be default, rrf or score");
    }
    if (ef && !index) return cli_usage_error(usage, "eval ir: --ef-search goes with --index");
    if (chunks && index) return cli_usage_error(usage, "eval ir: --chunks is for exact search (an index chunks anyway)");
    const char *dir = argv[optind];
    char *corpus_path = find_file(dir, "corpus.jsonl"), *queries_path = find_file(dir, "queries.jsonl");
    char *qrels_path = find_file(dir, "qrels.tsv");
    if (!qrels_path) qrels_path = find_file(dir, "qrels/test.tsv");
    int rc = EXIT_RUNTIME;
    texts corpus = {0}, queries = {0};
    qrels qr = {0};
    se_error err = {0};
    se_model *m = NULL, *cem = NULL;
    se_ctx *ctx = NULL, *cectx = NULL;
    se_index *idx = NULL;
    float *de = NULL, *qe = NULL;
    size_t *qidx = NULL, nq = 0;
    ranking *rk = NULL;
    se_ir_run *runs = NULL;
    se_ir_hit *hits = NULL;
    double *ms = NULL;
    bool built = false;
    char **chunk_texts = NULL;
    size_t *of_doc = NULL, n_chunks = 0, n_index_vectors = 0;
    if (!corpus_path || !queries_path || !qrels_path) {
        fprintf(stderr, "sembed: %s: no %s (a BEIR folder has corpus.jsonl, queries.jsonl and qrels.tsv or qrels/test.tsv)\n",
                dir, !corpus_path ? "corpus.jsonl" : !queries_path ? "queries.jsonl" : "qrels.tsv or qrels/test.tsv");
        goto done;
    }
    double t_start = cli_now();
    if (read_texts(corpus_path, true, &corpus) || read_texts(queries_path, false, &queries) ||
        read_qrels(qrels_path, &queries, &corpus, &qr))
        goto done;
    if (!corpus.n) {
        fprintf(stderr, "sembed: %s: no documents\n", corpus_path);
        goto done;
    }
    /* the queries evaluated: those with a relevant document, in queries.jsonl order */
    qidx = malloc((queries.n ? queries.n : 1) * sizeof *qidx);
    bool *want = calloc(queries.n ? queries.n : 1, 1);
    if (!qidx || !want) {
        free(want);
        goto done;
    }
    for (size_t i = 0; i < qr.n; i++)
        if (qr.v[i].score > 0) want[texts_find(&queries, qr.v[i].query_id)] = true;
    for (size_t i = 0; i < queries.n; i++)
        if (want[i]) qidx[nq++] = i;
    free(want);
    if (!nq) {
        fprintf(stderr, "sembed: %s: no query has a relevant document (score > 0)\n", qrels_path);
        goto done;
    }
    cli_catch_stop_signals();
    if (cli_model_load(model, &mp, &m, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    se_ctx_params cp = se_ctx_default_params();
    cp.n_threads = (int32_t)threads;
    if (se_ctx_new(m, &cp, &ctx, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    se_model_info info;
    se_model_get_info(m, &info, NULL);
    se_encode_params qep = se_encode_default_params(), dep = se_encode_default_params();
    static const char *const qc[] = {"query", NULL}, *const dc[] = {"document", "passage", "corpus", NULL};
    const char *qshown = NULL, *dshown = NULL;
    if (pick_prompt(m, qprompt, qprompt_name, qc, &qep, &qshown) || pick_prompt(m, dprompt, dprompt_name, dc, &dep, &dshown)) {
        rc = EXIT_USAGE;
        goto done;
    }
    { /* texts the model cannot read (Chinese through an English-only vocabulary) */
        cli_unk unk;
        char where[600];
        cli_unk_init(&unk, se_model_tokenizer(m));
        for (size_t i = 0; i < corpus.n; i++) {
            snprintf(where, sizeof where, "%s: document '%s'", corpus_path, corpus.id[i]);
            cli_unk_check(&unk, corpus.text[i], strlen(corpus.text[i]), where);
        }
        cli_unk_finish(&unk, "documents");
        cli_unk_init(&unk, se_model_tokenizer(m));
        for (size_t q = 0; q < nq; q++) {
            snprintf(where, sizeof where, "%s: query '%s'", queries_path, queries.id[qidx[q]]);
            cli_unk_check(&unk, queries.text[qidx[q]], strlen(queries.text[qidx[q]]), where);
        }
        cli_unk_finish(&unk, "queries");
    }
    size_t dim = se_encode_dim(m, NULL);
    rk = calloc(nq, sizeof *rk);
    ms = calloc(nq, sizeof *ms);
    qe = malloc(nq * dim * sizeof *qe);
    if (!rk || !ms || !qe) goto done;
    double t_enc = cli_now();
    if (!keyword && encode_texts(ctx, queries.text, qidx, nq, &qep, dim, qe, "encoding queries")) goto done;
    if (!index) {
        char **ct = corpus.text;
        size_t nv = corpus.n;
        if (chunks && chunk_corpus(m, &corpus, &chunk_texts, &of_doc, &n_chunks)) goto done;
        if (chunks) ct = chunk_texts, nv = n_chunks;
        if (!(de = malloc(nv * dim * sizeof *de))) goto done;
        if (encode_texts(ctx, ct, NULL, nv, &dep, dim, de, chunks ? "encoding corpus chunks" : "encoding corpus")) goto done;
        t_enc = cli_now() - t_enc;
        for (size_t q = 0; q < nq; q++) {
            double t0 = cli_now();
            if (search_exact(info.similarity, &corpus, de, nv, of_doc, qe + q * dim, 1, dim, rk + q)) goto done;
            ms[q] = (cli_now() - t0) * 1e3;
        }
    } else {
        struct stat st;
        if (stat(index, &st) != 0) {
            if (build_index(index, model, m, ctx, &corpus, &dep, dim)) goto done;
            built = true;
        }
        /* writable for keyword and hybrid search: an index made before the keyword
         * index existed is upgraded in place by a writable open */
        if (se_index_open(index, !(keyword || hybrid), cli_log, NULL, &idx, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s\n", err.msg);
            goto done;
        }
        char fp[SE_FINGERPRINT_MAX];
        se_index_info ii;
        if (se_model_fingerprint(m, fp, sizeof fp, &err) != SE_OK || se_index_check_model(idx, fp, cli_log, NULL, &err) != SE_OK ||
            se_index_get_info(idx, &ii, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s: %s\n", index, err.msg);
            goto done;
        }
        n_index_vectors = ii.n_vectors;
        if (ii.n_docs != corpus.n && !cli_quiet)
            fprintf(stderr, "sembed: warning: %s holds %zu documents, the corpus %zu (remove the index to rebuild it)\n", index,
                    ii.n_docs, corpus.n);
        t_enc = cli_now() - t_enc;
        isearch s = {keyword ? SE_SEARCH_KEYWORD : hybrid ? SE_SEARCH_HYBRID : SE_SEARCH_VECTOR, fusion, alpha, ef};
        if (search_index(idx, &s, &corpus, queries.text, qidx, qe, nq, dim, rk, ms)) goto done;
    }
    if (rerank_dir) {
        if (cli_model_load(rerank_dir, NULL, &cem, &err) != SE_OK || se_ctx_new(cem, &cp, &cectx, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s\n", err.msg);
            goto done;
        }
        if (rerank(cectx, &corpus, queries.text, qidx, nq, (size_t)rerank_top, rk)) goto done;
    }
    /* the metrics */
    runs = calloc(nq, sizeof *runs);
    hits = calloc(nq * TOP_K, sizeof *hits);
    if (!runs || !hits) goto done;
    for (size_t q = 0; q < nq; q++) {
        for (size_t i = 0; i < rk[q].n; i++)
            hits[q * TOP_K + i] = (se_ir_hit){corpus.id[rk[q].doc[i]], rk[q].score[i]};
        runs[q] = (se_ir_run){queries.id[qidx[q]], hits + q * TOP_K, rk[q].n};
    }
    se_ir_params irp = se_ir_default_params();
    irp.binary_ndcg = binary;
    se_ir_metrics mt;
    if (se_ir_evaluate(runs, nq, qr.v, qr.n, &irp, &mt, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s: %s\n", qrels_path, err.msg);
        goto done;
    }
    if (run_path) {
        cli_out o;
        char eb[512];
        if (cli_out_open(&o, run_path, eb, sizeof eb)) {
            fprintf(stderr, "sembed: %s\n", eb);
            goto done;
        }
        for (size_t q = 0; q < nq; q++)
            for (size_t i = 0; i < rk[q].n; i++) {
                fprintf(o.f, "%s Q0 %s %zu ", queries.id[qidx[q]], corpus.id[rk[q].doc[i]], i + 1);
                cli_print_float(o.f, rk[q].score[i]);
                fputs(" sembed\n", o.f);
            }
        if (cli_out_commit(&o, eb, sizeof eb)) {
            fprintf(stderr, "sembed: %s\n", eb);
            goto done;
        }
    }
    qsort(ms, nq, sizeof *ms, cmp_double);
    double p50 = ms[nq / 2], total = cli_now() - t_start;
    const char *search_s = keyword ? "keyword" : hybrid ? "hybrid" : "vector";
    const char *fusion_name = fusion == SE_FUSION_RRF ? "rrf" : fusion == SE_FUSION_SCORE ? "score" : "default";
    if (json) {
        printf("{\"task\": \"ir\", \"dir\": ");
        cli_print_json_string(stdout, dir);
        printf(", \"model\": ");
        cli_print_json_string(stdout, model);
        printf(", \"search\": \"%s\", \"through\": \"%s\", \"fusion\": ", search_s, index ? "index" : "exact");
        json_str_or_null(hybrid ? fusion_name : NULL);
        printf(", \"alpha\": ");
        if (hybrid && alpha >= 0) printf("%.4f", (double)alpha);
        else fputs("null", stdout);
        printf(", \"chunks\": %s, \"vectors\": %zu, \"index\": ", chunks || index ? "true" : "false",
               index ? n_index_vectors : chunks ? n_chunks : corpus.n);
        json_str_or_null(index);
        printf(", \"index_built\": %s, \"rerank\": ", built ? "true" : "false");
        json_str_or_null(rerank_dir);
        printf(", \"rerank_top\": ");
        if (rerank_dir) printf("%ld", rerank_top);
        else fputs("null", stdout);
        printf(", \"query_prompt\": ");
        json_str_or_null(qshown);
        printf(", \"doc_prompt\": ");
        json_str_or_null(dshown);
        printf(", \"ndcg_gain\": \"%s\", \"dtype\": \"%s\", \"docs\": %zu, \"queries\": %zu, \"queries_file\": %zu, "
               "\"qrels\": %zu, \"relevant\": %zu, \"qrels_unknown_docs\": %zu, ",
               binary ? "binary" : "graded", cli_dtype_name(mp.dtype), corpus.n, mt.n_queries, queries.n, qr.n,
               mt.n_relevant, qr.n_unknown_docs);
        printf("\"metrics\": {\"ndcg@10\": %.6f, \"mrr@10\": %.6f, \"recall@1\": %.6f, \"recall@10\": %.6f, "
               "\"recall@100\": %.6f, \"map@100\": %.6f, \"precision@1\": %.6f, \"precision@10\": %.6f, "
               "\"accuracy@1\": %.6f, \"accuracy@3\": %.6f, \"accuracy@5\": %.6f, \"accuracy@10\": %.6f}, ",
               mt.ndcg_at_10, mt.mrr_at_10, mt.recall_at_1, mt.recall_at_10, mt.recall_at_100, mt.map_at_100,
               mt.precision_at_1, mt.precision_at_10, mt.accuracy_at_1, mt.accuracy_at_3, mt.accuracy_at_5,
               mt.accuracy_at_10);
        printf("\"search_ms_p50\": %.4f, \"seconds\": %.2f}\n", p50, total);
    } else {
        printf("ir %s (%zu queries, %zu documents; %s search%s%s%s)\n", dir, mt.n_queries, corpus.n, search_s,
               index ? " through " : ", exact", index ? index : "", rerank_dir ? ", reranked" : "");
        printf("  nDCG@10      %.4f\n  MRR@10       %.4f\n  Recall@1     %.4f\n  Recall@10    %.4f\n"
               "  Recall@100   %.4f\n  MAP@100      %.4f\n  Precision@1  %.4f\n  Precision@10 %.4f\n"
               "  Accuracy@1   %.4f\n  Accuracy@3   %.4f\n  Accuracy@5   %.4f\n  Accuracy@10  %.4f\n",
               mt.ndcg_at_10, mt.mrr_at_10, mt.recall_at_1, mt.recall_at_10, mt.recall_at_100, mt.map_at_100,
               mt.precision_at_1, mt.precision_at_10, mt.accuracy_at_1, mt.accuracy_at_3, mt.accuracy_at_5,
               mt.accuracy_at_10);
    }
    (void)t_enc;
    rc = fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
done:
    if (cli_stop) {
        fprintf(stderr, "sembed: stopped by %s\n", cli_stop == 15 ? "SIGTERM" : "SIGINT");
        rc = 128 + cli_stop;
    }
    free(corpus_path), free(queries_path), free(qrels_path);
    texts_free(&corpus), texts_free(&queries), qrels_free(&qr);
    free(de), free(qe), free(qidx), free(rk), free(runs), free(hits), free(ms);
    for (size_t i = 0; i < n_chunks; i++) free(chunk_texts[i]);
    free(chunk_texts), free(of_doc);
    se_index_close(idx, NULL);
    se_ctx_free(cectx), se_model_free(cem);
    se_ctx_free(ctx), se_model_free(m);
    return rc;
}
