/*
 * tokenizers/unigram.c - the sentencepiece Unigram tokenizer model:
 * Viterbi over piece log-probabilities, with the normaliser and the
 * Metaspace pre-tokenizer applied while streaming.
 *
 * Three sources, three Viterbi conventions:
 *   - Hugging Face (tokenizer.json, model type Unigram;
 *     tokenizers/models/unigram): forward over start positions, a candidate
 *     replaces the best path only when strictly better (f64 sums); a
 *     character no piece covers becomes unk with score min_score - 10;
 *     consecutive unks are fused; with byte_fallback an unknown run becomes
 *     the <0xNN> pieces of its UTF-8 bytes. Around it the normalizer
 *     Sequence (Precompiled, Strip, Replace, NFKC; se_uni_norm_step) and
 *     Metaspace (' ' -> U+2581, prepended per prepend_scheme, split into
 *     words).
 *   - sentencepiece (a `.model` file; unigram_model.cc EncodeOptimized):
 *     the same forward Viterbi, but path scores are stored as float32 (a
 *     candidate is the float piece score plus the float path score summed
 *     in double, then rounded to float when stored; the unk candidate is
 *     summed in float), which decides ties between equal-score
 *     segmentations the way python3-sentencepiece does; only NORMAL and
 *     USER_DEFINED pieces match (the latter scored length * max_score -
 *     0.1); the text is normalised by sentencepiece's own rules
 *     (se_precompiled_normalize_spm: charsmap, whitespace, dummy prefix,
 *     ' ' -> U+2581) and not split into words.
 *   - "energetic-ai" (the JS tokenizer of @energetic-ai/embeddings, used by
 *     its Universal Sentence Encoder lite package), reproduced exactly
 *     because its ids are the model's input: ids 0..5 are not matchable; for
 *     each end position, starts ascending and pieces shortest first, a
 *     candidate wins when the best so far is exactly 0.0 (unset, and also
 *     any path whose score is 0) or when it is >= the best (ties go to the
 *     later candidate); a character no piece starts with is unk (id 0,
 *     score 0); backtracking steps by the stored piece's length; runs of
 *     unk collapse into one; the replacement is always prepended.
 */
#include "tokenizers/unigram.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "alloc.h"
#include "error.h"
#include "json.h"
#include "unicode.h"

#define K_UNK_PENALTY 10.0

/* ==== Loading ==== */

/* Records every code point of the matchable pieces (ids from
 * vocab.index_from on, not hidden): a bitmap for the BMP, a sorted array
 * above it. */
