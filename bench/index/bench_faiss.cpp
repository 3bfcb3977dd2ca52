// bench/index/bench_faiss.cpp - FAISS (Debian's libfaiss-dev) as an index benchmark engine;
// the command line contract is in engine.h and README.md, plus --index hnsw|flat.
//
//   g++ -O3 -march=native -fopenmp -o bench_faiss bench_faiss.cpp -lfaiss -lblas -llapack
//   g++ -O3 -march=native -fopenmp -DFAISS_NATIVE_IP -o bench_faiss_native bench_faiss.cpp
//       -Wl,--allow-multiple-definition -lfaiss -lblas -llapack
//
//   --index hnsw (default)  engine "faiss-hnsw": IndexHNSWFlat(dim, M, METRIC_INNER_PRODUCT),
//                           hnsw.efConstruction = efc, add() on --threads OpenMP threads;
//                           each ef sets hnsw.efSearch
//   --index flat            engine "faiss-flat": IndexFlatIP, exact search, one point on the
//                           curve (ef null); --M, --efc and --ef are ignored
//
// Queries go one at a time through index.search(1, ...) with OpenMP at one thread. memory_mb
// is the growth of the resident set over the build; index_mb is the size faiss::write_index
// gives the index.
//
// Built with -DFAISS_NATIVE_IP (and linked with -Wl,--allow-multiple-definition, this object
// first) it replaces faiss::fvec_inner_product with a loop vectorised for -march=native, and
// the engines are named "faiss-hnsw-native" and "faiss-flat-native". Debian's libfaiss 1.7.3
// is built for baseline x86-64 (SSE2), where faiss compiles fvec_inner_product to a scalar
// loop (its SIMD version needs SSE3 or better at compile time), while pip/conda builds of
// faiss use AVX2. Every inner product of IndexHNSWFlat and IndexFlatIP goes through that one
// function (IndexFlat.cpp, distances.cpp), so the native engines show faiss's graph search
// with a SIMD kernel, as hnswlib gets one from its headers. Not what Debian ships.
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <omp.h>

#include <memory>
#include <string>
#include <vector>

#include "engine.h"

#ifdef FAISS_NATIVE_IP
#define NAME_SUFFIX "-native"
namespace faiss {
// the first definition wins under --allow-multiple-definition: this one, over distances_simd.cpp's
float fvec_inner_product(const float *x, const float *y, size_t d) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < d; i++) s += x[i] * y[i];
    return s;
}
} // namespace faiss
#else
#define NAME_SUFFIX ""
#endif

struct Ctx {
    faiss::Index *index;
    faiss::IndexHNSWFlat *hnsw; // NULL for flat
    std::vector<float> dist;
    std::vector<faiss::Index::idx_t> ids;
};

static void set_ef(void *c, int ef) { static_cast<Ctx *>(c)->hnsw->hnsw.efSearch = ef; }

static void search(void *c, const float *q, int k, int64_t *out) {
    Ctx *x = static_cast<Ctx *>(c);
    x->index->search(1, q, k, x->dist.data(), x->ids.data());
    for (int i = 0; i < k; i++) out[i] = (int64_t)x->ids[i];
}

int main(int argc, char **argv) {
    bench_args a;
    bench_parse_args(argc, argv, &a, " [--index hnsw|flat]");
    std::string kind = a.index ? a.index : "hnsw";
    if (kind != "hnsw" && kind != "flat") {
        fprintf(stderr, "error: --index must be hnsw or flat, not '%s'\n", kind.c_str());
        return 2;
    }
    const char *engine = kind == "hnsw" ? "faiss-hnsw" NAME_SUFFIX : "faiss-flat" NAME_SUFFIX;
    bench_data d;
    bench_load(&a, &d);
    if (kind == "hnsw")
        bench_log(engine, "n %zu, dim %zu, %zu queries; M %d, efc %d, %d build thread(s)", d.n, d.dim, d.nq, a.M,
                  a.efc, a.threads);
    else
        bench_log(engine, "n %zu, dim %zu, %zu queries; exact inner-product search", d.n, d.dim, d.nq);

    omp_set_num_threads(a.threads);
    bench_build b;
    bench_build_start(&b);
    std::unique_ptr<faiss::Index> index;
    faiss::IndexHNSWFlat *hnsw = nullptr;
    if (kind == "hnsw") {
        hnsw = new faiss::IndexHNSWFlat((int)d.dim, a.M, faiss::METRIC_INNER_PRODUCT);
        hnsw->hnsw.efConstruction = a.efc;
        index.reset(hnsw);
    } else {
        index.reset(new faiss::IndexFlatIP((faiss::Index::idx_t)d.dim));
    }
    try {
        index->add((faiss::Index::idx_t)d.n, npy_f32(&d.base));
    } catch (const std::exception &e) {
        bench_die("faiss add failed: %s", e.what());
    }
    bench_build_stop(&b);
    faiss::VectorIOWriter w;
    faiss::write_index(index.get(), &w);
    double index_mb = (double)w.data.size() / 1048576.0;
    w.data.clear();
    w.data.shrink_to_fit();
    bench_log(engine, "built in %.2f s (CPU %.2f s), +%.0f MiB resident, index %.0f MiB", b.wall_s, b.cpu_s,
              b.rss_mb, index_mb);

    // queries one at a time, on one thread
    omp_set_num_threads(1);
    Ctx ctx{index.get(), hnsw, std::vector<float>(a.k), std::vector<faiss::Index::idx_t>(a.k)};
    std::vector<bench_point> pts(BENCH_MAX_EF);
    int np = bench_curve(&ctx, hnsw ? set_ef : nullptr, search, &d, &a, engine, pts.data());

    char extra[256];
    snprintf(extra, sizeof extra, "\"version\": \"%d.%d.%d\", \"memory_source\": \"rss\", \"index_mb\": %.1f",
             FAISS_VERSION_MAJOR, FAISS_VERSION_MINOR, FAISS_VERSION_PATCH, index_mb);
    bench_print_json(engine, &d, &a, &b, pts.data(), np, extra);
    index.reset();
    npy_free(&d.base);
    npy_free(&d.queries);
    npy_free(&d.gt);
    return 0;
}
