/*
 * tokenizer_vocab.h - the leaf below every tokenizer model: the vocabulary
 * (piece strings by id, and a hash from piece to id) and a growable int32
 * array. It includes nothing of the tokenizer models or the pipeline
 * (tokenizer.c), which all build on it.
 */
#ifndef SE_TOKENIZER_VOCAB_H
#define SE_TOKENIZER_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sembed.h"

/* A growable int32 array. */
typedef struct se_i32vec {
    int32_t *v;
    size_t n, cap;
} se_i32vec;

/* Appends x; returns false on OOM. */
bool se_i32vec_push(se_i32vec *a, int32_t x);

/* Frees the array and zeroes it. */
void se_i32vec_free(se_i32vec *a);

/* The most pieces a vocabulary may have (LaBSE, among the largest real
 * ones, has 501k; XLM-R 250k). Checked while loading. */
#define SE_VOCAB_MAX_ENTRIES ((size_t)2 << 20)

/* Pieces by id and an open-addressing hash from piece to id. Built with
 * se_vocab_add, then se_vocab_build_index; immutable afterwards. */
typedef struct se_vocab {
    char *blob;          /* all pieces, NUL-separated */
    size_t blob_len, blob_cap;
    uint32_t *offs;      /* (n) offset of each id's piece in blob, UINT32_MAX = hole */
    uint32_t *lens;      /* (n) byte length of each piece */
    uint8_t *hidden;     /* (n) or NULL: 1 = not indexed (looked up only by se_vocab_find_any) */
    size_t n;            /* number of ids (largest id + 1) */
    size_t id_cap;       /* capacity of offs, lens and hidden */
    size_t index_from;   /* ids below this are not indexed (USE lite's specials) */
    int32_t *slots;      /* (n_slots) ids, -1 = empty */
    size_t n_slots;      /* power of two */
} se_vocab;

/* Appends a piece with a given id while building a vocabulary; grows the
 * id space as needed. Rejects pieces over 4096 bytes and ids already
 * taken; errors name `file`. */
se_status se_vocab_add(se_vocab *v, const char *s, size_t len, size_t id, const char *file, se_error *err);

/* Marks id (already added) as not to be indexed: se_vocab_find will not
 * return it (a piece the model never matches, such as a control token). */
se_status se_vocab_hide(se_vocab *v, size_t id, se_error *err);

/* Builds the hash over ids index_from..n-1 that are not hidden; a piece
 * given to two ids maps to the later one, as in Hugging Face. */
se_status se_vocab_build_index(se_vocab *v, se_error *err);

/* The id of piece s[0..len) among the indexed ids, or -1. */
int32_t se_vocab_find(const se_vocab *v, const char *s, size_t len);

/* The lowest id of piece s (NUL-terminated) among all ids, hidden ones
 * too, or -1: a linear search, for special tokens at load time. */
int32_t se_vocab_find_any(const se_vocab *v, const char *s);

/* The piece of id (NUL-terminated, valid until se_vocab_free), or NULL for
 * an id out of range or a hole. */
const char *se_vocab_piece(const se_vocab *v, int32_t id);

/* Frees everything and zeroes v. */
void se_vocab_free(se_vocab *v);

#endif
