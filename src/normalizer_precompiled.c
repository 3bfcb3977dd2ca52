/*
 * normalizer_precompiled.c - sentencepiece's precompiled charsmap, applied
 * the sentencepiece way and the Hugging Face way (see the header for both
 * and for where they differ).
 *
 * A darts-clone double-array unit (32 bits) packs:
 *   has_leaf  bit 8           the node has a child with label 0 (a value)
 *   value     bits 0..30      on a leaf unit: the replacement's offset
 *   label     bits 0..7, 31   the byte this node was reached by (bit 31 set
 *                             on leaf units, so no byte ever matches them)
 *   offset    bits 10..31, shifted left 8 more when bit 9 is set: XOR
 *             distance from the node to its children's base
 * Lookup: pos = offset(unit[0]); for each byte c: pos ^= c; stop unless
 * label(unit[pos]) == c; pos ^= offset(unit[pos]); when the unit had a
 * leaf, value(unit[pos]) is the value of the key read so far.
 */
#include "normalizer_precompiled.h"

#include <string.h>
#include <utf8proc.h>

#include "alloc.h"
#include "error.h"
#include "unicode.h"

#define MAX_PREFIX_RESULTS 32 /* sentencepiece's kMaxTrieResultsSize */
#define MAX_DEPTH 256         /* longest trie key the validator follows */

struct se_precompiled {
    uint32_t *units; /* (n_units) */
    size_t n_units;
    char *strings; /* (n_strings) replacement strings, NUL-terminated */
    size_t n_strings;
};

static inline bool unit_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static inline uint32_t unit_value(uint32_t u) { return u & 0x7FFFFFFFu; }
static inline uint32_t unit_label(uint32_t u) { return u & (0x80000000u | 0xFFu); }
static inline uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

/* Walks every node a lookup can reach and checks what a lookup would read
 * there: positions inside the array, values pointing at the start of a
 * character inside the strings and before their last NUL. darts-clone
 * builds a DAWG (equal subtrees are shared), and a node's children depend
 * only on its base, so each base is expanded once: the walk costs at most
 * 256 probes per unit whatever the bytes say, and a cycle cannot trap it.
 * Byte 0 is probed too: a lookup follows a NUL in the text like any byte
 * (a well-formed trie has no label-0 node, as its leaf units carry bit 31,
 * but a crafted one can). */
