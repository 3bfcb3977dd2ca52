/*
 * fuzz_safetensors.c - fuzz target for the safetensors reader (STYLE rule 39).
 *
 * The input is a whole safetensors image (u64 LE header length, JSON
 * header, data). It goes to se_st_parse and then se_st_close. Beyond "never
 * crash, never leak" the target checks what a successful parse promises:
 * every tensor lies inside the input, its byte size is n_elem times the
 * dtype size, the tensors tile the data section in offset order, and
 * se_st_find finds each one by name. A failed parse must return
 * SE_E_FORMAT (or SE_E_NOMEM), set a message and leave the index empty.
 * A broken promise calls __builtin_trap() so the fuzzer records it.
 *
 * Build modes:
 *   - with -DSE_FUZZ_MAIN (libFuzzer, one target per binary) this file
 *     defines LLVMFuzzerTestOneInput;
 *   - always it defines se_fuzz_safetensors, which tests/fuzz/replay.c
 *     links next to the other targets to replay the committed corpus.
 * Corpus: tests/fuzz/corpus/fuzz_safetensors/.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "safetensors.h"

int se_fuzz_safetensors(const uint8_t *data, size_t size);

/* Traps (a fuzzer-visible crash) when cond is false. Harness only: the
 * library itself never traps on input. */
#define FUZZ_REQUIRE(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

/* Checks the promises of a successful parse of data[0..size). */
static void check_parsed(const se_st_file *f, const uint8_t *data, size_t size) {
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
    FUZZ_REQUIRE(hlen <= size - 8);
    const uint8_t *dbase = data + 8 + hlen, *end = data + size;
    const uint8_t *pos = dbase;
    for (size_t i = 0; i < f->n; i++) {
        const se_st_tensor *t = &f->t[i];
        FUZZ_REQUIRE(t->name && t->name[0]);
        FUZZ_REQUIRE(t->dtype < SE_ST_N_DTYPES);
        FUZZ_REQUIRE(t->n_dims >= 0 && t->n_dims <= SE_ST_MAX_DIMS);
        size_t n_elem = 1;
        for (int k = 0; k < t->n_dims; k++) {
            FUZZ_REQUIRE(t->shape[k] >= 0);
            n_elem *= (size_t)t->shape[k]; /* cannot wrap: the parser checked */
        }
        FUZZ_REQUIRE(n_elem == t->n_elem);
        FUZZ_REQUIRE(t->nbytes == t->n_elem * se_st_dtype_size(t->dtype));
        FUZZ_REQUIRE(t->data == pos); /* sorted, contiguous from 0 */
        FUZZ_REQUIRE(t->nbytes <= (size_t)(end - t->data));
        if (t->nbytes) {
            /* Touch both ends so ASan sees any view outside the input. */
            volatile uint8_t first = t->data[0], last = t->data[t->nbytes - 1];
            (void)first;
            (void)last;
        }
        pos = t->data + t->nbytes;
        FUZZ_REQUIRE(se_st_find(f, t->name) == t); /* names are unique */
    }
    FUZZ_REQUIRE(pos == end); /* the tensors cover the data section */
}

/* Parses one input and checks the result; always returns 0. */
static int fuzz_safetensors_one(const uint8_t *data, size_t size) {
    se_st_file f;
    memset(&f, 0, sizeof f); /* se_st_parse sets only the index fields */
    se_error err;
    memset(&err, 0, sizeof err);
    se_status s = se_st_parse(data, size, "fuzz.safetensors", &f, &err);
    if (s == SE_OK) {
        check_parsed(&f, data, size);
    } else {
        FUZZ_REQUIRE(s == SE_E_FORMAT || s == SE_E_NOMEM);
        FUZZ_REQUIRE(err.code == s && err.msg[0] != 0);
        FUZZ_REQUIRE(memchr(err.msg, 0, sizeof err.msg) != NULL);
        FUZZ_REQUIRE(f.t == NULL && f.n == 0);
    }
    se_st_close(&f);
    return 0;
}

/* The replay entry point (tests/fuzz/replay.c). */
int se_fuzz_safetensors(const uint8_t *data, size_t size) { return fuzz_safetensors_one(data, size); }

#ifdef SE_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_safetensors_one(data, size); }
#endif
