/* cmd_serve.c: `pdr serve`, the HTTP service.
 * Start the server at once (data endpoints answer 503 while loading), load the database and its
 * model, hand them to the api, then wait for SIGTERM/SIGINT and stop cleanly: no new
 * connections, requests in flight finish. The endpoints are in service/pdr_api.c, the
 * connection handling in service/pdr_http.c. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "pdr_api.h"
#include "pdr_cors.h"
#include "pdr_db.h"
#include "pdr_host.h"
#include "pdr_http.h"
#include "pdr_notify.h"

#define STOP_GRACE_MS 30000
#define MAX_TOKEN_BYTES 4096

static const char serve_usage[] =
    "usage: pdr serve DBDIR [options]\n\n"
    "Loads the database made by 'pdr makedb' and its model once, then answers HTTP requests:\n"
    "  POST /v1/search   FASTA (text/x-fasta) or JSON {\"fasta\", \"k\", \"min_score\", \"evalue\",\n"
    "                    \"expand\"} in; hits out as JSON, or the TSV of 'pdr search' with ?format=tsv,\n"
    "                    or BLAST's -outfmt 6 with ?format=blast6 (query parameters k, min_score,\n"
    "                    evalue: hits with E-value <= it, expand: false on a 'makedb --expand'\n"
    "                    database searches the plain vectors)\n"
    "  POST /v1/embed    FASTA in, one vector per record out (JSON)\n"
    "  GET  /v1/health   200 once loaded, 503 while loading     GET /v1/info    model, database, limits\n"
    "  GET  /metrics     Prometheus text                         GET /           search page\n"
    "  GET  /openapi.json\n"
    "The port opens at once; search, embed and info answer 503 until the database is loaded.\n"
    "One log line per request on stderr. SIGTERM or SIGINT: stop accepting, let the requests in\n"
    "flight finish, exit 0. SIGHUP: load DBDIR again (after a makedb rebuilt or extended it) and\n"
    "serve it once loaded, without a restart; requests in flight finish on the old one, and a\n"
    "database that does not load (or was made with another model) leaves the old one served.\n\n"
    "options:\n"
    "      --host H              address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)\n"
    "      --allow-host NAMES    also answer requests whose Host is one of these names (comma-\n"
    "                            separated, repeatable; '.example.org' for a domain and the names\n"
    "                            under it; '*' for any). On a loopback address only localhost and\n"
    "                            IP addresses are answered without it (403: DNS rebinding); on\n"
    "                            other addresses any Host is, unless it is given\n"
    "      --cors-origin ORIGINS let web pages from these origins call the API (CORS; comma-\n"
    "                            separated, repeatable; scheme://host[:port] exactly as the\n"
    "                            browser's Origin header says it, e.g. http://localhost:8888;\n"
    "                            '*' for any page). Default: none, same-origin pages only\n"
    "  -p, --port P              port (default 8080; 0 = any free port, printed at start)\n"
    "  -t, --threads N           worker threads = searches/embeddings run at once, fed by one queue\n"
    "                            (default: all cores)\n"
    "      --max-body BYTES      largest request body (default 1048576); larger: 413\n"
    "      --max-queries N       FASTA records per request (default 100)\n"
    "      --max-length AA       residues per sequence (default 10000)\n"
    "      --max-k N             largest k (default 1000)\n"
    "      --align N             align each query's N best candidates (default 50 when the database\n"
    "                            has sequences; 0 = no alignment)\n"
    "      --max-connections N   open connections at most (default 256); more wait to be accepted\n"
    "      --timeout S           close a connection idle for S seconds (default 30)\n"
    "      --request-timeout S   close a connection whose request (line, headers and body) has not\n"
    "                            arrived in full S seconds after its first line (408; default 60)\n"
    "      --token-file F        require 'Authorization: Bearer TOKEN' for search, embed, info and\n"
    "                            metrics; TOKEN is the first line of F\n"
    "      --nprobe N            IVF lists (or HNSW efSearch) to visit (approximate indexes)\n"
    "  -m, --model M             the database's model file (default as for pdr search; another\n"
    "                            model than the database's is refused)\n"
    "  -q, --quiet               no per-request log lines\n"
    "      --log-forwarded-for   add the X-Forwarded-For header to each log line (' for=...'): the\n"
    "                            clients a reverse proxy in front names (a client that reaches the\n"
    "                            server directly can write anything there)\n"
    "  -h, --help                this help\n";

enum {
    OPT_HOST = 256,
    OPT_MAXBODY,
    OPT_MAXQUERIES,
    OPT_MAXLEN,
    OPT_MAXK,
    OPT_ALIGN,
    OPT_MAXCONN,
    OPT_TIMEOUT,
    OPT_REQTIMEOUT,
    OPT_TOKEN,
    OPT_NPROBE,
    OPT_ALLOWHOST,
    OPT_CORSORIGIN,
    OPT_LOGFORWARDED
};

/* The first line of path, trimmed; NULL (with the error printed) when unreadable or empty. */
static char *read_token(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        cli_error("serve", "%s: cannot read the token file: %s", path, strerror(errno));
        return NULL;
    }
    /* the whole first line, then trimmed: a limit checked on the raw line would count its
     * newline (a 4096-byte token was refused with "\n", taken without) */
    char *line = NULL;
    size_t cap = 0;
    ssize_t got = getline(&line, &cap, f);
    int read_errno = errno, failed = got < 0 && ferror(f);
    fclose(f);
    if (failed || (got < 0 && !line)) {
        free(line);
        cli_error("serve", "%s: cannot read the token file: %s", path, strerror(read_errno));
        return NULL;
    }
    size_t n = got < 0 ? 0 : (size_t)got;
    line[n] = '\0';
    if (memchr(line, '\0', n)) { /* read as a C string it would be cut there, or be empty: no auth */
        cli_error("serve", "%s: the token file holds a NUL byte (UTF-16? binary?): write the token as text", path);
        free(line);
        return NULL;
    }
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        line[--n] = '\0';
    size_t start = strspn(line, " \t");
    if (start == n) {
        cli_error("serve", "%s: the first line holds no token", path);
        free(line);
        return NULL;
    }
    if (n - start > MAX_TOKEN_BYTES) {
        cli_error("serve", "%s: the token is longer than %d bytes", path, MAX_TOKEN_BYTES);
        free(line);
        return NULL;
    }
    memmove(line, line + start, n - start + 1);
    return line;
}

