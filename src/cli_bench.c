/*
 * cli_bench.c - `sembed bench -m DIR`: load time, peak memory and encode
 * throughput of a model folder on fixed-length batches, printed as JSON.
 * The side-by-side comparison with ONNX Runtime and PyTorch is
 * bench/compare/run.sh; this is the quick per-model check.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli_io.h"
#include "cli_pull.h"
#include "sembed.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

int cmd_bench(int argc, char **argv);

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Builds a text that tokenizes to exactly n ids (specials included) from
 * one-token words of the model's vocabulary; returns NULL when it cannot. */
static char *text_of_tokens(const se_tokenizer *tok, size_t n) {
    static const char *words[] = {"the", "house", "water", "people", "city", "music", "light", "garden", "\xE2\x96\x81the", "a"};
    se_tokenize_params p = se_tokenize_default_params(tok);
    p.n_tokens_max = 0;
    int32_t ids[8];
    size_t k, base;
    if (se_tokenize(tok, "", 0, NULL, 0, &p, ids, NULL, 8, &base, NULL, NULL) != SE_OK || base >= n) return NULL;
    const char *w = NULL;
    for (size_t i = 0; i < sizeof words / sizeof *words && !w; i++) {
        if (se_tokenize(tok, words[i], strlen(words[i]), NULL, 0, &p, ids, NULL, 8, &k, NULL, NULL) == SE_OK && k == base + 1)
            w = words[i];
    }
    if (!w) return NULL;
    size_t need = n - base, wl = strlen(w);
    char *t = malloc(need * (wl + 1) + 1);
    if (!t) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < need; i++) {
        if (i) t[o++] = ' ';
        memcpy(t + o, w, wl);
        o += wl;
    }
    t[o] = 0;
    /* check: some tokenizers merge repeated words */
    int32_t *all = malloc((n + 8) * sizeof *all);
    bool ok = all && se_tokenize(tok, t, o, NULL, 0, &p, all, NULL, n + 8, &k, NULL, NULL) == SE_OK && k == n;
    free(all);
    if (!ok) {
        free(t);
        return NULL;
    }
    return t;
}

static const char bench_usage[] =
    "usage: sembed bench -m DIR [options]\n"
    "\n"
    "Load time, peak resident memory and encode throughput of a model, as one JSON object.\n"
    "Workloads: batches of --batch texts of each --tokens length, and one 16-token text (latency).\n"
    "\n"
    "  -m, --model DIR     model folder\n"
    "  -t, --threads N     threads (default 2)\n"
    "      --dtype D       f32 (default) or bf16\n"
    "      --batch N       texts per batch (default 32)\n"
    "      --tokens A,B    token lengths (default 32,128; capped at max_seq_length)\n"
    "      --runs N        timed runs per workload, median reported (default 5)\n"
    "  -h, --help          this help\n";

