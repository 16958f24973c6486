/* Unit tests for provider: ID percent-encoding, URL templates, excerpts, and the mapping
 * of primary and secondary answers (API.md sections 1 and 3) onto the standardized row,
 * including every bad-response rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "provider.h"

#define DEPTH 32

/* ---- helpers ----------------------------------------------------------------------------- */

static void check_encode(const char *id, size_t len, const char *want)
{
    Buf b;

    buf_init(&b, 1 << 20);
    assert_true(provider_encode_id(&b, id, len));
    assert_int_equal(b.len, strlen(want));
    if (b.len > 0)
        assert_string_equal(b.data, want);
    buf_free(&b);
}

#define ENCODE(lit, want) check_encode((lit), sizeof(lit) - 1, (want))

static void check_url(const char *tmpl, const char *id, const char *want)
{
    Buf b;
    char err[128];

    assert_true(provider_template_check(tmpl, err, sizeof(err)));
    buf_init(&b, 1 << 20);
    assert_true(provider_build_url(&b, tmpl, id, strlen(id)));
    assert_non_null(b.data);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

static void check_template_bad(const char *tmpl)
{
    char err[128];

    memset(err, 0, sizeof(err));
    assert_false(provider_template_check(tmpl, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    assert_true(strlen(err) < 100);
    assert_null(strchr(err, '\n'));
}

/* The error message rules: short, one line, set. */
static void check_err(const char *err)
{
    assert_true(strlen(err) > 0);
    assert_true(strlen(err) < 100);
    assert_null(strchr(err, '\n'));
    assert_null(strchr(err, '\r'));
}

static MapResult map_n(const ProviderMap *m, const char *body, size_t len, int depth,
                       ProviderRow *row, char *err, size_t errlen)
{
    /* A private copy of exactly len bytes, so that ASan and valgrind see any over-read. */
    char *copy = malloc(len ? len : 1);
    MapResult r;

    assert_non_null(copy);
    if (len)
        memcpy(copy, body, len);
    r = provider_map(m, copy, len, depth, row, err, errlen);

    /* A reused parser (the hot path's) answers exactly the same, also right after the
     * answer before it failed half-way: one parser per depth, kept across the tests. */
    static ProviderParser *parsers[4];
    static int depths[4];
    int k = 0;
    while (k < 3 && parsers[k] != NULL && depths[k] != depth)
        k++;
    if (parsers[k] == NULL || depths[k] != depth) {
        provider_parser_free(parsers[k]);
        parsers[k] = provider_parser_new(depth);
        depths[k] = depth;
    }
    if (depth < 1) {
        assert_null(parsers[k]);
    } else {
        ProviderRow again;
        char err2[128] = "";
        assert_non_null(parsers[k]);
        MapResult r2 = provider_map_with(parsers[k], m, copy, len, &again, err2, sizeof err2);
        assert_int_equal(r2, r);
        if (err != NULL && errlen >= sizeof err2)
            assert_string_equal(err2, err);
        for (int c = 0; c < COL_TEXT_COUNT; c++) {
            assert_int_equal(again.len[c], row->len[c]);
            assert_true((again.text[c] == NULL) == (row->text[c] == NULL));
            if (again.text[c] != NULL)
                assert_memory_equal(again.text[c], row->text[c], row->len[c]);
        }
        for (int c = 0; c < 2; c++) {
            assert_int_equal(again.has_coord[c], row->has_coord[c]);
            assert_memory_equal(&again.coord[c], &row->coord[c], sizeof(double));
        }
        provider_row_free(&again);
    }
    free(copy);
    return r;
}

/* Map a NUL-terminated body and expect MAP_FOUND. */
static void found(const ProviderMap *m, const char *body, ProviderRow *row)
{
    char err[128];
    MapResult r = map_n(m, body, strlen(body), DEPTH, row, err, sizeof(err));

    if (r != MAP_FOUND)
        print_error("unexpected result %d (%s) for %s\n", (int)r, err, body);
    assert_int_equal(r, MAP_FOUND);
    assert_non_null(row->doc);
    assert_string_equal(err, "");
}

static void miss_n(const ProviderMap *m, const char *body, size_t len)
{
    ProviderRow row;
    char err[128];
    MapResult r = map_n(m, body, len, DEPTH, &row, err, sizeof(err));

    if (r != MAP_MISS)
        print_error("unexpected result %d (%s) for %.*s\n", (int)r, err, (int)len, body);
    assert_int_equal(r, MAP_MISS);
    assert_null(row.doc);
    for (int c = 0; c < COL_TEXT_COUNT; c++)
        assert_null(row.text[c]);
    assert_false(row.has_coord[0] || row.has_coord[1]);
    assert_string_equal(err, "");
    provider_row_free(&row);
}

static void miss(const ProviderMap *m, const char *body)
{
    miss_n(m, body, strlen(body));
}

/* Expect MAP_BAD; when want is not NULL the reason must contain it. */
static void bad_n(const ProviderMap *m, const char *body, size_t len, int depth, const char *want)
{
    ProviderRow row;
    char err[128];
    MapResult r = map_n(m, body, len, depth, &row, err, sizeof(err));

    if (r != MAP_BAD)
        print_error("unexpected result %d for %.*s\n", (int)r, (int)len, body);
    assert_int_equal(r, MAP_BAD);
    assert_null(row.doc);
    for (int c = 0; c < COL_TEXT_COUNT; c++)
        assert_null(row.text[c]);
    assert_false(row.has_coord[0] || row.has_coord[1]);
    check_err(err);
    if (want && !strstr(err, want)) {
        print_error("reason \"%s\" lacks \"%s\"\n", err, want);
        fail();
    }
    provider_row_free(&row);
    provider_row_free(&row); /* harmless twice */
}

static void bad(const ProviderMap *m, const char *body, const char *want)
{
    bad_n(m, body, strlen(body), DEPTH, want);
}

#define BAD_LIT(m, lit, want) bad_n((m), (lit), sizeof(lit) - 1, DEPTH, (want))

static void assert_text(const ProviderRow *row, Column c, const char *want)
{
    assert_non_null(row->text[c]);
    assert_int_equal(row->len[c], strlen(want));
    assert_memory_equal(row->text[c], want, row->len[c] ? row->len[c] : 1);
}

static const ProviderMap *P = &provider_map_primary;
static const ProviderMap *S = &provider_map_secondary;

/* A primary answer whose latitude is the JSON text lat (and longitude 2.35). */
static MapResult map_lat(const char *lat, ProviderRow *row, char *err, size_t errlen)
{
    char body[256];

    snprintf(body, sizeof(body),
             "{\"id\":\"Q1\",\"location\":{\"latitude\":%s,\"longitude\":2.35}}", lat);
    return map_n(P, body, strlen(body), DEPTH, row, err, errlen);
}

static MapResult map_lon(const char *lon, ProviderRow *row, char *err, size_t errlen)
{
    char body[256];

    snprintf(body, sizeof(body), "{\"id\":\"Q1\",\"location\":{\"latitude\":1,\"longitude\":%s}}",
             lon);
    return map_n(P, body, strlen(body), DEPTH, row, err, errlen);
}

static void lat_ok(const char *lat, double want)
{
    ProviderRow row;
    char err[128];

    if (map_lat(lat, &row, err, sizeof(err)) != MAP_FOUND) {
        print_error("latitude %s refused: %s\n", lat, err);
        fail();
    }
    assert_true(row.has_coord[0]);
    assert_true(row.coord[0] == want);
    provider_row_free(&row);
}

static void lat_bad(const char *lat)
{
    ProviderRow row;
    char err[128];

    if (map_lat(lat, &row, err, sizeof(err)) != MAP_BAD) {
        print_error("latitude %s accepted\n", lat);
        fail();
    }
    check_err(err);
    assert_non_null(strstr(err, "latitude"));
    provider_row_free(&row);
}

static void lon_ok(const char *lon, double want)
{
    ProviderRow row;
    char err[128];

    if (map_lon(lon, &row, err, sizeof(err)) != MAP_FOUND) {
        print_error("longitude %s refused: %s\n", lon, err);
        fail();
    }
    assert_true(row.has_coord[1]);
    assert_true(row.coord[1] == want);
    provider_row_free(&row);
}

static void lon_bad(const char *lon)
{
    ProviderRow row;
    char err[128];

    if (map_lon(lon, &row, err, sizeof(err)) != MAP_BAD) {
        print_error("longitude %s accepted\n", lon);
        fail();
    }
    check_err(err);
    assert_non_null(strstr(err, "longitude"));
    provider_row_free(&row);
}

/* A primary answer with label set to the JSON text label. */
static MapResult map_label(const char *label, size_t len, ProviderRow *row, char *err,
                           size_t errlen)
{
    static const char head[] = "{\"id\":\"Q1\",\"label\":";
    static const char tail[] = ",\"location\":{}}";
    char *body = malloc(sizeof(head) + len + sizeof(tail));
    size_t n = 0;
    MapResult r;

    assert_non_null(body);
    memcpy(body, head, sizeof(head) - 1);
    n += sizeof(head) - 1;
    memcpy(body + n, label, len);
    n += len;
    memcpy(body + n, tail, sizeof(tail) - 1);
    n += sizeof(tail) - 1;
    r = map_n(P, body, n, DEPTH, row, err, errlen);
    free(body);
    return r;
}

static void label_ok(const char *json, size_t json_len, const char *want, size_t want_len)
{
    ProviderRow row;
    char err[128];

    if (map_label(json, json_len, &row, err, sizeof(err)) != MAP_FOUND) {
        print_error("label %.*s refused: %s\n", (int)json_len, json, err);
        fail();
    }
    assert_non_null(row.text[COL_LABEL]);
    assert_int_equal(row.len[COL_LABEL], want_len);
    assert_memory_equal(row.text[COL_LABEL], want, want_len ? want_len : 1);
    assert_int_equal(row.text[COL_LABEL][want_len], '\0');
    provider_row_free(&row);
}

static void label_bad(const char *json, size_t json_len, const char *want)
{
    ProviderRow row;
    char err[128];

    if (map_label(json, json_len, &row, err, sizeof(err)) != MAP_BAD) {
        print_error("label %.*s accepted\n", (int)json_len, json);
        fail();
    }
    check_err(err);
    if (want && !strstr(err, want)) {
        print_error("reason \"%s\" lacks \"%s\"\n", err, want);
        fail();
    }
    provider_row_free(&row);
}

#define LABEL_OK(json, want)  label_ok((json), sizeof(json) - 1, (want), sizeof(want) - 1)
#define LABEL_BAD(json, want) label_bad((json), sizeof(json) - 1, (want))

/* ---- percent-encoding and URLs ----------------------------------------------------------- */

static void test_encode_unreserved(void **state)
{
    (void)state;
    ENCODE("Q90", "Q90");
    ENCODE("AZaz09-._~", "AZaz09-._~");
    ENCODE("a.b", "a.b");
    ENCODE(".a", ".a");
    ENCODE("a..", "a..");
    ENCODE("~", "~");
    ENCODE("12345", "12345");
}

static void test_encode_reserved(void **state)
{
    (void)state;
    ENCODE("../admin", "..%2Fadmin");
    ENCODE("a b?c", "a%20b%3Fc");
    ENCODE("%", "%25");
    ENCODE("%2E", "%252E");
    ENCODE("/", "%2F");
    ENCODE("#frag", "%23frag");
    ENCODE("a+b&c=d;e", "a%2Bb%26c%3Dd%3Be");
    ENCODE("{id}", "%7Bid%7D");
    ENCODE("\\", "%5C");
    ENCODE("\r\n", "%0D%0A");
    ENCODE("\x7f", "%7F");
    ENCODE("a\0b", "a%00b");
    ENCODE("\xff\x80", "%FF%80");
    ENCODE("\xc3\xa9t\xc3\xa9", "%C3%A9t%C3%A9");
    ENCODE("\xf0\x9f\x98\x80", "%F0%9F%98%80");
}

static void test_encode_dots(void **state)
{
    (void)state;
    ENCODE(".", "%2E");
    ENCODE("..", "%2E%2E");
    ENCODE("...", "%2E%2E%2E");
    ENCODE("./", ".%2F"); /* not only dots: the '.' cannot form a segment on its own */
    ENCODE("", "");
}

static void test_encode_appends(void **state)
{
    Buf b;

    (void)state;
    buf_init(&b, 64);
    assert_true(buf_puts(&b, "x="));
    assert_true(provider_encode_id(&b, "a/b", 3));
    assert_string_equal(b.data, "x=a%2Fb");
    assert_true(provider_encode_id(&b, "", 0));
    assert_string_equal(b.data, "x=a%2Fb");
    buf_free(&b);
}

static void test_encode_long(void **state)
{
    char id[1000];
    Buf b;

    (void)state;
    memset(id, 0xff, sizeof(id));
    buf_init(&b, 1 << 20);
    assert_true(provider_encode_id(&b, id, sizeof(id)));
    assert_int_equal(b.len, 3 * sizeof(id));
    for (size_t i = 0; i < sizeof(id); i++)
        assert_memory_equal(b.data + 3 * i, "%FF", 3);
    buf_reset(&b);
    memset(id, 'a', sizeof(id));
    id[500] = ' ';
    assert_true(provider_encode_id(&b, id, sizeof(id)));
    assert_int_equal(b.len, sizeof(id) + 2);
    assert_memory_equal(b.data + 500, "%20a", 4);
    buf_free(&b);
}

static void test_encode_cap(void **state)
{
    char id[600];
    Buf b;

    (void)state;
    buf_init(&b, 5);
    assert_true(provider_encode_id(&b, "a b", 3)); /* exactly 5 */
    assert_string_equal(b.data, "a%20b");
    buf_reset(&b);
    assert_true(buf_puts(&b, "ab"));
    assert_false(provider_encode_id(&b, "c d", 3)); /* all or nothing */
    assert_int_equal(b.len, 2);
    assert_string_equal(b.data, "ab");
    buf_free(&b);

    /* A failure after an earlier chunk went in must be rolled back too. */
    memset(id, '/', sizeof(id));
    buf_init(&b, 1000);
    assert_true(buf_puts(&b, "pre"));
    assert_false(provider_encode_id(&b, id, sizeof(id)));
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "pre");
    buf_free(&b);
}

static void test_url_build(void **state)
{
    (void)state;
    check_url("http://127.0.0.1:8080/api/v2/entities/{id}?select=id,label,location", "Q90",
              "http://127.0.0.1:8080/api/v2/entities/Q90?select=id,label,location");
    check_url("http://h/api/v2/entities/{id}?select=id", "../admin",
              "http://h/api/v2/entities/..%2Fadmin?select=id");
    check_url("http://h/e/{id}?s=1", "a b?c", "http://h/e/a%20b%3Fc?s=1");
    check_url("http://h/e/{id}", ".", "http://h/e/%2E");
    check_url("http://h/e/{id}", "..", "http://h/e/%2E%2E");
    check_url("http://h/e/{id}", "...", "http://h/e/%2E%2E%2E");
    check_url("http://h/e/{id}", "a.b", "http://h/e/a.b");
    check_url("http://h/e/{id}", "%", "http://h/e/%25");
    check_url("http://h/e/{id}", "/", "http://h/e/%2F");
    check_url("http://h/e/{id}", "#frag", "http://h/e/%23frag");
    check_url("http://h/e/{id}", "\xc3\xa9", "http://h/e/%C3%A9");
    check_url("http://h/v1/lookup?entity={id}", "a&b=c", "http://h/v1/lookup?entity=a%26b%3Dc");
    check_url("http://h/{id}/x?q={id}", "a/b", "http://h/a%2Fb/x?q=a%2Fb");
    check_url("{id}{id}", "..", "%2E%2E%2E%2E");
    check_url("http://h/e/{id}", "", "http://h/e/");
}

static void test_url_cap(void **state)
{
    Buf b;

    (void)state;
    buf_init(&b, 12);
    assert_true(buf_puts(&b, "z"));
    assert_false(provider_build_url(&b, "http://h/{id}", "abc", 3)); /* 1 + 12 > 12 */
    assert_int_equal(b.len, 1);
    assert_string_equal(b.data, "z");
    assert_false(provider_build_url(&b, "h/{id}/{id}", "ab c", 4));
    assert_string_equal(b.data, "z");
    assert_true(provider_build_url(&b, "h/{id}", "a b", 3)); /* 1 + 7 */
    assert_string_equal(b.data, "zh/a%20b");
    buf_free(&b);
}

static void test_template_check(void **state)
{
    char err[8];

    (void)state;
    assert_true(
        provider_template_check("http://h/api/v2/entities/{id}?select=id,label,location", NULL, 0));
    assert_true(provider_template_check("{id}", NULL, 0));
    assert_true(provider_template_check("http://h/{id}/x?q={id}", NULL, 0));
    check_template_bad("");
    check_template_bad("http://h/api/v2/entities/");
    check_template_bad("http://h/{ID}");
    check_template_bad("http://h/{x}/{id}");
    check_template_bad("http://h/{id");
    check_template_bad("http://h/id}");
    check_template_bad("http://h/{{id}}");
    check_template_bad("http://h/{id}}");
    check_template_bad("http://h/{}{id}");
    check_template_bad("http://h/{ id}");
    check_template_bad("http://h/{id} x");
    check_template_bad("http://h/{id}\n");
    check_template_bad("http://h/\t{id}");
    check_template_bad("http://h/\x7f{id}");
    assert_false(provider_template_check(NULL, NULL, 0));
    /* A tiny err buffer is still NUL-terminated. */
    assert_false(provider_template_check("no id here", err, sizeof(err)));
    assert_int_equal(strlen(err), sizeof(err) - 1);
}

/* ---- excerpts ---------------------------------------------------------------------------- */

static void test_excerpt(void **state)
{
    Buf b;
    char big[1000];

    (void)state;
    buf_init(&b, 1 << 16);
    assert_true(provider_excerpt(&b, "<html>oops</html>", 17, 200));
    assert_string_equal(b.data, "<html>oops</html>");
    buf_reset(&b);
    assert_true(provider_excerpt(&b, "a\nb\tc\r\0d\x7f\xff\xc3\xa9", 12, 200));
    assert_int_equal(b.len, 12);
    assert_string_equal(b.data, "a?b?c??d????");
    buf_reset(&b);
    assert_true(provider_excerpt(&b, "abcdef", 6, 3));
    assert_string_equal(b.data, "abc");
    buf_reset(&b);
    memset(big, 'x', sizeof(big));
    big[999] = '\n';
    assert_true(provider_excerpt(&b, big, sizeof(big), sizeof(big)));
    assert_int_equal(b.len, sizeof(big));
    assert_int_equal(b.data[999], '?');
    buf_reset(&b);
    assert_true(provider_excerpt(&b, "abc", 3, 0));
    assert_int_equal(b.len, 0);
    buf_free(&b);

    buf_init(&b, 300);
    assert_true(buf_puts(&b, "e="));
    assert_false(provider_excerpt(&b, big, sizeof(big), 500));
    assert_string_equal(b.data, "e=");
    assert_true(provider_excerpt(&b, big, sizeof(big), 298));
    assert_int_equal(b.len, 300);
    buf_free(&b);
}

/* ---- primary mapping --------------------------------------------------------------------- */

static const char paris[] = "{\n"
                            "  \"id\": \"Q90\",\n"
                            "  \"label\": \"Paris\",\n"
                            "  \"location\": {\n"
                            "    \"geoLabel\": \"Ile-de-France\",\n"
                            "    \"streetAddress\": \"Place de l'Hotel de Ville\",\n"
                            "    \"cityLabel\": \"Paris\",\n"
                            "    \"postalCode\": \"75004\",\n"
                            "    \"countryLabel\": \"France\",\n"
                            "    \"latitude\": 48.8566,\n"
                            "    \"longitude\": 2.3522\n"
                            "  }\n"
                            "}\n";

static void test_column_names(void **state)
{
    static const char *const want[COL_COUNT] = {"label",      "geo_label",   "street_address",
                                                "city_label", "postal_code", "country_label",
                                                "latitude",   "longitude"};

    (void)state;
    for (int c = 0; c < COL_COUNT; c++)
        assert_string_equal(provider_column_names[c], want[c]);
}

static void test_primary_found(void **state)
{
    ProviderRow row;

    (void)state;
    found(P, paris, &row);
    assert_text(&row, COL_LABEL, "Paris");
    assert_text(&row, COL_GEO_LABEL, "Ile-de-France");
    assert_text(&row, COL_STREET_ADDRESS, "Place de l'Hotel de Ville");
    assert_text(&row, COL_CITY_LABEL, "Paris");
    assert_text(&row, COL_POSTAL_CODE, "75004");
    assert_text(&row, COL_COUNTRY_LABEL, "France");
    assert_true(row.has_coord[0] && row.has_coord[1]);
    assert_true(row.coord[0] == 48.8566);
    assert_true(row.coord[1] == 2.3522);
    provider_row_free(&row);
    assert_null(row.doc);
    provider_row_free(&row);
    provider_row_free(NULL);
}

static void test_primary_miss(void **state)
{
    (void)state;
    miss(P, "{\"id\":\"Q1\",\"label\":\"Nowhere\"}");
    miss(P, "{\"id\":\"Q1\",\"label\":\"Nowhere\",\"location\":null}");
    miss(P, "{}");
    miss(P, " {\"location\" : null} \n");
    /* The presence decides first: a miss does not look at the other columns. */
    miss(P, "{\"label\":5}");
}

static void test_primary_nulls_and_empty(void **state)
{
    ProviderRow row;

    (void)state;
    found(P, "{\"id\":\"Q1\",\"location\":{}}", &row);
    for (int c = 0; c < COL_TEXT_COUNT; c++)
        assert_null(row.text[c]);
    assert_false(row.has_coord[0] || row.has_coord[1]);
    provider_row_free(&row);

    found(P,
          "{\"label\":null,\"location\":{\"geoLabel\":null,\"streetAddress\":null,"
          "\"cityLabel\":null,\"postalCode\":null,\"countryLabel\":null,\"latitude\":null,"
          "\"longitude\":null}}",
          &row);
    for (int c = 0; c < COL_TEXT_COUNT; c++)
        assert_null(row.text[c]);
    assert_false(row.has_coord[0] || row.has_coord[1]);
    provider_row_free(&row);

    found(P, "{\"label\":\"\",\"location\":{\"cityLabel\":\"\",\"latitude\":0}}", &row);
    assert_text(&row, COL_LABEL, "");
    assert_text(&row, COL_CITY_LABEL, "");
    assert_null(row.text[COL_GEO_LABEL]);
    assert_true(row.has_coord[0]);
    assert_true(row.coord[0] == 0.0);
    assert_false(row.has_coord[1]);
    provider_row_free(&row);
}

static void test_primary_unknown_keys(void **state)
{
    ProviderRow row;

    (void)state;
    found(P,
          "{\"id\":\"Q1\",\"extra\":{\"deep\":[1,2,{\"x\":null}]},\"label\":\"A\","
          "\"labels\":[\"B\"],\"location\":{\"cityLabel\":\"C\",\"population\":2100000,"
          "\"aliases\":[\"x\",true,null],\"bbox\":{\"n\":1.5}},\"score\":-1.5e3,\"ok\":true,"
          "\"nothing\":null,\"nan\":NaN}",
          &row);
    assert_text(&row, COL_LABEL, "A");
    assert_text(&row, COL_CITY_LABEL, "C");
    assert_null(row.text[COL_GEO_LABEL]);
    provider_row_free(&row);

    /* A NUL or any other character in an ignored string is none of our business. */
    found(P, "{\"note\":\"a\\u0000b\",\"location\":{}}", &row);
    provider_row_free(&row);
}

static void test_primary_id_types(void **state)
{
    ProviderRow row;

    (void)state;
    found(P, "{\"id\":90,\"label\":\"Paris\",\"location\":{\"latitude\":1,\"longitude\":2}}", &row);
    assert_text(&row, COL_LABEL, "Paris");
    assert_true(row.coord[0] == 1.0 && row.coord[1] == 2.0);
    provider_row_free(&row);
    found(P, "{\"id\":\"90\",\"location\":{}}", &row);
    provider_row_free(&row);
    found(P, "{\"id\":12345678901234567890,\"location\":{}}", &row);
    provider_row_free(&row);
}

static void test_primary_wrong_types(void **state)
{
    (void)state;
    bad(P, "{\"label\":5,\"location\":{}}", "label");
    bad(P, "{\"label\":1.5,\"location\":{}}", "label");
    bad(P, "{\"label\":true,\"location\":{}}", "label");
    bad(P, "{\"label\":[\"Paris\"],\"location\":{}}", "label");
    bad(P, "{\"label\":{\"en\":\"Paris\"},\"location\":{}}", "label");
    bad(P, "{\"location\":[]}", "wrong type at /location");
    bad(P, "{\"location\":[{\"latitude\":1}]}", "wrong type at /location");
    bad(P, "{\"location\":\"Paris\"}", "wrong type at /location");
    bad(P, "{\"location\":5}", "wrong type at /location");
    bad(P, "{\"location\":false}", "wrong type at /location");
    bad(P, "{\"location\":{\"cityLabel\":75004}}", "city_label");
    bad(P, "{\"location\":{\"postalCode\":75004}}", "postal_code");
    bad(P, "{\"location\":{\"geoLabel\":{}}}", "geo_label");
    bad(P, "{\"location\":{\"streetAddress\":[]}}", "street_address");
    bad(P, "{\"location\":{\"countryLabel\":false}}", "country_label");
}

static void test_coord_numbers(void **state)
{
    (void)state;
    lat_ok("48.8566", 48.8566);
    lat_ok("-33", -33.0);
    lat_ok("0", 0.0);
    lat_ok("-0", 0.0);
    lat_ok("-0.0", 0.0);
    lat_ok("4.5e1", 45.0);
    lat_ok("4.5E+1", 45.0);
    lat_ok("450e-1", 45.0);
    lat_ok("1e-400", 0.0); /* underflows to zero: still a finite number in range */
    lat_ok("90", 90.0);
    lat_ok("-90", -90.0);
    lat_ok("90.0", 90.0);
    lat_ok("-90.0", -90.0);
    lon_ok("180", 180.0);
    lon_ok("-180", -180.0);
    lon_ok("-180.0", -180.0);
    lon_ok("179.99999", 179.99999);
}

static void test_coord_null(void **state)
{
    ProviderRow row;
    char err[128];

    (void)state;
    assert_int_equal(map_lat("null", &row, err, sizeof(err)), MAP_FOUND);
    assert_false(row.has_coord[0]);
    assert_true(row.has_coord[1]);
    provider_row_free(&row);
    found(P, "{\"location\":{\"longitude\":-1.5}}", &row);
    assert_false(row.has_coord[0]);
    assert_true(row.has_coord[1]);
    assert_true(row.coord[1] == -1.5);
    provider_row_free(&row);
}

static void test_coord_out_of_range(void **state)
{
    (void)state;
    lat_bad("90.0000001");
    lat_bad("-90.0000001");
    lat_bad("91");
    lat_bad("-91");
    lat_bad("180");
    lat_bad("1e999");
    lat_bad("-1e999");
    lat_bad("NaN");
    lat_bad("Infinity");
    lat_bad("-Infinity");
    lat_bad("99999999999999999999");
    lat_bad("-99999999999999999999");
    lat_bad("\"90.0000001\"");
    lat_bad("\"-91\"");
    lat_bad("\"1e999\"");
    lon_bad("180.0000001");
    lon_bad("-180.0000001");
    lon_bad("360");
    lon_bad("\"181\"");
}

static void test_coord_wrong_types(void **state)
{
    (void)state;
    lat_bad("true");
    lat_bad("false");
    lat_bad("{}");
    lat_bad("[48.85]");
    lon_bad("true");
    lon_bad("[]");
    lon_bad("{\"value\":2}");
}

static void test_coord_strings(void **state)
{
    (void)state;
    lat_ok("\"48.8566\"", 48.8566);
    lat_ok("\"-48.8566\"", -48.8566);
    lat_ok("\"+48.8566\"", 48.8566);
    lat_ok("\"48\"", 48.0);
    lat_ok("\"48.\"", 48.0);
    lat_ok("\".5\"", 0.5);
    lat_ok("\"-.5\"", -0.5);
    lat_ok("\"4.5e1\"", 45.0);
    lat_ok("\"4.5E-1\"", 0.45);
    lat_ok("\"1e+1\"", 10.0);
    lat_ok("\"00048.5\"", 48.5);
    lat_ok("\"90\"", 90.0);
    lat_ok("\"-90\"", -90.0);
    lon_ok("\"180\"", 180.0);
    lon_ok("\"-180.000\"", -180.0);
    lon_ok("\"2.3522\"", 2.3522);

    lat_bad("\"\"");
    lat_bad("\" 1\"");
    lat_bad("\"1 \"");
    lat_bad("\"\\t1\"");
    lat_bad("\"nan\"");
    lat_bad("\"NaN\"");
    lat_bad("\"inf\"");
    lat_bad("\"-inf\"");
    lat_bad("\"Infinity\"");
    lat_bad("\"0x10\"");
    lat_bad("\"0X1p3\"");
    lat_bad("\"1e999\"");
    lat_bad("\"1e\"");
    lat_bad("\"1e+\"");
    lat_bad("\"e5\"");
    lat_bad("\".\"");
    lat_bad("\"+\"");
    lat_bad("\"-\"");
    lat_bad("\"--1\"");
    lat_bad("\"+-1\"");
    lat_bad("\"1.2.3\"");
    lat_bad("\"1,5\"");
    lat_bad("\"48.85N\"");
    lat_bad("\"abc\"");
    lat_bad("\"1\\u00002\"");
    lat_bad("\"\\u0031\\u0000\"");
    lon_bad("\"east\"");
}

static void test_text_survives(void **state)
{
    (void)state;
    LABEL_OK("\"tab\\there\"", "tab\there");
    LABEL_OK("\"line\\nbreak\\r\\n\"", "line\nbreak\r\n");
    LABEL_OK("\"back\\\\slash\"", "back\\slash");
    LABEL_OK("\"\\\"quoted\\\"\"", "\"quoted\"");
    LABEL_OK("\"solidus \\/ \\b\\f\"", "solidus / \b\f");
    LABEL_OK("\"emoji \\ud83d\\ude00\"", "emoji \xf0\x9f\x98\x80");
    LABEL_OK("\"raw emoji \xf0\x9f\x98\x80\"", "raw emoji \xf0\x9f\x98\x80");
    LABEL_OK("\"\\u00e9t\\u00E9 \xc3\xa9t\xc3\xa9\"", "\xc3\xa9t\xc3\xa9 \xc3\xa9t\xc3\xa9");
    LABEL_OK("\"\\u20ac \xe2\x82\xac \\uffff\"", "\xe2\x82\xac \xe2\x82\xac \xef\xbf\xbf");
    LABEL_OK("\"\xf4\x8f\xbf\xbf\"", "\xf4\x8f\xbf\xbf"); /* U+10FFFF */
    LABEL_OK("\"\\u0001\\u001f\"", "\x01\x1f");
    LABEL_OK("\"raw\ttab\"", "raw\ttab"); /* json-c takes raw control characters */
    LABEL_OK("\"\\\\ud800\"", "\\ud800"); /* an escaped backslash: no surrogate here */
    LABEL_OK("\"'single'\"", "'single'");
    LABEL_OK("\"{\\\"a\\\":[1]}\"", "{\"a\":[1]}");
    LABEL_OK("\"\"", "");
}

static void test_text_nul(void **state)
{
    (void)state;
    LABEL_BAD("\"a\\u0000b\"", "NUL in text");
    LABEL_BAD("\"\\u0000\"", "NUL in text");
    LABEL_BAD("\"abc\\u0000\"", "NUL in text");
    bad(P, "{\"location\":{\"cityLabel\":\"Pa\\u0000ris\"}}", "city_label: NUL in text");
    /* A raw NUL byte anywhere in the body. */
    BAD_LIT(P, "{\"label\":\"a\0b\",\"location\":{}}", "NUL");
    BAD_LIT(P, "{\"location\":{}}\0", "NUL");
    BAD_LIT(P, "\0{\"location\":{}}", "NUL");
    /* json-c cuts keys at \u0000: "label\u0000x" must not pass for "label". */
    bad(P, "{\"label\\u0000x\":\"evil\",\"location\":{}}", "key");
    bad(P, "{\"location\":{\"cityLabel\\u0000\" : \"evil\"}}", "key");
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    LABEL_BAD("\"\xff\"", "UTF-8");
    LABEL_BAD("\"\xfe\"", "UTF-8");
    LABEL_BAD("\"\x80\"", "UTF-8");
    LABEL_BAD("\"\xc3\"", "UTF-8");             /* truncated */
    LABEL_BAD("\"\xc3(\"", "UTF-8");            /* bad continuation */
    LABEL_BAD("\"\xc0\xaf\"", "UTF-8");         /* overlong '/' */
    LABEL_BAD("\"\xc1\xbf\"", "UTF-8");         /* overlong */
    LABEL_BAD("\"\xe0\x80\xaf\"", "UTF-8");     /* overlong */
    LABEL_BAD("\"\xed\xa0\x80\"", "UTF-8");     /* encoded surrogate */
    LABEL_BAD("\"\xed\xbf\xbf\"", "UTF-8");     /* encoded surrogate */
    LABEL_BAD("\"\xf0\x80\x80\xaf\"", "UTF-8"); /* overlong */
    LABEL_BAD("\"\xf4\x90\x80\x80\"", "UTF-8"); /* above U+10FFFF */
    LABEL_BAD("\"\xf5\x80\x80\x80\"", "UTF-8");
    LABEL_BAD("\"\xf0\x9f\x98\"", "UTF-8"); /* truncated emoji */
    /* Also outside mapped values: the whole body must be UTF-8. */
    BAD_LIT(P, "{\"other\":\"\xff\",\"location\":{}}", "UTF-8");
    BAD_LIT(P, "{\"location\":{}}  \xc3", "UTF-8");
}

static void test_lone_surrogates(void **state)
{
    (void)state;
    LABEL_BAD("\"\\ud800\"", "surrogate");
    LABEL_BAD("\"\\uDBFF\"", "surrogate");
    LABEL_BAD("\"\\udc00\"", "surrogate");
    LABEL_BAD("\"x\\udfffx\"", "surrogate");
    LABEL_BAD("\"\\ud800x\"", "surrogate");
    LABEL_BAD("\"\\ud800\\u0041\"", "surrogate");
    LABEL_BAD("\"\\ud800\\ud800\"", "surrogate");
    LABEL_BAD("\"\\ude00\\ud83d\"", "surrogate"); /* pair in the wrong order */
    LABEL_BAD("\"\\ud83d\\n\"", "surrogate");
    LABEL_BAD("\"\\ud83d\\", NULL); /* truncated */
    bad(P, "{\"elsewhere\":\"\\ud800\",\"location\":{}}", "surrogate");
    LABEL_OK("\"\\ud83d\\ude00\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80\xf0\x9f\x98\x80");
    LABEL_OK("\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf");
}

static void test_depth(void **state)
{
    static const char body[] = "{\"location\":{\"latitude\":1}}";
    char deep[512];
    size_t n = 0;

    (void)state;
    /* json-c counts every value level: the top object, location, then latitude's value. */
    ProviderRow row;
    char err[128];
    assert_int_equal(map_n(P, body, strlen(body), 3, &row, err, sizeof(err)), MAP_FOUND);
    provider_row_free(&row);
    bad_n(P, body, strlen(body), 2, "nesting");
    bad_n(P, body, strlen(body), 1, "nesting");
    bad_n(P, body, strlen(body), 0, "depth");
    bad_n(P, body, strlen(body), -1, "depth");

    /* 40 nested arrays in an ignored key: over the default limit of 32. */
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"location\":{},\"x\":");
    for (int i = 0; i < 40; i++)
        deep[n++] = '[';
    for (int i = 0; i < 40; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    bad_n(P, deep, n, DEPTH, "nesting");
    assert_int_equal(map_n(P, deep, n, 64, &row, err, sizeof(err)), MAP_FOUND);
    provider_row_free(&row);
}

static void test_syntax(void **state)
{
    ProviderRow row;

    (void)state;
    bad(P, "", "empty");
    bad(P, "   \n\t ", "empty");
    bad(P, "{\"location\":{}} x", "trailing");
    bad(P, "{\"location\":{}}{}", "trailing");
    bad(P, "{\"location\":{}},", "trailing");
    bad(P, "{\"location\":{}} // c", NULL);
    bad(P, "{\"location\":{}", "end of body");
    bad(P, "{\"location\":{\"cityLabel\":\"Par", "end of body");
    bad(P, "{\"location\"", NULL);
    bad(P, "{", NULL);
    bad(P, "<html>502 Bad Gateway</html>", "invalid JSON");
    bad(P, "{location:{}}", "invalid JSON");
    bad(P, "{'location':{}}", "single quote");
    bad(P, "{\"location\":{'cityLabel':\"x\"}}", "single quote");
    bad(P, "{\"label\":'x',\"location\":{}}", "single quote");
    bad(P, "{\"location\":{},}", "invalid JSON");
    bad(P, "{\"x\":[1,],\"location\":{}}", "invalid JSON");
    bad(P, "/* c */{\"location\":{}}", "invalid JSON");
    bad(P, "{\"x\":01,\"location\":{}}", "invalid JSON");
    bad(P, "{\"x\":TRUE,\"location\":{}}", "invalid JSON");
    bad(P, "{\"x\":\"\\x\",\"location\":{}}", "invalid JSON");
    bad(P, "{\"x\":\"\\u12\",\"location\":{}}", "invalid JSON");
    bad(P, "{\"x\":\"\\u12G4\",\"location\":{}}", "invalid JSON");
    bad(P, "{\"x\":1e+,\"location\":{}}", "invalid JSON");
    /* Trailing whitespace is fine, so is leading whitespace. */
    found(P, " \r\n\t{\"location\":{}} \r\n\t", &row);
    provider_row_free(&row);
}

static void test_top_level(void **state)
{
    (void)state;
    bad(P, "[]", "top level");
    bad(P, "[{\"location\":{}}]", "top level");
    bad(P, "\"location\"", "top level");
    bad(P, "null ", "top level");
    bad(P, "true ", "top level");
    bad(P, "true", NULL); /* json-c wants one more byte after a top-level literal */
    bad(P, "12", NULL);
    bad(P, "12 ", "top level");
}

static void test_duplicate_keys(void **state)
{
    ProviderRow row;

    (void)state;
    found(P, "{\"label\":\"first\",\"label\":\"second\",\"location\":{}}", &row);
    assert_text(&row, COL_LABEL, "second");
    provider_row_free(&row);
    found(P, "{\"label\":5,\"label\":\"ok\",\"location\":{}}", &row);
    assert_text(&row, COL_LABEL, "ok");
    provider_row_free(&row);
    found(P, "{\"location\":null,\"location\":{\"latitude\":1,\"latitude\":2}}", &row);
    assert_true(row.coord[0] == 2.0);
    provider_row_free(&row);
    miss(P, "{\"location\":{\"latitude\":1},\"location\":null}");
    bad(P, "{\"label\":\"ok\",\"label\":5,\"location\":{}}", "label");
}

static void test_err_is_short(void **state)
{
    char *body = malloc(200000);
    ProviderRow row;
    char err[512];
    size_t n = 0;

    (void)state;
    assert_non_null(body);
    n += (size_t)snprintf(body, 200000, "{\"label\":");
    memset(body + n, '7', 100000);
    n += 100000;
    n += (size_t)snprintf(body + n, 200000 - n, ",\"location\":{}}");
    assert_int_equal(map_n(P, body, n, DEPTH, &row, err, sizeof(err)), MAP_BAD);
    check_err(err);
    assert_null(strstr(err, "7777"));

    n = 0;
    n += (size_t)snprintf(body, 200000, "{\"location\":{},\"x\":\"");
    memset(body + n, 'y', 100000);
    n += 100000;
    body[n++] = '\xff';
    assert_int_equal(map_n(P, body, n, DEPTH, &row, err, sizeof(err)), MAP_BAD);
    check_err(err);
    assert_null(strstr(err, "yyyy"));
    free(body);

    /* err may be NULL or tiny. */
    assert_int_equal(provider_map(P, "[]", 2, DEPTH, &row, NULL, 0), MAP_BAD);
    assert_int_equal(provider_map(P, "[]", 2, DEPTH, &row, err, 1), MAP_BAD);
    assert_string_equal(err, "");
}

static void test_large_body(void **state)
{
    /* Something near the 1 MiB default cap parses, and quickly. */
    size_t cap = 1 << 20, n = 0;
    char *body = malloc(cap);
    ProviderRow row;
    char err[128];

    (void)state;
    assert_non_null(body);
    n += (size_t)snprintf(body, cap, "{\"label\":\"");
    for (; n < cap - 100; n++)
        body[n] = (n % 7) ? 'a' : ' ';
    n += (size_t)snprintf(body + n, cap - n, "\",\"location\":{\"latitude\":\"1.5\"}}");
    assert_int_equal(map_n(P, body, n, DEPTH, &row, err, sizeof(err)), MAP_FOUND);
    assert_true(row.len[COL_LABEL] > cap - 200);
    assert_true(row.coord[0] == 1.5);
    provider_row_free(&row);
    free(body);
}

/* ---- secondary mapping ------------------------------------------------------------------- */

static void test_secondary_found(void **state)
{
    ProviderRow row;

    (void)state;
    found(S,
          "{\"results\":[{\"name\":\"Paris\",\"lat\":48.8566,\"lon\":2.3522,\"address\":"
          "{\"road\":\"Rue de Rivoli\",\"city\":\"Paris\",\"postcode\":\"75004\",\"state\":"
          "\"Ile-de-France\",\"country\":\"France\"}},{\"name\":\"Paris, Texas\"}]}",
          &row);
    assert_text(&row, COL_LABEL, "Paris");
    assert_text(&row, COL_GEO_LABEL, "Ile-de-France");
    assert_text(&row, COL_STREET_ADDRESS, "Rue de Rivoli");
    assert_text(&row, COL_CITY_LABEL, "Paris");
    assert_text(&row, COL_POSTAL_CODE, "75004");
    assert_text(&row, COL_COUNTRY_LABEL, "France");
    assert_true(row.coord[0] == 48.8566 && row.coord[1] == 2.3522);
    provider_row_free(&row);

    found(S, "{\"results\":[{\"lat\":\"-33.86\",\"lon\":\"151.2\"}]}", &row);
    assert_null(row.text[COL_LABEL]);
    assert_null(row.text[COL_CITY_LABEL]);
    assert_true(row.coord[0] == -33.86 && row.coord[1] == 151.2);
    provider_row_free(&row);

    found(S, "{\"results\":[{\"name\":\"X\",\"address\":null}]}", &row);
    assert_text(&row, COL_LABEL, "X");
    assert_null(row.text[COL_CITY_LABEL]);
    provider_row_free(&row);

    found(S, "{\"results\":[{\"address\":{}}],\"location\":5}", &row);
    provider_row_free(&row);
}

static void test_secondary_miss(void **state)
{
    (void)state;
    miss(S, "{\"results\":[]}");
    miss(S, "{\"results\":null}");
    miss(S, "{\"results\":[null]}");
    miss(S, "{}");
    miss(S, "{\"results\":{}}");
}

static void test_secondary_bad(void **state)
{
    (void)state;
    bad(S, "{\"results\":\"none\"}", "wrong type at /results");
    bad(S, "{\"results\":5}", "wrong type at /results");
    bad(S, "{\"results\":[5]}", "wrong type at /results/0");
    bad(S, "{\"results\":[[]]}", "wrong type at /results/0");
    bad(S, "{\"results\":[{\"address\":[]}]}", "wrong type at /results/0/address");
    bad(S, "{\"results\":[{\"address\":\"Paris\"}]}", "wrong type at /results/0/address");
    bad(S, "{\"results\":[{\"name\":1}]}", "label");
    bad(S, "{\"results\":[{\"lat\":91,\"lon\":0}]}", "latitude");
    bad(S, "{\"results\":[{\"lat\":0,\"lon\":\"0x10\"}]}", "longitude");
    bad(S, "{\"results\":[{\"address\":{\"postcode\":75004}}]}", "postal_code");
    bad(S, "[{\"name\":\"Paris\"}]", "top level");
}

/* A hand-made mapping for JSON Pointer corners. */
static void test_pointer_corners(void **state)
{
    ProviderMap m = {.presence = "", .ptr = {NULL}};
    ProviderRow row;

    (void)state;
    /* The empty pointer is the whole document, which is always an object. */
    m.ptr[COL_LABEL] = "/a~1b";
    m.ptr[COL_CITY_LABEL] = "/m~0n";
    m.ptr[COL_GEO_LABEL] = "/arr/1";
    m.ptr[COL_COUNTRY_LABEL] = "/arr/4294967296"; /* json-c would wrap this to 0 */
    m.ptr[COL_POSTAL_CODE] = "/arr/2";
    m.ptr[COL_LATITUDE] = "/o//x";
    found(&m,
          "{\"a/b\":\"slash\",\"m~n\":\"tilde\",\"arr\":[\"zero\",\"one\"],\"o\":{\"\":{\"x\":3}}}",
          &row);
    assert_text(&row, COL_LABEL, "slash");
    assert_text(&row, COL_CITY_LABEL, "tilde");
    assert_text(&row, COL_GEO_LABEL, "one");
    assert_null(row.text[COL_COUNTRY_LABEL]);
    assert_null(row.text[COL_POSTAL_CODE]);
    assert_null(row.text[COL_STREET_ADDRESS]);
    assert_true(row.has_coord[0] && row.coord[0] == 3.0);
    assert_false(row.has_coord[1]);
    provider_row_free(&row);

    m.ptr[COL_LATITUDE] = NULL;
    m.ptr[COL_LABEL] = "/arr/x";
    bad(&m, "{\"arr\":[1]}", "wrong type at /arr");
    m.ptr[COL_LABEL] = "/arr/-";
    bad(&m, "{\"arr\":[1]}", "wrong type at /arr");
    m.ptr[COL_LABEL] = "/arr/01"; /* leading zeros are not an index (RFC 6901) */
    bad(&m, "{\"arr\":[1,2]}", "wrong type at /arr");
    m.ptr[COL_LABEL] = "/arr/";
    bad(&m, "{\"arr\":[1]}", "wrong type at /arr");
    m.ptr[COL_LABEL] = "/m~2n~"; /* not an escape: kept as it is */
    found(&m, "{\"m~2n~\":\"odd\"}", &row);
    assert_text(&row, COL_LABEL, "odd");
    provider_row_free(&row);
    m.ptr[COL_LABEL] = "/~01";
    found(&m, "{\"~1\":\"one pass\",\"/\":\"two\"}", &row);
    assert_text(&row, COL_LABEL, "one pass");
    provider_row_free(&row);
    m.ptr[COL_LABEL] = "/arr/12345678901x";
    bad(&m, "{\"arr\":[1]}", "wrong type at /arr");
    m.ptr[COL_LABEL] = "no slash";
    bad(&m, "{}", "pointer");
    m.ptr[COL_LABEL] = "";
    bad(&m, "{}", "label");

    m.presence = "/p";
    m.ptr[COL_LABEL] = "/p/q/r/s";
    bad(&m, "{\"p\":{\"q\":\"str\"}}", "wrong type at /p/q");
    bad(&m, "{\"p\":{\"q\":{\"r\":1}}}", "wrong type at /p/q/r");
    found(&m, "{\"p\":{\"q\":{\"r\":null}}}", &row);
    assert_null(row.text[COL_LABEL]);
    provider_row_free(&row);
    found(&m, "{\"p\":{\"q\":null}}", &row);
    provider_row_free(&row);
    bad(&m, "{\"p\":{\"q\":[]}}", "wrong type at /p/q"); /* a name used on an array */
    m.ptr[COL_LABEL] = "/p/q/0";
    bad(&m, "{\"p\":{\"q\":[5]}}", "label");
    found(&m, "{\"p\":{\"q\":[]}}", &row); /* index out of range */
    assert_null(row.text[COL_LABEL]);
    provider_row_free(&row);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_unreserved),
        cmocka_unit_test(test_encode_reserved),
        cmocka_unit_test(test_encode_dots),
        cmocka_unit_test(test_encode_appends),
        cmocka_unit_test(test_encode_long),
        cmocka_unit_test(test_encode_cap),
        cmocka_unit_test(test_url_build),
        cmocka_unit_test(test_url_cap),
        cmocka_unit_test(test_template_check),
        cmocka_unit_test(test_excerpt),
        cmocka_unit_test(test_column_names),
        cmocka_unit_test(test_primary_found),
        cmocka_unit_test(test_primary_miss),
        cmocka_unit_test(test_primary_nulls_and_empty),
        cmocka_unit_test(test_primary_unknown_keys),
        cmocka_unit_test(test_primary_id_types),
        cmocka_unit_test(test_primary_wrong_types),
        cmocka_unit_test(test_coord_numbers),
        cmocka_unit_test(test_coord_null),
        cmocka_unit_test(test_coord_out_of_range),
        cmocka_unit_test(test_coord_wrong_types),
        cmocka_unit_test(test_coord_strings),
        cmocka_unit_test(test_text_survives),
        cmocka_unit_test(test_text_nul),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_lone_surrogates),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_syntax),
        cmocka_unit_test(test_top_level),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_err_is_short),
        cmocka_unit_test(test_large_body),
        cmocka_unit_test(test_secondary_found),
        cmocka_unit_test(test_secondary_miss),
        cmocka_unit_test(test_secondary_bad),
        cmocka_unit_test(test_pointer_corners),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
