/* main: the command line, the set-up before the loop (connections, schema, checkpoint),
 * the final summary and the exit status. */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <ev.h>
#include <libpq-fe.h>

#include "buf.h"
#include "config.h"
#include "connerr.h"
#include "db.h"
#include "jobfile.h"
#include "joblock.h"
#include "lease.h"
#include "workers.h"
#include "ranges.h"
#include "log.h"
#include "runs.h"
#include "metrics.h"
#include "metrics_http.h"
#include "scheduler.h"
#include "source.h"
#include "status.h"
#include "token.h"

extern char **environ;

static DbNames names_of(const Config *c)
{
    DbNames n = {.source = c->source_table,
                 .key = c->key_column,
                 .target = c->target_table,
                 .failures = c->failures_table,
                 .checkpoints = c->checkpoint_table,
                 .runs = c->runs_table,
                 .ranges = c->ranges_table,
                 .workers = c->workers_table};
    return n;
}

/* SIGINT/SIGTERM outside the loop, whose ev_signal watchers handle them while it runs.
 * Before it (connecting, waiting up to 3 s for the job's lock, checking the tables, a slow
 * estimate) nothing has been looked up: leave at once, resumable, rather than die of the
 * signal. After it everything settled is committed and only the summary and the run's
 * record are left: finish them. */
static volatile sig_atomic_t loop_done;

static void on_signal_outside_loop(int sig)
{
    (void)sig;
    if (loop_done)
        return;
    static const char msg[] = "level=warn event=interrupted phase=start-up detail=\"before any "
                              "lookup; nothing to commit: rerun to start\"\n";
    ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)n;
    _exit(EXIT_TEMPFAIL);
}

static void outside_loop_signals(bool after_loop)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal_outside_loop;
    sigemptyset(&sa.sa_mask);
    loop_done = after_loop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static const char *dsn_of(const Config *c)
{
    return c->dsn ? c->dsn : getenv("DATABASE_URL");
}

static DbConnOpts db_opts_of(const Config *c)
{
    DbConnOpts opts = {.statement_timeout = c->statement_timeout,
                       .keepalive_idle = c->db_keepalive};
    return opts;
}

static PGconn *connect_db(const Config *c, char *err, size_t errlen)
{
    DbConnOpts opts = db_opts_of(c);
    return db_connect(dsn_of(c), &opts, err, errlen); /* sets client_encoding UTF8 */
}

static int cmd_init(const Config *c)
{
    char err[512];
    DbNames names = names_of(c);
    char *key_type = NULL;
    int rc = EXIT_RUNTIME;
    PGconn *conn = connect_db(c, err, sizeof err);
    if (conn == NULL) {
        rc = EXIT_DB;
        goto failed;
    }
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

static int cmd_status(const Config *c)
{
    char err[512];
    PGconn *conn = connect_db(c, err, sizeof err);
    if (conn == NULL) {
        log_error("%s", err);
        return EXIT_DB;
    }
    StatusOpts so = {.names = names_of(c),
                     .job = c->job,
                     .where = c->where,
                     .json = c->format != NULL && strcmp(c->format, "json") == 0,
                     .history = c->history};
    int rc = status_show(conn, &so, stdout, err, sizeof err);
    if (rc != EXIT_OK)
        log_error("%s", err);
    PQfinish(conn);
    return rc;
}

/* Write the run's row before the loop: a run killed at any point after this shows in the
 * history. On the lock's session, so that the row names the backend holding it. */
static bool begin_run(const Config *c, PGconn *lock_conn, const char *position, long long *run_id,
                      char *err, size_t errlen)
{
    char host[256] = "";
    DbNames names = names_of(c);
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    DbRunStart rs = {.job = c->job,
                     .command = c->cmd == CMD_RETRY_FAILED ? "retry-failed" : "run",
                     .host = host,
                     .pid = (long)getpid(),
                     .version = PGENRICH_VERSION,
                     .checkpoint_from = position};
    if (!db_run_begin(lock_conn, &names, &rs, run_id, err, errlen))
        return false;
    log_debug("event=run_recorded job=\"%s\" run_id=%lld", c->job, *run_id);
    return true;
}

/* Close the run's row. The scheduler has closed its connections by now: a short one of
 * its own. A failure leaves the row without an end (status shows it as killed): worth a
 * warning, not a different exit status. */
static void end_run(const Config *c, long long run_id, int rc, const SchedStats *st)
{
    char err[512];
    DbNames names = names_of(c);
    PGconn *conn = connect_db(c, err, sizeof err);
    if (conn == NULL || !db_run_end(conn, &names, run_id, rc, runs_state_of_exit(rc),
                                    st ? st->requests : 0, st ? st->retries : 0, err, sizeof err))
        log_warn("event=run_record_failed run_id=%lld error=\"%s\"", run_id, err);
    if (conn)
        PQfinish(conn);
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

/* --explain: the plan of the first page query, from the SourceOpts scheduler_new builds. */
static int explain_page(const Config *c, PGconn *conn, const SchedSetup *setup)
{
    char err[512];
    SourceOpts so = {.table = c->source_table,
                     .key = c->key_column,
                     .where = c->where,
                     .page_size = c->page_size,
                     .paging = c->paging_offset ? PAGING_OFFSET : PAGING_KEYSET,
                     .start_key = setup->start_key,
                     .start_offset = setup->start_offset,
                     .skip_since = setup->skip_since,
                     .only_missing = c->only_missing,
                     .refresh_older_than = c->refresh_older_than,
                     .end_key = setup->end_key,
                     .target_table = c->target_table,
                     .from_ledger = c->cmd == CMD_RETRY_FAILED,
                     .failures_table = c->failures_table,
                     .job = c->job,
                     .reason = c->reason};
    char *plan = source_explain(conn, &so, err, sizeof err);
    if (plan == NULL) {
        log_error("%s", err);
        return EXIT_RUNTIME;
    }
    fputs(plan, stdout);
    free(plan);
    return EXIT_OK;
}

/* A TLS file the provider names must be there and readable (a directory for capath):
 * found now, the message names the key; found by libcurl, it would be one request's
 * error. */
static bool tls_file_ok(const char *prov, const char *key, const char *path, bool dir, char *err,
                        size_t errlen)
{
    struct stat st;
    if (path == NULL)
        return true;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        snprintf(err, errlen, "provider %s: %s %s: %s", prov, key, path, strerror(errno));
        return false;
    }
    if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "provider %s: %s %s: not a %s", prov, key, path,
                 dir ? "directory" : "regular file");
        return false;
    }
    return true;
}

