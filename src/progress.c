/* progress: counters in, one line out. The rate and the ETA are the only state, kept by the
 * caller in a ProgressRate. */
#include "progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "compat.h"

#define WARMUP_MIN 1.0 /* seconds of samples before a rate is shown */

void progress_rate_init(ProgressRate *r, double tau, double now, long long done)
{
    memset(r, 0, sizeof *r);
    r->tau = tau > 0 ? tau : 30.0;
    r->t0 = r->last_t = now;
    r->done0 = r->last_done = done;
}

double progress_rate_update(ProgressRate *r, double now, long long done)
{
    double dt = now - r->last_t;
    double since = now - r->t0;
    if (dt <= 0)
        return since >= WARMUP_MIN ? r->rate : 0;
    if (since <= r->tau) {
        r->rate = (double)(done - r->done0) / since;
    } else {
        double inst = (double)(done - r->last_done) / dt;
        r->rate += (1.0 - exp(-dt / r->tau)) * (inst - r->rate);
    }
    if (r->rate < 0)
        r->rate = 0;
    r->last_t = now;
    r->last_done = done;
    return since >= WARMUP_MIN ? r->rate : 0;
}

long long progress_total(long long estimate, long long read, bool ended)
{
    if (ended)
        return read;
    if (estimate <= 0)
        return -1;
    return estimate > read ? estimate : read;
}

double progress_percent(const ProgressView *v)
{
    if (v->total <= 0)
        return v->ended ? 100.0 : -1;
    double p = 100.0 * (double)v->done / (double)v->total;
    double cap = v->ended && v->done >= v->total ? 100.0 : 99.9;
    return p > cap ? cap : p < 0 ? 0 : p;
}

double progress_eta(const ProgressView *v)
{
    if (v->total <= 0 || v->rate <= 0)
        return v->ended && v->done >= v->total ? 0 : -1;
    long long left = v->total - v->done;
    return left <= 0 ? 0 : (double)left / v->rate;
}

