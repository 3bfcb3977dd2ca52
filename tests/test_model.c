/*
 * test_model.c - the encoder against the PyTorch reference fixtures
 * (tests/fixtures/models/, written by tools/gen_fixtures.py), batch
 * invariance, and every way a model folder can be broken.
 *
 * Tolerances: per-layer hidden states atol 5e-5 + rtol 1e-4 (the math is
 * the same, only the summation order differs); final embeddings cosine >=
 * 0.99999 and max abs diff <= 1e-4, the bar.
 */
#include <jansson.h>
#include <pthread.h>
#include <unistd.h>

#include "alloc.h"
#include "model_folder.h"
#include "models/models.h"
#include "safetensors.h"
#include "sembed.h"
#include "test.h"
#include "test_fixtures.h"
#include "test_json.h"


static const char *ref_models[] = {"en-mean-norm", "zh-cls-dense-f16", "en-max-relu-bf16", "en-allpool-prompt", "en-plain-hf"};
#define N_MODELS (sizeof ref_models / sizeof *ref_models)

/* The shared sentence set. */
static char **sentences;
static size_t n_sentences;

static void load_sentences(void) {
    sentences = fixture_sentences(&n_sentences);
}

/* Every fixture sentence of models[0..n), encoded alone, against the
 * reference: token count (and the ids themselves when check_ids),
 * per-layer hidden states, final embedding, truncation flag. */
static void check_references(const char *const *models, size_t n_models, bool check_ids) {
    for (size_t mi = 0; mi < n_models; mi++) {
        char dir[256];
        snprintf(dir, sizeof dir, FIX "%s", models[mi]);
        json_t *hdr;
        json_t *exp = load_expected(models[mi], &hdr);
        CHECK_MSG(exp && hdr && json_array_size(exp) == n_sentences, "%s: expected.jsonl unreadable", models[mi]);
        if (!exp || !hdr) continue;
        CHECK(strcmp(json_string_value(json_object_get(hdr, "magic")), "sembed-fixture") == 0);
        se_error err = {0};
        se_model *m = NULL;
        CHECK_MSG(se_model_load(dir, NULL, &m, &err) == SE_OK, "%s: %s", models[mi], err.msg);
        if (!m) continue;
        capture cap = {0};
        se_ctx_params cp = se_ctx_default_params();
        cp.n_threads = 2;
        cp.debug_fn = capture_cb;
        cp.debug_user = &cap;
        se_ctx *ctx = NULL;
        CHECK(se_ctx_new(m, &cp, &ctx, &err) == SE_OK);
        se_encode_params ep = se_encode_default_params();
        const char *pn = json_string_value(json_object_get(hdr, "prompt_name"));
        ep.prompt_name = pn;
        size_t dim = se_encode_dim(m, &ep);
        float *out = malloc(dim * sizeof *out);
        double worst_cos = 1, worst_abs = 0;
        for (size_t i = 0; i < n_sentences; i++) {
            json_t *e = json_array_get(exp, i);
            bool cut = false;
            se_status s = se_encode(ctx, (const char *const *)&sentences[i], NULL, 1, &ep, out, dim, &cut, &err);
            CHECK_MSG(s == SE_OK, "%s sentence %zu: %s", models[mi], i, err.msg);
            size_t n_ids = json_array_size(json_object_get(e, "ids"));
            CHECK_MSG(cap.n_tokens == n_ids, "%s sentence %zu: %zu tokens, expected %zu", models[mi], i, cap.n_tokens, n_ids);
            if (check_ids) { /* the tokenizer gives the reference's ids */
                int32_t ids[512];
                size_t n_got = 0;
                const char *in = json_string_value(json_object_get(e, "text"));
                se_tokenize_params tp = se_tokenize_default_params(se_model_tokenizer(m));
                CHECK(se_tokenize(se_model_tokenizer(m), in, strlen(in), NULL, 0, &tp, ids, NULL, 512, &n_got, NULL, &err) == SE_OK);
                bool same = n_got == n_ids;
                for (size_t k = 0; same && k < n_ids; k++)
                    same = ids[k] == (int32_t)json_integer_value(json_array_get(json_object_get(e, "ids"), k));
                CHECK_MSG(same, "%s sentence %zu: the tokenizer's ids differ from the reference's", models[mi], i);
            }
            CHECK_MSG(cut == json_is_true(json_object_get(e, "truncated")), "%s sentence %zu: truncated flag", models[mi], i);
            json_t *hs = json_object_get(e, "hidden_states");
            CHECK(cap.n == (int)json_array_size(hs));
            for (size_t l = 0; l < json_array_size(hs) && (int)l < cap.n && cap.n_tokens == n_ids; l++) {
                size_t n;
                float *ref = floats(json_array_get(hs, l), &n);
                char label[96];
                snprintf(label, sizeof label, "%s s%zu hidden_states[%zu]", models[mi], i, l);
                CHECK(n == cap.n_tokens * cap.n_embd);
                if (n == cap.n_tokens * cap.n_embd) CHECK_CLOSE(cap.states[l], ref, n, 5e-5, 1e-4, label);
                free(ref);
            }
            size_t n;
            float *ref = floats(json_object_get(e, "embedding"), &n);
            CHECK(n == dim);
            if (n == dim) {
                double c = cosine(out, ref, n);
                double mx = 0;
                for (size_t k = 0; k < n; k++) mx = fmax(mx, fabs((double)out[k] - ref[k]));
                worst_cos = fmin(worst_cos, c), worst_abs = fmax(worst_abs, mx);
                CHECK_MSG(c >= 0.99999 && mx <= 1e-4, "%s sentence %zu: cosine %.9f, max abs %.3g", models[mi], i, c, mx);
            }
            free(ref);
        }
        printf("  %-20s %zu sentences: worst cosine %.9f, max abs diff %.3g\n", models[mi], n_sentences, worst_cos, worst_abs);
        free(out);
        capture_free(&cap);
        se_ctx_free(ctx);
        se_model_free(m);
        json_decref(exp);
        json_decref(hdr);
    }
}

TEST(reference_fixtures) { check_references(ref_models, N_MODELS, false); }

/* Encodes all sentences with the given ctx settings, in the given order. */
static float *encode_all(se_model *m, int threads, int batch_tokens, const size_t *order, const se_encode_params *ep) {
    se_ctx_params cp = se_ctx_default_params();
    cp.n_threads = threads;
    cp.n_batch_tokens = batch_tokens;
    se_ctx *ctx = NULL;
    se_error err;
    if (se_ctx_new(m, &cp, &ctx, &err) != SE_OK) return NULL;
    size_t dim = se_encode_dim(m, ep);
    const char **texts = malloc(n_sentences * sizeof *texts);
    for (size_t i = 0; i < n_sentences; i++) texts[i] = sentences[order[i]];
    float *tmp = malloc(n_sentences * dim * sizeof *tmp), *out = malloc(n_sentences * dim * sizeof *out);
    se_status s = se_encode(ctx, texts, NULL, n_sentences, ep, tmp, n_sentences * dim, NULL, &err);
    for (size_t i = 0; i < n_sentences; i++) memcpy(out + order[i] * dim, tmp + i * dim, dim * sizeof *out);
    free(texts), free(tmp);
    se_ctx_free(ctx);
    if (s != SE_OK) {
        free(out);
        return NULL;
    }
    return out;
}

/* A sentence of models[0..n) alone, or in any batch, with any thread
 * count and token budget, gives bit-identical output. */
static void check_batch_invariance(const char *const *models, size_t n_models) {
    for (size_t mi = 0; mi < n_models; mi++) {
        char dir[256];
        snprintf(dir, sizeof dir, FIX "%s", models[mi]);
        se_model *m = NULL;
        se_error err;
        if (se_model_load(dir, NULL, &m, &err) != SE_OK) {
            CHECK_MSG(0, "%s", err.msg);
            continue;
        }
        se_encode_params ep = se_encode_default_params();
        if (se_model_prompt_find(m, "query")) ep.prompt_name = "query";
        size_t dim = se_encode_dim(m, &ep);
        /* reference: each sentence alone, one thread */
        float *alone = malloc(n_sentences * dim * sizeof *alone);
        se_ctx *ctx = NULL;
        se_ctx_params cp = se_ctx_default_params();
        cp.n_threads = 1;
        se_ctx_new(m, &cp, &ctx, &err);
        for (size_t i = 0; i < n_sentences; i++)
            CHECK(se_encode(ctx, (const char *const *)&sentences[i], NULL, 1, &ep, alone + i * dim, dim, NULL, &err) == SE_OK);
        se_ctx_free(ctx);
        size_t *order = malloc(n_sentences * sizeof *order);
        int configs[][2] = {{1, 0}, {2, 0}, {3, 0}, {2, 1}, {2, 37}, {1, 100}};
        for (int shuffle = 0; shuffle < 2; shuffle++) {
            for (size_t i = 0; i < n_sentences; i++) order[i] = shuffle ? (i * 7 + 3) % n_sentences : i;
            for (size_t k = 0; k < sizeof configs / sizeof *configs; k++) {
                float *all = encode_all(m, configs[k][0], configs[k][1], order, &ep);
                CHECK_MSG(all != NULL, "%s: batch encode failed", models[mi]);
                if (!all) continue;
                CHECK_MSG(memcmp(all, alone, n_sentences * dim * sizeof *all) == 0,
                          "%s: batched output (threads %d, n_batch_tokens %d, shuffle %d) differs from sentence-alone output",
                          models[mi], configs[k][0], configs[k][1], shuffle);
                free(all);
            }
        }
        free(order);
        free(alone);
        se_model_free(m);
    }
}

