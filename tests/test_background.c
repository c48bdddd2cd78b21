/* test_background.c: background levels and background-adjusted search (embed/pdr_background.h,
 * index/pdr_db_levels.c, pdr_db_search).
 *
 * Databases here are real: an HDF5 store, a FAISS Flat index, a levels file and a calibration
 * file in a directory under $PDR_TMP, opened with pdr_db_open. Vectors come from a seeded
 * generator (PDR_SEED=N repeats a run); the shipped model file is read for its background.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "check.h"
#include "pdr_background.h"
#include "pdr_db.h"
#include "pdr_db_expand.h"
#include "pdr_index.h"

/* pdr_db_search for whole-protein queries. */
static int db_search(const pdr_db *db, const pdr_background *bg, const float *vec, size_t nq, int k, float min_score,
                     double max_evalue, pdr_hit *hits, size_t *counts, pdr_err *err)
{
    pdr_db_queries qs = {.n = nq, .vec = vec, .bg = bg};
    return pdr_db_search(db, &qs, k, min_score, max_evalue, hits, counts, err);
}

static const char *data_dir = "data";
static const char *tmp_root = "/tmp";
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double rng_uniform(void) { return ((double)(rng_next() >> 11) + 0.5) * 0x1.0p-53; }
static double rng_gauss(void) { return sqrt(-2.0 * log(rng_uniform())) * cos(2.0 * M_PI * rng_uniform()); }

static void normalize(float *v, int dim)
{
    double s = 0;
    for (int i = 0; i < dim; i++)
        s += (double)v[i] * v[i];
    float inv = (float)(1.0 / sqrt(s));
    for (int i = 0; i < dim; i++)
        v[i] *= inv;
}

/* n unit vectors around n_clusters random centres; cluster c gets noise sigma * (1 + c), so
 * some clusters are tight (high background levels for their members) and some loose. */
static float *clustered(size_t n, int dim, int n_clusters, double sigma, const float *centres)
{
    float *v = malloc(n * (size_t)dim * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        int c = (int)(rng_next() % (uint64_t)n_clusters);
        for (int j = 0; j < dim; j++)
            v[i * dim + j] = centres[(size_t)c * dim + j] + (float)(sigma * (1 + c) * rng_gauss());
        normalize(v + i * (size_t)dim, dim);
    }
    return v;
}

static float *random_centres(int n_clusters, int dim)
{
    float *c = malloc((size_t)n_clusters * dim * sizeof *c);
    for (int i = 0; i < n_clusters * dim; i++)
        c[i] = (float)rng_gauss();
    for (int i = 0; i < n_clusters; i++)
        normalize(c + (size_t)i * dim, dim);
    return c;
}

