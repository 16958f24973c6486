/* ratelimit: a token bucket on a caller-supplied clock (seconds, any epoch), so that
 * it can be driven by the event loop and tested without sleeping; and Aimd, the adaptive
 * rate that a job's 429s cut and its healthy answers raise again, which feeds the bucket. */
#ifndef PGENRICH_RATELIMIT_H
#define PGENRICH_RATELIMIT_H

#include <stdbool.h>

typedef struct RateLimit {
    double rate;   /* tokens per second; <= 0 means no limit */
    double burst;  /* bucket size (>= 1) */
    double tokens; /* tokens available at time `last` */
    double last;   /* clock value of the last refill */
} RateLimit;

/* A full bucket of `burst` tokens (burst < 1 is taken as 1) refilled at `rate`/s.
 * rate <= 0: every take succeeds. */
void rl_init(RateLimit *rl, double rate, double burst, double now);

/* Take one token if one is available at `now`; returns whether it did.
 * A clock that goes backwards is treated as not moving: the step back earns nothing,
 * and the bucket then counts from the earlier value (it refills even when the take
 * fails), so a wall clock set back by an hour delays at most one token interval
 * rather than stalling for the hour. */
bool rl_take(RateLimit *rl, double now);

/* Seconds from `now` until a whole token will be available (0 if one is now, or
 * 0 when rate <= 0). Calling rl_take at now + rl_wait() succeeds: a deficit below the
 * clock's rounding (1e-9 s, or 8 * DBL_EPSILON * |now| if larger) counts as available, so
 * "wait, then take" never spins on floating-point crumbs. */
double rl_wait(const RateLimit *rl, double now);

/* Change the rate from `now` on, keeping the tokens earned so far (capped at burst).
 * Leaving the unlimited mode (old rate <= 0) keeps the bucket's tokens as they were
 * and credits nothing for the unlimited stretch. */
void rl_set_rate(RateLimit *rl, double rate, double now);

/* ---------------------------------------------------------------- adaptive rate (AIMD)
 *
 * A 429 cuts the job's rate (multiplicative decrease); healthy answers raise it again
 * (additive increase) up to the ceiling (--rate). Under a provider that enforces R
 * requests/s the limit settles in a sawtooth around R: each cut lands at
 * AIMD_DECREASE times the rate the provider actually accepted over the last second, and
 * the limit takes about (1 - AIMD_DECREASE) / AIMD_CLIMB = 10 seconds to climb back.
 *
 * The cut is taken from the accepted rate, not only from the current limit, because the
 * limit may be far above what the job really sends (no --rate, or bound by concurrency):
 * cutting an unlimited or idle limit would change nothing. The controller measures that
 * rate itself from the answers it is told about, over the last second of time in which
 * answers arrived (quiet stretches such as a Retry-After pause do not water it down).
 * That measure needs some history: the first answers of a job come back together (its
 * first round of requests left together), and how many of such a batch a provider takes
 * says little about its rate. Until the job has had AIMD_MIN_ANSWERS answers over at
 * least AIMD_WARMUP seconds, a 429 cuts from the current limit, and that cut holds only
 * until the history is there (then the next 429 cuts from the measure); a job without a
 * limit does not cut before that. So a job whose first answers happen to be 429s is not
 * set to a few requests per second, and one far above the provider's rate does not wait
 * a whole hold once the measure is good.
 *
 * Below the knee (the rate the last cut was taken from, i.e. what the provider refused)
 * the climb is linear, AIMD_CLIMB * knee per second; above it the excess grows by
 * AIMD_PROBE per second, so a provider that raised its limit is found in seconds rather
 * than minutes. The climb is driven by healthy answers and counts at most AIMD_STEP_MAX
 * seconds between two of them, so an idle job does not wake up with a high limit.
 * Without a ceiling, the limit is dropped (rate 0 = none, until the next 429) once it has
 * climbed to AIMD_RELEASE times the knee and no longer binds: answers come back at less
 * than AIMD_SLACK times the limit, because concurrency or the supply of IDs holds the job
 * back. Dropping a limit that still binds would let the job send in bursts as fast as
 * concurrency allows, which is what got it throttled in the first place. */