TEST(batch_invariance) { check_batch_invariance(ref_models, N_MODELS); }

/* Bad text input: invalid UTF-8 names the text, empty and huge texts work. */
TEST(text_inputs) {
    se_model *m = NULL;
    se_ctx *ctx = NULL;
    se_error err = {0};
    CHECK(se_model_load(FIX "en-mean-norm", NULL, &m, &err) == SE_OK);
    CHECK(se_ctx_new(m, NULL, &ctx, &err) == SE_OK);
    if (!ctx) return;
    float out[3 * 32];
    const char *bad[3] = {"fine", "bad \xC3\x28 byte", "x"};
    CHECK(se_encode(ctx, bad, NULL, 3, NULL, out, 3 * 32, NULL, &err) == SE_E_UTF8);
    CHECK_MSG(strstr(err.msg, "text 1") && strstr(err.msg, "byte 4"), "message: %s", err.msg);
    const char *overlong[1] = {"\xC0\xAF"};
    CHECK(se_encode(ctx, overlong, NULL, 1, NULL, out, 32, NULL, &err) == SE_E_UTF8);
    const char *surrogate[1] = {"\xED\xA0\x80"};
    CHECK(se_encode(ctx, surrogate, NULL, 1, NULL, out, 32, NULL, &err) == SE_E_UTF8);
    /* empty text: [CLS] [SEP], a unit vector */
    const char *empty[1] = {""};
    CHECK(se_encode(ctx, empty, NULL, 1, NULL, out, 32, NULL, &err) == SE_OK);
    double nn = 0;
    for (int i = 0; i < 32; i++) nn += (double)out[i] * out[i];
    CHECK(fabs(nn - 1.0) < 1e-5);
    /* a 4 MB text: truncated, flagged, same as its first words */
    size_t big = 4 << 20;
    char *huge = malloc(big + 1);
    for (size_t i = 0; i < big; i++) huge[i] = "hello world "[i % 12];
    huge[big] = 0;
    const char *h[2] = {huge, "hello world hello world hello world hello world hello world hello world hello world hello world hello world hello world hello world hello world hello world hello world hello world"};
    bool cut[2];
    CHECK(se_encode(ctx, h, NULL, 2, NULL, out, 2 * 32, cut, &err) == SE_OK);
    CHECK(cut[0] && cut[1]);
    CHECK(memcmp(out, out + 32, 32 * sizeof *out) == 0);
    free(huge);
    /* lens: embedded text without NUL termination */
    const char *part[1] = {"hello worldXXXX"};
    size_t len = 11;
    float a[32], b[32];
    const char *hw[1] = {"hello world"};
    CHECK(se_encode(ctx, part, &len, 1, NULL, a, 32, NULL, &err) == SE_OK);
    CHECK(se_encode(ctx, hw, NULL, 1, NULL, b, 32, NULL, &err) == SE_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* output buffer too small, truncate_dim out of range, prompt conflicts */
    CHECK(se_encode(ctx, hw, NULL, 1, NULL, a, 31, NULL, &err) == SE_E_BUFFER);
    se_encode_params ep = se_encode_default_params();
    ep.truncate_dim = 33;
    CHECK(se_encode(ctx, hw, NULL, 1, &ep, a, 32, NULL, &err) == SE_E_RANGE);
    ep.truncate_dim = 0;
    ep.prompt = "x", ep.prompt_name = "query";
    CHECK(se_encode(ctx, hw, NULL, 1, &ep, a, 32, NULL, &err) == SE_E_INVALID);
    ep.prompt = NULL;
    CHECK(se_encode(ctx, hw, NULL, 1, &ep, a, 32, NULL, &err) == SE_E_INVALID);
    CHECK(strstr(err.msg, "query") != NULL);
    /* n == 0 is a no-op */
    CHECK(se_encode(ctx, NULL, NULL, 0, NULL, NULL, 0, NULL, &err) == SE_OK);
    se_ctx_free(ctx);
    se_model_free(m);
}

/* truncate_dim keeps the first dims and renormalises (the model
 * normalises); an explicit prompt equals the same text typed in. */
TEST(truncate_dim_and_prompt) {
    se_model *m = NULL;
    se_ctx *ctx = NULL;
    se_error err;
    CHECK(se_model_load(FIX "en-mean-norm", NULL, &m, &err) == SE_OK);
    CHECK(se_ctx_new(m, NULL, &ctx, &err) == SE_OK);
    if (!ctx) return;
    const char *t[1] = {"a man is playing a guitar"};
    float full[32], cut[8];
    se_encode_params ep = se_encode_default_params();
    CHECK(se_encode(ctx, t, NULL, 1, &ep, full, 32, NULL, &err) == SE_OK);
    ep.truncate_dim = 8;
    CHECK(se_encode_dim(m, &ep) == 8);
    CHECK(se_encode(ctx, t, NULL, 1, &ep, cut, 8, NULL, &err) == SE_OK);
    double n = 0;
    for (int i = 0; i < 8; i++) n += (double)full[i] * full[i];
    n = sqrt(n);
    float want[8];
    for (int i = 0; i < 8; i++) want[i] = (float)(full[i] / n);
    CHECK_CLOSE(cut, want, 8, 1e-6, 1e-5, "truncate_dim 8");
    se_encode_params pp = se_encode_default_params();
    pp.prompt = "query: ";
    const char *both[1] = {"query: a man is playing a guitar"};
    float x[32], y[32];
    CHECK(se_encode(ctx, t, NULL, 1, &pp, x, 32, NULL, &err) == SE_OK);
    CHECK(se_encode(ctx, both, NULL, 1, NULL, y, 32, NULL, &err) == SE_OK);
    CHECK(memcmp(x, y, sizeof x) == 0);
    se_ctx_free(ctx);
    se_model_free(m);
}

/* Shared model, one ctx per thread: identical results. */
typedef struct thread_arg {
    se_model *m;
    float out[40 * 64];
    int ok;
} thread_arg;

static void *encode_thread(void *p) {
    thread_arg *a = p;
    se_ctx *ctx = NULL;
    se_error err;
    se_ctx_params cp = se_ctx_default_params();
    cp.n_threads = 2;
    a->ok = se_ctx_new(a->m, &cp, &ctx, &err) == SE_OK;
    for (int rep = 0; rep < 3 && a->ok; rep++)
        a->ok = se_encode(ctx, (const char *const *)sentences, NULL, n_sentences, NULL, a->out, 40 * 64, NULL, &err) == SE_OK;
    se_ctx_free(ctx);
    return NULL;
}

TEST(threads_share_model) {
    se_model *m = NULL;
    se_error err;
    CHECK(se_model_load(FIX "zh-cls-dense-f16", NULL, &m, &err) == SE_OK);
    if (!m) return;
    thread_arg *a = calloc(3, sizeof *a);
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        a[i].m = m;
        pthread_create(&th[i], NULL, encode_thread, &a[i]);
    }
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) CHECK(a[i].ok);
    CHECK(memcmp(a[0].out, a[1].out, sizeof a[0].out) == 0);
    CHECK(memcmp(a[0].out, a[2].out, sizeof a[0].out) == 0);
    free(a);
    se_model_free(m);
}

/* ==== broken model folders ==== */

static char tmpdir[256];

/* Copies a fixture into a fresh temp dir and returns its path. */
static const char *fresh_copy(const char *model) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf %s/m && cp -r " FIX "%s %s/m", tmpdir, model, tmpdir);
    if (system(cmd) != 0) return NULL;
    static char path[300];
    snprintf(path, sizeof path, "%s/m", tmpdir);
    return path;
}

/* Runs a shell snippet inside the copy (cd'ed into it). */
static void in_copy(const char *sh) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s/m && %s", tmpdir, sh);
    if (system(cmd) != 0) fprintf(stderr, "  (setup command failed: %s)\n", sh);
}

/* Loads the broken copy and checks the status and a word of the message. */
static void expect_load_error(const char *what, se_status want, const char *needle) {
    se_model *m = NULL;
    se_error err = {0};
    char path[300];
    snprintf(path, sizeof path, "%s/m", tmpdir);
    se_status s = se_model_load(path, NULL, &m, &err);
    CHECK_MSG(s == want && m == NULL, "%s: got %s (%s), want %s", what, se_status_str(s), err.msg, se_status_str(want));
    CHECK_MSG(strstr(err.msg, needle) != NULL, "%s: message '%s' does not name '%s'", what, err.msg, needle);
    se_model_free(m);
}

