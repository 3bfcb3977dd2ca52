/*
 * test_torch_bin.c - tests of the pytorch_model.bin reader (src/torch_bin.c).
 *
 * Two kinds of input:
 *   - checkpoints written by torch.save (Debian's torch 1.13) in
 *     tests/fixtures/torch_bin/, made by tools/gen_torch_bin.py. Each
 *     loadable one has a safetensors twin written from the tensors' raw
 *     bytes, and every tensor is compared with its twin bit for bit (name,
 *     dtype, shape, bytes), read by the independent safetensors reader;
 *   - handcrafted images built here in memory: a small zip writer (stored
 *     entries, data aligned to 64 like torch or deliberately not, zip64
 *     records on request) around pickles written opcode by opcode the way
 *     Python's pickler writes a state dict. From a valid one, each test
 *     changes one thing (STYLE rule 38): an os.system GLOBAL, an unknown
 *     opcode, huge claimed lengths and counts, a missing storage entry, a
 *     compressed entry, a wrong CRC, truncation at every length, ...
 * Every refusal is checked for its exact status and for a message naming
 * the entry, opcode, offset or tensor at fault; every allocation failure
 * for SE_E_NOMEM and no leak (under ASan).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "alloc.h"
#include "safetensors.h"
#include "test.h"
#include "torch_bin.h"

#define FIX "tests/fixtures/torch_bin/"

/* ==== Byte buffers ==== */

/* A growable byte buffer; tests abort on OOM (the library never does). */
typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

/* Appends len bytes. */
static void put_bytes(buf *b, const void *d, size_t len) {
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) {
            fprintf(stderr, "test_torch_bin: out of memory\n");
            exit(2);
        }
        b->cap = cap;
    }
    if (len) memcpy(b->p + b->n, d, len);
    b->n += len;
}

/* Appends one byte. */
static void put8(buf *b, unsigned v) {
    uint8_t x = (uint8_t)v;
    put_bytes(b, &x, 1);
}

/* Appends a little-endian 16-bit value. */
static void put16(buf *b, unsigned v) { put8(b, v & 0xFF), put8(b, (v >> 8) & 0xFF); }

/* Appends a little-endian 32-bit value. */
static void put32(buf *b, uint32_t v) { put16(b, v & 0xFFFF), put16(b, v >> 16); }

/* Appends a little-endian 64-bit value. */
static void put64(buf *b, uint64_t v) { put32(b, (uint32_t)v), put32(b, (uint32_t)(v >> 32)); }

/* Overwrites a little-endian 32-bit value at offset at. */
static void set32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Reads a whole file into b (empty on failure). */
static buf read_file(const char *path) {
    buf b = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return b;
    uint8_t tmp[65536];
    size_t got;
    while ((got = fread(tmp, 1, sizeof tmp, f)) > 0) put_bytes(&b, tmp, got);
    fclose(f);
    return b;
}

/* Writes b to a new temporary file and returns its path in path (>= 32
 * bytes); returns 0 on success. */
static int write_temp(const buf *b, char *path) {
    strcpy(path, "/tmp/se_tb_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    size_t put = 0;
    while (put < b->n) {
        ssize_t w = write(fd, b->p + put, b->n - put);
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

/* ==== A zip writer ==== */

/* One entry for zip_build. */
typedef struct zent {
    const char *name;
    const void *data;
    size_t len;
    unsigned method;  /* stored as-is; 0 stored */
    int misalign;     /* data offset % 64 (torch: 0) */
    bool bad_crc;     /* write a wrong CRC */
} zent;

/* Builds a zip archive of entries e[0..n): local headers padded (with a
 * "FB" extra, like torch) so each entry's data lands at misalign mod 64,
 * then the central directory and the end records. With zip64, every size
 * and offset goes in zip64 extra fields and the zip64 end record and
 * locator precede the end record. */
static buf zip_build(const zent *e, size_t n, bool zip64) {
    buf out = {0}, cd = {0};
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(e[i].name), header = out.n;
        uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)e[i].data, (uInt)e[i].len) ^ (e[i].bad_crc ? 1u : 0u);
        size_t base = header + 30 + nl + 4;
        size_t pad = (size_t)((64 + e[i].misalign - (int)(base % 64)) % 64);
        put32(&out, 0x04034b50), put16(&out, 20), put16(&out, 0x800), put16(&out, e[i].method);
        put16(&out, 0), put16(&out, 0x21), put32(&out, crc), put32(&out, (uint32_t)e[i].len);
        put32(&out, (uint32_t)e[i].len), put16(&out, (unsigned)nl), put16(&out, (unsigned)(4 + pad));
        put_bytes(&out, e[i].name, nl);
        put16(&out, 0x4246), put16(&out, (unsigned)pad);
        for (size_t k = 0; k < pad; k++) put8(&out, 'Z');
        put_bytes(&out, e[i].data, e[i].len);
        put32(&cd, 0x02014b50), put16(&cd, 45), put16(&cd, 45), put16(&cd, 0x800), put16(&cd, e[i].method);
        put16(&cd, 0), put16(&cd, 0x21), put32(&cd, crc);
        put32(&cd, zip64 ? 0xFFFFFFFFu : (uint32_t)e[i].len), put32(&cd, zip64 ? 0xFFFFFFFFu : (uint32_t)e[i].len);
        put16(&cd, (unsigned)nl), put16(&cd, zip64 ? 28 : 0), put16(&cd, 0), put16(&cd, 0), put16(&cd, 0);
        put32(&cd, 0), put32(&cd, zip64 ? 0xFFFFFFFFu : (uint32_t)header);
        put_bytes(&cd, e[i].name, nl);
        if (zip64) put16(&cd, 1), put16(&cd, 24), put64(&cd, e[i].len), put64(&cd, e[i].len), put64(&cd, header);
    }
    size_t cd_off = out.n;
    put_bytes(&out, cd.p, cd.n);
    if (zip64) {
        size_t z = out.n;
        put32(&out, 0x06064b50), put64(&out, 44), put16(&out, 45), put16(&out, 45), put32(&out, 0), put32(&out, 0);
        put64(&out, n), put64(&out, n), put64(&out, cd.n), put64(&out, cd_off);
        put32(&out, 0x07064b50), put32(&out, 0), put64(&out, z), put32(&out, 1);
    }
    put32(&out, 0x06054b50), put16(&out, 0), put16(&out, 0);
    put16(&out, zip64 ? 0xFFFF : (unsigned)n), put16(&out, zip64 ? 0xFFFF : (unsigned)n);
    put32(&out, zip64 ? 0xFFFFFFFFu : (uint32_t)cd.n), put32(&out, zip64 ? 0xFFFFFFFFu : (uint32_t)cd_off), put16(&out, 0);
    free(cd.p);
    return out;
}

/* ==== A pickle writer (what Python's pickler writes for a state dict) ==== */

/* GLOBAL "mod\nname\n". */
static void pk_global(buf *b, const char *mod, const char *name) {
    put8(b, 'c');
    put_bytes(b, mod, strlen(mod));
    put8(b, '\n');
    put_bytes(b, name, strlen(name));
    put8(b, '\n');
}

/* BINUNICODE s. */
static void pk_str(buf *b, const char *s) {
    put8(b, 'X');
    put32(b, (uint32_t)strlen(s));
    put_bytes(b, s, strlen(s));
}

/* The shortest int opcode for v, as Python's pickler picks it. */
static void pk_int(buf *b, int64_t v) {
    if (v >= 0 && v < 256) {
        put8(b, 'K'), put8(b, (unsigned)v);
    } else if (v >= 0 && v < 65536) {
        put8(b, 'M'), put16(b, (unsigned)v);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        put8(b, 'J'), put32(b, (uint32_t)(int32_t)v);
    } else {
        put8(b, 0x8a), put8(b, 8), put64(b, (uint64_t)v);
    }
}

/* The start of a state dict: PROTO 2, OrderedDict(), MARK. */
static void pk_begin(buf *b) {
    put8(b, 0x80), put8(b, 2);
    pk_global(b, "collections", "OrderedDict");
    put8(b, ')'), put8(b, 'R'), put8(b, '(');
}

