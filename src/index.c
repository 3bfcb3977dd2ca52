/*
 * index.c - se_index: the persistent document + vector index (sembed.h).
 *
 * Storage is one SQLite database (synchronous=FULL):
 *   meta(key, value)        format marker, dimension, kind, metric, HNSW
 *                           params, model, model_fingerprint (absent in
 *                           files made before fingerprints), chunking
 *   docs(id, ext_id, text, meta, title)
 *                           title (format 4) NULL when none
 *   chunks(id AUTOINCREMENT, doc, chunk, start, end, vec, crc)
 *                           vectors as stored in memory (float32 LE) and
 *                           their CRC-32
 *   graph(id = 1, blob)     the HNSW snapshot (vec_index.c format, CRC'd)
 *   fts                     (format 2) the keyword index: FTS5 over
 *                           docs.text, external content keyed by docs.id,
 *                           tokenised by index_fts.c's "sembed" tokenizer
 *                           (format 3: with UAX #29 words, tokenize=
 *                           'sembed 2'; format 4: two columns, title and
 *                           text); kept in step with docs in the same
 *                           transactions
 * plus PRAGMA application_id 'SEMB' and user_version = format version.
 *
 * Format 1 (before the keyword index) is still read: a writable open
 * upgrades it in place (the FTS table built from the stored texts and the
 * version bumped in one transaction); a read-only open searches its
 * vectors and refuses keyword and hybrid searches with how to upgrade.
 * Format 2 (keyword index of unicode61's pieces) is read as it is, and a
 * writable open rebuilds its FTS table with format 3's tokens the same way.
 * Format 3 (no titles) is read as it is (its documents have no title); a
 * writable open adds docs.title and rebuilds the FTS table with the title
 * column the same way (format 4).
 *
 * Why SQLite: documents, metadata and vectors need transactional updates
 * that survive a kill at any instant, lookups by external id, and metadata
 * filters; SQLite gives all of that with a journal that has been tested
 * for crash safety far beyond what a hand-written log would be, in a
 * single file. The search itself runs in memory (vec_index.c); SQLite is
 * touched by searches only to evaluate metadata filters.
 *
 * Journal: at rest the file is in rollback (DELETE) journal mode, so it is
 * one file and a read-only open writes nothing at all (no -wal or -shm, so
 * it works on a read-only mount or in a folder the user cannot write). A
 * writable open switches to WAL (readers keep reading while it commits) and
 * its close switches back, which checkpoints and removes the side files,
 * when it is the only connection; otherwise the last writer to close does.
 * Files left in WAL mode (by older versions, or a killed writer) are opened
 * read-only as immutable when their folder is not writable and no -wal
 * file exists, i.e. when nothing can be in the WAL and no writer can run.
 *
 * Before SQLite sees a file at all, its 100-byte header is read with
 * read(2): a file that is not an SQLite database, or one whose application
 * id is not ours, is refused without being touched.
 *
 * Consistency: rows are the truth. The graph snapshot is written by
 * se_index_flush; on open it is loaded and reconciled with the rows
 * (chunks missing from it are inserted, vanished ones removed), so a
 * snapshot older than the last commit (a kill between commit and flush)
 * costs time, never data. A damaged snapshot is rebuilt.
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "alloc.h"
#include "error.h"
#include "index_bm25.h"
#include "index_fts.h"
#include "vec_index.h"

#define IDX_APP_ID 0x53454D42 /* 'SEMB' */
#define IDX_FORMAT 4     /* written by this sembed */
#define IDX_FORMAT_MIN 1 /* the oldest read (and upgraded when writable) */

struct se_index {
    sqlite3 *db;
    char *path;
    bool read_only;
    size_t dim;
    se_index_params p;
    char *model;
    char *fingerprint; /* meta.model_fingerprint, NULL when none recorded (atomic: set by check_model) */
    char *fp_old;      /* a malformed record replaced by se_index_check_model */
    se_vx *vx;
    bool dirty; /* the snapshot is behind the rows */
    int format;   /* the file's format version (1: no keyword index yet; < 4: no docs.title) */
    bool has_fts; /* the keyword index exists and its tokenizer is registered */
    fts5_api *fts; /* the connection's FTS5 (NULL without) */
    sqlite3_stmt *kw_q;    /* the keyword search without filters, kept (db_lock) */
    sqlite3_stmt *chunk_q; /* first_chunk's query, kept (db_lock) */
    se_bm25 *bm25;         /* the keyword ranking, built at the first keyword search (db_lock) */
    bool bm25_failed;      /* could not be built (out of memory): FTS5's bm25() ranks instead */
    se_log_fn log_fn;      /* se_index_open's, for the keyword scorer's fallback */
    void *log_user;
    pthread_mutex_t db_lock;    /* every use of db */
    pthread_mutex_t write_lock; /* add / delete / flush */
};

se_index_params se_index_default_params(void) {
    se_index_params p = {0};
    p.kind = SE_INDEX_HNSW;
    p.metric = SE_METRIC_COSINE;
    p.M = 16;
    p.ef_construction = 200;
    p.ef_search = 64;
    p.seed = 42;
    return p;
}

se_index_search_params se_index_search_default_params(void) {
    se_index_search_params p = {0};
    p.k = 10;
    p.best_chunk_per_doc = true;
    p.alpha = -1.0f;
    return p;
}

/* Formats an SQLite failure with the index path. Returns SE_E_IO (or
 * SE_E_FORMAT for a file that is not a database / is damaged). */
static se_status db_err(se_index *idx, se_error *err, const char *what) {
    int ec = sqlite3_errcode(idx->db);
    se_status st = (ec == SQLITE_NOTADB || ec == SQLITE_CORRUPT) ? SE_E_FORMAT : SE_E_IO;
    return se_err(err, st, "%s: %s: %s", idx->path, what, sqlite3_errmsg(idx->db));
}

static int exec(se_index *idx, const char *sql) { return sqlite3_exec(idx->db, sql, NULL, NULL, NULL); }

static int meta_put(se_index *idx, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int meta_put(se_index *idx, const char *key, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(idx->db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", -1, &st, NULL)) return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, buf, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    return rc;
}

/* Reads meta[key] into a new string (NULL when absent). */
static char *meta_get(se_index *idx, const char *key) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(idx->db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL)) return NULL;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    char *r = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) r = se_strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return r;
}

static const char *kind_name(se_index_kind k) { return k == SE_INDEX_FLAT ? "flat" : "hnsw"; }
static const char *metric_name(se_metric m) { return m == SE_METRIC_DOT ? "dot" : m == SE_METRIC_L2 ? "l2" : "cosine"; }

/* Puts a writable connection's file back in rollback journal mode: this
 * checkpoints the WAL and deletes the -wal and -shm files. It fails (and
 * the file stays in WAL mode) while other connections have the file open;
 * the last writer to close then does it. The busy timeout is short
 * because waiting cannot help: other WAL connections hold their shared
 * lock as long as they are open. */
static void journal_at_rest(se_index *idx) {
    if (!idx->db || idx->read_only) return;
    sqlite3_busy_timeout(idx->db, 50);
    sqlite3_exec(idx->db, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
}

/* Closes the database (back to rollback mode when writable) and frees
 * everything the handle owns. */
static void idx_free(se_index *idx) {
    if (!idx) return;
    sqlite3_finalize(idx->kw_q);
    sqlite3_finalize(idx->chunk_q);
    se_bm25_free(idx->bm25);
    journal_at_rest(idx);
    if (idx->db) sqlite3_close_v2(idx->db);
    se_vx_free(idx->vx);
    se_free(idx->path);
    se_free(idx->model);
    se_free(idx->fingerprint);
    se_free(idx->fp_old);
    pthread_mutex_destroy(&idx->db_lock);
    pthread_mutex_destroy(&idx->write_lock);
    se_free(idx);
}

static se_index *idx_new(const char *path) {
    se_index *idx = se_calloc(1, sizeof *idx);
    if (!idx) return NULL;
    idx->path = se_strdup(path);
    if (!idx->path) {
        se_free(idx);
        return NULL;
    }
    pthread_mutex_init(&idx->db_lock, NULL);
    pthread_mutex_init(&idx->write_lock, NULL);
    return idx;
}

/* A writable connection works in WAL mode (searches in other processes go
 * on while it commits), synchronous=FULL. If another connection is reading
 * in rollback mode the switch can fail; the connection then stays in
 * rollback mode, which is as safe, only blocks readers while committing. */
static void writer_pragmas(se_index *idx) {
    exec(idx, "PRAGMA journal_mode=WAL");
    exec(idx, "PRAGMA synchronous=FULL");
}

/* ==== Model fingerprints ==== */

#define FP_FIELDS_MAX 16

/* A fingerprint split into fields: key[i]=val[i], pointing into buf. */
typedef struct fp_fields {
    char buf[SE_FINGERPRINT_MAX];
    const char *key[FP_FIELDS_MAX], *val[FP_FIELDS_MAX];
    size_t n;
} fp_fields;

/* Splits a fingerprint ("arch=bert dim=384 ...", see se_model_fingerprint)
 * into fields. Returns -1 when it is too long, has a token that is not
 * key=value with both non-empty, repeats a key, or lacks arch or dim. */
static int fp_parse(const char *fp, fp_fields *f) {
    f->n = 0;
    if (!fp || strlen(fp) >= sizeof f->buf) return -1;
    strcpy(f->buf, fp);
    bool arch = false, dim = false;
    for (char *save = NULL, *t = strtok_r(f->buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(t, '=');
        if (!eq || eq == t || !eq[1] || f->n == FP_FIELDS_MAX) return -1;
        *eq = 0;
        for (size_t i = 0; i < f->n; i++)
            if (!strcmp(f->key[i], t)) return -1;
        f->key[f->n] = t;
        f->val[f->n++] = eq + 1;
        arch |= !strcmp(t, "arch");
        dim |= !strcmp(t, "dim");
    }
    return arch && dim ? 0 : -1;
}

/* The value of key in f, or NULL. */
static const char *fp_get(const fp_fields *f, const char *key) {
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->key[i], key)) return f->val[i];
    return NULL;
}