TEST(broken_folders) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sembed_test_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        CHECK(0);
        return;
    }
    if (!fresh_copy("en-mean-norm")) {
        CHECK(0);
        return;
    }
    in_copy("rm config.json");
    expect_load_error("missing config.json", SE_E_IO, "config.json");
    fresh_copy("en-mean-norm");
    in_copy("printf '{\"hidden_size\": 32,\\n  \"vocab_size\": }' > config.json");
    expect_load_error("malformed config.json", SE_E_FORMAT, "config.json:2:");
    fresh_copy("en-mean-norm");
    in_copy("sed -i 's/\"gelu\"/\"swish\"/' config.json");
    expect_load_error("unknown activation", SE_E_UNSUPPORTED, "swish");
    fresh_copy("en-plain-hf");
    in_copy("sed -i 's/\"hidden_size\": 16/\"hidden_size\": 64/' config.json");
    expect_load_error("hidden_size mismatch", SE_E_FORMAT, "embeddings.word_embeddings.weight");
    fresh_copy("en-mean-norm");
    in_copy("sed -i 's/\"num_hidden_layers\": 2/\"num_hidden_layers\": 1/' config.json");
    expect_load_error("fewer layers than the checkpoint", SE_E_FORMAT, "num_hidden_layers");
    fresh_copy("en-mean-norm");
    in_copy("sed -i 's/\"num_hidden_layers\": 2/\"num_hidden_layers\": 3/' config.json");
    expect_load_error("more layers than the checkpoint", SE_E_FORMAT, "encoder.layer.2");
    fresh_copy("en-mean-norm");
    in_copy("sed -i 's/\"hidden_size\": 32/\"hidden_size\": \"32\"/' config.json");
    expect_load_error("wrong type", SE_E_FORMAT, "hidden_size");
    fresh_copy("en-mean-norm");
    in_copy("sed -i 's/\"num_attention_heads\": 4/\"num_attention_heads\": 5/' config.json");
    expect_load_error("heads do not divide", SE_E_FORMAT, "num_attention_heads");
    fresh_copy("en-mean-norm");
    in_copy("sed -i 's/sentence_transformers.models.Pooling/sentence_transformers.models.Asym/' modules.json");
    expect_load_error("unknown module", SE_E_UNSUPPORTED, "sentence_transformers.models.Asym");
    fresh_copy("en-mean-norm");
    in_copy("truncate -s -100 model.safetensors");
    expect_load_error("truncated weights", SE_E_FORMAT, "model.safetensors");
    fresh_copy("en-mean-norm");
    in_copy("truncate -s 4 model.safetensors");
    expect_load_error("weights file of 4 bytes", SE_E_FORMAT, "too short");
    fresh_copy("en-mean-norm");
    in_copy("mv model.safetensors pytorch_model.bin");
    expect_load_error("pytorch_model.bin that is not a torch zip", SE_E_FORMAT, "pytorch_model.bin: not a zip archive");
    fresh_copy("en-mean-norm");
    in_copy("sed -i 's/\"word_embedding_dimension\": 32/\"word_embedding_dimension\": 16/' 1_Pooling/config.json");
    expect_load_error("pooling dimension", SE_E_FORMAT, "word_embedding_dimension");
    fresh_copy("en-mean-norm");
    in_copy("sed -i 's/true/false/' 1_Pooling/config.json");
    expect_load_error("no pooling mode", SE_E_FORMAT, "pooling");
    fresh_copy("en-mean-norm");
    in_copy("sed -i 's/\"vocab_size\": 30522/\"vocab_size\": 1000/' config.json");
    expect_load_error("tokenizer larger than vocab_size", SE_E_FORMAT, "vocab_size");
    fresh_copy("en-mean-norm");
    in_copy("rm tokenizer.json");
    expect_load_error("no tokenizer", SE_E_IO, "tokenizer.json");
    fresh_copy("en-mean-norm");
    in_copy("echo '[' > modules.json");
    expect_load_error("malformed modules.json", SE_E_FORMAT, "modules.json");
    fresh_copy("zh-cls-dense-f16");
    in_copy("sed -i 's/\"in_features\": 16/\"in_features\": 17/' 2_Dense/config.json");
    expect_load_error("dense in_features", SE_E_FORMAT, "in_features");
    fresh_copy("zh-cls-dense-f16");
    in_copy("sed -i 's/Tanh/Softsign/' 2_Dense/config.json");
    expect_load_error("dense activation", SE_E_UNSUPPORTED, "Softsign");
    fresh_copy("zh-cls-dense-f16");
    in_copy("rm 2_Dense/model.safetensors");
    expect_load_error("dense weights missing", SE_E_IO, "Dense");
    fresh_copy("en-allpool-prompt");
    in_copy("sed -i 's/\"dot\"/\"jaccard\"/' config_sentence_transformers.json");
    expect_load_error("similarity function", SE_E_UNSUPPORTED, "jaccard");
    fresh_copy("en-plain-hf");
    in_copy("rm model-00002-of-00002.safetensors");
    expect_load_error("missing shard", SE_E_IO, "model-00002-of-00002.safetensors");
    /* do_lower_case in sentence_bert_config.json lowercases before a
     * tokenizer that does not (bge-small-zh style) */
    const char *path = fresh_copy("zh-cls-dense-f16");
    in_copy("sed -i 's/\"do_lower_case\": false/\"do_lower_case\": true/' sentence_bert_config.json");
    se_model *lm = NULL, *om = NULL;
    se_error lerr;
    CHECK(se_model_load(path, NULL, &lm, &lerr) == SE_OK);
    CHECK(se_model_load(FIX "zh-cls-dense-f16", NULL, &om, &lerr) == SE_OK);
    if (lm && om) {
        se_ctx *lc = NULL, *oc = NULL;
        se_ctx_new(lm, NULL, &lc, &lerr);
        se_ctx_new(om, NULL, &oc, &lerr);
        const char *up[1] = {"HELLO World \xC3\x89T\xC3\x89"}, *lo[1] = {"hello world \xC3\xA9t\xC3\xA9"};
        float a[12], b[12], c2[12];
        CHECK(se_encode(lc, up, NULL, 1, NULL, a, 12, NULL, &lerr) == SE_OK);
        CHECK(se_encode(oc, lo, NULL, 1, NULL, b, 12, NULL, &lerr) == SE_OK);
        CHECK(se_encode(oc, up, NULL, 1, NULL, c2, 12, NULL, &lerr) == SE_OK);
        CHECK(memcmp(a, b, sizeof a) == 0);
        CHECK(memcmp(c2, b, sizeof b) != 0); /* without it, case matters for this tokenizer */
        se_ctx_free(lc);
        se_ctx_free(oc);
    }
    se_model_free(lm);
    se_model_free(om);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    se_model *m = NULL;
    se_error err;
    CHECK(se_model_load("/nonexistent/dir", NULL, &m, &err) == SE_E_IO && m == NULL);
    CHECK(se_model_load(NULL, NULL, &m, &err) == SE_E_INVALID);
}

/* ==== configuration fields: type, range and null (issue 9 item 3) ==== */

/* Makes a fresh temp dir for a test (tmpdir); end_tmp removes it. */
static bool begin_tmp(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sembed_test_XXXXXX");
    return mkdtemp(tmpdir) != NULL;
}

static void end_tmp(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
}

/* Sets field key of the JSON object in file rel (inside the copy) to the
 * JSON text val, written verbatim (so that 1e300 or 12.5 reach the loader
 * exactly as a user would write them). */
static void set_json(const char *rel, const char *key, const char *val) {
    char path[512];
    snprintf(path, sizeof path, "%s/m/%s", tmpdir, rel);
    test_json_set_raw(path, key, val);
}

/* One bad field value: copy the fixture, set the field, expect the load to
 * fail with SE_E_FORMAT and a message naming the file and the field. */
static void bad_field(const char *fixture, const char *rel, const char *key, const char *val) {
    fresh_copy(fixture);
    set_json(rel, key, val);
    char what[256], needle[256];
    snprintf(what, sizeof what, "%s %s: %s = %s", fixture, rel, key, val);
    snprintf(needle, sizeof needle, "%s: field '%s'", rel, key);
    expect_load_error(what, SE_E_FORMAT, needle);
}

/* A field value sentence-transformers accepts: the load succeeds. */
static void good_field(const char *fixture, const char *rel, const char *key, const char *val) {
    const char *path = fresh_copy(fixture);
    set_json(rel, key, val);
    se_model *m = NULL;
    se_error err = {0};
    se_status s = se_model_load(path, NULL, &m, &err);
    CHECK_MSG(s == SE_OK, "%s %s: %s = %s: %s", fixture, rel, key, val, err.msg);
    se_model_free(m);
}

TEST(test_config_null_heads) {
    if (!begin_tmp()) {
        CHECK(0);
        return;
    }
    /* SIGFPE at model_folder.c:215 before the fix */
    bad_field("en-mean-norm", "config.json", "num_attention_heads", "null");
    /* every required integer: null, a fraction, a boolean, a string, huge */
    static const char *ints[] = {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                 "intermediate_size", "max_position_embeddings", "type_vocab_size"};
    static const char *bad_ints[] = {"null", "12.5", "true", "\"12\"", "1e300", "-1e300", "99999999999999999999999", "[4]"};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        for (size_t k = 0; k < sizeof bad_ints / sizeof *bad_ints; k++) bad_field("en-mean-norm", "config.json", ints[i], bad_ints[k]);
    bad_field("en-mean-norm", "config.json", "layer_norm_eps", "null");
    bad_field("en-mean-norm", "config.json", "layer_norm_eps", "true");
    bad_field("en-mean-norm", "config.json", "layer_norm_eps", "\"1e-12\"");
    bad_field("en-mean-norm", "config.json", "layer_norm_eps", "1e300");
    bad_field("en-mean-norm", "config.json", "hidden_act", "null");
    bad_field("en-mean-norm", "config.json", "model_type", "null");
    bad_field("en-mean-norm", "config.json", "position_embedding_type", "null");
    /* integral reals are integers (some tools write 32.0) */
    good_field("en-mean-norm", "config.json", "hidden_size", "32.0");
    end_tmp();
}

