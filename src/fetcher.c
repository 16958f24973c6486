/* fetcher: curl multi <-> libev glue. curl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION) and when to wake it (CURLMOPT_TIMERFUNCTION); we turn those into
 * ev_io and ev_timer watchers and hand readiness back with curl_multi_socket_action.
 * Differences from evhiperfifo.c: timeouts are converted with 1000.0, allocations are
 * checked, and curl is never called from inside its own timer callback. */
#include "fetcher.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <ev.h>

#include "buf.h"
#include "compat.h"
#include "log.h"

typedef struct Req Req;
struct Req {
    Fetcher *f;
    CURL *easy;
    Buf body;
    char retry_after[64];
    bool has_retry_after;
    char content_type[96];
    bool has_content_type;
    QuotaHdr quota; /* announced quota headers, if any */
    bool too_large;
    fetch_done_fn fn;
    void *ud;
    int tls_profile;  /* whose TLS settings the easy handle has; -1: libcurl's defaults */
    Req *prev, *next; /* in the active list, or next in the free list */
    char errbuf[CURL_ERROR_SIZE];
};

typedef struct SockWatch SockWatch;
struct SockWatch {
    ev_io io;
    Fetcher *f;
    curl_socket_t fd;
    int events;      /* what io watches for (EV_READ | EV_WRITE) */
    SockWatch *next; /* in the spare list */
};

struct Fetcher {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer;
    struct curl_slist *profiles[FETCHER_PROFILES_MAX]; /* header lists, see add_profile */
    FetcherTls tls[FETCHER_PROFILES_MAX];              /* strings owned */
    bool has_tls[FETCHER_PROFILES_MAX];                /* anything but the defaults */
    int n_profiles;
    FetcherOpts opts;
    char *user_agent;
    Req *active; /* requests in flight (doubly linked) */
    Req *free;   /* pooled requests with configured easy handles */
    size_t in_flight;
    /* Watchers of sockets curl let go of, for the next ones: with keep-alive, curl
     * removes a connection's socket when its transfer ends and adds it back with the next
     * one, every request. */
    SockWatch *spare;
};

static void check_multi_info(Fetcher *f);

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    Fetcher *f = userp;
    ev_timer_stop(f->loop, &f->timer);
    if (timeout_ms >= 0) {
        /* 0 means "as soon as possible": let the loop call us back rather than calling
         * curl_multi_socket_action from inside curl's own callback. */
        ev_timer_set(&f->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(f->loop, &f->timer);
    }
    return 0;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    Fetcher *f = w->data;
    int running = 0;
    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(f);
}

