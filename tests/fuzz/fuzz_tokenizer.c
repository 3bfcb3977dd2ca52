/*
 * fuzz_tokenizer.c - fuzz target for the tokenizer (STYLE rule 39).
 *
 * Two things are fuzzed from one input:
 *
 *   1. Text. The whole input is tokenized with a BERT tokenizer loaded
 *      once from tests/fixtures/tokenizers/bert-base-uncased (vocab.txt;
 *      the fuzz binaries run from the repo root), or from
 *      $SE_FUZZ_TOKENIZER_DIR when set, through the public se_tokenize.
 *      Invariants checked:
 *        - the status is SE_OK or SE_E_UTF8, and SE_E_UTF8 exactly when
 *          the input is not valid UTF-8 (untruncated call);
 *        - on SE_OK: n >= 2, ids[0] == 101 ([CLS]), ids[n-1] == 102
 *          ([SEP]), every id < se_tokenizer_n_vocab, every type id 0;
 *        - the SE_E_BUFFER protocol reports the exact needed count;
 *        - tokenizing twice gives identical ids;
 *        - truncation to 16 gives min(n, 16) ids: the untruncated ids
 *          cut to 15 then [SEP], with *truncated set exactly when cut;
 *        - the input split in two halves as a pair gives
 *          single(a) ++ single(b)[1..] with type ids 0...0 1...1, and
 *          truncated to 16 (and 15: an odd budget, where longest_first
 *          must know which side is longer) gives min(n, 16) ids ending in
 *          [SEP];
 *        - se_tokenize_stats counts the ids of the untruncated call
 *          without its specials, and n_unknown <= n_tokens,
 *          n_chars_unknown <= n_chars;
 *        - se_tokenize_offsets gives the same ids, its spans lie in the
 *          text, start where the one before starts or later, and are
 *          0, 0 for [CLS] and [SEP]; truncate_left to 16 keeps [CLS], the
 *          last 14 ids and [SEP]; se_detokenize of the ids succeeds and
 *          is no longer than the ids' pieces with a space each.
 *   2. A tokenizer file. When the first byte is even, the rest is written
 *      to a private temp dir as tokenizer.json (when it starts with '{',
 *      after JSON whitespace) or else as vocab.txt, and loaded with
 *      se_tokenizer_load (WordPiece or Unigram, with the normalizer
 *      Sequences of XLM-R files: a base64 Precompiled charsmap, Strip,
 *      Replace, NFKC; Metaspace schemes; byte_fallback: the seed_xlmr_*
 *      seeds); a tokenizer that loads
 *      must then tokenize a fixed sentence and the input to SE_OK or
 *      SE_E_UTF8 with no negative id, its stats must be consistent, its
 *      offsets (same ids, spans inside the text) too, se_detokenize must
 *      succeed or name an unsupported decoder or an id out of range, and
 *      it must be freed.
 *
 * A broken invariant calls __builtin_trap() so the fuzzer records it.
 *
 * Build modes: with -DSE_FUZZ_MAIN (libFuzzer) this file defines
 * LLVMFuzzerTestOneInput; always it defines se_fuzz_tokenizer for
 * tests/fuzz/replay.c. Corpus: tests/fuzz/corpus/fuzz_tokenizer/.
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

int se_fuzz_tokenizer(const uint8_t *data, size_t size);

/* Traps (a fuzzer-visible crash) when cond is false. Harness only. */
#define FUZZ_REQUIRE(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

#define CLS_ID 101
#define SEP_ID 102
#define N_TRUNC 16

/* ==== Setup shared by all inputs ==== */

static se_tokenizer *bert;   /* loaded on first use, kept for the process */
static char tmp_dir[64];     /* private dir for fuzzed tokenizer files */
static char tmp_json[96], tmp_vocab[96];

/* Removes the temporary tokenizer files and their dir (atexit). */
static void remove_tmp(void) {
    if (!tmp_dir[0]) return;
    unlink(tmp_json);
    unlink(tmp_vocab);
    rmdir(tmp_dir);
}

