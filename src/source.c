/* source: pages the source table's key column (or a job's IDs in the failure ledger) over a
 * non-blocking libpq connection watched by one ev_io. One query per page, in text format;
 * the source keeps its own position (the last key seen, or the rows skipped) so the caller
 * only asks for "the next page". */
#include "source.h"
#include "pgwatch.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "db.h"
#include "log.h"

#define SQL_MAX (1024 * 1024)

typedef enum SrcState {
    SRC_IDLE,  /* ready for source_fetch */
    SRC_QUERY, /* a page query is in flight */
    SRC_DEFER, /* a result that needs no query (end page or send error) waits for the loop */
    SRC_END    /* the 0-row page has been delivered */
} SrcState;

struct Source {
    struct ev_loop *loop;
    PGconn *conn;
    ev_io io;       /* PQsocket, EV_READ while a query is in flight, EV_WRITE while flushing */
    int io_events;  /* what io is started with; 0 = stopped */
    ev_timer defer; /* zero-delay: delivers deferred results from the loop, never reentrantly */
    ev_timer slow;  /* a page query still running after DB_SLOW_S seconds is reported */
    double sent_at; /* when the page query in flight was sent */
    source_page_fn fn;
    void *ud;
    Paging paging;
    int page_size;
    char *sql_first; /* keyset from the start: only the fixed parameters */
    char *sql_next;  /* keyset after $N, or offset $1 (N = nfixed + 1) */
    char *fixed[3];  /* ledger: job, then reason if any; table: the filter's values (see
                        filter_clause), then end_key if any; they come before the position */
    int nfixed;
    char *last_key;   /* keyset: text of the last key delivered (NULL: from the start) */
    long long offset; /* offset: rows delivered so far, including the start offset */
    SrcState state;
    bool short_seen;  /* a page came back short: the source is exhausted */
    bool failed;      /* the query in flight failed; err holds why */
    PGresult *result; /* the page being received */
    char err[512];
};

/* "SELECT t.k::text FROM t WHERE t.k <cond> [AND (filter)] ORDER BY t.k LIMIT n <tail>".
 * The key is always qualified: a bare ORDER BY k would name the output column, which is
 * k as text, and a bigint key would then be ordered as text while k > $1 compares numbers. */