static void on_socket_ready(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    SockWatch *sw = w->data;
    Fetcher *f = sw->f;
    int action =
        ((revents & EV_READ) ? CURL_CSELECT_IN : 0) | ((revents & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running = 0;
    /* on_curl_socket may release sw (for reuse) during this call: do not touch it after. */
    curl_multi_socket_action(f->multi, sw->fd, action, &running);
    check_multi_info(f);
}

static void release_watch(Fetcher *f, SockWatch *sw)
{
    if (!REUSE_OBJECTS) {
        free(sw);
        return;
    }
    sw->next = f->spare;
    f->spare = sw;
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    Fetcher *f = userp;
    SockWatch *sw = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (sw) {
            ev_io_stop(f->loop, &sw->io);
            release_watch(f, sw);
        }
        return 0;
    }
    int events = ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (sw == NULL) {
        sw = f->spare;
        if (sw != NULL)
            f->spare = sw->next;
        else if ((sw = malloc(sizeof *sw)) == NULL)
            return -1; /* curl fails the transfers on this socket */
        sw->f = f;
        sw->fd = s;
        sw->events = 0;
        ev_init(&sw->io, on_socket_ready);
        sw->io.data = sw;
        if (curl_multi_assign(f->multi, s, sw) != CURLM_OK) {
            release_watch(f, sw);
            return -1;
        }
    } else if (sw->events == events && ev_is_active(&sw->io)) {
        return 0; /* already watched for just that: no stop and start, no epoll_ctl */
    }
    ev_io_stop(f->loop, &sw->io);
    ev_io_set(&sw->io, s, events);
    sw->events = events;
    ev_io_start(f->loop, &sw->io);
    return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    Req *r = userdata;
    size_t n = size * nmemb;
    if (!buf_append(&r->body, ptr, n)) {
        r->too_large = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

/* If the header line ptr[0..n) is `name: value`, copy the trimmed value into dst. */
static bool header_value(const char *ptr, size_t n, const char *name, char *dst, size_t cap)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(ptr, name, nl) != 0 || ptr[nl] != ':')
        return false;
    const char *v = ptr + nl + 1;
    const char *end = ptr + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    size_t len = (size_t)(end - v);
    if (len >= cap)
        return false; /* an absurd value is as good as none */
    memcpy(dst, v, len);
    dst[len] = '\0';
    return true;
}

static size_t on_header(char *ptr, size_t size, size_t nitems, void *userdata)
{
    Req *r = userdata;
    size_t n = size * nitems;
    if (header_value(ptr, n, "retry-after", r->retry_after, sizeof r->retry_after))
        r->has_retry_after = true;
    else if (header_value(ptr, n, "content-type", r->content_type, sizeof r->content_type))
        r->has_content_type = true;
    else if (quota_hdr_candidate(ptr, n)) /* one byte and the length first: a hot path */
        (void)quota_hdr_line(&r->quota, ptr, n);
    return n;
}

/* libcurl's receive buffer per easy handle (its default is 16 KiB). An answer is a few
 * hundred bytes, and with 256 handles the default's 4 MiB were touched a little more with
 * every minute of a long job: peak RSS kept growing with the job's length. 4 KiB holds a
 * whole single answer with its headers; a larger body (a batch answer) takes a few more
 * reads. */
#define FETCH_READ_BUFFER 4096L

/* The options every request has; also after curl_easy_reset. */
static bool req_configure(Fetcher *f, Req *r)
{
    CURL *e = r->easy;
    return curl_easy_setopt(e, CURLOPT_PRIVATE, r) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_WRITEDATA, r) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_HEADERDATA, r) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, f->opts.timeout_ms) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_USERAGENT, f->user_agent) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_BUFFERSIZE, FETCH_READ_BUFFER) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->opts.max_body) == CURLE_OK;
}

/* The TLS and proxy options of profile p: the defaults come back with a reset, since
 * libcurl has no way to say "the built-in CA store again" for CURLOPT_CAINFO. */
static bool req_use_tls(Fetcher *f, Req *r, int p)
{
    if (r->tls_profile == p || (!f->has_tls[p] && r->tls_profile < 0))
        return true;
    CURL *e = r->easy;
    if (r->tls_profile >= 0) {
        curl_easy_reset(e);
        r->tls_profile = -1;
        if (!req_configure(f, r))
            return false;
    }
    if (!f->has_tls[p])
        return true;
    const FetcherTls *t = &f->tls[p];
    bool ok = true;
    if (t->cacert)
        ok = ok && curl_easy_setopt(e, CURLOPT_CAINFO, t->cacert) == CURLE_OK;
    if (t->capath)
        ok = ok && curl_easy_setopt(e, CURLOPT_CAPATH, t->capath) == CURLE_OK;
    if (t->client_cert)
        ok = ok && curl_easy_setopt(e, CURLOPT_SSLCERT, t->client_cert) == CURLE_OK;
    if (t->client_key)
        ok = ok && curl_easy_setopt(e, CURLOPT_SSLKEY, t->client_key) == CURLE_OK;
    if (t->tls_min == 12 || t->tls_min == 13)
        ok = ok && curl_easy_setopt(e, CURLOPT_SSLVERSION,
                                    t->tls_min == 13 ? (long)CURL_SSLVERSION_TLSv1_3
                                                     : (long)CURL_SSLVERSION_TLSv1_2) == CURLE_OK;
    if (t->insecure)
        ok = ok && curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L) == CURLE_OK;
    if (t->proxy)
        ok = ok && curl_easy_setopt(e, CURLOPT_PROXY, t->proxy) == CURLE_OK;
    if (t->noproxy)
        ok = ok && curl_easy_setopt(e, CURLOPT_NOPROXY, t->noproxy) == CURLE_OK;
    if (ok)
        r->tls_profile = p;
    return ok;
}

