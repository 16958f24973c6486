/* lease: the ranges table of --shared jobs: split, claim, check, release, heartbeat. Names
 * are quoted identifiers in the SQL text; every value goes as a parameter. */
#include "lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "buf.h"
#include "log.h"
#include "pgwatch.h"
#include "ranges.h"

#define SQL_MAX (64 * 1024)
/* The split's advisory lock: "pgnr" as the lock of joblock.c, on the hash of "split/" and
 * the ranges table and job. */
#define SPLIT_LOCK_CLASS "1885826674"
/* Sampled keys per range asked for, when the key column has no histogram. */
#define SAMPLE_PER_RANGE 20

static const char *ranges_name(const DbNames *names)
{
    return names->ranges ? names->ranges : "enrich_ranges";
}

static char *dup_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

void lease_range_clear(LeaseRange *r)
{
    free(r->lower);
    free(r->upper);
    free(r->position);
    free(r->started_at);
    free(r->prev_owner);
    memset(r, 0, sizeof *r);
}

static bool exec_ok(PGconn *c, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        db_error(c, r, what, err, errlen);
    PQclear(r);
    return ok;
}

/* The key column's histogram bounds, in order (NULL result: none), as one text column. */
static PGresult *histogram(PGconn *c, const char *qsrc, const char *key, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT u.b FROM (SELECT s.histogram_bounds::text::text[] AS h FROM "
        "pg_catalog.pg_stats s JOIN pg_catalog.pg_namespace n ON n.nspname = s.schemaname "
        "JOIN pg_catalog.pg_class k ON k.relnamespace = n.oid AND k.relname = s.tablename "
        "WHERE k.oid = pg_catalog.to_regclass($1) AND s.attname = $2 AND "
        "s.histogram_bounds IS NOT NULL ORDER BY s.inherited DESC LIMIT 1) AS x, "
        "pg_catalog.unnest(x.h) WITH ORDINALITY AS u(b, i) ORDER BY u.i";
    const char *params[2] = {qsrc, key};
    PGresult *r = PQexecParams(c, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error(c, r, "split: reading pg_stats", err, errlen);
        PQclear(r);
        return NULL;
    }
    return r;
}

/* The bounds of the split: from the histogram, after an ANALYZE of the key column when
 * there is none, else from a sorted sample. *from names the origin, for the log. */
static PGresult *split_keys(PGconn *c, const char *qsrc, const char *qkey, const char *key,
                            const char *key_order, int nranges, const char **from, char *err,
                            size_t errlen)
{
    Buf sql;
    PGresult *r = histogram(c, qsrc, key, err, errlen);
    *from = "pg_stats";
    if (r == NULL || PQntuples(r) > 0)
        return r;
    PQclear(r);
    buf_init(&sql, SQL_MAX);
    if (!buf_printf(&sql, "ANALYZE %s (%s)", qsrc, qkey) ||
        !exec_ok(c, sql.data, "split: analyzing the source", err, errlen)) {
        buf_free(&sql);
        return NULL;
    }
    r = histogram(c, qsrc, key, err, errlen);
    *from = "pg_stats_analyzed";
    if (r == NULL || PQntuples(r) > 0) {
        buf_free(&sql);
        return r;
    }
    PQclear(r);
    /* No histogram (few distinct keys, or none): a random sample, sorted as the keys are. */
    *from = "sample";
    buf_reset(&sql);
    if (!buf_printf(&sql,
                    "SELECT x.k::text FROM (SELECT %s AS k FROM %s WHERE %s IS NOT NULL "
                    "ORDER BY pg_catalog.random() LIMIT %d) AS x ORDER BY (x.k)::%s",
                    qkey, qsrc, qkey, nranges * SAMPLE_PER_RANGE, key_order)) {
        snprintf(err, errlen, "split: out of memory");
        buf_free(&sql);
        return NULL;
    }
    r = PQexec(c, sql.data);
    buf_free(&sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error(c, r, "split: sampling the source", err, errlen);
        PQclear(r);
        return NULL;
    }
    return r;
}

bool lease_ensure_split(PGconn *c, const DbNames *names, const char *job, int nranges,
                        const char *key_order, int *made, char *err, size_t errlen)
{
    bool ok = false, in_tx = false;
    char *qg = db_quote_ident(c, ranges_name(names));
    char *qsrc = db_quote_ident(c, names->source);
    char *qkey = db_quote_ident(c, names->key);
    char *lockname = NULL;
    const char **cuts = NULL, **keys = NULL;
    PGresult *r = NULL, *k = NULL;
    Buf sql;
    buf_init(&sql, SQL_MAX);
    *made = 0;
    if (qg == NULL || qsrc == NULL || qkey == NULL) {
        db_error(c, NULL, "split: quoting names", err, errlen);
        goto done;
    }
    size_t ln = strlen(ranges_name(names)) + strlen(job) + 16;
    if ((lockname = malloc(ln)) == NULL)
        goto oom;
    snprintf(lockname, ln, "split/%s/%s", ranges_name(names), job);
    if (!exec_ok(c, "BEGIN", "split", err, errlen))
        goto done;
    in_tx = true;
    const char *lp[1] = {lockname};
    r = PQexecParams(
        c, "SELECT pg_catalog.pg_advisory_xact_lock(" SPLIT_LOCK_CLASS ", pg_catalog.hashtext($1))",
        1, NULL, lp, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error(c, r, "split: taking its lock", err, errlen);
        goto done;
    }
    PQclear(r);
    if (!buf_printf(&sql, "SELECT count(*) FROM %s WHERE job = $1", qg))
        goto oom;
    const char *jp[1] = {job};
    r = PQexecParams(c, sql.data, 1, NULL, jp, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error(c, r, "split: reading the ranges", err, errlen);
        goto done;
    }
    if (strcmp(PQgetvalue(r, 0, 0), "0") != 0) { /* another worker made it */
        ok = exec_ok(c, "COMMIT", "split", err, errlen);
        in_tx = !ok;
        goto done;
    }
    PQclear(r);
    r = NULL;
    const char *from = "";
    k = split_keys(c, qsrc, qkey, names->key, key_order, nranges, &from, err, errlen);
    if (k == NULL)
        goto done;
    size_t n = (size_t)PQntuples(k);
    keys = calloc(n + 1, sizeof *keys);
    cuts = calloc((size_t)nranges, sizeof *cuts);
    if (keys == NULL || cuts == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++)
        keys[i] = PQgetvalue(k, (int)i, 0);
    size_t m = ranges_bounds(keys, n, nranges, cuts);
    buf_reset(&sql);
    if (!buf_printf(&sql,
                    "INSERT INTO %s (job, range_no, lower_bound, upper_bound) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (job, range_no) DO NOTHING",
                    qg))
        goto oom;
    for (size_t i = 0; i <= m; i++) {
        char no[24];
        snprintf(no, sizeof no, "%zu", i);
        const char *p[4] = {job, no, i == 0 ? NULL : cuts[i - 1], i == m ? NULL : cuts[i]};
        r = PQexecParams(c, sql.data, 4, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            db_error(c, r, "split: inserting the ranges", err, errlen);
            goto done;
        }
        PQclear(r);
        r = NULL;
    }
    if (!exec_ok(c, "COMMIT", "split", err, errlen))
        goto done;
    in_tx = false;
    *made = (int)m + 1;
    log_info("event=split job=\"%s\" ranges=%d asked=%d from=%s keys_sampled=%zu", job, *made,
             nranges, from, n);
    ok = true;
    goto done;
oom:
    snprintf(err, errlen, "split: out of memory");
done:
    if (in_tx)
        PQclear(PQexec(c, "ROLLBACK"));
    PQclear(r);
    PQclear(k);
    free(keys);
    free(cuts);
    buf_free(&sql);
    free(lockname);
    free(qg);
    free(qsrc);
    free(qkey);
    return ok;
}

LeaseClaim lease_claim(PGconn *c, const DbNames *names, const char *job, const char *owner,
                       double lease_seconds, LeaseRange *out, char *err, size_t errlen)
{
    LeaseClaim res = LEASE_ERROR;
    char *qg = db_quote_ident(c, ranges_name(names));
    char secs[32];
    PGresult *r = NULL;
    Buf sql;
    buf_init(&sql, SQL_MAX);
    memset(out, 0, sizeof *out);
    if (qg == NULL) {
        db_error(c, NULL, "claim: quoting names", err, errlen);
        goto done;
    }
    snprintf(secs, sizeof secs, "%.3f", lease_seconds);
    /* One statement, one transaction: the row is locked by the CTE (rows other workers are
     * claiming are skipped, not waited for) and updated at once. MATERIALIZED: evaluated
     * once; as a subquery in FROM the planner may rescan it for every row of the join (a
     * nested loop), and each rescan picks the next range: one claim took them all. */
    if (!buf_printf(&sql,
                    "WITH c AS MATERIALIZED (SELECT range_no, owner AS prev_owner FROM %s "
                    "WHERE job = $1 AND (state = 'pending' OR (state = 'leased' AND "
                    "lease_expires < now())) ORDER BY range_no LIMIT 1 FOR UPDATE SKIP LOCKED) "
                    "UPDATE %s AS g SET state = 'leased', owner = $2, "
                    "lease_expires = now() + pg_catalog.make_interval(secs => $3::float8), "
                    "fence = g.fence + 1, started_at = coalesce(g.started_at, now()), "
                    "updated_at = now() FROM c WHERE g.job = $1 AND g.range_no = c.range_no "
                    "RETURNING g.range_no, "
                    "g.lower_bound, g.upper_bound, g.position, g.started_at, c.prev_owner, "
                    "g.fence",
                    qg, qg))
        goto oom;
    const char *p[3] = {job, owner, secs};
    r = PQexecParams(c, sql.data, 3, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error(c, r, "claiming a range", err, errlen);
        goto done;
    }
    if (PQntuples(r) == 1) {
        out->range_no = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
        out->lower = dup_or_null(r, 0, 1);
        out->upper = dup_or_null(r, 0, 2);
        out->position = dup_or_null(r, 0, 3);
        out->started_at = dup_or_null(r, 0, 4);
        out->prev_owner = dup_or_null(r, 0, 5);
        out->fence = strtoll(PQgetvalue(r, 0, 6), NULL, 10);
        res = LEASE_CLAIMED;
        goto done;
    }
    PQclear(r);
    buf_reset(&sql);
    if (!buf_printf(&sql, "SELECT count(*) FROM %s WHERE job = $1 AND state <> 'done'", qg))
        goto oom;
    r = PQexecParams(c, sql.data, 1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error(c, r, "reading the ranges", err, errlen);
        goto done;
    }
    res = strcmp(PQgetvalue(r, 0, 0), "0") == 0 ? LEASE_ALL_DONE : LEASE_WAIT;
    goto done;
oom:
    snprintf(err, errlen, "claim: out of memory");
done:
    if (res != LEASE_CLAIMED)
        lease_range_clear(out);
    PQclear(r);
    buf_free(&sql);
    free(qg);
    return res;
}

/* One statement on range r: head, the quoted ranges table, tail; with the job, range and
 * fence as $1, $2, $3. */
static PGresult *on_range(PGconn *c, const DbNames *names, const char *job, const LeaseRange *r,
                          const char *head, const char *tail, char *err, size_t errlen)
{
    char *qg = db_quote_ident(c, ranges_name(names));
    char no[24], fence[24];
    Buf sql;
    PGresult *res = NULL;
    buf_init(&sql, SQL_MAX);
    if (qg == NULL || !buf_puts(&sql, head) || !buf_puts(&sql, qg) || !buf_puts(&sql, tail)) {
        snprintf(err, errlen, "lease: out of memory");
        goto done;
    }
    snprintf(no, sizeof no, "%d", r->range_no);
    snprintf(fence, sizeof fence, "%lld", r->fence);
    const char *p[3] = {job, no, fence};
    res = PQexecParams(c, sql.data, 3, NULL, p, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        db_error(c, res, "lease", err, errlen);
        PQclear(res);
        res = NULL;
    }
done:
    buf_free(&sql);
    free(qg);
    return res;
}

bool lease_check(PGconn *c, const DbNames *names, const char *job, const LeaseRange *r, bool *ours,
                 bool *done, char *err, size_t errlen)
{
    PGresult *res = on_range(c, names, job, r, "SELECT fence = $3::bigint, state = 'done' FROM ",
                             " WHERE job = $1 AND range_no = $2::int", err, errlen);
    if (res == NULL)
        return false;
    *ours = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    *done = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    PQclear(res);
    return true;
}

bool lease_release(PGconn *c, const DbNames *names, const char *job, const LeaseRange *r, char *err,
                   size_t errlen)
{
    PGresult *res = on_range(c, names, job, r, "UPDATE ",
                             " SET state = 'pending', owner = NULL, "
                             "lease_expires = NULL, updated_at = now() WHERE job = $1 AND "
                             "range_no = $2::int AND fence = $3::bigint AND state = 'leased'",
                             err, errlen);
    PQclear(res);
    return res != NULL;
}

bool lease_live(PGconn *c, const DbNames *names, const char *job, long long *n, char *err,
                size_t errlen)
{
    char *qg = db_quote_ident(c, ranges_name(names));
    Buf sql;
    bool ok = false;
    PGresult *r = NULL;
    buf_init(&sql, SQL_MAX);
    *n = 0;
    const char *p[2] = {ranges_name(names), job};
    if (qg == NULL) {
        db_error(c, NULL, "quoting names", err, errlen);
        goto done;
    }
    /* A role that may not read the table (granted the tables of a plain run only) cannot
     * have run workers with it; the job's lock in shared mode covers the others. */
    r = PQexecParams(c,
                     "SELECT coalesce(pg_catalog.has_table_privilege(pg_catalog.to_regclass("
                     "pg_catalog.quote_ident($1)), 'SELECT'), false)",
                     1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error(c, r, "looking for live workers", err, errlen);
        goto done;
    }
    if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        ok = true;
        goto done;
    }
    PQclear(r);
    r = NULL;
    if (!buf_printf(&sql,
                    "SELECT count(*) FROM %s WHERE job = $1 AND state = 'leased' AND "
                    "lease_expires > now()",
                    qg)) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    r = PQexecParams(c, sql.data, 1, NULL, p + 1, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error(c, r, "looking for live workers", err, errlen);
        goto done;
    }
    *n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    ok = true;
done:
    PQclear(r);
    buf_free(&sql);
    free(qg);
    return ok;
}

