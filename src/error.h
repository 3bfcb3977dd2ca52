/*
 * error.h - private helpers for filling the caller's se_error.
 */
#ifndef SE_ERROR_H
#define SE_ERROR_H

#include "sembed.h"

/* Sets err->code = code and formats err->msg (truncated to fit); returns
 * code so callers can write `return se_err(err, SE_E_FORMAT, "...")`. err may
 * be NULL. Thread-safe. */
se_status se_err(se_error *err, se_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an error message already in err (used to add the
 * file or input index to an error raised deeper down). err may be NULL. */
void se_err_prefix(se_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Programmer-error assertion: on in all builds of the library because it
 * guards invariants only (never untrusted input). Prints file:line and
 * aborts. */
#define SE_ASSERT(x)                                                                               \
    do {                                                                                           \
        if (!(x)) se_assert_fail(__FILE__, __LINE__, #x);                                          \
    } while (0)
void se_assert_fail(const char *file, int line, const char *expr) __attribute__((noreturn));

#endif
