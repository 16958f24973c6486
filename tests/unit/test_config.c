/* Unit tests for config: defaults, every flag's parsing and bounds, and the errors people
 * will actually make on the command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
    assert_int_equal(c.burst, 0); /* the rule: max(1, rate / 20) */
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
                      "--statement-timeout", "2.5", "--db-keepalive", "10", "--burst", "7"));
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
    assert_int_equal(c.burst, 7);
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
        {"--burst", "-1"},
        {"--burst", "2.5"},
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

/* One table: every setting has a section, is found by its name with '-' or '_', and maps to
 * PGENRICH_<NAME> and back. */
static void test_table(void **state)
{
    (void)state;
    Config c;
    char err[256];
    size_t n = config_n_settings();
    assert_true(n > 20 && n <= CONFIG_SETTINGS_MAX);
    for (size_t i = 0; i < n; i++) {
        const char *name = config_name((int)i);
        char under[64], env[80];
        size_t k;
        assert_int_equal(config_find(name), (int)i);
        assert_true(config_section((int)i) < CONFIG_SEC_COUNT);
        for (k = 0; name[k]; k++)
            under[k] = name[k] == '-' ? '_' : name[k];
        under[k] = '\0';
        assert_int_equal(config_find(under), (int)i);
        snprintf(env, sizeof env, "PGENRICH_%s", under);
        for (k = 9; env[k]; k++)
            env[k] = (char)(env[k] >= 'a' && env[k] <= 'z' ? env[k] - 'a' + 'A' : env[k]);
        assert_false(config_env_unknown(env));
    }
    assert_int_equal(config_section(config_find("dsn")), CONFIG_SEC_SOURCE);
    assert_int_equal(config_section(config_find("page-size")), CONFIG_SEC_SOURCE);
    assert_int_equal(config_section(config_find("flush-interval")), CONFIG_SEC_TARGET);
    assert_int_equal(config_section(config_find("forbidden-threshold")), CONFIG_SEC_LIMITS);
    assert_int_equal(config_section(config_find("job")), CONFIG_SEC_JOB);
    assert_string_equal(config_section_names[CONFIG_SEC_LIMITS], "limits");
    assert_int_equal(config_find("config"), -1);
    assert_int_equal(config_find("help"), -1);
    assert_int_equal(config_find("Page-Size"), -1);
    assert_int_equal(config_find("page--size"), -1);
    config_defaults(&c);
    assert_false(config_set_at(&c, -1, "1", CONFIG_FROM_FILE, 1, err, sizeof err));
}

