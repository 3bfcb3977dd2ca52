/*
 * test_index.c - the vector index: HNSW recall against exact search (fixed
 * seeds), deletes with slot reuse, snapshot round trips bit for bit, the
 * persistent se_index (add, replace, delete, filters, reopen, damaged
 * files), and searches racing an add (run under TSan by `make tsan`).
 * Issue 9: foreign files left untouched, model fingerprints, read-only use
 * in a folder nobody may write (a child drops to nobody when run as root),
 * one file at rest, stale and crafted graph snapshots, non-finite and
 * overflowing vectors, the filter-term limit, failure paths.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "alloc.h"
#include "sembed.h"
#include "test.h"
#include "vec_index.h"

static uint64_t rng_state = 12345;
static double urand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static float nrand(void) { /* Box-Muller */
    double u = urand() + 1e-12, v = urand();
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

/* n points in dim around n_clusters random centres (spread s), unit norm. */
static float *clustered(size_t n, size_t dim, size_t n_clusters, float s, uint64_t seed) {
    rng_state = seed;
    float *c = malloc(n_clusters * dim * sizeof *c), *x = malloc(n * dim * sizeof *x);
    for (size_t i = 0; i < n_clusters * dim; i++) c[i] = nrand();
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)(urand() * n_clusters);
        double ss = 0;
        for (size_t d = 0; d < dim; d++) {
            x[i * dim + d] = c[k * dim + d] + s * nrand();
            ss += x[i * dim + d] * x[i * dim + d];
        }
        for (size_t d = 0; d < dim; d++) x[i * dim + d] /= (float)sqrt(ss);
    }
    free(c);
    return x;
}

/* Exact top k by dot over the rows with alive[i]. */
static void exact_topk(const float *x, size_t n, size_t dim, const float *q, size_t k, const uint8_t *alive,
                       int64_t *out) {
    float *best = malloc(k * sizeof *best);
    for (size_t t = 0; t < k; t++) best[t] = -1e30f, out[t] = -1;
    for (size_t i = 0; i < n; i++) {
        if (alive && !alive[i]) continue;
        float s = 0;
        for (size_t d = 0; d < dim; d++) s += x[i * dim + d] * q[d];
        if (s <= best[k - 1]) continue;
        size_t t = k - 1;
        while (t > 0 && best[t - 1] < s) {
            best[t] = best[t - 1];
            out[t] = out[t - 1];
            t--;
        }
        best[t] = s;
        out[t] = (int64_t)i;
    }
    free(best);
}

static double recall_at(se_vx *vx, const float *x, size_t n, size_t dim, const float *qs, size_t nq, size_t k,
                        size_t ef, const uint8_t *alive) {
    int64_t *gt = malloc(k * sizeof *gt);
    se_vx_hit *h = malloc(k * sizeof *h);
    size_t found = 0, total = 0;
    for (size_t q = 0; q < nq; q++) {
        exact_topk(x, n, dim, qs + q * dim, k, alive, gt);
        size_t nh = 0;
        se_error err;
        CHECK(se_vx_search(vx, qs + q * dim, k, ef, NULL, NULL, h, &nh, &err) == SE_OK);
        for (size_t t = 0; t < k; t++) {
            if (gt[t] < 0) continue;
            total++;
            for (size_t u = 0; u < nh; u++)
                if (h[u].label == gt[t]) {
                    found++;
                    break;
                }
        }
        for (size_t u = 0; u < nh; u++) CHECK(!alive || alive[h[u].label]);
    }
    free(gt);
    free(h);
    return total ? (double)found / (double)total : 1.0;
}

TEST(hnsw_recall_delete_reuse_roundtrip) {
    const size_t n = 4000, dim = 48, nq = 200, k = 10;
    float *x = clustered(n, dim, 40, 0.35f, 7);
    float *qs = clustered(nq, dim, 40, 0.35f, 7 + 1);
    se_vx_params p = {SE_INDEX_HNSW, SE_METRIC_COSINE, 16, 200, 42};
    se_vx *vx;
    se_error err;
    CHECK(se_vx_new(dim, &p, &vx, &err) == SE_OK);
    for (size_t i = 0; i < n; i++) CHECK(se_vx_add(vx, (int64_t)i, x + i * dim, false, NULL, &err) == SE_OK);
    CHECK(se_vx_add(vx, 5, x, false, NULL, &err) == SE_E_INVALID); /* duplicate label */
    double r = recall_at(vx, x, n, dim, qs, nq, k, 64, NULL);
    fprintf(stderr, "  hnsw recall@10 (n=%zu, ef=64): %.4f\n", n, r);
    CHECK(r >= 0.95);
    CHECK(recall_at(vx, x, n, dim, qs, nq, k, 10, NULL) < r + 1e-9); /* smaller ef, no better */

    /* save -> load -> save is the same bytes, and searches agree */
    uint8_t *b1, *b2;
    size_t l1, l2;
    CHECK(se_vx_save(vx, &b1, &l1, &err) == SE_OK);
    se_vx *vy;
    CHECK(se_vx_load(b1, l1, dim, -1, &vy, &err) == SE_OK);
    CHECK(se_vx_missing_vectors(vy) == n);
    for (size_t i = 0; i < n; i++) {
        float v[48];
        CHECK(se_vx_get_vector(vx, (int64_t)i, v));
        CHECK(se_vx_set_vector(vy, (int64_t)i, v, true, NULL) == SE_OK);
    }
    CHECK(se_vx_missing_vectors(vy) == 0);
    CHECK(se_vx_save(vy, &b2, &l2, &err) == SE_OK);
    CHECK(l1 == l2 && memcmp(b1, b2, l1) == 0);
    for (size_t q = 0; q < 20; q++) {
        se_vx_hit h1[10], h2[10];
        size_t n1, n2;
        se_vx_search(vx, qs + q * dim, k, 32, NULL, NULL, h1, &n1, &err);
        se_vx_search(vy, qs + q * dim, k, 32, NULL, NULL, h2, &n2, &err);
        CHECK(n1 == n2);
        for (size_t t = 0; t < n1 && t < n2; t++) CHECK(h1[t].label == h2[t].label && h1[t].score == h2[t].score);
    }
    /* corrupt bytes are refused */
    b2[l2 / 2] ^= 1;
    se_vx *vz = NULL;
    CHECK(se_vx_load(b2, l2, dim, -1, &vz, &err) == SE_E_FORMAT && strstr(err.msg, "checksum"));
    CHECK(se_vx_load(b1, l1 - 9, dim, -1, &vz, &err) == SE_E_FORMAT);
    CHECK(se_vx_load(b1, l1, dim + 1, -1, &vz, &err) == SE_E_FORMAT);
    se_free(b1);
    se_free(b2);
    se_vx_free(vy);

    /* delete 30% (entry point included), recall over the rest holds */
    uint8_t *alive = malloc(n);
    memset(alive, 1, n);
    int64_t *del = malloc(n * sizeof *del);
    size_t nd = 0;
    rng_state = 99;
    for (size_t i = 0; i < n; i++)
        if (urand() < 0.3) del[nd++] = (int64_t)i, alive[i] = 0;
    size_t removed;
    CHECK(se_vx_remove(vx, del, nd, &removed, &err) == SE_OK && removed == nd);
    CHECK(se_vx_count(vx) == n - nd);
    r = recall_at(vx, x, n, dim, qs, nq, k, 64, alive);
    fprintf(stderr, "  hnsw recall@10 after deleting %zu: %.4f\n", nd, r);
    CHECK(r >= 0.95);
    size_t slots, nfree;
    se_vx_stats(vx, &slots, &nfree, NULL);
    CHECK(slots == n && nfree == nd);
    /* re-adding reuses the freed slots: no growth */
    for (size_t i = 0; i < nd; i++) CHECK(se_vx_add(vx, (int64_t)(n + i), x + del[i] * dim, false, NULL, &err) == SE_OK);
    se_vx_stats(vx, &slots, &nfree, NULL);
    CHECK(slots == n && nfree == 0);
    /* the re-added copies answer for their originals */
    for (size_t i = 0; i < 50 && i < nd; i++) {
        se_vx_hit h[1];
        size_t nh;
        se_vx_search(vx, x + del[i] * dim, 1, 64, NULL, NULL, h, &nh, &err);
        CHECK(nh == 1 && h[0].score > 0.9999f);
    }
    /* remove everything, then the index is empty and usable */
    int64_t *all = malloc((n + nd) * sizeof *all);
    for (size_t i = 0; i < n + nd; i++) all[i] = (int64_t)i;
    CHECK(se_vx_remove(vx, all, n + nd, &removed, &err) == SE_OK && removed == n);
    se_vx_hit h[3];
    size_t nh = 9;
    CHECK(se_vx_search(vx, qs, 3, 10, NULL, NULL, h, &nh, &err) == SE_OK && nh == 0);
    CHECK(se_vx_add(vx, 1, x, false, NULL, &err) == SE_OK);
    CHECK(se_vx_search(vx, x, 3, 10, NULL, NULL, h, &nh, &err) == SE_OK && nh == 1 && h[0].label == 1);
    free(all);
    free(alive);
    free(del);
    se_vx_free(vx);
    free(x);
    free(qs);
}

