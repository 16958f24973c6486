/* metrics: the job's Prometheus figures. A fixed registry that the scheduler bumps on its hot
 * path (integer increments and a bucket search: no allocation, no formatting), the
 * rendering of the text exposition format (version 0.0.4) at scrape time, and the parsing
 * of a scrape's HTTP request. Pure: the clock is an argument; no I/O. */
#ifndef PGENRICH_METRICS_H
#define PGENRICH_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include "buf.h"
#include "compat.h"
#include "retry.h"

#define METRICS_PROVIDERS_MAX 8  /* PROVIDERS_MAX: the chain's length */
#define METRICS_NAME_MAX      40 /* a provider's name with its NUL (PROVIDER_NAME_MAX + 1) */
#define METRICS_BUCKETS_MAX   16
#define METRICS_PAGES_MAX     64 /* pages whose read time is kept for the source lag */

/* How one request ended, as the label outcome of pgenrich_requests_total. */
typedef enum MetricsOutcome {
    MO_OK,           /* 200 with a row */
    MO_MISS,         /* 200 without a location */
    MO_NOT_FOUND,    /* 404 */
    MO_FORBIDDEN,    /* 403 */
    MO_RATE_LIMITED, /* 429 */
    MO_CLIENT_ERROR, /* any other 4xx, 401 included */
    MO_SERVER_ERROR, /* 5xx */
    MO_TIMEOUT,      /* no complete answer within --timeout */
    MO_NETWORK,      /* refused, reset, truncated or another transport failure */
    MO_BAD_RESPONSE, /* unparsable, over --max-body, wrong content type, odd status */
    MO_COUNT
} MetricsOutcome;

extern const char *const metrics_outcome_names[MO_COUNT];

/* A histogram over fixed upper bounds (seconds). counts[i] holds the observations in
 * (bounds[i-1], bounds[i]], counts[n_bounds] those above the last bound; rendering makes
 * them cumulative. */
typedef struct MetricsHist {
    const double *bounds; /* ascending, static storage */
    int n_bounds;         /* <= METRICS_BUCKETS_MAX */
    unsigned long long counts[METRICS_BUCKETS_MAX + 1];
    unsigned long long count;
    double sum;
} MetricsHist;

typedef struct MetricsProvider {
    char name[METRICS_NAME_MAX];
    unsigned long long requests[MO_COUNT];
    unsigned long long retries;
    MetricsHist duration;
    /* Results of batch answers set aside: for IDs not asked (or without a usable id), and
     * earlier results of an ID answered twice (the last one wins). */
    unsigned long long batch_unasked, batch_duplicates;
} MetricsProvider;

typedef struct Metrics {
    MetricsProvider prov[METRICS_PROVIDERS_MAX];
    int n_prov;
    MetricsHist flush;
    double start_time; /* Unix seconds */
    bool has_checkpoint;
    double checkpoint; /* the committed checkpoint position, when it is a number */
    /* Pages read, oldest first: the read number just past each page's last ID and when it
     * was read. A ring of METRICS_PAGES_MAX; when full the newest entry takes the IDs of
     * a further page, so their read time is given as that entry's. */
    unsigned long long page_end[METRICS_PAGES_MAX];
    double page_time[METRICS_PAGES_MAX];
    int page_first, page_count;
    unsigned long long ids_read;
} Metrics;

/* An empty registry, started at start_time (Unix seconds). */
void metrics_init(Metrics *m, double start_time);

/* Register the next provider of the chain under name (cut to METRICS_NAME_MAX - 1 bytes);
 * returns its index, or -1 when METRICS_PROVIDERS_MAX are registered. */
int metrics_add_provider(Metrics *m, const char *name);

/* The outcome of an answer as far as the transport and the status tell it: a complete 200
 * answer is MO_OK (the caller makes it MO_MISS or MO_BAD_RESPONSE once it has read it). */
MetricsOutcome metrics_outcome(TransportErr terr, long status);

/* One request of provider prov (an index from metrics_add_provider; others are ignored)
 * ended with outcome after seconds. */
void metrics_request(Metrics *m, int prov, MetricsOutcome outcome, double seconds);

/* A retry of provider prov was scheduled. */
void metrics_retry(Metrics *m, int prov);