static double dotd(const float *a, const float *b, int dim)
{
    double s = 0;
    for (int i = 0; i < dim; i++)
        s += (double)a[i] * b[i];
    return s;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The reference level: sort all n cosines, take index floor(n * p / 100). */
static double ref_level(const float *x, const float *bgv, size_t n, int dim, double p)
{
    double *s = malloc(n * sizeof *s);
    for (size_t i = 0; i < n; i++)
        s[i] = dotd(x, bgv + i * (size_t)dim, dim);
    qsort(s, n, sizeof *s, cmp_double);
    size_t r = (size_t)floor((double)n * p / 100.0);
    double v = s[r < n ? r : n - 1];
    free(s);
    return v;
}

TEST(levels_are_the_percentile_of_background_cosines)
{
    const int dim = 24;
    const size_t nb = 500, nx = 300; /* nx > one tile of 256 rows */
    float *centres = random_centres(8, dim);
    float *bgv = clustered(nb, dim, 8, 0.1, centres), *x = clustered(nx, dim, 8, 0.1, centres);
    static const double pcts[] = {50.0, 98.0, 99.9};
    for (size_t t = 0; t < 3; t++) {
        pdr_err err;
        pdr_background *bg = NULL;
        CHECK(pdr_background_create(bgv, nb, dim, pcts[t], &bg, &err) == PDR_OK);
        if (!bg)
            continue;
        CHECK(pdr_background_count(bg) == nb && pdr_background_dim(bg) == dim);
        CHECK(strlen(pdr_background_id(bg)) == 16);
        float *lev = malloc(nx * sizeof *lev);
        CHECK(pdr_background_levels(bg, x, nx, lev, &err) == PDR_OK);
        int bad = 0;
        double lo = 2, hi = -2;
        for (size_t i = 0; i < nx; i++) {
            double want = ref_level(x + i * dim, bgv, nb, dim, pcts[t]);
            if (fabs(want - lev[i]) > 1e-5)
                bad++;
            lo = lev[i] < lo ? lev[i] : lo;
            hi = lev[i] > hi ? lev[i] : hi;
        }
        CHECKF(bad == 0, "percentile %g: %d of %zu levels differ from the sorted reference", pcts[t], bad, nx);
        CHECKF(hi - lo > 0.05, "levels should vary across clusters (%g..%g)", lo, hi);
        free(lev);
        pdr_background_free(bg);
    }
    /* a different percentile or sample is a different background */
    pdr_err err;
    pdr_background *a = NULL, *b = NULL, *c = NULL;
    pdr_background_create(bgv, nb, dim, 98.0, &a, &err);
    pdr_background_create(bgv, nb, dim, 95.0, &b, &err);
    pdr_background_create(bgv, nb - 1, dim, 98.0, &c, &err);
    CHECK(a && b && c && strcmp(pdr_background_id(a), pdr_background_id(b)) != 0 &&
          strcmp(pdr_background_id(a), pdr_background_id(c)) != 0);
    pdr_background_free(a);
    pdr_background_free(b);
    pdr_background_free(c);
    free(centres);
    free(bgv);
    free(x);
}

TEST(create_rejects_bad_arguments)
{
    float v[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    pdr_err err;
    pdr_background *bg = (pdr_background *)1;
    CHECK(pdr_background_create(v, 2, 4, 0.0, &bg, &err) == PDR_EINPUT && bg == NULL);
    CHECK(pdr_background_create(v, 2, 4, 100.0, &bg, &err) == PDR_EINPUT);
    CHECK(pdr_background_create(v, 2, 4, NAN, &bg, &err) == PDR_EINPUT);
    CHECK(pdr_background_create(v, 0, 4, 98.0, &bg, &err) == PDR_EINPUT);
    CHECKF(pdr_background_create(v, 2, 4, 98.0, &bg, &err) == PDR_EINPUT && strstr(err.msg, "vector 1"),
           "a zero vector is named: %s", err.msg);
    v[4] = NAN;
    CHECK(pdr_background_create(v, 2, 4, 98.0, &bg, &err) == PDR_EINPUT);
}

/* A copy of cnn_tiny.h5 (no background) with a /background of the given shape and an optional
 * background_percentile attribute. */
static void tiny_with_background(const char *path, hsize_t rows, hsize_t cols, double pct, int with_pct, float fill)
{
    char src[4096], cmd[8300];
    snprintf(src, sizeof src, "%s/test/cnn_tiny.h5", data_dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, path);
    if (system(cmd) != 0)
        return;
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t dims[2] = {rows, cols};
    hid_t s = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(f, "background", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    float *v = malloc(rows * cols * sizeof *v);
    for (size_t i = 0; i < rows * cols; i++)
        v[i] = i % (cols + 1) == 0 ? 1.0f : fill;
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    free(v);
    H5Dclose(d);
    H5Sclose(s);
    if (with_pct) {
        hid_t as = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, "background_percentile", H5T_IEEE_F64LE, as, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_DOUBLE, &pct);
        H5Aclose(a);
        H5Sclose(as);
    }
    H5Fclose(f);
}

TEST(model_files_carry_or_lack_a_background)
{
    char path[4096];
    pdr_err err;
    pdr_background *bg = NULL;
    snprintf(path, sizeof path, "%s/pdr_cnn_v1.h5", data_dir);
    CHECKF(pdr_background_load(path, 256, &bg, &err) == PDR_OK && bg, "shipped model: %s", err.msg);
    if (bg) {
        CHECK(pdr_background_count(bg) == 4096 && pdr_background_percentile(bg) == 98.0);
        pdr_background_free(bg);
        bg = NULL;
    }
    CHECK(pdr_background_load(path, 128, &bg, &err) == PDR_EFORMAT && strstr(err.msg, "/background") && !bg);
    snprintf(path, sizeof path, "%s/test/cnn_tiny.h5", data_dir);
    CHECK(pdr_background_load(path, 16, &bg, &err) == PDR_OK && bg == NULL);

    /* hostile files: each error names the file and the item */
    snprintf(path, sizeof path, "%s/bg_tiny.h5", tmp_root);
    tiny_with_background(path, 10, 16, 98.0, 1, 0.0f);
    CHECKF(pdr_background_load(path, 16, &bg, &err) == PDR_OK && bg && pdr_background_count(bg) == 10, "%s", err.msg);
    pdr_background_free(bg);
    bg = NULL;
    tiny_with_background(path, 10, 16, 98.0, 0, 0.0f);
    CHECKF(pdr_background_load(path, 16, &bg, &err) == PDR_EFORMAT && strstr(err.msg, "background_percentile"), "%s",
           err.msg);
    tiny_with_background(path, 10, 16, 100.0, 1, 0.0f);
    CHECKF(pdr_background_load(path, 16, &bg, &err) == PDR_EFORMAT && strstr(err.msg, "background_percentile"), "%s",
           err.msg);
    tiny_with_background(path, 10, 15, 98.0, 1, 0.0f);
    CHECKF(pdr_background_load(path, 16, &bg, &err) == PDR_EFORMAT && strstr(err.msg, "shape"), "%s", err.msg);
    tiny_with_background(path, 10, 16, 98.0, 1, NAN);
    CHECKF(pdr_background_load(path, 16, &bg, &err) == PDR_EFORMAT && strstr(err.msg, "not finite") &&
               strstr(err.msg, path),
           "%s", err.msg);
    CHECK(bg == NULL);
    unlink(path);
}

/* ---- databases ---- */

typedef struct fixture {
    char dir[4096];
    int dim;
    size_t n, m;
    float *rows; /* the stored vectors */
    float *centres;
    pdr_background *bg, *seg_bg;
    float *seg;        /* [m][dim] stored segment vectors (segment fixtures) */
    size_t *seg_first; /* [n + 1] */
} fixture;

static void path_in(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* A database directory: store of n clustered rows, Flat index, calibration fitted on random
 * pair cosines (E-values are not the subject here), and levels from bg (if with_levels). */
static int make_fixture_opt(fixture *fx, const char *name, size_t n, int with_levels, int with_segments)
{
    pdr_err err;
    char path[4200];
    memset(fx, 0, sizeof *fx);
    fx->dim = 32;
    fx->n = n;
    snprintf(fx->dir, sizeof fx->dir, "%s/%s", tmp_root, name);
    mkdir(fx->dir, 0777);
    fx->centres = random_centres(12, fx->dim);
    fx->rows = clustered(n, fx->dim, 12, 0.08, fx->centres);
    float *bgv = clustered(400, fx->dim, 12, 0.08, fx->centres);
    int rc = pdr_background_create(bgv, 400, fx->dim, 98.0, &fx->bg, &err);
    free(bgv);
    pdr_store_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.model_name, sizeof meta.model_name, "test-model");
    snprintf(meta.model_version, sizeof meta.model_version, "000000000000");
    meta.dim = fx->dim;
    meta.normalized = 1;
    path_in(path, sizeof path, fx->dir, PDR_DB_STORE);
    pdr_store *st = NULL;
    char **ids = malloc(n * sizeof *ids);
    int32_t *lens = malloc(n * sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        ids[i] = malloc(32);
        snprintf(ids[i], 32, "p%zu", i);
        lens[i] = 100;
    }
    if (!rc)
        rc = pdr_store_create(path, &meta, &st, &err);
    if (!rc)
        rc = pdr_store_append(st, n, (const char *const *)ids, lens, NULL, fx->rows, &err);
    if (!rc && with_segments) {
        /* 1..4 segments per protein: the protein's vector plus noise, some near another cluster */
        fx->seg_first = malloc((n + 1) * sizeof *fx->seg_first);
        fx->seg = malloc(n * 4 * (size_t)fx->dim * sizeof(float));
        int64_t *prot = malloc(n * 4 * sizeof *prot);
        int32_t *s0 = malloc(n * 4 * sizeof *s0), *s1 = malloc(n * 4 * sizeof *s1);
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            fx->seg_first[i] = m;
            size_t c = 1 + rng_next() % 4;
            for (size_t j = 0; j < c; j++, m++) {
                const float *base = j == 3 ? fx->centres + (rng_next() % 12) * (size_t)fx->dim : fx->rows + i * fx->dim;
                for (int d = 0; d < fx->dim; d++)
                    fx->seg[m * fx->dim + d] = base[d] + (float)(0.15 * rng_gauss());
                normalize(fx->seg + m * fx->dim, fx->dim);
                prot[m] = (int64_t)i;
                s0[m] = (int32_t)(50 * j);
                s1[m] = (int32_t)(50 * j + 100);
            }
        }
        fx->seg_first[n] = fx->m = m;
        rc = pdr_store_append_segments(st, m, prot, s0, s1, fx->seg, &err);
        free(prot);
        free(s0);
        free(s1);
        float *sbg = clustered(300, fx->dim, 12, 0.15, fx->centres);
        if (!rc)
            rc = pdr_background_create(sbg, 300, fx->dim, 95.0, &fx->seg_bg, &err);
        free(sbg);
    }
    if (st && !rc)
        rc = pdr_store_close(st, &err);
    else
        pdr_store_free(st);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    free(lens);
    if (!rc)
        rc = pdr_db_build_index(fx->dir, "Flat", 1, NULL, &err);
    if (!rc)
        rc = pdr_db_write_levels(fx->dir, with_levels ? fx->bg : NULL, fx->seg_bg, 100, 50, &err);
    if (!rc) {
        size_t m = 20000;
        float *null_scores = malloc(m * sizeof *null_scores);
        for (size_t i = 0; i < m; i++)
            null_scores[i] = (float)(0.2 * rng_gauss());
        pdr_calib cal;
        rc = pdr_calib_fit(null_scores, m, &cal, &err);
        free(null_scores);
        path_in(path, sizeof path, fx->dir, PDR_DB_CALIB);
        if (!rc)
            rc = pdr_calib_save(&cal, path, &err);
    }
    if (rc)
        fprintf(stderr, "fixture %s: %s\n", name, err.msg);
    return rc;
}

static int make_fixture(fixture *fx, const char *name, size_t n, int with_levels)
{
    return make_fixture_opt(fx, name, n, with_levels, 0);
}

static void free_fixture(fixture *fx)
{
    char path[4200];
    static const char *files[] = {PDR_DB_STORE,     PDR_DB_INDEX,   PDR_DB_CALIB,  PDR_DB_LEVELS,
                                  PDR_DB_EXPANSION, PDR_DB_INDEX_X, PDR_DB_CALIB_X};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        path_in(path, sizeof path, fx->dir, files[i]);
        unlink(path);
    }
    rmdir(fx->dir);
    free(fx->rows);
    free(fx->centres);
    free(fx->seg);
    free(fx->seg_first);
    pdr_background_free(fx->bg);
    pdr_background_free(fx->seg_bg);
}

