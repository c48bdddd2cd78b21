/* pdr_api.c: the endpoints of `pdr serve` (see pdr_api.h).
 *
 * Sections: replies and errors; the workspace pool; request parsing (query parameters, media
 * type, FASTA records); the handlers; the route table and dispatch.
 */
#include "pdr_api.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <omp.h>

#include "pdr_assets.h"
#include "pdr_batch.h"
#include "pdr_fasta.h"
#include "pdr_json.h"
#include "pdr_report.h"
#include "pdr_utf8.h"

/* The database being served and what is derived from it. A request takes the current one
 * (users + 1) and keeps it to its end, so pdr_api_replace_db can swap in another while requests
 * run; the old one is handed back once its last user is done. */
typedef struct db_slot {
    const pdr_db *db;
    char name[256]; /* last component of the database directory: the server's paths stay private */
    int align;      /* candidates aligned per query: --align, or its default for this database */
    int users;      /* requests holding it (under db_lock) */
} db_slot;

struct pdr_api {
    pdr_api_limits limits; /* as given: limits.align < 0 means the default for each database */
    char *token;           /* NULL: no authentication */
    pdr_metrics *metrics;

    /* enc is set once by pdr_api_set_ready, then read-only; `ready` is stored last (release) and
     * loaded first (acquire), so a request that sees ready sees the rest. */
    atomic_int ready;
    const pdr_encoder *enc;
    db_slot *slot; /* the current database (under db_lock; NULL until ready) */
    pthread_mutex_t db_lock;
    pthread_cond_t db_released; /* a slot that is no longer current lost its last user */

    /* Workspace pool: free_ws[0..n_free) are available. */
    int n_ws, n_free;
    pdr_encoder_ws **ws, **free_ws;
    pthread_mutex_t lock;
    pthread_cond_t available;
};

/* ================================================================ replies and errors */

void pdr_api_reply_init(pdr_api_reply *reply)
{
    memset(reply, 0, sizeof *reply);
    pdr_buf_init(&reply->body);
    reply->endpoint = PDR_EP_OTHER;
}

void pdr_api_reply_clear(pdr_api_reply *reply) { pdr_buf_free(&reply->body); }

/* The two arguments of "%.*s" for s (NULL prints as ""), at most n bytes and never half a UTF-8
 * character. */
#define CLIP(s, n) pdr_utf8_clip((s) ? (s) : "", (n)), ((s) ? (s) : "")