int cmd_bench(int argc, char **argv) {
    const char *model = NULL, *tokens = "32,128";
    long threads = 2, batch = 32, runs = 5;
    se_model_params mp = se_model_default_params();
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"threads", required_argument, 0, 't'},
                                         {"dtype", required_argument, 0, 'T'}, {"batch", required_argument, 0, 'b'},
                                         {"tokens", required_argument, 0, 'k'}, {"runs", required_argument, 0, 'r'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 't': if (cli_opt_long("bench", "-t/--threads", optarg, 1, 256, &threads)) return EXIT_USAGE; break;
        case 'T':
            if (cli_parse_dtype(optarg) < 0) {
                fprintf(stderr, "sembed: bench: --dtype must be f32, bf16 or int8\n");
                return EXIT_USAGE;
            }
            mp.dtype = (se_dtype)cli_parse_dtype(optarg);
            break;
        case 'b': if (cli_opt_long("bench", "--batch", optarg, 1, 4096, &batch)) return EXIT_USAGE; break;
        case 'k': tokens = optarg; break;
        case 'r': if (cli_opt_long("bench", "--runs", optarg, 1, 1000, &runs)) return EXIT_USAGE; break;
        case 'h': fputs(bench_usage, stdout); return 0;
        default: fputs(bench_usage, stderr); return EXIT_USAGE;
        }
    }
    if (!model) {
        fprintf(stderr, "sembed: bench: missing -m MODEL\n\n%s", bench_usage);
        return EXIT_USAGE;
    }
    if (optind != argc) {
        fprintf(stderr, "sembed: bench: unexpected argument '%s'\n\n%s", argv[optind], bench_usage);
        return EXIT_USAGE;
    }
    { /* every --tokens item a whole number */
        char *spec = strdup(tokens);
        long v;
        for (char *tk = spec ? strtok(spec, ",") : NULL; tk; tk = strtok(NULL, ","))
            if (cli_opt_long("bench", "--tokens", tk, 1, 1 << 16, &v)) {
                free(spec);
                return EXIT_USAGE;
            }
        free(spec);
    }
    se_error err = {0};
    se_model *m = NULL;
    se_ctx *ctx = NULL;
    double t0 = now_s();
    if (cli_model_load(model, &mp, &m, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        return EXIT_RUNTIME;
    }
    double load_ms = 1e3 * (now_s() - t0);
    se_ctx_params cp = se_ctx_default_params();
    cp.n_threads = (int32_t)threads;
    if (se_ctx_new(m, &cp, &ctx, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        se_model_free(m);
        return EXIT_RUNTIME;
    }
    se_model_info info;
    se_model_get_info(m, &info, NULL);
    size_t dim = se_encode_dim(m, NULL);
    int rc = 0;
    printf("{\"bench\": \"sembed\", \"version\": \"%s\", \"model\": \"%s\", \"threads\": %ld, \"dtype\": \"%s\", \"load_ms\": %.2f, "
           "\"results\": [",
           se_version(), model, threads, cli_dtype_name(mp.dtype), load_ms);
    char *spec = strdup(tokens);
    int first = 1;
    /* the batched workloads, then one 16-token text */
    for (char *tk = strtok(spec, ","); tk || first >= 0; tk = tk ? strtok(NULL, ",") : NULL) {
        long nt = tk ? strtol(tk, NULL, 10) : 16;
        long nb = tk ? batch : 1;
        if (nt < 3) nt = 3;
        if (nt > info.n_tokens_max) nt = info.n_tokens_max;
        char *text = text_of_tokens(se_model_tokenizer(m), (size_t)nt);
        if (!text) {
            fprintf(stderr, "sembed: bench: cannot build a %ld-token text for this tokenizer\n", nt);
            rc = EXIT_RUNTIME;
            break;
        }
        const char **texts = malloc((size_t)nb * sizeof *texts);
        float *out = malloc((size_t)nb * dim * sizeof *out);
        double *times = malloc((size_t)runs * sizeof *times);
        for (long i = 0; i < nb; i++) texts[i] = text;
        int reps = tk ? 1 : 20; /* latency: many calls per timed run */
        se_encode(ctx, texts, NULL, (size_t)nb, NULL, out, (size_t)nb * dim, NULL, &err); /* warm-up */
        for (long r = 0; r < runs; r++) {
            double s = now_s();
            for (int k = 0; k < reps; k++)
                if (se_encode(ctx, texts, NULL, (size_t)nb, NULL, out, (size_t)nb * dim, NULL, &err) != SE_OK) rc = EXIT_RUNTIME;
            times[r] = (now_s() - s) / reps;
        }
        qsort(times, (size_t)runs, sizeof *times, cmp_double);
        double med = times[runs / 2];
        if (tk)
            printf("%s{\"workload\": \"%ldx%ld\", \"sentences_per_s\": %.2f, \"tokens_per_s\": %.1f, \"median_s\": %.6f}",
                   first ? "" : ", ", nb, nt, nb / med, nb * nt / med, med);
        else
            printf("%s{\"workload\": \"1x%ld\", \"latency_ms\": %.3f}", first ? "" : ", ", nt, 1e3 * med);
        first = 0;
        free(texts), free(out), free(times), free(text);
        if (!tk) break;
    }
    free(spec);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("], \"peak_rss_mb\": %.1f}\n", ru.ru_maxrss / 1024.0);
    if (rc) fprintf(stderr, "sembed: bench: %s\n", err.msg);
    se_ctx_free(ctx);
    se_model_free(m);
    return rc;
}
