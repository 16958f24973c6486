/* jobfile: the INI job file read with libinih. inih splits lines into sections and
 * key = value pairs; this file checks every section, key and value, builds the provider
 * chain and hands the settings of [job], [source], [target] and [limits] to config.c,
 * naming FILE:LINE: KEY in every error. */
#include "jobfile.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_PATH "/api/v2/entities/{id}?select=id,label,location"
#define MSG_MAX      320

/* Single-valued provider keys, as bits: each may be given once per section. */
enum {
    K_URL = 1u << 0,
    K_METHOD = 1u << 1,
    K_MAPPING = 1u << 2,
    K_PRESENCE = 1u << 3,
    K_BODY = 1u << 4,
    K_TOKEN = 1u << 5, /* token, token_env and token_file: one of them at most */
    K_MAP0 = 1u << 6,  /* then one bit per column */
    K_KIND = 1u << 14,
    K_MAX_BATCH = 1u << 15,
    K_LINGER = 1u << 16,
    K_POLL_URL = 1u << 17,
    K_POLL_TIMEOUT = 1u << 18,
    K_COUNT_IDS = 1u << 19,
};
#define K_BATCH_ONLY (K_MAX_BATCH | K_LINGER | K_POLL_URL | K_POLL_TIMEOUT | K_COUNT_IDS)

/* What the file said about one provider beyond ProviderConf, until the chain is built. */
typedef struct ProvDraft {
    int line;      /* the section header */
    int body_line; /* where body was given, for "body only with POST" */
    int url_line;  /* where url was given: its template is checked once the kind
                      is known */
    int method_line;
    int batch_line;        /* the first batch-only key, for "only with kind = batch" */
    const char *batch_key; /* its name as written (static copy below) */
    char batch_key_buf[24];
    unsigned seen;         /* K_* bits */
    const char *token_key; /* the token key given (static), for the conflict message */
    int token_line;
    const ProviderMap *base;
    const char *presence; /* override, or NULL */
    const char *ptr[COL_COUNT];
    bool ptr_set[COL_COUNT]; /* overridden (ptr may be NULL: `none`) */
    unsigned tls_seen;       /* bits of tls_keys[] given */
} ProvDraft;

typedef enum SectionKind { SEC_NONE, SEC_SETTINGS, SEC_PROVIDER } SectionKind;

typedef struct LoadState {
    const char *fname;
    Config *cfg;
    JobFile *jf;
    ProvDraft drafts[PROVIDERS_MAX];

    /* the reader: the text, and where it stands */
    const char *pos;
    int line;          /* the line inih is working on */
    int sections;      /* section headers read so far */
    int section_line;  /* the latest header's line */
    bool section_used; /* the latest section has a line that is no comment */

    /* the handler: the section the keys belong to */
    int section_seen; /* value of `sections` when the current section was entered */
    SectionKind kind;
    ConfigSection settings; /* SEC_SETTINGS: which one */
    ProviderConf *prov;
    ProvDraft *draft;
    int key_line[CONFIG_SETTINGS_MAX]; /* where each setting was given; 0: not yet */

    /* the first error */
    bool failed;
    int err_line; /* the line the error is about; 0: none */
    int err_seen; /* the line being read when it was found */
    char msg[MSG_MAX];
} LoadState;

static void fail(LoadState *st, int line, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void fail(LoadState *st, int line, const char *fmt, ...)
{
    va_list ap;

    if (st->failed)
        return;
    st->failed = true;
    st->err_line = line;
    st->err_seen = st->line;
    va_start(ap, fmt);
    vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    va_end(ap);
}

/* Keep own copies of what the file said: inih's buffers live for one callback only. */
static char *jf_keep(JobFile *jf, char *s)
{
    if (!s)
        return NULL;
    if (jf->n_strings == jf->cap_strings) {
        size_t cap = jf->cap_strings ? jf->cap_strings * 2 : 16;
        char **grown = realloc(jf->strings, cap * sizeof *grown);
        if (!grown) {
            free(s);
            return NULL;
        }
        jf->strings = grown;
        jf->cap_strings = cap;
    }
    jf->strings[jf->n_strings++] = s;
    return s;
}

static char *jf_strdup(JobFile *jf, const char *s)
{
    return jf_keep(jf, strdup(s));
}

static char *jf_concat(JobFile *jf, const char *a, size_t alen, const char *b, const char *c)
{
    size_t blen = strlen(b), clen = strlen(c);
    char *s = malloc(alen + blen + clen + 1);
    if (!s)
        return NULL;
    memcpy(s, a, alen);
    memcpy(s + alen, b, blen);
    memcpy(s + alen + blen, c, clen + 1);
    return jf_keep(jf, s);
}

/* ---- values ---- */

static bool name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* RFC 9110 tchar: what an HTTP field name is made of. */
static bool token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* "" (the whole document) or '/'-separated reference tokens where '~' is only ever
 * followed by '0' or '1' (RFC 6901). The length cap keeps every token under provider.c's
 * per-step limit. */
static bool pointer_check(const char *p, char *why, size_t whylen)
{
    size_t len = strlen(p);

    if (len == 0)
        return true;
    if (p[0] != '/') {
        snprintf(why, whylen, "a JSON Pointer must be empty or start with '/'");
        return false;
    }
    if (len > JOBFILE_POINTER_MAX) {
        snprintf(why, whylen, "JSON Pointer longer than %d bytes", JOBFILE_POINTER_MAX);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '~' && p[i + 1] != '0' && p[i + 1] != '1') {
            snprintf(why, whylen, "JSON Pointer: '~' at offset %zu must be followed by 0 or 1", i);
            return false;
        }
    }
    return true;
}

