/* lease: the ranges of a --shared job in PostgreSQL (names->ranges): the split, made once by
 * the first worker; claims with FOR UPDATE SKIP LOCKED; the heartbeat that renews a lease
 * from the loop without blocking it; releases. The fence itself is checked by every flush
 * (SinkOpts.range_mode). All blocking calls are made between ranges, outside the loop. */
#ifndef PGENRICH_LEASE_H
#define PGENRICH_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>
#include "compat.h"
#include "db.h"

struct ev_loop;

/* Make the job's split unless it exists: under a transaction-level advisory lock (so that
 * workers starting together agree on one split), cut the key space of names->source into at
 * most nranges ranges at quantiles of the key column's pg_stats histogram (after an ANALYZE
 * of the column when there is none), else of a sorted random sample of the keys, and insert
 * them, pending. key_order: the key's type and collation (db_key_type's order_out), which
 * the sample is sorted by. *made: how many ranges this call made (0: the split was there).
 * Blocking. */
bool lease_ensure_split(PGconn *c, const DbNames *names, const char *job, int nranges,
                        const char *key_order, int *made, char *err, size_t errlen) WUR;

/* A claimed range. Strings are malloc'd (lease_range_clear frees them); NULL is SQL NULL. */
typedef struct LeaseRange {
    int range_no;
    char *lower;      /* exclusive; NULL: from the start */
    char *upper;      /* inclusive; NULL: the open tail */
    char *position;   /* the range's checkpoint; NULL: nothing committed yet */
    char *started_at; /* the range's first claim (timestamptz text) */
    char *prev_owner; /* the owner before this claim (a takeover), or NULL */
    long long fence;  /* this claim's token */
} LeaseRange;

void lease_range_clear(LeaseRange *r);

typedef enum LeaseClaim {
    LEASE_CLAIMED, /* *out is this worker's until its lease expires */
    LEASE_WAIT,    /* nothing claimable now, but ranges are leased by live workers */
    LEASE_ALL_DONE,
    LEASE_ERROR
} LeaseClaim;

/* In one short transaction, claim the first range of job that is pending or whose lease has
 * expired (SKIP LOCKED: two workers never wait on each other): owner, a lease of
 * lease_seconds from the server's now(), fence + 1, state leased. Blocking. */
LeaseClaim lease_claim(PGconn *c, const DbNames *names, const char *job, const char *owner,
                       double lease_seconds, LeaseRange *out, char *err, size_t errlen) WUR;

/* Whether range r is still this claim's (its fence unchanged) into *ours, and done into
 * *done. Blocking. */
bool lease_check(PGconn *c, const DbNames *names, const char *job, const LeaseRange *r, bool *ours,
                 bool *done, char *err, size_t errlen) WUR;

/* Give range r back (pending, no owner) if it is still this claim's and not done, so that
 * another worker takes it at once rather than after the lease. Blocking. */
bool lease_release(PGconn *c, const DbNames *names, const char *job, const LeaseRange *r, char *err,
                   size_t errlen) WUR;

/* How many of job's ranges are leased with a lease not expired (live workers), into *n;
 * 0 when names->ranges does not exist or this role may not read it. For a plain run, which
 * refuses such a job. */
bool lease_live(PGconn *c, const DbNames *names, const char *job, long long *n, char *err,
                size_t errlen) WUR;

/* The heartbeat of one claim, on loop: every lease_seconds / 3 an UPDATE of the lease's
 * expiry on conn (borrowed; put in non-blocking mode until lease_beat_free), sent only
 * when the previous one has been answered. When the fence has moved on (0 rows), lost(ud)
 * is called once, from the loop. A failed heartbeat (a lost connection) is logged and
 * retried at the next beat: the fence in the flushes still guards the writes. */
typedef struct LeaseBeat LeaseBeat;

LeaseBeat *lease_beat_new(struct ev_loop *loop, PGconn *conn, const DbNames *names, const char *job,
                          const LeaseRange *r, double lease_seconds, void (*lost)(void *ud),
                          void *ud) WUR;

/* Whether lost has been called. */
bool lease_beat_lost(const LeaseBeat *b);

/* Stops it: waits for a heartbeat in flight (a short blocking read), puts conn back in
 * blocking mode. NULL is fine. */
void lease_beat_free(LeaseBeat *b);

#endif
