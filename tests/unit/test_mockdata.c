/* Unit tests for mockdata: determinism, outcome shares, every JSON rendering parsed back by
 * json-c and mapped as API.md says the worker must (values bit-exact), coverage of the tricky
 * cases, escaping, the strict ID decoder, the COPY codec and the batch body parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "mockdata.h"
#include "unit.h"

#define OUT_CAP 16384

static size_t id_of(unsigned long n, char *buf, size_t cap)
{
    return (size_t)snprintf(buf, cap, "%lu", n);
}

/* ---------------------------------------------------------------- a reference mapper */

/* What the worker must make of an answer (API.md), done independently with json-c. */
typedef struct Mapped {
    MockOutcome outcome;
    const char *text[MOCK_FIELD_COUNT];
    size_t len[MOCK_FIELD_COUNT];
    bool has_lat, has_lon;
    double lat, lon;
} Mapped;

/* false: wrong type or forbidden content (NUL, bad UTF-8). */
static bool map_text(json_object *parent, const char *key, const char **v, size_t *len)
{
    json_object *o = NULL;

    *v = NULL;
    *len = 0;
    if (!json_object_object_get_ex(parent, key, &o) || o == NULL)
        return true;
    if (!json_object_is_type(o, json_type_string))
        return false;
    *v = json_object_get_string(o);
    *len = (size_t)json_object_get_string_len(o);
    return memchr(*v, '\0', *len) == NULL && mockdata_utf8_valid(*v, *len);
}

static bool map_coord(json_object *parent, const char *key, double lim, bool *has, double *v)
{
    json_object *o = NULL;

    *has = false;
    if (!json_object_object_get_ex(parent, key, &o) || o == NULL)
        return true;
    if (json_object_is_type(o, json_type_double) || json_object_is_type(o, json_type_int)) {
        *v = json_object_get_double(o);
    } else if (json_object_is_type(o, json_type_string)) {
        const char *s = json_object_get_string(o);
        char *end = NULL;
        *v = strtod(s, &end);
        if (end == s || *end != '\0')
            return false;
    } else {
        return false;
    }
    *has = true;
    return *v >= -lim && *v <= lim;
}

static json_object *parse(const char *s, size_t n)
{
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, s, (int)n);

    if (o && tok->char_offset != (int)n) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

static void map_primary(json_object *root, Mapped *m)
{
    static const char *const keys[MOCK_FIELD_COUNT] = {NULL,        "geoLabel",   "streetAddress",
                                                       "cityLabel", "postalCode", "countryLabel"};
    json_object *loc = NULL;

    memset(m, 0, sizeof(*m));
    m->outcome = MOCK_BAD;
    if (!root || !json_object_is_type(root, json_type_object))
        return;
    if (!map_text(root, "label", &m->text[MOCK_LABEL], &m->len[MOCK_LABEL]))
        return;
    if (!json_object_object_get_ex(root, "location", &loc) || loc == NULL) {
        m->outcome = MOCK_NO_LOCATION;
        return;
    }
    if (!json_object_is_type(loc, json_type_object))
        return;
    for (int f = 1; f < MOCK_FIELD_COUNT; f++) {
        if (!map_text(loc, keys[f], &m->text[f], &m->len[f]))
            return;
    }
    if (!map_coord(loc, "latitude", 90.0, &m->has_lat, &m->lat) ||
        !map_coord(loc, "longitude", 180.0, &m->has_lon, &m->lon))
        return;
    m->outcome = MOCK_FOUND;
}

static void map_secondary(json_object *root, Mapped *m)
{
    static const char *const keys[MOCK_FIELD_COUNT] = {NULL,   "state",    "road",
                                                       "city", "postcode", "country"};
    json_object *results = NULL, *r0, *addr = NULL;

    memset(m, 0, sizeof(*m));
    m->outcome = MOCK_BAD;
    if (!root || !json_object_object_get_ex(root, "results", &results) ||
        !json_object_is_type(results, json_type_array))
        return;
    if (json_object_array_length(results) == 0) {
        m->outcome = MOCK_NO_LOCATION;
        return;
    }
    r0 = json_object_array_get_idx(results, 0);
    if (!json_object_is_type(r0, json_type_object))
        return;
    if (!map_text(r0, "name", &m->text[MOCK_LABEL], &m->len[MOCK_LABEL]))
        return;
    if (json_object_object_get_ex(r0, "address", &addr) && addr != NULL) {
        if (!json_object_is_type(addr, json_type_object))
            return;
        for (int f = 1; f < MOCK_FIELD_COUNT; f++) {
            if (!map_text(addr, keys[f], &m->text[f], &m->len[f]))
                return;
        }
    }
    if (!map_coord(r0, "lat", 90.0, &m->has_lat, &m->lat) ||
        !map_coord(r0, "lon", 180.0, &m->has_lon, &m->lon))
        return;
    m->outcome = MOCK_FOUND;
}

