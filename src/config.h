/* config: the command line of `pgenrich init` and `pgenrich run`, with defaults and
 * validation. Pure: no I/O beyond what it is given; strings point into argv or are
 * static defaults, so there is nothing to free. */
#ifndef PGENRICH_CONFIG_H
#define PGENRICH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum Command {
    CMD_NONE,
    CMD_INIT,
    CMD_RUN,
    CMD_RETRY_FAILED,
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

    /* Progress and logs (src/progress.h, src/log.h). */
    double progress_interval; /* seconds between logfmt progress lines: 10; 0 = none */
    const char *log_level;    /* NULL: info (--quiet: warn, --verbose: debug) */
    const char *log_format;   /* NULL: logfmt; or json */
    const char *log_file;     /* NULL: stderr */
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

/* The usage text. */
extern const char config_usage[];

#endif
