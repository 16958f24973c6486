/* copyenc: PostgreSQL COPY text-format encoding of field values.
 * Rows are fields separated by '\t' and ended by '\n'; callers add those. */
#ifndef PGENRICH_COPYENC_H
#define PGENRICH_COPYENC_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"

/* Append s (len bytes) escaped for COPY text: backslash, tab, newline, carriage return
 * and the other control characters that COPY treats specially (\b \f \v) are
 * backslash-escaped; every other byte, UTF-8 included, passes unchanged. The text
 * "\N" is encoded as "\\N", so only s == NULL appends the NULL marker \N.
 * The caller guarantees s holds no NUL byte (PostgreSQL text cannot hold one); one
 * that slips through makes the call fail rather than corrupt the stream.
 * Returns false if the buffer cap is hit (or on a NUL byte). On failure out's content
 * is exactly as before the call (no half field), though its allocation may have grown.
 * The same holds for copyenc_double and copyenc_int. */
bool copyenc_text(Buf *out, const char *s, size_t len) WUR;

/* Append a double so that it reads back bit-identical: the shortest decimal with at most
 * 15 digits after the point that does (48.8566, -0, 1e-7 as 0.0000001), else %.17g
 * (1e+22, 0.1 + 0.2 as 0.30000000000000004). Non-finite values
 * are refused (returns false) since the mapper never produces them. The decimal point
 * is always '.', whatever LC_NUMERIC says. */
bool copyenc_double(Buf *out, double v) WUR;

/* Append a signed integer. */
bool copyenc_int(Buf *out, long long v) WUR;

#endif
