/* Unit tests for breaker, on a fake clock: opening at the threshold with enough outcomes,
 * the sliding window, cool-down and the single probe, doubling cool-downs, stale answers,
 * lost probes, breaker_wait, settings out of range and a clock that steps back; the run of
 * unreachable failures that opens it at once, what ends the run and what does not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>

#include "unit.h"

#include "breaker.h"

/* The scheduler's settings: 10 s window, 20 outcomes, half, 1 s doubling up to 60 s. */
static void init_default(Breaker *b, double now)
{
    breaker_init(b, 10, 20, 0.5, 1, 60, now);
}

/* n outcomes of requests sent and answered at `t`. */
static void record_n(Breaker *b, int n, bool ok, double t)
{
    for (int i = 0; i < n; i++)
        breaker_record(b, ok, t, t);
}

/* Open a default breaker at time t with 20 failures. */
static void open_at(Breaker *b, double t)
{
    record_n(b, 20, false, t);
    assert_int_equal(breaker_state(b), BR_OPEN);
}

static void test_closed_at_start(void **state)
{
    (void)state;
    Breaker b;
    init_default(&b, 0);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    assert_true(breaker_allow(&b, 0));
    assert_true(breaker_allow(&b, 0));
    assert_near(breaker_wait(&b, 0), 0, 0);
}

static void test_needs_min_requests(void **state)
{
    (void)state;
    Breaker b;
    init_default(&b, 0);
    /* 19 failures out of 19: every one failed, but too few to judge. */
    record_n(&b, 19, false, 1);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    assert_true(breaker_allow(&b, 1));
    /* The 20th opens it. */
    breaker_record(&b, false, 1, 1);
    assert_int_equal(breaker_state(&b), BR_OPEN);
    assert_false(breaker_allow(&b, 1));
}

static void test_threshold(void **state)
{
    (void)state;
    Breaker b;
    /* Below the share: 11 ok, 9 failed (45%) stays closed, as does a 10th failure
     * (10 of 21, 47.6%). */
    init_default(&b, 0);
    record_n(&b, 11, true, 1);
    record_n(&b, 9, false, 1);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    breaker_record(&b, false, 1, 1);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    /* At the share exactly: 10 of 20. */
    init_default(&b, 0);
    record_n(&b, 10, true, 1);
    record_n(&b, 9, false, 1);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    breaker_record(&b, false, 1, 1);
    assert_int_equal(breaker_state(&b), BR_OPEN);
    /* A share that floating point cannot hold exactly: 3 of 10 meets 0.3. */
    breaker_init(&b, 10, 10, 0.3, 1, 60, 0);
    record_n(&b, 7, true, 1);
    record_n(&b, 2, false, 1);
    breaker_record(&b, false, 1, 1);
    assert_int_equal(breaker_state(&b), BR_OPEN);
    /* Successes never open it, however many. */
    init_default(&b, 0);
    record_n(&b, 1000, true, 1);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
}

static void test_window_ages_out(void **state)
{
    (void)state;
    Breaker b;
    /* 15 failures at t = 0.5 (bucket [0, 1)) still count at 9.9, no longer at 10. */
    init_default(&b, 0);
    record_n(&b, 15, false, 0.5);
    record_n(&b, 5, false, 9.9);
    assert_int_equal(breaker_state(&b), BR_OPEN);
    init_default(&b, 0);
    record_n(&b, 15, false, 0.5);
    record_n(&b, 5, false, 10.0);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    /* Good answers age out too: 100 ok at t = 0.5 hide 20 failures at t = 5, but once
     * they have left the window one more failure opens it. */
    init_default(&b, 0);
    record_n(&b, 100, true, 0.5);
    record_n(&b, 20, false, 5);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    breaker_record(&b, false, 10.5, 10.5);
    assert_int_equal(breaker_state(&b), BR_OPEN);
    /* A long quiet stretch forgets everything. */
    init_default(&b, 0);
    record_n(&b, 19, false, 0.5);
    breaker_record(&b, false, 1000, 1000);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
}

