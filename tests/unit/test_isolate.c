/* Unit tests for isolate: against a simulated database that refuses any range holding a
 * poison line, every poison line is found, every other line commits exactly once, and the
 * number of flushes stays near 2k log2(n). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "isolate.h"

/* Run the search over n lines with the poison lines marked in `poison`; count how often
 * each line committed into `committed`. Returns the number of flushes. */
static size_t simulate(size_t n, const bool *poison, int *committed, Isolate *it)
{
    assert_true(iso_start(it, n));
    size_t lo, hi, flushes = 0;
    while (iso_next(it, &lo, &hi)) {
        assert_true(lo < hi);
        assert_true(hi <= n);
        flushes++;
        bool ok = true;
        for (size_t i = lo; i < hi; i++)
            ok = ok && !poison[i];
        if (ok)
            for (size_t i = lo; i < hi; i++)
                committed[i]++;
        iso_result(it, ok);
    }
    return flushes;
}

static void check_case(size_t n, const size_t *bad_lines, size_t k)
{
    bool *poison = calloc(n, sizeof *poison);
    int *committed = calloc(n, sizeof *committed);
    assert_non_null(poison);
    assert_non_null(committed);
    for (size_t i = 0; i < k; i++)
        poison[bad_lines[i]] = true;
    Isolate it;
    size_t flushes = simulate(n, poison, committed, &it);
    size_t count;
    const size_t *bad = iso_bad(&it, &count);
    size_t want = 0;
    for (size_t i = 0; i < n; i++)
        want += poison[i];
    assert_int_equal(count, want);
    for (size_t i = 0; i < count; i++) {
        assert_true(poison[bad[i]]);
        if (i > 0)
            assert_true(bad[i - 1] < bad[i]);
    }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(committed[i], poison[i] ? 0 : 1);
    /* at most about 2 flushes per level per poison line, plus the first split */
    size_t levels = 1;
    while (((size_t)1 << levels) < n)
        levels++;
    assert_true(flushes <= 2 * (want ? want : 1) * (levels + 1) + 2);
    iso_free(&it);
    free(poison);
    free(committed);
}

static void test_single_poison_everywhere(void **state)
{
    (void)state;
    for (size_t n = 1; n <= 40; n++)
        for (size_t b = 0; b < n; b++)
            check_case(n, &b, 1);
}

static void test_two_poison_all_pairs(void **state)
{
    (void)state;
    for (size_t n = 2; n <= 24; n++)
        for (size_t a = 0; a < n; a++)
            for (size_t b = a + 1; b < n; b++) {
                size_t two[2] = {a, b};
                check_case(n, two, 2);
            }
}

static void test_all_poison(void **state)
{
    (void)state;
    size_t lines[17];
    for (size_t i = 0; i < 17; i++)
        lines[i] = i;
    check_case(17, lines, 17);
}

/* The failure came from somewhere else (a conflict that is gone by now): nothing is
 * called poison and everything commits. */
static void test_no_poison(void **state)
{
    (void)state;
    check_case(1, NULL, 0);
    check_case(1000, NULL, 0);
}

static void test_large_sparse(void **state)
{
    (void)state;
    size_t lines[] = {0, 1, 4999, 5000, 9998, 9999, 1234, 7777};
    size_t sorted[8];
    memcpy(sorted, lines, sizeof lines);
    check_case(10000, sorted, 8);
    bool *poison = calloc(10000, sizeof *poison);
    int *committed = calloc(10000, sizeof *committed);
    poison[4242] = true;
    Isolate it;
    size_t flushes = simulate(10000, poison, committed, &it);
    assert_true(flushes <= 2 * 15);
    iso_free(&it);
    free(poison);
    free(committed);
}

static void test_misuse(void **state)
{
    (void)state;
    Isolate it;
    assert_false(iso_start(&it, 0));
    assert_true(iso_start(&it, 3));
    iso_result(&it, false); /* no range handed out: ignored */
    size_t lo, hi;
    assert_true(iso_next(&it, &lo, &hi));
    assert_int_equal(lo, 0);
    assert_int_equal(hi, 1);
    iso_free(&it);
    iso_free(&it); /* twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_poison_everywhere),
        cmocka_unit_test(test_two_poison_all_pairs),
        cmocka_unit_test(test_all_poison),
        cmocka_unit_test(test_no_poison),
        cmocka_unit_test(test_large_sparse),
        cmocka_unit_test(test_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
