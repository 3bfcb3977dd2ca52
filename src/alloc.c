/*
 * alloc.c - se_malloc and friends, with a failure injector for tests.
 *
 * The injector is a countdown: when it reaches zero the allocation fails.
 * It is a plain global because only single-threaded tests arm it.
 */
#include "sembed.h"
#include "alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static long fail_countdown = 0; /* 0 = off */

/* Returns 1 when the injector says this allocation must fail. */
static int inject_failure(void) {
    if (fail_countdown <= 0) return 0;
    if (--fail_countdown == 0) return 1;
    return 0;
}

void se_alloc_fail_after(long n) { fail_countdown = n > 0 ? n : 0; }

void *se_malloc(size_t n) {
    if (inject_failure()) return NULL;
    return malloc(n ? n : 1);
}

void *se_calloc(size_t count, size_t size) {
    if (inject_failure()) return NULL;
    if (count == 0 || size == 0) return calloc(1, 1);
    return calloc(count, size);
}

void *se_realloc(void *p, size_t n) {
    if (inject_failure()) return NULL;
    return realloc(p, n ? n : 1);
}

void se_free(void *p) { free(p); }

void *se_malloc_array(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    return se_malloc(count * size);
}

char *se_strndup(const char *s, size_t n) {
    char *d = se_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *se_strdup(const char *s) { return se_strndup(s, strlen(s)); }
