/*
 * serve_page.h - the web page of `sembed serve` (serve_page.c): the bytes
 * of src/web/index.html, built into the binary, and the test of whether a
 * request's Accept header asks for HTML.
 */
#ifndef SE_SERVE_PAGE_H
#define SE_SERVE_PAGE_H

#include <stdbool.h>
#include <stddef.h>

/* The page (UTF-8 HTML, not NUL-terminated); *len receives its size. The
 * bytes are static and read-only: valid for the life of the program. */
const char *sv_page(size_t *len);

/* Whether an Accept header value (NULL: none) lists text/html with a
 * non-zero quality, as browsers send on navigation. Wildcard ranges (any
 * type, any text subtype) do not count, so curl (which sends a wildcard)
 * and API clients keep the JSON answers. Thread-safe. */
bool sv_page_wanted(const char *accept);

#endif
