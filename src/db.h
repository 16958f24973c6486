/* db: blocking PostgreSQL chores done before the event loop starts (connect, schema,
 * key type, checkpoint read/reset). Once the loop runs, only source and sink talk to
 * the database, asynchronously. */
#ifndef PGENRICH_DB_H
#define PGENRICH_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>
#include "compat.h"

/* Table names; each is one identifier, quoted with PQescapeIdentifier whenever it
 * reaches SQL text. */
typedef struct DbNames {
    const char *source;      /* default master_table */
    const char *key;         /* default id */
    const char *target;      /* default standardized_locations */
    const char *failures;    /* default enrich_failures */
    const char *checkpoints; /* default enrich_checkpoints */
    const char *runs;        /* default enrich_runs */
    const char *ranges;      /* default enrich_ranges (--shared); NULL: that default */
    const char *workers;     /* default enrich_workers (--shared); NULL: that default */
} DbNames;

/* Session settings that keep a connection from hanging: TCP keepalives (so that a dead
 * peer or a silently dropped connection is noticed) and a statement timeout (so that a
 * statement stuck behind a lock ends with an error). */
typedef struct DbConnOpts {
    double statement_timeout; /* seconds; 0: pgenrich sets none (the server's stays) */
    int keepalive_idle;       /* seconds before the first probe; 0: libpq's and the OS's */
} DbConnOpts;

/* Connect with libpq's conventions: conninfo may be a key=value string or a URI; NULL or
 * "" uses the PG* environment variables. Sets application_name=pgenrich unless the
 * conninfo (or PGAPPNAME) names one, and client_encoding=UTF8 always (COPY data and URL
 * keys are UTF-8). With opts (may be NULL: none of this): keepalives=1 with
 * keepalives_idle, a derived keepalives_interval, keepalives_count and tcp_user_timeout,
 * unless conninfo sets any of these five itself (then it alone decides); and `SET
 * statement_timeout` once connected (not the options parameter, which would replace the
 * conninfo's own). Blocking. Returns NULL and writes a one-line reason into err on
 * failure. Caller owns the connection (PQfinish). */
PGconn *db_connect(const char *conninfo, const DbConnOpts *opts, char *err, size_t errlen) WUR;

/* The same connection as db_connect's, started without blocking (PQconnectStartParams):
 * drive it with PQconnectPoll, then call db_session_setup once it is CONNECTION_OK. NULL
 * when out of memory; otherwise check PQstatus (CONNECTION_BAD: PQerrorMessage says why). */
PGconn *db_connect_start(const char *conninfo, const DbConnOpts *opts) WUR;

/* What db_connect does once connected (SET statement_timeout). Blocking, one short
 * statement. Returns false with a reason in err. */
bool db_session_setup(PGconn *c, const DbConnOpts *opts, char *err, size_t errlen) WUR;

/* The SQL type of names->source.names->key as format_type prints it ("bigint", "text",
 * "character varying(20)"). Names are single identifiers (no schema prefix; the
 * search_path finds the table). Fails with "source table X does not exist" or "column Y
 * not found in X". With order_out (may be NULL), also the type the keys are ordered as:
 * the same, plus " COLLATE schema.name" when the column's collation is not the default
 * one, spelled by the server so that it may stand in SQL text. Caller frees *type_out and
 * *order_out with free(). */
bool db_key_type(PGconn *c, const DbNames *names, char **type_out, char **order_out, char *err,
                 size_t errlen) WUR;

/* Apply sql/schema.sql (compiled in) idempotently, in one transaction: target, failures,
 * checkpoint, run-history and ranges tables with the given names (and the fence function of
 * --shared workers), id columns of key_type. A failures table made by an older schema is migrated
 * (it gains last_seen). If the target or the failures table already exists with an id of another
 * type, fails with a clear message. key_type must look like a type name (format_type output);
 * anything else is refused. */
bool db_init_schema(PGconn *c, const DbNames *names, const char *key_type, char *err,
                    size_t errlen) WUR;

/* Check that the target, failures and checkpoint tables (which db_init_schema made, or
 * found already there) can take the sink's statements: the columns it writes exist with
 * types its values fit, none is generated, the NOT NULL ones are filled or have a
 * default, and a unique index serves each ON CONFLICT. Two catalog queries; the rules are
 * shape_check's (src/shape.h). On a problem, returns false with one line in err: the
 * first problem, the DDL that fixes it and how many more there are. key_type is the
 * source key's type (for the DDL of a missing id). */
bool db_check_shape(PGconn *c, const DbNames *names, const char *key_type, char *err,
                    size_t errlen) WUR;

