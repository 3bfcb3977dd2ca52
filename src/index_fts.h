/*
 * index_fts.h - the index's keyword side (private): SQLite FTS5 with
 * sembed's tokenizer, the MATCH expression built from free text, and the
 * BM25 query. index.c owns the connection and its lock; every function
 * here runs on a connection the caller holds.
 */
#ifndef SE_INDEX_FTS_H
#define SE_INDEX_FTS_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "sembed.h"

/* The FTS5 table over docs.title and docs.text (index format 4; format 3
 * had text only): an external-content table (the texts are stored once,
 * in docs), rows keyed by docs.id, tokenised by "sembed" with UAX #29
 * words (its argument "2": keyword format 2, index formats 3 and 4; the
 * tables of index format 2 say tokenize='sembed', unicode61's pieces). */
#define SE_FTS_SCHEMA \
    "CREATE VIRTUAL TABLE fts USING fts5(title, text, content='docs', content_rowid='id', tokenize='sembed 2')"

/* The most distinct query terms a keyword search uses (the first ones of
 * the text); a longer text is searched by its first SE_FTS_TERMS_MAX. */
#define SE_FTS_TERMS_MAX 1024

/* Registers the "sembed" FTS5 tokenizer (and "sembed_words", its UAX #29
 * word joiner) on db (a connection is needed for
 * each open) and gives the connection's fts5_api in *api (may be NULL),
 * valid while db is open. SE_E_UNSUPPORTED, naming path, when this SQLite
 * has no FTS5. */
se_status se_fts_register(sqlite3 *db, const char *path, fts5_api **api, se_error *err);

/* Called for each token: its text (n bytes, not NUL-terminated) and the
 * byte span [start, end) in the input it came from. Nonzero stops. */
typedef int (*se_fts_token_fn)(void *user, const char *tok, int n, int start, int end);

/* Tokenises text (len bytes) as the keyword index does, with UAX #29
 * words (keyword format 2, whatever the file's FTS5 table says: the
 * in-memory scorer builds from the stored texts) (for documents
 * when query is false, for queries when true), calling fn per token. api:
 * se_fts_register's, of a connection with the tokenizer registered. */
se_status se_fts_tokenize(fts5_api *api, const char *text, size_t len, int query, se_fts_token_fn fn, void *user,
                          se_error *err);

/* Builds the FTS5 MATCH expression for free text: an OR of the distinct
 * terms, each the quoted span of the text it came from (so that quotes,
 * AND, NEAR, '*', parentheses in the text are words or nothing, never
 * syntax). *expr: se_malloc'd, or NULL when the text has no terms (only
 * punctuation, empty). */
se_status se_fts_match_expr(fts5_api *api, const char *text, char **expr, se_error *err);

/* One keyword hit: the docs row id and BM25, higher is better. */
typedef struct se_fts_hit {
    int64_t doc;
    float score;
} se_fts_hit;

/* The best limit documents for the MATCH expression expr by FTS5's bm25()
 * (k1 1.2, b 0.75), negated so that higher is better, best first (ties by
 * row id). filter_sql is appended to the WHERE clause over docs d (index.c's
 * filter terms, parameters 1..2*nf bound as index.c binds them through
 * bind, may be NULL when nf is 0). *hits: se_malloc'd, *n entries.
 * cache (may be NULL) keeps the statement of a search without filters
 * from one call to the next (the caller finalizes it). */
se_status se_fts_search(sqlite3 *db, const char *path, const char *expr, const char *filter_sql,
                        void (*bind)(sqlite3_stmt *, const void *), const void *bind_user, size_t limit,
                        sqlite3_stmt **cache, se_fts_hit **hits, size_t *n, se_error *err);

/* ---- fusion (index_fusion.c) ---- */

/* One ranked candidate of a side: a document and its score (higher is
 * better), lists best first, each document at most once. */
typedef struct se_fuse_item {
    int64_t doc;
    float score;
} se_fuse_item;

/* A fused document: its fused score and where it is in each input list
 * (-1: that side did not return it). */
