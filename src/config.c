/* config: table-driven parsing of the command line, then one validation pass, so every
 * flag has one place that names it, its type, its target and its bounds. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char config_usage[] =
    "usage: pgenrich init [--dsn DSN] [table options]\n"
    "       pgenrich run  --job NAME --base-url URL [--dsn DSN] [options]\n"
    "\n"
    "connection: --dsn DSN (else DATABASE_URL, else the PG* variables)\n"
    "            --statement-timeout S (300; 0 = none) --db-keepalive S (30; 0 = OS default)\n"
    "tables:     --source-table T (master_table) --key-column C (id) --where SQL\n"
    "            --target-table T (standardized_locations) --failures-table T\n"
    "            (enrich_failures) --checkpoint-table T (enrich_checkpoints)\n"
    "paging:     --page-size N (10000) --paging keyset|offset (keyset)\n"
    "requests:   --concurrency N (64) --rate R per second (no cap) --timeout S (30)\n"
    "            --max-attempts N (5) --backoff-base S (0.2) --backoff-cap S (30)\n"
    "            --max-body BYTES (1048576) --token-file F (else PGENRICH_TOKEN)\n"
    "            --retry-after-max S (60: a longer Retry-After fails the ID, or stops the\n"
    "            job when a 429 asks it) --forbidden-threshold N (20 consecutive 403s from\n"
    "            a provider mean the credentials are refused)\n"
    "loading:    --flush-rows N (10000) --flush-interval S (2)\n"
    "job:        --job NAME --restart (ignore the checkpoint) --quiet --verbose\n"
    "            --config FILE (INI job file: [job] settings and [provider NAME] chain)\n"
    "logs:       --log-level error|warn|info|debug (info; --quiet: warn, --verbose: debug)\n"
    "            --log-format logfmt|json (logfmt) --log-file F (else stderr; SIGHUP reopens)\n"
    "            --progress-interval S (10: a progress line when stderr is no terminal; 0 none)\n"
    "\n"
    "       pgenrich retry-failed --job NAME [--reason R] [run options]\n"
    "            looks up again the IDs in the job's failure ledger (only those with reason R)\n";

enum OptType { OT_STR, OT_INT, OT_DOUBLE, OT_SIZE, OT_FLAG, OT_PAGING };

typedef struct OptSpec {
    const char *name;
    enum OptType type;
    size_t offset;
    double min, max; /* bounds for numbers */
    bool run_only;   /* a job setting: refused by init */
} OptSpec;