static const char *SCHEMA =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE docs(id INTEGER PRIMARY KEY, ext_id TEXT NOT NULL UNIQUE, text TEXT NOT NULL, meta TEXT, title TEXT);"
    "CREATE TABLE chunks(id INTEGER PRIMARY KEY AUTOINCREMENT, doc INTEGER NOT NULL, chunk INTEGER NOT NULL,"
    " start INTEGER NOT NULL, end INTEGER NOT NULL, vec BLOB NOT NULL, crc INTEGER NOT NULL);"
    "CREATE INDEX chunks_doc ON chunks(doc);"
    "CREATE TABLE graph(id INTEGER PRIMARY KEY CHECK (id = 1), blob BLOB NOT NULL);" SE_FTS_SCHEMA ";";

/* Creates the index file: schema and meta under a temporary name, renamed
 * into place, then opened. */
se_status se_index_create(const char *path, size_t dim, const se_index_params *params, se_index **out,
                          se_error *err) {
    if (!path || !out) return se_err(err, SE_E_INVALID, "se_index_create: NULL argument");
    *out = NULL;
    se_index_params p = params ? *params : se_index_default_params();
    se_vx_params vp = {p.kind, p.metric, p.M, p.ef_construction, p.seed};
    se_vx *probe;
    se_status st = se_vx_new(dim, &vp, &probe, err); /* validates the params */
    if (st) return st;
    se_vx_free(probe);
    if (p.ef_search < 1 || p.ef_search > 100000)
        return se_err(err, SE_E_RANGE, "index: ef_search = %u (allowed 1..100000)", p.ef_search);
    fp_fields ff;
    if (p.model_fingerprint && fp_parse(p.model_fingerprint, &ff))
        return se_err(err, SE_E_INVALID, "index: model_fingerprint '%.100s' is malformed (want \"arch=... dim=... ...\")",
                      p.model_fingerprint);
    struct stat sb;
    if (stat(path, &sb) == 0) return se_err(err, SE_E_IO, "%s: already exists (will not overwrite an index)", path);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return se_err(err, SE_E_INVALID, "%s: path too long", path);
    unlink(tmp);
    se_index *idx = idx_new(tmp);
    if (!idx) return se_err(err, SE_E_NOMEM, "out of memory");
    if (sqlite3_open_v2(tmp, &idx->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL)) {
        st = db_err(idx, err, "cannot create");
        goto fail;
    }
    if ((st = se_fts_register(idx->db, path, NULL, err))) goto fail; /* the schema's fts uses it */
    /* 16 KiB pages: a 512-dim float32 vector row (~2 KiB) would leave half of
     * every 4 KiB page empty */
    exec(idx, "PRAGMA page_size=16384");
    exec(idx, "PRAGMA journal_mode=DELETE");
    exec(idx, "PRAGMA synchronous=FULL");
    char pragma[128];
    snprintf(pragma, sizeof pragma, "PRAGMA application_id=%d; PRAGMA user_version=%d", IDX_APP_ID, IDX_FORMAT);
    if (exec(idx, "BEGIN") || exec(idx, pragma) || exec(idx, SCHEMA) ||
        meta_put(idx, "format", "sembed-index") || meta_put(idx, "version", "%d", IDX_FORMAT) ||
        meta_put(idx, "dim", "%zu", dim) || meta_put(idx, "kind", "%s", kind_name(p.kind)) ||
        meta_put(idx, "metric", "%s", metric_name(p.metric)) || meta_put(idx, "M", "%u", p.M) ||
        meta_put(idx, "ef_construction", "%u", p.ef_construction) || meta_put(idx, "ef_search", "%u", p.ef_search) ||
        meta_put(idx, "seed", "%llu", (unsigned long long)p.seed) ||
        meta_put(idx, "model", "%s", p.model ? p.model : "") || meta_put(idx, "chunk_tokens", "%u", p.chunk_tokens) ||
        meta_put(idx, "chunk_overlap", "%u", p.chunk_overlap) ||
        (p.model_fingerprint && meta_put(idx, "model_fingerprint", "%s", p.model_fingerprint)) || exec(idx, "COMMIT")) {
        st = db_err(idx, err, "cannot write the schema");
        goto fail;
    }
    sqlite3_close_v2(idx->db);
    idx->db = NULL;
    idx_free(idx);
    if (link(tmp, path) != 0) { /* like rename, but never replaces a file that appeared meanwhile */
        unlink(tmp);
        return se_err(err, SE_E_IO, "%s: cannot create (it exists, or the folder is not writable)", path);
    }
    unlink(tmp);
    return se_index_open(path, false, NULL, NULL, out, err);
fail:
    idx_free(idx);
    unlink(tmp);
    return st;
}

/* Parses an unsigned meta value; -1 when missing or malformed. */
static long long meta_num(se_index *idx, const char *key) {
    char *v = meta_get(idx, key), *end;
    if (!v) return -1;
    long long r = strtoll(v, &end, 10);
    if (end == v || *end || r < 0) r = -1;
    se_free(v);
    return r;
}

