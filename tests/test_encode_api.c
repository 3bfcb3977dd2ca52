/*
 * test_encode_api.c - the encode calls beside se_encode: token embeddings
 * (se_encode_tokens, se_encode_ids_tokens), skipping the model's Normalize
 * (se_encode_params.skip_normalize) and tokenizing as se_encode does
 * (se_encode_tokenize, with se_encode_params.pool_starts for se_encode_ids).
 *
 * References: the PyTorch fixtures of tests/fixtures/models/ (last hidden
 * states, tools/gen_fixtures.py), their pre-Normalize outputs
 * (tests/fixtures/encode-api/prenorm.jsonl, tools/gen_prenorm_reference.py),
 * and USE lite's TF.js graph nodes (tests/fixtures/use-lite/
 * intermediates.jsonl: x2, the encoder's per-token output, and the tanh
 * layer before its normalisation). Tolerances as test_model and test_use:
 * hidden states atol 5e-5 + rtol 1e-4; USE lite 1e-5 of the tensor's scale.
 * The model folder of USE lite is models/use-lite (SE_USE_MODEL overrides).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "sembed.h"
#include "test.h"
#include "test_fixtures.h"
#include "test_json.h"

/* Every embedding fixture (the cross-encoders are refused separately). */
static const char *models[] = {"en-mean-norm",      "zh-cls-dense-f16",    "en-max-relu-bf16", "en-allpool-prompt",
                               "en-plain-hf",       "mpnet-mean-norm",     "mpnet-prefix-max-f16",
                               "xlmr-mean-norm-bf16", "xlmr-cls-norm-bin", "bert-xlmr-tok-f16"};
#define N_MODELS (sizeof models / sizeof *models)

static const char *use_dir;

/* The shared sentence set. */
static char **sentences;
static size_t n_sentences;

/* Reads tests/fixtures/models/sentences.jsonl. */
static void load_sentences(void) {
    sentences = fixture_sentences(&n_sentences);
}

/* Loads a model folder (a fixture name or a path with a '/'). */
static se_model *load(const char *name) {
    char dir[512];
    if (strchr(name, '/')) snprintf(dir, sizeof dir, "%s", name);
    else snprintf(dir, sizeof dir, FIX "%s", name);
    se_model *m = NULL;
    se_error err = {0};
    CHECK_MSG(se_model_load(dir, NULL, &m, &err) == SE_OK, "%s: %s", name, err.msg);
    return m;
}

/* A ctx with the given threads and token budget. */
static se_ctx *ctx_of(const se_model *m, int threads, int batch_tokens) {
    se_ctx_params cp = se_ctx_default_params();
    cp.n_threads = threads;
    cp.n_batch_tokens = batch_tokens;
    se_ctx *c = NULL;
    se_error err;
    CHECK(se_ctx_new(m, &cp, &c, &err) == SE_OK);
    return c;
}

/* The hidden size of m. */
static size_t hidden(const se_model *m) {
    se_model_info info;
    se_model_get_info(m, &info, NULL);
    return (size_t)info.n_embd;
}

/* ==== token embeddings ==== */

/* Every fixture's sentences in one se_encode_tokens call: each text's rows
 * equal the reference's last hidden states, n_tokens and the truncation
 * flags are the reference's; the same rows come from se_encode_ids_tokens
 * on the reference ids, from each text alone and from other batchings,
 * bit for bit. */
