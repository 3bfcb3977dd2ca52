/*
 * classify.c - SetFit-style classification heads on frozen embeddings:
 * L2-penalised logistic regression (scikit-learn's LogisticRegression()
 * objective), fitted with L-BFGS, and its JSON file.
 *
 * Legend: N samples, D the embedding dimension, K classes, R the rows of
 * the weights (1 for two classes: one logistic of classes[1] against
 * classes[0]; K otherwise: a softmax), P = R * (D + 1) parameters, laid out
 * as theta = [W (R, D) row-major | b (R)].
 *
 * The objective (sklearn's, summed rather than averaged):
 *     f(theta) = C * sum_i logloss(x_i, y_i) + 0.5 * ||W||^2
 * binary: logloss = softplus(-z) for y = classes[1], softplus(z) otherwise,
 *         z = w.x + b;
 * softmax: logloss = logsumexp(z) - z_y, z = W x + b.
 * Gradient: dz = p - onehot(y) (binary: sigmoid(z) - y), grad W_r =
 * C * sum_i dz_ir x_i + W_r, grad b_r = C * sum_i dz_ir. f is strictly convex
 * in W (the penalty); the softmax intercepts have one flat direction (a
 * common shift), which every gradient is orthogonal to, so starting from
 * zero they keep summing to zero. Everything is sequential in double
 * precision: the same input gives the same bits.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "json.h"
#include "sembed.h"
#include "unicode.h"

#define FORMAT_TAG "sembed-classifier"
#define FORMAT_VERSION 1
#define LBFGS_M 10          /* L-BFGS history pairs */
#define HEAD_FILE_MAX ((size_t)256 << 20)

struct se_classifier {
    size_t K, D, R;
    char **classes;        /* K, sorted by bytes */
    double *coef;          /* (R, D) */
    double *intercept;     /* R */
    double C;
    char *fingerprint;     /* NULL: none */
    char *prompt, *prompt_name;
    int32_t truncate_dim;
    bool normalize, skip_normalize;
    size_t n_samples;
    int32_t n_iter;
    bool converged;
    double objective, grad_max;
};

se_classifier_params se_classifier_default_params(void) {
    se_classifier_params p;
    memset(&p, 0, sizeof p);
    p.C = 1.0;
    p.tol = 1e-10;
    p.max_iter = 10000;
    p.model_fingerprint = NULL;
    p.encode = se_encode_default_params();
    return p;
}

/* Frees everything a classifier owns. */
void se_classifier_free(se_classifier *clf) {
    if (!clf) return;
    if (clf->classes)
        for (size_t k = 0; k < clf->K; k++) se_free(clf->classes[k]);
    se_free(clf->classes);
    se_free(clf->coef);
    se_free(clf->intercept);
    se_free(clf->fingerprint);
    se_free(clf->prompt);
    se_free(clf->prompt_name);
    se_free(clf);
}

/* A new classifier with room for K classes (names NULL) and R x D weights,
 * all zero. NULL on OOM. */
static se_classifier *clf_alloc(size_t K, size_t D) {
    se_classifier *c = se_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->K = K, c->D = D, c->R = K == 2 ? 1 : K;
    c->classes = se_calloc(K, sizeof *c->classes);
    c->coef = c->R && D <= SIZE_MAX / sizeof(double) / c->R ? se_calloc(c->R * D + 1, sizeof(double)) : NULL;
    c->intercept = se_calloc(c->R + 1, sizeof(double));
    if (!c->classes || !c->coef || !c->intercept) {
        se_classifier_free(c);
        return NULL;
    }
    return c;
}

/* log(1 + e^z) without overflow. */
static double softplus(double z) {
    return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
}

/* The problem the optimiser sees: borrowed data plus the integer labels. */
typedef struct problem {
    const float *x;  /* (N, D) */
    const int32_t *y; /* N, class indices */
    size_t N, D, R;
    double C;
    double *z;       /* scratch (R) */
} problem;

