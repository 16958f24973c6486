/* Fuzz target: any bytes as a log message through log_split and log_render. Split fields
 * must lie inside the message with well-formed keys. A rendered line, in either format and
 * at any size, must end in its one newline, hold no other control byte, be valid UTF-8 and
 * stay well-formed: a logfmt line splits again (into the same fields when it was not cut),
 * a JSON line parses as one object. Built with libFuzzer, or replayed by replay.c. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "log.h"
#include "utf8.h"
#include "fuzz.h"

#define TS "2026-12-02T01:02:03.456Z"

static bool key_ok(const char *k, size_t n)
{
    if (n == 0 || !((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= 'A' && k[0] <= 'Z') || k[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static void check_line(const char *out, size_t n, size_t cap)
{
    CHECK(n >= 2 && n <= cap);
    CHECK(out[n - 1] == '\n');
    for (size_t i = 0; i + 1 < n; i++)
        CHECK((unsigned char)out[i] >= 0x20 && (unsigned char)out[i] != 0x7f);
    CHECK(utf8_valid_prefix(out, n) == n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 2048)
        return 0;
    /* the first byte picks a size for a second, cut, rendering */
    size_t small = 128 + (size_t)data[0] * 8;
    const char *msg = (const char *)data + 1;
    size_t len = size - 1;

    LogField f[LOG_FIELDS_MAX];
    int n = log_split(msg, len, f, LOG_FIELDS_MAX);
    CHECK(n >= -1 && n <= LOG_FIELDS_MAX);
    for (int i = 0; i < n; i++) {
        CHECK(f[i].key >= msg && f[i].key + f[i].key_len <= msg + len);
        CHECK(f[i].val >= msg && f[i].val + f[i].val_len <= msg + len);
        CHECK(key_ok(f[i].key, f[i].key_len));
    }

    static char out[16384];
    size_t caps[2] = {sizeof out, small};
    for (int k = 0; k < 2; k++) {
        size_t cap = caps[k];
        size_t m = log_render(out, cap, LOG_FORMAT_LOGFMT, TS, "info", msg, len);
        check_line(out, m, cap);
        LogField g[LOG_FIELDS_MAX + 3];
        int back = log_split(out, m - 1, g, LOG_FIELDS_MAX + 3);
        CHECK(back >= 2);
        if (k == 0)
            CHECK(back == 2 + (n < 0 ? 1 : n));

        m = log_render(out, cap, LOG_FORMAT_JSON, TS, "info", msg, len);
        check_line(out, m, cap);
        json_tokener *tok = json_tokener_new();
        CHECK(tok != NULL);
        json_object *o = json_tokener_parse_ex(tok, out, (int)m - 1);
        CHECK(o != NULL && json_tokener_get_error(tok) == json_tokener_success);
        CHECK(json_object_is_type(o, json_type_object));
        CHECK(json_object_object_get_ex(o, "level", NULL));
        json_object_put(o);
        json_tokener_free(tok);
    }
    return 0;
}