/* "Name: value": a token name, a non-empty value (curl takes "Name:" as "remove this
 * header"), no control character but TAB. Returns the value's start, or NULL. */
static const char *header_check(const char *h, char *why, size_t whylen)
{
    static const char *const refused[] = {"Authorization", "Host", "Content-Length",
                                          "Transfer-Encoding"};
    size_t n = 0;
    const char *v;

    while (token_char((unsigned char)h[n]))
        n++;
    if (n == 0 || h[n] != ':') {
        snprintf(why, whylen, "must look like \"Name: value\" with a token name");
        return NULL;
    }
    for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
        if (strlen(refused[i]) == n && strncasecmp(h, refused[i], n) == 0) {
            if (i == 0)
                snprintf(why, whylen,
                         "Authorization is never read from a job file: name the token's source "
                         "with token_env or token_file");
            else
                snprintf(why, whylen, "%s is set by pgenrich and cannot be given", refused[i]);
            return NULL;
        }
    }
    v = h + n + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v == '\0') {
        snprintf(why, whylen, "the header has an empty value");
        return NULL;
    }
    for (const char *p = v; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c < 0x20 && c != '\t') || c == 0x7F) {
            snprintf(why, whylen, "control character in the header value");
            return NULL;
        }
    }
    return v;
}

/* A batch endpoint or poll URL: http(s), no space or control character, and no brace but
 * the placeholder `allowed` (NULL: none). */
static bool plain_url_check(const char *url, const char *allowed, char *why, size_t whylen)
{
    size_t alen = allowed ? strlen(allowed) : 0;
    bool seen = false;

    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(why, whylen, "must start with http:// or https://");
        return false;
    }
    for (const char *c = url; *c; c++) {
        unsigned char u = (unsigned char)*c;
        if (u <= 0x20 || u == 0x7F) {
            snprintf(why, whylen, "space or control character in the URL");
            return false;
        }
        if (alen && strncmp(c, allowed, alen) == 0) {
            seen = true;
            c += alen - 1;
            continue;
        }
        if (u == '{' || u == '}') {
            if (allowed)
                snprintf(why, whylen, "only %s may stand in braces", allowed);
            else
                snprintf(why, whylen, "a batch url names the endpoint: no {id} or other braces");
            return false;
        }
    }
    if (allowed && !seen) {
        snprintf(why, whylen, "must hold %s", allowed);
        return false;
    }
    return true;
}

static bool poll_url_check(const char *url, char *why, size_t whylen)
{
    return plain_url_check(url, "{job}", why, whylen);
}

/* A whole number in [lo, hi], digits only. */
static bool int_value(const char *v, int lo, int hi, int *out)
{
    long n = 0;

    if (*v == '\0')
        return false;
    for (const char *c = v; *c; c++) {
        if (*c < '0' || *c > '9' || n > hi)
            return false;
        n = n * 10 + (*c - '0');
    }
    if (n < lo || n > hi)
        return false;
    *out = (int)n;
    return true;
}

/* ---- sections ---- */

static bool begin_section(LoadState *st, const char *section)
{
    const int line = st->section_line;
    JobFile *jf = st->jf;
    const char *name;
    size_t len = strlen(section);

    st->section_seen = st->sections;
    st->prov = NULL;
    st->draft = NULL;
    st->kind = SEC_NONE;
    if (len >= 49) { /* inih cuts section names to 49 bytes: this one may be cut */
        fail(st, line, "[%.40s...]: section name too long", section);
        return false;
    }
    for (int i = 0; i < CONFIG_SEC_COUNT; i++) {
        if (strcmp(section, config_section_names[i]) == 0) {
            st->kind = SEC_SETTINGS;
            st->settings = (ConfigSection)i;
            return true;
        }
    }
    if (strncmp(section, "provider ", 9) != 0) {
        fail(st, line,
             "[%s]: unknown section (expected [job], [source], [target], [limits] or "
             "[provider NAME])",
             section);
        return false;
    }
    name = section + 9;
    len -= 9;
    for (size_t i = 0; i < len; i++) {
        if (!name_char((unsigned char)name[i])) {
            len = 0;
            break;
        }
    }
    if (len == 0 || len > PROVIDER_NAME_MAX) {
        fail(st, line, "[%s]: a provider name is 1 to %d of A-Z a-z 0-9 _ . -", section,
             PROVIDER_NAME_MAX);
        return false;
    }
    for (size_t i = 0; i < jf->n_providers; i++) {
        if (strcmp(jf->providers[i].name, name) == 0) {
            fail(st, line, "[%s]: provider \"%s\" is defined twice", section, name);
            return false;
        }
    }
    if (jf->n_providers == PROVIDERS_MAX) {
        fail(st, line, "[%s]: more than %d providers", section, PROVIDERS_MAX);
        return false;
    }
    st->prov = &jf->providers[jf->n_providers];
    st->draft = &st->drafts[jf->n_providers];
    memset(st->prov, 0, sizeof *st->prov);
    memset(st->draft, 0, sizeof *st->draft);
    st->prov->name = jf_strdup(jf, name);
    if (!st->prov->name) {
        fail(st, line, "out of memory");
        return false;
    }
    st->draft->line = line;
    st->draft->base = &provider_map_primary;
    jf->n_providers++;
    st->kind = SEC_PROVIDER;
    return true;
}

