/*
 * test_safetensors.c - tests of the safetensors reader (src/safetensors.c).
 *
 * Images are built in memory: an 8-byte little-endian header length, the
 * JSON header and the data section (build_image). They are parsed with
 * se_st_parse, and a few are written to a temporary file and opened with
 * se_st_open, both mapped and read.
 *
 * What is checked:
 *   - a valid file with F32, F16, BF16 and I64 tensors (plus a zero-element
 *     tensor and __metadata__) gives the right count, names, shapes,
 *     element and byte counts and data pointers, and se_st_find works;
 *   - the handcrafted corrupt files of enum bad_kind (STYLE rule 38) each
 *     fail with the exact status and a message naming the tensor or the
 *     problem;
 *   - the f16 and bf16 conversions, exhaustively against an independent
 *     ldexp formula and on hand-picked exact values;
 *   - every allocation failure while parsing or opening a valid file gives
 *     SE_E_NOMEM (or SE_OK when the failing allocation was not needed)
 *     and leaks nothing (run under ASan to see leaks).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "safetensors.h"
#include "test.h"

/* ==== Helpers ==== */

/* An in-memory safetensors image, owned by the test that built it. */
typedef struct image {
    uint8_t *bytes; /* 8 + header + data bytes; free with image_free */
    size_t size;
} image;

/* Builds the image "u64 LE strlen(hdr) | hdr | blob[0..blob_len)". The
 * caller frees it with image_free. Aborts the test binary on OOM, which is
 * fine for a test (the library itself never does this). */
