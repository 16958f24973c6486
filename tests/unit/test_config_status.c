/* Unit tests for the command line of `pgenrich status` and the run-history settings
 * (runs-table, format, history), apart from test_config.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

#define ARGV(...)          ((char *[]){"pgenrich", __VA_ARGS__, NULL})
#define ARGC(...)          ((int)(sizeof((char *[]){"pgenrich", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(c, err, ...) config_parse((c), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err, sizeof err)

static void test_status_defaults(void **state)
{
    (void)state;
    Config c;
    char err[256] = "";
    assert_true(PARSE(&c, err, "status", "--job", "j"));
    assert_int_equal(c.cmd, CMD_STATUS);
    assert_string_equal(c.job, "j");
    assert_string_equal(c.format, "text");
    assert_int_equal(c.history, 10);
    assert_string_equal(c.runs_table, "enrich_runs");
    assert_null(c.base_url); /* status needs no provider */
}

static void test_status_flags(void **state)
{
    (void)state;
    Config c;
    char err[256] = "";
    assert_true(PARSE(&c, err, "status", "--job", "j", "--format", "json", "--history", "3",
                      "--runs-table", "my runs", "--where", "active", "--dsn", "host=x"));
    assert_string_equal(c.format, "json");
    assert_int_equal(c.history, 3);
    assert_string_equal(c.runs_table, "my runs");
    assert_string_equal(c.where, "active");
    /* init makes the run history, so it takes its name */
    assert_true(PARSE(&c, err, "init", "--runs-table", "r"));
    assert_string_equal(c.runs_table, "r");
    assert_false(PARSE(&c, err, "init", "--format", "json"));
    /* a run keeps a row in the history named the same way */
    assert_true(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h", "--runs-table", "r"));
    assert_string_equal(c.runs_table, "r");
}

static void test_status_errors(void **state)
{
    (void)state;
    Config c;
    char err[256] = "";
    assert_false(PARSE(&c, err, "status"));
    assert_non_null(strstr(err, "--job"));
    assert_false(PARSE(&c, err, "status", "--job", "j", "--format", "xml"));
    assert_non_null(strstr(err, "text or json"));
    assert_false(PARSE(&c, err, "status", "--job", "j", "--history", "0"));
    assert_false(PARSE(&c, err, "status", "--job", "j", "--history", "x"));
    assert_false(PARSE(&c, err, "status", "--job", "j", "--runs-table", ""));
    assert_false(PARSE(&c, err, "stat", "--job", "j"));
    assert_non_null(strstr(err, "status"));
}

static void test_status_config_set(void **state)
{
    (void)state;
    Config c;
    char err[256] = "";
    config_defaults(&c);
    assert_true(config_set(&c, "runs-table", "history", err, sizeof err));
    assert_string_equal(c.runs_table, "history");
    assert_true(config_set(&c, "history", "25", err, sizeof err));
    assert_int_equal(c.history, 25);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_defaults),
        cmocka_unit_test(test_status_flags),
        cmocka_unit_test(test_status_errors),
        cmocka_unit_test(test_status_config_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
