/*
 * test_classify_fit.c - se_classifier on problems whose optimum can be checked
 * by hand: a separable pair (finite only through the penalty), intercept-only
 * problems whose probabilities are the label frequencies, the optimality
 * conditions of a random non-separable softmax problem computed here
 * independently, the file's round trip and its corrupt forms, the model
 * check, bad input and allocation failures.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "sembed.h"
#include "test.h"

/* Two points x = -1 (label "a") and x = +1 ("b"), separable: without the
 * penalty w would grow without bound. With C = 1 the objective is
 * 2 log(1 + e^-w) + w^2 / 2 (b = 0 by symmetry), whose minimum solves
 * w = 2 / (1 + e^w): w = 0.6749... (found here by bisection). */
TEST(test_classify_separable_pair) {
    float x[2] = {-1, 1};
    const char *y[2] = {"b", "a"};
    x[0] = 1, x[1] = -1; /* input order: "b" first; classes are sorted anyway */
    se_classifier *c = NULL;
    se_error err = {0};
    CHECK(se_classifier_fit(x, 2, 1, y, NULL, &c, &err) == SE_OK);
    if (!c) return;
    double lo = 0, hi = 2;
    for (int i = 0; i < 200; i++) {
        double mid = (lo + hi) / 2;
        if (mid - 2 / (1 + exp(mid)) < 0) lo = mid;
        else hi = mid;
    }
    CHECK(fabs(lo - 0.6749) < 1e-4); /* the hand value */
    se_classifier_info in;
    CHECK(se_classifier_get_info(c, &in, &err) == SE_OK);
    CHECK(in.n_classes == 2 && in.n_rows == 1 && in.dim == 1 && in.converged);
    CHECK(!strcmp(in.classes[0], "a") && !strcmp(in.classes[1], "b"));
    CHECK_MSG(fabs(in.coef[0] - lo) < 1e-8, "w %.12f, want %.12f", in.coef[0], lo);
    CHECK_MSG(fabs(in.intercept[0]) < 1e-8, "b %.3g, want 0", in.intercept[0]);
    float q[2] = {1, -1}, p[4];
    int32_t lab[2];
    CHECK(se_classifier_predict_proba(c, q, 2, p, 4, &err) == SE_OK);
    double s = 1 / (1 + exp(-lo));
    CHECK(fabs(p[1] - s) < 1e-6 && fabs(p[0] - (1 - s)) < 1e-6 && fabs(p[2] - s) < 1e-6);
    CHECK(se_classifier_predict(c, q, 2, lab, &err) == SE_OK && lab[0] == 1 && lab[1] == 0);
    CHECK(se_classifier_predict_proba(c, q, 2, p, 3, &err) == SE_E_BUFFER);
    se_classifier_free(c);
}

/* All vectors zero, labels a, a, b: only the intercept can move, and the
 * optimum gives the frequencies: p(b) = 1/3, intercept log(1/2), w = 0. */
TEST(test_classify_intercept_binary) {
    float x[3 * 2] = {0};
    const char *y[3] = {"a", "b", "a"};
    se_classifier *c = NULL;
    CHECK(se_classifier_fit(x, 3, 2, y, NULL, &c, NULL) == SE_OK);
    if (!c) return;
    se_classifier_info in;
    se_classifier_get_info(c, &in, NULL);
    CHECK(in.coef[0] == 0 && in.coef[1] == 0);
    CHECK_MSG(fabs(in.intercept[0] - log(0.5)) < 1e-9, "b %.12f, want log(1/2)", in.intercept[0]);
    float p[2];
    CHECK(se_classifier_predict_proba(c, x, 1, p, 2, NULL) == SE_OK);
    CHECK(fabs(p[0] - 2.0 / 3) < 1e-7 && fabs(p[1] - 1.0 / 3) < 1e-7);
    se_classifier_free(c);
}

/* Three classes from zero vectors with counts c:1, b:2, a:3: a softmax
 * whose probabilities are 3/6, 2/6, 1/6 (classes sorted), intercepts
 * log(count) less their mean (the fit keeps them summing to zero). */
TEST(test_classify_intercept_softmax) {
    float x[6] = {0};
    const char *y[6] = {"c", "b", "a", "b", "a", "a"};
    se_classifier *c = NULL;
    CHECK(se_classifier_fit(x, 6, 1, y, NULL, &c, NULL) == SE_OK);
    if (!c) return;
    se_classifier_info in;
    se_classifier_get_info(c, &in, NULL);
    CHECK(in.n_classes == 3 && in.n_rows == 3);
    double m = (log(3) + log(2) + log(1)) / 3, want[3] = {log(3) - m, log(2) - m, -m};
    for (int k = 0; k < 3; k++) CHECK_MSG(fabs(in.intercept[k] - want[k]) < 1e-9, "b[%d] %.12f want %.12f", k, in.intercept[k], want[k]);
    float p[3];
    CHECK(se_classifier_predict_proba(c, x, 1, p, 3, NULL) == SE_OK);
    CHECK(fabs(p[0] - 0.5) < 1e-7 && fabs(p[1] - 1.0 / 3) < 1e-7 && fabs(p[2] - 1.0 / 6) < 1e-7);
    se_classifier_free(c);
}

