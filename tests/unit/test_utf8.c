/* Unit tests for utf8: PostgreSQL's acceptance rules at every encoding boundary, U+FFFD
 * substitution of maximal subparts (Unicode table 3-8), cutting on character boundaries
 * for every size, and the all-or-nothing Buf variant. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "utf8.h"

#define R UTF8_REPLACEMENT

/* Sanitize a string literal (which may hold NULs: pass its sizeof - 1) and compare. */
static void expect_sanitized(const char *in, size_t inlen, const char *want, size_t wantlen)
{
    char out[256];
    size_t n = utf8_sanitize(out, sizeof(out), in, inlen);
    if (n != wantlen || memcmp(out, want, wantlen) != 0) {
        print_error("sanitized to %zu bytes, wanted %zu\n", n, wantlen);
        fail();
    }
    assert_int_equal(out[n], '\0');
    assert_int_equal(utf8_valid_prefix(out, n), n);
}
#define SANITIZED(in, want) expect_sanitized(in, sizeof(in) - 1, want, sizeof(want) - 1)

/* The whole literal is acceptable (valid prefix is everything). */
#define VALID(s) assert_int_equal(utf8_valid_prefix(s, sizeof(s) - 1), sizeof(s) - 1)
/* Only the first k bytes are. */
#define PREFIX(s, k) assert_int_equal(utf8_valid_prefix(s, sizeof(s) - 1), k)

static void test_ascii(void **state)
{
    (void)state;
    VALID("");
    VALID("hello, world");
    VALID("tab\there\nline\r\x01\x1f\x7f");
    assert_int_equal(utf8_valid_prefix(NULL, 0), 0);
    SANITIZED("tab\there\nline\x7f", "tab\there\nline\x7f");
    SANITIZED("", "");
}

static void test_multibyte_and_boundaries(void **state)
{
    (void)state;
    VALID("\xc3\xa9");              /* U+00E9 */
    VALID("\xe2\x82\xac");          /* U+20AC */
    VALID("\xf0\x9f\x98\x80");      /* U+1F600 */
    VALID("\x7f");                  /* U+007F */
    VALID("\xc2\x80");              /* U+0080 */
    VALID("\xdf\xbf");              /* U+07FF */
    VALID("\xe0\xa0\x80");          /* U+0800 */
    VALID("\xed\x9f\xbf");          /* U+D7FF */
    VALID("\xee\x80\x80");          /* U+E000 */
    VALID("\xef\xbf\xbf");          /* U+FFFF */
    VALID("\xf0\x90\x80\x80");      /* U+10000 */
    VALID("\xf4\x8f\xbf\xbf");      /* U+10FFFF */
    PREFIX("a\xf4\x90\x80\x80", 1); /* U+110000 */
    PREFIX("ab\xf7\xbf\xbf\xbf", 2);
    SANITIZED("\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
              "\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf");
    SANITIZED("\xf4\x90\x80\x80", R R R R);
}

static void test_overlong(void **state)
{
    (void)state;
    PREFIX("\xc0\x80", 0);
    PREFIX("\xc1\xbf", 0);
    PREFIX("\xe0\x80\x80", 0);
    PREFIX("\xe0\x9f\xbf", 0);
    PREFIX("\xf0\x80\x80\x80", 0);
    PREFIX("\xf0\x8f\xbf\xbf", 0);
    SANITIZED("\xc0\x80", R R);
    SANITIZED("\xe0\x80\x80", R R R);
    SANITIZED("\xf0\x80\x80\x80", R R R R);
    SANITIZED("x\xc1\xbfy", "x" R R "y");
}

static void test_surrogates(void **state)
{
    (void)state;
    PREFIX("\xed\xa0\x80", 0);               /* U+D800 */
    PREFIX("\xed\xbf\xbf", 0);               /* U+DFFF */
    PREFIX("ok\xed\xa0\x80\xed\xb0\x80", 2); /* a CESU-8 pair */
    SANITIZED("\xed\xa0\x80", R R R);
    SANITIZED("\xed\x9f\xbf\xed\xa0\x80", "\xed\x9f\xbf" R R R);
}

static void test_bad_lead_bytes(void **state)
{
    (void)state;
    for (unsigned b = 0xf5; b <= 0xff; b++) {
        char in[3] = {(char)b, '\x80', 'a'};
        char out[16];
        assert_int_equal(utf8_valid_prefix(in, 3), 0);
        assert_int_equal(utf8_sanitize(out, sizeof(out), in, 3), 7);
        assert_string_equal(out, R R "a");
    }
    /* Old 5- and 6-byte forms. */
    SANITIZED("\xf8\x88\x80\x80\x80", R R R R R);
    SANITIZED("\xfc\x84\x80\x80\x80\x80", R R R R R R);
}