/* f(theta) and its gradient g (P entries). */
static double objective(const problem *pb, const double *theta, double *g) {
    size_t N = pb->N, D = pb->D, R = pb->R, P = R * (D + 1);
    const double *W = theta, *b = theta + R * D;
    double *gW = g, *gb = g + R * D, *z = pb->z;
    memset(g, 0, P * sizeof *g);
    double loss = 0;
    for (size_t i = 0; i < N; i++) {
        const float *xi = pb->x + i * D;
        for (size_t r = 0; r < R; r++) {
            const double *w = W + r * D;
            double s = b[r];
            for (size_t j = 0; j < D; j++) s += w[j] * (double)xi[j];
            z[r] = s;
        }
        if (R == 1) {
            bool pos = pb->y[i] == 1;
            loss += pos ? softplus(-z[0]) : softplus(z[0]);
            /* sigmoid(z) - y, computed on the side that does not cancel */
            double p = z[0] >= 0 ? 1 / (1 + exp(-z[0])) : exp(z[0]) / (1 + exp(z[0]));
            z[0] = p - (pos ? 1.0 : 0.0);
        } else {
            double mx = z[0];
            for (size_t r = 1; r < R; r++)
                if (z[r] > mx) mx = z[r];
            double se = 0;
            for (size_t r = 0; r < R; r++) se += exp(z[r] - mx);
            double lse = mx + log(se);
            loss += lse - z[pb->y[i]];
            for (size_t r = 0; r < R; r++) z[r] = exp(z[r] - lse) - ((size_t)pb->y[i] == r ? 1.0 : 0.0);
        }
        for (size_t r = 0; r < R; r++) {
            double d = pb->C * z[r];
            if (d == 0) continue;
            double *gw = gW + r * D;
            for (size_t j = 0; j < D; j++) gw[j] += d * (double)xi[j];
            gb[r] += d;
        }
    }
    double pen = 0;
    for (size_t j = 0; j < R * D; j++) {
        pen += W[j] * W[j];
        gW[j] += W[j];
    }
    return pb->C * loss + 0.5 * pen;
}

/* The largest entry of v in magnitude. */
static double max_abs(const double *v, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(v[i]) > m) m = fabs(v[i]);
    return m;
}

static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Minimises the objective from theta (in: the start, zero; out: the
 * optimum) with L-BFGS (Nocedal & Wright, algorithm 7.4, M pairs). The line
 * search backtracks from step 1 and accepts a step by Armijo's condition
 * (c1 = 1e-4) or, once f's changes fall below its rounding, by the
 * approximate Wolfe condition of Hager and Zhang (f did not grow beyond
 * rounding, and the directional derivative shrank to at most 0.9 of its
 * size): the gradient is accurate long after f stops resolving progress.
 * Stops when max|g| <= gtol (converged), after max_iter iterations, or when
 * no step makes progress even along -g. */
