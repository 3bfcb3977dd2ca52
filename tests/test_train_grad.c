/*
 * test_train_grad.c - the training engine's gradient checks (issue 15):
 * sembed's forward with a tape, backward and losses (src/train/) against
 * the PyTorch reference of tools/train_grad_ref.py, whose cases and
 * gradients are in tests/fixtures/train/ (cases.json, and
 * grads.safetensors.gz: F32 tensors named "<case>/<parameter>").
 *
 *   - the trainable model's forward equals se_encode_ids (the library's
 *     forward) and the reference's embeddings, to ~1e-5 (en-mean-norm's
 *     case has token types 1 too, and two cases, en-plain-hf and
 *     mpnet-mean-norm, run in training mode with dropout drawn as sembed
 *     draws it: the reference's embeddings with them, the library's with
 *     types 0 and no dropout)
 *   - every parameter tensor's gradient: ||g - g_ref|| / ||g_ref|| <= 1e-4,
 *     the loss to 1e-5 (relative), for every model folder of the encoder
 *     cases (mean, CLS, max and all six poolings, Dense with Tanh and
 *     Identity, Normalize, gelu / gelu_new / relu) and every loss
 *   - the fast backward kernels against their scalar twins
 *   - bad input is an error naming it; results are deterministic
 * Run from the repo root.
 */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "sembed.h"
#include "test.h"
#include "train/train.h"
#include "threadpool.h"
#include "train/train_kernels.h"

#define TRAIN_FIX "tests/fixtures/train/"
#define MODEL_FIX "tests/fixtures/models/"

/* The reference: the manifest and the decompressed safetensors blob. */
static json_t *cases;
static unsigned char *blob;
static size_t blob_len;
static json_t *blob_hdr;
static size_t blob_data; /* offset of the data section */

/* Reads the fixture files; exits when they are missing (run from the
 * repo root). */
static void load_fixtures(void) {
    json_error_t je;
    cases = json_load_file(TRAIN_FIX "cases.json", 0, &je);
    if (!cases) {
        fprintf(stderr, "cannot read " TRAIN_FIX "cases.json: %s (run from the repo root)\n", je.text);
        exit(1);
    }
    gzFile z = gzopen(TRAIN_FIX "grads.safetensors.gz", "rb");
    if (!z) {
        fprintf(stderr, "cannot open " TRAIN_FIX "grads.safetensors.gz\n");
        exit(1);
    }
    size_t cap = 1 << 20;
    blob = malloc(cap);
    int n;
    while (blob && (n = gzread(z, blob + blob_len, (unsigned)(cap - blob_len))) > 0) {
        blob_len += (size_t)n;
        if (blob_len == cap) blob = realloc(blob, cap *= 2);
    }
    gzclose(z);
    uint64_t hl = 0;
    if (!blob || blob_len < 8) exit(1);
    for (int i = 7; i >= 0; i--) hl = hl << 8 | blob[i];
    blob_hdr = json_loadb((const char *)blob + 8, (size_t)hl, 0, &je);
    if (!blob_hdr) {
        fprintf(stderr, "grads.safetensors.gz: bad header: %s\n", je.text);
        exit(1);
    }
    blob_data = 8 + (size_t)hl;
}

/* The F32 tensor named name of the reference (n its floats); NULL when
 * absent. */
static const float *ref_tensor(const char *name, size_t *n) {
    json_t *t = json_object_get(blob_hdr, name);
    if (!t) return NULL;
    json_t *off = json_object_get(t, "data_offsets");
    size_t a = (size_t)json_integer_value(json_array_get(off, 0)), b = (size_t)json_integer_value(json_array_get(off, 1));
    if (n) *n = (b - a) / 4;
    return (const float *)(blob + blob_data + a);
}

/* ||a - b|| / ||b|| over n floats (0 when both are zero). */
static double rel_err(const float *a, const float *b, size_t n) {
    double d = 0.0, r = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        d += e * e, r += (double)b[i] * b[i];
    }
    return r > 0 ? sqrt(d / r) : sqrt(d);
}

/* A case's batch: packed ids, token types, starts and pooling starts
 * (malloc'd). */
typedef struct tbatch {
    int32_t *ids, *types;
    size_t *starts, *first, S;
    se_tbatch b;
} tbatch;

/* Packs a case's "ids" (and "types", "first", "dropout_key": training
 * mode) into a batch. */
static void case_batch(json_t *c, tbatch *tb) {
    json_t *ids = json_object_get(c, "ids"), *first = json_object_get(c, "first"), *types = json_object_get(c, "types");
    size_t S = json_array_size(ids), T = 0, i;
    json_t *s;
    json_array_foreach(ids, i, s) T += json_array_size(s);
    tb->ids = malloc((T + 1) * sizeof *tb->ids);
    tb->types = malloc((T + 1) * sizeof *tb->types);
    tb->starts = malloc((S + 1) * sizeof *tb->starts);
    tb->first = malloc((S + 1) * sizeof *tb->first);
    tb->S = S;
    size_t t = 0;
    tb->starts[0] = 0;
    json_array_foreach(ids, i, s) {
        size_t k;
        json_t *v;
        json_array_foreach(s, k, v) {
            tb->types[t] = json_is_array(types) ? (int32_t)json_integer_value(json_array_get(json_array_get(types, i), k)) : 0;
            tb->ids[t++] = (int32_t)json_integer_value(v);
        }
        tb->starts[i + 1] = t;
        tb->first[i] = json_is_array(first) ? (size_t)json_integer_value(json_array_get(first, i)) : 0;
    }
    json_t *key = json_object_get(c, "dropout_key");
    tb->b = (se_tbatch){.ids = tb->ids, .type_ids = json_is_array(types) ? tb->types : NULL, .starts = tb->starts, .S = S,
                        .first = json_is_array(first) ? tb->first : NULL, .train = json_is_integer(key),
                        .dropout_key = (uint64_t)json_integer_value(key)};
}

/* Frees a case's batch. */
static void tbatch_free(tbatch *tb) {
    free(tb->ids);
    free(tb->types);
    free(tb->starts);
    free(tb->first);
}

