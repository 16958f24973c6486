/* scheduler: pages of IDs come in from the source into the window, lookups go out through
 * the fetcher under the concurrency cap and the token bucket, answers become COPY lines in
 * the outbox's active batch, and the scheduler decides when the outbox commits a batch
 * together with the window's checkpoint position. Everything happens in callbacks on one
 * libev loop; nothing here blocks. */
#include "scheduler.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "batch.h"
#include "breaker.h"
#include "compat.h"
#include "buf.h"
#include "connerr.h"
#include "copyenc.h"
#include "fetcher.h"
#include "jobfile.h"
#include "joblock.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "progress.h"
#include "quota.h"
#include "ratelimit.h"
#include "redial.h"
#include "retry.h"
#include "sink.h"
#include "source.h"
#include "utf8.h"
#include "window.h"
#include "workers.h"

_Static_assert(METRICS_PROVIDERS_MAX >= PROVIDERS_MAX && METRICS_NAME_MAX > PROVIDER_NAME_MAX,
               "the metrics registry holds every provider of a chain under its whole name");

const char *const sched_reason_names[SCHED_REASONS] = {
    REASON_NOT_FOUND, REASON_NO_LOCATION, REASON_BAD_RESPONSE, REASON_REJECTED,
    REASON_EXHAUSTED, REASON_FORBIDDEN,   REASON_UNLOADABLE};

#define LIVE_INTERVAL        0.25 /* seconds between redraws of the terminal's progress line */
#define RATE_TAU             30.0 /* seconds: the progress rate's moving average */
#define BREAKER_WINDOW       10.0 /* seconds of outcomes a breaker weighs */
#define BREAKER_MIN_REQUESTS 20   /* outcomes needed before a breaker may open */
#define BREAKER_THRESHOLD    0.5  /* share of transient failures that opens it */
#define BREAKER_COOLDOWN     1.0  /* first pause, doubled per failed probe ... */
#define BREAKER_COOLDOWN_MAX 60.0 /* ... up to this */
#define BATCH_ID_MAX         8192 /* bytes of an ID a batch body carries */

typedef struct Lookup Lookup;
struct Lookup {
    Scheduler *s;
    WinSlot slot;       /* its ID in the window */
    int prov;           /* index in the provider chain */
    int attempts;       /* with the current provider */
    int total_attempts; /* over the whole chain */
    int unreached;      /* its latest attempts with the current provider that never reached
                           it (connerr_unreachable), in a row: an outage gives them back */
    long last_status;
    double sent_at;           /* loop time the current request was started */
    uint64_t quota_seq;       /* its number in the provider's quota pacing */
    const char *first_reason; /* the first provider's final failure, while the chain goes on */
    long first_status;
    ev_timer retry;
    Lookup *prev, *next; /* the list of live lookups */
    Lookup *ready_next;  /* the provider's queue of lookups due now */
    char last_error[OUTBOX_ERROR_MAX];
    char first_error[OUTBOX_ERROR_MAX];
};

/* A provider of the chain at run time. */
typedef struct Prov {
    const ProviderConf *conf;
    int profile; /* the fetcher's header profile */
    Breaker breaker;
    Lookup *ready_head, *ready_tail;
    size_t in_flight;
    /* 403s: one is "this ID is forbidden to you", a run of --forbidden-threshold with no
     * other answer between them is "your key is refused". The lookups of a run are held,
     * unsettled, until an answer tells which: another kind of answer releases them as
     * forbidden, the threshold stops the job with them unrecorded. */
    int refusals;   /* consecutive 403s */
    Lookup *held;   /* their lookups, linked through ready_next */
    Batcher *batch; /* kind = batch: its pending batch and calls; else NULL */
    /* Reachability (--provider-down-timeout): an HTTP answer of any status proves it. */
    bool answered;        /* an answer came this run: a lost host name is a hiccup now */
    double last_answer;   /* loop time of the last answer, or the run's start */
    double failing_since; /* first failure below HTTP since the last answer; 0: none */
    ConnFault last_fault; /* the last failure below HTTP, and curl's words for it */
    char last_error[160];
    char host[256];         /* of its URL template, for messages */
    char proxy[256];        /* HOST:PORT of the proxy its requests surely go through
                               (explicit, or from the environment with no no_proxy), or "" */
    const char *proxy_from; /* where that proxy was set, for hints */
    Quota quota;            /* what it announces of its quota, and the pacing from it */
    /* Slow start: how many requests it may have in flight, from RAMP_START up by one per
     * healthy answer (twice as many every round trip, as TCP's slow start), and at least
     * twice as many every RAMP_DOUBLE seconds from its first request (so that a slow
     * provider is not held back for many of its long round trips), so that a run does not
     * open with --concurrency requests at once against a provider whose limit it does not
     * know yet: a token bucket takes its burst of them and refuses the rest. It ends (0) at
     * the first 429, where the adaptive rate or the quota pacing takes over, or at
     * --concurrency. */
    double ramp;
    double ramp_t0; /* loop time of its first request; 0 before */
} Prov;

#define RAMP_START  8
#define RAMP_DOUBLE 0.5

typedef enum Phase { PH_RUNNING, PH_FINISHING, PH_STOPPING, PH_DONE } Phase;

struct Scheduler {
    struct ev_loop *loop;
    const Config *cfg;
    /* --shared: the worker's row, 429s seen and the last one's time (Unix s); the range */
    Workers *workers;
    long long throttled_seen;
    double last_429_wall;
    int range_no;
    Source *source;
    Outbox *outbox;
    Sink *sink; /* the outbox's, for sink_set_run_counts */
    Fetcher *fetcher;
    RateLimit rl;
    Window *win;

    Prov provs[PROVIDERS_MAX];
    int n_provs;
    bool from_ledger; /* retry-failed: IDs from the ledger, no checkpoint */
    Knee knee;
    Buf url;
    Buf body;
    Buf scratch;
    ProviderParser *parser; /* one json-c tokener for every single answer */

    Lookup *live;  /* every lookup not yet settled */
    Lookup *spare; /* settled lookups kept for the next IDs (linked by next) */
    size_t live_count;

    ev_timer wake;       /* rate limit or breaker pause */
    ev_timer flush_tick; /* flush-interval */
    ev_timer progress;   /* logfmt progress lines */
    ev_timer live_tick;  /* the terminal's progress line */
    ev_signal sigint, sigterm, sighup;
    int signals;
    bool draining;      /* after the first signal: no new IDs, in-flight ones may finish */
    ev_timer drain;     /* --drain-timeout */
    ev_timer down_tick; /* --provider-down-timeout */
    Redial *sink_redial, *src_redial; /* a lost connection being replaced */

    Phase phase;
    bool final_sent; /* the flush that marks the job done has started */
    bool range_mode; /* SchedSetup.range_mode */
    int exit_code;
    uint64_t rng;
    double started;
    SchedStats st;

    Metrics metrics;
    bool numeric_position; /* the checkpoint position is a number (metrics) */
    bool flush_has_pos;    /* the flush under way moves it to flush_pos */
    double flush_pos;
    double flush_started;     /* ev_time() */
    long long settled;        /* IDs settled this run */
    long long total_estimate; /* SchedSetup's */
    ProgressRate prate;
};

static void pump(Scheduler *s);
static void maybe_flush(Scheduler *s, bool force);
static void stop_job(Scheduler *s, int code);
static void arm_wake(Scheduler *s, double wait);

/* ---------------------------------------------------------------- small helpers */

