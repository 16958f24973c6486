/* Fuzz target: any bytes as the header lines of a series of answers (lines end at '\n', an
 * empty line ends an answer) through quota_hdr_line and quota_hdr_resolve, and every
 * answer's announcement into the pacing, on a clock driven by the input. An announcement
 * must hold together (finite, within its bounds); the pacing must never ask for a wait that
 * is negative, NaN or beyond the longest reset, nor report a rate or a count that is not a
 * number. Built with libFuzzer, or replayed by replay.c. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "quota.h"
#include "fuzz.h"

static void check_ann(const QuotaAnn *a)
{
    CHECK(a->form == QUOTA_FORM_IETF || a->form == QUOTA_FORM_X);
    CHECK(a->limit == 0 || (a->limit >= 1 && a->limit <= QUOTA_LIMIT_MAX));
    CHECK(a->remaining >= 0 && a->remaining <= QUOTA_LIMIT_MAX);
    CHECK(a->limit == 0 || a->remaining <= a->limit);
    CHECK(a->reset >= 0 && a->reset <= QUOTA_RESET_MAX);
    CHECK(a->grain == 0 || a->grain == 1);
    CHECK(a->epoch_end == 0 || a->epoch_end >= QUOTA_EPOCH_MIN);
}

static void check_pacing(Quota *q, double now, size_t in_flight)
{
    double w = quota_wait(q, now, in_flight);
    CHECK(isfinite(w) && w >= 0);
    CHECK(w <= QUOTA_RESET_MAX + QUOTA_SHIFT_MAX + 1);
    CHECK(isfinite(quota_rate(q)) && quota_rate(q) >= 0);
    CHECK(isfinite(quota_left(q)) && quota_left(q) >= 0);
    CHECK(q->shift >= 0 && q->shift <= QUOTA_SHIFT_MAX + 1e-9);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 8192)
        return 0;
    /* the first byte: how far the clock moves per line, and the requests in flight */
    double step = (data[0] & 0x0f) * 0.013;
    size_t in_flight = data[0] >> 4;
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    const double wall0 = 1790000000.0;
    double now = 0;
    Quota q;
    quota_init(&q, (data[1] & 1) == 0, 0);
    QuotaHdr h;
    memset(&h, 0, sizeof h);
    uint64_t seq = quota_on_send(&q, 0);
    double sent = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        bool cand = quota_hdr_candidate(p, n);
        CHECK(!quota_hdr_line(&h, p, n) || cand);
        now += step;
        if (n == 0 || nl == NULL) { /* an answer ends */
            QuotaAnn a;
            bool ok = quota_hdr_resolve(&h, wall0 + now, &a);
            if (ok)
                check_ann(&a);
            QuotaEvent ev = quota_on_answer(&q, ok ? &a : NULL, seq, sent, now);
            CHECK(ev >= QUOTA_EV_NONE && ev <= QUOTA_EV_SHIFTED);
            check_pacing(&q, now, in_flight);
            memset(&h, 0, sizeof h);
            for (int i = 0; i < 3 && quota_wait(&q, now, in_flight) == 0; i++) {
                sent = now;
                seq = quota_on_send(&q, now);
            }
            check_pacing(&q, now, in_flight);
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}
