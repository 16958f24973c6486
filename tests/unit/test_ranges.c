/* Unit tests for ranges: quantile cuts over sorted samples (even shares, a sample smaller
 * than the ranges asked for, repeated keys, a single key, none), and the owner id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "unit.h"

#include "ranges.h"

static void test_even_quantiles(void **state)
{
    (void)state;
    /* 101 histogram bounds 0, 10, ..., 1000 into 4 ranges: cuts at 250, 500, 750. */
    char keys[101][8];
    const char *sorted[101], *out[3];
    for (int i = 0; i < 101; i++) {
        snprintf(keys[i], sizeof keys[i], "%d", i * 10);
        sorted[i] = keys[i];
    }
    assert_int_equal(ranges_bounds(sorted, 101, 4, out), 3);
    assert_string_equal(out[0], "250");
    assert_string_equal(out[1], "500");
    assert_string_equal(out[2], "750");
}

static void test_more_ranges_than_keys(void **state)
{
    (void)state;
    /* 3 keys, 8 ranges asked: each key is a cut once, in order; 4 ranges in all. */
    const char *sorted[] = {"apple", "mango", "pear"};
    const char *out[7];
    size_t m = ranges_bounds(sorted, 3, 8, out);
    assert_int_equal(m, 3);
    assert_string_equal(out[0], "apple");
    assert_string_equal(out[1], "mango");
    assert_string_equal(out[2], "pear");
}

static void test_repeated_keys(void **state)
{
    (void)state;
    /* A skewed sample: most keys are "b"; the cut at "b" comes once. */
    const char *sorted[] = {"a", "b", "b", "b", "b", "b", "b", "c"};
    const char *out[3];
    size_t m = ranges_bounds(sorted, 8, 4, out);
    assert_int_equal(m, 1);
    assert_string_equal(out[0], "b");
    /* Strictly increasing cuts whatever the sample. */
    const char *mixed[] = {"a", "a", "b", "c", "c", "d", "e", "e", "e", "f"};
    const char *cuts[9];
    m = ranges_bounds(mixed, 10, 10, cuts);
    assert_true(m >= 1 && m <= 6);
    for (size_t i = 1; i < m; i++)
        assert_true(strcmp(cuts[i - 1], cuts[i]) < 0);
}

static void test_degenerate(void **state)
{
    (void)state;
    const char *one[] = {"42"};
    const char *out[63];
    assert_int_equal(ranges_bounds(one, 0, 64, out), 0); /* empty table: one range */
    assert_int_equal(ranges_bounds(one, 1, 1, out), 0);  /* one range asked */
    assert_int_equal(ranges_bounds(one, 1, 64, out), 1); /* one key: two ranges */
    assert_string_equal(out[0], "42");
}

static void test_large_counts(void **state)
{
    (void)state;
    /* n * k beyond 32 bits: the index stays in bounds and increasing. */
    static char keys[70000][8];
    static const char *sorted[70000];
    static const char *out[99999];
    for (int i = 0; i < 70000; i++) {
        snprintf(keys[i], sizeof keys[i], "%06d", i);
        sorted[i] = keys[i];
    }
    size_t m = ranges_bounds(sorted, 70000, 100000, out);
    assert_int_equal(m, 70000);
    assert_string_equal(out[m - 1], "069999");
}

static void test_owner_id(void **state)
{
    (void)state;
    char id[64];
    ranges_owner_id(id, sizeof id, "worker-1", 4242, 0xdeadbeefu);
    assert_string_equal(id, "worker-1:4242:deadbeef");
    ranges_owner_id(id, sizeof id, "", 7, 1);
    assert_string_equal(id, "localhost:7:00000001");
    char small[8];
    ranges_owner_id(small, sizeof small, "a-very-long-host-name", 1, 2);
    assert_int_equal(strlen(small), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_even_quantiles), cmocka_unit_test(test_more_ranges_than_keys),
        cmocka_unit_test(test_repeated_keys),  cmocka_unit_test(test_degenerate),
        cmocka_unit_test(test_large_counts),   cmocka_unit_test(test_owner_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
