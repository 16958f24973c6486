/* Unit tests for metrics: the exact exposition text of a small registry, label escaping,
 * cumulative histogram buckets, the optional checkpoint and quota gauges, the source lag
 * over pages, the outcome of an answer, and the parsing of a scrape's request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"

static const char *const reasons[3] = {"not_found", "no_location", "bad_response"};

static MetricsGauges gauges(const long long *failures)
{
    MetricsGauges g = {
        .rate_limit = 500,
        .rate = 400.5,
        .in_flight = 3,
        .rows_loaded = 42,
        .failures_kept = 1,
        .reason_names = reasons,
        .failures = failures,
        .n_reasons = 3,
        .source_lag = 0.25,
    };
    return g;
}

/* The lines of family name ("# HELP name ..." up to the next family), as a new string. */
static char *family_of(const char *text, const char *name)
{
    char start[128];
    snprintf(start, sizeof start, "# HELP %s ", name);
    const char *p = strstr(text, start);
    if (p == NULL)
        return NULL;
    const char *e = strstr(p + 1, "# HELP ");
    size_t n = e ? (size_t)(e - p) : strlen(p);
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void assert_family(const char *text, const char *name, const char *want)
{
    char *got = family_of(text, name);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static char *render(const Metrics *m, const MetricsGauges *g)
{
    Buf b;
    buf_init(&b, 1 << 20);
    assert_true(metrics_render(m, g, &b));
    assert_non_null(b.data);
    return b.data; /* the caller frees it */
}

static void test_exact_text_small_case(void **state)
{
    (void)state;
    Metrics m;
    metrics_init(&m, 1700000000.5);
    assert_int_equal(metrics_add_provider(&m, "primary"), 0);
    metrics_request(&m, 0, MO_OK, 0.0625); /* binary fractions: an exact sum */
    metrics_request(&m, 0, MO_OK, 0.03125);
    metrics_request(&m, 0, MO_RATE_LIMITED, 0.001953125);
    metrics_retry(&m, 0);
    metrics_batch_ignored(&m, 0, 3, 1);
    metrics_batch_ignored(&m, 0, 1, 0);
    metrics_batch_ignored(&m, 1, 9, 9); /* no such provider: ignored */
    metrics_page(&m, 10, 100.0);
    long long fails[3] = {2, 0, 5};
    MetricsGauges g = gauges(fails);
    char *t = render(&m, &g);

    assert_family(t, "pgenrich_build_info",
                  "# HELP pgenrich_build_info Always 1; the version of pgenrich in a label.\n"
                  "# TYPE pgenrich_build_info gauge\n"
                  "pgenrich_build_info{version=\"" PGENRICH_VERSION "\"} 1\n");
    assert_family(t, "pgenrich_start_time_seconds",
                  "# HELP pgenrich_start_time_seconds When the run started, in seconds since "
                  "the Unix epoch.\n"
                  "# TYPE pgenrich_start_time_seconds gauge\n"
                  "pgenrich_start_time_seconds 1700000000.5\n");
    assert_family(t, "pgenrich_requests_total",
                  "# HELP pgenrich_requests_total HTTP requests that ended, by provider and "
                  "outcome.\n"
                  "# TYPE pgenrich_requests_total counter\n"
                  "pgenrich_requests_total{provider=\"primary\",outcome=\"ok\"} 2\n"
                  "pgenrich_requests_total{provider=\"primary\",outcome=\"miss\"} 0\n"
                  "pgenrich_requests_total{provider=\"primary\",outcome=\"not_found\"} 0\n"
                  "pgenrich_requests_total{provider=\"primary\",outcome=\"forbidden\"} 0\n"
                  "pgenrich_requests_total{provider=\"primary\",outcome=\"rate_limited\"} 1\n"
                  "pgenrich_requests_total{provider=\"primary\",outcome=\"client_error\"} 0\n"
                  "pgenrich_requests_total{provider=\"primary\",outcome=\"server_error\"} 0\n"
                  "pgenrich_requests_total{provider=\"primary\",outcome=\"timeout\"} 0\n"
                  "pgenrich_requests_total{provider=\"primary\",outcome=\"network\"} 0\n"
                  "pgenrich_requests_total{provider=\"primary\",outcome=\"bad_response\"} 0\n");
    assert_family(t, "pgenrich_retries_total",
                  "# HELP pgenrich_retries_total Retries scheduled after a transient failure, "
                  "by provider.\n"
                  "# TYPE pgenrich_retries_total counter\n"
                  "pgenrich_retries_total{provider=\"primary\"} 1\n");
    assert_family(t, "pgenrich_batch_results_ignored_total",
                  "# HELP pgenrich_batch_results_ignored_total Results of batch answers set "
                  "aside, by provider and reason: unasked (an ID not asked, or no usable id) "
                  "or duplicate (an earlier result of an ID answered twice; the last one "
                  "wins).\n"
                  "# TYPE pgenrich_batch_results_ignored_total counter\n"
                  "pgenrich_batch_results_ignored_total{provider=\"primary\",reason=\"unasked\"} "
                  "4\n"
                  "pgenrich_batch_results_ignored_total{provider=\"primary\",reason="
                  "\"duplicate\"} 1\n");
    assert_family(t, "pgenrich_rate_limited_total",
                  "# HELP pgenrich_rate_limited_total Answers with status 429 (Too Many "
                  "Requests), by provider.\n"
                  "# TYPE pgenrich_rate_limited_total counter\n"
                  "pgenrich_rate_limited_total{provider=\"primary\"} 1\n");
    assert_family(t, "pgenrich_rate_limit_requests_per_second",
                  "# HELP pgenrich_rate_limit_requests_per_second The configured request rate "
                  "limit (--rate); 0 means none.\n"
                  "# TYPE pgenrich_rate_limit_requests_per_second gauge\n"
                  "pgenrich_rate_limit_requests_per_second 500\n");
    assert_non_null(strstr(t, "\npgenrich_rate_requests_per_second 400.5\n"));
    assert_non_null(strstr(t, "\npgenrich_in_flight_requests 3\n"));
    assert_family(t, "pgenrich_request_duration_seconds",
                  "# HELP pgenrich_request_duration_seconds Time from sending a request to its "
                  "end, by provider.\n"
                  "# TYPE pgenrich_request_duration_seconds histogram\n"
                  "pgenrich_request_duration_seconds_bucket{provider=\"primary\",le=\"0.005\"} 1\n"
                  "pgenrich_request_duration_seconds_bucket{provider=\"primary\",le=\"0.01\"} 1\n"
                  "pgenrich_request_duration_seconds_bucket{provider=\"primary\",le=\"0.025\"} 1\n"
                  "pgenrich_request_duration_seconds_bucket{provider=\"primary\",le=\"0.05\"} 2\n"
                  "pgenrich_request_duration_seconds_bucket{provider=\"primary\",le=\"0.1\"} 3\n"
                  "pgenrich_request_duration_seconds_bucket{provider=\"primary\",le=\"0.25\"} 3\n"
                  "pgenrich_request_duration_seconds_bucket{provider=\"primary\",le=\"0.5\"} 3\n"
                  "pgenrich_request_duration_seconds_bucket{provider=\"primary\",le=\"1\"} 3\n"
                  "pgenrich_request_duration_seconds_bucket{provider=\"primary\",le=\"2.5\"} 3\n"
                  "pgenrich_request_duration_seconds_bucket{provider=\"primary\",le=\"5\"} 3\n"
                  "pgenrich_request_duration_seconds_bucket{provider=\"primary\",le=\"10\"} 3\n"
                  "pgenrich_request_duration_seconds_bucket{provider=\"primary\",le=\"30\"} 3\n"
                  "pgenrich_request_duration_seconds_bucket{provider=\"primary\",le=\"+Inf\"} 3\n"
                  "pgenrich_request_duration_seconds_sum{provider=\"primary\"} 0.095703125\n"
                  "pgenrich_request_duration_seconds_count{provider=\"primary\"} 3\n");
    assert_non_null(strstr(t, "\npgenrich_ids_read_total 10\n"));
    assert_non_null(strstr(t, "\npgenrich_rows_loaded_total 42\n"));
    assert_family(t, "pgenrich_failures_total",
                  "# HELP pgenrich_failures_total Lookups that ended without a row, committed, by "
                  "reason (those whose ID kept its target row included).\n"
                  "# TYPE pgenrich_failures_total counter\n"
                  "pgenrich_failures_total{reason=\"not_found\"} 2\n"
                  "pgenrich_failures_total{reason=\"no_location\"} 0\n"
                  "pgenrich_failures_total{reason=\"bad_response\"} 5\n");
    assert_non_null(strstr(t, "\npgenrich_failures_kept_total 1\n"));
    assert_null(strstr(t, "pgenrich_checkpoint_position")); /* no number: no series */
    assert_non_null(strstr(t, "\npgenrich_flush_duration_seconds_bucket{le=\"+Inf\"} 0\n"));
    assert_non_null(strstr(t, "\npgenrich_flush_duration_seconds_count 0\n"));
    assert_family(t, "pgenrich_source_lag_seconds",
                  "# HELP pgenrich_source_lag_seconds Seconds since the page holding the "
                  "oldest unsettled ID was read from the source; 0 when every ID read is "
                  "settled.\n"
                  "# TYPE pgenrich_source_lag_seconds gauge\n"
                  "pgenrich_source_lag_seconds 0.25\n");
    assert_int_equal(t[strlen(t) - 1], '\n');
    free(t);
}

/* The quota families: absent until a provider announces a quota, then one sample per
 * provider that does. */
static void test_quota_gauges(void **state)
{
    (void)state;
    Metrics m;
    metrics_init(&m, 0);
    assert_int_equal(metrics_add_provider(&m, "primary"), 0);
    assert_int_equal(metrics_add_provider(&m, "secondary"), 1);
    long long fails[3] = {0, 0, 0};
    MetricsQuota q[2] = {{false, 0, 0, 0}, {false, 0, 0, 0}};
    MetricsGauges g = gauges(fails);
    g.quota = q;
    char *t = render(&m, &g);
    assert_null(strstr(t, "pgenrich_quota"));
    free(t);
    q[1] = (MetricsQuota){true, 3000, 1234, 617.5};
    t = render(&m, &g);
    assert_family(t, "pgenrich_quota_limit",
                  "# HELP pgenrich_quota_limit The quota a provider announces (RateLimit-Limit): "
                  "requests per window; 0 when it announces none.\n"
                  "# TYPE pgenrich_quota_limit gauge\n"
                  "pgenrich_quota_limit{provider=\"secondary\"} 3000\n");
    assert_family(t, "pgenrich_quota_remaining",
                  "# HELP pgenrich_quota_remaining Requests left in the provider's quota window, "
                  "as estimated now: the last Remaining announced less the requests sent "
                  "since.\n"
                  "# TYPE pgenrich_quota_remaining gauge\n"
                  "pgenrich_quota_remaining{provider=\"secondary\"} 1234\n");
    assert_family(t, "pgenrich_quota_rate_requests_per_second",
                  "# HELP pgenrich_quota_rate_requests_per_second The rate the provider is paced "
                  "at so that its quota lasts until the reset; 0 while it is spent.\n"
                  "# TYPE pgenrich_quota_rate_requests_per_second gauge\n"
                  "pgenrich_quota_rate_requests_per_second{provider=\"secondary\"} 617.5\n");
    free(t);
}

static void test_label_escaping(void **state)
{
    (void)state;
    Metrics m;
    metrics_init(&m, 0);
    assert_int_equal(metrics_add_provider(&m, "a\"b\\c\nd"), 0);
    metrics_retry(&m, 0);
    long long fails[3] = {0, 0, 0};
    MetricsGauges g = gauges(fails);
    char *t = render(&m, &g);
    assert_non_null(strstr(t, "\npgenrich_retries_total{provider=\"a\\\"b\\\\c\\nd\"} 1\n"));
    assert_non_null(
        strstr(t, "\npgenrich_request_duration_seconds_sum{provider=\"a\\\"b\\\\c\\nd\"} 0\n"));
    free(t);

    Buf b;
    buf_init(&b, 100);
    assert_true(metrics_escape_label(&b, "plain.name-1_x"));
    assert_string_equal(b.data, "plain.name-1_x");
    buf_free(&b);
}

static void test_histogram_cumulative(void **state)
{
    (void)state;
    Metrics m;
    metrics_init(&m, 0);
    metrics_flush(&m, 0.01);  /* on a bound: counted in it (le is "less or equal") */
    metrics_flush(&m, 0.011); /* just above */
    metrics_flush(&m, 7);
    metrics_flush(&m, 1000); /* above every bound: only +Inf */
    metrics_flush(&m, -1);   /* a clock step back counts as 0 */
    long long fails[3] = {0, 0, 0};
    MetricsGauges g = gauges(fails);
    char *t = render(&m, &g);
    assert_family(t, "pgenrich_flush_duration_seconds",
                  "# HELP pgenrich_flush_duration_seconds Time a flush took to commit its "
                  "batch to the database.\n"
                  "# TYPE pgenrich_flush_duration_seconds histogram\n"
                  "pgenrich_flush_duration_seconds_bucket{le=\"0.01\"} 2\n"
                  "pgenrich_flush_duration_seconds_bucket{le=\"0.025\"} 3\n"
                  "pgenrich_flush_duration_seconds_bucket{le=\"0.05\"} 3\n"
                  "pgenrich_flush_duration_seconds_bucket{le=\"0.1\"} 3\n"
                  "pgenrich_flush_duration_seconds_bucket{le=\"0.25\"} 3\n"
                  "pgenrich_flush_duration_seconds_bucket{le=\"0.5\"} 3\n"
                  "pgenrich_flush_duration_seconds_bucket{le=\"1\"} 3\n"
                  "pgenrich_flush_duration_seconds_bucket{le=\"2.5\"} 3\n"
                  "pgenrich_flush_duration_seconds_bucket{le=\"5\"} 3\n"
                  "pgenrich_flush_duration_seconds_bucket{le=\"10\"} 4\n"
                  "pgenrich_flush_duration_seconds_bucket{le=\"30\"} 4\n"
                  "pgenrich_flush_duration_seconds_bucket{le=\"60\"} 4\n"
                  "pgenrich_flush_duration_seconds_bucket{le=\"+Inf\"} 5\n"
                  "pgenrich_flush_duration_seconds_sum 1007.021\n"
                  "pgenrich_flush_duration_seconds_count 5\n");
    free(t);
}

static void test_checkpoint_only_when_numeric(void **state)
{
    (void)state;
    Metrics m;
    metrics_init(&m, 0);
    long long fails[3] = {0, 0, 0};
    MetricsGauges g = gauges(fails);
    metrics_checkpoint(&m, true, 123456789012.0);
    char *t = render(&m, &g);
    assert_family(t, "pgenrich_checkpoint_position",
                  "# HELP pgenrich_checkpoint_position The committed checkpoint: the last key "
                  "settled (a numeric key) or the rows settled (offset paging).\n"
                  "# TYPE pgenrich_checkpoint_position gauge\n"
                  "pgenrich_checkpoint_position 123456789012\n");
    free(t);
    metrics_checkpoint(&m, false, 5);
    t = render(&m, &g);
    assert_null(strstr(t, "pgenrich_checkpoint_position"));
    free(t);
}

static void test_source_lag(void **state)
{
    (void)state;
    Metrics m;
    metrics_init(&m, 0);
    assert_true(metrics_source_lag(&m, 0, 50.0) == 0.0); /* nothing read */
    metrics_page(&m, 100, 10.0);                         /* IDs 0..99 */
    metrics_page(&m, 100, 20.0);                         /* IDs 100..199 */
    assert_true(metrics_source_lag(&m, 0, 25.0) == 15.0);
    assert_true(metrics_source_lag(&m, 99, 25.0) == 15.0); /* ID 99 still open */
    assert_true(metrics_source_lag(&m, 100, 25.0) == 5.0); /* the first page is settled */
    assert_true(metrics_source_lag(&m, 200, 25.0) == 0.0); /* all settled */
    assert_true(metrics_source_lag(&m, 200, 30.0) == 0.0);
    metrics_page(&m, 1, 40.0);
    assert_true(metrics_source_lag(&m, 200, 39.0) == 0.0); /* a clock behind: never < 0 */

    /* A full ring: the newest entry takes the further pages. */
    metrics_init(&m, 0);
    for (int i = 0; i < METRICS_PAGES_MAX + 10; i++)
        metrics_page(&m, 10, (double)i);
    assert_int_equal(m.page_count, METRICS_PAGES_MAX);
    assert_int_equal(m.ids_read, (unsigned long long)(METRICS_PAGES_MAX + 10) * 10);
    double last = METRICS_PAGES_MAX + 20.0;
    assert_true(metrics_source_lag(&m, 0, last) == last);
    assert_true(metrics_source_lag(&m, (unsigned long long)(METRICS_PAGES_MAX + 9) * 10, last) ==
                last - (METRICS_PAGES_MAX - 1));
}

static void test_outcome(void **state)
{
    (void)state;
    assert_int_equal(metrics_outcome(TE_NONE, 200), MO_OK);
    assert_int_equal(metrics_outcome(TE_NONE, 404), MO_NOT_FOUND);
    assert_int_equal(metrics_outcome(TE_NONE, 403), MO_FORBIDDEN);
    assert_int_equal(metrics_outcome(TE_NONE, 429), MO_RATE_LIMITED);
    assert_int_equal(metrics_outcome(TE_NONE, 401), MO_CLIENT_ERROR);
    assert_int_equal(metrics_outcome(TE_NONE, 422), MO_CLIENT_ERROR);
    assert_int_equal(metrics_outcome(TE_NONE, 503), MO_SERVER_ERROR);
    assert_int_equal(metrics_outcome(TE_NONE, 302), MO_BAD_RESPONSE);
    assert_int_equal(metrics_outcome(TE_NONE, 204), MO_BAD_RESPONSE);
    assert_int_equal(metrics_outcome(TE_TIMEOUT, 0), MO_TIMEOUT);
    assert_int_equal(metrics_outcome(TE_RESET, 0), MO_NETWORK);
    assert_int_equal(metrics_outcome(TE_CONNECT, 0), MO_NETWORK);
    assert_int_equal(metrics_outcome(TE_TOO_LARGE, 200), MO_BAD_RESPONSE);

    Metrics m;
    metrics_init(&m, 0);
    metrics_request(&m, 0, MO_OK, 1); /* no provider yet: ignored */
    metrics_retry(&m, 3);
    for (int i = 0; i < METRICS_PROVIDERS_MAX; i++)
        assert_int_equal(metrics_add_provider(&m, "p"), i);
    assert_int_equal(metrics_add_provider(&m, "one too many"), -1);
    metrics_request(&m, METRICS_PROVIDERS_MAX, MO_OK, 1);
    assert_int_equal(m.prov[0].requests[MO_OK], 0);
}

static void test_render_cap(void **state)
{
    (void)state;
    Metrics m;
    metrics_init(&m, 0);
    (void)metrics_add_provider(&m, "primary");
    long long fails[3] = {0, 0, 0};
    MetricsGauges g = gauges(fails);
    Buf b;
    buf_init(&b, 512);
    assert_false(metrics_render(&m, &g, &b));
    buf_free(&b);
}

static void test_worker_identity(void **state)
{
    (void)state;
    MetricsWorker w = {.job = "night\"ly",
                       .worker = "box:12:0000abcd",
                       .host = "box",
                       .range_no = 7,
                       .fence = 3,
                       .ranges_claimed = 2};
    Buf b;
    buf_init(&b, 1 << 16);
    assert_true(metrics_render_worker(&w, &b));
    assert_string_equal(
        b.data,
        "# HELP pgenrich_worker_info Always 1; a shared worker's identity (run --shared) in "
        "labels: its job, its owner id in the ranges table and its host.\n"
        "# TYPE pgenrich_worker_info gauge\n"
        "pgenrich_worker_info{job=\"night\\\"ly\",worker=\"box:12:0000abcd\",host=\"box\"} 1\n"
        "# HELP pgenrich_range_current The range of the job this worker works on now (its "
        "range_no).\n"
        "# TYPE pgenrich_range_current gauge\n"
        "pgenrich_range_current 7\n"
        "# HELP pgenrich_range_fence The fencing token of this worker's claim on its range; it "
        "grows at every claim of the range.\n"
        "# TYPE pgenrich_range_fence gauge\n"
        "pgenrich_range_fence 3\n"
        "# HELP pgenrich_ranges_claimed_total Ranges this worker has claimed since it started, "
        "the current one included.\n"
        "# TYPE pgenrich_ranges_claimed_total counter\n"
        "pgenrich_ranges_claimed_total 2\n");
    buf_free(&b);
    buf_init(&b, 64); /* a cap that cuts it short */
    assert_false(metrics_render_worker(&w, &b));
    buf_free(&b);
}

static void test_parse_request(void **state)
{
    (void)state;
    bool head = true;
#define PARSE(s) metrics_parse_request((s), sizeof(s) - 1, &head)
    assert_int_equal(PARSE("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), MR_METRICS);
    assert_false(head);
    assert_int_equal(PARSE("HEAD /metrics?name=x HTTP/1.0\n\n"), MR_METRICS);
    assert_true(head);
    assert_int_equal(PARSE("GET / HTTP/1.0\r\n\r\n"), MR_INDEX);
    assert_int_equal(PARSE("GET /metricsx HTTP/1.0\r\n\r\n"), MR_NOT_FOUND);
    assert_int_equal(PARSE("GET /metrics/ HTTP/1.0\r\n\r\n"), MR_NOT_FOUND);
    assert_int_equal(PARSE("POST /metrics HTTP/1.1\r\n\r\n"), MR_BAD_METHOD);
    assert_int_equal(PARSE("get /metrics HTTP/1.1\r\n\r\n"), MR_BAD_METHOD); /* case matters */
    assert_int_equal(PARSE("GET /metrics\r\n\r\n"), MR_BAD_REQUEST);
    assert_int_equal(PARSE("GET  /metrics HTTP/1.1\r\n\r\n"), MR_BAD_REQUEST);
    assert_int_equal(PARSE("GET /metrics HTTP/2.0\r\n\r\n"), MR_BAD_REQUEST);
    assert_int_equal(PARSE("GET /met\x01rics HTTP/1.1\r\n\r\n"), MR_BAD_REQUEST);
    assert_int_equal(PARSE("\r\n\r\n"), MR_BAD_REQUEST);
    assert_int_equal(PARSE("GET /metrics HTTP/1.1\r\nHost: x\r\n"), MR_INCOMPLETE);
    assert_int_equal(PARSE(""), MR_INCOMPLETE);
#undef PARSE
    /* A head that never ends is refused at the cap. */
    char *big = malloc(METRICS_REQUEST_MAX);
    assert_non_null(big);
    memset(big, 'a', METRICS_REQUEST_MAX);
    memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
    assert_int_equal(metrics_parse_request(big, METRICS_REQUEST_MAX - 1, &head), MR_INCOMPLETE);
    assert_int_equal(metrics_parse_request(big, METRICS_REQUEST_MAX, &head), MR_BAD_REQUEST);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_text_small_case),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_histogram_cumulative),
        cmocka_unit_test(test_checkpoint_only_when_numeric),
        cmocka_unit_test(test_source_lag),
        cmocka_unit_test(test_outcome),
        cmocka_unit_test(test_render_cap),
        cmocka_unit_test(test_quota_gauges),
        cmocka_unit_test(test_parse_request),
        cmocka_unit_test(test_worker_identity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
