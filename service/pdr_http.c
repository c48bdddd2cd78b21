/* pdr_http.c: libmicrohttpd glue for `pdr serve` (see pdr_http.h).
 *
 * libmicrohttpd calls on_request several times per request, always on its one event-loop
 * thread: once when the headers are in (we set up the per-request state in *req_cls, and may
 * refuse a too large body at once), once per chunk of body (appended, or discarded past the
 * limit), and once more with no data, when the reply is due. That call builds a
 * pdr_api_request. Searches and embeddings then go to the job queue: the connection is
 * suspended, a worker thread runs pdr_api_handle and resumes the connection, and libmicrohttpd
 * calls on_request once more, which sends the reply the worker left in the request. Cheap
 * endpoints (health, info, metrics, page) are answered at once on the event-loop thread, so a
 * health check never waits behind queued searches. on_completed runs after the reply is sent
 * (or the connection died): it logs, counts, frees.
 *
 * Deadlines: libmicrohttpd's --timeout is an idle timeout, which a client sending a byte now
 * and then never reaches. A watchdog thread closes (shutdown) every connection whose request has
 * not arrived in full (headers and body) within --request-timeout of its first line, or whose
 * first line has not come within max(--timeout, --request-timeout) of the connection opening or
 * of its previous reply: headers trickled line by line included (slowloris). Requests whose
 * body is in are never closed by it. At stop it closes the connections that wait for a request (a request
 * whose headers are in may still finish within the grace period).
 *
 * A client that hangs up: its queued job is not computed, and a running one stops at its next
 * sequence or query (pdr_cancel, asked through a MSG_PEEK recv on the suspended connection's
 * socket), so that nobody's abandoned work holds a worker.
 *
 * Why a queue: with libmicrohttpd's own thread pool each thread keeps the connections it
 * accepted, and when a client's keep-alive connections all land on one thread the other cores
 * sit idle (seen with wrk: half the throughput in every other run). Here any idle worker takes
 * the next job, whatever connection it came on.
 */
#include "pdr_http.h"
#include "pdr_cors.h"
#include "pdr_host.h"
#include "pdr_utf8.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

struct pdr_http {
    struct MHD_Daemon *daemon;
    pdr_api *api;
    FILE *log;
    size_t max_body_bytes;
    pdr_host_policy *hosts;   /* which Host headers are answered (DNS rebinding) */
    pdr_cors_policy *cors;    /* which origins' pages may read the replies; NULL: CORS off */
    double request_timeout_s; /* a request must arrive in full within this of its first line */
    double idle_timeout_s;    /* libmicrohttpd's --timeout */
    int log_forwarded_for;    /* pdr_http_opts.log_forwarded_for */
    int port;
    atomic_int in_flight;
    atomic_int started;  /* MHD_start_daemon has returned */
    char mhd_error[256]; /* libmicrohttpd's last message during start, for our error */

    /* The job queue: requests whose connection is suspended, oldest first. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct request *head, *tail;
    int stopping; /* set by pdr_http_stop after the grace period: queued jobs get a 503 */
    int n_workers;
    pthread_t *workers;

    /* Open connections, for the watchdog (file comment). conn_mu guards the list and every
     * connection_state's phase, since and timed_out. */
    pthread_mutex_t conn_mu;
    pthread_cond_t conn_cv; /* wakes the watchdog at stop */
    struct connection_state *conns;
    int closing;       /* pdr_http_stop: close every connection that waits for a request */
    int watchdog_stop; /* the watchdog returns */
    int has_watchdog;
    pthread_t watchdog;
};

/* A body declared over --max-body is read and discarded before its 413 up to this many times
 * --max-body (so that clients that send it without waiting for 100 Continue read the reply);
 * past that the 413 comes at once and the connection closes. */
#define DISCARD_FACTOR 16

enum { REQ_READING, REQ_QUEUED, REQ_ANSWERED };
enum { SKIP_NONE, SKIP_QUEUED, SKIP_RUNNING };

