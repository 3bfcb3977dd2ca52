/*
 * test_index_fts.c - the index's keyword side and hybrid search: fusion
 * on hand-made rankings (exact values), the CJK-aware tokenizer's tokens,
 * the FTS table kept in step by add / replace / delete, the upgrade of a
 * format-1 file (a fixture made by the code before the keyword index),
 * the read-only refusal, hostile query text, Chinese queries.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "index_bm25.h"
#include "index_fts.h"
#include "sembed.h"
#include "test.h"

static char tmpdir[256];

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

/* ---- fusion ---- */

TEST(test_fuse_rrf_exact) {
    se_fuse_item v[] = {{10, 0.9f}, {20, 0.8f}, {30, 0.7f}}, kw[] = {{20, 5.0f}, {40, 4.0f}};
    se_fused out[5];
    size_t n = 0;
    se_fuse(v, 3, kw, 2, SE_FUSION_RRF, 0, 0, out, &n);
    CHECK(n == 4);
    int64_t want_doc[] = {20, 10, 40, 30};
    float want[] = {(float)(1.0 / 62 + 1.0 / 61), (float)(1.0 / 61), (float)(1.0 / 62), (float)(1.0 / 63)};
    for (size_t i = 0; i < 4 && i < n; i++) {
        CHECK_MSG(out[i].doc == want_doc[i], "rank %zu: doc %lld, want %lld", i, (long long)out[i].doc, (long long)want_doc[i]);
        CHECK_MSG(out[i].score == want[i], "rank %zu: %.9g, want %.9g", i, (double)out[i].score, (double)want[i]);
    }
    CHECK(out[0].vi == 1 && out[0].ki == 0 && out[1].ki == -1 && out[2].vi == -1);
    se_fuse(v, 3, kw, 2, SE_FUSION_RRF, 0, 1, out, &n); /* k = 1: 20 gets 1/3 + 1/2 */
    CHECK(out[0].doc == 20 && out[0].score == (float)(1.0 / 3 + 1.0 / 2));
}

TEST(test_fuse_score_exact) {
    /* vector min-max: 1 -> 1, 2 -> 0.75, 3 -> 0; keyword: 2 -> 1, 4 -> 0.5, 1 -> 0 */
    se_fuse_item v[] = {{1, 0.9f}, {2, 0.8f}, {3, 0.5f}}, kw[] = {{2, 10.0f}, {4, 6.0f}, {1, 2.0f}};
    se_fused out[6];
    size_t n = 0;
    se_fuse(v, 3, kw, 3, SE_FUSION_SCORE, 0.3f, 0, out, &n);
    CHECK(n == 4);
    int64_t want_doc[] = {2, 4, 1, 3};
    float want[] = {0.3f * 0.75f + 0.7f * 1.0f, 0.7f * 0.5f, 0.3f * 1.0f, 0.0f};
    for (size_t i = 0; i < 4 && i < n; i++) {
        CHECK_MSG(out[i].doc == want_doc[i], "rank %zu: doc %lld, want %lld", i, (long long)out[i].doc, (long long)want_doc[i]);
        CHECK_MSG(fabsf(out[i].score - want[i]) < 1e-6f, "rank %zu: %.9g, want %.9g", i, (double)out[i].score, (double)want[i]);
    }
}

TEST(test_fuse_alpha_ends) {
    /* alpha 0: the keyword ranking, then vector-only documents in vector order */
    se_fuse_item v[] = {{5, 0.9f}, {6, 0.8f}, {7, 0.7f}}, kw[] = {{7, 3.0f}, {8, 1.0f}};
    se_fused out[5];
    size_t n = 0;
    se_fuse(v, 3, kw, 2, SE_FUSION_SCORE, 0.0f, 0, out, &n);
    int64_t want0[] = {7, 8, 5, 6};
    CHECK(n == 4);
    for (size_t i = 0; i < 4 && i < n; i++) CHECK_MSG(out[i].doc == want0[i], "alpha 0 rank %zu: doc %lld", i, (long long)out[i].doc);
    /* alpha 1: the vector ranking, then keyword-only documents in keyword order */
    se_fuse(v, 3, kw, 2, SE_FUSION_SCORE, 1.0f, 0, out, &n);
    int64_t want1[] = {5, 6, 7, 8};
    for (size_t i = 0; i < 4 && i < n; i++) CHECK_MSG(out[i].doc == want1[i], "alpha 1 rank %zu: doc %lld", i, (long long)out[i].doc);
    /* one side empty; all-equal scores normalise to 1 */
    se_fuse(v, 3, NULL, 0, SE_FUSION_SCORE, 0.3f, 0, out, &n);
    CHECK(n == 3 && out[0].doc == 5 && fabsf(out[0].score - 0.3f) < 1e-7f && out[2].doc == 7 && out[2].score == 0);
    se_fuse_item flat[] = {{1, 0.5f}, {2, 0.5f}};
    se_fuse(flat, 2, NULL, 0, SE_FUSION_SCORE, 1.0f, 0, out, &n);
    CHECK(n == 2 && out[0].doc == 1 && out[0].score == 1.0f && out[1].score == 1.0f);
    CHECK(fabsf(se_fuse_spread(v, 3, 10) - 0.2f) < 1e-6f && fabsf(se_fuse_spread(v, 3, 2) - 0.1f) < 1e-6f);
    CHECK(se_fuse_spread(v, 1, 10) == 0);
}

/* ---- the tokenizer ---- */

typedef struct toks {
    char text[16][32];
    int start[16], end[16];
    int n;
} toks;

static int collect(void *user, const char *tok, int n, int start, int end) {
    toks *t = user;
    if (t->n < 16 && n < 32) {
        memcpy(t->text[t->n], tok, (size_t)n);
        t->text[t->n][n] = 0;
        t->start[t->n] = start;
        t->end[t->n] = end;
    }
    t->n++;
    return 0;
}

TEST(test_fts_tokens_mixed) {
    sqlite3 *db;
    CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
    se_error err = {0};
    fts5_api *api = NULL;
    CHECK(se_fts_register(db, ":memory:", &api, &err) == SE_OK);
    const char *text = "Running dogs 苹果手机x中 Café 질문";
    toks t = {0};
    CHECK(se_fts_tokenize(api, text, strlen(text), 0, collect, &t, &err) == SE_OK);
    const char *want[] = {"run", "dog", "苹果", "果手", "手机", "x", "中", "cafe", "질문"};
    CHECK_MSG(t.n == 9, "%d tokens", t.n);
    for (int i = 0; i < 9 && i < t.n; i++) CHECK_MSG(!strcmp(t.text[i], want[i]), "token %d: '%s', want '%s'", i, t.text[i], want[i]);
    /* spans in the input: "苹果" is bytes 13..19, "x" 25..26 */
    CHECK(t.start[2] == 13 && t.end[2] == 19 && t.start[5] == 25 && t.end[5] == 26);
    /* the MATCH expression quotes the spans, once per distinct term */
    char *expr = NULL;
    CHECK(se_fts_match_expr(api, "dogs \"AND\" dog NEAR( x* )", &expr, &err) == SE_OK);
    CHECK_MSG(expr && !strcmp(expr, "\"dogs\" OR \"AND\" OR \"NEAR\" OR \"x\""), "expr: %s", expr ? expr : "(null)");
    se_free(expr);
    CHECK(se_fts_match_expr(api, "?!. -- \"", &expr, &err) == SE_OK && expr == NULL);
    sqlite3_close(db);
}

/* Tokenises text for documents; 1 when the tokens equal want (n of them),
 * else 0 with the difference printed. */
static int tokens_are(fts5_api *api, const char *text, const char *const *want, int n) {
    toks t = {0};
    se_error err = {0};
    if (se_fts_tokenize(api, text, strlen(text), 0, collect, &t, &err) != SE_OK) return 0;
    int ok = t.n == n;
    for (int i = 0; ok && i < n; i++) ok = !strcmp(t.text[i], want[i]);
    if (!ok) {
        fprintf(stderr, "  '%s' ->", text);
        for (int i = 0; i < t.n && i < 16; i++) fprintf(stderr, " [%s]", t.text[i]);
        fprintf(stderr, " (want %d tokens)\n", n);
    }
    return ok;
}