/* Whether the PEM file at path holds a private key ("-----BEGIN ... PRIVATE KEY-----"):
 * a client certificate given without --client-key carries its key, which libcurl then
 * reads from it. Only the first 1 MiB is looked at; an unreadable file holds none. */
static bool pem_has_private_key(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool found = false;
    char line[256];
    for (size_t seen = 0; !found && seen < 1024 * 1024 && fgets(line, sizeof line, f);) {
        seen += strlen(line);
        found = strncmp(line, "-----BEGIN ", 11) == 0 && strstr(line, "PRIVATE KEY-----");
    }
    fclose(f);
    return found;
}

/* Before anything connects, what can be told about each provider's connection: its URL
 * parses (with a sample ID), its TLS files are usable, a client key is private (libpq's
 * rule for sslkey), and --insecure is loud and never sends a token off the machine. */
/* A host as curl parsed it: an IP literal in brackets, or a name of letters, digits, '-',
 * '.' and '_' (bytes past ASCII pass: an IDN). Returns the first character that no host
 * name has, or 0. curl takes "exa%mple.com" and then reports only that it does not
 * resolve. */
static int host_name_bad(const char *h)
{
    if (h == NULL || h[0] == '[')
        return 0; /* curl has checked the IPv6 literal */
    for (const unsigned char *s = (const unsigned char *)h; *s; s++)
        if (*s < 0x80 && !isalnum(*s) && *s != '-' && *s != '.' && *s != '_')
            return *s;
    return 0;
}

static bool check_connectivity(const Config *c, const JobFile *jf, const char *const *tokens,
                               char *err, size_t errlen)
{
    Buf url;
    bool ok = false;
    buf_init(&url, 64 * 1024);
    for (size_t i = 0; i < jf->n_providers; i++) {
        const ProviderConf *p = &jf->providers[i];
        ProviderTls t;
        char host[256], why[200];
        jobfile_effective_tls(p, c, &t);
        buf_reset(&url);
        CURLU *u = curl_url();
        CURLUcode uc = CURLUE_OUT_OF_MEMORY;
        char *uhost = NULL;
        if (u != NULL && provider_build_url(&url, p->url, "1", 1) &&
            (uc = curl_url_set(u, CURLUPART_URL, url.data, 0)) == CURLUE_OK)
            uc = curl_url_get(u, CURLUPART_HOST, &uhost, 0);
        curl_url_cleanup(u);
        char why_host[320];
        int ch = uc == CURLUE_OK ? host_name_bad(uhost) : 0;
        if (ch != 0)
            snprintf(why_host, sizeof why_host,
                     "the host \"%.256s\" holds '%c', which no host name has", uhost, ch);
        const char *bad = uc != CURLUE_OK                                ? curl_url_strerror(uc)
                          : !connerr_url_host(p->url, host, sizeof host) ? "no host"
                          : ch != 0                                      ? why_host
                                                                         : NULL;
        curl_free(uhost);
        if (bad != NULL) {
            snprintf(err, errlen,
                     "provider %s: the URL is malformed: %s (hint: check url = of [provider %s] "
                     "or --base-url)",
                     p->name, bad, p->name);
            goto done;
        }
        if (!tls_file_ok(p->name, "cacert", t.cacert, false, err, errlen) ||
            !tls_file_ok(p->name, "capath", t.capath, true, err, errlen) ||
            !tls_file_ok(p->name, "client_cert", t.client_cert, false, err, errlen) ||
            !tls_file_ok(p->name, "client_key", t.client_key, false, err, errlen))
            goto done;
        if (t.client_key && !t.client_cert) {
            snprintf(err, errlen,
                     "provider %s: client_key without client_cert (hint: give both, "
                     "--client-cert and --client-key or client_cert = and client_key =)",
                     p->name);
            goto done;
        }
        /* the key's file: client_key, or client_cert when the key is in it */
        const char *key_file = t.client_key;
        if (key_file == NULL && t.client_cert && pem_has_private_key(t.client_cert))
            key_file = t.client_cert;
        struct stat st;
        if (key_file && stat(key_file, &st) == 0 &&
            !connerr_key_mode_ok(st.st_mode, st.st_uid, why, sizeof why)) {
            snprintf(err, errlen, "provider %s: the private key %s%s %s", p->name, key_file,
                     key_file == t.client_key ? "" : " (in client_cert)", why);
            goto done;
        }
        bool token = tokens && tokens[i] && tokens[i][0];
        if (t.insecure && token && !connerr_host_loopback(host)) {
            snprintf(err, errlen,
                     "provider %s: insecure (no certificate verification) with a token is "
                     "refused for %s, which is not loopback: anyone on the way could take the "
                     "token (hint: give the CA with --cacert or cacert = in [provider %s])",
                     p->name, host, p->name);
            goto done;
        }
        if (t.insecure)
            log_warn("event=tls_insecure provider=%s host=%s detail=\"TLS CERTIFICATES ARE NOT "
                     "VERIFIED: anyone on the way can read and change the answers; for tests "
                     "only\"",
                     p->name, host);
    }
    ok = true;
done:
    buf_free(&url);
    return ok;
}

