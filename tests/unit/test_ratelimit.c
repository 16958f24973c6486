/* Unit tests for ratelimit, on a fake clock: exact waits, burst, sustained rate when
 * driven by rl_wait, rate changes, the unlimited mode and a clock that steps back; and the
 * adaptive rate, alone and in a simulated client against a rate-limiting server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "unit.h"

#include "ratelimit.h"

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

/* ---------------------------------------------------------------- adaptive rate */

static void test_aimd_init(void **state)
{
    (void)state;
    Aimd a;
    aimd_init(&a, 100, 5);
    assert_near(aimd_rate(&a), 100, 0);
    assert_near(aimd_on_success(&a, 6), 100, 0); /* at the ceiling: nowhere to climb */
    aimd_init(&a, 0, 5);
    assert_near(aimd_rate(&a), 0, 0);
    assert_near(aimd_on_success(&a, 6), 0, 0); /* no ceiling, never cut: no limit */
    aimd_init(&a, -1, 5);
    assert_near(aimd_rate(&a), 0, 0);
    aimd_init(&a, NAN, 5);
    assert_near(aimd_rate(&a), 0, 0);
}

/* n healthy answers spread evenly over [t0, t1). */
static double feed_ok(Aimd *a, int n, double t0, double t1)
{
    double r = aimd_rate(a);
    for (int i = 0; i < n; i++)
        r = aimd_on_success(a, t0 + (t1 - t0) * i / n);
    return r;
}

static void test_aimd_cut_from_limit(void **state)
{
    (void)state;
    /* 95/s accepted under a 100/s limit, then a 429: 0.8 * min(100, ~95)... */
    Aimd a;
    aimd_init(&a, 100, 0);
    feed_ok(&a, 190, 0.05, 2.05);
    double r = aimd_on_throttle(&a, 2.0, 2.05);
    assert_near(r, 76, 1); /* slots of 0.1 s: the measure is good to about a percent */
    assert_near(aimd_rate(&a), r, 0);
    assert_near(a.knee, r / 0.8, 1e-9);
    /* The same a little above 100/s: the limit is the smaller. */
    aimd_init(&a, 100, 0);
    feed_ok(&a, 220, 0.05, 2.05);
    assert_near(aimd_on_throttle(&a, 2.0, 2.05), 80, 1e-9);
}

static void test_aimd_cut_from_accepted(void **state)
{
    (void)state;
    /* The limit is 1000/s but the provider only took 50/s: cut from 50, not 1000. */
    Aimd a;
    aimd_init(&a, 1000, 0);
    feed_ok(&a, 100, 0.05, 2.05);
    assert_near(aimd_on_throttle(&a, 2.0, 2.05), 40, 1);
    assert_near(a.knee, 50, 1);
    /* No ceiling: the first 429 leaves the unlimited mode from the accepted rate. */
    aimd_init(&a, 0, 0);
    feed_ok(&a, 300, 0.05, 1.05);
    assert_near(aimd_on_throttle(&a, 1.05, 1.05), 240, 3);
}

static void test_aimd_first_answers(void **state)
{
    (void)state;
    /* A job's very first answer is a 429: with a limit, cut from the limit... */
    Aimd a;
    aimd_init(&a, 500, 0);
    assert_near(aimd_on_throttle(&a, 0, 0.05), 400, 1e-9);
    /* ...held while the history is short (fewer than AIMD_MIN_ANSWERS answers, or less
     * than AIMD_WARMUP seconds of them)... */
    for (int i = 0; i < AIMD_MIN_ANSWERS + 5; i++)
        assert_near(aimd_on_throttle(&a, 0.06, 0.07), 400, 1e-9);
    (void)aimd_on_success(&a, 0.65);
    /* ...and once it is long enough, the next 429 cuts from what the provider took: one
     * healthy answer over 0.15 s (a busy slot and 0.05 s of the newest one). */
    assert_near(aimd_on_throttle(&a, 0.6, 0.65), 0.8 / 0.15, 1e-6);
    /* Then the ordinary hold applies. */
    assert_near(aimd_on_throttle(&a, 0.65, 0.7), 0.8 / 0.15, 1e-6);

    /* Without a limit, no cut while fewer than AIMD_MIN_ANSWERS answers came back... */
    aimd_init(&a, 0, 0);
    for (int i = 0; i < AIMD_MIN_ANSWERS - 1; i++)
        assert_near(aimd_on_throttle(&a, 0, 0.05), 0, 0);
    /* ...then a provisional cut from the meter (nothing accepted, so all answers): 20
     * answers over its shortest span, one slot; the opening burst is not left to run... */
    double first_cut = 0.8 * AIMD_MIN_ANSWERS / AIMD_SLOT;
    assert_near(aimd_on_throttle(&a, 0, 0.05), first_cut, 1e-6);
    /* ...held until the warm-up has passed, then cut again from the longer measure: 22
     * answers over 0.16 s. */
    assert_true(AIMD_WARMUP <= 0.1);
    assert_near(aimd_on_throttle(&a, 0.1, 0.05 + AIMD_WARMUP - 0.01), first_cut, 1e-6);
    assert_near(aimd_on_throttle(&a, 0.1, 0.16), 0.8 * 22 / 0.16, 1e-6);
}

