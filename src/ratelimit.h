/* ratelimit: a token bucket on a caller-supplied clock (seconds, any epoch), so that
 * it can be driven by the event loop and tested without sleeping. */
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

#endif
