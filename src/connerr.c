/* connerr: the configuration-or-transient decision for failures below HTTP, their words,
 * and the start-up checks on URLs and key files. Tables, not logic: each fault has one
 * row. */
#include "connerr.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef enum Kind {
    K_TRANSIENT,   /* retried; the breaker and --provider-down-timeout bound it */
    K_CONFIG,      /* a configuration error from the first request to the last */
    K_CONFIG_FIRST /* configuration until the provider has answered once */
} Kind;

typedef struct FaultInfo {
    Kind kind;
    const char *word;  /* for transient lines: error="connection refused" */
    const char *cause; /* for the one-line configuration error */
    const char *hint;  /* may hold one %s: the provider's name */
} FaultInfo;

static const FaultInfo faults[] = {
    [CF_NONE] = {K_TRANSIENT, "none", "no error", ""},
    [CF_REFUSED] = {K_TRANSIENT, "connection refused", "the connection was refused",
                    "check that the server runs and listens at the port in the URL"},
    [CF_TIMEOUT] = {K_TRANSIENT, "timeout", "the request timed out",
                    "check that the host is reachable (a firewall, a proxy?) or raise --timeout"},
    [CF_CONNECT_TIMEOUT] = {K_TRANSIENT, "connect timeout", "the connection timed out",
                            "check that the host is reachable (a firewall, a route, a proxy?) "
                            "and listens at the port in the URL"},
    [CF_RESET] = {K_TRANSIENT, "connection reset", "the connection was reset", ""},
    [CF_RESOLVE] = {K_CONFIG_FIRST, "host not found", "the host name does not resolve",
                    "check the host in url = of [provider %s] (or --base-url) and the DNS"},
    [CF_RESOLVE_PROXY] = {K_CONFIG_FIRST, "proxy host not found",
                          "the proxy's host name does not resolve",
                          "check --proxy, proxy = in [provider %s], or https_proxy/http_proxy"},
    [CF_PROXY] = {K_CONFIG_FIRST, "proxy error", "the proxy refused the connection",
                  "check --proxy, proxy = in [provider %s], or https_proxy/http_proxy and "
                  "no_proxy"},
    [CF_PROXY_PROTOCOL] = {K_CONFIG, "unsupported proxy protocol",
                           "the proxy's protocol is not supported",
                           "the proxy (--proxy, proxy = in [provider %s], or https_proxy/"
                           "http_proxy/all_proxy) must start with http://, https://, socks4://, "
                           "socks4a://, socks5:// or socks5h://"},
    [CF_CERT_UNTRUSTED] = {K_CONFIG, "certificate not trusted",
                           "the server's certificate is not trusted",
                           "give the CA with --cacert or cacert = in [provider %s]"},
    [CF_CERT_NAME] = {K_CONFIG, "certificate name mismatch",
                      "the server's certificate is not for this host name",
                      "use the host name the certificate names in url = of [provider %s]"},
    [CF_TLS_HANDSHAKE] = {K_CONFIG_FIRST, "TLS handshake failed", "the TLS handshake failed",
                          "check that the port speaks TLS (https://) and the TLS version "
                          "(--tls-min-version or tls_min_version = in [provider %s])"},
    [CF_TLS_LOCAL] = {K_CONFIG, "TLS files unusable",
                      "a TLS file (CA, client certificate or key) could not be used",
                      "check the paths and formats (PEM) of cacert, capath, client_cert and "
                      "client_key for [provider %s]"},
    [CF_CLIENT_CERT_REQUIRED] = {K_CONFIG, "client certificate required",
                                 "the server requires a client certificate",
                                 "give one with --client-cert and --client-key or "
                                 "client_cert = and client_key = in [provider %s]"},
    [CF_CLIENT_CERT_REFUSED] = {K_CONFIG, "client certificate refused",
                                "the server refused the client certificate",
                                "check that client_cert of [provider %s] is issued by a CA "
                                "the server trusts and not expired"},
    [CF_PROTOCOL] = {K_CONFIG, "unsupported protocol", "the URL's protocol is not supported",
                     "url = of [provider %s] must start with http:// or https://"},
    [CF_URL] = {K_CONFIG, "malformed URL", "the URL is malformed",
                "check url = of [provider %s] (or --base-url)"},
    [CF_OTHER] = {K_TRANSIENT, "transport error", "the request failed below HTTP", ""},
};

