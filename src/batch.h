/* batch: the calls of one batch provider (API.md section 2) on the loop. Collects the IDs
 * the scheduler hands it into a pending batch, sends it as one POST when the scheduler
 * says so (full, or its linger is over), and follows a 202 job by polling its URL on a
 * timer with backoff until it answers or poll_timeout passes; an expired or timed-out job
 * is sent again once as a new batch. What the answers mean for each ID is the scheduler's
 * business: this module only moves calls and reports how they ended. */
#ifndef PGENRICH_BATCH_H
#define PGENRICH_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include "batchwire.h"
#include "compat.h"
#include "fetcher.h"
#include "jobfile.h"

struct ev_loop;

typedef struct Batcher Batcher;
typedef struct BatchCall BatchCall;

typedef struct BatchHooks {
    /* Every answer of a call, a POST's or a poll's (transport errors included), as it
     * comes: for the request counts, and for a POST (poll false) the breaker and the rate.
     * Must not end the call. */
    void (*answered)(void *ud, BatchCall *c, const FetchResult *r, bool poll);
    /* The call is over. r is the answer that ended it (a POST's that was not a 202 with a
     * job id, or a poll's that was neither a 202 nor a transient failure: typically a 200
     * with results), or NULL when its job expired (404) or stayed pending past
     * poll_timeout after the one resend: why then says which. The call is already
     * detached from the Batcher: the hook must release it with batch_call_free, and may
     * call anything of this module meanwhile (batch_abort included). */
    void (*done)(void *ud, BatchCall *c, const FetchResult *r, const char *why);
    /* A short batch's linger has run out: batch_due is now true. */
    void (*due)(void *ud);
} BatchHooks;

/* A Batcher for provider pc (kind batch; must outlive it) sending its POSTs with fetcher
 * profile `profile` and its polls (GETs) with `poll_profile`. hooks are borrowed; ud is
 * passed back to them. NULL when out of memory. */
Batcher *batch_new(struct ev_loop *loop, Fetcher *f, int profile, int poll_profile,
                   const ProviderConf *pc, const BatchHooks *hooks, void *ud) WUR;

/* Add an ID to the pending batch; item is the caller's handle; id (len bytes) is copied.
 * The first ID of a batch starts the linger timer. False when the pending batch is
 * already full or due (send it first), or out of memory. */
bool batch_add(Batcher *b, void *item, const char *id, size_t len) WUR;

/* Take up to cap items out of the pending batch (oldest first) into items, for the caller
 * to send elsewhere; returns how many. */
size_t batch_take(Batcher *b, void **items, size_t cap);

/* Whether the pending batch should go now: it is full, or its linger is over. */
bool batch_due(const Batcher *b);

/* IDs in the pending batch. */
size_t batch_pending(const Batcher *b);

/* Send up to the current batch size of the pending IDs as one POST (the rest stay
 * pending). False when the request could not be started (out of memory, or curl refused):
 * the IDs are then dropped from the Batcher, untouched, for the caller to deal with. */
bool batch_send(Batcher *b, double now) WUR;

/* Calls waiting between two polls of their job: each holds a place under the concurrency
 * cap although no request of it is in the fetcher. */
size_t batch_waiting(const Batcher *b);

/* The largest batch now: max_batch, or less after 413s. */
int batch_size(const Batcher *b);

/* A 413 for c: make the batch size at most half of c's IDs. False when c held one ID (it
 * cannot be split any further). */
bool batch_shrink(Batcher *b, const BatchCall *c);

/* The items of c, in the order they were added; *n gets their count. Borrowed. */
void *const *batch_call_items(const BatchCall *c, size_t *n);

/* The IDs of c, parallel to its items. Borrowed. */
const BatchId *batch_call_ids(const BatchCall *c);

/* Loop time at which c's first POST was started. */
double batch_call_sent(const BatchCall *c);

/* Release a call handed to the done hook. NULL is fine. */
void batch_call_free(BatchCall *c);

/* Drop the pending batch and every call not yet over, without a hook. The fetcher's
 * requests must have been aborted first (fetcher_abort_all): their callbacks point here. */
void batch_abort(Batcher *b);

/* batch_abort, then release b. NULL is fine. */
void batch_free(Batcher *b);

#endif
