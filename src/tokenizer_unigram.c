/*
 * tokenizer_unigram.c - the sentencepiece Unigram tokenizer: Viterbi over
 * piece log-probabilities.
 *
 * Loaded from a Hugging Face tokenizer.json with model type "Unigram"
 * (vocab: [[piece, score], ...], unk_id), normalizer NFKC or none, and
 * pre_tokenizer Metaspace (' ' -> U+2581, prepended to the text). Two
 * Viterbi conventions:
 *   - Hugging Face (tokenizers/models/unigram): forward over start
 *     positions, a candidate replaces the best path only when strictly
 *     better; a character no piece covers becomes unk with score
 *     min_score - 10; consecutive unks are fused.
 *   - "energetic-ai" (the JS tokenizer of @energetic-ai/embeddings, used by
 *     its Universal Sentence Encoder lite package), reproduced exactly
 *     because its ids are the model's input: ids 0..5 are not matchable; for
 *     each end position, starts ascending and pieces shortest first, a
 *     candidate wins when the best so far is exactly 0.0 (unset, and also
 *     any path whose score is 0) or when it is >= the best (ties go to the
 *     later candidate); a character no piece starts with is unk (id 0,
 *     score 0); backtracking steps by the stored piece's length; runs of
 *     unk collapse into one.
 */
#include <jansson.h>
#include <string.h>
#include <utf8proc.h>

#include "alloc.h"
#include "error.h"
#include "json.h"
#include "tokenizer.h"
#include "unicode.h"

#define K_UNK_PENALTY 10.0

se_status se_unigram_load(se_tokenizer *t, const json_t *root, const char *path, se_error *err) {
    const char *file = "tokenizer.json";
    json_t *model = json_object_get(root, "model");
    json_t *vocab = json_object_get(model, "vocab");
    se_status s;
    if (!json_is_array(vocab) || json_array_size(vocab) == 0)
        return se_err(err, SE_E_FORMAT, "%s: model.vocab must be a non-empty list of [piece, score]", path);
    size_t n = json_array_size(vocab), blob_cap = 0, id_cap = 0;
    t->uni.scores = se_calloc(n, sizeof *t->uni.scores);
    t->uni.n_chars = se_calloc(n, sizeof *t->uni.n_chars);
    if (!t->uni.scores || !t->uni.n_chars) return se_err(err, SE_E_NOMEM, "out of memory");
    double min_score = 0.0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(vocab, i), *piece = json_array_get(e, 0), *score = json_array_get(e, 1);
        if (!json_is_array(e) || !json_is_string(piece) || !json_is_number(score))
            return se_err(err, SE_E_FORMAT, "%s: model.vocab[%zu] must be [piece, score]", path, i);
        const char *p = json_string_value(piece);
        size_t len = json_string_length(piece), bad;
        if (!se_utf8_valid(p, len, &bad)) return se_err(err, SE_E_FORMAT, "%s: model.vocab[%zu] is not valid UTF-8", path, i);
        if ((s = se_vocab_add(&t->vocab, &blob_cap, &id_cap, p, len, i, path, err)) != SE_OK) return s;
        t->uni.scores[i] = json_number_value(score);
        if (i == 0 || t->uni.scores[i] < min_score) min_score = t->uni.scores[i];
        uint32_t nc = 0;
        for (size_t k = 0; k < len; k++) nc += ((uint8_t)p[k] & 0xC0) != 0x80;
        t->uni.n_chars[i] = nc;
        if (nc > t->uni.max_chars) t->uni.max_chars = nc;
    }
    t->uni.unk_score = min_score - K_UNK_PENALTY;
    int64_t unk;
    if ((s = se_json_int(model, file, "unk_id", 0, (int64_t)n - 1, -1, &unk, err)) != SE_OK) return s;
    t->unk_id = (int32_t)unk;
    bool bf;
    if ((s = se_json_bool(model, file, "byte_fallback", false, &bf, err)) != SE_OK) return s;
    if (bf) return se_err(err, SE_E_UNSUPPORTED, "%s: Unigram byte_fallback is not supported", path);
    /* the energetic-ai JS tokenizer never matches its first six pieces */
    t->vocab.index_from = t->uni.energetic ? 6 : 0;
    if ((s = se_vocab_build_index(&t->vocab, err)) != SE_OK) return s;
    /* normalizer */
    json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm)) {
        const char *nt;
        if ((s = se_json_str(norm, file, "type", "", &nt, err)) != SE_OK) return s;
        if (strcmp(nt, "NFKC") != 0)
            return se_err(err, SE_E_UNSUPPORTED, "%s: normalizer type '%s' is not supported with Unigram (NFKC only)", path, nt);
        t->uni.nfkc = true;
    }
    /* pre-tokenizer */
    json_t *pre = json_object_get(root, "pre_tokenizer");
    t->uni.replacement = 0x2581;
    if (pre && !json_is_null(pre)) {
        const char *pt, *rep, *scheme;
        bool add_prefix;
        if ((s = se_json_str(pre, file, "type", "", &pt, err)) != SE_OK) return s;
        if (strcmp(pt, "Metaspace") != 0)
            return se_err(err, SE_E_UNSUPPORTED, "%s: pre_tokenizer type '%s' is not supported with Unigram (Metaspace only)", path, pt);
        if ((s = se_json_str(pre, file, "replacement", "\xE2\x96\x81", &rep, err)) != SE_OK) return s;
        if ((s = se_json_bool(pre, file, "add_prefix_space", true, &add_prefix, err)) != SE_OK) return s;
        if ((s = se_json_str(pre, file, "prepend_scheme", add_prefix ? "always" : "never", &scheme, err)) != SE_OK) return s;
        if ((s = se_json_bool(pre, file, "split", true, &t->uni.split, err)) != SE_OK) return s;
        uint32_t cp;
        if (se_utf8_decode((const uint8_t *)rep, strlen(rep), &cp) != (int)strlen(rep))
            return se_err(err, SE_E_FORMAT, "%s: pre_tokenizer.replacement must be one character", path);
        t->uni.replacement = cp;
        t->uni.metaspace = true;
        t->uni.prepend = strcmp(scheme, "never") != 0;
    }
    t->cont_prefix_len = 0;
    return SE_OK;
}

