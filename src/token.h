/* token: the API bearer tokens, one per provider of the chain. Reads them from the
 * environment or from files, checks them, decides which provider gets which (a token goes
 * only to the providers its owner named), and keeps them out of logs and core dumps. */
#ifndef PGENRICH_TOKEN_H
#define PGENRICH_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include "compat.h"
#include "jobfile.h"

#define TOKEN_MAX      8192             /* bytes in one token (and in a token file) */
#define TOKEN_ENV      "PGENRICH_TOKEN" /* the global token, when no token-file is given */
#define TOKEN_HOST_MAX 256              /* bytes of a host name token_url_exposed reports */

/* Check the len bytes at buf as a token; buf[len] must be writable. With trim, trailing
 * spaces, tabs, CRs and LFs are cut first (a file's line end). Refused: an empty token,
 * more than TOKEN_MAX bytes, a CR or LF anywhere (it would end the header), any other
 * control character, space or tab (NUL and DEL included: a bearer token is one word).
 * Returns NULL when the token is fine, with *len updated and buf NUL-terminated there;
 * else a short static reason ("is empty", ...) that never quotes the token. Pure. */
const char *token_check(char *buf, size_t *len, bool trim) WUR;

/* The token in environment variable name, checked (no trimming). *out is the token (free
 * with token_free) or, when the variable is unset or empty and !required, NULL. False with
 * a one-line message naming the variable (never its value) in err otherwise. */
bool token_from_env(const char *name, bool required, char **out, char *err, size_t errlen) WUR;

/* The token in the file at path: at most TOKEN_MAX bytes, trimmed and checked as by
 * token_check. Warns once (log_warn, event=token_file_permissions) when the file is
 * readable or writable by group or others. *out: the token, free with token_free. False
 * with a one-line message naming the file (never its content) in err otherwise. */
bool token_from_file(const char *path, char **out, char *err, size_t errlen) WUR;

/* Wipe and free a token from this module. NULL is fine. */
void token_free(char *token);

/* The host of url (its authority without userinfo, port or IPv6 brackets), copied into
 * host (hostlen bytes, truncated, always NUL-terminated). Returns whether a token sent to
 * url travels in clear over a network: the scheme is http:// (any case) and the host is
 * not a loopback one (token_host_is_loopback). Anything that is not http:// is false.
 * Pure. */
bool token_url_exposed(const char *url, char *host, size_t hostlen);

/* Whether host names the local machine: "localhost" (any case, an optional trailing dot),
 * an IPv4 address in 127.0.0.0/8 in dotted-quad form, ::1 or ::ffff:127.x.y.z. Names
 * that resolve there (other than localhost) are not recognised: the caller warns about
 * them, which errs on the safe side. Pure. */
bool token_host_is_loopback(const char *host);

/* The tokens of a provider chain. */
typedef struct TokenChain {
    const char *tokens[PROVIDERS_MAX]; /* provider i's token, or NULL: no Authorization;
                                          points into held */
    char *held[PROVIDERS_MAX + 1];     /* every token read (the global one, then the
                                          providers' own); owned, wiped by token_chain_free */
    size_t n_held;
    bool global_failed; /* token_chain_load failed on the global token (its file or
                           TOKEN_ENV), not on a provider's own */
} TokenChain;

/* Resolve the token of each of the n providers (n <= PROVIDERS_MAX) into *tc (zeroed
 * first):
 * - the global token (the file global_file when not NULL, else TOKEN_ENV when set and not
 *   empty, else none) goes to the first provider when it says nothing about its token,
 *   and to every provider with token = inherit; it is read only when one of them uses it;
 * - token_env / token_file: that provider's own (required: unset, unreadable or refused is
 *   an error); providers naming the same source share one read;
 * - token = none, or a later provider that says nothing: none.
 * When a token was read it also makes the process non-dumpable (prctl PR_SET_DUMPABLE 0:
 * no core dump, no ptrace by other processes of the user) and warns once per provider
 * whose token would travel in clear (event=token_over_http, token_url_exposed).
 * False with a one-line message naming the provider and the source (never a token) in
 * err; tc must be released with token_chain_free whatever the result. */
bool token_chain_load(TokenChain *tc, const char *global_file, const ProviderConf *providers,
                      size_t n, char *err, size_t errlen) WUR;

/* Wipe and free every token tc holds and zero it; a zeroed tc is fine. */
void token_chain_free(TokenChain *tc);

#endif
