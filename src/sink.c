/* sink: one flush = one simple-protocol query string, so the whole flush is one implicit
 * transaction and costs one round trip per COPY plus one: [COPY rows; upsert; clear their
 * failures;] [COPY failures; upsert;] checkpoint (or nothing with no_checkpoint); the run's
 * history row (with a run_id). Driven by one ev_io on the socket. */
#include "sink.h"
#include "log.h"
#include "pgwatch.h"
#include "utf8.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQL_MAX (1024 * 1024)
/* COPY data goes out in pieces this size; the next piece waits until libpq's output
 * buffer has drained to the socket, so memory stays bounded by the caller's buffers. */
#define COPY_CHUNK (64 * 1024)
/* Pieces sent per wake-up at most, so that a big flush to a fast server still lets the
 * loop serve the other watchers in between (the socket stays writable: no delay). */
#define COPY_CHUNKS_PER_WAKE 16
/* Seconds a flush may take before it is reported as slow, and again each time after. */
#define SLOW_FLUSH 10.0

#define STAGE_ROWS  "pg_temp.pgenrich_stage_rows"
#define STAGE_FAILS "pg_temp.pgenrich_stage_fails"
#define ROW_COLS                                                                                   \
    "id, label, geo_label, street_address, city_label, postal_code, country_label, latitude, "     \
    "longitude, provider"
#define FAIL_COLS "id, reason, http_status, attempts, last_error"
/* The ledger keeps a short excerpt of the last error, whatever the caller passed. */
#define LAST_ERROR_MAX "500"
/* What pgenrich_fence_check (sql/schema.sql) raises when a range's fence has moved on. */
#define SINK_FENCE_SQLSTATE "PGF01"

struct Sink {
    struct ev_loop *loop;
    PGconn *conn;
    ev_io io;
    int io_events;  /* what io is started with; 0 = stopped */
    ev_timer later; /* delivers a flush refused for a lost connection from the loop */
    ev_timer slow;  /* says so while a flush takes long (a lock on the target?) */
    double started; /* loop time the flush in progress was sent */
    char *ddl;      /* the session's staging tables, again after sink_attach */
    /* Fixed SQL, built once with quoted names and literals. */
    char *sql_rows;  /* COPY rows; upsert; delete their failures */
    char *sql_fails; /* COPY failures; upsert */
    char *ckpt_head; /* checkpoint upsert up to the position value; NULL: no_checkpoint */
    char *ckpt_mid;  /* from after the position to the counts */
    char *ckpt_end;  /* after the counts: ON CONFLICT ... */
    char *run_head;  /* run-row update up to the counts; NULL: no run_id */
    char *run_end;   /* after the counts: the rest of it */
    long long run_requests, run_retries; /* sink_set_run_counts */
    Buf query;                           /* this flush's query string */
    /* The flush in progress. */
    bool busy;
    bool broken; /* the connection is in an unknown state: refuse further flushes */
    const Buf *copies[2];
    int ncopies, copy_idx;
    bool copying;
    size_t copy_off;
    int want_ok, got_ok; /* command results expected / received */
    bool failed;
    bool data_error; /* the first error was SQLSTATE class 22 or 23 */
    bool lease_lost; /* the first error was the fence's (PGF01) */
    long long kept;  /* from the flush's count of failures kept out by a target row */
    char err[512];
    sink_done_fn fn;
    void *ud;
};

/* After the counts: everything but the position's order, which needs the key type. */
static const char ckpt_tail[] =
    "paging = EXCLUDED.paging, rows_loaded = c.rows_loaded + EXCLUDED.rows_loaded, "
    "failures = c.failures + EXCLUDED.failures, finished = EXCLUDED.finished, "
    "updated_at = now()";

static void arm(Sink *s, int events)
{
    pgwatch_arm(s->loop, &s->io, &s->io_events, s->conn, events);
}

/* The first error wins; later ones are usually its consequences. For a server error the
 * COPY context (which line, which column) is kept: it names the bad value. */