TEST(flat_and_l2_exact) {
    const size_t n = 500, dim = 20;
    float *x = clustered(n, dim, 5, 0.5f, 3);
    for (int metric = 0; metric < 3; metric++) {
        se_vx_params p = {SE_INDEX_FLAT, (se_metric)metric, 16, 200, 1};
        se_vx *vx;
        se_error err;
        CHECK(se_vx_new(dim, &p, &vx, &err) == SE_OK);
        for (size_t i = 0; i < n; i++) {
            float v[20];
            for (size_t d = 0; d < dim; d++) v[d] = x[i * dim + d] * (1.0f + (float)(i % 7)); /* not unit norm */
            CHECK(se_vx_add(vx, (int64_t)i * 3, v, false, NULL, &err) == SE_OK);
        }
        const float *q = x + 17 * dim;
        se_vx_hit h[5];
        size_t nh;
        CHECK(se_vx_search(vx, q, 5, 0, NULL, NULL, h, &nh, &err) == SE_OK && nh == 5);
        /* brute force in double */
        double best = -1e30;
        int64_t bl = -1;
        for (size_t i = 0; i < n; i++) {
            double s = 0, qq = 0, vv = 0, l2 = 0;
            for (size_t d = 0; d < dim; d++) {
                double v = x[i * dim + d] * (1.0 + (double)(i % 7));
                s += v * q[d];
                qq += (double)q[d] * q[d];
                vv += v * v;
                l2 += (v - q[d]) * (v - q[d]);
            }
            double sc = metric == 0 ? s / sqrt(qq * vv) : metric == 1 ? s : -sqrt(l2);
            if (sc > best) best = sc, bl = (int64_t)i * 3;
        }
        CHECK(h[0].label == bl);
        CHECK(fabs(h[0].score - best) < 1e-4 * (1 + fabs(best)));
        for (size_t t = 1; t < nh; t++) CHECK(h[t].score <= h[t - 1].score);
        se_vx_free(vx);
    }
    free(x);
}

/* ---- se_index ---- */

static char tmpdir[256];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sembed-test-index-XXXXXX");
    if (!mkdtemp(tmpdir)) abort();
}

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

static size_t log_count, log_warns;
static char log_last[512];
static void count_log(se_log_level lv, const char *msg, void *user) {
    (void)user;
    if (getenv("TEST_VERBOSE")) fprintf(stderr, "  log: %s\n", msg);
    log_count++;
    if (lv == SE_LOG_WARN) log_warns++;
    snprintf(log_last, sizeof log_last, "%s", msg);
}

TEST(index_persistence) {
    const size_t n = 600, dim = 32;
    float *x = clustered(n, dim, 12, 0.4f, 11);
    char path[512];
    path_in(path, sizeof path, "a.idx");
    se_index_params p = se_index_default_params();
    p.model = "/models/x";
    se_index *idx;
    se_error err;
    CHECK(se_index_create(path, dim, &p, &idx, &err) == SE_OK);
    se_index *idx2;
    CHECK(se_index_create(path, dim, &p, &idx2, &err) == SE_E_IO && strstr(err.msg, "exists")); /* never overwrites */
    char ids[600][16], meta[600][64], text[600][32];
    se_index_doc *docs = calloc(n, sizeof *docs);
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "doc-%zu", i);
        snprintf(text[i], sizeof text[i], "text of %zu", i);
        snprintf(meta[i], sizeof meta[i], "{\"lang\": \"%s\", \"year\": %zu, \"tags\": [\"t%zu\"]}",
                 i % 50 == 0 ? "fr" : "en", 2000 + i % 3, i % 4);
        docs[i] = (se_index_doc){ids[i], text[i], meta[i], 1, NULL, x + i * dim, NULL};
    }
    CHECK(se_index_add(idx, docs, n / 2, &err) == SE_OK);
    CHECK(se_index_add(idx, docs + n / 2, n - n / 2, &err) == SE_OK);
    /* bad input: names the document */
    se_index_doc bad = {"zz", "t", "{not json", 1, NULL, x, NULL};
    CHECK(se_index_add(idx, &bad, 1, &err) == SE_E_FORMAT && strstr(err.msg, "zz"));
    float nanv[32];
    memcpy(nanv, x, sizeof nanv);
    nanv[3] = NAN;
    bad = (se_index_doc){"zz", "t", NULL, 1, NULL, nanv, NULL};
    CHECK(se_index_add(idx, &bad, 1, &err) == SE_E_INVALID && strstr(err.msg, "zz"));
    uint32_t spans[4] = {0, 3, 2, 99};
    bad = (se_index_doc){"zz", "text", NULL, 2, spans, x, NULL};
    CHECK(se_index_add(idx, &bad, 1, &err) == SE_E_RANGE);

    se_index_info info;
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK);
    CHECK(info.n_docs == n && info.n_vectors == n && info.dim == dim && !strcmp(info.params.model, "/models/x"));

    /* search finds each doc by its own vector */
    se_index_search_params sp = se_index_search_default_params();
    sp.k = 5;
    se_index_hit hits[20];
    size_t nh;
    size_t self_found = 0;
    for (size_t i = 0; i < n; i += 7) {
        CHECK(se_index_search(idx, x + i * dim, &sp, hits, &nh, &err) == SE_OK && nh == 5);
        se_index_doc_out d;
        CHECK(se_index_fetch(idx, hits[0].doc, &d, &err) == SE_OK);
        if (!strcmp(d.id, ids[i])) self_found++;
        se_free(d.id);
        se_free(d.text);
        se_free(d.meta);
    }
    CHECK(self_found >= (n / 7) * 95 / 100);

    /* filters: selective (12 fr docs) searched exactly, never loses results */
    se_index_filter f[2] = {{"lang", "fr"}, {"year", "2000"}};
    sp.filters = f;
    sp.n_filters = 1;
    sp.k = 20;
    CHECK(se_index_search(idx, x + 3 * dim, &sp, hits, &nh, &err) == SE_OK);
    CHECK(nh == 12);
    for (size_t t = 0; t < nh; t++) {
        se_index_doc_out d;
        CHECK(se_index_fetch(idx, hits[t].doc, &d, &err) == SE_OK && strstr(d.meta, "\"fr\""));
        se_free(d.id);
        se_free(d.text);
        se_free(d.meta);
    }
    sp.n_filters = 2; /* fr and year 2000: i % 50 == 0 and i % 3 == 0 -> i % 150 == 0: 4 docs */
    CHECK(se_index_search(idx, x, &sp, hits, &nh, &err) == SE_OK && nh == 4);
    se_index_filter ft = {"tags", "t1"}; /* array membership */
    sp.filters = &ft;
    sp.n_filters = 1;
    sp.k = 10;
    CHECK(se_index_search(idx, x, &sp, hits, &nh, &err) == SE_OK && nh == 10);
    se_index_filter fb = {"bad\"key", "x"};
    sp.filters = &fb;
    CHECK(se_index_search(idx, x, &sp, hits, &nh, &err) == SE_E_INVALID);
    sp.n_filters = 0;

    /* replace doc-1 with doc-2's vector and two chunks; delete doc-3 */
    float two[64];
    memcpy(two, x + 2 * dim, dim * sizeof(float));
    memcpy(two + dim, x + 2 * dim, dim * sizeof(float));
    uint32_t sp2[4] = {0, 4, 5, 9};
    se_index_doc rep = {"doc-1", "replaced!", "{\"lang\": \"de\"}", 2, sp2, two, NULL};
    CHECK(se_index_add(idx, &rep, 1, &err) == SE_OK);
    const char *dl[2] = {"doc-3", "no-such-doc"};
    size_t ndel;
    CHECK(se_index_delete(idx, dl, 2, &ndel, &err) == SE_OK && ndel == 1);
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.n_docs == n - 1 && info.n_vectors == n);
    sp.k = 3;
    CHECK(se_index_search(idx, x + 2 * dim, &sp, hits, &nh, &err) == SE_OK && nh == 3);
    /* best chunk per doc: doc-1 appears once, with score ~1 */
    int seen1 = 0;
    for (size_t t = 0; t < nh; t++) {
        se_index_doc_out d;
        se_index_fetch(idx, hits[t].doc, &d, &err);
        if (!strcmp(d.id, "doc-1")) {
            seen1++;
            CHECK(!strcmp(d.text, "replaced!") && hits[t].end <= 9);
        }
        CHECK(strcmp(d.id, "doc-3") != 0);
        se_free(d.id);
        se_free(d.text);
        se_free(d.meta);
    }
    CHECK(seen1 == 1);

    /* close (flushes), reopen: identical answers */
    se_index_hit before[10], after[10];
    size_t nb, na;
    sp.k = 10;
    CHECK(se_index_search(idx, x + 9 * dim, &sp, before, &nb, &err) == SE_OK);
    CHECK(se_index_close(idx, &err) == SE_OK);
    log_count = 0;
    CHECK(se_index_open(path, false, count_log, NULL, &idx, &err) == SE_OK);
    CHECK(log_count == 0); /* the snapshot was current */
    CHECK(se_index_search(idx, x + 9 * dim, &sp, after, &na, &err) == SE_OK);
    CHECK(na == nb && memcmp(before, after, nb * sizeof *before) == 0);
    CHECK(se_index_close(idx, &err) == SE_OK);
    /* read-only open refuses writes */
    CHECK(se_index_open(path, true, NULL, NULL, &idx, &err) == SE_OK);
    CHECK(se_index_add(idx, docs, 1, &err) == SE_E_INVALID);
    CHECK(se_index_close(idx, &err) == SE_OK);
    free(docs);
    free(x);
}

