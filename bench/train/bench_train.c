/*
 * bench/train/bench_train.c - one training step of sembed's engine, timed
 * (issue 15's speed line): a randomly initialised BERT (BERT's init,
 * dropout 0.1 on the hidden states and the attention weights, mean
 * pooling), random token ids (every sentence exactly --seq tokens, so the
 * padded PyTorch peer wastes nothing on padding), MNRL over (anchor,
 * positive) columns or MSE to random teacher vectors, then AdamW (clipping
 * at 1, no weight decay, a constant rate) on --threads threads.
 *
 * It drives the engine directly (src/train/train.h), as `sembed train`
 * does step by step, without the CLI's data reading and tokenising, so the
 * time is the step's alone. A step is: forward, loss, backward, AdamW
 * (which leaves the gradients zero for the next step). Prints one JSON object: the time of every step (wall
 * and the process's CPU seconds, user + system), the medians of the steps
 * after --warmup, sentences per second (columns x batch / the median wall
 * time) and the process's peak RSS (getrusage).
 *
 *   bench_train --layers 6 --hidden 384 --heads 12 --ff 1536 --vocab 30522
 *               --batch 32 --seq 32 --loss mnrl --steps 13 --warmup 3 --threads 2
 *
 * With --lengths FILE (lines "anchor_length positive_length", e.g.
 * lengths-stsb-train.txt: real pairs' token counts) the sentences of step
 * k take the lengths of rows k B .. k B + B - 1 (cycling), column by
 * column, instead of --seq: what training on real text costs, with no
 * padding (torch_train.py --lengths pads each column to its longest, as
 * sentence-transformers does).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "train/train.h"

/* Seconds on the monotonic clock. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds (user + system) of the process so far. */
static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

