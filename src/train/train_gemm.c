/*
 * train/train_gemm.c - the training engine's GEMM: C (M, N) = A (M, K) B (K, N)
 * (+ bias, or added into C), with A and B read through row and column
 * strides, so one kernel serves the Linear's three products without
 * transposed copies:
 *   y  = x w^T    A = x,    B(k, n) = w[n][k]
 *   dx += dy w    A = dy,   B = w
 *   dw += dy^T x  A(m, k) = dy[k][m], B = x
 *
 * Each element is one chain of fused multiply-adds over k = 0 .. K - 1 in
 * order, started from 0, then stored (+ bias) or added into C: the scalar
 * twin (se_tk_gemm_ref, fmaf) and the AVX2 kernel give the same bits, and
 * the split over threads (blocks of C) cannot change them.
 *
 * The AVX2 kernel is BLIS-shaped: the output is cut into blocks of up to
 * TM x NB (a task each, smaller when the product would give a thread
 * none); a task walks K in chunks of KC, packs its chunk of B once into
 * panels of 16 columns (k-major) and, MB rows at a time, its chunk of A
 * into panels of 6 rows, and runs a 6 x 16 register tile (12
 * accumulators) over each pair of panels, keeping the partial sums of the
 * block in its scratch between chunks (float, so the chain of FMAs is the
 * same as without chunks). This file
 * is compiled with -mavx2 -mfma; the dispatcher calls the AVX2 kernel only
 * when the CPU has both.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "train/train_kernels.h"

#define MR 6
#define NR 16
#define MB 96  /* rows of A packed at once (a multiple of MR) */
#define TM 384 /* at most the rows of a task (a multiple of MB) */
#define NB 256 /* at most the columns of a task (a multiple of NR) */
#define KC 256 /* the K chunk packed at once */
#define PER_THREAD (MB * KC + KC * NB + TM * NB + 8)

size_t se_tk_gemm_scratch(int n_threads) {
    return (size_t)(n_threads > 1 ? n_threads : 1) * PER_THREAD;
}

void se_tk_gemm_ref(size_t M, size_t N, size_t K, const float *a, size_t ars, size_t acs, const float *b, size_t brs,
                    size_t bcs, const float *bias, bool acc, float *c, size_t ldc) {
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < N; n++) {
            float s = 0.0f;
            for (size_t k = 0; k < K; k++) s = fmaf(a[m * ars + k * acs], b[k * brs + n * bcs], s);
            if (acc) c[m * ldc + n] += s;
            else c[m * ldc + n] = s + (bias ? bias[n] : 0.0f);
        }
}

/* The 6 x 16 tile over kc steps: A panel (kc, 6), B panel (kc, 16); the
 * partial sums in t (6 x 16) are loaded first unless first. */
static void tile6x16(size_t kc, const float *A, const float *B, float *t, bool first) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (first) {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    } else {
        c00 = _mm256_loadu_ps(t), c01 = _mm256_loadu_ps(t + 8), c10 = _mm256_loadu_ps(t + 16);
        c11 = _mm256_loadu_ps(t + 24), c20 = _mm256_loadu_ps(t + 32), c21 = _mm256_loadu_ps(t + 40);
        c30 = _mm256_loadu_ps(t + 48), c31 = _mm256_loadu_ps(t + 56), c40 = _mm256_loadu_ps(t + 64);
        c41 = _mm256_loadu_ps(t + 72), c50 = _mm256_loadu_ps(t + 80), c51 = _mm256_loadu_ps(t + 88);
    }
#pragma GCC unroll 4
    for (size_t k = 0; k < kc; k++, A += MR, B += NR) {
        __m256 b0 = _mm256_loadu_ps(B), b1 = _mm256_loadu_ps(B + 8), a;
        a = _mm256_broadcast_ss(A + 0), c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(A + 1), c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(A + 2), c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(A + 3), c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(A + 4), c40 = _mm256_fmadd_ps(a, b0, c40), c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(A + 5), c50 = _mm256_fmadd_ps(a, b0, c50), c51 = _mm256_fmadd_ps(a, b1, c51);
    }
    _mm256_storeu_ps(t, c00), _mm256_storeu_ps(t + 8, c01), _mm256_storeu_ps(t + 16, c10);
    _mm256_storeu_ps(t + 24, c11), _mm256_storeu_ps(t + 32, c20), _mm256_storeu_ps(t + 40, c21);
    _mm256_storeu_ps(t + 48, c30), _mm256_storeu_ps(t + 56, c31), _mm256_storeu_ps(t + 64, c40);
    _mm256_storeu_ps(t + 72, c41), _mm256_storeu_ps(t + 80, c50), _mm256_storeu_ps(t + 88, c51);
}