/* The end of a state dict: SETITEMS, STOP. */
static void pk_end(buf *b) { put8(b, 'u'), put8(b, '.'); }

/* A persistent id ('storage', torch.<stype>, key, 'cpu', numel), BINPERSID. */
static void pk_storage(buf *b, const char *stype, const char *key, int64_t numel) {
    put8(b, '(');
    pk_str(b, "storage");
    pk_global(b, "torch", stype);
    pk_str(b, key);
    pk_str(b, "cpu");
    pk_int(b, numel);
    put8(b, 't'), put8(b, 'Q');
}

/* One state dict item: name -> _rebuild_tensor_v2(storage, offset, shape,
 * stride, False, OrderedDict()). */
static void pk_tensor(buf *b, const char *name, const char *stype, const char *key, int64_t numel, int64_t offset,
                      int nd, const int64_t *shape, const int64_t *stride) {
    pk_str(b, name);
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    put8(b, '(');
    pk_storage(b, stype, key, numel);
    pk_int(b, offset);
    put8(b, '(');
    for (int i = 0; i < nd; i++) pk_int(b, shape[i]);
    put8(b, 't'), put8(b, '(');
    for (int i = 0; i < nd; i++) pk_int(b, stride[i]);
    put8(b, 't'), put8(b, 0x89);
    pk_global(b, "collections", "OrderedDict");
    put8(b, ')'), put8(b, 'R'), put8(b, 't'), put8(b, 'R');
}

/* ==== Handcrafted checkpoints ==== */

/* The storages of the handcrafted checkpoint: "0" F32 arange(6) and "1"
 * I64 {-1, 7, 1<<40}. */
static const float S0[6] = {0, 1, 2, 3, 4, 5};
static const int64_t S1[3] = {-1, 7, INT64_C(1) << 40};

/* The valid handcrafted pickle: "w" (2, 3) F32 from storage 0, "v" (2,)
 * F32 at offset 4 of storage 0, "ids" (1, 3) I64 from storage 1. */
static buf valid_pickle(void) {
    buf b = {0};
    static const int64_t sh_w[] = {2, 3}, st_w[] = {3, 1}, sh_v[] = {2}, st_v[] = {1}, sh_i[] = {1, 3}, st_i[] = {3, 1};
    pk_begin(&b);
    pk_tensor(&b, "w", "FloatStorage", "0", 6, 0, 2, sh_w, st_w);
    pk_tensor(&b, "v", "FloatStorage", "0", 6, 4, 1, sh_v, st_v);
    pk_tensor(&b, "ids", "LongStorage", "1", 3, 0, 2, sh_i, st_i);
    pk_end(&b);
    return b;
}

/* Options for make_ckpt; all zero is the valid layout. */
typedef struct ckpt_opts {
    int misalign;           /* data offset % 64 of the storages */
    bool zip64;
    bool no_version;
    const char *byteorder;  /* written when non-NULL */
    bool drop_storage1;     /* leave out "stem/data/1" */
    unsigned method1;       /* compression method written for storage 1 */
    bool bad_crc1;          /* storage 1's CRC is wrong */
    const char *stem;       /* default "archive" */
} ckpt_opts;

/* Builds a checkpoint image around pickle pk with the two storages. */
static buf make_ckpt(const buf *pk, const ckpt_opts *o) {
    char n_pkl[128], n0[128], n1[128], n_ver[128], n_bo[128], n_sid[128];
    const char *stem = o->stem ? o->stem : "archive";
    snprintf(n_pkl, sizeof n_pkl, "%s/data.pkl", stem);
    snprintf(n0, sizeof n0, "%s/data/0", stem);
    snprintf(n1, sizeof n1, "%s/data/1", stem);
    snprintf(n_ver, sizeof n_ver, "%s/version", stem);
    snprintf(n_bo, sizeof n_bo, "%s/byteorder", stem);
    snprintf(n_sid, sizeof n_sid, "%s/.data/serialization_id", stem);
    zent e[6];
    size_t n = 0;
    e[n++] = (zent){n_pkl, pk->p, pk->n, 0, 0, false};
    if (o->byteorder) e[n++] = (zent){n_bo, o->byteorder, strlen(o->byteorder), 0, 0, false};
    e[n++] = (zent){n0, S0, sizeof S0, 0, o->misalign, false};
    if (!o->drop_storage1) e[n++] = (zent){n1, S1, sizeof S1, o->method1, o->misalign, o->bad_crc1};
    if (!o->no_version) e[n++] = (zent){n_ver, "3\n", 2, 0, 0, false};
    e[n++] = (zent){n_sid, "1234567890", 10, 0, 0, false};
    return zip_build(e, n, o->zip64);
}

/* Parses image b (with CRC checks) into f; returns the status and fills
 * err. */
static se_status parse(const buf *b, se_st_file *f, se_error *err) {
    memset(f, 0, sizeof *f);
    memset(err, 0, sizeof *err);
    return se_torch_parse(b->p, b->n, "t.bin", true, f, err);
}

/* Checks that parsing b fails with status want and a message containing
 * every non-NULL needle; leaves nothing allocated. label names the case. */
static void expect_fail(const buf *b, se_status want, const char *label, const char *needle1, const char *needle2) {
    se_st_file f;
    se_error err;
    se_status s = parse(b, &f, &err);
    CHECK_MSG(s == want, "%s: got %s (%s), want %s", label, se_status_str(s), err.msg, se_status_str(want));
    CHECK_MSG(f.t == NULL && f.n == 0, "%s: index not empty after failure", label);
    CHECK_MSG(strncmp(err.msg, "t.bin: ", 7) == 0, "%s: message does not name the file: %s", label, err.msg);
    if (needle1) CHECK_MSG(strstr(err.msg, needle1) != NULL, "%s: message lacks '%s': %s", label, needle1, err.msg);
    if (needle2) CHECK_MSG(strstr(err.msg, needle2) != NULL, "%s: message lacks '%s': %s", label, needle2, err.msg);
    se_st_close(&f);
}

/* Checks the three tensors of the valid handcrafted checkpoint. */
static void check_handmade(const se_st_file *f, const char *label) {
    CHECK_MSG(f->n == 3, "%s: %zu tensors", label, f->n);
    const se_st_tensor *w = se_st_find(f, "w"), *v = se_st_find(f, "v"), *ids = se_st_find(f, "ids");
    CHECK_MSG(w && v && ids, "%s: a tensor is missing", label);
    if (!(w && v && ids)) return;
    CHECK(w->dtype == SE_ST_F32 && w->n_dims == 2 && w->shape[0] == 2 && w->shape[1] == 3 && w->n_elem == 6);
    CHECK(w->nbytes == 24 && memcmp(w->data, S0, 24) == 0);
    CHECK(v->dtype == SE_ST_F32 && v->n_dims == 1 && v->shape[0] == 2 && v->nbytes == 8);
    CHECK(v->data == w->data + 16 && memcmp(v->data, S0 + 4, 8) == 0); /* offset 4 into the shared storage */
    CHECK(ids->dtype == SE_ST_I64 && ids->n_dims == 2 && ids->shape[0] == 1 && ids->shape[1] == 3);
    CHECK(ids->nbytes == 24 && memcmp(ids->data, S1, 24) == 0);
    CHECK((uintptr_t)w->data % 4 == 0 && (uintptr_t)ids->data % 8 == 0);
    for (size_t i = 1; i < f->n; i++) CHECK((uintptr_t)f->t[i - 1].data <= (uintptr_t)f->t[i].data);
}

/* ==== Fixtures written by torch.save ==== */

/* Compares every tensor of the checkpoint at bin_path with its
 * safetensors twin, bit for bit, reading the checkpoint mapped and read,
 * with and without CRC checks. Returns the number of tensors (0 on
 * failure). */
