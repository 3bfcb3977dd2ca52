/*
 * train/train_kernels.c - the training kernels: the Linear's three GEMMs
 * (forward, input gradient, weight gradient), LayerNorm, the activations'
 * derivatives, one attention head forward and backward, and the
 * element-wise loops of a pass on the thread pool.
 *
 * The fast GEMMs are train_gemm.c's strided GEMM (se_tk_gemm: packed
 * AVX2 panels, no transposed copies). Each has a scalar reference twin
 * (*_ref), summing in the order of the math. The attention head has a
 * scalar reference (se_tk_attn_fwd / _bwd) and a fast twin (*_fast) that
 * takes train_attn_avx2.c's kernels where it can and the path on the GEMM
 * (*_gemm) where not; LayerNorm's row kernels are the scalar code itself, run on
 * the pool by rows (GELU's fast versions are in train_act_avx2.c).
 */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "model_blocks.h"
#include "train/train_kernels.h"

void se_tk_linear(se_threadpool *tp, const float *x, size_t M, size_t K, const float *w, size_t N, const float *b,
                  float *y, size_t ldy, float *scratch) {
    se_tk_gemm(tp, M, N, K, x, K, 1, w, 1, K, b, false, y, ldy, scratch);
}

void se_tk_linear_ref(const float *x, size_t M, size_t K, const float *w, size_t N, const float *b, float *y,
                      size_t ldy) {
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < N; n++) {
            float acc = 0.0f;
            for (size_t k = 0; k < K; k++) acc += x[m * K + k] * w[n * K + k];
            y[m * ldy + n] = acc + (b ? b[n] : 0.0f);
        }
}

void se_tk_dx(se_threadpool *tp, const float *dy, size_t ldy, size_t M, size_t N, const float *w, size_t K, float *dx,
              float *scratch) {
    se_tk_gemm(tp, M, K, N, dy, ldy, 1, w, K, 1, NULL, true, dx, K, scratch);
}

void se_tk_dx_ref(const float *dy, size_t ldy, size_t M, size_t N, const float *w, size_t K, float *dx) {
    for (size_t m = 0; m < M; m++)
        for (size_t k = 0; k < K; k++) {
            float acc = 0.0f;
            for (size_t n = 0; n < N; n++) acc += dy[m * ldy + n] * w[n * K + k];
            dx[m * K + k] += acc;
        }
}

void se_tk_dw(se_threadpool *tp, const float *dy, size_t ldy, size_t M, size_t N, const float *x, size_t ldx, size_t K,
              float *dw, float *db, float *scratch) {
    se_tk_gemm_rowsum(tp, N, K, M, dy, 1, ldy, x, ldx, 1, NULL, true, dw, K, db, scratch);
}

void se_tk_dw_ref(const float *dy, size_t ldy, size_t M, size_t N, const float *x, size_t ldx, size_t K, float *dw,
                  float *db) {
    if (db)
        for (size_t m = 0; m < M; m++)
            for (size_t n = 0; n < N; n++) db[n] += dy[m * ldy + n];
    for (size_t n = 0; n < N; n++)
        for (size_t k = 0; k < K; k++) {
            float acc = 0.0f;
            for (size_t m = 0; m < M; m++) acc += dy[m * ldy + n] * x[m * ldx + k];
            dw[n * K + k] += acc;
        }
}

void se_tk_layernorm_fwd(float *x, size_t n, const float *g, const float *b, float eps, float *xhat, float *rstd) {
    float mean = 0.0f;
    for (size_t i = 0; i < n; i++) mean += x[i];
    mean /= (float)n;
    float var = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float d = x[i] - mean;
        var += d * d;
    }
    var /= (float)n;
    float r = 1.0f / sqrtf(var + eps);
    for (size_t i = 0; i < n; i++) {
        xhat[i] = (x[i] - mean) * r;
        x[i] = xhat[i] * g[i] + b[i];
    }
    *rstd = r;
}

void se_tk_layernorm_bwd(const float *dy, const float *xhat, float rstd, const float *g, size_t n, float *dx, float *dg,
                         float *db) {
    /* dxhat = dy g; dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) */
    double s1 = 0.0, s2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        float d = dy[i] * g[i];
        s1 += d;
        s2 += (double)d * xhat[i];
        dg[i] += dy[i] * xhat[i];
        db[i] += dy[i];
    }
    float m1 = (float)(s1 / (double)n), m2 = (float)(s2 / (double)n);
    for (size_t i = 0; i < n; i++) dx[i] = rstd * (dy[i] * g[i] - m1 - xhat[i] * m2);
}