static image build_image(const char *hdr, const void *blob, size_t blob_len) {
    size_t hlen = strlen(hdr);
    image im;
    im.size = 8 + hlen + blob_len;
    im.bytes = malloc(im.size ? im.size : 1);
    if (!im.bytes) {
        fprintf(stderr, "test_safetensors: out of memory\n");
        exit(2);
    }
    for (int i = 0; i < 8; i++) im.bytes[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(im.bytes + 8, hdr, hlen);
    if (blob_len) memcpy(im.bytes + 8 + hlen, blob, blob_len);
    return im;
}

/* Overwrites the 8-byte header-length field of an image with hlen. */
static void image_set_hlen(image *im, uint64_t hlen) {
    for (int i = 0; i < 8; i++) im->bytes[i] = (uint8_t)(hlen >> (8 * i));
}

/* Releases an image built by build_image. */
static void image_free(image *im) {
    free(im->bytes);
    im->bytes = NULL;
    im->size = 0;
}

/* Writes size bytes to a new file under /tmp and returns its path in
 * path (a caller buffer of at least 32 bytes); returns 0 on success. The
 * caller removes the file with unlink. */
static int write_temp(const uint8_t *data, size_t size, char *path) {
    strcpy(path, "/tmp/se_st_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    size_t put = 0;
    while (put < size) {
        ssize_t w = write(fd, data + put, size - put);
        if (w <= 0) {
            close(fd);
            unlink(path);
            return -1;
        }
        put += (size_t)w;
    }
    close(fd);
    return 0;
}

/* Returns true when the tensor's shape is exactly dims[0..n). */
static bool shape_is(const se_st_tensor *t, int n, const int64_t *dims) {
    if (t->n_dims != n) return false;
    for (int i = 0; i < n; i++)
        if (t->shape[i] != dims[i]) return false;
    return true;
}

/* ==== A valid file ==== */

/*
 * The valid image: five tensors listed out of offset order, __metadata__
 * in the middle, and a zero-element tensor at the end of the data.
 *   a.f32   F32  (2, 3)  [0, 24)
 *   b.f16   F16  (4)     [24, 32)
 *   c.bf16  BF16 (2, 2)  [32, 40)
 *   d.i64   I64  (3)     [40, 64)
 *   e.empty F32  (0)     [64, 64)
 */
static const char VALID_HDR[] =
    "{\"d.i64\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[40,64]},"
    "\"b.f16\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
    "\"__metadata__\":{\"format\":\"pt\",\"note\":\"test\"},"
    "\"a.f32\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"e.empty\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[64,64]},"
    "\"c.bf16\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[32,40]}}";

#define VALID_DATA_LEN 64

/* Fills the 64-byte data section of the valid image with known values. */
static void valid_data(uint8_t *d) {
    float a[6] = {1.0f, -2.0f, 0.5f, 3.25f, -0.125f, 100.0f};
    uint16_t b[4] = {0x3C00, 0xC100, 0x7BFF, 0x0001};  /* 1, -2.5, 65504, 2^-24 */
    uint16_t c[4] = {0x3F80, 0xC020, 0x4049, 0x0000};  /* 1, -2.5, 3.140625, 0 */
    int64_t i[3] = {-1, 0, INT64_C(1) << 40};
    memcpy(d, a, 24);
    memcpy(d + 24, b, 8);
    memcpy(d + 32, c, 8);
    memcpy(d + 40, i, 24);
}

/* Checks every field of a file parsed from the valid image; data is the
 * start of its data section. */
static void check_valid(const se_st_file *f, const uint8_t *data) {
    CHECK(f->n == 5);
    if (f->n != 5) return;
    static const int64_t sa[] = {2, 3}, sb[] = {4}, sc[] = {2, 2}, sd[] = {3}, se[] = {0};
    const se_st_tensor *a = se_st_find(f, "a.f32"), *b = se_st_find(f, "b.f16"),
                       *c = se_st_find(f, "c.bf16"), *d = se_st_find(f, "d.i64"),
                       *e = se_st_find(f, "e.empty");
    CHECK(a && b && c && d && e);
    if (!(a && b && c && d && e)) return;
    CHECK(se_st_find(f, "__metadata__") == NULL);
    CHECK(se_st_find(f, "a.f3") == NULL);
    CHECK(se_st_find(f, "") == NULL);
    CHECK(strcmp(a->name, "a.f32") == 0 && strcmp(e->name, "e.empty") == 0);

    CHECK(a->dtype == SE_ST_F32 && shape_is(a, 2, sa) && a->n_elem == 6 && a->nbytes == 24);
    CHECK(b->dtype == SE_ST_F16 && shape_is(b, 1, sb) && b->n_elem == 4 && b->nbytes == 8);
    CHECK(c->dtype == SE_ST_BF16 && shape_is(c, 2, sc) && c->n_elem == 4 && c->nbytes == 8);
    CHECK(d->dtype == SE_ST_I64 && shape_is(d, 1, sd) && d->n_elem == 3 && d->nbytes == 24);
    CHECK(e->dtype == SE_ST_F32 && shape_is(e, 1, se) && e->n_elem == 0 && e->nbytes == 0);

    CHECK(a->data == data + 0);
    CHECK(b->data == data + 24);
    CHECK(c->data == data + 32);
    CHECK(d->data == data + 40);
    CHECK(e->data == data + 64);

    float av[6];
    memcpy(av, a->data, sizeof av);
    CHECK(av[0] == 1.0f && av[1] == -2.0f && av[5] == 100.0f);
    uint16_t bv[4], cv[4];
    memcpy(bv, b->data, sizeof bv);
    memcpy(cv, c->data, sizeof cv);
    CHECK(se_f16_to_f32(bv[0]) == 1.0f && se_f16_to_f32(bv[1]) == -2.5f && se_f16_to_f32(bv[2]) == 65504.0f);
    CHECK(se_f16_to_f32(bv[3]) == ldexpf(1.0f, -24));
    CHECK(se_bf16_to_f32(cv[0]) == 1.0f && se_bf16_to_f32(cv[1]) == -2.5f && se_bf16_to_f32(cv[2]) == 3.140625f);
    int64_t dv[3];
    memcpy(dv, d->data, sizeof dv);
    CHECK(dv[0] == -1 && dv[1] == 0 && dv[2] == INT64_C(1) << 40);

    /* The index is sorted by data offset, as safetensors.h promises. */
    for (size_t i = 1; i < f->n; i++) CHECK(f->t[i - 1].data <= f->t[i].data);
}

/* The valid image parses from memory with every field right. */
TEST(test_parse_valid) {
    uint8_t data[VALID_DATA_LEN];
    valid_data(data);
    image im = build_image(VALID_HDR, data, sizeof data);
    se_st_file f = {0};
    se_error err = {0};
    se_status s = se_st_parse(im.bytes, im.size, "valid", &f, &err);
    CHECK_MSG(s == SE_OK, "se_st_parse: %s: %s", se_status_str(s), err.msg);
    if (s == SE_OK) check_valid(&f, im.bytes + 8 + strlen(VALID_HDR));
    se_st_close(&f);
    CHECK(f.t == NULL && f.n == 0);
    image_free(&im);
}

/* The valid image written to a file opens mapped and read, and a header
 * padded with trailing spaces (as the reference writer pads to 8 bytes)
 * is accepted. */
TEST(test_open_valid_file) {
    uint8_t data[VALID_DATA_LEN];
    valid_data(data);
    char padded[sizeof VALID_HDR + 16];
    snprintf(padded, sizeof padded, "%s       ", VALID_HDR);
    const char *hdrs[2] = {VALID_HDR, padded};
    for (int h = 0; h < 2; h++) {
        image im = build_image(hdrs[h], data, sizeof data);
        char path[32];
        CHECK(write_temp(im.bytes, im.size, path) == 0);
        for (int m = 0; m < 2; m++) {
            se_st_file f;
            se_error err = {0};
            se_status s = se_st_open(path, m == 1, &f, &err);
            CHECK_MSG(s == SE_OK, "se_st_open(mmap=%d): %s: %s", m, se_status_str(s), err.msg);
            if (s != SE_OK) continue;
            CHECK(f.size == im.size && f.owns);
            CHECK(f.path && strcmp(f.path, path) == 0);
            CHECK(memcmp(f.base, im.bytes, im.size) == 0);
            check_valid(&f, f.base + 8 + strlen(hdrs[h]));
            se_st_close(&f);
            CHECK(f.base == NULL && f.t == NULL && f.n == 0 && f.path == NULL);
        }
        unlink(path);
        image_free(&im);
    }
}

/* Other valid shapes of file: an empty header "{}" with no data, only
 * metadata, a scalar (shape []), every dtype, two zero-element tensors at
 * one offset, and a file with a realistic trailing-space-padded header. */
TEST(test_parse_valid_edge_cases) {
    static const struct {
        const char *hdr;
        size_t data_len;
        size_t n;
    } cases[] = {
        {"{}", 0, 0},
        {"{ }  ", 0, 0},
        {"{\"__metadata__\":{}}", 0, 0},
        {"{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}}", 8, 1},
        {"{\"z1\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[0,0]},"
         "\"z2\":{\"dtype\":\"I8\",\"shape\":[3,0],\"data_offsets\":[0,0]}}", 0, 2},
        {"{\"a\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[0,1]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]},"
         "\"c\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[2,3]},"
         "\"d\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[3,4]},"
         "\"e\":{\"dtype\":\"F8_E5M2\",\"shape\":[1],\"data_offsets\":[4,5]},"
         "\"f\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[5,7]},"
         "\"g\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[7,9]},"
         "\"h\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[9,13]},"
         "\"i\":{\"dtype\":\"U32\",\"shape\":[1],\"data_offsets\":[13,17]},"
         "\"j\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[17,25]},"
         "\"k\":{\"dtype\":\"F64\",\"shape\":[1,1,1,1,1,1,1,1],\"data_offsets\":[25,33]}}", 33, 11},
    };
    uint8_t zeros[64] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        image im = build_image(cases[i].hdr, zeros, cases[i].data_len);
        se_st_file f = {0};
        se_error err = {0};
        se_status s = se_st_parse(im.bytes, im.size, "edge", &f, &err);
        CHECK_MSG(s == SE_OK && f.n == cases[i].n, "case %zu: %s (%s), n=%zu", i, se_status_str(s), err.msg, f.n);
        se_st_close(&f);
        image_free(&im);
    }
}