static void assert_same_double(double a, double b)
{
    assert_memory_equal(&a, &b, sizeof(a));
}

static void assert_values(const MockEntity *e, const Mapped *m, bool label_only)
{
    for (int f = 0; f < (label_only ? 1 : MOCK_FIELD_COUNT); f++) {
        if (e->text[f] == NULL) {
            assert_null(m->text[f]);
            continue;
        }
        assert_non_null(m->text[f]);
        assert_int_equal(e->len[f], m->len[f]);
        if (e->len[f] > 0)
            assert_memory_equal(e->text[f], m->text[f], e->len[f]);
    }
    if (label_only)
        return;
    assert_int_equal(e->has_lat, m->has_lat);
    assert_int_equal(e->has_lon, m->has_lon);
    if (e->has_lat)
        assert_same_double(e->lat, m->lat);
    if (e->has_lon)
        assert_same_double(e->lon, m->lon);
}

/* Render id both ways, parse with json-c and check what a worker would load. */
static void check_id(const char *id, size_t idlen)
{
    static char out[OUT_CAP];
    MockEntity e;
    Mapped m;
    json_object *root, *o = NULL;
    size_t n;

    mockdata_entity(id, idlen, &e);

    n = mockdata_json_primary(&e, id, idlen, out, sizeof(out));
    assert_true(n < sizeof(out));
    assert_int_equal(strlen(out), n);
    root = parse(out, n);
    if (e.bad == MOCK_BAD_NONE || e.bad == MOCK_BAD_LABEL_TYPE || e.bad == MOCK_BAD_LOCATION_TYPE ||
        e.bad == MOCK_BAD_LAT_RANGE || e.bad == MOCK_BAD_LON_RANGE || e.bad == MOCK_BAD_NUL_LABEL)
        assert_non_null(root); /* syntactically JSON (json-c does not check UTF-8) */
    if (root) {
        /* the id is echoed, as a string or a number */
        assert_true(json_object_object_get_ex(root, "id", &o));
        if (json_object_is_type(o, json_type_int)) {
            assert_true(e.present & MOCK_P_ID_NUMBER);
            assert_int_equal(json_object_get_int64(o), strtoll(id, NULL, 10));
        } else {
            assert_true(json_object_is_type(o, json_type_string));
            assert_int_equal(json_object_get_string_len(o), idlen);
            assert_memory_equal(json_object_get_string(o), id, idlen);
        }
    }
    if (e.outcome == MOCK_NOT_FOUND) {
        json_object *err = NULL, *st = NULL;
        assert_true(json_object_object_get_ex(root, "error", &err));
        assert_true(json_object_object_get_ex(err, "status", &st));
        assert_int_equal(json_object_get_int(st), 404);
    } else {
        map_primary(root, &m);
        assert_int_equal(m.outcome, e.outcome);
        if (e.outcome == MOCK_FOUND)
            assert_values(&e, &m, false);
        else if (e.outcome == MOCK_NO_LOCATION)
            assert_values(&e, &m, true);
    }
    json_object_put(root);

    n = mockdata_json_secondary(&e, id, idlen, out, sizeof(out));
    assert_true(n < sizeof(out));
    root = parse(out, n);
    map_secondary(root, &m);
    if (e.outcome == MOCK_FOUND) {
        assert_int_equal(m.outcome, MOCK_FOUND);
        assert_values(&e, &m, false);
    } else if (e.outcome == MOCK_BAD) {
        assert_int_equal(m.outcome, MOCK_BAD);
    } else {
        assert_int_equal(m.outcome, MOCK_NO_LOCATION); /* empty results */
    }
    json_object_put(root);
}

/* ---------------------------------------------------------------- tests */

static void test_determinism(void **state)
{
    static char a[OUT_CAP], b[OUT_CAP];
    const char *odd[] = {"", "Q90", "../admin", "a b?c", "\xf0\x9f\x98\x80", "\t\n", "007"};
    MockEntity e1, e2;
    char id[32];
    uint64_t h = 0xcbf29ce484222325ULL;

    (void)state;
    for (unsigned long i = 0; i < 3000 + ARRAY_LEN(odd); i++) {
        const char *p = id;
        size_t n;
        if (i < ARRAY_LEN(odd)) {
            p = odd[i];
            n = strlen(p);
        } else {
            n = id_of(i, id, sizeof(id));
        }
        mockdata_entity(p, n, &e1);
        memset(&e2, 0xA5, sizeof(e2)); /* stale garbage must not matter */
        mockdata_entity(p, n, &e2);
        size_t la = mockdata_json_primary(&e1, p, n, a, sizeof(a));
        size_t lb = mockdata_json_primary(&e2, p, n, b, sizeof(b));
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
        la = mockdata_expect_line(&e1, p, n, a, sizeof(a));
        lb = mockdata_expect_line(&e2, p, n, b, sizeof(b));
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
        for (size_t k = 0; k < la; k++) {
            h ^= (unsigned char)a[k];
            h *= 0x100000001b3ULL;
        }
    }
    /* Pins the generated data across builds and platforms: change it only on purpose. */
    if (h != 0x7aa12bcf1db4e109ULL)
        printf("expect digest changed: %016llx\n", (unsigned long long)h);
    assert_true(h == 0x7aa12bcf1db4e109ULL);
    assert_true(mockdata_hash("", 0) == mockdata_mix64(0xcbf29ce484222325ULL));
}