/* A batch answer of provider prov held unasked results for IDs not asked (or without a
 * usable id) and duplicates superseded ones. */
void metrics_batch_ignored(Metrics *m, int prov, unsigned long long unasked,
                           unsigned long long duplicates);

/* A flush committed after seconds. */
void metrics_flush(Metrics *m, double seconds);

/* The committed checkpoint is now value (a number), or none (has = false). */
void metrics_checkpoint(Metrics *m, bool has, double value);

/* A page of n IDs was read from the source at now (Unix seconds). */
void metrics_page(Metrics *m, long long n, double now);

/* The source lag: seconds since the page holding the oldest unsettled ID was read, given
 * settled, the IDs settled in read order (the checkpoint's low watermark); 0 when every
 * ID read is settled. Also drops the pages entirely settled. */
double metrics_source_lag(Metrics *m, unsigned long long settled, double now);

/* A provider's announced quota as its pacing sees it (src/quota.h). */
typedef struct MetricsQuota {
    bool known;       /* it announces one: the other fields hold */
    double limit;     /* requests per window; 0 when not announced */
    double remaining; /* requests estimated left in the window now */
    double rate;      /* the rate it is paced at (requests/s); 0 while the quota is spent */
} MetricsQuota;

/* What the scheduler knows only at scrape time. */
typedef struct MetricsGauges {
    double rate_limit;               /* --rate; 0 = none */
    double rate;                     /* the adaptive rate now applied; 0 = none */
    long long in_flight;             /* requests started and not ended */
    long long rows_loaded;           /* committed */
    long long failures_kept;         /* failed lookups of IDs that kept their row */
    const char *const *reason_names; /* n_reasons names, parallel to failures */
    const long long *failures;       /* committed failures by reason */
    int n_reasons;
    double source_lag;         /* metrics_source_lag */
    const MetricsQuota *quota; /* per provider, parallel to the registry's; NULL: none. The
                                  pgenrich_quota_* families are rendered when one is known */
} MetricsGauges;

/* Append the whole exposition (text format 0.0.4) of m and g to out. Returns false when
 * out's cap is reached (out then holds a partial text the caller must not serve). */
bool metrics_render(const Metrics *m, const MetricsGauges *g, Buf *out) WUR;

/* A worker of a --shared job: who it is and the range it works on. */
typedef struct MetricsWorker {
    const char *job, *worker, *host; /* worker: its owner id in the ranges table */
    int range_no;                    /* the range it works on */
    long long fence;                 /* that claim's fencing token */
    long long ranges_claimed;        /* ranges it has claimed since it started, this one in */
} MetricsWorker;

/* Append the families of a shared worker to out: pgenrich_worker_info (always 1, the
 * identity in labels on that one series only, as an info metric), pgenrich_range_current,
 * pgenrich_range_fence and pgenrich_ranges_claimed_total. Returns false when out is full. */
bool metrics_render_worker(const MetricsWorker *w, Buf *out) WUR;

/* Append s to out as the inside of a label value: \ " and newline escaped. */
bool metrics_escape_label(Buf *out, const char *s) WUR;

/* ---------------------------------------------------------------- the scrape request */

#define METRICS_REQUEST_MAX 8192 /* bytes of a request head (request line and headers) */

typedef enum MetricsRoute {
    MR_INCOMPLETE,  /* the head has not ended yet: read more */
    MR_METRICS,     /* GET or HEAD /metrics: 200 with the exposition */
    MR_INDEX,       /* GET or HEAD /: 200 with a short page */
    MR_NOT_FOUND,   /* another path: 404 */
    MR_BAD_METHOD,  /* a method other than GET and HEAD: 405 */
    MR_BAD_REQUEST, /* not an HTTP/1.x request line, or a head over METRICS_REQUEST_MAX: 400 */
} MetricsRoute;

/* Parse what has arrived of a request, data[0..len) (any bytes, not NUL-terminated). The
 * head ends at an empty line (CRLF or LF line ends). The request line must be
 * "METHOD SP TARGET SP HTTP/1.x"; the target's query string is ignored. *head (may be
 * NULL) is set when the method is HEAD. Returns MR_INCOMPLETE while no empty line has come
 * and len is below METRICS_REQUEST_MAX, else the route. */
MetricsRoute metrics_parse_request(const char *data, size_t len, bool *head);

#endif