TEST(test_token_embeddings_reference) {
    for (size_t mi = 0; mi < N_MODELS; mi++) {
        json_t *hdr, *exp = load_expected(models[mi], &hdr);
        se_model *m = load(models[mi]);
        CHECK_MSG(exp && json_array_size(exp) == n_sentences, "%s: expected.jsonl", models[mi]);
        if (!m || !exp) {
            se_model_free(m);
            json_decref(exp), json_decref(hdr);
            continue;
        }
        size_t H = hidden(m), cap = n_sentences * 64 * H;
        se_encode_params ep = se_encode_default_params();
        ep.prompt_name = json_string_value(json_object_get(hdr, "prompt_name"));
        float *all = malloc(cap * sizeof *all), *one = malloc(64 * H * sizeof *one), *ids_out = malloc(cap * sizeof *ids_out);
        size_t *nt = calloc(n_sentences, sizeof *nt), n1;
        bool *cut = calloc(n_sentences, sizeof *cut), c1;
        se_error err = {0};
        se_ctx *ctx = ctx_of(m, 2, 0), *c1x = ctx_of(m, 1, 0);
        se_status s = se_encode_tokens(ctx, (const char *const *)sentences, NULL, n_sentences, &ep, all, cap, nt, cut, &err);
        CHECK_MSG(s == SE_OK, "%s: %s", models[mi], err.msg);
        int32_t **rids = calloc(n_sentences, sizeof *rids);
        size_t *rlens = calloc(n_sentences, sizeof *rlens), off = 0, worst_n = 0;
        double worst = 0;
        for (size_t i = 0; s == SE_OK && i < n_sentences; i++) {
            json_t *e = json_array_get(exp, i), *hs = json_object_get(e, "hidden_states");
            rids[i] = ints(json_object_get(e, "ids"), &rlens[i]);
            CHECK_MSG(nt[i] == rlens[i], "%s s%zu: %zu tokens, reference %zu", models[mi], i, nt[i], rlens[i]);
            CHECK_MSG(cut[i] == json_is_true(json_object_get(e, "truncated")), "%s s%zu: truncated flag", models[mi], i);
            size_t n;
            float *ref = floats(json_array_get(hs, json_array_size(hs) - 1), &n);
            char label[96];
            snprintf(label, sizeof label, "%s s%zu token embeddings", models[mi], i);
            CHECK(n == nt[i] * H);
            if (n == nt[i] * H) CHECK_CLOSE(all + off, ref, n, 5e-5, 1e-4, label);
            for (size_t k = 0; k < n && n == nt[i] * H; k++) worst = fmax(worst, fabs((double)all[off + k] - ref[k]));
            worst_n += n;
            free(ref);
            /* alone, on one thread */
            CHECK(se_encode_tokens(c1x, (const char *const *)&sentences[i], NULL, 1, &ep, one, 64 * H, &n1, &c1, &err) == SE_OK);
            CHECK_MSG(n1 == nt[i] && memcmp(one, all + off, n1 * H * sizeof *one) == 0, "%s s%zu: alone differs from batched",
                      models[mi], i);
            off += nt[i] * H;
        }
        /* the reference ids through se_encode_ids_tokens, one call, a small token budget */
        se_ctx *c2 = ctx_of(m, 3, 37);
        if (s == SE_OK) {
            CHECK(se_encode_ids_tokens(c2, (const int32_t *const *)rids, rlens, n_sentences, ids_out, cap, &err) == SE_OK);
            CHECK_MSG(memcmp(ids_out, all, off * sizeof *all) == 0, "%s: se_encode_ids_tokens differs from se_encode_tokens",
                      models[mi]);
        }
        printf("  %-20s %zu sentences, %zu values: max abs diff %.3g\n", models[mi], n_sentences, worst_n, worst);
        for (size_t i = 0; i < n_sentences; i++) free(rids[i]);
        free(rids), free(rlens), free(all), free(one), free(ids_out), free(nt), free(cut);
        se_ctx_free(c2);
        se_ctx_free(c1x);
        se_ctx_free(ctx);
        se_model_free(m);
        json_decref(exp), json_decref(hdr);
    }
}

/* Reads a JSONL file into an array (NULL when unreadable). */
static json_t *read_jsonl(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    json_t *arr = json_array();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)n, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
        if (j) json_array_append_new(arr, j);
    }
    free(line);
    fclose(f);
    return arr;
}

/* The TF.js reference values of a node (by the end of its name) for text. */
static float *use_node(json_t *inter, const char *text, const char *node_end, size_t *n) {
    for (size_t i = 0; i < json_array_size(inter); i++) {
        json_t *e = json_array_get(inter, i);
        const char *t = json_string_value(json_object_get(e, "text")), *node = json_string_value(json_object_get(e, "node"));
        size_t nl = strlen(node), sl = strlen(node_end);
        if (strcmp(t, text) == 0 && nl >= sl && strcmp(node + nl - sl, node_end) == 0)
            return floats(json_object_get(e, "values"), n);
    }
    *n = 0;
    return NULL;
}

/* Compares USE lite's values with the TF.js reference at test_use's bar:
 * 1e-5 of the tensor's largest magnitude, rtol 1e-4. */
static void use_close(const float *got, const float *ref, size_t n, const char *label) {
    double scale = 0;
    for (size_t j = 0; j < n; j++) scale = fmax(scale, fabs((double)ref[j]));
    CHECK_CLOSE(got, ref, n, 1e-5 * scale + 1e-6, 1e-4, label);
}

/* The texts of intermediates.jsonl (in its order, each once). */
static size_t use_texts(json_t *inter, const char **texts, size_t *lens, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(inter) && n < cap; i++) {
        json_t *t = json_object_get(json_array_get(inter, i), "text");
        if (n && strcmp(texts[n - 1], json_string_value(t)) == 0) continue;
        texts[n] = json_string_value(t), lens[n] = json_string_length(t), n++;
    }
    return n;
}

/* USE lite: its per-token encoder outputs are the TF.js graph's x2 (Layer_1
 * FFN output, what its mean pooling averages), for every reference text
 * (the 288-id paragraph clipped to 128); the empty text has no tokens. */
