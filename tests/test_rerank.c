/*
 * test_rerank.c - cross-encoders against their independent PyTorch
 * reference (tests/fixtures/models/ce-*, tools/gen_fixtures.py; see the
 * fixtures README, "Cross-encoders"): per-layer hidden states, logits and
 * scores within 1e-4 for every pair, the softmax of the 3-label model, the
 * rank order of CrossEncoder.rank, bit-identical scores under any batching
 * (ids and text), se_model_info's description, and the errors for misuse
 * and for broken heads.
 *
 * Every fixture loads with its own tokenizer (ce-xlmr-1's is XLM-R's, with
 * the Precompiled normaliser); one that did not would fail, and still be
 * run on the reference's ids from a copy with a stand-in vocab.txt.
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


static const char *fixtures[] = {"ce-bert-1", "ce-bert-3-bin", "ce-xlmr-1"};
#define N_FIXTURES (sizeof fixtures / sizeof *fixtures)

static char tmpdir[64];

/* Runs a shell command; true on success. */
static bool sh(const char *cmd) { return system(cmd) == 0; }

/* Copies fixture name to tmpdir/sub (replacing what was there); returns
 * the copy's path in a static buffer. */
static const char *copy_fixture(const char *name, const char *sub) {
    static char dir[256];
    char cmd[768];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, sub);
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -r " FIX "%s %s", dir, name, dir);
    return sh(cmd) ? dir : NULL;
}

/* Replaces the tokenizer files of the model folder dir by a stand-in
 * vocab.txt of vocab_size entries (for running on given ids a model whose
 * tokenizer does not load yet). */
static bool stand_in_vocab(const char *dir) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd %s && rm -f tokenizer.json sentencepiece.bpe.model tokenizer_config.json special_tokens_map.json && "
             "n=$(sed -n 's/.*\"vocab_size\": *\\([0-9]*\\).*/\\1/p' config.json) && "
             "{ echo '[PAD]'; echo '[UNK]'; echo '[CLS]'; echo '[SEP]'; i=4; while [ $i -lt $n ]; do echo \"w$i\"; "
             "i=$((i+1)); done; } > vocab.txt",
             dir);
    return sh(cmd);
}

/* Whether the tokenizer of fixture name loads. */
static bool tokenizer_loads(const char *name) {
    char dir[256];
    snprintf(dir, sizeof dir, FIX "%s", name);
    se_tokenizer *t = NULL;
    bool ok = se_tokenizer_load(dir, &t, NULL) == SE_OK;
    se_tokenizer_free(t);
    return ok;
}

/* Loads a fixture: as it is when its tokenizer loads, else from a copy
 * with a stand-in vocabulary (*stand_in says which; the ids are then
 * given). */
static se_model *load_fixture_as(const char *name, const se_model_params *mp, bool *stand_in, se_error *err) {
    char dir[256];
    snprintf(dir, sizeof dir, FIX "%s", name);
    se_model *m = NULL;
    *stand_in = false;
    se_status s = se_model_load(dir, mp, &m, err);
    if (s == SE_OK || tokenizer_loads(name)) return m;
    /* every fixture's own tokenizer loads now: falling back is a failure,
     * though the forward is still checked on the reference's ids */
    CHECK_MSG(false, "%s: its tokenizer does not load: %s", name, err->msg);
    *stand_in = true;
    const char *d = copy_fixture(name, "standin");
    if (!d || !stand_in_vocab(d)) return NULL;
    se_model_load(d, mp, &m, err);
    return m;
}

/* load_fixture_as with the default params, reporting a failure. */
static se_model *load_fixture(const char *name, bool *stand_in) {
    se_error err = {0};
    se_model *m = load_fixture_as(name, NULL, stand_in, &err);
    if (!m) {
        fprintf(stderr, "  %s%s: %s\n", name, *stand_in ? " (stand-in vocabulary)" : "", err.msg);
        return NULL;
    }
    return m;
}

/* One fixture's pairs: ids, token types, texts. */
typedef struct pairs {
    size_t n;
    int32_t **ids, **types;
    size_t *lens;
    const char **a, **b;
} pairs;

/* Reads the pairs of expected.jsonl (texts point into exp). */
static void pairs_read(pairs *p, const json_t *exp) {
    p->n = json_array_size(exp);
    p->ids = calloc(p->n, sizeof *p->ids), p->types = calloc(p->n, sizeof *p->types);
    p->lens = calloc(p->n, sizeof *p->lens);
    p->a = calloc(p->n, sizeof *p->a), p->b = calloc(p->n, sizeof *p->b);
    for (size_t i = 0; i < p->n; i++) {
        json_t *e = json_array_get(exp, i);
        size_t k;
        p->ids[i] = ints(json_object_get(e, "ids"), &p->lens[i]);
        p->types[i] = ints(json_object_get(e, "token_type_ids"), &k);
        p->a[i] = json_string_value(json_object_get(e, "text"));
        p->b[i] = json_string_value(json_object_get(e, "text_pair"));
    }
}

/* Frees what pairs_read allocated. */
static void pairs_free(pairs *p) {
    for (size_t i = 0; i < p->n; i++) free(p->ids[i]), free(p->types[i]);
    free(p->ids), free(p->types), free(p->lens), free(p->a), free(p->b);
    memset(p, 0, sizeof *p);
}

