/*
 * cli_eval.c - `sembed eval sts` and `sembed search`: evaluation and a
 * brute-force semantic search over a small corpus, on the public API.
 *
 * eval sts: sentence-transformers' EmbeddingSimilarityEvaluator: cosine
 * similarity of each pair's embeddings against the gold score, Spearman
 * (average ranks for ties) and Pearson correlations, x100. Two formats:
 * the STS Benchmark TSV (split genre dataset year sid score s1 s2, header
 * line, optionally gzipped) and plain "s1<TAB>s2<TAB>score" lines.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cli_io.h"
#include "cli_pull.h"
#include "sembed.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

int cmd_eval(int argc, char **argv);
int cmd_search_corpus(int argc, char **argv);
int cmd_eval_ir(int argc, char **argv); /* cli_eval_ir.c */

/* ==== statistics ==== */

/* Pearson correlation of x and y. */
static double pearson(const double *x, const double *y, size_t n) {
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= (double)n, my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0.0;
}

static const double *rank_keys;

static int by_key(const void *a, const void *b) {
    double x = rank_keys[*(const size_t *)a], y = rank_keys[*(const size_t *)b];
    return x < y ? -1 : x > y;
}

/* Ranks (1-based, ties get their average rank), as scipy.stats.rankdata. */
static void ranks(const double *v, size_t n, double *r) {
    size_t *idx = malloc(n * sizeof *idx);
    for (size_t i = 0; i < n; i++) idx[i] = i;
    rank_keys = v;
    qsort(idx, n, sizeof *idx, by_key);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && v[idx[j + 1]] == v[idx[i]]) j++;
        double avg = (double)(i + j) / 2.0 + 1.0;
        for (size_t k = i; k <= j; k++) r[idx[k]] = avg;
        i = j + 1;
    }
    free(idx);
}

/* ==== reading pairs ==== */

typedef struct pairs {
    char **a, **b;
    double *gold;
    size_t n, cap;
} pairs;

static int add_pair(pairs *p, const char *a, const char *b, double g) {
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 1024;
        p->a = realloc(p->a, p->cap * sizeof *p->a);
        p->b = realloc(p->b, p->cap * sizeof *p->b);
        p->gold = realloc(p->gold, p->cap * sizeof *p->gold);
        if (!p->a || !p->b || !p->gold) return -1;
    }
    p->a[p->n] = strdup(a), p->b[p->n] = strdup(b), p->gold[p->n] = g;
    if (!p->a[p->n] || !p->b[p->n]) return -1;
    p->n++;
    return 0;
}

/* Splits line at tabs into at most max fields; returns the count. */
static int split_tabs(char *line, char **f, int max) {
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == '\t') *p = 0, f[n++] = p + 1;
    return n;
}

/* Reads an STS file (gzip or plain) into p; split filters the STS-B
 * format. Errors name the line. */