static size_t compare_with_twin(const char *bin_path, const char *st_path) {
    se_st_file twin;
    se_error err = {0};
    se_status s = se_st_open(st_path, false, &twin, &err);
    CHECK_MSG(s == SE_OK, "%s: %s", st_path, err.msg);
    if (s != SE_OK) return 0;
    size_t n = 0;
    for (int mode = 0; mode < 4; mode++) {
        se_st_file f;
        s = se_torch_open(bin_path, mode & 1, mode & 2, &f, &err);
        CHECK_MSG(s == SE_OK, "%s (mode %d): %s: %s", bin_path, mode, se_status_str(s), err.msg);
        if (s != SE_OK) continue;
        CHECK(f.mapped == (bool)(mode & 1) && f.owns && strcmp(f.path, bin_path) == 0);
        CHECK_MSG(f.n == twin.n, "%s: %zu tensors, twin has %zu", bin_path, f.n, twin.n);
        for (size_t i = 0; i < twin.n; i++) {
            const se_st_tensor *a = se_st_find(&f, twin.t[i].name), *b = &twin.t[i];
            CHECK_MSG(a != NULL, "%s: tensor '%s' missing", bin_path, b->name);
            if (!a) continue;
            bool same = a->dtype == b->dtype && a->n_dims == b->n_dims && a->n_elem == b->n_elem && a->nbytes == b->nbytes;
            for (int k = 0; same && k < a->n_dims; k++) same = a->shape[k] == b->shape[k];
            CHECK_MSG(same, "%s: tensor '%s' has %s/%d dims/%zu elements, twin %s/%d/%zu", bin_path, b->name,
                      se_st_dtype_name(a->dtype), a->n_dims, a->n_elem, se_st_dtype_name(b->dtype), b->n_dims,
                      b->n_elem);
            if (same) CHECK_MSG(memcmp(a->data, b->data, a->nbytes) == 0, "%s: tensor '%s' bytes differ", bin_path, b->name);
            CHECK_MSG((uintptr_t)a->data % se_st_dtype_size(a->dtype) == 0, "%s: '%s' unaligned", bin_path, b->name);
        }
        for (size_t i = 1; i < f.n; i++) CHECK((uintptr_t)f.t[i - 1].data <= (uintptr_t)f.t[i].data);
        n = f.n;
        se_st_close(&f);
        CHECK(f.t == NULL && f.base == NULL && f.path == NULL);
    }
    se_st_close(&twin);
    return n;
}

/* The layouts a real state dict has, on the BERT-shaped fixture of the
 * given folder: shared storages at offsets, a tied weight, int64
 * position_ids 0..11, a scalar and an empty tensor; mapped data stays in
 * the mapping (no copy: torch aligns it). */
static void check_bert_layouts(const char *dir, size_t esz) {
    char path[256];
    snprintf(path, sizeof path, FIX "%s/pytorch_model.bin", dir);
    se_st_file f;
    se_error err = {0};
    se_status s = se_torch_open(path, true, true, &f, &err);
    CHECK_MSG(s == SE_OK, "%s: %s", path, err.msg);
    if (s != SE_OK) return;
    const char *L = "encoder.layer.0.attention.self.";
    char qn[96], kn[96], vn[96];
    snprintf(qn, sizeof qn, "%squery.weight", L), snprintf(kn, sizeof kn, "%skey.weight", L);
    snprintf(vn, sizeof vn, "%svalue.weight", L);
    const se_st_tensor *q = se_st_find(&f, qn), *k = se_st_find(&f, kn), *v = se_st_find(&f, vn);
    const se_st_tensor *we = se_st_find(&f, "embeddings.word_embeddings.weight");
    const se_st_tensor *dec = se_st_find(&f, "cls.predictions.decoder.weight");
    const se_st_tensor *pos = se_st_find(&f, "embeddings.position_ids");
    const se_st_tensor *sc = se_st_find(&f, "extra.scalar"), *em = se_st_find(&f, "extra.empty");
    CHECK(q && k && v && we && dec && pos && sc && em);
    if (q && k && v && we && dec && pos && sc && em) {
        CHECK(k->data == q->data + 64 * esz && v->data == q->data + 128 * esz); /* storage_offset 64, 128 */
        CHECK(dec->data == we->data && dec->nbytes == we->nbytes);             /* tied */
        CHECK(pos->dtype == SE_ST_I64 && pos->n_dims == 2 && pos->shape[0] == 1 && pos->shape[1] == 12);
        for (int i = 0; i < 12; i++) {
            int64_t x;
            memcpy(&x, pos->data + 8 * i, 8);
            CHECK_MSG(x == i, "%s: position_ids[%d] = %lld", path, i, (long long)x);
        }
        CHECK(sc->n_dims == 0 && sc->n_elem == 1 && sc->nbytes == esz);
        CHECK(em->n_dims == 2 && em->shape[0] == 0 && em->shape[1] == 4 && em->n_elem == 0 && em->nbytes == 0);
        for (size_t i = 0; i < f.n; i++)
            CHECK_MSG(f.t[i].data >= f.base && f.t[i].data + f.t[i].nbytes <= f.base + f.size,
                      "%s: '%s' is not a view into the mapping", path, f.t[i].name);
    }
    se_st_close(&f);
}

/* F32 BERT-shaped state_dict(): every tensor equals its twin bit for bit,
 * and the shared/tied/offset layouts come through. */
TEST(test_torch_bert_f32) {
    CHECK(compare_with_twin(FIX "bert_f32/pytorch_model.bin", FIX "bert_f32/model.safetensors") == 28);
    check_bert_layouts("bert_f32", 4);
}

/* The same model in F16 (position_ids stays I64). */
TEST(test_torch_bert_f16) {
    CHECK(compare_with_twin(FIX "bert_f16/pytorch_model.bin", FIX "bert_f16/model.safetensors") == 28);
    check_bert_layouts("bert_f16", 2);
}

/* The same model in BF16. */
TEST(test_torch_bert_bf16) {
    CHECK(compare_with_twin(FIX "bert_bf16/pytorch_model.bin", FIX "bert_bf16/model.safetensors") == 28);
    check_bert_layouts("bert_bf16", 2);
}

/* A dict of nn.Parameter objects (_rebuild_parameter) reads like tensors. */
TEST(test_torch_parameters) { CHECK(compare_with_twin(FIX "param.bin", FIX "param.safetensors") == 2); }

/* torch.save(..., pickle_protocol=4): FRAME, SHORT_BINUNICODE,
 * STACK_GLOBAL and MEMOIZE. */
TEST(test_torch_protocol4) { CHECK(compare_with_twin(FIX "proto4.bin", FIX "proto4.safetensors") == 3); }

/* bert_f32 re-zipped without alignment: the storages are copied to
 * aligned memory and still equal the twin; with zip64 records it reads the
 * same. */
TEST(test_torch_unaligned_and_zip64_fixtures) {
    CHECK(compare_with_twin(FIX "restored.bin", FIX "bert_f32/model.safetensors") == 28);
    CHECK(compare_with_twin(FIX "zip64.bin", FIX "bert_f32/model.safetensors") == 28);
    se_st_file f;
    se_error err = {0};
    if (se_torch_open(FIX "restored.bin", true, true, &f, &err) == SE_OK) {
        const se_st_tensor *t = se_st_find(&f, "embeddings.word_embeddings.weight");
        CHECK(t && (t->data < f.base || t->data >= f.base + f.size)); /* a copy, not the mapping */
        se_st_close(&f);
    } else {
        CHECK_MSG(0, "restored.bin: %s", err.msg);
    }
}

/* 1024 tensors (two SETITEMS batches) viewing one storage at offsets 2i. */
TEST(test_torch_many_tensors) {
    se_st_file f;
    se_error err = {0};
    se_status s = se_torch_open(FIX "many.bin", true, true, &f, &err);
    CHECK_MSG(s == SE_OK, "many.bin: %s", err.msg);
    if (s != SE_OK) return;
    CHECK(f.n == 1024);
    for (int i = 0; i < 1024; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer.%d.w", i);
        const se_st_tensor *t = se_st_find(&f, name);
        float x[2] = {-1, -1};
        if (t && t->nbytes == 8) memcpy(x, t->data, 8);
        CHECK_MSG(t && t->n_elem == 2 && x[0] == 2.0f * i && x[1] == 2.0f * i + 1, "many.bin: %s", name);
    }
    se_st_close(&f);
}

