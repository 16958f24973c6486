/* Unit tests for quota: the header parser on good, odd and hostile values; the pacing
 * arithmetic on a fake clock (estimates across answers in and out of order, the window's
 * bounds, the reset, the first-answer hold, forgetting); and a simulated client at full
 * concurrency against a fixed-window server, for each form of announcement, with latency,
 * reordering, a server that rounds down and a server clock behind ours. */
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

#include "quota.h"

#define WALL0 1790000000.0 /* the fake wall clock at fake loop time 0 */

static bool line(QuotaHdr *h, const char *s)
{
    return quota_hdr_line(h, s, strlen(s));
}

/* Resolve h at loop time 0 (wall WALL0). */
static bool resolve(const QuotaHdr *h, QuotaAnn *a)
{
    return quota_hdr_resolve(h, WALL0, a);
}

/* ---------------------------------------------------------------- the headers */

static void test_ietf_basic(void **state)
{
    (void)state;
    QuotaHdr h = {0};
    QuotaAnn a;
    assert_false(quota_hdr_any(&h));
    assert_true(line(&h, "RateLimit-Limit: 3000\r\n"));
    assert_true(line(&h, "ratelimit-remaining:1234\r\n"));
    assert_false(resolve(&h, &a)); /* no reset yet */
    assert_true(line(&h, "RATELIMIT-RESET: \t 2 \r\n"));
    assert_true(quota_hdr_any(&h));
    assert_true(resolve(&h, &a));
    assert_int_equal(a.form, QUOTA_FORM_IETF);
    assert_near(a.limit, 3000, 0);
    assert_near(a.remaining, 1234, 0);
    assert_near(a.reset, 2, 0);
    assert_near(a.grain, 1, 0);
    assert_near(a.epoch_end, 0, 0);
}

static void test_not_quota_headers(void **state)
{
    (void)state;
    QuotaHdr h = {0};
    const char *others[] = {"Retry-After: 5\r\n",
                            "X-Request-Id: 12\r\n",
                            "RateLimitFoo: 1\r\n",
                            "RateLimit-Limits: 1\r\n",
                            "X-RateLimit-Policy: 1\r\n",
                            "X-RateLimit: limit=1\r\n",
                            "Referrer-Policy: none\r\n",
                            "RateLimit-Limit 5\r\n",
                            "X-\r\n",
                            "R"};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++)
        assert_false(line(&h, others[i]));
    assert_false(quota_hdr_any(&h));
    assert_false(quota_hdr_candidate("Retry-Af", 8));
    assert_true(quota_hdr_candidate("Retry-After: 1", 14)); /* a candidate, then no */
    assert_true(quota_hdr_candidate("x-ratelimit-reset: 1", 20));
    assert_false(quota_hdr_candidate("Content-Type: a/b", 17));
}

static void test_x_forms(void **state)
{
    (void)state;
    QuotaHdr h = {0};
    QuotaAnn a;
    assert_true(line(&h, "X-RateLimit-Limit: 60"));
    assert_true(line(&h, "X-RateLimit-Remaining: 59"));
    assert_true(line(&h, "X-RateLimit-Reset: 30"));
    assert_true(resolve(&h, &a));
    assert_int_equal(a.form, QUOTA_FORM_X);
    assert_near(a.reset, 30, 0);
    assert_near(a.epoch_end, 0, 0);

    /* A timestamp: seconds... */
    assert_true(line(&h, "X-RateLimit-Reset: 1790000007"));
    assert_true(resolve(&h, &a));
    assert_near(a.reset, 7, 1e-6);
    assert_near(a.epoch_end, 1790000007, 0);
    assert_near(a.grain, 0, 0);
    /* ...in milliseconds... */
    assert_true(line(&h, "X-RateLimit-Reset: 1790000002500"));
    assert_true(resolve(&h, &a));
    assert_near(a.reset, 2.5, 1e-6);
    /* ...a little in the past (a skewed clock, or the window just ended): now... */
    assert_true(line(&h, "X-RateLimit-Reset: 1789999990"));
    assert_true(resolve(&h, &a));
    assert_near(a.reset, 0, 0);
    /* ...but not a day in the past, nor too far ahead */
    assert_true(line(&h, "X-RateLimit-Reset: 1700000000"));
    assert_false(resolve(&h, &a));
    assert_true(line(&h, "X-RateLimit-Reset: 1800000000"));
    assert_false(resolve(&h, &a));
    /* a fractional delta */
    assert_true(line(&h, "X-RateLimit-Reset: 1.25"));
    assert_true(resolve(&h, &a));
    assert_near(a.reset, 1.25, 1e-12);
    assert_near(a.grain, 0, 0);
}

