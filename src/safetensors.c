/*
 * safetensors.c - reading the safetensors format, validating everything.
 *
 * Format (https://github.com/huggingface/safetensors):
 *   u64 little-endian N        header length
 *   N bytes of JSON            {name: {"dtype": "F32", "shape": [..],
 *                               "data_offsets": [begin, end]}, ...,
 *                               "__metadata__": {str: str}}
 *   the data section           offsets are relative to its start
 * The reader trusts nothing: the header length is capped (100 MB, like the
 * reference implementation) and must fit the file; keys may not repeat;
 * every dtype is known; shapes have at most 8 non-negative dims whose
 * product times the dtype size is checked for overflow and must equal
 * end - begin; sorted by offset, tensors must tile the data section from 0
 * to its end with no gap or overlap. Errors name the file and the tensor.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "json.h"

#define HEADER_MAX ((uint64_t)100000000)
#define NAME_MAX_LEN 1024

static const struct {
    const char *name;
    size_t size;
} dtypes[SE_ST_N_DTYPES] = {
    [SE_ST_BOOL] = {"BOOL", 1}, [SE_ST_U8] = {"U8", 1},     [SE_ST_I8] = {"I8", 1},
    [SE_ST_I16] = {"I16", 2},   [SE_ST_U16] = {"U16", 2},   [SE_ST_F16] = {"F16", 2},
    [SE_ST_BF16] = {"BF16", 2}, [SE_ST_I32] = {"I32", 4},   [SE_ST_U32] = {"U32", 4},
    [SE_ST_F32] = {"F32", 4},   [SE_ST_F64] = {"F64", 8},   [SE_ST_I64] = {"I64", 8},
    [SE_ST_U64] = {"U64", 8},   [SE_ST_F8_E4M3] = {"F8_E4M3", 1}, [SE_ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *se_st_dtype_name(se_st_dtype d) { return d < SE_ST_N_DTYPES ? dtypes[d].name : "?"; }
size_t se_st_dtype_size(se_st_dtype d) { return d < SE_ST_N_DTYPES ? dtypes[d].size : 0; }

float se_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float se_bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Orders tensors by (begin, end) offset for the tiling check, as the
 * reference implementation does, so an empty tensor that shares its offset
 * with the next one sorts first. */
