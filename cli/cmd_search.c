/* cmd_search.c: `pdr makedb`, `pdr search` and `pdr easy-search`.
 * The path of a query: FASTA reader -> encoder (threads) -> pdr_db_search (one batched FAISS
 * call per chunk of queries) -> pdr_report (TSV/JSON) -> output file. */
#define _XOPEN_SOURCE 700 /* nftw */
#define _GNU_SOURCE       /* _Fork (async-signal-safe) */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pdr_batch.h"
#include "pdr_db.h"
#include "pdr_db_expand.h"
#include "pdr_fasta.h"
#include "pdr_file.h"
#include "pdr_report.h"

#define QUERY_CHUNK 1024
/* bytes of candidate hits (and traced alignments) held per chunk of queries: with many candidates
 * per query (--align all on a large database) a chunk holds fewer queries */
#define CHUNK_HITS_BUDGET ((size_t)512 << 20)
/* --align all: every database protein is a candidate (pdr_db_candidates clamps to the size) */
#define ALIGN_ALL INT_MAX
/* longest OUT path, with its ".tmp" */
#define OUT_PATH_MAX 4096
/* --min-score: a score is a cosine (in [-1, 1]) minus the mean of two background levels (each a
 * cosine), so it lies in [-2, 2]; a segment score is a weighted mean of two such scores */
#define SCORE_MIN (-2.0)
#define SCORE_MAX 2.0

typedef struct search_opts {
    int k;
    float min_score;
    double max_evalue;
    int json;
    int blast6; /* --format blast6: every kept hit aligned and traced */
    int strict;
    int threads;
    size_t max_length;
    int nprobe;
    int align;         /* candidates aligned per query; -1: PDR_DB_ALIGN_DEFAULT if the database can */
    int no_expand;     /* --no-expand: do not use the database's query expansion */
    char db_name[256]; /* "database" of --format json: DBDIR's name (pdr_db_name), or easy-search's TARGET's */
} search_opts;

/* ---------------------------------------------------------------- makedb */

typedef struct expand_progress {
    const char *verb;
    int tty;
    time_t start;
} expand_progress;

static void on_expand_progress(void *arg, size_t done, size_t total)
{
    expand_progress *p = arg;
    if (p->tty && done < total) {
        fprintf(stderr, "\r\033[Kpdr %s: expanding: %zu of %zu proteins", p->verb, done, total);
        fflush(stderr);
    } else if (done == total) {
        fprintf(stderr, "%spdr %s: expanded %zu proteins in %.0f s\n", p->tty ? "\r\033[K" : "", p->verb, total,
                difftime(time(NULL), p->start));
    }
}

/* Embed fasta into dbdir, index, calibrate (and expand); opt_stats (may be NULL) gets the
 * embedding's counts. */
static int make_db(const char *verb, const char *fasta, const char *dbdir, const pdr_encoder *enc, pdr_bulk_opts *bopts,
                   const char *index_spec, int segments, int expand, pdr_bulk_stats *opt_stats)
{
    pdr_err err;
    pdr_err_clear(&err);
    if (expand && (segments || !pdr_encoder_background(enc))) {
        cli_error(verb, "--expand: %s",
                  segments ? "not available for a segment database (--segments) yet"
                           : "the model has no background sample to weigh neighbours with");
        return EXIT_USAGE;
    }
    int window = 0, stride = 0;
    const pdr_background *seg_bg = segments ? pdr_encoder_segment_background(enc, &window, &stride) : NULL;
    if (segments && !seg_bg) {
        cli_error(verb, "--segments: model %s has no background of segment windows (train/background.py adds one)",
                  pdr_encoder_name(enc));
        return EXIT_RUNTIME;
    }
    if (segments) { /* segments cut as the model's segment background was */
        bopts->segments = 1;
        bopts->window = window;
        bopts->stride = stride;
    }
    /* a segment database scores every protein and segment (pdr_segdb.h): an approximate index
     * would be trained for nothing (about a minute per 150,000 proteins) */
    if (segments && index_spec && strcmp(index_spec, "Flat") != 0) {
        cli_error(verb, "--index %s: a segment database (--segments) searches exhaustively; leave --index out",
                  index_spec);
        return EXIT_USAGE;
    }
    if (segments)
        index_spec = "Flat";
    if (pdr_db_check_index_spec(index_spec, pdr_encoder_dim(enc), &err)) {
        cli_error(verb, "--index: %s", err.msg);
        return EXIT_USAGE;
    }
    /* refuses, before anything in an existing DBDIR is changed, a rerun that could not finish
     * (another FASTA, other options); then removes the calibration, which is written last. A
     * stream is copied into DBDIR first (spool), and the database made from the copy. */
    pdr_lock *lock = NULL;
    char spool[4200];
    if (pdr_db_target_is_stream(fasta))
        fprintf(stderr, "pdr %s: copying the targets from %s into %s first (a stream is read twice)\n", verb,
                strcmp(fasta, "-") == 0 ? "stdin" : fasta, dbdir);
    if (pdr_db_make_prepare(enc, fasta, dbdir, bopts, expand, &lock, spool, sizeof spool, &err)) {
        cli_error(verb, "%s", err.msg);
        return EXIT_RUNTIME;
    }
    if (spool[0])
        fasta = spool;
    bopts->rerun_checked = 1; /* pdr_db_make_prepare compared the stored proteins with fasta */
    char store[4096];
    snprintf(store, sizeof store, "%s/%s", dbdir, PDR_DB_STORE);
    pdr_bulk_stats stats;
    pdr_db_index_report rep;
    expand_progress xp = {verb, isatty(STDERR_FILENO), time(NULL)};
    int failed = pdr_bulk_embed(enc, fasta, store, bopts, &stats, &err);
    if (!failed) /* the steps below take about a minute per 150,000 proteins, without a progress line */
        fprintf(stderr, "pdr %s: building the index, background levels, sequences and calibration%s of %zu proteins\n",
                verb, expand ? ", then the expansion," : "", stats.n_total);
    failed = failed || pdr_db_build_index(dbdir, index_spec, bopts->threads, &rep, &err) ||
             pdr_db_write_levels(dbdir, pdr_encoder_background(enc), seg_bg, window, stride, &err) ||
             pdr_db_write_sequences(dbdir, fasta, bopts->max_length, &err) ||
             pdr_db_calibrate(dbdir, enc, bopts->threads, segments, &err) ||
             (expand &&
              (pdr_db_write_expansion(dbdir, index_spec, pdr_encoder_background(enc), on_expand_progress, &xp, &err) ||
               pdr_db_calibrate_expanded(dbdir, enc, bopts->threads, &err) || pdr_db_expansion_end(dbdir, &err)));
    pdr_lock_release(lock, 1);
    if (spool[0])
        unlink(spool);
    if (failed) {
        cli_error(verb, "%s", err.msg);
        return EXIT_RUNTIME;
    }
    if (opt_stats)
        *opt_stats = stats;
    if (rep.nprobe > 0) {
        fprintf(stderr, "pdr %s: index %s, nprobe %d: recall@10 %.3f against exact search (%zu sampled proteins)\n",
                verb, rep.spec, rep.nprobe, rep.recall_at_10, rep.n_sampled);
        if (rep.recall_at_10 < PDR_DB_RECALL_TARGET)
            fprintf(stderr,
                    "pdr %s: warning: recall@10 stays below the %.2f target at the widest search tried: this "
                    "index loses hits (a Flat or SQ8 index keeps more)\n",
                    verb, PDR_DB_RECALL_TARGET);
    }
    return EXIT_OK;
}