TEST(adjusted_search_ranks_by_cosine_minus_mean_level)
{
    fixture fx;
    if (make_fixture(&fx, "bg_db", 700, 1)) {
        CHECK(0);
        free_fixture(&fx);
        return;
    }
    pdr_err err;
    pdr_db *db = NULL;
    CHECKF(pdr_db_open(fx.dir, &db, &err) == PDR_OK, "%s", err.msg);
    if (!db) {
        free_fixture(&fx);
        return;
    }
    CHECK(pdr_db_adjusted(db) && strcmp(pdr_db_background_id(db), pdr_background_id(fx.bg)) == 0);
    const int dim = fx.dim, k = 5;
    const size_t nq = 40;
    float *q = clustered(nq, dim, 12, 0.08, fx.centres);
    float *qlev = malloc(nq * sizeof *qlev), *rlev = malloc(fx.n * sizeof *rlev);
    pdr_background_levels(fx.bg, q, nq, qlev, &err);
    pdr_background_levels(fx.bg, fx.rows, fx.n, rlev, &err);
    pdr_hit *hits = malloc(nq * k * sizeof *hits);
    size_t *counts = malloc(nq * sizeof *counts);
    CHECKF(db_search(db, fx.bg, q, nq, k, -2.0f, 1e300, hits, counts, &err) == PDR_OK, "%s", err.msg);
    int wrong_score = 0, wrong_set = 0, reordered = 0;
    double *adj = malloc(fx.n * sizeof *adj);
    for (size_t i = 0; i < nq; i++) {
        CHECK(counts[i] == (size_t)k);
        const pdr_hit *h = hits + i * k;
        /* brute force: every row's adjusted score, the k best */
        for (size_t r = 0; r < fx.n; r++)
            adj[r] = dotd(q + i * dim, fx.rows + r * dim, dim) - 0.5 * (qlev[i] + rlev[r]);
        for (int j = 0; j < k; j++) {
            double cos_ = dotd(q + i * dim, fx.rows + h[j].row * dim, dim);
            if (fabs(h[j].cosine - cos_) > 1e-4 || fabs(h[j].score - adj[h[j].row]) > 1e-4)
                wrong_score++;
            if (j && h[j].score > h[j - 1].score)
                wrong_score++;
            if (j && h[j].cosine > h[j - 1].cosine)
                reordered++;
            size_t better = 0; /* rows scoring above this hit: must all be earlier hits */
            for (size_t r = 0; r < fx.n; r++)
                better += adj[r] > h[j].score + 1e-4;
            if (better > (size_t)j)
                wrong_set++;
        }
    }
    CHECKF(wrong_score == 0, "%d hits with a wrong score, cosine or order", wrong_score);
    CHECKF(wrong_set == 0, "%d hits are not among the k best adjusted scores", wrong_set);
    CHECKF(reordered > 0, "levels should reorder some hits against pure cosine order (%d)", reordered);

    /* min_score applies to the adjusted score */
    float cut = hits[2].score;
    CHECK(db_search(db, fx.bg, q, 1, k, cut, 1e300, hits, counts, &err) == PDR_OK && counts[0] >= 1 && counts[0] <= 3 &&
          hits[counts[0] - 1].score >= cut);

    /* a search without the same background is refused, not silently mis-scored */
    CHECKF(db_search(db, NULL, q, 1, k, -2.0f, 1e300, hits, counts, &err) == PDR_EINPUT &&
               strstr(err.msg, "pdr makedb"),
           "%s", err.msg);
    pdr_background *other = NULL;
    pdr_background_create(fx.rows, 100, dim, 98.0, &other, &err);
    CHECK(db_search(db, other, q, 1, k, -2.0f, 1e300, hits, counts, &err) == PDR_EINPUT);
    pdr_background_free(other);
    pdr_db_free(db);
    free(adj);
    free(q);
    free(qlev);
    free(rlev);
    free(hits);
    free(counts);
    free_fixture(&fx);
}

