/* config: table-driven parsing of the command line, then one validation pass, so every
 * flag has one place that names it, its type, its target and its bounds. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compat.h"

const char config_usage[] =
    "usage: pgenrich init [--dsn DSN] [table options]\n"
    "       pgenrich run  --job NAME --base-url URL [--dsn DSN] [options]\n"
    "       pgenrich run  --config FILE [options]\n"
    "       pgenrich retry-failed --job NAME [--reason R] [run options]\n"
    "            looks up again the IDs in the job's failure ledger (only those with reason R)\n"
    "       pgenrich status --job NAME [--format text|json] [--history N (10)] [table options]\n"
    "            the job's checkpoint, IDs left, its runner, its last N runs and failures;\n"
    "            for a --shared job its ranges, workers, leases, progress and ETA\n"
    "       pgenrich check-config [FILE] [run options]\n"
    "            validates the job file with the environment and the flags, prints the\n"
    "            effective settings (secrets masked) and exits 0, or 2 with FILE:LINE: KEY:\n"
    "            reason; connects to nothing\n"
    "       pgenrich help [COMMAND] (or COMMAND --help): one command's usage\n"
    "       pgenrich version (or --version)\n";

/* Two literals: one would pass the 4095 characters C guarantees a string literal. */
const char config_usage_options[] =
    "[source]:   --dsn DSN (else DATABASE_URL, else the PG* variables)\n"
    "            --statement-timeout S (300; 0 = none) --db-keepalive S (30; 0 = OS default)\n"
    "            --source-table T (master_table) --key-column C (id) --where SQL\n"
    "            --page-size N (10000) --paging keyset|offset (keyset)\n"
    "[target]:   --target-table T (standardized_locations) --failures-table T\n"
    "            (enrich_failures) --checkpoint-table T (enrich_checkpoints)\n"
    "            --flush-rows N (10000) --flush-interval S (2)\n"
    "[limits]:   --concurrency N (64) --rate R per second (no cap) --timeout S (30)\n"
    "            --max-attempts N (5) --backoff-base S (0.2) --backoff-cap S (30)\n"
    "            --max-body BYTES (1048576) --retry-after-max S (60: a longer Retry-After\n"
    "            fails the ID, or stops the job when a 429 asks it) --forbidden-threshold N\n"
    "            (20 consecutive 403s from a provider mean the credentials are refused)\n"
    "            --only-missing (IDs with no target row and no ledger entry)\n"
    "            --refresh-older-than DURATION (30d, 12h, 90m, 3600s: IDs whose row is older)\n"
    "            --db-retry-timeout S (60: reconnect to a lost database this long; 0 = no)\n"
    "[target]+:  --runs-table T (enrich_runs)\n"
    "[job]:      --job NAME --base-url URL --token-file F (else PGENRICH_TOKEN)\n"
    "            --restart (ignore the checkpoint) --quiet --verbose --reason R\n"
    "            --drain-timeout S (10: on SIGINT/SIGTERM, in-flight lookups get this long)\n"
    "            --metrics-listen HOST:PORT (none; Prometheus text format at /metrics)\n"
    "            --explain (print the page query's plan and exit)\n"
    "            --log-level error|warn|info|debug (info; --quiet: warn, --verbose: debug)\n"
    "            --log-format logfmt|json (logfmt) --log-file F (else stderr; SIGHUP reopens)\n"
    "            --progress-interval S (10: a progress line when stderr is no terminal; 0 none)\n"
    "            --config FILE (INI job file: [job], [source], [target], [limits] and\n"
    "            [provider NAME] sections; [job] also takes any setting)\n"
    "[job] TLS:  --cacert FILE --capath DIR (else the system CA store) --client-cert FILE\n"
    "            --client-key FILE (mutual TLS; the key must be chmod 600)\n"
    "            --tls-min-version 1.2|1.3 --insecure (no verification: tests on loopback)\n"
    "            --proxy URL|none (else http_proxy/https_proxy) --noproxy HOSTS (else no_proxy)\n"
    "            (each also per provider: cacert = ... in [provider NAME])\n"
    "[limits]+:  --provider-down-timeout S (300: no answer from a provider this long stops\n"
    "            the job, resumable, exit 75; 0 = wait for ever)\n"
    "            --burst N (0: max(1, rate/20); requests the rate limit lets go at once)\n"
    "            --quota-headers on|off (on: pace each provider by the quota it announces in\n"
    "            RateLimit-* or X-RateLimit-* headers, so that it lasts until the reset)\n"
    "[job]+:     --shared (one of several workers of the job: it leases ranges of the key\n"
    "            space from --ranges-table) --ranges N (64: the split the first worker makes)\n"
    "            --lease-seconds S (30: a silent worker's range is taken over after this)\n"
    "[target]+:  --ranges-table T (enrich_ranges) --workers-table T (enrich_workers: the live\n"
    "            workers of shared jobs, their rates and 429s)\n"
    "\n"
    "Every setting is also a job-file key (page-size or page_size) and an environment\n"
    "variable PGENRICH_<SETTING> (PGENRICH_PAGE_SIZE=500). Precedence: defaults < job file <\n"
    "environment < flags.\n";

void config_print_usage(FILE *out)
{
    fprintf(out, "%s\n%s", config_usage, config_usage_options);
}

enum OptType { OT_STR, OT_INT, OT_DOUBLE, OT_SIZE, OT_FLAG, OT_PAGING, OT_DURATION };

#define DURATION_MAX (100.0 * 365 * 86400) /* seconds */

