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
    return rl_take_n(rl, 1, now);
}

bool rl_take_n(RateLimit *rl, double n, double now)
{
    if (rl_unlimited(rl))
        return true;
    /* Refill even when the take fails, so that a clock that stepped back re-anchors. */
    rl_refill(rl, now);
    if (rl_wait_for(rl, rl->tokens, now) > 0)
        return false;
    /* Within the slack (or for n > 1) this leaves a debt, which refills repay. */
    rl->tokens -= n >= 1 ? n : 1;
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

double rl_burst_for(double rate, double burst)
{
    if (burst >= 1)
        return burst;
    return rate / 20 > 1 ? rate / 20 : 1; /* NaN lands on 1 */
}

/* ---------------------------------------------------------------- adaptive rate (Knee) */

void knee_init(Knee *k, double ceiling, double now)
{
    *k = (Knee){0};
    k->ceiling = ceiling > 0 ? ceiling : 0; /* NaN lands on 0 */
    k->floor = k->ceiling > 0 && k->ceiling < KNEE_FLOOR ? k->ceiling : KNEE_FLOOR;
    k->rate = k->ceiling;
    k->last_cut = -INFINITY;
    k->last_step = now;
    k->origin = now;
}

double knee_rate(const Knee *k)
{
    return k->rate;
}

/* Move the meter up to the slot holding `now`, clearing the slots it passes. Slot numbers
 * count from the clock at init, so rounding does not pile up as time goes by. A clock that
 * went backwards leaves the meter where it is (the answer counts in the newest slot). */
static void knee_advance(Knee *k, double now)
{
    double n = floor((now - k->origin) / KNEE_SLOT);
    if (!(n > (double)k->slot))
        return; /* same slot, earlier clock, or NaN */
    if (n - (double)k->slot >= KNEE_SLOTS) {
        for (int i = 0; i < KNEE_SLOTS; i++)
            k->ok[i] = k->all[i] = 0;
        k->slot = n < 9e18 ? (long long)n : (long long)9e18; /* a clock centuries away */
        return;
    }
    while (k->slot < (long long)n) {
        k->slot++;
        int i = (int)(k->slot % KNEE_SLOTS);
        k->ok[i] = k->all[i] = 0;
    }
}

static void knee_count(Knee *k, bool ok, double now)
{
    knee_advance(k, now);
    int i = (int)(k->slot % KNEE_SLOTS);
    if (k->answers == 0)
        k->first = now;
    if (k->answers < KNEE_MIN_ANSWERS)
        k->answers++;
    if (k->all[i] == UINT_MAX)
        return; /* saturated: billions of answers in a tenth of a second is not a rate */
    k->all[i]++;
    if (ok)
        k->ok[i]++;
}

/* Answers per second over the slots of the last second that saw any answer: slots in which
 * nothing came back (a pause, an idle job) are left out rather than counted as zero. The
 * newest slot counts for the time it has run, and the whole span for at least one slot, so
 * that the first burst of answers of a job is not taken for a rate. Returns the healthy
 * answers/s; *all_rate gets the same for all answers. */
static double knee_accepted(const Knee *k, double now, double *all_rate)
{
    double ok = 0, all = 0, span = 0;
    int newest = (int)(k->slot % KNEE_SLOTS);
    for (int i = 0; i < KNEE_SLOTS; i++) {
        if (k->all[i] == 0)
            continue;
        ok += k->ok[i];
        all += k->all[i];
        if (i != newest)
            span += KNEE_SLOT;
        else
            span += fmax(0, now - (k->origin + (double)k->slot * KNEE_SLOT));
    }
    if (!(span >= KNEE_SLOT))
        span = KNEE_SLOT;
    *all_rate = all / span;
    return ok / span;
}

/* The measured knee: healthy answers per second over the saturated slots among the
 * completed ones of the meter (a slot with a 429 whose previous slot had one too). False
 * when fewer than KNEE_SAT_SLOTS are, or none of their answers was healthy. */
static bool knee_measure(const Knee *k, double *knee)
{
    unsigned n = 0;
    double ok = 0;
    /* slot s - 1 must still be in the ring: s >= newest - (KNEE_SLOTS - 2) */
    for (long long s = k->slot - (KNEE_SLOTS - 2); s < k->slot; s++) {
        if (s < 1)
            continue;
        int i = (int)(s % KNEE_SLOTS), p = (int)((s - 1) % KNEE_SLOTS);
        if (k->all[i] > k->ok[i] && k->all[p] > k->ok[p]) {
            n++;
            ok += k->ok[i];
        }
    }
    if (n < KNEE_SAT_SLOTS || !(ok > 0))
        return false;
    *knee = ok / (n * KNEE_SLOT);
    return true;
}

static double knee_clamp(const Knee *k, double rate)
{
    if (!(rate >= k->floor)) /* NaN too */
        rate = k->floor;
    if (k->ceiling > 0 && rate > k->ceiling)
        rate = k->ceiling;
    return rate;
}

/* Hold `rate` from now on and count the climb from here. */
static double knee_hold(Knee *k, double rate, double now)
{
    k->rate = knee_clamp(k, rate);
    k->held = k->rate;
    k->climbed = 0;
    k->last_step = now;
    return k->rate;
}

double knee_on_throttle(Knee *k, double sent, double now)
{
    knee_count(k, false, now);
    if (sent < k->last_cut || now - k->last_cut < KNEE_HOLD)
        return k->rate;
    bool limited = k->rate > 0;
    if (k->answers < KNEE_MIN_ANSWERS && !limited)
        return k->rate; /* no limit and nothing to measure yet: wait */
    double all_rate, accepted = knee_accepted(k, now, &all_rate);
    /* The rate the job was sending at: its limit, or less when the limit did not bind. */
    double sending = limited ? k->rate : all_rate;
    if (k->answers >= KNEE_MIN_ANSWERS && all_rate < sending)
        sending = all_rate;
    double measured;
    if (knee_measure(k, &measured) && (1 - KNEE_MARGIN) * measured < sending) {
        k->knee = measured;
        k->measured = true;
        k->last_cut = now;
        return knee_hold(k, (1 - KNEE_MARGIN) * measured, now);
    }
    bool seasoned = k->answers >= KNEE_MIN_ANSWERS && now - k->first >= KNEE_SEASONED;
    /* Seasoned: from the accepted rate when it is lower (and not nil: a provider that
     * accepts nothing at all is backed off from gradually). A job's first answers: from
     * what it sent, since the few it has say nothing of what the provider would take. */
    double base = seasoned && accepted > 0 && accepted < sending ? accepted : sending;
    double rate = (1 - (seasoned ? KNEE_CUT : KNEE_FIRST_CUT)) * base;
    k->knee = rate;
    k->measured = seasoned;
    k->last_cut = now;
    return knee_hold(k, rate, now);
}

/* The limit after `t` seconds of climbing from the held rate. */
static double knee_climb(const Knee *k, double t)
{
    if (!k->measured)
        return k->held * exp2(t / KNEE_FAST_DOUBLE);
    if (t <= KNEE_CRUISE)
        return k->held;
    const double g = KNEE_PROBE_GROWTH;
    return k->held + k->knee * KNEE_PROBE_SLOPE / g * expm1(g * (t - KNEE_CRUISE));
}

double knee_on_success(Knee *k, double now)
{
    knee_count(k, true, now);
    double dt = now - k->last_step;
    if (!(dt > 0)) {
        if (dt < 0)
            k->last_step = now; /* the clock went back: count from here */
        return k->rate;
    }
    k->last_step = now;
    if (!(k->rate > 0) || !(k->knee > 0))
        return k->rate; /* no limit, or at the ceiling having never been cut */
    if (k->ceiling > 0 && k->rate >= k->ceiling)
        return k->rate; /* nowhere to climb */
    k->climbed += dt < KNEE_STEP_MAX ? dt : KNEE_STEP_MAX;
    double rate = knee_clamp(k, knee_climb(k, k->climbed));
    double all_rate = 0, accepted = 0;
    if (!k->measured || rate >= KNEE_STALE * k->knee)
        accepted = knee_accepted(k, now, &all_rate);
    if (k->measured && rate >= KNEE_STALE * k->knee) {
        /* The probe went far past the knee without a 429: it has moved up. Climb on from
         * here, doubling. */
        k->measured = false;
        (void)knee_hold(k, rate, now);
    }
    if (!k->measured && accepted > k->knee)
        k->knee = accepted; /* what got through is a floor for the knee */
    /* Without a ceiling, drop a limit that no longer binds. While doubling, answers lag
     * the limit by a round trip (a factor 2 a second), so only a limit far above what got
     * through counts as not binding. */
    if (k->ceiling <= 0 &&
        (k->measured ? rate >= KNEE_RELEASE * k->knee && all_rate < KNEE_SLACK * rate
                     : rate >= KNEE_RELEASE_FAST * k->knee))
        rate = 0;
    k->rate = rate;
    return rate;
}

/* ---------------------------------------------------------------- shares (--shared) */

double knee_set_ceiling(Knee *k, double ceiling, double now)
{
    if (!(ceiling > 0))
        return k->rate;
    bool at_ceiling = !(k->rate > 0) || (k->ceiling > 0 && k->rate >= k->ceiling);
    k->ceiling = ceiling;
    k->floor = ceiling < KNEE_FLOOR ? ceiling : KNEE_FLOOR;
    if (at_ceiling) {
        k->rate = ceiling;
        return k->rate;
    }
    if (k->rate > ceiling)
        return knee_hold(k, ceiling, now);
    if (k->held > ceiling)
        k->held = ceiling;
    return k->rate;
}

double knee_take_share(Knee *k, double share, double now)
{
    if (!(share > 0))
        return k->rate;
    if (k->rate > 0 && k->rate <= share)
        return k->rate;
    k->knee = share / (1 - KNEE_MARGIN);
    k->measured = true;
    k->last_cut = now;
    return knee_hold(k, share, now);
}
