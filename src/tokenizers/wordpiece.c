/*
 * tokenizers/wordpiece.c - the BERT tokenizer model: BertNormalizer,
 * BertPreTokenizer and WordPiece, as Hugging Face tokenizers runs them,
 * and its loaders.
 *
 * The encoder streams over the text one code point at a time, so a huge
 * input that will be truncated anyway is only read up to the cut (added
 * tokens such as [CLS] or [MASK] were split off by the pipeline before):
 *   1. every code point is normalised: clean_text drops U+0000, U+FFFD
 *      and control characters and turns whitespace into ' ';
 *      handle_chinese_chars surrounds CJK ideographs with spaces;
 *      strip_accents decomposes (NFD) and drops nonspacing marks (Mn);
 *      lowercase applies the full lowercase mapping;
 *   2. the pre-tokenizer splits on whitespace and isolates each
 *      punctuation character;
 *   3. WordPiece splits each word greedily, longest match first, with "##"
 *      on continuation pieces; a word that cannot be split, or that has more
 *      than max_input_chars_per_word characters, becomes [UNK].
 * References: HF tokenizers normalizers/bert.rs, pre_tokenizers/bert.rs,
 * models/wordpiece; Google BERT tokenization.py.
 */
#include "tokenizers/wordpiece.h"

#include <jansson.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "json.h"
#include "unicode.h"

/* ==== Loading ==== */

se_status se_wordpiece_load_json(se_wordpiece *wp, const json_t *model, long long id_limit, const char *path,
                                 const char **unk, se_error *err) {
    const char *file = "tokenizer.json";
    json_t *vocab = json_object_get(model, "vocab");
    se_status s;
    if (!json_is_object(vocab) || json_object_size(vocab) == 0)
        return se_err(err, SE_E_FORMAT, "%s: model.vocab must be a non-empty object", path);
    if (json_object_size(vocab) > SE_VOCAB_MAX_ENTRIES)
        return se_err(err, SE_E_RANGE, "%s: model.vocab has %zu entries, more than the limit of %zu", path,
                      json_object_size(vocab), SE_VOCAB_MAX_ENTRIES);
    const char *key;
    json_t *val;
    /* ids are dense: every id must be below the number of entries (vocab
     * plus added tokens), which also bounds the memory a file can ask for */
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0)
            return se_err(err, SE_E_FORMAT, "%s: model.vocab['%s'] must be a non-negative integer", path, key);
        if (json_integer_value(val) >= id_limit)
            return se_err(err, SE_E_FORMAT, "%s: model.vocab['%s'] = %lld is out of range (%lld entries)", path, key,
                          (long long)json_integer_value(val), id_limit);
        if ((s = se_vocab_add(&wp->vocab, key, strlen(key), (size_t)json_integer_value(val), path, err)) != SE_OK)
            return s;
    }
    const char *prefix;
    int64_t maxc;
    if ((s = se_json_str(model, file, "unk_token", "[UNK]", unk, err)) != SE_OK) return s;
    if ((s = se_json_str(model, file, "continuing_subword_prefix", "##", &prefix, err)) != SE_OK) return s;
    if ((s = se_json_int(model, file, "max_input_chars_per_word", 1, 1 << 20, 100, &maxc, err)) != SE_OK) return s;
    if (strlen(prefix) >= sizeof wp->cont_prefix)
        return se_err(err, SE_E_FORMAT, "%s: continuing_subword_prefix is too long", path);
    strcpy(wp->cont_prefix, prefix);
    wp->cont_prefix_len = strlen(prefix);
    wp->max_chars_per_word = (size_t)maxc;
    return SE_OK;
}

/* Reads vocab.txt line by line (CRLF tolerated, each line valid UTF-8)
 * into the vocabulary, then sets BertTokenizer's defaults (see the header). */