static double rand01(Scheduler *s)
{
    /* xorshift64*: jitter only needs to be cheap and well spread */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (double)((s->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* ---------------------------------------------------------------- window of pages */

/* Park the few slow IDs that hold the oldest pages back (window_park). Returns whether
 * the window has room for fresh IDs again. */
static bool maybe_park(Scheduler *s)
{
    bool parked = false;
    if (s->phase == PH_RUNNING && !window_park(s->win, &parked)) {
        stop_job(s, EXIT_RUNTIME);
        return false;
    }
    return parked;
}

static void maybe_fetch_page(Scheduler *s)
{
    if (s->phase != PH_RUNNING || s->draining || window_ended(s->win) || source_busy(s->source) ||
        redial_active(s->src_redial))
        return;
    if (!window_wants_page(s->win))
        return;
    if (!source_fetch(s->source) && !source_busy(s->source) && !window_ended(s->win))
        log_debug("event=source_fetch_refused");
}

static void on_page(void *ud, PGresult *res, const char *err)
{
    Scheduler *s = ud;
    if (res == NULL) {
        if (source_conn_lost(s->source) && s->phase == PH_RUNNING) {
            /* The page is asked again once reconnected; lookups go on meanwhile. */
            log_warn("event=db_lost conn=source error=\"%s\"", err ? err : "unknown");
            redial_start(s->src_redial);
            return;
        }
        log_error("event=source_failed error=\"%s\"", err ? err : "unknown");
        stop_job(s, EXIT_RUNTIME);
        return;
    }
    int n = PQntuples(res);
    if (n == 0 || s->phase != PH_RUNNING) {
        if (n == 0)
            window_end(s->win);
        PQclear(res);
        pump(s);
        return;
    }
    if (!window_add_page(s->win, res)) {
        stop_job(s, EXIT_RUNTIME);
        return;
    }
    s->st.ids_read += n;
    metrics_page(&s->metrics, n, ev_now(s->loop));
    pump(s);
}

/* A key type whose values are numbers, as db_key_type spells it. */
static bool numeric_type(const char *type)
{
    return type != NULL && (strcmp(type, "smallint") == 0 || strcmp(type, "integer") == 0 ||
                            strcmp(type, "bigint") == 0 || strncmp(type, "numeric", 7) == 0);
}

/* The value of a checkpoint position, when positions are numbers (offset paging, an
 * integer or numeric key); false for NULL and for other keys. */
static bool position_number(const Scheduler *s, const char *position, double *out)
{
    char *end;
    if (!s->numeric_position || position == NULL || position[0] == '\0')
        return false;
    *out = strtod(position, &end);
    return *end == '\0';
}

/* The checkpoint position for everything settled so far, or NULL if nothing is. */
static char *current_position(Scheduler *s)
{
    if (s->from_ledger)
        return NULL; /* retry-failed leaves the job's checkpoint alone */
    return window_position(s->win);
}

/* ---------------------------------------------------------------- lookups */

static Lookup *lookup_new(Scheduler *s)
{
    Lookup *l = s->spare;
    if (l != NULL) {
        s->spare = l->next;
        memset(l, 0, sizeof *l);
    } else if ((l = calloc(1, sizeof *l)) == NULL) {
        return NULL;
    }
    l->s = s;
    window_take(s->win, &l->slot);
    ev_init(&l->retry, NULL);
    l->next = s->live;
    if (s->live)
        s->live->prev = l;
    s->live = l;
    s->live_count++;
    return l;
}

static void lookup_free(Scheduler *s, Lookup *l)
{
    ev_timer_stop(s->loop, &l->retry);
    window_drop(s->win, &l->slot);
    if (l->prev)
        l->prev->next = l->next;
    else
        s->live = l->next;
    if (l->next)
        l->next->prev = l->prev;
    s->live_count--;
    if (!REUSE_OBJECTS) {
        free(l);
        return;
    }
    l->next = s->spare; /* at most as many as were ever live at once */
    s->spare = l;
}

static void settle(Scheduler *s, Lookup *l)
{
    window_settle(s->win, &l->slot);
    s->settled++;
    lookup_free(s, l);
    if (!window_release(s->win))
        stop_job(s, EXIT_RUNTIME);
    if (outbox_pending(s->outbox) >= (size_t)s->cfg->flush_rows)
        maybe_flush(s, false);
}

static bool put_id(Buf *b, const Lookup *l)
{
    int len;
    const char *id = window_id(&l->slot, &len);
    return copyenc_text(b, id, (size_t)len) && buf_putc(b, '\t');
}

static void emit_row(Scheduler *s, Lookup *l, const ProviderRow *row)
{
    Buf *b = outbox_rows(s->outbox);
    size_t mark = b->len;
    const char *name = s->provs[l->prov].conf->name;
    bool ok = put_id(b, l);
    for (int c = 0; ok && c < COL_TEXT_COUNT; c++)
        ok = copyenc_text(b, row->text[c], row->len[c]) && buf_putc(b, '\t');
    for (int c = 0; ok && c < 2; c++) {
        ok = row->has_coord[c] ? copyenc_double(b, row->coord[c]) : copyenc_text(b, NULL, 0);
        ok = ok && buf_putc(b, '\t');
    }
    ok = ok && copyenc_text(b, name, strlen(name)) && buf_putc(b, '\n');
    if (!ok) {
        buf_truncate(b, mark);
        log_error("event=buffer_full detail=\"flush buffer cap reached\"");
        stop_job(s, EXIT_RUNTIME);
        return;
    }
    outbox_count_row(s->outbox);
    settle(s, l);
}

static void emit_failure(Scheduler *s, Lookup *l, const char *reason, long status,
                         const char *error)
{
    Buf *b = outbox_fails(s->outbox);
    size_t mark = b->len;
    size_t elen = strnlen(error, OUTBOX_ERROR_MAX);
    bool ok = put_id(b, l) && copyenc_text(b, reason, strlen(reason)) && buf_putc(b, '\t');
    ok = ok && (status > 0 ? copyenc_int(b, status) : copyenc_text(b, NULL, 0));
    ok = ok && buf_putc(b, '\t') && copyenc_int(b, l->total_attempts) && buf_putc(b, '\t');
    ok = ok && copyenc_text(b, error, elen) && buf_putc(b, '\n');
    if (!ok) {
        buf_truncate(b, mark);
        log_error("event=buffer_full detail=\"flush buffer cap reached\"");
        stop_job(s, EXIT_RUNTIME);
        return;
    }
    outbox_count_failure(s->outbox, reason);
    if (log_level >= LOG_DEBUG) {
        int len;
        const char *id = window_id(&l->slot, &len);
        log_debug("event=id_failed id=\"%.*s\" reason=%s status=%ld attempts=%d error=\"%.*s\"",
                  len > 200 ? 200 : len, id, reason, status, l->total_attempts, (int)elen, error);
    }
    settle(s, l);
}

/* Append n strings to the text in dst (cap bytes with its NUL) as valid UTF-8 that is cut,
 * when it does not fit, on a character boundary: whatever the strings hold (a header
 * value, a curl message), the ledger can take it. */
static void text_append(char *dst, size_t cap, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    size_t used = strlen(dst);
    for (int i = 0; i < n && used + 1 < cap; i++) {
        const char *t = va_arg(ap, const char *);
        used += utf8_sanitize(dst + used, cap - used, t, strlen(t));
    }
    va_end(ap);
}

static void enqueue_ready(Scheduler *s, Lookup *l)
{
    Prov *p = &s->provs[l->prov];
    l->ready_next = NULL;
    if (p->ready_tail)
        p->ready_tail->ready_next = l;
    else
        p->ready_head = l;
    p->ready_tail = l;
}

/* The lookup ended without a row at its current provider: try the next one of the chain,
 * or record the failure. The first provider's reason and status are the ones recorded;
 * last_error tells what each provider said. */
static void final_failure(Scheduler *s, Lookup *l, const char *reason, long status,
                          const char *error)
{
    const char *pname = s->provs[l->prov].conf->name;
    char *e = l->first_error;
    if (l->first_reason == NULL) {
        l->first_reason = reason;
        l->first_status = status;
        e[0] = '\0';
        if (s->n_provs > 1)
            text_append(e, sizeof l->first_error, 3, pname, ": ", error);
        else
            text_append(e, sizeof l->first_error, 1, error);
    } else {
        text_append(e, sizeof l->first_error, 6, "; ", pname, ": ", reason, " ", error);
    }
    if (l->prov + 1 < s->n_provs) {
        l->prov++;
        l->attempts = 0;
        l->unreached = 0;
        enqueue_ready(s, l);
        return;
    }
    emit_failure(s, l, l->first_reason, l->first_status, l->first_error);
}

static void on_retry_due(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Lookup *l = w->data;
    enqueue_ready(l->s, l);
    pump(l->s);
}

/* Retry l after a backoff, and not before retry_after seconds (0: none asked): that is a
 * floor for this ID; the job as a whole slows through the adaptive rate. */
static void schedule_retry(Scheduler *s, Lookup *l, double retry_after)
{
    double delay = retry_backoff(l->attempts, s->cfg->backoff_base, s->cfg->backoff_cap, rand01(s));
    if (retry_after > delay)
        delay = retry_after;
    s->st.retries++;
    metrics_retry(&s->metrics, l->prov);
    if (log_level >= LOG_DEBUG) {
        int len;
        const char *id = window_id(&l->slot, &len);
        log_debug("event=retry id=\"%.*s\" provider=%s attempt=%d delay_s=%.3f error=\"%s\"",
                  len > 200 ? 200 : len, id, s->provs[l->prov].conf->name, l->attempts, delay,
                  l->last_error);
    }
    ev_timer_init(&l->retry, on_retry_due, delay, 0.);
    l->retry.data = l;
    ev_timer_start(s->loop, &l->retry);
}

static void bad_response(Scheduler *s, Lookup *l, const char *why, const FetchResult *r)
{
    Buf *e = &s->scratch;
    buf_reset(e);
    if (!buf_printf(e, "%s; body: ", why) || !provider_excerpt(e, r->body, r->body_len, 80))
        buf_reset(e);
    final_failure(s, l, REASON_BAD_RESPONSE, r->status, e->data ? e->data : why);
}

/* application/json, or any type/subtype+json, parameters allowed; no header is accepted
 * too, since some providers omit it. */
static bool json_content_type(const char *ct)
{
    if (ct == NULL)
        return true;
    size_t n = strcspn(ct, "; \t");
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return true;
    return n > 5 && memchr(ct, '/', n) != NULL && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

/* The adaptive rate: a 429 cuts the job's rate, healthy answers let it climb back; 5xx and
 * transport failures are left to the provider's breaker. */
static void adapt_rate(Scheduler *s, double sent_at, bool throttled, bool healthy)
{
    if (!throttled && !healthy)
        return;
    double now = ev_now(s->loop);
    double before = knee_rate(&s->knee);
    double after =
        throttled ? knee_on_throttle(&s->knee, sent_at, now) : knee_on_success(&s->knee, now);
    if (throttled && s->workers) {
        s->throttled_seen++;
        s->last_429_wall = ev_time();
    }
    if (after != before) {
        rl_set_rate(&s->rl, after, now);
        s->rl.burst = rl_burst_for(after, s->cfg->burst);
        if (throttled)
            log_info("event=rate_lowered rate=%.1f provider_rate=%.1f measured=%s", after,
                     s->knee.knee, s->knee.measured ? "true" : "false");
        /* --shared: the provider's limit is the job's; tell the others at once. */
        if (throttled && s->workers && after > 0 && (!(before > 0) || after < before))
            workers_publish(s->workers, after);
    }
}

void scheduler_share_report(void *ud, WorkerReport *out)
{
    Scheduler *s = ud;
    out->rate = knee_rate(&s->knee);
    out->requests = s->st.requests;
    out->throttled = s->throttled_seen;
    out->last_429_wall = s->last_429_wall;
    out->range_no = s->range_no;
}

void scheduler_share_apply(void *ud, int live, double estimate)
{
    Scheduler *s = ud;
    double now = ev_now(s->loop), before = knee_rate(&s->knee), after = before;
    if (live < 1)
        live = 1;
    if (s->cfg->rate > 0)
        after = knee_set_ceiling(&s->knee, s->cfg->rate / live, now);
    if (estimate > 0) {
        after = knee_take_share(&s->knee, estimate / live, now);
        if (after != before)
            log_info("event=rate_shared rate=%.1f job_rate=%.1f workers=%d detail=\"another "
                     "worker was throttled\"",
                     after, estimate, live);
    }
    if (after != before) {
        rl_set_rate(&s->rl, after, now);
        s->rl.burst = rl_burst_for(after, s->cfg->burst);
        log_info("event=rate_share rate=%.1f workers=%d", after, live);
    }
    for (int i = 0; i < s->n_provs; i++)
        quota_set_share(&s->provs[i].quota, 1.0 / live);
}

static void wait_too_long(Scheduler *s, const Prov *p, Lookup *l, double seconds);
static bool fresh_allowed(const Scheduler *s);

/* ---------------------------------------------------------------- announced quotas */

/* An HTTP answer r of p (to its request numbered seq, sent at sent_at; seq 0: not known)
 * tells p's pacing what it announced of the quota. Returns whether r is a 429 that the
 * quota explains (its Remaining is 0): the pacing answers that one, not the adaptive rate,
 * which would only cut below what the quota allows. */
static bool quota_note(Prov *p, const FetchResult *r, uint64_t seq, double sent_at)
{
    if (r->terr != TE_NONE || !p->quota.on)
        return false;
    /* libev's clock is the wall clock, so timestamps compare; read afresh, since the window
     * ends no earlier than the server's count plus its Reset, and the loop's time can be
     * older than the answer. */
    double now = ev_time();
    QuotaAnn a;
    bool has = r->quota != NULL && quota_hdr_resolve(r->quota, now, &a);
    if (seq == 0)
        seq = quota_seq_guess(&p->quota, p->in_flight);
    switch (quota_on_answer(&p->quota, has ? &a : NULL, seq, sent_at, now)) {
    case QUOTA_EV_FIRST:
        log_info("event=quota_announced provider=%s form=%s limit=%.0f remaining=%.0f "
                 "reset_s=%.3g detail=\"pacing the provider so that its quota lasts until each "
                 "reset\"",
                 p->conf->name, a.form == QUOTA_FORM_IETF ? "RateLimit" : "X-RateLimit", a.limit,
                 a.remaining, a.reset);
        break;
    case QUOTA_EV_GONE:
        log_info("event=quota_gone provider=%s answers=%d detail=\"no quota announced on the "
                 "last answers: requests go at the job's rate again\"",
                 p->conf->name, QUOTA_FORGET);
        break;
    case QUOTA_EV_SHIFTED:
        log_debug("event=quota_reset_late provider=%s shift_s=%.3f", p->conf->name, p->quota.shift);
        break;
    case QUOTA_EV_NONE:
        break;
    }
    return has && r->status == 429 && quota_explains_429(&p->quota, &a);
}

/* A provider with work whose quota is spent until a reset further away than
 * --retry-after-max stops the job, resumable, as a 429 asking that would. Returns whether
 * it did. */
static bool quota_holds_too_long(Scheduler *s, double now)
{
    for (int i = 0; i < s->n_provs; i++) {
        Prov *p = &s->provs[i];
        if (!p->quota.known || (p->ready_head == NULL && !(i == 0 && fresh_allowed(s))))
            continue;
        double w = quota_wait(&p->quota, now, p->in_flight);
        if (w > s->cfg->retry_after_max && quota_rate(&p->quota) == 0) {
            wait_too_long(s, p, NULL, w);
            return true;
        }
    }
    return false;
}

static void quota_gauges(const Scheduler *s, MetricsQuota *out)
{
    for (int i = 0; i < s->n_provs; i++) {
        const Quota *q = &s->provs[i].quota;
        out[i] = (MetricsQuota){q->on && q->known, q->limit, quota_left(q), quota_rate(q)};
    }
}

/* A 429 asks the whole job to wait longer than --retry-after-max: stop cleanly with what
 * is settled committed, l left for the resume, and say when to come back. */
static void wait_too_long(Scheduler *s, const Prov *p, Lookup *l, double seconds)
{
    char when[32] = "";
    time_t t = (time_t)(ev_now(s->loop) + seconds);
    struct tm tm;
    if (gmtime_r(&t, &tm) != NULL)
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    log_error("event=provider_asks_wait provider=%s retry_after_s=%.0f retry_after_max_s=%g "
              "until=%s detail=\"the provider asks the whole job to wait longer than "
              "--retry-after-max; committing settled work; come back after %s to resume\"",
              p->conf->name, seconds, s->cfg->retry_after_max, when, when);
    if (l != NULL)
        lookup_free(s, l);
    stop_job(s, EXIT_TEMPFAIL);
}

/* A 403 for l: hold it until the next other answer from p tells what it meant. Returns
 * false when this one completes a run of --forbidden-threshold: the job is stopped. */
static bool hold_refused(Scheduler *s, Prov *p, Lookup *l)
{
    if (++p->refusals >= s->cfg->forbidden_threshold) {
        log_error("event=credentials_refused provider=%s status=403 consecutive=%d "
                  "detail=\"the provider refused %d answers in a row; check its token; the "
                  "checkpoint is unchanged past these IDs\"",
                  p->conf->name, p->refusals, p->refusals);
        lookup_free(s, l); /* unsettled, like the held ones that stop_job drops */
        p->held = NULL;
        stop_job(s, EXIT_AUTH);
        return false;
    }
    l->ready_next = p->held;
    p->held = l;
    return true;
}

/* The held 403s of p were about their IDs: record them as forbidden (the chain goes on to
 * the next provider). */
static void release_refused(Scheduler *s, Prov *p)
{
    p->refusals = 0;
    while (p->held) {
        Lookup *l = p->held;
        p->held = l->ready_next;
        final_failure(s, l, REASON_FORBIDDEN, 403, l->last_error);
    }
}

/* A failure below HTTP that no retry can fix (a certificate, the TLS set-up, the URL, a
 * host that never resolved): one line with the cause, curl's words and the fix, then stop.
 * l and the other lookups in flight are abandoned, unrecorded: the checkpoint stays
 * before them and the ledger learns nothing. */
static void config_failure(Scheduler *s, Prov *p, Lookup *l, const FetchResult *r)
{
    char hint[256];
    connerr_hint(r->fault, p->conf->name, hint, sizeof hint);
    log_error("event=provider_config_error provider=%s host=%s error=\"%s\" detail=\"%s\" "
              "hint=\"%s\"",
              p->conf->name, p->host, connerr_cause(r->fault), p->last_error, hint);
    if (l != NULL)
        lookup_free(s, l);
    stop_job(s, EXIT_CONFIG); /* a batch call's IDs are live lookups: dropped there */
}

/* How to fix fault of p, and " proxy=HOST:PORT" for the log line when p's requests go
 * through a proxy and the failure is one of reaching it (refused, no connection, a
 * timeout): then the proxy is what does not answer, not the provider's host. */
static void fault_hint(const Prov *p, ConnFault fault, char *hint, size_t hintlen, char *via,
                       size_t vialen)
{
    via[0] = '\0';
    if (p->proxy[0] == '\0' || !connerr_unreachable(fault)) {
        connerr_hint(fault, p->conf->name, hint, hintlen);
        return;
    }
    snprintf(via, vialen, " proxy=%s", p->proxy);
    snprintf(hint, hintlen, "check that the proxy at %s runs and takes connections (%s)", p->proxy,
             p->proxy_from);
}

/* The breaker has opened: say what the provider's failures were, and for how long the job
 * will wait for it. */
static void log_paused(Scheduler *s, const Prov *p, const FetchResult *r)
{
    if (r->terr == TE_NONE) {
        log_warn("event=provider_paused provider=%s host=%s error=\"HTTP %ld\" "
                 "detail=\"too many transient failures; probing it again shortly\"",
                 p->conf->name, p->host, r->status);
        return;
    }
    char hint[320], via[300];
    fault_hint(p, r->fault, hint, sizeof hint, via, sizeof via);
    log_warn("event=provider_paused provider=%s host=%s%s error=\"%s\" answered=%s "
             "detail=\"%s; probing it again shortly\" down_timeout_s=%g hint=\"%s\"",
             p->conf->name, p->host, via, connerr_word(r->fault), p->answered ? "true" : "false",
             p->last_error, s->cfg->provider_down_timeout, hint);
}

/* Whether p looks down: its breaker has paused it, and nothing but failures below HTTP
 * came since its last answer. A provider that answers (even 5xx) or whose breaker is
 * closed is up: its IDs run out of attempts as usual. */
static bool prov_down(const Prov *p)
{
    return p->failing_since > 0 && breaker_state(&p->breaker) != BR_CLOSED;
}

/* Whether p is in an outage: down (prov_down), or its requests have not reached it since
 * its last answer (the breaker's run of unreachable failures, which pauses it at the
 * BREAKER_UNREACHABLE_RUN-th). */
static bool prov_outage(const Prov *p)
{
    return prov_down(p) || breaker_unreachable_run(&p->breaker) > 0;
}

/* A request of l that never reached its provider (refused, could not connect, a connect
 * timeout), at the end of the chain, while that provider and the first one are in an
 * outage: the outage is not the ID's, so it gets back the attempts it spent on requests
 * that never got there and waits again (the breaker holds it until a probe gets through).
 * The job's wait is bounded by --provider-down-timeout; without one (0, waiting for ever)
 * the attempts count as before. Returns whether l was rescheduled. */
static bool hold_in_outage(Scheduler *s, Lookup *l, const FetchResult *r)
{
    if (r == NULL || r->terr == TE_NONE || !connerr_unreachable(r->fault) || l->unreached == 0 ||
        s->cfg->provider_down_timeout <= 0 || l->prov + 1 < s->n_provs ||
        !prov_outage(&s->provs[l->prov]) || !prov_outage(&s->provs[0]))
        return false;
    l->attempts -= l->unreached;
    l->total_attempts -= l->unreached;
    l->unreached = 0;
    schedule_retry(s, l, 0);
    return true;
}

/* A lookup out of attempts with a failure below HTTP, at the end of the chain, while that
 * provider and the first one (where fresh IDs go) are down: the provider is down, not this
 * ID, and recording it would only fill the ledger. It waits again instead; the job's wait
 * is bounded by --provider-down-timeout. Returns whether l was rescheduled. */
static bool hold_while_down(Scheduler *s, Lookup *l, const FetchResult *r)
{
    if (r->terr == TE_NONE || r->terr == TE_TOO_LARGE || s->cfg->provider_down_timeout <= 0 ||
        l->prov + 1 < s->n_provs || !prov_down(&s->provs[l->prov]) || !prov_down(&s->provs[0]))
        return false;
    schedule_retry(s, l, 0);
    return true;
}

/* Once a second: a first provider that has given no answer for --provider-down-timeout
 * (since the run's start or its last answer) while its requests fail stops the job,
 * resumable. Later providers of a chain do not: the IDs they cannot answer are recorded and
 * the first provider goes on; a chain with every provider down stops through the first. */
static void on_down_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Scheduler *s = w->data;
    const Prov *p = &s->provs[0];
    double now = ev_now(s->loop);
    double limit = s->cfg->provider_down_timeout;
    if (s->phase != PH_RUNNING || limit <= 0 || p->failing_since == 0 ||
        now - p->last_answer < limit)
        return;
    char hint[320], via[300];
    fault_hint(p, p->last_fault, hint, sizeof hint, via, sizeof via);
    log_error("event=provider_down provider=%s host=%s%s error=\"%s\" detail=\"%s\" "
              "no_answer_s=%.0f down_timeout_s=%g answered=%s hint=\"no answer from the provider "
              "for --provider-down-timeout; settled work is committed; run again to resume once "
              "it is back%s%s\"",
              p->conf->name, p->host, via, connerr_word(p->last_fault), p->last_error,
              now - p->last_answer, limit, p->answered ? "true" : "false", via[0] ? "; " : "",
              via[0] ? hint : "");
    stop_job(s, EXIT_TEMPFAIL);
}

/* snprintf(dst, cap, "HTTP %ld", status), by hand where it fits: this runs for every answer. */
static void http_status_text(char *dst, size_t cap, long status)
{
    char tmp[32]; /* "HTTP -" and a long's digits, written from the end */
    char *p = tmp + sizeof tmp;
    unsigned long u = status < 0 ? 0UL - (unsigned long)status : (unsigned long)status;
    *--p = '\0';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (status < 0)
        *--p = '-';
    p -= 5;
    memcpy(p, "HTTP ", 5);
    size_t n = (size_t)(tmp + sizeof tmp - p); /* with the NUL */
    if (n <= cap)
        memcpy(dst, p, n);
    else
        snprintf(dst, cap, "%s", p); /* cut, as snprintf would */
}

/* The answer r to l's request: one more attempt, and what it said. */
static void note_answer(Lookup *l, const FetchResult *r)
{
    l->attempts++;
    l->total_attempts++;
    l->unreached = r->terr != TE_NONE && connerr_unreachable(r->fault) ? l->unreached + 1 : 0;
    l->last_status = r->terr == TE_NONE ? r->status : 0;
    if (r->terr != TE_NONE)
        utf8_sanitize(l->last_error, sizeof l->last_error, r->error, strlen(r->error));
    else
        http_status_text(l->last_error, sizeof l->last_error, r->status);
}

/* Slow start (Prov.ramp): the requests p may have in flight at `now`. */
static double ramp_allowance(const Prov *p, double now)
{
    if (p->ramp <= 0)
        return INFINITY;
    double timed = p->ramp_t0 > 0 ? RAMP_START * exp2((now - p->ramp_t0) / RAMP_DOUBLE) : 0;
    return fmax(p->ramp, timed);
}

/* Seconds until slow start lets p have one more request in flight without an answer. */
static double ramp_wait(const Prov *p, double now)
{
    double t = p->ramp_t0 + RAMP_DOUBLE * log2(((double)p->in_flight + 1) / RAMP_START);
    return fmax(t - now, 0.001);
}

/* What any answer of provider prov tells the job as a whole: the adaptive rate hears of
 * 429s and healthy answers, the breaker of everything else (and whether a failure was an
 * answer, a request lost on the way, or one that never reached the provider). */
static void account_answer(Scheduler *s, int prov, const FetchResult *r, RetryAction act,
                           double sent_at, uint64_t quota_seq)
{
    Prov *p = &s->provs[prov];
    double now = ev_now(s->loop);
    bool throttled = r->terr == TE_NONE && r->status == 429;
    bool healthy = act != RA_RETRY;
    s->st.requests++;
    bool paced = quota_note(p, r, quota_seq, sent_at); /* its quota explains the 429 */
    adapt_rate(s, sent_at, throttled && !paced, healthy);
    if (p->ramp > 0 && healthy)
        p->ramp++;
    if (p->ramp > 0 && (throttled || ramp_allowance(p, now) >= s->cfg->concurrency))
        p->ramp = 0;
    if (!throttled) {
        BreakerOutcome o = healthy                         ? BO_OK
                           : r->terr == TE_NONE            ? BO_ERROR
                           : connerr_unreachable(r->fault) ? BO_UNREACHABLE
                                                           : BO_LOST;
        BreakerState before = breaker_state(&p->breaker);
        breaker_record_outcome(&p->breaker, o, sent_at, now);
        BreakerState after = breaker_state(&p->breaker);
        if (before == BR_CLOSED && after == BR_OPEN)
            log_paused(s, p, r);
        else if (after != before && after == BR_CLOSED)
            log_info("event=provider_resumed provider=%s", p->conf->name);
    }
}

/* The provider refused the credentials (401, or a batch call's 403): stop, l (if any)
 * unsettled so that the checkpoint stays before it. */
static void credentials_refused(Scheduler *s, const Prov *p, Lookup *l, long status)
{
    log_error("event=credentials_refused provider=%s status=%ld detail=\"the provider "
              "refused the API token; check PGENRICH_TOKEN or --token-file; the checkpoint "
              "is unchanged past this ID\"",
              p->conf->name, status);
    if (l != NULL)
        lookup_free(s, l);
    stop_job(s, EXIT_AUTH);
}

/* A transient failure of l (r: the answer, or NULL for an ID a batch answer left out):
 * retry after a backoff and any Retry-After, or give up when attempts are spent or the
 * wait asked is over --retry-after-max. */
static void retry_or_give_up(Scheduler *s, const Prov *p, Lookup *l, const FetchResult *r)
{
    double ra = 0;
    bool throttled = r != NULL && r->terr == TE_NONE && r->status == 429;
    bool has_ra =
        r != NULL && r->retry_after && retry_after_parse(r->retry_after, ev_now(s->loop), &ra);
    if (has_ra && ra > s->cfg->retry_after_max) {
        if (throttled) {
            wait_too_long(s, p, l, ra);
            return;
        }
        char tail[96];
        snprintf(tail, sizeof tail, " with Retry-After %.0f s, over --retry-after-max %g s", ra,
                 s->cfg->retry_after_max);
        text_append(l->last_error, sizeof l->last_error, 1, tail);
        final_failure(s, l, REASON_EXHAUSTED, l->last_status, l->last_error);
    } else if (hold_in_outage(s, l, r)) {
        /* rescheduled, its attempt given back */
    } else if (l->attempts >= s->cfg->max_attempts && !(r != NULL && hold_while_down(s, l, r))) {
        final_failure(s, l, REASON_EXHAUSTED, l->last_status, l->last_error);
    } else {
        schedule_retry(s, l, has_ra ? ra : 0);
    }
}

/* What an answer tells of p's reachability (--provider-down-timeout). Returns whether it
 * is a failure below HTTP that no retry can fix (connerr_is_config). */
static bool note_reach(Prov *p, const FetchResult *r, double now)
{
    if (r->terr == TE_NONE) {
        p->answered = true;
        p->last_answer = now;
        p->failing_since = 0;
        return false;
    }
    if (p->failing_since == 0)
        p->failing_since = now;
    p->last_fault = r->fault;
    utf8_sanitize(p->last_error, sizeof p->last_error, r->error, strlen(r->error));
    return connerr_is_config(r->fault, p->answered);
}

static void on_fetch_done(void *ud, const FetchResult *r)
{
    Lookup *l = ud;
    Scheduler *s = l->s;
    Prov *p = &s->provs[l->prov];
    const char *reason = NULL;
    double now = ev_now(s->loop);
    note_answer(l, r);
    if (note_reach(p, r, now)) {
        if (p->in_flight > 0)
            p->in_flight--;
        s->st.requests++; /* made and failed: the run's count says so */
        config_failure(s, p, l, r);
        return;
    }

    RetryAction act = retry_classify(r->terr, r->status, &reason);
    double took = now - l->sent_at;
    if (act != RA_PARSE) /* a 200 is counted once its body is read */
        metrics_request(&s->metrics, l->prov, metrics_outcome(r->terr, r->status), took);
    account_answer(s, l->prov, r, act, l->sent_at, l->quota_seq);

    if (p->in_flight > 0)
        p->in_flight--;
    if (act == RA_FAIL && strcmp(reason, REASON_FORBIDDEN) == 0) {
        if (!hold_refused(s, p, l))
            return;
        pump(s);
        return;
    }
    if (r->terr == TE_NONE && act != RA_RETRY && act != RA_FATAL)
        release_refused(s, p); /* the key works: the held 403s were about their IDs */

    switch (act) {
    case RA_PARSE: {
        if (!json_content_type(r->content_type)) {
            char why[80] = "content type "; /* the header, cut on a character */
            text_append(why, sizeof why, 1, r->content_type);
            metrics_request(&s->metrics, l->prov, MO_BAD_RESPONSE, took);
            bad_response(s, l, why, r);
            break;
        }
        ProviderRow row;
        char err[128];
        MapResult m = provider_map_with(s->parser, &p->conf->map, r->body, r->body_len, &row, err,
                                        sizeof err);
        metrics_request(&s->metrics, l->prov,
                        m == MAP_FOUND  ? MO_OK
                        : m == MAP_MISS ? MO_MISS
                                        : MO_BAD_RESPONSE,
                        took);
        if (m == MAP_FOUND)
            emit_row(s, l, &row);
        else if (m == MAP_MISS)
            final_failure(s, l, REASON_NO_LOCATION, r->status, "no location");
        else
            bad_response(s, l, err, r);
        provider_row_free(&row);
        break;
    }
    case RA_FAIL:
        final_failure(s, l, reason, r->terr == TE_TOO_LARGE ? r->status : l->last_status,
                      l->last_error);
        break;
    case RA_FATAL:
        credentials_refused(s, p, l, r->status);
        return;
    case RA_RETRY:
        retry_or_give_up(s, p, l, r);
        if (s->phase != PH_RUNNING)
            return;
        break;
    }
    pump(s);
}

/* ---------------------------------------------------------------- batch providers */

/* A batch call's answers reach the same per-ID paths as single answers: emit_row,
 * final_failure, retry_or_give_up. batch.c moves the calls; this decides for the IDs. */

static Lookup *const *call_lookups(const BatchCall *c, size_t *n)
{
    return (Lookup *const *)batch_call_items(c, n);
}

static void on_batch_due(void *ud)
{
    pump(ud);
}

static void on_batch_answered(void *ud, BatchCall *c, const FetchResult *r, bool poll)
{
    Scheduler *s = ud;
    size_t n;
    Lookup *const *ls = call_lookups(c, &n);
    int prov = ls[0]->prov;
    double now = ev_now(s->loop);
    if (poll) { /* a poll is a request, but says nothing of the provider's health */
        s->st.requests++;
        (void)quota_note(&s->provs[prov], r, 0, now); /* and counts in its quota */
        return;
    }
    /* Reachability only: a failure below HTTP that is a configuration error stops the job
     * in the done hook (settle_batch), once the batcher has let go of the call. */
    (void)note_reach(&s->provs[prov], r, now);
    RetryAction act = retry_classify(r->terr, r->status, NULL);
    metrics_request(&s->metrics, prov, metrics_outcome(r->terr, r->status),
                    now - batch_call_sent(c));
    account_answer(s, prov, r, r->status == 202 ? RA_PARSE : act, batch_call_sent(c), 0);
}

/* A 200 with results: settle each ID by its item. */
static void settle_results(Scheduler *s, Prov *p, BatchCall *c, const FetchResult *r)
{
    size_t n;
    Lookup *const *ls = call_lookups(c, &n);
    BatchItem *it = calloc(n, sizeof *it);
    BatchTally t = {0};
    char err[BATCHWIRE_ERR_MAX] = "";
    bool parsed = false;
    if (it == NULL) {
        log_error("event=out_of_memory detail=\"reading a batch answer\"");
        stop_job(s, EXIT_RUNTIME);
        return;
    }
    if (!json_content_type(r->content_type)) {
        snprintf(err, sizeof err, "content type "); /* the header, cut on a character */
        text_append(err, 80, 1, r->content_type);
    } else {
        parsed = batchwire_parse(&p->conf->map, r->body, r->body_len, s->cfg->max_depth,
                                 batch_call_ids(c), n, it, &t, err, sizeof err);
    }
    if (parsed && (t.unasked || t.duplicates || t.unidentified)) {
        metrics_batch_ignored(&s->metrics, ls[0]->prov, t.unasked + t.unidentified, t.duplicates);
        log_debug("event=batch_extra provider=%s unasked=%zu duplicates=%zu unidentified=%zu",
                  p->conf->name, t.unasked, t.duplicates, t.unidentified);
    }
    for (size_t i = 0; i < n && s->phase == PH_RUNNING; i++) {
        Lookup *l = ls[i];
        const char *reason = NULL;
        note_answer(l, r);
        if (!parsed) {
            bad_response(s, l, err, r);
            continue;
        }
        switch (it[i].kind) {
        case BI_FOUND:
            emit_row(s, l, &it[i].row);
            break;
        case BI_MISS:
            final_failure(s, l, REASON_NO_LOCATION, r->status, "no location");
            break;
        case BI_BAD:
            final_failure(s, l, REASON_BAD_RESPONSE, r->status, it[i].err);
            break;
        case BI_MISSING:
            snprintf(l->last_error, sizeof l->last_error, "left out of the batch answer");
            retry_or_give_up(s, p, l, NULL);
            break;
        case BI_ERROR:
            l->last_status = it[i].status;
            snprintf(l->last_error, sizeof l->last_error, "HTTP %ld", it[i].status);
            switch (retry_classify(TE_NONE, it[i].status, &reason)) {
            case RA_FAIL: /* a 403 here is about its ID: the call itself was let in */
                final_failure(s, l, reason, it[i].status, l->last_error);
                break;
            case RA_RETRY:
                retry_or_give_up(s, p, l, NULL);
                break;
            case RA_FATAL:
                credentials_refused(s, p, NULL, it[i].status);
                break;
            case RA_PARSE:
                final_failure(s, l, REASON_BAD_RESPONSE, 200, "item error with status 200");
                break;
            }
            break;
        }
    }
    batchwire_items_free(it, n);
    free(it);
}

static void settle_batch(Scheduler *s, Prov *p, BatchCall *c, const FetchResult *r, const char *why)
{
    size_t n;
    Lookup *const *ls = call_lookups(c, &n);
    const char *reason = NULL;
    if (r == NULL) { /* the job expired or timed out, also after its resend */
        for (size_t i = 0; i < n && s->phase == PH_RUNNING; i++) {
            Lookup *l = ls[i];
            l->attempts++;
            l->total_attempts++;
            l->last_status = 0;
            snprintf(l->last_error, sizeof l->last_error, "batch %s, also when sent again", why);
            final_failure(s, l, REASON_EXHAUSTED, 0, l->last_error);
        }
        return;
    }
    if (r->terr != TE_NONE && connerr_is_config(r->fault, p->answered)) {
        config_failure(s, p, NULL, r); /* a certificate, the TLS set-up, the URL: no retry */
        return;
    }
    RetryAction act = retry_classify(r->terr, r->status, &reason);
    if (act == RA_PARSE) {
        settle_results(s, p, c, r);
        return;
    }
    if (r->terr == TE_NONE && r->status == 413 && batch_shrink(p->batch, c)) {
        log_info("event=batch_shrunk provider=%s size=%d", p->conf->name, batch_size(p->batch));
        for (size_t i = 0; i < n; i++)
            enqueue_ready(s, ls[i]); /* not an attempt: the ask was too big, not the IDs */
        return;
    }
    if (act == RA_FATAL || (act == RA_FAIL && strcmp(reason, REASON_FORBIDDEN) == 0)) {
        credentials_refused(s, p, NULL, r->status); /* a whole call refused: the key */
        return;
    }
    for (size_t i = 0; i < n && s->phase == PH_RUNNING; i++) {
        Lookup *l = ls[i];
        note_answer(l, r);
        if (act == RA_RETRY)
            retry_or_give_up(s, p, l, r);
        else if (r->terr == TE_NONE && r->status == 202)
            bad_response(s, l, "202 without a job id", r);
        else
            final_failure(s, l, reason, r->terr == TE_TOO_LARGE ? r->status : l->last_status,
                          l->last_error);
    }
}

static void on_batch_done(void *ud, BatchCall *c, const FetchResult *r, const char *why)
{
    Scheduler *s = ud;
    size_t n;
    Lookup *const *ls = call_lookups(c, &n);
    Prov *p = &s->provs[ls[0]->prov];
    if (p->in_flight > 0)
        p->in_flight--;
    if (s->phase == PH_RUNNING)
        settle_batch(s, p, c, r, why);
    batch_call_free(c);
    pump(s);
}

static const BatchHooks batch_hooks = {
    .answered = on_batch_answered, .done = on_batch_done, .due = on_batch_due};

/* Calls that hold a place under --concurrency: requests in the fetcher, and batch jobs
 * waiting between two polls. */
static size_t busy(const Scheduler *s)
{
    size_t n = fetcher_in_flight(s->fetcher);
    for (int i = 0; i < s->n_provs; i++)
        n += s->provs[i].batch ? batch_waiting(s->provs[i].batch) : 0;
    return n;
}

/* Send every batch that is due and may go now. False when the loop must stop dispatching
 * (the cap, the rate, or the job stopped); a paused provider's batch just waits. */
static bool send_batches(Scheduler *s, double now)
{
    for (int i = 0; i < s->n_provs && s->phase == PH_RUNNING; i++) {
        Prov *p = &s->provs[i];
        if (p->batch == NULL || !batch_due(p->batch))
            continue;
        double w = fmax(breaker_wait(&p->breaker, now), quota_wait(&p->quota, now, p->in_flight));
        if ((double)p->in_flight >= ramp_allowance(p, now))
            w = fmax(w, ramp_wait(p, now));
        if (w > 0) {
            arm_wake(s, w);
            continue;
        }
        if (busy(s) >= (size_t)s->cfg->concurrency)
            return false;
        size_t ids = batch_pending(p->batch);
        if (ids > (size_t)batch_size(p->batch))
            ids = (size_t)batch_size(p->batch);
        /* One token a call, or one an ID for a provider that meters IDs. */
        if (!rl_take_n(&s->rl, p->conf->count_ids ? (double)ids : 1, now)) {
            arm_wake(s, rl_wait(&s->rl, now));
            return false;
        }
        if (!breaker_allow(&p->breaker, now)) {
            arm_wake(s, 0.01);
            continue;
        }
        if (!batch_send(p->batch, now)) {
            log_error("event=request_failed detail=\"could not start a batch request\"");
            stop_job(s, EXIT_RUNTIME);
            return false;
        }
        if (p->in_flight++ == 0 && p->ramp_t0 == 0)
            p->ramp_t0 = now;
        (void)quota_on_send(&p->quota, now);
    }
    return s->phase == PH_RUNNING;
}

/* l goes into its provider's pending batch (rejected here if no request could carry it).
 * False when the batch refused it (l is queued again): the pump must stop dispatching. */
static bool add_to_batch(Scheduler *s, Prov *p, Lookup *l)
{
    int len;
    const char *id = window_id(&l->slot, &len);
    if (len == 0) {
        final_failure(s, l, REASON_REJECTED, 0, "empty ID: not looked up");
    } else if (len > BATCH_ID_MAX) {
        l->total_attempts++;
        final_failure(s, l, REASON_REJECTED, 0, "ID too long for a request");
    } else if (!batch_add(p->batch, l, id, (size_t)len)) {
        enqueue_ready(s, l); /* not expected: next_lookup skips a provider with a due batch */
        arm_wake(s, 0.01);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- dispatch */

static void on_wake(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    pump(w->data);
}

static bool fresh_allowed(const Scheduler *s)
{
    if (s->draining)
        return false;
    /* Backpressure: stop reading new IDs while the database lags far behind. */
    if (outbox_pending(s->outbox) >= 2 * (size_t)s->cfg->flush_rows)
        return false;
    return window_has_fresh(s->win);
}

/* Append body_tmpl with every {id} replaced by the ID as the inside of a JSON string. */
static bool build_body(Buf *out, const char *tmpl, const char *id, size_t len)
{
    for (const char *t = tmpl; *t;) {
        if (strncmp(t, "{id}", 4) == 0) {
            for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)id[i];
                bool ok = c == '"' || c == '\\' ? buf_putc(out, '\\') && buf_putc(out, (char)c)
                          : c < 0x20            ? buf_printf(out, "\\u%04x", c)
                                                : buf_putc(out, (char)c);
                if (!ok)
                    return false;
            }
            t += 4;
        } else if (!buf_putc(out, *t++)) {
            return false;
        }
    }
    return true;
}

static bool start_request(Scheduler *s, Lookup *l)
{
    const ProviderConf *pc = s->provs[l->prov].conf;
    int len;
    const char *id = window_id(&l->slot, &len);
    buf_reset(&s->url);
    buf_reset(&s->body);
    if (len == 0) {
        /* The URL would name the collection, not an entity: never ask. */
        final_failure(s, l, REASON_REJECTED, 0, "empty ID: not looked up");
        return true;
    }
    if (!provider_build_url(&s->url, pc->url, id, (size_t)len) ||
        (pc->post && !build_body(&s->body, pc->body ? pc->body : "", id, (size_t)len))) {
        l->total_attempts++;
        final_failure(s, l, REASON_REJECTED, 0, "ID too long for a request");
        return true;
    }
    if (!fetcher_start(s->fetcher, s->provs[l->prov].profile, s->url.data,
                       pc->post ? (s->body.data ? s->body.data : "") : NULL, s->body.len,
                       on_fetch_done, l)) {
        log_error("event=request_failed detail=\"could not start a request\"");
        lookup_free(s, l);
        stop_job(s, EXIT_RUNTIME);
        return false;
    }
    Prov *p = &s->provs[l->prov];
    if (p->in_flight++ == 0 && p->ramp_t0 == 0)
        p->ramp_t0 = ev_now(s->loop);
    l->quota_seq = quota_on_send(&p->quota, ev_now(s->loop));
    return true;
}

static void check_finished(Scheduler *s)
{
    if (s->phase == PH_RUNNING && window_drained(s->win) && s->live_count == 0) {
        s->phase = PH_FINISHING;
        maybe_flush(s, true);
    }
}

static void arm_wake(Scheduler *s, double wait)
{
    if (ev_is_active(&s->wake)) {
        if (ev_timer_remaining(s->loop, &s->wake) <= wait)
            return;
        ev_timer_stop(s->loop, &s->wake);
    }
    ev_timer_set(&s->wake, wait, 0.);
    ev_timer_start(s->loop, &s->wake);
}

/* The next lookup to start, by provider order (retries and fallbacks before fresh IDs),
 * skipping providers whose breaker is open. *wait gets the shortest breaker pause when
 * every provider with work is paused. NULL when nothing can start now. */
static Lookup *next_lookup(Scheduler *s, double now, double *wait, bool *fresh)
{
    *wait = 0;
    *fresh = false;
    for (int i = 0; i < s->n_provs; i++) {
        Prov *p = &s->provs[i];
        bool has_work = p->ready_head != NULL || (i == 0 && fresh_allowed(s));
        if (!has_work)
            continue;
        /* A batch that is due takes no more IDs until it goes, and send_batches has put it
         * off (slow start, the breaker, the quota: it armed the wake-up) or the pump is at
         * its cap: handing an ID out now would only see it refused and queued again. */
        if (p->batch != NULL && batch_due(p->batch))
            continue;
        double w = breaker_wait(&p->breaker, now);
        if (p->batch == NULL && (double)p->in_flight >= ramp_allowance(p, now))
            w = fmax(w, ramp_wait(p, now));          /* (or its next answer, which pumps again) */
        if (p->batch == NULL || batch_due(p->batch)) /* a batch: its calls, once one is due */
            w = fmax(w, quota_wait(&p->quota, now, p->in_flight));
        if (w > 0) {
            if (*wait == 0 || w < *wait)
                *wait = w;
            continue;
        }
        *wait = 0;
        /* A paused provider's probe is a fresh ID when there is one: a retry has failed
         * before, and an ID that always fails there would keep the provider paused. */
        bool probe_fresh = i == 0 && breaker_state(&p->breaker) != BR_CLOSED && fresh_allowed(s);
        if (p->ready_head && !probe_fresh)
            return p->ready_head;
        *fresh = true;
        return NULL;
    }
    return NULL;
}

/* A paused provider's waiting lookups go on down the chain (the circuit breaker's
 * fallback) rather than wait for its probes: IDs that keep failing there would otherwise be
 * asked one per cooldown, up to a minute apart, and hold the end of the job. Fresh IDs
 * still wait for the probe; the last provider keeps its own. */
static void fail_over_paused(Scheduler *s, double now)
{
    for (int i = 0; i + 1 < s->n_provs; i++) {
        Prov *p = &s->provs[i];
        if (breaker_wait(&p->breaker, now) <= 0)
            continue;
        void *taken[64]; /* a paused batch provider's pending batch goes the same way */
        for (size_t n; p->batch && (n = batch_take(p->batch, taken, 64)) > 0;) {
            for (size_t k = 0; k < n; k++) {
                Lookup *l = taken[k];
                final_failure(s, l, REASON_EXHAUSTED, l->last_status,
                              l->last_error[0] ? l->last_error : "paused by its circuit breaker");
            }
        }
        if (p->ready_head == NULL)
            continue;
        Lookup *l = p->ready_head;
        p->ready_head = p->ready_tail = NULL;
        while (l != NULL) {
            Lookup *next = l->ready_next;
            final_failure(s, l, REASON_EXHAUSTED, l->last_status,
                          l->last_error[0] ? l->last_error : "paused by its circuit breaker");
            l = next;
        }
    }
}

static void pump(Scheduler *s)
{
    if (s->phase == PH_RUNNING && quota_holds_too_long(s, ev_now(s->loop)))
        return;
    if (s->phase == PH_RUNNING)
        fail_over_paused(s, ev_now(s->loop));
again:
    while (s->phase == PH_RUNNING && busy(s) < (size_t)s->cfg->concurrency) {
        double now = ev_now(s->loop);
        double wait;
        bool fresh;
        if (!send_batches(s, now) || busy(s) >= (size_t)s->cfg->concurrency)
            break;
        Lookup *l = next_lookup(s, now, &wait, &fresh);
        if (l == NULL && !fresh) {
            if (wait > 0)
                arm_wake(s, wait);
            break;
        }
        Prov *p = &s->provs[fresh ? 0 : l->prov];
        /* A batch takes its tokens when it is sent (send_batches). */
        if (p->batch == NULL && !rl_take(&s->rl, now)) {
            arm_wake(s, rl_wait(&s->rl, now));
            break;
        }
        if (fresh && (l = lookup_new(s)) == NULL) {
            stop_job(s, EXIT_RUNTIME);
            break;
        }
        if (!fresh) {
            p->ready_head = l->ready_next;
            if (p->ready_head == NULL)
                p->ready_tail = NULL;
        }
        if (p->batch != NULL) {
            if (!add_to_batch(s, p, l))
                break;
            continue;
        }
        if (!breaker_allow(&p->breaker, now)) {
            enqueue_ready(s, l); /* not expected after breaker_wait said 0; look again soon */
            arm_wake(s, 0.01);
            break;
        }
        l->sent_at = now;
        if (!start_request(s, l))
            break;
    }
    /* Held 403s with nothing left in flight to p and nothing due to it: no answer will
     * come to tell what they meant, so they count as forbidden. */
    for (int i = 0; i < s->n_provs && s->phase == PH_RUNNING; i++) {
        Prov *p = &s->provs[i];
        if (p->held && p->in_flight == 0 && p->ready_head == NULL && !ev_is_active(&s->wake))
            release_refused(s, p);
    }
    if (maybe_park(s))
        goto again; /* the window has room for fresh IDs again */
    maybe_fetch_page(s);
    check_finished(s);
    if (s->draining && s->phase == PH_RUNNING && s->live_count == 0) {
        log_info("event=drained detail=\"every lookup in flight has ended\"");
        stop_job(s, EXIT_TEMPFAIL);
    }
}

/* ---------------------------------------------------------------- flushing */

static void end_loop(Scheduler *s)
{
    s->phase = PH_DONE;
    ev_break(s->loop, EVBREAK_ALL);
}

/* The outbox failed for good: stop. A flush error outranks an earlier interruption in
 * the exit status: the job did not end as asked. */
static void on_outbox_failed(void *ud)
{
    Scheduler *s = ud;
    if (s->exit_code == EXIT_TEMPFAIL)
        s->exit_code = EXIT_RUNTIME;
    stop_job(s, EXIT_RUNTIME);
    end_loop(s);
}

/* A batch has committed in full (or, after isolation, all of it that could): go on. */
static void on_outbox_done(void *ud)
{
    Scheduler *s = ud;
    metrics_flush(&s->metrics, ev_time() - s->flush_started);
    if (s->flush_has_pos)
        metrics_checkpoint(&s->metrics, true, s->flush_pos);
    switch (s->phase) {
    case PH_FINISHING:
        if (s->final_sent)
            end_loop(s);
        else
            maybe_flush(s, true);
        break;
    case PH_STOPPING:
        maybe_flush(s, true);
        break;
    case PH_RUNNING:
        maybe_flush(s, false);
        pump(s);
        break;
    case PH_DONE:
        break;
    }
}

/* Start a flush of the active buffer when one is due. While running, `force` flushes a
 * non-empty buffer below --flush-rows (the interval tick). When finishing, one last flush
 * marks the job done even if the buffer is empty; when stopping, an empty buffer ends the
 * loop at once. */
static void maybe_flush(Scheduler *s, bool force)
{
    if (outbox_busy(s->outbox) || s->phase == PH_DONE)
        return;
    size_t n = outbox_pending(s->outbox);
    bool done = false;
    switch (s->phase) {
    case PH_RUNNING:
        if (n == 0 || (!force && n < (size_t)s->cfg->flush_rows))
            return;
        break;
    case PH_FINISHING:
        if (s->from_ledger && n == 0) {
            end_loop(s);
            return;
        }
        done = !s->from_ledger;
        break;
    case PH_STOPPING:
        if (n == 0) {
            end_loop(s);
            return;
        }
        break;
    case PH_DONE:
        return;
    }
    char *position = current_position(s);
    if (s->phase == PH_FINISHING)
        s->final_sent = true;
    sink_set_run_counts(s->sink, s->st.requests, s->st.retries);
    s->flush_has_pos = position_number(s, position, &s->flush_pos);
    s->flush_started = ev_time();
    if (!outbox_flush(s->outbox, position, done))
        on_outbox_failed(s);
}

static void on_flush_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Scheduler *s = w->data;
    if (s->phase == PH_RUNNING && outbox_pending(s->outbox) > 0)
        maybe_flush(s, true);
}

/* ---------------------------------------------------------------- stopping */

/* Stop dispatching; abandon lookups not yet settled (they are redone on the next run);
 * commit what is settled; then end the loop. The first code given wins. A job that is
 * already committing its last batch (finishing) is left to complete. */
static void stop_job(Scheduler *s, int code)
{
    bool finishing = s->phase == PH_FINISHING || s->phase == PH_DONE;
    if (s->exit_code < 0 && !(finishing && code == EXIT_TEMPFAIL))
        s->exit_code = code;
    if (s->phase != PH_RUNNING)
        return;
    s->phase = PH_STOPPING;
    fetcher_abort_all(s->fetcher);
    for (int i = 0; i < s->n_provs; i++) {
        if (s->provs[i].batch)
            batch_abort(s->provs[i].batch); /* its IDs are live lookups, dropped below */
    }
    while (s->live)
        lookup_free(s, s->live);
    for (int i = 0; i < s->n_provs; i++) {
        s->provs[i].ready_head = s->provs[i].ready_tail = NULL;
        s->provs[i].held = NULL;
    }
    ev_timer_stop(s->loop, &s->wake);
    maybe_flush(s, true);
}

/* First signal: read no new IDs and give the lookups in flight --drain-timeout to end;
 * second: abandon them now (settled work is still committed); third: leave at once, the
 * last committed checkpoint stands. */
static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    Scheduler *s = w->data;
    s->signals++;
    if (s->signals > 2) {
        log_warn("event=third_signal detail=\"exiting now; the last committed checkpoint "
                 "stands\"");
        _exit(EXIT_TEMPFAIL);
    }
    if (s->signals == 2 || s->cfg->drain_timeout <= 0 || s->phase != PH_RUNNING) {
        log_warn("event=interrupted signal=%d in_flight=%zu detail=\"abandoning the lookups "
                 "in flight, committing settled work\"",
                 w->signum, s->live_count);
        stop_job(s, EXIT_TEMPFAIL);
        return;
    }
    log_warn("event=interrupted signal=%d in_flight=%zu drain_timeout_s=%g detail=\"reading "
             "no new IDs; lookups in flight may finish, then settled work is committed (a "
             "second signal stops at once)\"",
             w->signum, s->live_count, s->cfg->drain_timeout);
    s->draining = true;
    ev_timer_set(&s->drain, s->cfg->drain_timeout, 0.);
    ev_timer_start(s->loop, &s->drain);
    pump(s);
}

static void on_drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Scheduler *s = w->data;
    if (s->phase != PH_RUNNING)
        return;
    log_warn("event=drain_timeout in_flight=%zu detail=\"abandoning the lookups still in "
             "flight; the next run does them\"",
             s->live_count);
    stop_job(s, EXIT_TEMPFAIL);
}

