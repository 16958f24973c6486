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

#endif