static se_status lbfgs(const problem *pb, double *theta, double gtol, int32_t max_iter, int32_t *n_iter,
                       bool *converged, double *f_out, double *gmax_out, se_error *err) {
    size_t P = pb->R * (pb->D + 1);
    if (P > SIZE_MAX / sizeof(double) / (2 * LBFGS_M + 5))
        return se_err(err, SE_E_NOMEM, "classifier: %zu parameters are too many", P);
    double *mem = se_calloc((2 * LBFGS_M + 5) * P, sizeof(double));
    if (!mem) return se_err(err, SE_E_NOMEM, "classifier: out of memory for %zu parameters", P);
    double *S = mem, *Y = S + LBFGS_M * P, *g = Y + LBFGS_M * P, *d = g + P, *tn = d + P, *gn = tn + P;
    double rho[LBFGS_M], alpha[LBFGS_M];
    size_t head = 0, used = 0; /* ring buffer of (s, y) pairs */
    double f = objective(pb, theta, g);
    int32_t it = 0;
    bool conv = false;
    while (1) {
        if (max_abs(g, P) <= gtol) {
            conv = true;
            break;
        }
        if (it >= max_iter) break;
        /* two-loop recursion: d = -H g */
        for (size_t i = 0; i < P; i++) d[i] = -g[i];
        for (size_t k = 0; k < used; k++) {
            size_t j = (head + LBFGS_M - 1 - k) % LBFGS_M;
            alpha[j] = rho[j] * dot(S + j * P, d, P);
            for (size_t i = 0; i < P; i++) d[i] -= alpha[j] * Y[j * P + i];
        }
        if (used) {
            size_t j = (head + LBFGS_M - 1) % LBFGS_M;
            double gamma = dot(S + j * P, Y + j * P, P) / dot(Y + j * P, Y + j * P, P);
            for (size_t i = 0; i < P; i++) d[i] *= gamma;
        }
        for (size_t k = used; k-- > 0;) {
            size_t j = (head + LBFGS_M - 1 - k) % LBFGS_M;
            double beta = rho[j] * dot(Y + j * P, d, P);
            for (size_t i = 0; i < P; i++) d[i] += (alpha[j] - beta) * S[j * P + i];
        }
        double dg = dot(d, g, P);
        if (!(dg < 0)) { /* not a descent direction (rounding): restart from -g */
            used = 0;
            for (size_t i = 0; i < P; i++) d[i] = -g[i];
            dg = dot(d, g, P);
        }
        /* the first step along -g: length 1 in the largest entry */
        double t = used ? 1.0 : 1.0 / fmax(1.0, max_abs(g, P));
        double fn = f;
        bool ok = false;
        for (int ls = 0; ls < 60; ls++) {
            for (size_t i = 0; i < P; i++) tn[i] = theta[i] + t * d[i];
            fn = objective(pb, tn, gn);
            if (fn <= f + 1e-4 * t * dg) {
                ok = true;
                break;
            }
            if (fn <= f + 1e-12 * fabs(f) && fabs(dot(gn, d, P)) <= 0.9 * fabs(dg)) {
                ok = true;
                break;
            }
            t *= 0.5;
        }
        if (!ok) {
            if (used) { /* retry along -g with no history */
                used = 0;
                continue;
            }
            break;
        }
        /* the new pair, kept when its curvature is positive (always, for a
         * strictly convex f, but rounding) */
        double *s = S + head * P, *yv = Y + head * P;
        for (size_t i = 0; i < P; i++) {
            s[i] = tn[i] - theta[i];
            yv[i] = gn[i] - g[i];
        }
        double sy = dot(s, yv, P);
        if (sy > 1e-300 && sy > 1e-14 * dot(yv, yv, P)) {
            rho[head] = 1 / sy;
            head = (head + 1) % LBFGS_M;
            if (used < LBFGS_M) used++;
        }
        memcpy(theta, tn, P * sizeof *theta);
        memcpy(g, gn, P * sizeof *g);
        f = fn;
        it++;
    }
    *n_iter = it;
    *converged = conv;
    *f_out = f;
    *gmax_out = max_abs(g, P);
    se_free(mem);
    return SE_OK;
}

/* Orders label pointers by their bytes (qsort). */
static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Copies the encode settings and the fingerprint from params into c. */
static se_status copy_settings(se_classifier *c, const char *fp, const se_encode_params *e, se_error *err) {
    if ((fp && !(c->fingerprint = se_strdup(fp))) || (e->prompt && !(c->prompt = se_strdup(e->prompt))) ||
        (e->prompt_name && !(c->prompt_name = se_strdup(e->prompt_name))))
        return se_err(err, SE_E_NOMEM, "classifier: out of memory");
    c->truncate_dim = e->truncate_dim;
    c->normalize = e->normalize;
    c->skip_normalize = e->skip_normalize;
    return SE_OK;
}

/* Checks the input, finds the sorted classes, maps labels to indices, and
 * runs L-BFGS from zero. */
