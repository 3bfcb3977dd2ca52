/*
 * replay.c - replays the committed fuzz corpus without libFuzzer (STYLE
 * rule 39), in the spirit of LLVM's StandaloneFuzzTargetMain.c and
 * sqlite's test/fuzzcheck.c.
 *
 * Run from the repo root with no arguments. For each target it reads every
 * regular file of tests/fuzz/corpus/<target>/ (in name order) and feeds it
 * to the target's entry point (se_fuzz_safetensors, se_fuzz_tokenizer,
 * se_fuzz_snapshot, se_fuzz_spm_model, se_fuzz_torch_bin, se_fuzz_spm_folder,
 * se_fuzz_serve_request).
 * A target that crashes, traps on a broken invariant or trips a sanitizer
 * ends the process, so the normal suite built with gcc + ASan/UBSan catches
 * regressions on every input the fuzzer ever kept. At the end it prints
 *     fuzz_replay: N passed, 0 failed
 * and exits 0; a missing or empty corpus directory, an unreadable file or
 * an entry point returning non-zero makes it exit 1.
 *
 * Memory blow-ups count as failures too: libFuzzer stops at -rss_limit_mb,
 * but a plain replay would just grow. So when the peak RSS while running
 * one input exceeds the RSS before it by more than SE_FUZZ_REPLAY_RSS_MB
 * (default 256 MB) that input fails, as a tiny file that makes the library
 * allocate gigabytes is a bug (STYLE rule 24: caps on everything). The
 * per-input peak comes from resetting VmHWM through /proc/self/clear_refs.
 *
 * Set SE_FUZZ_REPLAY_VERBOSE=1 to print each file before it runs; on a
 * trap or abort the file being replayed is printed anyway.
 */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

int se_fuzz_safetensors(const uint8_t *data, size_t size);
int se_fuzz_tokenizer(const uint8_t *data, size_t size);
int se_fuzz_snapshot(const uint8_t *data, size_t size);
int se_fuzz_spm_model(const uint8_t *data, size_t size);
int se_fuzz_torch_bin(const uint8_t *data, size_t size);
int se_fuzz_spm_folder(const uint8_t *data, size_t size);
int se_fuzz_serve_request(const uint8_t *data, size_t size);

typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

static const struct {
    const char *dir;
    fuzz_fn fn;
} targets[] = {
    {"tests/fuzz/corpus/fuzz_safetensors", se_fuzz_safetensors},
    {"tests/fuzz/corpus/fuzz_tokenizer", se_fuzz_tokenizer},
    {"tests/fuzz/corpus/fuzz_snapshot", se_fuzz_snapshot},
    {"tests/fuzz/corpus/fuzz_spm_model", se_fuzz_spm_model},
    {"tests/fuzz/corpus/fuzz_torch_bin", se_fuzz_torch_bin},
    {"tests/fuzz/corpus/fuzz_spm_folder", se_fuzz_spm_folder},
    {"tests/fuzz/corpus/fuzz_serve_request", se_fuzz_serve_request},
};

static char current[4096]; /* the file being replayed, for the crash note */

/* On SIGILL (a harness trap) or SIGABRT, names the input being replayed,
 * then dies of the same signal. Only async-signal-safe calls are used.
 * SIGSEGV is left to the sanitizers, which report it better. */
static void on_fatal_signal(int sig) {
    static const char pre[] = "fuzz_replay: crashed while replaying ";
    if (write(2, pre, sizeof pre - 1) < 0 || write(2, current, strlen(current)) < 0 || write(2, "\n", 1) < 0) {
        /* nothing more we can do */
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Resets the kernel's peak-RSS mark (VmHWM) to the current RSS, so the
 * next reading is the peak of one input alone. Where that is not
 * supported nothing happens, and the caller measures growth of the
 * all-time peak instead. */
static void reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return;
    fputs("5", f);
    fclose(f);
}

/* Returns the peak resident set size in kilobytes since the last reset
 * (VmHWM), or the all-time peak from getrusage when /proc is missing. */
static long peak_rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        long kb = -1;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
        fclose(f);
        if (kb >= 0) return kb;
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return ru.ru_maxrss;
}

/* Compares two directory entry names for qsort. */
static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads a whole file into a new buffer (*size bytes); NULL on failure. */
static uint8_t *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        uint8_t *b = realloc(buf, cap * 2);
        if (!b) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b, cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (buf && bad) {
        free(buf);
        buf = NULL;
    }
    *size = n;
    return buf;
}

/* Replays every regular file in dir through fn. Adds the number of files
 * replayed to *passed and failures to *failed; returns 0 when the
 * directory exists and held at least one file. */
static int replay_dir(const char *dir, fuzz_fn fn, int *passed, int *failed, int verbose, long rss_limit_kb) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "fuzz_replay: cannot open %s (run from the repo root)\n", dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (names[n]) n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    int replayed = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(current, sizeof current, "%s/%s", dir, names[i]);
        free(names[i]);
        struct stat st;
        if (stat(current, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (verbose) fprintf(stderr, "fuzz_replay: %s\n", current);
        size_t size;
        uint8_t *buf = read_all(current, &size);
        if (!buf) {
            fprintf(stderr, "fuzz_replay: cannot read %s\n", current);
            (*failed)++;
            continue;
        }
        /* An exact-size copy, so ASan sees reads one past the input. */
        uint8_t *exact = malloc(size ? size : 1);
        if (!exact) {
            free(buf);
            (*failed)++;
            continue;
        }
        if (size) memcpy(exact, buf, size);
        free(buf);
        reset_peak_rss(); /* when unsupported, growth of the all-time peak is measured */
        long rss_before = peak_rss_kb();
        int r = fn(exact, size);
        long rss_grew = peak_rss_kb() - rss_before;
        free(exact);
        if (r != 0) {
            fprintf(stderr, "fuzz_replay: %s: entry point returned %d\n", current, r);
            (*failed)++;
        } else if (rss_grew > rss_limit_kb) {
            fprintf(stderr, "fuzz_replay: %s: peak RSS grew by %ld MB (limit %ld MB): a %zu-byte input blew up memory\n",
                    current, rss_grew / 1024, rss_limit_kb / 1024, size);
            (*failed)++;
        } else {
            (*passed)++;
        }
        replayed++;
    }
    free(names);
    current[0] = 0;
    if (replayed == 0) {
        fprintf(stderr, "fuzz_replay: %s holds no corpus files\n", dir);
        return -1;
    }
    return 0;
}

/* Replays every target's corpus and prints the summary line. */
int main(int argc, char **argv) {
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: fuzz_replay (no arguments; run from the repo root)\n");
        return 2;
    }
    signal(SIGILL, on_fatal_signal);
    signal(SIGABRT, on_fatal_signal);
    const char *v = getenv("SE_FUZZ_REPLAY_VERBOSE");
    int verbose = v && *v && strcmp(v, "0") != 0;
    const char *lim = getenv("SE_FUZZ_REPLAY_RSS_MB");
    long rss_limit_kb = (lim && atol(lim) > 0 ? atol(lim) : 256) * 1024;
    int passed = 0, failed = 0, bad_dirs = 0;
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++)
        if (replay_dir(targets[t].dir, targets[t].fn, &passed, &failed, verbose, rss_limit_kb) != 0) bad_dirs++;
    printf("fuzz_replay: %d passed, %d failed\n", passed, failed);
    return (failed || bad_dirs) ? 1 : 0;
}
