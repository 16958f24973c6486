/* Fuzz target: any bytes through utf8_sanitize and utf8_sanitize_buf. The output must pass
 * an independent validator (code points decoded and range-checked the long way), equal what
 * a reference WHATWG-style decoder produces, be cut only between its characters, and leave
 * valid input unchanged. utf8_valid_prefix and utf8_cut are checked against the same
 * references. Built with libFuzzer, or replayed by replay.c. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "fuzz.h"

/* True when s[0..n) is UTF-8 PostgreSQL accepts: decode each code point from its bit
 * pattern, then reject overlongs, surrogates, values past U+10FFFF and NUL. */
static bool ref_valid(const uint8_t *s, size_t n)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t i = 0;

    while (i < n) {
        uint8_t b = s[i];
        size_t len;
        uint32_t cp;
        if ((b & 0x80) == 0) {
            len = 1;
            cp = b;
        } else if ((b & 0xE0) == 0xC0) {
            len = 2;
            cp = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3;
            cp = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4;
            cp = b & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp == 0 || cp < min_cp[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return false;
        i += len;
    }
    return true;
}

typedef struct Ref {
    uint8_t *out; /* the expected full output */
    size_t len;
    size_t *ends; /* output offsets after each character: ends[0] = 0, ascending */
    size_t nends;
    size_t valid_upto; /* input bytes before the first error */
} Ref;

static void emit(Ref *r, const uint8_t *p, size_t n)
{
    memcpy(r->out + r->len, p, n);
    r->len += n;
    r->ends[r->nends++] = r->len;
}

static void emit_fffd(Ref *r, bool *clean, size_t at)
{
    if (*clean)
        r->valid_upto = at;
    *clean = false;
    emit(r, (const uint8_t *)UTF8_REPLACEMENT, UTF8_REPLACEMENT_LEN);
}

/* The WHATWG Encoding Standard's UTF-8 decoder (a byte-at-a-time state machine), with NUL
 * also decoded as an error. */
static void ref_decode(Ref *r, const uint8_t *s, size_t n)
{
    size_t needed = 0, seen = 0, start = 0;
    uint8_t lower = 0x80, upper = 0xBF;
    bool clean = true;

    r->len = 0;
    r->nends = 0;
    r->ends[r->nends++] = 0;
    r->valid_upto = n;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = s[i];
        if (needed == 0) {
            start = i;
            if (b == 0) {
                emit_fffd(r, &clean, i);
            } else if (b <= 0x7F) {
                emit(r, &b, 1);
            } else if (b >= 0xC2 && b <= 0xDF) {
                needed = 1;
            } else if (b >= 0xE0 && b <= 0xEF) {
                lower = b == 0xE0 ? 0xA0 : 0x80;
                upper = b == 0xED ? 0x9F : 0xBF;
                needed = 2;
            } else if (b >= 0xF0 && b <= 0xF4) {
                lower = b == 0xF0 ? 0x90 : 0x80;
                upper = b == 0xF4 ? 0x8F : 0xBF;
                needed = 3;
            } else {
                emit_fffd(r, &clean, i);
            }
            continue;
        }
        if (b < lower || b > upper) {
            needed = seen = 0;
            lower = 0x80;
            upper = 0xBF;
            emit_fffd(r, &clean, start);
            i--; /* the byte is looked at again as a lead */
            continue;
        }
        lower = 0x80;
        upper = 0xBF;
        if (++seen == needed) {
            emit(r, s + start, needed + 1);
            needed = seen = 0;
        }
    }
    if (needed != 0)
        emit_fffd(r, &clean, start);
}

/* The longest expected output that fits in m bytes. */
static size_t ref_cut(const Ref *r, size_t m)
{
    size_t k = r->nends;
    while (r->ends[k - 1] > m)
        k--;
    return r->ends[k - 1];
}