typedef struct OptSpec {
    const char *name;
    enum OptType type;
    size_t offset;
    double min, max;       /* bounds for numbers */
    bool run_only;         /* a job setting: refused by init on the command line */
    ConfigSection section; /* its job-file section; an entry without one is a [job] setting */
} OptSpec;

const char *const config_section_names[CONFIG_SEC_COUNT] = {"job", "source", "target", "limits"};

#define SRC        CONFIG_SEC_SOURCE
#define TGT        CONFIG_SEC_TARGET
#define LIM        CONFIG_SEC_LIMITS
#define OFF(field) offsetof(Config, field)
/* Entries may leave the section out (it is then [job]), so the warning about a missing
 * initializer is off for the table alone. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const OptSpec opts[] = {
    {"dsn", OT_STR, OFF(dsn), 0, 0, false, SRC},
    {"statement-timeout", OT_DOUBLE, OFF(statement_timeout), 0, 1e6, false, SRC},
    {"db-keepalive", OT_INT, OFF(db_keepalive), 0, 7200, false, SRC},
    {"source-table", OT_STR, OFF(source_table), 0, 0, false, SRC},
    {"key-column", OT_STR, OFF(key_column), 0, 0, false, SRC},
    {"where", OT_STR, OFF(where), 0, 0, true, SRC},
    {"target-table", OT_STR, OFF(target_table), 0, 0, false, TGT},
    {"failures-table", OT_STR, OFF(failures_table), 0, 0, false, TGT},
    {"checkpoint-table", OT_STR, OFF(checkpoint_table), 0, 0, false, TGT},
    {"job", OT_STR, OFF(job), 0, 0, true, CONFIG_SEC_JOB},
    {"base-url", OT_STR, OFF(base_url), 0, 0, true, CONFIG_SEC_JOB},
    {"token-file", OT_STR, OFF(token_file), 0, 0, true, CONFIG_SEC_JOB},
    {"page-size", OT_INT, OFF(page_size), 1, 1000000, true, SRC},
    {"paging", OT_PAGING, OFF(paging_offset), 0, 0, true, SRC},
    {"concurrency", OT_INT, OFF(concurrency), 1, 10000, true, LIM},
    {"rate", OT_DOUBLE, OFF(rate), 0, 1e7, true, LIM},
    {"timeout", OT_DOUBLE, OFF(timeout), 0.001, 86400, true, LIM},
    {"max-attempts", OT_INT, OFF(max_attempts), 1, 100, true, LIM},
    {"flush-rows", OT_INT, OFF(flush_rows), 1, 10000000, true, TGT},
    {"flush-interval", OT_DOUBLE, OFF(flush_interval), 0.01, 86400, true, TGT},
    {"restart", OT_FLAG, OFF(restart), 0, 0, true, CONFIG_SEC_JOB},
    {"quiet", OT_FLAG, OFF(quiet), 0, 0, false, CONFIG_SEC_JOB},
    {"verbose", OT_FLAG, OFF(verbose), 0, 0, false, CONFIG_SEC_JOB},
    {"backoff-base", OT_DOUBLE, OFF(backoff_base), 0, 3600, true, LIM},
    {"backoff-cap", OT_DOUBLE, OFF(backoff_cap), 0, 86400, true, LIM},
    {"max-body", OT_SIZE, OFF(max_body), 1024, 1 << 30, true, LIM},
    {"reason", OT_STR, OFF(reason), 0, 0, true, CONFIG_SEC_JOB},
    {"forbidden-threshold", OT_INT, OFF(forbidden_threshold), 1, 1000000, true, LIM},
    {"retry-after-max", OT_DOUBLE, OFF(retry_after_max), 0, 86400, true, LIM},
    {"drain-timeout", OT_DOUBLE, OFF(drain_timeout), 0, 86400, true, CONFIG_SEC_JOB},
    {"db-retry-timeout", OT_DOUBLE, OFF(db_retry_timeout), 0, 86400, true, SRC},
    {"only-missing", OT_FLAG, OFF(only_missing), 0, 0, true, SRC},
    {"refresh-older-than", OT_DURATION, OFF(refresh_older_than), 1, DURATION_MAX, true, SRC},
    {"explain", OT_FLAG, OFF(explain), 0, 0, true, CONFIG_SEC_JOB},
    {"runs-table", OT_STR, OFF(runs_table), 0, 0, false, TGT},
    {"format", OT_STR, OFF(format), 0, 0, true, CONFIG_SEC_JOB},
    {"history", OT_INT, OFF(history), 1, 1000, true, CONFIG_SEC_JOB},
    {"metrics-listen", OT_STR, OFF(metrics_listen), 0, 0, true, CONFIG_SEC_JOB},
    {"progress-interval", OT_DOUBLE, OFF(progress_interval), 0, 86400, false, CONFIG_SEC_JOB},
    {"log-level", OT_STR, OFF(log_level), 0, 0, false, CONFIG_SEC_JOB},
    {"log-format", OT_STR, OFF(log_format), 0, 0, false, CONFIG_SEC_JOB},
    {"log-file", OT_STR, OFF(log_file), 0, 0, false, CONFIG_SEC_JOB},
    {"cacert", OT_STR, OFF(cacert), 0, 0, true, CONFIG_SEC_JOB},
    {"capath", OT_STR, OFF(capath), 0, 0, true, CONFIG_SEC_JOB},
    {"client-cert", OT_STR, OFF(client_cert), 0, 0, true, CONFIG_SEC_JOB},
    {"client-key", OT_STR, OFF(client_key), 0, 0, true, CONFIG_SEC_JOB},
    {"tls-min-version", OT_STR, OFF(tls_min_version), 0, 0, true, CONFIG_SEC_JOB},
    {"insecure", OT_FLAG, OFF(insecure), 0, 0, true, CONFIG_SEC_JOB},
    {"proxy", OT_STR, OFF(proxy), 0, 0, true, CONFIG_SEC_JOB},
    {"noproxy", OT_STR, OFF(noproxy), 0, 0, true, CONFIG_SEC_JOB},
    {"provider-down-timeout", OT_DOUBLE, OFF(provider_down_timeout), 0, 604800, true, LIM},
    {"burst", OT_INT, OFF(burst), 0, 10000000, true, LIM},
    {"quota-headers", OT_STR, OFF(quota_headers), 0, 0, true, LIM},
    {"shared", OT_FLAG, OFF(shared), 0, 0, true, CONFIG_SEC_JOB},
    {"ranges", OT_INT, OFF(ranges), 1, 100000, true, CONFIG_SEC_JOB},
    {"lease-seconds", OT_DOUBLE, OFF(lease_seconds), 1, 86400, true, CONFIG_SEC_JOB},
    {"ranges-table", OT_STR, OFF(ranges_table), 0, 0, false, TGT},
    {"workers-table", OT_STR, OFF(workers_table), 0, 0, false, TGT},
    /* command-line only: */
    {"config", OT_STR, OFF(config_file), 0, 0, true},
    {"help", OT_FLAG, 0, 0, 0, false},
    {"version", OT_FLAG, 0, 0, 0, false},
};
#pragma GCC diagnostic pop
#define N_OPTS          (sizeof opts / sizeof opts[0])
#define N_FILE_SETTINGS (N_OPTS - 3) /* all but config, help, version */
_Static_assert(N_OPTS <= CONFIG_SETTINGS_MAX, "raise CONFIG_SETTINGS_MAX");

