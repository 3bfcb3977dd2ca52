/*
 * bench_encode.c - the throughput benchmark of the encoder (se_encode).
 *
 * What it does, for each requested shape:
 *   1. Writes a random-weight BERT model folder in the sentence-transformers
 *      layout into a fresh temp directory (mkdtemp under /tmp), entirely
 *      from C, so the benchmark needs no downloaded weights:
 *        modules.json                Transformer "" -> Pooling "1_Pooling" -> Normalize "2_Normalize"
 *        config.json                 BertModel config (vocab 30522, gelu, 512 positions)
 *        sentence_bert_config.json   {"max_seq_length": 256, "do_lower_case": false}
 *        1_Pooling/config.json       mean pooling
 *        vocab.txt                   [PAD], [unused1..99], [UNK]=100, [CLS]=101,
 *                                    [SEP]=102, [MASK]=103, then "w104".."w30521"
 *        tokenizer_config.json       BertTokenizer, do_lower_case
 *        model.safetensors           F32 tensors with Hugging Face BertModel names
 *      Weights are uniform in [-0.05, 0.05] from a fixed seed; LayerNorm
 *      gamma = 1, beta = 0. The numbers are meaningless, the cost is real.
 *   2. Loads it with se_model_load (timed: the process's first load of that
 *      folder; the page cache is warm because we just wrote the file).
 *   3. Runs the workloads on one se_ctx with n_threads threads:
 *        32x32    a batch of 32 sentences of exactly 32 tokens ([CLS] + 30 words + [SEP])
 *        32x128   a batch of 32 sentences of exactly 128 tokens
 *        1x16     one 16-token sentence, repeated: per-call latency
 *      Sentences are made of vocabulary words ("w123"), so each word is one
 *      token; every sentence's length is checked with se_tokenize first.
 *      Each batch workload gets one warm-up call, then R timed calls; we
 *      report the median (and the minimum).
 *   4. Prints ONE JSON object on stdout (progress goes to stderr).
 *
 * FLOP count (what "gflop_per_s" is based on), per token of a sentence of T
 * tokens, counting a multiply-add as 2 FLOPs:
 *     2 * (4*H*H + 2*H*FF) * L      the six weight GEMMs (Q, K, V, O: H x H;
 *                                   FF1: H -> FF, FF2: FF -> H)
 *   + 4 * T * H * L                 attention: scores q.k (T*H MACs) and the
 *                                   weighted sum of v (T*H MACs)
 * Embeddings, LayerNorm, softmax, GELU, pooling and normalisation are left
 * out (they are O(H) or O(FF) per token, a few percent at most).
 *
 * Usage: bench_encode [--shape minilm|bge-base|all] [--threads N] [--runs N]
 *                     [--calls N]
 * Exit status: 0 on success, 1 on any error (the se_error message goes to
 * stderr), 2 on bad usage.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sembed.h"

/* ==== Shapes and constants ==== */

#define V_SIZE 30522      /* vocab_size, as in bert-base-uncased */
#define N_POS 512         /* max_position_embeddings */
#define N_TYPE 2          /* type_vocab_size */
#define SEQ_MAX 256       /* max_seq_length written to sentence_bert_config.json */
#define FIRST_WORD 104    /* first filler token id ("w104") */
#define WEIGHT_SCALE 0.05 /* weights are uniform in [-WEIGHT_SCALE, WEIGHT_SCALE] */
#define SEED 0x5e3bedULL  /* fixed seed: identical weights and sentences every run */
#define MAX_SHAPES 2
#define MAX_RESULTS 16

typedef struct shape {
    const char *name; /* "minilm", "bge-base" */
    int H;            /* hidden_size */
    int L;            /* num_hidden_layers */
    int NH;           /* num_attention_heads */
    int FF;           /* intermediate_size */
} shape;

/* The compute dtype of every model loaded (--dtype). */
static se_dtype g_dtype;

static const shape SHAPES[MAX_SHAPES] = {
    {"minilm", 384, 6, 12, 1536},    /* all-MiniLM-L6-v2 */
    {"bge-base", 768, 12, 12, 3072}, /* bge-base-en-v1.5, bert-base */
};

/* One workload: n sentences of seq tokens each, special tokens included. */
typedef struct workload {
    const char *name; /* "32x32" */
    int n;            /* sentences per se_encode call */
    int seq;          /* tokens per sentence, [CLS] and [SEP] included */
    bool latency;     /* single-sentence latency (calls) rather than throughput (runs) */
} workload;

