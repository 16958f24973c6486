/* outbox: the scheduler's settled outcomes on their way to the database. COPY lines go into
 * the active batch while the other batch is being committed by the sink; a batch refused for
 * its data is retried in halves (isolate.h) and the lines refused on their own are recorded
 * as unloadable. Adds up what was committed. When to flush and what comes next is the
 * scheduler's business. */
#ifndef PGENRICH_OUTBOX_H
#define PGENRICH_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"
#include "compat.h"
#include "scheduler.h" /* SCHED_REASONS, sched_reason_names: the outcomes counted */
#include "sink.h"

#define OUTBOX_ERROR_MAX 200 /* bytes of a failure line's last_error, with its NUL */

/* What became of a flush, called from the loop (never from inside an outbox_* call). */
typedef struct OutboxHooks {
    /* The batch has committed: in full, or after isolation every line but the refused
     * ones, which were recorded as unloadable with the batch's position. The outbox is idle
     * again; the hook may call outbox_flush. */
    void (*done)(void *ud);
    /* A flush failed for good: what the batch had not committed yet is dropped (all of it,
     * unless isolation had committed some ranges; the checkpoint stays at the last
     * committed flush), event=flush_failed was logged, and no flush starts again
     * (outbox_busy stays true). */
    void (*failed)(void *ud);
    /* The sink's connection went away during a flush: the batch is kept as it was (also
     * midway through an isolation search) and outbox_busy stays true until outbox_attach
     * sends it again. NULL: a lost connection is a failure like any other. */
    void (*lost)(void *ud);
} OutboxHooks;

/* Committed outcomes, over every flush. */
typedef struct OutboxTotals {
    long long rows_loaded;
    long long failures; /* recorded in the ledger */
    long long by_reason[SCHED_REASONS];
    long long kept; /* failure lines not recorded: their ID has a target row */
} OutboxTotals;

typedef struct Outbox Outbox;

/* An outbox over sink, which it owns from the call (also on failure: then it is freed).
 * hooks is copied; ud is passed to them. Returns NULL when out of memory. */
Outbox *outbox_new(Sink *sink, const OutboxHooks *hooks, void *ud) WUR;

/* The active batch's row lines (the sink's row columns, each line ending in '\n') and
 * failure lines (id, reason, http_status, attempts, last_error), to append whole lines to;
 * count each line with outbox_count_row / outbox_count_failure. Both buffers are capped;
 * a failed append leaves a partial line the caller must cut off (buf_truncate). The
 * pointers are valid until the next outbox_flush. */
Buf *outbox_rows(Outbox *o);
Buf *outbox_fails(Outbox *o);

void outbox_count_row(Outbox *o);

/* reason: the failure line's reason, one of sched_reason_names (anything else counts as
 * rejected). */
void outbox_count_failure(Outbox *o, const char *reason);

/* Lines in the active batch. */
size_t outbox_pending(const Outbox *o);

/* True while a batch is being committed, and for good once a flush has failed: no flush
 * can start. */
bool outbox_busy(const Outbox *o);

/* Start committing the active batch, even an empty one (it still moves the checkpoint),
 * with position (the checkpoint position, or NULL to leave it; owned by the outbox from
 * the call, whatever the outcome) and done (the batch marks the job finished); the other
 * batch becomes the active one. Call only when !outbox_busy (otherwise nothing happens but
 * position is freed, and it returns false). Returns true when the flush is under way: one
 * of the hooks will be called. Returns false when it could not start: the outbox has failed
 * as described for hooks->failed, which is not called. */
bool outbox_flush(Outbox *o, char *position, bool done) WUR;

/* After hooks->lost: give the sink a new connection (sink_attach; ownership of conn
 * passes whatever the outcome) and send the kept flush again. A batch the lost flush did
 * commit (the connection broke during COMMIT) is written again: rows and failure records
 * are upserts and the checkpoint only moves forward, so the tables end the same; only the
 * checkpoint's running totals count it twice. Returns false with a message in err. Also
 * fine with no flush kept (then it only attaches). */
bool outbox_attach(Outbox *o, PGconn *conn, char *err, size_t errlen) WUR;

/* A flush waits for outbox_attach. */
bool outbox_lost(const Outbox *o);

/* Valid until outbox_free. */
const OutboxTotals *outbox_totals(const Outbox *o);

/* Frees both batches and the sink (a flush in progress is abandoned: the server rolls it
 * back). NULL is fine. */
void outbox_free(Outbox *o);

#endif
