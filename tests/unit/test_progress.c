/* Unit tests for progress: the smoothed rate (mean while warming up, then a moving average
 * that follows a change of pace), the refined total, percent and ETA, the duration and
 * number formats, the terminal line fitted to its width and the logfmt line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "progress.h"

static const char *const reasons[] = {"not_found", "no_location", "bad_response"};

static long long by_reason[3];

static ProgressView view(long long done, long long total, double rate)
{
    memset(by_reason, 0, sizeof by_reason);
    ProgressView v = {.job = "nightly",
                      .done = done,
                      .total = total,
                      .elapsed = 10,
                      .rate = rate,
                      .in_flight = 256,
                      .retries = 12,
                      .rows = done,
                      .by_reason = by_reason,
                      .reason_names = reasons,
                      .n_reasons = 3};
    return v;
}

static void test_rate(void **state)
{
    (void)state;
    ProgressRate r;
    progress_rate_init(&r, 30, 100.0, 0);
    assert_true(progress_rate_update(&r, 100.5, 500) == 0); /* under a second: unknown */
    /* warming up: the plain mean since the start */
    assert_float_equal(progress_rate_update(&r, 102.0, 2000), 1000.0, 1e-9);
    assert_float_equal(progress_rate_update(&r, 110.0, 10000), 1000.0, 1e-9);
    long long done = 30000;
    double t = 130.0;
    assert_float_equal(progress_rate_update(&r, t, done), 1000.0, 1e-9);
    /* then the pace halves: the average moves toward 500 within a few time constants */
    for (int i = 0; i < 4 * 30 * 4; i++) {
        t += 0.25;
        done += 125;
        progress_rate_update(&r, t, done);
    }
    double rate = progress_rate_update(&r, t, done);
    assert_true(rate > 500 && rate < 520);
    /* the clock standing still changes nothing */
    assert_float_equal(progress_rate_update(&r, t, done + 100000), rate, 1e-9);
}

static void test_total(void **state)
{
    (void)state;
    assert_int_equal(progress_total(1000, 10, false), 1000);
    assert_int_equal(progress_total(1000, 1500, false), 1500); /* the estimate was low */
    assert_int_equal(progress_total(1000, 800, true), 800);    /* the end tells exactly */
    assert_int_equal(progress_total(0, 800, true), 800);
    assert_true(progress_total(0, 800, false) <= 0);
    assert_true(progress_total(-1, 0, false) <= 0);
}

static void test_percent_eta(void **state)
{
    (void)state;
    ProgressView v = view(250, 1000, 50);
    assert_float_equal(progress_percent(&v), 25.0, 1e-9);
    assert_float_equal(progress_eta(&v), 15.0, 1e-9);
    v.done = 1000; /* all read are settled but the source has not ended: below 100 */
    assert_float_equal(progress_percent(&v), 99.9, 1e-9);
    v.ended = true;
    assert_float_equal(progress_percent(&v), 100.0, 1e-9);
    assert_float_equal(progress_eta(&v), 0, 1e-9);
    v = view(10, -1, 50);
    assert_true(progress_percent(&v) < 0);
    assert_true(progress_eta(&v) < 0);
    v = view(10, 100, 0);
    assert_true(progress_eta(&v) < 0);
}

static void test_formats(void **state)
{
    (void)state;
    char b[32];
    progress_duration(b, sizeof b, 45.4);
    assert_string_equal(b, "45s");
    progress_duration(b, sizeof b, 407);
    assert_string_equal(b, "6m47s");
    progress_duration(b, sizeof b, 2 * 3600 + 3 * 60 + 5);
    assert_string_equal(b, "2h03m");
    progress_duration(b, sizeof b, 3 * 86400 + 4 * 3600);
    assert_string_equal(b, "3d04h");
    progress_duration(b, sizeof b, -1);
    assert_string_equal(b, "--");
    progress_thousands(b, sizeof b, 0);
    assert_string_equal(b, "0");
    progress_thousands(b, sizeof b, 999);
    assert_string_equal(b, "999");
    progress_thousands(b, sizeof b, 1000);
    assert_string_equal(b, "1,000");
    progress_thousands(b, sizeof b, 4000000);
    assert_string_equal(b, "4,000,000");
    progress_thousands(b, sizeof b, -1234567);
    assert_string_equal(b, "-1,234,567");
}

