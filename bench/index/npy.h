/* bench/index/npy.h - a tiny .npy reader for the index benchmark engines (C99 and C++).
 *
 * Reads 1-D or 2-D arrays of little-endian float32 ('<f4') or int32 ('<i4') in C order
 * (.npy format versions 1.0, 2.0 and 3.0), which is what bench/index/make_data.py writes.
 * Anything else (Fortran order, other dtypes, 3-D, truncated files) is refused with a
 * message that names the file.
 *
 *   npy_array a;
 *   char err[256];
 *   if (npy_load("base.npy", &a, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); exit(1); }
 *   // a.dtype == NPY_F32, a.rows, a.cols (1 for a 1-D array), a.data (rows * cols elements)
 *   npy_free(&a);
 *
 * Header-only: every function is static, so any number of translation units may include it.
 */
#ifndef SEMBED_BENCH_NPY_H
#define SEMBED_BENCH_NPY_H

/* posix_memalign (and, in engine.h, clock_gettime) under -std=c99/c11 without _GNU_SOURCE;
   effective only when this header comes before every system header */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE) && !defined(__cplusplus)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { NPY_F32 = 1, NPY_I32 = 2 } npy_dtype;

typedef struct {
    npy_dtype dtype;
    size_t rows; /* shape[0] */
    size_t cols; /* shape[1], or 1 for a 1-D array */
    int ndim;    /* 1 or 2 */
    void *data;  /* rows * cols elements of 4 bytes, 64-byte aligned; free with npy_free */
} npy_array;

static inline float *npy_f32(const npy_array *a) { return (float *)a->data; }
static inline int32_t *npy_i32(const npy_array *a) { return (int32_t *)a->data; }

/* value of key 'name' in a Python dict literal: a pointer just past "'name':" and spaces */
static const char *npy__key(const char *hdr, const char *name) {
    char pat[64];
    snprintf(pat, sizeof pat, "'%s':", name);
    const char *p = strstr(hdr, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    return p;
}

static void npy_free(npy_array *a) {
    if (a) {
        free(a->data);
        a->data = NULL;
    }
}

/* Returns 0 on success; otherwise -1 with a message in err (which may be NULL). */
static int npy_load(const char *path, npy_array *out, char *err, size_t errlen) {
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    /* everything declared up front: C++ forbids a goto across an initialisation */
    unsigned char pre[10];
    char *hdr = NULL;
    const char *d, *fo, *s;
    size_t hlen, dims[3], count, bytes;
    int major, nd = 0;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        snprintf(err, errlen, "%s: not a .npy file (no \\x93NUMPY magic)", path);
        goto fail;
    }
    major = pre[6];
    if (major == 1) {
        hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
    } else if (major == 2 || major == 3) {
        unsigned char b[2];
        if (fread(b, 1, 2, f) != 2) {
            snprintf(err, errlen, "%s: truncated .npy header", path);
            goto fail;
        }
        hlen = (size_t)pre[8] | ((size_t)pre[9] << 8) | ((size_t)b[0] << 16) | ((size_t)b[1] << 24);
    } else {
        snprintf(err, errlen, "%s: unsupported .npy format version %d", path, major);
        goto fail;
    }
    if (hlen > (1u << 20)) {
        snprintf(err, errlen, "%s: implausible .npy header length %zu", path, hlen);
        goto fail;
    }
    hdr = (char *)malloc(hlen + 1);
    if (!hdr || fread(hdr, 1, hlen, f) != hlen) {
        snprintf(err, errlen, "%s: truncated .npy header", path);
        goto fail;
    }
    hdr[hlen] = 0;

    d = npy__key(hdr, "descr");
    if (!d) {
        snprintf(err, errlen, "%s: .npy header has no 'descr'", path);
        goto fail;
    }
    if (strncmp(d, "'<f4'", 5) == 0)
        out->dtype = NPY_F32;
    else if (strncmp(d, "'<i4'", 5) == 0)
        out->dtype = NPY_I32;
    else {
        const char *e = strchr(d + 1, '\'');
        int len = e ? (int)(e - d + 1) : 8;
        snprintf(err, errlen, "%s: dtype %.*s is not supported (need '<f4' float32 or '<i4' int32)", path, len, d);
        goto fail;
    }
    fo = npy__key(hdr, "fortran_order");
    if (!fo || strncmp(fo, "False", 5) != 0) {
        snprintf(err, errlen, "%s: only C-order arrays are supported (fortran_order is not False)", path);
        goto fail;
    }
    s = npy__key(hdr, "shape");
    if (!s || *s != '(') {
        snprintf(err, errlen, "%s: .npy header has no 'shape' tuple", path);
        goto fail;
    }
    s++;
    for (;;) {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s || nd == 3) {
            snprintf(err, errlen, "%s: cannot parse the shape in the .npy header", path);
            goto fail;
        }
        dims[nd++] = (size_t)v;
        s = end;
        while (*s == 'L') s++; /* Python 2 longs */
    }
    if (nd < 1 || nd > 2) {
        snprintf(err, errlen, "%s: a %d-D array; need 1-D or 2-D", path, nd);
        goto fail;
    }
    out->ndim = nd;
    out->rows = dims[0];
    out->cols = nd == 2 ? dims[1] : 1;
    count = out->rows * out->cols;
    bytes = count * 4;
    if (out->cols && count / out->cols != out->rows) {
        snprintf(err, errlen, "%s: shape overflows", path);
        goto fail;
    }
    /* aligned for SIMD loads; aligned_alloc wants a multiple of the alignment */
    if (posix_memalign(&out->data, 64, bytes ? bytes : 64) != 0) {
        out->data = NULL;
        snprintf(err, errlen, "%s: out of memory for %zu bytes", path, bytes);
        goto fail;
    }
    if (fread(out->data, 1, bytes, f) != bytes) {
        snprintf(err, errlen, "%s: truncated data (expected %zu x %zu elements of 4 bytes)", path, out->rows,
                 out->cols);
        goto fail;
    }
    free(hdr);
    fclose(f);
    return 0;
fail:
    free(hdr);
    npy_free(out);
    fclose(f);
    return -1;
}

#endif