/* ---------------------------------------------------------------- database faults */

/* A connection could not be replaced within --db-retry-timeout. */
static void db_gave_up(Scheduler *s, const char *conn, const char *err)
{
    log_error("event=db_unreachable conn=%s error=\"%s\" detail=\"gave up after "
              "--db-retry-timeout %gs; the committed checkpoint stands: rerun to resume\"",
              conn, err ? err : "unknown", s->cfg->db_retry_timeout);
    if (s->exit_code < 0 || s->exit_code == EXIT_TEMPFAIL)
        s->exit_code = EXIT_DB;
    stop_job(s, EXIT_DB);
    if (outbox_lost(s->outbox) || s->phase == PH_FINISHING)
        end_loop(s); /* nothing more can be committed */
}

static void on_sink_redialed(void *ud, PGconn *conn, const char *err)
{
    Scheduler *s = ud;
    char msg[512];
    if (conn == NULL) {
        db_gave_up(s, "sink", err);
        return;
    }
    /* The lock went with the old session: without it again, another runner may have the
     * job now, and this one must not write. A range's worker has no lock on this session:
     * its flushes are fenced instead. */
    switch (s->range_mode
                ? JOBLOCK_TAKEN
                : joblock_take(conn, s->cfg->checkpoint_table, s->cfg->job, msg, sizeof msg)) {
    case JOBLOCK_TAKEN:
        break;
    case JOBLOCK_BUSY:
        PQfinish(conn);
        log_error("event=job_lock_lost error=\"%s\" detail=\"another runner took the job "
                  "while the database was away; this run writes nothing more\"",
                  msg);
        s->exit_code = EXIT_LOCKED;
        stop_job(s, EXIT_LOCKED);
        end_loop(s);
        return;
    case JOBLOCK_ERROR:
        PQfinish(conn);
        redial_again(s->sink_redial, msg);
        return;
    }
    if (!outbox_attach(s->outbox, conn, msg, sizeof msg)) {
        if (outbox_lost(s->outbox))
            redial_again(s->sink_redial, msg);
        else
            on_outbox_failed(s);
    }
}

