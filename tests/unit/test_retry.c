/* Unit tests for retry: the classification table of API.md, backoff bounds and overflow,
 * and Retry-After in every accepted form plus the malformed ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <math.h>
#include <cmocka.h>

#include "unit.h"

#include "retry.h"

/* ---- classification ---- */

typedef struct ClassCase {
    TransportErr terr;
    long status;
    RetryAction act;
    const char *reason; /* NULL unless RA_FAIL */
} ClassCase;

static const ClassCase class_cases[] = {
    {TE_NONE, 200, RA_PARSE, NULL},
    {TE_NONE, 404, RA_FAIL, REASON_NOT_FOUND},
    {TE_NONE, 400, RA_FAIL, REASON_REJECTED},
    {TE_NONE, 410, RA_FAIL, REASON_REJECTED},
    {TE_NONE, 422, RA_FAIL, REASON_REJECTED},
    {TE_NONE, 405, RA_FAIL, REASON_REJECTED},
    {TE_NONE, 408, RA_RETRY, NULL},
    {TE_NONE, 413, RA_FAIL, REASON_REJECTED},
    {TE_NONE, 499, RA_FAIL, REASON_REJECTED},
    {TE_NONE, 401, RA_FATAL, NULL},
    {TE_NONE, 403, RA_FAIL, REASON_FORBIDDEN},
    {TE_NONE, 429, RA_RETRY, NULL},
    {TE_NONE, 500, RA_RETRY, NULL},
    {TE_NONE, 501, RA_RETRY, NULL},
    {TE_NONE, 502, RA_RETRY, NULL},
    {TE_NONE, 503, RA_RETRY, NULL},
    {TE_NONE, 504, RA_RETRY, NULL},
    {TE_NONE, 599, RA_RETRY, NULL},
    {TE_NONE, 100, RA_FAIL, REASON_BAD_RESPONSE},
    {TE_NONE, 201, RA_FAIL, REASON_BAD_RESPONSE},
    {TE_NONE, 202, RA_FAIL, REASON_BAD_RESPONSE},
    {TE_NONE, 204, RA_FAIL, REASON_BAD_RESPONSE},
    {TE_NONE, 301, RA_FAIL, REASON_BAD_RESPONSE},
    {TE_NONE, 304, RA_FAIL, REASON_BAD_RESPONSE},
    {TE_NONE, 399, RA_FAIL, REASON_BAD_RESPONSE},
    {TE_NONE, 600, RA_FAIL, REASON_BAD_RESPONSE},
    {TE_NONE, 0, RA_FAIL, REASON_BAD_RESPONSE},
    {TE_NONE, -1, RA_FAIL, REASON_BAD_RESPONSE},
    {TE_NONE, LONG_MAX, RA_FAIL, REASON_BAD_RESPONSE},
    /* Below HTTP the status is ignored, even when it looks like a success. */
    {TE_TIMEOUT, 0, RA_RETRY, NULL},
    {TE_TIMEOUT, 200, RA_RETRY, NULL},
    {TE_CONNECT, 0, RA_RETRY, NULL},
    {TE_RESET, 0, RA_RETRY, NULL},
    {TE_TRUNCATED, 200, RA_RETRY, NULL},
    {TE_OTHER, 404, RA_RETRY, NULL},
    {TE_TOO_LARGE, 200, RA_FAIL, REASON_BAD_RESPONSE},
    {TE_TOO_LARGE, 0, RA_FAIL, REASON_BAD_RESPONSE},
};

static void test_classify_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(class_cases); i++) {
        const ClassCase *c = &class_cases[i];
        const char *reason = "untouched";
        RetryAction act = retry_classify(c->terr, c->status, &reason);
        if (act != c->act) {
            print_error("terr=%d status=%ld: action %d, want %d\n", (int)c->terr, c->status,
                        (int)act, (int)c->act);
            fail();
        }
        if (c->reason == NULL)
            assert_null(reason);
        else
            assert_string_equal(reason, c->reason);
    }
}

static void test_classify_null_reason(void **state)
{
    (void)state;
    assert_int_equal(retry_classify(TE_NONE, 404, NULL), RA_FAIL);
    assert_int_equal(retry_classify(TE_NONE, 200, NULL), RA_PARSE);
}

/* ---- backoff ---- */

