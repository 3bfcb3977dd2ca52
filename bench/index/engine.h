/* bench/index/engine.h - what every index benchmark engine shares (C99 and C++).
 *
 * The command line contract (README.md):
 *
 *   ENGINE --base base.npy --queries q.npy --gt gt.npy [--M 16] [--efc 200]
 *          [--ef 10,16,24,32,48,64,96,128,192,256] [--k 10] [--threads 1]
 *
 * and, beyond the contract, [--min-time S] (default: $BENCH_MIN_TIME, else 1) and [--index NAME].
 *
 * An engine loads the three arrays (bench_load), builds its index on --threads threads and
 * times that, then calls bench_curve with a search callback: for each ef, every query is
 * searched one at a time on the calling thread, recall@k is taken against the first k
 * ground-truth ids, and passes over all queries are repeated until --min-time seconds (and at
 * least 3 passes) have been timed; qps is from the median pass. bench_print_json writes the
 * ONE JSON object the engine prints on stdout. Progress and errors go to stderr; an error
 * exits with status 1 (usage errors with 2).
 *
 * Header-only: every function is static.
 */
#ifndef SEMBED_BENCH_ENGINE_H
#define SEMBED_BENCH_ENGINE_H

#include "npy.h" /* first: it sets _POSIX_C_SOURCE when needed */

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_EF 64

typedef struct {
    const char *base, *queries, *gt;
    int M, efc, k, threads;
    int ef[BENCH_MAX_EF];
    int n_ef;
    double min_time;   /* seconds of timed search per ef */
    const char *index; /* --index NAME, for engines with more than one index kind (or NULL) */
} bench_args;

typedef struct {
    int ef; /* 0 for an index without an ef (exact search): printed as null */
    double recall, qps, us_per_query;
    double cpu_us_per_query; /* the search thread's CPU time: well below us_per_query = contention */
    long passes;             /* timed passes over all queries (qps is from the median one) */
} bench_point;

/* the build's cost: bench_build_start before, bench_build_stop after */
typedef struct {
    double wall_s, cpu_s; /* wall clock; CPU time of the whole process (all build threads) */
    double rss_mb;        /* growth of the resident set */
} bench_build;

typedef struct {
    npy_array base, queries, gt;
    size_t n, dim, nq;
} bench_data;

/* search one query, write k ids (int64; -1 for "none") to ids */
typedef void (*bench_search_fn)(void *ctx, const float *query, int k, int64_t *ids);
/* prepare the index for the given ef (ignored when the engine has none) */
typedef void (*bench_set_ef_fn)(void *ctx, int ef);

static void bench_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void bench_log(const char *engine, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s] ", engine);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double bench_cpu(clockid_t which) {
    struct timespec ts;
    clock_gettime(which, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* resident set size of this process in MiB, from /proc/self/statm */
static double bench_rss_mb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages_total = 0, pages_rss = 0;
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages_total, &pages_rss) != 2) pages_rss = 0;
    fclose(f);
    return (double)pages_rss * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static void bench_build_start(bench_build *b) {
    b->rss_mb = bench_rss_mb();
    b->cpu_s = bench_cpu(CLOCK_PROCESS_CPUTIME_ID);
    b->wall_s = bench_now();
}

static void bench_build_stop(bench_build *b) {
    b->wall_s = bench_now() - b->wall_s;
    b->cpu_s = bench_cpu(CLOCK_PROCESS_CPUTIME_ID) - b->cpu_s;
    b->rss_mb = bench_rss_mb() - b->rss_mb;
}

static void bench_usage(FILE *out, const char *prog, const char *extra) {
    fprintf(out,
            "usage: %s --base base.npy --queries q.npy --gt gt.npy [--M 16] [--efc 200]\n"
            "          [--ef 10,16,24,32,48,64,96,128,192,256] [--k 10] [--threads 1] [--min-time 1]%s\n"
            "\n"
            "Builds an inner-product index over base (float32 [n, dim]) on --threads threads, then for\n"
            "each ef searches every query (float32 [nq, dim]) one at a time on one thread, repeating\n"
            "the pass until --min-time seconds have been timed, and scores recall@k against the first\n"
            "k ids of each row of gt (int32 [nq, >=k]). Prints one JSON object on stdout.\n",
            prog, extra ? extra : "");
}

static int bench_int_arg(const char *opt, const char *v, int lo) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == 0 || *end != 0 || x < lo || x > 1000000000L) {
        fprintf(stderr, "error: %s needs an integer >= %d, not '%s'\n", opt, lo, v);
        exit(2);
    }
    return (int)x;
}