void progress_duration(char *out, size_t cap, double seconds)
{
    if (!(seconds >= 0) || seconds > 1e9) {
        snprintf(out, cap, "--");
        return;
    }
    long long s = llround(seconds);
    if (s < 60)
        snprintf(out, cap, "%llds", s);
    else if (s < 3600)
        snprintf(out, cap, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, cap, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
        snprintf(out, cap, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

void progress_thousands(char *out, size_t cap, long long n)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%lld", n);
    char tmp[48];
    size_t o = 0;
    int start = digits[0] == '-' ? 1 : 0;
    if (start)
        tmp[o++] = '-';
    for (int i = start; i < len; i++) {
        if (i > start && (len - i) % 3 == 0)
            tmp[o++] = ',';
        tmp[o++] = digits[i];
    }
    tmp[o] = '\0';
    snprintf(out, cap, "%s", tmp);
}

/* ---------------------------------------------------------------- terminal line */

enum { SEG_COUNT, SEG_PCT, SEG_ETA, SEG_RATE, SEG_FAIL, SEG_JOB, SEG_FLIGHT, SEG_RETRY, SEGS };

size_t progress_tty_line(char *out, size_t cap, const ProgressView *v, int width)
{
    /* Shown in this order; SEG_* is the order of importance. */
    static const int order[] = {SEG_JOB, SEG_COUNT,  SEG_PCT,   SEG_RATE,
                                SEG_ETA, SEG_FLIGHT, SEG_RETRY, SEG_FAIL};
    char seg[SEGS][160];
    char a[32], b[32];
    memset(seg, 0, sizeof seg);
    if (width < 20)
        width = 80;

    if (v->job != NULL) {
        /* no control character from a job name reaches the terminal */
        snprintf(seg[SEG_JOB], sizeof seg[SEG_JOB], "%.60s", v->job);
        for (char *c = seg[SEG_JOB]; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
    }
    progress_thousands(a, sizeof a, v->done);
    if (v->total > 0) {
        progress_thousands(b, sizeof b, v->total);
        snprintf(seg[SEG_COUNT], sizeof seg[SEG_COUNT], "%s/%s", a, b);
    } else {
        snprintf(seg[SEG_COUNT], sizeof seg[SEG_COUNT], "%s/?", a);
    }
    double pct = progress_percent(v);
    if (pct >= 0)
        snprintf(seg[SEG_PCT], sizeof seg[SEG_PCT], "%.1f%%", pct);
    progress_thousands(a, sizeof a, llround(v->rate));
    snprintf(seg[SEG_RATE], sizeof seg[SEG_RATE], "%s ids/s", v->rate > 0 ? a : "?");
    progress_duration(a, sizeof a, progress_eta(v));
    snprintf(seg[SEG_ETA], sizeof seg[SEG_ETA], "ETA %s", a);
    progress_thousands(a, sizeof a, v->in_flight);
    snprintf(seg[SEG_FLIGHT], sizeof seg[SEG_FLIGHT], "in-flight %s", a);
    progress_thousands(a, sizeof a, v->retries);
    snprintf(seg[SEG_RETRY], sizeof seg[SEG_RETRY], "retries %s", a);
    size_t fl = 0;
    long long fails = 0;
    for (int i = 0; i < v->n_reasons && v->by_reason; i++)
        fails += v->by_reason[i];
    for (int i = 0; i < v->n_reasons && v->by_reason && v->reason_names; i++) {
        if (v->by_reason[i] <= 0)
            continue;
        int n = snprintf(seg[SEG_FAIL] + fl, sizeof seg[SEG_FAIL] - fl, "%s%s=%lld",
                         fl == 0 ? "fail: " : " ", v->reason_names[i], v->by_reason[i]);
        if (n < 0 || (size_t)n >= sizeof seg[SEG_FAIL] - fl) {
            seg[SEG_FAIL][fl] = '\0';
            break;
        }
        fl += (size_t)n;
    }

    /* By importance, each part that still fits is kept: a long failure list gives way
     * but the shorter parts after it may still come. */
    bool keep[SEGS];
    size_t used = 0;
    for (int i = 0; i < SEGS; i++) {
        size_t len = strlen(seg[i]);
        size_t need = len + (used > 0 ? 2 : 0);
        keep[i] = len > 0 && (i == SEG_COUNT || used + need <= (size_t)width - 1);
        if (i == SEG_FAIL && len > 0 && !keep[i]) {
            /* too long by reason: the sum at least */
            snprintf(seg[i], sizeof seg[i], "fail %lld", fails);
            len = strlen(seg[i]);
            need = len + (used > 0 ? 2 : 0);
            keep[i] = used + need <= (size_t)width - 1;
        }
        if (keep[i])
            used += need;
    }

    size_t o = 0, limit = (size_t)width - 1;
    if (cap == 0)
        return 0;
    if (limit > cap - 1)
        limit = cap - 1;
    bool first = true;
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        int i = order[k];
        if (!keep[i])
            continue;
        const char *parts[2] = {first ? "" : "  ", seg[i]};
        for (int p = 0; p < 2; p++)
            for (const char *c = parts[p]; *c && o < limit; c++)
                out[o++] = *c;
        first = false;
    }
    out[o] = '\0';
    return o;
}

/* ---------------------------------------------------------------- log line */

typedef struct Acc {
    char *p;
    size_t len, cap;
} Acc;

static void acc_printf(Acc *a, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void acc_printf(Acc *a, const char *fmt, ...)
{
    if (a->len + 1 >= a->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(a->p + a->len, a->cap - a->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    a->len += (size_t)n < a->cap - a->len ? (size_t)n : a->cap - a->len - 1;
}

size_t progress_log_line(char *out, size_t cap, const ProgressView *v)
{
    Acc a = {out, 0, cap};
    if (cap == 0)
        return 0;
    out[0] = '\0';
    acc_printf(&a, "event=progress");
    if (v->job != NULL) {
        acc_printf(&a, " job=\"");
        for (const char *c = v->job; *c && a.len + 3 < a.cap; c++) {
            if (*c == '"' || *c == '\\')
                acc_printf(&a, "\\%c", *c);
            else
                acc_printf(&a, "%c", (unsigned char)*c < 0x20 ? '?' : *c);
        }
        acc_printf(&a, "\"");
    }
    acc_printf(&a, " done=%lld", v->done);
    if (v->total > 0)
        acc_printf(&a, " total=%lld", v->total);
    else
        acc_printf(&a, " total=unknown");
    double pct = progress_percent(v);
    if (pct >= 0)
        acc_printf(&a, " percent=%.1f", pct);
    else
        acc_printf(&a, " percent=unknown");
    acc_printf(&a, " ids_per_s=%.1f", v->rate);
    double eta = progress_eta(v);
    if (eta >= 0)
        acc_printf(&a, " eta_s=%.0f", eta);
    else
        acc_printf(&a, " eta_s=unknown");
    acc_printf(&a, " elapsed_s=%.1f in_flight=%lld retries=%lld rows_loaded=%lld", v->elapsed,
               v->in_flight, v->retries, v->rows);
    long long fails = 0;
    for (int i = 0; i < v->n_reasons && v->by_reason; i++)
        fails += v->by_reason[i];
    acc_printf(&a, " failures=%lld", fails);
    for (int i = 0; i < v->n_reasons && v->by_reason && v->reason_names; i++)
        acc_printf(&a, " %s=%lld", v->reason_names[i], v->by_reason[i]);
    return a.len;
}