static void test_cooldown_then_one_probe(void **state)
{
    (void)state;
    Breaker b;
    init_default(&b, 0);
    open_at(&b, 5);
    assert_false(breaker_allow(&b, 5));
    assert_false(breaker_allow(&b, 5.999));
    assert_int_equal(breaker_state(&b), BR_OPEN);
    /* After the 1 s cool-down: exactly one yes. */
    assert_true(breaker_allow(&b, 6));
    assert_int_equal(breaker_state(&b), BR_HALF_OPEN);
    assert_false(breaker_allow(&b, 6));
    assert_false(breaker_allow(&b, 7));
    assert_false(breaker_allow(&b, 30));
}

static void test_probe_success_closes_and_resets(void **state)
{
    (void)state;
    Breaker b;
    init_default(&b, 0);
    record_n(&b, 5, true, 4);
    open_at(&b, 5);
    assert_true(breaker_allow(&b, 6));
    breaker_record(&b, true, 6, 6.2);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    assert_true(breaker_allow(&b, 6.2));
    assert_near(breaker_wait(&b, 6.2), 0, 0);
    /* The history went with it: 19 new failures are below min_requests again, though
     * the 20 old ones would still be in the window. */
    record_n(&b, 19, false, 6.3);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    breaker_record(&b, false, 6.3, 6.3);
    assert_int_equal(breaker_state(&b), BR_OPEN);
    /* And the cool-down is the first one again. */
    assert_near(breaker_wait(&b, 6.3), 1, 1e-12);
}

static void test_probe_failure_doubles_cooldown(void **state)
{
    (void)state;
    Breaker b;
    breaker_init(&b, 10, 20, 0.5, 1, 5, 0);
    open_at(&b, 0);
    double t = 0;
    static const double expect[] = {2, 4, 5, 5}; /* doubled, capped at cooldown_max */
    assert_near(breaker_wait(&b, t), 1, 1e-12);
    t += 1;
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        assert_true(breaker_allow(&b, t));
        breaker_record(&b, false, t, t + 0.5); /* the probe fails half a second later */
        t += 0.5;
        assert_int_equal(breaker_state(&b), BR_OPEN);
        assert_near(breaker_wait(&b, t), expect[i], 1e-12);
        assert_false(breaker_allow(&b, t + expect[i] - 0.01));
        t += expect[i];
    }
    /* A successful probe closes it and the next opening starts from 1 s again. */
    assert_true(breaker_allow(&b, t));
    breaker_record(&b, true, t, t);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    open_at(&b, t);
    assert_near(breaker_wait(&b, t), 1, 1e-12);
}

static void test_stale_outcomes_ignored(void **state)
{
    (void)state;
    Breaker b;
    init_default(&b, 0);
    open_at(&b, 5);
    /* While open: late answers to requests sent before it opened change nothing. */
    record_n(&b, 50, true, 4.9);
    breaker_record(&b, true, 5, 5.5);
    assert_int_equal(breaker_state(&b), BR_OPEN);
    assert_false(breaker_allow(&b, 5.5));
    /* Half-open: a late success or failure is not the probe's outcome. */
    assert_true(breaker_allow(&b, 6));
    breaker_record(&b, true, 4.95, 6.1);
    breaker_record(&b, false, 5, 6.2);
    assert_int_equal(breaker_state(&b), BR_HALF_OPEN);
    /* The probe's own outcome decides. */
    breaker_record(&b, true, 6, 6.3);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    /* Closed again: more late failures from before the probe do not count. */
    for (int i = 0; i < 30; i++)
        breaker_record(&b, false, 5.8, 6.5);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    /* Requests sent from the probe on do. */
    record_n(&b, 20, false, 6);
    assert_int_equal(breaker_state(&b), BR_OPEN);
}

