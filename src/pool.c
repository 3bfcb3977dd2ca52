/*
 * pool.c - sentence-transformers' Pooling module over one sentence.
 *
 * Modes, concatenated in this order when several are on (Pooling.forward):
 *   cls            token 0 (taken even when the prompt is masked out)
 *   max            element-wise max over unmasked tokens (masked ones
 *                  count as -1e9, so an all-masked sentence gives -1e9)
 *   mean           sum over unmasked tokens / max(count, 1e-9)
 *   mean_sqrt_len  sum / sqrt(count)
 *   weightedmean   weights are positions 1..T: sum(w x) / max(sum w, 1e-9)
 *   lasttoken      the last unmasked token (zeros when all are masked)
 * "Unmasked" means positions >= first: with include_prompt = false the
 * prompt's tokens (and [CLS]) are masked, as sentence-transformers does by
 * zeroing attention_mask[:prompt_length] for pooling only.
 */
#include <math.h>
#include <string.h>

#include "model.h"

void se_pool(uint32_t modes, const float *x, size_t T, size_t H, size_t first, float *out) {
    size_t cnt = T > first ? T - first : 0;
    if (modes & SE_POOL_CLS) {
        if (T) memcpy(out, x, H * sizeof *out);
        else memset(out, 0, H * sizeof *out);
        out += H;
    }
    if (modes & SE_POOL_MAX) {
        for (size_t i = 0; i < H; i++) out[i] = -1e9f;
        for (size_t t = first; t < T; t++)
            for (size_t i = 0; i < H; i++) out[i] = x[t * H + i] > out[i] ? x[t * H + i] : out[i];
        out += H;
    }
    if (modes & (SE_POOL_MEAN | SE_POOL_MEAN_SQRT_LEN)) {
        float *sum = out;
        for (size_t i = 0; i < H; i++) sum[i] = 0.0f;
        for (size_t t = first; t < T; t++)
            for (size_t i = 0; i < H; i++) sum[i] += x[t * H + i];
        float n = (float)cnt;
        if (modes & SE_POOL_MEAN) {
            float d = n > 1e-9f ? n : 1e-9f;
            if (modes & SE_POOL_MEAN_SQRT_LEN) {
                float sq = sqrtf(n > 1e-9f ? n : 1e-9f);
                for (size_t i = 0; i < H; i++) out[H + i] = sum[i] / sq;
            }
            for (size_t i = 0; i < H; i++) out[i] = sum[i] / d;
            out += (modes & SE_POOL_MEAN_SQRT_LEN) ? 2 * H : H;
        } else {
            float sq = sqrtf(n > 1e-9f ? n : 1e-9f);
            for (size_t i = 0; i < H; i++) out[i] = sum[i] / sq;
            out += H;
        }
    }
    if (modes & SE_POOL_WEIGHTED_MEAN) {
        float wsum = 0.0f;
        for (size_t i = 0; i < H; i++) out[i] = 0.0f;
        for (size_t t = first; t < T; t++) {
            float w = (float)(t + 1);
            wsum += w;
            for (size_t i = 0; i < H; i++) out[i] += w * x[t * H + i];
        }
        float d = wsum > 1e-9f ? wsum : 1e-9f;
        for (size_t i = 0; i < H; i++) out[i] /= d;
        out += H;
    }
    if (modes & SE_POOL_LAST_TOKEN) {
        if (cnt) memcpy(out, x + (T - 1) * H, H * sizeof *out);
        else memset(out, 0, H * sizeof *out);
    }
}
