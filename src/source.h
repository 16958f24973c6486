/* source: pages the key column of the source table (or, for retry-failed, the IDs of one
 * job in the failure ledger) over its own non-blocking libpq connection, driven by the
 * libev loop. Keyset paging (WHERE key > $last ORDER BY key LIMIT n) by default; OFFSET
 * paging on request. One page query in flight at a time; the caller asks for the next page
 * as soon as it has room, so fetching overlaps lookups. */
#ifndef PGENRICH_SOURCE_H
#define PGENRICH_SOURCE_H

#include <stdbool.h>
#include <libpq-fe.h>
#include "compat.h"

struct ev_loop;

typedef enum Paging { PAGING_KEYSET, PAGING_OFFSET } Paging;

typedef struct SourceOpts {
    const char *table; /* one identifier, quoted by source */
    const char *key;   /* one identifier, quoted by source */
    const char *where; /* optional filter, operator-supplied SQL, or NULL: the one
                        * piece of SQL text pgenrich takes from outside, as is. It must
                        * not use $n parameters (the paging uses them). */
    int page_size;     /* > 0 */
    Paging paging;
    const char *start_key;  /* keyset: start after this key (its text form); NULL = start */
    long long start_offset; /* offset: rows to skip first */
    /* Keyset, table mode: the resume of an interrupted pass. Skip the IDs that have a row
     * in target_table with fetched_at >= skip_since, or an entry of job in failures_table
     * with last_seen >= skip_since: their outcome is committed already (timestamptz text;
     * NULL: skip nothing). Two index probes per candidate row, on the primary keys. */
    const char *skip_since;
    const char *target_table; /* one identifier, quoted by source; with skip_since, only_missing
                               * and refresh_older_than */
    /* Keyset, table mode: an incremental pass (README "Incremental nightly runs"). With
     * only_missing, only the IDs with no row in target_table and no entry of job in
     * failures_table; with refresh_older_than > 0 (seconds), only the IDs whose target row
     * has a fetched_at older than that at the page query's time; with both, the IDs that are
     * either. Each is an anti-join (or a semi-join) probing those tables' primary keys. They
     * supersede skip_since: what a pass has committed is neither missing nor stale. */
    bool only_missing;
    double refresh_older_than;
    const char *end_key; /* keyset: read no key above this one (its text form); NULL = none */

    /* Ledger mode (retry-failed): when from_ledger, pages are the IDs of job's rows in
     * failures_table (only those with this reason, unless reason is NULL), in id order:
     *   SELECT id::text FROM failures WHERE job = $1 [AND reason = $2] AND id > $last
     *   ORDER BY id LIMIT page_size
     * a range scan of the ledger's primary key (job, id). table, key, where, paging and
     * start_offset are then ignored (always keyset; start_key still applies). Keyset over
     * id stays exact while the run edits the ledger behind the cursor: a loaded ID is
     * deleted and a failed one is upserted in place, both at or below the last key, so
     * every ID still in the ledger when the cursor gets there comes once, none twice. Offset paging
     * would skip IDs as rows vanish, hence never used here. */
    bool from_ledger;
    const char *failures_table; /* one identifier, quoted by source; also with skip_since */
    const char *job;            /* required with from_ledger and with skip_since */
    const char *reason;         /* NULL = any reason */
} SourceOpts;

/* A page has arrived. On success page is a PGresult with one text column (the key as
 * text), in key order; ownership passes to the callee (PQclear). Every non-empty page is
 * delivered, then exactly one page with 0 rows marks the end of the source (after a page
 * shorter than page_size that last page comes without a query). Rows whose key is NULL
 * are never returned. On failure page is NULL and err is a one-line message valid during
 * the call; the position is unchanged, so source_fetch asks for the same page again.
 * Always called from the loop, never from inside source_fetch; the callback may call
 * source_fetch (the source is idle by then) or source_free. */
typedef void (*source_page_fn)(void *ud, PGresult *page, const char *err);

typedef struct Source Source;

/* Takes ownership of conn (connected, blocking or not), also on failure (then conn is
 * closed), and puts it in non-blocking mode. Copies everything in opts. Queries are not
 * checked here: a bad table or filter shows up as the first page's error. Returns NULL
 * on allocation failure or a bad conn / page_size, or when a name the mode needs is NULL
 * (table and key; with from_ledger, failures_table and job). Free with source_free. */
Source *source_new(struct ev_loop *loop, PGconn *conn, const SourceOpts *opts, source_page_fn fn,
                   void *ud) WUR;

/* Ask for the next page. Returns false if a page is already being fetched, the end was
 * reached (the 0-row page has been delivered), or the query could not be sent (then fn is
 * called with the error as well, from the loop). */
bool source_fetch(Source *s) WUR;

/* Whether a page is on its way (a query in flight, or a result queued for the loop). */
bool source_busy(const Source *s);

/* Whether the connection is gone (a server restart, a network failure). */
bool source_conn_lost(const Source *s);

/* After a failed page on a lost connection: go on over conn, a fresh connected session
 * (ownership passes whatever the outcome), from the same position. Only while no query
 * runs. Returns false if conn is unusable (then it is closed and the old one stays). */
bool source_attach(Source *s, PGconn *conn) WUR;

/* EXPLAIN of the first page query that a Source made with opts would send: the same SQL
 * text and parameters, planned but not run, on conn (blocking; connected; left open and
 * otherwise as it was). Returns the page query, a line "-- parameters: ..." and the plan's
 * lines, each ending in '\n' (caller frees), or NULL with a one-line reason in err. */
char *source_explain(PGconn *conn, const SourceOpts *opts, char *err, size_t errlen) WUR;

/* Stops its watchers, cancels a query in flight, closes the connection. NULL is fine. */
void source_free(Source *s);

#endif
