/* fetcher: HTTP GETs over one curl multi handle driven by the libev loop through curl's
 * socket and timer callbacks (after curl's evhiperfifo example). Connections are kept alive
 * and reused; easy handles are pooled; bodies are capped. */
#ifndef PGENRICH_FETCHER_H
#define PGENRICH_FETCHER_H

#include <stdbool.h>
#include <stddef.h>
#include "compat.h"
#include "connerr.h"
#include "quota.h"
#include "retry.h"

struct ev_loop;

typedef struct FetcherOpts {
    long timeout_ms;        /* whole request */
    size_t max_body;        /* bytes; a larger body ends the request with TE_TOO_LARGE */
    int max_connections;    /* connections kept open to the host */
    const char *user_agent; /* e.g. "pgenrich/0.1.0" */
} FetcherOpts;

typedef struct FetchResult {
    TransportErr terr; /* TE_NONE: status and body are valid */
    long status;       /* HTTP status, 0 when no answer */
    const char *body;  /* borrowed until the callback returns */
    size_t body_len;
    const char *retry_after;  /* Retry-After header value or NULL; borrowed */
    const char *content_type; /* Content-Type header value or NULL; borrowed */
    const char *error;        /* curl's message for a transport error, else "" */
    ConnFault fault;          /* the cause of a transport error in finer terms; CF_NONE
                                 when terr is TE_NONE */
    const QuotaHdr *quota;    /* the quota headers (RateLimit-*, X-RateLimit-*) as read, or
                                 NULL when there were none; borrowed */
} FetchResult;

/* Called once per request when it ends, from the loop. The callback may start new
 * requests. Pointers in r are valid only during the call. */
typedef void (*fetch_done_fn)(void *ud, const FetchResult *r);

typedef struct Fetcher Fetcher;

/* Returns NULL (with a one-line message in err) on failure. Opts are copied. */
Fetcher *fetcher_new(struct ev_loop *loop, const FetcherOpts *opts, char *err, size_t errlen) WUR;

#define FETCHER_PROFILES_MAX 8

/* Register a header profile: the given "Name: value" lines (a provider's own headers),
 * "Authorization: Bearer TOKEN" when token is neither NULL nor empty (no Authorization
 * header otherwise), Accept: application/json unless the lines set Accept, and for a POST
 * profile Content-Type: application/json unless they set Content-Type. Everything is
 * copied; the profile's copy of the token is wiped when the fetcher is freed, and the
 * token is never put in a message. Returns its index for fetcher_start, or -1 (with a
 * reason in err) when out of memory or slots. */
int fetcher_add_profile(Fetcher *f, const char *const *headers, size_t n, bool post,
                        const char *token, char *err, size_t errlen) WUR;

/* TLS and proxy settings of a profile. NULL strings and 0 leave libcurl's defaults: the
 * system CA store, verification on, TLS 1.2 or whatever libcurl's minimum is, the proxy of
 * the http_proxy/https_proxy/no_proxy environment. */
typedef struct FetcherTls {
    const char *cacert;      /* CA bundle file (PEM) */
    const char *capath;      /* directory of hashed CA certificates (c_rehash) */
    const char *client_cert; /* client certificate (PEM), for mutual TLS */
    const char *client_key;  /* its private key (PEM); NULL: in client_cert's file */
    int tls_min;             /* 0: libcurl's; 12: TLS 1.2; 13: TLS 1.3 */
    bool insecure;           /* verify neither the peer's certificate nor its name */
    const char *proxy;       /* [scheme://]host[:port]; "" ignores the environment's */
    const char *noproxy;     /* hosts that bypass the proxy, comma separated ("*": all) */
} FetcherTls;

/* Give profile (from fetcher_add_profile) the TLS and proxy settings in tls; everything is
 * copied. Returns false (with a reason in err) when out of memory or profile is unknown. */
bool fetcher_profile_tls(Fetcher *f, int profile, const FetcherTls *tls, char *err,
                         size_t errlen) WUR;

/* Start a request to url with the headers of `profile`: a GET, or a POST of body_len bytes
 * of body (copied) when body is not NULL. fn(ud, result) is called when it ends. Returns
 * false if the request could not be started (out of memory, or curl refused it). */
bool fetcher_start(Fetcher *f, int profile, const char *url, const char *body, size_t body_len,
                   fetch_done_fn fn, void *ud) WUR;

/* Requests started and not yet ended. */
size_t fetcher_in_flight(const Fetcher *f);

/* Abort every request in flight without calling their callbacks. */
void fetcher_abort_all(Fetcher *f);

/* Abort everything in flight (no callbacks) and release it all. NULL is fine. */
void fetcher_free(Fetcher *f);

#endif