static void on_source_redialed(void *ud, PGconn *conn, const char *err)
{
    Scheduler *s = ud;
    if (conn == NULL) {
        db_gave_up(s, "source", err);
        return;
    }
    if (!source_attach(s->source, conn)) {
        redial_again(s->src_redial, "the new connection was unusable");
        return;
    }
    pump(s);
}

/* The sink's connection went away during a flush: its batch waits for a new one. */
static void on_outbox_lost(void *ud)
{
    Scheduler *s = ud;
    redial_start(s->sink_redial);
}

/* The progress as it stands; the rate is sampled too. */
static void progress_view(Scheduler *s, ProgressView *v)
{
    const OutboxTotals *t = outbox_totals(s->outbox);
    double now = ev_now(s->loop);
    bool ended = window_ended(s->win);
    *v = (ProgressView){
        .job = s->cfg->job,
        .done = s->settled,
        .total = progress_total(s->total_estimate, s->st.ids_read, ended),
        .ended = ended,
        .elapsed = now - s->started,
        .rate = progress_rate_update(&s->prate, now, s->settled),
        .in_flight = (long long)fetcher_in_flight(s->fetcher),
        .retries = s->st.retries,
        .rows = t->rows_loaded,
        .by_reason = t->by_reason,
        .reason_names = sched_reason_names,
        .n_reasons = SCHED_REASONS,
    };
}

