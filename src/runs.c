/* runs: state names, durations and the two renderings of the status report. JSON goes
 * through json-c, so every string is escaped by the one library that parses it too. */
#include "runs.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exitcode.h"

const char *runs_state_of_exit(int exit_status)
{
    switch (exit_status) {
    case EXIT_OK:
    case EXIT_FAILURES:
        return "done";
    case EXIT_TEMPFAIL:
        return "interrupted";
    default:
        return "failed";
    }
}

const char *runs_shown_state(const char *state, bool ended, bool runner_holds)
{
    if (ended)
        return state != NULL ? state : "failed";
    return runner_holds ? "running" : "killed";
}

bool runs_holder_is(long holder_pid, const char *holder_app, long db_pid, long pid,
                    const char *host)
{
    if (db_pid > 0 && holder_pid == db_pid)
        return true;
    if (holder_app == NULL || host == NULL || pid <= 0)
        return false;
    char want[128];
    int n = snprintf(want, sizeof want, "pgenrich pid %ld on %s", pid, host);
    /* application_name is cut at 63 bytes by the server: compare what it kept. */
    size_t have = strlen(holder_app);
    return n > 0 && have > 0 && (size_t)n >= have && strncmp(want, holder_app, have) == 0 &&
           ((size_t)n == have || have >= 63);
}

