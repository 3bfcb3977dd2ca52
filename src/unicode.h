/*
 * unicode.h - UTF-8 decoding and the Unicode character classes the
 * tokenizers need (Hugging Face BertNormalizer / BertPreTokenizer
 * semantics, Python str.strip semantics).
 */
#ifndef SE_UNICODE_H
#define SE_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes one code point from s[0..n). Strict: rejects overlong forms,
 * surrogates, values above U+10FFFF and truncated sequences. Returns the
 * byte length (1-4) and stores the code point, or 0 when invalid. */
int se_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);

/* Encodes cp (must be valid) into out; returns the byte length 1-4. */
int se_utf8_encode(uint32_t cp, char out[4]);

/* Returns true when s[0..n) is valid UTF-8; otherwise false and the offset
 * of the first bad byte in *bad. */
bool se_utf8_valid(const char *s, size_t n, size_t *bad);

/* White_Space as Rust's char::is_whitespace (what HF tokenizers use). */
bool se_uc_is_whitespace(uint32_t c);

/* Python's str.isspace (used by str.strip in sentence-transformers). */
bool se_uc_is_py_space(uint32_t c);

/* HF BertNormalizer's is_control: categories Cc, Cf, Co except tab,
 * newline and carriage return. */
bool se_uc_is_control(uint32_t c);

/* HF BertPreTokenizer's punctuation: ASCII punctuation or category P*. */
bool se_uc_is_punct(uint32_t c);

/* CJK ideograph blocks that BertNormalizer pads with spaces. */
bool se_uc_is_cjk(uint32_t c);

/* Category Mn (nonspacing mark), dropped by strip_accents. */
bool se_uc_is_mn(uint32_t c);

/* Full lowercase mapping as Rust's char::to_lowercase: writes 1 or 2 code
 * points into out and returns the count. */
int se_uc_lower(uint32_t c, uint32_t out[2]);

/* Canonical decomposition (NFD) of one code point, recursively, including
 * Hangul syllables. Writes up to cap code points; returns the count (which
 * may exceed cap: then call again with a larger buffer). */
size_t se_uc_nfd_char(uint32_t c, uint32_t *out, size_t cap);

/* Canonical combining class of c (0 for starters). */
int se_uc_ccc(uint32_t c);

/* Puts cps[0..n) into canonical order (stable sort of each run of
 * non-starters by combining class), completing NFD. */
void se_uc_canonical_order(uint32_t *cps, size_t n);

#endif
