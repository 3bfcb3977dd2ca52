/*
 * test_archs.c - every architecture of the table against its independent
 * PyTorch reference (tests/fixtures/models/, tools/gen_fixtures.py), on the
 * reference's own token ids (se_encode_ids), so that the forward pass is
 * checked apart from the tokenizer: per-layer hidden states, the final
 * embedding (cosine >= 0.99999, max abs diff <= 1e-4), bit-identical
 * results under any batching, and se_encode_ids against se_encode.
 *
 * The model folders are used as they are, with their own tokenizers, and
 * se_encode on the texts must give the same bits as se_encode_ids on the
 * reference's ids. Should a folder's tokenizer fail to load, that is a
 * failure, and the forward is still checked on a copy with a stand-in
 * vocab.txt of the same size (the tokenizer's own fidelity is tested in
 * test_tokenizer / test_sentencepiece).
 *
 * Run from the repo root; tests/run.sh runs it on every kernel set.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sembed.h"
#include "test.h"
#include "test_fixtures.h"

/* The encoder fixtures of architectures other than plain BERT-with-WordPiece
 * (those are in test_model), with what each one shows. */
static const struct {
    const char *name, *arch;
} fixtures[] = {
    {"xlmr-mean-norm-bf16", "xlm-roberta"}, /* roberta. prefix, BF16, two shards, mean + Normalize */
    {"xlmr-cls-norm-bin", "xlm-roberta"},   /* pytorch_model.bin only, CLS + Normalize */
    {"bert-xlmr-tok-f16", "bert"},          /* BERT weights, vocab 1002, an XLM-R tokenizer */
};
#define N_FIXTURES (sizeof fixtures / sizeof *fixtures)

static char tmpdir[64];

/* Loads a fixture: as it is when its tokenizer loads, else from a copy
 * whose tokenizer files are replaced by a stand-in vocab.txt of
 * vocab_size entries (*stand_in says which). */
static se_model *load_fixture_as(const char *name, se_dtype dtype, bool *stand_in, se_error *err) {
    char dir[256];
    snprintf(dir, sizeof dir, FIX "%s", name);
    se_model *m = NULL;
    se_model_params mp = se_model_default_params();
    mp.dtype = dtype;
    *stand_in = false;
    se_status s = se_model_load(dir, &mp, &m, err);
    /* a dtype the CPU cannot run is the caller's to report */
    if (s == SE_OK || (s == SE_E_UNSUPPORTED && strstr(err->msg, "AVX"))) return m;
    /* every fixture's own tokenizer loads now: falling back is a failure,
     * though the forward is still checked on the reference's ids */
    CHECK_MSG(false, "%s: does not load with its own tokenizer: %s", name, err->msg);
    *stand_in = true;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "rm -rf %s/m && cp -r %s %s/m && cd %s/m && rm -f tokenizer.json sentencepiece.bpe.model tokenizer_config.json "
             "special_tokens_map.json && n=$(sed -n 's/.*\"vocab_size\": *\\([0-9]*\\).*/\\1/p' config.json) && "
             "{ echo '[PAD]'; echo '[UNK]'; echo '[CLS]'; echo '[SEP]'; i=4; while [ $i -lt $n ]; do echo \"w$i\"; "
             "i=$((i+1)); done; } > vocab.txt",
             tmpdir, dir, tmpdir, tmpdir);
    if (system(cmd) != 0) return NULL;
    snprintf(dir, sizeof dir, "%s/m", tmpdir);
    if ((s = se_model_load(dir, &mp, &m, err)) != SE_OK && s != SE_E_UNSUPPORTED)
        fprintf(stderr, "  %s (stand-in vocabulary): %s\n", name, err->msg);
    return m;
}

/* The fixture in F32 (see load_fixture_as). */
static se_model *load_fixture(const char *name, bool *stand_in) {
    se_error err = {0};
    return load_fixture_as(name, SE_DTYPE_F32, stand_in, &err);
}

/* Each fixture sentence alone, from the reference's ids: every hidden
 * state and the embedding against the reference; then all of them in one
 * call, in batches of every size, bit-identical to alone. */