static const workload WORKLOADS[] = {
    {"32x32", 32, 32, false},
    {"32x128", 32, 128, false},
    {"1x16", 1, 16, true},
};
#define N_WORKLOADS (sizeof WORKLOADS / sizeof *WORKLOADS)

/* One line of the "results" array. */
typedef struct result {
    const shape *sh;
    const workload *wl;
    int reps;        /* timed runs (or calls, for latency) */
    double median_s; /* median seconds per se_encode call */
    double min_s;    /* fastest call */
    double flops;    /* FLOPs of one call, by the formula in the header */
} result;

/* One line of the "models" array. */
typedef struct model_stat {
    const shape *sh;
    double n_params;       /* parameters written */
    double file_mb;        /* model.safetensors size, MiB */
    double write_s;        /* time to write the folder */
    double load_ms;        /* first se_model_load of the folder */
    double load_again_ms;  /* a second se_model_load of the same folder */
    double first_encode_ms; /* the very first se_encode (warm-up; faults the weights in) */
    double rss_mb;         /* ru_maxrss after this shape's runs, MiB */
} model_stat;

/* ==== Temp directory and cleanup ==== */

/* Paths of everything we may create, built before anything is written so
 * that the signal handler can remove them without calling snprintf. */
enum { P_MODULES, P_CONFIG, P_SBERT, P_VOCAB, P_TOKCFG, P_WEIGHTS, P_POOLCFG, N_FILES };
static const char *const FILE_NAMES[N_FILES] = {"modules.json",        "config.json",           "sentence_bert_config.json",
                                                "vocab.txt",           "tokenizer_config.json", "model.safetensors",
                                                "1_Pooling/config.json"};
enum { D_POOL, D_NORM, D_MODEL, N_DIRS }; /* removal order: children first */

static char g_root[64];                    /* the mkdtemp directory; "" when none */
static char g_files[N_FILES][256];         /* files of the current model folder */
static char g_dirs[N_DIRS][256];           /* its directories */
static volatile sig_atomic_t g_have_model; /* g_files / g_dirs are valid */

/* Removes the current model folder's files and directories, ignoring the
 * ones that do not exist. Async-signal-safe (unlink and rmdir only). */
static void remove_model_dir(void) {
    if (!g_have_model) return;
    for (int i = 0; i < N_FILES; i++) unlink(g_files[i]);
    for (int i = 0; i < N_DIRS; i++) rmdir(g_dirs[i]);
    g_have_model = 0;
}

/* Removes everything the benchmark created, including the temp root. */
static void cleanup(void) {
    remove_model_dir();
    if (g_root[0]) rmdir(g_root);
    g_root[0] = '\0';
}

/* SIGINT/SIGTERM: clean up the temp directory, then die with the usual
 * status of a signal. */
static void on_signal(int sig) {
    cleanup();
    _exit(128 + sig);
}

/* Prints a formatted message to stderr, removes the temp directory and
 * exits with status 1. */
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_encode: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    cleanup();
    exit(1);
}

/* Dies with the message of a failed sembed call. */
static void die_se(const char *what, const se_error *err) {
    die("%s failed: %s (%s)", what, err->msg, se_status_str(err->code));
}

/* Creates the temp root with mkdtemp. */
static void make_root(void) {
    char tmpl[] = "/tmp/sembed-bench-XXXXXX";
    if (!mkdtemp(tmpl)) die("mkdtemp %s: %s", tmpl, strerror(errno));
    snprintf(g_root, sizeof g_root, "%s", tmpl);
}

/* Fills g_files / g_dirs for a model folder named after the shape and
 * creates its directories. Returns the folder path (static storage). */
static const char *make_model_dir(const shape *sh) {
    char model[128]; /* the root is short, so every path below fits in 256 bytes */
    snprintf(model, sizeof model, "%s/%s", g_root, sh->name);
    snprintf(g_dirs[D_MODEL], sizeof g_dirs[D_MODEL], "%s", model);
    snprintf(g_dirs[D_POOL], sizeof g_dirs[D_POOL], "%s/1_Pooling", model);
    snprintf(g_dirs[D_NORM], sizeof g_dirs[D_NORM], "%s/2_Normalize", model);
    for (int i = 0; i < N_FILES; i++) snprintf(g_files[i], sizeof g_files[i], "%s/%s", model, FILE_NAMES[i]);
    g_have_model = 1;
    const int order[3] = {D_MODEL, D_POOL, D_NORM};
    for (int i = 0; i < 3; i++)
        if (mkdir(g_dirs[order[i]], 0700) != 0) die("mkdir %s: %s", g_dirs[order[i]], strerror(errno));
    return g_dirs[D_MODEL];
}

