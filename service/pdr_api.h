/* pdr_api.h: the HTTP service's endpoints, as plain functions from a request to a reply.
 *
 * This module knows the routes, the request formats and the reply formats; it knows nothing
 * of sockets (pdr_http.h reads requests off connections and sends the replies). The path of a
 * query: pdr_http -> pdr_api_handle -> pdr_fasta (parse the body) -> pdr_batch/pdr_encoder
 * (embed) -> pdr_db_search (FAISS) -> pdr_report (JSON/TSV).
 *
 * Endpoints (README.md "HTTP service" and GET /openapi.json document them for users):
 *   POST /v1/search   FASTA (text/plain, text/x-fasta) or JSON {"fasta", "k", "min_score",
 *                     "evalue", "expand"}; query parameters k, min_score, evalue, expand,
 *                     format=json|tsv|blast6
 *   POST /v1/embed    FASTA or JSON {"fasta"} -> {"model", "dim", "embeddings": [...]}
 *   GET  /v1/health   200 once the database is loaded, 503 before
 *   GET  /v1/info     model, dim, database size, index type, version, limits
 *   GET  /metrics     Prometheus text (pdr_metrics.h)
 *   GET  /            the search page;  GET /openapi.json  the API description
 * Every client mistake is a 4xx with {"error": {"code": "...", "message": "..."}}; the message
 * names the record number and id for FASTA problems. 5xx only for our own failures (out of
 * memory, a library error) and 503 while loading.
 *
 * Lifecycle: pdr_api_create (the server can listen at once: data endpoints answer 503
 * "loading"), then pdr_api_set_ready once the database and the encoder are loaded; later
 * pdr_api_replace_db may swap in a rebuilt database (pdr serve on SIGHUP). db and enc are
 * borrowed: each db until pdr_api_replace_db hands it back (or the api is freed), enc until the
 * api is freed. Workspaces: one encoder workspace per worker,
 * handed out from a pool; a request holds one only while it embeds.
 *
 * Thread-safety: pdr_api_handle may be called from any number of threads at once (the pool
 * makes a request wait when more requests embed at once than there are workspaces).
 * pdr_api_set_ready is called once, from one thread; pdr_api_replace_db from one thread at a time.
 */
#ifndef PDR_API_H
#define PDR_API_H

#include <stddef.h>

#include "pdr_buf.h"
#include "pdr_cancel.h"
#include "pdr_db.h"
#include "pdr_encoder.h"
#include "pdr_err.h"
#include "pdr_metrics.h"

/* The limits on by default (pdr serve options of the same names change them). */
#define PDR_API_MAX_BODY_BYTES_DEFAULT ((size_t)1 << 20) /* 1 MiB */
#define PDR_API_MAX_QUERIES_DEFAULT 100
#define PDR_API_MAX_LENGTH_DEFAULT 10000
#define PDR_API_MAX_K_DEFAULT 1000
#define PDR_API_DEFAULT_K 10
#define PDR_API_MAX_ARGS 16 /* query-string parameters looked at per request */

typedef struct pdr_api_limits {
    size_t max_body_bytes; /* request body (enforced by pdr_http while reading; reported here) */
    size_t max_queries;    /* FASTA records per request */
    size_t max_length;     /* residues per sequence */
    int max_k;             /* hits per query */
    int align;             /* best candidates aligned per query (pdr_db_align_hits); -1: the default,
                              PDR_DB_ALIGN_DEFAULT when the database has sequences, else 0 */
} pdr_api_limits;

void pdr_api_limits_default(pdr_api_limits *limits);

typedef struct pdr_api pdr_api;

/* One request as read off the wire. Everything is borrowed for the duration of the call. */
typedef struct pdr_api_request {
    const char *method;
    const char *path;             /* without the query string */
    const char *content_type;     /* NULL when absent */
    const char *content_encoding; /* NULL when absent; anything but "identity" is refused (415) */
    const char *authorization;    /* NULL when absent */
    const char *body;             /* body_len bytes, not NUL-terminated; may be NULL when 0 */
    size_t body_len;
    size_t n_args; /* query-string parameters, in order (at most PDR_API_MAX_ARGS) */
    const char *arg_names[PDR_API_MAX_ARGS];
    const char *arg_values[PDR_API_MAX_ARGS]; /* NULL for "?name" without '=' */
    /* The name or the value held an encoded NUL ("?k=5%00junk"): the C string above stops at it,
     * so the parameter is refused rather than read as "5". */
    unsigned char arg_name_has_nul[PDR_API_MAX_ARGS], arg_value_has_nul[PDR_API_MAX_ARGS];
    int too_many_args; /* the query string held more than PDR_API_MAX_ARGS parameters */
    /* NULL, or asked while a search or an embedding is computed (between sequences and between
     * queries' alignments): when it says stop, the work ends early and the reply says cancelled. */
    const pdr_cancel *cancel;
} pdr_api_request;