#define TOKS(api, text, ...)                                                              \
    do {                                                                                   \
        static const char *const w_[] = {__VA_ARGS__};                                     \
        CHECK_MSG(tokens_are(api, text, w_, (int)(sizeof w_ / sizeof *w_)), "tokens of %s", text); \
    } while (0)

/* UAX #29 words (keyword format 2), as Lucene's StandardTokenizer makes
 * them: numbers keep their '.' and ',' ("5.3", "1,000", "0.05"), a word
 * its inner apostrophe ("don't", "don’t" the same), '.' between letters
 * ("e.g", "u.s.a"); a possessive 's goes (its span ends before it);
 * hyphens, '<', '/' and ':' separate; Chinese stays in bigrams. */
TEST(test_fts_tokens_uax29) {
    sqlite3 *db;
    CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
    se_error err = {0};
    fts5_api *api = NULL;
    CHECK(se_fts_register(db, ":memory:", &api, &err) == SE_OK);
    TOKS(api, "a dose of 5.3 mg", "a", "dose", "of", "5.3", "mg");
    TOKS(api, "1,000 cells; p<0.05", "1,000", "cell", "p", "0.05");
    TOKS(api, "version 3.5.6, 5,a", "version", "3.5.6", "5", "a");
    TOKS(api, "don't DON’T", "don't", "don't");
    TOKS(api, "the patient's Café’s", "the", "patient", "cafe");
    TOKS(api, "CD4's", "cd4", "s"); /* 4 ' s: digit then letter, not joined (nor a possessive) */
    TOKS(api, "covid-19 and IL-6", "covid", "19", "and", "il", "6");
    TOKS(api, "e.g. U.S.A. a:b x_y 10.1016/j.cell", "e.g", "u.s.a", "a", "b", "x_y", "10.1016", "j.cell");
    TOKS(api, "trailing. dots.. 'quoted' -5", "trail", "dot", "quot", "5");
    TOKS(api, "3.5苹果手机", "3.5", "苹果", "果手", "手机");
    /* the possessive's span: "patient" is bytes 4..11 */
    toks t = {0};
    CHECK(se_fts_tokenize(api, "the patient's", 13, 0, collect, &t, &err) == SE_OK && t.n == 2);
    CHECK_MSG(t.start[1] == 4 && t.end[1] == 11, "span %d..%d", t.start[1], t.end[1]);
    /* a joined word longer than 255 bytes stays in pieces */
    char longw[700];
    size_t l = 0;
    for (int i = 0; i < 100; i++) l += (size_t)snprintf(longw + l, sizeof longw - l, "%s%d", i ? "." : "", 100 + i);
    t = (toks){0};
    CHECK(se_fts_tokenize(api, longw, l, 0, collect, &t, &err) == SE_OK);
    CHECK_MSG(t.n == 2, "%d tokens", t.n); /* 64 numbers (255 bytes), then the other 36 */
    sqlite3_close(db);
}

/* ---- the index ---- */

#define DIM 4

typedef struct doc4 {
    const char *id, *text, *meta;
    float v[DIM];
} doc4;

static const doc4 DOCS[] = {
    {"a", "The running dogs chased cats across the garden.", "{\"lang\": \"en\"}", {1, 0, 0, 0}},
    {"b", "Photosynthesis converts light energy into chemical energy in plants.", "{\"lang\": \"en\"}", {0, 1, 0, 0}},
    {"c", "苹果手机的质量怎么样？电池续航很好。", "{\"lang\": \"zh\"}", {0, 0, 1, 0}},
    {"d", "Vaccines train the immune system; dogs get vaccines too.", "{\"lang\": \"en\"}", {0.8f, 0, 0, 0.6f}},
};

static se_status add_docs(se_index *idx, const doc4 *d, size_t n) {
    se_index_doc in[8];
    for (size_t i = 0; i < n; i++) in[i] = (se_index_doc){d[i].id, d[i].text, d[i].meta, 1, NULL, d[i].v, NULL};
    return se_index_add(idx, in, n, NULL);
}

/* A keyword search for text: the external ids of the hits, space-separated. */
static se_status kw_ids(se_index *idx, const char *text, char *out, size_t cap, se_error *err) {
    se_index_search_params p = se_index_search_default_params();
    p.mode = SE_SEARCH_KEYWORD;
    p.text = text;
    se_index_hit hits[10];
    size_t n = 0;
    out[0] = 0;
    se_status st = se_index_search(idx, NULL, &p, hits, &n, err);
    for (size_t i = 0; !st && i < n; i++) {
        se_index_doc_out d;
        if (se_index_fetch(idx, hits[i].doc, &d, err) != SE_OK) return SE_E_IO;
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", l ? " " : "", d.id);
        if (!(hits[i].keyword_score > 0) || hits[i].score != hits[i].keyword_score || !isnan(hits[i].vector_score)) {
            se_free(d.id), se_free(d.text), se_free(d.meta), se_free(d.title);
            return SE_E_INTERNAL;
        }
        se_free(d.id), se_free(d.text), se_free(d.meta), se_free(d.title);
    }
    return st;
}

/* Runs FTS5's integrity check of the keyword index against docs. */
static int fts_consistent(const char *path) {
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) return 0; /* the check is an INSERT */
    int ok = se_fts_register(db, path, NULL, NULL) == SE_OK &&
             sqlite3_exec(db, "INSERT INTO fts(fts, rank) VALUES('integrity-check', 1)", NULL, NULL, NULL) == SQLITE_OK;
    sqlite3_close(db);
    return ok;
}

TEST(test_fts_add_replace_delete) {
    char path[300], ids[200];
    path_in(path, sizeof path, "step.idx");
    se_index_params ip = se_index_default_params();
    ip.kind = SE_INDEX_FLAT;
    se_index *idx = NULL;
    se_error err = {0};
    CHECK(se_index_create(path, DIM, &ip, &idx, &err) == SE_OK);
    if (!idx) return;
    CHECK(add_docs(idx, DOCS, 4) == SE_OK);
    CHECK(kw_ids(idx, "dog", ids, sizeof ids, &err) == SE_OK);
    CHECK_MSG(!strcmp(ids, "a d") || !strcmp(ids, "d a"), "dog: %s", ids);
    CHECK(kw_ids(idx, "photosynthetic plant", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "b"));
    /* replace: the old words go, the new ones come */
    doc4 b2 = {"b", "Mitochondria make energy for the cell.", NULL, {0, 1, 0, 0}};
    CHECK(add_docs(idx, &b2, 1) == SE_OK);
    CHECK(kw_ids(idx, "photosynthesis", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, ""));
    CHECK(kw_ids(idx, "mitochondria", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "b"));
    /* delete */
    const char *del[] = {"a"};
    size_t nd = 0;
    CHECK(se_index_delete(idx, del, 1, &nd, &err) == SE_OK && nd == 1);
    CHECK(kw_ids(idx, "dog", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "d"));
    CHECK(se_index_close(idx, &err) == SE_OK);
    CHECK(fts_consistent(path));
    /* a read-only open of format 4 searches keywords */
    CHECK(se_index_open(path, true, NULL, NULL, &idx, &err) == SE_OK);
    se_index_info info;
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.format_version == 4);
    CHECK(kw_ids(idx, "cell", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "b"));
    se_index_close(idx, NULL);
}

