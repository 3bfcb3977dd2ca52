/*
 * train/train_attn_avx2.c - one attention head of one sentence, forward
 * and backward, for the training engine: AVX2+FMA register tiles made
 * for its small shapes (T tokens, 1..512; HD, the head size, a multiple
 * of 8: 32 for MiniLM, 64 for the base models and the student).
 *
 * The products, with the operands each one packs (once per head, into
 * the thread's scratch):
 *   forward   s = q k^T        k^T (times scale) packed (HD, Tp); q read in place
 *             out = p' v       v in panels (p' = dropout(p), or p)
 *   backward  dp' = dout v^T   v^T packed (HD, Tp); dout read in place
 *             dq = ds k        k in panels
 *             dk = ds^T q      q in panels
 *             dv = p'^T dout   dout in panels
 * Tp is T rounded up to 8; the packed columns past T are zeros; a panel
 * is 32 columns of T rows side by side (pack_panels). The scores are made
 * in blocks of up to RS rows: each tile of the block's rows and 16
 * columns goes straight into p (the relative bias added, the rows' maxima
 * kept), then the block's rows get their softmax and dropout (p, pd) and
 * the block's context rows their product with v while the weights are
 * still in L1. The backward makes its dp' rows the same way in the
 * thread's scratch (their dots with the dropped weights taken as each
 * tile is stored), turns them into ds (the softmax's backward, the
 * dropout factors taken through the dropped weights the forward kept),
 * writes the block's dq rows, and after the last block dk and dv. Every
 * product with v, k, q or dout is a tile of up to RP rows and 32 columns
 * summed in registers over the whole inner size, then stored once.
 *
 * The sums run in another order than the scalar references
 * (se_tk_attn_fwd, se_tk_attn_bwd in train_kernels.c): they agree to
 * rounding (tests/test_train_kernels.c, test_train_attn_twin). Nothing
 * depends on the thread: one call is one head of one sentence. Compiled
 * with -mavx2 -mfma; train_kernels.c calls it only when the CPU has both.
 */
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "train/train_avx2.h"
#include "train/train_kernels.h"

#define RS 6 /* rows of a score tile (6 x 16 columns: 12 accumulators) */
#define RP 3 /* rows of a product tile (3 x 32 columns: 12 accumulators) */

/* T rounded up to a multiple of 8: the packed operands' row length. */
static inline size_t pad8(size_t n) {
    return (n + 7) & ~(size_t)7;
}

/* n floats rounded up to a whole number of 64-byte lines, and a pointer
 * rounded up to the next line: the packed operands start on a line, so
 * their vectors never straddle two. */
static inline size_t lines(size_t n) {
    return (n + 15) & ~(size_t)15;
}
static inline float *line_up(float *p) {
    return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* The mask of lanes [0, n) (n >= 8: all eight), for the loads and stores
 * of a row's last, partial vector. */
static inline __m256i lanes(size_t n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 8 ? n : 8)), idx);
}

/* The sum and the maximum of a vector's eight lanes. */
static inline float hsum8(__m256 x) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float hmax8(__m256 x) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* bt (HD, Tp) = the transpose of a's T rows (rows ld apart, HD columns, HD
 * a multiple of 8) times sc, columns [T, Tp) zero: eight rows at a time
 * through 8 x 8 register transposes. */
static void pack_t(const float *a, size_t ld, size_t T, size_t HD, float sc, float *bt, size_t Tp) {
    const __m256 scv = _mm256_set1_ps(sc);
    for (size_t t0 = 0; t0 < Tp; t0 += 8)
        for (size_t d0 = 0; d0 < HD; d0 += 8) {
            __m256 r[8];
            for (size_t j = 0; j < 8; j++)
                r[j] = t0 + j < T ? _mm256_mul_ps(_mm256_loadu_ps(a + (t0 + j) * ld + d0), scv) : _mm256_setzero_ps();
            se_tk_transpose8_store(r, bt + d0 * Tp + t0, Tp);
        }
}

/* b = a's T rows (ld apart, HD columns) in panels of 32 columns (the
 * last one narrower): columns [c, c + w) as a (T, w) block at b + c T.
 * The products' right operands are read from them one panel per column
 * block of a tile, contiguously (rows ld apart map onto a few L1 sets and
 * evict each other; for HD 32 the one panel is the rows side by side). */
