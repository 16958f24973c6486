/* Unit tests for config: defaults, every flag's parsing and bounds, and the errors people
 * will actually make on the command line. */
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

static void test_defaults(void **state)
{
    (void)state;
    Config c;
    char err[256] = "";
    assert_true(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://127.0.0.1:1"));
    assert_int_equal(c.cmd, CMD_RUN);
    assert_string_equal(c.source_table, "master_table");
    assert_string_equal(c.key_column, "id");
    assert_string_equal(c.target_table, "standardized_locations");
    assert_string_equal(c.failures_table, "enrich_failures");
    assert_string_equal(c.checkpoint_table, "enrich_checkpoints");
    assert_int_equal(c.page_size, 10000);
    assert_false(c.paging_offset);
    assert_int_equal(c.concurrency, 64);
    assert_true(c.rate == 0.0);
    assert_int_equal(c.max_attempts, 5);
    assert_null(c.dsn);
    assert_null(c.where);
    assert_false(c.restart);
    assert_true(c.statement_timeout == 300.0);
    assert_int_equal(c.db_keepalive, 30);
}

static void test_all_flags(void **state)
{
    (void)state;
    Config c;
    char err[256] = "";
    assert_true(PARSE(&c, err, "run", "--dsn", "host=x", "--job", "nightly", "--base-url",
                      "https://api.example/", "--source-table", "Master Table", "--key-column",
                      "Key", "--where", "active", "--target-table", "t", "--failures-table", "f",
                      "--checkpoint-table", "k", "--page-size", "500", "--paging", "offset",
                      "--concurrency", "256", "--rate", "99.5", "--timeout", "2.5",
                      "--max-attempts", "7", "--flush-rows", "100", "--flush-interval", "0.5",
                      "--restart", "--quiet", "--token-file", "/dev/null", "--max-body", "4096",
                      "--statement-timeout", "2.5", "--db-keepalive", "10"));
    assert_string_equal(c.dsn, "host=x");
    assert_string_equal(c.job, "nightly");
    assert_string_equal(c.source_table, "Master Table");
    assert_string_equal(c.key_column, "Key");
    assert_string_equal(c.where, "active");
    assert_string_equal(c.target_table, "t");
    assert_string_equal(c.failures_table, "f");
    assert_string_equal(c.checkpoint_table, "k");
    assert_int_equal(c.page_size, 500);
    assert_true(c.paging_offset);
    assert_int_equal(c.concurrency, 256);
    assert_true(c.rate == 99.5);
    assert_true(c.timeout == 2.5);
    assert_int_equal(c.max_attempts, 7);
    assert_int_equal(c.flush_rows, 100);
    assert_true(c.flush_interval == 0.5);
    assert_true(c.restart);
    assert_true(c.quiet);
    assert_string_equal(c.token_file, "/dev/null");
    assert_int_equal(c.max_body, 4096);
    assert_true(c.statement_timeout == 2.5);
    assert_int_equal(c.db_keepalive, 10);
}

static void test_init_command(void **state)
{
    (void)state;
    Config c;
    char err[256] = "";
    assert_true(PARSE(&c, err, "init", "--dsn", "postgresql://u@h/db", "--target-table", "x"));
    assert_int_equal(c.cmd, CMD_INIT);
    assert_string_equal(c.target_table, "x");
    /* connection settings apply to init too */
    assert_true(PARSE(&c, err, "init", "--statement-timeout", "0", "--db-keepalive", "0"));
    assert_true(c.statement_timeout == 0.0);
    assert_int_equal(c.db_keepalive, 0);
    /* flags that only make sense for a job are refused by init */
    assert_false(PARSE(&c, err, "init", "--concurrency", "5"));
    assert_non_null(strstr(err, "--concurrency"));
}

static void test_errors(void **state)
{
    (void)state;
    Config c;
    char err[256];
    assert_false(config_parse(&c, 1, ARGV(NULL), err, sizeof err));
    assert_false(PARSE(&c, err, "frobnicate"));
    assert_non_null(strstr(err, "frobnicate"));
    assert_false(PARSE(&c, err, "run", "--base-url", "http://h"));
    assert_non_null(strstr(err, "--job"));
    assert_false(PARSE(&c, err, "run", "--job", "j"));
    assert_non_null(strstr(err, "--base-url"));
    assert_false(PARSE(&c, err, "run", "--job", "j", "--base-url", "ftp://h"));
    assert_false(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h/{x}"));
    assert_false(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h?q=1"));
    assert_false(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h", "--bogus"));
    assert_non_null(strstr(err, "--bogus"));
    assert_false(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h", "--page-size"));
    assert_false(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h", "--paging", "x"));
    assert_non_null(strstr(err, "keyset or offset"));
    assert_false(PARSE(&c, err, "run", "--job", "", "--base-url", "http://h"));
    assert_false(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h", "stray"));
    assert_non_null(strstr(err, "stray"));
}

static void test_number_bounds(void **state)
{
    (void)state;
    Config c;
    char err[256];
    const char *bad[][2] = {
        {"--concurrency", "0"},
        {"--concurrency", "1.5"},
        {"--concurrency", "abc"},
        {"--page-size", "-1"},
        {"--rate", "-3"},
        {"--timeout", "0"},
        {"--max-attempts", "0"},
        {"--max-attempts", "101"},
        {"--flush-rows", "0"},
        {"--rate", "nan"},
        {"--timeout", "inf"},
        {"--concurrency", "12x"},
        {"--statement-timeout", "-1"},
        {"--statement-timeout", "1e7"},
        {"--db-keepalive", "-1"},
        {"--db-keepalive", "1.5"},
        {"--db-keepalive", "7201"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h",
                           (char *)bad[i][0], (char *)bad[i][1]));
        assert_non_null(strstr(err, bad[i][0]));
    }
    assert_true(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h", "--concurrency",
                      "10000", "--rate", "0"));
}

static void test_help_version(void **state)
{
    (void)state;
    Config c;
    char err[256];
    assert_true(PARSE(&c, err, "--help"));
    assert_int_equal(c.cmd, CMD_HELP);
    assert_true(PARSE(&c, err, "run", "--help"));
    assert_int_equal(c.cmd, CMD_HELP);
    assert_true(PARSE(&c, err, "--version"));
    assert_int_equal(c.cmd, CMD_VERSION);
}

static void test_reparse_resets_state(void **state)
{
    (void)state;
    Config c;
    char err[256];
    /* getopt keeps global state; a second parse must not inherit the first one's */
    assert_true(PARSE(&c, err, "run", "--job", "a", "--base-url", "http://h", "--restart"));
    assert_true(c.restart);
    assert_true(PARSE(&c, err, "run", "--job", "b", "--base-url", "http://h"));
    assert_false(c.restart);
    assert_string_equal(c.job, "b");
}

static void test_retry_failed_and_job_file(void **state)
{
    (void)state;
    Config c;
    char err[256];
    assert_true(PARSE(&c, err, "retry-failed", "--job", "j", "--base-url", "http://h", "--reason",
                      "attempts_exhausted"));
    assert_int_equal(c.cmd, CMD_RETRY_FAILED);
    assert_string_equal(c.reason, "attempts_exhausted");
    assert_false(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h", "--reason", "x"));
    assert_non_null(strstr(err, "--reason"));
    /* with a job file, validation waits until the file is merged */
    assert_true(PARSE(&c, err, "run", "--config", "job.ini"));
    assert_string_equal(c.config_file, "job.ini");
    assert_false(config_validate(&c, false, err, sizeof err));
    assert_non_null(strstr(err, "--job"));
    c.job = "j";
    assert_false(config_validate(&c, false, err, sizeof err));
    assert_true(config_validate(&c, true, err, sizeof err));
}

static void test_config_set(void **state)
{
    (void)state;
    Config c;
    char err[256];
    config_defaults(&c);
    assert_true(config_set(&c, "concurrency", "128", err, sizeof err));
    assert_int_equal(c.concurrency, 128);
    /* the database settings are job-file keys too */
    assert_true(config_set(&c, "statement-timeout", "60", err, sizeof err));
    assert_true(c.statement_timeout == 60.0);
    assert_true(config_set(&c, "db-keepalive", "0", err, sizeof err));
    assert_int_equal(c.db_keepalive, 0);
    assert_false(config_set(&c, "db-keepalive", "soon", err, sizeof err));
    assert_non_null(strstr(err, "must be an integer"));
    assert_true(config_set(&c, "paging", "offset", err, sizeof err));
    assert_true(c.paging_offset);
    assert_true(config_set(&c, "restart", "yes", err, sizeof err));
    assert_true(c.restart);
    assert_true(config_set(&c, "restart", "off", err, sizeof err));
    assert_false(c.restart);
    assert_false(config_set(&c, "restart", "maybe", err, sizeof err));
    assert_false(config_set(&c, "concurrency", "0", err, sizeof err));
    assert_false(config_set(&c, "nope", "1", err, sizeof err));
    assert_non_null(strstr(err, "nope"));
    /* command-line-only switches are not settings */
    assert_false(config_set(&c, "config", "x.ini", err, sizeof err));
    assert_false(config_set(&c, "help", "true", err, sizeof err));
    /* flags applied after a file override it */
    assert_true(config_set(&c, "job", "from-file", err, sizeof err));
    assert_true(config_apply_args(&c, ARGC("run", "--job", "from-flag", "--base-url", "http://h"),
                                  ARGV("run", "--job", "from-flag", "--base-url", "http://h"), err,
                                  sizeof err));
    assert_string_equal(c.job, "from-flag");
    assert_int_equal(c.concurrency, 128); /* kept from the file */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_flags),
        cmocka_unit_test(test_init_command),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_number_bounds),
        cmocka_unit_test(test_help_version),
        cmocka_unit_test(test_reparse_resets_state),
        cmocka_unit_test(test_retry_failed_and_job_file),
        cmocka_unit_test(test_config_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
