/*
 * tokenizer_wordpiece.c - the BERT tokenizer: BertNormalizer,
 * BertPreTokenizer and WordPiece, as Hugging Face tokenizers runs them.
 *
 * The pipeline streams over the text one code point at a time, so a huge
 * input that will be truncated anyway is only read up to the cut:
 *   1. added tokens ([CLS], [MASK], ...) are matched in the raw text first
 *      and emitted as their ids;
 *   2. every other code point is normalised: clean_text drops U+0000,
 *      U+FFFD and control characters and turns whitespace into ' ';
 *      handle_chinese_chars surrounds CJK ideographs with spaces;
 *      strip_accents decomposes (NFD) and drops nonspacing marks (Mn);
 *      lowercase applies the full lowercase mapping;
 *   3. the pre-tokenizer splits on whitespace and isolates each
 *      punctuation character;
 *   4. WordPiece splits each word greedily, longest match first, with "##"
 *      on continuation pieces; a word that cannot be split, or that has more
 *      than max_input_chars_per_word characters, becomes [UNK].
 * References: HF tokenizers normalizers/bert.rs, pre_tokenizers/bert.rs,
 * models/wordpiece; Google BERT tokenization.py.
 */
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer.h"
#include "unicode.h"

/* ==== Growable arrays ==== */

bool se_i32vec_push(se_i32vec *a, int32_t x) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        int32_t *v = se_realloc(a->v, nc * sizeof *v);
        if (!v) return false;
        a->v = v, a->cap = nc;
    }
    a->v[a->n++] = x;
    return true;
}

void se_i32vec_free(se_i32vec *a) {
    se_free(a->v);
    a->v = NULL, a->n = a->cap = 0;
}

/* Frees the session's buffers and zeroes it, ready for reuse. */
void se_tok_session_free(se_tok_session *s) {
    se_i32vec_free(&s->a);
    se_i32vec_free(&s->b);
    se_i32vec_free(&s->nch);
    se_free(s->word);
    se_free(s->wbuf);
    se_free(s->bpos);
    se_free(s->best);
    se_free(s->lid);
    se_free(s->llen);
    se_free(s->reach);
    se_free(s->run);
    memset(s, 0, sizeof *s);
}

/* ==== Vocabulary hash ==== */

/* FNV-1a over the bytes. */
static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

se_status se_vocab_build_index(se_vocab *v, se_error *err) {
    size_t ns = 16;
    while (ns < v->n * 2) ns <<= 1;
    v->slots = se_malloc_array(ns, sizeof *v->slots);
    if (!v->slots) return se_err(err, SE_E_NOMEM, "vocabulary: out of memory for %zu slots", ns);
    memset(v->slots, 0xff, ns * sizeof *v->slots);
    v->n_slots = ns;
    for (size_t id = v->index_from; id < v->n; id++) {
        if (v->offs[id] == UINT32_MAX) continue;
        const char *p = v->blob + v->offs[id];
        size_t len = v->lens[id];
        size_t i = hash_bytes(p, len) & (ns - 1);
        for (;;) {
            int32_t o = v->slots[i];
            if (o < 0) {
                v->slots[i] = (int32_t)id;
                break;
            }
            if (v->lens[o] == len && memcmp(v->blob + v->offs[o], p, len) == 0) {
                v->slots[i] = (int32_t)id; /* a repeated piece: the later id wins, as in HF */
                break;
            }
            i = (i + 1) & (ns - 1);
        }
    }
    return SE_OK;
}

int32_t se_vocab_find(const se_vocab *v, const char *s, size_t len) {
    if (!v->n_slots) return -1;
    size_t i = hash_bytes(s, len) & (v->n_slots - 1);
    for (;;) {
        int32_t o = v->slots[i];
        if (o < 0) return -1;
        if (v->lens[o] == len && memcmp(v->blob + v->offs[o], s, len) == 0) return o;
        i = (i + 1) & (v->n_slots - 1);
    }
}

