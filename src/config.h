/* config: the command line of `pgenrich init`, `run`, `retry-failed` and `status`, with defaults
 * and validation. Pure: no I/O beyond what it is given; strings point into argv or are static
 * defaults, so there is nothing to free. */
#ifndef PGENRICH_CONFIG_H
#define PGENRICH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include "compat.h"

typedef enum Command {
    CMD_NONE,
    CMD_INIT,
    CMD_RUN,
    CMD_RETRY_FAILED,
    CMD_STATUS,
    CMD_HELP,
    CMD_VERSION
} Command;

typedef struct Config {
    Command cmd;
    const char *dsn;              /* NULL: DATABASE_URL, else libpq's PG* variables */
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
    bool only_missing;         /* false: only IDs with no target row and no ledger entry */
    double refresh_older_than; /* seconds: 0 = off; else IDs whose row's fetched_at is older */
    bool explain;              /* false: print EXPLAIN of the first page query and exit */
    const char *runs_table;   /* run history: enrich_runs */
    const char *format;       /* status output: "text" (default) or "json" */
    int history;              /* status: how many of the last runs to show: 10 */
    const char *metrics_listen; /* HOST:PORT of the Prometheus endpoint; NULL: none */
} Config;

/* Fill c with the defaults. */
void config_defaults(Config *c);

/* Parse argv (argv[0] is the program, argv[1] the command) onto the defaults. Returns true
 * with c filled and validated, or false with a one-line reason in err. `--help` and
 * `--version` set c->cmd to CMD_HELP / CMD_VERSION and succeed. Uses getopt_long, so it
 * resets optind itself. */
bool config_parse(Config *c, int argc, char **argv, char *err, size_t errlen);

/* Apply argv onto c as it is (no defaults first): the flags that override a job file.
 * Same contract as config_parse otherwise. */
bool config_apply_args(Config *c, int argc, char **argv, char *err, size_t errlen);

/* Set one setting by its flag name without the dashes ("concurrency", "base-url", ...)
 * from text, with the same parsing and bounds as the flag. The string is stored as given
 * (the caller keeps it alive). Returns false with a reason in err for an unknown name or a
 * bad value; `command` settings (help, version, config) are unknown here. */
bool config_set(Config *c, const char *name, const char *value, char *err, size_t errlen);

/* Check the settings that depend on each other (required ones for run, bounds between two
 * settings). `have_providers`: a job file supplied the provider chain, so --base-url is not
 * required. */
bool config_validate(const Config *c, bool have_providers, char *err, size_t errlen);

/* Parse a duration: a whole number with one unit, s, m, h, d or w (seconds, minutes, hours,
 * days, weeks: "30d", "12h", "90m", "3600s"); a bare number is seconds. No sign, spaces or
 * fractions. Returns true with the seconds in *seconds, false (leaving it) otherwise or
 * past 100 years. */
bool config_parse_duration(const char *s, double *seconds) WUR;

/* The usage text. */
extern const char config_usage[];

#endif
