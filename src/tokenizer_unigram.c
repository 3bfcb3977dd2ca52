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

/* Records every code point of the matchable pieces (ids from
 * vocab.index_from on): a bitmap for the BMP, a sorted array above it. */
static se_status build_cp_set(se_tokenizer *t, const char *path, se_error *err) {
    se_unigram *u = &t->uni;
    size_t cap = 0;
    u->cp_bmp = se_calloc(1024, sizeof *u->cp_bmp);
    if (!u->cp_bmp) return se_err(err, SE_E_NOMEM, "%s: out of memory", path);
    for (size_t id = t->vocab.index_from; id < t->vocab.n; id++) {
        if (t->vocab.offs[id] == UINT32_MAX) continue;
        const uint8_t *p = (const uint8_t *)t->vocab.blob + t->vocab.offs[id];
        size_t n = t->vocab.lens[id];
        for (size_t i = 0; i < n;) {
            uint32_t c;
            int k = se_utf8_decode(p + i, n - i, &c);
            if (!k) break; /* pieces are validated at load */
            i += (size_t)k;
            if (c < 0x10000) {
                u->cp_bmp[c >> 6] |= (uint64_t)1 << (c & 63);
                continue;
            }
            if (u->n_cp_astral == cap) {
                cap = cap ? 2 * cap : 64;
                uint32_t *a = se_realloc(u->cp_astral, cap * sizeof *a);
                if (!a) return se_err(err, SE_E_NOMEM, "%s: out of memory", path);
                u->cp_astral = a;
            }
            u->cp_astral[u->n_cp_astral++] = c;
        }
    }
    /* sort (insertion: astral code points are few) and drop repeats */
    for (size_t i = 1; i < u->n_cp_astral; i++)
        for (size_t j = i; j > 0 && u->cp_astral[j] < u->cp_astral[j - 1]; j--) {
            uint32_t x = u->cp_astral[j];
            u->cp_astral[j] = u->cp_astral[j - 1], u->cp_astral[j - 1] = x;
        }
    size_t k = 0;
    for (size_t i = 0; i < u->n_cp_astral; i++)
        if (k == 0 || u->cp_astral[i] != u->cp_astral[k - 1]) u->cp_astral[k++] = u->cp_astral[i];
    u->n_cp_astral = k;
    return SE_OK;
}

