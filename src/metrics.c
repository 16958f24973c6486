/* metrics: the registry the scheduler updates as things happen, and its rendering into the
 * Prometheus text format when a scrape asks; counters are plain integers so that the hot
 * path pays an increment, and every label set is rendered even at zero so that rate() sees
 * a series from the first scrape. */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const metrics_outcome_names[MO_COUNT] = {
    "ok",           "miss",         "not_found", "forbidden", "rate_limited",
    "client_error", "server_error", "timeout",   "network",   "bad_response"};

/* Upper bounds in seconds: requests from a fast local API to a slow remote one near the
 * default --timeout of 30 s; flushes from a small COPY to a large one behind a lock. */
static const double request_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,    2.5,   5,    10,  30};
static const double flush_bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

static void hist_init(MetricsHist *h, const double *bounds, int n)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->n_bounds = n;
}

static void hist_observe(MetricsHist *h, double v)
{
    if (!(v >= 0))
        v = 0; /* a clock step back, or NaN */
    int i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

void metrics_init(Metrics *m, double start_time)
{
    memset(m, 0, sizeof *m);
    m->start_time = start_time;
    hist_init(&m->flush, flush_bounds, (int)ARRAY_LEN(flush_bounds));
}

int metrics_add_provider(Metrics *m, const char *name)
{
    if (m->n_prov >= METRICS_PROVIDERS_MAX)
        return -1;
    MetricsProvider *p = &m->prov[m->n_prov];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    hist_init(&p->duration, request_bounds, (int)ARRAY_LEN(request_bounds));
    return m->n_prov++;
}

MetricsOutcome metrics_outcome(TransportErr terr, long status)
{
    switch (terr) {
    case TE_NONE:
        break;
    case TE_TIMEOUT:
        return MO_TIMEOUT;
    case TE_TOO_LARGE:
        return MO_BAD_RESPONSE;
    case TE_CONNECT:
    case TE_RESET:
    case TE_TRUNCATED:
    case TE_OTHER:
        return MO_NETWORK;
    }
    if (status == 200)
        return MO_OK;
    if (status == 403)
        return MO_FORBIDDEN;
    if (status == 404)
        return MO_NOT_FOUND;
    if (status == 429)
        return MO_RATE_LIMITED;
    if (status >= 400 && status <= 499)
        return MO_CLIENT_ERROR;
    if (status >= 500 && status <= 599)
        return MO_SERVER_ERROR;
    return MO_BAD_RESPONSE;
}

void metrics_request(Metrics *m, int prov, MetricsOutcome outcome, double seconds)
{
    if (prov < 0 || prov >= m->n_prov || outcome < 0 || outcome >= MO_COUNT)
        return;
    m->prov[prov].requests[outcome]++;
    hist_observe(&m->prov[prov].duration, seconds);
}

void metrics_retry(Metrics *m, int prov)
{
    if (prov >= 0 && prov < m->n_prov)
        m->prov[prov].retries++;
}

void metrics_batch_ignored(Metrics *m, int prov, unsigned long long unasked,
                           unsigned long long duplicates)
{
    if (prov >= 0 && prov < m->n_prov) {
        m->prov[prov].batch_unasked += unasked;
        m->prov[prov].batch_duplicates += duplicates;
    }
}

void metrics_flush(Metrics *m, double seconds)
{
    hist_observe(&m->flush, seconds);
}

void metrics_checkpoint(Metrics *m, bool has, double value)
{
    m->has_checkpoint = has && isfinite(value);
    m->checkpoint = m->has_checkpoint ? value : 0;
}

void metrics_page(Metrics *m, long long n, double now)
{
    if (n <= 0)
        return;
    m->ids_read += (unsigned long long)n;
    if (m->page_count == METRICS_PAGES_MAX) {
        /* Full: the newest entry stretches over this page too (its IDs look newer than
         * they are only once every page before them is settled). */
        m->page_end[(m->page_first + m->page_count - 1) % METRICS_PAGES_MAX] = m->ids_read;
        return;
    }
    int i = (m->page_first + m->page_count) % METRICS_PAGES_MAX;
    m->page_end[i] = m->ids_read;
    m->page_time[i] = now;
    m->page_count++;
}

double metrics_source_lag(Metrics *m, unsigned long long settled, double now)
{
    while (m->page_count > 0 && m->page_end[m->page_first] <= settled) {
        m->page_first = (m->page_first + 1) % METRICS_PAGES_MAX;
        m->page_count--;
    }
    if (m->page_count == 0)
        return 0;
    double lag = now - m->page_time[m->page_first];
    return lag > 0 ? lag : 0;
}

/* ---------------------------------------------------------------- rendering */

/* The shortest of %.15g and %.17g that reads back as v; Prometheus' own spellings of the
 * infinities and NaN. */
static bool put_double(Buf *out, double v)
{
    if (isnan(v))
        return buf_puts(out, "NaN");
    if (isinf(v))
        return buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    char s[40];
    snprintf(s, sizeof s, "%.15g", v);
    if (strtod(s, NULL) != v)
        snprintf(s, sizeof s, "%.17g", v);
    return buf_puts(out, s);
}

bool metrics_escape_label(Buf *out, const char *s)
{
    for (; *s; s++) {
        bool ok = *s == '\\'   ? buf_puts(out, "\\\\")
                  : *s == '"'  ? buf_puts(out, "\\\"")
                  : *s == '\n' ? buf_puts(out, "\\n")
                               : buf_putc(out, *s);
        if (!ok)
            return false;
    }
    return true;
}

/* # HELP and # TYPE of one family; help is static text without backslash or newline. */
static bool family(Buf *out, const char *name, const char *type, const char *help)
{
    return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{key="value"} or name (key NULL), then a space: the start of a sample line. */
static bool sample_start(Buf *out, const char *name, const char *key, const char *value)
{
    if (!buf_puts(out, name))
        return false;
    if (key != NULL && !(buf_printf(out, "{%s=\"", key) &&
                         metrics_escape_label(out, value ? value : "") && buf_puts(out, "\"}")))
        return false;
    return buf_putc(out, ' ');
}

static bool sample_u(Buf *out, const char *name, const char *key, const char *value,
                     unsigned long long v)
{
    return sample_start(out, name, key, value) && buf_printf(out, "%llu\n", v);
}

static bool sample_d(Buf *out, const char *name, const char *key, const char *value, double v)
{
    return sample_start(out, name, key, value) && put_double(out, v) && buf_putc(out, '\n');
}

/* The samples of a histogram: cumulative _bucket lines up to le="+Inf", _sum and _count;
 * with a provider label when prov is not NULL. */
static bool hist_samples(Buf *out, const char *name, const char *prov, const MetricsHist *h)
{
    unsigned long long cum = 0;
    bool ok = true;
    for (int i = 0; ok && i <= h->n_bounds; i++) {
        cum += h->counts[i];
        ok = buf_printf(out, "%s_bucket{", name);
        if (ok && prov != NULL)
            ok = buf_puts(out, "provider=\"") && metrics_escape_label(out, prov) &&
                 buf_puts(out, "\",");
        ok = ok && buf_puts(out, "le=\"");
        ok = ok && (i < h->n_bounds ? put_double(out, h->bounds[i]) : buf_puts(out, "+Inf"));
        ok = ok && buf_printf(out, "\"} %llu\n", cum);
    }
    char sub[96];
    snprintf(sub, sizeof sub, "%s_sum", name);
    ok = ok && sample_d(out, sub, prov ? "provider" : NULL, prov, h->sum);
    snprintf(sub, sizeof sub, "%s_count", name);
    return ok && sample_u(out, sub, prov ? "provider" : NULL, prov, h->count);
}

static bool render_requests(const Metrics *m, Buf *out)
{
    static const char name[] = "pgenrich_requests_total";
    bool ok = family(out, name, "counter", "HTTP requests that ended, by provider and outcome.");
    for (int p = 0; ok && p < m->n_prov; p++)
        for (int o = 0; ok && o < MO_COUNT; o++)
            ok = buf_printf(out, "%s{provider=\"", name) &&
                 metrics_escape_label(out, m->prov[p].name) &&
                 buf_printf(out, "\",outcome=\"%s\"} %llu\n", metrics_outcome_names[o],
                            m->prov[p].requests[o]);
    return ok;
}

/* The announced quotas: a family only when some provider announces one, a sample per
 * provider that does. */
static bool render_quota(const Metrics *m, const MetricsGauges *g, Buf *out)
{
    static const struct {
        const char *name, *help;
    } fam[3] = {
        {"pgenrich_quota_limit",
         "The quota a provider announces (RateLimit-Limit): requests per window; 0 when it "
         "announces none."},
        {"pgenrich_quota_remaining",
         "Requests left in the provider's quota window, as estimated now: the last Remaining "
         "announced less the requests sent since."},
        {"pgenrich_quota_rate_requests_per_second",
         "The rate the provider is paced at so that its quota lasts until the reset; 0 while "
         "it is spent."},
    };
    bool any = false, ok = true;
    for (int p = 0; g->quota != NULL && p < m->n_prov; p++)
        any = any || g->quota[p].known;
    for (int f = 0; any && ok && f < 3; f++) {
        ok = family(out, fam[f].name, "gauge", fam[f].help);
        for (int p = 0; ok && p < m->n_prov; p++) {
            const MetricsQuota *q = &g->quota[p];
            if (q->known)
                ok = sample_d(out, fam[f].name, "provider", m->prov[p].name,
                              f == 0   ? q->limit
                              : f == 1 ? q->remaining
                                       : q->rate);
        }
    }
    return ok;
}

bool metrics_render(const Metrics *m, const MetricsGauges *g, Buf *out)
{
    bool ok = family(out, "pgenrich_build_info", "gauge",
                     "Always 1; the version of pgenrich in a label.") &&
              sample_u(out, "pgenrich_build_info", "version", PGENRICH_VERSION, 1) &&
              family(out, "pgenrich_start_time_seconds", "gauge",
                     "When the run started, in seconds since the Unix epoch.") &&
              sample_d(out, "pgenrich_start_time_seconds", NULL, NULL, m->start_time);

    ok = ok && render_requests(m, out);

    ok = ok && family(out, "pgenrich_retries_total", "counter",
                      "Retries scheduled after a transient failure, by provider.");
    for (int p = 0; ok && p < m->n_prov; p++)
        ok = sample_u(out, "pgenrich_retries_total", "provider", m->prov[p].name,
                      m->prov[p].retries);
    static const char ign[] = "pgenrich_batch_results_ignored_total";
    ok = ok && family(out, ign, "counter",
                      "Results of batch answers set aside, by provider and reason: unasked (an "
                      "ID not asked, or no usable id) or duplicate (an earlier result of an ID "
                      "answered twice; the last one wins).");
    for (int p = 0; ok && p < m->n_prov; p++)
        for (int k = 0; ok && k < 2; k++)
            ok = buf_printf(out, "%s{provider=\"", ign) &&
                 metrics_escape_label(out, m->prov[p].name) &&
                 buf_printf(out, "\",reason=\"%s\"} %llu\n", k ? "duplicate" : "unasked",
                            k ? m->prov[p].batch_duplicates : m->prov[p].batch_unasked);
    ok = ok && family(out, "pgenrich_rate_limited_total", "counter",
                      "Answers with status 429 (Too Many Requests), by provider.");
    for (int p = 0; ok && p < m->n_prov; p++)
        ok = sample_u(out, "pgenrich_rate_limited_total", "provider", m->prov[p].name,
                      m->prov[p].requests[MO_RATE_LIMITED]);

    ok = ok &&
         family(out, "pgenrich_rate_limit_requests_per_second", "gauge",
                "The configured request rate limit (--rate); 0 means none.") &&
         sample_d(out, "pgenrich_rate_limit_requests_per_second", NULL, NULL, g->rate_limit) &&
         family(out, "pgenrich_rate_requests_per_second", "gauge",
                "The request rate now applied, lowered by 429s and raised again by healthy "
                "answers; 0 means no limit.") &&
         sample_d(out, "pgenrich_rate_requests_per_second", NULL, NULL, g->rate) &&
         family(out, "pgenrich_in_flight_requests", "gauge",
                "Requests started and not yet ended.") &&
         sample_u(out, "pgenrich_in_flight_requests", NULL, NULL,
                  g->in_flight > 0 ? (unsigned long long)g->in_flight : 0);

    ok = ok && family(out, "pgenrich_request_duration_seconds", "histogram",
                      "Time from sending a request to its end, by provider.");
    for (int p = 0; ok && p < m->n_prov; p++)
        ok = hist_samples(out, "pgenrich_request_duration_seconds", m->prov[p].name,
                          &m->prov[p].duration);

    ok = ok && family(out, "pgenrich_ids_read_total", "counter", "IDs read from the source.") &&
         sample_u(out, "pgenrich_ids_read_total", NULL, NULL, m->ids_read) &&
         family(out, "pgenrich_rows_loaded_total", "counter",
                "Rows committed to the target table.") &&
         sample_u(out, "pgenrich_rows_loaded_total", NULL, NULL,
                  g->rows_loaded > 0 ? (unsigned long long)g->rows_loaded : 0) &&
         family(out, "pgenrich_failures_total", "counter",
                "Lookups that ended without a row, committed, by reason (those whose ID kept its "
                "target row included).");
    for (int r = 0; ok && r < g->n_reasons; r++)
        ok = sample_u(out, "pgenrich_failures_total", "reason", g->reason_names[r],
                      g->failures[r] > 0 ? (unsigned long long)g->failures[r] : 0);
    ok = ok &&
         family(out, "pgenrich_failures_kept_total", "counter",
                "Failed lookups of IDs that have a target row, which was left as it was.") &&
         sample_u(out, "pgenrich_failures_kept_total", NULL, NULL,
                  g->failures_kept > 0 ? (unsigned long long)g->failures_kept : 0);

    if (ok && m->has_checkpoint)
        ok = family(out, "pgenrich_checkpoint_position", "gauge",
                    "The committed checkpoint: the last key settled (a numeric key) or the "
                    "rows settled (offset paging).") &&
             sample_d(out, "pgenrich_checkpoint_position", NULL, NULL, m->checkpoint);

    ok = ok &&
         family(out, "pgenrich_flush_duration_seconds", "histogram",
                "Time a flush took to commit its batch to the database.") &&
         hist_samples(out, "pgenrich_flush_duration_seconds", NULL, &m->flush);
    ok = ok &&
         family(out, "pgenrich_source_lag_seconds", "gauge",
                "Seconds since the page holding the oldest unsettled ID was read from the "
                "source; 0 when every ID read is settled.") &&
         sample_d(out, "pgenrich_source_lag_seconds", NULL, NULL, g->source_lag);
    return ok && render_quota(m, g, out);
}

bool metrics_render_worker(const MetricsWorker *w, Buf *out)
{
    return family(out, "pgenrich_worker_info", "gauge",
                  "Always 1; a shared worker's identity (run --shared) in labels: its job, its "
                  "owner id in the ranges table and its host.") &&
           buf_puts(out, "pgenrich_worker_info{job=\"") &&
           metrics_escape_label(out, w->job ? w->job : "") && buf_puts(out, "\",worker=\"") &&
           metrics_escape_label(out, w->worker ? w->worker : "") && buf_puts(out, "\",host=\"") &&
           metrics_escape_label(out, w->host ? w->host : "") && buf_puts(out, "\"} 1\n") &&
           family(out, "pgenrich_range_current", "gauge",
                  "The range of the job this worker works on now (its range_no).") &&
           sample_d(out, "pgenrich_range_current", NULL, NULL, (double)w->range_no) &&
           family(out, "pgenrich_range_fence", "gauge",
                  "The fencing token of this worker's claim on its range; it grows at every "
                  "claim of the range.") &&
           sample_d(out, "pgenrich_range_fence", NULL, NULL, (double)w->fence) &&
           family(out, "pgenrich_ranges_claimed_total", "counter",
                  "Ranges this worker has claimed since it started, the current one included.") &&
           sample_u(out, "pgenrich_ranges_claimed_total", NULL, NULL,
                    w->ranges_claimed > 0 ? (unsigned long long)w->ranges_claimed : 0);
}

/* ---------------------------------------------------------------- the scrape request */

/* The offset just past the empty line that ends the head, or 0 if none has come. */
static size_t head_end(const char *d, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (d[i] != '\n')
            continue;
        if (i + 1 < len && d[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && d[i + 1] == '\r' && d[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

MetricsRoute metrics_parse_request(const char *data, size_t len, bool *head)
{
    if (head != NULL)
        *head = false;
    size_t end = head_end(data, len < METRICS_REQUEST_MAX ? len : METRICS_REQUEST_MAX);
    if (end == 0)
        return len < METRICS_REQUEST_MAX ? MR_INCOMPLETE : MR_BAD_REQUEST;

    const char *line = data, *eol = memchr(data, '\n', end);
    size_t n = (size_t)(eol - line);
    if (n > 0 && line[n - 1] == '\r')
        n--;
    size_t m = 0;
    while (m < n && is_tchar((unsigned char)line[m]))
        m++;
    if (m == 0 || m == n || line[m] != ' ')
        return MR_BAD_REQUEST;
    size_t t0 = m + 1, t1 = t0;
    while (t1 < n && line[t1] != ' ') {
        unsigned char c = (unsigned char)line[t1];
        if (c <= 0x20 || c == 0x7f)
            return MR_BAD_REQUEST;
        t1++;
    }
    if (t1 == t0 || t1 == n)
        return MR_BAD_REQUEST;
    const char *ver = line + t1 + 1;
    size_t vlen = n - t1 - 1;
    if (vlen != 8 || memcmp(ver, "HTTP/1.", 7) != 0 || ver[7] < '0' || ver[7] > '9')
        return MR_BAD_REQUEST;

    bool is_get = m == 3 && memcmp(line, "GET", 3) == 0;
    bool is_head = m == 4 && memcmp(line, "HEAD", 4) == 0;
    if (!is_get && !is_head)
        return MR_BAD_METHOD;
    if (head != NULL)
        *head = is_head;
    size_t plen = t1 - t0;
    const char *q = memchr(line + t0, '?', plen);
    if (q != NULL)
        plen = (size_t)(q - (line + t0));
    if (plen == 1 && line[t0] == '/')
        return MR_INDEX;
    if (plen == 8 && memcmp(line + t0, "/metrics", 8) == 0)
        return MR_METRICS;
    return MR_NOT_FOUND;
}
