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
 * The AVX2 kernel is BLIS-shaped. B is packed once per product into
 * shared panels of 16 columns (k-major, per K chunk of KC; a task per
 * panel), then the output is cut into tasks of at most MB rows (MB_AT for
 * an A^T; blocks as even as whole panels of 6 allow, a multiple of the
 * pool's threads; and groups of panels when the rows alone would leave a
 * thread idle): per K chunk a task packs its rows of A into panels of 6
 * (a row-major A is read in place, six rows at a time; an A^T's packing
 * also sums its rows when asked, se_tk_gemm_rowsum) and runs a 6 x 16
 * register tile (12 accumulators) over each pair of panels, keeping the
 * partial sums in its scratch between chunks (float, so the chain of FMAs
 * is the same as without chunks); the last chunk's whole tiles are stored
 * from the registers straight into C (edge tiles and a transposed C
 * through the stack), whose lines are prefetched while the tile
 * multiplies (as are the next panel of B's, a share per tile).
 * A C wider than tall over several chunks is computed as C^T = B^T A^T
 * (written back transposed), so the partial sums are the narrow side's.
 * Each operand is packed once at most, so packing costs at most
 * M K + K N moves against M N K multiply-adds. This file
 * is compiled with -mavx2 -mfma; the dispatcher calls the AVX2 kernel only
 * when the CPU has both.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "train/train_avx2.h"
#include "train/train_kernels.h"

#define MR 6
#define NR 16
#ifndef MB
#define MB 96 /* rows of A a task packs and multiplies (a multiple of MR) */
#endif
#ifndef MB_AT
#define MB_AT 288 /* the same for an A^T (a weight gradient's dy^T): B is then the activations,
                   * T x N, streamed once per block of rows, so larger blocks stream it fewer
                   * times (10-20% on a MiniLM step's weight gradients at 2048 tokens; 96-row
                   * blocks stay faster for the other products) */
#endif
#ifndef PG
#define PG 96 /* at most the panels of B a task keeps partial sums for (96 x 1536 floats: splitting
                 * them into groups to fit the L2 packs A once per group, and measured slower on
                 * every product of a MiniLM step; 16 cost the weight gradients 5-12%) */
#endif
#ifndef PF_ROWS
#define PF_ROWS 8 /* how many rows ahead pack_a_cols prefetches an A^T's source rows */
#endif
#ifndef KC
#define KC 384 /* at most the K chunk packed at once (K is cut into equal chunks) */
#endif

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

/* Where a whole tile of the last K chunk goes straight from the registers:
 * six rows of sixteen columns of C, ldc apart, stored (+ bias, or times
 * f's elements) or added (as tile_out does from the partial sums, so the
 * same bits). */
typedef struct tile_dst {
    float *c;
    size_t ldc;
    const float *bias; /* NULL: none */
    const float *f;    /* NULL: none; else C = the sums times f's elements (f laid out as C) */
    bool acc;
} tile_dst;

/* Row i of a tile from its two accumulators into o's C. */
static inline __attribute__((always_inline)) void out_row(const tile_dst *o, size_t i, __m256 lo, __m256 hi) {
    float *cr = o->c + i * o->ldc;
    if (o->acc) lo = _mm256_add_ps(_mm256_loadu_ps(cr), lo), hi = _mm256_add_ps(_mm256_loadu_ps(cr + 8), hi);
    else if (o->bias)
        lo = _mm256_add_ps(lo, _mm256_loadu_ps(o->bias)), hi = _mm256_add_ps(hi, _mm256_loadu_ps(o->bias + 8));
    else if (o->f) {
        const float *fr = o->f + i * o->ldc;
        lo = _mm256_mul_ps(lo, _mm256_loadu_ps(fr)), hi = _mm256_mul_ps(hi, _mm256_loadu_ps(fr + 8));
    }
    _mm256_storeu_ps(cr, lo), _mm256_storeu_ps(cr + 8, hi);
}