se_status se_wordpiece_load_txt(se_wordpiece *wp, const char *path, se_error *err) {
    char *buf = NULL;
    size_t len = 0;
    se_status s = se_file_read(path, (size_t)256 << 20, &buf, &len, err);
    if (s != SE_OK) return s;
    size_t id = 0, line = 1;
    for (size_t i = 0; i < len; line++) {
        size_t j = i;
        while (j < len && buf[j] != '\n') j++;
        size_t e = j;
        if (e > i && buf[e - 1] == '\r') e--; /* tolerate CRLF files */
        size_t bad;
        if (!se_utf8_valid(buf + i, e - i, &bad)) {
            s = se_err(err, SE_E_FORMAT, "%s:%zu: invalid UTF-8", path, line);
            goto done;
        }
        if (id >= SE_VOCAB_MAX_ENTRIES) {
            s = se_err(err, SE_E_RANGE, "%s: more than the limit of %zu vocabulary entries", path, SE_VOCAB_MAX_ENTRIES);
            goto done;
        }
        if ((s = se_vocab_add(&wp->vocab, buf + i, e - i, id++, path, err)) != SE_OK) goto done;
        i = j + 1;
    }
    if (id == 0) {
        s = se_err(err, SE_E_FORMAT, "%s: empty vocabulary", path);
        goto done;
    }
    /* BertTokenizer's defaults; tokenizer_config.json may change the
     * normaliser's switches */
    wp->has_normalizer = true;
    wp->clean_text = true;
    wp->handle_chinese = true;
    wp->lowercase = true;
    wp->strip_accents = true;
    strcpy(wp->cont_prefix, "##");
    wp->cont_prefix_len = 2;
    wp->max_chars_per_word = 100;
    s = SE_OK;
done:
    se_free(buf);
    return s;
}

/* Builds the index and requires the unknown token (see the header). */
se_status se_wordpiece_finish(se_wordpiece *wp, const char *unk, const char *path, const char *what, se_error *err) {
    se_status s = se_vocab_build_index(&wp->vocab, err);
    if (s != SE_OK) return s;
    wp->unk_id = se_vocab_find(&wp->vocab, unk, strlen(unk));
    if (wp->unk_id < 0)
        return se_err(err, SE_E_FORMAT, "%s: %s '%s' is not in the vocabulary (WordPiece needs it for words it cannot split)",
                      path, what, unk);
    return SE_OK;
}

void se_wordpiece_free(se_wordpiece *wp) { se_vocab_free(&wp->vocab); }

/* Frees the word buffers and zeroes the scratch. */
void se_wp_scratch_free(se_wp_scratch *s) {
    se_free(s->word);
    se_free(s->wbuf);
    se_free(s->bpos);
    se_free(s->wsb);
    se_free(s->wse);
    memset(s, 0, sizeof *s);
}

/* ==== WordPiece ==== */

/* Gives wsb and wse the word's capacity (only calls with offsets use
 * them). Returns false on OOM. */
static bool reserve_spans(se_wp_scratch *s) {
    uint32_t *sb = se_realloc(s->wsb, s->word_cap * sizeof *sb);
    if (!sb) return false;
    s->wsb = sb;
    uint32_t *se = se_realloc(s->wse, s->word_cap * sizeof *se);
    if (!se) return false;
    s->wse = se;
    s->span_cap = s->word_cap;
    return true;
}

/* Makes the scratch hold a word of n code points: word (n), bpos (n + 1),
 * wbuf (8 n + 64 bytes: the word in UTF-8, then room for a candidate
 * piece with its prefix) and, with offsets, wsb and wse (n). Returns false
 * on OOM. */
static bool reserve(se_wp_scratch *s, size_t n) {
    if (n <= s->word_cap) return true; /* se_wordpiece_encode sized the spans for this capacity */
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
    return !s->offs || reserve_spans(s);
}

/* Pushes the source span [b, e) of the id just pushed (calls with
 * offsets only). Returns false on OOM. */
static bool push_span(se_wp_scratch *s, uint32_t b, uint32_t e) {
    return se_i32vec_push(s->offs, (int32_t)b) && se_i32vec_push(s->offs, (int32_t)e);
}

/* Appends the unknown token for a whole word (and, with stats, the word's
 * code point count; with offsets, the span of its first and last
 * normalised code points, or of all it was fed once it passed the word
 * limit). The loaders refuse a WordPiece vocabulary without one, so
 * unk_id >= 0 here. Returns false on OOM. */
