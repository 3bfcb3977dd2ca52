/*
 * train/train.h - the training engine's internal API (issue 15): a
 * trainable copy of a BERT-family sentence encoder (f32 parameters and
 * their gradients), its forward pass with a tape, the backward pass, and
 * sentence-transformers' losses on the sentence embeddings.
 *
 * Files:
 *   train_model.c    the trainable model (BERT, XLM-R, MPNet): from a sentence-transformers
 *                    folder (through the library's loader) or a seeded
 *                    random init; the parameter list
 *   train_kernels.c  the kernels (Linear GEMMs, LayerNorm, activations,
 *                    attention, element-wise loops on the pool), fast ones
 *                    with scalar twins
 *   train_gemm.c     the strided, packed AVX2 GEMM they run on
 *   train_forward.c  the forward pass, keeping what the backward needs
 *   train_backward.c the backward pass into the parameters' gradients
 *   train_loss.c     the losses: value and gradient w.r.t. the embeddings
 *   train_optim.c    AdamW with Hugging Face's schedule and clipping
 *   train_checkpoint.c  checkpoints that resume exactly
 *
 * A trainer drives it as:
 *   se_tmodel_from_folder / se_tmodel_random     once
 *   se_tmodel_zero_grad                          once (a model's gradients start at zero)
 *   per step: se_ttape_forward (the embeddings of every column of the
 *   batch); se_loss_eval (loss, d embeddings); se_ttape_backward (adds
 *   into every se_tparam.g); se_adamw_step (reads se_tparam.w, .g and
 *   .no_decay, and zeroes .g for the next step).
 *
 * Shapes follow model.h's legend: T tokens of S sentences packed without
 * padding (starts[s] .. starts[s + 1] is sentence s), H hidden, NH heads,
 * FF intermediate, V vocabulary, P positions, L layers.
 *
 * Deterministic: every GEMM element is one chain of FMAs in k order
 * (train_gemm.c), whatever block or thread computes it; attention runs a
 * task per head; element-wise steps (dropout, activations, LayerNorm) are
 * split by rows or elements that do not interact, and LayerNorm's
 * parameter gradients are summed per block of 32 rows, then the blocks in
 * order; the embedding tables' scatter runs on the calling thread. So a
 * seed gives the same bits whatever the thread count
 * (se_tmodel_set_threads).
 */
#ifndef SE_TRAIN_H
#define SE_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model_folder.h"
#include "sembed.h"

/* MPNet's relative position buckets (relative_attention_num_buckets). */
#define SE_T_BUCKETS 32

/* One parameter tensor: rows x cols floats (cols 1 for a vector). */
typedef struct se_tparam {
    char name[96]; /* Hugging Face / sentence-transformers name ("encoder.layer.0.attention.self.query.weight",
                      "2_Dense/linear.weight") */
    float *w, *g;  /* values and gradient (the model's arena) */
    size_t n, rows, cols;
    bool no_decay; /* a bias, a LayerNorm weight or MPNet's relative_attention_bias: AdamW skips its weight
                      decay (Hugging Face's Trainer: LayerNorm parameters and names with "bias") */
} se_tparam;

/* The parameter slots of one encoder layer, in se_tmodel.layer order. */
enum {
    SE_TL_Q_W, SE_TL_Q_B, SE_TL_K_W, SE_TL_K_B, SE_TL_V_W, SE_TL_V_B, SE_TL_O_W, SE_TL_O_B,
    SE_TL_LN1_G, SE_TL_LN1_B, SE_TL_FF1_W, SE_TL_FF1_B, SE_TL_FF2_W, SE_TL_FF2_B, SE_TL_LN2_G, SE_TL_LN2_B,
    SE_TL_N
};

/* A module after pooling: Dense (weights in parameters w_idx, b_idx or
 * -1, then act) or Normalize. */
typedef struct se_tstage {
    int kind; /* SE_STAGE_DENSE or SE_STAGE_NORMALIZE (model_folder.h) */
    size_t n_in, n_out;
    int w_idx, b_idx;
    se_act act;
} se_tstage;

