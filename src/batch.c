/* batch: pending batch -> POST -> (202: poll timer -> GET -> ...) -> the done hook. A call
 * holds its IDs until the hook has settled them; the Batcher itself never decides an ID's
 * outcome. Poll backoff: POLL_FIRST doubling up to POLL_MAX, bounded by poll_timeout. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "log.h"

#define POLL_FIRST 0.2         /* seconds before the first poll of a job */
#define POLL_MAX   5.0         /* the longest wait between two polls */
#define BODY_CAP   (64u << 20) /* bytes of one batch body */
#define URL_CAP    (64u << 10)

struct BatchCall {
    Batcher *b;
    BatchCall *prev, *next; /* the Batcher's calls not yet over */
    void **items;
    BatchId *ids;
    size_t n;
    Buf body; /* kept for the one resend of an expired job */
    double sent_at;
    char job[BATCHWIRE_JOB_MAX + 1];
    double deadline; /* loop time the job must be done by */
    double delay;    /* before the next poll */
    int resends;
    bool waiting; /* its poll timer runs */
    ev_timer poll;
};

struct Batcher {
    struct ev_loop *loop;
    Fetcher *f;
    int profile, poll_profile;
    const ProviderConf *pc;
    const BatchHooks *h;
    void *ud;
    int size;
    void **items; /* the pending batch, max_batch at most */
    BatchId *ids;
    size_t n;
    ev_timer linger;
    bool lingered; /* the pending batch's linger is over */
    BatchCall *calls;
    size_t waiting;
    Buf url;
};

static void on_post_done(void *ud, const FetchResult *r);

static void on_linger(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Batcher *b = w->data;
    b->lingered = true;
    b->h->due(b->ud);
}

Batcher *batch_new(struct ev_loop *loop, Fetcher *f, int profile, int poll_profile,
                   const ProviderConf *pc, const BatchHooks *hooks, void *ud)
{
    Batcher *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->loop = loop;
    b->f = f;
    b->profile = profile;
    b->poll_profile = poll_profile;
    b->pc = pc;
    b->h = hooks;
    b->ud = ud;
    b->size = pc->max_batch > 0 ? pc->max_batch : 1;
    b->items = calloc((size_t)b->size, sizeof *b->items);
    b->ids = calloc((size_t)b->size, sizeof *b->ids);
    if (b->items == NULL || b->ids == NULL) {
        batch_free(b);
        return NULL;
    }
    ev_init(&b->linger, on_linger);
    b->linger.data = b;
    buf_init(&b->url, URL_CAP);
    return b;
}

/* The IDs are copied: a page of the window may be released (its slow IDs parked
 * elsewhere) while its IDs wait in a batch or a job. */
static void free_ids(BatchId *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)ids[i].id);
}

bool batch_add(Batcher *b, void *item, const char *id, size_t len)
{
    if (b->n >= (size_t)b->pc->max_batch || batch_due(b))
        return false;
    char *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return false;
    memcpy(copy, id, len);
    b->items[b->n] = item;
    b->ids[b->n] = (BatchId){copy, len};
    if (b->n++ == 0) {
        b->lingered = b->pc->batch_linger_ms == 0;
        if (!b->lingered) {
            ev_timer_set(&b->linger, b->pc->batch_linger_ms / 1000.0, 0.);
            ev_timer_start(b->loop, &b->linger);
        }
    }
    return true;
}

size_t batch_take(Batcher *b, void **items, size_t cap)
{
    size_t n = b->n < cap ? b->n : cap;
    memcpy(items, b->items, n * sizeof *items);
    free_ids(b->ids, n);
    b->n -= n;
    memmove(b->items, b->items + n, b->n * sizeof *b->items);
    memmove(b->ids, b->ids + n, b->n * sizeof *b->ids);
    if (b->n == 0) {
        ev_timer_stop(b->loop, &b->linger);
        b->lingered = false;
    }
    return n;
}

bool batch_due(const Batcher *b)
{
    return b->n > 0 && (b->n >= (size_t)b->size || b->lingered);
}

size_t batch_pending(const Batcher *b)
{
    return b->n;
}

size_t batch_waiting(const Batcher *b)
{
    return b->waiting;
}

int batch_size(const Batcher *b)
{
    return b->size;
}

bool batch_shrink(Batcher *b, const BatchCall *c)
{
    if (c->n <= 1)
        return false;
    int half = (int)(c->n / 2);
    if (half < b->size)
        b->size = half;
    return true;
}

void *const *batch_call_items(const BatchCall *c, size_t *n)
{
    *n = c->n;
    return c->items;
}

const BatchId *batch_call_ids(const BatchCall *c)
{
    return c->ids;
}

double batch_call_sent(const BatchCall *c)
{
    return c->sent_at;
}

static void link_call(Batcher *b, BatchCall *c)
{
    c->prev = NULL;
    c->next = b->calls;
    if (b->calls)
        b->calls->prev = c;
    b->calls = c;
}

