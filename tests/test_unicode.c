/*
 * test_unicode.c - UTF-8 decoding and the character classes the BERT
 * normaliser and pre-tokenizer rely on.
 */
#include <string.h>

#include "sembed.h"
#include "test.h"
#include "unicode.h"

TEST(utf8_decode) {
    uint32_t c;
    CHECK(se_utf8_decode((const uint8_t *)"A", 1, &c) == 1 && c == 'A');
    CHECK(se_utf8_decode((const uint8_t *)"\xC3\xA9", 2, &c) == 2 && c == 0xE9);
    CHECK(se_utf8_decode((const uint8_t *)"\xE4\xB8\xAD", 3, &c) == 3 && c == 0x4E2D);
    CHECK(se_utf8_decode((const uint8_t *)"\xF0\x9F\x98\x80", 4, &c) == 4 && c == 0x1F600);
    CHECK(se_utf8_decode((const uint8_t *)"\xC0\xAF", 2, &c) == 0);         /* overlong */
    CHECK(se_utf8_decode((const uint8_t *)"\xE0\x80\xAF", 3, &c) == 0);     /* overlong */
    CHECK(se_utf8_decode((const uint8_t *)"\xED\xA0\x80", 3, &c) == 0);     /* surrogate */
    CHECK(se_utf8_decode((const uint8_t *)"\xF4\x90\x80\x80", 4, &c) == 0); /* > U+10FFFF */
    CHECK(se_utf8_decode((const uint8_t *)"\xE4\xB8", 2, &c) == 0);         /* truncated */
    CHECK(se_utf8_decode((const uint8_t *)"\x80", 1, &c) == 0);             /* lone continuation */
    CHECK(se_utf8_decode((const uint8_t *)"\xF8\x88\x80\x80\x80", 5, &c) == 0);
    size_t bad = 0;
    CHECK(se_utf8_valid("ok \xE4\xB8\xAD", 6, &bad));
    CHECK(!se_utf8_valid("ok \xE4\xB8", 5, &bad) && bad == 3);
    /* the public check: the same verdict and offset, and a message naming the byte */
    se_error e = {0};
    size_t at = 99;
    CHECK(se_utf8_check("ok \xE4\xB8\xAD", 6, &at, &e) == SE_OK && at == 99 && e.code == SE_OK);
    CHECK(se_utf8_check(NULL, 0, NULL, NULL) == SE_OK);
    CHECK(se_utf8_check("ab\xED\xA0\x80", 5, &at, &e) == SE_E_UTF8 && at == 2 && strstr(e.msg, "byte 2"));
    CHECK(se_utf8_check("abc\xC0\xAF", 5, &at, NULL) == SE_E_UTF8 && at == 3);
    CHECK(se_utf8_check(NULL, 3, &at, &e) == SE_E_INVALID);
    char out[4];
    for (uint32_t cp = 1; cp < 0x110000; cp += 97) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        int n = se_utf8_encode(cp, out);
        uint32_t back;
        CHECK_MSG(se_utf8_decode((const uint8_t *)out, (size_t)n, &back) == n && back == cp, "round trip U+%04X", cp);
    }
}

TEST(classes) {
    CHECK(se_uc_is_whitespace(' ') && se_uc_is_whitespace('\t') && se_uc_is_whitespace(0x3000) && se_uc_is_whitespace(0xA0));
    CHECK(!se_uc_is_whitespace(0x200B) && !se_uc_is_whitespace('a') && !se_uc_is_whitespace(0x1C));
    CHECK(se_uc_is_py_space(0x1C) && se_uc_is_py_space(0x85) && !se_uc_is_py_space(0x200B));
    CHECK(se_uc_is_control(0x7) && se_uc_is_control(0x200B) && se_uc_is_control(0xE000)); /* Cc, Cf, Co */
    CHECK(!se_uc_is_control('\t') && !se_uc_is_control('\n') && !se_uc_is_control('\r') && !se_uc_is_control('a'));
    CHECK(!se_uc_is_control(0x0378)); /* unassigned (Cn) is not a control for HF */
    CHECK(se_uc_is_punct('$') && se_uc_is_punct('^') && se_uc_is_punct('`') && se_uc_is_punct(0x3002) && se_uc_is_punct(0x2014));
    CHECK(!se_uc_is_punct(0x20AC) && !se_uc_is_punct('a') && !se_uc_is_punct(0xFF5E)); /* euro Sc, fullwidth tilde Sm */
    CHECK(se_uc_is_cjk(0x4E2D) && se_uc_is_cjk(0x20000) && !se_uc_is_cjk(0x3042) && !se_uc_is_cjk(0xAC00));
    CHECK(se_uc_is_mn(0x301) && !se_uc_is_mn('a') && !se_uc_is_mn(0x903)); /* U+0903 is Mc */
}

TEST(case_and_decomposition) {
    uint32_t lo[2], d[8];
    CHECK(se_uc_lower('A', lo) == 1 && lo[0] == 'a');
    CHECK(se_uc_lower(0xC9, lo) == 1 && lo[0] == 0xE9);
    CHECK(se_uc_lower(0x130, lo) == 2 && lo[0] == 'i' && lo[1] == 0x307);
    CHECK(se_uc_lower(0x3A3, lo) == 1 && lo[0] == 0x3C3); /* no final-sigma rule per character */
    CHECK(se_uc_lower(0x4E2D, lo) == 1 && lo[0] == 0x4E2D);
    CHECK(se_uc_nfd_char(0xE9, d, 8) == 2 && d[0] == 'e' && d[1] == 0x301);
    CHECK(se_uc_nfd_char(0x1E69, d, 8) == 3 && d[0] == 's' && d[1] == 0x323 && d[2] == 0x307);
    CHECK(se_uc_nfd_char(0xAC00, d, 8) == 2 && d[0] == 0x1100 && d[1] == 0x1161); /* Hangul */
    CHECK(se_uc_nfd_char('a', d, 8) == 1 && d[0] == 'a');
    uint32_t seq[4] = {'q', 0x307, 0x323, 'x'}; /* dot above (230) before dot below (220) */
    se_uc_canonical_order(seq, 4);
    CHECK(seq[1] == 0x323 && seq[2] == 0x307 && seq[3] == 'x');
}

int main(void) {
    RUN(utf8_decode);
    RUN(classes);
    RUN(case_and_decomposition);
    return test_report("test_unicode");
}