static se_status build_cp_set(se_unigram *u, const char *path, se_error *err) {
    const se_vocab *v = &u->vocab;
    size_t cap = 0;
    u->cp_bmp = se_calloc(1024, sizeof *u->cp_bmp);
    if (!u->cp_bmp) return se_err(err, SE_E_NOMEM, "%s: out of memory", path);
    for (size_t id = v->index_from; id < v->n; id++) {
        if (v->offs[id] == UINT32_MAX || (v->hidden && v->hidden[id])) continue;
        const uint8_t *p = (const uint8_t *)v->blob + v->offs[id];
        size_t n = v->lens[id];
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

/* Number of code points of a valid UTF-8 string. */
static uint32_t count_chars(const char *p, size_t len) {
    uint32_t nc = 0;
    for (size_t k = 0; k < len; k++) nc += ((uint8_t)p[k] & 0xC0) != 0x80;
    return nc;
}

/* Reads [piece, score] pairs (ids in list order), the unk score (min - 10),
 * unk_id within the vocabulary and byte_fallback (see the header). */
se_status se_unigram_load_json(se_unigram *u, const json_t *model, const char *path, se_error *err) {
    const char *file = "tokenizer.json";
    json_t *vocab = json_object_get(model, "vocab");
    se_status s;
    u->unk_id = -1;
    u->replacement = 0x2581;
    if (!json_is_array(vocab) || json_array_size(vocab) == 0)
        return se_err(err, SE_E_FORMAT, "%s: model.vocab must be a non-empty list of [piece, score]", path);
    size_t n = json_array_size(vocab);
    if (n > SE_VOCAB_MAX_ENTRIES)
        return se_err(err, SE_E_RANGE, "%s: model.vocab has %zu pieces, more than the limit of %zu", path, n, SE_VOCAB_MAX_ENTRIES);
    u->scores = se_calloc(n, sizeof *u->scores);
    u->n_chars = se_calloc(n, sizeof *u->n_chars);
    if (!u->scores || !u->n_chars) return se_err(err, SE_E_NOMEM, "out of memory");
    double min_score = 0.0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(vocab, i), *piece = json_array_get(e, 0), *score = json_array_get(e, 1);
        if (!json_is_array(e) || !json_is_string(piece) || !json_is_number(score))
            return se_err(err, SE_E_FORMAT, "%s: model.vocab[%zu] must be [piece, score]", path, i);
        const char *p = json_string_value(piece);
        size_t len = json_string_length(piece), bad;
        if (!se_utf8_valid(p, len, &bad)) return se_err(err, SE_E_FORMAT, "%s: model.vocab[%zu] is not valid UTF-8", path, i);
        if ((s = se_vocab_add(&u->vocab, p, len, i, path, err)) != SE_OK) return s;
        u->scores[i] = json_number_value(score);
        if (i == 0 || u->scores[i] < min_score) min_score = u->scores[i];
        u->n_chars[i] = count_chars(p, len);
    }
    u->unk_score = min_score - K_UNK_PENALTY;
    int64_t unk;
    if ((s = se_json_int(model, file, "unk_id", 0, (int64_t)n - 1, -1, &unk, err)) != SE_OK) return s;
    u->unk_id = (int32_t)unk;
    if ((s = se_json_bool(model, file, "byte_fallback", false, &u->byte_fallback, err)) != SE_OK) return s;
    return SE_OK;
}

/* Builds the fairseq vocabulary from the model's pieces: NORMAL pieces
 * keep their float score, USER_DEFINED ones get sentencepiece's bonus,
 * every other id (the fairseq specials, CONTROL, UNUSED) is hidden from the
 * Viterbi; the charsmap is validated by se_precompiled_new (see the header). */
se_status se_unigram_load_spm(se_unigram *u, const se_spm_model *m, const char *name, se_error *err) {
    se_status s;
    u->unk_id = -1;
    if (m->trainer.model_type != SE_SPM_UNIGRAM)
        return se_err(err, SE_E_UNSUPPORTED, "%s: trainer_spec.model_type %d is not supported (Unigram only)", name,
                      (int)m->trainer.model_type);
    if (m->trainer.byte_fallback)
        return se_err(err, SE_E_UNSUPPORTED, "%s: trainer_spec.byte_fallback is not supported in a .model", name);
    if (m->trainer.treat_whitespace_as_suffix)
        return se_err(err, SE_E_UNSUPPORTED, "%s: trainer_spec.treat_whitespace_as_suffix is not supported", name);
    if ((s = se_spm_fairseq_check(m, name, err)) != SE_OK) return s;
    size_t n = SE_SPM_FAIRSEQ_SIZE(m);
    u->scores = se_calloc(n, sizeof *u->scores);
    u->n_chars = se_calloc(n, sizeof *u->n_chars);
    if (!u->scores || !u->n_chars) return se_err(err, SE_E_NOMEM, "out of memory");
    /* sentencepiece's min and max scores are over the NORMAL pieces */
    float min_score = 0.0f, max_score = 0.0f;
    bool any = false;
    for (size_t i = 0; i < m->n_pieces; i++)
        if (m->pieces[i].type == SE_SPM_NORMAL) {
            float sc = m->pieces[i].score;
            if (!any || sc < min_score) min_score = sc;
            if (!any || sc > max_score) max_score = sc;
            any = true;
        }
    for (size_t fid = 0; fid < n; fid++) {
        const char *p = se_spm_fairseq_piece(m, (int32_t)fid);
        size_t len = strlen(p);
        if ((s = se_vocab_add(&u->vocab, p, len, fid, name, err)) != SE_OK) return s;
        u->n_chars[fid] = count_chars(p, len);
        /* fid 0..3 and the last are the fairseq specials; fid i + 1 is piece i */
        const se_spm_piece *pc = fid >= 4 && fid < n - 1 ? &m->pieces[fid - 1] : NULL;
        if (pc && pc->type == SE_SPM_NORMAL) {
            u->scores[fid] = (double)pc->score;
        } else if (pc && pc->type == SE_SPM_USER_DEFINED) {
            u->scores[fid] = (double)((float)len * max_score) - 0.1;
        } else {
            if ((s = se_vocab_hide(&u->vocab, fid, err)) != SE_OK) return s;
        }
    }
    u->unk_score = (double)(float)(min_score - (float)K_UNK_PENALTY);
    u->unk_id = 3;
    u->spm = true;
    u->spm_opts.add_dummy_prefix = m->normalizer.add_dummy_prefix;
    u->spm_opts.remove_extra_whitespaces = m->normalizer.remove_extra_whitespaces;
    u->spm_opts.escape_whitespaces = m->normalizer.escape_whitespaces;
    u->spm_opts.treat_whitespace_as_suffix = false;
    u->replacement = 0x2581;
    if (m->normalizer.charsmap_len) {
        char field[300];
        snprintf(field, sizeof field, "%s: normalizer_spec.precompiled_charsmap", name);
        if ((s = se_precompiled_new(m->normalizer.charsmap, m->normalizer.charsmap_len, field, &u->pc, err)) != SE_OK)
            return s;
    }
    return SE_OK;
}

/* Resolves the 256 byte pieces, builds the index, the code point sets and
 * the longest piece over the matchable ids, and decides whether long texts
 * may be cut between ASCII letters/digits (see the header). */
se_status se_unigram_finish(se_unigram *u, const char *path, se_error *err) {
    se_status s;
    if (u->byte_fallback) {
        for (int b = 0; b < 256; b++) {
            char piece[8];
            snprintf(piece, sizeof piece, "<0x%02X>", b);
            u->byte_ids[b] = se_vocab_find_any(&u->vocab, piece);
            if (u->byte_ids[b] < 0)
                return se_err(err, SE_E_FORMAT, "%s: model.byte_fallback is true but the vocabulary has no piece '%s'", path,
                              piece);
        }
    }
    /* the energetic-ai JS tokenizer never matches its first six pieces */
    u->vocab.index_from = u->energetic ? 6 : 0;
    if ((s = build_cp_set(u, path, err)) != SE_OK) return s;
    if ((s = se_vocab_build_index(&u->vocab, err)) != SE_OK) return s;
    u->max_chars = 0;
    for (size_t id = u->vocab.index_from; id < u->vocab.n; id++)
        if (u->vocab.offs[id] != UINT32_MAX && !(u->vocab.hidden && u->vocab.hidden[id]) && u->n_chars[id] > u->max_chars)
            u->max_chars = u->n_chars[id];
    /* long texts: cut between two ASCII letters or digits when the charsmap
     * leaves them alone (see chunk_end) */
    u->cut_pairs = !u->pc || se_precompiled_ascii_inert(u->pc);
    return SE_OK;
}

/* Frees the vocabulary, scores, code point sets and charsmap; zeroes u. */
void se_unigram_free(se_unigram *u) {
    se_vocab_free(&u->vocab);
    se_free(u->scores);
    se_free(u->n_chars);
    se_free(u->cp_bmp);
    se_free(u->cp_astral);
    se_precompiled_free(u->pc);
    memset(u, 0, sizeof *u);
}

/* Frees the window and lattice buffers and zeroes the scratch. */
void se_uni_scratch_free(se_uni_scratch *s) {
    se_free(s->word);
    se_free(s->wbuf);
    se_free(s->bpos);
    se_free(s->ssb);
    se_free(s->sse);
    se_free(s->best);
    se_free(s->lid);
    se_free(s->llen);
    se_free(s->reach);
    se_free(s->run);
    memset(s, 0, sizeof *s);
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
    const se_unigram *u;
    se_uni_scratch *s;
    se_i32vec *out;
    se_i32vec *nch;   /* stats counts (NULL without stats): nch->v[i - nbase] belongs to out->v[i] */
    size_t nbase;
    se_i32vec *offs;  /* offsets (NULL without): offs->v[2 (i - obase)], [.. + 1] belong to out->v[i] */
    size_t obase;
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
    bool at_start;    /* the section starts the text (prepend_scheme first) */
    bool stop;        /* enough ids: read no further */
} uni_run;

/* Gives ssb and sse the window's capacity (calls with offsets only).
 * Returns false on OOM. */
static bool span_reserve(se_uni_scratch *s) {
    uint32_t *sb = se_realloc(s->ssb, s->word_cap * sizeof *sb);
    if (!sb) return false;
    s->ssb = sb;
    uint32_t *se = se_realloc(s->sse, s->word_cap * sizeof *se);
    if (!se) return false;
    s->sse = se;
    s->span_cap = s->word_cap;
    return true;
}

/* Makes the window hold n code points and n + 1 lattice entries, and
 * with spans its source spans. */
static bool window_reserve(se_uni_scratch *s, size_t n, bool spans) {
    if (n > s->word_cap) {
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
        if (spans && !span_reserve(s)) return false;
    }
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
    const se_uni_scratch *s = r->s;
    if (s->run[b - 1] < b - a) return -1;
    return se_vocab_find(&r->u->vocab, s->wbuf + s->bpos[a], s->bpos[b] - s->bpos[a]);
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
    const se_unigram *u = r->u;
    se_uni_scratch *s = r->s;
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
            if (!s->llen[st + k] || sc > s->best[st + k]) {
                s->best[st + k] = u->spm ? (double)(float)sc : sc; /* sentencepiece stores float */
                s->lid[st + k] = id, s->llen[st + k] = (uint32_t)k + 1;
            }
            if (k == 1) single = true;
            if (st + k > s->reach[st]) s->reach[st] = (uint32_t)(st + k);
        }
        if (!single) {
            if (r->u->unk_id < 0) return VITERBI_NO_UNK;
            /* sentencepiece adds the unk score in float */
            double sc = u->spm ? (double)((float)u->unk_score + (float)base) : base + u->unk_score;
            if (!s->llen[st + 1] || sc > s->best[st + 1])
                s->best[st + 1] = sc, s->lid[st + 1] = r->u->unk_id, s->llen[st + 1] = 2;
        }
        r->done = st + 1;
    }
    return VITERBI_OK;
}