TEST(index_bad_files) {
    se_index *idx;
    se_error err;
    char path[512];
    path_in(path, sizeof path, "missing.idx");
    CHECK(se_index_open(path, false, NULL, NULL, &idx, &err) == SE_E_IO && strstr(err.msg, "missing.idx"));
    path_in(path, sizeof path, "garbage.idx");
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 5000; i++) fputc(i * 7, f);
    fclose(f);
    CHECK(se_index_open(path, false, NULL, NULL, &idx, &err) == SE_E_FORMAT && strstr(err.msg, "not a sembed index"));
    /* an SQLite file that is not ours */
    path_in(path, sizeof path, "other.db");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'CREATE TABLE t(x)'", path);
    CHECK(system(cmd) == 0); /* the sqlite3 shell (setup.sh installs it) */
    CHECK(se_index_open(path, false, NULL, NULL, &idx, &err) == SE_E_FORMAT && strstr(err.msg, "not a sembed index"));
}

TEST(index_damage_recovery) {
    const size_t n = 300, dim = 16;
    float *x = clustered(n, dim, 6, 0.4f, 5);
    char path[512];
    path_in(path, sizeof path, "dmg.idx");
    se_index *idx;
    se_error err;
    CHECK(se_index_create(path, dim, NULL, &idx, &err) == SE_OK);
    char ids[300][16];
    se_index_doc *docs = calloc(n, sizeof *docs);
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "%zu", i);
        docs[i] = (se_index_doc){ids[i], "t", NULL, 1, NULL, x + i * dim, NULL};
    }
    CHECK(se_index_add(idx, docs, n, &err) == SE_OK);
    CHECK(se_index_close(idx, &err) == SE_OK);
    char cmd[1200];
    /* damage the graph snapshot: rebuilt with a warning, nothing lost */
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"UPDATE graph SET blob = CAST(substr(blob, 1, length(blob) / 2) || x'5A5A5A5A' || substr(blob, length(blob) / 2 + 5) AS BLOB)\"", path);
    CHECK(system(cmd) == 0);
    {
        log_count = 0;
        CHECK(se_index_open(path, false, count_log, NULL, &idx, &err) == SE_OK);
        CHECK(log_count == 1);
        se_index_info info;
        se_index_get_info(idx, &info, &err);
        CHECK(info.n_vectors == n);
        se_index_close(idx, &err);
    }
    /* a stale snapshot (rows added behind its back) is brought up to date */
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"DELETE FROM chunks WHERE doc = 5; DELETE FROM docs WHERE id = 5\"", path);
    CHECK(system(cmd) == 0);
    {
        log_count = 0;
        CHECK(se_index_open(path, false, count_log, NULL, &idx, &err) == SE_OK);
        CHECK(log_count == 1);
        se_index_info info;
        se_index_get_info(idx, &info, &err);
        CHECK(info.n_vectors == n - 1);
        se_index_close(idx, &err);
    }
    /* a damaged vector is an error naming the chunk */
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"UPDATE chunks SET vec = x'00' || substr(vec, 2) WHERE id = 7\"", path);
    CHECK(system(cmd) == 0);
    {
        CHECK(se_index_open(path, false, NULL, NULL, &idx, &err) == SE_E_FORMAT && strstr(err.msg, "chunk 7"));
    }
    free(docs);
    free(x);
}

/* ---- issue 9: foreign files, model fingerprints, read-only use, side
 * files, stale and crafted snapshots, non-finite vectors, filter limits ---- */

/* Reads a whole file into a new buffer (*n bytes); NULL when unreadable. */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    unsigned char *b = malloc(cap);
    size_t got;
    while (b && (got = fread(b + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) b = realloc(b, cap *= 2);
    }
    fclose(f);
    *n = len;
    return b;
}

/* How many of path's SQLite side files (-wal, -shm, -journal) exist. */
static int side_files(const char *path) {
    static const char *sfx[] = {"-wal", "-shm", "-journal"};
    int k = 0;
    for (int i = 0; i < 3; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        if (access(p, F_OK) == 0) k++;
    }
    return k;
}

/* Entries in a directory (without . and ..). */
static int dir_entries(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1) n = -1;
        pclose(p);
    }
    return n;
}

