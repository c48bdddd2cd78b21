/* pdr_db.c: open/search a database directory; build its index and calibration. */
#include "pdr_db.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pdr_db_expand.h"
#include "pdr_index.h"

struct pdr_db {
    char *dir;
    pdr_store_meta meta;
    size_t n;
    char **ids;
    int32_t *lengths;
    pdr_index *index;
    pdr_calib calib;
    float *levels; /* [n] background levels, or NULL: cosine scores */
    char bg_id[32];
    pdr_segdb *seg;      /* segment database (--segments), or NULL */
    pdr_db_seqs *seqs;   /* the residues (DBDIR/sequences.h5), or NULL */
    pdr_db_expansion *x; /* query expansion (--expand), or NULL */
};

static void join_path(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* Recall@10 of ix against exact search, with n_q database rows sampled as queries. */
static int measure_recall(const pdr_index *ix, const float *vec, size_t n, int dim, size_t n_q, double *ret_recall,
                          pdr_err *err)
{
    const int k = 10;
    float *q = malloc(n_q * (size_t)dim * sizeof(float));
    float *s_exact = malloc(n_q * k * sizeof(float)), *s_ix = malloc(n_q * k * sizeof(float));
    int64_t *r_exact = malloc(n_q * k * sizeof(int64_t)), *r_ix = malloc(n_q * k * sizeof(int64_t));
    int rc = PDR_OK;
    if (!q || !s_exact || !s_ix || !r_exact || !r_ix) {
        rc = pdr_fail(err, PDR_ENOMEM, "recall check: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_q; i++) /* evenly spaced rows: deterministic */
        memcpy(q + i * (size_t)dim, vec + (i * (n / n_q)) * (size_t)dim, (size_t)dim * sizeof(float));
    rc = pdr_topk_bruteforce(vec, n, dim, q, n_q, k, s_exact, r_exact, err);
    if (!rc)
        rc = pdr_index_search(ix, q, n_q, k, s_ix, r_ix, err);
    if (!rc)
        *ret_recall = pdr_recall_at_k(r_exact, r_ix, n_q, k);
done:
    free(q);
    free(s_exact);
    free(s_ix);
    free(r_exact);
    free(r_ix);
    return rc;
}

int pdr_db_build_index_from(const float *vec, size_t n, int dim, const char *spec, const char *index_path,
                            pdr_db_index_report *opt_report, pdr_err *err)
{
    pdr_db_index_report local;
    pdr_db_index_report *report = opt_report ? opt_report : &local;
    char ivf[64];
    pdr_index *ix = NULL;
    memset(report, 0, sizeof *report);
    if (n == 0)
        return pdr_fail(err, PDR_EINPUT, "%s: no proteins to index", index_path);
    if (!spec || !*spec) {
        /* IVF with SQ8 codes from PDR_DB_IVF_MIN_ROWS rows: 4 sqrt(n) lists, rounded up to a power
         * of two. */
        size_t lists = 1;
        while (lists * lists < 16 * n)
            lists *= 2;
        snprintf(ivf, sizeof ivf, "IVF%zu,SQ8", lists);
        spec = n < PDR_DB_IVF_MIN_ROWS ? "Flat" : ivf;
    }
    snprintf(report->spec, sizeof report->spec, "%s", spec);
    int rc = pdr_index_build(vec, n, dim, spec, &ix, err);
    if (rc)
        return rc;
    report->recall_at_10 = 1.0;
    if (strcmp(spec, "Flat") != 0) {
        /* Smallest nprobe (or efSearch) whose recall@10 against exact search reaches the target,
         * measured on sampled database rows; it is saved with the index as its default. */
        static const int probes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
        size_t n_q = n < 1000 ? n : 1000;
        int limit = pdr_index_nprobe_limit(ix); /* an IVF's lists: visiting all of them is the most */
        report->n_sampled = n_q;
        for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
            int p = limit > 0 && probes[i] > limit ? limit : probes[i];
            if ((rc = pdr_index_set_nprobe(ix, p, err)) ||
                (rc = measure_recall(ix, vec, n, dim, n_q, &report->recall_at_10, err)))
                goto done;
            report->nprobe = p;
            if (report->recall_at_10 >= PDR_DB_RECALL_TARGET || p == limit)
                break;
        }
    }
    rc = pdr_index_save(ix, index_path, err);
done:
    pdr_index_free(ix);
    return rc;
}

int pdr_db_check_index_spec(const char *spec, int dim, pdr_err *err)
{
    if (!spec || !*spec)
        return PDR_OK;
    pdr_index *ix = NULL;
    int rc = pdr_index_create(dim, spec, &ix, err);
    pdr_index_free(ix);
    return rc;
}

int pdr_db_build_index(const char *dbdir, const char *spec, int threads, pdr_db_index_report *opt_report, pdr_err *err)
{
    (void)threads;
    char store_path[4096], index_path[4096];
    join_path(store_path, sizeof store_path, dbdir, PDR_DB_STORE);
    join_path(index_path, sizeof index_path, dbdir, PDR_DB_INDEX);
    pdr_store *st = NULL;
    float *vec = NULL;
    if (opt_report)
        memset(opt_report, 0, sizeof *opt_report);
    int rc = pdr_store_open(store_path, &st, err);
    if (rc)
        return rc;
    size_t n = pdr_store_count(st);
    int dim = pdr_store_meta_of(st)->dim;
    if (n == 0) {
        rc = pdr_fail(err, PDR_EINPUT, "%s: the store holds no proteins", store_path);
        goto done;
    }
    vec = malloc(n * (size_t)dim * sizeof(float));
    if (!vec) {
        rc = pdr_fail(err, PDR_ENOMEM, "%s: out of memory reading %zu x %d vectors", store_path, n, dim);
        goto done;
    }
    if (!(rc = pdr_store_read(st, 0, n, vec, err)))
        rc = pdr_db_build_index_from(vec, n, dim, spec, index_path, opt_report, err);
done:
    free(vec);
    pdr_store_free(st);
    return rc;
}

void pdr_db_free(pdr_db *db)
{
    if (!db)
        return;
    if (db->ids)
        pdr_store_free_ids(db->ids, db->n);
    free(db->ids);
    free(db->lengths);
    free(db->levels);
    pdr_segdb_free(db->seg);
    pdr_db_seqs_free(db->seqs);
    pdr_db_expansion_free(db->x);
    pdr_index_free(db->index);
    free(db->dir);
    free(db);
}

/* The calibration must have been fitted on the kind of score the database gives: adjusted
 * scores with background levels, cosines without (a background.h5 deleted or left over would
 * otherwise give E-values of the wrong kind of score). Older calibrations do not say. */
static int check_calib_scores(const char *dbdir, const pdr_calib *cal, int have_levels, pdr_err *err)
{
    if (cal->scores == PDR_CALIB_SCORES_ADJUSTED && !have_levels)
        return pdr_fail(err, PDR_EFORMAT,
                        "%s: the database is incomplete: %s was fitted on background-adjusted scores but %s is "
                        "missing; rerun 'pdr makedb' with the same FASTA and options to rebuild it",
                        dbdir, PDR_DB_CALIB, PDR_DB_LEVELS);
    if (cal->scores == PDR_CALIB_SCORES_COSINE && have_levels)
        return pdr_fail(err, PDR_EFORMAT,
                        "%s: the database is inconsistent: %s was fitted on cosine scores but %s (background "
                        "levels) is present; rerun 'pdr makedb' with the same FASTA and options to rebuild it",
                        dbdir, PDR_DB_CALIB, PDR_DB_LEVELS);
    return PDR_OK;
}

/* Load DBDIR/index.faiss and check it against the store. A segment database (db->seg loaded)
 * searches its own copy of the vectors, exhaustively (pdr_segdb.h), and never its index (always
 * Flat): loading it would hold every vector a second time (N x D floats, 0.5 GB for 500,000
 * proteins of 256 dims), so only the file's header is read, for the same check. */
static int open_index(pdr_db *db, pdr_err *err)
{
    char path[4096];
    size_t rows = 0;
    int dim = 0, rc;
    join_path(path, sizeof path, db->dir, PDR_DB_INDEX);
    if (db->seg)
        rc = pdr_index_read_header(path, &rows, &dim, err);
    else if (!(rc = pdr_index_load(path, &db->index, err))) {
        rows = pdr_index_count(db->index);
        dim = pdr_index_dim(db->index);
    }
    if (rc)
        return rc;
    if (rows != db->n || dim != db->meta.dim)
        return pdr_fail(err, PDR_EFORMAT,
                        "%s: index has %zu rows of dim %d but the store has %zu of dim %d; rebuild it "
                        "with 'pdr makedb'",
                        db->dir, rows, dim, db->n, db->meta.dim);
    return PDR_OK;
}

/* calibrated_expansion 0: the expansion's own calibration is not needed (makedb fits it). */
static int open_db(const char *dbdir, int calibrated_expansion, pdr_db **ret_db, pdr_err *err)
{
    *ret_db = NULL;
    char path[4096];
    pdr_db *db = calloc(1, sizeof *db);
    if (!db || !(db->dir = strdup(dbdir))) {
        free(db);
        return pdr_fail(err, PDR_ENOMEM, "database: out of memory");
    }
    int rc;
    join_path(path, sizeof path, dbdir, PDR_DB_STORE);
    if (access(path, R_OK) != 0) {
        rc = pdr_fail(err, PDR_EIO, "%s: not a pdr database (no %s: %s); make one with 'pdr makedb'", dbdir,
                      PDR_DB_STORE, strerror(errno));
        goto fail;
    }
    pdr_store *st = NULL;
    if ((rc = pdr_store_open(path, &st, err)))
        goto fail;
    db->meta = *pdr_store_meta_of(st);
    db->n = pdr_store_count(st);
    db->ids = calloc(db->n ? db->n : 1, sizeof(char *));
    db->lengths = calloc(db->n ? db->n : 1, sizeof(int32_t));
    if (!db->ids || !db->lengths)
        rc = pdr_fail(err, PDR_ENOMEM, "%s: out of memory for %zu ids", path, db->n);
    if (!rc && db->n)
        rc = pdr_store_read_ids(st, 0, db->n, db->ids, db->lengths, err);
    pdr_store_free(st);
    if (rc) {
        free(db->ids);
        db->ids = NULL;
        goto fail;
    }
    /* the calibration is written last: without it the database is incomplete, whatever else
     * is missing (a makedb that failed or was killed before the index) */
    join_path(path, sizeof path, dbdir, PDR_DB_CALIB);
    if (access(path, F_OK) != 0) {
        rc = pdr_fail(err, PDR_EIO,
                      "%s: the database is incomplete (no %s: pdr makedb was interrupted or failed?); rerun 'pdr "
                      "makedb'",
                      dbdir, PDR_DB_CALIB);
        goto fail;
    }
    if ((rc = pdr_calib_load(path, &db->calib, err)))
        goto fail;
    if ((rc = pdr_db_load_levels(dbdir, db->n, &db->levels, db->bg_id, sizeof db->bg_id, err)) ||
        (rc = check_calib_scores(dbdir, &db->calib, db->levels != NULL, err)))
        goto fail;
    if (db->levels && (rc = pdr_segdb_load(dbdir, db->n, db->meta.dim, &db->seg, err)))
        goto fail;
    if ((rc = open_index(db, err)))
        goto fail;
    if ((rc = pdr_db_seqs_open(dbdir, db->lengths, db->n, &db->seqs, err)))
        goto fail;
    if ((rc = pdr_db_expansion_open(dbdir, db->n, db->meta.dim, db->levels ? db->bg_id : "", calibrated_expansion,
                                    &db->x, err)))
        goto fail;
    *ret_db = db;
    return PDR_OK;
fail:
    pdr_db_free(db);
    return rc;
}

int pdr_db_open(const char *dbdir, pdr_db **ret_db, pdr_err *err) { return open_db(dbdir, 1, ret_db, err); }
int pdr_db_open_for_calibration(const char *dbdir, pdr_db **ret_db, pdr_err *err)
{
    return open_db(dbdir, 0, ret_db, err);
}
const pdr_db_expansion *pdr_db_expansion_of(const pdr_db *db) { return db->x; }
int pdr_db_expanded(const pdr_db *db) { return db->x != NULL; }

size_t pdr_db_count(const pdr_db *db) { return db->n; }
int pdr_db_has_sequences(const pdr_db *db) { return db->seqs != NULL; }
int pdr_db_sequence(const pdr_db *db, int64_t row, char **buf, size_t *cap, size_t *ret_len, pdr_err *err)
{
    return pdr_db_seqs_read(db->seqs, row, buf, cap, ret_len, err);
}
int pdr_db_has_descriptions(const pdr_db *db) { return pdr_db_seqs_has_descriptions(db->seqs); }
int pdr_db_description(const pdr_db *db, int64_t row, char **buf, size_t *cap, pdr_err *err)
{
    return pdr_db_seqs_description(db->seqs, row, buf, cap, err);
}
size_t pdr_db_candidates(const pdr_db *db, int k, int n_align)
{
    size_t a = (size_t)(n_align > 0 ? n_align : 0);
    if (a > db->n)
        a = db->n; /* more than the database holds would only be buffer */
    return a > (size_t)k ? a : (size_t)k;
}
int pdr_db_dim(const pdr_db *db) { return db->meta.dim; }
const pdr_store_meta *pdr_db_meta(const pdr_db *db) { return &db->meta; }
const char *pdr_db_path(const pdr_db *db) { return db->dir; }

void pdr_db_name(const pdr_db *db, char *buf, size_t size)
{
    char *abs = realpath(db->dir, NULL);
    const char *path = abs ? abs : db->dir;
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/')
        start--;
    snprintf(buf, size, "%.*s", (int)(end - start), path + start);
    free(abs);
}
/* a segment database's search is exhaustive: what a Flat index would do (its index.faiss is one) */
const char *pdr_db_index_spec(const pdr_db *db) { return db->index ? pdr_index_spec(db->index) : "Flat"; }
const char *pdr_db_id(const pdr_db *db, int64_t row) { return db->ids[row]; }
int32_t pdr_db_length(const pdr_db *db, int64_t row) { return db->lengths[row]; }

int pdr_db_set_nprobe(pdr_db *db, int nprobe, pdr_err *err)
{
    if (!db->index) /* a segment database: exhaustive, nothing to probe (as on Flat), no expansion */
        return nprobe < 1 ? pdr_fail(err, PDR_EINPUT, "nprobe %d must be at least 1", nprobe) : PDR_OK;
    int rc = pdr_index_set_nprobe(db->index, nprobe, err);
    return rc || !db->x ? rc : pdr_db_expansion_set_nprobe(db->x, nprobe, err);
}

int pdr_db_fit_breadth(pdr_db *db, int k, int nprobe, pdr_err *err)
{
    if (!pdr_index_is_graph(db->index))
        return PDR_OK;
    int breadth = nprobe > 0 ? nprobe : PDR_DB_GRAPH_BREADTH;
    return pdr_db_set_nprobe(db, breadth > k ? breadth : k, err);
}

double pdr_db_evalue(const pdr_db *db, float score) { return (double)db->n * pdr_calib_pvalue(&db->calib, score); }

int pdr_db_adjusted(const pdr_db *db) { return db->levels != NULL; }
const char *pdr_db_background_id(const pdr_db *db) { return db->levels ? db->bg_id : ""; }

static int hit_cmp(const void *pa, const void *pb)
{
    const pdr_hit *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

int pdr_db_has_segments(const pdr_db *db) { return db->seg != NULL; }

void pdr_db_segment_window(const pdr_db *db, int *window, int *stride)
{
    *window = *stride = 0;
    if (db->seg)
        pdr_segdb_window(db->seg, window, stride);
}

pdr_query_segments pdr_db_row_segments(const pdr_db *db, int64_t row) { return pdr_segdb_row_segments(db->seg, row); }

/* Keep the candidates that pass min_score and max_evalue (E-values from cal), at most k, in
 * order. */
static size_t filter_hits(const pdr_db *db, const pdr_calib *cal, const pdr_hit *cand, size_t m, int k, float min_score,
                          double max_evalue, pdr_hit *out)
{
    size_t c = 0;
    for (size_t j = 0; j < m && c < (size_t)k; j++) {
        if (cand[j].score < min_score)
            continue;
        double e = (double)db->n * pdr_calib_pvalue(cal, cand[j].score);
        if (e > max_evalue)
            continue;
        out[c] = cand[j];
        out[c++].evalue = e;
    }
    return c;
}

static int check_segment_background(const pdr_db *db, const pdr_background *seg_bg, pdr_err *err)
{
    if (!seg_bg || strcmp(pdr_background_id(seg_bg), pdr_segdb_background_id(db->seg)) != 0)
        return pdr_fail(err, PDR_EINPUT,
                        "%s: the database's segment levels (%s) do not come from this model's segment background "
                        "(%s); rebuild it with 'pdr makedb --segments'",
                        db->dir, pdr_segdb_background_id(db->seg), seg_bg ? pdr_background_id(seg_bg) : "none");
    return PDR_OK;
}

static int check_background(const pdr_db *db, const pdr_background *bg, pdr_err *err)
{
    if (db->levels && (!bg || strcmp(pdr_background_id(bg), db->bg_id) != 0))
        return pdr_fail(err, PDR_EINPUT,
                        "%s: the database's background levels (%s) do not come from this model's background (%s); "
                        "rebuild it with 'pdr makedb'",
                        db->dir, db->bg_id, bg ? pdr_background_id(bg) : "none");
    return PDR_OK;
}

int pdr_db_check_backgrounds(const pdr_db *db, const pdr_background *bg, const pdr_background *seg_bg, pdr_err *err)
{
    int rc = check_background(db, bg, err);
    return rc || !db->seg ? rc : check_segment_background(db, seg_bg, err);
}

static int search_segments(const pdr_db *db, const pdr_db_queries *qs, int k, float min_score, double max_evalue,
                           pdr_hit *hits, size_t *ret_counts, pdr_err *err)
{
    int rc = check_segment_background(db, qs->seg_bg, err);
    if (rc)
        return rc;
    if (!qs->seg)
        return pdr_fail(err, PDR_EINPUT, "%s: a segment database needs the queries' segment vectors", db->dir);
    float *qlev = malloc(qs->n * sizeof(float));
    pdr_segdb_hit *sh = malloc(qs->n * (size_t)k * sizeof *sh);
    size_t *cnt = malloc(qs->n * sizeof *cnt);
    pdr_hit *cand = malloc((size_t)k * sizeof *cand);
    if (!qlev || !sh || !cnt || !cand) {
        rc = pdr_fail(err, PDR_ENOMEM, "search: out of memory for %zu queries x %d hits", qs->n, k);
        goto done;
    }
    if ((rc = pdr_background_levels_each(qs->bg, qs->vec, qs->n, qlev, err)) ||
        (rc = pdr_segdb_search(db->seg, db->levels, qs->seg_bg, qs->vec, qlev, qs->seg, qs->n, k, qs->threads, sh, cnt,
                               err)))
        goto done;
    for (size_t q = 0; q < qs->n; q++) {
        for (size_t j = 0; j < cnt[q]; j++) {
            const pdr_segdb_hit *h = &sh[q * (size_t)k + j];
            cand[j] = (pdr_hit){h->row, h->score, h->cosine, 0.0, 0.0f};
        }
        ret_counts[q] = filter_hits(db, &db->calib, cand, cnt[q], k, min_score, max_evalue, hits + q * (size_t)k);
    }
done:
    free(qlev);
    free(sh);
    free(cnt);
    free(cand);
    return rc;
}

/* What one index search scores against: the database's own vectors, or its expanded ones. */
typedef struct search_side {
    const pdr_index *index;
    const float *levels; /* [n], or NULL: cosine scores */
    const pdr_calib *calib;
} search_side;

/* The k best of nq queries (vec; levels qlev when side->levels) against one side. */
static int search_side_k(const pdr_db *db, const search_side *side, const float *vec, const float *qlev, size_t nq,
                         int k, float min_score, double max_evalue, pdr_hit *hits, size_t *ret_counts, pdr_err *err)
{
    /* Adjusted scores re-rank a wider set of candidates by cosine. */
    size_t kc = (size_t)k;
    if (side->levels) {
        kc += (size_t)(k > PDR_DB_RERANK_EXTRA ? k : PDR_DB_RERANK_EXTRA);
        if (kc > db->n)
            kc = db->n > (size_t)k ? db->n : (size_t)k;
    }
    float *scores = malloc(nq * kc * sizeof(float));
    int64_t *rows = malloc(nq * kc * sizeof(int64_t));
    pdr_hit *cand = malloc(kc * sizeof(pdr_hit));
    int rc = PDR_OK;
    if (!scores || !rows || !cand) {
        rc = pdr_fail(err, PDR_ENOMEM, "search: out of memory for %zu queries x %zu candidates", nq, kc);
        goto done;
    }
    if ((rc = pdr_index_search(side->index, vec, nq, (int)kc, scores, rows, err)))
        goto done;
    for (size_t q = 0; q < nq; q++) {
        size_t m = 0;
        for (size_t j = 0; j < kc; j++) {
            size_t at = q * kc + j;
            if (rows[at] < 0)
                continue;
            float s = side->levels ? pdr_adjusted_score(scores[at], qlev[q], side->levels[rows[at]]) : scores[at];
            cand[m++] = (pdr_hit){rows[at], s, scores[at], 0.0, 0.0f};
        }
        if (side->levels)
            qsort(cand, m, sizeof *cand, hit_cmp);
        ret_counts[q] = filter_hits(db, side->calib, cand, m, k, min_score, max_evalue, hits + q * (size_t)k);
    }
done:
    free(scores);
    free(rows);
    free(cand);
    return rc;
}

int pdr_db_search(const pdr_db *db, const pdr_db_queries *qs, int k, float min_score, double max_evalue, pdr_hit *hits,
                  size_t *ret_counts, pdr_err *err)
{
    if (k < 1)
        return pdr_fail(err, PDR_EINPUT, "k must be >= 1 (got %d)", k);
    const pdr_background *bg = qs->bg;
    int brc = check_background(db, bg, err);
    if (brc)
        return brc;
    size_t nq = qs->n;
    if (nq == 0)
        return PDR_OK;
    if (db->seg)
        return search_segments(db, qs, k, min_score, max_evalue, hits, ret_counts, err);
    int expand = db->x && !qs->no_expand && pdr_db_expansion_calib(db->x);
    float *qlev = db->levels ? malloc(nq * sizeof(float)) : NULL;
    float *xvec = expand ? malloc(nq * (size_t)db->meta.dim * sizeof(float)) : NULL;
    int rc = PDR_OK;
    if ((db->levels && !qlev) || (expand && !xvec)) {
        rc = pdr_fail(err, PDR_ENOMEM, "search: out of memory for %zu queries", nq);
        goto done;
    }
    if (expand) {
        search_side side = {pdr_db_expansion_index(db->x), pdr_db_expansion_levels(db->x),
                            pdr_db_expansion_calib(db->x)};
        if (!(rc = pdr_db_expand_queries(db, bg, qs->vec, nq, xvec, qlev, err)))
            rc = search_side_k(db, &side, xvec, qlev, nq, k, min_score, max_evalue, hits, ret_counts, err);
    } else {
        search_side side = {db->index, db->levels, &db->calib};
        if (!db->levels || !(rc = pdr_background_levels_each(bg, qs->vec, nq, qlev, err)))
            rc = search_side_k(db, &side, qs->vec, qlev, nq, k, min_score, max_evalue, hits, ret_counts, err);
    }
done:
    free(qlev);
    free(xvec);
    return rc;
}