/* SIGTERM/SIGINT. A handler, not sigwait: threads that libraries start before main (OpenBLAS's)
 * do not block the signals, and a signal the kernel hands to one of them would otherwise take its
 * default action and kill the process, e.g. while the database loads. The handler may run on any
 * thread; it records the signal and wakes the main thread through a pipe. These two are the only
 * state a signal handler can reach. */
static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t reload_signal; /* SIGHUP: load DBDIR again and serve it */
static volatile sig_atomic_t serving;       /* loaded and READY=1 said: a SIGHUP means a reload */
static pdr_notify_target notify_target;     /* NOTIFY_SOCKET, resolved before the handler is installed */
static int stop_pipe[2] = {-1, -1};

static void on_stop_signal(int sig)
{
    int saved = errno;
    if (sig == SIGHUP) {
        reload_signal = 1;
        /* Said here, while the `kill` that sent SIGHUP (systemd's ExecReload=) is still running:
         * systemd 252 ties the reload job to RELOADING=1 only when it comes before that exits. */
        if (serving)
            pdr_notify_send(&notify_target, "RELOADING=1\nSTATUS=SIGHUP: loading the database again");
    } else {
        stop_signal = sig;
    }
    if (stop_pipe[1] >= 0) {
        ssize_t w = write(stop_pipe[1], "s", 1); /* non-blocking: a full pipe already wakes */
        (void)w;
    }
    errno = saved;
}

