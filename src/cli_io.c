/*
 * cli_io.c - text input and embedding output for the sembed tool.
 */
#include "cli_io.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Copies n bytes into a growable buffer, NUL-terminated. */
static int set_buf(char **buf, size_t *cap, const char *s, size_t n) {
    if (n + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < n + 1) nc *= 2;
        char *b = realloc(*buf, nc);
        if (!b) return -1;
        *buf = b, *cap = nc;
    }
    memcpy(*buf, s, n);
    (*buf)[n] = 0;
    return 0;
}

int cli_read(cli_reader *r, cli_record *rec, char *errbuf, size_t errcap) {
    ssize_t n = getline(&r->line, &r->line_cap, r->f);
    if (n < 0) {
        if (ferror(r->f)) {
            snprintf(errbuf, errcap, "%s: read error: %s", r->name, strerror(errno));
            return -1;
        }
        return 0;
    }
    r->line_no++;
    size_t len = (size_t)n;
    if (len && r->line[len - 1] == '\n') len--;
    if (len && r->line[len - 1] == '\r') len--;
    rec->pair = NULL;
    rec->pair_len = 0;
    if (r->jsonl) {
        json_error_t je;
        json_t *j = json_loadb(r->line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!j) {
            snprintf(errbuf, errcap, "%s:%zu: malformed JSON: %s", r->name, r->line_no, je.text);
            return -1;
        }
        json_t *t = j, *p = NULL;
        if (json_is_object(j)) {
            t = json_object_get(j, "text");
            p = json_object_get(j, "text_pair");
            if (p && json_is_null(p)) p = NULL;
        }
        if (!json_is_string(t) || (p && !json_is_string(p))) {
            snprintf(errbuf, errcap, "%s:%zu: expected a JSON string or {\"text\": string, \"text_pair\": string}", r->name,
                     r->line_no);
            json_decref(j);
            return -1;
        }
        if (set_buf(&r->text_buf, &r->text_cap, json_string_value(t), json_string_length(t)) ||
            (p && set_buf(&r->pair_buf, &r->pair_cap, json_string_value(p), json_string_length(p)))) {
            snprintf(errbuf, errcap, "%s:%zu: out of memory", r->name, r->line_no);
            json_decref(j);
            return -1;
        }
        rec->text = r->text_buf;
        rec->text_len = json_string_length(t);
        if (p) rec->pair = r->pair_buf, rec->pair_len = json_string_length(p);
        json_decref(j);
        return 1;
    }
    r->line[len] = 0;
    if (memchr(r->line, 0, len)) {
        snprintf(errbuf, errcap, "%s:%zu: line contains a NUL byte", r->name, r->line_no);
        return -1;
    }
    rec->text = r->line;
    rec->text_len = len;
    if (r->pair_tab) {
        char *tab = memchr(r->line, '\t', len);
        if (!tab) {
            snprintf(errbuf, errcap, "%s:%zu: --pair expects text<TAB>text_pair", r->name, r->line_no);
            return -1;
        }
        *tab = 0;
        rec->text_len = (size_t)(tab - r->line);
        rec->pair = tab + 1;
        rec->pair_len = len - rec->text_len - 1;
    }
    return 1;
}

/* The offset of the first byte of s (n bytes) that is not valid UTF-8, as
 * the library checks text (se_utf8_check); n when it all is. */
static size_t utf8_bad_at(const char *s, size_t n) {
    size_t bad = n;
    return se_utf8_check(s, n, &bad, NULL) == SE_OK ? n : bad;
}

int cli_reader_precheck(cli_reader *r, char *errbuf, size_t errcap) {
    struct stat st;
    if (fstat(fileno(r->f), &st) || !S_ISREG(st.st_mode)) return 0;
    off_t start = ftello(r->f);
    if (start < 0) return 0;
    size_t line0 = r->line_no;
    cli_record rec;
    int got;
    while ((got = cli_read(r, &rec, errbuf, errcap)) == 1) {
        size_t bad = utf8_bad_at(rec.text, rec.text_len);
        if (bad == rec.text_len && rec.pair) {
            size_t b2 = utf8_bad_at(rec.pair, rec.pair_len);
            if (b2 != rec.pair_len) bad = rec.text_len + 1 + b2;
        }
        if (bad != rec.text_len) {
            snprintf(errbuf, errcap, "%s:%zu: invalid UTF-8 at byte %zu", r->name, r->line_no, bad);
            return -1;
        }
    }
    if (got < 0) return -1;
    clearerr(r->f);
    if (fseeko(r->f, start, SEEK_SET)) {
        snprintf(errbuf, errcap, "%s: cannot rewind: %s", r->name, strerror(errno));
        return -1;
    }
    r->line_no = line0;
    return 0;
}