/* Every pair of every fixture alone, from the reference's ids: each
 * hidden state, the logits, the default scores and (3 labels) the softmax
 * within 1e-4; where the tokenizer loads, the text path gives the same
 * bits and the reference's truncation flags. */
TEST(reference_pairs) {
    for (size_t fi = 0; fi < N_FIXTURES; fi++) {
        const char *name = fixtures[fi];
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
        size_t NL = (size_t)json_integer_value(json_object_get(hdr, "num_labels"));
        CHECK_MSG(info.head && strcmp(info.head, json_string_value(json_object_get(hdr, "architecture"))) == 0,
                  "%s: head %s", name, info.head ? info.head : "NULL");
        CHECK_MSG((size_t)info.n_labels == NL, "%s: %d labels, expected %zu", name, info.n_labels, NL);
        CHECK_MSG(info.activation && strcmp(info.activation, json_string_value(json_object_get(hdr, "activation"))) == 0,
                  "%s: activation %s", name, info.activation ? info.activation : "NULL");
        CHECK_MSG(info.n_tokens_max == json_integer_value(json_object_get(hdr, "max_length")), "%s: max length %d", name,
                  info.n_tokens_max);
        capture cap = {0};
        se_ctx_params cp = se_ctx_default_params();
        cp.n_threads = 2;
        cp.debug_fn = capture_cb;
        cp.debug_user = &cap;
        se_ctx *ctx = NULL;
        CHECK(se_ctx_new(m, &cp, &ctx, &err) == SE_OK);
        pairs p;
        pairs_read(&p, exp);
        se_predict_params raw = se_predict_default_params(), sm = raw;
        raw.activation = SE_SCORE_IDENTITY;
        sm.apply_softmax = true;
        float *lg = malloc(NL * sizeof *lg), *sc = malloc(NL * sizeof *sc), *so = malloc(NL * sizeof *so);
        double worst = 0;
        for (size_t i = 0; i < p.n && ctx; i++) {
            json_t *e = json_array_get(exp, i);
            const int32_t *const *id1 = (const int32_t *const *)&p.ids[i], *const *ty1 = (const int32_t *const *)&p.types[i];
            se_status s = se_predict_ids(ctx, id1, ty1, &p.lens[i], 1, &raw, lg, NL, &err);
            CHECK_MSG(s == SE_OK, "%s pair %zu: %s", name, i, err.msg);
            if (s != SE_OK) continue;
            json_t *hs = json_object_get(e, "hidden_states");
            CHECK_MSG(cap.n == (int)json_array_size(hs), "%s: %d hidden states, expected %zu", name, cap.n,
                      json_array_size(hs));
            for (size_t l = 0; l < json_array_size(hs) && (int)l < cap.n; l++) {
                size_t k;
                float *ref = floats(json_array_get(hs, l), &k);
                char label[96];
                snprintf(label, sizeof label, "%s p%zu hidden_states[%zu]", name, i, l);
                CHECK(k == cap.n_tokens * cap.n_embd && cap.n_tokens == p.lens[i]);
                if (k == cap.n_tokens * cap.n_embd) CHECK_CLOSE(cap.states[l], ref, k, 5e-5, 1e-4, label);
                free(ref);
            }
            static const char *keys[] = {"logits", "scores", "softmax"};
            CHECK(se_predict_ids(ctx, id1, ty1, &p.lens[i], 1, NULL, sc, NL, &err) == SE_OK);
            CHECK(se_predict_ids(ctx, id1, ty1, &p.lens[i], 1, &sm, so, NL, &err) == SE_OK);
            float *got[] = {lg, sc, so};
            for (int kk = 0; kk < 3; kk++) {
                json_t *r = json_object_get(e, keys[kk]);
                if (!r) {
                    CHECK_MSG(kk != 2 || NL == 1, "%s: no softmax for %zu labels", name, NL);
                    continue;
                }
                size_t k;
                float *ref = floats(r, &k);
                char label[96];
                snprintf(label, sizeof label, "%s p%zu %s", name, i, keys[kk]);
                CHECK(k == NL);
                if (k == NL) {
                    CHECK_CLOSE(got[kk], ref, k, 1e-4, 0, label);
                    for (size_t d = 0; d < k; d++) worst = fmax(worst, fabs((double)got[kk][d] - ref[d]));
                }
                free(ref);
            }
        }
        printf("  %-14s %zu pairs, %zu label(s)%s: max abs diff %.3g (logits, scores, softmax)\n", name, p.n, NL,
               stand_in ? " (stand-in vocabulary)" : "", worst);
        /* text: the same bits as the reference's ids, and its truncation */
        if (stand_in) {
            printf("  %-14s text checks skipped: its tokenizer does not load yet\n", name);
        } else if (ctx) {
            float *by_ids = malloc(p.n * NL * sizeof(float)), *by_text = malloc(p.n * NL * sizeof(float));
            bool *cut = calloc(p.n, sizeof *cut);
            CHECK(se_predict_ids(ctx, (const int32_t *const *)p.ids, (const int32_t *const *)p.types, p.lens, p.n, NULL,
                                 by_ids, p.n * NL, &err) == SE_OK);
            se_status s = se_predict(ctx, p.a, NULL, p.b, NULL, p.n, NULL, by_text, p.n * NL, cut, &err);
            CHECK_MSG(s == SE_OK, "%s: se_predict: %s", name, err.msg);
            CHECK_MSG(memcmp(by_ids, by_text, p.n * NL * sizeof(float)) == 0, "%s: se_predict differs from se_predict_ids",
                      name);
            for (size_t i = 0; i < p.n; i++)
                CHECK_MSG(cut[i] == json_is_true(json_object_get(json_array_get(exp, i), "truncated")),
                          "%s pair %zu: truncated %d", name, i, cut[i]);
            /* each text is stripped, as CrossEncoder does (visible with a
             * sentencepiece tokenizer, whose Metaspace would make a leading
             * blank a piece of its own) */
            char **pa = calloc(p.n, sizeof *pa), **pb = calloc(p.n, sizeof *pb);
            for (size_t i = 0; i < p.n; i++) {
                pa[i] = malloc(strlen(p.a[i]) + 8), pb[i] = malloc(strlen(p.b[i]) + 8);
                sprintf(pa[i], "  %s\n", p.a[i]);
                sprintf(pb[i], "\t%s \u3000", p.b[i]);
            }
            s = se_predict(ctx, (const char *const *)pa, NULL, (const char *const *)pb, NULL, p.n, NULL, by_text, p.n * NL,
                           NULL, &err);
            CHECK_MSG(s == SE_OK && memcmp(by_ids, by_text, p.n * NL * sizeof(float)) == 0,
                      "%s: texts with surrounding blanks score differently (%s)", name, err.msg);
            for (size_t i = 0; i < p.n; i++) free(pa[i]), free(pb[i]);
            free(pa), free(pb);
            free(by_ids), free(by_text), free(cut);
        }
        free(lg), free(sc), free(so);
        pairs_free(&p);
        capture_free(&cap);
        se_ctx_free(ctx);
        se_model_free(m);
        json_decref(exp);
        json_decref(hdr);
    }
}

