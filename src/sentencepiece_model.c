/*
 * sentencepiece_model.c - the ModelProto reader (see sentencepiece_model.h).
 *
 * Protobuf wire format: a message is a run of (key, value) with key =
 * varint(field_number << 3 | wire_type); wire types 0 varint, 1 fixed64,
 * 2 length-delimited, 5 fixed32 (3 and 4, groups, are refused: sentencepiece
 * never writes them). Scalars that repeat take the last value, as protobuf
 * does. Field numbers used (sentencepiece_model.proto):
 *   ModelProto      1 pieces, 2 trainer_spec, 3 normalizer_spec,
 *                   5 denormalizer_spec (4 self_test_data: skipped)
 *   SentencePiece   1 piece, 2 score (float), 3 type (enum)
 *   TrainerSpec     3 model_type, 4 vocab_size, 24 treat_whitespace_as_suffix,
 *                   35 byte_fallback, 40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id
 *   NormalizerSpec  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
 *                   4 remove_extra_whitespaces, 5 escape_whitespaces
 *
 * Parsing runs twice over the top level: the first pass checks the framing
 * and counts the pieces and their bytes, so the arrays are sized by what the
 * file holds, never by what it claims.
 */
#include "sentencepiece_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "json.h"
#include "normalizer_precompiled.h"
#include "unicode.h"

enum { WT_VARINT = 0, WT_FIXED64 = 1, WT_LEN = 2, WT_FIXED32 = 5 };

/* A cursor over one message's bytes. */
typedef struct {
    const uint8_t *p, *end;
} reader;

/* One decoded field: number, wire type and value (v for varint/fixed,
 * data/len for length-delimited). */
typedef struct {
    uint32_t num;
    int wt;
    uint64_t v;
    const uint8_t *data;
    size_t len;
} field;

static const char *wt_name(int wt) {
    switch (wt) {
    case WT_VARINT: return "varint";
    case WT_FIXED64: return "fixed64";
    case WT_LEN: return "length-delimited";
    case WT_FIXED32: return "fixed32";
    default: return "group";
    }
}

/* Reads a varint; at most 10 bytes, the 10th no more than 1. Returns 0, or
 * -1 when the bytes run out, -2 when it is too long. */
static int read_varint(reader *r, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end) return -1;
        uint8_t b = *r->p++;
        if (i == 9 && b > 1) return -2;
        v |= (uint64_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -2;
}

/* Reads the next field of the message under r. `where` names the message
 * for errors ("model.model: pieces[3]"). Returns SE_OK, or SE_E_FORMAT
 * naming the field. */
static se_status next_field(reader *r, const char *where, field *f, se_error *err) {
    uint64_t key;
    int rc = read_varint(r, &key);
    if (rc == -1) return se_err(err, SE_E_FORMAT, "%s: truncated field key", where);
    if (rc == -2) return se_err(err, SE_E_FORMAT, "%s: field key varint is longer than 10 bytes", where);
    if (key >> 3 == 0 || key >> 3 > 536870911u)
        return se_err(err, SE_E_FORMAT, "%s: invalid field number %llu", where, (unsigned long long)(key >> 3));
    f->num = (uint32_t)(key >> 3);
    f->wt = (int)(key & 7);
    size_t left;
    switch (f->wt) {
    case WT_VARINT:
        rc = read_varint(r, &f->v);
        if (rc == -1) return se_err(err, SE_E_FORMAT, "%s: field %u: truncated varint", where, f->num);
        if (rc == -2) return se_err(err, SE_E_FORMAT, "%s: field %u: varint is longer than 10 bytes", where, f->num);
        return SE_OK;
    case WT_FIXED64:
    case WT_FIXED32: {
        size_t w = f->wt == WT_FIXED64 ? 8 : 4;
        left = (size_t)(r->end - r->p);
        if (left < w)
            return se_err(err, SE_E_FORMAT, "%s: field %u: %s needs %zu bytes, %zu left", where, f->num,
                          wt_name(f->wt), w, left);
        f->v = 0;
        for (size_t i = 0; i < w; i++) f->v |= (uint64_t)r->p[i] << (8 * i);
        r->p += w;
        return SE_OK;
    }
    case WT_LEN: {
        uint64_t n;
        rc = read_varint(r, &n);
        if (rc == -1) return se_err(err, SE_E_FORMAT, "%s: field %u: truncated length", where, f->num);
        if (rc == -2) return se_err(err, SE_E_FORMAT, "%s: field %u: length varint is longer than 10 bytes", where, f->num);
        left = (size_t)(r->end - r->p);
        if (n > left)
            return se_err(err, SE_E_FORMAT, "%s: field %u: length %llu exceeds the %zu bytes left", where, f->num,
                          (unsigned long long)n, left);
        f->data = r->p;
        f->len = (size_t)n;
        r->p += n;
        return SE_OK;
    }
    default:
        return se_err(err, SE_E_FORMAT, "%s: field %u: unsupported wire type %d", where, f->num, f->wt);
    }
}