TEST(test_token_embeddings_use_lite) {
    json_t *inter = read_jsonl("tests/fixtures/use-lite/intermediates.jsonl");
    se_model *m = load(use_dir);
    CHECK(inter != NULL);
    if (!m || !inter) {
        se_model_free(m);
        json_decref(inter);
        return;
    }
    const char *texts[8];
    size_t lens[8], nt[8];
    bool cut[8];
    size_t n = use_texts(inter, texts, lens, 8), H = hidden(m), cap = n * 128 * H;
    CHECK(n == 4 && H == 512);
    float *out = malloc(cap * sizeof *out);
    se_error err = {0};
    se_ctx *ctx = ctx_of(m, 2, 0);
    CHECK_MSG(se_encode_tokens(ctx, texts, lens, n, NULL, out, cap, nt, cut, &err) == SE_OK, "%s", err.msg);
    size_t off = 0, compared = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nr;
        float *ref = use_node(inter, texts[i], "Layer_1/TransformerLayer/FFN/layer_postprocess/add", &nr);
        char label[96];
        snprintf(label, sizeof label, "USE lite x2 of '%.30s'", texts[i]);
        if (lens[i] == 0) {
            CHECK_MSG(nt[i] == 0, "the empty text has %zu tokens", nt[i]); /* TF.js runs one padded position */
        } else {
            CHECK_MSG(nr == nt[i] * H, "%s: %zu reference values, %zu tokens", label, nr, nt[i]);
            if (nr == nt[i] * H) use_close(out + off, ref, nr, label), compared++;
        }
        CHECK(cut[i] == (nt[i] == 128 && strlen(texts[i]) > 1000));
        off += nt[i] * H;
        free(ref);
    }
    CHECK(compared == 3);
    printf("  USE lite: %zu texts' token embeddings against TF.js x2\n", compared);
    free(out);
    se_ctx_free(ctx);
    se_model_free(m);
    json_decref(inter);
}

/* Buffers, params and inputs se_encode_tokens and se_encode_ids_tokens
 * refuse, each with a message naming what is wrong. */
TEST(test_token_embeddings_errors) {
    se_model *m = load("en-mean-norm");
    if (!m) return;
    se_ctx *ctx = ctx_of(m, 1, 0);
    se_error err = {0};
    const char *t[2] = {"hello world", "a b"};
    size_t nt[2] = {99, 99};
    float out[8 * 32];
    /* the size query: nothing written, the counts and the need reported */
    CHECK(se_encode_tokens(ctx, t, NULL, 2, NULL, NULL, 0, nt, NULL, &err) == SE_E_BUFFER);
    CHECK_MSG(nt[0] == 4 && nt[1] == 4, "counts %zu %zu", nt[0], nt[1]);
    CHECK_MSG(strstr(err.msg, "256 floats") && strstr(err.msg, "8 tokens x 32"), "message: %s", err.msg);
    for (int i = 0; i < 8 * 32; i++) out[i] = -7.0f;
    CHECK(se_encode_tokens(ctx, t, NULL, 2, NULL, out, 8 * 32 - 1, nt, NULL, &err) == SE_E_BUFFER);
    CHECK(out[0] == -7.0f && out[8 * 32 - 2] == -7.0f);
    CHECK(se_encode_tokens(ctx, t, NULL, 2, NULL, out, 8 * 32, nt, NULL, &err) == SE_OK);
    CHECK(out[0] != -7.0f && out[8 * 32 - 1] != -7.0f);
    /* params for pooled vectors only */
    const char *fields[4] = {"truncate_dim", "normalize", "skip_normalize", "pool_starts"};
    for (int k = 0; k < 4; k++) {
        se_encode_params ep = se_encode_default_params();
        size_t ps[2] = {0, 0};
        if (k == 0) ep.truncate_dim = 8;
        if (k == 1) ep.normalize = true;
        if (k == 2) ep.skip_normalize = true;
        if (k == 3) ep.pool_starts = ps;
        CHECK(se_encode_tokens(ctx, t, NULL, 2, &ep, out, 8 * 32, nt, NULL, &err) == SE_E_INVALID);
        CHECK_MSG(strstr(err.msg, fields[k]) != NULL, "message: %s", err.msg);
    }
    /* a prompt applies: its tokens are part of the output */
    se_encode_params pp = se_encode_default_params();
    pp.prompt = "hello ";
    const char *w[1] = {"world"};
    float a[4 * 32], b[4 * 32];
    CHECK(se_encode_tokens(ctx, w, NULL, 1, &pp, a, 4 * 32, nt, NULL, &err) == SE_OK && nt[0] == 4);
    CHECK(se_encode_tokens(ctx, t, NULL, 1, NULL, b, 4 * 32, nt, NULL, &err) == SE_OK && nt[0] == 4);
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* invalid UTF-8 names the text */
    const char *bad[2] = {"fine", "bad \xC3\x28"};
    CHECK(se_encode_tokens(ctx, bad, NULL, 2, NULL, out, 8 * 32, nt, NULL, &err) == SE_E_UTF8);
    CHECK_MSG(strstr(err.msg, "text 1") != NULL, "message: %s", err.msg);
    /* ids: empty, out of the vocabulary, too long, buffer */
    int32_t ok[4] = {101, 7592, 2088, 102}, oov[2] = {101, 999999}, longer[30];
    for (int i = 0; i < 30; i++) longer[i] = 1000;
    const int32_t *seqs[2] = {ok, oov};
    size_t lens[2] = {4, 2};
    CHECK(se_encode_ids_tokens(ctx, seqs, lens, 2, out, 8 * 32, &err) == SE_E_RANGE);
    CHECK_MSG(strstr(err.msg, "text 1") && strstr(err.msg, "position 1"), "message: %s", err.msg);
    lens[1] = 0;
    CHECK(se_encode_ids_tokens(ctx, seqs, lens, 2, out, 8 * 32, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "text 1 has no token ids"), "message: %s", err.msg);
    seqs[1] = longer, lens[1] = 30;
    CHECK(se_encode_ids_tokens(ctx, seqs, lens, 2, out, 8 * 32, &err) == SE_E_RANGE);
    CHECK_MSG(strstr(err.msg, "max_seq_length"), "message: %s", err.msg);
    lens[1] = 5;
    CHECK(se_encode_ids_tokens(ctx, seqs, lens, 2, out, 8 * 32, &err) == SE_E_BUFFER);
    CHECK_MSG(strstr(err.msg, "288 floats"), "message: %s", err.msg);
    CHECK(se_encode_ids_tokens(ctx, seqs, lens, 1, out, 8 * 32, &err) == SE_OK);
    CHECK(memcmp(out, b, 4 * 32 * sizeof *out) == 0); /* [CLS] hello world [SEP] */
    se_ctx_free(ctx);
    se_model_free(m);
    /* a cross-encoder has no embeddings */
    se_model *ce = load("ce-bert-1");
    if (!ce) return;
    ctx = ctx_of(ce, 1, 0);
    CHECK(se_encode_tokens(ctx, t, NULL, 1, NULL, out, 8 * 32, nt, NULL, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "cross-encoder"), "message: %s", err.msg);
    CHECK(se_encode_ids_tokens(ctx, seqs, lens, 1, out, 8 * 32, &err) == SE_E_INVALID);
    size_t nid;
    int32_t ids[8];
    CHECK(se_encode_tokenize(ce, "x", 1, NULL, NULL, ids, 8, &nid, NULL, NULL, &err) == SE_E_INVALID);
    se_ctx_free(ctx);
    se_model_free(ce);
}

