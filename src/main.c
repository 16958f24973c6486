/* main: the command line, the set-up before the loop (connections, schema, checkpoint),
 * the final summary and the exit status. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <curl/curl.h>
#include <ev.h>
#include <libpq-fe.h>

#include "config.h"
#include "db.h"
#include "jobfile.h"
#include "joblock.h"
#include "log.h"
#include "scheduler.h"
#include "token.h"

static DbNames names_of(const Config *c)
{
    DbNames n = {.source = c->source_table,
                 .key = c->key_column,
                 .target = c->target_table,
                 .failures = c->failures_table,
                 .checkpoints = c->checkpoint_table};
    return n;
}

static PGconn *connect_db(const Config *c, char *err, size_t errlen)
{
    const char *dsn = c->dsn ? c->dsn : getenv("DATABASE_URL");
    DbConnOpts opts = {.statement_timeout = c->statement_timeout,
                       .keepalive_idle = c->db_keepalive};
    return db_connect(dsn, &opts, err, errlen); /* sets client_encoding UTF8 */
}

static int cmd_init(const Config *c)
{
    char err[512];
    DbNames names = names_of(c);
    char *key_type = NULL;
    int rc = EXIT_RUNTIME;
    PGconn *conn = connect_db(c, err, sizeof err);
    if (conn == NULL)
        goto failed;
    if (!db_key_type(conn, &names, &key_type, NULL, err, sizeof err) ||
        !db_init_schema(conn, &names, key_type, err, sizeof err) ||
        !db_check_shape(conn, &names, key_type, err, sizeof err))
        goto failed;
    printf("pgenrich: schema ready: %s, %s, %s (id %s)\n", c->target_table, c->failures_table,
           c->checkpoint_table, key_type);
    rc = EXIT_OK;
    goto done;
failed:
    log_error("%s", err);
done:
    free(key_type);
    if (conn)
        PQfinish(conn);
    return rc;
}

static void print_summary(const SchedStats *st)
{
    printf("summary: ids_read=%lld rows_loaded=%lld failures=%lld retries=%lld requests=%lld "
           "elapsed_s=%.3f rows_per_s=%.1f\n",
           st->ids_read, st->rows_loaded, st->failures, st->retries, st->requests, st->elapsed,
           st->elapsed > 0 ? (double)st->rows_loaded / st->elapsed : 0.0);
    printf("failures:");
    for (int i = 0; i < SCHED_REASONS; i++)
        printf(" %s=%lld", sched_reason_names[i], st->by_reason[i]);
    printf(" kept_rows=%lld\n", st->kept);
    fflush(stdout);
}

/* The progress line's total: the IDs this run will read, estimated cheaply before the loop.
 * A keyset resume counts those after the checkpoint's key, an offset resume the rows past
 * its offset; either way the line shows this run's work. Not worth failing the run for:
 * an error leaves the total unknown. */
static long long estimate_ids(PGconn *src, const Config *c, const DbNames *names,
                              const char *position, long long start_offset)
{
    char err[512];
    long long n = -1;
    bool exact = false;
    const char *after = position && !c->paging_offset ? position : NULL;
    if (!db_estimate_ids(src, names, c->where, after, &n, &exact, err, sizeof err)) {
        log_warn("event=estimate_failed error=\"%s\" detail=\"the progress total is unknown\"",
                 err);
        return -1;
    }
    if (c->paging_offset && n >= 0)
        n = n > start_offset ? n - start_offset : 0;
    log_info("event=estimate ids=%lld exact=%s", n, exact ? "true" : "false");
    return n;
}

/* Every request in flight holds a socket, and a name being resolved a pair more: make sure
 * --concurrency fits in the open-file limit before the first request, raising the soft limit
 * toward the hard one, rather than meet EMFILE as a storm of failed connections later. */