static void test_tty_line(void **state)
{
    (void)state;
    char line[512];
    ProgressView v = view(123456, 4000000, 9512);
    by_reason[0] = 3;
    by_reason[1] = 1;
    size_t n = progress_tty_line(line, sizeof line, &v, 200);
    assert_string_equal(line, "nightly  123,456/4,000,000  3.1%  9,512 ids/s  ETA 6m48s  "
                              "in-flight 256  retries 12  fail: not_found=3 no_location=1");
    assert_int_equal(n, strlen(line));
    /* narrower: the least useful parts go first, the count stays */
    for (int w = 20; w <= 200; w++) {
        n = progress_tty_line(line, sizeof line, &v, w);
        assert_true(n <= (size_t)w - 1);
        assert_non_null(strstr(line, "123,456/4,000,000"));
        if (w >= 40)
            assert_non_null(strstr(line, "ETA 6m48s"));
    }
    progress_tty_line(line, sizeof line, &v, 60);
    assert_string_equal(line, "123,456/4,000,000  3.1%  9,512 ids/s  ETA 6m48s  fail 4");
    progress_tty_line(line, sizeof line, &v, 58);
    assert_string_equal(line, "123,456/4,000,000  3.1%  9,512 ids/s  ETA 6m48s  fail 4");
    progress_tty_line(line, sizeof line, &v, 50);
    assert_string_equal(line, "123,456/4,000,000  3.1%  9,512 ids/s  ETA 6m48s");
    /* the failures by reason do not fit, their sum does */
    progress_tty_line(line, sizeof line, &v, 80);
    assert_string_equal(line, "nightly  123,456/4,000,000  3.1%  9,512 ids/s  ETA 6m48s  "
                              "in-flight 256  fail 4");
    /* unknown total and rate */
    v = view(5, -1, 0);
    progress_tty_line(line, sizeof line, &v, 200);
    assert_string_equal(line, "nightly  5/?  ? ids/s  ETA --  in-flight 256  retries 12");
    v.job = "a\033[2Jb";
    progress_tty_line(line, sizeof line, &v, 200);
    assert_string_equal(line, "a?[2Jb  5/?  ? ids/s  ETA --  in-flight 256  retries 12");
    /* a tiny buffer is cut, still terminated */
    n = progress_tty_line(line, 8, &v, 200);
    assert_int_equal(n, 7);
    assert_int_equal(strlen(line), 7);
}

static void test_log_line(void **state)
{
    (void)state;
    char line[1024];
    ProgressView v = view(250, 1000, 50);
    by_reason[2] = 4;
    v.job = "a \"q\" \\";
    progress_log_line(line, sizeof line, &v);
    assert_string_equal(line, "event=progress job=\"a \\\"q\\\" \\\\\" done=250 total=1000 "
                              "percent=25.0 ids_per_s=50.0 eta_s=15 elapsed_s=10.0 "
                              "in_flight=256 retries=12 rows_loaded=250 failures=4 "
                              "not_found=0 no_location=0 bad_response=4");
    v = view(3, -1, 0);
    v.job = NULL;
    progress_log_line(line, sizeof line, &v);
    assert_non_null(strstr(line, "event=progress done=3 total=unknown percent=unknown "
                                 "ids_per_s=0.0 eta_s=unknown"));
    size_t n = progress_log_line(line, 10, &v);
    assert_int_equal(n, 9);
    assert_int_equal(strlen(line), 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate),        cmocka_unit_test(test_total),
        cmocka_unit_test(test_percent_eta), cmocka_unit_test(test_formats),
        cmocka_unit_test(test_tty_line),    cmocka_unit_test(test_log_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