static int by_offset(const void *a, const void *b) {
    const se_st_tensor *x = a, *y = b;
    if (x->data != y->data) return x->data < y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

void se_st_close(se_st_file *f) {
    if (!f) return;
    if (f->owns && f->base) {
        if (f->mapped) munmap(f->base, f->size);
        else se_free(f->base);
    }
    if (f->has_fd) close(f->fd);
    for (size_t i = 0; i < f->n; i++) se_free(f->t[i].name);
    se_free(f->t);
    se_free(f->path);
    memset(f, 0, sizeof *f);
}

se_status se_st_parse(const uint8_t *data, size_t size, const char *what, se_st_file *f, se_error *err) {
    se_status s;
    json_t *root = NULL;
    f->t = NULL;
    f->n = 0;
    if (size < 8) return se_err(err, SE_E_FORMAT, "%s: %zu bytes is too short for a safetensors file", what, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
    if (hlen > HEADER_MAX)
        return se_err(err, SE_E_FORMAT, "%s: header length %llu exceeds the %llu-byte limit", what,
                      (unsigned long long)hlen, (unsigned long long)HEADER_MAX);
    if (hlen > size - 8)
        return se_err(err, SE_E_FORMAT, "%s: header length %llu runs past the end of the %zu-byte file", what,
                      (unsigned long long)hlen, size);
    if (hlen < 2 || data[8] != '{') return se_err(err, SE_E_FORMAT, "%s: header is not a JSON object", what);
    s = se_json_load_buffer((const char *)data + 8, (size_t)hlen, what, true, &root, err);
    if (s != SE_OK) return s;
    if (!json_is_object(root)) {
        s = se_err(err, SE_E_FORMAT, "%s: header is not a JSON object", what);
        goto fail;
    }
    const uint8_t *dbase = data + 8 + hlen;
    size_t dsize = size - 8 - (size_t)hlen;
    size_t cap = json_object_size(root);
    f->t = se_calloc(cap ? cap : 1, sizeof *f->t);
    if (!f->t) {
        s = se_err(err, SE_E_NOMEM, "%s: out of memory", what);
        goto fail;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v)) {
                s = se_err(err, SE_E_FORMAT, "%s: __metadata__ must be an object", what);
                goto fail;
            }
            continue;
        }
        size_t klen = strlen(key);
        if (klen == 0 || klen > NAME_MAX_LEN) {
            s = se_err(err, SE_E_FORMAT, "%s: tensor name of %zu bytes is not allowed", what, klen);
            goto fail;
        }
        if (!json_is_object(v)) {
            s = se_err(err, SE_E_FORMAT, "%s: tensor '%s' entry is not an object", what, key);
            goto fail;
        }
        se_st_tensor *t = &f->t[f->n];
        json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
               *jo = json_object_get(v, "data_offsets");
        if (!json_is_string(jd)) {
            s = se_err(err, SE_E_FORMAT, "%s: tensor '%s' has no dtype", what, key);
            goto fail;
        }
        int d = -1;
        for (int k = 0; k < SE_ST_N_DTYPES; k++)
            if (strcmp(json_string_value(jd), dtypes[k].name) == 0) d = k;
        if (d < 0) {
            s = se_err(err, SE_E_FORMAT, "%s: tensor '%s' has unknown dtype '%s'", what, key, json_string_value(jd));
            goto fail;
        }
        if (!json_is_array(js) || json_array_size(js) > SE_ST_MAX_DIMS) {
            s = se_err(err, SE_E_FORMAT, "%s: tensor '%s' shape must be a list of at most %d dims", what, key, SE_ST_MAX_DIMS);
            goto fail;
        }
        size_t n_elem = 1;
        for (size_t k = 0; k < json_array_size(js); k++) {
            json_t *x = json_array_get(js, k);
            if (!json_is_integer(x) || json_integer_value(x) < 0) {
                s = se_err(err, SE_E_FORMAT, "%s: tensor '%s' shape[%zu] is not a non-negative integer", what, key, k);
                goto fail;
            }
            uint64_t dim = (uint64_t)json_integer_value(x);
            if (dim && n_elem > SIZE_MAX / dim) {
                s = se_err(err, SE_E_FORMAT, "%s: tensor '%s' shape overflows", what, key);
                goto fail;
            }
            n_elem *= (size_t)dim;
            t->shape[k] = (int64_t)dim;
        }
        t->n_dims = (int)json_array_size(js);
        size_t esz = dtypes[d].size;
        if (n_elem > SIZE_MAX / esz) {
            s = se_err(err, SE_E_FORMAT, "%s: tensor '%s' byte size overflows", what, key);
            goto fail;
        }
        if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
            !json_is_integer(json_array_get(jo, 1))) {
            s = se_err(err, SE_E_FORMAT, "%s: tensor '%s' data_offsets must be [begin, end]", what, key);
            goto fail;
        }
        json_int_t b = json_integer_value(json_array_get(jo, 0)), e = json_integer_value(json_array_get(jo, 1));
        if (b < 0 || e < b) {
            s = se_err(err, SE_E_FORMAT, "%s: tensor '%s' data_offsets [%lld, %lld) are invalid", what, key,
                       (long long)b, (long long)e);
            goto fail;
        }
        if ((uint64_t)e > dsize) {
            s = se_err(err, SE_E_FORMAT, "%s: tensor '%s' data_offsets end %lld is past the data section (%zu bytes): file truncated?",
                       what, key, (long long)e, dsize);
            goto fail;
        }
        if ((uint64_t)(e - b) != (uint64_t)n_elem * esz) {
            s = se_err(err, SE_E_FORMAT, "%s: tensor '%s' has %lld bytes but shape and dtype %s need %zu", what, key,
                       (long long)(e - b), dtypes[d].name, n_elem * esz);
            goto fail;
        }
        t->name = se_strdup(key);
        if (!t->name) {
            s = se_err(err, SE_E_NOMEM, "%s: out of memory", what);
            goto fail;
        }
        t->dtype = (se_st_dtype)d;
        t->n_elem = n_elem;
        t->nbytes = n_elem * esz;
        t->data = dbase + b;
        f->n++;
    }
    qsort(f->t, f->n, sizeof *f->t, by_offset);
    size_t pos = 0;
    for (size_t i = 0; i < f->n; i++) {
        size_t b = (size_t)(f->t[i].data - dbase);
        if (b != pos) {
            s = se_err(err, SE_E_FORMAT, "%s: tensor '%s' data_offsets begin %zu %s previous end %zu", what, f->t[i].name,
                       b, b < pos ? "overlaps" : "leaves a gap after", pos);
            goto fail;
        }
        pos = b + f->t[i].nbytes;
    }
    if (pos != dsize) {
        s = se_err(err, SE_E_FORMAT, "%s: tensors cover %zu bytes but the data section has %zu", what, pos, dsize);
        goto fail;
    }
    json_decref(root);
    return SE_OK;
fail:
    json_decref(root);
    for (size_t i = 0; i < f->n; i++) se_free(f->t[i].name);
    se_free(f->t);
    f->t = NULL;
    f->n = 0;
    return s;
}