/* Creates an index at path with n one-chunk documents "d<i>" (vectors x). */
static void make_index(const char *path, size_t n, size_t dim, const float *x, const se_index_params *p) {
    se_index *idx;
    se_error err;
    CHECK(se_index_create(path, dim, p, &idx, &err) == SE_OK);
    char(*ids)[24] = malloc(n * sizeof *ids);
    se_index_doc *docs = calloc(n, sizeof *docs);
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "d%zu", i);
        docs[i] = (se_index_doc){ids[i], "t", NULL, 1, NULL, x + i * dim, NULL};
    }
    CHECK(se_index_add(idx, docs, n, &err) == SE_OK);
    CHECK(se_index_close(idx, &err) == SE_OK);
    free(ids);
    free(docs);
}

/* The external id of the best hit for q, into id (or "" when none). */
static void top_id(se_index *idx, const float *q, char *id, size_t cap) {
    se_index_search_params sp = se_index_search_default_params();
    sp.k = 1;
    se_index_hit h[1];
    size_t nh = 0;
    se_error err;
    id[0] = 0;
    if (se_index_search(idx, q, &sp, h, &nh, &err) != SE_OK || nh != 1) return;
    se_index_doc_out d;
    if (se_index_fetch(idx, h[0].doc, &d, &err) != SE_OK) return;
    snprintf(id, cap, "%s", d.id);
    se_free(d.id);
    se_free(d.text);
    se_free(d.meta);
}

/* Issue 9 item 4: opening an empty file, an unrelated SQLite database or
 * junk (read-only or writable) is refused and leaves the file exactly as
 * it was: same bytes, same mtime, no side files. */
TEST(index_open_leaves_foreign_files_alone) {
    char paths[3][512], cmd[800];
    path_in(paths[0], sizeof paths[0], "empty.idx");
    fclose(fopen(paths[0], "wb"));
    path_in(paths[1], sizeof paths[1], "foreign.db");
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'CREATE TABLE t(x); INSERT INTO t VALUES (42)'", paths[1]);
    CHECK(system(cmd) == 0);
    path_in(paths[2], sizeof paths[2], "junk.idx");
    FILE *f = fopen(paths[2], "wb");
    fputs("SQLite format 3 but not really, just text\n", f);
    fclose(f);
    for (int i = 0; i < 3; i++)
        for (int ro = 0; ro < 2; ro++) {
            size_t n0, n1;
            unsigned char *b0 = slurp(paths[i], &n0);
            struct stat s0, s1;
            stat(paths[i], &s0);
            se_index *idx = NULL;
            se_error err;
            se_status st = se_index_open(paths[i], ro, NULL, NULL, &idx, &err);
            CHECK_MSG(st == SE_E_FORMAT && strstr(err.msg, "not a sembed index") && strstr(err.msg, paths[i]),
                      "%s (read_only %d): status %d: %s", paths[i], ro, st, err.msg);
            CHECK(idx == NULL);
            unsigned char *b1 = slurp(paths[i], &n1);
            stat(paths[i], &s1);
            CHECK_MSG(b0 && b1 && n0 == n1 && memcmp(b0, b1, n0) == 0, "%s (read_only %d): %zu bytes became %zu",
                      paths[i], ro, n0, n1);
            CHECK(s0.st_mtim.tv_sec == s1.st_mtim.tv_sec && s0.st_mtim.tv_nsec == s1.st_mtim.tv_nsec);
            CHECK_MSG(side_files(paths[i]) == 0, "%s (read_only %d): side files left", paths[i], ro);
            free(b0);
            free(b1);
        }
    /* the foreign database still answers as before */
    snprintf(cmd, sizeof cmd, "test \"$(sqlite3 '%s' 'PRAGMA journal_mode; SELECT x FROM t')\" = \"$(printf 'delete\\n42')\"",
             paths[1]);
    CHECK(system(cmd) == 0);
}

static const char FP[] = "arch=bert dim=8 dtype=f32 config=0123456789abcdef tokenizer=1111111111111111 weights=2222222222222222";

/* Issue 9 item 5 (library part): the model fingerprint is recorded,
 * returned by se_index_get_info and checked field by field. */
TEST(index_model_fingerprint) {
    const size_t dim = 8;
    float *x = clustered(4, dim, 2, 0.3f, 9);
    char path[512], path2[512], cmd[1200];
    path_in(path, sizeof path, "fp.idx");
    se_index_params p = se_index_default_params();
    p.model = "models/x";
    p.model_fingerprint = "no fields here";
    se_index *idx;
    se_error err;
    CHECK(se_index_create(path, dim, &p, &idx, &err) == SE_E_INVALID && strstr(err.msg, "fingerprint"));
    p.model_fingerprint = FP;
    make_index(path, 4, dim, x, &p);
    CHECK(se_index_open(path, true, NULL, NULL, &idx, &err) == SE_OK);
    se_index_info info;
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.params.model_fingerprint &&
          !strcmp(info.params.model_fingerprint, FP));
    log_count = log_warns = 0;
    CHECK(se_index_check_model(idx, FP, count_log, NULL, &err) == SE_OK && log_count == 0);
    /* a fine-tuned copy: same headers, other weights */
    const char *ft = "arch=bert dim=8 dtype=f32 config=0123456789abcdef tokenizer=1111111111111111 weights=3333333333333333";
    CHECK(se_index_check_model(idx, ft, count_log, NULL, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "weights") && strstr(err.msg, "2222222222222222") && strstr(err.msg, "3333333333333333") &&
                  !strstr(err.msg, "config") && strstr(err.msg, path),
              "%s", err.msg);
    /* another architecture and dimension: both fields named with both values */
    const char *use = "arch=use dim=512 dtype=f32 config=0123456789abcdef tokenizer=1111111111111111 weights=2222222222222222";
    CHECK(se_index_check_model(idx, use, count_log, NULL, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "arch") && strstr(err.msg, "bert") && strstr(err.msg, "use") && strstr(err.msg, "dim") &&
                  strstr(err.msg, "512") && !strstr(err.msg, "weights"),
              "%s", err.msg);
    /* the same model at another precision: a warning, accepted */
    const char *bf = "arch=bert dim=8 dtype=bf16 config=0123456789abcdef tokenizer=1111111111111111 weights=2222222222222222";
    log_count = log_warns = 0;
    CHECK(se_index_check_model(idx, bf, count_log, NULL, &err) == SE_OK && log_warns == 1 && strstr(log_last, "bf16") &&
          strstr(log_last, "f32"));
    CHECK(se_index_check_model(idx, "garbage", NULL, NULL, &err) == SE_E_INVALID);
    CHECK(se_index_check_model(idx, NULL, NULL, NULL, &err) == SE_E_INVALID);
    CHECK(se_index_close(idx, &err) == SE_OK);

    /* an index made before fingerprints: opens; a check is accepted with a
     * notice, and records the fingerprint only when open for writing */
    path_in(path2, sizeof path2, "nofp.idx");
    p.model_fingerprint = NULL;
    make_index(path2, 4, dim, x, &p);
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"DELETE FROM meta WHERE key LIKE '%%fingerprint%%'\"", path2);
    CHECK(system(cmd) == 0);
    for (int pass = 0; pass < 2; pass++) {
        CHECK(se_index_open(path2, true, NULL, NULL, &idx, &err) == SE_OK);
        CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.params.model_fingerprint == NULL);
        log_count = 0;
        CHECK(se_index_check_model(idx, FP, count_log, NULL, &err) == SE_OK && log_count == 1);
        /* a model of another dimension than the index is refused even so */
        CHECK(se_index_check_model(idx, use, NULL, NULL, &err) == SE_E_INVALID && strstr(err.msg, "dim"));
        CHECK(se_index_close(idx, &err) == SE_OK);
    }
    CHECK(se_index_open(path2, false, NULL, NULL, &idx, &err) == SE_OK);
    log_count = 0;
    CHECK(se_index_check_model(idx, FP, count_log, NULL, &err) == SE_OK && log_count == 1 && strstr(log_last, "record"));
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.params.model_fingerprint &&
          !strcmp(info.params.model_fingerprint, FP));
    CHECK(se_index_close(idx, &err) == SE_OK);
    CHECK(se_index_open(path2, true, NULL, NULL, &idx, &err) == SE_OK);
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.params.model_fingerprint &&
          !strcmp(info.params.model_fingerprint, FP));
    CHECK(se_index_check_model(idx, ft, NULL, NULL, &err) == SE_E_INVALID && strstr(err.msg, "weights"));
    CHECK(se_index_close(idx, &err) == SE_OK);
    free(x);
}