TEST(reference_on_ids) {
    for (size_t fi = 0; fi < N_FIXTURES; fi++) {
        const char *name = fixtures[fi].name;
        json_t *hdr, *exp = load_expected(name, &hdr);
        CHECK_MSG(exp && hdr && json_array_size(exp) > 0, "%s: expected.jsonl unreadable", name);
        if (!exp || !hdr) continue;
        bool stand_in;
        se_model *m = load_fixture(name, &stand_in);
        CHECK_MSG(m != NULL, "%s: does not load", name);
        if (!m) continue;
        se_model_info info;
        se_error err = {0};
        CHECK(se_model_get_info(m, &info, &err) == SE_OK);
        CHECK_MSG(strcmp(info.arch, fixtures[fi].arch) == 0, "%s: architecture %s, expected %s", name, info.arch,
                  fixtures[fi].arch);
        capture cap = {0};
        se_ctx_params cp = se_ctx_default_params();
        cp.n_threads = 2;
        cp.debug_fn = capture_cb;
        cp.debug_user = &cap;
        se_ctx *ctx = NULL;
        CHECK(se_ctx_new(m, &cp, &ctx, &err) == SE_OK);
        size_t n = json_array_size(exp), dim = se_encode_dim(m, NULL);
        float *alone = malloc(n * dim * sizeof *alone), *all = malloc(n * dim * sizeof *all);
        int32_t **ids = calloc(n, sizeof *ids);
        size_t *lens = calloc(n, sizeof *lens);
        double worst_cos = 1, worst_abs = 0;
        for (size_t i = 0; i < n && ctx; i++) {
            json_t *e = json_array_get(exp, i);
            ids[i] = ints(json_object_get(e, "ids"), &lens[i]);
            se_status s = se_encode_ids(ctx, (const int32_t *const *)&ids[i], &lens[i], 1, NULL, alone + i * dim, dim, &err);
            CHECK_MSG(s == SE_OK, "%s sentence %zu: %s", name, i, err.msg);
            if (s != SE_OK) continue;
            json_t *hs = json_object_get(e, "hidden_states");
            CHECK_MSG(cap.n == (int)json_array_size(hs), "%s: %d hidden states, expected %zu", name, cap.n,
                      json_array_size(hs));
            for (size_t l = 0; l < json_array_size(hs) && (int)l < cap.n; l++) {
                size_t k;
                float *ref = floats(json_array_get(hs, l), &k);
                char label[96];
                snprintf(label, sizeof label, "%s s%zu hidden_states[%zu]", name, i, l);
                CHECK(k == cap.n_tokens * cap.n_embd && cap.n_tokens == lens[i]);
                if (k == cap.n_tokens * cap.n_embd) CHECK_CLOSE(cap.states[l], ref, k, 5e-5, 1e-4, label);
                free(ref);
            }
            size_t k;
            float *ref = floats(json_object_get(e, "embedding"), &k);
            CHECK(k == dim);
            if (k == dim) {
                double c = cosine(alone + i * dim, ref, k), mx = 0;
                for (size_t d = 0; d < k; d++) mx = fmax(mx, fabs((double)alone[i * dim + d] - ref[d]));
                worst_cos = fmin(worst_cos, c), worst_abs = fmax(worst_abs, mx);
                CHECK_MSG(c >= 0.99999 && mx <= 1e-4, "%s sentence %zu: cosine %.9f, max abs %.3g", name, i, c, mx);
            }
            free(ref);
        }
        printf("  %-20s %-12s %zu sentences%s: worst cosine %.9f, max abs diff %.3g\n", name, fixtures[fi].arch, n,
               stand_in ? " (stand-in vocabulary)" : "", worst_cos, worst_abs);
        /* batching: every batch size gives the same bits as alone */
        se_ctx_params bp = se_ctx_default_params();
        bp.n_threads = 2;
        bp.n_batch_tokens = 1; /* raised to max_seq_length: a few sentences a pass */
        se_ctx *small = NULL;
        CHECK(se_ctx_new(m, &bp, &small, &err) == SE_OK);
        se_ctx *ctxs[2] = {ctx, small};
        for (int c = 0; c < 2 && small; c++) {
            memset(all, 0, n * dim * sizeof *all);
            CHECK(se_encode_ids(ctxs[c], (const int32_t *const *)ids, lens, n, NULL, all, n * dim, &err) == SE_OK);
            CHECK_MSG(memcmp(all, alone, n * dim * sizeof *all) == 0, "%s: batched (ctx %d) differs from alone", name, c);
        }
        /* the text path gives the same bits where the tokenizer is the real one */
        if (!stand_in) {
            const char **texts = calloc(n, sizeof *texts);
            for (size_t i = 0; i < n; i++) texts[i] = json_string_value(json_object_get(json_array_get(exp, i), "text"));
            CHECK(se_encode(ctx, texts, NULL, n, NULL, all, n * dim, NULL, &err) == SE_OK);
            CHECK_MSG(memcmp(all, alone, n * dim * sizeof *all) == 0, "%s: se_encode differs from se_encode_ids", name);
            free(texts);
        }
        se_ctx_free(small);
        for (size_t i = 0; i < n; i++) free(ids[i]);
        free(ids), free(lens), free(alone), free(all);
        capture_free(&cap);
        se_ctx_free(ctx);
        se_model_free(m);
        json_decref(exp);
        json_decref(hdr);
    }
}

