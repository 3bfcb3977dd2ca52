/*
 * chunk.c - se_chunk_text: splits a long text into pieces that each fit
 * the model's max_seq_length, so an index never truncates a document.
 *
 * Words (runs between whitespace) are the units: a chunk is the longest
 * run of whole words whose tokens (counted with the model's tokenizer)
 * fit the budget. Each chunk is then
 * tokenized as a whole, with its special tokens, and shortened until it
 * really fits. Overlap: the next chunk starts at the first word of the
 * previous chunk's last `overlap` tokens. A word longer than the budget on
 * its own (text without spaces) is cut into code points.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"

typedef struct tokbuf {
    int32_t *ids;
    size_t cap;
} tokbuf;

/* Number of tokens of text[0..len) (specials included when add_special),
 * untruncated. Returns SE_OK and sets *n. */
static se_status count_tokens(const se_tokenizer *tok, tokbuf *b, const char *text, size_t len, bool add_special,
                              size_t *n, se_error *err) {
    se_tokenize_params p = se_tokenize_default_params(tok);
    p.n_tokens_max = 0;
    p.add_special = add_special;
    for (;;) {
        se_status st = se_tokenize(tok, text, len, NULL, 0, &p, b->ids, NULL, b->cap, n, NULL, err);
        if (st != SE_E_BUFFER) return st;
        size_t c = *n + 64;
        int32_t *t = se_realloc(b->ids, c * sizeof *t);
        if (!t) return se_err(err, SE_E_NOMEM, "out of memory");
        b->ids = t;
        b->cap = c;
    }
}

static bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

typedef struct word {
    uint32_t start, end;
    size_t ntok;
} word;

se_status se_chunk_text(const se_tokenizer *tok, const char *text, size_t len, size_t max_tokens, size_t overlap,
                        uint32_t **spans, size_t *n_chunks, se_error *err) {
    if (!tok || (len && !text) || !spans || !n_chunks) return se_err(err, SE_E_INVALID, "se_chunk_text: invalid arguments");
    *spans = NULL;
    *n_chunks = 0;
    if (len > UINT32_MAX) return se_err(err, SE_E_RANGE, "se_chunk_text: text longer than 4 GiB");
    tokbuf b = {0};
    word *w = NULL;
    uint32_t *out = NULL;
    size_t nw = 0, cw = 0, no = 0, co = 0, n_special = 0, limit = se_tokenizer_n_tokens_max(tok);
    se_status st = count_tokens(tok, &b, "", 0, true, &n_special, err);
    if (st) goto done;
    if (!max_tokens || (limit && max_tokens + n_special > limit)) max_tokens = limit > n_special ? limit - n_special : 1;
    if (!max_tokens) max_tokens = 1;
    if (overlap >= max_tokens) overlap = max_tokens / 2;
    size_t total;
    st = count_tokens(tok, &b, text, len, false, &total, err);
    if (st) goto done;
    if (total <= max_tokens) { /* the common case: one chunk, the whole text */
        out = se_malloc(2 * sizeof *out);
        if (!out) {
            st = se_err(err, SE_E_NOMEM, "out of memory");
            goto done;
        }
        out[0] = 0;
        out[1] = (uint32_t)len;
        no = 1;
        goto done;
    }
    /* words, with long ones cut to fit */
    for (size_t i = 0; i < len;) {
        while (i < len && is_space((unsigned char)text[i])) i++;
        if (i >= len) break;
        size_t j = i;
        while (j < len && !is_space((unsigned char)text[j])) j++;
        size_t nt;
        st = count_tokens(tok, &b, text + i, j - i, false, &nt, err);
        if (st) goto done;
        /* a word longer than a chunk (text without spaces: CJK, URLs) is
         * split into code points, each its own unit */
        for (size_t s = i; s < j;) {
            size_t e = j;
            if (nt > max_tokens) {
                e = s + 1;
                while (e < j && ((unsigned char)text[e] & 0xC0) == 0x80) e++;
                st = count_tokens(tok, &b, text + s, e - s, false, &nt, err);
                if (st) goto done;
            }
            if (nw == cw) {
                cw = cw ? cw * 2 : 256;
                word *t = se_realloc(w, cw * sizeof *t);
                if (!t) {
                    st = se_err(err, SE_E_NOMEM, "out of memory");
                    goto done;
                }
                w = t;
            }
            w[nw++] = (word){(uint32_t)s, (uint32_t)e, nt};
            if (e < j) nt = max_tokens + 1; /* still inside a long word */
            s = e;
        }
        i = j;
    }
    /* greedy chunks of whole words */
    for (size_t a = 0; a < nw;) {
        size_t z = a, used = 0;
        while (z < nw && (z == a || used + w[z].ntok <= max_tokens)) used += w[z++].ntok;
        /* the chunk as a whole, with specials, must fit (merging words can
         * change the count a little) */
        for (;;) {
            size_t nt;
            st = count_tokens(tok, &b, text + w[a].start, w[z - 1].end - w[a].start, true, &nt, err);
            if (st) goto done;
            if (nt <= max_tokens + n_special || z == a + 1) break;
            z--;
        }
        if (no == co) {
            co = co ? co * 2 : 16;
            uint32_t *t = se_realloc(out, 2 * co * sizeof *t);
            if (!t) {
                st = se_err(err, SE_E_NOMEM, "out of memory");
                goto done;
            }
            out = t;
        }
        out[2 * no] = w[a].start;
        out[2 * no + 1] = w[z - 1].end;
        no++;
        if (z >= nw) break;
        /* next start: back up over at most `overlap` tokens, always moving forward */
        size_t next = z, back = 0;
        while (next > a + 1 && back + w[next - 1].ntok <= overlap) back += w[--next].ntok;
        a = next;
    }
done:
    se_free(b.ids);
    se_free(w);
    if (st) {
        se_free(out);
        return st;
    }
    *spans = out;
    *n_chunks = no;
    return SE_OK;
}
