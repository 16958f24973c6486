/* metrics_http: listening sockets and a small table of connections, each a read of the
 * request head, a render, a non-blocking write of the answer and a lingering close (read
 * and drop until the peer closes, so that unread request bytes do not turn the close into a
 * reset that could cut the answer short). */
#include "metrics_http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "log.h"
#include "metrics.h"

#define LISTEN_MAX     4 /* sockets for one name (localhost: 127.0.0.1 and ::1) */
#define LISTEN_BACKLOG 16
#define LINGER_TIME    1.0 /* seconds to wait for the peer's close after the answer */
#define ACCEPT_PAUSE   1.0 /* seconds without accepting after running out of descriptors */

typedef enum ClientState { CS_FREE, CS_READ, CS_WRITE, CS_LINGER } ClientState;

typedef struct Client {
    struct MetricsHttp *h;
    ClientState state;
    int fd;
    double since; /* loop time of the accept */
    ev_io io;
    ev_timer timer;
    size_t req_len;
    char req[METRICS_REQUEST_MAX];
    Buf out;
    size_t sent;
} Client;

typedef struct Listener {
    struct MetricsHttp *h;
    int fd;
    ev_io io;
    bool on; /* started (and unref'd) */
} Listener;

struct MetricsHttp {
    struct ev_loop *loop; /* NULL until started */
    metrics_render_fn render;
    void *ud;
    Listener ls[LISTEN_MAX];
    int n_ls;
    ev_timer pause; /* accepting again after EMFILE */
    Client clients[METRICS_HTTP_CLIENTS];
    int n_clients;
    Buf body;
    char addr[80];
};

/* ---------------------------------------------------------------- opening */

/* Split "HOST:PORT" / "[V6]:PORT" into host (without brackets) and port text. */
static bool split_listen(const char *s, char *host, size_t hostlen, char *port, size_t portlen,
                         char *err, size_t errlen)
{
    const char *h = s, *colon;
    size_t hn;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (rb == NULL || rb[1] != ':') {
            snprintf(err, errlen, "\"%.60s\" is not [IPV6]:PORT", s);
            return false;
        }
        h = s + 1;
        hn = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL) {
            snprintf(err, errlen,
                     "\"%.60s\" is not HOST:PORT (an IPv6 address goes in "
                     "brackets: [::1]:9187)",
                     s);
            return false;
        }
        hn = (size_t)(colon - s);
    }
    const char *p = colon + 1;
    size_t pn = strlen(p);
    char *end;
    long v = pn > 0 && pn < 6 && strspn(p, "0123456789") == pn ? strtol(p, &end, 10) : -1;
    if (hn == 0 || hn >= hostlen || v < 0 || v > 65535 || pn >= portlen) {
        snprintf(err, errlen, "\"%.60s\" needs a host and a port 0-65535", s);
        return false;
    }
    memcpy(host, h, hn);
    host[hn] = '\0';
    memcpy(port, p, pn + 1);
    return true;
}

static bool set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0 &&
           fcntl(fd, F_SETFD, FD_CLOEXEC) == 0;
}

/* "HOST:PORT" of a bound socket, numeric, IPv6 in brackets. */
static void sock_name(int fd, char *out, size_t outlen, int *port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    char host[64] = "?", serv[16] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        (void)getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, serv, sizeof serv,
                          NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(out, outlen, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
    *port = atoi(serv);
}

static void set_port(struct sockaddr *sa, int port)
{
    if (sa->sa_family == AF_INET)
        ((struct sockaddr_in *)(void *)sa)->sin_port = htons((unsigned short)port);
    else if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)(void *)sa)->sin6_port = htons((unsigned short)port);
}

/* Whether an address before ai in res is the same (a name listed twice in /etc/hosts). */
static bool seen_before(const struct addrinfo *res, const struct addrinfo *ai)
{
    for (const struct addrinfo *p = res; p != ai; p = p->ai_next)
        if (p->ai_addrlen == ai->ai_addrlen && memcmp(p->ai_addr, ai->ai_addr, ai->ai_addrlen) == 0)
            return true;
    return false;
}