/* Returns the shared BERT tokenizer, loading it on the first call. A
 * missing fixture is a harness setup error: say so and trap. */
static const se_tokenizer *get_bert(void) {
    if (bert) return bert;
    const char *dir = getenv("SE_FUZZ_TOKENIZER_DIR");
    if (!dir || !*dir) dir = "tests/fixtures/tokenizers/bert-base-uncased";
    se_error err;
    if (se_tokenizer_load(dir, &bert, &err) != SE_OK) {
        fprintf(stderr, "fuzz_tokenizer: cannot load %s (run from the repo root or set SE_FUZZ_TOKENIZER_DIR): %s\n",
                dir, err.msg);
        __builtin_trap();
    }
    return bert;
}

/* Creates the private temp dir on first use, under $TMPDIR, else
 * /dev/shm (a tmpfs: writing a file per input there keeps the target about
 * 50% faster than on disk), else /tmp. Returns false on failure. */
static bool ensure_tmp_dir(void) {
    if (tmp_dir[0]) return true;
    const char *base = getenv("TMPDIR");
    if (!base || !*base || strlen(base) > 40) base = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(tmp_dir, sizeof tmp_dir, "%s/se_fuzz_tok_XXXXXX", base);
    if (!mkdtemp(tmp_dir)) {
        tmp_dir[0] = 0;
        return false;
    }
    snprintf(tmp_json, sizeof tmp_json, "%s/tokenizer.json", tmp_dir);
    snprintf(tmp_vocab, sizeof tmp_vocab, "%s/vocab.txt", tmp_dir);
    atexit(remove_tmp);
    return true;
}

/* ==== Tokenizing through the public API ==== */

/* Tokenizes text (and pair, when not NULL) into a new array *ids (and
 * *types), first into an 8-entry buffer to exercise the SE_E_BUFFER
 * protocol, then into an array of the reported size. Returns the status;
 * on SE_OK the caller frees *ids and *types. */
static se_status tokenize(const se_tokenizer *tok, const char *text, size_t len, const char *pair,
                          size_t pair_len, size_t n_max, int32_t **ids, int32_t **types, size_t *n,
                          bool *truncated) {
    se_tokenize_params p = se_tokenize_default_params(tok);
    p.n_tokens_max = n_max;
    int32_t small[8], small_t[8];
    se_error err;
    *ids = *types = NULL;
    *n = 0;
    se_status s = se_tokenize(tok, text, len, pair, pair_len, &p, small, small_t, 8, n, truncated, &err);
    if (s != SE_OK && s != SE_E_BUFFER) {
        FUZZ_REQUIRE(err.code == s && err.msg[0]);
        return s;
    }
    size_t need = *n;
    *ids = malloc((need ? need : 1) * sizeof **ids);
    *types = malloc((need ? need : 1) * sizeof **types);
    FUZZ_REQUIRE(*ids && *types);
    s = se_tokenize(tok, text, len, pair, pair_len, &p, *ids, *types, need, n, truncated, &err);
    FUZZ_REQUIRE(s == SE_OK && *n == need); /* the reported size was exact */
    if (need <= 8) FUZZ_REQUIRE(memcmp(small, *ids, need * sizeof *small) == 0);
    return s;
}

/* Checks the shape of a single-sequence result: [CLS] ... [SEP], ids in
 * the vocabulary, type ids all 0. */
static void check_single(const se_tokenizer *tok, const int32_t *ids, const int32_t *types, size_t n) {
    FUZZ_REQUIRE(n >= 2);
    FUZZ_REQUIRE(ids[0] == CLS_ID && ids[n - 1] == SEP_ID);
    size_t nv = se_tokenizer_n_vocab(tok);
    for (size_t i = 0; i < n; i++) {
        FUZZ_REQUIRE(ids[i] >= 0 && (size_t)ids[i] < nv);
        FUZZ_REQUIRE(types[i] == 0);
    }
}

