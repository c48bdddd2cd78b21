/* test_http.c: the HTTP service (service/) over real sockets.
 *
 * Builds the demo database (data/demo/targets.fasta, 1,049 proteins, kmer3 model) in $PDR_TMP,
 * starts real servers in-process on 127.0.0.1 port 0 (the port is read back from
 * libmicrohttpd) and talks to them with the tiny HTTP/1.1 client below: every endpoint, every
 * client error, the limits, authentication, the 503 while loading, concurrency, keep-alive and
 * a clean stop with a request in flight. Replies are checked against the same search done
 * in-process (pdr_db_search + pdr_report). The JSON request parser is also tested directly.
 * Ends with "N passed, N failed".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "pdr_api.h"
#include "pdr_assets.h"
#include "pdr_bulk.h"
#include "pdr_cors.h"
#include "pdr_db.h"
#include "pdr_fasta.h"
#include "pdr_host.h"
#include "pdr_http.h"
#include "pdr_json.h"
#include "pdr_report.h"

void openblas_set_num_threads(int num_threads);

/* ================================================================ a tiny HTTP/1.1 client */

typedef struct conn {
    int fd;
    char *buf;
    size_t len, cap;
} conn;

typedef struct reply {
    int status;
    char head[8192]; /* status line and headers */
    char *body;      /* NUL-terminated */
    size_t body_len;
    int io_error; /* the connection failed before a full reply arrived */
} reply;

/* pdr_db_search for whole-protein queries. */
static int db_search(const pdr_db *db, const pdr_background *bg, const float *vec, size_t nq, int k, float min_score,
                     double max_evalue, pdr_hit *hits, size_t *counts, pdr_err *err)
{
    pdr_db_queries qs = {.n = nq, .vec = vec, .bg = bg};
    return pdr_db_search(db, &qs, k, min_score, max_evalue, hits, counts, err);
}

static double now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int conn_open(conn *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    struct timeval tv = {20, 0}; /* a hung server fails the test instead of hanging it */
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void conn_close(conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static int send_all(conn *c, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read more bytes into the buffer: >0 read, 0 EOF, -1 error. */
static ssize_t conn_fill(conn *c)
{
    if (c->cap - c->len < 65536) {
        size_t cap = c->cap ? 2 * c->cap : 131072;
        char *p = realloc(c->buf, cap);
        if (!p)
            return -1;
        c->buf = p;
        c->cap = cap;
    }
    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
    if (r > 0)
        c->len += (size_t)r;
    return r;
}

static const char *find_header(const char *head, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r\n");
            if (len >= n)
                len = n - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return out;
        }
    }
    return NULL;
}

/* Read one reply (skipping "100 Continue" unless stop_at_100). For HEAD, no body is read, nor
 * for a 204 (which has no Content-Length: reading to the end would wait for the connection to
 * close). */
static int conn_read_reply(conn *c, int is_head, int stop_at_100, reply *r)
{
    for (;;) {
        char *end;
        while (!c->buf || !(end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
            if (conn_fill(c) <= 0) {
                r->io_error = 1;
                return -1;
            }
        }
        size_t head_len = (size_t)(end - c->buf) + 4;
        size_t copy = head_len < sizeof r->head ? head_len : sizeof r->head - 1;
        memcpy(r->head, c->buf, copy);
        r->head[copy] = '\0';
        r->status = 0;
        sscanf(r->head, "HTTP/1.%*d %d", &r->status);
        memmove(c->buf, c->buf + head_len, c->len - head_len);
        c->len -= head_len;
        if (r->status == 100 && !stop_at_100)
            continue;
        if (r->status == 100 || r->status == 204 || is_head) {
            r->body = calloc(1, 1);
            r->body_len = 0;
            return 0;
        }
        char v[32];
        long long want = -1;
        if (find_header(r->head, "Content-Length", v, sizeof v))
            want = atoll(v);
        while (want < 0 || c->len < (size_t)want) {
            ssize_t got = conn_fill(c);
            if (got == 0 && want < 0)
                break;
            if (got <= 0) {
                r->io_error = 1;
                return -1;
            }
        }
        size_t n = want < 0 ? c->len : (size_t)want;
        r->body = malloc(n + 1);
        memcpy(r->body, c->buf, n);
        r->body[n] = '\0';
        r->body_len = n;
        memmove(c->buf, c->buf + n, c->len - n);
        c->len -= n;
        return 0;
    }
}

static void reply_free(reply *r)
{
    free(r->body);
    r->body = NULL;
}

/* One request on an open connection. extra: header lines, each ending in \r\n (may be NULL).
 * With expect, the body is sent only after "100 Continue" (as curl does for large bodies). */
static int conn_request(conn *c, const char *method, const char *target, const char *extra, const char *body,
                        size_t body_len, int expect, reply *r)
{
    memset(r, 0, sizeof *r);
    char head[4096];
    int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s", method, target, extra ? extra : "");
    if (body)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n%s", body_len,
                      expect ? "Expect: 100-continue\r\n" : "");
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    if (send_all(c, head, (size_t)n)) {
        r->io_error = 1;
        return -1;
    }
    int is_head = strcmp(method, "HEAD") == 0;
    if (body && expect) {
        if (conn_read_reply(c, is_head, 1, r))
            return -1;
        if (r->status != 100)
            return 0; /* a final answer before the body: the server refused it */
        reply_free(r);
    }
    if (body && body_len)
        send_all(c, body, body_len); /* a server that refuses early may close: read its reply anyway */
    return conn_read_reply(c, is_head, 0, r);
}

/* One request on a fresh connection (closed afterwards). content_type may be NULL. */
static reply request(int port, const char *method, const char *target, const char *content_type, const char *body,
                     size_t body_len)
{
    reply r;
    memset(&r, 0, sizeof r);
    conn c;
    if (conn_open(&c, port)) {
        r.io_error = 1;
        r.body = calloc(1, 1);
        return r;
    }
    char extra[512] = "Connection: close\r\n";
    if (content_type)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "Content-Type: %s\r\n", content_type);
    conn_request(&c, method, target, extra, body, body_len, 0, &r);
    if (!r.body)
        r.body = calloc(1, 1);
    conn_close(&c);
    return r;
}

static reply post_fasta(int port, const char *target, const char *fasta)
{
    return request(port, "POST", target, "text/x-fasta", fasta, strlen(fasta));
}

static reply post_json(int port, const char *target, const char *json)
{
    return request(port, "POST", target, "application/json", json, strlen(json));
}

static reply get(int port, const char *target) { return request(port, "GET", target, NULL, NULL, 0); }

static size_t count_str(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* A 4xx/5xx reply in the documented shape, with this code and (if given) message text. */
static void check_error(const reply *r, int want_status, const char *want_code, const char *msg_part, int line)
{
    char ct[128] = "", prefix[128];
    if (!r->body) {
        CHECKF(r->body, "line %d: no reply (status %d, want %d)", line, r->status, want_status);
        return;
    }
    snprintf(prefix, sizeof prefix, "{\"error\":{\"code\":\"%s\",\"message\":\"", want_code);
    CHECKF(r->status == want_status, "line %d: status %d, want %d: %s", line, r->status, want_status, r->body);
    CHECKF(find_header(r->head, "Content-Type", ct, sizeof ct) && strcmp(ct, "application/json") == 0,
           "line %d: content type '%s'", line, ct);
    CHECKF(strncmp(r->body, prefix, strlen(prefix)) == 0, "line %d: want code %s: %s", line, want_code, r->body);
    if (msg_part)
        CHECKF(strstr(r->body, msg_part) != NULL, "line %d: message lacks '%s': %s", line, msg_part, r->body);
}
#define CHECK_ERROR(r, status, code, msg_part) check_error(&(r), (status), (code), (msg_part), __LINE__)

/* ================================================================ fixtures */

static pdr_db *db;
static pdr_encoder *enc;
static pdr_api *api;
static pdr_http *server;
static int port;
static FILE *server_log;
static char log_path[1100];
static char dbdir[1024];
static char query_fasta[1024];

static char *read_file(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = '\0';
        if (ret_len)
            *ret_len = (size_t)n;
    }
    return p;
}

/* A protein of n residues cycling through the 20 amino acids from offset `shift`. */
static char *make_seq(size_t n, size_t shift)
{
    static const char aa[] = "ACDEFGHIKLMNPQRSTVWY";
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        s[i] = aa[(i * 7 + shift + i / 13) % 20];
    s[n] = '\0';
    return s;
}

