/* ratelimit: a token bucket on a caller-supplied clock (seconds, any epoch), so that
 * it can be driven by the event loop and tested without sleeping; and Knee, the adaptive
 * rate that finds a provider's unannounced limit from its 429s and healthy answers and
 * feeds the bucket. */
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

/* Take n tokens (n >= 1) when one is available at `now`, as rl_take would: the bucket may
 * go into debt, which holds every later take back until it is repaid. For a call that
 * carries n units of what the rate meters (a batch of n IDs when the provider meters
 * IDs), so a batch need not fit in the burst and the long-run rate stays `rate`. */
bool rl_take_n(RateLimit *rl, double n, double now);

/* Seconds from `now` until a whole token will be available (0 if one is now, or
 * 0 when rate <= 0). Calling rl_take at now + rl_wait() succeeds: a deficit below the
 * clock's rounding (1e-9 s, or 8 * DBL_EPSILON * |now| if larger) counts as available, so
 * "wait, then take" never spins on floating-point crumbs. */
double rl_wait(const RateLimit *rl, double now);

/* Change the rate from `now` on, keeping the tokens earned so far (capped at burst).
 * Leaving the unlimited mode (old rate <= 0) keeps the bucket's tokens as they were
 * and credits nothing for the unlimited stretch. */
void rl_set_rate(RateLimit *rl, double rate, double now);

/* The bucket size a limit of `rate` requests/s gets: `burst` when it is >= 1 (the
 * --burst setting), else max(1, rate / 20), about 50 ms of requests at once. Over any
 * stretch of T seconds a bucket sends at most rate * T + this many requests. */
double rl_burst_for(double rate, double burst);

/* ---------------------------------------------------------------- adaptive rate (Knee)
 *
 * A provider that enforces R requests/s without announcing it (a token bucket: it takes
 * R/s and a burst, and answers 429 to the rest) is found by its knee: the rate past which
 * it refuses. The controller measures it rather than guessing it, the way TCP BBR measures
 * a path's bandwidth: hold the job just under the knee, probe above it now and then, and
 * measure again whenever the provider pushes back.
 *
 * The measure. While a provider refuses part of what it gets, its bucket is empty and
 * what it accepts is R itself, whatever the job sends. The controller meters the answers
 * it is told about in KNEE_SLOTS slots of KNEE_SLOT seconds; a slot with a 429 whose
 * previous slot had one too is saturated (the first slot of an overload is left out: it
 * still holds what the bucket had in store). Healthy answers per second over at least
 * KNEE_SAT_SLOTS saturated slots of the last second are the knee, to a few percent.
 *
 * A cut. A 429 for a request sent after the last cut, at least KNEE_HOLD after it, sets
 * the limit to
 *   - KNEE_MARGIN below the measured knee, when there is a measure (above);
 *   - else KNEE_CUT below what the job was getting through: the smaller of the rate it
 *     sent at (its limit, or the answers/s when the limit does not bind) and the accepted
 *     rate (healthy answers/s over the busy slots of the last second). When that small cut
 *     does not end the overload, the 429s go on and the next one measures; when it does,
 *     the job is within KNEE_CUT of the knee anyway.
 *   - A job's first answers come back together (its first round of requests left
 *     together) and say little about a rate: until there are KNEE_MIN_ANSWERS of them, a
 *     429 without a limit waits, and one with a limit cuts from it; until the answers span
 *     KNEE_SEASONED seconds, the cut is KNEE_FIRST_CUT below the rate sent at (the few
 *     accepted tell nothing). Either way the knee is only tentative (below).
 * A 429 that cuts nothing (within the hold, or for a request sent before the cut) leaves
 * the limit: the requests already on their way belong to the overload just answered.
 *
 * The climb. After a cut with a measured knee, the limit holds KNEE_CRUISE seconds, then
 * probes: its excess over the held rate starts at KNEE_PROBE_SLOPE * knee per second and
 * grows by KNEE_PROBE_GROWTH per second, so that it passes the knee within a few seconds,
 * drains what the provider's bucket saved meanwhile, and meets the 429 that measures
 * again (a cheap one: the first 429 ends the probe). After a tentative cut (a job's first
 * answers) it climbs at once and doubles every KNEE_FAST_DOUBLE seconds, since that first
 * cut may be far below the knee; meanwhile the accepted rate is a floor for the knee. A
 * probe that gets KNEE_STALE times the knee through without a 429 means the knee has moved
 * up (the provider raised its limit, or shares it with fewer clients): the climb goes on
 * doubling from there.
 * The climb is driven by healthy answers and counts at most KNEE_STEP_MAX seconds between
 * two of them, so an idle job does not wake up with a high limit.
 *
 * Without a ceiling (--rate), the limit is dropped (rate 0 = none, until the next 429)
 * once it has climbed to KNEE_RELEASE times the knee and no longer binds: answers come
 * back at less than KNEE_SLACK times the limit, because concurrency or the supply of IDs
 * holds the job back. While doubling, the answers lag the limit by a round trip (a factor
 * of 2 a second), so that test would misread a long round trip: then the limit is dropped
 * only once it is KNEE_RELEASE_FAST times the accepted rate. Dropping a limit that still
 * binds would let the job send in bursts as fast as concurrency allows, which is what got
 * it throttled in the first place. */