static void test_env(void **state)
{
    (void)state;
    Config c;
    char err[256] = "";
    char *env[] = {"HOME=/root",
                   "PGENRICH_CONCURRENCY=32",
                   "PGENRICH_PAGE_SIZE=500",
                   "PGENRICH_DSN=host=db password=x",
                   "PGENRICH_TOKEN=s3cret",    /* the token: never a setting */
                   "PGENRICH_TEST_DSN=host=t", /* the tests' own: ignored */
                   "PGENRICH_BIN=/x/pgenrich",
                   "PGENRICH_RESTART=yes",
                   "PGENRICH_WHERE=", /* empty: unset */
                   "pgenrich_rate=5", /* not upper case: not ours */
                   "PGENRICH_rate=5",
                   "DATABASE_URL=postgres://ignored",
                   "NOEQUALS",
                   NULL};
    config_defaults(&c);
    assert_true(config_apply_env(&c, env, err, sizeof err));
    assert_int_equal(c.concurrency, 32);
    assert_int_equal(c.page_size, 500);
    assert_string_equal(c.dsn, "host=db password=x");
    assert_true(c.restart);
    assert_null(c.where);
    assert_true(c.rate == 0.0);
    assert_int_equal(c.origin[config_find("concurrency")], CONFIG_FROM_ENV);
    assert_int_equal(c.origin[config_find("dsn")], CONFIG_FROM_ENV); /* not DATABASE_URL */
    assert_int_equal(c.origin[config_find("timeout")], CONFIG_FROM_DEFAULT);

    /* DATABASE_URL: only when nothing else named a dsn */
    char *env2[] = {"DATABASE_URL=postgres://u@h/db", NULL};
    config_defaults(&c);
    assert_true(config_apply_env(&c, env2, err, sizeof err));
    assert_string_equal(c.dsn, "postgres://u@h/db");
    assert_int_equal(c.origin[config_find("dsn")], CONFIG_FROM_DATABASE_URL);
    config_defaults(&c);
    assert_true(config_set(&c, "dsn", "host=file", err, sizeof err));
    assert_true(config_apply_env(&c, env2, err, sizeof err));
    assert_string_equal(c.dsn, "host=file");
    assert_true(config_apply_env(&c, NULL, err, sizeof err));

    /* errors name the variable */
    char *bad[] = {"PGENRICH_CONCURRENCY=0", NULL};
    config_defaults(&c);
    assert_false(config_apply_env(&c, bad, err, sizeof err));
    assert_string_equal(err,
                        "PGENRICH_CONCURRENCY: must be an integer between 1 and 10000, not \"0\"");
    char *bad2[] = {"PGENRICH_PAGING=sideways", NULL};
    assert_false(config_apply_env(&c, bad2, err, sizeof err));
    assert_string_equal(err, "PGENRICH_PAGING: must be keyset or offset, not \"sideways\"");
    char *bad3[] = {"PGENRICH_QUIET=maybe", NULL};
    assert_false(config_apply_env(&c, bad3, err, sizeof err));
    assert_string_equal(err, "PGENRICH_QUIET: must be true or false, not \"maybe\"");

    assert_true(config_env_unknown("PGENRICH_FROBNICATE"));
    assert_true(config_env_unknown("PGENRICH_TEST_DSN"));
    assert_false(config_env_unknown("PGENRICH_TOKEN"));
    assert_false(config_env_unknown("PGENRICH_MAX_ATTEMPTS"));
    assert_false(config_env_unknown("HOME"));
    assert_false(config_env_unknown("DATABASE_URL"));
}

/* defaults < job file < environment < flags, as main applies them. */
static void test_precedence(void **state)
{
    (void)state;
    Config c;
    char err[256] = "";
    char *env[] = {"PGENRICH_CONCURRENCY=32", "PGENRICH_RATE=7", NULL};
    config_defaults(&c);
    assert_true(
        config_set_at(&c, config_find("concurrency"), "128", CONFIG_FROM_FILE, 3, err, sizeof err));
    assert_true(
        config_set_at(&c, config_find("rate"), "500", CONFIG_FROM_FILE, 4, err, sizeof err));
    assert_true(
        config_set_at(&c, config_find("timeout"), "9", CONFIG_FROM_FILE, 5, err, sizeof err));
    assert_true(config_apply_env(&c, env, err, sizeof err));
    assert_true(config_apply_args(&c, ARGC("run", "--rate", "1", "--job", "j"),
                                  ARGV("run", "--rate", "1", "--job", "j"), err, sizeof err));
    assert_int_equal(c.concurrency, 32); /* env over file */
    assert_true(c.rate == 1.0);          /* flag over env over file */
    assert_true(c.timeout == 9.0);       /* file over default */
    assert_int_equal(c.max_attempts, 5); /* default */
    assert_int_equal(c.origin[config_find("concurrency")], CONFIG_FROM_ENV);
    assert_int_equal(c.origin[config_find("rate")], CONFIG_FROM_FLAG);
    assert_int_equal(c.origin[config_find("timeout")], CONFIG_FROM_FILE);
    assert_int_equal(c.origin_line[config_find("timeout")], 5);
}