static void on_progress(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Scheduler *s = w->data;
    ProgressView v;
    char line[1024];
    progress_view(s, &v);
    progress_log_line(line, sizeof line, &v);
    log_info("%s", line);
}

static void on_live(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Scheduler *s = w->data;
    ProgressView v;
    char line[512];
    progress_view(s, &v);
    progress_tty_line(line, sizeof line, &v, log_status_width());
    log_status(line);
}

static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    log_reopen();
}

/* ---------------------------------------------------------------- life cycle */

/* The proxy p's requests surely take, for messages, when no no_proxy (setting or
 * variable) could exempt the host: an explicit one (--proxy, proxy =), else libcurl's
 * variable for the URL's scheme (https_proxy or HTTPS_PROXY, http_proxy, then all_proxy or
 * ALL_PROXY). */
static void note_proxy(Prov *p, const ProviderTls *t)
{
    static const char *const https_vars[] = {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                                             NULL};
    static const char *const http_vars[] = {"http_proxy", "all_proxy", "ALL_PROXY", NULL};
    const char *v = NULL, *from = NULL;
    const char *np = getenv("no_proxy"), *NP = getenv("NO_PROXY");
    p->proxy[0] = '\0';
    if (t->noproxy != NULL || (np != NULL && *np) || (NP != NULL && *NP))
        return; /* libcurl applies it to any proxy: the host may be exempt */
    if (t->proxy != NULL) {
        if (strcmp(t->proxy, "none") == 0 || t->proxy[0] == '\0')
            return;
        v = t->proxy;
        from = p->conf->tls.proxy != NULL ? "proxy = in its [provider] section" : "--proxy";
    } else {
        bool https = strncmp(p->conf->url, "https://", 8) == 0;
        for (const char *const *n = https ? https_vars : http_vars; *n && from == NULL; n++)
            if ((v = getenv(*n)) != NULL && *v != '\0')
                from = *n;
    }
    if (from != NULL && connerr_proxy_addr(v, p->proxy, sizeof p->proxy))
        p->proxy_from = from;
    else
        p->proxy[0] = '\0';
}