static Req *req_new(Fetcher *f)
{
    Req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->f = f;
    r->tls_profile = -1;
    r->easy = curl_easy_init();
    if (r->easy == NULL)
        goto failed;
    buf_init(&r->body, f->opts.max_body);
    if (!req_configure(f, r))
        goto failed;
    return r;

failed:
    if (r->easy)
        curl_easy_cleanup(r->easy);
    free(r);
    return NULL;
}

static void req_destroy(Req *r)
{
    curl_easy_cleanup(r->easy);
    buf_free(&r->body);
    free(r);
}

static void active_unlink(Fetcher *f, Req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        f->active = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    f->in_flight--;
}

static void req_release(Fetcher *f, Req *r)
{
    /* Keep a modest body buffer for the next request; drop a big one. */
    if (r->body.cap > 64 * 1024) {
        buf_free(&r->body);
        buf_init(&r->body, f->opts.max_body);
    } else {
        buf_reset(&r->body);
    }
    r->next = f->free;
    f->free = r;
}

static TransportErr map_curl_error(CURLcode rc, const Req *r)
{
    switch (rc) {
    case CURLE_OK:
        return TE_NONE;
    case CURLE_OPERATION_TIMEDOUT:
        return TE_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return TE_CONNECT;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        return TE_RESET;
    case CURLE_PARTIAL_FILE:
        return TE_TRUNCATED;
    case CURLE_FILESIZE_EXCEEDED:
        return TE_TOO_LARGE;
    case CURLE_WRITE_ERROR:
        return r->too_large ? TE_TOO_LARGE : TE_OTHER;
    default:
        return TE_OTHER;
    }
}

/* Whether curl's message reports a TLS alert from the server containing what. */
static bool tls_alert(const char *msg, const char *what)
{
    const char *a = strstr(msg, "alert ");
    return a != NULL && strstr(a, what) != NULL;
}

/* The finer cause of a failure, from curl's code and, where curl lumps causes together,
 * its message (OpenSSL's alert names, the host-name check). */
static ConnFault map_fault(CURLcode rc, const char *msg)
{
    switch (rc) {
    case CURLE_OK:
        return CF_NONE;
    case CURLE_COULDNT_CONNECT:
        /* libcurl refuses a proxy scheme it does not speak with the code of a refusal */
        return strstr(msg, "proxy scheme") ? CF_PROXY_PROTOCOL : CF_REFUSED;
    case CURLE_OPERATION_TIMEDOUT: /* libcurl says which phase: "Connection timed out after" */
        return strncmp(msg, "Connection timed out", 20) == 0 ? CF_CONNECT_TIMEOUT : CF_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
        return CF_RESOLVE;
    case CURLE_COULDNT_RESOLVE_PROXY:
        return CF_RESOLVE_PROXY;
#if LIBCURL_VERSION_NUM >= 0x074900
    case CURLE_PROXY:
        return CF_PROXY;
#endif
    case CURLE_PEER_FAILED_VERIFICATION:
        return strstr(msg, "host name") || strstr(msg, "hostname") ? CF_CERT_NAME
                                                                   : CF_CERT_UNTRUSTED;
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        return CF_CERT_UNTRUSTED;
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
        return CF_TLS_LOCAL;
    case CURLE_UNSUPPORTED_PROTOCOL:
        return strstr(msg, "proxy scheme") ? CF_PROXY_PROTOCOL : CF_PROTOCOL;
    case CURLE_URL_MALFORMAT:
        return CF_URL;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        /* TLS 1.3 finishes the client's handshake before the server has looked at its
         * certificate: a refusal comes as an alert on the first read. */
        if (tls_alert(msg, "certificate required"))
            return CF_CLIENT_CERT_REQUIRED;
        if (tls_alert(msg, "unknown ca") || tls_alert(msg, "bad certificate") ||
            tls_alert(msg, "certificate unknown") || tls_alert(msg, "certificate expired") ||
            tls_alert(msg, "certificate revoked") || tls_alert(msg, "unsupported certificate"))
            return CF_CLIENT_CERT_REFUSED;
        return rc == CURLE_SSL_CONNECT_ERROR ? CF_TLS_HANDSHAKE : CF_RESET;
    case CURLE_GOT_NOTHING:
        return CF_RESET;
    default:
        return CF_OTHER;
    }
}

