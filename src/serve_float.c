/*
 * serve_float.c - `sembed serve`: float32 as JSON text, fast. A vector of
 * 512 floats written with snprintf("%.9g") costs ~0.15 ms of CPU, more than
 * the rest of a request's text handling together; this writes the same
 * kind of text (9 significant digits, trailing zeros dropped) with integer
 * arithmetic in ~30 ns a float.
 *
 * Why 9 digits read back exactly: float32 has 24 significant bits, and
 * the 9-digit decimal nearest to a value is at most half a unit of its
 * 9th digit away (relative 5e-9 or less), below half a float32 ULP
 * (relative 2^-25 = 2.98e-8 or more). The scaling below is done in double
 * (53 bits), whose error (about 1e-16 relative, so 1e-7 units of the 9th
 * digit) can pick the other neighbour only at an exact tie, still within
 * 0.5 + 1e-7 units: the text always reads back as the same float32
 * (test_serve_float checks it on every exponent, about four million values).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "serve.h"

/* 10^k for k = -64..64, each the double nearest to it. */
static const double pow10_tab[129] = {
    1e-64, 1e-63, 1e-62, 1e-61, 1e-60, 1e-59, 1e-58, 1e-57,
    1e-56, 1e-55, 1e-54, 1e-53, 1e-52, 1e-51, 1e-50, 1e-49,
    1e-48, 1e-47, 1e-46, 1e-45, 1e-44, 1e-43, 1e-42, 1e-41,
    1e-40, 1e-39, 1e-38, 1e-37, 1e-36, 1e-35, 1e-34, 1e-33,
    1e-32, 1e-31, 1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25,
    1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17,
    1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9,
    1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1,
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
    1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23,
    1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31,
    1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39,
    1e40, 1e41, 1e42, 1e43, 1e44, 1e45, 1e46, 1e47,
    1e48, 1e49, 1e50, 1e51, 1e52, 1e53, 1e54, 1e55,
    1e56, 1e57, 1e58, 1e59, 1e60, 1e61, 1e62, 1e63,
    1e64,
};

/* Writes a non-negative integer's decimal digits (at most 20) into out;
 * returns how many. */
static size_t put_uint(char *out, uint64_t u) {
    char t[24];
    size_t n = 0;
    do t[n++] = (char)('0' + u % 10), u /= 10;
    while (u);
    for (size_t i = 0; i < n; i++) out[i] = t[n - 1 - i];
    return n;
}

size_t sv_fmt_f32(char *out, float v) {
    char *o = out;
    if (v != v || v - v != 0.0f) { /* NaN or infinity: JSON has neither */
        memcpy(out, "null", 4);
        return 4;
    }
    if (signbit(v)) *o++ = '-', v = -v;
    if (v == 0.0f) {
        *o++ = '0';
        return (size_t)(o - out);
    }
    double a = (double)v;
    int e10 = (int)floor(log10(a)); /* the first digit's place, maybe one off: fixed below */
    if (e10 < -55 || e10 > 55) e10 = e10 < 0 ? -55 : 55; /* float32 spans 1e-45 .. 3.4e38 */
    double m = a * pow10_tab[8 - e10 + 64];
    if (m < 99999999.5) { /* log10 was one too high */
        e10--;
        m = a * pow10_tab[8 - e10 + 64];
    } else if (m >= 999999999.5) { /* one too low */
        e10++;
        m = a * pow10_tab[8 - e10 + 64];
    }
    uint64_t d = (uint64_t)llround(m); /* 9 digits: 100000000 .. 1000000000 */
    if (d >= 1000000000u) d /= 10, e10++;
    int nd = 9;
    while (nd > 1 && d % 10 == 0) d /= 10, nd--;
    char dig[16];
    put_uint(dig, d);
    if (e10 >= -4 && e10 < 9) { /* plain, as %g: 0.00012345, 123.45, 123456789 */
        if (e10 < 0) {
            *o++ = '0', *o++ = '.';
            for (int i = -1; i > e10; i--) *o++ = '0';
            memcpy(o, dig, (size_t)nd), o += nd;
        } else if (nd <= e10 + 1) {
            memcpy(o, dig, (size_t)nd), o += nd;
            for (int i = nd; i <= e10; i++) *o++ = '0';
        } else {
            memcpy(o, dig, (size_t)e10 + 1), o += e10 + 1;
            *o++ = '.';
            memcpy(o, dig + e10 + 1, (size_t)(nd - e10 - 1)), o += nd - e10 - 1;
        }
    } else { /* scientific: 1.2345e-07, 3.40282347e+38 */
        *o++ = dig[0];
        if (nd > 1) *o++ = '.', memcpy(o, dig + 1, (size_t)nd - 1), o += nd - 1;
        *o++ = 'e';
        *o++ = e10 < 0 ? '-' : '+';
        int ae = e10 < 0 ? -e10 : e10;
        if (ae < 10) *o++ = '0';
        o += put_uint(o, (uint64_t)ae);
    }
    return (size_t)(o - out);
}
