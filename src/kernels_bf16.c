/*
 * kernels_bf16.c - packing weights as bf16 for the bf16-weight GEMM (the
 * GEMM itself is in kernels_avx512.c; used when a model is loaded with
 * dtype bf16).
 *
 * Weights W (N, K) are rounded to bf16 (nearest even) at load: half the
 * memory and half the bytes streamed per product. Activations stay f32 and
 * the products accumulate in f32 with the same FMAs as the f32 kernel; the
 * weights are widened in registers, at the f32 rate (a shift and an AND per
 * 32 weights, on ports the FMAs do not use).
 *
 * The GEMM itself is the f32 kernel of kernels_avx512.c with a widening
 * weight load. Panels of 32 columns, K-major, the two 16-column halves
 * interleaved so one 64-byte load widens into both halves:
 *   packed[p][k][2 j]     = bf16(W[32 p + j][k])        (j < 16)
 *   packed[p][k][2 j + 1] = bf16(W[32 p + 16 + j][k])
 * A 32-bit lane holding (even, odd) gives the even column's f32 by a left
 * shift of 16 and the odd column's by clearing the low 16 bits. Every y
 * value is the same sequence of FMAs over k wherever it falls (batch
 * invariance).
 */
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#define NR 32

/* f32 -> bf16, round to nearest even (NaN kept quiet). Thread-safe. */
uint16_t se_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x7FFFFFu)) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

size_t se_pack_bf16_size(size_t N, size_t K) { return (N + NR - 1) / NR * NR * K; }

void se_pack_weights_bf16(const float *w, size_t N, size_t K, uint16_t *out) {
    size_t np = (N + NR - 1) / NR;
    for (size_t p = 0; p < np; p++)
        for (size_t k = 0; k < K; k++) {
            uint16_t *dst = out + (p * K + k) * NR;
            for (size_t j = 0; j < 16; j++) {
                size_t n0 = p * NR + j, n1 = p * NR + 16 + j;
                dst[2 * j] = n0 < N ? se_f32_to_bf16(w[n0 * K + k]) : 0;
                dst[2 * j + 1] = n1 < N ? se_f32_to_bf16(w[n1 * K + k]) : 0;
            }
        }
}