#define KNEE_FLOOR        1.0  /* requests/s: no cut goes below this (nor below the ceiling) */
#define KNEE_MARGIN       0.03 /* held this share below a measured knee */
#define KNEE_CUT          0.02 /* without a measure, a cut lands this share below the rate */
#define KNEE_FIRST_CUT    0.3  /* ...or this share, while the answers are too few or too new */
#define KNEE_HOLD         0.2  /* seconds: at most one cut per hold */
#define KNEE_CRUISE       2.0  /* seconds held at the cut rate before probing */
#define KNEE_PROBE_SLOPE  0.01 /* per second: the probe's first excess, a share of the knee */
#define KNEE_PROBE_GROWTH 0.3  /* per second: how fast the probe's excess grows */
#define KNEE_FAST_DOUBLE  1.0  /* seconds: a tentative knee's climb doubles in this time */
#define KNEE_STALE        1.25 /* a probe this far above the knee without a 429: it moved */
#define KNEE_STEP_MAX     1.0  /* seconds: the most climbing time one healthy answer may add */
#define KNEE_RELEASE      4.0  /* no ceiling: no limit once above this multiple of the knee... */
#define KNEE_SLACK        0.5  /* ...and answers come at less than this share of the limit */
#define KNEE_RELEASE_FAST 64.0 /* ...or, doubling, once this far above what got through */
#define KNEE_MIN_ANSWERS  20   /* a cut without a limit waits for this many answers... */
#define KNEE_SEASONED     0.5  /* ...and is tentative while they span less than this (s) */
#define KNEE_SAT_SLOTS    3    /* saturated slots a measure needs */
#define KNEE_SLOTS        10   /* the meter: KNEE_SLOTS slots of KNEE_SLOT s */
#define KNEE_SLOT         0.1

typedef struct Knee {
    double ceiling;   /* --rate; 0 = none */
    double floor;     /* min(KNEE_FLOOR, ceiling) */
    double rate;      /* the limit to apply; 0 = none */
    double knee;      /* the provider's rate as last measured or estimated; 0 = not yet */
    bool measured;    /* the knee comes from a measure or a seasoned cut (else tentative) */
    double held;      /* the rate the last cut (or re-basing) set, where the climb starts */
    double climbed;   /* climbing seconds counted since then */
    double last_cut;  /* clock of the last cut; -INFINITY before the first */
    double last_step; /* clock up to which the climb has been counted */
    unsigned answers; /* answers seen since init, up to KNEE_MIN_ANSWERS */
    double first;     /* clock of the first answer */
    /* answers per slot over the last KNEE_SLOTS slots, a ring indexed by slot number */
    unsigned ok[KNEE_SLOTS];  /* healthy answers */
    unsigned all[KNEE_SLOTS]; /* healthy answers and 429s */
    double origin;            /* clock at init: slot n covers origin + n * KNEE_SLOT */
    long long slot;           /* number of the newest slot */
} Knee;

/* A controller at its ceiling: rate = ceiling (> 0: --rate) or 0 (none: no limit until
 * the first 429). A negative or NaN ceiling counts as none. */
void knee_init(Knee *k, double ceiling, double now);

/* A 429 arrived at `now` for a request sent at `sent`. Returns the limit to apply from
 * now on (> 0 after any cut; unchanged when this 429 does not cut): see above. A caller
 * that does not know when the request was sent may pass `now` (then only the hold
 * applies). Call it also for a 429 that carries a Retry-After: the wait before that
 * request's retry is the caller's, the job's rate is this. */
double knee_on_throttle(Knee *k, double sent, double now);

/* A healthy answer arrived: any complete answer from the provider other than 429 (200,
 * 404, 4xx...); not 5xx or transport failures, which are the breaker's business. Returns
 * the limit to apply: it climbs as described above, never above the ceiling, and turns
 * to 0 (no limit) without a ceiling as described above. */
double knee_on_success(Knee *k, double now);

/* The current limit (requests/s); 0 = none. Same value the last call returned. */
double knee_rate(const Knee *k);

/* --shared (README "One rate for all"): the job's --rate divided among its live workers.
 * A new ceiling (> 0; anything else leaves k as it is): a limit at the old ceiling (never
 * cut, or climbed back) moves to the new one; a cut limit stays, capped at the new
 * ceiling, and climbs to it. Returns the limit to apply. */
double knee_set_ceiling(Knee *k, double ceiling, double now);

/* --shared: another worker cut the job's rate, and this worker's share of the job-wide
 * estimate it published is `share` requests/s. A limit already at or below the share (no
 * limit counts as above it) stays; else the limit is cut to the share as a measured cut
 * is: the knee is share / (1 - KNEE_MARGIN), the limit cruises there, then probes; the
 * hold applies from now, so that the 429s of requests sent before it cut nothing more.
 * share <= 0 or NaN leaves k as it is. Returns the limit to apply. */
double knee_take_share(Knee *k, double share, double now);

#endif