/* Checks se_tokenize_stats on a valid text whose untruncated call gave
 * n_content ids besides the specials. */
static void check_stats(const se_tokenizer *tok, const char *text, size_t size, size_t n_content) {
    se_token_stats st;
    se_error err;
    se_status s = se_tokenize_stats(tok, text, size, &st, &err);
    FUZZ_REQUIRE(s == SE_OK);
    size_t budget = se_tokenizer_n_tokens_max(tok);
    FUZZ_REQUIRE(st.n_tokens <= budget);
    if (n_content != SIZE_MAX) FUZZ_REQUIRE(st.n_tokens == (n_content < budget - 2 ? n_content : budget - 2));
    FUZZ_REQUIRE(st.n_unknown <= st.n_tokens && st.n_chars_unknown <= st.n_chars);
    FUZZ_REQUIRE(st.n_chars <= size);
}

/* Checks se_tokenize_offsets on text[0..size) against the n ids of the
 * same call through se_tokenize (untruncated), and left truncation and
 * se_detokenize for the BERT tokenizer (is_bert set). */
static void check_offsets(const se_tokenizer *tok, const char *text, size_t size, const int32_t *ids, size_t n, bool is_bert) {
    se_token *t = malloc((n ? n : 1) * sizeof *t);
    FUZZ_REQUIRE(t != NULL);
    se_tokenize_params p = se_tokenize_default_params(tok);
    p.n_tokens_max = 0;
    size_t m = 0;
    se_error err;
    FUZZ_REQUIRE(se_tokenize_offsets(tok, text, size, NULL, 0, &p, t, n, &m, NULL, &err) == SE_OK && m == n);
    uint32_t last = 0;
    for (size_t i = 0; i < n; i++) {
        FUZZ_REQUIRE(t[i].id == ids[i]);
        FUZZ_REQUIRE(t[i].start <= t[i].end && t[i].end <= size);
        if (t[i].special) {
            FUZZ_REQUIRE(t[i].start == 0 && t[i].end == 0 && t[i].seq == SE_SEQ_NONE);
            continue;
        }
        FUZZ_REQUIRE(t[i].seq == 0);
        if (is_bert) FUZZ_REQUIRE(t[i].start >= last);
        last = t[i].start;
    }
    size_t cap = 16;
    for (size_t i = 0; i < n; i++) {
        const char *pc = se_tokenizer_piece(tok, ids[i]);
        cap += (pc ? strlen(pc) : 0) + 8;
    }
    char *buf = malloc(cap);
    FUZZ_REQUIRE(buf != NULL);
    size_t len = 0;
    se_status s = se_detokenize(tok, ids, n, true, buf, cap, &len, &err);
    if (is_bert) FUZZ_REQUIRE(s == SE_OK);
    FUZZ_REQUIRE(s == SE_OK || s == SE_E_UNSUPPORTED || s == SE_E_INVALID);
    if (s == SE_OK) FUZZ_REQUIRE(len < cap && buf[len] == '\0');
    free(buf);
    if (is_bert && n > N_TRUNC) {
        p.n_tokens_max = N_TRUNC;
        p.truncate_left = true;
        bool cut = false;
        FUZZ_REQUIRE(se_tokenize_offsets(tok, text, size, NULL, 0, &p, t, n, &m, &cut, &err) == SE_OK);
        FUZZ_REQUIRE(m == N_TRUNC && cut && t[0].id == CLS_ID && t[m - 1].id == SEP_ID);
        for (size_t i = 1; i + 1 < m; i++) FUZZ_REQUIRE(t[i].id == ids[n - m + i]);
    }
    free(t);
}