static char *build_sql(const char *qkey, const char *qtable, const char *cond, const char *where,
                       const char *skip, int page_size, const char *tail)
{
    Buf b;
    buf_init(&b, SQL_MAX);
    bool ok = buf_printf(&b, "SELECT %s.%s::text FROM %s WHERE %s.%s %s%s", qtable, qkey, qtable,
                         qtable, qkey, cond, skip);
    /* The operator's filter is the one piece of SQL text taken from outside, on purpose.
     * It goes in parentheses on lines of its own so that a trailing -- comment or an OR
     * cannot change the paging condition; the extended protocol refuses a second
     * statement. */
    if (ok && where != NULL && *where != '\0')
        ok = buf_printf(&b, " AND (\n%s\n)", where);
    if (ok)
        ok = buf_printf(&b, " ORDER BY %s.%s LIMIT %d%s", qtable, qkey, page_size, tail);
    if (!ok) {
        buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* The ledger's page: "SELECT f.id::text FROM failures AS f WHERE f.job = $1 [AND f.reason
 * = $2] [AND f.id > $N] ORDER BY f.id LIMIT n", with N the next parameter number. */
static char *build_ledger_sql(const char *qfail, bool by_reason, bool after, int page_size)
{
    Buf b;
    buf_init(&b, SQL_MAX);
    bool ok = buf_printf(&b, "SELECT f.id::text FROM %s AS f WHERE f.job = $1", qfail);
    if (ok && by_reason)
        ok = buf_puts(&b, " AND f.reason = $2");
    if (ok && after)
        ok = buf_printf(&b, " AND f.id > $%d", by_reason ? 3 : 2);
    if (ok)
        ok = buf_printf(&b, " ORDER BY f.id LIMIT %d", page_size);
    if (!ok) {
        buf_free(&b);
        return NULL;
    }
    return b.data;
}

static void arm(Source *s, int events)
{
    pgwatch_arm(s->loop, &s->io, &s->io_events, s->conn, events);
}

/* The query in flight has ended (every result read, or the connection failed): settle the
 * position, then hand the page over. Nothing touches s after fn, which may free it. */
static void finish(Source *s)
{
    char err[sizeof s->err];
    PGresult *page = s->result;
    s->result = NULL;
    arm(s, 0);
    ev_timer_stop(s->loop, &s->slow);
    s->state = SRC_IDLE;
    if (!s->failed && (page == NULL || PQnfields(page) != 1)) {
        s->failed = true;
        snprintf(s->err, sizeof s->err, "source query: unexpected result shape");
    }
    if (!s->failed) {
        int n = PQntuples(page);
        if (n > 0 && s->paging == PAGING_KEYSET) {
            char *k = strdup(PQgetvalue(page, n - 1, 0));
            if (k == NULL) {
                s->failed = true;
                snprintf(s->err, sizeof s->err, "source: out of memory");
            } else {
                free(s->last_key);
                s->last_key = k;
            }
        } else if (s->paging == PAGING_OFFSET) {
            s->offset += n;
        }
        if (!s->failed && n == 0)
            s->state = SRC_END;
        else if (!s->failed && n < s->page_size)
            s->short_seen = true;
    }
    if (s->failed) {
        s->failed = false;
        PQclear(page);
        memcpy(err, s->err, sizeof err);
        s->fn(s->ud, NULL, err);
        return;
    }
    s->fn(s->ud, page, NULL);
}

static void fail_query(Source *s, const char *what)
{
    if (!s->failed) {
        s->failed = true;
        db_error(s->conn, NULL, what, s->err, sizeof s->err);
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    Source *s = w->data;
    if ((revents & EV_READ) && !PQconsumeInput(s->conn)) {
        fail_query(s, "source query");
        finish(s);
        return;
    }
    int events = EV_READ;
    if (s->io_events & EV_WRITE) {
        int f = PQflush(s->conn);
        if (f < 0) {
            fail_query(s, "source query");
            finish(s);
            return;
        }
        if (f == 1)
            events |= EV_WRITE;
    }
    /* Drain every result before delivering, so the connection is idle when fn runs and
     * may send the next query. A page is one PGresult (no single-row mode). */
    while (!PQisBusy(s->conn)) {
        PGresult *r = PQgetResult(s->conn);
        if (r == NULL) {
            finish(s);
            return;
        }
        if (PQresultStatus(r) == PGRES_TUPLES_OK && s->result == NULL && !s->failed) {
            s->result = r;
            continue;
        }
        if (!s->failed) {
            s->failed = true;
            db_error(s->conn, r, "source query", s->err, sizeof s->err);
        }
        PQclear(r);
    }
    if (PQstatus(s->conn) == CONNECTION_BAD) {
        fail_query(s, "source query");
        finish(s);
        return;
    }
    arm(s, events);
}

/* A page query that waits on a lock (ALTER TABLE, VACUUM FULL or LOCK TABLE on the source)
 * would otherwise only show as progress standing still until statement_timeout. */
static void on_slow(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    Source *s = w->data;
    log_warn("event=page_slow waiting_s=%.0f detail=\"the page query has not ended yet: another "
             "session may hold a lock on the table it reads (see pg_locks), or the server is "
             "slow; statement_timeout ends it\"",
             ev_now(loop) - s->sent_at);
}

/* The end page after a short page, or a send error: delivered from the loop. */
static void on_defer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Source *s = w->data;
    char err[sizeof s->err];
    if (s->failed) {
        s->failed = false;
        s->state = SRC_IDLE;
        memcpy(err, s->err, sizeof err);
        s->fn(s->ud, NULL, err);
        return;
    }
    /* A 0-row page shaped like the real ones: one text column. */
    char name[] = "key";
    PGresAttDesc att = {.name = name, .typid = 25 /* text */, .typlen = -1, .atttypmod = -1};
    PGresult *page = PQmakeEmptyPGresult(s->conn, PGRES_TUPLES_OK);
    if (page == NULL || !PQsetResultAttrs(page, 1, &att)) {
        PQclear(page);
        s->state = SRC_IDLE;
        snprintf(err, sizeof err, "source: out of memory");
        s->fn(s->ud, NULL, err);
        return;
    }
    s->state = SRC_END;
    s->fn(s->ud, page, NULL);
}

static void defer(Source *s)
{
    s->state = SRC_DEFER;
    ev_timer_set(&s->defer, 0., 0.);
    ev_timer_start(s->loop, &s->defer);
}

/* Ledger mode: the fixed parameters and both page queries. */
static bool setup_ledger(Source *s, const SourceOpts *opts)
{
    bool by_reason = opts->reason != NULL;
    char *qfail = db_quote_ident(s->conn, opts->failures_table);
    if (qfail == NULL)
        return false;
    s->paging = PAGING_KEYSET;
    s->sql_first = build_ledger_sql(qfail, by_reason, false, opts->page_size);
    s->sql_next = build_ledger_sql(qfail, by_reason, true, opts->page_size);
    free(qfail);
    if (s->sql_first == NULL || s->sql_next == NULL)
        return false;
    if ((s->fixed[s->nfixed++] = strdup(opts->job)) == NULL)
        return false;
    if (by_reason && (s->fixed[s->nfixed++] = strdup(opts->reason)) == NULL)
        return false;
    return opts->start_key == NULL || (s->last_key = strdup(opts->start_key)) != NULL;
}

/* Append one fixed parameter (they come before the position); returns its number, the n of
 * $n, or 0 when out of room or memory. */
static int add_param(Source *s, const char *value)
{
    if (s->nfixed >= (int)ARRAY_LEN(s->fixed) || (s->fixed[s->nfixed] = strdup(value)) == NULL)
        return 0;
    return ++s->nfixed;
}

/* The joins that narrow a keyset pass over the source, each probing a primary key: the
 * target's (id) and the ledger's (job, id), one index lookup per source row read.
 *   resume:        NOT EXISTS (t, fetched_at >= since) AND NOT EXISTS (f, last_seen >= since)
 *   only_missing:  NOT EXISTS (t) AND NOT EXISTS (f)
 *   refresh:       EXISTS (t, fetched_at < now() - age)
 *   both:          NOT EXISTS (t, fetched_at >= now() - age) AND NOT EXISTS (f)
 * then "AND key <= end_key" if set. Names are quoted identifiers; the values become fixed
 * parameters. Returns "" when none applies, NULL on failure (a name the mode needs is
 * missing, or memory). */
static char *filter_clause(Source *s, const SourceOpts *opts, const char *qtable, const char *qkey)
{
    bool missing = opts->only_missing, refresh = opts->refresh_older_than > 0;
    bool resume = !missing && !refresh && opts->skip_since != NULL;
    bool ledger = missing || resume;
    char *qt = NULL, *qf = NULL, age[64];
    int pjob = 0, pwhen = 0, pend = 0;
    Buf b;
    buf_init(&b, SQL_MAX);
    if (!buf_puts(&b, ""))
        goto failed;
    if (missing || refresh || resume) {
        if (opts->target_table == NULL ||
            (ledger && (opts->failures_table == NULL || opts->job == NULL)))
            goto failed;
        if ((qt = db_quote_ident(s->conn, opts->target_table)) == NULL ||
            (ledger && (qf = db_quote_ident(s->conn, opts->failures_table)) == NULL))
            goto failed;
        snprintf(age, sizeof age, "%.0f seconds", opts->refresh_older_than);
        if ((ledger && (pjob = add_param(s, opts->job)) == 0) ||
            ((resume || refresh) && (pwhen = add_param(s, resume ? opts->skip_since : age)) == 0))
            goto failed;
        bool ok = buf_printf(&b,
                             " AND %sEXISTS (SELECT 1 FROM %s AS pgenrich_t WHERE pgenrich_t.id = "
                             "%s.%s",
                             refresh && !missing ? "" : "NOT ", qt, qtable, qkey);
        if (ok && resume)
            ok = buf_printf(&b, " AND pgenrich_t.fetched_at >= $%d::timestamptz", pwhen);
        else if (ok && refresh)
            ok = buf_printf(&b, " AND pgenrich_t.fetched_at %s now() - $%d::interval",
                            missing ? ">=" : "<", pwhen);
        if (!ok || !buf_puts(&b, ")"))
            goto failed;
        if (ledger &&
            (!buf_printf(&b,
                         " AND NOT EXISTS (SELECT 1 FROM %s AS pgenrich_f WHERE pgenrich_f.job = "
                         "$%d AND pgenrich_f.id = %s.%s",
                         qf, pjob, qtable, qkey) ||
             (resume && !buf_printf(&b, " AND pgenrich_f.last_seen >= $%d::timestamptz", pwhen)) ||
             !buf_puts(&b, ")")))
            goto failed;
    }
    if (opts->end_key != NULL && ((pend = add_param(s, opts->end_key)) == 0 ||
                                  !buf_printf(&b, " AND %s.%s <= $%d", qtable, qkey, pend)))
        goto failed;
    free(qt);
    free(qf);
    return b.data;
failed:
    free(qt);
    free(qf);
    buf_free(&b);
    return NULL;
}

/* Source table mode: the page queries over table.key [with the filter]. */
static bool setup_table(Source *s, const SourceOpts *opts)
{
    bool ok = false;
    char *qtable = db_quote_ident(s->conn, opts->table);
    char *qkey = db_quote_ident(s->conn, opts->key);
    char *skip = NULL;
    if (qtable == NULL || qkey == NULL)
        goto done;
    if (opts->paging == PAGING_KEYSET) {
        char after[32];
        if ((skip = filter_clause(s, opts, qtable, qkey)) == NULL)
            goto done;
        snprintf(after, sizeof after, "> $%d", s->nfixed + 1);
        s->sql_first =
            build_sql(qkey, qtable, "IS NOT NULL", opts->where, skip, opts->page_size, "");
        s->sql_next = build_sql(qkey, qtable, after, opts->where, skip, opts->page_size, "");
        if (s->sql_first == NULL)
            goto done;
        if (opts->start_key != NULL && (s->last_key = strdup(opts->start_key)) == NULL)
            goto done;
    } else {
        s->sql_next =
            build_sql(qkey, qtable, "IS NOT NULL", opts->where, "", opts->page_size, " OFFSET $1");
        s->offset = opts->start_offset < 0 ? 0 : opts->start_offset;
    }
    ok = s->sql_next != NULL;
done:
    free(qtable);
    free(qkey);
    free(skip);
    return ok;
}

static void free_queries(Source *s)
{
    free(s->sql_first);
    free(s->sql_next);
    for (int i = 0; i < s->nfixed; i++)
        free(s->fixed[i]);
    free(s->last_key);
}

/* The names the mode needs are there, and the page size makes sense. */
static bool opts_usable(const SourceOpts *opts)
{
    bool named = opts->from_ledger ? opts->failures_table != NULL && opts->job != NULL
                                   : opts->table != NULL && opts->key != NULL;
    return named && opts->page_size > 0;
}

Source *source_new(struct ev_loop *loop, PGconn *conn, const SourceOpts *opts, source_page_fn fn,
                   void *ud)
{
    Source *s = NULL;
    if (!opts_usable(opts) || PQstatus(conn) != CONNECTION_OK || PQsetnonblocking(conn, 1) != 0)
        goto failed;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        goto failed;
    s->loop = loop;
    s->conn = conn;
    s->fn = fn;
    s->ud = ud;
    s->paging = opts->paging;
    s->page_size = opts->page_size;
    s->state = SRC_IDLE;
    if (!(opts->from_ledger ? setup_ledger(s, opts) : setup_table(s, opts)))
        goto failed;
    ev_io_init(&s->io, on_io, PQsocket(conn), EV_READ);
    s->io.data = s;
    ev_timer_init(&s->defer, on_defer, 0., 0.);
    s->defer.data = s;
    ev_timer_init(&s->slow, on_slow, DB_SLOW_S, DB_SLOW_S);
    s->slow.data = s;
    return s;

failed:
    if (s != NULL) {
        free_queries(s);
        free(s);
    }
    PQfinish(conn);
    return NULL;
}

/* The next page's query; its parameters go into params (room for nfixed + 1), their count
 * into *nparams; num holds the offset's text. */
static const char *page_query(const Source *s, const char **params, int *nparams, char num[32])
{
    const char *sql = s->sql_next;
    int n = s->nfixed;
    for (int i = 0; i < s->nfixed; i++)
        params[i] = s->fixed[i];
    if (s->paging == PAGING_OFFSET) {
        snprintf(num, 32, "%lld", s->offset);
        params[n++] = num;
    } else if (s->last_key != NULL) {
        params[n++] = s->last_key;
    } else {
        sql = s->sql_first;
    }
    *nparams = n;
    return sql;
}

bool source_fetch(Source *s)
{
    if (s->state != SRC_IDLE)
        return false;
    if (s->short_seen) {
        defer(s);
        return true;
    }
    char num[32];
    const char *params[ARRAY_LEN(s->fixed) + 1] = {NULL};
    int nparams = 0;
    const char *sql = page_query(s, params, &nparams, num);
    s->failed = false;
    /* Parameter types left to the server: the position takes the key column's type (or
     * bigint for OFFSET), so a text key needs no cast and a bigint key is compared as a
     * number; the ledger's job and reason are text. */
    if (!PQsendQueryParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0)) {
        fail_query(s, "source query");
        defer(s);
        return false;
    }
    int f = PQflush(s->conn);
    if (f < 0) {
        /* The query may be half sent; the connection is unusable either way. */
        fail_query(s, "source query");
        defer(s);
        return false;
    }
    s->state = SRC_QUERY;
    arm(s, f == 1 ? EV_READ | EV_WRITE : EV_READ);
    s->sent_at = ev_now(s->loop);
    ev_timer_set(&s->slow, DB_SLOW_S, DB_SLOW_S);
    ev_timer_start(s->loop, &s->slow);
    return true;
}