static void test_aimd_cut_quiet_time_not_counted(void **state)
{
    (void)state;
    /* 100/s for 0.5 s, a 5 s pause (Retry-After), then 100/s again for 0.3 s: the quiet
     * slots are left out, so the rate is not taken for 30 answers in a whole second. */
    Aimd a;
    aimd_init(&a, 1000, 0);
    feed_ok(&a, 50, 0.05, 0.55);
    double r1 = aimd_on_throttle(&a, 0.55, 0.55);
    assert_true(r1 >= 70 && r1 <= 80);
    feed_ok(&a, 30, 5.55, 5.85);
    double r = aimd_on_throttle(&a, 5.85, 5.85);
    /* From the limit (r1, plus the climb: AIMD_STEP_MAX for the pause, 0.29 s after it),
     * since the ~100/s accepted is above it. Had the pause counted, 30 answers in a second
     * would have cut to 24. */
    assert_near(r, 0.8 * (r1 + (AIMD_STEP_MAX + 0.29) * AIMD_CLIMB * (r1 / 0.8)), 1e-6);
}

static void test_aimd_cut_all_refused(void **state)
{
    (void)state;
    /* Everything refused: back off gradually from what was answered, not to the floor. */
    Aimd a;
    aimd_init(&a, 0, 0);
    double r = 0;
    for (int i = 0; i < 60; i++)
        r = aimd_on_throttle(&a, (i + 0.5) / 100, (i + 0.5) / 100);
    assert_true(r > 70 && r < 90); /* 100 answers/s seen, give or take a slot's rounding */
    double r1 = r;
    for (int i = AIMD_MIN_ANSWERS; i < 200; i++)
        r = aimd_on_throttle(&a, (i + 0.5) / 100, (i + 0.5) / 100);
    assert_near(r, r1 * 0.8, 1e-9); /* one cut per hold, from the limit */
    for (int i = 200; i < 10000; i++)
        r = aimd_on_throttle(&a, (i + 0.5) / 100, (i + 0.5) / 100);
    assert_near(r, AIMD_FLOOR, 0);
}

static void test_aimd_hold_and_sent(void **state)
{
    (void)state;
    Aimd a;
    aimd_init(&a, 100, 0);
    feed_ok(&a, 100, 0.05, 1.05);
    assert_near(aimd_on_throttle(&a, 1.05, 1.05), 80, 1e-9);
    /* A burst of 429s from the same overload: within the hold, nothing more. */
    for (int i = 1; i <= 10; i++)
        assert_near(aimd_on_throttle(&a, 1, 1.05 + i * 0.01), 80, 1e-9);
    /* After the hold, a 429 for a request sent before the cut still does not count... */
    assert_near(aimd_on_throttle(&a, 1.04, 3.5), 80, 1e-9);
    /* ...one sent after it does. */
    double r = aimd_on_throttle(&a, 3.4, 3.5);
    assert_true(r < 80);
    /* A 429 sent after the cut but within the hold: no cut either. */
    assert_near(aimd_on_throttle(&a, 3.6, 3.7), r, 0);
}

static void test_aimd_floor_and_ceiling(void **state)
{
    (void)state;
    Aimd a;
    aimd_init(&a, 50, 0);
    /* A provider that takes almost nothing: the floor holds. */
    for (int i = 0; i < 40; i++)
        assert_true(aimd_on_throttle(&a, i * 2.0, i * 2.0) >= AIMD_FLOOR);
    assert_near(aimd_rate(&a), AIMD_FLOOR, 0);
    /* Climbing for a long time stops at the ceiling. */
    double r = feed_ok(&a, 100000, 80, 600);
    assert_near(r, 50, 0);
    /* A ceiling below the floor is the floor. */
    aimd_init(&a, 0.25, 0);
    feed_ok(&a, 3, 0, 10);
    assert_near(aimd_on_throttle(&a, 10, 10), 0.25, 0);
    assert_near(aimd_on_success(&a, 20), 0.25, 0);
}

