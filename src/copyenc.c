/* copyenc: PostgreSQL COPY text-format encoding of field values. Every call either
 * appends a whole field or leaves the buffer's content as it was, so a row never ends
 * up with half a field in it. */
#include "copyenc.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Give back everything appended since `mark` (the allocation may stay grown). */
static void copyenc_rollback(Buf *out, size_t mark)
{
    out->len = mark;
    if (out->data != NULL)
        out->data[mark] = '\0';
}

/* The escape letter for a byte COPY text treats specially, or 0 if it passes as is. */
static char copyenc_escape(unsigned char c)
{
    switch (c) {
    case '\\':
        return '\\';
    case '\b':
        return 'b';
    case '\f':
        return 'f';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\t':
        return 't';
    case '\v':
        return 'v';
    default:
        return 0;
    }
}

bool copyenc_text(Buf *out, const char *s, size_t len)
{
    if (s == NULL)
        return buf_append(out, "\\N", 2);

    size_t mark = out->len;
    size_t run = 0; /* start of the pending run of bytes that pass unchanged */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc = copyenc_escape(c);
        if (esc == 0 && c != '\0')
            continue;
        if (c == '\0' || !buf_append(out, s + run, i - run))
            goto failed; /* NUL cannot be stored in text; refuse rather than corrupt COPY */
        char pair[2] = {'\\', esc};
        if (!buf_append(out, pair, 2))
            goto failed;
        run = i + 1;
    }
    /* Also terminates an empty field's buffer, so data is a C string afterwards. */
    if (!buf_append(out, s + run, len - run))
        goto failed;
    return true;

failed:
    copyenc_rollback(out, mark);
    return false;
}

/* Powers of ten that a double holds exactly (up to 10^22); the fast path uses 0..15. */
static const double pow10_exact[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
#define DECIMALS_MAX  15
#define EXACT_INT_MAX 9007199254740992.0 /* 2^53: every integer up to it is a double */

/* v as a short decimal, m / 10^k with k <= DECIMALS_MAX, if one reads back as exactly v:
 * the shortest such k, else 0 (then the caller falls back to %.17g). The check is exact:
 * m and 10^k are doubles exactly, so m / 10^k is the correctly rounded quotient, which is
 * the double nearest to the decimal m * 10^-k, i.e. what strtod (and PostgreSQL's float8in)
 * make of the text. Coordinates such as 48.8566 take a few multiplications here instead of
 * printf's multi-precision conversion. */
static size_t short_decimal(char *dst, double v)
{
    double a = fabs(v);
    for (int k = 0; k <= DECIMALS_MAX; k++) {
        double scaled = a * pow10_exact[k];
        if (scaled >= EXACT_INT_MAX)
            return 0;
        double m = nearbyint(scaled);
        if (m / pow10_exact[k] != a)
            continue;
        char digits[24];
        size_t nd = 0;
        unsigned long long u = (unsigned long long)m;
        do {
            digits[nd++] = (char)('0' + u % 10);
            u /= 10;
        } while (u != 0);
        while (nd <= (size_t)k) /* at least one digit before the point */
            digits[nd++] = '0';
        size_t n = 0;
        if (signbit(v))
            dst[n++] = '-';
        for (size_t i = nd; i-- > 0;) {
            dst[n++] = digits[i];
            if (i == (size_t)k && k > 0)
                dst[n++] = '.';
        }
        return n;
    }
    return 0;
}

bool copyenc_double(Buf *out, double v)
{
    if (!isfinite(v))
        return false;
    char tmp[64];
    size_t fast = short_decimal(tmp, v);
    if (fast > 0)
        return buf_append(out, tmp, fast);
    int n = snprintf(tmp, sizeof tmp, "%.17g", v);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return false;

    /* %.17g writes [-]digits[<radix>digits][e(+|-)digits]. The program never calls
     * setlocale, so the radix is '.', but if a host application did, whatever the locale
     * put there (',' or a multibyte mark) is replaced by '.', which PostgreSQL expects. */
    char norm[64];
    size_t k = 0;
    bool in_radix = false;
    for (int i = 0; i < n; i++) {
        char c = tmp[i];
        bool plain = (c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' || c == 'E';
        if (plain) {
            norm[k++] = c;
            in_radix = false;
        } else if (!in_radix) {
            norm[k++] = '.';
            in_radix = true;
        }
    }
    return buf_append(out, norm, k);
}

bool copyenc_int(Buf *out, long long v)
{
    return buf_printf(out, "%lld", v);
}
