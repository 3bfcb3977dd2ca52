/*
 * vec_dist.h - distance kernels for the vector index and the similarity
 * utilities: inner product and squared L2 over float32 vectors, each with a
 * scalar reference twin that tests compare the fast version against.
 */
#ifndef SE_VEC_DIST_H
#define SE_VEC_DIST_H

#include <stddef.h>

typedef float (*se_vdist_fn)(const float *a, const float *b, size_t n);

/* sum a[i] * b[i]. Reference: float accumulation in 16 interleaved lanes,
 * added pairwise; the AVX-512 version keeps two 16-lane accumulators, so
 * the two agree to rounding, not bit for bit. */
float se_vdot_ref(const float *a, const float *b, size_t n);
float se_vdot_avx512(const float *a, const float *b, size_t n);

/* sum (a[i] - b[i])^2. */
float se_vl2sq_ref(const float *a, const float *b, size_t n);
float se_vl2sq_avx512(const float *a, const float *b, size_t n);

/* The dispatched pair: AVX-512 when the CPU has it (and SE_KERNELS does
 * not cap it), else the reference. Resolved once; thread-safe. */
typedef struct se_vdist {
    se_vdist_fn dot;
    se_vdist_fn l2sq;
} se_vdist;
const se_vdist *se_vdist_get(void);

#endif
