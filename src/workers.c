/* workers: a --shared worker's row in names->workers and its beat on the loop. Names are
 * quoted identifiers in the SQL text; every value goes as a parameter. */
#include "workers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "buf.h"
#include "log.h"
#include "pgwatch.h"

#define SQL_MAX   (16 * 1024)
#define BEAT_MAX  1.0 /* seconds between beats (at most a third of the lease) */
#define N_PARAMS  11
#define PARAM_LEN 32

struct Workers {
    PGconn *conn;
    char *job, *worker, *host, *sql_beat, *sql_delete;
    char pid[PARAM_LEN], secs[PARAM_LEN];
    double every;
    int live;
    /* totals of the ranges run before this one */
    long long requests, throttled;
    double last_429_wall;
    double publish;    /* an estimate to publish at the next beat; 0: none */
    double applied_at; /* server time (epoch s) of the newest estimate taken (or made) */
    double estimate;   /* a newer estimate to hand to apply; 0: none */
    bool have_knee;
    Knee knee;
    /* the beat, while a range runs */
    struct ev_loop *loop;
    ev_timer tick;
    ev_io io;
    int io_events;
    bool running, busy;
    double last_beat; /* loop time of the last beat sent (the schedule spans the ranges) */
    void (*report)(void *ud, WorkerReport *out);
    void (*apply)(void *ud, int live, double estimate);
    void *ud;
};

static const char *workers_name(const DbNames *names)
{
    return names->workers ? names->workers : "enrich_workers";
}

Workers *workers_new(PGconn *conn, const DbNames *names, const char *job, const char *worker,
                     const char *host, long pid, double lease_seconds)
{
    Workers *w = calloc(1, sizeof *w);
    char *qw = conn ? db_quote_ident(conn, workers_name(names)) : NULL;
    Buf beat, del;
    buf_init(&beat, SQL_MAX);
    buf_init(&del, SQL_MAX);
    if (w == NULL || qw == NULL || (w->job = strdup(job)) == NULL ||
        (w->worker = strdup(worker)) == NULL || (w->host = strdup(host)) == NULL)
        goto failed;
    /* One statement: the upsert, then (from the snapshot before it: the others' rows) the
     * live workers and the newest estimate another live worker published. */
    const char *live = "job = $1 AND worker <> $2 AND heartbeat_at > now() - "
                       "pg_catalog.make_interval(secs => $11::float8)";
    if (!buf_printf(
            &beat,
            "WITH me AS (INSERT INTO %s AS w (job, worker, host, pid, rate, throttled, "
            "requests, last_429_at, range_no, estimate, estimate_at) VALUES ($1, $2, $3, "
            "$4::int, $5::float8, $6::bigint, $7::bigint, "
            "pg_catalog.to_timestamp($8::float8), $9::int, $10::float8 + (SELECT "
            "coalesce(sum(CASE WHEN rate > 0 THEN rate ELSE $10::float8 END), 0) FROM %s "
            "WHERE %s), CASE WHEN $10::float8 IS NULL THEN NULL ELSE now() END) ON CONFLICT (job, "
            "worker) DO "
            "UPDATE SET heartbeat_at = now(), rate = excluded.rate, throttled = "
            "excluded.throttled, requests = excluded.requests, last_429_at = "
            "coalesce(excluded.last_429_at, w.last_429_at), range_no = excluded.range_no, "
            "estimate = coalesce(excluded.estimate, w.estimate), estimate_at = "
            "coalesce(excluded.estimate_at, w.estimate_at) RETURNING w.estimate, w.estimate_at) "
            "SELECT 1 + (SELECT count(*) FROM %s WHERE %s), e.estimate, "
            "extract(epoch FROM e.estimate_at)::float8, (SELECT estimate FROM me), (SELECT "
            "extract(epoch FROM estimate_at)::float8 FROM me) FROM (SELECT 1) AS one LEFT JOIN "
            "LATERAL "
            "(SELECT estimate, estimate_at FROM %s WHERE %s AND estimate_at IS NOT NULL "
            "ORDER BY estimate_at DESC LIMIT 1) AS e ON true",
            qw, qw, live, qw, live, qw, live) ||
        !buf_printf(&del, "DELETE FROM %s WHERE job = $1 AND worker = $2", qw))
        goto failed;
    w->sql_beat = beat.data;
    w->sql_delete = del.data;
    w->conn = conn;
    snprintf(w->pid, sizeof w->pid, "%ld", pid);
    snprintf(w->secs, sizeof w->secs, "%.3f", lease_seconds);
    w->every = lease_seconds / 3 < BEAT_MAX ? lease_seconds / 3 : BEAT_MAX;
    w->live = 1;
    free(qw);
    return w;
failed:
    buf_free(&beat);
    buf_free(&del);
    if (w) {
        free(w->job);
        free(w->worker);
        free(w->host);
    }
    free(w);
    free(qw);
    if (conn)
        PQfinish(conn);
    return NULL;
}