void config_defaults(Config *c)
{
    memset(c, 0, sizeof *c);
    c->source_table = "master_table";
    c->key_column = "id";
    c->target_table = "standardized_locations";
    c->failures_table = "enrich_failures";
    c->checkpoint_table = "enrich_checkpoints";
    c->page_size = 10000;
    c->concurrency = 64;
    c->timeout = 30;
    c->max_attempts = 5;
    c->flush_rows = 10000;
    c->flush_interval = 2;
    c->backoff_base = 0.2;
    c->backoff_cap = 30;
    c->max_body = 1 << 20;
    c->max_depth = 32;
    c->forbidden_threshold = 20;
    c->retry_after_max = 60;
    c->statement_timeout = 300;
    c->db_keepalive = 30;
    c->drain_timeout = 10;
    c->db_retry_timeout = 60;
    c->runs_table = "enrich_runs";
    c->format = "text";
    c->history = 10;
    c->metrics_listen = NULL;
    c->progress_interval = 10;
    c->provider_down_timeout = 300;
    c->quota_headers = "on";
    c->ranges = 64;
    c->lease_seconds = 30;
    c->ranges_table = "enrich_ranges";
    c->workers_table = "enrich_workers";
}

bool config_quota_headers(const Config *c)
{
    return c->quota_headers == NULL || strcmp(c->quota_headers, "off") != 0;
}

static bool parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool config_parse_duration(const char *s, double *seconds)
{
    static const struct {
        char unit;
        double seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
    double v = 0, mult = 1;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v > DURATION_MAX)
            return false;
    }
    if (*p != '\0') {
        size_t i = 0;
        while (i < sizeof units / sizeof units[0] && units[i].unit != *p)
            i++;
        if (i == sizeof units / sizeof units[0] || p[1] != '\0')
            return false;
        mult = units[i].seconds;
    }
    if (v * mult > DURATION_MAX)
        return false;
    *seconds = v * mult;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
            *out = strcmp(s, yes[i]) == 0;
            return true;
        }
    }
    return false;
}

/* Set o from text (arg NULL: an on/off flag given on the command line). The reason in why
 * names no setting: each caller names it in its own form. */
static bool set_option(Config *c, const OptSpec *o, const char *arg, char *why, size_t whylen)
{
    char *field = (char *)c + o->offset;
    double v = 0;

    switch (o->type) {
    case OT_STR:
        if (arg[0] == '\0') {
            snprintf(why, whylen, "must not be empty");
            return false;
        }
        *(const char **)(void *)field = arg;
        return true;
    case OT_FLAG:
        if (arg == NULL) {
            *(bool *)(void *)field = true;
            return true;
        }
        if (!parse_bool(arg, (bool *)(void *)field)) {
            snprintf(why, whylen, "must be true or false, not \"%.40s\"", arg);
            return false;
        }
        return true;
    case OT_DURATION:
        if (!config_parse_duration(arg, &v) || v < o->min || v > o->max) {
            snprintf(why, whylen,
                     "must be a duration such as 30d, 12h, 90m or 3600s (at least 1s), "
                     "not \"%.40s\"",
                     arg);
            return false;
        }
        *(double *)(void *)field = v;
        return true;
    case OT_PAGING:
        if (strcmp(arg, "keyset") == 0)
            *(bool *)(void *)field = false;
        else if (strcmp(arg, "offset") == 0)
            *(bool *)(void *)field = true;
        else {
            snprintf(why, whylen, "must be keyset or offset, not \"%.40s\"", arg);
            return false;
        }
        return true;
    case OT_INT:
    case OT_DOUBLE:
    case OT_SIZE:
        if (!parse_number(arg, &v) || v < o->min || v > o->max ||
            (o->type != OT_DOUBLE && v != floor(v))) {
            snprintf(why, whylen, "must be %s between %.10g and %.10g, not \"%.40s\"",
                     o->type == OT_DOUBLE ? "a number" : "an integer", o->min, o->max, arg);
            return false;
        }
        if (o->type == OT_INT)
            *(int *)(void *)field = (int)v;
        else if (o->type == OT_SIZE)
            *(size_t *)(void *)field = (size_t)v;
        else
            *(double *)(void *)field = v;
        return true;
    }
    return false;
}