static void check_multi_info(Fetcher *f)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(f->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        Req *r = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)(void *)&r);
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(f->multi, easy);
        active_unlink(f, r);

        FetchResult res = {
            .terr = map_curl_error(rc, r),
            .status = status,
            .body = r->body.data ? r->body.data : "",
            .body_len = r->body.len,
            .retry_after = r->has_retry_after ? r->retry_after : NULL,
            .content_type = r->has_content_type ? r->content_type : NULL,
            .quota = quota_hdr_any(&r->quota) ? &r->quota : NULL,
            .error = rc == CURLE_OK ? ""
                     : r->errbuf[0] ? r->errbuf
                                    : curl_easy_strerror(rc),
        };
        res.fault = res.terr == TE_NONE ? CF_NONE : map_fault(rc, res.error);
        if (res.terr == TE_TOO_LARGE) {
            res.error = "body over the size cap";
            res.fault = CF_NONE;
        }
        r->fn(r->ud, &res);
        req_release(f, r);
    }
}

Fetcher *fetcher_new(struct ev_loop *loop, const FetcherOpts *opts, char *err, size_t errlen)
{
    Fetcher *f = calloc(1, sizeof *f);
    if (f == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->loop = loop;
    f->opts = *opts;
    f->user_agent = strdup(opts->user_agent ? opts->user_agent : "pgenrich");
    f->multi = curl_multi_init();
    if (f->user_agent == NULL || f->multi == NULL) {
        snprintf(err, errlen, "cannot initialise libcurl");
        goto failed;
    }
    ev_init(&f->timer, on_timer);
    f->timer.data = f;
    long conns = opts->max_connections > 0 ? opts->max_connections : 64;
    if (curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f) != CURLM_OK ||
        curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f) != CURLM_OK ||
        curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS, conns) != CURLM_OK ||
        curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, conns) != CURLM_OK) {
        snprintf(err, errlen, "cannot configure libcurl's multi handle");
        goto failed;
    }
    return f;

failed:
    fetcher_free(f);
    return NULL;
}

static bool sets_header(const char *const *headers, size_t n, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (strncasecmp(headers[i], name, nl) == 0 && headers[i][nl] == ':')
            return true;
    return false;
}

/* A header list may hold a token: wipe every line before it goes back to the allocator. */
static void wipe_slist(struct curl_slist *list)
{
    for (struct curl_slist *l = list; l; l = l->next)
        explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(list);
}

int fetcher_add_profile(Fetcher *f, const char *const *headers, size_t n, bool post,
                        const char *token, char *err, size_t errlen)
{
    if (f->n_profiles >= FETCHER_PROFILES_MAX) {
        snprintf(err, errlen, "too many header profiles");
        return -1;
    }
    struct curl_slist *list = NULL;
    const char *extra[3];
    size_t n_extra = 0;
    char *auth = NULL;
    size_t auth_len = 0;
    int rc = -1;
    if (!sets_header(headers, n, "Accept"))
        extra[n_extra++] = "Accept: application/json";
    if (post && !sets_header(headers, n, "Content-Type"))
        extra[n_extra++] = "Content-Type: application/json";
    if (token && token[0]) {
        static const char prefix[] = "Authorization: Bearer ";
        auth_len = sizeof prefix + strlen(token);
        if ((auth = malloc(auth_len)) == NULL) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        memcpy(auth, prefix, sizeof prefix - 1);
        memcpy(auth + sizeof prefix - 1, token, auth_len - sizeof prefix + 1);
        extra[n_extra++] = auth;
    }
    for (size_t i = 0; i < n + n_extra; i++) {
        struct curl_slist *l = curl_slist_append(list, i < n ? headers[i] : extra[i - n]);
        if (l == NULL) {
            wipe_slist(list);
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        list = l;
    }
    f->profiles[f->n_profiles] = list;
    rc = f->n_profiles++;
done:
    /* curl_slist_append copied the line: this copy goes now */
    if (auth) {
        explicit_bzero(auth, auth_len);
        free(auth);
    }
    return rc;
}

static void tls_free(FetcherTls *t)
{
    free((char *)t->cacert);
    free((char *)t->capath);
    free((char *)t->client_cert);
    free((char *)t->client_key);
    free((char *)t->proxy);
    free((char *)t->noproxy);
    memset(t, 0, sizeof *t);
}

/* A copy of s, or NULL for NULL; *ok goes false when out of memory. */
static const char *dup_opt(const char *s, bool *ok)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *ok = false;
    return d;
}

