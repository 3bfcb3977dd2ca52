/*
 * fuzz_torch_bin.c - fuzz target for the pytorch_model.bin reader
 * (src/torch_bin.c; STYLE rule 39).
 *
 * The input is a whole checkpoint image (a zip archive holding
 * <stem>/data.pkl, <stem>/data/<key> storages and <stem>/version). It goes
 * to se_torch_parse without CRC checks, so mutations inside data.pkl reach
 * the unpickler instead of stopping at the zip's CRC, and then to
 * se_st_close. Beyond "never crash, never leak, never blow up memory" the
 * target checks what a successful parse promises:
 *   - every tensor has a non-empty unique name (se_st_find finds it), a
 *     known dtype, at most 8 non-negative dims whose product is n_elem,
 *     nbytes == n_elem * dtype size, and data aligned for its dtype;
 *   - its bytes are readable: both ends are touched, so ASan flags a view
 *     outside the input or outside the reader's aligned copy;
 *   - the index is sorted by data pointer;
 *   - parsing again with check_crc gives the same index or an error about
 *     a CRC-32 mismatch.
 * A failed parse must return SE_E_FORMAT, SE_E_UNSUPPORTED or SE_E_NOMEM,
 * set a NUL-terminated message and leave the index empty. A broken promise
 * calls __builtin_trap() so the fuzzer records it.
 *
 * Build modes:
 *   - with -DSE_FUZZ_MAIN (libFuzzer, one target per binary) this file
 *     defines LLVMFuzzerTestOneInput;
 *   - always it defines se_fuzz_torch_bin, which tests/fuzz/replay.c links
 *     next to the other targets to replay the committed corpus.
 * Corpus: tests/fuzz/corpus/fuzz_torch_bin/ (seeds written by torch.save,
 * see tests/fixtures/torch_bin/, minimised with libFuzzer's -merge=1).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "torch_bin.h"

int se_fuzz_torch_bin(const uint8_t *data, size_t size);

/* Traps (a fuzzer-visible crash) when cond is false. Harness only: the
 * library itself never traps on input. */
#define FUZZ_REQUIRE(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

/* Checks the promises of a successful parse. */
static void check_parsed(const se_st_file *f) {
    for (size_t i = 0; i < f->n; i++) {
        const se_st_tensor *t = &f->t[i];
        FUZZ_REQUIRE(t->name && t->name[0]);
        FUZZ_REQUIRE(t->dtype < SE_ST_N_DTYPES);
        FUZZ_REQUIRE(t->n_dims >= 0 && t->n_dims <= SE_ST_MAX_DIMS);
        size_t n_elem = 1;
        for (int k = 0; k < t->n_dims; k++) {
            FUZZ_REQUIRE(t->shape[k] >= 0);
            n_elem *= (size_t)t->shape[k]; /* cannot wrap: the reader checked */
        }
        FUZZ_REQUIRE(n_elem == t->n_elem);
        size_t esz = se_st_dtype_size(t->dtype);
        FUZZ_REQUIRE(t->nbytes == t->n_elem * esz);
        FUZZ_REQUIRE(t->data != NULL && (uintptr_t)t->data % esz == 0);
        if (t->nbytes) {
            /* Touch both ends so ASan sees any view outside its buffer. */
            volatile uint8_t first = t->data[0], last = t->data[t->nbytes - 1];
            (void)first;
            (void)last;
        }
        if (i) FUZZ_REQUIRE((uintptr_t)f->t[i - 1].data <= (uintptr_t)t->data);
        FUZZ_REQUIRE(se_st_find(f, t->name) == t); /* names are unique */
    }
}

/* Checks a failed parse: a known status, a message, an empty index. */
static void check_failed(se_status s, const se_error *err, const se_st_file *f) {
    FUZZ_REQUIRE(s == SE_E_FORMAT || s == SE_E_UNSUPPORTED || s == SE_E_NOMEM);
    FUZZ_REQUIRE(err->code == s && err->msg[0] != 0);
    FUZZ_REQUIRE(memchr(err->msg, 0, sizeof err->msg) != NULL);
    FUZZ_REQUIRE(f->t == NULL && f->n == 0);
}

/* Parses one input (without, then with CRC checks) and checks the
 * results; always returns 0. */
static int fuzz_torch_bin_one(const uint8_t *data, size_t size) {
    se_st_file f;
    memset(&f, 0, sizeof f); /* se_torch_parse sets only the index fields */
    se_error err;
    memset(&err, 0, sizeof err);
    se_status s = se_torch_parse(data, size, "fuzz.bin", false, &f, &err);
    if (s != SE_OK) {
        check_failed(s, &err, &f);
        se_st_close(&f);
        return 0;
    }
    check_parsed(&f);
    se_st_file g;
    memset(&g, 0, sizeof g);
    memset(&err, 0, sizeof err);
    se_status s2 = se_torch_parse(data, size, "fuzz.bin", true, &g, &err);
    if (s2 == SE_OK) {
        FUZZ_REQUIRE(g.n == f.n);
        for (size_t i = 0; i < g.n; i++) FUZZ_REQUIRE(se_st_find(&f, g.t[i].name) != NULL);
    } else {
        check_failed(s2, &err, &g);
        FUZZ_REQUIRE(s2 == SE_E_NOMEM || strstr(err.msg, "CRC-32") != NULL);
    }
    se_st_close(&g);
    se_st_close(&f);
    return 0;
}

/* The replay entry point (tests/fuzz/replay.c). */
int se_fuzz_torch_bin(const uint8_t *data, size_t size) { return fuzz_torch_bin_one(data, size); }

#ifdef SE_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_torch_bin_one(data, size); }
#endif
