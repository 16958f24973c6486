/* Unit tests for ratelimit, on a fake clock: exact waits, burst, sustained rate when
 * driven by rl_wait, rate changes, the unlimited mode and a clock that steps back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>

#include "ratelimit.h"

#define assert_near(a, b, eps)                                                                     \
    do {                                                                                           \
        double got_ = (a), want_ = (b);                                                            \
        if (!(fabs(got_ - want_) <= (eps))) {                                                      \
            print_error("%.17g is not within %g of %.17g\n", got_, (double)(eps), want_);          \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

static void test_full_bucket_at_start(void **state)
{
    (void)state;
    RateLimit rl;
    rl_init(&rl, 10, 5, 0);
    for (int i = 0; i < 5; i++) {
        assert_near(rl_wait(&rl, 0), 0, 0);
        assert_true(rl_take(&rl, 0));
    }
    assert_false(rl_take(&rl, 0));
    assert_near(rl_wait(&rl, 0), 0.1, 1e-12);
}

static void test_burst_below_one_is_one(void **state)
{
    (void)state;
    RateLimit rl;
    rl_init(&rl, 10, 0.2, 0);
    assert_near(rl.burst, 1, 0);
    assert_true(rl_take(&rl, 0));
    assert_false(rl_take(&rl, 0));
    rl_init(&rl, 10, NAN, 0);
    assert_near(rl.burst, 1, 0);
    assert_true(rl_take(&rl, 0));
    assert_false(rl_take(&rl, 0));
}

static void test_exact_wait(void **state)
{
    (void)state;
    RateLimit rl;
    rl_init(&rl, 10, 1, 100);
    assert_true(rl_take(&rl, 100));
    assert_near(rl_wait(&rl, 100), 0.1, 1e-12);
    assert_near(rl_wait(&rl, 100.04), 0.06, 1e-12);
    assert_false(rl_take(&rl, 100.05));
    assert_near(rl_wait(&rl, 100.05), 0.05, 1e-12); /* a failed take earns no penalty */
    assert_true(rl_take(&rl, 100.1));
    assert_false(rl_take(&rl, 100.1));
}

static void test_fractional_rate(void **state)
{
    (void)state;
    RateLimit rl;
    rl_init(&rl, 0.5, 1, 0);
    assert_true(rl_take(&rl, 0));
    assert_near(rl_wait(&rl, 0), 2, 1e-12);
    assert_false(rl_take(&rl, 1.9));
    assert_true(rl_take(&rl, 2));
}

/* Drive the limiter the way the event loop will: sleep exactly rl_wait, then take. */
static void drive(RateLimit *rl, double *t, int takes, int *steps)
{
    int done = 0;
    *steps = 0;
    while (done < takes) {
        assert_true(++*steps <= 3 * takes); /* no spinning on rounding crumbs */
        double w = rl_wait(rl, *t);
        if (w > 0) {
            *t += w;
            continue;
        }
        assert_true(rl_take(rl, *t));
        done++;
    }
}

static void test_sustained_rate_wait_driven(void **state)
{
    (void)state;
    RateLimit rl;
    double t = 0;
    int steps;
    rl_init(&rl, 100, 1, t);
    drive(&rl, &t, 1000, &steps);
    /* The first take is free (full bucket), the other 999 come 10 ms apart. */
    assert_near(t, 9.99, 1e-6);
    assert_int_equal(steps, 1999);
    assert_near(1000 / (t + 0.01), 100, 1e-3);
}

static void test_sustained_rate_epoch_clock(void **state)
{
    (void)state;
    /* A Unix-time clock has an ulp of ~2.4e-7 s: rounding must not stall or spin. */
    RateLimit rl;
    const double t0 = 1.7e9;
    double t = t0;
    int steps;
    rl_init(&rl, 100, 1, t);
    drive(&rl, &t, 1000, &steps);
    assert_near(t - t0, 9.99, 1e-4);
    rl_init(&rl, 1e5, 1, t0);
    t = t0;
    drive(&rl, &t, 1000, &steps);
    assert_near(t - t0, 999 / 1e5, 1e-4);
}

static void test_no_more_than_rate_over_time(void **state)
{
    (void)state;
    /* Polled every millisecond for 10 s, rate 50, burst 5: at most 5 + 50 * 10 takes. */
    RateLimit rl;
    rl_init(&rl, 50, 5, 0);
    int takes = 0;
    for (int ms = 0; ms <= 10000; ms++)
        while (rl_take(&rl, ms / 1000.0))
            takes++;
    assert_int_equal(takes, 5 + 500);
}

