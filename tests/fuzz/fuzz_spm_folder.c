/*
 * fuzz_spm_folder.c - fuzz target for a model folder whose tokenizer is
 * only sentencepiece.bpe.model (XLMRobertaTokenizer's way: the Unigram
 * model in the fairseq id layout, sentencepiece's normaliser with the
 * model's precompiled charsmap, float32 path scores).
 *
 * The input is split at its first 0xFF 0xFE 0xFD marker, if any: the part
 * before it is written to a private temp dir as sentencepiece.bpe.model and
 * loaded with se_tokenizer_load; the part after it (or the whole input
 * when there is no marker) is also the text tokenized. A tokenizer that
 * loads must:
 *   - describe itself as Unigram from sentencepiece.bpe.model;
 *   - tokenize fixed texts and the text to SE_OK (or SE_E_UTF8 exactly for
 *     invalid UTF-8), <s> (0) first and </s> (2) last, every id inside the
 *     vocabulary; truncated to 8 the untruncated ids' first 7 and </s>;
 *   - tokenize a pair to A's ids, </s>, B's ids without <s>;
 *   - give consistent stats; and be freed.
 * A load that fails must fail with a status and a message, no tokenizer.
 * A broken invariant calls __builtin_trap().
 *
 * Build modes as the other targets: -DSE_FUZZ_MAIN gives
 * LLVMFuzzerTestOneInput; always defines se_fuzz_spm_folder for
 * tests/fuzz/replay.c. Corpus: tests/fuzz/corpus/fuzz_spm_folder/.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sembed.h"
#include "unicode.h"

int se_fuzz_spm_folder(const uint8_t *data, size_t size);

#define FUZZ_REQUIRE(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

static char tmp_dir[64], tmp_model[96];

/* Removes the temporary file and dir (atexit). */
static void remove_tmp(void) {
    if (!tmp_dir[0]) return;
    unlink(tmp_model);
    rmdir(tmp_dir);
}

/* Creates the private temp dir on first use (under $TMPDIR, else /dev/shm,
 * else /tmp). Returns false on failure. */
static bool ensure_tmp_dir(void) {
    if (tmp_dir[0]) return true;
    const char *base = getenv("TMPDIR");
    if (!base || !*base || strlen(base) > 40) base = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(tmp_dir, sizeof tmp_dir, "%s/se_fuzz_spm_XXXXXX", base);
    if (!mkdtemp(tmp_dir)) {
        tmp_dir[0] = 0;
        return false;
    }
    snprintf(tmp_model, sizeof tmp_model, "%s/sentencepiece.bpe.model", tmp_dir);
    atexit(remove_tmp);
    return true;
}

/* Tokenizes text (and pair) with n_max; checks the shape; returns the ids
 * in a new array (free) and their count, or NULL for invalid UTF-8. */
static int32_t *tokenize(const se_tokenizer *tok, const char *text, size_t len, const char *pair, size_t plen,
                         size_t n_max, size_t *n) {
    se_tokenize_params p = se_tokenize_default_params(tok);
    p.n_tokens_max = n_max;
    se_error err;
    size_t bad;
    bool valid = se_utf8_valid(text, len, &bad) && (!pair || se_utf8_valid(pair, plen, &bad));
    se_status s = se_tokenize(tok, text, len, pair, plen, &p, NULL, NULL, 0, n, NULL, &err);
    if (!valid) {
        FUZZ_REQUIRE(s == SE_E_UTF8);
        return NULL;
    }
    FUZZ_REQUIRE(s == SE_E_BUFFER || s == SE_OK);
    int32_t *ids = malloc((*n ? *n : 1) * sizeof *ids);
    FUZZ_REQUIRE(ids != NULL);
    size_t need = *n;
    FUZZ_REQUIRE(se_tokenize(tok, text, len, pair, plen, &p, ids, NULL, need, n, NULL, &err) == SE_OK && *n == need);
    FUZZ_REQUIRE(*n >= 2 && ids[0] == 0 && ids[*n - 1] == 2);
    size_t nv = se_tokenizer_n_vocab(tok);
    for (size_t i = 0; i < *n; i++) FUZZ_REQUIRE(ids[i] >= 0 && (size_t)ids[i] < nv);
    return ids;
}