TEST(test_config_null_modules) {
    if (!begin_tmp()) {
        CHECK(0);
        return;
    }
    /* sentence_bert_config.json */
    bad_field("en-mean-norm", "sentence_bert_config.json", "do_lower_case", "null");
    bad_field("en-mean-norm", "sentence_bert_config.json", "do_lower_case", "1");
    bad_field("en-mean-norm", "sentence_bert_config.json", "max_seq_length", "12.5");
    bad_field("en-mean-norm", "sentence_bert_config.json", "max_seq_length", "1e300");
    bad_field("en-mean-norm", "sentence_bert_config.json", "max_seq_length", "false");
    /* sentence-transformers itself reads max_seq_length null as "derive it" */
    good_field("en-mean-norm", "sentence_bert_config.json", "max_seq_length", "null");
    /* 1_Pooling/config.json */
    bad_field("en-mean-norm", "1_Pooling/config.json", "pooling_mode_mean_tokens", "null");
    bad_field("en-mean-norm", "1_Pooling/config.json", "pooling_mode_cls_token", "1");
    bad_field("en-mean-norm", "1_Pooling/config.json", "include_prompt", "null");
    bad_field("en-mean-norm", "1_Pooling/config.json", "word_embedding_dimension", "null");
    bad_field("en-mean-norm", "1_Pooling/config.json", "word_embedding_dimension", "32.5");
    bad_field("en-mean-norm", "1_Pooling/config.json", "pooling_mode", "null");
    /* 2_Dense/config.json */
    bad_field("zh-cls-dense-f16", "2_Dense/config.json", "in_features", "null");
    bad_field("zh-cls-dense-f16", "2_Dense/config.json", "out_features", "1e300");
    bad_field("zh-cls-dense-f16", "2_Dense/config.json", "out_features", "12.5");
    bad_field("zh-cls-dense-f16", "2_Dense/config.json", "bias", "null");
    bad_field("zh-cls-dense-f16", "2_Dense/config.json", "bias", "0");
    bad_field("zh-cls-dense-f16", "2_Dense/config.json", "activation_function", "null");
    /* config_sentence_transformers.json: null is what sentence-transformers
     * writes for "not set" in these two */
    good_field("en-allpool-prompt", "config_sentence_transformers.json", "default_prompt_name", "null");
    good_field("en-allpool-prompt", "config_sentence_transformers.json", "similarity_fn_name", "null");
    bad_field("en-allpool-prompt", "config_sentence_transformers.json", "similarity_fn_name", "3");
    bad_field("en-allpool-prompt", "config_sentence_transformers.json", "prompts", "[\"query: \"]");
    /* modules.json entries */
    fresh_copy("en-mean-norm");
    in_copy("sed -i 's/\"type\": \"sentence_transformers.models.Pooling\"/\"type\": null/' modules.json");
    expect_load_error("modules.json type null", SE_E_FORMAT, "modules.json[1]: field 'type'");
    fresh_copy("en-mean-norm");
    in_copy("sed -i 's/\"path\": \"1_Pooling\"/\"path\": null/' modules.json");
    expect_load_error("modules.json path null", SE_E_FORMAT, "modules.json[1]: field 'path'");
    end_tmp();
}

/* ==== model files that are not regular files (issue 9 items 12, 23) ==== */

/* Replaces file rel of the copy by a dangling symlink, a directory or a
 * FIFO, and expects the load to refuse it (SE_E_IO naming the file)
 * instead of treating it as absent. A FIFO must never be opened for
 * reading (it would block): alarm() turns a hang into a failed run. */
static void not_regular(const char *fixture, const char *rel) {
    static const char *kinds[3] = {"dangling symlink", "directory", "FIFO"};
    for (int k = 0; k < 3; k++) {
        fresh_copy(fixture);
        char sh[512];
        if (strcmp(rel, "tokenizer.json") == 0) { /* a vocab.txt the tokenizer could fall back to */
            char cwd[1024], cp[1200];
            if (getcwd(cwd, sizeof cwd)) {
                snprintf(cp, sizeof cp, "cp %s/" FIX "en-max-relu-bf16/vocab.txt .", cwd);
                in_copy(cp);
            }
        }
        if (k == 0) snprintf(sh, sizeof sh, "rm -rf %s && ln -s no-such-target.json %s", rel, rel);
        else if (k == 1) snprintf(sh, sizeof sh, "rm -rf %s && mkdir %s", rel, rel);
        else snprintf(sh, sizeof sh, "rm -rf %s && mkfifo %s", rel, rel);
        in_copy(sh);
        char what[256];
        snprintf(what, sizeof what, "%s %s as a %s", fixture, rel, kinds[k]);
        alarm(20);
        expect_load_error(what, SE_E_IO, rel);
        expect_load_error(what, SE_E_IO, k == 0 ? "dangling symlink" : k == 1 ? "is a directory" : "is a FIFO");
        alarm(0);
    }
}

TEST(test_model_files_not_regular) {
    if (!begin_tmp()) {
        CHECK(0);
        return;
    }
    /* every optional file the loader probes */
    not_regular("en-mean-norm", "modules.json");
    not_regular("en-mean-norm", "sentence_bert_config.json");
    not_regular("en-mean-norm", "1_Pooling/config.json");
    not_regular("en-mean-norm", "config_sentence_transformers.json");
    not_regular("en-mean-norm", "tokenizer_config.json");
    not_regular("en-mean-norm", "config.json");
    not_regular("en-mean-norm", "model.safetensors");
    not_regular("en-plain-hf", "config.json");
    not_regular("en-plain-hf", "model.safetensors.index.json");
    not_regular("zh-cls-dense-f16", "2_Dense/config.json");
    not_regular("zh-cls-dense-f16", "2_Dense/model.safetensors");
    /* tokenizer files too, even where another form (vocab.txt) is there */
    not_regular("en-mean-norm", "tokenizer.json");
    not_regular("en-mean-norm", "special_tokens_map.json");
    not_regular("zh-cls-dense-f16", "vocab.txt");
    /* the files sentence-transformers may lack are optional: absent is fine */
    fresh_copy("en-mean-norm");
    in_copy("rm config_sentence_transformers.json sentence_bert_config.json");
    se_model *m = NULL;
    se_error err = {0};
    char path[300];
    snprintf(path, sizeof path, "%s/m", tmpdir);
    CHECK_MSG(se_model_load(path, NULL, &m, &err) == SE_OK, "%s", err.msg);
    se_model_free(m);
    end_tmp();
}

/* A Hugging Face cache snapshot: every file a symlink into a blob store.
 * It loads and encodes exactly as the plain folder does. */
TEST(test_model_symlinked_files) {
    if (!begin_tmp()) {
        CHECK(0);
        return;
    }
    const char *fixtures[2] = {"zh-cls-dense-f16", "en-plain-hf"};
    for (int k = 0; k < 2; k++) {
        char cmd[2048];
        char cwd[1024];
        if (!getcwd(cwd, sizeof cwd)) {
            CHECK(0);
            break;
        }
        snprintf(cmd, sizeof cmd,
                 "cd %s && rm -rf m blobs && cp -r %s/" FIX "%s blobs && mkdir m && cd blobs && "
                 "for f in $(find . -type f); do mkdir -p ../m/$(dirname $f) && mv $f $f.blob && "
                 "ln -s $(pwd)/$f.blob ../m/$f; done",
                 tmpdir, cwd, fixtures[k]);
        CHECK(system(cmd) == 0);
        char path[300], orig[300];
        snprintf(path, sizeof path, "%s/m", tmpdir);
        snprintf(orig, sizeof orig, FIX "%s", fixtures[k]);
        se_model *a = NULL, *b = NULL;
        se_error err = {0};
        CHECK_MSG(se_model_load(path, NULL, &a, &err) == SE_OK, "%s: %s", fixtures[k], err.msg);
        CHECK(se_model_load(orig, NULL, &b, &err) == SE_OK);
        if (a && b) {
            se_ctx *ca = NULL, *cb = NULL;
            se_ctx_new(a, NULL, &ca, &err);
            se_ctx_new(b, NULL, &cb, &err);
            size_t dim = se_encode_dim(a, NULL);
            float *x = malloc(3 * dim * sizeof *x), *y = malloc(3 * dim * sizeof *y);
            CHECK(se_encode(ca, (const char *const *)sentences, NULL, 3, NULL, x, 3 * dim, NULL, &err) == SE_OK);
            CHECK(se_encode(cb, (const char *const *)sentences, NULL, 3, NULL, y, 3 * dim, NULL, &err) == SE_OK);
            CHECK(memcmp(x, y, 3 * dim * sizeof *x) == 0);
            free(x), free(y);
            se_ctx_free(ca);
            se_ctx_free(cb);
        }
        se_model_free(a);
        se_model_free(b);
    }
    end_tmp();
}

/* Encodes texts with the model at dir into out (n * dim floats); false
 * when the load or the encode fails. */
static bool encode_with(const char *dir, const char *const *texts, size_t n, float *out, size_t cap, size_t *dim) {
    se_model *m = NULL;
    se_ctx *c = NULL;
    se_error err = {0};
    bool ok = se_model_load(dir, NULL, &m, &err) == SE_OK && se_ctx_new(m, NULL, &c, &err) == SE_OK;
    if (ok) {
        *dim = se_encode_dim(m, NULL);
        ok = se_encode(c, texts, NULL, n, NULL, out, cap, NULL, &err) == SE_OK;
    }
    if (!ok) fprintf(stderr, "    %s: %s\n", dir, err.msg);
    se_ctx_free(c);
    se_model_free(m);
    return ok;
}

/* Checkpoints that ship only pytorch_model.bin (tools/gen_bin_twins.py
 * wrote the same tensors as the safetensors fixtures with torch.save):
 * F16 weights with an int64 position_ids buffer and a Dense module in
 * 2_Dense/pytorch_model.bin, and a sharded checkpoint with
 * pytorch_model.bin.index.json. Embeddings must be bit-identical to the
 * safetensors twin's; a damaged .bin is an error naming the file. */