void runs_format_duration(double s, char *out, size_t outlen)
{
    if (!(s >= 0) || !isfinite(s)) {
        snprintf(out, outlen, "-");
        return;
    }
    if (s < 1)
        snprintf(out, outlen, "%dms", (int)(s * 1000));
    else if (s < 60)
        snprintf(out, outlen, "%.1fs", floor(s * 10) / 10);
    else if (s < 3600)
        snprintf(out, outlen, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else if (s < 86400)
        snprintf(out, outlen, "%dh%02dm", (int)(s / 3600), (int)fmod(s, 3600) / 60);
    else
        snprintf(out, outlen, "%.0fd%02dh", floor(s / 86400), (int)fmod(s, 86400) / 3600);
}

bool runs_report_ran(const RunsReport *r)
{
    return r->has_checkpoint || r->nruns > 0 || r->nreasons > 0 || r->shared != NULL;
}

int runs_shared_progress(const RunsShared *s, long long *left, double *fraction, double *eta_s)
{
    int known = 0;
    *left = 0;
    *fraction = 0;
    *eta_s = 0;
    bool all_done = s->ranges > 0 && s->done == s->ranges;
    if (all_done) {
        *fraction = 1;
        known |= 1;
    } else if (s->has_total) {
        long long l = s->ids_total - s->ids_done;
        *left = l > 0 ? l : 0;
        /* Never 100 % while a range is left: at most one window may be counted twice. */
        double f = s->ids_total > 0 ? (double)s->ids_done / (double)s->ids_total : 0;
        *fraction = f > 0.999 ? 0.999 : f < 0 ? 0 : f;
        known |= 1;
    }
    if ((known & 1) && *left == 0 && (all_done || s->has_total))
        known |= 2;
    else if ((known & 1) && s->has_rate && s->ids_per_s > 0 && isfinite(s->ids_per_s)) {
        *eta_s = (double)*left / s->ids_per_s;
        known |= 2;
    }
    return known;
}

/* ---------------------------------------------------------------- text */

/* s with control characters shown as '?', so that a key or a job name cannot break the
 * lines (or drive the terminal). */
static bool put_clean(Buf *b, const char *s)
{
    for (; *s; s++)
        if (!buf_putc(b, (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s))
            return false;
    return true;
}

static bool text_checkpoint(const RunsReport *r, Buf *b)
{
    if (!r->has_checkpoint)
        return buf_puts(b, "checkpoint: none\n");
    bool offset = r->paging != NULL && strcmp(r->paging, "offset") == 0;
    bool ok = buf_puts(b, "checkpoint: ") &&
              (r->position ? buf_puts(b, "after ") && put_clean(b, r->position) &&
                                 (!offset || buf_puts(b, " rows"))
                           : buf_puts(b, "nothing settled yet")) &&
              buf_printf(b,
                         " (%s paging)%s, %lld rows loaded, %lld failures, pass started %s, "
                         "updated %s\n",
                         r->paging ? r->paging : "?", r->finished ? ", finished" : "", r->ckpt_rows,
                         r->ckpt_failures, r->ckpt_started_at ? r->ckpt_started_at : "?",
                         r->ckpt_updated_at ? r->ckpt_updated_at : "?");
    return ok;
}

static bool text_runner(const RunsReport *r, Buf *b)
{
    if (!r->held)
        return buf_puts(b, "runner: none (the job's lock is free)\n");
    return buf_puts(b, "runner: running: ") &&
           put_clean(b, r->holder_application ? r->holder_application : "") &&
           buf_printf(b, " (PostgreSQL backend pid %ld, client %s, connected %s)\n", r->holder_pid,
                      r->holder_client ? r->holder_client : "?",
                      r->holder_since ? r->holder_since : "?");
}

static bool text_run(const RunsRun *u, Buf *b)
{
    char dur[32], rate[32], code[16];
    /* retry-failed pages the ledger: it has no place in the source to show. */
    bool ledger = u->command != NULL && strcmp(u->command, "retry-failed") == 0;
    runs_format_duration(u->duration_s, dur, sizeof dur);
    if (u->has_rate)
        snprintf(rate, sizeof rate, "%.1f", u->ids_per_s);
    else
        snprintf(rate, sizeof rate, "-");
    if (u->has_exit)
        snprintf(code, sizeof code, "%d", u->exit_status);
    else
        snprintf(code, sizeof code, "-");
    return buf_printf(b, "  %-6lld %-12s %-20s %-20s %-9s %-11s %-4s %10lld %9lld %9s  ", u->run_id,
                      u->command ? u->command : "?", u->started_at ? u->started_at : "?",
                      u->ended_at ? u->ended_at : "-", dur, u->state ? u->state : "?", code,
                      u->rows_loaded, u->failures, rate) &&
           (ledger ? buf_puts(b, "(the failure ledger)")
                   : put_clean(b, u->checkpoint_from ? u->checkpoint_from : "(start)") &&
                         buf_puts(b, " -> ") &&
                         put_clean(b, u->checkpoint_to ? u->checkpoint_to : "(start)")) &&
           buf_putc(b, '\n');
}

/* A range list "3,7" as it is, or "-" when empty. */
static const char *or_dash(const char *s)
{
    return s != NULL && *s != '\0' ? s : "-";
}

static bool text_worker(const RunsShared *s, const RunsWorker *w, Buf *b)
{
    char left[32], beat[32];
    if (w->has_lease_left)
        runs_format_duration(w->lease_left_s, left, sizeof left);
    else
        snprintf(left, sizeof left, "-");
    if (w->has_lease_left && w->lease_left_s < 0)
        snprintf(left, sizeof left, "expired");
    bool ok = buf_puts(b, "  ") && put_clean(b, w->owner ? w->owner : "?") &&
              buf_printf(b, "  live=%s leased=%s done=%lld lease_left=%s", w->live ? "yes" : "no",
                         or_dash(w->leased), w->ranges_done, left);
    if (ok && s->workers_table) {
        if (w->worker_row == NULL)
            return buf_puts(b, " (no row in the workers table)\n");
        if (w->has_heartbeat_age)
            runs_format_duration(w->heartbeat_age_s, beat, sizeof beat);
        else
            snprintf(beat, sizeof beat, "-");
        ok = buf_printf(b, " heartbeat=%s ago rate=", beat) && put_clean(b, or_dash(w->rate)) &&
             buf_puts(b, " throttled=") && put_clean(b, or_dash(w->throttled)) &&
             buf_puts(b, " last_429=") && put_clean(b, or_dash(w->last_429_at));
    }
    return ok && buf_putc(b, '\n');
}

static bool text_range(const RunsRange *g, Buf *b)
{
    char left[32];
    if (g->lease_left_s < 0)
        snprintf(left, sizeof left, "expired");
    else
        runs_format_duration(g->lease_left_s, left, sizeof left);
    return buf_printf(b, "  %-6d %-6lld %-10s %10lld %9lld  ", g->range_no, g->fence, left,
                      g->rows_loaded, g->failures) &&
           put_clean(b, g->owner ? g->owner : "?") && buf_puts(b, "  ") &&
           put_clean(b, g->position ? g->position : "(nothing committed yet)") && buf_putc(b, '\n');
}

/* The lines of a job with ranges: the split by state, the progress, workers, leases. */
static bool text_shared(const RunsShared *s, Buf *b)
{
    long long left;
    double fraction, eta;
    char when[32];
    int known = runs_shared_progress(s, &left, &fraction, &eta);
    size_t live = 0;
    for (size_t i = 0; i < s->nworkers; i++)
        live += s->workers[i].live;
    bool ok = buf_printf(b,
                         "ranges: %lld (run --shared): %lld pending, %lld leased (%lld with "
                         "the lease expired), %lld done\n",
                         s->ranges, s->pending, s->leased, s->expired, s->done) &&
              buf_printf(b, "progress: %lld IDs done", s->ids_done);
    if (ok && (known & 1))
        ok = (s->has_total ? buf_printf(b, " of %lld", s->ids_total) : true) &&
             buf_printf(b, " (%.1f %%), %lld left", fraction * 100, left);
    else if (ok)
        ok = buf_puts(b, " of an unknown total");
    if (ok && s->has_rate)
        ok = buf_printf(b, ", %.1f IDs/s (%d live run%s)", s->ids_per_s, s->rate_runs,
                        s->rate_runs == 1 ? "" : "s");
    if (ok && (known & 2)) {
        runs_format_duration(eta, when, sizeof when);
        ok = buf_printf(b, ", ETA %s", when);
    } else if (ok)
        ok = buf_puts(b, ", ETA unknown");
    ok = ok && buf_printf(b, "\nworkers: %zu live of %zu%s\n", live, s->nworkers,
                          s->workers_table ? "" : " (from the ranges' owners)");
    for (size_t i = 0; ok && i < s->nworkers; i++)
        ok = text_worker(s, &s->workers[i], b);
    if (ok && s->nleased > 0)
        ok = buf_printf(b, "leased ranges:\n  %-6s %-6s %-10s %10s %9s  %s\n", "range", "fence",
                        "lease left", "rows", "failures", "owner  checkpoint");
    for (size_t i = 0; ok && i < s->nleased; i++)
        ok = text_range(&s->leased_ranges[i], b);
    return ok;
}

bool runs_report_text(const RunsReport *r, Buf *b)
{
    if (!buf_puts(b, "job: ") || !put_clean(b, r->job) || !buf_putc(b, '\n'))
        return false;
    if (!runs_report_ran(r))
        return buf_puts(b, "this job has never run: no checkpoint, no run history, no "
                           "failures\n") &&
               text_runner(r, b);
    if (!text_checkpoint(r, b))
        return false;
    bool ok = true;
    if (r->shared != NULL)
        ok = text_shared(r->shared, b);
    else if (r->has_ids_left)
        ok = buf_printf(b, "ids left: %lld (source IDs past the checkpoint)\n", r->ids_left);
    else
        ok = buf_puts(b, "ids left: unknown") &&
             (r->ids_left_error == NULL ||
              (buf_puts(b, " (") && put_clean(b, r->ids_left_error) && buf_putc(b, ')'))) &&
             buf_putc(b, '\n');
    if (!ok || !text_runner(r, b))
        return false;
    if (r->nruns == 0)
        ok = buf_puts(b, "runs: none recorded\n");
    else
        ok =
            buf_printf(b, "last %zu run%s (newest first):\n", r->nruns, r->nruns == 1 ? "" : "s") &&
            buf_printf(b, "  %-6s %-12s %-20s %-20s %-9s %-11s %-4s %10s %9s %9s  %s\n", "run",
                       "command", "started", "ended", "duration", "state", "exit", "rows",
                       "failures", "ids/s", "checkpoint from -> to");
    for (size_t i = 0; ok && i < r->nruns; i++)
        ok = text_run(&r->runs[i], b);
    if (!ok)
        return false;
    long long total = 0;
    if (!buf_puts(b, "failures by reason (ledger):"))
        return false;
    for (size_t i = 0; i < r->nreasons; i++) {
        total += r->reasons[i].count;
        if (!buf_putc(b, ' ') || !put_clean(b, r->reasons[i].reason) ||
            !buf_printf(b, "=%lld", r->reasons[i].count))
            return false;
    }
    return r->nreasons == 0 ? buf_puts(b, " none\n") : buf_printf(b, " (%lld in all)\n", total);
}

/* ---------------------------------------------------------------- JSON */

static json_object *jstr(const char *s)
{
    return s != NULL ? json_object_new_string(s) : NULL;
}

/* A number printed with `decimals` places rather than json-c's 17 significant digits. */
static json_object *jnum(double v, int decimals)
{
    char text[64];
    snprintf(text, sizeof text, "%.*f", decimals, v);
    return json_object_new_double_s(v, text);
}

/* Add v under key; false when v should exist but could not be made. */
static bool put(json_object *o, const char *key, json_object *v, bool may_be_null)
{
    if (v == NULL && !may_be_null)
        return false;
    return json_object_object_add(o, key, v) == 0;
}

static json_object *json_checkpoint(const RunsReport *r)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    if (put(o, "position", jstr(r->position), r->position == NULL) &&
        put(o, "paging", jstr(r->paging), r->paging == NULL) &&
        put(o, "finished", json_object_new_boolean(r->finished), false) &&
        put(o, "rows_loaded", json_object_new_int64(r->ckpt_rows), false) &&
        put(o, "failures", json_object_new_int64(r->ckpt_failures), false) &&
        put(o, "started_at", jstr(r->ckpt_started_at), r->ckpt_started_at == NULL) &&
        put(o, "updated_at", jstr(r->ckpt_updated_at), r->ckpt_updated_at == NULL))
        return o;
    json_object_put(o);
    return NULL;
}

static json_object *json_runner(const RunsReport *r)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    if (put(o, "backend_pid", json_object_new_int64(r->holder_pid), false) &&
        put(o, "application", jstr(r->holder_application), r->holder_application == NULL) &&
        put(o, "client", jstr(r->holder_client), r->holder_client == NULL) &&
        put(o, "connected_at", jstr(r->holder_since), r->holder_since == NULL))
        return o;
    json_object_put(o);
    return NULL;
}

