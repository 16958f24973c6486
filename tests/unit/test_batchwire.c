/* Unit tests for batchwire: the batch POST body, the matching of a batch answer's results
 * to the asked IDs (order, text/number ids, missing, unasked, duplicates, per-item errors,
 * bad elements that spoil only themselves), the 202 job id and the poll URL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "batchwire.h"
#include "unit.h"

#define DEPTH 32

static const char *ent(char *buf, size_t cap, const char *id, const char *label)
{
    snprintf(buf, cap,
             "{\"id\":%s,\"label\":\"%s\",\"location\":{\"cityLabel\":\"C\",\"latitude\":1.5,"
             "\"longitude\":-2}}",
             id, label);
    return buf;
}

static void test_body(void **state)
{
    (void)state;
    Buf b;
    BatchId ids[3] = {{"Q90", 3}, {"a\"b\\c", 5}, {"x\ty", 3}};
    buf_init(&b, 1 << 20);
    assert_true(batchwire_body(&b, ids, 3));
    assert_string_equal(b.data, "{\"ids\":[\"Q90\",\"a\\\"b\\\\c\",\"x\\u0009y\"],"
                                "\"select\":\"id,label,location\"}");
    buf_free(&b);
    buf_init(&b, 10);
    assert_false(batchwire_body(&b, ids, 3));
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_match_out_of_order(void **state)
{
    (void)state;
    char e1[256], e2[256], body[1024];
    BatchId ids[3] = {{"Q1", 2}, {"42", 2}, {"Q3", 2}};
    BatchItem it[3];
    BatchTally t;
    char err[128];
    snprintf(body, sizeof body,
             "{\"results\":[%s,{\"id\":\"Q3\",\"error\":{\"status\":404,\"message\":\"x\"}},%s,"
             "{\"id\":\"nope\",\"label\":\"z\"},7,{\"id\":true}]}",
             ent(e1, sizeof e1, "42", "forty-two"), ent(e2, sizeof e2, "\"Q1\"", "one"));
    assert_true(batchwire_parse(&provider_map_primary, body, strlen(body), DEPTH, ids, 3, it, &t,
                                err, sizeof err));
    assert_int_equal(it[0].kind, BI_FOUND);
    assert_string_equal(it[0].row.text[COL_LABEL], "one");
    assert_int_equal(it[1].kind, BI_FOUND);
    assert_string_equal(it[1].row.text[COL_LABEL], "forty-two");
    assert_near(it[1].row.coord[0], 1.5, 0);
    assert_int_equal(it[2].kind, BI_ERROR);
    assert_int_equal(it[2].status, 404);
    assert_int_equal(t.found, 2);
    assert_int_equal(t.errors, 1);
    assert_int_equal(t.unasked, 1);
    assert_int_equal(t.unidentified, 2);
    assert_int_equal(t.missing, 0);
    batchwire_items_free(it, 3);
}

static void test_missing_duplicates_bad(void **state)
{
    (void)state;
    char e1[256], e2[256], body[1024];
    BatchId ids[4] = {{"A", 1}, {"B", 1}, {"C", 1}, {"D", 1}};
    BatchItem it[4];
    BatchTally t;
    char err[128];
    /* A twice (the last wins), B bad (a number for a label), C a miss, D missing; invalid
     * UTF-8 in an element spoils only that element. */
    snprintf(body, sizeof body,
             "{\"results\":[%s,{\"id\":\"B\",\"label\":5,\"location\":{}},"
             "{\"id\":\"C\",\"label\":\"c\",\"location\":null},%s,"
             "{\"id\":\"E\",\"label\":\"\xff\"}]}",
             ent(e1, sizeof e1, "\"A\"", "first"), ent(e2, sizeof e2, "\"A\"", "last"));
    assert_true(batchwire_parse(&provider_map_primary, body, strlen(body), DEPTH, ids, 4, it, &t,
                                err, sizeof err));
    assert_int_equal(it[0].kind, BI_FOUND);
    assert_string_equal(it[0].row.text[COL_LABEL], "last");
    assert_int_equal(it[1].kind, BI_BAD);
    assert_true(strlen(it[1].err) > 0);
    assert_int_equal(it[2].kind, BI_MISS);
    assert_int_equal(it[3].kind, BI_MISSING);
    assert_int_equal(t.duplicates, 1);
    assert_int_equal(t.missing, 1);
    assert_int_equal(t.unasked, 1);
    batchwire_items_free(it, 4);

    const char *bad_elem = "{\"results\":[{\"id\":\"A\",\"label\":\"\xc3\",\"location\":{}}]}";
    assert_true(batchwire_parse(&provider_map_primary, bad_elem, strlen(bad_elem), DEPTH, ids, 1,
                                it, &t, err, sizeof err));
    assert_int_equal(it[0].kind, BI_BAD);
    batchwire_items_free(it, 1);

    const char *nul = "{\"results\":[{\"id\":\"A\",\"label\":\"a\\u0000b\",\"location\":{}}]}";
    assert_true(batchwire_parse(&provider_map_primary, nul, strlen(nul), DEPTH, ids, 1, it, &t, err,
                                sizeof err));
    assert_int_equal(it[0].kind, BI_BAD);
    batchwire_items_free(it, 1);
}