TEST(test_model_bin_twins) {
    static const char *texts[] = {"A man is playing a guitar.", "今天天气很好", "", "unaffable ##ing [UNK] straße"};
    static const char *pairs[][2] = {{FIX "zh-cls-dense-f16", FIX "zh-cls-dense-f16-bin"},
                                     {FIX "en-plain-hf", FIX "en-plain-hf-bin"}};
    enum { N = sizeof texts / sizeof *texts, CAP = 4096 };
    for (size_t k = 0; k < 2; k++) {
        static float a[CAP], b[CAP];
        size_t da = 0, db = 0;
        CHECK(encode_with(pairs[k][0], texts, N, a, CAP, &da));
        CHECK(encode_with(pairs[k][1], texts, N, b, CAP, &db));
        CHECK_MSG(da == db && da > 0 && memcmp(a, b, N * da * sizeof *a) == 0, "%s: embeddings differ from %s",
                  pairs[k][1], pairs[k][0]);
    }
    if (!begin_tmp()) {
        CHECK(0);
        return;
    }
    char cmd[1024], path[300];
    snprintf(path, sizeof path, "%s/m", tmpdir);
    /* cut the checkpoint short: an error naming it, no crash */
    snprintf(cmd, sizeof cmd, "cp -rL " FIX "zh-cls-dense-f16-bin %s && truncate -s 5000 %s/pytorch_model.bin", path, path);
    CHECK(system(cmd) == 0);
    se_model *m = NULL;
    se_error err = {0};
    se_status st = se_model_load(path, NULL, &m, &err);
    CHECK_MSG(st == SE_E_FORMAT && strstr(err.msg, "pytorch_model.bin"), "truncated .bin: %s: %s", se_status_str(st),
              err.msg);
    se_model_free(m);
    /* the Dense module's .bin damaged the same way */
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -rL " FIX "zh-cls-dense-f16-bin %s && truncate -s 100 %s/2_Dense/pytorch_model.bin",
             path, path, path);
    CHECK(system(cmd) == 0);
    m = NULL;
    st = se_model_load(path, NULL, &m, &err);
    CHECK_MSG(st == SE_E_FORMAT && strstr(err.msg, "2_Dense/pytorch_model.bin"), "truncated Dense .bin: %s: %s",
              se_status_str(st), err.msg);
    se_model_free(m);
    end_tmp();
}

/* A missing model folder says so, not "no config.json". */
TEST(test_model_folder_missing) {
    se_model *m = NULL;
    se_error err = {0};
    CHECK(se_model_load("/nonexistent/dir", NULL, &m, &err) == SE_E_IO && m == NULL);
    CHECK_MSG(strcmp(err.msg, "model folder '/nonexistent/dir': no such folder") == 0, "message '%s'", err.msg);
    CHECK(se_model_load(FIX "sentences.jsonl", NULL, &m, &err) == SE_E_IO && m == NULL);
    CHECK_MSG(strcmp(err.msg, "model folder '" FIX "sentences.jsonl': is not a folder") == 0, "message '%s'", err.msg);
}

/* ==== non-finite outputs (issue 9 item 11) ==== */

/* Writes v over element `elem` of tensor `name` in the copy's file rel
 * (found through the safetensors reader), in the tensor's dtype (F32, or
 * a NaN in BF16/F16). */
static bool poison(const char *rel, const char *name, size_t elem, float v) {
    char path[512];
    snprintf(path, sizeof path, "%s/m/%s", tmpdir, rel);
    se_st_file f;
    se_error err;
    if (se_st_open(path, false, &f, &err) != SE_OK) return false;
    const se_st_tensor *t = se_st_find(&f, name);
    bool ok = t && elem < t->n_elem && (t->dtype == SE_ST_F32 || isnan(v));
    size_t es = t ? se_st_dtype_size(t->dtype) : 0;
    long off = ok ? (long)(t->data - f.base) + (long)(es * elem) : 0;
    uint16_t nan16 = t && t->dtype == SE_ST_BF16 ? 0x7FC0 : 0x7E00;
    se_st_close(&f);
    if (!ok) return false;
    FILE *fp = fopen(path, "r+b");
    ok = fp && fseek(fp, off, SEEK_SET) == 0 && (es == 4 ? fwrite(&v, 4, 1, fp) : fwrite(&nan16, 2, 1, fp)) == 1;
    if (fp) fclose(fp);
    return ok;
}

/* The vocabulary id of a one-token word in a fixture's tokenizer. */
static int32_t word_id(const char *fixture, const char *word) {
    char dir[256];
    snprintf(dir, sizeof dir, FIX "%s", fixture);
    se_tokenizer *tok = NULL;
    se_error err;
    int32_t ids[16];
    size_t n = 0;
    if (se_tokenizer_load(dir, &tok, &err) != SE_OK) return -1;
    se_status s = se_tokenize(tok, word, strlen(word), NULL, 0, NULL, ids, NULL, 16, &n, NULL, &err);
    se_tokenizer_free(tok);
    return s == SE_OK && n == 3 ? ids[1] : -1;
}

/* Encodes texts with the copy and expects SE_E_RANGE naming text `bad`
 * (or SE_OK and finite values when bad < 0). */
static void expect_encode(const char *what, const char *const *texts, size_t n, long bad) {
    char path[300];
    snprintf(path, sizeof path, "%s/m", tmpdir);
    se_model *m = NULL;
    se_ctx *c = NULL;
    se_error err = {0};
    CHECK_MSG(se_model_load(path, NULL, &m, &err) == SE_OK, "%s: %s", what, err.msg);
    if (!m) return;
    CHECK(se_ctx_new(m, NULL, &c, &err) == SE_OK);
    size_t dim = se_encode_dim(m, NULL);
    float *out = malloc(n * dim * sizeof *out);
    se_status s = se_encode(c, texts, NULL, n, NULL, out, n * dim, NULL, &err);
    if (bad < 0) {
        CHECK_MSG(s == SE_OK, "%s: %s %s", what, se_status_str(s), err.msg);
        for (size_t i = 0; s == SE_OK && i < n * dim; i++) CHECK(isfinite(out[i]));
    } else {
        char needle[64];
        snprintf(needle, sizeof needle, "text %ld:", bad);
        CHECK_MSG(s == SE_E_RANGE, "%s: got %s, want SE_E_RANGE", what, se_status_str(s));
        CHECK_MSG(strstr(err.msg, needle) && strstr(err.msg, "NaN"), "%s: message '%s' does not name '%s'", what, err.msg,
                  needle);
    }
    free(out);
    se_ctx_free(c);
    se_model_free(m);
}

TEST(test_encode_nonfinite) {
    if (!begin_tmp()) {
        CHECK(0);
        return;
    }
    const char *texts[3] = {"hello world", "the zebra runs", "fine weather"};
    /* a NaN in one word's embedding row: the text using it fails, named by
     * its index; the others still encode. en-max-relu-bf16 max-pools
     * (x > max ? x : max), which would step over NaN hidden states: the
     * hidden states are checked, not only the output. */
    static const struct {
        const char *fixture;
        size_t H;
    } nan_cases[2] = {{"en-mean-norm", 32}, {"en-max-relu-bf16", 16}};
    for (int k = 0; k < 2; k++) {
        int32_t zebra = word_id(nan_cases[k].fixture, "zebra");
        CHECK(zebra > 0);
        fresh_copy(nan_cases[k].fixture);
        CHECK(poison("model.safetensors", "embeddings.word_embeddings.weight", (size_t)zebra * nan_cases[k].H + 5, NAN));
        expect_encode(nan_cases[k].fixture, texts, 3, 1);
        expect_encode(nan_cases[k].fixture, texts, 1, -1);
        expect_encode(nan_cases[k].fixture, texts + 2, 1, -1);
    }
    /* an overflowing weight (1e38) that drives the activations to inf */
    fresh_copy("en-mean-norm");
    CHECK(poison("model.safetensors", "embeddings.LayerNorm.weight", 3, 1e38f));
    expect_encode("1e38 LayerNorm weight", texts, 3, 0);
    /* a NaN in a Dense module's weights (after pooling) */
    fresh_copy("en-allpool-prompt");
    CHECK(poison("2_Dense/model.safetensors", "linear.weight", 0, NAN));
    expect_encode("NaN Dense weight", texts, 3, 0);
    end_tmp();
}

/* ==== a weight file changed while loaded (issue 9 item 13) ==== */

/* Loads the copy (weights mapped), runs sh on its files, and expects the
 * next encode to fail with SE_E_IO naming `file`, not to die of SIGBUS
 * reading the mapping past the new end of file. */
static void changed_after_load(const char *fixture, const char *sh, const char *file) {
    const char *path = fresh_copy(fixture);
    se_model *m = NULL;
    se_ctx *c = NULL;
    se_error err = {0};
    CHECK_MSG(se_model_load(path, NULL, &m, &err) == SE_OK, "%s: %s", fixture, err.msg);
    if (!m) return;
    CHECK(se_ctx_new(m, NULL, &c, &err) == SE_OK);
    size_t dim = se_encode_dim(m, NULL);
    float *out = malloc(3 * dim * sizeof *out);
    CHECK(se_encode(c, (const char *const *)sentences, NULL, 3, NULL, out, 3 * dim, NULL, &err) == SE_OK);
    in_copy(sh);
    se_status s = se_encode(c, (const char *const *)sentences, NULL, 3, NULL, out, 3 * dim, NULL, &err);
    CHECK_MSG(s == SE_E_IO, "%s after '%s': got %s, want SE_E_IO", fixture, sh, se_status_str(s));
    CHECK_MSG(strstr(err.msg, file) && strstr(err.msg, "changed"), "%s after '%s': message '%s'", fixture, sh, err.msg);
    /* the fingerprint hashes the weights at its first request: the same
     * refusal, not a fault or a hash of the new bytes */
    char fp[SE_FINGERPRINT_MAX];
    s = se_model_fingerprint(m, fp, sizeof fp, &err);
    CHECK_MSG(s == SE_E_IO && strstr(err.msg, file), "%s after '%s': fingerprint %s: %s", fixture, sh, se_status_str(s), err.msg);
    free(out);
    se_ctx_free(c);
    se_model_free(m);
}