TEST(test_fts_upgrade_v1) {
    char path[300], cmd[700], ids[200];
    path_in(path, sizeof path, "v1.idx");
    snprintf(cmd, sizeof cmd, "cp tests/fixtures/index/v1-en-mean-norm.idx '%s'", path);
    CHECK(system(cmd) == 0);
    se_index *idx = NULL;
    se_error err = {0};
    /* read-only: vectors as before, keywords refused with how to upgrade */
    CHECK(se_index_open(path, true, NULL, NULL, &idx, &err) == SE_OK);
    if (!idx) return;
    se_index_info info;
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.format_version == 1 && info.n_docs == 4);
    float q[32] = {0};
    q[0] = 1;
    se_index_hit hits[4];
    size_t n = 0;
    CHECK(se_index_search(idx, q, NULL, hits, &n, &err) == SE_OK && n == 4);
    se_status st = kw_ids(idx, "dogs", ids, sizeof ids, &err);
    CHECK(st == SE_E_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "sembed index upgrade") && strstr(err.msg, "format 1"), "message: %s", err.msg);
    se_index_close(idx, NULL);
    /* writable: upgraded in place, found by keyword, searched by vector as before */
    CHECK(se_index_open(path, false, NULL, NULL, &idx, &err) == SE_OK);
    if (!idx) return;
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.format_version == 4 && info.n_docs == 4);
    CHECK(kw_ids(idx, "dog", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "a"));
    CHECK(kw_ids(idx, "手机质量", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "c"));
    size_t n2 = 0;
    se_index_hit h2[4];
    CHECK(se_index_search(idx, q, NULL, h2, &n2, &err) == SE_OK && n2 == 4 && h2[0].doc == hits[0].doc);
    CHECK(se_index_close(idx, &err) == SE_OK);
    CHECK(fts_consistent(path));
    CHECK(se_index_open(path, true, NULL, NULL, &idx, &err) == SE_OK);
    CHECK(kw_ids(idx, "garden", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "a"));
    se_index_close(idx, NULL);
}

/* Whether the stored keyword index of path has the term (fts5vocab over
 * the FTS table); -1 when it cannot be read. */
static int fts_has_term(const char *path, const char *term) {
    sqlite3 *db;
    sqlite3_stmt *q = NULL;
    int r = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) goto done;
    if (se_fts_register(db, path, NULL, NULL) != SE_OK ||
        sqlite3_exec(db, "CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, fts, 'row')", NULL, NULL, NULL) ||
        sqlite3_prepare_v2(db, "SELECT count(*) FROM temp.vocab WHERE term = ?", -1, &q, NULL))
        goto done;
    sqlite3_bind_text(q, 1, term, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) r = sqlite3_column_int(q, 0) > 0;
done:
    sqlite3_finalize(q);
    sqlite3_close(db);
    return r;
}

/* An index of format 2 (tests/fixtures/index/v2-words.idx, made by sembed
 * at 44b72aa, then VACUUMed to 1 KiB pages: its FTS table holds unicode61's pieces, "5" and "3" for
 * "5.3"): read-only it stays as it is and its FTS table stays consistent
 * (tokenize='sembed' still means those pieces), while keyword searches
 * already find "5.3" (the in-memory scorer tokenises the stored texts
 * anew); a writable open rebuilds the FTS table with UAX #29 words and
 * makes it format 4. */
TEST(test_fts_upgrade_v2) {
    char path[300], cmd[700], ids[200];
    path_in(path, sizeof path, "v2.idx");
    snprintf(cmd, sizeof cmd, "cp tests/fixtures/index/v2-words.idx '%s'", path);
    CHECK(system(cmd) == 0);
    CHECK(fts_consistent(path));
    CHECK(fts_has_term(path, "5") == 1 && fts_has_term(path, "5.3") == 0 && fts_has_term(path, "1,000") == 0);
    se_index *idx = NULL;
    se_error err = {0};
    CHECK(se_index_open(path, true, NULL, NULL, &idx, &err) == SE_OK);
    if (!idx) return;
    se_index_info info;
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.format_version == 2 && info.n_docs == 4);
    CHECK(kw_ids(idx, "5.3", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "a"));
    se_index_close(idx, NULL);
    CHECK(fts_has_term(path, "5.3") == 0);
    /* writable: rebuilt in place */
    CHECK(se_index_open(path, false, NULL, NULL, &idx, &err) == SE_OK);
    if (!idx) return;
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.format_version == 4 && info.n_docs == 4);
    CHECK(kw_ids(idx, "1,000 cells", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "d"));
    CHECK(kw_ids(idx, "patient", ids, sizeof ids, &err) == SE_OK && (!strcmp(ids, "a b") || !strcmp(ids, "b a")));
    CHECK(kw_ids(idx, "手机质量", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "c"));
    CHECK(se_index_close(idx, &err) == SE_OK);
    CHECK(fts_consistent(path));
    CHECK(fts_has_term(path, "5.3") == 1 && fts_has_term(path, "1,000") == 1 && fts_has_term(path, "don't") == 1);
    CHECK(fts_has_term(path, "patient") == 1 && fts_has_term(path, "s") == 0);
    /* and read-only again: format 4, searched by keyword */
    CHECK(se_index_open(path, true, NULL, NULL, &idx, &err) == SE_OK);
    if (!idx) return;
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.format_version == 4);
    CHECK(kw_ids(idx, "5.3 mg", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "a b")); /* "5.3" only in a */
    se_index_close(idx, NULL);
}

TEST(test_fts_hostile_queries) {
    char path[300];
    path_in(path, sizeof path, "hostile.idx");
    se_index_params ip = se_index_default_params();
    ip.kind = SE_INDEX_FLAT;
    se_index *idx = NULL;
    se_error err = {0};
    CHECK(se_index_create(path, DIM, &ip, &idx, &err) == SE_OK);
    if (!idx) return;
    CHECK(add_docs(idx, DOCS, 4) == SE_OK);
    const char *qs[] = {"\"", "AND", "dogs AND", "NEAR(", "NEAR(dogs cats, 2)", "*", "dog*", ")", "(", "", "?!...",
                        "text:dogs", "^dogs", "-dogs", "\"unterminated dogs", "OR OR NOT", "\xff\xfe broken utf8 dogs"};
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
        char ids[200];
        se_status st = kw_ids(idx, qs[i], ids, sizeof ids, &err);
        CHECK_MSG(st == SE_OK, "query '%s': %s", qs[i], err.msg);
        if (strstr(qs[i], "dogs")) CHECK_MSG(strstr(ids, "a") && strstr(ids, "d"), "query '%s' found '%s'", qs[i], ids);
        if (!strcmp(qs[i], "") || !strcmp(qs[i], "?!...") || !strcmp(qs[i], "*")) CHECK_MSG(!ids[0], "'%s' found '%s'", qs[i], ids);
    }
    /* 100 KB of text: searched by its first terms, no error */
    size_t big = 100 * 1024;
    char *q = malloc(big + 1);
    for (size_t i = 0; i < big; i++) q[i] = "abcdefghij klmnop qrstu vwxyz dogs "[(i * 7 + i / 13) % 35];
    q[big] = 0;
    char ids[200];
    CHECK(kw_ids(idx, q, ids, sizeof ids, &err) == SE_OK);
    free(q);
    se_index_close(idx, NULL);
}