/* The norm of every reference gradient of case cid together. */
static double case_norm(se_tmodel *m, const char *cid) {
    double ss = 0.0;
    for (size_t i = 0; i < m->n_p; i++) {
        char name[192];
        snprintf(name, sizeof name, "%s/%s", cid, m->p[i].name);
        size_t n = 0;
        const float *r = ref_tensor(name, &n);
        for (size_t k = 0; r && k < n; k++) ss += (double)r[k] * r[k];
    }
    return sqrt(ss);
}

/* Whether a gradient is right: ||g - ref|| / ||ref|| <= 1e-4, or, for a
 * tensor whose gradient is zero in exact arithmetic (the attention key
 * bias: softmax ignores a score added to every key; the last LayerNorm
 * bias under losses that only see differences of embeddings), whose
 * reference is below 1e-7 of the whole gradient's norm total: ||g|| <=
 * 1e-5 total. Sets *e to the error it judged by. */
static bool grad_ok(const float *g, const float *ref, size_t n, double total, double *e) {
    double rn = 0.0, gn = 0.0;
    for (size_t k = 0; k < n; k++) rn += (double)ref[k] * ref[k], gn += (double)g[k] * g[k];
    if (sqrt(rn) < 1e-7 * total) {
        *e = sqrt(gn) / total;
        return *e <= 1e-5;
    }
    *e = rel_err(g, ref, n);
    return *e <= 1e-4;
}

/* Compares every parameter gradient of m with the reference's for case
 * cid (grad_ok); the word embedding's on the rows the case used, and zero
 * elsewhere. Returns the worst error. */
static double check_grads(se_tmodel *m, json_t *c, const char *cid) {
    double worst = 0.0, total = case_norm(m, cid), e;
    size_t checked = 0;
    for (size_t i = 0; i < m->n_p; i++) {
        se_tparam *p = &m->p[i];
        char name[192];
        snprintf(name, sizeof name, "%s/%s", cid, p->name);
        size_t n = 0;
        const float *ref = ref_tensor(name, &n);
        CHECK_MSG(ref != NULL, "%s: no reference gradient", name);
        if (!ref) continue;
        if (!strcmp(p->name, "embeddings.word_embeddings.weight")) {
            json_t *rows = json_object_get(c, "word_rows");
            size_t H = p->cols, nr = json_array_size(rows);
            CHECK(n == nr * H);
            float *g = malloc((nr * H + 1) * sizeof *g);
            char *used = calloc(p->rows, 1);
            for (size_t r = 0; r < nr; r++) {
                size_t row = (size_t)json_integer_value(json_array_get(rows, r));
                used[row] = 1;
                memcpy(g + r * H, p->g + row * H, H * sizeof *g);
            }
            CHECK_MSG(grad_ok(g, ref, nr * H, total, &e), "%s: error %.3g", name, e);
            worst = e > worst ? e : worst;
            size_t nonzero = 0;
            for (size_t r = 0; r < p->rows; r++)
                if (!used[r])
                    for (size_t k = 0; k < H; k++) nonzero += p->g[r * H + k] != 0.0f;
            CHECK_MSG(nonzero == 0, "%s: %zu gradients on rows the batch does not use", name, nonzero);
            free(g);
            free(used);
        } else {
            CHECK_MSG(n == p->n, "%s: %zu values, the reference has %zu", name, p->n, n);
            if (n != p->n) continue;
            CHECK_MSG(grad_ok(p->g, ref, n, total, &e), "%s: error %.3g", name, e);
            worst = e > worst ? e : worst;
        }
        checked++;
    }
    CHECK(checked == m->n_p);
    return worst;
}

/* Every case of kind "encoder": the trainable model's forward equals
 * se_encode_ids and the reference embeddings; the objective sum(emb * R)
 * and its gradient (R the reference's d_emb) match the reference. */
TEST(test_train_grad_encoder) {
    size_t i;
    json_t *c;
    int n_cases = 0;
    json_array_foreach(json_object_get(cases, "cases"), i, c) {
        if (strcmp(json_string_value(json_object_get(c, "kind")), "encoder")) continue;
        const char *cid = json_string_value(json_object_get(c, "id"));
        const char *model = json_string_value(json_object_get(c, "model"));
        char dir[256];
        snprintf(dir, sizeof dir, MODEL_FIX "%s", model);
        se_error err = {0};
        se_tmodel *m = NULL;
        CHECK_MSG(se_tmodel_from_folder(dir, &m, &err) == SE_OK, "%s: %s", dir, err.msg);
        if (!m) continue;
        tbatch tb;
        case_batch(c, &tb);
        size_t S = tb.S, dim = m->cfg.dim;
        CHECK((size_t)json_integer_value(json_object_get(c, "dim")) == dim);
        float *emb = calloc(S * dim, sizeof *emb), *lib = calloc(S * dim, sizeof *lib);
        se_ttape *tape = NULL;
        CHECK_MSG(se_ttape_forward(m, &tb.b, &tape, emb, &err) == SE_OK, "%s: %s", cid, err.msg);
        /* the library's forward on the same ids */
        se_model *lm = NULL;
        se_ctx *ctx = NULL;
        CHECK(se_model_load(dir, NULL, &lm, &err) == SE_OK);
        CHECK(se_ctx_new(lm, NULL, &ctx, &err) == SE_OK);
        const int32_t **idp = malloc(S * sizeof *idp);
        size_t *lens = malloc(S * sizeof *lens);
        for (size_t s = 0; s < S; s++) idp[s] = tb.ids + tb.starts[s], lens[s] = tb.starts[s + 1] - tb.starts[s];
        se_encode_params ep = se_encode_default_params();
        ep.pool_starts = tb.b.first;
        CHECK_MSG(se_encode_ids(ctx, idp, lens, S, &ep, lib, S * dim, &err) == SE_OK, "%s: %s", cid, err.msg);
        char label[160];
        snprintf(label, sizeof label, "%s: forward vs se_encode_ids", cid);
        if (tb.b.type_ids || tb.b.train) { /* se_encode_ids: types 0, no dropout; compare a forward so */
            float *emb0 = calloc(S * dim, sizeof *emb0);
            se_tbatch b0 = tb.b;
            se_ttape *t0 = NULL;
            b0.type_ids = NULL, b0.train = false;
            CHECK(se_ttape_forward(m, &b0, &t0, emb0, &err) == SE_OK);
            CHECK_CLOSE(emb0, lib, S * dim, 1e-5, 1e-5, label);
            free(emb0);
            se_ttape_free(t0);
        } else {
            CHECK_CLOSE(emb, lib, S * dim, 1e-5, 1e-5, label);
        }
        size_t n = 0;
        snprintf(label, sizeof label, "%s/emb", cid);
        const float *ref_emb = ref_tensor(label, &n);
        CHECK(ref_emb && n == S * dim);
        if (ref_emb) CHECK_CLOSE(emb, ref_emb, S * dim, 1e-5, 1e-5, label);
        /* the objective and its gradient */
        snprintf(label, sizeof label, "%s/d_emb", cid);
        const float *R = ref_tensor(label, &n);
        CHECK(R && n == S * dim);
        if (R) {
            double obj = 0.0, want = json_real_value(json_object_get(c, "loss"));
            for (size_t k = 0; k < S * dim; k++) obj += (double)emb[k] * R[k];
            CHECK_MSG(fabs(obj - want) <= 1e-5 * fabs(want) + 1e-6, "%s: objective %.9g, reference %.9g", cid, obj, want);
            se_tmodel_zero_grad(m);
            CHECK_MSG(se_ttape_backward(m, tape, R, &err) == SE_OK, "%s: %s", cid, err.msg);
            double worst = check_grads(m, c, cid);
            printf("  %-24s worst gradient rel error %.2e\n", cid, worst);
        }
        free(idp);
        free(lens);
        se_ctx_free(ctx);
        se_model_free(lm);
        free(emb);
        free(lib);
        se_ttape_free(tape);
        tbatch_free(&tb);
        se_tmodel_free(m);
        n_cases++;
    }
    CHECK(n_cases == 10);
}