static void test_lost_probe(void **state)
{
    (void)state;
    Breaker b;
    breaker_init(&b, 10, 20, 0.5, 1, 30, 0);
    open_at(&b, 0);
    assert_true(breaker_allow(&b, 1));
    /* No outcome: until cooldown_max after it went, nothing else goes... */
    assert_near(breaker_wait(&b, 1), 30, 1e-12);
    assert_near(breaker_wait(&b, 21), 10, 1e-12);
    assert_false(breaker_allow(&b, 30.9));
    /* ...then it counts as lost and another probe goes. */
    assert_near(breaker_wait(&b, 31), 0, 0);
    assert_true(breaker_allow(&b, 31));
    assert_false(breaker_allow(&b, 31));
    /* The first probe's answer, arriving now, is not the second's. */
    breaker_record(&b, true, 1, 32);
    assert_int_equal(breaker_state(&b), BR_HALF_OPEN);
    breaker_record(&b, false, 31, 32);
    assert_int_equal(breaker_state(&b), BR_OPEN);
    assert_near(breaker_wait(&b, 32), 2, 1e-12);
}

static void test_wait_values(void **state)
{
    (void)state;
    Breaker b;
    init_default(&b, 0);
    assert_near(breaker_wait(&b, 0), 0, 0);
    open_at(&b, 10);
    assert_near(breaker_wait(&b, 10), 1, 1e-12);
    assert_near(breaker_wait(&b, 10.25), 0.75, 1e-12);
    assert_near(breaker_wait(&b, 11), 0, 0);
    assert_near(breaker_wait(&b, 50), 0, 0); /* never negative */
    assert_true(breaker_allow(&b, 50));
    assert_near(breaker_wait(&b, 50), 60, 1e-12); /* half-open: until the probe is lost */

    /* On an epoch clock, allow at now + wait says yes: no spinning on rounding. */
    const double t0 = 1.7e9 + 0.1;
    init_default(&b, t0);
    open_at(&b, t0);
    double t = t0 + 0.3;
    double w = breaker_wait(&b, t);
    assert_near(w, 0.7, 1e-6);
    assert_false(breaker_allow(&b, t));
    t += w;
    assert_near(breaker_wait(&b, t), 0, 0);
    assert_true(breaker_allow(&b, t));
}

static void test_settings_out_of_range(void **state)
{
    (void)state;
    Breaker b;
    breaker_init(&b, -1, 0, NAN, 0, -5, 0);
    assert_near(b.window, 10, 0);
    assert_int_equal(b.min_requests, 1);
    assert_near(b.threshold, 1, 0);
    assert_true(b.cooldown > 0);
    assert_true(b.cooldown_max >= b.cooldown);
    /* min_requests 1 and threshold 1: a single failure, alone, opens it... */
    breaker_record(&b, false, 0, 0);
    assert_int_equal(breaker_state(&b), BR_OPEN);
    /* ...but not when a success is in the window. */
    breaker_init(&b, NAN, 1, 2.0, 1, 60, 0);
    assert_near(b.window, 10, 0);
    assert_near(b.threshold, 1, 0);
    breaker_record(&b, true, 0, 0);
    breaker_record(&b, false, 0, 0);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
}

static void test_clock_backwards(void **state)
{
    (void)state;
    Breaker b;
    init_default(&b, 100);
    open_at(&b, 100);
    /* The clock steps back an hour: the pause is at most one cool-down from there. */
    double t = 100 - 3600;
    assert_near(breaker_wait(&b, t), 1, 1e-9);
    assert_false(breaker_allow(&b, t));
    assert_near(breaker_wait(&b, t + 0.5), 0.5, 1e-9);
    assert_true(breaker_allow(&b, t + 1));
    /* The probe's outcome still counts, and so do later ones. */
    breaker_record(&b, true, t + 1, t + 1.1);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    record_n(&b, 20, false, t + 2);
    assert_int_equal(breaker_state(&b), BR_OPEN);
}

