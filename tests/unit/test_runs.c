/* Unit tests for runs: states from exit statuses, what a row with no end shows as, who holds
 * the lock, durations, and the status report in text and as JSON that parses back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "exitcode.h"
#include "runs.h"

static void test_state_of_exit(void **state)
{
    (void)state;
    assert_string_equal(runs_state_of_exit(EXIT_OK), "done");
    assert_string_equal(runs_state_of_exit(EXIT_FAILURES), "done");
    assert_string_equal(runs_state_of_exit(EXIT_TEMPFAIL), "interrupted");
    assert_string_equal(runs_state_of_exit(EXIT_RUNTIME), "failed");
    assert_string_equal(runs_state_of_exit(EXIT_AUTH), "failed");
    assert_string_equal(runs_state_of_exit(EXIT_DB), "failed");
    assert_string_equal(runs_state_of_exit(-1), "failed");
}

static void test_shown_state(void **state)
{
    (void)state;
    assert_string_equal(runs_shown_state("done", true, false), "done");
    assert_string_equal(runs_shown_state("interrupted", true, true), "interrupted");
    assert_string_equal(runs_shown_state("running", false, true), "running");
    assert_string_equal(runs_shown_state("running", false, false), "killed");
    assert_string_equal(runs_shown_state(NULL, true, false), "failed");
}

static void test_holder_is(void **state)
{
    (void)state;
    /* the backend that wrote the row */
    assert_true(runs_holder_is(4242, "psql", 4242, 17, "h"));
    /* a runner that reconnected: another backend, its own application_name */
    assert_true(runs_holder_is(5000, "pgenrich pid 17 on h", 4242, 17, "h"));
    assert_false(runs_holder_is(5000, "pgenrich pid 18 on h", 4242, 17, "h"));
    assert_false(runs_holder_is(5000, "pgenrich pid 17 on hx", 4242, 17, "h"));
    assert_false(runs_holder_is(5000, "pgenrich pid 1", 4242, 17, "h"));
    assert_false(runs_holder_is(5000, "", 4242, 17, "h"));
    assert_false(runs_holder_is(5000, NULL, 4242, 17, "h"));
    assert_false(runs_holder_is(5000, "pgenrich pid 17 on h", 0, 0, "h"));
    /* the server keeps 63 bytes of an application_name */
    char host[80], app[64];
    memset(host, 'x', sizeof host - 1);
    host[sizeof host - 1] = '\0';
    static const char head[] = "pgenrich pid 17 on ";
    memcpy(app, head, sizeof head - 1);
    memcpy(app + sizeof head - 1, host, sizeof app - sizeof head);
    app[sizeof app - 1] = '\0';
    assert_int_equal(strlen(app), 63);
    assert_true(runs_holder_is(5000, app, 0, 17, host));
}

static void test_duration(void **state)
{
    (void)state;
    char d[32];
    runs_format_duration(0.25, d, sizeof d);
    assert_string_equal(d, "250ms");
    runs_format_duration(4.27, d, sizeof d);
    assert_string_equal(d, "4.2s");
    runs_format_duration(245, d, sizeof d);
    assert_string_equal(d, "4m05s");
    runs_format_duration(2 * 3600 + 3 * 60 + 59, d, sizeof d);
    assert_string_equal(d, "2h03m");
    runs_format_duration(3 * 86400 + 4 * 3600 + 1, d, sizeof d);
    assert_string_equal(d, "3d04h");
    runs_format_duration(-1, d, sizeof d);
    assert_string_equal(d, "-");
    runs_format_duration(0.0 / 0.0, d, sizeof d);
    assert_string_equal(d, "-");
    char tiny[3];
    runs_format_duration(245, tiny, sizeof tiny);
    assert_int_equal(strlen(tiny), 2);
}

static const RunsRun sample_runs[] = {
    {.run_id = 3,
     .command = "run",
     .host = "box",
     .pid = 99,
     .version = "0.1.0",
     .started_at = "2024-05-01T10:00:00Z",
     .updated_at = "2024-05-01T10:00:05Z",
     .ended_at = NULL,
     .state = "running",
     .rows_loaded = 1200,
     .failures = 30,
     .requests = 1300,
     .has_rate = true,
     .ids_per_s = 246.5,
     .duration_s = 5,
     .checkpoint_from = "a\"b\\c\n",
     .checkpoint_to = "zz",
     .by_reason = "{\"not_found\": 30}"},
    {.run_id = 2,
     .command = "retry-failed",
     .host = "box",
     .pid = 98,
     .version = "0.1.0",
     .started_at = "2024-05-01T09:00:00Z",
     .updated_at = "2024-05-01T09:00:01Z",
     .ended_at = "2024-05-01T09:00:01Z",
     .has_exit = true,
     .exit_status = 75,
     .state = "interrupted",
     .duration_s = 1,
     .by_reason = "not json"},
};

static const RunsReason sample_reasons[] = {{"no_location", 4}, {"not_found", 30}};