typedef struct request {
    double t0;
    char method[16];
    char path[256]; /* for the log only (sanitized, truncated); the handler gets MHD's url */
    char client[INET6_ADDRSTRLEN];
    char forwarded[136]; /* X-Forwarded-For for the log (log_forwarded_for), or "" */
    char *body;
    size_t body_len, body_cap;
    int too_large;               /* or refused at once: the body is discarded */
    int refused;                 /* refused when its headers came in (rep holds the reply): the body is read and
                      discarded, then the reply is sent (keep-alive kept) */
    size_t discarded;            /* body bytes of a refused request, read and dropped */
    size_t discard_cap;          /* past this many the connection closes */
    unsigned long long declared; /* Content-Length, or 0 when absent (or unreadable) */
    int skipped;                 /* its client hung up: SKIP_QUEUED (not computed) or SKIP_RUNNING (stopped) */
    int status, endpoint;
    /* CORS (pdr_cors.h), decided when the headers are in; the strings are static or borrowed
     * from libmicrohttpd (the Origin header), valid until the request completes */
    int cors;                      /* CORS is on: the reply varies with Origin */
    const char *cors_allow;        /* Access-Control-Allow-Origin, or NULL: no CORS headers */
    const char *preflight_methods; /* a preflight's 204: the methods its path takes */
    int preflight_private_network; /* it asked for Access-Control-Allow-Private-Network */
    struct connection_state *cs;   /* its connection's (NULL when that could not be allocated) */
    char log_note[PDR_ERRLEN + 32];
    size_t n_queries;
    /* Set while the request waits for a worker (state REQ_QUEUED) and when it comes back. */
    atomic_int state;
    struct MHD_Connection *conn;
    pdr_api_request q; /* strings borrowed from libmicrohttpd: valid until the request completes */
    pdr_cancel cancel; /* q.cancel of a queued job: its client hung up (client_gone) */
    pdr_api_reply rep; /* the worker's answer, sent by on_request (REQ_ANSWERED), or the refusal */
    struct request *next;
} request;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void pdr_http_opts_default(pdr_http_opts *opts)
{
    opts->host = "127.0.0.1";
    opts->port = 8080;
    opts->threads = 1;
    opts->max_connections = PDR_HTTP_MAX_CONNECTIONS_DEFAULT;
    opts->timeout_s = PDR_HTTP_TIMEOUT_S_DEFAULT;
    opts->request_timeout_s = PDR_HTTP_REQUEST_TIMEOUT_S_DEFAULT;
    opts->log = NULL;
    opts->allow_host = NULL;
    opts->cors_origin = NULL;
    opts->log_forwarded_for = 0;
}

/* ================================================================ replies */

/* The CORS headers of a reply (pdr_http.h): on every reply, errors included, since a page reads
 * an error's JSON only when its reply names the page's origin. */
static void add_cors_headers(struct MHD_Response *resp, const request *r)
{
    if (!r->cors)
        return;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
    if (!r->cors_allow)
        return;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, r->cors_allow);
    if (!r->preflight_methods) {
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", PDR_CORS_EXPOSE_HEADERS);
        return;
    }
    char max_age[16];
    snprintf(max_age, sizeof max_age, "%d", PDR_CORS_MAX_AGE_S);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", r->preflight_methods);
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", PDR_CORS_ALLOW_HEADERS);
    MHD_add_response_header(resp, "Access-Control-Max-Age", max_age);
    if (r->preflight_private_network) /* Chrome's Private Network Access: a public page calling a local server */
        MHD_add_response_header(resp, "Access-Control-Allow-Private-Network", "true");
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, request *r, pdr_api_reply *rep)
{
    static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}\n";
    size_t len = 0;
    int failed = pdr_buf_failed(&rep->body);
    char *data = failed ? NULL : pdr_buf_steal(&rep->body, &len);
    struct MHD_Response *resp;
    if (failed) {
        rep->status = 500;
        rep->content_type = "application/json";
        resp = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
    } else if (!data) {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
        if (!resp)
            free(data);
    }
    if (!resp)
        return MHD_NO; /* out of memory: MHD closes the connection */
    if (rep->status != 204)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                rep->content_type ? rep->content_type : "text/plain");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (rep->endpoint == PDR_EP_PAGE) /* img-src data: the page's empty icon, which spares a /favicon.ico 404 */
        MHD_add_response_header(
            resp, "Content-Security-Policy",
            "default-src 'self'; img-src data:; script-src 'unsafe-inline'; style-src 'unsafe-inline'");
    if (rep->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rep->allow);
    if (rep->auth_challenge)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (rep->close_connection)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (rep->retry_after_s > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", rep->retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    add_cors_headers(resp, r);
    r->status = rep->status;
    r->endpoint = rep->endpoint;
    r->n_queries = rep->n_queries;
    memcpy(r->log_note, rep->log_note, sizeof r->log_note);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)rep->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The 413 of a body over --max-body, into rep: from this layer, which enforces the limit while
 * reading, before pdr_api sees anything. */
static void too_large_reply(const pdr_http *h, const request *r, pdr_api_reply *rep)
{
    rep->endpoint = r->endpoint;
    pdr_api_reply_error(rep, 413, "body_too_large",
                        "the request body is larger than the limit of %zu bytes (pdr serve --max-body)",
                        h->max_body_bytes);
}

static enum MHD_Result send_too_large(const pdr_http *h, struct MHD_Connection *conn, request *r)
{
    pdr_api_reply rep;
    pdr_api_reply_init(&rep);
    too_large_reply(h, r, &rep);
    enum MHD_Result ret = send_reply(conn, r, &rep);
    pdr_api_reply_clear(&rep);
    return ret;
}

/* ================================================================ request handling */

/* One query-string parameter, with its decoded lengths: "?k=5%00junk" decodes to "5", NUL,
 * "junk", which as a C string would read as "5"; pdr_api refuses it instead. */
static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                   const char *value, size_t value_size)
{
    (void)kind;
    pdr_api_request *q = cls;
    if (q->n_args == PDR_API_MAX_ARGS) {
        q->too_many_args = 1;
        return MHD_NO;
    }
    q->arg_names[q->n_args] = key;
    q->arg_values[q->n_args] = value;
    q->arg_name_has_nul[q->n_args] = strlen(key) != key_size;
    q->arg_value_has_nul[q->n_args] = value && strlen(value) != value_size;
    q->n_args++;
    return MHD_YES;
}

