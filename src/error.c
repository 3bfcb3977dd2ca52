/*
 * error.c - status names, error messages and the invariant assertion.
 *
 * Errors travel as an se_status return value plus an optional caller-owned
 * se_error holding a one-line message (see sembed.h). There is no global
 * error state, so every function is thread-safe.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Returns the version string compiled into the library. */
const char *se_version(void) { return SE_VERSION_STRING; }

/* Returns the enum name of s; "SE_E_UNKNOWN" for values outside the enum. */
const char *se_status_str(se_status s) {
    switch (s) {
    case SE_OK: return "SE_OK";
    case SE_E_INVALID: return "SE_E_INVALID";
    case SE_E_NOMEM: return "SE_E_NOMEM";
    case SE_E_IO: return "SE_E_IO";
    case SE_E_FORMAT: return "SE_E_FORMAT";
    case SE_E_UNSUPPORTED: return "SE_E_UNSUPPORTED";
    case SE_E_BUFFER: return "SE_E_BUFFER";
    case SE_E_UTF8: return "SE_E_UTF8";
    case SE_E_RANGE: return "SE_E_RANGE";
    case SE_E_INTERNAL: return "SE_E_INTERNAL";
    }
    return "SE_E_UNKNOWN";
}

/* Formats the message into err (if any) and returns code. */
se_status se_err(se_error *err, se_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Rewrites err->msg as "<prefix>: <old message>", truncating at the end. */
void se_err_prefix(se_error *err, const char *fmt, ...) {
    if (!err) return;
    char buf[2 * SE_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    size_t k = (size_t)n;
    if (k + 2 < sizeof buf) {
        buf[k++] = ':', buf[k++] = ' ';
        size_t m = strnlen(err->msg, sizeof err->msg);
        if (m > sizeof buf - 1 - k) m = sizeof buf - 1 - k;
        memcpy(buf + k, err->msg, m);
        k += m;
    }
    buf[k] = 0;
    size_t keep = k < sizeof err->msg - 1 ? k : sizeof err->msg - 1;
    memcpy(err->msg, buf, keep);
    err->msg[keep] = 0;
}

/* Reports a broken invariant (a bug, never bad input) and aborts. */
void se_assert_fail(const char *file, int line, const char *expr) {
    fprintf(stderr, "sembed: internal assertion failed at %s:%d: %s\n", file, line, expr);
    abort();
}