static void test_aimd_climb(void **state)
{
    (void)state;
    Aimd a;
    aimd_init(&a, 1000, 0);
    feed_ok(&a, 100, 0.05, 1.05);
    assert_near(aimd_on_throttle(&a, 1.05, 1.05), 80, 1e-9); /* knee 100 */
    const double lin = AIMD_CLIMB * 100, c = lin / AIMD_PROBE;
    /* Below the knee: AIMD_CLIMB * knee per second, whatever the answers' spacing. */
    assert_near(aimd_on_success(&a, 2.05), 80 + lin, 1e-9);
    feed_ok(&a, 1000, 2.05, 3.05);
    assert_near(aimd_on_success(&a, 3.05), 80 + 2 * lin, 1e-9);
    /* A long quiet stretch counts for AIMD_STEP_MAX only. */
    assert_near(aimd_on_success(&a, 100), 80 + (2 + AIMD_STEP_MAX) * lin, 1e-9);
    /* Reaches the knee 7 s later, then speeds up above it. */
    feed_ok(&a, 700, 100, 107);
    assert_near(aimd_on_success(&a, 107), 100, 1e-6);
    feed_ok(&a, 1000, 107, 117);
    double r = aimd_on_success(&a, 117);
    assert_near(r, 100 + c * (exp(AIMD_PROBE * 10) - 1), 1e-6);
    /* A clock that steps back earns nothing, then counts from where it went. */
    assert_near(aimd_on_success(&a, 50), r, 0);
    assert_near(aimd_on_success(&a, 50.5), 100 + (r - 100 + c) * exp(AIMD_PROBE * 0.5) - c, 1e-6);
}

static void test_aimd_release_without_ceiling(void **state)
{
    (void)state;
    Aimd a;
    aimd_init(&a, 0, 0);
    feed_ok(&a, 100, 0.05, 1.05);
    assert_near(aimd_on_throttle(&a, 1.05, 1.05), 80, 1e-6);
    /* Healthy answers for a long while: no limit again once at 4 * knee = 400. */
    double r = 80, t = 1.05;
    while (r > 0 && t < 100) {
        t += 0.01;
        r = aimd_on_success(&a, t);
        assert_true(r == 0 || (r >= 80 && r < 400));
    }
    assert_near(r, 0, 0);
    assert_true(t > 10 && t < 40);
    /* And the next 429 brings a limit back. */
    feed_ok(&a, 200, t, t + 1);
    assert_true(aimd_on_throttle(&a, t + 1, t + 1) > 0);
}

/* The simulation: a client with unlimited demand (as many IDs as it likes), at most
 * `conc` requests in flight, sending as fast as its token bucket allows, against a server
 * whose own token bucket of R/s (burst R/10 unless told) answers 429 when empty, or that
 * allows R requests per calendar second (a fixed window). One round trip of `rtt`
 * seconds; the server decides at half of it. Pure arithmetic on a fake clock. */
typedef struct SimCfg {
    double R;       /* the server's rate */
    double ceiling; /* the client's --rate; 0 = none */
    int conc;       /* the client's concurrency */
    double rtt;
    double end;          /* simulated seconds */
    double change_at;    /* when the server's rate changes (0 = never)... */
    double R2;           /* ...to this... */
    double back_at;      /* ...and when it goes back to R (0 = never) */
    double server_burst; /* 0 = R / 10 */
    bool fixed_window;   /* R per calendar second instead of a token bucket */
} SimCfg;

typedef struct SimServer {
    RateLimit bucket;
    double rate;
    long window, used; /* fixed window: which second, and how many it has taken */
    bool fixed_window;
} SimServer;

static bool server_take(SimServer *sv, double t)
{
    if (!sv->fixed_window)
        return rl_take(&sv->bucket, t);
    long w = (long)floor(t);
    if (w != sv->window) {
        sv->window = w;
        sv->used = 0;
    }
    if (sv->used >= (long)sv->rate)
        return false;
    sv->used++;
    return true;
}

static void server_set_rate(SimServer *sv, double rate, double t)
{
    sv->rate = rate;
    rl_set_rate(&sv->bucket, rate, t);
}

#define SIM_PHASES 8

typedef struct SimStats {
    double from[SIM_PHASES], to[SIM_PHASES]; /* phases to count, by the time of the answer */
    long ok[SIM_PHASES], n429[SIM_PHASES];
    double min_rate, max_rate; /* over the limits applied (0 = none counts as +inf) */
    int nphases;
} SimStats;

