/*
 * bench/ir/tokens.c - the keyword index's tokens of each input line, for
 * bench/ir/bm25_fields.py (built by it against build/libsembed.a).
 *
 *   tokens [q] < lines > tokens
 *
 * Each input line is one text (a byte 0x01 stands for a newline inside
 * it); each output line is that text's tokens as src/index_fts.c makes
 * them for documents (for queries with "q"): token 0x1F start 0x1F end,
 * tab-separated, start and end the token's byte span in the text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <sqlite3.h>

#include "index_fts.h"

/* Prints one token and its span. */
static int put_token(void *user, const char *tok, int n, int start, int end) {
    (void)user;
    fwrite(tok, 1, (size_t)n, stdout);
    printf("\x1f%d\x1f%d\t", start, end);
    return 0;
}

int main(int argc, char **argv) {
    sqlite3 *db = NULL;
    fts5_api *api = NULL;
    se_error err = {0};
    if (sqlite3_open(":memory:", &db) != SQLITE_OK || se_fts_register(db, ":memory:", &api, &err) != SE_OK) {
        fprintf(stderr, "tokens: cannot register the keyword tokenizer: %s\n", err.msg);
        return 1;
    }
    int query = argc > 1 && !strcmp(argv[1], "q");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n') line[--n] = 0;
        for (ssize_t i = 0; i < n; i++)
            if (line[i] == 1) line[i] = '\n';
        if (se_fts_tokenize(api, line, (size_t)n, query, put_token, NULL, &err) != SE_OK) {
            fprintf(stderr, "tokens: %s\n", err.msg);
            return 1;
        }
        putchar('\n');
    }
    free(line);
    sqlite3_close(db);
    return 0;
}
