/* Fuzz target: any bytes as what a scrape client sent, through metrics_parse_request. The
 * route must not depend on how the bytes arrived (every prefix answers "incomplete" or the
 * same route as the whole), must agree with a plain reading of the request line for the
 * 200 routes, and HEAD must be reported only for HEAD. The same bytes as a label value go
 * through metrics_escape_label, which must read back to them. Built with libFuzzer, or
 * replayed by replay.c. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "metrics.h"
#include "fuzz.h"

static bool starts(const uint8_t *d, size_t n, const char *s)
{
    size_t k = strlen(s);
    return n >= k && memcmp(d, s, k) == 0;
}

/* Undo metrics_escape_label into out (cap bytes); returns the length, or -1 when the text
 * holds a lone backslash, an unknown escape, an unescaped quote or newline. */
static long unescape(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"' || c == '\n')
            return -1;
        if (c == '\\') {
            if (++i == n)
                return -1;
            c = s[i] == 'n' ? '\n' : s[i] == '\\' ? '\\' : s[i] == '"' ? '"' : 0;
            if (c == 0)
                return -1;
        }
        out[o++] = c;
    }
    return (long)o;
}

static void check_label(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    CHECK(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    size_t len = strlen(s); /* up to the first NUL, as a C string */
    Buf b;
    buf_init(&b, 4 * size + 16);
    CHECK(metrics_escape_label(&b, s));
    char *back = malloc(b.len + 1);
    CHECK(back != NULL);
    long n = unescape(b.data ? b.data : "", b.len, back);
    CHECK(n == (long)len && memcmp(back, s, len) == 0);
    free(back);
    buf_free(&b);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *d = (const char *)data;
    bool head = false;
    MetricsRoute whole = metrics_parse_request(d, size, &head);
    CHECK(whole >= MR_INCOMPLETE && whole <= MR_BAD_REQUEST);
    if (whole == MR_INCOMPLETE)
        CHECK(size < METRICS_REQUEST_MAX);
    if (head)
        CHECK(starts(data, size, "HEAD ") &&
              (whole == MR_METRICS || whole == MR_INDEX || whole == MR_NOT_FOUND));
    if (whole == MR_METRICS)
        CHECK(starts(data, size, "GET /metrics") || starts(data, size, "HEAD /metrics"));
    if (whole == MR_INDEX)
        CHECK(starts(data, size, "GET / ") || starts(data, size, "HEAD / ") ||
              starts(data, size, "GET /?") || starts(data, size, "HEAD /?"));

    /* Bytes arriving in pieces: the first decided prefix decides for good. */
    size_t step = size / 64 + 1;
    for (size_t n = 0; n < size; n += step) {
        bool h2;
        MetricsRoute r = metrics_parse_request(d, n, &h2);
        if (r != MR_INCOMPLETE) {
            CHECK(r == whole && h2 == head);
            break;
        }
    }
    if (size <= 4096)
        check_label(data, size);
    return 0;
}