bool fetcher_profile_tls(Fetcher *f, int profile, const FetcherTls *tls, char *err, size_t errlen)
{
    if (profile < 0 || profile >= f->n_profiles) {
        snprintf(err, errlen, "no such header profile");
        return false;
    }
    FetcherTls *t = &f->tls[profile];
    bool ok = true;
    tls_free(t);
    t->cacert = dup_opt(tls->cacert, &ok);
    t->capath = dup_opt(tls->capath, &ok);
    t->client_cert = dup_opt(tls->client_cert, &ok);
    t->client_key = dup_opt(tls->client_key, &ok);
    t->proxy = dup_opt(tls->proxy, &ok);
    t->noproxy = dup_opt(tls->noproxy, &ok);
    t->tls_min = tls->tls_min;
    t->insecure = tls->insecure;
    if (!ok) {
        tls_free(t);
        snprintf(err, errlen, "out of memory");
        return false;
    }
    f->has_tls[profile] = t->cacert || t->capath || t->client_cert || t->client_key || t->proxy ||
                          t->noproxy || t->tls_min || t->insecure;
    return true;
}

bool fetcher_start(Fetcher *f, int profile, const char *url, const char *body, size_t body_len,
                   fetch_done_fn fn, void *ud)
{
    if (profile < 0 || profile >= f->n_profiles)
        return false;
    Req *r = f->free;
    if (r)
        f->free = r->next;
    else if ((r = req_new(f)) == NULL)
        return false;
    r->next = NULL;
    r->fn = fn;
    r->ud = ud;
    r->too_large = false;
    r->has_retry_after = false;
    r->has_content_type = false;
    memset(&r->quota, 0, sizeof r->quota);
    r->errbuf[0] = '\0';
    buf_reset(&r->body);
    CURL *e = r->easy;
    bool ok = req_use_tls(f, r, profile) && curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->profiles[profile]) == CURLE_OK;
    if (ok && body) {
        ok = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body) == CURLE_OK;
    } else if (ok) {
        ok = curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK;
    }
    if (!ok || curl_multi_add_handle(f->multi, e) != CURLM_OK) {
        req_release(f, r);
        return false;
    }
    r->next = f->active;
    if (f->active)
        f->active->prev = r;
    f->active = r;
    f->in_flight++;
    return true;
}

size_t fetcher_in_flight(const Fetcher *f)
{
    return f->in_flight;
}

void fetcher_abort_all(Fetcher *f)
{
    while (f->active) {
        Req *r = f->active;
        curl_multi_remove_handle(f->multi, r->easy);
        active_unlink(f, r);
        req_release(f, r);
    }
}

void fetcher_free(Fetcher *f)
{
    if (f == NULL)
        return;
    fetcher_abort_all(f);
    while (f->free) {
        Req *r = f->free;
        f->free = r->next;
        req_destroy(r);
    }
    if (f->multi) {
        ev_timer_stop(f->loop, &f->timer);
        curl_multi_cleanup(f->multi); /* closes sockets, calling on_curl_socket REMOVE */
    }
    while (f->spare) {
        SockWatch *sw = f->spare;
        f->spare = sw->next;
        free(sw);
    }
    for (int i = 0; i < f->n_profiles; i++) {
        wipe_slist(f->profiles[i]);
        tls_free(&f->tls[i]);
    }
    free(f->user_agent);
    free(f);
}
