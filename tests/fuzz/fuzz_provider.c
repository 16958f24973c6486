/* Fuzz target: any bytes as a provider answer, mapped with the primary, the secondary and
 * a pointer-corner mapping. Checks the invariants callers rely on: a FOUND row holds valid
 * UTF-8 text without NUL and coordinates in range; MISS and BAD leave the row empty; a
 * BAD reason is short and one line. Built with libFuzzer, or replayed by replay.c. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "fuzz.h"

static const ProviderMap corner_map = {
    .presence = "",
    .ptr =
        {
            [COL_LABEL] = "/a~1b",
            [COL_GEO_LABEL] = "/arr/1",
            [COL_STREET_ADDRESS] = "/x//y",
            [COL_CITY_LABEL] = "/arr/0/k",
            [COL_POSTAL_CODE] = "/m~0n/0/0",
            [COL_LATITUDE] = "/arr/2",
            [COL_LONGITUDE] = "/lon",
        },
};

/* An independent strict UTF-8 check (RFC 3629), written differently from the one in
 * provider.c so that a shared mistake is less likely. */
static bool valid_utf8(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint32_t cp;
        size_t n;
        if (s[i] < 0x80) {
            i++;
            continue;
        } else if ((s[i] & 0xE0) == 0xC0) {
            n = 2;
            cp = s[i] & 0x1Fu;
        } else if ((s[i] & 0xF0) == 0xE0) {
            n = 3;
            cp = s[i] & 0x0Fu;
        } else if ((s[i] & 0xF8) == 0xF0) {
            n = 4;
            cp = s[i] & 0x07u;
        } else {
            return false;
        }
        if (len - i < n)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
            return false; /* overlong */
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n;
    }
    return true;
}

static void check_one(const ProviderMap *m, const uint8_t *data, size_t size, int depth)
{
    ProviderRow row;
    char err[128];
    MapResult r;

    memset(err, 'x', sizeof(err));
    r = provider_map(m, (const char *)data, size, depth, &row, err, sizeof(err));
    CHECK(r == MAP_FOUND || r == MAP_MISS || r == MAP_BAD);

    /* The reused parser of the hot path, kept from input to input, says the same. */
    static ProviderParser *parsers[65];
    if (parsers[depth] == NULL)
        parsers[depth] = provider_parser_new(depth);
    CHECK(parsers[depth] != NULL);
    ProviderRow again;
    char err2[128];
    MapResult r2 =
        provider_map_with(parsers[depth], m, (const char *)data, size, &again, err2, sizeof err2);
    CHECK(r2 == r);
    CHECK(strcmp(err2, err) == 0);
    for (int c = 0; c < COL_TEXT_COUNT; c++)
        CHECK(again.len[c] == row.len[c] && (again.text[c] == NULL) == (row.text[c] == NULL) &&
              (again.text[c] == NULL || memcmp(again.text[c], row.text[c], row.len[c]) == 0));
    for (int k = 0; k < 2; k++)
        CHECK(again.has_coord[k] == row.has_coord[k] &&
              memcmp(&again.coord[k], &row.coord[k], sizeof(double)) == 0);
    provider_row_free(&again);
    CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    if (r == MAP_BAD) {
        size_t n = strlen(err);
        CHECK(n > 0 && n < 100);
        CHECK(strchr(err, '\n') == NULL && strchr(err, '\r') == NULL);
    } else {
        CHECK(err[0] == '\0');
    }
    if (r != MAP_FOUND) {
        CHECK(row.doc == NULL);
        for (int c = 0; c < COL_TEXT_COUNT; c++)
            CHECK(row.text[c] == NULL && row.len[c] == 0);
        CHECK(!row.has_coord[0] && !row.has_coord[1]);
        provider_row_free(&row);
        return;
    }
    /* Whatever is found came from a well-formed body. */
    CHECK(row.doc != NULL);
    CHECK(memchr(data, '\0', size) == NULL);
    CHECK(valid_utf8(data, size));
    for (int c = 0; c < COL_TEXT_COUNT; c++) {
        if (!row.text[c]) {
            CHECK(row.len[c] == 0);
            continue;
        }
        CHECK(row.len[c] <= size);
        CHECK(memchr(row.text[c], '\0', row.len[c]) == NULL);
        CHECK(row.text[c][row.len[c]] == '\0');
        CHECK(valid_utf8((const unsigned char *)row.text[c], row.len[c]));
    }
    for (int k = 0; k < 2; k++) {
        double limit = k == 0 ? 90.0 : 180.0;
        if (row.has_coord[k])
            CHECK(isfinite(row.coord[k]) && row.coord[k] >= -limit && row.coord[k] <= limit);
        else
            CHECK(row.coord[k] == 0.0);
    }
    provider_row_free(&row);
    CHECK(row.doc == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Buf b;

    check_one(&provider_map_primary, data, size, 64);
    check_one(&provider_map_secondary, data, size, 64);
    check_one(&corner_map, data, size, 64);
    check_one(&provider_map_primary, data, size, 3);

    /* The excerpt of any body is printable single-line ASCII. */
    buf_init(&b, 1024);
    if (provider_excerpt(&b, (const char *)data, size, 200)) {
        CHECK(b.len == (size < 200 ? size : 200));
        for (size_t i = 0; i < b.len; i++)
            CHECK(b.data[i] >= 0x20 && b.data[i] < 0x7F);
    } else {
        CHECK(0);
    }
    buf_free(&b);
    return 0;
}
