/* buf: a growable byte buffer with a hard cap (after curl's dynbuf).
 * Every append keeps the content NUL-terminated, so data can be used as a C string
 * when the content itself holds no NUL. */
#ifndef PGENRICH_BUF_H
#define PGENRICH_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include "compat.h"

typedef struct Buf {
    char *data; /* NULL until the first append; owned */
    size_t len; /* bytes in use, not counting the trailing NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard cap on len; an append that would pass it fails */
} Buf;

/* Start empty with a cap of max bytes. Allocates nothing. */
void buf_init(Buf *b, size_t max);

/* Append n bytes (p may be NULL when n is 0; even then data becomes a valid, possibly
 * empty, C string). Returns false when the result would exceed b->max or memory runs
 * out; the content (data[0..len]) is then unchanged, though a grown allocation may be
 * kept. Sizes are checked for overflow before any arithmetic is trusted. */
bool buf_append(Buf *b, const void *p, size_t n) WUR;

/* Append a NUL-terminated string. Same contract as buf_append. */
bool buf_puts(Buf *b, const char *s) WUR;

/* Append one byte. */
bool buf_putc(Buf *b, char c) WUR;

/* Append printf-formatted text (measured first, then written in place).
 * Same contract as buf_append; an encoding error in vsnprintf also returns false. */
bool buf_printf(Buf *b, const char *fmt, ...) WUR PRINTF_LIKE(2, 3);

/* Cut the content back to len bytes (no-op if it is already shorter); keeps it
 * NUL-terminated. Lets a caller undo a partial sequence of appends. */
void buf_truncate(Buf *b, size_t len);

/* Forget the content, keep the memory. */
void buf_reset(Buf *b);

/* Release the memory; b may be reused after buf_init. Safe on a buffer that never
 * allocated. */
void buf_free(Buf *b);

#endif