/* The architecture's shape and modules. */
typedef struct se_tcfg {
    size_t V, H, NH, FF, L, P, n_type; /* n_type 0: no token type embeddings */
    int32_t pad_id;                    /* XLM-R, MPNet: RoBERTa's positions (padding_idx + 1 + the index
                                          among the tokens that are not pad_id; pad_id itself for a pad_id
                                          token); -1: BERT's (the index) */
    bool rel_bias;                     /* MPNet: a relative position bias (32 buckets, NH) shared by every
                                          layer's attention scores */
    float eps;                         /* layer_norm_eps */
    float hidden_dropout, attn_dropout; /* config.json's hidden_dropout_prob, attention_probs_dropout_prob
                                          (default 0.1), applied in training forward passes (se_tbatch.train) */
    se_act act;                        /* hidden_act */
    uint32_t pooling;                  /* SE_POOL_* modes */
    bool include_prompt;
    size_t pool_dim, dim;              /* pooling's output, the embedding's */
} se_tcfg;

/* A trainable model. Parameters live in one arena (values) and one for
 * gradients, in se_tmodel.p order. */
typedef struct se_tmodel {
    se_tcfg cfg;
    se_tparam *p;
    size_t n_p;
    int word, pos, type, emb_ln_g, emb_ln_b; /* parameter indices (type -1 when n_type is 0) */
    int rel;                                 /* MPNet's encoder.relative_attention_bias.weight (32, NH), or -1 */
    int (*layer)[SE_TL_N];                   /* (L) parameter indices of each layer */
    se_tstage *stages;
    int n_stages;
    float *w_arena, *g_arena;
    size_t n_floats;
    struct se_threadpool *pool; /* se_tmodel_set_threads (NULL: the calling thread only) */
} se_tmodel;

/* Options of a random model (BERT's init: weights normal(0, 0.02),
 * LayerNorm weight 1 and bias 0, biases 0). */
typedef struct se_tmodel_random_params {
    size_t V, H, NH, FF, L, P, n_type;
    float eps;
    float hidden_dropout, attn_dropout; /* dropout probabilities in [0, 1) */
    se_act act;
    uint32_t pooling;     /* 0: mean */
    bool normalize;       /* a Normalize module after pooling */
    uint64_t seed;
} se_tmodel_random_params;

/* Makes a trainable copy of the BERT, XLM-R or MPNet model in a
 * sentence-transformers (or plain Hugging Face) folder: the library loads
 * it (every check of se_model_load), the weights are copied as f32. USE
 * lite and cross-encoders are SE_E_UNSUPPORTED naming config.json's
 * model_type. */
se_status se_tmodel_from_folder(const char *dir, se_tmodel **out, se_error *err);

/* A randomly initialised BERT (BERT's init, deterministic for the seed). */
se_status se_tmodel_random(const se_tmodel_random_params *rp, se_tmodel **out, se_error *err);

/* Runs the model's forward and backward passes on n_threads threads (the
 * caller's included; 1 or less: the caller's alone). The results are the
 * same bits for every thread count. SE_E_NOMEM when the threads cannot
 * be started. */
se_status se_tmodel_set_threads(se_tmodel *m, int n_threads, se_error *err);

/* Frees a model; NULL is a no-op. */
void se_tmodel_free(se_tmodel *m);

/* Sets every gradient to zero. */
void se_tmodel_zero_grad(se_tmodel *m);

/* Whether layer l's query, key and value weights (and biases) lie side by
 * side in the arenas, as the model builder lays them out: the forward and
 * backward run the three projections as one GEMM of 3 H outputs, and
 * se_ttape_forward refuses a model where they do not. */
bool se_tmodel_qkv_packed(const se_tmodel *m, size_t l);

/* The parameter named name; NULL when there is none. */
se_tparam *se_tmodel_param(se_tmodel *m, const char *name);

/* What one forward pass keeps for its backward (train_forward.c). */
typedef struct se_ttape se_ttape;