static void test_ietf_wins_when_complete(void **state)
{
    (void)state;
    QuotaHdr h = {0};
    QuotaAnn a;
    assert_true(line(&h, "X-RateLimit-Remaining: 5"));
    assert_true(line(&h, "X-RateLimit-Reset: 9"));
    assert_true(line(&h, "RateLimit-Remaining: 7"));
    assert_true(resolve(&h, &a)); /* the IETF form lacks its reset: X */
    assert_int_equal(a.form, QUOTA_FORM_X);
    assert_near(a.remaining, 5, 0);
    assert_true(line(&h, "RateLimit-Reset: 3"));
    assert_true(resolve(&h, &a));
    assert_int_equal(a.form, QUOTA_FORM_IETF);
    assert_near(a.remaining, 7, 0);
    assert_near(a.limit, 0, 0); /* none announced */
}

static void test_structured_forms(void **state)
{
    (void)state;
    QuotaHdr h = {0};
    QuotaAnn a;
    /* draft -05/-06: one header */
    assert_true(line(&h, "RateLimit: limit=100, remaining=50, reset=30\r\n"));
    assert_true(resolve(&h, &a));
    assert_near(a.limit, 100, 0);
    assert_near(a.remaining, 50, 0);
    assert_near(a.reset, 30, 0);

    /* draft -07 on: RateLimit with r and t, the limit in RateLimit-Policy's q; with two
     * policies, the first one */
    memset(&h, 0, sizeof h);
    assert_true(line(&h, "RateLimit: \"default\";r=40;t=12, \"daily\";r=900;t=3600"));
    assert_true(line(&h, "RateLimit-Policy: \"default\";q=100;w=60, \"daily\";q=1000;w=86400"));
    assert_true(resolve(&h, &a));
    assert_near(a.limit, 100, 0);
    assert_near(a.remaining, 40, 0);
    assert_near(a.reset, 12, 0);

    /* an older policy: a bare number first */
    memset(&h, 0, sizeof h);
    assert_true(line(&h, "RateLimit-Policy: 10;w=1, 50;w=60"));
    assert_near(h.ietf.limit, 10, 0);
    /* a list in RateLimit-Limit: its first number */
    assert_true(line(&h, "RateLimit-Limit: 100, 100;w=60"));
    assert_near(h.ietf.limit, 100, 0);
    /* garbage parameters are skipped, not misread */
    memset(&h, 0, sizeof h);
    assert_true(line(&h, "RateLimit: r=-3, t=abc, remaining=\"7\", q=5, =, ;;, reset"));
    assert_int_equal(h.ietf.have, 0);
}

static void test_bad_values(void **state)
{
    (void)state;
    const char *bad[] = {"-5",  "abc", "1e3",   "0x10", "inf",  "nan",
                         "",    "12a", " ",     "+3",   ".5",   "9999999999999999",
                         "1/2", "5e",  "\"5\"", "\x80", "5\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        QuotaHdr h = {0};
        char l[64];
        snprintf(l, sizeof l, "RateLimit-Remaining: %s", bad[i]);
        assert_true(line(&h, l));
        assert_int_equal(h.ietf.have, 0);
    }
    /* the last one wins, a bad one too */
    QuotaHdr h = {0};
    QuotaAnn a;
    assert_true(line(&h, "RateLimit-Remaining: 5"));
    assert_true(line(&h, "RateLimit-Reset: 1"));
    assert_true(line(&h, "RateLimit-Remaining: oops"));
    assert_false(resolve(&h, &a));
    /* remaining above the limit: cut to it; a limit of 0 or absurd: none */
    assert_true(line(&h, "RateLimit-Remaining: 50"));
    assert_true(line(&h, "RateLimit-Limit: 10"));
    assert_true(resolve(&h, &a));
    assert_near(a.remaining, 10, 0);
    assert_true(line(&h, "RateLimit-Limit: 0"));
    assert_true(resolve(&h, &a));
    assert_near(a.limit, 0, 0);
    assert_near(a.remaining, 50, 0);
    assert_true(line(&h, "RateLimit-Limit: 999999999999999"));
    assert_true(resolve(&h, &a));
    assert_near(a.limit, 0, 0);
    /* a reset beyond two days: not believed */
    assert_true(line(&h, "RateLimit-Reset: 200000"));
    assert_false(resolve(&h, &a));
    /* a fraction is kept, digits after the point cut nothing */
    assert_true(line(&h, "RateLimit-Reset: 0.000001"));
    assert_true(resolve(&h, &a));
    assert_near(a.reset, 1e-6, 1e-15);
    /* NUL bytes inside a line are just bytes */
    assert_true(quota_hdr_line(&h, "RateLimit-Reset: 4\0 9", 21));
    assert_false(resolve(&h, &a));
    assert_false(quota_hdr_resolve(&h, NAN, &a));
}