/* ---- keys ---- */

/* A setting in [job] (which takes any) or in its own section. */
static bool settings_key(LoadState *st, const char *key, const char *value)
{
    const char *here = config_section_names[st->settings];
    char why[MSG_MAX];
    char *copy;
    int i;

    if (strcmp(key, "token") == 0) {
        fail(st, st->line,
             "%s: the token is never read from a job file: set PGENRICH_TOKEN or token-file "
             "(token_env and token_file name a provider's own)",
             key);
        return false;
    }
    i = config_find(key);
    if (i < 0) {
        fail(st, st->line, "%s: unknown key in [%s]", key, here);
        return false;
    }
    if (st->settings != CONFIG_SEC_JOB && st->settings != config_section(i)) {
        ConfigSection want = config_section(i);
        if (want == CONFIG_SEC_JOB)
            fail(st, st->line, "%s: belongs in [job], not [%s]", key, here);
        else
            fail(st, st->line, "%s: belongs in [%s] (or [job]), not [%s]", key,
                 config_section_names[want], here);
        return false;
    }
    if (st->key_line[i] != 0) {
        fail(st, st->line, "%s: given twice (first on line %d)", key, st->key_line[i]);
        return false;
    }
    copy = jf_strdup(st->jf, value);
    if (!copy) {
        fail(st, st->line, "out of memory");
        return false;
    }
    if (!config_set_at(st->cfg, i, copy, CONFIG_FROM_FILE, st->line, why, sizeof why)) {
        fail(st, st->line, "%s: %s", key, why);
        return false;
    }
    st->key_line[i] = st->line;
    return true;
}

/* Which single-valued key this is (a K_* bit), 0 for header, -1 for an unknown key. */
static long provider_key_bit(const char *key, int *col)
{
    *col = -1;
    if (strcmp(key, "url") == 0)
        return K_URL;
    if (strcmp(key, "method") == 0)
        return K_METHOD;
    if (strcmp(key, "mapping") == 0)
        return K_MAPPING;
    if (strcmp(key, "presence") == 0)
        return K_PRESENCE;
    if (strcmp(key, "body") == 0)
        return K_BODY;
    if (strcmp(key, "token") == 0 || strcmp(key, "token_env") == 0 ||
        strcmp(key, "token_file") == 0)
        return K_TOKEN;
    if (strcmp(key, "header") == 0)
        return 0;
    if (strcmp(key, "kind") == 0)
        return K_KIND;
    if (strcmp(key, "max_batch") == 0)
        return K_MAX_BATCH;
    if (strcmp(key, "batch_linger") == 0)
        return K_LINGER;
    if (strcmp(key, "poll_url") == 0)
        return K_POLL_URL;
    if (strcmp(key, "poll_timeout") == 0)
        return K_POLL_TIMEOUT;
    if (strcmp(key, "count_ids") == 0)
        return K_COUNT_IDS;
    if (strncmp(key, "map.", 4) == 0) {
        for (int c = 0; c < COL_COUNT; c++) {
            if (strcmp(key + 4, provider_column_names[c]) == 0) {
                *col = c;
                return (long)K_MAP0 << c;
            }
        }
    }
    return -1;
}

static bool env_name_ok(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (s++; *s; s++) {
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    }
    return true;
}

/* token = inherit | none, token_env = NAME, token_file = PATH: sets p->token_from and
 * d->token_key (the ref is copied by the caller). The value may be a token pasted by
 * mistake: no message repeats it. */
static bool token_source(ProviderConf *p, ProvDraft *d, const char *key, const char *value,
                         char *why, size_t whylen)
{
    if (strcmp(key, "token") == 0) {
        d->token_key = "token";
        if (strcmp(value, "inherit") == 0)
            p->token_from = TOKEN_FROM_INHERIT;
        else if (strcmp(value, "none") == 0)
            p->token_from = TOKEN_FROM_NONE;
        else {
            snprintf(why, whylen,
                     "must be inherit or none (a token itself never goes in a job file: name "
                     "its source with token_env or token_file)");
            return false;
        }
        return true;
    }
    if (strcmp(key, "token_env") == 0) {
        d->token_key = "token_env";
        if (!env_name_ok(value)) {
            snprintf(why, whylen,
                     "must be the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*)");
            return false;
        }
        p->token_from = TOKEN_FROM_ENV;
        return true;
    }
    d->token_key = "token_file";
    if (value[0] == '\0') {
        snprintf(why, whylen, "must name a file");
        return false;
    }
    for (const char *c = value; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7F) {
            snprintf(why, whylen, "control character in the path");
            return false;
        }
    }
    p->token_from = TOKEN_FROM_FILE;
    return true;
}