/* se_encode_ids refuses what it cannot run, naming the text and position. */
TEST(encode_ids_bad_input) {
    bool stand_in;
    se_model *m = load_fixture("xlmr-cls-norm-bin", &stand_in);
    CHECK(m != NULL);
    if (!m) return;
    se_error err = {0};
    se_ctx *ctx = NULL;
    CHECK(se_ctx_new(m, NULL, &ctx, &err) == SE_OK);
    size_t dim = se_encode_dim(m, NULL);
    float out[2 * 64];
    int32_t good[3] = {0, 10, 2}, bad[3] = {0, 8002, 2}, neg[2] = {0, -1}, big[41];
    for (int i = 0; i < 41; i++) big[i] = 5;
    const int32_t *in[2] = {good, bad};
    size_t lens[2] = {3, 3};
    CHECK(se_encode_ids(ctx, in, lens, 2, NULL, out, 2 * dim, &err) == SE_E_RANGE);
    CHECK_MSG(strstr(err.msg, "text 1: token id 8002 at position 1 is outside the vocabulary (8002)"), "%s", err.msg);
    in[1] = neg, lens[1] = 2;
    CHECK(se_encode_ids(ctx, in, lens, 2, NULL, out, 2 * dim, &err) == SE_E_RANGE);
    CHECK_MSG(strstr(err.msg, "token id -1 at position 1"), "%s", err.msg);
    in[1] = big, lens[1] = 41; /* max_seq_length 40 */
    CHECK(se_encode_ids(ctx, in, lens, 2, NULL, out, 2 * dim, &err) == SE_E_RANGE);
    CHECK_MSG(strstr(err.msg, "text 1 has 41 token ids; the model reads at most 40"), "%s", err.msg);
    lens[1] = 0;
    CHECK(se_encode_ids(ctx, in, lens, 2, NULL, out, 2 * dim, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "text 1 has no token ids"), "%s", err.msg);
    lens[1] = 3, in[1] = good;
    CHECK(se_encode_ids(ctx, in, lens, 2, NULL, out, 2 * dim - 1, &err) == SE_E_BUFFER);
    se_encode_params ep = se_encode_default_params();
    ep.prompt = "query: ";
    CHECK(se_encode_ids(ctx, in, lens, 2, &ep, out, 2 * dim, &err) == SE_E_INVALID);
    CHECK(se_encode_ids(ctx, in, lens, 2, NULL, out, 2 * dim, &err) == SE_OK);
    CHECK(memcmp(out, out + dim, dim * sizeof *out) == 0);
    se_ctx_free(ctx);
    se_model_free(m);
}

/* XLM-R's positions start at pad_token_id + 1: max_position_embeddings 42
 * holds 40 tokens, and config.json's own bounds are checked. */
TEST(xlmr_positions) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s/p && cp -r " FIX "xlmr-cls-norm-bin %s/p", tmpdir, tmpdir);
    CHECK(system(cmd) == 0);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/p", tmpdir);
    /* pad_token_id past the positions is refused by name */
    snprintf(cmd, sizeof cmd, "cd %s && sed -i 's/\"pad_token_id\": 1/\"pad_token_id\": 41/' config.json", dir);
    CHECK(system(cmd) == 0);
    se_model *m = NULL;
    se_error err = {0};
    CHECK(se_model_load(dir, NULL, &m, &err) != SE_OK);
    CHECK_MSG(strstr(err.msg, "pad_token_id"), "%s", err.msg);
    se_model_free(m);
}

/* The embeddings rows of one id sequence's forward pass into out. */
static size_t emb_rows(se_ctx *ctx, capture *cap, const int32_t *ids, size_t n, float *out, size_t cap_floats) {
    se_error err = {0};
    float emb[64];
    capture_free(cap);
    if (se_encode_ids(ctx, &ids, &n, 1, NULL, emb, 64, &err) != SE_OK) return 0;
    size_t k = cap->n_tokens * cap->n_embd;
    if (!cap->states[0] || k > cap_floats) return 0;
    memcpy(out, cap->states[0], k * sizeof *out);
    return cap->n_tokens;
}

/* RoBERTa positions as XLMRobertaEmbeddings computes them
 * (create_position_ids_from_input_ids): the padding id in a sequence (a
 * literal "<pad>" in the text) takes position padding_idx and does not
 * count, so the tokens after it keep the positions they have without it.
 * Before: the token after it got position 5 instead of 4. */