TEST(without_levels_scores_are_cosines)
{
    fixture fx;
    if (make_fixture(&fx, "bg_db_plain", 300, 1)) {
        CHECK(0);
        free_fixture(&fx);
        return;
    }
    pdr_err err;
    char path[4200];
    path_in(path, sizeof path, fx.dir, PDR_DB_LEVELS);
    CHECK(access(path, F_OK) == 0);
    /* a model without a background removes the levels of an earlier one */
    CHECK(pdr_db_write_levels(fx.dir, NULL, NULL, 0, 0, &err) == PDR_OK && access(path, F_OK) != 0);
    pdr_db *db = NULL;
    CHECKF(pdr_db_open(fx.dir, &db, &err) == PDR_OK, "%s", err.msg);
    if (db) {
        CHECK(!pdr_db_adjusted(db) && strcmp(pdr_db_background_id(db), "") == 0);
        pdr_hit hits[3];
        size_t count = 0;
        /* any background (or none) is fine: there is nothing to adjust */
        CHECK(db_search(db, fx.bg, fx.rows, 1, 3, -2.0f, 1e300, hits, &count, &err) == PDR_OK && count == 3);
        CHECK(hits[0].row == 0 && hits[0].score == hits[0].cosine && fabsf(hits[0].score - 1.0f) < 1e-4f);
        CHECK(hits[1].score == hits[1].cosine && hits[1].score <= hits[0].score);
        pdr_db_free(db);
    }
    /* levels for another number of rows: refused at open, with the remedy */
    pdr_background *bg2 = NULL;
    pdr_background_create(fx.rows, 50, fx.dim, 98.0, &bg2, &err);
    CHECK(pdr_db_write_levels(fx.dir, bg2, NULL, 0, 0, &err) == PDR_OK);
    pdr_background_free(bg2);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "levels", H5P_DEFAULT);
    hsize_t dims[1] = {7};
    hid_t s = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(f, "levels", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(s);
    H5Fclose(f);
    db = NULL;
    CHECKF(pdr_db_open(fx.dir, &db, &err) == PDR_EFORMAT && strstr(err.msg, "pdr makedb") && !db, "%s", err.msg);
    pdr_db_free(db);
    free_fixture(&fx);
}