/* All pairs in one call, in passes of every size (a 1-token budget is
 * raised to max_seq_length: a pair or two a pass), give the same bits as
 * each pair alone, by ids and by text. */
TEST(batching_bit_identical) {
    for (size_t fi = 0; fi < N_FIXTURES; fi++) {
        const char *name = fixtures[fi];
        json_t *hdr, *exp = load_expected(name, &hdr);
        bool stand_in;
        se_model *m = exp ? load_fixture(name, &stand_in) : NULL;
        CHECK_MSG(m != NULL, "%s: does not load", name);
        if (!m) {
            json_decref(exp), json_decref(hdr);
            continue;
        }
        se_model_info info;
        se_model_get_info(m, &info, NULL);
        size_t NL = (size_t)info.n_labels;
        pairs p;
        pairs_read(&p, exp);
        se_error err = {0};
        se_ctx_params bp = se_ctx_default_params();
        bp.n_threads = 2;
        se_ctx *big = NULL, *small = NULL;
        CHECK(se_ctx_new(m, &bp, &big, &err) == SE_OK);
        bp.n_batch_tokens = 1;
        bp.n_threads = 1;
        CHECK(se_ctx_new(m, &bp, &small, &err) == SE_OK);
        float *alone = malloc(p.n * NL * sizeof(float)), *all = malloc(p.n * NL * sizeof(float));
        for (size_t i = 0; i < p.n; i++)
            CHECK(se_predict_ids(big, (const int32_t *const *)&p.ids[i], (const int32_t *const *)&p.types[i], &p.lens[i], 1,
                                 NULL, alone + i * NL, NL, &err) == SE_OK);
        se_ctx *ctxs[2] = {big, small};
        for (int c = 0; c < 2; c++) {
            memset(all, 0, p.n * NL * sizeof(float));
            CHECK(se_predict_ids(ctxs[c], (const int32_t *const *)p.ids, (const int32_t *const *)p.types, p.lens, p.n, NULL,
                                 all, p.n * NL, &err) == SE_OK);
            CHECK_MSG(memcmp(all, alone, p.n * NL * sizeof(float)) == 0, "%s: ids batched (ctx %d) differ from alone", name, c);
            if (stand_in) continue;
            memset(all, 0, p.n * NL * sizeof(float));
            CHECK(se_predict(ctxs[c], p.a, NULL, p.b, NULL, p.n, NULL, all, p.n * NL, NULL, &err) == SE_OK);
            CHECK_MSG(memcmp(all, alone, p.n * NL * sizeof(float)) == 0, "%s: text batched (ctx %d) differs from alone", name,
                      c);
        }
        free(alone), free(all);
        pairs_free(&p);
        se_ctx_free(big);
        se_ctx_free(small);
        se_model_free(m);
        json_decref(exp);
        json_decref(hdr);
    }
}

/* Checks hits against the header's rank (order, scores or raw_scores). */
static void check_rank(const char *name, const json_t *rank, const se_hit *hits, size_t n, const char *key) {
    json_t *order = json_object_get(rank, "order"), *sc = json_object_get(rank, key);
    CHECK_MSG(n == json_array_size(order), "%s: %zu hits, expected %zu", name, n, json_array_size(order));
    for (size_t k = 0; k < n && k < json_array_size(order); k++) {
        CHECK_MSG(hits[k].corpus_id == json_integer_value(json_array_get(order, k)), "%s %s: hit %zu is %d, expected %lld",
                  name, key, k, hits[k].corpus_id, (long long)json_integer_value(json_array_get(order, k)));
        double want = json_number_value(json_array_get(sc, k));
        CHECK_MSG(fabs(hits[k].score - want) <= 1e-4, "%s %s: hit %zu score %.7g, expected %.7g", name, key, k,
                  (double)hits[k].score, want);
    }
}

