/*
 * model_gemm.h - the model's GEMM and weight packing (model_gemm.c).
 */
#ifndef SE_MODEL_GEMM_H
#define SE_MODEL_GEMM_H

#include "model.h"

/* Runs a GEMM y = x w^T + b across the pool. x: (M, K), w: (N, K), y: (M, N).
 * Uses the model's packed copy of w when there is one. */
void se_par_gemm(se_threadpool *tp, const se_model *m, se_fwd_buf *buf, const float *x, size_t M, size_t K, const float *w,
                 const float *b, float *y, size_t N);

/* Registers w: (N, K) as a GEMM weight matrix of the model, to be packed
 * by se_model_pack. Every matrix an architecture passes to se_par_gemm
 * must be registered. */
se_status se_model_add_gemm(se_model *m, const float *w, size_t N, size_t K, se_error *err);

/* Registers a mapped tensor of nbytes that nothing reads once the
 * matrices are packed (one of the q/k/v matrices fused into one): its
 * pages are released by se_model_pack. */
se_status se_model_add_spent(se_model *m, const float *w, size_t nbytes, se_error *err);

/* Packs every registered matrix for the AVX-512 GEMM, when the CPU has it
 * and SE_KERNELS does not ask otherwise; SE_E_UNSUPPORTED when the
 * compute dtype needs an instruction set the CPU lacks. */
se_status se_model_pack(se_model *m, se_error *err);

/* Frees the packed copies and the registrations. */
void se_model_free_packs(se_model *m);

/* The widest GEMM input (K) of the model (for the int8 and bf16
 * activation buffers). */
size_t se_model_k_max(const se_model *m);

#endif
