/*
 * model.h - the loaded model, shared by model_bert.c (weights and the
 * transformer forward pass), pool.c and encode.c (the ctx).
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

/* Universal Sentence Encoder lite layer (pre-LN): din is the layer's
 * input width (embedding_size for layer 0, H after), HO = H its output. */
typedef struct se_use_layer_w {
    const float *ln_a_g, *ln_a_b; /* (din) attention LayerNorm */
    const float *qkv_w, *qkv_b;   /* (3 din, din), (3 din) */
    const float *o_w, *o_b;       /* (H, din), (H) */
    const float *res_w, *res_b;   /* (H, din), (H) when din != H, else NULL (identity) */
    const float *ln_f_g, *ln_f_b; /* (H) FFN LayerNorm */
    const float *ff1_w, *ff1_b;   /* (FF, H), (FF) */
    const float *ff2_w, *ff2_b;   /* (H, FF), (H) */
    int32_t din;
} se_use_layer_w;

/* A matrix packed for the int8 GEMM. */
typedef struct se_int8_pack {
    int8_t *w;       /* se_pack_int8_size(N, K) bytes */
    float *scale;    /* (N rounded up to 32) per-column scales */
    int32_t *colsum; /* (N rounded up to 32) per-column sums of the int8 weights */
} se_int8_pack;

typedef struct se_dense_w {
    const float *w; /* (out, in) */
    const float *b; /* (out) or NULL */
} se_dense_w;

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
    se_layer_w *layers;      /* (L) BERT */
    se_use_layer_w *use_layers; /* (L) USE lite */
    const float *timing_inv; /* (E/2) USE lite timing-signal inverse timescales */
    se_dense_w *dense;       /* (n_stages) */
    int32_t max_stage_dim;   /* widest Dense/Normalize in or out */
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

/* Scratch for one forward pass, carved from the ctx arena. */
typedef struct se_bert_buf {
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
} se_bert_buf;

/* Runs the transformer over S packed sentences. ids/type_ids: (T);
 * starts: (S + 1) token offsets of each sentence, starts[S] == T. Writes the
 * last hidden state into buf->x. Returns SE_E_RANGE naming the token when
 * an id is outside the vocabulary. */
se_status se_bert_forward(const se_model *m, se_bert_buf *buf, se_threadpool *tp, const int32_t *ids,
                          const int32_t *type_ids, const size_t *starts, size_t S, se_debug_fn dbg,
                          void *dbg_user, se_error *err);

/* Binds a tensor of the transformer checkpoint with shape (d0) (d1 <= 0) or
 * (d0, d1), as F32 (converted and owned by the model when needed). */
se_status se_model_bind(se_model *m, const char *name, int64_t d0, int64_t d1, const float **out, se_error *err);

/* USE lite: binds its tensors, and runs it over S packed sentences (the
 * same contract as se_bert_forward; the output, (T, H), lands in buf->x). */
se_status se_use_bind(se_model *m, se_error *err);
se_status se_use_forward(const se_model *m, se_bert_buf *buf, se_threadpool *tp, const int32_t *ids, const size_t *starts,
                         size_t S, se_debug_fn dbg, void *dbg_user, se_error *err);

/* Runs a GEMM y = x w^T + b across the pool. x: (M, K), w: (N, K), y: (M, N).
 * Uses the model's packed copy of w when there is one. */
void se_par_gemm(se_threadpool *tp, const se_model *m, se_bert_buf *buf, const float *x, size_t M, size_t K, const float *w,
                 const float *b, float *y, size_t N);


/* Checks every mapped weight file of the model (se_st_check): SE_E_IO
 * naming the first that was truncated or rewritten since load. Called by
 * se_encode before it reads any weight. Thread-safe. */
se_status se_model_check_files(const se_model *m, se_error *err);

/* The widest GEMM input (K) of the model (for the int8 activation buffer). */
size_t se_model_k_max(const se_model *m);

/* Packs every weight matrix of the model for the AVX-512 GEMM, when the
 * CPU has it and SE_KERNELS does not ask otherwise. */
se_status se_model_pack(se_model *m, se_error *err);

/* Pools one sentence's token states x: (T, H) into out: (pool_dim), in
 * sentence-transformers' order (cls, max, mean, mean_sqrt_len,
 * weightedmean, lasttoken). Tokens before `first` (the prompt, when the
 * model excludes it) are masked out. */
void se_pool(uint32_t modes, const float *x, size_t T, size_t H, size_t first, float *out);

#endif
