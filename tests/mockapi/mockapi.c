/* pgenrich-mockapi: the mock lookup API of API.md sections 1-3 on libmicrohttpd, for the
 * integration tests, the demo and the benchmark. Deterministic data per ID (mockdata), latency
 * that parks connections instead of threads, a global rate limit, seeded fault injection and
 * counters at /__stats. `--expect` prints what the worker must load for IDs read on stdin. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "mockdata.h"

#define ENTITY_PREFIX    "/api/v2/entities/"
#define BODY_MAX         (1024 * 1024) /* batch request bodies; larger answers 413 */
#define CONNECTION_LIMIT 4096u
#define JOB_SLOTS        64
#define RESUME_BATCH     64

/* ---------------------------------------------------------------- options */

typedef struct Opts {
    const char *host;
    unsigned port;
    const char *port_file;
    unsigned threads;
    double latency_ms, jitter_ms, rate_limit;
    double p_5xx, p_reset, p_hang, p_garbage;
    uint64_t seed;
    unsigned max_batch;
    const char *token;
    double hang_ms;
    bool expect;
    /* Per-ID quirks (0 = off): an ID is picked when a salted hash of it is 0 modulo N. */
    unsigned down_mod, miss_mod, ctype_mod, pad_mod, nest_mod, forbidden_mod, slow_mod;
    const char *ctype; /* Content-Type for --ctype-mod IDs; "" = no header */
    unsigned pad_bytes, nest_depth;
    unsigned slow_retry_after;  /* Retry-After seconds of the --slow-mod answer */
    unsigned slow_status;       /* status of the --slow-mod answer: 503 or 429 */
    const char *require_header; /* "Name: value" every API request must carry, or NULL */
    const char *header_log;     /* file for one "path TAB Authorization" line per request */
    const char *trace_file;     /* file for one line of answers by class per second */
    const char *tls_cert;       /* PEM certificate (chain): serve HTTPS */
    const char *tls_key;        /* its PEM key */
    const char *tls_client_ca;  /* PEM CA: require a client certificate it issued */
    const char *tls_max;        /* "1.2": no TLS 1.3 (a client's minimum above it fails) */
    /* Batch behaviour (section 2). */
    bool batch_sync, batch_async; /* always 200 / always 202 (default: 202 over max/2) */
    bool batch_shuffle;           /* results in a scrambled order */
    unsigned batch_drop_mod;      /* leave an ID out of an answer when a hash of it and of
                                     the request is 0 modulo N (transient: a retry gets it) */
    unsigned batch_item_status;   /* with batch_item_mod: a per-item error of this status */
    unsigned batch_item_mod;      /* ... for an ID when a hash of it and of the request is 0
                                     modulo N (a retry draws again) */
    bool batch_extra;             /* one result for an ID nobody asked, per answer */
    bool batch_dup;               /* every result twice: a decoy first, the real one last */
    unsigned job_expire_first;    /* the first N jobs: 404 on every poll (expired); a resend
                                     is a later job */
    unsigned job_never_first;     /* the first N jobs: pending for good */
    unsigned job_ready_ms;        /* a job is pending this long (default 100) */
    /* ---- announced quota (--quota, --quota-headers) ---- */
    const char *quota;         /* "N/S": N requests per fixed window of S seconds, or NULL */
    const char *quota_headers; /* ietf (default), x or x-delta */
} Opts;

typedef enum OptType { OPT_STR, OPT_UINT, OPT_U64, OPT_DOUBLE, OPT_PROB, OPT_FLAG } OptType;

typedef struct OptDef {
    const char *name;
    OptType type;
    size_t offset;
    unsigned max; /* OPT_UINT upper bound */
} OptDef;

static const OptDef opt_defs[] = {
    {"host", OPT_STR, offsetof(Opts, host), 0},
    {"port", OPT_UINT, offsetof(Opts, port), 65535},
    {"port-file", OPT_STR, offsetof(Opts, port_file), 0},
    {"threads", OPT_UINT, offsetof(Opts, threads), 64},
    {"latency-ms", OPT_DOUBLE, offsetof(Opts, latency_ms), 0},
    {"jitter-ms", OPT_DOUBLE, offsetof(Opts, jitter_ms), 0},
    {"rate-limit", OPT_DOUBLE, offsetof(Opts, rate_limit), 0},
    {"p-5xx", OPT_PROB, offsetof(Opts, p_5xx), 0},
    {"p-reset", OPT_PROB, offsetof(Opts, p_reset), 0},
    {"p-hang", OPT_PROB, offsetof(Opts, p_hang), 0},
    {"p-garbage", OPT_PROB, offsetof(Opts, p_garbage), 0},
    {"seed", OPT_U64, offsetof(Opts, seed), 0},
    {"max-batch", OPT_UINT, offsetof(Opts, max_batch), 100000},
    {"token", OPT_STR, offsetof(Opts, token), 0},
    {"hang-ms", OPT_DOUBLE, offsetof(Opts, hang_ms), 0},
    {"expect", OPT_FLAG, offsetof(Opts, expect), 0},
    {"primary-down-mod", OPT_UINT, offsetof(Opts, down_mod), 1000000},
    {"primary-miss-mod", OPT_UINT, offsetof(Opts, miss_mod), 1000000},
    {"ctype-mod", OPT_UINT, offsetof(Opts, ctype_mod), 1000000},
    {"ctype", OPT_STR, offsetof(Opts, ctype), 0},
    {"pad-mod", OPT_UINT, offsetof(Opts, pad_mod), 1000000},
    {"pad-bytes", OPT_UINT, offsetof(Opts, pad_bytes), 64u * 1024 * 1024},
    {"nest-mod", OPT_UINT, offsetof(Opts, nest_mod), 1000000},
    {"nest-depth", OPT_UINT, offsetof(Opts, nest_depth), 1000000},
    {"require-header", OPT_STR, offsetof(Opts, require_header), 0},
    {"forbidden-mod", OPT_UINT, offsetof(Opts, forbidden_mod), 1000000},
    {"slow-mod", OPT_UINT, offsetof(Opts, slow_mod), 1000000},
    {"slow-retry-after", OPT_UINT, offsetof(Opts, slow_retry_after), 1000000000},
    {"slow-status", OPT_UINT, offsetof(Opts, slow_status), 599},
    {"header-log", OPT_STR, offsetof(Opts, header_log), 0},
    {"trace-file", OPT_STR, offsetof(Opts, trace_file), 0},
    {"tls-cert", OPT_STR, offsetof(Opts, tls_cert), 0},
    {"tls-key", OPT_STR, offsetof(Opts, tls_key), 0},
    {"tls-client-ca", OPT_STR, offsetof(Opts, tls_client_ca), 0},
    {"tls-max-version", OPT_STR, offsetof(Opts, tls_max), 0},
    {"batch-sync", OPT_FLAG, offsetof(Opts, batch_sync), 0},
    {"batch-async", OPT_FLAG, offsetof(Opts, batch_async), 0},
    {"batch-shuffle", OPT_FLAG, offsetof(Opts, batch_shuffle), 0},
    {"batch-drop-mod", OPT_UINT, offsetof(Opts, batch_drop_mod), 1000000},
    {"batch-item-status", OPT_UINT, offsetof(Opts, batch_item_status), 599},
    {"batch-item-mod", OPT_UINT, offsetof(Opts, batch_item_mod), 1000000},
    {"batch-extra", OPT_FLAG, offsetof(Opts, batch_extra), 0},
    {"batch-dup", OPT_FLAG, offsetof(Opts, batch_dup), 0},
    {"job-expire-first", OPT_UINT, offsetof(Opts, job_expire_first), 1000000},
    {"job-never-first", OPT_UINT, offsetof(Opts, job_never_first), 1000000},
    {"job-ready-ms", OPT_UINT, offsetof(Opts, job_ready_ms), 3600000},
    /* ---- announced quota ---- */
    {"quota", OPT_STR, offsetof(Opts, quota), 0},
    {"quota-headers", OPT_STR, offsetof(Opts, quota_headers), 0},
};

static void usage(FILE *f)
{
    fputs("usage: pgenrich-mockapi [--host 127.0.0.1] [--port N] [--port-file F] [--threads N]\n"
          "                        [--latency-ms N] [--jitter-ms N] [--rate-limit R]\n"
          "                        [--p-5xx F] [--p-reset F] [--p-hang F] [--p-garbage F]\n"
          "                        [--seed S] [--max-batch N] [--token T] [--hang-ms N]\n"
          "                        [--primary-down-mod N] [--primary-miss-mod N]\n"
          "                        [--ctype-mod N] [--ctype T] [--pad-mod N] [--pad-bytes B]\n"
          "                        [--nest-mod N] [--nest-depth D] [--require-header H]\n"
          "                        [--forbidden-mod N] [--slow-mod N] [--slow-retry-after S]\n"
          "                        [--slow-status 503|429] [--header-log FILE]\n"
          "                        [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]\n"
          "                         [--tls-max-version 1.2|1.3]]\n"
          "                        [--batch-sync | --batch-async] [--batch-shuffle]\n"
          "                        [--batch-drop-mod N] [--batch-extra] [--batch-dup]\n"
          "                        [--batch-item-status S --batch-item-mod N]\n"
          "                        [--job-expire-first N] [--job-never-first N]\n"
          "                        [--job-ready-ms N]\n"
          "                        [--trace-file FILE]\n"
          "                        [--quota N/S [--quota-headers ietf|x|x-delta]]\n"
          "       pgenrich-mockapi --expect [quirk options] < ids.copy > expected.copy\n",
          f);
}