static void logf_(se_log_fn fn, void *user, se_log_level lv, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void logf_(se_log_fn fn, void *user, se_log_level lv, const char *fmt, ...) {
    if (!fn) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fn(lv, buf, user);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static bool in_sorted(const int64_t *a, size_t n, int64_t x) { return n && bsearch(&x, a, n, sizeof *a, cmp_i64) != NULL; }

static se_status flush_locked(se_index *idx, se_error *err);

/* Registers the keyword tokenizer on the connection and, for a format-1,
 * 2 or 3 file opened writable, upgrades it: docs.title added (NULL: no
 * title), the FTS table (re)built from the stored texts and the version
 * bumped, in one transaction. A
 * read-only open leaves the file as it is: format 1 has no keyword index
 * (has_fts false: keyword searches are refused with how to upgrade);
 * format 2's FTS table keeps its own tokens (its tokenize='sembed' option
 * says so to index_fts.c), and keyword searches rank with the in-memory
 * scorer, built from the texts with format 3's tokens; format 3 is read as
 * it is, its documents without titles. Without FTS5 in this SQLite, a read-only
 * open still searches vectors; a writable one is refused, as its writes
 * could not keep the keyword index in step. */
static se_status fts_attach(se_index *idx, se_log_fn log_fn, void *log_user, se_error *err) {
    se_error fe;
    se_status st = se_fts_register(idx->db, idx->path, &idx->fts, &fe);
    if (st) {
        if (!idx->read_only) {
            if (err) *err = fe;
            return st;
        }
        return SE_OK;
    }
    if (idx->format >= 4 || (idx->format >= 2 && idx->read_only)) {
        idx->has_fts = true;
        return SE_OK;
    }
    if (idx->read_only) return SE_OK;
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d", IDX_FORMAT);
    if (exec(idx, "BEGIN IMMEDIATE") || exec(idx, "ALTER TABLE docs ADD COLUMN title TEXT") ||
        (idx->format >= 2 && exec(idx, "DROP TABLE fts")) || exec(idx, SE_FTS_SCHEMA) ||
        exec(idx, "INSERT INTO fts(fts) VALUES('rebuild')") || exec(idx, pragma) ||
        meta_put(idx, "version", "%d", IDX_FORMAT) || exec(idx, "COMMIT")) {
        st = db_err(idx, err, idx->format >= 2 ? "cannot upgrade the index to format 4 (rebuilding the keyword index)"
                                               : "cannot upgrade the index to format 4 (adding the keyword index)");
        exec(idx, "ROLLBACK");
        return st;
    }
    logf_(log_fn, log_user, SE_LOG_INFO, "%s: upgraded from index format %d to %d: keyword index %s over the stored texts",
          idx->path, idx->format, IDX_FORMAT,
          idx->format == 3   ? "rebuilt with a title field"
          : idx->format == 2 ? "rebuilt with UAX #29 words and a title field"
                             : "built");
    idx->format = IDX_FORMAT;
    idx->has_fts = true;
    return SE_OK;
}

/* Loads meta, the graph and every vector (checking CRCs), reconciles. */
static se_status load_all(se_index *idx, se_log_fn log_fn, void *log_user, se_error *err) {
    sqlite3_stmt *q = NULL;
    int app = -1, ver = -1;
    if (sqlite3_prepare_v2(idx->db, "PRAGMA application_id", -1, &q, NULL) || sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_finalize(q);
        int ec = sqlite3_errcode(idx->db);
        if (ec == SQLITE_NOTADB) return se_err(err, SE_E_FORMAT, "%s: not a sembed index (not an SQLite database)", idx->path);
        return db_err(idx, err, "cannot read");
    }
    app = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (app != IDX_APP_ID) return se_err(err, SE_E_FORMAT, "%s: not a sembed index (application id %#x)", idx->path, (unsigned)app);
    if (sqlite3_prepare_v2(idx->db, "PRAGMA user_version", -1, &q, NULL) || sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_finalize(q);
        return db_err(idx, err, "cannot read");
    }
    ver = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (ver < IDX_FORMAT_MIN || ver > IDX_FORMAT)
        return se_err(err, SE_E_UNSUPPORTED, "%s: index format version %d (this sembed reads %d to %d)", idx->path, ver,
                      IDX_FORMAT_MIN, IDX_FORMAT);
    idx->format = ver;
    char *fmt = meta_get(idx, "format"), *kind = meta_get(idx, "kind"), *metric = meta_get(idx, "metric");
    idx->model = meta_get(idx, "model");
    long long dim = meta_num(idx, "dim"), M = meta_num(idx, "M"), efc = meta_num(idx, "ef_construction"),
              efs = meta_num(idx, "ef_search"), seed = meta_num(idx, "seed"), ct = meta_num(idx, "chunk_tokens"),
              co = meta_num(idx, "chunk_overlap");
    se_status st = SE_OK;
    if (!fmt || strcmp(fmt, "sembed-index") != 0) st = se_err(err, SE_E_FORMAT, "%s: meta.format is missing or wrong", idx->path);
    else if (!kind || (strcmp(kind, "flat") && strcmp(kind, "hnsw"))) st = se_err(err, SE_E_FORMAT, "%s: meta.kind is missing or unknown", idx->path);
    else if (!metric || (strcmp(metric, "cosine") && strcmp(metric, "dot") && strcmp(metric, "l2"))) st = se_err(err, SE_E_FORMAT, "%s: meta.metric is missing or unknown", idx->path);
    else if (dim < 1 || M < 0 || efc < 0 || efs < 1 || seed < 0 || ct < 0 || co < 0 || !idx->model) st = se_err(err, SE_E_FORMAT, "%s: meta table is incomplete or malformed", idx->path);
    if (!st) {
        idx->dim = (size_t)dim;
        idx->p.kind = strcmp(kind, "flat") ? SE_INDEX_HNSW : SE_INDEX_FLAT;
        idx->p.metric = !strcmp(metric, "dot") ? SE_METRIC_DOT : !strcmp(metric, "l2") ? SE_METRIC_L2 : SE_METRIC_COSINE;
        idx->p.M = (uint32_t)M;
        idx->p.ef_construction = (uint32_t)efc;
        idx->p.ef_search = (uint32_t)efs;
        idx->p.seed = (uint64_t)seed;
        idx->p.model = idx->model;
        idx->p.chunk_tokens = (uint32_t)ct;
        idx->p.chunk_overlap = (uint32_t)co;
    }
    se_free(fmt);
    se_free(kind);
    se_free(metric);
    if (st) return st;
    idx->fingerprint = meta_get(idx, "model_fingerprint"); /* NULL in older files */
    idx->p.model_fingerprint = idx->fingerprint;
    if (!idx->read_only) writer_pragmas(idx);
    if ((st = fts_attach(idx, log_fn, log_user, err))) return st;

    /* The largest chunk id ever issued (AUTOINCREMENT): every graph slot
     * once held a distinct chunk id, so it bounds the snapshot's counts. */
    int64_t max_label = 0;
    if (sqlite3_prepare_v2(idx->db, "SELECT seq FROM sqlite_sequence WHERE name = 'chunks'", -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW) max_label = sqlite3_column_int64(q, 0);
    } else {
        max_label = -1;
    }
    sqlite3_finalize(q);

    /* the graph snapshot */
    se_vx_params vp = {idx->p.kind, idx->p.metric, idx->p.M, idx->p.ef_construction, idx->p.seed};
    bool rebuilt = false;
    if (sqlite3_prepare_v2(idx->db, "SELECT blob FROM graph WHERE id = 1", -1, &q, NULL)) return db_err(idx, err, "cannot read the graph");
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        se_error e2;
        const uint8_t *b = sqlite3_column_blob(q, 0);
        size_t n = (size_t)sqlite3_column_bytes(q, 0);
        st = b || !n ? se_vx_load(b ? b : (const uint8_t *)"", n, idx->dim, max_label, &idx->vx, &e2)
                     : se_err(&e2, SE_E_NOMEM, "out of memory reading the graph snapshot");
        if (!st) {
            se_vx_params lp = se_vx_get_params(idx->vx);
            if (lp.kind != vp.kind || lp.metric != vp.metric || lp.M != vp.M || lp.ef_construction != vp.ef_construction) {
                se_vx_free(idx->vx);
                idx->vx = NULL;
                snprintf(e2.msg, sizeof e2.msg, "graph snapshot parameters differ from the meta table");
                st = SE_E_FORMAT;
            }
        }
        if (st) { /* whatever is wrong with it (out of memory included): the rows are the truth */
            logf_(log_fn, log_user, SE_LOG_WARN, "%s: %s; rebuilding the graph from the stored vectors (%s)", idx->path,
                  e2.msg,
                  idx->read_only ? "opened read-only: rebuilt at every open until a writable open saves it"
                                 : "saved now");
            rebuilt = true;
            st = SE_OK;
        }
    } else if (rc != SQLITE_DONE) {
        sqlite3_finalize(q);
        return db_err(idx, err, "cannot read the graph");
    }
    sqlite3_finalize(q);
    if (!idx->vx && (st = se_vx_new(idx->dim, &vp, &idx->vx, err))) return st;

    /* the vectors */
    int64_t *ids = NULL, *pending = NULL;
    size_t n_ids = 0, cap_ids = 0, n_pending = 0;
    float *pend_vec = NULL;
    se_vx_payload *pend_pl = NULL;
    size_t cap_pending = 0;
    if (sqlite3_prepare_v2(idx->db, "SELECT id, doc, chunk, start, end, vec, crc FROM chunks ORDER BY id", -1, &q, NULL))
        return db_err(idx, err, "cannot read the vectors");
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0);
        se_vx_payload pl = {sqlite3_column_int64(q, 1), (uint32_t)sqlite3_column_int64(q, 2),
                            (uint32_t)sqlite3_column_int64(q, 3), (uint32_t)sqlite3_column_int64(q, 4)};
        const void *blob = sqlite3_column_blob(q, 5);
        size_t nb = (size_t)sqlite3_column_bytes(q, 5);
        uint32_t crc = (uint32_t)sqlite3_column_int64(q, 6);
        if (nb != idx->dim * sizeof(float)) {
            st = se_err(err, SE_E_FORMAT, "%s: chunk %lld: vector has %zu bytes, expected %zu", idx->path, (long long)id, nb,
                        idx->dim * sizeof(float));
            break;
        }
        if ((uint32_t)crc32(0, blob, (uInt)nb) != crc) {
            st = se_err(err, SE_E_FORMAT, "%s: chunk %lld: vector checksum mismatch (the file is damaged)", idx->path, (long long)id);
            break;
        }
        if (n_ids == cap_ids) {
            cap_ids = cap_ids ? cap_ids * 2 : 1024;
            int64_t *t = se_realloc(ids, cap_ids * sizeof *t);
            if (!t) {
                st = se_err(err, SE_E_NOMEM, "out of memory");
                break;
            }
            ids = t;
        }
        ids[n_ids++] = id;
        if (se_vx_set_vector(idx->vx, id, blob, true, &pl) == SE_OK) continue;
        if (n_pending == cap_pending) {
            cap_pending = cap_pending ? cap_pending * 2 : 256;
            int64_t *t = se_realloc(pending, cap_pending * sizeof *t);
            float *v = t ? se_realloc(pend_vec, cap_pending * idx->dim * sizeof *v) : NULL;
            se_vx_payload *pp = v ? se_realloc(pend_pl, cap_pending * sizeof *pp) : NULL;
            if (t) pending = t;
            if (v) pend_vec = v;
            if (pp) pend_pl = pp;
            if (!t || !v || !pp) {
                st = se_err(err, SE_E_NOMEM, "out of memory");
                break;
            }
        }
        pending[n_pending] = id;
        pend_pl[n_pending] = pl;
        memcpy(pend_vec + n_pending * idx->dim, blob, nb);
        n_pending++;
    }
    if (!st && rc != SQLITE_DONE) st = db_err(idx, err, "cannot read the vectors");
    sqlite3_finalize(q);
    size_t n_stale = 0;
    if (!st) { /* graph labels with no row: removed after the snapshot */
        int64_t *labels;
        size_t nl;
        st = se_vx_labels(idx->vx, &labels, &nl, err);
        if (!st) {
            size_t k = 0;
            for (size_t i = 0; i < nl; i++)
                if (!in_sorted(ids, n_ids, labels[i])) labels[k++] = labels[i];
            if (k) st = se_vx_remove(idx->vx, labels, k, &n_stale, err);
            se_free(labels);
        }
    }
    if (!st && se_vx_missing_vectors(idx->vx))
        st = se_err(err, SE_E_INTERNAL, "%s: graph slots without vectors after reconciling", idx->path);
    for (size_t i = 0; !st && i < n_pending; i++) {
        st = se_vx_add(idx->vx, pending[i], pend_vec + i * idx->dim, true, &pend_pl[i], err);
        if (st) se_err_prefix(err, "%s: chunk %lld", idx->path, (long long)pending[i]);
    }
    se_free(ids);
    se_free(pending);
    se_free(pend_vec);
    se_free(pend_pl);
    if (st) return st;
    if (n_pending || n_stale || rebuilt) {
        /* A snapshot older than the rows (a killed add, or two writers at
         * once): a read-only open cannot save the repaired graph, so every
         * read-only open repeats the work until a writable open saves it. */
        if (!rebuilt && idx->read_only)
            logf_(log_fn, log_user, SE_LOG_INFO,
                  "%s: the graph snapshot is out of date (%zu vectors added, %zu removed since it was saved); brought up"
                  " to date in memory, not saved (opened read-only): the next writable open (e.g. `sembed index add`)"
                  " saves it",
                  idx->path, n_pending, n_stale);
        idx->dirty = true;
        if (!idx->read_only) {
            se_status fs = flush_locked(idx, err);
            if (!fs && !rebuilt)
                logf_(log_fn, log_user, SE_LOG_INFO,
                      "%s: the graph snapshot was out of date (%zu vectors added, %zu removed since it was saved);"
                      " brought up to date and saved",
                      idx->path, n_pending, n_stale);
            return fs;
        }
    }
    return SE_OK;
}

