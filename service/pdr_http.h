/* pdr_http.h: the HTTP front of `pdr serve`: a libmicrohttpd daemon that reads requests off
 * connections and hands them to pdr_api_handle (pdr_api.h), which decides every reply.
 *
 * What this layer owns:
 *  - the listening socket (host name or numeric IPv4/IPv6 address, port; port 0 = any free port,
 *    read back with pdr_http_port), one event-loop thread that reads and writes every
 *    connection, and a pool of `threads` worker threads fed by one queue: searches and
 *    embeddings wait in arrival order for the next free worker (their connection suspended
 *    meanwhile), so `threads` of them run at once whichever connections they came on. Health,
 *    info, metrics and the page are answered on the event-loop thread without queueing;
 *  - transport limits: the request body (max_body_bytes: when Content-Length says it is too
 *    large, 413 at once to a client waiting for 100 Continue, else after the body is read and
 *    discarded, up to 16 x max_body_bytes, past which at once with the connection closed; a
 *    chunked body that grows past it is read to its end,
 *    discarded, and answered 413, since libmicrohttpd cannot reply while a body arrives), the
 *    number of open connections (further ones wait in the kernel's accept queue until one
 *    closes), an idle timeout per connection, and a deadline for a request's whole body (the
 *    connection is closed, logged and counted as 408, when a client trickles its upload or
 *    sends an endless one);
 *  - one log line per request (timestamp, client, method, path, status, milliseconds, queries;
 *    status 0 when the connection closed before a reply) and the request and connection
 *    metrics (pdr_metrics.h). Replies libmicrohttpd makes itself (400 for a malformed request
 *    line or Content-Length, 431, 505) never reach this layer: they are neither logged nor
 *    counted by status, only as connections without a request;
 *  - the Host check (pdr_host.h): a request whose Host is not allowed gets a 403
 *    host_not_allowed when its headers are in;
 *  - CORS (pdr_cors.h), when origins are configured: every reply to a request from an allowed
 *    Origin, errors included, carries Access-Control-Allow-Origin and -Expose-Headers (and every
 *    reply Vary: Origin); a preflight (OPTIONS with Origin and Access-Control-Request-Method on
 *    a known path) is answered here, after the Host check and before the token and the other
 *    checks of pdr_api_precheck: 204 with the path's methods for an allowed origin, 403
 *    origin_not_allowed without CORS headers for another. Without CORS, OPTIONS is a 405 as any
 *    other method a path does not take;
 *  - a clean stop: stop accepting, let the requests in flight finish, close.
 *
 * Thread-safety: start and stop from one thread; the api must outlive the server.
 */
#ifndef PDR_HTTP_H
#define PDR_HTTP_H

#include <stdio.h>

#include "pdr_api.h"
#include "pdr_err.h"

#define PDR_HTTP_MAX_CONNECTIONS_DEFAULT 256
#define PDR_HTTP_TIMEOUT_S_DEFAULT 30
#define PDR_HTTP_REQUEST_TIMEOUT_S_DEFAULT 60

typedef struct pdr_http_opts {
    const char *host;         /* "127.0.0.1" by default; "0.0.0.0" or "::" for every interface */
    int port;                 /* 8080 by default; 0: any free port */
    int threads;              /* worker threads (>= 1) */
    unsigned max_connections; /* open connections at most */
    unsigned timeout_s;       /* close a connection idle this long */
    double request_timeout_s; /* close a connection whose request has not arrived in full this long
                                 after its first line (408; slow uploads, trickled headers); > 0 */
    FILE *log;                /* request log (one line each); NULL: none */
    const char *allow_host;   /* Host names answered besides localhost and IP addresses (pdr_host.h):
                                 NULL: check only on a loopback address; "*": never check */
    const char *cors_origin;  /* origins whose pages may call the API (pdr_cors.h), comma-separated;
                                 "*": any; NULL: CORS off (no Access-Control-* headers) */
    int log_forwarded_for;    /* 1: the request log adds " for=" and the X-Forwarded-For header (as
                                 a reverse proxy wrote it; a client that reaches the server directly
                                 can write anything there: for behind a proxy only) */
} pdr_http_opts;

void pdr_http_opts_default(pdr_http_opts *opts);

typedef struct pdr_http pdr_http;

/* Listen and start answering with api (which may not be ready yet: see pdr_api_set_ready).
 * Fails with PDR_EIO when the address cannot be resolved or bound ("127.0.0.1:8080: Address
 * already in use"), PDR_EINPUT for bad options (a malformed allow_host or cors_origin list). */
int pdr_http_start(pdr_api *api, const pdr_http_opts *opts, pdr_http **ret_http, pdr_err *err);

/* The port actually bound (useful with port 0). */
int pdr_http_port(const pdr_http *http);

/* Requests received and not yet fully answered. */
int pdr_http_in_flight(const pdr_http *http);

/* Stop: refuse new connections at once (the listening socket is shut down), wait up to grace_ms
 * for the requests in flight to be answered, then answer the jobs still queued 503
 * shutting_down at once (the ones a worker is running finish), close every connection and join
 * the threads. Returns the number of queued jobs answered 503 (0 when everything in flight was
 * answered within the grace period). Frees http. NULL is fine. */
int pdr_http_stop(pdr_http *http, int grace_ms);

#endif
