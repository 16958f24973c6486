/* breaker: a per-provider circuit breaker on a caller-supplied clock. It watches the
 * recent outcomes of a provider's requests; when the error share over a sliding window
 * crosses a threshold it opens (the provider is paused), after a cool-down it lets one
 * probe through (half-open), and the probe's outcome closes it or opens it again with a
 * longer cool-down. Apart from the window, a run of requests in a row that never reached the
 * provider (refused, could not connect) opens it at once: a provider that was healthy and
 * went down would otherwise be asked on until its earlier answers leave the window.
 * Pure: no I/O, time is an argument (seconds, any epoch). A clock that steps back restarts
 * a pause from the earlier time instead of stretching it. */
#ifndef PGENRICH_BREAKER_H
#define PGENRICH_BREAKER_H

#include <stdbool.h>

typedef enum BreakerState {
    BR_CLOSED,   /* requests go */
    BR_OPEN,     /* paused until the cool-down has passed */
    BR_HALF_OPEN /* one probe is out; nothing else goes until its outcome is recorded */
} BreakerState;

#define BREAKER_BUCKETS 10 /* the window is kept as this many time buckets */

/* Unreachable failures in a row, with no answer between them, that open a closed breaker
 * whatever the window holds (breaker_set_unreachable_run changes it). */
#define BREAKER_UNREACHABLE_RUN 5

/* How a request sent to the provider ended, for breaker_record_outcome. */
typedef enum BreakerOutcome {
    BO_OK,         /* a sensible answer (any final one, including 404) */
    BO_ERROR,      /* an error answer (5xx, 408): the provider is reachable but failing */
    BO_LOST,       /* no answer, though it may have reached the provider (reset, timeout) */
    BO_UNREACHABLE /* it never reached the provider: refused, could not connect, a connect
                      timeout */
} BreakerOutcome;

typedef struct Breaker {
    /* settings */
    double window;       /* seconds of history that count (e.g. 10) */
    int min_requests;    /* no opening on fewer outcomes than this in the window (e.g. 20) */
    double threshold;    /* error share in (0, 1] that opens it (e.g. 0.5) */
    double cooldown;     /* first open period in seconds (e.g. 1); doubles per failed probe */
    double cooldown_max; /* cap on the open period (e.g. 60); also how long a probe may stay
                            out before it counts as lost */
    int unreachable_run; /* unreachable failures in a row that open it (0: the rule is off) */
    /* state */
    BreakerState state;
    double opened_at; /* open: when it opened */
    double open_for;  /* the current cool-down */
    double probe_at;  /* half-open: when the probe was let through */
    double epoch;     /* closed: outcomes of requests sent before this are stale */
    int run;          /* closed: unreachable failures in a row since the last answer */
    double run_sent;  /* closed, run > 0: when the run's first failure was sent */
    /* outcomes per time bucket over the window: a ring indexed by bucket number, where
     * bucket n covers [origin + n * window / BREAKER_BUCKETS, ...) */
    unsigned ok[BREAKER_BUCKETS], err[BREAKER_BUCKETS];
    double origin;
    long long bucket; /* number of the newest bucket */
} Breaker;

/* Closed, with the given settings (see the fields for sensible values). Values out of
 * range are brought into it: window > 0 (else 10), min_requests >= 1, threshold into
 * (0, 1], cooldown >= 1 ms, cooldown_max >= cooldown. The run of unreachable failures
 * that opens it is BREAKER_UNREACHABLE_RUN. */
void breaker_init(Breaker *b, double window, int min_requests, double threshold, double cooldown,
                  double cooldown_max, double now);

/* How many unreachable failures in a row open it; 0 or less turns that rule off (0). */
void breaker_set_unreachable_run(Breaker *b, int n);

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
 * that closed it, are stale and ignored, as is anything recorded while open.
 * The same as breaker_record_outcome with BO_OK or BO_LOST. */
void breaker_record(Breaker *b, bool ok, double sent, double now);

/* Record an outcome, finer than breaker_record: BO_OK counts as a success, the others as
 * failures, in the window and for the probe as above. In the closed state, besides:
 * BO_UNREACHABLE adds to the run of unreachable failures (the run starts with the first
 * one recorded after an answer, and remembers when that one was sent), and the run's
 * unreachable_run-th failure opens the breaker at once, whatever the window holds; an
 * answer (BO_OK or BO_ERROR) to a request sent at or after the run's first failure ends
 * the run, while answers to requests sent before it (in flight before the outage) and
 * BO_LOST leave it as it is. Opening, or closing after a probe, ends the run too. */
void breaker_record_outcome(Breaker *b, BreakerOutcome o, double sent, double now);

/* The current run of unreachable failures (0 when there is none or it is not closed). */
int breaker_unreachable_run(const Breaker *b);

/* Seconds until breaker_allow may say yes (0 if it would now). Closed: 0. Open: what is
 * left of the cool-down. Half-open: until the probe would count as lost (its outcome
 * usually comes first). Never negative. */
double breaker_wait(const Breaker *b, double now);

/* The state as left by the last breaker_allow or breaker_record: an open breaker whose
 * cool-down has passed reads BR_OPEN until breaker_allow lets the probe through. */
BreakerState breaker_state(const Breaker *b);

#endif
