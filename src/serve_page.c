/*
 * serve_page.c - the web page of `sembed serve`, answered to GET / (and
 * HEAD /) when the request's Accept header lists text/html (a browser).
 *
 * The page is src/web/index.html, one self-contained file (inline CSS and
 * JS, no network). The Makefile writes its bytes as a C initialiser list
 * ($(BUILD)/gen/serve_page_html.inc, with od and sed) which is included
 * below, so the binary needs no file at run time.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "serve_page.h"

static const unsigned char page_html[] = {
#include "serve_page_html.inc"
};

/* The page's bytes and size. */
const char *sv_page(size_t *len) {
    *len = sizeof page_html;
    return (const char *)page_html;
}

/* Whether the media range s[0..n) (one element of an Accept list, with
 * its parameters) is text/html with a quality above zero. The media type
 * is compared case-insensitively; "q=0", "q=0.0", "q=0.000" refuse. */
static bool range_is_html(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    size_t t = 0;
    while (t < n && s[t] != ';' && s[t] != ' ' && s[t] != '\t') t++;
    if (t != 9 || strncasecmp(s, "text/html", 9) != 0) return false;
    for (size_t i = t; i < n; i++) {
        if (s[i] != ';') continue;
        size_t p = i + 1;
        while (p < n && (s[p] == ' ' || s[p] == '\t')) p++;
        if (p + 1 < n && (s[p] == 'q' || s[p] == 'Q') && s[p + 1] == '=') {
            char q[16];
            size_t k = 0;
            for (p += 2; p < n && k + 1 < sizeof q && s[p] != ';'; p++) q[k++] = s[p];
            q[k] = 0;
            char *end;
            double v = strtod(q, &end);
            if (end == q || v <= 0) return false;
        }
    }
    return true;
}

/* Splits accept at commas and asks range_is_html of each element. */
bool sv_page_wanted(const char *accept) {
    if (!accept) return false;
    for (const char *p = accept;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (range_is_html(p, n)) return true;
        if (!e) return false;
        p = e + 1;
    }
}