static const char makedb_usage[] =
    "usage: pdr makedb TARGET.fasta[.gz] DBDIR [options]\n\n"
    "Embeds TARGET into DBDIR/embeddings.h5 (resumable, skips ids already there), builds the\n"
    "FAISS index DBDIR/index.faiss and fits DBDIR/calibration.txt (E-values).\n\n"
    "options:\n"
    "      --index SPEC        FAISS factory string: Flat (exact; default below 100,000 proteins),\n"
    "                          IVF<n>,SQ8 (default above; nprobe tuned to recall@10 >= 0.95),\n"
    "                          HNSW32, IVF<n>,PQ<m>, ...\n"
    "  -t, --threads N         worker threads (default: all cores)\n"
    "      --batch-residues R  residues per embedding batch (default 2000000)\n"
    "      --fp16              store embeddings as float16\n"
    "      --strict            stop at the first invalid record\n"
    "      --max-length AA     reject sequences longer than AA residues (default 100000; 0 = no limit)\n"
    "      --segments          also score segments (windows) for local homology: searches of this\n"
    "                          database are then exhaustive and hold all vectors in memory\n"
    "                          (README.md, Local homology)\n"
    "      --expand            query expansion: every protein, and every query at search time, is\n"
    "                          moved towards its 3 best hits, as a profile search would (README.md,\n"
    "                          Query expansion): more sensitive to remote homologs of whole\n"
    "                          proteins, less to shared domains; two index searches per query\n"
    "  -m, --model M           model file or 'kmer3' (default: see pdr version)\n"
    "  -h, --help              this help\n";

enum {
    OPT_INDEX = 256,
    OPT_BATCH,
    OPT_FP16,
    OPT_STRICT,
    OPT_MAXLEN,
    OPT_MINSCORE,
    OPT_EVALUE,
    OPT_FORMAT,
    OPT_NPROBE,
    OPT_TMPDIR,
    OPT_SEGMENTS,
    OPT_ALIGN,
    OPT_EXPAND,
    OPT_NO_EXPAND
};

int cmd_makedb(int argc, char **argv)
{
    static const struct option longopts[] = {{"index", required_argument, 0, OPT_INDEX},
                                             {"threads", required_argument, 0, 't'},
                                             {"model", required_argument, 0, 'm'},
                                             {"batch-residues", required_argument, 0, OPT_BATCH},
                                             {"fp16", no_argument, 0, OPT_FP16},
                                             {"strict", no_argument, 0, OPT_STRICT},
                                             {"max-length", required_argument, 0, OPT_MAXLEN},
                                             {"segments", no_argument, 0, OPT_SEGMENTS},
                                             {"expand", no_argument, 0, OPT_EXPAND},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *model = NULL, *spec = NULL;
    int threads = 0, c, segments = 0, expand = 0;
    long v;
    pdr_bulk_opts bopts;
    pdr_bulk_opts_default(&bopts);
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:m:h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_INDEX: spec = optarg; break;
        case 'm': model = optarg; break;
        case 't':
            if ((v = cli_parse_long("makedb", "--threads", optarg, 1, 1024)) < 0)
                return EXIT_USAGE;
            threads = (int)v;
            break;
        case OPT_BATCH:
            if ((v = cli_parse_long("makedb", "--batch-residues", optarg, 1, 1L << 40)) < 0)
                return EXIT_USAGE;
            bopts.batch_residues = (size_t)v;
            break;
        case OPT_FP16: bopts.fp16 = 1; break;
        case OPT_STRICT: bopts.strict = 1; break;
        case OPT_SEGMENTS: segments = 1; break;
        case OPT_EXPAND: expand = 1; break;
        case OPT_MAXLEN:
            if ((v = cli_parse_long("makedb", "--max-length", optarg, 0, 1L << 40)) < 0)
                return EXIT_USAGE;
            bopts.max_length = (size_t)v;
            break;
        case 'h': fputs(makedb_usage, stdout); return EXIT_OK;
        default: fputs(makedb_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind + 2 != argc) {
        cli_error("makedb", "expected TARGET.fasta and DBDIR");
        fputs(makedb_usage, stderr);
        return EXIT_USAGE;
    }
    bopts.threads = cli_set_threads(threads);
    pdr_encoder *enc = cli_open_model("makedb", model);
    if (!enc)
        return EXIT_RUNTIME;
    cli_bulk_callbacks(&bopts, "makedb");
    int rc = make_db("makedb", argv[optind], argv[optind + 1], enc, &bopts, spec, segments, expand, NULL);
    pdr_encoder_free(enc);
    if (rc == EXIT_OK)
        fprintf(stderr, "pdr makedb: database ready in %s\n", argv[optind + 1]);
    return rc;
}

/* ---------------------------------------------------------------- search */

typedef struct query_chunk {
    size_t n;
    char *ids[QUERY_CHUNK];
    char *seqs[QUERY_CHUNK];
    int32_t lengths[QUERY_CHUNK];
} query_chunk;

static void chunk_clear(query_chunk *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->ids[i]);
        free(q->seqs[i]);
    }
    q->n = 0;
}

