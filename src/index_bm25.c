/*
 * index_bm25.c - the index's in-memory BM25 scorer (index_bm25.h).
 *
 * Why not FTS5's bm25(): it costs ~4 us per matching document, and a
 * question (an OR of its terms) matches most of a corpus: 13-18 ms per
 * SciFact query against 0.25-0.6 ms for the vector search. Here a query
 * scores into a dense array over the documents its terms touch and keeps
 * the best by a bounded heap: well under a millisecond on SciFact.
 *
 * Layout: a dictionary (term text -> id, open addressing over an arena),
 * per term its postings (document slot, term frequency) and its live
 * document frequency; per document slot its row id, length in tokens,
 * liveness and its distinct term ids (so that a delete can lower the
 * document frequencies). A delete tombstones the slot; when tombstones
 * outnumber live documents the postings are compacted. Scores therefore
 * always equal those of a scorer freshly built over the live documents.
 *
 * Two fields, text and title (BEIR's Elasticsearch layout): a title token
 * is its own term, keyed by the byte FIELD_TITLE before the token's text,
 * so that each field has its own postings and document frequencies; each
 * document has a length per field, and each field its own document count
 * and total length (index_bm25.h has the formula).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "index_bm25.h"

typedef struct posting {
    uint32_t slot, tf;
} posting;

typedef struct term {
    uint32_t off, len; /* text in the arena */
    posting *p;
    uint32_t n, cap;
    uint32_t df;   /* live documents containing it */
    uint32_t last; /* the slot of its last posting (NO_SLOT: none since the last compaction) */
    uint8_t field; /* 0 text, 1 title */
} term;

/* The byte before a title term's text in the dictionary. */
#define FIELD_TITLE '\x01'

#define NO_SLOT UINT32_MAX
#define EMPTY_KEY INT64_MIN

struct se_bm25 {
    fts5_api *api;
    unsigned flags;
    /* dictionary */
    char *arena;
    size_t arena_len, arena_cap;
    term *terms;
    uint32_t n_terms, terms_cap;
    uint32_t *tmap; /* term id + 1, 0 empty; tmap_cap a power of two */
    size_t tmap_cap;
    /* documents by slot */
    int64_t *rowid;
    uint32_t *len[2]; /* per field: text, title */
    uint32_t **dterms;
    uint32_t *dnt;
    uint8_t *alive;
    uint32_t n_slots, slots_cap, n_live, n_dead;
    uint64_t total_len[2]; /* per field, over the live documents */
    uint32_t n_with[2];    /* live documents with at least one token in the field (Lucene's docCount) */
    char *kbuf;            /* a title term's key: FIELD_TITLE + the token */
    size_t kbuf_cap;
    /* row id -> slot (NO_SLOT: removed; the key stays as a tombstone) */
    int64_t *dkey;
    uint32_t *dval;
    size_t dmap_cap, dmap_used;
    /* per-search scratch: an accumulator per slot, a query count per term */
    double *acc;
    uint32_t *touched;
    uint32_t *qcnt;
    uint32_t qcnt_cap;
};

