/*
 * json.h - JSON reading on top of jansson, with errors that name the file,
 * the line and column, or the field.
 */
#ifndef SE_JSON_H
#define SE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "sembed.h"

/* The largest JSON file se_json_load_file reads (tokenizer files reach
 * tens of MB; configs are tiny). */
#define SE_JSON_FILE_MAX ((size_t)512 << 20)

/* Loads and parses a JSON file. Missing file -> SE_E_IO, malformed JSON ->
 * SE_E_FORMAT naming path:line:column. On success *out is a new reference
 * the caller must json_decref. */
se_status se_json_load_file(const char *path, json_t **out, se_error *err);

/* Parses len bytes of JSON. what names the source in errors. With
 * reject_duplicates, a repeated object key is an error. */
se_status se_json_load_buffer(const char *buf, size_t len, const char *what, bool reject_duplicates,
                              json_t **out, se_error *err);

/* Typed field readers. obj must be an object; `file` names the source in
 * errors. An absent key stores dflt and returns SE_OK. A value of the wrong
 * type or outside [lo, hi] is SE_E_FORMAT naming file and key: a real where
 * an integer is needed (12.5), a boolean where a number is needed, and a
 * number too large for its range (1e300) are all refused, never converted
 * or clamped (integral reals such as 512.0 are integers).
 *
 * Two families differ only in how they read a JSON null:
 *   se_json_int, _real, _bool, _str           null means "not set": the
 *       default. For files whose writers use null that way (Hugging Face
 *       tokenizer files: strip_accents, unk_id; sentence-transformers'
 *       default_prompt_name, similarity_fn_name, max_seq_length).
 *   se_json_int_strict, _real_strict, ...     null is SE_E_FORMAT naming the
 *       file and key. For every other configuration field, where a null can
 *       only be a mistake and must not become a zero. */
se_status se_json_int(const json_t *obj, const char *file, const char *key, int64_t lo, int64_t hi,
                      int64_t dflt, int64_t *out, se_error *err);
se_status se_json_real(const json_t *obj, const char *file, const char *key, double lo, double hi,
                       double dflt, double *out, se_error *err);
se_status se_json_bool(const json_t *obj, const char *file, const char *key, bool dflt, bool *out,
                       se_error *err);
/* *out is borrowed from obj (valid while obj lives), or dflt. */
se_status se_json_str(const json_t *obj, const char *file, const char *key, const char *dflt,
                      const char **out, se_error *err);
se_status se_json_int_strict(const json_t *obj, const char *file, const char *key, int64_t lo, int64_t hi,
                             int64_t dflt, int64_t *out, se_error *err);
se_status se_json_real_strict(const json_t *obj, const char *file, const char *key, double lo, double hi,
                              double dflt, double *out, se_error *err);
se_status se_json_bool_strict(const json_t *obj, const char *file, const char *key, bool dflt, bool *out,
                              se_error *err);
se_status se_json_str_strict(const json_t *obj, const char *file, const char *key, const char *dflt,
                             const char **out, se_error *err);

/* Joins dir and name into a new string ("dir/name"); NULL on OOM. */
char *se_path_join(const char *dir, const char *name);

/* Returns true when path names an existing regular file (symlinks
 * followed). Anything else, including a directory, a FIFO or a dangling
 * symlink, is false: use se_file_probe to tell those from absence. */
bool se_file_exists(const char *path);

/* Probes an optional file: *exists = true for a regular file (symlinks to
 * one included: the Hugging Face cache is made of them), false with SE_OK
 * when nothing at all is at path. Something there that is not a readable
 * regular file (a directory, a FIFO, a device, a dangling or looping
 * symlink, no permission to look) is SE_E_IO naming the path, so that a
 * broken file is never mistaken for an absent one. Never opens the path (a
 * FIFO would block). */
se_status se_file_probe(const char *path, bool *exists, se_error *err);

/* Reads a whole file into a new NUL-terminated buffer (*len excludes the
 * NUL). Caps the size at max_bytes (SE_E_RANGE beyond). Anything but a
 * regular file is SE_E_IO; the open never blocks (O_NONBLOCK), so a FIFO
 * swapped in after a probe is refused too. */
se_status se_file_read(const char *path, size_t max_bytes, char **out, size_t *len, se_error *err);

#endif