/* A zero-element tensor may share its offset with the non-empty tensor
 * that starts there, whichever order the header lists them in: the
 * reference reader sorts by (begin, end), so [4,4) comes before [4,8).
 * The Hugging Face writer produces exactly such offsets for empty tensors. */
TEST(test_zero_size_tensor_shares_offset) {
    static const char *hdrs[2] = {
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}",
        "{\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
        "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
    };
    uint8_t data[4] = {0};
    for (int i = 0; i < 2; i++) {
        image im = build_image(hdrs[i], data, sizeof data);
        se_st_file f = {0};
        se_error err = {0};
        se_status s = se_st_parse(im.bytes, im.size, "zero", &f, &err);
        CHECK_MSG(s == SE_OK && f.n == 2, "header order %d: %s: %s", i, se_status_str(s), err.msg);
        se_st_close(&f);
        image_free(&im);
    }
}

/* The real fixture checkpoint opens both ways and has the tensors the
 * BERT loader binds. */
TEST(test_open_fixture) {
    const char *path = "tests/fixtures/models/en-mean-norm/model.safetensors";
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "  (skipping test_open_fixture: %s not found; run from the repo root)\n", path);
        return;
    }
    for (int m = 0; m < 2; m++) {
        se_st_file f;
        se_error err = {0};
        se_status s = se_st_open(path, m == 1, &f, &err);
        CHECK_MSG(s == SE_OK, "%s: %s", se_status_str(s), err.msg);
        if (s != SE_OK) continue;
        CHECK(f.n == 40);
        const se_st_tensor *t = se_st_find(&f, "embeddings.LayerNorm.bias");
        CHECK(t && t->dtype == SE_ST_F32 && t->n_dims == 1 && t->shape[0] == 32 && t->nbytes == 128);
        CHECK(f.mapped == (m == 1));
        se_st_close(&f);
    }
}

/* ==== Corrupt files (STYLE rule 38) ==== */

