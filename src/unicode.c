/*
 * unicode.c - UTF-8 and Unicode character classes for the tokenizers.
 *
 * Character data (general categories, decompositions, case mappings,
 * combining classes) comes from utf8proc, a well-kept Debian library
 * (libutf8proc, Unicode 15 in Debian 12). Which classes a tokenizer uses is
 * our job and follows the Hugging Face tokenizers crate:
 *   - whitespace: Rust char::is_whitespace (the White_Space property);
 *   - control: categories Cc Cf Co (the crate's is_other leaves out Cn, so
 *     unassigned code points survive), but tab, LF and CR count as
 *     whitespace instead;
 *   - punctuation: ASCII punctuation or categories Pc Pd Ps Pe Pi Pf Po;
 *   - lowercase: Rust's full mapping, where only U+0130 differs from the
 *     simple mapping (it becomes "i" + U+0307);
 *   - strip accents: NFD, then drop category Mn.
 */
#include "unicode.h"

#include "error.h"

#include <utf8proc.h>

int se_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    uint8_t b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    int len;
    uint32_t c, min;
    if ((b & 0xE0) == 0xC0) {
        len = 2, c = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
        len = 3, c = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
        len = 4, c = b & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

int se_utf8_encode(uint32_t c, char out[4]) {
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

bool se_utf8_valid(const char *s, size_t n, size_t *bad) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t c;
        int k = se_utf8_decode(p + i, n - i, &c);
        if (!k) {
            if (bad) *bad = i;
            return false;
        }
        i += (size_t)k;
    }
    return true;
}

se_status se_utf8_check(const char *s, size_t n, size_t *bad_at, se_error *err) {
    size_t bad = 0;
    if (!s && n) return se_err(err, SE_E_INVALID, "se_utf8_check: NULL text of %zu bytes", n);
    if (!n || se_utf8_valid(s, n, &bad)) return SE_OK;
    if (bad_at) *bad_at = bad;
    return se_err(err, SE_E_UTF8, "invalid UTF-8 at byte %zu", bad);
}

bool se_uc_is_whitespace(uint32_t c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
    switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
        return true;
    }
    return c >= 0x2000 && c <= 0x200A;
}

bool se_uc_is_py_space(uint32_t c) {
    if (c >= 0x1C && c <= 0x1F) return true; /* Python counts the separators */
    return se_uc_is_whitespace(c);
}

bool se_uc_is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
        return true;
    default:
        return false;
    }
}

bool se_uc_is_punct(uint32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
        return true;
    if (c < 128) return false;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return true;
    default:
        return false;
    }
}

bool se_uc_is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool se_uc_is_mn(uint32_t c) {
    if (c < 0x300) return false;
    return utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_MN;
}

int se_uc_lower(uint32_t c, uint32_t out[2]) {
    if (c < 0x80) {
        out[0] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        return 1;
    }
    if (c == 0x130) { /* the one unconditional multi-char lowercase mapping */
        out[0] = 'i';
        out[1] = 0x307;
        return 2;
    }
    out[0] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
    return 1;
}

size_t se_uc_nfd_char(uint32_t c, uint32_t *out, size_t cap) {
    if (c < 0xC0) {
        if (cap) out[0] = c;
        return 1;
    }
    utf8proc_int32_t buf[32];
    int last = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)c, buf, 32, UTF8PROC_DECOMPOSE, &last);
    if (n <= 0 || n > 32) { /* cannot happen for valid code points; keep c as is */
        if (cap) out[0] = c;
        return 1;
    }
    for (utf8proc_ssize_t i = 0; i < n && (size_t)i < cap; i++) out[i] = (uint32_t)buf[i];
    return (size_t)n;
}

int se_uc_ccc(uint32_t c) {
    if (c < 0x300) return 0;
    return utf8proc_get_property((utf8proc_int32_t)c)->combining_class;
}

void se_uc_canonical_order(uint32_t *cps, size_t n) {
    /* Insertion sort within runs of non-starters; runs are tiny. */
    for (size_t i = 1; i < n; i++) {
        int ci = se_uc_ccc(cps[i]);
        if (ci == 0) continue;
        size_t j = i;
        uint32_t x = cps[i];
        while (j > 0) {
            int cj = se_uc_ccc(cps[j - 1]);
            if (cj == 0 || cj <= ci) break;
            cps[j] = cps[j - 1];
            j--;
        }
        cps[j] = x;
    }
}
