/*
 * cli_io.h - input and output helpers of the sembed command-line tool:
 * reading texts (plain lines or JSONL), writing JSONL / .npy / raw f32,
 * writing files atomically (temporary name, then rename).
 */
#ifndef SE_CLI_IO_H
#define SE_CLI_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>

#include "sembed.h"

/* One input record: text and optional pair (owned by the reader, valid
 * until the next read). */
typedef struct cli_record {
    char *text;
    size_t text_len;
    char *pair; /* NULL when none */
    size_t pair_len;
} cli_record;

typedef struct cli_reader {
    FILE *f;
    const char *name;  /* for messages */
    bool jsonl;        /* each line is a JSON string or {"text": .., "text_pair": ..} */
    bool pair_tab;     /* plain text: split text<TAB>pair */
    size_t line_no;
    char *line;
    size_t line_cap;
    char *text_buf, *pair_buf;
    size_t text_cap, pair_cap;
} cli_reader;

/* Reads the next record. Returns 1 on a record, 0 at end of input, -1 on
 * an error (message written to errbuf, naming the line). Plain lines lose
 * their trailing "\n" or "\r\n". */
int cli_read(cli_reader *r, cli_record *rec, char *errbuf, size_t errcap);
void cli_reader_free(cli_reader *r);

/* Reads a regular file's every record (as cli_read) and checks its texts
 * are valid UTF-8, then rewinds: a bad line fails before any work is done
 * rather than after an hour of it. Other inputs (pipes, terminals) are
 * left unread. Returns 0, or -1 with the line named in errbuf. */
int cli_reader_precheck(cli_reader *r, char *errbuf, size_t errcap);

/* An output file. A regular file or a new path is written atomically:
 * data goes to "<path>.tmp.<pid>", which cli_out_commit renames over
 * path. A symbolic link is followed and its final target replaced that
 * way, so the link stays. Anything else that exists (a device such as
 * /dev/null, a FIFO, a socket) is written straight through, never
 * replaced. path "-" or NULL is stdout. */
typedef struct cli_out {
    FILE *f;
    char *path, *tmp; /* path: the resolved target; tmp: NULL when direct */
    bool is_stdout;
    bool direct;   /* written straight through (not a regular file) */
    bool seekable; /* a temporary regular file (fseek works) */
} cli_out;

int cli_out_open(cli_out *o, const char *path, char *errbuf, size_t errcap);
int cli_out_commit(cli_out *o, char *errbuf, size_t errcap);
void cli_out_abort(cli_out *o);

/* -q / --quiet: set by the command's option parser; cli_log drops notes
 * (not warnings) when set. */
extern int cli_quiet;

/* The library's notices on stderr as "sembed: note|warning: msg" (an
 * se_log_fn). */
void cli_log(se_log_level lvl, const char *msg, void *user);

/* Parses option opt's value s of command cmd strictly: a whole decimal
 * integer in [lo, hi] (no blanks, no '+', no trailing characters, no
 * overflow) into *out. On a bad value prints "sembed: CMD: OPT: 'S' is not a whole
 * number in [lo, hi]" and returns -1 (the caller exits with a usage
 * error, 2); 0 on success. */
int cli_opt_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);

/* A usage error: prints "sembed: <fmt...>" (what is missing or wrong),
 * a blank line and the command's usage to stderr; returns 2, the usage
 * exit code. */
int cli_usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same for a number (strtod syntax, finite, in [lo, hi]). */
int cli_opt_float(const char *cmd, const char *opt, const char *s, double lo, double hi, float *out);

/* Monotonic seconds. */
double cli_now(void);

/* Parses a --dtype value: "f32", "bf16" or "int8" to an se_dtype value;
 * -1 when unknown. */
int cli_parse_dtype(const char *s);

/* The --dtype spelling of a compute dtype ("f32", "bf16", "int8"). */
const char *cli_dtype_name(int dtype);

/* Writes a float with enough digits to round-trip float32. */
void cli_print_float(FILE *f, float v);

/* Writes s as a JSON string literal (quotes and control characters
 * escaped; UTF-8 passed through). */
void cli_print_json_string(FILE *f, const char *s);

/* Writes v as a JSON array "[a, b, ...]". */
void cli_print_json_array(FILE *f, const float *v, size_t n);

/* Writes an .npy (version 1.0) header for a little-endian float32 array of
 * shape (rows, cols), padded to a fixed 128 bytes so it can be rewritten in
 * place once rows is known. */
void cli_npy_header(FILE *f, size_t rows, size_t cols);

/* A progress line on stderr with a rate and an ETA, updated by time: in
 * place at most 4 times a second on a terminal; when stderr is not a
 * terminal, a line per 10% (mode 3), or a line a second when forced with
 * --progress (cli_progress_force; mode 2). Off with -q unless forced. */
typedef struct cli_progress {
    const char *what, *unit; /* "indexing", "docs" */
    size_t total;            /* 0: unknown */
    double t0, last_t;
    int mode;                /* 0 off, 1 in place, 2 a line a second, 3 a line per 10% */
    size_t last_decile;
    bool printed, ended;
} cli_progress;

/* --progress: progress lines even when stderr is not a terminal, or -q. */
extern int cli_progress_force;

/* Starts p for total items (0 = unknown) of unit; the mode follows the
 * terminal, -q and --progress. */
void cli_progress_start(cli_progress *p, const char *what, const char *unit, size_t total);

/* Reports done items; frac is the share done when known otherwise (e.g.
 * bytes of the input read), or -1 to take done / total. Prints only when
 * the mode's interval has passed (or at the end). */
void cli_progress_update(cli_progress *p, size_t done, double frac);

/* Ends the in-place line on a terminal. */
void cli_progress_end(cli_progress *p);

/* Warnings about texts the model cannot read: a text is "mostly unknown"
 * when more than SE_UNKNOWN_SHARE_WARN of its non-blank characters fell to
 * the unknown token (e.g. Chinese through an English-only vocabulary: every
 * such text gets nearly the same vector). The first CLI_UNK_NAMED are
 * named, then cli_unk_finish sums up the rest. */
#define CLI_UNK_NAMED 5
typedef struct cli_unk {
    const se_tokenizer *tok; /* NULL: the vocabulary has no unknown token */
    size_t n;                /* mostly unknown texts seen */
} cli_unk;

void cli_unk_init(cli_unk *u, const se_tokenizer *tok);

/* True when text is mostly unknown tokens; then warns (while fewer than
 * CLI_UNK_NAMED were named) as "sembed: warning: WHERE: ..." (where:
 * "file:12", "argument 2", ...). Invalid UTF-8 is left to the encoder. */
bool cli_unk_check(cli_unk *u, const char *text, size_t len, const char *where);

/* "... and N more NOUN of mostly unknown tokens" past the named ones. */
void cli_unk_finish(cli_unk *u, const char *noun);

/* The signal (SIGINT or SIGTERM) that asked a long command to stop, 0
 * while none did; set once cli_catch_stop_signals is called. Work loops
 * check it between steps, clean up, and exit with 128 + the signal. */
extern volatile sig_atomic_t cli_stop;

/* Installs the SIGINT / SIGTERM handler that sets cli_stop. */
void cli_catch_stop_signals(void);

#endif
