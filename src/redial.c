/* redial: one attempt at a time; PQconnectPoll decides which way the socket must become
 * ready next, and the socket itself may change between calls (libpq tries each address of
 * a host in turn), so the watcher is set again at every step. */
#include "redial.h"

#include <ev.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define DELAY_FIRST   0.25 /* seconds before the second attempt, doubled after each */
#define DELAY_MAX     5.0
#define ATTEMPT_LIMIT 10.0 /* seconds one attempt may take (a silent network) */

struct Redial {
    struct ev_loop *loop;
    char *conninfo;
    DbConnOpts opts;
    double timeout, deadline, delay;
    const char *what;
    redial_fn fn;
    void *ud;
    bool active;
    bool in_callback; /* fn is running with a connection: redial_again continues */
    int attempts;
    PGconn *pending; /* the attempt in progress */
    ev_io io;
    ev_timer pause; /* the wait before the next attempt */
    ev_timer limit; /* ATTEMPT_LIMIT of the attempt in progress */
    char err[256];
};

static void attempt(Redial *r);

static void drop_attempt(Redial *r)
{
    ev_io_stop(r->loop, &r->io);
    ev_timer_stop(r->loop, &r->limit);
    if (r->pending)
        PQfinish(r->pending);
    r->pending = NULL;
}

/* The attempt failed with msg: try again after a pause, or give up past the deadline. */
static void failed(Redial *r, const char *msg)
{
    /* msg may be the attempt's own PQerrorMessage: copy it before closing the attempt */
    snprintf(r->err, sizeof r->err, "%.*s", (int)strcspn(msg, "\n"), msg);
    for (char *p = r->err; *p; p++)
        if (*p == '"' || (unsigned char)*p < 0x20)
            *p = '\''; /* libpq quotes the host: keep the log field in one piece */
    drop_attempt(r);
    ev_now_update(r->loop);
    double now = ev_now(r->loop);
    log_warn("event=db_reconnect_failed conn=%s attempt=%d error=\"%s\"", r->what, r->attempts,
             r->err);
    if (now >= r->deadline) {
        r->active = false;
        char err[sizeof r->err];
        memcpy(err, r->err, sizeof err);
        r->fn(r->ud, NULL, err);
        return;
    }
    ev_timer_set(&r->pause, fmin(r->delay, r->deadline - now), 0.);
    ev_timer_start(r->loop, &r->pause);
    r->delay = r->delay * 2 > DELAY_MAX ? DELAY_MAX : r->delay * 2;
}

static void watch(Redial *r, int events)
{
    ev_io_stop(r->loop, &r->io);
    ev_io_set(&r->io, PQsocket(r->pending), events);
    ev_io_start(r->loop, &r->io);
}

static void poll_attempt(Redial *r)
{
    switch (PQconnectPoll(r->pending)) {
    case PGRES_POLLING_READING:
        watch(r, EV_READ);
        return;
    case PGRES_POLLING_WRITING:
        watch(r, EV_WRITE);
        return;
    case PGRES_POLLING_OK: {
        PGconn *c = r->pending;
        char err[256];
        r->pending = NULL;
        drop_attempt(r);
        if (!db_session_setup(c, &r->opts, err, sizeof err)) {
            PQfinish(c);
            failed(r, err);
            return;
        }
        r->active = false;
        log_info("event=db_reconnected conn=%s attempts=%d", r->what, r->attempts);
        r->in_callback = true;
        r->fn(r->ud, c, NULL);
        r->in_callback = false;
        return;
    }
    default:
        failed(r, PQerrorMessage(r->pending));
        return;
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    poll_attempt(w->data);
}

static void on_limit(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    failed(w->data, "the connection attempt timed out");
}

static void on_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    attempt(w->data);
}

static void attempt(Redial *r)
{
    r->attempts++;
    r->pending = db_connect_start(r->conninfo, &r->opts);
    if (r->pending == NULL) {
        failed(r, "out of memory");
        return;
    }
    if (PQstatus(r->pending) == CONNECTION_BAD) {
        failed(r, PQerrorMessage(r->pending));
        return;
    }
    ev_timer_set(&r->limit, ATTEMPT_LIMIT, 0.);
    ev_timer_start(r->loop, &r->limit);
    /* libpq's protocol: after the start, act as if the poll had said "writing". */
    watch(r, EV_WRITE);
}

Redial *redial_new(struct ev_loop *loop, const char *conninfo, const DbConnOpts *opts,
                   double timeout, const char *what, redial_fn fn, void *ud)
{
    Redial *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    if (conninfo != NULL && (r->conninfo = strdup(conninfo)) == NULL) {
        free(r);
        return NULL;
    }
    if (opts != NULL)
        r->opts = *opts;
    r->loop = loop;
    r->timeout = timeout;
    r->what = what;
    r->fn = fn;
    r->ud = ud;
    ev_init(&r->io, on_io);
    r->io.data = r;
    ev_init(&r->pause, on_pause);
    r->pause.data = r;
    ev_init(&r->limit, on_limit);
    r->limit.data = r;
    return r;
}

void redial_start(Redial *r)
{
    if (r->active)
        return;
    r->active = true;
    r->attempts = 0;
    r->delay = DELAY_FIRST;
    ev_now_update(r->loop);
    r->deadline = ev_now(r->loop) + r->timeout;
    log_warn("event=db_reconnecting conn=%s timeout_s=%g", r->what, r->timeout);
    /* from the loop, so that the outcome never comes from inside this call */
    ev_timer_set(&r->pause, 0., 0.);
    ev_timer_start(r->loop, &r->pause);
}

void redial_again(Redial *r, const char *err)
{
    if (!r->active && !r->in_callback) {
        redial_start(r);
        return;
    }
    r->active = true;
    failed(r, err);
}

bool redial_active(const Redial *r)
{
    return r->active;
}

void redial_free(Redial *r)
{
    if (r == NULL)
        return;
    drop_attempt(r);
    ev_timer_stop(r->loop, &r->pause);
    free(r->conninfo);
    free(r);
}