/* ==== skip_normalize ==== */

/* Each model whose pipeline ends with Normalize, with skip_normalize:
 * the reference's vector before Normalize (prenorm.jsonl: pooled, then
 * zh-cls-dense-f16's Dense + tanh); with truncate_dim the first dims of it,
 * not renormalised; through se_encode_ids too. USE lite: the TF.js tanh
 * layer. A model without Normalize is unchanged; with normalize it is
 * SE_E_INVALID. */
TEST(test_skip_normalize_reference) {
    json_t *pre = read_jsonl("tests/fixtures/encode-api/prenorm.jsonl");
    CHECK(pre && json_array_size(pre) > 1);
    if (!pre) return;
    const char *cur = NULL;
    se_model *m = NULL;
    se_ctx *ctx = NULL;
    json_t *exp = NULL, *hdr = NULL;
    size_t checked = 0, n_models = 0;
    double worst = 0;
    se_error err = {0};
    for (size_t r = 1; r < json_array_size(pre); r++) {
        json_t *e = json_array_get(pre, r);
        const char *name = json_string_value(json_object_get(e, "model"));
        if (!cur || strcmp(cur, name)) {
            se_ctx_free(ctx), se_model_free(m), json_decref(exp), json_decref(hdr);
            m = load(name), ctx = m ? ctx_of(m, 2, 0) : NULL, cur = name, n_models++;
            exp = load_expected(name, &hdr);
            se_model_info info;
            if (m) se_model_get_info(m, &info, NULL);
            CHECK_MSG(m && info.normalize, "%s: the reference lists a model without Normalize", name);
        }
        if (!ctx) continue;
        size_t i = (size_t)json_integer_value(json_object_get(e, "sentence")), n, dim = se_encode_dim(m, NULL);
        float *ref = floats(json_object_get(e, "prenorm"), &n), got[64], cut[64], via_ids[64];
        CHECK(n == dim && dim <= 64);
        se_encode_params ep = se_encode_default_params();
        ep.skip_normalize = true;
        CHECK_MSG(se_encode(ctx, (const char *const *)&sentences[i], NULL, 1, &ep, got, dim, NULL, &err) == SE_OK, "%s", err.msg);
        char label[96];
        snprintf(label, sizeof label, "%s s%zu before Normalize", name, i);
        if (n == dim) CHECK_CLOSE(got, ref, n, 1e-4, 1e-4, label);
        double nn = 0;
        for (size_t k = 0; k < n && n == dim; k++) worst = fmax(worst, fabs((double)got[k] - ref[k])), nn += (double)got[k] * got[k];
        if (i == 0) CHECK_MSG(fabs(nn - 1.0) > 1e-3, "%s: the pre-Normalize vector has norm 1 (%.6f)", name, sqrt(nn));
        /* truncate_dim: cut, not renormalised */
        ep.truncate_dim = (int32_t)(dim / 2);
        CHECK(se_encode(ctx, (const char *const *)&sentences[i], NULL, 1, &ep, cut, dim / 2, NULL, &err) == SE_OK);
        CHECK_MSG(memcmp(cut, got, dim / 2 * sizeof *cut) == 0, "%s s%zu: truncate_dim with skip_normalize renormalised", name, i);
        /* the reference ids through se_encode_ids */
        ep.truncate_dim = 0;
        size_t nid;
        int32_t *ids = ints(json_object_get(json_array_get(exp, i), "ids"), &nid);
        const int32_t *seq[1] = {ids};
        CHECK(se_encode_ids(ctx, seq, &nid, 1, &ep, via_ids, dim, &err) == SE_OK);
        CHECK_MSG(memcmp(via_ids, got, dim * sizeof *got) == 0, "%s s%zu: se_encode_ids differs", name, i);
        free(ids);
        free(ref);
        checked++;
    }
    printf("  %zu models, %zu sentences before Normalize: max abs diff %.3g\n", n_models, checked, worst);
    CHECK(n_models == 5);
    se_encode_params both = se_encode_default_params();
    both.skip_normalize = both.normalize = true;
    float v[64];
    CHECK(ctx && se_encode(ctx, (const char *const *)sentences, NULL, 1, &both, v, 64, NULL, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "skip_normalize"), "message: %s", err.msg);
    se_ctx_free(ctx), se_model_free(m), json_decref(exp), json_decref(hdr);
    json_decref(pre);
    /* no Normalize: skip_normalize changes nothing */
    m = load("en-max-relu-bf16");
    if (m) {
        ctx = ctx_of(m, 1, 0);
        se_encode_params ep = se_encode_default_params();
        float a[16], b[16];
        CHECK(se_encode(ctx, (const char *const *)sentences, NULL, 1, NULL, a, 16, NULL, &err) == SE_OK);
        ep.skip_normalize = true;
        CHECK(se_encode(ctx, (const char *const *)sentences, NULL, 1, &ep, b, 16, NULL, &err) == SE_OK);
        CHECK(memcmp(a, b, sizeof a) == 0);
        se_ctx_free(ctx), se_model_free(m);
    }
    /* USE lite: the tanh layer, before its L2 normalisation (the empty text: tanh(b)) */
    json_t *inter = read_jsonl("tests/fixtures/use-lite/intermediates.jsonl");
    m = load(use_dir);
    if (m && inter) {
        ctx = ctx_of(m, 2, 0);
        const char *texts[8];
        size_t lens[8], nu = use_texts(inter, texts, lens, 8);
        float *out = malloc(nu * 512 * sizeof *out);
        se_encode_params ep = se_encode_default_params();
        ep.skip_normalize = true;
        CHECK(se_encode(ctx, texts, lens, nu, &ep, out, nu * 512, NULL, &err) == SE_OK);
        for (size_t i = 0; i < nu; i++) {
            size_t nr;
            float *ref = use_node(inter, texts[i], "tanh_layer_0/Tanh", &nr);
            char label[96];
            snprintf(label, sizeof label, "USE lite tanh of '%.30s'", texts[i]);
            CHECK(nr == 512);
            if (nr == 512) use_close(out + i * 512, ref, 512, label);
            free(ref);
        }
        free(out);
        se_ctx_free(ctx);
    }
    se_model_free(m);
    json_decref(inter);
}

