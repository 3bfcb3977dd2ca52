/*
 * fuzz_spm_model.c - fuzz target for the sentencepiece model reader and the
 * precompiled-charsmap normaliser.
 *
 * The first byte picks the mode:
 *   even  the rest is a ModelProto (a `.model` file) for se_spm_model_parse;
 *         a model that parses must hold what the reader promises (pieces
 *         non-empty, NUL-terminated at their length, unique UNKNOWN piece at
 *         unk_id, special ids in range), and its charsmap, if any, must
 *         build and normalise the input's text both ways;
 *   odd   the rest is a raw precompiled charsmap for se_precompiled_new;
 *         one that loads must normalise fixed strings and the input both
 *         ways.
 * Invariants on every normalisation: SE_OK (the HF variant: SE_E_UTF8
 * exactly for invalid UTF-8), output valid UTF-8 of the length reported.
 * A broken invariant calls __builtin_trap().
 *
 * Build modes as the other targets: -DSE_FUZZ_MAIN gives
 * LLVMFuzzerTestOneInput; always defines se_fuzz_spm_model for
 * tests/fuzz/replay.c. Corpus: tests/fuzz/corpus/fuzz_spm_model/.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "normalizer_precompiled.h"
#include "sembed.h"
#include "sentencepiece_model.h"
#include "unicode.h"

int se_fuzz_spm_model(const uint8_t *data, size_t size);

#define FUZZ_REQUIRE(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

/* Normalises text both ways with pc and checks the invariants. */
static void normalise_both(const se_precompiled *pc, const char *text, size_t n) {
    se_spm_norm_opts variants[2] = {{true, true, true, false}, {false, false, false, true}};
    se_error err;
    for (int v = 0; v < 2; v++) {
        char *out = NULL;
        size_t len = 0, bad;
        FUZZ_REQUIRE(se_precompiled_normalize_spm(pc, &variants[v], text, n, &out, &len, &err) == SE_OK);
        FUZZ_REQUIRE(out && strlen(out) <= len && se_utf8_valid(out, len, &bad));
        se_free(out);
    }
    char *out = NULL;
    size_t len = 0, bad;
    bool valid = se_utf8_valid(text, n, &bad);
    se_status s = se_precompiled_normalize_hf(pc, text, n, &out, &len, &err);
    FUZZ_REQUIRE(valid ? s == SE_OK : s == SE_E_UTF8);
    if (s == SE_OK) FUZZ_REQUIRE(out && se_utf8_valid(out, len, &bad));
    se_free(out);
}

static const char *FIXED[] = {"Hello  World", "\xEF\xBC\xA1\xEF\xBC\xA2 \xE2\x91\xA0\xCC\x81", "\xEF\xBD\xB7\xEF\xBE\x9E",
                              "  \t\xE3\x80\x80x ", "e\xCC\x81\xE2\x96\x81"};

/* Runs the normaliser on the fixed strings and on the input bytes. */
static void exercise(const se_precompiled *pc, const uint8_t *data, size_t size) {
    for (size_t i = 0; i < sizeof FIXED / sizeof *FIXED; i++) normalise_both(pc, FIXED[i], strlen(FIXED[i]));
    normalise_both(pc, (const char *)data, size < 256 ? size : 256);
}

static int fuzz_one(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    se_error err;
    if ((data[0] & 1) == 0) {
        se_spm_model *m = NULL;
        if (se_spm_model_parse(data + 1, size - 1, "fuzz.model", &m, &err) != SE_OK) {
            FUZZ_REQUIRE(m == NULL && err.msg[0]);
            return 0;
        }
        FUZZ_REQUIRE(m->n_pieces > 0);
        FUZZ_REQUIRE(m->trainer.unk_id >= 0 && (size_t)m->trainer.unk_id < m->n_pieces);
        FUZZ_REQUIRE(m->pieces[m->trainer.unk_id].type == SE_SPM_UNKNOWN);
        for (size_t i = 0; i < m->n_pieces; i++) {
            FUZZ_REQUIRE(m->pieces[i].len > 0 && strlen(m->pieces[i].text) == m->pieces[i].len);
            FUZZ_REQUIRE(m->pieces[i].type >= SE_SPM_NORMAL && m->pieces[i].type <= SE_SPM_BYTE);
        }
        FUZZ_REQUIRE(m->trainer.bos_id >= -1 && m->trainer.bos_id < (int64_t)m->n_pieces);
        FUZZ_REQUIRE(m->trainer.eos_id >= -1 && m->trainer.eos_id < (int64_t)m->n_pieces);
        FUZZ_REQUIRE(m->trainer.pad_id >= -1 && m->trainer.pad_id < (int64_t)m->n_pieces);
        FUZZ_REQUIRE(m->normalizer.name != NULL);
        se_precompiled *pc = NULL;
        if (m->normalizer.charsmap_len > 0) {
            FUZZ_REQUIRE(se_precompiled_new(m->normalizer.charsmap, m->normalizer.charsmap_len, "cm", &pc, &err) ==
                         SE_OK);
        }
        exercise(pc, data + 1, size - 1); /* pc NULL: identity rules */
        se_precompiled_free(pc);
        se_spm_model_free(m);
    } else {
        se_precompiled *pc = NULL;
        if (se_precompiled_new(data + 1, size - 1, "cm", &pc, &err) != SE_OK) {
            FUZZ_REQUIRE(pc == NULL && err.msg[0]);
            return 0;
        }
        exercise(pc, data + 1, size - 1);
        se_precompiled_free(pc);
    }
    return 0;
}

int se_fuzz_spm_model(const uint8_t *data, size_t size) { return fuzz_one(data, size); }

#ifdef SE_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_one(data, size); }
#endif