static void test_backoff_doubles(void **state)
{
    (void)state;
    const double u = 0.5;
    assert_near(retry_backoff(1, 0.2, 30, u), 0.1, 1e-12);
    assert_near(retry_backoff(2, 0.2, 30, u), 0.2, 1e-12);
    assert_near(retry_backoff(3, 0.2, 30, u), 0.4, 1e-12);
    assert_near(retry_backoff(8, 0.2, 30, u), 12.8, 1e-12);
    assert_near(retry_backoff(9, 0.2, 30, u), 15, 1e-12); /* 25.6 * 2 > 30: capped */
    assert_near(retry_backoff(10, 0.2, 30, u), 15, 1e-12);
}

static void test_backoff_jitter_range(void **state)
{
    (void)state;
    assert_near(retry_backoff(3, 1, 100, 0), 0, 0);
    double hi = retry_backoff(3, 1, 100, nextafter(1.0, 0.0));
    assert_true(hi < 4 && hi > 3.999999);
    /* u01 outside [0, 1) is clamped into it. */
    assert_true(retry_backoff(3, 1, 100, 1.0) < 4);
    assert_true(retry_backoff(3, 1, 100, 7.0) < 4);
    assert_near(retry_backoff(3, 1, 100, -1), 0, 0);
    /* Every draw stays within [0, ceiling). */
    for (int a = 1; a <= 40; a++) {
        for (int k = 0; k < 10; k++) {
            double v = retry_backoff(a, 0.2, 30, k / 10.0);
            assert_true(v >= 0 && v < 30);
            assert_true(v <= 0.2 * pow(2, a - 1));
        }
    }
}

static void test_backoff_huge_attempts(void **state)
{
    (void)state;
    /* 2^(attempts-1) would overflow long before INT_MAX: the cap must win first. */
    int attempts[] = {64, 1000, 1023, 1024, 1025, 5000, INT_MAX};
    for (size_t i = 0; i < ARRAY_LEN(attempts); i++) {
        double v = retry_backoff(attempts[i], 0.2, 30, 0.5);
        assert_true(isfinite(v));
        assert_near(v, 15, 1e-12);
    }
    /* A huge base is capped as well. */
    assert_near(retry_backoff(1, 1e308, 10, 0.5), 5, 1e-12);
    assert_near(retry_backoff(900, 1e308, 10, 0.5), 5, 1e-12);
}

static void test_backoff_degenerate_inputs(void **state)
{
    (void)state;
    assert_near(retry_backoff(0, 0.2, 30, 0.5), 0.1, 1e-12); /* attempts < 1 acts as 1 */
    assert_near(retry_backoff(-7, 0.2, 30, 0.5), 0.1, 1e-12);
    assert_near(retry_backoff(3, 0, 30, 0.5), 0, 0);
    assert_near(retry_backoff(3, -1, 30, 0.5), 0, 0);
    assert_near(retry_backoff(3, 0.2, 0, 0.5), 0, 0);
    assert_near(retry_backoff(3, NAN, 30, 0.5), 0, 0);
    assert_near(retry_backoff(3, 0.2, NAN, 0.5), 0, 0);
    assert_near(retry_backoff(3, 0.2, 30, NAN), 0, 0);
    assert_near(retry_backoff(3, 0.2, INFINITY, 0.5), 0.4, 1e-12);
}

/* ---- Retry-After ---- */

/* Wed, 21 Oct 2015 07:28:00 GMT */
#define T_2015 1445412480.0
/* Sun, 06 Nov 1994 08:49:37 GMT */
#define T_1994 784111777.0

static double after(const char *value, double now)
{
    double s = -12345;
    if (!retry_after_parse(value, now, &s)) {
        print_error("rejected: \"%s\"\n", value ? value : "(null)");
        fail();
    }
    assert_true(s >= 0);
    return s;
}

static void refused(const char *value, double now)
{
    double s = -12345;
    if (retry_after_parse(value, now, &s)) {
        /* value may be NULL (a missing header): printf's %s must not get it */
        print_error("accepted: \"%s\" as %g\n", value ? value : "(null)", s);
        fail();
    }
    assert_near(s, -12345, 0); /* untouched on failure */
}

static void test_after_delta_seconds(void **state)
{
    (void)state;
    assert_near(after("120", T_2015), 120, 0);
    assert_near(after("0", T_2015), 0, 0);
    assert_near(after("1", 0), 1, 0);
    assert_near(after("000010", T_2015), 10, 0);
    assert_near(after(" 5", T_2015), 5, 0);
    assert_near(after("5 \r\n", T_2015), 5, 0);
    assert_near(after("\t 86400 \t", T_2015), 86400, 0);
}

static void test_after_delta_clamped(void **state)
{
    (void)state;
    assert_near(after("86401", T_2015), 86400, 0);
    assert_near(after("31536000", T_2015), 86400, 0);
    assert_near(after("99999999999999999999999999999999999999999999", T_2015), 86400, 0);
}