static void test_burst_refill_caps(void **state)
{
    (void)state;
    RateLimit rl;
    rl_init(&rl, 10, 5, 0);
    for (int i = 0; i < 5; i++)
        assert_true(rl_take(&rl, 0));
    assert_false(rl_take(&rl, 0));
    /* Idle for 100 s: the bucket holds burst, not 1000. */
    int n = 0;
    while (rl_take(&rl, 100))
        n++;
    assert_int_equal(n, 5);
    /* Partial refill: 0.25 s at 10/s is 2.5 tokens, so 2 takes. */
    n = 0;
    while (rl_take(&rl, 100.25))
        n++;
    assert_int_equal(n, 2);
    assert_near(rl_wait(&rl, 100.25), 0.05, 1e-9);
}

static void test_unlimited(void **state)
{
    (void)state;
    RateLimit rl;
    rl_init(&rl, 0, 1, 0);
    for (int i = 0; i < 100000; i++)
        assert_true(rl_take(&rl, 0));
    assert_near(rl_wait(&rl, 0), 0, 0);
    rl_init(&rl, -3, 1, 0);
    assert_true(rl_take(&rl, 0));
    assert_true(rl_take(&rl, -50)); /* any clock */
    assert_near(rl_wait(&rl, 0), 0, 0);
}

static void test_set_rate_midway(void **state)
{
    (void)state;
    RateLimit rl;
    double t = 0;
    int steps;
    rl_init(&rl, 100, 1, t);
    drive(&rl, &t, 100, &steps);
    assert_near(t, 0.99, 1e-9);
    /* Slow down (as after a 429): the next 10 takes need about 1 s, not 0.1 s. */
    rl_set_rate(&rl, 10, t);
    double t1 = t;
    drive(&rl, &t, 10, &steps);
    assert_near(t - t1, 1.0, 1e-9);
    /* Speed up again. */
    rl_set_rate(&rl, 1000, t);
    t1 = t;
    drive(&rl, &t, 1000, &steps);
    assert_near(t - t1, 1.0, 1e-9);
}

static void test_set_rate_keeps_earned_tokens(void **state)
{
    (void)state;
    RateLimit rl;
    rl_init(&rl, 1, 10, 0);
    for (int i = 0; i < 10; i++)
        assert_true(rl_take(&rl, 0));
    /* 5 s at 1/s earned 5 tokens; the faster rate applies only from now on. */
    rl_set_rate(&rl, 100, 5);
    int n = 0;
    while (rl_take(&rl, 5))
        n++;
    assert_int_equal(n, 5);
    assert_near(rl_wait(&rl, 5), 0.01, 1e-12);
}

static void test_set_rate_unlimited_and_back(void **state)
{
    (void)state;
    RateLimit rl;
    rl_init(&rl, 10, 2, 0);
    assert_true(rl_take(&rl, 0));
    assert_true(rl_take(&rl, 0));
    assert_false(rl_take(&rl, 0));
    rl_set_rate(&rl, 0, 0);
    for (int i = 0; i < 1000; i++)
        assert_true(rl_take(&rl, 0));
    /* Back to limited at t=10: no time is credited for the unlimited stretch. */
    rl_set_rate(&rl, 10, 10);
    assert_false(rl_take(&rl, 10));
    assert_near(rl_wait(&rl, 10), 0.1, 1e-12);
    assert_true(rl_take(&rl, 10.1));
}

static void test_clock_backwards(void **state)
{
    (void)state;
    RateLimit rl;
    rl_init(&rl, 1, 2, 10);
    assert_true(rl_take(&rl, 10));
    assert_true(rl_take(&rl, 10));
    /* The clock steps back 1 s: nothing is earned, nothing breaks. */
    assert_false(rl_take(&rl, 9));
    assert_near(rl_wait(&rl, 9), 1, 1e-12);
    assert_false(rl_take(&rl, 9.5));
    /* From the step back on, time counts again: no stall until the old time + 1 s. */
    assert_true(rl_take(&rl, 10));
    assert_false(rl_take(&rl, 10));
    /* A far step back (a wall clock reset by an hour) costs at most one interval. */
    assert_false(rl_take(&rl, 10 - 3600));
    assert_true(rl_take(&rl, 11 - 3600));
    /* rl_wait with an earlier clock than the last refill stays finite and non-negative. */
    double w = rl_wait(&rl, -1e6);
    assert_true(w >= 0 && w <= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_bucket_at_start),
        cmocka_unit_test(test_burst_below_one_is_one),
        cmocka_unit_test(test_exact_wait),
        cmocka_unit_test(test_fractional_rate),
        cmocka_unit_test(test_sustained_rate_wait_driven),
        cmocka_unit_test(test_sustained_rate_epoch_clock),
        cmocka_unit_test(test_no_more_than_rate_over_time),
        cmocka_unit_test(test_burst_refill_caps),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_set_rate_midway),
        cmocka_unit_test(test_set_rate_keeps_earned_tokens),
        cmocka_unit_test(test_set_rate_unlimited_and_back),
        cmocka_unit_test(test_clock_backwards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