void se_vocab_free(se_vocab *v) {
    se_free(v->blob);
    se_free(v->offs);
    se_free(v->lens);
    se_free(v->slots);
    memset(v, 0, sizeof *v);
}

/* ==== WordPiece ==== */

bool se_tok_session_reserve(se_tok_session *s, size_t n) {
    if (n <= s->word_cap) return true;
    size_t nc = s->word_cap ? s->word_cap : 64;
    while (nc < n) nc *= 2;
    uint32_t *w = se_realloc(s->word, nc * sizeof *w);
    if (!w) return false;
    s->word = w;
    uint32_t *b = se_realloc(s->bpos, (nc + 1) * sizeof *b);
    if (!b) return false;
    s->bpos = b;
    size_t wc = 2 * (nc * 4) + 64;
    char *c = se_realloc(s->wbuf, wc);
    if (!c) return false;
    s->wbuf = c;
    s->word_cap = nc;
    s->wbuf_cap = wc;
    return true;
}

/* Appends the unknown token for a whole word (and, with stats, the word's
 * code point count). The loaders refuse a WordPiece vocabulary without
 * one, so unk_id >= 0 here. Returns false on OOM. */
static bool push_unk_word(const se_tokenizer *tok, se_tok_session *s, se_i32vec *out) {
    if (!se_i32vec_push(out, tok->unk_id)) return false;
    return !s->stats || se_i32vec_push(&s->nch, (int32_t)s->word_src);
}

/* Splits the word held in s->word (normalised code points) into WordPiece
 * ids and appends them to out; with stats, the first piece stands for all
 * of the word's code points in s->nch, the others for none. A word marked
 * word_over (longer than max_input_chars_per_word) is [UNK]. Returns false
 * on OOM only. */
static bool wordpiece_word(const se_tokenizer *tok, se_tok_session *s, se_i32vec *out) {
    if (s->word_over) return push_unk_word(tok, s, out);
    size_t nch = s->word_n;
    if (nch == 0) return true;
    if (nch > tok->max_chars_per_word) return push_unk_word(tok, s, out);
    char *w = s->wbuf;              /* the word, UTF-8 */
    size_t nb = 0;
    for (size_t i = 0; i < nch; i++) {
        s->bpos[i] = (uint32_t)nb;
        nb += (size_t)se_utf8_encode(s->word[i], w + nb);
    }
    s->bpos[nch] = (uint32_t)nb;
    char *cand = w + nb;            /* prefix + piece, for continuation lookups */
    size_t pre = tok->cont_prefix_len;
    memcpy(cand, tok->cont_prefix, pre);
    size_t mark = out->n;
    size_t start = 0;
    while (start < nch) {
        size_t end = nch;
        int32_t found = -1;
        for (; end > start; end--) {
            size_t b0 = s->bpos[start], b1 = s->bpos[end];
            if (start == 0) {
                found = se_vocab_find(&tok->vocab, w, b1);
            } else {
                memcpy(cand + pre, w + b0, b1 - b0);
                found = se_vocab_find(&tok->vocab, cand, pre + b1 - b0);
            }
            if (found >= 0) break;
        }
        if (found < 0) {
            if (s->stats) s->nch.n -= out->n - mark;
            out->n = mark; /* the whole word becomes [UNK] */
            return push_unk_word(tok, s, out);
        }
        if (!se_i32vec_push(out, found)) return false;
        if (s->stats && !se_i32vec_push(&s->nch, start == 0 ? (int32_t)s->word_src : 0)) return false;
        start = end;
    }
    return true;
}

/* Finds the longest added token matching text at i; returns its index or
 * -1 (leftmost-longest, as HF's added-vocabulary matcher). */