static void pack_panels(const float *a, size_t ld, size_t T, size_t HD, float *b) {
    for (size_t c = 0; c < HD; c += 32) {
        size_t w = HD - c < 32 ? HD - c : 32;
        float *o = b + c * T;
        for (size_t t = 0; t < T; t++, o += w)
            for (size_t d = 0; d < w; d += 8) _mm256_storeu_ps(o + d, _mm256_loadu_ps(a + t * ld + c + d));
    }
}

/* What a score tile does with its sums. */
typedef enum { EPI_FWD, EPI_BWD } epi_kind;

/* The arguments of a head's score blocks (the forward's s = q k^T, the
 * backward's dp' = dout v^T) and of their epilogues. */
typedef struct score_args {
    const float *a; /* (T, HD) rows lda apart: q or dout */
    size_t lda;
    const float *bt; /* (HD, Tp): k^T times scale, or v^T, packed */
    size_t T, Tp, HD;
    const float *rel; /* forward: the bias by distance (NULL: none) */
    size_t center;
    float *p;        /* forward: (T, T) the scores out */
    const float *pw; /* backward: (T, T) the dropped weights (or the weights: no dropout) */
    float *ds;       /* backward: (T, Tp) dp', out */
} score_args;

/* Rows [i0, i0 + R) by columns [c, c + 8 NV) of a score block: the tile
 * summed over HD in registers, then, forward: plus the bias, stored into
 * p (the partial last vector masked) and the rows' maxima in red
 * updated; backward: stored into ds and its product with the dropped
 * weights added to the rows' dots in red. R and NV are constants of each
 * inlined copy. */
static inline __attribute__((always_inline)) void score_tile(const score_args *s, size_t i0, size_t c, int R, int NV,
                                                             epi_kind kind, __m256 *red) {
    __m256 acc[RS][2];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const float *a[RS], *b = s->bt + c; /* the rows' pointers apart: one address operation per broadcast */
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) a[r] = s->a + (i0 + r) * s->lda;
    const size_t HD = s->HD, Tp = s->Tp;
    for (size_t d = 0; d < HD; d++, b += Tp) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = NV > 1 ? _mm256_loadu_ps(b + 8) : b0;
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            __m256 x = _mm256_broadcast_ss(a[r] + d);
            acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
            if (NV > 1) acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        size_t i = i0 + r;
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
            size_t t = c + 8 * (size_t)v;
            __m256 x = acc[r][v];
            if (t + 8 <= s->T) { /* a whole vector */
                if (kind == EPI_FWD) {
                    if (s->rel) x = _mm256_add_ps(x, _mm256_loadu_ps(s->rel + (s->center + t - i)));
                    _mm256_storeu_ps(s->p + i * s->T + t, x);
                    red[r] = _mm256_max_ps(red[r], x);
                } else {
                    red[r] = _mm256_fmadd_ps(x, _mm256_loadu_ps(s->pw + i * s->T + t), red[r]);
                    _mm256_storeu_ps(s->ds + i * s->Tp + t, x);
                }
            } else { /* the row's last, partial vector: loads and stores masked */
                __m256i m = lanes(s->T - t);
                if (kind == EPI_FWD) {
                    if (s->rel) x = _mm256_add_ps(x, _mm256_maskload_ps(s->rel + (s->center + t - i), m));
                    _mm256_maskstore_ps(s->p + i * s->T + t, m, x);
                    red[r] = _mm256_max_ps(red[r],
                                           _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), x, _mm256_castsi256_ps(m)));
                } else {
                    red[r] = _mm256_fmadd_ps(x, _mm256_maskload_ps(s->pw + i * s->T + t, m), red[r]);
                    _mm256_storeu_ps(s->ds + i * s->Tp + t, x);
                }
            }
        }
    }
}

/* Rows [i0, i0 + R) of the scores, every column (16 at a time, then the
 * last 8: Tp is a multiple of 8), the rows' maxima (forward) or dots with
 * the dropped weights (backward) left in out[0 .. R). */
static inline __attribute__((always_inline)) void score_block(const score_args *s, size_t i0, int R, epi_kind kind,
                                                              __m256 *out) {
    __m256 red[RS];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) red[r] = kind == EPI_FWD ? _mm256_set1_ps(-INFINITY) : _mm256_setzero_ps();
    size_t c = 0;
    for (; c + 16 <= s->Tp; c += 16) score_tile(s, i0, c, R, 2, kind, red);
    if (c < s->Tp) score_tile(s, i0, c, R, 1, kind, red);
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) out[r] = red[r];
}

/* One copy of score_block per row count R (1..RS) and epilogue:
 * score_fns[kind][R - 1]. */
