/* quota: announced quotas. The header parser takes raw lines as libcurl hands them over and
 * keeps numbers only; the pacing turns announcements into a per-provider gate (see
 * quota.h for the reasoning). */
#include "quota.h"

#include <math.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- the headers */

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* A plain decimal number at [*p, end): digits, then an optional fraction. On success *p
 * is moved past it and *whole says whether there was no fraction. Refuses a sign, an
 * exponent, hex, inf/nan (none starts with a digit or is followed by one of ours), and
 * values over 1e15. */
static bool parse_num(const char **p, const char *end, double *out, bool *whole)
{
    const char *s = *p;
    double v = 0;
    int digits = 0;
    if (s >= end || *s < '0' || *s > '9')
        return false;
    while (s < end && *s >= '0' && *s <= '9') {
        if (++digits > 15)
            return false;
        v = v * 10 + (*s++ - '0');
    }
    *whole = true;
    if (s < end && *s == '.') {
        double scale = 0.1;
        s++;
        *whole = false;
        while (s < end && *s >= '0' && *s <= '9') {
            v += (*s++ - '0') * scale;
            scale /= 10;
        }
    }
    /* What may follow a number: the end, a space, or a list or parameter separator. */
    if (s < end && !is_space(*s) && *s != ',' && *s != ';')
        return false;
    *out = v;
    *p = s;
    return true;
}

/* A value that is one number, maybe followed by list members or parameters
 * ("100", "100, 100;w=60", "100;w=60"): its first number. */
static bool first_num(const char *v, const char *end, double *out, bool *whole)
{
    return parse_num(&v, end, out, whole);
}

static void set_field(QuotaFields *f, unsigned bit, double v, bool whole)
{
    f->have |= (unsigned char)bit;
    if (bit == QH_LIMIT)
        f->limit = v;
    else if (bit == QH_REMAINING)
        f->remaining = v;
    else {
        f->reset = v;
        f->reset_whole = whole;
    }
}

/* key=value parameters of a structured header, separated by ',' or ';' (RateLimit:, or
 * with `policy` RateLimit-Policy:, whose q is the limit). For each of the fields, the first
 * key that names it wins: with several policies listed, the first one's. */
static void parse_params(QuotaFields *f, const char *v, const char *end, bool policy)
{
    unsigned char done = 0;
    while (v < end) {
        while (v < end && (is_space(*v) || *v == ',' || *v == ';'))
            v++;
        const char *k = v;
        while (v < end && *v != '=' && *v != ',' && *v != ';')
            v++;
        size_t kl = (size_t)(v - k);
        while (kl > 0 && is_space(k[kl - 1]))
            kl--;
        if (v >= end || *v != '=') {
            /* "100;w=60" (an old RateLimit-Policy): a bare number first is the limit */
            double n;
            bool whole;
            if (policy && !(done & QH_LIMIT) && first_num(k, end, &n, &whole)) {
                set_field(f, QH_LIMIT, n, whole);
                done |= QH_LIMIT;
            }
            continue;
        }
        v++;
        while (v < end && is_space(*v))
            v++;
        unsigned bit = 0;
        if (policy) {
            if (kl == 1 && (k[0] | 0x20) == 'q')
                bit = QH_LIMIT;
        } else if ((kl == 5 && strncasecmp(k, "limit", 5) == 0)) {
            bit = QH_LIMIT;
        } else if ((kl == 9 && strncasecmp(k, "remaining", 9) == 0) ||
                   (kl == 1 && (k[0] | 0x20) == 'r')) {
            bit = QH_REMAINING;
        } else if ((kl == 5 && strncasecmp(k, "reset", 5) == 0) ||
                   (kl == 1 && (k[0] | 0x20) == 't')) {
            bit = QH_RESET;
        }
        double n;
        bool whole;
        const char *num = v;
        if (bit && !(done & bit) && parse_num(&num, end, &n, &whole)) {
            set_field(f, bit, n, whole);
            done |= (unsigned char)bit;
        }
        while (v < end && *v != ',' && *v != ';')
            v++;
    }
}