se_status se_unigram_load(se_tokenizer *t, const json_t *root, const char *path, se_error *err) {
    const char *file = "tokenizer.json";
    json_t *model = json_object_get(root, "model");
    json_t *vocab = json_object_get(model, "vocab");
    se_status s;
    if (!json_is_array(vocab) || json_array_size(vocab) == 0)
        return se_err(err, SE_E_FORMAT, "%s: model.vocab must be a non-empty list of [piece, score]", path);
    size_t n = json_array_size(vocab), blob_cap = 0, id_cap = 0;
    if (n > SE_VOCAB_MAX_ENTRIES)
        return se_err(err, SE_E_RANGE, "%s: model.vocab has %zu pieces, more than the limit of %zu", path, n, SE_VOCAB_MAX_ENTRIES);
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
    if ((s = build_cp_set(t, path, err)) != SE_OK) return s;
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

/* ==== Streaming Viterbi ====
 *
 * The text is read in chunks that are normalised on their own (NFKC cut
 * only before a code point that nothing composes with, see cut_safe), and
 * its code points go into a window on which the lattice advances. A
 * position p is a "sync point" when no vocabulary piece matched in the text
 * spans across it: every path of the lattice then passes through p, the
 * best path's ids before p are final, and the window can drop them. The
 * lattice keeps the exact cumulative scores (best[] of the window's first
 * position is carried over), so every comparison, and so every id, is
 * the same as one Viterbi over the whole text. Memory follows the window,
 * not the text; a text in which pieces overlap without a gap for a long
 * stretch keeps that stretch in the window, up to WINDOW_MAX code points:
 * past that (one letter repeated for pages, never real text) the best path
 * to the last processed position is taken as final and the lattice starts
 * again there, so memory stays bounded; only then can the ids differ from a
 * whole-text Viterbi. With limit set, reading stops once more than limit
 * ids are out.
 *
 * A code point that no matchable piece contains ("foreign", e.g. Han
 * through an English vocabulary) cannot be inside a match: s->run[i], the
 * number of non-foreign code points ending at i, lets the lattice skip
 * those lookups, so a long text of unknown characters costs little. */

#define CHUNK_BYTES 16384   /* source bytes normalised at a time */
#define EMIT_MIN 256        /* emit once a sync point is this far into the window */
#define WINDOW_MAX 65536    /* code points kept without a sync point before a forced cut */

typedef struct uni_run {
    const se_tokenizer *tok;
    se_tok_session *s;
    se_i32vec *out;
    size_t base;      /* out->n at the start of the call */
    size_t limit;     /* stop (or, counting, stop keeping) past this many ids */
    size_t *n_total;  /* counting mode when set */
    size_t extra;     /* ids counted but not kept */
    int32_t unk;      /* the id that runs of unknowns collapse on */
    bool prev_unk;    /* the last id of the current segment was unk */
    size_t n;         /* code points in the window: s->word[0..n), UTF-8 in s->wbuf at s->bpos[0..n] */
    size_t done;      /* energetic: ends 1..done processed; HF: starts 0..done-1 */
    size_t scan;      /* next position to test for a sync point */
    size_t last_sync; /* latest sync point found (0 = none) */
    bool started;     /* a code point was seen (for the prepended replacement) */
    bool stop;        /* enough ids: read no further */
} uni_run;

/* Makes the window hold n code points and n + 1 lattice entries. */
static bool window_reserve(se_tok_session *s, size_t n) {
    if (!se_tok_session_reserve(s, n)) return false;
    if (n + 1 <= s->lat_cap) return true;
    size_t nc = s->lat_cap ? s->lat_cap : 64;
    while (nc < n + 1) nc *= 2;
    double *b = se_realloc(s->best, nc * sizeof *b);
    if (!b) return false;
    s->best = b;
    int32_t *l = se_realloc(s->lid, nc * sizeof *l);
    if (!l) return false;
    s->lid = l;
    uint32_t *w = se_realloc(s->llen, nc * sizeof *w);
    if (!w) return false;
    s->llen = w;
    uint32_t *r = se_realloc(s->reach, nc * sizeof *r);
    if (!r) return false;
    s->reach = r;
    uint32_t *c = se_realloc(s->run, nc * sizeof *c);
    if (!c) return false;
    s->run = c;
    s->lat_cap = nc;
    return true;
}

/* Looks up the piece made of window code points [a, b); -1 without a
 * lookup when a foreign code point is among them. */
static int32_t find(const uni_run *r, size_t a, size_t b) {
    const se_tok_session *s = r->s;
    if (s->run[b - 1] < b - a) return -1;
    return se_vocab_find(&r->tok->vocab, s->wbuf + s->bpos[a], s->bpos[b] - s->bpos[a]);
}

/* Whether some matchable piece contains code point c (see se_unigram). */
static bool in_vocab(const se_unigram *u, uint32_t c) {
    if (c < 0x10000) return (u->cp_bmp[c >> 6] >> (c & 63)) & 1;
    size_t lo = 0, hi = u->n_cp_astral;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (u->cp_astral[mid] < c) lo = mid + 1;
        else hi = mid;
    }
    return lo < u->n_cp_astral && u->cp_astral[lo] == c;
}

/* Processes the lattice as far as the window allows: with lookahead (the
 * segment goes on), a position needs max_chars code points after it.
 * Returns VITERBI_NO_UNK when an HF lattice needs an unk the vocabulary
 * lacks. */