/* The TLS and proxy keys of a provider section, named like the global settings. */
static const char *const tls_keys[] = {"cacert",          "capath", "client_cert", "client_key",
                                       "tls_min_version", "proxy",  "noproxy",     "insecure"};

/* A path, a proxy or a host list: not empty, no control character. */
static bool plain_value(const char *value, char *why, size_t whylen)
{
    if (value[0] == '\0') {
        snprintf(why, whylen, "must not be empty");
        return false;
    }
    for (const char *c = value; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7F) {
            snprintf(why, whylen, "control character in the value");
            return false;
        }
    }
    return true;
}

/* One of tls_keys[t] = value for the current provider. */
static bool provider_tls_key(LoadState *st, int t, const char *key, const char *value)
{
    ProviderTls *tls = &st->prov->tls;
    char why[MSG_MAX];
    const char **field = NULL;

    if (st->draft->tls_seen & (1u << t)) {
        fail(st, st->line, "%s: given twice in [provider %s]", key, st->prov->name);
        return false;
    }
    st->draft->tls_seen |= 1u << t;
    switch (t) {
    case 0:
        field = &tls->cacert;
        break;
    case 1:
        field = &tls->capath;
        break;
    case 2:
        field = &tls->client_cert;
        break;
    case 3:
        field = &tls->client_key;
        break;
    case 4:
        if (strcmp(value, "1.2") != 0 && strcmp(value, "1.3") != 0) {
            fail(st, st->line, "%s: must be 1.2 or 1.3", key);
            return false;
        }
        field = &tls->tls_min_version;
        break;
    case 5:
        field = &tls->proxy;
        break;
    case 6:
        field = &tls->noproxy;
        break;
    default:
        if (strcmp(value, "true") == 0 || strcmp(value, "false") == 0) {
            tls->insecure_set = true;
            tls->insecure = strcmp(value, "true") == 0;
            return true;
        }
        fail(st, st->line, "%s: must be true or false", key);
        return false;
    }
    if (!plain_value(value, why, sizeof why)) {
        fail(st, st->line, "%s: %s", key, why);
        return false;
    }
    if ((*field = jf_strdup(st->jf, value)) == NULL) {
        fail(st, st->line, "out of memory");
        return false;
    }
    return true;
}

