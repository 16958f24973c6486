/* sink: loads settled lookups into PostgreSQL over its own non-blocking libpq connection.
 * One flush is one transaction: COPY rows into a staging table and upsert them into the
 * target (removing their failure records), COPY failures into a staging table and upsert
 * them into the failure ledger, move the job's checkpoint (unless no_checkpoint) and add
 * the flush to the run's history row (with a run_id); all or nothing. */
#ifndef PGENRICH_SINK_H
#define PGENRICH_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>
#include "buf.h"
#include "compat.h"
#include "db.h"

struct ev_loop;

typedef struct SinkOpts {
    DbNames names;
    const char *job;
    const char *paging; /* "keyset" or "offset", stored with the checkpoint; may be NULL
                         * with no_checkpoint */
    /* Never touch the checkpoint table: no statement for it in any flush, so no row is
     * created or changed (position, totals, finished), and the position and done given to
     * sink_flush are ignored. For `retry-failed`, which pages the failure ledger: the job's
     * place in its source is none of its business. A flag rather than "position NULL" on
     * purpose: a normal run also flushes with a NULL position (nothing settled in order
     * yet) and must still count those rows in the running totals. */
    bool no_checkpoint;
    /* The SQL type positions are compared as, so that the checkpoint only moves forward:
     * "bigint" for offset paging, else the key's type and collation (db_key_type's
     * order_out). It is spliced into SQL text, so it must come from the server's
     * format_type and quote_ident. Required unless no_checkpoint. */
    const char *position_type;
    /* The run's row in names.runs (db_run_begin), or 0 for none. Each flush then also
     * updates that row in its own transaction (updated_at, the committed counts, the
     * checkpoint position after it), so the row is exact for what committed, even when
     * the run is killed later. */
    long long run_id;
    /* Range mode (--shared, src/lease.h): each flush moves the checkpoint of range range_no
     * of job in names.ranges (position, counts, state done with done) instead of the job's
     * row in names.checkpoints, and only while that range's fence is still fence: if another
     * worker has claimed the range since, the flush fails whole (SQLSTATE PGF01, from
     * pgenrich_fence_check) and SinkResult.lease_lost says so. The run's row then gets no
     * checkpoint_to. */
    bool range_mode;
    int range_no;
    long long fence;
} SinkOpts;

/* How a flush ended, for sink_done_fn. */
typedef struct SinkResult {
    bool ok;         /* committed */
    bool data_error; /* refused for its data (SQLSTATE class 22 or 23: a bad encoding, a
                        value out of range, a constraint): nothing committed, the session
                        is idle again, and the same lines in smaller flushes may pass */
    bool conn_lost;  /* the connection is gone (a server restart, a network failure):
                        nothing is known to have committed unless the loss came during
                        COMMIT, and the same flush may be sent again after sink_attach */
    const char *err; /* one-line message when !ok (valid during the call), else NULL */
    long long kept;  /* failure lines not recorded because their ID has a target row
                        (the row stays as it was), counted once per ID */
    bool lease_lost; /* range mode: the range's fence has moved on (another worker took the
                        range over): nothing committed, and no later flush of this range can */
} SinkResult;

/* Called from the loop (never from inside sink_flush) when a flush has committed or
 * failed (nothing of it committed). After a server-side error (a bad value, a
 * constraint) the session is idle again and the next flush may be tried; after a
 * connection failure (conn_lost) every later flush ends the same way until sink_attach
 * gives the sink a new connection. The callback may call
 * sink_flush (the sink is idle by then) or sink_free. */
typedef void (*sink_done_fn)(void *ud, const SinkResult *r);

typedef struct Sink Sink;

/* Takes ownership of conn, also on failure (then conn is closed). The target and failure
 * tables must exist (db_init_schema). Creates the session's staging tables (blocking; call
 * before the loop runs) and puts conn in non-blocking mode. Returns NULL with a message in
 * err on failure. Copies what it needs from opts. */
Sink *sink_new(struct ev_loop *loop, PGconn *conn, const SinkOpts *opts, char *err,
               size_t errlen) WUR;

/* Start one flush. rows: COPY text lines with the columns id, label, geo_label,
 * street_address, city_label, postal_code, country_label, latitude, longitude, provider.
 * fails: COPY text lines with id, reason, http_status, attempts, last_error.
 * Either may be NULL or empty. Within one flush the last line for an ID wins, and an ID
 * with a row is not recorded as failed; loading a row deletes the job's failure record
 * for that ID. An ID that already has a target row is not recorded as failed either: a
 * failed lookup leaves a good row as it was (fetched_at too) and is counted in kept. A failure
 * record is upserted: first_seen stays, last_seen (and its old name updated_at) becomes now(),
 * reason, http_status and attempts are replaced, and last_error is replaced by its first 500
 * characters. position: the new checkpoint position (text), or NULL to leave it; a position below
 * the stored one (in the source key's order, or as a number for offset paging) leaves it too, so
 * the checkpoint never moves backwards; done marks the job finished (false on every other flush).
 * nrows / nfails count the lines, for the checkpoint's running totals. A flush with no rows and no
 * failures still moves the checkpoint (with no_checkpoint it is one empty round trip). The buffers
 * must stay unchanged until fn is called. Returns false if a flush is already running (caller bug)
 * or the flush could not be sent on a live connection; then fn will not be called and
 * sink_last_error tells why. On a lost connection it returns true and fn reports conn_lost. */
bool sink_flush(Sink *s, const Buf *rows, size_t nrows, const Buf *fails, size_t nfails,
                const char *position, bool done, sink_done_fn fn, void *ud) WUR;

bool sink_busy(const Sink *s);

/* Whether the connection is gone; every flush then ends with conn_lost until sink_attach. */
bool sink_conn_lost(const Sink *s);

/* Replace the connection (after a loss) with conn, a fresh connected session, whose
 * ownership passes to the sink whatever the outcome: creates the staging tables on it
 * (blocking: one short statement) and makes it non-blocking. Only while no flush runs.
 * Returns false with a message in err (then conn is closed and the old one stays). */
bool sink_attach(Sink *s, PGconn *conn, char *err, size_t errlen) WUR;

/* The run's requests and retries so far, written into the run's row by the next flush
 * (nothing without a run_id). */
void sink_set_run_counts(Sink *s, long long requests, long long retries);

/* The one-line reason of the last failure (a refused sink_flush, or the last failed
 * flush); "" if none. Valid until the next sink_flush. */
const char *sink_last_error(const Sink *s);

/* Stops its watchers and closes the connection (an open transaction is rolled back by
 * the server). NULL is fine. */
void sink_free(Sink *s);

#endif
