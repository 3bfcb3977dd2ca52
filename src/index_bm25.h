/*
 * index_bm25.h - the index's in-memory BM25 scorer (private): postings
 * built with the keyword index's own tokenizer (index_fts.c), scored as
 * Lucene / Elasticsearch's BM25, kept in step by the index's add and
 * delete. Not thread-safe: index.c calls every function here with its
 * db_lock held.
 */
#ifndef SE_INDEX_BM25_H
#define SE_INDEX_BM25_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index_fts.h"

/* Lucene's defaults. */
#define SE_BM25_K1 1.2
#define SE_BM25_B 0.75

/* Options of a scorer (se_bm25_new's flags). */
enum {
    /* drop Lucene's English stop words (EnglishAnalyzer's list) and the
     * possessive 's, on both the document and the query side, as
     * Elasticsearch's "english" analyzer does */
    SE_BM25_STOPWORDS = 1,
    /* a term repeated in the query counts once per repetition (Lucene's
     * query parser makes one clause per token); off: distinct terms */
    SE_BM25_QUERY_TF = 2,
    /* document lengths as Lucene stores them: one byte (SmallFloat's
     * intToByte4: exact below 24, then 4 significant bits), so a length
     * of 200 counts as 192..216's bucket value; avgdl stays exact */
    SE_BM25_LUCENE_NORMS = 4,
};

/* The flags the index uses (README "Hybrid search"). */
#define SE_BM25_DEFAULT_FLAGS (SE_BM25_STOPWORDS | SE_BM25_QUERY_TF | SE_BM25_LUCENE_NORMS)

typedef struct se_bm25 se_bm25;

/* A new, empty scorer tokenising with the "sembed" tokenizer of api (a
 * connection's fts5_api with se_fts_register done; it must outlive the
 * scorer). NULL when out of memory. */
se_bm25 *se_bm25_new(fts5_api *api, unsigned flags);

/* Frees b (NULL is fine). */
void se_bm25_free(se_bm25 *b);

/* Indexes document doc's text, replacing what doc had (no title). On
 * failure (out of memory) the scorer is unusable: free it. */
se_status se_bm25_add(se_bm25 *b, int64_t doc, const char *text, se_error *err);

/* As se_bm25_add, with doc's title (NULL or "": none) as a second field. */
se_status se_bm25_add_titled(se_bm25 *b, int64_t doc, const char *title, const char *text, se_error *err);

/* Takes doc out (nothing when absent); compacts the postings when the
 * removed documents outnumber the live ones. Returns 0, or -1 when out of
 * memory while compacting (the scorer is then unusable: free it). */
int se_bm25_remove(se_bm25 *b, int64_t doc);

/* The live documents. */
size_t se_bm25_count(const se_bm25 *b);

/* The best limit documents for the free text query, best first (score
 * descending, ties by row id ascending), scored per field f (text, title)
 * and added, as Lucene's BooleanQuery of one clause per field sums them:
 *   score = BM25_text + BM25_title,
 *   BM25_f = sum over the query's terms t of
 *            idf_f(t) * tf_f / (tf_f + k1 (1 - b + b dl_f / avgdl_f))
 * with idf_f(t) = ln(1 + (N_f - n_f(t) + 0.5) / (n_f(t) + 0.5)) (Lucene
 * 8+'s BM25Similarity, per field: N_f the live documents with at least
 * one token in f (CollectionStatistics.docCount), n_f(t) of them
 * containing t in f, tf_f its count there, dl_f the document's length of
 * f in tokens, avgdl_f the field's total length / N_f). A document
 * without a title adds 0 on that field. allowed (sorted row ids,
 * n_allowed) restricts the documents when non-NULL. *hits se_malloc'd,
 * *n entries (NULL, 0 when nothing matches). */
se_status se_bm25_search(se_bm25 *b, const char *query, const int64_t *allowed, size_t n_allowed, size_t limit,
                         se_fts_hit **hits, size_t *n, se_error *err);

#endif