/* The segment term by brute force, in double. */
static double ref_best_pair(const float *a, const float *la, size_t na, const float *b, const float *lb, size_t nb,
                            int dim)
{
    double best = -1e30;
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++) {
            double s = dotd(a + i * dim, b + j * dim, dim) - 0.5 * ((double)la[i] + lb[j]);
            best = s > best ? s : best;
        }
    return best;
}

TEST(segment_search_scores_whole_and_best_segment_pair)
{
    fixture fx;
    if (make_fixture_opt(&fx, "bg_segdb", 150, 1, 1)) {
        CHECK(0);
        free_fixture(&fx);
        return;
    }
    pdr_err err;
    pdr_db *db = NULL;
    CHECKF(pdr_db_open(fx.dir, &db, &err) == PDR_OK, "%s", err.msg);
    if (!db) {
        free_fixture(&fx);
        return;
    }
    int window = 0, stride = 0;
    pdr_db_segment_window(db, &window, &stride);
    CHECK(pdr_db_has_segments(db) && window == 100 && stride == 50);
    const int dim = fx.dim, k = 6;
    const size_t nq = 70; /* three blocks of 32: both threads get work */
    /* queries: whole vectors and 2 segments each, one of them near a stored protein's segment */
    float *q = clustered(nq, dim, 12, 0.08, fx.centres);
    float *qs_vec = malloc(nq * 2 * dim * sizeof(float));
    pdr_query_segments *qseg = malloc(nq * sizeof *qseg);
    for (size_t i = 0; i < nq; i++) {
        const float *near = fx.seg + (rng_next() % fx.m) * dim;
        for (int d = 0; d < dim; d++) {
            qs_vec[(2 * i) * dim + d] = q[i * dim + d] + (float)(0.1 * rng_gauss());
            qs_vec[(2 * i + 1) * dim + d] = near[d] + (float)(0.05 * rng_gauss());
        }
        normalize(qs_vec + 2 * i * dim, dim);
        normalize(qs_vec + (2 * i + 1) * dim, dim);
        qseg[i] = (pdr_query_segments){2, qs_vec + 2 * i * dim};
    }
    /* reference: levels and combined scores by brute force */
    float *qlev = malloc(nq * sizeof *qlev), *rlev = malloc(fx.n * sizeof *rlev);
    float *qslev = malloc(nq * 2 * sizeof *qslev), *slev = malloc(fx.m * sizeof *slev);
    pdr_background_levels(fx.bg, q, nq, qlev, &err);
    pdr_background_levels(fx.bg, fx.rows, fx.n, rlev, &err);
    pdr_background_levels(fx.seg_bg, qs_vec, nq * 2, qslev, &err);
    pdr_background_levels(fx.seg_bg, fx.seg, fx.m, slev, &err);
    pdr_hit *h1 = malloc(nq * k * sizeof *h1), *h2 = malloc(nq * k * sizeof *h2);
    size_t *c1 = malloc(nq * sizeof *c1), *c2 = malloc(nq * sizeof *c2);
    pdr_db_queries qs = {.n = nq, .vec = q, .bg = fx.bg, .seg_bg = fx.seg_bg, .seg = qseg, .threads = 1};
    CHECKF(pdr_db_search(db, &qs, k, -2.0f, 1e300, h1, c1, &err) == PDR_OK, "%s", err.msg);
    qs.threads = 2;
    CHECKF(pdr_db_search(db, &qs, k, -2.0f, 1e300, h2, c2, &err) == PDR_OK, "%s", err.msg);
    int wrong = 0, not_best = 0, differ = 0, seg_won = 0;
    double *ref = malloc(fx.n * sizeof *ref);
    for (size_t i = 0; i < nq; i++) {
        for (size_t t = 0; t < fx.n; t++) {
            double whole = dotd(q + i * dim, fx.rows + t * dim, dim) - 0.5 * ((double)qlev[i] + rlev[t]);
            size_t a = fx.seg_first[t], na = fx.seg_first[t + 1] - a;
            double segt = ref_best_pair(qs_vec + 2 * i * dim, qslev + 2 * i, 2, fx.seg + a * dim, slev + a, na, dim);
            ref[t] = PDR_SEGDB_WHOLE_WEIGHT * whole + (1 - PDR_SEGDB_WHOLE_WEIGHT) * segt;
        }
        CHECK(c1[i] == (size_t)k && c2[i] == (size_t)k);
        for (int j = 0; j < k; j++) {
            const pdr_hit *h = &h1[i * k + j];
            if (fabs(h->score - ref[h->row]) > 1e-4 ||
                fabs(h->cosine - dotd(q + i * dim, fx.rows + h->row * dim, dim)) > 1e-4)
                wrong++;
            if (j && h->score > h[-1].score)
                wrong++;
            size_t better = 0;
            for (size_t t = 0; t < fx.n; t++)
                better += ref[t] > h->score + 1e-4;
            if (better > (size_t)j)
                not_best++;
            if (h->row != h2[i * k + j].row || h->score != h2[i * k + j].score)
                differ++;
            if (j == 0 && j + 1 < k && h->cosine < h[1].cosine)
                seg_won++;
        }
    }
    CHECKF(wrong == 0, "%d hits with a wrong combined score, cosine or order", wrong);
    CHECKF(not_best == 0, "%d hits are not among the k best combined scores", not_best);
    CHECKF(differ == 0, "%d hits differ between 1 and 2 threads", differ);
    CHECKF(seg_won > 0, "the segment term should put some hit above one of higher cosine (%d)", seg_won);

    /* a stored row's own segments, as easy-search uses them */
    pdr_query_segments own = pdr_db_row_segments(db, 7);
    CHECK(own.n == fx.seg_first[8] - fx.seg_first[7] && own.vec[0] == fx.seg[fx.seg_first[7] * dim]);

    /* without the queries' segments, or with another segment background: refused */
    qs.seg = NULL;
    CHECKF(pdr_db_search(db, &qs, k, -2.0f, 1e300, h1, c1, &err) == PDR_EINPUT && strstr(err.msg, "segment"), "%s",
           err.msg);
    qs.seg = qseg;
    qs.seg_bg = fx.bg;
    CHECKF(pdr_db_search(db, &qs, k, -2.0f, 1e300, h1, c1, &err) == PDR_EINPUT && strstr(err.msg, "--segments"), "%s",
           err.msg);
    pdr_db_free(db);
    free(ref);
    free(q);
    free(qs_vec);
    free(qseg);
    free(qlev);
    free(rlev);
    free(qslev);
    free(slev);
    free(h1);
    free(h2);
    free(c1);
    free(c2);
    free_fixture(&fx);

    /* segment levels for a store without segments: refused with the remedy */
    fixture plain;
    if (make_fixture(&plain, "bg_segdb_plain", 50, 1) == 0) {
        pdr_background *sbg = NULL;
        pdr_background_create(plain.rows, 20, plain.dim, 95.0, &sbg, &err);
        CHECKF(pdr_db_write_levels(plain.dir, plain.bg, sbg, 100, 50, &err) == PDR_EINPUT &&
                   strstr(err.msg, "without --segments"),
               "%s", err.msg);
        pdr_background_free(sbg);
    }
    free_fixture(&plain);
}