#define OFF(field) offsetof(Config, field)
static const OptSpec opts[] = {
    {"dsn", OT_STR, OFF(dsn), 0, 0, false},
    {"statement-timeout", OT_DOUBLE, OFF(statement_timeout), 0, 1e6, false},
    {"db-keepalive", OT_INT, OFF(db_keepalive), 0, 7200, false},
    {"source-table", OT_STR, OFF(source_table), 0, 0, false},
    {"key-column", OT_STR, OFF(key_column), 0, 0, false},
    {"where", OT_STR, OFF(where), 0, 0, true},
    {"target-table", OT_STR, OFF(target_table), 0, 0, false},
    {"failures-table", OT_STR, OFF(failures_table), 0, 0, false},
    {"checkpoint-table", OT_STR, OFF(checkpoint_table), 0, 0, false},
    {"job", OT_STR, OFF(job), 0, 0, true},
    {"base-url", OT_STR, OFF(base_url), 0, 0, true},
    {"token-file", OT_STR, OFF(token_file), 0, 0, true},
    {"page-size", OT_INT, OFF(page_size), 1, 1000000, true},
    {"paging", OT_PAGING, OFF(paging_offset), 0, 0, true},
    {"concurrency", OT_INT, OFF(concurrency), 1, 10000, true},
    {"rate", OT_DOUBLE, OFF(rate), 0, 1e7, true},
    {"timeout", OT_DOUBLE, OFF(timeout), 0.001, 86400, true},
    {"max-attempts", OT_INT, OFF(max_attempts), 1, 100, true},
    {"flush-rows", OT_INT, OFF(flush_rows), 1, 10000000, true},
    {"flush-interval", OT_DOUBLE, OFF(flush_interval), 0.01, 86400, true},
    {"restart", OT_FLAG, OFF(restart), 0, 0, true},
    {"quiet", OT_FLAG, OFF(quiet), 0, 0, false},
    {"verbose", OT_FLAG, OFF(verbose), 0, 0, false},
    {"backoff-base", OT_DOUBLE, OFF(backoff_base), 0, 3600, true},
    {"backoff-cap", OT_DOUBLE, OFF(backoff_cap), 0, 86400, true},
    {"max-body", OT_SIZE, OFF(max_body), 1024, 1 << 30, true},
    {"reason", OT_STR, OFF(reason), 0, 0, true},
    {"forbidden-threshold", OT_INT, OFF(forbidden_threshold), 1, 1000000, true},
    {"retry-after-max", OT_DOUBLE, OFF(retry_after_max), 0, 86400, true},
    {"progress-interval", OT_DOUBLE, OFF(progress_interval), 0, 86400, false},
    {"log-level", OT_STR, OFF(log_level), 0, 0, false},
    {"log-format", OT_STR, OFF(log_format), 0, 0, false},
    {"log-file", OT_STR, OFF(log_file), 0, 0, false},
    /* command-line only: */
    {"config", OT_STR, OFF(config_file), 0, 0, true},
    {"help", OT_FLAG, 0, 0, 0, false},
    {"version", OT_FLAG, 0, 0, 0, false},
};
#define N_FILE_SETTINGS (sizeof opts / sizeof opts[0] - 3) /* all but config, help, version */

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
    c->progress_interval = 10;
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

static bool set_option(Config *c, const OptSpec *o, const char *arg, char *err, size_t errlen)
{
    char *field = (char *)c + o->offset;
    double v = 0;

    switch (o->type) {
    case OT_STR:
        if (arg[0] == '\0') {
            snprintf(err, errlen, "--%s must not be empty", o->name);
            return false;
        }
        *(const char **)(void *)field = arg;
        return true;
    case OT_FLAG:
        *(bool *)(void *)field = true;
        return true;
    case OT_PAGING:
        if (strcmp(arg, "keyset") == 0)
            *(bool *)(void *)field = false;
        else if (strcmp(arg, "offset") == 0)
            *(bool *)(void *)field = true;
        else {
            snprintf(err, errlen, "--paging must be keyset or offset, not \"%.40s\"", arg);
            return false;
        }
        return true;
    case OT_INT:
    case OT_DOUBLE:
    case OT_SIZE:
        if (!parse_number(arg, &v) || v < o->min || v > o->max ||
            (o->type != OT_DOUBLE && v != floor(v))) {
            snprintf(err, errlen, "--%s must be %s between %g and %g, not \"%.40s\"", o->name,
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
        snprintf(err, errlen, "--log-level must be error, warn, info or debug, not \"%.40s\"",
                 c->log_level);
        return false;
    }
    if (c->log_format != NULL && !one_of(c->log_format, formats)) {
        snprintf(err, errlen, "--log-format must be logfmt or json, not \"%.40s\"", c->log_format);
        return false;
    }
    if (c->cmd != CMD_RUN && c->cmd != CMD_RETRY_FAILED)
        return true;
    if (c->job == NULL) {
        snprintf(err, errlen, "%s needs --job NAME", c->cmd == CMD_RUN ? "run" : "retry-failed");
        return false;
    }
    if (c->reason != NULL && c->cmd != CMD_RETRY_FAILED) {
        snprintf(err, errlen, "--reason only applies to retry-failed");
        return false;
    }
    if (c->where != NULL && c->cmd == CMD_RETRY_FAILED) {
        snprintf(err, errlen, "--where does not apply to retry-failed (it reads the ledger)");
        return false;
    }
    if (c->base_url == NULL && !have_providers) {
        snprintf(err, errlen, "needs --base-url URL (or providers in a --config job file)");
        return false;
    }
    if (c->base_url != NULL) {
        if (strncmp(c->base_url, "http://", 7) != 0 && strncmp(c->base_url, "https://", 8) != 0) {
            snprintf(err, errlen, "--base-url must start with http:// or https://");
            return false;
        }
        if (strpbrk(c->base_url, "{} \t\r\n?#") != NULL) {
            snprintf(err, errlen, "--base-url must not hold braces, spaces, '?' or '#'");
            return false;
        }
    }
    if (c->backoff_cap < c->backoff_base) {
        snprintf(err, errlen, "--backoff-cap must not be below --backoff-base");
        return false;
    }
    return true;
}

bool config_set(Config *c, const char *name, const char *value, char *err, size_t errlen)
{
    for (size_t i = 0; i < N_FILE_SETTINGS; i++) {
        if (strcmp(opts[i].name, name) != 0)
            continue;
        if (opts[i].type == OT_FLAG) {
            if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 ||
                strcmp(value, "1") == 0 || strcmp(value, "on") == 0)
                return set_option(c, &opts[i], value, err, errlen);
            if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 ||
                strcmp(value, "0") == 0 || strcmp(value, "off") == 0) {
                *(bool *)(void *)((char *)c + opts[i].offset) = false;
                return true;
            }
            snprintf(err, errlen, "%s must be true or false, not \"%.40s\"", name, value);
            return false;
        }
        return set_option(c, &opts[i], value, err, errlen);
    }
    snprintf(err, errlen, "unknown setting \"%.60s\"", name);
    return false;
}