/* ---------------------------------------------------------------- the heartbeat */

struct LeaseBeat {
    struct ev_loop *loop;
    PGconn *conn;
    ev_timer tick;
    ev_io io;
    int io_events;
    bool busy; /* a heartbeat is in flight */
    bool lost;
    char *sql;
    char no[24], fence[24], secs[32];
    const char *job;
    char *job_copy;
    int range_no;
    void (*on_lost)(void *ud);
    void *ud;
};

/* Read what the server has answered; returns true when the heartbeat is over. */
static bool beat_read(LeaseBeat *b)
{
    if (!PQconsumeInput(b->conn)) {
        log_warn("event=heartbeat_failed range=%d error=\"%.200s\"", b->range_no,
                 PQerrorMessage(b->conn));
        return true;
    }
    while (!PQisBusy(b->conn)) {
        PGresult *r = PQgetResult(b->conn);
        if (r == NULL)
            return true;
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            if (strcmp(PQcmdTuples(r), "0") == 0 && !b->lost) {
                b->lost = true;
                log_warn("event=lease_lost job=\"%s\" range=%d fence=%s detail=\"another worker "
                         "took the range over; this one stops working on it\"",
                         b->job, b->range_no, b->fence);
                PQclear(r);
                while ((r = PQgetResult(b->conn)) != NULL)
                    PQclear(r);
                b->busy = false;
                pgwatch_arm(b->loop, &b->io, &b->io_events, b->conn, 0);
                b->on_lost(b->ud);
                return false; /* b may be gone with its caller's state: touch nothing */
            }
        } else {
            char msg[256];
            db_error(b->conn, r, "heartbeat", msg, sizeof msg);
            log_warn("event=heartbeat_failed range=%d error=\"%s\"", b->range_no, msg);
        }
        PQclear(r);
    }
    return false;
}