static RunsReport sample(void)
{
    RunsReport r = {.job = "night\tly",
                    .has_checkpoint = true,
                    .position = "zz",
                    .paging = "keyset",
                    .ckpt_rows = 5000,
                    .ckpt_failures = 34,
                    .ckpt_started_at = "2024-05-01T08:00:00Z",
                    .ckpt_updated_at = "2024-05-01T10:00:05Z",
                    .has_ids_left = true,
                    .ids_left = 777,
                    .held = true,
                    .holder_pid = 4242,
                    .holder_application = "pgenrich pid 99 on box",
                    .holder_client = "local",
                    .holder_since = "2024-05-01T10:00:00Z",
                    .runs = sample_runs,
                    .nruns = 2,
                    .reasons = sample_reasons,
                    .nreasons = 2};
    return r;
}

static void test_text(void **state)
{
    (void)state;
    RunsReport r = sample();
    Buf b;
    buf_init(&b, 1 << 20);
    assert_true(runs_report_text(&r, &b));
    assert_non_null(strstr(b.data, "job: night?ly\n"));
    assert_non_null(strstr(b.data, "checkpoint: after zz (keyset paging), 5000 rows loaded"));
    assert_non_null(strstr(b.data, "ids left: 777"));
    assert_non_null(strstr(b.data, "runner: running: pgenrich pid 99 on box"));
    assert_non_null(strstr(b.data, " running "));
    assert_non_null(strstr(b.data, " interrupted "));
    assert_non_null(strstr(b.data, "a\"b\\c? -> zz\n"));
    assert_non_null(strstr(b.data, " (the failure ledger)\n"));
    assert_non_null(strstr(b.data, "no_location=4 not_found=30 (34 in all)\n"));
    buf_free(&b);

    RunsReport never = {.job = "new"};
    buf_init(&b, 1 << 20);
    assert_true(runs_report_text(&never, &b));
    assert_non_null(strstr(b.data, "never run"));
    assert_non_null(strstr(b.data, "runner: none"));
    buf_free(&b);

    /* a buffer too small fails, it does not cut a line in silence */
    buf_init(&b, 64);
    assert_false(runs_report_text(&r, &b));
    buf_free(&b);
}

static void test_json(void **state)
{
    (void)state;
    RunsReport r = sample();
    Buf b;
    buf_init(&b, 1 << 20);
    assert_true(runs_report_json(&r, &b));
    json_object *o = json_tokener_parse(b.data);
    assert_non_null(o);
    json_object *v, *runs, *run, *x;
    assert_true(json_object_object_get_ex(o, "job", &v));
    assert_string_equal(json_object_get_string(v), "night\tly");
    assert_true(json_object_object_get_ex(o, "ran", &v));
    assert_true(json_object_get_boolean(v));
    assert_true(json_object_object_get_ex(o, "ids_left", &v));
    assert_int_equal(json_object_get_int64(v), 777);
    assert_true(json_object_object_get_ex(o, "checkpoint", &v));
    assert_true(json_object_object_get_ex(v, "position", &x));
    assert_string_equal(json_object_get_string(x), "zz");
    assert_true(json_object_object_get_ex(o, "runner", &v));
    assert_true(json_object_object_get_ex(v, "backend_pid", &x));
    assert_int_equal(json_object_get_int64(x), 4242);
    assert_true(json_object_object_get_ex(o, "runs", &runs));
    assert_int_equal(json_object_array_length(runs), 2);
    run = json_object_array_get_idx(runs, 0);
    assert_true(json_object_object_get_ex(run, "state", &x));
    assert_string_equal(json_object_get_string(x), "running");
    assert_true(json_object_object_get_ex(run, "ended_at", &x));
    assert_null(x);
    assert_true(json_object_object_get_ex(run, "exit_status", &x));
    assert_null(x);
    assert_true(json_object_object_get_ex(run, "checkpoint_from", &x));
    assert_string_equal(json_object_get_string(x), "a\"b\\c\n");
    assert_true(json_object_object_get_ex(run, "failures_by_reason", &x));
    assert_true(json_object_object_get_ex(x, "not_found", &v));
    assert_int_equal(json_object_get_int64(v), 30);
    run = json_object_array_get_idx(runs, 1);
    assert_true(json_object_object_get_ex(run, "exit_status", &x));
    assert_int_equal(json_object_get_int(x), 75);
    assert_true(json_object_object_get_ex(run, "failures_by_reason", &x));
    assert_null(x); /* "not json" */
    assert_true(json_object_object_get_ex(o, "failures_total", &v));
    assert_int_equal(json_object_get_int64(v), 34);
    json_object_put(o);
    buf_free(&b);

    RunsReport never = {.job = "new"};
    buf_init(&b, 1 << 20);
    assert_true(runs_report_json(&never, &b));
    o = json_tokener_parse(b.data);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "ran", &v));
    assert_false(json_object_get_boolean(v));
    assert_true(json_object_object_get_ex(o, "checkpoint", &v));
    assert_null(v);
    assert_true(json_object_object_get_ex(o, "runner", &v));
    assert_null(v);
    json_object_put(o);
    buf_free(&b);
}

