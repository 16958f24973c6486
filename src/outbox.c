/* outbox: two batches of COPY lines, one filling while the sink commits the other. A batch
 * the database refuses for its data is searched in halves for the lines it refuses; those
 * are recorded as unloadable and the rest commits. */
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copyenc.h"
#include "isolate.h"
#include "log.h"
#include "retry.h"
#include "utf8.h"

#define FLUSH_BUF_MAX (1u << 30) /* hard cap of one flush buffer */

/* One batch of settled outcomes on its way to the database. */
typedef struct FlushBuf {
    Buf rows;
    Buf fails;
    size_t nrows, nfails;
    long long by_reason[SCHED_REASONS];
    char *position; /* checkpoint position committed with this batch, or NULL */
    bool done;      /* the batch marks the job finished */
} FlushBuf;

/* A flush the database refused for its data, being retried in halves (isolate.h) to find
 * the lines it refuses. The lines are the batch's row lines, then its failure lines. */
typedef struct Poison {
    bool active;
    bool final_sent; /* the last flush (poison lines as failures, with the checkpoint) */
    Isolate it;
    size_t *off;    /* start of each line, rows then fails, and one past each end */
    size_t lo, hi;  /* the range being flushed */
    Buf views[2];   /* borrowed slices of the batch's buffers, never freed */
    Buf unloadable; /* failure lines for the poison lines */
    size_t nunloadable;
} Poison;

struct Outbox {
    Sink *sink;
    OutboxHooks hooks;
    void *ud;
    FlushBuf bufs[2];
    FlushBuf *active;   /* settled outcomes go here */
    FlushBuf *flushing; /* the batch the sink is committing, or NULL */
    bool sink_failed;
    bool lost; /* the connection went away during the flush below: it waits for
                  outbox_attach to be sent again */
    struct {   /* the last flush handed to the sink, to send again after a loss */
        const Buf *rows, *fails;
        size_t nrows, nfails;
        const char *position;
        bool done;
    } sent;
    Poison poison;
    OutboxTotals totals;
};

static void on_flushed(void *ud, const SinkResult *r);

/* Every flush goes through here, so that the one in flight can be sent again as it was. */
static bool send_flush(Outbox *o, const Buf *rows, size_t nrows, const Buf *fails, size_t nfails,
                       const char *position, bool done)
{
    o->sent.rows = rows;
    o->sent.nrows = nrows;
    o->sent.fails = fails;
    o->sent.nfails = nfails;
    o->sent.position = position;
    o->sent.done = done;
    return sink_flush(o->sink, rows, nrows, fails, nfails, position, done, on_flushed, o);
}

static int reason_index(const char *reason, size_t len)
{
    for (int i = 0; i < SCHED_REASONS; i++)
        if (strlen(sched_reason_names[i]) == len && memcmp(reason, sched_reason_names[i], len) == 0)
            return i;
    return 3;
}

static void flushbuf_init(FlushBuf *b)
{
    memset(b, 0, sizeof *b);
    buf_init(&b->rows, FLUSH_BUF_MAX);
    buf_init(&b->fails, FLUSH_BUF_MAX);
}

static void flushbuf_clear(FlushBuf *b)
{
    buf_reset(&b->rows);
    buf_reset(&b->fails);
    b->nrows = b->nfails = 0;
    memset(b->by_reason, 0, sizeof b->by_reason);
    free(b->position);
    b->position = NULL;
    b->done = false;
}

static void flushbuf_free(FlushBuf *b)
{
    buf_free(&b->rows);
    buf_free(&b->fails);
    free(b->position);
}

static size_t flushbuf_count(const FlushBuf *b)
{
    return b->nrows + b->nfails;
}

/* ---------------------------------------------------------------- outcomes of a flush */

/* The sink failed for good (or refused a batch we cannot split further). */
static void flush_failed(Outbox *o, FlushBuf *b, const char *err)
{
    log_error("event=flush_failed error=\"%s\" detail=\"nothing of this batch was "
              "committed; rerun to resume from the last checkpoint\"",
              err ? err : "unknown");
    o->flushing = NULL;
    o->sink_failed = true;
    flushbuf_clear(b);
}

/* flush_failed, from the loop: tell the owner. */
static void fail(Outbox *o, FlushBuf *b, const char *err)
{
    flush_failed(o, b, err);
    o->hooks.failed(o->ud);
}

