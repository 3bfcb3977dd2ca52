/*
 * train/train_kernels.c - the backward kernels: the Linear's three GEMMs
 * (forward, input gradient, weight gradient), LayerNorm, the activations'
 * derivatives and one attention head forward and backward.
 *
 * The fast GEMMs run the forward's dispatched GEMM (se_kernels_get()->gemm,
 * y = x w^T on unpacked weights) on transposed copies of their operands:
 *   dx = dy w       is  dy (w^T)^T:   w^T (K, N) as the weight
 *   dw = dy^T x     is  dy^T (x^T)^T: dy^T (N, M) the input, x^T (K, M) the weight
 * Each has a scalar reference twin (*_ref), summing in the order of the
 * math. LayerNorm, the activations' derivatives and attention are plain
 * scalar loops (the reference itself: no fast version yet, so no twin).
 */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "train/train_kernels.h"

/* Output columns a GEMM task computes (a multiple of the kernels' 32). */
#define COLS_PER_TASK 64

/* One parallel GEMM: y (M, N) = x w^T + b, then, when acc is not NULL,
 * acc (M, N) += y, column block by column block. */
typedef struct gemm_job {
    const float *x, *w, *b;
    size_t M, K, ldx, N, ldy;
    float *y, *acc;
} gemm_job;

/* Computes (and adds) one block of COLS_PER_TASK columns. */
static void gemm_task(void *arg, size_t task, int thread) {
    (void)thread;
    const gemm_job *j = arg;
    size_t n0 = task * COLS_PER_TASK, n1 = n0 + COLS_PER_TASK < j->N ? n0 + COLS_PER_TASK : j->N;
    se_kernels_get()->gemm(j->x, j->M, j->K, j->ldx, j->w, j->b, j->y, j->ldy, n0, n1);
    if (j->acc)
        for (size_t m = 0; m < j->M; m++)
            for (size_t n = n0; n < n1; n++) j->acc[m * j->N + n] += j->y[m * j->ldy + n];
}

/* Runs a gemm_job over the pool. */
static void par_gemm(se_threadpool *tp, gemm_job *j) {
    if (j->M && j->N) se_threadpool_run(tp, (j->N + COLS_PER_TASK - 1) / COLS_PER_TASK, gemm_task, j);
}

void se_tk_linear(se_threadpool *tp, const float *x, size_t M, size_t K, const float *w, size_t N, const float *b,
                  float *y, size_t ldy) {
    gemm_job j = {.x = x, .w = w, .b = b, .M = M, .K = K, .ldx = K, .N = N, .ldy = ldy, .y = y};
    par_gemm(tp, &j);
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

/* out (C, R) = in (R, C; rows ld apart) transposed. */
static void transpose(const float *in, size_t R, size_t C, size_t ld, float *out) {
    for (size_t r = 0; r < R; r++)
        for (size_t c = 0; c < C; c++) out[c * R + r] = in[r * ld + c];
}

size_t se_tk_dx_scratch(size_t M, size_t N, size_t K) {
    return K * N + M * K;
}

size_t se_tk_dw_scratch(size_t M, size_t N, size_t K) {
    return N * M + K * M + N * K;
}

void se_tk_dx(se_threadpool *tp, const float *dy, size_t ldy, size_t M, size_t N, const float *w, size_t K, float *dx,
              float *scratch) {
    if (!M || !K) return;
    float *wt = scratch, *y = scratch + K * N;
    transpose(w, N, K, K, wt);
    gemm_job j = {.x = dy, .w = wt, .M = M, .K = N, .ldx = ldy, .N = K, .ldy = K, .y = y, .acc = dx};
    par_gemm(tp, &j);
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
    if (db)
        for (size_t m = 0; m < M; m++)
            for (size_t n = 0; n < N; n++) db[n] += dy[m * ldy + n];
    if (!M || !N || !K) return;
    float *dyt = scratch, *xt = scratch + N * M, *y = xt + K * M;
    transpose(dy, M, N, ldy, dyt);
    transpose(x, M, K, ldx, xt);
    gemm_job j = {.x = dyt, .w = xt, .M = N, .K = M, .ldx = M, .N = K, .ldy = K, .y = y, .acc = dw};
    par_gemm(tp, &j);
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