static void on_beat_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    LeaseBeat *b = w->data;
    if (revents & EV_WRITE) {
        int f = PQflush(b->conn);
        if (f == 0)
            pgwatch_arm(b->loop, &b->io, &b->io_events, b->conn, EV_READ);
        else if (f < 0) {
            b->busy = false;
            pgwatch_arm(b->loop, &b->io, &b->io_events, b->conn, 0);
            return;
        }
    }
    if ((revents & EV_READ) && b->busy && !b->lost && beat_read(b)) {
        b->busy = false;
        pgwatch_arm(b->loop, &b->io, &b->io_events, b->conn, 0);
    }
}

static void on_beat_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    LeaseBeat *b = w->data;
    if (b->busy || b->lost)
        return;
    if (PQstatus(b->conn) == CONNECTION_BAD) {
        /* Reconnected between ranges; until then the lease runs out, another worker takes
         * the range, and the fence stops this one's flushes. */
        log_warn("event=heartbeat_failed range=%d error=\"the connection is lost\"", b->range_no);
        return;
    }
    const char *p[4] = {b->job, b->no, b->fence, b->secs};
    if (!PQsendQueryParams(b->conn, b->sql, 4, NULL, p, NULL, NULL, 0)) {
        log_warn("event=heartbeat_failed range=%d error=\"%.200s\"", b->range_no,
                 PQerrorMessage(b->conn));
        return;
    }
    b->busy = true;
    int f = PQflush(b->conn);
    pgwatch_arm(b->loop, &b->io, &b->io_events, b->conn, f == 1 ? EV_READ | EV_WRITE : EV_READ);
}