typedef enum bad_kind {
    BAD_SHORTER_THAN_8,
    BAD_EMPTY_FILE,
    BAD_HLEN_PAST_FILE,
    BAD_HLEN_HUGE,
    BAD_HLEN_ALL_ONES,
    BAD_HLEN_TOO_SMALL,
    BAD_NOT_BRACE,
    BAD_MALFORMED_JSON,
    BAD_JSON_ARRAY,
    BAD_JSON_TRAILING_GARBAGE,
    BAD_DUPLICATE_NAME,
    BAD_ENTRY_NOT_OBJECT,
    BAD_UNKNOWN_DTYPE,
    BAD_LOWERCASE_DTYPE,
    BAD_MISSING_DTYPE,
    BAD_DTYPE_NOT_STRING,
    BAD_SHAPE_NOT_LIST,
    BAD_SHAPE_MISSING,
    BAD_SHAPE_NEGATIVE,
    BAD_SHAPE_FLOAT,
    BAD_SHAPE_9_DIMS,
    BAD_SHAPE_OVERFLOW,
    BAD_BYTES_OVERFLOW,
    BAD_OFFSETS_MISSING,
    BAD_OFFSETS_ONE_INT,
    BAD_OFFSETS_THREE_INTS,
    BAD_OFFSETS_STRINGS,
    BAD_OFFSETS_NEGATIVE,
    BAD_OFFSETS_BEGIN_GT_END,
    BAD_OFFSETS_PAST_DATA,
    BAD_BYTES_MISMATCH,
    BAD_OVERLAP,
    BAD_GAP,
    BAD_DATA_LONGER,
    BAD_FIRST_NOT_AT_0,
    BAD_EMPTY_NAME,
    BAD_NAME_TOO_LONG,
    BAD_METADATA_NOT_OBJECT,
    BAD_N_KINDS
} bad_kind;

/* One handcrafted corrupt file: its header, data length, a header-length
 * override (0 = the real length), the expected status and two words the
 * error message must contain (the second may be NULL). */
typedef struct bad_case {
    const char *name;
    const char *hdr;
    size_t data_len;
    uint64_t hlen;
    size_t truncate_to; /* 0 = keep the whole image */
    se_status code;
    const char *word1, *word2;
} bad_case;

/* A long tensor name (1100 bytes) for BAD_NAME_TOO_LONG, built at run time. */
static char long_name_hdr[1200];