se_status se_classifier_fit(const float *x, size_t n, size_t dim, const char *const *labels,
                            const se_classifier_params *params, se_classifier **out, se_error *err) {
    if (out) *out = NULL;
    if (!x || !labels || !out) return se_err(err, SE_E_INVALID, "se_classifier_fit: NULL argument");
    se_classifier_params dp = se_classifier_default_params();
    const se_classifier_params *p = params ? params : &dp;
    if (!(p->C > 0) || !isfinite(p->C)) return se_err(err, SE_E_INVALID, "classifier: C must be a positive number, got %g", p->C);
    if (!(p->tol >= 0) || !isfinite(p->tol)) return se_err(err, SE_E_INVALID, "classifier: tol must be >= 0, got %g", p->tol);
    if (p->max_iter < 0) return se_err(err, SE_E_INVALID, "classifier: max_iter must be >= 0, got %d", (int)p->max_iter);
    if (n == 0) return se_err(err, SE_E_INVALID, "classifier: no training examples");
    if (dim == 0) return se_err(err, SE_E_INVALID, "classifier: the vectors have dimension 0");
    if (n > SIZE_MAX / dim) return se_err(err, SE_E_RANGE, "classifier: %zu x %zu vectors overflow", n, dim);
    for (size_t i = 0; i < n; i++) {
        if (!labels[i]) return se_err(err, SE_E_INVALID, "classifier: example %zu has no label (NULL)", i);
        size_t len = strlen(labels[i]), bad;
        if (!len) return se_err(err, SE_E_INVALID, "classifier: example %zu has an empty label", i);
        if (!se_utf8_valid(labels[i], len, &bad))
            return se_err(err, SE_E_INVALID, "classifier: example %zu: its label is not valid UTF-8 (byte %zu)", i, bad);
        for (size_t j = 0; j < dim; j++)
            if (!isfinite(x[i * dim + j]))
                return se_err(err, SE_E_RANGE, "classifier: example %zu: entry %zu of its vector is not finite", i, j);
    }
    /* the classes: sorted distinct labels */
    const char **sorted = se_malloc_array(n, sizeof *sorted);
    int32_t *y = se_malloc_array(n, sizeof *y);
    se_classifier *c = NULL;
    double *theta = NULL, *z = NULL;
    se_status st = SE_OK;
    if (!sorted || !y) {
        st = se_err(err, SE_E_NOMEM, "classifier: out of memory");
        goto done;
    }
    memcpy(sorted, labels, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_str);
    size_t K = 0;
    for (size_t i = 0; i < n; i++)
        if (!i || strcmp(sorted[i], sorted[i - 1])) sorted[K++] = sorted[i];
    if (K < 2) {
        st = se_err(err, SE_E_INVALID, "classifier: every example has the label \"%.100s\"; fitting needs two classes at least",
                    sorted[0]);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        size_t lo = 0, hi = K; /* binary search in the sorted classes */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            int cmp = strcmp(sorted[mid], labels[i]);
            if (cmp == 0) lo = hi = mid;
            else if (cmp < 0) lo = mid + 1;
            else hi = mid;
        }
        y[i] = (int32_t)lo;
    }
    if (!(c = clf_alloc(K, dim))) {
        st = se_err(err, SE_E_NOMEM, "classifier: out of memory for %zu classes x %zu dimensions", K, dim);
        goto done;
    }
    for (size_t k = 0; k < K; k++)
        if (!(c->classes[k] = se_strdup(sorted[k]))) {
            st = se_err(err, SE_E_NOMEM, "classifier: out of memory");
            goto done;
        }
    if ((st = copy_settings(c, p->model_fingerprint, &p->encode, err))) goto done;
    size_t R = c->R, P = R * (dim + 1);
    theta = se_calloc(P, sizeof *theta);
    z = se_calloc(R, sizeof *z);
    if (!theta || !z) {
        st = se_err(err, SE_E_NOMEM, "classifier: out of memory");
        goto done;
    }
    problem pb = {x, y, n, dim, R, p->C, z};
    double gtol = p->tol * fmax(1.0, p->C * (double)n);
    if ((st = lbfgs(&pb, theta, gtol, p->max_iter, &c->n_iter, &c->converged, &c->objective, &c->grad_max, err)))
        goto done;
    memcpy(c->coef, theta, R * dim * sizeof *theta);
    memcpy(c->intercept, theta + R * dim, R * sizeof *theta);
    if (R > 1) { /* the flat direction: intercepts summing to zero (they do up to rounding) */
        double m = 0;
        for (size_t r = 0; r < R; r++) m += c->intercept[r];
        m /= (double)R;
        for (size_t r = 0; r < R; r++) c->intercept[r] -= m;
    }
    c->C = p->C;
    c->n_samples = n;
    *out = c;
    c = NULL;
done:
    se_free(sorted);
    se_free(y);
    se_free(theta);
    se_free(z);
    se_classifier_free(c);
    return st;
}

se_status se_classifier_get_info(const se_classifier *clf, se_classifier_info *out, se_error *err) {
    if (!clf || !out) return se_err(err, SE_E_INVALID, "se_classifier_get_info: NULL argument");
    memset(out, 0, sizeof *out);
    out->n_classes = clf->K;
    out->dim = clf->D;
    out->classes = (const char *const *)clf->classes;
    out->n_rows = clf->R;
    out->coef = clf->coef;
    out->intercept = clf->intercept;
    out->C = clf->C;
    out->model_fingerprint = clf->fingerprint;
    out->encode = se_encode_default_params();
    out->encode.prompt = clf->prompt;
    out->encode.prompt_name = clf->prompt_name;
    out->encode.truncate_dim = clf->truncate_dim;
    out->encode.normalize = clf->normalize;
    out->encode.skip_normalize = clf->skip_normalize;
    out->n_samples = clf->n_samples;
    out->n_iter = clf->n_iter;
    out->converged = clf->converged;
    out->objective = clf->objective;
    out->grad_max = clf->grad_max;
    return SE_OK;
}