/* Embed the chunk's queries into qvec and search, or, when they are the database's own rows
 * first_row.. (store_rows: easy-search all-vs-all), search with their stored vectors (and
 * segments); format the hits. */
static int search_chunk(const pdr_db *db, const pdr_encoder *enc, pdr_encoder_ws **ws, const search_opts *so,
                        query_chunk *q, int store_rows, size_t first_row, float *qvec, pdr_hit *hits,
                        pdr_alignment *alns, size_t *counts, pdr_buf *out, size_t *n_written, pdr_err *err)
{
    pdr_batch_job job = {.n = q->n, .seqs = q->seqs, .lengths = q->lengths, .ids = q->ids, .emb = qvec};
    pdr_query_segments qseg[QUERY_CHUNK];
    int w = 0, s = 0;
    pdr_db_queries qs = {.n = q->n,
                         .vec = qvec,
                         .bg = pdr_encoder_background(enc),
                         .seg_bg = pdr_encoder_segment_background(enc, &w, &s),
                         .seg = pdr_db_has_segments(db) ? qseg : NULL,
                         .threads = so->threads,
                         .no_expand = so->no_expand};
    for (size_t i = 0; store_rows && qs.seg && i < q->n; i++)
        qseg[i] = pdr_db_row_segments(db, (int64_t)(first_row + i));
    size_t kc = pdr_db_candidates(db, so->k, so->align);
    pdr_db_params p = {.k = so->k,
                       .n_align = so->align,
                       .min_score = so->min_score,
                       .max_evalue = so->max_evalue,
                       .alns = alns,
                       .no_expand = so->no_expand};
    int rc;
    if (!store_rows)
        rc = pdr_db_embed_and_search(db, enc, ws, so->threads, &job, &p, hits, counts, err);
    else
        rc = pdr_db_search_aligned(db, &qs, NULL, NULL, first_row, &p, hits, counts, err);
    for (size_t i = 0; !rc && i < q->n; i++) {
        const pdr_hit *h = hits + i * kc;
        if (so->blast6) {
            pdr_report_blast6(out, db, q->ids[i], h, alns + i * kc, counts[i]);
        } else if (so->json) {
            if (*n_written)
                pdr_buf_puts(out, ",\n");
            rc = pdr_report_json_query(out, db, q->ids[i], (size_t)q->lengths[i], h, counts[i], err);
        } else {
            pdr_report_tsv(out, db, q->ids[i], (size_t)q->lengths[i], h, counts[i]);
        }
        (*n_written)++;
    }
    return rc;
}

static int write_buf(FILE *f, pdr_buf *b, const char *path, pdr_err *err)
{
    if (pdr_buf_failed(b))
        return pdr_fail(err, PDR_ENOMEM, "out of memory formatting results");
    if (b->len && fwrite(b->data, 1, b->len, f) != b->len)
        return pdr_fail(err, PDR_EIO, "%s: write failed: %s", path, strerror(errno));
    pdr_buf_reset(b);
    return PDR_OK;
}

/* Read the next chunk of queries from an embedding store (ids, lengths and vectors). */
static int chunk_from_store(pdr_store *st, size_t *pos, size_t cap, query_chunk *q, float *qvec, int *eof, pdr_err *err)
{
    size_t n = pdr_store_count(st), m = n - *pos < cap ? n - *pos : cap;
    int rc = m ? pdr_store_read_ids(st, *pos, m, q->ids, q->lengths, err) : PDR_OK;
    if (!rc && m) {
        memset(q->seqs, 0, m * sizeof(char *));
        q->n = m;
        rc = pdr_store_read(st, *pos, m, qvec, err);
    }
    *pos += m;
    *eof = *pos >= n;
    return rc;
}

/* ---------------------------------------------------------------- output */

/* Where the results go. A new OUT, or an existing regular file, is written to OUT.tmp and
 * renamed onto OUT when complete, so a failed or killed search never leaves a partial OUT. Any
 * other existing OUT (a FIFO, a device such as /dev/null, /dev/stdout or a shell's /dev/fd/N,
 * or a symlink, whatever it points to) is opened and written in place: a rename would replace
 * it with a regular file (as root even /dev/null), and through a symlink it is the target, not
 * the link, that the caller means to write (/dev/stdout is one). A directory is refused. */
typedef struct search_out {
    const char *path;       /* OUT; "-" = stdout */
    char tmp[OUT_PATH_MAX]; /* the temporary file while it exists, else "" */
    FILE *f;
} search_out;

