/* status: `pgenrich status --job NAME`: the job's checkpoint, the source IDs past it,
 * whether a runner holds the job now, its last runs and its failures by reason, read with
 * a few blocking queries and printed as text or JSON (src/runs.h renders them). */
#ifndef PGENRICH_STATUS_H
#define PGENRICH_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <libpq-fe.h>
#include "compat.h"
#include "db.h"

typedef struct StatusOpts {
    DbNames names;     /* source, key, failures, checkpoints, runs (target unused) */
    const char *job;   /* required */
    const char *where; /* the job's source filter, for the IDs left, or NULL */
    bool json;         /* else text */
    int history;       /* how many runs to show, newest first */
} StatusOpts;

/* Query the job's state on c and print it to out. Tables that do not exist (no `init`
 * yet) count as empty; a job with no trace at all is reported as never run. The count of
 * IDs left scans the source past the checkpoint (with where): when it fails (no source
 * table, a bad filter) it is shown as unknown with the reason. Returns EXIT_OK, or
 * EXIT_RUNTIME with a one-line reason in err when a query fails or out cannot be
 * written. */
int status_show(PGconn *c, const StatusOpts *opts, FILE *out, char *err, size_t errlen) WUR;

#endif
