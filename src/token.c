/* token: the bearer tokens of the provider chain. Every token read goes through
 * token_check, is held by a TokenChain and wiped when it is freed; messages name the
 * source of a token (a variable, a file, a provider), never the token. */
#include "token.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "log.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

const char *token_check(char *buf, size_t *len, bool trim)
{
    size_t n = *len;

    if (trim) {
        while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\r' ||
                         buf[n - 1] == '\n'))
            n--;
    }
    if (n == 0)
        return "is empty";
    if (n > TOKEN_MAX)
        return "is longer than " STR(TOKEN_MAX) " bytes";
    if (memchr(buf, '\n', n) || memchr(buf, '\r', n))
        return "holds a line break (CR or LF)";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c <= 0x20 || c == 0x7F)
            return "holds a space, a tab or a control character (a bearer token is one word)";
    }
    buf[n] = '\0';
    *len = n;
    return NULL;
}

void token_free(char *token)
{
    if (token == NULL)
        return;
    explicit_bzero(token, strlen(token));
    free(token);
}

bool token_from_env(const char *name, bool required, char **out, char *err, size_t errlen)
{
    const char *v = getenv(name);
    const char *why;
    size_t len;
    char *copy;

    *out = NULL;
    if (v == NULL || *v == '\0') {
        if (!required)
            return true;
        snprintf(err, errlen, "environment variable %s is %s", name, v ? "empty" : "not set");
        return false;
    }
    len = strlen(v);
    if (len > TOKEN_MAX) {
        snprintf(err, errlen, "the token in environment variable %s is longer than %d bytes", name,
                 TOKEN_MAX);
        return false;
    }
    if ((copy = malloc(len + 1)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    memcpy(copy, v, len + 1);
    if ((why = token_check(copy, &len, false)) != NULL) {
        snprintf(err, errlen, "the token in environment variable %s %s", name, why);
        explicit_bzero(copy, len + 1);
        free(copy);
        return false;
    }
    *out = copy;
    return true;
}

/* open/read rather than stdio: a FILE's buffer would keep a copy of the token that nobody
 * wipes. */
bool token_from_file(const char *path, char **out, char *err, size_t errlen)
{
    struct stat sb;
    const char *why;
    char *buf = NULL;
    size_t n = 0;
    bool ok = false;
    int fd;

    *out = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "cannot open token file %s: %s", path, strerror(errno));
        return false;
    }
    if (fstat(fd, &sb) == 0 && (sb.st_mode & 0077) != 0)
        log_warn("event=token_file_permissions file=\"%s\" detail=\"readable by others; "
                 "chmod 600 it\"",
                 path);
    if ((buf = malloc(TOKEN_MAX + 2)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    while (n <= TOKEN_MAX) { /* one byte more than a token may have: a file too large */
        ssize_t r = read(fd, buf + n, TOKEN_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read token file %s: %s", path, strerror(errno));
            goto done;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > TOKEN_MAX) {
        snprintf(err, errlen, "token file %s is larger than %d bytes", path, TOKEN_MAX);
        goto done;
    }
    if ((why = token_check(buf, &n, true)) != NULL) {
        snprintf(err, errlen, "the token in file %s %s", path, why);
        goto done;
    }
    *out = buf;
    buf = NULL;
    ok = true;
done:
    if (buf) {
        explicit_bzero(buf, TOKEN_MAX + 2);
        free(buf);
    }
    close(fd);
    return ok;
}

/* The decision on the host as it stands in the URL: a slice, not truncated. */
static bool loopback_n(const char *h, size_t n)
{
    char s[64];
    struct in_addr a4;
    struct in6_addr a6;

    if (n == 0 || n >= sizeof s)
        return false; /* no loopback literal is that long */
    memcpy(s, h, n);
    s[n] = '\0';
    if (strcasecmp(s, "localhost") == 0 || strcasecmp(s, "localhost.") == 0)
        return true;
    if (inet_pton(AF_INET, s, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, s, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false;
}

bool token_host_is_loopback(const char *host)
{
    return loopback_n(host, strlen(host));
}

bool token_url_exposed(const char *url, char *host, size_t hostlen)
{
    const char *auth, *end, *at, *h, *he;
    bool plain = strncasecmp(url, "http://", 7) == 0;

    if (hostlen > 0)
        host[0] = '\0';
    if (!plain && strncasecmp(url, "https://", 8) != 0)
        return false;
    auth = url + (plain ? 7 : 8);
    end = auth + strcspn(auth, "/?#");
    h = auth;
    for (at = auth; at < end; at++) /* userinfo ends at the last '@' */
        if (*at == '@')
            h = at + 1;
    if (*h == '[') {
        h++;
        he = memchr(h, ']', (size_t)(end - h));
        if (he == NULL)
            he = end;
    } else {
        he = memchr(h, ':', (size_t)(end - h));
        if (he == NULL)
            he = end;
    }
    if (hostlen > 0) {
        size_t n = (size_t)(he - h) < hostlen - 1 ? (size_t)(he - h) : hostlen - 1;
        memcpy(host, h, n);
        host[n] = '\0';
    }
    return plain && !loopback_n(h, (size_t)(he - h));
}

/* A token in memory must not end up in a core file or be read by a debugger of the same
 * user. rlimit as well: with fs.suid_dumpable = 2 the kernel still dumps a non-dumpable
 * process (readable by root only). */
static void no_core_dumps(void)
{
    struct rlimit none = {0, 0};
    int rc = 0;
#ifdef __linux__
    rc = prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
    if (rc != 0 || setrlimit(RLIMIT_CORE, &none) != 0)
        log_warn("event=core_dumps detail=\"cannot disable core dumps: %s\"", strerror(errno));
}

/* One read per source: providers naming the same variable or file share the token. */
typedef struct Source {
    TokenFrom from;
    const char *ref;
    const char *token;
} Source;

static bool load_source(TokenChain *tc, Source *seen, size_t *n_seen, TokenFrom from,
                        const char *ref, bool required, const char **out, char *err, size_t errlen)
{
    char *t = NULL;
    bool ok;

    for (size_t i = 0; i < *n_seen; i++) {
        if (seen[i].from == from && strcmp(seen[i].ref, ref) == 0) {
            *out = seen[i].token;
            return true;
        }
    }
    ok = from == TOKEN_FROM_ENV ? token_from_env(ref, required, &t, err, errlen)
                                : token_from_file(ref, &t, err, errlen);
    *out = t;
    if (ok && t) {
        tc->held[tc->n_held++] = t;
        seen[*n_seen] = (Source){.from = from, .ref = ref, .token = t};
        ++*n_seen;
    }
    return ok;
}

bool token_chain_load(TokenChain *tc, const char *global_file, const ProviderConf *providers,
                      size_t n, char *err, size_t errlen)
{
    Source seen[PROVIDERS_MAX + 1];
    size_t n_seen = 0;
    const char *global = NULL;
    bool global_used = false;
    char why[512];

    memset(tc, 0, sizeof *tc);
    if (n > PROVIDERS_MAX) {
        snprintf(err, errlen, "more than %d providers", PROVIDERS_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        global_used |= providers[i].token_from == TOKEN_FROM_INHERIT ||
                       (i == 0 && providers[i].token_from == TOKEN_FROM_DEFAULT);
    if (global_used &&
        !load_source(tc, seen, &n_seen, global_file ? TOKEN_FROM_FILE : TOKEN_FROM_ENV,
                     global_file ? global_file : TOKEN_ENV, false, &global, err, errlen)) {
        tc->global_failed = true;
        return false;
    }
    if (!global_used && global_file)
        log_warn("event=token_unused file=\"%s\" detail=\"no provider uses the global token "
                 "(the first one names its own, and none says token = inherit)\"",
                 global_file);

    for (size_t i = 0; i < n; i++) {
        const ProviderConf *p = &providers[i];
        switch (p->token_from) {
        case TOKEN_FROM_DEFAULT:
            tc->tokens[i] = i == 0 ? global : NULL;
            break;
        case TOKEN_FROM_INHERIT:
            tc->tokens[i] = global;
            break;
        case TOKEN_FROM_NONE:
            break;
        case TOKEN_FROM_ENV:
        case TOKEN_FROM_FILE:
            if (!load_source(tc, seen, &n_seen, p->token_from, p->token_ref, true, &tc->tokens[i],
                             why, sizeof why)) {
                const char *key = p->token_from == TOKEN_FROM_ENV ? "token_env" : "token_file";
                if (p->token_origin != NULL)
                    snprintf(err, errlen, "%s: %s: %s (in [provider %s])", p->token_origin, key,
                             why, p->name);
                else
                    snprintf(err, errlen, "[provider %s] %s: %s", p->name, key, why);
                return false;
            }
            break;
        }
    }
    if (tc->n_held > 0)
        no_core_dumps();
    for (size_t i = 0; i < n; i++) {
        char host[TOKEN_HOST_MAX];
        if (tc->tokens[i] && token_url_exposed(providers[i].url, host, sizeof host))
            log_warn("event=token_over_http provider=%s host=%s detail=\"the token goes to this "
                     "provider unencrypted over http://; use https:// or a loopback host\"",
                     providers[i].name, host);
    }
    return true;
}

void token_chain_free(TokenChain *tc)
{
    if (tc == NULL)
        return;
    for (size_t i = 0; i < tc->n_held; i++)
        token_free(tc->held[i]);
    memset(tc, 0, sizeof *tc);
}