/* Finds sync points among the positions whose matches are all known:
 * p is one when no piece matched from a start before p ends after p. */
static void find_sync(uni_run *r, bool complete) {
    const se_unigram *u = r->u;
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
        k += !(se_uc_is_whitespace(c) || c == r->u->replacement);
    }
    return k;
}

/* Pushes one id of the best path (in reverse order: emit reverses the
 * ids it pushed), with its stats count and its span [b, e). Returns false
 * on OOM. */
static inline bool push_rev(uni_run *r, int32_t id, int32_t count, uint32_t b, uint32_t e) {
    if (!se_i32vec_push(r->out, id)) return false;
    if (r->nch && !se_i32vec_push(r->nch, count)) return false;
    return !r->offs || (se_i32vec_push(r->offs, (int32_t)b) && se_i32vec_push(r->offs, (int32_t)e));
}

/* Appends the best path's ids from window position 0 to p (a sync point)
 * to out, collapsing runs of unknowns (across earlier emits of the same
 * segment too) or, with byte_fallback, writing an unknown stretch as the
 * <0xNN> pieces of its UTF-8 bytes; then applies the limit. Returns false
 * on OOM. */
static bool emit(uni_run *r, size_t p) {
    const se_unigram *u = r->u;
    se_uni_scratch *s = r->s;
    se_i32vec *out = r->out, *nch = r->nch;
    size_t mark = out->n;
    for (size_t it = p; it > 0;) {
        int32_t id;
        size_t step;
        if (u->energetic) { /* backtrack by the stored piece's length (piece 0 is one character) */
            id = s->lid[it] < 0 ? 0 : s->lid[it];
            step = u->n_chars[id] ? u->n_chars[id] : 1;
        } else {
            step = s->llen[it] ? s->llen[it] - 1 : 1;
            id = s->lid[it] < 0 ? u->unk_id : s->lid[it];
        }
        size_t from = step > it ? 0 : it - step;
        int32_t vis = nch ? visible(r, from, it) : 0;
        uint32_t sb = r->offs ? s->ssb[from] : 0, se = r->offs ? s->sse[it - 1] : 0;
        if (u->byte_fallback && id == u->unk_id) {
            /* the bytes of [from, it), last first, each with the span of all */
            for (size_t b = s->bpos[it]; b > s->bpos[from]; b--)
                if (!push_rev(r, u->byte_ids[(uint8_t)s->wbuf[b - 1]], b - 1 == s->bpos[from] ? vis : 0, sb, se))
                    return false;
        } else if (!push_rev(r, id, vis, sb, se)) {
            return false;
        }
        it = from;
    }
    for (size_t i = mark, j = out->n; i + 1 < j; i++, j--) {
        int32_t x = out->v[i];
        out->v[i] = out->v[j - 1], out->v[j - 1] = x;
        if (nch) {
            int32_t y = nch->v[i - r->nbase];
            nch->v[i - r->nbase] = nch->v[j - 1 - r->nbase], nch->v[j - 1 - r->nbase] = y;
        }
        if (r->offs) {
            int32_t *a = r->offs->v + 2 * (i - r->obase), *b = r->offs->v + 2 * (j - 1 - r->obase);
            int32_t y0 = a[0], y1 = a[1];
            a[0] = b[0], a[1] = b[1], b[0] = y0, b[1] = y1;
        }
    }
    size_t k = mark;
    int32_t *ov = r->offs ? r->offs->v : NULL;
    for (size_t i = mark; i < out->n; i++) {
        bool unk = out->v[i] == r->unk && !u->byte_fallback;
        if (unk && r->prev_unk) { /* fused with the unk before it */
            if (nch && k > r->base) nch->v[k - 1 - r->nbase] += nch->v[i - r->nbase];
            if (ov && k > r->base) ov[2 * (k - 1 - r->obase) + 1] = ov[2 * (i - r->obase) + 1];
            continue;
        }
        out->v[k] = out->v[i];
        if (nch) nch->v[k - r->nbase] = nch->v[i - r->nbase];
        if (ov) ov[2 * (k - r->obase)] = ov[2 * (i - r->obase)], ov[2 * (k - r->obase) + 1] = ov[2 * (i - r->obase) + 1];
        k++;
        r->prev_unk = unk;
    }
    out->n = k;
    if (nch) nch->n = k - r->nbase;
    if (r->offs) r->offs->n = 2 * (k - r->obase);
    if (out->n - r->base > r->limit) {
        if (!r->n_total) {
            r->stop = true;
        } else { /* keep limit + 1 ids, count the rest */
            size_t drop = out->n - r->base - (r->limit + 1);
            r->extra += drop;
            out->n -= drop;
            if (nch) nch->n -= drop;
            if (r->offs) r->offs->n -= 2 * drop;
        }
    }
    return true;
}