/* ---- settings by name ---- */

/* key names o: equal, with '_' standing for '-'. */
static bool key_is(const char *key, const char *name)
{
    for (; *key && *name; key++, name++) {
        if ((*key == '_' ? '-' : *key) != *name)
            return false;
    }
    return *key == *name;
}

size_t config_n_settings(void)
{
    return N_FILE_SETTINGS;
}

int config_find(const char *key)
{
    for (size_t i = 0; i < N_FILE_SETTINGS; i++) {
        if (key_is(key, opts[i].name))
            return (int)i;
    }
    return -1;
}

const char *config_name(int i)
{
    return opts[i].name;
}

ConfigSection config_section(int i)
{
    return opts[i].section;
}

bool config_set_at(Config *c, int i, const char *value, ConfigOrigin from, int line, char *err,
                   size_t errlen)
{
    if (i < 0 || (size_t)i >= N_FILE_SETTINGS) {
        snprintf(err, errlen, "unknown setting");
        return false;
    }
    if (!set_option(c, &opts[i], value, err, errlen))
        return false;
    c->origin[i] = (unsigned char)from;
    c->origin_line[i] = line;
    return true;
}

bool config_set(Config *c, const char *name, const char *value, char *err, size_t errlen)
{
    int i = config_find(name);
    if (i < 0) {
        snprintf(err, errlen, "unknown setting \"%.60s\"", name);
        return false;
    }
    return config_set_at(c, i, value, CONFIG_FROM_FILE, 0, err, errlen);
}

/* ---- the environment ---- */

#define ENV_PREFIX     "PGENRICH_"
#define ENV_PREFIX_LEN (sizeof ENV_PREFIX - 1)

/* The entry PGENRICH_<SUFFIX> (len bytes of name) stands for, or -1: the suffix is the flag
 * name upper-cased with '_' for '-'. */
static int env_setting(const char *name, size_t len)
{
    char key[64];

    if (len <= ENV_PREFIX_LEN || len - ENV_PREFIX_LEN >= sizeof key ||
        strncmp(name, ENV_PREFIX, ENV_PREFIX_LEN) != 0)
        return -1;
    len -= ENV_PREFIX_LEN;
    name += ENV_PREFIX_LEN;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_'))
            return -1;
        key[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    key[len] = '\0';
    return config_find(key);
}

bool config_env_unknown(const char *name)
{
    return strncmp(name, ENV_PREFIX, ENV_PREFIX_LEN) == 0 &&
           strcmp(name, ENV_PREFIX "TOKEN") != 0 && env_setting(name, strlen(name)) < 0;
}

bool config_apply_env(Config *c, char *const *envp, char *err, size_t errlen)
{
    const char *database_url = NULL;
    char why[256];

    for (; envp && *envp; envp++) {
        const char *var = *envp, *eq = strchr(var, '=');
        if (!eq)
            continue;
        if (strncmp(var, "DATABASE_URL=", 13) == 0)
            database_url = eq + 1;
        int i = env_setting(var, (size_t)(eq - var));
        if (i < 0 || eq[1] == '\0')
            continue;
        if (!config_set_at(c, i, eq + 1, CONFIG_FROM_ENV, 0, why, sizeof why)) {
            snprintf(err, errlen, "%.*s: %s", (int)(eq - var), var, why);
            return false;
        }
    }
    if (c->dsn == NULL && database_url && *database_url) {
        int i = config_find("dsn");
        c->dsn = database_url;
        c->origin[i] = CONFIG_FROM_DATABASE_URL;
    }
    return true;
}

/* ---- validation ---- */

static void origin_text(const Config *c, size_t i, char *buf, size_t len);

void config_blame(const Config *c, const char *name, char *err, size_t errlen, const char *fmt, ...)
{
    char why[256], from[300];
    va_list ap;
    int i = config_find(name);

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    switch (i < 0 ? CONFIG_FROM_FLAG : (ConfigOrigin)c->origin[i]) {
    case CONFIG_FROM_FILE:
        origin_text(c, (size_t)i, from, sizeof from);
        snprintf(err, errlen, "%s: %s: %s", from, name, why);
        break;
    case CONFIG_FROM_ENV:
    case CONFIG_FROM_DATABASE_URL:
        origin_text(c, (size_t)i, from, sizeof from);
        snprintf(err, errlen, "%s: %s", from, why);
        break;
    default:
        snprintf(err, errlen, "--%s %s", name, why);
        break;
    }
}

/* A clash between settings, blamed on the first of names (NULL-terminated) that a job file
 * set, so that the error reads FILE:LINE: KEY: reason; else on the first that the
 * environment set; else the plain reason (the flags clash). "" in names is skipped. */
static void clash(const Config *c, const char *const *names, char *err, size_t errlen,
                  const char *fmt, ...) PRINTF_LIKE(5, 6);
static void clash(const Config *c, const char *const *names, char *err, size_t errlen,
                  const char *fmt, ...)
{
    char why[256];
    const char *by = NULL;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    for (ConfigOrigin o = CONFIG_FROM_FILE; by == NULL && o <= CONFIG_FROM_ENV; o++)
        for (const char *const *n = names; by == NULL && *n != NULL; n++) {
            int i = **n != '\0' ? config_find(*n) : -1;
            if (i >= 0 && (c->origin[i] == o ||
                           (o == CONFIG_FROM_ENV && c->origin[i] == CONFIG_FROM_DATABASE_URL)))
                by = *n;
        }
    if (by != NULL)
        config_blame(c, by, err, errlen, "%s", why);
    else
        snprintf(err, errlen, "%s", why);
}

/* The names log_level_parse and log_format_parse take (config stays free of log.c). */
static bool one_of(const char *v, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(v, *names) == 0)
            return true;
    return false;
}

