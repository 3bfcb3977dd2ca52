/*
 * bench/ir/migrate_titles.c - turns a format-3 index that `sembed eval ir`
 * built from a BEIR corpus (each document stored as (title + " " + text)
 * stripped, one keyword field) into the format-4 index eval ir builds now
 * (title and text stored and keyword-indexed as two fields), keeping its
 * vectors: so that bench/ir's cached SciFact index (its 20,000 chunk
 * vectors take half an hour to embed) need not be embedded again.
 *
 *   migrate_titles INDEX CORPUS.jsonl
 *
 * The vectors are those a fresh build makes (eval ir embeds the same
 * joined chunks); each document's text becomes the corpus's text and its
 * title the corpus's title, the chunks' spans are mapped into the text as
 * eval ir maps them (the title part left out), the FTS table is rebuilt
 * with the title column and the file marked format 4, in one transaction.
 * Refuses a file whose stored texts are not the joined corpus texts.
 * Built against build/libsembed.a (index_fts.h is private):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc bench/ir/migrate_titles.c build/libsembed.a \
 *      -ljansson -lutf8proc -lsqlite3 -lz -lcurl -lcrypto -lm -pthread -o migrate_titles
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "index_fts.h"

/* Whether c is one of the blanks eval ir strips. */
static int blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Runs sql; prints the error and returns -1 when it fails. */
static int run(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    fprintf(stderr, "migrate_titles: %s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    return -1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: migrate_titles INDEX CORPUS.jsonl\n");
        return 2;
    }
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        se_fts_register(db, argv[1], NULL, NULL) != SE_OK) {
        fprintf(stderr, "migrate_titles: %s: cannot open\n", argv[1]);
        return 1;
    }
    sqlite3_stmt *q = NULL, *find = NULL, *upd = NULL, *span = NULL;
    int ver = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        ver = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (ver != 3) {
        fprintf(stderr, "migrate_titles: %s: index format %d, not 3\n", argv[1], ver);
        return 1;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        fprintf(stderr, "migrate_titles: %s: cannot open\n", argv[2]);
        return 1;
    }
    int rc = run(db, "BEGIN IMMEDIATE") || run(db, "ALTER TABLE docs ADD COLUMN title TEXT") ? 1 : 0;
    if (!rc && (sqlite3_prepare_v2(db, "SELECT id, text FROM docs WHERE ext_id = ?", -1, &find, NULL) ||
                sqlite3_prepare_v2(db, "UPDATE docs SET title = ?, text = ? WHERE id = ?", -1, &upd, NULL) ||
                sqlite3_prepare_v2(db,
                                   "UPDATE chunks SET start = max(0, min(?2, start - ?1)), end = max(0, min(?2, end - ?1)) "
                                   "WHERE doc = ?3",
                                   -1, &span, NULL))) {
        fprintf(stderr, "migrate_titles: %s\n", sqlite3_errmsg(db));
        rc = 1;
    }
    char *line = NULL;
    size_t cap = 0, n = 0, no = 0;
    while (!rc && getline(&line, &cap, f) > 0) {
        no++;
        json_t *o = json_loads(line, 0, NULL);
        json_t *jid = json_object_get(o, "_id"), *jt = json_object_get(o, "text"), *jh = json_object_get(o, "title");
        if (!json_is_string(jid) || !json_is_string(jt)) {
            fprintf(stderr, "migrate_titles: %s:%zu: no string _id / text\n", argv[2], no);
            json_decref(o);
            rc = 1;
            break;
        }
        const char *title = json_is_string(jh) ? json_string_value(jh) : "", *text = json_string_value(jt);
        size_t lt = strlen(title), lx = strlen(text);
        /* the joined string as eval ir makes it, and where text starts in it */
        char *s = malloc(lt + lx + 2);
        memcpy(s, title, lt);
        s[lt] = ' ';
        memcpy(s + lt + 1, text, lx + 1);
        char *a = s, *e = s + lt + 1 + lx;
        while (*a && blank(*a)) a++;
        while (e > a && blank(e[-1])) e--;
        *e = 0;
        long off = (long)(lt + 1) - (long)(a - s);
        sqlite3_reset(find);
        sqlite3_bind_text(find, 1, json_string_value(jid), -1, SQLITE_TRANSIENT);
        if (sqlite3_step(find) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(find, 1), a)) {
            fprintf(stderr, "migrate_titles: %s:%zu: document '%s' is not stored as its joined title and text\n", argv[2], no,
                    json_string_value(jid));
            rc = 1;
        }
        int64_t doc = rc ? 0 : sqlite3_column_int64(find, 0);
        if (!rc) {
            sqlite3_reset(upd);
            if (lt) sqlite3_bind_text(upd, 1, title, -1, SQLITE_TRANSIENT);
            else sqlite3_bind_null(upd, 1);
            sqlite3_bind_text(upd, 2, text, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(upd, 3, doc);
            sqlite3_reset(span);
            sqlite3_bind_int64(span, 1, off);
            sqlite3_bind_int64(span, 2, (int64_t)lx);
            sqlite3_bind_int64(span, 3, doc);
            if (sqlite3_step(upd) != SQLITE_DONE || sqlite3_step(span) != SQLITE_DONE) {
                fprintf(stderr, "migrate_titles: %s\n", sqlite3_errmsg(db));
                rc = 1;
            }
            n++;
        }
        free(s);
        json_decref(o);
    }
    free(line);
    fclose(f);
    sqlite3_finalize(find);
    sqlite3_finalize(upd);
    sqlite3_finalize(span);
    if (!rc && (run(db, "DROP TABLE fts") || run(db, SE_FTS_SCHEMA) || run(db, "INSERT INTO fts(fts) VALUES('rebuild')") ||
                run(db, "PRAGMA user_version=4") || run(db, "UPDATE meta SET value = '4' WHERE key = 'version'") ||
                run(db, "COMMIT")))
        rc = 1;
    if (rc) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    if (!rc) fprintf(stderr, "migrate_titles: %s: %zu documents given their titles; format 4\n", argv[1], n);
    return rc;
}