static void test_shared_progress(void **state)
{
    (void)state;
    long long left;
    double f, eta;
    RunsShared s = {.ranges = 4, .pending = 1, .leased = 2, .done = 1, .ids_done = 250};
    assert_int_equal(runs_shared_progress(&s, &left, &f, &eta), 0); /* no total, no rate */
    s.has_total = true;
    s.ids_total = 1000;
    assert_int_equal(runs_shared_progress(&s, &left, &f, &eta), 1); /* no rate */
    assert_int_equal(left, 750);
    assert_true(f > 0.2499 && f < 0.2501);
    s.has_rate = true;
    s.ids_per_s = 50;
    assert_int_equal(runs_shared_progress(&s, &left, &f, &eta), 3);
    assert_true(eta > 14.99 && eta < 15.01);
    s.ids_done = 1010; /* a repeated window: never past the total, never 100 % while left */
    assert_int_equal(runs_shared_progress(&s, &left, &f, &eta), 3);
    assert_int_equal(left, 0);
    assert_true(f < 1);
    assert_true(eta == 0);
    RunsShared done = {.ranges = 4, .done = 4, .ids_done = 990};
    assert_int_equal(runs_shared_progress(&done, &left, &f, &eta), 3); /* no total needed */
    assert_int_equal(left, 0);
    assert_true(f == 1);
    assert_true(eta == 0);
}

static void test_shared_render(void **state)
{
    (void)state;
    RunsWorker w[2] = {{.owner = "box:12:0000abcd",
                        .leased = "3,7",
                        .ranges_done = 2,
                        .live = true,
                        .has_lease_left = true,
                        .lease_left_s = 2.5},
                       {.owner = "old\n:1:ffffffff", .leased = "", .ranges_done = 1}};
    RunsRange g[2] = {{.range_no = 3,
                       .owner = "box:12:0000abcd",
                       .fence = 2,
                       .lease_left_s = 2.5,
                       .position = "300",
                       .rows_loaded = 40,
                       .failures = 2},
                      {.range_no = 7, .owner = "box:12:0000abcd", .fence = 1, .lease_left_s = -1}};
    RunsShared s = {.ranges = 8,
                    .pending = 3,
                    .leased = 2,
                    .expired = 1,
                    .done = 3,
                    .workers = w,
                    .nworkers = 2,
                    .leased_ranges = g,
                    .nleased = 2,
                    .ids_done = 400,
                    .has_total = true,
                    .ids_total = 1000,
                    .has_rate = true,
                    .ids_per_s = 20,
                    .rate_runs = 1};
    RunsReport r = {.job = "j", .shared = &s};
    Buf b;
    buf_init(&b, 1 << 20);
    assert_true(runs_report_ran(&r));
    assert_true(runs_report_text(&r, &b));
    assert_non_null(strstr(b.data, "ranges: 8 (run --shared): 3 pending, 2 leased (1 with the "
                                   "lease expired), 3 done\n"));
    assert_non_null(strstr(b.data, "progress: 400 IDs done of 1000 (40.0 %), 600 left, 20.0 "
                                   "IDs/s (1 live run), ETA 30.0s\n"));
    assert_non_null(strstr(b.data, "workers: 1 live of 2 (from the ranges' owners)\n"));
    assert_non_null(strstr(b.data, "  box:12:0000abcd  live=yes leased=3,7 done=2 "
                                   "lease_left=2.5s\n"));
    assert_non_null(strstr(b.data, "  old?:1:ffffffff  live=no leased=- done=1 lease_left=-\n"));
    assert_non_null(strstr(b.data, "expired"));
    assert_null(strstr(b.data, "ids left:"));
    buf_free(&b);

    buf_init(&b, 1 << 20);
    assert_true(runs_report_json(&r, &b));
    json_object *o = json_tokener_parse(b.data), *sh, *v, *x;
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "shared", &sh));
    assert_true(json_object_object_get_ex(sh, "workers_live", &v));
    assert_int_equal(json_object_get_int(v), 1);
    assert_true(json_object_object_get_ex(sh, "workers", &v));
    x = json_object_array_get_idx(v, 0);
    assert_true(json_object_object_get_ex(x, "leased_ranges", &x));
    assert_int_equal(json_object_array_length(x), 2);
    assert_int_equal(json_object_get_int(json_object_array_get_idx(x, 1)), 7);
    assert_true(json_object_object_get_ex(sh, "leased", &v));
    x = json_object_array_get_idx(v, 1);
    assert_true(json_object_object_get_ex(x, "expired", &x));
    assert_true(json_object_get_boolean(x));
    assert_true(json_object_object_get_ex(sh, "progress", &v));
    assert_true(json_object_object_get_ex(v, "eta_s", &x));
    assert_true(json_object_get_double(x) > 29.9 && json_object_get_double(x) < 30.1);
    assert_true(json_object_object_get_ex(v, "ids_left", &x));
    assert_int_equal(json_object_get_int64(x), 600);
    json_object_put(o);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_of_exit),
        cmocka_unit_test(test_shown_state),
        cmocka_unit_test(test_holder_is),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_shared_progress),
        cmocka_unit_test(test_shared_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