/* A batch: S sentences of token ids packed (starts: S + 1 offsets),
 * type_ids NULL (all 0) or T values, first NULL or S pooling starts (the
 * tokens before first[s] are masked out of pooling, as
 * include_prompt = false does for a prompt).
 *
 * train: dropout as BertModel applies it in training mode (after the
 * embeddings' LayerNorm, on the attention weights, on the attention
 * output and the FFN output before their residual additions; inverted:
 * kept values scaled by 1 / (1 - p)). Element e of site s is dropped
 * when se_tk_drop_u24(dropout_key, s, e) < p * 2^24: a counter-based
 * hash, so the masks depend on the key alone (not on threads or on
 * batching) and cost no memory; a trainer draws a key per step from its
 * seed. */
typedef struct se_tbatch {
    const int32_t *ids, *type_ids;
    const size_t *starts;
    size_t S;
    const size_t *first;
    bool train;
    uint64_t dropout_key;
} se_tbatch;

/* Runs the forward pass of batch b, writing the S embeddings (S, dim) to
 * emb and keeping the activations in *tape (made on the first call,
 * reused and grown after, for models of this one's layers and modules;
 * free with se_ttape_free). Ids outside the
 * vocabulary, types outside n_type, or a sentence longer than the
 * positions are SE_E_RANGE naming the sentence and position. */
se_status se_ttape_forward(const se_tmodel *m, const se_tbatch *b, se_ttape **tape, float *emb, se_error *err);

/* Adds the gradient of a scalar whose gradient with respect to the
 * embeddings of the tape's forward pass is d_emb (S, dim) into every
 * parameter's g. The model must be the forward's, its weights and threads
 * unchanged since (more threads: SE_E_INVALID). */
se_status se_ttape_backward(se_tmodel *m, se_ttape *tape, const float *d_emb, se_error *err);

/* Frees a tape; NULL is a no-op. */
void se_ttape_free(se_ttape *tape);

/* The losses of sentence-transformers (train_loss.c). */
typedef enum se_loss_kind {
    SE_LOSS_MNRL = 1,   /* MultipleNegativesRankingLoss: columns anchor, positive, negatives... */
    SE_LOSS_MNRL_SYM,   /* MultipleNegativesSymmetricRankingLoss */
    SE_LOSS_COSENT,     /* CoSENTLoss: columns sentence1, sentence2; labels */
    SE_LOSS_COSINE,     /* CosineSimilarityLoss: MSE of cos(s1, s2) against labels */
    SE_LOSS_TRIPLET,    /* TripletLoss, euclidean: columns anchor, positive, negative */
    SE_LOSS_MSE         /* MSELoss: every column against the teacher's vectors */
} se_loss_kind;

/* A loss over a batch of B examples of n_cols columns. The embeddings are
 * column after column: rows c * B .. c * B + B - 1 are column c. A
 * Matryoshka list (n_dims > 0) sums weights[i] * the loss on the first
 * dims[i] components of every embedding (weights NULL: all 1). */
typedef struct se_loss_spec {
    se_loss_kind kind;
    float scale;  /* MNRL, CoSENT: 0 = 20 */
    float margin; /* Triplet: 0 = 5 */
    const size_t *dims;
    const float *weights;
    size_t n_dims;
    double *scratch; /* NULL, or se_loss_scratch_size doubles the caller keeps across steps (else each
                      * call allocates and frees them: ~400 KB for 64 x 384, which glibc hands back to
                      * the kernel each step, with a TLB shootdown of the other threads) */
} se_loss_spec;

/* Doubles of se_loss_spec.scratch for n_cols * B embeddings of dim. */
size_t se_loss_scratch_size(size_t B, size_t n_cols, size_t dim);

/* The loss of the embeddings emb (n_cols * B, dim) and, when d_emb is not
 * NULL, its gradient w.r.t. them (same shape, overwritten). labels: B
 * scores (CoSENT, Cosine); teacher: (B, teacher_dim) vectors (MSE, at
 * least dim wide; truncated to dim). A column count or input the loss
 * does not take is SE_E_INVALID naming it. */