enum { VITERBI_OK = 1, VITERBI_NOMEM = 0, VITERBI_NO_UNK = -1 };

/* Maps viterbi()'s result to a status. */
static se_status viterbi_status(int r, se_error *err) {
    if (r == VITERBI_OK) return SE_OK;
    if (r == VITERBI_NO_UNK)
        return se_err(err, SE_E_RANGE, "a character has no piece in the vocabulary and the tokenizer has no unk_id");
    return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
}

/* Viterbi over one segment syms[a..b) of the normalised text (bytes in
 * txt, code point i starting at byte bp[i]); appends ids to out. best and
 * from are scratch arrays of (b - a + 1). */
static int viterbi(const se_tokenizer *tok, const char *txt, const uint32_t *bp, size_t a, size_t b, double *best,
                    int32_t *word, uint32_t *wlen, se_i32vec *out) {
    size_t n = b - a;
    const se_unigram *u = &tok->uni;
    for (size_t i = 0; i <= n; i++) best[i] = 0.0, word[i] = -1, wlen[i] = 0;
    if (u->energetic) {
        /* for each end: starts ascending, pieces shortest first */
        for (size_t end = 1; end <= n; end++) {
            size_t lo = end > u->max_chars ? end - u->max_chars : 0;
            for (size_t st = lo; st < end; st++) {
                size_t len = end - st;
                int32_t id = se_vocab_find(&tok->vocab, txt + bp[a + st], bp[a + end] - bp[a + st]);
                double score;
                if (id >= 0) {
                    score = u->scores[id];
                } else {
                    /* unk pseudo-piece: only for a single character that no piece starts with */
                    if (len != 1) continue;
                    bool any = false;
                    for (size_t k = 1; k <= u->max_chars && st + k <= n && !any; k++)
                        any = se_vocab_find(&tok->vocab, txt + bp[a + st], bp[a + st + k] - bp[a + st]) >= 0;
                    if (any) continue;
                    id = 0, score = 0.0;
                }
                double sc = score + best[st];
                if (best[end] == 0.0 || sc >= best[end]) {
                    best[end] = sc;
                    word[end] = id;
                    wlen[end] = (uint32_t)len;
                }
            }
        }
        /* backtrack by the stored piece's length (piece 0 is one character) */
        size_t mark = out->n;
        size_t it = n;
        while (it > 0) {
            int32_t id = word[it] < 0 ? 0 : word[it];
            size_t step = tok->uni.n_chars[id] ? tok->uni.n_chars[id] : 1;
            if (!se_i32vec_push(out, id)) return VITERBI_NOMEM;
            it = step > it ? 0 : it - step;
        }
        /* reverse, then collapse runs of unk */
        for (size_t i = mark, j = out->n; i + 1 < j; i++, j--) {
            int32_t x = out->v[i];
            out->v[i] = out->v[j - 1], out->v[j - 1] = x;
        }
        size_t k = mark;
        for (size_t i = mark; i < out->n; i++)
            if (!(out->v[i] == 0 && k > mark && out->v[k - 1] == 0)) out->v[k++] = out->v[i];
        out->n = k;
        return VITERBI_OK;
    }
    /* Hugging Face: forward over starts; strictly better wins; unk fallback */
    uint32_t *reached = wlen; /* 0 = unset, else the piece length + 1 */
    best[0] = 0.0;
    for (size_t st = 0; st < n; st++) {
        double base = best[st];
        bool single = false;
        for (size_t k = 1; k <= u->max_chars && st + k <= n; k++) {
            int32_t id = se_vocab_find(&tok->vocab, txt + bp[a + st], bp[a + st + k] - bp[a + st]);
            if (id < 0) continue;
            double sc = base + u->scores[id];
            if (!reached[st + k] || sc > best[st + k]) best[st + k] = sc, word[st + k] = id, reached[st + k] = (uint32_t)k + 1;
            if (k == 1) single = true;
        }
        if (!single) {
            if (tok->unk_id < 0) return VITERBI_NO_UNK;
            double sc = base + u->unk_score;
            if (!reached[st + 1] || sc > best[st + 1]) best[st + 1] = sc, word[st + 1] = tok->unk_id, reached[st + 1] = 2;
        }
    }
    size_t mark = out->n;
    for (size_t it = n; it > 0;) {
        size_t step = reached[it] ? reached[it] - 1 : 1;
        if (!se_i32vec_push(out, word[it] < 0 ? tok->unk_id : word[it])) return VITERBI_NOMEM;
        it -= step;
    }
    for (size_t i = mark, j = out->n; i + 1 < j; i++, j--) {
        int32_t x = out->v[i];
        out->v[i] = out->v[j - 1], out->v[j - 1] = x;
    }
    size_t k = mark;
    for (size_t i = mark; i < out->n; i++)
        if (!(out->v[i] == tok->unk_id && k > mark && out->v[k - 1] == tok->unk_id)) out->v[k++] = out->v[i];
    out->n = k;
    return VITERBI_OK;
}

