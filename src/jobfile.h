/* jobfile: the INI job file (`pgenrich run --config FILE`), read with libinih. The
 * [source], [target] and [limits] sections hold the settings config.c puts there, named
 * like the flags (concurrency = 128, or page_size = 500); [job] holds the job's own and
 * accepts any setting; each [provider NAME] section is one provider, in chain order. The
 * environment and then the flags override the file; main applies them after jobfile_load.
 * The format is described in docs/jobfile.md. */
#ifndef PGENRICH_JOBFILE_H
#define PGENRICH_JOBFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "compat.h"
#include "config.h"
#include "provider.h"

#define PROVIDERS_MAX        8
#define PROVIDER_HEADERS_MAX 16
#define PROVIDER_NAME_MAX    39      /* libinih keeps 49 bytes of a section name */
#define JOBFILE_LINE_MAX     4096    /* bytes on one line, without the line end */
#define JOBFILE_ORIGIN_MAX   4200    /* "FILE:LINE" of a key */
#define JOBFILE_SIZE_MAX     1048576 /* bytes in one file */
#define JOBFILE_POINTER_MAX  120     /* bytes in one JSON Pointer of a mapping */

/* Where a provider's bearer token comes from (token.h reads it). */
typedef enum TokenFrom {
    TOKEN_FROM_DEFAULT = 0, /* no token key: the global token (PGENRICH_TOKEN or token-file)
                               for the first provider of the chain, none for the others */
    TOKEN_FROM_INHERIT,     /* token = inherit: the global token */
    TOKEN_FROM_NONE,        /* token = none: no Authorization header */
    TOKEN_FROM_ENV,         /* token_env = NAME: the environment variable NAME */
    TOKEN_FROM_FILE,        /* token_file = PATH: the file PATH */
} TokenFrom;

/* A provider's TLS and proxy settings (README "TLS, proxies and connection errors"). NULL:
 * not given, the global setting of the same name applies. Paths are as given (relative: to
 * the working directory). */
typedef struct ProviderTls {
    const char *cacert;          /* CA bundle file */
    const char *capath;          /* CA directory */
    const char *client_cert;     /* client certificate, for mutual TLS */
    const char *client_key;      /* its private key */
    const char *tls_min_version; /* "1.2" or "1.3" */
    const char *proxy;           /* proxy URL, or "none" (no proxy, whatever the environment) */
    const char *noproxy;         /* hosts that bypass the proxy */
    bool insecure_set;           /* insecure was given ... */
    bool insecure;               /* ... with this value */
} ProviderTls;

/* What a provider answers: one ID per request (API.md section 1 and 3), or many per POST
 * (section 2). */
typedef enum ProviderKind {
    PROVIDER_SINGLE = 0,
    PROVIDER_BATCH,
} ProviderKind;

#define BATCH_MAX_IDS         10000 /* the largest max_batch */
#define BATCH_DEFAULT_IDS     100   /* max_batch when not given (API.md: the mock's default) */
#define BATCH_DEFAULT_LINGER  20    /* batch_linger, milliseconds */
#define BATCH_DEFAULT_POLL_TO 60.0  /* poll_timeout, seconds */

