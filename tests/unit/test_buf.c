/* Unit tests for buf: growth, the hard cap, NUL termination, printf, and that a failed
 * append leaves the content untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"

static void test_init_is_empty(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 100);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 100);
    buf_free(&b); /* freeing an untouched buffer is fine */
    assert_null(b.data);
}

static void test_append_and_terminate(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 1024);
    assert_true(buf_append(&b, "hello", 5));
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "hello");
    assert_true(buf_puts(&b, ", "));
    assert_true(buf_putc(&b, 'w'));
    assert_true(buf_append(&b, "orld!!!", 4)); /* only n bytes are taken */
    assert_int_equal(b.len, 12);
    assert_string_equal(b.data, "hello, world");
    assert_int_equal(b.data[b.len], '\0');
    buf_free(&b);
}

static void test_empty_append_gives_a_string(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 10);
    assert_true(buf_append(&b, NULL, 0));
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    assert_true(buf_puts(&b, ""));
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_binary_content(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 64);
    const char raw[] = {'a', '\0', 'b', '\0'};
    assert_true(buf_append(&b, raw, sizeof raw));
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, raw, 4);
    assert_int_equal(b.data[4], '\0');
    buf_free(&b);
}

static void test_geometric_growth(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, SIZE_MAX);
    size_t reallocs = 0, last_cap = 0;
    for (size_t i = 0; i < 100000; i++) {
        assert_true(buf_putc(&b, (char)('a' + i % 26)));
        if (b.cap != last_cap) {
            reallocs++;
            /* Each growth at least doubles. */
            assert_true(last_cap == 0 || b.cap >= 2 * last_cap);
            last_cap = b.cap;
        }
        assert_true(b.cap >= b.len + 1);
    }
    assert_true(reallocs <= 12); /* 64 * 2^11 > 100001 */
    assert_true(b.cap <= 2 * (b.len + 1));
    for (size_t i = 0; i < b.len; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);
    assert_int_equal(strlen(b.data), 100000);
    buf_free(&b);
}

static void test_cap_exact_fit_then_refuse(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 10);
    assert_true(buf_puts(&b, "0123456789")); /* len == max is allowed */
    assert_int_equal(b.len, 10);
    assert_true(b.cap <= b.max + 1); /* never allocates more than the cap can use */
    char *before = b.data;
    assert_false(buf_putc(&b, 'x'));
    assert_false(buf_puts(&b, "y"));
    assert_false(buf_printf(&b, "%d", 1));
    assert_true(buf_append(&b, "", 0)); /* nothing to add still fits */
    assert_ptr_equal(b.data, before);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    buf_free(&b);
}

static void test_cap_refusal_leaves_content(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 8);
    assert_true(buf_puts(&b, "abc"));
    assert_false(buf_puts(&b, "defghi")); /* 3 + 6 > 8 */
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    assert_true(buf_puts(&b, "defgh")); /* 3 + 5 == 8 */
    assert_string_equal(b.data, "abcdefgh");
    buf_free(&b);
}

static void test_zero_cap(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 0);
    assert_false(buf_putc(&b, 'a'));
    assert_null(b.data); /* a refused append allocates nothing */
    assert_true(buf_puts(&b, ""));
    assert_string_equal(b.data, "");
    buf_free(&b);
}

static void test_size_overflow_refused(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, SIZE_MAX);
    assert_true(buf_puts(&b, "abc"));
    static const char dummy[1] = {0}; /* never read: the size check fails first */
    /* len + n would wrap. */
    assert_false(buf_append(&b, dummy, SIZE_MAX));
    assert_false(buf_append(&b, dummy, SIZE_MAX - 1));
    /* len + n == SIZE_MAX fits under max but leaves no room for the NUL. */
    assert_false(buf_append(&b, dummy, SIZE_MAX - 3));
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    buf_free(&b);
}

static void test_printf(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 4096);
    assert_true(buf_printf(&b, "%s=%d", "n", 42));
    assert_true(buf_printf(&b, " %.2f %c", 1.5, 'z'));
    assert_string_equal(b.data, "n=42 1.50 z");
    assert_true(buf_printf(&b, "%s", "")); /* empty output is a success */
    assert_int_equal(b.len, strlen("n=42 1.50 z"));
    buf_free(&b);
}

static void test_printf_long_output(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 4096);
    assert_true(buf_puts(&b, "x"));
    /* Far longer than the first allocation: the two-pass path must grow first. */
    assert_true(buf_printf(&b, "%01000d|%s", 7, "end"));
    assert_int_equal(b.len, 1 + 1000 + 4);
    assert_int_equal(b.data[0], 'x');
    assert_int_equal(b.data[1], '0');
    assert_int_equal(b.data[1000], '7');
    assert_string_equal(b.data + 1001, "|end");
    buf_free(&b);
}

static void test_printf_over_cap(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 16);
    assert_true(buf_puts(&b, "keep"));
    assert_false(buf_printf(&b, "%020d", 1));
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");
    assert_true(buf_printf(&b, "%012d", 5)); /* exactly reaches the cap */
    assert_int_equal(b.len, 16);
    assert_string_equal(b.data, "keep000000000005");
    buf_free(&b);
}

static void test_truncate(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 64);
    buf_truncate(&b, 0); /* nothing allocated yet: harmless */
    assert_null(b.data);
    assert_true(buf_puts(&b, "abcdef"));
    buf_truncate(&b, 10); /* longer than the content: no change */
    assert_int_equal(b.len, 6);
    assert_string_equal(b.data, "abcdef");
    buf_truncate(&b, 2);
    assert_int_equal(b.len, 2);
    assert_string_equal(b.data, "ab");
    assert_true(buf_puts(&b, "xy"));
    assert_string_equal(b.data, "abxy");
    buf_free(&b);
}

static void test_reset_keeps_memory(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 1000);
    buf_reset(&b); /* on an empty buffer: no crash, nothing allocated */
    assert_null(b.data);
    assert_true(buf_puts(&b, "some text"));
    char *mem = b.data;
    size_t cap = b.cap;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, mem);
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "");
    assert_true(buf_puts(&b, "new"));
    assert_string_equal(b.data, "new");
    buf_free(&b);
}

static void test_free_then_reuse(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 100);
    assert_true(buf_puts(&b, "first"));
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    buf_init(&b, 3);
    assert_false(buf_puts(&b, "first"));
    assert_true(buf_puts(&b, "two"));
    assert_string_equal(b.data, "two");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_empty),
        cmocka_unit_test(test_append_and_terminate),
        cmocka_unit_test(test_empty_append_gives_a_string),
        cmocka_unit_test(test_binary_content),
        cmocka_unit_test(test_geometric_growth),
        cmocka_unit_test(test_cap_exact_fit_then_refuse),
        cmocka_unit_test(test_cap_refusal_leaves_content),
        cmocka_unit_test(test_zero_cap),
        cmocka_unit_test(test_size_overflow_refused),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_printf_long_output),
        cmocka_unit_test(test_printf_over_cap),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_reset_keeps_memory),
        cmocka_unit_test(test_free_then_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