TEST(test_hybrid_search) {
    char path[300];
    path_in(path, sizeof path, "hybrid.idx");
    se_index_params ip = se_index_default_params();
    ip.kind = SE_INDEX_FLAT;
    se_index *idx = NULL;
    se_error err = {0};
    CHECK(se_index_create(path, DIM, &ip, &idx, &err) == SE_OK);
    if (!idx) return;
    CHECK(add_docs(idx, DOCS, 4) == SE_OK);
    float q[DIM] = {0, 1, 0, 0}; /* nearest: b; keyword "dogs": a, d */
    se_index_search_params p = se_index_search_default_params();
    p.mode = SE_SEARCH_HYBRID;
    p.text = "dogs";
    p.fusion = SE_FUSION_RRF;
    se_index_hit h[4];
    size_t n = 0;
    CHECK(se_index_search(idx, q, &p, h, &n, &err) == SE_OK && n == 4);
    /* b: vector rank 1 only, 1/61; a, d: keyword ranks 1-2 and vector ranks 2-4 */
    int seen_b = 0;
    for (size_t i = 0; i < n; i++) {
        se_index_doc_out d;
        CHECK(se_index_fetch(idx, h[i].doc, &d, &err) == SE_OK);
        CHECK(!isnan(h[i].vector_score)); /* 4 documents: the vector side returned all */
        if (!strcmp(d.id, "b")) {
            seen_b = 1;
            CHECK(isnan(h[i].keyword_score) && h[i].vector_score > 0.99f && h[i].score == (float)(1.0 / 61));
        }
        if (!strcmp(d.id, "a") || !strcmp(d.id, "d")) CHECK(h[i].keyword_score > 0 && i < 2);
        se_free(d.id), se_free(d.text), se_free(d.meta), se_free(d.title);
    }
    CHECK(seen_b);
    /* a filter applies to both sides */
    se_index_filter f = {"lang", "zh"};
    p.filters = &f;
    p.n_filters = 1;
    CHECK(se_index_search(idx, q, &p, h, &n, &err) == SE_OK && n == 1 && isnan(h[0].keyword_score));
    p.text = "苹果手机怎么样";
    CHECK(se_index_search(idx, q, &p, h, &n, &err) == SE_OK && n == 1 && h[0].keyword_score > 0 && !isnan(h[0].vector_score));
    p.filters = NULL;
    p.n_filters = 0;
    /* the default fusion ignores a flat vector side: every document equally far */
    float flat[DIM] = {0.5f, 0.5f, 0.5f, 0.5f};
    se_index_doc same[4];
    for (size_t i = 0; i < 4; i++) same[i] = (se_index_doc){DOCS[i].id, DOCS[i].text, NULL, 1, NULL, flat, NULL};
    CHECK(se_index_add(idx, same, 4, &err) == SE_OK);
    p.fusion = SE_FUSION_DEFAULT;
    p.text = "chemical energy";
    CHECK(se_index_search(idx, q, &p, h, &n, &err) == SE_OK && n == 4);
    se_index_doc_out d;
    CHECK(se_index_fetch(idx, h[0].doc, &d, &err) == SE_OK && !strcmp(d.id, "b"));
    CHECK(h[0].score == 1.0f); /* alpha 0: BM25 alone, normalised */
    se_free(d.id), se_free(d.text), se_free(d.meta), se_free(d.title);
    /* bad arguments */
    CHECK(se_index_search(idx, NULL, &p, h, &n, &err) == SE_E_INVALID && strstr(err.msg, "query vector"));
    p.text = NULL;
    CHECK(se_index_search(idx, q, &p, h, &n, &err) == SE_E_INVALID && strstr(err.msg, "params.text"));
    p.text = "x";
    p.alpha = 1.5f;
    CHECK(se_index_search(idx, q, &p, h, &n, &err) == SE_E_RANGE && strstr(err.msg, "alpha"));
    p.alpha = -1;
    p.mode = (se_search_mode)7;
    CHECK(se_index_search(idx, q, &p, h, &n, &err) == SE_E_INVALID && strstr(err.msg, "mode"));
    se_index_close(idx, NULL);
}


/* ---- the in-memory BM25 scorer ---- */

/* A scorer on a fresh in-memory connection (the tokenizer lives there). */
static se_bm25 *bm25_on(sqlite3 **db, unsigned flags) {
    fts5_api *api = NULL;
    if (sqlite3_open(":memory:", db) != SQLITE_OK || se_fts_register(*db, ":memory:", &api, NULL) != SE_OK) return NULL;
    return se_bm25_new(api, flags);
}

/* Checks a search's hits against want_doc / want (n of them), 1e-5. */
static void check_hits(se_bm25 *b, const char *q, const int64_t *want_doc, const double *want, size_t n) {
    se_fts_hit *h = NULL;
    size_t nh = 0;
    se_error err = {0};
    CHECK_MSG(se_bm25_search(b, q, NULL, 0, 10, &h, &nh, &err) == SE_OK, "'%s': %s", q, err.msg);
    CHECK_MSG(nh == n, "'%s': %zu hits, want %zu", q, nh, n);
    for (size_t i = 0; i < n && i < nh; i++)
        CHECK_MSG(h[i].doc == want_doc[i] && fabs(h[i].score - want[i]) < 1e-5, "'%s' rank %zu: doc %lld %.9g, want %lld %.9g",
                  q, i, (long long)h[i].doc, (double)h[i].score, (long long)want_doc[i], want[i]);
    se_free(h);
}

/* Scores by hand: N 4, lengths 3 2 4 2 (stop words and the possessive 's
 * not counted), avgdl 2.75; idf ln(1 + (N - n + 0.5) / (n + 0.5)),
 * tf / (tf + 1.2 (0.25 + 0.75 dl / avgdl)); a repeated query term counts
 * twice. */
TEST(test_bm25_hand_values) {
    sqlite3 *db;
    se_bm25 *b = bm25_on(&db, SE_BM25_DEFAULT_FLAGS);
    CHECK(b != NULL);
    if (!b) return;
    se_error err = {0};
    const char *docs[] = {"apple banana apple", "banana cherry", "cherry cherry cherry date", "The apple of the eye's"};
    for (int i = 0; i < 4; i++) CHECK(se_bm25_add(b, 10 * (i + 1), docs[i], &err) == SE_OK);
    CHECK(se_bm25_count(b) == 4);
    /* apples -> appl: df 2, idf ln 2; doc 10 tf 2 dl 3, doc 40 tf 1 dl 2 */
    check_hits(b, "apples", (int64_t[]){10, 40}, (double[]){0.422416564, 0.354633441}, 2);
    check_hits(b, "Cherry eye's the", (int64_t[]){40, 30, 20}, (double[]){0.615986086, 0.451160887, 0.354633441}, 3);
    check_hits(b, "apple apple banana", (int64_t[]){10, 40, 20}, (double[]){1.148602809, 0.709266882, 0.354633441}, 3);
    check_hits(b, "the of THE", NULL, NULL, 0); /* only stop words */
    check_hits(b, "kiwi", NULL, NULL, 0);
    /* a filter: only the allowed row ids, order kept */
    se_fts_hit *h = NULL;
    size_t nh = 0;
    int64_t allow[] = {20, 30};
    CHECK(se_bm25_search(b, "cherry eye", allow, 2, 10, &h, &nh, &err) == SE_OK && nh == 2 && h[0].doc == 30 && h[1].doc == 20);
    se_free(h);
    CHECK(se_bm25_search(b, "cherry eye", NULL, 0, 1, &h, &nh, &err) == SE_OK && nh == 1 && h[0].doc == 40); /* limit */
    se_free(h);
    se_bm25_free(b);
    sqlite3_close(db);
}

/* A deterministic pseudo-random text of n words over a small vocabulary
 * (some of them stop words, so lengths differ from token counts). */
static void rand_text(char *buf, size_t cap, unsigned *seed, int n) {
    static const char *W[] = {"kinase", "protein", "cell", "tumor", "gene", "the", "of", "mouse", "dna", "repair",
                              "signal", "immune", "virus", "blood", "neuron", "and", "brain", "heart", "drug", "dose"};
    size_t off = 0;
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        off += (size_t)snprintf(buf + off, cap - off, "%s%s", i ? " " : "", W[(*seed >> 16) % 20]);
    }
}

/* Every query's hits (docs and scores) equal between two scorers. */
static void check_same(se_bm25 *x, se_bm25 *y, const char *const *qs, size_t nq) {
    se_error err = {0};
    for (size_t i = 0; i < nq; i++) {
        se_fts_hit *a = NULL, *c = NULL;
        size_t na = 0, nc = 0;
        CHECK(se_bm25_search(x, qs[i], NULL, 0, 50, &a, &na, &err) == SE_OK);
        CHECK(se_bm25_search(y, qs[i], NULL, 0, 50, &c, &nc, &err) == SE_OK);
        CHECK_MSG(na == nc, "'%s': %zu vs %zu hits", qs[i], na, nc);
        for (size_t j = 0; j < na && j < nc; j++)
            CHECK_MSG(a[j].doc == c[j].doc && a[j].score == c[j].score, "'%s' rank %zu: %lld %.9g vs %lld %.9g", qs[i], j,
                      (long long)a[j].doc, (double)a[j].score, (long long)c[j].doc, (double)c[j].score);
        se_free(a);
        se_free(c);
    }
}