static void test_shares(void **state)
{
    unsigned long counts[4] = {0}, ordinary = 0;
    const unsigned long total = 100000;
    MockEntity e;
    char id[32];

    (void)state;
    for (unsigned long i = 0; i < total; i++) {
        size_t n = id_of(i, id, sizeof(id));
        mockdata_entity(id, n, &e);
        counts[e.outcome]++;
        if (e.outcome == MOCK_FOUND && e.variant == MOCK_V_ORDINARY)
            ordinary++;
    }
    printf("found %lu, no_location %lu, not_found %lu, bad %lu, ordinary %lu of %lu\n",
           counts[MOCK_FOUND], counts[MOCK_NO_LOCATION], counts[MOCK_NOT_FOUND], counts[MOCK_BAD],
           ordinary, total);
    assert_in_range(counts[MOCK_NOT_FOUND], 1700, 2300);
    assert_in_range(counts[MOCK_NO_LOCATION], 2600, 3400);
    assert_in_range(counts[MOCK_BAD], 800, 1200);
    assert_in_range(ordinary, 78500, 81500);
}

static void test_json_parses_back(void **state)
{
    const char *odd[] = {"",         "Q90", "../admin", "a b?c",           "\xf0\x9f\x98\x80",
                         "\t\n\"\\", "007", "0",        "123456789012345", "1234567890123456"};
    char id[32];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(odd); i++)
        check_id(odd[i], strlen(odd[i]));
    for (unsigned long i = 0; i < 30000; i++)
        check_id(id, id_of(i, id, sizeof(id)));
    for (unsigned long i = 0; i < 3000; i++)
        check_id(id, (size_t)snprintf(id, sizeof(id), "Q%lu", i));
}

/* Every kind of BAD entity is seen and really is bad for the reference mapper. */
static void test_bad_kinds(void **state)
{
    bool seen[MOCK_BAD_KIND_COUNT] = {false};
    MockEntity e;
    char id[32];

    (void)state;
    for (unsigned long i = 0; i < 20000; i++) {
        mockdata_entity(id, id_of(i, id, sizeof(id)), &e);
        if (e.outcome == MOCK_BAD)
            seen[e.bad] = true;
        else
            assert_int_equal(e.bad, MOCK_BAD_NONE);
    }
    for (int k = 1; k < MOCK_BAD_KIND_COUNT; k++)
        assert_true(seen[k]);
}

enum {
    T_TAB,
    T_NEWLINE,
    T_CR,
    T_BACKSLASH,
    T_DQUOTE,
    T_APOSTROPHE,
    T_EMOJI,
    T_NON_LATIN,
    T_BACKSLASH_N,
    T_EMPTY,
    T_NULL,
    T_MISSING_KEY,
    T_EXTRA_KEYS,
    T_COORD_STRING,
    T_LAT_P90,
    T_LAT_M90,
    T_LON_P180,
    T_LON_M180,
    T_ID_NUMBER,
    T_DUP_KEY,
    T_UNICODE_ESCAPE,
    T_PRETTY,
    T_NO_COORDS,
    T_EXPONENT,
    T_CONTROL,
    T_LOCATION_NULL,
    T_LOCATION_MISSING,
    T_COUNT
};

static bool has_byte(const MockEntity *e, char c)
{
    for (int f = 0; f < MOCK_FIELD_COUNT; f++) {
        if (e->text[f] && memchr(e->text[f], c, e->len[f]))
            return true;
    }
    return false;
}

static bool has_lead(const MockEntity *e, unsigned char lo, unsigned char hi)
{
    for (int f = 0; f < MOCK_FIELD_COUNT; f++) {
        for (size_t i = 0; e->text[f] && i < e->len[f]; i++) {
            unsigned char c = (unsigned char)e->text[f][i];
            if (c >= lo && c <= hi)
                return true;
        }
    }
    return false;
}

/* "id" written as a JSON number? */
static bool id_is_number_in(const char *json)
{
    const char *p = strstr(json, "\"id\":");

    if (!p)
        return false;
    p += 5;
    while (*p == ' ')
        p++;
    return *p >= '0' && *p <= '9';
}

