/* ratelimit: token bucket on a caller-supplied clock. The bucket is refilled lazily from
 * the time elapsed since the last refill, so no timer is needed to keep it up to date. */
#include "ratelimit.h"

#include <float.h>
#include <limits.h>
#include <math.h>

/* Tolerance, in seconds, under which a token counts as already available. It keeps
 * floating-point rounding from turning "wait w, then take" into a take that fails by a
 * hair and a follow-up wait too small to move the clock. It grows with the magnitude of
 * the clock (an epoch clock near 1.7e9 s has an ulp of about 2.4e-7 s). */
static double rl_slack(double now)
{
    double rel = fabs(now) * 8 * DBL_EPSILON;
    return rel > 1e-9 ? rel : 1e-9;
}

static bool rl_unlimited(const RateLimit *rl)
{
    return !(rl->rate > 0); /* also catches NaN */
}

/* Tokens the bucket holds at `now` without changing it. */
static double rl_tokens_at(const RateLimit *rl, double now)
{
    double elapsed = now - rl->last;
    if (!(elapsed > 0))
        return rl->tokens; /* backwards or standing clock: nothing earned */
    double t = rl->tokens + elapsed * rl->rate;
    return t < rl->burst ? t : rl->burst;
}

/* Bring the bucket up to `now`. A clock that went backwards earns nothing; the bucket
 * then counts from the new value, so a step back delays at most one token interval
 * instead of stalling until the clock catches up again. */
static void rl_refill(RateLimit *rl, double now)
{
    rl->tokens = rl_tokens_at(rl, now);
    rl->last = now;
}

void rl_init(RateLimit *rl, double rate, double burst, double now)
{
    rl->rate = rate;
    rl->burst = burst >= 1 ? burst : 1; /* NaN lands on 1 too */
    rl->tokens = rl->burst;
    rl->last = now;
}

/* Seconds until a bucket holding `tokens` at `now` has a whole token. */
static double rl_wait_for(const RateLimit *rl, double tokens, double now)
{
    double deficit = 1 - tokens;
    if (deficit <= 0)
        return 0;
    double w = deficit / rl->rate;
    return w > rl_slack(now) ? w : 0;
}

double rl_wait(const RateLimit *rl, double now)
{
    if (rl_unlimited(rl))
        return 0;
    return rl_wait_for(rl, rl_tokens_at(rl, now), now);
}

bool rl_take(RateLimit *rl, double now)
{
    if (rl_unlimited(rl))
        return true;
    /* Refill even when the take fails, so that a clock that stepped back re-anchors. */
    rl_refill(rl, now);
    if (rl_wait_for(rl, rl->tokens, now) > 0)
        return false;
    /* Within the slack this can leave a tiny debt, which the next refill repays. */
    rl->tokens -= 1;
    return true;
}

void rl_set_rate(RateLimit *rl, double rate, double now)
{
    /* Settle what the old rate earned up to now, then accrue at the new one. */
    if (!rl_unlimited(rl))
        rl_refill(rl, now);
    else
        rl->last = now;
    if (rl->tokens > rl->burst)
        rl->tokens = rl->burst;
    rl->rate = rate;
}

/* ---------------------------------------------------------------- adaptive rate (AIMD) */

void aimd_init(Aimd *a, double ceiling, double now)
{
    *a = (Aimd){0};
    a->ceiling = ceiling > 0 ? ceiling : 0; /* NaN lands on 0 */
    a->floor = a->ceiling > 0 && a->ceiling < AIMD_FLOOR ? a->ceiling : AIMD_FLOOR;
    a->rate = a->ceiling;
    a->last_cut = -INFINITY;
    a->last_step = now;
    a->origin = now;
}

double aimd_rate(const Aimd *a)
{
    return a->rate;
}

/* Move the meter up to the slot holding `now`, clearing the slots it passes. Slot numbers
 * count from the clock at init, so rounding does not pile up as time goes by. A clock that
 * went backwards leaves the meter where it is (the answer counts in the newest slot). */
static void aimd_advance(Aimd *a, double now)
{
    double n = floor((now - a->origin) / AIMD_SLOT);
    if (!(n > (double)a->slot))
        return; /* same slot, earlier clock, or NaN */
    if (n - (double)a->slot >= AIMD_SLOTS) {
        for (int i = 0; i < AIMD_SLOTS; i++)
            a->ok[i] = a->all[i] = 0;
        a->slot = n < 9e18 ? (long long)n : (long long)9e18; /* a clock centuries away */
        return;
    }
    while (a->slot < (long long)n) {
        a->slot++;
        int i = (int)(a->slot % AIMD_SLOTS);
        a->ok[i] = a->all[i] = 0;
    }
}