/* parses the contract's options; 'extra' is appended to the usage line (e.g. " [--index hnsw|flat]") */
static void bench_parse_args(int argc, char **argv, bench_args *a, const char *extra) {
    static const int default_ef[] = {10, 16, 24, 32, 48, 64, 96, 128, 192, 256};
    memset(a, 0, sizeof *a);
    a->M = 16;
    a->efc = 200;
    a->k = 10;
    a->threads = 1;
    a->min_time = 1.0;
    const char *env = getenv("BENCH_MIN_TIME"); /* run.sh passes it this way: it is not in the contract */
    if (env && *env) {
        char *end;
        double v = strtod(env, &end);
        if (*end == 0 && v >= 0) a->min_time = v;
    }
    a->n_ef = (int)(sizeof default_ef / sizeof default_ef[0]);
    memcpy(a->ef, default_ef, sizeof default_ef);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            bench_usage(stdout, argv[0], extra);
            exit(0);
        }
        if (i + 1 >= argc || strncmp(o, "--", 2) != 0) {
            fprintf(stderr, "error: unknown argument or missing value: %s\n", o);
            bench_usage(stderr, argv[0], extra);
            exit(2);
        }
        const char *v = argv[++i];
        if (!strcmp(o, "--base")) a->base = v;
        else if (!strcmp(o, "--queries")) a->queries = v;
        else if (!strcmp(o, "--gt")) a->gt = v;
        else if (!strcmp(o, "--M")) a->M = bench_int_arg(o, v, 2);
        else if (!strcmp(o, "--efc")) a->efc = bench_int_arg(o, v, 1);
        else if (!strcmp(o, "--k")) a->k = bench_int_arg(o, v, 1);
        else if (!strcmp(o, "--threads")) a->threads = bench_int_arg(o, v, 1);
        else if (!strcmp(o, "--index")) a->index = v;
        else if (!strcmp(o, "--min-time")) {
            char *end;
            a->min_time = strtod(v, &end);
            if (*v == 0 || *end != 0 || a->min_time < 0) {
                fprintf(stderr, "error: --min-time needs seconds >= 0, not '%s'\n", v);
                exit(2);
            }
        } else if (!strcmp(o, "--ef")) {
            a->n_ef = 0;
            char buf[1024];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                if (a->n_ef == BENCH_MAX_EF) {
                    fprintf(stderr, "error: at most %d --ef values\n", BENCH_MAX_EF);
                    exit(2);
                }
                a->ef[a->n_ef++] = bench_int_arg("--ef", tok, 1);
            }
            if (a->n_ef == 0) {
                fprintf(stderr, "error: --ef needs a comma-separated list of integers\n");
                exit(2);
            }
        } else {
            fprintf(stderr, "error: unknown option %s\n", o);
            bench_usage(stderr, argv[0], extra);
            exit(2);
        }
    }
    if (!a->base || !a->queries || !a->gt) {
        fprintf(stderr, "error: --base, --queries and --gt are required\n");
        bench_usage(stderr, argv[0], extra);
        exit(2);
    }
}

/* loads and checks the three arrays against each other and k */
static void bench_load(const bench_args *a, bench_data *d) {
    char err[512];
    if (npy_load(a->base, &d->base, err, sizeof err)) bench_die("%s", err);
    if (npy_load(a->queries, &d->queries, err, sizeof err)) bench_die("%s", err);
    if (npy_load(a->gt, &d->gt, err, sizeof err)) bench_die("%s", err);
    if (d->base.dtype != NPY_F32 || d->base.ndim != 2) bench_die("%s: need a 2-D float32 array", a->base);
    if (d->queries.dtype != NPY_F32 || d->queries.ndim != 2) bench_die("%s: need a 2-D float32 array", a->queries);
    if (d->gt.dtype != NPY_I32 || d->gt.ndim != 2) bench_die("%s: need a 2-D int32 array", a->gt);
    d->n = d->base.rows;
    d->dim = d->base.cols;
    d->nq = d->queries.rows;
    if (d->n == 0 || d->nq == 0) bench_die("empty base or query set");
    if (d->queries.cols != d->dim)
        bench_die("queries have dim %zu but the base has dim %zu", d->queries.cols, d->dim);
    if (d->gt.rows != d->nq) bench_die("gt has %zu rows for %zu queries", d->gt.rows, d->nq);
    if (d->gt.cols < (size_t)a->k) bench_die("gt has %zu neighbours per query, fewer than --k %d", d->gt.cols, a->k);
    if ((size_t)a->k > d->n) bench_die("--k %d is larger than the base (%zu)", a->k, d->n);
    const int32_t *g = npy_i32(&d->gt);
    for (size_t i = 0; i < d->gt.rows * d->gt.cols; i++)
        if (g[i] < 0 || (size_t)g[i] >= d->n) bench_die("gt id %d at %zu is out of range [0, %zu)", g[i], i, d->n);
}

/* recall@k of one query's ids against the first k gt ids */
static int bench_hits(const int64_t *ids, const int32_t *gt_row, int k) {
    int hits = 0;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++)
            if (ids[i] == gt_row[j]) {
                hits++;
                break;
            }
    return hits;
}