/* splitmix64: the ids and teacher vectors of each step. */
static uint64_t next64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* qsort's order of doubles. */
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Reads the option table, builds the model, runs and times the steps. */
int main(int argc, char **argv) {
    long L = 6, H = 384, NH = 12, FF = 1536, V = 30522, B = 32, N = 32, steps = 13, warm = 3, threads = 2, tdim = 0;
    const char *loss = "mnrl", *lengths = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        long x = atol(v);
        if (!strcmp(k, "--layers")) L = x;
        else if (!strcmp(k, "--hidden")) H = x;
        else if (!strcmp(k, "--heads")) NH = x;
        else if (!strcmp(k, "--ff")) FF = x;
        else if (!strcmp(k, "--vocab")) V = x;
        else if (!strcmp(k, "--batch")) B = x;
        else if (!strcmp(k, "--seq")) N = x;
        else if (!strcmp(k, "--steps")) steps = x;
        else if (!strcmp(k, "--warmup")) warm = x;
        else if (!strcmp(k, "--threads")) threads = x;
        else if (!strcmp(k, "--teacher-dim")) tdim = x;
        else if (!strcmp(k, "--loss")) loss = v;
        else if (!strcmp(k, "--lengths")) lengths = v;
        else {
            fprintf(stderr, "bench_train: unknown option %s\n", k);
            return 2;
        }
    }
    bool mse = !strcmp(loss, "mse");
    if ((!mse && strcmp(loss, "mnrl")) || steps <= warm || B < 1 || N < 2) {
        fprintf(stderr, "bench_train: --loss mnrl|mse, --steps > --warmup, --batch >= 1, --seq >= 2\n");
        return 2;
    }
    if (tdim < H) tdim = H;
    se_error err = {0};
    se_tmodel_random_params rp = {.V = (size_t)V, .H = (size_t)H, .NH = (size_t)NH, .FF = (size_t)FF, .L = (size_t)L,
                                  .P = 512, .n_type = 2, .eps = 1e-12f, .hidden_dropout = 0.1f, .attn_dropout = 0.1f,
                                  .act = SE_ACT_GELU, .pooling = SE_POOL_MEAN, .seed = 42};
    se_tmodel *m = NULL;
    se_adamw *o = NULL;
    se_ttape *tape = NULL;
    if (se_tmodel_random(&rp, &m, &err) != SE_OK || se_tmodel_set_threads(m, (int)threads, &err) != SE_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    se_adamw_params ap = se_adamw_default_params();
    ap.lr = 2e-5f;
    if (se_adamw_new(m, &ap, &o, &err) != SE_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    size_t cols = mse ? 1 : 2, S = cols * (size_t)B, T = S * (size_t)N, dim = m->cfg.dim;
    long *len = NULL; /* --lengths: n_rows x 2 */
    size_t n_rows = 0;
    if (lengths) {
        FILE *f = fopen(lengths, "r");
        long x, y;
        size_t cap = 0;
        if (!f) {
            fprintf(stderr, "bench_train: cannot read %s\n", lengths);
            return 1;
        }
        while (fscanf(f, "%ld %ld", &x, &y) == 2) {
            if (x < 2 || y < 2 || x > 512 || y > 512) {
                fprintf(stderr, "bench_train: %s line %zu: lengths %ld %ld outside 2..512\n", lengths, n_rows + 1, x, y);
                return 1;
            }
            if (n_rows == cap) {
                cap = cap ? 2 * cap : 4096;
                long *grown = realloc(len, 2 * cap * sizeof *len);
                if (!grown) return 1;
                len = grown;
            }
            len[2 * n_rows] = x, len[2 * n_rows + 1] = y, n_rows++;
        }
        if (!feof(f)) {
            fprintf(stderr, "bench_train: %s line %zu: not two lengths\n", lengths, n_rows + 1);
            return 1;
        }
        fclose(f);
        if (!n_rows) {
            fprintf(stderr, "bench_train: %s: no lengths\n", lengths);
            return 1;
        }
        T = S * 512; /* room for the longest */
    }
    int32_t *ids = malloc(T * sizeof *ids);
    size_t *starts = malloc((S + 1) * sizeof *starts);
    float *emb = malloc(S * dim * sizeof *emb), *demb = malloc(S * dim * sizeof *demb);
    float *teacher = malloc((size_t)B * (size_t)tdim * sizeof *teacher);
    double *times = malloc((size_t)steps * sizeof *times), *losses = malloc((size_t)steps * sizeof *losses);
    double *cpus = malloc((size_t)steps * sizeof *cpus);
    if (!ids || !starts || !emb || !demb || !teacher || !times || !losses || !cpus) return 1;
    for (size_t s = 0; s <= S; s++) starts[s] = s * (size_t)N;
    size_t tokens_sum = 0; /* the timed steps' tokens */
    uint64_t rng = 7;
    se_loss_spec spec = {.kind = mse ? SE_LOSS_MSE : SE_LOSS_MNRL};
    double *loss_scratch = malloc(se_loss_scratch_size((size_t)B, cols, dim) * sizeof *loss_scratch);
    if (!loss_scratch) return 1;
    spec.scratch = loss_scratch; /* as sembed train keeps it */
    for (long st = 0; st < steps; st++) {
        if (len) /* sentence c B + i: column c of row k B + i */
            for (size_t s = 0; s < S; s++)
                starts[s + 1] = starts[s] + (size_t)len[2 * (((size_t)st * (size_t)B + s % (size_t)B) % n_rows) + s / (size_t)B];
        if (st >= warm) tokens_sum += starts[S];
        for (size_t s = 0; s < S; s++) /* [CLS] random word pieces [SEP] */
            for (size_t t = starts[s], n = starts[s + 1] - starts[s]; t < starts[s + 1]; t++)
                ids[t] = t == starts[s] ? 101 : t + 1 == starts[s] + n ? 102
                                                                      : (int32_t)(1000 + next64(&rng) % (uint64_t)(V - 1000));
        for (size_t i = 0; i < (size_t)B * (size_t)tdim; i++)
            teacher[i] = (float)((double)(next64(&rng) >> 11) / 9007199254740992.0 - 0.5) * 0.2f;
        se_tbatch b = {.ids = ids, .starts = starts, .S = S, .train = true, .dropout_key = next64(&rng)};
        double t0 = now(), c0 = cpu_now(), lv = 0.0; /* the gradients: zero from the last step's AdamW */
        if (se_ttape_forward(m, &b, &tape, emb, &err) != SE_OK ||
            se_loss_eval(&spec, emb, (size_t)B, cols, dim, NULL, teacher, (size_t)tdim, &lv, demb, &err) != SE_OK ||
            se_ttape_backward(m, tape, demb, &err) != SE_OK || se_adamw_step(o, m, NULL, &err) != SE_OK) {
            fprintf(stderr, "bench_train: step %ld: %s\n", st, err.msg);
            return 1;
        }
        times[st] = now() - t0, losses[st] = lv, cpus[st] = cpu_now() - c0;
        if (getenv("BENCH_VERBOSE")) fprintf(stderr, "step %ld: %.3f s loss %.4f\n", st, times[st], lv);
    }
    size_t nm = (size_t)(steps - warm);
    double *sorted = malloc(nm * sizeof *sorted);
    memcpy(sorted, times + warm, nm * sizeof *sorted);
    qsort(sorted, nm, sizeof *sorted, cmp_d);
    double med = nm % 2 ? sorted[nm / 2] : 0.5 * (sorted[nm / 2 - 1] + sorted[nm / 2]);
    memcpy(sorted, cpus + warm, nm * sizeof *sorted);
    qsort(sorted, nm, sizeof *sorted, cmp_d);
    double cmed = nm % 2 ? sorted[nm / 2] : 0.5 * (sorted[nm / 2 - 1] + sorted[nm / 2]);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"impl\": \"sembed\", \"layers\": %ld, \"hidden\": %ld, \"heads\": %ld, \"ff\": %ld, \"vocab\": %ld, "
           "\"batch\": %ld, \"seq\": %ld, \"loss\": \"%s\", \"columns\": %zu, \"threads\": %ld, \"warmup\": %ld, "
           "\"lengths\": \"%s\", \"tokens_per_step\": %.1f, \"step_s\": [",
           L, H, NH, FF, V, B, N, loss, cols, threads, warm, lengths ? lengths : "", (double)tokens_sum / (double)nm);
    for (long st = 0; st < steps; st++) printf("%s%.4f", st ? ", " : "", times[st]);
    printf("], \"cpu_s\": [");
    for (long st = 0; st < steps; st++) printf("%s%.4f", st ? ", " : "", cpus[st]);
    printf("], \"loss_values\": [");
    for (long st = 0; st < steps; st++) printf("%s%.5f", st ? ", " : "", losses[st]);
    printf("], \"median_step_s\": %.4f, \"median_cpu_s\": %.4f, \"sentences_per_s\": %.2f, \"peak_rss_mb\": %.1f}\n",
           med, cmed, (double)S / med, (double)ru.ru_maxrss / 1024.0);
    se_ttape_free(tape);
    se_adamw_free(o);
    se_tmodel_free(m);
    free(len), free(ids), free(starts), free(emb), free(demb), free(teacher), free(times), free(losses), free(sorted), free(cpus);
    free(loss_scratch);
    return 0;
}
