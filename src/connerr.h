/* connerr: what a connection-level failure means. The fetcher names the fault below HTTP
 * (refused, no such host, untrusted certificate, ...); this module says whether it is a
 * configuration error that stops the job at once or a transient one the breaker and the
 * retries absorb, and words the cause and the hint for the one-line message. Also the
 * small checks made before a run: the host of a URL, loopback or not, a private key file's
 * mode. Pure: no curl, no I/O. */
#ifndef PGENRICH_CONNERR_H
#define PGENRICH_CONNERR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "compat.h"

/* Why a request got no HTTP answer, finer than TransportErr. */
typedef enum ConnFault {
    CF_NONE = 0,             /* an answer came (or the failure is above the connection) */
    CF_REFUSED,              /* nothing listens at the port (or the route is down) */
    CF_TIMEOUT,              /* no complete answer within --timeout */
    CF_CONNECT_TIMEOUT,      /* no connection within --timeout (nothing answers the SYN) */
    CF_RESET,                /* the connection was reset or closed before the answer */
    CF_RESOLVE,              /* the host name does not resolve */
    CF_RESOLVE_PROXY,        /* the proxy's host name does not resolve */
    CF_PROXY,                /* the proxy refused or broke the tunnel */
    CF_PROXY_PROTOCOL,       /* the proxy's URL has a scheme libcurl does not speak */
    CF_CERT_UNTRUSTED,       /* the server's certificate chain does not verify (unknown CA,
                                self-signed, expired) */
    CF_CERT_NAME,            /* the certificate is valid but not for this host name */
    CF_TLS_HANDSHAKE,        /* the TLS handshake failed (version, ciphers, not TLS at all) */
    CF_TLS_LOCAL,            /* our own TLS files could not be used (cacert, client cert/key) */
    CF_CLIENT_CERT_REQUIRED, /* the server asked for a client certificate we did not send */
    CF_CLIENT_CERT_REFUSED,  /* the server refused the client certificate we sent */
    CF_PROTOCOL,             /* the URL's scheme is not one we speak */
    CF_URL,                  /* the URL is malformed */
    CF_OTHER                 /* anything else below HTTP: transient */
} ConnFault;

/* Whether fault stops the job as a configuration error. `answered`: the provider has given
 * at least one HTTP answer (any status) in this run. Certificates, our TLS files, the
 * protocol and the URL are configuration whatever came before; a host that does not
 * resolve and a failed handshake are configuration only while the provider has never
 * answered (afterwards: a DNS or network hiccup, transient); refused, timeouts and resets
 * never are (the bounded wait of --provider-down-timeout covers them). */
bool connerr_is_config(ConnFault fault, bool answered);

/* Whether fault says the request never reached the provider: the connection was refused or
 * could not be made (CF_REFUSED), timed out while connecting (CF_CONNECT_TIMEOUT), or the
 * host name did not resolve (CF_RESOLVE; a configuration error until the provider has
 * answered). These are not about the ID: a run of them means the provider is down, and the
 * ID's attempts are not spent on it. Resets and read timeouts are not: the request may have
 * reached it. */
bool connerr_unreachable(ConnFault fault);

/* The cause in plain words ("the server's certificate is not trusted"); static storage.
 * CF_NONE gives "no error". */
const char *connerr_cause(ConnFault fault);

/* A short name for logs of transient faults ("connection refused", "timeout", ...);
 * static storage. */
const char *connerr_word(ConnFault fault);

/* Write into out (always NUL-terminated) how to fix fault for the provider named provider
 * ("give the CA with --cacert or cacert = in [provider NAME]"); empty when there is no
 * advice. */
void connerr_hint(ConnFault fault, const char *provider, char *out, size_t outlen);

/* The host of an http(s) URL or URL template (no userinfo, no port, IPv6 without its
 * brackets), into out. False (out empty) when there is no "scheme://" or the host is
 * empty or does not fit. */
bool connerr_url_host(const char *url, char *out, size_t outlen) WUR;

/* The HOST:PORT (or HOST) of a proxy as libcurl takes it, "[SCHEME://][USER[:PASS]@]HOST[:PORT]
 * [/...]", into out: never its credentials. False (out "") when there is none or it does not
 * fit. */
bool connerr_proxy_addr(const char *proxy, char *out, size_t outlen) WUR;

/* Whether host (as connerr_url_host gives it) is the loopback: "localhost" (any case, also
 * "*.localhost"), 127.0.0.0/8 in dotted form, or ::1. */
bool connerr_host_loopback(const char *host);

/* Whether a private key file with st_mode `mode`, owned by uid `owner`, may be used: the
 * rule libpq applies to sslkey: a regular file, no access for others and none for the
 * group, except read for the group when root owns it (a key shared by the system through
 * a group). On false, the reason in why ("is readable by group or others (mode 0644); run
 * chmod 600 on it"), without the file's name. */
bool connerr_key_mode_ok(mode_t mode, uid_t owner, char *why, size_t whylen) WUR;

#endif
