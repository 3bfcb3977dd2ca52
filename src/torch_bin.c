/*
 * torch_bin.c - reading the zip checkpoints torch.save writes
 * (pytorch_model.bin, torch >= 1.6), validating everything and executing
 * nothing.
 *
 * The container is a zip archive (PKWARE APPNOTE 6.3) whose entries are
 * all stored, never compressed, and whose data torch aligns to 64 bytes by
 * padding the local header's extra field ("FB" records):
 *     <stem>/data.pkl        the state dict, pickled (protocol 2)
 *     <stem>/data/<key>      one entry per storage: its raw little-endian bytes
 *     <stem>/version         "3\n" (or <stem>/.data/version)
 *     <stem>/byteorder       "little" (torch >= 2.1; absent means little)
 *     <stem>/.data/serialization_id   (torch >= 2.2; ignored)
 * <stem> is the file name without extension at save time ("pytorch_model"),
 * so the reader finds it from the one entry named "<stem>/data.pkl". torch
 * sets bit 3 of the flags (sizes in a data descriptor), so sizes, CRCs and
 * offsets come from the central directory; the local header only gives the
 * name and extra lengths that place the data. Multi-GB checkpoints use
 * zip64: the zip64 end-of-central-directory record and locator, and the
 * zip64 extra field (0x0001) of any entry whose size or offset does not fit
 * 32 bits. torch writes the zip64 end record always.
 *
 * The zip reader trusts nothing: the central directory must lie inside the
 * file before its end records, its entry count is bounded by its size,
 * every entry's local header and data must lie before the central
 * directory, entries may not overlap or repeat a name, multi-disk archives
 * and encryption are refused, and a compressed entry is refused with a
 * clear message (SE_E_UNSUPPORTED) when it is one this reader needs.
 *
 * CRC-32: torch does not check it (torch 1.13 loads a checkpoint with a
 * flipped byte in data.pkl or in a storage without complaint, tried with
 * Debian's python3-torch). Here the caller decides: with check_crc every
 * entry that is read (data.pkl, version, byteorder, each storage the pickle
 * names) is verified once, which reads the whole checkpoint (zlib's crc32
 * runs at about 2.3 GB/s here) and turns a corrupt download into an error
 * instead of silently wrong weights; without it (the fuzz target, or a
 * loader that prefers torch's behaviour) the bytes are trusted as torch
 * trusts them. test_torch_crc shows both.
 *
 * data.pkl is run by a restricted unpickler. It knows the opcodes Python's
 * pickler emits for a state dict (protocol 2, plus the protocol 4 forms
 * FRAME, SHORT_BINUNICODE, BINUNICODE8, STACK_GLOBAL and MEMOIZE so that
 * torch.save(..., pickle_protocol=4) reads too) and builds plain values:
 * None, bools, ints, floats, strings, tuples, lists, dicts. GLOBAL may name
 * only collections.OrderedDict, torch._utils._rebuild_tensor_v2,
 * torch._utils._rebuild_parameter(_with_state) and the typed storage
 * classes torch.<Float|Half|BFloat16|Double|Long|Int|Short|Char|Byte|Bool>
 * Storage; REDUCE may call only the first four, each checked for the
 * argument shapes torch writes; BUILD may only set an OrderedDict's state
 * (the _metadata attribute a state_dict() carries, ignored); BINPERSID
 * takes only ('storage', <storage class>, key, location, numel). Any other
 * opcode or global is refused with its name and offset. Nothing is ever
 * imported or called: the "calls" are interpreted by this file.
 *
 * Limits, so that no count the file claims is allocated before the bytes
 * backing it are seen: every read is checked against the bytes remaining;
 * the value stack holds at most STACK_MAX entries and MARK nests at most
 * MARK_MAX deep; the memo may only be filled in order (index == its size,
 * as Python's pickler and MEMOIZE do) or overwritten, up to MEMO_MAX
 * entries; all values live in one arena capped at ARENA_PER_BYTE times the
 * pickle's size plus ARENA_FLOOR, where pickles torch wrote need 10-12x
 * (a run of 1-byte EMPTY_DICTs, 48 bytes each, is what reaches the cap);
 * data.pkl itself is at most PKL_MAX bytes.
 *
 * The result must be a dict (an OrderedDict, as state_dict() returns) of
 * string keys to tensors. Each tensor's storage entry must hold exactly
 * numel * element-size bytes, its size/stride must be contiguous (strides
 * of size-1 dims are ignored, as torch ignores them; a transposed or
 * otherwise strided view is refused: SE_E_UNSUPPORTED), and storage_offset
 * + n_elem must fit the storage. Tensors sharing a storage (tied
 * embeddings, qkv chunks at an offset) share its bytes.
 *
 * Output: the se_st_file of safetensors.h. Data pointers point into the
 * file image where the storage's bytes are aligned for its dtype (torch
 * aligns to 64, so always for files torch wrote). An unaligned storage is
 * copied, once, into an aligned private buffer. That buffer is the tail of
 * the same allocation as the tensor array f->t, so se_st_close, which frees
 * f->t, releases it too and se_st_file needs no new field. The index is
 * sorted by data pointer (then size, then name), as safetensors.h promises.
 *
 * References: PKWARE APPNOTE.TXT 6.3.10 (sections 4.3.7, 4.3.12, 4.3.14-16,
 * 4.5.3); CPython Lib/pickle.py and Lib/pickletools.py (opcode semantics);
 * torch/serialization.py (_save, persistent_id, _load) and
 * torch/_tensor.py (__reduce_ex__) for what torch.save writes.
 */
#include "torch_bin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "alloc.h"
#include "error.h"
#include "unicode.h"

#define PKL_MAX ((size_t)64 << 20)   /* data.pkl bytes */
#define STACK_MAX ((size_t)1 << 17)  /* value stack entries (SETITEMS batches are 2000) */
#define MARK_MAX 64                   /* MARK nesting (torch writes 3) */
#define MEMO_MAX ((size_t)1 << 24)    /* memo entries */
#define ARENA_PER_BYTE 40             /* arena bytes per pickle byte (real pickles: 10-12) */
#define ARENA_FLOOR ((size_t)256 << 10) /* plus this much */
#define ARENA_CHUNK ((size_t)64 << 10)
#define NAME_MAX_LEN 1024             /* tensor name bytes, as in safetensors.c */
#define GLOBAL_MAX 256                /* "module\nname\n" bytes */

/* ==== Little-endian field readers ==== */

/* Reads an unsigned little-endian 16-bit value at p. */
static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }

/* Reads an unsigned little-endian 32-bit value at p. */
static uint32_t rd32(const uint8_t *p) { return rd16(p) | rd16(p + 2) << 16; }

/* Reads an unsigned little-endian 64-bit value at p. */
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* Copies up to n bytes of s into out (capacity cap >= 4) for an error
 * message, replacing bytes outside printable ASCII with '?' and marking a
 * cut with "...". Returns out. */
static char *printable(const uint8_t *s, size_t n, char *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k + 4 >= cap) {
            memcpy(out + k, "...", 3);
            k += 3;
            break;
        }
        out[k++] = (s[i] >= 0x20 && s[i] < 0x7F) ? (char)s[i] : '?';
    }
    out[k] = 0;
    return out;
}

/* ==== The zip container ==== */

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define EOCD_LEN 22
#define LOC64_LEN 20
#define EOCD64_LEN 56
#define CENTRAL_LEN 46
#define LOCAL_LEN 30

/* One entry of the central directory, resolved against its local header. */
typedef struct zentry {
    const uint8_t *name; /* into the central directory; not NUL-terminated */
    size_t name_len;
    uint64_t header;     /* offset of the local header */
    uint64_t off;        /* offset of the data */
    uint64_t size;       /* data bytes (stored: compressed == uncompressed) */
    uint32_t crc;
    uint32_t method;     /* 0 stored, 8 deflate, ... */
    int dtype;           /* the storage dtype data.pkl uses it as; -1 none yet */
    bool crc_checked;
    bool used;           /* a tensor of the result points into it */
    const uint8_t *data; /* where the tensors read it: the image or an aligned copy */
} zentry;

/* Everything one read needs: the image, the zip index and the unpickler. */
typedef struct reader {
    const uint8_t *img;  /* the whole file image */
    size_t size;
    const char *what;    /* the file, for messages */
    bool check_crc;
    se_error *err;
    zentry *e;           /* sorted by name */
    size_t n_e;
    const uint8_t *stem; /* "pytorch_model" in "pytorch_model/data.pkl" */
    size_t stem_len;
    /* the unpickler */
    const uint8_t *pkl;
    size_t pkl_len;
    size_t op;           /* offset of the opcode being run, for messages */
    struct chunk *arena;
    size_t arena_bytes, arena_cap;
    struct val **stack;  /* (sp) */
    size_t sp, stack_cap;
    size_t marks[MARK_MAX];
    size_t n_marks;
    struct val **memo;   /* (n_memo) */
    size_t n_memo, memo_cap;
} reader;

