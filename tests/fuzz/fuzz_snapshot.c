/*
 * fuzz_snapshot.c - fuzz target for the index graph-snapshot loader
 * (se_vx_load, vec_index.c; STYLE rule 39). The snapshot is the one blob of
 * the index file that is ours, not SQLite's, so a crafted index file reaches
 * it directly.
 *
 * The input is a whole snapshot image (as se_vx_save writes it: magic,
 * header, slot table with links, free list, CRC-32). A snapshot ends in a
 * CRC-32 that a fuzzer cannot guess, so each input is loaded twice: as it
 * is (which exercises the checksum check), and with its last four bytes
 * replaced by the CRC-32 of the rest (which lets mutations reach every
 * structural check). The dimension passed is the snapshot's own (bytes
 * 20..23) when it is 1..64, else 8 (a mismatch the loader must refuse).
 *
 * Beyond "never crash, never leak, never allocate beyond what the bytes can
 * describe" (tests/fuzz/replay.c fails an input that grows RSS by more than
 * 256 MB), the target checks what a successful load promises:
 *   - saving it again gives back exactly the input bytes;
 *   - every live slot lacks its vector until se_vx_set_vector supplies it;
 *   - searches then return at most k live labels, best first, finite scores;
 *   - after a remove and two adds (which reuse free slots), the snapshot
 *     saved is valid: it loads again, with the right count (a free list
 *     naming a slot twice used to pass the loader and break this).
 * A failed load must return SE_E_FORMAT (or SE_E_NOMEM), set a message and
 * leave *out NULL. A broken promise calls __builtin_trap().
 *
 * Build modes: with -DSE_FUZZ_MAIN (libFuzzer) this file defines
 * LLVMFuzzerTestOneInput; always it defines se_fuzz_snapshot, which
 * tests/fuzz/replay.c links to replay the committed corpus
 * (tests/fuzz/corpus/fuzz_snapshot/).
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "alloc.h"
#include "vec_index.h"

int se_fuzz_snapshot(const uint8_t *data, size_t size);

/* Traps (a fuzzer-visible crash) when cond is false. Harness only. */
#define FUZZ_REQUIRE(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

#define DIM_MAX 64

/* A deterministic, finite, non-zero vector for label. */
static void vector_for(int64_t label, size_t dim, float *v) {
    uint64_t s = (uint64_t)label * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < dim; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        v[i] = (float)((double)(s >> 40) / (double)(1 << 24)) - 0.5f;
    }
    v[0] += 1.0f;
}

/* Checks a search's hits: at most k, present labels, best first, finite. */
static void check_hits(se_vx *vx, const se_vx_hit *h, size_t nh, size_t k) {
    FUZZ_REQUIRE(nh <= k && nh <= se_vx_count(vx));
    float v[DIM_MAX];
    for (size_t i = 0; i < nh; i++) {
        FUZZ_REQUIRE(isfinite(h[i].score));
        FUZZ_REQUIRE(se_vx_get_vector(vx, h[i].label, v));
        if (i) FUZZ_REQUIRE(h[i].score <= h[i - 1].score);
    }
}