/* Checks that a known field came with the wire type its declaration gives. */
static se_status want_wt(const field *f, int wt, const char *where, const char *name, se_error *err) {
    if (f->wt == wt) return SE_OK;
    return se_err(err, SE_E_FORMAT, "%s.%s: wire type %s, expected %s", where, name, wt_name(f->wt), wt_name(wt));
}

/* An int32 field: protobuf writes negatives as 10-byte two's complement. */
static se_status get_int32(const field *f, const char *where, const char *name, int32_t *out, se_error *err) {
    se_status s = want_wt(f, WT_VARINT, where, name, err);
    if (s != SE_OK) return s;
    int64_t v = (int64_t)f->v;
    if (v < INT32_MIN || v > INT32_MAX)
        return se_err(err, SE_E_FORMAT, "%s.%s: %lld is outside the int32 range", where, name, (long long)v);
    *out = (int32_t)v;
    return SE_OK;
}

/* A bool field. */
static se_status get_bool(const field *f, const char *where, const char *name, bool *out, se_error *err) {
    se_status s = want_wt(f, WT_VARINT, where, name, err);
    if (s == SE_OK) *out = f->v != 0;
    return s;
}

/* Parses one SentencePiece message into *pc, copying its text to *blob. */
static se_status parse_piece(const uint8_t *data, size_t len, const char *where, se_spm_piece *pc, char **blob,
                             se_error *err) {
    reader r = {data, data + len};
    field f;
    se_status s;
    bool have_text = false;
    const uint8_t *text = NULL;
    size_t text_len = 0;
    pc->score = 0.0f;
    pc->type = SE_SPM_NORMAL;
    while (r.p < r.end) {
        if ((s = next_field(&r, where, &f, err)) != SE_OK) return s;
        if (f.num == 1) {
            if ((s = want_wt(&f, WT_LEN, where, "piece", err)) != SE_OK) return s;
            text = f.data;
            text_len = f.len;
            have_text = true;
        } else if (f.num == 2) {
            if ((s = want_wt(&f, WT_FIXED32, where, "score", err)) != SE_OK) return s;
            uint32_t bits = (uint32_t)f.v;
            memcpy(&pc->score, &bits, sizeof bits);
            if (!isfinite(pc->score))
                return se_err(err, SE_E_FORMAT, "%s.score: not a finite number", where);
        } else if (f.num == 3) {
            if ((s = want_wt(&f, WT_VARINT, where, "type", err)) != SE_OK) return s;
            if (f.v < 1 || f.v > 6)
                return se_err(err, SE_E_FORMAT, "%s.type: unknown piece type %llu (1..6)", where,
                              (unsigned long long)f.v);
            pc->type = (se_spm_piece_type)f.v;
        }
    }
    if (!have_text || text_len == 0) return se_err(err, SE_E_FORMAT, "%s.piece: missing or empty", where);
    if (text_len > SE_SPM_MAX_PIECE_BYTES)
        return se_err(err, SE_E_FORMAT, "%s.piece: %zu bytes exceed the cap of %d", where, text_len,
                      SE_SPM_MAX_PIECE_BYTES);
    size_t bad;
    if (!se_utf8_valid((const char *)text, text_len, &bad))
        return se_err(err, SE_E_FORMAT, "%s.piece: not valid UTF-8 (byte %zu)", where, bad);
    if (memchr(text, 0, text_len)) return se_err(err, SE_E_FORMAT, "%s.piece: contains a NUL byte", where);
    memcpy(*blob, text, text_len);
    (*blob)[text_len] = '\0';
    pc->text = *blob;
    pc->len = (uint32_t)text_len;
    *blob += text_len + 1;
    return SE_OK;
}

