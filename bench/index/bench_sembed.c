/*
 * bench_sembed.c - the sembed engine of the index benchmark (README.md), on
 * the shared harness (engine.h: same arguments, timing, recall and JSON as
 * the hnswlib and FAISS engines):
 *
 *   bench_sembed --base base.npy --queries q.npy --gt gt.npy [--M 16] [--efc 200]
 *                [--ef 10,16,...] [--k 10] [--flat | --index flat]
 *
 * Builds a persistent se_index through the public API (HNSW, inner product
 * on the normalised vectors = cosine, as the other engines run it) in a
 * temporary file: the build time includes writing every vector, with its
 * CRC, to the index file and the graph snapshot. One build thread; the
 * searches run one query at a time on one thread.
 */
#include "engine.h"

#include <sys/stat.h>

#include "sembed.h"

typedef struct ctx {
    se_index *idx;
    se_index_search_params sp;
    se_index_hit *hits;
} ctx;

static void set_ef(void *c, int ef) { ((ctx *)c)->sp.ef_search = (uint32_t)ef; }

/* doc row ids are assigned 1..n in insertion order: id = row - 1 */
static void search(void *c, const float *q, int k, int64_t *ids) {
    ctx *x = c;
    size_t nh = 0;
    se_error err;
    x->sp.k = (size_t)k;
    if (se_index_search(x->idx, q, &x->sp, x->hits, &nh, &err) != SE_OK) bench_die("search: %s", err.msg);
    for (int i = 0; i < k; i++) ids[i] = (size_t)i < nh ? x->hits[i].doc - 1 : -1;
}

int main(int argc, char **argv) {
    int flat = 0, m = 1;
    for (int i = 1; i < argc; i++) /* --flat is ours: take it out before the shared parser */
        if (!strcmp(argv[i], "--flat")) flat = 1;
        else argv[m++] = argv[i];
    argc = m;
    bench_args a;
    bench_parse_args(argc, argv, &a, "[--flat | --index flat]");
    if (a.index && !strcmp(a.index, "flat")) flat = 1;
    const char *engine = flat ? "sembed-flat" : "sembed";
    bench_data d;
    bench_load(&a, &d);
    bench_log(engine, "n %zu, dim %zu, %zu queries; M %d, efc %d, 1 build thread", d.n, d.dim, d.nq, a.M, a.efc);

    char path[256];
    snprintf(path, sizeof path, "/tmp/bench_sembed_%ld.idx", (long)getpid());
    unlink(path);
    se_index_params p = se_index_default_params();
    p.kind = flat ? SE_INDEX_FLAT : SE_INDEX_HNSW;
    p.metric = SE_METRIC_DOT;
    p.M = (uint32_t)a.M;
    p.ef_construction = (uint32_t)a.efc;
    const float *base = npy_f32(&d.base);
    se_index *idx;
    se_error err;
    bench_build b;
    bench_build_start(&b);
    if (se_index_create(path, d.dim, &p, &idx, &err) != SE_OK) bench_die("%s", err.msg);
    const size_t B = 4096;
    se_index_doc *docs = calloc(B, sizeof *docs);
    char (*ids)[24] = malloc(B * sizeof *ids);
    for (size_t i = 0; i < d.n; i += B) {
        size_t nb = d.n - i < B ? d.n - i : B;
        for (size_t j = 0; j < nb; j++) {
            snprintf(ids[j], sizeof ids[j], "%zu", i + j);
            docs[j] = (se_index_doc){ids[j], "", NULL, 1, NULL, base + (i + j) * d.dim, NULL};
        }
        if (se_index_add(idx, docs, nb, &err) != SE_OK) bench_die("%s", err.msg);
    }
    if (se_index_flush(idx, &err) != SE_OK) bench_die("%s", err.msg);
    bench_build_stop(&b);
    se_index_info info;
    se_index_get_info(idx, &info, &err);
    struct stat sb;
    double file_mb = stat(path, &sb) == 0 ? (double)sb.st_size / 1048576.0 : -1;
    bench_log(engine, "built in %.2f s (CPU %.2f s), +%.0f MiB resident, index %.0f MiB in memory, file %.0f MiB", b.wall_s,
              b.cpu_s, b.rss_mb, info.memory_bytes / 1048576.0, file_mb);

    ctx c = {idx, se_index_search_default_params(), malloc((size_t)a.k * sizeof(se_index_hit))};
    c.sp.best_chunk_per_doc = false; /* one vector per document here */
    bench_point pts[BENCH_MAX_EF];
    int np = bench_curve(&c, flat ? NULL : set_ef, search, &d, &a, engine, pts);
    char extra[256];
    snprintf(extra, sizeof extra, "\"version\": \"%s\", \"memory_source\": \"rss\", \"index_mb\": %.1f, \"file_mb\": %.1f",
             se_version(), info.memory_bytes / 1048576.0, file_mb);
    bench_print_json(engine, &d, &a, &b, pts, np, extra);
    se_index_close(idx, NULL);
    unlink(path);
    free(docs);
    free(ids);
    free(c.hits);
    npy_free(&d.base);
    npy_free(&d.queries);
    npy_free(&d.gt);
    return 0;
}
