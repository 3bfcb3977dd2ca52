/*
 * train/train_loss.c - sentence-transformers' losses over sentence
 * embeddings: the loss value and its gradient w.r.t. every embedding,
 * computed in double. Definitions (sentence_transformers/losses/NAME.py):
 *
 *   MNRL       scores = scale cos(anchor_i, candidate_j), candidates the
 *              positives then every negative column; loss = mean_i
 *              CE(scores_i, i). cos is util.cos_sim: both sides
 *              F.normalize'd (norm clamped at 1e-12).
 *   MNRL_SYM   (CE of the rows + CE of the anchors-vs-positives columns,
 *              label the column) / 2 (MultipleNegativesSymmetricRankingLoss)
 *   CoSENT     s_i = scale cos(u_i, v_i); loss = log(1 + sum over label_i <
 *              label_j of exp(s_i - s_j))
 *   Cosine     mean_i (cos(u_i, v_i) - label_i)^2
 *   Triplet    mean_i relu(||a - p + 1e-6|| - ||a - n + 1e-6|| + margin)
 *              (F.pairwise_distance's eps)
 *   MSE        mean over every component of every column of
 *              (e - teacher[:, :dim])^2
 *   Matryoshka sum_k weights[k] * loss(embeddings[:, :dims[k]])
 */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "train/train.h"

/* Row r of an embedding matrix of row stride ld, first d components. */
#define ROW(e, r) ((e) + (size_t)(r) * ld)

/* u = x / max(||x||, 1e-12) for d values; returns the divisor. */
static double normalize_row(const float *x, size_t d, double *u) {
    double ss = 0.0;
    for (size_t k = 0; k < d; k++) ss += (double)x[k] * x[k];
    double n = sqrt(ss);
    n = n > 1e-12 ? n : 1e-12;
    for (size_t k = 0; k < d; k++) u[k] = x[k] / n;
    return n;
}

/* Adds to dx (d) the gradient through u = x / n from du (d). */
static void normalize_bwd(const double *u, double n, const double *du, size_t d, float *dx) {
    double dot = 0.0;
    for (size_t k = 0; k < d; k++) dot += u[k] * du[k];
    for (size_t k = 0; k < d; k++) dx[k] += (float)(n > 1e-12 ? (du[k] - u[k] * dot) / n : du[k] / n);
}

/* One loss without Matryoshka on rows of ld floats, the first d used:
 * adds its gradient times w into g (same layout) when g is not NULL.
 * u, du, nrm: scratch of rows * d, rows * d, rows doubles. */