/* A listening socket on ai, or -1 with errno set. */
static int listen_one(const struct addrinfo *ai)
{
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (!set_nonblock(fd) || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (ai->ai_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

bool metrics_http_check(const char *listen_addr, char *why, size_t whylen)
{
    char host[256], port[8];
    return split_listen(listen_addr, host, sizeof host, port, sizeof port, why, whylen);
}

MetricsHttp *metrics_http_open(const char *listen_addr, char *err, size_t errlen)
{
    char host[256], port[8], why[160];
    struct addrinfo hints, *res = NULL;
    MetricsHttp *h = NULL;
    if (!split_listen(listen_addr, host, sizeof host, port, sizeof port, why, sizeof why)) {
        snprintf(err, errlen, "--metrics-listen: %s", why);
        return NULL;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "--metrics-listen %.80s: cannot resolve \"%.80s\": %s", listen_addr,
                 host, gai_strerror(gai));
        return NULL;
    }
    if ((h = calloc(1, sizeof *h)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }
    buf_init(&h->body, METRICS_HTTP_BODY);
    int bound_port = -1;
    for (struct addrinfo *ai = res; ai != NULL && h->n_ls < LISTEN_MAX; ai = ai->ai_next) {
        if (bound_port > 0)
            set_port(ai->ai_addr, bound_port); /* port 0: the rest take the first one's */
        if (seen_before(res, ai))
            continue;
        int fd = listen_one(ai);
        if (fd < 0) {
            int e = errno;
            /* A second address of a name may be missing here (no ::1): the others do;
             * one in use is a clash to report. */
            if (h->n_ls > 0 && e != EADDRINUSE)
                continue;
            char a[128] = "?", s[16] = "";
            (void)getnameinfo(ai->ai_addr, ai->ai_addrlen, a, sizeof a, s, sizeof s,
                              NI_NUMERICHOST | NI_NUMERICSERV);
            snprintf(err, errlen, "--metrics-listen %.80s: cannot listen on %s port %s: %s%s",
                     listen_addr, a, s, strerror(e),
                     e == EADDRINUSE ? " (another process holds it: pick another port)" : "");
            goto failed;
        }
        Listener *l = &h->ls[h->n_ls++];
        l->h = h;
        l->fd = fd;
        char name[80];
        int p;
        sock_name(fd, name, sizeof name, &p);
        if (bound_port < 0) {
            bound_port = p;
            set_port(ai->ai_addr, p); /* so that seen_before matches a repeat of it */
            snprintf(h->addr, sizeof h->addr, "%s", name);
        }
        log_info("event=metrics_listen addr=%s", name);
    }
    if (h->n_ls == 0) {
        snprintf(err, errlen, "--metrics-listen %.80s: no address to listen on", listen_addr);
        goto failed;
    }
    freeaddrinfo(res);
    return h;
failed:
    freeaddrinfo(res);
    metrics_http_free(h);
    return NULL;
}

const char *metrics_http_address(const MetricsHttp *h)
{
    return h->addr;
}

/* ---------------------------------------------------------------- connections */

static void accept_on(MetricsHttp *h, bool on)
{
    for (int i = 0; i < h->n_ls; i++) {
        Listener *l = &h->ls[i];
        if (on == l->on)
            continue;
        if (on) {
            ev_io_start(h->loop, &l->io);
            ev_unref(h->loop); /* a background watcher: the job decides when the loop ends */
        } else {
            ev_ref(h->loop);
            ev_io_stop(h->loop, &l->io);
        }
        l->on = on;
    }
}

static void client_close(Client *c)
{
    MetricsHttp *h = c->h;
    ev_io_stop(h->loop, &c->io);
    ev_timer_stop(h->loop, &c->timer);
    close(c->fd);
    c->fd = -1;
    buf_free(&c->out);
    c->state = CS_FREE;
    h->n_clients--;
    if (!ev_is_active(&h->pause))
        accept_on(h, true);
}

static void client_watch(Client *c, int events)
{
    ev_io_stop(c->h->loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(c->h->loop, &c->io);
}

/* The answer to route, into c->out. */
static void answer(Client *c, MetricsRoute route, bool head)
{
    MetricsHttp *h = c->h;
    int status = 200;
    const char *reason = "OK", *ctype = "text/plain; charset=utf-8", *extra = "";
    const char *text = NULL;
    Buf *body = &h->body;
    buf_reset(body);
    switch (route) {
    case MR_METRICS:
        ctype = "text/plain; version=0.0.4; charset=utf-8";
        if (!h->render(h->ud, body)) {
            status = 500;
            reason = "Internal Server Error";
            ctype = "text/plain; charset=utf-8";
            text = "the exposition does not fit in its buffer\n";
            log_warn("event=metrics_render_failed detail=\"over %u bytes\"", METRICS_HTTP_BODY);
        }
        break;
    case MR_INDEX:
        text = "pgenrich " PGENRICH_VERSION ": metrics at /metrics\n";
        break;
    case MR_NOT_FOUND:
        status = 404;
        reason = "Not Found";
        text = "not found: the metrics are at /metrics\n";
        break;
    case MR_BAD_METHOD:
        status = 405;
        reason = "Method Not Allowed";
        extra = "Allow: GET, HEAD\r\n";
        text = "only GET and HEAD\n";
        break;
    case MR_BAD_REQUEST:
    case MR_INCOMPLETE:
        status = 400;
        reason = "Bad Request";
        text = "bad request\n";
        break;
    }
    if (text != NULL) {
        buf_reset(body);
        if (!buf_puts(body, text))
            buf_reset(body);
    }
    buf_init(&c->out, METRICS_HTTP_BODY + 1024);
    c->sent = 0;
    if (!buf_printf(&c->out,
                    "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                    "Connection: close\r\n\r\n",
                    status, reason, ctype, body->len, extra) ||
        (!head && !buf_append(&c->out, body->data, body->len)))
        buf_reset(&c->out); /* out of memory: close without an answer */
    log_debug("event=metrics_request status=%d bytes=%zu", status, c->out.len);
}

static void client_linger(Client *c)
{
    shutdown(c->fd, SHUT_WR);
    c->state = CS_LINGER;
    ev_timer_stop(c->h->loop, &c->timer);
    ev_timer_set(&c->timer, LINGER_TIME, 0.);
    ev_timer_start(c->h->loop, &c->timer);
    client_watch(c, EV_READ);
}

static void client_write(Client *c)
{
    while (c->sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->state != CS_WRITE) {
                c->state = CS_WRITE;
                client_watch(c, EV_WRITE);
            }
            return;
        }
        client_close(c); /* the peer went away */
        return;
    }
    buf_free(&c->out);
    client_linger(c);
}

static void client_read(Client *c)
{
    for (;;) {
        char drop[512];
        char *dst = c->state == CS_READ ? c->req + c->req_len : drop;
        size_t room = c->state == CS_READ ? sizeof c->req - c->req_len : sizeof drop;
        ssize_t n = recv(c->fd, dst, room, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            client_close(c); /* closed or failed before a whole request, or lingering done */
            return;
        }
        if (c->state != CS_READ)
            continue;
        c->req_len += (size_t)n;
        bool head = false;
        MetricsRoute r = metrics_parse_request(c->req, c->req_len, &head);
        if (r == MR_INCOMPLETE)
            continue;
        answer(c, r, head);
        c->state = CS_READ; /* client_write switches to CS_WRITE if it has to wait */
        client_write(c);
        return;
    }
}

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    Client *c = w->data;
    if (c->state == CS_WRITE && (revents & EV_WRITE))
        client_write(c);
    else if (revents & EV_READ)
        client_read(c);
}

static void on_client_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Client *c = w->data;
    if (c->state == CS_READ)
        log_debug("event=metrics_request_timeout bytes=%zu", c->req_len);
    client_close(c);
}

