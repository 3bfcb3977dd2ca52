/*
 * tokenizer_vocab.c - the vocabulary every tokenizer model uses (see
 * tokenizer_vocab.h): pieces in one blob, FNV-1a hashing with linear
 * probing, and the growable int32 array.
 */
#include "tokenizer_vocab.h"

#include <string.h>

#include "alloc.h"
#include "error.h"

/* ==== Growable arrays ==== */

bool se_i32vec_push(se_i32vec *a, int32_t x) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        int32_t *v = se_realloc(a->v, nc * sizeof *v);
        if (!v) return false;
        a->v = v, a->cap = nc;
    }
    a->v[a->n++] = x;
    return true;
}

/* Frees the array's memory and leaves it empty, ready for reuse. */
void se_i32vec_free(se_i32vec *a) {
    se_free(a->v);
    a->v = NULL, a->n = a->cap = 0;
}

/* ==== Building ==== */

se_status se_vocab_add(se_vocab *v, const char *s, size_t len, size_t id, const char *file, se_error *err) {
    if (len > 4096) return se_err(err, SE_E_FORMAT, "%s: vocabulary piece of %zu bytes is too long", file, len);
    if (id >= (size_t)INT32_MAX) return se_err(err, SE_E_FORMAT, "%s: token id %zu is too large", file, id);
    if (id >= v->id_cap) {
        size_t nc = v->id_cap ? v->id_cap : 1024;
        while (nc <= id) nc *= 2;
        uint32_t *o = se_realloc(v->offs, nc * sizeof *o);
        if (!o) return se_err(err, SE_E_NOMEM, "%s: out of memory", file);
        v->offs = o;
        uint32_t *l = se_realloc(v->lens, nc * sizeof *l);
        if (!l) return se_err(err, SE_E_NOMEM, "%s: out of memory", file);
        v->lens = l;
        if (v->hidden) {
            uint8_t *h = se_realloc(v->hidden, nc);
            if (!h) return se_err(err, SE_E_NOMEM, "%s: out of memory", file);
            memset(h + v->id_cap, 0, nc - v->id_cap);
            v->hidden = h;
        }
        for (size_t k = v->id_cap; k < nc; k++) v->offs[k] = UINT32_MAX, v->lens[k] = 0;
        v->id_cap = nc;
    }
    if (v->offs[id] != UINT32_MAX)
        return se_err(err, SE_E_FORMAT, "%s: token id %zu is given to two pieces", file, id);
    if (v->blob_len + len + 1 > v->blob_cap) {
        size_t nc = v->blob_cap ? v->blob_cap : 65536;
        while (nc < v->blob_len + len + 1) nc *= 2;
        if (nc > UINT32_MAX) return se_err(err, SE_E_FORMAT, "%s: vocabulary too large", file);
        char *b = se_realloc(v->blob, nc);
        if (!b) return se_err(err, SE_E_NOMEM, "%s: out of memory", file);
        v->blob = b;
        v->blob_cap = nc;
    }
    memcpy(v->blob + v->blob_len, s, len);
    v->blob[v->blob_len + len] = 0;
    v->offs[id] = (uint32_t)v->blob_len;
    v->lens[id] = (uint32_t)len;
    v->blob_len += len + 1;
    if (id + 1 > v->n) v->n = id + 1;
    return SE_OK;
}

/* Marks id as not indexed, allocating the flags on first use (see the
 * header). */
se_status se_vocab_hide(se_vocab *v, size_t id, se_error *err) {
    if (id >= v->n) return se_err(err, SE_E_INTERNAL, "vocabulary: hiding id %zu of %zu", id, v->n);
    if (!v->hidden) {
        v->hidden = se_calloc(v->id_cap, 1);
        if (!v->hidden) return se_err(err, SE_E_NOMEM, "vocabulary: out of memory");
    }
    v->hidden[id] = 1;
    return SE_OK;
}

/* ==== Hash ==== */

/* FNV-1a over the bytes. */
static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* Builds the hash over the indexed ids, twice as many slots as ids (see
 * the header); rebuilding replaces the old index. */
se_status se_vocab_build_index(se_vocab *v, se_error *err) {
    size_t ns = 16;
    while (ns < v->n * 2) ns <<= 1;
    se_free(v->slots);
    v->slots = se_malloc_array(ns, sizeof *v->slots);
    if (!v->slots) return se_err(err, SE_E_NOMEM, "vocabulary: out of memory for %zu slots", ns);
    memset(v->slots, 0xff, ns * sizeof *v->slots);
    v->n_slots = ns;
    for (size_t id = v->index_from; id < v->n; id++) {
        if (v->offs[id] == UINT32_MAX || (v->hidden && v->hidden[id])) continue;
        const char *p = v->blob + v->offs[id];
        size_t len = v->lens[id];
        size_t i = hash_bytes(p, len) & (ns - 1);
        for (;;) {
            int32_t o = v->slots[i];
            if (o < 0) {
                v->slots[i] = (int32_t)id;
                break;
            }
            if (v->lens[o] == len && memcmp(v->blob + v->offs[o], p, len) == 0) {
                v->slots[i] = (int32_t)id; /* a repeated piece: the later id wins, as in HF */
                break;
            }
            i = (i + 1) & (ns - 1);
        }
    }
    return SE_OK;
}

/* Probes linearly from the piece's hash; -1 at the first empty slot. */
int32_t se_vocab_find(const se_vocab *v, const char *s, size_t len) {
    if (!v->n_slots) return -1;
    size_t i = hash_bytes(s, len) & (v->n_slots - 1);
    for (;;) {
        int32_t o = v->slots[i];
        if (o < 0) return -1;
        if (v->lens[o] == len && memcmp(v->blob + v->offs[o], s, len) == 0) return o;
        i = (i + 1) & (v->n_slots - 1);
    }
}

/* Scans every id in order (load time only: special tokens). */
int32_t se_vocab_find_any(const se_vocab *v, const char *s) {
    size_t len = strlen(s);
    for (size_t id = 0; id < v->n; id++)
        if (v->offs[id] != UINT32_MAX && v->lens[id] == len && memcmp(v->blob + v->offs[id], s, len) == 0)
            return (int32_t)id;
    return -1;
}

/* The piece of id in the blob, NULL outside the ids or on a hole. */
const char *se_vocab_piece(const se_vocab *v, int32_t id) {
    if (id < 0 || (size_t)id >= v->n || v->offs[id] == UINT32_MAX) return NULL;
    return v->blob + v->offs[id];
}

/* Frees the blob, the per-id arrays and the hash; zeroes v. */
void se_vocab_free(se_vocab *v) {
    se_free(v->blob);
    se_free(v->offs);
    se_free(v->lens);
    se_free(v->hidden);
    se_free(v->slots);
    memset(v, 0, sizeof *v);
}