/* ---------------------------------------------------------------- the pacing */

/* An announcement with a whole-second delta Reset. */
static QuotaAnn ann(double limit, double remaining, double reset)
{
    QuotaAnn a = {QUOTA_FORM_IETF, limit, remaining, reset, 1, 0};
    return a;
}

static void test_first_answer_estimate(void **state)
{
    (void)state;
    Quota q;
    quota_init(&q, true, 0);
    uint64_t s1 = quota_on_send(&q, 0);
    for (int i = 0; i < 4; i++)
        (void)quota_on_send(&q, 0.001);
    QuotaAnn a = ann(100, 60, 3);
    assert_int_equal(quota_on_answer(&q, &a, s1, 0, 0.05), QUOTA_EV_FIRST);
    assert_true(q.known);
    assert_near(q.left, 56, 0);  /* the four sent after it were not counted yet */
    assert_near(q.lo, 2, 1e-12); /* (sent + 3 - 1, now + 3] */
    assert_near(q.hi, 3.05, 1e-12);
    assert_near(quota_left(&q), 56, 0);
}

static void test_stale_and_fresh_answers(void **state)
{
    (void)state;
    Quota q;
    quota_init(&q, true, 0);
    uint64_t seq[10];
    for (int i = 0; i < 10; i++)
        seq[i] = quota_on_send(&q, 0.01 * i);
    QuotaAnn a = ann(100, 50, 3);
    assert_int_equal(quota_on_answer(&q, &a, seq[5], 0.05, 0.2), QUOTA_EV_FIRST);
    assert_near(q.left, 46, 0);
    /* an older request's answer, higher: stale, ignored */
    a = ann(100, 54, 3);
    (void)quota_on_answer(&q, &a, seq[1], 0.01, 0.21);
    assert_near(q.left, 46, 0);
    /* an older one, lower (someone else spends the quota too): lowers it */
    a = ann(100, 40, 3);
    (void)quota_on_answer(&q, &a, seq[2], 0.02, 0.22);
    assert_near(q.left, 33, 0);
    /* a fresher one replaces it, up or down */
    a = ann(100, 44, 3);
    (void)quota_on_answer(&q, &a, seq[9], 0.09, 0.23);
    assert_near(q.left, 44, 0);
    /* a sequence number from the future is taken as the last */
    a = ann(100, 30, 3);
    (void)quota_on_answer(&q, &a, 1000, 0.09, 0.24);
    assert_near(q.left, 30, 0);
    assert_near(q.announced, 30, 0);
}

/* --shared: each of three workers paces at a third of what the server says is left. */
static void test_pacing_share(void **state)
{
    (void)state;
    Quota q;
    quota_init(&q, true, 0);
    assert_near(q.share, 1, 0);
    quota_set_share(&q, 0);
    assert_near(q.share, 1, 0);
    quota_set_share(&q, 2);
    assert_near(q.share, 1, 0);
    quota_set_share(&q, NAN);
    assert_near(q.share, 1, 0);
    quota_set_share(&q, 1.0 / 3);
    uint64_t s = quota_on_send(&q, 0);
    QuotaAnn a = ann(1000, 801, 2);
    (void)quota_on_answer(&q, &a, s, 0, 0);
    assert_near(quota_wait(&q, 0, 0), 0, 0);
    assert_near(quota_rate(&q), 795.0 / 2 / 3, 1e-9);
    /* Three workers on one key: the server counts them all, and each answer (at once)
     * announces what is left of the key's quota. Together they spend what the whole key
     * may in the window, about a third each, never more. */
    Quota w[3];
    double remaining = 801, t = 0;
    int sent[3] = {0};
    for (int i = 0; i < 3; i++) {
        quota_init(&w[i], true, 0);
        quota_set_share(&w[i], 1.0 / 3);
        uint64_t n = quota_on_send(&w[i], 0);
        remaining--;
        sent[i]++;
        a = ann(1000, remaining, 2);
        (void)quota_on_answer(&w[i], &a, n, 0, 0);
    }
    while (t < 1.999) {
        double next = 2;
        int who = -1;
        for (int i = 0; i < 3; i++) {
            double wt = quota_wait(&w[i], t, 0);
            if (wt <= 0) {
                who = i;
                break;
            }
            next = fmin(next, t + wt);
        }
        if (who < 0) {
            t = next;
            continue;
        }
        uint64_t n = quota_on_send(&w[who], t);
        remaining--;
        sent[who]++;
        a = ann(1000, remaining, ceil(2 - t));
        (void)quota_on_answer(&w[who], &a, n, t, t);
    }
    int total = sent[0] + sent[1] + sent[2];
    /* the key's 801 less the reserve of 6 (the first three went before any announcement),
     * not 3 x that */
    assert_in_range(total, 770, 798);
    for (int i = 0; i < 3; i++)
        assert_in_range(sent[i], total / 3 - 15, total / 3 + 15);
    /* a worker left: two share it now, each paces at half */
    quota_set_share(&q, 0.5);
    (void)quota_wait(&q, 0.5, 0);
    assert_near(quota_rate(&q), (quota_left(&q) - 6) / 1.5 / 2, 1e-6);
}