/* What the reader refuses among files torch (or a zip tool) wrote. */
TEST(test_torch_refused_fixtures) {
    static const struct {
        const char *file;
        se_status want;
        const char *needle;
    } cases[] = {
        {"noncontig.bin", SE_E_UNSUPPORTED, "tensor 'w' is not contiguous (size [4, 3], stride [1, 4])"},
        {"legacy.bin", SE_E_UNSUPPORTED, "legacy torch.save format"},
        {"deflated.bin", SE_E_UNSUPPORTED, "is compressed (method 8, deflate)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, FIX "%s", cases[i].file);
        for (int mode = 0; mode < 2; mode++) {
            se_st_file f;
            se_error err = {0};
            se_status s = se_torch_open(path, mode, true, &f, &err);
            CHECK_MSG(s == cases[i].want, "%s: %s (%s)", path, se_status_str(s), err.msg);
            CHECK_MSG(strstr(err.msg, cases[i].needle) && strstr(err.msg, path), "%s: message: %s", path, err.msg);
            CHECK(f.t == NULL && f.base == NULL && f.path == NULL);
            se_st_close(&f);
        }
    }
    se_st_file f;
    se_error err = {0};
    CHECK(se_torch_open("/nonexistent/pytorch_model.bin", true, true, &f, &err) == SE_E_IO);
    CHECK(strstr(err.msg, "/nonexistent/pytorch_model.bin: cannot open") != NULL);
    CHECK(se_torch_open("tests", true, true, &f, &err) == SE_E_IO);
}

/* Every truncation of a real checkpoint fails cleanly (mostly: no end
 * record), with CRC checks on and off. */
TEST(test_torch_truncated_every_length) {
    buf b = read_file(FIX "bert_f32/pytorch_model.bin");
    CHECK(b.n > 10000);
    int bad = 0;
    for (size_t len = 0; len < b.n; len++) {
        for (int crc = 0; crc < 2; crc++) {
            se_st_file f = {0};
            se_error err = {0};
            se_status s = se_torch_parse(b.p, len, "cut.bin", crc, &f, &err);
            if (s != SE_E_FORMAT || f.t || f.n || strncmp(err.msg, "cut.bin: ", 9) != 0) {
                if (bad++ < 5) CHECK_MSG(0, "length %zu: %s (%s)", len, se_status_str(s), err.msg);
            }
            se_st_close(&f);
        }
    }
    CHECK_MSG(bad == 0, "%d truncations not refused cleanly", bad);
    free(b.p);
}

/* Returns the byte offset of tensor name's data in the checkpoint image
 * b, found by a parse without CRC checks; -1 when missing. */
static long data_offset(const buf *b, const char *name) {
    se_st_file f = {0};
    se_error err = {0};
    long off = -1;
    if (se_torch_parse(b->p, b->n, "x", false, &f, &err) == SE_OK) {
        const se_st_tensor *t = se_st_find(&f, name);
        if (t) off = (long)(t->data - b->p);
    }
    se_st_close(&f);
    return off;
}

/* CRC-32: with check_crc a flipped bit in a storage or in data.pkl is a
 * clear error; without it the reader, like torch, reads the changed bytes
 * (the decision documented in torch_bin.c: torch never checks). */
TEST(test_torch_crc) {
    buf b = read_file(FIX "bert_f32/pytorch_model.bin");
    long off = data_offset(&b, "pooler.dense.bias");
    CHECK(off > 0);
    if (off <= 0) {
        free(b.p);
        return;
    }
    b.p[off + 1] ^= 0x40;
    se_st_file f = {0};
    se_error err = {0};
    se_status s = se_torch_parse(b.p, b.n, "flip.bin", true, &f, &err);
    CHECK_MSG(s == SE_E_FORMAT && strstr(err.msg, "flip.bin: zip entry 'pytorch_model/data/") &&
                  strstr(err.msg, "fails its CRC-32 check"),
              "%s: %s", se_status_str(s), err.msg);
    se_st_close(&f);
    s = se_torch_parse(b.p, b.n, "flip.bin", false, &f, &err);
    CHECK(s == SE_OK);
    const se_st_tensor *t = se_st_find(&f, "pooler.dense.bias");
    CHECK(t && t->data == b.p + off); /* the flipped bytes, as torch would load them */
    se_st_close(&f);
    b.p[off + 1] ^= 0x40;

    /* "position_ids" -> "pnsition_ids" inside data.pkl (data at offset 64) */
    uint8_t *hit = memmem(b.p, 4096, "position_ids", 12);
    CHECK(hit != NULL);
    if (hit) {
        hit[1] = 'n';
        s = se_torch_parse(b.p, b.n, "flip.bin", true, &f, &err);
        CHECK_MSG(s == SE_E_FORMAT && strstr(err.msg, "'pytorch_model/data.pkl' fails its CRC-32 check"), "%s", err.msg);
        se_st_close(&f);
        s = se_torch_parse(b.p, b.n, "flip.bin", false, &f, &err);
        CHECK(s == SE_OK && se_st_find(&f, "embeddings.pnsition_ids") != NULL);
        se_st_close(&f);
    }
    free(b.p);
}

/* ==== Handcrafted: valid variants ==== */

/* The handcrafted checkpoint reads with the expected values, in every
 * valid variant: another stem, zip64 records, unaligned storages (copied),
 * a byteorder entry, opened from a file mapped and read. */
TEST(test_torch_handmade_valid) {
    buf pk = valid_pickle();
    struct {
        const char *label;
        ckpt_opts o;
    } cases[] = {
        {"plain", {0}},
        {"stem", {.stem = "pytorch_model"}},
        {"zip64", {.zip64 = true}},
        {"unaligned", {.misalign = 1}},
        {"unaligned zip64", {.misalign = 3, .zip64 = true}},
        {"byteorder little", {.byteorder = "little"}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        buf b = make_ckpt(&pk, &cases[c].o);
        se_st_file f;
        se_error err;
        se_status s = parse(&b, &f, &err);
        CHECK_MSG(s == SE_OK, "%s: %s", cases[c].label, err.msg);
        if (s == SE_OK) {
            check_handmade(&f, cases[c].label);
            bool copied = se_st_find(&f, "w")->data < b.p || se_st_find(&f, "w")->data >= b.p + b.n;
            CHECK_MSG(copied == (cases[c].o.misalign != 0), "%s: copied %d", cases[c].label, copied);
        }
        se_st_close(&f);
        char path[32];
        if (write_temp(&b, path) == 0) {
            for (int mode = 0; mode < 2; mode++) {
                s = se_torch_open(path, mode, true, &f, &err);
                CHECK_MSG(s == SE_OK, "%s (file, mode %d): %s", cases[c].label, mode, err.msg);
                if (s == SE_OK) check_handmade(&f, cases[c].label);
                se_st_close(&f);
            }
            unlink(path);
        }
        free(b.p);
    }
    free(pk.p);
}

/* BINPUT/BINGET/LONG_BINPUT/LONG_BINGET/MEMOIZE/DUP/POP/POP_MARK, APPEND,
 * LONG1 negatives, BINFLOAT, None and a plain dict state: a pickle using
 * the other opcodes the reader knows reads the same tensors. */
TEST(test_torch_handmade_opcodes) {
    buf b = {0};
    static const int64_t sh[] = {2}, st[] = {1};
    put8(&b, 0x80), put8(&b, 2);
    pk_global(&b, "collections", "OrderedDict");
    put8(&b, 'q'), put8(&b, 0);                          /* memo[0] = OrderedDict */
    put8(&b, ')'), put8(&b, 'R');
    put8(&b, 'r'), put32(&b, 1);                         /* memo[1] = the state dict */
    put8(&b, 0x94);                                      /* memo[2] = the state dict too */
    /* junk that leaves the stack as it was: list, appended, dup'd, popped */
    put8(&b, ']'), put8(&b, 'N'), put8(&b, 'a'), put8(&b, 'G');
    for (int i = 0; i < 8; i++) put8(&b, i == 0 ? 0x3F : i == 1 ? 0xF0 : 0); /* 1.0 */
    put8(&b, 'a'), put8(&b, '2'), put8(&b, '0'), put8(&b, '0');
    put8(&b, '('), pk_int(&b, -5), put8(&b, 0x8a), put8(&b, 1), put8(&b, 0xFF), put8(&b, '1'); /* POP_MARK */
    put8(&b, '(');
    pk_tensor(&b, "v", "FloatStorage", "0", 6, 4, 1, sh, st);
    pk_str(&b, "w2");
    put8(&b, 'j'), put32(&b, 2), put8(&b, '0');          /* LONG_BINGET then POP */
    put8(&b, 'h'), put8(&b, 1), put8(&b, '0');           /* BINGET then POP */
    pk_global(&b, "torch._utils", "_rebuild_tensor_v2");
    put8(&b, '('), pk_storage(&b, "FloatStorage", "0", 6), pk_int(&b, 1);
    put8(&b, 0x85), put8(&b, '0');                       /* TUPLE1 of the 1, then POP that tuple */
    pk_int(&b, 0), put8(&b, '('), pk_int(&b, 2), put8(&b, 't'), put8(&b, '('), pk_int(&b, 1), put8(&b, 't');
    put8(&b, 0x88), put8(&b, '}'), put8(&b, 'N'), put8(&b, 't'), put8(&b, 'R'); /* requires_grad True, {} hooks, None metadata */
    put8(&b, 'u');
    put8(&b, '}'), put8(&b, 'b');                        /* BUILD with an empty dict state */
    put8(&b, '.');
    ckpt_opts o = {0};
    buf img = make_ckpt(&b, &o);
    se_st_file f;
    se_error err;
    se_status s = parse(&img, &f, &err);
    CHECK_MSG(s == SE_OK, "%s", err.msg);
    if (s == SE_OK) {
        const se_st_tensor *v = se_st_find(&f, "v"), *w2 = se_st_find(&f, "w2");
        CHECK(f.n == 2 && v && w2);
        if (v && w2) {
            CHECK(memcmp(v->data, S0 + 4, 8) == 0 && memcmp(w2->data, S0, 8) == 0 && w2->n_elem == 2);
        }
    }
    se_st_close(&f);
    free(img.p);
    free(b.p);
}

/* ==== Handcrafted: refusals in data.pkl ==== */

/* Builds the checkpoint for pickle pk (valid zip layout) and expects the
 * given failure. Frees pk. */
static void expect_pickle_fail(buf *pk, se_status want, const char *label, const char *n1, const char *n2) {
    ckpt_opts o = {0};
    buf img = make_ckpt(pk, &o);
    expect_fail(&img, want, label, n1, n2);
    free(img.p);
    free(pk->p);
    pk->p = NULL;
}

/* The classic pickle exploit: cos.system / os.system through GLOBAL +
 * REDUCE, builtins.eval through STACK_GLOBAL, and torch globals torch.save
 * never writes for a state dict. Nothing runs: the GLOBAL itself is
 * refused with its name and offset. */
TEST(test_torch_refuses_globals) {
    static const struct {
        const char *mod, *name, *needle;
    } g[] = {
        {"os", "system", "global 'os.system' is not allowed"},
        {"posix", "system", "global 'posix.system' is not allowed"},
        {"builtins", "eval", "global 'builtins.eval' is not allowed"},
        {"torch", "load", "global 'torch.load' is not allowed"},
        {"torch._tensor", "_rebuild_from_type_v2", "global 'torch._tensor._rebuild_from_type_v2'"},
        {"torch._utils", "_rebuild_sparse_tensor", "global 'torch._utils._rebuild_sparse_tensor'"},
        {"collections", "defaultdict", "global 'collections.defaultdict'"},
        {"torch", "FloatTensor", "global 'torch.FloatTensor'"},
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        buf pk = {0};
        put8(&pk, 0x80), put8(&pk, 2);
        pk_global(&pk, g[i].mod, g[i].name);
        pk_str(&pk, "touch /tmp/pwned");
        put8(&pk, 0x85), put8(&pk, 'R'), put8(&pk, '.');
        expect_pickle_fail(&pk, SE_E_FORMAT, g[i].name, g[i].needle, "data.pkl offset 2:");
    }
    /* the same through STACK_GLOBAL (protocol 4) */
    buf pk = {0};
    put8(&pk, 0x80), put8(&pk, 4);
    put8(&pk, 0x8c), put8(&pk, 2), put_bytes(&pk, "os", 2);
    put8(&pk, 0x8c), put8(&pk, 6), put_bytes(&pk, "system", 6);
    put8(&pk, 0x93);
    expect_pickle_fail(&pk, SE_E_FORMAT, "STACK_GLOBAL", "global 'os.system' is not allowed", "offset 14:");
    /* a GLOBAL with non-printable bytes is named safely */
    pk = (buf){0};
    put8(&pk, 'c'), put_bytes(&pk, "o\x01s\nsys\x7ftem\n", 12);
    expect_pickle_fail(&pk, SE_E_FORMAT, "binary GLOBAL", "global 'o?s.sys?tem'", NULL);
    /* an unterminated GLOBAL */
    pk = (buf){0};
    put8(&pk, 'c'), put_bytes(&pk, "collections\nOrderedDict", 23);
    expect_pickle_fail(&pk, SE_E_FORMAT, "unterminated GLOBAL", "GLOBAL is unterminated", NULL);
}

/* REDUCE may only call the allowed callables, with torch's arguments. */
TEST(test_torch_refuses_bad_reduce) {
    buf pk = {0};
    pk_begin(&pk);
    pk_str(&pk, "w");
    pk_global(&pk, "torch", "FloatStorage");
    pk_int(&pk, 6), put8(&pk, 0x85), put8(&pk, 'R');
    pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_FORMAT, "storage called", "REDUCE of torch.FloatStorage is not allowed", NULL);

    pk = (buf){0};
    put8(&pk, 0x80), put8(&pk, 2);
    pk_global(&pk, "collections", "OrderedDict");
    pk_int(&pk, 1), put8(&pk, 0x85), put8(&pk, 'R'), put8(&pk, '.');
    expect_pickle_fail(&pk, SE_E_FORMAT, "OrderedDict(1)", "OrderedDict called with 1 arguments", NULL);

    pk = (buf){0};
    put8(&pk, 0x80), put8(&pk, 2), pk_str(&pk, "x"), put8(&pk, ')'), put8(&pk, 'R');
    expect_pickle_fail(&pk, SE_E_FORMAT, "REDUCE of a str", "REDUCE of a str, not a global", NULL);

    pk = (buf){0}; /* _rebuild_tensor_v2 with 5 arguments */
    pk_begin(&pk);
    pk_str(&pk, "w");
    pk_global(&pk, "torch._utils", "_rebuild_tensor_v2");
    put8(&pk, '('), pk_storage(&pk, "FloatStorage", "0", 6), pk_int(&pk, 0);
    put8(&pk, '('), pk_int(&pk, 6), put8(&pk, 't'), put8(&pk, '('), pk_int(&pk, 1), put8(&pk, 't'), put8(&pk, 0x89);
    put8(&pk, 't'), put8(&pk, 'R');
    pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_FORMAT, "5 args", "_rebuild_tensor_v2 called with 5 arguments", NULL);

    pk = (buf){0}; /* non-empty backward hooks */
    pk_begin(&pk);
    pk_str(&pk, "w");
    pk_global(&pk, "torch._utils", "_rebuild_tensor_v2");
    put8(&pk, '('), pk_storage(&pk, "FloatStorage", "0", 6), pk_int(&pk, 0);
    put8(&pk, '('), pk_int(&pk, 6), put8(&pk, 't'), put8(&pk, '('), pk_int(&pk, 1), put8(&pk, 't'), put8(&pk, 0x89);
    put8(&pk, '}'), pk_str(&pk, "k"), pk_str(&pk, "v"), put8(&pk, 's'), put8(&pk, 't'), put8(&pk, 'R');
    pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_UNSUPPORTED, "hooks", "backward_hooks is not an empty dict", NULL);

    pk = (buf){0}; /* BUILD on a plain dict */
    put8(&pk, 0x80), put8(&pk, 2), put8(&pk, '}'), put8(&pk, '}'), put8(&pk, 'b'), put8(&pk, '.');
    expect_pickle_fail(&pk, SE_E_FORMAT, "BUILD dict", "BUILD on a dict: only an OrderedDict's state", "offset 4:");

    pk = (buf){0}; /* a persistent id that is not a storage */
    put8(&pk, 0x80), put8(&pk, 2), pk_str(&pk, "module"), put8(&pk, 'Q'), put8(&pk, '.');
    expect_pickle_fail(&pk, SE_E_FORMAT, "pid", "persistent id is not a ('storage', type, key, location, numel)", NULL);
}