/* Opens, checks and maps (or reads) one weight file; see safetensors.h. */
se_status se_st_map_file(const char *path, bool use_mmap, se_st_file *f, se_error *err) {
    memset(f, 0, sizeof *f);
    /* O_NONBLOCK: a FIFO must not block the open; fstat refuses it next */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return se_err(err, SE_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return se_err(err, SE_E_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *base = NULL;
    bool mapped = false;
    if (use_mmap && size > 0) {
        void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) base = m, mapped = true;
    }
    if (!base) {
        base = se_malloc(size ? size : 1);
        if (!base) {
            close(fd);
            return se_err(err, SE_E_NOMEM, "%s: out of memory reading %zu bytes", path, size);
        }
        size_t got = 0;
        while (got < size) {
            ssize_t r = read(fd, base + got, size - got);
            if (r <= 0) {
                if (r < 0 && errno == EINTR) continue;
                se_free(base);
                close(fd);
                return se_err(err, SE_E_IO, "%s: read failed after %zu bytes", path, got);
            }
            got += (size_t)r;
        }
    }
    if (mapped) { /* kept for se_st_check */
        f->has_fd = true, f->fd = fd;
        f->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    } else {
        close(fd);
    }
    f->base = base, f->size = size, f->mapped = mapped, f->owns = true;
    f->path = se_strdup(path);
    if (!f->path) {
        se_st_close(f);
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    return SE_OK;
}

/* Maps path and parses its safetensors header. */
se_status se_st_open(const char *path, bool use_mmap, se_st_file *f, se_error *err) {
    se_status s = se_st_map_file(path, use_mmap, f, err);
    if (s != SE_OK) return s;
    s = se_st_parse(f->base, f->size, path, f, err);
    if (s != SE_OK) se_st_close(f);
    return s;
}

se_status se_st_check(const se_st_file *f, se_error *err) {
    if (!f->has_fd) return SE_OK;
    struct stat st;
    if (fstat(f->fd, &st) != 0) return se_err(err, SE_E_IO, "%s: cannot check the mapped file: %s", f->path, strerror(errno));
    int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    if ((uint64_t)st.st_size != (uint64_t)f->size)
        return se_err(err, SE_E_IO, "%s: changed on disk since the model was loaded (%lld bytes, was %zu); load it again",
                      f->path, (long long)st.st_size, f->size);
    if (mt != f->mtime_ns)
        return se_err(err, SE_E_IO, "%s: changed on disk since the model was loaded (modified); load it again", f->path);
    return SE_OK;
}

const se_st_tensor *se_st_find(const se_st_file *f, const char *name) {
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

/* ==== Writing ==== */

se_status se_st_write(const char *path, const se_st_out *t, size_t n, se_error *err) {
    json_t *h = json_object();
    size_t off = 0;
    se_status s = SE_OK;
    if (!h) return se_err(err, SE_E_NOMEM, "out of memory");
    json_t *meta = json_pack("{s:s}", "format", "pt");
    json_object_set_new(h, "__metadata__", meta);
    for (size_t i = 0; i < n; i++) {
        size_t ne = 1;
        json_t *shape = json_array();
        for (int d = 0; d < t[i].n_dims; d++) {
            ne *= (size_t)t[i].shape[d];
            json_array_append_new(shape, json_integer(t[i].shape[d]));
        }
        json_t *e = json_pack("{s:s,s:o,s:[I,I]}", "dtype", "F32", "shape", shape, "data_offsets", (json_int_t)off,
                              (json_int_t)(off + 4 * ne));
        if (!e || json_object_set_new(h, t[i].name, e) != 0) {
            json_decref(h);
            return se_err(err, SE_E_NOMEM, "out of memory");
        }
        off += 4 * ne;
    }
    char *hs = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!hs) return se_err(err, SE_E_NOMEM, "out of memory");
    size_t hl = strlen(hs), padded = (hl + 7) & ~(size_t)7;
    size_t plen = strlen(path);
    char *tmp = se_malloc(plen + 5);
    if (!tmp) {
        free(hs);
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        s = se_err(err, SE_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    char pad[8] = "        ";
    bool ok = write(fd, len8, 8) == 8 && write(fd, hs, hl) == (ssize_t)hl &&
              write(fd, pad, padded - hl) == (ssize_t)(padded - hl);
    for (size_t i = 0; i < n && ok; i++) {
        size_t ne = 1;
        for (int d = 0; d < t[i].n_dims; d++) ne *= (size_t)t[i].shape[d];
        const uint8_t *p = (const uint8_t *)t[i].data;
        size_t left = 4 * ne;
        while (left > 0 && ok) {
            ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR) continue;
            ok = w > 0;
            if (ok) p += w, left -= (size_t)w;
        }
    }
    ok = ok && fsync(fd) == 0;
    if (close(fd) != 0) ok = false;
    if (!ok || rename(tmp, path) != 0) {
        s = se_err(err, SE_E_IO, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
    }
done:
    free(hs);
    se_free(tmp);
    return s;
}
