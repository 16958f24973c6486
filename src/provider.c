/* provider: request URLs (template + RFC 3986 percent-encoding of the ID) and the mapping
 * of a JSON answer onto the standardized row (RFC 6901 pointers, type and range checks).
 * Pure: no I/O, no globals besides the constant mapping tables. */
#include "provider.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "utf8.h"

const char *const provider_column_names[COL_COUNT] = {
    [COL_LABEL] = "label",
    [COL_GEO_LABEL] = "geo_label",
    [COL_STREET_ADDRESS] = "street_address",
    [COL_CITY_LABEL] = "city_label",
    [COL_POSTAL_CODE] = "postal_code",
    [COL_COUNTRY_LABEL] = "country_label",
    [COL_LATITUDE] = "latitude",
    [COL_LONGITUDE] = "longitude",
};

const ProviderMap provider_map_primary = {
    .presence = "/location",
    .ptr =
        {
            [COL_LABEL] = "/label",
            [COL_GEO_LABEL] = "/location/geoLabel",
            [COL_STREET_ADDRESS] = "/location/streetAddress",
            [COL_CITY_LABEL] = "/location/cityLabel",
            [COL_POSTAL_CODE] = "/location/postalCode",
            [COL_COUNTRY_LABEL] = "/location/countryLabel",
            [COL_LATITUDE] = "/location/latitude",
            [COL_LONGITUDE] = "/location/longitude",
        },
};

const ProviderMap provider_map_secondary = {
    .presence = "/results/0",
    .ptr =
        {
            [COL_LABEL] = "/results/0/name",
            [COL_GEO_LABEL] = "/results/0/address/state",
            [COL_STREET_ADDRESS] = "/results/0/address/road",
            [COL_CITY_LABEL] = "/results/0/address/city",
            [COL_POSTAL_CODE] = "/results/0/address/postcode",
            [COL_COUNTRY_LABEL] = "/results/0/address/country",
            [COL_LATITUDE] = "/results/0/lat",
            [COL_LONGITUDE] = "/results/0/lon",
        },
};

/* ---- small helpers ---------------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...) PRINTF_LIKE(3, 4);

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void clear_err(char *err, size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_json_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ---- URLs -------------------------------------------------------------------------------- */

bool provider_encode_id(Buf *out, const char *id, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)id;
    const size_t start = out->len;
    char chunk[256];
    size_t used = 0;
    bool only_dots = len > 0;
    bool ok = false;

    for (size_t i = 0; i < len && only_dots; i++)
        only_dots = s[i] == '.';

    for (size_t i = 0; i < len; i++) {
        if (used > sizeof(chunk) - 3) {
            if (!buf_append(out, chunk, used))
                goto done;
            used = 0;
        }
        if (is_unreserved(s[i]) && !only_dots) {
            chunk[used++] = (char)s[i];
        } else {
            chunk[used++] = '%';
            chunk[used++] = hex[s[i] >> 4];
            chunk[used++] = hex[s[i] & 0x0F];
        }
    }
    if (used > 0 && !buf_append(out, chunk, used))
        goto done;
    ok = true;
done:
    if (!ok)
        buf_truncate(out, start);
    return ok;
}

bool provider_template_check(const char *tmpl, char *err, size_t errlen)
{
    bool has_id = false;

    if (!tmpl || !*tmpl) {
        set_err(err, errlen, "URL template is empty");
        return false;
    }
    for (size_t i = 0; tmpl[i];) {
        unsigned char c = (unsigned char)tmpl[i];
        if (strncmp(tmpl + i, "{id}", 4) == 0) {
            has_id = true;
            i += 4;
            continue;
        }
        if (c == '{' || c == '}') {
            set_err(err, errlen, "URL template: stray '%c' at offset %zu (only {id} is known)", c,
                    i);
            return false;
        }
        /* A URL never holds these raw; they would reach curl as a malformed request. */
        if (c <= 0x20 || c == 0x7F) {
            set_err(err, errlen, "URL template: space or control character at offset %zu", i);
            return false;
        }
        i++;
    }
    if (!has_id) {
        set_err(err, errlen, "URL template has no {id}");
        return false;
    }
    return true;
}

bool provider_build_url(Buf *out, const char *tmpl, const char *id, size_t id_len)
{
    const size_t start = out->len;
    const char *p = tmpl;
    bool ok = false;

    for (;;) {
        const char *hole = strstr(p, "{id}");
        size_t lit = hole ? (size_t)(hole - p) : strlen(p);
        if (lit > 0 && !buf_append(out, p, lit))
            goto done;
        if (!hole)
            break;
        if (!provider_encode_id(out, id, id_len))
            goto done;
        p = hole + 4;
    }
    ok = true;
done:
    if (!ok)
        buf_truncate(out, start);
    return ok;
}