/* Opcodes outside what torch.save writes are refused by name. */
TEST(test_torch_refuses_opcodes) {
    static const struct {
        uint8_t op;
        const char *needle;
    } ops[] = {
        {'i', "opcode 0x69 (INST) is not allowed"},   {'o', "opcode 0x6f (OBJ)"},
        {0x81, "opcode 0x81 (NEWOBJ)"},               {0x92, "(NEWOBJ_EX)"},
        {'P', "(PERSID)"},                            {'S', "(STRING)"},
        {'B', "(BINBYTES)"},                          {0x82, "(EXT1)"},
        {0x8f, "(EMPTY_SET)"},                        {0xFF, "opcode 0xff (an unknown opcode)"},
        {0, "opcode 0x00 (an unknown opcode)"},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        buf pk = {0};
        pk_begin(&pk);
        put8(&pk, ops[i].op);
        size_t at = pk.n - 1;
        put_bytes(&pk, "\0\0\0\0\0\0\0\0", 8);
        char where[48];
        snprintf(where, sizeof where, "data.pkl offset %zu:", at);
        expect_pickle_fail(&pk, SE_E_FORMAT, ops[i].needle, ops[i].needle, where);
    }
    buf pk = {0};
    put8(&pk, 0x80), put8(&pk, 6);
    expect_pickle_fail(&pk, SE_E_FORMAT, "proto 6", "pickle protocol 6 is unknown", NULL);
}