static bool fit_open_files(int concurrency, char *err, size_t errlen)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)concurrency + 64, want = 3 * (rlim_t)concurrency + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return true; /* nothing to go by: let the run tell */
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rlim_t before = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        if (rl.rlim_cur > before && setrlimit(RLIMIT_NOFILE, &rl) == 0)
            log_info("event=nofile_raised from=%llu to=%llu concurrency=%d",
                     (unsigned long long)before, (unsigned long long)rl.rlim_cur, concurrency);
        else
            rl.rlim_cur = before;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        snprintf(err, errlen,
                 "--concurrency %d needs about %llu open files, but the open-file limit "
                 "(RLIMIT_NOFILE) is %llu and cannot be raised (hard limit %llu): raise it "
                 "(ulimit -n, systemd LimitNOFILE=) or lower --concurrency",
                 concurrency, (unsigned long long)need, (unsigned long long)rl.rlim_cur,
                 (unsigned long long)rl.rlim_max);
        return false;
    }
    return true;
}

static int cmd_run(const Config *c, JobFile *jf)
{
    char err[512];
    DbNames names = names_of(c);
    char *key_type = NULL, *key_order = NULL, *position = NULL, *paging = NULL, *since = NULL;
    TokenChain tokens = {0};
    PGconn *src = NULL, *sink = NULL;
    Scheduler *sched = NULL;
    struct ev_loop *loop = NULL;
    int rc = EXIT_RUNTIME;
    const char *want_paging = c->paging_offset ? "offset" : "keyset";
    bool retry_failed = c->cmd == CMD_RETRY_FAILED;

    if (jf->n_providers == 0 && !jobfile_default_chain(c->base_url, jf, err, sizeof err)) {
        rc = EXIT_CONFIG;
        goto failed;
    }

    if (!fit_open_files(c->concurrency, err, sizeof err)) {
        rc = EXIT_CONFIG;
        goto failed;
    }
    if (!token_chain_load(&tokens, c->token_file, jf->providers, jf->n_providers, err,
                          sizeof err)) {
        rc = EXIT_CONFIG;
        goto failed;
    }
    /* The sink's session holds the job's lock for the whole run, so it comes first: a
     * second runner must not even read (or, with --restart, reset) the checkpoint. */
    if ((sink = connect_db(c, err, sizeof err)) == NULL)
        goto failed;
    switch (joblock_take(sink, c->checkpoint_table, c->job, err, sizeof err)) {
    case JOBLOCK_TAKEN:
        break;
    case JOBLOCK_BUSY:
        rc = EXIT_LOCKED;
        goto failed;
    case JOBLOCK_ERROR:
        goto failed;
    }
    if ((src = connect_db(c, err, sizeof err)) == NULL)
        goto failed;
    if (!db_key_type(src, &names, &key_type, &key_order, err, sizeof err) ||
        !db_init_schema(src, &names, key_type, err, sizeof err) ||
        !db_check_shape(src, &names, key_type, err, sizeof err))
        goto failed;
    long long pending = 0;
    if (retry_failed) {
        if (!db_count_failures(src, &names, c->job, c->reason, &pending, err, sizeof err))
            goto failed;
        log_info("event=retry_failed job=\"%s\" reason=\"%s\" ids=%lld", c->job,
                 c->reason ? c->reason : "any", pending);
    }
    if (!retry_failed && c->restart && !db_reset_checkpoint(src, &names, c->job, err, sizeof err))
        goto failed;
    if (!retry_failed &&
        !db_load_checkpoint(src, &names, c->job, &position, &paging, &since, err, sizeof err))
        goto failed;
    if (paging && strcmp(paging, want_paging) != 0) {
        snprintf(err, sizeof err,
                 "job %s was checkpointed with --paging %s; rerun with the same paging or "
                 "with --restart",
                 c->job, paging);
        rc = EXIT_CONFIG;
        goto failed;
    }
    long long start_offset = 0;
    if (position && c->paging_offset) {
        char *end;
        errno = 0;
        start_offset = strtoll(position, &end, 10);
        if (errno || *end || start_offset < 0) {
            snprintf(err, sizeof err, "job %s has a malformed offset checkpoint", c->job);
            goto failed;
        }
    }
    if (!retry_failed && position)
        log_info("event=resume job=\"%s\" paging=%s after=\"%.80s\"", c->job, want_paging,
                 position);
    else if (!retry_failed)
        log_info("event=start job=\"%s\" paging=%s", c->job, want_paging);

    long long total = retry_failed ? pending : estimate_ids(src, c, &names, position, start_offset);

    loop = ev_default_loop(EVFLAG_AUTO);
    if (loop == NULL) {
        snprintf(err, sizeof err, "cannot initialise the event loop");
        goto failed;
    }
    SchedSetup setup = {
        .source_conn = src,
        .sink_conn = sink,
        .start_key = c->paging_offset ? NULL : position,
        .start_offset = start_offset,
        .key_order = key_order,
        /* A resume skips the IDs this pass has committed past the checkpoint (keyset only:
         * skipping rows would shift offsets). */
        .skip_since = c->paging_offset ? NULL : since,
        .tokens = tokens.tokens,
        .providers = jf->providers,
        .n_providers = jf->n_providers,
        .total_estimate = total,
    };
    src = sink = NULL; /* the scheduler owns them now */
    sched = scheduler_new(loop, c, &setup, err, sizeof err);
    if (sched == NULL)
        goto failed;
    rc = scheduler_run(sched);
    print_summary(scheduler_stats(sched));
    if (retry_failed) {
        long long left = 0;
        PGconn *count_conn = connect_db(c, err, sizeof err);
        if (count_conn &&
            db_count_failures(count_conn, &names, c->job, c->reason, &left, err, sizeof err))
            printf("ledger: job=%s remaining=%lld\n", c->job, left);
        if (count_conn)
            PQfinish(count_conn);
    }
    if (rc == EXIT_OK)
        log_info("event=finished job=\"%s\"", c->job);
    goto done;

failed:
    log_error("%s", err);
done:
    scheduler_free(sched);
    if (src)
        PQfinish(src);
    if (sink)
        PQfinish(sink);
    token_chain_free(&tokens);
    free(key_type);
    free(key_order);
    free(position);
    free(paging);
    free(since);
    return rc;
}