static void test_pacing_spreads_what_is_left(void **state)
{
    (void)state;
    Quota q;
    quota_init(&q, true, 0);
    uint64_t s = quota_on_send(&q, 0);
    QuotaAnn a = ann(1000, 801, 2);
    (void)quota_on_answer(&q, &a, s, 0, 0); /* hi = 2 */
    /* 801 left, less the reserve of 1 + 5 = 6: 795 over 2 s */
    assert_near(quota_wait(&q, 0, 0), 0, 0);
    assert_near(quota_rate(&q), 795.0 / 2, 1e-9);
    /* drive it: count what goes in the first second */
    int sent = 0;
    double t = 0;
    while (t < 1.0) {
        double w = quota_wait(&q, t, 0);
        if (w > 0) {
            t += w;
            continue;
        }
        (void)quota_on_send(&q, t);
        sent++;
    }
    /* about half of it, and the burst never more than QUOTA_BURST s of the rate */
    assert_in_range(sent, 390, 410);
    /* the rest of the window: never past the announced quota less the reserve */
    while (t < 2.0) {
        double w = quota_wait(&q, t, 0);
        if (w > 0) {
            if (t + w >= 2.0)
                break;
            t += w;
            continue;
        }
        (void)quota_on_send(&q, t);
        sent++;
    }
    assert_in_range(sent, 790, 795);
}

static void test_spent_waits_for_reset_then_full_window(void **state)
{
    (void)state;
    Quota q;
    quota_init(&q, true, 0);
    uint64_t s = quota_on_send(&q, 0);
    QuotaAnn a = ann(100, 3, 3);
    (void)quota_on_answer(&q, &a, s, 0, 0.01);    /* window ends in (2, 3.01] */
    (void)quota_on_answer(&q, &a, s, 0.55, 0.56); /* 3 at 0.55 or later: after 2.55 */
    a = ann(100, 3, 2);                           /* 2 by 0.61: by 2.61 */
    (void)quota_on_answer(&q, &a, s, 0.5, 0.61);
    assert_near(q.lo, 2.55, 1e-12);
    assert_near(q.hi, 2.61, 1e-12);
    assert_near(q.win_cur, 3, 0);
    /* 3 left, reserve 1.5: one request, then wait for the late bound */
    assert_near(quota_wait(&q, 1, 0), 0, 0);
    (void)quota_on_send(&q, 1);
    assert_near(quota_wait(&q, 1, 0), 1.61, 1e-12);
    assert_near(quota_rate(&q), 0, 0);
    /* two requests go between the bounds (they may land in either window) */
    (void)quota_on_send(&q, 2.56);
    (void)quota_on_send(&q, 2.58);
    /* at the late bound: a new window of 100, less those two, ending 3 s later */
    assert_near(quota_wait(&q, 2.61, 0), 0, 0);
    assert_near(q.left, 98, 0);
    assert_true(q.rolled);
    assert_near(q.lo, 5.55, 1e-12);
    assert_near(q.hi, 5.61, 1e-12);
    /* a long pause: whole windows later, the whole limit */
    assert_near(quota_wait(&q, 100, 0), 0, 0);
    assert_near(q.left, 100, 0);
    assert_true(q.hi > 100 && q.hi <= 103);
}