/* The metrics address's shape, named the way the setting was given (run binds it later). */
static bool check_listen(const Config *c, char *err, size_t errlen)
{
    char why[200];
    if (c->metrics_listen == NULL || metrics_http_check(c->metrics_listen, why, sizeof why))
        return true;
    config_blame(c, "metrics-listen", err, errlen, "%s", why);
    return false;
}

/* The log file's directory and permissions, for check-config (run opens the file and
 * names the setting the same way), named the way the setting was given. */
static bool check_log_file(const Config *c, char *err, size_t errlen)
{
    if (c->log_file == NULL || log_file_check(c->log_file))
        return true;
    config_blame(c, "log-file", err, errlen, "cannot open the log file %s: %s", c->log_file,
                 strerror(errno));
    return false;
}

/* The providers' tokens; an unreadable global token file that a job file or the
 * environment named is blamed on that setting (FILE:LINE: token-file: ...). */
static bool load_tokens(TokenChain *tc, const Config *c, const JobFile *jf, char *err,
                        size_t errlen)
{
    if (token_chain_load(tc, c->token_file, jf->providers, jf->n_providers, err, errlen))
        return true;
    int i = config_find("token-file");
    if (tc->global_failed && c->token_file != NULL && i >= 0 &&
        (c->origin[i] == CONFIG_FROM_FILE || c->origin[i] == CONFIG_FROM_ENV)) {
        char why[400];
        snprintf(why, sizeof why, "%s", err);
        config_blame(c, "token-file", err, errlen, "%s", why);
    }
    return false;
}

/* What a run checks and sets up before it touches the database: the provider chain, the
 * open-file limit, the metrics listener (a port in use is a configuration error), the tokens
 * and each provider's connection settings. False: a configuration error, in err. */
static bool prepare_run(const Config *c, JobFile *jf, TokenChain *tokens, MetricsHttp **metrics,
                        char *err, size_t errlen)
{
    return (jf->n_providers > 0 || jobfile_default_chain(c->base_url, jf, err, errlen)) &&
           fit_open_files(c->concurrency, err, errlen) && check_listen(c, err, errlen) &&
           (c->metrics_listen == NULL ||
            (*metrics = metrics_http_open(c->metrics_listen, err, errlen)) != NULL) &&
           load_tokens(tokens, c, jf, err, errlen) &&
           check_connectivity(c, jf, tokens->tokens, err, errlen);
}

