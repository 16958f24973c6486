/* progress: the job's progress as one line, for a person on a terminal (redrawn in place)
 * or for a log (logfmt, every --progress-interval seconds). Pure: the scheduler samples its
 * counters and the loop's clock and hands them in. */
#ifndef PGENRICH_PROGRESS_H
#define PGENRICH_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>

/* The settle rate, smoothed: the plain mean since the start for the first tau seconds
 * (no early sample dominates), then an exponentially weighted moving average with time
 * constant tau, so that the ETA follows the recent rate rather than the whole run's. */
typedef struct ProgressRate {
    double tau;
    double t0, last_t;
    long long done0, last_done;
    double rate; /* IDs/s; 0 until known */
} ProgressRate;

void progress_rate_init(ProgressRate *r, double tau, double now, long long done);

/* Add a sample (now: seconds on the same clock, not going back; done: IDs settled so far).
 * Returns the smoothed rate in IDs/s, 0 while unknown (under a second of samples). */
double progress_rate_update(ProgressRate *r, double now, long long done);

/* The total to show: the estimate (<= 0: unknown), refined by what was read: once the
 * source has ended it is exactly `read` (every ID of the run), before that never below
 * `read`. Returns <= 0 when unknown. */
long long progress_total(long long estimate, long long read, bool ended);

/* One sample, as the scheduler sees it. */
typedef struct ProgressView {
    const char *job;
    long long done;  /* IDs settled this run */
    long long total; /* progress_total; <= 0: unknown */
    bool ended;      /* total is exact: the source has ended */
    double elapsed;  /* seconds since the run began */
    double rate;     /* progress_rate_update; 0: unknown */
    long long in_flight;
    long long retries;
    long long rows;             /* rows loaded (committed) */
    const long long *by_reason; /* failures by reason (committed), n_reasons of them */
    const char *const *reason_names;
    int n_reasons;
} ProgressView;

/* Percent done, 0..100; below 100 (at most 99.9) until the source has ended; -1 when the
 * total is unknown. */
double progress_percent(const ProgressView *v);

/* Seconds left at the current rate, or -1 when unknown (no rate or no total). */
double progress_eta(const ProgressView *v);

/* "45s", "6m47s", "2h03m", "3d04h"; "--" for a negative value. out: at least 16 bytes. */
void progress_duration(char *out, size_t cap, double seconds);

/* 1234567 as "1,234,567". out: at least 32 bytes. */
void progress_thousands(char *out, size_t cap, long long n);

/* The terminal line, at most width - 1 columns (so the terminal never wraps it; width < 20
 * counts as 80): "job  done/total  pct%  N ids/s  ETA 6m47s  in-flight N  retries N  fail:
 * reason=N ..." (only reasons met; "fail N", their sum, when they do not fit), leaving out the
 * least useful parts when it is too wide. ASCII except for the job name, whose width is taken as
 * its byte length. Returns the length written to out (NUL-terminated; cap >= 1). */
size_t progress_tty_line(char *out, size_t cap, const ProgressView *v, int width);

/* The logfmt message: "event=progress job=\"..\" done=N total=N|unknown percent=P|unknown
 * ids_per_s=R eta_s=S|unknown elapsed_s=E in_flight=N retries=N rows_loaded=N failures=N
 * REASON=N..." (every reason). The job name is written between quotes with '"' and '\\'
 * escaped. Returns the length written (NUL-terminated, cut to cap - 1). */
size_t progress_log_line(char *out, size_t cap, const ProgressView *v);

#endif