/* Big-endian 32-bit field of the SQLite header. */
static uint32_t be32(const unsigned char *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Reads the 100-byte SQLite header of path with read(2), touching nothing,
 * and checks that it is a sembed index of our format version: SQLite magic,
 * application id 'SEMB' (offset 68), user_version (offset 60). *wal: the
 * file is in WAL mode at rest (read and write versions 2 at offsets 18-19). */
static se_status check_header(const char *path, bool *wal, se_error *err) {
    unsigned char h[100];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return se_err(err, SE_E_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t got = 0;
    int rerr = 0;
    while (got < sizeof h) {
        ssize_t r = read(fd, h + got, sizeof h - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rerr = errno;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (rerr) return se_err(err, SE_E_IO, "%s: cannot read: %s", path, strerror(rerr));
    if (got < sizeof h || memcmp(h, "SQLite format 3", 16) != 0)
        return se_err(err, SE_E_FORMAT, "%s: not a sembed index (%s)", path,
                      got == 0 ? "an empty file" : "not an SQLite database");
    uint32_t app = be32(h + 68), ver = be32(h + 60);
    if (app != IDX_APP_ID) return se_err(err, SE_E_FORMAT, "%s: not a sembed index (an SQLite database with application id %#x)", path, app);
    if (ver < IDX_FORMAT_MIN || ver > IDX_FORMAT)
        return se_err(err, SE_E_UNSUPPORTED, "%s: index format version %u (this sembed reads %d to %d)", path, ver,
                      IDX_FORMAT_MIN, IDX_FORMAT);
    *wal = h[18] == 2 && h[19] == 2;
    return SE_OK;
}

/* Whether a read-only open must use SQLite's immutable mode: the file is
 * in WAL mode at rest, which needs a -shm file that cannot be created in a
 * folder we may not write; with no -wal file there is nothing in the WAL,
 * and with the folder unwritable for us no writer of ours can be running. */
static bool need_immutable(const char *path) {
    char side[4200];
    if (snprintf(side, sizeof side, "%s-wal", path) >= (int)sizeof side) return false;
    if (access(side, F_OK) == 0) return false;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    return access(dir, W_OK) != 0;
}

/* "file:" URI of path with immutable=1 (%, ?, # escaped), into out. */
static bool immutable_uri(const char *path, char *out, size_t cap) {
    size_t o = (size_t)snprintf(out, cap, "file:");
    for (const char *c = path; *c; c++) {
        if (o + 4 >= cap) return false;
        if (*c == '%' || *c == '?' || *c == '#') o += (size_t)snprintf(out + o, cap - o, "%%%02X", (unsigned char)*c);
        else out[o++] = *c;
    }
    return snprintf(out + o, cap - o, "?immutable=1") < (int)(cap - o);
}

/* Opens an index: the header checked before SQLite sees the file (so a
 * file that is not ours is never modified), then loaded and reconciled. */
se_status se_index_open(const char *path, bool read_only, se_log_fn log_fn, void *log_user, se_index **out,
                        se_error *err) {
    if (!path || !out) return se_err(err, SE_E_INVALID, "se_index_open: NULL argument");
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return se_err(err, SE_E_IO, "%s: no such index file", path);
    if (!S_ISREG(sb.st_mode)) return se_err(err, SE_E_IO, "%s: not a regular file", path);
    bool wal = false;
    se_status st = check_header(path, &wal, err);
    if (st) return st;
    se_index *idx = idx_new(path);
    if (!idx) return se_err(err, SE_E_NOMEM, "out of memory");
    idx->read_only = read_only;
    idx->log_fn = log_fn;
    idx->log_user = log_user;
    int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
    char uri[8400];
    const char *name = path;
    if (read_only && wal && need_immutable(path) && immutable_uri(path, uri, sizeof uri)) {
        name = uri;
        flags |= SQLITE_OPEN_URI;
    }
    if (sqlite3_open_v2(name, &idx->db, flags, NULL)) {
        st = db_err(idx, err, "cannot open");
        idx_free(idx);
        return st;
    }
    if (!read_only && sqlite3_db_readonly(idx->db, "main") == 1) { /* SQLite fell back to read-only */
        idx->read_only = true;
        idx_free(idx);
        return se_err(err, SE_E_IO, "%s: cannot open for writing (the file is read-only); open it read-only to search", path);
    }
    sqlite3_busy_timeout(idx->db, 10000);
    exec(idx, "PRAGMA foreign_keys=OFF");
    st = load_all(idx, log_fn, log_user, err);
    if (st) {
        idx_free(idx);
        return st;
    }
    *out = idx;
    return SE_OK;
}

/* Writes the snapshot; write_lock held by the caller. */
static se_status flush_locked(se_index *idx, se_error *err) {
    if (idx->read_only) return se_err(err, SE_E_INVALID, "%s: opened read-only", idx->path);
    if (!idx->dirty) return SE_OK;
    uint8_t *blob;
    size_t len;
    se_status st = se_vx_save(idx->vx, &blob, &len, err);
    if (st) return st;
    pthread_mutex_lock(&idx->db_lock);
    sqlite3_stmt *q = NULL;
    if (exec(idx, "BEGIN IMMEDIATE") ||
        sqlite3_prepare_v2(idx->db, "INSERT OR REPLACE INTO graph(id, blob) VALUES (1, ?)", -1, &q, NULL) ||
        sqlite3_bind_blob64(q, 1, blob, len, SQLITE_STATIC) || sqlite3_step(q) != SQLITE_DONE) {
        st = db_err(idx, err, "cannot write the graph snapshot");
        sqlite3_finalize(q);
        exec(idx, "ROLLBACK");
    } else {
        sqlite3_finalize(q);
        if (exec(idx, "COMMIT")) {
            st = db_err(idx, err, "cannot commit the graph snapshot");
            exec(idx, "ROLLBACK");
        } else {
            idx->dirty = false;
        }
    }
    pthread_mutex_unlock(&idx->db_lock);
    se_free(blob);
    return st;
}

se_status se_index_flush(se_index *idx, se_error *err) {
    if (!idx) return se_err(err, SE_E_INVALID, "se_index_flush: NULL index");
    pthread_mutex_lock(&idx->write_lock);
    se_status st = flush_locked(idx, err);
    pthread_mutex_unlock(&idx->write_lock);
    return st;
}

se_status se_index_close(se_index *idx, se_error *err) {
    if (!idx) return SE_OK;
    se_status st = SE_OK;
    if (!idx->read_only && idx->dirty) st = flush_locked(idx, err);
    idx_free(idx);
    return st;
}

/* Checks meta is a JSON object (SQLite's JSON1). db_lock held. */
static bool json_object_ok(se_index *idx, const char *meta) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(idx->db, "SELECT json_valid(?1) AND json_type(?1) = 'object'", -1, &q, NULL)) return false;
    sqlite3_bind_text(q, 1, meta, -1, SQLITE_STATIC);
    bool ok = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) == 1;
    sqlite3_finalize(q);
    return ok;
}

/* Appends the chunk ids of doc to *v. db_lock held. */
static int doc_chunks(se_index *idx, int64_t doc, int64_t **v, size_t *n, size_t *cap) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(idx->db, "SELECT id FROM chunks WHERE doc = ?", -1, &q, NULL)) return -1;
    sqlite3_bind_int64(q, 1, doc);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            int64_t *t = se_realloc(*v, *cap * sizeof *t);
            if (!t) {
                sqlite3_finalize(q);
                return -2;
            }
            *v = t;
        }
        (*v)[(*n)++] = sqlite3_column_int64(q, 0);
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Runs one statement whose only parameter is a row id ("... WHERE doc =
 * ?"); 0 on success. db_lock held. */
static int exec_on(se_index *idx, const char *sql, int64_t id) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(idx->db, sql, -1, &q, NULL)) return -1;
    sqlite3_bind_int64(q, 1, id);
    int ok = sqlite3_step(q) == SQLITE_DONE;
    sqlite3_finalize(q);
    return ok ? 0 : -1;
}

static const char DELETE_CHUNKS[] = "DELETE FROM chunks WHERE doc = ?";
/* Takes a document out of the keyword index: an external-content FTS5
 * table is told the text it indexed (still in docs), before docs changes. */
static const char DELETE_FTS[] =
    "INSERT INTO fts(fts, rowid, title, text) SELECT 'delete', id, title, text FROM docs WHERE id = ?";

/* Deletes doc's row, chunks and keyword entries; db_lock held, inside a
 * transaction. */
static int delete_doc_rows(se_index *idx, int64_t doc) {
    return exec_on(idx, DELETE_CHUNKS, doc) || exec_on(idx, DELETE_FTS, doc) ||
                   exec_on(idx, "DELETE FROM docs WHERE id = ?", doc)
               ? -1
               : 0;
}

/* Gives up the in-memory keyword scorer (out of memory building or
 * updating it): keyword searches rank with FTS5's bm25() from now on, the
 * same order semantics, slower. db_lock held. */
static void bm25_drop(se_index *idx, const char *why) {
    se_bm25_free(idx->bm25);
    idx->bm25 = NULL;
    idx->bm25_failed = true;
    logf_(idx->log_fn, idx->log_user, SE_LOG_WARN,
          "%s: %s; keyword search falls back to FTS5's bm25() ranking (slower: ~4 us per matching document)", idx->path,
          why);
}

/* Looks up a document by external id: its row id, or 0 when absent, -1 on error. */
static int64_t find_doc(se_index *idx, const char *ext_id) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(idx->db, "SELECT id FROM docs WHERE ext_id = ?", -1, &q, NULL)) return -1;
    sqlite3_bind_text(q, 1, ext_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    int64_t r = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : rc == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(q);
    return r;
}