static int cmd_run(const Config *c, JobFile *jf)
{
    char err[512];
    DbNames names = names_of(c);
    char *key_type = NULL, *key_order = NULL, *position = NULL, *paging = NULL, *since = NULL;
    TokenChain tokens = {0};
    PGconn *src = NULL, *sink = NULL;
    Scheduler *sched = NULL;
    MetricsHttp *metrics = NULL;
    struct ev_loop *loop = NULL;
    int rc = EXIT_RUNTIME;
    long long run_id = 0;
    const char *want_paging = c->paging_offset ? "offset" : "keyset";
    bool retry_failed = c->cmd == CMD_RETRY_FAILED, reopened = false;
    /* An incremental pass runs over the whole key space (--refresh-older-than alone: up to
     * the checkpoint, see below); the anti-joins skip what it, or a crashed run of it, has
     * done, so it needs no position to resume. */
    bool incremental = c->only_missing || c->refresh_older_than > 0;

    if (!prepare_run(c, jf, &tokens, &metrics, err, sizeof err)) {
        rc = EXIT_CONFIG;
        goto failed;
    }
    /* The sink's session holds the job's lock for the whole run, so it comes first: a
     * second runner must not even read (or, with --restart, reset) the checkpoint. */
    if ((sink = connect_db(c, err, sizeof err)) == NULL) {
        rc = EXIT_DB;
        goto failed;
    }
    switch (c->explain ? JOBLOCK_TAKEN : /* it changes nothing */
                joblock_take(sink, c->checkpoint_table, c->job, err, sizeof err)) {
    case JOBLOCK_TAKEN:
        break;
    case JOBLOCK_BUSY:
        rc = EXIT_LOCKED;
        goto failed;
    case JOBLOCK_ERROR:
        goto failed;
    }
    if ((src = connect_db(c, err, sizeof err)) == NULL) {
        rc = EXIT_DB;
        goto failed;
    }
    if (!db_key_type(src, &names, &key_type, &key_order, err, sizeof err) ||
        !db_init_schema(src, &names, key_type, err, sizeof err) ||
        !db_check_shape(src, &names, key_type, err, sizeof err))
        goto failed;
    /* Shared workers hold the job's lock in shared mode, which the lock above excludes; a
     * worker whose session is gone but whose lease still runs may yet be writing. */
    long long live = 0;
    if (!retry_failed && !lease_live(src, &names, c->job, &live, err, sizeof err))
        goto failed;
    if (live > 0) {
        snprintf(err, sizeof err,
                 "job \"%s\" is already running with --shared workers (%lld range%s leased "
                 "with a live lease in %s): a plain run must wait for them to end; or run "
                 "this one with --shared too",
                 c->job, live, live == 1 ? "" : "s", c->ranges_table);
        rc = EXIT_LOCKED;
        goto failed;
    }
    long long pending = 0;
    if (retry_failed) {
        if (!db_count_failures(src, &names, c->job, c->reason, &pending, err, sizeof err))
            goto failed;
        log_info("event=retry_failed job=\"%s\" reason=\"%s\" ids=%lld", c->job,
                 c->reason ? c->reason : "any", pending);
    }
    if (!retry_failed && c->restart && !c->explain &&
        !db_reset_checkpoint(src, &names, c->job, err, sizeof err))
        goto failed;
    if (!retry_failed && !(c->restart && c->explain) &&
        !db_load_checkpoint(src, &names, c->job, &position, &paging, &since, err, sizeof err))
        goto failed;
    /* Stale rows past the checkpoint are not the job's yet, and a missing ID there must not
     * be passed over: --refresh-older-than alone stops at the position, so that the sink,
     * which moves it forward to where the pass got, never moves it past an unread ID. */
    if (c->refresh_older_than > 0 && !c->only_missing && !c->paging_offset && position == NULL) {
        snprintf(err, sizeof err,
                 "--refresh-older-than refreshes the IDs job %s has covered, and it has no "
                 "checkpoint: run it first, or add --only-missing",
                 c->job);
        rc = EXIT_CONFIG;
        goto failed;
    }
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
    /* A finished keyset job goes on after its position: the IDs added since are read. */
    if (!retry_failed && !c->explain && position &&
        !db_reopen_checkpoint(src, &names, c->job, &reopened, err, sizeof err))
        goto failed;
    if (!retry_failed && incremental)
        log_info("event=start job=\"%s\" paging=keyset only_missing=%s refresh_older_than_s=%.0f",
                 c->job, c->only_missing ? "true" : "false", c->refresh_older_than);
    else if (!retry_failed && position)
        log_info("event=%s job=\"%s\" paging=%s after=\"%.80s\"", reopened ? "continue" : "resume",
                 c->job, want_paging, position);
    else if (!retry_failed)
        log_info("event=start job=\"%s\" paging=%s", c->job, want_paging);

    /* An incremental pass reads an unknown share of the source: no total until its end. */
    long long total = retry_failed ? pending
                      : c->only_missing || c->refresh_older_than > 0
                          ? -1
                          : estimate_ids(src, c, &names, position, start_offset);
    if (!begin_run(c, sink, retry_failed ? NULL : position, &run_id, err, sizeof err))
        goto failed;

    loop = ev_default_loop(EVFLAG_AUTO);
    if (loop == NULL) {
        snprintf(err, sizeof err, "cannot initialise the event loop");
        goto failed;
    }
    SchedSetup setup = {
        .source_conn = src,
        .sink_conn = sink,
        .start_key = c->paging_offset || incremental ? NULL : position,
        .start_offset = start_offset,
        .key_order = key_order,
        /* A resume skips the IDs this pass has committed past the checkpoint (keyset only:
         * skipping rows would shift offsets). */
        .skip_since = c->paging_offset || incremental ? NULL : since,
        .end_key = incremental && !c->only_missing ? position : NULL,
        .tokens = tokens.tokens,
        .providers = jf->providers,
        .n_providers = jf->n_providers,
        .conninfo = dsn_of(c),
        .db_opts = db_opts_of(c),
        .run_id = run_id,
        .total_estimate = total,
    };
    if (c->explain) {
        rc = explain_page(c, src, &setup);
        goto done;
    }
    src = sink = NULL; /* the scheduler owns them now */
    sched = scheduler_new(loop, c, &setup, err, sizeof err);
    if (sched == NULL)
        goto failed;
    if (metrics)
        metrics_http_start(metrics, loop, scheduler_metrics, sched);
    rc = scheduler_run(sched);
    outside_loop_signals(true); /* the loop's watchers are gone: finish what is left */
    metrics_http_stop(metrics);
    const SchedStats *st = scheduler_stats(sched);
    print_summary(st);
    if (rc == EXIT_OK) {
        /* Done, but with IDs in the ledger: a code of its own, so that a scheduler can
         * alert on it or run retry-failed. Counted afresh: earlier runs' entries count, and
         * this run's loaded rows may have cleared some. */
        long long left = -1;
        PGconn *count_conn = connect_db(c, err, sizeof err);
        if (count_conn == NULL ||
            !db_count_failures(count_conn, &names, c->job, retry_failed ? c->reason : NULL, &left,
                               err, sizeof err)) {
            log_warn("event=ledger_count_failed error=\"%s\"", err);
            left = st->failures; /* what this run recorded, at least */
        } else if (retry_failed) {
            printf("ledger: job=%s remaining=%lld\n", c->job, left);
        }
        if (count_conn)
            PQfinish(count_conn);
        if (left > 0)
            rc = EXIT_FAILURES;
        log_info("event=finished job=\"%s\" ledger=%lld", c->job, left);
    } else if (rc == EXIT_TEMPFAIL || rc == EXIT_DB) {
        log_info("event=resumable job=\"%s\" detail=\"settled work is committed; run the "
                 "same command again to resume from the checkpoint\"",
                 c->job);
    }
    goto done;

failed:
    log_error("%s", err);
done:
    metrics_http_free(metrics); /* before the scheduler its callback reads */
    if (run_id > 0)
        end_run(c, run_id, rc, sched ? scheduler_stats(sched) : NULL);
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

/* ---------------------------------------------------------------- --shared */

/* Between ranges a signal asks the worker to stop: no range is being run then, so there is
 * nothing to commit; the summary and the run's record are still written. */
static volatile sig_atomic_t shared_stop;

static void on_signal_between_ranges(int sig)
{
    (void)sig;
    shared_stop = 1;
}

static void between_ranges_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal_between_ranges;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The heartbeat saw the range taken over: stop working on it at once. */
static void on_lease_lost(void *ud)
{
    scheduler_abandon(ud, EXIT_TEMPFAIL);
}

static void add_stats(SchedStats *sum, const SchedStats *st)
{
    sum->ids_read += st->ids_read;
    sum->rows_loaded += st->rows_loaded;
    sum->failures += st->failures;
    for (int i = 0; i < SCHED_REASONS; i++)
        sum->by_reason[i] += st->by_reason[i];
    sum->kept += st->kept;
    sum->retries += st->retries;
    sum->requests += st->requests;
}

static uint32_t random32(void)
{
    uint32_t v = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(&v, sizeof v, 1, f) != 1)
        v = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
    if (f)
        fclose(f);
    return v;
}

