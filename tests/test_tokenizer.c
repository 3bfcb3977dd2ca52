/*
 * test_tokenizer.c - the WordPiece tokenizer against real expected ids.
 *
 *   - tests/fixtures/tokenizers/tokenizer-cases.jsonl: 81 tokenizations by
 *     Hugging Face tokenizers (bert-base-uncased, bge-small/base-zh-v1.5,
 *     all-mpnet-base-v2), through vocab.txt folders, and the
 *     bert-base-uncased cases again through a real tokenizer.json;
 *   - tests/fixtures/models/pair-cases.jsonl: pairs with longest_first
 *     truncation (from tools/gen_fixtures.py);
 *   - the same cases from 4 threads at once on shared tokenizers;
 *   - the buffer protocol, pieces, and broken tokenizer files.
 */
#include <jansson.h>
#include <pthread.h>

#include "sembed.h"
#include "test.h"

#define TOKDIR "tests/fixtures/tokenizers/"

typedef struct tcase {
    char *dir, *text, *pair;
    size_t text_len, pair_len;
    int32_t ids[512], types[512];
    size_t n, max_len;
    bool has_types, truncated;
} tcase;

static tcase *cases;
static size_t n_cases;

/* Loads a JSONL case file; dir_of maps a case to its tokenizer folder. */
static void load_cases(const char *path, bool pairs) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *j = json_loads(line, JSON_ALLOW_NUL, &je);
        if (!j) exit(1);
        cases = realloc(cases, (n_cases + 2) * sizeof *cases);
        tcase *c = &cases[n_cases];
        memset(c, 0, sizeof *c);
        const char *model = json_string_value(json_object_get(j, "model"));
        char dir[256];
        if (pairs) /* pair cases name the fixture model whose tokenizer they use */
            snprintf(dir, sizeof dir, "tests/fixtures/models/%s", model);
        else
            snprintf(dir, sizeof dir, TOKDIR "%s", model);
        c->dir = strdup(dir);
        json_t *t = json_object_get(j, "text"), *p = json_object_get(j, "text_pair");
        c->text_len = json_string_length(t);
        c->text = malloc(c->text_len + 1);
        memcpy(c->text, json_string_value(t), c->text_len + 1);
        c->pair = json_is_string(p) ? strdup(json_string_value(p)) : NULL;
        c->pair_len = c->pair ? strlen(c->pair) : 0;
        json_t *ids = json_object_get(j, "ids"), *tt = json_object_get(j, "token_type_ids");
        c->n = json_array_size(ids);
        for (size_t i = 0; i < c->n && i < 512; i++) c->ids[i] = (int32_t)json_integer_value(json_array_get(ids, i));
        c->has_types = json_is_array(tt);
        for (size_t i = 0; c->has_types && i < c->n && i < 512; i++)
            c->types[i] = (int32_t)json_integer_value(json_array_get(tt, i));
        c->max_len = (size_t)json_integer_value(json_object_get(j, "max_length"));
        c->truncated = json_is_true(json_object_get(j, "truncated"));
        n_cases++;
        /* the bert-base-uncased cases also go through a real tokenizer.json */
        if (!pairs && strcmp(model, "bert-base-uncased") == 0) {
            tcase *d = &cases[n_cases++];
            *d = *c;
            d->dir = strdup("tests/fixtures/models/en-mean-norm");
            d->text = malloc(c->text_len + 1);
            memcpy(d->text, c->text, c->text_len + 1);
            d->pair = c->pair ? strdup(c->pair) : NULL;
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
}

/* A small cache of loaded tokenizers by folder. */
static struct {
    char *dir;
    se_tokenizer *tok;
} toks[16];

static se_tokenizer *tokenizer_for(const char *dir) {
    for (int i = 0; i < 16; i++) {
        if (toks[i].dir && strcmp(toks[i].dir, dir) == 0) return toks[i].tok;
        if (!toks[i].dir) {
            se_error err;
            if (se_tokenizer_load(dir, &toks[i].tok, &err) != SE_OK) {
                fprintf(stderr, "  load %s: %s\n", dir, err.msg);
                return NULL;
            }
            toks[i].dir = strdup(dir);
            return toks[i].tok;
        }
    }
    return NULL;
}

/* Runs every case once; returns the number of mismatches (prints them
 * when verbose). */
