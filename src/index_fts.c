/*
 * index_fts.c - the index's keyword side: an FTS5 tokenizer that makes
 * Chinese, Japanese and Korean findable, the MATCH expression built from a
 * user's free text, and the BM25 query (index_fts.h).
 *
 * Tokenisation. FTS5's own unicode61 tokenizer splits on what is not a
 * letter or digit, so a run of Chinese characters (no spaces) is one token
 * and a question never matches a passage unless it repeats the run whole.
 * The "sembed" tokenizer splits the text into runs of CJK characters and
 * runs of everything else:
 *   - other text goes to FTS5's porter stemmer over unicode61 with
 *     remove_diacritics 2 (case folded, accents removed, English stems);
 *     with the tokenizer argument "2" (keyword format 2, index formats 3 and 4)
 *     unicode61's pieces are first joined into words as Unicode's word
 *     segmentation (UAX #29, Lucene's StandardTokenizer) joins them:
 *     across one '.', '\'' or '’' between two letters or two digits
 *     ("e.g", "don't", "5.3"), one ',' or ';' between digits ("1,000")
 *     and one '_' between any two (UAX #29 also joins letters across
 *     ':', which is left out: "text:dogs" stays two words); a word ending
 *     in 's (or ’s) after a letter loses it (Lucene's
 *     EnglishPossessiveFilter: "patient's" -> "patient", its span too).
 *     Hyphens, slashes and other punctuation separate ("covid-19" ->
 *     covid 19), as in UAX #29. Without the argument (the FTS5 tables of
 *     index format 2 files) unicode61's pieces are the tokens;
 *   - a CJK run becomes its overlapping character bigrams (the standard
 *     approach of CJK analyzers, e.g. Lucene's CJKAnalyzer): 苹果手机 ->
 *     苹果 果手 手机; a one-character run is that character.
 * Queries go through the same tokenizer, so a question shares bigrams with
 * the passages that answer it.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "alloc.h"
#include "error.h"
#include "index_fts.h"

/* The fts5_api of db (NULL when SQLite has no FTS5). */
static fts5_api *fts5_api_of(sqlite3 *db) {
    fts5_api *api = NULL;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &q, NULL) != SQLITE_OK) return NULL;
    sqlite3_bind_pointer(q, 1, (void *)&api, "fts5_api_ptr", NULL);
    sqlite3_step(q);
    sqlite3_finalize(q);
    return api;
}

/* Decodes one UTF-8 character at s (n > 0 bytes left) into *cp; returns
 * its length. A malformed byte is a character of its own (length 1, cp
 * 0xFFFD): never CJK, handed to unicode61 with its neighbours. */
static int utf8_next(const unsigned char *s, int n, unsigned *cp) {
    unsigned c = s[0];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n) {
        *cp = 0xFFFD;
        return 1;
    }
    unsigned v = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = v << 6 | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

/* Whether cp is written without spaces between words: Han ideographs
 * (and their radicals, extensions and compatibility forms), kana,
 * bopomofo, Hangul. CJK punctuation (U+3000..303F) and fullwidth ASCII are
 * not: they separate, as punctuation does. */
static int is_cjk(unsigned cp) {
    return (cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0x2E80 && cp <= 0x2FDF) || (cp >= 0x3040 && cp <= 0x318F) ||
           (cp >= 0x31A0 && cp <= 0x31BF) || (cp >= 0x31F0 && cp <= 0x31FF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xA960 && cp <= 0xA97F) || (cp >= 0xAC00 && cp <= 0xD7FF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFF66 && cp <= 0xFF9F) || (cp >= 0x20000 && cp <= 0x3134F);
}

typedef int (*xtoken_fn)(void *, int, const char *, int, int, int);

/* ---- words: unicode61's pieces joined as UAX #29 joins them ---- */

/* The longest joined word (Lucene's StandardTokenizer cuts at 255 too); a
 * longer one stays in pieces. */
#define WORD_MAX 255