static int read_sts(const char *path, const char *split, pairs *p) {
    gzFile g = gzopen(path, "rb");
    if (!g) {
        fprintf(stderr, "sembed: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    char line[65536];
    size_t no = 0;
    int stsb = -1;
    while (gzgets(g, line, sizeof line)) {
        no++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            fprintf(stderr, "sembed: %s:%zu: line too long\n", path, no);
            gzclose(g);
            return -1;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!len) continue;
        char *f[9];
        if (stsb < 0) {
            stsb = strncmp(line, "split\tgenre", 11) == 0;
            if (stsb) continue;
        }
        int nf = split_tabs(line, f, 9);
        const char *s1, *s2, *sc, *sp = NULL;
        if (stsb) {
            if (nf != 8) {
                fprintf(stderr, "sembed: %s:%zu: expected 8 tab-separated fields (STS Benchmark format), got %d\n", path, no, nf);
                gzclose(g);
                return -1;
            }
            sp = f[0], sc = f[5], s1 = f[6], s2 = f[7];
        } else {
            if (nf != 3) {
                fprintf(stderr, "sembed: %s:%zu: expected s1<TAB>s2<TAB>score, got %d fields\n", path, no, nf);
                gzclose(g);
                return -1;
            }
            s1 = f[0], s2 = f[1], sc = f[2];
        }
        char *end;
        double gold = strtod(sc, &end);
        if (end == sc || *end || !isfinite(gold)) {
            fprintf(stderr, "sembed: %s:%zu: score '%s' is not a number\n", path, no, sc);
            gzclose(g);
            return -1;
        }
        if (sp && split && strcmp(sp, split) != 0) continue;
        if (add_pair(p, s1, s2, gold)) {
            fprintf(stderr, "sembed: out of memory\n");
            gzclose(g);
            return -1;
        }
    }
    int bad = !gzeof(g);
    gzclose(g);
    if (bad) {
        fprintf(stderr, "sembed: %s: read error (corrupt gzip?)\n", path);
        return -1;
    }
    return 0;
}

static void pairs_free(pairs *p) {
    for (size_t i = 0; i < p->n; i++) free(p->a[i]), free(p->b[i]);
    free(p->a), free(p->b), free(p->gold);
}

/* Encodes n texts in chunks of 64, with the progress line (texts/s, ETA)
 * unless quiet. */
static int encode_all(se_ctx *ctx, const se_model *m, char **texts, size_t n, float *out, size_t dim, bool quiet) {
    se_error err;
    const size_t chunk = 64;
    cli_progress p;
    cli_progress_start(&p, "encoding", "texts", n);
    if (quiet) p.mode = 0;
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        if (se_encode(ctx, (const char *const *)texts + i, NULL, k, NULL, out + i * dim, k * dim, NULL, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s\n", err.msg);
            return -1;
        }
        cli_progress_update(&p, i + k, -1);
    }
    cli_progress_end(&p);
    (void)m;
    return 0;
}

static const char eval_usage[] =
    "usage: sembed eval sts -m DIR FILE [--split test|dev|train] [--json]\n"
    "       sembed eval ir -m DIR BEIR_DIR [options]   (retrieval metrics; sembed eval ir --help)\n"
    "\n"
    "Spearman and Pearson correlation (x100) between the cosine similarity of each pair's\n"
    "embeddings and the gold score, as sentence-transformers' EmbeddingSimilarityEvaluator.\n"
    "FILE: the STS Benchmark TSV (gzipped or not; --split picks the split, default test)\n"
    "or plain s1<TAB>s2<TAB>score lines.\n"
    "\n"
    "  -m, --model DIR    model folder\n"
    "      --split NAME   STS Benchmark split (test, dev, train)\n"
    "  -t, --threads N    threads\n"
    "      --dtype D      f32 (default), bf16 (weights in bf16; AVX-512) or int8 (AVX512-VNNI)\n"
    "      --json         print one JSON object\n"
    "  -q, --quiet        no progress on stderr\n"
    "  -h, --help         this help\n";

/* The task word of `sembed eval ...`: the first argument that is neither
 * an option nor the value of one (the options of eval sts and eval ir that
 * take a separate value are listed); NULL when there is none. */
static const char *eval_task(int argc, char **argv) {
    static const char *const with_value[] = {"-m", "--model", "--split", "--dtype", "-t", "--threads", "--index",
                                             "--fusion", "--alpha", "--ef-search", "--rerank", "--rerank-top",
                                             "--query-prompt", "--query-prompt-name", "--doc-prompt",
                                             "--doc-prompt-name", "--run", NULL};
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-') return argv[i];
        if (!strcmp(argv[i], "--")) return i + 1 < argc ? argv[i + 1] : NULL;
        for (size_t k = 0; with_value[k]; k++)
            if (!strcmp(argv[i], with_value[k])) {
                i++;
                break;
            }
    }
    return NULL;
}