/* Parses TrainerSpec (only the fields in the header). */
static se_status parse_trainer(se_spm_model *m, const uint8_t *data, size_t len, const char *where, se_error *err) {
    reader r = {data, data + len};
    field f;
    se_status s = SE_OK;
    while (r.p < r.end && s == SE_OK) {
        if ((s = next_field(&r, where, &f, err)) != SE_OK) return s;
        switch (f.num) {
        case 3:
            if ((s = want_wt(&f, WT_VARINT, where, "model_type", err)) != SE_OK) return s;
            if (f.v < 1 || f.v > 4)
                return se_err(err, SE_E_FORMAT, "%s.model_type: unknown model type %llu (1..4)", where,
                              (unsigned long long)f.v);
            m->trainer.model_type = (se_spm_model_type)f.v;
            break;
        case 4: s = get_int32(&f, where, "vocab_size", &m->trainer.vocab_size, err); break;
        case 24: s = get_bool(&f, where, "treat_whitespace_as_suffix", &m->trainer.treat_whitespace_as_suffix, err); break;
        case 35: s = get_bool(&f, where, "byte_fallback", &m->trainer.byte_fallback, err); break;
        case 40: s = get_int32(&f, where, "unk_id", &m->trainer.unk_id, err); break;
        case 41: s = get_int32(&f, where, "bos_id", &m->trainer.bos_id, err); break;
        case 42: s = get_int32(&f, where, "eos_id", &m->trainer.eos_id, err); break;
        case 43: s = get_int32(&f, where, "pad_id", &m->trainer.pad_id, err); break;
        default: break;
        }
    }
    return s;
}

/* Parses NormalizerSpec (name, charsmap bytes, the three flags). */
static se_status parse_normalizer(se_spm_model *m, const uint8_t *data, size_t len, const char *where,
                                  se_error *err) {
    reader r = {data, data + len};
    field f;
    se_status s = SE_OK;
    while (r.p < r.end && s == SE_OK) {
        if ((s = next_field(&r, where, &f, err)) != SE_OK) return s;
        switch (f.num) {
        case 1: {
            if ((s = want_wt(&f, WT_LEN, where, "name", err)) != SE_OK) return s;
            size_t bad;
            if (!se_utf8_valid((const char *)f.data, f.len, &bad) || memchr(f.data, 0, f.len))
                return se_err(err, SE_E_FORMAT, "%s.name: not valid UTF-8 text", where);
            char *name = se_strndup((const char *)f.data, f.len);
            if (!name) return se_err(err, SE_E_NOMEM, "out of memory");
            se_free(m->normalizer.name);
            m->normalizer.name = name;
            break;
        }
        case 2: {
            if ((s = want_wt(&f, WT_LEN, where, "precompiled_charsmap", err)) != SE_OK) return s;
            uint8_t *cm = se_malloc(f.len ? f.len : 1);
            if (!cm) return se_err(err, SE_E_NOMEM, "out of memory");
            if (f.len) memcpy(cm, f.data, f.len);
            se_free(m->normalizer.charsmap);
            m->normalizer.charsmap = cm;
            m->normalizer.charsmap_len = f.len;
            break;
        }
        case 3: s = get_bool(&f, where, "add_dummy_prefix", &m->normalizer.add_dummy_prefix, err); break;
        case 4: s = get_bool(&f, where, "remove_extra_whitespaces", &m->normalizer.remove_extra_whitespaces, err); break;
        case 5: s = get_bool(&f, where, "escape_whitespaces", &m->normalizer.escape_whitespaces, err); break;
        default: break;
        }
    }
    return s;
}