/* The lease session: holds the job's lock in shared mode (a plain run holds it exclusively),
 * makes the split, claims, renews and releases. */
static PGconn *lease_session(const Config *c, int *rc, char *err, size_t errlen)
{
    PGconn *conn = connect_db(c, err, errlen);
    if (conn == NULL) {
        *rc = EXIT_DB;
        return NULL;
    }
    switch (joblock_take_shared(conn, c->checkpoint_table, c->job, err, errlen)) {
    case JOBLOCK_TAKEN:
        return conn;
    case JOBLOCK_BUSY:
        *rc = EXIT_LOCKED;
        break;
    case JOBLOCK_ERROR:
        *rc = EXIT_DB;
        break;
    }
    PQfinish(conn);
    return NULL;
}

/* A shared worker's scrape: the scheduler's figures and the worker's identity. */
typedef struct SharedScrape {
    Scheduler *sched;
    MetricsWorker who;
} SharedScrape;

static bool shared_metrics(void *ud, Buf *out)
{
    SharedScrape *s = ud;
    return scheduler_metrics(s->sched, out) && metrics_render_worker(&s->who, out);
}

/* Run one claimed range like a job of its own: keyset paging from its checkpoint (or its
 * lower bound) up to its upper bound, the flushes fenced, the heartbeat on the loop. Returns
 * the scheduler's exit status; *lost: the range was taken over meanwhile. */