static int install_stop_handler(void)
{
    if (pipe(stop_pipe) != 0)
        return -1;
    for (int i = 0; i < 2; i++)
        fcntl(stop_pipe[i], F_SETFD, FD_CLOEXEC);
    fcntl(stop_pipe[1], F_SETFL, O_NONBLOCK);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* the loading's file reads go on */
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGHUP, &sa, NULL) != 0)
        return -1;
    return 0;
}

static void restore_stop_handler(void)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    for (int i = 0; i < 2; i++) {
        if (stop_pipe[i] >= 0)
            close(stop_pipe[i]);
        stop_pipe[i] = -1;
    }
}

static const char *stop_signal_name(void) { return stop_signal == SIGINT ? "SIGINT" : "SIGTERM"; }

/* What loading a database for the service takes: the options that shape its search. */
typedef struct load_opts {
    const char *dbdir;
    int nprobe;
    int breadth; /* the most candidates a request can ask for (max k or --align) */
} load_opts;

static int load_db(const load_opts *lo, pdr_db **ret_db, pdr_err *err)
{
    int rc = pdr_db_open(lo->dbdir, ret_db, err);
    if (!rc && lo->nprobe > 0)
        rc = pdr_db_set_nprobe(*ret_db, lo->nprobe, err);
    if (!rc)
        rc = pdr_db_fit_breadth(*ret_db, lo->breadth, lo->nprobe, err);
    if (rc) {
        pdr_db_free(*ret_db);
        *ret_db = NULL;
    }
    return rc;
}

/* Tell the service manager (pdr_notify.h) that the server is ready and what it serves, after
 * note (a reload's outcome) when given. */
static void notify_serving(const pdr_db *db, const char *note)
{
    char state[PDR_ERRLEN + 200];
    snprintf(state, sizeof state, "READY=1\nSTATUS=%s%sserving %zu proteins", note ? note : "", note ? "; " : "",
             pdr_db_count(db));
    pdr_notify_send(&notify_target, state);
}

/* SIGHUP: load DBDIR again (a makedb has rebuilt or extended it) and serve it once loaded;
 * requests in flight finish on the old one. A database that does not load or does not fit
 * (another model, no sequences with --align) is refused and the old one stays. */
static void reload(pdr_api *api, const load_opts *lo, pdr_db **db)
{
    pdr_err err;
    pdr_err_clear(&err);
    size_t before = pdr_db_count(*db);
    fprintf(stderr, "pdr serve: SIGHUP: loading %s again\n", lo->dbdir);
    pdr_db *fresh = NULL;
    const pdr_db *old = NULL;
    int loaded = !load_db(lo, &fresh, &err);
    if (loaded && stop_signal) { /* stopping anyway: do not swap, nor wait for the old one's requests */
        fprintf(stderr, "pdr serve: SIGHUP: %s during the reload: the database loaded before stays\n",
                stop_signal_name());
        pdr_db_free(fresh);
        return;
    }
    if (!loaded || pdr_api_replace_db(api, fresh, &old, &err)) {
        fprintf(stderr,
                "pdr serve: SIGHUP: reload failed, still serving the database loaded before (%zu proteins): %s\n",
                before, err.msg);
        pdr_db_free(fresh);
        char note[PDR_ERRLEN + 40];
        snprintf(note, sizeof note, "reload failed (%s)", err.msg);
        notify_serving(*db, note);
        return;
    }
    pdr_db_free((pdr_db *)old); /* old is *db: the api borrowed it */
    *db = fresh;
    fprintf(stderr, "pdr serve: SIGHUP: reloaded: %zu proteins (before: %zu), index %s\n", pdr_db_count(fresh), before,
            pdr_db_index_spec(fresh));
    notify_serving(fresh, "reloaded");
}

/* Sleep until a stop signal has arrived, reloading the database on SIGHUP. The wait is a poll of
 * at most a second at a time, not a plain read: a signal runtime that defers handlers to the next
 * intercepted call (ThreadSanitizer) would otherwise never run the handler while the read,
 * restarted by SA_RESTART, waits. */