/* The provider's TLS and proxy settings onto its fetcher profile; its host for messages. */
static bool provider_tls(Scheduler *s, Prov *p, const Config *cfg, char *err, size_t errlen)
{
    ProviderTls t;
    jobfile_effective_tls(p->conf, cfg, &t);
    FetcherTls ft = {
        .cacert = t.cacert,
        .capath = t.capath,
        .client_cert = t.client_cert,
        .client_key = t.client_key,
        .tls_min = t.tls_min_version == NULL               ? 0
                   : strcmp(t.tls_min_version, "1.3") == 0 ? 13
                                                           : 12,
        .insecure = t.insecure,
        .proxy = t.proxy && strcmp(t.proxy, "none") == 0 ? "" : t.proxy,
        .noproxy = t.noproxy,
    };
    if (!connerr_url_host(p->conf->url, p->host, sizeof p->host))
        snprintf(p->host, sizeof p->host, "?");
    note_proxy(p, &t);
    return fetcher_profile_tls(s->fetcher, p->profile, &ft, err, errlen);
}

Scheduler *scheduler_new(struct ev_loop *loop, const Config *cfg, const SchedSetup *setup,
                         char *err, size_t errlen)
{
    PGconn *src_conn = setup->source_conn, *sink_conn = setup->sink_conn;
    Scheduler *s = calloc(1, sizeof *s);
    if (s == NULL)
        goto oom;
    s->loop = loop;
    s->cfg = cfg;
    s->exit_code = -1;
    s->rng = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid();
    if (s->rng == 0)
        s->rng = 1;
    buf_init(&s->url, 64 * 1024);
    buf_init(&s->body, 64 * 1024);
    buf_init(&s->scratch, 4096);
    /* A batch provider fills its calls from the window: room for every call in flight
     * full and a full pending batch, whatever the page size. */
    size_t batch_ids = 0;
    for (size_t i = 0; i < setup->n_providers && i < PROVIDERS_MAX; i++)
        if (setup->providers[i].kind == PROVIDER_BATCH &&
            (size_t)setup->providers[i].max_batch > batch_ids)
            batch_ids = (size_t)setup->providers[i].max_batch;
    s->win = window_new(cfg->page_size, cfg->paging_offset, setup->start_offset,
                        batch_ids * ((size_t)cfg->concurrency + 1));
    s->parser = provider_parser_new(cfg->max_depth);
    if (s->win == NULL || s->parser == NULL)
        goto oom;
    s->from_ledger = cfg->cmd == CMD_RETRY_FAILED;
    metrics_init(&s->metrics, ev_now(loop));
    s->numeric_position = !s->from_ledger && (cfg->paging_offset || numeric_type(setup->key_order));
    double at = (double)setup->start_offset; /* a resume starts at its checkpoint */
    if (cfg->paging_offset ? at > 0 : position_number(s, setup->start_key, &at))
        metrics_checkpoint(&s->metrics, s->numeric_position, at);
    rl_init(&s->rl, cfg->rate, rl_burst_for(cfg->rate, cfg->burst), ev_now(loop));
    knee_init(&s->knee, cfg->rate, ev_now(loop));
    if (setup->workers) { /* --shared: the rate found by the ranges before this one */
        s->workers = setup->workers;
        s->range_no = setup->range_no;
        if (workers_knee_get(s->workers, &s->knee)) {
            double r = knee_rate(&s->knee);
            rl_init(&s->rl, r, rl_burst_for(r, cfg->burst), ev_now(loop));
        }
    }

    SourceOpts so = {
        .table = cfg->source_table,
        .key = cfg->key_column,
        .where = cfg->where,
        .page_size = cfg->page_size,
        .paging = cfg->paging_offset ? PAGING_OFFSET : PAGING_KEYSET,
        .start_key = setup->start_key,
        .start_offset = setup->start_offset,
        .skip_since = setup->skip_since,
        .only_missing = cfg->only_missing,
        .refresh_older_than = cfg->refresh_older_than,
        .end_key = setup->end_key,
        .target_table = cfg->target_table,
        .from_ledger = cfg->cmd == CMD_RETRY_FAILED,
        .failures_table = cfg->failures_table,
        .job = cfg->job,
        .reason = cfg->reason,
    };
    s->source = source_new(loop, src_conn, &so, on_page, s);
    src_conn = NULL;
    if (s->source == NULL)
        goto oom;

    SinkOpts ko = {
        .names = {.source = cfg->source_table,
                  .key = cfg->key_column,
                  .target = cfg->target_table,
                  .failures = cfg->failures_table,
                  .checkpoints = cfg->checkpoint_table,
                  .runs = cfg->runs_table,
                  .ranges = cfg->ranges_table},
        .job = cfg->job,
        .paging = cfg->paging_offset ? "offset" : "keyset",
        .no_checkpoint = cfg->cmd == CMD_RETRY_FAILED,
        .position_type = cfg->paging_offset ? "bigint" : setup->key_order,
        .run_id = setup->run_id,
        .range_mode = setup->range_mode,
        .range_no = setup->range_no,
        .fence = setup->fence,
    };
    s->range_mode = setup->range_mode;
    Sink *sink = sink_new(loop, sink_conn, &ko, err, errlen);
    sink_conn = NULL;
    if (sink == NULL)
        goto failed;
    s->sink = sink; /* owned by the outbox */
    static const OutboxHooks hooks = {
        .done = on_outbox_done, .failed = on_outbox_failed, .lost = on_outbox_lost};
    s->outbox = outbox_new(sink, &hooks, s);
    if (s->outbox == NULL)
        goto oom;

    FetcherOpts fo = {
        .timeout_ms = (long)(cfg->timeout * 1000.0),
        .max_body = cfg->max_body,
        .max_connections = cfg->concurrency,
        .user_agent = "pgenrich/" PGENRICH_VERSION,
    };
    s->fetcher = fetcher_new(loop, &fo, err, errlen);
    if (s->fetcher == NULL)
        goto failed;
    for (size_t i = 0; i < setup->n_providers && i < PROVIDERS_MAX; i++) {
        Prov *p = &s->provs[s->n_provs++];
        p->conf = &setup->providers[i];
        p->profile =
            fetcher_add_profile(s->fetcher, p->conf->headers, p->conf->n_headers, p->conf->post,
                                setup->tokens ? setup->tokens[i] : NULL, err, errlen);
        if (p->profile < 0 || !provider_tls(s, p, cfg, err, errlen))
            goto failed;
        if (p->conf->kind == PROVIDER_BATCH &&
            (p->batch = batch_new(loop, s->fetcher, p->profile, p->profile, p->conf, &batch_hooks,
                                  s)) == NULL)
            goto oom;
        (void)metrics_add_provider(&s->metrics, p->conf->name); /* index i, like provs */
        breaker_init(&p->breaker, BREAKER_WINDOW, BREAKER_MIN_REQUESTS, BREAKER_THRESHOLD,
                     BREAKER_COOLDOWN, BREAKER_COOLDOWN_MAX, ev_now(loop));
        quota_init(&p->quota, config_quota_headers(cfg), ev_now(loop));
        p->ramp = cfg->concurrency > RAMP_START ? RAMP_START : 0;
    }
    if (s->n_provs == 0) {
        snprintf(err, errlen, "no provider configured");
        goto failed;
    }

    ev_init(&s->wake, on_wake);
    s->wake.data = s;
    ev_timer_init(&s->flush_tick, on_flush_tick, cfg->flush_interval, cfg->flush_interval);
    s->flush_tick.data = s;
    ev_timer_init(&s->progress, on_progress, cfg->progress_interval, cfg->progress_interval);
    s->progress.data = s;
    ev_timer_init(&s->live_tick, on_live, LIVE_INTERVAL, LIVE_INTERVAL);
    s->live_tick.data = s;
    ev_signal_init(&s->sighup, on_sighup, SIGHUP);
    s->sighup.data = s;
    s->total_estimate = setup->total_estimate;
    ev_signal_init(&s->sigint, on_signal, SIGINT);
    s->sigint.data = s;
    ev_signal_init(&s->sigterm, on_signal, SIGTERM);
    s->sigterm.data = s;
    ev_init(&s->drain, on_drain_timeout);
    s->drain.data = s;
    double tick = cfg->provider_down_timeout > 0 && cfg->provider_down_timeout < 4
                      ? cfg->provider_down_timeout / 4
                      : 1.0;
    ev_timer_init(&s->down_tick, on_down_tick, tick, tick);
    s->down_tick.data = s;
    s->sink_redial = redial_new(loop, setup->conninfo, &setup->db_opts, cfg->db_retry_timeout,
                                "sink", on_sink_redialed, s);
    s->src_redial = redial_new(loop, setup->conninfo, &setup->db_opts, cfg->db_retry_timeout,
                               "source", on_source_redialed, s);
    if (s->sink_redial == NULL || s->src_redial == NULL)
        goto oom;
    return s;

oom:
    snprintf(err, errlen, "out of memory");
failed:
    if (src_conn)
        PQfinish(src_conn);
    if (sink_conn)
        PQfinish(sink_conn);
    scheduler_free(s);
    return NULL;
}