/* CrossEncoder.rank's order and scores (default and raw), top_k, and ties
 * in input order; for a stand-in tokenizer, the order of the reference's
 * pairs' scores. */
TEST(rank_order) {
    for (size_t fi = 0; fi < N_FIXTURES; fi++) {
        const char *name = fixtures[fi];
        json_t *hdr, *exp = load_expected(name, &hdr);
        json_t *rank = hdr ? json_object_get(hdr, "rank") : NULL;
        if (!rank || json_is_null(rank)) {
            json_decref(exp), json_decref(hdr);
            continue;
        }
        bool stand_in;
        se_model *m = load_fixture(name, &stand_in);
        CHECK_MSG(m != NULL, "%s: does not load", name);
        se_error err = {0};
        se_ctx *ctx = NULL;
        if (m) CHECK(se_ctx_new(m, NULL, &ctx, &err) == SE_OK);
        json_t *docs = json_object_get(rank, "documents");
        size_t n = json_array_size(docs);
        const char **d = calloc(n, sizeof *d);
        for (size_t i = 0; i < n; i++) d[i] = json_string_value(json_array_get(docs, i));
        const char *q = json_string_value(json_object_get(rank, "query"));
        se_hit *hits = calloc(n + 4, sizeof *hits);
        size_t nh = 0;
        se_predict_params raw = se_predict_default_params();
        raw.activation = SE_SCORE_IDENTITY;
        if (ctx && !stand_in) {
            se_status s = se_rank(ctx, q, strlen(q), d, NULL, n, NULL, 0, hits, &nh, &err);
            CHECK_MSG(s == SE_OK, "%s: se_rank: %s", name, err.msg);
            check_rank(name, rank, hits, nh, "scores");
            CHECK(se_rank(ctx, q, strlen(q), d, NULL, n, &raw, 0, hits, &nh, &err) == SE_OK);
            check_rank(name, rank, hits, nh, "raw_scores");
            /* top_k: the best two, the same as the head of the full order */
            CHECK(se_rank(ctx, q, strlen(q), d, NULL, n, NULL, 2, hits, &nh, &err) == SE_OK);
            CHECK(nh == 2 && hits[0].corpus_id == json_integer_value(json_array_get(json_object_get(rank, "order"), 0)));
            /* ties: the same document three times scores the same; input order */
            const char *tied[5] = {d[3], d[0], d[3], d[0], d[3]};
            CHECK(se_rank(ctx, q, strlen(q), tied, NULL, 5, NULL, 0, hits, &nh, &err) == SE_OK);
            int32_t first_pair = hits[0].corpus_id;
            CHECK(nh == 5);
            for (size_t k = 1; k < nh; k++) {
                CHECK_MSG(hits[k - 1].score > hits[k].score ||
                              (hits[k - 1].score == hits[k].score && hits[k - 1].corpus_id < hits[k].corpus_id),
                          "%s: ties out of input order at hit %zu", name, k);
            }
            CHECK(first_pair == 0 || first_pair == 1);
        } else if (ctx) {
            printf("  %-14s se_rank by text skipped: its tokenizer does not load yet; order from the reference's ids\n", name);
            /* the first n pairs are (query, documents[i]) */
            pairs p;
            pairs_read(&p, exp);
            float *sc = calloc(n, sizeof *sc), *rs = calloc(n, sizeof *rs);
            CHECK(p.n >= n);
            CHECK(se_predict_ids(ctx, (const int32_t *const *)p.ids, (const int32_t *const *)p.types, p.lens, n, NULL, sc, n,
                                 &err) == SE_OK);
            CHECK(se_predict_ids(ctx, (const int32_t *const *)p.ids, (const int32_t *const *)p.types, p.lens, n, &raw, rs, n,
                                 &err) == SE_OK);
            for (size_t i = 0; i < n; i++) {
                CHECK_MSG(p.a[i] && strcmp(p.a[i], q) == 0 && strcmp(p.b[i], d[i]) == 0, "%s: pair %zu is not the rank's", name,
                          i);
                hits[i].corpus_id = (int32_t)i, hits[i].score = sc[i];
            }
            for (size_t i = 1; i < n; i++) /* insertion sort: stable, highest first */
                for (size_t k = i; k > 0 && hits[k].score > hits[k - 1].score; k--) {
                    se_hit t = hits[k];
                    hits[k] = hits[k - 1], hits[k - 1] = t;
                }
            check_rank(name, rank, hits, n, "scores");
            for (size_t i = 0; i < n; i++) hits[i].score = rs[hits[i].corpus_id];
            check_rank(name, rank, hits, n, "raw_scores");
            free(sc), free(rs);
            pairs_free(&p);
        }
        free(d), free(hits);
        se_ctx_free(ctx);
        se_model_free(m);
        json_decref(exp);
        json_decref(hdr);
    }
}

/* What each model says about itself: labels, activation, and nothing for
 * an embedding model. */