static int setup(void)
{
    const char *data = getenv("PDR_DATA") ? getenv("PDR_DATA") : "data";
    const char *tmp = getenv("PDR_TMP") ? getenv("PDR_TMP") : "/tmp";
    char targets[1024], store[1100];
    snprintf(targets, sizeof targets, "%s/demo/targets.fasta", data);
    snprintf(query_fasta, sizeof query_fasta, "%s/demo/query.fasta", data);
    snprintf(dbdir, sizeof dbdir, "%s/test_http.%ld", tmp, (long)getpid());
    snprintf(store, sizeof store, "%s/%s", dbdir, PDR_DB_STORE);
    openblas_set_num_threads(1);
    pdr_err err;
    pdr_err_clear(&err);
    mkdir(tmp, 0777);
    if (mkdir(dbdir, 0777) != 0) {
        fprintf(stderr, "cannot create %s: %s\n", dbdir, strerror(errno));
        return -1;
    }
    pdr_bulk_opts bopts;
    pdr_bulk_opts_default(&bopts);
    bopts.threads = 2;
    pdr_bulk_stats stats;
    if (pdr_encoder_open(PDR_MODEL_BUILTIN_KMER, &enc, &err) ||
        pdr_bulk_embed(enc, targets, store, &bopts, &stats, &err) || pdr_db_build_index(dbdir, "Flat", 2, NULL, &err) ||
        pdr_db_calibrate(dbdir, enc, 2, 0, &err) || pdr_db_open(dbdir, &db, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    pdr_api_limits limits;
    pdr_api_limits_default(&limits);
    pdr_http_opts hopts;
    pdr_http_opts_default(&hopts);
    hopts.port = 0;
    hopts.threads = 2;
    snprintf(log_path, sizeof log_path, "%s.log", dbdir);
    server_log = fopen(log_path, "a");
    setvbuf(server_log, NULL, _IOLBF, 0);
    hopts.log = server_log;
    if (pdr_api_create(&limits, NULL, hopts.threads, &api, &err) || pdr_api_set_ready(api, db, enc, &err) ||
        pdr_http_start(api, &hopts, &server, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    port = pdr_http_port(server);
    fprintf(stderr, "database %s (%zu proteins), server on 127.0.0.1:%d\n", dbdir, pdr_db_count(db), port);
    return 0;
}

static void teardown(void)
{
    pdr_http_stop(server, 5000);
    pdr_api_free(api);
    pdr_db_free(db);
    pdr_encoder_free(enc);
    if (server_log)
        fclose(server_log);
    unlink(log_path);
    const char *files[] = {PDR_DB_STORE, PDR_DB_INDEX, PDR_DB_CALIB};
    char path[1200];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dbdir, files[i]);
        unlink(path);
    }
    rmdir(dbdir);
}

/* The in-process answer: hits of every record of a FASTA text, as pdr_report TSV. */
static char *expected_tsv(const char *fasta, int k, float min_score)
{
    pdr_fasta *fa = NULL;
    pdr_err err;
    pdr_buf out;
    pdr_buf_init(&out);
    pdr_encoder_ws *ws = NULL;
    pdr_encoder_ws_create(enc, &ws, &err);
    pdr_fasta_open_mem(fasta, strlen(fasta), NULL, &fa, &err);
    int dim = pdr_encoder_dim(enc);
    float *v = malloc((size_t)dim * sizeof *v);
    pdr_hit *hits = malloc((size_t)k * sizeof *hits);
    pdr_seq s;
    while (pdr_fasta_read(fa, &s, &err) == PDR_OK) {
        size_t count = 0;
        pdr_encode(enc, ws, s.seq, s.len, v, &err);
        db_search(db, pdr_encoder_background(enc), v, 1, k, min_score, 1e300, hits, &count, &err);
        pdr_report_tsv(&out, db, s.id, s.len, hits, count);
    }
    free(v);
    free(hits);
    pdr_fasta_close(fa);
    pdr_encoder_ws_free(ws);
    return pdr_buf_steal(&out, NULL);
}

static double metric(int p, const char *name)
{
    reply r = get(p, "/metrics");
    double v = -1;
    char key[256];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *at = strstr(r.body, key);
    if (at)
        v = atof(at + strlen(key));
    reply_free(&r);
    return v;
}

/* A request's counters are updated when its connection completes, which can be just after the
 * client has read the reply: wait up to 2 s for the expected value. */
static double metric_wait(int p, const char *name, double want)
{
    double v = metric(p, name);
    for (int i = 0; i < 200 && v != want; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        v = metric(p, name);
    }
    return v;
}

/* ================================================================ the JSON request parser */

TEST(json_parser_accepts_the_documented_object)
{
    pdr_json_request q;
    const char *code;
    pdr_err err;
    const char *body = " {\"fasta\": \">q\\nMK\\u0041\\ud83d\\ude00\\/\", \"k\": 1e1, \"min_score\": -0.25}\n";
    CHECK(pdr_json_parse_request(body, strlen(body), &q, &code, &err) == PDR_OK);
    CHECKF(q.fasta && strcmp(q.fasta, ">q\nMKA\xf0\x9f\x98\x80/") == 0, "fasta '%s'", q.fasta ? q.fasta : "(null)");
    CHECK(q.fasta_len == strlen(">q\nMKA\xf0\x9f\x98\x80/"));
    CHECK(q.has_k && q.k == 10);
    CHECK(q.has_min_score && q.min_score == -0.25);
    pdr_json_request_clear(&q);
    CHECK(pdr_json_parse_request("{}", 2, &q, &code, &err) == PDR_OK && !q.fasta && !q.has_k);
    /* Not NUL-terminated: the parser must stop at len. */
    char exact[] = {'{', '"', 'k', '"', ':', '5', '}'};
    CHECK(pdr_json_parse_request(exact, sizeof exact, &q, &code, &err) == PDR_OK && q.k == 5);
    const char *off = "{\"expand\": false}", *on = "{\"expand\":true }";
    CHECK(pdr_json_parse_request(off, strlen(off), &q, &code, &err) == PDR_OK && q.has_expand && !q.expand);
    CHECK(pdr_json_parse_request(on, strlen(on), &q, &code, &err) == PDR_OK && q.has_expand && q.expand);
    CHECK(pdr_json_parse_request("{}", 2, &q, &code, &err) == PDR_OK && !q.has_expand);
}

TEST(json_parser_rejects_with_a_code_per_mistake)
{
    static const struct {
        const char *body, *code, *msg_part;
    } cases[] = {
        {"", "invalid_json", "empty body"},
        {"{\"fasta\": \"x\"", "invalid_json", "byte 13"},
        {"{\"fasta\": \"x\",}", "invalid_json", "expected a string key"},
        {"{\"fasta\": \"x\"} x", "invalid_json", "after the object"},
        {"\xef\xbb\xbf{}", "invalid_json", "byte 0"},
        {"{\"fasta\": \"a\x01\"}", "invalid_json", "control character"},
        {"{\"fasta\": \"\xc3\x28\"}", "invalid_json", "UTF-8"},
        {"{\"fasta\": \"\\ud800\"}", "invalid_json", "surrogate"},
        {"{\"fasta\": \"\\x\"}", "invalid_json", "escape"},
        {"{\"k\": 01}", "invalid_json", NULL},
        {"{\"k\": 1.}", "invalid_json", NULL},
        {"{\"k\": 1111111111111111111111111111111111111111111111111111111111111111111}", "invalid_json", "64"},
        {"[1]", "not_an_object", "an array"},
        {"\"text\"", "not_an_object", "a string"},
        {"{\"fasta\": \"x\", \"db\": 1}", "unknown_field", "\"db\""},
        {"{\"fasta\": \"x\", \"fasta\": \"y\"}", "duplicate_field", "fasta"},
        {"{\"fasta\": 5}", "bad_fasta", "a number"},
        {"{\"k\": 0}", "bad_k", NULL},
        {"{\"k\": -3}", "bad_k", NULL},
        {"{\"k\": 2.5}", "bad_k", NULL},
        {"{\"k\": 1e400}", "bad_k", NULL},
        {"{\"k\": \"10\"}", "bad_k", "a string"},
        {"{\"k\": [1, {\"a\": null}]}", "bad_k", "an array"},
        {"{\"min_score\": 1.5}", "bad_min_score", NULL},
        {"{\"min_score\": true}", "bad_min_score", "a boolean"},
        {"{\"expand\": 1}", "bad_expand", "a number"},
        {"{\"expand\": \"true\"}", "bad_expand", "a string"},
        {"{\"expand\": null}", "bad_expand", "null"},
        {"{\"expand\": tru}", "invalid_json", NULL},
        {"{\"expand\": true, \"expand\": false}", "duplicate_field", "expand"},
        {"{\"evalue\": 0}", "bad_evalue", "> 0"},
        {"{\"evalue\": -1e-3}", "bad_evalue", NULL},
        {"{\"evalue\": 1e400}", "bad_evalue", NULL},
        {"{\"evalue\": 1e-400}", "bad_evalue", NULL}, /* 0 as a double */
        {"{\"evalue\": \"1e-3\"}", "bad_evalue", "a string"},
        {"{\"evalue\": 1, \"evalue\": 2}", "duplicate_field", "evalue"},
        {"{\"k\": "
         "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
         "json_too_deep", "32"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pdr_json_request q;
        const char *code = NULL;
        pdr_err err;
        pdr_err_clear(&err);
        int rc = pdr_json_parse_request(cases[i].body, strlen(cases[i].body), &q, &code, &err);
        CHECKF(rc == PDR_EINPUT, "case %zu: rc %d", i, rc);
        CHECKF(code && strcmp(code, cases[i].code) == 0, "case %zu (%s): code %s, want %s (%s)", i, cases[i].body,
               code ? code : "(null)", cases[i].code, err.msg);
        if (cases[i].msg_part)
            CHECKF(strstr(err.msg, cases[i].msg_part) != NULL, "case %zu: message '%s' lacks '%s'", i, err.msg,
                   cases[i].msg_part);
        CHECK(q.fasta == NULL);
    }
}

/* ================================================================ endpoints */

TEST(health_says_loaded)
{
    reply r = get(port, "/v1/health");
    CHECKF(r.status == 200, "status %d", r.status);
    CHECKF(strstr(r.body, "\"database_loaded\":true") && strstr(r.body, "\"proteins\":1049"), "%s", r.body);
    reply_free(&r);
}

TEST(info_describes_model_database_and_limits)
{
    reply r = get(port, "/v1/info");
    CHECKF(r.status == 200, "status %d", r.status);
    CHECKF(strstr(r.body, "\"version\":\"" PDR_VERSION "\""), "%s", r.body);
    CHECKF(strstr(r.body, "\"model\":\"kmer3-hash-baseline\""), "%s", r.body);
    CHECKF(strstr(r.body, "\"dim\":256") && strstr(r.body, "\"proteins\":1049"), "%s", r.body);
    CHECKF(strstr(r.body, "\"index\":") && strstr(r.body, "Flat"), "%s", r.body);
    CHECKF(strstr(r.body, "\"max_body_bytes\":1048576") && strstr(r.body, "\"max_queries\":100") &&
               strstr(r.body, "\"max_length\":10000"),
           "%s", r.body);
    /* The database is named by its directory, not by the server's path. */
    CHECKF(!strstr(r.body, dbdir), "server path leaked: %s", r.body);
    reply_free(&r);
}

TEST(search_fasta_matches_the_in_process_search)
{
    char *fasta = read_file(query_fasta, NULL);
    CHECK(fasta != NULL);
    if (!fasta)
        return;
    reply r = post_fasta(port, "/v1/search?k=5", fasta);
    CHECKF(r.status == 200, "status %d: %s", r.status, r.body);
    char ct[128] = "";
    CHECK(find_header(r.head, "Content-Type", ct, sizeof ct) && strcmp(ct, "application/json") == 0);
    CHECKF(strncmp(r.body, "{\"model\":\"kmer3-hash-baseline\",\"database\":\"test_http.", 53) == 0, "%s", r.body);
    const char *q1 = strstr(r.body, "{\"query\":\"Q00356\",\"length\":246,");
    const char *q2 = strstr(r.body, "{\"query\":\"A0Q3L2\",\"length\":213,");
    const char *q3 = strstr(r.body, "{\"query\":\"Q8YSI5\",\"length\":151,");
    CHECKF(q1 && q2 && q3 && q1 < q2 && q2 < q3, "queries missing or out of order: %s", r.body);
    CHECKF(count_str(r.body, "\"rank\":") == 15 && count_str(r.body, "\"rank\":5,") == 3, "%s", r.body);
    CHECK(strstr(r.body, "\"took_ms\":") != NULL);
    /* Every expected (query, top target) pair from the in-process search appears as rank 1. */
    char *tsv = expected_tsv(fasta, 5, -2.0f);
    for (char *line = tsv; line && *line;) {
        char q[64], t[64];
        int rank;
        if (sscanf(line, "%63s %63s %*s %*s %d", q, t, &rank) == 3 && rank == 1) {
            char want[200], key[100];
            snprintf(want, sizeof want, "\"hits\":[{\"target\":\"%s\"", t);
            snprintf(key, sizeof key, "{\"query\":\"%s\"", q);
            const char *at = strstr(r.body, key);
            const char *hits = at ? strstr(at, "\"hits\":[") : NULL;
            CHECKF(hits && strncmp(hits, want, strlen(want)) == 0, "top hit of %s should be %s: %s", q, t, r.body);
        }
        char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    free(tsv);
    reply_free(&r);
    free(fasta);
}

TEST(search_tsv_is_the_cli_tsv)
{
    char *fasta = read_file(query_fasta, NULL);
    if (!fasta)
        return;
    reply r = post_fasta(port, "/v1/search?format=tsv&k=4", fasta);
    char *want = expected_tsv(fasta, 4, -2.0f);
    CHECKF(r.status == 200, "status %d", r.status);
    char ct[128] = "";
    CHECK(find_header(r.head, "Content-Type", ct, sizeof ct) && strncmp(ct, "text/tab-separated-values", 25) == 0);
    CHECKF(strcmp(r.body, want) == 0, "got:\n%s\nwant:\n%s", r.body, want);
    CHECK(count_str(r.body, "\n") == 12);
    free(want);
    reply_free(&r);
    free(fasta);
}

TEST(search_finds_a_database_protein_first_with_score_1)
{
    /* The first target of the demo set, searched as a query: rank 1 is itself. */
    char path[1100];
    snprintf(path, sizeof path, "%s/demo/targets.fasta", getenv("PDR_DATA") ? getenv("PDR_DATA") : "data");
    pdr_fasta *fa = NULL;
    pdr_err err;
    pdr_seq s;
    CHECK(pdr_fasta_open(path, NULL, &fa, &err) == PDR_OK && pdr_fasta_read(fa, &s, &err) == PDR_OK);
    char *body = malloc(s.len + strlen(s.id) + 8);
    sprintf(body, ">%s\n%s\n", s.id, s.seq);
    char want[200];
    snprintf(want, sizeof want, "\"hits\":[{\"target\":\"%s\",\"score\":1.0000,", s.id);
    reply r = request(port, "POST", "/v1/search?k=1", "text/plain; charset=utf-8", body, strlen(body));
    CHECKF(r.status == 200 && strstr(r.body, want), "want %s: %s", want, r.body);
    reply_free(&r);
    free(body);
    pdr_fasta_close(fa);
}

TEST(search_json_body_with_k_and_min_score)
{
    reply r = post_json(port, "/v1/search",
                        "{\"fasta\": \">a first\\nMKVLAAGIVGLLLAQ\\n>b\\nACDEFGHIKLMNPQRSTVWY\", \"k\": 3, "
                        "\"min_score\": 0.15}");
    CHECKF(r.status == 200, "status %d: %s", r.status, r.body);
    CHECKF(strstr(r.body, "{\"query\":\"a\",\"length\":15,") && strstr(r.body, "{\"query\":\"b\",\"length\":20,"), "%s",
           r.body);
    CHECK(count_str(r.body, "\"rank\":") <= 6);
    for (const char *p = strstr(r.body, "\"score\":"); p; p = strstr(p + 1, "\"score\":"))
        CHECKF(atof(p + 8) >= 0.15 - 5e-5, "score below min_score: %s", p);
    reply_free(&r);
    /* min_score as a query parameter filters the same way. */
    reply all = post_fasta(port, "/v1/search?k=50", ">a\nMKVLAAGIVGLLLAQ\n");
    reply some = post_fasta(port, "/v1/search?k=50&min_score=0.2", ">a\nMKVLAAGIVGLLLAQ\n");
    CHECK(all.status == 200 && some.status == 200);
    CHECKF(count_str(some.body, "\"rank\":") < count_str(all.body, "\"rank\":"), "%s", some.body);
    reply_free(&all);
    reply_free(&some);
}

/* The E-values (4th TSV column) of a TSV reply, in order; returns how many (at most cap). */
static size_t tsv_evalues(const char *body, double *e, size_t cap)
{
    size_t n = 0;
    for (const char *line = body; line && *line && n < cap; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *f = line;
        for (int col = 0; col < 3 && f; col++)
            f = strchr(f, '\t'), f = f ? f + 1 : NULL;
        if (f)
            e[n++] = strtod(f, NULL);
    }
    return n;
}

TEST(search_evalue_keeps_the_hits_at_or_under_it)
{
    const char *q = ">a\nMKVLAAGIVGLLLAQWERTYPLKDE\n";
    reply all = post_fasta(port, "/v1/search?k=50&format=tsv", q);
    double e[64];
    size_t n = all.status == 200 ? tsv_evalues(all.body, e, 64) : 0;
    CHECKF(n == 50, "status %d, %zu hits", all.status, n);
    /* a threshold between two printed E-values (3 digits: real values are within 0.5% of them) */
    size_t keep = 0;
    for (size_t i = n / 4; i + 1 < n && !keep; i++)
        if (e[i] > 0 && e[i + 1] > e[i] * 1.05)
            keep = i + 1;
    CHECKF(keep > 0 && keep < n, "no gap between E-values to cut at (%zu hits)", n);
    if (keep > 0 && keep < n) {
        char target[200], body[300];
        double thr = sqrt(e[keep - 1] * e[keep]);
        snprintf(target, sizeof target, "/v1/search?k=50&format=tsv&evalue=%.6g", thr);
        reply some = post_fasta(port, target, q);
        double got[64];
        size_t m = some.status == 200 ? tsv_evalues(some.body, got, 64) : 0;
        CHECKF(m == keep, "%s: %zu hits, want %zu", target, m, keep);
        CHECKF(some.body && strncmp(some.body, all.body, strlen(some.body)) == 0, "not the first %zu hits", keep);
        /* the same from a JSON body */
        snprintf(body, sizeof body, "{\"fasta\": \">a\\nMKVLAAGIVGLLLAQWERTYPLKDE\", \"k\": 50, \"evalue\": %.6g}",
                 thr);
        reply js = post_json(port, "/v1/search?format=tsv", body);
        CHECKF(js.status == 200 && js.body && strcmp(js.body, some.body ? some.body : "") == 0, "JSON evalue: %d %s",
               js.status, js.body ? js.body : "");
        reply_free(&js);
        reply_free(&some);
    }
    reply_free(&all);
}

TEST(search_default_k_is_10)
{
    reply r = post_fasta(port, "/v1/search", ">x\nMKVLAAGIVGLLLAQWERTY\n");
    CHECK(r.status == 200 && count_str(r.body, "\"rank\":") == PDR_API_DEFAULT_K);
    reply_free(&r);
}

TEST(embed_returns_the_encoder_vectors)
{
    const char *fasta = ">e1 desc\nMKVLAAGIVGLLLAQ\n>e2\nACDEFGHIKLMNPQRSTVWYX\n";
    reply r = post_fasta(port, "/v1/embed", fasta);
    CHECKF(r.status == 200, "status %d: %s", r.status, r.body);
    char prefix[300]; /* the model and its version, so that vectors can be matched with their model */
    snprintf(prefix, sizeof prefix,
             "{\"model\":\"kmer3-hash-baseline\",\"model_version\":\"%s\",\"dim\":256,\"embeddings\":[{\"id\":\"e1\","
             "\"length\":15,",
             pdr_encoder_version(enc));
    CHECKF(strncmp(r.body, prefix, strlen(prefix)) == 0, "%s", r.body);
    pdr_encoder_ws *ws = NULL;
    pdr_err err;
    pdr_encoder_ws_create(enc, &ws, &err);
    const char *seqs[2] = {"MKVLAAGIVGLLLAQ", "ACDEFGHIKLMNPQRSTVWYX"};
    const char *at = r.body;
    float v[256];
    for (int i = 0; i < 2; i++) {
        pdr_encode(enc, ws, seqs[i], strlen(seqs[i]), v, &err);
        at = strstr(at, "\"vector\":[");
        CHECK(at != NULL);
        if (!at)
            break;
        at += 10;
        double max_diff = 0;
        int n = 0;
        for (char *end; n < 256; n++) {
            float x = strtof(at, &end); /* 9 digits: the float comes back exactly */
            if (end == at)
                break;
            max_diff = fmax(max_diff, fabs((double)x - (double)v[n]));
            at = end + 1;
        }
        CHECKF(n == 256, "record %d: %d numbers", i, n);
        CHECKF(max_diff == 0, "record %d: max difference %g from pdr_encode", i, max_diff);
    }
    pdr_encoder_ws_free(ws);
    reply_free(&r);
    /* JSON body too. */
    r = post_json(port, "/v1/embed", "{\"fasta\": \">j\\nMKV\"}");
    CHECKF(r.status == 200 && strstr(r.body, "{\"id\":\"j\",\"length\":3,"), "%s", r.body);
    reply_free(&r);
}

TEST(metrics_count_requests_queries_and_residues)
{
    double q0 = metric(port, "pdr_queries_total"), res0 = metric(port, "pdr_residues_embedded_total");
    double ok0 = metric(port, "pdr_http_requests_total{endpoint=\"search\",code=\"200\"}");
    double bad0 = metric(port, "pdr_http_requests_total{endpoint=\"search\",code=\"400\"}");
    reply r = post_fasta(port, "/v1/search", ">m1\nMKVLAAGIVG\n>m2\nACDEFGHIKLMNPQRSTVWY\n");
    reply_free(&r);
    r = post_fasta(port, "/v1/search", ">bad\nMK1\n");
    reply_free(&r);
    r = post_fasta(port, "/v1/embed", ">m3\nMKV\n");
    reply_free(&r);
    CHECKF(metric(port, "pdr_queries_total") == q0 + 2, "queries %g -> %g", q0, metric(port, "pdr_queries_total"));
    CHECKF(metric(port, "pdr_residues_embedded_total") == res0 + 33, "residues %g -> %g", res0,
           metric(port, "pdr_residues_embedded_total"));
    CHECK(metric_wait(port, "pdr_http_requests_total{endpoint=\"search\",code=\"200\"}", fmax(ok0, 0) + 1) ==
          fmax(ok0, 0) + 1);
    CHECK(metric_wait(port, "pdr_http_requests_total{endpoint=\"search\",code=\"400\"}", fmax(bad0, 0) + 1) ==
          fmax(bad0, 0) + 1);
    reply m = get(port, "/metrics");
    char ct[128] = "";
    CHECK(find_header(m.head, "Content-Type", ct, sizeof ct) && strncmp(ct, "text/plain; version=0.0.4", 25) == 0);
    CHECK(strstr(m.body, "# TYPE pdr_http_request_duration_seconds histogram\n") != NULL);
    CHECK(strstr(m.body, "pdr_http_request_duration_seconds_bucket{le=\"+Inf\"} ") != NULL);
    CHECK(strstr(m.body, "pdr_ready 1\n") && strstr(m.body, "pdr_database_proteins 1049\n"));
    /* The histogram's +Inf bucket equals its count. */
    const char *inf = strstr(m.body, "le=\"+Inf\"} "), *cnt = strstr(m.body, "_count ");
    CHECK(inf && cnt && atol(inf + 11) == atol(cnt + 7));
    reply_free(&m);
}

TEST(page_and_openapi_are_the_source_files)
{
    reply r = get(port, "/");
    char ct[128] = "";
    CHECKF(r.status == 200 && find_header(r.head, "Content-Type", ct, sizeof ct) && strncmp(ct, "text/html", 9) == 0,
           "status %d type %s", r.status, ct);
    char *page = read_file("service/page.html", NULL);
    CHECKF(page && strcmp(r.body, page) == 0, "GET / differs from service/page.html: rerun service/gen_assets.py");
    /* the API by relative URLs (the page also works under a proxy's path prefix), no other site */
    CHECK(strstr(r.body, "<textarea") && strstr(r.body, "fetch(\"v1/search") && strstr(r.body, "fetch(\"v1/info") &&
          !strstr(r.body, "fetch(\"/") && !strstr(r.body, "http://") && !strstr(r.body, "https://"));
    free(page);
    reply_free(&r);
    r = get(port, "/openapi.json");
    char *doc = read_file("service/openapi.json", NULL);
    CHECKF(doc && strcmp(r.body, doc) == 0, "GET /openapi.json differs from service/openapi.json: rerun gen_assets.py");
    const char *paths[] = {"\"/v1/search\"", "\"/v1/embed\"",     "\"/v1/health\"",    "\"/v1/info\"",
                           "\"/metrics\"",   "\"/openapi.json\"", "\"openapi\": \"3.0"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        CHECKF(strstr(r.body, paths[i]) != NULL, "openapi lacks %s", paths[i]);
    free(doc);
    reply_free(&r);
    /* HEAD: headers only. */
    r = request(port, "HEAD", "/", NULL, NULL, 0);
    CHECK(r.status == 200 && r.body_len == 0);
    reply_free(&r);
}

TEST(requests_are_logged_one_line_each)
{
    reply r = post_fasta(port, "/v1/search?k=2", ">l1\nMKVLAAGIVG\n>l2\nMKV\n>l3\nWWW\n");
    reply_free(&r);
    r = get(port, "/nowhere");
    reply_free(&r);
    /* The line is written once the reply is sent, which may be just after the client has it. */
    size_t n = 0;
    int found_search = 0, found_404 = 0;
    for (int attempt = 0; attempt < 100 && !(found_search && found_404); attempt++) {
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
        FILE *f = fopen(log_path, "r");
        char line[1024];
        for (n = 0; f && fgets(line, sizeof line, f); n++) {
            if (strstr(line, "127.0.0.1 POST /v1/search 200 ") && strstr(line, "ms queries=3\n"))
                found_search = 1;
            if (strstr(line, "GET /nowhere 404 ") && strstr(line, "ms queries=0\n"))
                found_404 = 1;
        }
        if (f)
            fclose(f);
    }
    CHECKF(found_search && found_404, "log lines missing (%zu lines in %s)", n, log_path);
}

static reply raw_request(int p, const char *bytes, int *ret_closed);

/* --log-forwarded-for: the log line adds what the proxy said in X-Forwarded-For (spaces dropped,
 * odd bytes escaped); without it (the shared server) nothing is added. */
TEST(log_forwarded_for_adds_the_proxy_header)
{
    char path[1200];
    snprintf(path, sizeof path, "%s.xff.log", dbdir);
    FILE *log = fopen(path, "w");
    pdr_api_limits l;
    pdr_api_limits_default(&l);
    pdr_api *a = NULL;
    pdr_err err;
    CHECK(log && pdr_api_create(&l, NULL, 1, &a, &err) == PDR_OK && pdr_api_set_ready(a, db, enc, &err) == PDR_OK);
    if (!log || !a) {
        if (log)
            fclose(log);
        pdr_api_free(a);
        return;
    }
    setvbuf(log, NULL, _IOLBF, 0);
    int closed = 0;
    pdr_http_opts o;
    pdr_http_opts_default(&o);
    o.port = 0;
    o.threads = 1;
    o.log = log;
    o.log_forwarded_for = 1;
    pdr_http *h = NULL;
    CHECK(pdr_http_start(a, &o, &h, &err) == PDR_OK);
    if (h) {
        int p = pdr_http_port(h);
        reply r = raw_request(p,
                              "GET /v1/health HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.1\r\n"
                              "Connection: close\r\n\r\n",
                              &closed);
        reply_free(&r);
        r = raw_request(
            p, "GET /v1/info HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: x\x1b[31m\r\nConnection: close\r\n\r\n",
            &closed);
        reply_free(&r);
        r = raw_request(p, "GET /openapi.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", &closed);
        reply_free(&r);
        CHECK(pdr_http_stop(h, 1000) == 0); /* every line is written */
    }
    fclose(log);
    FILE *f = fopen(path, "r");
    char line[1024];
    int plain = 0, escaped = 0, without = 0;
    while (f && fgets(line, sizeof line, f)) {
        plain += strstr(line, "GET /v1/health 200 ") && strstr(line, " for=203.0.113.7,10.0.0.1\n");
        escaped += strstr(line, "GET /v1/info 200 ") && strstr(line, " for=x%1B[31m\n");
        without += strstr(line, "GET /openapi.json 200 ") && !strstr(line, "for=");
    }
    if (f)
        fclose(f);
    CHECKF(plain == 1 && escaped == 1 && without == 1, "log lines: %d %d %d (%s)", plain, escaped, without, path);
    /* the shared server runs without the option: its lines never say for= */
    reply r = raw_request(port,
                          "GET /v1/health HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 198.51.100.9\r\n"
                          "Connection: close\r\n\r\n",
                          &closed);
    reply_free(&r);
    int leaked = 0;
    for (int attempt = 0; attempt < 20; attempt++) {
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
        f = fopen(log_path, "r");
        while (f && fgets(line, sizeof line, f))
            leaked += strstr(line, "198.51.100.9") != NULL;
        if (f)
            fclose(f);
    }
    CHECK(leaked == 0);
    pdr_api_free(a);
    unlink(path);
}

/* ================================================================ client errors */

TEST(empty_and_record_less_bodies_are_400)
{
    reply r = request(port, "POST", "/v1/search", "text/x-fasta", "", 0);
    CHECK_ERROR(r, 400, "empty_body", "empty");
    reply_free(&r);
    r = request(port, "POST", "/v1/search", "text/x-fasta", NULL, 0);
    CHECK_ERROR(r, 400, "empty_body", NULL);
    reply_free(&r);
    r = post_fasta(port, "/v1/search", " \n\n\t\n");
    CHECK_ERROR(r, 400, "no_sequences", NULL);
    reply_free(&r);
    r = post_json(port, "/v1/search", "{\"fasta\": \"\"}");
    CHECK_ERROR(r, 400, "no_sequences", "\\\"fasta\\\"");
    reply_free(&r);
    r = post_json(port, "/v1/search", "{\"k\": 3}");
    CHECK_ERROR(r, 400, "missing_fasta", NULL);
    reply_free(&r);
    r = request(port, "POST", "/v1/embed", "text/x-fasta", "", 0);
    CHECK_ERROR(r, 400, "empty_body", NULL);
    reply_free(&r);
}

TEST(malformed_fasta_names_the_record)
{
    reply r = post_fasta(port, "/v1/search", ">ok1\nMKVLA\n>broken_7 desc\nMKV1LA\n");
    CHECK_ERROR(r, 400, "invalid_fasta", "record 2 (broken_7), line 4: invalid character '1'");
    reply_free(&r);
    r = post_fasta(port, "/v1/search", "MKVLAAGIVG\n");
    CHECK_ERROR(r, 400, "invalid_fasta", "record 1");
    reply_free(&r);
    r = post_fasta(port, "/v1/search", ">empty_one\n>ok\nMKV\n");
    CHECK_ERROR(r, 400, "invalid_fasta", "empty_one");
    reply_free(&r);
    r = post_json(port, "/v1/embed", "{\"fasta\": \">j1\\nMK*V\"}");
    CHECK_ERROR(r, 400, "invalid_fasta", "\\\"fasta\\\": record 1 (j1)");
    reply_free(&r);
    /* Binary junk with NUL bytes. */
    static const char junk[] = {'>', 'z', '\n', 'M', '\0', 'K', '\xff', '\n'};
    r = request(port, "POST", "/v1/search", "text/x-fasta", junk, sizeof junk);
    CHECK_ERROR(r, 400, "invalid_fasta", "record 1 (z)");
    reply_free(&r);
}

TEST(too_long_sequences_are_400_and_the_limit_itself_is_fine)
{
    char *seq = make_seq(PDR_API_MAX_LENGTH_DEFAULT + 1, 0);
    size_t n = strlen(seq) + 64;
    char *body = malloc(n);
    snprintf(body, n, ">short\nMKV\n>long_one\n%s\n", seq);
    reply r = post_fasta(port, "/v1/search", body);
    CHECK_ERROR(r, 400, "sequence_too_long", "record 2 (long_one)");
    CHECK(strstr(r.body, "10000") != NULL);
    reply_free(&r);
    snprintf(body, n, ">at_limit\n%.*s\n", PDR_API_MAX_LENGTH_DEFAULT, seq);
    r = post_fasta(port, "/v1/search?k=1", body);
    CHECKF(r.status == 200 && strstr(r.body, "\"length\":10000,"), "status %d", r.status);
    reply_free(&r);
    free(body);
    free(seq);
}

TEST(too_many_queries_are_400_and_the_limit_itself_is_fine)
{
    pdr_buf b;
    pdr_buf_init(&b);
    for (int i = 1; i <= PDR_API_MAX_QUERIES_DEFAULT; i++)
        pdr_buf_printf(&b, ">q%d\nMKVLAAGIVG%c\n", i, "ACDEFGHIKL"[i % 10]);
    reply r = post_fasta(port, "/v1/search?k=1", b.data);
    CHECKF(r.status == 200 && count_str(r.body, "{\"query\":") == 100, "status %d", r.status);
    reply_free(&r);
    pdr_buf_printf(&b, ">q101\nMKV\n");
    r = post_fasta(port, "/v1/search?k=1", b.data);
    CHECK_ERROR(r, 400, "too_many_queries", "record 101 (q101)");
    reply_free(&r);
    pdr_buf_free(&b);
}

static reply raw_request(int p, const char *bytes, int *ret_closed);

TEST(too_large_bodies_are_413)
{
    size_t n = PDR_API_MAX_BODY_BYTES_DEFAULT + 1;
    char *body = malloc(n);
    memset(body, 'A', n);
    body[0] = '>';
    body[1] = 'x';
    body[2] = '\n';
    /* As curl sends large bodies: Expect: 100-continue, refused before the body is sent. */
    conn c;
    reply r;
    CHECK(conn_open(&c, port) == 0);
    conn_request(&c, "POST", "/v1/search", "Content-Type: text/x-fasta\r\n", body, n, 1, &r);
    CHECK_ERROR(r, 413, "body_too_large", "1048576");
    reply_free(&r);
    conn_close(&c);
    /* Without Expect: the whole body is sent at once; the reply still comes. */
    r = request(port, "POST", "/v1/search", "text/x-fasta", body, n);
    CHECK_ERROR(r, 413, "body_too_large", NULL);
    reply_free(&r);
    /* Without Expect, a body far larger than the socket buffers (python's http.client and requests
     * send it so): it is read and discarded before the 413, which the client reads (it used to
     * get a reset: a broken pipe), and the connection stays open for the next request. */
    size_t big = 4 * PDR_API_MAX_BODY_BYTES_DEFAULT;
    char *bigbody = malloc(big);
    memset(bigbody, 'A', big);
    memcpy(bigbody, ">x\n", 3);
    CHECK(conn_open(&c, port) == 0);
    conn_request(&c, "POST", "/v1/search", "Content-Type: text/x-fasta\r\n", bigbody, big, 0, &r);
    CHECK_ERROR(r, 413, "body_too_large", "1048576");
    reply_free(&r);
    conn_request(&c, "GET", "/v1/health", NULL, NULL, 0, 0, &r);
    CHECKF(r.status == 200, "the next request on the connection: status %d", r.status);
    reply_free(&r);
    conn_close(&c);
    free(bigbody);
    /* A declared length past 16 x --max-body is refused at once (before its body is sent), and the
     * connection closed. */
    int closed = 0;
    r = raw_request(port,
                    "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/x-fasta\r\n"
                    "Content-Length: 16777217\r\n\r\n",
                    &closed);
    CHECK_ERROR(r, 413, "body_too_large", NULL);
    CHECK(closed);
    reply_free(&r);
    /* Chunked, no Content-Length: refused when the body grows past the limit. */
    CHECK(conn_open(&c, port) == 0);
    const char *head = "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/x-fasta\r\n"
                       "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    send_all(&c, head, strlen(head));
    char chunk_head[32];
    for (size_t off = 0; off < n; off += 65536) {
        size_t len = n - off < 65536 ? n - off : 65536;
        snprintf(chunk_head, sizeof chunk_head, "%zx\r\n", len);
        send_all(&c, chunk_head, strlen(chunk_head));
        send_all(&c, body + off, len);
        send_all(&c, "\r\n", 2);
    }
    send_all(&c, "0\r\n\r\n", 5);
    memset(&r, 0, sizeof r);
    conn_read_reply(&c, 0, 0, &r);
    if (!r.body)
        r.body = calloc(1, 1);
    CHECK_ERROR(r, 413, "body_too_large", NULL);
    reply_free(&r);
    conn_close(&c);
    /* A body exactly at the limit is read (and judged on its content). */
    r = request(port, "POST", "/v1/search", "text/x-fasta", body, n - 1);
    CHECK_ERROR(r, 400, "sequence_too_long", NULL);
    reply_free(&r);
    free(body);
}

TEST(bad_query_parameters_are_400)
{
    static const struct {
        const char *target, *code;
    } cases[] = {
        {"/v1/search?k=0", "bad_k"},
        {"/v1/search?k=abc", "bad_k"},
        {"/v1/search?k=1001", "bad_k"},
        {"/v1/search?k=-1", "bad_k"},
        {"/v1/search?k", "bad_k"},
        {"/v1/search?k=99999999999", "bad_k"},
        {"/v1/search?k=2.5", "bad_k"},
        {"/v1/search?k=%2B5", "bad_k"}, /* "+5": no sign, as JSON */
        {"/v1/search?k=0x10", "bad_k"},
        {"/v1/search?k=inf", "bad_k"},
        {"/v1/search?k=%205", "bad_k"},
        {"/v1/search?k=1e4", "bad_k"}, /* over --max-k */
        {"/v1/search?min_score=2", "bad_min_score"},
        {"/v1/search?min_score=nan", "bad_min_score"},
        {"/v1/search?min_score=0x0.1p0", "bad_min_score"}, /* decimal only, as JSON */
        {"/v1/search?min_score=%201", "bad_min_score"},
        {"/v1/search?evalue=0", "bad_evalue"},
        {"/v1/search?evalue=-1", "bad_evalue"},
        {"/v1/search?evalue=abc", "bad_evalue"},
        {"/v1/search?evalue=inf", "bad_evalue"},
        {"/v1/search?evalue=nan", "bad_evalue"},
        {"/v1/search?evalue=1e400", "bad_evalue"},
        {"/v1/search?evalue=0x1p-3", "bad_evalue"},
        {"/v1/search?evalue", "bad_evalue"},
        {"/v1/search?evalue=1%000", "bad_evalue"},
        {"/v1/search?evalue=1&evalue=2", "duplicate_parameter"},
        {"/v1/embed?evalue=1", "unknown_parameter"},
        {"/v1/search?format=xml", "bad_format"},
        {"/v1/search?db=other", "unknown_parameter"},
        {"/v1/search?k=1&k=2", "duplicate_parameter"},
        {"/v1/search?expand=1", "bad_expand"},
        {"/v1/search?expand", "bad_expand"},
        {"/v1/search?expand=false&expand=false", "duplicate_parameter"},
        {"/v1/search?expand=true", "not_expanded"}, /* this database has no expansion */
        {"/v1/embed?k=3", "unknown_parameter"},
        {"/v1/embed?expand=false", "unknown_parameter"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reply r = post_fasta(port, cases[i].target, ">a\nMKV\n");
        CHECK_ERROR(r, 400, cases[i].code, NULL);
        reply_free(&r);
    }
    /* k in the query string takes what a JSON body takes: an integer value in any number form */
    const char *ks[] = {"/v1/search?k=1e1&format=tsv", "/v1/search?k=10.0&format=tsv", "/v1/search?k=10&format=tsv"};
    for (size_t i = 0; i < 3; i++) {
        reply rk = post_fasta(port, ks[i], ">a\nMKVLAAGIVGLLLAQWERTY\n");
        CHECKF(rk.status == 200 && rk.body && count_str(rk.body, "\n") == 10, "%s: status %d", ks[i], rk.status);
        reply_free(&rk);
    }
    /* A long bad value is shown cut at a character boundary: no U+FFFD for half a character. */
    reply ru = post_fasta(port, "/v1/search?k=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa%C3%A9", ">a\nMKV\n");
    CHECK_ERROR(ru, 400, "bad_k", "got 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'");
    CHECKF(ru.body && !strstr(ru.body, "\\ufffd"), "body: %s", ru.body ? ru.body : "(none)");
    reply_free(&ru);
    /* A value too small for a double is 0 in the query string, as in a JSON body. */
    reply r0 = post_fasta(port, "/v1/search?min_score=1e-400", ">a\nMKV\n");
    CHECKF(r0.status == 200, "min_score=1e-400: status %d", r0.status);
    reply_free(&r0);
    /* k given twice: in the query string and in the JSON body. */
    reply r = post_json(port, "/v1/search?k=3", "{\"fasta\": \">a\\nMKV\", \"k\": 4}");
    CHECK_ERROR(r, 400, "duplicate_parameter", "k given both");
    reply_free(&r);
    r = post_json(port, "/v1/search", "{\"fasta\": \">a\\nMKV\", \"k\": 1001}");
    CHECK_ERROR(r, 400, "bad_k", "1000");
    reply_free(&r);
    r = post_json(port, "/v1/search?evalue=1", "{\"fasta\": \">a\\nMKV\", \"evalue\": 1}");
    CHECK_ERROR(r, 400, "duplicate_parameter", "evalue given both");
    reply_free(&r);
    r = post_json(port, "/v1/embed", "{\"fasta\": \">a\\nMKV\", \"evalue\": 1}");
    CHECK_ERROR(r, 400, "unknown_field", "evalue");
    reply_free(&r);
    r = post_json(port, "/v1/search?expand=false", "{\"fasta\": \">a\\nMKV\", \"expand\": false}");
    CHECK_ERROR(r, 400, "duplicate_parameter", "expand given both");
    reply_free(&r);
    r = post_json(port, "/v1/search", "{\"fasta\": \">a\\nMKV\", \"expand\": true}");
    CHECK_ERROR(r, 400, "not_expanded", "makedb --expand");
    reply_free(&r);
    /* expand=false on a plain database is the plain search */
    r = post_fasta(port, "/v1/search?expand=false&k=2", ">a\nMKVLAAGIVGLLLAQ\n");
    reply plain = post_fasta(port, "/v1/search?k=2", ">a\nMKVLAAGIVGLLLAQ\n");
    CHECKF(r.status == 200 && plain.status == 200, "%d %d", r.status, plain.status);
    const char *rb = r.body ? strstr(r.body, "\"results\"") : NULL,
               *pb = plain.body ? strstr(plain.body, "\"results\"") : NULL;
    CHECK(rb && pb);
    if (rb && pb) {
        const char *re = strstr(rb, "\"took_ms\""), *pe = strstr(pb, "\"took_ms\"");
        CHECK(re && pe && re - rb == pe - pb && memcmp(rb, pb, (size_t)(re - rb)) == 0);
    }
    reply_free(&r);
    reply_free(&plain);
}

/* "?k=5%00junk" decodes to "5", NUL, "junk": read as a C string it would be k=5. Every such
 * value is refused with the parameter's own code, as any other bad value. */
TEST(query_values_with_an_encoded_nul_are_400)
{
    static const struct {
        const char *target, *code;
    } cases[] = {
        {"/v1/search?k=5%00junk", "bad_k"},
        {"/v1/search?k=1%00", "bad_k"},
        {"/v1/search?format=tsv%00x", "bad_format"},
        {"/v1/search?format=json%00", "bad_format"},
        {"/v1/search?min_score=0%00x", "bad_min_score"},
        {"/v1/search?expand=false%00", "bad_expand"},
        {"/v1/search?k%00x=5", "unknown_parameter"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reply r = post_fasta(port, cases[i].target, ">a\nMKV\n");
        CHECKF(r.status == 400, "%s: status %d: %s", cases[i].target, r.status, r.body);
        CHECK_ERROR(r, 400, cases[i].code, "NUL");
        reply_free(&r);
    }
    /* the same values without the NUL are fine */
    reply r = post_fasta(port, "/v1/search?k=5&format=tsv&min_score=0&expand=false", ">a\nMKVLAAGIVG\n");
    CHECKF(r.status == 200, "status %d: %s", r.status, r.body);
    reply_free(&r);
}

/* Send body as chunks of chunk bytes (Transfer-Encoding: chunked), then the last chunk. Returns
 * 0, or -1 when the server closed the connection while we sent. */
static int send_chunked(conn *c, const char *target, const char *body, size_t n, size_t chunk)
{
    char head[512];
    snprintf(head, sizeof head,
             "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/x-fasta\r\nTransfer-Encoding: chunked\r\n"
             "Connection: close\r\n\r\n",
             target);
    if (send_all(c, head, strlen(head)))
        return -1;
    char chunk_head[32];
    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        snprintf(chunk_head, sizeof chunk_head, "%zx\r\n", len);
        if (send_all(c, chunk_head, strlen(chunk_head)) || send_all(c, body + off, len) || send_all(c, "\r\n", 2))
            return -1;
    }
    return send_all(c, "0\r\n\r\n", 5);
}

/* A chunked body far past --max-body (5x here; the audit's curl upload of 6 MB) still gets the
 * JSON 413, not a dropped connection; an endless chunked upload is still cut off, by the request
 * deadline. */
TEST(chunked_bodies_far_past_the_limit_get_413)
{
    size_t n = 5 * PDR_API_MAX_BODY_BYTES_DEFAULT;
    char *body = malloc(n);
    memset(body, 'A', n);
    memcpy(body, ">big\n", 5);
    double bad0 = fmax(metric(port, "pdr_http_requests_total{endpoint=\"search\",code=\"413\"}"), 0);
    conn c;
    CHECK(conn_open(&c, port) == 0);
    int sent = send_chunked(&c, "/v1/search", body, n, 65536);
    reply r;
    memset(&r, 0, sizeof r);
    conn_read_reply(&c, 0, 0, &r);
    if (!r.body)
        r.body = calloc(1, 1);
    CHECKF(sent == 0, "the server closed the connection during a %zu-byte chunked upload", n);
    CHECK_ERROR(r, 413, "body_too_large", "1048576");
    reply_free(&r);
    conn_close(&c);
    CHECK(metric_wait(port, "pdr_http_requests_total{endpoint=\"search\",code=\"413\"}", bad0 + 1) == bad0 + 1);
    free(body);

    /* Endless: chunks as fast as the socket takes them, for up to 10 s; the deadline is 1 s. */
    pdr_api_limits l;
    pdr_api_limits_default(&l);
    l.max_body_bytes = 1000;
    pdr_api *a = NULL;
    pdr_err err;
    CHECK(pdr_api_create(&l, NULL, 1, &a, &err) == PDR_OK && pdr_api_set_ready(a, db, enc, &err) == PDR_OK);
    pdr_http_opts o;
    pdr_http_opts_default(&o);
    o.port = 0;
    o.request_timeout_s = 1;
    pdr_http *h = NULL;
    CHECK(pdr_http_start(a, &o, &h, &err) == PDR_OK);
    if (!h) {
        pdr_api_free(a);
        return;
    }
    int p = pdr_http_port(h);
    CHECK(conn_open(&c, p) == 0);
    const char *head = "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/x-fasta\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n";
    send_all(&c, head, strlen(head));
    static char chunk[8192 + 16];
    int len = snprintf(chunk, sizeof chunk, "%x\r\n", 8192);
    memset(chunk + len, 'A', 8192);
    memcpy(chunk + len + 8192, "\r\n", 2);
    double t0 = now_wall();
    int closed = 0;
    while (!closed && now_wall() - t0 < 10)
        closed = send_all(&c, chunk, (size_t)len + 8194) != 0;
    double waited = now_wall() - t0;
    CHECKF(closed && waited > 0.9 && waited < 5, "endless chunked upload: closed %d after %.2f s", closed, waited);
    conn_close(&c);
    CHECK(metric_wait(p, "pdr_http_requests_total{endpoint=\"search\",code=\"408\"}", 1) == 1);
    reply hr = get(p, "/v1/health");
    CHECK(hr.status == 200);
    reply_free(&hr);
    pdr_http_stop(h, 1000);
    pdr_api_free(a);
}

TEST(bad_json_bodies_are_400_with_their_code)
{
    static const struct {
        const char *body, *code, *msg_part;
    } cases[] = {
        {"{\"fasta\": \">a\\nMKV\", \"database\": \"x\"}", "unknown_field", "\\\"database\\\""},
        {"{\"fasta\": \">a\\nMKV\", \"k\": 0}", "bad_k", NULL},
        {"{\"fasta\": \">a\\nMKV\", \"k\": \"5\"}", "bad_k", NULL},
        {"{\"fasta\": \">a\\nMKV\", \"min_score\": -7}", "bad_min_score", NULL},
        {"{\"fasta\": [\">a\"]}", "bad_fasta", NULL},
        {"{\"fasta\": \">a\\nMKV\"", "invalid_json", "byte"},
        {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
         "]]]]]]]]]]]]]]]]]]]]]]]]]]",
         "json_too_deep", NULL},
        {"42", "not_an_object", NULL},
        /* huge numbers: never wrapped into a small valid k, never infinite */
        {"{\"fasta\": \">a\\nMKV\", \"k\": 18446744073709551621}", "bad_k", NULL},
        {"{\"fasta\": \">a\\nMKV\", \"k\": 1e999}", "bad_k", NULL},
        {"{\"fasta\": \">a\\nMKV\", \"k\": -99999999999999999999999}", "bad_k", NULL},
        {"{\"fasta\": \">a\\nMKV\", \"min_score\": 1e999}", "bad_min_score", NULL},
        {"{\"fasta\": \">a\\nMKV\", \"min_score\": -1e-99999}", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!cases[i].code) { /* valid: -1e-99999 is -0.0, a fine min_score */
            reply ok = post_json(port, "/v1/search", cases[i].body);
            CHECKF(ok.status == 200, "%s: %d %s", cases[i].body, ok.status, ok.body);
            reply_free(&ok);
            continue;
        }
        reply r = post_json(port, "/v1/search", cases[i].body);
        CHECK_ERROR(r, 400, cases[i].code, cases[i].msg_part);
        reply_free(&r);
    }
    reply r = post_json(port, "/v1/embed", "{\"fasta\": \">a\\nMKV\", \"k\": 3}");
    CHECK_ERROR(r, 400, "unknown_field", "/v1/embed");
    reply_free(&r);
    r = post_json(port, "/v1/embed", "{\"fasta\": \">a\\nMKV\", \"expand\": false}");
    CHECK_ERROR(r, 400, "unknown_field", "\\\"expand\\\" is not used");
    reply_free(&r);
}

TEST(unsupported_content_types_are_415)
{
    const char *types[] = {"application/x-www-form-urlencoded", "application/xml", "multipart/form-data; boundary=x"};
    for (size_t i = 0; i < 3; i++) {
        reply r = request(port, "POST", "/v1/search", types[i], ">a\nMKV\n", 7);
        CHECK_ERROR(r, 415, "unsupported_media_type", "text/x-fasta");
        reply_free(&r);
    }
    /* Media types are case-insensitive and parameters are ignored. */
    reply r =
        request(port, "POST", "/v1/search?k=1", "Application/JSON; charset=utf-8", "{\"fasta\":\">a\\nMKV\"}", 19);
    CHECKF(r.status == 200, "status %d: %s", r.status, r.body);
    reply_free(&r);
    /* No Content-Type at all: FASTA. */
    r = request(port, "POST", "/v1/search?k=1", NULL, ">a\nMKV\n", 7);
    CHECKF(r.status == 200, "status %d: %s", r.status, r.body);
    reply_free(&r);
}

TEST(wrong_methods_are_405_with_allow)
{
    static const struct {
        const char *method, *path, *allow;
    } cases[] = {
        {"GET", "/v1/search", "POST"}, {"PUT", "/v1/embed", "POST"},      {"POST", "/v1/health", "GET, HEAD"},
        {"DELETE", "/", "GET, HEAD"},  {"POST", "/metrics", "GET, HEAD"}, {"PATCH", "/openapi.json", "GET, HEAD"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reply r = request(port, cases[i].method, cases[i].path, NULL, NULL, 0);
        CHECK_ERROR(r, 405, "method_not_allowed", cases[i].path);
        char allow[64] = "";
        CHECKF(find_header(r.head, "Allow", allow, sizeof allow) && strcmp(allow, cases[i].allow) == 0,
               "%s %s: Allow '%s'", cases[i].method, cases[i].path, allow);
        reply_free(&r);
    }
}

TEST(unknown_paths_are_404)
{
    const char *paths[] = {"/v1/searc", "/v2/search", "/index.html", "/v1/search/", "/%2e%2e/etc/passwd"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        reply r = get(port, paths[i]);
        CHECK_ERROR(r, 404, "not_found", NULL);
        reply_free(&r);
    }
}

/* "%00" in the path would end it early for a C string: "/metrics%00x" was answered as /metrics
 * (past a proxy rule for exactly /metrics). */
TEST(paths_with_an_encoded_nul_are_404)
{
    const char *paths[] = {"/metrics%00x", "/v1/health%00", "/%00", "/v1/info%00.html"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        reply r = get(port, paths[i]);
        CHECK_ERROR(r, 404, "not_found", "encoded NUL");
        reply_free(&r);
    }
    reply r = get(port, "/v1/health"); /* the connection state does not leak into the next request */
    CHECKF(r.status == 200, "health after: %d", r.status);
    reply_free(&r);
}

/* ================================================================ the Host check (DNS rebinding) */

TEST(host_policy_allows_loopback_names_and_ip_literals)
{
    pdr_err err;
    pdr_host_policy *loop = NULL, *any = NULL, *open_iface = NULL, *listed = NULL, *bad = NULL;
    CHECK(pdr_host_policy_create("127.0.0.1", NULL, &loop, &err) == PDR_OK && pdr_host_policy_checks(loop));
    CHECK(pdr_host_policy_create("127.0.0.1", "*", &any, &err) == PDR_OK && !pdr_host_policy_checks(any));
    CHECK(pdr_host_policy_create("0.0.0.0", NULL, &open_iface, &err) == PDR_OK && !pdr_host_policy_checks(open_iface));
    CHECK(pdr_host_policy_create("0.0.0.0", "pdr.lab.example,.Example.ORG.", &listed, &err) == PDR_OK &&
          pdr_host_policy_checks(listed));
    const char *bad_lists[] = {"", "a,,b", "a b", "a/b", "a,", "\xc3\xa9", "."};
    for (size_t i = 0; i < sizeof bad_lists / sizeof bad_lists[0]; i++) {
        CHECKF(pdr_host_policy_create("::1", bad_lists[i], &bad, &err) == PDR_EINPUT && !bad &&
                   strstr(err.msg, "--allow-host"),
               "list '%s' accepted", bad_lists[i]);
        pdr_host_policy_free(bad);
        bad = NULL;
    }
    pdr_host_policy *ip6 = NULL, *named = NULL;
    CHECK(pdr_host_policy_create("::1", NULL, &ip6, &err) == PDR_OK && pdr_host_policy_checks(ip6));
    CHECK(pdr_host_policy_create("localhost", NULL, &named, &err) == PDR_OK && pdr_host_policy_checks(named));
    pdr_host_policy_free(ip6);
    pdr_host_policy_free(named);
    struct {
        const char *host;
        int loop, listed;
    } cases[] = {
        {NULL, 1, 1}, /* HTTP/1.0 without Host */
        {"localhost", 1, 1},
        {"LocalHost:8080", 1, 1},
        {"localhost.", 1, 1},
        {"127.0.0.1", 1, 1},
        {"127.0.0.1:8080", 1, 1},
        {"10.1.2.3:80", 1, 1}, /* an IP literal cannot be rebound */
        {"[::1]:8080", 1, 1},
        {"[::1]", 1, 1},
        {"[fe80::1]:1", 1, 1},
        {"evil.example", 0, 0},
        {"evil.example:8080", 0, 0},
        {"localhost.evil.example", 0, 0},
        {"pdr.lab.example", 0, 1},
        {"PDR.lab.example:443", 0, 1},
        {"example.org", 0, 1},
        {"a.b.example.org.", 0, 1},
        {"badexample.org", 0, 0}, /* a suffix, but not under the domain */
        {"", 0, 0},
        {":8080", 0, 0},
        {"localhost:", 0, 0},
        {"localhost:123456", 0, 0},
        {"localhost:80x", 0, 0},
        {"[::1", 0, 0},
        {"[not-v6]:80", 0, 0},
        {"::1", 0, 0}, /* unbracketed IPv6: malformed */
        {"local host", 0, 0},
        {"evil.example\r\nX: y", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *h = cases[i].host;
        CHECKF(pdr_host_allowed(loop, h) == cases[i].loop, "loopback policy, Host '%s'", h ? h : "(none)");
        CHECKF(pdr_host_allowed(listed, h) == cases[i].listed, "listed policy, Host '%s'", h ? h : "(none)");
        CHECKF(pdr_host_allowed(any, h) && pdr_host_allowed(open_iface, h), "unchecked policy, Host '%s'",
               h ? h : "(none)");
    }
    char longname[400];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK(!pdr_host_allowed(loop, longname));
    pdr_host_policy_free(loop);
    pdr_host_policy_free(any);
    pdr_host_policy_free(open_iface);
    pdr_host_policy_free(listed);
}

/* The test server listens on 127.0.0.1: a request naming another host (a page that rebound its
 * name to 127.0.0.1) gets a 403 when its headers are in, cheap endpoints included; the names a
 * local client uses are answered. A server started with --allow-host answers that name too. */
TEST(requests_naming_other_hosts_are_403)
{
    const char *refused[] = {"GET /v1/health HTTP/1.1\r\nHost: evil.example\r\n\r\n",
                             "GET / HTTP/1.1\r\nHost: evil.example:8080\r\n\r\n",
                             ("POST /v1/search HTTP/1.1\r\nHost: rebind.evil.example\r\nContent-Type: text/x-fasta\r\n"
                              "Content-Length: 12\r\n\r\n>q\nMKVLAAGG\n")};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        int closed = 0;
        reply r = raw_request(port, refused[i], &closed);
        CHECK_ERROR(r, 403, "host_not_allowed", "evil.example");
        CHECKF(r.body && strstr(r.body, "--allow-host"), "request %zu: %s", i, r.body ? r.body : "");
        reply_free(&r);
    }
    /* two Host headers, or none in HTTP/1.1: 400 (RFC 9112), whichever comes first */
    const char *bad_host[] = {"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n",
                              "GET /v1/health HTTP/1.1\r\nHost: evil.example\r\nHost: localhost\r\n\r\n",
                              "GET /v1/health HTTP/1.1\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad_host / sizeof bad_host[0]; i++) {
        int closed = 0;
        reply r = raw_request(port, bad_host[i], &closed);
        CHECK_ERROR(r, 400, "bad_host", "Host header");
        reply_free(&r);
    }
    /* a 403 is counted under its endpoint, as the other refusals are */
    double before = metric(port, "pdr_http_requests_total{endpoint=\"info\",code=\"403\"}");
    before = before < 0 ? 0 : before; /* -1: no such series yet */
    int closed403 = 0;
    reply r403 = raw_request(port, "GET /v1/info HTTP/1.1\r\nHost: evil.example\r\n\r\n", &closed403);
    CHECK(r403.status == 403);
    reply_free(&r403);
    CHECK(metric_wait(port, "pdr_http_requests_total{endpoint=\"info\",code=\"403\"}", before + 1) == before + 1);
    const char *answered[] = {"GET /v1/health HTTP/1.1\r\nHost: localhost:8080\r\n\r\n",
                              "GET /v1/health HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
                              "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "GET /v1/health HTTP/1.0\r\n\r\n"};
    for (size_t i = 0; i < sizeof answered / sizeof answered[0]; i++) {
        int closed = 0;
        reply r = raw_request(port, answered[i], &closed);
        CHECKF(r.status == 200, "request %zu: status %d", i, r.status);
        reply_free(&r);
    }
    /* --allow-host */
    pdr_api_limits l;
    pdr_api_limits_default(&l);
    pdr_api *a = NULL;
    pdr_err err;
    CHECK(pdr_api_create(&l, NULL, 1, &a, &err) == PDR_OK && pdr_api_set_ready(a, db, enc, &err) == PDR_OK);
    pdr_http_opts o;
    pdr_http_opts_default(&o);
    o.port = 0;
    o.allow_host = "pdr.lab.example";
    pdr_http *h = NULL;
    CHECK(a && pdr_http_start(a, &o, &h, &err) == PDR_OK);
    if (h) {
        int closed = 0;
        reply r =
            raw_request(pdr_http_port(h), "GET /v1/health HTTP/1.1\r\nHost: pdr.lab.example:8080\r\n\r\n", &closed);
        CHECKF(r.status == 200, "allowed name: status %d", r.status);
        reply_free(&r);
        r = raw_request(pdr_http_port(h), "GET /v1/health HTTP/1.1\r\nHost: evil.example\r\n\r\n", &closed);
        CHECKF(r.status == 403, "other name: status %d", r.status);
        reply_free(&r);
        pdr_http_stop(h, 1000);
    }
    o.allow_host = "bad name";
    h = NULL;
    CHECK(a && pdr_http_start(a, &o, &h, &err) == PDR_EINPUT && !h && strstr(err.msg, "'bad name'"));
    pdr_api_free(a);
}

/* Raw bytes on a fresh connection: the reply, then whether the server closed the connection. */
static reply raw_request(int p, const char *bytes, int *ret_closed)
{
    reply r;
    memset(&r, 0, sizeof r);
    conn c;
    *ret_closed = 0;
    if (conn_open(&c, p) != 0)
        return r;
    send_all(&c, bytes, strlen(bytes));
    conn_read_reply(&c, 0, 0, &r);
    struct pollfd pfd = {c.fd, POLLIN, 0};
    char buf[64];
    *ret_closed = poll(&pfd, 1, 2000) > 0 && recv(c.fd, buf, sizeof buf, 0) <= 0;
    conn_close(&c);
    return r;
}

/* Behind a proxy that reads the framing otherwise, a body could pass as a second request
 * (request smuggling): libmicrohttpd takes chunked over Content-Length, the first of two
 * Content-Lengths, and ignores "Content-Length :" or a folded header, so the "body" below, a
 * GET, was answered as a request of its own. Each is a 400 now, and the connection closes. */
TEST(ambiguous_framing_is_400_and_closes)
{
    const char *tail = "GET /v1/info HTTP/1.1\r\nHost: localhost\r\n\r\n";
    const char *heads[] = {
        "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: "
        "chunked\r\n\r\n0\r\n\r\n",
        "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 35\r\n\r\n",
        "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Length : 35\r\n\r\n",
        "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Length:\r\n 35\r\n\r\n",
        "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
        "chunked\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        char bytes[512];
        snprintf(bytes, sizeof bytes, "%s%s", heads[i], tail);
        int closed = 0;
        reply r = raw_request(port, bytes, &closed);
        CHECK_ERROR(r, 400, "bad_framing", "ambiguous request framing");
        CHECKF(closed, "case %zu: the connection stayed open (its rest could be read as a request)", i);
        reply_free(&r);
    }
    /* chunked alone, in any case, is fine */
    int closed = 0;
    reply r = raw_request(port,
                          "POST /v1/search?k=1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/x-fasta\r\n"
                          "Transfer-Encoding: CHUNKED\r\nConnection: close\r\n\r\n8\r\n>a\nMKVLA\r\n0\r\n\r\n",
                          &closed);
    CHECKF(r.status == 200, "chunked: %d %s", r.status, r.body ? r.body : "");
    reply_free(&r);
}

/* Method, path and other bytes of a request reach the log escaped: a CR, an ESC or spaces
 * could otherwise forge log lines or fields. */
TEST(log_lines_cannot_be_forged)
{
    int closed = 0;
    reply r = raw_request(port, "GET /x%20200%201.00ms%0d%0apdr HTTP/1.1\r\nHost: localhost\r\n\r\n", &closed);
    reply_free(&r);
    r = raw_request(port, "G\x1bT / HTTP/1.1\r\nHost: localhost\r\n\r\n", &closed);
    reply_free(&r);
    fflush(server_log);
    size_t len = 0;
    char *text = read_file(log_path, &len);
    CHECKF(text && strstr(text, " GET /x%20200%201.00ms%0D%0Apdr 404 "), "log: %s", text ? text : "(none)");
    CHECKF(text && strstr(text, " G%1BT / "), "log lacks the escaped method");
    CHECKF(text && !strchr(text, '\r') && !strchr(text, 0x1b), "raw CR or ESC in the log");
    free(text);
}

TEST(garbage_requests_do_not_hurt_the_server)
{
    const char *junk[] = {
        "NOT HTTP AT ALL\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "\x01\x02\x03\r\n\r\n",
        "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Length: -5\r\n\r\n",
        "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999999999999999\r\n\r\n"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        conn c;
        if (conn_open(&c, port))
            continue;
        send_all(&c, junk[i], strlen(junk[i]));
        reply r;
        memset(&r, 0, sizeof r);
        conn_read_reply(&c, 0, 0, &r); /* a 4xx from libmicrohttpd, or a closed connection */
        /* HTTP/9.9 gets libmicrohttpd's 505 (HTTP Version Not Supported), the standard answer. */
        CHECKF(r.io_error || (r.status >= 400 && r.status < 500) || (i == 1 && r.status == 505), "junk %zu: status %d",
               i, r.status);
        reply_free(&r);
        conn_close(&c);
    }
    /* A header far larger than the connection's memory: refused, server fine. */
    char *big = malloc(200000);
    memset(big, 'a', 199990);
    memcpy(big, "GET / HTTP/1.1\r\nX-Big: ", 23);
    memcpy(big + 199990, "\r\n\r\n", 5);
    reply r = {0};
    conn c;
    if (conn_open(&c, port) == 0) {
        send_all(&c, big, strlen(big));
        conn_read_reply(&c, 0, 0, &r);
        CHECKF(r.io_error || (r.status >= 400 && r.status < 500), "big header: status %d", r.status);
        reply_free(&r);
        conn_close(&c);
    }
    free(big);
    r = get(port, "/v1/health");
    CHECK(r.status == 200);
    reply_free(&r);
}

/* /metrics is the text exposition format: every sample line is `name{labels} value` of a family
 * declared by # HELP and # TYPE lines before it. Returns the number of problems (printed). */
static int prometheus_problems(const char *text)
{
    int problems = 0;
    char declared[64][96];
    size_t n_declared = 0;
    for (const char *line = text; *line;) {
        size_t len = strcspn(line, "\n");
        char l[512];
        snprintf(l, sizeof l, "%.*s", (int)(len < sizeof l ? len : sizeof l - 1), line);
        line += len + (line[len] == '\n');
        char name[96] = "", kind[32] = "";
        if (strncmp(l, "# HELP ", 7) == 0)
            continue;
        if (sscanf(l, "# TYPE %95s %31s", name, kind) == 2) {
            if (n_declared < 64)
                snprintf(declared[n_declared++], sizeof declared[0], "%s", name);
            if (strcmp(kind, "counter") && strcmp(kind, "gauge") && strcmp(kind, "histogram")) {
                fprintf(stderr, "metrics: bad TYPE line '%s'\n", l);
                problems++;
            }
            continue;
        }
        size_t nl = strspn(l, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:0123456789");
        const char *rest = l + nl;
        if (*rest == '{') {
            const char *close = strchr(rest, '}');
            rest = close ? close + 1 : rest + strlen(rest);
        }
        char *end = NULL;
        int ok = nl > 0 && *rest == ' ' && (strtod(rest + 1, &end), end && end != rest + 1 && *end == '\0');
        int known = 0;
        for (size_t i = 0; i < n_declared && ok; i++) {
            size_t dl = strlen(declared[i]);
            known |= dl <= nl && strncmp(l, declared[i], dl) == 0 &&
                     (dl == nl || strncmp(l + dl, "_bucket", 7) == 0 || strncmp(l + dl, "_sum", 4) == 0 ||
                      strncmp(l + dl, "_count", 6) == 0);
        }
        if (!ok || !known) {
            fprintf(stderr, "metrics: bad sample line '%s' (%s)\n", l, ok ? "no TYPE before it" : "syntax");
            problems++;
        }
    }
    return problems;
}

/* Requests whose connection closes before the reply are logged as status 0 and counted in
 * pdr_http_requests_closed_total; replies libmicrohttpd makes itself (505, 431, 400 for a bad
 * Content-Length) never reach pdr, and show as connections without a request. */
TEST(closed_requests_and_libmicrohttpd_replies_are_counted)
{
    const char *closed_name = "pdr_http_requests_closed_total{endpoint=\"search\"}";
    const char *bare_name = "pdr_http_connections_without_request_total";
    double closed0 = fmax(metric(port, closed_name), 0), bare0 = metric(port, bare_name);
    double conns0 = metric(port, "pdr_http_connections_total");
    CHECKF(bare0 >= 0 && conns0 > 0, "connection metrics missing: %g %g", bare0, conns0);
    /* Headers and half a body, then the client goes away. */
    conn c;
    CHECK(conn_open(&c, port) == 0);
    const char *half = "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/x-fasta\r\n"
                       "Content-Length: 100\r\n\r\n>gone\nMKV";
    send_all(&c, half, strlen(half));
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    conn_close(&c);
    CHECKF(metric_wait(port, closed_name, closed0 + 1) == closed0 + 1, "closed %g, want %g", metric(port, closed_name),
           closed0 + 1);
    /* Three replies from libmicrohttpd itself. */
    const char *junk[] = {"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n",
                          "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1x\r\n\r\n", NULL};
    char *big = malloc(40000);
    memset(big, 'a', 40000);
    memcpy(big, "GET / HTTP/1.1\r\nX-Big: ", 23);
    memcpy(big + 40000 - 5, "\r\n\r\n", 5);
    junk[2] = big;
    int want_status[] = {505, 400, 431};
    for (size_t i = 0; i < 3; i++) {
        CHECK(conn_open(&c, port) == 0);
        send_all(&c, junk[i], strlen(junk[i]));
        reply r;
        memset(&r, 0, sizeof r);
        conn_read_reply(&c, 0, 0, &r);
        CHECKF(r.status == want_status[i], "junk %zu: status %d, want %d", i, r.status, want_status[i]);
        reply_free(&r);
        conn_close(&c);
    }
    free(big);
    CHECKF(metric_wait(port, bare_name, bare0 + 3) == bare0 + 3, "connections without a request %g, want %g",
           metric(port, bare_name), bare0 + 3);
    CHECK(metric(port, "pdr_http_connections_total") > conns0 + 4);
    /* The log says status 0 for the closed request. */
    int found = 0;
    for (int attempt = 0; attempt < 100 && !found; attempt++) {
        char *text = read_file(log_path, NULL);
        found = text && strstr(text, "POST /v1/search 0 ") && strstr(text, "(connection closed before the reply");
        free(text);
        if (!found)
            nanosleep(&pause, NULL);
    }
    CHECK(found);
    reply m = get(port, "/metrics");
    CHECK(m.status == 200 && prometheus_problems(m.body) == 0);
    CHECK(strstr(m.body, "# TYPE pdr_http_requests_closed_total counter\n") &&
          strstr(m.body, "# TYPE pdr_http_connections_without_request_total counter\n"));
    reply_free(&m);
}

/* The page and the API document say what the server does (the browser test drives the page). */
TEST(page_and_openapi_describe_the_server)
{
    /* page: an icon of its own (no /favicon.ico 404), fragments followed after load, non-JSON
     * replies and k handled, the score as README "Scores" defines it */
    const char *page_has[] = {
        "<link rel=\"icon\" href=\"data:,\">",         "\"hashchange\"",    "resp.statusText",
        "mean of the two proteins' background levels", "ranked by E-value", "setTimeout(loadInfo"};
    for (size_t i = 0; i < sizeof page_has / sizeof page_has[0]; i++)
        CHECKF(strstr(pdr_page_html, page_has[i]) != NULL, "page lacks %s", page_has[i]);
    CHECK(strstr(pdr_page_html, "less the two proteins' background levels") == NULL);
    reply r = get(port, "/");
    char csp[256] = "";
    CHECKF(find_header(r.head, "Content-Security-Policy", csp, sizeof csp) && strstr(csp, "img-src data:"),
           "CSP '%s' blocks the page's data: icon", csp);
    reply_free(&r);
    r = get(port, "/favicon.ico");
    CHECK(r.status == 404); /* not served: the page names its own icon */
    reply_free(&r);
    /* openapi: bearer applied (optional), every accepted FASTA type, 404 and 405 described */
    const char *doc_has[] = {"\"security\": [{}, {\"bearer\": []}]",
                             "--token-file",
                             "text/fasta",
                             "application/x-fasta",
                             "\"NotFound\"",
                             "\"MethodNotAllowed\"",
                             "\"$ref\": \"#/components/responses/MethodNotAllowed\"",
                             "%00",
                             "--cors-origin",
                             "\"options\": {",
                             "\"Preflight\"",
                             "origin_not_allowed",
                             "Access-Control-Expose-Headers: Retry-After, WWW-Authenticate, Allow"};
    for (size_t i = 0; i < sizeof doc_has / sizeof doc_has[0]; i++)
        CHECKF(strstr(pdr_openapi_json, doc_has[i]) != NULL, "openapi lacks %s", doc_has[i]);
    /* OpenAPI 3.0's schemas take exclusiveMinimum/exclusiveMaximum as booleans beside
     * minimum/maximum (draft 4); a number there (3.1's form) makes the whole document invalid */
    const char *bounds[] = {"\"exclusiveMinimum\":", "\"exclusiveMaximum\":"};
    for (size_t i = 0; i < 2; i++)
        for (const char *at = strstr(pdr_openapi_json, bounds[i]); at; at = strstr(at + 1, bounds[i])) {
            const char *v = at + strlen(bounds[i]);
            v += strspn(v, " ");
            CHECKF(strncmp(v, "true", 4) == 0 || strncmp(v, "false", 5) == 0, "openapi 3.0: %.40s", at);
        }
    /* the Error schema's list of codes names every code the server sends */
    static const char codes_key[] = "\"code\": {\"type\": \"string\", \"description\": \"";
    const char *codes = strstr(pdr_openapi_json, codes_key);
    const char *codes_end = codes ? strchr(codes + sizeof codes_key - 1, '"') : NULL;
    const char *sent[] = {"bad_evalue", "origin_not_allowed", "host_not_allowed", "unauthorized"};
    for (size_t i = 0; i < sizeof sent / sizeof sent[0]; i++) {
        const char *at = codes ? strstr(codes, sent[i]) : NULL;
        CHECKF(at && at < codes_end, "openapi's Error.code list lacks %s", sent[i]);
    }
}

/* ================================================================ connections and concurrency */

TEST(keep_alive_serves_several_requests_on_one_connection)
{
    conn c;
    CHECK(conn_open(&c, port) == 0);
    const char *body = ">ka\nMKVLAAGIVG\n";
    for (int i = 0; i < 3; i++) {
        reply r;
        conn_request(&c, "POST", "/v1/search?k=2", "Content-Type: text/x-fasta\r\n", body, strlen(body), 0, &r);
        CHECKF(r.status == 200 && count_str(r.body ? r.body : "", "\"rank\":") == 2, "request %d: status %d", i,
               r.status);
        reply_free(&r);
    }
    conn_close(&c);
}

typedef struct worker_arg {
    int n_ok;
    const char *want;
} worker_arg;

static void *search_worker(void *p)
{
    worker_arg *a = p;
    for (int i = 0; i < 8; i++) {
        reply r = post_fasta(port, "/v1/search?format=tsv&k=3", ">c\nMKVLAAGIVGLLLAQWERTYHHHH\n");
        if (r.status == 200 && strcmp(r.body, a->want) == 0)
            a->n_ok++;
        reply_free(&r);
    }
    return NULL;
}

TEST(concurrent_requests_all_get_the_same_right_answer)
{
    char *want = expected_tsv(">c\nMKVLAAGIVGLLLAQWERTYHHHH\n", 3, -2.0f);
    enum { N = 6 };
    pthread_t t[N];
    worker_arg a[N];
    for (int i = 0; i < N; i++) {
        a[i] = (worker_arg){0, want};
        pthread_create(&t[i], NULL, search_worker, &a[i]);
    }
    int ok = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ok += a[i].n_ok;
    }
    CHECKF(ok == N * 8, "%d of %d concurrent requests answered right", ok, N * 8);
    free(want);
}

/* ================================================================ other servers */

static pdr_http *start_server(pdr_api *a, unsigned max_connections, unsigned timeout_s)
{
    pdr_http_opts o;
    pdr_http_opts_default(&o);
    o.port = 0;
    o.threads = 1;
    o.max_connections = max_connections;
    o.timeout_s = timeout_s;
    pdr_http *h = NULL;
    pdr_err err;
    if (pdr_http_start(a, &o, &h, &err))
        fprintf(stderr, "start_server: %s\n", err.msg);
    return h;
}

TEST(loading_server_answers_503_until_ready)
{
    pdr_api_limits l;
    pdr_api_limits_default(&l);
    pdr_api *a = NULL;
    pdr_err err;
    CHECK(pdr_api_create(&l, NULL, 1, &a, &err) == PDR_OK);
    pdr_http *h = start_server(a, 16, 5);
    CHECK(h != NULL);
    if (!h) {
        pdr_api_free(a);
        return;
    }
    int p = pdr_http_port(h);
    reply r = get(p, "/v1/health");
    char retry[16] = "";
    CHECKF(r.status == 503 && strstr(r.body, "\"status\":\"loading\""), "status %d: %s", r.status, r.body);
    CHECK(find_header(r.head, "Retry-After", retry, sizeof retry) && strcmp(retry, "1") == 0);
    reply_free(&r);
    r = post_fasta(p, "/v1/search", ">a\nMKV\n");
    CHECK_ERROR(r, 503, "loading", NULL);
    reply_free(&r);
    r = get(p, "/v1/info");
    CHECK_ERROR(r, 503, "loading", NULL);
    reply_free(&r);
    r = get(p, "/");
    CHECK(r.status == 200);
    reply_free(&r);
    r = get(p, "/metrics");
    CHECK(r.status == 200 && strstr(r.body, "pdr_ready 0\n"));
    reply_free(&r);
    CHECK(pdr_api_set_ready(a, db, enc, &err) == PDR_OK);
    r = get(p, "/v1/health");
    CHECK(r.status == 200);
    reply_free(&r);
    r = post_fasta(p, "/v1/search?k=1", ">a\nMKV\n");
    CHECK(r.status == 200);
    reply_free(&r);
    CHECK(pdr_http_stop(h, 1000) == 0);
    pdr_api_free(a);
}

/* A ready api with a bearer token behind a one-worker server; *ret_a is freed by the caller, also
 * when NULL is returned. */
static pdr_http *start_token_server(pdr_api **ret_a, const char *token, unsigned timeout_s)
{
    pdr_api_limits l;
    pdr_api_limits_default(&l);
    pdr_err err;
    *ret_a = NULL;
    CHECK(pdr_api_create(&l, token, 1, ret_a, &err) == PDR_OK && pdr_api_set_ready(*ret_a, db, enc, &err) == PDR_OK);
    return *ret_a ? start_server(*ret_a, 16, timeout_s) : NULL;
}

TEST(token_protects_data_endpoints)
{
    pdr_api *a = NULL;
    pdr_http *h = start_token_server(&a, "s3cret-token", 5);
    if (!h) {
        pdr_api_free(a);
        return;
    }
    int p = pdr_http_port(h);
    reply r = post_fasta(p, "/v1/search", ">a\nMKV\n");
    CHECK_ERROR(r, 401, "unauthorized", "Bearer");
    char www[32] = "";
    CHECK(find_header(r.head, "WWW-Authenticate", www, sizeof www) && strcmp(www, "Bearer") == 0);
    reply_free(&r);
    const char *headers[] = {"Authorization: Bearer wrong\r\n", "Authorization: Bearer s3cret-toke\r\n",
                             "Authorization: Bearer s3cret-token2\r\n", "Authorization: Basic czNjcmV0LXRva2Vu\r\n"};
    for (size_t i = 0; i < 4; i++) {
        conn c;
        conn_open(&c, p);
        conn_request(&c, "GET", "/v1/info", headers[i], NULL, 0, 0, &r);
        CHECK_ERROR(r, 401, "unauthorized", NULL);
        reply_free(&r);
        conn_close(&c);
    }
    conn c;
    conn_open(&c, p);
    conn_request(&c, "POST", "/v1/search?k=1", "Authorization: Bearer s3cret-token\r\nContent-Type: text/x-fasta\r\n",
                 ">a\nMKV\n", 7, 0, &r);
    CHECKF(r.status == 200, "status %d: %s", r.status, r.body);
    reply_free(&r);
    conn_close(&c);
    r = get(p, "/metrics");
    CHECK(r.status == 401);
    reply_free(&r);
    const char *open_paths[] = {"/v1/health", "/", "/openapi.json"};
    for (size_t i = 0; i < 3; i++) {
        r = get(p, open_paths[i]);
        CHECKF(r.status == 200, "%s without a token: %d", open_paths[i], r.status);
        reply_free(&r);
    }
    CHECK(strstr(pdr_page_html, "token") != NULL); /* the page can send one */
    pdr_http_stop(h, 1000);
    pdr_api_free(a);
}

/* ================================================================ CORS (--cors-origin) */

TEST(cors_policy_parses_origins_and_refuses_malformed_ones)
{
    pdr_err err;
    pdr_cors_policy *p = NULL;
    CHECK(pdr_cors_policy_create(NULL, &p, &err) == PDR_OK && !p); /* off */
    CHECK(pdr_cors_allow_origin(NULL, "http://localhost:8888") == NULL);
    static const struct {
        const char *list, *why;
    } bad[] = {
        {"", "empty"},
        {"http://localhost:8888,,https://lab.example.org", "empty"},
        {"http://localhost:8888,", "empty"},
        {"http://localhost:8888/", "path"},
        {"https://lab.example.org/search", "path"},
        {"http://localhost:8888?x=1", "path"},
        {"localhost:8888", "http:// or https://"},
        {"ftp://lab.example.org", "http:// or https://"},
        {"null", "'null'"},
        {"http://", "no host"},
        {"http://:8888", "no host"},
        {"http://user@lab.example.org", "user name"},
        {"http://localhost:0", "port"},
        {"http://localhost:65536", "port"},
        {"http://localhost:", "port"},
        {"http://localhost:88a", "port"},
        {"http://lab example.org", "host"},
        {"http://l\xc3\xa4"
         "b.example.org",
         "xn--"},
        {"http://[::1", "IPv6"},
        {"http://[not-v6]:80", "IPv6"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = NULL;
        int rc = pdr_cors_policy_create(bad[i].list, &p, &err);
        CHECKF(rc == PDR_EINPUT && !p && strstr(err.msg, "--cors-origin") && strstr(err.msg, bad[i].why),
               "list '%s': rc %d: %s", bad[i].list, rc, rc ? err.msg : "accepted");
        pdr_cors_policy_free(p);
    }
    CHECK(pdr_cors_policy_create("http://localhost:8888/x", &p, &err) == PDR_EINPUT &&
          strstr(err.msg, "'http://localhost:8888/x'")); /* the entry is named */
    pdr_cors_policy *list = NULL, *any = NULL;
    CHECK(pdr_cors_policy_create("http://localhost:8888, HTTPS://Lab.Example.ORG:443,http://[0:0::1]:9000,"
                                 "http://10.0.0.7:80",
                                 &list, &err) == PDR_OK &&
          list && !pdr_cors_policy_any(list) && pdr_cors_policy_count(list) == 4);
    CHECK(pdr_cors_policy_create("*", &any, &err) == PDR_OK && pdr_cors_policy_any(any));
    static const struct {
        const char *origin;
        int allowed;
    } cases[] = {
        {"http://localhost:8888", 1},
        {"HTTP://LOCALHOST:8888", 1},
        {"https://lab.example.org", 1}, /* 443 is https's default: browsers leave it out */
        {"https://lab.example.org:443", 1},
        {"http://[::1]:9000", 1}, /* the same IPv6 address, however written */
        {"http://10.0.0.7", 1},
        {"http://localhost:8889", 0},  /* another port */
        {"https://localhost:8888", 0}, /* another scheme */
        {"http://localhost", 0},
        {"http://lab.example.org", 0},
        {"https://evil.lab.example.org", 0},
        {"https://lab.example.org.evil.example", 0},
        {"http://localhost:8888/", 0}, /* not what a browser sends */
        {"null", 0},
        {"", 0},
        {"http://localhost:8888\r\nX: y", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *o = cases[i].origin, *got = pdr_cors_allow_origin(list, o);
        /* an allowed origin is echoed as the browser sent it: it compares byte for byte */
        CHECKF(cases[i].allowed ? got == o : got == NULL, "listed policy, Origin '%s': %s", o, got ? got : "(none)");
        got = pdr_cors_allow_origin(any, o);
        CHECKF(got && strcmp(got, "*") == 0, "'*', Origin '%s'", o);
    }
    CHECK(pdr_cors_allow_origin(list, NULL) == NULL && pdr_cors_allow_origin(any, NULL) == NULL);
    char longorigin[400] = "http://";
    memset(longorigin + 7, 'a', sizeof longorigin - 8);
    longorigin[sizeof longorigin - 1] = '\0';
    CHECK(pdr_cors_allow_origin(list, longorigin) == NULL);
    CHECK(pdr_cors_policy_create(longorigin, &p, &err) == PDR_EINPUT && !p);
    pdr_cors_policy_free(list);
    pdr_cors_policy_free(any);
}

/* A server with CORS for origins (NULL: off) and optionally a token; ready unless !ready.
 * *ret_a is freed by the caller, also when NULL is returned. */
static pdr_http *start_cors_server(pdr_api **ret_a, const char *origins, const char *token, int ready)
{
    pdr_api_limits l;
    pdr_api_limits_default(&l);
    l.max_body_bytes = 4096;
    pdr_err err;
    *ret_a = NULL;
    if (pdr_api_create(&l, token, 1, ret_a, &err) || (ready && pdr_api_set_ready(*ret_a, db, enc, &err))) {
        fprintf(stderr, "start_cors_server: %s\n", err.msg);
        return NULL;
    }
    pdr_http_opts o;
    pdr_http_opts_default(&o);
    o.port = 0;
    o.threads = 1;
    o.cors_origin = origins;
    pdr_http *h = NULL;
    if (pdr_http_start(*ret_a, &o, &h, &err))
        fprintf(stderr, "start_cors_server: %s\n", err.msg);
    return h;
}

/* One request with an Origin header (NULL: none) and more header lines (each ending in \r\n). */
static reply origin_request(int p, const char *method, const char *target, const char *origin, const char *extra,
                            const char *body)
{
    reply r;
    memset(&r, 0, sizeof r);
    conn c;
    if (conn_open(&c, p)) {
        r.io_error = 1;
        r.body = calloc(1, 1);
        return r;
    }
    char head[1024];
    snprintf(head, sizeof head, "Connection: close\r\n%s%s%s%s", origin ? "Origin: " : "", origin ? origin : "",
             origin ? "\r\n" : "", extra ? extra : "");
    conn_request(&c, method, target, head, body, body ? strlen(body) : 0, 0, &r);
    if (!r.body)
        r.body = calloc(1, 1);
    conn_close(&c);
    return r;
}

static reply preflight(int p, const char *target, const char *origin, const char *want_method)
{
    char extra[256];
    snprintf(extra, sizeof extra, "Access-Control-Request-Method: %s\r\nAccess-Control-Request-Headers: %s\r\n",
             want_method, strcmp(want_method, "POST") == 0 ? "authorization,content-type" : "authorization");
    return origin_request(p, "OPTIONS", target, origin, extra, NULL);
}

/* The CORS headers of a reply to an allowed origin: allow (the Access-Control-Allow-Origin
 * wanted), Vary: Origin, and the headers a page may read. */
static void check_cors_allowed(const reply *r, const char *allow, int line)
{
    char v[256] = "";
    CHECKF(find_header(r->head, "Access-Control-Allow-Origin", v, sizeof v) && strcmp(v, allow) == 0,
           "line %d: status %d: Access-Control-Allow-Origin '%s', want '%s'", line, r->status, v, allow);
    CHECKF(find_header(r->head, "Vary", v, sizeof v) && strcmp(v, "Origin") == 0, "line %d: Vary '%s'", line, v);
    CHECKF(find_header(r->head, "Access-Control-Expose-Headers", v, sizeof v) && strstr(v, "Retry-After") &&
               strstr(v, "WWW-Authenticate"),
           "line %d: Access-Control-Expose-Headers '%s'", line, v);
    CHECKF(!find_header(r->head, "Access-Control-Allow-Credentials", v, sizeof v), "line %d: credentials", line);
}
#define CHECK_CORS_ALLOWED(r, allow) check_cors_allowed(&(r), (allow), __LINE__)

/* No Access-Control-* header at all. */
static void check_no_cors(const reply *r, int line)
{
    CHECKF(r->status > 0 && !strcasestr(r->head, "\r\nAccess-Control-"), "line %d: status %d: %s", line, r->status,
           r->head);
}
#define CHECK_NO_CORS(r) check_no_cors(&(r), __LINE__)

/* Without --cors-origin nothing changes: no CORS headers on any reply, and a preflight is a 405
 * as any method a path does not take (browsers then refuse the cross-origin call). */
TEST(cors_is_off_by_default)
{
    reply r = origin_request(port, "GET", "/v1/health", "http://localhost:8888", NULL, NULL);
    CHECKF(r.status == 200, "health: %d", r.status);
    CHECK_NO_CORS(r);
    char v[64];
    CHECK(!find_header(r.head, "Vary", v, sizeof v));
    reply_free(&r);
    r = origin_request(port, "POST", "/v1/search?k=1", "http://localhost:8888", "Content-Type: text/x-fasta\r\n",
                       ">a\nMKV\n");
    CHECKF(r.status == 200, "search: %d", r.status);
    CHECK_NO_CORS(r);
    reply_free(&r);
    r = preflight(port, "/v1/search", "http://localhost:8888", "POST");
    CHECK_ERROR(r, 405, "method_not_allowed", "OPTIONS");
    CHECKF(find_header(r.head, "Allow", v, sizeof v) && strcmp(v, "POST") == 0, "Allow '%s'", v);
    CHECK_NO_CORS(r);
    reply_free(&r);
}

/* A page from an allowed origin reads every reply, the error JSON too, and the headers it needs
 * (Retry-After of a 503, WWW-Authenticate of a 401): Access-Control-Allow-Origin echoes its
 * origin on successes and on every refusal, whichever layer made it. */
TEST(cors_allowed_origin_is_echoed_on_success_and_errors)
{
    const char *origin = "http://localhost:8888";
    pdr_api *a = NULL;
    pdr_http *h = start_cors_server(&a, "https://lab.example.org,http://localhost:8888", NULL, 1);
    CHECK(h != NULL);
    if (!h) {
        pdr_api_free(a);
        return;
    }
    int p = pdr_http_port(h);
    reply r = origin_request(p, "GET", "/v1/health", origin, NULL, NULL);
    CHECKF(r.status == 200, "health: %d", r.status);
    CHECK_CORS_ALLOWED(r, origin);
    reply_free(&r);
    r = origin_request(p, "POST", "/v1/search?k=2", origin, "Content-Type: text/x-fasta\r\n", ">a\nMKVLAAGIVG\n");
    CHECKF(r.status == 200 && count_str(r.body, "\"rank\":") == 2, "search: %d: %s", r.status, r.body);
    CHECK_CORS_ALLOWED(r, origin);
    reply_free(&r);
    r = origin_request(p, "POST", "/v1/embed", "https://lab.example.org", "Content-Type: application/json\r\n",
                       "{\"fasta\": \">a\\nMKV\"}");
    CHECKF(r.status == 200, "embed: %d: %s", r.status, r.body);
    CHECK_CORS_ALLOWED(r, "https://lab.example.org");
    reply_free(&r);
    /* errors: from pdr_api's handlers, its precheck, and pdr_http itself */
    static const struct {
        const char *method, *target, *extra, *body;
        int status;
        const char *code;
    } errors[] = {
        {"POST", "/v1/search", "Content-Type: text/x-fasta\r\n", ">a\nMK9V\n", 400, "invalid_fasta"},
        {"POST", "/v1/search?k=0", "Content-Type: text/x-fasta\r\n", ">a\nMKV\n", 400, "bad_k"},
        {"GET", "/v1/nothing", NULL, NULL, 404, "not_found"},
        {"DELETE", "/v1/search", NULL, NULL, 405, "method_not_allowed"},
        {"POST", "/v1/search", "Content-Type: application/x-www-form-urlencoded\r\n", "a=b", 415,
         "unsupported_media_type"},
        {"POST", "/v1/search", "Content-Type: text/x-fasta\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n", NULL,
         413, "body_too_large"},
        {"POST", "/v1/search", "Content-Type: text/x-fasta\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n",
         NULL, 400, "bad_framing"},
        {"GET", "/metrics%00x", NULL, NULL, 404, "not_found"},
    };
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        r = origin_request(p, errors[i].method, errors[i].target, origin, errors[i].extra, errors[i].body);
        CHECK_ERROR(r, errors[i].status, errors[i].code, NULL);
        CHECK_CORS_ALLOWED(r, origin);
        reply_free(&r);
    }
    /* a 413 declared past 16 x --max-body is answered at once, the connection closed */
    r = origin_request(p, "POST", "/v1/search", origin, "Content-Type: text/x-fasta\r\nContent-Length: 999999\r\n",
                       NULL);
    CHECK_ERROR(r, 413, "body_too_large", NULL);
    CHECK_CORS_ALLOWED(r, origin);
    reply_free(&r);
    /* a Host the server does not answer: 403, readable by the page that asked */
    char raw[256];
    snprintf(raw, sizeof raw, "GET /v1/health HTTP/1.1\r\nHost: evil.example\r\nOrigin: %s\r\n\r\n", origin);
    int closed = 0;
    r = raw_request(p, raw, &closed);
    CHECK_ERROR(r, 403, "host_not_allowed", NULL);
    CHECK_CORS_ALLOWED(r, origin);
    reply_free(&r);
    pdr_http_stop(h, 1000);
    pdr_api_free(a);

    /* 503 while loading: the page can read its Retry-After */
    h = start_cors_server(&a, origin, NULL, 0);
    CHECK(h != NULL);
    if (h) {
        r = origin_request(pdr_http_port(h), "POST", "/v1/search", origin, "Content-Type: text/x-fasta\r\n",
                           ">a\nMKV\n");
        CHECK_ERROR(r, 503, "loading", NULL);
        CHECK_CORS_ALLOWED(r, origin);
        char v[16] = "";
        CHECK(find_header(r.head, "Retry-After", v, sizeof v) && strcmp(v, "1") == 0);
        reply_free(&r);
        pdr_http_stop(h, 1000);
    }
    pdr_api_free(a);
}

/* Other origins (another port, scheme or name; "null"; a malformed Origin) and requests without
 * Origin get the reply they always got, without Access-Control-Allow-Origin, so the browser
 * hides it from the page; Vary: Origin still tells caches that the reply depends on Origin. */
TEST(cors_other_origins_get_no_cors_headers)
{
    pdr_api *a = NULL;
    pdr_http *h = start_cors_server(&a, "http://localhost:8888", NULL, 1);
    CHECK(h != NULL);
    if (!h) {
        pdr_api_free(a);
        return;
    }
    int p = pdr_http_port(h);
    const char *others[] = {"http://localhost:8889",  "https://localhost:8888",
                            "http://evil.example",    "null",
                            "http://localhost:8888/", NULL};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        reply r = origin_request(p, "POST", "/v1/search?k=1", others[i], "Content-Type: text/x-fasta\r\n", ">a\nMKV\n");
        char v[256] = "";
        CHECKF(r.status == 200, "Origin '%s': %d", others[i] ? others[i] : "(none)", r.status);
        CHECKF(!find_header(r.head, "Access-Control-Allow-Origin", v, sizeof v) &&
                   !find_header(r.head, "Access-Control-Expose-Headers", v, sizeof v),
               "Origin '%s' got CORS headers: %s", others[i] ? others[i] : "(none)", r.head);
        CHECK(find_header(r.head, "Vary", v, sizeof v) && strcmp(v, "Origin") == 0);
        reply_free(&r);
        r = origin_request(p, "GET", "/v1/nothing", others[i], NULL, NULL); /* errors too */
        CHECK_ERROR(r, 404, "not_found", NULL);
        CHECK(!find_header(r.head, "Access-Control-Allow-Origin", v, sizeof v));
        reply_free(&r);
    }
    pdr_http_stop(h, 1000);
    pdr_api_free(a);
}

/* A preflight (OPTIONS with Origin and Access-Control-Request-Method) from an allowed origin:
 * 204 with the methods its path takes, the request headers a page may send (Content-Type for
 * JSON, Authorization for the token) and a cache time. From another origin: 403
 * origin_not_allowed and no CORS headers. OPTIONS that is not a preflight stays a 405. */
TEST(cors_preflight_is_204_with_the_path_methods)
{
    const char *origin = "http://localhost:8888";
    pdr_api *a = NULL;
    pdr_http *h = start_cors_server(&a, origin, NULL, 1);
    CHECK(h != NULL);
    if (!h) {
        pdr_api_free(a);
        return;
    }
    int p = pdr_http_port(h);
    static const struct {
        const char *path, *method, *methods;
    } paths[] = {
        {"/v1/search", "POST", "POST"},     {"/v1/embed", "POST", "POST"},    {"/v1/health", "GET", "GET, HEAD"},
        {"/v1/info", "GET", "GET, HEAD"},   {"/metrics", "GET", "GET, HEAD"}, {"/openapi.json", "GET", "GET, HEAD"},
        {"/v1/search?k=3", "POST", "POST"}, /* the query string is not part of the path */
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        reply r = preflight(p, paths[i].path, origin, paths[i].method);
        char v[256] = "";
        CHECKF(r.status == 204 && r.body_len == 0, "%s: status %d: %s", paths[i].path, r.status, r.body);
        CHECKF(find_header(r.head, "Access-Control-Allow-Origin", v, sizeof v) && strcmp(v, origin) == 0,
               "%s: Access-Control-Allow-Origin '%s'", paths[i].path, v);
        CHECKF(find_header(r.head, "Access-Control-Allow-Methods", v, sizeof v) && strcmp(v, paths[i].methods) == 0,
               "%s: Access-Control-Allow-Methods '%s'", paths[i].path, v);
        CHECKF(find_header(r.head, "Access-Control-Allow-Headers", v, sizeof v) && strcasestr(v, "Content-Type") &&
                   strcasestr(v, "Authorization"),
               "%s: Access-Control-Allow-Headers '%s'", paths[i].path, v);
        CHECKF(find_header(r.head, "Access-Control-Max-Age", v, sizeof v) && atoi(v) == PDR_CORS_MAX_AGE_S,
               "%s: Access-Control-Max-Age '%s'", paths[i].path, v);
        CHECK(find_header(r.head, "Vary", v, sizeof v) && strcmp(v, "Origin") == 0);
        CHECK(!find_header(r.head, "Access-Control-Allow-Private-Network", v, sizeof v));
        reply_free(&r);
    }
    /* Chrome's Private Network Access asks before a public page calls a local server */
    reply r =
        origin_request(p, "OPTIONS", "/v1/search", origin,
                       "Access-Control-Request-Method: POST\r\nAccess-Control-Request-Private-Network: true\r\n", NULL);
    char v[256] = "";
    CHECKF(r.status == 204 && find_header(r.head, "Access-Control-Allow-Private-Network", v, sizeof v) &&
               strcmp(v, "true") == 0,
           "private network preflight: %d, '%s'", r.status, v);
    reply_free(&r);
    /* the browser's sequence on one keep-alive connection: preflight, then the request */
    conn c;
    CHECK(conn_open(&c, p) == 0);
    char extra[256];
    snprintf(extra, sizeof extra, "Origin: %s\r\nAccess-Control-Request-Method: POST\r\n", origin);
    conn_request(&c, "OPTIONS", "/v1/search", extra, NULL, 0, 0, &r);
    CHECKF(r.status == 204, "keep-alive preflight: %d", r.status);
    reply_free(&r);
    snprintf(extra, sizeof extra, "Origin: %s\r\nContent-Type: application/json\r\n", origin);
    const char *json = "{\"fasta\": \">a\\nMKVLAAGIVG\", \"k\": 2}";
    conn_request(&c, "POST", "/v1/search", extra, json, strlen(json), 0, &r);
    CHECKF(r.status == 200 && count_str(r.body ? r.body : "", "\"rank\":") == 2, "search after preflight: %d",
           r.status);
    CHECK_CORS_ALLOWED(r, origin);
    reply_free(&r);
    conn_close(&c);
    /* another origin: 403, no CORS headers (the browser blocks the request) */
    r = preflight(p, "/v1/search", "http://evil.example", "POST");
    CHECK_ERROR(r, 403, "origin_not_allowed", "http://evil.example");
    CHECKF(strstr(r.body, "--cors-origin"), "%s", r.body);
    CHECK_NO_CORS(r);
    reply_free(&r);
    /* not preflights: an unknown path is a 404 (readable), OPTIONS without
     * Access-Control-Request-Method or without Origin a 405 with Allow */
    r = preflight(p, "/v1/nothing", origin, "POST");
    CHECK_ERROR(r, 404, "not_found", NULL);
    CHECK_CORS_ALLOWED(r, origin);
    reply_free(&r);
    r = origin_request(p, "OPTIONS", "/v1/search", origin, NULL, NULL);
    CHECK_ERROR(r, 405, "method_not_allowed", NULL);
    CHECK_CORS_ALLOWED(r, origin);
    reply_free(&r);
    r = origin_request(p, "OPTIONS", "/v1/search", NULL, "Access-Control-Request-Method: POST\r\n", NULL);
    CHECK_ERROR(r, 405, "method_not_allowed", NULL);
    reply_free(&r);
    /* logged and counted under their endpoint */
    CHECK(metric_wait(p, "pdr_http_requests_total{endpoint=\"search\",code=\"204\"}", 4) == 4);
    CHECK(metric_wait(p, "pdr_http_requests_total{endpoint=\"search\",code=\"403\"}", 1) == 1);
    pdr_http_stop(h, 1000);
    pdr_api_free(a);
}

/* Browsers never send the token with a preflight: with --token-file a preflight is still a 204
 * (a 401 would make the browser refuse the call before the token is ever sent), while the
 * request itself needs the token, and its 401 is readable by the page (which then asks for it). */
TEST(cors_preflight_is_not_401_with_a_token)
{
    const char *origin = "https://lab.example.org";
    pdr_api *a = NULL;
    pdr_http *h = start_cors_server(&a, origin, "s3cret-token", 1);
    CHECK(h != NULL);
    if (!h) {
        pdr_api_free(a);
        return;
    }
    int p = pdr_http_port(h);
    const char *paths[] = {"/v1/search", "/v1/embed", "/v1/info", "/metrics"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        reply r = preflight(p, paths[i], origin, i < 2 ? "POST" : "GET");
        char v[256] = "";
        CHECKF(r.status == 204 && find_header(r.head, "Access-Control-Allow-Origin", v, sizeof v) &&
                   strcmp(v, origin) == 0,
               "%s: status %d, Access-Control-Allow-Origin '%s': %s", paths[i], r.status, v, r.body);
        reply_free(&r);
    }
    reply r = origin_request(p, "POST", "/v1/search?k=1", origin, "Content-Type: text/x-fasta\r\n", ">a\nMKV\n");
    CHECK_ERROR(r, 401, "unauthorized", NULL);
    CHECK_CORS_ALLOWED(r, origin);
    char v[64] = "";
    CHECK(find_header(r.head, "WWW-Authenticate", v, sizeof v) && strcmp(v, "Bearer") == 0);
    reply_free(&r);
    r = origin_request(p, "POST", "/v1/search?k=1", origin,
                       "Content-Type: text/x-fasta\r\nAuthorization: Bearer s3cret-token\r\n", ">a\nMKV\n");
    CHECKF(r.status == 200, "with the token: %d: %s", r.status, r.body);
    CHECK_CORS_ALLOWED(r, origin);
    reply_free(&r);
    /* a preflight from another origin is refused for its origin, not for the token */
    r = preflight(p, "/v1/search", "http://evil.example", "POST");
    CHECK_ERROR(r, 403, "origin_not_allowed", NULL);
    reply_free(&r);
    pdr_http_stop(h, 1000);
    pdr_api_free(a);
}

/* '*': any origin may call; Access-Control-Allow-Origin is the literal '*' (never the echoed
 * origin, never with Access-Control-Allow-Credentials), also with a token, which browsers never
 * send on their own: a page must hold it to use it. */
TEST(cors_star_allows_any_origin)
{
    const char *tokens[] = {NULL, "s3cret-token"};
    for (size_t t = 0; t < 2; t++) {
        pdr_api *a = NULL;
        pdr_http *h = start_cors_server(&a, "*", tokens[t], 1);
        CHECK(h != NULL);
        if (!h) {
            pdr_api_free(a);
            continue;
        }
        int p = pdr_http_port(h);
        const char *origins[] = {"http://localhost:8888", "https://anything.example:1234", "null"};
        for (size_t i = 0; i < sizeof origins / sizeof origins[0]; i++) {
            reply r = origin_request(p, "GET", "/v1/health", origins[i], NULL, NULL);
            CHECKF(r.status == 200, "token %zu, Origin %s: %d", t, origins[i], r.status);
            CHECK_CORS_ALLOWED(r, "*");
            reply_free(&r);
            r = preflight(p, "/v1/search", origins[i], "POST");
            char v[64] = "";
            CHECKF(r.status == 204 && find_header(r.head, "Access-Control-Allow-Origin", v, sizeof v) &&
                       strcmp(v, "*") == 0,
                   "token %zu, preflight from %s: %d, '%s'", t, origins[i], r.status, v);
            CHECK(find_header(r.head, "Access-Control-Allow-Headers", v, sizeof v) && strstr(v, "Authorization"));
            reply_free(&r);
        }
        reply r = origin_request(p, "POST", "/v1/search?k=1", "http://x.example", "Content-Type: text/x-fasta\r\n",
                                 ">a\nMKV\n");
        CHECKF(r.status == (tokens[t] ? 401 : 200), "token %zu: search %d", t, r.status);
        CHECK_CORS_ALLOWED(r, "*");
        reply_free(&r);
        r = origin_request(p, "GET", "/v1/health", NULL, NULL, NULL); /* no Origin: not a CORS request */
        char v[64];
        CHECK(r.status == 200 && !find_header(r.head, "Access-Control-Allow-Origin", v, sizeof v));
        reply_free(&r);
        pdr_http_stop(h, 1000);
        pdr_api_free(a);
    }
    /* a malformed list is refused when the server starts */
    pdr_api_limits l;
    pdr_api_limits_default(&l);
    pdr_api *a = NULL;
    pdr_err err;
    CHECK(pdr_api_create(&l, NULL, 1, &a, &err) == PDR_OK);
    pdr_http_opts o;
    pdr_http_opts_default(&o);
    o.port = 0;
    o.cors_origin = "http://localhost:8888/";
    pdr_http *h = NULL;
    CHECK(a && pdr_http_start(a, &o, &h, &err) == PDR_EINPUT && !h && strstr(err.msg, "--cors-origin"));
    pdr_api_free(a);
}

TEST(custom_limits_connection_limit_and_idle_timeout)
{
    pdr_api_limits l = {.max_body_bytes = 200, .max_queries = 2, .max_length = 50, .max_k = 3};
    pdr_api *a = NULL;
    pdr_err err;
    CHECK(pdr_api_create(&l, NULL, 1, &a, &err) == PDR_OK && pdr_api_set_ready(a, db, enc, &err) == PDR_OK);
    pdr_http *h = start_server(a, 2, 1);
    if (!h) {
        pdr_api_free(a);
        return;
    }
    int p = pdr_http_port(h);
    reply r = post_fasta(p, "/v1/search?k=4", ">a\nMKV\n");
    CHECK_ERROR(r, 400, "bad_k", "[1, 3]");
    reply_free(&r);
    r = post_fasta(p, "/v1/search", ">a\nMKV\n>b\nMKV\n>c\nMKV\n");
    CHECK_ERROR(r, 400, "too_many_queries", "record 3 (c)");
    reply_free(&r);
    char *seq = make_seq(51, 3), body[128];
    snprintf(body, sizeof body, ">x\n%s\n", seq);
    r = post_fasta(p, "/v1/search", body);
    CHECK_ERROR(r, 400, "sequence_too_long", "record 1 (x)");
    reply_free(&r);
    free(seq);
    char big[300];
    memset(big, 'M', sizeof big);
    big[0] = '>';
    r = request(p, "POST", "/v1/search", "text/x-fasta", big, sizeof big);
    CHECK_ERROR(r, 413, "body_too_large", "200 bytes");
    reply_free(&r);
    r = get(p, "/v1/info");
    CHECK(strstr(r.body, "\"max_body_bytes\":200,\"max_queries\":2,\"max_length\":50,\"max_k\":3"));
    CHECK(strstr(r.body, "\"default_k\":3"));
    reply_free(&r);
    /* no k: the default 10 is capped at --max-k (it gave 10 hits, more than k may ask for) */
    r = post_fasta(p, "/v1/search?format=tsv", ">a\nMKVLAAGIVGLLLAQ\n");
    size_t lines = 0;
    for (const char *c = r.body; c && *c; c++)
        lines += *c == '\n';
    CHECKF(r.status == 200 && lines == 3, "no k under --max-k 3: status %d, %zu hits", r.status, lines);
    reply_free(&r);

    /* Two idle connections fill the server: a third waits in the kernel's backlog, unanswered,
     * until the idle timeout (1 s here) closes the first two; then it is served. */
    conn c1, c2, c3;
    CHECK(conn_open(&c1, p) == 0 && conn_open(&c2, p) == 0);
    struct timespec pause = {0, 200 * 1000 * 1000};
    nanosleep(&pause, NULL);
    double t0 = now_wall();
    if (conn_open(&c3, p) == 0) {
        send_all(&c3, "GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n", 44);
        struct pollfd pfd = {c3.fd, POLLIN, 0};
        CHECKF(poll(&pfd, 1, 400) == 0, "a connection over the limit was answered at once");
        memset(&r, 0, sizeof r);
        conn_read_reply(&c3, 0, 0, &r);
        double waited = now_wall() - t0;
        CHECKF(r.status == 200 && waited > 0.5 && waited < 6, "queued connection: status %d after %.2f s", r.status,
               waited);
        reply_free(&r);
        conn_close(&c3);
    }
    char byte;
    ssize_t got = recv(c1.fd, &byte, 1, 0);
    CHECKF(got == 0 && now_wall() - t0 < 6, "idle connection: recv %zd after %.1f s", got, now_wall() - t0);
    conn_close(&c1);
    conn_close(&c2);
    nanosleep(&pause, NULL);
    r = get(p, "/v1/health");
    CHECKF(r.status == 200, "after the idle connections closed: %d", r.status);
    reply_free(&r);
    pdr_http_stop(h, 1000);
    pdr_api_free(a);
}

typedef struct stop_arg {
    pdr_http *h;
    int left;
} stop_arg;

static void *stop_thread(void *p)
{
    stop_arg *s = p;
    s->left = pdr_http_stop(s->h, 10000);
    return NULL;
}

/* A stop whose grace period (200 ms) ends while a long job runs. */
static void *stop_thread_short(void *p)
{
    stop_arg *s = p;
    s->left = pdr_http_stop(s->h, 200);
    return NULL;
}

TEST(stop_lets_the_request_in_flight_finish)
{
    pdr_api_limits l;
    pdr_api_limits_default(&l);
    pdr_api *a = NULL;
    pdr_err err;
    CHECK(pdr_api_create(&l, NULL, 1, &a, &err) == PDR_OK && pdr_api_set_ready(a, db, enc, &err) == PDR_OK);
    pdr_http *h = start_server(a, 16, 10);
    if (!h) {
        pdr_api_free(a);
        return;
    }
    int p = pdr_http_port(h);
    /* A slow client: headers and half of the body, then the stop begins, then the rest. */
    conn c;
    CHECK(conn_open(&c, p) == 0);
    const char *body = ">inflight\nMKVLAAGIVGLLLAQ\n";
    char head[256];
    snprintf(
        head, sizeof head,
        "POST /v1/search?k=2 HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/x-fasta\r\nContent-Length: %zu\r\n\r\n",
        strlen(body));
    send_all(&c, head, strlen(head));
    send_all(&c, body, 10);
    /* and a client that has sent only a request's first line: closed by the stop */
    conn d;
    CHECK(conn_open(&d, p) == 0);
    send_all(&d, "POST /v1/search HTTP/1.1\r\n", 26);
    struct timespec pause = {0, 300 * 1000 * 1000}, tick = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 500 && pdr_http_in_flight(h) != 1; i++) /* until the server has the headers */
        nanosleep(&tick, NULL);
    CHECKF(pdr_http_in_flight(h) == 1, "in flight: %d", pdr_http_in_flight(h));
    stop_arg s = {h, -1};
    pthread_t t;
    pthread_create(&t, NULL, stop_thread, &s);
    nanosleep(&pause, NULL);
    struct pollfd pd = {d.fd, POLLIN, 0};
    char dbuf[64];
    CHECKF(poll(&pd, 1, 5000) > 0 && recv(d.fd, dbuf, sizeof dbuf, 0) <= 0,
           "a connection with only a first line stayed open through the stop");
    conn_close(&d);
    send_all(&c, body + 10, strlen(body) - 10);
    reply r;
    memset(&r, 0, sizeof r);
    conn_read_reply(&c, 0, 0, &r);
    CHECKF(r.status == 200 && r.body && strstr(r.body, "\"query\":\"inflight\""), "in-flight request: status %d",
           r.status);
    reply_free(&r);
    conn_close(&c);
    pthread_join(t, NULL);
    CHECKF(s.left == 0, "%d requests cut off", s.left);
    /* Stopped: nothing listens any more. */
    CHECK(conn_open(&c, p) != 0);
    pdr_api_free(a);
}

/* ================================================================ the job queue */

/* A CNN encoder whose jobs take a while (256-d, like the test database's kmer3 vectors, so the
 * api accepts the pair; only /v1/embed is used with it). */
static pdr_encoder *open_slow_encoder(void)
{
    const char *data = getenv("PDR_DATA") ? getenv("PDR_DATA") : "data";
    char path[1100];
    snprintf(path, sizeof path, "%s/test/cnn_bench.h5", data);
    pdr_encoder *e = NULL;
    pdr_err err;
    if (pdr_encoder_open(path, &e, &err))
        fprintf(stderr, "open_slow_encoder: %s\n", err.msg);
    return e;
}

/* Residues that keep the server's one worker busy for about a second: time one embedding of
 * 500 residues (after a warm-up) and scale, so that the job is long enough in a Release build
 * and not too long under the sanitizers. */
static size_t busy_residues(int p)
{
    char *seq = make_seq(500, 5), body[600];
    snprintf(body, sizeof body, ">probe\n%s\n", seq);
    free(seq);
    double t = 0;
    for (int i = 0; i < 2; i++) { /* the first one pays for first use (and valgrind's translation) */
        double t0 = now_wall();
        reply r = post_fasta(p, "/v1/embed", body);
        t = now_wall() - t0;
        reply_free(&r);
    }
    double want = 500.0 * 1.0 / (t > 1e-6 ? t : 1e-6);
    return want < 500 ? 500 : want > 300000 ? 300000 : (size_t)want;
}

/* Send POST /v1/embed of about `residues` residues (at least 8 sequences when there are 400
 * residues, each of at most 4,000) on c; the reply is left to read. Returns the number of
 * sequences sent, or 0 when sending failed. */
static size_t send_embed(conn *c, size_t residues)
{
    size_t len = residues / 8 < 50 ? 50 : residues / 8;
    len = len > residues ? residues : len > 4000 ? 4000 : len;
    size_t n = (residues + len - 1) / len;
    char *seq = make_seq(len, 5);
    size_t cap = n * (len + 32) + 1, used = 0;
    char *body = malloc(cap);
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(body + used, cap - used, ">job%zu\n%s\n", i, seq);
    char head[256];
    snprintf(head, sizeof head,
             "POST /v1/embed HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/x-fasta\r\nContent-Length: %zu\r\n\r\n",
             used);
    int rc = send_all(c, head, strlen(head)) || send_all(c, body, used);
    free(seq);
    free(body);
    return rc ? 0 : n;
}

static void wait_in_flight(const pdr_http *h, int want)
{
    struct timespec tick = {0, 5 * 1000 * 1000};
    for (int i = 0; i < 2000 && pdr_http_in_flight(h) < want; i++)
        nanosleep(&tick, NULL);
}

/* These two tests need threads that run at the same time. Valgrind runs one thread at a time
 * and lets a thread in a long computation keep its turn, so there the event loop waits for the
 * worker and the order they check is not the server's: they are skipped under valgrind (the
 * queue's code runs there in every search test). */
static int skip_under_valgrind(const char *test)
{
    if (!getenv("PDR_UNDER_VALGRIND"))
        return 0;
    printf("%s: skipped under valgrind (threads are serialized there)\n", test);
    return 1;
}

/* A server with one worker and the slow encoder (the shared test database), whose worker is
 * busy with a ~1 s embedding sent on ss->busy (ss->sent sequences; its reply is left to read).
 * The caller stops ss->h itself, then calls slow_server_free. -1: skipped or failed. */
typedef struct slow_server {
    pdr_encoder *enc;
    pdr_api *api;
    pdr_http *h;
    int port;
    conn busy;
    size_t sent;
} slow_server;

static int slow_server_start(slow_server *ss, const char *test)
{
    memset(ss, 0, sizeof *ss);
    ss->busy.fd = -1;
    if (skip_under_valgrind(test))
        return -1;
    pdr_api_limits l;
    pdr_api_limits_default(&l);
    pdr_err err;
    ss->enc = open_slow_encoder();
    CHECK(ss->enc && pdr_api_create(&l, NULL, 1, &ss->api, &err) == PDR_OK &&
          pdr_api_set_ready(ss->api, db, ss->enc, &err) == PDR_OK);
    if (ss->api)
        ss->h = start_server(ss->api, 16, 10);
    if (!ss->h) {
        pdr_api_free(ss->api);
        pdr_encoder_free(ss->enc);
        return -1;
    }
    ss->port = pdr_http_port(ss->h);
    size_t residues = busy_residues(ss->port);
    CHECK(conn_open(&ss->busy, ss->port) == 0 && (ss->sent = send_embed(&ss->busy, residues)) > 0);
    wait_in_flight(ss->h, 1);
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL); /* the body is read and the job handed to the worker */
    return 0;
}

static void slow_server_free(slow_server *ss)
{
    conn_close(&ss->busy);
    pdr_api_free(ss->api);
    pdr_encoder_free(ss->enc);
}

/* With one worker busy on a long embedding, a health check on another connection is answered
 * at once (it never queues behind searches), and the embedding's reply comes after it. */
TEST(health_is_answered_while_the_worker_is_busy)
{
    slow_server ss;
    if (slow_server_start(&ss, "health_is_answered_while_the_worker_is_busy"))
        return;
    conn *ca = &ss.busy;
    reply r = get(ss.port, "/v1/health");
    CHECKF(r.status == 200, "health while busy: %d", r.status);
    reply_free(&r);
    struct pollfd pfd = {ca->fd, POLLIN, 0};
    CHECKF(poll(&pfd, 1, 0) == 0, "the embedding was answered before the health check: the job is too short");
    memset(&r, 0, sizeof r);
    conn_read_reply(ca, 0, 0, &r);
    CHECKF(r.status == 200 && r.body && count_str(r.body, "\"id\":\"job") == ss.sent, "embedding: status %d", r.status);
    reply_free(&r);
    CHECK(pdr_http_stop(ss.h, 1000) == 0);
    slow_server_free(&ss);
}

/* Stop with no grace while one job runs and another waits: the running one finishes (200), the
 * waiting one is answered 503 shutting_down with Retry-After, and stop reports that one. */
TEST(stop_answers_queued_jobs_503)
{
    slow_server ss;
    if (slow_server_start(&ss, "stop_answers_queued_jobs_503"))
        return;
    conn *ca = &ss.busy, cb;
    CHECK(conn_open(&cb, ss.port) == 0 && send_embed(&cb, 50) > 0);
    wait_in_flight(ss.h, 2);
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
    int refused = pdr_http_stop(ss.h, 0);
    CHECKF(refused == 1, "stop reported %d queued requests answered 503, want 1", refused);
    reply r;
    memset(&r, 0, sizeof r);
    conn_read_reply(ca, 0, 0, &r);
    CHECKF(r.status == 200 && r.body && strstr(r.body, "\"embeddings\""), "running job: status %d", r.status);
    reply_free(&r);
    memset(&r, 0, sizeof r);
    conn_read_reply(&cb, 0, 0, &r);
    char retry[16] = "";
    CHECKF(r.status == 503 && r.body && strstr(r.body, "shutting_down") &&
               find_header(r.head, "Retry-After", retry, sizeof retry) && atoi(retry) >= 1,
           "queued job: status %d", r.status);
    reply_free(&r);
    conn_close(&cb);
    slow_server_free(&ss);
}

/* A client that hangs up while its job waits in the queue: the job is not computed (its answer
 * would go nowhere), and the request counts as closed before its reply. */
TEST(queued_jobs_of_clients_that_hung_up_are_not_computed)
{
    slow_server ss;
    if (slow_server_start(&ss, "queued_jobs_of_clients_that_hung_up_are_not_computed"))
        return;
    double before = metric(ss.port, "pdr_sequences_embedded_total");
    conn cb;
    CHECK(conn_open(&cb, ss.port) == 0 && send_embed(&cb, 5000) > 0); /* 8 sequences */
    wait_in_flight(ss.h, 2);
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
    conn_close(&cb);
    reply r;
    memset(&r, 0, sizeof r);
    conn_read_reply(&ss.busy, 0, 0, &r);
    CHECKF(r.status == 200, "running job: status %d", r.status);
    reply_free(&r);
    CHECK(metric_wait(ss.port, "pdr_http_requests_closed_total{endpoint=\"embed\"}", 1) == 1);
    double after = metric(ss.port, "pdr_sequences_embedded_total");
    CHECKF(after - before == (double)ss.sent, "embedded %.0f sequences, want the running job's %zu only",
           after - before, ss.sent);
    pdr_http_stop(ss.h, 1000);
    slow_server_free(&ss);
}

/* A client that hangs up while its job is computed: the embedding stops at the next sequence
 * (nothing is counted as embedded), the request counts as closed, and the worker is free for the
 * next request. */
TEST(running_jobs_of_clients_that_hung_up_are_stopped)
{
    slow_server ss;
    if (slow_server_start(&ss, "running_jobs_of_clients_that_hung_up_are_stopped"))
        return;
    CHECKF(ss.sent >= 3, "the busy job has %zu sequences: too few to stop in the middle", ss.sent);
    double before = metric(ss.port, "pdr_sequences_embedded_total");
    conn_close(&ss.busy); /* the job is running (slow_server_start waited for it) */
    CHECK(metric_wait(ss.port, "pdr_http_requests_closed_total{endpoint=\"embed\"}", 1) == 1);
    double after = metric(ss.port, "pdr_sequences_embedded_total");
    CHECKF(after == before, "embedded %.0f sequences after the client left, want none counted", after - before);
    char *seq = make_seq(100, 9), body[200];
    snprintf(body, sizeof body, ">next\n%s\n", seq);
    free(seq);
    reply r = post_fasta(ss.port, "/v1/embed", body);
    CHECKF(r.status == 200 && r.body && strstr(r.body, "\"next\""), "next request: status %d", r.status);
    reply_free(&r);
    CHECK(metric(ss.port, "pdr_sequences_embedded_total") == before + 1);
    pdr_http_stop(ss.h, 1000);
    slow_server_free(&ss);
}

/* While a stop waits for a long job: a new connection is refused at once (not queued
 * unanswered), and a queued job gets its 503 when the grace period ends, before the running
 * job's reply. */
TEST(stop_refuses_new_connections_and_answers_the_queue_at_the_deadline)
{
    slow_server ss;
    if (slow_server_start(&ss, "stop_refuses_new_connections_and_answers_the_queue_at_the_deadline"))
        return;
    conn *ca = &ss.busy, cb, cc;
    CHECK(conn_open(&cb, ss.port) == 0 && send_embed(&cb, 50) > 0);
    wait_in_flight(ss.h, 2);
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
    stop_arg s = {ss.h, -1};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, stop_thread_short, &s) == 0);
    nanosleep(&pause, NULL); /* the stop has begun */
    CHECKF(conn_open(&cc, ss.port) != 0, "a new connection was accepted after the stop began");
    if (cc.fd >= 0)
        conn_close(&cc);
    reply r;
    memset(&r, 0, sizeof r);
    conn_read_reply(&cb, 0, 0, &r);
    CHECKF(r.status == 503 && r.body && strstr(r.body, "shutting_down"), "queued job: status %d", r.status);
    reply_free(&r);
    struct pollfd pfd = {ca->fd, POLLIN, 0};
    CHECKF(poll(&pfd, 1, 0) == 0, "the running job was answered before the queued one: the job is too short");
    memset(&r, 0, sizeof r);
    conn_read_reply(ca, 0, 0, &r);
    CHECKF(r.status == 200 && r.body && strstr(r.body, "\"embeddings\""), "running job: status %d", r.status);
    reply_free(&r);
    pthread_join(t, NULL);
    CHECKF(s.left == 1, "stop reported %d queued requests answered 503, want 1", s.left);
    conn_close(&cb);
    slow_server_free(&ss);
}

/* ================================================================ hostile clients */

/* A client that sends its body one byte at a time (never idle long enough for the idle timeout)
 * is disconnected once the request deadline (1 s here) has passed, and the server goes on
 * answering others. (libmicrohttpd cannot queue a reply in the middle of an upload, so the
 * deadline closes the connection; the log and the metrics count it as a 408.) */
/* A server with a request deadline of 1 s (idle timeout 5 s); *ret_a is its api (freed by the
 * caller, also when NULL is returned). */
static pdr_http *start_deadline_server(pdr_api **ret_a, unsigned max_connections, FILE *log)
{
    pdr_api_limits l;
    pdr_api_limits_default(&l);
    pdr_err err;
    *ret_a = NULL;
    CHECK(pdr_api_create(&l, NULL, 1, ret_a, &err) == PDR_OK && pdr_api_set_ready(*ret_a, db, enc, &err) == PDR_OK);
    pdr_http_opts o;
    pdr_http_opts_default(&o);
    o.port = 0;
    o.threads = 2;
    o.max_connections = max_connections;
    o.timeout_s = 5;
    o.request_timeout_s = 1;
    o.log = log;
    pdr_http *h = NULL;
    CHECK(*ret_a && pdr_http_start(*ret_a, &o, &h, &err) == PDR_OK);
    return h;
}

TEST(slow_uploads_are_cut_off_at_the_request_deadline)
{
    char logp[1200];
    snprintf(logp, sizeof logp, "%s.slow", log_path);
    FILE *log = fopen(logp, "w");
    CHECK(log != NULL);
    pdr_api *a = NULL;
    pdr_http *h = start_deadline_server(&a, PDR_HTTP_MAX_CONNECTIONS_DEFAULT, log);
    if (!h) {
        pdr_api_free(a);
        return;
    }
    int p = pdr_http_port(h);
    conn c;
    CHECK(conn_open(&c, p) == 0);
    const char *head = "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/x-fasta\r\n"
                       "Content-Length: 1000\r\n\r\n>slow\n";
    send_all(&c, head, strlen(head));
    double t0 = now_wall();
    int closed = 0;
    for (int i = 0; i < 100 && !closed; i++) { /* 10 s at most */
        if (send_all(&c, "M", 1) != 0) {
            closed = 1;
            break;
        }
        struct pollfd pfd = {c.fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) > 0) {
            char buf[256];
            closed = recv(c.fd, buf, sizeof buf, 0) <= 0;
        }
    }
    double waited = now_wall() - t0;
    CHECKF(closed && waited > 0.9 && waited < 4, "slow upload: closed %d after %.2f s", closed, waited);
    conn_close(&c);
    reply r = get(p, "/v1/health");
    CHECKF(r.status == 200, "after the slow upload: %d", r.status);
    reply_free(&r);
    CHECK(metric_wait(p, "pdr_http_requests_total{endpoint=\"search\",code=\"408\"}", 1) == 1);
    pdr_http_stop(h, 1000);
    fclose(log);
    size_t text_len = 0;
    char *text = read_file(logp, &text_len);
    CHECKF(text && strstr(text, "POST /v1/search 408 "), "log: %s", text ? text : "(none)");
    free(text);
    remove(logp);
    pdr_api_free(a);
}

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the DIR's own descriptor */
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    long kib = -1;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    if (f)
        fclose(f);
    return kib;
}

/* 10,000 clients connect and send nothing. The server holds at most --max-connections of them
 * (the rest wait in the kernel's queues, costing the server nothing), its memory stays bounded,
 * and once they go away it answers at once. */
/* Headers trickled one line at a time: libmicrohttpd's idle timeout never fires, and enough
 * such clients held every connection slot for good (slowloris). The watchdog closes a
 * connection whose request has not arrived within --request-timeout. */
TEST(trickled_headers_are_cut_off_at_the_request_deadline)
{
    pdr_api *a = NULL;
    pdr_http *h = start_deadline_server(&a, 4, NULL);
    if (!h) {
        pdr_api_free(a);
        return;
    }
    int p = pdr_http_port(h);
    conn c[4];
    for (int i = 0; i < 4; i++) { /* every slot */
        CHECK(conn_open(&c[i], p) == 0);
        send_all(&c[i], "GET /v1/health HTTP/1.1\r\nHost: localhost\r\n", 42);
    }
    double t0 = now_wall();
    int open = 4;
    for (int step = 0; step < 100 && open > 0; step++) { /* a header line every 100 ms, 10 s at most */
        open = 0;
        for (int i = 0; i < 4; i++) {
            if (c[i].fd < 0)
                continue;
            struct pollfd pfd = {c[i].fd, POLLIN, 0};
            char buf[256];
            if (send_all(&c[i], "X-a: b\r\n", 8) != 0 ||
                (poll(&pfd, 1, 0) > 0 && recv(c[i].fd, buf, sizeof buf, 0) <= 0))
                conn_close(&c[i]);
            else
                open++;
        }
        struct timespec tick = {0, 100 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    double waited = now_wall() - t0;
    CHECKF(open == 0 && waited < 5, "%d of 4 trickling connections still open after %.1f s", open, waited);
    for (int i = 0; i < 4; i++)
        conn_close(&c[i]);
    reply r = get(p, "/v1/health"); /* the slots are free again */
    CHECKF(r.status == 200, "health after: %d", r.status);
    reply_free(&r);
    pdr_http_stop(h, 1000);
    pdr_api_free(a);
}

/* The request deadline counts from a request's first line: a keep-alive connection idle longer
 * than --request-timeout (within --timeout) still takes its next request (the deadline used to
 * count from the previous reply, and closed it). */
TEST(keep_alive_idle_past_the_request_deadline_stays_open)
{
    pdr_api *a = NULL;
    pdr_http *h = start_deadline_server(&a, 16, NULL); /* request deadline 1 s, idle timeout 5 s */
    if (!h) {
        pdr_api_free(a);
        return;
    }
    int p = pdr_http_port(h);
    conn c;
    CHECK(conn_open(&c, p) == 0);
    reply r;
    conn_request(&c, "GET", "/v1/health", NULL, NULL, 0, 0, &r);
    CHECKF(r.status == 200, "first request: %d", r.status);
    reply_free(&r);
    struct timespec idle = {1, 500 * 1000 * 1000};
    nanosleep(&idle, NULL);
    conn_request(&c, "POST", "/v1/search?k=1", "Content-Type: text/x-fasta\r\n", ">a\nMKVLAAGIVG\n", 14, 0, &r);
    CHECKF(r.status == 200, "after 1.5 s idle: %d", r.status);
    reply_free(&r);
    conn_close(&c);
    pdr_http_stop(h, 1000);
    pdr_api_free(a);
}

/* A refused upload (no token, wrong method or media type, unknown path) is never buffered or
 * queued: a client that waits for "100 Continue" gets the refusal at once, without sending its
 * body (it used to be read to its end, up to --max-body each, and to queue behind the jobs); a
 * client that sends its body first reads the refusal after it, on a connection that stays open
 * (a reply sent before the body had been read was lost to the connection's reset). */
TEST(refused_uploads_are_answered_before_their_body)
{
    pdr_api *a = NULL;
    pdr_http *h = start_token_server(&a, "tok", 30);
    if (!h) {
        pdr_api_free(a);
        return;
    }
    int p = pdr_http_port(h);
    struct {
        const char *head;
        int status;
        const char *code;
    } cases[] = {
        {"POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/x-fasta\r\n", 401, "unauthorized"},
        {"PUT /v1/search HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer tok\r\n", 405, "method_not_allowed"},
        {"POST /v1/embed HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer tok\r\nContent-Type: image/png\r\n", 415,
         "unsupported_media_type"},
        {"POST /v1/nothing HTTP/1.1\r\nHost: localhost\r\n", 404, "not_found"},
    };
    enum { BODY = 200000 };
    char *body = malloc(BODY);
    memset(body, 'A', BODY);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char bytes[512];
        snprintf(bytes, sizeof bytes, "%sExpect: 100-continue\r\nContent-Length: 500000\r\n\r\n", cases[i].head);
        double t0 = now_wall();
        int closed = 0;
        reply r = raw_request(p, bytes, &closed); /* no body follows */
        double waited = now_wall() - t0;
        CHECK_ERROR(r, cases[i].status, cases[i].code, NULL);
        CHECKF(waited < 10, "case %zu: the reply waited %.1f s for a body", i, waited);
        reply_free(&r);
        /* the body sent before the reply is read, then a second request on the connection */
        conn c;
        CHECK(conn_open(&c, p) == 0);
        snprintf(bytes, sizeof bytes, "%sContent-Length: %d\r\n\r\n", cases[i].head, BODY);
        CHECK(send_all(&c, bytes, strlen(bytes)) == 0 && send_all(&c, body, BODY) == 0);
        memset(&r, 0, sizeof r);
        conn_read_reply(&c, 0, 0, &r);
        CHECK_ERROR(r, cases[i].status, cases[i].code, NULL);
        reply_free(&r);
        conn_request(&c, "GET", "/v1/health", NULL, NULL, 0, 0, &r);
        CHECKF(r.status == 200, "case %zu: the connection did not stay open (%d)", i, r.status);
        reply_free(&r);
        conn_close(&c);
    }
    /* a refused chunked upload is read only up to the body limit (1 MiB), then closed */
    conn c;
    CHECK(conn_open(&c, p) == 0);
    const char *chead = "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
    send_all(&c, chead, strlen(chead));
    size_t sent = 0;
    char size_line[32];
    snprintf(size_line, sizeof size_line, "%x\r\n", BODY);
    for (int i = 0; i < 200; i++) { /* 40 MB at most */
        if (send_all(&c, size_line, strlen(size_line)) != 0 || send_all(&c, body, BODY) != 0 ||
            send_all(&c, "\r\n", 2) != 0)
            break;
        sent += BODY;
    }
    CHECKF(sent < 40 * (size_t)BODY, "a refused chunked upload was read on and on: %zu bytes taken", sent);
    conn_close(&c);
    free(body);
    /* a refusal of a body declared past what is worth reading comes at once (the server does not
     * wait for a body it would discard), and the connection closes */
    int closed = 0;
    reply r = raw_request(p, "POST /v1/search%00x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000000\r\n\r\n",
                          &closed);
    CHECK_ERROR(r, 404, "not_found", "encoded NUL");
    CHECK(closed);
    reply_free(&r);
    /* the other refusals come before the 413 of a body too large: a wrong Host, no token */
    r = raw_request(p, "POST /v1/search HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 100000000000\r\n\r\n",
                    &closed);
    CHECK_ERROR(r, 403, "host_not_allowed", NULL);
    reply_free(&r);
    r = raw_request(p,
                    "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/x-fasta\r\n"
                    "Content-Length: 100000000000\r\n\r\n",
                    &closed);
    CHECK_ERROR(r, 401, "unauthorized", NULL);
    reply_free(&r);
    /* a compressed body is refused for what it is, not parsed as FASTA */
    r = raw_request(p,
                    "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer tok\r\n"
                    "Content-Type: text/x-fasta\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\n\x1f\x8b\x08zz",
                    &closed);
    CHECK_ERROR(r, 415, "unsupported_media_type", "Content-Encoding 'gzip'");
    reply_free(&r);
    pdr_http_stop(h, 1000);
    pdr_api_free(a);
}

TEST(ten_thousand_idle_connections_stay_bounded)
{
    enum { N = 10000, MAXCONN = 256 };
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < N + 1024) {
        struct rlimit want = {N + 1024, rl.rlim_max > N + 1024 ? rl.rlim_max : N + 1024};
        if (setrlimit(RLIMIT_NOFILE, &want) != 0) {
            want.rlim_max = rl.rlim_max;
            want.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &want);
        }
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    CHECKF(rl.rlim_cur >= N + 1024, "open files limit %lu: cannot open %d connections (run as root or raise ulimit -n)",
           (unsigned long)rl.rlim_cur, N);
    if (rl.rlim_cur < N + 1024)
        return;
    pdr_api_limits l;
    pdr_api_limits_default(&l);
    pdr_api *a = NULL;
    pdr_err err;
    CHECK(pdr_api_create(&l, NULL, 1, &a, &err) == PDR_OK && pdr_api_set_ready(a, db, enc, &err) == PDR_OK);
    pdr_http *h = start_server(a, MAXCONN, 3);
    if (!h) {
        pdr_api_free(a);
        return;
    }
    int p = pdr_http_port(h);
    int fds0 = count_open_fds();
    long rss0 = rss_kib();
    int *fd = malloc(N * sizeof *fd);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)p);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int opened = 0;
    for (int i = 0; i < N; i++) {
        fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd[i] < 0)
            break;
        if (connect(fd[i], (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
            close(fd[i]);
            break;
        }
        opened++;
    }
    CHECKF(opened == N, "opened %d of %d connections: %s", opened, N, strerror(errno));
    struct timespec pause = {1, 0};
    nanosleep(&pause, NULL); /* let the server accept what it will */
    int held = count_open_fds() - fds0 - opened;
    long grown = rss_kib() - rss0;
    CHECKF(held >= MAXCONN / 2 && held <= MAXCONN + 8, "server holds %d connections (limit %d)", held, MAXCONN);
    CHECKF(grown < 64 * 1024, "RSS grew by %ld KiB with %d idle connections", grown, opened);
    for (int i = 0; i < opened; i++)
        close(fd[i]);
    free(fd);
    /* Connections the kernel completed while the server's queue was full may never have told
     * the client so (SYN cookies on loopback): their server side sees no FIN and is only freed by
     * the idle timeout (3 s here). So the server must answer within that, not necessarily at once. */
    double t0 = now_wall();
    reply r;
    memset(&r, 0, sizeof r);
    while (now_wall() - t0 < 25) {
        r = get(p, "/v1/health");
        if (r.status == 200)
            break;
        reply_free(&r);
        struct timespec retry = {0, 200 * 1000 * 1000};
        nanosleep(&retry, NULL);
    }
    double waited = now_wall() - t0;
    CHECKF(r.status == 200 && waited < 25, "after the idle connections closed: %d after %.2f s", r.status, waited);
    reply_free(&r);
    pdr_http_stop(h, 1000);
    pdr_api_free(a);
}

TEST(start_reports_a_busy_port)
{
    pdr_api_limits l;
    pdr_api_limits_default(&l);
    pdr_api *a = NULL;
    pdr_err err;
    pdr_err_clear(&err);
    CHECK(pdr_api_create(&l, NULL, 1, &a, &err) == PDR_OK);
    pdr_http_opts o;
    pdr_http_opts_default(&o);
    o.port = port; /* the main server has it */
    pdr_http *h = NULL;
    CHECK(pdr_http_start(a, &o, &h, &err) == PDR_EIO && h == NULL);
    char want[32];
    snprintf(want, sizeof want, "port %d", port);
    CHECKF(strstr(err.msg, want) != NULL, "%s", err.msg);
    o.host = "no-such-host.invalid";
    o.port = 0;
    CHECK(pdr_http_start(a, &o, &h, &err) == PDR_EIO && strstr(err.msg, "no-such-host.invalid"));
    pdr_api_free(a);
}

/* ================================================================ database reload */

/* A kmer3 database of the first n records of the demo targets in dir (made here). */
static pdr_db *make_small_db(const char *dir, size_t n)
{
    const char *data = getenv("PDR_DATA") ? getenv("PDR_DATA") : "data";
    char targets[1100], fasta[1100], store[1100], line[4096];
    snprintf(targets, sizeof targets, "%s/demo/targets.fasta", data);
    snprintf(fasta, sizeof fasta, "%s.fasta", dir);
    snprintf(store, sizeof store, "%s/%s", dir, PDR_DB_STORE);
    FILE *in = fopen(targets, "r"), *out = fopen(fasta, "w");
    size_t records = 0;
    while (in && out && fgets(line, sizeof line, in) && !(line[0] == '>' && ++records > n))
        fputs(line, out);
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    mkdir(dir, 0777);
    pdr_bulk_opts bopts;
    pdr_bulk_opts_default(&bopts);
    bopts.threads = 1;
    pdr_bulk_stats stats;
    pdr_err err;
    pdr_err_clear(&err);
    pdr_db *small = NULL;
    if (pdr_bulk_embed(enc, fasta, store, &bopts, &stats, &err) || pdr_db_build_index(dir, "Flat", 1, NULL, &err) ||
        pdr_db_calibrate(dir, enc, 1, 0, &err) || pdr_db_open(dir, &small, &err))
        fprintf(stderr, "make_small_db: %s\n", err.msg);
    unlink(fasta);
    return small;
}

static void remove_tree(const char *dir)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* A cancel callback that holds the request in its first call until released: the request keeps
 * its database that long. */
typedef struct held_request {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int entered, released;
} held_request;

static int hold_until_released(void *ctx)
{
    held_request *h = ctx;
    pthread_mutex_lock(&h->lock);
    h->entered = 1;
    pthread_cond_broadcast(&h->changed);
    while (!h->released)
        pthread_cond_wait(&h->changed, &h->lock);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

typedef struct search_job {
    pdr_api *api;
    pdr_cancel cancel;
    pdr_api_reply rep;
} search_job;

static void *run_held_search(void *arg)
{
    search_job *j = arg;
    static const char body[] = ">held\nMKVLAAGIVGLLLAQWERTY\n";
    pdr_api_request req = {.method = "POST",
                           .path = "/v1/search",
                           .content_type = "text/x-fasta",
                           .body = body,
                           .body_len = sizeof body - 1,
                           .cancel = &j->cancel};
    pdr_api_reply_init(&j->rep);
    pdr_api_handle(j->api, &req, &j->rep);
    return NULL;
}

typedef struct replace_job {
    pdr_api *api;
    const pdr_db *db;
    const pdr_db *old;
    int rc;
    atomic_int done;
} replace_job;

static void *run_replace(void *arg)
{
    replace_job *j = arg;
    pdr_err err;
    pdr_err_clear(&err);
    j->rc = pdr_api_replace_db(j->api, j->db, &j->old, &err);
    atomic_store(&j->done, 1);
    return NULL;
}

/* pdr serve's SIGHUP: another database is served from the next request on, while a request that
 * began before finishes on the old one, which is handed back only after it. */
TEST(replace_db_waits_for_requests_on_the_old_database)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s.small", dbdir);
    pdr_db *small = make_small_db(dir, 12);
    CHECK(small && pdr_db_count(small) == 12);
    pdr_api_limits l;
    pdr_api_limits_default(&l);
    pdr_api *a = NULL;
    pdr_err err;
    CHECK(pdr_api_create(&l, NULL, 2, &a, &err) == PDR_OK && pdr_api_set_ready(a, db, enc, &err) == PDR_OK);
    pdr_http *h = a ? start_server(a, 16, 10) : NULL;
    if (!small || !h) {
        pdr_http_stop(h, 0);
        pdr_api_free(a);
        pdr_db_free(small);
        remove_tree(dir);
        return;
    }
    int p = pdr_http_port(h);
    held_request held = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    search_job sj = {.api = a, .cancel = {hold_until_released, &held}};
    pthread_t search_thread, replace_thread;
    pthread_create(&search_thread, NULL, run_held_search, &sj);
    pthread_mutex_lock(&held.lock);
    while (!held.entered)
        pthread_cond_wait(&held.changed, &held.lock);
    pthread_mutex_unlock(&held.lock);

    replace_job rj = {.api = a, .db = small};
    atomic_init(&rj.done, 0);
    pthread_create(&replace_thread, NULL, run_replace, &rj);
    /* new requests get the new database at once ... */
    int swapped = 0;
    for (int i = 0; i < 200 && !swapped; i++) {
        reply r = get(p, "/v1/health");
        swapped = r.status == 200 && r.body && strstr(r.body, "\"proteins\":12}");
        reply_free(&r);
        if (!swapped)
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    CHECK(swapped);
    reply r = post_fasta(p, "/v1/search?format=tsv&k=50", ">new\nMKVLAAGIVGLLLAQWERTY\n");
    CHECKF(r.status == 200 && r.body && count_str(r.body, "\n") == 12, "status %d: %s", r.status, r.body ? r.body : "");
    reply_free(&r);
    /* ... while the old one stays, for the request that holds it */
    nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    CHECKF(!atomic_load(&rj.done), "the old database was handed back while a request still used it");
    pthread_mutex_lock(&held.lock);
    held.released = 1;
    pthread_cond_broadcast(&held.changed);
    pthread_mutex_unlock(&held.lock);
    pthread_join(search_thread, NULL);
    pthread_join(replace_thread, NULL);
    char old_name[256];
    pdr_db_name(db, old_name, sizeof old_name);
    CHECKF(sj.rep.status == 200 && strstr((sj.rep.body.data ? sj.rep.body.data : ""), old_name) &&
               count_str((sj.rep.body.data ? sj.rep.body.data : ""), "\"rank\":") == 10,
           "held request: status %d: %s", sj.rep.status, (sj.rep.body.data ? sj.rep.body.data : ""));
    CHECK(rj.rc == PDR_OK && rj.old == db);
    pdr_api_reply_clear(&sj.rep);

    /* and back: the shared database again */
    const pdr_db *old = NULL;
    CHECK(pdr_api_replace_db(a, db, &old, &err) == PDR_OK && old == small);
    r = get(p, "/v1/health");
    CHECKF(r.status == 200 && r.body && strstr(r.body, "\"proteins\":1049"), "%s", r.body ? r.body : "");
    reply_free(&r);
    CHECK(pdr_http_stop(h, 1000) == 0);
    pdr_api_free(a);
    pdr_db_free(small);
    remove_tree(dir);
}

/* A database of another model is refused, and the one in service stays. */
TEST(replace_db_refuses_another_model)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s.small2", dbdir);
    pdr_db *small = make_small_db(dir, 5);
    pdr_encoder *other = open_slow_encoder(); /* a CNN of the same dimension */
    pdr_api_limits l;
    pdr_api_limits_default(&l);
    pdr_api *a = NULL;
    pdr_err err;
    pdr_err_clear(&err);
    CHECK(small && other && pdr_api_create(&l, NULL, 1, &a, &err) == PDR_OK &&
          pdr_api_set_ready(a, db, other, &err) == PDR_OK);
    if (small && other && a) {
        const pdr_db *old = small;
        int rc = pdr_api_replace_db(a, small, &old, &err);
        CHECKF(rc == PDR_EINPUT && old == NULL && strstr(err.msg, "built with model kmer3") &&
                   strstr(err.msg, pdr_encoder_name(other)),
               "rc %d: %s", rc, err.msg);
        pdr_api_reply rep;
        pdr_api_reply_init(&rep);
        pdr_api_request req = {.method = "GET", .path = "/v1/health"};
        pdr_api_handle(a, &req, &rep);
        CHECKF(rep.status == 200 && strstr((rep.body.data ? rep.body.data : ""), "\"proteins\":1049"), "%s",
               (rep.body.data ? rep.body.data : ""));
        pdr_api_reply_clear(&rep);
    }
    pdr_api_free(a);
    pdr_encoder_free(other);
    pdr_db_free(small);
    remove_tree(dir);
}

int main(void)
{
    RUN(json_parser_accepts_the_documented_object);
    RUN(json_parser_rejects_with_a_code_per_mistake);
    if (setup() != 0) {
        CHECK(!"setup failed");
        return CHECK_DONE();
    }
    RUN(health_says_loaded);
    RUN(info_describes_model_database_and_limits);
    RUN(search_fasta_matches_the_in_process_search);
    RUN(search_tsv_is_the_cli_tsv);
    RUN(search_finds_a_database_protein_first_with_score_1);
    RUN(search_json_body_with_k_and_min_score);
    RUN(search_evalue_keeps_the_hits_at_or_under_it);
    RUN(search_default_k_is_10);
    RUN(embed_returns_the_encoder_vectors);
    RUN(metrics_count_requests_queries_and_residues);
    RUN(page_and_openapi_are_the_source_files);
    RUN(requests_are_logged_one_line_each);
    RUN(log_forwarded_for_adds_the_proxy_header);
    RUN(empty_and_record_less_bodies_are_400);
    RUN(malformed_fasta_names_the_record);
    RUN(too_long_sequences_are_400_and_the_limit_itself_is_fine);
    RUN(too_many_queries_are_400_and_the_limit_itself_is_fine);
    RUN(too_large_bodies_are_413);
    RUN(bad_query_parameters_are_400);
    RUN(query_values_with_an_encoded_nul_are_400);
    RUN(chunked_bodies_far_past_the_limit_get_413);
    RUN(bad_json_bodies_are_400_with_their_code);
    RUN(unsupported_content_types_are_415);
    RUN(wrong_methods_are_405_with_allow);
    RUN(unknown_paths_are_404);
    RUN(paths_with_an_encoded_nul_are_404);
    RUN(host_policy_allows_loopback_names_and_ip_literals);
    RUN(requests_naming_other_hosts_are_403);
    RUN(ambiguous_framing_is_400_and_closes);
    RUN(log_lines_cannot_be_forged);
    RUN(garbage_requests_do_not_hurt_the_server);
    RUN(closed_requests_and_libmicrohttpd_replies_are_counted);
    RUN(page_and_openapi_describe_the_server);
    RUN(keep_alive_serves_several_requests_on_one_connection);
    RUN(concurrent_requests_all_get_the_same_right_answer);
    RUN(loading_server_answers_503_until_ready);
    RUN(token_protects_data_endpoints);
    RUN(cors_policy_parses_origins_and_refuses_malformed_ones);
    RUN(cors_is_off_by_default);
    RUN(cors_allowed_origin_is_echoed_on_success_and_errors);
    RUN(cors_other_origins_get_no_cors_headers);
    RUN(cors_preflight_is_204_with_the_path_methods);
    RUN(cors_preflight_is_not_401_with_a_token);
    RUN(cors_star_allows_any_origin);
    RUN(custom_limits_connection_limit_and_idle_timeout);
    RUN(stop_lets_the_request_in_flight_finish);
    RUN(health_is_answered_while_the_worker_is_busy);
    RUN(stop_answers_queued_jobs_503);
    RUN(replace_db_waits_for_requests_on_the_old_database);
    RUN(replace_db_refuses_another_model);
    RUN(stop_refuses_new_connections_and_answers_the_queue_at_the_deadline);
    RUN(queued_jobs_of_clients_that_hung_up_are_not_computed);
    RUN(running_jobs_of_clients_that_hung_up_are_stopped);
    RUN(slow_uploads_are_cut_off_at_the_request_deadline);
    RUN(trickled_headers_are_cut_off_at_the_request_deadline);
    RUN(keep_alive_idle_past_the_request_deadline_stays_open);
    RUN(refused_uploads_are_answered_before_their_body);
    RUN(ten_thousand_idle_connections_stay_bounded);
    RUN(start_reports_a_busy_port);
    teardown();
    return CHECK_DONE();
}