/* A reply: status, headers and the body the caller sends and then frees (pdr_api_reply_clear). */
typedef struct pdr_api_reply {
    int status;
    const char *content_type; /* static string */
    const char *allow;        /* Allow header value for a 405, else NULL */
    int auth_challenge;       /* 401: send WWW-Authenticate: Bearer */
    int retry_after_s;        /* > 0: send Retry-After (503 while loading) */
    int endpoint;             /* metrics label (enum pdr_endpoint) */
    size_t n_queries;         /* query records in the request, for the request log */
    int close_connection;     /* send Connection: close (the request's framing was ambiguous) */
    int cancelled;            /* the request's cancel said stop: the work was not finished, and the
                                 reply (a 400 client_closed) is for nobody */
    /* For the server's log only: what a 500 hides from the client (paths of the server's files). */
    char log_note[PDR_ERRLEN + 32];
    pdr_buf body;
} pdr_api_reply;

void pdr_api_reply_init(pdr_api_reply *reply);
void pdr_api_reply_clear(pdr_api_reply *reply);

/* Fill reply with an error: status, {"error": {"code": code, "message": message}}. Replaces
 * whatever the reply held. Used by the handlers and by pdr_http (413, 500). */
void pdr_api_reply_error(pdr_api_reply *reply, int status, const char *code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* token: when non-NULL and non-empty, the search, embed, info and metrics endpoints require
 * "Authorization: Bearer <token>" (copied). threads: workspaces in the pool (>= 1), one per
 * worker thread of the server. */
int pdr_api_create(const pdr_api_limits *limits, const char *token, int threads, pdr_api **ret_api, pdr_err *err);
void pdr_api_free(pdr_api *api);

/* The database and the encoder are loaded: create the workspaces and start answering. enc must
 * be the model the database was built with (checked: dimension, name and version, backgrounds),
 * and db must have sequences when limits.align > 0. */
int pdr_api_set_ready(pdr_api *api, const pdr_db *db, const pdr_encoder *enc, pdr_err *err);
int pdr_api_is_ready(const pdr_api *api);

/* Serve db from now on in place of the current database. db passes set_ready's checks: the
 * encoder's dimension, model (name and version) and backgrounds, and sequences when --align
 * asks for alignments; on failure nothing changes and the error says why. Requests that began
 * before keep the old database to their end: this waits for them, then hands the old database
 * back in *ret_old for the caller to free. Only after pdr_api_set_ready. */
int pdr_api_replace_db(pdr_api *api, const pdr_db *db, const pdr_db **ret_old, pdr_err *err);

const pdr_api_limits *pdr_api_get_limits(const pdr_api *api);
pdr_metrics *pdr_api_metrics(pdr_api *api);
/* The metrics label of a path (PDR_EP_OTHER for unknown paths). */
int pdr_api_endpoint(const char *path);
/* The methods a path takes, as an Allow header lists them ("POST", or "GET, HEAD"); NULL for an
 * unknown path. A static string. */
const char *pdr_api_methods(const char *path);

/* The checks that need no body: route (404), method (405), token (401), database loaded (503)
 * and, for the POST endpoints, the media type and content coding (415). req's body and arguments are not read.
 * Returns 1 with reply set when the request is refused, else 0 (reply untouched). pdr_http calls
 * it as soon as the headers are in, so that a refused upload is neither read nor queued. */
int pdr_api_precheck(pdr_api *api, const pdr_api_request *req, pdr_api_reply *reply);

/* Answer one request (pdr_api_precheck's checks first). Never fails: every outcome, our own
 * failures included, is a reply. */
void pdr_api_handle(pdr_api *api, const pdr_api_request *req, pdr_api_reply *reply);

#endif
