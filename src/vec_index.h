/*
 * vec_index.h - the in-memory vector index behind se_index: an exact flat
 * scan or an HNSW graph (Malkov & Yashunin 2016) over float32 vectors, keyed
 * by int64 labels (se_index uses the chunk row id).
 *
 * Slots: every vector lives in a slot; removing a label repairs the graph
 * around it at once (neighbours are re-linked among the removed node's
 * neighbours) and puts the slot on a free list that the next add reuses, so
 * memory is reused and no tombstones stay in the graph.
 *
 * Threading: one internal read-write lock. se_vx_search / se_vx_search_subset
 * / se_vx_save / the getters take it shared and may run on any number of
 * threads at once, also while another thread adds or removes; se_vx_add,
 * se_vx_remove, se_vx_set_vector take it exclusively (callers need no lock).
 */
#ifndef SE_VEC_INDEX_H
#define SE_VEC_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sembed.h"

typedef struct se_vx se_vx;

typedef struct se_vx_params {
    se_index_kind kind;
    se_metric metric;
    uint32_t M;               /* HNSW links per node (2M on layer 0) */
    uint32_t ef_construction; /* candidate list size while inserting */
    uint64_t seed;            /* level draws */
} se_vx_params;

/* What se_index keeps with each vector (returned with hits; not part of
 * the graph snapshot). */
typedef struct se_vx_payload {
    int64_t doc;
    uint32_t chunk, start, end;
} se_vx_payload;

typedef struct se_vx_hit {
    int64_t label;
    float score; /* cosine / dot: the inner product; l2: minus the distance */
    se_vx_payload pl;
} se_vx_hit;

/* A search filter: returns whether label may be in the results. Called
 * under the index's read lock from the searching thread. */
typedef bool (*se_vx_allow_fn)(void *user, int64_t label);

/* Creates an empty index for dim-sized vectors. *out owned by the caller
 * (se_vx_free). Thread-safe. */
se_status se_vx_new(size_t dim, const se_vx_params *p, se_vx **out, se_error *err);
void se_vx_free(se_vx *vx);

/* Adds vec under label (which must not be present: SE_E_INVALID). Cosine
 * indexes store the normalised vector, unless prepared (vec already went
 * through se_vx_prepare). Copies vec and *pl (may be NULL). */
se_status se_vx_add(se_vx *vx, int64_t label, const float *vec, bool prepared, const se_vx_payload *pl,
                    se_error *err);

/* Writes into out (dim floats) the vector exactly as the index stores it:
 * normalised for cosine, else a copy. Returns SE_E_INVALID for a vector
 * se_vx_check_vector refuses. */
se_status se_vx_prepare(const se_vx *vx, const float *vec, float *out, se_error *err);

/* Checks that vec (dim floats) can be stored or searched with: every value
 * finite and, for the dot and l2 metrics (whose vectors are not
 * normalised), a squared norm of at most FLT_MAX / 4, so that no score or
 * distance between two such vectors overflows to inf or nan. SE_E_INVALID
 * otherwise, the message naming the first bad value or the norm. */
se_status se_vx_check_vector(const se_vx *vx, const float *vec, se_error *err);

/* Removes the labels that are present; *n_removed counts them. Unknown
 * labels are skipped. */
se_status se_vx_remove(se_vx *vx, const int64_t *labels, size_t n, size_t *n_removed, se_error *err);

/* The k best vectors for query q (best first), *n_hits <= k of them. ef:
 * HNSW candidate list size (raised to k). allow (may be NULL) filters
 * results; traversal still passes through filtered-out nodes. hits: k
 * caller entries. Flat indexes scan everything (ef unused). */
se_status se_vx_search(se_vx *vx, const float *q, size_t k, size_t ef, se_vx_allow_fn allow, void *user,
                       se_vx_hit *hits, size_t *n_hits, se_error *err);

/* se_vx_search as a flat scan of every vector, whatever the kind: exact. */
se_status se_vx_search_exact(se_vx *vx, const float *q, size_t k, se_vx_allow_fn allow, void *user, se_vx_hit *hits,
                             size_t *n_hits, se_error *err);

/* Exact search restricted to the given labels (unknown ones skipped). */
se_status se_vx_search_subset(se_vx *vx, const float *q, size_t k, const int64_t *labels, size_t n_labels,
                              se_vx_hit *hits, size_t *n_hits, se_error *err);

/* Live vectors; the params. */
size_t se_vx_count(se_vx *vx);
/* Live vectors whose payload says chunk 0: se_index's documents. */
size_t se_vx_count_heads(se_vx *vx);

/* The default search's plan (se_index_search when no ef is given).
 * se_vx_auto_ef: the candidate list size for k results, (2k + 60) *
 * sqrt(r), at least ef_min; per_doc: results are documents of r = n_vectors /
 * n_docs chunks on average, so the list must reach deeper. se_vx_exact_is_faster: whether
 * a flat scan of n_vectors costs no more than an HNSW search with that ef
 * on this machine's kernels (then the exact answer is the cheaper one). */
size_t se_vx_auto_ef(size_t ef_min, size_t k, size_t n_vectors, size_t n_docs, bool per_doc);
bool se_vx_exact_is_faster(size_t n_vectors, size_t ef);
se_vx_params se_vx_get_params(const se_vx *vx);
/* Slots allocated (live + free) and bytes held, for se_index_info. */
void se_vx_stats(se_vx *vx, size_t *n_slots, size_t *n_free, size_t *bytes);

/* Copies the live labels, in slot order, into a new array (*labels, free
 * with se_free). */
se_status se_vx_labels(se_vx *vx, int64_t **labels, size_t *n, se_error *err);

/* Serialises everything but the vectors (params, rng state, slots' labels,
 * levels and links, the free list) into a new buffer (*blob, se_free),
 * ending in a CRC-32 of the rest. Deterministic: the same index gives the
 * same bytes. */
se_status se_vx_save(se_vx *vx, uint8_t **blob, size_t *len, se_error *err);

/* Rebuilds an index from se_vx_save's bytes, validating every field (magic,
 * version, CRC, ranges, link targets, a free list naming each free slot
 * once) and every count against the bytes left before allocating; errors
 * are SE_E_FORMAT (SE_E_NOMEM only when memory for a plausible snapshot
 * runs out). Labels must lie in 0..max_label (and there can be no more
 * slots than that allows); max_label < 0: no bound. The vectors
 * are then supplied with se_vx_set_vector (cosine: normalised again, which
 * is idempotent up to rounding, so the stored vectors are passed as
 * stored); se_vx_missing_vectors tells whether any live slot lacks one. */
se_status se_vx_load(const uint8_t *blob, size_t len, size_t dim, int64_t max_label, se_vx **out, se_error *err);
se_status se_vx_set_vector(se_vx *vx, int64_t label, const float *vec, bool prepared, const se_vx_payload *pl);
size_t se_vx_missing_vectors(se_vx *vx);

/* The stored (normalised for cosine) vector of label into out (dim
 * floats); false when absent. */
bool se_vx_get_vector(se_vx *vx, int64_t label, float *out);

/* The AVX2 + FMA distance pair the index uses on CPUs with AVX2 but not
 * AVX-512 (inner product; squared L2), any n; the scalar twins are
 * vec_dist.h's se_vdot_ref / se_vl2sq_ref. Only call when the CPU has AVX2
 * and FMA. */
float se_vx_dot_avx2(const float *a, const float *b, size_t n);
float se_vx_l2sq_avx2(const float *a, const float *b, size_t n);

#endif
