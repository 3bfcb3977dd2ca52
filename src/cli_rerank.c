/*
 * cli_rerank.c - `sembed rerank`: a cross-encoder scores each document
 * against a query and the documents are printed best first, as
 * sentence-transformers' CrossEncoder.rank; and the cross-encoder lines of
 * `sembed info`. On the public API only (se_predict in chunks, for the
 * progress line, then the same order as se_rank: score, then input order).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_io.h"
#include "cli_pull.h"
#include "sembed.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

int cmd_rerank(int argc, char **argv);
void cli_rerank_info(const se_model_info *in, int json);

static const char rerank_usage[] =
    "usage: sembed rerank -m DIR [options] QUERY\n"
    "\n"
    "Scores every document (one per line of -i FILE or stdin) against QUERY with a\n"
    "cross-encoder (a reranker such as cross-encoder/ms-marco-MiniLM-L6-v2 or\n"
    "BAAI/bge-reranker-base) and prints them best first, as sentence-transformers'\n"
    "CrossEncoder.rank: rank, score, [line] text. Ties keep input order.\n"
    "\n"
    "  -m, --model DIR     cross-encoder folder (config.json *ForSequenceClassification, one label)\n"
    "  -i, --input FILE    documents, one per line (default: stdin)\n"
    "  -k, --top-k N       print the best N (default: all)\n"
    "      --json          one JSON object per line: {\"rank\", \"line\", \"index\", \"score\", \"text\"}\n"
    "      --raw-scores    the raw logits instead of the model's activation (sigmoid, ...)\n"
    "  -t, --threads N     threads\n"
    "      --dtype D       f32 (default), bf16 (weights in bf16; AVX-512) or int8 (AVX512-VNNI)\n"
    "  -q, --quiet         no progress or notes on stderr (warnings, e.g. truncation, still)\n"
    "      --progress      progress (documents/s, ETA) even when stderr is not a terminal\n"
    "  -h, --help          this help\n";

/* One document: its text (owned) and its score. */
typedef struct doc {
    char *text;
    size_t len;
    float score;
    size_t index;
} doc;

/* Highest score first, then input order (CrossEncoder.rank's stable sort). */
static int by_score(const void *x, const void *y) {
    const doc *a = x, *b = y;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* Reads every line of rd into *docs (*n of them). Returns 0, or -1 after
 * printing the error (naming the line). */
static int read_docs(cli_reader *rd, doc **docs, size_t *n) {
    size_t cap = 0;
    char ebuf[512];
    cli_record rec;
    int r;
    while ((r = cli_read(rd, &rec, ebuf, sizeof ebuf)) == 1) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 256;
            doc *d = realloc(*docs, cap * sizeof *d);
            if (!d) {
                fprintf(stderr, "sembed: rerank: out of memory\n");
                return -1;
            }
            *docs = d;
        }
        doc *d = &(*docs)[*n];
        d->text = malloc(rec.text_len + 1);
        if (!d->text) {
            fprintf(stderr, "sembed: rerank: out of memory\n");
            return -1;
        }
        memcpy(d->text, rec.text, rec.text_len + 1);
        d->len = rec.text_len, d->index = *n, d->score = 0;
        (*n)++;
    }
    if (r < 0) {
        fprintf(stderr, "sembed: %s\n", ebuf);
        return -1;
    }
    return 0;
}

/* Prints a scoring error, naming the input line for "pair K: ..." (the
 * K-th document of the chunk starting at line0), and the query for its
 * own text. */
static void report(const se_error *err, const char *name, size_t line0) {
    size_t k;
    const char *rest = strchr(err->msg, ':');
    if (sscanf(err->msg, "pair %zu", &k) == 1 && rest) {
        rest += 2;
        if (!strncmp(rest, "the first text has ", 19)) fprintf(stderr, "sembed: rerank: the query has %s\n", rest + 19);
        else if (!strncmp(rest, "the second text has ", 20)) fprintf(stderr, "sembed: %s:%zu: %s\n", name, line0 + k, rest + 20);
        else fprintf(stderr, "sembed: %s:%zu: %s\n", name, line0 + k, rest);
    } else {
        fprintf(stderr, "sembed: %s\n", err->msg);
    }
}

