/*
 * vec_index.c - flat and HNSW vector index in memory (see vec_index.h).
 *
 * Layout: vectors in one 64-byte aligned array, stride = dim rounded up to
 * 16 floats; layer-0 links in one array of (2M + 1) int32 per slot (count,
 * then ids); upper layers per slot in their own array of level * (M + 1).
 * Distances are "smaller is closer": -dot for cosine/dot, squared L2 for l2.
 *
 * Insertion follows the paper's algorithm 1 with the neighbour-selection
 * heuristic (algorithm 4, without keeping pruned connections), as hnswlib
 * does; layer 0 keeps up to 2M links, upper layers M.
 */
#include "vec_index.h"

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "alloc.h"
#include "error.h"
#include "vec_dist.h"

#define VX_MAGIC "SEVXIDX1"
#define VX_VERSION 1u
#define VX_MAX_LEVEL 30

typedef struct cand {
    float d;
    int32_t id;
} cand;

/* A binary heap of candidates; max-heap when max != 0. */
typedef struct heap {
    cand *a;
    size_t n, cap;
    int max;
} heap;

/* Per-search scratch: visited tags and two heaps, pooled and reused. */
typedef struct scratch {
    uint16_t *tags;
    size_t cap;
    uint16_t cur;
    heap h1, h2;
    cand *sel; /* selection buffer */
    size_t sel_cap;
    struct scratch *next;
} scratch;

/* label -> slot, open addressing; key -1 empty, -2 deleted. */
typedef struct lmap {
    int64_t *keys;
    int32_t *vals;
    size_t cap, used, tomb;
} lmap;

struct se_vx {
    size_t dim, stride;
    se_vx_params p;
    uint32_t M0;
    uint64_t rng;
    /* slots */
    size_t n_slots, cap;
    float *vecs;
    int64_t *labels; /* -1: free slot */
    se_vx_payload *pl;
    uint8_t *levels;
    uint8_t *has_vec; /* after se_vx_load: whether the slot got its vector */
    int32_t *links0;  /* cap * (M0 + 1) */
    int32_t **upper;  /* per slot: level * (M + 1), or NULL */
    int32_t *free_slots;
    size_t n_free, free_cap;
    int32_t entry;
    int max_level;
    size_t n_live;
    size_t n_heads; /* live slots with a vector whose payload is chunk 0: one per document */
    lmap map;
    const se_vdist *k;
    pthread_rwlock_t lock;
    pthread_mutex_t pool_lock;
    scratch *pool;
};

/* ---- small helpers ---- */

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int heap_reserve(heap *h, size_t n) {
    if (n <= h->cap) return 0;
    size_t c = h->cap ? h->cap : 64;
    while (c < n) c *= 2;
    cand *a = se_realloc(h->a, c * sizeof *a);
    if (!a) return -1;
    h->a = a;
    h->cap = c;
    return 0;
}

static inline int before(const heap *h, cand x, cand y) { /* x above y in the heap */
    return h->max ? x.d > y.d : x.d < y.d;
}

/* Pushes x; the caller reserved room. */
static void heap_push(heap *h, cand x) {
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(h, x, h->a[p])) break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = x;
}

static cand heap_pop(heap *h) {
    cand top = h->a[0], x = h->a[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        cand best = x;
        if (l < n && before(h, h->a[l], best)) m = l, best = h->a[l];
        if (r < n && before(h, h->a[r], best)) m = r;
        if (m == i) break;
        h->a[i] = h->a[m];
        i = m;
    }
    if (n) h->a[i] = x;
    return top;
}

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static uint64_t lhash(int64_t k) {
    uint64_t x = (uint64_t)k * 0x9E3779B97F4A7C15ull;
    return x ^ (x >> 29);
}

static int lmap_grow(lmap *m) {
    size_t nc = m->cap ? m->cap * 2 : 1024;
    while (m->used * 10 >= nc * 6) nc *= 2;
    int64_t *k = se_malloc_array(nc, sizeof *k);
    int32_t *v = se_malloc_array(nc, sizeof *v);
    if (!k || !v) {
        se_free(k);
        se_free(v);
        return -1;
    }
    for (size_t i = 0; i < nc; i++) k[i] = -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] < 0) continue;
        size_t j = lhash(m->keys[i]) & (nc - 1);
        while (k[j] != -1) j = (j + 1) & (nc - 1);
        k[j] = m->keys[i];
        v[j] = m->vals[i];
    }
    se_free(m->keys);
    se_free(m->vals);
    m->keys = k;
    m->vals = v;
    m->cap = nc;
    m->tomb = 0;
    return 0;
}

static int32_t lmap_get(const lmap *m, int64_t key) {
    if (!m->cap) return -1;
    size_t j = lhash(key) & (m->cap - 1);
    while (m->keys[j] != -1) {
        if (m->keys[j] == key) return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

static int lmap_put(lmap *m, int64_t key, int32_t val) {
    if ((m->used + m->tomb + 1) * 10 >= m->cap * 7 && lmap_grow(m)) return -1;
    size_t j = lhash(key) & (m->cap - 1);
    while (m->keys[j] >= 0) j = (j + 1) & (m->cap - 1);
    if (m->keys[j] == -2) m->tomb--;
    m->keys[j] = key;
    m->vals[j] = val;
    m->used++;
    return 0;
}

static void lmap_del(lmap *m, int64_t key) {
    if (!m->cap) return;
    size_t j = lhash(key) & (m->cap - 1);
    while (m->keys[j] != -1) {
        if (m->keys[j] == key) {
            m->keys[j] = -2;
            m->used--;
            m->tomb++;
            return;
        }
        j = (j + 1) & (m->cap - 1);
    }
}

static inline int32_t *links_at(const se_vx *vx, int32_t s, int l) {
    if (l == 0) return vx->links0 + (size_t)s * (vx->M0 + 1);
    return vx->upper[s] + (size_t)(l - 1) * (vx->p.M + 1);
}

static inline uint32_t max_links(const se_vx *vx, int l) { return l == 0 ? vx->M0 : vx->p.M; }

static inline const float *vec_at(const se_vx *vx, int32_t s) { return vx->vecs + (size_t)s * vx->stride; }

static inline float dist(const se_vx *vx, const float *a, const float *b) {
    if (vx->p.metric == SE_METRIC_L2) return vx->k->l2sq(a, b, vx->dim);
    return -vx->k->dot(a, b, vx->dim);
}

static inline float score_of(const se_vx *vx, float d) {
    if (vx->p.metric == SE_METRIC_L2) return -sqrtf(d > 0 ? d : 0);
    return -d;
}

/* AVX2 + FMA distances, for CPUs with AVX2 but not AVX-512 (vec_dist.c
 * has the AVX-512 pair and the scalar twins se_vdot_ref / se_vl2sq_ref):
 * two 8-lane accumulators over 16 floats a step, a scalar tail. Pure
 * functions; thread-safe. */
__attribute__((target("avx2,fma"))) static float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) float se_vx_dot_avx2(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    float t = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) t += a[i] * b[i];
    return t;
}

__attribute__((target("avx2,fma"))) float se_vx_l2sq_avx2(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    float t = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) t += (a[i] - b[i]) * (a[i] - b[i]);
    return t;
}

static const se_vdist vx_avx2 = {se_vx_dot_avx2, se_vx_l2sq_avx2};