int scheduler_run(Scheduler *s)
{
    s->started = ev_now(s->loop);
    for (int i = 0; i < s->n_provs; i++)
        s->provs[i].last_answer = s->started;
    ev_timer_start(s->loop, &s->flush_tick);
    if (s->cfg->provider_down_timeout > 0)
        ev_timer_start(s->loop, &s->down_tick);
    /* A person at a terminal gets the live line; a log (no terminal, or a log file) the
     * periodic one. Both are info: --quiet (warn) turns them off. */
    progress_rate_init(&s->prate, RATE_TAU, s->started, 0);
    bool show = log_level >= LOG_INFO;
    bool live = show && log_status_ok();
    if (live)
        ev_timer_start(s->loop, &s->live_tick);
    if (show && (!live || log_has_file()) && s->cfg->progress_interval > 0)
        ev_timer_start(s->loop, &s->progress);
    if (log_has_file())
        ev_signal_start(s->loop, &s->sighup);
    ev_signal_start(s->loop, &s->sigint);
    ev_signal_start(s->loop, &s->sigterm);
    maybe_fetch_page(s);
    if (s->phase == PH_RUNNING)
        ev_run(s->loop, 0);
    ev_now_update(s->loop);
    s->st.elapsed = ev_now(s->loop) - s->started;
    const OutboxTotals *t = outbox_totals(s->outbox);
    s->st.rows_loaded = t->rows_loaded;
    s->st.failures = t->failures;
    s->st.kept = t->kept;
    memcpy(s->st.by_reason, t->by_reason, sizeof s->st.by_reason);
    ev_timer_stop(s->loop, &s->flush_tick);
    ev_timer_stop(s->loop, &s->progress);
    ev_timer_stop(s->loop, &s->live_tick);
    ev_signal_stop(s->loop, &s->sighup);
    if (live)
        log_status(NULL); /* the summary starts on a clean line */
    for (int i = 0; i < s->n_provs; i++) {
        const MetricsProvider *mp = &s->metrics.prov[i];
        if (s->provs[i].batch && (mp->batch_unasked || mp->batch_duplicates))
            log_info("event=batch_results_ignored provider=%s unasked=%llu duplicates=%llu "
                     "detail=\"results for IDs not asked (or without an id) and earlier "
                     "results of IDs answered twice, set aside\"",
                     s->provs[i].conf->name, mp->batch_unasked, mp->batch_duplicates);
    }
    ev_timer_stop(s->loop, &s->wake);
    ev_timer_stop(s->loop, &s->drain);
    ev_timer_stop(s->loop, &s->down_tick);
    ev_signal_stop(s->loop, &s->sigint);
    ev_signal_stop(s->loop, &s->sigterm);
    return s->exit_code < 0 ? EXIT_OK : s->exit_code;
}