/* Adds, replacements and deletes (enough to compact the postings) leave
 * exactly the scores of a scorer built fresh over the live documents. */
TEST(test_bm25_incremental_equals_fresh) {
    sqlite3 *db1, *db2;
    se_bm25 *x = bm25_on(&db1, SE_BM25_DEFAULT_FLAGS), *y = bm25_on(&db2, SE_BM25_DEFAULT_FLAGS);
    CHECK(x && y);
    if (!x || !y) return;
    se_error err = {0};
    enum { ND = 400 };
    static char text[ND][400];
    unsigned seed = 7;
    for (int i = 0; i < ND; i++) {
        rand_text(text[i], sizeof text[i], &seed, 5 + i % 40);
        CHECK(se_bm25_add(x, i + 1, text[i], &err) == SE_OK);
    }
    for (int i = 0; i < ND; i += 3) { /* replace a third */
        rand_text(text[i], sizeof text[i], &seed, 3 + i % 17);
        CHECK(se_bm25_add(x, i + 1, text[i], &err) == SE_OK);
    }
    for (int i = 0; i < ND; i++) /* delete 300: compacts */
        if (i % 4 != 0) CHECK(se_bm25_remove(x, i + 1) == 0);
    CHECK(se_bm25_remove(x, 99999) == 0); /* absent: nothing */
    for (int i = 0; i < ND; i += 8) { /* re-add some deleted row ids, replace some live ones */
        rand_text(text[i + 1], sizeof text[i + 1], &seed, 12);
        CHECK(se_bm25_add(x, i + 2, text[i + 1], &err) == SE_OK);
        CHECK(se_bm25_add(x, i + 1, text[i], &err) == SE_OK);
    }
    for (int i = 0; i < ND; i++)
        if (i % 4 == 0 || (i % 8 == 1)) CHECK(se_bm25_add(y, i + 1, text[i], &err) == SE_OK);
    CHECK_MSG(se_bm25_count(x) == se_bm25_count(y), "%zu vs %zu live", se_bm25_count(x), se_bm25_count(y));
    const char *qs[] = {"kinase", "protein cell tumor", "the brain of the mouse", "dose dose drug", "virus immune blood"};
    check_same(x, y, qs, 5);
    se_bm25_free(x);
    se_bm25_free(y);
    sqlite3_close(db1);
    sqlite3_close(db2);
}

/* Out of memory at each allocation of a build and a search: SE_E_NOMEM,
 * never a crash (the index then falls back to FTS5's ranking). */
TEST(test_bm25_nomem) {
    sqlite3 *db;
    se_bm25 *b = bm25_on(&db, SE_BM25_DEFAULT_FLAGS);
    CHECK(b != NULL);
    if (!b) return;
    se_bm25_free(b);
    int failed = 0;
    for (long k = 1; k < 200; k++) {
        b = se_bm25_new(NULL, 0);
        se_bm25_free(b);
        fts5_api *api = NULL;
        se_fts_register(db, ":memory:", &api, NULL);
        b = se_bm25_new(api, SE_BM25_DEFAULT_FLAGS);
        if (!b) continue;
        se_error err = {0};
        se_alloc_fail_after(k);
        se_status st = se_bm25_add(b, 1, "apple banana cherry", &err);
        if (!st) st = se_bm25_add(b, 2, "banana date", &err);
        se_fts_hit *h = NULL;
        size_t nh = 0;
        if (!st) st = se_bm25_search(b, "banana apple", NULL, 0, 10, &h, &nh, &err);
        se_alloc_fail_after(0);
        CHECK_MSG(st == SE_OK || st == SE_E_NOMEM, "k %ld: %d %s", k, (int)st, err.msg);
        failed += st != SE_OK;
        se_free(h);
        se_bm25_free(b);
    }
    CHECK(failed > 5);
    sqlite3_close(db);
}

/* Through the index: after adds, a replace and a delete, the keyword
 * scores equal those of the same index reopened (a fresh scorer). */
TEST(test_bm25_index_hooks) {
    char path[300];
    path_in(path, sizeof path, "hooks.idx");
    se_index_params ip = se_index_default_params();
    ip.kind = SE_INDEX_FLAT;
    se_index *idx = NULL;
    se_error err = {0};
    CHECK(se_index_create(path, DIM, &ip, &idx, &err) == SE_OK);
    if (!idx) return;
    se_index_search_params p = se_index_search_default_params();
    p.mode = SE_SEARCH_KEYWORD;
    p.text = "dogs energy vaccines";
    se_index_hit h1[10], h2[10];
    size_t n1 = 0, n2 = 0;
    CHECK(add_docs(idx, DOCS, 2) == SE_OK);
    CHECK(se_index_search(idx, NULL, &p, h1, &n1, &err) == SE_OK && n1 == 2); /* builds the scorer */
    CHECK(add_docs(idx, DOCS + 2, 2) == SE_OK);
    doc4 b2 = {"b", "Mitochondria make energy for the cell; energy again.", NULL, {0, 1, 0, 0}};
    CHECK(add_docs(idx, &b2, 1) == SE_OK);
    const char *del[] = {"a"};
    CHECK(se_index_delete(idx, del, 1, NULL, &err) == SE_OK);
    CHECK(se_index_search(idx, NULL, &p, h1, &n1, &err) == SE_OK && n1 == 2);
    CHECK(se_index_close(idx, &err) == SE_OK);
    CHECK(se_index_open(path, true, NULL, NULL, &idx, &err) == SE_OK);
    if (!idx) return;
    CHECK(se_index_search(idx, NULL, &p, h2, &n2, &err) == SE_OK && n2 == n1);
    for (size_t i = 0; i < n1 && i < n2; i++)
        CHECK_MSG(h1[i].doc == h2[i].doc && h1[i].score == h2[i].score, "rank %zu: %lld %.9g vs %lld %.9g", i,
                  (long long)h1[i].doc, (double)h1[i].score, (long long)h2[i].doc, (double)h2[i].score);
    se_index_close(idx, NULL);
}

/* Ranking and scores equal tools/bm25_reference.py's (numpy, Lucene's
 * formula and one-byte lengths, stop words, possessives) on 300 documents
 * and 40 queries: tests/fixtures/bm25/reference.tsv. Equal scores (a tie)
 * may come in either order only if their row ids say so. */
TEST(test_bm25_numpy_reference) {
    FILE *f = fopen("tests/fixtures/bm25/reference.tsv", "r");
    CHECK(f != NULL);
    if (!f) return;
    sqlite3 *db;
    se_bm25 *b = bm25_on(&db, SE_BM25_DEFAULT_FLAGS);
    CHECK(b != NULL);
    static char line[8192], q[8192];
    se_error err = {0};
    se_fts_hit *h = NULL;
    size_t nh = 0, nq = 0, nr = 0;
    while (b && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == 'D') {
            char *t = strchr(line + 2, '\t');
            CHECK(t && se_bm25_add(b, strtoll(line + 2, NULL, 10), t + 1, &err) == SE_OK);
        } else if (line[0] == 'Q') {
            se_free(h);
            snprintf(q, sizeof q, "%s", line + 2);
            CHECK(se_bm25_search(b, q, NULL, 0, 10, &h, &nh, &err) == SE_OK);
            nq++;
        } else if (line[0] == 'R') {
            size_t r = 0;
            long long doc = 0;
            double sc = 0;
            CHECK(sscanf(line + 2, "%zu\t%lld\t%lf", &r, &doc, &sc) == 3);
            CHECK_MSG(r < nh, "'%s': rank %zu missing (%zu hits)", q, r, nh);
            if (r < nh)
                CHECK_MSG(h[r].doc == doc && fabs(h[r].score - sc) < 1e-5 * (sc > 1 ? sc : 1),
                          "'%s' rank %zu: %lld %.9g, numpy %lld %.9g", q, r, (long long)h[r].doc, (double)h[r].score, doc, sc);
            nr++;
        }
    }
    CHECK_MSG(nq == 40 && nr >= 300, "%zu queries, %zu ranks", nq, nr);
    se_free(h);
    fclose(f);
    se_bm25_free(b);
    sqlite3_close(db);
}