static int run_range(const Config *c, JobFile *jf, const TokenChain *tokens, MetricsHttp *metrics,
                     struct ev_loop *loop, PGconn *lease_conn, Workers *workers,
                     const char *key_order, long long run_id, const LeaseRange *r,
                     const MetricsWorker *who, SchedStats *sum, bool *lost)
{
    char err[512];
    DbNames names = names_of(c);
    int rc = EXIT_RUNTIME;
    PGconn *src = NULL, *sink = NULL;
    Scheduler *sched = NULL;
    LeaseBeat *beat = NULL;
    *lost = false;
    if ((sink = connect_db(c, err, sizeof err)) == NULL ||
        (src = connect_db(c, err, sizeof err)) == NULL) {
        rc = EXIT_DB;
        goto failed;
    }
    SchedSetup setup = {
        .source_conn = src,
        .sink_conn = sink,
        .start_key = r->position ? r->position : r->lower,
        .key_order = key_order,
        /* Claimed before (taken over, or given back): skip what the range's pass has
         * committed past its checkpoint, as a resume does. */
        .skip_since = r->fence > 1 ? r->started_at : NULL,
        .end_key = r->upper,
        .tokens = tokens->tokens,
        .providers = jf->providers,
        .n_providers = jf->n_providers,
        .conninfo = dsn_of(c),
        .db_opts = db_opts_of(c),
        .run_id = run_id,
        .total_estimate = -1,
        .range_mode = true,
        .range_no = r->range_no,
        .fence = r->fence,
        .workers = workers,
    };
    src = sink = NULL; /* the scheduler owns them now */
    sched = scheduler_new(loop, c, &setup, err, sizeof err);
    if (sched == NULL)
        goto failed;
    beat =
        lease_beat_new(loop, lease_conn, &names, c->job, r, c->lease_seconds, on_lease_lost, sched);
    if (beat == NULL) {
        snprintf(err, sizeof err, "cannot start the heartbeat");
        goto failed;
    }
    workers_start(workers, loop, scheduler_share_report, scheduler_share_apply, sched);
    SharedScrape scrape = {.sched = sched, .who = *who};
    if (metrics)
        metrics_http_start(metrics, loop, shared_metrics, &scrape);
    rc = scheduler_run(sched);
    metrics_http_stop(metrics);
    workers_stop(workers);
    *lost = lease_beat_lost(beat);
    lease_beat_free(beat);
    add_stats(sum, scheduler_stats(sched));
    scheduler_free(sched);
    return rc;
failed:
    log_error("%s", err);
    workers_stop(workers);
    lease_beat_free(beat);
    scheduler_free(sched);
    if (src)
        PQfinish(src);
    if (sink)
        PQfinish(sink);
    return rc;
}

/* run --shared: one of the job's workers. Claims ranges one after the other and runs each;
 * waits while other workers hold the ranges left (one of them may die: its lease expires
 * and the range is taken over here), and ends when every range is done. */
