/* pdr_db_calibrate.c: sample null scores for a database and fit them (see pdr_calib.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdr_batch.h"
#include "pdr_db.h"
#include "pdr_db_expand.h"

#define N_RANDOM_SEQS 200
#define N_SAMPLED_ROWS 2000
#define N_PAIR_ROWS 700
#define MIN_ROWS_FOR_PAIRS 1000

/* Robinson & Robinson (1991) amino-acid background frequencies, as BLAST uses, in the order
 * ACDEFGHIKLMNPQRSTVWY. */
static const double background[20] = {0.07805, 0.01925, 0.05364, 0.06295, 0.03856, 0.07377, 0.02199,
                                      0.05142, 0.05744, 0.09019, 0.02243, 0.04487, 0.05203, 0.04264,
                                      0.05129, 0.07120, 0.05841, 0.06441, 0.01330, 0.03216};

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) / 9007199254740992.0; }

static void random_protein(uint64_t *rng, char *seq, size_t len)
{
    static const char alphabet[] = "ACDEFGHIKLMNPQRSTVWY";
    for (size_t i = 0; i < len; i++) {
        double u = rng_unit(rng), c = 0.0;
        int a = 19;
        for (int j = 0; j < 20; j++) {
            c += background[j];
            if (u < c) {
                a = j;
                break;
            }
        }
        seq[i] = alphabet[a];
    }
    seq[len] = '\0';
}

/* Segment vectors of a set of proteins: protein i has rows first[i]..first[i+1]-1 of vec and
 * lev (the segment term of pdr_segdb.h). */
typedef struct seg_set {
    size_t *first;
    float *vec, *lev;
} seg_set;

static void seg_set_free(seg_set *s)
{
    free(s->first);
    free(s->vec);
    free(s->lev);
}

static float seg_term(const seg_set *a, size_t i, const seg_set *b, size_t j, int dim)
{
    return pdr_segdb_best_pair(a->vec + a->first[i] * (size_t)dim, a->lev + a->first[i], a->first[i + 1] - a->first[i],
                               b->vec + b->first[j] * (size_t)dim, b->lev + b->first[j], b->first[j + 1] - b->first[j],
                               dim);
}

/* The segments of the random sequences, from the batch job's per-record arrays (freed here). */
static int seg_set_from_job(pdr_batch_job *job, int dim, const pdr_background *seg_bg, seg_set *out, pdr_err *err)
{
    size_t total = 0;
    for (size_t r = 0; r < job->n; r++)
        total += job->n_seg[r];
    out->first = malloc((job->n + 1) * sizeof(size_t));
    out->vec = malloc((total ? total : 1) * (size_t)dim * sizeof(float));
    out->lev = malloc((total ? total : 1) * sizeof(float));
    int rc = PDR_OK;
    if (!out->first || !out->vec || !out->lev)
        rc = pdr_fail(err, PDR_ENOMEM, "calibration: out of memory for segments");
    size_t at = 0;
    for (size_t r = 0; r < job->n; r++) {
        if (!rc) {
            out->first[r] = at;
            memcpy(out->vec + at * (size_t)dim, job->seg_emb[r], job->n_seg[r] * (size_t)dim * sizeof(float));
            at += job->n_seg[r];
        }
        free(job->seg_emb[r]);
        free(job->seg_start[r]);
        free(job->seg_end[r]);
        job->seg_emb[r] = NULL;
        job->seg_start[r] = job->seg_end[r] = NULL;
    }
    if (rc)
        return rc;
    out->first[job->n] = at;
    return pdr_background_levels(seg_bg, out->vec, at, out->lev, err);
}