static void unlink_call(BatchCall *c)
{
    Batcher *b = c->b;
    if (c->waiting) {
        ev_timer_stop(b->loop, &c->poll);
        c->waiting = false;
        b->waiting--;
    }
    if (c->prev)
        c->prev->next = c->next;
    else if (b->calls == c)
        b->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

void batch_call_free(BatchCall *c)
{
    if (c == NULL)
        return;
    buf_free(&c->body);
    if (c->ids)
        free_ids(c->ids, c->n);
    free(c->items);
    free(c->ids);
    free(c);
}

/* Over: detach c and hand it to the scheduler. */
static void finish(BatchCall *c, const FetchResult *r, const char *why)
{
    Batcher *b = c->b;
    unlink_call(c);
    b->h->done(b->ud, c, r, why);
}

static bool post(BatchCall *c)
{
    Batcher *b = c->b;
    return fetcher_start(b->f, b->profile, b->pc->url, c->body.data, c->body.len, on_post_done, c);
}

bool batch_send(Batcher *b, double now)
{
    size_t n = b->n < (size_t)b->size ? b->n : (size_t)b->size;
    BatchCall *c = calloc(1, sizeof *c);
    bool ok = false;
    if (c == NULL || n == 0) {
        free_ids(b->ids, n);
        goto done;
    }
    c->b = b;
    c->items = malloc(n * sizeof *c->items);
    c->ids = malloc(n * sizeof *c->ids);
    buf_init(&c->body, BODY_CAP);
    if (c->items == NULL || c->ids == NULL) {
        free_ids(b->ids, n);
        goto done;
    }
    memcpy(c->items, b->items, n * sizeof *c->items);
    memcpy(c->ids, b->ids, n * sizeof *c->ids); /* the copies are the call's now */
    c->n = n;
    c->sent_at = now;
    ev_init(&c->poll, NULL);
    c->poll.data = c;
    ok = batchwire_body(&c->body, c->ids, n) && post(c);
done:
    /* Sent or not, these IDs leave the pending batch. */
    b->n -= n;
    memmove(b->items, b->items + n, b->n * sizeof *b->items);
    memmove(b->ids, b->ids + n, b->n * sizeof *b->ids);
    if (b->n == 0) {
        ev_timer_stop(b->loop, &b->linger);
        b->lingered = false;
    }
    if (!ok) {
        batch_call_free(c);
        return false;
    }
    link_call(b, c);
    return true;
}

static void on_poll_done(void *ud, const FetchResult *r);

/* The job stays pending past its deadline or has expired: send the batch again once, as a
 * new job, else give it up. */
static void expire(BatchCall *c, const char *why)
{
    Batcher *b = c->b;
    if (c->resends++ == 0) {
        log_info("event=batch_resent provider=%s ids=%zu job=\"%s\" reason=\"%s\"", b->pc->name,
                 c->n, c->job, why);
        if (post(c))
            return;
        why = "could not start a request";
    }
    finish(c, NULL, why);
}

static void on_poll_due(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    BatchCall *c = w->data;
    Batcher *b = c->b;
    c->waiting = false;
    b->waiting--;
    buf_reset(&b->url);
    if (!batchwire_poll_url(&b->url, b->pc->poll_url, c->job) ||
        !fetcher_start(b->f, b->poll_profile, b->url.data, NULL, 0, on_poll_done, c))
        finish(c, NULL, "could not start a poll");
}

/* Poll again after the current delay (doubled for the next time), or expire when that
 * would pass the deadline. */
static void poll_later(BatchCall *c, double now, double at_least)
{
    Batcher *b = c->b;
    double d = c->delay > at_least ? c->delay : at_least;
    if (now + d > c->deadline) {
        if (now >= c->deadline) {
            expire(c, "job still pending after poll_timeout");
            return;
        }
        d = c->deadline - now;
    }
    c->delay = c->delay * 2 < POLL_MAX ? c->delay * 2 : POLL_MAX;
    ev_timer_init(&c->poll, on_poll_due, d, 0.);
    c->poll.data = c;
    ev_timer_start(b->loop, &c->poll);
    c->waiting = true;
    b->waiting++;
}

static void on_post_done(void *ud, const FetchResult *r)
{
    BatchCall *c = ud;
    Batcher *b = c->b;
    double now = ev_now(b->loop);
    b->h->answered(b->ud, c, r, false);
    if (r->terr == TE_NONE && r->status == 202 &&
        batchwire_job(r->body, r->body_len, c->job, sizeof c->job)) {
        c->deadline = now + b->pc->poll_timeout;
        c->delay = POLL_FIRST;
        log_debug("event=batch_pending provider=%s ids=%zu job=\"%s\"", b->pc->name, c->n, c->job);
        poll_later(c, now, 0);
        return;
    }
    finish(c, r, NULL);
}

static void on_poll_done(void *ud, const FetchResult *r)
{
    BatchCall *c = ud;
    Batcher *b = c->b;
    double now = ev_now(b->loop);
    b->h->answered(b->ud, c, r, true);
    if (r->terr == TE_NONE && r->status == 404) {
        expire(c, "job expired (404 on poll)");
        return;
    }
    bool transient = r->terr != TE_NONE || r->status == 202 || r->status == 408 ||
                     r->status == 429 || (r->status >= 500 && r->status <= 599);
    if (!transient) {
        finish(c, r, NULL);
        return;
    }
    poll_later(c, now, 0);
}

void batch_abort(Batcher *b)
{
    ev_timer_stop(b->loop, &b->linger);
    b->lingered = false;
    free_ids(b->ids, b->n);
    b->n = 0;
    while (b->calls) {
        BatchCall *c = b->calls;
        unlink_call(c);
        batch_call_free(c);
    }
}

void batch_free(Batcher *b)
{
    if (b == NULL)
        return;
    if (b->loop)
        batch_abort(b);
    buf_free(&b->url);
    free(b->items);
    free(b->ids);
    free(b);
}