TEST(info_labels) {
    se_model *m = NULL;
    se_error err = {0};
    se_model_info in;
    CHECK(se_model_load(FIX "ce-bert-3-bin", NULL, &m, &err) == SE_OK);
    if (m) {
        CHECK(se_model_get_info(m, &in, &err) == SE_OK);
        CHECK(in.n_labels == 3 && in.labels && in.dim == 3);
        if (in.labels && in.n_labels == 3)
            CHECK(!strcmp(in.labels[0], "contradiction") && !strcmp(in.labels[1], "entailment") &&
                  !strcmp(in.labels[2], "neutral"));
        CHECK(in.activation && !strcmp(in.activation, "identity"));
        CHECK(in.pooling == SE_POOL_CLS);
        se_model_free(m), m = NULL;
    }
    CHECK(se_model_load(FIX "ce-bert-1", NULL, &m, &err) == SE_OK);
    if (m) {
        CHECK(se_model_get_info(m, &in, &err) == SE_OK);
        CHECK(in.n_labels == 1 && in.labels && !strcmp(in.labels[0], "LABEL_0"));
        CHECK(in.activation && !strcmp(in.activation, "sigmoid"));
        CHECK(in.head && !strcmp(in.head, "BertForSequenceClassification"));
        se_model_free(m), m = NULL;
    }
    CHECK(se_model_load(FIX "en-mean-norm", NULL, &m, &err) == SE_OK);
    if (m) {
        CHECK(se_model_get_info(m, &in, &err) == SE_OK);
        CHECK(in.head == NULL && in.n_labels == 0 && in.labels == NULL && in.activation == NULL);
        se_model_free(m), m = NULL;
    }
}

/* Loads dir expecting failure with code and a message containing want. */
static void expect_load_error(const char *dir, se_status code, const char *want) {
    se_model *m = NULL;
    se_error err = {0};
    se_status s = se_model_load(dir, NULL, &m, &err);
    CHECK_MSG(s == code, "%s: status %s, expected %s (%s)", dir, se_status_str(s), se_status_str(code), err.msg);
    CHECK_MSG(strstr(err.msg, want) != NULL, "message '%s' lacks '%s'", err.msg, want);
    se_model_free(m);
}

/* Runs sed -i EXPR on FILE inside dir. */
static bool sed_in(const char *dir, const char *file, const char *expr) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && sed -i '%s' %s", dir, expr, file);
    return sh(cmd);
}

/* A broken head is refused by name: a missing tensor, a wrong shape,
 * num_labels (id2label) inconsistent with the weights, a bad id2label, an
 * unsupported activation or classification architecture. */
TEST(broken_head) {
    const char *d = copy_fixture("ce-bert-1", "b1");
    CHECK(d && sed_in(d, "model.safetensors", "s/\"classifier.weight\"/\"classifier.weighx\"/"));
    expect_load_error(d, SE_E_FORMAT, "missing tensor 'classifier.weight'");
    d = copy_fixture("ce-bert-1", "b2");
    CHECK(d && sed_in(d, "model.safetensors", "s/\"bert.pooler.dense.bias\"/\"bert.pooler.dense.bian\"/"));
    expect_load_error(d, SE_E_FORMAT, "missing tensor 'pooler.dense.bias'");
    d = copy_fixture("ce-bert-1", "b3");
    CHECK(d && sed_in(d, "model.safetensors",
                      "s/\"classifier.weight\":{\"dtype\":\"F32\",\"shape\":\\[1,8\\]/"
                      "\"classifier.weight\":{\"dtype\":\"F32\",\"shape\":[8,1]/"));
    expect_load_error(d, SE_E_FORMAT, "tensor 'classifier.weight' has shape [8, 1], config.json implies [1, 8]");
    /* two labels in config.json, one in the weights */
    d = copy_fixture("ce-bert-1", "b4");
    CHECK(d && sed_in(d, "config.json", "s/\"0\": \"LABEL_0\"/\"0\": \"LABEL_0\", \"1\": \"LABEL_1\"/"));
    expect_load_error(d, SE_E_FORMAT, "tensor 'classifier.weight' has shape [1, 8], config.json implies [2, 8]");
    /* id2label wins over num_labels, as in transformers; without it num_labels counts */
    d = copy_fixture("ce-bert-1", "b5");
    CHECK(d && sed_in(d, "config.json", "s/\"id2label\": {/\"num_labels\": 4, \"id2label_\": {/"));
    expect_load_error(d, SE_E_FORMAT, "implies [4, 8]");
    d = copy_fixture("ce-bert-1", "b6");
    CHECK(d && sed_in(d, "config.json", "s/\"0\": \"LABEL_0\"/\"1\": \"LABEL_0\"/"));
    expect_load_error(d, SE_E_FORMAT, "config.json: id2label key '1' is not a label index in [0, 1)");
    d = copy_fixture("ce-bert-1", "b7");
    CHECK(d && sed_in(d, "config.json", "s/activation.Sigmoid/activation.GELU/"));
    expect_load_error(d, SE_E_UNSUPPORTED, "sentence_transformers.activation_fn 'torch.nn.modules.activation.GELU' is not supported");
    d = copy_fixture("ce-bert-1", "b8");
    CHECK(d && sed_in(d, "config.json", "s/BertForSequenceClassification/RobertaForSequenceClassification/"));
    expect_load_error(d, SE_E_UNSUPPORTED, "architectures 'RobertaForSequenceClassification' (a cross-encoder) is not supported");
    d = copy_fixture("ce-bert-1", "b9");
    CHECK(d && sed_in(d, "config.json", "s/\"id2label\": {/\"id2label\": [], \"x\": {/"));
    expect_load_error(d, SE_E_FORMAT, "field 'id2label' must be a non-empty object");
    /* XLM-R's head: out_proj missing */
    d = copy_fixture("ce-xlmr-1", "b10");
    if (d && !tokenizer_loads("ce-xlmr-1")) CHECK(stand_in_vocab(d));
    CHECK(d && sed_in(d, "model.safetensors", "s/\"classifier.out_proj.bias\"/\"classifier.out_proj.bian\"/"));
    expect_load_error(d, SE_E_FORMAT, "missing tensor 'classifier.out_proj.bias'");
}