/* Returns the handcrafted corrupt file of kind k. */
static bad_case bad_file(bad_kind k) {
    if (!long_name_hdr[0]) {
        strcpy(long_name_hdr, "{\"");
        memset(long_name_hdr + 2, 'n', 1100);
        strcpy(long_name_hdr + 1102, "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}");
    }
#define T1 "\"t1\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
    switch (k) {
    case BAD_SHORTER_THAN_8:
        return (bad_case){"shorter than 8", "", 0, 0, 5, SE_E_FORMAT, "too short", "5 bytes"};
    case BAD_EMPTY_FILE:
        return (bad_case){"empty file", "", 0, 0, (size_t)-1, SE_E_FORMAT, "too short", "0 bytes"};
    case BAD_HLEN_PAST_FILE:
        return (bad_case){"hlen past file", "{" T1 "}", 8, 1000, 0, SE_E_FORMAT, "header length", "past the end"};
    case BAD_HLEN_HUGE:
        return (bad_case){"hlen > 100 MB", "{" T1 "}", 8, 100000001, 0, SE_E_FORMAT, "header length", "limit"};
    case BAD_HLEN_ALL_ONES:
        return (bad_case){"hlen 2^64-1", "{" T1 "}", 8, UINT64_MAX, 0, SE_E_FORMAT, "header length", "limit"};
    case BAD_HLEN_TOO_SMALL:
        return (bad_case){"hlen 1", "{" T1 "}", 8, 1, 0, SE_E_FORMAT, "not a JSON object", NULL};
    case BAD_NOT_BRACE:
        return (bad_case){"not '{'", " {" T1 "}", 8, 0, 0, SE_E_FORMAT, "not a JSON object", NULL};
    case BAD_MALFORMED_JSON:
        return (bad_case){"malformed JSON", "{\"t1\":{\"dtype\":\"F32\",", 0, 0, 0, SE_E_FORMAT, "malformed JSON", NULL};
    case BAD_JSON_ARRAY:
        return (bad_case){"JSON array", "[" T1 "]", 8, 0, 0, SE_E_FORMAT, "not a JSON object", NULL};
    case BAD_JSON_TRAILING_GARBAGE:
        return (bad_case){"trailing garbage", "{" T1 "}x", 8, 0, 0, SE_E_FORMAT, "malformed JSON", NULL};
    case BAD_DUPLICATE_NAME:
        return (bad_case){"duplicate name",
                          "{" T1 ",\"t1\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, 0, 0,
                          SE_E_FORMAT, "duplicate", "t1"};
    case BAD_ENTRY_NOT_OBJECT:
        return (bad_case){"entry not object", "{\"t1\":[0,8]}", 8, 0, 0, SE_E_FORMAT, "'t1'", "not an object"};
    case BAD_UNKNOWN_DTYPE:
        return (bad_case){"unknown dtype", "{\"t1\":{\"dtype\":\"F128\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, 0,
                          SE_E_FORMAT, "'t1'", "dtype 'F128'"};
    case BAD_LOWERCASE_DTYPE:
        return (bad_case){"lowercase dtype", "{\"t1\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, 0,
                          SE_E_FORMAT, "'t1'", "dtype 'f32'"};
    case BAD_MISSING_DTYPE:
        return (bad_case){"missing dtype", "{\"t1\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, 0, SE_E_FORMAT, "'t1'",
                          "dtype"};
    case BAD_DTYPE_NOT_STRING:
        return (bad_case){"dtype not string", "{\"t1\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, 0,
                          SE_E_FORMAT, "'t1'", "dtype"};
    case BAD_SHAPE_NOT_LIST:
        return (bad_case){"shape not list", "{\"t1\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, 0, 0,
                          SE_E_FORMAT, "'t1'", "shape"};
    case BAD_SHAPE_MISSING:
        return (bad_case){"shape missing", "{\"t1\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, 0, 0, SE_E_FORMAT,
                          "'t1'", "shape"};
    case BAD_SHAPE_NEGATIVE:
        return (bad_case){"negative dim", "{\"t1\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]}}", 8, 0, 0,
                          SE_E_FORMAT, "'t1'", "shape[1]"};
    case BAD_SHAPE_FLOAT:
        return (bad_case){"float dim", "{\"t1\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, 0, 0,
                          SE_E_FORMAT, "'t1'", "shape[0]"};
    case BAD_SHAPE_9_DIMS:
        return (bad_case){"9 dims", "{\"t1\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
                          0, 0, SE_E_FORMAT, "'t1'", "at most 8 dims"};
    case BAD_SHAPE_OVERFLOW:
        return (bad_case){"shape overflow",
                          "{\"t1\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 8, 0,
                          0, SE_E_FORMAT, "'t1'", "overflows"};
    case BAD_BYTES_OVERFLOW:
        return (bad_case){"bytes overflow",
                          "{\"t1\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 8, 0, 0,
                          SE_E_FORMAT, "'t1'", "overflows"};
    case BAD_OFFSETS_MISSING:
        return (bad_case){"offsets missing", "{\"t1\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, 0, 0, SE_E_FORMAT, "'t1'",
                          "data_offsets"};
    case BAD_OFFSETS_ONE_INT:
        return (bad_case){"offsets [8]", "{\"t1\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 8, 0, 0,
                          SE_E_FORMAT, "'t1'", "data_offsets"};
    case BAD_OFFSETS_THREE_INTS:
        return (bad_case){"offsets [0,8,8]", "{\"t1\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8, 0, 0,
                          SE_E_FORMAT, "'t1'", "data_offsets"};
    case BAD_OFFSETS_STRINGS:
        return (bad_case){"offsets strings", "{\"t1\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",\"8\"]}}", 8, 0,
                          0, SE_E_FORMAT, "'t1'", "data_offsets"};
    case BAD_OFFSETS_NEGATIVE:
        return (bad_case){"offsets negative", "{\"t1\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, 0, 0,
                          SE_E_FORMAT, "'t1'", "data_offsets"};
    case BAD_OFFSETS_BEGIN_GT_END:
        return (bad_case){"begin > end", "{\"t1\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, 0, 0,
                          SE_E_FORMAT, "'t1'", "data_offsets [8, 0)"};
    case BAD_OFFSETS_PAST_DATA:
        return (bad_case){"truncated data", "{" T1 "}", 7, 0, 0, SE_E_FORMAT, "'t1'", "past the data section"};
    case BAD_BYTES_MISMATCH:
        return (bad_case){"bytes != shape*dtype", "{\"t1\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0,
                          0, SE_E_FORMAT, "'t1'", "need 4"};
    case BAD_OVERLAP:
        return (bad_case){"overlap",
                          "{" T1 ",\"t2\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, 0, 0,
                          SE_E_FORMAT, "'t2'", "overlaps"};
    case BAD_GAP:
        return (bad_case){"gap",
                          "{" T1 ",\"t2\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20, 0, 0,
                          SE_E_FORMAT, "'t2'", "gap"};
    case BAD_DATA_LONGER:
        return (bad_case){"data longer", "{" T1 "}", 12, 0, 0, SE_E_FORMAT, "cover 8 bytes", "12"};
    case BAD_FIRST_NOT_AT_0:
        return (bad_case){"first not at 0", "{\"t1\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, 0, 0,
                          SE_E_FORMAT, "'t1'", "gap"};
    case BAD_EMPTY_NAME:
        return (bad_case){"empty name", "{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, 0,
                          SE_E_FORMAT, "tensor name", "0 bytes"};
    case BAD_NAME_TOO_LONG:
        return (bad_case){"name too long", long_name_hdr, 8, 0, 0, SE_E_FORMAT, "tensor name", "1100 bytes"};
    case BAD_METADATA_NOT_OBJECT:
        return (bad_case){"__metadata__ not object", "{\"__metadata__\":\"pt\"," T1 "}", 8, 0, 0, SE_E_FORMAT,
                          "__metadata__", "object"};
    case BAD_N_KINDS:
        break;
    }
#undef T1
    return (bad_case){"?", "", 0, 0, 0, SE_OK, "", NULL};
}