#define AIMD_FLOOR       1.0  /* requests/s: no cut goes below this (nor below the ceiling) */
#define AIMD_DECREASE    0.8  /* a cut sets the limit to this share of the accepted rate */
#define AIMD_CLIMB       0.02 /* below the knee: per second, the limit gains this share of it */
#define AIMD_PROBE       0.3  /* above the knee: per second, the excess grows by this share */
#define AIMD_HOLD        1.0  /* seconds: at most one cut per hold (one overload = one cut) */
#define AIMD_STEP_MAX    1.0  /* seconds: the most climbing time one healthy answer may add */
#define AIMD_RELEASE     4.0  /* no ceiling: no limit once above this multiple of the knee... */
#define AIMD_SLACK       0.5  /* ...and answers come at less than this share of the limit */
#define AIMD_MIN_ANSWERS 20   /* the accepted rate is trusted after this many answers... */
#define AIMD_WARMUP      0.1  /* ...over at least this many seconds */
#define AIMD_SLOTS       10   /* the accepted-rate meter: AIMD_SLOTS slots of AIMD_SLOT s */
#define AIMD_SLOT        0.1

typedef struct Aimd {
    double ceiling;   /* --rate; 0 = none */
    double floor;     /* min(AIMD_FLOOR, ceiling) */
    double rate;      /* the limit to apply; 0 = none */
    double knee;      /* what the last cut was taken from; 0 before the first cut */
    double last_cut;  /* clock of the last cut; -INFINITY before the first */
    double last_step; /* clock up to which the climb has been counted */
    unsigned answers; /* answers seen since init, up to AIMD_MIN_ANSWERS */
    double first;     /* clock of the first answer */
    bool provisional; /* the last cut was made before the measure could be trusted */
    /* answers per slot over the last AIMD_SLOTS slots, a ring indexed by slot number */
    unsigned ok[AIMD_SLOTS];  /* healthy answers */
    unsigned all[AIMD_SLOTS]; /* healthy answers and 429s */
    double origin;            /* clock at init: slot n covers origin + n * AIMD_SLOT */
    long long slot;           /* number of the newest slot */
} Aimd;

/* A controller at its ceiling: rate = ceiling (> 0: --rate) or 0 (none: no limit until
 * the first 429). A negative or NaN ceiling counts as none. */
void aimd_init(Aimd *a, double ceiling, double now);

/* A 429 arrived at `now` for a request sent at `sent`. Returns the limit to apply from
 * now on (> 0 after any cut; unchanged when this 429 does not cut). It cuts at most once
 * per AIMD_HOLD (see above for a job's first answers), and never for a request sent
 * before the last cut: the 429s of requests that were already on their way belong to the
 * overload that was already answered. A caller that does not know when the request was
 * sent may pass `now` (then only the hold applies). The cut sets the limit to
 * AIMD_DECREASE times the smaller of the current limit and the accepted rate (healthy
 * answers/s lately; if there were none, all answers/s), kept within [floor, ceiling].
 * Call it also for a 429 that carries a Retry-After: the pause is the caller's, the cut
 * is this. */
double aimd_on_throttle(Aimd *a, double sent, double now);

/* A healthy answer arrived: any complete answer from the provider other than 429 (200,
 * 404, 4xx...); not 5xx or transport failures, which are the breaker's business. Returns
 * the limit to apply: it climbs as described above, never above the ceiling, and turns
 * to 0 (no limit) without a ceiling as described above. */
double aimd_on_success(Aimd *a, double now);

/* The current limit (requests/s); 0 = none. Same value the last call returned. */
double aimd_rate(const Aimd *a);

#endif