/* Per connection (MHD_OPTION_NOTIFY_CONNECTION): how many requests reached on_request. A
 * connection closed with none was idle, or was answered by libmicrohttpd itself (a malformed
 * request line or Content-Length, oversize headers, an unsupported HTTP version): those replies
 * never reach this file, so they are counted here, as connections. */
/* waiting for a request's first line, for its headers, reading its body, answering it */
enum { CONN_WAITING, CONN_HEADERS, CONN_READING, CONN_ANSWERING };

typedef struct connection_state {
    size_t n_requests;
    MHD_socket fd;
    int phase;               /* CONN_* */
    double since;            /* WAITING: since it opened or its last reply; then: since the request's first line */
    int timed_out;           /* closed by the watchdog */
    const char *decoded_nul; /* the last decoded string that held a NUL (unescape; event loop only) */
    struct connection_state *prev, *next; /* h->conns */
} connection_state;

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    pdr_http *h = cls;
    pdr_metrics *m = pdr_api_metrics(h->api);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        connection_state *cs = ci ? calloc(1, sizeof *cs) : NULL; /* NULL (out of memory): not counted */
        *socket_context = cs;
        if (!cs)
            return;
        cs->fd = ci->connect_fd;
        cs->phase = CONN_WAITING;
        cs->since = now_s();
        pthread_mutex_lock(&h->conn_mu);
        cs->next = h->conns;
        if (h->conns)
            h->conns->prev = cs;
        h->conns = cs;
        pthread_mutex_unlock(&h->conn_mu);
        pdr_metrics_connection_opened(m);
        return;
    }
    connection_state *cs = *socket_context;
    if (!cs)
        return;
    /* before libmicrohttpd closes the socket: the watchdog never shuts down a reused fd */
    pthread_mutex_lock(&h->conn_mu);
    if (cs->prev)
        cs->prev->next = cs->next;
    else
        h->conns = cs->next;
    if (cs->next)
        cs->next->prev = cs->prev;
    pthread_mutex_unlock(&h->conn_mu);
    pdr_metrics_connection_closed(m, cs->n_requests > 0);
    free(cs);
    *socket_context = NULL;
}

static void set_phase(pdr_http *h, connection_state *cs, int phase)
{
    if (!cs)
        return;
    pthread_mutex_lock(&h->conn_mu);
    cs->phase = phase;
    if (phase == CONN_WAITING || phase == CONN_HEADERS) /* a deadline starts */
        cs->since = now_s();
    pthread_mutex_unlock(&h->conn_mu);
}

/* The watchdog (file comment): every quarter second, shut down the connections past their
 * deadline, or every one not being answered once the server is closing. */
static void *watchdog_main(void *arg)
{
    pdr_http *h = arg;
    pthread_mutex_lock(&h->conn_mu);
    while (!h->watchdog_stop) {
        double now = now_s();
        /* waiting for a first line: never before libmicrohttpd's idle timeout would close it (or
         * --request-timeout when there is none) */
        double waiting_s = h->request_timeout_s > h->idle_timeout_s ? h->request_timeout_s : h->idle_timeout_s;
        for (connection_state *cs = h->conns; cs; cs = cs->next)
            if (cs->phase != CONN_ANSWERING && !cs->timed_out &&
                ((h->closing && (cs->phase == CONN_WAITING || cs->phase == CONN_HEADERS)) ||
                 now - cs->since > (cs->phase == CONN_WAITING ? waiting_s : h->request_timeout_s))) {
                cs->timed_out = 1;
                shutdown(cs->fd, SHUT_RDWR); /* libmicrohttpd sees the end and closes it */
            }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += 250 * 1000 * 1000;
        if (until.tv_nsec >= 1000 * 1000 * 1000) {
            until.tv_sec++;
            until.tv_nsec -= 1000 * 1000 * 1000;
        }
        pthread_cond_timedwait(&h->conn_cv, &h->conn_mu, &until);
    }
    pthread_mutex_unlock(&h->conn_mu);
    return NULL;
}

/* libmicrohttpd has a request's first line (MHD_OPTION_URI_LOG_CALLBACK): its deadline starts.
 * Returns the request's initial req_cls: none (on_request sets it up). */
static void *on_first_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)uri;
    pdr_http *h = cls;
    const union MHD_ConnectionInfo *sc = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    set_phase(h, sc ? sc->socket_context : NULL, CONN_HEADERS);
    return NULL;
}

