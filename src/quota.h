/* quota: a provider's announced quota (API.md section 5). The parsing of the RateLimit-*
 * (IETF httpapi draft) and X-RateLimit-* headers of an answer, and the pacing that makes
 * what is left of the quota last until its window resets. Pure: the clocks are arguments
 * (`now`: the loop's clock, any epoch; `wall`: Unix seconds, for reset timestamps). */
#ifndef PGENRICH_QUOTA_H
#define PGENRICH_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- the headers
 *
 * Read (names in any case):
 *   RateLimit-Limit: 100            requests per window; a list ("100, 100;w=60") gives
 *                                   its first number
 *   RateLimit-Remaining: 50         left in the current window
 *   RateLimit-Reset: 30             seconds until the window resets
 *   RateLimit: limit=100, remaining=50, reset=30     (draft -05/-06, one header)
 *   RateLimit: "default";r=50;t=30  (draft -07 on: r remaining, t seconds to reset)
 *   RateLimit-Policy: "default";q=100;w=60           (its q is the limit)
 *   X-RateLimit-Limit / -Remaining / -Reset          (Reset: delta seconds, or a Unix
 *                                   timestamp in seconds or milliseconds, told apart by
 *                                   magnitude)
 * A value is a plain decimal number (digits, an optional fraction): a sign, an exponent,
 * hex, inf or nan, or anything absurdly large leaves that field unset. */

#define QUOTA_LIMIT_MAX 1e12          /* requests per window */
#define QUOTA_RESET_MAX (2.0 * 86400) /* seconds to a reset: a window of up to a day... */
#define QUOTA_EPOCH_MIN 1e9           /* ...and a Reset this large is a timestamp */
#define QUOTA_EPOCH_MS  1e11          /* ...in milliseconds from here on */
#define QUOTA_SKEW_MAX  86400.0       /* a timestamp this far in the past is ignored */

enum { QH_LIMIT = 1, QH_REMAINING = 2, QH_RESET = 4 };

/* The fields of one form as read; `have` says which are set. */
typedef struct QuotaFields {
    unsigned char have;
    bool reset_whole; /* the Reset had no fraction */
    double limit, remaining, reset;
} QuotaFields;

/* What an answer's headers said. All zero: nothing. */
typedef struct QuotaHdr {
    QuotaFields ietf; /* RateLimit-*, RateLimit:, RateLimit-Policy: */
    QuotaFields x;    /* X-RateLimit-* */
} QuotaHdr;

/* Whether a raw header line (ptr[0..n), no NUL needed) may be a quota header: a test of
 * its first byte and length, for a header callback to call before quota_hdr_line. */
static inline bool quota_hdr_candidate(const char *p, size_t n)
{
    return n >= 10 && ((p[0] | 0x20) == 'r' || (p[0] | 0x20) == 'x');
}

/* Read one raw header line ("Name: value", CRLF or not; any bytes) into h. Returns
 * whether it was one of the quota headers above (a bad value still leaves its field
 * unset). A header that comes twice: the last one wins. */
bool quota_hdr_line(QuotaHdr *h, const char *line, size_t n);

/* Whether h holds anything at all. */
bool quota_hdr_any(const QuotaHdr *h);

typedef enum QuotaForm { QUOTA_FORM_IETF, QUOTA_FORM_X } QuotaForm;

/* An announcement, ready for the pacing. */
typedef struct QuotaAnn {
    QuotaForm form;
    double limit;     /* requests per window; 0 when not announced */
    double remaining; /* left in the window (at most limit when there is one) */
    double reset;     /* seconds from `wall` to the window's end, >= 0 */
    double grain;     /* the reset's resolution: 1 for whole seconds, else 0 */
    double epoch_end; /* a timestamp Reset: the window's end (Unix seconds); else 0 */
} QuotaAnn;

/* Turn h into an announcement as of wall (Unix seconds, when the answer arrived). The IETF
 * form wins when it has both Remaining and Reset; else the X form, with the same need.
 * Returns false (a leaves unspecified) when neither form has them, or the values do not
 * hold together (a timestamp over QUOTA_SKEW_MAX in the past, a reset beyond
 * QUOTA_RESET_MAX). */
bool quota_hdr_resolve(const QuotaHdr *h, double wall, QuotaAnn *a);

/* ---------------------------------------------------------------- the pacing
 *
 * Per provider. The server counts a request when it arrives and announces, on the answer,
 * what was left at that moment; the answer comes back later, and with many requests in
 * flight on many connections answers come out of order. So each request gets a sequence
 * number when it is sent, and an announcement read from the answer to request k says
 * "Remaining, less the requests sent after k" of now (the server had not seen those yet).
 * An answer to an older request than the freshest one applied can only lower that
 * estimate (a stale Remaining is higher, not news); a fresher one replaces it.
 *
 * The window's end is known within bounds: a whole-second Reset d read from an answer
 * whose request left at `sent` and came back at `now` puts it in (sent + d - 1, now + d]
 * (servers round the seconds left up, as for Retry-After); a timestamp puts it at one
 * point. The bounds tighten answer by answer, to about a round trip once the seconds have
 * ticked. Pacing spreads what is left, less a reserve (QUOTA_RESERVE_MIN +
 * QUOTA_RESERVE_SHARE of the limit), evenly up to the late bound, through a bucket of at
 * most QUOTA_BURST seconds of that rate (never more than what is left).
 *
 * At the late bound the window has surely ended: the next one starts with the whole
 * limit, less the requests sent since the early bound (they may have landed in either
 * window), and ends one window length later (the longest Reset seen in the last two
 * windows); answers to requests sent before that take no part in its count. An answer
 * says a new window began before that when its bounds lie past the current ones, when its
 * timestamp is a later one, or when its Remaining jumps up by more than QUOTA_JUMP of the
 * limit (the only sign with one-second windows, whose Reset is always 1): the window that
 * ended did so between the freshest answer's request and this one.
 *
 * A premature reset (a request sent after the clock started a window that the server
 * still counted in the old one: a Reset rounded down, or a timestamp from a server clock
 * behind ours) moves every later reset, up to QUOTA_SHIFT_MAX: by a second for whole
 * seconds, by what the answer showed for a timestamp. Whatever else goes wrong (a bogus
 * Reset, a window that changed length), QUOTA_DISAGREE answers in a row to requests sent
 * in the current window that the server counted in an earlier one make the last of them
 * the truth.
 *
 * Until a provider's first answer, nothing is known: at most QUOTA_FIRST_INFLIGHT
 * requests go before it, for at most QUOTA_FIRST_WAIT seconds, so that a first burst at
 * full concurrency cannot spend a small quota. A provider that gives QUOTA_FORGET answers
 * in a row without an announcement goes back to plain requests. */