bool provider_excerpt(Buf *out, const char *body, size_t len, size_t max)
{
    const size_t start = out->len;
    size_t n = len < max ? len : max;
    char chunk[256];
    size_t used = 0;
    bool ok = false;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)body[i];
        if (used == sizeof(chunk)) {
            if (!buf_append(out, chunk, used))
                goto done;
            used = 0;
        }
        chunk[used++] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
    }
    if (!buf_append(out, chunk, used))
        goto done;
    ok = true;
done:
    if (!ok)
        buf_truncate(out, start);
    return ok;
}

/* ---- JSON answers ------------------------------------------------------------------------ */

/* Longest reference token (with its leading '/') a pointer may hold. Pointers come from
 * the mapping tables, not from answers. */
#define PTR_STEP_MAX 128

/* Array indices beyond this many digits are treated as out of range: json-c stores the
 * index in an int32_t, so "4294967296" would otherwise wrap around to element 0. */
#define INDEX_DIGITS_MAX 9

typedef enum Lookup { LOOKUP_VALUE, LOOKUP_NULL, LOOKUP_BAD } Lookup;

/* Length of a pointer prefix as printed in an error message. */
static int shown(const char *from, const char *to)
{
    return to - from > 60 ? 60 : (int)(to - from);
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return false;
    }
    return true;
}

static bool read_hex4(const unsigned char *s, size_t i, size_t len, unsigned *out)
{
    unsigned v = 0;

    if (i > len || len - i < 4)
        return false;
    for (size_t k = 0; k < 4; k++) {
        unsigned char c = s[i + k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return false;
    }
    *out = v;
    return true;
}

static bool next_is_colon(const unsigned char *s, size_t i, size_t len)
{
    while (i < len && is_json_ws(s[i]))
        i++;
    return i < len && s[i] == ':';
}

/* What json-c's tokener lets through or silently rewrites, checked on the raw body before
 * it parses: a NUL byte (json-c stops there), bytes that are not strict UTF-8 (its own check
 * accepts overlong forms, encoded surrogates and code points above U+10FFFF), lone
 * surrogate escapes (it replaces them with U+FFFD), "\u0000" in an object key (it cuts the
 * key there, so "label\u0000x" would pose as "label") and single-quoted keys (accepted even
 * in strict mode; refusing them also keeps this scan's idea of strings the same as json-c's).
 * Other syntax errors are left to json-c. */
static bool prescan(const char *body, size_t len, char *err, size_t errlen)
{
    const unsigned char *s = (const unsigned char *)body;
    bool in_str = false, str_has_nul = false;
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        if (c == '\0') {
            set_err(err, errlen, "NUL byte in body at byte %zu", i);
            return false;
        }
        if (c >= 0x80) {
            size_t n = utf8_char_len(body + i, len - i);
            if (n == 0) {
                set_err(err, errlen, "invalid UTF-8 at byte %zu", i);
                return false;
            }
            i += n;
            continue;
        }
        if (!in_str) {
            if (c == '\'') {
                set_err(err, errlen, "invalid JSON: single quote at byte %zu", i);
                return false;
            }
            if (c == '"') {
                in_str = true;
                str_has_nul = false;
            }
            i++;
            continue;
        }
        if (c == '"') {
            in_str = false;
            if (str_has_nul && next_is_colon(s, i + 1, len)) {
                set_err(err, errlen, "\\u0000 in an object key before byte %zu", i);
                return false;
            }
            i++;
            continue;
        }
        if (c != '\\' || i + 1 >= len) {
            i++;
            continue;
        }
        if (s[i + 1] != 'u') {
            /* Skip the escaped character only when it is plain ASCII, so that the checks
             * above still see a NUL or a non-ASCII byte there. */
            i += (s[i + 1] >= 0x20 && s[i + 1] < 0x80) ? 2 : 1;
            continue;
        }
        unsigned u, lo;
        if (!read_hex4(s, i + 2, len, &u)) {
            i += 2; /* malformed escape: json-c reports it */
            continue;
        }
        size_t at = i;
        i += 6;
        if (u == 0)
            str_has_nul = true;
        if (u >= 0xDC00 && u <= 0xDFFF) {
            set_err(err, errlen, "lone surrogate escape at byte %zu", at);
            return false;
        }
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (i + 1 < len && s[i] == '\\' && s[i + 1] == 'u' && read_hex4(s, i + 2, len, &lo) &&
                lo >= 0xDC00 && lo <= 0xDFFF) {
                i += 6;
            } else {
                set_err(err, errlen, "lone surrogate escape at byte %zu", at);
                return false;
            }
        }
    }
    return true;
}