/* The beat's parameters into v (PARAM_LEN bytes each) and p. */
static void beat_params(Workers *w, const WorkerReport *r, char v[][PARAM_LEN], const char **p)
{
    double last = r->last_429_wall > 0 ? r->last_429_wall : w->last_429_wall;
    p[0] = w->job;
    p[1] = w->worker;
    p[2] = w->host;
    p[3] = w->pid;
    snprintf(v[4], PARAM_LEN, "%.3f", r->rate > 0 ? r->rate : 0);
    snprintf(v[5], PARAM_LEN, "%lld", w->throttled + r->throttled);
    snprintf(v[6], PARAM_LEN, "%lld", w->requests + r->requests);
    snprintf(v[7], PARAM_LEN, "%.6f", last);
    snprintf(v[8], PARAM_LEN, "%d", r->range_no);
    snprintf(v[9], PARAM_LEN, "%.3f", w->publish);
    for (int i = 4; i < 10; i++)
        p[i] = v[i];
    if (!(last > 0))
        p[7] = NULL;
    if (r->range_no < 0)
        p[8] = NULL;
    if (!(w->publish > 0))
        p[9] = NULL;
    p[10] = w->secs;
}

/* One row of the beat's answer: the live workers and a newer estimate. */
static void beat_result(Workers *w, const PGresult *r)
{
    if (PQntuples(r) != 1)
        return;
    long long live = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    w->live = live >= 1 && live < 1000000 ? (int)live : 1;
    /* Another live worker's newest estimate, then ours (just published, it is newer than
     * anything before it): each is taken once. */
    for (int col = 1; col <= 3; col += 2) {
        if (PQgetisnull(r, 0, col) || PQgetisnull(r, 0, col + 1))
            continue;
        double est = strtod(PQgetvalue(r, 0, col), NULL);
        double at = strtod(PQgetvalue(r, 0, col + 1), NULL);
        if (at > w->applied_at && est > 0 && isfinite(est)) {
            w->applied_at = at;
            w->estimate = est;
        }
    }
}

bool workers_register(Workers *w, char *err, size_t errlen)
{
    WorkerReport rep = {.range_no = -1};
    char v[N_PARAMS][PARAM_LEN];
    const char *p[N_PARAMS];
    beat_params(w, &rep, v, p);
    PGresult *r = PQexecParams(w->conn, w->sql_beat, N_PARAMS, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error(w->conn, r, "registering the worker", err, errlen);
        PQclear(r);
        return false;
    }
    beat_result(w, r);
    PQclear(r);
    return true;
}

static void beat_send(Workers *w)
{
    if (w->busy || !w->running)
        return;
    if (PQstatus(w->conn) == CONNECTION_BAD) {
        PQreset(w->conn); /* rare; blocking, once a beat at most */
        if (PQstatus(w->conn) != CONNECTION_OK)
            return;
        if (PQsetnonblocking(w->conn, 1) != 0)
            return;
    }
    WorkerReport rep = {.range_no = -1};
    w->report(w->ud, &rep);
    char v[N_PARAMS][PARAM_LEN];
    const char *p[N_PARAMS];
    beat_params(w, &rep, v, p);
    if (!PQsendQueryParams(w->conn, w->sql_beat, N_PARAMS, NULL, p, NULL, NULL, 0)) {
        log_warn("event=worker_beat_failed error=\"%.200s\"", PQerrorMessage(w->conn));
        return;
    }
    w->publish = 0;
    w->busy = true;
    w->last_beat = ev_now(w->loop);
    int f = PQflush(w->conn);
    pgwatch_arm(w->loop, &w->io, &w->io_events, w->conn, f == 1 ? EV_READ | EV_WRITE : EV_READ);
}