/* The invariants of the header comment on one text. */
static void check_text(const se_tokenizer *tok, const char *text, size_t len) {
    size_t n, n8, na, nb, np;
    int32_t *ids = tokenize(tok, text, len, NULL, 0, 0, &n);
    if (!ids) return;
    int32_t *ids8 = tokenize(tok, text, len, NULL, 0, 8, &n8);
    FUZZ_REQUIRE(ids8 && n8 == (n < 8 ? n : 8) && memcmp(ids8, ids, (n8 - 1) * sizeof *ids) == 0);
    size_t half = len / 2;
    while (half > 0 && ((uint8_t)text[half] & 0xC0) == 0x80) half--;
    int32_t *a = tokenize(tok, text, half, NULL, 0, 0, &na);
    int32_t *b = tokenize(tok, text + half, len - half, NULL, 0, 0, &nb);
    int32_t *p = tokenize(tok, text, half, text + half, len - half, 0, &np);
    FUZZ_REQUIRE(a && b && p && np == na + nb);
    FUZZ_REQUIRE(memcmp(p, a, na * sizeof *p) == 0 && p[na] == 2 && memcmp(p + na + 1, b + 1, (nb - 1) * sizeof *p) == 0);
    se_token_stats st;
    se_error err;
    FUZZ_REQUIRE(se_tokenize_stats(tok, text, len, &st, &err) == SE_OK);
    FUZZ_REQUIRE(st.n_unknown <= st.n_tokens && st.n_chars_unknown <= st.n_chars && st.n_chars <= len);
    free(ids), free(ids8), free(a), free(b), free(p);
}

/* Runs one input as the header comment says. Always returns 0. */
static int fuzz_one(const uint8_t *data, size_t size) {
    if (!ensure_tmp_dir()) return 0;
    size_t cut = size;
    for (size_t i = 0; i + 3 <= size; i++)
        if (data[i] == 0xFF && data[i + 1] == 0xFE && data[i + 2] == 0xFD) {
            cut = i;
            break;
        }
    const char *text = (const char *)data + (cut < size ? cut + 3 : 0);
    size_t tlen = cut < size ? size - cut - 3 : size;
    FILE *f = fopen(tmp_model, "wb");
    if (!f) return 0;
    bool ok = fwrite(data, 1, cut, f) == cut;
    if (fclose(f) != 0 || !ok) return 0;
    se_tokenizer *tok = NULL;
    se_error err;
    se_status s = se_tokenizer_load(tmp_dir, &tok, &err);
    if (s != SE_OK) {
        FUZZ_REQUIRE(tok == NULL && err.code == s && err.msg[0]);
        return 0;
    }
    se_tokenizer_info info;
    FUZZ_REQUIRE(se_tokenizer_describe(tok, &info, &err) == SE_OK && strcmp(info.model, "Unigram") == 0 &&
                 strcmp(info.source, "sentencepiece.bpe.model") == 0);
    static const char *fixed[] = {"Hello  World ", " \t\xE3\x80\x80x\xEF\xBC\xA1 ", "\xE2\x91\xA0\xCC\x81 <s> <mask>",
                                  "\xE2\x96\x81\xE2\x96\x81" "a", ""};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) check_text(tok, fixed[i], strlen(fixed[i]));
    check_text(tok, text, tlen < 4096 ? tlen : 4096);
    se_tokenizer_free(tok);
    return 0;
}

int se_fuzz_spm_folder(const uint8_t *data, size_t size) { return fuzz_one(data, size); }

#ifdef SE_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_one(data, size); }
#endif