se_status se_index_add(se_index *idx, const se_index_doc *docs, size_t n, se_error *err) {
    if (!idx || (n && !docs)) return se_err(err, SE_E_INVALID, "se_index_add: invalid argument");
    if (idx->read_only) return se_err(err, SE_E_INVALID, "%s: opened read-only", idx->path);
    if (!n) return SE_OK;
    size_t n_vec = 0;
    for (size_t i = 0; i < n; i++) {
        const se_index_doc *d = &docs[i];
        if (!d->id || !d->id[0]) return se_err(err, SE_E_INVALID, "document %zu: empty id", i);
        if (!d->text) return se_err(err, SE_E_INVALID, "document %zu (id '%s'): no text", i, d->id);
        if (d->n_chunks < 1 || !d->vectors) return se_err(err, SE_E_INVALID, "document %zu (id '%s'): no vectors", i, d->id);
        if (d->n_chunks > 1 && !d->spans) return se_err(err, SE_E_INVALID, "document %zu (id '%s'): chunks without spans", i, d->id);
        size_t tl = strlen(d->text);
        for (size_t c = 0; d->spans && c < d->n_chunks; c++)
            if (d->spans[2 * c] > d->spans[2 * c + 1] || d->spans[2 * c + 1] > tl)
                return se_err(err, SE_E_RANGE, "document %zu (id '%s'): chunk %zu span [%u, %u) outside the text (%zu bytes)", i,
                              d->id, c, d->spans[2 * c], d->spans[2 * c + 1], tl);
        n_vec += d->n_chunks;
    }
    float *prep = se_malloc_array(n_vec, idx->dim * sizeof(float));
    int64_t *new_ids = se_malloc_array(n_vec, sizeof(int64_t));
    se_vx_payload *pls = se_malloc_array(n_vec, sizeof(se_vx_payload));
    int64_t *old = NULL, *doc_of = se_malloc_array(n, sizeof(int64_t));
    size_t n_old = 0, cap_old = 0;
    se_status st = SE_OK;
    if (!prep || !new_ids || !pls || !doc_of) {
        st = se_err(err, SE_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0, v = 0; i < n && !st; i++)
        for (size_t c = 0; c < docs[i].n_chunks && !st; c++, v++) {
            st = se_vx_prepare(idx->vx, docs[i].vectors + c * idx->dim, prep + v * idx->dim, err);
            if (st) se_err_prefix(err, "document %zu (id '%s'), chunk %zu", i, docs[i].id, c);
        }
    if (st) goto done;

    pthread_mutex_lock(&idx->write_lock);
    pthread_mutex_lock(&idx->db_lock);
    sqlite3_stmt *ins_doc = NULL, *upd_doc = NULL, *ins_chunk = NULL, *ins_fts = NULL;
    if (exec(idx, "BEGIN IMMEDIATE")) {
        st = db_err(idx, err, "cannot start a transaction");
        goto unlock;
    }
    if (sqlite3_prepare_v2(idx->db, "INSERT INTO docs(ext_id, text, meta, title) VALUES (?, ?, ?, ?)", -1, &ins_doc, NULL) ||
        sqlite3_prepare_v2(idx->db, "UPDATE docs SET text = ?, meta = ?, title = ? WHERE id = ?", -1, &upd_doc, NULL) ||
        sqlite3_prepare_v2(idx->db, "INSERT INTO chunks(doc, chunk, start, end, vec, crc) VALUES (?, ?, ?, ?, ?, ?)", -1,
                           &ins_chunk, NULL) ||
        sqlite3_prepare_v2(idx->db, "INSERT INTO fts(rowid, title, text) VALUES (?, ?, ?)", -1, &ins_fts, NULL)) {
        st = db_err(idx, err, "cannot prepare");
        goto rollback;
    }
    for (size_t i = 0, v = 0; i < n; i++) {
        const se_index_doc *d = &docs[i];
        if (d->meta && !json_object_ok(idx, d->meta)) {
            st = se_err(err, SE_E_FORMAT, "document %zu (id '%s'): metadata is not a JSON object", i, d->id);
            goto rollback;
        }
        const char *title = d->title && d->title[0] ? d->title : NULL;
        int64_t doc = find_doc(idx, d->id);
        if (doc < 0) {
            st = db_err(idx, err, "cannot look up a document");
            goto rollback;
        }
        if (doc > 0) { /* replace: drop the old chunks */
            int r = doc_chunks(idx, doc, &old, &n_old, &cap_old);
            if (r == -2) {
                st = se_err(err, SE_E_NOMEM, "out of memory");
                goto rollback;
            }
            if (r || exec_on(idx, DELETE_CHUNKS, doc) || exec_on(idx, DELETE_FTS, doc)) {
                st = db_err(idx, err, "cannot replace a document");
                goto rollback;
            }
            sqlite3_reset(upd_doc);
            sqlite3_bind_text(upd_doc, 1, d->text, -1, SQLITE_STATIC);
            if (d->meta)
                sqlite3_bind_text(upd_doc, 2, d->meta, -1, SQLITE_STATIC);
            else
                sqlite3_bind_null(upd_doc, 2);
            if (title)
                sqlite3_bind_text(upd_doc, 3, title, -1, SQLITE_STATIC);
            else
                sqlite3_bind_null(upd_doc, 3);
            sqlite3_bind_int64(upd_doc, 4, doc);
            if (sqlite3_step(upd_doc) != SQLITE_DONE) {
                st = db_err(idx, err, "cannot replace a document");
                goto rollback;
            }
        } else {
            sqlite3_reset(ins_doc);
            sqlite3_bind_text(ins_doc, 1, d->id, -1, SQLITE_STATIC);
            sqlite3_bind_text(ins_doc, 2, d->text, -1, SQLITE_STATIC);
            if (d->meta)
                sqlite3_bind_text(ins_doc, 3, d->meta, -1, SQLITE_STATIC);
            else
                sqlite3_bind_null(ins_doc, 3);
            if (title)
                sqlite3_bind_text(ins_doc, 4, title, -1, SQLITE_STATIC);
            else
                sqlite3_bind_null(ins_doc, 4);
            if (sqlite3_step(ins_doc) != SQLITE_DONE) {
                st = db_err(idx, err, "cannot insert a document");
                goto rollback;
            }
            doc = sqlite3_last_insert_rowid(idx->db);
        }
        doc_of[i] = doc;
        sqlite3_reset(ins_fts);
        sqlite3_bind_int64(ins_fts, 1, doc);
        if (title)
            sqlite3_bind_text(ins_fts, 2, title, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(ins_fts, 2);
        sqlite3_bind_text(ins_fts, 3, d->text, -1, SQLITE_STATIC);
        if (sqlite3_step(ins_fts) != SQLITE_DONE) {
            st = db_err(idx, err, "cannot add a document to the keyword index");
            goto rollback;
        }
        size_t tl = strlen(d->text);
        for (size_t c = 0; c < d->n_chunks; c++, v++) {
            uint32_t s0 = d->spans ? d->spans[2 * c] : 0, s1 = d->spans ? d->spans[2 * c + 1] : (uint32_t)tl;
            const float *vec = prep + v * idx->dim;
            size_t nb = idx->dim * sizeof(float);
            sqlite3_reset(ins_chunk);
            sqlite3_bind_int64(ins_chunk, 1, doc);
            sqlite3_bind_int64(ins_chunk, 2, (int64_t)c);
            sqlite3_bind_int64(ins_chunk, 3, s0);
            sqlite3_bind_int64(ins_chunk, 4, s1);
            sqlite3_bind_blob64(ins_chunk, 5, vec, nb, SQLITE_STATIC);
            sqlite3_bind_int64(ins_chunk, 6, (int64_t)(uint32_t)crc32(0, (const Bytef *)vec, (uInt)nb));
            if (sqlite3_step(ins_chunk) != SQLITE_DONE) {
                st = db_err(idx, err, "cannot insert a vector");
                goto rollback;
            }
            new_ids[v] = sqlite3_last_insert_rowid(idx->db);
            pls[v] = (se_vx_payload){doc, (uint32_t)c, s0, s1};
        }
    }
    if (exec(idx, "COMMIT")) {
        st = db_err(idx, err, "cannot commit");
        goto rollback;
    }
    /* committed: the keyword scorer follows (a document given twice is
     * re-added, so the last text wins, as in the rows) */
    for (size_t i = 0; i < n && idx->bm25; i++) {
        se_error be = {0};
        if (se_bm25_add_titled(idx->bm25, doc_of[i], docs[i].title, docs[i].text, &be)) bm25_drop(idx, be.msg);
    }
    goto unlock;
rollback:
    exec(idx, "ROLLBACK");
unlock:
    sqlite3_finalize(ins_doc);
    sqlite3_finalize(upd_doc);
    sqlite3_finalize(ins_chunk);
    sqlite3_finalize(ins_fts);
    pthread_mutex_unlock(&idx->db_lock);
    if (!st) {
        /* committed: bring the in-memory index along. A chunk both added
         * and replaced within this call is in old[]: skip it. */
        if (n_old) qsort(old, n_old, sizeof *old, cmp_i64);
        idx->dirty = true;
        size_t n_rm;
        st = se_vx_remove(idx->vx, old, n_old, &n_rm, err);
        for (size_t v = 0; v < n_vec && !st; v++)
            if (!in_sorted(old, n_old, new_ids[v])) st = se_vx_add(idx->vx, new_ids[v], prep + v * idx->dim, true, &pls[v], err);
    }
    pthread_mutex_unlock(&idx->write_lock);
done:
    se_free(prep);
    se_free(new_ids);
    se_free(pls);
    se_free(old);
    se_free(doc_of);
    return st;
}

se_status se_index_delete(se_index *idx, const char *const *ids, size_t n, size_t *n_deleted, se_error *err) {
    if (n_deleted) *n_deleted = 0;
    if (!idx || (n && !ids)) return se_err(err, SE_E_INVALID, "se_index_delete: invalid argument");
    if (idx->read_only) return se_err(err, SE_E_INVALID, "%s: opened read-only", idx->path);
    int64_t *old = NULL, *gone = NULL; /* the deleted documents' row ids */
    size_t n_old = 0, cap_old = 0, n_docs = 0, cap_gone = 0;
    se_status st = SE_OK;
    pthread_mutex_lock(&idx->write_lock);
    pthread_mutex_lock(&idx->db_lock);
    if (exec(idx, "BEGIN IMMEDIATE")) {
        st = db_err(idx, err, "cannot start a transaction");
        goto unlock;
    }
    for (size_t i = 0; i < n; i++) {
        if (!ids[i]) continue;
        int64_t doc = find_doc(idx, ids[i]);
        if (doc == 0) continue;
        int r = doc < 0 ? -1 : doc_chunks(idx, doc, &old, &n_old, &cap_old);
        if (r == -2) {
            st = se_err(err, SE_E_NOMEM, "out of memory");
            break;
        }
        if (r || delete_doc_rows(idx, doc)) {
            st = db_err(idx, err, "cannot delete a document");
            break;
        }
        if (n_docs == cap_gone) {
            size_t c = cap_gone ? cap_gone * 2 : 16;
            int64_t *t = se_realloc(gone, c * sizeof *t);
            if (!t) {
                st = se_err(err, SE_E_NOMEM, "out of memory");
                break;
            }
            gone = t;
            cap_gone = c;
        }
        gone[n_docs++] = doc;
    }
    if (!st && exec(idx, "COMMIT")) st = db_err(idx, err, "cannot commit");
    if (st) exec(idx, "ROLLBACK");
    for (size_t i = 0; !st && i < n_docs && idx->bm25; i++)
        if (se_bm25_remove(idx->bm25, gone[i])) bm25_drop(idx, "out of memory compacting the keyword scorer");
unlock:
    pthread_mutex_unlock(&idx->db_lock);
    if (!st && n_old) {
        idx->dirty = true;
        st = se_vx_remove(idx->vx, old, n_old, NULL, err);
    }
    pthread_mutex_unlock(&idx->write_lock);
    se_free(old);
    se_free(gone);
    if (!st && n_deleted) *n_deleted = n_docs;
    return st;
}

/* ---- search ---- */

typedef struct allow_set {
    const int64_t *ids;
    size_t n;
} allow_set;

static bool allow_fn(void *user, int64_t label) {
    const allow_set *a = user;
    return in_sorted(a->ids, a->n, label);
}

/* One filter term's SQL: the field (parameter 2i+1, a JSON path) holds,
 * or is an array holding, the value (parameter 2i+2). */
static const char FILTER_TERM[] =
    " AND EXISTS (SELECT 1 FROM json_each(d.meta, ?%zu) je WHERE"
    " (je.type = 'text' AND je.atom = ?%zu) OR (je.type = 'integer' AND CAST(je.atom AS TEXT) = ?%zu)"
    " OR (je.type = 'real' AND je.atom = CAST(?%zu AS REAL))"
    " OR (je.type IN ('true', 'false', 'null') AND je.type = ?%zu))";

/* Steps q to its end, collecting its first column's ids into *v (grown
 * with se_realloc; *n of them). On an error *v keeps what was read; the
 * caller frees it and finalizes q. */
static se_status step_ids(se_index *idx, sqlite3_stmt *q, int64_t **v, size_t *n, se_error *err) {
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            int64_t *t = se_realloc(*v, cap * sizeof *t);
            if (!t) return se_err(err, SE_E_NOMEM, "out of memory");
            *v = t;
        }
        (*v)[(*n)++] = sqlite3_column_int64(q, 0);
    }
    return rc == SQLITE_DONE ? SE_OK : db_err(idx, err, "cannot run the filter");
}