/* Search a segment database with its own rows (vectors and stored segments) as queries. */
static int search_own_rows(const pdr_db *db, const fixture *fx, size_t nq, int k, pdr_hit *hits, size_t *counts,
                           pdr_err *err)
{
    pdr_query_segments qseg[64];
    for (size_t i = 0; i < nq && i < 64; i++)
        qseg[i] = pdr_db_row_segments(db, (int64_t)i);
    pdr_db_queries qs = {.n = nq, .vec = fx->rows, .bg = fx->bg, .seg_bg = fx->seg_bg, .seg = qseg, .threads = 1};
    return pdr_db_search(db, &qs, k, -2.0f, 1e300, hits, counts, err);
}

/* A segment database searches its own copy of the vectors, never its index.faiss: the index is
 * not loaded (it held every vector a second time), only its header is checked against the store.
 * So a file cut after its header searches the same; other rows, or no file, are still refused. */
TEST(segment_database_checks_but_does_not_load_its_index)
{
    fixture fx;
    if (make_fixture_opt(&fx, "bg_segidx", 90, 1, 1)) {
        CHECK(0);
        free_fixture(&fx);
        return;
    }
    enum { NQ = 20, K = 5 };
    pdr_hit h1[NQ * K], h2[NQ * K];
    size_t c1[NQ], c2[NQ];
    pdr_err err;
    pdr_db *db = NULL;
    char path[4200];
    path_in(path, sizeof path, fx.dir, PDR_DB_INDEX);
    CHECKF(pdr_db_open(fx.dir, &db, &err) == PDR_OK, "%s", err.msg);
    if (db) {
        CHECKF(search_own_rows(db, &fx, NQ, K, h1, c1, &err) == PDR_OK, "%s", err.msg);
        /* nprobe and graph breadth have nothing to set; the info says Flat, as before */
        CHECKF(pdr_db_set_nprobe(db, 8, &err) == PDR_OK && pdr_db_fit_breadth(db, K, 8, &err) == PDR_OK, "%s", err.msg);
        CHECKF(strstr(pdr_db_index_spec(db), "Flat") != NULL, "%s", pdr_db_index_spec(db));
        pdr_db_free(db);
        db = NULL;
    }
    /* index.faiss cut after FAISS's 37-byte header: its vectors are gone, the search is the same */
    unsigned char head[37];
    FILE *f = fopen(path, "rb");
    size_t len = f ? fread(head, 1, sizeof head, f) : 0;
    if (f)
        fclose(f);
    f = len == sizeof head ? fopen(path, "wb") : NULL;
    CHECK(f && fwrite(head, 1, sizeof head, f) == sizeof head);
    if (f)
        fclose(f);
    CHECKF(pdr_db_open(fx.dir, &db, &err) == PDR_OK, "index.faiss cut after its header: %s", err.msg);
    if (db) {
        CHECKF(search_own_rows(db, &fx, NQ, K, h2, c2, &err) == PDR_OK, "%s", err.msg);
        int differ = memcmp(c1, c2, sizeof c1) != 0;
        for (size_t i = 0; i < NQ * K; i++)
            differ += h1[i].row != h2[i].row || h1[i].score != h2[i].score || h1[i].cosine != h2[i].cosine ||
                      h1[i].evalue != h2[i].evalue;
        CHECKF(differ == 0, "%d hits differ once index.faiss lost its vectors", differ);
        CHECK(h2[0].row == 0 && c2[0] == K); /* a row finds itself first */
        pdr_db_free(db);
        db = NULL;
    }
    /* an index of other rows, or none: refused, naming it */
    CHECKF(pdr_db_build_index_from(fx.rows, fx.n - 1, fx.dim, "Flat", path, NULL, &err) == PDR_OK, "%s", err.msg);
    CHECKF(pdr_db_open(fx.dir, &db, &err) == PDR_EFORMAT && !db && strstr(err.msg, "index has 89 rows of dim 32"), "%s",
           err.msg);
    unlink(path);
    CHECKF(pdr_db_open(fx.dir, &db, &err) == PDR_EIO && !db && strstr(err.msg, PDR_DB_INDEX), "%s", err.msg);
    free_fixture(&fx);
}

