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

/* Loads and parses a JSON file. Missing file -> SE_E_IO, malformed JSON ->
 * SE_E_FORMAT naming path:line:column. On success *out is a new reference
 * the caller must json_decref. */
se_status se_json_load_file(const char *path, json_t **out, se_error *err);

/* Parses len bytes of JSON. what names the source in errors. With
 * reject_duplicates, a repeated object key is an error. */
se_status se_json_load_buffer(const char *buf, size_t len, const char *what, bool reject_duplicates,
                              json_t **out, se_error *err);

/* Typed field readers. obj must be an object. `file` names the source for
 * errors. When the key is absent (or JSON null) the default is stored and
 * SE_OK returned; a value of the wrong type or out of [lo, hi] is
 * SE_E_FORMAT naming file and key. */
se_status se_json_int(const json_t *obj, const char *file, const char *key, int64_t lo, int64_t hi,
                      int64_t dflt, int64_t *out, se_error *err);
se_status se_json_real(const json_t *obj, const char *file, const char *key, double lo, double hi,
                       double dflt, double *out, se_error *err);
se_status se_json_bool(const json_t *obj, const char *file, const char *key, bool dflt, bool *out,
                       se_error *err);
/* *out is borrowed from obj (valid while obj lives), or dflt. */
se_status se_json_str(const json_t *obj, const char *file, const char *key, const char *dflt,
                      const char **out, se_error *err);

/* Joins dir and name into a new string ("dir/name"); NULL on OOM. */
char *se_path_join(const char *dir, const char *name);

/* Returns true when path names an existing regular file. */
bool se_file_exists(const char *path);

/* Reads a whole file into a new NUL-terminated buffer (*len excludes the
 * NUL). Caps the size at max_bytes (SE_E_RANGE beyond). */
se_status se_file_read(const char *path, size_t max_bytes, char **out, size_t *len, se_error *err);

#endif