/* Refuse an OUT that cannot be written before any work (easy-search embeds the whole target
 * set first): a directory, or a new OUT in a directory that does not exist (checked again on
 * open). */
static int out_check(const char *path, pdr_err *err)
{
    struct stat st;
    if (strcmp(path, "-") == 0)
        return PDR_OK;
    if (strlen(path) + sizeof ".tmp" > OUT_PATH_MAX)
        return pdr_fail(err, PDR_EINPUT, "%s: path too long", path);
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return pdr_fail(err, PDR_EINPUT, "%s: is a directory (OUT must be a file, '-' or a FIFO)", path);
        return PDR_OK;
    }
    char dir[OUT_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return PDR_OK; /* the working directory */
    slash[slash == dir ? 1 : 0] = '\0';
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return pdr_fail(err, PDR_EINPUT, "%s: cannot write: directory %s does not exist", path, dir);
    return PDR_OK;
}

/* Whether OUT is written through a temporary file: it does not exist, or is a regular file
 * (lstat: not a symlink). */
static int out_renames(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT;
    return S_ISREG(st.st_mode);
}

/* "-", or a name of this process's stdout: written as stdout, not opened again (an open would
 * truncate the file a shell redirected stdout to, losing what was written there before). */
static int is_stdout(const char *path)
{
    return strcmp(path, "-") == 0 || strcmp(path, "/dev/stdout") == 0 || strcmp(path, "/dev/fd/1") == 0 ||
           strcmp(path, "/proc/self/fd/1") == 0;
}

static int out_open(search_out *o, const char *path, pdr_err *err)
{
    o->path = path;
    o->tmp[0] = '\0';
    o->f = NULL;
    int rc = out_check(path, err);
    if (rc)
        return rc;
    if (is_stdout(path)) {
        o->f = stdout;
        return PDR_OK;
    }
    if (!out_renames(path)) {
        if (!(o->f = fopen(path, "w")))
            return pdr_fail(err, PDR_EIO, "%s: cannot write: %s", path, strerror(errno));
        return PDR_OK;
    }
    /* OUT.tmp is locked while it is written (flock, dropped by the kernel when this process
     * ends): a second search into the same OUT is refused rather than writing into the same
     * file, whose rename one of the two would then report as its own complete output */
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp", path);
    int fd = open(o->tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        rc = pdr_fail(err, PDR_EIO, "%s: cannot write: %s", o->tmp, strerror(errno));
        o->tmp[0] = '\0';
        return rc;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        close(fd);
        o->tmp[0] = '\0'; /* the other run's: left alone */
        return pdr_fail(err, PDR_EINPUT,
                        "%s: another pdr run is writing it (its %s.tmp is locked); wait for that run to end, or "
                        "write elsewhere",
                        path, path);
    }
    if (ftruncate(fd, 0) != 0 || !(o->f = fdopen(fd, "w"))) {
        rc = pdr_fail(err, PDR_EIO, "%s: cannot write: %s", o->tmp, strerror(errno));
        close(fd);
        unlink(o->tmp);
        o->tmp[0] = '\0';
    }
    return rc;
}

static const char *out_name(const search_out *o) { return o->f == stdout ? "stdout" : o->path; }

/* Flush and close; rename the temporary file onto OUT. */
static int out_commit(search_out *o, pdr_err *err)
{
    if (fflush(o->f) != 0)
        return pdr_fail(err, PDR_EIO, "%s: write failed: %s", out_name(o), strerror(errno));
    /* a write that failed earlier (disk full for a while) must not pass as a complete OUT */
    if (ferror(o->f))
        return pdr_fail(err, PDR_EIO, "%s: write failed earlier in the run", out_name(o));
    if (o->f == stdout)
        return PDR_OK;
    /* on disk before the rename (a crash must not leave an empty OUT under its name) */
    if (o->tmp[0] && fsync(fileno(o->f)) != 0)
        return pdr_fail(err, PDR_EIO, "%s: write failed: %s", o->tmp, strerror(errno));
    /* renamed while OUT.tmp is still open, so still locked: closed first, a second run could
     * take the lock and truncate the finished file before the rename */
    if (o->tmp[0] && rename(o->tmp, o->path) != 0)
        return pdr_fail(err, PDR_EIO, "%s: cannot write: %s", o->path, strerror(errno));
    int renamed = o->tmp[0] != '\0';
    o->tmp[0] = '\0';
    if (renamed && pdr_file_sync_dir(o->path, err)) {
        fclose(o->f);
        o->f = NULL;
        return PDR_EIO;
    }
    int bad = fclose(o->f) != 0;
    o->f = NULL;
    if (bad)
        return pdr_fail(err, PDR_EIO, "%s: write failed: %s", o->path, strerror(errno));
    return PDR_OK;
}

/* After a failure (a no-op after out_commit): close, and remove the temporary file. */
static void out_abort(search_out *o)
{
    if (o->f && o->f != stdout)
        fclose(o->f);
    o->f = NULL;
    if (o->tmp[0])
        unlink(o->tmp);
    o->tmp[0] = '\0';
}

/* ---------------------------------------------------------------- search loop */

/* Search every record of query_path; write to out_path ("-" = stdout; see search_out for how
 * files are written). When query_store is given (easy-search with the same file as query and
 * target, every record of it stored), the queries' vectors come from that store instead of
 * being embedded a second time. */