/* The index's distance pair: vec_dist's dispatch (AVX-512 or the scalar
 * reference), with the AVX2 pair above in place of the reference when the
 * CPU has AVX2 and FMA and SE_KERNELS does not say ref. */
static const se_vdist *vx_kernels(void) {
    const se_vdist *k = se_vdist_get();
    if (k->dot == se_vdot_avx512) return k;
#if defined(__x86_64__) || defined(__i386__)
    const char *env = getenv("SE_KERNELS");
    if (env && !strcmp(env, "ref")) return k;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &vx_avx2;
#endif
    return k;
}

/* Copies v into dst (stride floats, zero padded), normalised for cosine. */
static void store_vec(const se_vx *vx, float *dst, const float *v, bool normalize) {
    memcpy(dst, v, vx->dim * sizeof *dst);
    memset(dst + vx->dim, 0, (vx->stride - vx->dim) * sizeof *dst);
    if (normalize && vx->p.metric == SE_METRIC_COSINE) {
        double ss = 0;
        for (size_t i = 0; i < vx->dim; i++) ss += (double)v[i] * v[i];
        double n = sqrt(ss);
        float inv = (float)(1.0 / (n > 1e-12 ? n : 1e-12));
        for (size_t i = 0; i < vx->dim; i++) dst[i] *= inv;
    }
}

/* ---- scratch pool ---- */

static scratch *scratch_get(se_vx *vx) {
    pthread_mutex_lock(&vx->pool_lock);
    scratch *s = vx->pool;
    if (s) vx->pool = s->next;
    pthread_mutex_unlock(&vx->pool_lock);
    if (!s) {
        s = se_calloc(1, sizeof *s);
        if (!s) return NULL;
        s->h2.max = 1;
    }
    if (s->cap < vx->n_slots) {
        size_t nc = vx->n_slots + vx->n_slots / 2 + 64;
        uint16_t *t = se_calloc(nc, sizeof *t);
        if (!t) {
            pthread_mutex_lock(&vx->pool_lock);
            s->next = vx->pool;
            vx->pool = s;
            pthread_mutex_unlock(&vx->pool_lock);
            return NULL;
        }
        se_free(s->tags);
        s->tags = t;
        s->cap = nc;
        s->cur = 0;
    }
    if (++s->cur == 0) {
        memset(s->tags, 0, s->cap * sizeof *s->tags);
        s->cur = 1;
    }
    s->h1.n = s->h2.n = 0;
    return s;
}

static void scratch_put(se_vx *vx, scratch *s) {
    pthread_mutex_lock(&vx->pool_lock);
    s->next = vx->pool;
    vx->pool = s;
    pthread_mutex_unlock(&vx->pool_lock);
}

static void scratch_free(scratch *s) {
    se_free(s->tags);
    se_free(s->h1.a);
    se_free(s->h2.a);
    se_free(s->sel);
    se_free(s);
}

/* ---- lifecycle ---- */

static se_status vx_alloc(size_t dim, const se_vx_params *p, se_vx **out, se_error *err) {
    if (dim == 0 || dim > (1u << 20)) return se_err(err, SE_E_INVALID, "index: dimension %zu out of range", dim);
    if (p->kind != SE_INDEX_FLAT && p->kind != SE_INDEX_HNSW)
        return se_err(err, SE_E_INVALID, "index: unknown kind %d", (int)p->kind);
    if (p->metric != SE_METRIC_COSINE && p->metric != SE_METRIC_DOT && p->metric != SE_METRIC_L2)
        return se_err(err, SE_E_INVALID, "index: unknown metric %d", (int)p->metric);
    if (p->kind == SE_INDEX_HNSW && (p->M < 2 || p->M > 128))
        return se_err(err, SE_E_RANGE, "index: M = %u (allowed 2..128)", p->M);
    if (p->kind == SE_INDEX_HNSW && (p->ef_construction < 1 || p->ef_construction > 100000))
        return se_err(err, SE_E_RANGE, "index: ef_construction = %u (allowed 1..100000)", p->ef_construction);
    se_vx *vx = se_calloc(1, sizeof *vx);
    if (!vx) return se_err(err, SE_E_NOMEM, "out of memory");
    vx->dim = dim;
    vx->stride = (dim + 15) & ~(size_t)15;
    vx->p = *p;
    vx->M0 = p->kind == SE_INDEX_HNSW ? 2 * p->M : 0;
    vx->rng = p->seed;
    vx->entry = -1;
    vx->max_level = -1;
    vx->k = vx_kernels();
    pthread_rwlock_init(&vx->lock, NULL);
    pthread_mutex_init(&vx->pool_lock, NULL);
    *out = vx;
    return SE_OK;
}

/* Creates an empty index. Thread-safe. */
se_status se_vx_new(size_t dim, const se_vx_params *p, se_vx **out, se_error *err) {
    if (!p || !out) return se_err(err, SE_E_INVALID, "se_vx_new: NULL argument");
    return vx_alloc(dim, p, out, err);
}

/* Frees the index and everything it owns. Not thread-safe with users. */
void se_vx_free(se_vx *vx) {
    if (!vx) return;
    for (size_t s = 0; s < vx->n_slots; s++) se_free(vx->upper[s]);
    se_free(vx->upper);
    free(vx->vecs); /* aligned_alloc */
    se_free(vx->labels);
    se_free(vx->pl);
    se_free(vx->levels);
    se_free(vx->has_vec);
    se_free(vx->links0);
    se_free(vx->free_slots);
    se_free(vx->map.keys);
    se_free(vx->map.vals);
    while (vx->pool) {
        scratch *s = vx->pool;
        vx->pool = s->next;
        scratch_free(s);
    }
    pthread_rwlock_destroy(&vx->lock);
    pthread_mutex_destroy(&vx->pool_lock);
    se_free(vx);
}

/* Grows slot arrays to hold at least n slots (write lock held). */
static int grow(se_vx *vx, size_t n) {
    if (n <= vx->cap) return 0;
    size_t nc = vx->cap ? vx->cap : 256;
    while (nc < n) nc *= 2;
    if (nc > INT32_MAX) return -1;
    float *v = aligned_alloc(64, nc * vx->stride * sizeof(float));
    if (!v) return -1;
    if (vx->vecs) memcpy(v, vx->vecs, vx->n_slots * vx->stride * sizeof(float));
    int64_t *lab = se_realloc(vx->labels, nc * sizeof *lab);
    if (!lab) {
        free(v);
        return -1;
    }
    vx->labels = lab;
    se_vx_payload *pl = se_realloc(vx->pl, nc * sizeof *pl);
    if (!pl) {
        free(v);
        return -1;
    }
    vx->pl = pl;
    uint8_t *lev = se_realloc(vx->levels, nc);
    if (!lev) {
        free(v);
        return -1;
    }
    vx->levels = lev;
    uint8_t *hv = se_realloc(vx->has_vec, nc);
    if (!hv) {
        free(v);
        return -1;
    }
    vx->has_vec = hv;
    int32_t **up = se_realloc(vx->upper, nc * sizeof *up);
    if (!up) {
        free(v);
        return -1;
    }
    vx->upper = up;
    if (vx->M0) {
        int32_t *l0 = se_realloc(vx->links0, nc * (vx->M0 + 1) * sizeof *l0);
        if (!l0) {
            free(v);
            return -1;
        }
        vx->links0 = l0;
    }
    free(vx->vecs);
    vx->vecs = v;
    vx->cap = nc;
    return 0;
}

