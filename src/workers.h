/* workers: the live workers of a --shared job (names->workers, README "One rate for all").
 * Every worker keeps a row there (job, worker, host, pid, started_at, heartbeat_at, rate,
 * throttled, last_429_at, requests, range_no, estimate, estimate_at), renewed about once a
 * second from the loop without blocking it, on a connection of its own; a row whose
 * heartbeat is older than the lease is a dead worker's. Each beat reads back how many
 * workers are live, and the newest job-wide rate estimate another live worker published at
 * a cut, so that each worker takes its share of the job's --rate, of an announced quota
 * and of a provider limit found by a 429. The Knee of the job's adaptive rate is kept here
 * between ranges (each range runs a scheduler of its own). */
#ifndef PGENRICH_WORKERS_H
#define PGENRICH_WORKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>
#include "compat.h"
#include "db.h"
#include "ratelimit.h"

struct ev_loop;

/* What the running range's scheduler says at a beat: counts since the range started. */
typedef struct WorkerReport {
    double rate;          /* the limit it applies now (requests/s); 0: none */
    long long requests;   /* requests sent */
    long long throttled;  /* 429s seen */
    double last_429_wall; /* Unix seconds of the last one; 0: none */
    int range_no;         /* -1: none */
} WorkerReport;

typedef struct Workers Workers;

/* A worker's row handle on conn (owned from here on, whatever the outcome; connected,
 * no lock needed). Returns NULL when out of memory. */
Workers *workers_new(PGconn *conn, const DbNames *names, const char *job, const char *worker,
                     const char *host, long pid, double lease_seconds) WUR;

/* Write the row (blocking) and read the live workers and the newest estimate. */
bool workers_register(Workers *w, char *err, size_t errlen) WUR;

/* The beat on loop, about once a second (at most a third of the lease) for one range:
 * report(ud) is read before every beat; apply(ud, live, estimate) is called from the loop
 * after every beat with the live workers (>= 1) and, when another worker published a
 * newer estimate since the last call (or one was there at registration), that job-wide
 * rate (requests/s), else 0. apply is also called once at once. */
void workers_start(Workers *w, struct ev_loop *loop, void (*report)(void *ud, WorkerReport *out),
                   void (*apply)(void *ud, int live, double estimate), void *ud);

/* Stop the beat (a beat in flight is waited for, a short blocking read); the range's last
 * report counts in the worker's totals. */
void workers_stop(Workers *w);

/* This worker cut its rate after a 429 to `rate`: publish at once (or right after the beat
 * in flight) the job-wide estimate: rate plus the rates the other live workers apply (one
 * without a limit counted at `rate`), which every worker (this one too) divides by the
 * live workers. */
void workers_publish(Workers *w, double rate);

/* The live workers at the last beat (>= 1). */
int workers_live(const Workers *w);

/* The adaptive rate carried from range to range: whether one was kept (into *k). */
bool workers_knee_get(const Workers *w, Knee *k);
void workers_knee_put(Workers *w, const Knee *k);

/* Close; clean: delete the row first (blocking), so that the others take its share at
 * once. NULL is fine. */
void workers_free(Workers *w, bool clean);

#endif
