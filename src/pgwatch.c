/* pgwatch: see pgwatch.h. */
#include "pgwatch.h"

void pgwatch_arm(struct ev_loop *loop, ev_io *io, int *cur, PGconn *conn, int events)
{
    if (events == *cur)
        return;
    if (*cur != 0)
        ev_io_stop(loop, io);
    *cur = events;
    if (events != 0) {
        ev_io_set(io, PQsocket(conn), events);
        ev_io_start(loop, io);
    }
}