/* The client closed its end (or reset) while its request waited in the queue. */
static int client_gone(const connection_state *cs)
{
    if (!cs)
        return 0;
    char c;
    ssize_t n = recv(cs->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* pdr_cancel's callback of a job: its client hung up while it was answered. Called from the
 * worker's threads; the connection is suspended meanwhile, so its socket stays open. */
static int cancel_requested(void *ctx) { return client_gone(ctx); }

/* The log must stay one printable line that cannot be forged: bytes outside '!'..'~' (CR, ESC;
 * spaces too unless spaces) are written %XX. */
static void log_text(char *out, size_t size, const char *in, int spaces)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *in && o + 4 < size; in++) {
        unsigned char c = (unsigned char)*in;
        if ((c > 0x20 && c < 0x7f) || (spaces && c == ' ')) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* Set up the per-request state when the headers are in. */
static request *request_begin(pdr_http *h, struct MHD_Connection *conn, const char *url, const char *method)
{
    request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->t0 = now_s();
    atomic_init(&r->state, REQ_READING);
    r->endpoint = pdr_api_endpoint(url);
    r->cors = h->cors != NULL;
    r->cors_allow = pdr_cors_allow_origin(h->cors, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin"));
    log_text(r->method, sizeof r->method, method, 0);
    log_text(r->path, sizeof r->path, url, 0);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, r->client, sizeof r->client);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, r->client,
                      sizeof r->client);
    }
    if (!r->client[0])
        snprintf(r->client, sizeof r->client, "-");
    const char *xff =
        h->log_forwarded_for ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-For") : NULL;
    if (xff) { /* "a, b" as "a,b"; at most 128 bytes of it (log_text escapes the rest of the oddities) */
        char packed[129];
        size_t n = 0;
        for (; *xff && n + 1 < sizeof packed; xff++)
            if (*xff != ' ' && *xff != '\t')
                packed[n++] = *xff;
        packed[n] = '\0';
        log_text(r->forwarded, sizeof r->forwarded, packed, 0);
    }
    const union MHD_ConnectionInfo *sc = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->cs = sc ? sc->socket_context : NULL;
    if (r->cs) {
        r->cs->n_requests++;
        set_phase(h, r->cs, CONN_READING);
    }
    atomic_fetch_add(&h->in_flight, 1);
    pdr_metrics_request_started(pdr_api_metrics(h->api));
    return r;
}

/* Append a chunk of body, or discard it past the limit. A body past the limit is read to its
 * end and discarded, so that the client gets its 413 (libmicrohttpd 0.9.75 refuses to queue a
 * reply while the body is arriving: MHD_queue_response returns MHD_NO then); an endless upload
 * is cut off by the request deadline instead (on_request). Returns 0, or -1 when out of memory
 * (the connection is dropped). */
static int body_append(pdr_http *h, request *r, const char *data, size_t n)
{
    if (r->too_large || n > h->max_body_bytes - r->body_len) {
        if (!r->too_large) {
            r->too_large = 1;
            free(r->body);
            r->body = NULL;
            r->body_len = r->body_cap = 0;
        }
        return 0;
    }
    if (r->body_len + n > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 16384;
        while (cap < r->body_len + n)
            cap *= 2;
        if (cap > h->max_body_bytes)
            cap = h->max_body_bytes;
        char *p = realloc(r->body, cap);
        if (!p)
            return -1;
        r->body = p;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    return 0;
}

/* The reply is built: the body is no longer needed while it is sent. */
static void request_drop_body(request *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
}

/* How the request says where its body ends. Behind a proxy that reads it otherwise, an ambiguous
 * framing lets a body pass as a second request (request smuggling): libmicrohttpd 0.9.75 takes
 * chunked over Content-Length, the first of two Content-Lengths, and ignores "Content-Length :"
 * or a folded header. Refused instead. */
typedef struct framing {
    int n_length, n_encoding, not_chunked, bad_name, n_host;
} framing;

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                   const char *value, size_t value_size)
{
    (void)kind;
    (void)value_size;
    framing *f = cls;
    static const char cl[] = "Content-Length", te[] = "Transfer-Encoding";
    f->n_host += strcasecmp(key, "Host") == 0;
    if (key_size == 0 || strcspn(key, " \t") < key_size)
        f->bad_name = 1;
    else if (key_size == sizeof cl - 1 && strncasecmp(key, cl, key_size) == 0)
        f->n_length++;
    else if (key_size == sizeof te - 1 && strncasecmp(key, te, key_size) == 0) {
        f->n_encoding++;
        f->not_chunked |= !value || strcasecmp(value, "chunked") != 0;
    } else if (strncasecmp(key, cl, sizeof cl - 1) == 0 || strncasecmp(key, te, sizeof te - 1) == 0)
        f->bad_name = 1; /* "Content-Length18": how libmicrohttpd stores a folded header */
    return MHD_YES;
}

/* 0, or the reason the framing is refused. *ret_n_host: the Host headers seen. */
static const char *framing_problem(struct MHD_Connection *conn, int *ret_n_host)
{
    framing f = {0};
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, scan_header, &f);
    *ret_n_host = f.n_host;
    if (f.bad_name)
        return "a header name with a space or tab, or a folded Content-Length or Transfer-Encoding";
    if (f.n_length > 1 || f.n_encoding > 1)
        return "more than one Content-Length or Transfer-Encoding header";
    if (f.n_length && f.n_encoding)
        return "both Content-Length and Transfer-Encoding";
    if (f.not_chunked)
        return "a Transfer-Encoding other than chunked";
    return NULL;
}

/* A reply from the first call, before the body is read: libmicrohttpd then closes the
 * connection rather than read a body nobody wants, and a client still sending one may lose the
 * reply to the reset; so only for what must close anyway (ambiguous framing) or a client that
 * waits for "100 Continue" before its body (refuse). */