/* Opens path read-only and searches it in a child process that, when the
 * test runs as root (who ignores permission bits), drops to nobody; then
 * checks that a writable open is refused with the reason. Returns the
 * child's exit code: 0 when all of that held. */
static int search_as_nobody(const char *path, const float *q) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
        se_index *ix;
        se_error e;
        if (se_index_open(path, true, NULL, NULL, &ix, &e) != SE_OK) {
            fprintf(stderr, "  child: %s\n", e.msg);
            _exit(1);
        }
        se_index_search_params sp = se_index_search_default_params();
        sp.k = 3;
        se_index_hit h[3];
        size_t nh = 0;
        int rc = se_index_search(ix, q, &sp, h, &nh, &e) == SE_OK && nh == 3 ? 0 : 2;
        if (rc) fprintf(stderr, "  child: search: %s\n", e.msg);
        if (se_index_close(ix, &e) != SE_OK) rc = 4;
        /* for writing: refused up front, with the reason */
        ix = NULL;
        if (!rc && (se_index_open(path, false, NULL, NULL, &ix, &e) != SE_E_IO || !strstr(e.msg, "read-only"))) {
            fprintf(stderr, "  child: writable open: %s\n", ix ? "succeeded" : e.msg);
            rc = 5;
        }
        _exit(rc);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return 100;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 101;
}

/* Issue 9 items 7 and 24: the index is one file at rest (after create +
 * add + close, and after a read-only open + search + close), and a
 * read-only index in a folder the user cannot write is searchable. */
TEST(index_read_only_folder_and_side_files) {
    const size_t n = 40, dim = 16;
    float *x = clustered(n, dim, 4, 0.4f, 17);
    char dir[512], path[600], cmd[1400];
    path_in(dir, sizeof dir, "rodir");
    CHECK(mkdir(dir, 0755) == 0);
    CHECK(chmod(tmpdir, 0711) == 0); /* nobody may pass through */
    snprintf(path, sizeof path, "%s/ro.idx", dir);
    make_index(path, n, dim, x, NULL);
    CHECK_MSG(dir_entries(dir) == 1, "after create + add + close: %d files", dir_entries(dir));
    se_index *idx;
    se_error err;
    CHECK(se_index_open(path, true, NULL, NULL, &idx, &err) == SE_OK);
    char id[32];
    top_id(idx, x + 5 * dim, id, sizeof id);
    CHECK(!strcmp(id, "d5"));
    CHECK(se_index_close(idx, &err) == SE_OK);
    CHECK_MSG(dir_entries(dir) == 1, "after a read-only search: %d files", dir_entries(dir));
    CHECK(se_index_open(path, false, NULL, NULL, &idx, &err) == SE_OK && se_index_close(idx, &err) == SE_OK);
    CHECK_MSG(dir_entries(dir) == 1, "after a writable open + close: %d files", dir_entries(dir));

    /* a folder nobody may write, a file nobody may write */
    CHECK(chmod(path, 0444) == 0 && chmod(dir, 0555) == 0);
    CHECK_MSG(search_as_nobody(path, x + 5 * dim) == 0, "read-only search in an unwritable folder failed");
    CHECK(side_files(path) == 0);
    /* an index left in WAL mode at rest (as every index was before) */
    CHECK(chmod(dir, 0755) == 0);
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'PRAGMA journal_mode=WAL' >/dev/null", path);
    CHECK(system(cmd) == 0 && side_files(path) == 0);
    CHECK(chmod(dir, 0555) == 0);
    CHECK_MSG(search_as_nobody(path, x + 5 * dim) == 0, "read-only search of a WAL-mode index in an unwritable folder failed");
    CHECK(side_files(path) == 0);
    CHECK(chmod(dir, 0755) == 0 && chmod(path, 0644) == 0);
    /* the next writable open puts it back in rollback mode at rest */
    CHECK(se_index_open(path, false, NULL, NULL, &idx, &err) == SE_OK && se_index_close(idx, &err) == SE_OK);
    size_t nb;
    unsigned char *b = slurp(path, &nb);
    CHECK(b && nb > 100 && b[18] == 1 && b[19] == 1);
    free(b);
    CHECK(dir_entries(dir) == 1);
    free(x);
}

/* Issue 9 item 8: a stale snapshot (a writer that never saw another
 * writer's add) is brought up to date in memory by every read-only open,
 * and saved by the next writable open, which says so. */
TEST(index_stale_snapshot_saved) {
    const size_t n = 100, dim = 16;
    float *x = clustered(n + 2, dim, 5, 0.4f, 23);
    char path[512];
    path_in(path, sizeof path, "stale.idx");
    make_index(path, n, dim, x, NULL);
    se_index *a, *b, *idx;
    se_error err;
    CHECK(se_index_open(path, false, NULL, NULL, &a, &err) == SE_OK);
    CHECK(se_index_open(path, false, NULL, NULL, &b, &err) == SE_OK);
    se_index_doc db = {"from-b", "t", NULL, 1, NULL, x + n * dim, NULL}, da = {"from-a", "t", NULL, 1, NULL, x + (n + 1) * dim, NULL};
    CHECK(se_index_add(b, &db, 1, &err) == SE_OK);
    CHECK(se_index_close(b, &err) == SE_OK);
    CHECK(se_index_add(a, &da, 1, &err) == SE_OK);
    CHECK(se_index_close(a, &err) == SE_OK); /* its snapshot lacks from-b */
    char id[32];
    for (int pass = 0; pass < 2; pass++) {
        log_count = 0;
        CHECK(se_index_open(path, true, count_log, NULL, &idx, &err) == SE_OK);
        CHECK_MSG(log_count == 1 && strstr(log_last, "read-only") && strstr(log_last, "writable"), "%zu: %s", log_count,
                  log_last);
        top_id(idx, x + n * dim, id, sizeof id);
        CHECK(!strcmp(id, "from-b"));
        CHECK(se_index_close(idx, &err) == SE_OK);
    }
    log_count = 0;
    CHECK(se_index_open(path, false, count_log, NULL, &idx, &err) == SE_OK);
    CHECK_MSG(log_count == 1 && strstr(log_last, "saved"), "%zu: %s", log_count, log_last);
    CHECK(se_index_close(idx, &err) == SE_OK);
    log_count = 0;
    CHECK(se_index_open(path, true, count_log, NULL, &idx, &err) == SE_OK);
    CHECK(log_count == 0);
    top_id(idx, x + n * dim, id, sizeof id);
    CHECK(!strcmp(id, "from-b"));
    top_id(idx, x + (n + 1) * dim, id, sizeof id);
    CHECK(!strcmp(id, "from-a"));
    se_index_info info;
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.n_vectors == n + 2);
    CHECK(se_index_close(idx, &err) == SE_OK);
    free(x);
}

/* Snapshot layout offsets (vec_index.c se_vx_save). */
#define SNAP_N_SLOTS 48
#define SNAP_N_FREE 64

/* Recomputes a snapshot's trailing CRC-32 after the test edited it. */
static void snap_fix_crc(uint8_t *b, size_t len) {
    uint32_t crc = (uint32_t)crc32(0, b, (uInt)(len - 4));
    memcpy(b + len - 4, &crc, 4);
}