/* ==== Small utilities ==== */

/* Seconds on the monotonic clock. */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* xorshift64* step: the benchmark's only source of randomness, so that
 * weights and sentences are identical from run to run. */
static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* A float uniform in [-WEIGHT_SCALE, WEIGHT_SCALE), from 24 random bits. */
static float rng_weight(uint64_t *s) {
    double u = (double)(rng_next(s) >> 40) * (1.0 / 16777216.0); /* [0, 1) */
    return (float)((2.0 * u - 1.0) * WEIGHT_SCALE);
}

/* Peak resident set size of the process so far, in MiB (Linux reports
 * ru_maxrss in KiB). */
static double peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1.0;
    return (double)ru.ru_maxrss / 1024.0;
}

/* qsort comparator for doubles, ascending. */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of n > 0 values; sorts v in place. */
static double median(double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Writes a whole text file, dying on error. */
static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) die("cannot create %s: %s", path, strerror(errno));
    size_t n = strlen(text);
    if (fwrite(text, 1, n, f) != n || fclose(f) != 0) die("cannot write %s: %s", path, strerror(errno));
}

/* A growable string for the safetensors header. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
} sbuf;

/* Appends printf-formatted text to b, growing it as needed. */
static void sb_printf(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) die("vsnprintf failed");
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t nc = b->cap ? b->cap : 4096;
        while (nc <= b->n + (size_t)k) nc *= 2;
        char *p = realloc(b->s, nc);
        if (!p) die("out of memory");
        b->s = p, b->cap = nc;
    }
}

/* ==== Model folder ==== */

/* How a tensor is filled. */
typedef enum fill { FILL_RANDOM, FILL_ONES, FILL_ZEROS } fill;

/* One tensor of the checkpoint: a name, a 1-D or 2-D shape, a fill. */
typedef struct tensor_spec {
    char name[96];
    int64_t d0, d1; /* d1 == 0 for 1-D tensors */
    fill how;
} tensor_spec;

/* Appends a tensor spec to the list (name formatted with at most one
 * layer index). */
static void add_tensor(tensor_spec *t, size_t *n, int layer, const char *fmt, int64_t d0, int64_t d1, fill how) {
    tensor_spec *s = &t[(*n)++];
    if (layer >= 0) snprintf(s->name, sizeof s->name, fmt, layer);
    else snprintf(s->name, sizeof s->name, "%s", fmt);
    s->d0 = d0, s->d1 = d1, s->how = how;
}

/* Lists the BertModel tensors of a shape, in file order. Returns the count;
 * t must hold 5 + 16 * L entries. */
static size_t list_tensors(const shape *sh, tensor_spec *t) {
    size_t n = 0;
    int64_t H = sh->H, FF = sh->FF;
    add_tensor(t, &n, -1, "embeddings.word_embeddings.weight", V_SIZE, H, FILL_RANDOM);
    add_tensor(t, &n, -1, "embeddings.position_embeddings.weight", N_POS, H, FILL_RANDOM);
    add_tensor(t, &n, -1, "embeddings.token_type_embeddings.weight", N_TYPE, H, FILL_RANDOM);
    add_tensor(t, &n, -1, "embeddings.LayerNorm.weight", H, 0, FILL_ONES);
    add_tensor(t, &n, -1, "embeddings.LayerNorm.bias", H, 0, FILL_ZEROS);
    for (int l = 0; l < sh->L; l++) {
        add_tensor(t, &n, l, "encoder.layer.%d.attention.self.query.weight", H, H, FILL_RANDOM);
        add_tensor(t, &n, l, "encoder.layer.%d.attention.self.query.bias", H, 0, FILL_RANDOM);
        add_tensor(t, &n, l, "encoder.layer.%d.attention.self.key.weight", H, H, FILL_RANDOM);
        add_tensor(t, &n, l, "encoder.layer.%d.attention.self.key.bias", H, 0, FILL_RANDOM);
        add_tensor(t, &n, l, "encoder.layer.%d.attention.self.value.weight", H, H, FILL_RANDOM);
        add_tensor(t, &n, l, "encoder.layer.%d.attention.self.value.bias", H, 0, FILL_RANDOM);
        add_tensor(t, &n, l, "encoder.layer.%d.attention.output.dense.weight", H, H, FILL_RANDOM);
        add_tensor(t, &n, l, "encoder.layer.%d.attention.output.dense.bias", H, 0, FILL_RANDOM);
        add_tensor(t, &n, l, "encoder.layer.%d.attention.output.LayerNorm.weight", H, 0, FILL_ONES);
        add_tensor(t, &n, l, "encoder.layer.%d.attention.output.LayerNorm.bias", H, 0, FILL_ZEROS);
        add_tensor(t, &n, l, "encoder.layer.%d.intermediate.dense.weight", FF, H, FILL_RANDOM);
        add_tensor(t, &n, l, "encoder.layer.%d.intermediate.dense.bias", FF, 0, FILL_RANDOM);
        add_tensor(t, &n, l, "encoder.layer.%d.output.dense.weight", H, FF, FILL_RANDOM);
        add_tensor(t, &n, l, "encoder.layer.%d.output.dense.bias", H, 0, FILL_RANDOM);
        add_tensor(t, &n, l, "encoder.layer.%d.output.LayerNorm.weight", H, 0, FILL_ONES);
        add_tensor(t, &n, l, "encoder.layer.%d.output.LayerNorm.bias", H, 0, FILL_ZEROS);
    }
    return n;
}

