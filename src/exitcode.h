/* exitcode: the exit statuses of pgenrich, one per thing a scheduler (cron, systemd,
 * Kubernetes, Airflow) must tell apart. README.md "Exit codes" documents them. */
#ifndef PGENRICH_EXITCODE_H
#define PGENRICH_EXITCODE_H

enum {
    EXIT_OK = 0,       /* done: every ID settled, and the job's failure ledger is empty */
    EXIT_RUNTIME = 1,  /* an unexpected runtime error (a flush refused, network set-up, ...) */
    EXIT_CONFIG = 2,   /* bad command line or configuration: nothing was touched */
    EXIT_AUTH = 3,     /* the provider refused the credentials (401, or 403s on
                          --forbidden-threshold consecutive answers) */
    EXIT_LOCKED = 4,   /* another process is running the same job */
    EXIT_FAILURES = 5, /* done, but the job's failure ledger holds IDs (retry-failed) */
    EXIT_DB = 6,       /* the database was unreachable (at start, or past --db-retry-timeout) */
    EXIT_TEMPFAIL = 75 /* interrupted, resumable (sysexits' "try again later"): SIGINT or
                          SIGTERM, or the provider asked the whole job to wait longer than
                          --retry-after-max; settled work is committed */
};

#endif
