/* pgwatch: the one ev_io watcher a non-blocking libpq connection needs, shared by source
 * and sink: start it, change its events, or stop it, on the connection's current socket. */
#ifndef PGENRICH_PGWATCH_H
#define PGENRICH_PGWATCH_H

#include <ev.h>
#include <libpq-fe.h>

/* Make io watch conn's socket for `events` (EV_READ, EV_WRITE, both, or 0 to stop).
 * *cur holds the events io is started with (0 = stopped) and is updated; a call that
 * changes nothing costs nothing. PQsocket is read again on every change, since it may
 * change across PQconnectPoll/PQresetPoll. */
void pgwatch_arm(struct ev_loop *loop, ev_io *io, int *cur, PGconn *conn, int events);

#endif