static int run_search(const char *verb, const pdr_db *db, const pdr_encoder *enc, const char *query_path,
                      const char *query_store, const char *out_path, const search_opts *so)
{
    pdr_err err;
    pdr_err_clear(&err);
    int dim = pdr_encoder_dim(enc), rc = 0;
    size_t n_written = 0, n_invalid = 0, n_queries = 0;
    pdr_fasta *fa = NULL;
    pdr_store *qst = NULL;
    size_t store_pos = 0;
    search_out dest = {.path = out_path};
    pdr_buf out;
    pdr_buf_init(&out);
    query_chunk *q = calloc(1, sizeof *q);
    float *qvec = malloc((size_t)QUERY_CHUNK * dim * sizeof(float));
    size_t kc = pdr_db_candidates(db, so->k, so->align);
    size_t per_query = kc * (sizeof(pdr_hit) + (so->blast6 ? sizeof(pdr_alignment) : 0));
    size_t cap = CHUNK_HITS_BUDGET / per_query;
    cap = cap < 1 ? 1 : cap > QUERY_CHUNK ? QUERY_CHUNK : cap;
    size_t n_cand = cap * kc;
    pdr_hit *hits = malloc(n_cand * sizeof(pdr_hit));
    pdr_alignment *alns = so->blast6 ? malloc(n_cand * sizeof(pdr_alignment)) : NULL;
    size_t *counts = malloc(QUERY_CHUNK * sizeof(size_t));
    pdr_encoder_ws **ws = calloc((size_t)so->threads, sizeof(pdr_encoder_ws *));
    if (!q || !qvec || !hits || (so->blast6 && !alns) || !counts || !ws) {
        rc = pdr_fail(&err, PDR_ENOMEM, "out of memory");
        goto done;
    }
    for (int t = 0; t < so->threads; t++)
        if ((rc = pdr_encoder_ws_create(enc, &ws[t], &err)))
            goto done;
    pdr_fasta_opts fopts = {.max_length = so->max_length, .check_duplicates = 0};
    if (query_store ? (rc = pdr_store_open(query_store, &qst, &err))
                    : (rc = pdr_fasta_open(query_path, &fopts, &fa, &err)))
        goto done;
    if ((rc = out_open(&dest, out_path, &err)))
        goto done;
    if (so->json) {
        pdr_buf_puts(&out, "{\"model\":");
        pdr_buf_json_str(&out, pdr_encoder_name(enc));
        pdr_buf_puts(&out, ",\"database\":");
        pdr_buf_json_str(&out, so->db_name);
        pdr_buf_puts(&out, ",\"results\":[\n");
    }
    for (int eof = 0; !eof;) {
        if (qst) {
            if ((rc = chunk_from_store(qst, &store_pos, cap, q, qvec, &eof, &err)))
                goto done;
            n_queries += q->n;
        }
        while (!qst && q->n < cap) {
            pdr_seq s;
            pdr_err rerr;
            pdr_err_clear(&rerr);
            int r = pdr_fasta_read(fa, &s, &rerr);
            if (r == PDR_EOF) {
                eof = 1;
                break;
            }
            if (r == PDR_EINPUT || r == PDR_ELIMIT) {
                n_invalid++;
                if (so->strict) {
                    rc = pdr_fail(&err, r, "%s (--strict)", rerr.msg);
                    goto done;
                }
                fprintf(stderr, "pdr %s: skipped query: %s\n", verb, rerr.msg);
                continue;
            }
            if (r) {
                rc = pdr_fail(&err, r, "%s", rerr.msg);
                goto done;
            }
            q->ids[q->n] = strdup(s.id);
            q->seqs[q->n] = strdup(s.seq);
            q->lengths[q->n] = (int32_t)s.len;
            if (!q->ids[q->n] || !q->seqs[q->n]) {
                free(q->ids[q->n]);
                free(q->seqs[q->n]);
                rc = pdr_fail(&err, PDR_ENOMEM, "out of memory reading queries");
                goto done;
            }
            q->n++;
            n_queries++;
        }
        if (q->n && (rc = search_chunk(db, enc, ws, so, q, qst != NULL, qst ? store_pos - q->n : 0, qvec, hits, alns,
                                       counts, &out, &n_written, &err)))
            goto done;
        chunk_clear(q);
        /* nothing is written before the first valid query: a run without one writes nothing
         * (not an empty JSON document on stdout) and fails */
        if (n_queries && (rc = write_buf(dest.f, &out, out_name(&dest), &err)))
            goto done;
    }
    if (n_queries == 0) {
        rc = pdr_fail(&err, PDR_EINPUT, "%s: no valid query sequences (%zu invalid)", query_path, n_invalid);
        goto done;
    }
    if (so->json)
        pdr_buf_puts(&out, "\n]}\n");
    if ((rc = write_buf(dest.f, &out, out_name(&dest), &err)))
        goto done;
    if ((rc = out_commit(&dest, &err)))
        goto done;
    fprintf(stderr, "pdr %s: %zu queries searched against %zu proteins%s\n", verb, n_queries, pdr_db_count(db),
            n_invalid ? " (some queries skipped as invalid, see above)" : "");
done:
    out_abort(&dest);
    if (rc)
        cli_error(verb, "%s", err.msg);
    if (q)
        chunk_clear(q);
    free(q);
    free(qvec);
    free(hits);
    free(alns);
    free(counts);
    if (ws)
        for (int t = 0; t < so->threads; t++)
            pdr_encoder_ws_free(ws[t]);
    free(ws);
    pdr_fasta_close(fa);
    pdr_store_free(qst);
    pdr_buf_free(&out);
    return rc ? EXIT_RUNTIME : EXIT_OK;
}