bool config_validate(const Config *c, bool have_providers, char *err, size_t errlen)
{
    static const char *const levels[] = {"error", "warn", "warning", "info", "debug", NULL};
    static const char *const formats[] = {"logfmt", "json", NULL};
    if (c->log_level != NULL && !one_of(c->log_level, levels)) {
        config_blame(c, "log-level", err, errlen,
                     "must be error, warn, info or debug, not \"%.40s\"", c->log_level);
        return false;
    }
    if (c->log_format != NULL && !one_of(c->log_format, formats)) {
        config_blame(c, "log-format", err, errlen, "must be logfmt or json, not \"%.40s\"",
                     c->log_format);
        return false;
    }
    if (c->tls_min_version != NULL && strcmp(c->tls_min_version, "1.2") != 0 &&
        strcmp(c->tls_min_version, "1.3") != 0) {
        config_blame(c, "tls-min-version", err, errlen, "must be 1.2 or 1.3, not \"%.40s\"",
                     c->tls_min_version);
        return false;
    }
    if (c->quota_headers != NULL && strcmp(c->quota_headers, "on") != 0 &&
        strcmp(c->quota_headers, "off") != 0) {
        config_blame(c, "quota-headers", err, errlen, "must be on or off, not \"%.40s\"",
                     c->quota_headers);
        return false;
    }
    if (c->format != NULL && strcmp(c->format, "text") != 0 && strcmp(c->format, "json") != 0) {
        config_blame(c, "format", err, errlen, "must be text or json, not \"%.40s\"", c->format);
        return false;
    }
    if (c->cmd == CMD_STATUS && c->job == NULL) {
        snprintf(err, errlen, "status needs --job NAME");
        return false;
    }
    if (c->cmd != CMD_RUN && c->cmd != CMD_RETRY_FAILED && c->cmd != CMD_CHECK_CONFIG)
        return true;
    if (c->job == NULL) {
        snprintf(err, errlen, "%s needs --job NAME (job = NAME in a job file, or PGENRICH_JOB)",
                 c->cmd == CMD_RETRY_FAILED ? "retry-failed" : "run");
        return false;
    }
    if (c->reason != NULL && c->cmd == CMD_RUN) {
        config_blame(c, "reason", err, errlen, "only applies to retry-failed");
        return false;
    }
    if (c->where != NULL && c->cmd == CMD_RETRY_FAILED) {
        config_blame(c, "where", err, errlen,
                     "does not apply to retry-failed (it reads the ledger)");
        return false;
    }
    if (c->base_url == NULL && !have_providers) {
        snprintf(err, errlen, "needs --base-url URL (or providers in a --config job file)");
        return false;
    }
    if (c->base_url != NULL) {
        if (strncmp(c->base_url, "http://", 7) != 0 && strncmp(c->base_url, "https://", 8) != 0) {
            config_blame(c, "base-url", err, errlen, "must start with http:// or https://");
            return false;
        }
        if (strpbrk(c->base_url, "{} \t\r\n?#") != NULL) {
            config_blame(c, "base-url", err, errlen, "must not hold braces, spaces, '?' or '#'");
            return false;
        }
    }
    bool incremental = c->only_missing || c->refresh_older_than > 0;
    /* The settings of each clash that are on, the ones to blame. */
    const char *const om = c->only_missing ? "only-missing" : "";
    const char *const ro = c->refresh_older_than > 0 ? "refresh-older-than" : "";
    const char *const incr[] = {om, ro, NULL};
    const char *const incr_paging[] = {om, ro, "paging", NULL};
    const char *const refresh_restart[] = {"refresh-older-than", "restart", NULL};
    const char *const shared_with[] = {
        "shared", c->paging_offset ? "paging" : "", om,
        ro,       c->restart ? "restart" : "",      c->explain ? "explain" : "",
        NULL};
    if (incremental && c->cmd == CMD_RETRY_FAILED) {
        clash(c, incr, err, errlen,
              "--only-missing and --refresh-older-than do not apply to "
              "retry-failed (it reads the ledger)");
        return false;
    }
    if (incremental && c->paging_offset) {
        clash(c, incr_paging, err, errlen,
              "--only-missing and --refresh-older-than need --paging keyset "
              "(skipping rows would shift the offsets)");
        return false;
    }
    if (c->refresh_older_than > 0 && !c->only_missing && c->restart) {
        clash(c, refresh_restart, err, errlen,
              "--refresh-older-than alone covers the job's checkpoint, which "
              "--restart forgets: add --only-missing, or drop --restart");
        return false;
    }
    if (c->shared && (c->cmd == CMD_RETRY_FAILED || c->paging_offset || incremental || c->restart ||
                      c->explain)) {
        clash(c, shared_with, err, errlen,
              "--shared works on keyset ranges of a plain run: it does not go with "
              "retry-failed, --paging offset, --only-missing, --refresh-older-than, "
              "--restart or --explain");
        return false;
    }
    if (c->backoff_cap < c->backoff_base) {
        config_blame(c, "backoff-cap", err, errlen, "must not be below backoff-base (%g)",
                     c->backoff_base);
        return false;
    }
    return true;
}

/* ---- the command line ---- */