/* One reference token tok[0..n) (escaped, without its '/') applied to cur, an object or an
 * array (RFC 6901 section 4). In an object, ~1 and ~0 decode to '/' and '~' in one pass
 * (so "~01" is "~1"); any other '~' stays as it is. In an array the token must be "0" or
 * a number without leading zeros: anything else (a name, "-", "01") is not an index, so an
 * object was expected there (LOOKUP_BAD); an index past the end, or
 * longer than INDEX_DIGITS_MAX digits, is LOOKUP_NULL. json_pointer_get would do the same
 * per step, but it copies the whole path on every call, which the hot path pays per
 * column of every answer. */
static Lookup step_into(struct json_object *cur, const char *tok, size_t n,
                        struct json_object **next)
{
    *next = NULL;
    if (json_object_get_type(cur) == json_type_array) {
        if (n == 0 || !all_digits(tok, n) || (n > 1 && tok[0] == '0'))
            return LOOKUP_BAD;
        if (n > INDEX_DIGITS_MAX)
            return LOOKUP_NULL;
        size_t idx = 0;
        for (size_t i = 0; i < n; i++)
            idx = idx * 10 + (size_t)(tok[i] - '0');
        if (idx >= json_object_array_length(cur))
            return LOOKUP_NULL;
        *next = json_object_array_get_idx(cur, idx);
        return *next ? LOOKUP_VALUE : LOOKUP_NULL;
    }
    char key[PTR_STEP_MAX];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (tok[i] == '~' && i + 1 < n && (tok[i + 1] == '0' || tok[i + 1] == '1')) {
            key[k++] = tok[i + 1] == '0' ? '~' : '/';
            i++;
        } else {
            key[k++] = tok[i];
        }
    }
    key[k] = '\0';
    if (!json_object_object_get_ex(cur, key, next))
        return LOOKUP_NULL;
    return *next ? LOOKUP_VALUE : LOOKUP_NULL;
}

/* Resolve ptr[from..] in cur one reference token at a time: "no such key" is a NULL column,
 * a step into a string, number or boolean (or a name used on an array) a wrong type. A JSON
 * null on the way (or at the end) is LOOKUP_NULL. cur is what ptr[0..from) resolved to
 * (the document for from = 0); messages name the whole pointer. */
static Lookup lookup_from(struct json_object *cur, const char *ptr, size_t from,
                          struct json_object **res, char *err, size_t errlen)
{
    const char *p = ptr + from;

    *res = NULL;
    if (*p != '\0' && *p != '/') {
        set_err(err, errlen, "bad JSON pointer \"%.40s\"", ptr);
        return LOOKUP_BAD;
    }
    while (*p) {
        const char *end = strchr(p + 1, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        enum json_type t;
        struct json_object *next = NULL;

        if (!cur)
            return LOOKUP_NULL;
        t = json_object_get_type(cur);
        if (t != json_type_object && t != json_type_array) {
            set_err(err, errlen, "wrong type at %.*s", shown(ptr, p), ptr);
            return LOOKUP_BAD;
        }
        if (n >= PTR_STEP_MAX) {
            set_err(err, errlen, "JSON pointer too long \"%.40s...\"", ptr);
            return LOOKUP_BAD;
        }
        Lookup lk = step_into(cur, p + 1, n - 1, &next);
        if (lk == LOOKUP_BAD) {
            /* A name (or "-") used on an array: an object was expected here. */
            set_err(err, errlen, "wrong type at %.*s", shown(ptr, p), ptr);
            return LOOKUP_BAD;
        }
        if (lk == LOOKUP_NULL)
            return LOOKUP_NULL;
        cur = next;
        p += n;
    }
    *res = cur;
    return cur ? LOOKUP_VALUE : LOOKUP_NULL;
}

static Lookup lookup(struct json_object *doc, const char *ptr, struct json_object **res, char *err,
                     size_t errlen)
{
    return lookup_from(doc, ptr, 0, res, err, errlen);
}

static bool map_text(struct json_object *v, Column c, ProviderRow *row, char *err, size_t errlen)
{
    const char *name = provider_column_names[c];
    const char *s;
    size_t len, bad;

    if (!json_object_is_type(v, json_type_string)) {
        set_err(err, errlen, "%s: expected a string, got %s", name,
                json_type_to_name(json_object_get_type(v)));
        return false;
    }
    s = json_object_get_string(v);
    len = (size_t)json_object_get_string_len(v);
    if (memchr(s, '\0', len)) {
        set_err(err, errlen, "%s: NUL in text", name);
        return false;
    }
    bad = utf8_valid_prefix(s, len); /* NUL is ruled out above */
    if (bad != len) {
        set_err(err, errlen, "%s: invalid UTF-8 at byte %zu of the text", name, bad);
        return false;
    }
    row->text[c] = s;
    row->len[c] = len;
    return true;
}

/* [+-]?(digits[.digits?]|.digits)([eE][+-]?digits)? over exactly len bytes: what a
 * "numeric string" coordinate may look like. strtod alone would also take hex, "inf",
 * "nan" and leading spaces. */
static bool numeric_string(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, int_digits = 0, frac_digits = 0, exp_digits = 0;

    if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
    while (i < len && is_digit(s[i])) {
        i++;
        int_digits++;
    }
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && is_digit(s[i])) {
            i++;
            frac_digits++;
        }
    }
    if (int_digits == 0 && frac_digits == 0)
        return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        while (i < len && is_digit(s[i])) {
            i++;
            exp_digits++;
        }
        if (exp_digits == 0)
            return false;
    }
    return i == len;
}