static void test_new_window_from_an_answer(void **state)
{
    (void)state;
    Quota q;
    quota_init(&q, true, 0);
    uint64_t s = quota_on_send(&q, 0);
    QuotaAnn a = ann(100, 0, 1);
    (void)quota_on_answer(&q, &a, s, 0, 0.01); /* ends in (0, 1.01] */
    assert_true(quota_wait(&q, 0.02, 0) > 0.9);
    /* an answer whose earliest end is past our latest: a new window, believed at once */
    s = quota_on_send(&q, 0.02);
    a = ann(100, 97, 3);
    (void)quota_on_answer(&q, &a, s, 1.2, 1.25);
    assert_false(q.rolled);
    assert_near(q.left, 97, 0);
    assert_near(q.lo, 3.2, 1e-12);
    assert_near(quota_wait(&q, 1.25, 0), 0, 0);
    /* an answer from the old window that comes late: ignored */
    a = ann(100, 0, 1);
    assert_int_equal(quota_on_answer(&q, &a, s, 0.02, 1.3), QUOTA_EV_NONE);
    assert_near(q.left, 97, 0);
}

static void test_first_answer_hold(void **state)
{
    (void)state;
    Quota q;
    quota_init(&q, true, 10);
    for (int i = 0; i < QUOTA_FIRST_INFLIGHT; i++) {
        assert_near(quota_wait(&q, 10, (size_t)i), 0, 0);
        (void)quota_on_send(&q, 10);
    }
    assert_near(quota_wait(&q, 10.1, QUOTA_FIRST_INFLIGHT), QUOTA_FIRST_WAIT - 0.1, 1e-9);
    assert_near(quota_wait(&q, 10.1, QUOTA_FIRST_INFLIGHT - 1), 0, 0);
    assert_near(quota_wait(&q, 10 + QUOTA_FIRST_WAIT, 100), 0, 0); /* held long enough */
    /* any answer ends the hold, announced or not */
    quota_init(&q, true, 0);
    (void)quota_on_send(&q, 0);
    (void)quota_on_answer(&q, NULL, 1, 0, 0.01);
    assert_near(quota_wait(&q, 0.01, 1000), 0, 0);
    /* off: never holds, never paces */
    quota_init(&q, false, 0);
    (void)quota_on_send(&q, 0);
    assert_near(quota_wait(&q, 0, 1000), 0, 0);
    QuotaAnn a = ann(10, 0, 60);
    assert_int_equal(quota_on_answer(&q, &a, 1, 0, 0.01), QUOTA_EV_NONE);
    assert_false(q.known);
    assert_near(quota_wait(&q, 0.01, 1000), 0, 0);
    assert_false(quota_explains_429(&q, &a));
}

static void test_forget_and_again(void **state)
{
    (void)state;
    Quota q;
    quota_init(&q, true, 0);
    QuotaAnn a = ann(10, 0, 60);
    assert_int_equal(quota_on_answer(&q, &a, quota_on_send(&q, 0), 0, 0), QUOTA_EV_FIRST);
    assert_true(quota_explains_429(&q, &a));
    assert_true(quota_wait(&q, 0, 0) > 59);
    for (int i = 1; i < QUOTA_FORGET; i++)
        assert_int_equal(quota_on_answer(&q, NULL, 1, 0, 1), QUOTA_EV_NONE);
    assert_int_equal(quota_on_answer(&q, NULL, 1, 0, 1), QUOTA_EV_GONE);
    assert_false(q.known);
    assert_near(quota_wait(&q, 1, 0), 0, 0);
    assert_false(quota_explains_429(&q, &a));
    QuotaAnn b = ann(10, 5, 60);
    assert_false(quota_explains_429(&q, &b));
    assert_int_equal(quota_on_answer(&q, &a, 1, 1, 2), QUOTA_EV_FIRST);
}

/* A server that rounds its seconds down: the clock starts the next window early, a request
 * sent after that comes back from the old window, and the resets move later. */