TEST(xlmr_pad_token_positions) {
    bool stand_in;
    se_model *m = load_fixture("xlmr-cls-norm-bin", &stand_in);
    CHECK(m != NULL);
    if (!m) return;
    capture cap = {0};
    se_ctx_params cp = se_ctx_default_params();
    cp.debug_fn = capture_cb;
    cp.debug_user = &cap;
    se_ctx *ctx = NULL;
    se_error err = {0};
    CHECK(se_ctx_new(m, &cp, &ctx, &err) == SE_OK);
    enum { H = 12, CAPF = 8 * H };
    float with[CAPF], without[CAPF], alone[CAPF];
    const int32_t a[] = {0, 10, 1, 20, 2}, b[] = {0, 10, 20, 2}, c[] = {0, 1, 2};
    size_t nw = emb_rows(ctx, &cap, a, 5, with, CAPF), no = emb_rows(ctx, &cap, b, 4, without, CAPF),
           na = emb_rows(ctx, &cap, c, 3, alone, CAPF);
    CHECK_MSG(nw == 5 && no == 4 && na == 3 && cap.n_embd == H, "token counts %zu %zu %zu", nw, no, na);
    if (nw == 5 && no == 4 && na == 3) {
        CHECK_MSG(memcmp(with, without, 2 * H * sizeof(float)) == 0, "<s> x: positions 2, 3");
        CHECK_MSG(memcmp(with + 3 * H, without + 2 * H, 2 * H * sizeof(float)) == 0, "y </s> after <pad>: positions 4, 5");
        CHECK_MSG(memcmp(with + 2 * H, alone + H, H * sizeof(float)) == 0, "<pad>: position 1 wherever it is");
    }
    capture_free(&cap);
    se_ctx_free(ctx);
    se_model_free(m);
}

/* Reduced precision, as for BERT in test_model: every sentence within the
 * cosine bar of the f32 reference (bf16 0.999, int8 0.995) and
 * batch-invariant, or SE_E_UNSUPPORTED naming the instructions the CPU
 * lacks. */
static void reduced_precision(se_dtype dtype, double bar, const char *tag) {
    for (size_t fi = 0; fi < N_FIXTURES; fi++) {
        const char *name = fixtures[fi].name;
        bool stand_in;
        se_error err = {0};
        se_model *m = load_fixture_as(name, dtype, &stand_in, &err);
        if (!m) {
            CHECK_MSG(strstr(err.msg, "AVX") != NULL, "%s: %s", name, err.msg);
            printf("  %s: %s not available here (%s)\n", name, tag, err.msg);
            continue;
        }
        json_t *hdr, *exp = load_expected(name, &hdr);
        size_t n = json_array_size(exp), dim = se_encode_dim(m, NULL);
        float *all = malloc(n * dim * sizeof *all), *one = malloc(dim * sizeof *one);
        int32_t **ids = calloc(n, sizeof *ids);
        size_t *lens = calloc(n, sizeof *lens);
        for (size_t i = 0; i < n; i++) ids[i] = ints(json_object_get(json_array_get(exp, i), "ids"), &lens[i]);
        se_ctx *ctx = NULL;
        CHECK(se_ctx_new(m, NULL, &ctx, &err) == SE_OK);
        CHECK(se_encode_ids(ctx, (const int32_t *const *)ids, lens, n, NULL, all, n * dim, &err) == SE_OK);
        double worst = 1;
        for (size_t i = 0; i < n; i++) {
            size_t k;
            float *ref = floats(json_object_get(json_array_get(exp, i), "embedding"), &k);
            double c = cosine(all + i * dim, ref, dim);
            worst = fmin(worst, c);
            CHECK_MSG(c >= bar, "%s sentence %zu: %s cosine %.6f", name, i, tag, c);
            free(ref);
            CHECK(se_encode_ids(ctx, (const int32_t *const *)&ids[i], &lens[i], 1, NULL, one, dim, &err) == SE_OK);
            CHECK_MSG(memcmp(one, all + i * dim, dim * sizeof *one) == 0, "%s sentence %zu: %s not batch-invariant", name,
                      i, tag);
        }
        printf("  %-20s %s: worst cosine vs f32 reference %.6f\n", name, tag, worst);
        for (size_t i = 0; i < n; i++) free(ids[i]);
        free(ids), free(lens), free(all), free(one);
        se_ctx_free(ctx);
        se_model_free(m);
        json_decref(exp);
        json_decref(hdr);
    }
}

TEST(bf16_fidelity) { reduced_precision(SE_DTYPE_BF16, 0.999, "bf16"); }

TEST(int8_fidelity) { reduced_precision(SE_DTYPE_INT8, 0.995, "int8"); }

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_archs.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    RUN(reference_on_ids);
    RUN(encode_ids_bad_input);
    RUN(xlmr_positions);
    RUN(xlmr_pad_token_positions);
    RUN(bf16_fidelity);
    RUN(int8_fidelity);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_report("test_archs");
}
