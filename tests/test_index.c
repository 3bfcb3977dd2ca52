/*
 * test_index.c - the vector index: HNSW recall against exact search (fixed
 * seeds), deletes with slot reuse, snapshot round trips bit for bit, the
 * persistent se_index (add, replace, delete, filters, reopen, damaged
 * files), and searches racing an add (run under TSan by `make tsan`).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    CHECK(se_vx_load(b1, l1, dim, &vy, &err) == SE_OK);
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
    CHECK(se_vx_load(b2, l2, dim, &vz, &err) == SE_E_FORMAT && strstr(err.msg, "checksum"));
    CHECK(se_vx_load(b1, l1 - 9, dim, &vz, &err) == SE_E_FORMAT);
    CHECK(se_vx_load(b1, l1, dim + 1, &vz, &err) == SE_E_FORMAT);
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

static size_t log_count;
static void count_log(se_log_level lv, const char *msg, void *user) {
    (void)lv;
    (void)user;
    if (getenv("TEST_VERBOSE")) fprintf(stderr, "  log: %s\n", msg);
    log_count++;
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
        docs[i] = (se_index_doc){ids[i], text[i], meta[i], 1, NULL, x + i * dim};
    }
    CHECK(se_index_add(idx, docs, n / 2, &err) == SE_OK);
    CHECK(se_index_add(idx, docs + n / 2, n - n / 2, &err) == SE_OK);
    /* bad input: names the document */
    se_index_doc bad = {"zz", "t", "{not json", 1, NULL, x};
    CHECK(se_index_add(idx, &bad, 1, &err) == SE_E_FORMAT && strstr(err.msg, "zz"));
    float nanv[32];
    memcpy(nanv, x, sizeof nanv);
    nanv[3] = NAN;
    bad = (se_index_doc){"zz", "t", NULL, 1, NULL, nanv};
    CHECK(se_index_add(idx, &bad, 1, &err) == SE_E_INVALID && strstr(err.msg, "zz"));
    uint32_t spans[4] = {0, 3, 2, 99};
    bad = (se_index_doc){"zz", "text", NULL, 2, spans, x};
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
    se_index_doc rep = {"doc-1", "replaced!", "{\"lang\": \"de\"}", 2, sp2, two};
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
        docs[i] = (se_index_doc){ids[i], "t", NULL, 1, NULL, x + i * dim};
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
    se_index_doc d0 = {"seed", "t", NULL, 1, NULL, x};
    CHECK(se_index_add(idx, &d0, 1, &err) == SE_OK);
    race r = {idx, x, n, dim, 0, 0};
    pthread_t th[2];
    for (int t = 0; t < 2; t++) pthread_create(&th[t], NULL, searcher, &r);
    for (size_t i = 0; i < n; i += 50) {
        se_index_doc docs[50];
        for (size_t j = 0; j < 50; j++) {
            snprintf(ids[i + j], 16, "%zu", i + j);
            docs[j] = (se_index_doc){ids[i + j], "t", NULL, 1, NULL, x + (i + j) * dim};
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
    RUN(search_while_adding);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_report("test_index");
}
