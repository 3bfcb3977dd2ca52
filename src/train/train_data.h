/*
 * train/train_data.h - training rows for `sembed train`: read from JSONL,
 * TSV or CSV with the columns sentence-transformers' trainer takes, and
 * tokenised with the model's tokenizer (train_data.c).
 */
#ifndef SE_TRAIN_DATA_H
#define SE_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "sembed.h"

/* n_rows examples of n_cols text columns (anchor, positive, negatives...
 * or sentence1, sentence2) and an optional numeric label column ("score"
 * or "label"). */
typedef struct se_tdata {
    size_t n_rows, n_cols;
    char **col;          /* (n_cols) column names */
    char *label_col;     /* the label column's name, NULL when there is none */
    char **text;         /* (n_rows, n_cols) row-major, NUL-terminated UTF-8 */
    float *label;        /* (n_rows) or NULL */
    size_t *line;        /* (n_rows) the line of each row in the file */
    int32_t *ids;        /* after se_tdata_tokenize: every text's ids, packed */
    size_t *off;         /* (n_rows * n_cols + 1) text i is ids[off[i] .. off[i + 1]) */
} se_tdata;

/* Reads path (its format by its name: .jsonl / .json / .ndjson, .tsv,
 * .csv). columns NULL: the columns are named by the first object's keys
 * (JSONL) or the header row (TSV, CSV); a comma-separated list: for JSONL
 * the fields to take, in that order; for TSV and CSV the names of the
 * positions of a file with no header row. A column named "score" or
 * "label" is the label (a number); the others are texts, in the order
 * given (JSONL without columns: anchor / sentence1, positive / sentence2,
 * negative, negative_1, negative_2, ..., then other names
 * alphabetically). Errors name the file and line. *out owns everything;
 * free with se_tdata_free. */
se_status se_tdata_read(const char *path, const char *columns, se_tdata **out, se_error *err);

/* Reads STS pairs as `sembed eval sts` does, for evaluation: plain
 * s1<TAB>s2<TAB>score lines, or the STS Benchmark's 8 fields after its
 * header row (split genre dataset year sid score sentence1 sentence2),
 * keeping the rows of split (NULL: all); gzip or plain. Two text columns
 * (sentence1, sentence2) and the score. Errors name the file and line. */
se_status se_tdata_read_sts(const char *path, const char *split, se_tdata **out, se_error *err);

/* Tokenises every text with tok (special tokens added, truncated to
 * n_tokens_max ids, 0: the tokenizer's max_seq_length) into d->ids and
 * d->off. */
se_status se_tdata_tokenize(se_tdata *d, const se_tokenizer *tok, size_t n_tokens_max, se_error *err);

/* Frees d; NULL is a no-op. */
void se_tdata_free(se_tdata *d);

#endif