/* Checks filter terms: at most SE_INDEX_FILTERS_MAX, each key non-empty,
 * at most 1000 bytes and without '"' (it is spliced into a JSON path). */
static se_status check_filters(const se_index_filter *f, size_t nf, se_error *err) {
    if (nf && !f) return se_err(err, SE_E_INVALID, "se_index_search: NULL filters");
    if (nf > SE_INDEX_FILTERS_MAX)
        return se_err(err, SE_E_RANGE, "too many filter terms (%zu; at most %d)", nf, SE_INDEX_FILTERS_MAX);
    for (size_t i = 0; i < nf; i++)
        if (!f[i].key || !f[i].value || !f[i].key[0] || strchr(f[i].key, '"') || strlen(f[i].key) > 1000)
            return se_err(err, SE_E_INVALID, "filter %zu: key must be non-empty, at most 1000 bytes, and contain no '\"'", i);
    return SE_OK;
}

/* The SQL "head FILTER_TERM... tail" for nf terms (se_malloc'd; NULL when
 * out of memory), sized for the terms given: the fixed 8 KiB buffer it
 * used to be written into ran out at 30 terms. Each "%zu" of a term
 * becomes at most 2 digits (<= 64 parameters). */
static char *filter_sql(const char *head, size_t nf, const char *tail) {
    size_t cap = strlen(head) + nf * sizeof FILTER_TERM + strlen(tail) + 1;
    char *sql = se_malloc(cap);
    if (!sql) return NULL;
    size_t off = (size_t)snprintf(sql, cap, "%s", head);
    for (size_t i = 0; i < nf; i++)
        off += (size_t)snprintf(sql + off, cap - off, FILTER_TERM, 2 * i + 1, 2 * i + 2, 2 * i + 2, 2 * i + 2, 2 * i + 2);
    snprintf(sql + off, cap - off, "%s", tail);
    return sql;
}

/* Binds filter terms' parameters in FILTER_TERM's order: the key's JSON
 * path, then its value. */
static void bind_filter_terms(sqlite3_stmt *q, const se_index_filter *f, size_t nf) {
    char path[1100];
    for (size_t i = 0; i < nf; i++) {
        snprintf(path, sizeof path, "$.\"%s\"", f[i].key);
        sqlite3_bind_text(q, (int)(2 * i + 1), path, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, (int)(2 * i + 2), f[i].value, -1, SQLITE_STATIC);
    }
}

/* The sorted chunk ids whose document matches every filter term. */
static se_status filter_ids(se_index *idx, const se_index_filter *f, size_t nf, int64_t **out, size_t *n_out,
                            se_error *err) {
    se_status cs = check_filters(f, nf, err);
    if (cs) return cs;
    char *sql = filter_sql("SELECT c.id FROM chunks c JOIN docs d ON d.id = c.doc WHERE 1", nf, " ORDER BY c.id");
    if (!sql) return se_err(err, SE_E_NOMEM, "out of memory");
    pthread_mutex_lock(&idx->db_lock);
    sqlite3_stmt *q;
    se_status st = SE_OK;
    int64_t *v = NULL;
    size_t n = 0;
    int prc = sqlite3_prepare_v2(idx->db, sql, -1, &q, NULL);
    se_free(sql);
    if (prc) {
        st = db_err(idx, err, "cannot run the filter");
        goto out;
    }
    bind_filter_terms(q, f, nf);
    st = step_ids(idx, q, &v, &n, err);
    sqlite3_finalize(q);
out:
    pthread_mutex_unlock(&idx->db_lock);
    if (st) {
        se_free(v);
        return st;
    }
    *out = v;
    *n_out = n;
    return SE_OK;
}

static se_status search_text(se_index *idx, const float *query, const se_index_search_params *p, se_index_hit *hits,
                             size_t *n_hits, se_error *err);

se_status se_index_search(se_index *idx, const float *query, const se_index_search_params *params, se_index_hit *hits,
                          size_t *n_hits, se_error *err) {
    if (idx && params && params->mode != SE_SEARCH_VECTOR) return search_text(idx, query, params, hits, n_hits, err);
    if (!idx || !query || !n_hits) return se_err(err, SE_E_INVALID, "se_index_search: NULL argument");
    se_index_search_params p = params ? *params : se_index_search_default_params();
    *n_hits = 0;
    if (p.k == 0) return SE_OK;
    if (!hits) return se_err(err, SE_E_INVALID, "se_index_search: NULL hits");
    if (p.n_filters && !p.filters) return se_err(err, SE_E_INVALID, "se_index_search: NULL filters");
    se_status qs = se_vx_check_vector(idx->vx, query, err);
    if (qs) {
        se_err_prefix(err, "query");
        return qs;
    }
    /* Default settings (no ef given): the candidate list adapts to k and
     * to the chunks per document (se_vx_auto_ef), and a collection small
     * enough that a flat scan costs no more than that search is scanned
     * exactly. An ef given with the search is used as given (raised to
     * what is asked for), so ef still trades recall for speed. */
    bool dflt = p.ef_search == 0;
    size_t ef = dflt ? idx->p.ef_search : p.ef_search;
    size_t total = se_vx_count(idx->vx), n_docs = se_vx_count_heads(idx->vx);
    if (dflt && total) ef = se_vx_auto_ef(ef, p.k, total, n_docs, p.best_chunk_per_doc);
    int64_t *allowed = NULL;
    size_t n_allowed = 0;
    se_status st = SE_OK;
    bool exact_subset = false;
    if (p.n_filters) {
        st = filter_ids(idx, p.filters, p.n_filters, &allowed, &n_allowed, err);
        if (st) return st;
        if (n_allowed == 0) goto out;
        /* Few matches: an exact scan of them is cheap and loses nothing.
         * Many: the graph, with a candidate list widened by 1/selectivity. */
        exact_subset = idx->p.kind == SE_INDEX_FLAT || n_allowed <= 4096 || n_allowed * 10 <= total;
        if (!exact_subset) {
            size_t scaled = ef * total / n_allowed;
            ef = scaled > ef ? scaled : ef;
        }
    }
    bool exact = !exact_subset && (idx->p.kind == SE_INDEX_FLAT || (dflt && se_vx_exact_is_faster(total, ef)));
    /* never more candidates than there are vectors to find (a huge k asks
     * for everything, not for a huge allocation) */
    size_t limit = p.n_filters ? n_allowed : total;
    if (limit == 0) goto out;
    /* Candidates before documents are collapsed to their best chunk: the
     * graph search keeps ef of them anyway, so all are taken (at least
     * 2k); an exact scan takes k times the chunks per document, plus k
     * (at least 2k), so that it rarely has to scan again for more. */
    size_t want = p.k;
    if (p.best_chunk_per_doc) {
        size_t per = (exact || exact_subset) && n_docs && total / n_docs >= 2 ? total / n_docs + 1 : 2;
        want = p.k <= SIZE_MAX / per ? p.k * per : SIZE_MAX;
    }
    if (!exact && !exact_subset && ef > want) want = ef;
    if (want > limit) want = limit;
    for (;;) {
        se_vx_hit *vh = se_malloc_array(want, sizeof *vh);
        if (!vh) {
            st = se_err(err, SE_E_NOMEM, "out of memory");
            break;
        }
        size_t got = 0;
        allow_set as = {allowed, n_allowed};
        se_vx_allow_fn allow = p.n_filters ? allow_fn : NULL;
        if (exact_subset)
            st = se_vx_search_subset(idx->vx, query, want, allowed, n_allowed, vh, &got, err);
        else if (exact)
            st = se_vx_search_exact(idx->vx, query, want, allow, &as, vh, &got, err);
        else
            st = se_vx_search(idx->vx, query, want, ef > want ? ef : want, allow, &as, vh, &got, err);
        if (st) {
            se_free(vh);
            break;
        }
        size_t k = 0;
        for (size_t i = 0; i < got && k < p.k; i++) {
            if (p.best_chunk_per_doc) {
                bool dup = false;
                for (size_t j = 0; j < k && !dup; j++) dup = hits[j].doc == vh[i].pl.doc;
                if (dup) continue;
            }
            hits[k++] = (se_index_hit){vh[i].pl.doc, vh[i].pl.chunk, vh[i].pl.start, vh[i].pl.end, vh[i].score,
                                       vh[i].score, NAN};
        }
        se_free(vh);
        *n_hits = k;
        if (k >= p.k || got < want || want >= limit) break;
        want = want > limit / 4 ? limit : want * 4; /* many chunks of the same documents: look further */
    }
out:
    se_free(allowed);
    return st;
}

/* ---- keyword and hybrid search ---- */

/* The filters for a keyword query: FILTER_TERM per term over docs d, and
 * their parameters bound as filter_ids binds them. */
typedef struct filter_bind {
    const se_index_filter *f;
    size_t nf;
} filter_bind;

static void bind_filters(sqlite3_stmt *q, const void *user) {
    const filter_bind *b = user;
    bind_filter_terms(q, b->f, b->nf);
}

/* Builds the in-memory keyword scorer over every stored title and text
 * (db_lock held; a file older than format 4, read-only, has no titles).
 * Out of memory is not an error: bm25_drop logs it and FTS5 ranks. */