/* Writes model.safetensors: an 8-byte little-endian header length, the
 * JSON header (padded with spaces to a multiple of 8 bytes, as the
 * reference writer does, so the F32 data is aligned), then every tensor's
 * data back to back in list order. The data is generated and written in
 * 1 MiB chunks so the writer's memory does not inflate peak RSS. Returns
 * the number of parameters; *file_bytes gets the file size. */
static double write_safetensors(const char *path, const shape *sh, double *file_bytes) {
    size_t cap = 5 + 16 * (size_t)sh->L;
    tensor_spec *t = calloc(cap, sizeof *t);
    if (!t) die("out of memory");
    size_t n = list_tensors(sh, t);
    sbuf hdr = {0};
    sb_printf(&hdr, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    double n_params = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t elems = (uint64_t)t[i].d0 * (uint64_t)(t[i].d1 ? t[i].d1 : 1);
        if (t[i].d1)
            sb_printf(&hdr, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]}", t[i].name,
                      (long long)t[i].d0, (long long)t[i].d1, (unsigned long long)off,
                      (unsigned long long)(off + 4 * elems));
        else
            sb_printf(&hdr, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}", t[i].name,
                      (long long)t[i].d0, (unsigned long long)off, (unsigned long long)(off + 4 * elems));
        off += 4 * elems;
        n_params += (double)elems;
    }
    sb_printf(&hdr, "}");
    while ((8 + hdr.n) % 8) sb_printf(&hdr, " ");

    FILE *f = fopen(path, "wb");
    if (!f) die("cannot create %s: %s", path, strerror(errno));
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hdr.n >> (8 * i));
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(hdr.s, 1, hdr.n, f) != hdr.n) die("cannot write %s: %s", path, strerror(errno));

    enum { CHUNK = 1 << 18 }; /* floats per write: 1 MiB */
    unsigned char *buf = malloc((size_t)CHUNK * 4);
    if (!buf) die("out of memory");
    uint64_t rng = SEED;
    for (size_t i = 0; i < n; i++) {
        uint64_t left = (uint64_t)t[i].d0 * (uint64_t)(t[i].d1 ? t[i].d1 : 1);
        while (left) {
            size_t k = left < CHUNK ? (size_t)left : CHUNK;
            for (size_t j = 0; j < k; j++) {
                float v = t[i].how == FILL_RANDOM ? rng_weight(&rng) : t[i].how == FILL_ONES ? 1.0f : 0.0f;
                uint32_t bits;
                memcpy(&bits, &v, 4);
                /* little-endian whatever the host's byte order */
                buf[4 * j] = (unsigned char)bits, buf[4 * j + 1] = (unsigned char)(bits >> 8);
                buf[4 * j + 2] = (unsigned char)(bits >> 16), buf[4 * j + 3] = (unsigned char)(bits >> 24);
            }
            if (fwrite(buf, 4, k, f) != k) die("cannot write %s: %s", path, strerror(errno));
            left -= k;
        }
    }
    if (fclose(f) != 0) die("cannot write %s: %s", path, strerror(errno));
    *file_bytes = 8.0 + (double)hdr.n + (double)off;
    free(buf);
    free(hdr.s);
    free(t);
    return n_params;
}

/* Writes vocab.txt: [PAD] at 0, [unused1]..[unused99], [UNK] 100, [CLS] 101,
 * [SEP] 102, [MASK] 103, then "w<id>" fillers up to V_SIZE - 1. Every
 * filler is a whole word, so a sentence of fillers is one token per word. */