static const char search_usage[] =
    "usage: pdr search DBDIR QUERY.fasta[.gz]|- OUT.tsv|- [options]\n\n"
    "Searches every query against the database made by 'pdr makedb'. Output (TSV, no header):\n"
    "  query target score evalue rank qlen tlen cosine bits\n"
    "score = cosine similarity of the embeddings minus the mean of the two proteins' background\n"
    "levels (when the model has a background sample; else the cosine); evalue = expected number\n"
    "of non-homologous hits at least as good in a database of this size; cosine = the plain\n"
    "cosine similarity. A segment database (made with 'pdr makedb --segments') is searched\n"
    "exhaustively, and its score adds the best pair of 100-residue windows (README.md).\n"
    "Each query's best candidates are then aligned (Smith-Waterman, BLOSUM62 11/1, scores\n"
    "adjusted for the pair's residue composition): bits is the alignment's bit score ('-' when\n"
    "not aligned or nothing aligns), evalue that of the embedding and alignment evidence\n"
    "combined, and hits are sorted by it.\n"
    "OUT is written as OUT.tmp and renamed when complete; an existing FIFO, device or symlink\n"
    "(/dev/stdout, /dev/fd/N) is written in place; a directory is refused.\n\n"
    "options:\n"
    "  -k N                    hits per query (default 100)\n"
    "      --min-score S       report hits with score >= S only, S in [-2, 2] (default: all)\n"
    "  -e, --evalue E          report hits with evalue <= E only, E > 0 (default: all)\n"
    "      --format F          tsv (default), json, or blast6: BLAST's -outfmt 6 columns\n"
    "                          (qseqid sseqid pident length mismatch gapopen qstart qend sstart\n"
    "                          send evalue bitscore); blast6 aligns every reported hit (--align\n"
    "                          is raised to -k) and leaves out those where nothing aligns\n"
    "      --align N|all       align each query's N best candidates (default 50; 0 = no alignment;\n"
    "                          all = every database protein: exhaustive Smith-Waterman, the most\n"
    "                          sensitive for local homology, and the slowest)\n"
    "      --nprobe N          IVF lists (or HNSW efSearch) to visit (approximate indexes)\n"
    "  -t, --threads N         threads (default: all cores)\n"
    "      --strict            stop at the first invalid query record\n"
    "      --max-length AA     reject queries longer than AA residues (default 100000; 0 = no limit)\n"
    "      --no-expand         do not use the database's query expansion (made with 'pdr makedb\n"
    "                          --expand'): plain embedding scores\n"
    "  -m, --model M           the database's model file (default: $PDR_MODEL, else the installed\n"
    "                          share/pdr/pdr_cnn_v1.h5 beside the binary, else the source tree's\n"
    "                          data/pdr_cnn_v1.h5, else kmer3; kmer3 for a kmer3 database);\n"
    "                          another model than the database's is refused\n"
    "  -h, --help              this help\n";

static const char easy_usage[] =
    "usage: pdr easy-search QUERY.fasta TARGET.fasta OUT.tsv|- [options]\n\n"
    "Embeds TARGET into a temporary database (exact Flat index), searches QUERY against it and\n"
    "writes the hits (format as 'pdr search'), then removes the temporary database.\n\n"
    "options: as 'pdr search', plus\n"
    "      --tmp-dir DIR       where the temporary database goes (default $TMPDIR or /tmp)\n"
    "      --segments          a segment database (as 'pdr makedb --segments'): local homology\n"
    "      --expand            query expansion (as 'pdr makedb --expand')\n";

/* -e E: an E-value threshold, > 0 (0 or below would report nothing). Returns 0 or EXIT_USAGE. */
static int parse_evalue(const char *verb, const char *value, double *ret_e)
{
    int ok;
    double e = cli_parse_double(verb, "-e/--evalue", value, &ok);
    if (!ok)
        return EXIT_USAGE;
    if (!(e > 0)) {
        cli_error(verb, "-e/--evalue: an E-value threshold must be > 0, got '%s'", value);
        return EXIT_USAGE;
    }
    *ret_e = e;
    return 0;
}

/* --min-score S: within the range scores take, [SCORE_MIN, SCORE_MAX]. Returns 0 or EXIT_USAGE. */
static int parse_min_score(const char *verb, const char *value, float *ret_s)
{
    int ok;
    double v = cli_parse_double(verb, "--min-score", value, &ok);
    if (!ok)
        return EXIT_USAGE;
    if (!(v >= SCORE_MIN && v <= SCORE_MAX)) {
        cli_error(verb,
                  "--min-score: expected a number in [%g, %g] (scores are a cosine minus a background level), got '%s'",
                  SCORE_MIN, SCORE_MAX, value);
        return EXIT_USAGE;
    }
    *ret_s = (float)v;
    return 0;
}

/* Options common to search and easy-search; returns 0, or an exit code to stop with. tmpdir,
 * segments and expand are NULL for search, which rejects those options. */