/* Read the job's checkpoint. *position_out is NULL when the job has none (or its position
 * is NULL: nothing settled yet); *paging_out is "keyset" or "offset" or NULL; *since_out
 * is when the job's pass began (started_at, as timestamptz text), or NULL when there is no
 * checkpoint: outcomes committed since then belong to this pass. Caller frees all three
 * with free(). */
bool db_load_checkpoint(PGconn *c, const DbNames *names, const char *job, char **position_out,
                        char **paging_out, char **since_out, char *err, size_t errlen) WUR;

/* A new run of a job whose checkpoint is finished: set finished back to false (the run's last
 * flush sets it again), so that the checkpoint never reads "complete" while a pass runs or
 * after one is interrupted. *was_finished tells whether it was set. Blocking. */
bool db_reopen_checkpoint(PGconn *c, const DbNames *names, const char *job, bool *was_finished,
                          char *err, size_t errlen) WUR;

/* Forget the job's checkpoint (for --restart). */
bool db_reset_checkpoint(PGconn *c, const DbNames *names, const char *job, char *err,
                         size_t errlen) WUR;

/* Count the job's rows in the failure ledger (names->failures), only those with this
 * reason unless reason is NULL, into *count. For the summary of `retry-failed`: how many
 * are left. Blocking. */
bool db_count_failures(PGconn *c, const DbNames *names, const char *job, const char *reason,
                       long long *count, char *err, size_t errlen) WUR;

/* What a run's history row starts with (db_run_begin). */
typedef struct DbRunStart {
    const char *job;
    const char *command;         /* "run" or "retry-failed" */
    const char *host;            /* gethostname */
    long pid;                    /* this process */
    const char *version;         /* PGENRICH_VERSION */
    const char *checkpoint_from; /* the position the run resumes after, or NULL */
} DbRunStart;

/* Insert the run's row into names->runs (state running, counts 0, checkpoint_to =
 * checkpoint_from) and return its run_id in *run_id. db_pid is the backend of c: call it
 * on the session that holds the job's lock, so that `status` can tell this run's lock from
 * a later runner's. Blocking. */
bool db_run_begin(PGconn *c, const DbNames *names, const DbRunStart *rs, long long *run_id,
                  char *err, size_t errlen) WUR;

/* Close the run's row: ended_at, exit_status, state (e.g. runs_state_of_exit), the final
 * requests and retries, and ids_per_s over the committed outcomes (which the flushes
 * counted into the row). Blocking. */
bool db_run_end(PGconn *c, const DbNames *names, long long run_id, int exit_status,
                const char *state, long long requests, long long retries, char *err,
                size_t errlen) WUR;

/* Tables the planner puts at or below this many rows are counted; larger ones estimated. */
#define DB_ESTIMATE_COUNT_MAX 100000

/* How many IDs a pass over names->source will read: rows with a key (and matching where,
 * when not NULL; and with a key above after, when not NULL: a keyset resume), for the
 * progress line's total. Cheap: when the planner puts the whole table at or below
 * DB_ESTIMATE_COUNT_MAX rows they are counted (*exact_out true), else the planner's
 * estimate for the page query's conditions is taken (EXPLAIN; reltuples, or the table's
 * size when it was never analyzed). Blocking. On failure *count_out is -1. */
bool db_estimate_ids(PGconn *c, const DbNames *names, const char *where, const char *after,
                     long long *count_out, bool *exact_out, char *err, size_t errlen) WUR;

/* Copy the quoted form of ident into a new malloc'd string (PQescapeIdentifier + strdup);
 * NULL on failure. */
char *db_quote_ident(PGconn *c, const char *ident) WUR;

/* The same for a string literal (PQescapeLiteral + strdup); NULL on failure. */
char *db_quote_literal(PGconn *c, const char *str) WUR;

/* Write "what: reason" into err, one line: the reason is res's primary error message when
 * res carries one, else the first line of PQerrorMessage(c) (c may be NULL). what may be
 * NULL (no prefix). Shared by db, source and sink so that every libpq error reads alike. */
void db_error(const PGconn *c, const PGresult *res, const char *what, char *err, size_t errlen);

/* PQexec (params NULL: sql may hold several statements) or PQexecParams (n text
 * parameters) on a blocking connection, but a statement that has not ended after
 * DB_SLOW_S seconds is reported, once every DB_SLOW_S seconds while it waits, as
 * event=db_slow what=WHAT: the set-up blocks before the loop starts, and a lock another
 * session holds on one of the job's tables (VACUUM FULL, ALTER TABLE, LOCK TABLE) would
 * otherwise look like a hang until statement_timeout ends it. Returns what PQexec does:
 * the last result (the caller clears it), or NULL when the query could not be sent. */
#define DB_SLOW_S 10
PGresult *db_exec(PGconn *c, const char *sql, int n, const char *const *params,
                  const char *what) WUR;

#endif