/* Emits up to window position p and drops the window before it; p becomes
 * position 0, keeping its cumulative score. */
static bool emit_shift(uni_run *r, size_t p) {
    if (!emit(r, p)) return false;
    se_uni_scratch *s = r->s;
    size_t n = r->n, b0 = s->bpos[p];
    memmove(s->word, s->word + p, (n - p) * sizeof *s->word);
    memmove(s->wbuf, s->wbuf + b0, s->bpos[n] - b0);
    if (r->offs) {
        memmove(s->ssb, s->ssb + p, (n - p) * sizeof *s->ssb);
        memmove(s->sse, s->sse + p, (n - p) * sizeof *s->sse);
    }
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
        se_uni_scratch *s = r->s;
        for (size_t i = 1; i <= r->n; i++) s->best[i] = 0.0, s->lid[i] = -1, s->llen[i] = 0;
        for (size_t i = 0; i <= r->n; i++) s->reach[i] = 0;
        r->done = 0;
        r->scan = 1;
    }
    return VITERBI_OK;
}

/* Appends one code point of the normalised, pre-tokenised text to the
 * window (a split Metaspace starts a segment at each replacement), with
 * offsets the section's bytes [b, e) it came from. */
static inline int push_cp(uni_run *r, uint32_t c, uint32_t b, uint32_t e) {
    const se_unigram *u = r->u;
    se_uni_scratch *s = r->s;
    if (u->metaspace && c == ' ') c = u->replacement;
    if (u->split && u->metaspace && c == u->replacement && r->n > 0) {
        int v = step(r, true);
        if (v != VITERBI_OK) return v;
    }
    if (!window_reserve(s, r->n + 1, r->offs != NULL)) return VITERBI_NOMEM;
    size_t i = r->n;
    s->word[i] = c;
    if (r->offs) s->ssb[i] = b, s->sse[i] = e;
    s->bpos[i + 1] = s->bpos[i] + (uint32_t)se_utf8_encode(c, s->wbuf + s->bpos[i]);
    s->best[i + 1] = 0.0, s->lid[i + 1] = -1, s->llen[i + 1] = 0, s->reach[i + 1] = 0;
    s->run[i] = in_vocab(u, c) ? (i ? s->run[i - 1] : 0) + 1 : 0;
    r->n = i + 1;
    return VITERBI_OK;
}

/* Feeds one code point of the normalised section: the first one is
 * preceded by the Metaspace replacement when the prepend scheme asks for
 * it (Hugging Face: unless the text already starts with one after ' '
 * became the replacement; energetic-ai: always). */