/* A small deterministic pseudo-random float in [-1, 1). */
static float rnd(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* A non-separable softmax problem (40 noisy points, 3 classes, 4
 * dimensions, C = 0.5): at the fitted optimum the gradient of
 * C * sum(logloss) + ||W||^2 / 2, computed here from its definition, is
 * zero; the weight rows sum to zero over the classes (the penalty picks the
 * centred solution), the intercepts too; a second fit gives the same bits. */
TEST(test_classify_softmax_optimality) {
    enum { N = 40, D = 4, K = 3 };
    float x[N * D];
    const char *names[K] = {"x", "y", "z"}, *y[N];
    unsigned s = 7;
    for (int i = 0; i < N; i++) {
        int k = i % K;
        y[i] = names[k];
        for (int j = 0; j < D; j++) x[i * D + j] = rnd(&s) + (j == k ? 0.8f : 0.0f);
    }
    se_classifier_params p = se_classifier_default_params();
    p.C = 0.5;
    se_classifier *c = NULL, *c2 = NULL;
    CHECK(se_classifier_fit(x, N, D, y, &p, &c, NULL) == SE_OK);
    CHECK(se_classifier_fit(x, N, D, y, &p, &c2, NULL) == SE_OK);
    if (!c || !c2) goto out;
    se_classifier_info in, in2;
    se_classifier_get_info(c, &in, NULL);
    se_classifier_get_info(c2, &in2, NULL);
    CHECK(in.converged && in.n_iter > 3);
    CHECK(!memcmp(in.coef, in2.coef, K * D * sizeof(double)) && !memcmp(in.intercept, in2.intercept, K * sizeof(double)));
    double g[K][D + 1] = {{0}};
    for (int i = 0; i < N; i++) {
        double z[K], mx = -1e300, sum = 0;
        for (int k = 0; k < K; k++) {
            z[k] = in.intercept[k];
            for (int j = 0; j < D; j++) z[k] += in.coef[k * D + j] * x[i * D + j];
            if (z[k] > mx) mx = z[k];
        }
        for (int k = 0; k < K; k++) sum += exp(z[k] - mx);
        for (int k = 0; k < K; k++) {
            double dz = exp(z[k] - mx) / sum - (i % K == k);
            for (int j = 0; j < D; j++) g[k][j] += p.C * dz * x[i * D + j];
            g[k][D] += p.C * dz;
        }
    }
    double gmax = 0, wsum = 0, bsum = 0;
    for (int k = 0; k < K; k++) {
        for (int j = 0; j < D; j++) g[k][j] += in.coef[k * D + j];
        for (int j = 0; j <= D; j++) gmax = fmax(gmax, fabs(g[k][j]));
        bsum += in.intercept[k];
    }
    for (int j = 0; j < D; j++) {
        double cs = 0;
        for (int k = 0; k < K; k++) cs += in.coef[k * D + j];
        wsum = fmax(wsum, fabs(cs));
    }
    CHECK_MSG(gmax < 1e-8, "gradient %.3g at the optimum", gmax);
    CHECK_MSG(wsum < 1e-8 && fabs(bsum) < 1e-12, "weight column sums %.3g, intercept sum %.3g", wsum, bsum);
    CHECK(fabs(in.coef[0]) > 0.1); /* the signal in dimension k for class k was found */
out:
    se_classifier_free(c);
    se_classifier_free(c2);
}

/* Writes text to path. */
static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

/* save then load gives the same bits and settings; the model check takes
 * the same fingerprint (and another dtype), refuses another model naming the
 * field, and refuses every model when none was recorded. */
TEST(test_classify_save_load_check) {
    float x[4] = {0.5f, -1, 2, 0.25f};
    const char *y[4] = {"neg", "pos", "pos", "neg"};
    const char *fp = "arch=bert dim=1 dtype=f32 config=0123456789abcdef tokenizer=1111111111111111 weights=2222222222222222";
    se_classifier_params p = se_classifier_default_params();
    p.model_fingerprint = fp;
    p.encode.prompt_name = "query";
    p.encode.normalize = true;
    se_classifier *c = NULL, *l = NULL;
    se_error err = {0};
    char path[] = "/tmp/test_classify_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    CHECK(se_classifier_fit(x, 4, 1, y, &p, &c, &err) == SE_OK);
    CHECK(se_classifier_save(c, path, &err) == SE_OK);
    CHECK(se_classifier_load(path, &l, &err) == SE_OK);
    if (c && l) {
        se_classifier_info a, b;
        se_classifier_get_info(c, &a, NULL);
        se_classifier_get_info(l, &b, NULL);
        CHECK(a.coef[0] == b.coef[0] && a.intercept[0] == b.intercept[0] && a.objective == b.objective);
        CHECK(b.n_samples == 4 && b.n_iter == a.n_iter && b.converged && b.C == 1.0);
        CHECK(!strcmp(b.model_fingerprint, fp) && b.encode.normalize && !strcmp(b.encode.prompt_name, "query") &&
              !b.encode.prompt);
        CHECK(se_classifier_check_model(l, fp, &err) == SE_OK);
        CHECK(se_classifier_check_model(l, "arch=bert dim=1 dtype=bf16 config=0123456789abcdef tokenizer=1111111111111111 "
                                           "weights=2222222222222222", &err) == SE_OK);
        err.msg[0] = 0;
        CHECK(se_classifier_check_model(l, "arch=bert dim=1 dtype=f32 config=0123456789abcdef tokenizer=1111111111111111 "
                                           "weights=3333333333333333", &err) == SE_E_INVALID);
        CHECK_MSG(strstr(err.msg, "weights 2222222222222222 (classifier) vs 3333333333333333 (model)") != NULL, "%s", err.msg);
    }
    se_classifier_free(l);
    se_classifier_free(c);
    p.model_fingerprint = NULL;
    CHECK(se_classifier_fit(x, 4, 1, y, &p, &c, &err) == SE_OK);
    CHECK(c && se_classifier_check_model(c, fp, &err) == SE_E_INVALID && strstr(err.msg, "no model fingerprint"));
    se_classifier_free(c);
    unlink(path);
}

/* Corrupt files: each a SE_E_FORMAT naming the field (or SE_E_IO for a
 * missing file), never a crash. */
TEST(test_classify_load_corrupt) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"[1]", "not a JSON object"},
        {"{\"format\": \"other\", \"version\": 1}", "\"format\""},
        {"{\"format\": \"sembed-classifier\", \"version\": 9, \"dim\": 1}", "\"version\" 9"},
        {"{\"format\": \"sembed-classifier\", \"version\": 1, \"dim\": 1, \"classes\": [\"a\"]}", "\"classes\""},
        {"{\"format\": \"sembed-classifier\", \"version\": 1, \"dim\": 1, \"classes\": [\"b\", \"a\"], \"coef\": [[1]], "
         "\"intercept\": [0]}", "out of order"},
        {"{\"format\": \"sembed-classifier\", \"version\": 1, \"dim\": 1, \"classes\": [\"a\", \"a\"], \"coef\": [[1]], "
         "\"intercept\": [0]}", "repeated"},
        {"{\"format\": \"sembed-classifier\", \"version\": 1, \"dim\": 2, \"classes\": [\"a\", \"b\"], \"coef\": [[1]], "
         "\"intercept\": [0]}", "\"coef\"[0] must be an array of 2"},
        {"{\"format\": \"sembed-classifier\", \"version\": 1, \"dim\": 1, \"classes\": [\"a\", \"b\", \"c\"], \"coef\": [[1]], "
         "\"intercept\": [0]}", "3 rows"},
        {"{\"format\": \"sembed-classifier\", \"version\": 1, \"dim\": 1, \"classes\": [\"a\", \"b\"], \"coef\": [[\"x\"]], "
         "\"intercept\": [0]}", "\"coef\"[0][0] is not a finite number"},
        {"{\"format\": \"sembed-classifier\", \"version\": 1, \"dim\": 1, \"classes\": [\"a\", \"b\"], \"coef\": [[1]], "
         "\"intercept\": [1e999]}", "test_classify"}, /* jansson refuses the overflow: a parse error naming the file */
        {"{\"format\": \"sembed-classifier\", \"format\": \"sembed-classifier\"}", "test_classify"},
        {"{\"format\": \"sembed-classifier\", \"version\": 1, \"dim\": 1, \"classes\": [\"a\", \"b\"], \"coef\": [[1]], "
         "\"intercept\": [0], \"encode\": {\"truncate_dim\": -1}}", "truncate_dim"},
    };
    char path[] = "/tmp/test_classify_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        put(path, cases[i].text);
        se_classifier *c = NULL;
        se_error err = {0};
        se_status st = se_classifier_load(path, &c, &err);
        CHECK_MSG(st == SE_E_FORMAT && !c && strstr(err.msg, cases[i].want), "case %zu: %s: %s", i, se_status_str(st), err.msg);
        se_classifier_free(c);
    }
    unlink(path);
    se_classifier *c = NULL;
    se_error err = {0};
    CHECK(se_classifier_load(path, &c, &err) == SE_E_IO && !c);
}