/* ---- HNSW search ---- */

/* Greedy walk on layer l from (*ep, *epd) to a local minimum. */
static void greedy(const se_vx *vx, const float *q, int l, int32_t *ep, float *epd) {
    int changed = 1;
    while (changed) {
        changed = 0;
        const int32_t *ln = links_at(vx, *ep, l);
        for (int32_t i = 1; i <= ln[0]; i++) {
            float d = dist(vx, q, vec_at(vx, ln[i]));
            if (d < *epd) {
                *epd = d;
                *ep = ln[i];
                changed = 1;
            }
        }
    }
}

/* AVX-512 distances inlined into the search loop: vectors and queries are
 * zero padded to the stride (a multiple of 16), so no tail. */
__attribute__((target("avx512f"), always_inline)) static inline float ip512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_load_ps(a + i), _mm512_load_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_load_ps(a + i + 16), _mm512_load_ps(b + i + 16), s1);
    }
    if (i < n) s0 = _mm512_fmadd_ps(_mm512_load_ps(a + i), _mm512_load_ps(b + i), s0);
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

__attribute__((target("avx512f"), always_inline)) static inline float l2sq512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_load_ps(a + i), _mm512_load_ps(b + i));
        __m512 d1 = _mm512_sub_ps(_mm512_load_ps(a + i + 16), _mm512_load_ps(b + i + 16));
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
    }
    if (i < n) {
        __m512 d = _mm512_sub_ps(_mm512_load_ps(a + i), _mm512_load_ps(b + i));
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

#define DIST_REF(a, b) dist(vx, (a), (b))
#define DIST_512(a, b) (l2 ? l2sq512((a), (b), vx->stride) : -ip512((a), (b), vx->stride))

/* Best-first search of layer l from ep (algorithm 2). Results go to s->h2
 * (a max-heap of at most ef); s->h1 holds the candidates. With allow, only
 * allowed labels enter the results, and the walk stops only once ef
 * results are found and no candidate is closer than the worst. The
 * neighbours of a candidate are gathered first and their vectors
 * prefetched, then measured. Returns -1 on allocation failure. Defined
 * twice: with the dispatched kernels, and with AVX-512 inlined. */
#define DEFINE_SEARCH_LAYER(NAME, ATTR, DIST)                                                            \
    ATTR static int NAME(const se_vx *vx, scratch *s, const float *q, int32_t ep, float epd, size_t ef, int l, \
                         se_vx_allow_fn allow, void *user) {                                             \
        const int l2 = vx->p.metric == SE_METRIC_L2;                                                     \
        (void)l2;                                                                                        \
        heap *cands = &s->h1, *res = &s->h2;                                                             \
        cands->n = res->n = 0;                                                                           \
        if (heap_reserve(cands, vx->n_slots + 1) || heap_reserve(res, ef + 2)) return -1;                \
        s->tags[ep] = s->cur;                                                                            \
        heap_push(cands, (cand){epd, ep});                                                               \
        float bound = INFINITY;                                                                          \
        if (!allow || allow(user, vx->labels[ep])) {                                                     \
            heap_push(res, (cand){epd, ep});                                                             \
            bound = epd;                                                                                 \
        }                                                                                                \
        const size_t lines = vx->stride / 16 < 4 ? vx->stride / 16 : 4;                                  \
        int32_t todo[257];                                                                               \
        while (cands->n) {                                                                               \
            cand c = cands->a[0];                                                                        \
            if (c.d > bound && res->n >= ef) break;                                                      \
            heap_pop(cands);                                                                             \
            const int32_t *ln = links_at(vx, c.id, l);                                                   \
            int32_t cnt = ln[0], nt = 0;                                                                 \
            for (int32_t i = 1; i <= cnt; i++) {                                                         \
                int32_t e = ln[i];                                                                       \
                if (s->tags[e] == s->cur) continue;                                                      \
                s->tags[e] = s->cur;                                                                     \
                todo[nt++] = e;                                                                          \
                const char *pv = (const char *)vec_at(vx, e);                                            \
                for (size_t p = 0; p < lines; p++) __builtin_prefetch(pv + 64 * p);                      \
            }                                                                                            \
            for (int32_t i = 0; i < nt; i++) {                                                           \
                int32_t e = todo[i];                                                                     \
                float d = DIST(q, vec_at(vx, e));                                                        \
                if (res->n < ef || d < bound) {                                                          \
                    heap_push(cands, (cand){d, e});                                                      \
                    if (!allow || allow(user, vx->labels[e])) {                                          \
                        heap_push(res, (cand){d, e});                                                    \
                        if (res->n > ef) heap_pop(res);                                                  \
                        bound = res->a[0].d;                                                             \
                    }                                                                                    \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
        return 0;                                                                                        \
    }

DEFINE_SEARCH_LAYER(search_layer_ref, , DIST_REF)
DEFINE_SEARCH_LAYER(search_layer_512, __attribute__((target("avx512f"))), DIST_512)

static int search_layer(const se_vx *vx, scratch *s, const float *q, int32_t ep, float epd, size_t ef, int l,
                        se_vx_allow_fn allow, void *user) {
    if (vx->k->dot == se_vdot_avx512) return search_layer_512(vx, s, q, ep, epd, ef, l, allow, user);
    return search_layer_ref(vx, s, q, ep, epd, ef, l, allow, user);
}

/* The heuristic neighbour selection: from c[0..n) sorted by distance to
 * the base, keep a candidate only when it is closer to the base than to
 * every one already kept; at most m. Returns the count kept (compacted to
 * the front of c). */
#define DEFINE_SELECT(NAME, ATTR, DIST)                                                                  \
    ATTR static size_t NAME(const se_vx *vx, cand *c, size_t n, size_t m) {                              \
        const int l2 = vx->p.metric == SE_METRIC_L2;                                                     \
        (void)l2;                                                                                        \
        size_t kept = 0;                                                                                 \
        for (size_t i = 0; i < n && kept < m; i++) {                                                     \
            int good = 1;                                                                                \
            for (size_t j = 0; j < kept; j++) {                                                          \
                if (DIST(vec_at(vx, c[i].id), vec_at(vx, c[j].id)) < c[i].d) {                           \
                    good = 0;                                                                            \
                    break;                                                                               \
                }                                                                                        \
            }                                                                                            \
            if (good) c[kept++] = c[i];                                                                  \
        }                                                                                                \
        return kept;                                                                                     \
    }

DEFINE_SELECT(select_ref, , DIST_REF)
DEFINE_SELECT(select_512, __attribute__((target("avx512f"))), DIST_512)

static size_t select_neighbors(const se_vx *vx, cand *c, size_t n, size_t m) {
    if (vx->k->dot == se_vdot_avx512) return select_512(vx, c, n, m);
    return select_ref(vx, c, n, m);
}

static int sel_reserve(scratch *s, size_t n) {
    if (n <= s->sel_cap) return 0;
    size_t c = s->sel_cap ? s->sel_cap : 64;
    while (c < n) c *= 2;
    cand *a = se_realloc(s->sel, c * sizeof *a);
    if (!a) return -1;
    s->sel = a;
    s->sel_cap = c;
    return 0;
}

/* Adds link from -> to on layer l, re-selecting from's links with the
 * heuristic when full. */
static int link_back(se_vx *vx, scratch *s, int32_t from, int32_t to, int l) {
    int32_t *ln = links_at(vx, from, l);
    uint32_t mx = max_links(vx, l);
    for (int32_t i = 1; i <= ln[0]; i++)
        if (ln[i] == to) return 0;
    if ((uint32_t)ln[0] < mx) {
        ln[++ln[0]] = to;
        return 0;
    }
    if (sel_reserve(s, mx + 1)) return -1;
    const float *base = vec_at(vx, from);
    size_t n = 0;
    for (int32_t i = 1; i <= ln[0]; i++) s->sel[n++] = (cand){dist(vx, base, vec_at(vx, ln[i])), ln[i]};
    s->sel[n++] = (cand){dist(vx, base, vec_at(vx, to)), to};
    for (size_t i = 1; i < n; i++) { /* insertion sort: n <= 2M + 1, nearly sorted */
        cand x = s->sel[i];
        size_t j = i;
        while (j > 0 && cand_cmp(&x, &s->sel[j - 1]) < 0) s->sel[j] = s->sel[j - 1], j--;
        s->sel[j] = x;
    }
    size_t k = select_neighbors(vx, s->sel, n, mx);
    ln[0] = (int32_t)k;
    for (size_t i = 0; i < k; i++) ln[i + 1] = s->sel[i].id;
    return 0;
}

/* Draws a level: floor(-ln(U) / ln(M)), capped. */
static int draw_level(se_vx *vx) {
    double u = ((double)(rng_next(&vx->rng) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    int l = (int)floor(-log(u) / log((double)vx->p.M));
    return l > VX_MAX_LEVEL ? VX_MAX_LEVEL : l;
}

/* Links slot s (vector stored, level set, links empty) into the graph. */
static int hnsw_insert(se_vx *vx, int32_t s) {
    int level = vx->levels[s];
    if (vx->entry < 0) {
        vx->entry = s;
        vx->max_level = level;
        return 0;
    }
    scratch *sc = scratch_get(vx);
    if (!sc) return -1;
    const float *q = vec_at(vx, s);
    int32_t ep = vx->entry;
    float epd = dist(vx, q, vec_at(vx, ep));
    for (int l = vx->max_level; l > level; l--) greedy(vx, q, l, &ep, &epd);
    int rc = 0;
    for (int l = level < vx->max_level ? level : vx->max_level; l >= 0; l--) {
        if (l != (level < vx->max_level ? level : vx->max_level)) {
            if (++sc->cur == 0) {
                memset(sc->tags, 0, sc->cap * sizeof *sc->tags);
                sc->cur = 1;
            }
        }
        if (search_layer(vx, sc, q, ep, epd, vx->p.ef_construction, l, NULL, NULL) ||
            sel_reserve(sc, sc->h2.n)) {
            rc = -1;
            break;
        }
        size_t n = sc->h2.n;
        for (size_t i = n; i-- > 0;) sc->sel[i] = heap_pop(&sc->h2); /* ascending */
        ep = sc->sel[0].id;
        epd = sc->sel[0].d;
        size_t k = select_neighbors(vx, sc->sel, n, vx->p.M);
        int32_t *ln = links_at(vx, s, l);
        ln[0] = (int32_t)k;
        int32_t nb[256];
        for (size_t i = 0; i < k; i++) ln[i + 1] = nb[i] = sc->sel[i].id;
        for (size_t i = 0; i < k; i++)
            if (link_back(vx, sc, nb[i], s, l)) {
                rc = -1;
                break;
            }
        if (rc) break;
    }
    if (!rc && level > vx->max_level) {
        vx->entry = s;
        vx->max_level = level;
    }
    scratch_put(vx, sc);
    return rc;
}

/* Refuses non-finite values, and for the unnormalised metrics vectors so
 * large that a score would overflow: |a.b| <= |a||b| and |a-b|^2 <=
 * 2|a|^2 + 2|b|^2 (and every partial sum of a kernel is bounded the same
 * way), so squared norms of at most FLT_MAX / 4 keep every score finite.
 * The norm is summed in double, which cannot overflow here. */
se_status se_vx_check_vector(const se_vx *vx, const float *vec, se_error *err) {
    double ss = 0;
    for (size_t i = 0; i < vx->dim; i++) {
        if (!isfinite(vec[i])) return se_err(err, SE_E_INVALID, "vector has a non-finite value (%g) at %zu", (double)vec[i], i);
        ss += (double)vec[i] * vec[i];
    }
    if (vx->p.metric != SE_METRIC_COSINE && ss > (double)FLT_MAX / 4)
        return se_err(err, SE_E_INVALID, "vector is too large (squared norm %.3g): its %s scores would overflow float32",
                      ss, vx->p.metric == SE_METRIC_DOT ? "dot" : "l2");
    return SE_OK;
}

/* Writes the vector as stored (normalised for cosine) into out. */
se_status se_vx_prepare(const se_vx *vx, const float *vec, float *out, se_error *err) {
    se_status st = se_vx_check_vector(vx, vec, err);
    if (st) return st;
    float *tmp = aligned_alloc(64, vx->stride * sizeof(float));
    if (!tmp) return se_err(err, SE_E_NOMEM, "out of memory");
    store_vec(vx, tmp, vec, true);
    memcpy(out, tmp, vx->dim * sizeof *out);
    free(tmp);
    return SE_OK;
}

/* Adds a vector under label (reusing a free slot first). Takes the write
 * lock. */
se_status se_vx_add(se_vx *vx, int64_t label, const float *vec, bool prepared, const se_vx_payload *pl,
                    se_error *err) {
    if (!vx || !vec || label < 0) return se_err(err, SE_E_INVALID, "se_vx_add: invalid argument");
    se_status st0 = se_vx_check_vector(vx, vec, err);
    if (st0) return st0;
    pthread_rwlock_wrlock(&vx->lock);
    se_status st = SE_OK;
    if (lmap_get(&vx->map, label) >= 0) {
        st = se_err(err, SE_E_INVALID, "label %lld is already in the index", (long long)label);
        goto out;
    }
    int32_t s;
    int reused = vx->n_free > 0;
    if (reused) {
        s = vx->free_slots[vx->n_free - 1];
    } else {
        if (grow(vx, vx->n_slots + 1)) {
            st = se_err(err, SE_E_NOMEM, "out of memory growing the index");
            goto out;
        }
        s = (int32_t)vx->n_slots;
    }
    int level = vx->p.kind == SE_INDEX_HNSW ? draw_level(vx) : 0;
    int32_t *up = NULL;
    if (level > 0) {
        up = se_calloc((size_t)level * (vx->p.M + 1), sizeof *up);
        if (!up) {
            st = se_err(err, SE_E_NOMEM, "out of memory");
            goto out;
        }
    }
    if (lmap_put(&vx->map, label, s)) {
        se_free(up);
        st = se_err(err, SE_E_NOMEM, "out of memory");
        goto out;
    }
    if (reused)
        vx->n_free--;
    else
        vx->n_slots++;
    vx->labels[s] = label;
    vx->pl[s] = pl ? *pl : (se_vx_payload){0};
    vx->levels[s] = (uint8_t)level;
    vx->has_vec[s] = 1;
    vx->n_heads += vx->pl[s].chunk == 0;
    vx->upper[s] = up;
    if (vx->M0) vx->links0[(size_t)s * (vx->M0 + 1)] = 0;
    store_vec(vx, vx->vecs + (size_t)s * vx->stride, vec, !prepared);
    vx->n_live++;
    if (vx->p.kind == SE_INDEX_HNSW && hnsw_insert(vx, s)) {
        /* Out of memory mid-insert: the node keeps the links made so far
         * (the graph stays valid, only less connected). */
        st = se_err(err, SE_E_NOMEM, "out of memory linking vector %lld", (long long)label);
    }
out:
    pthread_rwlock_unlock(&vx->lock);
    return st;
}

/* Re-links slot s on layer l after some of its neighbours were removed
 * (rm[slot] != 0): candidates are its remaining neighbours and the removed
 * neighbours' remaining neighbours. */
static int repair(se_vx *vx, scratch *sc, int32_t s, int l, const uint8_t *rm) {
    int32_t *ln = links_at(vx, s, l);
    if (++sc->cur == 0) {
        memset(sc->tags, 0, sc->cap * sizeof *sc->tags);
        sc->cur = 1;
    }
    sc->tags[s] = sc->cur;
    size_t n = 0;
    const float *base = vec_at(vx, s);
    for (int pass = 0; pass < 2; pass++) {
        for (int32_t i = 1; i <= ln[0]; i++) {
            int32_t e = ln[i];
            if (pass == 0 && !rm[e]) {
                if (sc->tags[e] == sc->cur) continue;
                sc->tags[e] = sc->cur;
                if (sel_reserve(sc, n + 1)) return -1;
                sc->sel[n++] = (cand){dist(vx, base, vec_at(vx, e)), e};
            } else if (pass == 1 && rm[e] && vx->levels[e] >= l) {
                const int32_t *l2 = links_at(vx, e, l);
                for (int32_t j = 1; j <= l2[0]; j++) {
                    int32_t f = l2[j];
                    if (rm[f] || sc->tags[f] == sc->cur) continue;
                    sc->tags[f] = sc->cur;
                    if (sel_reserve(sc, n + 1)) return -1;
                    sc->sel[n++] = (cand){dist(vx, base, vec_at(vx, f)), f};
                }
            }
        }
    }
    if (n) qsort(sc->sel, n, sizeof *sc->sel, cand_cmp);
    /* the heuristic's choice, then the nearest of the rest up to the
     * limit: a repaired node keeps its degree, so deletes do not thin out
     * the graph */
    uint32_t mx = max_links(vx, l);
    if (sel_reserve(sc, 2 * n + 1)) return -1;
    cand *all = sc->sel + n;
    memcpy(all, sc->sel, n * sizeof *all);
    size_t k = select_neighbors(vx, sc->sel, n, mx);
    for (size_t i = 0; i < n && k < mx; i++) {
        bool have = false;
        for (size_t j = 0; j < k && !have; j++) have = sc->sel[j].id == all[i].id;
        if (!have) sc->sel[k++] = all[i];
    }
    ln[0] = (int32_t)k;
    for (size_t i = 0; i < k; i++) ln[i + 1] = sc->sel[i].id;
    return 0;
}

/* Removes labels, repairs the graph, frees their slots. Write lock. */
se_status se_vx_remove(se_vx *vx, const int64_t *labels, size_t n, size_t *n_removed, se_error *err) {
    if (!vx || (n && !labels)) return se_err(err, SE_E_INVALID, "se_vx_remove: invalid argument");
    pthread_rwlock_wrlock(&vx->lock);
    se_status st = SE_OK;
    size_t cnt = 0;
    uint8_t *rm = NULL;
    scratch *sc = NULL;
    if (vx->n_free + n > vx->free_cap) {
        size_t nc = vx->n_free + n + 64;
        int32_t *f = se_realloc(vx->free_slots, nc * sizeof *f);
        if (!f) {
            st = se_err(err, SE_E_NOMEM, "out of memory");
            goto out;
        }
        vx->free_slots = f;
        vx->free_cap = nc;
    }
    rm = se_calloc(vx->n_slots ? vx->n_slots : 1, 1);
    if (!rm) {
        st = se_err(err, SE_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        int32_t s = lmap_get(&vx->map, labels[i]);
        if (s < 0 || rm[s]) continue;
        rm[s] = 1;
        cnt++;
    }
    if (!cnt) goto out;
    if (vx->p.kind == SE_INDEX_HNSW) {
        sc = scratch_get(vx);
        if (!sc) {
            st = se_err(err, SE_E_NOMEM, "out of memory");
            goto out;
        }
        for (size_t s = 0; s < vx->n_slots; s++) {
            if (rm[s] || vx->labels[s] < 0) continue;
            for (int l = 0; l <= vx->levels[s]; l++) {
                const int32_t *ln = links_at(vx, (int32_t)s, l);
                int hit = 0;
                for (int32_t i = 1; i <= ln[0] && !hit; i++) hit = rm[ln[i]];
                if (hit && repair(vx, sc, (int32_t)s, l, rm)) {
                    /* Could not re-link: drop the removed ids (the graph
                     * stays valid, possibly less connected). */
                    int32_t *w = links_at(vx, (int32_t)s, l);
                    int32_t k = 0;
                    for (int32_t i = 1; i <= w[0]; i++)
                        if (!rm[w[i]]) w[++k] = w[i];
                    w[0] = k;
                    st = se_err(err, SE_E_NOMEM, "out of memory repairing the graph");
                }
            }
        }
        if (vx->entry >= 0 && rm[vx->entry]) {
            int32_t best = -1;
            for (size_t s = 0; s < vx->n_slots; s++)
                if (!rm[s] && vx->labels[s] >= 0 && (best < 0 || vx->levels[s] > vx->levels[best])) best = (int32_t)s;
            vx->entry = best;
            vx->max_level = best >= 0 ? vx->levels[best] : -1;
        }
    }
    for (size_t s = 0; s < vx->n_slots; s++) {
        if (!rm[s]) continue;
        lmap_del(&vx->map, vx->labels[s]);
        if (vx->has_vec[s] && vx->pl[s].chunk == 0) vx->n_heads--;
        vx->labels[s] = -1;
        se_free(vx->upper[s]);
        vx->upper[s] = NULL;
        vx->levels[s] = 0;
        if (vx->M0) vx->links0[s * (vx->M0 + 1)] = 0;
        vx->free_slots[vx->n_free++] = (int32_t)s;
        vx->n_live--;
    }
out:
    if (sc) scratch_put(vx, sc);
    se_free(rm);
    pthread_rwlock_unlock(&vx->lock);
    if (n_removed) *n_removed = cnt;
    return st;
}

/* Keeps the k best of a distance list into hits. */
static size_t finish(const se_vx *vx, cand *c, size_t n, size_t k, se_vx_hit *hits) {
    qsort(c, n, sizeof *c, cand_cmp);
    if (n > k) n = k;
    for (size_t i = 0; i < n; i++) hits[i] = (se_vx_hit){vx->labels[c[i].id], score_of(vx, c[i].d), vx->pl[c[i].id]};
    return n;
}

/* Prepares the query: normalised for cosine, zero padded. */
static float *prep_query(const se_vx *vx, const float *q) {
    float *pq = aligned_alloc(64, vx->stride * sizeof(float));
    if (pq) store_vec(vx, pq, q, true);
    return pq;
}

/* Exact scan of every live slot (or the allowed ones), top k. */
static int flat_scan(se_vx *vx, scratch *sc, const float *q, size_t k, se_vx_allow_fn allow, void *user) {
    heap *res = &sc->h2;
    res->n = 0;
    if (heap_reserve(res, k + 2)) return -1;
    for (size_t s = 0; s < vx->n_slots; s++) {
        if (vx->labels[s] < 0) continue;
        if (s + 4 < vx->n_slots) __builtin_prefetch(vec_at(vx, (int32_t)s + 4));
        float d = dist(vx, q, vec_at(vx, (int32_t)s));
        if (res->n < k || d < res->a[0].d) {
            if (allow && !allow(user, vx->labels[s])) continue;
            heap_push(res, (cand){d, (int32_t)s});
            if (res->n > k) heap_pop(res);
        }
    }
    return 0;
}

/* Searches (exact: a flat scan whatever the kind). Read lock. */
static se_status vx_search(se_vx *vx, const float *q, size_t k, size_t ef, bool exact, se_vx_allow_fn allow, void *user,
                           se_vx_hit *hits, size_t *n_hits, se_error *err) {
    if (!vx || !q || !n_hits || (k && !hits)) return se_err(err, SE_E_INVALID, "se_vx_search: invalid argument");
    *n_hits = 0;
    if (k == 0) return SE_OK;
    float *pq = prep_query(vx, q);
    if (!pq) return se_err(err, SE_E_NOMEM, "out of memory");
    pthread_rwlock_rdlock(&vx->lock);
    se_status st = SE_OK;
    scratch *sc = NULL;
    if (vx->n_live == 0) goto out;
    sc = scratch_get(vx);
    if (!sc) {
        st = se_err(err, SE_E_NOMEM, "out of memory");
        goto out;
    }
    if (exact || vx->p.kind == SE_INDEX_FLAT) {
        if (flat_scan(vx, sc, pq, k, allow, user)) {
            st = se_err(err, SE_E_NOMEM, "out of memory");
            goto out;
        }
    } else {
        if (ef < k) ef = k;
        int32_t ep = vx->entry;
        float epd = dist(vx, pq, vec_at(vx, ep));
        for (int l = vx->max_level; l > 0; l--) greedy(vx, pq, l, &ep, &epd);
        if (search_layer(vx, sc, pq, ep, epd, ef, 0, allow, user)) {
            st = se_err(err, SE_E_NOMEM, "out of memory");
            goto out;
        }
    }
    *n_hits = finish(vx, sc->h2.a, sc->h2.n, k, hits);
out:
    if (sc) scratch_put(vx, sc);
    pthread_rwlock_unlock(&vx->lock);
    free(pq);
    return st;
}

/* HNSW (or flat) search; see vec_index.h. */
se_status se_vx_search(se_vx *vx, const float *q, size_t k, size_t ef, se_vx_allow_fn allow, void *user,
                       se_vx_hit *hits, size_t *n_hits, se_error *err) {
    return vx_search(vx, q, k, ef, false, allow, user, hits, n_hits, err);
}

/* A flat scan of every vector, whatever the kind; see vec_index.h. */
se_status se_vx_search_exact(se_vx *vx, const float *q, size_t k, se_vx_allow_fn allow, void *user, se_vx_hit *hits,
                             size_t *n_hits, se_error *err) {
    return vx_search(vx, q, k, 0, true, allow, user, hits, n_hits, err);
}

/* Exact search over a label subset. Read lock. */
se_status se_vx_search_subset(se_vx *vx, const float *q, size_t k, const int64_t *labels, size_t n_labels,
                              se_vx_hit *hits, size_t *n_hits, se_error *err) {
    if (!vx || !q || !n_hits || (k && !hits) || (n_labels && !labels))
        return se_err(err, SE_E_INVALID, "se_vx_search_subset: invalid argument");
    *n_hits = 0;
    if (k == 0) return SE_OK;
    float *pq = prep_query(vx, q);
    if (!pq) return se_err(err, SE_E_NOMEM, "out of memory");
    heap res = {0};
    res.max = 1;
    se_status st = SE_OK;
    pthread_rwlock_rdlock(&vx->lock);
    if (heap_reserve(&res, k + 2)) {
        st = se_err(err, SE_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n_labels; i++) {
        int32_t s = lmap_get(&vx->map, labels[i]);
        if (s < 0) continue;
        float d = dist(vx, pq, vec_at(vx, s));
        if (res.n < k || d < res.a[0].d) {
            heap_push(&res, (cand){d, s});
            if (res.n > k) heap_pop(&res);
        }
    }
    *n_hits = finish(vx, res.a, res.n, k, hits);
out:
    pthread_rwlock_unlock(&vx->lock);
    se_free(res.a);
    free(pq);
    return st;
}

/* ---- the default search's plan (see vec_index.h) ---- */

/* The default ef is (EF_PER_RESULT * k + EF_BASE) * sqrt(r), r the chunks
 * per document. Recall@10 per document against exact on SciFact (5,183
 * abstracts, USE lite; bench/index/recall_scifact.py) needed ef 128 to 155
 * both at 3.9 chunks a document (0.978 at 128, 0.983 at 155) and at 7.3
 * (0.982 at 128, 0.993 at 256), and a synthetic set of 8-chunk documents
 * in tight topics (tests/test_index_recall.c) about 160: deeper lists for
 * more chunks, but far less than in proportion. A larger k needs fewer
 * candidates per result: recall@100 at 3.9 chunks was 0.973 at ef 200,
 * 0.993 at 400. */
#define EF_PER_RESULT 2
#define EF_BASE 60
/* A flat scan of n vectors costs what an HNSW search (M 16) with ef = n /
 * EXACT_PER_EF costs: 15 to 50 measured with the AVX2 distances on 4,000
 * vectors of 512 dimensions (in cache), about 14 on SciFact's 20,082 (40
 * MB: memory bound), both on the loaded 2-core machine; 12 is taken. */
#define EXACT_PER_EF 12
#define AUTO_EF_MAX 100000

/* The default ef: (EF_PER_RESULT * k + EF_BASE) * sqrt(r), r = n_vectors
 * / n_docs chunks per document (at least 1) when per_doc, else 1; at least
 * ef_min, at most AUTO_EF_MAX (unless ef_min is more). Pure. */
size_t se_vx_auto_ef(size_t ef_min, size_t k, size_t n_vectors, size_t n_docs, bool per_doc) {
    double r = per_doc && n_docs ? (double)n_vectors / (double)n_docs : 1;
    if (r < 1) r = 1;
    double ef = (EF_PER_RESULT * (double)k + EF_BASE) * sqrt(r);
    size_t e = ef > AUTO_EF_MAX ? AUTO_EF_MAX : (size_t)ef;
    return e > ef_min ? e : ef_min;
}

/* Whether a flat scan of n_vectors is no slower than an HNSW search with
 * ef (then the exact answer is also the cheaper one). Pure. */
bool se_vx_exact_is_faster(size_t n_vectors, size_t ef) {
    return ef >= SIZE_MAX / EXACT_PER_EF || n_vectors <= EXACT_PER_EF * ef;
}

/* Live vectors whose payload is chunk 0 (documents, for se_index). */
size_t se_vx_count_heads(se_vx *vx) {
    pthread_rwlock_rdlock(&vx->lock);
    size_t n = vx->n_heads;
    pthread_rwlock_unlock(&vx->lock);
    return n;
}

size_t se_vx_count(se_vx *vx) {
    pthread_rwlock_rdlock(&vx->lock);
    size_t n = vx->n_live;
    pthread_rwlock_unlock(&vx->lock);
    return n;
}

se_vx_params se_vx_get_params(const se_vx *vx) { return vx->p; }

void se_vx_stats(se_vx *vx, size_t *n_slots, size_t *n_free, size_t *bytes) {
    pthread_rwlock_rdlock(&vx->lock);
    size_t b = vx->cap * (vx->stride * sizeof(float) + sizeof(int64_t) + 2 + sizeof(int32_t *) +
                          (vx->M0 ? (vx->M0 + 1) * sizeof(int32_t) : 0));
    for (size_t s = 0; s < vx->n_slots; s++) b += (size_t)vx->levels[s] * (vx->p.M + 1) * sizeof(int32_t);
    b += vx->map.cap * (sizeof(int64_t) + sizeof(int32_t));
    if (n_slots) *n_slots = vx->n_slots;
    if (n_free) *n_free = vx->n_free;
    if (bytes) *bytes = b;
    pthread_rwlock_unlock(&vx->lock);
}

se_status se_vx_labels(se_vx *vx, int64_t **labels, size_t *n, se_error *err) {
    pthread_rwlock_rdlock(&vx->lock);
    int64_t *a = se_malloc_array(vx->n_live ? vx->n_live : 1, sizeof *a);
    size_t k = 0;
    if (a)
        for (size_t s = 0; s < vx->n_slots; s++)
            if (vx->labels[s] >= 0) a[k++] = vx->labels[s];
    pthread_rwlock_unlock(&vx->lock);
    if (!a) return se_err(err, SE_E_NOMEM, "out of memory");
    *labels = a;
    *n = k;
    return SE_OK;
}

bool se_vx_get_vector(se_vx *vx, int64_t label, float *out) {
    pthread_rwlock_rdlock(&vx->lock);
    int32_t s = lmap_get(&vx->map, label);
    if (s >= 0) memcpy(out, vec_at(vx, s), vx->dim * sizeof *out);
    pthread_rwlock_unlock(&vx->lock);
    return s >= 0;
}

/* ---- serialisation ---- */

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} wbuf;

static void put(wbuf *b, const void *x, size_t n) {
    if (b->oom || n == 0) return;
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap * 2 : 4096;
        while (c < b->n + n) c *= 2;
        uint8_t *p = se_realloc(b->p, c);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = c;
    }
    memcpy(b->p + b->n, x, n);
    b->n += n;
}
static void put_u32(wbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(wbuf *b, uint64_t v) { put(b, &v, 8); }

/* Serialises (see vec_index.h). Read lock. */
se_status se_vx_save(se_vx *vx, uint8_t **blob, size_t *len, se_error *err) {
    wbuf b = {0};
    pthread_rwlock_rdlock(&vx->lock);
    put(&b, VX_MAGIC, 8);
    put_u32(&b, VX_VERSION);
    put_u32(&b, (uint32_t)vx->p.kind);
    put_u32(&b, (uint32_t)vx->p.metric);
    put_u32(&b, (uint32_t)vx->dim);
    put_u32(&b, vx->p.M);
    put_u32(&b, vx->p.ef_construction);
    put_u64(&b, vx->p.seed);
    put_u64(&b, vx->rng);
    put_u64(&b, vx->n_slots);
    put_u32(&b, (uint32_t)vx->entry);
    put_u32(&b, (uint32_t)vx->max_level);
    put_u64(&b, vx->n_free);
    for (size_t s = 0; s < vx->n_slots; s++) {
        put_u64(&b, (uint64_t)vx->labels[s]);
        put(&b, &vx->levels[s], 1);
        if (vx->labels[s] < 0 || !vx->M0) continue;
        for (int l = 0; l <= vx->levels[s]; l++) {
            const int32_t *ln = links_at(vx, (int32_t)s, l);
            put(&b, ln, ((size_t)ln[0] + 1) * 4);
        }
    }
    put(&b, vx->free_slots, vx->n_free * 4);
    pthread_rwlock_unlock(&vx->lock);
    uint32_t crc = b.oom ? 0 : (uint32_t)crc32(0, b.p, (uInt)b.n);
    put_u32(&b, crc);
    if (b.oom) {
        se_free(b.p);
        return se_err(err, SE_E_NOMEM, "out of memory serialising the index");
    }
    *blob = b.p;
    *len = b.n;
    return SE_OK;
}

typedef struct rbuf {
    const uint8_t *p;
    size_t n, off;
} rbuf;

static int get(rbuf *r, void *x, size_t n) {
    if (r->n - r->off < n) return -1;
    memcpy(x, r->p + r->off, n);
    r->off += n;
    return 0;
}

/* Rebuilds from se_vx_save's bytes; validates everything (see
 * vec_index.h). Every count is checked against the bytes that remain
 * before anything is allocated: a slot takes at least 9 bytes (label,
 * level) and a free slot 4 more (its free-list entry), so a crafted count
 * cannot make the loader allocate more than the snapshot could describe;
 * max_label bounds the slot count further (se_index passes the largest
 * chunk id ever issued: no index can have had more slots than labels). The
 * free list must name every free slot exactly once, and the header fields
 * must be exactly what se_vx_save writes, so that save(load(x)) == x. */
se_status se_vx_load(const uint8_t *blob, size_t len, size_t dim, int64_t max_label, se_vx **out, se_error *err) {
    if (!blob || !out) return se_err(err, SE_E_INVALID, "se_vx_load: NULL argument");
    *out = NULL;
    if (len < 8 + 4 || memcmp(blob, VX_MAGIC, 8) != 0)
        return se_err(err, SE_E_FORMAT, "graph snapshot: bad magic (not a sembed index graph)");
    uint32_t crc;
    memcpy(&crc, blob + len - 4, 4);
    if ((uint32_t)crc32(0, blob, (uInt)(len - 4)) != crc)
        return se_err(err, SE_E_FORMAT, "graph snapshot: checksum mismatch (the snapshot is damaged)");
    rbuf r = {blob, len - 4, 8};
    uint32_t ver, kind, metric, d, M, efc, entry, maxl;
    uint64_t seed, rng, n_slots, n_free;
    if (get(&r, &ver, 4) || get(&r, &kind, 4) || get(&r, &metric, 4) || get(&r, &d, 4) || get(&r, &M, 4) ||
        get(&r, &efc, 4) || get(&r, &seed, 8) || get(&r, &rng, 8) || get(&r, &n_slots, 8) || get(&r, &entry, 4) ||
        get(&r, &maxl, 4) || get(&r, &n_free, 8))
        return se_err(err, SE_E_FORMAT, "graph snapshot: truncated header");
    if (ver != VX_VERSION) return se_err(err, SE_E_FORMAT, "graph snapshot: version %u (this sembed reads %u)", ver, VX_VERSION);
    if (d != dim) return se_err(err, SE_E_FORMAT, "graph snapshot: dimension %u, index says %zu", d, dim);
    /* counts against the bytes left (n_slots <= INT32_MAX first, so the
     * products cannot wrap) and against the labels ever issued */
    uint64_t left = r.n - r.off;
    if (n_slots > INT32_MAX || n_free > n_slots)
        return se_err(err, SE_E_FORMAT, "graph snapshot: bad slot counts (%llu slots, %llu free)", (unsigned long long)n_slots,
                      (unsigned long long)n_free);
    if (n_slots * 9 + n_free * 4 > left)
        return se_err(err, SE_E_FORMAT, "graph snapshot: %llu slots (%llu free) cannot fit in its %llu bytes",
                      (unsigned long long)n_slots, (unsigned long long)n_free, (unsigned long long)left);
    if (max_label >= 0 && n_slots > (uint64_t)max_label + 1)
        return se_err(err, SE_E_FORMAT, "graph snapshot: %llu slots, more than the %lld vectors ever added",
                      (unsigned long long)n_slots, (long long)max_label);
    if (kind != SE_INDEX_FLAT && kind != SE_INDEX_HNSW) return se_err(err, SE_E_FORMAT, "graph snapshot: unknown kind %u", kind);
    se_vx_params p = {(se_index_kind)kind, (se_metric)metric, M, efc, seed};
    se_vx *vx;
    se_error e2;
    se_status st = vx_alloc(dim, &p, &vx, &e2);
    if (st == SE_E_NOMEM) return se_err(err, st, "%s", e2.msg);
    if (st) return se_err(err, SE_E_FORMAT, "graph snapshot: %s", e2.msg);
    vx->rng = rng;
    if (grow(vx, n_slots ? n_slots : 1)) {
        se_vx_free(vx);
        return se_err(err, SE_E_NOMEM, "out of memory loading the index graph");
    }
    memset(vx->upper, 0, vx->cap * sizeof *vx->upper);
    const char *bad = NULL;
    for (size_t s = 0; s < n_slots && !bad; s++) {
        uint64_t lab;
        uint8_t lev;
        if (get(&r, &lab, 8) || get(&r, &lev, 1)) {
            bad = "truncated slot table";
            break;
        }
        vx->n_slots = s + 1;
        vx->labels[s] = (int64_t)lab;
        vx->levels[s] = lev;
        vx->has_vec[s] = 0;
        if (vx->M0) vx->links0[s * (vx->M0 + 1)] = 0;
        if ((int64_t)lab < 0) {
            if (lab != UINT64_MAX || lev) bad = "bad free slot";
            continue;
        }
        if (max_label >= 0 && (int64_t)lab > max_label) {
            bad = "label beyond the vectors ever added";
            break;
        }
        if (lev > VX_MAX_LEVEL || (lev && !vx->M0)) {
            bad = "bad level";
            break;
        }
        if (lmap_get(&vx->map, (int64_t)lab) >= 0) {
            bad = "duplicate label";
            break;
        }
        if (lmap_put(&vx->map, (int64_t)lab, (int32_t)s)) {
            se_vx_free(vx);
            return se_err(err, SE_E_NOMEM, "out of memory");
        }
        vx->n_live++;
        if (!vx->M0) continue;
        if (lev) {
            vx->upper[s] = se_calloc((size_t)lev * (M + 1), sizeof(int32_t));
            if (!vx->upper[s]) {
                se_vx_free(vx);
                return se_err(err, SE_E_NOMEM, "out of memory");
            }
        }
        for (int l = 0; l <= lev && !bad; l++) {
            int32_t *ln = links_at(vx, (int32_t)s, l);
            int32_t cnt;
            if (get(&r, &cnt, 4) || cnt < 0 || (uint32_t)cnt > max_links(vx, l) || get(&r, ln + 1, (size_t)cnt * 4)) {
                bad = "bad link list";
                break;
            }
            ln[0] = cnt;
            for (int32_t i = 1; i <= cnt; i++)
                if (ln[i] < 0 || (uint64_t)ln[i] >= n_slots || ln[i] == (int32_t)s) bad = "link out of range";
        }
    }
    if (!bad && vx->n_live + n_free != vx->n_slots) bad = "slot counts disagree";
    if (!bad) {
        vx->free_slots = se_malloc_array(n_free + 64, sizeof(int32_t));
        if (!vx->free_slots) {
            se_vx_free(vx);
            return se_err(err, SE_E_NOMEM, "out of memory");
        }
        vx->free_cap = n_free + 64;
        if (get(&r, vx->free_slots, n_free * 4)) bad = "truncated free list";
        vx->n_free = n_free;
        /* each entry a free slot, none twice: a seen slot is marked -2 (a
         * duplicate would hand one slot to two vectors) */
        for (size_t i = 0; i < n_free && !bad; i++) {
            int32_t f = vx->free_slots[i];
            if (f < 0 || (uint64_t)f >= n_slots || vx->labels[f] >= 0) bad = "bad free list";
            else if (vx->labels[f] != -1) bad = "free list names a slot twice";
            else vx->labels[f] = -2;
        }
        for (size_t s = 0; s < vx->n_slots; s++)
            if (vx->labels[s] == -2) vx->labels[s] = -1;
    }
    if (!bad && r.off != r.n) bad = "trailing bytes";
    if (!bad && !vx->M0 && (entry != UINT32_MAX || maxl != UINT32_MAX)) bad = "entry point in a flat index";
    if (!bad && vx->M0) {
        /* links must point at live slots, levels must fit */
        for (size_t s = 0; s < vx->n_slots && !bad; s++) {
            if (vx->labels[s] < 0) continue;
            if (vx->levels[s] > (int32_t)maxl) bad = "a level above the entry point's";
            for (int l = 0; l <= vx->levels[s] && !bad; l++) {
                const int32_t *ln = links_at(vx, (int32_t)s, l);
                for (int32_t i = 1; i <= ln[0]; i++)
                    if (vx->labels[ln[i]] < 0 || vx->levels[ln[i]] < l) bad = "link to a free slot or missing layer";
            }
        }
        if (!bad) {
            if (vx->n_live == 0) {
                if (entry != UINT32_MAX || maxl != UINT32_MAX) bad = "entry point in an empty graph";
            } else if ((int32_t)entry < 0 || entry >= n_slots || vx->labels[entry] < 0 || vx->levels[entry] != maxl) {
                bad = "bad entry point";
            }
        }
        vx->entry = (int32_t)entry;
        vx->max_level = (int32_t)maxl;
    }
    if (bad) {
        se_vx_free(vx);
        return se_err(err, SE_E_FORMAT, "graph snapshot: %s", bad);
    }
    *out = vx;
    return SE_OK;
}

/* Sets the vector of a loaded slot. Write lock. */
se_status se_vx_set_vector(se_vx *vx, int64_t label, const float *vec, bool prepared, const se_vx_payload *pl) {
    pthread_rwlock_wrlock(&vx->lock);
    int32_t s = lmap_get(&vx->map, label);
    if (s >= 0) {
        store_vec(vx, vx->vecs + (size_t)s * vx->stride, vec, !prepared);
        if (vx->has_vec[s] && vx->pl[s].chunk == 0) vx->n_heads--;
        vx->pl[s] = pl ? *pl : (se_vx_payload){0};
        vx->has_vec[s] = 1;
        vx->n_heads += vx->pl[s].chunk == 0;
    }
    pthread_rwlock_unlock(&vx->lock);
    return s >= 0 ? SE_OK : SE_E_RANGE;
}

size_t se_vx_missing_vectors(se_vx *vx) {
    size_t n = 0;
    pthread_rwlock_rdlock(&vx->lock);
    for (size_t s = 0; s < vx->n_slots; s++)
        if (vx->labels[s] >= 0 && !vx->has_vec[s]) n++;
    pthread_rwlock_unlock(&vx->lock);
    return n;
}
