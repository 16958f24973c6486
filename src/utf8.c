/* utf8: validation, boundary-safe cutting and U+FFFD substitution for text bound for
 * PostgreSQL. The rules follow pg_utf8_islegal (src/common/wchar.c) plus "no NUL", which
 * is what the server's text input and COPY FROM check. */
#include "utf8.h"

#include <string.h>

/* Look at the character starting at s[0] (n >= 1). Returns its length and sets *ok when
 * it is one PostgreSQL accepts; otherwise returns the length of the maximal subpart to
 * replace (1..3: the lead byte and the continuation bytes that were still a valid prefix
 * of some character) and clears *ok. The second-byte bounds are RFC 3629's table, which
 * is what excludes overlongs, surrogates and code points past U+10FFFF. */
static size_t scan(const unsigned char *s, size_t n, bool *ok)
{
    const unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t need;

    *ok = false;
    if (c < 0x80) {
        *ok = c != 0;
        return 1;
    }
    if (c < 0xC2) /* a lone continuation byte, or C0/C1 (only ever overlong) */
        return 1;
    if (c < 0xE0) {
        need = 2;
    } else if (c < 0xF0) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c < 0xF5) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 1;
    }
    if (n < 2 || s[1] < lo || s[1] > hi)
        return 1;
    for (size_t i = 2; i < need; i++) {
        if (i >= n || (s[i] & 0xC0) != 0x80)
            return i;
    }
    *ok = true;
    return need;
}

/* Printable or control ASCII other than NUL: copied byte for byte. */
static bool plain_ascii(unsigned char c)
{
    return (unsigned char)(c - 1) < 0x7F;
}

size_t utf8_char_len(const char *s, size_t n)
{
    bool ok;
    if (n == 0)
        return 0;
    size_t len = scan((const unsigned char *)s, n, &ok);
    return ok ? len : 0;
}

size_t utf8_valid_prefix(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    bool ok;

    while (i < n) {
        if (plain_ascii(p[i])) {
            i++;
            continue;
        }
        size_t len = scan(p + i, n - i, &ok);
        if (!ok)
            break;
        i += len;
    }
    return i;
}

size_t utf8_cut(const char *s, size_t n, size_t max)
{
    size_t m = n < max ? n : max;

    if (m == n)
        return n;
    /* s[m] exists; while it is a continuation byte, m is inside a character. */
    for (int back = 0; back < 3 && m > 0 && ((unsigned char)s[m] & 0xC0) == 0x80; back++)
        m--;
    return m;
}

/* Sanitize from src[*pos] into dst, writing at most room bytes and never part of a
 * character; advances *pos past what was consumed. Returns the bytes written. */
static size_t sanitize_into(char *dst, size_t room, const char *src, size_t srclen, size_t *pos)
{
    const unsigned char *p = (const unsigned char *)src;
    size_t i = *pos, w = 0;
    bool ok;

    while (i < srclen) {
        if (plain_ascii(p[i])) {
            if (w == room)
                break;
            dst[w++] = src[i++];
            continue;
        }
        size_t len = scan(p + i, srclen - i, &ok);
        size_t outlen = ok ? len : UTF8_REPLACEMENT_LEN;
        if (room - w < outlen)
            break;
        memcpy(dst + w, ok ? src + i : UTF8_REPLACEMENT, outlen);
        w += outlen;
        i += len;
    }
    *pos = i;
    return w;
}

size_t utf8_sanitize(char *dst, size_t dstsize, const char *src, size_t srclen)
{
    size_t pos = 0, w;

    if (dstsize == 0)
        return 0;
    w = sanitize_into(dst, dstsize - 1, src, srclen, &pos);
    dst[w] = '\0';
    return w;
}

bool utf8_sanitize_buf(Buf *out, const char *src, size_t srclen, size_t max_bytes)
{
    const size_t start = out->len;
    char chunk[256];
    size_t pos = 0, total = 0;

    /* The first pass runs even for empty input so that out->data becomes a string. */
    for (;;) {
        size_t left = max_bytes - total;
        size_t w =
            sanitize_into(chunk, left < sizeof(chunk) ? left : sizeof(chunk), src, srclen, &pos);
        if (!buf_append(out, chunk, w))
            goto failed;
        total += w;
        /* Nothing written with input left means the next character passes max_bytes
         * (a chunk always has room for one). */
        if (pos == srclen || w == 0)
            break;
    }
    return true;
failed:
    buf_truncate(out, start);
    return false;
}
