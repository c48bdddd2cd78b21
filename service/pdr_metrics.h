/* pdr_metrics.h: the HTTP service's counters, rendered in the Prometheus text format at
 * GET /metrics.
 *
 *   pdr_http_requests_total{endpoint="search",code="200"}   requests by endpoint and status
 *   pdr_http_request_duration_seconds_bucket{le="0.005"}     latency histogram (+ _sum, _count),
 *                                                            from the first byte of the request
 *                                                            to the last byte of the reply
 *   pdr_http_requests_in_flight                              requests being read, run or sent
 *   pdr_http_requests_closed_total{endpoint="search"}        requests whose connection closed before
 *                                                            a reply was sent (logged as status 0)
 *   pdr_http_connections_total                               connections accepted
 *   pdr_http_connections_without_request_total               connections closed before any request
 *                                                            reached pdr: idle, or answered by
 *                                                            libmicrohttpd itself (400, 431, 505),
 *                                                            which requests_total cannot count
 *   pdr_queries_total                                        query sequences searched
 *   pdr_sequences_embedded_total, pdr_residues_embedded_total  what the encoder did (search + embed)
 *
 * One mutex guards everything: an update is a handful of additions, negligible next to a
 * request, and a scrape sees a consistent snapshot. Thread-safe.
 */
#ifndef PDR_METRICS_H
#define PDR_METRICS_H

#include <stddef.h>

#include "pdr_buf.h"
#include "pdr_err.h"

/* The endpoint label: fixed, so that unknown paths cannot grow the label set. */
enum pdr_endpoint {
    PDR_EP_SEARCH,
    PDR_EP_EMBED,
    PDR_EP_HEALTH,
    PDR_EP_INFO,
    PDR_EP_METRICS,
    PDR_EP_PAGE,
    PDR_EP_OPENAPI,
    PDR_EP_OTHER, /* unknown paths (404) */
    PDR_EP_COUNT
};

typedef struct pdr_metrics pdr_metrics;

int pdr_metrics_create(pdr_metrics **ret_metrics, pdr_err *err);
void pdr_metrics_free(pdr_metrics *m);

/* The label value of an endpoint ("search", ..., "other"). */
const char *pdr_endpoint_name(int endpoint);

void pdr_metrics_request_started(pdr_metrics *m);
/* A request has ended: reply sent (counted by status, and in the latency histogram), or the
 * connection closed before a reply (status 0: counted in pdr_http_requests_closed_total only). */
void pdr_metrics_request_done(pdr_metrics *m, int endpoint, int status, double seconds);
/* A connection was accepted; a connection closed, with or without a request that reached pdr. */
void pdr_metrics_connection_opened(pdr_metrics *m);
void pdr_metrics_connection_closed(pdr_metrics *m, int had_request);
/* Work done by the encoder and the index for one request. */
void pdr_metrics_add_work(pdr_metrics *m, size_t n_queries, size_t n_sequences, size_t n_residues);

/* Append every metric in the text exposition format (version 0.0.4) to out. */
void pdr_metrics_render(pdr_metrics *m, pdr_buf *out);

#endif