static void set_error(Sink *s, const PGresult *r, const char *what)
{
    if (s->failed)
        return;
    s->failed = true;
    db_error(s->conn, r, what, s->err, sizeof s->err);
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    s->data_error = state != NULL && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0);
    s->lease_lost = state != NULL && strcmp(state, SINK_FENCE_SQLSTATE) == 0;
    if (state != NULL && strcmp(state, "57014") == 0) { /* query_canceled */
        size_t used = strlen(s->err);
        snprintf(s->err + used, sizeof s->err - used,
                 " (the flush ran into statement_timeout: another session may hold a lock on "
                 "the target or the ledger, or the server is overloaded; see "
                 "--statement-timeout)");
    }
    const char *ctx = r ? PQresultErrorField(r, PG_DIAG_CONTEXT) : NULL;
    if (ctx != NULL && strncmp(ctx, "COPY ", 5) == 0) {
        size_t used = strlen(s->err);
        int n = (int)strcspn(ctx, "\n");
        snprintf(s->err + used, sizeof s->err - used, " (%.*s)", n, ctx);
        for (char *p = s->err + used; *p; p++) /* the context quotes the raw line */
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = ' ';
    }
    /* The message may quote the refused value (an invalid byte, say): it goes to logs and
     * into the ledger as `unloadable`, so make it text PostgreSQL takes. */
    char raw[sizeof s->err];
    memcpy(raw, s->err, sizeof raw);
    utf8_sanitize(s->err, sizeof s->err, raw, strlen(raw));
}

static void set_message(Sink *s, const char *msg)
{
    if (s->failed)
        return;
    s->failed = true;
    snprintf(s->err, sizeof s->err, "flush: %s", msg);
}

/* The flush is over: report it. Nothing touches s after fn, which may free it or start
 * the next flush. */
static void finish(Sink *s)
{
    char err[sizeof s->err];
    if (!s->failed && s->got_ok != s->want_ok)
        set_message(s, "the server answered fewer commands than were sent");
    if (!s->failed && PQtransactionStatus(s->conn) != PQTRANS_IDLE)
        set_message(s, "the transaction did not end");
    arm(s, 0);
    ev_timer_stop(s->loop, &s->slow);
    s->busy = false;
    s->copying = false;
    memcpy(err, s->err, sizeof err);
    SinkResult res = {.ok = !s->failed,
                      .data_error = s->failed && s->data_error,
                      .conn_lost = s->failed && sink_conn_lost(s),
                      .err = s->failed ? err : NULL,
                      .kept = s->failed ? 0 : s->kept,
                      .lease_lost = s->failed && s->lease_lost};
    s->fn(s->ud, &res);
}

/* The connection cannot be trusted: give up on it without draining. */
static void hard_fail(Sink *s)
{
    set_error(s, NULL, "flush");
    s->broken = true;
    finish(s);
}

/* Send as much of the current COPY as the socket takes. Returns 1 when it must wait for
 * the socket to be writable, 0 when the data and the end of COPY are queued, -1 on error. */
static int feed_copy(Sink *s)
{
    const Buf *b = s->copies[s->copy_idx];
    int budget = COPY_CHUNKS_PER_WAKE;
    while (s->copy_off < b->len) {
        int f = PQflush(s->conn);
        if (f != 0)
            return f < 0 ? -1 : 1;
        if (budget-- == 0)
            return 1;
        size_t n = b->len - s->copy_off;
        if (n > COPY_CHUNK)
            n = COPY_CHUNK;
        int r = PQputCopyData(s->conn, b->data + s->copy_off, (int)n);
        if (r <= 0)
            return r < 0 ? -1 : 1;
        s->copy_off += n;
    }
    if (PQputCopyEnd(s->conn, NULL) < 0)
        return -1;
    s->copying = false;
    s->copy_idx++;
    return 0;
}