static bool push_unk_word(const se_wordpiece *tok, se_wp_scratch *s, se_i32vec *out) {
    if (!se_i32vec_push(out, tok->unk_id)) return false;
    if (s->nch && !se_i32vec_push(s->nch, (int32_t)s->word_src)) return false;
    if (!s->offs) return true;
    if (!s->word_over && s->word_n) return push_span(s, s->wsb[0], s->wse[s->word_n - 1]);
    return push_span(s, s->span_b, s->span_e);
}

/* Splits the word held in s->word (normalised code points) into WordPiece
 * ids and appends them to out; with stats, the first piece stands for all
 * of the word's code points in s->nch, the others for none. A word marked
 * word_over (longer than max_input_chars_per_word) is [UNK]. Returns false
 * on OOM only. */
static bool wordpiece_word(const se_wordpiece *tok, se_wp_scratch *s, se_i32vec *out) {
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
            if (s->nch) s->nch->n -= out->n - mark;
            if (s->offs) s->offs->n -= 2 * (out->n - mark);
            out->n = mark; /* the whole word becomes [UNK] */
            return push_unk_word(tok, s, out);
        }
        if (!se_i32vec_push(out, found)) return false;
        if (s->nch && !se_i32vec_push(s->nch, start == 0 ? (int32_t)s->word_src : 0)) return false;
        if (s->offs && !push_span(s, s->wsb[start], s->wse[end - 1])) return false;
        start = end;
    }
    return true;
}

/* se_uc_canonical_order on the current word, its source spans moving
 * with its code points: insertion sort within runs of non-starters. */
static void canonical_order(se_wp_scratch *s) {
    uint32_t *w = s->word;
    for (size_t i = 1; i < s->word_n; i++) {
        int ci = se_uc_ccc(w[i]);
        if (ci == 0) continue;
        size_t j = i;
        uint32_t x = w[i], xb = s->wsb[i], xe = s->wse[i];
        while (j > 0) {
            int cj = se_uc_ccc(w[j - 1]);
            if (cj == 0 || cj <= ci) break;
            w[j] = w[j - 1], s->wsb[j] = s->wsb[j - 1], s->wse[j] = s->wse[j - 1];
            j--;
        }
        w[j] = x, s->wsb[j] = xb, s->wse[j] = xe;
    }
}

/* Ends the current word. With strip_accents the word holds decomposed
 * text: put it in canonical order, drop nonspacing marks; then lowercase
 * (HF strips accents before lowercasing), then WordPiece. */
