/* Unit tests for log's pure parts: splitting logfmt messages (bare, quoted, escaped and
 * unescaped outside text, free text), rendering them as logfmt and as JSON (escapes,
 * invalid UTF-8, numbers, lines cut to fit), and the level and format names. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "log.h"

#define TS "2026-12-02T01:02:03.456Z"

static int split(const char *msg, LogField *f)
{
    return log_split(msg, strlen(msg), f, LOG_FIELDS_MAX);
}

static void expect_field(const LogField *f, const char *key, const char *val, bool quoted)
{
    assert_int_equal(f->key_len, strlen(key));
    assert_memory_equal(f->key, key, f->key_len);
    if (f->val_len != strlen(val) || memcmp(f->val, val, f->val_len) != 0) {
        print_error("value \"%.*s\", wanted \"%s\"\n", (int)f->val_len, f->val, val);
        fail();
    }
    assert_int_equal(f->quoted, quoted);
}

/* Render msg; out holds the line without its newline. */
static size_t render(char *out, size_t cap, LogFormat fmt, const char *msg)
{
    size_t n = log_render(out, cap - 1, fmt, TS, "info", msg, strlen(msg));
    assert_true(n >= 1 && n < cap);
    assert_int_equal(out[n - 1], '\n');
    out[n - 1] = '\0';
    return n - 1;
}

static void expect_logfmt(const char *msg, const char *want)
{
    char out[4096];
    render(out, sizeof out, LOG_FORMAT_LOGFMT, msg);
    char full[4096];
    snprintf(full, sizeof full, "ts=" TS " level=info%s%s", *want ? " " : "", want);
    assert_string_equal(out, full);
}

static json_object *parse_json_line(const char *msg, size_t cap)
{
    char out[8192];
    assert_true(cap <= sizeof out);
    render(out, cap, LOG_FORMAT_JSON, msg);
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, out, (int)strlen(out));
    if (o == NULL || json_tokener_get_error(tok) != json_tokener_success) {
        print_error("not JSON: %s\n", out);
        fail();
    }
    json_tokener_free(tok);
    assert_true(json_object_is_type(o, json_type_object));
    return o;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        return NULL;
    return json_object_get_string(v);
}

static void test_split_simple(void **state)
{
    (void)state;
    LogField f[LOG_FIELDS_MAX];
    assert_int_equal(split("event=start job=\"nightly\" paging=keyset", f), 3);
    expect_field(&f[0], "event", "start", false);
    expect_field(&f[1], "job", "nightly", true);
    expect_field(&f[2], "paging", "keyset", false);
    assert_int_equal(split("", f), 0);
    assert_int_equal(split("   ", f), 0);
    assert_int_equal(split("  a=1   b=  c=\"\" ", f), 3);
    expect_field(&f[0], "a", "1", false);
    expect_field(&f[1], "b", "", false);
    expect_field(&f[2], "c", "", true);
    assert_int_equal(split("k.x-y_z=v=w", f), 1);
    expect_field(&f[0], "k.x-y_z", "v=w", false);
}

static void test_split_quoted(void **state)
{
    (void)state;
    LogField f[LOG_FIELDS_MAX];
    /* escapes stay in the value */
    assert_int_equal(split("detail=\"say \\\"hi\\\" \\\\ there\" n=2", f), 2);
    expect_field(&f[0], "detail", "say \\\"hi\\\" \\\\ there", true);
    /* outside text pasted unescaped: a quote closes only before a key= or the end */
    assert_int_equal(split("event=source_failed error=\"relation \"x\" does not exist\"", f), 2);
    expect_field(&f[1], "error", "relation \"x\" does not exist", true);
    assert_int_equal(split("error=\"a \"b\" c\" next=1", f), 2);
    expect_field(&f[0], "error", "a \"b\" c", true);
    expect_field(&f[1], "next", "1", false);
    assert_int_equal(split("e=\"x=\"y\"", f), 1);
    expect_field(&f[0], "e", "x=\"y", true);
}

static void test_split_not_logfmt(void **state)
{
    (void)state;
    LogField f[LOG_FIELDS_MAX];
    assert_int_equal(split("cannot initialise libcurl", f), -1);
    assert_int_equal(split("job \"lock\" is already running", f), -1);
    assert_int_equal(split("event=x trailing words", f), -1);
    assert_int_equal(split("=v", f), -1);
    assert_int_equal(split("1k=v", f), -1);
    assert_int_equal(split("k=\"unterminated", f), -1);
    assert_int_equal(split("k=\"ends in escape\\\"", f), -1);
    assert_int_equal(split("a=1 b", f), -1);
    /* too many fields for the array */
    assert_int_equal(log_split("a=1 b=2 c=3", 11, f, 2), -1);
}

static void test_render_logfmt(void **state)
{
    (void)state;
    expect_logfmt("event=start job=\"nightly\" paging=keyset",
                  "event=start job=\"nightly\" paging=keyset");
    expect_logfmt("event=x error=\"relation \"x\" does not exist\"",
                  "event=x error=\"relation \\\"x\\\" does not exist\"");
    expect_logfmt("job \"lock\" is already running (pgenrich pid 12)",
                  "msg=\"job \\\"lock\\\" is already running (pgenrich pid 12)\"");
    /* free text keeps its backslashes as they are: they are escaped, not resolved */
    expect_logfmt("path C:\\tmp", "msg=\"path C:\\\\tmp\"");
    /* a bare value that needs quoting gets quotes */
    expect_logfmt("a=b=c", "a=\"b=c\"");
    expect_logfmt("a=", "a=\"\"");
    expect_logfmt("", "");
    /* control characters and invalid UTF-8 */
    expect_logfmt("e=\"line\nbreak\ttab\r\x01\x7f\"", "e=\"line\\nbreak\\ttab\\r\\x01\\x7f\"");
    expect_logfmt("e=\"caf\xc3\xa9 \xff\xfe\"", "e=\"caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd\"");
    expect_logfmt("id=\xe2\x82", "id=\"\xef\xbf\xbd\xef\xbf\xbd\"");
}

