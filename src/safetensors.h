/*
 * safetensors.h - a validating reader of the safetensors format.
 */
#ifndef SE_SAFETENSORS_H
#define SE_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sembed.h"

typedef enum se_st_dtype {
    SE_ST_BOOL, SE_ST_U8, SE_ST_I8, SE_ST_I16, SE_ST_U16, SE_ST_F16, SE_ST_BF16, SE_ST_I32,
    SE_ST_U32, SE_ST_F32, SE_ST_F64, SE_ST_I64, SE_ST_U64, SE_ST_F8_E4M3, SE_ST_F8_E5M2,
    SE_ST_N_DTYPES
} se_st_dtype;

#define SE_ST_MAX_DIMS 8

typedef struct se_st_tensor {
    char *name;
    se_st_dtype dtype;
    int n_dims;
    int64_t shape[SE_ST_MAX_DIMS];
    size_t n_elem;
    size_t nbytes;
    const uint8_t *data;   /* view into the mapping; valid until se_st_close */
} se_st_tensor;

typedef struct se_st_file {
    char *path;            /* for messages */
    uint8_t *base;         /* whole file (mapped or read) */
    size_t size;
    bool mapped;
    bool owns;             /* base must be freed/unmapped by se_st_close */
    bool has_fd;           /* mapped: fd stays open so se_st_check can fstat the mapped file */
    int fd;
    int64_t mtime_ns;      /* the mapped file's st_mtime at open, in ns */
    se_st_tensor *t;       /* sorted by data offset */
    size_t n;
} se_st_file;

/* Maps a weight file into f (f->base, size, mapped, owns, path, and the
 * descriptor kept for se_st_check when mapped), or reads it when use_mmap
 * is false or mmap fails; refuses anything but a regular file (a FIFO is
 * never waited on). Parses nothing: se_st_open and se_torch_open do. On
 * failure f is left closed. */
se_status se_st_map_file(const char *path, bool use_mmap, se_st_file *f, se_error *err);

/* Opens path (se_st_map_file) and validates its safetensors header. On
 * failure f is left closed. */
se_status se_st_open(const char *path, bool use_mmap, se_st_file *f, se_error *err);

/* Validates an in-memory safetensors image (borrowed; must outlive f).
 * what names it in errors. Used by se_st_open and the fuzz target. f must
 * be zero-initialised (se_st_parse fills only the tensor index; se_st_close
 * then releases just that). */
se_status se_st_parse(const uint8_t *data, size_t size, const char *what, se_st_file *f, se_error *err);

/* Checks that a mapped file is still the one opened: same size and
 * modification time, through fstat on the descriptor kept open (one
 * system call; the file replaced by a rename does not count, since the
 * mapping keeps the old one). A truncated file would raise SIGBUS when
 * the mapping is read past its new end, and a file rewritten in place
 * would change the weights under the model: both are SE_E_IO naming the
 * file. Files read into memory always pass. Thread-safe. */
se_status se_st_check(const se_st_file *f, se_error *err);

/* Finds a tensor by name, or NULL. */
const se_st_tensor *se_st_find(const se_st_file *f, const char *name);

/* Releases the mapping and the index. Safe on a zeroed or closed f. */
void se_st_close(se_st_file *f);

const char *se_st_dtype_name(se_st_dtype d);
size_t se_st_dtype_size(se_st_dtype d);

/* Conversions used when weights are stored in 16-bit formats. */
float se_f16_to_f32(uint16_t h);
float se_bf16_to_f32(uint16_t b);


/* A tensor to write: F32 data of the given shape (n_dims <= 8). */
typedef struct se_st_out {
    const char *name;
    int n_dims;
    int64_t shape[SE_ST_MAX_DIMS];
    const float *data;
} se_st_out;

/* Writes an F32 safetensors file: to "<path>.tmp" first, fsynced, then
 * renamed over path, so a crash never leaves a half-written file. The
 * header is padded to a multiple of 8 bytes so the data stays aligned.
 * Tensors are stored in the order given. */
se_status se_st_write(const char *path, const se_st_out *t, size_t n, se_error *err);

#endif