static bool map_coord(struct json_object *v, Column c, ProviderRow *row, char *err, size_t errlen)
{
    const char *name = provider_column_names[c];
    const double limit = c == COL_LATITUDE ? 90.0 : 180.0;
    const int k = c == COL_LATITUDE ? 0 : 1;
    double d;

    switch (json_object_get_type(v)) {
    case json_type_double:
    case json_type_int:
        d = json_object_get_double(v);
        break;
    case json_type_string: {
        const char *s = json_object_get_string(v);
        size_t len = (size_t)json_object_get_string_len(v);
        char *end = NULL;
        if (!numeric_string(s, len)) {
            set_err(err, errlen, "%s: not a number", name);
            return false;
        }
        /* json-c strings are NUL-terminated, and numeric_string saw no NUL before len.
         * strtod follows LC_NUMERIC: pgenrich never changes it from "C"; under a locale with
         * a decimal comma "48.85" would stop early and be refused, never misread. */
        d = strtod(s, &end);
        if (end != s + len) {
            set_err(err, errlen, "%s: not a number", name);
            return false;
        }
        break;
    }
    default:
        set_err(err, errlen, "%s: expected a number, got %s", name,
                json_type_to_name(json_object_get_type(v)));
        return false;
    }
    if (!isfinite(d) || d < -limit || d > limit) {
        set_err(err, errlen, "%s: out of range", name);
        return false;
    }
    row->coord[k] = d;
    row->has_coord[k] = true;
    return true;
}

/* Parse flags. JSON_TOKENER_STRICT was checked against json-c 0.16 for harm: it refuses
 * comments, trailing commas, leading zeros, malformed exponents ("1e+"), single-quoted
 * values and case variants of true/false/null, none of which is JSON, and it still takes
 * everything API.md allows (any RFC 8259 number, "-0", exponents, duplicate keys: the last
 * wins). It lets NaN/Infinity literals and huge integers (saturated to INT64_MIN or
 * UINT64_MAX) through; both fail the coordinate range check, and a text column refuses any
 * number. Trailing data is allowed here only so that its position can be reported: the
 * tokener eats whitespace after the value, and anything it leaves unread is refused.
 * JSON_TOKENER_VALIDATE_UTF8 is left out: prescan has already refused every body that is
 * not strict UTF-8 (json-c's own check is looser), so it would only scan the bytes again. */
#define TOKENER_FLAGS (JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS)

struct ProviderParser {
    struct json_tokener *tok;
    int max_depth;
};

ProviderParser *provider_parser_new(int max_depth)
{
    if (max_depth < 1)
        return NULL;
    ProviderParser *pp = malloc(sizeof *pp);
    if (pp == NULL)
        return NULL;
    pp->tok = json_tokener_new_ex(max_depth);
    if (pp->tok == NULL) {
        free(pp);
        return NULL;
    }
    json_tokener_set_flags(pp->tok, TOKENER_FLAGS);
    pp->max_depth = max_depth;
    return pp;
}