/* Count committed outcomes into the totals. */
static void account(Outbox *o, size_t nrows, size_t nfails, const long long *by_reason,
                    long long kept)
{
    o->totals.rows_loaded += (long long)nrows;
    o->totals.failures += (long long)nfails - kept;
    o->totals.kept += kept;
    for (int i = 0; i < SCHED_REASONS; i++)
        o->totals.by_reason[i] += by_reason[i];
}

/* The batch b has committed in full (or, after isolation, all of it that could). */
static void batch_done(Outbox *o, FlushBuf *b)
{
    log_debug("event=flushed rows=%zu failures=%zu position=\"%s\"", b->nrows, b->nfails,
              b->position ? b->position : "");
    flushbuf_clear(b);
    o->hooks.done(o->ud);
}

/* ---------------------------------------------------------------- poison rows */

/* Line i of batch b (rows first, then failures): its buffer and byte range. */
static const Buf *poison_line(const Outbox *o, const FlushBuf *b, size_t i, size_t *from,
                              size_t *to)
{
    const size_t *off = o->poison.off;
    /* off holds nrows + 1 row offsets, then nfails + 1 failure offsets */
    size_t k = i < b->nrows ? i : i + 1;
    *from = off[k];
    *to = off[k + 1];
    return i < b->nrows ? &b->rows : &b->fails;
}

/* Index the line starts of b. COPY text escapes newlines inside values, so every '\n'
 * ends a line. */
static bool poison_index(Outbox *o, const FlushBuf *b)
{
    size_t *off = malloc(sizeof *off * (b->nrows + b->nfails + 2));
    if (off == NULL)
        return false;
    size_t k = 0;
    const Buf *bufs[2] = {&b->rows, &b->fails};
    size_t counts[2] = {b->nrows, b->nfails};
    for (int j = 0; j < 2; j++) {
        size_t pos = 0, n = 0;
        off[k++] = 0;
        while (n < counts[j]) {
            const char *nl = memchr(bufs[j]->data + pos, '\n', bufs[j]->len - pos);
            if (nl == NULL)
                break;
            pos = (size_t)(nl - bufs[j]->data) + 1;
            off[k++] = pos;
            n++;
        }
        if (n != counts[j]) {
            free(off);
            return false; /* not expected: every line was written whole */
        }
    }
    o->poison.off = off;
    return true;
}

/* Field f (0-based) of a COPY line [from, to): *p and *len, without the tab. */
static void line_field(const char *data, size_t from, size_t to, int f, const char **p, size_t *len)
{
    size_t i = from;
    for (; f > 0 && i < to; i++)
        if (data[i] == '\t')
            f--;
    size_t j = i;
    while (j < to && data[j] != '\t' && data[j] != '\n')
        j++;
    *p = data + i;
    *len = j - i;
}

/* Line i was refused on its own: record its ID as unloadable with the server's reason.
 * The ID is copied as it stands in the line (already COPY-encoded). For a failure line
 * its status and attempts are kept; a row line had a 200 from one attempt at least. */
static bool poison_record(Outbox *o, const FlushBuf *b, size_t i, const char *err)
{
    size_t from, to, idlen, stlen = 3, atlen = 1;
    const Buf *src = poison_line(o, b, i, &from, &to);
    const char *id, *st = "200", *at = "1";
    line_field(src->data, from, to, 0, &id, &idlen);
    if (i >= b->nrows) {
        line_field(src->data, from, to, 2, &st, &stlen);
        line_field(src->data, from, to, 3, &at, &atlen);
    }
    char msg[OUTBOX_ERROR_MAX];
    utf8_sanitize(msg, sizeof msg, err, strlen(err));
    Buf *u = &o->poison.unloadable;
    size_t mark = u->len;
    bool ok = buf_append(u, id, idlen) && buf_puts(u, "\t" REASON_UNLOADABLE "\t") &&
              buf_append(u, st, stlen) && buf_putc(u, '\t') && buf_append(u, at, atlen) &&
              buf_putc(u, '\t') && copyenc_text(u, msg, strlen(msg)) && buf_putc(u, '\n');
    if (!ok) {
        buf_truncate(u, mark);
        return false;
    }
    o->poison.nunloadable++;
    return true;
}