static se_status validate_trie(const se_precompiled *pc, const char *field, se_error *err) {
    struct frame {
        uint32_t base;
        uint32_t c;
    } *stack = se_malloc_array(MAX_DEPTH, sizeof *stack);
    if (!stack) return se_err(err, SE_E_NOMEM, "out of memory");
    size_t last_nul = 0;
    bool any_nul = false;
    for (size_t i = pc->n_strings; i-- > 0;)
        if (pc->strings[i] == '\0') {
            last_nul = i;
            any_nul = true;
            break;
        }
    size_t n_bases = (pc->n_units | 255) + 1, depth = 1;
    uint8_t *seen = se_calloc(n_bases / 8, 1); /* (n_bases bits) bases already expanded */
    if (!seen) {
        se_free(stack);
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    se_status s = SE_OK;
    stack[0].base = unit_offset(pc->units[0]);
    stack[0].c = 0;
    if (stack[0].base < n_bases) seen[stack[0].base / 8] |= (uint8_t)(1u << (stack[0].base % 8));
    while (depth > 0) {
        struct frame *f = &stack[depth - 1];
        if (f->c > 255) {
            depth--;
            continue;
        }
        uint32_t c = f->c++;
        size_t pos = f->base ^ c;
        if (pos >= pc->n_units || unit_label(pc->units[pos]) != c) continue;
        uint32_t child = (uint32_t)pos ^ unit_offset(pc->units[pos]);
        if (unit_has_leaf(pc->units[pos])) {
            if (child >= pc->n_units) {
                s = se_err(err, SE_E_FORMAT, "%s: trie unit %zu has a value outside the %zu-unit array", field, pos,
                           pc->n_units);
                break;
            }
            uint32_t v = unit_value(pc->units[child]);
            if (!any_nul || v > last_nul) {
                s = se_err(err, SE_E_FORMAT,
                           "%s: trie value %u is outside the %zu bytes of NUL-terminated replacement strings", field,
                           v, pc->n_strings);
                break;
            }
            if (((uint8_t)pc->strings[v] & 0xC0) == 0x80) {
                s = se_err(err, SE_E_FORMAT, "%s: trie value %u points into the middle of a UTF-8 character", field,
                           v);
                break;
            }
        }
        /* children exist only when some base ^ c is inside the array */
        if (child >= n_bases || (seen[child / 8] >> (child % 8)) & 1) continue;
        seen[child / 8] |= (uint8_t)(1u << (child % 8));
        if (depth == MAX_DEPTH) {
            s = se_err(err, SE_E_FORMAT, "%s: trie is deeper than %d bytes", field, MAX_DEPTH);
            break;
        }
        stack[depth].base = child;
        stack[depth].c = 0;
        depth++;
    }
    se_free(stack);
    se_free(seen);
    return s;
}

se_status se_precompiled_new(const uint8_t *data, size_t len, const char *field, se_precompiled **out,
                             se_error *err) {
    *out = NULL;
    if (len < 4) return se_err(err, SE_E_FORMAT, "%s: %zu bytes, too short for the 4-byte trie size", field, len);
    uint32_t trie_size = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
    if (trie_size == 0 || trie_size % 4 != 0)
        return se_err(err, SE_E_FORMAT, "%s: trie size %u is not a positive multiple of 4", field, trie_size);
    if ((size_t)trie_size > len - 4)
        return se_err(err, SE_E_FORMAT, "%s: trie size %u exceeds the %zu bytes that follow", field, trie_size,
                      len - 4);
    size_t n_units = trie_size / 4, n_strings = len - 4 - trie_size;
    if (n_units > SE_PRECOMPILED_MAX_UNITS)
        return se_err(err, SE_E_FORMAT, "%s: trie of %zu units exceeds the cap of %zu", field, n_units,
                      SE_PRECOMPILED_MAX_UNITS);
    if (n_strings > SE_PRECOMPILED_MAX_STRINGS)
        return se_err(err, SE_E_FORMAT, "%s: %zu bytes of replacement strings exceed the cap of %zu", field,
                      n_strings, SE_PRECOMPILED_MAX_STRINGS);
    size_t bad;
    if (!se_utf8_valid((const char *)data + 4 + trie_size, n_strings, &bad))
        return se_err(err, SE_E_FORMAT, "%s: replacement strings are not valid UTF-8 (byte %zu)", field, bad);
    se_precompiled *pc = se_calloc(1, sizeof *pc);
    if (!pc) return se_err(err, SE_E_NOMEM, "out of memory");
    pc->units = se_malloc_array(n_units, sizeof *pc->units);
    pc->strings = se_malloc(n_strings + 1);
    if (!pc->units || !pc->strings) {
        se_precompiled_free(pc);
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    pc->n_units = n_units;
    pc->n_strings = n_strings;
    for (size_t i = 0; i < n_units; i++) {
        const uint8_t *p = data + 4 + 4 * i;
        pc->units[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
    if (n_strings) memcpy(pc->strings, data + 4 + trie_size, n_strings);
    pc->strings[n_strings] = '\0';
    se_status s = validate_trie(pc, field, err);
    if (s != SE_OK) {
        se_precompiled_free(pc);
        return s;
    }
    *out = pc;
    return SE_OK;
}

void se_precompiled_free(se_precompiled *pc) {
    if (!pc) return;
    se_free(pc->units);
    se_free(pc->strings);
    se_free(pc);
}

size_t se_precompiled_n_units(const se_precompiled *pc) { return pc ? pc->n_units : 0; }

/* Calls back for each key that prefixes s[0..n), shortest first, with the
 * key's byte length and value; stops when cb returns false or after
 * max_results keys. The bounds checks repeat the validator's (cheap, and
 * they keep a lookup safe on its own). */
static size_t prefix_search(const se_precompiled *pc, const uint8_t *s, size_t n, size_t *lens, uint32_t *vals,
                            size_t max_results) {
    size_t k = 0;
    size_t pos = unit_offset(pc->units[0]);
    for (size_t i = 0; i < n && k < max_results; i++) {
        pos ^= s[i];
        if (pos >= pc->n_units) break;
        uint32_t u = pc->units[pos];
        if (unit_label(u) != s[i]) break;
        pos ^= unit_offset(u);
        if (unit_has_leaf(u)) {
            if (pos >= pc->n_units) break;
            uint32_t v = unit_value(pc->units[pos]);
            if (v >= pc->n_strings) break;
            lens[k] = i + 1;
            vals[k] = v;
            k++;
        }
    }
    return k;
}

size_t se_precompiled_prefix(const se_precompiled *pc, const char *s, size_t n, const char **rep,
                             size_t *rep_len) {
    size_t lens[MAX_PREFIX_RESULTS];
    uint32_t vals[MAX_PREFIX_RESULTS];
    size_t k = pc ? prefix_search(pc, (const uint8_t *)s, n, lens, vals, MAX_PREFIX_RESULTS) : 0;
    if (k > 0) {
        /* the results come shortest first: the last one is the longest */
        *rep = pc->strings + vals[k - 1];
        *rep_len = strlen(*rep);
        return lens[k - 1];
    }
    uint32_t cp;
    int m = se_utf8_decode((const uint8_t *)s, n, &cp);
    if (m == 0) {
        *rep = "\xEF\xBF\xBD"; /* U+FFFD for one malformed byte */
        *rep_len = 3;
        return 1;
    }
    *rep = NULL;
    *rep_len = 0;
    return (size_t)m;
}

const char *se_precompiled_first(const se_precompiled *pc, const char *s, size_t n, size_t *rep_len) {
    size_t len;
    uint32_t val;
    if (!pc || prefix_search(pc, (const uint8_t *)s, n, &len, &val, 1) == 0) return NULL;
    *rep_len = strlen(pc->strings + val);
    return pc->strings + val;
}

/* A growable output string. */
typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

/* Appends s[0..n) to b (records OOM instead of failing at once). */
static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = se_realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Hands the buffer to the caller, or frees it and reports OOM. */
static se_status sb_finish(sbuf *b, char **out, size_t *out_len, se_error *err) {
    if (!b->oom && !b->p) sb_put(b, "", 0);
    if (b->oom) {
        se_free(b->p);
        *out = NULL;
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    *out = b->p;
    if (out_len) *out_len = b->len;
    return SE_OK;
}

#define WS_ESCAPED "\xE2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK */

/* A growable array of source offsets, one per output byte. */
typedef struct obuf {
    uint32_t *v;
    size_t n, cap;
    bool oom;
} obuf;

/* Appends k bytes of text, each from source offset `orig`, to b (and to o
 * when not NULL). */
static void put_from(sbuf *b, obuf *o, const char *p, size_t k, size_t orig) {
    sb_put(b, p, k);
    if (!o || o->oom) return;
    if (o->n + k + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 64;
        while (cap < o->n + k + 1) cap *= 2;
        uint32_t *v = se_realloc(o->v, cap * sizeof *v);
        if (!v) {
            o->oom = true;
            return;
        }
        o->v = v, o->cap = cap;
    }
    for (size_t q = 0; q < k; q++) o->v[o->n++] = (uint32_t)orig;
}

/* sentencepiece's Normalize (see the header), with its norm_to_orig map
 * in o when not NULL: the source offset of every output byte, then the end
 * (the source offset where the trailing whitespace it dropped starts, or
 * n). */
static se_status normalize_spm(const se_precompiled *pc, const se_spm_norm_opts *opts, const char *text, size_t n,
                               char **out, size_t *out_len, obuf *o, se_error *err) {
    sbuf b = {0};
    const char *ws = opts->escape_whitespaces ? WS_ESCAPED : " ";
    size_t ws_len = opts->escape_whitespaces ? 3 : 1;
    const char *rep;
    size_t rep_len, i = 0, final = n;
    /* leading whitespace: what normalises to exactly " " is skipped */
    if (opts->remove_extra_whitespaces) {
        while (i < n) {
            size_t m = se_precompiled_prefix(pc, text + i, n - i, &rep, &rep_len);
            bool space = rep ? (rep_len == 1 && rep[0] == ' ') : (m == 1 && text[i] == ' ');
            if (!space) break;
            i += m;
        }
    }
    if (i == n) goto finish;
    if (!opts->treat_whitespace_as_suffix && opts->add_dummy_prefix) put_from(&b, o, ws, ws_len, i);
    bool prev_space = opts->remove_extra_whitespaces;
    while (i < n) {
        size_t m = se_precompiled_prefix(pc, text + i, n - i, &rep, &rep_len);
        const char *sp = rep ? rep : text + i;
        size_t sp_len = rep ? rep_len : m;
        /* drop spaces that follow a space */
        while (prev_space && sp_len > 0 && sp[0] == ' ') {
            sp++;
            sp_len--;
        }
        if (sp_len > 0) {
            for (size_t k = 0; k < sp_len; k++) {
                if (opts->escape_whitespaces && sp[k] == ' ')
                    put_from(&b, o, WS_ESCAPED, 3, i);
                else
                    put_from(&b, o, sp + k, 1, i);
            }
            prev_space = sp[sp_len - 1] == ' ';
        }
        i += m;
        if (!opts->remove_extra_whitespaces) prev_space = false;
    }
    if (opts->remove_extra_whitespaces && !b.oom)
        while (b.len >= ws_len && memcmp(b.p + b.len - ws_len, ws, ws_len) == 0) {
            b.len -= ws_len;
            b.p[b.len] = '\0';
            if (o && !o->oom) o->n -= ws_len, final = o->v[o->n];
        }
    if (opts->treat_whitespace_as_suffix && opts->add_dummy_prefix) put_from(&b, o, ws, ws_len, final);
finish:
    if (o && !o->oom) { /* the end entry */
        uint32_t *v = se_realloc(o->v, (o->n + 1) * sizeof *v);
        if (!v) o->oom = true;
        else o->v = v, o->cap = o->n + 1, o->v[o->n++] = (uint32_t)final;
    }
    if (o && o->oom) b.oom = true;
    return sb_finish(&b, out, out_len, err);
}

se_status se_precompiled_normalize_spm(const se_precompiled *pc, const se_spm_norm_opts *opts, const char *text,
                                       size_t n, char **out, size_t *out_len, se_error *err) {
    return normalize_spm(pc, opts, text, n, out, out_len, NULL, err);
}

se_status se_precompiled_normalize_spm_map(const se_precompiled *pc, const se_spm_norm_opts *opts, const char *text,
                                           size_t n, char **out, size_t *out_len, uint32_t **n2o, se_error *err) {
    obuf o = {0};
    *n2o = NULL;
    se_status s = normalize_spm(pc, opts, text, n, out, out_len, &o, err);
    if (s != SE_OK) {
        se_free(o.v);
        return s;
    }
    *n2o = o.v;
    return SE_OK;
}

/* Growable per-code-point change values (see se_precompiled_normalize_hf_changes). */
typedef struct chbuf {
    int32_t *v;
    size_t n, cap;
    bool oom;
} chbuf;

/* Appends one change value; sets oom on failure. */
static void ch_push(chbuf *c, int32_t x) {
    if (c->oom) return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        int32_t *v = se_realloc(c->v, cap * sizeof *v);
        if (!v) {
            c->oom = true;
            return;
        }
        c->v = v, c->cap = cap;
    }
    c->v[c->n++] = x;
}

/* Number of code points of a valid UTF-8 string. */
static int32_t n_cps(const char *p, size_t n) {
    int32_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((uint8_t)p[i] & 0xC0) != 0x80;
    return k;
}

/* Hugging Face's `replace` in precompiled.rs: old[0..old_len) becomes
 * rep[0..rep_len); each new code point gets change 0, then the last
 * (new - old) ones get 1 when the text grew, or the last change value so
 * far (possibly an earlier character's) absorbs the difference when it
 * shrank. */
static void put_changes(chbuf *c, const char *old, size_t old_len, const char *rep, size_t rep_len) {
    if (!c) return;
    int32_t no = n_cps(old, old_len), nn = n_cps(rep, rep_len), diff = nn - no;
    for (int32_t k = 0; k < nn; k++) ch_push(c, 0);
    if (c->oom) return;
    if (diff > 0)
        for (int32_t k = 0; k < diff; k++) c->v[c->n - 1 - (size_t)k] = 1;
    else if (diff < 0 && c->n)
        c->v[c->n - 1] += diff;
}

/* The Hugging Face charsmap application (see the header), with the change
 * values of every output code point when ch is not NULL. */
static se_status normalize_hf(const se_precompiled *pc, const char *text, size_t n, char **out, size_t *out_len,
                              chbuf *ch, se_error *err) {
    size_t bad;
    *out = NULL;
    if (!se_utf8_valid(text, n, &bad)) return se_err(err, SE_E_UTF8, "text is not valid UTF-8 at byte %zu", bad);
    sbuf b = {0};
    size_t i = 0;
    while (i < n) {
        /* one extended grapheme cluster: text[i..j) */
        uint32_t c1, c2;
        size_t j = i + (size_t)se_utf8_decode((const uint8_t *)text + i, n - i, &c1);
        utf8proc_int32_t state = 0;
        while (j < n) {
            int m = se_utf8_decode((const uint8_t *)text + j, n - j, &c2);
            if (utf8proc_grapheme_break_stateful((utf8proc_int32_t)c1, (utf8proc_int32_t)c2, &state)) break;
            c1 = c2;
            j += (size_t)m;
        }
        const char *rep;
        size_t rep_len;
        if (j - i < 6 && (rep = se_precompiled_first(pc, text + i, j - i, &rep_len)) != NULL) {
            sb_put(&b, rep, rep_len);
            put_changes(ch, text + i, j - i, rep, rep_len);
        } else {
            for (size_t k = i; k < j;) {
                uint32_t cp;
                size_t m = (size_t)se_utf8_decode((const uint8_t *)text + k, j - k, &cp);
                if ((rep = se_precompiled_first(pc, text + k, m, &rep_len)) != NULL) {
                    sb_put(&b, rep, rep_len);
                    put_changes(ch, text + k, m, rep, rep_len);
                } else {
                    sb_put(&b, text + k, m);
                    if (ch) ch_push(ch, 0);
                }
                k += m;
            }
        }
        i = j;
    }
    if (ch && ch->oom) b.oom = true;
    return sb_finish(&b, out, out_len, err);
}

se_status se_precompiled_normalize_hf(const se_precompiled *pc, const char *text, size_t n, char **out,
                                      size_t *out_len, se_error *err) {
    return normalize_hf(pc, text, n, out, out_len, NULL, err);
}

se_status se_precompiled_normalize_hf_changes(const se_precompiled *pc, const char *text, size_t n, char **out,
                                              size_t *out_len, int32_t **changes, se_error *err) {
    chbuf c = {0};
    *changes = NULL;
    se_status s = normalize_hf(pc, text, n, out, out_len, &c, err);
    if (s != SE_OK) {
        se_free(c.v);
        return s;
    }
    if (!c.v) c.v = se_malloc(sizeof *c.v); /* never NULL on success */
    if (!c.v) {
        se_free(*out);
        *out = NULL;
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    *changes = c.v;
    return SE_OK;
}

/* Follows byte c from the trie node whose children's base is `base`;
 * returns whether there is such an edge, with *unit its unit. */
static bool child_unit(const se_precompiled *pc, uint32_t base, uint8_t c, uint32_t *unit, size_t *pos) {
    size_t p = base ^ c;
    if (p >= pc->n_units || unit_label(pc->units[p]) != c) return false;
    *unit = pc->units[p];
    *pos = p;
    return true;
}

/* Whether c is an ASCII letter or digit. */
static bool ascii_alnum(unsigned c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }

/* Checks the one-byte keys of the ASCII letters and digits, then walks
 * every node below the root's children (each base once, as validate_trie
 * does) looking for a letter or digit label (see the header). */
bool se_precompiled_ascii_inert(const se_precompiled *pc) {
    uint32_t root = unit_offset(pc->units[0]);
    /* a key that is one letter or digit maps to itself (longer keys that
     * start with one, a letter and a combining mark, may map elsewhere) */
    for (unsigned c = 0; c < 128; c++) {
        if (!ascii_alnum(c)) continue;
        uint32_t u;
        size_t pos;
        if (!child_unit(pc, root, (uint8_t)c, &u, &pos)) continue;
        uint32_t base = (uint32_t)pos ^ unit_offset(u);
        if (unit_has_leaf(u)) {
            if (base >= pc->n_units) return false;
            uint32_t v = unit_value(pc->units[base]);
            if (v + 1 >= pc->n_strings || pc->strings[v] != (char)c || pc->strings[v + 1] != '\0') return false;
        }
    }
    /* no longer key has a letter or digit past its first byte: walk every
     * node below the root's children (each base once) */
    size_t n_bases = (pc->n_units | 255) + 1;
    uint8_t *seen = se_calloc(n_bases / 8, 1);
    uint32_t *stack = se_malloc_array(n_bases, sizeof *stack);
    bool ok = seen && stack;
    size_t depth = 0;
    for (unsigned c = 0; ok && c < 256; c++) {
        uint32_t u;
        size_t pos;
        if (!child_unit(pc, root, (uint8_t)c, &u, &pos)) continue;
        uint32_t base = (uint32_t)pos ^ unit_offset(u);
        if (base >= n_bases || (seen[base / 8] >> (base % 8)) & 1) continue;
        seen[base / 8] |= (uint8_t)(1u << (base % 8));
        stack[depth++] = base;
    }
    while (ok && depth > 0) {
        uint32_t base = stack[--depth];
        for (unsigned c = 1; c < 256; c++) {
            uint32_t u;
            size_t pos;
            if (!child_unit(pc, base, (uint8_t)c, &u, &pos)) continue;
            if (ascii_alnum(c)) {
                ok = false;
                break;
            }
            uint32_t child = (uint32_t)pos ^ unit_offset(u);
            if (child >= n_bases || (seen[child / 8] >> (child % 8)) & 1) continue;
            seen[child / 8] |= (uint8_t)(1u << (child % 8));
            stack[depth++] = child;
        }
    }
    se_free(seen);
    se_free(stack);
    return ok;
}
