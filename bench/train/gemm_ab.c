/*
 * bench/train/gemm_ab.c - two builds of the training GEMM (src/train/train_gemm.c) in one
 * process, called alternately on the same operands: the ratio of each pair of calls, so a
 * change of a few percent shows through this VM's minute-to-minute swings of speed (whole
 * runs minutes apart differ by more than the change). gemm_ab.sh compiles the two builds
 * with their entry points renamed v1_* and v2_* and links them here.
 *
 *   gemm_ab M N K ars acs brs bcs acc [pairs] [rowsum]
 *
 * C (M, N) = A (M, K) B (K, N) as se_tk_gemm_rowsum takes them (A(m, k) = a[m ars + k acs],
 * B(k, n) = b[k brs + n bcs]; acc: added into C; rowsum: A's row sums too). COLD=1 writes
 * 64 MiB between calls, so the operands come from memory as in a training step; NT threads
 * (default 2). Prints each build's median GFLOP/s and the median of v1 time / v2 time (with
 * its quartiles): above 1, v2 is faster.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "threadpool.h"

#define GEMM_ARGS                                                                                                      \
    se_threadpool *, size_t, size_t, size_t, const float *, size_t, size_t, const float *, size_t, size_t,             \
        const float *, bool, float *, size_t, float *, float *
void v1_gemm_rowsum(GEMM_ARGS);
void v2_gemm_rowsum(GEMM_ARGS);
size_t v1_gemm_scratch(int, size_t, size_t);
size_t v2_gemm_scratch(int, size_t, size_t);

#define MAX_PAIRS 400

/* Monotonic seconds. */
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* n floats in [-0.5, 0.5). */
static float *rnd(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; p && i < n; i++) p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

/* qsort's order of doubles. */
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 9) {
        fprintf(stderr, "usage: gemm_ab M N K ars acs brs bcs acc [pairs] [rowsum] (built by gemm_ab.sh)\n");
        return 2;
    }
    size_t M = strtoul(argv[1], NULL, 10), N = strtoul(argv[2], NULL, 10), K = strtoul(argv[3], NULL, 10);
    size_t ars = strtoul(argv[4], NULL, 10), acs = strtoul(argv[5], NULL, 10), brs = strtoul(argv[6], NULL, 10);
    size_t bcs = strtoul(argv[7], NULL, 10);
    bool acc = atoi(argv[8]) != 0, rowsum = argc > 10 && atoi(argv[10]) != 0;
    int pairs = argc > 9 ? atoi(argv[9]) : 30, nt = getenv("NT") ? atoi(getenv("NT")) : 2;
    if (pairs < 1 || pairs > MAX_PAIRS || !M || !N || !K) {
        fprintf(stderr, "gemm_ab: pairs 1..%d and M, N, K > 0\n", MAX_PAIRS);
        return 2;
    }
    se_threadpool *tp = nt > 1 ? se_threadpool_new(nt) : NULL;
    size_t wide = N > M ? N : M, s1 = v1_gemm_scratch(nt, K, wide), s2 = v2_gemm_scratch(nt, K, wide);
    float *a = rnd(M * K), *b = rnd(K * N), *c = rnd(M * N), *rs = rnd(M);
    float *scr = malloc((s1 > s2 ? s1 : s2) * sizeof *scr);
    size_t junk_n = (size_t)64 << 20;
    char *junk = malloc(junk_n);
    if (!a || !b || !c || !rs || !scr || !junk || (nt > 1 && !tp)) return 1;
    bool cold = getenv("COLD") && strcmp(getenv("COLD"), "0");
    void (*f[2])(GEMM_ARGS) = {v1_gemm_rowsum, v2_gemm_rowsum};
    static double t[2][MAX_PAIRS], ratio[MAX_PAIRS];
    for (int r = 0; r < pairs; r++)
        for (int i = 0; i < 2; i++) {
            int v = r & 1 ? 1 - i : i; /* each build goes first in half the pairs */
            if (cold) memset(junk, r, junk_n);
            double t0 = now();
            f[v](tp, M, N, K, a, ars, acs, b, brs, bcs, NULL, acc, c, N, rowsum ? rs : NULL, scr);
            t[v][r] = now() - t0;
        }
    for (int r = 0; r < pairs; r++) ratio[r] = t[0][r] / t[1][r];
    qsort(ratio, (size_t)pairs, sizeof *ratio, cmp_d);
    qsort(t[0], (size_t)pairs, sizeof *t[0], cmp_d);
    qsort(t[1], (size_t)pairs, sizeof *t[1], cmp_d);
    double gf = 2.0 * (double)M * (double)N * (double)K * 1e-9;
    printf("%5zu %5zu %5zu acc %d: v1 %6.1f GFLOP/s, v2 %6.1f GFLOP/s, v1/v2 time %.3f [quartiles %.3f %.3f]\n", M, N,
           K, acc, gf / t[0][pairs / 2], gf / t[1][pairs / 2], ratio[pairs / 2], ratio[pairs / 4], ratio[3 * pairs / 4]);
    free(a), free(b), free(c), free(rs), free(scr), free(junk);
    se_threadpool_free(tp);
    return 0;
}