static int run_cases(bool verbose) {
    int bad = 0;
    for (size_t k = 0; k < n_cases; k++) {
        tcase *c = &cases[k];
        se_tokenizer *tok = tokenizer_for(c->dir);
        if (!tok) {
            bad++;
            continue;
        }
        se_tokenize_params p = se_tokenize_default_params(tok);
        p.n_tokens_max = c->max_len; /* 0 for the shared cases: no truncation */
        int32_t ids[600], types[600];
        size_t n = 0;
        bool trunc;
        se_error err;
        se_status s = se_tokenize(tok, c->text, c->text_len, c->pair, c->pair_len, &p, ids, types,
                                  600, &n, &trunc, &err);
        bool ok = s == SE_OK && n == c->n && memcmp(ids, c->ids, n * sizeof *ids) == 0;
        if (ok && c->has_types) ok = memcmp(types, c->types, n * sizeof *types) == 0 && trunc == c->truncated;
        if (!ok) {
            bad++;
            if (verbose) {
                fprintf(stderr, "  mismatch (%s) '%s' | '%s': got", c->dir, c->text, c->pair ? c->pair : "");
                for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
                fprintf(stderr, "\n    expected");
                for (size_t i = 0; i < c->n && i < 40; i++) fprintf(stderr, " %d", c->ids[i]);
                fputc('\n', stderr);
            }
        }
    }
    return bad;
}

TEST(expected_ids) {
    int bad = run_cases(true);
    printf("  %zu tokenizer cases, %d mismatches\n", n_cases, bad);
    CHECK(bad == 0);
    CHECK(n_cases >= 81 + 30 + 20);
}

static void *case_thread(void *arg) {
    int *bad = arg;
    for (int rep = 0; rep < 3; rep++) *bad += run_cases(false);
    return NULL;
}

/* The same tokenizers used from 4 threads at once give the same ids. */
TEST(threads) {
    pthread_t th[4];
    int bad[4] = {0};
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, case_thread, &bad[i]);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) CHECK(bad[i] == 0);
}

TEST(api_details) {
    se_tokenizer *tok = tokenizer_for(TOKDIR "bert-base-uncased");
    if (!tok) {
        CHECK(0);
        return;
    }
    CHECK(se_tokenizer_n_vocab(tok) == 30522);
    CHECK(se_tokenizer_n_tokens_max(tok) == 512); /* model_max_length, no sentence_bert_config.json */
    CHECK(!strcmp(se_tokenizer_piece(tok, 101), "[CLS]") && !strcmp(se_tokenizer_piece(tok, 2129), "how"));
    CHECK(se_tokenizer_piece(tok, 30522) == NULL && se_tokenizer_piece(tok, -1) == NULL);
    /* buffer protocol: too small -> SE_E_BUFFER and the needed count */
    int32_t ids[4];
    size_t n = 0;
    se_error err;
    const char *t = "how are you doing today";
    CHECK(se_tokenize(tok, t, strlen(t), NULL, 0, NULL, ids, NULL, 4, &n, NULL, &err) == SE_E_BUFFER && n == 7);
    /* truncation and no specials */
    se_tokenize_params p = se_tokenize_default_params(tok);
    p.n_tokens_max = 4;
    bool trunc = false;
    CHECK(se_tokenize(tok, t, strlen(t), NULL, 0, &p, ids, NULL, 4, &n, &trunc, &err) == SE_OK && n == 4 && trunc);
    CHECK(ids[0] == 101 && ids[1] == 2129 && ids[2] == 2024 && ids[3] == 102);
    p.add_special = false;
    CHECK(se_tokenize(tok, t, strlen(t), NULL, 0, &p, ids, NULL, 4, &n, &trunc, &err) == SE_OK && n == 4 && trunc);
    CHECK(ids[0] == 2129 && ids[3] == 2725);
    /* invalid UTF-8 names the byte; a lone continuation byte too */
    CHECK(se_tokenize(tok, "ab\xFF", 3, NULL, 0, NULL, ids, NULL, 4, &n, NULL, &err) == SE_E_UTF8 && strstr(err.msg, "byte 2"));
    CHECK(se_tokenize(tok, "\x80", 1, NULL, 0, NULL, ids, NULL, 4, &n, NULL, &err) == SE_E_UTF8);
    CHECK(se_tokenize(tok, "a", 1, "\xC3", 1, NULL, ids, NULL, 4, &n, NULL, &err) == SE_E_UTF8 && strstr(err.msg, "text_pair"));
    /* invalid UTF-8 past the truncation point is still an error */
    const char *late = "a b c d e f g h i j k l m n o p q r s t \xFF";
    se_tokenize_params p16 = se_tokenize_default_params(tok);
    p16.n_tokens_max = 16;
    int32_t many[32];
    CHECK(se_tokenize(tok, late, strlen(late), NULL, 0, &p16, many, NULL, 32, &n, NULL, &err) == SE_E_UTF8);
    /* empty text: [CLS] [SEP]; a word of 101 characters: [UNK] */
    CHECK(se_tokenize(tok, "", 0, NULL, 0, NULL, ids, NULL, 4, &n, NULL, &err) == SE_OK && n == 2);
    char longw[102];
    memset(longw, 'a', 101);
    longw[101] = 0;
    CHECK(se_tokenize(tok, longw, 101, NULL, 0, NULL, ids, NULL, 4, &n, NULL, &err) == SE_OK && n == 3 && ids[1] == 100);
    /* the special-token literals in text map to their ids */
    const char *sp = "[CLS] x [MASK]";
    int32_t big[16];
    CHECK(se_tokenize(tok, sp, strlen(sp), NULL, 0, NULL, big, NULL, 16, &n, NULL, &err) == SE_OK && n == 5);
    CHECK(big[1] == 101 && big[3] == 103);
    /* turkish dotted I lowercases to i + U+0307, whose mark is stripped */
    const char *tr = "\xC4\xB0stanbul";
    CHECK(se_tokenize(tok, tr, strlen(tr), NULL, 0, NULL, big, NULL, 16, &n, NULL, &err) == SE_OK);
    CHECK(n == 3 && big[1] == 9960); /* "istanbul" */
    CHECK(se_tokenize(NULL, "a", 1, NULL, 0, NULL, ids, NULL, 4, &n, NULL, &err) == SE_E_INVALID);
}