/* Keyword and hybrid searches on two threads while a third adds, replaces
 * and deletes (the scorer is built during the writes and kept in step
 * under the index's lock): every search succeeds, and at the end the
 * scores equal a fresh open's. Run under TSan too. */
typedef struct conc_ctx {
    se_index *idx;
    int mode, failures, searches;
    volatile int *stop;
} conc_ctx;

static void *conc_reader(void *arg) {
    conc_ctx *c = arg;
    float q[DIM] = {1, 0, 0, 0};
    se_index_search_params p = se_index_search_default_params();
    p.mode = c->mode;
    p.text = "kinase protein tumor";
    se_index_hit h[10];
    size_t n = 0;
    se_error err = {0};
    while (!__atomic_load_n(c->stop, __ATOMIC_ACQUIRE)) {
        if (se_index_search(c->idx, q, &p, h, &n, &err) != SE_OK) c->failures++;
        c->searches++;
    }
    return NULL;
}

TEST(test_bm25_concurrent) {
    char path[300];
    path_in(path, sizeof path, "conc.idx");
    se_index_params ip = se_index_default_params();
    ip.kind = SE_INDEX_FLAT;
    se_index *idx = NULL;
    se_error err = {0};
    CHECK(se_index_create(path, DIM, &ip, &idx, &err) == SE_OK);
    if (!idx) return;
    volatile int stop = 0;
    conc_ctx cs[2] = {{idx, SE_SEARCH_KEYWORD, 0, 0, &stop}, {idx, SE_SEARCH_HYBRID, 0, 0, &stop}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, conc_reader, &cs[i]);
    unsigned seed = 3;
    static char text[400];
    char id[32];
    float v[DIM] = {0.5f, 0.5f, 0, 0};
    for (int i = 0; i < 120; i++) {
        rand_text(text, sizeof text, &seed, 5 + i % 30);
        snprintf(id, sizeof id, "d%d", i % 80); /* from 80 on: replaces */
        se_index_doc d = {id, text, NULL, 1, NULL, v, NULL};
        CHECK(se_index_add(idx, &d, 1, &err) == SE_OK);
        if (i % 10 == 9) {
            snprintf(id, sizeof id, "d%d", i / 2);
            const char *del[] = {id};
            CHECK(se_index_delete(idx, del, 1, NULL, &err) == SE_OK);
        }
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK_MSG(cs[0].failures == 0 && cs[1].failures == 0, "%d and %d failed searches", cs[0].failures, cs[1].failures);
    CHECK(cs[0].searches > 0 && cs[1].searches > 0);
    se_index_search_params p = se_index_search_default_params();
    p.mode = SE_SEARCH_KEYWORD;
    p.text = "kinase protein tumor";
    se_index_hit h1[10], h2[10];
    size_t n1 = 0, n2 = 0;
    CHECK(se_index_search(idx, NULL, &p, h1, &n1, &err) == SE_OK && n1 == 10);
    se_index_close(idx, NULL);
    CHECK(se_index_open(path, true, NULL, NULL, &idx, &err) == SE_OK);
    if (!idx) return;
    CHECK(se_index_search(idx, NULL, &p, h2, &n2, &err) == SE_OK && n2 == n1);
    for (size_t i = 0; i < n1 && i < n2; i++)
        CHECK_MSG(h1[i].doc == h2[i].doc && h1[i].score == h2[i].score, "rank %zu: %lld %.9g vs %lld %.9g", i,
                  (long long)h1[i].doc, (double)h1[i].score, (long long)h2[i].doc, (double)h2[i].score);
    se_index_close(idx, NULL);
}

/* Keeps the last log line. */
static void keep_log(se_log_level lv, const char *msg, void *user) {
    (void)lv;
    snprintf(user, 512, "%s", msg);
}

/* Out of memory building the in-memory postings: a warning in the log,
 * and FTS5's bm25() ranks instead (the same documents found). */
TEST(test_bm25_fallback_fts) {
    char path[300], ids[200], logline[512] = "";
    path_in(path, sizeof path, "fallback.idx");
    se_index_params ip = se_index_default_params();
    ip.kind = SE_INDEX_FLAT;
    se_index *idx = NULL;
    se_error err = {0};
    CHECK(se_index_create(path, DIM, &ip, &idx, &err) == SE_OK);
    if (!idx) return;
    CHECK(add_docs(idx, DOCS, 4) == SE_OK);
    se_index_close(idx, NULL);
    CHECK(se_index_open(path, false, keep_log, logline, &idx, &err) == SE_OK);
    if (!idx) return;
    se_alloc_fail_after(1); /* the scorer's first allocation */
    se_status st = kw_ids(idx, "dogs", ids, sizeof ids, &err);
    se_alloc_fail_after(0);
    CHECK_MSG(st == SE_OK, "%s", err.msg);
    CHECK_MSG(!strcmp(ids, "a d") || !strcmp(ids, "d a"), "dogs: %s", ids);
    CHECK_MSG(strstr(logline, "falls back to FTS5") && strstr(logline, "fallback.idx"), "log: %s", logline);
    /* writes and searches go on through FTS5 */
    doc4 e = {"e", "Dogs and more dogs.", NULL, {0, 0, 0, 1}};
    CHECK(add_docs(idx, &e, 1) == SE_OK);
    CHECK(kw_ids(idx, "dogs", ids, sizeof ids, &err) == SE_OK && strstr(ids, "e") && strstr(ids, "a") && strstr(ids, "d"));
    se_index_close(idx, NULL);
}

/* ---- the default fusion (issue 14: never below the better side) ---- */

/* A vector list of n documents (row ids 100 + i) scored top - step * i. */
static void ramp_list(se_fuse_item *v, size_t n, float top, float step) {
    for (size_t i = 0; i < n; i++) v[i] = (se_fuse_item){100 + (int64_t)i, top - step * (float)i};
}

TEST(test_fuse_default_alpha_ramp) {
    /* spread = best - 10th score: < 0.02 flat (0); 0.02..0.1: 0.2; 0.1..0.3: 0.2 -> 0.8 linearly; above: 0.8 */
    se_fuse_item v[12];
    struct { float step, want; } c[] = {{0.001f, 0.0f},  /* spread 0.009: flat */
                                        {0.005f, 0.2f},  /* 0.045 */
                                        {0.02f, 0.44f},  /* 0.18: 0.2 + 0.4 * 0.6 */
                                        {0.025f, 0.575f}, /* 0.225: 0.2 + 0.625 * 0.6 */
                                        {0.05f, 0.8f}};  /* 0.45 */
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        ramp_list(v, 12, 0.9f, c[i].step);
        float a = se_fuse_default_alpha(v, 12);
        CHECK_MSG(fabsf(a - c[i].want) < 1e-5f, "step %g: alpha %.7g, want %.7g", (double)c[i].step, (double)a, (double)c[i].want);
    }
    CHECK(se_fuse_default_alpha(v, 1) == 0 && se_fuse_default_alpha(NULL, 0) == 0);
}

