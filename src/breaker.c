/* breaker: per-provider circuit breaker. Outcomes are counted in BREAKER_BUCKETS time
 * buckets numbered from the clock at init, so the window slides without a timer and
 * without rounding piling up; the probe is told apart from late answers by send time, and
 * so are the answers in flight before a run of unreachable failures began. */
#include "breaker.h"

#include <float.h>
#include <math.h>

#define DEFAULT_WINDOW 10.0
#define MIN_COOLDOWN   1e-3

/* Seconds left until `deadline`, or 0 when it has passed or is closer than the clock's
 * rounding (1e-9 s, or 8 ulp-ish of an epoch clock): so that allow at now + wait says yes
 * rather than failing by a hair, as in ratelimit. */
static double left_until(double deadline, double now)
{
    double slack = fabs(now) * 8 * DBL_EPSILON;
    if (slack < 1e-9)
        slack = 1e-9;
    double w = deadline - now;
    return w > slack ? w : 0;
}

static double bucket_len(const Breaker *b)
{
    return b->window / BREAKER_BUCKETS;
}

static void clear_history(Breaker *b)
{
    for (int i = 0; i < BREAKER_BUCKETS; i++)
        b->ok[i] = b->err[i] = 0;
}

void breaker_init(Breaker *b, double window, int min_requests, double threshold, double cooldown,
                  double cooldown_max, double now)
{
    *b = (Breaker){0};
    b->window = window > 0 && isfinite(window) ? window : DEFAULT_WINDOW;
    b->min_requests = min_requests >= 1 ? min_requests : 1;
    b->threshold = threshold > 0 ? (threshold < 1 ? threshold : 1) : 1; /* NaN: 1 */
    b->cooldown = cooldown >= MIN_COOLDOWN ? cooldown : MIN_COOLDOWN;
    b->cooldown_max = cooldown_max >= b->cooldown ? cooldown_max : b->cooldown;
    b->state = BR_CLOSED;
    b->open_for = b->cooldown;
    b->epoch = -INFINITY;
    b->origin = now;
    b->unreachable_run = BREAKER_UNREACHABLE_RUN;
}

void breaker_set_unreachable_run(Breaker *b, int n)
{
    b->unreachable_run = n > 0 ? n : 0;
}

/* Move the ring up to the bucket holding `now`, clearing the buckets it passes. A clock
 * that went backwards leaves it where it is (the outcome counts in the newest bucket). */
static void advance(Breaker *b, double now)
{
    double n = floor((now - b->origin) / bucket_len(b));
    if (!(n > (double)b->bucket))
        return; /* same bucket, earlier clock, or NaN */
    if (n - (double)b->bucket >= BREAKER_BUCKETS) {
        clear_history(b);
        b->bucket = n < 9e18 ? (long long)n : (long long)9e18; /* a clock centuries away */
        return;
    }
    while (b->bucket < (long long)n) {
        b->bucket++;
        int i = (int)(b->bucket % BREAKER_BUCKETS);
        b->ok[i] = b->err[i] = 0;
    }
}

static void open_now(Breaker *b, double now)
{
    b->state = BR_OPEN;
    b->opened_at = now;
    b->run = 0;
    clear_history(b);
}

bool breaker_allow(Breaker *b, double now)
{
    switch (b->state) {
    case BR_CLOSED:
        return true;
    case BR_OPEN:
        if (now < b->opened_at)
            b->opened_at = now; /* the clock went back: the cool-down counts from here */
        if (left_until(b->opened_at + b->open_for, now) > 0)
            return false;
        b->state = BR_HALF_OPEN;
        b->probe_at = now;
        return true;
    case BR_HALF_OPEN:
        if (now < b->probe_at)
            b->probe_at = now; /* likewise; the probe's own `sent` is still >= it */
        if (left_until(b->probe_at + b->cooldown_max, now) > 0)
            return false;
        b->probe_at = now; /* the probe is lost: let another one go */
        return true;
    }
    return false;
}

/* Closed: the run of unreachable failures. Returns whether it opens the breaker. */
static bool run_opens(Breaker *b, BreakerOutcome o, double sent)
{
    if (o == BO_UNREACHABLE) {
        if (b->run == 0)
            b->run_sent = sent;
        if (b->run < 0x7fffffff)
            b->run++;
        return b->unreachable_run > 0 && b->run >= b->unreachable_run;
    }
    if (o != BO_LOST && b->run > 0 && !(sent < b->run_sent))
        b->run = 0; /* an answer to a request sent since the run began: it is reachable */
    return false;
}

/* Closed: count the outcome and open when the run or the window says so. */
static void record_closed(Breaker *b, BreakerOutcome o, double sent, double now)
{
    bool ok = o == BO_OK;
    if (run_opens(b, o, sent)) {
        b->open_for = b->cooldown;
        open_now(b, now);
        return;
    }
    advance(b, now);
    int i = (int)(b->bucket % BREAKER_BUCKETS);
    unsigned *slot = ok ? &b->ok[i] : &b->err[i];
    if (*slot < 0x7fffffffu)
        (*slot)++;
    if (ok)
        return;
    double good = 0, bad = 0;
    for (int k = 0; k < BREAKER_BUCKETS; k++) {
        good += b->ok[k];
        bad += b->err[k];
    }
    /* Division rather than threshold * total: 3 / 10 meets a threshold of 0.3, whereas
     * 0.3 * 10 rounds up past 3. */
    if (good + bad >= b->min_requests && bad / (good + bad) >= b->threshold) {
        b->open_for = b->cooldown;
        open_now(b, now);
    }
}

void breaker_record(Breaker *b, bool ok, double sent, double now)
{
    breaker_record_outcome(b, ok ? BO_OK : BO_LOST, sent, now);
}

void breaker_record_outcome(Breaker *b, BreakerOutcome o, double sent, double now)
{
    bool ok = o == BO_OK;
    switch (b->state) {
    case BR_CLOSED:
        if (now < b->epoch)
            b->epoch = -INFINITY; /* the clock went back past the close: count everything */
        if (!(sent < b->epoch))
            record_closed(b, o, sent, now);
        return;
    case BR_OPEN:
        return; /* late answers to requests from before it opened */
    case BR_HALF_OPEN:
        if (sent < b->probe_at)
            return; /* not the probe: a late answer from before */
        if (ok) {
            b->state = BR_CLOSED;
            b->open_for = b->cooldown;
            b->epoch = b->probe_at;
            b->run = 0;
            clear_history(b);
        } else {
            b->open_for = fmin(2 * b->open_for, b->cooldown_max);
            open_now(b, now);
        }
        return;
    }
}

double breaker_wait(const Breaker *b, double now)
{
    switch (b->state) {
    case BR_CLOSED:
        return 0;
    case BR_OPEN: /* a clock that went back counts from now, as in breaker_allow */
        return left_until(fmin(b->opened_at, now) + b->open_for, now);
    case BR_HALF_OPEN:
        return left_until(fmin(b->probe_at, now) + b->cooldown_max, now);
    }
    return 0;
}

int breaker_unreachable_run(const Breaker *b)
{
    return b->state == BR_CLOSED ? b->run : 0;
}

BreakerState breaker_state(const Breaker *b)
{
    return b->state;
}
