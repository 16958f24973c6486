/* buf: a growable byte buffer with a hard cap. Growth is geometric, every size sum is
 * checked for overflow before it is used, and a failed append leaves the content as it was. */
#include "buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first allocation; small enough for a field, big enough to avoid early regrowth. */
#define BUF_MIN_ALLOC 64

void buf_init(Buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

/* Make room for n more bytes plus the trailing NUL. On failure b is untouched. */
static bool buf_reserve(Buf *b, size_t n)
{
    /* len never exceeds max, so max - len cannot wrap. */
    if (n > b->max - b->len)
        return false;
    size_t used = b->len + n; /* <= max */
    if (used == SIZE_MAX)
        return false; /* no room for the NUL */
    size_t need = used + 1;
    if (b->data != NULL && need <= b->cap)
        return true;

    size_t newcap = b->cap < BUF_MIN_ALLOC ? BUF_MIN_ALLOC : b->cap;
    while (newcap < need) {
        if (newcap > SIZE_MAX / 2) {
            newcap = need;
            break;
        }
        newcap *= 2;
    }
    /* Never allocate more than the cap can use. */
    if (b->max < SIZE_MAX && newcap > b->max + 1)
        newcap = b->max + 1;
    if (newcap < need)
        newcap = need;

    char *p = realloc(b->data, newcap);
    if (p == NULL)
        return false;
    if (b->data == NULL)
        p[0] = '\0';
    b->data = p;
    b->cap = newcap;
    return true;
}

bool buf_append(Buf *b, const void *p, size_t n)
{
    if (!buf_reserve(b, n))
        return false;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

bool buf_puts(Buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

bool buf_putc(Buf *b, char c)
{
    return buf_append(b, &c, 1);
}

bool buf_printf(Buf *b, const char *fmt, ...)
{
    bool ok = false;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);

    /* First pass measures, second pass writes into the reserved space. */
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n < 0)
        goto done;
    if (!buf_reserve(b, (size_t)n))
        goto done;
    int m = vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    if (m != n) {
        b->data[b->len] = '\0'; /* undo whatever was written past the content */
        goto done;
    }
    b->len += (size_t)n;
    ok = true;
done:
    va_end(ap2);
    va_end(ap);
    return ok;
}

void buf_reset(Buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void buf_free(Buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_truncate(Buf *b, size_t len)
{
    if (b->data && b->len > len) {
        b->len = len;
        b->data[len] = '\0';
    }
}