/* The loss of a case's kind name. */
static se_loss_kind loss_kind(const char *k) {
    return !strcmp(k, "mnrl")       ? SE_LOSS_MNRL
           : !strcmp(k, "mnrl_sym") ? SE_LOSS_MNRL_SYM
           : !strcmp(k, "cosent")   ? SE_LOSS_COSENT
           : !strcmp(k, "cosine")   ? SE_LOSS_COSINE
           : !strcmp(k, "triplet")  ? SE_LOSS_TRIPLET
           : !strcmp(k, "mse")      ? SE_LOSS_MSE
                                    : (se_loss_kind)0;
}

/* Every loss case: the loss of the batch's embeddings and every
 * parameter's gradient through the loss and the encoder (on two threads:
 * the encoder cases ran on one). */
TEST(test_train_grad_losses) {
    size_t i;
    json_t *c;
    int n_cases = 0;
    json_array_foreach(json_object_get(cases, "cases"), i, c) {
        const char *kind = json_string_value(json_object_get(c, "kind"));
        if (!strcmp(kind, "encoder") || !strcmp(kind, "optim")) continue;
        const char *cid = json_string_value(json_object_get(c, "id"));
        char dir[256], name[192];
        snprintf(dir, sizeof dir, MODEL_FIX "%s", json_string_value(json_object_get(c, "model")));
        se_error err = {0};
        se_tmodel *m = NULL;
        CHECK_MSG(se_tmodel_from_folder(dir, &m, &err) == SE_OK, "%s: %s", dir, err.msg);
        if (!m) continue;
        CHECK(se_tmodel_set_threads(m, 2, &err) == SE_OK);
        tbatch tb;
        case_batch(c, &tb);
        size_t B = (size_t)json_integer_value(json_object_get(c, "B"));
        size_t nc = (size_t)json_integer_value(json_object_get(c, "n_cols")), dim = m->cfg.dim;
        CHECK(tb.S == B * nc);
        float *emb = calloc(tb.S * dim, sizeof *emb), *d = calloc(tb.S * dim, sizeof *d);
        se_ttape *tape = NULL;
        CHECK_MSG(se_ttape_forward(m, &tb.b, &tape, emb, &err) == SE_OK, "%s: %s", cid, err.msg);
        float labels[64] = {0};
        json_t *jl = json_object_get(c, "labels"), *v;
        size_t k;
        json_array_foreach(jl, k, v) labels[k] = (float)json_real_value(v);
        size_t dims[8], n_dims = 0, tdim = 0;
        float weights[8];
        json_array_foreach(json_object_get(c, "dims"), k, v) dims[n_dims++] = (size_t)json_integer_value(v);
        json_array_foreach(json_object_get(c, "weights"), k, v) weights[k] = (float)json_real_value(v);
        snprintf(name, sizeof name, "%s/teacher", cid);
        const float *teacher = ref_tensor(name, NULL);
        if (teacher) tdim = (size_t)json_integer_value(json_object_get(c, "teacher_dim"));
        se_loss_spec sp = {.kind = loss_kind(kind), .dims = n_dims ? dims : NULL, .weights = n_dims ? weights : NULL,
                           .n_dims = n_dims};
        double loss = 0.0, want = json_real_value(json_object_get(c, "loss"));
        CHECK_MSG(se_loss_eval(&sp, emb, B, nc, dim, jl ? labels : NULL, teacher, tdim, &loss, d, &err) == SE_OK,
                  "%s: %s", cid, err.msg);
        CHECK_MSG(fabs(loss - want) <= 1e-5 * fabs(want) + 1e-7, "%s: loss %.9g, reference %.9g", cid, loss, want);
        { /* with the caller's scratch (sembed train's way): the same loss and gradient, bit for bit */
            size_t nd = B * nc * dim;
            double loss2 = 0.0, *scr = malloc(se_loss_scratch_size(B, nc, dim) * sizeof *scr);
            float *d2 = malloc(nd * sizeof *d2);
            se_loss_spec sp2 = sp;
            sp2.scratch = scr;
            CHECK(scr && d2 &&
                  se_loss_eval(&sp2, emb, B, nc, dim, jl ? labels : NULL, teacher, tdim, &loss2, d2, &err) == SE_OK);
            CHECK_MSG(scr && d2 && loss2 == loss && !memcmp(d, d2, nd * sizeof *d2), "%s: the scratch changes the loss",
                      cid);
            free(scr), free(d2);
        }
        se_tmodel_zero_grad(m);
        CHECK_MSG(se_ttape_backward(m, tape, d, &err) == SE_OK, "%s: %s", cid, err.msg);
        double worst = check_grads(m, c, cid);
        printf("  %-24s loss %.6f (ref %.6f), worst gradient rel error %.2e\n", cid, loss, want, worst);
        free(emb);
        free(d);
        se_ttape_free(tape);
        tbatch_free(&tb);
        se_tmodel_free(m);
        n_cases++;
    }
    CHECK(n_cases == 8);
}