static int parse_search(const char *verb, int argc, char **argv, search_opts *so, const char **model,
                        const char **tmpdir, int *threads, int *segments, int *expand, const char *usage_text)
{
    static const struct option longopts[] = {{"min-score", required_argument, 0, OPT_MINSCORE},
                                             {"evalue", required_argument, 0, 'e'},
                                             {"format", required_argument, 0, OPT_FORMAT},
                                             {"threads", required_argument, 0, 't'},
                                             {"model", required_argument, 0, 'm'},
                                             {"strict", no_argument, 0, OPT_STRICT},
                                             {"max-length", required_argument, 0, OPT_MAXLEN},
                                             {"nprobe", required_argument, 0, OPT_NPROBE},
                                             {"tmp-dir", required_argument, 0, OPT_TMPDIR},
                                             {"segments", no_argument, 0, OPT_SEGMENTS},
                                             {"align", required_argument, 0, OPT_ALIGN},
                                             {"expand", no_argument, 0, OPT_EXPAND},
                                             {"no-expand", no_argument, 0, OPT_NO_EXPAND},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    memset(so, 0, sizeof *so);
    so->k = 100;
    so->max_length = PDR_MAX_LENGTH_DEFAULT;
    so->min_score = -2.0f;
    so->max_evalue = 1e300;
    so->align = -1;
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:e:t:m:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if ((v = cli_parse_long(verb, "-k", optarg, 1, 100000)) < 0)
                return EXIT_USAGE;
            so->k = (int)v;
            break;
        case OPT_MINSCORE:
            if (parse_min_score(verb, optarg, &so->min_score))
                return EXIT_USAGE;
            break;
        case 'e':
            if (parse_evalue(verb, optarg, &so->max_evalue))
                return EXIT_USAGE;
            break;
        case OPT_FORMAT:
            if (strcmp(optarg, "tsv") != 0 && strcmp(optarg, "json") != 0 && strcmp(optarg, "blast6") != 0) {
                cli_error(verb, "--format: expected tsv, json or blast6, got '%s'", optarg);
                return EXIT_USAGE;
            }
            so->json = strcmp(optarg, "json") == 0;
            so->blast6 = strcmp(optarg, "blast6") == 0;
            break;
        case 't':
            if ((v = cli_parse_long(verb, "--threads", optarg, 1, 1024)) < 0)
                return EXIT_USAGE;
            *threads = (int)v;
            break;
        case 'm': *model = optarg; break;
        case OPT_STRICT: so->strict = 1; break;
        case OPT_MAXLEN:
            if ((v = cli_parse_long(verb, "--max-length", optarg, 0, 1L << 40)) < 0)
                return EXIT_USAGE;
            so->max_length = (size_t)v;
            break;
        case OPT_NPROBE:
            if ((v = cli_parse_long(verb, "--nprobe", optarg, 1, 1 << 20)) < 0)
                return EXIT_USAGE;
            so->nprobe = (int)v;
            break;
        case OPT_TMPDIR:
            if (!tmpdir) { /* search makes no temporary database */
                cli_error(verb, "--tmp-dir is an option of easy-search (search writes no temporary database)");
                return EXIT_USAGE;
            }
            *tmpdir = optarg;
            break;
        case OPT_ALIGN:
            if ((v = cli_parse_long_or(verb, "--align", optarg, 0, 100000, "all", ALIGN_ALL)) < 0)
                return EXIT_USAGE;
            so->align = (int)v;
            break;
        case OPT_SEGMENTS:
            if (!segments) { /* easy-search only: a searched database has them or not */
                cli_error(verb, "--segments is an option of makedb and easy-search");
                return EXIT_USAGE;
            }
            *segments = 1;
            break;
        case OPT_EXPAND:
            if (!expand) {
                cli_error(verb, "--expand is an option of makedb and easy-search (a database made with it "
                                "expands queries unless --no-expand)");
                return EXIT_USAGE;
            }
            *expand = 1;
            break;
        case OPT_NO_EXPAND: so->no_expand = 1; break;
        case 'h': fputs(usage_text, stdout); return -1;
        default: fputs(usage_text, stderr); return EXIT_USAGE;
        }
    }
    if (so->blast6 && so->align == 0) {
        cli_error(verb, "--format blast6 reports alignments: it cannot be used with --align 0");
        return EXIT_USAGE;
    }
    if (optind + 3 != argc) {
        cli_error(verb, "expected 3 arguments, got %d", argc - optind);
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    return 0;
}

static int search_db(const char *verb, const char *dbdir, const char *query, const char *query_store, const char *out,
                     search_opts *so, const char *model)
{
    pdr_err err;
    pdr_err_clear(&err);
    pdr_db *db = NULL;
    if (pdr_db_open(dbdir, &db, &err)) {
        cli_error(verb, "%s", err.msg);
        return EXIT_RUNTIME;
    }
    if (so->nprobe > 0 && pdr_db_set_nprobe(db, so->nprobe, &err)) {
        cli_error(verb, "%s", err.msg);
        pdr_db_free(db);
        return EXIT_RUNTIME;
    }
    if (so->blast6 && !pdr_db_has_sequences(db)) {
        cli_error(verb,
                  "--format blast6: %s has no sequences to align (made before alignment re-ranking, or from "
                  "stdin by an older pdr); rebuild it with 'pdr makedb'",
                  dbdir);
        pdr_db_free(db);
        return EXIT_RUNTIME;
    }
    if (so->align < 0) {
        so->align = pdr_db_has_sequences(db) ? PDR_DB_ALIGN_DEFAULT : 0;
        if (!so->align) /* say so: the E-values and ranking differ from an aligned search's */
            fprintf(stderr,
                    "pdr %s: note: %s has no sequences (no %s: made by an older pdr, or the file was "
                    "removed): searching by embedding alone, without alignment\n",
                    verb, dbdir, PDR_DB_SEQS);
    } else if (so->align > 0 && !pdr_db_has_sequences(db)) {
        char n_align[16] = "all";
        if (so->align != ALIGN_ALL)
            snprintf(n_align, sizeof n_align, "%d", so->align);
        cli_error(verb,
                  "--align %s: %s has no sequences (made before alignment re-ranking, or from stdin by an older pdr); "
                  "rebuild it with 'pdr makedb', or use --align 0",
                  n_align, dbdir);
        pdr_db_free(db);
        return EXIT_RUNTIME;
    }
    if (so->blast6 && so->align < so->k) /* every reported hit needs its alignment */
        so->align = so->k;
    /* a graph index (HNSW) must look at least as wide as the candidates it is asked for */
    size_t want = pdr_db_candidates(db, so->k, so->align);
    if (pdr_db_fit_breadth(db, want > (size_t)INT_MAX ? INT_MAX : (int)want, so->nprobe, &err)) {
        cli_error(verb, "%s", err.msg);
        pdr_db_free(db);
        return EXIT_RUNTIME;
    }
    if (!so->db_name[0])
        pdr_db_name(db, so->db_name, sizeof so->db_name);
    pdr_encoder *enc = cli_open_db_model(verb, db, model);
    int rc = enc ? run_search(verb, db, enc, query, query_store, out, so) : EXIT_RUNTIME;
    pdr_encoder_free(enc);
    pdr_db_free(db);
    return rc;
}