static void test_after_junk(void **state)
{
    (void)state;
    refused(NULL, T_2015);
    refused("", T_2015);
    refused("   ", T_2015);
    refused("\r\n", T_2015);
    refused("-5", T_2015);
    refused("+5", T_2015);
    refused("-0", T_2015);
    refused("1.5", T_2015);
    refused("1e3", T_2015);
    refused("0x10", T_2015);
    refused("12a", T_2015);
    refused("a12", T_2015);
    refused("5 s", T_2015);
    refused("5 6", T_2015);
    refused("NaN", T_2015);
    refused("inf", T_2015);
    refused("tomorrow", T_2015);
    refused("\xff\xfe", T_2015);
}

static void test_after_imf_fixdate(void **state)
{
    (void)state;
    assert_near(after("Wed, 21 Oct 2015 07:28:00 GMT", T_2015 - 30), 30, 1e-9);
    assert_near(after("Wed, 21 Oct 2015 07:28:00 GMT", T_2015 - 0.5), 0.5, 1e-6);
    assert_near(after("  Sun, 06 Nov 1994 08:49:37 GMT\r\n", T_1994 - 90), 90, 1e-9);
    /* Calendar corners: leap day, century rules, the epoch. */
    assert_near(after("Mon, 29 Feb 2016 12:00:00 GMT", 1456747200.0 - 1), 1, 1e-9);
    assert_near(after("Wed, 01 Mar 2000 00:00:00 GMT", 951868800.0 - 2), 2, 1e-9);
    assert_near(after("Thu, 01 Jan 1970 00:00:00 GMT", -3), 3, 1e-9);
    assert_near(after("Mon, 01 Mar 2100 00:00:00 GMT", 4107542400.0 - 4), 4, 1e-9);
    /* Names are matched without regard to case. */
    assert_near(after("wed, 21 oct 2015 07:28:00 GMT", T_2015 - 30), 30, 1e-9);
}

static void test_after_rfc850(void **state)
{
    (void)state;
    assert_near(after("Wednesday, 21-Oct-15 07:28:00 GMT", T_2015 - 30), 30, 1e-9);
    assert_near(after("Sunday, 06-Nov-94 08:49:37 GMT", T_1994 - 5), 5, 1e-9);
    /* Two-digit years: 30 seen from late 2029 is 2030, one hour ahead. */
    assert_near(after("Tuesday, 01-Jan-30 00:00:00 GMT", 1893456000.0 - 3600), 3600, 1e-9);
    /* 99 seen from 2025 is 1999 (2099 is more than 50 years ahead): in the past. */
    assert_near(after("Tuesday, 01-Jun-99 00:00:00 GMT", 1748736000.0), 0, 0);
    /* 99 seen from 2060 is 2099: far ahead, so clamped. */
    assert_near(after("Monday, 01-Jun-99 00:00:00 GMT", 2840140800.0), 86400, 0);
    /* 94 seen from 2025 is 1994: past. */
    assert_near(after("Sunday, 06-Nov-94 08:49:37 GMT", 1748736000.0), 0, 0);
}

static void test_after_asctime(void **state)
{
    (void)state;
    assert_near(after("Sun Nov  6 08:49:37 1994", T_1994 - 10), 10, 1e-9);
    assert_near(after("Sun Nov 06 08:49:37 1994", T_1994 - 10), 10, 1e-9);
    assert_near(after("Sun Nov 6 08:49:37 1994", T_1994 - 10), 10, 1e-9);
    assert_near(after("Wed Oct 21 07:28:00 2015", T_2015 - 30), 30, 1e-9);
}

static void test_after_dates_past_and_far(void **state)
{
    (void)state;
    assert_near(after("Wed, 21 Oct 2015 07:28:00 GMT", T_2015), 0, 0);
    assert_near(after("Wed, 21 Oct 2015 07:28:00 GMT", T_2015 + 1e6), 0, 0);
    assert_near(after("Sun, 06 Nov 1994 08:49:37 GMT", T_2015), 0, 0);
    assert_near(after("Fri, 31 Dec 9999 23:59:59 GMT", T_2015), 86400, 0);
    assert_near(after("Wed, 21 Oct 2015 07:28:00 GMT", -1e300), 86400, 0);
    assert_near(after("Wed, 21 Oct 2015 07:28:00 GMT", 1e300), 0, 0);
    assert_near(after("Sunday, 06-Nov-94 08:49:37 GMT", 1e300), 0, 0);
}