static const FaultInfo *info(ConnFault f)
{
    if ((unsigned)f >= ARRAY_LEN(faults))
        f = CF_OTHER;
    return &faults[f];
}

bool connerr_is_config(ConnFault fault, bool answered)
{
    switch (info(fault)->kind) {
    case K_CONFIG:
        return true;
    case K_CONFIG_FIRST:
        return !answered;
    case K_TRANSIENT:
        break;
    }
    return false;
}

bool connerr_unreachable(ConnFault fault)
{
    return fault == CF_REFUSED || fault == CF_CONNECT_TIMEOUT || fault == CF_RESOLVE;
}

const char *connerr_cause(ConnFault fault)
{
    return info(fault)->cause;
}

const char *connerr_word(ConnFault fault)
{
    return info(fault)->word;
}

void connerr_hint(ConnFault fault, const char *provider, char *out, size_t outlen)
{
    const char *h = info(fault)->hint;
    if (outlen == 0)
        return;
    const char *mark = strstr(h, "%s");
    if (mark == NULL)
        snprintf(out, outlen, "%s", h);
    else
        snprintf(out, outlen, "%.*s%s%s", (int)(mark - h), h, provider ? provider : "NAME",
                 mark + 2);
}

/* The authority of s after "scheme://" (or from the start when scheme is optional and s
 * has none), without userinfo, which ends at its last '@': [*p, *end). */
static bool authority(const char *s, bool scheme_optional, const char **p, const char **end)
{
    const char *a = strstr(s, "://");
    if (a == NULL && !scheme_optional)
        return false;
    a = a != NULL ? a + 3 : s;
    const char *e = a + strcspn(a, "/?#");
    for (const char *q = e; q > a; q--) {
        if (q[-1] == '@') {
            a = q;
            break;
        }
    }
    *p = a;
    *end = e;
    return true;
}

bool connerr_url_host(const char *url, char *out, size_t outlen)
{
    const char *p, *end;
    if (outlen > 0)
        out[0] = '\0';
    if (outlen == 0 || !authority(url, false, &p, &end))
        return false;
    const char *host_end;
    if (*p == '[') {
        p++;
        host_end = memchr(p, ']', (size_t)(end - p));
        if (host_end == NULL)
            return false;
    } else {
        host_end = memchr(p, ':', (size_t)(end - p));
        if (host_end == NULL)
            host_end = end;
    }
    size_t n = (size_t)(host_end - p);
    if (n == 0 || n >= outlen)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

bool connerr_proxy_addr(const char *proxy, char *out, size_t outlen)
{
    const char *p, *end;
    if (outlen > 0)
        out[0] = '\0';
    if (proxy == NULL || outlen == 0 || !authority(proxy, true, &p, &end))
        return false;
    size_t n = (size_t)(end - p); /* never the credentials */
    if (n == 0 || n >= outlen)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

bool connerr_host_loopback(const char *host)
{
    size_t n = strlen(host);
    if (strcasecmp(host, "localhost") == 0 ||
        (n > 10 && strcasecmp(host + n - 10, ".localhost") == 0))
        return true;
    if (strcmp(host, "::1") == 0 || strcasecmp(host, "0:0:0:0:0:0:0:1") == 0)
        return true;
    /* 127.a.b.c with each part 0-255 */
    if (strncmp(host, "127.", 4) != 0)
        return false;
    int parts = 1;
    const char *p = host + 4;
    while (parts < 4) {
        int v = 0, digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 4) {
            v = v * 10 + (*p++ - '0');
            digits++;
        }
        if (digits == 0 || digits > 3 || v > 255)
            return false;
        parts++;
        if (parts < 4) {
            if (*p != '.')
                return false;
            p++;
        }
    }
    return *p == '\0';
}

bool connerr_key_mode_ok(mode_t mode, uid_t owner, char *why, size_t whylen)
{
    if (!S_ISREG(mode)) {
        snprintf(why, whylen, "is not a regular file");
        return false;
    }
    mode_t allowed = owner == 0 ? (S_IRWXU | S_IRGRP) : S_IRWXU;
    if ((mode & (S_IRWXG | S_IRWXO)) & ~allowed) {
        snprintf(why, whylen,
                 "is readable or writable by group or others (mode %04o); run chmod 600 on "
                 "it (chmod 640 when root owns it)",
                 (unsigned)(mode & 07777));
        return false;
    }
    return true;
}