/* ==== tokenize as se_encode ==== */

static char tmpdir[256];

/* Copies fixture into tmpdir/name and sets field key of its file rel to
 * the JSON text val; returns the copy's path (static storage). */
static const char *copy_with(const char *fixture, const char *name, const char *rel, const char *key, const char *val) {
    static char path[512];
    char cmd[1400];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -r " FIX "%s %s", path, fixture, path);
    if (system(cmd) != 0) return NULL;
    char file[1300];
    snprintf(file, sizeof file, "%s/%s", path, rel);
    if (!test_json_set_raw(file, key, val)) return NULL;
    return path;
}

/* The edge texts every model is tried on besides the fixture sentences:
 * empty, whitespace only, whitespace around, case and accents, and one
 * long enough to be truncated. */
static const char *edge_texts[] = {"", " ", " \t\n\r\v\f ", "\xE3\x80\x80", "  Hello World  ", "\tTabbed\n",
                                   "ÄÖÜ Straße HELLO ΣΑΣ İstanbul", "word word word word word word word word word word word "
                                   "word word word word word word word word word word word word word word word word word "
                                   "word word word word word word word word word word word word word word word word word "
                                   "word word word word word word word word word word word word word word word word word "
                                   "word word word word word word word word word word word word word word word word word "
                                   "word word word word word word word word word word word word word word word word word "
                                   "word word word word word word word word word word word word word word word word word "
                                   "word word word word word word word word word word word word word word word word end"};