/* Packs rows m0 .. m0 + mb and k0 .. k0 + kc of A into panels of MR rows
 * (zeros past M): panel p holds A(m0 + p MR + i, k0 + k) at [k MR + i]. */
static void pack_a(const float *a, size_t ars, size_t acs, size_t m0, size_t mb, size_t k0, size_t kc, float *out) {
    for (size_t p = 0; p < mb; p += MR, out += kc * MR) {
        size_t r = mb - p < MR ? mb - p : MR;
        const float *src = a + (m0 + p) * ars + k0 * acs;
        if (ars == 1 && r == MR) /* A^T columns: six neighbours per k */
            for (size_t k = 0; k < kc; k++) memcpy(out + k * MR, src + k * acs, MR * sizeof(float));
        else if (acs == 1 && r == MR) {
            const float *s0 = src, *s1 = s0 + ars, *s2 = s1 + ars, *s3 = s2 + ars, *s4 = s3 + ars, *s5 = s4 + ars;
            for (size_t k = 0; k < kc; k++) {
                float *o = out + k * MR;
                o[0] = s0[k], o[1] = s1[k], o[2] = s2[k], o[3] = s3[k], o[4] = s4[k], o[5] = s5[k];
            }
        } else
            for (size_t k = 0; k < kc; k++)
                for (size_t i = 0; i < MR; i++) out[k * MR + i] = i < r ? src[i * ars + k * acs] : 0.0f;
    }
}

/* out (8 rows ldo apart) = the transpose of in (8 rows ldi apart): 8 x 8
 * floats moved (copies only, no arithmetic). */