static void test_premature_reset_shifts(void **state)
{
    (void)state;
    Quota q;
    quota_init(&q, true, 0);
    /* true end at 3.5; rounded down, at 0.1 the server says 3 */
    QuotaAnn a = ann(100, 0, 3);
    (void)quota_on_answer(&q, &a, quota_on_send(&q, 0.1), 0.1, 0.12);
    assert_near(q.hi, 3.12, 1e-12);
    assert_near(quota_wait(&q, 3.12, 0), 0, 0); /* "surely" over: rolled */
    assert_true(q.rolled);
    uint64_t s = quota_on_send(&q, 3.2);
    a = ann(100, 0, 0); /* still the old window, 0.3 s before its end */
    assert_int_equal(quota_on_answer(&q, &a, s, 3.2, 3.22), QUOTA_EV_SHIFTED);
    assert_near(q.shift, 1 + QUOTA_SHIFT_PAD, 1e-12); /* rounded down: a second more */
    assert_false(q.rolled);
    assert_true(q.hi >= 3.2);
    assert_true(quota_wait(&q, 3.22, 0) > 0); /* spent: wait again */

    /* A Reset still of whole seconds (a clock read a little late, not a server that rounds
     * down): only what the answer showed. */
    quota_init(&q, true, 0);
    a = ann(100, 0, 3);
    (void)quota_on_answer(&q, &a, quota_on_send(&q, 0.1), 0.1, 0.12);
    assert_near(quota_wait(&q, 3.12, 0), 0, 0);
    s = quota_on_send(&q, 3.13);
    a = ann(100, 0, 1);
    (void)quota_on_answer(&q, &a, s, 3.13, 3.15);
    assert_int_equal(quota_on_answer(&q, &a, s, 3.13, 3.15), QUOTA_EV_NONE); /* once */
    assert_near(q.shift, 0.01 + QUOTA_SHIFT_PAD, 1e-9);
}

/* Timestamp resets: windows told apart by their end; a stale answer of the old window
 * after the new one began changes nothing. */
static void test_epoch_windows(void **state)
{
    (void)state;
    Quota q;
    quota_init(&q, true, 0);
    QuotaHdr h = {0};
    QuotaAnn a;
    assert_true(line(&h, "X-RateLimit-Limit: 100"));
    assert_true(line(&h, "X-RateLimit-Remaining: 10"));
    assert_true(line(&h, "X-RateLimit-Reset: 1790000002"));
    assert_true(resolve(&h, &a));
    (void)quota_on_answer(&q, &a, quota_on_send(&q, 0), 0, 0);
    assert_near(q.lo, 2, 1e-6);
    assert_near(q.hi, 2, 1e-6);
    assert_true(line(&h, "X-RateLimit-Reset: 1790000005"));
    assert_true(line(&h, "X-RateLimit-Remaining: 90"));
    assert_true(quota_hdr_resolve(&h, WALL0 + 2.1, &a));
    (void)quota_on_answer(&q, &a, quota_on_send(&q, 2.05), 2.05, 2.1);
    assert_near(q.left, 90, 0);
    assert_near(q.win_prev, 3, 1e-6); /* one window apart */
    assert_true(line(&h, "X-RateLimit-Reset: 1790000002"));
    assert_true(line(&h, "X-RateLimit-Remaining: 0"));
    assert_true(quota_hdr_resolve(&h, WALL0 + 2.15, &a));
    assert_int_equal(quota_on_answer(&q, &a, 1, 0, 2.15), QUOTA_EV_NONE);
    assert_near(q.left, 90, 0);
}

/* A bogus Reset far ahead does not hold the provider for good: answers to requests sent
 * since that keep saying otherwise win. */
static void test_disagreement_wins(void **state)
{
    (void)state;
    Quota q;
    quota_init(&q, true, 0);
    QuotaAnn a = ann(100, 50, 3);
    (void)quota_on_answer(&q, &a, quota_on_send(&q, 0), 0, 0.01);
    a = ann(100, 0, 100000); /* a later window, by its bounds */
    (void)quota_on_answer(&q, &a, quota_on_send(&q, 0.02), 0.02, 0.03);
    assert_true(quota_wait(&q, 0.03, 0) > 1000);
    double t = 0.04;
    int i = 0;
    for (; i < QUOTA_DISAGREE && quota_wait(&q, t, 0) > 1000; i++, t += 0.01) {
        a = ann(100, 40 - i, 2);
        (void)quota_on_answer(&q, &a, q.sent, t - 0.005, t);
    }
    assert_int_equal(i, QUOTA_DISAGREE);
    assert_true(q.hi < 3);
    assert_true(quota_wait(&q, t, 0) < 0.1);
}

/* ---------------------------------------------------------------- the simulation */

typedef struct SimReq {
    bool used;
    bool at_server; /* false: on its way to the server; true: its answer is on its way */
    double t;       /* when it reaches the server, then when the answer reaches the client */
    double sent;
    uint64_t seq;
    double reset; /* the announcement, set at the server */
    long remaining;
    double epoch_end;
} SimReq;