static int push_text_cp(uni_run *r, uint32_t c, uint32_t b, uint32_t e) {
    const se_unigram *u = r->u;
    if (!r->started) {
        r->started = true;
        bool pre = u->metaspace && (u->prepend == SE_PREPEND_ALWAYS || (u->prepend == SE_PREPEND_FIRST && r->at_start));
        uint32_t first = c == ' ' ? u->replacement : c;
        if (pre && (u->energetic || first != u->replacement)) {
            /* Hugging Face's prepend: the replacement takes the first
             * character's span */
            int v = push_cp(r, u->replacement, b, e);
            if (v != VITERBI_OK) return v;
        }
    }
    return push_cp(r, c, b, e);
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

/* Whether c is an ASCII letter or digit. */
static bool is_ascii_alnum(uint8_t c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }

/* Whether the normaliser is NFKC alone (or nothing): then chunks may be
 * cut before any cut_safe code point. */
static bool nfkc_only(const se_unigram *u) {
    return !u->spm && (u->n_steps == 0 || (u->n_steps == 1 && u->steps[0].kind == SE_UNI_NORM_NFKC));
}

/* The end of the chunk that starts at byte i: len when the rest is short;
 * with NFKC alone the first safe cut at or after i + CHUNK_BYTES (any code
 * point boundary without a normaliser); with a charsmap, Strip or Replace,
 * the first place after that between two ASCII letters or digits, where
 * every step (a grapheme boundary for the charsmap, which leaves those
 * characters alone: cut_pairs; no whitespace for Strip, Replace and
 * sentencepiece's whitespace rules; nothing composes for NFKC) gives the
 * same text cut or whole; len when there is none. */
static size_t chunk_end(const se_unigram *u, const char *text, size_t len, size_t i) {
    if (len - i <= CHUNK_BYTES) return len;
    size_t j = i + CHUNK_BYTES;
    if (!nfkc_only(u)) {
        if (!u->cut_pairs) return len;
        for (; j < len; j++)
            if (is_ascii_alnum((uint8_t)text[j - 1]) && is_ascii_alnum((uint8_t)text[j])) return j;
        return len;
    }
    while (j < len && ((uint8_t)text[j] & 0xC0) == 0x80) j++;
    if (u->n_steps == 0) return j;
    while (j < len) {
        uint32_t c;
        int k = se_utf8_decode((const uint8_t *)text + j, len - j, &c);
        if (!k) return len; /* invalid UTF-8: let the whole rest fail in one piece */
        if (cut_safe(c)) return j;
        j += (size_t)k;
    }
    return len;
}

/* A chunk's text through the normaliser: cur[0..n), owned (se_malloc) when
 * own is set. With offsets, al (owned) holds for each of its ncp code
 * points the chunk's bytes [al[2 i], al[2 i + 1]) it came from. */
typedef struct norm_buf {
    char *own;
    const char *cur;
    size_t n;
    uint32_t *al;
    size_t ncp;
} norm_buf;

/* Replaces the buffer's text by the new owned text t[0..n). */
static void nb_set(norm_buf *b, char *t, size_t n) {
    se_free(b->own);
    b->own = t, b->cur = t, b->n = n;
}

/* Replaces the buffer's alignments by al (owned), ncp code points. */
static void nb_set_al(norm_buf *b, uint32_t *al, size_t ncp) {
    se_free(b->al);
    b->al = al, b->ncp = ncp;
}

/* Number of code points of p[0..n) (valid UTF-8). */
static size_t n_cp(const char *p, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((uint8_t)p[i] & 0xC0) != 0x80;
    return k;
}

/* The alignments of an untouched text: each code point of p[0..n) spans
 * its own bytes. NULL on OOM. */
static uint32_t *al_identity(const char *p, size_t n, size_t *ncp) {
    size_t k = n_cp(p, n);
    uint32_t *al = se_malloc_array(2 * k + 2, sizeof *al);
    if (!al) return NULL;
    size_t q = 0;
    for (size_t i = 0; i < n; i++) {
        if (((uint8_t)p[i] & 0xC0) == 0x80) continue;
        if (q) al[2 * q - 1] = (uint32_t)i;
        al[2 * q] = (uint32_t)i;
        q++;
    }
    if (q) al[2 * q - 1] = (uint32_t)n;
    *ncp = k;
    return al;
}

/* Hugging Face's NormalizedString::transform on alignments: after
 * `initial` old code points are removed, each new code point with change
 * > 0 is inserted and shares the alignment of the old code point before
 * it; otherwise it takes the alignment of the next old code point, and a
 * change -k removes k more. NULL on OOM. */
static uint32_t *al_apply(const uint32_t *old, size_t n_old, size_t initial, const int32_t *chg, size_t n_new) {
    uint32_t *al = se_malloc_array(2 * n_new + 2, sizeof *al);
    if (!al) return NULL;
    size_t j = initial;
    for (size_t k = 0; k < n_new; k++) {
        size_t src = chg[k] > 0 ? j - 1 : j;
        if (chg[k] > 0 && j == 0) {
            al[2 * k] = al[2 * k + 1] = 0;
        } else {
            if (src >= n_old) src = n_old ? n_old - 1 : 0;
            al[2 * k] = n_old ? old[2 * src] : 0, al[2 * k + 1] = n_old ? old[2 * src + 1] : 0;
        }
        if (chg[k] <= 0) j += 1 + (size_t)(-(int64_t)chg[k]);
    }
    return al;
}

/* The composite of a and b (canonical composition), or 0. */
static uint32_t compose_pair(uint32_t a, uint32_t b) {
    utf8proc_int32_t buf[2] = {(utf8proc_int32_t)a, (utf8proc_int32_t)b};
    return utf8proc_normalize_utf32(buf, 2, UTF8PROC_COMPOSE | UTF8PROC_STABLE) == 1 ? (uint32_t)buf[0] : 0;
}

/* NFKC of the k code points cp[0..k) with tokenizers' change values, the
 * way unicode-normalization-alignments tracks them: each code point's
 * compatibility decomposition (the first part replaces it, the others are
 * inserted), canonical order, then composition, a composed mark folding
 * its change into the starter's (change + its change - 1). Writes up to
 * cap code points to oc / och; returns their number, or SIZE_MAX when
 * cap is too small. */
static size_t nfkc_track(const uint32_t *cp, size_t k, uint32_t *oc, int32_t *och, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < k; i++) {
        utf8proc_int32_t d[32];
        int bound = 0;
        utf8proc_ssize_t m = utf8proc_decompose_char((utf8proc_int32_t)cp[i], d, 32, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT,
                                                     &bound);
        if (m < 0 || m > 32 || n + (size_t)m > cap) return SIZE_MAX;
        for (utf8proc_ssize_t q = 0; q < m; q++) oc[n] = (uint32_t)d[q], och[n] = q ? 1 : 0, n++;
    }
    for (size_t i = 1; i < n; i++) { /* canonical order, the changes moving along */
        int ci = se_uc_ccc(oc[i]);
        if (ci == 0) continue;
        size_t j = i;
        uint32_t x = oc[i];
        int32_t xc = och[i];
        while (j > 0 && se_uc_ccc(oc[j - 1]) > ci) oc[j] = oc[j - 1], och[j] = och[j - 1], j--;
        oc[j] = x, och[j] = xc;
    }
    size_t w = 0, starter = SIZE_MAX;
    int last = 0; /* combining class of the last code point kept after the starter */
    for (size_t i = 0; i < n; i++) {
        int cc = se_uc_ccc(oc[i]);
        uint32_t comp = 0;
        if (starter != SIZE_MAX && (w == starter + 1 || (last != 0 && last < cc))) comp = compose_pair(oc[starter], oc[i]);
        if (comp) {
            oc[starter] = comp;
            och[starter] += och[i] - 1;
            continue;
        }
        oc[w] = oc[i], och[w] = och[i];
        if (cc == 0) starter = w, last = 0;
        else last = cc;
        w++;
    }
    return w;
}

