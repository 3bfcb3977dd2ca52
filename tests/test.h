/*
 * test.h - a tiny test framework (redis testhelp.h-sized).
 *
 *   TEST(name) { ... CHECK(cond); CHECK_CLOSE(a, b, n, atol, rtol, "label"); }
 *   int main(void) { RUN(name); ...; return test_report("test_x"); }
 *
 * CHECK records a failure with file:line and goes on. CHECK_CLOSE compares
 * two float arrays elementwise with |a-b| <= atol + rtol*|b|, and on
 * failure prints the first 5 pairs, the max abs and rel diff and the index
 * of the first failing element. test_report prints "N passed, N failed" and
 * returns non-zero when anything failed, so every test binary exits
 * non-zero on failure.
 */
#ifndef SE_TEST_H
#define SE_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_checks_failed;
static int test_cases_passed, test_cases_failed;
static const char *test_current;

#define TEST(name) static void name(void)

#define RUN(name)                                                                                  \
    do {                                                                                           \
        int before_ = test_checks_failed;                                                          \
        test_current = #name;                                                                      \
        name();                                                                                    \
        if (test_checks_failed == before_) {                                                       \
            test_cases_passed++;                                                                   \
        } else {                                                                                   \
            test_cases_failed++;                                                                   \
            fprintf(stderr, "FAIL %s\n", #name);                                                  \
        }                                                                                          \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            test_checks_failed++;                                                                  \
            fprintf(stderr, "  %s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__, test_current,  \
                    #cond);                                                                        \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            test_checks_failed++;                                                                  \
            fprintf(stderr, "  %s:%d: %s: ", __FILE__, __LINE__, test_current);                  \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* Compares n floats; returns 1 when all are close. */
static inline int test_close(const float *a, const float *b, size_t n, double atol, double rtol,
                             const char *label, const char *file, int line) {
    double max_abs = 0, max_rel = 0;
    long first = -1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double r = d / (fabs((double)b[i]) + 1e-30);
        if (d > max_abs) max_abs = d;
        if (r > max_rel) max_rel = r;
        if ((d > atol + rtol * fabs((double)b[i]) || a[i] != a[i]) && first < 0) first = (long)i;
    }
    if (first < 0) return 1;
    test_checks_failed++;
    fprintf(stderr, "  %s:%d: %s: %s not close (n=%zu, max abs %.3g, max rel %.3g, first bad index %ld)\n",
            file, line, test_current, label, n, max_abs, max_rel, first);
    for (size_t i = 0; i < n && i < 5; i++)
        fprintf(stderr, "    [%zu] %.9g vs %.9g\n", i, (double)a[i], (double)b[i]);
    return 0;
}

#define CHECK_CLOSE(a, b, n, atol, rtol, label) test_close((a), (b), (n), (atol), (rtol), (label), __FILE__, __LINE__)

/* Prints the summary line and returns the exit status. */
static inline int test_report(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, test_cases_passed, test_cases_failed);
    return test_cases_failed ? 1 : 0;
}

#endif
