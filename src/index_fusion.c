/*
 * index_fusion.c - fusing the vector and the keyword rankings of a hybrid
 * search (index_fts.h): reciprocal rank fusion and min-max normalised
 * score fusion, and the default: score fusion with each side normalised
 * against a fixed depth and a per-query vector weight that grows with the
 * vector side's score spread (0 for a flat side). Pure functions over
 * ranked lists; tested on hand-made rankings in tests/test_index_fts.c.
 */
#include <math.h>
#include <stdlib.h>

#include "index_fts.h"

/* Min and max of a list's scores. */
static void min_max(const se_fuse_item *v, size_t n, float *lo, float *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (v[i].score < *lo) *lo = v[i].score;
        if (v[i].score > *hi) *hi = v[i].score;
    }
}

/* x min-max normalised into [0, 1]; 1 when the list's scores are all equal. */
static float mm(float x, float lo, float hi) { return hi > lo ? (x - lo) / (hi - lo) : 1.0f; }

/* The default's normalisation bounds: the best score and the one at rank
 * depth (the last when the list is shorter), so that a document's
 * normalised score does not depend on how many candidates were asked for. */
static void depth_bounds(const se_fuse_item *v, size_t n, size_t depth, float *lo, float *hi) {
    *lo = *hi = 0;
    if (!n) return;
    *hi = v[0].score;
    *lo = v[(depth < n ? depth : n) - 1].score;
}

/* x normalised against depth_bounds: 1 at the best score, 0 at the depth's
 * and below (floored); 1 when the bounds are equal. */
static float mm_floor(float x, float lo, float hi) {
    if (!(hi > lo)) return 1.0f;
    float t = (x - lo) / (hi - lo);
    return t > 0 ? t : 0.0f;
}

/* A rank for ordering ties: absent (-1) after every rank. */
static uint32_t tie_rank(int32_t r) { return r < 0 ? UINT32_MAX : (uint32_t)r; }

/* Orders fused documents best first. Ties (alpha 0 puts the keyword
 * side's last document and every vector-only one at 0) go by the rank on
 * the heavier side (vfirst: the vector side's), then the other, then row
 * id: so alpha 0 is the keyword ranking followed by the vector-only
 * documents in vector order, and alpha 1 the reverse. */
static int by_score(const void *a, const void *b) {
    const se_fused *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    uint32_t x1 = tie_rank(x->vfirst ? x->vi : x->ki), y1 = tie_rank(y->vfirst ? y->vi : y->ki);
    if (x1 != y1) return x1 < y1 ? -1 : 1;
    uint32_t x2 = tie_rank(x->vfirst ? x->ki : x->vi), y2 = tie_rank(y->vfirst ? y->ki : y->vi);
    if (x2 != y2) return x2 < y2 ? -1 : 1;
    return (x->doc > y->doc) - (x->doc < y->doc);
}

/* Orders by row id (to merge the two lists). */
static int by_doc(const void *a, const void *b) {
    const se_fused *x = a, *y = b;
    return (x->doc > y->doc) - (x->doc < y->doc);
}

void se_fuse(const se_fuse_item *v, size_t nv, const se_fuse_item *kw, size_t nk, se_fusion method, float alpha,
             uint32_t rrf_k, se_fused *out, size_t *n_out) {
    /* the union: every entry of both lists, sorted by row id, then each
     * document's pair of entries merged */
    size_t n = 0;
    for (size_t i = 0; i < nv; i++) out[n++] = (se_fused){v[i].doc, 0, (int32_t)i, -1, 0};
    for (size_t i = 0; i < nk; i++) out[n++] = (se_fused){kw[i].doc, 0, -1, (int32_t)i, 0};
    qsort(out, n, sizeof *out, by_doc);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && out[m - 1].doc == out[i].doc) {
            if (out[i].vi >= 0) out[m - 1].vi = out[i].vi;
            if (out[i].ki >= 0) out[m - 1].ki = out[i].ki;
        } else {
            out[m++] = out[i];
        }
    }
    float vlo, vhi, klo, khi;
    int deep = method == SE_FUSION_DEFAULT;
    if (deep) {
        depth_bounds(v, nv, SE_FUSE_DEPTH_VECTOR, &vlo, &vhi);
        depth_bounds(kw, nk, SE_FUSE_DEPTH_KEYWORD, &klo, &khi);
        if (alpha < 0) alpha = se_fuse_default_alpha(v, nv);
    } else {
        min_max(v, nv, &vlo, &vhi);
        min_max(kw, nk, &klo, &khi);
    }
    double k = rrf_k ? rrf_k : 60;
    for (size_t i = 0; i < m; i++) {
        se_fused *f = &out[i];
        f->vfirst = method == SE_FUSION_RRF || alpha >= 0.5f;
        if (method == SE_FUSION_RRF) {
            double s = 0;
            if (f->vi >= 0) s += 1.0 / (k + f->vi + 1);
            if (f->ki >= 0) s += 1.0 / (k + f->ki + 1);
            f->score = (float)s;
        } else {
            float a = alpha < 0 ? 0 : alpha > 1 ? 1 : alpha;
            float (*norm)(float, float, float) = deep ? mm_floor : mm;
            float sv = f->vi >= 0 ? norm(v[f->vi].score, vlo, vhi) : 0.0f;
            float sk = f->ki >= 0 ? norm(kw[f->ki].score, klo, khi) : 0.0f;
            f->score = a * sv + (1 - a) * sk;
        }
    }
    qsort(out, m, sizeof *out, by_score);
    *n_out = m;
}

float se_fuse_spread(const se_fuse_item *v, size_t nv, size_t n) {
    if (nv < 2 || n < 2) return 0;
    size_t last = (n < nv ? n : nv) - 1;
    return v[0].score - v[last].score;
}

/* The default's per-query vector weight (index_fts.h): a ramp over the
 * vector side's spread, 0 for a flat side. */
float se_fuse_default_alpha(const se_fuse_item *v, size_t nv) {
    float sp = se_fuse_spread(v, nv, SE_FUSE_FLAT_N);
    if (!(sp >= SE_FUSE_FLAT_SPREAD)) return 0.0f;
    float t = (sp - SE_FUSE_RAMP_FROM) / (SE_FUSE_RAMP_TO - SE_FUSE_RAMP_FROM);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return SE_FUSE_ALPHA_LOW + t * (SE_FUSE_ALPHA_HIGH - SE_FUSE_ALPHA_LOW);
}