/* The 6 x 16 tile over kc steps, A's six values of step k at A_AT(i, k),
 * B's packed panel (kc, 16): the partial sums in t (6 x 16) are loaded
 * first unless first; the sums go to o's C when o is given, else to t.
 * One body for A packed (a panel of k-major sixes) and A read in place
 * (six rows of a row-major A: no copy; read in place, B's rows thousands
 * of floats apart measured slower than packing it). */
#define TILE_BODY(A_AT)                                                                                                \
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;                                                 \
    if (first) {                                                                                                       \
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();                   \
    } else {                                                                                                           \
        c00 = _mm256_loadu_ps(t), c01 = _mm256_loadu_ps(t + 8), c10 = _mm256_loadu_ps(t + 16);                         \
        c11 = _mm256_loadu_ps(t + 24), c20 = _mm256_loadu_ps(t + 32), c21 = _mm256_loadu_ps(t + 40);                  \
        c30 = _mm256_loadu_ps(t + 48), c31 = _mm256_loadu_ps(t + 56), c40 = _mm256_loadu_ps(t + 64);                  \
        c41 = _mm256_loadu_ps(t + 72), c50 = _mm256_loadu_ps(t + 80), c51 = _mm256_loadu_ps(t + 88);                  \
    }                                                                                                                  \
    _Pragma("GCC unroll 4") for (size_t k = 0; k < kc; k++, B += NR) {                                               \
        __m256 b0 = _mm256_loadu_ps(B), b1 = _mm256_loadu_ps(B + 8), a;                                                \
        a = _mm256_broadcast_ss(A_AT(0, k)), c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);    \
        a = _mm256_broadcast_ss(A_AT(1, k)), c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);    \
        a = _mm256_broadcast_ss(A_AT(2, k)), c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);    \
        a = _mm256_broadcast_ss(A_AT(3, k)), c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);    \
        a = _mm256_broadcast_ss(A_AT(4, k)), c40 = _mm256_fmadd_ps(a, b0, c40), c41 = _mm256_fmadd_ps(a, b1, c41);    \
        a = _mm256_broadcast_ss(A_AT(5, k)), c50 = _mm256_fmadd_ps(a, b0, c50), c51 = _mm256_fmadd_ps(a, b1, c51);    \
    }                                                                                                                  \
    if (o) {                                                                                                           \
        out_row(o, 0, c00, c01), out_row(o, 1, c10, c11), out_row(o, 2, c20, c21);                                     \
        out_row(o, 3, c30, c31), out_row(o, 4, c40, c41), out_row(o, 5, c50, c51);                                     \
        return;                                                                                                        \
    }                                                                                                                  \
    _mm256_storeu_ps(t, c00), _mm256_storeu_ps(t + 8, c01), _mm256_storeu_ps(t + 16, c10);                             \
    _mm256_storeu_ps(t + 24, c11), _mm256_storeu_ps(t + 32, c20), _mm256_storeu_ps(t + 40, c21);                      \
    _mm256_storeu_ps(t + 48, c30), _mm256_storeu_ps(t + 56, c31), _mm256_storeu_ps(t + 64, c40);                      \
    _mm256_storeu_ps(t + 72, c41), _mm256_storeu_ps(t + 80, c50), _mm256_storeu_ps(t + 88, c51);

/* The tile with A packed: A(i, k) at A[k MR + i]. */
static void tile6x16(size_t kc, const float *A, const float *B, float *t, bool first, const tile_dst *o) {
#define A_PACKED(i, k) (A + (k) * MR + (i))
    TILE_BODY(A_PACKED)
#undef A_PACKED
}

/* The tile with A read in place: A(i, k) at A[i ars + k], six rows. */
static void tile6x16_rows(size_t kc, const float *A, size_t ars, const float *B, float *t, bool first,
                          const tile_dst *o) {
    const float *a0 = A, *a1 = a0 + ars, *a2 = a1 + ars, *a3 = a2 + ars, *a4 = a3 + ars, *a5 = a4 + ars;
#define A_ROWS(i, k) (a##i + (k))
    TILE_BODY(A_ROWS)
#undef A_ROWS
}

