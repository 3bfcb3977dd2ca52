/*
 * train/train_drop_avx2.c - dropout's factors eight elements at a time:
 * the counter-based draw of se_tk_drop_u24 (splitmix64's finaliser) in
 * 64-bit lanes, its multiplications by constants built from 32 x 32-bit
 * products (AVX2 has no 64-bit multiply), so each element gets exactly
 * the scalar draw's bits and factor (tests/test_train_kernels.c compares
 * them). Compiled with -mavx2; called only when the CPU has it.
 */
#include <immintrin.h>
#include <stdint.h>

#include "train/train_kernels.h"

/* a * c mod 2^64 per 64-bit lane, c given as its low and high 32-bit
 * halves (each in the low half of every lane). */
static inline __m256i mul64(__m256i a, __m256i clo, __m256i chi) {
    __m256i lo = _mm256_mul_epu32(a, clo);
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), clo), _mm256_mul_epu32(a, chi));
    return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
}

/* The 24-bit draws of four elements (z: key ^ (site << 48) ^ e per lane). */
static inline __m256i draw4(__m256i z) {
    const __m256i g = _mm256_set1_epi64x((long long)0x9E3779B97F4A7C15ull);
    const __m256i c1lo = _mm256_set1_epi64x(0x1CE4E5B9ll), c1hi = _mm256_set1_epi64x(0xBF58476Dll);
    const __m256i c2lo = _mm256_set1_epi64x(0x133111EBll), c2hi = _mm256_set1_epi64x(0x94D049BBll);
    z = _mm256_add_epi64(z, g);
    z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), c1lo, c1hi);
    z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), c2lo, c2hi);
    z = _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
    return _mm256_srli_epi64(z, 40);
}

void se_tk_drop_mul_avx2(const se_tk_drop *d, uint64_t e0, const float *src, float *dst, size_t n) {
    uint64_t base = d->key ^ (d->site << 48);
    const __m256i thr = _mm256_set1_epi32((int)d->thr);
    const __m256 inv = _mm256_set1_ps(d->inv);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t e = d->base + e0 + i;
        /* even elements in one vector, odd in the other: their draws
         * interleave back into element order as 32-bit lanes */
        __m256i ev = _mm256_set_epi64x((long long)(e + 6), (long long)(e + 4), (long long)(e + 2), (long long)e);
        __m256i od = _mm256_add_epi64(ev, _mm256_set1_epi64x(1));
        __m256i b = _mm256_set1_epi64x((long long)base);
        __m256i u = _mm256_blend_epi32(draw4(_mm256_xor_si256(b, ev)), _mm256_slli_epi64(draw4(_mm256_xor_si256(b, od)), 32),
                                       0xAA);
        __m256 drop = _mm256_castsi256_ps(_mm256_cmpgt_epi32(thr, u)); /* draw < thr: zeroed */
        _mm256_storeu_ps(dst + i, _mm256_mul_ps(_mm256_loadu_ps(src + i), _mm256_andnot_ps(drop, inv)));
    }
    for (; i < n; i++) dst[i] = src[i] * se_tk_drop_at(d, e0 + i);
}
