/* scheduler: pages of IDs come in from the source, lookups go out through the fetcher under
 * the concurrency cap and the token bucket, answers become COPY lines in the active flush
 * buffer, and the sink commits a buffer together with the checkpoint watermark. Everything
 * happens in callbacks on one libev loop; nothing here blocks. */
#include "scheduler.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "buf.h"
#include "checkpoint.h"
#include "copyenc.h"
#include "fetcher.h"
#include "log.h"
#include "ratelimit.h"
#include "retry.h"
#include "sink.h"
#include "source.h"

const char *const sched_reason_names[5] = {REASON_NOT_FOUND, REASON_NO_LOCATION,
                                           REASON_BAD_RESPONSE, REASON_REJECTED, REASON_EXHAUSTED};

#define WINDOW_PAGES      8          /* pages of IDs held at once (in flight or unsettled) */
#define FLUSH_BUF_MAX     (1u << 30) /* hard cap of one flush buffer */
#define LAST_ERROR_MAX    200        /* bytes of last_error kept per failure */
#define PROGRESS_INTERVAL 10.0       /* seconds between progress lines */
#define PROVIDER_NAME     "primary"

typedef struct Page Page;
struct Page {
    PGresult *res;
    int n;
    int settled;
    uint64_t first_seq;
    Page *next;
};

typedef struct Lookup Lookup;
struct Lookup {
    Scheduler *s;
    Page *page;
    int row;
    uint64_t seq;
    int attempts;
    long last_status;
    ev_timer retry;
    Lookup *prev, *next; /* the list of live lookups */
    Lookup *ready_next;  /* the queue of lookups whose backoff has passed */
    char last_error[LAST_ERROR_MAX];
};

/* One batch of settled outcomes on its way to the database. */
typedef struct FlushBuf {
    Buf rows;
    Buf fails;
    size_t nrows, nfails;
    long long by_reason[5];
    char *position; /* checkpoint position committed with this batch, or NULL */
} FlushBuf;

typedef enum Phase { PH_RUNNING, PH_FINISHING, PH_STOPPING, PH_DONE } Phase;

struct Scheduler {
    struct ev_loop *loop;
    const Config *cfg;
    Source *source;
    Sink *sink;
    Fetcher *fetcher;
    RateLimit rl;
    Ckpt ckpt;

    char *url_template;
    Buf url;
    Buf scratch;

    Page *head, *tail; /* the window, oldest first */
    Page *disp_page;   /* next fresh ID: disp_page row disp_row */
    int disp_row;
    size_t window_ids;
    size_t window_cap;
    uint64_t next_seq;
    bool source_ended;
    char *released_key; /* last key of the newest page released from the window */
    bool paging_offset;
    long long start_offset;

    Lookup *live; /* every lookup not yet settled */
    size_t live_count;
    Lookup *ready_head, *ready_tail;
    size_t in_flight;
    double pause_until;

    FlushBuf bufs[2];
    FlushBuf *active;   /* settled outcomes go here */
    FlushBuf *flushing; /* the batch the sink is committing, or NULL */
    bool sink_failed;

    ev_timer wake;       /* rate limit / 429 pause */
    ev_timer flush_tick; /* flush-interval */
    ev_timer progress;
    ev_signal sigint, sigterm;
    int signals;

    Phase phase;
    bool final_sent; /* the flush that marks the job done has started */
    int exit_code;
    uint64_t rng;
    double started;
    SchedStats st;
};

static void pump(Scheduler *s);
static void maybe_flush(Scheduler *s, bool force);
static void stop_job(Scheduler *s, int code);

/* ---------------------------------------------------------------- small helpers */

