/*
 * test_fixtures.h - reading the reference fixtures of tests/fixtures/models/
 * (tools/gen_fixtures.py): expected.jsonl, JSON number arrays, cosine, and
 * a debug-hook capture of the hidden states of a forward pass. Shared by
 * test_model.c, test_archs.c, test_rerank.c and test_encode_api.c (header-only; each function
 * static inline so that a test that uses some of them compiles cleanly).
 */
#ifndef SE_TEST_FIXTURES_H
#define SE_TEST_FIXTURES_H

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/models/"

/* Reads FIX/sentences.jsonl (one JSON string a line) into a malloc'd
 * array of strdup'd sentences, *n of them; exits when the file is
 * missing or a line is not a string (run from the repo root). */
static inline char **fixture_sentences(size_t *n) {
    FILE *f = fopen(FIX "sentences.jsonl", "rb");
    if (!f) {
        fprintf(stderr, "cannot open sentences.jsonl (run from the repo root)\n");
        exit(1);
    }
    char **out = NULL, line[8192];
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *j = json_loads(line, JSON_DECODE_ANY, &je);
        if (!json_is_string(j)) exit(1);
        out = realloc(out, (*n + 1) * sizeof *out);
        out[(*n)++] = strdup(json_string_value(j));
        json_decref(j);
    }
    fclose(f);
    return out;
}

/* Reads FIX/model/expected.jsonl: *header gets the first line, the array
 * returned the others (one object per sentence or pair); NULL when the
 * file cannot be opened. */
static inline json_t *load_expected(const char *model, json_t **header) {
    char path[256];
    snprintf(path, sizeof path, FIX "%s/expected.jsonl", model);
    FILE *f = fopen(path, "rb");
    *header = NULL;
    if (!f) return NULL;
    json_t *arr = json_array();
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        if (!j) break;
        if (!*header) *header = j;
        else json_array_append_new(arr, j);
    }
    free(line);
    fclose(f);
    return arr;
}

/* A JSON array of numbers as floats (malloc'd). */
static inline float *floats(const json_t *a, size_t *n) {
    *n = json_array_size(a);
    float *v = malloc((*n ? *n : 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++) v[i] = (float)json_number_value(json_array_get(a, i));
    return v;
}

/* A JSON array of integers as int32 (malloc'd). */
static inline int32_t *ints(const json_t *a, size_t *n) {
    *n = json_array_size(a);
    int32_t *v = malloc((*n ? *n : 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++) v[i] = (int32_t)json_integer_value(json_array_get(a, i));
    return v;
}

/* Cosine similarity in double (1 for two zero vectors). */
static inline double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    if (aa == 0 && bb == 0) return 1.0;
    return ab / sqrt(aa * bb + 1e-300);
}

/* The debug hook's capture: the hidden states of the last forward pass. */
typedef struct capture {
    float *states[64]; /* [0] = embeddings (emb_norm), [1 + l] = layer l */
    size_t n_tokens, n_embd;
    int n;
} capture;

/* Keeps a copy of each hidden state the forward pass reports (an
 * se_debug_fn; user is the capture). */
static inline void capture_cb(const char *name, int layer, const float *data, size_t n_tokens, size_t n_embd, void *user) {
    capture *c = user;
    (void)name;
    int slot = layer + 1;
    if (slot < 0 || slot >= 64) return;
    free(c->states[slot]);
    c->states[slot] = malloc(n_tokens * n_embd * sizeof(float));
    memcpy(c->states[slot], data, n_tokens * n_embd * sizeof(float));
    c->n_tokens = n_tokens, c->n_embd = n_embd;
    if (slot + 1 > c->n) c->n = slot + 1;
}

/* Frees the captured states. */
static inline void capture_free(capture *c) {
    for (int i = 0; i < 64; i++) free(c->states[i]);
    memset(c, 0, sizeof *c);
}

#endif