/* NFKC of p[0..n) into *out (se_malloc, *out_len bytes), and with chg
 * the change value of every output code point: the text is cut before
 * each cut_safe code point (nothing composes across such a cut) and each
 * piece that NFKC changes gets the changes nfkc_track computes (up to 64
 * code points; a longer piece, or one whose tracking does not give
 * utf8proc's text, gets those of a replacement: the first code points
 * replace one each, extra ones are inserted, a shorter result's last code
 * point absorbs the rest). */
static se_status nfkc_changes(const char *p, size_t n, char **out, size_t *out_len, int32_t **chg, size_t *n_chg,
                              se_error *err) {
    size_t cap = n * 4 + 16, ccap = n + 16, len = 0, nc = 0;
    char *t = se_malloc(cap);
    int32_t *c = se_malloc_array(ccap, sizeof *c);
    if (!t || !c) goto oom;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint32_t cp;
        int k = se_utf8_decode((const uint8_t *)p + j, n - j, &cp);
        if (!k) {
            se_free(t), se_free(c);
            return se_err(err, SE_E_UTF8, "invalid UTF-8 at byte %zu", j);
        }
        j += (size_t)k;
        while (j < n && (k = se_utf8_decode((const uint8_t *)p + j, n - j, &cp)) > 0 && !cut_safe(cp)) j += (size_t)k;
        utf8proc_uint8_t *m = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)p + i, (utf8proc_ssize_t)(j - i), &m,
                                          UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
        if (r < 0) {
            se_free(t), se_free(c);
            return se_err(err, r == UTF8PROC_ERROR_NOMEM ? SE_E_NOMEM : SE_E_UTF8, "NFKC: %s", utf8proc_errmsg(r));
        }
        size_t no = n_cp(p + i, j - i), nn = n_cp((const char *)m, (size_t)r);
        /* the changes as unicode-normalization-alignments gives them, when
         * that tracking yields utf8proc's text */
        uint32_t src[64], trk[256];
        int32_t tch[256];
        size_t nt = SIZE_MAX;
        if (no <= 64) {
            size_t q = 0;
            for (size_t b = i; b < j && q < 64; q++) b += (size_t)se_utf8_decode((const uint8_t *)p + b, j - b, &src[q]);
            nt = nfkc_track(src, no, trk, tch, 256);
            if (nt == nn) {
                size_t b = 0;
                for (size_t q2 = 0; q2 < nt && nt != SIZE_MAX; q2++) {
                    uint32_t c2;
                    b += (size_t)se_utf8_decode(m + b, (size_t)r - b, &c2);
                    if (c2 != trk[q2]) nt = SIZE_MAX;
                }
            } else {
                nt = SIZE_MAX;
            }
        }
        while (len + (size_t)r + 1 > cap || nc + nn + 1 > ccap) {
            cap *= 2, ccap *= 2;
            char *t2 = se_realloc(t, cap);
            int32_t *c2 = se_realloc(c, ccap * sizeof *c2);
            if (t2) t = t2;
            if (c2) c = c2;
            if (!t2 || !c2) {
                free(m);
                goto oom;
            }
        }
        memcpy(t + len, m, (size_t)r);
        len += (size_t)r;
        free(m);
        if (nt != SIZE_MAX) {
            memcpy(c + nc, tch, nn * sizeof *c);
        } else {
            for (size_t q = 0; q < nn; q++) c[nc + q] = q < no ? 0 : 1;
        }
        if (nt == SIZE_MAX && nn < no) {
            if (nn) c[nc + nn - 1] -= (int32_t)(no - nn);
            else if (nc) c[nc - 1] -= (int32_t)no;
        }
        nc += nn;
        i = j;
    }
    t[len] = '\0';
    *out = t, *out_len = len, *chg = c, *n_chg = nc;
    return SE_OK;