typedef struct SimConf {
    double S;        /* window, seconds */
    long N;          /* requests per window */
    double phase;    /* the client's clock 0 is this far into a window */
    int form;        /* 0 IETF delta, 1 X timestamp, 2 X delta */
    bool floor_;     /* the server rounds its delta seconds down */
    double skew;     /* server clock minus ours */
    double owd;      /* one-way delay, each way */
    double jitter;   /* plus uniform [0, jitter] each way */
    double lat;      /* the server's time to answer after counting */
    int conc;        /* requests in flight at most */
    double end;      /* seconds */
    double pause_at; /* the client sends nothing in [pause_at, pause_at + 2) if > 0 */
} SimConf;

typedef struct SimOut {
    long accepted, refused;
    double used_share; /* accepted per full window measured, over N */
} SimOut;

#define SIM_MAX 512

static double sim_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ULL) >> 11) * 0x1.0p-53;
}

static void simulate(const SimConf *c, SimOut *out)
{
    static SimReq r[SIM_MAX];
    memset(r, 0, sizeof r);
    memset(out, 0, sizeof *out);
    Quota q;
    quota_init(&q, true, 0);
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    long win = -1, used = 0;
    int inflight = 0;
    long per_win[1024] = {0};
    double t = 0;
    while (t < c->end) {
        double wait = INFINITY;
        bool paused = c->pause_at > 0 && t >= c->pause_at && t < c->pause_at + 2;
        while (!paused && inflight < c->conc) {
            double w = quota_wait(&q, t, (size_t)inflight);
            if (w > 0) {
                wait = w;
                break;
            }
            int i = 0;
            while (r[i].used)
                i++;
            r[i] = (SimReq){
                true, false, t + c->owd + c->jitter * sim_rand(&rng), t, quota_on_send(&q, t), 0,
                0,    0};
            inflight++;
        }
        if (paused)
            wait = c->pause_at + 2 - t;
        /* the next event */
        int e = -1;
        for (int i = 0; i < SIM_MAX; i++)
            if (r[i].used && (e < 0 || r[i].t < r[e].t))
                e = i;
        if (e < 0 || r[e].t > t + wait) {
            t += wait;
            continue;
        }
        t = r[e].t;
        if (!r[e].at_server) {
            double ts = t + c->skew + c->phase; /* server clock, windows at multiples of S */
            long k = (long)floor(ts / c->S);
            if (k != win) {
                win = k;
                used = 0;
            }
            if (used < c->N) {
                used++;
                out->accepted++;
                if (k >= 0 && k < 1024)
                    per_win[k]++;
            } else {
                out->refused++;
            }
            double left = (double)(k + 1) * c->S - ts;
            r[e].reset = c->floor_ ? floor(left) : ceil(left);
            r[e].remaining = c->N - used;
            r[e].epoch_end = WALL0 + (double)(k + 1) * c->S; /* whole seconds */
            r[e].at_server = true;
            r[e].t = t + c->lat + c->owd + c->jitter * sim_rand(&rng);
            continue;
        }
        QuotaHdr h = {0};
        char l[96];
        const char *pre = c->form == 0 ? "" : "X-";
        snprintf(l, sizeof l, "%sRateLimit-Limit: %ld\r\n", pre, c->N);
        assert_true(quota_hdr_line(&h, l, strlen(l)));
        snprintf(l, sizeof l, "%sRateLimit-Remaining: %ld\r\n", pre, r[e].remaining);
        assert_true(quota_hdr_line(&h, l, strlen(l)));
        if (c->form == 1)
            snprintf(l, sizeof l, "X-RateLimit-Reset: %.0f\r\n", r[e].epoch_end);
        else
            snprintf(l, sizeof l, "%sRateLimit-Reset: %.0f\r\n", pre, r[e].reset);
        assert_true(quota_hdr_line(&h, l, strlen(l)));
        QuotaAnn a;
        assert_true(quota_hdr_resolve(&h, WALL0 + c->phase + t, &a)); /* our wall clock */
        (void)quota_on_answer(&q, &a, r[e].seq, r[e].sent, t);
        r[e].used = false;
        inflight--;
    }
    /* the windows wholly inside [2 s, end - S), pauses left out */
    long full = 0, acc = 0;
    for (long k = 0; k < 1024; k++) {
        double start = (double)k * c->S - c->phase - c->skew, stop = start + c->S;
        if (start < 2 || stop > c->end - c->S)
            continue;
        if (c->pause_at > 0 && stop > c->pause_at && start < c->pause_at + 2 + c->S)
            continue;
        full++;
        acc += per_win[k];
    }
    out->used_share = full ? (double)acc / ((double)full * (double)c->N) : 0;
    print_message("      sim S=%g N=%ld phase=%g form=%d floor=%d skew=%g owd=%g jitter=%g lat=%g: "
                  "%ld accepted, %ld refused (%.3f %%), %.1f %% of the quota over %ld "
                  "windows, shift %.3f\n",
                  c->S, c->N, c->phase, c->form, c->floor_, c->skew, c->owd, c->jitter, c->lat,
                  out->accepted, out->refused,
                  100.0 * (double)out->refused / (double)(out->accepted + out->refused),
                  100 * out->used_share, full, q.shift);
}