bool scheduler_metrics(void *ud, Buf *out)
{
    Scheduler *s = ud;
    const OutboxTotals *t = outbox_totals(s->outbox);
    MetricsQuota quota[PROVIDERS_MAX];
    quota_gauges(s, quota);
    MetricsGauges g = {
        .rate_limit = s->cfg->rate,
        .rate = knee_rate(&s->knee),
        .in_flight = (long long)fetcher_in_flight(s->fetcher),
        .rows_loaded = t->rows_loaded,
        .failures_kept = t->kept,
        .reason_names = sched_reason_names,
        .failures = t->by_reason,
        .n_reasons = SCHED_REASONS,
        .source_lag = metrics_source_lag(&s->metrics, window_settled(s->win), ev_now(s->loop)),
        .quota = quota,
    };
    return metrics_render(&s->metrics, &g, out);
}

void scheduler_abandon(Scheduler *s, int code)
{
    if (s->exit_code < 0 || s->exit_code == EXIT_TEMPFAIL)
        s->exit_code = code;
    s->phase = PH_DONE; /* stop_job then flushes nothing */
    fetcher_abort_all(s->fetcher);
    for (int i = 0; i < s->n_provs; i++) {
        if (s->provs[i].batch)
            batch_abort(s->provs[i].batch);
    }
    while (s->live)
        lookup_free(s, s->live);
    for (int i = 0; i < s->n_provs; i++) {
        s->provs[i].ready_head = s->provs[i].ready_tail = NULL;
        s->provs[i].held = NULL;
    }
    end_loop(s);
}

const SchedStats *scheduler_stats(const Scheduler *s)
{
    return &s->st;
}

void scheduler_free(Scheduler *s)
{
    if (s == NULL)
        return;
    if (s->workers)
        workers_knee_put(s->workers, &s->knee);
    if (s->fetcher)
        fetcher_abort_all(s->fetcher);
    for (int i = 0; i < s->n_provs; i++)
        batch_free(s->provs[i].batch);
    while (s->live)
        lookup_free(s, s->live);
    while (s->spare) {
        Lookup *l = s->spare;
        s->spare = l->next;
        free(l);
    }
    fetcher_free(s->fetcher);
    redial_free(s->sink_redial);
    redial_free(s->src_redial);
    source_free(s->source);
    outbox_free(s->outbox);
    window_free(s->win);
    provider_parser_free(s->parser);
    buf_free(&s->url);
    buf_free(&s->body);
    buf_free(&s->scratch);
    free(s);
}