/* Issue 9 item 9 (loader): crafted counts are refused before anything is
 * allocated, and a duplicated free-list entry is refused. */
TEST(snapshot_crafted_counts) {
    const size_t n = 20, dim = 16;
    float *x = clustered(n, dim, 3, 0.4f, 31);
    for (int kind = 0; kind < 2; kind++) {
        se_vx_params p = {kind ? SE_INDEX_HNSW : SE_INDEX_FLAT, SE_METRIC_COSINE, 8, 50, 1};
        se_vx *vx, *vy = NULL;
        se_error err;
        CHECK(se_vx_new(dim, &p, &vx, &err) == SE_OK);
        for (size_t i = 0; i < n; i++) CHECK(se_vx_add(vx, (int64_t)i + 1, x + i * dim, false, NULL, &err) == SE_OK);
        int64_t rm[2] = {4, 9};
        CHECK(se_vx_remove(vx, rm, 2, NULL, &err) == SE_OK);
        uint8_t *b;
        size_t len;
        CHECK(se_vx_save(vx, &b, &len, &err) == SE_OK);
        CHECK(se_vx_load(b, len, dim, -1, &vy, &err) == SE_OK);
        se_vx_free(vy);
        uint8_t *c = malloc(len);
        /* a huge slot count: refused as a bad snapshot, not out of memory */
        static const uint64_t huge[] = {0x7fffffffu, 1u << 24, 21};
        for (size_t t = 0; t < 3; t++) {
            memcpy(c, b, len);
            memcpy(c + SNAP_N_SLOTS, &huge[t], 8);
            snap_fix_crc(c, len);
            vy = NULL;
            se_status st = se_vx_load(c, len, dim, -1, &vy, &err);
            CHECK_MSG(st == SE_E_FORMAT, "n_slots %llu: status %d (%s)", (unsigned long long)huge[t], st, err.msg);
            se_vx_free(vy);
        }
        /* labels beyond the largest ever issued */
        vy = NULL;
        CHECK(se_vx_load(b, len, dim, (int64_t)n, &vy, &err) == SE_OK);
        se_vx_free(vy);
        vy = NULL;
        CHECK(se_vx_load(b, len, dim, (int64_t)n - 1, &vy, &err) == SE_E_FORMAT);
        se_vx_free(vy);
        /* a huge free count */
        memcpy(c, b, len);
        uint64_t nf = 1u << 30;
        memcpy(c + SNAP_N_FREE, &nf, 8);
        snap_fix_crc(c, len);
        vy = NULL;
        CHECK(se_vx_load(c, len, dim, -1, &vy, &err) == SE_E_FORMAT);
        se_vx_free(vy);
        /* the free list [a, b] made [a, a] */
        memcpy(c, b, len);
        memcpy(c + len - 8, c + len - 12, 4);
        snap_fix_crc(c, len);
        vy = NULL;
        se_status st = se_vx_load(c, len, dim, -1, &vy, &err);
        CHECK_MSG(st == SE_E_FORMAT && strstr(err.msg, "free"), "duplicate free slot: status %d (%s)", st, err.msg);
        se_vx_free(vy);
        free(c);
        se_free(b);
        se_vx_free(vx);
    }
    free(x);
}

/* Replaces the graph snapshot of the index at path with edit(blob). */
static void edit_snapshot(const char *path, void (*edit)(uint8_t *b, size_t len)) {
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_stmt *q;
    CHECK(sqlite3_prepare_v2(db, "SELECT blob FROM graph WHERE id = 1", -1, &q, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    size_t len = (size_t)sqlite3_column_bytes(q, 0);
    uint8_t *b = malloc(len);
    memcpy(b, sqlite3_column_blob(q, 0), len);
    sqlite3_finalize(q);
    edit(b, len);
    snap_fix_crc(b, len);
    CHECK(sqlite3_prepare_v2(db, "UPDATE graph SET blob = ? WHERE id = 1", -1, &q, NULL) == SQLITE_OK);
    sqlite3_bind_blob(q, 1, b, (int)len, SQLITE_STATIC);
    CHECK(sqlite3_step(q) == SQLITE_DONE);
    sqlite3_finalize(q);
    CHECK(sqlite3_close(db) == SQLITE_OK);
    free(b);
}

static void huge_slots(uint8_t *b, size_t len) {
    (void)len;
    uint64_t v = 0x7fffffffu;
    memcpy(b + SNAP_N_SLOTS, &v, 8);
}

static void dup_free(uint8_t *b, size_t len) { memcpy(b + len - 8, b + len - 12, 4); }

/* Issue 9 item 9 (index): a crafted snapshot makes the index rebuild its
 * graph with a warning, never unopenable, and what is saved next is valid. */
TEST(index_crafted_snapshot_rebuilt) {
    const size_t n = 60, dim = 16;
    float *x = clustered(n + 2, dim, 4, 0.4f, 37);
    char path[512];
    path_in(path, sizeof path, "craft.idx");
    make_index(path, n, dim, x, NULL);
    se_index *idx;
    se_error err;
    se_index_info info;
    const char *del[4] = {"d3", "d7", "d11", "d13"};
    CHECK(se_index_open(path, false, NULL, NULL, &idx, &err) == SE_OK);
    CHECK(se_index_delete(idx, del, 2, NULL, &err) == SE_OK);
    CHECK(se_index_close(idx, &err) == SE_OK);
    edit_snapshot(path, huge_slots);
    log_count = log_warns = 0;
    se_status st = se_index_open(path, false, count_log, NULL, &idx, &err);
    CHECK_MSG(st == SE_OK && log_warns == 1 && strstr(log_last, "rebuil"), "status %d (%s), %zu warnings", st, err.msg,
              log_warns);
    if (st == SE_OK) {
        CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.n_vectors == n - 2);
        CHECK(se_index_delete(idx, del + 2, 2, NULL, &err) == SE_OK);
        CHECK(se_index_close(idx, &err) == SE_OK);
    }
    /* the free list [a, b] made [a, a]; then two adds */
    edit_snapshot(path, dup_free);
    log_count = log_warns = 0;
    st = se_index_open(path, false, count_log, NULL, &idx, &err);
    CHECK_MSG(st == SE_OK && log_warns == 1, "status %d (%s), %zu warnings", st, err.msg, log_warns);
    if (st == SE_OK) {
        se_index_doc two[2] = {{"new-1", "t", NULL, 1, NULL, x + n * dim, NULL}, {"new-2", "t", NULL, 1, NULL, x + (n + 1) * dim, NULL}};
        CHECK(se_index_add(idx, two, 2, &err) == SE_OK);
        CHECK(se_index_close(idx, &err) == SE_OK);
    }
    log_count = 0;
    CHECK(se_index_open(path, true, count_log, NULL, &idx, &err) == SE_OK);
    CHECK_MSG(log_count == 0, "the snapshot saved after the adds is not valid: %s", log_last);
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.n_vectors == n - 2);
    char id[32];
    top_id(idx, x + n * dim, id, sizeof id);
    CHECK(!strcmp(id, "new-1"));
    top_id(idx, x + (n + 1) * dim, id, sizeof id);
    CHECK(!strcmp(id, "new-2"));
    CHECK(se_index_close(idx, &err) == SE_OK);
    free(x);
}

/* Issue 9 item 11 (index): NaN, inf and values whose products overflow
 * (so that scores would print as inf or nan) are refused, naming the
 * document; so is such a query. */