/* The probabilities of one vector xi (D floats) into p (K doubles). */
static void proba_row(const se_classifier *c, const float *xi, double *p) {
    size_t D = c->D;
    if (c->R == 1) {
        double z = c->intercept[0];
        for (size_t j = 0; j < D; j++) z += c->coef[j] * (double)xi[j];
        p[1] = z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
        p[0] = z >= 0 ? exp(-z) / (1 + exp(-z)) : 1 / (1 + exp(z));
        return;
    }
    double mx = -INFINITY;
    for (size_t k = 0; k < c->K; k++) {
        const double *w = c->coef + k * D;
        double z = c->intercept[k];
        for (size_t j = 0; j < D; j++) z += w[j] * (double)xi[j];
        p[k] = z;
        if (z > mx) mx = z;
    }
    double s = 0;
    for (size_t k = 0; k < c->K; k++) s += (p[k] = exp(p[k] - mx));
    for (size_t k = 0; k < c->K; k++) p[k] /= s;
}

/* Rejects a row with a non-finite entry, naming it. */
static se_status check_rows(const float *x, size_t n, size_t D, se_error *err) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < D; j++)
            if (!isfinite(x[i * D + j]))
                return se_err(err, SE_E_RANGE, "classifier: vector %zu: entry %zu is not finite", i, j);
    return SE_OK;
}

se_status se_classifier_predict_proba(const se_classifier *clf, const float *x, size_t n, float *proba, size_t cap,
                                      se_error *err) {
    if (!clf || (n && (!x || !proba))) return se_err(err, SE_E_INVALID, "se_classifier_predict_proba: NULL argument");
    if (n > SIZE_MAX / clf->K || cap < n * clf->K)
        return se_err(err, SE_E_BUFFER, "classifier: proba needs %zu x %zu floats, the buffer holds %zu", n, clf->K, cap);
    se_status st = check_rows(x, n, clf->D, err);
    if (st) return st;
    double *p = se_malloc_array(clf->K, sizeof *p);
    if (!p) return se_err(err, SE_E_NOMEM, "classifier: out of memory");
    for (size_t i = 0; i < n; i++) {
        proba_row(clf, x + i * clf->D, p);
        for (size_t k = 0; k < clf->K; k++) proba[i * clf->K + k] = (float)p[k];
    }
    se_free(p);
    return SE_OK;
}

se_status se_classifier_predict(const se_classifier *clf, const float *x, size_t n, int32_t *labels, se_error *err) {
    if (!clf || (n && (!x || !labels))) return se_err(err, SE_E_INVALID, "se_classifier_predict: NULL argument");
    se_status st = check_rows(x, n, clf->D, err);
    if (st) return st;
    double *p = se_malloc_array(clf->K, sizeof *p);
    if (!p) return se_err(err, SE_E_NOMEM, "classifier: out of memory");
    for (size_t i = 0; i < n; i++) {
        proba_row(clf, x + i * clf->D, p);
        size_t best = 0;
        for (size_t k = 1; k < clf->K; k++)
            if (p[k] > p[best]) best = k;
        labels[i] = (int32_t)best;
    }
    se_free(p);
    return SE_OK;
}

/* A JSON string or null. */
static json_t *str_or_null(const char *s) {
    return s ? json_string(s) : json_null();
}