int main(int argc, char **argv)
{
    Config cfg;
    JobFile jf;
    char err[512];
    memset(&jf, 0, sizeof jf);
    if (!config_parse(&cfg, argc, argv, err, sizeof err)) {
        fprintf(stderr, "pgenrich: %s\n%s", err, config_usage);
        return EXIT_CONFIG;
    }
    if (cfg.config_file) {
        /* the file first, then the flags again on top of it: flags override */
        const char *path = cfg.config_file;
        config_defaults(&cfg);
        if (!jobfile_load(path, &cfg, &jf, err, sizeof err) ||
            !config_apply_args(&cfg, argc, argv, err, sizeof err) ||
            !config_validate(&cfg, jf.n_providers > 0, err, sizeof err)) {
            fprintf(stderr, "pgenrich: %s\n", err);
            jobfile_free(&jf);
            return EXIT_CONFIG;
        }
    }
    switch (cfg.cmd) {
    case CMD_HELP:
        fputs(config_usage, stdout);
        jobfile_free(&jf);
        return EXIT_OK;
    case CMD_VERSION:
        printf("pgenrich %s (libcurl %s)\n", PGENRICH_VERSION,
               curl_version_info(CURLVERSION_NOW)->version);
        jobfile_free(&jf);
        return EXIT_OK;
    default:
        break;
    }
    if (cfg.quiet)
        log_level = LOG_WARN;
    if (cfg.verbose)
        log_level = LOG_DEBUG;
    LogFormat log_format = LOG_FORMAT_LOGFMT;
    /* config_validate has checked both names */
    if (cfg.log_level != NULL && !log_level_parse(cfg.log_level, &log_level))
        log_level = LOG_INFO;
    if (cfg.log_format != NULL && !log_format_parse(cfg.log_format, &log_format))
        log_format = LOG_FORMAT_LOGFMT;
    if (!log_setup(log_format, cfg.log_file, err, sizeof err)) {
        fprintf(stderr, "pgenrich: %s\n", err);
        jobfile_free(&jf);
        return EXIT_CONFIG;
    }
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("cannot initialise libcurl");
        jobfile_free(&jf);
        return EXIT_RUNTIME;
    }
    int rc = cfg.cmd == CMD_INIT ? cmd_init(&cfg) : cmd_run(&cfg, &jf);
    curl_global_cleanup();
    jobfile_free(&jf);
    log_close();
    return rc;
}