/* The segments of the sampled database rows, read from the store (grouped by protein). */
static int seg_set_from_store(pdr_store *st, const size_t *row_of, size_t n_rows, int dim, const pdr_background *seg_bg,
                              seg_set *out, pdr_err *err)
{
    size_t n = pdr_store_count(st), m = pdr_store_segment_count(st);
    int64_t *owner = malloc((m ? m : 1) * sizeof *owner);
    size_t *sfirst = calloc(n + 1, sizeof *sfirst);
    int rc = PDR_OK;
    if (!owner || !sfirst) {
        rc = pdr_fail(err, PDR_ENOMEM, "calibration: out of memory for %zu segments", m);
        goto done;
    }
    if (m && (rc = pdr_store_read_segments(st, 0, m, owner, NULL, NULL, NULL, err)))
        goto done;
    for (size_t j = 0; j < m; j++) {
        if (owner[j] < 0 || (size_t)owner[j] >= n || (j && owner[j] < owner[j - 1])) {
            rc = pdr_fail(err, PDR_EFORMAT, "calibration: store segments are not grouped by protein (segment %zu)", j);
            goto done;
        }
        sfirst[owner[j] + 1]++;
    }
    for (size_t i = 0; i < n; i++)
        sfirst[i + 1] += sfirst[i];
    size_t total = 0;
    for (size_t i = 0; i < n_rows; i++)
        total += sfirst[row_of[i] + 1] - sfirst[row_of[i]];
    out->first = malloc((n_rows + 1) * sizeof(size_t));
    out->vec = malloc((total ? total : 1) * (size_t)dim * sizeof(float));
    out->lev = malloc((total ? total : 1) * sizeof(float));
    if (!out->first || !out->vec || !out->lev) {
        rc = pdr_fail(err, PDR_ENOMEM, "calibration: out of memory for segments");
        goto done;
    }
    size_t at = 0;
    for (size_t i = 0; i < n_rows && !rc; i++) {
        size_t a = sfirst[row_of[i]], c = sfirst[row_of[i] + 1] - a;
        out->first[i] = at;
        if (c == 0)
            rc = pdr_fail(err, PDR_EFORMAT, "calibration: protein %zu has no segment vectors", row_of[i]);
        else
            rc = pdr_store_read_segments(st, a, c, NULL, NULL, NULL, out->vec + at * (size_t)dim, err);
        at += c;
    }
    out->first[n_rows] = at;
    if (!rc)
        rc = pdr_background_levels(seg_bg, out->vec, at, out->lev, err);
done:
    free(owner);
    free(sfirst);
    return rc;
}

static float dot(const float *a, const float *b, int dim)
{
    float s = 0.0f;
    for (int i = 0; i < dim; i++)
        s += a[i] * b[i];
    return s;
}

/* Replace the random vectors and the sampled rows (and their levels) by their expanded forms
 * (pdr_db_expand.h): the random sequences expanded against the database as queries are, the
 * rows' expanded vectors as makedb stored them. */
static int expand_null(const char *dbdir, const pdr_background *bg, float *rand_vec, float *rand_lev, size_t n_rand,
                       float *rows, float *row_lev, const size_t *row_of, size_t n_rows, int dim, pdr_err *err)
{
    pdr_db *db = NULL;
    float *x = malloc(n_rand * (size_t)dim * sizeof(float));
    int rc = x ? pdr_db_open_for_calibration(dbdir, &db, err) : pdr_fail(err, PDR_ENOMEM, "calibration: out of memory");
    const pdr_db_expansion *xp = rc ? NULL : pdr_db_expansion_of(db);
    if (!rc && !xp)
        rc = pdr_fail(err, PDR_EINPUT, "%s: no expansion to calibrate (pdr_db_write_expansion first)", dbdir);
    if (!rc && !(rc = pdr_db_expand_queries(db, bg, rand_vec, n_rand, x, rand_lev, err)))
        memcpy(rand_vec, x, n_rand * (size_t)dim * sizeof(float));
    for (size_t i = 0; i < n_rows && !rc; i++) {
        rc = pdr_db_expansion_read(xp, 1, (int64_t)row_of[i], rows + i * (size_t)dim, err);
        row_lev[i] = pdr_db_expansion_levels(xp)[row_of[i]];
    }
    free(x);
    pdr_db_free(db);
    return rc;
}