static void write_vocab(const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) die("cannot create %s: %s", path, strerror(errno));
    static const char *const special[4] = {"[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (int id = 0; id < V_SIZE; id++) {
        int r;
        if (id == 0) r = fprintf(f, "[PAD]\n");
        else if (id < 100) r = fprintf(f, "[unused%d]\n", id);
        else if (id < FIRST_WORD) r = fprintf(f, "%s\n", special[id - 100]);
        else r = fprintf(f, "w%d\n", id);
        if (r < 0) die("cannot write %s: %s", path, strerror(errno));
    }
    if (fclose(f) != 0) die("cannot write %s: %s", path, strerror(errno));
}

/* Writes the whole model folder for a shape. Fills the size and parameter
 * fields of *ms. */
static void write_model(const shape *sh, model_stat *ms) {
    char buf[1024];
    write_text(g_files[P_MODULES],
               "[\n"
               "  {\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"},\n"
               "  {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"},\n"
               "  {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", \"type\": \"sentence_transformers.models.Normalize\"}\n"
               "]\n");
    snprintf(buf, sizeof buf,
             "{\n  \"architectures\": [\"BertModel\"],\n  \"model_type\": \"bert\",\n  \"vocab_size\": %d,\n"
             "  \"hidden_size\": %d,\n  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
             "  \"intermediate_size\": %d,\n  \"hidden_act\": \"gelu\",\n  \"max_position_embeddings\": %d,\n"
             "  \"type_vocab_size\": %d,\n  \"layer_norm_eps\": 1e-12,\n  \"torch_dtype\": \"float32\"\n}\n",
             V_SIZE, sh->H, sh->L, sh->NH, sh->FF, N_POS, N_TYPE);
    write_text(g_files[P_CONFIG], buf);
    snprintf(buf, sizeof buf, "{\"max_seq_length\": %d, \"do_lower_case\": false}\n", SEQ_MAX);
    write_text(g_files[P_SBERT], buf);
    snprintf(buf, sizeof buf,
             "{\n  \"word_embedding_dimension\": %d,\n  \"pooling_mode_cls_token\": false,\n"
             "  \"pooling_mode_mean_tokens\": true,\n  \"pooling_mode_max_tokens\": false,\n"
             "  \"pooling_mode_mean_sqrt_len_tokens\": false,\n  \"pooling_mode_weightedmean_tokens\": false,\n"
             "  \"pooling_mode_lasttoken\": false,\n  \"include_prompt\": true\n}\n",
             sh->H);
    write_text(g_files[P_POOLCFG], buf);
    write_text(g_files[P_TOKCFG], "{\"tokenizer_class\": \"BertTokenizer\", \"do_lower_case\": true}\n");
    write_vocab(g_files[P_VOCAB]);
    double bytes;
    ms->n_params = write_safetensors(g_files[P_WEIGHTS], sh, &bytes);
    ms->file_mb = bytes / (1024.0 * 1024.0);
}

/* ==== Sentences ==== */

/* A batch of n sentences of the same token count, in one allocation. */
typedef struct sentences {
    char *blob;              /* all texts, NUL-separated */
    const char *texts[64];   /* views into blob */
    size_t n;
} sentences;

/* Builds n sentences of (seq - 2) random filler words each, so that with
 * [CLS] and [SEP] each tokenizes to exactly seq tokens, and checks that
 * with the model's tokenizer; dies with a clear message otherwise. The
 * words are drawn from the fixed seed plus salt, so every run sees the same
 * text. */
static void make_sentences(const se_model *m, int n, int seq, uint64_t salt, sentences *out) {
    size_t words = (size_t)(seq - 2), stride = words * 7 + 1; /* "w30521 " is 7 bytes */
    if (n < 1 || (size_t)n > sizeof out->texts / sizeof *out->texts || seq < 3) die("bad workload %dx%d", n, seq);
    out->blob = malloc((size_t)n * stride);
    if (!out->blob) die("out of memory");
    out->n = (size_t)n;
    uint64_t rng = SEED ^ (salt * 0x9E3779B97F4A7C15ULL);
    for (int i = 0; i < n; i++) {
        char *p = out->blob + (size_t)i * stride;
        out->texts[i] = p;
        for (size_t w = 0; w < words; w++) {
            int id = FIRST_WORD + (int)(rng_next(&rng) % (uint64_t)(V_SIZE - FIRST_WORD));
            p += sprintf(p, w ? " w%d" : "w%d", id);
        }
    }
    const se_tokenizer *tok = se_model_tokenizer(m);
    se_tokenize_params tp = se_tokenize_default_params(tok);
    int32_t ids[SEQ_MAX * 2];
    for (int i = 0; i < n; i++) {
        size_t n_ids = 0;
        bool cut = false;
        se_error err;
        if (se_tokenize(tok, out->texts[i], strlen(out->texts[i]), NULL, 0, &tp, ids, NULL, sizeof ids / sizeof *ids,
                        &n_ids, &cut, &err) != SE_OK)
            die_se("se_tokenize", &err);
        if (n_ids != (size_t)seq || cut)
            die("sentence %d of the %dx%d workload tokenizes to %zu tokens%s, expected exactly %d: "
                "the generated vocabulary or the tokenizer is not what the benchmark assumes",
                i, n, seq, n_ids, cut ? " (truncated)" : "", seq);
        if (ids[0] != 101 || ids[n_ids - 1] != 102)
            die("sentence %d of the %dx%d workload does not start with [CLS] (101) and end with [SEP] (102): got %d ... %d",
                i, n, seq, ids[0], ids[n_ids - 1]);
    }
}

