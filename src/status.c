/* status: one query per part of the report, each on the tables that exist; the rows stay in
 * their PGresults while runs.c renders them (RunsReport borrows the strings). */
#include "status.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "exitcode.h"
#include "joblock.h"
#include "runs.h"

#define SQL_MAX    (64 * 1024)
#define OUTPUT_MAX (16 * 1024 * 1024)

/* A timestamptz column as ISO 8601 in UTC, whatever the session's TimeZone. */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

typedef struct Tables {
    char *source, *key, *failures, *checkpoints, *runs; /* quoted */
    bool has_source, has_failures, has_checkpoints, has_runs;
} Tables;

static void tables_free(Tables *t)
{
    free(t->source);
    free(t->key);
    free(t->failures);
    free(t->checkpoints);
    free(t->runs);
}

static const char *value(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static long long int_value(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static bool is_true(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && strcmp(PQgetvalue(r, row, col), "t") == 0;
}

/* Run sql with text parameters; NULL with the reason in err unless it returned rows. */
static PGresult *query(PGconn *c, const char *sql, int n, const char *const *params,
                       const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error(c, r, what, err, errlen);
        PQclear(r);
        return NULL;
    }
    return r;
}

static bool find_tables(PGconn *c, const DbNames *n, Tables *t, char *err, size_t errlen)
{
    t->source = db_quote_ident(c, n->source);
    t->key = db_quote_ident(c, n->key);
    t->failures = db_quote_ident(c, n->failures);
    t->checkpoints = db_quote_ident(c, n->checkpoints);
    t->runs = db_quote_ident(c, n->runs);
    if (!t->source || !t->key || !t->failures || !t->checkpoints || !t->runs) {
        db_error(c, NULL, "quoting table names", err, errlen);
        return false;
    }
    const char *params[4] = {t->source, t->failures, t->checkpoints, t->runs};
    PGresult *r = query(c,
                        "SELECT pg_catalog.to_regclass($1) IS NOT NULL, "
                        "pg_catalog.to_regclass($2) IS NOT NULL, "
                        "pg_catalog.to_regclass($3) IS NOT NULL, "
                        "pg_catalog.to_regclass($4) IS NOT NULL",
                        4, params, "reading the catalog", err, errlen);
    if (r == NULL)
        return false;
    t->has_source = is_true(r, 0, 0);
    t->has_failures = is_true(r, 0, 1);
    t->has_checkpoints = is_true(r, 0, 2);
    t->has_runs = is_true(r, 0, 3);
    PQclear(r);
    return true;
}

/* The source IDs past the checkpoint, with the job's filter: keyset paging counts the keys
 * above the position (compared as the key's own type, like the source's pages); offset
 * paging, the rows beyond the number settled. No checkpoint: every ID. A failure is not
 * the report's: it is shown as the reason the count is unknown. */
static void count_left(PGconn *c, const Tables *t, const StatusOpts *o, RunsReport *rep, char *why,
                       size_t whylen)
{
    bool offset = rep->has_checkpoint && rep->paging && strcmp(rep->paging, "offset") == 0;
    bool after = rep->position != NULL && !offset;
    Buf sql;
    buf_init(&sql, SQL_MAX);
    if (!t->has_source) {
        snprintf(why, whylen, "source table %s does not exist", t->source);
        rep->ids_left_error = why;
        return;
    }
    bool ok = buf_printf(&sql, "SELECT %s(count(*)%s) FROM %s WHERE %s.%s %s",
                         offset ? "greatest" : "", offset ? " - $1::bigint, 0" : "", t->source,
                         t->source, t->key, after ? "> $1" : "IS NOT NULL");
    /* The filter goes in on lines of its own, as in the source's page queries. */
    if (ok && o->where != NULL && *o->where != '\0')
        ok = buf_printf(&sql, " AND (\n%s\n)", o->where);
    if (!ok) {
        snprintf(why, whylen, "out of memory");
        rep->ids_left_error = why;
        buf_free(&sql);
        return;
    }
    const char *params[1] = {rep->position ? rep->position : "0"};
    PGresult *r =
        query(c, sql.data, offset || after ? 1 : 0, params, "counting the IDs left", why, whylen);
    if (r == NULL)
        rep->ids_left_error = why;
    else {
        rep->has_ids_left = true;
        rep->ids_left = int_value(r, 0, 0);
    }
    PQclear(r);
    buf_free(&sql);
}

/* The workers table of the shared rate (one row per live worker: heartbeat, rate, 429s)
 * is read only when it exists (a database made before it had none), and as JSON rows. */

/* What a job with ranges adds to the report: its results stay alive until shared_free. */
typedef struct SharedRead {
    RunsShared s;
    PGresult *leased, *workers;
    RunsRange *ranges;
    RunsWorker *list;
} SharedRead;

static void shared_free(SharedRead *r)
{
    PQclear(r->leased);
    PQclear(r->workers);
    free(r->ranges);
    free(r->list);
}

/* Whether table (a name, unquoted) exists and this role may read it. */
static bool readable(PGconn *c, const char *table, bool *yes, char *err, size_t errlen)
{
    const char *p[1] = {table};
    PGresult *r = query(c,
                        "SELECT coalesce(pg_catalog.has_table_privilege(pg_catalog.to_regclass("
                        "pg_catalog.quote_ident($1)), 'SELECT'), false)",
                        1, p, "reading the catalog", err, errlen);
    if (r == NULL)
        return false;
    *yes = is_true(r, 0, 0);
    PQclear(r);
    return true;
}

/* The ranges of the job, when it has any (*has): counts by state, the leased ones, the
 * workers (owners, joined with the workers table when there is one) and the rate of the
 * live workers' runs. */
static bool read_shared(PGconn *c, const DbNames *n, const Tables *t, const char *job,
                        SharedRead *out, bool *has, char *err, size_t errlen)
{
    const char *rname = n->ranges ? n->ranges : "enrich_ranges";
    const char *wname = n->workers ? n->workers : "enrich_workers";
    bool ok = false, exists = false, wt = false;
    char *qg = NULL, *qw = NULL;
    PGresult *r = NULL;
    Buf sql;
    buf_init(&sql, SQL_MAX);
    *has = false;
    const char *params[1] = {job};
    if (!readable(c, rname, &exists, err, errlen))
        goto done;
    if (!exists) {
        ok = true;
        goto done;
    }
    if ((qg = db_quote_ident(c, rname)) == NULL || (qw = db_quote_ident(c, wname)) == NULL) {
        db_error(c, NULL, "quoting table names", err, errlen);
        goto done;
    }
    if (!buf_printf(&sql,
                    "SELECT count(*), count(*) FILTER (WHERE state = 'pending'), count(*) FILTER "
                    "(WHERE state = 'leased'), count(*) FILTER (WHERE state = 'leased' AND "
                    "lease_expires <= now()), count(*) FILTER (WHERE state = 'done'), "
                    "coalesce(sum(rows_loaded + failures), 0) FROM %s WHERE job = $1",
                    qg))
        goto oom;
    if ((r = query(c, sql.data, 1, params, "reading the ranges", err, errlen)) == NULL)
        goto done;
    RunsShared *s = &out->s;
    s->ranges = int_value(r, 0, 0);
    s->pending = int_value(r, 0, 1);
    s->leased = int_value(r, 0, 2);
    s->expired = int_value(r, 0, 3);
    s->done = int_value(r, 0, 4);
    s->ids_done = int_value(r, 0, 5);
    PQclear(r);
    r = NULL;
    if (s->ranges == 0) { /* a plain job: the report stays as it was */
        ok = true;
        goto done;
    }
    *has = true;

    buf_reset(&sql);
    if (!buf_printf(&sql,
                    "SELECT range_no, owner, fence, extract(epoch FROM lease_expires - now())"
                    "::float8, position, rows_loaded, failures FROM %s WHERE job = $1 AND "
                    "state = 'leased' ORDER BY range_no",
                    qg))
        goto oom;
    if ((out->leased = query(c, sql.data, 1, params, "reading the leases", err, errlen)) == NULL)
        goto done;
    int nl = PQntuples(out->leased);
    if (nl > 0 && (out->ranges = calloc((size_t)nl, sizeof *out->ranges)) == NULL)
        goto oom;
    for (int i = 0; i < nl; i++) {
        RunsRange *g = &out->ranges[i];
        g->range_no = (int)int_value(out->leased, i, 0);
        g->owner = value(out->leased, i, 1);
        g->fence = int_value(out->leased, i, 2);
        g->lease_left_s =
            PQgetisnull(out->leased, i, 3) ? -1 : strtod(PQgetvalue(out->leased, i, 3), NULL);
        g->position = value(out->leased, i, 4);
        g->rows_loaded = int_value(out->leased, i, 5);
        g->failures = int_value(out->leased, i, 6);
    }
    s->leased_ranges = out->ranges;
    s->nleased = (size_t)nl;

    if (!readable(c, wname, &wt, err, errlen))
        goto done;
    s->workers_table = wt;
    buf_reset(&sql);
    if (!buf_printf(&sql,
                    "WITH g AS (SELECT owner, coalesce(pg_catalog.string_agg(range_no::text, "
                    "',' ORDER BY range_no) FILTER (WHERE state = 'leased'), '') AS leased, "
                    "count(*) FILTER (WHERE state = 'done') AS done, "
                    "coalesce(bool_or(state = 'leased' AND lease_expires > now()), false) AS "
                    "live, extract(epoch FROM max(lease_expires) FILTER (WHERE state = "
                    "'leased') - now())::float8 AS lease_left FROM %s WHERE job = $1 AND "
                    "owner IS NOT NULL GROUP BY owner) ",
                    qg))
        goto oom;
    if (wt ? !buf_printf(&sql,
                         "SELECT coalesce(g.owner, w.worker), coalesce(g.leased, ''), "
                         "coalesce(g.done, 0), coalesce(g.live, false), g.lease_left, "
                         "w.j::text, extract(epoch FROM now() - (w.j->>'heartbeat_at')"
                         "::timestamptz)::float8, w.j->>'rate', w.j->>'throttled', "
                         "w.j->>'last_429_at' FROM g FULL JOIN (SELECT x.worker::text AS "
                         "worker, pg_catalog.to_jsonb(x) - 'job' AS j FROM %s AS x WHERE "
                         "x.job = $1) AS w ON w.worker = g.owner ORDER BY 4 DESC, 1",
                         qw)
           : !buf_puts(&sql, "SELECT owner, leased, done, live, lease_left, NULL, NULL, NULL, "
                             "NULL, NULL FROM g ORDER BY 4 DESC, 1"))
        goto oom;
    if ((out->workers = query(c, sql.data, 1, params, "reading the workers", err, errlen)) == NULL)
        goto done;
    int nw = PQntuples(out->workers);
    if (nw > 0 && (out->list = calloc((size_t)nw, sizeof *out->list)) == NULL)
        goto oom;
    for (int i = 0; i < nw; i++) {
        RunsWorker *w = &out->list[i];
        const PGresult *x = out->workers;
        w->owner = value(x, i, 0);
        w->leased = value(x, i, 1);
        w->ranges_done = int_value(x, i, 2);
        w->live = is_true(x, i, 3);
        w->has_lease_left = !PQgetisnull(x, i, 4);
        w->lease_left_s = w->has_lease_left ? strtod(PQgetvalue(x, i, 4), NULL) : 0;
        w->worker_row = value(x, i, 5);
        w->has_heartbeat_age = !PQgetisnull(x, i, 6);
        w->heartbeat_age_s = w->has_heartbeat_age ? strtod(PQgetvalue(x, i, 6), NULL) : 0;
        w->rate = value(x, i, 7);
        w->throttled = value(x, i, 8);
        w->last_429_at = value(x, i, 9);
    }
    s->workers = out->list;
    s->nworkers = (size_t)nw;

    /* The rate: the runs of the workers that hold a live lease now (a run's ids_per_s is
     * its IDs settled over its life, written at every flush). */
    if (t->has_runs) {
        buf_reset(&sql);
        if (!buf_printf(&sql,
                        "SELECT coalesce(sum(r.ids_per_s), 0), count(*) FROM %s AS r WHERE "
                        "r.job = $1 AND r.ended_at IS NULL AND r.ids_per_s IS NOT NULL AND "
                        "EXISTS (SELECT 1 FROM %s AS g WHERE g.job = $1 AND g.state = 'leased' "
                        "AND g.lease_expires > now() AND pg_catalog.left(g.owner, "
                        "pg_catalog.length(pg_catalog.left(r.host, 100) || ':' || r.pid || "
                        "':')) = pg_catalog.left(r.host, 100) || ':' || r.pid || ':')",
                        t->runs, qg))
            goto oom;
        if ((r = query(c, sql.data, 1, params, "reading the workers' runs", err, errlen)) == NULL)
            goto done;
        s->rate_runs = (int)int_value(r, 0, 1);
        s->has_rate = s->rate_runs > 0;
        s->ids_per_s = strtod(PQgetvalue(r, 0, 0), NULL);
    }
    ok = true;
    goto done;
oom:
    snprintf(err, errlen, "status: out of memory");
done:
    PQclear(r);
    buf_free(&sql);
    free(qg);
    free(qw);
    return ok;
}

/* Whether the process pid on host is a worker of s with a live lease (its owner id starts
 * with "HOST:PID:", the host cut as src/ranges.c cuts it). */
static bool live_worker(const RunsShared *s, const char *host, long pid)
{
    char prefix[160];
    int n =
        snprintf(prefix, sizeof prefix, "%.100s:%ld:", host && host[0] ? host : "localhost", pid);
    for (size_t i = 0; n > 0 && i < s->nworkers; i++)
        if (s->workers[i].live && s->workers[i].owner != NULL &&
            strncmp(s->workers[i].owner, prefix, (size_t)n) == 0)
            return true;
    return false;
}

static bool write_all(FILE *out, const Buf *b)
{
    return (b->len == 0 || fwrite(b->data, 1, b->len, out) == b->len) && fflush(out) == 0;
}

int status_show(PGconn *c, const StatusOpts *o, FILE *out, char *err, size_t errlen)
{
    int rc = EXIT_RUNTIME;
    Tables t;
    PGresult *rc_ckpt = NULL, *rc_runs = NULL, *rc_fail = NULL;
    RunsRun *runs = NULL;
    RunsReason *reasons = NULL;
    JobLockHolder holder;
    RunsReport rep;
    SharedRead sh;
    char why[512] = "", history[16];
    Buf sql, text;
    memset(&t, 0, sizeof t);
    memset(&rep, 0, sizeof rep);
    memset(&sh, 0, sizeof sh);
    buf_init(&sql, SQL_MAX);
    buf_init(&text, OUTPUT_MAX);
    rep.job = o->job;
    const char *params[2] = {o->job, history};
    snprintf(history, sizeof history, "%d", o->history > 0 ? o->history : 10);

    if (!find_tables(c, &o->names, &t, err, errlen))
        goto done;

    if (t.has_checkpoints) {
        if (!buf_printf(&sql,
                        "SELECT position, paging, finished, rows_loaded, failures, " TS(
                            "started_at") ", " TS("updated_at") " FROM %s WHERE job = $1",
                        t.checkpoints))
            goto oom;
        if ((rc_ckpt = query(c, sql.data, 1, params, "reading the checkpoint", err, errlen)) ==
            NULL)
            goto done;
        if (PQntuples(rc_ckpt) == 1) {
            rep.has_checkpoint = true;
            rep.position = value(rc_ckpt, 0, 0);
            rep.paging = value(rc_ckpt, 0, 1);
            rep.finished = is_true(rc_ckpt, 0, 2);
            rep.ckpt_rows = int_value(rc_ckpt, 0, 3);
            rep.ckpt_failures = int_value(rc_ckpt, 0, 4);
            rep.ckpt_started_at = value(rc_ckpt, 0, 5);
            rep.ckpt_updated_at = value(rc_ckpt, 0, 6);
        }
    }

    if (!joblock_holder(c, o->names.checkpoints, o->job, &holder, err, errlen))
        goto done;
    rep.held = holder.held;
    rep.holder_pid = holder.backend_pid;
    rep.holder_application = holder.application;
    rep.holder_client = holder.client;
    rep.holder_since = holder.since;

    /* Before the runs: a run of a shared worker with a live lease is running. */
    bool shared = false;
    if (!read_shared(c, &o->names, &t, o->job, &sh, &shared, err, errlen))
        goto done;

    if (t.has_runs) {
        buf_reset(&sql);
        if (!buf_printf(&sql,
                        "SELECT run_id, command, host, pid, version, " TS("started_at") ", " TS(
                            "updated_at") ", " TS("ended_at") ", exit_status, state, "
                                                              "rows_loaded, failures, kept, "
                                                              "requests, retries, ids_per_s, "
                                                              "extract(epoch FROM "
                                                              "coalesce(ended_at, updated_at) - "
                                                              "started_at)::float8, "
                                                              "checkpoint_from, checkpoint_to, "
                                                              "failures_by_reason::text, db_pid "
                                                              "FROM %s WHERE job = $1 ORDER BY "
                                                              "started_at DESC, run_id DESC "
                                                              "LIMIT $2::int",
                        t.runs))
            goto oom;
        if ((rc_runs = query(c, sql.data, 2, params, "reading the run history", err, errlen)) ==
            NULL)
            goto done;
        int n = PQntuples(rc_runs);
        if (n > 0 && (runs = calloc((size_t)n, sizeof *runs)) == NULL)
            goto oom;
        for (int i = 0; i < n; i++) {
            RunsRun *u = &runs[i];
            u->run_id = int_value(rc_runs, i, 0);
            u->command = value(rc_runs, i, 1);
            u->host = value(rc_runs, i, 2);
            u->pid = (long)int_value(rc_runs, i, 3);
            u->version = value(rc_runs, i, 4);
            u->started_at = value(rc_runs, i, 5);
            u->updated_at = value(rc_runs, i, 6);
            u->ended_at = value(rc_runs, i, 7);
            u->has_exit = !PQgetisnull(rc_runs, i, 8);
            u->exit_status = (int)int_value(rc_runs, i, 8);
            u->rows_loaded = int_value(rc_runs, i, 10);
            u->failures = int_value(rc_runs, i, 11);
            u->kept = int_value(rc_runs, i, 12);
            u->requests = int_value(rc_runs, i, 13);
            u->retries = int_value(rc_runs, i, 14);
            u->has_rate = !PQgetisnull(rc_runs, i, 15);
            u->ids_per_s = u->has_rate ? strtod(PQgetvalue(rc_runs, i, 15), NULL) : 0;
            u->duration_s = strtod(PQgetvalue(rc_runs, i, 16), NULL);
            u->checkpoint_from = value(rc_runs, i, 17);
            u->checkpoint_to = value(rc_runs, i, 18);
            u->by_reason = value(rc_runs, i, 19);
            /* Runs take the lock before they write their row, so only the newest row can
             * belong to the runner holding it now; an older row with no end was killed. */
            bool holds = i == 0 && holder.held &&
                         runs_holder_is(holder.backend_pid, holder.application,
                                        (long)int_value(rc_runs, i, 20), u->pid, u->host);
            holds = holds || (shared && live_worker(&sh.s, u->host, u->pid));
            u->state = runs_shown_state(value(rc_runs, i, 9), u->ended_at != NULL, holds);
        }
        rep.runs = runs;
        rep.nruns = (size_t)n;
    }

    if (t.has_failures) {
        buf_reset(&sql);
        if (!buf_printf(&sql,
                        "SELECT reason, count(*) FROM %s WHERE job = $1 GROUP BY reason "
                        "ORDER BY reason",
                        t.failures))
            goto oom;
        if ((rc_fail = query(c, sql.data, 1, params, "reading the failure ledger", err, errlen)) ==
            NULL)
            goto done;
        int n = PQntuples(rc_fail);
        if (n > 0 && (reasons = calloc((size_t)n, sizeof *reasons)) == NULL)
            goto oom;
        for (int i = 0; i < n; i++) {
            reasons[i].reason = PQgetvalue(rc_fail, i, 0);
            reasons[i].count = int_value(rc_fail, i, 1);
        }
        rep.reasons = reasons;
        rep.nreasons = (size_t)n;
    }

    if (shared) {
        /* The total: every source ID of the job (its filter), as a plain job's count with
         * nothing settled; the ranges' counts say how many are done. */
        RunsReport all;
        memset(&all, 0, sizeof all);
        count_left(c, &t, o, &all, why, sizeof why);
        sh.s.has_total = all.has_ids_left;
        sh.s.ids_total = all.ids_left;
        rep.ids_left_error = all.ids_left_error;
        rep.shared = &sh.s;
        long long left;
        double fraction, eta;
        rep.has_ids_left = (runs_shared_progress(&sh.s, &left, &fraction, &eta) & 1) != 0;
        rep.ids_left = left;
    } else if (runs_report_ran(&rep))
        count_left(c, &t, o, &rep, why, sizeof why);

    if (!(o->json ? runs_report_json(&rep, &text) : runs_report_text(&rep, &text)))
        goto oom;
    if (!write_all(out, &text)) {
        snprintf(err, errlen, "writing the status: %s", strerror(errno));
        goto done;
    }
    rc = EXIT_OK;
    goto done;
oom:
    snprintf(err, errlen, "status: out of memory");
done:
    PQclear(rc_ckpt);
    PQclear(rc_runs);
    PQclear(rc_fail);
    free(runs);
    free(reasons);
    shared_free(&sh);
    buf_free(&sql);
    buf_free(&text);
    tables_free(&t);
    return rc;
}