void pdr_api_reply_error(pdr_api_reply *reply, int status, const char *code, const char *fmt, ...)
{
    char msg[PDR_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reply->status = status;
    reply->content_type = "application/json";
    pdr_buf_reset(&reply->body);
    pdr_buf_puts(&reply->body, "{\"error\":{\"code\":");
    pdr_buf_json_str(&reply->body, code);
    pdr_buf_puts(&reply->body, ",\"message\":");
    pdr_buf_json_str(&reply->body, msg);
    pdr_buf_puts(&reply->body, "}}\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ================================================================ lifecycle and workspace pool */

void pdr_api_limits_default(pdr_api_limits *limits)
{
    limits->max_body_bytes = PDR_API_MAX_BODY_BYTES_DEFAULT;
    limits->max_queries = PDR_API_MAX_QUERIES_DEFAULT;
    limits->max_length = PDR_API_MAX_LENGTH_DEFAULT;
    limits->max_k = PDR_API_MAX_K_DEFAULT;
    limits->align = -1;
}

int pdr_api_create(const pdr_api_limits *limits, const char *token, int threads, pdr_api **ret_api, pdr_err *err)
{
    *ret_api = NULL;
    if (threads < 1)
        return pdr_fail(err, PDR_EINPUT, "the service needs at least one worker thread (got %d)", threads);
    if (limits->max_body_bytes < 1 || limits->max_queries < 1 || limits->max_length < 1 || limits->max_k < 1)
        return pdr_fail(err, PDR_EINPUT, "service limits must be positive");
    pdr_api *api = calloc(1, sizeof *api);
    if (!api)
        return pdr_fail(err, PDR_ENOMEM, "out of memory for the service");
    api->limits = *limits;
    atomic_init(&api->ready, 0);
    api->n_ws = threads;
    pthread_mutex_init(&api->lock, NULL);
    pthread_cond_init(&api->available, NULL);
    pthread_mutex_init(&api->db_lock, NULL);
    pthread_cond_init(&api->db_released, NULL);
    int rc = PDR_OK;
    if (token && *token && !(api->token = strdup(token))) {
        rc = pdr_fail(err, PDR_ENOMEM, "out of memory for the token");
        goto fail;
    }
    if ((rc = pdr_metrics_create(&api->metrics, err)))
        goto fail;
    *ret_api = api;
    return PDR_OK;
fail:
    pdr_api_free(api);
    return rc;
}

void pdr_api_free(pdr_api *api)
{
    if (!api)
        return;
    if (api->ws)
        for (int i = 0; i < api->n_ws; i++)
            pdr_encoder_ws_free(api->ws[i]);
    free(api->ws);
    free(api->free_ws);
    pdr_metrics_free(api->metrics);
    if (api->token) {
        memset(api->token, 0, strlen(api->token));
        free(api->token);
    }
    pthread_mutex_destroy(&api->lock);
    pthread_cond_destroy(&api->available);
    pthread_mutex_destroy(&api->db_lock);
    pthread_cond_destroy(&api->db_released);
    free(api->slot);
    free(api);
}

/* A slot for db after the checks every served database passes: the encoder's dimension, and
 * sequences when --align asks for alignments; with check_model also the encoder's model and
 * backgrounds (pdr_api_set_ready leaves those to its caller, as pdr serve checks them at start). */
static int make_slot(const pdr_api *api, const pdr_db *db, const pdr_encoder *enc, int check_model, db_slot **ret_slot,
                     pdr_err *err)
{
    *ret_slot = NULL;
    const pdr_store_meta *m = pdr_db_meta(db);
    if (pdr_db_dim(db) != pdr_encoder_dim(enc))
        return pdr_fail(err, PDR_EINPUT, "%s holds %d-dimensional vectors but model %s gives %d", pdr_db_path(db),
                        pdr_db_dim(db), pdr_encoder_name(enc), pdr_encoder_dim(enc));
    if (check_model &&
        (strcmp(m->model_name, pdr_encoder_name(enc)) != 0 || strcmp(m->model_version, pdr_encoder_version(enc)) != 0))
        return pdr_fail(err, PDR_EINPUT,
                        "%s was built with model %s (version %s) but the server runs %s (version %s): restart "
                        "pdr serve with that model",
                        pdr_db_path(db), m->model_name, m->model_version, pdr_encoder_name(enc),
                        pdr_encoder_version(enc));
    int rc = check_model ? pdr_db_check_backgrounds(db, pdr_encoder_background(enc),
                                                    pdr_encoder_segment_background(enc, NULL, NULL), err)
                         : PDR_OK;
    if (rc)
        return rc;
    if (api->limits.align > 0 && !pdr_db_has_sequences(db))
        return pdr_fail(err, PDR_EINPUT,
                        "--align %d: %s has no sequences; rebuild it with 'pdr makedb', or use --align 0",
                        api->limits.align, pdr_db_path(db));
    db_slot *slot = calloc(1, sizeof *slot);
    if (!slot)
        return pdr_fail(err, PDR_ENOMEM, "out of memory");
    slot->db = db;
    pdr_db_name(db, slot->name, sizeof slot->name);
    slot->align = api->limits.align >= 0 ? api->limits.align : pdr_db_has_sequences(db) ? PDR_DB_ALIGN_DEFAULT : 0;
    *ret_slot = slot;
    return PDR_OK;
}

int pdr_api_set_ready(pdr_api *api, const pdr_db *db, const pdr_encoder *enc, pdr_err *err)
{
    if (pdr_api_is_ready(api))
        return pdr_fail(err, PDR_EINTERNAL, "pdr_api_set_ready called twice");
    db_slot *slot = NULL;
    int rc = make_slot(api, db, enc, 0, &slot, err);
    if (rc)
        return rc;
    api->ws = calloc((size_t)api->n_ws, sizeof *api->ws);
    api->free_ws = calloc((size_t)api->n_ws, sizeof *api->free_ws);
    if (!api->ws || !api->free_ws) {
        free(slot);
        return pdr_fail(err, PDR_ENOMEM, "out of memory for %d encoder workspaces", api->n_ws);
    }
    for (int i = 0; i < api->n_ws; i++) {
        if ((rc = pdr_encoder_ws_create(enc, &api->ws[i], err))) {
            free(slot);
            return rc;
        }
        api->free_ws[i] = api->ws[i];
    }
    api->n_free = api->n_ws;
    api->enc = enc;
    pthread_mutex_lock(&api->db_lock);
    api->slot = slot;
    pthread_mutex_unlock(&api->db_lock);
    atomic_store_explicit(&api->ready, 1, memory_order_release);
    return PDR_OK;
}

int pdr_api_replace_db(pdr_api *api, const pdr_db *db, const pdr_db **ret_old, pdr_err *err)
{
    *ret_old = NULL;
    if (!pdr_api_is_ready(api))
        return pdr_fail(err, PDR_EINTERNAL, "pdr_api_replace_db before pdr_api_set_ready");
    db_slot *slot = NULL;
    int rc = make_slot(api, db, api->enc, 1, &slot, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&api->db_lock);
    db_slot *old = api->slot;
    api->slot = slot;
    while (old->users > 0)
        pthread_cond_wait(&api->db_released, &api->db_lock);
    pthread_mutex_unlock(&api->db_lock);
    *ret_old = old->db;
    free(old);
    return PDR_OK;
}

/* The current database for one request (NULL before set_ready); give it back with slot_release. */
static db_slot *slot_acquire(pdr_api *api)
{
    pthread_mutex_lock(&api->db_lock);
    db_slot *slot = api->slot;
    if (slot)
        slot->users++;
    pthread_mutex_unlock(&api->db_lock);
    return slot;
}

static void slot_release(pdr_api *api, db_slot *slot)
{
    if (!slot)
        return;
    pthread_mutex_lock(&api->db_lock);
    if (--slot->users == 0 && slot != api->slot)
        pthread_cond_broadcast(&api->db_released);
    pthread_mutex_unlock(&api->db_lock);
}

int pdr_api_is_ready(const pdr_api *api)
{
    return atomic_load_explicit(&((pdr_api *)api)->ready, memory_order_acquire);
}

const pdr_api_limits *pdr_api_get_limits(const pdr_api *api) { return &api->limits; }
pdr_metrics *pdr_api_metrics(pdr_api *api) { return api->metrics; }

static pdr_encoder_ws *ws_acquire(pdr_api *api)
{
    pthread_mutex_lock(&api->lock);
    while (api->n_free == 0)
        pthread_cond_wait(&api->available, &api->lock);
    pdr_encoder_ws *ws = api->free_ws[--api->n_free];
    pthread_mutex_unlock(&api->lock);
    return ws;
}

static void ws_release(pdr_api *api, pdr_encoder_ws *ws)
{
    pthread_mutex_lock(&api->lock);
    api->free_ws[api->n_free++] = ws;
    pthread_cond_signal(&api->available);
    pthread_mutex_unlock(&api->lock);
}

/* ================================================================ request parsing */

typedef struct search_params {
    int k, has_k;
    float min_score;
    int has_min_score;
    double max_evalue; /* evalue=E: hits with E-value <= E only */
    int has_evalue;
    int tsv;
    int blast6;             /* format=blast6: BLAST -outfmt 6 columns, every hit aligned and traced */
    int expand, has_expand; /* expand=true|false: use the database's query expansion (default: if it has one) */
} search_params;

/* Parse k from text: decimal digits only, 1..max_k. */
/* k as the JSON body takes it: a number with an integer value ("10", "1e1", "10.0"), nothing
 * else (no sign, space, hex, inf or nan). */
static int parse_k_text(const char *text, int max_k, int *ret_k)
{
    if (!text || *text < '0' || *text > '9' || strlen(text) > 32 || strspn(text, "0123456789.eE+-") != strlen(text))
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || *end || !(v >= 1 && v <= max_k) || v != floor(v))
        return -1;
    *ret_k = (int)v;
    return 0;
}

/* Parse min_score from text: a decimal number (digits, sign, point, exponent; no hex, nan or
 * inf, as JSON numbers) in [-1, 1]. A value too small for a double is read as 0, as in JSON. */
static int parse_score_text(const char *text, double *ret)
{
    if (!text || !*text || strlen(text) > 64 || text[strspn(text, "0123456789+-.eE")] != '\0')
        return -1;
    char *end = NULL;
    double v = strtod(text, &end);
    if (!end || *end || !(v >= -1.0 && v <= 1.0))
        return -1;
    *ret = v;
    return 0;
}

/* Parse an E-value threshold from text: a decimal number as JSON writes one, finite and > 0. */
static int parse_evalue_text(const char *text, double *ret)
{
    if (!text || !*text || strlen(text) > 64 || text[strspn(text, "0123456789+-.eE")] != '\0')
        return -1;
    char *end = NULL;
    double v = strtod(text, &end);
    if (!end || *end || !(v > 0 && isfinite(v)))
        return -1;
    *ret = v;
    return 0;
}

/* Query-string parameters of /v1/search (search = 1) or /v1/embed (none allowed). Returns 0,
 * or -1 with the error reply set. */
static int parse_args(const pdr_api *api, const pdr_api_request *req, int search, search_params *sp, pdr_api_reply *rep)
{
    int seen_format = 0;
    if (req->too_many_args) {
        pdr_api_reply_error(rep, 400, "unknown_parameter", "more than %d query-string parameters", PDR_API_MAX_ARGS);
        return -1;
    }
    for (size_t i = 0; i < req->n_args; i++) {
        const char *name = req->arg_names[i], *value = req->arg_values[i];
        if (!*name && !value && !req->arg_name_has_nul[i])
            continue; /* "?&k=5", "k=5&&format=tsv": an empty pair, as a trailing '&' */
        if (req->arg_name_has_nul[i]) {
            pdr_api_reply_error(rep, 400, "unknown_parameter", "query parameter name '%.*s%%00...' holds a NUL byte",
                                pdr_utf8_clip(name, 64), name);
            return -1;
        }
        int is_k = search && strcmp(name, "k") == 0;
        int is_min = search && strcmp(name, "min_score") == 0;
        int is_format = search && strcmp(name, "format") == 0;
        int is_expand = search && strcmp(name, "expand") == 0;
        int is_evalue = search && strcmp(name, "evalue") == 0;
        if (!is_k && !is_min && !is_format && !is_expand && !is_evalue) {
            pdr_api_reply_error(rep, 400, "unknown_parameter", "unknown query parameter '%.*s' (%s)",
                                pdr_utf8_clip(name, 64), name,
                                search ? "allowed: k, min_score, evalue, format, expand" : "this endpoint takes none");
            return -1;
        }
        if ((is_k && sp->has_k) || (is_min && sp->has_min_score) || (is_format && seen_format) ||
            (is_expand && sp->has_expand) || (is_evalue && sp->has_evalue)) {
            pdr_api_reply_error(rep, 400, "duplicate_parameter", "query parameter '%s' given twice", name);
            return -1;
        }
        if (req->arg_value_has_nul[i]) { /* "?k=5%00junk": never read as "5" */
            pdr_api_reply_error(rep, 400,
                                is_k        ? "bad_k"
                                : is_min    ? "bad_min_score"
                                : is_expand ? "bad_expand"
                                : is_evalue ? "bad_evalue"
                                            : "bad_format",
                                "query parameter '%s' holds a NUL byte (%%00) after '%.*s'", name, CLIP(value, 32));
            return -1;
        }
        if (is_k) {
            if (parse_k_text(value, api->limits.max_k, &sp->k)) {
                pdr_api_reply_error(rep, 400, "bad_k", "k must be an integer in [1, %d], got '%.*s'", api->limits.max_k,
                                    CLIP(value, 32));
                return -1;
            }
            sp->has_k = 1;
        } else if (is_min) {
            double v;
            if (parse_score_text(value, &v)) {
                pdr_api_reply_error(rep, 400, "bad_min_score", "min_score must be a number in [-1, 1], got '%.*s'",
                                    CLIP(value, 32));
                return -1;
            }
            sp->min_score = (float)v;
            sp->has_min_score = 1;
        } else if (is_evalue) {
            if (parse_evalue_text(value, &sp->max_evalue)) {
                pdr_api_reply_error(rep, 400, "bad_evalue",
                                    "evalue must be a number > 0 (an E-value threshold), got '%.*s'", CLIP(value, 32));
                return -1;
            }
            sp->has_evalue = 1;
        } else if (is_expand) {
            /* any case: Python's urlencode writes True and False */
            if (!value || (strcasecmp(value, "true") != 0 && strcasecmp(value, "false") != 0)) {
                pdr_api_reply_error(rep, 400, "bad_expand", "expand must be true or false, got '%.*s'",
                                    CLIP(value, 32));
                return -1;
            }
            sp->expand = strcasecmp(value, "true") == 0;
            sp->has_expand = 1;
        } else {
            if (!value || (strcmp(value, "json") != 0 && strcmp(value, "tsv") != 0 && strcmp(value, "blast6") != 0)) {
                pdr_api_reply_error(rep, 400, "bad_format", "format must be json, tsv or blast6, got '%.*s'",
                                    CLIP(value, 32));
                return -1;
            }
            sp->tsv = strcmp(value, "tsv") == 0;
            sp->blast6 = strcmp(value, "blast6") == 0;
            seen_format = 1;
        }
    }
    return 0;
}

enum { BODY_FASTA, BODY_JSON, BODY_UNSUPPORTED };

/* The media type of Content-Type, parameters (charset) ignored. No Content-Type means FASTA:
 * `curl --data-binary @q.fa` without -H sends application/x-www-form-urlencoded, which is
 * refused with a message saying what to send. */
static int body_kind(const char *content_type)
{
    if (!content_type)
        return BODY_FASTA;
    while (*content_type == ' ' || *content_type == '\t')
        content_type++;
    size_t n = strcspn(content_type, ";");
    while (n > 0 && (content_type[n - 1] == ' ' || content_type[n - 1] == '\t'))
        n--;
    if (n == 0)
        return BODY_FASTA;
    static const char *const fasta_types[] = {"text/plain", "text/x-fasta", "text/fasta", "application/x-fasta"};
    for (size_t i = 0; i < sizeof fasta_types / sizeof fasta_types[0]; i++)
        if (strlen(fasta_types[i]) == n && strncasecmp(content_type, fasta_types[i], n) == 0)
            return BODY_FASTA;
    if (n == 16 && strncasecmp(content_type, "application/json", n) == 0)
        return BODY_JSON;
    return BODY_UNSUPPORTED;
}

/* The query records of one request; owns copies of the reader's strings. */
typedef struct query_set {
    size_t n, cap, n_residues;
    char **ids, **seqs;
    int32_t *lengths;
} query_set;

static void query_set_clear(query_set *qs)
{
    for (size_t i = 0; i < qs->n; i++) {
        free(qs->ids[i]);
        free(qs->seqs[i]);
    }
    free(qs->ids);
    free(qs->seqs);
    free(qs->lengths);
    memset(qs, 0, sizeof *qs);
}

static int query_set_push(query_set *qs, const pdr_seq *s)
{
    if (qs->n == qs->cap) {
        size_t cap = qs->cap ? 2 * qs->cap : 8;
        char **ids = realloc(qs->ids, cap * sizeof *ids);
        if (ids)
            qs->ids = ids;
        char **seqs = realloc(qs->seqs, cap * sizeof *seqs);
        if (seqs)
            qs->seqs = seqs;
        int32_t *lengths = realloc(qs->lengths, cap * sizeof *lengths);
        if (lengths)
            qs->lengths = lengths;
        if (!ids || !seqs || !lengths)
            return -1;
        qs->cap = cap;
    }
    char *id = strdup(s->id), *seq = malloc(s->len + 1);
    if (!id || !seq) {
        free(id);
        free(seq);
        return -1;
    }
    memcpy(seq, s->seq, s->len + 1);
    qs->ids[qs->n] = id;
    qs->seqs[qs->n] = seq;
    qs->lengths[qs->n] = (int32_t)s->len;
    qs->n++;
    qs->n_residues += s->len;
    return 0;
}

/* Read every record of text[0..len) (named `name` in messages) into qs, enforcing the limits.
 * The first bad record fails the whole request: a service client wants to know, not to get
 * fewer results than it sent queries. Returns 0, or -1 with the error reply set. */
static int read_queries(const pdr_api *api, const char *text, size_t len, const char *name, query_set *qs,
                        pdr_api_reply *rep)
{
    pdr_fasta_opts fopts = {.max_length = api->limits.max_length, .name = name};
    pdr_fasta *fa = NULL;
    pdr_err err;
    pdr_err_clear(&err);
    if (pdr_fasta_open_mem(text, len, &fopts, &fa, &err)) {
        pdr_api_reply_error(rep, 500, "internal", "%s", err.msg);
        return -1;
    }
    int rc = -1;
    for (;;) {
        pdr_seq s = {0};
        int r = pdr_fasta_read(fa, &s, &err);
        if (r == PDR_EOF)
            break;
        if (qs->n == api->limits.max_queries) {
            pdr_api_reply_error(rep, 400, "too_many_queries",
                                "%s: record %zu (%.*s): more than %zu query records in one request (the limit)", name,
                                s.record_no, CLIP(s.id, 200), api->limits.max_queries);
            goto done;
        }
        if (r == PDR_ELIMIT) {
            pdr_api_reply_error(rep, 400, "sequence_too_long", "%s (this server's --max-length)", err.msg);
            goto done;
        }
        if (r == PDR_EINPUT) {
            pdr_api_reply_error(rep, 400, "invalid_fasta", "%s", err.msg);
            goto done;
        }
        if (r != PDR_OK) {
            pdr_api_reply_error(rep, 500, "internal", "%s", err.msg);
            goto done;
        }
        if (query_set_push(qs, &s)) {
            pdr_api_reply_error(rep, 500, "internal", "out of memory storing record %zu", s.record_no);
            goto done;
        }
    }
    if (qs->n == 0) {
        pdr_api_reply_error(rep, 400, "no_sequences", "%s holds no FASTA records (expected '>id' lines)", name);
        goto done;
    }
    rc = 0;
done:
    pdr_fasta_close(fa);
    return rc;
}

static void unsupported_media_type(const pdr_api_request *req, pdr_api_reply *rep)
{
    pdr_api_reply_error(rep, 415, "unsupported_media_type",
                        "Content-Type '%.*s' is not accepted: send FASTA as text/x-fasta or text/plain, or JSON "
                        "{\"fasta\": ...} as application/json",
                        CLIP(req->content_type, 100));
}

/* The FASTA text of a POST body, and the JSON fields that came with it. Returns 0, or -1 with
 * the error reply set. json must be cleared by the caller in both cases. */
static int read_body(const pdr_api_request *req, int search, search_params *sp, pdr_json_request *json,
                     const char **ret_text, size_t *ret_len, const char **ret_name, pdr_api_reply *rep)
{
    int kind = body_kind(req->content_type);
    if (kind == BODY_UNSUPPORTED) { /* pdr_api_precheck refuses it first; kept for direct callers */
        unsupported_media_type(req, rep);
        return -1;
    }
    if (req->body_len == 0) {
        pdr_api_reply_error(rep, 400, "empty_body",
                            "the request body is empty: send FASTA text (Content-Type: text/x-fasta) or JSON "
                            "{\"fasta\": \">id\\nSEQUENCE\"} (Content-Type: application/json)");
        return -1;
    }
    if (kind == BODY_FASTA) {
        *ret_text = req->body;
        *ret_len = req->body_len;
        *ret_name = "request body";
        return 0;
    }
    const char *code = NULL;
    pdr_err err;
    pdr_err_clear(&err);
    int rc = pdr_json_parse_request(req->body, req->body_len, json, &code, &err);
    if (rc) {
        pdr_api_reply_error(rep, rc == PDR_ENOMEM ? 500 : 400, code, "%s", err.msg);
        return -1;
    }
    if (!search && (json->has_k || json->has_min_score || json->has_expand || json->has_evalue)) {
        pdr_api_reply_error(rep, 400, "unknown_field", "field \"%s\" is not used by /v1/embed (allowed: fasta)",
                            json->has_k           ? "k"
                            : json->has_min_score ? "min_score"
                            : json->has_evalue    ? "evalue"
                                                  : "expand");
        return -1;
    }
    if (!json->fasta) {
        pdr_api_reply_error(rep, 400, "missing_fasta", "the JSON body has no \"fasta\" field");
        return -1;
    }
    if ((json->has_k && sp->has_k) || (json->has_min_score && sp->has_min_score) ||
        (json->has_expand && sp->has_expand) || (json->has_evalue && sp->has_evalue)) {
        pdr_api_reply_error(rep, 400, "duplicate_parameter", "%s given both in the query string and in the JSON body",
                            json->has_k && sp->has_k                   ? "k"
                            : json->has_min_score && sp->has_min_score ? "min_score"
                            : json->has_evalue && sp->has_evalue       ? "evalue"
                                                                       : "expand");
        return -1;
    }
    *ret_text = json->fasta;
    *ret_len = json->fasta_len;
    *ret_name = "\"fasta\"";
    return 0;
}

/* The work stopped because the request's cancel said so: the reply is for nobody. */
static void reply_cancelled(pdr_api_reply *rep)
{
    pdr_api_reply_error(rep, 400, "client_closed", "the client closed the connection");
    rep->cancelled = 1;
}

/* Embed every query with one pooled workspace, in this thread. */
static int embed_queries(pdr_api *api, const pdr_api_request *req, query_set *qs, float *emb, pdr_api_reply *rep)
{
    pdr_err err;
    pdr_err_clear(&err);
    pdr_batch_job job = {
        .n = qs->n, .seqs = qs->seqs, .lengths = qs->lengths, .ids = qs->ids, .emb = emb, .cancel = req->cancel};
    pdr_encoder_ws *ws = ws_acquire(api);
    int rc = pdr_batch_embed(api->enc, &ws, 1, &job, &err);
    ws_release(api, ws);
    if (rc == PDR_ECANCELLED) {
        reply_cancelled(rep);
        return -1;
    }
    if (rc) {
        pdr_api_reply_error(rep, 500, "internal", "embedding failed (a server error, in the server's log)");
        snprintf(rep->log_note, sizeof rep->log_note, "embedding failed: %s", err.msg);
        return -1;
    }
    return 0;
}

/* Embed every query with one pooled workspace, in this thread, and search them (with segment
 * vectors for a segment database: pdr_db_embed_and_search). */
static int embed_and_search(pdr_api *api, const pdr_db *db, const pdr_api_request *req, query_set *qs, float *emb,
                            const search_params *sp, int n_align, pdr_hit *hits, pdr_alignment *alns, size_t *counts,
                            pdr_api_reply *rep)
{
    pdr_err err;
    pdr_err_clear(&err);
    pdr_batch_job job = {
        .n = qs->n, .seqs = qs->seqs, .lengths = qs->lengths, .ids = qs->ids, .emb = emb, .cancel = req->cancel};
    pdr_encoder_ws *ws = ws_acquire(api);
    /* FAISS parallelizes with OpenMP; here concurrency comes from the worker threads, so each
     * request's search stays on its own thread (a per-thread setting). */
    omp_set_num_threads(1);
    pdr_db_params p = {.k = sp->k,
                       .n_align = n_align,
                       .min_score = sp->min_score,
                       .max_evalue = sp->max_evalue,
                       .alns = alns,
                       .no_expand = sp->has_expand && !sp->expand,
                       .cancel = req->cancel};
    int rc = pdr_db_embed_and_search(db, api->enc, &ws, 1, &job, &p, hits, counts, &err);
    ws_release(api, ws);
    if (rc == PDR_ECANCELLED) {
        reply_cancelled(rep);
        return -1;
    }
    if (rc) {
        pdr_api_reply_error(rep, 500, "internal", "search failed (a server error, in the server's log)");
        snprintf(rep->log_note, sizeof rep->log_note, "search failed: %s", err.msg);
        return -1;
    }
    return 0;
}

/* ================================================================ handlers */

/* k when the request gives none: PDR_API_DEFAULT_K, or --max-k when that is smaller (a request
 * without k never gets more hits than one may ask for). */
static int default_k(const pdr_api *api)
{
    return api->limits.max_k < PDR_API_DEFAULT_K ? api->limits.max_k : PDR_API_DEFAULT_K;
}

static void handle_search(pdr_api *api, const db_slot *cur, const pdr_api_request *req, pdr_api_reply *rep)
{
    double t0 = now_s();
    search_params sp = {.k = default_k(api), .min_score = -2.0f, .max_evalue = 1e300};
    pdr_json_request json = {0};
    query_set qs = {0};
    float *emb = NULL;
    pdr_hit *hits = NULL;
    pdr_alignment *alns = NULL;
    size_t *counts = NULL;
    const char *text = NULL, *name = NULL;
    size_t text_len = 0;
    if (parse_args(api, req, 1, &sp, rep) || read_body(req, 1, &sp, &json, &text, &text_len, &name, rep))
        goto done;
    if (json.has_k) {
        if (json.k > api->limits.max_k) {
            pdr_api_reply_error(rep, 400, "bad_k", "k must be an integer in [1, %d], got %d", api->limits.max_k,
                                json.k);
            goto done;
        }
        sp.k = json.k;
    }
    if (json.has_min_score)
        sp.min_score = (float)json.min_score;
    if (json.has_evalue)
        sp.max_evalue = json.evalue;
    if (json.has_expand) {
        sp.expand = json.expand;
        sp.has_expand = 1;
    }
    if (sp.has_expand && sp.expand && !pdr_db_expanded(cur->db)) {
        pdr_api_reply_error(rep, 400, "not_expanded",
                            "expand=true needs a database built with query expansion ('pdr makedb --expand'); "
                            "this one has none");
        goto done;
    }
    /* blast6 reports every hit's alignment, so every hit is aligned */
    int n_align = cur->align;
    if (sp.blast6) {
        if (!pdr_db_has_sequences(cur->db)) {
            pdr_api_reply_error(rep, 400, "database_without_sequences",
                                "format=blast6 needs alignments, and this database has no sequences (rebuild it "
                                "with 'pdr makedb')");
            goto done;
        }
        if (cur->align == 0) {
            pdr_api_reply_error(rep, 400, "alignment_off",
                                "format=blast6 needs alignments, and this server runs with --align 0 (no alignment); "
                                "ask for format=json or tsv");
            goto done;
        }
        n_align = n_align > sp.k ? n_align : sp.k;
    }
    if (read_queries(api, text, text_len, name, &qs, rep))
        goto done;
    rep->n_queries = qs.n;
    /* blast6 aligns k hits per query, up to --max-k: bound a request's alignment work by what
     * the largest request of the default format may cost (every query residue aligned against
     * --align candidates), so that one request cannot hold a worker for many minutes. */
    double work = (double)qs.n_residues * (double)n_align;
    double budget = (double)api->limits.max_queries * (double)api->limits.max_length *
                    (double)(cur->align > PDR_DB_ALIGN_DEFAULT ? cur->align : PDR_DB_ALIGN_DEFAULT);
    if (n_align > cur->align && work > budget) {
        pdr_api_reply_error(rep, 400, "too_much_alignment",
                            "format=blast6 aligns every hit: %zu query residues x k %d = %.3g residue-alignments, "
                            "over this server's limit of %.3g (--max-queries x --max-length x --align); lower k or "
                            "send fewer residues per request",
                            qs.n_residues, sp.k, work, budget);
        goto done;
    }

    int dim = pdr_db_dim(cur->db);
    emb = malloc(qs.n * (size_t)dim * sizeof *emb);
    size_t kc = pdr_db_candidates(cur->db, sp.k, n_align);
    hits = malloc(qs.n * kc * sizeof *hits);
    alns = sp.blast6 ? malloc(qs.n * kc * sizeof *alns) : NULL;
    counts = malloc(qs.n * sizeof *counts);
    if (!emb || !hits || (sp.blast6 && !alns) || !counts) {
        pdr_api_reply_error(rep, 500, "internal", "out of memory for %zu queries x %d hits", qs.n, sp.k);
        goto done;
    }
    if (embed_and_search(api, cur->db, req, &qs, emb, &sp, n_align, hits, alns, counts, rep))
        goto done;
    pdr_metrics_add_work(api->metrics, qs.n, qs.n, qs.n_residues);

    rep->status = 200;
    pdr_buf *out = &rep->body;
    if (sp.blast6) {
        rep->content_type = "text/tab-separated-values; charset=utf-8";
        for (size_t i = 0; i < qs.n; i++)
            pdr_report_blast6(out, cur->db, qs.ids[i], hits + i * kc, alns + i * kc, counts[i]);
    } else if (sp.tsv) {
        rep->content_type = "text/tab-separated-values; charset=utf-8";
        for (size_t i = 0; i < qs.n; i++)
            pdr_report_tsv(out, cur->db, qs.ids[i], (size_t)qs.lengths[i], hits + i * kc, counts[i]);
    } else {
        rep->content_type = "application/json";
        pdr_buf_puts(out, "{\"model\":");
        pdr_buf_json_str(out, pdr_encoder_name(api->enc));
        pdr_buf_puts(out, ",\"database\":");
        pdr_buf_json_str(out, cur->name);
        pdr_buf_puts(out, ",\"results\":[");
        pdr_err err;
        pdr_err_clear(&err);
        for (size_t i = 0; i < qs.n; i++) {
            if (i)
                pdr_buf_puts(out, ",");
            if (pdr_report_json_query(out, cur->db, qs.ids[i], (size_t)qs.lengths[i], hits + i * kc, counts[i], &err)) {
                pdr_api_reply_error(rep, 500, "internal",
                                    "reading the hits' descriptions failed (a server error, in "
                                    "the server's log)");
                snprintf(rep->log_note, sizeof rep->log_note, "descriptions: %s", err.msg);
                goto done;
            }
        }
        pdr_buf_printf(out, "],\"took_ms\":%.3f}\n", 1e3 * (now_s() - t0));
    }
done:
    free(emb);
    free(hits);
    free(alns);
    free(counts);
    query_set_clear(&qs);
    pdr_json_request_clear(&json);
}

static void handle_embed(pdr_api *api, const db_slot *cur, const pdr_api_request *req, pdr_api_reply *rep)
{
    (void)cur;
    search_params sp = {0};
    pdr_json_request json = {0};
    query_set qs = {0};
    float *emb = NULL;
    const char *text = NULL, *name = NULL;
    size_t text_len = 0;
    if (parse_args(api, req, 0, &sp, rep) || read_body(req, 0, &sp, &json, &text, &text_len, &name, rep) ||
        read_queries(api, text, text_len, name, &qs, rep))
        goto done;
    rep->n_queries = qs.n;
    int dim = pdr_encoder_dim(api->enc);
    if (!(emb = malloc(qs.n * (size_t)dim * sizeof *emb))) {
        pdr_api_reply_error(rep, 500, "internal", "out of memory for %zu embeddings", qs.n);
        goto done;
    }
    if (embed_queries(api, req, &qs, emb, rep))
        goto done;
    pdr_metrics_add_work(api->metrics, 0, qs.n, qs.n_residues);
    rep->status = 200;
    rep->content_type = "application/json";
    pdr_buf *out = &rep->body;
    pdr_buf_puts(out, "{\"model\":");
    pdr_buf_json_str(out, pdr_encoder_name(api->enc));
    pdr_buf_puts(out, ",\"model_version\":");
    pdr_buf_json_str(out, pdr_encoder_version(api->enc));
    pdr_buf_printf(out, ",\"dim\":%d,\"embeddings\":[", dim);
    for (size_t i = 0; i < qs.n; i++) {
        pdr_buf_puts(out, i ? ",{\"id\":" : "{\"id\":");
        pdr_buf_json_str(out, qs.ids[i]);
        pdr_buf_printf(out, ",\"length\":%d,\"vector\":[", (int)qs.lengths[i]);
        const float *v = emb + i * (size_t)dim;
        for (int d = 0; d < dim; d++) /* 9 significant digits: a float survives the round trip */
            pdr_buf_printf(out, d ? ",%.9g" : "%.9g", (double)v[d]);
        pdr_buf_puts(out, "]}");
    }
    pdr_buf_puts(out, "]}\n");
done:
    free(emb);
    query_set_clear(&qs);
    pdr_json_request_clear(&json);
}

static void handle_health(pdr_api *api, const db_slot *cur, const pdr_api_request *req, pdr_api_reply *rep)
{
    (void)req;
    rep->content_type = "application/json";
    (void)api;
    if (!cur) { /* loading */
        rep->status = 503;
        rep->retry_after_s = 1;
        pdr_buf_puts(&rep->body, "{\"status\":\"loading\",\"database_loaded\":false}\n");
        return;
    }
    rep->status = 200;
    pdr_buf_printf(&rep->body, "{\"status\":\"ok\",\"database_loaded\":true,\"proteins\":%zu}\n",
                   pdr_db_count(cur->db));
}

static void handle_info(pdr_api *api, const db_slot *cur, const pdr_api_request *req, pdr_api_reply *rep)
{
    (void)req;
    const pdr_api_limits *l = &api->limits;
    pdr_buf *out = &rep->body;
    rep->status = 200;
    rep->content_type = "application/json";
    pdr_buf_puts(out, "{\"version\":");
    pdr_buf_json_str(out, PDR_VERSION);
    pdr_buf_puts(out, ",\"model\":");
    pdr_buf_json_str(out, pdr_encoder_name(api->enc));
    pdr_buf_puts(out, ",\"model_version\":");
    pdr_buf_json_str(out, pdr_encoder_version(api->enc));
    pdr_buf_printf(out, ",\"learned\":%s,\"dim\":%d,\"database\":", pdr_encoder_is_learned(api->enc) ? "true" : "false",
                   pdr_db_dim(cur->db));
    pdr_buf_json_str(out, cur->name);
    const char *index = pdr_db_index_spec(cur->db);
    if (strncmp(index, "loaded ", 7) == 0) /* pdr_index describes an index read from a file as "loaded Flat" */
        index += 7;
    pdr_buf_printf(out, ",\"proteins\":%zu,\"index\":", pdr_db_count(cur->db));
    pdr_buf_json_str(out, index);
    pdr_buf_printf(out, ",\"scores\":\"%s\",\"segments\":%s,\"expanded\":%s,\"align\":%d",
                   pdr_db_adjusted(cur->db) ? "background-adjusted" : "cosine",
                   pdr_db_has_segments(cur->db) ? "true" : "false", pdr_db_expanded(cur->db) ? "true" : "false",
                   cur->align);
    pdr_buf_printf(out,
                   ",\"workers\":%d,\"auth\":%s,\"limits\":{\"max_body_bytes\":%zu,\"max_queries\":%zu,"
                   "\"max_length\":%zu,\"max_k\":%d,\"default_k\":%d}}\n",
                   api->n_ws, api->token ? "true" : "false", l->max_body_bytes, l->max_queries, l->max_length, l->max_k,
                   default_k(api));
}

static void handle_metrics(pdr_api *api, const db_slot *cur, const pdr_api_request *req, pdr_api_reply *rep)
{
    (void)req;
    rep->status = 200;
    rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
    pdr_metrics_render(api->metrics, &rep->body);
    int ready = cur != NULL;
    pdr_buf_printf(&rep->body,
                   "# HELP pdr_ready 1 once the database and the model are loaded.\n"
                   "# TYPE pdr_ready gauge\npdr_ready %d\n"
                   "# HELP pdr_database_proteins Proteins in the database.\n"
                   "# TYPE pdr_database_proteins gauge\npdr_database_proteins %zu\n",
                   ready, ready ? pdr_db_count(cur->db) : (size_t)0);
}

static void handle_page(pdr_api *api, const db_slot *cur, const pdr_api_request *req, pdr_api_reply *rep)
{
    (void)api;
    (void)cur;
    (void)req;
    rep->status = 200;
    rep->content_type = "text/html; charset=utf-8";
    pdr_buf_puts(&rep->body, pdr_page_html);
}

static void handle_openapi(pdr_api *api, const db_slot *cur, const pdr_api_request *req, pdr_api_reply *rep)
{
    (void)api;
    (void)cur;
    (void)req;
    rep->status = 200;
    rep->content_type = "application/json";
    pdr_buf_puts(&rep->body, pdr_openapi_json);
}

/* ================================================================ routes and dispatch */

/* cur: the database this request uses from start to end (NULL while loading). */
typedef void (*handler_fn)(pdr_api *api, const db_slot *cur, const pdr_api_request *req, pdr_api_reply *rep);

typedef struct route {
    const char *path;
    const char *method; /* "GET" routes answer HEAD too */
    int endpoint;
    int needs_auth; /* with --token-file */
    int needs_db;   /* 503 while loading */
    handler_fn fn;
} route;

static const route routes[] = {
    {"/v1/search", "POST", PDR_EP_SEARCH, 1, 1, handle_search},
    {"/v1/embed", "POST", PDR_EP_EMBED, 1, 1, handle_embed},
    {"/v1/health", "GET", PDR_EP_HEALTH, 0, 0, handle_health},
    {"/v1/info", "GET", PDR_EP_INFO, 1, 1, handle_info},
    {"/metrics", "GET", PDR_EP_METRICS, 1, 0, handle_metrics},
    {"/", "GET", PDR_EP_PAGE, 0, 0, handle_page},
    {"/openapi.json", "GET", PDR_EP_OPENAPI, 0, 0, handle_openapi},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

static const route *find_route(const char *path)
{
    for (size_t i = 0; i < N_ROUTES; i++)
        if (strcmp(routes[i].path, path) == 0)
            return &routes[i];
    return NULL;
}

int pdr_api_endpoint(const char *path)
{
    const route *r = path ? find_route(path) : NULL;
    return r ? r->endpoint : PDR_EP_OTHER;
}

static const char *route_methods(const route *r) { return strcmp(r->method, "GET") == 0 ? "GET, HEAD" : r->method; }

const char *pdr_api_methods(const char *path)
{
    const route *r = path ? find_route(path) : NULL;
    return r ? route_methods(r) : NULL;
}

/* Constant-time comparison of the bearer token, so that timing does not leak a prefix. */
static int token_ok(const pdr_api *api, const char *authorization)
{
    if (!api->token)
        return 1;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return 0;
    const char *given = authorization + 7;
    while (*given == ' ' || *given == '\t')
        given++;
    size_t n = strlen(api->token), m = strlen(given);
    while (m > 0 && (given[m - 1] == ' ' || given[m - 1] == '\t')) /* whitespace around a value is not part of it */
        m--;
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(api->token[i] ^ (i < m ? given[i] : 0));
    return diff == 0;
}

int pdr_api_precheck(pdr_api *api, const pdr_api_request *req, pdr_api_reply *rep)
{
    const route *r = find_route(req->path);
    rep->endpoint = r ? r->endpoint : PDR_EP_OTHER;
    if (!r) {
        pdr_api_reply_error(rep, 404, "not_found", "no endpoint %.*s %.*s (see GET /openapi.json)",
                            CLIP(req->method, 16), CLIP(req->path, 200));
        return 1;
    }
    int is_get = strcmp(r->method, "GET") == 0;
    if (strcmp(req->method, r->method) != 0 && !(is_get && strcmp(req->method, "HEAD") == 0)) {
        rep->allow = route_methods(r);
        pdr_api_reply_error(rep, 405, "method_not_allowed", "%s takes %s, not %.*s", r->path,
                            is_get ? "GET" : r->method, CLIP(req->method, 16));
        return 1;
    }
    if (r->needs_auth && !token_ok(api, req->authorization)) {
        rep->auth_challenge = 1;
        pdr_api_reply_error(rep, 401, "unauthorized",
                            req->authorization ? "wrong token in the Authorization header"
                                               : "this server requires 'Authorization: Bearer <token>'");
        return 1;
    }
    if (r->needs_db && !pdr_api_is_ready(api)) {
        rep->retry_after_s = 1;
        pdr_api_reply_error(rep, 503, "loading", "the database is still loading; retry shortly");
        return 1;
    }
    if (!is_get && body_kind(req->content_type) == BODY_UNSUPPORTED) {
        unsupported_media_type(req, rep);
        return 1;
    }
    if (!is_get && req->content_encoding && strcasecmp(req->content_encoding, "identity") != 0) {
        pdr_api_reply_error(rep, 415, "unsupported_media_type",
                            "Content-Encoding '%.*s' is not accepted: send the body uncompressed",
                            CLIP(req->content_encoding, 32));
        return 1;
    }
    return 0;
}

void pdr_api_handle(pdr_api *api, const pdr_api_request *req, pdr_api_reply *rep)
{
    if (pdr_api_precheck(api, req, rep))
        return;
    const route *r = find_route(req->path);
    db_slot *cur = slot_acquire(api);
    if (r->needs_db && !cur) /* not possible after the precheck's ready; kept for the reader */
        pdr_api_reply_error(rep, 503, "loading", "the database is still loading; retry shortly");
    else
        r->fn(api, cur, req, rep);
    slot_release(api, cur);
    if (pdr_buf_failed(&rep->body))
        pdr_api_reply_error(rep, 500, "internal", "out of memory formatting the reply");
}