static void wait_for_stop_signal(pdr_api *api, const load_opts *lo, pdr_db **db)
{
    while (!stop_signal) {
        if (reload_signal) {
            reload_signal = 0;
            reload(api, lo, db);
            continue;
        }
        struct pollfd pfd = {stop_pipe[0], POLLIN, 0};
        int r = poll(&pfd, 1, 1000);
        if (r < 0 && errno != EINTR)
            break;
        char c;
        if (r > 0 && read(stop_pipe[0], &c, 1) < 0 && errno != EINTR)
            break;
    }
}

int cmd_serve(int argc, char **argv)
{
    static const struct option longopts[] = {{"host", required_argument, 0, OPT_HOST},
                                             {"port", required_argument, 0, 'p'},
                                             {"threads", required_argument, 0, 't'},
                                             {"max-body", required_argument, 0, OPT_MAXBODY},
                                             {"max-queries", required_argument, 0, OPT_MAXQUERIES},
                                             {"max-length", required_argument, 0, OPT_MAXLEN},
                                             {"max-k", required_argument, 0, OPT_MAXK},
                                             {"align", required_argument, 0, OPT_ALIGN},
                                             {"max-connections", required_argument, 0, OPT_MAXCONN},
                                             {"timeout", required_argument, 0, OPT_TIMEOUT},
                                             {"request-timeout", required_argument, 0, OPT_REQTIMEOUT},
                                             {"token-file", required_argument, 0, OPT_TOKEN},
                                             {"nprobe", required_argument, 0, OPT_NPROBE},
                                             {"allow-host", required_argument, 0, OPT_ALLOWHOST},
                                             {"cors-origin", required_argument, 0, OPT_CORSORIGIN},
                                             {"log-forwarded-for", no_argument, 0, OPT_LOGFORWARDED},
                                             {"model", required_argument, 0, 'm'},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    pdr_http_opts hopts;
    pdr_http_opts_default(&hopts);
    pdr_api_limits limits;
    pdr_api_limits_default(&limits);
    const char *model = NULL, *token_file = NULL;
    int threads = 0, quiet = 0, nprobe = 0, any_host = 0, n_allow = 0, c;
    long v;
    pdr_buf allow; /* --allow-host's names, comma-separated */
    pdr_buf_init(&allow);
    pdr_buf cors; /* --cors-origin's origins, comma-separated */
    pdr_buf_init(&cors);
    int n_cors = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:t:m:qh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_HOST: hopts.host = optarg; break;
        case 'p':
            if ((v = cli_parse_long("serve", "--port", optarg, 0, 65535)) < 0)
                return EXIT_USAGE;
            hopts.port = (int)v;
            break;
        case 't':
            if ((v = cli_parse_long("serve", "--threads", optarg, 1, 1024)) < 0)
                return EXIT_USAGE;
            threads = (int)v;
            break;
        case OPT_MAXBODY:
            if ((v = cli_parse_long("serve", "--max-body", optarg, 1, 1L << 34)) < 0)
                return EXIT_USAGE;
            limits.max_body_bytes = (size_t)v;
            break;
        case OPT_MAXQUERIES:
            if ((v = cli_parse_long("serve", "--max-queries", optarg, 1, 1000000)) < 0)
                return EXIT_USAGE;
            limits.max_queries = (size_t)v;
            break;
        case OPT_MAXLEN:
            if ((v = cli_parse_long("serve", "--max-length", optarg, 1, 1L << 30)) < 0)
                return EXIT_USAGE;
            limits.max_length = (size_t)v;
            break;
        case OPT_MAXK:
            if ((v = cli_parse_long("serve", "--max-k", optarg, 1, 100000)) < 0)
                return EXIT_USAGE;
            limits.max_k = (int)v;
            break;
        case OPT_ALIGN:
            if ((v = cli_parse_long("serve", "--align", optarg, 0, 100000)) < 0)
                return EXIT_USAGE;
            limits.align = (int)v;
            break;
        case OPT_MAXCONN:
            if ((v = cli_parse_long("serve", "--max-connections", optarg, 1, 100000)) < 0)
                return EXIT_USAGE;
            hopts.max_connections = (unsigned)v;
            break;
        case OPT_TIMEOUT:
            if ((v = cli_parse_long("serve", "--timeout", optarg, 1, 86400)) < 0)
                return EXIT_USAGE;
            hopts.timeout_s = (unsigned)v;
            break;
        case OPT_REQTIMEOUT:
            if ((v = cli_parse_long("serve", "--request-timeout", optarg, 1, 86400)) < 0)
                return EXIT_USAGE;
            hopts.request_timeout_s = (double)v;
            break;
        case OPT_TOKEN: token_file = optarg; break;
        case OPT_NPROBE:
            if ((v = cli_parse_long("serve", "--nprobe", optarg, 1, 1 << 20)) < 0)
                return EXIT_USAGE;
            nprobe = (int)v;
            break;
        case OPT_ALLOWHOST:
            if (strcmp(optarg, "*") == 0) {
                any_host = 1;
            } else {
                pdr_buf_puts(&allow, n_allow++ ? "," : "");
                pdr_buf_puts(&allow, optarg);
            }
            break;
        case OPT_CORSORIGIN:
            pdr_buf_puts(&cors, n_cors++ ? "," : "");
            pdr_buf_puts(&cors, optarg);
            break;
        case 'm': model = optarg; break;
        case 'q': quiet = 1; break;
        case OPT_LOGFORWARDED: hopts.log_forwarded_for = 1; break;
        case 'h':
            pdr_buf_free(&allow);
            pdr_buf_free(&cors);
            fputs(serve_usage, stdout);
            return EXIT_OK;
        default:
            pdr_buf_free(&allow);
            pdr_buf_free(&cors);
            fputs(serve_usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        pdr_buf_free(&allow);
        pdr_buf_free(&cors);
        cli_error("serve", "expected DBDIR");
        fputs(serve_usage, stderr);
        return EXIT_USAGE;
    }
    hopts.allow_host = any_host ? "*" : n_allow ? (allow.data ? allow.data : "") : NULL;
    hopts.cors_origin = n_cors ? (cors.data ? cors.data : "") : NULL;
    /* checked here, so that a bad name or origin is a usage error */
    pdr_host_policy *hosts = NULL;
    pdr_cors_policy *origins = NULL;
    pdr_err herr;
    if (pdr_buf_failed(&allow) || pdr_buf_failed(&cors) ||
        pdr_host_policy_create(hopts.host, hopts.allow_host, &hosts, &herr) ||
        pdr_cors_policy_create(hopts.cors_origin, &origins, &herr)) {
        cli_error("serve", "%s", pdr_buf_failed(&allow) || pdr_buf_failed(&cors) ? "out of memory" : herr.msg);
        pdr_host_policy_free(hosts);
        pdr_buf_free(&allow);
        pdr_buf_free(&cors);
        return EXIT_USAGE;
    }
    int host_checked = pdr_host_policy_checks(hosts);
    pdr_host_policy_free(hosts);
    int cors_any = pdr_cors_policy_any(origins);
    size_t n_origins = pdr_cors_policy_count(origins);
    pdr_cors_policy_free(origins);
    const char *dbdir = argv[optind];
    hopts.threads = cli_set_threads(threads);
    hopts.log = quiet ? NULL : stderr;

    pdr_err err;
    pdr_err_clear(&err);
    char *token = NULL;
    pdr_api *api = NULL;
    pdr_http *http = NULL;
    pdr_db *db = NULL;
    pdr_encoder *enc = NULL;
    int rc = EXIT_RUNTIME;
    if (token_file && !(token = read_token(token_file))) {
        pdr_buf_free(&allow);
        pdr_buf_free(&cors);
        return EXIT_RUNTIME;
    }
    if (cors_any && !token) /* a bearer token is never sent by a browser on its own: with one, '*' exposes only
                               what needs none */
        fprintf(stderr, "pdr serve: warning: --cors-origin '*' without --token-file: any web page opened in a "
                        "browser that reaches this server can search it and read the hits\n");
    if (pdr_api_create(&limits, token, hopts.threads, &api, &err)) {
        cli_error("serve", "%s", err.msg);
        goto done;
    }

    /* Stop signals run on_stop_signal on whichever thread gets them; the server's threads,
     * created while they are blocked here, never do. Writes to a closed connection must not
     * kill the process. */
    stop_signal = 0;
    reload_signal = 0;
    serving = 0;
    pdr_notify_target_init(&notify_target);
    if (install_stop_handler()) {
        cli_error("serve", "cannot install the SIGTERM/SIGINT/SIGHUP handler: %s", strerror(errno));
        goto done;
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    int started = pdr_http_start(api, &hopts, &http, &err);
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
    if (started) {
        cli_error("serve", "%s", err.msg);
        goto done;
    }
    int bracket = strchr(hopts.host, ':') != NULL; /* IPv6 literal */
    fprintf(stderr, "pdr serve: listening on http://%s%s%s:%d/ (loading %s)\n", bracket ? "[" : "", hopts.host,
            bracket ? "]" : "", pdr_http_port(http), dbdir);

    /* A stop signal during loading takes effect when the step in hand ends; a SIGHUP, once
     * loaded (the database is loaded again). */
    load_opts lo = {dbdir, nprobe, limits.max_k > limits.align ? limits.max_k : limits.align};
    if (!stop_signal && load_db(&lo, &db, &err)) {
        cli_error("serve", "%s", err.msg);
        goto done;
    }
    if (!stop_signal && !(enc = cli_open_db_model("serve", db, model)))
        goto done;
    if (!stop_signal && pdr_api_set_ready(api, db, enc, &err)) {
        cli_error("serve", "%s", err.msg);
        goto done;
    }
    if (stop_signal) {
        fprintf(stderr, "pdr serve: %s while loading: stopping\n", stop_signal_name());
        rc = EXIT_OK;
        goto done;
    }
    char cors_note[64] = "";
    if (cors_any)
        snprintf(cors_note, sizeof cors_note, "; CORS: any origin");
    else if (n_origins)
        snprintf(cors_note, sizeof cors_note, "; CORS: %zu origin%s", n_origins, n_origins == 1 ? "" : "s");
    fprintf(stderr,
            "pdr serve: ready: %zu proteins, model %s (%d-d), index %s, %d worker threads; limits: body %zu bytes, "
            "%zu queries, %zu residues per sequence, k <= %d%s%s%s\n",
            pdr_db_count(db), pdr_encoder_name(enc), pdr_encoder_dim(enc), pdr_db_index_spec(db), hopts.threads,
            limits.max_body_bytes, limits.max_queries, limits.max_length, limits.max_k,
            token ? "; bearer token required" : "",
            !host_checked      ? "; any Host"
            : hopts.allow_host ? "; Host: localhost, IP addresses and --allow-host's names"
                               : "; Host: localhost and IP addresses",
            cors_note);

    notify_serving(db, NULL);
    serving = 1;
    wait_for_stop_signal(api, &lo, &db);
    pdr_notify_send(&notify_target, "STOPPING=1\nSTATUS=stopping: finishing the requests in flight");
    fprintf(stderr, "pdr serve: %s: no new connections; finishing %d requests in flight\n", stop_signal_name(),
            pdr_http_in_flight(http));
    rc = EXIT_OK;
done:
    if (http) {
        int refused = pdr_http_stop(http, STOP_GRACE_MS);
        if (refused)
            fprintf(stderr, "pdr serve: %d queued requests answered 503 shutting_down after the %d s grace period\n",
                    refused, STOP_GRACE_MS / 1000);
    }
    restore_stop_handler();
    pdr_api_free(api);
    pdr_encoder_free(enc);
    pdr_db_free(db);
    pdr_buf_free(&allow);
    pdr_buf_free(&cors);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    if (rc == EXIT_OK)
        fprintf(stderr, "pdr serve: stopped\n");
    return rc;
}