static void aimd_count(Aimd *a, bool ok, double now)
{
    aimd_advance(a, now);
    int i = (int)(a->slot % AIMD_SLOTS);
    if (a->answers == 0)
        a->first = now;
    if (a->answers < AIMD_MIN_ANSWERS)
        a->answers++;
    if (a->all[i] == UINT_MAX)
        return; /* saturated: billions of answers in a tenth of a second is not a rate */
    a->all[i]++;
    if (ok)
        a->ok[i]++;
}

/* Answers per second over the slots of the last second that saw any answer: slots in which
 * nothing came back (a pause, an idle job) are left out rather than counted as zero. The
 * newest slot counts for the time it has run, and the whole span for at least one slot, so
 * that the first burst of answers of a job is not taken for a rate. *all_rate gets the
 * same for all answers. */
static double aimd_accepted(const Aimd *a, double now, double *all_rate)
{
    double ok = 0, all = 0, span = 0;
    int newest = (int)(a->slot % AIMD_SLOTS);
    for (int i = 0; i < AIMD_SLOTS; i++) {
        if (a->all[i] == 0)
            continue;
        ok += a->ok[i];
        all += a->all[i];
        if (i != newest)
            span += AIMD_SLOT;
        else
            span += fmax(0, now - (a->origin + (double)a->slot * AIMD_SLOT));
    }
    if (!(span >= AIMD_SLOT))
        span = AIMD_SLOT;
    *all_rate = all / span;
    return ok / span;
}

static double aimd_clamp(const Aimd *a, double rate)
{
    if (!(rate >= a->floor)) /* NaN too */
        rate = a->floor;
    if (a->ceiling > 0 && rate > a->ceiling)
        rate = a->ceiling;
    return rate;
}

double aimd_on_throttle(Aimd *a, double sent, double now)
{
    aimd_count(a, false, now);
    bool seasoned = a->answers >= AIMD_MIN_ANSWERS && now - a->first >= AIMD_WARMUP;
    bool held = now - a->last_cut < AIMD_HOLD && !(a->provisional && seasoned);
    if (sent < a->last_cut || held)
        return a->rate;
    double base = a->rate;
    if (seasoned) {
        double all_rate;
        double accepted = aimd_accepted(a, now, &all_rate);
        /* Nothing accepted at all lately: fall back to what was answered, so that a
         * provider refusing everything is backed off from gradually, not to the floor. */
        double seen = accepted > 0 ? accepted : all_rate;
        if (!(base > 0) || seen < base)
            base = seen;
    } else if (!(base > 0)) {
        /* No limit yet and a short history. With too few answers there is nothing to
         * measure: wait. With enough of them (a concurrent job gets them within one round
         * trip), cut provisionally from the meter, whose span of at least one slot keeps
         * the first burst from reading as a huge rate: waiting for the warm-up instead lets
         * the whole opening burst run into 429s. */
        if (a->answers < AIMD_MIN_ANSWERS)
            return a->rate;
        double all_rate;
        double accepted = aimd_accepted(a, now, &all_rate);
        base = accepted > 0 ? accepted : all_rate;
    }
    a->provisional = !seasoned;
    a->knee = base;
    a->rate = aimd_clamp(a, AIMD_DECREASE * base);
    a->last_cut = now;
    a->last_step = now;
    return a->rate;
}

/* Climb from `rate` for `dt` seconds: linear at AIMD_CLIMB * knee per second up to the
 * knee, then the excess x above it follows dx/dt = AIMD_CLIMB * knee + AIMD_PROBE * x,
 * solved exactly so that the result does not depend on how often answers arrive. */
static double aimd_climb(double rate, double knee, double dt)
{
    double lin = AIMD_CLIMB * knee;
    if (rate < knee) {
        double need = (knee - rate) / lin;
        if (dt <= need)
            return rate + lin * dt;
        rate = knee;
        dt -= need;
    }
    double c = lin / AIMD_PROBE;
    return knee + (rate - knee + c) * exp(AIMD_PROBE * dt) - c;
}

double aimd_on_success(Aimd *a, double now)
{
    aimd_count(a, true, now);
    double dt = now - a->last_step;
    if (!(dt > 0)) {
        if (dt < 0)
            a->last_step = now; /* the clock went back: count from here */
        return a->rate;
    }
    a->last_step = now;
    if (!(a->rate > 0) || !(a->knee > 0))
        return a->rate; /* no limit, or at the ceiling having never been cut */
    if (dt > AIMD_STEP_MAX)
        dt = AIMD_STEP_MAX;
    double rate = aimd_clamp(a, aimd_climb(a->rate, a->knee, dt));
    if (a->ceiling <= 0 && rate >= AIMD_RELEASE * a->knee) {
        double all_rate;
        (void)aimd_accepted(a, now, &all_rate);
        if (all_rate < AIMD_SLACK * rate)
            rate = 0; /* the limit no longer binds: drop it */
    }
    a->rate = rate;
    return rate;
}
