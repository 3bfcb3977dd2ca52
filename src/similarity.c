/*
 * similarity.c - similarity matrices between embedding sets, with the
 * definitions of sentence-transformers' SimilarityFunction:
 *   cosine     normalise both sides (v / max(|v|, 1e-12)), then dot, as
 *              util.cos_sim does
 *   dot        a.b
 *   euclidean  -|a - b|_2
 *   manhattan  -|a - b|_1
 */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "kernels.h"

const char *se_similarity_name(se_similarity fn) {
    switch (fn) {
    case SE_SIM_COSINE: return "cosine";
    case SE_SIM_DOT: return "dot";
    case SE_SIM_EUCLIDEAN: return "euclidean";
    case SE_SIM_MANHATTAN: return "manhattan";
    }
    return "?";
}

/* 1 / max(|v|, 1e-12), the factor F.normalize applies. */
static float inv_norm(const float *v, size_t dim) {
    float ss = 0.0f;
    for (size_t i = 0; i < dim; i++) ss += v[i] * v[i];
    float n = sqrtf(ss);
    return 1.0f / (n > 1e-12f ? n : 1e-12f);
}

se_status se_similarity_matrix(se_similarity fn, const float *a, size_t na, const float *b, size_t nb, size_t dim,
                               float *out, se_error *err) {
    if ((na && !a) || (nb && !b) || (na && nb && !out) || dim == 0)
        return se_err(err, SE_E_INVALID, "se_similarity_matrix: invalid arguments");
    if (fn != SE_SIM_COSINE && fn != SE_SIM_DOT && fn != SE_SIM_EUCLIDEAN && fn != SE_SIM_MANHATTAN)
        return se_err(err, SE_E_INVALID, "se_similarity_matrix: unknown similarity function %d", (int)fn);
    se_dot_fn dot = se_kernels_get()->dot;
    float *ib = NULL;
    if (fn == SE_SIM_COSINE) {
        ib = se_malloc_array(nb ? nb : 1, sizeof *ib);
        if (!ib) return se_err(err, SE_E_NOMEM, "out of memory");
        for (size_t j = 0; j < nb; j++) ib[j] = inv_norm(b + j * dim, dim);
    }
    for (size_t i = 0; i < na; i++) {
        const float *x = a + i * dim;
        float ia = fn == SE_SIM_COSINE ? inv_norm(x, dim) : 1.0f;
        for (size_t j = 0; j < nb; j++) {
            const float *y = b + j * dim;
            float r;
            if (fn == SE_SIM_COSINE) {
                r = dot(x, y, dim) * ia * ib[j];
            } else if (fn == SE_SIM_DOT) {
                r = dot(x, y, dim);
            } else if (fn == SE_SIM_EUCLIDEAN) {
                float ss = 0.0f;
                for (size_t k = 0; k < dim; k++) ss += (x[k] - y[k]) * (x[k] - y[k]);
                r = -sqrtf(ss);
            } else {
                float s = 0.0f;
                for (size_t k = 0; k < dim; k++) s += fabsf(x[k] - y[k]);
                r = -s;
            }
            out[i * nb + j] = r;
        }
    }
    se_free(ib);
    return SE_OK;
}
