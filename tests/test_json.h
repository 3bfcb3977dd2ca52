/*
 * test_json.h - editing JSON files in tests (model configs copied into a
 * temporary folder), shared by test_model.c and test_use.c.
 */
#ifndef SE_TEST_JSON_H
#define SE_TEST_JSON_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sets field key of the JSON object in the file at path to the JSON text
 * val, written verbatim (so that 1e300, 12.5 or null reach the loader
 * exactly as a user would write them). Returns 0 when the file could not
 * be read or written. */
static inline int test_json_set_raw(const char *path, const char *key, const char *val) {
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        fprintf(stderr, "  (setup: cannot read %s)\n", path);
        return 0;
    }
    json_object_set_new(j, key, json_string("@@VALUE@@"));
    char *txt = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    char *at = txt ? strstr(txt, "\"@@VALUE@@\"") : NULL;
    FILE *f = at ? fopen(path, "wb") : NULL;
    if (f) {
        fwrite(txt, 1, (size_t)(at - txt), f);
        fputs(val, f);
        fputs(at + strlen("\"@@VALUE@@\""), f);
        fclose(f);
    }
    free(txt);
    return f != NULL;
}

#endif