static int cmd_run_shared(const Config *c, JobFile *jf)
{
    char err[512], host[256] = "", owner[160];
    DbNames names = names_of(c);
    char *key_type = NULL, *key_order = NULL;
    TokenChain tokens = {0};
    PGconn *lease_conn = NULL, *wconn = NULL;
    Workers *workers = NULL;
    MetricsHttp *metrics = NULL;
    struct ev_loop *loop = NULL;
    int rc = EXIT_RUNTIME, made = 0, ranges_run = 0;
    long long run_id = 0;
    SchedStats sum;
    memset(&sum, 0, sizeof sum);
    double t0 = 0;

    if (!prepare_run(c, jf, &tokens, &metrics, err, sizeof err)) {
        rc = EXIT_CONFIG;
        goto failed;
    }
    if ((lease_conn = lease_session(c, &rc, err, sizeof err)) == NULL)
        goto failed;
    if (!db_key_type(lease_conn, &names, &key_type, &key_order, err, sizeof err) ||
        !db_init_schema(lease_conn, &names, key_type, err, sizeof err) ||
        !db_check_shape(lease_conn, &names, key_type, err, sizeof err) ||
        !lease_ensure_split(lease_conn, &names, c->job, c->ranges, key_order, &made, err,
                            sizeof err))
        goto failed;
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    ranges_owner_id(owner, sizeof owner, host, (long)getpid(), random32());
    /* The worker's row (README "One rate for all"), on a connection of its own: its beat
     * runs from the loop once a second, whatever the lease's heartbeat is doing. */
    if ((wconn = connect_db(c, err, sizeof err)) == NULL) {
        rc = EXIT_DB;
        goto failed;
    }
    workers = workers_new(wconn, &names, c->job, owner, host, (long)getpid(), c->lease_seconds);
    wconn = NULL; /* workers owns it now */
    if (workers == NULL) {
        snprintf(err, sizeof err, "out of memory");
        goto failed;
    }
    if (!workers_register(workers, err, sizeof err)) {
        rc = EXIT_DB;
        goto failed;
    }
    log_info("event=worker_start job=\"%s\" owner=\"%s\" ranges_made=%d lease_s=%g "
             "workers_live=%d",
             c->job, owner, made, c->lease_seconds, workers_live(workers));
    if (!begin_run(c, lease_conn, NULL, &run_id, err, sizeof err))
        goto failed;
    loop = ev_default_loop(EVFLAG_AUTO);
    if (loop == NULL) {
        snprintf(err, sizeof err, "cannot initialise the event loop");
        goto failed;
    }
    t0 = ev_time();
    bool waiting = false;
    double poll = c->lease_seconds / 3 < 2 ? c->lease_seconds / 3 : 2;
    between_ranges_signals();
    for (;;) {
        if (shared_stop) {
            log_warn("event=interrupted phase=between_ranges detail=\"nothing to commit\"");
            rc = EXIT_TEMPFAIL;
            break;
        }
        if (PQstatus(lease_conn) != CONNECTION_OK) { /* the database went away meanwhile */
            PQfinish(lease_conn);
            if ((lease_conn = lease_session(c, &rc, err, sizeof err)) == NULL)
                goto failed;
        }
        LeaseRange r;
        LeaseClaim got =
            lease_claim(lease_conn, &names, c->job, owner, c->lease_seconds, &r, err, sizeof err);
        if (got == LEASE_ERROR) {
            rc = EXIT_DB;
            goto failed;
        }
        if (got == LEASE_ALL_DONE) {
            rc = EXIT_OK;
            break;
        }
        if (got == LEASE_WAIT) {
            if (!waiting)
                log_info("event=waiting job=\"%s\" detail=\"the ranges left are leased by "
                         "other workers; taking over any whose lease expires\"",
                         c->job);
            waiting = true;
            struct timespec ts = {.tv_sec = (time_t)poll,
                                  .tv_nsec = (long)((poll - (double)(time_t)poll) * 1e9)};
            nanosleep(&ts, NULL); /* a signal cuts it short */
            continue;
        }
        waiting = false;
        ranges_run++;
        log_info("event=range_claimed job=\"%s\" range=%d fence=%lld after=\"%.80s\" "
                 "upto=\"%.80s\" position=\"%.80s\" taken_over_from=\"%s\"",
                 c->job, r.range_no, r.fence, r.lower ? r.lower : "", r.upper ? r.upper : "",
                 r.position ? r.position : "", r.prev_owner ? r.prev_owner : "");
        bool lost = false, ours = false, done = false;
        MetricsWorker who = {.job = c->job,
                             .worker = owner,
                             .host = host,
                             .range_no = r.range_no,
                             .fence = r.fence,
                             .ranges_claimed = ranges_run};
        int rrc = run_range(c, jf, &tokens, metrics, loop, lease_conn, workers, key_order, run_id,
                            &r, &who, &sum, &lost);
        between_ranges_signals(); /* the loop's signal watchers are gone */
        if (!lost && PQstatus(lease_conn) == CONNECTION_OK &&
            lease_check(lease_conn, &names, c->job, &r, &ours, &done, err, sizeof err))
            lost = !ours;
        if (lost) {
            log_warn("event=range_abandoned job=\"%s\" range=%d fence=%lld detail=\"taken "
                     "over by another worker; nothing more was committed to it from here\"",
                     c->job, r.range_no, r.fence);
            lease_range_clear(&r);
            continue;
        }
        if (rrc == EXIT_OK && done) {
            log_info("event=range_done job=\"%s\" range=%d fence=%lld", c->job, r.range_no,
                     r.fence);
            lease_range_clear(&r);
            continue;
        }
        /* Stopped (a signal, a fault): give the range back at once rather than after its
         * lease. */
        if (rrc == EXIT_OK)
            rrc = EXIT_RUNTIME; /* ended without its last flush: should not happen */
        if (PQstatus(lease_conn) == CONNECTION_OK &&
            !lease_release(lease_conn, &names, c->job, &r, err, sizeof err))
            log_warn("event=range_release_failed range=%d error=\"%s\"", r.range_no, err);
        lease_range_clear(&r);
        rc = rrc;
        break;
    }
    outside_loop_signals(true);
    sum.elapsed = ev_time() - t0;
    print_summary(&sum);
    if (rc == EXIT_OK) {
        long long left = -1;
        if (!db_count_failures(lease_conn, &names, c->job, NULL, &left, err, sizeof err)) {
            log_warn("event=ledger_count_failed error=\"%s\"", err);
            left = sum.failures;
        }
        if (left > 0)
            rc = EXIT_FAILURES;
        log_info("event=finished job=\"%s\" ranges_run=%d ledger=%lld detail=\"every range of "
                 "the job is done\"",
                 c->job, ranges_run, left);
    } else if (rc == EXIT_TEMPFAIL || rc == EXIT_DB) {
        log_info("event=resumable job=\"%s\" detail=\"settled work is committed; the job's "
                 "workers (this command again) go on from the ranges' checkpoints\"",
                 c->job);
    }
    goto done;
failed:
    log_error("%s", err);
done:
    workers_free(workers, true); /* its row goes: the others take its share at once */
    metrics_http_free(metrics);
    if (run_id > 0)
        end_run(c, run_id, rc, &sum);
    if (lease_conn)
        PQfinish(lease_conn);
    token_chain_free(&tokens);
    free(key_type);
    free(key_order);
    return rc;
}