/* pack_a for an A whose column k is row k of a (ars 1: a weight
 * gradient's dy^T): per k, the block's mb values side by side go six to
 * a panel. rs (NULL: none): rs[i] += A(m0 + i, k) for each k in order
 * (the bias gradient, the bits of the one-thread loop over dy's rows),
 * from the source row already in cache. The source row PF_ROWS ahead is
 * prefetched: each row is a new stream, and waiting for its first lines
 * had taken ~17% of a weight gradient's time (perf, one thread). */
static void pack_a_cols(const float *a, size_t acs, size_t m0, size_t mb, size_t k0, size_t kc, float *out, float *rs) {
    size_t full = mb / MR;
    float sum[MB_AT > MB ? MB_AT : MB];
    if (rs) memcpy(sum, rs, mb * sizeof *sum);
    for (size_t k = 0; k < kc; k++) {
        const float *src = a + m0 + (k0 + k) * acs;
        float *o = out + k * MR;
        if (k + PF_ROWS < kc) /* a row PF_ROWS ahead, line by line: each row starts a new stream */
            for (size_t i = 0; i < mb; i += 16) _mm_prefetch((const char *)(src + PF_ROWS * acs + i), _MM_HINT_T0);
        for (size_t p = 0; p < full; p++) {
            _mm_storeu_ps(o + p * kc * MR, _mm_loadu_ps(src + p * MR));
            memcpy(o + p * kc * MR + 4, src + p * MR + 4, 2 * sizeof(float)); /* one 8-byte move */
        }
        if (full * MR < mb)
            for (size_t i = 0; i < MR; i++) o[full * kc * MR + i] = full * MR + i < mb ? src[full * MR + i] : 0.0f;
        if (rs) {
            size_t i = 0;
            for (; i + 8 <= mb; i += 8) _mm256_storeu_ps(sum + i, _mm256_add_ps(_mm256_loadu_ps(src + i), _mm256_loadu_ps(sum + i)));
            for (; i < mb; i++) sum[i] += src[i];
        }
    }
    if (rs) memcpy(rs, sum, mb * sizeof *sum);
}

/* Packs rows m0 .. m0 + mb and k0 .. k0 + kc of A into panels of MR rows
 * (zeros past M): panel p holds A(m0 + p MR + i, k0 + k) at [k MR + i]. */