static void test_render_json(void **state)
{
    (void)state;
    json_object *o = parse_json_line("event=progress done=12 percent=3.5 total=unknown "
                                     "job=\"42\" neg=-1 lead=007 e=1e3 dot=1.",
                                     8192);
    assert_string_equal(jstr(o, "ts"), TS);
    assert_string_equal(jstr(o, "level"), "info");
    assert_string_equal(jstr(o, "event"), "progress");
    json_object *v;
    assert_true(json_object_object_get_ex(o, "done", &v) && json_object_is_type(v, json_type_int));
    assert_int_equal(json_object_get_int64(v), 12);
    assert_true(json_object_object_get_ex(o, "percent", &v) &&
                json_object_is_type(v, json_type_double));
    assert_true(json_object_object_get_ex(o, "neg", &v) && json_object_is_type(v, json_type_int));
    assert_true(json_object_object_get_ex(o, "e", &v) && json_object_is_type(v, json_type_double));
    /* quoted values, and bare ones that are not JSON numbers, stay strings */
    assert_true(json_object_object_get_ex(o, "job", &v) &&
                json_object_is_type(v, json_type_string));
    assert_string_equal(jstr(o, "lead"), "007");
    assert_string_equal(jstr(o, "dot"), "1.");
    assert_string_equal(jstr(o, "total"), "unknown");
    json_object_put(o);

    o = parse_json_line("event=x error=\"say \\\"hi\\\" \\\\ \x01\n\xff\"", 8192);
    assert_string_equal(jstr(o, "error"), "say \"hi\" \\ \x01\n\xef\xbf\xbd");
    json_object_put(o);

    o = parse_json_line("free \"text\" \\ here", 8192);
    assert_string_equal(jstr(o, "msg"), "free \"text\" \\ here");
    json_object_put(o);
}

/* Long messages are cut, whole fields first, and the line stays well-formed. */
static void test_render_cut(void **state)
{
    (void)state;
    char msg[2048];
    size_t m = 0;
    m += (size_t)snprintf(msg + m, sizeof msg - m, "event=long a=12345678901234567890 v=\"");
    while (m < 1500)
        msg[m++] = '"';
    msg[m++] = '"';
    msg[m] = '\0';
    for (size_t cap = 128; cap < 4200; cap += 37) {
        char out[8192];
        size_t n = log_render(out, cap, LOG_FORMAT_JSON, TS, "warn", msg, m);
        assert_true(n <= cap);
        assert_int_equal(out[n - 1], '\n');
        json_tokener *tok = json_tokener_new();
        json_object *o = json_tokener_parse_ex(tok, out, (int)n - 1);
        if (o == NULL)
            print_error("cap %zu: not JSON: %.*s\n", cap, (int)n, out);
        assert_non_null(o);
        assert_string_equal(jstr(o, "level"), "warn");
        json_object_put(o);
        json_tokener_free(tok);

        n = log_render(out, cap, LOG_FORMAT_LOGFMT, TS, "warn", msg, m);
        assert_true(n <= cap);
        assert_int_equal(out[n - 1], '\n');
        LogField f[LOG_FIELDS_MAX];
        assert_true(log_split(out, n - 1, f, LOG_FIELDS_MAX) >= 2);
    }
}

static void test_names(void **state)
{
    (void)state;
    LogLevel l;
    LogFormat f;
    assert_true(log_level_parse("debug", &l) && l == LOG_DEBUG);
    assert_true(log_level_parse("warning", &l) && l == LOG_WARN);
    assert_true(log_level_parse("warn", &l) && l == LOG_WARN);
    assert_true(log_level_parse("error", &l) && l == LOG_ERROR);
    assert_false(log_level_parse("verbose", &l));
    assert_true(log_format_parse("json", &f) && f == LOG_FORMAT_JSON);
    assert_true(log_format_parse("logfmt", &f) && f == LOG_FORMAT_LOGFMT);
    assert_false(log_format_parse("text", &f));
}

/* log_file_check: what log_setup would refuse, found without creating anything. */
static void test_file_check(void **state)
{
    (void)state;
    char dir[] = "/tmp/pgenrich-ut-log.XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/run.log", dir);
    assert_true(log_file_check(path));        /* missing, in a writable folder */
    assert_int_equal(access(path, F_OK), -1); /* and not created */
    snprintf(path, sizeof path, "%s/no-such-dir/run.log", dir);
    assert_false(log_file_check(path));
    assert_int_equal(errno, ENOENT);
    assert_false(log_file_check(dir));
    assert_int_equal(errno, EISDIR);
    snprintf(path, sizeof path, "%s/file", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_true(log_file_check(path)); /* exists, writable */
    char under[80];
    snprintf(under, sizeof under, "%s/x.log", path);
    assert_false(log_file_check(under)); /* its "folder" is a file */
    assert_int_equal(errno, ENOTDIR);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_simple),
        cmocka_unit_test(test_split_quoted),
        cmocka_unit_test(test_split_not_logfmt),
        cmocka_unit_test(test_render_logfmt),
        cmocka_unit_test(test_render_json),
        cmocka_unit_test(test_render_cut),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_file_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