static void test_tricky_coverage(void **state)
{
    static char out[OUT_CAP];
    unsigned seen[T_COUNT] = {0};
    MockEntity e;
    char id[32];

    (void)state;
    for (unsigned long i = 1; i <= 10000; i++) {
        size_t n = id_of(i, id, sizeof(id));
        mockdata_entity(id, n, &e);
        size_t len = mockdata_json_primary(&e, id, n, out, sizeof(out));
        assert_true(len < sizeof(out));
        if (e.outcome == MOCK_NO_LOCATION) {
            seen[T_LOCATION_NULL] += strstr(out, "\"location\":null") != NULL;
            seen[T_LOCATION_MISSING] += strstr(out, "\"location\"") == NULL;
        }
        if (e.outcome != MOCK_FOUND)
            continue;
        seen[T_TAB] += has_byte(&e, '\t');
        seen[T_NEWLINE] += has_byte(&e, '\n');
        seen[T_CR] += has_byte(&e, '\r');
        seen[T_BACKSLASH] += has_byte(&e, '\\');
        seen[T_DQUOTE] += has_byte(&e, '"');
        seen[T_APOSTROPHE] += has_byte(&e, '\'');
        seen[T_CONTROL] += has_byte(&e, '\b') && has_byte(&e, '\v') && has_byte(&e, '\x01');
        seen[T_EMOJI] += has_lead(&e, 0xF0, 0xF4);
        seen[T_NON_LATIN] += has_lead(&e, 0xD0, 0xEF);
        for (int f = 0; f < MOCK_FIELD_COUNT; f++) {
            if (!e.text[f]) {
                seen[T_NULL]++;
                continue;
            }
            seen[T_BACKSLASH_N] += e.len[f] == 2 && memcmp(e.text[f], "\\N", 2) == 0;
            seen[T_EMPTY] += e.len[f] == 0;
        }
        if (e.present & MOCK_P_NULL_MISSING) {
            for (int f = 0; f < MOCK_FIELD_COUNT; f++)
                seen[T_MISSING_KEY] += e.text[f] == NULL;
        }
        seen[T_EXTRA_KEYS] += strstr(out, "\"meta\"") != NULL;
        seen[T_COORD_STRING] += (e.present & MOCK_P_COORD_STRING) && e.has_lat;
        seen[T_LAT_P90] += e.has_lat && e.lat == 90.0;
        seen[T_LAT_M90] += e.has_lat && e.lat == -90.0;
        seen[T_LON_P180] += e.has_lon && e.lon == 180.0;
        seen[T_LON_M180] += e.has_lon && e.lon == -180.0;
        seen[T_ID_NUMBER] += id_is_number_in(out);
        seen[T_DUP_KEY] += strstr(out, "DECOY") != NULL;
        seen[T_UNICODE_ESCAPE] += strstr(out, "\\ud83") != NULL || strstr(out, "\\u04") != NULL;
        seen[T_PRETTY] += strchr(out, '\n') != NULL;
        seen[T_NO_COORDS] += !e.has_lat && !e.has_lon;
        seen[T_EXPONENT] += strstr(out, "e-") != NULL;
    }
    for (int t = 0; t < T_COUNT; t++) {
        if (seen[t] == 0)
            printf("tricky case %d never produced\n", t);
        assert_true(seen[t] > 0);
    }
}

/* The 80 % ordinary answers stay small: typical body 200-400 bytes. */
static void test_ordinary_size(void **state)
{
    static char out[OUT_CAP];
    unsigned long total = 0, count = 0, min = ~0UL, max = 0;
    MockEntity e;
    char id[32];

    (void)state;
    for (unsigned long i = 0; i < 10000; i++) {
        size_t n = id_of(i, id, sizeof(id));
        mockdata_entity(id, n, &e);
        if (e.outcome != MOCK_FOUND || e.variant != MOCK_V_ORDINARY)
            continue;
        size_t len = mockdata_json_primary(&e, id, n, out, sizeof(out));
        assert_int_equal(e.present, 0);
        total += len;
        count++;
        if (len < min)
            min = len;
        if (len > max)
            max = len;
    }
    printf("ordinary body: min %lu avg %lu max %lu bytes\n", min, total / count, max);
    assert_in_range(total / count, 200, 400);
}