void se_tk_act_bwd(se_act a, const float *pre, const float *out, const float *dy, float *dx, size_t n) {
    const double c = 0.79788456080286536; /* sqrt(2/pi) */
    for (size_t i = 0; i < n; i++) {
        double x = pre[i], d = 1.0;
        switch (a) {
        case SE_ACT_GELU: /* Phi(x) + x phi(x) */
            d = 0.5 * (1.0 + erf(x * 0.70710678118654752)) + x * 0.3989422804014327 * exp(-0.5 * x * x);
            break;
        case SE_ACT_GELU_TANH: {
            double u = c * (x + 0.044715 * x * x * x), t = tanh(u);
            d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x);
            break;
        }
        case SE_ACT_RELU: d = x > 0.0 ? 1.0 : 0.0; break;
        case SE_ACT_TANH: d = 1.0 - (double)out[i] * out[i]; break;
        case SE_ACT_SIGMOID: d = (double)out[i] * (1.0 - out[i]); break;
        case SE_ACT_IDENTITY: break;
        }
        dx[i] = (float)(dy[i] * d);
    }
}

void se_tk_attn_fwd(const float *q, const float *k, const float *v, size_t ld, size_t T, size_t HD, float scale,
                    const float *rel, size_t center, const se_tk_drop *dr, float *p, float *out, size_t ldo) {
    for (size_t i = 0; i < T; i++) {
        float *pi = p + i * T, mx = -INFINITY;
        for (size_t t = 0; t < T; t++) {
            float acc = 0.0f;
            for (size_t d = 0; d < HD; d++) acc += q[i * ld + d] * k[t * ld + d];
            pi[t] = acc * scale;
            if (rel) pi[t] += rel[center + t - i];
            mx = pi[t] > mx ? pi[t] : mx;
        }
        float sum = 0.0f;
        for (size_t t = 0; t < T; t++) sum += pi[t] = expf(pi[t] - mx);
        for (size_t t = 0; t < T; t++) pi[t] /= sum;
        float *o = out + i * ldo;
        for (size_t d = 0; d < HD; d++) o[d] = 0.0f;
        for (size_t t = 0; t < T; t++) {
            float w = dr ? pi[t] * se_tk_drop_at(dr, i * T + t) : pi[t];
            for (size_t d = 0; d < HD; d++) o[d] += w * v[t * ld + d];
        }
    }
}

void se_tk_attn_bwd(const float *q, const float *k, const float *v, size_t ld, size_t T, size_t HD, float scale,
                    const float *p, const float *dout, size_t ldo, float *dq, float *dk, float *dv, float *drel,
                    size_t center, const se_tk_drop *dr, float *dp) {
    for (size_t t = 0; t < T; t++) /* written, not added: the sums below start from zero */
        for (size_t d = 0; d < HD; d++) dq[t * ld + d] = dk[t * ld + d] = dv[t * ld + d] = 0.0f;
    for (size_t i = 0; i < T; i++) {
        const float *pi = p + i * T, *go = dout + i * ldo;
        float dot = 0.0f;
        for (size_t t = 0; t < T; t++) {
            float f = dr ? se_tk_drop_at(dr, i * T + t) : 1.0f, w = pi[t] * f, acc = 0.0f;
            for (size_t d = 0; d < HD; d++) {
                acc += go[d] * v[t * ld + d];
                dv[t * ld + d] += w * go[d];
            }
            dp[t] = acc * f; /* the gradient of the weight before dropout */
            dot += dp[t] * pi[t];
        }
        for (size_t t = 0; t < T; t++) {
            float dsc = pi[t] * (dp[t] - dot), ds = dsc * scale; /* d score, d (q . k) */
            if (drel) drel[center + t - i] += dsc;
            for (size_t d = 0; d < HD; d++) {
                dq[i * ld + d] += ds * k[t * ld + d];
                dk[t * ld + d] += ds * q[i * ld + d];
            }
        }
    }
}