static double rand01(Scheduler *s)
{
    /* xorshift64*: jitter only needs to be cheap and well spread */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (double)((s->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static const char *lookup_id(const Lookup *l, int *len)
{
    *len = PQgetlength(l->page->res, l->row, 0);
    return PQgetvalue(l->page->res, l->row, 0);
}

static int reason_index(const char *reason)
{
    for (int i = 0; i < 5; i++)
        if (strcmp(reason, sched_reason_names[i]) == 0)
            return i;
    return 3;
}

static void flushbuf_init(FlushBuf *b)
{
    memset(b, 0, sizeof *b);
    buf_init(&b->rows, FLUSH_BUF_MAX);
    buf_init(&b->fails, FLUSH_BUF_MAX);
}

static void flushbuf_clear(FlushBuf *b)
{
    buf_reset(&b->rows);
    buf_reset(&b->fails);
    b->nrows = b->nfails = 0;
    memset(b->by_reason, 0, sizeof b->by_reason);
    free(b->position);
    b->position = NULL;
}

static void flushbuf_free(FlushBuf *b)
{
    buf_free(&b->rows);
    buf_free(&b->fails);
    free(b->position);
}

static size_t flushbuf_count(const FlushBuf *b)
{
    return b->nrows + b->nfails;
}

/* ---------------------------------------------------------------- window of pages */

static void release_settled_pages(Scheduler *s)
{
    while (s->head && s->head->settled == s->head->n && s->head != s->disp_page) {
        Page *p = s->head;
        char *key = strdup(PQgetvalue(p->res, p->n - 1, 0));
        if (key == NULL) {
            stop_job(s, EXIT_RUNTIME);
            return;
        }
        free(s->released_key);
        s->released_key = key;
        s->head = p->next;
        if (s->head == NULL)
            s->tail = NULL;
        s->window_ids -= (size_t)p->n;
        PQclear(p->res);
        free(p);
    }
}

static void maybe_fetch_page(Scheduler *s)
{
    if (s->phase != PH_RUNNING || s->source_ended || source_busy(s->source))
        return;
    if (s->window_ids + (size_t)s->cfg->page_size > s->window_cap)
        return;
    if (!source_fetch(s->source) && !source_busy(s->source) && !s->source_ended)
        log_debug("event=source_fetch_refused");
}

static void on_page(void *ud, PGresult *res, const char *err)
{
    Scheduler *s = ud;
    if (res == NULL) {
        log_error("event=source_failed error=\"%s\"", err ? err : "unknown");
        stop_job(s, EXIT_RUNTIME);
        return;
    }
    int n = PQntuples(res);
    if (n == 0 || s->phase != PH_RUNNING) {
        if (n == 0)
            s->source_ended = true;
        PQclear(res);
        pump(s);
        return;
    }
    Page *p = calloc(1, sizeof *p);
    if (p == NULL) {
        PQclear(res);
        stop_job(s, EXIT_RUNTIME);
        return;
    }
    p->res = res;
    p->n = n;
    p->first_seq = s->next_seq;
    s->next_seq += (uint64_t)n;
    s->window_ids += (size_t)n;
    s->st.ids_read += n;
    if (s->tail)
        s->tail->next = p;
    else
        s->head = p;
    s->tail = p;
    if (s->disp_page == NULL) {
        s->disp_page = p;
        s->disp_row = 0;
    }
    log_debug("event=page rows=%d window_ids=%zu", n, s->window_ids);
    pump(s);
}

/* The checkpoint position for everything settled so far, or NULL if nothing is. */
static char *current_position(Scheduler *s)
{
    uint64_t low = ckpt_low(&s->ckpt);
    char num[32];
    if (s->paging_offset) {
        snprintf(num, sizeof num, "%lld", s->start_offset + (long long)low);
        return low ? strdup(num) : NULL;
    }
    if (low == 0)
        return NULL;
    uint64_t seq = low - 1;
    for (Page *p = s->head; p; p = p->next)
        if (seq >= p->first_seq && seq < p->first_seq + (uint64_t)p->n)
            return strdup(PQgetvalue(p->res, (int)(seq - p->first_seq), 0));
    return s->released_key ? strdup(s->released_key) : NULL;
}

/* ---------------------------------------------------------------- lookups */

static Lookup *lookup_new(Scheduler *s)
{
    Lookup *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->s = s;
    l->page = s->disp_page;
    l->row = s->disp_row;
    l->seq = s->disp_page->first_seq + (uint64_t)s->disp_row;
    ev_init(&l->retry, NULL);
    l->next = s->live;
    if (s->live)
        s->live->prev = l;
    s->live = l;
    s->live_count++;
    if (++s->disp_row == s->disp_page->n) {
        s->disp_page = s->disp_page->next;
        s->disp_row = 0;
    }
    return l;
}

static void lookup_free(Scheduler *s, Lookup *l)
{
    ev_timer_stop(s->loop, &l->retry);
    if (l->prev)
        l->prev->next = l->next;
    else
        s->live = l->next;
    if (l->next)
        l->next->prev = l->prev;
    s->live_count--;
    free(l);
}

static void settle(Scheduler *s, Lookup *l)
{
    if (!ckpt_settle(&s->ckpt, l->seq))
        log_error("event=bug detail=\"settled twice or outside the window\" seq=%llu",
                  (unsigned long long)l->seq);
    l->page->settled++;
    lookup_free(s, l);
    release_settled_pages(s);
    if (flushbuf_count(s->active) >= (size_t)s->cfg->flush_rows)
        maybe_flush(s, false);
}

static bool put_id(Buf *b, const Lookup *l)
{
    int len;
    const char *id = lookup_id(l, &len);
    return copyenc_text(b, id, (size_t)len) && buf_putc(b, '\t');
}

static void emit_row(Scheduler *s, Lookup *l, const ProviderRow *row)
{
    Buf *b = &s->active->rows;
    size_t mark = b->len;
    bool ok = put_id(b, l);
    for (int c = 0; ok && c < COL_TEXT_COUNT; c++)
        ok = copyenc_text(b, row->text[c], row->len[c]) && buf_putc(b, '\t');
    for (int c = 0; ok && c < 2; c++) {
        ok = row->has_coord[c] ? copyenc_double(b, row->coord[c]) : copyenc_text(b, NULL, 0);
        ok = ok && buf_putc(b, '\t');
    }
    ok = ok && buf_puts(b, PROVIDER_NAME "\n");
    if (!ok) {
        buf_truncate(b, mark);
        log_error("event=buffer_full detail=\"flush buffer cap reached\"");
        stop_job(s, EXIT_RUNTIME);
        return;
    }
    s->active->nrows++;
    settle(s, l);
}

static void emit_failure(Scheduler *s, Lookup *l, const char *reason, long status,
                         const char *error)
{
    Buf *b = &s->active->fails;
    size_t mark = b->len;
    size_t elen = strnlen(error, LAST_ERROR_MAX);
    bool ok = put_id(b, l) && copyenc_text(b, reason, strlen(reason)) && buf_putc(b, '\t');
    ok = ok && (status > 0 ? copyenc_int(b, status) : copyenc_text(b, NULL, 0));
    ok = ok && buf_putc(b, '\t') && copyenc_int(b, l->attempts) && buf_putc(b, '\t');
    ok = ok && copyenc_text(b, error, elen) && buf_putc(b, '\n');
    if (!ok) {
        buf_truncate(b, mark);
        log_error("event=buffer_full detail=\"flush buffer cap reached\"");
        stop_job(s, EXIT_RUNTIME);
        return;
    }
    s->active->nfails++;
    s->active->by_reason[reason_index(reason)]++;
    settle(s, l);
}

static void on_retry_due(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Lookup *l = w->data;
    Scheduler *s = l->s;
    l->ready_next = NULL;
    if (s->ready_tail)
        s->ready_tail->ready_next = l;
    else
        s->ready_head = l;
    s->ready_tail = l;
    pump(s);
}

static void schedule_retry(Scheduler *s, Lookup *l, const FetchResult *r)
{
    double delay = retry_backoff(l->attempts, s->cfg->backoff_base, s->cfg->backoff_cap, rand01(s));
    double ra = 0;
    bool has_ra = r->retry_after && retry_after_parse(r->retry_after, ev_now(s->loop), &ra);
    if (has_ra && ra > delay)
        delay = ra;
    if (r->terr == TE_NONE && r->status == 429) {
        /* The provider is saturated: hold every dispatch, not only this ID's. */
        double until = ev_now(s->loop) + (has_ra ? ra : 1.0);
        if (until > s->pause_until)
            s->pause_until = until;
    }
    s->st.retries++;
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
    emit_failure(s, l, REASON_BAD_RESPONSE, r->status, e->data ? e->data : why);
}

static void on_fetch_done(void *ud, const FetchResult *r)
{
    Lookup *l = ud;
    Scheduler *s = l->s;
    const char *reason = NULL;
    s->in_flight--;
    s->st.requests++;
    l->attempts++;
    l->last_status = r->terr == TE_NONE ? r->status : 0;
    if (r->terr != TE_NONE)
        snprintf(l->last_error, sizeof l->last_error, "%s", r->error);
    else
        snprintf(l->last_error, sizeof l->last_error, "HTTP %ld", r->status);

    switch (retry_classify(r->terr, r->status, &reason)) {
    case RA_PARSE: {
        ProviderRow row;
        char err[128];
        MapResult m = provider_map(&provider_map_primary, r->body, r->body_len, s->cfg->max_depth,
                                   &row, err, sizeof err);
        if (m == MAP_FOUND)
            emit_row(s, l, &row);
        else if (m == MAP_MISS)
            emit_failure(s, l, REASON_NO_LOCATION, r->status, "no location");
        else
            bad_response(s, l, err, r);
        provider_row_free(&row);
        break;
    }
    case RA_FAIL:
        if (r->terr == TE_TOO_LARGE)
            emit_failure(s, l, reason, r->status, l->last_error);
        else
            emit_failure(s, l, reason, l->last_status, l->last_error);
        break;
    case RA_FATAL:
        log_error("event=credentials_refused status=%ld detail=\"the provider refused the "
                  "API token; check PGENRICH_TOKEN or --token-file\"",
                  r->status);
        lookup_free(s, l); /* unsettled: the checkpoint stays before it */
        stop_job(s, EXIT_AUTH);
        return;
    case RA_RETRY:
        if (l->attempts >= s->cfg->max_attempts)
            emit_failure(s, l, REASON_EXHAUSTED, l->last_status, l->last_error);
        else
            schedule_retry(s, l, r);
        break;
    }
    pump(s);
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
    if (s->disp_page == NULL)
        return false;
    /* Backpressure: stop reading new IDs while the database lags far behind. */
    if (flushbuf_count(s->active) >= 2 * (size_t)s->cfg->flush_rows)
        return false;
    return ckpt_in_window(&s->ckpt, s->disp_page->first_seq + (uint64_t)s->disp_row);
}

static bool start_request(Scheduler *s, Lookup *l)
{
    int len;
    const char *id = lookup_id(l, &len);
    buf_reset(&s->url);
    if (!provider_build_url(&s->url, s->url_template, id, (size_t)len)) {
        emit_failure(s, l, REASON_REJECTED, 0, "ID too long for a URL");
        return true;
    }
    if (!fetcher_get(s->fetcher, s->url.data, on_fetch_done, l)) {
        log_error("event=request_failed detail=\"could not start a request\"");
        lookup_free(s, l);
        stop_job(s, EXIT_RUNTIME);
        return false;
    }
    s->in_flight++;
    return true;
}

static void check_finished(Scheduler *s)
{
    if (s->phase == PH_RUNNING && s->source_ended && s->head == NULL && s->live_count == 0) {
        s->phase = PH_FINISHING;
        maybe_flush(s, true);
    }
}

static void pump(Scheduler *s)
{
    while (s->phase == PH_RUNNING && s->in_flight < (size_t)s->cfg->concurrency) {
        bool have_ready = s->ready_head != NULL;
        if (!have_ready && !fresh_allowed(s))
            break;
        double now = ev_now(s->loop);
        double wait = 0;
        if (now < s->pause_until)
            wait = s->pause_until - now;
        else if (!rl_take(&s->rl, now))
            wait = rl_wait(&s->rl, now);
        if (wait > 0) {
            if (!ev_is_active(&s->wake)) {
                ev_timer_set(&s->wake, wait, 0.);
                ev_timer_start(s->loop, &s->wake);
            }
            break;
        }
        Lookup *l;
        if (have_ready) {
            l = s->ready_head;
            s->ready_head = l->ready_next;
            if (s->ready_head == NULL)
                s->ready_tail = NULL;
        } else if ((l = lookup_new(s)) == NULL) {
            stop_job(s, EXIT_RUNTIME);
            break;
        }
        if (!start_request(s, l))
            break;
    }
    maybe_fetch_page(s);
    check_finished(s);
}

/* ---------------------------------------------------------------- flushing */

static void end_loop(Scheduler *s)
{
    s->phase = PH_DONE;
    ev_break(s->loop, EVBREAK_ALL);
}

static void on_flushed(void *ud, bool ok, const char *err)
{
    Scheduler *s = ud;
    FlushBuf *b = s->flushing;
    s->flushing = NULL;
    if (!ok) {
        log_error("event=flush_failed error=\"%s\" detail=\"nothing of this batch was "
                  "committed; rerun to resume from the last checkpoint\"",
                  err ? err : "unknown");
        s->sink_failed = true;
        flushbuf_clear(b);
        stop_job(s, EXIT_RUNTIME);
        end_loop(s);
        return;
    }
    s->st.rows_loaded += (long long)b->nrows;
    s->st.failures += (long long)b->nfails;
    for (int i = 0; i < 5; i++)
        s->st.by_reason[i] += b->by_reason[i];
    log_debug("event=flushed rows=%zu failures=%zu position=\"%s\"", b->nrows, b->nfails,
              b->position ? b->position : "");
    flushbuf_clear(b);
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
    if (s->flushing || s->sink_failed || s->phase == PH_DONE)
        return;
    FlushBuf *b = s->active;
    size_t n = flushbuf_count(b);
    bool done = false;
    switch (s->phase) {
    case PH_RUNNING:
        if (n == 0 || (!force && n < (size_t)s->cfg->flush_rows))
            return;
        break;
    case PH_FINISHING:
        done = true;
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
    b->position = current_position(s);
    s->active = b == &s->bufs[0] ? &s->bufs[1] : &s->bufs[0];
    s->flushing = b;
    if (done)
        s->final_sent = true;
    if (!sink_flush(s->sink, &b->rows, b->nrows, &b->fails, b->nfails, b->position, done,
                    on_flushed, s)) {
        s->flushing = NULL;
        s->sink_failed = true;
        flushbuf_clear(b);
        log_error("event=flush_failed error=\"%s\"", sink_last_error(s->sink));
        stop_job(s, EXIT_RUNTIME);
        end_loop(s);
    }
}

static void on_flush_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Scheduler *s = w->data;
    if (s->phase == PH_RUNNING && flushbuf_count(s->active) > 0)
        maybe_flush(s, true);
}

/* ---------------------------------------------------------------- stopping */

/* Stop dispatching; abandon lookups not yet settled (they are redone on the next run);
 * commit what is settled; then end the loop. The first code given wins. A job that is
 * already committing its last batch (finishing) is left to complete. */
static void stop_job(Scheduler *s, int code)
{
    bool finishing = s->phase == PH_FINISHING || s->phase == PH_DONE;
    if (s->exit_code < 0 && !(finishing && code == EXIT_INTERRUPTED))
        s->exit_code = code;
    if (s->phase != PH_RUNNING)
        return;
    s->phase = PH_STOPPING;
    fetcher_abort_all(s->fetcher);
    s->in_flight = 0;
    while (s->live)
        lookup_free(s, s->live);
    s->ready_head = s->ready_tail = NULL;
    ev_timer_stop(s->loop, &s->wake);
    maybe_flush(s, true);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    Scheduler *s = w->data;
    if (++s->signals > 1) {
        log_warn("event=second_signal detail=\"exiting now; the last committed checkpoint "
                 "stands\"");
        _exit(EXIT_INTERRUPTED);
    }
    log_warn("event=interrupted signal=%d detail=\"committing settled work, then exiting\"",
             w->signum);
    stop_job(s, EXIT_INTERRUPTED);
}

static void on_progress(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    Scheduler *s = w->data;
    double el = ev_now(loop) - s->started;
    long long settled = (long long)ckpt_low(&s->ckpt);
    log_info("event=progress ids_read=%lld settled=%lld rows_loaded=%lld failures=%lld "
             "in_flight=%zu retries=%lld elapsed_s=%.1f ids_per_s=%.0f",
             s->st.ids_read, settled, s->st.rows_loaded, s->st.failures, s->in_flight,
             s->st.retries, el, el > 0 ? (double)settled / el : 0.0);
}

/* ---------------------------------------------------------------- life cycle */

static char *build_template(const char *base)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    static const char path[] = "/api/v2/entities/{id}?select=id,label,location";
    char *t = malloc(n + sizeof path);
    if (t == NULL)
        return NULL;
    memcpy(t, base, n);
    memcpy(t + n, path, sizeof path);
    return t;
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
    s->paging_offset = cfg->paging_offset;
    s->start_offset = setup->start_offset;
    s->rng = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid();
    if (s->rng == 0)
        s->rng = 1;
    buf_init(&s->url, 64 * 1024);
    buf_init(&s->scratch, 4096);
    flushbuf_init(&s->bufs[0]);
    flushbuf_init(&s->bufs[1]);
    s->active = &s->bufs[0];
    s->window_cap = (size_t)cfg->page_size * WINDOW_PAGES;
    if (!ckpt_init(&s->ckpt, 0, s->window_cap))
        goto oom;
    s->url_template = build_template(cfg->base_url);
    if (s->url_template == NULL)
        goto oom;
    if (!provider_template_check(s->url_template, err, errlen))
        goto failed;
    rl_init(&s->rl, cfg->rate, cfg->rate > 0 ? fmax(1.0, cfg->rate / 20.0) : 1.0, ev_now(loop));

    SourceOpts so = {
        .table = cfg->source_table,
        .key = cfg->key_column,
        .where = cfg->where,
        .page_size = cfg->page_size,
        .paging = cfg->paging_offset ? PAGING_OFFSET : PAGING_KEYSET,
        .start_key = setup->start_key,
        .start_offset = setup->start_offset,
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
                  .checkpoints = cfg->checkpoint_table},
        .job = cfg->job,
        .paging = cfg->paging_offset ? "offset" : "keyset",
    };
    s->sink = sink_new(loop, sink_conn, &ko, err, errlen);
    sink_conn = NULL;
    if (s->sink == NULL)
        goto failed;

    FetcherOpts fo = {
        .timeout_ms = (long)(cfg->timeout * 1000.0),
        .max_body = cfg->max_body,
        .max_connections = cfg->concurrency,
        .token = setup->token,
        .user_agent = "pgenrich/" PGENRICH_VERSION,
    };
    s->fetcher = fetcher_new(loop, &fo, err, errlen);
    if (s->fetcher == NULL)
        goto failed;

    ev_init(&s->wake, on_wake);
    s->wake.data = s;
    ev_timer_init(&s->flush_tick, on_flush_tick, cfg->flush_interval, cfg->flush_interval);
    s->flush_tick.data = s;
    ev_timer_init(&s->progress, on_progress, PROGRESS_INTERVAL, PROGRESS_INTERVAL);
    s->progress.data = s;
    ev_signal_init(&s->sigint, on_signal, SIGINT);
    s->sigint.data = s;
    ev_signal_init(&s->sigterm, on_signal, SIGTERM);
    s->sigterm.data = s;
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
    ev_timer_start(s->loop, &s->flush_tick);
    if (!s->cfg->quiet)
        ev_timer_start(s->loop, &s->progress);
    ev_signal_start(s->loop, &s->sigint);
    ev_signal_start(s->loop, &s->sigterm);
    maybe_fetch_page(s);
    if (s->phase == PH_RUNNING)
        ev_run(s->loop, 0);
    ev_now_update(s->loop);
    s->st.elapsed = ev_now(s->loop) - s->started;
    ev_timer_stop(s->loop, &s->flush_tick);
    ev_timer_stop(s->loop, &s->progress);
    ev_timer_stop(s->loop, &s->wake);
    ev_signal_stop(s->loop, &s->sigint);
    ev_signal_stop(s->loop, &s->sigterm);
    return s->exit_code < 0 ? EXIT_OK : s->exit_code;
}

const SchedStats *scheduler_stats(const Scheduler *s)
{
    return &s->st;
}

void scheduler_free(Scheduler *s)
{
    if (s == NULL)
        return;
    if (s->fetcher)
        fetcher_abort_all(s->fetcher);
    while (s->live)
        lookup_free(s, s->live);
    fetcher_free(s->fetcher);
    source_free(s->source);
    sink_free(s->sink);
    while (s->head) {
        Page *p = s->head;
        s->head = p->next;
        PQclear(p->res);
        free(p);
    }
    flushbuf_free(&s->bufs[0]);
    flushbuf_free(&s->bufs[1]);
    ckpt_free(&s->ckpt);
    buf_free(&s->url);
    buf_free(&s->scratch);
    free(s->url_template);
    free(s->released_key);
    free(s);
}
