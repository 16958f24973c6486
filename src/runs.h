/* runs: the pure side of the run history and of `pgenrich status`: a run's state from its
 * exit status, what a row that never ended means, durations, and the status report as
 * text or JSON. No I/O: src/status.c queries the database and fills a RunsReport. */
#ifndef PGENRICH_RUNS_H
#define PGENRICH_RUNS_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"
#include "compat.h"

/* The state recorded when a run ends with exit_status: "done" (0, and 5: done with
 * failures in the ledger), "interrupted" (75: resumable) or "failed" (anything else). */
const char *runs_state_of_exit(int exit_status);

/* The state to show for a run's row: the recorded state once the run has ended; for a row
 * with no end, "running" while this run's runner holds the job's lock, else "killed" (the
 * process died without closing its row: kill -9, a crash, the machine lost). */
const char *runs_shown_state(const char *state, bool ended, bool runner_holds);

/* Whether the session holding the job's lock (backend holder_pid, application_name
 * holder_app) is the runner of a row (db_pid: the backend that held the lock when the row
 * was written; pid and host: the process). The backend decides when it matches; else the
 * application_name joblock sets ("pgenrich pid N on HOST"), so that a runner that had to
 * reconnect is still recognised. holder_app and host may be NULL. */
bool runs_holder_is(long holder_pid, const char *holder_app, long db_pid, long pid,
                    const char *host);

/* seconds as "850ms", "4.2s", "4m05s", "2h03m" or "3d04h"; "-" when negative or not a
 * number. out is always terminated (outlen > 0). */
void runs_format_duration(double seconds, char *out, size_t outlen);

/* One row of the run history, as shown. Strings are borrowed. Timestamps are ISO 8601. */
typedef struct RunsRun {
    long long run_id;
    const char *command; /* "run" or "retry-failed" */
    const char *host;
    long pid;
    const char *version;
    const char *started_at;
    const char *updated_at; /* the last flush (or the start) */
    const char *ended_at;   /* NULL: never ended */
    bool has_exit;
    int exit_status;
    const char *state; /* runs_shown_state */
    long long rows_loaded, failures, kept, requests, retries;
    bool has_rate;
    double ids_per_s;
    double duration_s;           /* start to end, or to the last update when not ended */
    const char *checkpoint_from; /* NULL: the start (or none: retry-failed) */
    const char *checkpoint_to;
    const char *by_reason; /* failure lines by reason, a JSON object's text, or NULL */
} RunsRun;

typedef struct RunsReason {
    const char *reason;
    long long count;
} RunsReason;

/* A worker of a --shared job, as the ranges table knows it (each owner of a range) and, when
 * the workers table exists and has its row, as that row tells. Strings are borrowed. */
typedef struct RunsWorker {
    const char *owner;      /* HOST:PID:RANDOM (src/ranges.h) */
    const char *leased;     /* the range numbers it leases now, "3,7" ("" : none) */
    long long ranges_done;  /* ranges it ended as their last owner */
    bool live;              /* one of its leases has not expired */
    bool has_lease_left;    /* it leases a range: lease_left_s holds */
    double lease_left_s;    /* seconds until its latest lease expires (< 0: expired) */
    const char *worker_row; /* its row in the workers table as a JSON object's text, or NULL */
    bool has_heartbeat_age; /* the row has a heartbeat_at */
    double heartbeat_age_s; /* seconds since it */
    const char *rate;       /* the row's rate, throttled, last_429_at as text, or NULL */
    const char *throttled;
    const char *last_429_at;
} RunsWorker;

/* A leased range. Strings are borrowed. */
typedef struct RunsRange {
    int range_no;
    const char *owner;
    long long fence;
    double lease_left_s;  /* < 0: expired, to be taken over */
    const char *position; /* its checkpoint, or NULL: nothing committed yet */
    long long rows_loaded, failures;
} RunsRange;

/* The part of the report about a job with ranges (run --shared). */
typedef struct RunsShared {
    long long ranges, pending, leased, expired, done; /* expired: leased, lease run out */
    const RunsWorker *workers;                        /* live ones first */
    size_t nworkers;
    bool workers_table; /* the workers table exists (its rows are in workers[]) */
    const RunsRange *leased_ranges;
    size_t nleased;
    long long ids_done; /* the ranges' rows_loaded + failures */
    bool has_total;
    long long ids_total; /* the source's IDs (with the job's filter) */
    bool has_rate;
    double ids_per_s; /* the live workers' runs, summed */
    int rate_runs;    /* how many runs make it */
} RunsShared;

/* Progress of a job with ranges: *left the IDs not yet done (0 once every range is done, or
 * the total less those done, at least 0), *fraction done in [0, 1], *eta_s the seconds
 * left at the current rate (0 when nothing is left). Returns which of them are known: bit
 * 1 left and fraction (a total is known, or every range is done), bit 2 eta (also a rate
 * above 0, or nothing left). */
int runs_shared_progress(const RunsShared *s, long long *left, double *fraction, double *eta_s);

/* What `pgenrich status` shows about one job. Strings are borrowed. */
typedef struct RunsReport {
    const char *job;
    bool has_checkpoint;
    const char *position; /* NULL: nothing settled yet */
    const char *paging;   /* "keyset" or "offset" */
    bool finished;
    long long ckpt_rows, ckpt_failures; /* the checkpoint's running totals */
    const char *ckpt_started_at, *ckpt_updated_at;
    bool has_ids_left;
    long long ids_left;         /* source IDs past the checkpoint */
    const char *ids_left_error; /* why ids_left is unknown, or NULL */
    bool held;                  /* a session holds the job's lock now */
    long holder_pid;            /* its backend */
    const char *holder_application, *holder_client, *holder_since;
    const RunsRun *runs; /* newest first */
    size_t nruns;
    const RunsReason *reasons; /* the ledger's rows of the job, by reason */
    size_t nreasons;
    const RunsShared *shared; /* the job has ranges (run --shared), else NULL */
} RunsReport;

/* Whether the job left any trace: a checkpoint, a run, a failure or ranges. */
bool runs_report_ran(const RunsReport *r);

/* Append the report as human-readable lines to out. Returns false when out is full. */
bool runs_report_text(const RunsReport *r, Buf *out) WUR;

/* Append the report as one JSON object (and a newline) to out: job, ran, checkpoint
 * (object or null), ids_left (number or null), runner (object or null), runs (array,
 * newest first) and failures_by_reason (object) with failures_total; for a job with ranges,
 * shared (object: ranges, workers, leased, progress). Returns false when out is full or out
 * of memory. */
bool runs_report_json(const RunsReport *r, Buf *out) WUR;

#endif