static json_object *json_run(const RunsRun *u)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    /* A by_reason that does not parse (it comes from the database's jsonb, so it should)
     * shows as null rather than spoiling the whole document. */
    json_object *reasons = u->by_reason ? json_tokener_parse(u->by_reason) : NULL;
    if (reasons != NULL && !json_object_is_type(reasons, json_type_object)) {
        json_object_put(reasons);
        reasons = NULL;
    }
    bool ok =
        put(o, "run_id", json_object_new_int64(u->run_id), false) &&
        put(o, "command", jstr(u->command), u->command == NULL) &&
        put(o, "host", jstr(u->host), u->host == NULL) &&
        put(o, "pid", json_object_new_int64(u->pid), false) &&
        put(o, "version", jstr(u->version), u->version == NULL) &&
        put(o, "started_at", jstr(u->started_at), u->started_at == NULL) &&
        put(o, "updated_at", jstr(u->updated_at), u->updated_at == NULL) &&
        put(o, "ended_at", jstr(u->ended_at), u->ended_at == NULL) &&
        put(o, "state", jstr(u->state), u->state == NULL) &&
        put(o, "exit_status", u->has_exit ? json_object_new_int(u->exit_status) : NULL,
            !u->has_exit) &&
        put(o, "duration_s", isfinite(u->duration_s) ? jnum(u->duration_s, 3) : NULL,
            !isfinite(u->duration_s)) &&
        put(o, "rows_loaded", json_object_new_int64(u->rows_loaded), false) &&
        put(o, "failures", json_object_new_int64(u->failures), false) &&
        put(o, "kept", json_object_new_int64(u->kept), false) &&
        put(o, "requests", json_object_new_int64(u->requests), false) &&
        put(o, "retries", json_object_new_int64(u->retries), false) &&
        put(o, "ids_per_s", u->has_rate && isfinite(u->ids_per_s) ? jnum(u->ids_per_s, 1) : NULL,
            !(u->has_rate && isfinite(u->ids_per_s))) &&
        put(o, "checkpoint_from", jstr(u->checkpoint_from), u->checkpoint_from == NULL) &&
        put(o, "checkpoint_to", jstr(u->checkpoint_to), u->checkpoint_to == NULL);
    if (ok) {
        ok = put(o, "failures_by_reason", reasons, true);
        reasons = NULL; /* owned by o even when the add failed */
    }
    json_object_put(reasons);
    if (ok)
        return o;
    json_object_put(o);
    return NULL;
}