/* Lengths and counts the file merely claims are checked against the bytes
 * there before anything is allocated or read. */
TEST(test_torch_refuses_huge_claims) {
    buf pk = {0};
    pk_begin(&pk), put8(&pk, 'X'), put32(&pk, 0xFFFFFFFFu), put_bytes(&pk, "abc", 3);
    expect_pickle_fail(&pk, SE_E_FORMAT, "BINUNICODE", "BINUNICODE needs 4294967295 bytes but only 3 remain", NULL);
    pk = (buf){0};
    pk_begin(&pk), put8(&pk, 0x8d), put64(&pk, UINT64_C(1) << 62);
    expect_pickle_fail(&pk, SE_E_FORMAT, "BINUNICODE8", "BINUNICODE8 needs 4611686018427387904 bytes", NULL);
    pk = (buf){0};
    pk_begin(&pk), put8(&pk, 0x8b), put32(&pk, 0x7FFFFFFF);
    expect_pickle_fail(&pk, SE_E_FORMAT, "LONG4", "LONG4 needs 2147483647 bytes", NULL);
    pk = (buf){0};
    pk_begin(&pk), put8(&pk, 0x8a), put8(&pk, 9), put_bytes(&pk, "123456789", 9);
    expect_pickle_fail(&pk, SE_E_FORMAT, "LONG1 9", "LONG1 of 9 bytes is out of the 64-bit range", NULL);
    pk = (buf){0};
    put8(&pk, 0x80), put8(&pk, 4), put8(&pk, 0x95), put64(&pk, UINT64_C(1) << 40);
    expect_pickle_fail(&pk, SE_E_FORMAT, "FRAME", "FRAME of 1099511627776 bytes runs past the end", NULL);
    pk = (buf){0};
    pk_begin(&pk), put8(&pk, 'N'), put8(&pk, 'r'), put32(&pk, 0xFFFFFFF0u);
    expect_pickle_fail(&pk, SE_E_FORMAT, "LONG_BINPUT", "memo index 4294967280 skips ahead of the next free index 0", NULL);
    pk = (buf){0};
    pk_begin(&pk), put8(&pk, 'j'), put32(&pk, 7);
    expect_pickle_fail(&pk, SE_E_FORMAT, "LONG_BINGET", "memo index 7 was never stored", NULL);

    /* a storage numel far beyond its 24 bytes, and a tensor shape whose
     * product overflows or exceeds its storage */
    static const int64_t sh1[] = {INT64_C(1) << 40, INT64_C(1) << 40}, st1[] = {INT64_C(1) << 40, 1};
    static const int64_t sh2[] = {7}, st2[] = {1}, sh3[] = {2}, st3[] = {1};
    pk = (buf){0};
    pk_begin(&pk), pk_tensor(&pk, "w", "FloatStorage", "0", INT64_C(1) << 62, 0, 1, sh2, st2), pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_FORMAT, "numel", "storage '0': FloatStorage of 4611686018427387904 elements",
                       "does not match the 24 bytes of 'archive/data/0'");
    pk = (buf){0};
    pk_begin(&pk), pk_tensor(&pk, "w", "FloatStorage", "0", 6, 0, 2, sh1, st1), pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_FORMAT, "shape overflow", "tensor 'w' shape overflows", NULL);
    pk = (buf){0};
    pk_begin(&pk), pk_tensor(&pk, "w", "FloatStorage", "0", 6, 0, 1, sh2, st2), pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_FORMAT, "shape > storage", "tensor 'w' (7 elements at offset 0) runs past its storage '0' of 6",
                       NULL);
    pk = (buf){0};
    pk_begin(&pk), pk_tensor(&pk, "w", "FloatStorage", "0", 6, 5, 1, sh3, st3), pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_FORMAT, "offset past", "(2 elements at offset 5) runs past", NULL);
    pk = (buf){0};
    pk_begin(&pk), pk_tensor(&pk, "w", "FloatStorage", "0", 6, -1, 1, sh3, st3), pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_FORMAT, "negative offset", "tensor 'w' has negative storage_offset -1", NULL);
    static const int64_t shn[] = {-2}, s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 6};
    pk = (buf){0};
    pk_begin(&pk), pk_tensor(&pk, "w", "FloatStorage", "0", 6, 0, 1, shn, st3), pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_FORMAT, "negative size", "tensor 'w' has negative size[0] = -2", NULL);
    pk = (buf){0};
    pk_begin(&pk), pk_tensor(&pk, "w", "FloatStorage", "0", 6, 0, 9, s9, s9), pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_UNSUPPORTED, "9 dims", "_rebuild_tensor_v2 size has 9 dims (at most 8)", NULL);
}

/* The stack, MARK nesting and the arena are capped. */
TEST(test_torch_refuses_deep_and_big) {
    buf pk = {0};
    put8(&pk, 0x80), put8(&pk, 2);
    for (int i = 0; i < 140000; i++) put8(&pk, 'N');
    expect_pickle_fail(&pk, SE_E_FORMAT, "stack", "the stack grows past 131072 entries", NULL);
    pk = (buf){0};
    for (int i = 0; i < 65; i++) put8(&pk, '(');
    expect_pickle_fail(&pk, SE_E_FORMAT, "marks", "MARKs nest deeper than 64", "offset 64:");
    pk = (buf){0}; /* 1-byte opcodes that each allocate a 48-byte value */
    put8(&pk, 0x80), put8(&pk, 2);
    for (int i = 0; i < 100000; i++) put8(&pk, '}');
    expect_pickle_fail(&pk, SE_E_FORMAT, "arena", "bytes of working memory (40x its size): refused", NULL);
    pk = (buf){0};
    put8(&pk, 0x80), put8(&pk, 2), put8(&pk, '0');
    expect_pickle_fail(&pk, SE_E_FORMAT, "pop empty", "no MARK to pop", NULL);
    pk = (buf){0};
    put8(&pk, 0x80), put8(&pk, 2), put8(&pk, 'N'), put8(&pk, '('), put8(&pk, 0x85);
    expect_pickle_fail(&pk, SE_E_FORMAT, "underflow across mark", "stack underflow", "offset 4:");
    pk = (buf){0};
    put8(&pk, 0x80), put8(&pk, 2), put8(&pk, 'N');
    expect_pickle_fail(&pk, SE_E_FORMAT, "no STOP", "data.pkl offset 3: data.pkl ends without STOP", NULL);
}