static void test_after_bad_dates(void **state)
{
    (void)state;
    const double now = T_2015;
    refused("Wed, 21 Oct 2015 07:28:00", now);           /* no zone */
    refused("Wed, 21 Oct 2015 07:28:00 UTC", now);       /* zone must be GMT */
    refused("Wed, 21 Oct 2015 07:28:00 gmt", now);       /* ... spelled so */
    refused("Wed, 21 Oct 2015 07:28:00 GMT junk", now);  /* trailing junk */
    refused("Wed, 21 Oct 2015 07:28:00 GMT+1", now);     /* trailing junk */
    refused("Wed 21 Oct 2015 07:28:00 GMT", now);        /* missing comma */
    refused("Wed,  21 Oct 2015 07:28:00 GMT", now);      /* double space */
    refused("Wed, 21 Oct 15 07:28:00 GMT", now);         /* two-digit year */
    refused("Wed, 1 Oct 2015 07:28:00 GMT", now);        /* one-digit day */
    refused("Wed, 21 Oct 2015 7:28:00 GMT", now);        /* one-digit hour */
    refused("Wed, 21 Oct 2015 07:28 GMT", now);          /* no seconds */
    refused("Xyz, 21 Oct 2015 07:28:00 GMT", now);       /* day name */
    refused("Wednesday, 21 Oct 2015 07:28:00 GMT", now); /* long name in IMF */
    refused("Wed, 21 Foo 2015 07:28:00 GMT", now);       /* month name */
    refused("Wed, 21 October 2015 07:28:00 GMT", now);   /* month name */
    refused("Wed, 32 Oct 2015 07:28:00 GMT", now);       /* day range */
    refused("Wed, 00 Oct 2015 07:28:00 GMT", now);       /* day range */
    refused("Sun, 29 Feb 2015 07:28:00 GMT", now);       /* not a leap year */
    refused("Thu, 29 Feb 2100 07:28:00 GMT", now);       /* not a leap year */
    refused("Wed, 31 Nov 2015 07:28:00 GMT", now);       /* November has 30 */
    refused("Wed, 21 Oct 2015 24:00:00 GMT", now);       /* hour range */
    refused("Wed, 21 Oct 2015 07:60:00 GMT", now);       /* minute range */
    refused("Wed, 21 Oct 2015 07:28:61 GMT", now);       /* second range */
    refused("Wed, 21 Oct 2015 07:2a:00 GMT", now);       /* not a digit */
    refused("Wed, 21 Oct 2015 07:28:00 GMT\x01", now);   /* control byte */
    refused("Wed, 21 Oct 2015", now);                    /* truncated */
    refused("Wed,", now);                                /* truncated */
    refused("Wed", now);                                 /* truncated */
    refused("Wednesday, 21-Oct-2015 07:28:00 GMT", now); /* four-digit year in RFC 850 */
    refused("Wed, 21-Oct-15 07:28:00 GMT", now);         /* short name in RFC 850 */
    refused("Wednesday, 21-Oct-15 07:28:00", now);       /* no zone */
    refused("Sun Nov  6 08:49:37 94", now);              /* two-digit asctime year */
    refused("Sun Nov   6 08:49:37 1994", now);           /* too much padding */
    refused("Sun Nov  6 08:49:37 1994 GMT", now);        /* asctime has no zone */
    refused("Sun, Nov  6 08:49:37 1994", now);           /* comma in asctime */
    refused("Wed, 21 Oct 2015 07:28:00 GMT", NAN);       /* no sensible now */
    refused("Wed, 21 Oct 2015 07:28:00 GMT", INFINITY);
}

static void test_after_leap_second(void **state)
{
    (void)state;
    /* :60 is allowed by the grammar; it counts as the next second. */
    assert_near(after("Wed, 21 Oct 2015 07:28:60 GMT", T_2015), 60, 1e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_classify_null_reason),
        cmocka_unit_test(test_backoff_doubles),
        cmocka_unit_test(test_backoff_jitter_range),
        cmocka_unit_test(test_backoff_huge_attempts),
        cmocka_unit_test(test_backoff_degenerate_inputs),
        cmocka_unit_test(test_after_delta_seconds),
        cmocka_unit_test(test_after_delta_clamped),
        cmocka_unit_test(test_after_junk),
        cmocka_unit_test(test_after_imf_fixdate),
        cmocka_unit_test(test_after_rfc850),
        cmocka_unit_test(test_after_asctime),
        cmocka_unit_test(test_after_dates_past_and_far),
        cmocka_unit_test(test_after_bad_dates),
        cmocka_unit_test(test_after_leap_second),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