static void test_json_escaping(void **state)
{
    char in[256], out[2048];

    (void)state;
    for (int c = 0; c < 256; c++)
        in[c] = (char)c;
    /* bytes 0x80.. are not UTF-8 alone: check only 0x00-0x7f, which must round-trip */
    size_t n = mockdata_json_string(in, 128, out, sizeof(out));
    assert_true(n < sizeof(out));
    for (size_t i = 0; i < n; i++)
        assert_true((unsigned char)out[i] >= 0x20);
    assert_non_null(strstr(out, "\\u0000"));
    assert_non_null(strstr(out, "\\b\\t\\n\\u000b\\f\\r"));
    assert_non_null(strstr(out, "\\u001f"));
    assert_non_null(strstr(out, "!\\\"#"));
    assert_non_null(strstr(out, "[\\\\]"));
    json_object *o = parse(out, n);
    assert_non_null(o);
    assert_int_equal(json_object_get_string_len(o), 128);
    assert_memory_equal(json_object_get_string(o), in, 128);
    json_object_put(o);

    /* snprintf-like truncation */
    char small[8];
    n = mockdata_json_string("abcdefghij", 10, small, sizeof(small));
    assert_int_equal(n, 12);
    assert_string_equal(small, "\"abcdef");
    assert_int_equal(mockdata_json_string("x", 1, NULL, 0), 3);

    /* \uXXXX output, surrogate pairs included, decodes to the same UTF-8 */
    MockEntity e;
    char id[32];
    int checked = 0;
    for (unsigned long i = 0; i < 20000 && checked < 20; i++) {
        size_t idn = id_of(i, id, sizeof(id));
        mockdata_entity(id, idn, &e);
        if (e.outcome != MOCK_FOUND || !(e.present & MOCK_P_UNICODE_ESCAPES) ||
            (e.variant != MOCK_V_EMOJI && e.variant != MOCK_V_SCRIPT))
            continue;
        char buf[OUT_CAP];
        n = mockdata_json_primary(&e, id, idn, buf, sizeof(buf));
        for (size_t k = 0; k < n; k++)
            assert_true((unsigned char)buf[k] < 0x80);
        checked++;
    }
    assert_true(checked > 0);
}

static void test_id_decode(void **state)
{
    static const struct {
        const char *raw;
        const char *want; /* NULL: rejected */
    } cases[] = {
        {"Q90", "Q90"},
        {"", ""},
        {"a%20b%3Fc", "a b?c"},
        {"..%2Fadmin", "../admin"},
        {"%2E", "."},
        {"%2E%2E", ".."},
        {"%2e%2e", ".."}, /* lowercase hex is accepted */
        {"%2E%2E%2E", "..."},
        {"a.b-c_d~e", "a.b-c_d~e"},
        {"%C3%A9t%C3%A9", "\xc3\xa9t\xc3\xa9"},
        {"%c3%a9", "\xc3\xa9"},
        {"%F0%9F%98%80", "\xf0\x9f\x98\x80"},
        {"%25", "%"},
        {"%2B%26%3D%2F%3F%23", "+&=/?#"},
        {"a b", NULL},
        {"a+b", NULL},
        {".", NULL},
        {"..", NULL},
        {"%2E.", NULL},
        {"%2Ea", NULL}, /* only an all-dots ID may encode its dots */
        {"%41", NULL},  /* over-encoded unreserved character */
        {"%7e", NULL},
        {"a/b", NULL},
        {"a?b", NULL},
        {"a:b", NULL},
        {"a'b", NULL},
        {"%", NULL},
        {"%4", NULL},
        {"%zz", NULL},
        {"%00", NULL},       /* NUL */
        {"%FF", NULL},       /* not UTF-8 */
        {"%C0%AF", NULL},    /* overlong */
        {"%ED%A0%80", NULL}, /* surrogate */
        {"\xc3\xa9", NULL},  /* raw non-ASCII */
    };
    char out[64];
    size_t n;

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        bool ok = mockdata_id_decode(cases[i].raw, strlen(cases[i].raw), out, sizeof(out), &n);
        if (ok != (cases[i].want != NULL))
            printf("id_decode(\"%s\") = %d\n", cases[i].raw, ok);
        assert_int_equal(ok, cases[i].want != NULL);
        if (ok) {
            assert_int_equal(n, strlen(cases[i].want));
            assert_memory_equal(out, cases[i].want, n);
        }
    }
    /* the output cap is enforced */
    assert_false(mockdata_id_decode("abcdef", 6, out, 5, &n));
    assert_true(mockdata_id_decode("abcde", 5, out, 5, &n));
}