/* What the unpickled object must be: a dict of unique names to tensors. */
TEST(test_torch_refuses_non_state_dicts) {
    buf pk = {0};
    put8(&pk, 0x80), put8(&pk, 2), put8(&pk, ']'), put8(&pk, '.');
    expect_pickle_fail(&pk, SE_E_FORMAT, "list", "data.pkl holds a list, not a state dict", NULL);
    pk = (buf){0}; /* {'epoch': 3} */
    pk_begin(&pk), pk_str(&pk, "epoch"), pk_int(&pk, 3), pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_FORMAT, "int value", "'epoch' is an int, not a tensor", NULL);
    pk = (buf){0}; /* {'model': {...}}: a training checkpoint */
    pk_begin(&pk), pk_str(&pk, "model"), put8(&pk, '}'), pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_FORMAT, "nested", "'model' is a dict, not a tensor", NULL);
    pk = (buf){0};
    pk_begin(&pk), pk_int(&pk, 1), put8(&pk, 'N'), pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_FORMAT, "int key", "state dict key #0 is an int, not a string", NULL);
    static const int64_t sh[] = {2}, st[] = {1};
    pk = (buf){0};
    pk_begin(&pk);
    pk_tensor(&pk, "w", "FloatStorage", "0", 6, 0, 1, sh, st);
    pk_tensor(&pk, "w", "FloatStorage", "0", 6, 2, 1, sh, st);
    pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_FORMAT, "duplicate", "tensor 'w' appears twice in the state dict", NULL);
    pk = (buf){0};
    pk_begin(&pk), pk_tensor(&pk, "", "FloatStorage", "0", 6, 0, 1, sh, st), pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_FORMAT, "empty name", "state dict key #0 ('') is not a valid tensor name", NULL);
    pk = (buf){0};
    pk_begin(&pk), pk_tensor(&pk, "a\xff", "FloatStorage", "0", 6, 0, 1, sh, st), pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_FORMAT, "bad utf8 name", "('a?') is not a valid tensor name", NULL);
    /* one storage used as two dtypes */
    pk = (buf){0};
    pk_begin(&pk);
    pk_tensor(&pk, "a", "FloatStorage", "0", 6, 0, 1, sh, st);
    pk_tensor(&pk, "b", "IntStorage", "0", 6, 0, 1, sh, st);
    pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_FORMAT, "two dtypes", "storage '0' is used as F32 and as I32", NULL);
    /* a transposed view, handmade */
    static const int64_t sh2[] = {3, 2}, st2[] = {1, 3};
    pk = (buf){0};
    pk_begin(&pk), pk_tensor(&pk, "t", "FloatStorage", "0", 6, 0, 2, sh2, st2), pk_end(&pk);
    expect_pickle_fail(&pk, SE_E_UNSUPPORTED, "transposed", "tensor 't' is not contiguous (size [3, 2], stride [1, 3])",
                       NULL);
    /* size-1 dims may carry any stride (torch ignores them), as may empty tensors */
    static const int64_t sh3[] = {1, 6}, st3[] = {99, 1}, sh4[] = {0, 5}, st4[] = {7, 7};
    pk = (buf){0};
    pk_begin(&pk);
    pk_tensor(&pk, "a", "FloatStorage", "0", 6, 0, 2, sh3, st3);
    pk_tensor(&pk, "b", "FloatStorage", "0", 6, 6, 2, sh4, st4);
    pk_end(&pk);
    ckpt_opts o = {0};
    buf img = make_ckpt(&pk, &o);
    se_st_file f;
    se_error err;
    se_status s = parse(&img, &f, &err);
    CHECK_MSG(s == SE_OK, "size-1 stride: %s", err.msg);
    CHECK(s != SE_OK || (f.n == 2 && se_st_find(&f, "a")->n_elem == 6 && se_st_find(&f, "b")->n_elem == 0));
    se_st_close(&f);
    free(img.p);
    free(pk.p);
}

/* ==== Handcrafted: refusals in the zip container ==== */

/* Missing entries, compression, a wrong CRC, the byteorder and version
 * records. */
TEST(test_torch_refuses_bad_entries) {
    buf pk = valid_pickle();
    struct {
        const char *label;
        ckpt_opts o;
        se_status want;
        const char *n1, *n2;
    } cases[] = {
        {"storage missing", {.drop_storage1 = true}, SE_E_FORMAT, "storage '1': zip entry 'archive/data/1' is missing",
         "data.pkl offset"},
        {"compressed storage", {.method1 = 8}, SE_E_UNSUPPORTED, "zip entry 'archive/data/1' is compressed (method 8",
         NULL},
        {"bzip2 storage", {.method1 = 12}, SE_E_UNSUPPORTED, "is compressed (method 12)", NULL},
        {"wrong CRC", {.bad_crc1 = true}, SE_E_FORMAT, "zip entry 'archive/data/1' fails its CRC-32 check", NULL},
        {"no version", {.no_version = true}, SE_E_FORMAT, "no 'archive/version' entry", NULL},
        {"big endian", {.byteorder = "big"}, SE_E_UNSUPPORTED, "saved big-endian", NULL},
        {"byteorder junk", {.byteorder = "middle"}, SE_E_FORMAT, "'archive/byteorder' is neither", NULL},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        buf b = make_ckpt(&pk, &cases[c].o);
        expect_fail(&b, cases[c].want, cases[c].label, cases[c].n1, cases[c].n2);
        free(b.p);
    }
    /* a bad version record */
    zent e[3] = {{"a/data.pkl", pk.p, pk.n, 0, 0, false}, {"a/version", "x3", 2, 0, 0, false}, {"a/data/0", S0, 24, 0, 0, false}};
    buf b = zip_build(e, 3, false);
    expect_fail(&b, SE_E_FORMAT, "version junk", "'a/version' is not a decimal number", NULL);
    free(b.p);
    /* no data.pkl at all, or two of them, or one nested too deep */
    zent e2[2] = {{"a/version", "3", 1, 0, 0, false}, {"a/b/data.pkl", pk.p, pk.n, 0, 0, false}};
    b = zip_build(e2, 2, false);
    expect_fail(&b, SE_E_FORMAT, "no data.pkl", "no '<name>/data.pkl' entry: not a torch.save checkpoint", NULL);
    free(b.p);
    zent e3[3] = {{"a/data.pkl", pk.p, pk.n, 0, 0, false}, {"b/data.pkl", pk.p, pk.n, 0, 0, false}, {"a/version", "3", 1, 0, 0, false}};
    b = zip_build(e3, 3, false);
    expect_fail(&b, SE_E_FORMAT, "two pickles", "two pickles, 'a/data.pkl' and 'b/data.pkl'", NULL);
    free(b.p);
    /* the same name twice */
    zent e4[3] = {{"a/data.pkl", pk.p, pk.n, 0, 0, false}, {"a/version", "3", 1, 0, 0, false}, {"a/version", "3", 1, 0, 0, false}};
    b = zip_build(e4, 3, false);
    expect_fail(&b, SE_E_FORMAT, "duplicate entry", "zip entry 'a/version' appears twice", NULL);
    free(b.p);
    free(pk.p);
}

/* Offset of the central directory in a zip_build image without zip64. */
static size_t cd_offset(const buf *b) {
    const uint8_t *e = b->p + b->n - 22;
    return (size_t)e[16] | (size_t)e[17] << 8 | (size_t)e[18] << 16 | (size_t)e[19] << 24;
}

/* Corrupt zip structure: the end records, the central directory and the
 * local headers are each checked against the bytes really there. */
