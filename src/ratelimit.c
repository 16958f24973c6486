/* ratelimit: token bucket on a caller-supplied clock. The bucket is refilled lazily from
 * the time elapsed since the last refill, so no timer is needed to keep it up to date. */
#include "ratelimit.h"

#include <float.h>
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
