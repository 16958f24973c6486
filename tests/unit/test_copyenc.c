/* Unit tests for copyenc: every escape, NULL versus the text "\N", UTF-8, long values
 * checked against a decoder, exact doubles, and what a full buffer does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <float.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "copyenc.h"

#define BIG (16u << 20)

/* Encode s (len bytes) into a fresh buffer and compare with want. */
static void check_text(const char *s, size_t len, const char *want)
{
    Buf b;
    buf_init(&b, BIG);
    assert_true(copyenc_text(&b, s, len));
    assert_non_null(b.data);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    assert_int_equal(b.data[b.len], '\0');
    buf_free(&b);
}

#define CHECK_TEXT(lit, want) check_text(lit, sizeof(lit) - 1, want)

/* A COPY text-format field decoder, enough to check that encoding round-trips:
 * returns false for the NULL marker. */
static bool decode_field(const char *in, size_t n, Buf *out)
{
    if (n == 2 && in[0] == '\\' && in[1] == 'N')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '\\') {
            assert_true(i + 1 < n); /* an escape never ends a field */
            char e = in[++i];
            switch (e) {
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case 'v':
                c = '\v';
                break;
            case '\\':
                c = '\\';
                break;
            default:
                print_error("unexpected escape \\%c\n", e);
                fail();
            }
        } else {
            /* What COPY would misread must never appear raw. */
            assert_true(c != '\t' && c != '\n' && c != '\r');
        }
        assert_true(buf_putc(out, c));
    }
    return true;
}

static void test_null_marker(void **state)
{
    (void)state;
    check_text(NULL, 0, "\\N");
    check_text(NULL, 99, "\\N"); /* len is ignored for NULL */
}

static void test_empty_is_not_null(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 100);
    assert_true(copyenc_text(&b, "", 0));
    assert_int_equal(b.len, 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    buf_free(&b);
}

static void test_plain_passes(void **state)
{
    (void)state;
    CHECK_TEXT("Place de l'Hotel de Ville", "Place de l'Hotel de Ville");
    CHECK_TEXT("\"quoted\" ,;|", "\"quoted\" ,;|");
    check_text("abcdef", 3, "abc"); /* only len bytes */
}

static void test_every_escape(void **state)
{
    (void)state;
    CHECK_TEXT("\\", "\\\\");
    CHECK_TEXT("\b", "\\b");
    CHECK_TEXT("\f", "\\f");
    CHECK_TEXT("\n", "\\n");
    CHECK_TEXT("\r", "\\r");
    CHECK_TEXT("\t", "\\t");
    CHECK_TEXT("\v", "\\v");
    CHECK_TEXT("a\tb\nc\r\nd\\e", "a\\tb\\nc\\r\\nd\\\\e");
    CHECK_TEXT("\\\\\t\t", "\\\\\\\\\\t\\t");
    CHECK_TEXT("end\n", "end\\n");
}

static void test_other_bytes_pass(void **state)
{
    (void)state;
    /* COPY text gives no meaning to other control bytes; they pass unchanged. */
    CHECK_TEXT("\x01\x1b[0m\x7f", "\x01\x1b[0m\x7f");
    /* UTF-8: multibyte sequences, including 4-byte emoji, are untouched. */
    CHECK_TEXT("Île-de-France", "Île-de-France");
    CHECK_TEXT("\xF0\x9F\x98\x80 \xF0\x9F\x97\xBC", "\xF0\x9F\x98\x80 \xF0\x9F\x97\xBC");
    CHECK_TEXT("東京\t北京", "東京\\t北京");
}

static void test_backslash_n_text_is_not_null(void **state)
{
    (void)state;
    /* The two characters \N as data must not read back as NULL. */
    CHECK_TEXT("\\N", "\\\\N");
    CHECK_TEXT("N", "N");
    CHECK_TEXT("\\.", "\\\\."); /* nor as the end-of-data marker */
    Buf b, dec;
    buf_init(&b, 100);
    buf_init(&dec, 100);
    assert_true(copyenc_text(&b, "\\N", 2));
    assert_true(decode_field(b.data, b.len, &dec));
    assert_string_equal(dec.data, "\\N");
    buf_reset(&b);
    assert_true(copyenc_text(&b, NULL, 0));
    assert_false(decode_field(b.data, b.len, &dec));
    buf_free(&b);
    buf_free(&dec);
}