TEST(index_non_finite_vectors) {
    const size_t dim = 8;
    for (int metric = 1; metric <= 2; metric++) {
        char path[512];
        snprintf(path, sizeof path, "%s/nan%d.idx", tmpdir, metric);
        se_index_params p = se_index_default_params();
        p.metric = (se_metric)metric;
        se_index *idx;
        se_error err;
        CHECK(se_index_create(path, dim, &p, &idx, &err) == SE_OK);
        float ok[8] = {1, 2, 3, 4, 5, 6, 7, 8}, big[8], inf[8], nanv[8];
        for (size_t i = 0; i < dim; i++) big[i] = 1e30f, inf[i] = nanv[i] = 1;
        inf[2] = INFINITY;
        nanv[5] = NAN;
        se_index_doc d = {"fine", "t", NULL, 1, NULL, ok, NULL};
        CHECK(se_index_add(idx, &d, 1, &err) == SE_OK);
        const float *bad[3] = {big, inf, nanv};
        for (int b = 0; b < 3; b++) {
            d = (se_index_doc){"bad-doc", "t", NULL, 1, NULL, bad[b], NULL};
            se_status st = se_index_add(idx, &d, 1, &err);
            CHECK_MSG(st == SE_E_INVALID && strstr(err.msg, "bad-doc"), "metric %d, vector %d: status %d (%s)", metric, b, st,
                      err.msg);
        }
        se_index_search_params sp = se_index_search_default_params();
        se_index_hit h[10];
        size_t nh;
        for (int b = 0; b < 3; b++) {
            se_status st = se_index_search(idx, bad[b], &sp, h, &nh, &err);
            CHECK_MSG(st == SE_E_INVALID && strstr(err.msg, "query"), "metric %d, query %d: status %d, %zu hits, score %g",
                      metric, b, st, nh, nh ? h[0].score : 0.0);
        }
        CHECK(se_index_search(idx, ok, &sp, h, &nh, &err) == SE_OK && nh == 1 && isfinite(h[0].score));
        se_index_info info;
        CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.n_docs == 1);
        CHECK(se_index_close(idx, &err) == SE_OK);
    }
}

/* Issue 9 (item 15, index part): exactly SE_INDEX_FILTERS_MAX filter terms
 * work, one more is refused with the limit named; se_index_has_meta_key
 * tells a known key from a misspelt one. */
TEST(index_filter_terms_limit) {
    const size_t n = 10, dim = 8;
    float *x = clustered(n, dim, 2, 0.4f, 41);
    char path[512];
    path_in(path, sizeof path, "filters.idx");
    se_index *idx;
    se_error err;
    CHECK(se_index_create(path, dim, NULL, &idx, &err) == SE_OK);
    static char meta[10][2048], ids[10][8];
    se_index_doc docs[10];
    for (size_t i = 0; i < n; i++) {
        size_t off = (size_t)snprintf(meta[i], sizeof meta[i], "{");
        for (int k = 0; k < SE_INDEX_FILTERS_MAX + 1; k++)
            off += (size_t)snprintf(meta[i] + off, sizeof meta[i] - off, "%s\"key%d\": \"%s\"", k ? ", " : "", k,
                                    k == SE_INDEX_FILTERS_MAX - 1 && i % 2 ? "odd" : "v");
        snprintf(meta[i] + off, sizeof meta[i] - off, "}");
        snprintf(ids[i], sizeof ids[i], "%zu", i);
        docs[i] = (se_index_doc){ids[i], "t", meta[i], 1, NULL, x + i * dim, NULL};
    }
    CHECK(se_index_add(idx, docs, n, &err) == SE_OK);
    se_index_filter f[SE_INDEX_FILTERS_MAX + 1];
    char keys[SE_INDEX_FILTERS_MAX + 1][16];
    for (int k = 0; k <= SE_INDEX_FILTERS_MAX; k++) {
        snprintf(keys[k], sizeof keys[k], "key%d", k);
        f[k] = (se_index_filter){keys[k], "v"};
    }
    se_index_search_params sp = se_index_search_default_params();
    sp.filters = f;
    se_index_hit h[10];
    size_t nh;
    for (size_t nf = 1; nf <= SE_INDEX_FILTERS_MAX; nf++) {
        sp.n_filters = nf;
        se_status st = se_index_search(idx, x, &sp, h, &nh, &err);
        size_t want = nf == SE_INDEX_FILTERS_MAX ? n / 2 : n;
        CHECK_MSG(st == SE_OK && nh == want, "%zu filter terms: status %d, %zu hits (%s)", nf, st, nh, err.msg);
    }
    /* a huge k returns what there is, without a huge allocation */
    sp.n_filters = 0;
    sp.k = (size_t)1 << 60;
    CHECK(se_index_search(idx, x, &sp, h, &nh, &err) == SE_OK && nh == n);
    sp.n_filters = SE_INDEX_FILTERS_MAX;
    CHECK(se_index_search(idx, x, &sp, h, &nh, &err) == SE_OK && nh == n / 2);
    sp.k = 10;
    sp.n_filters = SE_INDEX_FILTERS_MAX + 1;
    CHECK(se_index_search(idx, x, &sp, h, &nh, &err) == SE_E_RANGE && strstr(err.msg, "32") && nh == 0);
    bool found = false;
    CHECK(se_index_has_meta_key(idx, "key7", &found, &err) == SE_OK && found);
    CHECK(se_index_has_meta_key(idx, "kee7", &found, &err) == SE_OK && !found);
    CHECK(se_index_has_meta_key(idx, "", &found, &err) == SE_OK && !found);
    CHECK(se_index_has_meta_key(idx, NULL, &found, &err) == SE_E_INVALID);
    CHECK(se_index_close(idx, &err) == SE_OK);
    free(x);
}

/* Every failure of create / open / add releases what it took (checked by
 * LeakSanitizer under `make asan`) and leaves nothing behind: a create in a
 * missing folder or with bad params, an index of another format version
 * (refused before SQLite opens it, so untouched), a damaged meta table,
 * and an add that fails half-way through its documents (rolled back). */
TEST(index_failure_paths) {
    const size_t dim = 8;
    float *x = clustered(4, dim, 2, 0.3f, 43);
    char path[512], cmd[1200];
    se_index *idx = NULL;
    se_error err;
    path_in(path, sizeof path, "no-such-folder/x.idx");
    CHECK(se_index_create(path, dim, NULL, &idx, &err) == SE_E_IO && idx == NULL);
    path_in(path, sizeof path, "bad-params.idx");
    se_index_params p = se_index_default_params();
    p.M = 1;
    CHECK(se_index_create(path, dim, &p, &idx, &err) == SE_E_RANGE && idx == NULL && access(path, F_OK) != 0);
    CHECK(se_index_create(path, 0, NULL, &idx, &err) == SE_E_INVALID && idx == NULL);
    /* another format version: refused, file untouched */
    path_in(path, sizeof path, "future.idx");
    make_index(path, 4, dim, x, NULL);
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'PRAGMA user_version=99'", path);
    CHECK(system(cmd) == 0);
    size_t n0, n1;
    unsigned char *b0 = slurp(path, &n0);
    CHECK(se_index_open(path, false, NULL, NULL, &idx, &err) == SE_E_UNSUPPORTED && strstr(err.msg, "99") && idx == NULL);
    unsigned char *b1 = slurp(path, &n1);
    CHECK(b0 && b1 && n0 == n1 && !memcmp(b0, b1, n0) && side_files(path) == 0);
    free(b0);
    free(b1);
    /* a damaged meta table */
    path_in(path, sizeof path, "nometa.idx");
    make_index(path, 4, dim, x, NULL);
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"DELETE FROM meta WHERE key = 'dim'\"", path);
    CHECK(system(cmd) == 0);
    for (int ro = 0; ro < 2; ro++) {
        CHECK(se_index_open(path, ro, NULL, NULL, &idx, &err) == SE_E_FORMAT && strstr(err.msg, "meta") && idx == NULL);
        CHECK(side_files(path) == 0);
    }
    /* an add whose third document is bad: nothing of it is kept */
    path_in(path, sizeof path, "rollback.idx");
    CHECK(se_index_create(path, dim, NULL, &idx, &err) == SE_OK);
    se_index_doc docs[3] = {{"a", "t", NULL, 1, NULL, x, NULL}, {"b", "t", "{}", 1, NULL, x + dim, NULL}, {"c", "t", "[1]", 1, NULL, x + 2 * dim, NULL}};
    CHECK(se_index_add(idx, docs, 3, &err) == SE_E_FORMAT && strstr(err.msg, "'c'"));
    se_index_info info;
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.n_docs == 0 && info.n_vectors == 0);
    CHECK(se_index_add(idx, docs, 2, &err) == SE_OK);
    CHECK(se_index_close(idx, &err) == SE_OK && side_files(path) == 0);
    CHECK(se_index_open(path, true, NULL, NULL, &idx, &err) == SE_OK);
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.n_docs == 2 && info.n_vectors == 2);
    CHECK(se_index_close(idx, &err) == SE_OK);
    free(x);
}