#define N_EDGE (sizeof edge_texts / sizeof *edge_texts)

/* The contract of se_encode_tokenize on model m for params ep: for the
 * first n_sent fixture sentences and every edge text, its ids through
 * se_encode_ids (all in one call, with their pool_starts) give se_encode's
 * vectors bit for bit, and the same truncation flags. Returns the number
 * of texts compared. */
static size_t contract(const char *what, se_model *m, const se_encode_params *ep, size_t n_sent) {
    size_t n = n_sent + N_EDGE, dim = se_encode_dim(m, ep);
    const char **texts = malloc(n * sizeof *texts);
    for (size_t i = 0; i < n; i++) texts[i] = i < n_sent ? sentences[i] : edge_texts[i - n_sent];
    float *want = malloc(n * dim * sizeof *want), *got = malloc(n * dim * sizeof *got);
    bool *cut = calloc(n, sizeof *cut);
    int32_t **ids = calloc(n, sizeof *ids);
    size_t *lens = calloc(n, sizeof *lens), *starts = calloc(n, sizeof *starts), same = 0;
    se_error err = {0};
    se_ctx *ctx = ctx_of(m, 2, 0);
    se_status s = se_encode(ctx, texts, NULL, n, ep, want, n * dim, cut, &err);
    CHECK_MSG(s == SE_OK, "%s: se_encode: %s", what, err.msg);
    for (size_t i = 0; s == SE_OK && i < n; i++) {
        ids[i] = malloc(600 * sizeof **ids);
        bool c = !cut[i];
        se_status t = se_encode_tokenize(m, texts[i], strlen(texts[i]), ep, NULL, ids[i], 600, &lens[i], &starts[i], &c, &err);
        CHECK_MSG(t == SE_OK, "%s text %zu: %s", what, i, err.msg);
        CHECK_MSG(c == cut[i], "%s text %zu: truncated %d, se_encode says %d", what, i, c, cut[i]);
    }
    se_encode_params ip = *ep;
    ip.prompt = ip.prompt_name = NULL;
    ip.pool_starts = starts;
    if (s == SE_OK) {
        se_ctx *c2 = ctx_of(m, 1, 29);
        s = se_encode_ids(c2, (const int32_t *const *)ids, lens, n, &ip, got, n * dim, &err);
        CHECK_MSG(s == SE_OK, "%s: se_encode_ids: %s", what, err.msg);
        for (size_t i = 0; s == SE_OK && i < n; i++) {
            bool eq = memcmp(want + i * dim, got + i * dim, dim * sizeof *got) == 0;
            CHECK_MSG(eq, "%s text %zu ('%.20s'): se_encode_ids of se_encode_tokenize's ids differs from se_encode", what, i,
                      texts[i]);
            same += eq;
        }
        se_ctx_free(c2);
    }
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids), free(lens), free(starts), free(texts), free(want), free(got), free(cut);
    se_ctx_free(ctx);
    return same;
}

/* se_encode_tokenize's contract over every fixture, USE lite, a
 * lowercasing copy and a default-prompt copy, with no prompt, an explicit
 * prompt with blanks to strip, and each named prompt; the ids are the
 * reference's, and the pool start is the reference's prompt_length. */
TEST(test_tokenize_as_encode) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sembed_encapi_XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    const char *lower = copy_with("en-mean-norm", "lower", "sentence_bert_config.json", "do_lower_case", "true");
    char lower_dir[512];
    snprintf(lower_dir, sizeof lower_dir, "%s", lower ? lower : "");
    const char *defp = copy_with("en-allpool-prompt", "defprompt", "config_sentence_transformers.json", "default_prompt_name",
                                 "\"passage\"");
    char defp_dir[512];
    snprintf(defp_dir, sizeof defp_dir, "%s", defp ? defp : "");
    CHECK(lower && defp);
    const char *all[N_MODELS + 3];
    size_t n_all = 0, total = 0, want = 0;
    for (size_t i = 0; i < N_MODELS; i++) all[n_all++] = models[i];
    all[n_all++] = use_dir, all[n_all++] = lower_dir, all[n_all++] = defp_dir;
    for (size_t mi = 0; mi < n_all; mi++) {
        se_model *m = load(all[mi]);
        if (!m) continue;
        se_model_info info;
        se_model_get_info(m, &info, NULL);
        /* USE lite's 8 MB of GEMM weights per token make it 40x slower
         * than a fixture: a third of the sentences keeps the suite short */
        size_t n_sent = all[mi] == use_dir ? n_sentences / 3 : n_sentences;
        se_encode_params ep = se_encode_default_params();
        total += contract(all[mi], m, &ep, n_sent), want += n_sent + N_EDGE;
        ep.prompt = " Represent:\t";
        total += contract(all[mi], m, &ep, n_sent), want += n_sent + N_EDGE;
        ep.prompt = NULL;
        for (size_t k = 0; k < info.n_prompts; k++) {
            se_model_prompt(m, k, &ep.prompt_name, NULL, NULL);
            total += contract(all[mi], m, &ep, n_sent), want += n_sent + N_EDGE;
        }
        se_model_free(m);
    }
    printf("  %zu models: %zu texts bit-identical through ids\n", n_all, total);
    CHECK(total == want && want > 1000);
    /* the lowercasing copy lowercases: its ids are those of the lowered text */
    se_model *m = load(lower_dir);
    if (m) {
        int32_t a[32], b[32];
        size_t na, nb;
        se_error err = {0};
        CHECK(se_encode_tokenize(m, "  HeLLo WORLD ", 14, NULL, NULL, a, 32, &na, NULL, NULL, &err) == SE_OK);
        se_tokenize_params tp = se_tokenize_default_params(se_model_tokenizer(m));
        CHECK(se_tokenize(se_model_tokenizer(m), "hello world", 11, NULL, 0, &tp, b, NULL, 32, &nb, NULL, &err) == SE_OK);
        CHECK(na == nb && memcmp(a, b, na * sizeof *a) == 0);
        se_model_free(m);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    CHECK(system(cmd) == 0);
}