static se_status loss_one(const se_loss_spec *sp, const float *e, size_t ld, size_t B, size_t nc, size_t d,
                          const float *labels, const float *teacher, size_t tld, double w, double *out, float *g,
                          double *u, double *du, double *nrm, se_error *err) {
    size_t R = B * nc;
    double scale = sp->scale > 0 ? sp->scale : 20.0, L = 0.0;
    bool uses_cos = sp->kind == SE_LOSS_MNRL || sp->kind == SE_LOSS_MNRL_SYM || sp->kind == SE_LOSS_COSENT ||
                    sp->kind == SE_LOSS_COSINE;
    if (uses_cos) {
        for (size_t r = 0; r < R; r++) nrm[r] = normalize_row(ROW(e, r), d, u + r * d);
        memset(du, 0, R * d * sizeof *du);
    }
    switch (sp->kind) {
    case SE_LOSS_MNRL:
    case SE_LOSS_MNRL_SYM: {
        size_t NC = R - B; /* candidates: rows B .. R - 1 */
        double *sc = se_malloc((B * NC + 1) * sizeof *sc);
        if (!sc) return se_err(err, SE_E_NOMEM, "loss: out of memory for %zu scores", B * NC);
        for (size_t i = 0; i < B; i++)
            for (size_t j = 0; j < NC; j++) {
                double dot = 0.0;
                for (size_t k = 0; k < d; k++) dot += u[i * d + k] * u[(B + j) * d + k];
                sc[i * NC + j] = scale * dot;
            }
        bool sym = sp->kind == SE_LOSS_MNRL_SYM;
        double f = sym ? 0.5 : 1.0;
        /* d loss / d score, into du through the score's two rows */
        for (size_t i = 0; i < B; i++) { /* rows: anchor i against every candidate, label i */
            double mx = -INFINITY, z = 0.0;
            for (size_t j = 0; j < NC; j++) mx = sc[i * NC + j] > mx ? sc[i * NC + j] : mx;
            for (size_t j = 0; j < NC; j++) z += exp(sc[i * NC + j] - mx);
            L += f * (mx + log(z) - sc[i * NC + i]) / (double)B;
            for (size_t j = 0; j < NC; j++) {
                double ds = f * (exp(sc[i * NC + j] - mx) / z - (j == i)) / (double)B * scale;
                for (size_t k = 0; k < d; k++) {
                    du[i * d + k] += ds * u[(B + j) * d + k];
                    du[(B + j) * d + k] += ds * u[i * d + k];
                }
            }
        }
        if (sym)
            for (size_t j = 0; j < B; j++) { /* columns: positive j against every anchor, label j */
                double mx = -INFINITY, z = 0.0;
                for (size_t i = 0; i < B; i++) mx = sc[i * NC + j] > mx ? sc[i * NC + j] : mx;
                for (size_t i = 0; i < B; i++) z += exp(sc[i * NC + j] - mx);
                L += 0.5 * (mx + log(z) - sc[j * NC + j]) / (double)B;
                for (size_t i = 0; i < B; i++) {
                    double ds = 0.5 * (exp(sc[i * NC + j] - mx) / z - (i == j)) / (double)B * scale;
                    for (size_t k = 0; k < d; k++) {
                        du[i * d + k] += ds * u[(B + j) * d + k];
                        du[(B + j) * d + k] += ds * u[i * d + k];
                    }
                }
            }
        se_free(sc);
        break;
    }
    case SE_LOSS_COSENT:
    case SE_LOSS_COSINE: {
        double *s = se_malloc((B + 1) * sizeof *s), *ds = se_calloc(B + 1, sizeof *ds);
        if (!s || !ds) {
            se_free(s);
            se_free(ds);
            return se_err(err, SE_E_NOMEM, "loss: out of memory");
        }
        for (size_t i = 0; i < B; i++) {
            double dot = 0.0;
            for (size_t k = 0; k < d; k++) dot += u[i * d + k] * u[(B + i) * d + k];
            s[i] = dot;
        }
        if (sp->kind == SE_LOSS_COSINE) {
            for (size_t i = 0; i < B; i++) {
                double r = s[i] - labels[i];
                L += r * r / (double)B;
                ds[i] = 2.0 * r / (double)B;
            }
        } else { /* logsumexp over {0} and s_i - s_j for label_i < label_j */
            double mx = 0.0, z = 0.0;
            for (size_t i = 0; i < B; i++)
                for (size_t j = 0; j < B; j++)
                    if (labels[i] < labels[j] && scale * (s[i] - s[j]) > mx) mx = scale * (s[i] - s[j]);
            z = exp(-mx);
            for (size_t i = 0; i < B; i++)
                for (size_t j = 0; j < B; j++)
                    if (labels[i] < labels[j]) z += exp(scale * (s[i] - s[j]) - mx);
            L = mx + log(z);
            for (size_t i = 0; i < B; i++)
                for (size_t j = 0; j < B; j++)
                    if (labels[i] < labels[j]) {
                        double p = exp(scale * (s[i] - s[j]) - mx) / z * scale;
                        ds[i] += p, ds[j] -= p;
                    }
        }
        for (size_t i = 0; i < B; i++)
            for (size_t k = 0; k < d; k++) {
                du[i * d + k] += ds[i] * u[(B + i) * d + k];
                du[(B + i) * d + k] += ds[i] * u[i * d + k];
            }
        se_free(s);
        se_free(ds);
        break;
    }
    case SE_LOSS_TRIPLET: {
        double margin = sp->margin > 0 ? sp->margin : 5.0;
        for (size_t i = 0; i < B; i++) {
            const float *a = ROW(e, i), *p = ROW(e, B + i), *n = ROW(e, 2 * B + i);
            double dap = 0.0, dan = 0.0;
            for (size_t k = 0; k < d; k++) {
                double x = (double)a[k] - p[k] + 1e-6, y = (double)a[k] - n[k] + 1e-6;
                dap += x * x, dan += y * y;
            }
            dap = sqrt(dap), dan = sqrt(dan);
            double v = dap - dan + margin;
            if (v <= 0.0) continue;
            L += v / (double)B;
            if (!g) continue;
            float *ga = ROW(g, i), *gp = ROW(g, B + i), *gn = ROW(g, 2 * B + i);
            for (size_t k = 0; k < d; k++) {
                double x = ((double)a[k] - p[k] + 1e-6) / dap, y = ((double)a[k] - n[k] + 1e-6) / dan;
                double c1 = w * x / (double)B, c2 = w * y / (double)B;
                ga[k] += (float)(c1 - c2), gp[k] -= (float)c1, gn[k] += (float)c2;
            }
        }
        break;
    }
    case SE_LOSS_MSE: {
        double N = (double)(R * d);
        for (size_t r = 0; r < R; r++) {
            const float *x = ROW(e, r), *t = teacher + (r % B) * tld;
            for (size_t k = 0; k < d; k++) {
                double df = (double)x[k] - t[k];
                L += df * df / N;
                if (g) ROW(g, r)[k] += (float)(w * 2.0 * df / N);
            }
        }
        break;
    }
    }
    if (uses_cos && g)
        for (size_t r = 0; r < R; r++) {
            for (size_t k = 0; k < d; k++) du[r * d + k] *= w;
            normalize_bwd(u + r * d, nrm[r], du + r * d, d, ROW(g, r));
        }
    *out += w * L;
    return SE_OK;
}