/* Runs the text invariants of the header comment on data[0..size). */
static void fuzz_text(const char *text, size_t size) {
    const se_tokenizer *tok = get_bert();
    size_t bad;
    bool valid = se_utf8_valid(text, size, &bad);

    int32_t *ids, *types;
    size_t n;
    bool cut = true;
    se_status s = tokenize(tok, text, size, NULL, 0, 0, &ids, &types, &n, &cut);
    FUZZ_REQUIRE(s == SE_OK || s == SE_E_UTF8);
    FUZZ_REQUIRE((s == SE_OK) == valid);
    if (s != SE_OK) return;
    check_single(tok, ids, types, n);
    FUZZ_REQUIRE(!cut);

    /* Determinism. */
    int32_t *ids2, *types2;
    size_t n2;
    s = tokenize(tok, text, size, NULL, 0, 0, &ids2, &types2, &n2, NULL);
    FUZZ_REQUIRE(s == SE_OK && n2 == n && memcmp(ids, ids2, n * sizeof *ids) == 0);
    free(ids2);
    free(types2);

    /* Truncation: a prefix of the full result, closed by [SEP]. */
    s = tokenize(tok, text, size, NULL, 0, N_TRUNC, &ids2, &types2, &n2, &cut);
    FUZZ_REQUIRE(s == SE_OK);
    check_single(tok, ids2, types2, n2);
    FUZZ_REQUIRE(n2 == (n < N_TRUNC ? n : N_TRUNC));
    FUZZ_REQUIRE(cut == (n > N_TRUNC));
    FUZZ_REQUIRE(memcmp(ids, ids2, (n2 - 1) * sizeof *ids) == 0);
    free(ids2);
    free(types2);

    /* Pair: the two halves, each tokenized as in a single call. */
    size_t half = size / 2;
    while (half > 0 && ((uint8_t)text[half] & 0xC0) == 0x80) half--; /* a code point boundary */
    int32_t *ia, *ta, *ib, *tb, *ip, *tp;
    size_t na, nb, np;
    /* Both halves are valid UTF-8: the split is at a code point boundary. */
    s = tokenize(tok, text, half, NULL, 0, 0, &ia, &ta, &na, NULL);
    FUZZ_REQUIRE(s == SE_OK);
    s = tokenize(tok, text + half, size - half, NULL, 0, 0, &ib, &tb, &nb, NULL);
    FUZZ_REQUIRE(s == SE_OK);
    s = tokenize(tok, text, half, text + half, size - half, 0, &ip, &tp, &np, &cut);
    FUZZ_REQUIRE(s == SE_OK && !cut);
    FUZZ_REQUIRE(np == na + nb - 1);
    FUZZ_REQUIRE(memcmp(ip, ia, na * sizeof *ip) == 0);
    FUZZ_REQUIRE(memcmp(ip + na, ib + 1, (nb - 1) * sizeof *ip) == 0);
    for (size_t i = 0; i < np; i++) FUZZ_REQUIRE(tp[i] == (i < na ? 0 : 1));
    free(ip), free(tp);
    for (size_t nt = N_TRUNC - 1; nt <= N_TRUNC; nt++) {
        s = tokenize(tok, text, half, text + half, size - half, nt, &ip, &tp, &n2, &cut);
        FUZZ_REQUIRE(s == SE_OK);
        FUZZ_REQUIRE(n2 == (np < nt ? np : nt));
        FUZZ_REQUIRE(cut == (np > nt));
        FUZZ_REQUIRE(ip[0] == CLS_ID && ip[n2 - 1] == SEP_ID);
        /* longest_first: the side that was longer keeps at least as many */
        size_t ka = 0;
        while (ka + 1 < n2 && tp[ka + 1] == 0) ka++; /* ids of A: [1, ka) */
        size_t kb = n2 - ka - 2;                     /* ids of B before the last [SEP] */
        if (cut && na - 2 > nb - 2) FUZZ_REQUIRE(ka - 1 >= kb);
        if (cut && nb - 2 > na - 2) FUZZ_REQUIRE(kb >= ka - 1);
        free(ip), free(tp);
    }
    check_stats(tok, text, size, n - 2);
    check_offsets(tok, text, size, ids, n, true);
    free(ia), free(ta), free(ib), free(tb);
    free(ids);
    free(types);
}