enum { VITERBI_OK = 1, VITERBI_NOMEM = 0, VITERBI_NO_UNK = -1 };

static int advance(uni_run *r, bool complete) {
    const se_unigram *u = &r->tok->uni;
    se_tok_session *s = r->s;
    size_t n = r->n, maxc = u->max_chars ? u->max_chars : 1;
    if (u->energetic) {
        /* for each end: starts ascending, pieces shortest first */
        for (size_t end = r->done + 1; end <= n && (complete || end - 1 + maxc <= n); end++) {
            size_t lo = end > maxc ? end - maxc : 0;
            size_t clean = s->run[end - 1]; /* no piece is longer than this here */
            if (end - lo > clean) lo = end - (clean ? clean : 1);
            for (size_t st = lo; st < end; st++) {
                size_t len = end - st;
                int32_t id = find(r, st, end);
                double score;
                if (id >= 0) {
                    score = u->scores[id];
                    if (end > s->reach[st]) s->reach[st] = (uint32_t)end;
                } else {
                    /* unk pseudo-piece: only for a single character that no piece starts with */
                    if (len != 1) continue;
                    bool any = false; /* none can start with a foreign code point */
                    for (size_t k = 1; s->run[st] && k <= u->max_chars && st + k <= n && !any; k++) any = find(r, st, st + k) >= 0;
                    if (any) continue;
                    id = 0, score = 0.0;
                }
                double sc = score + s->best[st];
                if (s->best[end] == 0.0 || sc >= s->best[end]) {
                    s->best[end] = sc;
                    s->lid[end] = id;
                    s->llen[end] = (uint32_t)len;
                }
            }
            r->done = end;
        }
        return VITERBI_OK;
    }
    /* Hugging Face: forward over starts; strictly better wins; unk fallback.
     * llen is 0 while a position is unreached, else the piece length + 1 */
    for (size_t st = r->done; st < n && (complete || st + maxc <= n); st++) {
        double base = s->best[st];
        bool single = false;
        for (size_t k = 1; k <= u->max_chars && st + k <= n; k++) {
            int32_t id = find(r, st, st + k);
            if (id < 0) continue;
            double sc = base + u->scores[id];
            if (!s->llen[st + k] || sc > s->best[st + k])
                s->best[st + k] = sc, s->lid[st + k] = id, s->llen[st + k] = (uint32_t)k + 1;
            if (k == 1) single = true;
            if (st + k > s->reach[st]) s->reach[st] = (uint32_t)(st + k);
        }
        if (!single) {
            if (r->tok->unk_id < 0) return VITERBI_NO_UNK;
            double sc = base + u->unk_score;
            if (!s->llen[st + 1] || sc > s->best[st + 1])
                s->best[st + 1] = sc, s->lid[st + 1] = r->tok->unk_id, s->llen[st + 1] = 2;
        }
        r->done = st + 1;
    }
    return VITERBI_OK;
}

/* Finds sync points among the positions whose matches are all known:
 * p is one when no piece matched from a start before p ends after p. */
static void find_sync(uni_run *r, bool complete) {
    const se_unigram *u = &r->tok->uni;
    size_t maxc = u->max_chars ? u->max_chars : 1, known;
    if (complete) known = r->done; /* the caller processed everything */
    else if (u->energetic) known = r->done + 1 > maxc ? r->done + 1 - maxc : 0;
    else known = r->done;
    for (size_t p = r->scan ? r->scan : 1; p <= known; p++) {
        size_t lo = p > maxc ? p - maxc : 0;
        bool sync = true;
        for (size_t st = lo; st < p && sync; st++) sync = r->s->reach[st] <= p;
        if (sync) r->last_sync = p;
        r->scan = p + 1;
    }
}

/* Number of code points in window [a, b) that are text, not whitespace
 * or the metaspace replacement. */