static long match_added(const se_tokenizer *tok, const char *text, size_t len, size_t i) {
    if (!tok->added_first_byte[(uint8_t)text[i]]) return -1;
    long best = -1;
    size_t best_len = 0;
    for (size_t k = 0; k < tok->n_added; k++) {
        const se_added_token *a = &tok->added[k];
        if (a->len > best_len && a->len <= len - i && memcmp(text + i, a->content, a->len) == 0) {
            best = (long)k;
            best_len = a->len;
        }
    }
    return best;
}

/* Ends the current word. With strip_accents the word holds decomposed
 * text: put it in canonical order, drop nonspacing marks; then lowercase
 * (HF strips accents before lowercasing), then WordPiece. */
static bool flush_word(const se_tokenizer *tok, se_tok_session *s, se_i32vec *out) {
    if (s->word_over) {
        bool ok = wordpiece_word(tok, s, out);
        s->word_n = s->word_len = s->word_src = 0;
        s->word_over = false;
        return ok;
    }
    if (s->word_n == 0) return true;
    if (tok->has_normalizer && tok->strip_accents) {
        se_uc_canonical_order(s->word, s->word_n);
        size_t k = 0;
        for (size_t i = 0; i < s->word_n; i++)
            if (!se_uc_is_mn(s->word[i])) s->word[k++] = s->word[i];
        s->word_n = k;
    }
    if (tok->has_normalizer && tok->lowercase) {
        size_t n = s->word_n, extra = 0;
        for (size_t i = 0; i < n; i++) extra += s->word[i] == 0x130;
        if (extra && !se_tok_session_reserve(s, n + extra)) return false;
        size_t dst = n + extra;
        for (size_t i = n; i-- > 0;) { /* right to left: dst >= i, nothing unread is overwritten */
            uint32_t two[2];
            int m = se_uc_lower(s->word[i], two);
            dst -= (size_t)m;
            for (int t = 0; t < m; t++) s->word[dst + (size_t)t] = two[t];
        }
        s->word_n = n + extra;
    }
    bool ok = wordpiece_word(tok, s, out);
    s->word_n = s->word_len = s->word_src = 0;
    return ok;
}

/* How many code points c adds to a word once flush_word has normalised
 * it: 0 for a nonspacing mark that strip_accents drops, 2 for U+0130, which
 * lowercases to i + U+0307, else 1. */
static size_t final_len(const se_tokenizer *tok, uint32_t c) {
    if (!tok->has_normalizer) return 1;
    if (tok->strip_accents && se_uc_is_mn(c)) return 0;
    if (tok->lowercase && c == 0x130) return 2;
    return 1;
}

static bool word_append(const se_tokenizer *tok, se_tok_session *s, uint32_t c, size_t flen);

/* Feeds one normalised code point to the pre-tokenizer: whitespace ends a
 * word, punctuation is a word of its own. Once a word is longer than
 * max_input_chars_per_word after normalisation it can only be [UNK], so its
 * code points are no longer stored: a text without spaces costs no memory
 * beyond that length. */
static bool pretok_feed(const se_tokenizer *tok, se_tok_session *s, uint32_t c, se_i32vec *out) {
    if (se_uc_is_whitespace(c)) return flush_word(tok, s, out);
    if (se_uc_is_punct(c)) {
        if (!flush_word(tok, s, out)) return false;
        s->word[0] = c;
        s->word_n = 1;
        s->word_src = s->src_pending;
        s->src_pending = 0;
        return flush_word(tok, s, out);
    }
    return word_append(tok, s, c, final_len(tok, c));
}

/* Appends c, which adds flen code points after normalisation, to the
 * current word (see pretok_feed). Returns false on OOM. */
static bool word_append(const se_tokenizer *tok, se_tok_session *s, uint32_t c, size_t flen) {
    s->word_src += s->src_pending;
    s->src_pending = 0;
    if (s->word_over) return true;
    s->word_len += flen;
    if (s->word_len > tok->max_chars_per_word) {
        s->word_over = true;
        s->word_n = 0;
        return true;
    }
    if (!se_tok_session_reserve(s, s->word_n + 1)) return false;
    s->word[s->word_n++] = c;
    return true;
}