static bool provider_key(LoadState *st, const char *key, const char *value)
{
    ProviderConf *p = st->prov;
    ProvDraft *d = st->draft;
    char why[MSG_MAX], name[64];
    int col = -1;
    long bit = -1;
    const char *copy = NULL;
    size_t len = strlen(key);

    /* token-env = token_env, map.geo-label = map.geo_label; messages quote the key as
     * written */
    if (len < sizeof name) {
        for (size_t i = 0; i <= len; i++)
            name[i] = key[i] == '-' ? '_' : key[i];
        bit = provider_key_bit(name, &col);
        for (size_t t = 0; bit < 0 && t < ARRAY_LEN(tls_keys); t++)
            if (strcmp(name, tls_keys[t]) == 0)
                return provider_tls_key(st, (int)t, key, value);
    }

    if (bit < 0) {
        fail(st, st->line, "%s: unknown key in [provider %s]", key, p->name);
        return false;
    }
    if (bit == K_TOKEN && (d->seen & K_TOKEN) && strcmp(name, d->token_key) != 0) {
        fail(st, st->line,
             "%s: %s was given on line %d: at most one of token, token_env and "
             "token_file per provider",
             key, d->token_key, d->token_line);
        return false;
    }
    if (bit > 0 && (d->seen & (unsigned long)bit)) {
        fail(st, st->line, "%s: given twice in [provider %s]", key, p->name);
        return false;
    }
    d->seen |= (unsigned)bit;
    why[0] = '\0';
    if ((bit & K_BATCH_ONLY) && d->batch_line == 0) {
        d->batch_line = st->line;
        snprintf(d->batch_key_buf, sizeof d->batch_key_buf, "%s", key);
        d->batch_key = d->batch_key_buf;
    }

    switch (bit) {
    case K_URL:
        if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0) {
            snprintf(why, sizeof why, "must start with http:// or https://");
            goto bad;
        }
        d->url_line = st->line;
        copy = p->url = jf_strdup(st->jf, value);
        break;
    case K_KIND:
        if (strcmp(value, "single") == 0)
            p->kind = PROVIDER_SINGLE;
        else if (strcmp(value, "batch") == 0)
            p->kind = PROVIDER_BATCH;
        else {
            snprintf(why, sizeof why, "must be single or batch");
            goto bad;
        }
        return true;
    case K_MAX_BATCH:
        if (!int_value(value, 1, BATCH_MAX_IDS, &p->max_batch)) {
            snprintf(why, sizeof why, "must be a whole number from 1 to %d", BATCH_MAX_IDS);
            goto bad;
        }
        return true;
    case K_LINGER:
        if (!int_value(value, 0, 60000, &p->batch_linger_ms)) {
            snprintf(why, sizeof why, "must be a whole number of milliseconds from 0 to 60000");
            goto bad;
        }
        return true;
    case K_POLL_URL:
        if (!poll_url_check(value, why, sizeof why))
            goto bad;
        copy = p->poll_url = jf_strdup(st->jf, value);
        break;
    case K_POLL_TIMEOUT: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (errno != 0 || end == value || *end != '\0' || !(v > 0 && v <= 86400)) {
            snprintf(why, sizeof why, "must be a number of seconds above 0, at most 86400");
            goto bad;
        }
        p->poll_timeout = v;
        return true;
    }
    case K_COUNT_IDS:
        if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "on") == 0)
            p->count_ids = true;
        else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 ||
                 strcmp(value, "off") == 0)
            p->count_ids = false;
        else {
            snprintf(why, sizeof why, "must be true or false");
            goto bad;
        }
        return true;
    case K_METHOD:
        if (strcmp(value, "GET") != 0 && strcmp(value, "POST") != 0) {
            snprintf(why, sizeof why, "must be GET or POST");
            goto bad;
        }
        p->post = strcmp(value, "POST") == 0;
        d->method_line = st->line;
        return true;
    case K_MAPPING:
        if (strcmp(value, "primary") == 0)
            d->base = &provider_map_primary;
        else if (strcmp(value, "secondary") == 0)
            d->base = &provider_map_secondary;
        else {
            snprintf(why, sizeof why, "must be primary or secondary");
            goto bad;
        }
        return true;
    case K_PRESENCE:
        if (!pointer_check(value, why, sizeof why))
            goto bad;
        copy = d->presence = jf_strdup(st->jf, value);
        break;
    case K_TOKEN:
        if (!token_source(p, d, name, value, why, sizeof why))
            goto bad;
        d->token_line = st->line;
        if (p->token_from != TOKEN_FROM_ENV && p->token_from != TOKEN_FROM_FILE)
            return true;
        char where[JOBFILE_ORIGIN_MAX];
        snprintf(where, sizeof where, "%s:%d", st->fname, st->line);
        if ((p->token_origin = jf_strdup(st->jf, where)) == NULL) {
            snprintf(why, sizeof why, "out of memory");
            goto bad;
        }
        copy = p->token_ref = jf_strdup(st->jf, value);
        break;
    case K_BODY:
        if (value[0] == '\0') {
            snprintf(why, sizeof why, "must not be empty (leave body out to send none)");
            goto bad;
        }
        for (const char *s = value; *s; s++) {
            unsigned char c = (unsigned char)*s;
            if ((c < 0x20 && c != '\t') || c == 0x7F) {
                snprintf(why, sizeof why, "control character in the body");
                goto bad;
            }
        }
        d->body_line = st->line;
        copy = p->body = jf_strdup(st->jf, value);
        break;
    case 0: { /* header: repeatable, in file order */
        const char *v = header_check(value, why, sizeof why);
        if (!v)
            goto bad;
        if (p->n_headers == PROVIDER_HEADERS_MAX) {
            snprintf(why, sizeof why, "more than %d headers", PROVIDER_HEADERS_MAX);
            goto bad;
        }
        copy = p->headers[p->n_headers] =
            jf_concat(st->jf, value, (size_t)(strchr(value, ':') - value), ": ", v);
        p->n_headers++;
        break;
    }
    default: /* map.COLUMN */
        d->ptr_set[col] = true;
        if (strcmp(value, "none") == 0)
            return true;
        if (!pointer_check(value, why, sizeof why))
            goto bad;
        copy = d->ptr[col] = jf_strdup(st->jf, value);
        break;
    }
    if (!copy) {
        fail(st, st->line, "out of memory");
        return false;
    }
    return true;
bad:
    fail(st, st->line, "%s: %s", key, why);
    return false;
}

/* ---- inih glue ---- */

/* The handler: one call per key = value (and per continuation line, with the same key). */
static int on_pair(void *user, const char *section, const char *key, const char *value)
{
    LoadState *st = user;
    bool ok = false;

    if (st->failed)
        return 0;
    if (st->sections != st->section_seen && !begin_section(st, section))
        goto done;
    st->section_used = true;
    switch (st->kind) {
    case SEC_NONE:
        fail(st, st->line, "%s: key before any section", key);
        break;
    case SEC_SETTINGS:
        ok = settings_key(st, key, value);
        break;
    case SEC_PROVIDER:
        ok = provider_key(st, key, value);
        break;
    }
done:
    return ok;
}

