/*
 * test_sentencepiece.c - the sentencepiece model reader and the
 * precompiled-charsmap normaliser, against the two real references.
 *
 * Fixtures (tests/fixtures/sentencepiece/, written by
 * tools/gen_sentencepiece_corpus.py and tools/gen_sentencepiece_oracles.py):
 *   test_model.model, test_ja_model.model   sentencepiece's own test models
 *   <model>.json                            what python3-sentencepiece reports
 *   corpus.jsonl.gz                         11,000 differential lines
 *   expected_<model>.jsonl.gz               per line: spm_norm (sentencepiece's
 *                                           normalised text), hf_pre (tokenizers'
 *                                           Precompiled normaliser), ids
 * Run from the repo root.
 */
#include <float.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "alloc.h"
#include "json.h"
#include "normalizer_precompiled.h"
#include "sembed.h"
#include "sentencepiece_model.h"
#include "test.h"
#include "unicode.h"

#define FIX "tests/fixtures/sentencepiece/"

static const char *MODELS[] = {"test_model", "test_ja_model"};

/* Reads a whole (optionally gzip-compressed) file; NULL on failure. */
static char *read_gz(const char *path, size_t *len) {
    gzFile g = gzopen(path, "rb");
    if (!g) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    int r;
    while (buf && (r = gzread(g, buf + n, (unsigned)(cap - n - 1))) > 0) {
        n += (size_t)r;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    gzclose(g);
    if (!buf) return NULL;
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Monotonic seconds. */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Splits a JSON-lines buffer into parsed values; returns the count. */
static size_t load_jsonl(const char *path, json_t ***out) {
    size_t len = 0, n = 0, cap = 16384;
    char *buf = read_gz(path, &len);
    json_t **v = calloc(cap, sizeof *v);
    if (!buf || !v) {
        free(buf);
        free(v);
        *out = NULL;
        return 0;
    }
    for (char *p = buf; p < buf + len;) {
        char *e = memchr(p, '\n', (size_t)(buf + len - p));
        if (!e) e = buf + len;
        if (e > p) {
            json_error_t je;
            if (n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
            v[n] = json_loadb(p, (size_t)(e - p), JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
            if (!v[n]) fprintf(stderr, "  %s: line %zu: %s\n", path, n + 1, je.text);
            n++;
        }
        p = e + 1;
    }
    free(buf);
    *out = v;
    return n;
}

static void free_jsonl(json_t **v, size_t n) {
    for (size_t i = 0; i < n; i++) json_decref(v[i]);
    free(v);
}

/* Reads a plain file into malloc'd memory. */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Both models load, and everything python3-sentencepiece reports about them
 * (piece count, special ids, normaliser spec, sampled pieces with scores
 * and types, counts per type) matches. */
TEST(test_spm_model_matches_sentencepiece) {
    for (size_t k = 0; k < 2; k++) {
        char path[256], jpath[256];
        snprintf(path, sizeof path, FIX "%s.model", MODELS[k]);
        snprintf(jpath, sizeof jpath, FIX "%s.json", MODELS[k]);
        se_error err = {0};
        se_spm_model *m = NULL;
        CHECK_MSG(se_spm_model_load(path, &m, &err) == SE_OK, "%s: %s", path, err.msg);
        json_error_t je;
        json_t *want = json_load_file(jpath, 0, &je);
        CHECK(want != NULL);
        if (!m || !want) {
            se_spm_model_free(m);
            json_decref(want);
            continue;
        }
        CHECK(m->n_pieces == (size_t)json_integer_value(json_object_get(want, "n_pieces")));
        json_t *tr = json_object_get(want, "trainer"), *no = json_object_get(want, "normalizer");
        CHECK(m->trainer.model_type == json_integer_value(json_object_get(tr, "model_type")));
        CHECK(m->trainer.unk_id == json_integer_value(json_object_get(tr, "unk_id")));
        CHECK(m->trainer.bos_id == json_integer_value(json_object_get(tr, "bos_id")));
        CHECK(m->trainer.eos_id == json_integer_value(json_object_get(tr, "eos_id")));
        CHECK(m->trainer.pad_id == json_integer_value(json_object_get(tr, "pad_id")));
        CHECK(m->trainer.vocab_size == json_integer_value(json_object_get(tr, "vocab_size")));
        CHECK(m->trainer.byte_fallback == json_is_true(json_object_get(tr, "byte_fallback")));
        CHECK(strcmp(m->normalizer.name, json_string_value(json_object_get(no, "name"))) == 0);
        CHECK(m->normalizer.add_dummy_prefix == json_is_true(json_object_get(no, "add_dummy_prefix")));
        CHECK(m->normalizer.remove_extra_whitespaces == json_is_true(json_object_get(no, "remove_extra_whitespaces")));
        CHECK(m->normalizer.escape_whitespaces == json_is_true(json_object_get(no, "escape_whitespaces")));
        CHECK(m->normalizer.charsmap_len == (size_t)json_integer_value(json_object_get(want, "charsmap_len")));
        CHECK(m->normalizer.charsmap_len > 1000);
        size_t idx;
        json_t *s;
        json_array_foreach(json_object_get(want, "sample"), idx, s) {
            size_t id = (size_t)json_integer_value(json_object_get(s, "id"));
            CHECK(id < m->n_pieces);
            if (id >= m->n_pieces) continue;
            CHECK_MSG(strcmp(m->pieces[id].text, json_string_value(json_object_get(s, "piece"))) == 0,
                      "%s piece %zu: '%s'", MODELS[k], id, m->pieces[id].text);
            CHECK(m->pieces[id].score == (float)json_real_value(json_object_get(s, "score")) ||
                  (json_is_integer(json_object_get(s, "score")) && m->pieces[id].score == 0.0f));
            CHECK(m->pieces[id].type == json_integer_value(json_object_get(s, "type")));
        }
        size_t counts[7] = {0};
        for (size_t i = 0; i < m->n_pieces; i++) counts[m->pieces[i].type]++;
        const char *key;
        json_t *c;
        json_object_foreach(json_object_get(want, "type_counts"), key, c) {
            int t = atoi(key);
            CHECK(t >= 1 && t <= 6 && counts[t] == (size_t)json_integer_value(c));
        }
        CHECK(m->pieces[m->trainer.unk_id].type == SE_SPM_UNKNOWN);
        CHECK(strcmp(m->pieces[0].text, "<unk>") == 0 && strcmp(m->pieces[1].text, "<s>") == 0 &&
              strcmp(m->pieces[2].text, "</s>") == 0);
        CHECK(m->pieces[1].type == SE_SPM_CONTROL && m->pieces[2].type == SE_SPM_CONTROL);
        json_decref(want);
        se_spm_model_free(m);
    }
}

/* The fairseq layout against the real Hugging Face library: the vocab of
 * the tokenizer.json written the XLMRobertaConverter way equals
 * se_spm_fairseq_piece for every id, and on every corpus line where
 * tokenizers agrees with sentencepiece at all (not listed in
 * disagreements_<model>.jsonl with reason `ids`), <s> + fairseq ids of
 * python3-sentencepiece's ids + </s> equals tokenizers' ids. */
TEST(test_spm_fairseq_ids_match_tokenizers) {
    for (size_t k = 0; k < 2; k++) {
        char path[256];
        se_error err = {0};
        se_spm_model *m = NULL;
        snprintf(path, sizeof path, FIX "%s.model", MODELS[k]);
        CHECK(se_spm_model_load(path, &m, &err) == SE_OK);
        if (!m) continue;
        CHECK(se_spm_fairseq_check(m, path, &err) == SE_OK);
        snprintf(path, sizeof path, FIX "%s.xlmr.tokenizer.json", MODELS[k]);
        json_error_t je;
        json_t *tj = json_load_file(path, 0, &je);
        json_t *vocab = json_object_get(json_object_get(tj, "model"), "vocab");
        CHECK(json_array_size(vocab) == SE_SPM_FAIRSEQ_SIZE(m));
        size_t bad = 0;
        for (size_t i = 0; i < json_array_size(vocab); i++)
            bad += strcmp(json_string_value(json_array_get(json_array_get(vocab, i), 0)),
                          se_spm_fairseq_piece(m, (int32_t)i)) != 0;
        CHECK_MSG(bad == 0, "%s: %zu vocab entries differ", MODELS[k], bad);
        json_decref(tj);
        /* ids */
        snprintf(path, sizeof path, FIX "disagreements_%s.jsonl", MODELS[k]);
        json_t **dis, **exp;
        size_t nd = load_jsonl(path, &dis);
        char *skip = calloc(20000, 1);
        for (size_t i = 0; i < nd; i++) {
            json_t *r = json_object_get(dis[i], "reasons");
            size_t j;
            json_t *x;
            json_array_foreach(r, j, x) if (strcmp(json_string_value(x), "ids") == 0)
                skip[json_integer_value(json_object_get(dis[i], "line"))] = 1;
        }
        snprintf(path, sizeof path, FIX "expected_%s.jsonl.gz", MODELS[k]);
        size_t ne = load_jsonl(path, &exp), compared = 0;
        bad = 0;
        for (size_t i = 0; i < ne && i < 20000; i++) {
            if (skip[i]) continue;
            json_t *sp = json_object_get(exp[i], "spm_ids"), *hf = json_object_get(exp[i], "hf_ids");
            size_t n = json_array_size(sp);
            bool ok = json_array_size(hf) == n + 2 && json_integer_value(json_array_get(hf, 0)) == 0 &&
                      json_integer_value(json_array_get(hf, n + 1)) == 2;
            for (size_t j = 0; ok && j < n; j++)
                ok = se_spm_fairseq_id(m, (int32_t)json_integer_value(json_array_get(sp, j))) ==
                     json_integer_value(json_array_get(hf, j + 1));
            bad += !ok;
            compared++;
        }
        CHECK_MSG(bad == 0, "%s: %zu of %zu lines differ", MODELS[k], bad, compared);
        CHECK(compared > 9000);
        free(skip);
        free_jsonl(dis, nd);
        free_jsonl(exp, ne);
        se_spm_model_free(m);
    }
}

/* Normalises the whole corpus with both variants and compares with the
 * references' normalised strings: sentencepiece's (spm_norm) and tokenizers'
 * Precompiled normaliser (hf_pre). Prints the first few mismatches. */
static void check_corpus(const char *model, bool hf) {
    char path[256], epath[256];
    snprintf(path, sizeof path, FIX "%s.model", model);
    snprintf(epath, sizeof epath, FIX "expected_%s.jsonl.gz", model);
    se_error err = {0};
    se_spm_model *m = NULL;
    se_precompiled *pc = NULL;
    CHECK(se_spm_model_load(path, &m, &err) == SE_OK);
    if (!m) return;
    CHECK(se_precompiled_new(m->normalizer.charsmap, m->normalizer.charsmap_len, "charsmap", &pc, &err) == SE_OK);
    json_t **corpus, **exp;
    size_t nc = load_jsonl(FIX "corpus.jsonl.gz", &corpus);
    size_t ne = load_jsonl(epath, &exp);
    CHECK(nc >= 10000);
    CHECK(nc == ne);
    se_spm_norm_opts o = {m->normalizer.add_dummy_prefix, m->normalizer.remove_extra_whitespaces,
                          m->normalizer.escape_whitespaces, m->trainer.treat_whitespace_as_suffix};
    size_t bad = 0;
    for (size_t i = 0; pc && i < nc && i < ne; i++) {
        const char *text = json_string_value(corpus[i]);
        size_t len = json_string_length(corpus[i]);
        json_t *w = json_object_get(exp[i], hf ? "hf_pre" : "spm_norm");
        char *got = NULL;
        size_t got_len = 0;
        se_status s = hf ? se_precompiled_normalize_hf(pc, text, len, &got, &got_len, &err)
                         : se_precompiled_normalize_spm(pc, &o, text, len, &got, &got_len, &err);
        bool ok = s == SE_OK && json_is_string(w) && got_len == json_string_length(w) &&
                  memcmp(got, json_string_value(w), got_len) == 0;
        if (!ok && bad++ < 5) {
            test_checks_failed++;
            fprintf(stderr, "  %s %s line %zu: %s\n    text %s\n    got  %s\n    want %s\n", model,
                    hf ? "hf" : "spm", i, s == SE_OK ? "differs" : err.msg, text, got ? got : "(null)",
                    json_string_value(w));
        }
        se_free(got);
    }
    if (bad) fprintf(stderr, "  %s %s: %zu of %zu lines differ\n", model, hf ? "hf" : "spm", bad, nc);
    CHECK(bad == 0);
    free_jsonl(corpus, nc);
    free_jsonl(exp, ne);
    se_precompiled_free(pc);
    se_spm_model_free(m);
}

/* sentencepiece's Normalizer::Normalize (longest match + whitespace rules)
 * equals python3-sentencepiece's normalised text on all 11,000 lines. */
TEST(test_spm_normalize_matches_sentencepiece) {
    check_corpus("test_model", false);
    check_corpus("test_ja_model", false);
}

/* The Hugging Face Precompiled normaliser (per grapheme, shortest match)
 * equals tokenizers' on all 11,000 lines. */
TEST(test_precompiled_hf_matches_tokenizers) {
    check_corpus("test_model", true);
    check_corpus("test_ja_model", true);
}

/* Loads test_model's charsmap into *pc (NULL-safe) for the small tests. */
static se_precompiled *load_pc(void) {
    se_spm_model *m = NULL;
    se_precompiled *pc = NULL;
    se_error err = {0};
    if (se_spm_model_load(FIX "test_model.model", &m, &err) != SE_OK) return NULL;
    se_precompiled_new(m->normalizer.charsmap, m->normalizer.charsmap_len, "charsmap", &pc, &err);
    se_spm_model_free(m);
    return pc;
}

/* Runs both variants on one string and compares with the expected outputs
 * (taken from the references: python3-sentencepiece and tokenizers). */
static void both(const se_precompiled *pc, const char *text, const char *want_spm, const char *want_hf) {
    se_spm_norm_opts o = {true, true, true, false};
    char *a = NULL, *b = NULL;
    se_error err;
    CHECK(se_precompiled_normalize_spm(pc, &o, text, strlen(text), &a, NULL, &err) == SE_OK);
    CHECK(se_precompiled_normalize_hf(pc, text, strlen(text), &b, NULL, &err) == SE_OK);
    CHECK_MSG(a && strcmp(a, want_spm) == 0, "spm '%s': got '%s' want '%s'", text, a ? a : "", want_spm);
    CHECK_MSG(b && strcmp(b, want_hf) == 0, "hf '%s': got '%s' want '%s'", text, b ? b : "", want_hf);
    se_free(a);
    se_free(b);
}

/* Where the two ways of applying the charsmap differ, pinned with the
 * references' outputs: a grapheme under 6 bytes whose first character has a
 * rule loses the rest of the cluster in HF (CIRCLED DIGIT ONE + U+0301);
 * the whitespace rules are sentencepiece's alone; full-width letters and
 * NFD accents agree. */
TEST(test_precompiled_variants_differ) {
    se_precompiled *pc = load_pc();
    CHECK(pc != NULL);
    if (!pc) return;
    both(pc, "\xE2\x91\xA0\xCC\x81", "\xE2\x96\x81" "1\xCC\x81", "1");
    both(pc, "  a\xC2\xA0\xC2\xA0 b  ", "\xE2\x96\x81" "a\xE2\x96\x81" "b", "  a   b  ");
    both(pc, "\xEF\xBC\xA1\xEF\xBD\x82", "\xE2\x96\x81" "Ab", "Ab");
    both(pc, "e\xCC\x81", "\xE2\x96\x81\xC3\xA9", "\xC3\xA9");
    both(pc, "", "", "");
    /* invalid UTF-8: sentencepiece writes U+FFFD per byte; HF refuses */
    se_spm_norm_opts o = {true, true, true, false};
    char *a = NULL;
    se_error err;
    CHECK(se_precompiled_normalize_spm(pc, &o, "a\xFF" "b", 3, &a, NULL, &err) == SE_OK);
    CHECK(a && strcmp(a, "\xE2\x96\x81" "a\xEF\xBF\xBD" "b") == 0);
    se_free(a);
    CHECK(se_precompiled_normalize_hf(pc, "a\xFF", 2, &a, NULL, &err) == SE_E_UTF8);
    CHECK(strstr(err.msg, "byte 1") != NULL);
    se_precompiled_free(pc);
}

/* A hand-built charsmap (darts-clone layout, see normalizer_precompiled.c):
 * 'A'..'Z' -> 'a'..'z', "AB" -> "X" (a key whose prefix is a key too), and
 * U+00A0 (C2 A0) -> " ". Returns its byte size in buf (>= 4 + 4096 + 64). */
static size_t handmade_charsmap(uint8_t *buf) {
    uint32_t units[1024] = {0};
    char strings[64];
    size_t ns = 0;
    for (uint32_t c = 'A'; c <= 'Z'; c++) {
        units[c] = c | 1u << 8 | 256u << 10;          /* child base c ^ 256 */
        units[256 + c] = 0x80000000u | (uint32_t)ns; /* the leaf: value */
        strings[ns++] = (char)(c + 32);
        strings[ns++] = '\0';
    }
    units[259] = 'B' | 1u << 8 | 768u << 10; /* "AB": (('A' ^ 256) ^ 'B') = 259, leaf at 259 ^ 768 */
    units[259 ^ 768] = 0x80000000u | (uint32_t)ns;
    strings[ns++] = 'X';
    strings[ns++] = '\0';
    units[0xC2] = 0xC2 | 512u << 10; /* C2: base 0xC2 ^ 512; A0 at that ^ 0xA0 */
    units[(0xC2 ^ 512) ^ 0xA0] = 0xA0 | 1u << 8 | 256u << 10;
    units[((0xC2 ^ 512) ^ 0xA0) ^ 256] = 0x80000000u | (uint32_t)ns;
    strings[ns++] = ' ';
    strings[ns++] = '\0';
    uint32_t size = sizeof units;
    memcpy(buf, &size, 4);
    memcpy(buf + 4, units, sizeof units);
    memcpy(buf + 4 + sizeof units, strings, ns);
    return 4 + sizeof units + ns;
}

/* The hand-built trie: sentencepiece takes the longest key ("AB" -> "X"),
 * Hugging Face looks at one grapheme at a time and takes the shortest
 * ("A" -> "a"); a 2-byte key (NBSP) works in both; bytes with no rule are
 * copied; the whitespace rules collapse the NBSP-made space. */
TEST(test_precompiled_handmade_trie) {
    uint8_t buf[4 + 4096 + 64];
    size_t n = handmade_charsmap(buf);
    se_precompiled *pc = NULL;
    se_error err = {0};
    CHECK_MSG(se_precompiled_new(buf, n, "handmade", &pc, &err) == SE_OK, "%s", err.msg);
    if (!pc) return;
    CHECK(se_precompiled_n_units(pc) == 1024);
    const char *rep;
    size_t rep_len;
    CHECK(se_precompiled_prefix(pc, "ABC", 3, &rep, &rep_len) == 2 && rep_len == 1 && rep[0] == 'X');
    CHECK(se_precompiled_prefix(pc, "AC", 2, &rep, &rep_len) == 1 && rep_len == 1 && rep[0] == 'a');
    CHECK(se_precompiled_prefix(pc, "xyz", 3, &rep, &rep_len) == 1 && rep == NULL);
    CHECK(se_precompiled_prefix(pc, "\xC3\xA9", 2, &rep, &rep_len) == 2 && rep == NULL);
    CHECK((rep = se_precompiled_first(pc, "ABC", 3, &rep_len)) != NULL && rep_len == 1 && rep[0] == 'a');
    CHECK(se_precompiled_first(pc, "\xC2", 1, &rep_len) == NULL);
    both(pc, "ABA", "\xE2\x96\x81" "Xa", "aba");
    both(pc, "Hi\xC2\xA0 \xC2\xA0yo", "\xE2\x96\x81" "hi\xE2\x96\x81" "yo", "hi   yo");
    both(pc, "\xC2\xA0\xC2\xA0", "", "  ");
    /* without escaping, whitespace removal or a dummy prefix */
    se_spm_norm_opts o = {false, false, false, false};
    char *out = NULL;
    CHECK(se_precompiled_normalize_spm(pc, &o, " AB  C ", 7, &out, NULL, &err) == SE_OK);
    CHECK(out && strcmp(out, " X  c ") == 0);
    se_free(out);
    /* treat_whitespace_as_suffix puts the dummy space at the end */
    se_spm_norm_opts suf = {true, true, true, true};
    CHECK(se_precompiled_normalize_spm(pc, &suf, "AB", 2, &out, NULL, &err) == SE_OK);
    CHECK(out && strcmp(out, "X\xE2\x96\x81") == 0);
    se_free(out);
    /* no charsmap at all: identity rules, whitespace rules still apply */
    se_spm_norm_opts d = {true, true, true, false};
    CHECK(se_precompiled_normalize_spm(NULL, &d, "  AB  c ", 8, &out, NULL, &err) == SE_OK);
    CHECK(out && strcmp(out, "\xE2\x96\x81" "AB\xE2\x96\x81" "c") == 0);
    se_free(out);
    se_precompiled_free(pc);
}

/* A lookup follows a NUL byte of the text like any other byte (darts-clone
 * does), so the validator must walk label-0 nodes too. Found by the fuzzer:
 * the root unit with its has_leaf bit set is reachable through a NUL byte,
 * and its leaf value (the unit itself: 256) pointed into the middle of a
 * UTF-8 character, so both normalisers wrote invalid UTF-8. Now the
 * charsmap is refused when loaded. */
TEST(test_precompiled_nul_key_validated) {
    uint8_t buf[4 + 4096 + 512];
    size_t n = handmade_charsmap(buf);
    uint32_t root;
    memcpy(&root, buf + 4, 4);
    root |= 1u << 8; /* the root has a leaf: value = the unit = 256 */
    memcpy(buf + 4, &root, 4);
    /* strings: 'x', then e-acute pairs so that offset 256 is a continuation byte */
    buf[n++] = 'x';
    while (n < 4 + 4096 + 300) {
        buf[n++] = 0xC3;
        buf[n++] = 0xA9;
    }
    buf[n++] = '\0';
    CHECK(buf[4 + 4096 + 256] == 0xA9);
    se_precompiled *pc = NULL;
    se_error err = {0};
    se_status s = se_precompiled_new(buf, n, "nul", &pc, &err);
    CHECK_MSG(s == SE_E_FORMAT && pc == NULL, "status %d", s);
    CHECK(strstr(err.msg, "nul: trie value 256 points into the middle of a UTF-8 character") != NULL);
    if (pc) {
        se_spm_norm_opts o = {true, true, true, false};
        char *out = NULL;
        size_t len = 0, bad;
        se_precompiled_normalize_spm(pc, &o, "a\0b", 3, &out, &len, &err);
        CHECK_MSG(out && se_utf8_valid(out, len, &bad), "spm output is not valid UTF-8");
        se_free(out);
        se_precompiled_free(pc);
    }
}

/* --- corrupt files ------------------------------------------------------ */

/* Appends a varint to buf at *n. */
static void put_varint(uint8_t *buf, size_t *n, uint64_t v) {
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        buf[(*n)++] = b | (v ? 0x80 : 0);
    } while (v);
}

/* Appends a length-delimited field. */
static void put_len(uint8_t *buf, size_t *n, uint32_t field, const void *data, size_t len) {
    put_varint(buf, n, (uint64_t)field << 3 | 2);
    put_varint(buf, n, len);
    memcpy(buf + *n, data, len);
    *n += len;
}

/* A SentencePiece message: piece, score, type. */
static size_t piece_msg(uint8_t *out, const char *text, float score, int type) {
    size_t n = 0;
    put_len(out, &n, 1, text, strlen(text));
    out[n++] = 2 << 3 | 5;
    memcpy(out + n, &score, 4);
    n += 4;
    if (type) {
        put_varint(out, &n, 3 << 3 | 0);
        put_varint(out, &n, (uint64_t)type);
    }
    return n;
}

/* A small valid model: <unk> <s> </s> a b, and an identity normaliser. */
static size_t tiny_model(uint8_t *buf) {
    size_t n = 0, k;
    uint8_t tmp[64];
    k = piece_msg(tmp, "<unk>", 0, 2);
    put_len(buf, &n, 1, tmp, k);
    k = piece_msg(tmp, "<s>", 0, 3);
    put_len(buf, &n, 1, tmp, k);
    k = piece_msg(tmp, "</s>", 0, 3);
    put_len(buf, &n, 1, tmp, k);
    k = piece_msg(tmp, "\xE2\x96\x81" "a", -1.5f, 0);
    put_len(buf, &n, 1, tmp, k);
    k = piece_msg(tmp, "b", -2.5f, 1);
    put_len(buf, &n, 1, tmp, k);
    size_t t = 0;
    put_varint(tmp, &t, 40 << 3 | 0);
    put_varint(tmp, &t, 0);
    put_varint(tmp, &t, 43 << 3 | 0);
    put_varint(tmp, &t, (uint64_t)(int64_t)-1); /* pad_id -1: 10-byte varint */
    put_len(buf, &n, 2, tmp, t);
    t = 0;
    put_len(tmp, &t, 1, "identity", 8);
    put_varint(tmp, &t, 3 << 3 | 0);
    put_varint(tmp, &t, 0); /* add_dummy_prefix false */
    put_len(buf, &n, 3, tmp, t);
    return n;
}

/* Parses buf and expects failure with `want` in the message. */
static void expect_error(const uint8_t *buf, size_t n, se_status code, const char *want, int line) {
    se_spm_model *m = (se_spm_model *)1;
    se_error err = {0};
    se_status s = se_spm_model_parse(buf, n, "bad.model", &m, &err);
    if (s != code || m != NULL || !strstr(err.msg, want) || !strstr(err.msg, "bad.model")) {
        test_checks_failed++;
        fprintf(stderr, "  line %d: status %d (want %d), msg '%s' (want '%s')\n", line, s, code, err.msg, want);
    }
    if (s == SE_OK) se_spm_model_free(m);
}
#define EXPECT_ERROR(buf, n, want) expect_error(buf, n, SE_E_FORMAT, want, __LINE__)

/* The hand-built model parses: pieces, scores, types (default NORMAL),
 * negative pad_id, identity normaliser with add_dummy_prefix off. */
TEST(test_spm_tiny_model) {
    uint8_t buf[512];
    size_t n = tiny_model(buf);
    se_spm_model *m = NULL;
    se_error err = {0};
    CHECK_MSG(se_spm_model_parse(buf, n, "tiny", &m, &err) == SE_OK, "%s", err.msg);
    if (!m) return;
    CHECK(m->n_pieces == 5);
    CHECK(strcmp(m->pieces[3].text, "\xE2\x96\x81" "a") == 0 && m->pieces[3].len == 4);
    CHECK(m->pieces[3].score == -1.5f && m->pieces[3].type == SE_SPM_NORMAL);
    CHECK(m->pieces[4].score == -2.5f && m->pieces[4].type == SE_SPM_NORMAL);
    CHECK(m->trainer.pad_id == -1 && m->trainer.unk_id == 0 && m->trainer.bos_id == 1);
    CHECK(strcmp(m->normalizer.name, "identity") == 0);
    CHECK(!m->normalizer.add_dummy_prefix && m->normalizer.remove_extra_whitespaces);
    CHECK(m->normalizer.charsmap == NULL && m->normalizer.charsmap_len == 0);
    /* the fairseq layout: 7 ids, <mask> last, unk -> 3, others + 1 */
    CHECK(se_spm_fairseq_check(m, "tiny", &err) == SE_OK);
    CHECK(SE_SPM_FAIRSEQ_SIZE(m) == 7);
    CHECK(strcmp(se_spm_fairseq_piece(m, 6), "<mask>") == 0 && strcmp(se_spm_fairseq_piece(m, 3), "<unk>") == 0);
    CHECK(strcmp(se_spm_fairseq_piece(m, 4), "\xE2\x96\x81" "a") == 0 && strcmp(se_spm_fairseq_piece(m, 5), "b") == 0);
    CHECK(se_spm_fairseq_id(m, 0) == 3 && se_spm_fairseq_id(m, 3) == 4 && se_spm_fairseq_id(m, 4) == 5);
    m->pieces[1].type = SE_SPM_NORMAL;
    CHECK(se_spm_fairseq_check(m, "tiny", &err) == SE_E_UNSUPPORTED);
    CHECK(strstr(err.msg, "tiny: pieces[1] '<s>' is NORMAL") != NULL);
    se_spm_model_free(m);
}

/* Every truncation of a real model fails cleanly (never crashes, never
 * succeeds), and the message names what was cut. */
TEST(test_spm_truncated) {
    size_t len;
    uint8_t *data = read_file(FIX "test_model.model", &len);
    CHECK(data != NULL);
    if (!data) return;
    size_t cuts[] = {1, 2, 3, 10, 57, 100, 1000, 5000, 20000, len / 2, len - 100, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        se_spm_model *m = NULL;
        se_error err = {0};
        se_status s = se_spm_model_parse(data, cuts[i], "cut.model", &m, &err);
        CHECK_MSG(s == SE_E_FORMAT && m == NULL, "cut at %zu: status %d", cuts[i], s);
        CHECK_MSG(strstr(err.msg, "cut.model") && (strstr(err.msg, "truncated") || strstr(err.msg, "exceeds") ||
                                                   strstr(err.msg, "needs")),
                  "cut at %zu: '%s'", cuts[i], err.msg);
        se_spm_model_free(m);
    }
    /* every prefix of the tiny model, too */
    uint8_t buf[512];
    size_t n = tiny_model(buf);
    for (size_t k = 1; k < n; k++) {
        se_spm_model *m = NULL;
        se_error err = {0};
        se_status s = se_spm_model_parse(buf, k, "cut.model", &m, &err);
        CHECK_MSG(s != SE_OK || m != NULL, "prefix %zu", k);
        se_spm_model_free(m);
    }
    free(data);
}

/* Malformed wire data and invalid content, each with the field named. */
TEST(test_spm_corrupt_fields) {
    uint8_t buf[1024], tmp[128];
    size_t n, k;
    /* a varint of 11 continuation bytes */
    n = tiny_model(buf);
    memset(buf + n, 0xFF, 11);
    EXPECT_ERROR(buf, n + 11, "longer than 10 bytes");
    /* a piece with a 4 GB length */
    n = 0;
    put_varint(buf, &n, 1 << 3 | 2);
    put_varint(buf, &n, 0xFFFFFFFFull);
    buf[n++] = 'x';
    EXPECT_ERROR(buf, n, "length 4294967295 exceeds the 1 bytes left");
    /* inside a piece: the text's length runs past the piece message */
    n = tiny_model(buf);
    k = 0;
    put_varint(tmp, &k, 1 << 3 | 2);
    put_varint(tmp, &k, 200);
    memcpy(tmp + k, "abc", 3);
    k += 3;
    put_len(buf, &n, 1, tmp, k);
    EXPECT_ERROR(buf, n, "pieces[5]: field 1: length 200 exceeds the 3 bytes left");
    /* wrong wire type for the score */
    n = tiny_model(buf);
    k = 0;
    put_len(tmp, &k, 1, "zz", 2);
    put_varint(tmp, &k, 2 << 3 | 0);
    put_varint(tmp, &k, 7);
    put_len(buf, &n, 1, tmp, k);
    EXPECT_ERROR(buf, n, "pieces[5].score: wire type varint, expected fixed32");
    /* unknown piece type */
    n = tiny_model(buf);
    k = piece_msg(tmp, "zz", 0, 9);
    put_len(buf, &n, 1, tmp, k);
    EXPECT_ERROR(buf, n, "pieces[5].type: unknown piece type 9");
    /* a NaN score */
    n = tiny_model(buf);
    k = piece_msg(tmp, "zz", NAN, 1);
    put_len(buf, &n, 1, tmp, k);
    EXPECT_ERROR(buf, n, "pieces[5].score: not a finite number");
    n = tiny_model(buf);
    k = piece_msg(tmp, "zz", -INFINITY, 1);
    put_len(buf, &n, 1, tmp, k);
    EXPECT_ERROR(buf, n, "pieces[5].score: not a finite number");
    n = tiny_model(buf);
    k = piece_msg(tmp, "zz", -FLT_MAX, 1); /* the largest finite score loads */
    put_len(buf, &n, 1, tmp, k);
    {
        se_spm_model *mm = NULL;
        se_error e2 = {0};
        CHECK_MSG(se_spm_model_parse(buf, n, "x", &mm, &e2) == SE_OK, "%s", e2.msg);
        CHECK(mm && mm->pieces[5].score == -FLT_MAX);
        se_spm_model_free(mm);
    }
    /* duplicate piece */
    n = tiny_model(buf);
    k = piece_msg(tmp, "b", -3, 1);
    put_len(buf, &n, 1, tmp, k);
    EXPECT_ERROR(buf, n, "pieces[5]: 'b' duplicates pieces[4]");
    /* empty piece */
    n = tiny_model(buf);
    k = piece_msg(tmp, "", -3, 1);
    put_len(buf, &n, 1, tmp, k);
    EXPECT_ERROR(buf, n, "pieces[5].piece: missing or empty");
    /* invalid UTF-8 piece */
    n = tiny_model(buf);
    k = piece_msg(tmp, "a\xC3", -3, 1);
    put_len(buf, &n, 1, tmp, k);
    EXPECT_ERROR(buf, n, "pieces[5].piece: not valid UTF-8");
    /* a second UNKNOWN piece */
    n = tiny_model(buf);
    k = piece_msg(tmp, "<unk2>", 0, 2);
    put_len(buf, &n, 1, tmp, k);
    EXPECT_ERROR(buf, n, "pieces[5]: a second UNKNOWN piece");
    /* a BYTE piece without byte_fallback */
    n = tiny_model(buf);
    k = piece_msg(tmp, "<0x41>", 0, 6);
    put_len(buf, &n, 1, tmp, k);
    EXPECT_ERROR(buf, n, "BYTE piece '<0x41>' but trainer_spec.byte_fallback is false");
    /* unk_id pointing elsewhere, eos_id out of range */
    n = tiny_model(buf);
    k = 0;
    put_varint(tmp, &k, 40 << 3 | 0);
    put_varint(tmp, &k, 3);
    put_len(buf, &n, 2, tmp, k);
    EXPECT_ERROR(buf, n, "trainer_spec.unk_id 3 is not the UNKNOWN piece");
    n = tiny_model(buf);
    k = 0;
    put_varint(tmp, &k, 42 << 3 | 0);
    put_varint(tmp, &k, 99);
    put_len(buf, &n, 2, tmp, k);
    EXPECT_ERROR(buf, n, "trainer_spec.eos_id 99 is outside -1..4");
    /* an int32 field holding a 64-bit value */
    n = tiny_model(buf);
    k = 0;
    put_varint(tmp, &k, 41 << 3 | 0);
    put_varint(tmp, &k, 1ull << 40);
    put_len(buf, &n, 2, tmp, k);
    EXPECT_ERROR(buf, n, "trainer_spec.bos_id: 1099511627776 is outside the int32 range");
    /* unknown model type */
    n = tiny_model(buf);
    k = 0;
    put_varint(tmp, &k, 3 << 3 | 0);
    put_varint(tmp, &k, 7);
    put_len(buf, &n, 2, tmp, k);
    EXPECT_ERROR(buf, n, "trainer_spec.model_type: unknown model type 7");
    /* a group wire type and field number 0 */
    n = tiny_model(buf);
    buf[n++] = 9 << 3 | 3;
    EXPECT_ERROR(buf, n, "field 9: unsupported wire type 3");
    n = tiny_model(buf);
    buf[n++] = 0 << 3 | 0;
    buf[n++] = 0;
    EXPECT_ERROR(buf, n, "invalid field number 0");
    /* pieces with the wrong wire type */
    n = tiny_model(buf);
    buf[n++] = 1 << 3 | 0;
    buf[n++] = 5;
    EXPECT_ERROR(buf, n, "pieces: wire type varint, expected length-delimited");
    /* no pieces / no unknown piece */
    EXPECT_ERROR((const uint8_t *)"", 0, "the model has no pieces");
    n = 0;
    k = piece_msg(tmp, "a", 0, 1);
    put_len(buf, &n, 1, tmp, k);
    EXPECT_ERROR(buf, n, "pieces: no UNKNOWN piece");
    /* unknown fields of every wire type are skipped */
    n = tiny_model(buf);
    put_varint(buf, &n, 99 << 3 | 0);
    put_varint(buf, &n, 12345);
    put_varint(buf, &n, 98 << 3 | 1);
    memset(buf + n, 1, 8);
    n += 8;
    put_varint(buf, &n, 97 << 3 | 5);
    memset(buf + n, 1, 4);
    n += 4;
    put_len(buf, &n, 4, "self-test", 9);
    se_spm_model *m = NULL;
    se_error err = {0};
    CHECK_MSG(se_spm_model_parse(buf, n, "x", &m, &err) == SE_OK, "%s", err.msg);
    CHECK(m && m->n_pieces == 5);
    se_spm_model_free(m);
}

/* Builds tiny_model + a normalizer_spec carrying charsmap cm[0..cl). */
static size_t with_charsmap(uint8_t *buf, const uint8_t *cm, size_t cl) {
    size_t n = tiny_model(buf), t = 0;
    uint8_t *tmp = malloc(cl + 16);
    put_len(tmp, &t, 2, cm, cl);
    put_len(buf, &n, 3, tmp, t);
    free(tmp);
    return n;
}

/* Broken charsmaps: framing, trie values out of range, strings not UTF-8 or
 * not NUL-terminated, a trie whose nodes loop; each names the field. */
TEST(test_spm_bad_charsmap) {
    se_spm_model *real = NULL;
    se_error err = {0};
    CHECK(se_spm_model_load(FIX "test_model.model", &real, &err) == SE_OK);
    if (!real) return;
    size_t cl = real->normalizer.charsmap_len;
    uint8_t *cm = malloc(cl), *buf = malloc(cl + 1024);
    uint32_t trie;
    memcpy(&trie, real->normalizer.charsmap, 4);
    /* too short */
    size_t n = with_charsmap(buf, real->normalizer.charsmap, 3);
    EXPECT_ERROR(buf, n, "normalizer_spec.precompiled_charsmap: 3 bytes, too short");
    /* trie size not a multiple of 4 */
    memcpy(cm, real->normalizer.charsmap, cl);
    cm[0] ^= 1;
    n = with_charsmap(buf, cm, cl);
    EXPECT_ERROR(buf, n, "precompiled_charsmap: trie size");
    /* trie size past the end */
    memcpy(cm, real->normalizer.charsmap, cl);
    uint32_t big = 0xFFFFFFF0u;
    memcpy(cm, &big, 4);
    n = with_charsmap(buf, cm, cl);
    EXPECT_ERROR(buf, n, "exceeds the");
    /* strings cut: the trie's values point past them */
    n = with_charsmap(buf, real->normalizer.charsmap, 4 + trie + 10);
    EXPECT_ERROR(buf, n, "outside the 10 bytes of NUL-terminated replacement strings");
    /* strings not valid UTF-8 */
    memcpy(cm, real->normalizer.charsmap, cl);
    cm[4 + trie + 1] = 0xFF;
    n = with_charsmap(buf, cm, cl);
    EXPECT_ERROR(buf, n, "replacement strings are not valid UTF-8");
    /* a node with a leaf whose value unit lies outside the array */
    {
        uint32_t units[1 + 128] = {0};
        units[0] = 128 * 4;
        units[1 + 0x41] = 0x41u | 1u << 8 | 1000u << 10; /* label 'A', has_leaf, offset 1000 */
        n = with_charsmap(buf, (const uint8_t *)units, sizeof units);
        EXPECT_ERROR(buf, n, "precompiled_charsmap: trie unit 65 has a value outside the 128-unit array");
    }
    /* every single-byte corruption of the trie head either loads or is
     * refused with a charsmap error: never a crash */
    for (size_t i = 4; i < 4 + 64 && i < 4 + trie; i++) {
        memcpy(cm, real->normalizer.charsmap, cl);
        cm[i] ^= 0x5A;
        se_precompiled *pc = NULL;
        se_status s = se_precompiled_new(cm, cl, "cm", &pc, &err);
        CHECK(s == SE_OK || (s == SE_E_FORMAT && pc == NULL && strstr(err.msg, "cm: ")));
        if (pc) {
            char *o = NULL;
            se_spm_norm_opts opts = {true, true, true, false};
            CHECK(se_precompiled_normalize_spm(pc, &opts, "ＡＢＣ ① ﬁ", 18, &o, NULL, &err) == SE_OK);
            se_free(o);
            CHECK(se_precompiled_normalize_hf(pc, "ＡＢＣ ① ﬁ", 18, &o, NULL, &err) == SE_OK);
            se_free(o);
        }
        se_precompiled_free(pc);
    }
    free(cm);
    free(buf);
    se_spm_model_free(real);
}

/* Each allocation of a real model's load failing in turn returns
 * SE_E_NOMEM and leaks nothing (ASan checks the leaks). */
TEST(test_spm_oom) {
    size_t len;
    uint8_t *data = read_file(FIX "test_model.model", &len);
    CHECK(data != NULL);
    int saw_ok = 0;
    for (long k = 1; data && k < 40 && !saw_ok; k++) {
        se_spm_model *m = NULL;
        se_error err = {0};
        se_alloc_fail_after(k);
        se_status s = se_spm_model_parse(data, len, "oom.model", &m, &err);
        se_alloc_fail_after(0);
        CHECK(s == SE_OK || (s == SE_E_NOMEM && m == NULL));
        if (s == SE_OK) saw_ok = 1;
        se_spm_model_free(m);
    }
    CHECK(saw_ok);
    free(data);
}

/* A missing file is SE_E_IO naming it. */
TEST(test_spm_missing_file) {
    se_spm_model *m = NULL;
    se_error err = {0};
    CHECK(se_spm_model_load(FIX "no-such.model", &m, &err) == SE_E_IO);
    CHECK(m == NULL && strstr(err.msg, "no-such.model"));
}

/* ==== Tokenizing through the public API ==== */

/* Copies file src to dir/name; false on failure. */
static bool copy_to(const char *src, const char *dir, const char *name) {
    size_t n;
    uint8_t *b = read_file(src, &n);
    if (!b) return false;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(b, 1, n, f) == n;
    if (f) ok = fclose(f) == 0 && ok;
    free(b);
    return ok;
}

/* Removes a temp dir made by make_dir. */
static void remove_dir(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "  cannot remove %s\n", dir);
}

/* Reads a JSON id list into ids (at most cap); returns the count. */
static size_t json_ids(const json_t *a, int32_t *ids, size_t cap) {
    size_t n = json_array_size(a);
    for (size_t i = 0; i < n && i < cap; i++) ids[i] = (int32_t)json_integer_value(json_array_get(a, i));
    return n;
}

/* XLMRobertaTokenizer's ids from python3-sentencepiece's: <s>, each spm id
 * + 1 (its <unk> 0 becomes 3), </s>; with b, then </s> B </s>. */
static size_t spm_expected(const json_t *a, const json_t *b, int32_t *ids, size_t cap) {
    size_t n = 0;
    const json_t *seqs[2] = {a, b};
    ids[n++] = 0;
    for (int k = 0; k < 2 && seqs[k]; k++) {
        if (k) ids[n++] = 2;
        for (size_t i = 0; i < json_array_size(seqs[k]) && n + 2 < cap; i++) {
            json_int_t v = json_integer_value(json_array_get(seqs[k], i));
            ids[n++] = v == 0 ? 3 : (int32_t)v + 1;
        }
        ids[n++] = 2;
    }
    return n;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* Under the sanitizers the corpus tests take every CORPUS_STEP-th line (the
 * optimised build checks all of them): the suite's time budget. */
#define CORPUS_STEP (SANITIZED ? 4 : 1)

enum { PATH_HF, PATH_HF_LEGACY, PATH_SPM };
static const char *PATH_NAMES[] = {"tokenizer.json (current converter)", "tokenizer.json (legacy converter)",
                                   "sentencepiece.bpe.model only"};

/* Every corpus line of a model (and the first 500 pairs) through
 * se_tokenize on a folder that holds only the files of one path, against
 * that path's own reference: Hugging Face tokenizers for tokenizer.json
 * (hf_ids / hf_legacy_ids, hf_pair_ids / hf_legacy_pair_ids),
 * python3-sentencepiece plus the fairseq offset for the .model. On the
 * lines of disagreements_<model>.jsonl the path must follow its own
 * reference: the test prints, per kind, on how many of them it therefore
 * differs from the other reference. */
static void tokenize_corpus(const char *model, int kind) {
    char dir[] = "/tmp/sembed_spm_XXXXXX", src[256];
    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    if (kind == PATH_SPM) {
        snprintf(src, sizeof src, FIX "%s.model", model);
        CHECK(copy_to(src, dir, "sentencepiece.bpe.model"));
        CHECK(copy_to("tests/fixtures/models/xlmr-cls-norm-bin/tokenizer_config.json", dir, "tokenizer_config.json"));
    } else {
        snprintf(src, sizeof src, FIX "%s.%s.tokenizer.json", model, kind == PATH_HF ? "xlmr" : "xlmr-legacy");
        CHECK(copy_to(src, dir, "tokenizer.json"));
    }
    se_tokenizer *tok = NULL;
    se_error err = {0};
    CHECK_MSG(se_tokenizer_load(dir, &tok, &err) == SE_OK, "%s %s: %s", model, PATH_NAMES[kind], err.msg);
    json_t **corpus, **exp, **dis;
    char path[256];
    snprintf(path, sizeof path, FIX "expected_%s.jsonl.gz", model);
    size_t nc = load_jsonl(FIX "corpus.jsonl.gz", &corpus), ne = load_jsonl(path, &exp);
    snprintf(path, sizeof path, FIX "disagreements_%s.jsonl", model);
    size_t nd = load_jsonl(path, &dis);
    CHECK(nc >= 11000 && nc == ne && nd > 0);
    static int32_t got[70000], want[70000], other[70000];
    se_tokenize_params p = tok ? se_tokenize_default_params(tok) : (se_tokenize_params){.n_tokens_max = 0, .add_special = true};
    p.n_tokens_max = 0;
    size_t bad = 0, bad_pairs = 0, n_pairs = 0, n_ids = 0;
    double t_tok = 0;
    const char *fid = kind == PATH_HF ? "hf_ids" : "hf_legacy_ids";
    const char *fpair = kind == PATH_HF ? "hf_pair_ids" : "hf_legacy_pair_ids";
    size_t n_lines = 0;
    for (size_t i = 0; tok && i < nc && i < ne; i += CORPUS_STEP) {
        n_lines++;
        const char *text = json_string_value(corpus[i]);
        size_t len = json_string_length(corpus[i]), n = 0, nw;
        nw = kind == PATH_SPM ? spm_expected(json_object_get(exp[i], "spm_ids"), NULL, want, 70000)
                              : json_ids(json_object_get(exp[i], fid), want, 70000);
        double t0 = now_s();
        se_status s = se_tokenize(tok, text, len, NULL, 0, &p, got, NULL, 70000, &n, NULL, &err);
        t_tok += now_s() - t0;
        n_ids += n;
        if (s != SE_OK || n != nw || memcmp(got, want, n * sizeof *got) != 0) {
            if (bad < 5)
                fprintf(stderr, "  %s %s line %zu: %s, %zu ids, want %zu\n", model, PATH_NAMES[kind], i,
                        s ? err.msg : "ids differ", n, nw);
            bad++;
        }
        json_t *wp = json_object_get(exp[i], fpair);
        if (i + 1 < nc && (kind == PATH_SPM ? i < 500 : json_is_array(wp)) && (CORPUS_STEP == 1 || i % (2 * CORPUS_STEP) == 0)) {
            nw = kind == PATH_SPM ? spm_expected(json_object_get(exp[i], "spm_ids"), json_object_get(exp[i + 1], "spm_ids"), want, 70000)
                                  : json_ids(wp, want, 70000);
            s = se_tokenize(tok, text, len, json_string_value(corpus[i + 1]), json_string_length(corpus[i + 1]), &p, got,
                            NULL, 70000, &n, NULL, &err);
            n_pairs++;
            if (s != SE_OK || n != nw || memcmp(got, want, n * sizeof *got) != 0) {
                if (bad_pairs < 5) fprintf(stderr, "  %s %s pair %zu: %zu ids, want %zu\n", model, PATH_NAMES[kind], i, n, nw);
                bad_pairs++;
            }
        }
    }
    /* the disagreement lines: each one follows this path's reference (checked
     * above); count where that makes it differ from the other reference */
    const char *kinds[] = {"charsmap", "whitespace", "literal_u2581", "added_token", "segmentation", "other"};
    size_t per_kind[6] = {0}, differ = 0;
    for (size_t d = 0; tok && d < nd; d++) {
        size_t line = (size_t)json_integer_value(json_object_get(dis[d], "line"));
        if (line >= ne) continue;
        size_t no = kind == PATH_SPM ? json_ids(json_object_get(exp[line], "hf_ids"), other, 70000)
                                     : spm_expected(json_object_get(exp[line], "spm_ids"), NULL, other, 70000);
        size_t n = 0;
        se_tokenize(tok, json_string_value(corpus[line]), json_string_length(corpus[line]), NULL, 0, &p, got, NULL, 70000,
                    &n, NULL, &err);
        if (n == no && memcmp(got, other, n * sizeof *got) == 0) continue;
        differ++;
        const char *k = json_string_value(json_object_get(dis[d], "kind"));
        size_t ki = 5;
        for (size_t j = 0; k && j < 5; j++)
            if (strcmp(k, kinds[j]) == 0) ki = j;
        per_kind[ki]++;
    }
    printf("  %s, %s: %zu lines, %zu mismatches; %zu pairs, %zu mismatches; %.0f tokens/s\n", model, PATH_NAMES[kind], n_lines,
           bad, n_pairs, bad_pairs, t_tok > 0 ? (double)n_ids / t_tok : 0.0);
    printf("    follows %s; differs from %s on %zu of the %zu disagreement lines (charsmap %zu, whitespace %zu, "
           "literal_u2581 %zu, added_token %zu, segmentation %zu, other %zu)\n",
           kind == PATH_SPM ? "python3-sentencepiece" : "Hugging Face tokenizers",
           kind == PATH_SPM ? "tokenizers' current tokenizer.json" : "python3-sentencepiece", differ, nd, per_kind[0],
           per_kind[1], per_kind[2], per_kind[3], per_kind[4], per_kind[5]);
    CHECK_MSG(bad == 0 && bad_pairs == 0, "%s %s: %zu lines and %zu pairs differ", model, PATH_NAMES[kind], bad, bad_pairs);
    CHECK(n_lines * CORPUS_STEP >= nc && n_pairs >= (SANITIZED ? 60 : 499));
    free_jsonl(corpus, nc);
    free_jsonl(exp, ne);
    free_jsonl(dis, nd);
    se_tokenizer_free(tok);
    remove_dir(dir);
}

/* Acceptance (issue 10): 0 mismatches on the 11,000-line corpus, for both
 * models and every path. */
TEST(test_spm_tokenize_corpus_hf) {
    for (size_t k = 0; k < 2; k++) tokenize_corpus(MODELS[k], PATH_HF);
}

TEST(test_spm_tokenize_corpus_hf_legacy) {
    for (size_t k = 0; k < 2; k++) tokenize_corpus(MODELS[k], PATH_HF_LEGACY);
}

TEST(test_spm_tokenize_corpus_model_only) {
    for (size_t k = 0; k < 2; k++) tokenize_corpus(MODELS[k], PATH_SPM);
}

/* tokenizer.json variants of the XLM-R file (variants.jsonl, written by
 * tools/gen_sentencepiece_variants.py from the real Hugging Face library):
 * prepend_scheme first / never / the legacy add_prefix_space, split false,
 * NFKC and Strip, no normalizer, byte_fallback, RobertaProcessing, an
 * added token with rstrip, an added token beyond the vocabulary. Each is
 * built here as the generator built it and must give the library's ids. */
TEST(test_spm_tokenizer_json_variants) {
    json_t **v;
    size_t nv = load_jsonl(FIX "variants.jsonl", &v);
    CHECK(nv >= 13);
    json_error_t je;
    for (size_t k = 1; k < nv; k++) {
        const char *name = json_string_value(json_object_get(v[k], "name"));
        json_t *t = json_load_file(FIX "test_model.xlmr.tokenizer.json", 0, &je);
        CHECK(t != NULL);
        if (!t) continue;
        const char *key;
        json_t *val;
        json_object_foreach(json_object_get(v[k], "set"), key, val) json_object_set(t, key, val);
        if (json_is_true(json_object_get(v[k], "byte_pieces"))) {
            json_t *model = json_object_get(t, "model"), *vocab = json_object_get(model, "vocab");
            for (int b = 0; b < 256; b++) {
                char piece[8];
                snprintf(piece, sizeof piece, "<0x%02X>", b);
                json_array_append_new(vocab, json_pack("[sf]", piece, -20.0));
            }
            json_object_set_new(model, "byte_fallback", json_true());
        }
        char dir[] = "/tmp/sembed_spmv_XXXXXX", path[300];
        CHECK(mkdtemp(dir) != NULL);
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        CHECK(json_dump_file(t, path, 0) == 0);
        json_decref(t);
        se_tokenizer *tok = NULL;
        se_error err = {0};
        CHECK_MSG(se_tokenizer_load(dir, &tok, &err) == SE_OK, "%s: %s", name, err.msg);
        size_t i, bad = 0, n_cases = 0;
        json_t *c;
        json_array_foreach(json_object_get(v[k], "cases"), i, c) {
            if (!tok) break;
            json_t *text = json_object_get(c, "text"), *pair = json_object_get(c, "pair");
            int32_t want[256], got[256];
            size_t nw = json_ids(json_object_get(c, "ids"), want, 256), n = 0;
            se_tokenize_params p = se_tokenize_default_params(tok);
            p.n_tokens_max = 0;
            se_status st = se_tokenize(tok, json_string_value(text), json_string_length(text),
                                       json_is_string(pair) ? json_string_value(pair) : NULL,
                                       json_is_string(pair) ? json_string_length(pair) : 0, &p, got, NULL, 256, &n, NULL, &err);
            n_cases++;
            if (st != SE_OK || n != nw || memcmp(got, want, n * sizeof *got) != 0) {
                if (bad++ < 3) {
                    fprintf(stderr, "  %s: '%s'%s: got", name, json_string_value(text), json_is_string(pair) ? " (pair)" : "");
                    for (size_t j = 0; j < n && j < 24; j++) fprintf(stderr, " %d", got[j]);
                    fprintf(stderr, "; want");
                    for (size_t j = 0; j < nw && j < 24; j++) fprintf(stderr, " %d", want[j]);
                    fprintf(stderr, "%s\n", st ? err.msg : "");
                }
            }
        }
        CHECK_MSG(bad == 0 && n_cases > 30, "variant %s: %zu of %zu cases differ", name, bad, n_cases);
        se_tokenizer_free(tok);
        remove_dir(dir);
    }
    free_jsonl(v, nv);
}

/* Long texts (60 KB, long_<model>.jsonl.gz): the tokenizer normalises
 * them in chunks cut between two ASCII letters or digits, which must give
 * the whole-text references' ids on every path. */
TEST(test_spm_long_texts_chunked) {
    static int32_t got[70000], want[70000];
    for (size_t k = 0; k < 2; k++) {
        char path[256];
        snprintf(path, sizeof path, FIX "long_%s.jsonl.gz", MODELS[k]);
        json_t **recs;
        size_t nr = load_jsonl(path, &recs);
        CHECK(nr == 3);
        for (int kind = 0; kind < 3; kind++) {
            char dir[] = "/tmp/sembed_spml_XXXXXX", src[256];
            CHECK(mkdtemp(dir) != NULL);
            if (kind == PATH_SPM) {
                snprintf(src, sizeof src, FIX "%s.model", MODELS[k]);
                CHECK(copy_to(src, dir, "sentencepiece.bpe.model"));
            } else {
                snprintf(src, sizeof src, FIX "%s.%s.tokenizer.json", MODELS[k], kind == PATH_HF ? "xlmr" : "xlmr-legacy");
                CHECK(copy_to(src, dir, "tokenizer.json"));
            }
            se_tokenizer *tok = NULL;
            se_error err = {0};
            CHECK(se_tokenizer_load(dir, &tok, &err) == SE_OK);
            for (size_t i = 0; tok && i < nr; i++) {
                json_t *t = json_object_get(recs[i], "text");
                size_t nw = kind == PATH_SPM ? spm_expected(json_object_get(recs[i], "spm_ids"), NULL, want, 70000)
                                             : json_ids(json_object_get(recs[i], kind == PATH_HF ? "hf_ids" : "hf_legacy_ids"),
                                                        want, 70000);
                se_tokenize_params p = se_tokenize_default_params(tok);
                p.n_tokens_max = 0;
                size_t n = 0;
                se_status st = se_tokenize(tok, json_string_value(t), json_string_length(t), NULL, 0, &p, got, NULL, 70000, &n,
                                           NULL, &err);
                size_t first = 0;
                while (first < n && first < nw && got[first] == want[first]) first++;
                CHECK_MSG(st == SE_OK && n == nw && first == n, "%s %s long text %zu (%zu bytes): %zu ids, want %zu, first difference at %zu",
                          MODELS[k], PATH_NAMES[kind], i, json_string_length(t), n, nw, first);
                /* truncated to 200: the first 199 ids and </s> */
                p.n_tokens_max = 200;
                st = se_tokenize(tok, json_string_value(t), json_string_length(t), NULL, 0, &p, got, NULL, 70000, &n, NULL, &err);
                CHECK(st == SE_OK && n == 200 && memcmp(got, want, 199 * sizeof *got) == 0 && got[199] == 2);
            }
            se_tokenizer_free(tok);
            remove_dir(dir);
        }
        free_jsonl(recs, nr);
    }
}

/* Loads the current XLM-R tokenizer.json of test_model with one change
 * (edit, applied to the parsed file) from a temp folder; returns the
 * status, the message in err. */
static se_status load_edited(void (*edit)(json_t *), se_error *err) {
    json_error_t je;
    json_t *t = json_load_file(FIX "test_model.xlmr.tokenizer.json", 0, &je);
    if (!t) return SE_E_IO;
    edit(t);
    char dir[] = "/tmp/sembed_spmb_XXXXXX", path[300];
    if (!mkdtemp(dir)) return SE_E_IO;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    json_dump_file(t, path, 0);
    json_decref(t);
    se_tokenizer *tok = NULL;
    se_status s = se_tokenizer_load(dir, &tok, err);
    if (s != SE_OK && tok) s = SE_E_INTERNAL; /* a failed load must not return a tokenizer */
    se_tokenizer_free(tok);
    remove_dir(dir);
    return s;
}

static json_t *norm_item(json_t *t, size_t i) { return json_array_get(json_object_get(json_object_get(t, "normalizer"), "normalizers"), i); }
static void edit_bad_base64(json_t *t) { json_object_set_new(norm_item(t, 0), "precompiled_charsmap", json_string("AB$$")); }
static void edit_bad_trie(json_t *t) { json_object_set_new(norm_item(t, 0), "precompiled_charsmap", json_string("BQAAAAAAAAAA")); }
static void edit_short_charsmap(json_t *t) { json_object_set_new(norm_item(t, 0), "precompiled_charsmap", json_string("AQI=")); }
static void edit_trie_outside(json_t *t) { json_object_set_new(norm_item(t, 0), "precompiled_charsmap", json_string("QAAAAAAA")); }
static void edit_unknown_norm(json_t *t) {
    json_array_append_new(json_object_get(json_object_get(t, "normalizer"), "normalizers"), json_pack("{s:s}", "type", "Lowercase"));
}
static void edit_other_replace(json_t *t) { json_object_set_new(json_object_get(norm_item(t, 2), "pattern"), "Regex", json_string("\\s+")); }
static void edit_unknown_pre(json_t *t) { json_object_set_new(t, "pre_tokenizer", json_pack("{s:s}", "type", "Whitespace")); }
static void edit_bad_scheme(json_t *t) { json_object_set_new(json_object_get(t, "pre_tokenizer"), "prepend_scheme", json_string("sometimes")); }
static void edit_unknown_post(json_t *t) { json_object_set_new(t, "post_processor", json_pack("{s:s}", "type", "ByteLevel")); }
static void edit_byte_fallback(json_t *t) { json_object_set_new(json_object_get(t, "model"), "byte_fallback", json_true()); }
static void edit_unk_range(json_t *t) { json_object_set_new(json_object_get(t, "model"), "unk_id", json_integer(5000)); }
static void edit_unk_negative(json_t *t) { json_object_set_new(json_object_get(t, "model"), "unk_id", json_integer(-2)); }
static void edit_nested_seq(json_t *t) {
    json_array_append_new(json_object_get(json_object_get(t, "normalizer"), "normalizers"),
                          json_pack("{s:s,s:[]}", "type", "Sequence", "normalizers"));
}

/* Issue 10, bad input: each broken XLM-R tokenizer.json or
 * sentencepiece.bpe.model is refused with the right status and a message
 * naming the file and the field; nothing crashes or leaks (ASan). */
TEST(test_spm_tokenizer_bad_input) {
    struct {
        void (*edit)(json_t *);
        se_status want;
        const char *needle1, *needle2;
    } cases[] = {
        {edit_bad_base64, SE_E_FORMAT, "normalizer.normalizers[0].precompiled_charsmap", "base64"},
        {edit_bad_trie, SE_E_FORMAT, "normalizers[0].precompiled_charsmap", "multiple of 4"},
        {edit_short_charsmap, SE_E_FORMAT, "normalizers[0].precompiled_charsmap", "too short"},
        {edit_trie_outside, SE_E_FORMAT, "normalizers[0].precompiled_charsmap", "exceeds"},
        {edit_unknown_norm, SE_E_UNSUPPORTED, "normalizer.normalizers[3]", "'Lowercase'"},
        {edit_other_replace, SE_E_UNSUPPORTED, "normalizer.normalizers[2]", "Replace"},
        {edit_unknown_pre, SE_E_UNSUPPORTED, "pre_tokenizer", "'Whitespace'"},
        {edit_bad_scheme, SE_E_FORMAT, "prepend_scheme", "'sometimes'"},
        {edit_unknown_post, SE_E_UNSUPPORTED, "post_processor", "'ByteLevel'"},
        {edit_byte_fallback, SE_E_FORMAT, "model.byte_fallback", "'<0x00>'"},
        {edit_unk_range, SE_E_FORMAT, "'unk_id' = 5000", "[0, 1001]"},
        {edit_unk_negative, SE_E_FORMAT, "'unk_id' = -2", "[0, 1001]"},
        {edit_nested_seq, SE_E_FORMAT, "normalizers[3]", "Sequence"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        se_error err = {0};
        se_status s = load_edited(cases[i].edit, &err);
        CHECK_MSG(s == cases[i].want && strstr(err.msg, "tokenizer.json") && strstr(err.msg, cases[i].needle1) &&
                      strstr(err.msg, cases[i].needle2),
                  "case %zu: %s: %s", i, se_status_str(s), err.msg);
    }
    /* a truncated sentencepiece.bpe.model, at several lengths */
    size_t n;
    uint8_t *model = read_file(FIX "test_model.model", &n);
    CHECK(model != NULL);
    size_t cuts[] = {0, 1, 7, 100, 4000, n / 2, n - 1};
    for (size_t i = 0; model && i < sizeof cuts / sizeof *cuts; i++) {
        char dir[] = "/tmp/sembed_spmt_XXXXXX", path[300];
        CHECK(mkdtemp(dir) != NULL);
        snprintf(path, sizeof path, "%s/sentencepiece.bpe.model", dir);
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(model, 1, cuts[i], f) == cuts[i]);
        if (f) fclose(f);
        se_tokenizer *tok = NULL;
        se_error err = {0};
        se_status s = se_tokenizer_load(dir, &tok, &err);
        CHECK_MSG(s != SE_OK && tok == NULL && strstr(err.msg, "sentencepiece.bpe.model"), "cut at %zu: %s: %s", cuts[i],
                  se_status_str(s), err.msg);
        se_tokenizer_free(tok);
        remove_dir(dir);
    }
    /* a .model under another tokenizer class (CamembertTokenizer has its own id layout) */
    char dir[] = "/tmp/sembed_spmc_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK(copy_to(FIX "test_model.model", dir, "sentencepiece.bpe.model"));
    char path[300];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("{\"tokenizer_class\": \"CamembertTokenizer\"}", f);
        fclose(f);
    }
    se_tokenizer *tok = NULL;
    se_error err = {0};
    CHECK_MSG(se_tokenizer_load(dir, &tok, &err) == SE_E_UNSUPPORTED && strstr(err.msg, "CamembertTokenizer") && !tok, "%s",
              err.msg);
    remove_dir(dir);
    free(model);
}

/* se_tokenizer_describe on the three XLM-R paths, and what it says of a
 * WordPiece folder. */
TEST(test_tokenizer_describe) {
    struct {
        const char *dir, *model, *source, *normalizer, *pre, *post;
        bool bf;
    } want[] = {
        {"tests/fixtures/models/xlmr-cls-norm-bin", "Unigram", "tokenizer.json", "Precompiled, Strip(right), Replace",
         "Metaspace", "<s> A </s> / <s> A </s></s> B </s>", false},
        {"tests/fixtures/models/xlmr-mean-norm-bf16", "Unigram", "tokenizer.json", "Precompiled, Replace", "Metaspace",
         "<s> A </s> / <s> A </s></s> B </s>", false},
        {"tests/fixtures/tokenizers/bert-base-uncased", "WordPiece", "vocab.txt", "BertNormalizer lowercase strip_accents",
         "BertPreTokenizer", "[CLS] A [SEP] / [CLS] A [SEP] B [SEP]", false},
        {"models/use-lite", "Unigram", "tokenizer.json", "NFKC", "Metaspace", "A / A B", false},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        se_tokenizer *tok = NULL;
        se_error err = {0};
        se_tokenizer_info info;
        CHECK_MSG(se_tokenizer_load(want[i].dir, &tok, &err) == SE_OK, "%s: %s", want[i].dir, err.msg);
        if (!tok) continue;
        CHECK(se_tokenizer_describe(tok, &info, &err) == SE_OK);
        CHECK_MSG(strcmp(info.model, want[i].model) == 0 && strcmp(info.source, want[i].source) == 0 &&
                      strcmp(info.normalizer, want[i].normalizer) == 0 && strcmp(info.pre_tokenizer, want[i].pre) == 0 &&
                      strcmp(info.post_processor, want[i].post) == 0 && info.byte_fallback == want[i].bf,
                  "%s: %s | %s | %s | %s | %s", want[i].dir, info.model, info.source, info.normalizer, info.pre_tokenizer,
                  info.post_processor);
        se_tokenizer_free(tok);
    }
    /* the .model path */
    char dir[] = "/tmp/sembed_spmd_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK(copy_to(FIX "test_model.model", dir, "sentencepiece.bpe.model"));
    se_tokenizer *tok = NULL;
    se_error err = {0};
    se_tokenizer_info info;
    CHECK(se_tokenizer_load(dir, &tok, &err) == SE_OK && se_tokenizer_describe(tok, &info, &err) == SE_OK);
    if (tok)
        CHECK_MSG(strcmp(info.source, "sentencepiece.bpe.model") == 0 && strcmp(info.normalizer, "sentencepiece nfkc") == 0 &&
                      strcmp(info.pre_tokenizer, "") == 0 && se_tokenizer_n_vocab(tok) == 1002 && se_tokenizer_unk_id(tok) == 3 &&
                      strcmp(se_tokenizer_piece(tok, 1001), "<mask>") == 0,
                  "%s | %s", info.normalizer, info.pre_tokenizer);
    CHECK(se_tokenizer_describe(NULL, &info, &err) == SE_E_INVALID);
    se_tokenizer_free(tok);
    remove_dir(dir);
}

int main(void) {
    RUN(test_spm_model_matches_sentencepiece);
    RUN(test_spm_tiny_model);
    RUN(test_spm_fairseq_ids_match_tokenizers);
    RUN(test_spm_truncated);
    RUN(test_spm_corrupt_fields);
    RUN(test_spm_bad_charsmap);
    RUN(test_spm_oom);
    RUN(test_spm_missing_file);
    RUN(test_precompiled_variants_differ);
    RUN(test_precompiled_handmade_trie);
    RUN(test_precompiled_nul_key_validated);
    RUN(test_spm_normalize_matches_sentencepiece);
    RUN(test_precompiled_hf_matches_tokenizers);
    RUN(test_spm_tokenize_corpus_hf);
    RUN(test_spm_tokenize_corpus_hf_legacy);
    RUN(test_spm_tokenize_corpus_model_only);
    RUN(test_spm_tokenizer_json_variants);
    RUN(test_spm_long_texts_chunked);
    RUN(test_spm_tokenizer_bad_input);
    RUN(test_tokenizer_describe);
    return test_report("test_sentencepiece");
}