static enum MHD_Result reply_at_once(pdr_http *h, struct MHD_Connection *conn, request *r, pdr_api_reply *rep)
{
    r->too_large = 1; /* discard any body */
    set_phase(h, r->cs, CONN_ANSWERING);
    enum MHD_Result ret = send_reply(conn, r, rep);
    pdr_api_reply_clear(rep);
    return ret;
}

/* A request refused when its headers came in (r->rep set): answered at once when the client
 * waits for "100 Continue" (it has sent no body yet), else after its body, read and discarded,
 * so that the client reads the reply and the connection stays open; never queued. */
static enum MHD_Result refuse(pdr_http *h, struct MHD_Connection *conn, const char *version, request *r)
{
    if (r->declared > (unsigned long long)h->max_body_bytes * DISCARD_FACTOR) { /* not worth reading */
        r->rep.close_connection = 1;
        return reply_at_once(h, conn, r, &r->rep);
    }
    const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    if (expect && strcasecmp(expect, "100-continue") == 0 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0)
        return reply_at_once(h, conn, r, &r->rep);
    r->refused = 1;
    /* a declared body within DISCARD_FACTOR x --max-body is read to its end (the reply would be
     * lost to a reset otherwise); anything longer closes the connection past --max-body */
    r->discard_cap =
        r->declared > h->max_body_bytes && r->declared <= (unsigned long long)h->max_body_bytes * DISCARD_FACTOR
            ? (size_t)r->declared
            : h->max_body_bytes;
    return MHD_YES;
}

/* 503 for a search or embed that arrives or waits past pdr_http_stop's grace period. */
static void reply_stopping(pdr_api_reply *rep, int endpoint)
{
    rep->endpoint = endpoint;
    rep->retry_after_s = 1;
    pdr_api_reply_error(rep, 503, "shutting_down", "the server is stopping; retry on another instance");
}

/* A CORS preflight, which pdr_http answers itself (pdr_http.h): CORS on, OPTIONS on a known
 * path, with Origin and Access-Control-Request-Method. It carries no token (browsers never send
 * one), so it must not reach the token check. */
static int is_preflight(const pdr_http *h, struct MHD_Connection *conn, const char *url, const char *method)
{
    return h->cors && strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0 && pdr_api_methods(url) &&
           MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin") &&
           MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Access-Control-Request-Method");
}

/* A preflight's reply, into r->rep: 204 with the CORS headers (add_cors_headers) for an allowed
 * origin. Another origin gets a 403 without them rather than a 204 without them: the browser
 * blocks the request either way, and the status says why to whoever reads the log or the
 * browser's network panel. */