static void check_empty_section(LoadState *st)
{
    if (st->sections > 0 && !st->section_used)
        fail(st, st->section_line, "section has no keys");
}

/* The reader inih pulls lines from (fgets-like). It hands over whole lines only, so that
 * inih never splits a long line into two (its older versions parse the tail as a line of
 * its own), and it counts lines itself: ini.h declares a handler without line numbers.
 * It also notes section headers, which inih reports to nobody (so an empty section would
 * go unnoticed): a header is a line that starts with '['; an indented '[' line is refused,
 * since inih reads it as a header or as a continuation of the previous value depending on
 * what came before. A section "has keys" once a line in it is neither blank nor a
 * comment. */
static char *read_line(char *str, int num, void *stream)
{
    LoadState *st = stream;
    const char *p = st->pos;
    const char *nl;
    size_t len, content, skip = 0;

    if (st->failed || *p == '\0')
        return NULL;
    nl = strchr(p, '\n');
    len = nl ? (size_t)(nl - p) + 1 : strlen(p);
    content = len - (nl ? 1 : 0);
    if (content > 0 && p[content - 1] == '\r')
        content--;
    st->line++;
    if (content > JOBFILE_LINE_MAX || num < 1 || len >= (size_t)num) {
        fail(st, st->line, "line longer than %d bytes", JOBFILE_LINE_MAX);
        return NULL;
    }
    if (st->line == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
        skip = 3;
    if (p[skip] == '[') {
        check_empty_section(st);
        st->sections++;
        st->section_line = st->line;
        st->section_used = false;
    } else {
        while (skip < len && (p[skip] == ' ' || p[skip] == '\t' || p[skip] == '\r' ||
                              p[skip] == '\v' || p[skip] == '\f'))
            skip++;
        if (skip < len && p[skip] == '[')
            fail(st, st->line, "a section header must start at the beginning of its line");
        /* a line that is no comment counts as content: a bad one is inih's error to name */
        if (skip < len && p[skip] != '\n' && p[skip] != ';' && p[skip] != '#')
            st->section_used = true;
    }
    if (st->failed)
        return NULL;
    memcpy(str, p, len);
    str[len] = '\0';
    st->pos = p + len;
    return str;
}

/* Fix libinih's run-time options (globals in Debian's build) to the documented syntax. */
static char start_comments[] = ";#";
static char inline_comments[] = ";";

static void set_ini_options(void)
{
    ini_max_line = JOBFILE_LINE_MAX + 3; /* + "\r\n" and the NUL */
    ini_allow_multiline = true;
    ini_allow_bom = true;
    ini_start_comment_prefixes = start_comments;
    ini_allow_inline_comments = true;
    ini_inline_comment_prefixes = inline_comments;
    ini_allow_no_value = false;
    ini_stop_on_first_error = false;
}

/* The url's template by kind, the batch keys and their defaults. */
static bool finish_kind(LoadState *st, ProviderConf *p, const ProvDraft *d)
{
    char why[MSG_MAX];

    if (p->kind == PROVIDER_SINGLE) {
        if (d->batch_line) {
            fail(st, d->batch_line, "%s: only with kind = batch", d->batch_key);
            return false;
        }
        if (!provider_template_check(p->url, why, sizeof why)) {
            fail(st, d->url_line, "url: %s", why);
            return false;
        }
        return true;
    }
    if (!plain_url_check(p->url, NULL, why, sizeof why)) {
        fail(st, d->url_line, "url: %s", why);
        return false;
    }
    if (d->method_line && !p->post) {
        fail(st, d->method_line, "method: a batch provider POSTs its IDs: leave method out");
        return false;
    }
    if (p->body) {
        fail(st, d->body_line, "body: a batch provider's body is its ID list: leave body out");
        return false;
    }
    p->post = true;
    if (!(d->seen & K_MAX_BATCH))
        p->max_batch = BATCH_DEFAULT_IDS;
    if (!(d->seen & K_LINGER))
        p->batch_linger_ms = BATCH_DEFAULT_LINGER;
    if (!(d->seen & K_POLL_TIMEOUT))
        p->poll_timeout = BATCH_DEFAULT_POLL_TO;
    if (!p->poll_url) {
        size_t len = strlen(p->url);
        while (len > 0 && p->url[len - 1] == '/')
            len--;
        p->poll_url = jf_concat(st->jf, p->url, len, "/{job}", "");
        if (!p->poll_url) {
            fail(st, d->line, "out of memory");
            return false;
        }
    }
    return true;
}

/* After the last line: every provider has a url, a body only with POST, and its map is
 * the named built-in one with the file's overrides on top. */
static void finish_chain(LoadState *st)
{
    JobFile *jf = st->jf;

    for (size_t i = 0; i < jf->n_providers && !st->failed; i++) {
        ProviderConf *p = &jf->providers[i];
        const ProvDraft *d = &st->drafts[i];
        if (!p->url) {
            fail(st, d->line, "[provider %s]: no url", p->name);
            break;
        }
        if (!finish_kind(st, p, d))
            break;
        if (p->body && !p->post) {
            fail(st, d->body_line, "body: only with method = POST");
            break;
        }
        p->map = *d->base;
        if (d->presence)
            p->map.presence = d->presence;
        for (int c = 0; c < COL_COUNT; c++) {
            if (d->ptr_set[c])
                p->map.ptr[c] = d->ptr[c];
        }
    }
}

/* Error text comes partly from the file: keep it one line of printable characters. */
static void sanitize(char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7F)
            *s = '?';
    }
}