/* ==== Measurement ==== */

/* FLOPs of one forward pass over n sentences of seq tokens (see the file
 * header for the formula). */
static double flops_of(const shape *sh, int n, int seq) {
    double H = sh->H, FF = sh->FF, L = sh->L, T = seq;
    double per_token = 2.0 * (4.0 * H * H + 2.0 * H * FF) * L + 4.0 * T * H * L;
    return per_token * T * (double)n;
}

/* One timed se_encode call over the batch; dies on error. Returns seconds. */
static double encode_once(se_ctx *ctx, const sentences *s, float *out, size_t out_cap) {
    se_error err;
    double t0 = now_s();
    if (se_encode(ctx, s->texts, NULL, s->n, NULL, out, out_cap, NULL, &err) != SE_OK) die_se("se_encode", &err);
    return now_s() - t0;
}

/* Runs one workload: a warm-up call, then reps timed calls. Returns the
 * result; *warmup_s gets the warm-up call's time. */
static result run_workload(const shape *sh, const workload *wl, const se_model *m, se_ctx *ctx, int reps,
                           uint64_t salt, double *warmup_s) {
    sentences s;
    make_sentences(m, wl->n, wl->seq, salt, &s);
    size_t dim = se_encode_dim(m, NULL), out_cap = dim * s.n;
    float *out = malloc(out_cap * sizeof *out);
    double *times = malloc((size_t)reps * sizeof *times);
    if (!out || !times) die("out of memory");
    *warmup_s = encode_once(ctx, &s, out, out_cap);
    for (int r = 0; r < reps; r++) times[r] = encode_once(ctx, &s, out, out_cap);
    /* sanity: the pipeline ends in Normalize, so row 0 must have unit norm */
    double ss = 0.0;
    for (size_t i = 0; i < dim; i++) ss += (double)out[i] * out[i];
    if (!(fabs(ss - 1.0) < 1e-3)) die("%s %s: embedding 0 has squared norm %g, expected 1", sh->name, wl->name, ss);
    result res = {sh, wl, reps, 0, 0, flops_of(sh, wl->n, wl->seq)};
    res.median_s = median(times, (size_t)reps);
    res.min_s = times[0]; /* median() sorted times */
    free(times);
    free(out);
    free(s.blob);
    return res;
}

/* Benchmarks one shape: writes the folder, loads it (twice, for the cold
 * and the repeat load time), runs every workload, frees and removes it. */