/* The optimiser case: three steps of MNRL with AdamW, Hugging Face's
 * schedule and clipping from en-plain-hf's weights, each step's loss,
 * gradient norm and learning rate as PyTorch's, and the parameters after
 * them: each tensor's change within 5e-4 of the reference's (float64)
 * change. Not tighter: a float32 LayerNorm weight near 1 holds a change
 * of ~2e-3 only to its ulp (1.2e-7), 6e-5 of it, and Adam's per-element
 * normalisation passes gradients' rounding through undamped. */
TEST(test_train_optim_adamw) {
    size_t i;
    json_t *c, *oc = NULL;
    json_array_foreach(json_object_get(cases, "cases"), i, c) if (!strcmp(json_string_value(json_object_get(c, "kind")), "optim")) oc = c;
    CHECK(oc != NULL);
    if (!oc) return;
    se_error err = {0};
    se_tmodel *m = NULL;
    CHECK_MSG(se_tmodel_from_folder(MODEL_FIX "en-plain-hf", &m, &err) == SE_OK, "%s", err.msg);
    if (!m) return;
    json_t *hp = json_object_get(oc, "params");
    se_adamw_params ap = se_adamw_default_params();
    ap.lr = (float)json_real_value(json_object_get(hp, "lr"));
    ap.weight_decay = (float)json_real_value(json_object_get(hp, "weight_decay"));
    ap.max_grad_norm = (float)json_real_value(json_object_get(hp, "max_grad_norm"));
    ap.warmup_steps = (size_t)json_integer_value(json_object_get(hp, "warmup_steps"));
    ap.total_steps = (size_t)json_integer_value(json_object_get(hp, "total_steps"));
    se_adamw *opt = NULL;
    CHECK(se_adamw_new(m, &ap, &opt, &err) == SE_OK);
    if (!opt) return;
    float *w0 = malloc(m->n_floats * sizeof *w0);
    memcpy(w0, m->w_arena, m->n_floats * sizeof *w0);
    size_t B = (size_t)json_integer_value(json_object_get(oc, "B")), dim = m->cfg.dim;
    se_loss_spec sp = {.kind = SE_LOSS_MNRL};
    se_ttape *tape = NULL;
    json_t *st;
    json_array_foreach(json_object_get(oc, "steps"), i, st) {
        tbatch tb;
        case_batch(st, &tb);
        float *emb = calloc(tb.S * dim, sizeof *emb), *d = calloc(tb.S * dim, sizeof *d);
        double loss = 0.0, norm = 0.0, want = json_real_value(json_object_get(st, "loss"));
        double want_norm = json_real_value(json_object_get(st, "grad_norm")), want_lr = json_real_value(json_object_get(st, "lr"));
        CHECK(se_ttape_forward(m, &tb.b, &tape, emb, &err) == SE_OK);
        CHECK(se_loss_eval(&sp, emb, B, 2, dim, NULL, NULL, 0, &loss, d, &err) == SE_OK);
        se_tmodel_zero_grad(m);
        CHECK(se_ttape_backward(m, tape, d, &err) == SE_OK);
        double lr = se_adamw_lr(opt);
        CHECK_MSG(fabs(lr - want_lr) <= 1e-9, "step %zu: lr %.9g, reference %.9g", i, lr, want_lr);
        CHECK(se_adamw_step(opt, m, &norm, &err) == SE_OK);
        CHECK_MSG(fabs(loss - want) <= 1e-5 * fabs(want), "step %zu: loss %.9g, reference %.9g", i, loss, want);
        CHECK_MSG(fabs(norm - want_norm) <= 1e-5 * want_norm, "step %zu: grad norm %.9g, reference %.9g", i, norm,
                  want_norm);
        printf("  optim step %zu: loss %.6f (ref %.6f), grad norm %.5f (ref %.5f), lr %.3g\n", i, loss, want, norm,
               want_norm, lr);
        free(emb), free(d);
        tbatch_free(&tb);
    }
    CHECK(se_adamw_steps(opt) == 3);
    /* each tensor's change against the reference's */
    double worst = 0.0;
    size_t off = 0;
    json_t *rows = json_object_get(oc, "word_rows");
    for (size_t k = 0; k < m->n_p; k++) {
        se_tparam *p = &m->p[k];
        char name[192];
        snprintf(name, sizeof name, "optim-adamw/%s", p->name);
        size_t n = 0;
        const float *ref = ref_tensor(name, &n);
        CHECK_MSG(ref != NULL, "%s: no reference", name);
        if (!ref) continue;
        bool word = !strcmp(p->name, "embeddings.word_embeddings.weight");
        size_t nr = word ? json_array_size(rows) : p->rows, H = p->cols;
        CHECK(n == nr * H);
        double dd = 0.0, rr = 0.0;
        for (size_t r = 0; r < nr && n == nr * H; r++) {
            size_t row = word ? (size_t)json_integer_value(json_array_get(rows, r)) : r;
            for (size_t j = 0; j < H; j++) {
                double w = p->w[row * H + j], w_ref = ref[r * H + j], w_0 = w0[off + row * H + j];
                dd += (w - w_ref) * (w - w_ref), rr += (w_ref - w_0) * (w_ref - w_0);
            }
        }
        double e = rr > 0 ? sqrt(dd / rr) : sqrt(dd);
        CHECK_MSG(e <= 5e-4, "%s: change off by %.3g of the reference's", name, e);
        worst = e > worst ? e : worst;
        off += p->n;
    }
    printf("  optim-adamw: worst parameter change error %.2e\n", worst);
    se_ttape_free(tape);
    se_adamw_free(opt);
    free(w0);
    se_tmodel_free(m);
}