/* Writes text to dir/name. */
static void write_file(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

/* Broken tokenizer files give clear errors. */
TEST(broken_files) {
    char dir[] = "/tmp/sembed_tok_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    struct {
        const char *file, *text;
        se_status want;
        const char *needle;
    } bad[] = {
        {"tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", SE_E_UNSUPPORTED, "BPE"},
        {"tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": []}}", SE_E_FORMAT, "model.vocab"},
        {"tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": -1}}}", SE_E_FORMAT, "'a'"},
        {"tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0, \"b\": 0}}}", SE_E_FORMAT, "id 0"},
        {"tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0, \"[UNK]\": 1}}, \"normalizer\": {\"type\": \"NFKC\"}}",
         SE_E_UNSUPPORTED, "NFKC"},
        {"tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0, \"[UNK]\": 1}}, \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"[X]\"}}], \"pair\": []}}",
         SE_E_FORMAT, "[X]"},
        {"tokenizer.json", "{\"model\": {\"type\": \"WordPiece\",\n \"vocab\": {\"a\": 0,}}}", SE_E_FORMAT, "tokenizer.json:2:"},
        {"tokenizer.json", "{}", SE_E_FORMAT, "model"},
        {"vocab.txt", "[PAD]\n[UNK]\n\xFF\xFE\n", SE_E_FORMAT, "vocab.txt:3"},
        {"vocab.txt", "", SE_E_FORMAT, "empty"},
        {"vocab.txt", "[UNK]\nhello\n", SE_E_FORMAT, "[CLS]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -f %s/*", dir);
        if (system(cmd) != 0) CHECK(0);
        write_file(dir, bad[i].file, bad[i].text);
        se_tokenizer *tok = NULL;
        se_error err = {0};
        se_status s = se_tokenizer_load(dir, &tok, &err);
        CHECK_MSG(s == bad[i].want && tok == NULL && strstr(err.msg, bad[i].needle), "case %zu: %s: %s", i, se_status_str(s),
                  err.msg);
        se_tokenizer_free(tok);
    }
    /* tokenizer_config.json with AddedToken objects and a bad type */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -f %s/*", dir);
    if (system(cmd) != 0) CHECK(0);
    write_file(dir, "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n");
    write_file(dir, "tokenizer_config.json", "{\"do_lower_case\": \"yes\"}");
    se_tokenizer *tok = NULL;
    se_error err;
    CHECK(se_tokenizer_load(dir, &tok, &err) == SE_E_FORMAT && strstr(err.msg, "do_lower_case"));
    write_file(dir, "tokenizer_config.json",
               "{\"cls_token\": {\"__type\": \"AddedToken\", \"content\": \"[CLS]\"}, \"model_max_length\": 1000000000000000019884624838656}");
    CHECK(se_tokenizer_load(dir, &tok, &err) == SE_OK);
    if (tok) {
        int32_t ids[8];
        size_t n;
        CHECK(se_tokenize(tok, "Hello", 5, NULL, 0, NULL, ids, NULL, 8, &n, NULL, &err) == SE_OK && n == 3 && ids[1] == 4);
        CHECK(se_tokenizer_n_tokens_max(tok) > 1000000); /* HF's "no limit" sentinel */
    }
    se_tokenizer_free(tok);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) CHECK(0);
    CHECK(se_tokenizer_load("/nonexistent", &tok, &err) == SE_E_IO);
}

int main(void) {
    load_cases(TOKDIR "tokenizer-cases.jsonl", false);
    load_cases("tests/fixtures/models/pair-cases.jsonl", true);
    RUN(expected_ids);
    RUN(threads);
    RUN(api_details);
    RUN(broken_files);
    for (int i = 0; i < 16; i++) {
        free(toks[i].dir);
        se_tokenizer_free(toks[i].tok);
    }
    for (size_t i = 0; i < n_cases; i++) free(cases[i].dir), free(cases[i].text), free(cases[i].pair);
    free(cases);
    return test_report("test_tokenizer");
}