#define SCORE_FN(K, R)                                                                                                 \
    static void score_##K##_##R(const score_args *s, size_t i0, __m256 *out) {                                         \
        score_block(s, i0, R, K, out);                                                                                 \
    }
#define SCORE_FNS(K) SCORE_FN(K, 1) SCORE_FN(K, 2) SCORE_FN(K, 3) SCORE_FN(K, 4) SCORE_FN(K, 5) SCORE_FN(K, 6)
SCORE_FNS(EPI_FWD)
SCORE_FNS(EPI_BWD)

typedef void (*score_fn)(const score_args *s, size_t i0, __m256 *out);
static const score_fn score_fns[2][RS] = {
    {score_EPI_FWD_1, score_EPI_FWD_2, score_EPI_FWD_3, score_EPI_FWD_4, score_EPI_FWD_5, score_EPI_FWD_6},
    {score_EPI_BWD_1, score_EPI_BWD_2, score_EPI_BWD_3, score_EPI_BWD_4, score_EPI_BWD_5, score_EPI_BWD_6},
};

/* The arguments of a product C (rows, HD) (+)= A (rows, K) B (K, HD):
 * A(r, k) = a[r ars + k acs], B in pack_panels' panels. */
typedef struct prod_args {
    const float *a;
    size_t ars, acs;
    size_t K;
    const float *b;
    float *c;
    size_t ldc;
} prod_args;

/* Rows [r0, r0 + R) by columns [c0, c0 + 8 NV) of a product: summed over
 * k in registers from k = 0, then stored into C. R and NV are constants
 * of each inlined copy. */
static inline __attribute__((always_inline)) void prod_tile(const prod_args *g, size_t r0, size_t c0, int R, int NV) {
    __m256 acc[RP][4];
#pragma GCC unroll 3
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
    const float *a = g->a + r0 * g->ars, *b = g->b + c0 * g->K; /* the panel of columns [c0, c0 + 8 NV) */
    for (size_t k = 0; k < g->K; k++, a += g->acs, b += 8 * NV) {
        __m256 x[RP];
#pragma GCC unroll 3
        for (int r = 0; r < R; r++) x[r] = _mm256_broadcast_ss(a + r * g->ars);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            __m256 bv = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 3
            for (int r = 0; r < R; r++) acc[r][v] = _mm256_fmadd_ps(x[r], bv, acc[r][v]);
        }
    }
#pragma GCC unroll 3
    for (int r = 0; r < R; r++) {
        float *o = g->c + (r0 + r) * g->ldc + c0;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) _mm256_storeu_ps(o + 8 * v, acc[r][v]);
    }
}

/* One copy of prod_tile per row count R (1..RP) and vector count NV
 * (1..4). */
#define PROD_FN(R, NV)                                                                                                 \
    static void prod_##R##_##NV(const prod_args *g, size_t r0, size_t c0) {                                            \
        prod_tile(g, r0, c0, R, NV);                                                                                   \
    }
PROD_FN(1, 1) PROD_FN(1, 2) PROD_FN(1, 3) PROD_FN(1, 4)
PROD_FN(2, 1) PROD_FN(2, 2) PROD_FN(2, 3) PROD_FN(2, 4)
PROD_FN(3, 1) PROD_FN(3, 2) PROD_FN(3, 3) PROD_FN(3, 4)

typedef void (*prod_fn)(const prod_args *g, size_t r0, size_t c0);
static const prod_fn prod_fns[RP][4] = {
    {prod_1_1, prod_1_2, prod_1_3, prod_1_4}, {prod_2_1, prod_2_2, prod_2_3, prod_2_4}, {prod_3_1, prod_3_2, prod_3_3, prod_3_4}};

/* Rows [r0, r1) of a product, all HD columns: tiles of RP rows by 32
 * columns (the last ones narrower), each stored once; a panel of B at a
 * time, so it stays in L1 over the rows. */
static void prod_rows(const prod_args *g, size_t r0, size_t r1, size_t HD) {
    for (size_t c = 0; c < HD; c += 32) {
        size_t NV = (HD - c) / 8 < 4 ? (HD - c) / 8 : 4;
        for (size_t r = r0; r < r1; r += RP) {
            size_t R = r1 - r < RP ? r1 - r : RP;
            prod_fns[R - 1][NV - 1](g, r, c);
        }
    }
}