static int calibrate(const char *dbdir, const pdr_encoder *enc, int threads, int segments, int expanded, pdr_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dbdir, PDR_DB_STORE);
    pdr_store *st = NULL;
    if (threads < 1)
        threads = 1;
    pdr_encoder_ws *ws[threads];
    memset(ws, 0, sizeof ws);
    float *rows = NULL, *rand_vec = NULL, *scores = NULL, *rand_lev = NULL, *row_lev = NULL;
    int32_t *lens = NULL, *rand_len = NULL;
    char *seq_store = NULL, *seqs[N_RANDOM_SEQS];
    size_t *row_of = NULL;
    seg_set rand_seg = {0}, row_seg = {0};
    size_t n_seg[N_RANDOM_SEQS];
    int32_t *seg_start[N_RANDOM_SEQS], *seg_end[N_RANDOM_SEQS];
    float *seg_emb[N_RANDOM_SEQS];
    memset(seg_start, 0, sizeof seg_start);
    memset(seg_end, 0, sizeof seg_end);
    memset(seg_emb, 0, sizeof seg_emb);
    int window = 0, stride = 0;
    const pdr_background *seg_bg = segments ? pdr_encoder_segment_background(enc, &window, &stride) : NULL;
    if (segments && !seg_bg)
        return pdr_fail(err, PDR_EINPUT, "model %s has no segment background: it cannot make a segment database",
                        pdr_encoder_name(enc));
    int rc = pdr_store_open(path, &st, err);
    if (rc)
        return rc;
    size_t n = pdr_store_count(st);
    int dim = pdr_store_meta_of(st)->dim;
    if (dim != pdr_encoder_dim(enc)) {
        rc = pdr_fail(err, PDR_EINPUT, "%s: dim %d does not match model %s (dim %d)", path, dim, pdr_encoder_name(enc),
                      pdr_encoder_dim(enc));
        goto done;
    }
    if (n == 0) {
        rc = pdr_fail(err, PDR_EINPUT, "%s: the store holds no proteins", path);
        goto done;
    }
    size_t n_rows = n < N_SAMPLED_ROWS ? n : N_SAMPLED_ROWS;
    size_t n_pairs_rows = n >= MIN_ROWS_FOR_PAIRS ? N_PAIR_ROWS : 0;
    size_t n_scores = (size_t)N_RANDOM_SEQS * n_rows + n_pairs_rows * (n_pairs_rows - (n_pairs_rows > 0)) / 2;
    rows = malloc(n_rows * (size_t)dim * sizeof(float));
    lens = malloc(n_rows * sizeof(int32_t));
    rand_vec = malloc((size_t)N_RANDOM_SEQS * dim * sizeof(float));
    rand_len = malloc(N_RANDOM_SEQS * sizeof(int32_t));
    scores = malloc(n_scores * sizeof(float));
    seq_store = malloc((size_t)N_RANDOM_SEQS * 1001);
    row_of = malloc(n_rows * sizeof *row_of);
    rand_lev = calloc(N_RANDOM_SEQS, sizeof(float));
    row_lev = calloc(n_rows, sizeof(float));
    if (!rows || !lens || !rand_vec || !rand_len || !scores || !seq_store || !rand_lev || !row_lev || !row_of) {
        rc = pdr_fail(err, PDR_ENOMEM, "calibration: out of memory");
        goto done;
    }
    uint64_t rng = 0x5eed5eed1234ULL;
    for (size_t i = 0; i < n_rows && !rc; i++) {
        /* distinct rows when sampling all of a small database */
        size_t row = n_rows == n ? i : (size_t)(rng_next(&rng) % n);
        row_of[i] = row;
        char *id = NULL;
        rc = pdr_store_read_ids(st, row, 1, &id, &lens[i], err);
        if (!rc) {
            free(id);
            rc = pdr_store_read(st, row, 1, rows + i * (size_t)dim, err);
        }
    }
    if (rc)
        goto done;
    for (int t = 0; t < threads; t++)
        if ((rc = pdr_encoder_ws_create(enc, &ws[t], err)))
            goto done;
    for (int r = 0; r < N_RANDOM_SEQS; r++) {
        size_t len = (size_t)lens[rng_next(&rng) % n_rows];
        len = len < 20 ? 20 : len > 1000 ? 1000 : len;
        seqs[r] = seq_store + (size_t)r * 1001;
        random_protein(&rng, seqs[r], len);
        rand_len[r] = (int32_t)len;
    }
    pdr_batch_job job = {.n = N_RANDOM_SEQS, .seqs = seqs, .lengths = rand_len, .emb = rand_vec};
    if (segments) {
        job.window = window;
        job.stride = stride;
        job.n_seg = n_seg;
        job.seg_start = seg_start;
        job.seg_end = seg_end;
        job.seg_emb = seg_emb;
    }
    if ((rc = pdr_batch_embed(enc, ws, threads, &job, err)))
        goto done;
    if (segments && ((rc = seg_set_from_job(&job, dim, seg_bg, &rand_seg, err)) ||
                     (rc = seg_set_from_store(st, row_of, n_rows, dim, seg_bg, &row_seg, err))))
        goto done;
    /* With a background the null scores are adjusted ones, like the scores search reports
     * (the levels stay 0 without one, leaving cosines). */
    const pdr_background *bg = pdr_encoder_background(enc);
    if (bg && ((rc = pdr_background_levels(bg, rand_vec, N_RANDOM_SEQS, rand_lev, err)) ||
               (rc = pdr_background_levels(bg, rows, n_rows, row_lev, err))))
        goto done;
    if (expanded &&
        (rc = expand_null(dbdir, bg, rand_vec, rand_lev, N_RANDOM_SEQS, rows, row_lev, row_of, n_rows, dim, err)))
        goto done;
    size_t k = 0;
    for (int r = 0; r < N_RANDOM_SEQS; r++)
        for (size_t i = 0; i < n_rows; i++) {
            float s = pdr_adjusted_score(dot(rand_vec + (size_t)r * dim, rows + i * (size_t)dim, dim), rand_lev[r],
                                         row_lev[i]);
            scores[k++] = segments ? pdr_segdb_combine(s, seg_term(&rand_seg, (size_t)r, &row_seg, i, dim)) : s;
        }
    for (size_t i = 0; i < n_pairs_rows; i++)
        for (size_t j = i + 1; j < n_pairs_rows; j++) {
            float s =
                pdr_adjusted_score(dot(rows + i * (size_t)dim, rows + j * (size_t)dim, dim), row_lev[i], row_lev[j]);
            scores[k++] = segments ? pdr_segdb_combine(s, seg_term(&row_seg, i, &row_seg, j, dim)) : s;
        }
    pdr_calib cal;
    if ((rc = pdr_calib_fit(scores, k, &cal, err)))
        goto done;
    /* recorded so that a database later missing its levels is refused, not miscalibrated */
    cal.scores = bg ? PDR_CALIB_SCORES_ADJUSTED : PDR_CALIB_SCORES_COSINE;
    snprintf(path, sizeof path, "%s/%s", dbdir, expanded ? PDR_DB_CALIB_X : PDR_DB_CALIB);
    rc = pdr_calib_save(&cal, path, err);
done:
    for (int t = 0; t < threads; t++)
        pdr_encoder_ws_free(ws[t]);
    free(rows);
    free(lens);
    free(rand_vec);
    free(rand_len);
    free(scores);
    free(seq_store);
    free(rand_lev);
    free(row_lev);
    free(row_of);
    seg_set_free(&rand_seg);
    seg_set_free(&row_seg);
    for (int r = 0; r < N_RANDOM_SEQS; r++) {
        free(seg_start[r]);
        free(seg_end[r]);
        free(seg_emb[r]);
    }
    pdr_store_free(st);
    return rc;
}

int pdr_db_calibrate(const char *dbdir, const pdr_encoder *enc, int threads, int segments, pdr_err *err)
{
    return calibrate(dbdir, enc, threads, segments, 0, err);
}

int pdr_db_calibrate_expanded(const char *dbdir, const pdr_encoder *enc, int threads, pdr_err *err)
{
    if (!pdr_encoder_background(enc))
        return pdr_fail(err, PDR_EINPUT, "model %s has no background: it cannot expand", pdr_encoder_name(enc));
    return calibrate(dbdir, enc, threads, 0, 1, err);
}