void cli_reader_free(cli_reader *r) {
    free(r->line);
    free(r->text_buf);
    free(r->pair_buf);
    if (r->f && r->f != stdin) fclose(r->f);
    memset(r, 0, sizeof *r);
}

/* Whether path names an open descriptor of a process (/dev/stdout,
 * /dev/fd/N, /proc/self/fd/N...): such a file is written through, never
 * replaced (renaming over it would cut the shell's redirection). */
static bool is_fd_path(const char *p) {
    return !strncmp(p, "/proc/", 6) || !strncmp(p, "/dev/fd/", 8) || !strcmp(p, "/dev/stdout") || !strcmp(p, "/dev/stderr");
}

/* Follows path through symbolic links (at most 40) to the file a write
 * would reach; returns a malloc'd path (the last link's target may not
 * exist yet), or NULL with errno set. *via_fd is set when a step of the
 * chain is a descriptor path (is_fd_path). */
static char *resolve_links(const char *path, bool *via_fd) {
    char *cur = strdup(path);
    for (int hop = 0; cur && hop < 40; hop++) {
        struct stat st;
        if (is_fd_path(cur)) *via_fd = true;
        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode)) return cur;
        char target[4096];
        ssize_t n = readlink(cur, target, sizeof target - 1);
        if (n < 0) {
            free(cur);
            return NULL;
        }
        target[n] = 0;
        char *next;
        const char *slash = strrchr(cur, '/');
        if (target[0] == '/' || !slash) {
            next = strdup(target);
        } else { /* relative to the link's folder */
            size_t dl = (size_t)(slash - cur) + 1;
            next = malloc(dl + (size_t)n + 1);
            if (next) memcpy(next, cur, dl), memcpy(next + dl, target, (size_t)n + 1);
        }
        free(cur);
        cur = next;
    }
    if (cur) {
        free(cur);
        errno = ELOOP;
    }
    return NULL;
}

