/*
 * train/train_tape.h - the tape of one forward pass (train_forward.c
 * writes it, train_backward.c reads it): the batch and every activation
 * the backward needs, in one arena.
 */
#ifndef SE_TRAIN_TAPE_H
#define SE_TRAIN_TAPE_H

#include "train/train.h"
#include "train/train_kernels.h"

/* A dropout site of the pass (dr.base 0): hidden (site) or attention
 * weights; NULL when the pass has no dropout there. */
se_tk_drop *se_ttape_drop(const se_ttape *tp, const se_tmodel *m, uint64_t site, bool attn, se_tk_drop *dr);

/* One (sentence s, head h) of a layer's attention, on thread's scratch. */
typedef void (*se_ttape_attn_fn)(const void *job, size_t s, size_t h, int thread);

/* Runs one(job, s, h, thread) for every sentence and head of the pass on
 * the model's pool (train_forward.c): a task per sentence, its heads in
 * turn (the sentence's rows of q, k and v stay in the core's cache), or a
 * task per head, every sentence in turn, where the model has MPNet's
 * relative position bias (the backward adds into one bias-gradient row
 * per head, which so has one writer). The forward and backward share it. */
void se_ttape_attn_run(const se_tmodel *m, const se_ttape *tp, se_ttape_attn_fn one, const void *job);

/* One encoder layer's saved activations. */
typedef struct se_tlayer_tape {
    float *x_in;              /* (T, H) the layer's input */
    float *qkv;               /* (T, 3H) query | key | value */
    float *probs;             /* (sum over sentences of NH Ts^2) attention weights, sentence after sentence, head after head */
    float *probs_d;           /* the same times dropout's factors (NULL when attention dropout is off) */
    float *ctx;               /* (T, H) attention context */
    float *ln1_xhat, *ln1_rs; /* (T, H), (T) */
    float *h1;                /* (T, H) after LN1 */
    float *ff_pre, *ff_act;   /* (T, FF) before and after the activation */
    bool ff_d;                /* ff_pre holds the activation's derivative instead (se_tk_act_fwd_d) */
    float *ln2_xhat, *ln2_rs; /* (T, H), (T) */
} se_tlayer_tape;

struct se_ttape {
    size_t T, S;
    bool drop;                  /* this pass applied dropout (se_tbatch.train and a probability > 0) */
    uint64_t key;               /* se_tbatch.dropout_key */
    int32_t *ids, *types;       /* (T) */
    size_t *starts, *first;     /* (S + 1), (S) */
    size_t *pos;                /* (T) each token's position id */
    size_t cap_f, cap_i;        /* capacities of the float arena and the index arena */
    size_t *idx_arena;          /* starts, first, argmax, pos */
    float *arena;
    float *emb_xhat, *emb_rs;   /* (T, H), (T) */
    se_tlayer_tape *layers;     /* (L) */
    size_t n_layers;            /* the model's L and modules: a tape serves one model shape */
    int n_stages;
    float *rel, *d_rel;         /* MPNet: (NH, 2P - 1) the bias of each head by distance + P - 1, and its
                                   gradient */
    float *x_out;               /* (T, H) the last layer's output */
    float *pooled;              /* (S, pool_dim) */
    size_t *argmax;             /* (S, H) max pooling's token per component (absolute) */
    size_t *att_off;            /* (S + 1) where each sentence's attention weights start in a layer's probs */
    float **st_in, **st_pre, **st_out; /* per stage: (S, n_in), (S, n_out) (Normalize: its divisor per
                                          sentence), (S, n_out) */
    /* backward scratch */
    float *d_x, *d_h, *d_qkv, *d_ctx, *d_ff, *d_p; /* (T,H) (T,H) (T,3H) (T,H) (T,FF) (threads, d_p_ld) */
    size_t d_p_ld, n_threads;                      /* se_tk_attn_scratch(the longest sentence): each thread's
                                                      attention scratch (forward and backward); the threads d_p
                                                      has rows for */
    float *d_st_a, *d_st_b;                        /* (S, widest): the modules' gradients, in turn */
    float *gemm_scratch;                           /* se_tk_gemm_scratch(threads) */
    float *ln_scratch;                             /* se_tk_ln_bwd_scratch(T, H) */
};

#endif