static inline void transpose8(const float *in, size_t ldi, float *out, size_t ldo) {
    __m256 r0 = _mm256_loadu_ps(in), r1 = _mm256_loadu_ps(in + ldi), r2 = _mm256_loadu_ps(in + 2 * ldi);
    __m256 r3 = _mm256_loadu_ps(in + 3 * ldi), r4 = _mm256_loadu_ps(in + 4 * ldi), r5 = _mm256_loadu_ps(in + 5 * ldi);
    __m256 r6 = _mm256_loadu_ps(in + 6 * ldi), r7 = _mm256_loadu_ps(in + 7 * ldi);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3);
    __m256 t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(out, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(out + ldo, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(out + 2 * ldo, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(out + 3 * ldo, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(out + 4 * ldo, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(out + 5 * ldo, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(out + 6 * ldo, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(out + 7 * ldo, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* Packs columns n0 .. n0 + nb and k0 .. k0 + kc of B into panels of NR
 * columns (zeros past N): panel p holds B(k0 + k, n0 + p NR + j) at [k NR + j]. */
static void pack_b(const float *b, size_t brs, size_t bcs, size_t n0, size_t nb, size_t k0, size_t kc, float *out) {
    for (size_t p = 0; p < nb; p += NR, out += kc * NR) {
        size_t r = nb - p < NR ? nb - p : NR;
        const float *src = b + k0 * brs + (n0 + p) * bcs;
        if (bcs == 1 && r == NR)
            for (size_t k = 0; k < kc; k++) memcpy(out + k * NR, src + k * brs, NR * sizeof(float));
        else if (brs == 1 && r == NR) { /* B^T rows: 8 x 8 transposes, then each column's k tail */
            size_t k8 = kc & ~(size_t)7;
            for (size_t j = 0; j < NR; j += 8)
                for (size_t k = 0; k < k8; k += 8) transpose8(src + j * bcs + k, bcs, out + k * NR + j, NR);
            for (size_t j = 0; j < NR; j++)
                for (size_t k = k8; k < kc; k++) out[k * NR + j] = src[j * bcs + k];
        }
        else
            for (size_t k = 0; k < kc; k++)
                for (size_t j = 0; j < NR; j++) out[k * NR + j] = j < r ? src[k * brs + j * bcs] : 0.0f;
    }
}

/* A GEMM split over the pool: a task per tm x nb block of C. */
typedef struct gemm_job {
    size_t M, N, K, ars, acs, brs, bcs, ldc, tm, nb, nbn;
    const float *a, *b, *bias;
    bool acc;
    float *c, *scratch;
} gemm_job;

/* One task's block: per K chunk, B's columns packed once, then each MB
 * rows of A packed and multiplied into the block's partial sums; at the
 * end the sums stored into C (+ bias) or added. */
static void gemm_block(void *arg, size_t task, int thread) {
    const gemm_job *j = arg;
    size_t m0 = (task / j->nbn) * j->tm, n0 = (task % j->nbn) * j->nb;
    size_t tmb = j->M - m0 < j->tm ? j->M - m0 : j->tm, nb = j->N - n0 < j->nb ? j->N - n0 : j->nb;
    float *pa = j->scratch + (size_t)thread * PER_THREAD, *pb = pa + MB * KC, *t = pb + KC * NB;
    size_t np = (nb + NR - 1) / NR, mpt = (tmb + MR - 1) / MR; /* panels of B, of A in the task */
    for (size_t k0 = 0; k0 < j->K; k0 += KC) {
        size_t kc = j->K - k0 < KC ? j->K - k0 : KC;
        pack_b(j->b, j->brs, j->bcs, n0, nb, k0, kc, pb);
        for (size_t mb0 = 0; mb0 < tmb; mb0 += MB) {
            size_t mb = tmb - mb0 < MB ? tmb - mb0 : MB, mp = (mb + MR - 1) / MR;
            pack_a(j->a, j->ars, j->acs, m0 + mb0, mb, k0, kc, pa);
            for (size_t q = 0; q < np; q++)
                for (size_t p = 0; p < mp; p++)
                    tile6x16(kc, pa + p * kc * MR, pb + q * kc * NR, t + (q * mpt + mb0 / MR + p) * MR * NR, k0 == 0);
        }
    }
    if (!j->K) memset(t, 0, mpt * np * MR * NR * sizeof *t);
    for (size_t p = 0; p < mpt; p++) /* row after row of C */
        for (size_t i = 0; i < MR && p * MR + i < tmb; i++)
            for (size_t q = 0; q < np; q++) {
                const float *tt = t + (q * mpt + p) * MR * NR;
                size_t cols = nb - q * NR < NR ? nb - q * NR : NR;
                float *cr = j->c + (m0 + p * MR + i) * j->ldc + n0 + q * NR;
                const float *bi = j->bias ? j->bias + n0 + q * NR : NULL;
                if (cols == NR) { /* a whole row of the tile: the same additions, 8 lanes at a time */
                    for (size_t h = 0; h < NR; h += 8) {
                        __m256 v = _mm256_loadu_ps(tt + i * NR + h);
                        if (j->acc) v = _mm256_add_ps(_mm256_loadu_ps(cr + h), v);
                        else if (bi) v = _mm256_add_ps(v, _mm256_loadu_ps(bi + h));
                        _mm256_storeu_ps(cr + h, v);
                    }
                    continue;
                }
                if (j->acc)
                    for (size_t jj = 0; jj < cols; jj++) cr[jj] += tt[i * NR + jj];
                else
                    for (size_t jj = 0; jj < cols; jj++) cr[jj] = tt[i * NR + jj] + (bi ? bi[jj] : 0.0f);
            }
}

void se_tk_gemm(se_threadpool *tp, size_t M, size_t N, size_t K, const float *a, size_t ars, size_t acs, const float *b,
                size_t brs, size_t bcs, const float *bias, bool acc, float *c, size_t ldc, float *scratch) {
    if (!M || !N) return;
    if (se_kernels_get()->gemm == se_gemm_ref) {
        se_tk_gemm_ref(M, N, K, a, ars, acs, b, brs, bcs, bias, acc, c, ldc);
        return;
    }
    /* the largest blocks that still give every thread work (at least two
     * tasks each when the product allows): larger blocks pack less */
    size_t want = tp ? 2 * (size_t)se_threadpool_n_threads(tp) : 1, tm = TM, nb = NB;
    while (((M + tm - 1) / tm) * ((N + nb - 1) / nb) < want && (tm > MB || nb > NR)) {
        if (tm > MB && (tm >= nb || nb <= NR)) tm -= MB;
        else nb -= NR;
    }
    gemm_job j = {.M = M, .N = N, .K = K, .ars = ars, .acs = acs, .brs = brs, .bcs = bcs, .ldc = ldc, .tm = tm,
                  .nb = nb, .nbn = (N + nb - 1) / nb, .a = a, .b = b, .bias = bias, .acc = acc, .c = c,
                  .scratch = scratch};
    se_threadpool_run(tp, ((M + tm - 1) / tm) * j.nbn, gemm_block, &j);
}
