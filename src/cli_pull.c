/*
 * cli_pull.c - `sembed pull` (download a model from the Hugging Face hub
 * into huggingface_hub's cache), `sembed models` (list the cache, remove
 * a model) and the -m ORG/NAME resolution every command uses. Like the
 * rest of the CLI, it uses the public API (sembed.h) only.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_io.h"
#include "cli_pull.h"

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* ---- progress on stderr ---- */

/* The progress line's state: one file at a time. */
typedef struct progress {
    char path[256];
    double t0, last;
    uint64_t first; /* bytes already there when this run started the file */
    bool tty, done;
} progress;

/* n bytes in B, kB, MB, GB (powers of 1000, as huggingface_hub's bar). */
static void human(uint64_t n, char *buf, size_t cap) {
    const char *u[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)n;
    int i = 0;
    while (v >= 1000 && i < 4) v /= 1000, i++;
    if (i == 0) snprintf(buf, cap, "%llu B", (unsigned long long)n);
    else snprintf(buf, cap, "%.1f %s", v, u[i]);
}

/* se_hub_progress_fn: "path  12.0 MB / 90.0 MB  8.1 MB/s  ETA 0:09",
 * redrawn in place on a terminal (4 times a second), else one line a
 * second and one at the end. */
static void on_progress(const char *path, uint64_t done, uint64_t total, void *user) {
    progress *p = user;
    double now = cli_now();
    if (strcmp(p->path, path) != 0 || (p->done && done < total)) {
        snprintf(p->path, sizeof p->path, "%s", path);
        p->t0 = now, p->last = 0, p->first = done, p->done = false;
    }
    bool end = total && done >= total;
    if (p->done) return;
    if (!end && now - p->last < (p->tty ? 0.25 : 1.0)) return;
    p->last = now;
    double dt = now - p->t0;
    double rate = dt > 0 ? (double)(done - p->first) / dt : 0;
    char d[32], t[32], r[32], eta[32] = "?";
    human(done, d, sizeof d);
    human(total, t, sizeof t);
    human((uint64_t)rate, r, sizeof r);
    if (end) snprintf(eta, sizeof eta, "0:00");
    else if (rate > 0 && total) {
        long s = (long)((double)(total - done) / rate);
        snprintf(eta, sizeof eta, "%ld:%02ld", s / 60, s % 60);
    }
    fprintf(stderr, "%s%s  %s / %s  %s/s  ETA %s%s", p->tty ? "\r\033[K" : "", path, d, total ? t : "?", r, eta,
            p->tty && !end ? "" : "\n");
    if (end) p->done = true;
    fflush(stderr);
}

/* Hub parameters for the CLI: progress and notes on stderr. */
static se_hub_params cli_hub_params(progress *pr, bool quiet) {
    se_hub_params hp = se_hub_default_params();
    memset(pr, 0, sizeof *pr);
    pr->tty = isatty(2);
    if (!quiet) hp.progress_fn = on_progress, hp.progress_user = pr;
    hp.log_fn = cli_log;
    /* the tests' fake hub fails on purpose: shorter waits there */
    const char *e = getenv("SEMBED_HUB_RETRY_MS");
    if (e && *e) hp.retry_ms = (int32_t)strtol(e, NULL, 10);
    return hp;
}

/* ---- -m resolution ---- */

/* The folder for a -m argument into dir: the argument itself when it
 * exists or is no repository id, else the hub's snapshot. */
static se_status model_dir(const char *arg, char *dir, size_t cap, se_error *err) {
    struct stat st;
    if (!arg || stat(arg, &st) == 0 || !se_hub_is_repo_id(arg)) {
        snprintf(dir, cap, "%s", arg ? arg : "");
        return SE_OK;
    }
    progress pr;
    se_hub_params hp = cli_hub_params(&pr, cli_quiet);
    se_status s = se_hub_resolve(arg, &hp, dir, cap, err);
    if (s != SE_OK && err) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        snprintf(err->msg, sizeof err->msg, "model folder '%.40s': no such folder; as a hub model: %.140s", arg, msg);
    }
    return s;
}

se_status cli_model_load(const char *arg, const se_model_params *params, se_model **out, se_error *err) {
    char dir[4096];
    se_status s = model_dir(arg, dir, sizeof dir, err);
    if (s != SE_OK) return s;
    return se_model_load(arg ? dir : NULL, params, out, err);
}

se_status cli_tokenizer_load(const char *arg, se_tokenizer **out, se_error *err) {
    char dir[4096];
    se_status s = model_dir(arg, dir, sizeof dir, err);
    if (s != SE_OK) return s;
    return se_tokenizer_load(arg ? dir : NULL, out, err);
}

/* ---- sembed pull ---- */

static const char pull_usage[] =
    "usage: sembed pull ORG/NAME [options]\n"
    "\n"
    "Downloads a model from the Hugging Face hub into huggingface_hub's cache\n"
    "(HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub), shared with\n"
    "Python, and prints its snapshot folder. Then `-m ORG/NAME` works offline on\n"
    "every command. Only the files a sentence-transformers model needs are fetched\n"
    "(config, modules, tokenizer, 1_Pooling/, 2_Dense/, model.safetensors or else\n"
    "pytorch_model.bin); onnx/, openvino/, TF and Flax files are skipped.\n"
    "Interrupted downloads resume; every file is checked against its sha256.\n"
    "\n"
    "options:\n"
    "  -r, --revision REV  branch, tag or commit (default main)\n"
    "  -I, --include GLOB  only the files matching GLOB (repeatable; '*' crosses '/')\n"
    "      --token T       hub token (default: HF_TOKEN, else HF_HOME/token); gated\n"
    "                      and private models need one\n"
    "      --cache-dir DIR the cache (default from the environment, above)\n"
    "  -q, --quiet         no progress\n"
    "  -h, --help          this help\n"
    "\n"
    "environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN,\n"
    "HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE=1 (no connection), https_proxy,\n"
    "SEMBED_HUB_RETRY_MS (first wait before a retry on 5xx/429/cut connection; 500).\n";