bool config_parse(Config *c, int argc, char **argv, char *err, size_t errlen)
{
    config_defaults(c);
    if (!config_apply_args(c, argc, argv, err, errlen))
        return false;
    /* With a job file, the caller validates after merging it. */
    return c->config_file != NULL || config_validate(c, false, err, errlen);
}

bool config_apply_args(Config *c, int argc, char **argv, char *err, size_t errlen)
{
    struct option longopts[N_OPTS + 1];
    int first = 1; /* getopt_long sees argv[first] as the program name */
    char why[256];

    if (argc < 2) {
        snprintf(err, errlen, "no command given (init, run, retry-failed, status or check-config)");
        return false;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "init") == 0)
        c->cmd = CMD_INIT;
    else if (strcmp(cmd, "run") == 0)
        c->cmd = CMD_RUN;
    else if (strcmp(cmd, "retry-failed") == 0)
        c->cmd = CMD_RETRY_FAILED;
    else if (strcmp(cmd, "status") == 0)
        c->cmd = CMD_STATUS;
    else if (strcmp(cmd, "check-config") == 0) {
        c->cmd = CMD_CHECK_CONFIG;
        if (argc > 2 && argv[2][0] != '-') { /* check-config FILE: FILE is --config FILE */
            c->config_file = argv[2];
            first = 2;
        }
    } else if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        c->cmd = CMD_HELP;
        return true;
    } else if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        c->cmd = CMD_VERSION;
        return true;
    } else {
        snprintf(err, errlen,
                 "unknown command \"%.40s\" (expected init, run, retry-failed, status or "
                 "check-config)",
                 cmd);
        return false;
    }

    for (size_t i = 0; i < N_OPTS; i++) {
        longopts[i].name = opts[i].name;
        longopts[i].has_arg = opts[i].type == OT_FLAG ? no_argument : required_argument;
        longopts[i].flag = NULL;
        longopts[i].val = 0;
    }
    memset(&longopts[N_OPTS], 0, sizeof longopts[0]);

    optind = 0; /* glibc: 0 also resets its internal state */
    opterr = 0;
    for (;;) {
        int idx = -1;
        int ch = getopt_long(argc - first, argv + first, "+", longopts, &idx);
        if (ch == -1)
            break;
        if (ch != 0 || idx < 0) {
            const char *bad = optind >= 1 && optind <= argc - first ? argv[first + optind - 1] : "";
            snprintf(err, errlen, "unknown option or missing value: %.60s", bad);
            return false;
        }
        const OptSpec *o = &opts[idx];
        if (strcmp(o->name, "help") == 0) {
            c->cmd = CMD_HELP;
            return true;
        }
        if (strcmp(o->name, "version") == 0) {
            c->cmd = CMD_VERSION;
            return true;
        }
        if (o->run_only && c->cmd == CMD_INIT) {
            snprintf(err, errlen, "--%s does not apply to init", o->name);
            return false;
        }
        if (!set_option(c, o, o->type == OT_FLAG ? NULL : optarg, why, sizeof why)) {
            snprintf(err, errlen, "--%s %s", o->name, why);
            return false;
        }
        c->origin[idx] = CONFIG_FROM_FLAG;
        c->origin_line[idx] = 0;
    }
    if (optind < argc - first) {
        snprintf(err, errlen, "unexpected argument: %.60s", argv[optind + first]);
        return false;
    }
    return true;
}

/* ---- masking ---- */

/* A bounded writer into a caller's buffer: what does not fit is dropped. */
typedef struct Out {
    char *p;
    size_t len, cap;
} Out;

static void out_put(Out *o, const char *s, size_t n)
{
    if (o->cap == 0)
        return;
    size_t room = o->cap - 1 - o->len;
    if (n > room)
        n = room;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

#define MASK "****"

static bool contains_ci(const char *s, size_t len, const char *word)
{
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= len; i++) {
        if (strncasecmp(s + i, word, w) == 0)
            return true;
    }
    return false;
}

bool config_secret_name(const char *name, size_t len)
{
    static const char *const words[] = {"auth",   "token",   "secret",     "key",      "pass",
                                        "cookie", "session", "credential", "signature"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (contains_ci(name, len, words[i]))
            return true;
    }
    return false;
}

/* libpq's secrets: password, sslpassword (sslkey and sslcert are paths, shown). */
static bool dsn_secret(const char *name, size_t len)
{
    return contains_ci(name, len, "pass");
}

/* scheme "://" ...: the userinfo's password and secret-named query values masked. */
static void mask_uri(Out *o, const char *s, size_t scheme_len, bool postgres)
{
    const char *auth = s + scheme_len + 3;
    size_t end = strcspn(auth, "?#"); /* the userinfo ends at the last '@' before these */
    const char *at = NULL;

    for (size_t i = 0; i < end; i++) {
        if (auth[i] == '@')
            at = auth + i;
    }
    out_put(o, s, (size_t)(auth - s));
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon) {
            out_put(o, auth, (size_t)(colon - auth) + 1);
            out_put(o, MASK, strlen(MASK));
            auth = at;
        }
    }
    const char *q = strchr(auth, '?');
    const char *frag = strchr(auth, '#');
    if (!q || (frag && frag < q)) {
        out_put(o, auth, strlen(auth));
        return;
    }
    out_put(o, auth, (size_t)(q - auth) + 1);
    for (const char *p = q + 1; *p;) {
        size_t plen = strcspn(p, "&#");
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq ? (size_t)(eq - p) : plen;
        bool secret = postgres ? dsn_secret(p, klen) : config_secret_name(p, klen);
        if (eq && secret) {
            out_put(o, p, klen + 1);
            out_put(o, MASK, strlen(MASK));
        } else
            out_put(o, p, plen);
        p += plen;
        if (*p == '#') {
            out_put(o, p, strlen(p));
            break;
        }
        if (*p == '&')
            out_put(o, p++, 1);
    }
}