static void preflight_reply(struct MHD_Connection *conn, const char *url, request *r)
{
    if (!r->cors_allow) {
        char shown[128];
        log_text(shown, sizeof shown, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin"), 0);
        pdr_api_reply_error(&r->rep, 403, "origin_not_allowed",
                            "Origin '%s' is not allowed to call this server from a web page; allow it with "
                            "'pdr serve --cors-origin'",
                            shown);
        return;
    }
    const char *pna = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Access-Control-Request-Private-Network");
    r->preflight_methods = pdr_api_methods(url);
    r->preflight_private_network = pna && strcasecmp(pna, "true") == 0;
    r->rep.status = 204;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    pdr_http *h = cls;
    request *r = *req_cls;
    if (!r) {
        if (!(r = request_begin(h, conn, url, method)))
            return MHD_NO;
        *req_cls = r;
        pdr_api_reply_init(&r->rep);
        int n_host = 0;
        const char *problem = framing_problem(conn, &n_host);
        if (problem) {
            r->rep.endpoint = r->endpoint;
            r->rep.close_connection = 1;
            pdr_api_reply_error(&r->rep, 400, "bad_framing", "ambiguous request framing: %s", problem);
            return reply_at_once(h, conn, r, &r->rep);
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            r->declared = !errno && end && end != cl ? v : 0;
        }
        /* Refused before the body is read or queued, in this order: Host, an encoded NUL in the
         * path, a CORS preflight (answered here), then route, method, token, loading and media
         * type (pdr_api_precheck), then a body declared over --max-body (refuse: answered once
         * its body is discarded, or at once to a client waiting for 100 Continue). */
        r->rep.endpoint = r->endpoint;
        const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
        if (n_host > 1 || (n_host == 0 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0)) {
            pdr_api_reply_error(&r->rep, 400, "bad_host", "%s",
                                n_host ? "more than one Host header" : "an HTTP/1.1 request needs a Host header");
            return refuse(h, conn, version, r);
        }
        if (!pdr_host_allowed(h->hosts, host)) {
            char shown[128];
            log_text(shown, sizeof shown, host, 0);
            pdr_api_reply_error(&r->rep, 403, "host_not_allowed",
                                "Host '%s' is not allowed: this server answers only the names it was started with "
                                "(by default on a loopback address: localhost and IP addresses, so that web pages "
                                "cannot reach it through DNS rebinding); allow a name with 'pdr serve --allow-host'",
                                shown);
            return refuse(h, conn, version, r);
        }
        if (r->cs && r->cs->decoded_nul == url) {
            r->cs->decoded_nul = NULL;
            r->rep.endpoint = r->endpoint = PDR_EP_OTHER;
            pdr_api_reply_error(&r->rep, 404, "not_found", "no endpoint %.*s %.*s%%00... (an encoded NUL in the path)",
                                pdr_utf8_clip(method, 16), method, pdr_utf8_clip(url, 200), url);
            return refuse(h, conn, version, r);
        }
        if (is_preflight(h, conn, url, method)) {
            preflight_reply(conn, url, r);
            return refuse(h, conn, version, r);
        }
        pdr_api_request pre = {
            .method = method,
            .path = url,
            .content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
            .content_encoding = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING),
            .authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION)};
        if (pdr_api_precheck(h->api, &pre, &r->rep))
            return refuse(h, conn, version, r);
        if (r->declared > h->max_body_bytes) {
            if (r->declared <= (unsigned long long)h->max_body_bytes * DISCARD_FACTOR) {
                too_large_reply(h, r, &r->rep);
                return refuse(h, conn, version, r);
            }
            r->too_large = 1; /* past what is worth reading: at once, and the connection closes */
            set_phase(h, r->cs, CONN_ANSWERING);
            return send_too_large(h, conn, r);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (now_s() - r->t0 > h->request_timeout_s) {
            /* A client trickling its upload (slowloris). libmicrohttpd cannot queue a reply in
             * the middle of a body, so close the connection; log and count it as a 408. */
            r->status = 408;
            return MHD_NO;
        }
        if (r->refused) { /* counted, not kept; past the body limit (chunked) the connection closes */
            r->discarded += *upload_data_size;
            *upload_data_size = 0;
            if (r->discarded > r->discard_cap) {
                r->status = 413;
                return MHD_NO;
            }
            return MHD_YES;
        }
        int rc = body_append(h, r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return rc ? MHD_NO : MHD_YES;
    }

    if (atomic_load(&r->state) == REQ_ANSWERED) { /* back from a worker */
        enum MHD_Result ret = send_reply(conn, r, &r->rep);
        pdr_api_reply_clear(&r->rep);
        return ret;
    }
    set_phase(h, r->cs, CONN_ANSWERING); /* the request is in: no deadline while it is answered */
    if (r->refused) {
        enum MHD_Result ret = send_reply(conn, r, &r->rep);
        pdr_api_reply_clear(&r->rep);
        return ret;
    }
    if (r->too_large)
        return send_too_large(h, conn, r);

    pdr_api_request *q = &r->q;
    memset(q, 0, sizeof *q);
    q->method = method;
    q->path = url;
    q->content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    q->authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    q->body = r->body;
    q->body_len = r->body_len;
    r->cancel = (pdr_cancel){cancel_requested, r->cs};
    q->cancel = &r->cancel;
    MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, collect_arg, q);
    int stopping = 0;
    if (r->endpoint == PDR_EP_SEARCH || r->endpoint == PDR_EP_EMBED) {
        pthread_mutex_lock(&h->mu);
        stopping = h->stopping;
        if (!stopping) {
            /* Suspend first: a worker may resume the connection before this function returns. */
            r->conn = conn;
            atomic_store(&r->state, REQ_QUEUED);
            MHD_suspend_connection(conn);
            r->next = NULL;
            if (h->tail)
                h->tail->next = r;
            else
                h->head = r;
            h->tail = r;
            pthread_cond_signal(&h->cv);
        }
        pthread_mutex_unlock(&h->mu);
        if (!stopping)
            return MHD_YES;
    }
    pdr_api_reply rep;
    pdr_api_reply_init(&rep);
    if (stopping) /* the workers are gone: nobody would resume a suspended connection */
        reply_stopping(&rep, r->endpoint);
    else
        pdr_api_handle(h->api, q, &rep);
    request_drop_body(r);
    enum MHD_Result ret = send_reply(conn, r, &rep);
    pdr_api_reply_clear(&rep);
    return ret;
}

/* Answer one job taken off the queue (a 503 once the server is stopping) and hand its
 * connection back to libmicrohttpd. */
static void answer_job(pdr_http *h, request *r, int stopping)
{
    pdr_api_reply_init(&r->rep);
    if (stopping) {
        reply_stopping(&r->rep, r->endpoint);
    } else if (client_gone(r->cs)) { /* nobody would read the answer: not computed */
        r->skipped = SKIP_QUEUED;
        pdr_api_reply_error(&r->rep, 400, "client_closed", "the client closed the connection");
    } else {
        pdr_api_handle(h->api, &r->q, &r->rep); /* stops early if the client hangs up meanwhile */
        if (r->rep.cancelled)
            r->skipped = SKIP_RUNNING;
    }
    request_drop_body(r);
    struct MHD_Connection *conn = r->conn; /* r may be freed once the connection runs again */
    atomic_store(&r->state, REQ_ANSWERED);
    MHD_resume_connection(conn);
}