/* Writes a NaN over the first element of tensor name in the F32
 * safetensors file path. */
static bool poison_tensor(const char *path, const char *name) {
    FILE *f = fopen(path, "r+b");
    if (!f) return false;
    uint64_t hl = 0;
    bool ok = fread(&hl, 8, 1, f) == 1 && hl < (1u << 20);
    char *h = ok ? calloc(1, hl + 1) : NULL;
    ok = h && fread(h, 1, hl, f) == hl;
    json_error_t je;
    json_t *j = ok ? json_loads(h, 0, &je) : NULL;
    json_t *off = json_array_get(json_object_get(json_object_get(j, name), "data_offsets"), 0);
    ok = off != NULL;
    uint32_t nan = 0x7FC00000u;
    if (ok) ok = fseek(f, (long)(8 + hl + (uint64_t)json_integer_value(off)), SEEK_SET) == 0 && fwrite(&nan, 4, 1, f) == 1;
    json_decref(j);
    free(h);
    return fclose(f) == 0 && ok;
}

/* A NaN in the head's weights is SE_E_RANGE naming the pair, never a
 * NaN score or a rank built on one. */
TEST(head_nan) {
    const char *d = copy_fixture("ce-bert-1", "nan");
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", d ? d : "");
    CHECK(d && poison_tensor(path, "classifier.bias"));
    se_model *m = NULL;
    se_error err = {0};
    CHECK(se_model_load(d, NULL, &m, &err) == SE_OK);
    se_ctx *c = NULL;
    if (m) CHECK(se_ctx_new(m, NULL, &c, &err) == SE_OK);
    if (c) {
        const char *a[2] = {"q", "q"}, *b[2] = {"one", "two"};
        float out[2];
        se_hit hits[2];
        size_t nh = 7;
        CHECK(se_predict(c, a, NULL, b, NULL, 2, NULL, out, 2, NULL, &err) == SE_E_RANGE);
        CHECK_MSG(strstr(err.msg, "pair 0: the logits have a NaN or infinite value"), "%s", err.msg);
        CHECK(se_rank(c, "q", 1, b, NULL, 2, NULL, 0, hits, &nh, &err) == SE_E_RANGE && nh == 0);
    }
    se_ctx_free(c);
    se_model_free(m);
}

/* The default activation when config.json names none (sigmoid for one
 * label), a Softmax activation_fn, and the older
 * sbert_ce_default_activation_function key. */
TEST(activation_config) {
    se_error err = {0};
    const char *d = copy_fixture("ce-bert-3-bin", "a1");
    CHECK(d && sed_in(d, "config.json", "s/\"activation_fn\": \"torch.nn.modules.linear.Identity\"/\"activation_fn\": \"torch.nn.modules.activation.Softmax\"/"));
    se_model *m = NULL;
    CHECK(se_model_load(d, NULL, &m, &err) == SE_OK);
    json_t *hdr, *exp = load_expected("ce-bert-3-bin", &hdr);
    if (m && exp) {
        se_model_info in;
        se_model_get_info(m, &in, NULL);
        CHECK(in.activation && !strcmp(in.activation, "softmax"));
        se_ctx *ctx = NULL;
        CHECK(se_ctx_new(m, NULL, &ctx, &err) == SE_OK);
        json_t *e = json_array_get(exp, 0);
        const char *a = json_string_value(json_object_get(e, "text")), *b = json_string_value(json_object_get(e, "text_pair"));
        float out[3];
        size_t k;
        float *ref = floats(json_object_get(e, "softmax"), &k);
        CHECK(se_predict(ctx, &a, NULL, &b, NULL, 1, NULL, out, 3, NULL, &err) == SE_OK);
        CHECK_CLOSE(out, ref, 3, 1e-4, 0, "softmax activation_fn");
        free(ref);
        se_ctx_free(ctx);
    }
    se_model_free(m), m = NULL;
    json_decref(exp), json_decref(hdr);
    /* no activation named: sigmoid for one label (ce-xlmr-1 names none) */
    bool stand_in;
    m = load_fixture("ce-xlmr-1", &stand_in);
    if (m) {
        se_model_info in;
        se_model_get_info(m, &in, NULL);
        CHECK(in.activation && !strcmp(in.activation, "sigmoid"));
        se_model_free(m), m = NULL;
    }
    /* three labels and no activation named: identity; the legacy key */
    d = copy_fixture("ce-bert-3-bin", "a2");
    CHECK(d && sed_in(d, "config.json", "s/\"activation_fn\"/\"other\"/"));
    CHECK(se_model_load(d, NULL, &m, &err) == SE_OK);
    if (m) {
        se_model_info in;
        se_model_get_info(m, &in, NULL);
        CHECK(in.activation && !strcmp(in.activation, "identity"));
        se_model_free(m), m = NULL;
    }
    CHECK(d && sed_in(d, "config.json", "s/\"other\": \"torch.nn.modules.linear.Identity\"/\"other\": 1}, \"sbert_ce_default_activation_function\": \"torch.nn.modules.activation.Tanh\", \"y\": {\"z\": 1/"));
    CHECK(se_model_load(d, NULL, &m, &err) == SE_OK);
    if (m) {
        se_model_info in;
        se_model_get_info(m, &in, NULL);
        CHECK_MSG(in.activation && !strcmp(in.activation, "tanh"), "%s", in.activation);
        se_model_free(m), m = NULL;
    }
    /* a folder with modules.json is an embedding model whatever config.json says */
    d = copy_fixture("ce-bert-1", "a3");
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir 1_Pooling && printf '{\"word_embedding_dimension\": 8, \"pooling_mode_cls_token\": true}' > "
             "1_Pooling/config.json && printf '[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": "
             "\"sentence_transformers.models.Transformer\"}, {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", "
             "\"type\": \"sentence_transformers.models.Pooling\"}]' > modules.json",
             d);
    CHECK(d && sh(cmd));
    CHECK(se_model_load(d, NULL, &m, &err) == SE_OK);
    if (m) {
        se_model_info in;
        se_model_get_info(m, &in, NULL);
        CHECK(in.head == NULL && in.dim == 8);
        se_model_free(m), m = NULL;
    }
}

