/* config: every setting of pgenrich in one table (flag, type, bounds, job-file section),
 * set from the defaults, a job file, the environment and the command line, in that order,
 * with validation and a printable dump. Pure: no I/O beyond what it is given; strings
 * point into argv, the environment, the job file or static defaults, so there is nothing
 * to free. */
#ifndef PGENRICH_CONFIG_H
#define PGENRICH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include "compat.h"
#include <stdio.h>

typedef enum Command {
    CMD_NONE,
    CMD_INIT,
    CMD_RUN,
    CMD_RETRY_FAILED,
    CMD_STATUS,
    CMD_HELP,
    CMD_VERSION,
    CMD_CHECK_CONFIG
} Command;

/* The job-file section a setting belongs in. [job] also accepts every setting (job files
 * written before the other sections existed); a setting without a section is a job one. */
typedef enum ConfigSection {
    CONFIG_SEC_JOB = 0,
    CONFIG_SEC_SOURCE,
    CONFIG_SEC_TARGET,
    CONFIG_SEC_LIMITS,
    CONFIG_SEC_COUNT
} ConfigSection;

/* Section names as in the job file ("job", "source", "target", "limits"). */
extern const char *const config_section_names[CONFIG_SEC_COUNT];

/* Where a setting's value came from; later ones win. */
typedef enum ConfigOrigin {
    CONFIG_FROM_DEFAULT = 0,
    CONFIG_FROM_FILE,
    CONFIG_FROM_DATABASE_URL, /* dsn only: the DATABASE_URL fallback */
    CONFIG_FROM_ENV,
    CONFIG_FROM_FLAG
} ConfigOrigin;

#define CONFIG_SETTINGS_MAX 96 /* entries of the settings table, checked at compile time */

typedef struct Config {
    Command cmd;
    /* Per entry of the settings table: where its value came from, and for a job file the
     * line (0 otherwise), so that errors and check-config can name it. */
    unsigned char origin[CONFIG_SETTINGS_MAX];
    int origin_line[CONFIG_SETTINGS_MAX];
    const char *dsn;              /* NULL: libpq's PG* variables (config_apply_env puts a
                                     DATABASE_URL here) */
    const char *source_table;     /* master_table */
    const char *key_column;       /* id */
    const char *where;            /* optional filter on the source, or NULL */
    const char *target_table;     /* standardized_locations */
    const char *failures_table;   /* enrich_failures */
    const char *checkpoint_table; /* enrich_checkpoints */
    const char *job;              /* required for run */
    const char *base_url;         /* required for run; no trailing '/' is needed */
    const char *token_file;       /* NULL: PGENRICH_TOKEN */
    const char *config_file;      /* INI job file (--config), or NULL */
    const char *reason;           /* retry-failed: only failures with this reason */
    int page_size;                /* 10000 */
    bool paging_offset;           /* false: keyset */
    int concurrency;              /* 64 */
    double rate;                  /* requests/s; 0 = no cap */
    double timeout;               /* seconds per request: 30 */
    int max_attempts;             /* 5 */
    int flush_rows;               /* 10000 */
    double flush_interval;        /* seconds: 2 */
    bool restart;
    bool quiet;
    bool verbose;
    double backoff_base;     /* seconds: 0.2 */
    double backoff_cap;      /* seconds: 30 */
    size_t max_body;         /* bytes: 1 MiB */
    int max_depth;           /* JSON nesting: 32 */
    int forbidden_threshold; /* consecutive 403s from a provider that mean "credentials
                                refused": 20 */
    double retry_after_max;  /* seconds one Retry-After may ask for: 60 */

    /* Database sessions (src/db.h, DbConnOpts). */
    double statement_timeout; /* seconds per SQL statement: 300; 0 = pgenrich sets none */
    int db_keepalive;         /* TCP keepalive idle seconds: 30; 0 = libpq's / the OS's */

    /* Faults. */
    double drain_timeout;    /* seconds in-flight lookups get after SIGINT/SIGTERM: 10 */
    double db_retry_timeout; /* seconds to reconnect to a lost database: 60; 0 = give up */
    /* Incremental runs (keyset only; README "Incremental nightly runs"). */
    bool only_missing;          /* false: only IDs with no target row and no ledger entry */
    double refresh_older_than;  /* seconds: 0 = off; else IDs whose row's fetched_at is older */
    bool explain;               /* false: print EXPLAIN of the first page query and exit */
    const char *runs_table;     /* run history: enrich_runs */
    const char *format;         /* status output: "text" (default) or "json" */
    int history;                /* status: how many of the last runs to show: 10 */
    const char *metrics_listen; /* HOST:PORT of the Prometheus endpoint; NULL: none */
    /* Progress and logs (src/progress.h, src/log.h). */
    double progress_interval; /* seconds between logfmt progress lines: 10; 0 = none */
    const char *log_level;    /* NULL: info (--quiet: warn, --verbose: debug) */
    const char *log_format;   /* NULL: logfmt; or json */
    const char *log_file;     /* NULL: stderr */
    /* Connectivity (README "TLS, proxies and connection errors"): the defaults of every
     * provider, which a [provider NAME] section may override. */
    const char *cacert;           /* CA bundle file; NULL: the system store */
    const char *capath;           /* CA directory; NULL: the system store */
    const char *client_cert;      /* client certificate for mutual TLS; NULL: none */
    const char *client_key;       /* its key; NULL: in client_cert's file */
    const char *tls_min_version;  /* NULL: libcurl's; "1.2" or "1.3" */
    bool insecure;                /* false; true verifies no certificate (tests only) */
    const char *proxy;            /* NULL: http_proxy/https_proxy; "none": no proxy */
    const char *noproxy;          /* NULL: no_proxy; hosts that bypass the proxy */
    double provider_down_timeout; /* seconds without an answer from a provider before the
                                     job stops, resumable: 300; 0 = wait for ever */
    int burst; /* requests the rate limit (--rate or the adaptive one) lets go at once:
                  0 = max(1, rate / 20) (rl_burst_for) */
    const char *quota_headers; /* "on" (default): pace by announced quotas; "off" */
    /* Scale-out (README "Many workers on one job"; src/lease.h). */
    bool shared;               /* false; true: one of the job's workers, leasing ranges */
    int ranges;                /* how many ranges the first worker splits the key space into: 64 */
    double lease_seconds;      /* a range's lease, renewed every third of it: 30 */
    const char *ranges_table;  /* the job's ranges: enrich_ranges */
    const char *workers_table; /* the live workers of shared jobs: enrich_workers */
} Config;