static void test_long_value_round_trips(void **state)
{
    (void)state;
    /* 1 MiB of every byte value except NUL, in a fixed pseudo-random order. */
    size_t n = 1u << 20;
    char *src = malloc(n);
    assert_non_null(src);
    uint32_t x = 12345;
    size_t specials = 0;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        unsigned char c = (unsigned char)(1 + (x >> 16) % 255);
        src[i] = (char)c;
        if (c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t' || c == '\v')
            specials++;
    }
    Buf b, dec;
    buf_init(&b, BIG);
    buf_init(&dec, BIG);
    assert_true(copyenc_text(&b, src, n));
    assert_int_equal(b.len, n + specials); /* exactly one extra byte per escape */
    assert_true(decode_field(b.data, b.len, &dec));
    assert_int_equal(dec.len, n);
    assert_memory_equal(dec.data, src, n);
    buf_free(&b);
    buf_free(&dec);
    free(src);
}

static void test_appends_after_existing_content(void **state)
{
    (void)state;
    /* A row is built field by field with separators the caller adds. */
    Buf b;
    buf_init(&b, 1000);
    assert_true(copyenc_int(&b, 90));
    assert_true(buf_putc(&b, '\t'));
    assert_true(copyenc_text(&b, "Paris\tcentre", 12));
    assert_true(buf_putc(&b, '\t'));
    assert_true(copyenc_text(&b, NULL, 0));
    assert_true(buf_putc(&b, '\t'));
    assert_true(copyenc_double(&b, 0.5));
    assert_true(buf_putc(&b, '\n'));
    assert_string_equal(b.data, "90\tParis\\tcentre\t\\N\t0.5\n");
    buf_free(&b);
}

static void test_cap_failure_leaves_content(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 10);
    assert_true(buf_puts(&b, "row:"));
    /* Fits raw (6 bytes) but not escaped (8): refused as a whole, not cut mid-field. */
    assert_false(copyenc_text(&b, "a\tb\tcd", 6));
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "row:");
    /* Fails on the last run after the escapes went in: still rolled back. */
    assert_false(copyenc_text(&b, "\\\\\\x", 4));
    assert_string_equal(b.data, "row:");
    assert_false(copyenc_text(&b, "1234567", 7));
    assert_string_equal(b.data, "row:");
    /* Exactly reaching the cap is fine. */
    assert_true(copyenc_text(&b, "a\tbc", 4));
    assert_string_equal(b.data, "row:a\\tbc");
    assert_false(copyenc_text(&b, NULL, 0)); /* \N needs 2 bytes, 1 left */
    assert_string_equal(b.data, "row:a\\tbc");
    buf_free(&b);
}

static void test_nul_refused(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 100);
    assert_true(buf_puts(&b, "x"));
    assert_false(copyenc_text(&b, "ab\0cd", 5));
    assert_false(copyenc_text(&b, "\t\0", 2));
    assert_int_equal(b.len, 1);
    assert_string_equal(b.data, "x");
    buf_free(&b);
}

static void check_double(double v)
{
    Buf b;
    buf_init(&b, 100);
    assert_true(copyenc_double(&b, v));
    assert_null(strchr(b.data, ','));
    char *end;
    double back = strtod(b.data, &end);
    assert_ptr_equal(end, b.data + b.len); /* the whole field is the number */
    if (memcmp(&back, &v, sizeof v) != 0) {
        print_error("%s does not read back as %a\n", b.data, v);
        fail();
    }
    buf_free(&b);
}

static void test_double_round_trips(void **state)
{
    (void)state;
    const double values[] = {
        0.0,     -0.0,     0.1,  -0.1,        1.0 / 3,      48.8566,
        2.3522,  -90,      180,  -179.999999, 1e21,         1e-7,
        DBL_MAX, -DBL_MAX, M_PI, DBL_MIN,     DBL_TRUE_MIN, 123456789012345678.0};
    for (size_t i = 0; i < ARRAY_LEN(values); i++)
        check_double(values[i]);
    /* And a spread of random bit patterns. */
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof v);
        if (isfinite(v))
            check_double(v);
    }
}