TEST(test_model_file_truncated) {
    if (!begin_tmp()) {
        CHECK(0);
        return;
    }
    changed_after_load("en-mean-norm", "truncate -s 100 model.safetensors", "model.safetensors");
    changed_after_load("en-mean-norm", "truncate -s 0 model.safetensors", "model.safetensors");
    changed_after_load("en-plain-hf", "truncate -s 1000 model-00002-of-00002.safetensors", "model-00002-of-00002.safetensors");
    changed_after_load("zh-cls-dense-f16", "truncate -s 64 2_Dense/model.safetensors", "2_Dense/model.safetensors");
    /* rewritten in place with the same size: the mapping would read the
     * new bytes (another model's weights) silently */
    changed_after_load("en-mean-norm", "touch -d '2001-01-01' model.safetensors", "model.safetensors");
    /* replaced by rename: the mapping keeps the old file, which is intact */
    const char *path = fresh_copy("en-mean-norm");
    se_model *m = NULL;
    se_ctx *c = NULL;
    se_error err = {0};
    CHECK(se_model_load(path, NULL, &m, &err) == SE_OK);
    if (m) {
        in_copy("cp model.safetensors new && truncate -s 100 new && mv new model.safetensors");
        CHECK(se_ctx_new(m, NULL, &c, &err) == SE_OK);
        float out[3 * 32];
        CHECK_MSG(se_encode(c, (const char *const *)sentences, NULL, 3, NULL, out, 3 * 32, NULL, &err) == SE_OK, "%s", err.msg);
        se_ctx_free(c);
        se_model_free(m);
    }
    /* read into memory (use_mmap false): nothing to check */
    path = fresh_copy("en-mean-norm");
    se_model_params mp = se_model_default_params();
    mp.use_mmap = false;
    CHECK(se_model_load(path, &mp, &m, &err) == SE_OK);
    if (m) {
        in_copy("truncate -s 100 model.safetensors");
        CHECK(se_ctx_new(m, NULL, &c, &err) == SE_OK);
        float out[3 * 32];
        CHECK_MSG(se_encode(c, (const char *const *)sentences, NULL, 3, NULL, out, 3 * 32, NULL, &err) == SE_OK, "%s", err.msg);
        se_ctx_free(c);
        se_model_free(m);
    }
    end_tmp();
}

/* ==== model fingerprint ==== */

/* se_hash64 is XXH64: vectors from python3-xxhash 3.2.0 over the bytes
 * (7 i + 3) & 255, covering every tail length path and the 32-byte lanes. */
TEST(test_hash64_vectors) {
    static const struct {
        size_t n;
        uint64_t seed, want;
    } v[] = {
        {0, 0x0ull, 0xef46db3751d8e999ull},    {1, 0x0ull, 0x1f25c8d0bc1f4bb6ull},
        {3, 0x0ull, 0x31d2363f52e564c9ull},    {4, 0x0ull, 0x9bb64b7d66ee9fdaull},
        {8, 0x0ull, 0xdab99d95c6f90092ull},    {31, 0x0ull, 0xa2aa5f33cc4a6119ull},
        {32, 0x0ull, 0x23c3c17ef790fd97ull},   {33, 0x0ull, 0x50a7cfc7ba588784ull},
        {100, 0x0ull, 0xa61f8d4c170fe531ull},  {1000, 0x0ull, 0x5f235fa033f1a3fbull},
        {1000, 0x3039ull, 0x365c39a0c5a4c88eull}, {999, 0xffffffffffffffffull, 0x310e45c108d38b66ull},
    };
    uint8_t d[1000];
    for (int i = 0; i < 1000; i++) d[i] = (uint8_t)((i * 7 + 3) & 255);
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        CHECK_MSG(se_hash64(d, v[i].n, v[i].seed) == v[i].want, "n=%zu: %016llx", v[i].n,
                  (unsigned long long)se_hash64(d, v[i].n, v[i].seed));
    const char *s = "Nobody inspects the spammish repetition";
    CHECK(se_hash64(s, strlen(s), 0) == 0xfbcea83c8a378bf1ull);
}

/* The value of field key ("weights=") in a fingerprint, as a string. */
static void fp_field(const char *fp, const char *key, char *out, size_t cap) {
    const char *p = strstr(fp, key);
    size_t n = 0;
    if (p) {
        p += strlen(key);
        while (p[n] && p[n] != ' ' && n + 1 < cap) n++;
        memcpy(out, p, n);
    }
    out[n] = 0;
}

/* Whether fingerprints a and b differ exactly in the fields listed in
 * `differ` (space-separated keys such as "weights=") and agree in all
 * others. */
static bool fp_differ_only(const char *a, const char *b, const char *differ) {
    static const char *keys[] = {"arch=", "dim=", "dtype=", "config=", "tokenizer=", "weights="};
    for (int k = 0; k < 6; k++) {
        char x[64], y[64];
        fp_field(a, keys[k], x, sizeof x);
        fp_field(b, keys[k], y, sizeof y);
        bool should = strstr(differ, keys[k]) != NULL;
        if (!x[0] || !y[0] || (strcmp(x, y) != 0) != should) {
            fprintf(stderr, "    %s: '%s' vs '%s' (should %s)\n", keys[k], x, y, should ? "differ" : "agree");
            return false;
        }
    }
    return true;
}

/* The fingerprint of the model at dir loaded with dtype ("" on failure). */
static void fingerprint_of(const char *dir, se_dtype dtype, char *fp) {
    se_model_params mp = se_model_default_params();
    mp.dtype = dtype;
    se_model *m = NULL;
    se_error err = {0};
    fp[0] = 0;
    if (se_model_load(dir, &mp, &m, &err) != SE_OK) {
        if (dtype == SE_DTYPE_F32) fprintf(stderr, "    load %s: %s\n", dir, err.msg);
        return;
    }
    CHECK(se_model_fingerprint(m, fp, SE_FINGERPRINT_MAX, &err) == SE_OK);
    se_model_free(m);
}