/* A "sembed_words" tokenizer instance (the base of the porter stemmer in
 * keyword format 2): unicode61 with remove_diacritics 2. */
typedef struct words_tok {
    fts5_tokenizer u61;
    Fts5Tokenizer *u61_tok;
} words_tok;

/* xCreate of "sembed_words" (arguments ignored). */
static int words_create(void *user, const char **argv, int argc, Fts5Tokenizer **out) {
    (void)argv;
    (void)argc;
    fts5_api *api = user;
    *out = NULL;
    words_tok *t = se_calloc(1, sizeof *t);
    if (!t) return SQLITE_NOMEM;
    void *pu = NULL;
    static const char *args[] = {"remove_diacritics", "2"};
    int rc = api->xFindTokenizer(api, "unicode61", &pu, &t->u61);
    if (rc == SQLITE_OK) rc = t->u61.xCreate(pu, args, 2, &t->u61_tok);
    if (rc != SQLITE_OK) {
        se_free(t);
        return rc;
    }
    *out = (Fts5Tokenizer *)t;
    return SQLITE_OK;
}

/* xDelete of "sembed_words". */
static void words_delete(Fts5Tokenizer *p) {
    words_tok *t = (words_tok *)p;
    if (!t) return;
    if (t->u61_tok) t->u61.xDelete(t->u61_tok);
    se_free(t);
}

/* The word being joined: its folded text so far, its span, and its last
 * joiner and piece (for the possessive). */
typedef struct words_ctx {
    void *ctx;
    xtoken_fn cb;
    const unsigned char *text;
    int n;
    char buf[WORD_MAX + 1];
    int len;            /* bytes in buf; 0: no word pending */
    int start, end;     /* the word's span in text */
    int pieces;         /* unicode61 pieces joined */
    int last_join;        /* the last joiner's byte offset, or -1 */
    unsigned last_joiner; /* its code point */
    int last_piece_len;   /* bytes of the last piece in buf */
} words_ctx;

/* The code point ending at byte end of s (s[0..end) well formed up to
 * there), 0xFFFD when malformed. */
static unsigned cp_before(const unsigned char *s, int end) {
    int b = end - 1;
    while (b > 0 && end - b < 4 && (s[b] & 0xC0) == 0x80) b--;
    unsigned cp;
    int len = utf8_next(s + b, end - b, &cp);
    return b + len == end ? cp : 0xFFFD;
}

/* Whether cp is a decimal digit (UAX #29's Numeric, near enough); any
 * other character unicode61 keeps in a token counts as a letter. */
static int is_digit_cp(unsigned cp) {
    return cp < 0x80 ? (cp >= '0' && cp <= '9') : utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_ND;
}

/* UAX #29's classes of a one-character joiner. Its MidLetter (':' and
 * the like, joining two letters) is left out on purpose: "text:dogs" or
 * "ratio:1" typed in a question stay two words. */
enum { J_NONE, J_MIDNUMLET, J_MIDNUM, J_EXTEND };

/* The class of cp as a joiner (J_NONE: not one). */
static int joiner_class(unsigned cp) {
    switch (cp) {
    case '.': case '\'': case 0x2018: case 0x2019: case 0x2024: case 0xFE52: case 0xFF07: case 0xFF0E:
        return J_MIDNUMLET;
    case ',': case ';': case 0x37E: case 0x589: case 0x60C: case 0x60D: case 0x66C: case 0x7F8: case 0x2044:
    case 0xFE10: case 0xFE14: case 0xFE50: case 0xFE54: case 0xFF0C: case 0xFF1B:
        return J_MIDNUM;
    case '_': case 0x203F: case 0x2040: case 0x2054: case 0xFE33: case 0xFE34: case 0xFE4D: case 0xFE4E: case 0xFE4F:
    case 0xFF3F:
        return J_EXTEND;
    default:
        return J_NONE;
    }
}