/* Builds the image of a bad case: header, zero data, then the header-length
 * override and the truncation ((size_t)-1 truncates to nothing). */
static image bad_image(const bad_case *c) {
    uint8_t zeros[64] = {0};
    image im = build_image(c->hdr, zeros, c->data_len);
    if (c->hlen) image_set_hlen(&im, c->hlen);
    if (c->truncate_to == (size_t)-1) im.size = 0;
    else if (c->truncate_to) im.size = c->truncate_to;
    return im;
}

/* Every handcrafted corrupt file fails se_st_parse with its exact status
 * and a message naming the tensor or the problem, and leaves f empty. */
TEST(test_bad_files_parse) {
    for (int k = 0; k < BAD_N_KINDS; k++) {
        bad_case c = bad_file((bad_kind)k);
        CHECK_MSG(c.code != SE_OK, "bad kind %d has no case", k);
        image im = bad_image(&c);
        se_st_file f = {0};
        se_error err = {0};
        se_status s = se_st_parse(im.bytes, im.size, "bad.safetensors", &f, &err);
        CHECK_MSG(s == c.code, "%s: got %s (%s), want %s", c.name, se_status_str(s), err.msg, se_status_str(c.code));
        CHECK_MSG(err.code == c.code, "%s: err.code %s", c.name, se_status_str(err.code));
        CHECK_MSG(strstr(err.msg, "bad.safetensors") != NULL, "%s: message does not name the file: %s", c.name, err.msg);
        CHECK_MSG(strstr(err.msg, c.word1) != NULL, "%s: message lacks '%s': %s", c.name, c.word1, err.msg);
        if (c.word2)
            CHECK_MSG(strstr(err.msg, c.word2) != NULL, "%s: message lacks '%s': %s", c.name, c.word2, err.msg);
        CHECK_MSG(f.t == NULL && f.n == 0, "%s: f not left empty", c.name);
        se_st_close(&f);
        image_free(&im);
    }
}

/* The same corrupt files fail se_st_open, mapped and read, with the same
 * status, a message naming the path, and f left zeroed. */
TEST(test_bad_files_open) {
    for (int k = 0; k < BAD_N_KINDS; k++) {
        bad_case c = bad_file((bad_kind)k);
        image im = bad_image(&c);
        char path[32];
        CHECK(write_temp(im.bytes, im.size, path) == 0);
        for (int m = 0; m < 2; m++) {
            se_st_file f;
            memset(&f, 0xAB, sizeof f); /* se_st_open must not trust what is there */
            se_error err = {0};
            se_status s = se_st_open(path, m == 1, &f, &err);
            CHECK_MSG(s == c.code, "%s (mmap=%d): got %s (%s)", c.name, m, se_status_str(s), err.msg);
            CHECK_MSG(strstr(err.msg, path) != NULL, "%s: message does not name the path: %s", c.name, err.msg);
            CHECK_MSG(strstr(err.msg, c.word1) != NULL, "%s: message lacks '%s': %s", c.name, c.word1, err.msg);
            CHECK(f.base == NULL && f.t == NULL && f.n == 0 && f.path == NULL && !f.owns);
            se_st_close(&f);
        }
        unlink(path);
        image_free(&im);
    }
}

/* Missing files and directories are SE_E_IO naming the path; a NULL err
 * is accepted. */
TEST(test_open_io_errors) {
    se_st_file f;
    se_error err = {0};
    se_status s = se_st_open("/nonexistent/dir/model.safetensors", true, &f, &err);
    CHECK(s == SE_E_IO && err.code == SE_E_IO);
    CHECK(strstr(err.msg, "/nonexistent/dir/model.safetensors") != NULL);
    CHECK(strstr(err.msg, "cannot open") != NULL);
    CHECK(f.base == NULL && f.t == NULL && f.n == 0);
    se_st_close(&f);

    s = se_st_open("/tmp", false, &f, &err);
    CHECK(s == SE_E_IO && strstr(err.msg, "not a regular file") != NULL);
    se_st_close(&f);

    s = se_st_open("/nonexistent", false, &f, NULL);
    CHECK(s == SE_E_IO);
    se_st_close(&f);
}