/* "3,7" as [3, 7]. */
static json_object *json_range_list(const char *list)
{
    json_object *a = json_object_new_array();
    const char *p = list ? list : "";
    while (a != NULL && *p != '\0') {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || json_object_array_add(a, json_object_new_int((int)v)) != 0) {
            json_object_put(a);
            return NULL;
        }
        p = *end == ',' ? end + 1 : end;
    }
    return a;
}

static json_object *json_worker(const RunsWorker *w)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    json_object *row = w->worker_row ? json_tokener_parse(w->worker_row) : NULL;
    if (row != NULL && !json_object_is_type(row, json_type_object)) {
        json_object_put(row);
        row = NULL;
    }
    bool ok = put(o, "owner", jstr(w->owner), w->owner == NULL) &&
              put(o, "live", json_object_new_boolean(w->live), false) &&
              put(o, "leased_ranges", json_range_list(w->leased), false) &&
              put(o, "ranges_done", json_object_new_int64(w->ranges_done), false) &&
              put(o, "lease_left_s", w->has_lease_left ? jnum(w->lease_left_s, 3) : NULL,
                  !w->has_lease_left) &&
              put(o, "heartbeat_age_s", w->has_heartbeat_age ? jnum(w->heartbeat_age_s, 3) : NULL,
                  !w->has_heartbeat_age);
    if (ok) {
        ok = put(o, "worker_row", row, true);
        row = NULL; /* owned by o even when the add failed */
    }
    json_object_put(row);
    if (ok)
        return o;
    json_object_put(o);
    return NULL;
}