static void test_copy_codec(void **state)
{
    char out[256], back[256];
    size_t n;

    (void)state;
    assert_false(mockdata_copy_decode("\\N", 2, out, &n));
    assert_true(mockdata_copy_decode("\\\\N", 3, out, &n));
    assert_int_equal(n, 2);
    assert_memory_equal(out, "\\N", 2);
    assert_true(mockdata_copy_decode("a\\tb\\nc\\rd\\be\\ff\\vg\\\\h", 22, out, &n));
    assert_int_equal(n, 15);
    assert_memory_equal(out, "a\tb\nc\rd\be\ff\vg\\h", 15);
    assert_true(mockdata_copy_decode("\\101\\0\\7x\\x41\\x4a\\xz\\q", 22, out, &n));
    assert_int_equal(n, 9);
    assert_memory_equal(out, "A\0\7xAJxzq", 9);
    assert_true(mockdata_copy_decode("", 0, out, &n));
    assert_int_equal(n, 0);
    assert_true(mockdata_copy_decode("end\\", 4, out, &n));
    assert_int_equal(n, 4);

    /* escape then decode gives back every byte string */
    for (unsigned seed = 1; seed < 2000; seed++) {
        char in[64];
        uint64_t x = seed;
        size_t len = seed % 60;
        for (size_t i = 0; i < len; i++) {
            x = mockdata_mix64(x + i);
            in[i] = (char)(x & 0xFF);
        }
        size_t m = mockdata_copy_escape(in, len, out, sizeof(out));
        assert_true(m < sizeof(out));
        assert_null(memchr(out, '\t', m));
        assert_null(memchr(out, '\n', m));
        assert_null(memchr(out, '\r', m));
        if (!(len == 2 && memcmp(out, "\\N", 2) == 0)) {
            assert_true(mockdata_copy_decode(out, m, back, &n));
            assert_int_equal(n, len);
            assert_memory_equal(back, in, len);
        }
    }
    n = mockdata_copy_escape("\\N", 2, out, sizeof(out));
    assert_string_equal(out, "\\\\N");
    assert_int_equal(n, 3);
}

/* Split an --expect line on tabs (no field holds a raw tab). */
static size_t split_tabs(char *line, char **f, size_t max)
{
    size_t k = 0;
    char *p = line;

    while (k < max) {
        f[k++] = p;
        p = strchr(p, '\t');
        if (!p)
            break;
        *p++ = '\0';
    }
    return k;
}

static void test_expect_line(void **state)
{
    static char out[OUT_CAP], dec[OUT_CAP];
    MockEntity e;
    char id[32];
    int outcomes_seen = 0;

    (void)state;
    for (unsigned long i = 0; i < 5000; i++) {
        size_t idn = id_of(i, id, sizeof(id));
        char *f[16];
        mockdata_entity(id, idn, &e);
        size_t n = mockdata_expect_line(&e, id, idn, out, sizeof(out));
        assert_true(n < sizeof(out));
        assert_int_equal(out[n - 1], '\n');
        assert_null(memchr(out, '\n', n - 1));
        out[n - 1] = '\0';
        assert_int_equal(split_tabs(out, f, 16), 10);
        assert_string_equal(f[0], id);
        assert_string_equal(f[1], mockdata_outcome_name(e.outcome));
        outcomes_seen |= 1 << e.outcome;
        for (int k = 0; k < MOCK_FIELD_COUNT; k++) {
            size_t dn;
            bool notnull = mockdata_copy_decode(f[2 + k], strlen(f[2 + k]), dec, &dn);
            if (e.outcome != MOCK_FOUND || !e.text[k]) {
                assert_false(notnull);
                continue;
            }
            assert_true(notnull);
            assert_int_equal(dn, e.len[k]);
            assert_memory_equal(dec, e.text[k], dn);
        }
        if (e.outcome == MOCK_FOUND && e.has_lat)
            assert_same_double(strtod(f[8], NULL), e.lat);
        else
            assert_string_equal(f[8], "\\N");
        if (e.outcome == MOCK_FOUND && e.has_lon)
            assert_same_double(strtod(f[9], NULL), e.lon);
        else
            assert_string_equal(f[9], "\\N");
    }
    assert_int_equal(outcomes_seen, 15);

    /* an ID with characters COPY must escape */
    mockdata_entity("a\tb\\", 4, &e);
    mockdata_expect_line(&e, "a\tb\\", 4, out, sizeof(out));
    assert_memory_equal(out, "a\\tb\\\\\t", 7);
}