static bool opt_set(Opts *o, const OptDef *d, const char *val)
{
    char *end = NULL;
    void *p = (char *)o + d->offset;

    errno = 0;
    switch (d->type) {
    case OPT_STR:
        *(const char **)p = val;
        return true;
    case OPT_FLAG:
        *(bool *)p = true;
        return true;
    case OPT_UINT: {
        unsigned long v = strtoul(val, &end, 10);
        if (errno || end == val || *end || val[0] == '-' || v > d->max)
            return false;
        *(unsigned *)p = (unsigned)v;
        return true;
    }
    case OPT_U64: {
        unsigned long long v = strtoull(val, &end, 10);
        if (errno || end == val || *end || val[0] == '-')
            return false;
        *(uint64_t *)p = (uint64_t)v;
        return true;
    }
    case OPT_DOUBLE:
    case OPT_PROB: {
        double v = strtod(val, &end);
        if (errno || end == val || *end || !(v >= 0.0) || v > 1e12)
            return false;
        if (d->type == OPT_PROB && v > 1.0)
            return false;
        *(double *)p = v;
        return true;
    }
    }
    return false;
}

/* ---- announced quota: options ---- */

typedef enum QuotaForm { QF_NONE, QF_IETF, QF_X, QF_X_DELTA } QuotaForm;

/* --quota "N/S" (N >= 1 requests, S >= 1 whole seconds) into *n and *secs. */
static bool quota_parse(const char *v, unsigned *n, unsigned *secs)
{
    char *end = NULL;
    unsigned long a, b;

    errno = 0;
    if (!v || v[0] < '0' || v[0] > '9')
        return false;
    a = strtoul(v, &end, 10);
    if (errno || *end != '/' || a == 0 || a > 1000000000ul || end[1] < '0' || end[1] > '9')
        return false;
    b = strtoul(end + 1, &end, 10);
    if (errno || *end || b == 0 || b > 86400ul)
        return false;
    *n = (unsigned)a;
    *secs = (unsigned)b;
    return true;
}

static QuotaForm quota_form_of(const char *v)
{
    if (!v || strcmp(v, "ietf") == 0)
        return QF_IETF;
    if (strcmp(v, "x") == 0)
        return QF_X;
    if (strcmp(v, "x-delta") == 0)
        return QF_X_DELTA;
    return QF_NONE;
}

static bool quota_opts_ok(const Opts *o)
{
    unsigned n, secs;

    if (o->quota && !quota_parse(o->quota, &n, &secs)) {
        fprintf(stderr,
                "pgenrich-mockapi: --quota wants N/S (requests per S seconds, both "
                "whole numbers from 1), not \"%s\"\n",
                o->quota);
        return false;
    }
    if (o->quota_headers && !o->quota) {
        fprintf(stderr, "pgenrich-mockapi: --quota-headers needs --quota\n");
        return false;
    }
    if (quota_form_of(o->quota_headers) == QF_NONE) {
        fprintf(stderr, "pgenrich-mockapi: --quota-headers must be ietf, x or x-delta\n");
        return false;
    }
    return true;
}

/* Accepts "--name value" and "--name=value". */
static bool parse_args(int argc, char **argv, Opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        const OptDef *d = NULL;
        size_t nlen;

        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "pgenrich-mockapi: unexpected argument \"%s\"\n", a);
            return false;
        }
        a += 2;
        nlen = strcspn(a, "=");
        for (size_t k = 0; k < ARRAY_LEN(opt_defs); k++) {
            if (strlen(opt_defs[k].name) == nlen && strncmp(opt_defs[k].name, a, nlen) == 0)
                d = &opt_defs[k];
        }
        if (!d) {
            fprintf(stderr, "pgenrich-mockapi: unknown option \"%s\"\n", argv[i]);
            return false;
        }
        if (a[nlen] == '=') {
            val = a + nlen + 1;
        } else if (d->type != OPT_FLAG) {
            if (i + 1 >= argc) {
                fprintf(stderr, "pgenrich-mockapi: --%s needs a value\n", d->name);
                return false;
            }
            val = argv[++i];
        }
        if (d->type == OPT_FLAG && val) {
            fprintf(stderr, "pgenrich-mockapi: --%s takes no value\n", d->name);
            return false;
        }
        if (!opt_set(o, d, val)) {
            fprintf(stderr, "pgenrich-mockapi: bad value \"%s\" for --%s\n", val, d->name);
            return false;
        }
    }
    if (o->p_5xx + o->p_reset + o->p_hang + o->p_garbage > 1.0 + 1e-9) {
        fprintf(stderr, "pgenrich-mockapi: the fault probabilities add up to more than 1\n");
        return false;
    }
    if (o->threads == 0) {
        fprintf(stderr, "pgenrich-mockapi: --threads must be at least 1\n");
        return false;
    }
    if (o->slow_status != MHD_HTTP_SERVICE_UNAVAILABLE &&
        o->slow_status != MHD_HTTP_TOO_MANY_REQUESTS) {
        fprintf(stderr, "pgenrich-mockapi: --slow-status must be 503 or 429\n");
        return false;
    }
    if (o->require_header) {
        const char *colon = strchr(o->require_header, ':');
        if (!colon || colon == o->require_header) {
            fprintf(stderr, "pgenrich-mockapi: --require-header wants \"Name: value\"\n");
            return false;
        }
    }
    if (!quota_opts_ok(o))
        return false;
    return true;
}

/* ---------------------------------------------------------------- trace (--trace-file)
 *
 * One line per wall-clock second (CLOCK_REALTIME, whole epoch seconds) from start-up to
 * shutdown: "SECOND OK R429 OTHER", the API requests decided in that second by the class of
 * their answer: OK = 2xx and 404 (the provider served it), R429 = 429, OTHER = anything else
 * (400, 401, 403, 5xx, resets, hangs). A request counts in the second it arrived and was
 * decided (what a rate limit judges), not when its delayed answer leaves. Counting is a
 * relaxed atomic add into a ring of per-second slots; a writer thread prints second S half a
 * second after it ended and clears its slot, so the file is live (a reader sees every second
 * up to about 1.5 s ago) and idle seconds are lines of zeros. */

#define TRACE_SLOTS 4 /* > the 1.5 s the writer lags behind the counting */

typedef enum TraceClass { TR_OK, TR_429, TR_OTHER, TR_CLASSES } TraceClass;

typedef struct Trace {
    FILE *f; /* NULL: no trace */
    _Atomic uint64_t n[TRACE_SLOTS][TR_CLASSES];
    int64_t next; /* the next second to write */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_REALTIME, the default */
    bool closed;
    bool started;
    pthread_t thread;
} Trace;