/* Bad input: one class, an empty or invalid label, a NaN, bad params, NULLs:
 * a status and a message naming the example. */
TEST(test_classify_bad_input) {
    float x[3] = {1, 2, 3};
    se_classifier *c = NULL;
    se_error err = {0};
    const char *one[3] = {"same", "same", "same"};
    CHECK(se_classifier_fit(x, 3, 1, one, NULL, &c, &err) == SE_E_INVALID && !c);
    CHECK_MSG(strstr(err.msg, "\"same\"") && strstr(err.msg, "two classes"), "%s", err.msg);
    const char *empty[3] = {"a", "", "b"};
    CHECK(se_classifier_fit(x, 3, 1, empty, NULL, &c, &err) == SE_E_INVALID && strstr(err.msg, "example 1"));
    const char *bad[3] = {"a", "b", "\xff"};
    CHECK(se_classifier_fit(x, 3, 1, bad, NULL, &c, &err) == SE_E_INVALID && strstr(err.msg, "example 2") &&
          strstr(err.msg, "UTF-8"));
    const char *ok[3] = {"a", "b", "a"};
    float nan_x[3] = {1, NAN, 3};
    CHECK(se_classifier_fit(nan_x, 3, 1, ok, NULL, &c, &err) == SE_E_RANGE && strstr(err.msg, "example 1"));
    se_classifier_params p = se_classifier_default_params();
    p.C = 0;
    CHECK(se_classifier_fit(x, 3, 1, ok, &p, &c, &err) == SE_E_INVALID && strstr(err.msg, "C must"));
    CHECK(se_classifier_fit(x, 0, 1, ok, NULL, &c, &err) == SE_E_INVALID);
    CHECK(se_classifier_fit(NULL, 3, 1, ok, NULL, &c, &err) == SE_E_INVALID);
    CHECK(se_classifier_fit(x, 3, 1, ok, NULL, &c, &err) == SE_OK);
    float p2[2];
    CHECK(se_classifier_predict_proba(c, nan_x + 1, 1, p2, 2, &err) == SE_E_RANGE && strstr(err.msg, "vector 0"));
    CHECK(se_classifier_save(c, "/nonexistent-dir/head.json", &err) == SE_E_IO && strstr(err.msg, "/nonexistent-dir/head.json"));
    se_classifier_free(c);
    se_classifier_free(NULL);
}

