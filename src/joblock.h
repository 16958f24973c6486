/* joblock: one job, one runner. A session-level advisory lock per job, held on the sink
 * connection for the whole run (and for retry-failed), so that an overlapping cron run or
 * an orchestrator's retry stops at once instead of fetching everything a second time. */
#ifndef PGENRICH_JOBLOCK_H
#define PGENRICH_JOBLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>
#include "compat.h"

typedef enum JobLockResult {
    JOBLOCK_TAKEN, /* this session holds the job's lock until it ends */
    JOBLOCK_BUSY,  /* another session holds it: err names the job and the holder */
    JOBLOCK_ERROR  /* the database could not be asked: err says why */
} JobLockResult;

/* Try to take the lock of job (in the namespace of the checkpoint table named by
 * checkpoints, so that two deployments sharing a database do not block each other),
 * waiting at most 3 s (a run killed a moment ago may hold it until its backend ends). The
 * lock is released when conn closes (also when the process dies).
 * While it holds the lock, the session's application_name, when it is pgenrich's default,
 * also names this process and host, so that a second runner can tell who holds it.
 * Blocking; call before the loop runs. */
JobLockResult joblock_take(PGconn *conn, const char *checkpoints, const char *job, char *err,
                           size_t errlen) WUR;

/* The same lock in shared mode, for the workers of a --shared job: any number of them hold
 * it together, and it excludes a plain run (which takes it exclusively) both ways. BUSY
 * means a plain run holds the job. */
JobLockResult joblock_take_shared(PGconn *conn, const char *checkpoints, const char *job, char *err,
                                  size_t errlen) WUR;

/* Who holds a job's lock. */
typedef struct JobLockHolder {
    bool held;
    long backend_pid;     /* the PostgreSQL backend holding it */
    char application[96]; /* its application_name ("pgenrich pid N on HOST" for a runner) */
    char client[64];      /* client address, or "local" */
    char since[32];       /* backend start, UTC, ISO 8601 */
    bool shared;          /* held in shared mode (--shared workers; then the others too) */
    long holders;         /* sessions holding it */
} JobLockHolder;

/* Look up, without waiting or taking anything, who holds job's lock now (the same lock as
 * joblock_take's). h->held is false when nobody does. Returns false with a reason in err
 * when the database could not be asked. Blocking. */
bool joblock_holder(PGconn *conn, const char *checkpoints, const char *job, JobLockHolder *h,
                    char *err, size_t errlen) WUR;

#endif