LeaseBeat *lease_beat_new(struct ev_loop *loop, PGconn *conn, const DbNames *names, const char *job,
                          const LeaseRange *r, double lease_seconds, void (*lost)(void *ud),
                          void *ud)
{
    LeaseBeat *b = calloc(1, sizeof *b);
    char *qg = db_quote_ident(conn, ranges_name(names));
    Buf sql;
    buf_init(&sql, SQL_MAX);
    if (b == NULL || qg == NULL || (b->job_copy = strdup(job)) == NULL)
        goto failed;
    /* The lease moves on only while the range is leased; a done range (its last flush
     * committed) still counts as ours: 0 rows means the fence has moved. */
    if (!buf_printf(&sql,
                    "UPDATE %s SET lease_expires = CASE WHEN state = 'leased' THEN now() + "
                    "pg_catalog.make_interval(secs => $4::float8) ELSE lease_expires END "
                    "WHERE job = $1 AND range_no = $2::int AND fence = $3::bigint",
                    qg))
        goto failed;
    b->sql = sql.data;
    if (PQsetnonblocking(conn, 1) != 0)
        goto failed;
    b->loop = loop;
    b->conn = conn;
    b->job = b->job_copy;
    b->range_no = r->range_no;
    snprintf(b->no, sizeof b->no, "%d", r->range_no);
    snprintf(b->fence, sizeof b->fence, "%lld", r->fence);
    snprintf(b->secs, sizeof b->secs, "%.3f", lease_seconds);
    b->on_lost = lost;
    b->ud = ud;
    ev_io_init(&b->io, on_beat_io, PQsocket(conn), EV_READ);
    b->io.data = b;
    double every = lease_seconds / 3;
    ev_timer_init(&b->tick, on_beat_tick, every, every);
    b->tick.data = b;
    ev_timer_start(loop, &b->tick);
    free(qg);
    return b;
failed:
    if (b)
        free(b->job_copy);
    free(b);
    free(qg);
    buf_free(&sql);
    return NULL;
}

bool lease_beat_lost(const LeaseBeat *b)
{
    return b->lost;
}

void lease_beat_free(LeaseBeat *b)
{
    if (b == NULL)
        return;
    ev_timer_stop(b->loop, &b->tick);
    pgwatch_arm(b->loop, &b->io, &b->io_events, b->conn, 0);
    PQsetnonblocking(b->conn, 0);
    if (b->busy) { /* blocking now: drain the answer */
        PGresult *r;
        while ((r = PQgetResult(b->conn)) != NULL)
            PQclear(r);
    }
    free(b->sql);
    free(b->job_copy);
    free(b);
}