static json_object *json_range(const RunsRange *g)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    if (put(o, "range_no", json_object_new_int(g->range_no), false) &&
        put(o, "owner", jstr(g->owner), g->owner == NULL) &&
        put(o, "fence", json_object_new_int64(g->fence), false) &&
        put(o, "lease_left_s", jnum(g->lease_left_s, 3), false) &&
        put(o, "expired", json_object_new_boolean(g->lease_left_s < 0), false) &&
        put(o, "checkpoint", jstr(g->position), g->position == NULL) &&
        put(o, "rows_loaded", json_object_new_int64(g->rows_loaded), false) &&
        put(o, "failures", json_object_new_int64(g->failures), false))
        return o;
    json_object_put(o);
    return NULL;
}

static json_object *json_shared(const RunsShared *s)
{
    json_object *o = json_object_new_object(), *a = NULL, *p = NULL, *g = NULL;
    long long left;
    double fraction, eta;
    int known = runs_shared_progress(s, &left, &fraction, &eta);
    size_t live = 0;
    if (o == NULL)
        return NULL;
    bool ok = (g = json_object_new_object()) != NULL;
    ok = ok && put(g, "total", json_object_new_int64(s->ranges), false) &&
         put(g, "pending", json_object_new_int64(s->pending), false) &&
         put(g, "leased", json_object_new_int64(s->leased), false) &&
         put(g, "expired", json_object_new_int64(s->expired), false) &&
         put(g, "done", json_object_new_int64(s->done), false);
    if (g != NULL)
        ok = put(o, "ranges", g, false) && ok;
    if (ok && (ok = (a = json_object_new_array()) != NULL)) {
        for (size_t i = 0; ok && i < s->nworkers; i++) {
            live += s->workers[i].live;
            json_object *w = json_worker(&s->workers[i]);
            ok = w != NULL && json_object_array_add(a, w) == 0;
        }
        ok = put(o, "workers", a, false) && ok;
    }
    ok = ok && put(o, "workers_live", json_object_new_int64((long long)live), false) &&
         put(o, "workers_table", json_object_new_boolean(s->workers_table), false);
    if (ok && (ok = (a = json_object_new_array()) != NULL)) {
        for (size_t i = 0; ok && i < s->nleased; i++) {
            json_object *w = json_range(&s->leased_ranges[i]);
            ok = w != NULL && json_object_array_add(a, w) == 0;
        }
        ok = put(o, "leased", a, false) && ok;
    }
    bool rate = s->has_rate && isfinite(s->ids_per_s);
    if (ok && (ok = (p = json_object_new_object()) != NULL)) {
        ok = put(p, "ids_done", json_object_new_int64(s->ids_done), false) &&
             put(p, "ids_total", s->has_total ? json_object_new_int64(s->ids_total) : NULL,
                 !s->has_total) &&
             put(p, "ids_left", known & 1 ? json_object_new_int64(left) : NULL, !(known & 1)) &&
             put(p, "fraction", known & 1 ? jnum(fraction, 4) : NULL, !(known & 1)) &&
             put(p, "ids_per_s", rate ? jnum(s->ids_per_s, 1) : NULL, !rate) &&
             put(p, "rate_runs", json_object_new_int(s->rate_runs), false) &&
             put(p, "eta_s", known & 2 ? jnum(eta, 1) : NULL, !(known & 2));
        ok = put(o, "progress", p, false) && ok;
    }
    if (ok)
        return o;
    json_object_put(o);
    return NULL;
}