static void test_double_exact_text(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 100);
    assert_true(copyenc_double(&b, 0.5));
    assert_true(buf_putc(&b, ' '));
    assert_true(copyenc_double(&b, -2));
    assert_true(buf_putc(&b, ' '));
    assert_true(copyenc_double(&b, 1e22));
    assert_true(buf_putc(&b, ' '));
    assert_true(copyenc_double(&b, -0.0));
    assert_string_equal(b.data, "0.5 -2 1e+22 -0");
    buf_reset(&b);
    const double more[] = {48.8566, -179.999999, 1e-7, 0.1 + 0.2, 90, 0.005, 1e15 + 0.5};
    for (size_t i = 0; i < ARRAY_LEN(more); i++)
        assert_true(copyenc_double(&b, more[i]) && buf_putc(&b, ' '));
    assert_string_equal(b.data, "48.8566 -179.999999 0.0000001 0.30000000000000004 90 0.005 "
                                "1000000000000000.5 ");
    buf_free(&b);
}

/* Coordinates as providers send them (up to 10 decimals): each reads back exactly, and
 * as the decimal it was written from, not as a 17-digit expansion. */
static void test_double_coordinates(void **state)
{
    (void)state;
    uint64_t x = 0x2545F4914F6CDD1Du;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int decimals = (int)(x % 11);
        long long scaled = (long long)((x >> 8) % 3600000000001ull) - 1800000000000ll;
        char text[40];
        snprintf(text, sizeof text, "%.*f", decimals, (double)scaled / 1e10);
        double v = strtod(text, NULL);
        check_double(v);
        Buf b;
        buf_init(&b, 100);
        assert_true(copyenc_double(&b, v));
        assert_true(b.len <= strlen(text));
        buf_free(&b);
    }
}

static void test_double_non_finite_refused(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 100);
    assert_true(buf_puts(&b, "k"));
    assert_false(copyenc_double(&b, NAN));
    assert_false(copyenc_double(&b, INFINITY));
    assert_false(copyenc_double(&b, -INFINITY));
    assert_string_equal(b.data, "k");
    buf_free(&b);
}

static void test_double_cap(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 5);
    assert_false(copyenc_double(&b, 48.8566));
    assert_int_equal(b.len, 0);
    assert_true(copyenc_double(&b, 0.125));
    assert_string_equal(b.data, "0.125");
    buf_free(&b);
}

static void test_double_under_comma_locale(void **state)
{
    (void)state;
    /* pgenrich never calls setlocale, but if a comma locale is installed here, show that
     * the output still uses '.'. */
    static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8",
                                        "nl_NL.UTF-8"};
    const char *got = NULL;
    for (size_t i = 0; i < ARRAY_LEN(names) && got == NULL; i++)
        got = setlocale(LC_NUMERIC, names[i]);
    if (got == NULL)
        skip(); /* no such locale on this machine */
    Buf b;
    buf_init(&b, 100);
    bool ok = copyenc_double(&b, 0.25);
    setlocale(LC_NUMERIC, "C");
    assert_true(ok);
    assert_string_equal(b.data, "0.25");
    buf_free(&b);
}

static void test_int(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 100);
    assert_true(copyenc_int(&b, 0));
    assert_true(buf_putc(&b, ' '));
    assert_true(copyenc_int(&b, -1));
    assert_true(buf_putc(&b, ' '));
    assert_true(copyenc_int(&b, LLONG_MAX));
    assert_true(buf_putc(&b, ' '));
    assert_true(copyenc_int(&b, LLONG_MIN));
    assert_string_equal(b.data, "0 -1 9223372036854775807 -9223372036854775808");
    buf_free(&b);
}

static void test_int_cap(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 4);
    assert_true(buf_puts(&b, "x"));
    assert_false(copyenc_int(&b, 1000));
    assert_string_equal(b.data, "x");
    assert_true(copyenc_int(&b, -99));
    assert_string_equal(b.data, "x-99");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_marker),
        cmocka_unit_test(test_empty_is_not_null),
        cmocka_unit_test(test_plain_passes),
        cmocka_unit_test(test_every_escape),
        cmocka_unit_test(test_other_bytes_pass),
        cmocka_unit_test(test_backslash_n_text_is_not_null),
        cmocka_unit_test(test_long_value_round_trips),
        cmocka_unit_test(test_appends_after_existing_content),
        cmocka_unit_test(test_cap_failure_leaves_content),
        cmocka_unit_test(test_nul_refused),
        cmocka_unit_test(test_double_round_trips),
        cmocka_unit_test(test_double_exact_text),
        cmocka_unit_test(test_double_coordinates),
        cmocka_unit_test(test_double_non_finite_refused),
        cmocka_unit_test(test_double_cap),
        cmocka_unit_test(test_double_under_comma_locale),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_int_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