/* check-config: what run would load and check before it connects, printed; nothing is
 * connected. */
static int cmd_check_config(const Config *c, JobFile *jf)
{
    char err[512];
    TokenChain tokens = {0};
    bool ok = (jf->n_providers > 0 || jobfile_default_chain(c->base_url, jf, err, sizeof err)) &&
              check_listen(c, err, sizeof err) && check_log_file(c, err, sizeof err) &&
              load_tokens(&tokens, c, jf, err, sizeof err) &&
              check_connectivity(c, jf, tokens.tokens, err, sizeof err);
    token_chain_free(&tokens);
    if (!ok) {
        fprintf(stderr, "%s\n", err);
        return EXIT_CONFIG;
    }
    for (char **e = environ; *e; e++) {
        size_t n = strcspn(*e, "=");
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)n, *e);
        if (config_env_unknown(name))
            fprintf(stderr, "warning: %s is not a pgenrich setting (ignored)\n", name);
    }
    config_dump(c, stdout);
    jobfile_dump(jf, stdout);
    return EXIT_OK;
}

/* pgenrich help [COMMAND | --list-flags], and COMMAND --help: the usage of one command
 * when one is named, else all of it. */
static int cmd_help(int argc, char **argv)
{
    const char *topic = NULL;
    if (argc > 2 && strcmp(argv[1], "help") == 0)
        topic = argv[2];
    else if (argc > 1 && argv[1][0] != '-' && strcmp(argv[1], "help") != 0)
        topic = argv[1]; /* COMMAND ... --help */
    if (topic != NULL && strcmp(topic, "--list-flags") == 0) {
        config_list_flags(stdout);
        return EXIT_OK;
    }
    if (topic == NULL) {
        config_print_usage(stdout);
        return EXIT_OK;
    }
    if (!config_help(stdout, topic)) {
        fprintf(stderr,
                "pgenrich: help: unknown command \"%.40s\" (init, run, retry-failed, status, "
                "check-config, help or version)\n",
                topic);
        return EXIT_CONFIG;
    }
    return EXIT_OK;
}

/* Defaults < job file < environment < flags; the flags are read twice: first for the
 * command and --config, then again on top of the file and the environment. */
static bool load_config(Config *c, JobFile *jf, int argc, char **argv, bool *usage, char *err,
                        size_t errlen)
{
    config_defaults(c);
    *usage = !config_apply_args(c, argc, argv, err, errlen);
    if (*usage)
        return false;
    if (c->cmd == CMD_HELP || c->cmd == CMD_VERSION)
        return true;
    const char *path = c->config_file;
    Command cmd = c->cmd;
    config_defaults(c);
    c->cmd = cmd;
    c->config_file = path; /* names the file in errors */
    return (!path || jobfile_load(path, c, jf, err, errlen)) &&
           config_apply_env(c, environ, err, errlen) &&
           config_apply_args(c, argc, argv, err, errlen) &&
           config_validate(c, jf->n_providers > 0, err, errlen);
}

int main(int argc, char **argv)
{
    Config cfg;
    JobFile jf;
    char err[512];
    bool usage = false;
    memset(&jf, 0, sizeof jf);
    if (!load_config(&cfg, &jf, argc, argv, &usage, err, sizeof err)) {
        /* check-config prints the bare FILE:LINE: KEY: reason, as a compiler does */
        fprintf(stderr, "%s%s\n", cfg.cmd == CMD_CHECK_CONFIG ? "" : "pgenrich: ", err);
        if (usage)
            config_print_usage(stderr);
        jobfile_free(&jf);
        return EXIT_CONFIG;
    }
    switch (cfg.cmd) {
    case CMD_HELP:
        jobfile_free(&jf);
        return cmd_help(argc, argv);
    case CMD_VERSION:
        printf("pgenrich %s (libcurl %s)\n", PGENRICH_VERSION,
               curl_version_info(CURLVERSION_NOW)->version);
        jobfile_free(&jf);
        return EXIT_OK;
    case CMD_CHECK_CONFIG: {
        int rc = cmd_check_config(&cfg, &jf);
        jobfile_free(&jf);
        return rc;
    }
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
        char why[sizeof err];
        snprintf(why, sizeof why, "%s", err);
        config_blame(&cfg, "log-file", err, sizeof err, "%s", why);
        fprintf(stderr, "pgenrich: %s\n", err);
        jobfile_free(&jf);
        return EXIT_CONFIG;
    }
    signal(SIGPIPE, SIG_IGN);
    outside_loop_signals(false);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("cannot initialise libcurl");
        jobfile_free(&jf);
        return EXIT_RUNTIME;
    }
    int rc;
    if (cfg.cmd == CMD_INIT)
        rc = cmd_init(&cfg);
    else if (cfg.cmd == CMD_STATUS)
        rc = cmd_status(&cfg);
    else if (cfg.shared)
        rc = cmd_run_shared(&cfg, &jf);
    else
        rc = cmd_run(&cfg, &jf);
    curl_global_cleanup();
    jobfile_free(&jf);
    log_close();
    return rc;
}