TEST(test_fuse_default_exact) {
    /* vector spread 0.9 - 0.75 = 0.15 (the list is shorter than 10): alpha 0.2 + 0.25 * 0.6 = 0.35;
     * normalised against the last score (shorter than the depths): vector 1 -> 1, 2 -> 1/3, 3 -> 0;
     * keyword 2 -> 1, 4 -> 0.5, 1 -> 0. Fused: 2: 0.35/3 + 0.65 = 0.7667, 1: 0.35, 4: 0.325, 3: 0 */
    se_fuse_item v[] = {{1, 0.9f}, {2, 0.8f}, {3, 0.75f}}, kw[] = {{2, 10.0f}, {4, 6.0f}, {1, 2.0f}};
    se_fused out[6];
    size_t n = 0;
    se_fuse(v, 3, kw, 3, SE_FUSION_DEFAULT, -1.0f, 0, out, &n);
    CHECK(n == 4);
    int64_t want_doc[] = {2, 1, 4, 3};
    float want[] = {0.35f / 3 + 0.65f, 0.35f, 0.325f, 0.0f};
    for (size_t i = 0; i < 4 && i < n; i++) {
        CHECK_MSG(out[i].doc == want_doc[i], "rank %zu: doc %lld, want %lld", i, (long long)out[i].doc, (long long)want_doc[i]);
        CHECK_MSG(fabsf(out[i].score - want[i]) < 1e-5f, "rank %zu: %.9g, want %.9g", i, (double)out[i].score, (double)want[i]);
    }
    /* an explicit alpha replaces the per-query one (same normalisation) */
    se_fuse(v, 3, kw, 3, SE_FUSION_DEFAULT, 1.0f, 0, out, &n);
    CHECK(n == 4 && out[0].doc == 1 && out[1].doc == 2 && fabsf(out[1].score - 1.0f / 3) < 1e-6f);
    /* a flat vector side (spread 0.01): alpha 0, the keyword ranking, then vector-only documents */
    se_fuse_item flat[] = {{1, 0.5f}, {3, 0.495f}, {5, 0.49f}};
    se_fuse(flat, 3, kw, 3, SE_FUSION_DEFAULT, -1.0f, 0, out, &n);
    int64_t want_flat[] = {2, 4, 1, 3, 5};
    CHECK(n == 5);
    for (size_t i = 0; i < 5 && i < n; i++) CHECK_MSG(out[i].doc == want_flat[i], "flat rank %zu: doc %lld", i, (long long)out[i].doc);
}

TEST(test_fuse_default_depth) {
    /* 25 vector candidates 0.9 - 0.01 i (spread 0.09: alpha 0.2), normalised against the 20th
     * (0.71): document i gets 0.2 (19 - i) / 19, 0 from the 20th on; keyword: 40 candidates
     * 20 - 0.5 j (rows 200 + j; row 105 is keyword's 3rd), normalised against the last (0.5):
     * 0.8 (39 - j) / 39. The same documents and scores whether the vector side gave 20 or 25 */
    se_fuse_item v[25], kw[40];
    ramp_list(v, 25, 0.9f, 0.01f);
    for (size_t j = 0; j < 40; j++) kw[j] = (se_fuse_item){j == 2 ? 105 : 200 + (int64_t)j, 20.0f - 0.5f * (float)j};
    se_fused a[65], b[65];
    size_t na = 0, nb = 0;
    se_fuse(v, 20, kw, 40, SE_FUSION_DEFAULT, -1.0f, 0, a, &na);
    se_fuse(v, 25, kw, 40, SE_FUSION_DEFAULT, -1.0f, 0, b, &nb);
    CHECK(na == 59 && nb == 64);
    /* row 105 (vector 6th, keyword 3rd): 0.2 * 14/19 + 0.8 * 37/39; row 200 (keyword 1st): 0.8 */
    CHECK(a[0].doc == 105 && fabsf(a[0].score - (0.2f * 14 / 19 + 0.8f * 37 / 39)) < 1e-6f);
    CHECK(a[1].doc == 200 && fabsf(a[1].score - 0.8f) < 1e-6f);
    int same = 1;
    for (size_t i = 0; i < 40; i++) same &= a[i].doc == b[i].doc && a[i].score == b[i].score;
    CHECK_MSG(same, "the first 40 differ between 20 and 25 vector candidates");
    /* min-max over the whole list (--fusion score) does depend on it: row 100 at alpha 0.2 */
    se_fuse(v, 20, kw, 40, SE_FUSION_SCORE, 0.2f, 0, a, &na);
    se_fuse(v, 25, kw, 40, SE_FUSION_SCORE, 0.2f, 0, b, &nb);
    float s20 = 0, s25 = 0;
    for (size_t i = 0; i < na; i++) if (a[i].doc == 110) s20 = a[i].score;
    for (size_t i = 0; i < nb; i++) if (b[i].doc == 110) s25 = b[i].score;
    CHECK_MSG(fabsf(s20 - 0.2f * 9 / 19) < 1e-6f && fabsf(s25 - 0.2f * 14 / 24) < 1e-6f, "%g %g", (double)s20, (double)s25);
}

/* ---- the title field (index format 4) ---- */

/* Scores of the two-field scorer by hand: per field its own N (documents
 * with a token in it), avgdl and idf, the fields' scores added. Text
 * lengths 2 2 1 (N 3, avgdl 5/3); titles "appl pie" and "cherri" (N 2,
 * avgdl 1.5; document 2 has none). */
TEST(test_bm25_title_hand_values) {
    sqlite3 *db;
    se_bm25 *b = bm25_on(&db, SE_BM25_DEFAULT_FLAGS);
    CHECK(b != NULL);
    if (!b) return;
    se_error err = {0};
    CHECK(se_bm25_add_titled(b, 1, "Apple pie", "banana cherry", &err) == SE_OK);
    CHECK(se_bm25_add_titled(b, 2, NULL, "apple banana", &err) == SE_OK);
    CHECK(se_bm25_add_titled(b, 3, "Cherry", "date", &err) == SE_OK);
    CHECK(se_bm25_add_titled(b, 4, "", "", &err) == SE_OK); /* no title, no text: in neither field's N */
    /* apple: text (doc 2) ln(1 + 2.5 / 1.5) / (1 + 1.2 (0.25 + 0.75 * 2 / (5/3)));
     * title (doc 1) ln 2 / (1 + 1.2 (0.25 + 0.75 * 2 / 1.5)) */
    check_hits(b, "apple", (int64_t[]){2, 1}, (double[]){0.412113132, 0.277258872}, 2);
    check_hits(b, "cherry", (int64_t[]){1, 3}, (double[]){0.412113132, 0.364814306}, 2);
    check_hits(b, "pie", (int64_t[]){1}, (double[]){0.277258872}, 1); /* a title-only match */
    check_hits(b, "banana cherry", (int64_t[]){1, 3, 2}, (double[]){0.609593648, 0.364814306, 0.197480516}, 3);
    /* replacing and deleting keep the scores of a fresh scorer */
    CHECK(se_bm25_add_titled(b, 3, "Cherry tart", "date", &err) == SE_OK);
    CHECK(se_bm25_add_titled(b, 3, "Cherry", "date", &err) == SE_OK);
    CHECK(se_bm25_add_titled(b, 5, "Pie pie", "kiwi", &err) == SE_OK);
    CHECK(se_bm25_remove(b, 5) == 0);
    check_hits(b, "banana cherry", (int64_t[]){1, 3, 2}, (double[]){0.609593648, 0.364814306, 0.197480516}, 3);
    check_hits(b, "pie", (int64_t[]){1}, (double[]){0.277258872}, 1);
    se_bm25_free(b);
    sqlite3_close(db);
}

/* With titles, adds, replacements and deletes (enough to compact) leave
 * exactly the scores of a scorer built fresh over the live documents. */
TEST(test_bm25_title_incremental_equals_fresh) {
    sqlite3 *db1, *db2;
    se_bm25 *x = bm25_on(&db1, SE_BM25_DEFAULT_FLAGS), *y = bm25_on(&db2, SE_BM25_DEFAULT_FLAGS);
    CHECK(x && y);
    if (!x || !y) return;
    se_error err = {0};
    enum { ND = 300 };
    static char text[ND][400], title[ND][100];
    unsigned seed = 11;
    for (int i = 0; i < ND; i++) {
        rand_text(text[i], sizeof text[i], &seed, 5 + i % 30);
        rand_text(title[i], sizeof title[i], &seed, i % 5); /* every fifth without a title */
        CHECK(se_bm25_add_titled(x, i + 1, title[i], text[i], &err) == SE_OK);
    }
    for (int i = 0; i < ND; i += 3) { /* replace a third, titles too */
        rand_text(title[i], sizeof title[i], &seed, 1 + i % 4);
        CHECK(se_bm25_add_titled(x, i + 1, title[i], text[i], &err) == SE_OK);
    }
    for (int i = 0; i < ND; i++) /* delete 3 in 4: compacts */
        if (i % 4 != 0) CHECK(se_bm25_remove(x, i + 1) == 0);
    for (int i = 0; i < ND; i++)
        if (i % 4 == 0) CHECK(se_bm25_add_titled(y, i + 1, title[i], text[i], &err) == SE_OK);
    CHECK_MSG(se_bm25_count(x) == se_bm25_count(y), "%zu vs %zu live", se_bm25_count(x), se_bm25_count(y));
    const char *qs[] = {"kinase", "protein cell tumor", "the brain of the mouse", "dose dose drug", "virus immune blood"};
    check_same(x, y, qs, 5);
    se_bm25_free(x);
    se_bm25_free(y);
    sqlite3_close(db1);
    sqlite3_close(db2);
}