static int64_t trace_second(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

/* The answer's class: status and whether an answer is sent at all (not a reset or hang). */
static void trace_count(Trace *t, unsigned status, bool answered)
{
    TraceClass c = TR_OTHER;

    if (!t->f)
        return;
    if (answered && status == MHD_HTTP_TOO_MANY_REQUESTS)
        c = TR_429;
    else if (answered && ((status >= 200 && status < 300) || status == MHD_HTTP_NOT_FOUND))
        c = TR_OK;
    atomic_fetch_add_explicit(&t->n[trace_second() % TRACE_SLOTS][c], 1, memory_order_relaxed);
}

/* Print second t->next and clear its slot (under t->mu). */
static void trace_write_next(Trace *t)
{
    _Atomic uint64_t *slot = t->n[t->next % TRACE_SLOTS];
    uint64_t v[TR_CLASSES];

    for (int c = 0; c < TR_CLASSES; c++)
        v[c] = atomic_exchange_explicit(&slot[c], 0, memory_order_relaxed);
    fprintf(t->f, "%" PRId64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", t->next, v[TR_OK], v[TR_429],
            v[TR_OTHER]);
    fflush(t->f);
    t->next++;
}

static void *trace_main(void *arg)
{
    Trace *t = arg;

    pthread_mutex_lock(&t->mu);
    while (!t->closed) {
        /* Second S is written at S + 1.5: late counts of S (a thread descheduled at the
         * boundary) still land in it. */
        struct timespec due = {(time_t)(t->next + 1), 500000000}, now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (now.tv_sec > due.tv_sec || (now.tv_sec == due.tv_sec && now.tv_nsec >= due.tv_nsec)) {
            trace_write_next(t);
            continue;
        }
        pthread_cond_timedwait(&t->cv, &t->mu, &due);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static bool trace_open(Trace *t, const char *path) WUR;

/* Create (or truncate) the trace file and start its writer with every signal blocked (the
 * main thread takes SIGINT and SIGTERM). false with a message on failure. */
static bool trace_open(Trace *t, const char *path)
{
    sigset_t all, old;

    t->f = fopen(path, "w");
    if (!t->f) {
        fprintf(stderr, "pgenrich-mockapi: cannot open the trace file \"%s\": %s\n", path,
                strerror(errno));
        return false;
    }
    t->next = trace_second();
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    t->started = pthread_create(&t->thread, NULL, trace_main, t) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!t->started) {
        fprintf(stderr, "pgenrich-mockapi: cannot start the trace thread\n");
        fclose(t->f);
        t->f = NULL;
        return false;
    }
    return true;
}

/* Once no request can be counted any more: stop the writer, write every second up to the
 * current one (partial), close the file. false if it could not be written. */
static bool trace_close(Trace *t)
{
    bool ok;

    if (!t->f)
        return true;
    pthread_mutex_lock(&t->mu);
    t->closed = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    for (int64_t end = trace_second(); t->next <= end;)
        trace_write_next(t);
    ok = !ferror(t->f);
    if (fclose(t->f) != 0)
        ok = false;
    t->f = NULL;
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    if (!ok)
        fprintf(stderr, "pgenrich-mockapi: cannot write the trace file\n");
    return ok;
}

/* ---------------------------------------------------------------- end of trace */

/* ---------------------------------------------------------------- shared state */

#define STATS(X)                                                                                   \
    X(requests)                                                                                    \
    X(ok)                                                                                          \
    X(miss)                                                                                        \
    X(not_found)                                                                                   \
    X(bad_request)                                                                                 \
    X(rate_limited)                                                                                \
    X(err_5xx)                                                                                     \
    X(reset)                                                                                       \
    X(hang)                                                                                        \
    X(garbage)                                                                                     \
    X(batch)                                                                                       \
    X(polls)                                                                                       \
    X(batch_dropped)                                                                               \
    X(batch_item_errors)                                                                           \
    X(job_expired)                                                                                 \
    X(unauthorized)                                                                                \
    X(bad_data)                                                                                    \
    X(forced_down)                                                                                 \
    X(forced_miss)                                                                                 \
    X(odd_ctype)                                                                                   \
    X(padded)                                                                                      \
    X(nested)                                                                                      \
    X(forced_forbidden)                                                                            \
    X(forced_slow)                                                                                 \
    X(inflight_max)                                                                                \
    X(jobs_pending)                                                                                \
    X(jobs_pending_max)

typedef struct Stats {
#define X(n) _Atomic uint64_t n;
    STATS(X)
#undef X
} Stats;

#define BUMP(s, n) atomic_fetch_add_explicit(&(s)->stats.n, 1, memory_order_relaxed)

/* A parked connection: resumed by the timer thread at its deadline. */
typedef struct Parked {
    uint64_t due;
    struct MHD_Connection *conn;
} Parked;

typedef struct Timer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    Parked *heap; /* min-heap on due */
    size_t n, cap;
    bool closed; /* no more parking: shutting down */
    pthread_t thread;
    bool started;
} Timer;

typedef struct Job {
    bool used;
    bool pending; /* not yet answered with its results, nor expired, nor evicted */
    uint64_t seq;
    uint64_t created;
    char name[32];
    MockIdList ids;
} Job;

typedef struct Server {
    Opts o;
    char *auth;            /* "Bearer <token>" or NULL */
    char *req_name;        /* --require-header: the name, or NULL */
    const char *req_value; /* ... and the value (inside o.require_header) */
    Stats stats;
    _Atomic uint64_t draws;    /* request number for the fault PRNG */
    _Atomic uint64_t inflight; /* API requests received and not completed yet */
    /* rate limit: GCRA, lock-free; tat = theoretical arrival time in ns */
    _Atomic uint64_t rl_tat;
    uint64_t rl_interval, rl_tau;
    Timer timer;
    pthread_mutex_t jobs_mu;
    uint64_t job_seq;
    uint64_t jobs_pending; /* jobs with pending set (under jobs_mu) */
    Job jobs[JOB_SLOTS];
    int log_fd; /* --header-log, or -1 */
    pthread_mutex_t log_mu;
    Trace trace; /* --trace-file */
    /* ---- announced quota (--quota): a fixed window on the wall clock ---- */
    unsigned quota_n, quota_s; /* N requests per S seconds; quota_n 0 = off */
    QuotaForm quota_form;
    pthread_mutex_t quota_mu;
    int64_t quota_window; /* number of the current window (wall seconds / S) */
    unsigned quota_used;  /* requests let in during it */
} Server;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- rate limit */

static void rl_init(Server *s)
{
    double r = s->o.rate_limit;
    double burst;

    atomic_init(&s->rl_tat, 0);
    s->rl_interval = s->rl_tau = 0;
    if (r <= 0.0)
        return;
    burst = r / 10.0 < 1.0 ? 1.0 : (double)(uint64_t)(r / 10.0);
    s->rl_interval = (uint64_t)(1e9 / r);
    if (s->rl_interval == 0)
        s->rl_interval = 1;
    s->rl_tau = (uint64_t)((burst - 1.0) * (double)s->rl_interval);
}

/* GCRA: a token bucket of rate 1/interval and depth tau/interval + 1, one CAS per request. */
static bool rl_allow(Server *s, uint64_t now)
{
    uint64_t tat;

    if (s->rl_interval == 0)
        return true;
    tat = atomic_load_explicit(&s->rl_tat, memory_order_relaxed);
    for (;;) {
        uint64_t base = tat > now ? tat : now;
        if (base - now > s->rl_tau)
            return false;
        if (atomic_compare_exchange_weak_explicit(&s->rl_tat, &tat, base + s->rl_interval,
                                                  memory_order_relaxed, memory_order_relaxed))
            return true;
    }
}

/* ---------------------------------------------------------------- timer */

static bool timer_init(Timer *t) WUR;

static bool timer_init(Timer *t)
{
    pthread_condattr_t ca;
    bool ok = false;

    memset(t, 0, sizeof(*t));
    if (pthread_condattr_init(&ca) != 0)
        return false;
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0)
        goto done;
    if (pthread_cond_init(&t->cv, &ca) != 0)
        goto done;
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        pthread_cond_destroy(&t->cv);
        goto done;
    }
    ok = true;
done:
    pthread_condattr_destroy(&ca);
    return ok;
}

static void heap_swap(Parked *h, size_t a, size_t b)
{
    Parked x = h[a];
    h[a] = h[b];
    h[b] = x;
}

static void heap_push(Timer *t, Parked p)
{
    size_t i = t->n++;

    t->heap[i] = p;
    while (i > 0 && t->heap[(i - 1) / 2].due > t->heap[i].due) {
        heap_swap(t->heap, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static Parked heap_pop(Timer *t)
{
    Parked top = t->heap[0];
    size_t i = 0;

    t->heap[0] = t->heap[--t->n];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->n && t->heap[l].due < t->heap[m].due)
            m = l;
        if (r < t->n && t->heap[r].due < t->heap[m].due)
            m = r;
        if (m == i)
            break;
        heap_swap(t->heap, i, m);
        i = m;
    }
    return top;
}

static bool timer_park(Timer *t, struct MHD_Connection *conn, uint64_t due) WUR;

/* Suspend conn (from its access handler) until due. false: not parked (shutting down or no
 * memory); the caller answers at once. Suspend and push happen under the lock, so the timer
 * can never resume a connection that is not suspended yet. */
static bool timer_park(Timer *t, struct MHD_Connection *conn, uint64_t due)
{
    bool ok = false;

    pthread_mutex_lock(&t->mu);
    if (t->closed)
        goto done;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        Parked *h = realloc(t->heap, cap * sizeof(*h));
        if (!h)
            goto done;
        t->heap = h;
        t->cap = cap;
    }
    MHD_suspend_connection(conn);
    heap_push(t, (Parked){due, conn});
    if (t->heap[0].conn == conn)
        pthread_cond_signal(&t->cv);
    ok = true;
done:
    pthread_mutex_unlock(&t->mu);
    return ok;
}