typedef struct InFlight {
    double sent;
    bool ok;
} InFlight;

static void sim_run(const SimCfg *c, SimStats *st)
{
    RateLimit client;
    SimServer server = {.rate = c->R, .window = -1, .fixed_window = c->fixed_window};
    Aimd a;
    InFlight *q = calloc((size_t)c->conc, sizeof *q);
    assert_non_null(q);
    int qh = 0, qn = 0;
    double t = 0;
    bool changed = false, back = false;
    rl_init(&client, c->ceiling, c->ceiling > 0 ? fmax(1.0, c->ceiling / 20.0) : 1.0, t);
    rl_init(&server.bucket, c->R, c->server_burst > 0 ? c->server_burst : c->R / 10, t);
    aimd_init(&a, c->ceiling, t);
    st->min_rate = INFINITY;
    st->max_rate = 0;
    for (;;) {
        double t_answer = qn > 0 ? q[qh].sent + c->rtt : INFINITY;
        double t_send = qn < c->conc ? t + rl_wait(&client, t) : INFINITY;
        double next = fmin(t_answer, t_send);
        if (next >= c->end)
            break;
        t = next;
        if (t_answer <= t_send) {
            InFlight f = q[qh];
            qh = (qh + 1) % c->conc;
            qn--;
            for (int i = 0; i < st->nphases; i++) {
                if (t >= st->from[i] && t < st->to[i]) {
                    if (f.ok)
                        st->ok[i]++;
                    else
                        st->n429[i]++;
                }
            }
            double r = f.ok ? aimd_on_success(&a, t) : aimd_on_throttle(&a, f.sent, t);
            double eff = r > 0 ? r : INFINITY;
            st->min_rate = fmin(st->min_rate, eff);
            st->max_rate = fmax(st->max_rate, eff);
            rl_set_rate(&client, r, t);
        } else if (rl_take(&client, t)) {
            double ts = t + c->rtt / 2;
            if (c->change_at > 0 && !changed && ts >= c->change_at) {
                server_set_rate(&server, c->R2, c->change_at);
                changed = true;
            }
            if (c->back_at > 0 && !back && ts >= c->back_at) {
                server_set_rate(&server, c->R, c->back_at);
                back = true;
            }
            q[(qh + qn) % c->conc] = (InFlight){t, server_take(&server, ts)};
            qn++;
        }
    }
    free(q);
}

static void sim_phase(SimStats *st, double from, double to)
{
    st->from[st->nphases] = from;
    st->to[st->nphases] = to;
    st->nphases++;
}

static double sim_rate(const SimStats *st, int i)
{
    return st->ok[i] / (st->to[i] - st->from[i]);
}

static double sim_429_share(const SimStats *st, int i)
{
    long n = st->ok[i] + st->n429[i];
    return n > 0 ? (double)st->n429[i] / (double)n : 0;
}

static void sim_report(const char *what, const SimCfg *c, const SimStats *st)
{
    for (int i = 0; i < st->nphases; i++)
        print_message("sim %s R=%g ceiling=%g rtt=%g [%g, %g): accepted %.1f/s (%.1f%% of %g), "
                      "429s %.2f%% of %ld requests\n",
                      what, c->R, c->ceiling, c->rtt, st->from[i], st->to[i], sim_rate(st, i),
                      100 * sim_rate(st, i) / c->R, c->R, 100 * sim_429_share(st, i),
                      st->ok[i] + st->n429[i]);
}

static void test_aimd_sim_converges(void **state)
{
    (void)state;
    static const double rates[] = {50, 200, 1000, 5000};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        /* No --rate, concurrency enough for 4 * R: the hardest start (unlimited). */
        SimCfg c = {.R = rates[i], .ceiling = 0, .rtt = 0.02, .end = 60};
        c.conc = (int)ceil(4 * c.R * c.rtt) + 1;
        SimStats st = {0};
        sim_phase(&st, 0, 60);
        sim_phase(&st, 30, 60);
        sim_run(&c, &st);
        sim_report("converges", &c, &st);
        assert_true(sim_rate(&st, 1) >= 0.85 * c.R);
        assert_true(sim_429_share(&st, 1) <= 0.05);
        assert_true(st.min_rate >= AIMD_FLOOR);
        /* With a --rate far above R, and a client that may send a burst at once. */
        c.ceiling = 10 * c.R;
        c.conc = (int)ceil(20 * c.R * c.rtt) + 1;
        memset(&st, 0, sizeof st);
        sim_phase(&st, 0, 60);
        sim_phase(&st, 30, 60);
        sim_run(&c, &st);
        sim_report("converges", &c, &st);
        assert_true(sim_rate(&st, 1) >= 0.85 * c.R);
        assert_true(sim_429_share(&st, 1) <= 0.05);
        assert_true(st.min_rate >= AIMD_FLOOR && st.max_rate <= c.ceiling);
    }
}