static se_status bm25_build(se_index *idx, se_error *err) {
    se_bm25 *b = se_bm25_new(idx->fts, SE_BM25_DEFAULT_FLAGS);
    if (!b) {
        bm25_drop(idx, "out of memory building the keyword scorer");
        return SE_OK;
    }
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(idx->db, idx->format >= 4 ? "SELECT id, text, title FROM docs" : "SELECT id, text, NULL FROM docs",
                           -1, &q, NULL)) {
        se_bm25_free(b);
        return db_err(idx, err, "cannot read the texts for the keyword scorer");
    }
    exec(idx, "BEGIN");
    se_status st = SE_OK;
    se_error be = {0};
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(q, 1);
        const char *title = (const char *)sqlite3_column_text(q, 2);
        if (se_bm25_add_titled(b, sqlite3_column_int64(q, 0), title, text ? text : "", &be)) break;
    }
    if (be.code == SE_OK && rc != SQLITE_DONE) st = db_err(idx, err, "cannot read the texts for the keyword scorer");
    sqlite3_finalize(q);
    exec(idx, "COMMIT");
    if (st || be.code != SE_OK) {
        se_bm25_free(b);
        if (!st && be.code == SE_E_NOMEM) {
            bm25_drop(idx, be.msg);
            return SE_OK;
        }
        return st ? st : se_err(err, be.code, "%s: %s", idx->path, be.msg);
    }
    idx->bm25 = b;
    return SE_OK;
}

/* The sorted row ids of the documents matching every filter term of fb.
 * db_lock held. */
static se_status filter_docs(se_index *idx, const filter_bind *fb, int64_t **out, size_t *n_out, se_error *err) {
    char *sql = filter_sql("SELECT d.id FROM docs d WHERE 1", fb->nf, " ORDER BY d.id");
    if (!sql) return se_err(err, SE_E_NOMEM, "out of memory");
    sqlite3_stmt *q;
    int prc = sqlite3_prepare_v2(idx->db, sql, -1, &q, NULL);
    se_free(sql);
    if (prc) return db_err(idx, err, "cannot run the filter");
    bind_filters(q, fb);
    int64_t *v = NULL;
    size_t n = 0;
    se_status st = step_ids(idx, q, &v, &n, err);
    sqlite3_finalize(q);
    if (st) {
        se_free(v);
        return st;
    }
    *out = v;
    *n_out = n;
    return SE_OK;
}

/* The keyword side: the best limit documents for p->text by BM25 (higher
 * is better, ties by row id), filters applied; an empty list for a text
 * with no terms. Ranked by the in-memory scorer (index_bm25.c, built at
 * the first keyword search), or by FTS5's bm25() when it could not be
 * built. */
static se_status keyword_side(se_index *idx, const se_index_search_params *p, size_t limit, se_fts_hit **kh, size_t *nk,
                              se_error *err) {
    *kh = NULL;
    *nk = 0;
    char *fsql = NULL;
    if (p->n_filters && !(fsql = filter_sql("", p->n_filters, "")))
        return se_err(err, SE_E_NOMEM, "out of memory");
    filter_bind fb = {p->filters, p->n_filters};
    pthread_mutex_lock(&idx->db_lock);
    se_status st = SE_OK;
    if (!idx->bm25 && !idx->bm25_failed) st = bm25_build(idx, err);
    if (!st && idx->bm25) {
        int64_t *allowed = NULL;
        size_t n_allowed = 0;
        if (fsql) {
            exec(idx, "BEGIN");
            st = filter_docs(idx, &fb, &allowed, &n_allowed, err);
            exec(idx, "COMMIT");
        }
        if (!st && (!fsql || n_allowed))
            st = se_bm25_search(idx->bm25, p->text, fsql ? allowed : NULL, n_allowed, limit, kh, nk, err);
        se_free(allowed);
    } else if (!st) {
        char *expr = NULL;
        st = se_fts_match_expr(idx->fts, p->text, &expr, err);
        if (!st && expr) {
            exec(idx, "BEGIN"); /* one read transaction: FTS5 reads several tables */
            st = se_fts_search(idx->db, idx->path, expr, fsql, p->n_filters ? bind_filters : NULL, &fb, limit, &idx->kw_q, kh,
                               nk, err);
            exec(idx, "COMMIT");
        }
        se_free(expr);
    }
    pthread_mutex_unlock(&idx->db_lock);
    se_free(fsql);
    return st;
}

/* Fills the first chunk (its number and span) of each of the n hits
 * whose vector_score is NaN (the documents only the keyword side
 * returned), in one read transaction. */
static se_status first_chunks(se_index *idx, se_index_hit *hits, size_t n, se_error *err) {
    pthread_mutex_lock(&idx->db_lock);
    se_status st = SE_OK;
    if (!idx->chunk_q && sqlite3_prepare_v3(idx->db, "SELECT chunk, start, end FROM chunks WHERE doc = ? ORDER BY chunk LIMIT 1",
                                            -1, SQLITE_PREPARE_PERSISTENT, &idx->chunk_q, NULL)) {
        st = db_err(idx, err, "cannot read a chunk");
        goto out;
    }
    exec(idx, "BEGIN");
    for (size_t i = 0; i < n && !st; i++) {
        if (!isnan(hits[i].vector_score)) continue;
        sqlite3_stmt *q = idx->chunk_q;
        sqlite3_bind_int64(q, 1, hits[i].doc);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            hits[i].chunk = (uint32_t)sqlite3_column_int64(q, 0);
            hits[i].start = (uint32_t)sqlite3_column_int64(q, 1);
            hits[i].end = (uint32_t)sqlite3_column_int64(q, 2);
        } else if (rc != SQLITE_DONE) {
            st = db_err(idx, err, "cannot read a chunk");
        }
        sqlite3_reset(q);
    }
    exec(idx, "COMMIT");
out:
    pthread_mutex_unlock(&idx->db_lock);
    return st;
}

/* Keyword (BM25 over the documents' text) and hybrid (the vector search's
 * best chunk per document fused with BM25) searches. The keyword side
 * gives max(100, 10 k) candidates to the fusion, the vector side
 * max(20, 2 k) (index_fts.h); filters apply to both. A hit
 * keeps the vector side's best chunk; a document only the keyword side
 * found gets its first chunk. */
static se_status search_text(se_index *idx, const float *query, const se_index_search_params *p, se_index_hit *hits,
                             size_t *n_hits, se_error *err) {
    if (!n_hits) return se_err(err, SE_E_INVALID, "se_index_search: NULL argument");
    *n_hits = 0;
    if (p->mode != SE_SEARCH_KEYWORD && p->mode != SE_SEARCH_HYBRID)
        return se_err(err, SE_E_INVALID, "se_index_search: unknown search mode %d", (int)p->mode);
    const char *mname = p->mode == SE_SEARCH_KEYWORD ? "keyword" : "hybrid";
    if (!p->text) return se_err(err, SE_E_INVALID, "se_index_search: a %s search needs the query text (params.text)", mname);
    if (p->mode == SE_SEARCH_HYBRID && !query)
        return se_err(err, SE_E_INVALID, "se_index_search: a hybrid search needs the query vector as well as its text");
    if (p->fusion != SE_FUSION_DEFAULT && p->fusion != SE_FUSION_RRF && p->fusion != SE_FUSION_SCORE)
        return se_err(err, SE_E_INVALID, "se_index_search: unknown fusion %d", (int)p->fusion);
    if (isnan(p->alpha) || p->alpha > 1)
        return se_err(err, SE_E_RANGE, "se_index_search: alpha = %g (want 0..1, or negative for the default)", (double)p->alpha);
    se_status cs = check_filters(p->filters, p->n_filters, err);
    if (cs) return cs;
    if (!idx->has_fts) {
        if (idx->format < 2)
            return se_err(err, SE_E_UNSUPPORTED,
                          "%s: a %s search needs the keyword index, which this index (format %d, made by an older sembed)"
                          " does not have yet; upgrade it in place with `sembed index upgrade %s` (any writable"
                          " open upgrades it: `sembed index add`, se_index_open with read_only false)",
                          idx->path, mname, idx->format, idx->path);
        return se_err(err, SE_E_UNSUPPORTED, "%s: a %s search needs SQLite's FTS5, which this SQLite (%s) lacks", idx->path,
                      mname, sqlite3_libversion());
    }
    if (p->k == 0) return SE_OK;
    if (!hits) return se_err(err, SE_E_INVALID, "se_index_search: NULL hits");
    size_t cand = p->mode == SE_SEARCH_KEYWORD ? p->k : p->k > SIZE_MAX / 10 ? SIZE_MAX : p->k * 10;
    if (p->mode == SE_SEARCH_HYBRID && cand < 100) cand = 100;
    se_fts_hit *kh = NULL;
    size_t nk = 0;
    se_status st = keyword_side(idx, p, cand, &kh, &nk, err);
    if (st) return st;
    if (p->mode == SE_SEARCH_KEYWORD) {
        size_t n = nk < p->k ? nk : p->k;
        for (size_t i = 0; i < n; i++) hits[i] = (se_index_hit){kh[i].doc, 0, 0, 0, kh[i].score, NAN, kh[i].score};
        if (n) st = first_chunks(idx, hits, n, err);
        se_free(kh);
        if (!st) *n_hits = n;
        return st;
    }
    /* hybrid: the vector side's best chunk per document */
    size_t total = se_vx_count(idx->vx);
    /* the vector side: max(SE_FUSE_VECTOR_MIN, SE_FUSE_VECTOR_MULT k) documents (fewer than the
     * keyword side's: HNSW's cost grows with them, BM25's barely) */
    size_t vcand = p->k > SIZE_MAX / SE_FUSE_VECTOR_MULT ? SIZE_MAX : p->k * SE_FUSE_VECTOR_MULT;
    if (vcand < SE_FUSE_VECTOR_MIN) vcand = SE_FUSE_VECTOR_MIN;
    size_t nv_cap = vcand < total ? vcand : total;
    se_index_hit *vh = se_malloc_array(nv_cap ? nv_cap : 1, sizeof *vh);
    se_fuse_item *vi = se_malloc_array(nv_cap + 1, sizeof *vi), *ki = se_malloc_array(nk + 1, sizeof *ki);
    se_fused *fu = se_malloc_array(nv_cap + nk + 1, sizeof *fu);
    size_t nv = 0, nf = 0;
    if (!vh || !vi || !ki || !fu) {
        st = se_err(err, SE_E_NOMEM, "out of memory");
        goto out;
    }
    se_index_search_params vp = *p;
    vp.mode = SE_SEARCH_VECTOR;
    vp.k = nv_cap;
    vp.best_chunk_per_doc = true;
    if (nv_cap && (st = se_index_search(idx, query, &vp, vh, &nv, err))) goto out;
    for (size_t i = 0; i < nv; i++) vi[i] = (se_fuse_item){vh[i].doc, vh[i].score};
    for (size_t i = 0; i < nk; i++) ki[i] = (se_fuse_item){kh[i].doc, kh[i].score};
    se_fusion method = p->fusion;
    float alpha = p->alpha;
    if (method == SE_FUSION_DEFAULT && alpha >= 0) /* an explicit alpha: score fusion, as --fusion score */
        method = SE_FUSION_SCORE;
    else if (method == SE_FUSION_SCORE && alpha < 0)
        alpha = SE_FUSE_DEFAULT_ALPHA;
    /* SE_FUSION_DEFAULT with alpha < 0: se_fuse weighs each query by its vector side's spread */
    se_fuse(vi, nv, ki, nk, method, alpha, p->rrf_k, fu, &nf);
    size_t n = nf < p->k ? nf : p->k;
    for (size_t i = 0; i < n; i++) {
        const se_fused *f = &fu[i];
        float vs = f->vi >= 0 ? vh[f->vi].score : NAN, ks = f->ki >= 0 ? kh[f->ki].score : NAN;
        const se_index_hit *h = f->vi >= 0 ? &vh[f->vi] : NULL;
        hits[i] = (se_index_hit){f->doc, h ? h->chunk : 0, h ? h->start : 0, h ? h->end : 0, f->score, vs, ks};
    }
    if (n) st = first_chunks(idx, hits, n, err);
    if (!st) *n_hits = n;
out:
    se_free(kh);
    se_free(vh);
    se_free(vi);
    se_free(ki);
    se_free(fu);
    return st;
}