static json_object *json_report(const RunsReport *r)
{
    json_object *o = json_object_new_object(), *runs = NULL, *reasons = NULL;
    if (o == NULL)
        return NULL;
    bool ok = put(o, "job", jstr(r->job), false) &&
              put(o, "ran", json_object_new_boolean(runs_report_ran(r)), false);
    if (ok) {
        json_object *c = r->has_checkpoint ? json_checkpoint(r) : NULL;
        ok = put(o, "checkpoint", c, !r->has_checkpoint);
    }
    ok = ok && put(o, "ids_left", r->has_ids_left ? json_object_new_int64(r->ids_left) : NULL,
                   !r->has_ids_left);
    if (ok && !r->has_ids_left && r->ids_left_error != NULL)
        ok = put(o, "ids_left_error", jstr(r->ids_left_error), false);
    if (ok) {
        json_object *h = r->held ? json_runner(r) : NULL;
        ok = put(o, "runner", h, !r->held);
    }
    if (ok && (ok = (runs = json_object_new_array()) != NULL)) {
        for (size_t i = 0; ok && i < r->nruns; i++) {
            json_object *u = json_run(&r->runs[i]);
            ok = u != NULL && json_object_array_add(runs, u) == 0;
        }
        ok = put(o, "runs", runs, false) && ok;
    }
    long long total = 0;
    if (ok && (ok = (reasons = json_object_new_object()) != NULL)) {
        for (size_t i = 0; ok && i < r->nreasons; i++) {
            total += r->reasons[i].count;
            ok = put(reasons, r->reasons[i].reason, json_object_new_int64(r->reasons[i].count),
                     false);
        }
        ok = put(o, "failures_by_reason", reasons, false) && ok;
    }
    ok = ok && put(o, "failures_total", json_object_new_int64(total), false);
    if (ok && r->shared != NULL) {
        json_object *s = json_shared(r->shared);
        ok = put(o, "shared", s, false);
    }
    if (ok)
        return o;
    json_object_put(o);
    return NULL;
}

bool runs_report_json(const RunsReport *r, Buf *out)
{
    json_object *o = json_report(r);
    if (o == NULL)
        return false;
    const char *s =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    bool ok = s != NULL && buf_puts(out, s) && buf_putc(out, '\n');
    json_object_put(o);
    return ok;
}