se_status se_loss_eval(const se_loss_spec *spec, const float *emb, size_t B, size_t n_cols, size_t dim,
                       const float *labels, const float *teacher, size_t teacher_dim, double *loss, float *d_emb,
                       se_error *err);

/* AdamW as torch.optim.AdamW computes it, driven as Hugging Face's
 * Trainer drives it (train_optim.c): per step, the gradients are clipped
 * to a global norm (clip_grad_norm_), the parameters updated at the
 * schedule's learning rate (get_linear_schedule_with_warmup: linear from 0
 * over warmup_steps, then linear down to 0 at total_steps), weight decay
 * decoupled and skipped for se_tparam.no_decay. Gradient accumulation is
 * the trainer's: it scales each micro-batch's d_emb by 1 / steps and
 * calls se_ttape_backward for each before one se_adamw_step. */
typedef struct se_adamw_params {
    float lr;             /* the peak learning rate (> 0) */
    float beta1, beta2;   /* 0.9, 0.999 */
    float eps;            /* 1e-8 (Trainer's adam_epsilon) */
    float weight_decay;   /* 0 (Trainer's default; sentence-transformers' old fit used 0.01) */
    float max_grad_norm;  /* clip to this global norm; <= 0: no clipping. Trainer's default 1 */
    size_t warmup_steps;  /* steps of linear warm-up from 0 */
    size_t total_steps;   /* the step where the rate reaches 0; 0: constant after warm-up */
} se_adamw_params;

/* The defaults: lr 5e-5 (Trainer's), betas 0.9 / 0.999, eps 1e-8, no
 * weight decay, clipping at 1, no warm-up, no decay. */
se_adamw_params se_adamw_default_params(void);

typedef struct se_adamw se_adamw;

/* An optimiser for every parameter of m (its moment buffers zeroed, step
 * 0). Out-of-range params (lr <= 0, betas outside [0, 1), eps <= 0,
 * weight_decay < 0, warmup_steps > total_steps when total_steps > 0) are
 * SE_E_INVALID naming the field. */
se_status se_adamw_new(const se_tmodel *m, const se_adamw_params *p, se_adamw **out, se_error *err);

/* The learning rate the next se_adamw_step will use. */
double se_adamw_lr(const se_adamw *o);

/* The steps taken so far. */
size_t se_adamw_steps(const se_adamw *o);

/* One step over m's gradients: clips them to max_grad_norm, updates every
 * parameter, advances the schedule, and leaves the gradients zero (used up:
 * the update streams them anyway, so the next step needs no
 * se_tmodel_zero_grad). *grad_norm (may be NULL) gets the norm before
 * clipping. A gradient that is not finite is SE_E_RANGE naming the
 * parameter, and nothing is updated (the gradients are kept). m must be
 * the model the optimiser was made for. */
se_status se_adamw_step(se_adamw *o, se_tmodel *m, double *grad_norm, se_error *err);

/* Frees an optimiser; NULL is a no-op. */
void se_adamw_free(se_adamw *o);

/* Saves a training checkpoint into the folder dir (made if absent; files
 * in it replaced, each written to a temporary name and renamed):
 *   model.safetensors      every parameter, F32, under its name
 *   optimizer.safetensors  AdamW's moments: "exp_avg/<name>", "exp_avg_sq/<name>"
 *   trainer_state.json     the step and AdamW's params (written last: its
 *                          presence marks a complete checkpoint)
 * (train_checkpoint.c) */
se_status se_train_checkpoint_save(const char *dir, const se_tmodel *m, const se_adamw *o, se_error *err);

/* Restores a checkpoint of se_train_checkpoint_save into m and o (made for
 * a model of the same shape: the same parameters by name and size), so
 * that training resumes with the same bits as if it had not stopped. A
 * missing file, a parameter missing or of another size, or a malformed
 * state is an error naming the file and the tensor or field; m and o are
 * then unchanged. */
se_status se_train_checkpoint_load(const char *dir, se_tmodel *m, se_adamw *o, se_error *err);

#endif