/* Runs steps [k0, k1) of a small MNRL training of m with o: batch k is
 * 4 pairs of token ids from a fixed LCG stream seeded by k. Returns the
 * last step's loss. */
static double train_steps(se_tmodel *m, se_adamw *o, int k0, int k1) {
    se_error err = {0};
    se_ttape *tape = NULL;
    double loss = 0.0;
    for (int k = k0; k < k1; k++) {
        int32_t ids[64];
        size_t starts[9] = {0};
        uint32_t st = 1000u + (uint32_t)k;
        for (size_t s = 0; s < 8; s++) {
            st = st * 1664525u + 1013904223u;
            starts[s + 1] = starts[s] + 3 + (st >> 24) % 5;
        }
        for (size_t t = 0; t < starts[8]; t++) {
            st = st * 1664525u + 1013904223u;
            ids[t] = (int32_t)((st >> 8) % m->cfg.V);
        }
        se_tbatch b = {.ids = ids, .starts = starts, .S = 8};
        float emb[8 * 32], d[8 * 32];
        se_loss_spec sp = {.kind = SE_LOSS_MNRL};
        CHECK(se_ttape_forward(m, &b, &tape, emb, &err) == SE_OK);
        CHECK(se_loss_eval(&sp, emb, 4, 2, m->cfg.dim, NULL, NULL, 0, &loss, d, &err) == SE_OK);
        se_tmodel_zero_grad(m);
        CHECK(se_ttape_backward(m, tape, d, &err) == SE_OK);
        CHECK(se_adamw_step(o, m, NULL, &err) == SE_OK);
    }
    se_ttape_free(tape);
    return loss;
}

/* A checkpoint resumes exactly: 2 steps, save, load into a model of other
 * weights and an optimiser of other params, 2 more steps: the same bits
 * as 4 steps without a stop. A checkpoint missing a file, or made for a
 * model of another shape, is an error naming it. */
TEST(test_train_checkpoint_resume) {
    se_tmodel_random_params rp = {.V = 60, .H = 32, .NH = 4, .FF = 48, .L = 2, .P = 16, .n_type = 2,
                                  .act = SE_ACT_GELU, .pooling = SE_POOL_MEAN, .seed = 5};
    se_adamw_params ap = se_adamw_default_params();
    ap.lr = 1e-3f, ap.weight_decay = 0.01f, ap.warmup_steps = 1, ap.total_steps = 5;
    se_error err = {0};
    se_tmodel *a = NULL, *b = NULL, *c = NULL;
    se_adamw *oa = NULL, *ob = NULL, *oc = NULL;
    CHECK(se_tmodel_random(&rp, &a, &err) == SE_OK && se_tmodel_random(&rp, &b, &err) == SE_OK);
    if (!a || !b) return;
    CHECK(se_adamw_new(a, &ap, &oa, &err) == SE_OK && se_adamw_new(b, &ap, &ob, &err) == SE_OK);
    if (!oa || !ob) return;
    double la = train_steps(a, oa, 0, 4);
    train_steps(b, ob, 0, 2);
    char dir[] = "/tmp/sembed-ckpt-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK_MSG(se_train_checkpoint_save(dir, b, ob, &err) == SE_OK, "%s", err.msg);
    se_adamw_free(ob);
    se_tmodel_free(b);
    rp.seed = 6; /* other weights, other optimiser params: the checkpoint must replace them */
    CHECK(se_tmodel_random(&rp, &c, &err) == SE_OK);
    if (!c) return;
    se_adamw_params other = se_adamw_default_params();
    CHECK(se_adamw_new(c, &other, &oc, &err) == SE_OK);
    if (!oc) return;
    CHECK_MSG(se_train_checkpoint_load(dir, c, oc, &err) == SE_OK, "%s", err.msg);
    CHECK(se_adamw_steps(oc) == 2 && fabs(se_adamw_lr(oc) - 1e-3 * 3.0 / 4.0) < 1e-9);
    double lc = train_steps(c, oc, 2, 4);
    CHECK_MSG(lc == la, "loss after resuming %.9g, without a stop %.9g", lc, la);
    CHECK(!memcmp(a->w_arena, c->w_arena, a->n_floats * sizeof(float)));
    /* errors: a model of another shape, a missing file */
    se_tmodel *d = NULL;
    se_adamw *od = NULL;
    rp.FF = 40;
    CHECK(se_tmodel_random(&rp, &d, &err) == SE_OK && se_adamw_new(d, &ap, &od, &err) == SE_OK);
    if (d && od) {
        CHECK(se_train_checkpoint_load(dir, d, od, &err) == SE_E_FORMAT);
        CHECK_MSG(strstr(err.msg, "trainer_state.json: n_parameters") != NULL, "message: %s", err.msg);
    }
    char path[256];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    remove(path);
    float w3 = c->p[3].w[0];
    CHECK(se_train_checkpoint_load(dir, c, oc, &err) == SE_E_IO);
    CHECK_MSG(strstr(err.msg, "optimizer.safetensors") != NULL, "message: %s", err.msg);
    CHECK(c->p[3].w[0] == w3); /* unchanged */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    remove(path);
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    remove(path);
    remove(dir);
    se_adamw_free(oa), se_adamw_free(oc), se_adamw_free(od);
    se_tmodel_free(a), se_tmodel_free(c), se_tmodel_free(d);
}

/* CachedMultipleNegativesRankingLoss (GradCache) as a trainer drives this
 * API: embed the batch in mini-batches, take the loss and d_emb on the
 * whole batch, then per mini-batch a forward with a tape and a backward
 * of its rows of d_emb. The gradients equal one pass over the whole batch
 * (to the rounding of summing over tokens in another grouping) and the
 * embeddings are the same bits (the GEMMs' per-element order does not
 * depend on the batch). */