/* se_st_close is safe on a zeroed struct, twice, and on NULL. */
TEST(test_close_zeroed) {
    se_st_file f;
    memset(&f, 0, sizeof f);
    se_st_close(&f);
    se_st_close(&f);
    se_st_close(NULL);
    CHECK(f.n == 0 && f.t == NULL);
}

/* ==== Allocation failures ==== */

/* Fails the n-th allocation, for n = 1, 2, ..., while parsing and while
 * opening (mapped and read) the valid image. Each run must give SE_E_NOMEM
 * with an "out of memory" message or, once n exceeds the allocations the
 * call makes, SE_OK with the right contents. ASan reports any leak. */
TEST(test_alloc_failures) {
    uint8_t data[VALID_DATA_LEN];
    valid_data(data);
    image im = build_image(VALID_HDR, data, sizeof data);
    char path[32];
    CHECK(write_temp(im.bytes, im.size, path) == 0);
    for (int mode = 0; mode < 3; mode++) {
        int n_nomem = 0, n_ok = 0;
        for (long n = 1; n <= 24; n++) {
            se_st_file f = {0};
            se_error err = {0};
            se_alloc_fail_after(n);
            se_status s = mode == 0 ? se_st_parse(im.bytes, im.size, "mem", &f, &err)
                                    : se_st_open(path, mode == 2, &f, &err);
            se_alloc_fail_after(0);
            CHECK_MSG(s == SE_OK || s == SE_E_NOMEM, "mode %d, fail at %ld: %s (%s)", mode, n, se_status_str(s), err.msg);
            if (s == SE_E_NOMEM) {
                n_nomem++;
                CHECK(strstr(err.msg, "out of memory") != NULL);
                CHECK(f.t == NULL && f.n == 0);
            } else if (s == SE_OK) {
                n_ok++;
                check_valid(&f, (mode == 0 ? im.bytes : f.base) + 8 + strlen(VALID_HDR));
            }
            se_st_close(&f);
        }
        /* parse makes 1 + 5 allocations; open adds the path copy (and the
         * read buffer when not mapped). */
        CHECK_MSG(n_nomem >= 6 && n_ok > 0, "mode %d: %d NOMEM, %d OK", mode, n_nomem, n_ok);
    }
    unlink(path);
    image_free(&im);
}

/* ==== dtypes and 16-bit conversions ==== */

/* Names and sizes of every dtype, and the out-of-range fallbacks. */
TEST(test_dtype_table) {
    static const struct {
        se_st_dtype d;
        const char *name;
        size_t size;
    } want[] = {
        {SE_ST_BOOL, "BOOL", 1}, {SE_ST_U8, "U8", 1},     {SE_ST_I8, "I8", 1},
        {SE_ST_I16, "I16", 2},   {SE_ST_U16, "U16", 2},   {SE_ST_F16, "F16", 2},
        {SE_ST_BF16, "BF16", 2}, {SE_ST_I32, "I32", 4},   {SE_ST_U32, "U32", 4},
        {SE_ST_F32, "F32", 4},   {SE_ST_F64, "F64", 8},   {SE_ST_I64, "I64", 8},
        {SE_ST_U64, "U64", 8},   {SE_ST_F8_E4M3, "F8_E4M3", 1}, {SE_ST_F8_E5M2, "F8_E5M2", 1},
    };
    CHECK(sizeof want / sizeof want[0] == SE_ST_N_DTYPES);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK_MSG(strcmp(se_st_dtype_name(want[i].d), want[i].name) == 0, "dtype %zu name %s", i,
                  se_st_dtype_name(want[i].d));
        CHECK(se_st_dtype_size(want[i].d) == want[i].size);
    }
    CHECK(strcmp(se_st_dtype_name(SE_ST_N_DTYPES), "?") == 0);
    CHECK(se_st_dtype_size(SE_ST_N_DTYPES) == 0);
}

/* Returns the float bits of x, for exact (signed-zero and NaN aware)
 * comparison. */
static uint32_t bits_of(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    return b;
}