/* Run the flush as far as the socket allows. */
static void step(Sink *s, int revents)
{
    if ((revents & EV_READ) && !PQconsumeInput(s->conn)) {
        hard_fail(s);
        return;
    }
    for (;;) {
        if (s->copying) {
            int r = feed_copy(s);
            if (r == 1) {
                arm(s, EV_READ | EV_WRITE);
                return;
            }
            if (r < 0) {
                set_error(s, NULL, "flush");
                s->copying = false;
                if (PQstatus(s->conn) == CONNECTION_BAD) {
                    hard_fail(s);
                    return;
                }
                /* Otherwise the server's own error (or libpq's) comes as a result. */
            }
        }
        int f = PQflush(s->conn);
        if (f < 0) {
            hard_fail(s);
            return;
        }
        if (PQisBusy(s->conn)) {
            arm(s, f == 1 ? EV_READ | EV_WRITE : EV_READ);
            return;
        }
        PGresult *r = PQgetResult(s->conn);
        if (r == NULL) {
            finish(s);
            return;
        }
        switch (PQresultStatus(r)) {
        case PGRES_COPY_IN:
            if (!s->failed && s->copy_idx < s->ncopies) {
                s->copying = true;
                s->copy_off = 0;
            } else {
                /* Refuse the COPY so that the server ends the statement with an error. */
                set_message(s, "unexpected COPY");
                if (PQputCopyEnd(s->conn, "pgenrich: flush aborted") < 0) {
                    PQclear(r);
                    hard_fail(s);
                    return;
                }
            }
            break;
        case PGRES_TUPLES_OK:
            /* The one query with a column is the count of kept failures. */
            if (PQnfields(r) == 1 && PQntuples(r) == 1)
                s->kept = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            s->got_ok++;
            break;
        case PGRES_COMMAND_OK:
            s->got_ok++;
            break;
        default:
            set_error(s, r, "flush");
            break;
        }
        PQclear(r);
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    step(w->data, revents);
}

/* A flush that waits on a lock would otherwise look like a hang until statement_timeout. */
static void on_slow(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    Sink *s = w->data;
    log_warn("event=flush_slow waiting_s=%.0f detail=\"the flush has not ended yet: another "
             "session may hold a lock on the target or the ledger (see pg_locks), or the server "
             "is slow; statement_timeout ends it\"",
             ev_now(loop) - s->started);
}

static void on_later(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    finish(w->data);
}

/* Build the fixed statements. Names are quoted identifiers, job and paging literals. */
/* The run's row, after the flush's other statements: what this flush committed is added
 * to it. Failure lines of IDs with a target row are counted as kept, as in the ledger's
 * upsert above (the same test, after the same writes); failures_by_reason counts every
 * failure line by reason, like the outbox's totals. */
static bool build_run_sql(Sink *s, const char *qt, const char *qc, const char *qr, const char *ljob,
                          bool has_ckpt, long long run_id)
{
    Buf b;
    buf_init(&b, SQL_MAX);
    if (!buf_printf(&b,
                    "UPDATE %s AS r SET updated_at = now(), kept = r.kept + k.n, "
                    "failures_by_reason = (SELECT coalesce(pg_catalog.jsonb_object_agg(v.reason, "
                    "v.n), '{}') FROM (SELECT u.reason, sum(u.n)::bigint AS n FROM "
                    "(SELECT e.key, e.value::bigint FROM "
                    "pg_catalog.jsonb_each_text(r.failures_by_reason) AS e UNION ALL "
                    "SELECT x.reason, count(*) FROM " STAGE_FAILS " AS x GROUP BY x.reason) "
                    "AS u(reason, n) GROUP BY u.reason) AS v), ",
                    qr))
        goto oom;
    if (has_ckpt && !buf_printf(&b,
                                "checkpoint_to = coalesce((SELECT c.position FROM %s AS c "
                                "WHERE c.job = %s), r.checkpoint_to), ",
                                qc, ljob))
        goto oom;
    s->run_head = b.data;
    /* Then: rows_loaded = r.rows_loaded + N, failures = r.failures + F - k.n, ids_per_s =
     * (... + N + F) / seconds, requests = R, retries = T, written per flush. */
    buf_init(&b, SQL_MAX);
    if (!buf_printf(&b,
                    " FROM (SELECT count(DISTINCT x.id) AS n FROM " STAGE_FAILS " AS x WHERE "
                    "EXISTS (SELECT 1 FROM %s AS t WHERE t.id = x.id) AND NOT EXISTS "
                    "(SELECT 1 FROM " STAGE_ROWS " AS w WHERE w.id = x.id)) AS k "
                    "WHERE r.run_id = %lld",
                    qt, run_id))
        goto oom;
    s->run_end = b.data;
    return true;
oom:
    buf_free(&b);
    return false;
}

/* Range mode's checkpoint: the range's row, as the job's row would be (the position only
 * moves forward, the counts add up, done ends the range), under its fence. The fence test is
 * a function in the WHERE, evaluated on the row the UPDATE locks (re-read after a concurrent
 * claim commits): a claim in between makes it raise, and the flush rolls back whole. Then
 * the flush appends "position, nrows, nfails, done" and ckpt_end. */
static bool build_range_sql(Sink *s, const SinkOpts *range, const char *ljob, const char *ptype)
{
    Buf b;
    char *qg = db_quote_ident(s->conn, range->names.ranges ? range->names.ranges : "enrich_ranges");
    if (qg == NULL)
        return false;
    buf_init(&b, SQL_MAX);
    if (!buf_printf(&b,
                    "UPDATE %s AS g SET position = CASE WHEN v.p IS NULL THEN g.position "
                    "WHEN g.position IS NULL OR (v.p)::%s > (g.position)::%s THEN v.p "
                    "ELSE g.position END, rows_loaded = g.rows_loaded + v.n, "
                    "failures = g.failures + v.f, "
                    "state = CASE WHEN v.done THEN 'done' ELSE g.state END, "
                    "lease_expires = CASE WHEN v.done THEN NULL ELSE g.lease_expires END, "
                    "updated_at = now() FROM (VALUES (",
                    qg, ptype, ptype))
        goto oom;
    s->ckpt_head = b.data;
    buf_init(&b, SQL_MAX);
    if (!buf_puts(&b, "::text, "))
        goto oom;
    s->ckpt_mid = b.data;
    buf_init(&b, SQL_MAX);
    if (!buf_printf(&b,
                    ")) AS v(p, n, f, done) WHERE g.job = %s AND g.range_no = %d AND "
                    "pgenrich_fence_check(g.fence, %lld, g.job, g.range_no)",
                    ljob, range->range_no, range->fence))
        goto oom;
    s->ckpt_end = b.data;
    free(qg);
    return true;
oom:
    buf_free(&b);
    free(qg);
    return false;
}

static bool build_sql(Sink *s, const char *qt, const char *qf, const char *qc, const char *ljob,
                      const char *lpaging, const char *ptype, const SinkOpts *range)
{
    Buf b;
    buf_init(&b, SQL_MAX);
    if (!buf_printf(&b,
                    "COPY " STAGE_ROWS " (" ROW_COLS ") FROM STDIN;\n"
                    "INSERT INTO %s AS t (" ROW_COLS ")\n"
                    "SELECT DISTINCT ON (id) " ROW_COLS " FROM " STAGE_ROWS
                    " ORDER BY id, pgenrich_seq DESC\n"
                    "ON CONFLICT (id) DO UPDATE SET label = EXCLUDED.label, "
                    "geo_label = EXCLUDED.geo_label, street_address = EXCLUDED.street_address, "
                    "city_label = EXCLUDED.city_label, postal_code = EXCLUDED.postal_code, "
                    "country_label = EXCLUDED.country_label, latitude = EXCLUDED.latitude, "
                    "longitude = EXCLUDED.longitude, provider = EXCLUDED.provider, "
                    "fetched_at = now();\n"
                    "DELETE FROM %s AS f USING " STAGE_ROWS " AS s "
                    "WHERE f.job = %s AND f.id = s.id;\n",
                    qt, qf, ljob))
        goto oom;
    s->sql_rows = b.data;
    buf_init(&b, SQL_MAX);
    /* An ID loaded in this same flush is not recorded as failed: its row wins. Nor is an
     * ID that already has a target row (from an earlier run, or before a resume, a refresh
     * or retry-failed drew a worse answer): the good row stays as it was, and those IDs
     * are counted first. first_seen and last_seen take their defaults on insert; an update
     * keeps first_seen. updated_at is last_seen's older name, kept in step (see
     * sql/schema.sql). */
    if (!buf_printf(&b,
                    "COPY " STAGE_FAILS " (" FAIL_COLS ") FROM STDIN;\n"
                    "SELECT count(DISTINCT x.id) FROM " STAGE_FAILS " AS x WHERE EXISTS "
                    "(SELECT 1 FROM %s AS t WHERE t.id = x.id) AND NOT EXISTS "
                    "(SELECT 1 FROM " STAGE_ROWS " AS r WHERE r.id = x.id);\n"
                    "INSERT INTO %s AS f (job, " FAIL_COLS ")\n"
                    "SELECT DISTINCT ON (x.id) %s, x.id, x.reason, x.http_status, x.attempts, "
                    "pg_catalog.left(x.last_error, " LAST_ERROR_MAX ") FROM " STAGE_FAILS
                    " AS x WHERE NOT EXISTS "
                    "(SELECT 1 FROM " STAGE_ROWS " AS r WHERE r.id = x.id) AND NOT EXISTS "
                    "(SELECT 1 FROM %s AS t WHERE t.id = x.id) "
                    "ORDER BY x.id, x.pgenrich_seq DESC\n"
                    "ON CONFLICT (job, id) DO UPDATE SET reason = EXCLUDED.reason, "
                    "http_status = EXCLUDED.http_status, attempts = EXCLUDED.attempts, "
                    "last_error = EXCLUDED.last_error, last_seen = now(), "
                    "updated_at = now();\n",
                    qt, qf, ljob, qt))
        goto oom;
    s->sql_fails = b.data;
    if (lpaging == NULL) /* no_checkpoint */
        return true;
    if (range != NULL)
        return build_range_sql(s, range, ljob, ptype);
    buf_init(&b, SQL_MAX);
    if (!buf_printf(&b,
                    "INSERT INTO %s AS c (job, position, paging, rows_loaded, failures, "
                    "finished) VALUES (%s, ",
                    qc, ljob))
        goto oom;
    s->ckpt_head = b.data;
    buf_init(&b, SQL_MAX);
    if (!buf_printf(&b, ", %s, ", lpaging))
        goto oom;
    s->ckpt_mid = b.data;
    /* The position only moves forward, in the order the source is paged in: as the key's
     * own type and collation, or as a number of rows for offset paging (ptype: see
     * SinkOpts.position_type). */
    buf_init(&b, SQL_MAX);
    if (!buf_printf(&b,
                    ") ON CONFLICT (job) DO UPDATE SET position = CASE WHEN c.position IS NULL "
                    "OR (EXCLUDED.position)::%s > (c.position)::%s THEN EXCLUDED.position ELSE "
                    "c.position END, %s",
                    ptype, ptype, ckpt_tail))
        goto oom;
    s->ckpt_end = b.data;
    return true;
oom:
    buf_free(&b);
    return false;
}

Sink *sink_new(struct ev_loop *loop, PGconn *conn, const SinkOpts *opts, char *err, size_t errlen)
{
    Sink *s = NULL;
    char *qt = NULL, *qf = NULL, *qc = NULL, *qr = NULL, *ljob = NULL, *lpaging = NULL;
    PGresult *r = NULL;
    Buf ddl;
    buf_init(&ddl, SQL_MAX);
    if (PQstatus(conn) != CONNECTION_OK) {
        db_error(conn, NULL, "sink", err, errlen);
        goto failed;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL)
        goto oom;
    qt = db_quote_ident(conn, opts->names.target);
    qf = db_quote_ident(conn, opts->names.failures);
    qc = db_quote_ident(conn, opts->names.checkpoints);
    ljob = db_quote_literal(conn, opts->job);
    if (!opts->no_checkpoint)
        lpaging = db_quote_literal(conn, opts->paging);
    if (opts->run_id > 0)
        qr = db_quote_ident(conn, opts->names.runs);
    if (qt == NULL || qf == NULL || qc == NULL || ljob == NULL ||
        (!opts->no_checkpoint && lpaging == NULL) || (opts->run_id > 0 && qr == NULL)) {
        db_error(conn, NULL, "sink: quoting names", err, errlen);
        goto failed;
    }
    /* Staging tables take their column types from the real tables (CREATE TABLE AS ...
     * WITH NO DATA copies types, not constraints: the upsert checks those). pgenrich_seq
     * numbers the COPY lines so that the last of two lines for one ID wins. The rows go
     * away at every commit. */
    if (!buf_printf(&ddl,
                    "CREATE TEMP TABLE pgenrich_stage_rows ON COMMIT DELETE ROWS AS "
                    "SELECT " ROW_COLS " FROM %s WITH NO DATA;\n"
                    "ALTER TABLE " STAGE_ROWS " ADD COLUMN pgenrich_seq bigint "
                    "GENERATED ALWAYS AS IDENTITY;\n"
                    "CREATE TEMP TABLE pgenrich_stage_fails ON COMMIT DELETE ROWS AS "
                    "SELECT " FAIL_COLS " FROM %s WITH NO DATA;\n"
                    "ALTER TABLE " STAGE_FAILS " ADD COLUMN pgenrich_seq bigint "
                    "GENERATED ALWAYS AS IDENTITY;\n",
                    qt, qf))
        goto oom;
    if ((s->ddl = strdup(ddl.data)) == NULL)
        goto oom;
    r = db_exec(conn, ddl.data, 0, NULL, "creating the staging tables");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        db_error(conn, r, "sink: creating the staging tables", err, errlen);
        goto failed;
    }
    if (!opts->no_checkpoint && opts->position_type == NULL) {
        snprintf(err, errlen, "sink: no position type");
        goto failed;
    }
    s->conn = conn; /* build_range_sql quotes with it */
    if (!build_sql(s, qt, qf, qc, ljob, lpaging, opts->position_type,
                   opts->range_mode ? opts : NULL))
        goto oom;
    if (opts->run_id > 0 && !build_run_sql(s, qt, qc, qr, ljob,
                                           !opts->no_checkpoint && !opts->range_mode, opts->run_id))
        goto oom;
    if (PQsetnonblocking(conn, 1) != 0) {
        db_error(conn, NULL, "sink", err, errlen);
        goto failed;
    }
    s->loop = loop;
    s->conn = conn;
    buf_init(&s->query, SQL_MAX);
    ev_io_init(&s->io, on_io, PQsocket(conn), EV_READ);
    s->io.data = s;
    ev_timer_init(&s->later, on_later, 0., 0.);
    s->later.data = s;
    ev_timer_init(&s->slow, on_slow, SLOW_FLUSH, SLOW_FLUSH);
    s->slow.data = s;
    goto done;

oom:
    snprintf(err, errlen, "sink: out of memory");
failed:
    if (s != NULL) {
        free(s->ddl);
        free(s->sql_rows);
        free(s->sql_fails);
        free(s->ckpt_head);
        free(s->ckpt_mid);
        free(s->ckpt_end);
        free(s->run_head);
        free(s->run_end);
        free(s);
        s = NULL;
    }
    PQfinish(conn);
done:
    PQclear(r);
    buf_free(&ddl);
    free(qt);
    free(qf);
    free(qc);
    free(qr);
    free(ljob);
    free(lpaging);
    return s;
}