/* Keeps only the first keep ids this call appended to out (from base),
 * adding the dropped ones to *extra; the stats counts follow. */
static void cut_ids(se_tok_session *s, se_i32vec *out, size_t base, size_t keep, size_t *extra) {
    if (out->n - base <= keep) return;
    size_t drop = out->n - base - keep;
    *extra += drop;
    out->n -= drop;
    if (s->stats) s->nch.n -= drop;
}

/* Number of non-whitespace code points in a valid UTF-8 string. */
static size_t count_visible(const char *p, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        int m = se_utf8_decode((const uint8_t *)p + i, n - i, &c);
        if (!m) break;
        i += (size_t)m;
        k += !se_uc_is_whitespace(c);
    }
    return k;
}

se_status se_wordpiece_encode(const se_tokenizer *tok, const char *text, size_t len, size_t limit,
                              se_tok_session *s, se_i32vec *out, size_t *n_total, se_error *err) {
    const uint8_t *p = (const uint8_t *)text;
    size_t base = out->n, extra = 0;
    size_t keep = limit == SIZE_MAX ? SIZE_MAX : limit + 1;
    s->word_n = s->word_len = s->word_src = s->src_pending = 0;
    s->word_over = false;
    if (!se_tok_session_reserve(s, 64)) return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
    size_t i = 0;
    while (i < len) {
        if (out->n - base > limit) {
            if (!n_total) return SE_OK; /* enough to know the text is cut */
            cut_ids(s, out, base, keep, &extra); /* counting only from here */
        }
        if (tok->n_added) {
            long k = match_added(tok, text, len, i);
            if (k >= 0) {
                if (!flush_word(tok, s, out) || !se_i32vec_push(out, tok->added[k].id) ||
                    (s->stats && !se_i32vec_push(&s->nch, (int32_t)count_visible(tok->added[k].content, tok->added[k].len))))
                    return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
                i += tok->added[k].len;
                continue;
            }
        }
        uint32_t c;
        int n = se_utf8_decode(p + i, len - i, &c);
        if (!n) return se_err(err, SE_E_UTF8, "invalid UTF-8 at byte %zu", i);
        i += (size_t)n;
        if ((c | 0x20) - 'a' < 26 || c - '0' < 10) {
            /* ASCII letters and digits: no normaliser step or pre-tokenizer
             * rule applies to them; straight into the word */
            s->src_pending = 1;
            if (!word_append(tok, s, c, 1)) return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
            continue;
        }
        s->src_pending = !se_uc_is_whitespace(c); /* a code point of the text, for stats */
        bool ok = true;
        if (!tok->has_normalizer) {
            ok = pretok_feed(tok, s, c, out);
        } else {
            if (tok->clean_text) {
                if (c == 0 || c == 0xFFFD || se_uc_is_control(c)) continue;
                if (se_uc_is_whitespace(c)) c = ' ';
            }
            if (tok->handle_chinese && se_uc_is_cjk(c)) {
                ok = pretok_feed(tok, s, ' ', out) && pretok_feed(tok, s, c, out) &&
                     pretok_feed(tok, s, ' ', out);
            } else if (tok->strip_accents && c >= 0xC0) {
                uint32_t d[32];
                size_t nd = se_uc_nfd_char(c, d, 32);
                if (nd > 32) nd = 32;
                for (size_t k = 0; k < nd && ok; k++) ok = pretok_feed(tok, s, d[k], out);
            } else {
                ok = pretok_feed(tok, s, c, out);
            }
        }
        if (!ok) return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
    }
    if (!flush_word(tok, s, out)) return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
    if (n_total) {
        cut_ids(s, out, base, keep, &extra);
        *n_total = out->n - base + extra;
    }
    return SE_OK;
}
