/* Fuzz target: any bytes as a batch answer (API.md section 2) for a fixed set of asked IDs,
 * text and numeric. Checks what the scheduler relies on: every asked ID gets exactly one
 * item; a FOUND row holds valid text without NUL and coordinates in range; the tally adds
 * up to the asked IDs; a refused answer leaves every item missing; the 202 job reader never
 * returns an empty or unprintable id. Built with libFuzzer, or replayed by replay.c. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchwire.h"
#include "fuzz.h"

static const BatchId ids[] = {{"Q90", 3}, {"Q64", 3}, {"42", 2}, {"a\"b", 3}, {"", 0}, {"Q90", 3}};
#define N_IDS (sizeof ids / sizeof *ids)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    BatchItem it[N_IDS];
    BatchTally t;
    char err[BATCHWIRE_ERR_MAX];
    const char *body = (const char *)data;
    bool ok =
        batchwire_parse(&provider_map_primary, body, size, 32, ids, N_IDS, it, &t, err, sizeof err);
    CHECK(t.found + t.misses + t.bad + t.errors + t.missing == N_IDS);
    CHECK(strlen(err) < sizeof err);
    for (size_t i = 0; i < N_IDS; i++) {
        const BatchItem *b = &it[i];
        CHECK(ok || b->kind == BI_MISSING);
        if (b->kind == BI_FOUND) {
            for (int c = 0; c < COL_TEXT_COUNT; c++)
                CHECK(b->row.text[c] == NULL || memchr(b->row.text[c], 0, b->row.len[c]) == NULL);
            CHECK(!b->row.has_coord[0] || fabs(b->row.coord[0]) <= 90);
            CHECK(!b->row.has_coord[1] || fabs(b->row.coord[1]) <= 180);
        } else {
            CHECK(b->row.doc == NULL);
        }
        if (b->kind == BI_ERROR)
            CHECK(b->status >= 100 && b->status <= 599);
        if (b->kind == BI_BAD)
            CHECK(b->err[0] != '\0' && strchr(b->err, '\n') == NULL);
    }
    /* The same bytes for the same ID: the two Q90 agree. */
    CHECK(it[0].kind == it[5].kind);
    batchwire_items_free(it, N_IDS);

    char job[BATCHWIRE_JOB_MAX + 1];
    if (batchwire_job(body, size, job, sizeof job)) {
        CHECK(job[0] != '\0' && strlen(job) <= BATCHWIRE_JOB_MAX);
        for (const char *c = job; *c; c++)
            CHECK(*c > 0x20 && *c < 0x7F);
    }
    return 0;
}
