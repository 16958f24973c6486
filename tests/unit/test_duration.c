/* Unit tests for config_parse_duration and the incremental settings: the units, the
 * mistakes people make (fractions, spaces, a sign, two units) and the rules between them. */
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

static double dur(const char *s)
{
    double v = -1;
    assert_true(config_parse_duration(s, &v));
    return v;
}

static void test_units(void **state)
{
    (void)state;
    assert_true(dur("30d") == 30 * 86400.0);
    assert_true(dur("12h") == 12 * 3600.0);
    assert_true(dur("90m") == 90 * 60.0);
    assert_true(dur("3600s") == 3600.0);
    assert_true(dur("3600") == 3600.0);
    assert_true(dur("2w") == 14 * 86400.0);
    assert_true(dur("0") == 0.0);
    assert_true(dur("007d") == 7 * 86400.0);
    assert_true(dur("36500d") == 36500 * 86400.0); /* 100 years, the cap */
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",    "d",   "-1d",   "+1d", "1.5h", " 1d", "1d ",    "1 d",
        "1D",  "1dd", "1d12h", "1y",  "1ms",  "x",   "36501d", "99999999999999999999999s",
        "1e3s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v = 42;
        if (config_parse_duration(bad[i], &v))
            fail_msg("\"%s\" was accepted as %g", bad[i], v);
        assert_true(v == 42); /* left as it was */
    }
}

static void test_flags(void **state)
{
    (void)state;
    Config c;
    char err[256] = "";
    assert_true(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h"));
    assert_false(c.only_missing);
    assert_true(c.refresh_older_than == 0);
    assert_false(c.explain);
    assert_true(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h", "--only-missing",
                      "--refresh-older-than", "30d", "--explain"));
    assert_true(c.only_missing);
    assert_true(c.refresh_older_than == 30 * 86400.0);
    assert_true(c.explain);

    assert_false(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h",
                       "--refresh-older-than", "1.5h"));
    assert_non_null(strstr(err, "--refresh-older-than must be a duration"));
    assert_false(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h",
                       "--refresh-older-than", "0s"));
    assert_false(PARSE(&c, err, "init", "--only-missing"));
}

static void test_rules(void **state)
{
    (void)state;
    Config c;
    char err[256] = "";
    /* Skipping rows would shift the offsets. */
    assert_false(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h", "--only-missing",
                       "--paging", "offset"));
    assert_non_null(strstr(err, "--paging keyset"));
    assert_false(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h",
                       "--refresh-older-than", "1d", "--paging", "offset"));
    assert_false(
        PARSE(&c, err, "retry-failed", "--job", "j", "--base-url", "http://h", "--only-missing"));
    assert_non_null(strstr(err, "retry-failed"));
    /* --refresh-older-than alone works up to the checkpoint, which --restart forgets. */
    assert_false(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h",
                       "--refresh-older-than", "1d", "--restart"));
    assert_non_null(strstr(err, "--restart"));
    assert_true(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h",
                      "--refresh-older-than", "1d", "--only-missing", "--restart"));
    assert_true(PARSE(&c, err, "run", "--job", "j", "--base-url", "http://h", "--only-missing",
                      "--restart"));
}

static void test_job_file_setting(void **state)
{
    (void)state;
    Config c;
    char err[256] = "";
    config_defaults(&c);
    assert_true(config_set(&c, "refresh-older-than", "12h", err, sizeof err));
    assert_true(c.refresh_older_than == 12 * 3600.0);
    assert_true(config_set(&c, "only-missing", "yes", err, sizeof err));
    assert_true(c.only_missing);
    assert_false(config_set(&c, "refresh-older-than", "soon", err, sizeof err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_job_file_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
