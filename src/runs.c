/* runs: state names, durations and the two renderings of the status report. JSON goes
 * through json-c, so every string is escaped by the one library that parses it too. */
#include "runs.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
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
    return r->has_checkpoint || r->nruns > 0 || r->nreasons > 0;
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
    if (r->has_ids_left)
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
