/*
 * json.c - JSON reading: jansson does the parsing (a well-kept Debian
 * library with precise line/column errors and duplicate-key rejection);
 * this file adds file loading and typed field access whose errors name the
 * file and the field, so a bad config.json says exactly what is wrong.
 */
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"

char *se_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = se_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b);
    p[k + b] = 0;
    return p;
}

/* stat() follows symlinks, so a symlink to a regular file counts as one. */
bool se_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Tells a regular file from absence from anything else with stat (never
 * open: a FIFO would block), and lstat to find dangling symlinks. */
se_status se_file_probe(const char *path, bool *exists, se_error *err) {
    struct stat st;
    *exists = false;
    if (stat(path, &st) == 0) {
        if (S_ISREG(st.st_mode)) return *exists = true, SE_OK;
        const char *what = S_ISDIR(st.st_mode)    ? "a directory"
                           : S_ISFIFO(st.st_mode) ? "a FIFO"
                           : S_ISSOCK(st.st_mode) ? "a socket"
                           : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                       : "not a regular file";
        return se_err(err, SE_E_IO, "%s: is %s, not a regular file", path, what);
    }
    int e = errno;
    if (e == ENOENT && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        return se_err(err, SE_E_IO, "%s: is a dangling symlink (its target does not exist)", path);
    if (e == ENOENT) return SE_OK; /* absent; ENOTDIR (a file where a folder should be) is an error */
    return se_err(err, SE_E_IO, "%s: cannot examine: %s", path, strerror(e));
}

/* Opens with O_NONBLOCK so that a FIFO (or a device) never blocks the
 * open; the fstat check then refuses it before any read. */
se_status se_file_read(const char *path, size_t max_bytes, char **out, size_t *len, se_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return se_err(err, SE_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return se_err(err, SE_E_IO, "%s: not a regular file", path);
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return se_err(err, SE_E_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return se_err(err, SE_E_RANGE, "%s: %lld bytes exceeds the limit of %zu", path,
                      (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = se_malloc(n + 1);
    if (!buf) {
        fclose(f);
        return se_err(err, SE_E_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (got != n || bad) {
        se_free(buf);
        return se_err(err, SE_E_IO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return SE_OK;
}

se_status se_json_load_file(const char *path, json_t **out, se_error *err) {
    char *buf;
    size_t n;
    se_status s = se_file_read(path, SE_JSON_FILE_MAX, &buf, &n, err);
    if (s != SE_OK) return s;
    s = se_json_load_buffer(buf, n, path, false, out, err);
    se_free(buf);
    return s;
}

se_status se_json_load_buffer(const char *buf, size_t len, const char *what, bool reject_duplicates,
                              json_t **out, se_error *err) {
    json_error_t je;
    size_t flags = reject_duplicates ? JSON_REJECT_DUPLICATES : 0;
    json_t *j = json_loadb(buf, len, flags, &je);
    if (!j && json_error_code(&je) == json_error_numeric_overflow) {
        /* transformers writes model_max_length = int(1e30) as an integer
         * literal; read such files with every number as a double (the typed
         * readers accept integral doubles) */
        j = json_loadb(buf, len, flags | JSON_DECODE_INT_AS_REAL, &je);
    }
    if (!j) {
        return se_err(err, SE_E_FORMAT, "%s:%d:%d: malformed JSON: %s", what, je.line, je.column,
                      je.text);
    }
    *out = j;
    return SE_OK;
}

/* Looks key up in obj. Absent: SE_OK with *v = NULL (the caller uses its
 * default). JSON null: the same when null_ok, else SE_E_FORMAT naming the
 * file and key. */
static se_status field(const json_t *obj, const char *file, const char *key, bool null_ok, json_t **v, se_error *err) {
    *v = json_object_get(obj, key);
    if (*v && json_is_null(*v)) {
        *v = NULL;
        if (!null_ok) return se_err(err, SE_E_FORMAT, "%s: field '%s' is null (give a value, or leave the field out for the default)", file, key);
    }
    return SE_OK;
}

/* The integer reader behind both families. A real is an integer only when
 * integral and below 2^53 in magnitude (where doubles are exact); larger
 * values, however they are written, are refused rather than clamped. */
static se_status get_int(const json_t *obj, const char *file, const char *key, bool null_ok, int64_t lo, int64_t hi,
                         int64_t dflt, int64_t *out, se_error *err) {
    json_t *v;
    se_status s = field(obj, file, key, null_ok, &v, err);
    if (s != SE_OK) return s;
    if (!v) {
        *out = dflt;
        return SE_OK;
    }
    int64_t x;
    if (json_is_integer(v)) {
        x = (int64_t)json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 9e15) {
        x = (int64_t)json_real_value(v); /* 512.0, or any integer of a file read with every number as a double */
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v))) {
        return se_err(err, SE_E_FORMAT, "%s: field '%s' = %g is outside [%lld, %lld]", file, key, json_real_value(v),
                      (long long)lo, (long long)hi);
    } else {
        const char *got = json_is_real(v) ? "a fractional number" : json_is_boolean(v) ? "a boolean"
                          : json_is_string(v) ? "a string" : json_is_array(v) ? "an array" : "an object";
        return se_err(err, SE_E_FORMAT, "%s: field '%s' must be an integer, not %s", file, key, got);
    }
    if (x < lo || x > hi)
        return se_err(err, SE_E_FORMAT, "%s: field '%s' = %lld is outside [%lld, %lld]", file, key, (long long)x,
                      (long long)lo, (long long)hi);
    *out = x;
    return SE_OK;
}

/* The number reader behind both families: any JSON number within [lo, hi]. */
static se_status get_real(const json_t *obj, const char *file, const char *key, bool null_ok, double lo, double hi,
                          double dflt, double *out, se_error *err) {
    json_t *v;
    se_status s = field(obj, file, key, null_ok, &v, err);
    if (s != SE_OK) return s;
    if (!v) {
        *out = dflt;
        return SE_OK;
    }
    if (!json_is_number(v)) return se_err(err, SE_E_FORMAT, "%s: field '%s' must be a number", file, key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return se_err(err, SE_E_FORMAT, "%s: field '%s' = %g is outside [%g, %g]", file, key, x, lo, hi);
    *out = x;
    return SE_OK;
}

/* The boolean reader behind both families: true or false only (no 0/1). */
static se_status get_bool(const json_t *obj, const char *file, const char *key, bool null_ok, bool dflt, bool *out,
                          se_error *err) {
    json_t *v;
    se_status s = field(obj, file, key, null_ok, &v, err);
    if (s != SE_OK) return s;
    if (!v) {
        *out = dflt;
        return SE_OK;
    }
    if (!json_is_boolean(v)) return se_err(err, SE_E_FORMAT, "%s: field '%s' must be true or false", file, key);
    *out = json_is_true(v);
    return SE_OK;
}

/* The string reader behind both families. */
static se_status get_str(const json_t *obj, const char *file, const char *key, bool null_ok, const char *dflt,
                         const char **out, se_error *err) {
    json_t *v;
    se_status s = field(obj, file, key, null_ok, &v, err);
    if (s != SE_OK) return s;
    if (!v) {
        *out = dflt;
        return SE_OK;
    }
    if (!json_is_string(v)) return se_err(err, SE_E_FORMAT, "%s: field '%s' must be a string", file, key);
    *out = json_string_value(v);
    return SE_OK;
}

se_status se_json_int(const json_t *obj, const char *file, const char *key, int64_t lo, int64_t hi, int64_t dflt,
                      int64_t *out, se_error *err) {
    return get_int(obj, file, key, true, lo, hi, dflt, out, err);
}

se_status se_json_real(const json_t *obj, const char *file, const char *key, double lo, double hi, double dflt,
                       double *out, se_error *err) {
    return get_real(obj, file, key, true, lo, hi, dflt, out, err);
}

se_status se_json_bool(const json_t *obj, const char *file, const char *key, bool dflt, bool *out, se_error *err) {
    return get_bool(obj, file, key, true, dflt, out, err);
}

se_status se_json_str(const json_t *obj, const char *file, const char *key, const char *dflt, const char **out,
                      se_error *err) {
    return get_str(obj, file, key, true, dflt, out, err);
}

se_status se_json_int_strict(const json_t *obj, const char *file, const char *key, int64_t lo, int64_t hi,
                             int64_t dflt, int64_t *out, se_error *err) {
    return get_int(obj, file, key, false, lo, hi, dflt, out, err);
}

se_status se_json_real_strict(const json_t *obj, const char *file, const char *key, double lo, double hi,
                              double dflt, double *out, se_error *err) {
    return get_real(obj, file, key, false, lo, hi, dflt, out, err);
}

se_status se_json_bool_strict(const json_t *obj, const char *file, const char *key, bool dflt, bool *out,
                              se_error *err) {
    return get_bool(obj, file, key, false, dflt, out, err);
}

se_status se_json_str_strict(const json_t *obj, const char *file, const char *key, const char *dflt,
                             const char **out, se_error *err) {
    return get_str(obj, file, key, false, dflt, out, err);
}