TEST(test_train_gradcache) {
    se_tmodel_random_params rp = {.V = 70, .H = 32, .NH = 4, .FF = 64, .L = 2, .P = 16, .n_type = 2,
                                  .act = SE_ACT_GELU, .pooling = SE_POOL_MEAN, .seed = 9};
    se_error err = {0};
    se_tmodel *m = NULL;
    CHECK(se_tmodel_random(&rp, &m, &err) == SE_OK);
    if (!m) return;
    enum { B = 6, S = 2 * B, MB = 4 }; /* 6 pairs: 12 sentences, mini-batches of 4 */
    int32_t ids[S * 8];
    size_t starts[S + 1] = {0};
    uint32_t st = 11;
    for (size_t s = 0; s < S; s++) {
        st = st * 1664525u + 1013904223u;
        starts[s + 1] = starts[s] + 2 + (st >> 24) % 6;
    }
    for (size_t t = 0; t < starts[S]; t++) {
        st = st * 1664525u + 1013904223u;
        ids[t] = (int32_t)((st >> 8) % 70);
    }
    float emb[S * 32], emb_mb[S * 32], d[S * 32];
    se_loss_spec sp = {.kind = SE_LOSS_MNRL};
    double loss, loss_mb;
    se_ttape *tape = NULL;
    /* the whole batch at once */
    se_tbatch b = {.ids = ids, .starts = starts, .S = S};
    CHECK(se_ttape_forward(m, &b, &tape, emb, &err) == SE_OK);
    CHECK(se_loss_eval(&sp, emb, B, 2, 32, NULL, NULL, 0, &loss, d, &err) == SE_OK);
    se_tmodel_zero_grad(m);
    CHECK(se_ttape_backward(m, tape, d, &err) == SE_OK);
    float *g_full = malloc(m->n_floats * sizeof *g_full);
    memcpy(g_full, m->g_arena, m->n_floats * sizeof *g_full);
    /* GradCache: embeddings by mini-batch, the loss on all, then backward by mini-batch */
    size_t mst[MB + 1];
    for (size_t s0 = 0; s0 < S; s0 += MB) {
        for (size_t k = 0; k <= MB; k++) mst[k] = starts[s0 + k] - starts[s0];
        se_tbatch mb = {.ids = ids + starts[s0], .starts = mst, .S = MB};
        CHECK(se_ttape_forward(m, &mb, &tape, emb_mb + s0 * 32, &err) == SE_OK);
    }
    CHECK(!memcmp(emb, emb_mb, sizeof emb));
    CHECK(se_loss_eval(&sp, emb_mb, B, 2, 32, NULL, NULL, 0, &loss_mb, d, &err) == SE_OK);
    CHECK(loss_mb == loss);
    se_tmodel_zero_grad(m);
    for (size_t s0 = 0; s0 < S; s0 += MB) {
        for (size_t k = 0; k <= MB; k++) mst[k] = starts[s0 + k] - starts[s0];
        se_tbatch mb = {.ids = ids + starts[s0], .starts = mst, .S = MB};
        CHECK(se_ttape_forward(m, &mb, &tape, emb_mb + s0 * 32, &err) == SE_OK);
        CHECK(se_ttape_backward(m, tape, d + s0 * 32, &err) == SE_OK);
    }
    CHECK_CLOSE(m->g_arena, g_full, m->n_floats, 1e-7, 1e-5, "GradCache gradients");
    double e = rel_err(m->g_arena, g_full, m->n_floats);
    CHECK_MSG(e < 1e-6, "GradCache gradients: rel error %.3g", e);
    free(g_full);
    se_ttape_free(tape);
    se_tmodel_free(m);
}