/* Fill c with the defaults (every origin CONFIG_FROM_DEFAULT). */
void config_defaults(Config *c);

/* Whether requests are paced by the quotas providers announce (--quota-headers, validated
 * on or off; anything but "off" counts as on). */
bool config_quota_headers(const Config *c);

/* Parse argv (argv[0] is the program, argv[1] the command) onto the defaults. Returns true
 * with c filled and validated (unless --config names a job file: then the caller validates
 * after merging it), or false with a one-line reason in err. `--help` and `--version` set
 * c->cmd to CMD_HELP / CMD_VERSION and succeed. Uses getopt_long, so it resets optind
 * itself. */
bool config_parse(Config *c, int argc, char **argv, char *err, size_t errlen);

/* Apply argv onto c as it is (no defaults first, no validation): the flags, which override
 * the job file and the environment. `check-config FILE` takes FILE as --config FILE.
 * Sets c->cmd. Same errors as config_parse otherwise. */
bool config_apply_args(Config *c, int argc, char **argv, char *err, size_t errlen);

/* The settings a job file and the environment may set are entries 0 .. config_n_settings()-1
 * of the table (command-line-only switches such as --config are not among them). */
size_t config_n_settings(void);

/* The entry of a setting by its name as a key: the flag name without the dashes, with '-'
 * or '_' between words ("page-size", "page_size"); case-sensitive. -1 when there is none. */
int config_find(const char *key);

/* Entry i's flag name ("page-size", static) and section; i must be a valid entry. */
const char *config_name(int i);
ConfigSection config_section(int i);

/* Set entry i from text, with the same parsing and bounds as its flag, and record where it
 * came from (line: the job-file line, else 0). The string is stored as given (the caller
 * keeps it alive). On/off settings take true/false, yes/no, on/off, 1/0. Returns false
 * with the reason alone in err ("must be an integer between 1 and 10000, not \"0\""): the
 * caller names the key in its own form. */
bool config_set_at(Config *c, int i, const char *value, ConfigOrigin from, int line, char *err,
                   size_t errlen);