TEST(test_torch_refuses_bad_zip) {
    buf pk = valid_pickle();
    ckpt_opts o = {0};
    buf good = make_ckpt(&pk, &o);
    size_t cd = cd_offset(&good), eocd = good.n - 22;
    buf b = {0};
#define MUTATE(label, stmt, want, n1)                                                                                  \
    do {                                                                                                               \
        b.n = 0;                                                                                                       \
        put_bytes(&b, good.p, good.n);                                                                                 \
        stmt;                                                                                                          \
        expect_fail(&b, want, label, n1, NULL);                                                                        \
    } while (0)
    MUTATE("not a zip", b.p[0] = 'X', SE_E_FORMAT, "not a zip archive");
    MUTATE("no end record", b.p[eocd] = 'X', SE_E_FORMAT, "no zip end-of-central-directory record");
    MUTATE("comment length", b.p[eocd + 20] = 5, SE_E_FORMAT, "no zip end-of-central-directory record");
    MUTATE("entry count", (b.p[eocd + 10] = 0xFE, b.p[eocd + 8] = 0xFE), SE_E_FORMAT, "zip claims 254 entries");
    MUTATE("disks", b.p[eocd + 4] = 1, SE_E_UNSUPPORTED, "multi-disk zip archives are not supported");
    MUTATE("disk counts", b.p[eocd + 8] = 1, SE_E_UNSUPPORTED, "multi-disk");
    MUTATE("cd size", set32(b.p + eocd + 12, 0x7FFFFFF0u), SE_E_FORMAT, "zip central directory [");
    MUTATE("cd offset", set32(b.p + eocd + 16, (uint32_t)cd + 1), SE_E_FORMAT, "zip central directory [");
    MUTATE("zip64 missing", set32(b.p + eocd + 16, 0xFFFFFFFFu), SE_E_FORMAT, "defers to a zip64 record that is missing");
    MUTATE("cd signature", b.p[cd] = 'X', SE_E_FORMAT, "zip central directory entry 0 is missing or has a bad signature");
    MUTATE("cd name length", (b.p[cd + 28] = 0xFF, b.p[cd + 29] = 0xFF), SE_E_FORMAT,
           "zip central directory entry 0 runs past the directory's end");
    MUTATE("encrypted", b.p[cd + 8] |= 1, SE_E_UNSUPPORTED, "zip entry 'archive/data.pkl' is encrypted");
    MUTATE("entry disk", b.p[cd + 34] = 2, SE_E_UNSUPPORTED, "multi-disk");
    MUTATE("sizes differ", b.p[cd + 20] ^= 1, SE_E_FORMAT, "stored zip entry 'archive/data.pkl' has compressed size");
    MUTATE("huge size", (set32(b.p + cd + 20, 0x7FFFFFF0u), set32(b.p + cd + 24, 0x7FFFFFF0u)), SE_E_FORMAT,
           "data [64, +2147483632) runs into the central directory");
    MUTATE("header offset", set32(b.p + cd + 42, 0x7FFFFFF0u), SE_E_FORMAT, "local header at 2147483632 is missing");
    MUTATE("local signature", b.p[0 + 1] = 'X', SE_E_FORMAT, "not a zip archive");
    MUTATE("local name", b.p[30] = 'X', SE_E_FORMAT, "zip entry 'archive/data.pkl': local header names a different file");
    MUTATE("local extra", (b.p[28] = 0xFF, b.p[29] = 0x7F), SE_E_FORMAT, "runs into the central directory");
    /* entry 1 (archive/data/0, 24 bytes) grown to 200 bytes runs over entry 2's header */
    MUTATE("overlap", (set32(b.p + cd + 62 + 20, 200), set32(b.p + cd + 62 + 24, 200)), SE_E_FORMAT,
           "zip entries 'archive/data/1' and the one before it overlap");
#undef MUTATE
    free(good.p);

    /* zip64: a truncated extra field, a misplaced zip64 end record */
    o.zip64 = true;
    good = make_ckpt(&pk, &o);
    size_t loc = good.n - 22 - 20;
    uint64_t z64 = 0;
    for (int i = 7; i >= 0; i--) z64 = z64 << 8 | good.p[loc + 8 + i];
    size_t cd64 = 0;
    for (int i = 7; i >= 0; i--) cd64 = cd64 << 8 | good.p[z64 + 48 + i];
    b.n = 0, put_bytes(&b, good.p, good.n);
    b.p[cd64 + 46 + strlen("archive/data.pkl") + 2] = 8; /* the extra's length: 24 -> 8 */
    expect_fail(&b, SE_E_FORMAT, "zip64 extra short", "zip64 extra field is too short", NULL);
    b.n = 0, put_bytes(&b, good.p, good.n);
    b.p[cd64 + 46 + strlen("archive/data.pkl") + 2] = 200;
    expect_fail(&b, SE_E_FORMAT, "extra long", "extra field runs past its end", NULL);
    b.n = 0, put_bytes(&b, good.p, good.n);
    b.p[loc + 8] ^= 1;
    expect_fail(&b, SE_E_FORMAT, "zip64 record misplaced", "zip64 end-of-central-directory record is missing", NULL);
    b.n = 0, put_bytes(&b, good.p, good.n);
    b.p[loc + 16] = 2;
    expect_fail(&b, SE_E_UNSUPPORTED, "zip64 disks", "multi-disk", NULL);
    b.n = 0, put_bytes(&b, good.p, good.n);
    b.p[z64 + 40 + 5] = 1; /* cd size += 2^40 */
    expect_fail(&b, SE_E_FORMAT, "zip64 cd size", "runs past its end records", NULL);
    free(good.p);
    free(b.p);
    free(pk.p);
}

/* ==== Allocation failures ==== */

/* Every allocation failure while reading a real checkpoint (and one with
 * copied storages) gives SE_E_NOMEM or SE_OK and leaks nothing (run under
 * ASan to see leaks). */
TEST(test_torch_alloc_failures) {
    buf real = read_file(FIX "bert_f32/pytorch_model.bin");
    buf pk = valid_pickle();
    ckpt_opts o = {.misalign = 2};
    buf mis = make_ckpt(&pk, &o);
    const buf *imgs[2] = {&real, &mis};
    for (int k = 0; k < 2; k++) {
        int n_nomem = 0, n_ok = 0;
        for (long n = 1; n < 200; n++) {
            se_st_file f = {0};
            se_error err = {0};
            se_alloc_fail_after(n);
            se_status s = se_torch_parse(imgs[k]->p, imgs[k]->n, "oom.bin", true, &f, &err);
            se_alloc_fail_after(0);
            CHECK_MSG(s == SE_OK || s == SE_E_NOMEM, "image %d, fail at %ld: %s (%s)", k, n, se_status_str(s), err.msg);
            if (s == SE_E_NOMEM) {
                n_nomem++;
                CHECK(strstr(err.msg, "out of memory") != NULL);
                CHECK(f.t == NULL && f.n == 0);
            } else if (s == SE_OK) {
                n_ok++;
                CHECK(f.n == (k == 0 ? 28u : 3u));
                if (k == 1) check_handmade(&f, "oom");
            }
            se_st_close(&f);
        }
        CHECK_MSG(n_nomem >= 8 && n_ok > 0, "image %d: %d NOMEM, %d OK", k, n_nomem, n_ok);
    }
    free(real.p);
    free(mis.p);
    free(pk.p);
}

int main(void) {
    RUN(test_torch_bert_f32);
    RUN(test_torch_bert_f16);
    RUN(test_torch_bert_bf16);
    RUN(test_torch_parameters);
    RUN(test_torch_protocol4);
    RUN(test_torch_unaligned_and_zip64_fixtures);
    RUN(test_torch_many_tensors);
    RUN(test_torch_refused_fixtures);
    RUN(test_torch_truncated_every_length);
    RUN(test_torch_crc);
    RUN(test_torch_handmade_valid);
    RUN(test_torch_handmade_opcodes);
    RUN(test_torch_refuses_globals);
    RUN(test_torch_refuses_bad_reduce);
    RUN(test_torch_refuses_opcodes);
    RUN(test_torch_refuses_huge_claims);
    RUN(test_torch_refuses_deep_and_big);
    RUN(test_torch_refuses_non_state_dicts);
    RUN(test_torch_refuses_bad_entries);
    RUN(test_torch_refuses_bad_zip);
    RUN(test_torch_alloc_failures);
    return test_report("test_torch_bin");
}