/* Read what the server has answered; returns true when the beat is over. */
static bool beat_read(Workers *w)
{
    if (!PQconsumeInput(w->conn)) {
        log_warn("event=worker_beat_failed error=\"%.200s\"", PQerrorMessage(w->conn));
        return true;
    }
    while (!PQisBusy(w->conn)) {
        PGresult *r = PQgetResult(w->conn);
        if (r == NULL)
            return true;
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            beat_result(w, r);
        else {
            char msg[256];
            db_error(w->conn, r, "worker beat", msg, sizeof msg);
            log_warn("event=worker_beat_failed error=\"%s\"", msg);
        }
        PQclear(r);
    }
    return false;
}

static void beat_done(Workers *w)
{
    w->busy = false;
    pgwatch_arm(w->loop, &w->io, &w->io_events, w->conn, 0);
    double est = w->estimate;
    w->estimate = 0;
    w->apply(w->ud, w->live, est);
    if (w->publish > 0)
        beat_send(w); /* a cut made while this beat was in flight */
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    Workers *w = io->data;
    if (revents & EV_WRITE) {
        int f = PQflush(w->conn);
        if (f == 0)
            pgwatch_arm(w->loop, &w->io, &w->io_events, w->conn, EV_READ);
        else if (f < 0) {
            w->busy = false;
            pgwatch_arm(w->loop, &w->io, &w->io_events, w->conn, 0);
            return;
        }
    }
    if ((revents & EV_READ) && w->busy && beat_read(w))
        beat_done(w);
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    beat_send(t->data);
}

void workers_start(Workers *w, struct ev_loop *loop, void (*report)(void *ud, WorkerReport *out),
                   void (*apply)(void *ud, int live, double estimate), void *ud)
{
    w->loop = loop;
    w->report = report;
    w->apply = apply;
    w->ud = ud;
    w->busy = false;
    w->io_events = 0;
    if (PQsetnonblocking(w->conn, 1) != 0)
        log_warn("event=worker_beat_failed error=\"cannot make the connection non-blocking\"");
    ev_io_init(&w->io, on_io, PQsocket(w->conn), EV_READ);
    w->io.data = w;
    /* The beat keeps its pace from range to range: a range shorter than a beat (ranges of a
     * few hundred IDs go by in under a second) must not put the next beat off again. */
    double due = w->last_beat + w->every - ev_now(loop);
    ev_timer_init(&w->tick, on_tick, due > 0.001 ? due : 0.001, w->every);
    w->tick.data = w;
    ev_timer_start(loop, &w->tick);
    w->running = true;
    double est = w->estimate;
    w->estimate = 0;
    apply(ud, w->live, est);
}

void workers_stop(Workers *w)
{
    if (w == NULL || !w->running)
        return;
    ev_timer_stop(w->loop, &w->tick);
    pgwatch_arm(w->loop, &w->io, &w->io_events, w->conn, 0);
    PQsetnonblocking(w->conn, 0);
    if (w->busy) { /* blocking now: drain the answer */
        PGresult *r;
        while ((r = PQgetResult(w->conn)) != NULL) {
            if (PQresultStatus(r) == PGRES_TUPLES_OK)
                beat_result(w, r);
            PQclear(r);
        }
        w->busy = false;
    }
    WorkerReport rep = {.range_no = -1};
    w->report(w->ud, &rep);
    w->requests += rep.requests;
    w->throttled += rep.throttled;
    if (rep.last_429_wall > 0)
        w->last_429_wall = rep.last_429_wall;
    w->running = false;
}

void workers_publish(Workers *w, double rate)
{
    if (!(rate > 0) || !isfinite(rate))
        return;
    w->publish = rate;
    beat_send(w); /* at once, unless a beat is in flight: then right after it */
}

int workers_live(const Workers *w)
{
    return w->live;
}

bool workers_knee_get(const Workers *w, Knee *k)
{
    if (w->have_knee)
        *k = w->knee;
    return w->have_knee;
}

void workers_knee_put(Workers *w, const Knee *k)
{
    w->knee = *k;
    w->have_knee = true;
}

void workers_free(Workers *w, bool clean)
{
    if (w == NULL)
        return;
    workers_stop(w);
    if (clean && PQstatus(w->conn) == CONNECTION_OK) {
        const char *p[2] = {w->job, w->worker};
        PGresult *r = PQexecParams(w->conn, w->sql_delete, 2, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            log_warn("event=worker_row_delete_failed error=\"%.200s\"", PQerrorMessage(w->conn));
        PQclear(r);
    }
    PQfinish(w->conn);
    free(w->job);
    free(w->worker);
    free(w->host);
    free(w->sql_beat);
    free(w->sql_delete);
    free(w);
}