bool quota_hdr_line(QuotaHdr *h, const char *line, size_t n)
{
    const char *end = line + n;
    const char *colon = memchr(line, ':', n);
    if (colon == NULL)
        return false;
    size_t nl = (size_t)(colon - line);
    const char *name = line;
    QuotaFields *f = &h->ietf;
    if (nl > 2 && (name[0] | 0x20) == 'x' && name[1] == '-') {
        f = &h->x;
        name += 2;
        nl -= 2;
    }
    if (nl < 9 || strncasecmp(name, "ratelimit", 9) != 0)
        return false;
    const char *v = colon + 1;
    while (v < end && is_space(*v))
        v++;
    while (end > v && (is_space(end[-1]) || end[-1] == '\r' || end[-1] == '\n'))
        end--;
    const char *rest = name + 9;
    size_t rl = nl - 9;
    unsigned bit = 0;
    if (rl == 0 || (rl == 7 && strncasecmp(rest, "-policy", 7) == 0)) {
        if (f == &h->x)
            return false; /* no X- form of these */
        parse_params(f, v, end, rl != 0);
        return true;
    }
    if (rl == 6 && strncasecmp(rest, "-limit", 6) == 0)
        bit = QH_LIMIT;
    else if (rl == 10 && strncasecmp(rest, "-remaining", 10) == 0)
        bit = QH_REMAINING;
    else if (rl == 6 && strncasecmp(rest, "-reset", 6) == 0)
        bit = QH_RESET;
    else
        return false;
    double num;
    bool whole;
    if (first_num(v, end, &num, &whole))
        set_field(f, bit, num, whole);
    else
        f->have &= (unsigned char)~bit; /* the last one wins, a bad one too */
    return true;
}

bool quota_hdr_any(const QuotaHdr *h)
{
    return h->ietf.have != 0 || h->x.have != 0;
}

bool quota_hdr_resolve(const QuotaHdr *h, double wall, QuotaAnn *a)
{
    const unsigned need = QH_REMAINING | QH_RESET;
    const QuotaFields *f;
    if ((h->ietf.have & need) == need) {
        f = &h->ietf;
        a->form = QUOTA_FORM_IETF;
    } else if ((h->x.have & need) == need) {
        f = &h->x;
        a->form = QUOTA_FORM_X;
    } else {
        return false;
    }
    if (!isfinite(wall) || f->remaining > QUOTA_LIMIT_MAX)
        return false;
    a->limit =
        (f->have & QH_LIMIT) && f->limit >= 1 && f->limit <= QUOTA_LIMIT_MAX ? floor(f->limit) : 0;
    a->remaining = floor(f->remaining);
    if (a->limit > 0 && a->remaining > a->limit)
        a->remaining = a->limit;
    double r = f->reset;
    a->epoch_end = 0;
    a->grain = f->reset_whole ? 1 : 0;
    if (r >= QUOTA_EPOCH_MIN) { /* a timestamp: seconds, or milliseconds */
        double e = r >= QUOTA_EPOCH_MS ? r / 1000 : r;
        if (e < wall - QUOTA_SKEW_MAX)
            return false;
        a->epoch_end = e;
        a->grain = 0; /* the end itself, not a count of seconds rounded */
        r = e > wall ? e - wall : 0;
    }
    if (!(r <= QUOTA_RESET_MAX))
        return false;
    a->reset = r;
    return true;
}

/* ---------------------------------------------------------------- the pacing */

void quota_init(Quota *q, bool on, double now)
{
    memset(q, 0, sizeof *q);
    q->on = on;
    q->first_send = -1;
    q->last = now;
    q->share = 1;
}

void quota_set_share(Quota *q, double share)
{
    q->share = share > 0 && share <= 1 ? share : 1;
}

static double reserve(const Quota *q)
{
    return QUOTA_RESERVE_MIN + QUOTA_RESERVE_SHARE * q->limit;
}

static double win_len(const Quota *q)
{
    double len = fmax(q->win_cur, q->win_prev);
    return len > 0 ? len : 1.0;
}

