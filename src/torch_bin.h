/*
 * torch_bin.h - a validating reader of the zip checkpoints torch.save
 * writes (pytorch_model.bin, torch >= 1.6).
 *
 * It fills the same se_st_file index the safetensors reader fills (see
 * safetensors.h), so a loader binds tensors from either format unchanged
 * and releases both with se_st_close. The file format, the restricted
 * unpickler and every limit are described at the top of torch_bin.c.
 */
#ifndef SE_TORCH_BIN_H
#define SE_TORCH_BIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"
#include "sembed.h"

/* Opens path (mmap, or read() when use_mmap is false or mmap fails) and
 * reads its state dict into f: one se_st_tensor per entry, with name,
 * dtype, shape and a data pointer into the mapping (or into a private
 * aligned copy of the storage when the file's bytes are not aligned for
 * the dtype). When check_crc is true the CRC-32 of every zip entry that is
 * read (data.pkl, version, byteorder and every storage the pickle names) is
 * verified, which reads the whole checkpoint once (CRC at about 2 GB/s, plus
 * the page faults of a first touch: 0.4 s for a 133 MB file here); when
 * false the bytes are trusted, as torch.load trusts them (it never checks
 * the CRC). Release f with se_st_close; the data
 * pointers are valid until then. On failure f is left closed and err names
 * the file and the entry, pickle offset or tensor at fault: SE_E_FORMAT for
 * a malformed file, SE_E_UNSUPPORTED for a well-formed one this reader
 * refuses (compressed entries, big-endian data, non-contiguous tensors,
 * the pre-1.6 format), SE_E_IO and SE_E_NOMEM. Thread-safe (f is the
 * caller's). */
se_status se_torch_open(const char *path, bool use_mmap, bool check_crc, se_st_file *f, se_error *err);

/* Reads an in-memory checkpoint image (borrowed: it must outlive f, as the
 * data pointers may point into it). what names it in errors. f must be
 * zero-initialised; only the tensor index is filled (se_st_close then
 * releases just that), and on failure it is left empty. Used by
 * se_torch_open and the fuzz target. */
se_status se_torch_parse(const uint8_t *data, size_t size, const char *what, bool check_crc, se_st_file *f,
                         se_error *err);

#endif