/* ---- searches racing an add ---- */

typedef struct race {
    se_index *idx;
    const float *x;
    size_t n, dim;
    volatile int stop;
    size_t searches;
} race;

static void *searcher(void *arg) {
    race *r = arg;
    se_index_search_params sp = se_index_search_default_params();
    sp.k = 5;
    se_index_hit h[5];
    size_t nh;
    se_error err;
    size_t i = 0;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        if (se_index_search(r->idx, r->x + (i % r->n) * r->dim, &sp, h, &nh, &err) != SE_OK) abort();
        for (size_t t = 1; t < nh; t++)
            if (h[t].score > h[t - 1].score) abort();
        if (i % 16 == 0) {
            se_index_info info;
            se_index_get_info(r->idx, &info, &err);
        }
        i++;
    }
    __atomic_add_fetch(&r->searches, i, __ATOMIC_RELAXED);
    return NULL;
}

TEST(search_while_adding) {
    const size_t n = 1500, dim = 24;
    float *x = clustered(n, dim, 10, 0.4f, 21);
    char path[512];
    path_in(path, sizeof path, "race.idx");
    se_index *idx;
    se_error err;
    CHECK(se_index_create(path, dim, NULL, &idx, &err) == SE_OK);
    char (*ids)[16] = malloc(n * sizeof *ids);
    se_index_doc d0 = {"seed", "t", NULL, 1, NULL, x, NULL};
    CHECK(se_index_add(idx, &d0, 1, &err) == SE_OK);
    race r = {idx, x, n, dim, 0, 0};
    pthread_t th[2];
    for (int t = 0; t < 2; t++) pthread_create(&th[t], NULL, searcher, &r);
    for (size_t i = 0; i < n; i += 50) {
        se_index_doc docs[50];
        for (size_t j = 0; j < 50; j++) {
            snprintf(ids[i + j], 16, "%zu", i + j);
            docs[j] = (se_index_doc){ids[i + j], "t", NULL, 1, NULL, x + (i + j) * dim, NULL};
        }
        CHECK(se_index_add(idx, docs, 50, &err) == SE_OK);
        if (i % 300 == 0) {
            const char *del[3] = {ids[i], ids[i + 1], ids[i + 2]};
            CHECK(se_index_delete(idx, del, 3, NULL, &err) == SE_OK);
            CHECK(se_index_flush(idx, &err) == SE_OK);
        }
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
    fprintf(stderr, "  %zu searches ran during the adds\n", r.searches);
    CHECK(r.searches > 0);
    se_index_info info;
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.n_docs == 1 + n - 15);
    CHECK(se_index_close(idx, &err) == SE_OK);
    free(ids);
    free(x);
}

/* ---- chunking ---- */

static size_t n_tokens(const se_tokenizer *tok, const char *s, size_t len) {
    static int32_t ids[8192];
    size_t n = 0;
    se_tokenize_params p = se_tokenize_default_params(tok);
    p.n_tokens_max = 0;
    CHECK(se_tokenize(tok, s, len, NULL, 0, &p, ids, NULL, 8192, &n, NULL, NULL) == SE_OK);
    return n;
}

static void check_chunks(const se_tokenizer *tok, const char *text, size_t max_tokens, size_t overlap, size_t min_chunks) {
    uint32_t *sp;
    size_t nc;
    se_error err;
    size_t len = strlen(text);
    CHECK(se_chunk_text(tok, text, len, max_tokens, overlap, &sp, &nc, &err) == SE_OK);
    CHECK(nc >= min_chunks);
    size_t first = 0;
    while (first < len && text[first] == ' ') first++;
    CHECK(nc == 1 || sp[0] == first);
    CHECK(sp[2 * nc - 1] == len);
    for (size_t c = 0; c < nc; c++) {
        CHECK(sp[2 * c] < sp[2 * c + 1]);
        CHECK(n_tokens(tok, text + sp[2 * c], sp[2 * c + 1] - sp[2 * c]) <= max_tokens + 2); /* [CLS] .. [SEP] */
        if (c) {
            CHECK(sp[2 * c] > sp[2 * c - 2]);                 /* progress */
            for (size_t b = sp[2 * c - 1]; b < sp[2 * c]; b++) CHECK(text[b] == ' '); /* only spaces skipped */
            if (overlap) CHECK(sp[2 * c] < sp[2 * c - 1]);    /* overlap */
        }
    }
    se_free(sp);
}

TEST(chunking) {
    se_tokenizer *tok;
    se_error err;
    CHECK(se_tokenizer_load("tests/fixtures/models/en-mean-norm", &tok, &err) == SE_OK);
    char text[20000] = "  ";
    for (int i = 0; i < 120; i++) strcat(text, "The quick brown fox jumps over the extraordinarily lazy dog. ");
    strcat(text, "end");
    check_chunks(tok, text, 20, 5, 60);
    check_chunks(tok, text, 20, 0, 50);
    check_chunks(tok, "short text", 20, 5, 1);
    /* one chunk for a text that fits, even at the model's limit */
    uint32_t *sp;
    size_t nc;
    CHECK(se_chunk_text(tok, "short text", 10, 0, 0, &sp, &nc, &err) == SE_OK && nc == 1 && sp[0] == 0 && sp[1] == 10);
    se_free(sp);
    CHECK(se_chunk_text(tok, "", 0, 0, 0, &sp, &nc, &err) == SE_OK && nc == 1 && sp[1] == 0);
    se_free(sp);
    se_tokenizer_free(tok);
    /* Chinese: no spaces, cut at code points */
    CHECK(se_tokenizer_load("tests/fixtures/models/zh-cls-dense-f16", &tok, &err) == SE_OK);
    char zh[8000] = "";
    for (int i = 0; i < 60; i++) strcat(zh, "今天天气很好，我们去公园散步吧。");
    check_chunks(tok, zh, 30, 4, 30);
    CHECK(se_chunk_text(tok, "\xff bad", 5, 0, 0, &sp, &nc, &err) == SE_E_UTF8);
    se_tokenizer_free(tok);
}

int main(void) {
    make_tmpdir();
    RUN(chunking);
    RUN(hnsw_recall_delete_reuse_roundtrip);
    RUN(flat_and_l2_exact);
    RUN(index_persistence);
    RUN(index_bad_files);
    RUN(index_damage_recovery);
    RUN(index_open_leaves_foreign_files_alone);
    RUN(index_model_fingerprint);
    RUN(index_read_only_folder_and_side_files);
    RUN(index_stale_snapshot_saved);
    RUN(snapshot_crafted_counts);
    RUN(index_crafted_snapshot_rebuilt);
    RUN(index_non_finite_vectors);
    RUN(index_filter_terms_limit);
    RUN(index_failure_paths);
    RUN(search_while_adding);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_report("test_index");
}
