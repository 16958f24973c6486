/* retry: what to do with an answer (classification per API.md), exponential backoff
 * with full jitter, and Retry-After parsing. Pure: the clock and randomness are inputs. */
#ifndef PGENRICH_RETRY_H
#define PGENRICH_RETRY_H

#include <stdbool.h>
#include "compat.h"

/* How a request ended below HTTP. */
typedef enum TransportErr {
    TE_NONE = 0,  /* a complete HTTP answer arrived */
    TE_TIMEOUT,   /* no complete answer within the timeout */
    TE_CONNECT,   /* connection refused or could not be made */
    TE_RESET,     /* connection reset or closed before a complete answer */
    TE_TRUNCATED, /* body shorter than announced */
    TE_TOO_LARGE, /* body over the size cap (a bad response, not transient) */
    TE_OTHER      /* any other transport failure; treated as transient */
} TransportErr;

typedef enum RetryAction {
    RA_PARSE, /* 200: hand the body to the mapper */
    RA_FAIL,  /* final failure for this ID; *reason says which */
    RA_RETRY, /* transient: retry after a backoff if attempts remain */
    RA_FATAL, /* credentials refused: stop the whole job */
} RetryAction;

/* Failure reasons as stored in enrich_failures.reason. */
#define REASON_NOT_FOUND    "not_found"
#define REASON_REJECTED     "rejected"
#define REASON_NO_LOCATION  "no_location"
#define REASON_BAD_RESPONSE "bad_response"
#define REASON_EXHAUSTED    "attempts_exhausted"
#define REASON_FORBIDDEN    "forbidden"  /* 403 for this ID while others succeed */
#define REASON_UNLOADABLE   "unloadable" /* the database refused the row or failure line */

/* Classify an answer. `status` is the HTTP status (ignored unless terr == TE_NONE).
 * On RA_FAIL, *reason is set to one of the REASON_* strings (static storage); for the
 * other actions it is set to NULL. reason may be NULL.
 * 200 -> RA_PARSE; 404 -> not_found; 400/410/422 and other 4xx -> rejected;
 * 401 -> RA_FATAL; 403 -> forbidden (refused for this ID: the caller decides when a run
 * of them means the credentials); 408, 429, 5xx (500-599) and transport errors -> RA_RETRY;
 * TE_TOO_LARGE -> bad_response; anything else (1xx, 3xx, 2xx other than 200) -> bad_response. */
RetryAction retry_classify(TransportErr terr, long status, const char **reason);

/* Backoff before attempt number `attempts + 1`, given `attempts` (>= 1) already made:
 * full jitter, u01 * min(cap, base * 2^(attempts - 1)), with u01 in [0, 1). Seconds.
 * The power is capped before it is computed, so any attempts (up to INT_MAX) is safe;
 * attempts < 1 counts as 1, u01 outside [0, 1) is clamped into it, and a base or cap
 * that is not positive (or NaN) gives 0. The result is never negative, never above cap. */
double retry_backoff(int attempts, double base, double cap, double u01);

/* Parse a Retry-After header value: delta-seconds ("120") or an HTTP-date
 * ("Wed, 21 Oct 2015 07:28:00 GMT", also the RFC 850 and asctime forms).
 * now_unix is the current time as Unix seconds. On success stores the delay in
 * seconds (never negative; a date in the past gives 0) and returns true.
 * Surrounding spaces, tabs, CR and LF are ignored. delta-seconds is digits only (no
 * sign, fraction or exponent). A delay over one day, from either form, is clamped to
 * one day (86400 s). Day and month names match without regard to case; "GMT" must be
 * exact. An RFC 850 two-digit year is the nearest year not more than 50 years after
 * now_unix's. Returns false, leaving *seconds untouched, for anything else (empty,
 * junk, impossible dates) and for a non-finite now_unix. Locale-independent. */
bool retry_after_parse(const char *value, double now_unix, double *seconds) WUR;

#endif