/* keyword = value pairs as libpq reads them; false when the string does not parse. */
static bool mask_keywords(Out *o, const char *s)
{
    const char *p = s;

    while (*p) {
        const char *ws = p;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p) {
            out_put(o, ws, (size_t)(p - ws));
            break;
        }
        const char *kw = p;
        while (*p && *p != '=' && !isspace((unsigned char)*p))
            p++;
        size_t kwlen = (size_t)(p - kw);
        while (isspace((unsigned char)*p))
            p++;
        if (*p != '=' || kwlen == 0)
            return false;
        p++;
        while (isspace((unsigned char)*p))
            p++;
        const char *val = p;
        if (*p == '\'') {
            for (p++; *p && *p != '\''; p++) {
                if (*p == '\\' && p[1])
                    p++;
            }
            if (*p != '\'')
                return false;
            p++;
        } else {
            for (; *p && !isspace((unsigned char)*p); p++) {
                if (*p == '\\' && p[1])
                    p++;
            }
        }
        out_put(o, ws, (size_t)(val - ws));
        if (dsn_secret(kw, kwlen))
            out_put(o, MASK, strlen(MASK));
        else
            out_put(o, val, (size_t)(p - val));
    }
    return true;
}

void config_mask_dsn(const char *dsn, char *out, size_t outlen)
{
    Out o = {out, 0, outlen};
    size_t scheme = 0;

    if (outlen == 0)
        return;
    out[0] = '\0';
    while (isalnum((unsigned char)dsn[scheme]) || dsn[scheme] == '+' || dsn[scheme] == '-' ||
           dsn[scheme] == '.')
        scheme++;
    if (scheme > 0 && isalpha((unsigned char)dsn[0]) && strncmp(dsn + scheme, "://", 3) == 0) {
        bool postgres = (scheme == 8 && strncmp(dsn, "postgres", 8) == 0) ||
                        (scheme == 10 && strncmp(dsn, "postgresql", 10) == 0);
        mask_uri(&o, dsn, scheme, postgres);
        return;
    }
    if (!mask_keywords(&o, dsn)) {
        o.len = 0;
        out[0] = '\0';
        out_put(&o, MASK, strlen(MASK));
    }
}

/* ---- the dump ---- */

static void origin_text(const Config *c, size_t i, char *buf, size_t len)
{
    switch ((ConfigOrigin)c->origin[i]) {
    case CONFIG_FROM_DEFAULT:
        snprintf(buf, len, "default");
        return;
    case CONFIG_FROM_FILE:
        snprintf(buf, len, "%s:%d", c->config_file ? c->config_file : "job file",
                 c->origin_line[i]);
        return;
    case CONFIG_FROM_DATABASE_URL:
        snprintf(buf, len, "DATABASE_URL");
        return;
    case CONFIG_FROM_ENV: {
        size_t n = (size_t)snprintf(buf, len, ENV_PREFIX "%s", opts[i].name);
        for (size_t k = ENV_PREFIX_LEN; k < n && k < len; k++)
            buf[k] = buf[k] == '-' ? '_' : (char)toupper((unsigned char)buf[k]);
        return;
    }
    case CONFIG_FROM_FLAG:
        snprintf(buf, len, "--%s", opts[i].name);
        return;
    }
    snprintf(buf, len, "?");
}

static bool looks_like_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0 ||
           strncmp(s, "postgres://", 11) == 0 || strncmp(s, "postgresql://", 13) == 0;
}

static void value_text(const Config *c, const OptSpec *o, char *buf, size_t len)
{
    const char *field = (const char *)c + o->offset;

    switch (o->type) {
    case OT_STR: {
        const char *v = *(const char *const *)(const void *)field;
        if (v == NULL)
            snprintf(buf, len, "(none)");
        else if (strcmp(o->name, "dsn") == 0 || looks_like_url(v))
            config_mask_dsn(v, buf, len);
        else if (strcmp(o->name, "proxy") == 0 && strchr(v, '@') != NULL)
            snprintf(buf, len, "****%s", strrchr(v, '@')); /* user:password@host */
        else
            snprintf(buf, len, "%s", v);
        break;
    }
    case OT_FLAG:
        snprintf(buf, len, "%s", *(const bool *)(const void *)field ? "true" : "false");
        break;
    case OT_PAGING:
        snprintf(buf, len, "%s", *(const bool *)(const void *)field ? "offset" : "keyset");
        break;
    case OT_INT:
        snprintf(buf, len, "%d", *(const int *)(const void *)field);
        break;
    case OT_SIZE:
        snprintf(buf, len, "%zu", *(const size_t *)(const void *)field);
        break;
    case OT_DOUBLE:
        snprintf(buf, len, "%g", *(const double *)(const void *)field);
        break;
    case OT_DURATION:
        snprintf(buf, len, "%.0fs", *(const double *)(const void *)field);
        break;
    }
    for (char *p = buf; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7F)
            *p = '?';
    }
}

void config_dump(const Config *c, FILE *out)
{
    char value[8192], line[8400], from[300];

    for (int sec = 0; sec < CONFIG_SEC_COUNT; sec++) {
        for (size_t i = 0; i < N_FILE_SETTINGS; i++) {
            if ((int)opts[i].section != sec)
                continue;
            value_text(c, &opts[i], value, sizeof value);
            origin_text(c, i, from, sizeof from);
            snprintf(line, sizeof line, "%s.%s = %s", config_section_names[sec], opts[i].name,
                     value);
            fprintf(out, "%-40s  # %s\n", line, from);
        }
    }
}