/* Builds the file's JSON document (NULL on OOM). */
static json_t *to_json(const se_classifier *c) {
    json_t *root = json_object(), *classes = json_array(), *coef = json_array(), *icpt = json_array();
    json_t *enc = json_object(), *fit = json_object();
    bool ok = root && classes && coef && icpt && enc && fit;
    for (size_t k = 0; ok && k < c->K; k++) ok = !json_array_append_new(classes, json_string(c->classes[k]));
    for (size_t r = 0; ok && r < c->R; r++) {
        json_t *row = json_array();
        ok = row && !json_array_append_new(coef, row);
        for (size_t j = 0; ok && j < c->D; j++) ok = !json_array_append_new(row, json_real(c->coef[r * c->D + j]));
        ok = ok && !json_array_append_new(icpt, json_real(c->intercept[r]));
    }
    ok = ok && !json_object_set_new(enc, "prompt", str_or_null(c->prompt)) &&
         !json_object_set_new(enc, "prompt_name", str_or_null(c->prompt_name)) &&
         !json_object_set_new(enc, "truncate_dim", json_integer(c->truncate_dim)) &&
         !json_object_set_new(enc, "normalize", json_boolean(c->normalize)) &&
         !json_object_set_new(enc, "skip_normalize", json_boolean(c->skip_normalize));
    ok = ok && !json_object_set_new(fit, "n_samples", json_integer((json_int_t)c->n_samples)) &&
         !json_object_set_new(fit, "n_iter", json_integer(c->n_iter)) &&
         !json_object_set_new(fit, "converged", json_boolean(c->converged)) &&
         !json_object_set_new(fit, "objective", json_real(c->objective)) &&
         !json_object_set_new(fit, "grad_max", json_real(c->grad_max));
    ok = ok && !json_object_set_new(root, "format", json_string(FORMAT_TAG)) &&
         !json_object_set_new(root, "version", json_integer(FORMAT_VERSION)) &&
         !json_object_set_new(root, "head", json_string("logistic_regression")) &&
         !json_object_set_new(root, "model_fingerprint", str_or_null(c->fingerprint)) &&
         !json_object_set(root, "encode", enc) && !json_object_set_new(root, "C", json_real(c->C)) &&
         !json_object_set_new(root, "dim", json_integer((json_int_t)c->D)) && !json_object_set(root, "classes", classes) &&
         !json_object_set(root, "coef", coef) && !json_object_set(root, "intercept", icpt) &&
         !json_object_set(root, "fit", fit);
    json_decref(classes), json_decref(coef), json_decref(icpt), json_decref(enc), json_decref(fit);
    if (!ok) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* Writes all of buf to fd (retrying short writes and EINTR). */
static bool write_all(int fd, const char *buf, size_t len) {
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        buf += w, len -= (size_t)w;
    }
    return true;
}

