// bench/index/bench_hnswlib.cpp - hnswlib (Debian's libhnswlib-dev, header-only) as an index
// benchmark engine; the command line contract is in engine.h and README.md.
//
//   g++ -O3 -march=native -fopenmp -I/usr/include -o bench_hnswlib bench_hnswlib.cpp
//
// Builds hnswlib::HierarchicalNSW<float> over hnswlib::InnerProductSpace (distance 1 - <a, b>),
// adding points in id order: on one thread with --threads 1 (the default), else from --threads
// std::threads taking ids from a shared counter, as hnswlib's Python binding does.
// memory_mb is the growth of the resident set over the build; index_mb is hnswlib's own size
// (level-0 block plus upper-level link lists).
#include <hnswlib/hnswlib.h>

#include <atomic>
#include <thread>
#include <vector>

#include "engine.h"

#ifndef ENGINE_VERSION
#define ENGINE_VERSION "unknown"
#endif

struct Ctx {
    hnswlib::HierarchicalNSW<float> *index;
};

static void set_ef(void *c, int ef) { static_cast<Ctx *>(c)->index->setEf((size_t)ef); }

static void search(void *c, const float *q, int k, int64_t *ids) {
    auto res = static_cast<Ctx *>(c)->index->searchKnn(q, (size_t)k);
    // a max-heap on distance: pop from the farthest
    for (int i = (int)res.size() - 1; i >= 0; i--) {
        ids[i] = (int64_t)res.top().second;
        res.pop();
    }
}

int main(int argc, char **argv) {
    const char *engine = "hnswlib";
    bench_args a;
    bench_parse_args(argc, argv, &a, NULL);
    bench_data d;
    bench_load(&a, &d);
    bench_log(engine, "n %zu, dim %zu, %zu queries; M %d, efc %d, %d build thread(s)", d.n, d.dim, d.nq, a.M, a.efc,
              a.threads);

    const float *base = npy_f32(&d.base);
    bench_build b;
    bench_build_start(&b);
    hnswlib::InnerProductSpace space(d.dim);
    auto *index = new hnswlib::HierarchicalNSW<float>(&space, d.n, (size_t)a.M, (size_t)a.efc, 100);
    if (a.threads <= 1) {
        for (size_t i = 0; i < d.n; i++) index->addPoint(base + i * d.dim, (hnswlib::labeltype)i);
    } else {
        index->addPoint(base, 0);
        std::atomic<size_t> next(1);
        std::vector<std::thread> pool;
        for (int t = 0; t < a.threads; t++)
            pool.emplace_back([&]() {
                for (size_t i; (i = next.fetch_add(1)) < d.n;) index->addPoint(base + i * d.dim, (hnswlib::labeltype)i);
            });
        for (auto &th : pool) th.join();
    }
    bench_build_stop(&b);
    // hnswlib's own size: level-0 block (vectors, links, labels) + the upper levels' link lists
    double index_bytes = (double)index->max_elements_ * (double)index->size_data_per_element_;
    for (size_t i = 0; i < d.n; i++) index_bytes += (double)index->element_levels_[i] * index->size_links_per_element_;
    bench_log(engine, "built in %.2f s (CPU %.2f s), +%.0f MiB resident, index %.0f MiB", b.wall_s, b.cpu_s,
              b.rss_mb, index_bytes / 1048576.0);

    Ctx ctx{index};
    std::vector<bench_point> pts(BENCH_MAX_EF);
    int np = bench_curve(&ctx, set_ef, search, &d, &a, engine, pts.data());

    char extra[256];
    snprintf(extra, sizeof extra, "\"version\": \"%s\", \"memory_source\": \"rss\", \"index_mb\": %.1f", ENGINE_VERSION,
             index_bytes / 1048576.0);
    bench_print_json(engine, &d, &a, &b, pts.data(), np, extra);
    delete index;
    npy_free(&d.base);
    npy_free(&d.queries);
    npy_free(&d.gt);
    return 0;
}