/* check-config FILE: FILE is the job file; it is checked as run, but may hold --reason. */
static void test_check_config_args(void **state)
{
    (void)state;
    Config c;
    char err[256] = "";
    assert_true(PARSE(&c, err, "check-config", "nightly.ini", "--rate", "5"));
    assert_int_equal(c.cmd, CMD_CHECK_CONFIG);
    assert_string_equal(c.config_file, "nightly.ini");
    assert_true(c.rate == 5.0);
    assert_true(PARSE(&c, err, "check-config", "--config", "other.ini"));
    assert_string_equal(c.config_file, "other.ini");
    assert_false(PARSE(&c, err, "check-config", "a.ini", "b.ini"));
    assert_non_null(strstr(err, "b.ini"));
    assert_false(PARSE(&c, err, "check-config", "a.ini", "--bogus"));
    assert_non_null(strstr(err, "--bogus"));
    /* without a file: the flags (and the environment) alone, validated as run */
    assert_false(PARSE(&c, err, "check-config", "--base-url", "http://h"));
    assert_non_null(strstr(err, "--job"));
    assert_true(PARSE(&c, err, "check-config", "--job", "j", "--base-url", "http://h", "--reason",
                      "bad_response", "--where", "true"));
}

/* A cross-setting error names the setting where it was given. */
static void test_validate_names_origin(void **state)
{
    (void)state;
    Config c;
    char err[256] = "";
    char *env[] = {"PGENRICH_BACKOFF_CAP=0.1", NULL};
    config_defaults(&c);
    c.cmd = CMD_RUN;
    c.job = "j";
    c.base_url = "http://h";
    c.config_file = "nightly.ini";
    assert_true(config_set_at(&c, config_find("backoff-cap"), "0.1", CONFIG_FROM_FILE, 12, err,
                              sizeof err));
    assert_false(config_validate(&c, false, err, sizeof err));
    assert_string_equal(err, "nightly.ini:12: backoff-cap: must not be below backoff-base (0.2)");
    assert_true(config_apply_env(&c, env, err, sizeof err));
    assert_false(config_validate(&c, false, err, sizeof err));
    assert_string_equal(err, "PGENRICH_BACKOFF_CAP: must not be below backoff-base (0.2)");
    assert_false(
        PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h", "--backoff-cap", "0.1"));
    assert_string_equal(err, "--backoff-cap must not be below backoff-base (0.2)");
    config_defaults(&c);
    c.cmd = CMD_RUN;
    c.job = "j";
    c.config_file = "nightly.ini";
    assert_true(config_set_at(&c, config_find("base-url"), "ftp://h", CONFIG_FROM_FILE, 3, err,
                              sizeof err));
    assert_false(config_validate(&c, false, err, sizeof err));
    assert_string_equal(err, "nightly.ini:3: base-url: must start with http:// or https://");
}

static void mask(const char *in, const char *want)
{
    char out[256];
    config_mask_dsn(in, out, sizeof out);
    if (strcmp(out, want) != 0)
        fail_msg("mask(\"%s\"): got \"%s\", want \"%s\"", in, out, want);
}

static void test_mask_dsn(void **state)
{
    (void)state;
    /* keyword = value */
    mask("host=db user=u password=s3cret dbname=x", "host=db user=u password=**** dbname=x");
    mask("password = 's3 cr\\'et' host=db", "password = **** host=db");
    mask("host=db password='' sslpassword=pw", "host=db password=**** sslpassword=****");
    mask("password=a\\ b host=h", "password=**** host=h");
    mask("  host=db  ", "  host=db  ");
    mask("host=db sslkey=/k.pem", "host=db sslkey=/k.pem");
    mask("", "");
    /* what does not parse is hidden whole */
    mask("mydb", "****");
    mask("host=db password='unterminated", "****");
    mask("=x", "****");
    /* URIs */
    mask("postgres://u:s3cret@db:5432/x?sslmode=require",
         "postgres://u:****@db:5432/x?sslmode=require");
    mask("postgresql://u@db/x?password=s3cret&application_name=p",
         "postgresql://u@db/x?password=****&application_name=p");
    mask("postgresql://db/x", "postgresql://db/x");
    mask("postgres://u:p@ss@db/x", "postgres://u:****@db/x");
    mask("postgres://u:p/w@db/x", "postgres://u:****@db/x");
    mask("postgresql://u@db/x?sslkey=/k.pem", "postgresql://u@db/x?sslkey=/k.pem");
    /* http(s) URLs: userinfo and secret-named query parameters */
    mask("https://api.example.com/v1/{id}?api_key=k&select=a#frag",
         "https://api.example.com/v1/{id}?api_key=****&select=a#frag");
    mask("https://user:pw@api.example.com/{id}", "https://user:****@api.example.com/{id}");
    mask("http://h/{id}?access_token=t&x&Signature=s",
         "http://h/{id}?access_token=****&x&Signature=****");
    mask("http://h/{id}#?token=t", "http://h/{id}#?token=t");
    /* a short buffer cuts, never overflows */
    char small[8];
    config_mask_dsn("host=db password=s3cret", small, sizeof small);
    assert_string_equal(small, "host=db");
    config_mask_dsn("password=s3cret", small, sizeof small);
    assert_string_equal(small, "passwor");
    config_mask_dsn("password=s3cret", small, 0);
}

static void test_secret_name(void **state)
{
    (void)state;
    const char *yes[] = {"Authorization",   "X-Api-Key", "x-auth-token", "Cookie",
                         "X-Secret",        "password",  "sslpassword",  "api_key",
                         "X-Amz-Signature", "Session-Id"};
    const char *no[] = {"X-Client", "Accept", "Content-Type", "select", "id", "User-Agent"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(config_secret_name(yes[i], strlen(yes[i])));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(config_secret_name(no[i], strlen(no[i])));
    assert_false(config_secret_name("X-Api-Key", 5)); /* only the first len bytes */
}

static void test_dump(void **state)
{
    (void)state;
    Config c;
    char err[256] = "";
    char *text = NULL;
    size_t len = 0;
    char *env[] = {"PGENRICH_CONCURRENCY=32", "PGENRICH_WHERE=kind = 'a\nb'", NULL};
    config_defaults(&c);
    c.config_file = "nightly.ini";
    assert_true(config_set_at(&c, config_find("dsn"), "host=db password=s3cret", CONFIG_FROM_FILE,
                              7, err, sizeof err));
    assert_true(config_set_at(&c, config_find("base-url"), "https://u:pw@h/", CONFIG_FROM_FILE, 2,
                              err, sizeof err));
    assert_true(config_apply_env(&c, env, err, sizeof err));
    assert_true(config_apply_args(&c, ARGC("run", "--rate", "1.5", "--restart"),
                                  ARGV("run", "--rate", "1.5", "--restart"), err, sizeof err));
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    config_dump(&c, out);
    assert_int_equal(fclose(out), 0);
    assert_non_null(strstr(text, "\nsource.dsn = host=db password=****        # nightly.ini:7\n"));
    assert_non_null(strstr(text, "job.base-url = https://u:****@h/"));
    assert_non_null(
        strstr(text, "\nlimits.concurrency = 32                   # PGENRICH_CONCURRENCY\n"));
    assert_non_null(strstr(text, "\nlimits.rate = 1.5                         # --rate\n"));
    assert_non_null(strstr(text, "\njob.restart = true                        # --restart\n"));
    assert_non_null(strstr(text, "\nsource.where = kind = 'a?b'               # PGENRICH_WHERE\n"));
    assert_non_null(strstr(text, "\nsource.paging = keyset                    # default\n"));
    assert_non_null(strstr(text, "\njob.token-file = (none)                   # default\n"));
    assert_non_null(strstr(text, "\ntarget.flush-rows = 10000 "));
    assert_non_null(strstr(text, "\nlimits.max-body = 1048576 "));
    assert_null(strstr(text, "s3cret"));
    assert_null(strstr(text, "pw@"));
    /* sections in order, each setting once */
    assert_true(strstr(text, "job.job") < strstr(text, "source.dsn"));
    assert_true(strstr(text, "source.dsn") < strstr(text, "target.target-table"));
    assert_true(strstr(text, "target.target-table") < strstr(text, "limits.concurrency"));
    size_t lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, config_n_settings());
    free(text);
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
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_check_config_args),
        cmocka_unit_test(test_validate_names_origin),
        cmocka_unit_test(test_mask_dsn),
        cmocka_unit_test(test_secret_name),
        cmocka_unit_test(test_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