/* config_find + config_set_at with CONFIG_FROM_FILE and line 0; an unknown name is an
 * error ("unknown setting"). For tests and simple callers. */
bool config_set(Config *c, const char *name, const char *value, char *err, size_t errlen);

/* Apply the environment onto c: each PGENRICH_<SETTING> (the flag name upper-cased, '-' as
 * '_': PGENRICH_PAGE_SIZE) sets that setting, CONFIG_FROM_ENV. envp is a NULL-terminated
 * "NAME=value" array (environ in main, any array in tests); values are stored as pointers
 * into it. An empty value counts as unset. Other PGENRICH_* variables (PGENRICH_TOKEN, the
 * token itself, and anything unknown) are ignored here; see config_env_unknown. Then, when
 * no dsn is set, a non-empty DATABASE_URL becomes the dsn (CONFIG_FROM_DATABASE_URL).
 * False with "PGENRICH_X: reason" in err on the first bad value. */
bool config_apply_env(Config *c, char *const *envp, char *err, size_t errlen);

/* Whether the variable NAME (no "=value") starts with PGENRICH_ but names no setting and is
 * not PGENRICH_TOKEN: worth a warning where the user asks for one (check-config). */
bool config_env_unknown(const char *name);

/* Check the settings that depend on each other (required ones for run, bounds between two
 * settings). `have_providers`: a job file supplied the provider chain, so --base-url is not
 * required. check-config is checked as run (and does not refuse --reason or --where). The
 * reason names the setting the way it was given: "FILE:LINE: KEY: reason" for a job-file
 * setting (FILE is c->config_file), "PGENRICH_X: reason", "--key ..." otherwise. */
bool config_validate(const Config *c, bool have_providers, char *err, size_t errlen);

/* The reason why, in err, named the way the setting `name` was given: "FILE:LINE: KEY:
 * reason" for a job-file setting, "PGENRICH_X: reason" for the environment, "--key reason"
 * for a flag or a default. For the checks made outside config (the tokens, the metrics
 * address). */
void config_blame(const Config *c, const char *name, char *err, size_t errlen, const char *fmt, ...)
    PRINTF_LIKE(5, 6);

/* Parse a duration: a whole number with one unit, s, m, h, d or w (seconds, minutes, hours,
 * days, weeks: "30d", "12h", "90m", "3600s"); a bare number is seconds. No sign, spaces or
 * fractions. Returns true with the seconds in *seconds, false (leaving it) otherwise or
 * past 100 years. */
bool config_parse_duration(const char *s, double *seconds) WUR;
/* Print every setting, by section and in table order, one per line:
 * "section.key = value  # origin" (origin: default, FILE:LINE, PGENRICH_X, DATABASE_URL or
 * --key), with the dsn's password and any secret in a URL's userinfo or query masked
 * (config_mask_dsn) and control characters shown as '?'. An unset setting prints "(none)". */
void config_dump(const Config *c, FILE *out);

/* Write dsn into out (always NUL-terminated, cut to outlen-1 bytes) with every secret
 * replaced by "****": in a URI (postgres:// or postgresql://) the password of the userinfo
 * and the value of query parameters named like secrets (config_secret_name); in a
 * keyword=value string the values of such keywords (password, sslpassword, ...), quoted or
 * not. A keyword=value string that does not parse is masked whole. http(s) URLs are
 * treated like URIs, so this masks a base URL or a provider URL too. */
void config_mask_dsn(const char *dsn, char *out, size_t outlen);

/* Whether a header, query parameter or dsn keyword named name (len bytes) likely carries a
 * secret: it contains (case-insensitive) auth, token, secret, key, pass, cookie, session,
 * credential or signature. */
bool config_secret_name(const char *name, size_t len);

/* The usage text: the commands, then (after a blank line) the options. */
extern const char config_usage[];
extern const char config_usage_options[];
void config_print_usage(FILE *out);

/* Print the usage of one command ("init", "run", "retry-failed", "status", "check-config",
 * "help", "version") to out: its synopsis, what it does, its options and exit statuses
 * (for run, retry-failed and check-config config_usage_options). Returns false,
 * printing nothing, for any other name. */
bool config_help(FILE *out, const char *command);

/* Print every flag the command line takes, "--name" one per line, in table order (the
 * hidden `pgenrich help --list-flags`, which the documentation test reads). */
void config_list_flags(FILE *out);

#endif