/* Every allocation of a fit and of a load failing in turn: SE_E_NOMEM (or
 * the error jansson's own allocation becomes), nothing leaked (ASan), and
 * then a normal fit. */
TEST(test_classify_alloc_failures) {
    float x[4] = {0.5f, -1, 2, 0.25f};
    const char *y[4] = {"neg", "pos", "pos", "neg"};
    se_classifier *c = NULL;
    int failures = 0;
    for (long k = 1; k < 40; k++) {
        se_alloc_fail_after(k);
        se_status st = se_classifier_fit(x, 4, 1, y, NULL, &c, NULL);
        se_alloc_fail_after(0);
        if (st == SE_OK) {
            se_classifier_free(c);
            c = NULL;
            break;
        }
        CHECK(st == SE_E_NOMEM && !c);
        failures++;
    }
    CHECK(failures >= 5);
    CHECK(se_classifier_fit(x, 4, 1, y, NULL, &c, NULL) == SE_OK);
    char path[] = "/tmp/test_classify_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    CHECK(se_classifier_save(c, path, NULL) == SE_OK);
    se_classifier_free(c);
    for (long k = 1; k < 40; k++) {
        se_classifier *l = NULL;
        se_alloc_fail_after(k);
        se_status st = se_classifier_load(path, &l, NULL);
        se_alloc_fail_after(0);
        se_classifier_free(l);
        if (st == SE_OK) break;
        CHECK(st == SE_E_NOMEM && !l);
    }
    unlink(path);
}

int main(void) {
    RUN(test_classify_separable_pair);
    RUN(test_classify_intercept_binary);
    RUN(test_classify_intercept_softmax);
    RUN(test_classify_softmax_optimality);
    RUN(test_classify_save_load_check);
    RUN(test_classify_load_corrupt);
    RUN(test_classify_bad_input);
    RUN(test_classify_alloc_failures);
    return test_report("test_classify_fit");
}