size_t se_tk_attn_scratch(size_t T, size_t HD) {
    size_t d = T > HD ? T : HD; /* the GEMM path's products' inner sizes and widths are T and HD */
    size_t g = 2 * T * T + se_tk_gemm_scratch(1, d, d), a = se_tk_attn_avx2_scratch(T, HD);
    return g > a ? g : a;
}

/* Whether the fast twins take train_attn_avx2.c's kernels: the CPU has
 * AVX2 and FMA (the dispatched kernels are not the reference) and HD is a
 * multiple of 8. */
static bool attn_avx2(size_t HD) {
    return se_kernels_get()->gemm != se_gemm_ref && HD % 8 == 0;
}

void se_tk_attn_fwd_fast(const float *q, const float *k, const float *v, size_t ld, size_t T, size_t HD, float scale,
                         const float *rel, size_t center, const se_tk_drop *dr, float *p, float *pd_out, float *out,
                         size_t ldo, float *scratch) {
    (attn_avx2(HD) ? se_tk_attn_fwd_avx2 : se_tk_attn_fwd_gemm)(q, k, v, ld, T, HD, scale, rel, center, dr, p, pd_out,
                                                                out, ldo, scratch);
}

void se_tk_attn_bwd_fast(const float *q, const float *k, const float *v, size_t ld, size_t T, size_t HD, float scale,
                         const float *p, const float *pd_in, const float *dout, size_t ldo, float *dq, float *dk,
                         float *dv, float *drel, size_t center, const se_tk_drop *dr, float *scratch) {
    (attn_avx2(HD) ? se_tk_attn_bwd_avx2 : se_tk_attn_bwd_gemm)(q, k, v, ld, T, HD, scale, p, pd_in, dout, ldo, dq, dk,
                                                                dv, drel, center, dr, scratch);
}

void se_tk_attn_fwd_gemm(const float *q, const float *k, const float *v, size_t ld, size_t T, size_t HD, float scale,
                         const float *rel, size_t center, const se_tk_drop *dr, float *p, float *pd_out, float *out,
                         size_t ldo, float *scratch) {
    float *pd = pd_out ? pd_out : scratch, *gs = scratch + 2 * T * T;
    bool avx2 = se_kernels_get()->gemm != se_gemm_ref;
    se_tk_gemm(NULL, T, T, HD, q, ld, 1, k, 1, ld, NULL, false, p, T, gs); /* q k^T */
    for (size_t i = 0; i < T; i++) {
        float *pi = p + i * T, mx = -INFINITY;
        for (size_t t = 0; t < T; t++) {
            pi[t] = pi[t] * scale;
            if (rel) pi[t] += rel[center + t - i];
            mx = pi[t] > mx ? pi[t] : mx;
        }
        float sum = 0.0f;
        for (size_t t = 0; t < T; t++) pi[t] -= mx;
        if (avx2) se_tk_exp_avx2(pi, T);
        else
            for (size_t t = 0; t < T; t++) pi[t] = expf(pi[t]);
        for (size_t t = 0; t < T; t++) sum += pi[t];
        for (size_t t = 0; t < T; t++) pi[t] /= sum;
        if (dr && avx2) se_tk_drop_mul_avx2(dr, i * T, pi, pd + i * T, T);
        else if (dr)
            for (size_t t = 0; t < T; t++) pd[i * T + t] = pi[t] * se_tk_drop_at(dr, i * T + t);
    }
    se_tk_gemm(NULL, T, HD, T, dr ? pd : p, T, 1, v, ld, 1, NULL, false, out, ldo, gs); /* dropout(p) v */
}