se_status se_classifier_save(const se_classifier *clf, const char *path, se_error *err) {
    if (!clf || !path) return se_err(err, SE_E_INVALID, "se_classifier_save: NULL argument");
    json_t *root = to_json(clf);
    char *text = root ? json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(root);
    if (!text) return se_err(err, SE_E_NOMEM, "%s: out of memory writing the classifier", path);
    size_t plen = strlen(path);
    char *tmp = se_malloc(plen + 16);
    if (!tmp) {
        free(text);
        return se_err(err, SE_E_NOMEM, "%s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    se_status st = SE_OK;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = se_err(err, SE_E_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
    } else {
        bool ok = fchmod(fd, 0644) == 0 && write_all(fd, text, strlen(text)) && write_all(fd, "\n", 1) && fsync(fd) == 0;
        int e = errno;
        if (close(fd) != 0 && ok) ok = false, e = errno;
        if (ok && rename(tmp, path) != 0) ok = false, e = errno;
        if (!ok) {
            st = se_err(err, SE_E_IO, "%s: write failed: %s", path, strerror(e));
            unlink(tmp);
        }
    }
    free(text); /* jansson's allocation */
    se_free(tmp);
    return st;
}

/* A finite JSON number (integer or real) as a double; false otherwise. */
static bool num(const json_t *v, double *out) {
    if (json_is_real(v)) *out = json_real_value(v);
    else if (json_is_integer(v)) *out = (double)json_integer_value(v);
    else return false;
    return isfinite(*out);
}

/* Reads a JSON string-or-null field into a new string (*out NULL for null
 * or absent). */
static se_status opt_str(const json_t *obj, const char *path, const char *key, char **out, se_error *err) {
    const char *s = NULL;
    se_status st = se_json_str(obj, path, key, NULL, &s, err);
    if (st) return st;
    if (s && !(*out = se_strdup(s))) return se_err(err, SE_E_NOMEM, "out of memory");
    return SE_OK;
}

/* Parses and validates the JSON document of a classifier file. */
static se_status from_json(const json_t *root, const char *path, se_classifier **out, se_error *err) {
    if (!json_is_object(root)) return se_err(err, SE_E_FORMAT, "%s: not a JSON object", path);
    const char *tag = NULL;
    int64_t ver = 0, dim = 0;
    se_status st;
    if ((st = se_json_str_strict(root, path, "format", NULL, &tag, err))) return st;
    if (!tag || strcmp(tag, FORMAT_TAG))
        return se_err(err, SE_E_FORMAT, "%s: \"format\" is %s%.60s%s, not \"" FORMAT_TAG "\" (not a sembed classifier head)",
                      path, tag ? "\"" : "", tag ? tag : "missing", tag ? "\"" : "");
    if ((st = se_json_int_strict(root, path, "version", 0, INT32_MAX, 0, &ver, err))) return st;
    if (ver != FORMAT_VERSION)
        return se_err(err, SE_E_FORMAT, "%s: \"version\" %lld is not one this sembed reads (%d)", path, (long long)ver,
                      FORMAT_VERSION);
    if ((st = se_json_int_strict(root, path, "dim", 1, 1 << 20, 0, &dim, err))) return st;
    if (!dim) return se_err(err, SE_E_FORMAT, "%s: \"dim\" is missing", path);
    const json_t *classes = json_object_get(root, "classes"), *coef = json_object_get(root, "coef");
    const json_t *icpt = json_object_get(root, "intercept");
    if (!json_is_array(classes) || json_array_size(classes) < 2)
        return se_err(err, SE_E_FORMAT, "%s: \"classes\" must be an array of two labels or more", path);
    size_t K = json_array_size(classes), R = K == 2 ? 1 : K, D = (size_t)dim;
    if (!json_is_array(coef) || json_array_size(coef) != R)
        return se_err(err, SE_E_FORMAT, "%s: \"coef\" must be an array of %zu rows (for %zu classes)", path, R, K);
    if (!json_is_array(icpt) || json_array_size(icpt) != R)
        return se_err(err, SE_E_FORMAT, "%s: \"intercept\" must be an array of %zu numbers (for %zu classes)", path, R, K);
    se_classifier *c = clf_alloc(K, D);
    if (!c) return se_err(err, SE_E_NOMEM, "%s: out of memory", path);
    for (size_t k = 0; k < K; k++) {
        const json_t *v = json_array_get(classes, k);
        size_t bad;
        if (!json_is_string(v) || !json_string_length(v) ||
            !se_utf8_valid(json_string_value(v), json_string_length(v), &bad) ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            st = se_err(err, SE_E_FORMAT, "%s: \"classes\"[%zu] must be a non-empty string", path, k);
            goto fail;
        }
        if (k && strcmp(c->classes[k - 1], json_string_value(v)) >= 0) {
            st = se_err(err, SE_E_FORMAT, "%s: \"classes\"[%zu] \"%.60s\" is repeated or out of order (they are sorted)", path, k,
                        json_string_value(v));
            goto fail;
        }
        if (!(c->classes[k] = se_strdup(json_string_value(v)))) {
            st = se_err(err, SE_E_NOMEM, "%s: out of memory", path);
            goto fail;
        }
    }
    for (size_t r = 0; r < R; r++) {
        const json_t *row = json_array_get(coef, r);
        if (!json_is_array(row) || json_array_size(row) != D) {
            st = se_err(err, SE_E_FORMAT, "%s: \"coef\"[%zu] must be an array of %zu numbers (dim)", path, r, D);
            goto fail;
        }
        for (size_t j = 0; j < D; j++)
            if (!num(json_array_get(row, j), &c->coef[r * D + j])) {
                st = se_err(err, SE_E_FORMAT, "%s: \"coef\"[%zu][%zu] is not a finite number", path, r, j);
                goto fail;
            }
        if (!num(json_array_get(icpt, r), &c->intercept[r])) {
            st = se_err(err, SE_E_FORMAT, "%s: \"intercept\"[%zu] is not a finite number", path, r);
            goto fail;
        }
    }
    if ((st = se_json_real_strict(root, path, "C", 1e-300, 1e300, 1.0, &c->C, err))) goto fail;
    if ((st = opt_str(root, path, "model_fingerprint", &c->fingerprint, err))) goto fail;
    const json_t *enc = json_object_get(root, "encode");
    if (enc) {
        if (!json_is_object(enc)) {
            st = se_err(err, SE_E_FORMAT, "%s: \"encode\" must be an object", path);
            goto fail;
        }
        int64_t td = 0;
        if ((st = opt_str(enc, path, "prompt", &c->prompt, err)) || (st = opt_str(enc, path, "prompt_name", &c->prompt_name, err)) ||
            (st = se_json_int_strict(enc, path, "truncate_dim", 0, INT32_MAX, 0, &td, err)) ||
            (st = se_json_bool_strict(enc, path, "normalize", false, &c->normalize, err)) ||
            (st = se_json_bool_strict(enc, path, "skip_normalize", false, &c->skip_normalize, err)))
            goto fail;
        c->truncate_dim = (int32_t)td;
    }
    const json_t *fit = json_object_get(root, "fit");
    if (json_is_object(fit)) {
        int64_t ns = 0, ni = 0;
        if ((st = se_json_int_strict(fit, path, "n_samples", 0, INT64_MAX, 0, &ns, err)) ||
            (st = se_json_int_strict(fit, path, "n_iter", 0, INT32_MAX, 0, &ni, err)) ||
            (st = se_json_bool_strict(fit, path, "converged", false, &c->converged, err)) ||
            (st = se_json_real_strict(fit, path, "objective", -1e308, 1e308, 0, &c->objective, err)) ||
            (st = se_json_real_strict(fit, path, "grad_max", 0, 1e308, 0, &c->grad_max, err)))
            goto fail;
        c->n_samples = (size_t)ns, c->n_iter = (int32_t)ni;
    }
    *out = c;
    return SE_OK;
fail:
    se_classifier_free(c);
    return st;
}

se_status se_classifier_load(const char *path, se_classifier **out, se_error *err) {
    if (out) *out = NULL;
    if (!path || !out) return se_err(err, SE_E_INVALID, "se_classifier_load: NULL argument");
    char *buf = NULL;
    size_t len = 0;
    se_status st = se_file_read(path, HEAD_FILE_MAX, &buf, &len, err);
    if (st) return st;
    json_t *root = NULL;
    st = se_json_load_buffer(buf, len, path, true, &root, err);
    se_free(buf);
    if (st) return st;
    st = from_json(root, path, out, err);
    json_decref(root);
    return st;
}

/* Splits a fingerprint "k=v k=v ..." into at most 16 fields (pointers into
 * buf, a copy). Returns the count. */
static size_t fp_split(char *buf, char **key, char **val) {
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, " ", &save); tok && n < 16; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        key[n] = tok;
        val[n] = eq ? (*eq = 0, eq + 1) : (char *)"";
        n++;
    }
    return n;
}