static void check_sized(const Ref *r, const uint8_t *data, size_t size, size_t dstsize)
{
    char *dst = malloc(dstsize + 1);
    CHECK(dst != NULL);
    dst[dstsize] = 'G'; /* guard */
    size_t n = utf8_sanitize(dst, dstsize, (const char *)data, size);
    CHECK(n <= dstsize - 1);
    CHECK(n == ref_cut(r, dstsize - 1));
    CHECK(dst[n] == '\0' && dst[dstsize] == 'G');
    CHECK(memcmp(dst, r->out, n) == 0);
    CHECK(ref_valid((const uint8_t *)dst, n));
    CHECK(utf8_valid_prefix(dst, n) == n);
    free(dst);
}

static void check_buf(const Ref *r, const uint8_t *data, size_t size, size_t max_bytes)
{
    const size_t want = ref_cut(r, max_bytes);
    Buf b;

    /* Room to spare in the Buf: max_bytes decides. */
    buf_init(&b, 2 + r->len);
    CHECK(buf_puts(&b, "xy"));
    CHECK(utf8_sanitize_buf(&b, (const char *)data, size, max_bytes));
    CHECK(b.len == 2 + want && b.data[b.len] == '\0');
    CHECK(memcmp(b.data + 2, r->out, want) == 0);
    CHECK(utf8_valid_prefix(b.data, b.len) == b.len);
    buf_free(&b);

    /* One byte short in the Buf: nothing changes. */
    if (want > 0) {
        buf_init(&b, 2 + want - 1);
        CHECK(buf_puts(&b, "xy"));
        CHECK(!utf8_sanitize_buf(&b, (const char *)data, size, max_bytes));
        CHECK(b.len == 2 && strcmp(b.data, "xy") == 0);
        buf_free(&b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    Ref r;
    char *big;
    size_t n;

    r.out = malloc(3 * size + 1);
    r.ends = malloc((size + 1) * sizeof(*r.ends));
    big = malloc(3 * size + 1);
    CHECK(r.out != NULL && r.ends != NULL && big != NULL);
    ref_decode(&r, data, size);
    CHECK(ref_valid(r.out, r.len));

    /* Validity and the valid prefix agree with both references. */
    const bool valid = ref_valid(data, size);
    n = utf8_valid_prefix(s, size);
    CHECK(valid == (n == size));
    CHECK(n == r.valid_upto);
    CHECK(ref_valid(data, n));

    /* Room for everything: the whole expected output, and valid input comes back as is. */
    n = utf8_sanitize(big, 3 * size + 1, s, size);
    CHECK(n == r.len && memcmp(big, r.out, n) == 0 && big[n] == '\0');
    CHECK(utf8_valid_prefix(big, n) == n);
    if (valid)
        CHECK(n == size && memcmp(big, data, size) == 0);
    /* Sanitizing is idempotent. */
    {
        char *again = malloc(n + 1);
        CHECK(again != NULL);
        CHECK(utf8_sanitize(again, n + 1, big, n) == n && memcmp(again, big, n) == 0);
        free(again);
    }

    /* Every small size, and a few larger ones picked from the input. */
    for (size_t d = 1; d <= 9; d++)
        check_sized(&r, data, size, d);
    if (size >= 2) {
        check_sized(&r, data, size, 1 + (size_t)data[0] * 4 + data[1] % 4);
        check_sized(&r, data, size, r.len > 0 ? r.len : 1); /* one byte short */
    }

    /* utf8_cut on the (valid) output stops at the same boundaries. */
    for (size_t m = 0; m <= 9 && m <= r.len + 1; m++)
        CHECK(utf8_cut(big, r.len, m) == ref_cut(&r, m));
    if (size >= 1)
        CHECK(utf8_cut(big, r.len, data[0]) == ref_cut(&r, data[0]));
    CHECK(utf8_cut(big, r.len, SIZE_MAX) == r.len);

    check_buf(&r, data, size, SIZE_MAX);
    check_buf(&r, data, size, 0);
    for (size_t m = 1; m <= 7; m++)
        check_buf(&r, data, size, m);
    if (size >= 1)
        check_buf(&r, data, size, (size_t)data[size - 1] * 3);
    if (r.len > 256)
        check_buf(&r, data, size, 256); /* the internal chunk's edge */

    free(big);
    free(r.ends);
    free(r.out);
    return 0;
}