int cmd_pull(int argc, char **argv) {
    static const struct option opts[] = {{"revision", required_argument, 0, 'r'}, {"include", required_argument, 0, 'I'},
                                         {"token", required_argument, 0, 'T'},    {"cache-dir", required_argument, 0, 'C'},
                                         {"quiet", no_argument, 0, 'q'},          {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *revision = NULL, *token = NULL, *cache = NULL;
    const char **inc = calloc((size_t)argc + 1, sizeof *inc);
    size_t n_inc = 0;
    bool quiet = false;
    int c;
    if (!inc) return EXIT_RUNTIME;
    optind = 1;
    while ((c = getopt_long(argc, argv, "r:I:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'r': revision = optarg; break;
        case 'I': inc[n_inc++] = optarg; break;
        case 'T': token = optarg; break;
        case 'C': cache = optarg; break;
        case 'q': quiet = true; break;
        case 'h': free(inc), fputs(pull_usage, stdout); return 0;
        default: free(inc), fputs(pull_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind == argc) return free(inc), cli_usage_error(pull_usage, "pull: missing ORG/NAME");
    if (optind != argc - 1) return free(inc), cli_usage_error(pull_usage, "pull: unexpected argument '%s'", argv[optind + 1]);
    const char *repo = argv[optind];
    if (!se_hub_is_repo_id(repo)) {
        free(inc);
        return cli_usage_error(pull_usage, "pull: '%s' is not a hub repository id (ORG/NAME)", repo);
    }
    progress pr;
    se_hub_params hp = cli_hub_params(&pr, quiet);
    hp.revision = revision, hp.token = token, hp.cache_dir = cache;
    hp.include = n_inc ? inc : NULL, hp.n_include = n_inc;
    char dir[4096];
    se_error err = {0};
    se_status s = se_hub_pull(repo, &hp, dir, sizeof dir, &err);
    free(inc);
    if (s != SE_OK) {
        fprintf(stderr, "sembed: pull: %s\n", err.msg);
        return EXIT_RUNTIME;
    }
    printf("%s\n", dir);
    return 0;
}

/* ---- sembed models ---- */

static const char models_usage[] =
    "usage: sembed models [--json]\n"
    "       sembed models rm ORG/NAME...\n"
    "\n"
    "Lists the models in the hub cache (shared with Python's huggingface_hub:\n"
    "HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub) with their\n"
    "sizes, or removes models from it.\n"
    "\n"
    "options:\n"
    "      --json          one JSON object per model (repo_id, size_bytes,\n"
    "                      snapshots, refs, path)\n"
    "      --cache-dir DIR the cache\n"
    "  -h, --help          this help\n";

/* se_hub_list_fn printing one row (user: the --json flag). */
static int print_model(const se_hub_cached *m, void *user) {
    bool json = *(bool *)user;
    if (json) {
        printf("{\"repo_id\":");
        cli_print_json_string(stdout, m->repo_id);
        printf(",\"size_bytes\":%llu,\"snapshots\":%zu,\"refs\":", (unsigned long long)m->size_bytes, m->n_snapshots);
        cli_print_json_string(stdout, m->refs);
        printf(",\"path\":");
        cli_print_json_string(stdout, m->path);
        printf("}\n");
    } else {
        char sz[32];
        human(m->size_bytes, sz, sizeof sz);
        printf("%-48s %10s  %zu snapshot%s  %s\n", m->repo_id, sz, m->n_snapshots, m->n_snapshots == 1 ? "" : "s",
               m->refs[0] ? m->refs : "-");
    }
    return 0;
}

int cmd_models(int argc, char **argv) {
    static const struct option opts[] = {{"json", no_argument, 0, 'j'},
                                         {"cache-dir", required_argument, 0, 'C'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    bool json = false;
    const char *cache = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'C': cache = optarg; break;
        case 'h': fputs(models_usage, stdout); return 0;
        default: fputs(models_usage, stderr); return EXIT_USAGE;
        }
    }
    se_hub_params hp = se_hub_default_params();
    hp.cache_dir = cache;
    se_error err = {0};
    if (optind < argc && !strcmp(argv[optind], "rm")) {
        if (optind + 1 == argc) return cli_usage_error(models_usage, "models rm: missing ORG/NAME");
        int rc = 0;
        for (int i = optind + 1; i < argc; i++) {
            if (se_hub_remove(argv[i], &hp, &err) != SE_OK) {
                fprintf(stderr, "sembed: models rm: %s\n", err.msg);
                rc = EXIT_RUNTIME;
            } else {
                fprintf(stderr, "sembed: removed %s\n", argv[i]);
            }
        }
        return rc;
    }
    if (optind != argc) return cli_usage_error(models_usage, "models: unexpected argument '%s'", argv[optind]);
    if (se_hub_list(&hp, print_model, &json, &err) != SE_OK) {
        fprintf(stderr, "sembed: models: %s\n", err.msg);
        return EXIT_RUNTIME;
    }
    return 0;
}