static int32_t visible(const uni_run *r, size_t a, size_t b) {
    int32_t k = 0;
    for (size_t i = a; i < b; i++) {
        uint32_t c = r->s->word[i];
        k += !(se_uc_is_whitespace(c) || c == r->tok->uni.replacement);
    }
    return k;
}

/* Appends the best path's ids from window position 0 to p (a sync point)
 * to out, collapsing runs of unknowns (across earlier emits of the same
 * segment too), then applies the limit. Returns false on OOM. */
static bool emit(uni_run *r, size_t p) {
    const se_tokenizer *tok = r->tok;
    se_tok_session *s = r->s;
    se_i32vec *out = r->out;
    size_t mark = out->n;
    for (size_t it = p; it > 0;) {
        int32_t id;
        size_t step;
        if (tok->uni.energetic) { /* backtrack by the stored piece's length (piece 0 is one character) */
            id = s->lid[it] < 0 ? 0 : s->lid[it];
            step = tok->uni.n_chars[id] ? tok->uni.n_chars[id] : 1;
        } else {
            step = s->llen[it] ? s->llen[it] - 1 : 1;
            id = s->lid[it] < 0 ? tok->unk_id : s->lid[it];
        }
        size_t from = step > it ? 0 : it - step;
        if (!se_i32vec_push(out, id)) return false;
        if (s->stats && !se_i32vec_push(&s->nch, visible(r, from, it))) return false;
        it = from;
    }
    for (size_t i = mark, j = out->n; i + 1 < j; i++, j--) {
        int32_t x = out->v[i];
        out->v[i] = out->v[j - 1], out->v[j - 1] = x;
        if (s->stats) {
            int32_t y = s->nch.v[i - r->base];
            s->nch.v[i - r->base] = s->nch.v[j - 1 - r->base], s->nch.v[j - 1 - r->base] = y;
        }
    }
    size_t k = mark;
    for (size_t i = mark; i < out->n; i++) {
        bool unk = out->v[i] == r->unk;
        if (unk && r->prev_unk) { /* fused with the unk before it */
            if (s->stats && k > r->base) s->nch.v[k - 1 - r->base] += s->nch.v[i - r->base];
            continue;
        }
        out->v[k] = out->v[i];
        if (s->stats) s->nch.v[k - r->base] = s->nch.v[i - r->base];
        k++;
        r->prev_unk = unk;
    }
    out->n = k;
    if (s->stats) s->nch.n = k - r->base;
    if (out->n - r->base > r->limit) {
        if (!r->n_total) {
            r->stop = true;
        } else { /* keep limit + 1 ids, count the rest */
            size_t drop = out->n - r->base - (r->limit + 1);
            r->extra += drop;
            out->n -= drop;
            if (s->stats) s->nch.n -= drop;
        }
    }
    return true;
}

/* Emits up to window position p and drops the window before it; p becomes
 * position 0, keeping its cumulative score. */
static bool emit_shift(uni_run *r, size_t p) {
    if (!emit(r, p)) return false;
    se_tok_session *s = r->s;
    size_t n = r->n, b0 = s->bpos[p];
    memmove(s->word, s->word + p, (n - p) * sizeof *s->word);
    memmove(s->wbuf, s->wbuf + b0, s->bpos[n] - b0);
    for (size_t i = p; i <= n; i++) s->bpos[i - p] = s->bpos[i] - (uint32_t)b0;
    memmove(s->best, s->best + p, (n - p + 1) * sizeof *s->best);
    memmove(s->lid, s->lid + p, (n - p + 1) * sizeof *s->lid);
    memmove(s->llen, s->llen + p, (n - p + 1) * sizeof *s->llen);
    memmove(s->reach, s->reach + p, (n - p + 1) * sizeof *s->reach);
    memmove(s->run, s->run + p, (n - p + 1) * sizeof *s->run);
    r->n -= p;
    r->done -= p;
    r->scan = r->scan > p ? r->scan - p : 1;
    r->last_sync = 0;
    return true;
}