TEST(test_model_fingerprint) {
    char a[SE_FINGERPRINT_MAX], b[SE_FINGERPRINT_MAX];
    /* the same folder twice: the same fingerprint, in the documented form */
    fingerprint_of(FIX "en-mean-norm", SE_DTYPE_F32, a);
    fingerprint_of(FIX "en-mean-norm", SE_DTYPE_F32, b);
    CHECK_MSG(a[0] && strcmp(a, b) == 0, "'%s' vs '%s'", a, b);
    unsigned long long h1, h2, h3;
    char tail;
    CHECK_MSG(sscanf(a, "arch=bert dim=32 dtype=f32 config=%16llx tokenizer=%16llx weights=%16llx%c", &h1, &h2, &h3, &tail) == 3,
              "form: '%s'", a);
    CHECK(strlen(a) == strlen("arch=bert dim=32 dtype=f32 config= tokenizer= weights=") + 48);
    /* however the folder's path is spelt */
    fingerprint_of(FIX "en-mean-norm/", SE_DTYPE_F32, b);
    CHECK_MSG(strcmp(a, b) == 0, "trailing slash: '%s' vs '%s'", a, b);
    fingerprint_of("./" FIX "en-mean-norm//", SE_DTYPE_F32, b);
    CHECK_MSG(strcmp(a, b) == 0, "./ and //: '%s' vs '%s'", a, b);
    char zh[SE_FINGERPRINT_MAX];
    fingerprint_of(FIX "zh-cls-dense-f16", SE_DTYPE_F32, zh);
    fingerprint_of(FIX "zh-cls-dense-f16/", SE_DTYPE_F32, b);
    CHECK_MSG(zh[0] && strcmp(zh, b) == 0, "Dense, trailing slash: '%s' vs '%s'", zh, b);
    /* a too-small buffer */
    se_model *m = NULL;
    se_error err = {0};
    char small[20];
    CHECK(se_model_load(FIX "en-mean-norm", NULL, &m, &err) == SE_OK);
    CHECK(se_model_fingerprint(m, small, sizeof small, &err) == SE_E_BUFFER);
    se_model_free(m);
    if (!begin_tmp()) {
        CHECK(0);
        return;
    }
    char path[300];
    snprintf(path, sizeof path, "%s/m", tmpdir);
    /* a copy elsewhere is the same model */
    fresh_copy("en-mean-norm");
    fingerprint_of(path, SE_DTYPE_F32, b);
    CHECK_MSG(strcmp(a, b) == 0, "copy: '%s' vs '%s'", a, b);
    /* one weight byte changed (the last byte of the data: a mantissa bit
     * of the last float is not enough to see in the outputs, but it is
     * another model): only weights= changes */
    in_copy("printf '\\001' | dd of=model.safetensors bs=1 seek=$(($(stat -c %s model.safetensors) - 4)) conv=notrunc "
            "status=none");
    fingerprint_of(path, SE_DTYPE_F32, b);
    CHECK_MSG(fp_differ_only(a, b, "weights="), "one weight byte: '%s' vs '%s'", a, b);
    /* a configuration file changed: only config= */
    fresh_copy("en-mean-norm");
    set_json("1_Pooling/config.json", "include_prompt", "false");
    fingerprint_of(path, SE_DTYPE_F32, b);
    CHECK_MSG(fp_differ_only(a, b, "config="), "pooling config: '%s' vs '%s'", a, b);
    fresh_copy("en-mean-norm");
    set_json("config.json", "layer_norm_eps", "1e-11");
    fingerprint_of(path, SE_DTYPE_F32, b);
    CHECK_MSG(fp_differ_only(a, b, "config="), "config.json: '%s' vs '%s'", a, b);
    /* re-saved by other library versions, or reformatted: the same model */
    fresh_copy("en-mean-norm");
    set_json("config.json", "transformers_version", "\"9.9.9\"");
    set_json("config.json", "_name_or_path", "\"/somewhere/else\"");
    in_copy("sed -i 's/:/ :  /' 1_Pooling/config.json");
    fingerprint_of(path, SE_DTYPE_F32, b);
    CHECK_MSG(strcmp(a, b) == 0, "re-saved config: '%s' vs '%s'", a, b);
    fresh_copy("en-mean-norm");
    in_copy("rm 2_Normalize -rf; sed -i 's/\"type\": \"sentence_transformers.models.Normalize\"/\"type\": "
            "\"sentence_transformers.models.Normalize\", \"note\": 1/' modules.json");
    fingerprint_of(path, SE_DTYPE_F32, b);
    CHECK_MSG(fp_differ_only(a, b, "config="), "modules.json: '%s' vs '%s'", a, b);
    /* a tokenizer file changed: only tokenizer= */
    fresh_copy("en-mean-norm");
    in_copy("echo >> special_tokens_map.json");
    fingerprint_of(path, SE_DTYPE_F32, b);
    CHECK_MSG(fp_differ_only(a, b, "tokenizer="), "tokenizer: '%s' vs '%s'", a, b);
    /* a Dense module's weights count as weights */
    char d[SE_FINGERPRINT_MAX];
    fingerprint_of(FIX "zh-cls-dense-f16", SE_DTYPE_F32, d);
    fresh_copy("zh-cls-dense-f16");
    in_copy("printf '\\001' | dd of=2_Dense/model.safetensors bs=1 seek=$(($(stat -c %s 2_Dense/model.safetensors) - 2)) "
            "conv=notrunc status=none");
    fingerprint_of(path, SE_DTYPE_F32, b);
    CHECK_MSG(fp_differ_only(d, b, "weights="), "dense weights: '%s' vs '%s'", d, b);
    /* sharded checkpoints: every shard counts */
    fingerprint_of(FIX "en-plain-hf", SE_DTYPE_F32, d);
    fresh_copy("en-plain-hf");
    in_copy("printf '\\001' | dd of=model-00002-of-00002.safetensors bs=1 seek=$(($(stat -c %s "
            "model-00002-of-00002.safetensors) - 4)) conv=notrunc status=none");
    fingerprint_of(path, SE_DTYPE_F32, b);
    CHECK_MSG(fp_differ_only(d, b, "weights="), "shard 2: '%s' vs '%s'", d, b);
    /* weights read into memory instead of mapped: the same */
    se_model_params mp = se_model_default_params();
    mp.use_mmap = false;
    CHECK(se_model_load(FIX "en-plain-hf", &mp, &m, &err) == SE_OK);
    if (m) {
        CHECK(se_model_fingerprint(m, b, sizeof b, &err) == SE_OK);
        CHECK_MSG(strcmp(b, d) == 0, "read: '%s' vs '%s'", b, d);
    }
    se_model_free(m);
    end_tmp();
    /* another precision of the same model: only dtype= differs */
    static const struct {
        se_dtype dt;
        const char *name;
    } dts[2] = {{SE_DTYPE_BF16, "dtype=bf16"}, {SE_DTYPE_INT8, "dtype=int8"}};
    for (int k = 0; k < 2; k++) {
        fingerprint_of(FIX "en-mean-norm", dts[k].dt, b);
        if (!b[0]) {
            printf("  fingerprint: %s not available here\n", dts[k].name);
            continue;
        }
        CHECK(strstr(b, dts[k].name) != NULL);
        CHECK_MSG(fp_differ_only(a, b, "dtype="), "'%s' vs '%s'", a, b);
    }
}

/* Plain HF folder: mean pooling with a notice through the log callback. */
static void count_log(se_log_level lvl, const char *msg, void *user) {
    if (lvl == SE_LOG_WARN && strstr(msg, "mean pooling")) ++*(int *)user;
}

TEST(plain_folder_notice_and_info) {
    int notices = 0;
    se_model_params p = se_model_default_params();
    p.log_fn = count_log, p.log_user = &notices;
    se_model *m = NULL;
    se_error err;
    CHECK(se_model_load(FIX "en-plain-hf", &p, &m, &err) == SE_OK);
    CHECK(notices == 1);
    se_model_info in;
    CHECK(se_model_get_info(m, &in, &err) == SE_OK);
    CHECK(in.pooling == SE_POOL_MEAN && !in.has_modules_json && in.n_tokens_max == 48 && in.dim == 16);
    se_model_free(m);
    CHECK(se_model_load(FIX "en-allpool-prompt", NULL, &m, &err) == SE_OK);
    CHECK(se_model_get_info(m, &in, &err) == SE_OK);
    CHECK(in.pooling == 63 && !in.include_prompt && in.n_dense == 1 && in.dim == 8 && in.similarity == SE_SIM_DOT);
    CHECK(in.n_prompts == 2 && se_model_prompt_find(m, "passage") && !strcmp(se_model_prompt_find(m, "query"), "query: "));
    const char *name, *text;
    CHECK(se_model_prompt(m, 5, &name, &text, &err) == SE_E_RANGE);
    se_model_free(m);
    CHECK(se_model_load(FIX "zh-cls-dense-f16", NULL, &m, &err) == SE_OK);
    CHECK(se_model_get_info(m, &in, &err) == SE_OK);
    CHECK(in.weight_dtype == SE_DTYPE_F16 && in.norm_eps == 1e-5f && in.normalize && in.pooling == SE_POOL_CLS);
    se_model_free(m);
    se_model_free(NULL);
    se_ctx_free(NULL);
    se_tokenizer_free(NULL);
}

/* Reduced precision: every fixture sentence within the cosine bar
 * of the f32 reference (bf16 0.999, int8 0.995), and still batch-invariant;
 * or a clear SE_E_UNSUPPORTED on a CPU without the instructions. */
static void reduced_precision_of(const char *const *models, size_t n_models, se_dtype dtype, double bar, const char *tag) {
    for (size_t mi = 0; mi < n_models; mi++) {
        char dir[256];
        snprintf(dir, sizeof dir, FIX "%s", models[mi]);
        se_model_params mp = se_model_default_params();
        mp.dtype = dtype;
        se_model *m = NULL;
        se_error err = {0};
        se_status s = se_model_load(dir, &mp, &m, &err);
        if (s == SE_E_UNSUPPORTED) {
            CHECK(strstr(err.msg, "AVX") != NULL);
            printf("  %s: %s not available here (%s)\n", models[mi], tag, err.msg);
            continue;
        }
        CHECK_MSG(s == SE_OK, "%s: %s", models[mi], err.msg);
        if (!m) continue;
        se_model_info in;
        se_model_get_info(m, &in, &err);
        CHECK(in.compute_dtype == dtype);
        json_t *hdr;
        json_t *exp = load_expected(models[mi], &hdr);
        se_encode_params ep = se_encode_default_params();
        ep.prompt_name = json_string_value(json_object_get(hdr, "prompt_name"));
        size_t dim = se_encode_dim(m, &ep);
        float *all = malloc(n_sentences * dim * sizeof *all), *one = malloc(dim * sizeof *one);
        se_ctx *ctx = NULL;
        CHECK(se_ctx_new(m, NULL, &ctx, &err) == SE_OK);
        CHECK(se_encode(ctx, (const char *const *)sentences, NULL, n_sentences, &ep, all, n_sentences * dim, NULL, &err) == SE_OK);
        double worst = 1;
        for (size_t i = 0; i < n_sentences; i++) {
            size_t n;
            float *ref = floats(json_object_get(json_array_get(exp, i), "embedding"), &n);
            double c = cosine(all + i * dim, ref, dim);
            worst = fmin(worst, c);
            CHECK_MSG(c >= bar, "%s sentence %zu: %s cosine %.6f", models[mi], i, tag, c);
            free(ref);
            CHECK(se_encode(ctx, (const char *const *)&sentences[i], NULL, 1, &ep, one, dim, NULL, &err) == SE_OK);
            CHECK_MSG(memcmp(one, all + i * dim, dim * sizeof *one) == 0, "%s sentence %zu: %s not batch-invariant", models[mi], i, tag);
        }
        printf("  %-20s %s: worst cosine vs f32 reference %.6f\n", models[mi], tag, worst);
        free(all), free(one);
        se_ctx_free(ctx);
        se_model_free(m);
        json_decref(exp);
        json_decref(hdr);
    }
}

/* reduced_precision_of on the BERT fixtures. */
static void reduced_precision(se_dtype dtype, double bar, const char *tag) { reduced_precision_of(ref_models, N_MODELS, dtype, bar, tag); }

TEST(bf16_fidelity) {
    reduced_precision(SE_DTYPE_BF16, 0.999, "bf16");
    se_model_params mp = se_model_default_params();
    mp.dtype = SE_DTYPE_F16;
    se_model *m = NULL;
    se_error err;
    CHECK(se_model_load(FIX "en-mean-norm", &mp, &m, &err) == SE_E_UNSUPPORTED && m == NULL);
}

TEST(int8_fidelity) { reduced_precision(SE_DTYPE_INT8, 0.995, "int8"); }