/* The joiner j as written inside a word: ASCII, so that the forms of one
 * punctuation mark make one word (don’t and don't: the apostrophes ’ ‘ ＇
 * are '; the other full stops '.', commas ',', connectors '_'). */
static char joiner_ascii(unsigned j) {
    if (j < 0x80) return (char)j;
    switch (joiner_class(j)) {
    case J_MIDNUMLET: return j == 0x2018 || j == 0x2019 || j == 0xFF07 ? '\'' : '.';
    case J_MIDNUM: return ',';
    default: return '_';
    }
}

/* Whether the piece starting at byte s joins the pending word, which ends
 * at w->end: exactly one joiner between, allowed by UAX #29 (WB6/7 letter
 * x letter, WB11/12 digit x digit, WB13a/b around '_'; not ':'); *jcp its code
 * point. */
static int joins(const words_ctx *w, int s, unsigned *jcp) {
    if (!w->len || s <= w->end) return 0;
    unsigned j;
    int jl = utf8_next(w->text + w->end, w->n - w->end, &j);
    if (w->end + jl != s) return 0;
    int cls = joiner_class(j);
    if (cls == J_NONE) return 0;
    *jcp = j;
    if (cls == J_EXTEND) return 1;
    unsigned a = cp_before(w->text, w->end), b;
    utf8_next(w->text + s, w->n - s, &b);
    int da = is_digit_cp(a), db = is_digit_cp(b);
    if (cls == J_MIDNUM) return da && db;
    return da == db; /* MidNumLet: two letters or two digits */
}

/* Hands the pending word on (without a possessive 's after a letter). */
static int words_flush(words_ctx *w) {
    if (!w->len) return SQLITE_OK;
    int len = w->len, end = w->end;
    if (w->pieces > 1 && joiner_ascii(w->last_joiner) == '\'' && w->last_piece_len == 1 &&
        w->buf[len - 1] == 's') {
        /* the joiner is one byte in buf (joiner_ascii) */
        len -= 2;
        end = w->last_join;
    }
    w->len = 0;
    return w->cb(w->ctx, 0, w->buf, len, w->start, end);
}

/* unicode61's token callback: joins or starts a word. */
static int words_piece(void *p, int tflags, const char *tok, int n, int s, int e) {
    (void)tflags;
    words_ctx *w = p;
    unsigned j = 0;
    if (joins(w, s, &j) && w->len + 1 + n <= WORD_MAX) {
        w->buf[w->len++] = joiner_ascii(j);
        w->last_join = w->end;
        w->last_joiner = j;
        memcpy(w->buf + w->len, tok, (size_t)n);
        w->len += n;
        w->last_piece_len = n;
        w->end = e;
        w->pieces++;
        return SQLITE_OK;
    }
    int rc = words_flush(w);
    if (rc != SQLITE_OK) return rc;
    if (n > WORD_MAX) return w->cb(w->ctx, 0, tok, n, s, e); /* too long to join */
    memcpy(w->buf, tok, (size_t)n);
    w->len = n;
    w->start = s;
    w->end = e;
    w->pieces = 1;
    w->last_join = -1;
    w->last_joiner = 0;
    w->last_piece_len = n;
    return SQLITE_OK;
}

/* xTokenize of "sembed_words": unicode61's pieces, joined into words. */
static int words_tokenize(Fts5Tokenizer *p, void *ctx, int flags, const char *text, int n, xtoken_fn cb) {
    words_tok *t = (words_tok *)p;
    words_ctx w;
    w.ctx = ctx;
    w.cb = cb;
    w.text = (const unsigned char *)text;
    w.n = n;
    w.len = 0;
    int rc = t->u61.xTokenize(t->u61_tok, &w, flags, text, n, words_piece);
    if (rc == SQLITE_OK) rc = words_flush(&w);
    return rc;
}

/* ---- sembed: CJK bigrams, the rest stemmed ---- */

/* A "sembed" tokenizer instance: the porter tokenizer it hands non-CJK
 * text to (over unicode61, or over sembed_words with the argument "2"). */
