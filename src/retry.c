/* retry: classification of an answer, exponential backoff with full jitter, and a
 * hand-written, locale-independent Retry-After parser (delta-seconds and the three
 * HTTP-date forms of RFC 9110 section 5.6.7). */
#include "retry.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Longest delay Retry-After may ask for; anything larger (or a date further out) is
 * clamped to it, so a broken or hostile server cannot park the job for years. */
#define RETRY_AFTER_MAX 86400.0

RetryAction retry_classify(TransportErr terr, long status, const char **reason)
{
    const char *why = NULL;
    RetryAction act;

    if (terr == TE_TOO_LARGE) {
        act = RA_FAIL;
        why = REASON_BAD_RESPONSE;
    } else if (terr != TE_NONE) {
        act = RA_RETRY; /* timeouts, refused, reset, truncated, other: transient */
    } else if (status == 200) {
        act = RA_PARSE;
    } else if (status == 401) {
        act = RA_FATAL;
    } else if (status == 403) {
        act = RA_FAIL; /* this ID; many in a row mean the key (the scheduler counts them) */
        why = REASON_FORBIDDEN;
    } else if (status == 408 || status == 429 || (status >= 500 && status <= 599)) {
        act = RA_RETRY; /* 408: the server gave up waiting on us; try again */
    } else if (status == 404) {
        act = RA_FAIL;
        why = REASON_NOT_FOUND;
    } else if (status >= 400 && status <= 499) {
        act = RA_FAIL;
        why = REASON_REJECTED;
    } else {
        act = RA_FAIL; /* 1xx, 3xx, 2xx other than 200, nonsense */
        why = REASON_BAD_RESPONSE;
    }
    if (reason != NULL)
        *reason = why;
    return act;
}

double retry_backoff(int attempts, double base, double cap, double u01)
{
    if (!(base > 0) || !(cap > 0) || !(u01 > 0))
        return 0; /* also NaN */
    if (u01 >= 1)
        u01 = nextafter(1.0, 0.0);
    int doublings = attempts > 1 ? attempts - 1 : 0;
    /* Cap the exponent before scaling: 2^1023 is the last finite power, and well before
     * that any sane base has passed any sane cap. */
    double ceiling = cap;
    if (doublings < 1000) {
        double grown = ldexp(base, doublings);
        if (grown < cap)
            ceiling = grown;
    }
    return u01 * ceiling;
}

/* ---- Retry-After ---- */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Whether [p, p + n) equals word, ASCII case-insensitively. */
static bool word_eq(const char *p, size_t n, const char *word)
{
    if (strlen(word) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(p[i]) != ascii_lower(word[i]))
            return false;
    return true;
}

/* A cursor over the trimmed header value. */
typedef struct Scan {
    const char *p;
    const char *end;
} Scan;

static bool scan_lit(Scan *s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return false;
    s->p += n;
    return true;
}

/* Exactly `digits` decimal digits. */
static bool scan_num(Scan *s, int digits, int *out)
{
    if (s->end - s->p < digits)
        return false;
    int v = 0;
    for (int i = 0; i < digits; i++) {
        if (!is_digit(s->p[i]))
            return false;
        v = v * 10 + (s->p[i] - '0');
    }
    s->p += digits;
    *out = v;
    return true;
}

