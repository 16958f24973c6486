/* joblock: pg_advisory_lock(int, int) under a short lock_timeout, with a fixed first key and a hash
 * of the checkpoint table and job as the second. A hash collision between two job names makes them
 * exclude each other, never run together. */
#include "joblock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"

/* The first key of every job lock: "pgnr" in ASCII. */
#define JOBLOCK_CLASS "1885826674"
/* How long a second runner waits for the lock before it gives up. */
#define JOBLOCK_GRACE "3s"

/* The lock's key as a text parameter: the checkpoint table and the job, unambiguous. */
static char *lock_name(const char *checkpoints, const char *job)
{
    size_t n = strlen(checkpoints) + strlen(job) + 2;
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, "%s%c%s", checkpoints, '/', job);
    return s;
}

static bool query_holder(PGconn *conn, const char *name, JobLockHolder *h, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT l.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'), "
        "coalesce(to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "''), l.mode = 'ShareLock', count(*) OVER () "
        "FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = " JOBLOCK_CLASS
        "::oid AND l.objid = ((pg_catalog.hashtext($1)::bigint + 4294967296) % "
        "4294967296)::oid AND l.objsubid = 2 ORDER BY l.mode = 'ShareLock', l.pid LIMIT 1";
    const char *params[1] = {name};
    memset(h, 0, sizeof *h);
    PGresult *r = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        db_error(conn, r, "looking up the job's lock", err, errlen);
    else if (PQntuples(r) == 1) {
        h->held = true;
        h->backend_pid = strtol(PQgetvalue(r, 0, 0), NULL, 10);
        snprintf(h->application, sizeof h->application, "%s", PQgetvalue(r, 0, 1));
        snprintf(h->client, sizeof h->client, "%s", PQgetvalue(r, 0, 2));
        snprintf(h->since, sizeof h->since, "%s", PQgetvalue(r, 0, 3));
        h->shared = strcmp(PQgetvalue(r, 0, 4), "t") == 0;
        h->holders = strtol(PQgetvalue(r, 0, 5), NULL, 10);
    }
    PQclear(r);
    return ok;
}

/* Tell who holds the lock: the pgenrich process and host when its application_name says
 * so, else the PostgreSQL backend, client address and application. */
static void describe_holder(PGconn *conn, const char *name, const char *job, char *err,
                            size_t errlen)
{
    JobLockHolder h;
    char ignored[256];
    if (query_holder(conn, name, &h, ignored, sizeof ignored) && h.held && h.shared)
        snprintf(err, errlen,
                 "job \"%s\" is already running with --shared workers (%ld worker session%s, "
                 "e.g. PostgreSQL backend pid %ld, application \"%s\", client %s): a plain run "
                 "must wait for them to end; or run this one with --shared too",
                 job, h.holders, h.holders == 1 ? "" : "s", h.backend_pid, h.application, h.client);
    else if (query_holder(conn, name, &h, ignored, sizeof ignored) && h.held)
        snprintf(err, errlen,
                 "job \"%s\" is already running: its lock is held by PostgreSQL backend pid %ld "
                 "(application \"%s\", client %s, connected %s); wait for that run to end or "
                 "stop it",
                 job, h.backend_pid, h.application, h.client, h.since);
    else
        snprintf(err, errlen,
                 "job \"%s\" is already running (its lock is held by another session); wait "
                 "for that run to end or stop it",
                 job);
}

bool joblock_holder(PGconn *conn, const char *checkpoints, const char *job, JobLockHolder *h,
                    char *err, size_t errlen)
{
    char *name = lock_name(checkpoints, job);
    if (name == NULL) {
        memset(h, 0, sizeof *h);
        snprintf(err, errlen, "out of memory");
        return false;
    }
    bool ok = query_holder(conn, name, h, err, errlen);
    free(name);
    return ok;
}

static JobLockResult take(PGconn *conn, const char *checkpoints, const char *job, bool shared,
                          char *err, size_t errlen)
{
    JobLockResult res = JOBLOCK_ERROR;
    char *name = lock_name(checkpoints, job);
    PGresult *r = NULL;
    if (name == NULL) {
        snprintf(err, errlen, "out of memory");
        return JOBLOCK_ERROR;
    }
    const char *params[2] = {name, NULL};
    /* Wait a moment for the lock, not more: a run killed a moment ago (kill -9, then an
     * orchestrator's restart) may still hold it while its backend finishes the statement
     * it was running, and only then sees the connection gone. A session-level lock taken
     * inside a transaction outlives it; lock_timeout bounds the wait. */
    r = PQexec(conn, "BEGIN; SET LOCAL lock_timeout = '" JOBLOCK_GRACE "'");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        db_error(conn, r, "taking the job's lock", err, errlen);
        goto done;
    }
    PQclear(r);
    r = PQexecParams(conn,
                     shared ? "SELECT pg_catalog.pg_advisory_lock_shared(" JOBLOCK_CLASS
                              ", pg_catalog.hashtext($1))"
                            : "SELECT pg_catalog.pg_advisory_lock(" JOBLOCK_CLASS
                              ", pg_catalog.hashtext($1))",
                     1, NULL, params, NULL, NULL, 0);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    bool busy = state != NULL && strcmp(state, "55P03") == 0; /* lock_not_available */
    bool taken = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!taken && !busy)
        db_error(conn, r, "taking the job's lock", err, errlen);
    PQclear(r);
    r = PQexec(conn, taken ? "COMMIT" : "ROLLBACK");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        if (taken || busy)
            db_error(conn, r, "taking the job's lock", err, errlen);
        goto done;
    }
    PQclear(r);
    r = NULL;
    if (busy) {
        describe_holder(conn, name, job, err, errlen);
        res = JOBLOCK_BUSY;
        goto done;
    }
    if (!taken)
        goto done;
    /* Name this process in pg_stat_activity while it holds the lock, unless the user chose
     * an application_name of their own. */
    char app[96], host[48] = ""; /* PostgreSQL keeps 63 bytes of it */
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    snprintf(app, sizeof app, "pgenrich pid %ld on %s", (long)getpid(), host);
    params[0] = app;
    r = PQexecParams(conn,
                     "SELECT pg_catalog.set_config('application_name', $1, false) "
                     "WHERE pg_catalog.current_setting('application_name') = 'pgenrich'",
                     1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error(conn, r, "naming the session", err, errlen);
        goto done;
    }
    res = JOBLOCK_TAKEN;
done:
    PQclear(r);
    free(name);
    return res;
}

JobLockResult joblock_take(PGconn *conn, const char *checkpoints, const char *job, char *err,
                           size_t errlen)
{
    return take(conn, checkpoints, job, false, err, errlen);
}

JobLockResult joblock_take_shared(PGconn *conn, const char *checkpoints, const char *job, char *err,
                                  size_t errlen)
{
    return take(conn, checkpoints, job, true, err, errlen);
}