static void *timer_main(void *arg)
{
    Timer *t = arg;
    Parked due[RESUME_BATCH];

    pthread_mutex_lock(&t->mu);
    while (!t->closed) {
        uint64_t now;
        size_t k = 0;

        if (t->n == 0) {
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        now = now_ns();
        if (t->heap[0].due > now) {
            struct timespec ts = {(time_t)(t->heap[0].due / 1000000000u),
                                  (long)(t->heap[0].due % 1000000000u)};
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
            continue;
        }
        while (k < RESUME_BATCH && t->n > 0 && t->heap[0].due <= now)
            due[k++] = heap_pop(t);
        pthread_mutex_unlock(&t->mu);
        for (size_t i = 0; i < k; i++)
            MHD_resume_connection(due[i].conn);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* Stop parking, stop the thread, resume every parked connection (hangs included: their
 * handlers close them). MHD_stop_daemon needs no suspended connection left. */
static void timer_close(Timer *t)
{
    pthread_mutex_lock(&t->mu);
    t->closed = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (t->started)
        pthread_join(t->thread, NULL);
    t->started = false;
    while (t->n > 0)
        MHD_resume_connection(heap_pop(t).conn);
}

static void timer_free(Timer *t)
{
    free(t->heap);
    t->heap = NULL;
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
}

/* ---------------------------------------------------------------- per-ID quirks */

/* Deterministic misbehaviour for a share of the IDs, so that a test knows (through
 * --expect) which IDs met it: the primary down (503, 403, or 503 with a long Retry-After) or
 * missing (no location) for some IDs while the secondary answers them, and hostile 200
 * answers (a content type that is not JSON, a padded body, deep nesting). The picks are
 * mockdata_quirk_picked, unit-tested with mockdata. */

#define ODD_CTYPE_DEFAULT "text/html; charset=utf-8"

static void quirk_mods(const Opts *o, unsigned mods[MOCK_Q_COUNT])
{
    mods[MOCK_Q_DOWN] = o->down_mod;
    mods[MOCK_Q_MISS] = o->miss_mod;
    mods[MOCK_Q_CTYPE] = o->ctype_mod;
    mods[MOCK_Q_PAD] = o->pad_mod;
    mods[MOCK_Q_NEST] = o->nest_mod;
    mods[MOCK_Q_FORBIDDEN] = o->forbidden_mod;
    mods[MOCK_Q_SLOW] = o->slow_mod;
}

static bool quirk_on(const Opts *o, MockQuirk q, const char *id, size_t len)
{
    unsigned mods[MOCK_Q_COUNT];

    quirk_mods(o, mods);
    return mockdata_quirk_picked(q, mods[q], id, len);
}

static bool quirks_any(const Opts *o)
{
    unsigned mods[MOCK_Q_COUNT];

    quirk_mods(o, mods);
    for (int q = 0; q < MOCK_Q_COUNT; q++) {
        if (mods[q] != 0)
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------- requests */

typedef enum Route {
    RT_ENTITY,    /* GET /api/v2/entities/{id} */
    RT_BATCH,     /* POST /api/v2/entities/batch */
    RT_JOB,       /* GET /api/v2/entities/batch/{job} */
    RT_LOOKUP,    /* GET /v1/lookup?entity={id} */
    RT_STATS,     /* GET /__stats */
    RT_UNKNOWN,   /* 404 */
    RT_BAD_METHOD /* 405 */
} Route;

typedef enum Action { ACT_SEND, ACT_RESET, ACT_HANG } Action;

typedef struct Req {
    Route route;
    bool started; /* the access handler has seen the request */
    bool parked;
    bool counted;      /* counted in Server.inflight */
    const char *ctype; /* Content-Type of the answer: NULL = application/json, "" = none */
    Action action;
    unsigned status;
    bool retry_after;
    unsigned retry_after_s; /* the Retry-After value when retry_after */
    uint64_t delay_ns;
    char *raw_uri; /* the request target as received (--header-log only) */
    char *body;    /* owned until handed to MHD */
    size_t body_len;
    char *up; /* request body (batch) */
    size_t up_len, up_cap;
    bool up_over;
    /* ---- announced quota: what this answer announces (quota_form QF_NONE: nothing) ---- */
    QuotaForm quota_form;
    unsigned quota_limit, quota_remaining;
    unsigned quota_reset_s;    /* whole seconds left in the window, rounded up */
    int64_t quota_reset_epoch; /* the window's end, Unix seconds */
} Req;

/* ---- announced quota: the window and the headers ---- */

/* --quota: count a request that arrives now in the current fixed window (windows start at
 * the multiples of S seconds of the wall clock) and fill rq's announcement. Returns false,
 * counting nothing, when the window's N requests are spent. One lock: the pool's threads
 * share the window. */
static bool quota_take(Server *s, Req *rq)
{
    struct timespec ts;
    uint64_t win_ns = (uint64_t)s->quota_s * 1000000000u, now, end;
    int64_t w;
    bool ok;

    clock_gettime(CLOCK_REALTIME, &ts);
    now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    w = (int64_t)(now / win_ns);
    end = ((uint64_t)w + 1) * win_ns;
    pthread_mutex_lock(&s->quota_mu);
    if (w != s->quota_window) {
        s->quota_window = w;
        s->quota_used = 0;
    }
    ok = s->quota_used < s->quota_n;
    if (ok)
        s->quota_used++;
    rq->quota_remaining = s->quota_n - s->quota_used;
    pthread_mutex_unlock(&s->quota_mu);
    rq->quota_form = s->quota_form;
    rq->quota_limit = s->quota_n;
    rq->quota_reset_s = (unsigned)((end - now + 999999999u) / 1000000000u);
    rq->quota_reset_epoch = (w + 1) * (int64_t)s->quota_s;
    return ok;
}

/* The announcement of rq on resp, in its form; false when MHD refused a header. */
static bool quota_announce(const Req *rq, struct MHD_Response *resp)
{
    bool x = rq->quota_form != QF_IETF;
    char lim[16], rem[16], reset[24];

    if (rq->quota_form == QF_NONE)
        return true;
    snprintf(lim, sizeof lim, "%u", rq->quota_limit);
    snprintf(rem, sizeof rem, "%u", rq->quota_remaining);
    if (rq->quota_form == QF_X)
        snprintf(reset, sizeof reset, "%" PRId64, rq->quota_reset_epoch);
    else
        snprintf(reset, sizeof reset, "%u", rq->quota_reset_s);
    return MHD_add_response_header(resp, x ? "X-RateLimit-Limit" : "RateLimit-Limit", lim) ==
               MHD_YES &&
           MHD_add_response_header(resp, x ? "X-RateLimit-Remaining" : "RateLimit-Remaining",
                                   rem) == MHD_YES &&
           MHD_add_response_header(resp, x ? "X-RateLimit-Reset" : "RateLimit-Reset", reset) ==
               MHD_YES;
}

static Route route_of(const char *url, const char *method)
{
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;

    if (strncmp(url, ENTITY_PREFIX, sizeof(ENTITY_PREFIX) - 1) == 0) {
        const char *rest = url + sizeof(ENTITY_PREFIX) - 1;
        if (strcmp(rest, "batch") == 0 && post)
            return RT_BATCH;
        if (strncmp(rest, "batch/", 6) == 0)
            return get ? RT_JOB : RT_BAD_METHOD;
        return get ? RT_ENTITY : RT_BAD_METHOD;
    }
    if (strcmp(url, "/v1/lookup") == 0)
        return get ? RT_LOOKUP : RT_BAD_METHOD;
    if (strcmp(url, "/__stats") == 0)
        return get ? RT_STATS : RT_BAD_METHOD;
    return RT_UNKNOWN;
}

static bool set_body(Req *rq, unsigned status, const char *s, size_t n) WUR;

static bool set_body(Req *rq, unsigned status, const char *s, size_t n)
{
    char *b = malloc(n + 1);

    if (!b)
        return false;
    memcpy(b, s, n);
    b[n] = '\0';
    free(rq->body);
    rq->body = b;
    rq->body_len = n;
    rq->status = status;
    return true;
}

/* A small JSON error body; msg is ours (no escaping needed). On no memory the body stays
 * empty: the status still says what happened. */
static void set_error(Req *rq, unsigned status, const char *msg)
{
    char b[256];
    int n = snprintf(b, sizeof(b), "{\"error\":{\"status\":%u,\"message\":\"%s\"}}", status, msg);

    rq->status = status;
    if (n > 0 && (size_t)n < sizeof(b) && !set_body(rq, status, b, (size_t)n))
        rq->body_len = 0;
}

/* Like set_error, with the ID first: {"id":...,"error":{...}}. */
static void set_id_error(Req *rq, unsigned status, const char *msg, const char *id, size_t idlen)
{
    size_t n = mockdata_json_id_error(id, idlen, status, msg, NULL, 0);
    char *b = malloc(n + 1);

    if (!b) {
        set_error(rq, status, msg);
        return;
    }
    mockdata_json_id_error(id, idlen, status, msg, b, n + 1);
    free(rq->body);
    rq->body = b;
    rq->body_len = n;
    rq->status = status;
}

typedef size_t (*RenderFn)(const MockEntity *, const char *, size_t, char *, size_t);

/* Render one entity into rq->body; false only on no memory. */
static bool render(Req *rq, unsigned status, RenderFn fn, const MockEntity *e, const char *id,
                   size_t idlen) WUR;

static bool render(Req *rq, unsigned status, RenderFn fn, const MockEntity *e, const char *id,
                   size_t idlen)
{
    size_t cap = 1024, n;
    char *b = malloc(cap);

    if (!b)
        return false;
    n = fn(e, id, idlen, b, cap);
    if (n >= cap) {
        char *nb = realloc(b, n + 1);
        if (!nb) {
            free(b);
            return false;
        }
        b = nb;
        n = fn(e, id, idlen, b, n + 1);
    }
    free(rq->body);
    rq->body = b;
    rq->body_len = n;
    rq->status = status;
    return true;
}

/* The hostile quirks of a 200 entity answer: an unknown key "padding" that makes the body
 * at least --pad-bytes long, an unknown key "nest" with --nest-depth nested arrays (both
 * right after the opening brace, so the JSON stays valid), and the content type. */
static void body_quirks(Server *s, Req *rq, const char *id, size_t idlen)
{
    static const char pad_open[] = "\"padding\":\"", nest_open[] = "\"nest\":";
    const Opts *o = &s->o;
    bool pad = quirk_on(o, MOCK_Q_PAD, id, idlen), nest = quirk_on(o, MOCK_Q_NEST, id, idlen);
    size_t pad_n = 0, nest_n = 0, n = 0;
    char *b;

    if (quirk_on(o, MOCK_Q_CTYPE, id, idlen)) {
        BUMP(s, odd_ctype);
        rq->ctype = o->ctype ? o->ctype : ODD_CTYPE_DEFAULT;
    }
    if ((!pad && !nest) || rq->body_len == 0 || rq->body[0] != '{')
        return;
    if (pad) {
        BUMP(s, padded);
        pad_n = o->pad_bytes > rq->body_len ? o->pad_bytes - rq->body_len : 0;
    }
    if (nest) {
        BUMP(s, nested);
        nest_n = o->nest_depth;
    }
    b = malloc(rq->body_len + pad_n + 2 * nest_n + sizeof(pad_open) + sizeof(nest_open) + 8);
    if (!b) {
        set_error(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    b[n++] = '{';
    if (pad) {
        memcpy(b + n, pad_open, sizeof(pad_open) - 1);
        n += sizeof(pad_open) - 1;
        memset(b + n, 'x', pad_n);
        n += pad_n;
        b[n++] = '"';
        b[n++] = ',';
    }
    if (nest) {
        memcpy(b + n, nest_open, sizeof(nest_open) - 1);
        n += sizeof(nest_open) - 1;
        if (nest_n == 0) {
            memcpy(b + n, "null", 4);
            n += 4;
        }
        memset(b + n, '[', nest_n);
        n += nest_n;
        memset(b + n, ']', nest_n);
        n += nest_n;
        b[n++] = ',';
    }
    memcpy(b + n, rq->body + 1, rq->body_len - 1);
    n += rq->body_len - 1;
    b[n] = '\0';
    free(rq->body);
    rq->body = b;
    rq->body_len = n;
}

static void count_outcome(Server *s, MockOutcome o)
{
    switch (o) {
    case MOCK_FOUND:
        BUMP(s, ok);
        break;
    case MOCK_NO_LOCATION:
        BUMP(s, miss);
        break;
    case MOCK_NOT_FOUND:
        BUMP(s, not_found);
        break;
    case MOCK_BAD:
        BUMP(s, bad_data);
        break;
    }
}

static void answer_entity(Server *s, Req *rq, const char *raw, bool secondary)
{
    char id[MOCK_ID_MAX];
    size_t idlen;
    MockEntity e;
    bool ok;

    if (!raw) {
        BUMP(s, bad_request);
        set_error(rq, MHD_HTTP_BAD_REQUEST, "missing entity parameter");
        return;
    }
    if (!mockdata_id_decode(raw, strlen(raw), id, sizeof(id), &idlen)) {
        BUMP(s, bad_request);
        set_error(rq, MHD_HTTP_BAD_REQUEST,
                  "id is not percent-encoded as API.md asks (or not UTF-8, or too long)");
        return;
    }
    mockdata_entity(id, idlen, &e);
    if (!secondary && quirk_on(&s->o, MOCK_Q_DOWN, id, idlen)) {
        BUMP(s, forced_down);
        set_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "primary down for this id");
        return;
    }
    if (!secondary && quirk_on(&s->o, MOCK_Q_FORBIDDEN, id, idlen)) {
        BUMP(s, forced_forbidden);
        set_id_error(rq, MHD_HTTP_FORBIDDEN, "forbidden", id, idlen);
        return;
    }
    if (!secondary && quirk_on(&s->o, MOCK_Q_SLOW, id, idlen)) {
        BUMP(s, forced_slow);
        /* A 429 asks the whole client to slow down, a 503 only says this ID is not ready. */
        if (s->o.slow_status == MHD_HTTP_TOO_MANY_REQUESTS)
            set_error(rq, MHD_HTTP_TOO_MANY_REQUESTS, "come back later");
        else
            set_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "primary slow for this id");
        rq->retry_after = true;
        rq->retry_after_s = s->o.slow_retry_after;
        return;
    }
    if (!secondary && e.outcome == MOCK_FOUND && quirk_on(&s->o, MOCK_Q_MISS, id, idlen)) {
        BUMP(s, forced_miss);
        e.outcome = MOCK_NO_LOCATION; /* written as a miss: location null or left out */
    }
    count_outcome(s, e.outcome);
    if (secondary)
        ok = render(rq, MHD_HTTP_OK, mockdata_json_secondary, &e, id, idlen);
    else
        ok = render(rq, e.outcome == MOCK_NOT_FOUND ? MHD_HTTP_NOT_FOUND : MHD_HTTP_OK,
                    mockdata_json_primary, &e, id, idlen);
    if (!ok) {
        set_error(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    if (rq->status == MHD_HTTP_OK)
        body_quirks(s, rq, id, idlen);
}

/* Append a small element to b (grown as needed); false on no memory. */
static bool put_raw(char **b, size_t *cap, size_t *len, const char *label, const char *id,
                    size_t idlen)
{
    char q[6 * MOCK_ID_MAX + 16];
    size_t qn = mockdata_json_string(id, idlen, q, sizeof q);
    if (qn >= sizeof q)
        return false;
    size_t need = strlen(label) + qn + 64;
    if (*cap - *len < need + 4) {
        size_t nc = (*cap + need) * 2;
        char *nb = realloc(*b, nc);
        if (!nb)
            return false;
        *b = nb;
        *cap = nc;
    }
    *len += (size_t)snprintf(*b + *len, *cap - *len,
                             "{\"id\":%s,\"label\":\"%s\",\"location\":null}", q, label);
    return true;
}

/* Append {"id":ID,"error":{"status":S,"message":".."}} to b (grown as needed). */
static bool put_item_error(char **b, size_t *cap, size_t *len, const char *id, size_t idlen,
                           unsigned status)
{
    char q[6 * MOCK_ID_MAX + 16];
    size_t qn = mockdata_json_string(id, idlen, q, sizeof q);
    if (qn >= sizeof q)
        return false;
    size_t need = qn + 128;
    if (*cap - *len < need + 4) {
        size_t nc = (*cap + need) * 2;
        char *nb = realloc(*b, nc);
        if (!nb)
            return false;
        *b = nb;
        *cap = nc;
    }
    *len += (size_t)snprintf(*b + *len, *cap - *len,
                             "{\"id\":%s,\"error\":{\"status\":%u,\"message\":\"refused by "
                             "--batch-item-status\"}}",
                             q, status);
    return true;
}

/* {"results":[...]} for the IDs of l, into rq->body with status 200. key (the request's
 * draw) decides the --batch-drop-mod and --batch-shuffle choices of this answer. */
static void answer_results(Server *s, Req *rq, const MockIdList *l, uint64_t key)
{
    size_t cap = 256 + l->count * 1024, len = 0;
    char *b = malloc(cap);
    size_t *order = malloc((l->count ? l->count : 1) * sizeof *order);
    MockEntity e;
    bool first = true;

    if (!b || !order)
        goto nomem;
    for (size_t i = 0; i < l->count; i++)
        order[i] = i;
    if (s->o.batch_shuffle) { /* Fisher-Yates on a counter-based draw */
        for (size_t i = l->count; i > 1; i--) {
            size_t j = (size_t)(mockdata_mix64(key ^ (0x9e37u + i)) % i);
            size_t t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
    }
    len = (size_t)snprintf(b, cap, "{\"results\":[");
    if (s->o.batch_extra) {
        if (!put_raw(&b, &cap, &len, "nobody asked", "unasked-id", 10))
            goto nomem;
        first = false;
    }
    for (size_t k = 0; k < l->count; k++) {
        size_t i = order[k];
        const char *id = l->data + l->start[i];
        size_t n;
        if (s->o.batch_drop_mod &&
            mockdata_mix64(mockdata_hash(id, l->len[i]) ^ key) % s->o.batch_drop_mod == 0) {
            BUMP(s, batch_dropped);
            continue;
        }
        if (s->o.batch_item_mod &&
            mockdata_mix64(mockdata_hash(id, l->len[i]) ^ key ^ 0x17e5u) % s->o.batch_item_mod ==
                0) {
            BUMP(s, batch_item_errors);
            if (!first)
                b[len++] = ',';
            first = false;
            if (!put_item_error(&b, &cap, &len, id, l->len[i], s->o.batch_item_status))
                goto nomem;
            continue;
        }
        if (s->o.batch_dup) {
            if (!first)
                b[len++] = ',';
            if (!put_raw(&b, &cap, &len, "decoy", id, l->len[i]))
                goto nomem;
            first = false;
        }
        mockdata_entity(id, l->len[i], &e);
        count_outcome(s, e.outcome);
        if (!first)
            b[len++] = ','; /* cap - len >= 4 holds here: see below */
        first = false;
        for (;;) {
            /* keep room for the next ",", "]}" and the NUL */
            n = mockdata_json_primary(&e, id, l->len[i], b + len, cap - len - 3);
            if (n < cap - len - 3)
                break;
            cap = (cap + n) * 2;
            char *nb = realloc(b, cap);
            if (!nb)
                goto nomem;
            b = nb;
        }
        len += n;
    }
    memcpy(b + len, "]}", 3);
    len += 2;
    free(order);
    free(rq->body);
    rq->body = b;
    rq->body_len = len;
    rq->status = MHD_HTTP_OK;
    return;
nomem:
    free(order);
    free(b);
    set_error(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
}

static void job_body(Req *rq, unsigned status, const char *name)
{
    char b[128];
    int n = snprintf(b, sizeof(b), "{\"job\":\"%s\",\"status\":\"pending\"}", name);

    if (!set_body(rq, status, b, (size_t)n))
        set_error(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
}

/* A pending job is over (answered, expired or evicted); under jobs_mu. The counter
 * jobs_pending is the current count, jobs_pending_max the most at once (what a client's
 * concurrency bounds: a job waiting between two polls holds no connection). */
static void job_settled(Server *s, Job *j)
{
    j->pending = false;
    s->jobs_pending--;
    atomic_store(&s->stats.jobs_pending, s->jobs_pending);
}

/* Queue a job; takes ownership of *l. */
static void job_add(Server *s, Req *rq, MockIdList *l)
{
    Job *slot = NULL;

    pthread_mutex_lock(&s->jobs_mu);
    for (size_t i = 0; i < JOB_SLOTS; i++) {
        Job *j = &s->jobs[i];
        if (!j->used) {
            slot = j;
            break;
        }
        if (!slot || j->seq < slot->seq)
            slot = j; /* evict the oldest */
    }
    mockdata_idlist_free(&slot->ids);
    if (slot->used && slot->pending)
        job_settled(s, slot); /* evicted while pending */
    slot->pending = true;
    s->jobs_pending++;
    atomic_store(&s->stats.jobs_pending, s->jobs_pending);
    if (s->jobs_pending > atomic_load(&s->stats.jobs_pending_max))
        atomic_store(&s->stats.jobs_pending_max, s->jobs_pending);
    slot->used = true;
    slot->seq = ++s->job_seq;
    slot->created = now_ns();
    snprintf(slot->name, sizeof(slot->name), "job-%" PRIu64, slot->seq);
    slot->ids = *l;
    l->data = NULL;
    l->start = l->len = NULL;
    l->count = 0;
    job_body(rq, MHD_HTTP_ACCEPTED, slot->name);
    pthread_mutex_unlock(&s->jobs_mu);
}

static void answer_job(Server *s, Req *rq, const char *url, uint64_t key)
{
    const char *name = url + sizeof(ENTITY_PREFIX "batch/") - 1;
    Job *job = NULL;

    pthread_mutex_lock(&s->jobs_mu);
    for (size_t i = 0; i < JOB_SLOTS; i++) {
        if (s->jobs[i].used && strcmp(s->jobs[i].name, name) == 0)
            job = &s->jobs[i];
    }
    BUMP(s, polls);
    if (job && s->o.job_expire_first && job->seq <= s->o.job_expire_first) {
        BUMP(s, job_expired);
        if (job->pending)
            job_settled(s, job);
        job = NULL;
    }
    if (!job) {
        BUMP(s, not_found);
        set_error(rq, MHD_HTTP_NOT_FOUND, "no such job");
    } else if ((s->o.job_never_first && job->seq <= s->o.job_never_first) ||
               now_ns() - job->created < (uint64_t)s->o.job_ready_ms * 1000000u) {
        job_body(rq, MHD_HTTP_ACCEPTED, job->name);
    } else {
        answer_results(s, rq, &job->ids, key);
        if (job->pending)
            job_settled(s, job);
    }
    pthread_mutex_unlock(&s->jobs_mu);
}

static void answer_batch(Server *s, Req *rq, uint64_t key)
{
    MockIdList l = {NULL, NULL, NULL, 0};
    char err[128];

    if (rq->up_over) {
        BUMP(s, bad_request);
        set_error(rq, MHD_HTTP_CONTENT_TOO_LARGE, "body too large");
        return;
    }
    switch (mockdata_parse_batch(rq->up ? rq->up : "", rq->up_len, s->o.max_batch, &l, err,
                                 sizeof(err))) {
    case MOCK_BATCH_OK:
        break;
    case MOCK_BATCH_BAD:
        BUMP(s, bad_request);
        set_error(rq, MHD_HTTP_BAD_REQUEST, "bad batch body");
        return;
    case MOCK_BATCH_TOO_MANY:
        BUMP(s, bad_request);
        set_error(rq, MHD_HTTP_CONTENT_TOO_LARGE, "too many ids");
        return;
    case MOCK_BATCH_NOMEM:
        set_error(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    BUMP(s, batch);
    if (s->o.batch_async || (!s->o.batch_sync && l.count > s->o.max_batch / 2))
        job_add(s, rq, &l);
    else
        answer_results(s, rq, &l, key);
    mockdata_idlist_free(&l);
}

static void answer_stats(Server *s, Req *rq, bool reset)
{
    char b[1024];
    size_t n = 0;

#define X(name)                                                                                    \
    {                                                                                              \
        uint64_t v = reset ? atomic_exchange(&s->stats.name, 0) : atomic_load(&s->stats.name);     \
        n += (size_t)snprintf(b + n, sizeof(b) - n, "%s\"" #name "\":%" PRIu64, n ? "," : "{", v); \
    }
    STATS(X)
#undef X
    n += (size_t)snprintf(b + n, sizeof(b) - n, "}");
    if (!set_body(rq, MHD_HTTP_OK, b, n))
        set_error(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
}

static double unit64(uint64_t v)
{
    return (double)(v >> 11) * 0x1.0p-53;
}

static const char *const garbage_bodies[3] = {
    "{\"id\": \"Q90\", \"label\": \"Par",
    ("<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
     "<body><h1>Bad Gateway</h1></body></html>\n"),
    "",
};

/* Injected faults; true when one was chosen (the answer is set). */
static bool inject_fault(Server *s, Req *rq, uint64_t key)
{
    static const unsigned codes[4] = {500, 502, 503, 504};
    const Opts *o = &s->o;
    double u = unit64(mockdata_mix64(key ^ 0x5f3759df));
    uint64_t pick = mockdata_mix64(key ^ 0x2545f491);

    if (u < o->p_5xx) {
        BUMP(s, err_5xx);
        set_error(rq, codes[pick % 4], "injected failure");
        return true;
    }
    u -= o->p_5xx;
    if (u < o->p_reset) {
        BUMP(s, reset);
        rq->action = ACT_RESET;
        return true;
    }
    u -= o->p_reset;
    if (u < o->p_hang) {
        BUMP(s, hang);
        rq->action = ACT_HANG;
        rq->delay_ns = (uint64_t)(o->hang_ms * 1e6);
        return true;
    }
    u -= o->p_hang;
    if (u < o->p_garbage) {
        const char *g = garbage_bodies[pick % 3];
        BUMP(s, garbage);
        if (!set_body(rq, MHD_HTTP_OK, g, strlen(g)))
            set_error(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        rq->status = MHD_HTTP_OK;
        return true;
    }
    return false;
}

/* Count rq in flight (until on_completed) and keep the high-water mark. */
static void inflight_enter(Server *s, Req *rq)
{
    uint64_t cur = atomic_fetch_add_explicit(&s->inflight, 1, memory_order_relaxed) + 1;
    uint64_t max = atomic_load_explicit(&s->stats.inflight_max, memory_order_relaxed);

    rq->counted = true;
    while (cur > max &&
           !atomic_compare_exchange_weak_explicit(&s->stats.inflight_max, &max, cur,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* --header-log: one line "target TAB Authorization-or-dash", written whole with one write()
 * under a lock (the file is O_APPEND too), before the answer is queued, so that a client
 * that has its answer finds the line in the file. */
static void header_log(Server *s, struct MHD_Connection *conn, const Req *rq, const char *url)
{
    static atomic_bool warned;
    const char *target = rq->raw_uri ? rq->raw_uri : url;
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    size_t tl = strlen(target), al, n, off = 0;
    char *line;

    if (!auth)
        auth = "-";
    al = strlen(auth);
    n = tl + al + 2;
    line = malloc(n);
    if (!line)
        goto failed;
    memcpy(line, target, tl);
    line[tl] = '\t';
    memcpy(line + tl + 1, auth, al);
    line[n - 1] = '\n';
    pthread_mutex_lock(&s->log_mu);
    while (off < n) {
        ssize_t w = write(s->log_fd, line + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    pthread_mutex_unlock(&s->log_mu);
    free(line);
    if (off == n)
        return;
failed:
    if (!atomic_exchange(&warned, true))
        fprintf(stderr, "pgenrich-mockapi: cannot write the header log: %s\n", strerror(errno));
}

/* Decide the whole answer of a complete request. */
static void prepare(Server *s, struct MHD_Connection *conn, Req *rq, const char *url)
{
    const Opts *o = &s->o;
    uint64_t n, key;

    if (rq->route == RT_STATS) {
        const char *r = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "reset");
        answer_stats(s, rq, r && strcmp(r, "1") == 0);
        return;
    }
    BUMP(s, requests);
    if (s->log_fd >= 0)
        header_log(s, conn, rq, url);
    inflight_enter(s, rq);
    n = atomic_fetch_add_explicit(&s->draws, 1, memory_order_relaxed);
    key = mockdata_mix64(mockdata_mix64(o->seed) + n);
    rq->delay_ns = (uint64_t)((o->latency_ms + o->jitter_ms * unit64(key)) * 1e6);

    if (s->auth) {
        const char *a = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        if (!a || strcmp(a, s->auth) != 0) {
            BUMP(s, unauthorized);
            set_error(rq, MHD_HTTP_UNAUTHORIZED, "missing or wrong bearer token");
            return;
        }
    }
    if (s->req_name) {
        const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, s->req_name);
        if (!v || strcmp(v, s->req_value) != 0) {
            BUMP(s, bad_request);
            set_error(rq, MHD_HTTP_BAD_REQUEST, "missing or wrong required header");
            return;
        }
    }
    /* ---- announced quota: past it, 429 until the window ends ---- */
    if (s->quota_n && !quota_take(s, rq)) {
        BUMP(s, rate_limited);
        set_error(rq, MHD_HTTP_TOO_MANY_REQUESTS, "quota exceeded");
        rq->retry_after = true;
        rq->retry_after_s = rq->quota_reset_s;
        return;
    }
    if (!rl_allow(s, now_ns())) {
        BUMP(s, rate_limited);
        set_error(rq, MHD_HTTP_TOO_MANY_REQUESTS, "rate limit exceeded");
        rq->retry_after = true;
        rq->retry_after_s = 1;
        return;
    }
    if (inject_fault(s, rq, key))
        return;
    switch (rq->route) {
    case RT_ENTITY:
        answer_entity(s, rq, url + sizeof(ENTITY_PREFIX) - 1, false);
        break;
    case RT_LOOKUP:
        answer_entity(s, rq, MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "entity"),
                      true);
        break;
    case RT_BATCH:
        answer_batch(s, rq, key);
        break;
    case RT_JOB:
        answer_job(s, rq, url, key);
        break;
    case RT_UNKNOWN:
        BUMP(s, not_found);
        set_error(rq, MHD_HTTP_NOT_FOUND, "no such endpoint");
        break;
    case RT_BAD_METHOD:
    case RT_STATS:
        BUMP(s, bad_request);
        set_error(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
        break;
    }
}

/* Close with a RST instead of a FIN: SO_LINGER 0, then let MHD close the socket. */
static void make_reset(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct linger lg = {1, 0};

    if (ci)
        (void)setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static enum MHD_Result deliver(struct MHD_Connection *conn, Req *rq)
{
    static char empty[1];
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char retry[16];

    if (rq->action == ACT_RESET) {
        make_reset(conn);
        return MHD_NO;
    }
    if (rq->action == ACT_HANG)
        return MHD_NO;
    if (rq->body_len > 0)
        resp = MHD_create_response_from_buffer(rq->body_len, rq->body, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, empty, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    if (rq->body_len > 0)
        rq->body = NULL; /* MHD frees it with the response */
    if ((rq->ctype == NULL && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                                      "application/json") != MHD_YES) ||
        (rq->ctype != NULL && rq->ctype[0] != '\0' &&
         MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rq->ctype) != MHD_YES) ||
        (rq->retry_after &&
         (snprintf(retry, sizeof(retry), "%u", rq->retry_after_s) < 0 ||
          MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry) != MHD_YES)) ||
        !quota_announce(rq, resp)) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    ret = MHD_queue_response(conn, rq->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static bool append_upload(Req *rq, const char *data, size_t n)
{
    if (rq->up_over || rq->up_len + n > BODY_MAX) {
        rq->up_over = true;
        return true;
    }
    if (rq->up_len + n > rq->up_cap) {
        size_t cap = rq->up_cap ? rq->up_cap : 4096;
        while (cap < rq->up_len + n)
            cap *= 2;
        char *b = realloc(rq->up, cap);
        if (!b)
            return false;
        rq->up = b;
        rq->up_cap = cap;
    }
    memcpy(rq->up + rq->up_len, data, n);
    rq->up_len += n;
    return true;
}

/* --tls-client-ca: MHD only asks for a client certificate (GNUTLS_CERT_REQUEST) and leaves
 * checking it to the handler; requiring one in the handshake makes MHD drop the connection
 * without a word. Answer like a TLS 1.3 server (OpenSSL's): a fatal alert naming the
 * problem, then close. Returns false when the connection must be refused. */
static bool client_cert_ok(const Server *s, struct MHD_Connection *conn)
{
    if (!s->o.tls_client_ca)
        return true;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session)
        return false;
    gnutls_session_t session = (gnutls_session_t)ci->tls_session;
    unsigned status = 0, n = 0;
    if (gnutls_certificate_get_peers(session, &n) == NULL || n == 0) {
        gnutls_alert_send(session, GNUTLS_AL_FATAL, GNUTLS_A_CERTIFICATE_REQUIRED);
        return false;
    }
    if (gnutls_certificate_verify_peers2(session, &status) != GNUTLS_E_SUCCESS || status != 0) {
        gnutls_alert_send(session, GNUTLS_AL_FATAL, GNUTLS_A_UNKNOWN_CA);
        return false;
    }
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    Server *s = cls;
    Req *rq = *req_cls;

    (void)version;
    if (!rq || !rq->started) {
        if (!client_cert_ok(s, conn))
            return MHD_NO;
        if (!rq) {
            rq = calloc(1, sizeof(*rq));
            if (!rq)
                return MHD_NO;
            *req_cls = rq;
        }
        rq->started = true;
        rq->route = route_of(url, method);
        /* Answer only once the whole request is in: a response queued on this first call
         * makes MHD close the connection instead of keeping it alive. */
        return MHD_YES;
    }
    if (rq->parked) {
        rq->parked = false; /* resumed by the timer */
        return deliver(conn, rq);
    }
    if (*upload_data_size > 0) {
        if (rq->route == RT_BATCH && !append_upload(rq, upload_data, *upload_data_size))
            return MHD_NO;
        *upload_data_size = 0; /* bodies of other requests are read and dropped */
        return MHD_YES;
    }

    prepare(s, conn, rq, url);
    if (rq->route != RT_STATS)
        trace_count(&s->trace, rq->status, rq->action == ACT_SEND);
    if (rq->delay_ns > 0) {
        rq->parked = true;
        if (timer_park(&s->timer, conn, now_ns() + rq->delay_ns))
            return MHD_YES;
        rq->parked = false;
    }
    return deliver(conn, rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    Server *s = cls;
    Req *rq = *req_cls;

    (void)conn;
    (void)toe;
    if (!rq)
        return;
    if (rq->counted)
        atomic_fetch_sub_explicit(&s->inflight, 1, memory_order_relaxed);
    free(rq->body);
    free(rq->up);
    free(rq->raw_uri);
    free(rq);
    *req_cls = NULL;
}

/* MHD hands the access handler the path only; the header log wants the request target as
 * sent, query included, which only this early callback sees. Its result becomes *req_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    Server *s = cls;
    Req *rq;

    (void)conn;
    if (s->log_fd < 0)
        return NULL;
    rq = calloc(1, sizeof(*rq));
    if (rq)
        rq->raw_uri = strdup(uri); /* NULL: the log falls back to the path */
    return rq;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) PRINTF_LIKE(2, 0);

/* MHD's error log, less the line it writes for every deliberate reset or hang. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];

    (void)cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    if (strstr(line, "Application reported internal error"))
        return;
    fprintf(stderr, "pgenrich-mockapi: %s%s", line, strchr(line, '\n') ? "" : "\n");
}

/* Keep the URL as sent: IDs are validated and decoded by mockdata_id_decode. */
static size_t keep_raw(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

/* ---------------------------------------------------------------- main */

static bool write_port_file(const char *path, unsigned port) WUR;

/* Write to a temporary name, then rename: readers never see a partial file. */
static bool write_port_file(const char *path, unsigned port)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    FILE *f = NULL;
    bool ok = false;

    if (!tmp)
        return false;
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    f = fopen(tmp, "w");
    if (!f)
        goto done;
    if (fprintf(f, "%u\n", port) < 0) {
        fclose(f);
        goto done;
    }
    if (fclose(f) != 0)
        goto done;
    if (rename(tmp, path) != 0)
        goto done;
    ok = true;
done:
    if (!ok) {
        fprintf(stderr, "pgenrich-mockapi: cannot write port file \"%s\": %s\n", path,
                strerror(errno));
        (void)unlink(tmp);
    }
    free(tmp);
    return ok;
}

static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The --expect line's extra column when quirks are on: a tab, the quirks that picked the ID
 * (mockdata_quirk_tags; empty for none or a NULL ID), then the newline. */
static bool expect_quirks(const Opts *o, const char *id, size_t idlen)
{
    unsigned mods[MOCK_Q_COUNT];
    char tags[128] = "";
    size_t n = 0;

    quirk_mods(o, mods);
    if (id)
        n = mockdata_quirk_tags(mods, id, idlen, tags, sizeof(tags));
    return n < sizeof(tags) && printf("\t%.*s\n", (int)n, tags) >= 0;
}

/* --expect: COPY text IDs in, COPY text expectation lines out (plus the quirks column). */
static int run_expect(const Opts *o)
{
    bool quirks = quirks_any(o);
    char *line = NULL, *id = NULL, *out = NULL;
    size_t line_cap = 0, id_cap = 0, out_cap = 0;
    ssize_t got;
    MockEntity e;
    int rc = 1;

    while ((got = getline(&line, &line_cap, stdin)) >= 0) {
        size_t n = (size_t)got, idlen, need;
        if (n > 0 && line[n - 1] == '\n')
            n--;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n == 2 && line[0] == '\\' && line[1] == '.')
            break;
        if (id_cap < n + 1) {
            char *b = realloc(id, n + 1);
            if (!b)
                goto done;
            id = b;
            id_cap = n + 1;
        }
        if (!mockdata_copy_decode(line, n, id, &idlen)) {
            fputs("\\N\tnot_found\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N", stdout);
            if (quirks ? !expect_quirks(o, NULL, 0) : putchar('\n') == EOF)
                goto done;
            continue;
        }
        mockdata_entity(id, idlen, &e);
        need = mockdata_expect_line(&e, id, idlen, out, out_cap);
        if (need >= out_cap) {
            char *b = realloc(out, need + 1);
            if (!b)
                goto done;
            out = b;
            out_cap = need + 1;
            need = mockdata_expect_line(&e, id, idlen, out, out_cap);
        }
        if (quirks)
            need--; /* the newline comes after the quirks column */
        if (fwrite(out, 1, need, stdout) != need)
            goto done;
        if (quirks && !expect_quirks(o, id, idlen))
            goto done;
    }
    if (ferror(stdin) || fflush(stdout) != 0 || ferror(stdout))
        goto done;
    rc = 0;
done:
    if (rc != 0)
        fprintf(stderr, "pgenrich-mockapi: --expect failed: %s\n", strerror(errno));
    free(line);
    free(id);
    free(out);
    return rc;
}

static bool make_addr(const char *host, unsigned port, struct sockaddr_storage *ss, bool *v6)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *v6 = false;
        return true;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *v6 = true;
        return true;
    }
    return false;
}

/* A whole (small) PEM file, NUL-terminated; NULL with a message on failure. */
static char *read_pem(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;
    if (!f) {
        fprintf(stderr, "pgenrich-mockapi: cannot open \"%s\": %s\n", path, strerror(errno));
        return NULL;
    }
    buf = malloc(1 << 20);
    if (buf)
        n = fread(buf, 1, (1 << 20) - 1, f);
    if (!buf || ferror(f) || n == 0) {
        fprintf(stderr, "pgenrich-mockapi: cannot read \"%s\"\n", path);
        free(buf);
        buf = NULL;
    } else {
        buf[n] = '\0';
    }
    fclose(f);
    return buf;
}

static int run_server(Server *s)
{
    struct MHD_Daemon *d = NULL;
    struct sockaddr_storage ss;
    const union MHD_DaemonInfo *info;
    sigset_t sigs;
    bool v6 = false;
    unsigned flags;
    int sig = 0, rc = 1;

    if (!make_addr(s->o.host, s->o.port, &ss, &v6)) {
        fprintf(stderr, "pgenrich-mockapi: --host must be a numeric IPv4 or IPv6 address\n");
        return 2;
    }
    raise_nofile();
    /* Every thread started from here on inherits the blocked signals; main takes them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (pthread_create(&s->timer.thread, NULL, timer_main, &s->timer) != 0) {
        fprintf(stderr, "pgenrich-mockapi: cannot start the timer thread\n");
        return 1;
    }
    s->timer.started = true;

    /* poll(), not epoll: with libmicrohttpd 0.9.75 the epoll backend (edge-triggered) leaves
     * keep-alive connections whose next request is already buffered unserved for good,
     * in single-thread mode at once and in pool mode once connections are suspended and
     * resumed (seen with 256 connections and --jitter-ms). Level-triggered poll() never
     * did, at the same throughput. TURBO skips the shutdown() before close(), so that an
     * injected reset (SO_LINGER 0) reaches the client as an RST rather than a FIN. */
    flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG | MHD_USE_TURBO | (v6 ? MHD_USE_IPv6 : 0);
    /* HTTPS: the key and certificates go in as memory, through an option array so that the
     * plain-HTTP call below stays as it was. */
    struct MHD_OptionItem tls_opts[5];
    size_t n_tls = 0;
    char *pem_cert = NULL, *pem_key = NULL, *pem_ca = NULL;
    if (s->o.tls_cert || s->o.tls_key || s->o.tls_client_ca || s->o.tls_max) {
        if (!s->o.tls_cert || !s->o.tls_key) {
            fprintf(stderr, "pgenrich-mockapi: --tls-cert and --tls-key go together\n");
            rc = 2;
            goto done;
        }
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            fprintf(stderr, "pgenrich-mockapi: this libmicrohttpd has no TLS\n");
            rc = 2;
            goto done;
        }
        if (!(pem_cert = read_pem(s->o.tls_cert)) || !(pem_key = read_pem(s->o.tls_key)) ||
            (s->o.tls_client_ca && !(pem_ca = read_pem(s->o.tls_client_ca)))) {
            rc = 2;
            goto done;
        }
        flags |= MHD_USE_TLS;
        tls_opts[n_tls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, pem_cert};
        tls_opts[n_tls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, pem_key};
        if (pem_ca) {
            tls_opts[n_tls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, pem_ca};
        }
        if (s->o.tls_max && strcmp(s->o.tls_max, "1.2") == 0) {
            /* GnuTLS's priority string: its defaults without TLS 1.3 */
            tls_opts[n_tls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                                        (void *)"NORMAL:-VERS-TLS1.3"};
        } else if (s->o.tls_max && strcmp(s->o.tls_max, "1.3") != 0) {
            fprintf(stderr, "pgenrich-mockapi: --tls-max-version must be 1.2 or 1.3\n");
            rc = 2;
            goto done;
        }
    }
    tls_opts[n_tls] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    d = MHD_start_daemon(
        flags, (uint16_t)s->o.port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        /* one thread: no pool, and no pool-size option (MHD warns about 1 and 0) */
        s->o.threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_CONNECTION_LIMIT,
        s->o.threads > 1 ? s->o.threads : CONNECTION_LIMIT, MHD_OPTION_CONNECTION_LIMIT,
        CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        1024u, MHD_OPTION_UNESCAPE_CALLBACK, keep_raw, NULL, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "pgenrich-mockapi: cannot listen on %s:%u\n", s->o.host, s->o.port);
        goto done;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || info->port == 0) {
        fprintf(stderr, "pgenrich-mockapi: cannot tell the bound port\n");
        goto done;
    }
    if (s->o.port_file && !write_port_file(s->o.port_file, info->port))
        goto done;
    printf(v6 ? "mockapi listening on [%s]:%u\n" : "mockapi listening on %s:%u\n", s->o.host,
           (unsigned)info->port);
    fflush(stdout);

    while (sigwait(&sigs, &sig) != 0)
        ;
    rc = 0;
done:
    timer_close(&s->timer);
    if (d)
        MHD_stop_daemon(d);
    free(pem_cert);
    free(pem_key);
    free(pem_ca);
    return rc;
}

int main(int argc, char **argv)
{
    static Server s; /* large (job table); zeroed */
    int rc;

    s.o.host = "127.0.0.1";
    s.o.threads = 2;
    s.o.seed = 1;
    s.o.max_batch = 100;
    s.o.job_ready_ms = 100;
    s.o.hang_ms = 60000;
    s.o.pad_bytes = 2u * 1024 * 1024;
    s.o.nest_depth = 1000;
    s.o.slow_retry_after = 3600;
    s.o.slow_status = MHD_HTTP_SERVICE_UNAVAILABLE;
    s.log_fd = -1;
    if (!parse_args(argc, argv, &s.o)) {
        usage(stderr);
        return 2;
    }
    if (s.o.expect)
        return run_expect(&s.o);
    if ((s.o.batch_item_mod != 0) != (s.o.batch_item_status != 0) ||
        (s.o.batch_item_status != 0 && s.o.batch_item_status < 100)) {
        fprintf(stderr, "pgenrich-mockapi: --batch-item-status S (100-599) and --batch-item-mod N "
                        "go together\n");
        return 2;
    }

    if (s.o.token) {
        size_t n = strlen(s.o.token) + sizeof("Bearer ");
        s.auth = malloc(n);
        if (!s.auth)
            return 1;
        snprintf(s.auth, n, "Bearer %s", s.o.token);
    }
    if (s.o.require_header) {
        const char *colon = strchr(s.o.require_header, ':');
        s.req_name = strndup(s.o.require_header, (size_t)(colon - s.o.require_header));
        if (!s.req_name) {
            free(s.auth);
            return 1;
        }
        s.req_value = colon + 1;
        while (*s.req_value == ' ' || *s.req_value == '\t')
            s.req_value++;
    }
    if (s.o.header_log) {
        s.log_fd = open(s.o.header_log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (s.log_fd < 0) {
            fprintf(stderr, "pgenrich-mockapi: cannot open the header log \"%s\": %s\n",
                    s.o.header_log, strerror(errno));
            free(s.req_name);
            free(s.auth);
            return 2;
        }
    }
    pthread_mutex_init(&s.log_mu, NULL);
    /* ---- announced quota ---- */
    pthread_mutex_init(&s.quota_mu, NULL);
    s.quota_window = -1;
    if (s.o.quota && quota_parse(s.o.quota, &s.quota_n, &s.quota_s))
        s.quota_form = quota_form_of(s.o.quota_headers);
    rl_init(&s);
    if (!timer_init(&s.timer)) {
        if (s.log_fd >= 0)
            close(s.log_fd);
        free(s.req_name);
        free(s.auth);
        fprintf(stderr, "pgenrich-mockapi: cannot set up the timer\n");
        return 1;
    }
    pthread_mutex_init(&s.jobs_mu, NULL);

    if (s.o.trace_file && !trace_open(&s.trace, s.o.trace_file))
        rc = 2;
    else
        rc = run_server(&s);
    if (!trace_close(&s.trace) && rc == 0)
        rc = 1;

    for (size_t i = 0; i < JOB_SLOTS; i++)
        mockdata_idlist_free(&s.jobs[i].ids);
    pthread_mutex_destroy(&s.jobs_mu);
    timer_free(&s.timer);
    if (s.log_fd >= 0 && close(s.log_fd) != 0 && rc == 0) {
        fprintf(stderr, "pgenrich-mockapi: cannot close the header log: %s\n", strerror(errno));
        rc = 1;
    }
    pthread_mutex_destroy(&s.log_mu);
    pthread_mutex_destroy(&s.quota_mu);
    free(s.req_name);
    free(s.auth);
    return rc;
}