/* Fills n floats with values in [-1, 1) from a small LCG. */
static void fill(float *x, size_t n, uint32_t *st) {
    for (size_t i = 0; i < n; i++) {
        *st = *st * 1664525u + 1013904223u;
        x[i] = (float)((*st >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

/* The fast Linear, input-gradient and weight-gradient GEMMs against their
 * scalar twins, on shapes with odd sizes and strided rows; on three
 * threads, the same bits as on one. */
TEST(test_train_kernels_twins) {
    static const size_t shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 17, 40}, {64, 96, 48}, {5, 200, 3}, {9, 70, 130}};
    uint32_t st = 7;
    se_threadpool *pool = se_threadpool_new(3);
    CHECK(pool != NULL);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        size_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ld = N + 3;
        float *x = malloc(M * K * sizeof *x), *w = malloc(N * K * sizeof *w), *b = malloc(N * sizeof *b);
        float *y = calloc(M * ld, sizeof *y), *y_ref = calloc(M * ld, sizeof *y);
        float *dy = malloc(M * ld * sizeof *dy), *dx = malloc(M * K * sizeof *dx), *dx_ref = malloc(M * K * sizeof *dx);
        float *dw = malloc(N * K * sizeof *dw), *dw_ref = malloc(N * K * sizeof *dw);
        float *db = malloc(N * sizeof *db), *db_ref = malloc(N * sizeof *db);
        size_t ns = se_tk_gemm_scratch(3, 200, 200);
        float *scr = malloc(ns * sizeof *scr);
        fill(x, M * K, &st), fill(w, N * K, &st), fill(b, N, &st), fill(dy, M * ld, &st);
        fill(dx, M * K, &st), fill(dw, N * K, &st), fill(db, N, &st); /* they accumulate: start non-zero */
        memcpy(dx_ref, dx, M * K * sizeof *dx), memcpy(dw_ref, dw, N * K * sizeof *dw), memcpy(db_ref, db, N * sizeof *db);
        se_tk_linear(NULL, x, M, K, w, N, b, y, ld, scr);
        se_tk_linear_ref(x, M, K, w, N, b, y_ref, ld);
        CHECK_CLOSE(y, y_ref, M * ld, 1e-5, 1e-5, "se_tk_linear");
        se_tk_dx(NULL, dy, ld, M, N, w, K, dx, scr);
        se_tk_dx_ref(dy, ld, M, N, w, K, dx_ref);
        CHECK_CLOSE(dx, dx_ref, M * K, 1e-5, 1e-5, "se_tk_dx");
        se_tk_dw(NULL, dy, ld, M, N, x, K, K, dw, db, scr);
        se_tk_dw_ref(dy, ld, M, N, x, K, K, dw_ref, db_ref);
        CHECK_CLOSE(dw, dw_ref, N * K, 1e-5, 1e-5, "se_tk_dw");
        CHECK_CLOSE(db, db_ref, N, 1e-6, 1e-6, "se_tk_dw bias");
        /* on three threads: the same bits as on one */
        float *y3 = calloc(M * ld, sizeof *y3), *dx3 = malloc(M * K * sizeof *dx3), *dw3 = malloc(N * K * sizeof *dw3);
        memcpy(dx3, dx_ref, M * K * sizeof *dx3), memcpy(dw3, dw_ref, N * K * sizeof *dw3);
        memcpy(dx, dx_ref, M * K * sizeof *dx), memcpy(dw, dw_ref, N * K * sizeof *dw);
        se_tk_linear(pool, x, M, K, w, N, b, y3, ld, scr);
        CHECK(!memcmp(y, y3, M * ld * sizeof *y));
        se_tk_dx(NULL, dy, ld, M, N, w, K, dx, scr);
        se_tk_dx(pool, dy, ld, M, N, w, K, dx3, scr);
        CHECK(!memcmp(dx, dx3, M * K * sizeof *dx));
        se_tk_dw(NULL, dy, ld, M, N, x, K, K, dw, NULL, scr);
        se_tk_dw(pool, dy, ld, M, N, x, K, K, dw3, NULL, scr);
        CHECK(!memcmp(dw, dw3, N * K * sizeof *dw));
        free(y3), free(dx3), free(dw3);
        free(x), free(w), free(b), free(y), free(y_ref), free(dy), free(dx), free(dx_ref);
        free(dw), free(dw_ref), free(db), free(db_ref), free(scr);
    }
    se_threadpool_free(pool);
}

/* A random model: BERT's init, deterministic for the seed; forward and
 * backward in training mode (dropout) on one thread and on three give the
 * same bits (shapes wide enough for several column blocks per GEMM). */
TEST(test_train_random_deterministic) {
    se_tmodel_random_params rp = {.V = 50, .H = 80, .NH = 4, .FF = 160, .L = 2, .P = 16, .n_type = 2,
                                  .act = SE_ACT_GELU, .pooling = SE_POOL_MEAN, .normalize = true, .seed = 42,
                                  .hidden_dropout = 0.1f, .attn_dropout = 0.1f};
    se_error err = {0};
    se_tmodel *a = NULL, *b = NULL;
    CHECK(se_tmodel_random(&rp, &a, &err) == SE_OK);
    CHECK(se_tmodel_random(&rp, &b, &err) == SE_OK);
    if (!a || !b) return;
    CHECK(a->n_floats == b->n_floats && !memcmp(a->w_arena, b->w_arena, a->n_floats * sizeof(float)));
    se_tparam *ln = se_tmodel_param(a, "encoder.layer.1.output.LayerNorm.weight");
    se_tparam *qb = se_tmodel_param(a, "encoder.layer.0.attention.self.query.bias");
    se_tparam *qw = se_tmodel_param(a, "encoder.layer.0.attention.self.query.weight");
    CHECK(ln && ln->w[0] == 1.0f && ln->w[79] == 1.0f && ln->no_decay);
    CHECK(qb && qb->w[3] == 0.0f && qb->no_decay);
    CHECK(qw && !qw->no_decay && qw->rows == 80 && qw->cols == 80);
    CHECK(se_tmodel_set_threads(b, 3, &err) == SE_OK);
    if (qw) { /* normal(0, 0.02): the sample's standard deviation within 20% */
        double ss = 0.0;
        for (size_t i = 0; i < qw->n; i++) ss += (double)qw->w[i] * qw->w[i];
        double sd = sqrt(ss / (double)qw->n);
        CHECK_MSG(sd > 0.016 && sd < 0.024, "query weight sd %.4f", sd);
    }
    int32_t ids[] = {1, 5, 9, 3, 2, 7, 11, 4, 4, 0};
    size_t starts[] = {0, 4, 7, 10};
    se_tbatch tb = {.ids = ids, .starts = starts, .S = 3, .train = true, .dropout_key = 77};
    float ea[3 * 80], eb[3 * 80], d[3 * 80], e_eval[3 * 80];
    uint32_t st = 3;
    fill(d, 3 * 80, &st);
    se_ttape *ta = NULL, *tb2 = NULL;
    CHECK(se_ttape_forward(a, &tb, &ta, ea, &err) == SE_OK);
    CHECK(se_ttape_forward(b, &tb, &tb2, eb, &err) == SE_OK);
    CHECK(!memcmp(ea, eb, sizeof ea));
    se_tbatch tev = tb;
    se_ttape *tc = NULL;
    tev.train = false; /* dropout changes the embeddings; evaluation mode has none */
    CHECK(se_ttape_forward(a, &tev, &tc, e_eval, &err) == SE_OK);
    CHECK(memcmp(ea, e_eval, sizeof ea) != 0);
    se_ttape_free(tc);
    se_tmodel_zero_grad(a), se_tmodel_zero_grad(b);
    CHECK(se_ttape_backward(a, ta, d, &err) == SE_OK);
    CHECK(se_ttape_backward(b, tb2, d, &err) == SE_OK);
    CHECK(!memcmp(a->g_arena, b->g_arena, a->n_floats * sizeof(float)));
    double gs = 0.0;
    for (size_t i = 0; i < a->n_floats; i++) gs += fabs(a->g_arena[i]);
    CHECK(gs > 0.0);
    /* the key bias's gradient is exactly zero (the softmax cancels it); the query bias's is not */
    se_tparam *kb = se_tmodel_param(a, "encoder.layer.1.attention.self.key.bias");
    se_tparam *qb1 = se_tmodel_param(a, "encoder.layer.1.attention.self.query.bias");
    size_t nz = 0;
    for (size_t i = 0; kb && i < kb->n; i++) nz += kb->g[i] != 0.0f;
    CHECK(kb && nz == 0 && kb->no_decay);
    nz = 0;
    for (size_t i = 0; qb1 && i < qb1->n; i++) nz += qb1->g[i] != 0.0f;
    CHECK(qb1 && nz > 0);
    se_ttape_free(ta), se_ttape_free(tb2);
    se_tmodel_free(a), se_tmodel_free(b);
}

/* Bad input: an id outside the vocabulary, a sentence longer than the
 * positions, a tape of another model's shape, a backward after the
 * threads grew, AdamW's bad params and a gradient that is not finite, a
 * loss given the wrong columns, a model training does not support (a
 * cross-encoder): each an error naming it. */
TEST(test_train_bad_input) {
    se_tmodel_random_params rp = {.V = 20, .H = 8, .NH = 2, .FF = 16, .L = 1, .P = 4, .act = SE_ACT_GELU, .seed = 1};
    se_error err = {0};
    se_tmodel *m = NULL;
    CHECK(se_tmodel_random(&rp, &m, &err) == SE_OK);
    if (!m) return;
    int32_t ids[] = {1, 2, 20, 3, 1, 1, 1, 1, 1};
    size_t starts[] = {0, 4}, starts2[] = {0, 2, 7};
    se_tbatch b = {.ids = ids, .starts = starts, .S = 1};
    float emb[16];
    se_ttape *t = NULL;
    CHECK(se_ttape_forward(m, &b, &t, emb, &err) == SE_E_RANGE);
    CHECK_MSG(strstr(err.msg, "sentence 0, position 2: token id 20") != NULL, "message: %s", err.msg);
    ids[2] = 5;
    b.starts = starts2, b.S = 2;
    CHECK(se_ttape_forward(m, &b, &t, emb, &err) == SE_E_RANGE);
    CHECK_MSG(strstr(err.msg, "sentence 1: 5 tokens, more than the 4 positions") != NULL, "message: %s", err.msg);
    /* a good batch; its tape offered to a 2-layer model; more threads before the backward */
    b.starts = starts, b.S = 1;
    CHECK(se_ttape_forward(m, &b, &t, emb, &err) == SE_OK);
    se_tmodel_random_params rp2 = rp;
    rp2.L = 2;
    se_tmodel *m2 = NULL;
    CHECK(se_tmodel_random(&rp2, &m2, &err) == SE_OK);
    if (m2) CHECK(se_ttape_forward(m2, &b, &t, emb, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "tape was made for a model of 1 layers") != NULL, "message: %s", err.msg);
    se_tmodel_free(m2);
    CHECK(se_tmodel_set_threads(m, 3, &err) == SE_OK);
    CHECK(se_ttape_backward(m, t, emb, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "threads changed since the forward pass") != NULL, "message: %s", err.msg);
    se_ttape_free(t);
    /* AdamW: bad params, a gradient that is not finite (nothing updated) */
    se_adamw_params ap = se_adamw_default_params();
    se_adamw *opt = NULL;
    ap.lr = 0.0f;
    CHECK(se_adamw_new(m, &ap, &opt, &err) == SE_E_INVALID && opt == NULL);
    CHECK_MSG(strstr(err.msg, "AdamW: lr 0 is not > 0") != NULL, "message: %s", err.msg);
    ap = se_adamw_default_params();
    ap.warmup_steps = 10, ap.total_steps = 5;
    CHECK(se_adamw_new(m, &ap, &opt, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "warmup_steps 10 past total_steps 5") != NULL, "message: %s", err.msg);
    ap = se_adamw_default_params();
    CHECK(se_adamw_new(m, &ap, &opt, &err) == SE_OK);
    se_tmodel_zero_grad(m);
    se_tparam *fw = se_tmodel_param(m, "encoder.layer.0.intermediate.dense.weight");
    float before = fw->w[3];
    fw->g[3] = NAN;
    CHECK(se_adamw_step(opt, m, NULL, &err) == SE_E_RANGE);
    CHECK_MSG(strstr(err.msg, "gradient of encoder.layer.0.intermediate.dense.weight is not finite") != NULL,
              "message: %s", err.msg);
    CHECK(fw->w[3] == before && se_adamw_steps(opt) == 0);
    se_adamw_free(opt);
    se_tmodel_free(m);
    rp.H = 9;
    CHECK(se_tmodel_random(&rp, &m, &err) == SE_E_INVALID && m == NULL);
    se_loss_spec sp = {.kind = SE_LOSS_TRIPLET};
    double loss;
    float e[4 * 8] = {0}, d[4 * 8];
    CHECK(se_loss_eval(&sp, e, 2, 2, 8, NULL, NULL, 0, &loss, d, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "TripletLoss: 2 columns") != NULL, "message: %s", err.msg);
    sp.kind = SE_LOSS_COSENT;
    CHECK(se_loss_eval(&sp, e, 2, 2, 8, NULL, NULL, 0, &loss, d, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "CoSENTLoss: no labels") != NULL, "message: %s", err.msg);
    size_t dims[] = {4, 9};
    sp = (se_loss_spec){.kind = SE_LOSS_MNRL, .dims = dims, .n_dims = 2};
    CHECK(se_loss_eval(&sp, e, 2, 2, 8, NULL, NULL, 0, &loss, d, &err) == SE_E_INVALID);
    CHECK_MSG(strstr(err.msg, "dims[1] = 9 outside 1..8") != NULL, "message: %s", err.msg);
    se_tmodel *x = NULL;
    CHECK(se_tmodel_from_folder(MODEL_FIX "ce-bert-1", &x, &err) == SE_E_UNSUPPORTED && x == NULL);
    CHECK_MSG(strstr(err.msg, "model_type \"bert\" (a cross-encoder)") != NULL, "message: %s", err.msg);
}

int main(void) {
    load_fixtures();
    RUN(test_train_kernels_twins);
    RUN(test_train_grad_encoder);
    RUN(test_train_grad_losses);
    RUN(test_train_optim_adamw);
    RUN(test_train_checkpoint_resume);
    RUN(test_train_gradcache);
    RUN(test_train_random_deterministic);
    RUN(test_train_bad_input);
    json_decref(cases);
    json_decref(blob_hdr);
    free(blob);
    return test_report("test_train_grad");
}
