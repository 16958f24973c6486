/* redial: a new connection to the database after one was lost, on the loop: connection
 * attempts with PQconnectStartParams / PQconnectPoll (never blocking on the network),
 * backing off from 0.25 s to 5 s between them, until one succeeds or a deadline passes. */
#ifndef PGENRICH_REDIAL_H
#define PGENRICH_REDIAL_H

#include <stdbool.h>
#include <libpq-fe.h>
#include "compat.h"
#include "db.h"

struct ev_loop;

/* The outcome, from the loop. conn: connected, db_session_setup done, ownership passes to
 * the callee; or NULL when the deadline passed, with the last attempt's error in err
 * (valid during the call). */
typedef void (*redial_fn)(void *ud, PGconn *conn, const char *err);

typedef struct Redial Redial;

/* conninfo and opts as for db_connect (both copied); timeout: seconds from redial_start
 * to give up after (0: one attempt); what names the connection in log lines ("sink",
 * "source": a static string). NULL when out of memory. */
Redial *redial_new(struct ev_loop *loop, const char *conninfo, const DbConnOpts *opts,
                   double timeout, const char *what, redial_fn fn, void *ud) WUR;

/* Start reconnecting (the first attempt at the loop's next turn) unless it is already
 * under way. */
void redial_start(Redial *r);

/* The connection the callback got was no use after all (err says why; the callee has
 * closed it): go on with the same series and deadline, as if that attempt had failed. The
 * outcome comes from the loop, or at once if the deadline has passed. */
void redial_again(Redial *r, const char *err);

/* Attempts are under way: no connection yet. */
bool redial_active(const Redial *r);

/* Stops it (closing an attempt in progress). NULL is fine. */
void redial_free(Redial *r);

#endif
