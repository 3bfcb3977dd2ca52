/*
 * test_serve_float.c - the server's float32 writer (src/serve_float.c):
 * every text it writes reads back (strtof) as the same float32, on every
 * exponent and sign, subnormals, the extremes and about four million values
 * spread over all 2^32 bit patterns; the text is JSON's number grammar;
 * and short values read as people write them (0.5, 100, 1e+09).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"
#include "test.h"

/* Whether s (n bytes) is a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool json_number(const char *s, size_t n) {
    size_t i = 0;
    if (i < n && s[i] == '-') i++;
    if (i >= n) return false;
    if (s[i] == '0') i++;
    else if (s[i] >= '1' && s[i] <= '9') while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    else return false;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == d) return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == d) return false;
    }
    return i == n;
}

/* Writes v and checks the text: a JSON number of at most 16 bytes that
 * strtof reads back as v, bit for bit. Returns false (once reported). */
static bool round_trips(float v) {
    char t[32];
    size_t n = sv_fmt_f32(t, v);
    t[n] = 0;
    float back = strtof(t, NULL);
    uint32_t a, b;
    memcpy(&a, &v, 4), memcpy(&b, &back, 4);
    if (a == b && n <= 16 && json_number(t, n)) return true;
    CHECK_MSG(false, "%.9g (bits %08x) written as '%s' (%zu bytes) reads back as %.9g", (double)v, a, t, n,
              (double)back);
    return false;
}

TEST(test_fmt_f32_round_trip) {
    size_t bad = 0, n = 0;
    /* every exponent and sign, with mantissas at both ends and in between */
    for (uint32_t e = 0; e < 255; e++)
        for (uint32_t s = 0; s < 2; s++)
            for (uint32_t m = 0; m < (1u << 23); m += 1021) {
                uint32_t u = s << 31 | e << 23 | m;
                float v;
                memcpy(&v, &u, 4);
                bad += !round_trips(v), n++;
                if (bad > 5) return;
            }
    /* a stride over all bit patterns (NaN and infinity excluded) */
    for (uint64_t u = 1; u < (1ull << 32); u += 65537 * 4 + 1) {
        uint32_t w = (uint32_t)u;
        if (((w >> 23) & 0xFF) == 0xFF) continue;
        float v;
        memcpy(&v, &w, 4);
        bad += !round_trips(v), n++;
        if (bad > 5) return;
    }
    static const float edge[] = {0.0f, 1.0f, 0.1f, 0.5f, 1e-45f, 1.17549435e-38f, 3.40282347e+38f, 123.45f, 1e9f,
                                 1e-5f, 1e-4f, 99999999.0f, 999999999.0f, 0.999999994f, 16777216.0f};
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++) bad += !round_trips(edge[i]) + !round_trips(-edge[i]);
    CHECK_MSG(bad == 0 && n > 1000000, "%zu of %zu values did not round-trip", bad, n);
}

TEST(test_fmt_f32_text) {
    static const struct {
        float v;
        const char *want;
    } cases[] = {{0.5f, "0.5"}, {100.0f, "100"}, {-2.0f, "-2"}, {0.0f, "0"}, {-0.0f, "-0"}, {1e9f, "1e+09"},
                 {0.25f, "0.25"}, {1e-5f, "9.99999975e-06"}, {123.45f, "123.449997"}, {3.0e-7f, "3.00000011e-07"},
                 {0.0001f, "9.99999975e-05"}, {65536.0f, "65536"}, {NAN, "null"}, {INFINITY, "null"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char t[32];
        size_t n = sv_fmt_f32(t, cases[i].v);
        t[n] = 0;
        CHECK_MSG(strcmp(t, cases[i].want) == 0, "%.9g written as '%s', want '%s'", (double)cases[i].v, t,
                  cases[i].want);
    }
}

int main(void) {
    RUN(test_fmt_f32_round_trip);
    RUN(test_fmt_f32_text);
    return test_report("test_serve_float");
}
