/*
 * normalizer_precompiled.h - sentencepiece's precompiled charsmap: the
 * normalisation rules (NFKC and friends) a sentencepiece model carries in
 * normalizer_spec.precompiled_charsmap, and that Hugging Face's
 * tokenizer.json carries base64-encoded as the `Precompiled` normaliser.
 *
 * The blob is [u32 LE trie_size][trie: trie_size/4 darts-clone double-array
 * units][replacement strings, each NUL-terminated]. A trie key is the UTF-8
 * of a source sequence; its value is the byte offset of the replacement.
 *
 * Two ways of applying it, because the two references differ:
 *
 *   - sentencepiece (normalizer.cc, Normalizer::Normalize): at each position
 *     the LONGEST key that prefixes the rest of the text is replaced
 *     (among the first 32 prefix matches); with no match one character is
 *     copied (an invalid UTF-8 byte becomes U+FFFD). Around that loop the
 *     normaliser spec's whitespace rules run: leading whitespace dropped,
 *     runs of whitespace collapsed, trailing whitespace dropped
 *     (remove_extra_whitespaces), a dummy space prefix (add_dummy_prefix),
 *     and ' ' written as U+2581 (escape_whitespaces).
 *
 *   - Hugging Face (tokenizers' `Precompiled` normaliser, crate
 *     spm_precompiled): the text is cut into extended grapheme clusters;
 *     a cluster shorter than 6 bytes is looked up whole, and if ANY key
 *     prefixes it, the SHORTEST such key's replacement replaces the WHOLE
 *     cluster; otherwise each character of the cluster is looked up alone
 *     (again shortest prefix, replacing that one character) or copied.
 *     No whitespace handling: the tokenizer.json's other normalisers and
 *     the Metaspace pre-tokeniser do that.
 *
 * Where they differ: (1) a grapheme whose first character(s) have a rule of
 * their own and that continues with more characters (e.g. U+2460 CIRCLED
 * DIGIT ONE followed by U+0301: HF writes "1" and drops the accent;
 * sentencepiece writes "1" + U+0301); (2) a key longer than one grapheme or
 * spanning graphemes (sentencepiece can match across, HF cannot); (3) a
 * grapheme of 6+ bytes whose whole sequence has a rule (HF applies per
 * character only); (4) the cluster boundaries themselves come from
 * utf8proc here (Unicode of the installed libutf8proc), and from the Rust
 * unicode-segmentation crate in tokenizers (no difference on the 11,000-line
 * corpus of tests/fixtures/sentencepiece).
 *
 * Not done here: sentencepiece keeps USER_DEFINED pieces out of
 * normalisation (a prefix matcher runs before the charsmap); a tokenizer
 * for a model with such pieces must split them off first.
 */
#ifndef SE_NORMALIZER_PRECOMPILED_H
#define SE_NORMALIZER_PRECOMPILED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sembed.h"

typedef struct se_precompiled se_precompiled;

/* Caps: a trie of at most 2^20 units (4 MiB; sentencepiece's NFKC tries are
 * ~50k units) and replacement strings of at most 16 MiB. */
#define SE_PRECOMPILED_MAX_UNITS ((size_t)1 << 20)
#define SE_PRECOMPILED_MAX_STRINGS ((size_t)1 << 24)

/* Builds a normaliser from a precompiled charsmap blob (copied). Validates
 * the framing and walks the whole trie once: every node reachable by a
 * lookup lies inside the array, every value
 * points at the start of a UTF-8 character inside the strings, which are
 * valid UTF-8 and NUL-terminated. `field` names the blob in errors (e.g.
 * "test.model: normalizer_spec.precompiled_charsmap"). Thread-safe; the
 * result is immutable and may be shared between threads. */
se_status se_precompiled_new(const uint8_t *data, size_t len, const char *field, se_precompiled **out,
                             se_error *err);

