/* scheduler: the job's heart. Keeps a window of source pages, dispatches lookups under
 * the concurrency cap and the rate limit, retries transient failures on loop timers, turns
 * answers into COPY lines, tracks the checkpoint watermark and drives flushes, all on one
 * libev loop. */
#ifndef PGENRICH_SCHEDULER_H
#define PGENRICH_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>
#include "buf.h"
#include "compat.h"
#include "config.h"
#include "db.h"
#include "exitcode.h"
#include "jobfile.h"
#include "provider.h"

struct ev_loop;

typedef struct SchedSetup {
    PGconn *source_conn;           /* connected; ownership passes to the scheduler */
    PGconn *sink_conn;             /* connected; ownership passes to the scheduler */
    const char *start_key;         /* keyset: resume after this key, or NULL */
    long long start_offset;        /* offset paging: rows already settled */
    const char *key_order;         /* the key's type and collation (db_key_type order_out) */
    const char *skip_since;        /* keyset: skip IDs with a target row or a ledger entry of
                                      the job written since then (timestamptz text), or NULL */
    const char *end_key;           /* keyset: read no key above this one, or NULL */
    const char *const *tokens;     /* per provider, parallel to providers: the bearer token
                                      or NULL for none; NULL array: none at all; never logged */
    const ProviderConf *providers; /* the chain, in order; must outlive the scheduler */
    size_t n_providers;
    const char *conninfo;     /* how source and sink connected (NULL: the PG* variables), to
                                 connect again after a loss; copied */
    DbConnOpts db_opts;       /* and with which session settings */
    long long run_id;         /* the run's history row (db_run_begin), or 0: SinkOpts.run_id */
    long long total_estimate; /* IDs this run is expected to read, for the progress line;
                                 <= 0: unknown */
    /* --shared (src/lease.h): the run is one leased range, start_key / end_key its bounds;
     * the flushes move that range's checkpoint under its fence (SinkOpts.range_mode), and a
     * new sink connection takes no job lock (the fence guards the writes). */
    bool range_mode;
    int range_no;
    long long fence;
    /* --shared: the worker's row (src/workers.h; borrowed, outlives the scheduler): the
     * adaptive rate carried from the previous range, and the shares of the job's rate and
     * quotas (scheduler_share_report / scheduler_share_apply); NULL for a plain run. */
    struct Workers *workers;
} SchedSetup;

/* Outcomes that are not a row, in the order of sched_reason_names. */
#define SCHED_REASONS 7

typedef struct SchedStats {
    long long ids_read;
    long long rows_loaded;
    long long failures; /* recorded in the ledger */
    long long by_reason[SCHED_REASONS];
    long long kept; /* failed lookups of IDs with a target row: the row stayed as it was */
    long long retries;
    long long requests;
    double elapsed;
} SchedStats;

/* not_found, no_location, bad_response, rejected, attempts_exhausted, forbidden, unloadable */
extern const char *const sched_reason_names[SCHED_REASONS];

typedef struct Scheduler Scheduler;

/* Build the job: source, sink and fetcher on loop. Takes ownership of both connections
 * whatever the outcome. Returns NULL with a one-line message in err on failure. */
Scheduler *scheduler_new(struct ev_loop *loop, const Config *cfg, const SchedSetup *setup,
                         char *err, size_t errlen) WUR;

/* Run the job to its end; returns one of the EXIT_* statuses. */
int scheduler_run(Scheduler *s);

/* The metrics_http render callback (ud: the Scheduler): append the job's Prometheus
 * exposition, read as of now, to out. Returns false when out's cap is reached. */
bool scheduler_metrics(void *ud, Buf *out) WUR;

/* Stop at once, from the loop (a lost lease): abandon the lookups, commit nothing more and
 * let scheduler_run return code, unless a code was set before. */
void scheduler_abandon(Scheduler *s, int code);

/* --shared (src/workers.h): the worker's beat reads the scheduler's rate and counts
 * (ud: the Scheduler), and hands it the live workers and a newer job-wide estimate (0:
 * none): the job's --rate, announced quotas and the estimate are divided by live. */
struct WorkerReport;
void scheduler_share_report(void *ud, struct WorkerReport *out);
void scheduler_share_apply(void *ud, int live, double estimate);

/* The run's figures, complete once scheduler_run has returned. */
const SchedStats *scheduler_stats(const Scheduler *s);

void scheduler_free(Scheduler *s);

#endif