static void test_batch_parse(void **state)
{
    MockIdList l = {NULL, NULL, NULL, 0};
    char err[128];
    const char *ok_body = " {\"select\": \"id,label\", \"x\": [1, {\"a\": null}, true, -2.5e3],"
                          " \"ids\": [\"Q90\", \"\", \"caf\\u00e9\", \"\\ud83d\\ude00\", \"a\\tb\"]"
                          " } \n";
    static const char *const bad[] = {
        "",
        "[]",
        "{}",
        "{\"ids\": \"Q90\"}",
        "{\"ids\": [1]}",
        "{\"ids\": [\"a\",]}",
        "{\"ids\": [\"a\"]",
        "{\"ids\": [\"a\"]} x",
        "{\"ids\": [\"\\ud83d\"]}",
        "{\"ids\": [\"\\ude00\"]}",
        "{\"ids\": [\"\\u0000\"]}",
        "{\"ids\": [\"\xff\"]}",
        "{\"ids\": [\"a\nb\"]}",
        "{\"ids\": [\"\\q\"]}",
        "{\"ids\": [\"a\"], \"x\": 01}",
        "{\"ids\": [\"a\"], \"x\": tru}",
        "{\"ids\": [\"a\"] \"x\": 1}",
        "{'ids': ['a']}",
    };

    (void)state;
    assert_int_equal(mockdata_parse_batch(ok_body, strlen(ok_body), 100, &l, err, sizeof(err)),
                     MOCK_BATCH_OK);
    assert_int_equal(l.count, 5);
    assert_int_equal(l.len[0], 3);
    assert_memory_equal(l.data + l.start[0], "Q90", 3);
    assert_int_equal(l.len[1], 0);
    assert_int_equal(l.len[2], 5);
    assert_memory_equal(l.data + l.start[2], "caf\xc3\xa9", 5);
    assert_int_equal(l.len[3], 4);
    assert_memory_equal(l.data + l.start[3], "\xf0\x9f\x98\x80", 4);
    assert_memory_equal(l.data + l.start[4], "a\tb", 3);
    mockdata_idlist_free(&l);
    mockdata_idlist_free(&l); /* idempotent */

    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        MockBatchStatus st =
            mockdata_parse_batch(bad[i], strlen(bad[i]), 100, &l, err, sizeof(err));
        if (st != MOCK_BATCH_BAD)
            printf("batch body %zu: status %d\n", i, (int)st);
        assert_int_equal(st, MOCK_BATCH_BAD);
        assert_true(err[0] != '\0');
        assert_null(l.data);
    }

    const char *three = "{\"ids\":[\"a\",\"b\",\"c\"]}";
    assert_int_equal(mockdata_parse_batch(three, strlen(three), 2, &l, err, sizeof(err)),
                     MOCK_BATCH_TOO_MANY);
    assert_int_equal(mockdata_parse_batch(three, strlen(three), 3, &l, err, sizeof(err)),
                     MOCK_BATCH_OK);
    assert_int_equal(l.count, 3);
    mockdata_idlist_free(&l);

    const char *dup = "{\"ids\":[\"a\",\"b\"],\"ids\":[\"c\"]}";
    assert_int_equal(mockdata_parse_batch(dup, strlen(dup), 10, &l, err, sizeof(err)),
                     MOCK_BATCH_OK);
    assert_int_equal(l.count, 1);
    assert_memory_equal(l.data + l.start[0], "c", 1);
    mockdata_idlist_free(&l);

    const char *empty = "{\"ids\":[]}";
    assert_int_equal(mockdata_parse_batch(empty, strlen(empty), 10, &l, err, sizeof(err)),
                     MOCK_BATCH_OK);
    assert_int_equal(l.count, 0);
    mockdata_idlist_free(&l);

    /* nesting depth is bounded */
    char deep[400];
    size_t k = (size_t)snprintf(deep, sizeof(deep), "{\"ids\":[],\"x\":");
    for (int i = 0; i < 100; i++)
        deep[k++] = '[';
    for (int i = 0; i < 100; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    assert_int_equal(mockdata_parse_batch(deep, k, 10, &l, err, sizeof(err)), MOCK_BATCH_BAD);
}

/* ---------------------------------------------------------------- per-ID quirks */