/* Orders piece pointers by text (bytes, then length) to find duplicates. */
static int cmp_piece(const void *a, const void *b) {
    const se_spm_piece *x = *(const se_spm_piece *const *)a, *y = *(const se_spm_piece *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->text, y->text, n);
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* The checks sentencepiece's model_interface makes when it loads pieces,
 * and the special ids' ranges. */
static se_status validate(const se_spm_model *m, const char *name, se_error *err) {
    if (m->n_pieces == 0) return se_err(err, SE_E_FORMAT, "%s: pieces: the model has no pieces", name);
    long unk = -1;
    for (size_t i = 0; i < m->n_pieces; i++) {
        if (m->pieces[i].type != SE_SPM_UNKNOWN) continue;
        if (unk >= 0)
            return se_err(err, SE_E_FORMAT, "%s: pieces[%zu]: a second UNKNOWN piece (the first is pieces[%ld])", name,
                          i, unk);
        unk = (long)i;
    }
    if (unk < 0) return se_err(err, SE_E_FORMAT, "%s: pieces: no UNKNOWN piece", name);
    if (m->trainer.unk_id != unk)
        return se_err(err, SE_E_FORMAT, "%s: trainer_spec.unk_id %d is not the UNKNOWN piece (pieces[%ld])", name,
                      m->trainer.unk_id, unk);
    const struct {
        const char *what;
        int32_t id;
    } ids[] = {{"bos_id", m->trainer.bos_id}, {"eos_id", m->trainer.eos_id}, {"pad_id", m->trainer.pad_id}};
    for (size_t k = 0; k < 3; k++)
        if (ids[k].id < -1 || ids[k].id >= (int64_t)m->n_pieces)
            return se_err(err, SE_E_FORMAT, "%s: trainer_spec.%s %d is outside -1..%zu", name, ids[k].what, ids[k].id,
                          m->n_pieces - 1);
    if (!m->trainer.byte_fallback)
        for (size_t i = 0; i < m->n_pieces; i++)
            if (m->pieces[i].type == SE_SPM_BYTE)
                return se_err(err, SE_E_FORMAT, "%s: pieces[%zu]: BYTE piece '%s' but trainer_spec.byte_fallback is false",
                              name, i, m->pieces[i].text);
    const se_spm_piece **order = se_malloc_array(m->n_pieces, sizeof *order);
    if (!order) return se_err(err, SE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < m->n_pieces; i++) order[i] = &m->pieces[i];
    qsort(order, m->n_pieces, sizeof *order, cmp_piece);
    se_status s = SE_OK;
    for (size_t i = 1; i < m->n_pieces; i++)
        if (cmp_piece(&order[i - 1], &order[i]) == 0) {
            size_t a = (size_t)(order[i - 1] - m->pieces), b = (size_t)(order[i] - m->pieces);
            s = se_err(err, SE_E_FORMAT, "%s: pieces[%zu]: '%s' duplicates pieces[%zu]", name, a > b ? a : b,
                       order[i]->text, a < b ? a : b);
            break;
        }
    se_free((void *)order);
    return s;
}

se_status se_spm_model_parse(const uint8_t *data, size_t len, const char *name, se_spm_model **out,
                             se_error *err) {
    *out = NULL;
    if (!name) name = "sentencepiece model";
    if (len > SE_SPM_MAX_FILE)
        return se_err(err, SE_E_FORMAT, "%s: %zu bytes exceed the cap of %zu", name, len, SE_SPM_MAX_FILE);
    /* pass 1: framing, piece count and bytes */
    reader r = {data, data + len};
    field f;
    se_status s;
    size_t n_pieces = 0, piece_bytes = 0;
    while (r.p < r.end) {
        if ((s = next_field(&r, name, &f, err)) != SE_OK) return s;
        if (f.num == 1) {
            if ((s = want_wt(&f, WT_LEN, name, "pieces", err)) != SE_OK) return s;
            if (++n_pieces > SE_SPM_MAX_PIECES)
                return se_err(err, SE_E_FORMAT, "%s: pieces: more than %zu pieces", name, SE_SPM_MAX_PIECES);
            piece_bytes += f.len + 1;
        }
    }
    se_spm_model *m = se_calloc(1, sizeof *m);
    if (!m) return se_err(err, SE_E_NOMEM, "out of memory");
    m->trainer.model_type = SE_SPM_UNIGRAM;
    m->trainer.unk_id = 0;
    m->trainer.bos_id = 1;
    m->trainer.eos_id = 2;
    m->trainer.pad_id = -1;
    m->normalizer.add_dummy_prefix = true;
    m->normalizer.remove_extra_whitespaces = true;
    m->normalizer.escape_whitespaces = true;
    m->pieces = se_calloc(n_pieces ? n_pieces : 1, sizeof *m->pieces);
    m->blob = se_malloc(piece_bytes ? piece_bytes : 1);
    if (!m->pieces || !m->blob) {
        se_spm_model_free(m);
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    /* pass 2: the fields */
    char *blob = m->blob;
    char where[160];
    r.p = data;
    s = SE_OK;
    while (r.p < r.end && s == SE_OK) {
        if ((s = next_field(&r, name, &f, err)) != SE_OK) break;
        switch (f.num) {
        case 1:
            snprintf(where, sizeof where, "%s: pieces[%zu]", name, m->n_pieces);
            s = parse_piece(f.data, f.len, where, &m->pieces[m->n_pieces], &blob, err);
            m->n_pieces++;
            break;
        case 2:
            snprintf(where, sizeof where, "%s: trainer_spec", name);
            if ((s = want_wt(&f, WT_LEN, name, "trainer_spec", err)) == SE_OK) s = parse_trainer(m, f.data, f.len, where, err);
            break;
        case 3:
            snprintf(where, sizeof where, "%s: normalizer_spec", name);
            if ((s = want_wt(&f, WT_LEN, name, "normalizer_spec", err)) == SE_OK)
                s = parse_normalizer(m, f.data, f.len, where, err);
            break;
        case 5:
            if ((s = want_wt(&f, WT_LEN, name, "denormalizer_spec", err)) == SE_OK) m->has_denormalizer = true;
            break;
        default: break;
        }
    }
    if (s == SE_OK && !m->normalizer.name) {
        m->normalizer.name = se_strdup("");
        if (!m->normalizer.name) s = se_err(err, SE_E_NOMEM, "out of memory");
    }
    if (s == SE_OK) s = validate(m, name, err);
    if (s == SE_OK && m->normalizer.charsmap_len > 0) {
        /* the charsmap must load: build it once to check, then drop it */
        char field_name[200];
        snprintf(field_name, sizeof field_name, "%s: normalizer_spec.precompiled_charsmap", name);
        se_precompiled *pc;
        s = se_precompiled_new(m->normalizer.charsmap, m->normalizer.charsmap_len, field_name, &pc, err);
        se_precompiled_free(pc);
    }
    if (s != SE_OK) {
        se_spm_model_free(m);
        return s;
    }
    *out = m;
    return SE_OK;
}

se_status se_spm_model_load(const char *path, se_spm_model **out, se_error *err) {
    char *data;
    size_t len;
    *out = NULL;
    se_status s = se_file_read(path, SE_SPM_MAX_FILE, &data, &len, err);
    if (s != SE_OK) return s;
    s = se_spm_model_parse((const uint8_t *)data, len, path, out, err);
    se_free(data);
    return s;
}

void se_spm_model_free(se_spm_model *m) {
    if (!m) return;
    se_free(m->pieces);
    se_free(m->blob);
    se_free(m->normalizer.name);
    se_free(m->normalizer.charsmap);
    se_free(m);
}

const char *se_spm_piece_type_name(se_spm_piece_type t) {
    switch (t) {
    case SE_SPM_NORMAL: return "NORMAL";
    case SE_SPM_UNKNOWN: return "UNKNOWN";
    case SE_SPM_CONTROL: return "CONTROL";
    case SE_SPM_USER_DEFINED: return "USER_DEFINED";
    case SE_SPM_UNUSED: return "UNUSED";
    case SE_SPM_BYTE: return "BYTE";
    }
    return "?";
}

se_status se_spm_fairseq_check(const se_spm_model *m, const char *name, se_error *err) {
    if (m->n_pieces < 4)
        return se_err(err, SE_E_UNSUPPORTED, "%s: %zu pieces, the fairseq layout needs at least 4", name, m->n_pieces);
    static const se_spm_piece_type want[3] = {SE_SPM_UNKNOWN, SE_SPM_CONTROL, SE_SPM_CONTROL};
    for (int i = 0; i < 3; i++)
        if (m->pieces[i].type != want[i])
            return se_err(err, SE_E_UNSUPPORTED, "%s: pieces[%d] '%s' is %s; the fairseq layout needs <unk> <s> </s> first",
                          name, i, m->pieces[i].text, se_spm_piece_type_name(m->pieces[i].type));
    if (m->trainer.unk_id != 0 || m->trainer.bos_id != 1 || m->trainer.eos_id != 2)
        return se_err(err, SE_E_UNSUPPORTED, "%s: trainer_spec unk/bos/eos ids %d/%d/%d; the fairseq layout needs 0/1/2",
                      name, m->trainer.unk_id, m->trainer.bos_id, m->trainer.eos_id);
    return SE_OK;
}

int32_t se_spm_fairseq_id(const se_spm_model *m, int32_t spm_id) {
    return spm_id == m->trainer.unk_id ? 3 : spm_id + 1;
}

const char *se_spm_fairseq_piece(const se_spm_model *m, int32_t fid) {
    static const char *special[4] = {"<s>", "<pad>", "</s>", "<unk>"};
    if (fid >= 0 && fid < 4) return special[fid];
    if ((size_t)fid == m->n_pieces + 1) return "<mask>";
    return m->pieces[fid - 1].text;
}