/* A worker: take the oldest job, answer it, hand the connection back to libmicrohttpd. */
static void *worker_main(void *arg)
{
    pdr_http *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        while (!h->head && !h->stopping)
            pthread_cond_wait(&h->cv, &h->mu);
        request *r = h->head;
        if (!r) { /* stopping and nothing left */
            pthread_mutex_unlock(&h->mu);
            return NULL;
        }
        h->head = r->next;
        if (!h->head)
            h->tail = NULL;
        int stopping = h->stopping;
        pthread_mutex_unlock(&h->mu);
        answer_job(h, r, stopping);
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    pdr_http *h = cls;
    request *r = *req_cls;
    if (!r)
        return;
    *req_cls = NULL;
    double seconds = now_s() - r->t0;
    int timed_out = 0;
    if (r->cs) {
        r->cs->decoded_nul = NULL; /* the next request's strings may reuse the buffer */
        pthread_mutex_lock(&h->conn_mu);
        timed_out = r->cs->timed_out;
        pthread_mutex_unlock(&h->conn_mu);
        set_phase(h, r->cs, CONN_WAITING);
    }
    const char *why =
        toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed before the reply was sent)";
    if (r->skipped == SKIP_QUEUED) {
        r->status = 0;
        why = " (the client closed the connection while the request waited: not computed)";
    } else if (r->skipped == SKIP_RUNNING) {
        r->status = 0;
        why = " (the client closed the connection while the request was answered: stopped)";
    } else if (timed_out && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && r->status == 0) {
        r->status = 408;
        why = " (closed: the request had not arrived in full within --request-timeout)";
    }
    pdr_metrics_request_done(pdr_api_metrics(h->api), r->endpoint, r->status, seconds);
    if (h->log) {
        char stamp[32];
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
        /* One fprintf per line: stdio locks the stream, so lines from workers do not mix. */
        char note[sizeof r->log_note + 16] = "";
        if (r->log_note[0]) { /* a 500's detail, for the operator */
            char text[sizeof r->log_note];
            log_text(text, sizeof text, r->log_note, 1);
            snprintf(note, sizeof note, " error=%s", text);
        }
        fprintf(h->log, "pdr serve: %s %s %s %s %d %.2fms queries=%zu%s%s%s%s\n", stamp, r->client, r->method, r->path,
                r->status, 1e3 * seconds, r->n_queries, r->forwarded[0] ? " for=" : "", r->forwarded, why, note);
    }
    if (atomic_load(&r->state) == REQ_ANSWERED || r->refused) /* a reply the connection closed before sending */
        pdr_api_reply_clear(&r->rep);
    free(r->body);
    free(r);
    atomic_fetch_sub(&h->in_flight, 1);
}

/* libmicrohttpd decodes the path and the query in place, and "%00" would end the path early
 * ("/metrics%00x" was answered as /metrics, past a proxy rule for exactly /metrics). Remember
 * which string held one: libmicrohttpd decodes the path last, in the buffer it then hands
 * on_request as url, which refuses it when that is the one. */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    size_t n = MHD_http_unescape(s);
    if (strlen(s) != n) { /* query parameters are checked by their lengths (collect_arg) */
        const union MHD_ConnectionInfo *sc = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (sc && sc->socket_context)
            ((connection_state *)sc->socket_context)->decoded_nul = s;
    }
    return n;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    pdr_http *h = cls;
    char line[sizeof h->mhd_error];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (!atomic_load(&h->started)) /* while starting: keep it for the error message */
        memcpy(h->mhd_error, line, sizeof line);
    if (h->log)
        fprintf(h->log, "pdr serve: libmicrohttpd: %s\n", line);
}

/* ================================================================ start and stop */

/* Set the stop flag, answer every job still queued 503 at once (from this thread: a worker may
 * be busy with a long job), then wake the workers and join them (the jobs they run finish).
 * Returns the number of queued jobs answered 503. */
static int stop_workers(pdr_http *h)
{
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    request *queued = h->head;
    h->head = h->tail = NULL;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    int refused = 0;
    while (queued) {
        request *next = queued->next; /* read first: the answered request may be freed */
        answer_job(h, queued, 1);
        queued = next;
        refused++;
    }
    for (int i = 0; i < h->n_workers; i++)
        pthread_join(h->workers[i], NULL);
    h->n_workers = 0;
    return refused;
}

static void stop_watchdog(pdr_http *h)
{
    if (!h->has_watchdog)
        return;
    pthread_mutex_lock(&h->conn_mu);
    h->watchdog_stop = 1;
    pthread_cond_broadcast(&h->conn_cv);
    pthread_mutex_unlock(&h->conn_mu);
    pthread_join(h->watchdog, NULL);
    h->has_watchdog = 0;
}

static void free_http(pdr_http *h)
{
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->conn_mu);
    pthread_cond_destroy(&h->conn_cv);
    free(h->workers);
    pdr_host_policy_free(h->hosts);
    pdr_cors_policy_free(h->cors);
    free(h);
}