se_status se_unigram_encode(const se_tokenizer *tok, const char *text, size_t len, se_tok_session *s, se_i32vec *out,
                            se_error *err) {
    size_t bad;
    if (!se_utf8_valid(text, len, &bad)) return se_err(err, SE_E_UTF8, "invalid UTF-8 at byte %zu", bad);
    if (len == 0) return SE_OK;
    const se_unigram *u = &tok->uni;
    uint8_t *norm = NULL;
    const char *src = text;
    size_t slen = len;
    if (u->nfkc) {
        /* utf8proc stops at NUL only with UTF8PROC_NULLTERM; NUL is kept */
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &norm,
                                          UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
        if (r < 0) return se_err(err, r == UTF8PROC_ERROR_NOMEM ? SE_E_NOMEM : SE_E_UTF8, "NFKC: %s", utf8proc_errmsg(r));
        src = (const char *)norm, slen = (size_t)r;
    }
    se_status st = SE_OK;
    /* metaspace: the text in code points, ' ' -> replacement, prepended */
    size_t n = 0;
    if (!se_tok_session_reserve(s, slen + 2)) {
        st = se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    if (u->metaspace && u->prepend && slen > 0) s->word[n++] = u->replacement;
    for (size_t i = 0; i < slen;) {
        uint32_t c;
        int k = se_utf8_decode((const uint8_t *)src + i, slen - i, &c);
        if (!k) {
            st = se_err(err, SE_E_UTF8, "invalid UTF-8 after normalisation");
            goto done;
        }
        i += (size_t)k;
        s->word[n++] = (u->metaspace && c == ' ') ? u->replacement : c;
    }
    /* back to UTF-8 for lookups, with byte offsets per code point (the
     * reserve above sized wbuf for 4 bytes per code point and more) */
    size_t nb = 0;
    for (size_t i = 0; i < n; i++) {
        s->bpos[i] = (uint32_t)nb;
        nb += (size_t)se_utf8_encode(s->word[i], s->wbuf + nb);
    }
    s->bpos[n] = (uint32_t)nb;
    /* scratch for the lattice: best (double), word, wlen; in one block */
    double *best = se_malloc_array(n + 1, sizeof *best);
    int32_t *word = se_malloc_array(n + 1, sizeof *word);
    uint32_t *wlen = se_malloc_array(n + 1, sizeof *wlen);
    if (!best || !word || !wlen) {
        st = se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
    } else if (u->split && u->metaspace) {
        /* one Viterbi per word: a segment starts at each replacement char */
        size_t a = 0;
        for (size_t i = 1; i <= n && st == SE_OK; i++) {
            if (i == n || s->word[i] == u->replacement) {
                st = viterbi_status(viterbi(tok, s->wbuf, s->bpos, a, i, best, word, wlen, out), err);
                a = i;
            }
        }
    } else {
        st = viterbi_status(viterbi(tok, s->wbuf, s->bpos, 0, n, best, word, wlen, out), err);
    }
    se_free(best);
    se_free(word);
    se_free(wlen);
done:
    free(norm);
    return st;
}