static void test_truncated_at_end(void **state)
{
    (void)state;
    PREFIX("ab\xc3", 2);
    PREFIX("ab\xe2\x82", 2);
    PREFIX("ab\xf0\x9f\x98", 2);
    SANITIZED("ab\xc3", "ab" R);
    SANITIZED("ab\xe2\x82", "ab" R);
    SANITIZED("ab\xf0\x9f\x98", "ab" R);
    SANITIZED("\xf0\x9f", R);
    SANITIZED("\xf0", R);
}

static void test_lone_continuation(void **state)
{
    (void)state;
    PREFIX("\x80", 0);
    PREFIX("a\xbf", 1);
    SANITIZED("\x80\x80\xbf", R R R);
    SANITIZED("a\x80"
              "b",
              "a" R "b");
}

static void test_nul(void **state)
{
    (void)state;
    PREFIX("ab\0cd", 2);
    PREFIX("\0", 0);
    SANITIZED("ab\0cd", "ab" R "cd");
    SANITIZED("\0\0", R R);
}

static void test_charset_header(void **state)
{
    (void)state;
    PREFIX("text/html; charset=\xfc", 19);
    SANITIZED("text/html; charset=\xfc", "text/html; charset=" R);
    /* Latin-1 text from a misconfigured server: each byte on its own. */
    SANITIZED("M\xfcnchen Stra\xdf"
              "e",
              "M" R "nchen Stra" R "e");
}

static void test_maximal_subparts(void **state)
{
    (void)state;
    SANITIZED("\xe1\x80\x41", R "A");        /* E1 80 is a valid prefix: one U+FFFD */
    SANITIZED("\xf0\x80\x80", R R R);        /* F0 80 is not: one each */
    SANITIZED("\xf1\x80\x80\x41", R "A");    /* F1 80 80 is a valid prefix */
    SANITIZED("\xed\xa0", R R);              /* ED A0 is not (surrogate) */
    SANITIZED("\xe0\xa0", R);                /* E0 A0 is */
    SANITIZED("\xc3\xc3\xa9", R "\xc3\xa9"); /* the second lead starts over */
    SANITIZED("\xe2\x82\xe2\x82\xac", R "\xe2\x82\xac");
    /* Unicode 15, section 3.9, table 3-8. */
    SANITIZED("\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64", "a" R R R "b" R "c" R R "d");
}

static void test_char_len(void **state)
{
    (void)state;
    assert_int_equal(utf8_char_len("A", 1), 1);
    assert_int_equal(utf8_char_len("\t", 1), 1);
    assert_int_equal(utf8_char_len("", 0), 0);
    assert_int_equal(utf8_char_len("\0", 1), 0);
    assert_int_equal(utf8_char_len("\xC3\xA9x", 3), 2);
    assert_int_equal(utf8_char_len("\xE2\x82\xAC", 3), 3);
    assert_int_equal(utf8_char_len("\xF0\x9F\x9A\x80", 4), 4);
    assert_int_equal(utf8_char_len("\xF0\x9F\x9A", 3), 0);     /* truncated */
    assert_int_equal(utf8_char_len("\xC0\x80", 2), 0);         /* overlong */
    assert_int_equal(utf8_char_len("\xED\xA0\x80", 3), 0);     /* surrogate */
    assert_int_equal(utf8_char_len("\xF4\x90\x80\x80", 4), 0); /* past U+10FFFF */
    assert_int_equal(utf8_char_len("\x80", 1), 0);
}

static void test_cut_emoji_every_length(void **state)
{
    (void)state;
    const char s[] = "a\xf0\x9f\x98\x80"
                     "b"; /* 1 + 4 + 1 bytes */
    const size_t want[] = {0, 1, 1, 1, 1, 5, 6, 6, 6};

    for (size_t max = 0; max < ARRAY_LEN(want); max++)
        assert_int_equal(utf8_cut(s, 6, max), want[max]);
    assert_int_equal(utf8_cut(s, 3, 100), 3); /* n itself is taken as is */
    assert_int_equal(utf8_cut(NULL, 0, 5), 0);
    /* 2- and 3-byte characters too. */
    assert_int_equal(utf8_cut("\xc3\xa9\xc3\xa9", 4, 3), 2);
    assert_int_equal(utf8_cut("\xe2\x82\xac", 3, 2), 0);
    assert_int_equal(utf8_cut("\xe2\x82\xac"
                              "x",
                              4, 3),
                     3);
}