int cli_out_open(cli_out *o, const char *path, char *errbuf, size_t errcap) {
    memset(o, 0, sizeof *o);
    if (!path || strcmp(path, "-") == 0) {
        o->f = stdout;
        o->is_stdout = true;
        return 0;
    }
    bool via_fd = false;
    o->path = resolve_links(path, &via_fd);
    if (!o->path) {
        snprintf(errbuf, errcap, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    bool exists = stat(o->path, &st) == 0;
    if (via_fd || (exists && !S_ISREG(st.st_mode))) {
        /* a device, FIFO or socket, or an open descriptor (/dev/stderr):
         * written straight through (renaming over it would replace e.g.
         * /dev/null with a regular file); a descriptor is appended to, as
         * the stream it is */
        o->direct = true;
        o->f = fopen(via_fd ? path : o->path, via_fd ? "ab" : "wb");
        if (!o->f) {
            snprintf(errbuf, errcap, "%s: cannot open for writing: %s", path, strerror(errno));
            free(o->path);
            o->path = NULL;
            return -1;
        }
        return 0;
    }
    size_t n = strlen(o->path) + 32;
    o->tmp = malloc(n);
    if (!o->tmp) {
        snprintf(errbuf, errcap, "out of memory");
        free(o->path);
        o->path = NULL;
        return -1;
    }
    snprintf(o->tmp, n, "%s.tmp.%ld", o->path, (long)getpid());
    o->f = fopen(o->tmp, "wb");
    if (!o->f) {
        snprintf(errbuf, errcap, "%s: cannot create: %s", o->tmp, strerror(errno));
        free(o->path), free(o->tmp);
        o->path = o->tmp = NULL;
        return -1;
    }
    o->seekable = true;
    /* a replaced file keeps its permissions */
    if (exists) fchmod(fileno(o->f), st.st_mode & 07777);
    return 0;
}

int cli_out_commit(cli_out *o, char *errbuf, size_t errcap) {
    if (o->is_stdout) {
        if (fflush(stdout) != 0) {
            snprintf(errbuf, errcap, "stdout: write error: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    if (o->direct) {
        int bad = ferror(o->f) || fflush(o->f) != 0;
        int e = errno;
        if (fclose(o->f) != 0 && !bad) bad = 1, e = errno;
        o->f = NULL;
        if (bad) snprintf(errbuf, errcap, "%s: write failed: %s", o->path, strerror(e));
        free(o->path);
        o->path = NULL;
        return bad ? -1 : 0;
    }
    int bad = ferror(o->f) || fflush(o->f) != 0 || fsync(fileno(o->f)) != 0;
    if (fclose(o->f) != 0) bad = 1;
    o->f = NULL;
    if (bad || rename(o->tmp, o->path) != 0) {
        snprintf(errbuf, errcap, "%s: write failed: %s", o->path, strerror(errno));
        unlink(o->tmp);
        free(o->path), free(o->tmp);
        o->path = o->tmp = NULL;
        return -1;
    }
    free(o->path), free(o->tmp);
    o->path = o->tmp = NULL;
    return 0;
}

void cli_out_abort(cli_out *o) {
    if (!o->is_stdout && o->f) {
        fclose(o->f);
        if (o->tmp) unlink(o->tmp);
    }
    free(o->path), free(o->tmp);
    memset(o, 0, sizeof *o);
}

void cli_print_float(FILE *f, float v) {
    char buf[32];
    /* the shortest of %.6g..%.9g that reads back as the same float32 */
    for (int p = 6; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    if (v != v) strcpy(buf, "NaN"); /* never expected; keeps the line parseable by Python */
    fputs(buf, f);
}

void cli_print_json_array(FILE *f, const float *v, size_t n) {
    fputc('[', f);
    for (size_t i = 0; i < n; i++) {
        if (i) fputs(", ", f);
        cli_print_float(f, v[i]);
    }
    fputc(']', f);
}

void cli_npy_header(FILE *f, size_t rows, size_t cols) {
    char dict[118];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }", rows, cols);
    /* magic(6) + version(2) + len(2) + dict padded with spaces + '\n' = 128 */
    size_t hl = 128 - 10;
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc((int)(hl & 0xFF), f);
    fputc((int)(hl >> 8), f);
    fwrite(dict, 1, (size_t)n, f);
    for (size_t i = (size_t)n; i < hl - 1; i++) fputc(' ', f);
    fputc('\n', f);
}

void cli_print_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

int cli_parse_dtype(const char *s) {
    if (!strcmp(s, "f32")) return SE_DTYPE_F32;
    if (!strcmp(s, "bf16")) return SE_DTYPE_BF16;
    if (!strcmp(s, "int8")) return SE_DTYPE_INT8;
    return -1;
}

const char *cli_dtype_name(int dtype) {
    return dtype == SE_DTYPE_BF16 ? "bf16" : dtype == SE_DTYPE_INT8 ? "int8" : "f32";
}

int cli_quiet;

void cli_log(se_log_level lvl, const char *msg, void *user) {
    (void)user;
    if (cli_quiet && lvl == SE_LOG_INFO) return;
    fprintf(stderr, "sembed: %s: %s\n", lvl == SE_LOG_WARN ? "warning" : "note", msg);
}

int cli_opt_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out) {
    char *end = NULL;
    long v = 0;
    bool ok = s && (*s == '-' || (*s >= '0' && *s <= '9'));
    if (ok) {
        errno = 0;
        v = strtol(s, &end, 10);
        ok = !errno && end != s && !*end && v >= lo && v <= hi;
    }
    if (!ok) {
        fprintf(stderr, "sembed: %s: %s: '%s' is not a whole number in [%ld, %ld]\n", cmd, opt, s ? s : "", lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_opt_float(const char *cmd, const char *opt, const char *s, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = s && *s && *s != ' ' && *s != '\t' ? strtod(s, &end) : NAN;
    if (!s || errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "sembed: %s: %s: '%s' is not a number in [%g, %g]\n", cmd, opt, s ? s : "", lo, hi);
        return -1;
    }
    *out = (float)v;
    return 0;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cli_usage_error(const char *usage, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("sembed: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", usage);
    return 2;
}

int cli_progress_force;

void cli_progress_start(cli_progress *p, const char *what, const char *unit, size_t total) {
    memset(p, 0, sizeof *p);
    p->what = what;
    p->unit = unit;
    p->total = total;
    p->t0 = p->last_t = cli_now();
    p->last_decile = (size_t)-1;
    bool tty = isatty(2);
    if (cli_progress_force) p->mode = tty ? 1 : 2;
    else if (cli_quiet) p->mode = 0;
    else p->mode = tty ? 1 : 3;
}

/* Formats a duration in seconds as "42 s", "3 min 20 s" or "2 h 05 min". */
static void format_eta(double s, char *buf, size_t cap) {
    if (!(s >= 0) || s > 1e8) snprintf(buf, cap, "?");
    else if (s < 60) snprintf(buf, cap, "%.0f s", s);
    else if (s < 3600) snprintf(buf, cap, "%d min %02d s", (int)(s / 60), (int)s % 60);
    else snprintf(buf, cap, "%d h %02d min", (int)(s / 3600), (int)(s / 60) % 60);
}

void cli_progress_update(cli_progress *p, size_t done, double frac) {
    if (!p || !p->mode) return;
    if (frac < 0) frac = p->total ? (double)done / (double)p->total : -1;
    if (frac > 1) frac = 1;
    double t = cli_now(), el = t - p->t0;
    bool end = (p->total && done >= p->total) || frac >= 1;
    if (end && p->ended) return; /* the final line once */
    p->ended = end;
    if (p->mode == 1 && !end && t - p->last_t < 0.25) return;
    if (p->mode == 2 && !end && t - p->last_t < 0.8) return; /* with work steps of ~0.2 s: a line at least once a second */
    if (p->mode == 3) {
        if (frac < 0) return;
        size_t dec = (size_t)(frac * 10);
        if (dec == p->last_decile) return;
        p->last_decile = dec;
    }
    p->last_t = t;
    char line[256], eta[32];
    int n = p->total ? snprintf(line, sizeof line, "%s: %zu/%zu %s", p->what, done, p->total, p->unit)
                     : snprintf(line, sizeof line, "%s: %zu %s", p->what, done, p->unit);
    if (frac >= 0 && n > 0 && (size_t)n < sizeof line) n += snprintf(line + n, sizeof line - (size_t)n, " (%.0f%%)", frac * 100);
    if (el > 0 && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, ", %.1f %s/s", (double)done / el, p->unit);
    if (frac >= 0 && n > 0 && (size_t)n < sizeof line) {
        if (end || frac >= 1) snprintf(line + n, sizeof line - (size_t)n, ", %.1f s", el);
        else if (frac > 0) {
            format_eta(el * (1 - frac) / frac, eta, sizeof eta);
            snprintf(line + n, sizeof line - (size_t)n, ", ETA %s", eta);
        } else snprintf(line + n, sizeof line - (size_t)n, ", ETA ?");
    }
    if (p->mode == 1) fprintf(stderr, "\r%s\033[K", line);
    else fprintf(stderr, "%s\n", line);
    p->printed = true;
}

void cli_progress_end(cli_progress *p) {
    if (p && p->mode == 1 && p->printed) fputc('\n', stderr);
    if (p) p->printed = false;
}

volatile sig_atomic_t cli_stop;

/* The SIGINT / SIGTERM handler: records the signal for the work loops. */
static void on_stop_signal(int sig) { cli_stop = sig; }

void cli_catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART; /* SQLite and stdio calls carry on; the loops check the flag */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void cli_unk_init(cli_unk *u, const se_tokenizer *tok) {
    memset(u, 0, sizeof *u);
    u->tok = tok && se_tokenizer_unk_id(tok) >= 0 ? tok : NULL; /* no unknown token: nothing to warn about */
}

bool cli_unk_check(cli_unk *u, const char *text, size_t len, const char *where) {
    se_token_stats st;
    if (!u->tok || se_tokenize_stats(u->tok, text, len, &st, NULL) != SE_OK) return false;
    if (!(st.n_chars && (double)st.n_chars_unknown > SE_UNKNOWN_SHARE_WARN * (double)st.n_chars)) return false;
    if (u->n++ < CLI_UNK_NAMED) {
        fprintf(stderr, "sembed: warning: %s: %zu of %zu characters are unknown to the model's vocabulary; its embedding says "
                        "little about the text%s\n", where, st.n_chars_unknown, st.n_chars,
                u->n == 1 ? " (a script or language the model was not trained on? `sembed info` lists what the vocabulary covers)"
                          : "");
    }
    return true;
}

void cli_unk_finish(cli_unk *u, const char *noun) {
    if (u->n > CLI_UNK_NAMED)
        fprintf(stderr, "sembed: warning: ... and %zu more %s of mostly unknown tokens (%zu in all)\n", u->n - CLI_UNK_NAMED, noun,
                u->n);
}