/* Misuse is SE_E_INVALID (or the code that names the problem), with a
 * message saying what to do, and never a crash. */
TEST(misuse) {
    se_error err = {0};
    se_model *ce = NULL, *emb = NULL, *nli = NULL;
    CHECK(se_model_load(FIX "ce-bert-1", NULL, &ce, &err) == SE_OK);
    CHECK(se_model_load(FIX "en-mean-norm", NULL, &emb, &err) == SE_OK);
    CHECK(se_model_load(FIX "ce-bert-3-bin", NULL, &nli, &err) == SE_OK);
    if (!ce || !emb || !nli) goto done;
    se_ctx *c = NULL, *e = NULL, *n3 = NULL;
    CHECK(se_ctx_new(ce, NULL, &c, &err) == SE_OK);
    CHECK(se_ctx_new(emb, NULL, &e, &err) == SE_OK);
    CHECK(se_ctx_new(nli, NULL, &n3, &err) == SE_OK);
    const char *a[2] = {"what is it?", "where?"}, *b[2] = {"a test.", "here"};
    float out[16];
    se_hit hits[4];
    size_t nh = 99;
    /* encoding with a cross-encoder */
    CHECK(se_encode(c, a, NULL, 2, NULL, out, 16, NULL, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "is a cross-encoder (BertForSequenceClassification)") && strstr(err.msg, "se_predict"), "%s",
              err.msg);
    int32_t ids[3] = {101, 2054, 102};
    const int32_t *ip = ids;
    size_t il = 3;
    CHECK(se_encode_ids(c, &ip, &il, 1, NULL, out, 16, &err) == SE_E_INVALID);
    /* predicting with an embedding model */
    CHECK(se_predict(e, a, NULL, b, NULL, 2, NULL, out, 16, NULL, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "is an embedding model, not a cross-encoder"), "%s", err.msg);
    CHECK(se_rank(e, "q", 1, b, NULL, 2, NULL, 0, hits, &nh, &err) == SE_E_INVALID);
    CHECK(se_predict_ids(e, &ip, NULL, &il, 1, NULL, out, 16, &err) == SE_E_INVALID);
    /* rank with three labels */
    CHECK(se_rank(n3, "q", 1, b, NULL, 2, NULL, 0, hits, &nh, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "3 labels"), "%s", err.msg);
    /* buffers, NULLs, bad params */
    CHECK(se_predict(n3, a, NULL, b, NULL, 2, NULL, out, 5, NULL, &err) == SE_E_BUFFER);
    CHECK(se_predict(c, a, NULL, NULL, NULL, 2, NULL, out, 16, NULL, &err) == SE_E_INVALID);
    CHECK(se_rank(c, NULL, 0, b, NULL, 2, NULL, 0, hits, &nh, &err) == SE_E_INVALID);
    CHECK(se_rank(c, "q", 1, b, NULL, 2, NULL, 0, hits, NULL, &err) == SE_E_INVALID);
    se_predict_params bad = se_predict_default_params();
    bad.activation = (se_score_act)77;
    CHECK(se_predict(c, a, NULL, b, NULL, 2, &bad, out, 16, NULL, &err) == SE_E_INVALID);
    /* invalid UTF-8 names the pair and the text */
    const char *bad8[2] = {"fine", "bad \xff byte"};
    CHECK(se_predict(c, a, NULL, bad8, NULL, 2, NULL, out, 16, NULL, &err) == SE_E_UTF8);
    CHECK_MSG(strstr(err.msg, "pair 1: the second text has invalid UTF-8 at byte 4"), "%s", err.msg);
    CHECK(se_rank(c, "q\xc3", 2, b, NULL, 2, NULL, 0, hits, &nh, &err) == SE_E_UTF8);
    CHECK_MSG(strstr(err.msg, "the first text has invalid UTF-8"), "%s", err.msg);
    /* ids: a token type past type_vocab_size, no ids, too many */
    int32_t types[3] = {0, 2, 1};
    const int32_t *tp = types;
    CHECK(se_predict_ids(c, &ip, &tp, &il, 1, NULL, out, 16, &err) == SE_E_RANGE);
    CHECK_MSG(strstr(err.msg, "pair 0: token type 2 at position 1 is outside type_vocab_size (2)"), "%s", err.msg);
    size_t zero = 0, many = 33;
    CHECK(se_predict_ids(c, &ip, NULL, &zero, 1, NULL, out, 16, &err) == SE_E_INVALID);
    int32_t big[33] = {0};
    const int32_t *bp = big;
    CHECK(se_predict_ids(c, &bp, NULL, &many, 1, NULL, out, 16, &err) == SE_E_RANGE);
    CHECK_MSG(strstr(err.msg, "pair 0 has 33 token ids; the model reads at most 32"), "%s", err.msg);
    /* zero pairs and zero documents are fine */
    CHECK(se_predict(c, NULL, NULL, NULL, NULL, 0, NULL, NULL, 0, NULL, &err) == SE_OK);
    CHECK(se_rank(c, "q", 1, NULL, NULL, 0, NULL, 0, NULL, &nh, &err) == SE_OK && nh == 0);
    /* surrounding whitespace is stripped, as CrossEncoder does */
    const char *sa[1] = {"  what is it?\n"}, *sb[1] = {"\ta test. "};
    float o1, o2;
    CHECK(se_predict(c, a, NULL, b, NULL, 1, NULL, &o1, 1, NULL, &err) == SE_OK);
    CHECK(se_predict(c, sa, NULL, sb, NULL, 1, NULL, &o2, 1, NULL, &err) == SE_OK);
    CHECK(o1 == o2);
    se_ctx_free(c);
    se_ctx_free(e);
    se_ctx_free(n3);
done:
    se_model_free(ce);
    se_model_free(emb);
    se_model_free(nli);
}