/* Starts a segment: an empty window whose position 0 scores 0. */
static void segment_start(uni_run *r) {
    r->n = r->done = r->last_sync = 0;
    r->scan = 1;
    r->prev_unk = false;
    r->s->best[0] = 0.0, r->s->lid[0] = -1, r->s->llen[0] = 0, r->s->reach[0] = 0;
    r->s->bpos[0] = 0;
}

/* Runs the lattice on what the window holds and emits at the latest sync
 * point; with complete, finishes the segment. Returns a VITERBI_ code. */
static int step(uni_run *r, bool complete) {
    int v = advance(r, complete);
    if (v != VITERBI_OK) return v;
    if (complete) {
        if (r->n && !emit(r, r->n)) return VITERBI_NOMEM;
        segment_start(r);
        return VITERBI_OK;
    }
    find_sync(r, false);
    if (r->last_sync >= EMIT_MIN) return emit_shift(r, r->last_sync) ? VITERBI_OK : VITERBI_NOMEM;
    if (r->n > WINDOW_MAX && r->done > 0) {
        /* forced cut (see the section comment): the path to done is final,
         * and the lattice after it starts again from there */
        if (!emit_shift(r, r->done)) return VITERBI_NOMEM;
        se_tok_session *s = r->s;
        for (size_t i = 1; i <= r->n; i++) s->best[i] = 0.0, s->lid[i] = -1, s->llen[i] = 0;
        for (size_t i = 0; i <= r->n; i++) s->reach[i] = 0;
        r->done = 0;
        r->scan = 1;
    }
    return VITERBI_OK;
}

/* Appends one code point of the normalised, pre-tokenised text to the
 * window (a split Metaspace starts a segment at each replacement). */
static int push_cp(uni_run *r, uint32_t c) {
    const se_unigram *u = &r->tok->uni;
    se_tok_session *s = r->s;
    if (u->metaspace && c == ' ') c = u->replacement;
    if (u->split && u->metaspace && c == u->replacement && r->n > 0) {
        int v = step(r, true);
        if (v != VITERBI_OK) return v;
    }
    if (!window_reserve(s, r->n + 1)) return VITERBI_NOMEM;
    size_t i = r->n;
    s->word[i] = c;
    s->bpos[i + 1] = s->bpos[i] + (uint32_t)se_utf8_encode(c, s->wbuf + s->bpos[i]);
    s->best[i + 1] = 0.0, s->lid[i + 1] = -1, s->llen[i + 1] = 0, s->reach[i + 1] = 0;
    s->run[i] = in_vocab(u, c) ? (i ? s->run[i - 1] : 0) + 1 : 0;
    r->n = i + 1;
    return VITERBI_OK;
}

/* Maps a VITERBI_ code to a status. */
static se_status viterbi_status(int v, se_error *err) {
    if (v == VITERBI_OK) return SE_OK;
    if (v == VITERBI_NO_UNK)
        return se_err(err, SE_E_RANGE, "a character has no piece in the vocabulary and the tokenizer has no unk_id");
    return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
}

/* Whether NFKC may cut the text just before c: c is ASCII, or a letter
 * that has no decomposition, combining class 0 and is no Hangul jamo, so
 * nothing before it can compose with it, reorder with it or decompose into
 * something that does. Hangul syllables are such starters too. */
static bool cut_safe(uint32_t c) {
    if (c < 0x80 || (c >= 0xAC00 && c <= 0xD7A3)) return true;
    if ((c >= 0x1100 && c < 0x1200) || (c >= 0xA960 && c < 0xA980) || (c >= 0xD7B0 && c < 0xD800)) return false;
    const utf8proc_property_t *pr = utf8proc_get_property((utf8proc_int32_t)c);
    return pr->category >= UTF8PROC_CATEGORY_LU && pr->category <= UTF8PROC_CATEGORY_LO && pr->combining_class == 0 &&
           pr->decomp_seqindex == UINT16_MAX;
}

