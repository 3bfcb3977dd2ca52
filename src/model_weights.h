/*
 * model_weights.h - a model's checkpoint files and tensor binding
 * (model_weights.c), used by the architectures in src/models/ and by
 * model.c.
 */
#ifndef SE_MODEL_WEIGHTS_H
#define SE_MODEL_WEIGHTS_H

#include "model.h"

/* Opens the checkpoint in dir in the first form it has, in the order
 * sentence-transformers' loader prefers: model.safetensors, its shard
 * index, pytorch_model.bin, its shard index. A file under one of those
 * names that is not a regular file is an error naming it. */
se_status se_model_open_checkpoint(se_model *m, const char *dir, bool use_mmap, se_error *err);

/* Finds a tensor of the checkpoint by name (bare, then with the
 * architecture's prefixes, then LayerNorm gamma/beta); NULL when absent.
 * *file is the shard that holds it. */
const se_st_tensor *se_model_find(const se_model *m, const char *name, const se_st_file **file);

/* Binds a tensor that must exist with shape (d0) (d1 <= 0) or (d0, d1), as
 * F32 (converted and owned by the model when needed). */
se_status se_model_bind(se_model *m, const char *name, int64_t d0, int64_t d1, const float **out, se_error *err);

/* A tensor's data as F32: in place when it is aligned F32, otherwise a
 * converted copy the model owns. F32, F16 and BF16 only. */
se_status se_model_as_f32(se_model *m, const se_st_tensor *t, const char *file, const float **out, se_error *err);

/* A buffer of n floats the model owns (freed with it); NULL on OOM. */
float *se_model_own(se_model *m, size_t n);

/* Binds the Dense modules' weights (each from its own folder's
 * model.safetensors or pytorch_model.bin; USE lite's from the main
 * checkpoint) and registers them for the GEMM. */
se_status se_model_bind_dense(se_model *m, bool use_mmap, se_error *err);

/* Checks every mapped weight file of the model (se_st_check): SE_E_IO
 * naming the first that was truncated or rewritten since load. Called by
 * se_encode before it reads any weight. Thread-safe. */
se_status se_model_check_files(const se_model *m, se_error *err);

#endif