/* One provider of the chain. Every string is owned by the JobFile (or static). */
typedef struct ProviderConf {
    const char *name; /* [A-Za-z0-9_.-]{1,PROVIDER_NAME_MAX}; recorded in the target's
                         provider column */
    const char *url;  /* template with {id}, http:// or https:// (provider_template_check) */
    bool post;        /* method = POST (else GET) */
    const char *body; /* POST body template with {id} (JSON-escaped into it), or NULL; never
                         set unless post */
    const char *headers[PROVIDER_HEADERS_MAX]; /* "Name: value" lines, in file order; never
                                                  Authorization, Host, Content-Length or
                                                  Transfer-Encoding; no control characters
                                                  but TAB */
    size_t n_headers;
    ProviderMap map;          /* the built-in mapping named by `mapping`, then map.* and presence
                                 overrides; presence is never NULL */
    TokenFrom token_from;     /* at most one of token, token_env, token_file was given */
    const char *token_ref;    /* TOKEN_FROM_ENV: a variable name [A-Za-z_][A-Za-z0-9_]*;
                                 TOKEN_FROM_FILE: a non-empty path without control
                                 characters, as given (relative: to the working directory);
                                 else NULL */
    const char *token_origin; /* with token_ref: "FILE:LINE" of its key, for errors */
    ProviderTls tls;          /* the section's own TLS and proxy keys */
    ProviderKind kind;        /* kind = single (default) or batch */
    /* kind = batch only (zero otherwise). url is then the batch endpoint itself, without
     * {id} (or any brace), post is true and body NULL: the body is the ID list. */
    int max_batch;        /* IDs per call, 1..BATCH_MAX_IDS; default BATCH_DEFAULT_IDS */
    int batch_linger_ms;  /* wait this long for more IDs before sending a short batch,
                             0..60000; default BATCH_DEFAULT_LINGER */
    const char *poll_url; /* template with {job} (percent-encoded into it); default url +
                             "/{job}" */
    double poll_timeout;  /* seconds a 202 job may stay pending, (0, 86400]; default
                             BATCH_DEFAULT_POLL_TO */
    bool count_ids;       /* the rate limit counts IDs rather than calls */
} ProviderConf;

typedef struct JobFile {
    ProviderConf providers[PROVIDERS_MAX];
    size_t n_providers;
    char **strings; /* every string the file supplied; owned */
    size_t n_strings, cap_strings;
} JobFile;

/* Read path into cfg (the settings through config_set_at, CONFIG_FROM_FILE with their line)
 * and jf (the provider chain). *jf is zeroed first (whatever it held is dropped, not
 * freed). A file with no [provider] section leaves the chain empty. Unknown sections or
 * keys, a setting in another specific section than its own (the message names the right
 * one), a setting given twice (also across sections, or spelled once with '-' and once
 * with '_'), bad values, a provider without
 * url, duplicate provider names, more than PROVIDERS_MAX providers, a line over
 * JOBFILE_LINE_MAX, a file over JOBFILE_SIZE_MAX or holding a NUL byte: false, with
 * "FILE:LINE: KEY: reason" (or "FILE:LINE: reason", "FILE: reason") in err, one line of
 * printable characters. On failure cfg may hold some of the file's settings.
 * jf must be released with jobfile_free whatever the result; cfg keeps pointers into jf,
 * so jf must outlive cfg's use.
 * Sets libinih's run-time options (Debian's build exports them as globals: line length,
 * comments, continuation lines), so it is not safe to call from two threads at once. */
bool jobfile_load(const char *path, Config *cfg, JobFile *jf, char *err, size_t errlen) WUR;

/* The same for a job file already in memory (text, NUL-terminated); name_for_errors
 * stands for FILE in messages (NULL: "<string>"). For tests and the fuzzer. */
bool jobfile_load_string(const char *text, const char *name_for_errors, Config *cfg, JobFile *jf,
                         char *err, size_t errlen) WUR;

/* The chain when the job file gave no provider: the API.md section 1 provider named
 * "primary", url = base_url without its trailing '/'s +
 * "/api/v2/entities/{id}?select=id,label,location", GET, no headers, provider_map_primary.
 * jf must be zero-initialised or come from jobfile_load, with an empty chain; the url is
 * built into jf's storage. base_url must start with http:// or https:// and hold no
 * braces, '?', '#', space or control character. False with a reason in err otherwise. */
bool jobfile_default_chain(const char *base_url, JobFile *jf, char *err, size_t errlen) WUR;

/* The TLS and proxy settings p runs with: each of p's own keys, else the global setting
 * (cfg) of the same name. Strings are borrowed from p and cfg. */
void jobfile_effective_tls(const ProviderConf *p, const Config *cfg, ProviderTls *out);

/* Print the chain for check-config, one "provider.NAME.key = value" line per key (every
 * mapping pointer included), with a URL's secrets and the values of headers named like
 * secrets (config_secret_name) shown as ****; token sources are named, never read. */
void jobfile_dump(const JobFile *jf, FILE *out);

/* Free every string jf owns and zero it; a zeroed jf is fine. */
void jobfile_free(JobFile *jf);

#endif
