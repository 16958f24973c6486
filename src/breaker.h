/* breaker: a per-provider circuit breaker on a caller-supplied clock. It watches the
 * recent outcomes of a provider's requests; when the error share over a sliding window
 * crosses a threshold it opens (the provider is paused), after a cool-down it lets one
 * probe through (half-open), and the probe's outcome closes it or opens it again with a
 * longer cool-down. Pure: no I/O, time is an argument (seconds, any epoch). A clock that
 * steps back restarts a pause from the earlier time instead of stretching it. */
#ifndef PGENRICH_BREAKER_H
#define PGENRICH_BREAKER_H

#include <stdbool.h>

typedef enum BreakerState {
    BR_CLOSED,   /* requests go */
    BR_OPEN,     /* paused until the cool-down has passed */
    BR_HALF_OPEN /* one probe is out; nothing else goes until its outcome is recorded */
} BreakerState;

#define BREAKER_BUCKETS 10 /* the window is kept as this many time buckets */

typedef struct Breaker {
    /* settings */
    double window;       /* seconds of history that count (e.g. 10) */
    int min_requests;    /* no opening on fewer outcomes than this in the window (e.g. 20) */
    double threshold;    /* error share in (0, 1] that opens it (e.g. 0.5) */
    double cooldown;     /* first open period in seconds (e.g. 1); doubles per failed probe */
    double cooldown_max; /* cap on the open period (e.g. 60); also how long a probe may stay
                            out before it counts as lost */
    /* state */
    BreakerState state;
    double opened_at; /* open: when it opened */
    double open_for;  /* the current cool-down */
    double probe_at;  /* half-open: when the probe was let through */
    double epoch;     /* closed: outcomes of requests sent before this are stale */
    /* outcomes per time bucket over the window: a ring indexed by bucket number, where
     * bucket n covers [origin + n * window / BREAKER_BUCKETS, ...) */
    unsigned ok[BREAKER_BUCKETS], err[BREAKER_BUCKETS];
    double origin;
    long long bucket; /* number of the newest bucket */
} Breaker;

/* Closed, with the given settings (see the fields for sensible values). Values out of
 * range are brought into it: window > 0 (else 10), min_requests >= 1, threshold into
 * (0, 1], cooldown >= 1 ms, cooldown_max >= cooldown. */
void breaker_init(Breaker *b, double window, int min_requests, double threshold, double cooldown,
                  double cooldown_max, double now);

/* May a request go to the provider now? Closed: yes. Open: no until the cool-down has
 * passed, then it turns half-open and says yes once (the probe). Half-open: no while the
 * probe is out; a probe whose outcome has not been recorded cooldown_max seconds after it
 * went counts as lost, and the next call lets another one through.
 * A yes in the open or half-open state is a promise to send the probe now: ask right
 * before sending (use breaker_wait to look without side effects), and pass the same
 * clock value as the request's `sent` to breaker_record. */
bool breaker_allow(Breaker *b, double now);

/* Record the outcome of a request sent at `sent` (the clock value when breaker_allow let it
 * through): ok = the provider answered sensibly (any final answer, including 404),
 * !ok = a transient failure (5xx, timeout, reset). 429s are the rate limiter's business
 * and should not be recorded.
 * Closed: the outcome counts in the window; a failure that brings the window to at least
 * min_requests outcomes with an error share >= threshold opens the breaker for the
 * current cool-down. Half-open: the outcome of the probe (sent at or after the moment it
 * was let through) closes the breaker on success, forgetting the window's history and
 * resetting the cool-down, or opens it again on failure with the cool-down doubled (up to
 * cooldown_max). Outcomes of requests sent before the breaker opened, or before the probe
 * that closed it, are stale and ignored, as is anything recorded while open. */
void breaker_record(Breaker *b, bool ok, double sent, double now);

/* Seconds until breaker_allow may say yes (0 if it would now). Closed: 0. Open: what is
 * left of the cool-down. Half-open: until the probe would count as lost (its outcome
 * usually comes first). Never negative. */
double breaker_wait(const Breaker *b, double now);

/* The state as left by the last breaker_allow or breaker_record: an open breaker whose
 * cool-down has passed reads BR_OPEN until breaker_allow lets the probe through. */
BreakerState breaker_state(const Breaker *b);

#endif