static void test_quirk_picks(void **state)
{
    /* Tags pinned from before forbidden/slow existed: the salts of the first five quirks
     * must not move, or the integration tests' expectations would. */
    static const struct {
        const char *id;
        const char *tags;
    } pinned[] = {
        {"9", "ctype,pad"},      {"16", "down,pad"}, {"24", "down,miss,nest"},
        {"30", "miss,ctype"},    {"6", "nest"},      {"Q90", "ctype"},
        {"caf\xc3\xa9", "miss"}, {"1", "down"},      {"2", ""},
    };
    const unsigned old_mods[MOCK_Q_COUNT] = {7, 5, 3, 11, 13, 0, 0};
    const unsigned mods[MOCK_Q_COUNT] = {2, 3, 4, 5, 6, 7, 8};
    unsigned hits[MOCK_Q_COUNT] = {0}, both_fs = 0, both_df = 0;
    char id[32], tags[128];
    const unsigned n = 70000;

    (void)state;
    assert_string_equal(mockdata_quirk_name(MOCK_Q_DOWN), "down");
    assert_string_equal(mockdata_quirk_name(MOCK_Q_NEST), "nest");
    assert_string_equal(mockdata_quirk_name(MOCK_Q_FORBIDDEN), "forbidden");
    assert_string_equal(mockdata_quirk_name(MOCK_Q_SLOW), "slow");

    for (size_t i = 0; i < ARRAY_LEN(pinned); i++) {
        size_t len = strlen(pinned[i].id);
        size_t k = mockdata_quirk_tags(old_mods, pinned[i].id, len, tags, sizeof(tags));
        assert_int_equal(k, strlen(pinned[i].tags));
        assert_string_equal(tags, pinned[i].tags);
    }

    for (unsigned i = 0; i < n; i++) {
        size_t len = id_of(i, id, sizeof(id));
        bool p[MOCK_Q_COUNT] = {false};
        for (int q = 0; q < MOCK_Q_COUNT; q++) {
            p[q] = mockdata_quirk_picked((MockQuirk)q, mods[q], id, len);
            hits[q] += p[q];
            /* 0 is off, 1 picks everything */
            assert_false(mockdata_quirk_picked((MockQuirk)q, 0, id, len));
            assert_true(mockdata_quirk_picked((MockQuirk)q, 1, id, len));
        }
        both_fs += p[MOCK_Q_FORBIDDEN] && p[MOCK_Q_SLOW];
        both_df += p[MOCK_Q_DOWN] && p[MOCK_Q_FORBIDDEN];
        /* the tag column lists exactly the picks, comma-separated, in quirk order */
        char want[128] = "";
        size_t w = 0;
        for (int q = 0; q < MOCK_Q_COUNT; q++) {
            if (p[q])
                w += (size_t)snprintf(want + w, sizeof(want) - w, "%s%s", w ? "," : "",
                                      mockdata_quirk_name((MockQuirk)q));
        }
        assert_int_equal(mockdata_quirk_tags(mods, id, len, tags, sizeof(tags)), w);
        assert_string_equal(tags, want);
    }
    /* about 1/mod each, and independent: pairs at about 1/(mod_a * mod_b) */
    for (int q = 0; q < MOCK_Q_COUNT; q++)
        assert_near((double)hits[q] / n, 1.0 / mods[q], 0.1 / mods[q]);
    assert_near((double)both_fs / n, 1.0 / 56, 0.2 / 56);
    assert_near((double)both_df / n, 1.0 / 14, 0.1 / 14);

    /* snprintf contract: the full length back, a truncated NUL-terminated prefix stored */
    const unsigned all[MOCK_Q_COUNT] = {1, 1, 1, 1, 1, 1, 1};
    const char *full = "down,miss,ctype,pad,nest,forbidden,slow";
    assert_int_equal(mockdata_quirk_tags(all, "x", 1, NULL, 0), strlen(full));
    assert_int_equal(mockdata_quirk_tags(all, "x", 1, tags, 8), strlen(full));
    assert_string_equal(tags, "down,mi");
    assert_int_equal(mockdata_quirk_tags(all, "x", 1, tags, sizeof(tags)), strlen(full));
    assert_string_equal(tags, full);
}

static void test_id_error(void **state)
{
    static const char *const ids[] = {"Q90", "", "a\"b\\c\td", "caf\xc3\xa9"};
    char out[256];

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(ids); i++) {
        size_t idlen = strlen(ids[i]);
        size_t n = mockdata_json_id_error(ids[i], idlen, 403, "forbidden", out, sizeof(out));
        json_object *o, *v, *err;
        assert_true(n < sizeof(out));
        assert_int_equal(mockdata_json_id_error(ids[i], idlen, 403, "forbidden", NULL, 0), n);
        o = json_tokener_parse(out);
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "id", &v));
        assert_int_equal(json_object_get_string_len(v), idlen);
        assert_memory_equal(json_object_get_string(v), ids[i], idlen);
        assert_true(json_object_object_get_ex(o, "error", &err));
        assert_true(json_object_object_get_ex(err, "status", &v));
        assert_int_equal(json_object_get_int(v), 403);
        assert_true(json_object_object_get_ex(err, "message", &v));
        assert_string_equal(json_object_get_string(v), "forbidden");
        json_object_put(o);
    }
    assert_int_equal(mockdata_json_id_error("Q90", 3, 403, "forbidden", out, sizeof(out)), 57);
    assert_string_equal(out,
                        "{\"id\":\"Q90\",\"error\":{\"status\":403,\"message\":\"forbidden\"}}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism),      cmocka_unit_test(test_shares),
        cmocka_unit_test(test_json_parses_back), cmocka_unit_test(test_bad_kinds),
        cmocka_unit_test(test_tricky_coverage),  cmocka_unit_test(test_ordinary_size),
        cmocka_unit_test(test_json_escaping),    cmocka_unit_test(test_id_decode),
        cmocka_unit_test(test_copy_codec),       cmocka_unit_test(test_expect_line),
        cmocka_unit_test(test_batch_parse),      cmocka_unit_test(test_quirk_picks),
        cmocka_unit_test(test_id_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