typedef struct sem_tok {
    fts5_tokenizer inner;
    Fts5Tokenizer *inner_tok;
} sem_tok;

/* xCreate: makes the inner porter tokenizer. The table's tokenize= option
 * after "sembed" may say "2" (UAX #29 words, keyword format 2); anything
 * else, or nothing, is format 1 (unicode61's pieces). */
static int tok_create(void *user, const char **argv, int argc, Fts5Tokenizer **out) {
    fts5_api *api = user;
    *out = NULL;
    sem_tok *t = se_calloc(1, sizeof *t);
    if (!t) return SQLITE_NOMEM;
    void *pu = NULL;
    static const char *args1[] = {"unicode61", "remove_diacritics", "2"}, *args2[] = {"sembed_words"};
    int v2 = argc >= 1 && !strcmp(argv[0], "2");
    int rc = api->xFindTokenizer(api, "porter", &pu, &t->inner);
    if (rc == SQLITE_OK) rc = t->inner.xCreate(pu, v2 ? args2 : args1, v2 ? 1 : 3, &t->inner_tok);
    if (rc != SQLITE_OK) {
        se_free(t);
        return rc;
    }
    *out = (Fts5Tokenizer *)t;
    return SQLITE_OK;
}

/* xDelete. */
static void tok_delete(Fts5Tokenizer *p) {
    sem_tok *t = (sem_tok *)p;
    if (!t) return;
    if (t->inner_tok) t->inner.xDelete(t->inner_tok);
    se_free(t);
}

/* Passes the inner tokenizer's tokens on with their offsets moved from
 * the run to the whole text. */
typedef struct shift_ctx {
    void *ctx;
    xtoken_fn cb;
    int off;
} shift_ctx;

static int shift_cb(void *p, int tflags, const char *tok, int n, int s, int e) {
    shift_ctx *w = p;
    return w->cb(w->ctx, tflags, tok, n, s + w->off, e + w->off);
}

/* xTokenize: CJK runs as bigrams, other runs through the inner porter
 * tokenizer (over unicode61, or over sembed_words). */
static int tok_tokenize(Fts5Tokenizer *p, void *ctx, int flags, const char *text, int n, xtoken_fn cb) {
    sem_tok *t = (sem_tok *)p;
    const unsigned char *s = (const unsigned char *)text;
    int i = 0;
    while (i < n) {
        int j = i;
        unsigned cp = 0;
        int len = 0;
        while (j < n) { /* the run of other text */
            len = utf8_next(s + j, n - j, &cp);
            if (is_cjk(cp)) break;
            j += len;
        }
        if (j > i) {
            shift_ctx w = {ctx, cb, i};
            int rc = t->inner.xTokenize(t->inner_tok, &w, flags, text + i, j - i, shift_cb);
            if (rc != SQLITE_OK) return rc;
        }
        /* the CJK run starting at j: bigrams, or the lone character */
        int prev = -1, count = 0;
        while (j < n) {
            len = utf8_next(s + j, n - j, &cp);
            if (!is_cjk(cp)) break;
            if (prev >= 0) {
                int rc = cb(ctx, 0, text + prev, j + len - prev, prev, j + len);
                if (rc != SQLITE_OK) return rc;
            }
            prev = j;
            count++;
            j += len;
        }
        if (count == 1) {
            int rc = cb(ctx, 0, text + prev, j - prev, prev, j);
            if (rc != SQLITE_OK) return rc;
        }
        i = j;
    }
    return SQLITE_OK;
}

se_status se_fts_register(sqlite3 *db, const char *path, fts5_api **api_out, se_error *err) {
    fts5_api *api = fts5_api_of(db);
    if (api_out) *api_out = api;
    if (!api)
        return se_err(err, SE_E_UNSUPPORTED,
                      "%s: this SQLite (%s) has no FTS5, which the keyword index needs (Debian's libsqlite3 has it)",
                      path, sqlite3_libversion());
    fts5_tokenizer tw = {words_create, words_delete, words_tokenize}, tk = {tok_create, tok_delete, tok_tokenize};
    if (api->xCreateTokenizer(api, "sembed_words", api, &tw, NULL) != SQLITE_OK ||
        api->xCreateTokenizer(api, "sembed", api, &tk, NULL) != SQLITE_OK)
        return se_err(err, SE_E_IO, "%s: cannot register the keyword tokenizer: %s", path, sqlite3_errmsg(db));
    return SE_OK;
}