/* Reference expansion of x against the fixture's rows, in double: the 3 best rows by adjusted
 * score (cosine below PDR_EXPAND_SAME, score above 0), weighted by it; out normalized. */
static void ref_expand(const fixture *fx, const float *x, float xlev, const float *rlev, float *out)
{
    const int dim = fx->dim;
    size_t best[PDR_EXPAND_K];
    double w[PDR_EXPAND_K];
    size_t m = 0;
    for (size_t r = 0; r < fx->n; r++) {
        double c = dotd(x, fx->rows + r * dim, dim), a = c - 0.5 * (xlev + rlev[r]);
        if (c >= PDR_EXPAND_SAME || a <= 0.0)
            continue;
        size_t at = m < PDR_EXPAND_K ? m++ : PDR_EXPAND_K;
        if (at == PDR_EXPAND_K && a <= w[PDR_EXPAND_K - 1])
            continue;
        if (at == PDR_EXPAND_K)
            at = PDR_EXPAND_K - 1;
        while (at > 0 && w[at - 1] < a) { /* insertion into the descending list */
            w[at] = w[at - 1];
            best[at] = best[at - 1];
            at--;
        }
        w[at] = a;
        best[at] = r;
    }
    double v[256], wsum = 0.0, norm = 0.0;
    for (size_t j = 0; j < m; j++)
        wsum += w[j];
    for (int d = 0; d < dim; d++) {
        double mean = 0.0;
        for (size_t j = 0; j < m; j++)
            mean += w[j] * fx->rows[best[j] * dim + d];
        v[d] = x[d] + (m ? PDR_EXPAND_ALPHA * mean / wsum : 0.0);
        norm += v[d] * v[d];
    }
    for (int d = 0; d < dim; d++)
        out[d] = (float)(v[d] / sqrt(norm));
}

/* A calibration file of Gaussian null scores at path (E-values are not the subject). */
static int write_null_calibration(const char *path, double sd, pdr_err *err)
{
    size_t m = 20000;
    float *null_scores = malloc(m * sizeof *null_scores);
    for (size_t i = 0; i < m; i++)
        null_scores[i] = (float)(sd * rng_gauss());
    pdr_calib cal;
    int rc = pdr_calib_fit(null_scores, m, &cal, err);
    free(null_scores);
    return rc ? rc : pdr_calib_save(&cal, path, err);
}