/* Orders zip entries by name (bytes, then length). */
static int entry_by_name(const void *a, const void *b) {
    const zentry *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = n ? memcmp(x->name, y->name, n) : 0;
    if (c) return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

/* Orders zip entries by the offset of their local header. */
static int entry_by_header(const void *a, const void *b) {
    const zentry *x = a, *y = b;
    return x->header < y->header ? -1 : x->header > y->header;
}

/* Finds the entry named a + b + c (three pieces, any may be empty) by
 * binary search over the name-sorted index; NULL when there is none. */
static zentry *find_entry(reader *r, const uint8_t *a, size_t na, const char *b, const uint8_t *c, size_t nc) {
    size_t nb = strlen(b), total = na + nb + nc;
    size_t lo = 0, hi = r->n_e;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        zentry *e = &r->e[mid];
        /* compare e->name with the concatenation, piece by piece */
        const uint8_t *pieces[3] = {a, (const uint8_t *)b, c};
        size_t lens[3] = {na, nb, nc}, pos = 0;
        int cmp = 0;
        for (int k = 0; k < 3 && cmp == 0; k++) {
            size_t avail = e->name_len > pos ? e->name_len - pos : 0;
            size_t m = lens[k] < avail ? lens[k] : avail;
            if (m) cmp = memcmp(e->name + pos, pieces[k], m);
            if (cmp == 0 && m < lens[k]) cmp = -1; /* e->name ran out first */
            pos += m;
        }
        if (cmp == 0 && e->name_len > total) cmp = 1;
        if (cmp == 0) return e;
        if (cmp < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Returns the bytes of entry e for reading: refuses a compressed or
 * encrypted entry (SE_E_UNSUPPORTED) and, with check_crc, verifies its
 * CRC-32 the first time (SE_E_FORMAT on a mismatch). */
static se_status entry_bytes(reader *r, zentry *e, const uint8_t **out) {
    char nm[160];
    if (e->method != 0)
        return se_err(r->err, SE_E_UNSUPPORTED,
                      "%s: zip entry '%s' is compressed (method %u%s); torch.save writes stored entries: "
                      "re-save it with torch.save or re-zip without compression",
                      r->what, printable(e->name, e->name_len, nm, sizeof nm), (unsigned)e->method,
                      e->method == 8 ? ", deflate" : "");
    const uint8_t *p = r->img + e->off;
    if (r->check_crc && !e->crc_checked) {
        uLong crc = crc32(0L, Z_NULL, 0);
        for (uint64_t done = 0; done < e->size;) {
            uint64_t step = e->size - done > (1u << 30) ? (1u << 30) : e->size - done;
            crc = crc32(crc, p + done, (uInt)step);
            done += step;
        }
        if ((uint32_t)crc != e->crc)
            return se_err(r->err, SE_E_FORMAT,
                          "%s: zip entry '%s' fails its CRC-32 check (stored %08x, computed %08x): the file is corrupt",
                          r->what, printable(e->name, e->name_len, nm, sizeof nm), (unsigned)e->crc,
                          (unsigned)(uint32_t)crc);
        e->crc_checked = true;
    }
    *out = p;
    return SE_OK;
}

/* Reads the zip64 extended-information extra field of a central directory
 * entry: the 64-bit values of the 32-bit fields that hold 0xFFFFFFFF, in
 * the order usize, csize, header offset (and a disk number after them).
 * Fields not in the extra keep their values. */
static se_status read_zip64_extra(reader *r, size_t idx, const uint8_t *x, size_t xlen, uint64_t *usize,
                                  uint64_t *csize, uint64_t *header) {
    while (xlen >= 4) {
        uint32_t id = rd16(x), len = rd16(x + 2);
        if (len > xlen - 4)
            return se_err(r->err, SE_E_FORMAT, "%s: zip central directory entry %zu: extra field runs past its end",
                          r->what, idx);
        if (id == 0x0001) {
            uint64_t *want[3] = {usize, csize, header};
            size_t k = 0;
            for (int i = 0; i < 3; i++) {
                if (*want[i] != 0xFFFFFFFFu) continue;
                if (len - k < 8)
                    return se_err(r->err, SE_E_FORMAT, "%s: zip central directory entry %zu: zip64 extra field is too short",
                                  r->what, idx);
                *want[i] = rd64(x + 4 + k);
                k += 8;
            }
            return SE_OK;
        }
        x += 4 + len;
        xlen -= 4 + len;
    }
    return SE_OK;
}

/* Finds the end of central directory (and the zip64 records when present)
 * and returns the central directory's offset, size and entry count. */
static se_status find_central(reader *r, uint64_t *cd_off, uint64_t *cd_size, uint64_t *count, uint64_t *cd_limit) {
    const uint8_t *d = r->img;
    size_t size = r->size;
    if (size < EOCD_LEN)
        return se_err(r->err, SE_E_FORMAT, "%s: %zu bytes is too short for a zip archive", r->what, size);
    /* The EOCD is 22 bytes plus a comment of up to 65535 bytes at the end. */
    size_t eocd = SIZE_MAX;
    size_t lowest = size - EOCD_LEN > 65535 ? size - EOCD_LEN - 65535 : 0;
    for (size_t p = size - EOCD_LEN + 1; p-- > lowest;) {
        if (rd32(d + p) == SIG_EOCD && p + EOCD_LEN + rd16(d + p + 20) == size) {
            eocd = p;
            break;
        }
    }
    if (eocd == SIZE_MAX)
        return se_err(r->err, SE_E_FORMAT, "%s: no zip end-of-central-directory record: not a zip archive, or truncated",
                      r->what);
    const uint8_t *z = d + eocd;
    uint32_t disk = rd16(z + 4), cd_disk = rd16(z + 6);
    uint64_t n_disk = rd16(z + 8), n_total = rd16(z + 10);
    *cd_size = rd32(z + 12);
    *cd_off = rd32(z + 16);
    *cd_limit = eocd;
    if (eocd >= LOC64_LEN && rd32(d + eocd - LOC64_LEN) == SIG_LOC64) {
        const uint8_t *l = d + eocd - LOC64_LEN;
        uint64_t z64 = rd64(l + 8);
        if (rd32(l + 4) != 0 || rd32(l + 16) != 1)
            return se_err(r->err, SE_E_UNSUPPORTED, "%s: multi-disk zip archives are not supported", r->what);
        if (z64 > eocd - LOC64_LEN || eocd - LOC64_LEN - z64 < EOCD64_LEN || rd32(d + z64) != SIG_EOCD64)
            return se_err(r->err, SE_E_FORMAT, "%s: zip64 end-of-central-directory record is missing or misplaced",
                          r->what);
        const uint8_t *y = d + z64;
        disk = rd32(y + 16), cd_disk = rd32(y + 20);
        n_disk = rd64(y + 24), n_total = rd64(y + 32);
        *cd_size = rd64(y + 40);
        *cd_off = rd64(y + 48);
        *cd_limit = z64;
    } else if (n_total == 0xFFFF || *cd_size == 0xFFFFFFFFu || *cd_off == 0xFFFFFFFFu) {
        return se_err(r->err, SE_E_FORMAT, "%s: zip end record defers to a zip64 record that is missing", r->what);
    }
    if (disk != 0 || cd_disk != 0 || n_disk != n_total)
        return se_err(r->err, SE_E_UNSUPPORTED, "%s: multi-disk zip archives are not supported", r->what);
    if (*cd_off > *cd_limit || *cd_size > *cd_limit - *cd_off)
        return se_err(r->err, SE_E_FORMAT,
                      "%s: zip central directory [%llu, +%llu) runs past its end records at %llu: file truncated?",
                      r->what, (unsigned long long)*cd_off, (unsigned long long)*cd_size,
                      (unsigned long long)*cd_limit);
    if (n_total > *cd_size / CENTRAL_LEN)
        return se_err(r->err, SE_E_FORMAT, "%s: zip claims %llu entries but its central directory has %llu bytes",
                      r->what, (unsigned long long)n_total, (unsigned long long)*cd_size);
    *count = n_total;
    return SE_OK;
}

/* Reads the central directory into r->e (sorted by name), resolving each
 * entry's data offset through its local header, and checks that entries
 * lie before the central directory, do not overlap and have unique
 * names. */
static se_status read_zip(reader *r) {
    const uint8_t *d = r->img;
    if (r->size >= 2 && d[0] == 0x80 && d[1] >= 2 && d[1] <= 5)
        return se_err(r->err, SE_E_UNSUPPORTED,
                      "%s: this is the legacy torch.save format (torch < 1.6 or _use_new_zipfile_serialization=False), "
                      "not a zip archive: load it with torch and save it again with torch >= 1.6, or as safetensors",
                      r->what);
    if (r->size < 4 || rd32(d) != SIG_LOCAL)
        return se_err(r->err, SE_E_FORMAT, "%s: not a zip archive (a torch >= 1.6 checkpoint starts with PK\\3\\4)",
                      r->what);
    uint64_t cd_off = 0, cd_size = 0, count = 0, cd_limit = 0;
    se_status s = find_central(r, &cd_off, &cd_size, &count, &cd_limit);
    if (s != SE_OK) return s;
    r->e = se_calloc(count ? (size_t)count : 1, sizeof *r->e);
    if (!r->e) return se_err(r->err, SE_E_NOMEM, "%s: out of memory for %llu zip entries", r->what,
                             (unsigned long long)count);
    const uint8_t *c = d + cd_off;
    uint64_t left = cd_size;
    char nm[160];
    for (size_t i = 0; i < count; i++) {
        if (left < CENTRAL_LEN || rd32(c) != SIG_CENTRAL)
            return se_err(r->err, SE_E_FORMAT, "%s: zip central directory entry %zu is missing or has a bad signature",
                          r->what, i);
        uint32_t flags = rd16(c + 8), nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
        if ((uint64_t)CENTRAL_LEN + nlen + xlen + clen > left)
            return se_err(r->err, SE_E_FORMAT, "%s: zip central directory entry %zu runs past the directory's end",
                          r->what, i);
        zentry *e = &r->e[i];
        e->name = c + CENTRAL_LEN;
        e->name_len = nlen;
        e->method = rd16(c + 10);
        e->crc = rd32(c + 16);
        e->dtype = -1;
        uint64_t csize = rd32(c + 20), usize = rd32(c + 24), header = rd32(c + 42);
        s = read_zip64_extra(r, i, c + CENTRAL_LEN + nlen, xlen, &usize, &csize, &header);
        if (s != SE_OK) return s;
        printable(e->name, e->name_len, nm, sizeof nm);
        if (flags & 1)
            return se_err(r->err, SE_E_UNSUPPORTED, "%s: zip entry '%s' is encrypted", r->what, nm);
        if (rd16(c + 34) != 0 && rd16(c + 34) != 0xFFFF)
            return se_err(r->err, SE_E_UNSUPPORTED, "%s: multi-disk zip archives are not supported", r->what);
        if (e->method == 0 && csize != usize)
            return se_err(r->err, SE_E_FORMAT, "%s: stored zip entry '%s' has compressed size %llu != size %llu",
                          r->what, nm, (unsigned long long)csize, (unsigned long long)usize);
        /* the local header: its name and extra lengths place the data */
        if (header > cd_off || cd_off - header < LOCAL_LEN || rd32(d + header) != SIG_LOCAL)
            return se_err(r->err, SE_E_FORMAT, "%s: zip entry '%s': local header at %llu is missing or misplaced",
                          r->what, nm, (unsigned long long)header);
        const uint8_t *l = d + header;
        uint32_t lnlen = rd16(l + 26), lxlen = rd16(l + 28);
        uint64_t off = header + LOCAL_LEN + lnlen + lxlen;
        if (off > cd_off || csize > cd_off - off)
            return se_err(r->err, SE_E_FORMAT, "%s: zip entry '%s': data [%llu, +%llu) runs into the central directory: file truncated?",
                          r->what, nm, (unsigned long long)off, (unsigned long long)csize);
        if (lnlen != nlen || (nlen && memcmp(l + LOCAL_LEN, e->name, nlen) != 0))
            return se_err(r->err, SE_E_FORMAT, "%s: zip entry '%s': local header names a different file", r->what, nm);
        e->header = header;
        e->off = off;
        e->size = csize;
        c += CENTRAL_LEN + nlen + xlen + clen;
        left -= CENTRAL_LEN + nlen + xlen + clen;
    }
    r->n_e = (size_t)count;
    /* no two entries may share bytes: then no storage is counted twice */
    qsort(r->e, r->n_e, sizeof *r->e, entry_by_header);
    for (size_t i = 1; i < r->n_e; i++)
        if (r->e[i].header < r->e[i - 1].off + r->e[i - 1].size)
            return se_err(r->err, SE_E_FORMAT, "%s: zip entries '%s' and the one before it overlap", r->what,
                          printable(r->e[i].name, r->e[i].name_len, nm, sizeof nm));
    qsort(r->e, r->n_e, sizeof *r->e, entry_by_name);
    for (size_t i = 1; i < r->n_e; i++)
        if (entry_by_name(&r->e[i - 1], &r->e[i]) == 0)
            return se_err(r->err, SE_E_FORMAT, "%s: zip entry '%s' appears twice", r->what,
                          printable(r->e[i].name, r->e[i].name_len, nm, sizeof nm));
    return SE_OK;
}

/* Finds "<stem>/data.pkl" (exactly one entry, stem without '/') and the
 * stem; checks <stem>/version and <stem>/byteorder. */
static se_status find_records(reader *r) {
    static const char tail[] = "/data.pkl";
    const size_t tl = sizeof tail - 1;
    zentry *pkl = NULL;
    char a[160], b[160];
    for (size_t i = 0; i < r->n_e; i++) {
        zentry *e = &r->e[i];
        if (e->name_len <= tl || memcmp(e->name + e->name_len - tl, tail, tl) != 0) continue;
        if (memchr(e->name, '/', e->name_len - tl)) continue;
        if (pkl)
            return se_err(r->err, SE_E_FORMAT, "%s: two pickles, '%s' and '%s': not one torch.save checkpoint", r->what,
                          printable(pkl->name, pkl->name_len, a, sizeof a), printable(e->name, e->name_len, b, sizeof b));
        pkl = e;
    }
    if (!pkl)
        return se_err(r->err, SE_E_FORMAT, "%s: no '<name>/data.pkl' entry: not a torch.save checkpoint", r->what);
    r->stem = pkl->name;
    r->stem_len = pkl->name_len - tl;
    printable(r->stem, r->stem_len, a, sizeof a);

    zentry *v = find_entry(r, r->stem, r->stem_len, "/version", NULL, 0);
    if (!v) v = find_entry(r, r->stem, r->stem_len, "/.data/version", NULL, 0);
    if (!v) return se_err(r->err, SE_E_FORMAT, "%s: no '%s/version' entry: not a torch.save checkpoint", r->what, a);
    const uint8_t *p;
    se_status s = entry_bytes(r, v, &p);
    if (s != SE_OK) return s;
    size_t n = (size_t)v->size, digits = 0;
    while (digits < n && digits < 10 && p[digits] >= '0' && p[digits] <= '9') digits++;
    if (digits == 0 || digits == 10 || !(n == digits || (n == digits + 1 && p[digits] == '\n')))
        return se_err(r->err, SE_E_FORMAT, "%s: '%s/version' is not a decimal number", r->what, a);

    zentry *bo = find_entry(r, r->stem, r->stem_len, "/byteorder", NULL, 0);
    if (bo) {
        if ((s = entry_bytes(r, bo, &p)) != SE_OK) return s;
        if (bo->size == 3 && memcmp(p, "big", 3) == 0)
            return se_err(r->err, SE_E_UNSUPPORTED, "%s: the checkpoint was saved big-endian ('%s/byteorder' says big)",
                          r->what, a);
        if (!(bo->size == 6 && memcmp(p, "little", 6) == 0))
            return se_err(r->err, SE_E_FORMAT, "%s: '%s/byteorder' is neither 'little' nor 'big'", r->what, a);
    }

    if (pkl->size > PKL_MAX)
        return se_err(r->err, SE_E_FORMAT, "%s: '%s/data.pkl' has %llu bytes, more than the %zu-byte limit", r->what, a,
                      (unsigned long long)pkl->size, PKL_MAX);
    if ((s = entry_bytes(r, pkl, &r->pkl)) != SE_OK) return s;
    r->pkl_len = (size_t)pkl->size;
    return SE_OK;
}

/* ==== Values and their arena ==== */

typedef enum vkind { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR } vkind;

/* The globals data.pkl may name. */
typedef enum gkind { G_ORDERED_DICT, G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_REBUILD_PARAMETER_STATE, G_STORAGE } gkind;

/* A tensor as _rebuild_tensor_v2 describes it, checked when the result is
 * indexed (where its name is known). */
typedef struct tensor_desc {
    struct val *storage;               /* a V_STORAGE */
    int64_t offset;                    /* storage_offset, in elements */
    int n_dims;
    int64_t shape[SE_ST_MAX_DIMS];
    int64_t stride[SE_ST_MAX_DIMS];    /* in elements */
} tensor_desc;

/* A pickle value. Strings point into data.pkl. Tuples, lists and dicts
 * hold their items in arena arrays (a dict as key, value, key, value...). */
typedef struct val {
    vkind kind;
    union {
        int64_t i;                                             /* V_BOOL, V_INT */
        double f;                                              /* V_FLOAT */
        struct { const uint8_t *p; size_t n; } s;              /* V_STR */
        struct { struct val **v; size_t n, cap; bool ordered; } seq; /* V_TUPLE, V_LIST, V_DICT */
        struct { gkind g; se_st_dtype dtype; const char *name; } glob; /* V_GLOBAL */
        struct { zentry *e; se_st_dtype dtype; const char *type; const uint8_t *key; size_t key_len; } sto; /* V_STORAGE */
        tensor_desc *t;                                        /* V_TENSOR */
    } u;
} val;

/* One block of the arena. */
typedef struct chunk {
    struct chunk *next;
    size_t size, used;    /* bytes of data, bytes handed out */
    max_align_t data[];
} chunk;

/* The names of the kinds with their article, for messages ("an int"). */
static const char *kind_name(vkind k) {
    static const char *names[] = {"None",   "a bool", "an int",   "a float",  "a str",   "a tuple",
                                  "a list", "a dict", "a global", "a storage", "a tensor"};
    return names[k];
}

/* Formats an error about the opcode at r->op: "<file>: data.pkl offset N:
 * <message>". Returns code. */
static se_status perr(reader *r, se_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static se_status perr(reader *r, se_status code, const char *fmt, ...) {
    char msg[SE_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return se_err(r->err, code, "%s: data.pkl offset %zu: %s", r->what, r->op, msg);
}

/* Hands out n bytes (16-byte aligned, zeroed) from the arena, or fails
 * with SE_E_NOMEM, or SE_E_FORMAT once the arena would exceed its cap. */
static se_status arena_alloc(reader *r, size_t n, void **out) {
    n = (n + 15) & ~(size_t)15;
    chunk *c = r->arena;
    if (!c || c->size - c->used < n) {
        size_t sz = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        if (sz > r->arena_cap - r->arena_bytes || r->arena_bytes > r->arena_cap)
            return perr(r, SE_E_FORMAT, "the pickle needs more than %zu bytes of working memory (%dx its size): refused",
                        r->arena_cap, ARENA_PER_BYTE);
        c = se_malloc(sizeof *c + sz);
        if (!c) return perr(r, SE_E_NOMEM, "out of memory");
        c->next = r->arena;
        c->size = sz;
        c->used = 0;
        r->arena = c;
        r->arena_bytes += sz;
    }
    void *p = (unsigned char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    *out = p;
    return SE_OK;
}

/* Frees every arena block. */
static void arena_free(reader *r) {
    while (r->arena) {
        chunk *c = r->arena;
        r->arena = c->next;
        se_free(c);
    }
    r->arena_bytes = 0;
}

/* Allocates a value of the given kind. */
static se_status new_val(reader *r, vkind kind, val **out) {
    se_status s = arena_alloc(r, sizeof(val), (void **)out);
    if (s == SE_OK) (*out)->kind = kind;
    return s;
}

/* Allocates a tuple holding items[0..n). */
static se_status new_tuple(reader *r, val *const *items, size_t n, val **out) {
    se_status s = new_val(r, V_TUPLE, out);
    if (s != SE_OK) return s;
    if (n > SIZE_MAX / sizeof(val *)) return perr(r, SE_E_FORMAT, "tuple too large");
    if ((s = arena_alloc(r, n * sizeof(val *), (void **)&(*out)->u.seq.v)) != SE_OK) return s;
    if (n) memcpy((*out)->u.seq.v, items, n * sizeof(val *));
    (*out)->u.seq.n = (*out)->u.seq.cap = n;
    return SE_OK;
}

/* Appends items[0..n) to a list or dict, growing its arena array by
 * doubling (the old array stays in the arena: at most 2x waste). */
static se_status seq_append(reader *r, val *c, val *const *items, size_t n) {
    if (c->u.seq.cap - c->u.seq.n < n) {
        size_t cap = c->u.seq.cap ? c->u.seq.cap : 8;
        while (cap - c->u.seq.n < n) {
            if (cap > SIZE_MAX / 2 / sizeof(val *)) return perr(r, SE_E_FORMAT, "container too large");
            cap *= 2;
        }
        val **v;
        se_status s = arena_alloc(r, cap * sizeof(val *), (void **)&v);
        if (s != SE_OK) return s;
        if (c->u.seq.n) memcpy(v, c->u.seq.v, c->u.seq.n * sizeof(val *));
        c->u.seq.v = v;
        c->u.seq.cap = cap;
    }
    if (n) memcpy(c->u.seq.v + c->u.seq.n, items, n * sizeof(val *));
    c->u.seq.n += n;
    return SE_OK;
}

/* ==== The unpickler's stacks and memo ==== */

/* Pushes v; fails past STACK_MAX entries. */
static se_status push(reader *r, val *v) {
    if (r->sp == r->stack_cap) {
        if (r->stack_cap >= STACK_MAX) return perr(r, SE_E_FORMAT, "the stack grows past %zu entries", STACK_MAX);
        size_t cap = r->stack_cap ? r->stack_cap * 2 : 256;
        val **s = se_realloc(r->stack, cap * sizeof *s);
        if (!s) return perr(r, SE_E_NOMEM, "out of memory");
        r->stack = s;
        r->stack_cap = cap;
    }
    r->stack[r->sp++] = v;
    return SE_OK;
}

/* The lowest stack index the current MARK frame may pop down to. */
static size_t frame_base(const reader *r) { return r->n_marks ? r->marks[r->n_marks - 1] : 0; }

/* Pops the top value of the current frame. */
static se_status pop(reader *r, val **out) {
    if (r->sp <= frame_base(r)) return perr(r, SE_E_FORMAT, "stack underflow");
    *out = r->stack[--r->sp];
    return SE_OK;
}

/* Returns the top value of the current frame without popping it. */
static se_status top(reader *r, val **out) {
    if (r->sp <= frame_base(r)) return perr(r, SE_E_FORMAT, "stack underflow");
    *out = r->stack[r->sp - 1];
    return SE_OK;
}

/* Ends the current MARK frame: *start is the index of its first item
 * (the items are stack[start..sp)). */
static se_status pop_mark(reader *r, size_t *start) {
    if (r->n_marks == 0) return perr(r, SE_E_FORMAT, "no MARK to pop");
    *start = r->marks[--r->n_marks];
    return SE_OK;
}

/* Stores v at memo index idx: idx must be the next free index or an
 * existing one, as Python's pickler writes them. */
static se_status memo_put(reader *r, uint64_t idx, val *v) {
    if (idx > r->n_memo)
        return perr(r, SE_E_FORMAT, "memo index %llu skips ahead of the next free index %zu", (unsigned long long)idx,
                    r->n_memo);
    if (idx == r->n_memo) {
        if (r->n_memo == r->memo_cap) {
            if (r->memo_cap >= MEMO_MAX) return perr(r, SE_E_FORMAT, "the memo grows past %zu entries", MEMO_MAX);
            size_t cap = r->memo_cap ? r->memo_cap * 2 : 256;
            val **m = se_realloc(r->memo, cap * sizeof *m);
            if (!m) return perr(r, SE_E_NOMEM, "out of memory");
            r->memo = m;
            r->memo_cap = cap;
        }
        r->n_memo++;
    }
    r->memo[idx] = v;
    return SE_OK;
}

/* Pushes the value at memo index idx. */
static se_status memo_get(reader *r, uint64_t idx) {
    if (idx >= r->n_memo) return perr(r, SE_E_FORMAT, "memo index %llu was never stored", (unsigned long long)idx);
    return push(r, r->memo[idx]);
}

/* ==== Globals, REDUCE, BUILD and BINPERSID ==== */

static const struct {
    const char *name;
    se_st_dtype dtype;
} storage_types[] = {
    {"FloatStorage", SE_ST_F32}, {"HalfStorage", SE_ST_F16}, {"BFloat16Storage", SE_ST_BF16},
    {"DoubleStorage", SE_ST_F64}, {"LongStorage", SE_ST_I64}, {"IntStorage", SE_ST_I32},
    {"ShortStorage", SE_ST_I16}, {"CharStorage", SE_ST_I8},   {"ByteStorage", SE_ST_U8},
    {"BoolStorage", SE_ST_BOOL},
};

/* True when s[0..n) equals the C string z. */
static bool str_is(const uint8_t *s, size_t n, const char *z) { return strlen(z) == n && memcmp(s, z, n) == 0; }

/* Resolves module.name against the allowed globals and pushes it; any
 * other global is refused with its name. */
static se_status push_global(reader *r, const uint8_t *mod, size_t ml, const uint8_t *name, size_t nl) {
    val *v;
    se_status s = new_val(r, V_GLOBAL, &v);
    if (s != SE_OK) return s;
    if (str_is(mod, ml, "collections") && str_is(name, nl, "OrderedDict")) {
        v->u.glob.g = G_ORDERED_DICT, v->u.glob.name = "collections.OrderedDict";
    } else if (str_is(mod, ml, "torch._utils") && str_is(name, nl, "_rebuild_tensor_v2")) {
        v->u.glob.g = G_REBUILD_TENSOR, v->u.glob.name = "torch._utils._rebuild_tensor_v2";
    } else if (str_is(mod, ml, "torch._utils") && str_is(name, nl, "_rebuild_parameter")) {
        v->u.glob.g = G_REBUILD_PARAMETER, v->u.glob.name = "torch._utils._rebuild_parameter";
    } else if (str_is(mod, ml, "torch._utils") && str_is(name, nl, "_rebuild_parameter_with_state")) {
        v->u.glob.g = G_REBUILD_PARAMETER_STATE, v->u.glob.name = "torch._utils._rebuild_parameter_with_state";
    } else {
        bool found = false;
        for (size_t i = 0; i < sizeof storage_types / sizeof storage_types[0] && !found; i++)
            if (str_is(mod, ml, "torch") && str_is(name, nl, storage_types[i].name)) {
                v->u.glob.g = G_STORAGE, v->u.glob.dtype = storage_types[i].dtype;
                v->u.glob.name = storage_types[i].name;
                found = true;
            }
        if (!found) {
            char a[80], b[80];
            return perr(r, SE_E_FORMAT,
                        "global '%s.%s' is not allowed: a state dict holds only OrderedDicts, tensors and storages",
                        printable(mod, ml, a, sizeof a), printable(name, nl, b, sizeof b));
        }
    }
    return push(r, v);
}

/* True when v is a dict (or OrderedDict) with no items. */
static bool empty_dict(const val *v) { return v->kind == V_DICT && v->u.seq.n == 0; }

/* Reads a tuple of ints (a size or a stride) into out[0..*n). */
static se_status int_tuple(reader *r, const val *v, const char *what, int64_t *out, int *n) {
    if (v->kind != V_TUPLE) return perr(r, SE_E_FORMAT, "_rebuild_tensor_v2 %s is %s, not a tuple", what, kind_name(v->kind));
    if (v->u.seq.n > SE_ST_MAX_DIMS)
        return perr(r, SE_E_UNSUPPORTED, "_rebuild_tensor_v2 %s has %zu dims (at most %d)", what, v->u.seq.n,
                    SE_ST_MAX_DIMS);
    for (size_t i = 0; i < v->u.seq.n; i++) {
        if (v->u.seq.v[i]->kind != V_INT)
            return perr(r, SE_E_FORMAT, "_rebuild_tensor_v2 %s[%zu] is %s, not an int", what, i,
                        kind_name(v->u.seq.v[i]->kind));
        out[i] = v->u.seq.v[i]->u.i;
    }
    *n = (int)v->u.seq.n;
    return SE_OK;
}

/* Runs REDUCE: fn must be an allowed callable and args the tuple torch
 * writes for it; pushes the result. */
static se_status reduce(reader *r, val *fn, val *args) {
    if (fn->kind != V_GLOBAL) return perr(r, SE_E_FORMAT, "REDUCE of %s, not a global", kind_name(fn->kind));
    if (args->kind != V_TUPLE)
        return perr(r, SE_E_FORMAT, "REDUCE of %s with %s, not an argument tuple", fn->u.glob.name,
                    kind_name(args->kind));
    val **a = args->u.seq.v, *v;
    size_t n = args->u.seq.n;
    se_status s;
    switch (fn->u.glob.g) {
    case G_ORDERED_DICT:
        if (n != 0) return perr(r, SE_E_FORMAT, "OrderedDict called with %zu arguments (torch writes none)", n);
        if ((s = new_val(r, V_DICT, &v)) != SE_OK) return s;
        v->u.seq.ordered = true;
        return push(r, v);
    case G_REBUILD_TENSOR: {
        /* (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
        if (n != 6 && n != 7) return perr(r, SE_E_FORMAT, "_rebuild_tensor_v2 called with %zu arguments (6 or 7)", n);
        if (a[0]->kind != V_STORAGE)
            return perr(r, SE_E_FORMAT, "_rebuild_tensor_v2 storage is %s, not a storage", kind_name(a[0]->kind));
        if (a[1]->kind != V_INT)
            return perr(r, SE_E_FORMAT, "_rebuild_tensor_v2 storage_offset is %s, not an int", kind_name(a[1]->kind));
        if (a[4]->kind != V_BOOL)
            return perr(r, SE_E_FORMAT, "_rebuild_tensor_v2 requires_grad is %s, not a bool", kind_name(a[4]->kind));
        if (!empty_dict(a[5]))
            return perr(r, SE_E_UNSUPPORTED, "_rebuild_tensor_v2 backward_hooks is not an empty dict");
        if (n == 7 && !empty_dict(a[6]) && a[6]->kind != V_NONE)
            return perr(r, SE_E_UNSUPPORTED, "_rebuild_tensor_v2 metadata (conj/neg bits...) is not supported");
        tensor_desc *t;
        if ((s = arena_alloc(r, sizeof *t, (void **)&t)) != SE_OK) return s;
        t->storage = a[0];
        t->offset = a[1]->u.i;
        int ns = 0, nt = 0;
        if ((s = int_tuple(r, a[2], "size", t->shape, &ns)) != SE_OK) return s;
        if ((s = int_tuple(r, a[3], "stride", t->stride, &nt)) != SE_OK) return s;
        if (ns != nt) return perr(r, SE_E_FORMAT, "_rebuild_tensor_v2 size has %d dims but stride %d", ns, nt);
        t->n_dims = ns;
        if ((s = new_val(r, V_TENSOR, &v)) != SE_OK) return s;
        v->u.t = t;
        return push(r, v);
    }
    case G_REBUILD_PARAMETER:
    case G_REBUILD_PARAMETER_STATE: {
        /* (data, requires_grad, backward_hooks[, state]): the tensor itself */
        size_t want = fn->u.glob.g == G_REBUILD_PARAMETER ? 3 : 4;
        if (n != want) return perr(r, SE_E_FORMAT, "%s called with %zu arguments (%zu)", fn->u.glob.name, n, want);
        if (a[0]->kind != V_TENSOR)
            return perr(r, SE_E_FORMAT, "%s data is %s, not a tensor", fn->u.glob.name, kind_name(a[0]->kind));
        if (a[1]->kind != V_BOOL)
            return perr(r, SE_E_FORMAT, "%s requires_grad is %s, not a bool", fn->u.glob.name, kind_name(a[1]->kind));
        if (!empty_dict(a[2])) return perr(r, SE_E_UNSUPPORTED, "%s backward_hooks is not an empty dict", fn->u.glob.name);
        return push(r, a[0]);
    }
    case G_STORAGE: break;
    }
    return perr(r, SE_E_FORMAT, "REDUCE of torch.%s is not allowed (storages come only from persistent ids)",
                fn->u.glob.name);
}

/* Runs BINPERSID: pid must be ('storage', <storage class>, key, location,
 * numel); resolves <stem>/data/<key>, checks its size against numel and
 * that every use agrees on its dtype, and pushes a storage. */
static se_status persistent_load(reader *r, val *pid) {
    if (pid->kind != V_TUPLE || pid->u.seq.n != 5 || pid->u.seq.v[0]->kind != V_STR ||
        !str_is(pid->u.seq.v[0]->u.s.p, pid->u.seq.v[0]->u.s.n, "storage"))
        return perr(r, SE_E_FORMAT, "persistent id is not a ('storage', type, key, location, numel) tuple");
    val **a = pid->u.seq.v;
    if (a[1]->kind != V_GLOBAL || a[1]->u.glob.g != G_STORAGE)
        return perr(r, SE_E_FORMAT, "persistent id type is %s, not a torch storage class",
                    a[1]->kind == V_GLOBAL ? a[1]->u.glob.name : kind_name(a[1]->kind));
    if (a[2]->kind != V_STR || a[3]->kind != V_STR || a[4]->kind != V_INT)
        return perr(r, SE_E_FORMAT, "persistent id key, location or numel has the wrong type (%s, %s, %s)",
                    kind_name(a[2]->kind), kind_name(a[3]->kind), kind_name(a[4]->kind));
    const uint8_t *key = a[2]->u.s.p;
    size_t kl = a[2]->u.s.n;
    se_st_dtype dt = a[1]->u.glob.dtype;
    char k[80], stem[80], nm[160];
    printable(key, kl, k, sizeof k);
    printable(r->stem, r->stem_len, stem, sizeof stem);
    zentry *e = find_entry(r, r->stem, r->stem_len, "/data/", key, kl);
    if (!e) return perr(r, SE_E_FORMAT, "storage '%s': zip entry '%s/data/%s' is missing", k, stem, k);
    printable(e->name, e->name_len, nm, sizeof nm);
    int64_t numel = a[4]->u.i;
    size_t esz = se_st_dtype_size(dt);
    if (numel < 0 || (uint64_t)numel > UINT64_MAX / esz || (uint64_t)numel * esz != e->size)
        return perr(r, SE_E_FORMAT, "storage '%s': %s of %lld elements does not match the %llu bytes of '%s'", k,
                    a[1]->u.glob.name, (long long)numel, (unsigned long long)e->size, nm);
    if (e->dtype >= 0 && e->dtype != (int)dt)
        return perr(r, SE_E_FORMAT, "storage '%s' is used as %s and as %s", k, se_st_dtype_name((se_st_dtype)e->dtype),
                    se_st_dtype_name(dt));
    const uint8_t *bytes;
    se_status s = entry_bytes(r, e, &bytes);
    if (s != SE_OK) return s;
    e->dtype = (int)dt;
    val *v;
    if ((s = new_val(r, V_STORAGE, &v)) != SE_OK) return s;
    v->u.sto.e = e;
    v->u.sto.dtype = dt;
    v->u.sto.type = a[1]->u.glob.name;
    v->u.sto.key = key;
    v->u.sto.key_len = kl;
    return push(r, v);
}

/* ==== The opcode loop ==== */

/* The names of the pickle opcodes (CPython's pickletools), for messages. */
static const char *opcode_name(uint8_t op) {
    switch (op) {
    case '(': return "MARK"; case '.': return "STOP"; case '0': return "POP"; case '1': return "POP_MARK";
    case '2': return "DUP"; case 'F': return "FLOAT"; case 'I': return "INT"; case 'J': return "BININT";
    case 'K': return "BININT1"; case 'L': return "LONG"; case 'M': return "BININT2"; case 'N': return "NONE";
    case 'P': return "PERSID"; case 'Q': return "BINPERSID"; case 'R': return "REDUCE"; case 'S': return "STRING";
    case 'T': return "BINSTRING"; case 'U': return "SHORT_BINSTRING"; case 'V': return "UNICODE";
    case 'X': return "BINUNICODE"; case 'a': return "APPEND"; case 'b': return "BUILD"; case 'c': return "GLOBAL";
    case 'd': return "DICT"; case '}': return "EMPTY_DICT"; case 'e': return "APPENDS"; case 'g': return "GET";
    case 'h': return "BINGET"; case 'i': return "INST"; case 'j': return "LONG_BINGET"; case 'l': return "LIST";
    case ']': return "EMPTY_LIST"; case 'o': return "OBJ"; case 'p': return "PUT"; case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT"; case 's': return "SETITEM"; case 't': return "TUPLE"; case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS"; case 'G': return "BINFLOAT"; case 0x80: return "PROTO"; case 0x81: return "NEWOBJ";
    case 0x82: return "EXT1"; case 0x83: return "EXT2"; case 0x84: return "EXT4"; case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2"; case 0x87: return "TUPLE3"; case 0x88: return "NEWTRUE"; case 0x89: return "NEWFALSE";
    case 0x8a: return "LONG1"; case 0x8b: return "LONG4"; case 'B': return "BINBYTES"; case 'C': return "SHORT_BINBYTES";
    case 0x8c: return "SHORT_BINUNICODE"; case 0x8d: return "BINUNICODE8"; case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET"; case 0x90: return "ADDITEMS"; case 0x91: return "FROZENSET";
    case 0x92: return "NEWOBJ_EX"; case 0x93: return "STACK_GLOBAL"; case 0x94: return "MEMOIZE";
    case 0x95: return "FRAME"; case 0x96: return "BYTEARRAY8"; case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    }
    return "an unknown opcode";
}

/* Checks that k argument bytes follow the opcode at *i. */
#define NEED(k)                                                                                                        \
    do {                                                                                                               \
        if ((uint64_t)(n - i) < (uint64_t)(k))                                                                          \
            return perr(r, SE_E_FORMAT, "%s needs %llu bytes but only %zu remain: data.pkl is truncated",              \
                        opcode_name(op), (unsigned long long)(k), n - i);                                               \
    } while (0)

/* Pushes a string of len bytes at p[*i] and advances *i. */
static se_status push_str(reader *r, const uint8_t *p, size_t *i, uint64_t len) {
    val *v;
    se_status s = new_val(r, V_STR, &v);
    if (s != SE_OK) return s;
    v->u.s.p = p + *i;
    v->u.s.n = (size_t)len;
    *i += (size_t)len;
    return push(r, v);
}

/* Pushes an int (or a bool when kind is V_BOOL). */
static se_status push_int(reader *r, vkind kind, int64_t x) {
    val *v;
    se_status s = new_val(r, kind, &v);
    if (s != SE_OK) return s;
    v->u.i = x;
    return push(r, v);
}

/* Decodes a LONG1/LONG4 payload: n (<= 8) little-endian two's complement
 * bytes. */
static int64_t decode_long(const uint8_t *p, size_t n) {
    uint64_t u = 0;
    for (size_t k = 0; k < n; k++) u |= (uint64_t)p[k] << (8 * k);
    if (n && n < 8 && (p[n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
    int64_t x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Runs data.pkl up to STOP and returns the value it leaves. */
static se_status unpickle(reader *r, val **result) {
    static val none_val = {.kind = V_NONE};
    const uint8_t *p = r->pkl;
    size_t n = r->pkl_len, i = 0;
    se_status s = SE_OK;
    while (i < n) {
        r->op = i;
        uint8_t op = p[i++];
        val *a = NULL, *b = NULL, *v = NULL;
        size_t start = 0;
        switch (op) {
        case 0x80: /* PROTO */
            NEED(1);
            if (p[i] > 5) return perr(r, SE_E_FORMAT, "pickle protocol %u is unknown", p[i]);
            i++;
            break;
        case 0x95: /* FRAME: a length hint, nothing to do */
            NEED(8);
            if (rd64(p + i) > n - i - 8) return perr(r, SE_E_FORMAT, "FRAME of %llu bytes runs past the end",
                                                    (unsigned long long)rd64(p + i));
            i += 8;
            break;
        case '.': /* STOP */
            if ((s = pop(r, result)) != SE_OK) return s;
            return SE_OK;
        case '(': /* MARK */
            if (r->n_marks == MARK_MAX) return perr(r, SE_E_FORMAT, "MARKs nest deeper than %d", MARK_MAX);
            r->marks[r->n_marks++] = r->sp;
            break;
        case '0': /* POP: the top item, or the mark when the frame is empty */
            if (r->sp > frame_base(r)) r->sp--;
            else if ((s = pop_mark(r, &start)) != SE_OK) return s;
            break;
        case '1': /* POP_MARK */
            if ((s = pop_mark(r, &start)) != SE_OK) return s;
            r->sp = start;
            break;
        case '2': /* DUP */
            if ((s = top(r, &a)) != SE_OK || (s = push(r, a)) != SE_OK) return s;
            break;
        case 'N': s = push(r, &none_val); break;
        case 0x88: s = push_int(r, V_BOOL, 1); break;
        case 0x89: s = push_int(r, V_BOOL, 0); break;
        case 'J': /* BININT: signed 32-bit */
            NEED(4);
            s = push_int(r, V_INT, (int32_t)rd32(p + i));
            i += 4;
            break;
        case 'K': NEED(1); s = push_int(r, V_INT, p[i]); i += 1; break;
        case 'M': NEED(2); s = push_int(r, V_INT, rd16(p + i)); i += 2; break;
        case 0x8a: /* LONG1 */
        case 0x8b: { /* LONG4 */
            size_t w = op == 0x8a ? 1 : 4;
            NEED(w);
            uint64_t len = op == 0x8a ? p[i] : rd32(p + i);
            i += w;
            NEED(len);
            if (len > 8) return perr(r, SE_E_FORMAT, "%s of %llu bytes is out of the 64-bit range", opcode_name(op),
                                     (unsigned long long)len);
            s = push_int(r, V_INT, decode_long(p + i, (size_t)len));
            i += (size_t)len;
            break;
        }
        case 'G': { /* BINFLOAT: big-endian double */
            NEED(8);
            uint64_t u = 0;
            for (int k = 0; k < 8; k++) u = u << 8 | p[i + k];
            i += 8;
            if ((s = new_val(r, V_FLOAT, &v)) != SE_OK) return s;
            memcpy(&v->u.f, &u, sizeof v->u.f);
            s = push(r, v);
            break;
        }
        case 'X': NEED(4); { uint64_t len = rd32(p + i); i += 4; NEED(len); s = push_str(r, p, &i, len); } break;
        case 0x8c: NEED(1); { uint64_t len = p[i]; i += 1; NEED(len); s = push_str(r, p, &i, len); } break;
        case 0x8d: NEED(8); { uint64_t len = rd64(p + i); i += 8; NEED(len); s = push_str(r, p, &i, len); } break;
        case 'c': { /* GLOBAL "module\nname\n" */
            size_t lim = n - i < GLOBAL_MAX ? n - i : GLOBAL_MAX;
            const uint8_t *nl1 = memchr(p + i, '\n', lim);
            const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', lim - (size_t)(nl1 + 1 - (p + i))) : NULL;
            if (!nl2) return perr(r, SE_E_FORMAT, "GLOBAL is unterminated or longer than %d bytes", GLOBAL_MAX);
            s = push_global(r, p + i, (size_t)(nl1 - (p + i)), nl1 + 1, (size_t)(nl2 - nl1 - 1));
            i = (size_t)(nl2 + 1 - p);
            break;
        }
        case 0x93: /* STACK_GLOBAL: module, name */
            if ((s = pop(r, &b)) != SE_OK || (s = pop(r, &a)) != SE_OK) return s;
            if (a->kind != V_STR || b->kind != V_STR) return perr(r, SE_E_FORMAT, "STACK_GLOBAL of non-strings");
            s = push_global(r, a->u.s.p, a->u.s.n, b->u.s.p, b->u.s.n);
            break;
        case 'q': NEED(1); if ((s = top(r, &a)) == SE_OK) s = memo_put(r, p[i], a); i += 1; break;
        case 'r': NEED(4); if ((s = top(r, &a)) == SE_OK) s = memo_put(r, rd32(p + i), a); i += 4; break;
        case 0x94: if ((s = top(r, &a)) == SE_OK) s = memo_put(r, r->n_memo, a); break;
        case 'h': NEED(1); s = memo_get(r, p[i]); i += 1; break;
        case 'j': NEED(4); s = memo_get(r, rd32(p + i)); i += 4; break;
        case ')': s = new_tuple(r, NULL, 0, &v); if (s == SE_OK) s = push(r, v); break;
        case 0x85: /* TUPLE1..3 */
        case 0x86:
        case 0x87: {
            size_t k = (size_t)(op - 0x84);
            if (r->sp - frame_base(r) < k) return perr(r, SE_E_FORMAT, "stack underflow");
            r->sp -= k;
            if ((s = new_tuple(r, r->stack + r->sp, k, &v)) == SE_OK) s = push(r, v);
            break;
        }
        case 't': /* TUPLE */
            if ((s = pop_mark(r, &start)) != SE_OK) return s;
            s = new_tuple(r, r->stack + start, r->sp - start, &v);
            r->sp = start;
            if (s == SE_OK) s = push(r, v);
            break;
        case '}': if ((s = new_val(r, V_DICT, &v)) == SE_OK) s = push(r, v); break;
        case ']': if ((s = new_val(r, V_LIST, &v)) == SE_OK) s = push(r, v); break;
        case 's': /* SETITEM */
            if ((s = pop(r, &b)) != SE_OK || (s = pop(r, &a)) != SE_OK || (s = top(r, &v)) != SE_OK) return s;
            if (v->kind != V_DICT) return perr(r, SE_E_FORMAT, "SETITEM on %s, not a dict", kind_name(v->kind));
            s = seq_append(r, v, (val *[]){a, b}, 2);
            break;
        case 'u': /* SETITEMS */
        case 'e': /* APPENDS */
            if ((s = pop_mark(r, &start)) != SE_OK) return s;
            if (start <= frame_base(r)) return perr(r, SE_E_FORMAT, "%s with nothing below its MARK", opcode_name(op));
            v = r->stack[start - 1];
            if (v->kind != (op == 'u' ? V_DICT : V_LIST))
                return perr(r, SE_E_FORMAT, "%s on %s", opcode_name(op), kind_name(v->kind));
            if (op == 'u' && (r->sp - start) % 2)
                return perr(r, SE_E_FORMAT, "SETITEMS with an odd number (%zu) of items", r->sp - start);
            s = seq_append(r, v, r->stack + start, r->sp - start);
            r->sp = start;
            break;
        case 'a': /* APPEND */
            if ((s = pop(r, &a)) != SE_OK || (s = top(r, &v)) != SE_OK) return s;
            if (v->kind != V_LIST) return perr(r, SE_E_FORMAT, "APPEND on %s, not a list", kind_name(v->kind));
            s = seq_append(r, v, &a, 1);
            break;
        case 'R': /* REDUCE */
            if ((s = pop(r, &b)) != SE_OK || (s = pop(r, &a)) != SE_OK) return s;
            s = reduce(r, a, b);
            break;
        case 'b': /* BUILD: only an OrderedDict's state (its _metadata), ignored */
            if ((s = pop(r, &b)) != SE_OK || (s = top(r, &a)) != SE_OK) return s;
            if (a->kind != V_DICT || !a->u.seq.ordered)
                return perr(r, SE_E_FORMAT, "BUILD on %s: only an OrderedDict's state is allowed",
                            a->kind == V_DICT ? "a dict" : kind_name(a->kind));
            if (b->kind != V_DICT && b->kind != V_NONE)
                return perr(r, SE_E_FORMAT, "BUILD with %s state, not a dict", kind_name(b->kind));
            break;
        case 'Q': /* BINPERSID */
            if ((s = pop(r, &a)) != SE_OK) return s;
            s = persistent_load(r, a);
            break;
        default:
            return perr(r, SE_E_FORMAT, "opcode 0x%02x (%s) is not allowed in a torch state dict", op,
                        opcode_name(op));
        }
        if (s != SE_OK) return s;
    }
    r->op = n;
    return perr(r, SE_E_FORMAT, "data.pkl ends without STOP: truncated?");
}

/* ==== The tensor index ==== */

/* Orders tensors by data pointer, then size, then name (the order
 * safetensors.h promises, made total). */
static int tensor_by_data(const void *a, const void *b) {
    const se_st_tensor *x = a, *y = b;
    uintptr_t p = (uintptr_t)x->data, q = (uintptr_t)y->data;
    if (p != q) return p < q ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Orders name pointers for the duplicate check. */
static int by_name_ptr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Checks one state-dict item (key, tensor) and fills t, except its data
 * pointer: t->data is set to NULL and the tensor's byte offset inside its
 * storage is returned in *byte_off. */
static se_status check_tensor(reader *r, size_t idx, const val *key, const val *value, se_st_tensor *t,
                              uint64_t *byte_off) {
    char nm[160], key_nm[80];
    if (key->kind != V_STR)
        return se_err(r->err, SE_E_FORMAT, "%s: state dict key #%zu is %s, not a string", r->what, idx,
                      kind_name(key->kind));
    printable(key->u.s.p, key->u.s.n, nm, sizeof nm);
    size_t bad;
    if (key->u.s.n == 0 || key->u.s.n > NAME_MAX_LEN || memchr(key->u.s.p, 0, key->u.s.n) ||
        !se_utf8_valid((const char *)key->u.s.p, key->u.s.n, &bad))
        return se_err(r->err, SE_E_FORMAT, "%s: state dict key #%zu ('%s') is not a valid tensor name "
                      "(1-%d bytes of UTF-8 without NUL)", r->what, idx, nm, NAME_MAX_LEN);
    if (value->kind != V_TENSOR)
        return se_err(r->err, SE_E_FORMAT, "%s: '%s' is %s, not a tensor: a state dict maps names to tensors",
                      r->what, nm, kind_name(value->kind));
    const tensor_desc *d = value->u.t;
    const val *st = d->storage;
    size_t esz = se_st_dtype_size(st->u.sto.dtype);
    uint64_t numel = st->u.sto.e->size / esz;
    uint64_t n_elem = 1;
    for (int k = 0; k < d->n_dims; k++) {
        if (d->shape[k] < 0)
            return se_err(r->err, SE_E_FORMAT, "%s: tensor '%s' has negative size[%d] = %lld", r->what, nm, k,
                          (long long)d->shape[k]);
        if (d->shape[k] && n_elem > UINT64_MAX / (uint64_t)d->shape[k])
            return se_err(r->err, SE_E_FORMAT, "%s: tensor '%s' shape overflows", r->what, nm);
        n_elem *= (uint64_t)d->shape[k];
    }
    if (d->offset < 0)
        return se_err(r->err, SE_E_FORMAT, "%s: tensor '%s' has negative storage_offset %lld", r->what, nm,
                      (long long)d->offset);
    if (n_elem > numel || (uint64_t)d->offset > numel - n_elem)
        return se_err(r->err, SE_E_FORMAT,
                      "%s: tensor '%s' (%llu elements at offset %lld) runs past its storage '%s' of %llu elements",
                      r->what, nm, (unsigned long long)n_elem, (long long)d->offset,
                      printable(st->u.sto.key, st->u.sto.key_len, key_nm, sizeof key_nm), (unsigned long long)numel);
    if (n_elem > 0) {
        uint64_t expect = 1;
        for (int k = d->n_dims - 1; k >= 0; k--) {
            if (d->shape[k] != 1 && d->stride[k] != (int64_t)expect) {
                char sh[96] = "", sd[96] = "";
                size_t a = 0, b = 0;
                for (int j = 0; j < d->n_dims; j++) {
                    a += (size_t)snprintf(sh + a, sizeof sh - a, "%s%lld", j ? ", " : "", (long long)d->shape[j]);
                    b += (size_t)snprintf(sd + b, sizeof sd - b, "%s%lld", j ? ", " : "", (long long)d->stride[j]);
                    if (a >= sizeof sh - 24 || b >= sizeof sd - 24) break;
                }
                return se_err(r->err, SE_E_UNSUPPORTED,
                              "%s: tensor '%s' is not contiguous (size [%s], stride [%s]): save it with .contiguous()",
                              r->what, nm, sh, sd);
            }
            expect *= (uint64_t)d->shape[k]; /* <= n_elem: cannot wrap */
        }
    }
    t->name = se_strndup((const char *)key->u.s.p, key->u.s.n);
    if (!t->name) return se_err(r->err, SE_E_NOMEM, "%s: out of memory", r->what);
    t->dtype = st->u.sto.dtype;
    t->n_dims = d->n_dims;
    for (int k = 0; k < d->n_dims; k++) t->shape[k] = d->shape[k];
    t->n_elem = (size_t)n_elem;
    t->nbytes = (size_t)n_elem * esz;
    t->data = NULL;
    *byte_off = (uint64_t)d->offset * esz;
    return SE_OK;
}

/* Turns the unpickled state dict into f's tensor index: checks every
 * item, places the data (in the image when aligned, else in an aligned
 * copy at the tail of the tensor array's allocation), checks names are
 * unique and sorts the index by data pointer. */
static se_status build_index(reader *r, const val *root, se_st_file *f) {
    if (root->kind != V_DICT)
        return se_err(r->err, SE_E_FORMAT, "%s: data.pkl holds %s, not a state dict", r->what, kind_name(root->kind));
    size_t n = root->u.seq.n / 2;
    se_status s = SE_OK;
    uint64_t *offs = se_calloc(n ? n : 1, sizeof *offs);
    zentry **ents = se_calloc(n ? n : 1, sizeof *ents);
    se_st_tensor *tmp = se_calloc(n ? n : 1, sizeof *tmp);
    char **names = se_calloc(n ? n : 1, sizeof *names);
    uint8_t *block = NULL;
    size_t done_n = 0; /* tmp[0..done_n) hold names to free on failure */
    if (!offs || !ents || !tmp || !names) {
        s = se_err(r->err, SE_E_NOMEM, "%s: out of memory", r->what);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const val *value = root->u.seq.v[2 * i + 1];
        if ((s = check_tensor(r, i, root->u.seq.v[2 * i], value, &tmp[i], &offs[i])) != SE_OK) goto done;
        done_n = i + 1;
        ents[i] = value->u.t->storage->u.sto.e;
        ents[i]->used = true;
        names[i] = tmp[i].name;
    }
    qsort(names, n, sizeof *names, by_name_ptr);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
            char nm[160];
            s = se_err(r->err, SE_E_FORMAT, "%s: tensor '%s' appears twice in the state dict", r->what,
                       printable((const uint8_t *)names[i], strlen(names[i]), nm, sizeof nm));
            goto done;
        }
    /* One allocation: the tensor array, then 64-aligned copies of the
     * storages whose bytes in the image are not aligned for their dtype.
     * Entries do not overlap, so the copies total at most the file size. */
    size_t head = n * sizeof(se_st_tensor), total = head + 64;
    for (size_t k = 0; k < r->n_e; k++) {
        zentry *e = &r->e[k];
        if (!e->used) continue;
        size_t esz = se_st_dtype_size((se_st_dtype)e->dtype);
        if ((uintptr_t)(r->img + e->off) % esz == 0) {
            e->data = r->img + e->off;
            continue;
        }
        size_t need = ((size_t)e->size + 63) & ~(size_t)63;
        if (need > SIZE_MAX - total) {
            s = se_err(r->err, SE_E_NOMEM, "%s: out of memory", r->what);
            goto done;
        }
        total += need;
    }
    block = se_malloc(total);
    if (!block) {
        s = se_err(r->err, SE_E_NOMEM, "%s: out of memory for %zu bytes", r->what, total);
        goto done;
    }
    uint8_t *copy = (uint8_t *)(((uintptr_t)block + head + 63) & ~(uintptr_t)63);
    for (size_t k = 0; k < r->n_e; k++) {
        zentry *e = &r->e[k];
        if (!e->used || e->data) continue;
        if (e->size) memcpy(copy, r->img + e->off, (size_t)e->size);
        e->data = copy;
        copy += ((size_t)e->size + 63) & ~(size_t)63;
    }
    for (size_t i = 0; i < n; i++) tmp[i].data = ents[i]->data + offs[i];
    if (n) memcpy(block, tmp, head);
    qsort(block, n, sizeof(se_st_tensor), tensor_by_data);
    f->t = (se_st_tensor *)(void *)block;
    f->n = n;
    block = NULL;
    done_n = 0; /* the names now belong to f */
done:
    for (size_t i = 0; i < done_n; i++) se_free(tmp[i].name);
    se_free(block);
    se_free(offs);
    se_free(ents);
    se_free(tmp);
    se_free(names);
    return s;
}

/* ==== Entry points ==== */

se_status se_torch_parse(const uint8_t *data, size_t size, const char *what, bool check_crc, se_st_file *f,
                         se_error *err) {
    f->t = NULL;
    f->n = 0;
    reader r;
    memset(&r, 0, sizeof r);
    r.img = data;
    r.size = size;
    r.what = what;
    r.check_crc = check_crc;
    r.err = err;
    se_status s = read_zip(&r);
    if (s == SE_OK) s = find_records(&r);
    if (s == SE_OK) {
        r.arena_cap = r.pkl_len * ARENA_PER_BYTE + ARENA_FLOOR; /* pkl_len <= PKL_MAX: no overflow */
        val *root = NULL;
        s = unpickle(&r, &root);
        if (s == SE_OK) s = build_index(&r, root, f);
    }
    arena_free(&r);
    se_free(r.stack);
    se_free(r.memo);
    se_free(r.e);
    return s;
}

/* Maps path (se_st_map_file, the same as safetensors: regular files only,
 * the descriptor kept for se_st_check) and parses the checkpoint. */
se_status se_torch_open(const char *path, bool use_mmap, bool check_crc, se_st_file *f, se_error *err) {
    se_status s = se_st_map_file(path, use_mmap, f, err);
    if (s != SE_OK) return s;
    s = se_torch_parse(f->base, f->size, path, check_crc, f, err);
    if (s != SE_OK) se_st_close(f);
    return s;
}