/* Adapts FTS5's token callback to se_fts_token_fn. */
typedef struct adapt_ctx {
    se_fts_token_fn fn;
    void *user;
} adapt_ctx;

static int adapt_cb(void *p, int tflags, const char *tok, int n, int s, int e) {
    (void)tflags;
    adapt_ctx *a = p;
    return a->fn(a->user, tok, n, s, e) ? SQLITE_DONE : SQLITE_OK;
}

se_status se_fts_tokenize(fts5_api *api, const char *text, size_t len, int query, se_fts_token_fn fn, void *user,
                          se_error *err) {
    if (len > 0x7fffffff) return se_err(err, SE_E_RANGE, "keyword tokenizer: text of %zu bytes (at most 2 GiB)", len);
    void *pu = NULL;
    fts5_tokenizer tk;
    if (!api || api->xFindTokenizer(api, "sembed", &pu, &tk) != SQLITE_OK)
        return se_err(err, SE_E_INTERNAL, "keyword tokenizer: not registered on this connection");
    Fts5Tokenizer *t = NULL;
    static const char *v2[] = {"2"};
    if (tk.xCreate(pu, v2, 1, &t) != SQLITE_OK) return se_err(err, SE_E_NOMEM, "keyword tokenizer: cannot create");
    adapt_ctx a = {fn, user};
    int rc = tk.xTokenize(t, &a, query ? FTS5_TOKENIZE_QUERY : FTS5_TOKENIZE_DOCUMENT, text, (int)len, adapt_cb);
    tk.xDelete(t);
    if (rc != SQLITE_OK && rc != SQLITE_DONE) return se_err(err, SE_E_NOMEM, "keyword tokenizer: failed (%d)", rc);
    return SE_OK;
}

/* The distinct terms seen so far (an open-addressing set of the token
 * texts) and the expression under construction. */
typedef struct expr_build {
    const char *text;
    char **keys; /* set_cap slots, a power of two */
    size_t set_cap;
    size_t n_terms;
    char *buf;
    size_t len, cap;
    int oom;
} expr_build;


static uint64_t fnv1a(const char *s, int n) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Appends n bytes to the expression; 0 or -1 (out of memory). */
static int buf_put(expr_build *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap) cap *= 2;
        char *t = se_realloc(b->buf, cap);
        if (!t) return -1;
        b->buf = t;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = 0;
    return 0;
}

/* Adds a term (its token text, and its span in the query) unless seen:
 * `"span"` with quotes doubled, joined by OR. Stops at SE_FTS_TERMS_MAX. */
static int expr_term(void *user, const char *tok, int n, int start, int end) {
    expr_build *b = user;
    size_t h = (size_t)(fnv1a(tok, n) & (b->set_cap - 1));
    while (b->keys[h]) {
        if ((int)strlen(b->keys[h]) == n && !memcmp(b->keys[h], tok, (size_t)n)) return 0;
        h = (h + 1) & (b->set_cap - 1);
    }
    b->keys[h] = se_malloc((size_t)n + 1);
    if (!b->keys[h]) {
        b->oom = 1;
        return 1;
    }
    memcpy(b->keys[h], tok, (size_t)n);
    b->keys[h][n] = 0;
    if (b->n_terms && buf_put(b, " OR ", 4)) goto oom;
    if (buf_put(b, "\"", 1)) goto oom;
    for (int i = start; i < end; i++)
        if (buf_put(b, b->text + i, 1) || (b->text[i] == '"' && buf_put(b, "\"", 1))) goto oom;
    if (buf_put(b, "\"", 1)) goto oom;
    return ++b->n_terms >= SE_FTS_TERMS_MAX;
oom:
    b->oom = 1;
    return 1;
}