#define QUOTA_RESERVE_MIN    1.0   /* requests kept back per window... */
#define QUOTA_RESERVE_SHARE  0.005 /* ...plus this share of the limit */
#define QUOTA_BURST          0.02  /* seconds of the paced rate that may go at once */
#define QUOTA_JUMP           0.25  /* a Remaining this share of the limit above the estimate */
#define QUOTA_SHIFT_MAX      2.0   /* seconds: the most the resets may be moved by */
#define QUOTA_SHIFT_PAD      0.005 /* seconds added to a shift past what was seen */
#define QUOTA_FIRST_INFLIGHT 8
#define QUOTA_FIRST_WAIT     0.5
#define QUOTA_FORGET         32
#define QUOTA_DISAGREE       16   /* such answers in a row: believe the last one */
#define QUOTA_RING           4096 /* send times kept, to count the requests since a time */

typedef struct Quota {
    bool on;                    /* pacing by announcements at all (--quota-headers) */
    bool known;                 /* an announced quota is being paced */
    bool answered;              /* an answer came (the first-answer hold is over) */
    double first_send;          /* clock of the first request; < 0: none yet */
    unsigned silent;            /* answers in a row without an announcement */
    QuotaForm form;             /* of the last announcement */
    double limit;               /* requests per window (announced, or the largest Remaining seen) */
    double win_cur, win_prev;   /* the longest Reset seen in this window and the one before:
                                   the window's length, as far as it shows */
    double lo, hi;              /* bounds on the current window's end */
    double prev_lo, prev_hi;    /* and on the one before */
    double left;                /* requests estimated left in it, our sends counted */
    uint64_t sent;              /* requests sent: the last sequence number given */
    uint64_t fresh;             /* the freshest answer applied to this window's count... */
    double fresh_sent;          /* ...and when its request left */
    uint64_t start_seq;         /* answers to requests numbered below this one take no part in
                                   this window's count */
    double epoch_end;           /* timestamp form: the end of the last window announced */
    double shift;               /* seconds every reset is moved by (learned) */
    bool rolled;                /* the current window was started by the clock, not an answer */
    double since;               /* when the current window was started (either way) */
    unsigned disagree;          /* answers in a row to requests sent since then that the server
                                   counted in an earlier window */
    double tokens, last;        /* the pacing bucket */
    double rate;                /* the paced rate of the last quota_wait (requests/s) */
    double announced;           /* the last Remaining announced */
    double share;               /* --shared: this worker's share of the quota (1: all of it) */
    double sent_at[QUOTA_RING]; /* when request n left, at n % QUOTA_RING */
} Quota;

/* What an answer changed, for the caller to tell. */
typedef enum QuotaEvent {
    QUOTA_EV_NONE,
    QUOTA_EV_FIRST,  /* a quota is paced from now on (the first announcement, or again) */
    QUOTA_EV_GONE,   /* the provider stopped announcing: plain requests again */
    QUOTA_EV_SHIFTED /* a premature reset: q->shift grew */
} QuotaEvent;

/* A provider with nothing known yet; on = false: never paces, never holds. */
void quota_init(Quota *q, bool on, double now);

/* A request to the provider is sent at now. Returns its sequence number, for
 * quota_on_answer. */
uint64_t quota_on_send(Quota *q, double now);

/* An HTTP answer to the request numbered seq (sent at sent_at) arrived at now, with the
 * announcement a, or NULL when it had none. A caller that does not know the number may
 * pass quota_seq_guess. */
QuotaEvent quota_on_answer(Quota *q, const QuotaAnn *a, uint64_t seq, double sent_at, double now);

/* The sequence number of the oldest of the last `in_flight` requests sent: for an answer
 * whose own number was not kept (the others in flight left after it). */
uint64_t quota_seq_guess(const Quota *q, size_t in_flight);

/* Seconds from now until the next request to the provider may go (0: now), given its
 * requests in flight. Moves to the next window when the current one has surely ended. */
double quota_wait(Quota *q, double now, size_t in_flight);

/* --shared (README "One rate for all"): the quota is the key's, and every worker reads the
 * same Remaining: each paces at its share of it (1 / live workers). A share outside (0, 1]
 * (or NaN) is taken as 1. */
void quota_set_share(Quota *q, double share);

/* Whether a 429 with announcement a (NULL: none) is the announced quota being spent (its
 * Remaining is 0): the pacing answers it, not the adaptive rate. */
bool quota_explains_429(const Quota *q, const QuotaAnn *a);

/* For the metrics: the requests estimated left now (>= 0), and the paced rate of the last
 * quota_wait (requests/s). Meaningful while q->known. */
double quota_left(const Quota *q);
double quota_rate(const Quota *q);

#endif