void se_tk_attn_bwd_gemm(const float *q, const float *k, const float *v, size_t ld, size_t T, size_t HD, float scale,
                         const float *p, const float *pd_in, const float *dout, size_t ldo, float *dq, float *dk,
                         float *dv, float *drel, size_t center, const se_tk_drop *dr, float *scratch) {
    float *pdw = scratch, *dp = scratch + T * T, *gs = scratch + 2 * T * T;
    const float *pd = pd_in ? pd_in : pdw;
    if (dr && !pd_in)
        for (size_t e = 0; e < T * T; e++) pdw[e] = p[e] * se_tk_drop_at(dr, e);
    se_tk_gemm(NULL, T, HD, T, dr ? pd : p, 1, T, dout, ldo, 1, NULL, false, dv, ld, gs); /* dv = p'^T dout */
    se_tk_gemm(NULL, T, T, HD, dout, ldo, 1, v, 1, ld, NULL, false, dp, T, gs);          /* dp' = dout v^T */
    for (size_t i = 0; i < T; i++) {
        const float *pi = p + i * T;
        float *di = dp + i * T, dot = 0.0f;
        for (size_t t = 0; t < T; t++) {
            if (dr) /* the gradient of the weight before dropout; the factor read back from pd (a weight that is
                       exactly 0 gets a zero gradient either way) */
                di[t] *= pd[i * T + t] != 0.0f ? dr->inv : 0.0f;
            dot += di[t] * pi[t];
        }
        for (size_t t = 0; t < T; t++) {
            float dsc = pi[t] * (di[t] - dot); /* d score */
            if (drel) drel[center + t - i] += dsc;
            di[t] = dsc * scale; /* d (q . k) */
        }
    }
    se_tk_gemm(NULL, T, HD, T, dp, T, 1, k, ld, 1, NULL, false, dq, ld, gs); /* dq = ds k */
    se_tk_gemm(NULL, T, HD, T, dp, 1, T, q, ld, 1, NULL, false, dk, ld, gs); /* dk = ds^T q */
}

/* A range loop split over the pool: fn on [a, b) per chunk. */
typedef struct range_job {
    size_t n, chunk;
    void (*fn)(void *arg, size_t a, size_t b);
    void *arg;
} range_job;

/* One chunk of a range_job. */
static void range_task(void *arg, size_t task, int thread) {
    (void)thread;
    const range_job *j = arg;
    size_t a = task * j->chunk, b = a + j->chunk < j->n ? a + j->chunk : j->n;
    j->fn(j->arg, a, b);
}

void se_tk_parallel(se_threadpool *tp, size_t n, size_t chunk, void (*fn)(void *arg, size_t a, size_t b), void *arg) {
    range_job j = {n, chunk ? chunk : 1, fn, arg};
    se_threadpool_run(tp, (n + j.chunk - 1) / j.chunk, range_task, &j);
}

/* The arguments of the element-wise loops below. */
typedef struct elem_job {
    const se_tk_drop *dr;
    se_act act;
    float *x, *dx;
    const float *pre, *out, *dy, *res, *g, *b, *xhat, *rsc;
    float *xh, *rs, *part, *copy;
    size_t H;
    float eps;
} elem_job;

/* Dropout's factors over elements [e0, e0 + n) of x, in place (8 lanes
 * where the CPU has AVX2: the same bits). */
static void drop_span(const se_tk_drop *dr, float *x, size_t e0, size_t n) {
    if (se_kernels_get()->gemm != se_gemm_ref) se_tk_drop_mul_avx2(dr, e0, x + e0, x + e0, n);
    else
        for (size_t e = e0; e < e0 + n; e++) x[e] *= se_tk_drop_at(dr, e);
}

/* Dropout's factors over elements [a, b). */
static void drop_range(void *arg, size_t a, size_t b) {
    const elem_job *j = arg;
    drop_span(j->dr, j->x, a, b - a);
}

void se_tk_drop_apply(se_threadpool *tp, const se_tk_drop *dr, float *x, size_t n) {
    if (!dr) return;
    elem_job j = {.dr = dr, .x = x};
    se_tk_parallel(tp, n, 16384, drop_range, &j);
}

/* The activation over elements [a, b): copied from pre, then in place. */
static void act_range(void *arg, size_t a, size_t b) {
    const elem_job *j = arg;
    if (j->pre) memcpy(j->x + a, j->pre + a, (b - a) * sizeof *j->x);
    se_act_apply(j->act, j->x + a, b - a);
}

void se_tk_act_fwd(se_threadpool *tp, se_act a, const float *pre, float *x, size_t n) {
    elem_job j = {.act = a, .pre = pre, .x = x};
    se_tk_parallel(tp, n, 16384, act_range, &j);
}

/* The activation's backward over elements [a, b). */
static void act_bwd_range(void *arg, size_t a, size_t b) {
    const elem_job *j = arg;
    se_tk_act_bwd(j->act, j->pre + a, j->out ? j->out + a : NULL, j->dy + a, j->dx + a, b - a);
}