static void poison_end(Outbox *o)
{
    iso_free(&o->poison.it);
    free(o->poison.off);
    buf_free(&o->poison.unloadable);
    memset(&o->poison, 0, sizeof o->poison);
}

/* Flush the next range of the search, or, when it is over, the poison lines as failures
 * with the batch's checkpoint. */
static void poison_step(Outbox *o)
{
    Poison *ps = &o->poison;
    FlushBuf *b = o->flushing;
    bool ok;
    if (iso_next(&ps->it, &ps->lo, &ps->hi)) {
        /* A range is at most two slices: the end of the rows, the start of the fails. */
        size_t rlo = ps->lo < b->nrows ? ps->lo : b->nrows;
        size_t rhi = ps->hi < b->nrows ? ps->hi : b->nrows;
        size_t flo = (ps->lo > b->nrows ? ps->lo : b->nrows) - b->nrows;
        size_t fhi = (ps->hi > b->nrows ? ps->hi : b->nrows) - b->nrows;
        const size_t *roff = ps->off, *foff = ps->off + b->nrows + 1;
        ps->views[0] = (Buf){.data = b->rows.data ? b->rows.data + roff[rlo] : NULL,
                             .len = roff[rhi] - roff[rlo]};
        ps->views[1] = (Buf){.data = b->fails.data ? b->fails.data + foff[flo] : NULL,
                             .len = foff[fhi] - foff[flo]};
        ok = send_flush(o, &ps->views[0], rhi - rlo, &ps->views[1], fhi - flo, NULL, false);
    } else {
        ps->final_sent = true;
        ok = send_flush(o, NULL, 0, &ps->unloadable, ps->nunloadable, b->position, b->done);
    }
    if (!ok)
        fail(o, b, sink_last_error(o->sink));
}

/* The sink refused batch b for its data: start looking for the lines it refuses. */
static void poison_start(Outbox *o, FlushBuf *b, const char *err)
{
    size_t n = b->nrows + b->nfails;
    log_warn("event=flush_refused rows=%zu failures=%zu error=\"%s\" detail=\"retrying the "
             "batch in halves to set the refused lines aside as unloadable\"",
             b->nrows, b->nfails, err);
    memset(&o->poison, 0, sizeof o->poison);
    buf_init(&o->poison.unloadable, FLUSH_BUF_MAX);
    if (!poison_index(o, b) || !iso_start(&o->poison.it, n)) {
        poison_end(o);
        fail(o, b, "out of memory isolating refused lines");
        return;
    }
    o->poison.active = true;
    poison_step(o);
}

/* One flush of the search has ended. */
static void poison_flushed(Outbox *o, FlushBuf *b, const SinkResult *r)
{
    Poison *ps = &o->poison;
    if (ps->final_sent) {
        if (!r->ok) {
            poison_end(o);
            fail(o, b, r->err);
            return;
        }
        long long by_reason[SCHED_REASONS] = {0};
        by_reason[reason_index(REASON_UNLOADABLE, strlen(REASON_UNLOADABLE))] =
            (long long)ps->nunloadable;
        account(o, 0, ps->nunloadable, by_reason, r->kept);
        log_warn("event=unloadable_recorded ids=%zu flushes=%zu", ps->nunloadable,
                 ps->it.tries + 1);
        poison_end(o);
        o->flushing = NULL;
        batch_done(o, b);
        return;
    }
    if (!r->ok && !r->data_error) {
        poison_end(o);
        fail(o, b, r->err);
        return;
    }
    if (r->ok) {
        long long by_reason[SCHED_REASONS] = {0};
        size_t nrows = 0, nfails = 0;
        for (size_t i = ps->lo; i < ps->hi; i++) {
            if (i < b->nrows) {
                nrows++;
                continue;
            }
            size_t from, to, len;
            const char *reason;
            poison_line(o, b, i, &from, &to);
            line_field(b->fails.data, from, to, 1, &reason, &len);
            by_reason[reason_index(reason, len)]++;
            nfails++;
        }
        account(o, nrows, nfails, by_reason, r->kept);
    } else if (ps->hi - ps->lo == 1 && !poison_record(o, b, ps->lo, r->err)) {
        poison_end(o);
        fail(o, b, "flush buffer cap reached recording unloadable lines");
        return;
    }
    iso_result(&ps->it, r->ok);
    poison_step(o);
}

