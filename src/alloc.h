/*
 * alloc.h - the library's allocator. Every allocation goes through here so
 * tests can inject failures (se_alloc_fail_after) and check that each
 * failure path returns SE_E_NOMEM cleanly.
 */
#ifndef SE_ALLOC_H
#define SE_ALLOC_H

#include <stddef.h>

/* malloc/calloc/realloc/free twins. They return NULL on failure (or when
 * the failure injector fires) and never abort. se_malloc(0) returns a
 * unique non-NULL pointer. se_free(NULL) is a no-op. Thread-safe. */
void *se_malloc(size_t n);
void *se_calloc(size_t count, size_t size);
void *se_realloc(void *p, size_t n);
void se_free(void *p);

/* malloc of count*size with an overflow check; NULL on overflow. */
void *se_malloc_array(size_t count, size_t size);

/* Duplicates a NUL-terminated string (or the first n bytes, then NUL). */
char *se_strdup(const char *s);
char *se_strndup(const char *s, size_t n);

/* Test hook: make the n-th allocation from now fail (n >= 1); 0 turns the
 * injector off. Not thread-safe: tests call it from one thread. */
void se_alloc_fail_after(long n);

#endif