/* Adds documents with titles (NULL entries: none). */
static se_status add_titled(se_index *idx, const doc4 *d, const char *const *titles, size_t n) {
    se_index_doc in[8];
    for (size_t i = 0; i < n; i++) in[i] = (se_index_doc){d[i].id, d[i].text, d[i].meta, 1, NULL, d[i].v, titles[i]};
    return se_index_add(idx, in, n, NULL);
}

/* doc ext_id's stored title ("" when none), into out. */
static void title_of(se_index *idx, const char *ext, char *out, size_t cap) {
    out[0] = 0;
    se_index_search_params p = se_index_search_default_params();
    float q[DIM] = {1, 1, 1, 1};
    p.k = 10;
    se_index_hit h[10];
    size_t n = 0;
    se_error err = {0};
    if (se_index_search(idx, q, &p, h, &n, &err) != SE_OK) return;
    for (size_t i = 0; i < n; i++) {
        se_index_doc_out d;
        if (se_index_fetch(idx, h[i].doc, &d, &err) != SE_OK) return;
        if (!strcmp(d.id, ext)) snprintf(out, cap, "%s", d.title ? d.title : "");
        se_free(d.id), se_free(d.text), se_free(d.meta), se_free(d.title);
    }
}

/* Through the index: a title is stored, returned by se_index_fetch, found
 * by a keyword search of its words alone (FTS5 and the in-memory scorer),
 * replaced and deleted with its document; the FTS table stays consistent. */
TEST(test_fts_title_field) {
    char path[300], ids[200], t[200];
    path_in(path, sizeof path, "title.idx");
    se_index_params ip = se_index_default_params();
    ip.kind = SE_INDEX_FLAT;
    se_index *idx = NULL;
    se_error err = {0};
    CHECK(se_index_create(path, DIM, &ip, &idx, &err) == SE_OK);
    if (!idx) return;
    const char *titles[] = {"Canine behaviour", NULL, "Smartphones", ""};
    CHECK(add_titled(idx, DOCS, titles, 4) == SE_OK);
    title_of(idx, "a", t, sizeof t);
    CHECK_MSG(!strcmp(t, "Canine behaviour"), "title of a: '%s'", t);
    title_of(idx, "d", t, sizeof t);
    CHECK_MSG(!strcmp(t, ""), "title of d: '%s'", t); /* "" is stored as none */
    CHECK(kw_ids(idx, "canine", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "a"));
    CHECK(kw_ids(idx, "smartphones", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "c"));
    /* replace: the old title's words go */
    doc4 a2 = DOCS[0];
    const char *t2[] = {"Feline behaviour"};
    CHECK(add_titled(idx, &a2, t2, 1) == SE_OK);
    CHECK(kw_ids(idx, "canine", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, ""));
    CHECK(kw_ids(idx, "feline", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "a"));
    const char *del[] = {"c"};
    size_t nd = 0;
    CHECK(se_index_delete(idx, del, 1, &nd, &err) == SE_OK && nd == 1);
    CHECK(kw_ids(idx, "smartphones", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, ""));
    CHECK(se_index_close(idx, &err) == SE_OK);
    CHECK(fts_consistent(path));
    /* the FTS5 fallback searches the title column too */
    CHECK(se_index_open(path, false, NULL, NULL, &idx, &err) == SE_OK);
    if (!idx) return;
    se_alloc_fail_after(1);
    se_status st = kw_ids(idx, "feline", ids, sizeof ids, &err);
    se_alloc_fail_after(0);
    CHECK_MSG(st == SE_OK && !strcmp(ids, "a"), "fallback: %s (%s)", ids, err.msg);
    se_index_close(idx, NULL);
}

/* An index of format 3 (tests/fixtures/index/v3-words.idx: v2-words.idx
 * upgraded by sembed at 8e4ecd4, VACUUMed to 1 KiB pages): read-only it is
 * read as it is (no titles); a writable open adds docs.title and rebuilds
 * the FTS table with the title column (format 4), after which titles are
 * stored and searched. */
TEST(test_fts_upgrade_v3) {
    char path[300], cmd[700], ids[200], t[200];
    path_in(path, sizeof path, "v3.idx");
    snprintf(cmd, sizeof cmd, "cp tests/fixtures/index/v3-words.idx '%s'", path);
    CHECK(system(cmd) == 0);
    se_index *idx = NULL;
    se_error err = {0};
    CHECK(se_index_open(path, true, NULL, NULL, &idx, &err) == SE_OK);
    if (!idx) return;
    se_index_info info;
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.format_version == 3 && info.n_docs == 4);
    CHECK(kw_ids(idx, "5.3", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "a"));
    title_of(idx, "a", t, sizeof t);
    CHECK(!strcmp(t, ""));
    se_index_close(idx, NULL);
    CHECK(se_index_open(path, false, NULL, NULL, &idx, &err) == SE_OK);
    if (!idx) return;
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.format_version == 4 && info.n_docs == 4);
    CHECK(kw_ids(idx, "1,000 cells", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "d"));
    doc4 e = {"e", "Nothing about it here.", NULL, {0, 0, 0, 1}};
    const char *te[] = {"Zebrafish regeneration"};
    CHECK(add_titled(idx, &e, te, 1) == SE_OK);
    CHECK(kw_ids(idx, "zebrafish", ids, sizeof ids, &err) == SE_OK && !strcmp(ids, "e"));
    CHECK(se_index_close(idx, &err) == SE_OK);
    CHECK(fts_consistent(path));
    CHECK(se_index_open(path, true, NULL, NULL, &idx, &err) == SE_OK);
    if (!idx) return;
    CHECK(se_index_get_info(idx, &info, &err) == SE_OK && info.format_version == 4);
    title_of(idx, "e", t, sizeof t);
    CHECK_MSG(!strcmp(t, "Zebrafish regeneration"), "title of e: '%s'", t);
    CHECK(kw_ids(idx, "regeneration patient", ids, sizeof ids, &err) == SE_OK && strstr(ids, "e"));
    se_index_close(idx, NULL);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sembed-test-fts-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    RUN(test_fuse_rrf_exact);
    RUN(test_fuse_score_exact);
    RUN(test_fuse_alpha_ends);
    RUN(test_fts_tokens_mixed);
    RUN(test_fts_add_replace_delete);
    RUN(test_fts_tokens_uax29);
    RUN(test_fts_upgrade_v1);
    RUN(test_fts_upgrade_v2);
    RUN(test_fts_hostile_queries);
    RUN(test_hybrid_search);
    RUN(test_bm25_hand_values);
    RUN(test_bm25_incremental_equals_fresh);
    RUN(test_bm25_nomem);
    RUN(test_bm25_index_hooks);
    RUN(test_bm25_numpy_reference);
    RUN(test_bm25_concurrent);
    RUN(test_bm25_fallback_fts);
    RUN(test_fuse_default_alpha_ramp);
    RUN(test_fuse_default_exact);
    RUN(test_fuse_default_depth);
    RUN(test_bm25_title_hand_values);
    RUN(test_bm25_title_incremental_equals_fresh);
    RUN(test_fts_title_field);
    RUN(test_fts_upgrade_v3);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_report("test_index_fts");
}