static bool flush_word(const se_wordpiece *tok, se_wp_scratch *s, se_i32vec *out) {
    s->span_open = false;
    if (s->word_over) {
        bool ok = wordpiece_word(tok, s, out);
        s->word_n = s->word_len = s->word_src = 0;
        s->word_over = false;
        return ok;
    }
    if (s->word_n == 0) return true;
    if (tok->has_normalizer && tok->strip_accents) {
        if (s->offs) canonical_order(s);
        else se_uc_canonical_order(s->word, s->word_n);
        size_t k = 0;
        if (s->offs) {
            for (size_t i = 0; i < s->word_n; i++)
                if (!se_uc_is_mn(s->word[i])) s->word[k] = s->word[i], s->wsb[k] = s->wsb[i], s->wse[k] = s->wse[i], k++;
        } else {
            for (size_t i = 0; i < s->word_n; i++)
                if (!se_uc_is_mn(s->word[i])) s->word[k++] = s->word[i];
        }
        s->word_n = k;
    }
    if (tok->has_normalizer && tok->lowercase) {
        size_t n = s->word_n, extra = 0;
        for (size_t i = 0; i < n; i++) extra += s->word[i] == 0x130;
        if (extra && !reserve(s, n + extra)) return false;
        if (s->offs && extra) /* the spans move the same way; both code points of U+0130 keep its span */
            for (size_t i = n, d = n + extra; i-- > 0;) {
                size_t m = s->word[i] == 0x130 ? 2 : 1;
                d -= m;
                for (size_t t = 0; t < m; t++) s->wsb[d + t] = s->wsb[i], s->wse[d + t] = s->wse[i];
            }
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
static size_t final_len(const se_wordpiece *tok, uint32_t c) {
    if (!tok->has_normalizer) return 1;
    if (tok->strip_accents && se_uc_is_mn(c)) return 0;
    if (tok->lowercase && c == 0x130) return 2;
    return 1;
}

static bool word_append(const se_wordpiece *tok, se_wp_scratch *s, uint32_t c, size_t flen);

/* Feeds one normalised code point to the pre-tokenizer: whitespace ends a
 * word, punctuation is a word of its own. Once a word is longer than
 * max_input_chars_per_word after normalisation it can only be [UNK], so its
 * code points are no longer stored: a text without spaces costs no memory
 * beyond that length. */
static bool pretok_feed(const se_wordpiece *tok, se_wp_scratch *s, uint32_t c, se_i32vec *out) {
    if (se_uc_is_whitespace(c)) return flush_word(tok, s, out);
    if (se_uc_is_punct(c)) {
        if (!flush_word(tok, s, out)) return false;
        s->word[0] = c;
        if (s->offs) s->wsb[0] = s->cur_b, s->wse[0] = s->cur_e;
        s->word_n = 1;
        s->word_src = s->src_pending;
        s->src_pending = 0;
        return flush_word(tok, s, out);
    }
    return word_append(tok, s, c, final_len(tok, c));
}

/* Appends c, which adds flen code points after normalisation, to the
 * current word (see pretok_feed). Returns false on OOM. */
static bool word_append(const se_wordpiece *tok, se_wp_scratch *s, uint32_t c, size_t flen) {
    s->word_src += s->src_pending;
    s->src_pending = 0;
    if (s->offs) {
        if (!s->span_open) s->span_b = s->cur_b, s->span_open = true;
        s->span_e = s->cur_e;
    }
    if (s->word_over) return true;
    s->word_len += flen;
    if (s->word_len > tok->max_chars_per_word) {
        s->word_over = true;
        s->word_n = 0;
        return true;
    }
    if (!reserve(s, s->word_n + 1)) return false;
    if (s->offs) s->wsb[s->word_n] = s->cur_b, s->wse[s->word_n] = s->cur_e;
    s->word[s->word_n++] = c;
    return true;
}

/* Keeps only the first keep ids this call appended to out (from base),
 * adding the dropped ones to *extra; the stats counts follow. */
static void cut_ids(se_wp_scratch *s, se_i32vec *out, size_t base, size_t keep, size_t *extra) {
    if (out->n - base <= keep) return;
    size_t drop = out->n - base - keep;
    *extra += drop;
    out->n -= drop;
    if (s->nch) s->nch->n -= drop;
    if (s->offs) s->offs->n -= 2 * drop;
}

se_status se_wordpiece_encode(const se_wordpiece *tok, const char *text, size_t len, size_t limit, se_wp_scratch *s,
                              se_i32vec *out, se_i32vec *nch, se_i32vec *offs, size_t *n_total, se_error *err) {
    const uint8_t *p = (const uint8_t *)text;
    size_t base = out->n, extra = 0;
    size_t keep = limit == SIZE_MAX ? SIZE_MAX : limit + 1;
    s->word_n = s->word_len = s->word_src = s->src_pending = 0;
    s->word_over = s->span_open = false;
    s->nch = nch;
    s->offs = offs;
    if (!reserve(s, 64) || (offs && s->span_cap < s->word_cap && !reserve_spans(s)))
        return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
    size_t i = 0;
    while (i < len) {
        if (out->n - base > limit) {
            if (!n_total) return SE_OK; /* enough to know the text is cut */
            cut_ids(s, out, base, keep, &extra); /* counting only from here */
        }
        uint32_t c;
        int n = se_utf8_decode(p + i, len - i, &c);
        if (!n) return se_err(err, SE_E_UTF8, "invalid UTF-8 at byte %zu", i);
        if (offs) s->cur_b = (uint32_t)i, s->cur_e = (uint32_t)(i + (size_t)n);
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