/* A run of letters, returned as [*start, *start + *n). */
static bool scan_word(Scan *s, const char **start, size_t *n)
{
    const char *q = s->p;
    while (q < s->end && ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z')))
        q++;
    if (q == s->p)
        return false;
    *start = s->p;
    *n = (size_t)(q - s->p);
    s->p = q;
    return true;
}

static const char *const short_days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const long_days[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static bool scan_day_name(Scan *s, const char *const *names)
{
    const char *w;
    size_t n;
    if (!scan_word(s, &w, &n))
        return false;
    for (int i = 0; i < 7; i++)
        if (word_eq(w, n, names[i]))
            return true;
    return false;
}

/* Month name to 1..12. */
static bool scan_month(Scan *s, int *mon)
{
    const char *w;
    size_t n;
    if (!scan_word(s, &w, &n))
        return false;
    for (int i = 0; i < 12; i++) {
        if (word_eq(w, n, months[i])) {
            *mon = i + 1;
            return true;
        }
    }
    return false;
}

/* "HH:MM:SS" */
static bool scan_time(Scan *s, int *h, int *m, int *sec)
{
    return scan_num(s, 2, h) && scan_lit(s, ":") && scan_num(s, 2, m) && scan_lit(s, ":") &&
           scan_num(s, 2, sec);
}

static bool is_leap(long y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(long y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return (m == 2 && is_leap(y)) ? 29 : dim[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static long days_from_civil(long y, int m, int d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long mp = (m + 9) % 12;
    long doy = (153 * mp + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The calendar year of a Unix time, for the two-digit years of RFC 850 dates. */
static long year_of(double unix_secs)
{
    /* Keep the conversion to long defined for any finite input (+-300,000 years). */
    if (unix_secs > 1e13)
        unix_secs = 1e13;
    if (unix_secs < -1e13)
        unix_secs = -1e13;
    long days = (long)floor(unix_secs / 86400.0);
    /* Inverse of days_from_civil, year part only. */
    long z = days + 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;
    long m = mp < 10 ? mp + 3 : mp - 9;
    return yoe + era * 400 + (m <= 2);
}

static bool civil_to_unix(long y, int mon, int d, int h, int mi, int sec, double *out)
{
    if (mon < 1 || mon > 12 || d < 1 || d > days_in_month(y, mon) || h > 23 || mi > 59 || sec > 60)
        return false;
    *out = (double)days_from_civil(y, mon, d) * 86400.0 + h * 3600.0 + mi * 60.0 + sec;
    return true;
}

/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
static bool parse_imf(Scan s, double *t)
{
    int d, mon, y, h, mi, sec;
    if (!(scan_day_name(&s, short_days) && scan_lit(&s, ", ") && scan_num(&s, 2, &d) &&
          scan_lit(&s, " ") && scan_month(&s, &mon) && scan_lit(&s, " ") && scan_num(&s, 4, &y) &&
          scan_lit(&s, " ") && scan_time(&s, &h, &mi, &sec) && scan_lit(&s, " GMT") &&
          s.p == s.end))
        return false;
    return civil_to_unix(y, mon, d, h, mi, sec, t);
}

/* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; a two-digit year more than 50 years
 * ahead of now means the most recent past year with those digits (RFC 9110). */
static bool parse_rfc850(Scan s, double now_unix, double *t)
{
    int d, mon, yy, h, mi, sec;
    if (!(scan_day_name(&s, long_days) && scan_lit(&s, ", ") && scan_num(&s, 2, &d) &&
          scan_lit(&s, "-") && scan_month(&s, &mon) && scan_lit(&s, "-") && scan_num(&s, 2, &yy) &&
          scan_lit(&s, " ") && scan_time(&s, &h, &mi, &sec) && scan_lit(&s, " GMT") &&
          s.p == s.end))
        return false;
    long now_year = year_of(now_unix);
    long y = now_year - now_year % 100 + yy;
    if (y > now_year + 50)
        y -= 100;
    return civil_to_unix(y, mon, d, h, mi, sec, t);
}

/* asctime: "Sun Nov  6 08:49:37 1994". The day is space-padded to two characters;
 * "06" and an unpadded "6" are accepted as well. */
static bool parse_asctime(Scan s, double *t)
{
    int d, mon, y, h, mi, sec;
    if (!(scan_day_name(&s, short_days) && scan_lit(&s, " ") && scan_month(&s, &mon) &&
          scan_lit(&s, " ")))
        return false;
    bool day_ok;
    if (scan_lit(&s, " "))
        day_ok = scan_num(&s, 1, &d);
    else
        day_ok = scan_num(&s, 2, &d) || scan_num(&s, 1, &d);
    if (!(day_ok && scan_lit(&s, " ") && scan_time(&s, &h, &mi, &sec) && scan_lit(&s, " ") &&
          scan_num(&s, 4, &y) && s.p == s.end))
        return false;
    return civil_to_unix(y, mon, d, h, mi, sec, t);
}

/* delta-seconds: one or more digits and nothing else. Huge values clamp rather than
 * overflow, so "99999999999999999999" is a (clamped) delay, not an error. */
static bool parse_delta(const char *p, const char *end, double *delay)
{
    double v = 0;
    for (const char *q = p; q < end; q++) {
        if (!is_digit(*q))
            return false;
        if (v <= RETRY_AFTER_MAX)
            v = v * 10 + (*q - '0');
    }
    *delay = v;
    return true;
}

bool retry_after_parse(const char *value, double now_unix, double *seconds)
{
    if (value == NULL || !isfinite(now_unix))
        return false;
    const char *p = value;
    const char *end = value + strlen(value);
    while (p < end && is_ows(*p))
        p++;
    while (end > p && is_ows(end[-1]))
        end--;
    if (p == end)
        return false;

    double delay;
    if (!parse_delta(p, end, &delay)) {
        Scan s = {p, end};
        double t;
        if (!parse_imf(s, &t) && !parse_rfc850(s, now_unix, &t) && !parse_asctime(s, &t))
            return false;
        delay = t - now_unix;
    }
    if (!(delay > 0))
        delay = 0;
    if (delay > RETRY_AFTER_MAX)
        delay = RETRY_AFTER_MAX;
    *seconds = delay;
    return true;
}