/* ==== MPNet (issue 10 item 4) ==== */

static const char *mpnet_models[] = {"mpnet-mean-norm", "mpnet-prefix-max-f16"};
#define N_MPNET (sizeof mpnet_models / sizeof *mpnet_models)

/* The MPNet fixtures (all-mpnet-base-v2's layout, F32 bare names; an
 * MPNetForMaskedLM checkpoint, F16, "mpnet." names) against the PyTorch
 * reference: the tokenizer's ids, every layer's hidden states, the
 * embeddings (cosine >= 0.99999, max abs diff <= 1e-4). Run on every
 * kernel set by tests/run.sh. */
TEST(test_mpnet_reference) { check_references(mpnet_models, N_MPNET, true); }

/* MPNet outputs are bit-identical under any batching, thread count and
 * token budget (the relative bias is shared, not per batch). */
TEST(test_mpnet_batch_invariance) { check_batch_invariance(mpnet_models, N_MPNET); }

/* bf16 and int8 on the MPNet fixtures: within the BERT bars of the f32
 * reference, batch-invariant (or SE_E_UNSUPPORTED without AVX-512). */
TEST(test_mpnet_reduced_precision) {
    reduced_precision_of(mpnet_models, N_MPNET, SE_DTYPE_BF16, 0.999, "bf16");
    reduced_precision_of(mpnet_models, N_MPNET, SE_DTYPE_INT8, 0.995, "int8");
}

/* The relative position bucket against torch's: the first distance of
 * each logarithmic bucket as Debian's torch 1.13 computes
 * MPNetEncoder.relative_position_bucket (float32 log; 16 and 32 sit exactly
 * on a boundary, where float32 and double happen to agree), every distance
 * up to 3000 both ways (beyond 128 all in the last bucket). */
TEST(test_mpnet_rel_bucket) {
    static const int first[][2] = {{8, 8}, {12, 9}, {16, 10}, {23, 11}, {32, 12}, {46, 13}, {64, 14}, {91, 15}};
    int bad = 0;
    for (int64_t d = 0; d <= 3000; d++) {
        int want = (int)d; /* exact below 8 */
        for (size_t i = 0; i < sizeof first / sizeof *first; i++)
            if (d >= first[i][0]) want = first[i][1];
        /* rel = key - query: a key before the query (rel < 0) is in the lower half */
        int lo = se_mpnet_rel_bucket(-d), hi = se_mpnet_rel_bucket(d);
        if (lo != want || hi != (d ? want + 16 : 0)) {
            if (bad++ < 5) CHECK_MSG(0, "distance %lld: buckets %d / %d, want %d / %d", (long long)d, lo, hi, want, d ? want + 16 : 0);
        }
    }
    CHECK(bad == 0);
}

/* Captures the "emb_norm" rows of one text's forward pass into out (cap
 * floats); returns the token count. */
static size_t mpnet_emb_rows(se_ctx *ctx, capture *cap, const char *text, float *out, size_t cap_floats) {
    se_error err = {0};
    float emb[64];
    capture_free(cap);
    if (se_encode(ctx, &text, NULL, 1, NULL, emb, 64, NULL, &err) != SE_OK) return 0;
    size_t n = cap->n_tokens * cap->n_embd;
    if (!cap->states[0] || n > cap_floats) return 0;
    memcpy(out, cap->states[0], n * sizeof *out);
    return cap->n_tokens;
}

/* RoBERTa positions as Hugging Face's MPNetEmbeddings computes them: a
 * literal <pad> in the text (id 1, padding_idx) takes position 1 and does
 * not count, so the tokens after it keep the positions they have without
 * it. Before: the token after "<pad>" got position 5 instead of 4. */
TEST(test_mpnet_pad_token_positions) {
    se_model *m = NULL;
    se_error err = {0};
    CHECK(se_model_load(FIX "mpnet-mean-norm", NULL, &m, &err) == SE_OK);
    if (!m) return;
    capture cap = {0};
    se_ctx_params cp = se_ctx_default_params();
    cp.debug_fn = capture_cb;
    cp.debug_user = &cap;
    se_ctx *ctx = NULL;
    CHECK(se_ctx_new(m, &cp, &ctx, &err) == SE_OK);
    enum { CAPF = 64 * 12 };
    float with[CAPF], without[CAPF], alone[CAPF];
    size_t H = 12;
    size_t nw = mpnet_emb_rows(ctx, &cap, "hello <pad> world", with, CAPF);
    size_t no = mpnet_emb_rows(ctx, &cap, "hello world", without, CAPF);
    size_t na = mpnet_emb_rows(ctx, &cap, "<pad>", alone, CAPF);
    CHECK_MSG(nw == 5 && no == 4 && na == 3, "token counts %zu %zu %zu (want 5 4 3)", nw, no, na);
    if (nw == 5 && no == 4 && na == 3) {
        /* <s> hello <pad> world </s>  vs  <s> hello world </s>  vs  <s> <pad> </s> */
        CHECK_MSG(memcmp(with, without, 2 * H * sizeof(float)) == 0, "<s> hello: positions 2, 3");
        CHECK_MSG(memcmp(with + 3 * H, without + 2 * H, 2 * H * sizeof(float)) == 0, "world </s> after <pad>: positions 4, 5");
        CHECK_MSG(memcmp(with + 2 * H, alone + H, H * sizeof(float)) == 0, "<pad>: position 1 wherever it is");
    }
    capture_free(&cap);
    se_ctx_free(ctx);
    se_model_free(m);
}

/* MPNet's config.json and checkpoint, broken: a bucket count MPNetEncoder
 * would not use is refused naming the field; the bias tensor missing or
 * misshapen is named; `sembed info`'s architecture is MPNet. */
TEST(test_mpnet_broken_folders) {
    if (!begin_tmp()) {
        CHECK(0);
        return;
    }
    fresh_copy("mpnet-mean-norm");
    set_json("config.json", "relative_attention_num_buckets", "64");
    expect_load_error("64 buckets", SE_E_UNSUPPORTED, "relative_attention_num_buckets 64");
    bad_field("mpnet-mean-norm", "config.json", "relative_attention_num_buckets", "null");
    bad_field("mpnet-mean-norm", "config.json", "relative_attention_num_buckets", "\"32\"");
    good_field("mpnet-mean-norm", "config.json", "relative_attention_num_buckets", "32.0");
    /* one head more than the bias tensor has */
    fresh_copy("mpnet-mean-norm");
    set_json("config.json", "num_attention_heads", "4");
    expect_load_error("heads 4 vs 3", SE_E_FORMAT, "relative_attention_bias");
    /* the bias tensor renamed away */
    fresh_copy("mpnet-mean-norm");
    in_copy("sed -i 's/encoder.relative_attention_bias.weight/encoder.relative_attention_bias.xxxxxx/' model.safetensors");
    expect_load_error("no bias tensor", SE_E_FORMAT, "encoder.relative_attention_bias.weight");
    end_tmp();
    se_model *m = NULL;
    se_error err = {0};
    CHECK(se_model_load(FIX "mpnet-prefix-max-f16", NULL, &m, &err) == SE_OK);
    se_model_info in;
    if (m && se_model_get_info(m, &in, &err) == SE_OK) CHECK_MSG(strcmp(in.arch, "mpnet") == 0 && in.n_type == 0, "arch %s, %d token types", in.arch, in.n_type);
    se_model_free(m);
}

/* Every allocation failure during load and encode is reported cleanly. */
TEST(allocation_failures) {
    int loaded = 0, nomem = 0;
    for (long n = 1; n < 400; n++) {
        se_model *m = NULL;
        se_ctx *ctx = NULL;
        se_error err = {0};
        se_alloc_fail_after(n);
        se_status s = se_model_load(FIX "zh-cls-dense-f16", NULL, &m, &err);
        if (s == SE_OK) s = se_ctx_new(m, NULL, &ctx, &err);
        if (s == SE_OK) {
            float out[12 * 3];
            s = se_encode(ctx, (const char *const *)sentences, NULL, 3, NULL, out, 36, NULL, &err);
        }
        se_alloc_fail_after(0);
        CHECK_MSG(s == SE_OK || s == SE_E_NOMEM, "allocation %ld: %s %s", n, se_status_str(s), err.msg);
        loaded += s == SE_OK;
        nomem += s == SE_E_NOMEM;
        se_ctx_free(ctx);
        se_model_free(m);
    }
    CHECK(nomem > 20 && loaded > 0);
}

int main(void) {
    load_sentences();
    RUN(reference_fixtures);
    RUN(batch_invariance);
    RUN(text_inputs);
    RUN(truncate_dim_and_prompt);
    RUN(threads_share_model);
    RUN(broken_folders);
    RUN(test_config_null_heads);
    RUN(test_config_null_modules);
    RUN(test_model_files_not_regular);
    RUN(test_model_symlinked_files);
    RUN(test_model_bin_twins);
    RUN(test_model_folder_missing);
    RUN(test_encode_nonfinite);
    RUN(test_model_file_truncated);
    RUN(test_hash64_vectors);
    RUN(test_model_fingerprint);
    RUN(plain_folder_notice_and_info);
    RUN(bf16_fidelity);
    RUN(int8_fidelity);
    RUN(allocation_failures);
    RUN(test_mpnet_reference);
    RUN(test_mpnet_batch_invariance);
    RUN(test_mpnet_reduced_precision);
    RUN(test_mpnet_rel_bucket);
    RUN(test_mpnet_pad_token_positions);
    RUN(test_mpnet_broken_folders);
    for (size_t i = 0; i < n_sentences; i++) free(sentences[i]);
    free(sentences);
    return test_report("test_model");
}