/* Requests sent after time x (those further back than the ring counted as before it). */
static uint64_t sends_after(const Quota *q, double x)
{
    uint64_t n = q->sent < QUOTA_RING ? q->sent : QUOTA_RING;
    uint64_t lo = 0, hi = n; /* the newest `lo` requests left after x */
    while (lo < hi) {
        uint64_t mid = (lo + hi + 1) / 2;
        if (q->sent_at[(q->sent - mid + 1) % QUOTA_RING] > x)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Start a window with bounds [lo, hi] and `left` requests, at now. */
static void begin(Quota *q, double lo, double hi, double left, double now)
{
    q->prev_lo = q->lo;
    q->prev_hi = q->hi;
    q->lo = lo;
    q->hi = hi;
    q->left = left;
    q->since = now;
    q->disagree = 0;
}

/* The current window has surely ended by now: the next one, with the whole limit less the
 * requests that may have landed in it already. */
static void roll(Quota *q, double now)
{
    if (!q->known || now < q->hi)
        return;
    double len = win_len(q);
    double n = floor((now - q->hi) / len) + 1; /* windows passed, >= 1 */
    double since_lo = n < 2 ? (double)sends_after(q, q->lo) : 0;
    begin(q, q->lo + n * len, q->hi + n * len, q->limit - since_lo, now);
    q->rolled = true;
    q->fresh = q->sent; /* answers to requests sent from now on are news */
    q->start_seq = q->sent + 1;
    q->win_prev = len;
    q->win_cur = 0;
    if (q->tokens > 1)
        q->tokens = 1;
}

/* Start the window an answer to request seq (arrived at now) speaks of. */
static void adopt(Quota *q, const QuotaAnn *a, double lo, double hi, double est, uint64_t seq,
                  double sent_at, double now)
{
    begin(q, lo, hi, est, now);
    q->rolled = false;
    q->fresh = seq;
    q->fresh_sent = sent_at;
    q->start_seq = seq; /* sent before it: counted in either window */
    if (q->win_cur > 0) /* a window the clock started has seen no Reset yet: keep */
        q->win_prev = q->win_cur;
    q->win_cur = a->reset;
    if (a->epoch_end > 0)
        q->epoch_end = a->epoch_end;
}

uint64_t quota_on_send(Quota *q, double now)
{
    if (q->first_send < 0)
        q->first_send = now;
    if (q->known) {
        roll(q, now);
        q->left -= 1;
        q->tokens -= 1;
    }
    q->sent++;
    q->sent_at[q->sent % QUOTA_RING] = now;
    return q->sent;
}

uint64_t quota_seq_guess(const Quota *q, size_t in_flight)
{
    if (in_flight == 0)
        return q->sent;
    return q->sent >= in_flight ? q->sent - in_flight + 1 : 0;
}

/* A premature reset: a request sent after the clock started the current window was still
 * counted in the previous one. Move every reset later and go back to the previous window,
 * now known to end after sent_at. */
static void unroll(Quota *q, const QuotaAnn *a, double est, uint64_t seq, double sent_at,
                   double now)
{
    /* A Reset of 0 whole seconds while the window still runs: the server rounds down, and
     * its ends are up to a second later than read, so a second more. Other whole seconds:
     * what this answer showed (a clock read late). A timestamp: the end is later than
     * this request's arrival, which was at most a round trip before now; a round trip past
     * now, then. */
    double add = a->grain > 0 && a->reset == 0 ? a->grain
                 : a->grain > 0                ? sent_at - q->prev_hi
                                               : (now - q->prev_hi) + (now - sent_at);
    add += QUOTA_SHIFT_PAD;
    if (q->shift + add > QUOTA_SHIFT_MAX)
        add = QUOTA_SHIFT_MAX - q->shift;
    q->shift += add;
    double hi = fmax(q->prev_hi + add, now + QUOTA_SHIFT_PAD);
    double lo = fmin(fmax(q->prev_lo + add, sent_at), hi);
    double len = win_len(q), before_lo = q->prev_lo, before_hi = q->prev_hi;
    adopt(q, a, lo, hi, est, seq, sent_at, now);
    q->prev_lo = before_lo; /* the window before stays the one before */
    q->prev_hi = before_hi;
    q->win_prev = len; /* the length the roll used still holds */
}

QuotaEvent quota_on_answer(Quota *q, const QuotaAnn *a, uint64_t seq, double sent_at, double now)
{
    q->answered = true;
    if (!q->on)
        return QUOTA_EV_NONE;
    if (a == NULL) {
        if (q->known && ++q->silent >= QUOTA_FORGET) {
            q->known = false;
            return QUOTA_EV_GONE;
        }
        return QUOTA_EV_NONE;
    }
    q->silent = 0;
    q->form = a->form;
    q->announced = a->remaining;
    if (seq > q->sent)
        seq = q->sent;
    if (!(sent_at <= now))
        sent_at = now;
    double est = a->remaining - (double)(q->sent - seq);
    /* When the server counted the request, t in [sent_at, now], the window had `reset`
     * seconds left, rounded up to the grain: its end lies in (t + reset - grain, t + reset]. */
    double hi_k = now + a->reset + q->shift;
    double lo_k = sent_at + a->reset - a->grain + q->shift;
    if (a->epoch_end > 0)
        lo_k = hi_k; /* a timestamp is the end itself */
    if (a->limit > 0)
        q->limit = a->limit;
    else if (a->remaining > q->limit)
        q->limit = a->remaining;

    if (!q->known) {
        q->known = true;
        q->tokens = 1;
        q->last = now;
        adopt(q, a, lo_k, hi_k, est, seq, sent_at, now);
        q->start_seq = 0;
        return QUOTA_EV_FIRST;
    }
    /* Which window the answer speaks of: an earlier one than the current (`prev`: the one
     * just before it), the current one, or a later one. Timestamps name their window: the
     * last one announced, or (when the clock has started the next one since) the one
     * before the current. Otherwise the bounds tell. */
    const double tol = 1e-3;
    bool later, older, prev;
    if (a->epoch_end > 0 && q->epoch_end > 0) {
        double d = a->epoch_end - q->epoch_end;
        later = d > 0.5;
        older = d < -0.5 || (q->rolled && !later);
        prev = q->rolled && !later && d >= -0.5;
    } else {
        later = lo_k > q->hi + tol;
        older = hi_k < q->lo - tol;
        prev = hi_k >= q->prev_lo - tol;
    }
    if (older) {
        if (sent_at < q->since)
            return QUOTA_EV_NONE; /* a stale answer from a window that is over */
        if (q->rolled && prev && q->shift < QUOTA_SHIFT_MAX) {
            unroll(q, a, est, seq, sent_at, now);
            return QUOTA_EV_SHIFTED;
        }
        if (++q->disagree >= QUOTA_DISAGREE)
            adopt(q, a, lo_k, hi_k, est, seq, sent_at, now);
        return QUOTA_EV_NONE;
    }
    q->disagree = 0;
    if (later) {
        /* Timestamps: consecutive windows' ends are one window apart (a step of several
         * windows, after a pause, is longer than the Resets seen). */
        double step = q->epoch_end > 0 ? a->epoch_end - q->epoch_end : 0;
        double len = fmax(win_len(q), a->reset);
        adopt(q, a, lo_k, hi_k, est, seq, sent_at, now);
        if (a->epoch_end > 0 && step > 0 && step < 1.5 * len)
            q->win_prev = step;
        return QUOTA_EV_NONE;
    }
    /* The same window, as far as the bounds tell: tighten them (if they no longer meet,
     * this answer's are the better guess). */
    double lo = fmax(q->lo, lo_k), hi = fmin(q->hi, hi_k);
    if (lo > hi) {
        lo = lo_k;
        hi = hi_k;
    }
    if (seq < q->start_seq) {
        q->lo = lo;
        q->hi = hi;
        return QUOTA_EV_NONE; /* counted in this window or the one before: unknown */
    }
    if (seq > q->fresh && est > q->left + fmax(2 * reserve(q), QUOTA_JUMP * q->limit)) {
        /* Remaining jumped: a window ended between the freshest answer's request and this
         * answer, and the new one ends a window length after that. */
        double len = win_len(q);
        double nlo = fmax(lo_k, q->fresh_sent + len), nhi = fmin(hi_k, now + len);
        if (nlo > nhi) {
            nlo = lo_k;
            nhi = hi_k;
        }
        adopt(q, a, nlo, nhi, est, seq, sent_at, now);
        return QUOTA_EV_NONE;
    }
    q->lo = lo;
    q->hi = hi;
    if (a->reset > q->win_cur)
        q->win_cur = a->reset; /* at a window's start, Reset is the window's length */
    if (a->epoch_end > 0)
        q->epoch_end = a->epoch_end;
    if (seq > q->fresh) {
        q->left = est;
        q->fresh = seq;
        q->fresh_sent = sent_at;
    } else if (est < q->left) {
        q->left = est;
    }
    return QUOTA_EV_NONE;
}

double quota_wait(Quota *q, double now, size_t in_flight)
{
    if (!q->on)
        return 0;
    if (!q->known) {
        q->rate = 0;
        if (!q->answered && q->first_send >= 0 && in_flight >= QUOTA_FIRST_INFLIGHT) {
            double w = q->first_send + QUOTA_FIRST_WAIT - now;
            return w > 0 ? w : 0;
        }
        return 0;
    }
    roll(q, now);
    double span = q->hi - now; /* > 0 after roll */
    double avail = q->left - reserve(q);
    if (avail < 1) {
        q->rate = 0;
        q->last = now;
        if (q->tokens > 0)
            q->tokens = 0;
        return span;
    }
    q->rate = avail / span * q->share;
    double cap = fmin(fmax(1, q->rate * QUOTA_BURST), avail);
    if (now > q->last)
        q->tokens += (now - q->last) * q->rate;
    q->last = now;
    if (q->tokens > cap)
        q->tokens = cap;
    if (q->tokens >= 1 - 1e-9)
        return 0;
    double w = (1 - q->tokens) / q->rate;
    return w < span ? w : span;
}

bool quota_explains_429(const Quota *q, const QuotaAnn *a)
{
    return q->on && q->known && a != NULL && a->remaining < 1;
}

double quota_left(const Quota *q)
{
    return q->left > 0 ? q->left : 0;
}

double quota_rate(const Quota *q)
{
    return q->rate;
}