bool jobfile_load_string(const char *text, const char *name_for_errors, Config *cfg, JobFile *jf,
                         char *err, size_t errlen)
{
    LoadState st;
    const char *fname = name_for_errors ? name_for_errors : "<string>";
    bool ok = false;
    int rc;

    memset(jf, 0, sizeof *jf);
    memset(&st, 0, sizeof st);
    st.fname = fname;
    st.cfg = cfg;
    st.jf = jf;
    st.pos = text;

    set_ini_options();
    rc = ini_parse_stream(read_line, &st, on_pair, &st);
    if (rc < 0) {
        snprintf(err, errlen, "%s: out of memory while parsing", fname);
        goto failed;
    }
    /* rc is the first line where inih found a line that is neither a header, a comment
     * nor key = value, or where the handler refused a key. If that came before our first
     * finding, it is the error to report. */
    if (rc > 0 && (!st.failed || rc < st.err_seen)) {
        snprintf(err, errlen, "%s:%d: syntax error: expected [section], key = value or a comment",
                 fname, rc);
        goto failed;
    }
    if (!st.failed)
        check_empty_section(&st);
    if (!st.failed)
        finish_chain(&st);
    if (st.failed) {
        if (st.err_line > 0)
            snprintf(err, errlen, "%s:%d: %s", fname, st.err_line, st.msg);
        else
            snprintf(err, errlen, "%s: %s", fname, st.msg);
        goto failed;
    }
    ok = true;
failed:
    if (!ok && err && errlen > 0)
        sanitize(err);
    return ok;
}

bool jobfile_load(const char *path, Config *cfg, JobFile *jf, char *err, size_t errlen)
{
    FILE *f = NULL;
    char *text = NULL;
    size_t len = 0;
    bool ok = false;

    memset(jf, 0, sizeof *jf);
    f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto failed;
    }
    text = malloc(JOBFILE_SIZE_MAX + 1);
    if (!text) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto failed;
    }
    len = fread(text, 1, JOBFILE_SIZE_MAX + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto failed;
    }
    if (len > JOBFILE_SIZE_MAX) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, JOBFILE_SIZE_MAX);
        goto failed;
    }
    text[len] = '\0';
    if (strlen(text) != len) {
        int line = 1;
        for (const char *p = text; *p; p++)
            line += *p == '\n';
        snprintf(err, errlen, "%s:%d: NUL byte in the file", path, line);
        goto failed;
    }
    ok = jobfile_load_string(text, path, cfg, jf, err, errlen);
failed:
    if (!ok && err && errlen > 0)
        sanitize(err);
    free(text);
    if (f)
        fclose(f);
    return ok;
}

bool jobfile_default_chain(const char *base_url, JobFile *jf, char *err, size_t errlen)
{
    ProviderConf *p;
    char why[MSG_MAX];
    char *url;
    size_t len;

    if (jf->n_providers != 0) {
        snprintf(err, errlen, "the provider chain is not empty");
        return false;
    }
    if (!base_url || !*base_url) {
        snprintf(err, errlen, "no base URL (--base-url) and no provider in a job file");
        return false;
    }
    len = strlen(base_url);
    while (len > 0 && base_url[len - 1] == '/')
        len--;
    if ((strncmp(base_url, "http://", 7) != 0 || len <= 7) &&
        (strncmp(base_url, "https://", 8) != 0 || len <= 8)) {
        snprintf(err, errlen, "base URL must start with http:// or https:// and name a host");
        return false;
    }
    if (strcspn(base_url, "?#{}") < len) {
        snprintf(err, errlen, "base URL must not hold '?', '#' or braces");
        return false;
    }
    url = jf_concat(jf, base_url, len, DEFAULT_PATH, "");
    if (!url) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    if (!provider_template_check(url, why, sizeof why)) {
        snprintf(err, errlen, "base URL: %s", why);
        return false;
    }
    p = &jf->providers[0];
    memset(p, 0, sizeof *p);
    p->name = "primary";
    p->url = url;
    p->map = provider_map_primary;
    jf->n_providers = 1;
    return true;
}

void jobfile_free(JobFile *jf)
{
    if (!jf)
        return;
    for (size_t i = 0; i < jf->n_strings; i++)
        free(jf->strings[i]);
    free(jf->strings);
    memset(jf, 0, sizeof *jf);
}

/* One provider line; the value shown with control characters as '?'. */
static void dump_line(FILE *out, const char *prov, const char *key, const char *value,
                      const char *note)
{
    fprintf(out, "provider.%s.%s = ", prov, key);
    for (const char *c = value; *c; c++)
        fputc((unsigned char)*c < 0x20 || *c == 0x7F ? '?' : *c, out);
    if (note)
        fprintf(out, "  # %s", note);
    fputc('\n', out);
}