/* n requests sent at `t` that never reached the provider, recorded at `t`. */
static void unreachable_n(Breaker *b, int n, double t)
{
    for (int i = 0; i < n; i++)
        breaker_record_outcome(b, BO_UNREACHABLE, t, t);
}

static void test_unreachable_run_opens_at_once(void **state)
{
    (void)state;
    Breaker b;
    init_default(&b, 0);
    assert_int_equal(b.unreachable_run, BREAKER_UNREACHABLE_RUN);
    assert_int_equal(BREAKER_UNREACHABLE_RUN, 5);
    /* A healthy provider: the window is full of answers, whose share keeps it closed... */
    record_n(&b, 200, true, 1);
    /* ...but five requests in a row that never reach it open it at once. */
    unreachable_n(&b, 4, 2);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    assert_int_equal(breaker_unreachable_run(&b), 4);
    breaker_record_outcome(&b, BO_UNREACHABLE, 2, 2);
    assert_int_equal(breaker_state(&b), BR_OPEN);
    assert_false(breaker_allow(&b, 2));
    assert_near(breaker_wait(&b, 2), 1, 1e-12);
    /* Opened, the run is over: the probe decides as usual. */
    assert_int_equal(breaker_unreachable_run(&b), 0);
    assert_true(breaker_allow(&b, 3));
    breaker_record_outcome(&b, BO_UNREACHABLE, 3, 3);
    assert_int_equal(breaker_state(&b), BR_OPEN);
    assert_near(breaker_wait(&b, 3), 2, 1e-12); /* doubled */
    assert_true(breaker_allow(&b, 5));
    breaker_record_outcome(&b, BO_OK, 5, 5.1);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    assert_int_equal(breaker_unreachable_run(&b), 0);
    /* Closed by the probe: a new run needs five again. */
    unreachable_n(&b, 4, 6);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    unreachable_n(&b, 1, 6);
    assert_int_equal(breaker_state(&b), BR_OPEN);
}

static void test_unreachable_run_ended_by_an_answer(void **state)
{
    (void)state;
    Breaker b;
    /* Any answer to a request sent after the run began ends it: a success... */
    init_default(&b, 0);
    record_n(&b, 200, true, 1);
    unreachable_n(&b, 4, 2);
    breaker_record_outcome(&b, BO_OK, 2.5, 2.6);
    assert_int_equal(breaker_unreachable_run(&b), 0);
    unreachable_n(&b, 4, 3);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    unreachable_n(&b, 1, 3);
    assert_int_equal(breaker_state(&b), BR_OPEN);
    /* ...and an error answer (a 5xx: the provider is reachable, the window judges it). */
    init_default(&b, 0);
    record_n(&b, 200, true, 1);
    unreachable_n(&b, 4, 2);
    breaker_record_outcome(&b, BO_ERROR, 2, 2.1); /* sent with the run's first: after it */
    assert_int_equal(breaker_unreachable_run(&b), 0);
    unreachable_n(&b, 4, 3);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    /* Alternating, the run never reaches five. */
    init_default(&b, 0);
    record_n(&b, 200, true, 1);
    for (int i = 0; i < 20; i++) {
        unreachable_n(&b, 4, 2 + i * 0.1);
        breaker_record_outcome(&b, BO_OK, 2 + i * 0.1, 2 + i * 0.1);
    }
    assert_int_equal(breaker_state(&b), BR_CLOSED);
}