oom:
    se_free(t), se_free(c);
    return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
}

/* Rust's char::is_whitespace (Unicode White_Space), which Strip uses. */
static bool white_space_at(const char *p, size_t n, size_t *len, bool from_end) {
    uint32_t c;
    if (!from_end) {
        int k = se_utf8_decode((const uint8_t *)p, n, &c);
        if (!k) return false;
        *len = (size_t)k;
        return se_uc_is_whitespace(c);
    }
    size_t b = n;
    while (b > 0 && ((uint8_t)p[b - 1] & 0xC0) == 0x80) b--;
    if (b == 0) return false;
    b--;
    int k = se_utf8_decode((const uint8_t *)p + b, n - b, &c);
    if (!k) return false;
    *len = n - b;
    return se_uc_is_whitespace(c);
}

/* Normalises one chunk (first / last of its section) with the model's
 * normaliser into nb. *strip_left says a Strip(left) step still has to
 * drop leading whitespace (it spans chunks until the first other
 * character). */
static se_status normalize_chunk(const se_unigram *u, const char *src, size_t n, bool first, bool last,
                                 bool *strip_left, bool want_al, norm_buf *nb, se_error *err) {
    nb->own = NULL, nb->cur = src, nb->n = n, nb->al = NULL, nb->ncp = 0;
    se_status s;
    if (u->spm) {
        se_spm_norm_opts o = u->spm_opts;
        o.add_dummy_prefix = o.add_dummy_prefix && first;
        char *t;
        size_t tn;
        if (!want_al) {
            if ((s = se_precompiled_normalize_spm(u->pc, &o, src, n, &t, &tn, err)) != SE_OK) return s;
            nb_set(nb, t, tn);
            return SE_OK;
        }
        /* sentencepiece's spans: a code point runs from where its source
         * starts to where the next one's does (the last one to the end
         * norm_to_orig gives) */
        uint32_t *n2o;
        if ((s = se_precompiled_normalize_spm_map(u->pc, &o, src, n, &t, &tn, &n2o, err)) != SE_OK) return s;
        nb_set(nb, t, tn);
        size_t ncp = n_cp(t, tn), q = 0;
        uint32_t *al = se_malloc_array(2 * ncp + 2, sizeof *al);
        if (!al) {
            se_free(n2o);
            return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
        }
        for (size_t k = 0; k < tn; k++) {
            if (((uint8_t)t[k] & 0xC0) == 0x80) continue;
            if (q) al[2 * q - 1] = n2o[k];
            al[2 * q++] = n2o[k];
        }
        if (q) al[2 * q - 1] = n2o[tn];
        se_free(n2o);
        nb_set_al(nb, al, ncp);
        return SE_OK;
    }
    if (want_al && !(nb->al = al_identity(src, n, &nb->ncp))) return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
    for (int k = 0; k < u->n_steps; k++) {
        const se_uni_norm_step *st = &u->steps[k];
        char *t;
        size_t tn, w;
        switch (st->kind) {
        case SE_UNI_NORM_PRECOMPILED:
            if (want_al) {
                int32_t *chg;
                if ((s = se_precompiled_normalize_hf_changes(u->pc, nb->cur, nb->n, &t, &tn, &chg, err)) != SE_OK) return s;
                size_t ncp = n_cp(t, tn);
                uint32_t *al = al_apply(nb->al, nb->ncp, 0, chg, ncp);
                se_free(chg);
                nb_set(nb, t, tn);
                if (!al) return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
                nb_set_al(nb, al, ncp);
                break;
            }
            if ((s = se_precompiled_normalize_hf(u->pc, nb->cur, nb->n, &t, &tn, err)) != SE_OK) return s;
            nb_set(nb, t, tn);
            break;
        case SE_UNI_NORM_STRIP:
            if (st->left && *strip_left) {
                size_t gone = 0;
                while (nb->n && white_space_at(nb->cur, nb->n, &w, false)) nb->cur += w, nb->n -= w, gone++;
                if (nb->n) *strip_left = false;
                if (want_al && gone) {
                    memmove(nb->al, nb->al + 2 * gone, 2 * (nb->ncp - gone) * sizeof *nb->al);
                    nb->ncp -= gone;
                }
            }
            if (st->right && last)
                while (nb->n && white_space_at(nb->cur, nb->n, &w, true)) nb->n -= w, nb->ncp -= want_al;
            break;
        case SE_UNI_NORM_REPLACE: {
            size_t cl = strlen(st->content), runs = 0;
            for (size_t i = 0; i + 1 < nb->n; i++)
                if (nb->cur[i] == ' ' && nb->cur[i + 1] == ' ') runs++;
            if (!runs) break;
            t = se_malloc(nb->n + cl + 1 > nb->n * (cl + 1) ? nb->n + cl + 1 : nb->n * (cl + 1) + 1);
            if (!t) return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
            /* with offsets: the content (one code point) takes the
             * alignment of the run's last space, as tokenizers' replace */
            uint32_t *al = want_al ? se_malloc_array(2 * nb->ncp + 2, sizeof *al) : NULL;
            if (want_al && !al) {
                se_free(t);
                return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
            }
            tn = 0;
            size_t q = 0, qo = 0; /* code points read, written */
            for (size_t i = 0; i < nb->n;) {
                size_t j = i;
                while (j < nb->n && nb->cur[j] == ' ') j++;
                if (j - i >= 2) {
                    memcpy(t + tn, st->content, cl), tn += cl;
                    q += j - i;
                    if (al) al[2 * qo] = nb->al[2 * (q - 1)], al[2 * qo + 1] = nb->al[2 * (q - 1) + 1], qo++;
                    i = j;
                } else {
                    if (((uint8_t)nb->cur[i] & 0xC0) != 0x80) {
                        if (al) al[2 * qo] = nb->al[2 * q], al[2 * qo + 1] = nb->al[2 * q + 1], qo++;
                        q++;
                    }
                    t[tn++] = nb->cur[i++];
                }
            }
            nb_set(nb, t, tn);
            if (al) nb_set_al(nb, al, qo);
            break;
        }
        case SE_UNI_NORM_NFKC: {
            if (nfkc_inert(nb->cur, nb->n)) break;
            if (want_al) {
                int32_t *chg = NULL;
                size_t nc = 0;
                if ((s = nfkc_changes(nb->cur, nb->n, &t, &tn, &chg, &nc, err)) != SE_OK) return s;
                uint32_t *al = al_apply(nb->al, nb->ncp, 0, chg, nc);
                se_free(chg);
                nb_set(nb, t, tn);
                if (!al) return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
                nb_set_al(nb, al, nc);
                break;
            }
            utf8proc_uint8_t *m = NULL;
            /* utf8proc stops at NUL only with UTF8PROC_NULLTERM; NUL is kept */
            utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)nb->cur, (utf8proc_ssize_t)nb->n, &m,
                                              UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
            if (r < 0) return se_err(err, r == UTF8PROC_ERROR_NOMEM ? SE_E_NOMEM : SE_E_UTF8, "NFKC: %s", utf8proc_errmsg(r));
            t = se_malloc((size_t)r + 1);
            if (!t) {
                free(m);
                return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
            }
            memcpy(t, m, (size_t)r);
            free(m);
            nb_set(nb, t, (size_t)r);
            break;
        }
        }
    }
    return SE_OK;
}