bool sink_flush(Sink *s, const Buf *rows, size_t nrows, const Buf *fails, size_t nfails,
                const char *position, bool done, sink_done_fn fn, void *ud)
{
    if (s->busy) {
        snprintf(s->err, sizeof s->err, "flush: a flush is already running");
        return false;
    }
    if (sink_conn_lost(s)) {
        /* Told from the loop like any failed flush, so that the caller keeps its batch
         * for a new connection (sink_attach). */
        if (!s->failed || s->err[0] == '\0')
            snprintf(s->err, sizeof s->err, "flush: the connection to the database was lost");
        s->failed = true;
        s->fn = fn;
        s->ud = ud;
        s->busy = true;
        ev_timer_set(&s->later, 0., 0.);
        ev_timer_start(s->loop, &s->later);
        return true;
    }
    bool has_rows = rows != NULL && rows->len > 0;
    bool has_fails = fails != NULL && fails->len > 0;
    bool has_ckpt = s->ckpt_head != NULL;
    bool has_run = s->run_head != NULL;
    char *lpos = NULL;
    if (has_ckpt && position != NULL && (lpos = db_quote_literal(s->conn, position)) == NULL) {
        db_error(s->conn, NULL, "flush: quoting the position", s->err, sizeof s->err);
        return false;
    }
    buf_reset(&s->query);
    bool ok = (!has_rows || buf_puts(&s->query, s->sql_rows)) &&
              (!has_fails || buf_puts(&s->query, s->sql_fails));
    if (ok && has_ckpt)
        ok = buf_printf(&s->query, "%s%s%s%zu, %zu, %s%s", s->ckpt_head, lpos ? lpos : "NULL",
                        s->ckpt_mid, nrows, nfails, done ? "true" : "false", s->ckpt_end);
    if (ok && has_run)
        ok = buf_printf(&s->query,
                        "%s%srows_loaded = r.rows_loaded + %zu, failures = r.failures + %zu - k.n, "
                        "ids_per_s = (r.rows_loaded + r.failures + r.kept + %zu) / "
                        "greatest(extract(epoch FROM now() - r.started_at)::float8, 0.001), "
                        "requests = %lld, retries = %lld%s",
                        has_ckpt ? ";\n" : "", s->run_head, nrows, nfails, nrows + nfails,
                        s->run_requests, s->run_retries, s->run_end);
    else if (ok && !has_ckpt && !has_rows && !has_fails)
        /* Nothing to write: one empty round trip, so that fn still comes from the loop
         * after the server answered, like for any other flush. */
        ok = buf_puts(&s->query, "SELECT");
    free(lpos);
    if (!ok) {
        snprintf(s->err, sizeof s->err, "flush: out of memory");
        return false;
    }
    s->ncopies = 0;
    if (has_rows)
        s->copies[s->ncopies++] = rows;
    if (has_fails)
        s->copies[s->ncopies++] = fails;
    s->copy_idx = 0;
    s->copying = false;
    s->want_ok = (has_rows ? 3 : 0) + (has_fails ? 3 : 0) + (has_ckpt ? 1 : 0) + (has_run ? 1 : 0);
    if (s->want_ok == 0)
        s->want_ok = 1; /* the empty SELECT */
    s->got_ok = 0;
    s->failed = false;
    s->data_error = false;
    s->lease_lost = false;
    s->kept = 0;
    s->err[0] = '\0';
    /* Simple protocol on purpose: several statements in one string run as one implicit
     * transaction (any error rolls all of it back and leaves the session idle), and COPY
     * may sit among them; the extended protocol and pipelines allow neither. */
    s->fn = fn;
    s->ud = ud;
    s->busy = true;
    s->started = ev_now(s->loop);
    ev_timer_again(s->loop, &s->slow);
    int f = 0;
    if (!PQsendQuery(s->conn, s->query.data) || (f = PQflush(s->conn)) < 0) {
        set_error(s, NULL, "flush");
        if (PQstatus(s->conn) == CONNECTION_BAD) {
            /* The server went away since the last flush: say so from the loop. */
            s->broken = true;
            ev_timer_set(&s->later, 0., 0.);
            ev_timer_start(s->loop, &s->later);
            return true;
        }
        s->busy = false;
        return false;
    }
    arm(s, f == 1 ? EV_READ | EV_WRITE : EV_READ);
    return true;
}