se_status se_index_fetch(se_index *idx, int64_t doc, se_index_doc_out *out, se_error *err) {
    if (!idx || !out) return se_err(err, SE_E_INVALID, "se_index_fetch: NULL argument");
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&idx->db_lock);
    sqlite3_stmt *q;
    se_status st = SE_OK;
    if (sqlite3_prepare_v2(idx->db,
                           idx->format >= 4 ? "SELECT ext_id, text, meta, title FROM docs WHERE id = ?"
                                            : "SELECT ext_id, text, meta, NULL FROM docs WHERE id = ?",
                           -1, &q, NULL)) {
        st = db_err(idx, err, "cannot read a document");
        goto out;
    }
    sqlite3_bind_int64(q, 1, doc);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        out->id = se_strdup((const char *)sqlite3_column_text(q, 0));
        out->text = se_strdup((const char *)sqlite3_column_text(q, 1));
        out->meta = sqlite3_column_type(q, 2) == SQLITE_NULL ? NULL : se_strdup((const char *)sqlite3_column_text(q, 2));
        out->title = sqlite3_column_type(q, 3) == SQLITE_NULL ? NULL : se_strdup((const char *)sqlite3_column_text(q, 3));
        if (!out->id || !out->text || (sqlite3_column_type(q, 2) != SQLITE_NULL && !out->meta) ||
            (sqlite3_column_type(q, 3) != SQLITE_NULL && !out->title)) {
            se_free(out->id);
            se_free(out->text);
            se_free(out->meta);
            se_free(out->title);
            memset(out, 0, sizeof *out);
            st = se_err(err, SE_E_NOMEM, "out of memory");
        }
    } else if (rc == SQLITE_DONE) {
        st = se_err(err, SE_E_RANGE, "%s: document %lld does not exist", idx->path, (long long)doc);
    } else {
        st = db_err(idx, err, "cannot read a document");
    }
    sqlite3_finalize(q);
out:
    pthread_mutex_unlock(&idx->db_lock);
    return st;
}

se_status se_index_get_info(se_index *idx, se_index_info *out, se_error *err) {
    if (!idx || !out) return se_err(err, SE_E_INVALID, "se_index_get_info: NULL argument");
    memset(out, 0, sizeof *out);
    out->dim = idx->dim;
    out->params = idx->p;
    out->params.model_fingerprint = __atomic_load_n(&idx->fingerprint, __ATOMIC_ACQUIRE);
    out->format_version = idx->format;
    out->n_vectors = se_vx_count(idx->vx);
    size_t slots, nfree, bytes;
    se_vx_stats(idx->vx, &slots, &nfree, &bytes);
    out->n_free_slots = nfree;
    out->memory_bytes = bytes;
    pthread_mutex_lock(&idx->db_lock);
    sqlite3_stmt *q;
    se_status st = SE_OK;
    if (sqlite3_prepare_v2(idx->db, "SELECT COUNT(*) FROM docs", -1, &q, NULL) || sqlite3_step(q) != SQLITE_ROW)
        st = db_err(idx, err, "cannot count documents");
    else
        out->n_docs = (size_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    pthread_mutex_unlock(&idx->db_lock);
    return st;
}

/* Whether any document's metadata has the top-level field key (a scan of
 * the documents, through SQLite's json_each). */
se_status se_index_has_meta_key(se_index *idx, const char *key, bool *found, se_error *err) {
    if (found) *found = false;
    if (!idx || !key || !found) return se_err(err, SE_E_INVALID, "se_index_has_meta_key: NULL argument");
    pthread_mutex_lock(&idx->db_lock);
    sqlite3_stmt *q = NULL;
    se_status st = SE_OK;
    if (sqlite3_prepare_v2(idx->db,
                           "SELECT EXISTS (SELECT 1 FROM docs d, json_each(d.meta) je WHERE d.meta IS NOT NULL AND je.key = ?1)",
                           -1, &q, NULL) ||
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC) || sqlite3_step(q) != SQLITE_ROW)
        st = db_err(idx, err, "cannot look up a metadata field");
    else
        *found = sqlite3_column_int(q, 0) != 0;
    sqlite3_finalize(q);
    pthread_mutex_unlock(&idx->db_lock);
    return st;
}

/* Records fp as the index's model fingerprint (one transaction). Called
 * with write_lock held. */
static se_status record_fingerprint(se_index *idx, const char *fp, se_error *err) {
    char *copy = se_strdup(fp);
    if (!copy) return se_err(err, SE_E_NOMEM, "out of memory");
    pthread_mutex_lock(&idx->db_lock);
    se_status st = SE_OK;
    if (exec(idx, "BEGIN IMMEDIATE") || meta_put(idx, "model_fingerprint", "%s", fp) || exec(idx, "COMMIT")) {
        st = db_err(idx, err, "cannot record the model fingerprint");
        exec(idx, "ROLLBACK");
    }
    pthread_mutex_unlock(&idx->db_lock);
    if (st) {
        se_free(copy);
        return st;
    }
    /* se_index_get_info may read it from another thread at the same time;
     * the old value (NULL or a malformed record) stays allocated until close */
    se_free(idx->fp_old);
    idx->fp_old = idx->fingerprint;
    __atomic_store_n(&idx->fingerprint, copy, __ATOMIC_RELEASE);
    return SE_OK;
}

/* Compares fingerprint with the recorded one field by field (see
 * sembed.h). The message names each differing field with both values,
 * the index's first; a dtype difference alone is a warning. */
se_status se_index_check_model(se_index *idx, const char *fingerprint, se_log_fn log_fn, void *log_user,
                               se_error *err) {
    if (!idx || !fingerprint) return se_err(err, SE_E_INVALID, "se_index_check_model: NULL argument");
    fp_fields m, x;
    if (fp_parse(fingerprint, &m))
        return se_err(err, SE_E_INVALID, "model fingerprint '%.100s' is malformed (want \"arch=... dim=... ...\")", fingerprint);
    pthread_mutex_lock(&idx->write_lock);
    se_status st = SE_OK;
    if (!idx->fingerprint || fp_parse(idx->fingerprint, &x)) {
        /* made before fingerprints (or a damaged record): the dimension is
         * all that can be checked */
        char *end;
        unsigned long long d = strtoull(fp_get(&m, "dim"), &end, 10);
        if (*end || d != idx->dim) {
            st = se_err(err, SE_E_INVALID, "%s: the index holds %zu-dimensional vectors, the model makes dim=%s", idx->path,
                        idx->dim, fp_get(&m, "dim"));
        } else if (idx->read_only) {
            logf_(log_fn, log_user, SE_LOG_INFO,
                  "%s: the index records no model fingerprint (made by an older sembed); not recorded now (opened read-only)",
                  idx->path);
        } else {
            const char *old = idx->fingerprint ? "a malformed one" : "none";
            st = record_fingerprint(idx, fingerprint, err);
            if (!st)
                logf_(log_fn, log_user, SE_LOG_INFO, "%s: the index recorded %s as its model fingerprint; recorded this model's: %s",
                      idx->path, old, fingerprint);
        }
        pthread_mutex_unlock(&idx->write_lock);
        return st;
    }
    char diff[256] = "";
    size_t off = 0;
    const char *dtype_i = NULL, *dtype_m = NULL;
    for (int pass = 0; pass < 2; pass++) { /* the index's fields, then the model's extra ones */
        const fp_fields *a = pass ? &m : &x, *b = pass ? &x : &m;
        for (size_t i = 0; i < a->n; i++) {
            const char *va = a->val[i], *vb = fp_get(b, a->key[i]);
            if (pass && vb) continue; /* compared in pass 0 */
            const char *vi = pass ? vb : va, *vm = pass ? va : vb;
            if (vi && vm && !strcmp(vi, vm)) continue;
            if (!strcmp(a->key[i], "dtype") && vi && vm) {
                dtype_i = vi, dtype_m = vm;
                continue;
            }
            if (off < sizeof diff)
                off += (size_t)snprintf(diff + off, sizeof diff - off, "%s%s %s (index) vs %s (model)", off ? "; " : "",
                                        a->key[i], vi ? vi : "(none)", vm ? vm : "(none)");
        }
    }
    if (off)
        st = se_err(err, SE_E_INVALID, "%s: built with another model: %s", idx->path, diff);
    else if (dtype_i)
        logf_(log_fn, log_user, SE_LOG_WARN,
              "%s: built with the same model at dtype %s, this model computes in %s: vectors agree closely, not bit for bit",
              idx->path, dtype_i, dtype_m);
    pthread_mutex_unlock(&idx->write_lock);
    return st;
}