/* Frees; NULL is a no-op. */
void se_precompiled_free(se_precompiled *pc);

/* Number of trie units and bytes of replacement strings (for tests). */
size_t se_precompiled_n_units(const se_precompiled *pc);

/* sentencepiece's NormalizePrefix on s[0..n) (n > 0): the longest rule
 * matching a prefix. Returns the bytes consumed (>= 1) and sets *rep to the
 * replacement (*rep_len bytes, inside pc; valid until se_precompiled_free),
 * or *rep = NULL when no rule matches (copy the consumed bytes as they
 * are). An invalid UTF-8 byte with no rule consumes 1 byte and is replaced
 * by U+FFFD. */
size_t se_precompiled_prefix(const se_precompiled *pc, const char *s, size_t n, const char **rep,
                             size_t *rep_len);

/* Hugging Face's `transform`: the replacement of the shortest rule that
 * prefixes s[0..n), or NULL (no rule). */
const char *se_precompiled_first(const se_precompiled *pc, const char *s, size_t n, size_t *rep_len);

/* Whether a text cut between two ASCII letters or digits normalises to
 * the concatenation of its parts, both ways: a key that is one such byte
 * maps to itself, and no key holds one past its first byte (so no key
 * spans the cut; keys such as a letter and a combining mark are fine).
 * The tokenizer normalises long texts in such chunks. False also when
 * memory runs out. */
bool se_precompiled_ascii_inert(const se_precompiled *pc);

/* The normaliser spec's options around the charsmap (sentencepiece's
 * NormalizerSpec; defaults all true except treat_whitespace_as_suffix, which
 * comes from the trainer spec). */
typedef struct {
    bool add_dummy_prefix;
    bool remove_extra_whitespaces;
    bool escape_whitespaces;
    bool treat_whitespace_as_suffix;
} se_spm_norm_opts;

/* sentencepiece's Normalizer::Normalize of text[0..n) under opts, with the
 * charsmap pc (NULL = identity rules, as for an "identity" spec). Writes a
 * new NUL-terminated string to *out (*out_len bytes; free with se_free).
 * Never fails on text (invalid UTF-8 becomes U+FFFD, as in sentencepiece);
 * SE_E_NOMEM on allocation failure. Thread-safe. */
se_status se_precompiled_normalize_spm(const se_precompiled *pc, const se_spm_norm_opts *opts, const char *text,
                                       size_t n, char **out, size_t *out_len, se_error *err);

/* Hugging Face's Precompiled normaliser alone on text[0..n) (valid UTF-8,
 * else SE_E_UTF8 naming the byte offset). Writes a new NUL-terminated
 * string to *out (free with se_free). Thread-safe. */
se_status se_precompiled_normalize_hf(const se_precompiled *pc, const char *text, size_t n, char **out,
                                      size_t *out_len, se_error *err);

/* se_precompiled_normalize_spm that also writes sentencepiece's
 * norm_to_orig map into *n2o (free with se_free): for every byte of *out
 * the offset in text of what it came from, then one more entry, the end
 * (where the trailing whitespace it removed begins, else n). A piece
 * [a, b) of *out spans text[n2o[a], n2o[b]). */
se_status se_precompiled_normalize_spm_map(const se_precompiled *pc, const se_spm_norm_opts *opts, const char *text,
                                           size_t n, char **out, size_t *out_len, uint32_t **n2o, se_error *err);

/* se_precompiled_normalize_hf that also writes, for every code point of
 * *out, Hugging Face's change value (tokenizers' NormalizedString
 * transform: 0 replaces the next source character, 1 is inserted after
 * the previous one, -k replaces the next one and removes k more), from
 * which token offsets follow. *changes (free with se_free) has one entry
 * per code point of *out. */
se_status se_precompiled_normalize_hf_changes(const se_precompiled *pc, const char *text, size_t n, char **out,
                                              size_t *out_len, int32_t **changes, se_error *err);

#endif