size_t se_loss_scratch_size(size_t B, size_t n_cols, size_t dim) {
    size_t R = B * n_cols;
    return 2 * (R * dim + 1) + R + 1; /* u, du (R x dim), the norms (R) */
}

se_status se_loss_eval(const se_loss_spec *spec, const float *emb, size_t B, size_t n_cols, size_t dim,
                       const float *labels, const float *teacher, size_t teacher_dim, double *loss, float *d_emb,
                       se_error *err) {
    if (!spec || !emb || !loss) return se_err(err, SE_E_INVALID, "se_loss_eval: NULL argument");
    const char *name = spec->kind == SE_LOSS_MNRL       ? "MultipleNegativesRankingLoss"
                       : spec->kind == SE_LOSS_MNRL_SYM ? "MultipleNegativesSymmetricRankingLoss"
                       : spec->kind == SE_LOSS_COSENT   ? "CoSENTLoss"
                       : spec->kind == SE_LOSS_COSINE   ? "CosineSimilarityLoss"
                       : spec->kind == SE_LOSS_TRIPLET  ? "TripletLoss"
                       : spec->kind == SE_LOSS_MSE      ? "MSELoss"
                                                        : NULL;
    if (!name) return se_err(err, SE_E_INVALID, "se_loss_eval: unknown loss kind %d", (int)spec->kind);
    if (!B || !dim) return se_err(err, SE_E_INVALID, "%s: an empty batch (%zu examples of %zu dimensions)", name, B, dim);
    bool pair = spec->kind == SE_LOSS_COSENT || spec->kind == SE_LOSS_COSINE;
    if ((pair && n_cols != 2) || (spec->kind == SE_LOSS_TRIPLET && n_cols != 3) ||
        ((spec->kind == SE_LOSS_MNRL || spec->kind == SE_LOSS_MNRL_SYM) && n_cols < 2) || n_cols < 1)
        return se_err(err, SE_E_INVALID, "%s: %zu columns (it takes %s)", name, n_cols,
                      pair ? "2: sentence1, sentence2"
                      : spec->kind == SE_LOSS_TRIPLET ? "3: anchor, positive, negative"
                      : spec->kind == SE_LOSS_MSE     ? "1 or more"
                                                      : "2 or more: anchor, positive, negatives");
    if (pair && !labels) return se_err(err, SE_E_INVALID, "%s: no labels (a score per pair)", name);
    if (spec->kind == SE_LOSS_MSE && (!teacher || teacher_dim < dim))
        return se_err(err, SE_E_INVALID, "%s: teacher vectors of %zu dimensions for embeddings of %zu", name,
                      teacher ? teacher_dim : 0, dim);
    for (size_t k = 0; k < spec->n_dims; k++)
        if (!spec->dims || !spec->dims[k] || spec->dims[k] > dim)
            return se_err(err, SE_E_INVALID, "MatryoshkaLoss: dims[%zu] = %zu outside 1..%zu", k,
                          spec->dims ? spec->dims[k] : 0, dim);
    size_t R = B * n_cols;
    double *own = spec->scratch ? NULL : se_malloc(se_loss_scratch_size(B, n_cols, dim) * sizeof *own);
    double *u = spec->scratch ? spec->scratch : own; /* then du (R x dim) and the norms (R) */
    double *du = u ? u + R * dim + 1 : NULL, *nrm = du ? du + R * dim + 1 : NULL;
    se_status s = SE_OK;
    if (!u) s = se_err(err, SE_E_NOMEM, "%s: out of memory", name);
    *loss = 0.0;
    if (s == SE_OK && d_emb) memset(d_emb, 0, R * dim * sizeof *d_emb);
    if (s == SE_OK && !spec->n_dims)
        s = loss_one(spec, emb, dim, B, n_cols, dim, labels, teacher, teacher_dim, 1.0, loss, d_emb, u, du, nrm, err);
    for (size_t k = 0; s == SE_OK && k < spec->n_dims; k++)
        s = loss_one(spec, emb, dim, B, n_cols, spec->dims[k], labels, teacher, teacher_dim,
                     spec->weights ? spec->weights[k] : 1.0, loss, d_emb, u, du, nrm, err);
    se_free(own);
    return s;
}