/* Whether NFKC leaves s[0..n) as it is: every code point is cut_safe (no
 * decomposition, no mark, nothing that composes with what precedes it).
 * Skipping utf8proc then makes long ASCII or Han texts cheap. */
static bool nfkc_inert(const char *p, size_t n) {
    for (size_t i = 0; i < n;) {
        if ((uint8_t)p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t c;
        int k = se_utf8_decode((const uint8_t *)p + i, n - i, &c);
        if (!k || !cut_safe(c)) return false;
        i += (size_t)k;
    }
    return true;
}

/* The end of the chunk that starts at byte i: the first safe cut at or
 * after i + CHUNK_BYTES (any code point boundary without NFKC), or len. */
static size_t chunk_end(const se_unigram *u, const char *text, size_t len, size_t i) {
    if (len - i <= CHUNK_BYTES) return len;
    size_t j = i + CHUNK_BYTES;
    while (j < len && ((uint8_t)text[j] & 0xC0) == 0x80) j++;
    if (!u->nfkc) return j;
    while (j < len) {
        uint32_t c;
        int k = se_utf8_decode((const uint8_t *)text + j, len - j, &c);
        if (!k) return len; /* invalid UTF-8: let the whole rest fail in one piece */
        if (cut_safe(c)) return j;
        j += (size_t)k;
    }
    return len;
}

se_status se_unigram_encode(const se_tokenizer *tok, const char *text, size_t len, size_t limit, se_tok_session *s,
                            se_i32vec *out, size_t *n_total, se_error *err) {
    const se_unigram *u = &tok->uni;
    uni_run r = {tok, s, out, out->n, limit, n_total, 0, u->energetic ? 0 : tok->unk_id, false, 0, 0, 1, 0, false, false};
    if (n_total) *n_total = 0;
    if (len == 0) return SE_OK;
    if (!window_reserve(s, 64)) return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
    segment_start(&r);
    se_status st = SE_OK;
    for (size_t i = 0; i < len && !r.stop && st == SE_OK;) {
        size_t j = chunk_end(u, text, len, i);
        uint8_t *norm = NULL;
        const char *src = text + i;
        size_t slen = j - i;
        if (u->nfkc && !nfkc_inert(src, slen)) {
            /* utf8proc stops at NUL only with UTF8PROC_NULLTERM; NUL is kept */
            utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)src, (utf8proc_ssize_t)slen, &norm,
                                              UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
            if (m < 0)
                return se_err(err, m == UTF8PROC_ERROR_NOMEM ? SE_E_NOMEM : SE_E_UTF8, "NFKC: %s", utf8proc_errmsg(m));
            src = (const char *)norm, slen = (size_t)m;
        }
        /* metaspace: ' ' -> replacement, and one prepended to the text */
        int v = VITERBI_OK;
        if (u->metaspace && u->prepend && !r.started && slen > 0) v = push_cp(&r, u->replacement);
        r.started = r.started || slen > 0;
        for (size_t b = 0; b < slen && v == VITERBI_OK;) {
            uint32_t c;
            int k = se_utf8_decode((const uint8_t *)src + b, slen - b, &c);
            if (!k) {
                free(norm);
                return se_err(err, SE_E_UTF8, "invalid UTF-8 at byte %zu", i + b);
            }
            b += (size_t)k;
            v = push_cp(&r, c);
            if (v == VITERBI_OK && r.stop) break;
        }
        free(norm);
        if (v == VITERBI_OK && !r.stop) v = step(&r, false);
        st = viterbi_status(v, err);
        i = j;
    }
    if (st == SE_OK && !r.stop) st = viterbi_status(step(&r, true), err);
    if (st == SE_OK && n_total) *n_total = out->n - r.base + r.extra;
    return st;
}