static void on_pause_end(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    MetricsHttp *h = w->data;
    if (h->n_clients < METRICS_HTTP_CLIENTS)
        accept_on(h, true);
}

/* Make room for a new connection when every slot is taken: close one that has answered
 * and lingers, else the oldest that has sent no whole request yet (a scraper sends its
 * request at once, so that is most likely an idle connection holding a slot). Returns
 * whether a slot is free. */
static bool make_room(MetricsHttp *h)
{
    Client *victim = NULL;
    if (h->n_clients < METRICS_HTTP_CLIENTS)
        return true;
    for (int i = 0; i < METRICS_HTTP_CLIENTS; i++) {
        Client *c = &h->clients[i];
        if (c->state == CS_LINGER) {
            victim = c;
            break;
        }
        if (c->state == CS_READ && (victim == NULL || c->since < victim->since))
            victim = c;
    }
    if (victim == NULL)
        return false;
    log_debug("event=metrics_connection_dropped state=%s",
              victim->state == CS_READ ? "reading" : "lingering");
    client_close(victim);
    return true;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    Listener *l = w->data;
    MetricsHttp *h = l->h;
    while (make_room(h)) {
        int fd = accept(l->fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* Out of descriptors or memory: the pending connection stays readable, so
             * retrying at once would spin. */
            log_warn("event=metrics_accept_failed error=\"%s\"", strerror(errno));
            accept_on(h, false);
            ev_timer_set(&h->pause, ACCEPT_PAUSE, 0.);
            ev_timer_start(loop, &h->pause);
            return;
        }
        if (!set_nonblock(fd)) {
            close(fd);
            continue;
        }
        Client *c = NULL;
        for (int i = 0; i < METRICS_HTTP_CLIENTS && c == NULL; i++)
            if (h->clients[i].state == CS_FREE)
                c = &h->clients[i];
        if (c == NULL) { /* not expected: make_room said there was one */
            close(fd);
            break;
        }
        c->h = h;
        c->fd = fd;
        c->since = ev_now(loop);
        c->state = CS_READ;
        c->req_len = 0;
        c->sent = 0;
        buf_init(&c->out, 0);
        h->n_clients++;
        ev_io_init(&c->io, on_client_io, fd, EV_READ);
        c->io.data = c;
        ev_io_start(loop, &c->io);
        ev_timer_init(&c->timer, on_client_timer, METRICS_HTTP_TIMEOUT, 0.);
        c->timer.data = c;
        ev_timer_start(loop, &c->timer);
    }
    accept_on(h, false); /* every slot is writing: the backlog waits until one ends */
}

/* ---------------------------------------------------------------- life cycle */

void metrics_http_start(MetricsHttp *h, struct ev_loop *loop, metrics_render_fn render, void *ud)
{
    h->loop = loop;
    h->render = render;
    h->ud = ud;
    ev_init(&h->pause, on_pause_end);
    h->pause.data = h;
    for (int i = 0; i < h->n_ls; i++) {
        ev_io_init(&h->ls[i].io, on_accept, h->ls[i].fd, EV_READ);
        h->ls[i].io.data = &h->ls[i];
    }
    accept_on(h, true);
}

void metrics_http_stop(MetricsHttp *h)
{
    if (h == NULL || h->loop == NULL)
        return;
    ev_timer_stop(h->loop, &h->pause);
    for (int i = 0; i < METRICS_HTTP_CLIENTS; i++)
        if (h->clients[i].state != CS_FREE)
            client_close(&h->clients[i]);
    accept_on(h, false);
    h->loop = NULL;
}

void metrics_http_free(MetricsHttp *h)
{
    if (h == NULL)
        return;
    metrics_http_stop(h);
    for (int i = 0; i < h->n_ls; i++)
        close(h->ls[i].fd);
    buf_free(&h->body);
    free(h);
}