se_status se_unigram_encode(const se_unigram *u, const char *text, size_t len, bool at_start, size_t limit,
                            se_uni_scratch *s, se_i32vec *out, se_i32vec *nch, se_i32vec *offs, size_t *n_total,
                            se_error *err) {
    uni_run r = {0};
    r.u = u, r.s = s, r.out = out, r.nch = nch, r.nbase = nch ? out->n - nch->n : 0, r.base = out->n;
    r.offs = offs, r.obase = offs ? out->n - offs->n / 2 : 0;
    r.limit = limit, r.n_total = n_total, r.unk = u->energetic ? 0 : u->unk_id, r.scan = 1, r.at_start = at_start;
    if (n_total) *n_total = 0;
    if (len == 0) return SE_OK;
    if (!window_reserve(s, 64, offs != NULL) || (offs && s->span_cap < s->word_cap && !span_reserve(s)))
        return se_err(err, SE_E_NOMEM, "tokenizer: out of memory");
    segment_start(&r);
    se_status st = SE_OK;
    bool strip_left = true;
    for (size_t i = 0; i < len && !r.stop && st == SE_OK;) {
        size_t j = chunk_end(u, text, len, i);
        norm_buf nb;
        if ((st = normalize_chunk(u, text + i, j - i, i == 0, j == len, &strip_left, offs != NULL, &nb, err)) != SE_OK) {
            se_free(nb.own);
            se_free(nb.al);
            return st;
        }
        int v = VITERBI_OK;
        size_t q = 0; /* code point index, for the alignments */
        for (size_t b = 0; b < nb.n && v == VITERBI_OK; q++) {
            uint32_t c;
            int k = se_utf8_decode((const uint8_t *)nb.cur + b, nb.n - b, &c);
            if (!k) {
                se_free(nb.own);
                se_free(nb.al);
                return se_err(err, SE_E_UTF8, "invalid UTF-8 at byte %zu", i + b);
            }
            b += (size_t)k;
            if (!nb.al) {
                v = push_text_cp(&r, c, 0, 0);
            } else {
                uint32_t sb = 0, se = 0;
                if (q < nb.ncp) sb = (uint32_t)i + nb.al[2 * q], se = (uint32_t)i + nb.al[2 * q + 1];
                v = push_text_cp(&r, c, sb, se);
            }
            if (v == VITERBI_OK && r.stop) break;
        }
        se_free(nb.own);
        se_free(nb.al);
        if (v == VITERBI_OK && !r.stop) v = step(&r, false);
        st = viterbi_status(v, err);
        i = j;
    }
    if (st == SE_OK && !r.stop) st = viterbi_status(step(&r, true), err);
    if (st == SE_OK && n_total) *n_total = out->n - r.base + r.extra;
    return st;
}