void provider_parser_free(ProviderParser *pp)
{
    if (pp == NULL)
        return;
    json_tokener_free(pp->tok);
    free(pp);
}

/* provider_map with pp's tokener, or (pp NULL) one made for this answer. */
static MapResult map_answer(ProviderParser *pp, const ProviderMap *m, const char *body, size_t len,
                            int max_depth, ProviderRow *row, char *err, size_t errlen)
{
    MapResult res = MAP_BAD;
    struct json_tokener *tok = NULL;
    struct json_object *doc = NULL, *v;
    enum json_tokener_error jerr;
    size_t ws = 0;

    memset(row, 0, sizeof(*row));
    clear_err(err, errlen);

    while (ws < len && is_json_ws((unsigned char)body[ws]))
        ws++;
    if (ws == len) {
        set_err(err, errlen, "empty body");
        goto done;
    }
    if (len > INT_MAX) {
        set_err(err, errlen, "body too large to parse");
        goto done;
    }
    if (max_depth < 1) {
        set_err(err, errlen, "JSON depth limit must be at least 1");
        goto done;
    }
    if (!prescan(body, len, err, errlen))
        goto done;

    if (pp != NULL) {
        tok = pp->tok;
        json_tokener_reset(tok);
    } else if ((tok = json_tokener_new_ex(max_depth)) != NULL) {
        json_tokener_set_flags(tok, TOKENER_FLAGS);
    } else {
        set_err(err, errlen, "out of memory");
        goto done;
    }
    doc = json_tokener_parse_ex(tok, body, (int)len);
    jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_continue) {
        set_err(err, errlen, "invalid JSON: unexpected end of body");
        goto done;
    }
    if (jerr != json_tokener_success) {
        set_err(err, errlen, "invalid JSON: %s at byte %zu", json_tokener_error_desc(jerr),
                json_tokener_get_parse_end(tok));
        goto done;
    }
    if (json_tokener_get_parse_end(tok) != len) {
        set_err(err, errlen, "invalid JSON: trailing data at byte %zu",
                json_tokener_get_parse_end(tok));
        goto done;
    }
    if (!json_object_is_type(doc, json_type_object)) {
        set_err(err, errlen, "top level is not an object");
        goto done;
    }

    switch (lookup(doc, m->presence, &v, err, errlen)) {
    case LOOKUP_BAD:
        goto done;
    case LOOKUP_NULL:
        res = MAP_MISS;
        goto done;
    case LOOKUP_VALUE:
        if (!json_object_is_type(v, json_type_object)) {
            set_err(err, errlen, "wrong type at %.60s", m->presence);
            goto done;
        }
        break;
    }

    /* Columns under the presence object (/location/cityLabel under /location) start from
     * it rather than from the top: one step each instead of two. */
    struct json_object *present = v;
    size_t plen = strlen(m->presence);
    for (int c = 0; c < COL_COUNT; c++) {
        if (!m->ptr[c])
            continue;
        bool under =
            plen > 0 && strncmp(m->ptr[c], m->presence, plen) == 0 && m->ptr[c][plen] == '/';
        Lookup lk = under ? lookup_from(present, m->ptr[c], plen, &v, err, errlen)
                          : lookup(doc, m->ptr[c], &v, err, errlen);
        if (lk == LOOKUP_BAD)
            goto done;
        if (lk == LOOKUP_NULL)
            continue;
        if (c < COL_TEXT_COUNT ? !map_text(v, (Column)c, row, err, errlen)
                               : !map_coord(v, (Column)c, row, err, errlen))
            goto done;
    }
    row->doc = doc;
    doc = NULL;
    res = MAP_FOUND;
done:
    if (res != MAP_FOUND)
        memset(row, 0, sizeof(*row));
    if (res != MAP_BAD)
        clear_err(err, errlen);
    json_object_put(doc);
    if (tok && pp == NULL)
        json_tokener_free(tok);
    return res;
}

MapResult provider_map(const ProviderMap *m, const char *body, size_t len, int max_depth,
                       ProviderRow *row, char *err, size_t errlen)
{
    return map_answer(NULL, m, body, len, max_depth, row, err, errlen);
}

MapResult provider_map_with(ProviderParser *pp, const ProviderMap *m, const char *body, size_t len,
                            ProviderRow *row, char *err, size_t errlen)
{
    return map_answer(pp, m, body, len, pp->max_depth, row, err, errlen);
}

void provider_row_free(ProviderRow *row)
{
    if (!row)
        return;
    json_object_put(row->doc);
    memset(row, 0, sizeof(*row));
}