static void on_flushed(void *ud, const SinkResult *r)
{
    Outbox *o = ud;
    FlushBuf *b = o->flushing;
    if (!r->ok && r->conn_lost && o->hooks.lost != NULL) {
        /* Keep everything as it is (the batch, the isolation search): the same flush goes
         * out again on the next connection. */
        log_warn("event=db_lost conn=sink error=\"%s\" detail=\"the batch is kept and "
                 "sent again once reconnected\"",
                 r->err ? r->err : "unknown");
        o->lost = true;
        o->hooks.lost(o->ud);
        return;
    }
    if (!r->ok && r->lease_lost) {
        /* Not this batch's fault, nor the database's: the range is another worker's now. */
        log_warn("event=lease_lost error=\"%s\" detail=\"nothing of this batch was committed; "
                 "the range's new owner does it\"",
                 r->err ? r->err : "unknown");
        if (o->poison.active)
            poison_end(o);
        o->flushing = NULL;
        o->sink_failed = true;
        flushbuf_clear(b);
        o->hooks.failed(o->ud);
        return;
    }
    if (o->poison.active) {
        poison_flushed(o, b, r);
        return;
    }
    if (!r->ok && r->data_error && flushbuf_count(b) > 0) {
        poison_start(o, b, r->err); /* b stays the flushing batch until the search ends */
        return;
    }
    o->flushing = NULL;
    if (!r->ok) {
        fail(o, b, r->err);
        return;
    }
    account(o, b->nrows, b->nfails, b->by_reason, r->kept);
    batch_done(o, b);
}

/* ---------------------------------------------------------------- interface */

Outbox *outbox_new(Sink *sink, const OutboxHooks *hooks, void *ud)
{
    Outbox *o = calloc(1, sizeof *o);
    if (o == NULL) {
        sink_free(sink);
        return NULL;
    }
    o->sink = sink;
    o->hooks = *hooks;
    o->ud = ud;
    flushbuf_init(&o->bufs[0]);
    flushbuf_init(&o->bufs[1]);
    o->active = &o->bufs[0];
    return o;
}

Buf *outbox_rows(Outbox *o)
{
    return &o->active->rows;
}

Buf *outbox_fails(Outbox *o)
{
    return &o->active->fails;
}

void outbox_count_row(Outbox *o)
{
    o->active->nrows++;
}

void outbox_count_failure(Outbox *o, const char *reason)
{
    o->active->nfails++;
    o->active->by_reason[reason_index(reason, strlen(reason))]++;
}

size_t outbox_pending(const Outbox *o)
{
    return flushbuf_count(o->active);
}

bool outbox_busy(const Outbox *o)
{
    return o->flushing != NULL || o->sink_failed;
}

bool outbox_flush(Outbox *o, char *position, bool done)
{
    if (outbox_busy(o)) {
        free(position);
        return false;
    }
    FlushBuf *b = o->active;
    b->position = position;
    b->done = done;
    o->active = b == &o->bufs[0] ? &o->bufs[1] : &o->bufs[0];
    o->flushing = b;
    if (!send_flush(o, &b->rows, b->nrows, &b->fails, b->nfails, b->position, done)) {
        flush_failed(o, b, sink_last_error(o->sink));
        return false;
    }
    return true;
}

bool outbox_attach(Outbox *o, PGconn *conn, char *err, size_t errlen)
{
    if (!sink_attach(o->sink, conn, err, errlen))
        return false;
    if (o->lost) {
        o->lost = false;
        if (!send_flush(o, o->sent.rows, o->sent.nrows, o->sent.fails, o->sent.nfails,
                        o->sent.position, o->sent.done)) {
            snprintf(err, errlen, "%s", sink_last_error(o->sink));
            return false;
        }
    }
    return true;
}

bool outbox_lost(const Outbox *o)
{
    return o->lost;
}

const OutboxTotals *outbox_totals(const Outbox *o)
{
    return &o->totals;
}

void outbox_free(Outbox *o)
{
    if (o == NULL)
        return;
    sink_free(o->sink);
    poison_end(o);
    flushbuf_free(&o->bufs[0]);
    flushbuf_free(&o->bufs[1]);
    free(o);
}