bool source_conn_lost(const Source *s)
{
    return PQstatus(s->conn) == CONNECTION_BAD;
}

bool source_attach(Source *s, PGconn *conn)
{
    if (s->state == SRC_QUERY || PQstatus(conn) != CONNECTION_OK ||
        PQsetnonblocking(conn, 1) != 0) {
        PQfinish(conn);
        return false;
    }
    arm(s, 0);
    PQfinish(s->conn);
    s->conn = conn;
    ev_io_set(&s->io, PQsocket(conn), EV_READ);
    return true;
}

char *source_explain(PGconn *conn, const SourceOpts *opts, char *err, size_t errlen)
{
    Source s = {.conn = conn, .paging = opts->paging, .page_size = opts->page_size};
    char num[32];
    const char *params[ARRAY_LEN(s.fixed) + 1] = {NULL};
    int nparams = 0;
    PGresult *r = NULL;
    Buf q, out;
    buf_init(&q, SQL_MAX);
    buf_init(&out, SQL_MAX);
    bool ok = false;
    if (!opts_usable(opts) ||
        !(opts->from_ledger ? setup_ledger(&s, opts) : setup_table(&s, opts))) {
        snprintf(err, errlen, "cannot build the page query (a table name is missing, or memory)");
        goto done;
    }
    const char *sql = page_query(&s, params, &nparams, num);
    if (!buf_printf(&q, "EXPLAIN %s", sql))
        goto oom;
    r = PQexecParams(conn, q.data, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != 1) {
        db_error(conn, r, "EXPLAIN of the page query", err, errlen);
        goto done;
    }
    if (!buf_printf(&out, "%s\n-- parameters:", sql))
        goto oom;
    for (int i = 0; i < nparams; i++)
        if (!buf_printf(&out, " $%d = '%s'", i + 1, params[i]))
            goto oom;
    if (!buf_puts(&out, nparams ? "\n" : " none\n"))
        goto oom;
    for (int i = 0; i < PQntuples(r); i++)
        if (!buf_printf(&out, "%s\n", PQgetvalue(r, i, 0)))
            goto oom;
    ok = true;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
done:
    PQclear(r);
    free_queries(&s);
    buf_free(&q);
    if (!ok)
        buf_free(&out);
    return out.data;
}

bool source_busy(const Source *s)
{
    return s->state == SRC_QUERY || s->state == SRC_DEFER;
}

void source_free(Source *s)
{
    if (s == NULL)
        return;
    arm(s, 0);
    ev_timer_stop(s->loop, &s->defer);
    ev_timer_stop(s->loop, &s->slow);
    if (s->state == SRC_QUERY) {
        /* Blocking but short; the server would otherwise finish the page for nobody. */
        PGcancel *cancel = PQgetCancel(s->conn);
        if (cancel != NULL) {
            char errbuf[256];
            (void)PQcancel(cancel, errbuf, sizeof errbuf);
            PQfreeCancel(cancel);
        }
    }
    PQclear(s->result);
    PQfinish(s->conn);
    free_queries(s);
    free(s);
}