static int bench__cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* one pass over all queries; fills ids (nq * k) and returns the seconds it took (and in *cpu
   the thread's CPU seconds) */
static double bench_pass(void *ctx, bench_search_fn search, const bench_data *d, int k, int64_t *ids, double *cpu) {
    const float *q = npy_f32(&d->queries);
    double c0 = bench_cpu(CLOCK_THREAD_CPUTIME_ID), t0 = bench_now();
    for (size_t i = 0; i < d->nq; i++) search(ctx, q + i * d->dim, k, ids + i * (size_t)k);
    double t = bench_now() - t0;
    *cpu = bench_cpu(CLOCK_THREAD_CPUTIME_ID) - c0;
    return t;
}

static double bench__median(double *v, size_t n) {
    qsort(v, n, sizeof(double), bench__cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* one point of the curve: recall from the first pass. Speed: when the first pass alone took
   min_time it is the measurement; otherwise it was a warm-up, and passes are timed until they
   add up to min_time and number at least 3. qps comes from the MEDIAN pass time, so a pass
   slowed by another process on the machine does not move it. */
static bench_point bench_run_point(void *ctx, bench_search_fn search, const bench_data *d, int k, int ef,
                                   double min_time) {
    bench_point p;
    memset(&p, 0, sizeof p);
    p.ef = ef;
    int64_t *ids = (int64_t *)malloc(d->nq * (size_t)k * sizeof(int64_t));
    size_t cap = 64, np = 0;
    double *times = (double *)malloc(cap * sizeof(double)), *cpus = (double *)malloc(cap * sizeof(double));
    if (!ids || !times || !cpus) bench_die("out of memory");
    for (size_t i = 0; i < d->nq * (size_t)k; i++) ids[i] = -1;
    double cpu, t = bench_pass(ctx, search, d, k, ids, &cpu);
    long hits = 0;
    const int32_t *g = npy_i32(&d->gt);
    for (size_t i = 0; i < d->nq; i++) hits += bench_hits(ids + i * (size_t)k, g + i * d->gt.cols, k);
    p.recall = (double)hits / ((double)d->nq * k);
    if (t >= min_time) {
        times[np] = t;
        cpus[np++] = cpu;
    } else {
        double total = 0;
        while (total < min_time || np < 3) {
            if (np == cap) {
                cap *= 2;
                times = (double *)realloc(times, cap * sizeof(double));
                cpus = (double *)realloc(cpus, cap * sizeof(double));
                if (!times || !cpus) bench_die("out of memory");
            }
            times[np] = bench_pass(ctx, search, d, k, ids, &cpus[np]);
            total += times[np++];
        }
    }
    double median = bench__median(times, np), median_cpu = bench__median(cpus, np);
    free(times);
    free(cpus);
    free(ids);
    p.passes = (long)np;
    p.qps = (double)d->nq / median;
    p.us_per_query = 1e6 / p.qps;
    p.cpu_us_per_query = 1e6 * median_cpu / (double)d->nq;
    return p;
}

/* the whole curve: n_ef points, or one point (ef 0) when set_ef is NULL */
static int bench_curve(void *ctx, bench_set_ef_fn set_ef, bench_search_fn search, const bench_data *d,
                       const bench_args *a, const char *engine, bench_point *out) {
    int np = set_ef ? a->n_ef : 1;
    for (int i = 0; i < np; i++) {
        int ef = set_ef ? a->ef[i] : 0;
        if (set_ef) set_ef(ctx, ef);
        out[i] = bench_run_point(ctx, search, d, a->k, ef, a->min_time);
        bench_log(engine, "ef %d: recall@%d %.4f, %.0f qps (%.1f us/query, CPU %.1f us; %ld passes)", ef, a->k,
                  out[i].recall, out[i].qps, out[i].us_per_query, out[i].cpu_us_per_query, out[i].passes);
    }
    return np;
}

static void bench_json_str(FILE *o, const char *s) {
    fputc('"', o);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(o, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(o, "\\u%04x", *s);
        else fputc(*s, o);
    }
    fputc('"', o);
}

/* the engine's one JSON object; 'extra' is raw JSON members to add (e.g. "\"version\": \"1.7.3\"") or NULL */
static void bench_print_json(const char *engine, const bench_data *d, const bench_args *a, const bench_build *b,
                             const bench_point *pts, int np, const char *extra) {
    FILE *o = stdout;
    fprintf(o, "{\"engine\": ");
    bench_json_str(o, engine);
    fprintf(o, ", \"n\": %zu, \"dim\": %zu, \"nq\": %zu, \"k\": %d, \"M\": %d, \"efc\": %d, \"threads\": %d", d->n,
            d->dim, d->nq, a->k, a->M, a->efc, a->threads);
    fprintf(o, ", \"build_s\": %.3f, \"build_cpu_s\": %.3f, \"memory_mb\": %.1f", b->wall_s, b->cpu_s, b->rss_mb);
    if (extra && *extra) fprintf(o, ", %s", extra);
    fprintf(o, ", \"curve\": [");
    for (int i = 0; i < np; i++) {
        fprintf(o, "%s{\"ef\": ", i ? ", " : "");
        if (pts[i].ef > 0) fprintf(o, "%d", pts[i].ef);
        else fprintf(o, "null");
        fprintf(o, ", \"recall\": %.4f, \"qps\": %.1f, \"us_per_query\": %.2f, \"cpu_us_per_query\": %.2f}",
                pts[i].recall, pts[i].qps, pts[i].us_per_query, pts[i].cpu_us_per_query);
    }
    fprintf(o, "]}\n");
    fflush(o);
}

#endif