se_status se_fts_match_expr(fts5_api *api, const char *text, char **expr, se_error *err) {
    *expr = NULL;
    /* at most min(bytes, SE_FTS_TERMS_MAX) distinct terms: the set stays at
     * most half full */
    size_t len = strlen(text), terms = len < SE_FTS_TERMS_MAX ? len : SE_FTS_TERMS_MAX, cap = 16;
    while (cap < 2 * terms + 2) cap *= 2;
    expr_build b = {text, se_calloc(cap, sizeof(char *)), cap, 0, NULL, 0, 0, 0};
    if (!b.keys) return se_err(err, SE_E_NOMEM, "out of memory");
    se_status st = se_fts_tokenize(api, text, len, 1, expr_term, &b, err);
    if (!st && b.oom) st = se_err(err, SE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < cap; i++) se_free(b.keys[i]);
    se_free(b.keys);
    if (st || !b.n_terms) {
        se_free(b.buf);
        return st;
    }
    *expr = b.buf;
    return SE_OK;
}

se_status se_fts_search(sqlite3 *db, const char *path, const char *expr, const char *filter_sql,
                        void (*bind)(sqlite3_stmt *, const void *), const void *bind_user, size_t limit,
                        sqlite3_stmt **cache, se_fts_hit **hits, size_t *n, se_error *err) {
    *hits = NULL;
    *n = 0;
    sqlite3_stmt *q = NULL;
    bool cached = !filter_sql && cache;
    if (cached && *cache) {
        q = *cache;
        goto bound;
    }
    static const char head_plain[] = "SELECT fts.rowid, bm25(fts) FROM fts WHERE fts MATCH ?99",
                      head_join[] = "SELECT fts.rowid, bm25(fts) FROM fts JOIN docs d ON d.id = fts.rowid"
                                    " WHERE fts MATCH ?99",
                      tail[] = " ORDER BY bm25(fts), fts.rowid LIMIT ?98";
    const char *head = filter_sql ? head_join : head_plain;
    size_t cap = strlen(head) + (filter_sql ? strlen(filter_sql) : 0) + sizeof tail;
    char *sql = se_malloc(cap);
    if (!sql) return se_err(err, SE_E_NOMEM, "out of memory");
    snprintf(sql, cap, "%s%s%s", head, filter_sql ? filter_sql : "", tail);
    int prc = sqlite3_prepare_v3(db, sql, -1, cached ? SQLITE_PREPARE_PERSISTENT : 0, &q, NULL);
    se_free(sql);
    if (prc) return se_err(err, SE_E_IO, "%s: cannot run the keyword search: %s", path, sqlite3_errmsg(db));
    if (cached) *cache = q;
    if (bind) bind(q, bind_user);
bound:
    sqlite3_bind_text(q, 99, expr, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 98, limit > INT64_MAX ? INT64_MAX : (sqlite3_int64)limit);
    se_status st = SE_OK;
    se_fts_hit *v = NULL;
    size_t nv = 0, cv = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (nv == cv) {
            cv = cv ? cv * 2 : 64;
            se_fts_hit *t = se_realloc(v, cv * sizeof *t);
            if (!t) {
                st = se_err(err, SE_E_NOMEM, "out of memory");
                break;
            }
            v = t;
        }
        v[nv++] = (se_fts_hit){sqlite3_column_int64(q, 0), (float)-sqlite3_column_double(q, 1)};
    }
    if (!st && rc != SQLITE_DONE)
        st = se_err(err, SE_E_IO, "%s: keyword search failed: %s", path, sqlite3_errmsg(db));
    if (cached) {
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
    } else {
        sqlite3_finalize(q);
    }
    if (st) {
        se_free(v);
        return st;
    }
    *hits = v;
    *n = nv;
    return SE_OK;
}