/* OUT refused before any work (a directory); prints the error. */
static int check_out(const char *verb, const char *out)
{
    pdr_err err;
    pdr_err_clear(&err);
    if (out_check(out, &err)) {
        cli_error(verb, "%s", err.msg);
        return -1;
    }
    return 0;
}

int cmd_search(int argc, char **argv)
{
    search_opts so;
    const char *model = NULL;
    int threads = 0;
    int rc = parse_search("search", argc, argv, &so, &model, NULL, &threads, NULL, NULL, search_usage);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    if (check_out("search", argv[optind + 2]))
        return EXIT_RUNTIME;
    so.threads = cli_set_threads(threads);
    return search_db("search", argv[optind], argv[optind + 1], NULL, argv[optind + 2], &so, model);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* All-vs-all (the same file as query and target): the database's rows can stand for the queries
 * only when they are every record of the file, in order: when makedb skipped none (a duplicate
 * id or an invalid record is skipped as a target but is a query to search, or to report as
 * skipped, as with a copy of the file). */
static int reusable_store(const char *query, const char *target, const pdr_bulk_stats *stats)
{
    struct stat qs, ts;
    int same = strcmp(query, "-") != 0 && strcmp(target, "-") != 0 && stat(query, &qs) == 0 && stat(target, &ts) == 0 &&
               qs.st_dev == ts.st_dev && qs.st_ino == ts.st_ino;
    return same && stats->n_invalid == 0 && stats->n_existing == 0 && stats->n_embedded == stats->n_records;
}

/* The temporary database of easy-search, removed by a stop signal (SIGINT, SIGTERM, SIGHUP;
 * SIGPIPE when OUT is a pipe closed early, as `| head` does) as well as at the end. A signal
 * handler can only use async-signal-safe calls: it runs `rm -rf` in a child (_Fork runs no
 * atfork handlers), waits for it, then dies of the signal as it would have. */
static char easy_tmp_dir[4096];

static void remove_easy_tmp_and_die(int sig)
{
    pid_t pid = _Fork();
    if (pid == 0) {
        char *const args[] = {"rm", "-rf", "--", easy_tmp_dir, NULL};
        char *const env[] = {NULL};
        execve("/bin/rm", args, env);
        _exit(127);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    signal(sig, SIG_DFL);
    raise(sig);
}

static void catch_stop_signals(void (*handler)(int))
{
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = handler;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

/* QUERY is refused before the targets are embedded when it is a file that does not open (a
 * stream is not tried: opening a FIFO would wait for its writer). */
static int check_query(const char *query)
{
    struct stat st;
    if (strcmp(query, "-") == 0 || (stat(query, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)))
        return 0;
    pdr_err err;
    pdr_fasta *fa = NULL;
    int rc = pdr_fasta_open(query, NULL, &fa, &err);
    pdr_fasta_close(fa);
    if (rc)
        cli_error("easy-search", "%s", err.msg);
    return rc;
}

int cmd_easy_search(int argc, char **argv)
{
    search_opts so;
    const char *model = NULL, *tmpdir = NULL;
    int threads = 0, segments = 0, expand = 0;
    int rc = parse_search("easy-search", argc, argv, &so, &model, &tmpdir, &threads, &segments, &expand, easy_usage);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    const char *query = argv[optind], *target = argv[optind + 1], *out = argv[optind + 2];
    if (strcmp(query, "-") == 0 && strcmp(target, "-") == 0) {
        cli_error("easy-search", "QUERY and TARGET cannot both be stdin");
        return EXIT_USAGE;
    }
    if (check_out("easy-search", out) || check_query(query))
        return EXIT_RUNTIME;
    so.threads = cli_set_threads(threads);
    if (!tmpdir)
        tmpdir = getenv("TMPDIR");
    if (!tmpdir || !*tmpdir)
        tmpdir = "/tmp";
    char dbdir[4096];
    snprintf(dbdir, sizeof dbdir, "%s/pdr-easy-XXXXXX", tmpdir);
    if (!mkdtemp(dbdir)) {
        cli_error("easy-search", "%s: cannot create a temporary directory: %s", dbdir, strerror(errno));
        return EXIT_RUNTIME;
    }
    snprintf(easy_tmp_dir, sizeof easy_tmp_dir, "%s", dbdir);
    catch_stop_signals(remove_easy_tmp_and_die);
    /* --format json names the database by TARGET, not by the temporary directory */
    const char *base = strcmp(target, "-") == 0 ? "stdin" : strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
    snprintf(so.db_name, sizeof so.db_name, "%s", *base ? base : target);
    pdr_encoder *enc = cli_open_model("easy-search", model);
    rc = EXIT_RUNTIME;
    if (enc) {
        pdr_bulk_opts bopts;
        pdr_bulk_opts_default(&bopts);
        bopts.threads = so.threads;
        bopts.max_length = so.max_length;
        bopts.strict = so.strict;
        cli_bulk_callbacks(&bopts, "easy-search");
        pdr_bulk_stats stats = {0};
        rc = make_db("easy-search", target, dbdir, enc, &bopts, "Flat", segments, expand, &stats);
        char store[4200];
        snprintf(store, sizeof store, "%s/%s", dbdir, PDR_DB_STORE);
        if (rc == EXIT_OK)
            rc = search_db("easy-search", dbdir, query, reusable_store(query, target, &stats) ? store : NULL, out, &so,
                           model);
        pdr_encoder_free(enc);
    }
    nftw(dbdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    catch_stop_signals(SIG_DFL);
    return rc;
}