bool config_parse(Config *c, int argc, char **argv, char *err, size_t errlen)
{
    config_defaults(c);
    return config_apply_args(c, argc, argv, err, errlen);
}

bool config_apply_args(Config *c, int argc, char **argv, char *err, size_t errlen)
{
    struct option longopts[sizeof opts / sizeof opts[0] + 1];
    if (argc < 2) {
        snprintf(err, errlen, "no command given (init or run)");
        return false;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "init") == 0)
        c->cmd = CMD_INIT;
    else if (strcmp(cmd, "run") == 0)
        c->cmd = CMD_RUN;
    else if (strcmp(cmd, "retry-failed") == 0)
        c->cmd = CMD_RETRY_FAILED;
    else if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        c->cmd = CMD_HELP;
        return true;
    } else if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        c->cmd = CMD_VERSION;
        return true;
    } else {
        snprintf(err, errlen, "unknown command \"%.40s\" (expected init, run or retry-failed)",
                 cmd);
        return false;
    }

    size_t n = sizeof opts / sizeof opts[0];
    for (size_t i = 0; i < n; i++) {
        longopts[i].name = opts[i].name;
        longopts[i].has_arg = opts[i].type == OT_FLAG ? no_argument : required_argument;
        longopts[i].flag = NULL;
        longopts[i].val = 0;
    }
    memset(&longopts[n], 0, sizeof longopts[n]);

    optind = 0; /* glibc: 0 also resets its internal state */
    opterr = 0;
    for (;;) {
        int idx = -1;
        int ch = getopt_long(argc - 1, argv + 1, "+", longopts, &idx);
        if (ch == -1)
            break;
        if (ch != 0 || idx < 0) {
            const char *bad = optind >= 1 && optind <= argc - 1 ? argv[optind] : "";
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
        if (!set_option(c, o, optarg, err, errlen))
            return false;
    }
    if (optind < argc - 1) {
        snprintf(err, errlen, "unexpected argument: %.60s", argv[optind + 1]);
        return false;
    }
    /* With a job file, the caller validates after merging it. */
    return c->config_file != NULL || config_validate(c, false, err, errlen);
}