TEST(expanded_search_scores_the_expanded_vectors)
{
    fixture fx;
    if (make_fixture(&fx, "x_db", 600, 1)) {
        CHECK(0);
        free_fixture(&fx);
        return;
    }
    pdr_err err;
    const int dim = fx.dim, k = 6;
    const size_t nq = 30;
    char path[4200];
    float *rlev = malloc(fx.n * sizeof *rlev), *xrows = malloc(fx.n * dim * sizeof *xrows);
    float *xlev = malloc(fx.n * sizeof *xlev), *got = malloc(dim * sizeof *got);
    pdr_background_levels(fx.bg, fx.rows, fx.n, rlev, &err);
    /* makedb's step: every row expanded against the others, as the reference does */
    CHECKF(pdr_db_write_expansion(fx.dir, "Flat", fx.bg, NULL, NULL, &err) == PDR_OK, "%s", err.msg);
    for (size_t r = 0; r < fx.n; r++)
        ref_expand(&fx, fx.rows + r * dim, rlev[r], rlev, xrows + r * dim);
    pdr_background_levels(fx.bg, xrows, fx.n, xlev, &err);
    /* without its calibration the expansion is incomplete: the database refuses to open */
    pdr_db *db = NULL;
    CHECKF(pdr_db_open(fx.dir, &db, &err) == PDR_EIO && strstr(err.msg, PDR_DB_CALIB_X) && !db, "%s", err.msg);
    path_in(path, sizeof path, fx.dir, PDR_DB_CALIB_X);
    CHECK(write_null_calibration(path, 0.2, &err) == PDR_OK);
    CHECKF(pdr_db_open(fx.dir, &db, &err) == PDR_OK, "%s", err.msg);
    if (!db) {
        free_fixture(&fx);
        return;
    }
    CHECK(pdr_db_expanded(db));
    const pdr_db_expansion *xp = pdr_db_expansion_of(db);
    size_t bad_rows = 0, moved = 0;
    for (size_t r = 0; r < fx.n; r++) {
        CHECK(pdr_db_expansion_read(xp, 1, (int64_t)r, got, &err) == PDR_OK);
        double diff = 0.0, shift = 0.0;
        for (int d = 0; d < dim; d++) {
            diff = fmax(diff, fabs(got[d] - xrows[r * dim + d]));
            shift = fmax(shift, fabs(got[d] - fx.rows[r * dim + d]));
        }
        bad_rows += diff > 1e-5 || fabs(pdr_db_expansion_levels(xp)[r] - xlev[r]) > 1e-5;
        moved += shift > 1e-3;
        CHECK(pdr_db_expansion_read(xp, 0, (int64_t)r, got, &err) == PDR_OK);
        bad_rows += memcmp(got, fx.rows + r * dim, dim * sizeof(float)) != 0;
    }
    CHECKF(bad_rows == 0, "%zu stored rows differ from the reference expansion", bad_rows);
    CHECKF(moved > fx.n / 2, "only %zu of %zu rows moved", moved, fx.n);
    /* queries: expanded against the database, scored against the expanded rows */
    float *q = clustered(nq, dim, 12, 0.08, fx.centres);
    memcpy(q, fx.rows + 17 * dim, dim * sizeof(float)); /* a database protein as a query */
    float *qlev = malloc(nq * sizeof *qlev), *xq = malloc(nq * dim * sizeof *xq), *xqlev = malloc(nq * sizeof *xqlev);
    pdr_background_levels(fx.bg, q, nq, qlev, &err);
    for (size_t i = 0; i < nq; i++)
        ref_expand(&fx, q + i * dim, qlev[i], rlev, xq + i * dim);
    pdr_background_levels(fx.bg, xq, nq, xqlev, &err);
    pdr_hit *hits = malloc(nq * k * sizeof *hits);
    size_t *counts = malloc(nq * sizeof *counts);
    CHECKF(db_search(db, fx.bg, q, nq, k, -2.0f, 1e300, hits, counts, &err) == PDR_OK, "%s", err.msg);
    int wrong = 0, wrong_set = 0;
    for (size_t i = 0; i < nq; i++) {
        CHECK(counts[i] == (size_t)k);
        for (int j = 0; j < k; j++) {
            const pdr_hit *h = hits + i * k + j;
            double c = dotd(xq + i * dim, xrows + h->row * dim, dim), a = c - 0.5 * (xqlev[i] + xlev[h->row]);
            wrong += fabs(h->cosine - c) > 1e-4 || fabs(h->score - a) > 1e-4 || (j && h->score > h[-1].score);
            size_t better = 0;
            for (size_t r = 0; r < fx.n; r++)
                better += dotd(xq + i * dim, xrows + r * dim, dim) - 0.5 * (xqlev[i] + xlev[r]) > h->score + 1e-4;
            wrong_set += better > (size_t)j;
        }
    }
    CHECKF(wrong == 0, "%d hits with a score, cosine or order other than the expanded vectors'", wrong);
    CHECKF(wrong_set == 0, "%d hits are not among the k best expanded scores", wrong_set);
    /* the database protein finds itself first, with its stored expanded vector */
    CHECK(hits[0].row == 17 && fabsf(hits[0].cosine - 1.0f) < 1e-4f);
    /* no_expand: the plain adjusted scores */
    pdr_db_queries qs = {.n = nq, .vec = q, .bg = fx.bg, .no_expand = 1};
    CHECKF(pdr_db_search(db, &qs, k, -2.0f, 1e300, hits, counts, &err) == PDR_OK, "%s", err.msg);
    int plain_wrong = 0;
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < counts[i]; j++) {
            const pdr_hit *h = hits + i * k + j;
            plain_wrong +=
                fabs(h->score - (dotd(q + i * dim, fx.rows + h->row * dim, dim) - 0.5 * (qlev[i] + rlev[h->row]))) >
                1e-4;
        }
    CHECKF(plain_wrong == 0, "%d no_expand hits are not plain adjusted scores", plain_wrong);
    /* a query with no positive neighbour keeps its vector */
    float w0[2] = {0.0f, -1.0f}, nb[64], out[32];
    for (int d = 0; d < 64; d++)
        nb[d] = 1.0f;
    pdr_expand_vector(q, nb, w0, 2, dim, 1.0f, out);
    CHECK(fabs(dotd(out, q, dim) - 1.0) < 1e-6);
    pdr_db_free(db);
    /* a damaged expansion file is refused with its name, never read past its end */
    path_in(path, sizeof path, fx.dir, PDR_DB_EXPANSION);
    CHECK(truncate(path, 3000) == 0);
    db = NULL;
    CHECKF(pdr_db_open(fx.dir, &db, &err) != PDR_OK && strstr(err.msg, PDR_DB_EXPANSION) && !db, "%s", err.msg);
    /* removing the expansion leaves the plain database */
    CHECK(pdr_db_expansion_remove(fx.dir, &err) == PDR_OK && access(path, F_OK) != 0);
    CHECKF(pdr_db_open(fx.dir, &db, &err) == PDR_OK && db && !pdr_db_expanded(db), "%s", err.msg);
    pdr_db_free(db);
    free(rlev);
    free(xrows);
    free(xlev);
    free(got);
    free(q);
    free(qlev);
    free(xq);
    free(xqlev);
    free(hits);
    free(counts);
    free_fixture(&fx);
}

int main(void)
{
    if (getenv("PDR_DATA"))
        data_dir = getenv("PDR_DATA");
    if (getenv("PDR_TMP"))
        tmp_root = getenv("PDR_TMP");
    rng_state = getenv("PDR_SEED") ? strtoull(getenv("PDR_SEED"), NULL, 10) : 7;
    if (rng_state == 0)
        rng_state = 7;
    printf("test_background: seed %llu (PDR_SEED=N repeats)\n", (unsigned long long)rng_state);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    RUN(levels_are_the_percentile_of_background_cosines);
    RUN(create_rejects_bad_arguments);
    RUN(model_files_carry_or_lack_a_background);
    RUN(adjusted_search_ranks_by_cosine_minus_mean_level);
    RUN(without_levels_scores_are_cosines);
    RUN(segment_search_scores_whole_and_best_segment_pair);
    RUN(segment_database_checks_but_does_not_load_its_index);
    RUN(expanded_search_scores_the_expanded_vectors);
    return CHECK_DONE();
}