static void test_unreachable_run_not_ended_by_inflight_answers(void **state)
{
    (void)state;
    Breaker b;
    init_default(&b, 0);
    record_n(&b, 200, true, 1);
    /* The run starts with a request sent at 2; answers to requests sent before that were
     * in flight before the outage and do not end it, successes or errors. */
    breaker_record_outcome(&b, BO_UNREACHABLE, 2, 2);
    breaker_record_outcome(&b, BO_UNREACHABLE, 2.1, 2.1);
    for (int i = 0; i < 10; i++) {
        breaker_record_outcome(&b, BO_OK, 1.99, 2.2);
        breaker_record_outcome(&b, BO_ERROR, 1.5, 2.2);
    }
    assert_int_equal(breaker_unreachable_run(&b), 2);
    /* Nor do requests that reached it but got no answer (a reset, a read timeout). */
    breaker_record_outcome(&b, BO_LOST, 2.2, 2.3);
    breaker_record(&b, false, 2.2, 2.3); /* the same, in the older call */
    assert_int_equal(breaker_unreachable_run(&b), 2);
    unreachable_n(&b, 2, 2.4);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    unreachable_n(&b, 1, 2.5);
    assert_int_equal(breaker_state(&b), BR_OPEN);
}

static void test_unreachable_counts_in_the_window(void **state)
{
    (void)state;
    Breaker b;
    /* The window rule is unchanged, and unreachable failures are failures in it. */
    init_default(&b, 0);
    breaker_set_unreachable_run(&b, 0); /* the run rule off */
    record_n(&b, 20, true, 1);
    unreachable_n(&b, 19, 1);
    assert_int_equal(breaker_state(&b), BR_CLOSED); /* 19 of 39 */
    unreachable_n(&b, 1, 1);
    assert_int_equal(breaker_state(&b), BR_OPEN); /* 20 of 40 */
    /* An error answer and a lost request are failures in the window as before. */
    init_default(&b, 0);
    for (int i = 0; i < 10; i++) {
        breaker_record_outcome(&b, BO_ERROR, 1, 1);
        breaker_record_outcome(&b, BO_LOST, 1, 1);
    }
    assert_int_equal(breaker_state(&b), BR_OPEN);
    /* A run of 1 (the setting brought into range): each unreachable failure opens it. */
    init_default(&b, 0);
    breaker_set_unreachable_run(&b, -3);
    assert_int_equal(b.unreachable_run, 0);
    breaker_set_unreachable_run(&b, 1);
    record_n(&b, 50, true, 1);
    unreachable_n(&b, 1, 2);
    assert_int_equal(breaker_state(&b), BR_OPEN);
}

static void test_unreachable_stale_and_open(void **state)
{
    (void)state;
    Breaker b;
    init_default(&b, 0);
    open_at(&b, 5);
    /* Open: unreachable failures of requests from before change nothing. */
    unreachable_n(&b, 10, 5);
    assert_int_equal(breaker_unreachable_run(&b), 0);
    assert_near(breaker_wait(&b, 5), 1, 1e-12);
    assert_true(breaker_allow(&b, 6));
    breaker_record_outcome(&b, BO_OK, 6, 6.1);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    /* Closed by the probe sent at 6: failures of requests sent before it are stale. */
    for (int i = 0; i < 10; i++)
        breaker_record_outcome(&b, BO_UNREACHABLE, 5.9, 6.2);
    assert_int_equal(breaker_state(&b), BR_CLOSED);
    assert_int_equal(breaker_unreachable_run(&b), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_closed_at_start),
        cmocka_unit_test(test_needs_min_requests),
        cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_window_ages_out),
        cmocka_unit_test(test_cooldown_then_one_probe),
        cmocka_unit_test(test_probe_success_closes_and_resets),
        cmocka_unit_test(test_probe_failure_doubles_cooldown),
        cmocka_unit_test(test_stale_outcomes_ignored),
        cmocka_unit_test(test_lost_probe),
        cmocka_unit_test(test_wait_values),
        cmocka_unit_test(test_settings_out_of_range),
        cmocka_unit_test(test_clock_backwards),
        cmocka_unit_test(test_unreachable_run_opens_at_once),
        cmocka_unit_test(test_unreachable_run_ended_by_an_answer),
        cmocka_unit_test(test_unreachable_run_not_ended_by_inflight_answers),
        cmocka_unit_test(test_unreachable_counts_in_the_window),
        cmocka_unit_test(test_unreachable_stale_and_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