/* Exercises a loaded index (see the header) and checks its promises. */
static void check_loaded(se_vx *vx, const uint8_t *data, size_t size, size_t dim) {
    uint8_t *blob = NULL;
    size_t len = 0;
    se_error err;
    FUZZ_REQUIRE(se_vx_save(vx, &blob, &len, &err) == SE_OK);
    FUZZ_REQUIRE(len == size && memcmp(blob, data, size) == 0);
    se_free(blob);

    size_t n = se_vx_count(vx);
    FUZZ_REQUIRE(se_vx_missing_vectors(vx) == n);
    int64_t *labels = NULL;
    size_t nl = 0;
    if (se_vx_labels(vx, &labels, &nl, &err) != SE_OK) return; /* out of memory */
    FUZZ_REQUIRE(nl == n);
    float v[DIM_MAX];
    int64_t max_label = -1;
    for (size_t i = 0; i < nl; i++) {
        vector_for(labels[i], dim, v);
        FUZZ_REQUIRE(se_vx_set_vector(vx, labels[i], v, false, NULL) == SE_OK);
        if (labels[i] > max_label) max_label = labels[i];
    }
    FUZZ_REQUIRE(se_vx_missing_vectors(vx) == 0);

    se_vx_hit h[5];
    size_t nh;
    for (size_t q = 0; q < 3; q++) {
        vector_for((int64_t)q * 7919 + 3, dim, v);
        if (se_vx_search(vx, v, 5, 16, NULL, NULL, h, &nh, &err) == SE_OK) check_hits(vx, h, nh, 5);
    }

    /* a remove and two adds, then the snapshot written must be valid */
    size_t removed = 0;
    if (nl && se_vx_remove(vx, labels, 1, &removed, &err) == SE_OK) FUZZ_REQUIRE(removed == 1);
    size_t added = 0;
    bool clean = true; /* no call ran out of memory half-way */
    if (max_label < INT64_MAX - 2)
        for (int64_t a = 1; a <= 2; a++) {
            vector_for(max_label + a, dim, v);
            se_status st = se_vx_add(vx, max_label + a, v, false, NULL, &err);
            FUZZ_REQUIRE(st == SE_OK || st == SE_E_NOMEM);
            if (st == SE_OK) added++;
            else clean = false;
        }
    se_free(labels);
    if (clean) FUZZ_REQUIRE(se_vx_count(vx) == n - removed + added);
    if (se_vx_save(vx, &blob, &len, &err) != SE_OK) return;
    se_vx *again = NULL;
    se_status st = se_vx_load(blob, len, dim, -1, &again, &err);
    FUZZ_REQUIRE(st == SE_OK || st == SE_E_NOMEM);
    if (st == SE_OK && clean) FUZZ_REQUIRE(se_vx_count(again) == n - removed + added);
    se_vx_free(again);
    se_free(blob);
}

/* Loads data[0..size) as a snapshot and checks the outcome. */
static void load_one(const uint8_t *data, size_t size) {
    size_t dim = 8;
    if (size >= 24) {
        uint32_t d;
        memcpy(&d, data + 20, 4);
        if (d >= 1 && d <= DIM_MAX) dim = d;
    }
    se_vx *vx = (se_vx *)&vx; /* must be reset to NULL on failure */
    se_error err;
    memset(&err, 0, sizeof err);
    se_status st = se_vx_load(data, size, dim, -1, &vx, &err);
    if (st == SE_OK) {
        check_loaded(vx, data, size, dim);
        se_vx_free(vx);
    } else {
        FUZZ_REQUIRE(st == SE_E_FORMAT || st == SE_E_NOMEM);
        FUZZ_REQUIRE(err.code == st && err.msg[0] != 0 && memchr(err.msg, 0, sizeof err.msg) != NULL);
        FUZZ_REQUIRE(vx == NULL);
    }
}

/* Runs one input as is and with its checksum fixed; always returns 0. */
static int fuzz_snapshot_one(const uint8_t *data, size_t size) {
    load_one(data, size);
    if (size < 12) return 0;
    uint8_t *fixed = malloc(size);
    if (!fixed) return 0;
    memcpy(fixed, data, size);
    uint32_t crc = (uint32_t)crc32(0, fixed, (uInt)(size - 4));
    memcpy(fixed + size - 4, &crc, 4);
    if (memcmp(fixed, data, size) != 0) load_one(fixed, size);
    free(fixed);
    return 0;
}

/* The replay entry point (tests/fuzz/replay.c). */
int se_fuzz_snapshot(const uint8_t *data, size_t size) { return fuzz_snapshot_one(data, size); }

#ifdef SE_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_snapshot_one(data, size); }
#endif