/* ==== Fuzzing the tokenizer file loaders ==== */

/* Writes bytes to path (truncating); returns false on failure. */
static bool write_file(const char *path, const uint8_t *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(bytes, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* Loads bytes as tokenizer.json (or vocab.txt) from the temp dir; when
 * the tokenizer loads, tokenizes a fixed sentence and the bytes with it. */
static void fuzz_loader(const uint8_t *bytes, size_t n) {
    if (!ensure_tmp_dir()) return;
    size_t i = 0;
    while (i < n && (bytes[i] == ' ' || bytes[i] == '\t' || bytes[i] == '\n' || bytes[i] == '\r')) i++;
    bool json = i < n && bytes[i] == '{';
    const char *path = json ? tmp_json : tmp_vocab;
    unlink(json ? tmp_vocab : tmp_json); /* tokenizer.json wins when both exist */
    if (!write_file(path, bytes, n)) return;
    se_tokenizer *tok = NULL;
    se_error err;
    se_status s = se_tokenizer_load(tmp_dir, &tok, &err);
    if (s != SE_OK) {
        FUZZ_REQUIRE(tok == NULL);
        FUZZ_REQUIRE(s == SE_E_FORMAT || s == SE_E_UNSUPPORTED || s == SE_E_NOMEM || s == SE_E_IO || s == SE_E_RANGE);
        FUZZ_REQUIRE(err.code == s && err.msg[0]);
        return;
    }
    FUZZ_REQUIRE(tok != NULL);
    se_script_count sc[16];
    size_t nsc;
    FUZZ_REQUIRE(se_tokenizer_scripts(tok, sc, 16, &nsc, &err) == SE_OK && nsc >= 1);
    static const char sample[] = "Hello, World! [CLS] caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 unaffable";
    const char *texts[2] = {sample, (const char *)bytes};
    size_t lens[2] = {sizeof sample - 1, n};
    for (int k = 0; k < 2; k++) {
        int32_t *ids, *types;
        size_t m;
        s = tokenize(tok, texts[k], lens[k], NULL, 0, 0, &ids, &types, &m, NULL);
        /* SE_E_RANGE: a Unigram vocabulary without unk_id cannot cover a
         * character (Hugging Face raises MissingUnkId there) */
        FUZZ_REQUIRE(s == SE_OK || s == SE_E_UTF8 || s == SE_E_RANGE);
        if (s == SE_OK) {
            /* Ids may exceed the vocabulary (a template may name any id, as
             * in Hugging Face; the model rejects them), but never go negative. */
            for (size_t j = 0; j < m; j++) {
                FUZZ_REQUIRE(ids[j] >= 0);
                (void)se_tokenizer_piece(tok, ids[j]);
            }
            check_offsets(tok, texts[k], lens[k], ids, m, false);
            free(ids);
            free(types);
            se_token_stats st;
            se_error e2;
            FUZZ_REQUIRE(se_tokenize_stats(tok, texts[k], lens[k], &st, &e2) == SE_OK);
            FUZZ_REQUIRE(st.n_unknown <= st.n_tokens && st.n_chars_unknown <= st.n_chars && st.n_chars <= lens[k]);
        }
    }
    se_tokenizer_free(tok);
}

/* ==== Entry points ==== */

/* Runs one input: the text invariants always, the loader when the first
 * byte is even. Always returns 0. */
static int fuzz_tokenizer_one(const uint8_t *data, size_t size) {
    fuzz_text((const char *)data, size);
    if (size > 0 && (data[0] & 1) == 0) fuzz_loader(data + 1, size - 1);
    return 0;
}

/* The replay entry point (tests/fuzz/replay.c). */
int se_fuzz_tokenizer(const uint8_t *data, size_t size) { return fuzz_tokenizer_one(data, size); }

#ifdef SE_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The libFuzzer entry point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_tokenizer_one(data, size); }
#endif