static void test_dstsize_small(void **state)
{
    (void)state;
    /* U+00E9, U+20AC, U+1F600: 2 + 3 + 4 bytes. */
    const char in[] = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    const size_t want[] = {0, 0, 0, 2, 2, 2, 5, 5, 5, 5, 9, 9};
    char out[16];

    for (size_t size = 1; size < ARRAY_LEN(want); size++) {
        memset(out, 'x', sizeof(out));
        size_t n = utf8_sanitize(out, size, in, sizeof(in) - 1);
        assert_int_equal(n, want[size]);
        assert_int_equal(out[n], '\0');
        assert_memory_equal(out, in, n);
        assert_int_equal(out[size], 'x'); /* nothing past dstsize */
    }
    /* Never half a U+FFFD. */
    const size_t wantr[] = {0, 0, 0, 0, 3, 3, 3, 6};
    for (size_t size = 1; size < ARRAY_LEN(wantr); size++) {
        size_t n = utf8_sanitize(out, size, "\xff\xfe", 2);
        assert_int_equal(n, wantr[size]);
        assert_int_equal(out[n], '\0');
    }
    assert_int_equal(utf8_sanitize(out, 6, "ab\xff", 3), 5);
    assert_string_equal(out, "ab" R);
    assert_int_equal(utf8_sanitize(out, 5, "ab\xff", 3), 2);
    assert_string_equal(out, "ab");
    out[0] = 'x';
    assert_int_equal(utf8_sanitize(out, 0, "ab", 2), 0); /* writes nothing */
    assert_int_equal(out[0], 'x');
}

static void test_sanitize_buf(void **state)
{
    (void)state;
    Buf b;

    buf_init(&b, 64);
    assert_true(utf8_sanitize_buf(&b, NULL, 0, 10));
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    assert_true(buf_puts(&b, "err="));
    assert_true(utf8_sanitize_buf(&b, "charset=\xfc!", 10, 100));
    assert_string_equal(b.data, "err=charset=" R "!");
    /* max_bytes cuts on a boundary: 8 + 3 = 11 fits in 12, the '!' does not in 11. */
    buf_reset(&b);
    assert_true(utf8_sanitize_buf(&b, "charset=\xfc!", 10, 11));
    assert_string_equal(b.data, "charset=" R);
    buf_reset(&b);
    assert_true(utf8_sanitize_buf(&b, "charset=\xfc!", 10, 10));
    assert_string_equal(b.data, "charset=");
    buf_free(&b);

    /* The Buf's own cap: all or nothing. */
    buf_init(&b, 7);
    assert_true(buf_puts(&b, "ab"));
    assert_false(utf8_sanitize_buf(&b, "\xff\xff", 2, 100)); /* 2 + 6 > 7 */
    assert_int_equal(b.len, 2);
    assert_string_equal(b.data, "ab");
    buf_free(&b);
    buf_init(&b, 8);
    assert_true(buf_puts(&b, "ab"));
    assert_true(utf8_sanitize_buf(&b, "\xff\xff", 2, 100));
    assert_int_equal(b.len, 8);
    assert_false(utf8_sanitize_buf(&b, "x", 1, 100));
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "ab" R R, 8);
    buf_free(&b);
}

static void test_sanitize_buf_long(void **state)
{
    (void)state;
    /* Longer than the internal chunk, with characters straddling its edges. */
    char in[3000], want[9000];
    size_t wl = 0;
    Buf b;

    for (size_t i = 0; i < sizeof(in); i++) {
        if (i % 7 == 3) {
            in[i] = '\xfe';
            memcpy(want + wl, R, 3);
            wl += 3;
        } else {
            in[i] = (char)('a' + i % 26);
            want[wl++] = in[i];
        }
    }
    buf_init(&b, 1 << 20);
    assert_true(utf8_sanitize_buf(&b, in, sizeof(in), SIZE_MAX));
    assert_int_equal(b.len, wl);
    assert_memory_equal(b.data, want, wl);
    for (size_t max = 250; max < 270; max++) {
        char small[300];
        size_t n = utf8_sanitize(small, max + 1, in, sizeof(in));
        buf_reset(&b);
        assert_true(utf8_sanitize_buf(&b, in, sizeof(in), max));
        assert_int_equal(b.len, n);
        assert_memory_equal(b.data, small, n);
        assert_int_equal(utf8_cut(want, wl, max), n);
    }
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii),
        cmocka_unit_test(test_multibyte_and_boundaries),
        cmocka_unit_test(test_overlong),
        cmocka_unit_test(test_surrogates),
        cmocka_unit_test(test_bad_lead_bytes),
        cmocka_unit_test(test_truncated_at_end),
        cmocka_unit_test(test_lone_continuation),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_charset_header),
        cmocka_unit_test(test_maximal_subparts),
        cmocka_unit_test(test_char_len),
        cmocka_unit_test(test_cut_emoji_every_length),
        cmocka_unit_test(test_dstsize_small),
        cmocka_unit_test(test_sanitize_buf),
        cmocka_unit_test(test_sanitize_buf_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