void se_tk_act_bwd_mt(se_threadpool *tp, se_act a, const float *pre, const float *out, const float *dy, float *dx,
                      size_t n) {
    elem_job j = {.act = a, .pre = pre, .out = out, .dy = dy, .dx = dx};
    se_tk_parallel(tp, n, 16384, act_bwd_range, &j);
}

/* The fast GELU over elements [a, b): x = gelu(pre), pre = gelu'(pre). */
static void act_d_range(void *arg, size_t a, size_t b) {
    const elem_job *j = arg;
    se_tk_gelu_fwd_d_avx2(j->dx + a, j->x + a, b - a);
}

bool se_tk_act_fwd_d(se_threadpool *tp, se_act a, float *pre, float *x, size_t n) {
    if (a != SE_ACT_GELU || se_kernels_get()->gemm == se_gemm_ref) {
        se_tk_act_fwd(tp, a, pre, x, n);
        return false;
    }
    elem_job j = {.dx = pre, .x = x};
    se_tk_parallel(tp, n, 16384, act_d_range, &j);
    return true;
}

/* Rows [a, b) of x = LN(res + dropout(x)). */
static void add_ln_range(void *arg, size_t a, size_t b) {
    const elem_job *j = arg;
    size_t H = j->H;
    bool fast = se_kernels_get()->gemm != se_gemm_ref;
    for (size_t t = a; t < b; t++) {
        float *r = j->x + t * H;
        if (j->dr) drop_span(j->dr, j->x, t * H, H);
        if (j->res)
            for (size_t i = 0; i < H; i++) r[i] = j->res[t * H + i] + r[i];
        (fast ? se_tk_layernorm_fwd_avx2 : se_tk_layernorm_fwd)(r, H, j->g, j->b, j->eps, j->xh + t * H, j->rs + t);
    }
}

void se_tk_add_layernorm_rows(se_threadpool *tp, float *x, const float *res, size_t T, size_t H, const float *g,
                              const float *b, float eps, float *xhat, float *rstd, const se_tk_drop *dr) {
    elem_job j = {.dr = dr, .x = x, .res = res, .H = H, .g = g, .b = b, .eps = eps, .xh = xhat, .rs = rstd};
    se_tk_parallel(tp, T, 16, add_ln_range, &j);
}

#define LN_ROWS 32 /* rows of a LayerNorm backward block (its dg, db summed apart) */

size_t se_tk_ln_bwd_scratch(size_t T, size_t H) {
    return ((T + LN_ROWS - 1) / LN_ROWS) * 2 * H;
}

/* Block [a, b) of rows: dx in place, the block's dg and db into its part. */
static void ln_bwd_range(void *arg, size_t a, size_t b) {
    const elem_job *j = arg;
    size_t H = j->H;
    float *dg = j->part + (a / LN_ROWS) * 2 * H, *db = dg + H;
    memset(dg, 0, 2 * H * sizeof *dg);
    bool fast = se_kernels_get()->gemm != se_gemm_ref;
    for (size_t t = a; t < b; t++) {
        (fast ? se_tk_layernorm_bwd_avx2 : se_tk_layernorm_bwd)(j->x + t * H, j->xhat + t * H, j->rsc[t], j->g, H,
                                                               j->x + t * H, dg, db);
        if (j->copy) memcpy(j->copy + t * H, j->x + t * H, H * sizeof *j->copy);
        if (j->dr) drop_span(j->dr, j->x, t * H, H);
    }
}

void se_tk_layernorm_bwd_rows(se_threadpool *tp, float *dx, const float *xhat, const float *rstd, const float *g,
                              size_t T, size_t H, float *dg, float *db, float *scratch, float *copy,
                              const se_tk_drop *dr) {
    elem_job j = {.dr = dr, .x = dx, .copy = copy, .xhat = xhat, .rsc = rstd, .g = g, .H = H, .part = scratch};
    se_tk_parallel(tp, T, LN_ROWS, ln_bwd_range, &j);
    for (size_t k = 0; k < (T + LN_ROWS - 1) / LN_ROWS; k++) {
        const float *pg = scratch + k * 2 * H, *pb = pg + H;
        for (size_t i = 0; i < H; i++) dg[i] += pg[i], db[i] += pb[i];
    }
}