static void bench_shape(const shape *sh, int threads, int runs, int calls, result *res, size_t *n_res,
                        model_stat *ms) {
    memset(ms, 0, sizeof *ms);
    ms->sh = sh;
    const char *dir = make_model_dir(sh);
    fprintf(stderr, "[bench] %s: writing a random-weight model (H=%d L=%d NH=%d FF=%d) to %s\n", sh->name, sh->H, sh->L,
            sh->NH, sh->FF, dir);
    double t0 = now_s();
    write_model(sh, ms);
    ms->write_s = now_s() - t0;
    fprintf(stderr, "[bench] %s: %.1fM parameters, %.0f MiB, written in %.2f s\n", sh->name, ms->n_params / 1e6,
            ms->file_mb, ms->write_s);

    se_error err;
    se_model *m = NULL;
    se_model_params mp = se_model_default_params();
    mp.dtype = g_dtype;
    t0 = now_s();
    if (se_model_load(dir, &mp, &m, &err) != SE_OK) die_se("se_model_load", &err);
    ms->load_ms = 1e3 * (now_s() - t0);
    se_model *m2 = NULL;
    t0 = now_s();
    if (se_model_load(dir, &mp, &m2, &err) != SE_OK) die_se("se_model_load (second)", &err);
    ms->load_again_ms = 1e3 * (now_s() - t0);
    se_model_free(m2);
    se_model_info info;
    if (se_model_get_info(m, &info, &err) != SE_OK) die_se("se_model_get_info", &err);
    if (info.n_embd != sh->H || info.n_layer != sh->L || info.n_ff != sh->FF || info.dim != sh->H || !info.normalize)
        die("%s: the loaded model does not have the shape we wrote", sh->name);
    fprintf(stderr, "[bench] %s: loaded in %.1f ms (again: %.1f ms)\n", sh->name, ms->load_ms, ms->load_again_ms);

    se_ctx_params cp = se_ctx_default_params();
    cp.n_threads = threads;
    se_ctx *ctx = NULL;
    if (se_ctx_new(m, &cp, &ctx, &err) != SE_OK) die_se("se_ctx_new", &err);

    for (size_t w = 0; w < N_WORKLOADS; w++) {
        const workload *wl = &WORKLOADS[w];
        double warm;
        res[*n_res] = run_workload(sh, wl, m, ctx, wl->latency ? calls : runs, (uint64_t)w + 1, &warm);
        if (w == 0) ms->first_encode_ms = 1e3 * warm;
        const result *r = &res[(*n_res)++];
        if (wl->latency)
            fprintf(stderr, "[bench] %s %-6s median %.3f ms over %d calls (min %.3f ms)\n", sh->name, wl->name,
                    1e3 * r->median_s, r->reps, 1e3 * r->min_s);
        else
            fprintf(stderr, "[bench] %s %-6s median %.4f s over %d runs: %.1f sentences/s, %.0f tokens/s, %.1f GFLOP/s\n",
                    sh->name, wl->name, r->median_s, r->reps, wl->n / r->median_s, wl->n * wl->seq / r->median_s,
                    r->flops / r->median_s / 1e9);
    }
    se_ctx_free(ctx);
    se_model_free(m);
    ms->rss_mb = peak_rss_mb();
    remove_model_dir();
}

/* ==== Output ==== */

/* Prints a JSON number, or null when x is not finite. */
static void json_num(const char *key, double x, const char *fmt, bool comma) {
    printf("\"%s\":", key);
    if (isfinite(x)) printf(fmt, x);
    else printf("null");
    if (comma) putchar(',');
}

/* Prints s as a JSON string (escaping quotes, backslashes and control
 * characters). */
static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

/* Prints the single JSON object of the run on stdout. */
static void print_json(int threads, int runs, int calls, const result *res, size_t n_res, const model_stat *ms,
                       size_t n_ms) {
    printf("{\"bench\":\"encode\",\"version\":");
    json_str(se_version());
    /* The dispatched kernel's name is not in the public API; at least record
     * the override that forces the scalar ones, so such runs are labelled. */
    const char *kenv = getenv("SE_KERNELS");
    if (kenv) {
        printf(",\"se_kernels_env\":");
        json_str(kenv);
    }
    printf(",\"threads\":%d,\"runs\":%d,\"latency_calls\":%d,\"results\":[", threads, runs, calls);
    for (size_t i = 0; i < n_res; i++) {
        const result *r = &res[i];
        printf("%s{\"shape\":", i ? "," : "");
        json_str(r->sh->name);
        printf(",\"workload\":");
        json_str(r->wl->name);
        printf(",\"batch\":%d,\"seq_tokens\":%d,", r->wl->n, r->wl->seq);
        if (r->wl->latency) {
            json_num("latency_ms", 1e3 * r->median_s, "%.4f", true);
            json_num("min_ms", 1e3 * r->min_s, "%.4f", true);
            printf("\"calls\":%d,", r->reps);
        } else {
            json_num("sentences_per_s", r->wl->n / r->median_s, "%.2f", true);
            json_num("tokens_per_s", r->wl->n * r->wl->seq / r->median_s, "%.1f", true);
            json_num("median_s", r->median_s, "%.6f", true);
            json_num("min_s", r->min_s, "%.6f", true);
            printf("\"runs\":%d,", r->reps);
        }
        json_num("gflop_per_s", r->flops / r->median_s / 1e9, "%.3f", false);
        putchar('}');
    }
    printf("],\"models\":[");
    for (size_t i = 0; i < n_ms; i++) {
        const model_stat *m = &ms[i];
        printf("%s{\"shape\":", i ? "," : "");
        json_str(m->sh->name);
        printf(",\"hidden\":%d,\"layers\":%d,\"heads\":%d,\"ff\":%d,", m->sh->H, m->sh->L, m->sh->NH, m->sh->FF);
        json_num("params_m", m->n_params / 1e6, "%.3f", true);
        json_num("file_mb", m->file_mb, "%.1f", true);
        json_num("write_s", m->write_s, "%.3f", true);
        json_num("load_ms", m->load_ms, "%.3f", true);
        json_num("load_again_ms", m->load_again_ms, "%.3f", true);
        json_num("first_encode_ms", m->first_encode_ms, "%.3f", true);
        json_num("peak_rss_mb_so_far", m->rss_mb, "%.1f", false);
        putchar('}');
    }
    printf("],");
    json_num("load_ms", n_ms ? ms[0].load_ms : NAN, "%.3f", true);
    json_num("peak_rss_mb", peak_rss_mb(), "%.1f", false);
    printf("}\n");
}