int pdr_http_start(pdr_api *api, const pdr_http_opts *opts, pdr_http **ret_http, pdr_err *err)
{
    *ret_http = NULL;
    if (opts->threads < 1 || opts->port < 0 || opts->port > 65535 || opts->max_connections < 1)
        return pdr_fail(err, PDR_EINPUT, "bad server options (threads %d, port %d, max connections %u)", opts->threads,
                        opts->port, opts->max_connections);
    const char *host = opts->host && *opts->host ? opts->host : "127.0.0.1";
    pdr_host_policy *hosts = NULL;
    pdr_cors_policy *cors = NULL;
    int policy_rc = pdr_host_policy_create(host, opts->allow_host, &hosts, err);
    if (!policy_rc && (policy_rc = pdr_cors_policy_create(opts->cors_origin, &cors, err)))
        pdr_host_policy_free(hosts);
    if (policy_rc)
        return policy_rc;
    char port_text[8];
    snprintf(port_text, sizeof port_text, "%d", opts->port);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, port_text, &hints, &ai);
    if (gai != 0) {
        pdr_host_policy_free(hosts);
        pdr_cors_policy_free(cors);
        return pdr_fail(err, PDR_EIO, "cannot resolve host '%s': %s", host, gai_strerror(gai));
    }
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen < sizeof addr ? ai->ai_addrlen : sizeof addr);
    int family = ai->ai_family;
    freeaddrinfo(ai);

    pdr_http *h = calloc(1, sizeof *h);
    if (!h) {
        pdr_host_policy_free(hosts);
        pdr_cors_policy_free(cors);
        return pdr_fail(err, PDR_ENOMEM, "out of memory for the server");
    }
    h->hosts = hosts;
    h->cors = cors;
    h->api = api;
    h->log = opts->log;
    h->max_body_bytes = pdr_api_get_limits(api)->max_body_bytes;
    h->request_timeout_s = opts->request_timeout_s > 0 ? opts->request_timeout_s : PDR_HTTP_REQUEST_TIMEOUT_S_DEFAULT;
    h->idle_timeout_s = opts->timeout_s;
    h->log_forwarded_for = opts->log_forwarded_for;
    atomic_init(&h->in_flight, 0);
    atomic_init(&h->started, 0);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    pthread_mutex_init(&h->conn_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the watchdog's waits, by now_s's clock */
    pthread_cond_init(&h->conn_cv, &ca);
    pthread_condattr_destroy(&ca);
    h->workers = calloc((size_t)opts->threads, sizeof *h->workers);
    if (!h->workers) {
        free_http(h);
        return pdr_fail(err, PDR_ENOMEM, "out of memory for the server");
    }
    for (; h->n_workers < opts->threads; h->n_workers++) {
        int e = pthread_create(&h->workers[h->n_workers], NULL, worker_main, h);
        if (e) {
            int rc = pdr_fail(err, PDR_ENOMEM, "cannot start worker thread %d of %d: %s", h->n_workers + 1,
                              opts->threads, strerror(e));
            stop_workers(h);
            free_http(h);
            return rc;
        }
    }
    /* One event-loop thread for all connections; the workers above do the work. */
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (family == AF_INET6)
        flags |= MHD_USE_DUAL_STACK;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)opts->port, NULL, NULL, on_request, h, /* the logger first, to catch every message */
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_CONNECTION_LIMIT, opts->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, opts->timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, h, MHD_OPTION_URI_LOG_CALLBACK, on_first_line, h, MHD_OPTION_END);
    if (!d) {
        int rc = pdr_fail(err, PDR_EIO, "cannot listen on %s port %d: %s", host, opts->port,
                          h->mhd_error[0] ? h->mhd_error : "libmicrohttpd refused to start");
        stop_workers(h);
        free_http(h);
        return rc;
    }
    h->daemon = d;
    atomic_store(&h->started, 1);
    int e = pthread_create(&h->watchdog, NULL, watchdog_main, h);
    if (e) {
        MHD_stop_daemon(d);
        stop_workers(h);
        free_http(h);
        return pdr_fail(err, PDR_ENOMEM, "cannot start the connection watchdog thread: %s", strerror(e));
    }
    h->has_watchdog = 1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : opts->port;
    *ret_http = h;
    return PDR_OK;
}

int pdr_http_port(const pdr_http *http) { return http->port; }

int pdr_http_in_flight(const pdr_http *http) { return atomic_load(&((pdr_http *)http)->in_flight); }

int pdr_http_stop(pdr_http *http, int grace_ms)
{
    if (!http)
        return 0;
    /* libmicrohttpd stops accepting, but the listening socket must stay open until
     * MHD_stop_daemon (its thread may still hold it): shut it down instead, so that the kernel
     * refuses new connections at once rather than queueing them unanswered. */
    MHD_socket listen_fd = MHD_quiesce_daemon(http->daemon);
    if (listen_fd != MHD_INVALID_SOCKET)
        shutdown(listen_fd, SHUT_RDWR);
    /* Connections that wait for a request (idle keep-alive, headers not yet in) are closed now
     * (the watchdog); requests whose headers are in may finish within the grace period. */
    pthread_mutex_lock(&http->conn_mu);
    http->closing = 1;
    pthread_cond_broadcast(&http->conn_cv);
    pthread_mutex_unlock(&http->conn_mu);
    for (int waited = 0; pdr_http_in_flight(http) > 0 && waited < grace_ms; waited += 10) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* Every suspended connection must be resumed before MHD_stop_daemon: queued jobs are
     * answered 503, the running ones finish. */
    int refused = stop_workers(http);
    /* Let the event loop send what was answered (bounded: keep-alive clients may still send
     * requests, which get a 503 at once). */
    for (int waited = 0; pdr_http_in_flight(http) > 0 && waited < 1000; waited += 10) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(http->daemon);
    stop_watchdog(http);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    free_http(http);
    return refused;
}