static void test_aimd_sim_other_servers(void **state)
{
    (void)state;
    /* No burst at the server, long round trips (one beyond the hold), a fixed window.
     * Against a server without burst, the first cut (from no limit, when the client sends
     * whole rounds at once) measures the rate it accepts from bursts: about one request
     * per round, 50/s. Climbing from there to R takes about 30 s. */
    static const SimCfg cases[] = {
        {.R = 1000, .rtt = 0.02, .end = 90, .server_burst = 1}, /* slow start: see below */
        {.R = 1000, .rtt = 0.5, .end = 120},
        {.R = 200, .rtt = 2.0, .end = 120},
        {.R = 1000, .rtt = 0.02, .end = 60, .fixed_window = true},
        {.R = 50, .rtt = 0.2, .end = 60, .fixed_window = true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        SimCfg c = cases[i];
        c.conc = (int)ceil(4 * c.R * c.rtt) + 1;
        SimStats st = {0};
        sim_phase(&st, 0, c.end);
        sim_phase(&st, c.end / 2, c.end);
        sim_run(&c, &st);
        sim_report(c.fixed_window ? "window" : "bucket", &c, &st);
        assert_true(sim_rate(&st, 1) >= 0.85 * c.R);
        assert_true(sim_429_share(&st, 1) <= 0.05);
        assert_true(st.min_rate >= AIMD_FLOOR);
    }
}

static void test_aimd_sim_ceiling_below_server(void **state)
{
    (void)state;
    SimCfg c = {.R = 1000, .ceiling = 800, .conc = 64, .rtt = 0.02, .end = 60};
    SimStats st = {0};
    sim_phase(&st, 1, 60);
    sim_run(&c, &st);
    sim_report("ceiling", &c, &st);
    assert_int_equal(st.n429[0], 0);
    assert_near(sim_rate(&st, 0), 800, 8);
    assert_near(st.min_rate, 800, 0);
    assert_near(st.max_rate, 800, 0);
}

static void test_aimd_sim_server_drops_and_recovers(void **state)
{
    (void)state;
    /* --rate 800 against 1000/s; from 30 s the server takes 250/s, from 60 s 1000/s again. */
    SimCfg c = {.R = 1000,
                .ceiling = 800,
                .conc = 64,
                .rtt = 0.02,
                .end = 90,
                .change_at = 30,
                .R2 = 250,
                .back_at = 60};
    SimStats st = {0};
    sim_phase(&st, 10, 30); /* at the ceiling */
    sim_phase(&st, 30, 35); /* adapting down */
    sim_phase(&st, 35, 60); /* settled under 250 */
    sim_phase(&st, 60, 75); /* climbing back */
    sim_phase(&st, 75, 90); /* back at the ceiling */
    sim_run(&c, &st);
    sim_report("drop", &c, &st);
    assert_int_equal(st.n429[0], 0);
    assert_near(sim_rate(&st, 0), 800, 8);
    assert_true(sim_rate(&st, 2) >= 0.85 * 250);
    assert_true(sim_429_share(&st, 2) <= 0.05);
    assert_true(sim_rate(&st, 3) > 250);
    assert_int_equal(st.n429[4], 0);
    assert_near(sim_rate(&st, 4), 800, 8);
    assert_true(st.min_rate >= AIMD_FLOOR && st.max_rate <= c.ceiling);
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
        cmocka_unit_test(test_aimd_init),
        cmocka_unit_test(test_aimd_cut_from_limit),
        cmocka_unit_test(test_aimd_cut_from_accepted),
        cmocka_unit_test(test_aimd_first_answers),
        cmocka_unit_test(test_aimd_cut_quiet_time_not_counted),
        cmocka_unit_test(test_aimd_cut_all_refused),
        cmocka_unit_test(test_aimd_hold_and_sent),
        cmocka_unit_test(test_aimd_floor_and_ceiling),
        cmocka_unit_test(test_aimd_climb),
        cmocka_unit_test(test_aimd_release_without_ceiling),
        cmocka_unit_test(test_aimd_sim_converges),
        cmocka_unit_test(test_aimd_sim_other_servers),
        cmocka_unit_test(test_aimd_sim_ceiling_below_server),
        cmocka_unit_test(test_aimd_sim_server_drops_and_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