static void pack_a(const float *a, size_t ars, size_t acs, size_t m0, size_t mb, size_t k0, size_t kc, float *out) {
    for (size_t p = 0; p < mb; p += MR, out += kc * MR) {
        size_t r = mb - p < MR ? mb - p : MR;
        const float *src = a + (m0 + p) * ars + k0 * acs;
        if (acs == 1 && r == MR) {
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
    __m256 r[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(in + (size_t)i * ldi);
    se_tk_transpose8_store(r, out, ldo);
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

/* A GEMM split over the pool: B packed once into shared panels, then a
 * task per block of rows (nrb blocks of at most MB; and, when the rows
 * alone would leave a thread idle, per group of B's panels); rs: the row
 * sums' destination (NULL: none). */
typedef struct gemm_job {
    size_t M, N, K, kcs, ars, acs, brs, bcs, ldc, np, npg, ng, mpt_max, nrb, mbx; /* mbx: MB or MB_AT */
    const float *a, *b, *bias, *f; /* f: C = A B times f's elements (f laid out as C; NULL: none) */
    bool acc, ct; /* ct: C is written transposed, element (m, n) at c[n ldc + m] */
    float *c, *bp, *scratch, *rs, *cs; /* cs: B's column sums (NULL: none) */
} gemm_job;

/* Packs panel q of B, every K chunk, into the shared panels: chunk k0's
 * panel q sits at bp + k0 Np + q kc NR (Np: N rounded up to NR). With
 * cs, also adds each of the panel's columns into cs, k in order, from the
 * panel just packed (the same values, so the bits of se_tk_rowsum_ref over
 * B^T). */
static void pack_b_task(void *arg, size_t q, int thread) {
    (void)thread;
    const gemm_job *j = arg;
    size_t np16 = j->np * NR, n0 = q * NR, nb = j->N - n0 < NR ? j->N - n0 : NR;
    float sum[NR];
    if (j->cs) memcpy(sum, j->cs + n0, nb * sizeof *sum);
    for (size_t k0 = 0; k0 < j->K; k0 += j->kcs) {
        size_t kc = j->K - k0 < j->kcs ? j->K - k0 : j->kcs;
        float *out = j->bp + k0 * np16 + q * kc * NR;
        pack_b(j->b, j->brs, j->bcs, n0, nb, k0, kc, out);
        if (!j->cs) continue;
        if (nb == NR) {
            __m256 s0 = _mm256_loadu_ps(sum), s1 = _mm256_loadu_ps(sum + 8);
            for (size_t k = 0; k < kc; k++)
                s0 = _mm256_add_ps(s0, _mm256_loadu_ps(out + k * NR)), s1 = _mm256_add_ps(s1, _mm256_loadu_ps(out + k * NR + 8));
            _mm256_storeu_ps(sum, s0), _mm256_storeu_ps(sum + 8, s1);
        } else
            for (size_t k = 0; k < kc; k++)
                for (size_t jj = 0; jj < nb; jj++) sum[jj] += out[k * NR + jj];
    }
    if (j->cs) memcpy(j->cs + n0, sum, nb * sizeof *sum);
}

/* Writes a finished 6 x 16 tile of sums into C rows r0.., columns n0..:
 * the rows < rows and columns < cols that exist, stored (+ bias, or times
 * f's elements) or added. */
static inline void tile_out(const float *t, const gemm_job *j, size_t r0, size_t n0, size_t rows, size_t cols) {
    const float *bi = j->bias ? j->bias + n0 : NULL, *fr = NULL;
    if (j->ct) { /* no bias: column n of the tile is row n0 + n of C */
        for (size_t jj = 0; jj < cols; jj++) {
            float *cr = j->c + (n0 + jj) * j->ldc + r0;
            if (j->acc)
                for (size_t i = 0; i < rows; i++) cr[i] += t[i * NR + jj];
            else
                for (size_t i = 0; i < rows; i++) cr[i] = t[i * NR + jj];
        }
        return;
    }
    for (size_t i = 0; i < rows; i++) {
        float *cr = j->c + (r0 + i) * j->ldc + n0;
        const float *tt = t + i * NR;
        if (j->f) fr = j->f + (r0 + i) * j->ldc + n0;
        if (cols == NR) { /* the same operations, 8 lanes at a time */
            for (size_t h = 0; h < NR; h += 8) {
                __m256 v = _mm256_loadu_ps(tt + h);
                if (j->acc) v = _mm256_add_ps(_mm256_loadu_ps(cr + h), v);
                else if (bi) v = _mm256_add_ps(v, _mm256_loadu_ps(bi + h));
                else if (fr) v = _mm256_mul_ps(v, _mm256_loadu_ps(fr + h));
                _mm256_storeu_ps(cr + h, v);
            }
            continue;
        }
        if (j->acc)
            for (size_t jj = 0; jj < cols; jj++) cr[jj] += tt[jj];
        else if (fr)
            for (size_t jj = 0; jj < cols; jj++) cr[jj] = tt[jj] * fr[jj];
        else
            for (size_t jj = 0; jj < cols; jj++) cr[jj] = tt[jj] + (bi ? bi[jj] : 0.0f);
    }
}

/* Prefetches the lines of C a tile of rows x cols at (r0, n0) writes: the
 * first and last float of each of its rows in C (columns when ct), and of
 * the factors f it multiplies by. Always
 * inlined: GCC 12 finds a function of prefetches alone "pure" and drops
 * the call (objdump showed none of its prefetches). */
static inline __attribute__((always_inline)) void prefetch_c(const gemm_job *j, size_t r0, size_t n0, size_t rows, size_t cols) {
    size_t lines = j->ct ? cols : rows, len = j->ct ? rows : cols;
    const float *c0 = j->ct ? j->c + n0 * j->ldc + r0 : j->c + r0 * j->ldc + n0;
    for (size_t i = 0; i < lines; i++) {
        _mm_prefetch((const char *)(c0 + i * j->ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c0 + i * j->ldc + len - 1), _MM_HINT_T0);
    }
    if (j->f) /* the factors, laid out as C (never transposed): read from memory in the store, they
               * had cost the product ~20% (dx W2 times GELU's factor: ~126 against ~101 ms a step) */
        for (size_t i = 0; i < rows; i++) {
            const float *f0 = j->f + (r0 + i) * j->ldc + n0;
            _mm_prefetch((const char *)f0, _MM_HINT_T0);
            _mm_prefetch((const char *)(f0 + cols - 1), _MM_HINT_T0);
        }
}

/* One task: row block task / ng of C (the M rows' panels of MR cut into
 * nrb blocks of at most mbx rows, as even as whole panels allow) and panel
 * group g of B. Per K chunk the rows of A are packed (or read in place)
 * and multiplied into the tiles' partial sums (the thread's scratch); the
 * last chunk's tiles go straight to C. */
static void gemm_rows(void *arg, size_t task, int thread) {
    const gemm_job *j = arg;
    size_t rb = task / j->ng, g = task % j->ng, P = (j->M + MR - 1) / MR;
    size_t m0 = rb * P / j->nrb * MR, m1 = (rb + 1) * P / j->nrb * MR;
    size_t mb = (m1 < j->M ? m1 : j->M) - m0, mp = (mb + MR - 1) / MR;
    size_t q0 = g * j->npg, q1 = q0 + j->npg < j->np ? q0 + j->npg : j->np, np16 = j->np * NR;
    float *pa = j->scratch + (size_t)thread * (j->mbx * KC + j->mpt_max), *t = pa + j->mbx * KC;
    float out[MR * NR];
    if (!j->K) {
        memset(out, 0, sizeof out);
        for (size_t q = q0; q < q1; q++)
            for (size_t p = 0; p < mp; p++) {
                size_t n0 = q * NR, rows = mb - p * MR < MR ? mb - p * MR : MR;
                tile_out(out, j, m0 + p * MR, n0, rows, j->N - n0 < NR ? j->N - n0 : NR);
            }
        return;
    }
    /* A row-major: its whole panels of six rows are read in place, a last
     * short panel packed (zero rows past M) */
    bool a_rows = j->acs == 1;
    size_t full = a_rows ? mb / MR : 0;
    for (size_t k0 = 0; k0 < j->K; k0 += j->kcs) {
        size_t kc = j->K - k0 < j->kcs ? j->K - k0 : j->kcs;
        bool first = k0 == 0, last = k0 + kc == j->K;
        if (j->ars == 1 && !a_rows) /* A^T; the first panel group sums the rows too */
            pack_a_cols(j->a, j->acs, m0, mb, k0, kc, pa, j->rs && g == 0 ? j->rs + m0 : NULL);
        else if (!a_rows) pack_a(j->a, j->ars, j->acs, m0, mb, k0, kc, pa);
        else if (full < mp) pack_a(j->a, j->ars, j->acs, m0 + full * MR, mb - full * MR, k0, kc, pa + full * kc * MR);
        for (size_t q = q0; q < q1; q++) {
            size_t n0 = q * NR, cols = j->N - n0 < NR ? j->N - n0 : NR;
            const float *bq = j->bp + k0 * np16 + q * kc * NR;
            for (size_t p = 0; p < mp; p++) {
                /* a single chunk's tile goes through the stack; the others'
                 * partial sums stay in t, the last chunk's read from there */
                float *dst = first && last ? out : t + ((q - q0) * mp + p) * MR * NR;
                if (q + 1 < q1) { /* the next panel of B into L1, a share of its lines per tile */
                    size_t lines = kc * NR / 16, l0 = p * lines / mp, l1 = (p + 1) * lines / mp;
                    for (size_t l = l0; l < l1; l++) _mm_prefetch((const char *)(bq + kc * NR + l * 16), _MM_HINT_T0);
                }
                size_t rows = mb - p * MR < MR ? mb - p * MR : MR;
                if (last) prefetch_c(j, m0 + p * MR, n0, rows, cols); /* C's part of this tile, while it multiplies */
                /* a whole tile of the last chunk (C not transposed) is
                 * written from the registers; the others through tile_out */
                tile_dst od = {j->c + (m0 + p * MR) * j->ldc + n0, j->ldc, j->bias ? j->bias + n0 : NULL,
                               j->f ? j->f + (m0 + p * MR) * j->ldc + n0 : NULL, j->acc};
                const tile_dst *o = last && !j->ct && rows == MR && cols == NR ? &od : NULL;
                if (p < full)
                    tile6x16_rows(kc, j->a + (m0 + p * MR) * j->ars + k0, j->ars, bq, dst, first, o);
                else tile6x16(kc, pa + p * kc * MR, bq, dst, first, o);
                if (last && !o) tile_out(dst, j, m0 + p * MR, n0, rows, cols);
            }
        }
    }
}

/* Floats of B's shared panels for K x N. */
static size_t b_panels(size_t K, size_t N) {
    return K * ((N + NR - 1) / NR) * NR;
}

size_t se_tk_gemm_scratch(int n_threads, size_t K, size_t N) {
    size_t nt = (size_t)(n_threads > 1 ? n_threads : 1), np16 = ((N + NR - 1) / NR) * NR;
    size_t mb = MB_AT > MB ? MB_AT : MB;
    return b_panels(K, N) + nt * (mb * KC + mb * np16) + 16;
}

/* The one driver of every entry point below (defined after them). */
static void gemm_run(se_threadpool *tp, size_t M, size_t N, size_t K, const float *a, size_t ars, size_t acs,
                     const float *b, size_t brs, size_t bcs, const float *bias, bool acc, float *c, size_t ldc,
                     float *rs, const float *f, float *scratch);

void se_tk_gemm(se_threadpool *tp, size_t M, size_t N, size_t K, const float *a, size_t ars, size_t acs, const float *b,
                size_t brs, size_t bcs, const float *bias, bool acc, float *c, size_t ldc, float *scratch) {
    se_tk_gemm_rowsum(tp, M, N, K, a, ars, acs, b, brs, bcs, bias, acc, c, ldc, NULL, scratch);
}

void se_tk_gemm_mul_ref(size_t M, size_t N, size_t K, const float *a, size_t ars, size_t acs, const float *b, size_t brs,
                        size_t bcs, const float *f, float *c, size_t ldc) {
    se_tk_gemm_ref(M, N, K, a, ars, acs, b, brs, bcs, NULL, false, c, ldc);
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < N; n++) c[m * ldc + n] *= f[m * ldc + n];
}

void se_tk_gemm_mul(se_threadpool *tp, size_t M, size_t N, size_t K, const float *a, size_t ars, size_t acs,
                    const float *b, size_t brs, size_t bcs, const float *f, float *c, size_t ldc, float *scratch) {
    gemm_run(tp, M, N, K, a, ars, acs, b, brs, bcs, NULL, false, c, ldc, NULL, f, scratch);
}

void se_tk_rowsum_ref(size_t M, size_t K, const float *a, size_t ars, size_t acs, float *rs) {
    for (size_t m = 0; m < M; m++)
        for (size_t k = 0; k < K; k++) rs[m] += a[m * ars + k * acs];
}

void se_tk_gemm_rowsum(se_threadpool *tp, size_t M, size_t N, size_t K, const float *a, size_t ars, size_t acs,
                       const float *b, size_t brs, size_t bcs, const float *bias, bool acc, float *c, size_t ldc,
                       float *rs, float *scratch) {
    gemm_run(tp, M, N, K, a, ars, acs, b, brs, bcs, bias, acc, c, ldc, rs, NULL, scratch);
}

/* se_tk_gemm_rowsum, and with f (not with bias, acc or rs) se_tk_gemm_mul. */
static void gemm_run(se_threadpool *tp, size_t M, size_t N, size_t K, const float *a, size_t ars, size_t acs,
                     const float *b, size_t brs, size_t bcs, const float *bias, bool acc, float *c, size_t ldc,
                     float *rs, const float *f, float *scratch) {
    if (!M) return;
    bool ref = se_kernels_get()->gemm == se_gemm_ref;
    /* partial sums kept across K chunks for a C wider than tall (a weight
     * gradient dw (384, 1536) over 2048 tokens): C^T = B^T A^T instead, so
     * a task's partial sums and B's panels are the narrow side's (96 x 384
     * floats, not 96 x 1536, which left the L2). Each element is the same
     * chain of FMAs; C is written transposed, the row sums of A become the
     * column sums of the new B, taken as it is packed. */
    bool ct = !ref && !bias && !f && N > M && K > KC;
    /* the sums ride on the packing of an A^T with K > 0 (or of B when
     * transposed); any other A (or no output columns, or the reference
     * kernels) sums apart */
    if (rs && (ref || !N || !K || (!ct && (ars != 1 || acs == 1)))) {
        se_tk_rowsum_ref(M, K, a, ars, acs, rs);
        rs = NULL;
    }
    if (!N) return;
    if (ref) {
        if (f) se_tk_gemm_mul_ref(M, N, K, a, ars, acs, b, brs, bcs, f, c, ldc);
        else se_tk_gemm_ref(M, N, K, a, ars, acs, b, brs, bcs, bias, acc, c, ldc);
        return;
    }
    float *cs = NULL;
    if (ct) { /* A' = B^T, B' = A^T: the sizes and the strides trade places */
        size_t t;
        const float *p;
        t = M, M = N, N = t;
        t = ars, ars = bcs, bcs = t;
        t = acs, acs = brs, brs = t;
        p = a, a = b, b = p;
        cs = rs, rs = NULL;
    }
    /* row blocks: at most MB rows each (MB_AT for an A^T); on a pool, a multiple of its
     * threads when there are panels enough, so no thread waits on a
     * short last block (2048 rows on 2 threads: 22 blocks of 90 or 96, not 21
     * of 96 and one of 32) */
    size_t mbx = ars == 1 && acs != 1 ? MB_AT : MB;
    size_t np = (N + NR - 1) / NR, P = (M + MR - 1) / MR, nrb = (P + mbx / MR - 1) / (mbx / MR);
    size_t nt = tp ? (size_t)se_threadpool_n_threads(tp) : 1;
    if (nt > 1 && (nrb + nt - 1) / nt * nt <= P) nrb = (nrb + nt - 1) / nt * nt;
    /* B's panels, then each thread's A block and partial sums (rows of mbx
     * by every panel of its group) */
    gemm_job j = {.M = M, .N = N, .K = K, .ars = ars, .acs = acs, .brs = brs, .bcs = bcs, .ldc = ldc, .np = np,
                  .npg = np, .ng = 1, .nrb = nrb, .a = a, .b = b, .bias = bias, .f = f, .acc = acc, .ct = ct, .c = c,
                  .bp = scratch, .rs = rs, .cs = cs};
    /* too few row blocks to give every thread two tasks: split the panels */
    size_t want = tp ? 2 * nt : 1;
    if (nrb < want) {
        size_t ng = (want + nrb - 1) / nrb;
        j.npg = (np + ng - 1) / ng;
        j.ng = (np + j.npg - 1) / j.npg;
    }
    size_t nch = (K + KC - 1) / KC; /* equal chunks of at most KC, a multiple of 8 */
    j.kcs = nch ? ((K + nch - 1) / nch + 7) / 8 * 8 : KC;
    j.kcs = j.kcs > KC ? KC : j.kcs;
    /* partial sums kept between chunks: at most PG panels a task, so a very
     * wide product's stay near the core (A's rows are then packed once per
     * group) */
    if (nch > 1 && j.npg > PG) {
        size_t ng = j.ng * ((j.npg + PG - 1) / PG);
        j.npg = (np + ng - 1) / ng;
        j.ng = (np + j.npg - 1) / j.npg;
    }
    j.mbx = mbx;
    j.mpt_max = mbx * j.npg * NR;
    j.scratch = scratch + b_panels(K, N);
    if (K) {
        if (tp) se_threadpool_run(tp, np, pack_b_task, &j);
        else
            for (size_t q = 0; q < np; q++) pack_b_task(&j, q, 0);
    }
    if (tp) se_threadpool_run(tp, nrb * j.ng, gemm_rows, &j);
    else
        for (size_t t = 0; t < nrb * j.ng; t++) gemm_rows(&j, t, 0);
}