bool sink_conn_lost(const Sink *s)
{
    return s->broken || PQstatus(s->conn) == CONNECTION_BAD;
}

bool sink_attach(Sink *s, PGconn *conn, char *err, size_t errlen)
{
    if (s->busy) {
        snprintf(err, errlen, "sink: a flush is still running");
        PQfinish(conn);
        return false;
    }
    PGresult *r = db_exec(conn, s->ddl, 0, NULL, "creating the staging tables");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        db_error(conn, r, "sink: creating the staging tables", err, errlen);
    PQclear(r);
    if (ok && PQsetnonblocking(conn, 1) != 0) {
        db_error(conn, NULL, "sink", err, errlen);
        ok = false;
    }
    if (!ok) {
        PQfinish(conn);
        return false;
    }
    arm(s, 0);
    PQfinish(s->conn);
    s->conn = conn;
    s->broken = false;
    s->failed = false;
    s->err[0] = '\0';
    ev_io_set(&s->io, PQsocket(conn), EV_READ);
    return true;
}

bool sink_busy(const Sink *s)
{
    return s->busy;
}

void sink_set_run_counts(Sink *s, long long requests, long long retries)
{
    s->run_requests = requests;
    s->run_retries = retries;
}

const char *sink_last_error(const Sink *s)
{
    return s->err;
}

void sink_free(Sink *s)
{
    if (s == NULL)
        return;
    arm(s, 0);
    ev_timer_stop(s->loop, &s->later);
    ev_timer_stop(s->loop, &s->slow);
    PQfinish(s->conn);
    free(s->ddl);
    buf_free(&s->query);
    free(s->sql_rows);
    free(s->sql_fails);
    free(s->ckpt_head);
    free(s->ckpt_mid);
    free(s->ckpt_end);
    free(s->run_head);
    free(s->run_end);
    free(s);
}
