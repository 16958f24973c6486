/* Fuzz target: any bytes as an entity ID (and as a URL template). The encoded ID must hold
 * only unreserved characters and %XX triplets, never '/', '?' or '#', never be a dot
 * segment, and decode back to the input; the URL is the template with each {id} replaced.
 * Built with libFuzzer, or replayed by replay.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "fuzz.h"

static const char tmpl[] = "http://127.0.0.1:1/api/v2/entities/{id}?select=id&again={id}#f";

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* lowercase hex is not what we emit */
}

static bool unreserved(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Check enc (the encoding of id) and decode it back. */
static void check_encoding(const char *enc, size_t n, const uint8_t *id, size_t size)
{
    size_t out = 0;
    bool only_dots = size > 0;

    for (size_t i = 0; i < size; i++)
        only_dots = only_dots && id[i] == '.';
    CHECK(strchr(enc, '/') == NULL && strchr(enc, '?') == NULL && strchr(enc, '#') == NULL);
    CHECK(strlen(enc) == n);
    if (only_dots)
        CHECK(memchr(enc, '.', n) == NULL);
    CHECK(!(n == 1 && enc[0] == '.') && !(n == 2 && enc[0] == '.' && enc[1] == '.'));
    for (size_t i = 0; i < n;) {
        uint8_t byte;
        if (enc[i] == '%') {
            CHECK(n - i >= 3);
            int hi = hexval(enc[i + 1]), lo = hexval(enc[i + 2]);
            CHECK(hi >= 0 && lo >= 0);
            byte = (uint8_t)(hi * 16 + lo);
            /* Only what must be encoded is (or a dot in an all-dots ID). */
            CHECK(!unreserved((char)byte) || (only_dots && byte == '.'));
            i += 3;
        } else {
            CHECK(unreserved(enc[i]));
            byte = (uint8_t)enc[i];
            i++;
        }
        CHECK(out < size && id[out] == byte);
        out++;
    }
    CHECK(out == size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *id = (const char *)data;
    const char *hole1 = strstr(tmpl, "{id}");
    const char *hole2 = strstr(hole1 + 4, "{id}");
    const size_t pre = (size_t)(hole1 - tmpl), mid = (size_t)(hole2 - hole1 - 4);
    const size_t post = strlen(hole2 + 4);
    Buf enc, url, small;
    char *t;
    char err[128];

    buf_init(&enc, 1 << 24);
    CHECK(provider_encode_id(&enc, id, size));
    CHECK(enc.len >= size && enc.len <= 3 * size);
    check_encoding(enc.len ? enc.data : "", enc.len, data, size);

    CHECK(provider_template_check(tmpl, err, sizeof(err)));
    buf_init(&url, 1 << 24);
    CHECK(provider_build_url(&url, tmpl, id, size));
    CHECK(url.len == pre + mid + post + 2 * enc.len);
    CHECK(memcmp(url.data, tmpl, pre) == 0);
    CHECK(enc.len == 0 || memcmp(url.data + pre, enc.data, enc.len) == 0);
    CHECK(memcmp(url.data + pre + enc.len, hole1 + 4, mid) == 0);
    CHECK(enc.len == 0 || memcmp(url.data + pre + enc.len + mid, enc.data, enc.len) == 0);
    CHECK(strcmp(url.data + pre + 2 * enc.len + mid, hole2 + 4) == 0);

    /* A cap too small by one byte fails and leaves the buffer as it was. */
    if (enc.len > 0) {
        buf_init(&small, enc.len + 1);
        CHECK(buf_puts(&small, "x"));
        CHECK(provider_encode_id(&small, id, size));
        buf_reset(&small);
        CHECK(buf_puts(&small, "xy"));
        CHECK(!provider_encode_id(&small, id, size));
        CHECK(small.len == 2 && strcmp(small.data, "xy") == 0);
        buf_free(&small);
    }

    /* The input as a template: the check never crashes, and a template it passes builds a
     * URL without braces. */
    t = malloc(size + 1);
    CHECK(t != NULL);
    memcpy(t, data, size);
    t[size] = '\0';
    memset(err, 'x', sizeof(err));
    if (provider_template_check(t, err, sizeof(err))) {
        buf_reset(&url);
        CHECK(provider_build_url(&url, t, "a/b", 3));
        CHECK(strchr(url.data, '{') == NULL && strchr(url.data, '}') == NULL);
        CHECK(strstr(url.data, "a%2Fb") != NULL);
    } else {
        CHECK(strlen(err) > 0 && strlen(err) < 100 && strchr(err, '\n') == NULL);
    }
    free(t);
    buf_free(&url);
    buf_free(&enc);
    return 0;
}