int cmd_eval(int argc, char **argv) {
    const char *task = eval_task(argc, argv);
    if (task && !strcmp(task, "ir")) return cmd_eval_ir(argc, argv);
    const char *model = NULL, *split = "test";
    int json = 0, quiet = 0;
    long threads = 0;
    se_model_params mp = se_model_default_params();
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"split", required_argument, 0, 's'},
                                         {"dtype", required_argument, 0, 'T'},
                                         {"threads", required_argument, 0, 't'}, {"json", no_argument, 0, 'j'},
                                         {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 's': split = optarg; break;
        case 'T':
            if (cli_parse_dtype(optarg) < 0) {
                fprintf(stderr, "sembed: eval: --dtype must be f32, bf16 or int8\n");
                return EXIT_USAGE;
            }
            mp.dtype = (se_dtype)cli_parse_dtype(optarg);
            break;
        case 't': if (cli_opt_long("eval", "-t/--threads", optarg, 1, 256, &threads)) return EXIT_USAGE; break;
        case 'j': json = 1; break;
        case 'q': quiet = 1; break;
        case 'h': fputs(eval_usage, stdout); return 0;
        default: fputs(eval_usage, stderr); return EXIT_USAGE;
        }
    }
    if (!model) return cli_usage_error(eval_usage, "eval: missing -m MODEL");
    if (optind == argc) return cli_usage_error(eval_usage, "eval: missing the task (sts)");
    if (strcmp(argv[optind], "sts") != 0)
        return cli_usage_error(eval_usage, "eval: unknown task '%s' (sts or ir)", argv[optind]);
    if (optind == argc - 1) return cli_usage_error(eval_usage, "eval sts: missing FILE");
    if (optind != argc - 2) return cli_usage_error(eval_usage, "eval sts: unexpected argument '%s'", argv[optind + 2]);
    const char *path = argv[optind + 1];
    if (strcmp(split, "test") && strcmp(split, "dev") && strcmp(split, "train")) {
        fprintf(stderr, "sembed: eval: --split must be test, dev or train\n");
        return EXIT_USAGE;
    }
    pairs p = {0};
    if (read_sts(path, split, &p)) {
        pairs_free(&p);
        return EXIT_RUNTIME;
    }
    if (p.n < 2) {
        fprintf(stderr, "sembed: %s: fewer than 2 pairs (split '%s')\n", path, split);
        pairs_free(&p);
        return EXIT_RUNTIME;
    }
    se_error err = {0};
    se_model *m = NULL;
    se_ctx *ctx = NULL;
    int rc = EXIT_RUNTIME;
    float *ea = NULL, *eb = NULL, *sim = NULL;
    double *cs = NULL, *r1 = NULL, *r2 = NULL;
    if (cli_model_load(model, &mp, &m, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    se_ctx_params cp = se_ctx_default_params();
    cp.n_threads = (int32_t)threads;
    if (se_ctx_new(m, &cp, &ctx, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    size_t dim = se_encode_dim(m, NULL);
    ea = malloc(p.n * dim * sizeof *ea), eb = malloc(p.n * dim * sizeof *eb);
    cs = malloc(p.n * sizeof *cs), r1 = malloc(p.n * sizeof *r1), r2 = malloc(p.n * sizeof *r2);
    sim = malloc(sizeof *sim);
    if (!ea || !eb || !cs || !r1 || !r2 || !sim) goto done;
    if (encode_all(ctx, m, p.a, p.n, ea, dim, quiet) || encode_all(ctx, m, p.b, p.n, eb, dim, quiet)) goto done;
    for (size_t i = 0; i < p.n; i++) {
        if (se_similarity_matrix(SE_SIM_COSINE, ea + i * dim, 1, eb + i * dim, 1, dim, sim, &err) != SE_OK) goto done;
        cs[i] = *sim;
    }
    double pr = pearson(p.gold, cs, p.n) * 100;
    ranks(p.gold, p.n, r1);
    ranks(cs, p.n, r2);
    double sr = pearson(r1, r2, p.n) * 100;
    if (json)
        printf("{\"task\": \"sts\", \"file\": \"%s\", \"split\": \"%s\", \"dtype\": \"%s\", \"pairs\": %zu, \"spearman\": %.4f, "
               "\"pearson\": %.4f}\n",
               path, split, cli_dtype_name(mp.dtype), p.n, sr, pr);
    else
        printf("sts %s (%zu pairs): spearman %.2f  pearson %.2f\n", path, p.n, sr, pr);
    rc = 0;
done:
    free(ea), free(eb), free(cs), free(r1), free(r2), free(sim);
    pairs_free(&p);
    se_ctx_free(ctx);
    se_model_free(m);
    return rc;
}

/* ==== search ==== */

static const char search_usage[] =
    "usage: sembed search -m DIR -c CORPUS [-k N] QUERY...\n"
    "\n"
    "Brute-force semantic search: encodes every line of CORPUS and each QUERY, and prints the\n"
    "k most similar corpus lines per query with their scores (the model's similarity function),\n"
    "in the layout of `sembed search INDEX` (a line's id is its line number).\n"
    "\n"
    "  -m, --model DIR     model folder\n"
    "  -c, --corpus FILE   one document per line\n"
    "  -k, --top-k N       matches per query (default 10)\n"
    "      --json          one JSON object per query: {\"query\", \"results\": [{\"id\", \"score\",\n"
    "                      \"chunk\", \"text\", \"metadata\"}]} (id: the line number, as a string)\n"
    "  -h, --help          this help\n";

static const float *rank_scores;

static int by_score_desc(const void *a, const void *b) {
    float x = rank_scores[*(const size_t *)a], y = rank_scores[*(const size_t *)b];
    if (x != y) return x > y ? -1 : 1;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1; /* stable: earlier line first */
}


int cmd_search_corpus(int argc, char **argv) {
    const char *model = NULL, *corpus = NULL;
    long k = 10;
    int json = 0;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"corpus", required_argument, 0, 'c'},
                                         {"top-k", required_argument, 0, 'k'}, {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:c:k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'c': corpus = optarg; break;
        case 'k': if (cli_opt_long("search", "-k/--top-k", optarg, 1, 100000, &k)) return EXIT_USAGE; break;
        case 'j': json = 1; break;
        case 'h': fputs(search_usage, stdout); return 0;
        default: fputs(search_usage, stderr); return EXIT_USAGE;
        }
    }
    if (!model) return cli_usage_error(search_usage, "search: missing -m MODEL (to search a corpus file)");
    if (!corpus) return cli_usage_error(search_usage, "search: missing -c CORPUS");
    if (optind >= argc) return cli_usage_error(search_usage, "search: missing QUERY");
    cli_reader rd = {0};
    rd.f = fopen(corpus, "rb");
    rd.name = corpus;
    if (!rd.f) {
        fprintf(stderr, "sembed: %s: cannot open: %s\n", corpus, strerror(errno));
        return EXIT_RUNTIME;
    }
    char **docs = NULL, ebuf[512];
    size_t n = 0, cap = 0;
    cli_record rec;
    int r;
    while ((r = cli_read(&rd, &rec, ebuf, sizeof ebuf)) == 1) {
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            docs = realloc(docs, cap * sizeof *docs);
        }
        docs[n++] = strdup(rec.text);
    }
    cli_reader_free(&rd);
    int rc = EXIT_RUNTIME;
    se_error err = {0};
    se_model *m = NULL;
    se_ctx *ctx = NULL;
    float *de = NULL, *qe = NULL, *sc = NULL;
    size_t *idx = NULL, nq = (size_t)(argc - optind);
    if (r < 0) {
        fprintf(stderr, "sembed: %s\n", ebuf);
        goto done;
    }
    if (cli_model_load(model, NULL, &m, &err) != SE_OK || se_ctx_new(m, NULL, &ctx, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    se_model_info info;
    se_model_get_info(m, &info, NULL);
    size_t dim = se_encode_dim(m, NULL);
    { /* texts the model cannot read: corpus lines, then queries */
        cli_unk unk;
        char where[600];
        cli_unk_init(&unk, se_model_tokenizer(m));
        for (size_t i = 0; i < n; i++) {
            snprintf(where, sizeof where, "%s:%zu", corpus, i + 1);
            cli_unk_check(&unk, docs[i], strlen(docs[i]), where);
        }
        cli_unk_finish(&unk, "lines");
        cli_unk_init(&unk, se_model_tokenizer(m));
        for (size_t q = 0; q < nq; q++) {
            snprintf(where, sizeof where, "query %zu", q + 1);
            cli_unk_check(&unk, argv[optind + q], strlen(argv[optind + q]), where);
        }
        cli_unk_finish(&unk, "queries");
    }
    de = malloc((n ? n : 1) * dim * sizeof *de), qe = malloc(nq * dim * sizeof *qe);
    sc = malloc((n ? n : 1) * sizeof *sc), idx = malloc((n ? n : 1) * sizeof *idx);
    if (!de || !qe || !sc || !idx) goto done;
    if (encode_all(ctx, m, docs, n, de, dim, true) ||
        se_encode(ctx, (const char *const *)argv + optind, NULL, nq, NULL, qe, nq * dim, NULL, &err) != SE_OK) {
        if (err.msg[0]) fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    for (size_t q = 0; q < nq; q++) {
        if (n && se_similarity_matrix(info.similarity, qe + q * dim, 1, de, n, dim, sc, &err) != SE_OK) {
            fprintf(stderr, "sembed: %s\n", err.msg);
            goto done;
        }
        for (size_t i = 0; i < n; i++) idx[i] = i;
        rank_scores = sc;
        qsort(idx, n, sizeof *idx, by_score_desc);
        size_t top = (size_t)k < n ? (size_t)k : n;
        /* the same layout as `sembed search INDEX`: a corpus line is a
         * document whose id is its line number, in one chunk, no metadata */
        if (json) {
            fputs("{\"query\": ", stdout);
            cli_print_json_string(stdout, argv[optind + q]);
            fputs(", \"results\": [", stdout);
            for (size_t i = 0; i < top; i++) {
                printf("%s{\"id\": \"%zu\", \"score\": ", i ? ", " : "", idx[i] + 1);
                cli_print_float(stdout, sc[idx[i]]);
                fputs(", \"chunk\": 0, \"text\": ", stdout);
                cli_print_json_string(stdout, docs[idx[i]]);
                fputs(", \"metadata\": {}}", stdout);
            }
            fputs("]}\n", stdout);
        } else {
            printf("%s%s\n", q ? "\n" : "", argv[optind + q]);
            for (size_t i = 0; i < top; i++) printf("  %2zu. %.4f  [%zu] %s\n", i + 1, (double)sc[idx[i]], idx[i] + 1, docs[idx[i]]);
        }
    }
    rc = fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
done:
    for (size_t i = 0; i < n; i++) free(docs[i]);
    free(docs), free(de), free(qe), free(sc), free(idx);
    se_ctx_free(ctx);
    se_model_free(m);
    return rc;
}