typedef struct se_fused {
    int64_t doc;
    float score;
    int32_t vi, ki;
    int vfirst; /* ties: by the vector rank first (set by se_fuse) */
} se_fused;

/* Fuses the vector list v (nv) and the keyword list kw (nk) into out
 * (capacity nv + nk; *n_out documents, the union), best first, ties by
 * row id. method SE_FUSION_RRF: sum over the sides of 1 / (rrf_k + rank),
 * rank from 1. SE_FUSION_SCORE: alpha * mm(v) + (1 - alpha) * mm(kw), each
 * side min-max normalised over its own list (all equal: 1), 0 for a side
 * that did not return the document. SE_FUSION_DEFAULT: the same sum, but
 * each side normalised against its best score and its score at rank
 * SE_FUSE_DEPTH_VECTOR / SE_FUSE_DEPTH_KEYWORD (the last when shorter),
 * floored at 0, so that the ranking does not depend on how many
 * candidates each side gave; alpha negative: se_fuse_default_alpha(v).
 * Ties go by the rank on the side weighted more (RRF: the vector side),
 * then the other side's rank, then row id; so alpha 0 gives the keyword
 * ranking followed by the documents only the vector side returned, in its
 * order. Pure; no allocation. */
void se_fuse(const se_fuse_item *v, size_t nv, const se_fuse_item *kw, size_t nk, se_fusion method, float alpha,
             uint32_t rrf_k, se_fused *out, size_t *n_out);

/* The vector side's score spread: the best score minus the score at rank
 * n (1-based; the last one when the list is shorter); 0 for fewer than 2. */
float se_fuse_spread(const se_fuse_item *v, size_t nv, size_t n);

/* The default fusion's vector weight for one query, from the vector side's
 * spread s over its first SE_FUSE_FLAT_N candidates: 0 below
 * SE_FUSE_FLAT_SPREAD (a side whose scores do not discriminate: min-max
 * normalisation would amplify it into full-range noise), SE_FUSE_ALPHA_LOW
 * up to SE_FUSE_RAMP_FROM, rising linearly to SE_FUSE_ALPHA_HIGH at
 * SE_FUSE_RAMP_TO and above (a vector side that separates its best
 * documents clearly is trusted more). */
float se_fuse_default_alpha(const se_fuse_item *v, size_t nv);

/* The default fusion (SE_FUSION_DEFAULT), chosen by tools/fusion_sweep.py
 * over SciFact, zh-stsb-ir, en-stsb-ir and en-stsb-ir-hard (README
 * "Hybrid search"). SE_FUSE_DEFAULT_ALPHA is --fusion score's alpha when
 * none is given. */
#define SE_FUSE_DEFAULT_ALPHA 0.2f
#define SE_FUSE_FLAT_N 10
#define SE_FUSE_FLAT_SPREAD 0.02f
#define SE_FUSE_RAMP_FROM 0.1f
#define SE_FUSE_RAMP_TO 0.3f
#define SE_FUSE_ALPHA_LOW 0.2f
#define SE_FUSE_ALPHA_HIGH 0.8f
#define SE_FUSE_DEPTH_VECTOR 20
#define SE_FUSE_DEPTH_KEYWORD 100

/* A hybrid search's vector side gives max(SE_FUSE_VECTOR_MIN,
 * SE_FUSE_VECTOR_MULT k) documents to the fusion (the keyword side
 * max(100, 10 k)): measured by tools/fusion_sweep.py (vector_cand), 20
 * candidates fuse as well as 200 with the default on all four sets (it
 * scores the vector side against its 20th: later ones add 0), and HNSW's
 * cost grows with them. k of them (not 2 k) keeps hybrid's vector side
 * the cost of a vector-only search: on SciFact (k 100, one thread, quiet)
 * hybrid took 6.91 ms against vector-only's 3.22 with 2 k, 5.25 against
 * 3.07 with k, nDCG@10 of the default unchanged (67.31). */
#define SE_FUSE_VECTOR_MIN 20
#define SE_FUSE_VECTOR_MULT 1

#endif