/* Hand-picked exact f16 and bf16 values. */
TEST(test_f16_bf16_exact) {
    CHECK(se_f16_to_f32(0x3C00) == 1.0f);
    CHECK(se_f16_to_f32(0xBC00) == -1.0f);
    CHECK(se_f16_to_f32(0xC100) == -2.5f);
    CHECK(se_f16_to_f32(0x4000) == 2.0f);
    CHECK(se_f16_to_f32(0x3555) == 0.333251953125f);
    CHECK(se_f16_to_f32(0x7BFF) == 65504.0f);
    CHECK(se_f16_to_f32(0xFBFF) == -65504.0f);
    CHECK(se_f16_to_f32(0x0400) == ldexpf(1.0f, -14));  /* smallest normal */
    CHECK(se_f16_to_f32(0x0001) == ldexpf(1.0f, -24));  /* smallest subnormal */
    CHECK(se_f16_to_f32(0x8001) == -ldexpf(1.0f, -24));
    CHECK(se_f16_to_f32(0x03FF) == ldexpf(1023.0f, -24)); /* largest subnormal */
    CHECK(se_f16_to_f32(0x0200) == ldexpf(1.0f, -15));
    CHECK(bits_of(se_f16_to_f32(0x0000)) == 0x00000000u);
    CHECK(bits_of(se_f16_to_f32(0x8000)) == 0x80000000u); /* -0 keeps its sign */
    CHECK(isinf(se_f16_to_f32(0x7C00)) && se_f16_to_f32(0x7C00) > 0);
    CHECK(isinf(se_f16_to_f32(0xFC00)) && se_f16_to_f32(0xFC00) < 0);
    CHECK(isnan(se_f16_to_f32(0x7E00)) && isnan(se_f16_to_f32(0x7C01)) && isnan(se_f16_to_f32(0xFFFF)));

    CHECK(se_bf16_to_f32(0x3F80) == 1.0f);
    CHECK(se_bf16_to_f32(0xC020) == -2.5f);
    CHECK(se_bf16_to_f32(0x4049) == 3.140625f);
    CHECK(se_bf16_to_f32(0x7F7F) == ldexpf(255.0f, 120)); /* largest finite: (2 - 2^-7) * 2^127 */
    CHECK(se_bf16_to_f32(0x0080) == ldexpf(1.0f, -126));  /* smallest normal */
    CHECK(se_bf16_to_f32(0x0001) == ldexpf(1.0f, -133));  /* smallest subnormal */
    CHECK(bits_of(se_bf16_to_f32(0x8000)) == 0x80000000u);
    CHECK(isinf(se_bf16_to_f32(0x7F80)) && se_bf16_to_f32(0x7F80) > 0);
    CHECK(isinf(se_bf16_to_f32(0xFF80)) && se_bf16_to_f32(0xFF80) < 0);
    CHECK(isnan(se_bf16_to_f32(0x7FC0)) && isnan(se_bf16_to_f32(0x7F81)));
}

/* Every one of the 65536 f16 and bf16 values against an independent
 * formula: (-1)^s * mantissa * 2^exponent computed with ldexp, the NaNs
 * only checked for being NaN (and for the f16 payload landing in the top
 * mantissa bits). */
TEST(test_f16_bf16_exhaustive) {
    long bad_f16 = 0, bad_bf16 = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        /* f16: 1 sign, 5 exponent, 10 mantissa bits */
        int s = (h >> 15) & 1, e = (h >> 10) & 31, m = h & 1023;
        float got = se_f16_to_f32((uint16_t)h);
        float want;
        if (e == 31) want = m ? NAN : INFINITY;
        else if (e == 0) want = ldexpf((float)m, -24);
        else want = ldexpf((float)(1024 + m), e - 25);
        if (s) want = -want;
        if (e == 31 && m) {
            if (!isnan(got) || (bits_of(got) & 0x007FE000u) >> 13 != (uint32_t)m) bad_f16++;
        } else if (bits_of(got) != bits_of(want)) {
            if (bad_f16++ < 3) fprintf(stderr, "  f16 0x%04x: got %g want %g\n", h, (double)got, (double)want);
        }
        /* bf16: 1 sign, 8 exponent, 7 mantissa bits */
        e = (h >> 7) & 255, m = h & 127;
        got = se_bf16_to_f32((uint16_t)h);
        if (e == 255) want = m ? NAN : INFINITY;
        else if (e == 0) want = ldexpf((float)m, -133);
        else want = ldexpf((float)(128 + m), e - 134);
        if (s) want = -want;
        if (e == 255 && m) {
            if (!isnan(got)) bad_bf16++;
        } else if (bits_of(got) != bits_of(want)) {
            if (bad_bf16++ < 3) fprintf(stderr, "  bf16 0x%04x: got %g want %g\n", h, (double)got, (double)want);
        }
    }
    CHECK_MSG(bad_f16 == 0, "%ld f16 values wrong", bad_f16);
    CHECK_MSG(bad_bf16 == 0, "%ld bf16 values wrong", bad_bf16);
}

/* Runs every test and exits non-zero when any failed. */
int main(void) {
    RUN(test_parse_valid);
    RUN(test_open_valid_file);
    RUN(test_parse_valid_edge_cases);
    RUN(test_zero_size_tensor_shares_offset);
    RUN(test_open_fixture);
    RUN(test_bad_files_parse);
    RUN(test_bad_files_open);
    RUN(test_open_io_errors);
    RUN(test_close_zeroed);
    RUN(test_alloc_failures);
    RUN(test_dtype_table);
    RUN(test_f16_bf16_exact);
    RUN(test_f16_bf16_exhaustive);
    return test_report("test_safetensors");
}