int cmd_rerank(int argc, char **argv) {
    const char *model = NULL, *input = NULL;
    long k = 0, threads = 0;
    int json = 0, raw = 0, dtype = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"input", required_argument, 0, 'i'},
        {"top-k", required_argument, 0, 'k'}, {"json", no_argument, 0, 'j'},
        {"raw-scores", no_argument, 0, 'R'},  {"threads", required_argument, 0, 't'},
        {"dtype", required_argument, 0, 'T'}, {"quiet", no_argument, 0, 'q'},
        {"progress", no_argument, 0, 'G'},    {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:k:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'i': input = optarg; break;
        case 'k': if (cli_opt_long("rerank", "-k/--top-k", optarg, 1, 100000000, &k)) return EXIT_USAGE; break;
        case 'j': json = 1; break;
        case 'R': raw = 1; break;
        case 't': if (cli_opt_long("rerank", "-t/--threads", optarg, 1, 256, &threads)) return EXIT_USAGE; break;
        case 'T':
            if ((dtype = cli_parse_dtype(optarg)) < 0)
                return cli_usage_error(rerank_usage, "rerank: --dtype must be f32, bf16 or int8");
            break;
        case 'q': cli_quiet = 1; break;
        case 'G': cli_progress_force = 1; break;
        case 'h': fputs(rerank_usage, stdout); return 0;
        default: fputs(rerank_usage, stderr); return EXIT_USAGE;
        }
    }
    if (!model) return cli_usage_error(rerank_usage, "rerank: missing -m MODEL");
    if (optind >= argc) return cli_usage_error(rerank_usage, "rerank: missing QUERY");
    if (optind + 1 < argc)
        return cli_usage_error(rerank_usage, "rerank: unexpected argument '%s' (one QUERY; documents come from -i FILE or stdin)",
                               argv[optind + 1]);
    const char *query = argv[optind];
    int rc = EXIT_RUNTIME;
    se_error err = {0};
    se_model *m = NULL;
    se_ctx *ctx = NULL;
    doc *docs = NULL;
    size_t n = 0, n_cut = 0, first_cut = 0;
    const char **qs = NULL, **ds = NULL;
    size_t *ql = NULL, *dl = NULL;
    float *sc = NULL;
    bool *cut = NULL;
    cli_reader rd = {0};
    rd.f = input && strcmp(input, "-") ? fopen(input, "rb") : stdin;
    rd.name = input && strcmp(input, "-") ? input : "<stdin>";
    if (!rd.f) {
        fprintf(stderr, "sembed: %s: cannot open: %s\n", input, strerror(errno));
        return EXIT_RUNTIME;
    }
    se_model_params mp = se_model_default_params();
    mp.log_fn = cli_log;
    mp.dtype = (se_dtype)dtype;
    if (cli_model_load(model, &mp, &m, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    se_model_info info;
    se_model_get_info(m, &info, NULL);
    if (!info.head) {
        fprintf(stderr, "sembed: rerank: %s is an embedding model, not a cross-encoder (for it: sembed search)\n", model);
        goto done;
    }
    if (info.n_labels != 1) {
        fprintf(stderr, "sembed: rerank: %s has %d labels (%s, ...); ranking needs a model with one score per pair\n", model,
                info.n_labels, info.labels[0]);
        goto done;
    }
    se_ctx_params cp = se_ctx_default_params();
    cp.n_threads = (int32_t)threads;
    if (se_ctx_new(m, &cp, &ctx, &err) != SE_OK) {
        fprintf(stderr, "sembed: %s\n", err.msg);
        goto done;
    }
    if (read_docs(&rd, &docs, &n)) goto done;
    const size_t chunk = 64;
    qs = malloc(chunk * sizeof *qs), ql = malloc(chunk * sizeof *ql), ds = malloc(chunk * sizeof *ds);
    dl = malloc(chunk * sizeof *dl), sc = malloc(chunk * sizeof *sc), cut = malloc(chunk * sizeof *cut);
    if (!qs || !ql || !ds || !dl || !sc || !cut) {
        fprintf(stderr, "sembed: rerank: out of memory\n");
        goto done;
    }
    se_predict_params pp = se_predict_default_params();
    if (raw) pp.activation = SE_SCORE_IDENTITY;
    cli_unk unk;
    cli_unk_init(&unk, se_model_tokenizer(m));
    cli_unk_check(&unk, query, strlen(query), "query");
    cli_progress prog;
    cli_progress_start(&prog, "reranking", "docs", n);
    if (prog.mode == 3) prog.mode = 0; /* not a terminal: only with --progress */
    for (size_t i = 0; i < n; i += chunk) {
        size_t nb = n - i < chunk ? n - i : chunk;
        for (size_t j = 0; j < nb; j++) {
            qs[j] = query, ql[j] = strlen(query), ds[j] = docs[i + j].text, dl[j] = docs[i + j].len;
            char where[600];
            snprintf(where, sizeof where, "%s:%zu", rd.name, i + j + 1);
            cli_unk_check(&unk, ds[j], dl[j], where);
        }
        if (se_predict(ctx, qs, ql, ds, dl, nb, &pp, sc, nb, cut, &err) != SE_OK) {
            cli_progress_end(&prog);
            report(&err, rd.name, i + 1);
            goto done;
        }
        for (size_t j = 0; j < nb; j++) {
            docs[i + j].score = sc[j];
            if (cut[j] && n_cut++ == 0) first_cut = i + j + 1;
        }
        cli_progress_update(&prog, i + nb, -1);
    }
    cli_progress_end(&prog);
    cli_unk_finish(&unk, "lines");
    if (n) qsort(docs, n, sizeof *docs, by_score); /* qsort(NULL, 0) is undefined (UBSan) */
    size_t top = k && (size_t)k < n ? (size_t)k : n;
    for (size_t r = 0; r < top; r++) {
        const doc *d = &docs[r];
        if (json) {
            printf("{\"rank\": %zu, \"line\": %zu, \"index\": %zu, \"score\": ", r + 1, d->index + 1, d->index);
            cli_print_float(stdout, d->score);
            fputs(", \"text\": ", stdout);
            cli_print_json_string(stdout, d->text);
            fputs("}\n", stdout);
        } else {
            printf("%3zu. %.4f  [%zu] %s\n", r + 1, (double)d->score, d->index + 1, d->text);
        }
    }
    if (n_cut)
        fprintf(stderr,
                "sembed: warning: %zu of %zu query-document pairs were truncated to %d tokens (the model's max length; "
                "first at line %zu)\n",
                n_cut, n, info.n_tokens_max, first_cut);
    rc = fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
done:
    cli_reader_free(&rd);
    for (size_t i = 0; i < n; i++) free(docs[i].text);
    free(docs), free(qs), free(ql), free(ds), free(dl), free(sc), free(cut);
    se_ctx_free(ctx);
    se_model_free(m);
    return rc;
}

/* The cross-encoder part of `sembed info`: with json, the field
 * ", \"cross_encoder\": {...}" (null for an embedding model); else a line
 * "cross-encoder: HEAD, N label(s) (names), activation ACT" (nothing for
 * an embedding model). */
void cli_rerank_info(const se_model_info *in, int json) {
    if (json) {
        fputs(", \"cross_encoder\": ", stdout);
        if (!in->head) {
            fputs("null", stdout);
            return;
        }
        fputs("{\"head\": ", stdout);
        cli_print_json_string(stdout, in->head);
        printf(", \"num_labels\": %d, \"labels\": [", in->n_labels);
        for (int32_t i = 0; i < in->n_labels; i++) {
            if (i) fputs(", ", stdout);
            cli_print_json_string(stdout, in->labels[i]);
        }
        fputs("], \"activation\": ", stdout);
        cli_print_json_string(stdout, in->activation);
        fputs("}", stdout);
        return;
    }
    if (!in->head) return;
    printf("cross-encoder:       %s, %d label%s (", in->head, in->n_labels, in->n_labels == 1 ? "" : "s");
    for (int32_t i = 0; i < in->n_labels && i < 16; i++) printf("%s%s", i ? ", " : "", in->labels[i]);
    printf("%s), activation %s%s\n", in->n_labels > 16 ? ", ..." : "", in->activation,
           in->n_labels == 1 ? "; rank documents with sembed rerank" : "");
}