/* The rows of the score block starting at row i0: the T rows split into
 * ceil(T / RS) blocks as even as can be (T 32: 6 6 5 5 5 5, not 6 6 6 6
 * 6 2), so no block is so narrow that its few accumulators wait on the
 * FMA's latency. */
static size_t block_rows(size_t T, size_t i0) {
    size_t n = (T + RS - 1) / RS, big = T - (T / n) * n; /* the first big blocks have T / n + 1 rows */
    size_t small = T / n;
    return i0 < big * (small + 1) ? small + 1 : small;
}

/* Softmax of rows [i0, i0 + R) of p in place (their scores' maxima in
 * mx), and their dropped copies into pd (dr NULL: none): exp and sum
 * over every row, then the divisions by the sums (as products by their
 * inverses), then the factors. A block's rows go through each step
 * together so that their exp chains, sums and divisions overlap (one row
 * at a time, each waits on its own sum). */
static void softmax_rows(float *p, float *pd, size_t T, size_t i0, size_t R, const __m256 *mx, const se_tk_drop *dr) {
    __m256 sum[RS];
    __m256i tail = lanes(T % 8);
    size_t tv = T & ~(size_t)7; /* the whole vectors' end */
    for (size_t r = 0; r < R; r++) {
        float *pi = p + (i0 + r) * T;
        __m256 m = _mm256_set1_ps(hmax8(mx[r])), s = _mm256_setzero_ps();
        for (size_t t = 0; t < tv; t += 8) {
            __m256 e = se_tk_exp8(_mm256_sub_ps(_mm256_loadu_ps(pi + t), m));
            _mm256_storeu_ps(pi + t, e);
            s = _mm256_add_ps(s, e);
        }
        if (tv < T) {
            __m256 e = se_tk_exp8(_mm256_sub_ps(_mm256_maskload_ps(pi + tv, tail), m));
            e = _mm256_and_ps(e, _mm256_castsi256_ps(tail));
            _mm256_maskstore_ps(pi + tv, tail, e);
            s = _mm256_add_ps(s, e);
        }
        sum[r] = s;
    }
    for (size_t r = 0; r < R; r++) {
        float *pi = p + (i0 + r) * T;
        __m256 inv = _mm256_set1_ps(1.0f / hsum8(sum[r]));
        for (size_t t = 0; t < tv; t += 8) _mm256_storeu_ps(pi + t, _mm256_mul_ps(_mm256_loadu_ps(pi + t), inv));
        if (tv < T) _mm256_maskstore_ps(pi + tv, tail, _mm256_mul_ps(_mm256_maskload_ps(pi + tv, tail), inv));
    }
    if (dr)
        for (size_t r = 0; r < R; r++) se_tk_drop_mul_avx2(dr, (i0 + r) * T, p + (i0 + r) * T, pd + (i0 + r) * T, T);
}

/* The scratch of a head of T tokens: the packed k^T or v^T, the panels,
 * ds, and the dropped weights when they are not kept (64 bytes of slack
 * to start on a line). */
size_t se_tk_attn_avx2_scratch(size_t T, size_t HD) {
    size_t Tp = pad8(T);
    return 15 + lines(HD * Tp) + lines(T * HD) + lines(T * Tp) + T * T;
}

/* One head's forward (train_kernels.h): k^T and v packed, then the
 * blocks of rows: scores, softmax and dropout, context. */
void se_tk_attn_fwd_avx2(const float *q, const float *k, const float *v, size_t ld, size_t T, size_t HD, float scale,
                         const float *rel, size_t center, const se_tk_drop *dr, float *p, float *pd_out, float *out,
                         size_t ldo, float *scratch) {
    size_t Tp = pad8(T);
    float *kt = line_up(scratch), *vr = kt + lines(HD * Tp); /* kt (HD, Tp), vr (T, HD) */
    float *pd = pd_out ? pd_out : vr + lines(T * HD);       /* pd (T, T) */
    pack_t(k, ld, T, HD, scale, kt, Tp); /* the scale on k^T: the score tiles' sums are the scores */
    pack_panels(v, ld, T, HD, vr);
    __m256 mx[RS];
    score_args s = {.a = q, .lda = ld, .bt = kt, .T = T, .Tp = Tp, .HD = HD, .rel = rel, .center = center, .p = p};
    prod_args g = {.a = dr ? pd : p, .ars = T, .acs = 1, .K = T, .b = vr, .c = out, .ldc = ldo};
    for (size_t i0 = 0, R; i0 < T; i0 += R) {
        R = block_rows(T, i0);
        score_fns[EPI_FWD][R - 1](&s, i0, mx);
        softmax_rows(p, pd, T, i0, R, mx, dr);
        prod_rows(&g, i0, i0 + R, HD); /* the block's context rows: p' v */
    }
}