/* se_encode_tokenize's ids and pool starts are the reference's (the
 * fixture's ids of prompt + text, and its prompt_length); its buffer
 * rule; the tokenize params apply; se_encode_ids refuses pool starts past
 * the sequence and takes an empty sequence only where the model's template
 * adds no special tokens (USE lite, equal to se_encode of ""). */
TEST(test_tokenize_as_encode_values) {
    se_error err = {0};
    for (size_t mi = 0; mi < N_MODELS; mi++) {
        json_t *hdr, *exp = load_expected(models[mi], &hdr);
        se_model *m = load(models[mi]);
        if (!m || !exp) {
            se_model_free(m), json_decref(exp), json_decref(hdr);
            continue;
        }
        se_encode_params ep = se_encode_default_params();
        ep.prompt_name = json_string_value(json_object_get(hdr, "prompt_name"));
        json_t *pl = json_object_get(hdr, "prompt_length");
        size_t want_start = json_is_integer(pl) ? (size_t)json_integer_value(pl) : 0, bad = 0;
        for (size_t i = 0; i < n_sentences; i++) {
            json_t *e = json_array_get(exp, i);
            int32_t ids[64];
            size_t n, nr, start = 99;
            int32_t *ref = ints(json_object_get(e, "ids"), &nr);
            CHECK(se_encode_tokenize(m, sentences[i], strlen(sentences[i]), &ep, NULL, ids, 64, &n, &start, NULL, &err) == SE_OK);
            bool ok = n == nr && memcmp(ids, ref, n * sizeof *ids) == 0 && start == want_start;
            if (!ok && bad++ < 3)
                fprintf(stderr, "  %s s%zu: %zu ids (reference %zu), pool start %zu (reference %zu)\n", models[mi], i, n, nr,
                        start, want_start);
            free(ref);
        }
        CHECK_MSG(bad == 0, "%s: %zu sentences differ from the reference ids", models[mi], bad);
        if (want_start) { /* without special tokens: the prompt's own tokens, the reference's ids less [CLS] and [SEP] */
            json_t *e = json_array_get(exp, 0);
            int32_t ids[64];
            size_t n, nr, start = 99;
            int32_t *ref = ints(json_object_get(e, "ids"), &nr);
            se_tokenize_params tp = se_tokenize_default_params(se_model_tokenizer(m));
            tp.add_special = false;
            CHECK(se_encode_tokenize(m, sentences[0], strlen(sentences[0]), &ep, &tp, ids, 64, &n, &start, NULL, &err) == SE_OK);
            CHECK_MSG(start == want_start - 1 && n == nr - 2 && memcmp(ids, ref + 1, n * sizeof *ids) == 0,
                      "%s without specials: %zu ids, pool start %zu", models[mi], n, start);
            free(ref);
        }
        if (want_start) printf("  %s: pool start %zu = prompt_length with prompt '%s'\n", models[mi], want_start, ep.prompt_name);
        se_model_free(m), json_decref(exp), json_decref(hdr);
    }
    se_model *m = load("en-mean-norm");
    if (!m) return;
    int32_t ids[64];
    size_t n = 0, start = 7;
    bool cut = false;
    const char *t = "a man is playing a guitar";
    CHECK(se_encode_tokenize(m, t, strlen(t), NULL, NULL, ids, 3, &n, NULL, NULL, &err) == SE_E_BUFFER);
    CHECK_MSG(n == 8, "needed %zu", n);
    se_tokenize_params tp = se_tokenize_default_params(se_model_tokenizer(m));
    tp.n_tokens_max = 5;
    CHECK(se_encode_tokenize(m, t, strlen(t), NULL, &tp, ids, 64, &n, &start, &cut, &err) == SE_OK);
    CHECK(n == 5 && cut && start == 0 && ids[0] == 101 && ids[4] == 102);
    tp.n_tokens_max = 0, tp.add_special = false;
    CHECK(se_encode_tokenize(m, t, strlen(t), NULL, &tp, ids, 64, &n, NULL, &cut, &err) == SE_OK);
    CHECK(n == 6 && !cut && ids[0] != 101);
    se_encode_params ep = se_encode_default_params();
    ep.prompt_name = "nope";
    CHECK(se_encode_tokenize(m, t, strlen(t), &ep, NULL, ids, 64, &n, NULL, NULL, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "nope"), "message: %s", err.msg);
    CHECK(se_encode_tokenize(m, "\xff", 1, NULL, NULL, ids, 64, &n, NULL, NULL, &err) == SE_E_UTF8);
    /* pool starts past the sequence; an empty sequence where [CLS] [SEP] are due */
    se_ctx *ctx = ctx_of(m, 1, 0);
    int32_t s1[3] = {101, 1037, 102};
    const int32_t *seq[1] = {s1};
    size_t len = 3, ps = 4;
    float v[32];
    ep = se_encode_default_params();
    ep.pool_starts = &ps;
    CHECK(se_encode_ids(ctx, seq, &len, 1, &ep, v, 32, &err) == SE_E_RANGE);
    CHECK_MSG(strstr(err.msg, "pool_starts"), "message: %s", err.msg);
    CHECK(se_encode(ctx, &t, NULL, 1, &ep, v, 32, NULL, &err) == SE_E_INVALID);
    len = 0;
    CHECK(se_encode_ids(ctx, seq, &len, 1, NULL, v, 32, &err) == SE_E_INVALID);
    se_ctx_free(ctx);
    se_model_free(m);
    m = load(use_dir);
    if (!m) return;
    ctx = ctx_of(m, 1, 0);
    float a[512], b[512];
    const char *empty = "";
    CHECK(se_encode_tokenize(m, "", 0, NULL, NULL, ids, 64, &n, &start, NULL, &err) == SE_OK && n == 0 && start == 0);
    CHECK(se_encode_ids(ctx, seq, &n, 1, NULL, a, 512, &err) == SE_OK);
    CHECK(se_encode(ctx, &empty, NULL, 1, NULL, b, 512, NULL, &err) == SE_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    se_ctx_free(ctx);
    se_model_free(m);
}

/* One model, four threads tokenizing at once (se_encode_tokenize reads
 * the model only): each gets the ids of one thread alone. */
typedef struct tok_job {
    se_model *m;
    size_t n_ids[64];
    int32_t ids[64][40];
    int ok;
} tok_job;

/* Tokenizes every fixture sentence with the model's default prompt
 * handling (a thread's body). */
static void *tok_thread(void *arg) {
    tok_job *j = arg;
    se_error err;
    se_encode_params ep = se_encode_default_params();
    ep.prompt_name = "query";
    j->ok = 1;
    for (int rep = 0; rep < 5; rep++)
        for (size_t i = 0; i < n_sentences && i < 64; i++)
            if (se_encode_tokenize(j->m, sentences[i], strlen(sentences[i]), &ep, NULL, j->ids[i], 40, &j->n_ids[i], NULL, NULL,
                                   &err) != SE_OK)
                j->ok = 0;
    return NULL;
}

TEST(test_tokenize_as_encode_threads) {
    se_model *m = load("en-allpool-prompt");
    if (!m) return;
    static tok_job jobs[5];
    memset(jobs, 0, sizeof jobs);
    for (int k = 0; k < 5; k++) jobs[k].m = m;
    tok_thread(&jobs[4]); /* alone */
    pthread_t th[4];
    for (int k = 0; k < 4; k++) pthread_create(&th[k], NULL, tok_thread, &jobs[k]);
    for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
    for (int k = 0; k < 4; k++) {
        CHECK(jobs[k].ok && jobs[4].ok);
        CHECK(memcmp(jobs[k].n_ids, jobs[4].n_ids, sizeof jobs[k].n_ids) == 0);
        CHECK(memcmp(jobs[k].ids, jobs[4].ids, sizeof jobs[k].ids) == 0);
    }
    CHECK(jobs[4].n_ids[0] > 3 && jobs[4].ids[0][0] == 101);
    se_model_free(m);
}

int main(void) {
    load_sentences();
    use_dir = getenv("SE_USE_MODEL") ? getenv("SE_USE_MODEL") : "models/use-lite";
    RUN(test_token_embeddings_reference);
    RUN(test_token_embeddings_use_lite);
    RUN(test_token_embeddings_errors);
    RUN(test_skip_normalize_reference);
    RUN(test_tokenize_as_encode);
    RUN(test_tokenize_as_encode_values);
    RUN(test_tokenize_as_encode_threads);
    for (size_t i = 0; i < n_sentences; i++) free(sentences[i]);
    free(sentences);
    return test_report("test_encode_api");
}