se_status se_classifier_check_model(const se_classifier *clf, const char *fingerprint, se_error *err) {
    if (!clf || !fingerprint) return se_err(err, SE_E_INVALID, "se_classifier_check_model: NULL argument");
    if (!clf->fingerprint)
        return se_err(err, SE_E_INVALID,
                      "the classifier records no model fingerprint, so no model can be checked against it (refit it with "
                      "the model)");
    char a[SE_FINGERPRINT_MAX * 2], b[SE_FINGERPRINT_MAX * 2];
    snprintf(a, sizeof a, "%s", clf->fingerprint);
    snprintf(b, sizeof b, "%s", fingerprint);
    char *ka[16], *va[16], *kb[16], *vb[16];
    size_t na = fp_split(a, ka, va), nb = fp_split(b, kb, vb);
    char diff[200] = "";
    size_t off = 0;
    for (int pass = 0; pass < 2; pass++) { /* the classifier's fields, then the model's extra ones */
        size_t n1 = pass ? nb : na;
        char **k1 = pass ? kb : ka, **v1 = pass ? vb : va, **k2 = pass ? ka : kb, **v2 = pass ? va : vb;
        size_t n2 = pass ? na : nb;
        for (size_t i = 0; i < n1; i++) {
            if (!strcmp(k1[i], "dtype")) continue;
            const char *other = NULL;
            for (size_t j = 0; j < n2; j++)
                if (!strcmp(k1[i], k2[j])) other = v2[j];
            if (other && (pass || !strcmp(other, v1[i]))) continue;
            const char *vc = pass ? other : v1[i], *vm = pass ? v1[i] : other;
            if (off < sizeof diff)
                off += (size_t)snprintf(diff + off, sizeof diff - off, "%s%s %s (classifier) vs %s (model)", off ? "; " : "",
                                        k1[i], vc ? vc : "(none)", vm ? vm : "(none)");
        }
    }
    if (off) return se_err(err, SE_E_INVALID, "the classifier was fitted on another model's vectors: %s", diff);
    return SE_OK;
}