/* One head's backward (train_kernels.h): v^T and k packed, the blocks of
 * rows (dp', ds, dq), then dk and dv. */
void se_tk_attn_bwd_avx2(const float *q, const float *k, const float *v, size_t ld, size_t T, size_t HD, float scale,
                         const float *p, const float *pd_in, const float *dout, size_t ldo, float *dq, float *dk,
                         float *dv, float *drel, size_t center, const se_tk_drop *dr, float *scratch) {
    size_t Tp = pad8(T);
    float *vt = line_up(scratch), *br = vt + lines(HD * Tp); /* vt (HD, Tp), br (T, HD) */
    float *ds = br + lines(T * HD), *pdw = ds + lines(T * Tp); /* ds (T, Tp), pdw (T, T) */
    const float *pd = dr ? (pd_in ? pd_in : pdw) : NULL;
    if (dr && !pd_in) se_tk_drop_mul_avx2(dr, 0, p, pdw, T * T);
    pack_t(v, ld, T, HD, 1.0f, vt, Tp);
    pack_panels(k, ld, T, HD, br);
    __m256 dot[RS];
    const float *pw = dr ? pd : p; /* the weights the forward multiplied v by */
    score_args s = {.a = dout, .lda = ldo, .bt = vt, .T = T, .Tp = Tp, .HD = HD, .pw = pw, .ds = ds};
    prod_args gq = {.a = ds, .ars = Tp, .acs = 1, .K = T, .b = br, .c = dq, .ldc = ld};
    const __m256 sc = _mm256_set1_ps(scale);
    for (size_t i0 = 0, R; i0 < T; i0 += R) {
        R = block_rows(T, i0);
        score_fns[EPI_BWD][R - 1](&s, i0, dot); /* ds rows = dp' = dout v^T, dot = dp' . pw */
        /* The weights' gradient before dropout is dp = dp' f (f the factor: pw = p f), the scores' gradient
         * p (dp - dp . p) = pw dp' - p (dp' . pw): the factors taken through pw (read back from pd with dropout,
         * as the forward kept it), so nothing is drawn again; drel += that, ds = that times scale. */
        for (size_t r = 0; r < R; r++) {
            size_t i = i0 + r, t = 0;
            const float *pi = p + i * T, *wi = pw + i * T;
            float *di = ds + i * Tp, *rb = drel ? drel + (center - i) : NULL; /* rb[t]: distance t - i */
            __m256 dt = _mm256_set1_ps(hsum8(dot[r]));
            for (; t + 8 <= T; t += 8) {
                __m256 dsc = _mm256_fnmadd_ps(_mm256_loadu_ps(pi + t), dt,
                                              _mm256_mul_ps(_mm256_loadu_ps(wi + t), _mm256_loadu_ps(di + t)));
                if (rb) _mm256_storeu_ps(rb + t, _mm256_add_ps(_mm256_loadu_ps(rb + t), dsc));
                _mm256_storeu_ps(di + t, _mm256_mul_ps(dsc, sc));
            }
            if (t < T) { /* the partial last vector: the lanes past T get 0 */
                __m256i m = lanes(T - t);
                __m256 dsc = _mm256_fnmadd_ps(_mm256_maskload_ps(pi + t, m), dt,
                                              _mm256_mul_ps(_mm256_maskload_ps(wi + t, m), _mm256_loadu_ps(di + t)));
                if (rb) _mm256_maskstore_ps(rb + t, m, _mm256_add_ps(_mm256_maskload_ps(rb + t, m), dsc));
                _mm256_storeu_ps(di + t, _mm256_mul_ps(dsc, sc));
            }
        }
        prod_rows(&gq, i0, i0 + R, HD); /* dq rows = ds k */
    }
    pack_panels(q, ld, T, HD, br);
    prod_args gk = {.a = ds, .ars = 1, .acs = Tp, .K = T, .b = br, .c = dk, .ldc = ld};
    prod_rows(&gk, 0, T, HD); /* dk = ds^T q */
    pack_panels(dout, ldo, T, HD, br);
    prod_args gv = {.a = pw, .ars = 1, .acs = T, .K = T, .b = br, .c = dv, .ldc = ld};
    prod_rows(&gv, 0, T, HD); /* dv = p'^T dout */
}