/* ==== Main ==== */

/* Prints the usage text to f. */
static void usage(FILE *f) {
    fprintf(f,
            "usage: bench_encode [--shape minilm|bge-base|all] [--threads N] [--runs N] [--calls N]\n"
            "\n"
            "Throughput benchmark of se_encode on random-weight BERT models written to a\n"
            "temporary folder under /tmp (removed at exit). Prints one JSON object on stdout;\n"
            "progress goes to stderr.\n"
            "\n"
            "  --shape S     minilm (H=384, 6 layers; default), bge-base (H=768, 12 layers) or all\n"
            "  --dtype D     f32 (default), bf16 (weights in bf16) or int8 (VNNI)\n"
            "  --threads N   se_ctx n_threads (default 2)\n"
            "  --runs N      timed runs per batch workload, after one warm-up (default 5)\n"
            "  --calls N     timed calls of the 1x16 latency workload (default 50)\n"
            "  -h, --help    this text\n"
            "\n"
            "Workloads: 32x32 and 32x128 (32 sentences of exactly 32 / 128 tokens, one\n"
            "se_encode call) report the median; 1x16 (one 16-token sentence) reports the\n"
            "median latency in milliseconds.\n");
}

/* Parses a positive integer option value in [1, hi]; exits 2 otherwise. */
static int parse_pos(const char *opt, const char *v, int hi) {
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || x < 1 || x > hi) {
        fprintf(stderr, "bench_encode: %s needs an integer in [1, %d]\n", opt, hi);
        usage(stderr);
        exit(2);
    }
    return (int)x;
}

/* Parses options, runs the requested shapes and prints the JSON. */
int main(int argc, char **argv) {
    g_dtype = SE_DTYPE_F32;
    int threads = 2, runs = 5, calls = 50;
    const char *which = "minilm";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--shape") == 0 && i + 1 < argc) {
            which = argv[++i];
        } else if (strcmp(a, "--threads") == 0) {
            threads = parse_pos(a, i + 1 < argc ? argv[++i] : NULL, 256);
        } else if (strcmp(a, "--dtype") == 0 && i + 1 < argc) {
            const char *d = argv[++i];
            if (strcmp(d, "f32") && strcmp(d, "bf16") && strcmp(d, "int8")) {
                fprintf(stderr, "bench_encode: --dtype must be f32, bf16 or int8\n");
                return 2;
            }
            g_dtype = !strcmp(d, "bf16") ? SE_DTYPE_BF16 : !strcmp(d, "int8") ? SE_DTYPE_INT8 : SE_DTYPE_F32;
        } else if (strcmp(a, "--runs") == 0) {
            runs = parse_pos(a, i + 1 < argc ? argv[++i] : NULL, 100000);
        } else if (strcmp(a, "--calls") == 0) {
            calls = parse_pos(a, i + 1 < argc ? argv[++i] : NULL, 1000000);
        } else {
            fprintf(stderr, "bench_encode: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    const shape *todo[MAX_SHAPES];
    size_t n_todo = 0;
    for (size_t i = 0; i < MAX_SHAPES; i++)
        if (strcmp(which, "all") == 0 || strcmp(which, SHAPES[i].name) == 0) todo[n_todo++] = &SHAPES[i];
    if (n_todo == 0) {
        fprintf(stderr, "bench_encode: unknown shape '%s' (minilm, bge-base or all)\n", which);
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    fprintf(stderr, "[bench] sembed %s, %d threads, %d runs, %d latency calls\n", se_version(), threads, runs, calls);
    make_root();
    result res[MAX_RESULTS];
    model_stat ms[MAX_SHAPES];
    size_t n_res = 0;
    for (size_t i = 0; i < n_todo; i++) bench_shape(todo[i], threads, runs, calls, res, &n_res, &ms[i]);
    cleanup();
    print_json(threads, runs, calls, res, n_res, ms, n_todo);
    return 0;
}