/* ---- help per command ---- */

typedef struct CommandHelp {
    const char *name;
    const char *text; /* synopsis and what it does */
    bool run_options; /* followed by config_usage_options */
} CommandHelp;

#define EXIT_LINE                                                                                  \
    "exit status: 0 done; 5 done, with IDs in the failure ledger; 75 interrupted, a rerun\n"       \
    "resumes; 1 runtime error; 2 bad configuration; 3 credentials refused; 4 the job is\n"         \
    "running elsewhere; 6 database unreachable (man pgenrich, EXIT STATUS)\n"

static const CommandHelp command_help[] = {
    {"init",
     "usage: pgenrich init [--dsn DSN] [table options]\n"
     "\n"
     "Creates the target, failures, checkpoint and runs tables where they are missing and\n"
     "migrates older ones in place, in one transaction; the target's id takes the type of\n"
     "the source key column. Safe to run again: existing tables and rows are kept. `run`\n"
     "does the same at its start.\n"
     "\n"
     "options: --dsn DSN (else DATABASE_URL, else the PG* variables)\n"
     "         --statement-timeout S (300) --db-keepalive S (30)\n"
     "         --source-table T (master_table) --key-column C (id)\n"
     "         --target-table T (standardized_locations) --failures-table T\n"
     "         (enrich_failures) --checkpoint-table T (enrich_checkpoints)\n"
     "         --runs-table T (enrich_runs)\n"
     "         --quiet --verbose --log-level L --log-format F --log-file F\n"
     "Also from PGENRICH_<SETTING> variables; the job settings of run are refused.\n"
     "exit status: 0 ready; 1 the schema could not be applied; 2 bad configuration;\n"
     "6 database unreachable\n",
     false},
    {"run",
     "usage: pgenrich run --job NAME --base-url URL [--dsn DSN] [options]\n"
     "       pgenrich run --config FILE [options]\n"
     "\n"
     "Pages the IDs out of the source table from the job's checkpoint on, looks each one up\n"
     "along the provider chain, loads the answers into the target table and the misses and\n"
     "errors into the failure ledger, and exits when every ID is settled. The summary goes\n"
     "to stdout, the log to stderr. SIGINT/SIGTERM stop it resumably.\n" EXIT_LINE,
     true},
    {"retry-failed",
     "usage: pgenrich retry-failed --job NAME [--reason R] [run options]\n"
     "\n"
     "Looks up again the IDs in the job's failure ledger (with --reason R, only those that\n"
     "failed for reason R: not_found, no_location, bad_response, rejected,\n"
     "attempts_exhausted, forbidden, unloadable). An ID that loads leaves the ledger. The\n"
     "checkpoint is not touched; --where, --only-missing and --refresh-older-than do not\n"
     "apply.\n" EXIT_LINE,
     true},
    {"status",
     "usage: pgenrich status --job NAME [--format text|json] [--history N] [table options]\n"
     "\n"
     "Shows the job's checkpoint, the IDs left after it, the process running it (if any),\n"
     "its last N runs and its failures by reason. Reads only. For a job with ranges (run\n"
     "--shared), in place of the IDs left: the ranges by state, the progress (IDs done of\n"
     "the source's, the rate of the live workers, an ETA), the workers (each owner of a\n"
     "range, live while its lease holds; with their heartbeat, rate and 429s when the\n"
     "workers table enrich_workers exists) and the leased ranges (owner, fence, lease left,\n"
     "checkpoint); in JSON under \"shared\".\n"
     "\n"
     "options: --job NAME --format text|json (text) --history N (10)\n"
     "         --dsn DSN --statement-timeout S --db-keepalive S\n"
     "         --source-table T --key-column C --where SQL --target-table T\n"
     "         --failures-table T --checkpoint-table T --runs-table T --ranges-table T\n"
     "         --config FILE (the same settings from a job file)\n"
     "exit status: 0 shown; 1 a query failed; 2 bad configuration; 6 database unreachable\n",
     false},
    {"check-config",
     "usage: pgenrich check-config [FILE] [run options]\n"
     "\n"
     "Loads the job file FILE (as --config FILE), the PGENRICH_* variables and the flags as\n"
     "run would, checks them and the tokens, and prints the effective settings with where\n"
     "each came from, secrets masked. Connects to nothing.\n"
     "exit status: 0 valid; 2 invalid, with FILE:LINE: KEY: reason (or PGENRICH_X: reason)\n",
     true},
    {"help",
     "usage: pgenrich help [COMMAND]\n"
     "       pgenrich COMMAND --help\n"
     "\n"
     "Prints the usage of every command, or of COMMAND (init, run, retry-failed, status,\n"
     "check-config, help, version). man pgenrich has the whole reference.\n",
     false},
    {"version",
     "usage: pgenrich version\n"
     "       pgenrich --version\n"
     "\n"
     "Prints pgenrich's version and libcurl's.\n",
     false},
};

bool config_help(FILE *out, const char *command)
{
    for (size_t i = 0; i < sizeof command_help / sizeof command_help[0]; i++) {
        const CommandHelp *h = &command_help[i];
        if (strcmp(command, h->name) != 0)
            continue;
        fputs(h->text, out);
        if (h->run_options) {
            fprintf(out, "\n%s", config_usage_options);
        }
        return true;
    }
    return false;
}

void config_list_flags(FILE *out)
{
    for (size_t i = 0; i < N_OPTS; i++)
        fprintf(out, "--%s\n", opts[i].name);
}
