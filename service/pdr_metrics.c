/* pdr_metrics.c: counters and the latency histogram behind GET /metrics (see pdr_metrics.h). */
#include "pdr_metrics.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define STATUS_MIN 100
#define STATUS_MAX 599

/* Upper bounds of the latency buckets, seconds: the targets (p50 15 ms, p99 50 ms) fall
 * between buckets, so a scrape can tell whether they are met. */
static const double bucket_le[] = {0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_BUCKETS (sizeof bucket_le / sizeof bucket_le[0])

struct pdr_metrics {
    pthread_mutex_t lock;
    uint64_t by_status[PDR_EP_COUNT][STATUS_MAX - STATUS_MIN + 1];
    uint64_t buckets[N_BUCKETS + 1]; /* last: +Inf */
    double seconds_sum;
    uint64_t n_done;
    int64_t in_flight;
    uint64_t closed[PDR_EP_COUNT]; /* requests closed before a reply */
    uint64_t n_connections, n_connections_without_request;
    uint64_t n_queries, n_sequences, n_residues;
};

static const char *const endpoint_names[PDR_EP_COUNT] = {"search",  "embed", "health",  "info",
                                                         "metrics", "page",  "openapi", "other"};

const char *pdr_endpoint_name(int endpoint)
{
    return endpoint >= 0 && endpoint < PDR_EP_COUNT ? endpoint_names[endpoint] : "other";
}

int pdr_metrics_create(pdr_metrics **ret_metrics, pdr_err *err)
{
    pdr_metrics *m = calloc(1, sizeof *m);
    *ret_metrics = NULL;
    if (!m)
        return pdr_fail(err, PDR_ENOMEM, "out of memory for metrics");
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return pdr_fail(err, PDR_EINTERNAL, "cannot create the metrics mutex");
    }
    *ret_metrics = m;
    return PDR_OK;
}

void pdr_metrics_free(pdr_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void pdr_metrics_request_started(pdr_metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->in_flight++;
    pthread_mutex_unlock(&m->lock);
}

void pdr_metrics_request_done(pdr_metrics *m, int endpoint, int status, double seconds)
{
    if (endpoint < 0 || endpoint >= PDR_EP_COUNT)
        endpoint = PDR_EP_OTHER;
    size_t b = 0;
    while (b < N_BUCKETS && seconds > bucket_le[b])
        b++;
    pthread_mutex_lock(&m->lock);
    m->in_flight--;
    if (status >= STATUS_MIN && status <= STATUS_MAX) {
        m->by_status[endpoint][status - STATUS_MIN]++;
        m->buckets[b]++;
        m->seconds_sum += seconds;
        m->n_done++;
    } else {
        m->closed[endpoint]++;
    }
    pthread_mutex_unlock(&m->lock);
}

void pdr_metrics_connection_opened(pdr_metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->n_connections++;
    pthread_mutex_unlock(&m->lock);
}

void pdr_metrics_connection_closed(pdr_metrics *m, int had_request)
{
    if (had_request)
        return;
    pthread_mutex_lock(&m->lock);
    m->n_connections_without_request++;
    pthread_mutex_unlock(&m->lock);
}

void pdr_metrics_add_work(pdr_metrics *m, size_t n_queries, size_t n_sequences, size_t n_residues)
{
    pthread_mutex_lock(&m->lock);
    m->n_queries += n_queries;
    m->n_sequences += n_sequences;
    m->n_residues += n_residues;
    pthread_mutex_unlock(&m->lock);
}

void pdr_metrics_render(pdr_metrics *m, pdr_buf *out)
{
    pthread_mutex_lock(&m->lock);
    pdr_buf_puts(out, "# HELP pdr_http_requests_total HTTP requests answered, by endpoint and status code.\n"
                      "# TYPE pdr_http_requests_total counter\n");
    for (int e = 0; e < PDR_EP_COUNT; e++)
        for (int s = 0; s <= STATUS_MAX - STATUS_MIN; s++)
            if (m->by_status[e][s])
                pdr_buf_printf(out, "pdr_http_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n", endpoint_names[e],
                               s + STATUS_MIN, (unsigned long long)m->by_status[e][s]);
    pdr_buf_puts(out, "# HELP pdr_http_request_duration_seconds Time from the first byte of a request to the "
                      "last byte of its reply.\n"
                      "# TYPE pdr_http_request_duration_seconds histogram\n");
    uint64_t cumulative = 0;
    for (size_t b = 0; b < N_BUCKETS; b++) {
        cumulative += m->buckets[b];
        pdr_buf_printf(out, "pdr_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n", bucket_le[b],
                       (unsigned long long)cumulative);
    }
    cumulative += m->buckets[N_BUCKETS];
    pdr_buf_printf(out, "pdr_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
    pdr_buf_printf(out, "pdr_http_request_duration_seconds_sum %.6f\n", m->seconds_sum);
    pdr_buf_printf(out, "pdr_http_request_duration_seconds_count %llu\n", (unsigned long long)m->n_done);
    pdr_buf_puts(out, "# HELP pdr_http_requests_closed_total HTTP requests whose connection closed before a reply "
                      "was sent (logged as status 0), by endpoint.\n"
                      "# TYPE pdr_http_requests_closed_total counter\n");
    for (int e = 0; e < PDR_EP_COUNT; e++)
        if (m->closed[e])
            pdr_buf_printf(out, "pdr_http_requests_closed_total{endpoint=\"%s\"} %llu\n", endpoint_names[e],
                           (unsigned long long)m->closed[e]);
    pdr_buf_printf(out,
                   "# HELP pdr_http_connections_total TCP connections accepted.\n"
                   "# TYPE pdr_http_connections_total counter\n"
                   "pdr_http_connections_total %llu\n"
                   "# HELP pdr_http_connections_without_request_total Connections closed before any request reached "
                   "pdr: idle, or answered by libmicrohttpd itself (400 malformed request, 431, 505), which "
                   "pdr_http_requests_total does not count.\n"
                   "# TYPE pdr_http_connections_without_request_total counter\n"
                   "pdr_http_connections_without_request_total %llu\n",
                   (unsigned long long)m->n_connections, (unsigned long long)m->n_connections_without_request);
    pdr_buf_printf(
        out,
        "# HELP pdr_http_requests_in_flight Requests being received, processed or sent (this scrape included).\n"
        "# TYPE pdr_http_requests_in_flight gauge\n"
        "pdr_http_requests_in_flight %lld\n"
        "# HELP pdr_queries_total Query sequences searched.\n"
        "# TYPE pdr_queries_total counter\n"
        "pdr_queries_total %llu\n"
        "# HELP pdr_sequences_embedded_total Sequences run through the encoder (search and embed).\n"
        "# TYPE pdr_sequences_embedded_total counter\n"
        "pdr_sequences_embedded_total %llu\n"
        "# HELP pdr_residues_embedded_total Residues run through the encoder (search and embed).\n"
        "# TYPE pdr_residues_embedded_total counter\n"
        "pdr_residues_embedded_total %llu\n",
        (long long)m->in_flight, (unsigned long long)m->n_queries, (unsigned long long)m->n_sequences,
        (unsigned long long)m->n_residues);
    pthread_mutex_unlock(&m->lock);
}
