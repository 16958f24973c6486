/* utf8: make text safe for a PostgreSQL text column. Everything pgenrich writes that it did
 * not produce itself (error excerpts, header values, curl messages, provider output) goes
 * through here, so that COPY never rejects a flush for one bad byte. Pure. */
#ifndef PGENRICH_UTF8_H
#define PGENRICH_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"
#include "compat.h"

/* U+FFFD REPLACEMENT CHARACTER, as UTF-8. */
#define UTF8_REPLACEMENT     "\xEF\xBF\xBD"
#define UTF8_REPLACEMENT_LEN 3

/* Length of the longest prefix of s[0..n) that PostgreSQL's server accepts as UTF-8 text:
 * well-formed per RFC 3629 exactly as pg_utf8_islegal checks it (no overlong forms, no
 * surrogates U+D800..U+DFFF, nothing above U+10FFFF, no 5- or 6-byte forms) and holding no
 * NUL byte. A character cut off by the end of the input is not part of the prefix. Returns
 * n when the whole input is acceptable. s may be NULL when n is 0. */
size_t utf8_valid_prefix(const char *s, size_t n);

/* Length of the character that starts s[0..n) when PostgreSQL accepts it (1 for ASCII other
 * than NUL, 2 to 4 for a well-formed multi-byte one), 0 when it does not (NUL, an ill-formed
 * or truncated sequence, n == 0). For scanners that must step one character at a time. */
size_t utf8_char_len(const char *s, size_t n);

/* For valid UTF-8 s[0..n): the largest length <= min(n, max) that does not split a
 * character. On invalid input the result is still <= min(n, max) and at most 3 bytes
 * shorter; it is only guaranteed to be a boundary for valid input. */
size_t utf8_cut(const char *s, size_t n, size_t max);

/* Copy src[0..srclen) into dst as text utf8_valid_prefix accepts in full: every maximal
 * subpart of an ill-formed sequence (Unicode's "substitution of maximal subparts", as the
 * WHATWG decoder does it) and every NUL byte becomes U+FFFD; everything else, control
 * characters included, is copied as it is. Stops before the first character (or U+FFFD)
 * that would not fit in dstsize - 1 bytes, so the output is never cut inside a character.
 * dst is always NUL-terminated when dstsize >= 1 (dstsize 0 writes nothing). Returns the
 * bytes written, not counting the NUL. dst and src must not overlap; src may be NULL when
 * srclen is 0. */
size_t utf8_sanitize(char *dst, size_t dstsize, const char *src, size_t srclen);

/* Append what utf8_sanitize would write for src[0..srclen), stopping before the first
 * character that would take the appended part past max_bytes bytes. Returns false only
 * when the buffer's cap or memory runs out; out's content is then as it was before the
 * call. On success out->data is a valid C string, even when nothing was appended. */
bool utf8_sanitize_buf(Buf *out, const char *src, size_t srclen, size_t max_bytes) WUR;

#endif