void jobfile_effective_tls(const ProviderConf *p, const Config *cfg, ProviderTls *out)
{
    const ProviderTls *t = &p->tls;
    *out = (ProviderTls){
        .cacert = t->cacert ? t->cacert : cfg->cacert,
        .capath = t->capath ? t->capath : cfg->capath,
        .client_cert = t->client_cert ? t->client_cert : cfg->client_cert,
        .client_key = t->client_key ? t->client_key : cfg->client_key,
        .tls_min_version = t->tls_min_version ? t->tls_min_version : cfg->tls_min_version,
        .proxy = t->proxy ? t->proxy : cfg->proxy,
        .noproxy = t->noproxy ? t->noproxy : cfg->noproxy,
        .insecure_set = true,
        .insecure = t->insecure_set ? t->insecure : cfg->insecure,
    };
}

/* The TLS keys a section gave (the others inherit the global settings, which
 * config_dump prints). A proxy's userinfo is masked. */
static void dump_tls(FILE *out, const ProviderConf *p, char *buf, size_t len)
{
    const ProviderTls *t = &p->tls;
    const char *vals[] = {t->cacert,          t->capath, t->client_cert, t->client_key,
                          t->tls_min_version, t->proxy,  t->noproxy};
    for (size_t k = 0; k < ARRAY_LEN(vals); k++) {
        const char *v = vals[k];
        if (v == NULL)
            continue;
        if (k == 5 && strstr(v, "://") != NULL)
            config_mask_dsn(v, buf, len);
        else if (k == 5 && strchr(v, '@') != NULL)
            snprintf(buf, len, "****%s", strrchr(v, '@'));
        else
            snprintf(buf, len, "%s", v);
        dump_line(out, p->name, tls_keys[k], buf, NULL);
    }
    if (t->insecure_set)
        dump_line(out, p->name, "insecure", t->insecure ? "true" : "false", NULL);
}

void jobfile_dump(const JobFile *jf, FILE *out)
{
    char buf[2 * JOBFILE_LINE_MAX + 64];

    for (size_t i = 0; i < jf->n_providers; i++) {
        const ProviderConf *p = &jf->providers[i];
        config_mask_dsn(p->url, buf, sizeof buf);
        dump_line(out, p->name, "url", buf, NULL);
        if (p->kind == PROVIDER_BATCH) {
            dump_line(out, p->name, "kind", "batch", NULL);
            snprintf(buf, sizeof buf, "%d", p->max_batch);
            dump_line(out, p->name, "max_batch", buf, NULL);
            snprintf(buf, sizeof buf, "%d", p->batch_linger_ms);
            dump_line(out, p->name, "batch_linger", buf, "milliseconds");
            config_mask_dsn(p->poll_url, buf, sizeof buf);
            dump_line(out, p->name, "poll_url", buf, NULL);
            snprintf(buf, sizeof buf, "%g", p->poll_timeout);
            dump_line(out, p->name, "poll_timeout", buf, "seconds");
            dump_line(out, p->name, "count_ids", p->count_ids ? "true" : "false", NULL);
        }
        dump_line(out, p->name, "method", p->post ? "POST" : "GET", NULL);
        if (p->body)
            dump_line(out, p->name, "body", p->body, NULL);
        for (size_t h = 0; h < p->n_headers; h++) {
            const char *colon = strchr(p->headers[h], ':');
            size_t n = (size_t)(colon - p->headers[h]);
            if (config_secret_name(p->headers[h], n))
                snprintf(buf, sizeof buf, "%.*s: ****", (int)n, p->headers[h]);
            else
                snprintf(buf, sizeof buf, "%s", p->headers[h]);
            dump_line(out, p->name, "header", buf, NULL);
        }
        switch (p->token_from) {
        case TOKEN_FROM_DEFAULT:
            dump_line(out, p->name, "token", i == 0 ? "inherit" : "none",
                      i == 0 ? "default: the first provider gets the global token"
                             : "default: a later provider gets none");
            break;
        case TOKEN_FROM_INHERIT:
            dump_line(out, p->name, "token", "inherit", NULL);
            break;
        case TOKEN_FROM_NONE:
            dump_line(out, p->name, "token", "none", NULL);
            break;
        case TOKEN_FROM_ENV:
            dump_line(out, p->name, "token_env", p->token_ref, NULL);
            break;
        case TOKEN_FROM_FILE:
            dump_line(out, p->name, "token_file", p->token_ref, NULL);
            break;
        }
        dump_tls(out, p, buf, sizeof buf);
        dump_line(out, p->name, "presence", p->map.presence, NULL);
        for (int c = 0; c < COL_COUNT; c++) {
            snprintf(buf, sizeof buf, "map.%s", provider_column_names[c]);
            dump_line(out, p->name, buf, p->map.ptr[c] ? p->map.ptr[c] : "none", NULL);
        }
    }
}
