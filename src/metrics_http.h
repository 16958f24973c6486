/* metrics_http: the --metrics-listen endpoint, a minimal HTTP/1.0 server on the job's libev
 * loop. Each connection sends one request and gets one answer, rendered at that moment by
 * the owner's callback, then the connection is closed. Non-blocking throughout; clients,
 * request size and time per connection are bounded. */
#ifndef PGENRICH_METRICS_HTTP_H
#define PGENRICH_METRICS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"
#include "compat.h"

struct ev_loop;

#define METRICS_HTTP_CLIENTS 8          /* connections served at once; more wait in the backlog */
#define METRICS_HTTP_TIMEOUT 5.0        /* seconds a connection may take, request to close */
#define METRICS_HTTP_BODY    (4u << 20) /* bytes of an exposition */

/* Append the exposition to out (capped); returns false when it does not fit. */
typedef bool (*metrics_render_fn)(void *ud, Buf *out);

typedef struct MetricsHttp MetricsHttp;

/* Bind and listen on listen, "HOST:PORT": an IPv4 literal, an IPv6 literal in brackets
 * ("[::1]:9187"), or a name such as localhost, resolved here, once, before any loop runs
 * (every address of a name is bound, so localhost means both 127.0.0.1 and ::1 where both
 * exist). PORT 0 picks a free port (the same one for every address). Logs
 * event=metrics_listen addr=HOST:PORT per socket. Serves nothing until metrics_http_start.
 * Returns NULL with a one-line reason in err for a malformed address, one that cannot be
 * resolved or bound (in use, not local) - a configuration error. Free with
 * metrics_http_free. */
MetricsHttp *metrics_http_open(const char *listen, char *err, size_t errlen) WUR;

/* The shape check of metrics_http_open alone (HOST:PORT, [V6]:PORT, a port 0-65535),
 * nothing resolved or bound: false with the reason in why (no setting name in it). */
bool metrics_http_check(const char *listen, char *why, size_t whylen) WUR;

/* The first socket's address as "HOST:PORT" (the port actually bound); valid until
 * metrics_http_free. */
const char *metrics_http_address(const MetricsHttp *h);

/* Serve on loop from now on: GET or HEAD /metrics answers 200 with render(ud, ...) in
 * Prometheus text format 0.0.4, / a short text page, other paths 404, other methods 405.
 * The listening sockets do not keep ev_run from returning on their own. */
void metrics_http_start(MetricsHttp *h, struct ev_loop *loop, metrics_render_fn render, void *ud);

/* Stop serving: close every connection and stop listening (the sockets stay bound until
 * metrics_http_free). render is not called after this. */
void metrics_http_stop(MetricsHttp *h);

/* Stop, close the sockets and release everything. NULL is fine. */
void metrics_http_free(MetricsHttp *h);

#endif