static void test_not_an_answer(void **state)
{
    (void)state;
    BatchId ids[1] = {{"A", 1}};
    BatchItem it[1];
    BatchTally t;
    char err[128];
    static const char *const bodies[] = {
        "", "[]", "{\"results\":{}}", "{\"results\":[]} x", "<html>", "{\"results\":[1,]}"};
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        assert_false(batchwire_parse(&provider_map_primary, bodies[i], strlen(bodies[i]), DEPTH,
                                     ids, 1, it, &t, err, sizeof err));
        assert_true(strlen(err) > 0);
        assert_int_equal(it[0].kind, BI_MISSING);
        assert_int_equal(t.missing, 1);
        batchwire_items_free(it, 1);
    }
    const char *empty = "{\"results\":[]}";
    assert_true(batchwire_parse(&provider_map_primary, empty, strlen(empty), DEPTH, ids, 1, it, &t,
                                err, sizeof err));
    assert_int_equal(t.missing, 1);
}

static void test_error_status(void **state)
{
    (void)state;
    BatchId ids[2] = {{"A", 1}, {"B", 1}};
    BatchItem it[2];
    BatchTally t;
    char err[128];
    const char *b = "{\"results\":[{\"id\":\"A\",\"error\":{\"status\":503}},"
                    "{\"id\":\"B\",\"error\":{\"status\":\"x\"}}]}";
    assert_true(batchwire_parse(&provider_map_primary, b, strlen(b), DEPTH, ids, 2, it, &t, err,
                                sizeof err));
    assert_int_equal(it[0].kind, BI_ERROR);
    assert_int_equal(it[0].status, 503);
    assert_int_equal(it[1].kind, BI_BAD);
}

static void test_numbers_and_same_ids(void **state)
{
    (void)state;
    char e[256], body[512];
    BatchId ids[3] = {{"7", 1}, {"007", 3}, {"7", 1}};
    BatchItem it[3];
    BatchTally t;
    char err[128];
    snprintf(body, sizeof body, "{\"results\":[%s]}", ent(e, sizeof e, "7.0", "seven"));
    assert_true(batchwire_parse(&provider_map_primary, body, strlen(body), DEPTH, ids, 3, it, &t,
                                err, sizeof err));
    assert_int_equal(it[0].kind, BI_FOUND);
    assert_int_equal(it[1].kind, BI_MISSING);
    assert_int_equal(it[2].kind, BI_FOUND);
    assert_string_equal(it[2].row.text[COL_LABEL], "seven");
    batchwire_items_free(it, 3);
}

static void test_job(void **state)
{
    (void)state;
    char job[BATCHWIRE_JOB_MAX + 1];
    const char *ok = "{\"job\":\"job-12\",\"status\":\"pending\"}";
    assert_true(batchwire_job(ok, strlen(ok), job, sizeof job));
    assert_string_equal(job, "job-12");
    assert_false(batchwire_job("{\"job\":\"\"}", 10, job, sizeof job));
    assert_false(batchwire_job("{\"job\":12}", 10, job, sizeof job));
    assert_false(batchwire_job("{\"job\":\"a b\"}", 13, job, sizeof job));
    assert_false(batchwire_job("nope", 4, job, sizeof job));

    Buf b;
    buf_init(&b, 1024);
    assert_true(batchwire_poll_url(&b, "http://h/batch/{job}?x={job}", "a/b"));
    assert_string_equal(b.data, "http://h/batch/a%2Fb?x=a%2Fb");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body),
        cmocka_unit_test(test_match_out_of_order),
        cmocka_unit_test(test_missing_duplicates_bad),
        cmocka_unit_test(test_not_an_answer),
        cmocka_unit_test(test_error_status),
        cmocka_unit_test(test_numbers_and_same_ids),
        cmocka_unit_test(test_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