static void expect_good(const SimConf *c, double max_refused, double min_used)
{
    SimOut o;
    simulate(c, &o);
    assert_true(o.accepted > 0);
    double refused = (double)o.refused / (double)(o.accepted + o.refused);
    if (refused > max_refused || o.used_share < min_used) {
        print_error("refused %.4f (at most %.4f), used %.4f (at least %.4f)\n", refused,
                    max_refused, o.used_share, min_used);
        fail();
    }
}

static void test_sim_forms(void **state)
{
    (void)state;
    /* the integration test's set-up: 3000 per 3 s, 50 ms latency, 256 in flight */
    SimConf c = {3, 3000, 0.4, 0, false, 0, 0.0002, 0.0005, 0.05, 256, 40, 0};
    for (int form = 0; form < 3; form++) {
        c.form = form;
        expect_good(&c, 0.005, 0.95);
    }
    c.phase = 2.9; /* starting at the very end of a window */
    expect_good(&c, 0.005, 0.95);
}

static void test_sim_other_servers(void **state)
{
    (void)state;
    SimConf c = {3, 3000, 1.3, 0, false, 0, 0.0002, 0.0005, 0.05, 256, 40, 0};
    /* a far server: 40 ms each way, jittery (answers out of order) */
    c.owd = 0.04;
    c.jitter = 0.03;
    expect_good(&c, 0.005, 0.9);
    /* a small quota over a long window, few requests in flight */
    SimConf small = {10, 200, 4.2, 0, false, 0, 0.001, 0.002, 0.02, 16, 80, 0};
    expect_good(&small, 0.005, 0.9);
    /* one-second windows */
    SimConf one = {1, 500, 0.3, 0, false, 0, 0.0005, 0.001, 0.01, 64, 30, 0};
    expect_good(&one, 0.005, 0.9);
    /* a pause in the middle: the next window from the clock, then its answers */
    c.owd = 0.0002;
    c.jitter = 0.0005;
    c.pause_at = 10;
    expect_good(&c, 0.005, 0.9);
}

static void test_sim_rounding_and_skew(void **state)
{
    (void)state;
    /* a server that rounds down: a few 429s while the shift is learned, then few */
    SimConf c = {3, 3000, 0.4, 0, true, 0, 0.0002, 0.0005, 0.05, 256, 60, 0};
    expect_good(&c, 0.01, 0.9);
    /* timestamps from a server clock 0.4 s behind ours */
    c.floor_ = false;
    c.form = 1;
    c.skew = -0.4;
    expect_good(&c, 0.01, 0.9);
    /* ...or ahead: it costs some of the quota (the client waits for its own reset), no
     * 429 */
    c.skew = 0.3;
    expect_good(&c, 0.001, 0.85);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ietf_basic),
        cmocka_unit_test(test_not_quota_headers),
        cmocka_unit_test(test_x_forms),
        cmocka_unit_test(test_ietf_wins_when_complete),
        cmocka_unit_test(test_structured_forms),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_first_answer_estimate),
        cmocka_unit_test(test_stale_and_fresh_answers),
        cmocka_unit_test(test_pacing_spreads_what_is_left),
        cmocka_unit_test(test_pacing_share),
        cmocka_unit_test(test_spent_waits_for_reset_then_full_window),
        cmocka_unit_test(test_new_window_from_an_answer),
        cmocka_unit_test(test_first_answer_hold),
        cmocka_unit_test(test_forget_and_again),
        cmocka_unit_test(test_premature_reset_shifts),
        cmocka_unit_test(test_epoch_windows),
        cmocka_unit_test(test_disagreement_wins),
        cmocka_unit_test(test_sim_forms),
        cmocka_unit_test(test_sim_other_servers),
        cmocka_unit_test(test_sim_rounding_and_skew),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