/* FNV-1a of n bytes. */
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* A 64-bit mix of a row id. */
static uint64_t hash_id(int64_t x) {
    uint64_t z = (uint64_t)x + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

se_bm25 *se_bm25_new(fts5_api *api, unsigned flags) {
    se_bm25 *b = se_calloc(1, sizeof *b);
    if (!b) return NULL;
    b->api = api;
    b->flags = flags;
    return b;
}

void se_bm25_free(se_bm25 *b) {
    if (!b) return;
    for (uint32_t i = 0; i < b->n_terms; i++) se_free(b->terms[i].p);
    for (uint32_t i = 0; i < b->n_slots; i++) se_free(b->dterms[i]);
    se_free(b->arena);
    se_free(b->terms);
    se_free(b->tmap);
    se_free(b->rowid);
    se_free(b->len[0]);
    se_free(b->len[1]);
    se_free(b->kbuf);
    se_free(b->dterms);
    se_free(b->dnt);
    se_free(b->alive);
    se_free(b->dkey);
    se_free(b->dval);
    se_free(b->acc);
    se_free(b->touched);
    se_free(b->qcnt);
    se_free(b);
}

size_t se_bm25_count(const se_bm25 *b) { return b ? b->n_live : 0; }

/* Grows *p (elements of size sz, capacity *cap) to hold need; 0 or -1. */
static int grow(void **p, uint32_t *cap, uint32_t need, size_t sz) {
    if (need <= *cap) return 0;
    uint32_t c = *cap ? *cap : 16;
    while (c < need) c = c > UINT32_MAX / 2 ? UINT32_MAX : c * 2;
    void *t = se_realloc(*p, (size_t)c * sz);
    if (!t) return -1;
    *p = t;
    *cap = c;
    return 0;
}

/* ---- dictionary ---- */

/* The slot of tok (n bytes) in tmap: its entry or the empty one to fill. */
static size_t tmap_find(const se_bm25 *b, const char *tok, size_t n) {
    size_t h = (size_t)(hash_bytes(tok, n) & (b->tmap_cap - 1));
    while (b->tmap[h]) {
        const term *t = &b->terms[b->tmap[h] - 1];
        if (t->len == n && !memcmp(b->arena + t->off, tok, n)) return h;
        h = (h + 1) & (b->tmap_cap - 1);
    }
    return h;
}

/* The dictionary key of tok (n bytes) in field f: tok itself for the
 * text, FIELD_TITLE + tok for the title (in b->kbuf; *kn its length).
 * NULL when out of memory. */
static const char *field_key(se_bm25 *b, const char *tok, size_t n, int f, size_t *kn) {
    *kn = n;
    if (!f) return tok;
    if (n + 1 > b->kbuf_cap) {
        size_t c = b->kbuf_cap ? b->kbuf_cap : 64;
        while (c < n + 1) c *= 2;
        char *t = se_realloc(b->kbuf, c);
        if (!t) return NULL;
        b->kbuf = t;
        b->kbuf_cap = c;
    }
    b->kbuf[0] = FIELD_TITLE;
    memcpy(b->kbuf + 1, tok, n);
    *kn = n + 1;
    return b->kbuf;
}

/* The id of tok, or -1 when unknown. */
static int64_t term_lookup(const se_bm25 *b, const char *tok, size_t n) {
    if (!b->tmap_cap) return -1;
    size_t h = tmap_find(b, tok, n);
    return b->tmap[h] ? (int64_t)b->tmap[h] - 1 : -1;
}

/* Doubles the dictionary's hash table; 0 or -1. */
static int tmap_grow(se_bm25 *b) {
    size_t cap = b->tmap_cap ? b->tmap_cap * 2 : 1024;
    uint32_t *m = se_calloc(cap, sizeof *m);
    if (!m) return -1;
    se_free(b->tmap);
    b->tmap = m;
    b->tmap_cap = cap;
    for (uint32_t i = 0; i < b->n_terms; i++) {
        const term *t = &b->terms[i];
        size_t h = (size_t)(hash_bytes(b->arena + t->off, t->len) & (cap - 1));
        while (m[h]) h = (h + 1) & (cap - 1);
        m[h] = i + 1;
    }
    return 0;
}

/* The id of the key tok (n bytes, field_key's) of field f, added when
 * new; -1 when out of memory. */
static int64_t term_intern(se_bm25 *b, const char *tok, size_t n, int f) {
    if ((size_t)(b->n_terms + 1) * 2 > b->tmap_cap && tmap_grow(b)) return -1;
    size_t h = tmap_find(b, tok, n);
    if (b->tmap[h]) return (int64_t)b->tmap[h] - 1;
    if (b->n_terms == UINT32_MAX - 1 || n > UINT32_MAX || b->arena_len + n > UINT32_MAX) return -1;
    if (b->arena_len + n > b->arena_cap) {
        size_t c = b->arena_cap ? b->arena_cap : 65536;
        while (c < b->arena_len + n) c *= 2;
        char *t = se_realloc(b->arena, c);
        if (!t) return -1;
        b->arena = t;
        b->arena_cap = c;
    }
    if (grow((void **)&b->terms, &b->terms_cap, b->n_terms + 1, sizeof *b->terms)) return -1;
    memcpy(b->arena + b->arena_len, tok, n);
    b->terms[b->n_terms] = (term){(uint32_t)b->arena_len, (uint32_t)n, NULL, 0, 0, 0, UINT32_MAX, (uint8_t)f};
    b->arena_len += n;
    b->tmap[h] = ++b->n_terms;
    return (int64_t)b->n_terms - 1;
}

/* ---- row id -> slot ---- */

/* The index of doc in dkey, or of the empty entry to fill. */
static size_t dmap_find(const se_bm25 *b, int64_t doc) {
    size_t h = (size_t)(hash_id(doc) & (b->dmap_cap - 1));
    while (b->dkey[h] != EMPTY_KEY && b->dkey[h] != doc) h = (h + 1) & (b->dmap_cap - 1);
    return h;
}

/* doc's slot, or NO_SLOT. */
static uint32_t dmap_get(const se_bm25 *b, int64_t doc) {
    if (!b->dmap_cap) return NO_SLOT;
    size_t h = dmap_find(b, doc);
    return b->dkey[h] == doc ? b->dval[h] : NO_SLOT;
}

/* Rebuilds the map at capacity cap from the live slots; 0 or -1. */
static int dmap_rebuild(se_bm25 *b, size_t cap) {
    int64_t *k = se_malloc_array(cap, sizeof *k);
    uint32_t *v = se_malloc_array(cap, sizeof *v);
    if (!k || !v) {
        se_free(k);
        se_free(v);
        return -1;
    }
    for (size_t i = 0; i < cap; i++) k[i] = EMPTY_KEY;
    se_free(b->dkey);
    se_free(b->dval);
    b->dkey = k;
    b->dval = v;
    b->dmap_cap = cap;
    b->dmap_used = 0;
    for (uint32_t s = 0; s < b->n_slots; s++) {
        if (!b->alive[s]) continue;
        size_t h = dmap_find(b, b->rowid[s]);
        k[h] = b->rowid[s];
        v[h] = s;
        b->dmap_used++;
    }
    return 0;
}

/* Maps doc to slot; 0 or -1. */
static int dmap_put(se_bm25 *b, int64_t doc, uint32_t slot) {
    if ((b->dmap_used + 1) * 2 > b->dmap_cap) {
        size_t cap = b->dmap_cap ? b->dmap_cap : 1024;
        while ((size_t)(b->n_live + 1) * 4 > cap) cap *= 2;
        if (dmap_rebuild(b, cap)) return -1;
    }
    size_t h = dmap_find(b, doc);
    if (b->dkey[h] == EMPTY_KEY) {
        b->dkey[h] = doc;
        b->dmap_used++;
    }
    b->dval[h] = slot;
    return 0;
}

/* ---- tokens ---- */

/* Lucene's English stop words (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET). */
static const char *const STOP[] = {"a",    "an",    "and",  "are",   "as",    "at",   "be",   "but",  "by",
                                   "for",  "if",    "in",   "into",  "is",    "it",   "no",   "not",  "of",
                                   "on",   "or",    "such", "that",  "the",   "their", "then", "there", "these",
                                   "they", "this",  "to",   "was",   "will",  "with"};

/* Whether the n bytes at s are a stop word (ASCII case-insensitive): a
 * token's first letter and length rule out almost every entry. */
static int is_stop(const char *s, int n) {
    if (n < 1 || n > 5) return 0;
    char w[6];
    for (int i = 0; i < n; i++) {
        char c = s[i];
        w[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    w[n] = 0;
    /* STOP[i][n] is in bounds once strncmp has matched n characters */
    for (size_t i = 0; i < sizeof STOP / sizeof *STOP; i++)
        if (STOP[i][0] == w[0] && !strncmp(STOP[i], w, (size_t)n) && STOP[i][n] == 0) return 1;
    return 0;
}

/* Whether the token spanning [start, end) of text is dropped: a stop word,
 * or the s of a possessive 's / ’s. */
static int dropped(const char *text, int start, int end) {
    if (is_stop(text + start, end - start)) return 1;
    if (end - start == 1 && (text[start] == 's' || text[start] == 'S')) {
        if (start >= 1 && text[start - 1] == '\'') return 1;
        if (start >= 3 && !memcmp(text + start - 3, "\xE2\x80\x99", 3)) return 1;
    }
    return 0;
}

/* Collects a text's distinct terms. A document's (query false) go
 * straight into the postings of its slot, its length counted; a query's
 * are looked up, their repeats counted in qcnt. */
typedef struct tok_ctx {
    se_bm25 *b;
    const char *text;
    int query; /* look up only (in both fields); stop at SE_FTS_TERMS_MAX distinct terms */
    int field; /* a document's: 0 text, 1 title */
    uint32_t slot; /* the document's */
    uint32_t len;  /* its tokens */
    uint32_t *ids; /* distinct term ids, first seen first */
    uint32_t n, cap;
    uint32_t distinct;
    int oom;
} tok_ctx;

static int collect(void *user, const char *tok, int n, int start, int end) {
    tok_ctx *c = user;
    se_bm25 *b = c->b;
    if ((b->flags & SE_BM25_STOPWORDS) && dropped(c->text, start, end)) return 0;
    int64_t id;
    size_t kn;
    const char *key;
    if (c->query) {
        int fresh = 0; /* a term new to this query, in either field */
        for (int f = 0; f < 2; f++) {
            if (!(key = field_key(b, tok, (size_t)n, f, &kn))) goto oom;
            id = term_lookup(b, key, kn);
            if (id < 0) continue; /* in no document's field: adds nothing */
            if (b->qcnt[id]) {
                b->qcnt[id]++;
                continue;
            }
            if (grow((void **)&c->ids, &c->cap, c->n + 1, sizeof *c->ids)) goto oom;
            c->ids[c->n++] = (uint32_t)id;
            b->qcnt[id] = 1;
            fresh = 1;
        }
        return fresh && ++c->distinct >= SE_FTS_TERMS_MAX;
    }
    if (!(key = field_key(b, tok, (size_t)n, c->field, &kn))) goto oom;
    id = term_intern(b, key, kn, c->field);
    if (id < 0 || c->len == UINT32_MAX) goto oom;
    c->len++;
    term *t = &b->terms[id];
    if (t->last == c->slot) { /* seen in this document: one more */
        t->p[t->n - 1].tf++;
        return 0;
    }
    if (grow((void **)&t->p, &t->cap, t->n + 1, sizeof *t->p) ||
        grow((void **)&c->ids, &c->cap, c->n + 1, sizeof *c->ids))
        goto oom;
    t->p[t->n++] = (posting){c->slot, 1};
    t->df++;
    t->last = c->slot;
    c->ids[c->n++] = (uint32_t)id;
    return 0;
oom:
    c->oom = 1;
    return 1;
}

/* ---- documents ---- */

/* Takes slot s out: lower its terms' document frequencies. */
static void slot_remove(se_bm25 *b, uint32_t s) {
    for (uint32_t i = 0; i < b->dnt[s]; i++) b->terms[b->dterms[s][i]].df--;
    se_free(b->dterms[s]);
    b->dterms[s] = NULL;
    b->dnt[s] = 0;
    b->alive[s] = 0;
    for (int f = 0; f < 2; f++) {
        b->total_len[f] -= b->len[f][s];
        b->n_with[f] -= b->len[f][s] > 0;
    }
    b->n_live--;
    b->n_dead++;
}

se_status se_bm25_add(se_bm25 *b, int64_t doc, const char *text, se_error *err) {
    return se_bm25_add_titled(b, doc, NULL, text, err);
}

se_status se_bm25_add_titled(se_bm25 *b, int64_t doc, const char *title, const char *text, se_error *err) {
    size_t tl = strlen(text), hl = title ? strlen(title) : 0;
    if (tl > 0x7fffffff) return se_err(err, SE_E_RANGE, "keyword index: text of %zu bytes (at most 2 GiB)", tl);
    if (hl > 0x7fffffff) return se_err(err, SE_E_RANGE, "keyword index: title of %zu bytes (at most 2 GiB)", hl);
    if (b->n_slots >= UINT32_MAX - 1) return se_err(err, SE_E_RANGE, "keyword index: too many documents");
    uint32_t old = dmap_get(b, doc);
    if (old != NO_SLOT) slot_remove(b, old);
    uint32_t s = b->n_slots, cap = b->slots_cap;
    if (s + 1 > cap) {
        uint32_t c2 = cap;
        if (grow((void **)&b->rowid, &c2, s + 1, sizeof *b->rowid)) goto oom0;
        c2 = cap;
        if (grow((void **)&b->len[0], &c2, s + 1, sizeof *b->len[0])) goto oom0;
        c2 = cap;
        if (grow((void **)&b->len[1], &c2, s + 1, sizeof *b->len[1])) goto oom0;
        c2 = cap;
        if (grow((void **)&b->dterms, &c2, s + 1, sizeof *b->dterms)) goto oom0;
        c2 = cap;
        if (grow((void **)&b->dnt, &c2, s + 1, sizeof *b->dnt)) goto oom0;
        c2 = cap;
        if (grow((void **)&b->alive, &c2, s + 1, sizeof *b->alive)) goto oom0;
        c2 = cap;
        if (grow((void **)&b->touched, &c2, s + 1, sizeof *b->touched)) goto oom0;
        double *a = se_realloc(b->acc, (size_t)c2 * sizeof *a);
        if (!a) goto oom0;
        for (uint32_t i = cap; i < c2; i++) a[i] = 0;
        b->acc = a;
        b->slots_cap = c2;
    }
    /* the postings of slot s are appended as the tokens come; a failure
     * leaves them half-made (the scorer is then freed, not used) */
    tok_ctx c = {b, title, 0, 1, s, 0, NULL, 0, 0, 0, 0};
    se_status st = hl ? se_fts_tokenize(b->api, title, hl, 0, collect, &c, err) : SE_OK;
    uint32_t title_len = c.len;
    c.text = text;
    c.field = 0;
    c.len = 0;
    if (!st && !c.oom) st = se_fts_tokenize(b->api, text, tl, 0, collect, &c, err);
    if (!st && (c.oom || dmap_put(b, doc, s))) st = se_err(err, SE_E_NOMEM, "out of memory building the keyword scorer");
    if (st) {
        se_free(c.ids);
        return st;
    }
    b->rowid[s] = doc;
    b->len[0][s] = c.len;
    b->len[1][s] = title_len;
    b->dterms[s] = c.ids;
    b->dnt[s] = c.n;
    b->alive[s] = 1;
    b->n_slots++;
    b->n_live++;
    for (int f = 0; f < 2; f++) {
        b->total_len[f] += b->len[f][s];
        b->n_with[f] += b->len[f][s] > 0;
    }
    return SE_OK;
oom0:
    return se_err(err, SE_E_NOMEM, "out of memory building the keyword scorer");
}

/* Drops the removed slots: live documents renumbered in order, postings
 * filtered and renumbered, the row id map rebuilt. 0 or -1. */
static int compact(se_bm25 *b) {
    uint32_t *map = se_malloc_array(b->n_slots ? b->n_slots : 1, sizeof *map);
    if (!map) return -1;
    uint32_t ns = 0;
    for (uint32_t s = 0; s < b->n_slots; s++) {
        if (!b->alive[s]) {
            map[s] = NO_SLOT;
            continue;
        }
        map[s] = ns;
        b->rowid[ns] = b->rowid[s];
        b->len[0][ns] = b->len[0][s];
        b->len[1][ns] = b->len[1][s];
        b->dterms[ns] = b->dterms[s];
        b->dnt[ns] = b->dnt[s];
        b->alive[ns] = 1;
        ns++;
    }
    for (uint32_t i = 0; i < b->n_terms; i++) {
        term *t = &b->terms[i];
        t->last = NO_SLOT; /* slot numbers are reused from here on */
        uint32_t k = 0;
        for (uint32_t j = 0; j < t->n; j++)
            if (map[t->p[j].slot] != NO_SLOT) t->p[k++] = (posting){map[t->p[j].slot], t->p[j].tf};
        t->n = k;
    }
    se_free(map);
    b->n_slots = ns;
    b->n_dead = 0;
    size_t cap = 1024;
    while ((size_t)ns * 4 > cap) cap *= 2;
    return dmap_rebuild(b, cap);
}

int se_bm25_remove(se_bm25 *b, int64_t doc) {
    uint32_t s = dmap_get(b, doc);
    if (s == NO_SLOT) return 0;
    slot_remove(b, s);
    size_t h = dmap_find(b, doc);
    b->dval[h] = NO_SLOT;
    if (b->n_dead > 64 && b->n_dead > b->n_live) return compact(b);
    return 0;
}

/* ---- search ---- */

/* A length as Lucene's norms keep it: SmallFloat.byte4ToInt(intToByte4(n)).
 * Below 24 exact; above, 24 + (n - 24) cut to its 4 most significant bits. */
static uint32_t lucene_len(uint32_t n) {
    if (n < 24 + 8) return n; /* fewer than 4 significant bits: exact (and clz of 0 is undefined) */
    uint64_t i = n - 24;
    int bits = 64 - __builtin_clzll(i);
    int shift = bits - 4;
    return (uint32_t)(24 + (((i >> shift) & 0x07) | 0x08) * ((uint64_t)1 << shift));
}

typedef struct cand {
    double score;
    int64_t doc;
} cand;

/* Whether x ranks below y (lower score, or equal and a larger row id). */
static int worse(const cand *x, const cand *y) { return x->score < y->score || (x->score == y->score && x->doc > y->doc); }

/* Restores the min-heap (worst at the root) below i. */
static void sift_down(cand *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(&h[l], &h[m])) m = l;
        if (r < n && worse(&h[r], &h[m])) m = r;
        if (m == i) return;
        cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Best first. */
static int by_rank(const void *a, const void *b) {
    const cand *x = a, *y = b;
    return worse(x, y) ? 1 : worse(y, x) ? -1 : 0;
}

/* Whether doc is in the sorted ids. */
static int in_ids(const int64_t *ids, size_t n, int64_t doc) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < doc)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ids[lo] == doc;
}

se_status se_bm25_search(se_bm25 *b, const char *query, const int64_t *allowed, size_t n_allowed, size_t limit,
                         se_fts_hit **hits, size_t *n, se_error *err) {
    *hits = NULL;
    *n = 0;
    if (!limit || !b->n_live) return SE_OK;
    if (b->qcnt_cap < b->n_terms) {
        uint32_t *q = se_calloc(b->terms_cap, sizeof *q);
        if (!q) return se_err(err, SE_E_NOMEM, "out of memory");
        se_free(b->qcnt);
        b->qcnt = q;
        b->qcnt_cap = b->terms_cap;
    }
    tok_ctx c = {b, query, 1, 0, NO_SLOT, 0, NULL, 0, 0, 0, 0};
    se_status st = se_fts_tokenize(b->api, query, strlen(query), 1, collect, &c, err);
    if (!st && c.oom) st = se_err(err, SE_E_NOMEM, "out of memory");
    uint32_t nt = 0;
    for (uint32_t i = 0; i < c.n; i++) {
        term *t = &b->terms[c.ids[i]];
        uint32_t qtf = b->qcnt[c.ids[i]];
        b->qcnt[c.ids[i]] = 0;
        if (st || !t->df) continue;
        /* the term's field's statistics: a live posting means n_with > 0 */
        const uint32_t *len = b->len[t->field];
        double N = b->n_with[t->field], avgdl = (double)b->total_len[t->field] / N;
        double df = t->df, idf = log(1.0 + (N - df + 0.5) / (df + 0.5));
        double w = idf * ((b->flags & SE_BM25_QUERY_TF) ? qtf : 1);
        for (uint32_t j = 0; j < t->n; j++) {
            uint32_t s = t->p[j].slot;
            if (!b->alive[s]) continue;
            uint32_t dl = (b->flags & SE_BM25_LUCENE_NORMS) ? lucene_len(len[s]) : len[s];
            double tf = t->p[j].tf, norm = SE_BM25_K1 * (1.0 - SE_BM25_B + SE_BM25_B * dl / avgdl);
            if (b->acc[s] == 0) b->touched[nt++] = s;
            b->acc[s] += w * tf / (tf + norm);
        }
    }
    se_free(c.ids);
    if (st) return st;
    /* the best limit of the touched documents: a bounded min-heap */
    size_t cap = limit < nt ? limit : nt;
    cand *h = se_malloc_array(cap ? cap : 1, sizeof *h);
    size_t nh = 0;
    for (uint32_t i = 0; i < nt; i++) {
        uint32_t s = b->touched[i];
        cand x = {b->acc[s], b->rowid[s]};
        b->acc[s] = 0;
        if (!h || (allowed && !in_ids(allowed, n_allowed, x.doc))) continue;
        if (nh < cap) {
            h[nh++] = x;
            if (nh == cap)
                for (size_t k = cap / 2 + 1; k-- > 0;) sift_down(h, nh, k);
        } else if (worse(&h[0], &x)) {
            h[0] = x;
            sift_down(h, nh, 0);
        }
    }
    if (!h) return se_err(err, SE_E_NOMEM, "out of memory");
    if (!nh) {
        se_free(h);
        return SE_OK;
    }
    qsort(h, nh, sizeof *h, by_rank);
    se_fts_hit *out = se_malloc_array(nh, sizeof *out);
    if (!out) {
        se_free(h);
        return se_err(err, SE_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < nh; i++) out[i] = (se_fts_hit){h[i].doc, (float)h[i].score};
    se_free(h);
    *hits = out;
    *n = nh;
    return SE_OK;
}