/* bf16 and int8 compute (the encoder's matrices; the head stays f32):
 * every pair's logits near the f32 reference (the worst is printed) and
 * still batch-invariant; or a clear SE_E_UNSUPPORTED on a CPU without the
 * instructions. */
TEST(reduced_precision) {
    static const struct {
        se_dtype dtype;
        const char *tag;
        double bar; /* max abs logit error, loose: these models' logits span a few units */
    } dts[2] = {{SE_DTYPE_BF16, "bf16", 0.1}, {SE_DTYPE_INT8, "int8", 0.2}};
    for (int di = 0; di < 2; di++)
        for (size_t fi = 0; fi < N_FIXTURES; fi++) {
            const char *name = fixtures[fi];
            se_model_params mp = se_model_default_params();
            mp.dtype = dts[di].dtype;
            se_error err = {0};
            bool stand_in;
            se_model *m = load_fixture_as(name, &mp, &stand_in, &err);
            if (!m && err.code == SE_E_UNSUPPORTED) {
                CHECK_MSG(strstr(err.msg, "AVX") != NULL, "%s", err.msg);
                printf("  %-14s %s not available here (%s)\n", name, dts[di].tag, err.msg);
                continue;
            }
            CHECK_MSG(m != NULL, "%s %s: %s", name, dts[di].tag, err.msg);
            if (!m) continue;
            json_t *hdr, *exp = load_expected(name, &hdr);
            pairs p;
            pairs_read(&p, exp);
            size_t NL = (size_t)json_integer_value(json_object_get(hdr, "num_labels"));
            se_predict_params raw = se_predict_default_params();
            raw.activation = SE_SCORE_IDENTITY;
            se_ctx *ctx = NULL;
            CHECK(se_ctx_new(m, NULL, &ctx, &err) == SE_OK);
            float *all = malloc(p.n * NL * sizeof(float)), *one = malloc(NL * sizeof(float));
            CHECK(se_predict_ids(ctx, (const int32_t *const *)p.ids, (const int32_t *const *)p.types, p.lens, p.n, &raw, all,
                                 p.n * NL, &err) == SE_OK);
            double worst = 0;
            for (size_t i = 0; i < p.n; i++) {
                size_t k;
                float *ref = floats(json_object_get(json_array_get(exp, i), "logits"), &k);
                for (size_t d = 0; d < k && d < NL; d++) worst = fmax(worst, fabs((double)all[i * NL + d] - ref[d]));
                free(ref);
                CHECK(se_predict_ids(ctx, (const int32_t *const *)&p.ids[i], (const int32_t *const *)&p.types[i], &p.lens[i],
                                     1, &raw, one, NL, &err) == SE_OK);
                CHECK_MSG(memcmp(one, all + i * NL, NL * sizeof(float)) == 0, "%s pair %zu: %s not batch-invariant", name, i,
                          dts[di].tag);
            }
            CHECK_MSG(worst <= dts[di].bar, "%s: %s max abs logit error %.4g", name, dts[di].tag, worst);
            printf("  %-14s %s: max abs logit error vs the f32 reference %.4g\n", name, dts[di].tag, worst);
            free(all), free(one);
            pairs_free(&p);
            se_ctx_free(ctx);
            se_model_free(m);
            json_decref(exp);
            json_decref(hdr);
        }
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_rerank.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    RUN(reference_pairs);
    RUN(batching_bit_identical);
    RUN(rank_order);
    RUN(info_labels);
    RUN(broken_head);
    RUN(activation_config);
    RUN(misuse);
    RUN(head_nan);
    RUN(reduced_precision);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_report("test_rerank");
}
