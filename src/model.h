/*
 * model.h - the loaded model: the types shared by the model modules
 * (model.c, model_weights.c, model_gemm.c, model_blocks.c), the
 * architectures (src/models/) and encode.c.
 *
 * Layers, from the bottom:
 *   model_folder.c   the folder's JSON files -> se_folder_cfg (picks the
 *                    architecture from the table in models/models.c)
 *   model_weights.c  checkpoint files, tensor lookup and binding
 *   model_gemm.c     GEMM weight packing and the parallel GEMM
 *   model_blocks.c   the building blocks of post-LN encoders (embeddings,
 *                    attention, FFN, LayerNorm)
 *   models/NAME.c    one file per architecture: config, binding, forward
 *   model.c          the public API: load, free, info, fingerprint
 *
 * Legend (used in every shape comment):
 *   T  tokens in a forward pass (all sentences packed, no padding)
 *   S  sentences in a forward pass
 *   H  hidden size, NH heads, HD = H / NH head size
 *   FF intermediate size, V vocabulary, P positions, L layers
 */
#ifndef SE_MODEL_H
#define SE_MODEL_H

#include <pthread.h>
#include <stdint.h>

#include "model_folder.h"
#include "safetensors.h"
#include "sembed.h"
#include "threadpool.h"

/* One post-LN encoder layer (BERT, XLM-R, MPNet): the tensors of the
 * checkpoint, bound in place or converted (model_weights.c). */
typedef struct se_layer_w {
    const float *qkv_w, *qkv_b; /* (3H, H), (3H): query, key, value fused (owned copy) */
    const float *q_w, *q_b;     /* (H, H), (H) */
    const float *k_w, *k_b;     /* (H, H), (H) */
    const float *v_w, *v_b;     /* (H, H), (H) */
    const float *o_w, *o_b;     /* (H, H), (H)   attention output dense */
    const float *ln1_g, *ln1_b; /* (H)           attention output LayerNorm */
    const float *ff1_w, *ff1_b; /* (FF, H), (FF) intermediate dense */
    const float *ff2_w, *ff2_b; /* (H, FF), (H)  output dense */
    const float *ln2_g, *ln2_b; /* (H)           output LayerNorm */
} se_layer_w;

/* A matrix packed for the int8 GEMM. */
typedef struct se_int8_pack {
    int8_t *w;       /* se_pack_int8_size(N, K) bytes */
    float *scale;    /* (N rounded up to 32) per-column scales */
    int32_t *colsum; /* (N rounded up to 32) per-column sums of the int8 weights */
} se_int8_pack;

/* A GEMM weight matrix w: (N, K) of the model, for packing. */
typedef struct se_gemm_mat {
    const float *w;
    size_t N, K;
} se_gemm_mat;

/* A mapped tensor nothing reads once the matrices are packed. */
typedef struct se_spent {
    const float *w;
    size_t nbytes;
} se_spent;

/* A Dense module's weights. */
typedef struct se_dense_w {
    const float *w; /* (out, in) */
    const float *b; /* (out) or NULL */
} se_dense_w;

/* A cross-encoder's sequence-classification head (model_head.c). */
typedef struct se_head_w {
    const float *dense_w, *dense_b; /* (H, H), (H) */
    const float *out_w, *out_b;     /* (n_labels, H), (n_labels) */
} se_head_w;

/* The model's fingerprint, made on first request (hashing every weight
 * byte costs ~0.5 ms per MB, which a plain encode should not pay at load).
 * Behind a pointer so that a const model can fill it; the lock makes the
 * first request thread-safe. */
typedef struct se_fingerprint_cache {
    pthread_mutex_t lock;
    bool done;
    char text[SE_FINGERPRINT_MAX];
} se_fingerprint_cache;

struct se_model {
    se_folder_cfg cfg;
    se_tokenizer *tok;
    se_st_file *files;       /* the transformer checkpoint (1 or more shards) */
    size_t n_files;
    se_st_file *dense_files; /* one per stage (unused for Normalize) */
    float **owned;           /* converted or realigned tensors */
    size_t n_owned;
    se_dtype wdtype;
    const float *word_emb;   /* (V, H) */
    const float *pos_emb;    /* (P, H) */
    const float *type_emb;   /* (n_type, H) or NULL */
    const float *emb_ln_g, *emb_ln_b; /* (H) */
    se_layer_w *layers;      /* (L) post-LN encoder layers (BERT, XLM-R, MPNet) */
    void *arch_w;            /* the architecture's own weights (one flat allocation, se_free'd) */
    se_dense_w *dense;       /* (n_stages) */
    se_head_w head;          /* a cross-encoder's head (cfg.cross_encoder) */
    int32_t max_stage_dim;   /* widest Dense/Normalize in or out */
    /* every GEMM weight matrix (registered at bind, model_gemm.h), and the
     * mapped tensors they supersede (fused q/k/v), released once packed */
    se_gemm_mat *mats;
    size_t n_mats;
    se_spent *spent;
    size_t n_spent;
    /* weights repacked for the AVX-512 GEMM (empty when the CPU lacks it):
     * pack_w[i] is the original (N, K) matrix, pack_p[i] its packed copy */
    const float **pack_w;
    void **pack_p;           /* float (f32), uint16_t (bf16) or se_int8_pack (int8) */
    size_t n_pack;
    se_dtype compute;        /* SE_DTYPE_F32, SE_DTYPE_BF16 or SE_DTYPE_INT8 */
    bool bf16dp;             /* bf16 on AVX512-BF16 dot products (pair-packed weights) */
    uint64_t tok_hash;       /* the tokenizer files' hash, for the fingerprint */
    se_fingerprint_cache *fp; /* the fingerprint, made at its first request (owned) */
};

/* Scratch for one forward pass, carved from the ctx arena (encode.c). */
typedef struct se_fwd_buf {
    float *x;      /* (T, H) hidden state, in and out */
    float *qkv;    /* (T, 3H) fused query|key|value rows (USE lite: (T, 3 din)) */
    float *ctx;    /* (T, H) attention context */
    float *tmp;    /* (T, H) */
    float *ff;     /* (T, FF) */
    float *att;    /* (n_threads, att_stride) attention scratch per thread */
    size_t att_stride;
    uint8_t *xq;   /* (T, Kmax padded) activations quantised to uint8 (int8 models only) */
    uint16_t *xb;  /* (T, Kmax even) activations rounded to bf16 (bf16 models only) */
    float *xs;     /* (T) their per-row scales */
    int32_t *xz;   /* (T) their per-row zero points */
} se_fwd_buf;

/* Pools one sentence's token states x: (T, H) into out: (pool_dim), in
 * sentence-transformers' order (cls, max, mean, mean_sqrt_len,
 * weightedmean, lasttoken). Tokens before `first` (the prompt, when the
 * model excludes it) are masked out. (pool.c) */
void se_pool(uint32_t modes, const float *x, size_t T, size_t H, size_t first, float *out);

#endif
