/* test_index.c: the FAISS wrapper and the brute-force top-k (index/pdr_index.h).
 *
 * Random vectors come from a seeded generator: the seed is printed, and PDR_SEED=N repeats a
 * run. Index files go to $PDR_TMP (default /tmp).
 */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include "check.h"
#include "pdr_index.h"
#include "pdr_report.h"

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double rng_uniform(void) /* (0, 1) */ { return ((double)(rng_next() >> 11) + 0.5) * 0x1.0p-53; }

static double rng_gauss(void) { return sqrt(-2.0 * log(rng_uniform())) * cos(2.0 * M_PI * rng_uniform()); }

static void normalize(float *v, int dim)
{
    double ss = 0;
    for (int j = 0; j < dim; j++)
        ss += (double)v[j] * v[j];
    float inv = (float)(1.0 / sqrt(ss));
    for (int j = 0; j < dim; j++)
        v[j] *= inv;
}

/* n x dim L2-normalized Gaussian vectors (caller frees). */
static float *random_unit(size_t n, int dim)
{
    float *x = malloc(n * (size_t)dim * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < dim; j++)
            x[i * dim + j] = (float)rng_gauss();
        normalize(x + i * dim, dim);
    }
    return x;
}

/* n x dim vectors around n_clusters random centres (noise sigma per component), normalized:
 * the structure IVF is built for, like protein families in embedding space. */
static float *random_clustered(size_t n, int dim, int n_clusters, double sigma)
{
    float *centres = random_unit((size_t)n_clusters, dim);
    float *x = malloc(n * (size_t)dim * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        const float *c = centres + (rng_next() % (uint64_t)n_clusters) * dim;
        for (int j = 0; j < dim; j++)
            x[i * dim + j] = c[j] + (float)(sigma * rng_gauss());
        normalize(x + i * dim, dim);
    }
    free(centres);
    return x;
}

/* Queries near database rows: a row plus noise, normalized. */
static float *queries_near(const float *db, size_t n, int dim, size_t nq, double sigma)
{
    float *q = malloc(nq * (size_t)dim * sizeof *q);
    for (size_t i = 0; i < nq; i++) {
        const float *r = db + (rng_next() % n) * dim;
        for (int j = 0; j < dim; j++)
            q[i * dim + j] = r[j] + (float)(sigma * rng_gauss());
        normalize(q + i * dim, dim);
    }
    return q;
}

static const char *tmp_dir(void)
{
    const char *d = getenv("PDR_TMP");
    return d && *d ? d : "/tmp";
}

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/test_index_%ld_%s", tmp_dir(), (long)getpid(), name);
}

/* Compare k results per query against a reference computed with ref_k >= k + 1 columns.
 * Scores must agree within tol; rows must agree except where the reference itself has a near
 * tie (neighbouring scores within tol), where float rounding may legitimately swap them.
 * Returns the number of unexplained differences; *swaps counts the tie swaps. */
static int compare_topk(const float *ref_s, const int64_t *ref_r, int ref_k, const float *s, const int64_t *r, int k,
                        size_t nq, float tol, int *swaps)
{
    int bad = 0;
    for (size_t q = 0; q < nq; q++) {
        const float *rs = ref_s + q * ref_k;
        const int64_t *rr = ref_r + q * ref_k;
        for (int j = 0; j < k; j++) {
            float got = s[q * k + j];
            int64_t row = r[q * k + j];
            if ((row < 0) != (rr[j] < 0) || (row >= 0 && fabsf(got - rs[j]) > tol)) {
                if (bad++ < 5)
                    fprintf(stderr,
                            "query %zu place %d: row %lld score %.7f, "
                            "expected row %lld score %.7f\n",
                            q, j, (long long)row, got, (long long)rr[j], rs[j]);
                continue;
            }
            if (row == rr[j])
                continue;
            int near_tie = (j > 0 && fabsf(rs[j] - rs[j - 1]) <= tol) ||
                           (j + 1 < ref_k && rr[j + 1] >= 0 && fabsf(rs[j] - rs[j + 1]) <= tol);
            if (near_tie) {
                (*swaps)++;
            } else if (bad++ < 5) {
                fprintf(stderr, "query %zu place %d: row %lld, expected row %lld (score %.7f)\n", q, j, (long long)row,
                        (long long)rr[j], rs[j]);
            }
        }
    }
    return bad;
}

/* Search ix and the brute force (with one extra column for tie detection) and compare. */
static void check_matches_bruteforce(const pdr_index *ix, const float *db, size_t n, int dim, const float *queries,
                                     size_t nq, int k, const char *label)
{
    pdr_err err = {0};
    float *s = malloc(nq * k * sizeof *s), *bs = malloc(nq * (k + 1) * sizeof *bs);
    int64_t *r = malloc(nq * k * sizeof *r), *br = malloc(nq * (k + 1) * sizeof *br);
    int rc = pdr_index_search(ix, queries, nq, k, s, r, &err);
    CHECKF(rc == PDR_OK, "%s: search: %s", label, err.msg);
    rc = pdr_topk_bruteforce(db, n, dim, queries, nq, k + 1, bs, br, &err);
    CHECKF(rc == PDR_OK, "%s: brute force: %s", label, err.msg);
    int swaps = 0;
    int bad = compare_topk(bs, br, k + 1, s, r, k, nq, 1e-5f, &swaps);
    CHECKF(bad == 0, "%s: %d of %zu results differ from the brute force", label, bad, nq * k);
    fprintf(stderr, "%s: %zu queries x k %d equal to the brute force (%d near-tie swaps)\n", label, nq, k, swaps);
    free(s);
    free(r);
    free(bs);
    free(br);
}

/* Every query's results sorted by descending score, ties by ascending row, padding last. */
static int results_ordered(const float *s, const int64_t *r, size_t nq, int k)
{
    for (size_t q = 0; q < nq; q++) {
        for (int j = 1; j < k; j++) {
            const float *qs = s + q * k;
            const int64_t *qr = r + q * k;
            if (qr[j] < 0)
                continue;
            if (qr[j - 1] < 0 || qs[j - 1] < qs[j] || (qs[j - 1] == qs[j] && qr[j - 1] >= qr[j]))
                return 0;
        }
    }
    return 1;
}

/* Every returned (row, score) of an index that stores vectors exactly (Flat, IVF-Flat, HNSW
 * over Flat) holds the true inner product of the query and that row: catches scores that are
 * negated or belong to another row, which a set-based recall would not see. */
static int scores_are_true(const float *db, int dim, const float *q, size_t nq, int k, const float *s, const int64_t *r)
{
    int bad = 0;
    for (size_t i = 0; i < nq; i++) {
        for (int j = 0; j < k; j++) {
            int64_t row = r[i * k + j];
            if (row < 0)
                continue;
            double d = 0;
            for (int c = 0; c < dim; c++)
                d += (double)q[i * dim + c] * db[row * dim + c];
            if (fabs(d - s[i * k + j]) > 1e-5 && bad++ < 3)
                fprintf(stderr, "query %zu row %lld: score %.7f, true inner product %.7f\n", i, (long long)row,
                        s[i * k + j], d);
        }
    }
    return bad == 0;
}

/* ------------------------------------------------------------------------------------------ */

TEST(bruteforce_matches_naive_double_loop)
{
    /* Crosses the brute force's query block (128) and database block (2048) boundaries. */
    enum { N = 4500, DIM = 24, NQ = 150, K = 7 };
    float *db = random_unit(N, DIM), *q = random_unit(NQ, DIM);
    float *s = malloc(NQ * K * sizeof *s), *ns = malloc(NQ * (K + 1) * sizeof *ns);
    int64_t *r = malloc(NQ * K * sizeof *r), *nr = malloc(NQ * (K + 1) * sizeof *nr);
    pdr_err err = {0};
    CHECKF(pdr_topk_bruteforce(db, N, DIM, q, NQ, K, s, r, &err) == PDR_OK, "%s", err.msg);
    /* The naive reference: every score in double, selection by repeated max. */
    double *all = malloc(N * sizeof *all);
    for (int i = 0; i < NQ; i++) {
        for (int j = 0; j < N; j++) {
            double d = 0;
            for (int c = 0; c < DIM; c++)
                d += (double)q[i * DIM + c] * db[j * DIM + c];
            all[j] = d;
        }
        for (int t = 0; t < K + 1; t++) {
            int best = -1;
            for (int j = 0; j < N; j++) {
                if (all[j] > -1e30 && (best < 0 || all[j] > all[best]))
                    best = j;
            }
            ns[i * (K + 1) + t] = (float)all[best];
            nr[i * (K + 1) + t] = best;
            all[best] = -1e31;
        }
    }
    int swaps = 0;
    int bad = compare_topk(ns, nr, K + 1, s, r, K, NQ, 1e-5f, &swaps);
    CHECKF(bad == 0, "%d brute-force results differ from the naive loop", bad);
    CHECK(results_ordered(s, r, NQ, K));
    free(all);
    free(db);
    free(q);
    free(s);
    free(r);
    free(ns);
    free(nr);
}

TEST(flat_equals_bruteforce)
{
    enum { N = 3000, DIM = 32, K = 10 };
    float *db = random_unit(N, DIM), *q = random_unit(60, DIM);
    pdr_index *ix = NULL;
    pdr_err err = {0};
    CHECKF(pdr_index_build(db, N, DIM, "Flat", &ix, &err) == PDR_OK, "%s", err.msg);
    CHECK(pdr_index_count(ix) == N);
    CHECK(pdr_index_dim(ix) == DIM);
    CHECK(strcmp(pdr_index_spec(ix), "Flat") == 0);
    CHECK(pdr_index_is_trained(ix));
    /* FAISS takes a SIMD loop below 20 queries and sgemm from 20 up: test both. */
    check_matches_bruteforce(ix, db, N, DIM, q, 5, K, "flat, 5 queries");
    check_matches_bruteforce(ix, db, N, DIM, q, 60, K, "flat, 60 queries");
    /* set_nprobe is a no-op on Flat, not an error. */
    CHECKF(pdr_index_set_nprobe(ix, 8, &err) == PDR_OK, "%s", err.msg);
    check_matches_bruteforce(ix, db, N, DIM, q, 60, K, "flat after set_nprobe");
    pdr_index_free(ix);

    /* NULL and "" mean Flat. */
    CHECKF(pdr_index_build(db, N, DIM, NULL, &ix, &err) == PDR_OK, "%s", err.msg);
    CHECK(strcmp(pdr_index_spec(ix), "Flat") == 0);
    pdr_index_free(ix);
    free(db);
    free(q);
}

TEST(add_after_build_continues_rows)
{
    enum { N = 2500, DIM = 16, K = 5 };
    float *db = random_unit(N, DIM), *q = random_unit(30, DIM);
    pdr_index *ix = NULL;
    pdr_err err = {0};
    CHECKF(pdr_index_build(db, 1000, DIM, "Flat", &ix, &err) == PDR_OK, "%s", err.msg);
    CHECKF(pdr_index_add(ix, db + 1000 * DIM, 1200, &err) == PDR_OK, "%s", err.msg);
    CHECKF(pdr_index_add(ix, db + 2200 * DIM, N - 2200, &err) == PDR_OK, "%s", err.msg);
    CHECK(pdr_index_add(ix, db, 0, &err) == PDR_OK);
    CHECK(pdr_index_count(ix) == N);
    check_matches_bruteforce(ix, db, N, DIM, q, 30, K, "flat built in three adds");
    /* A database row is its own best hit, with score 1. */
    float s[K];
    int64_t r[K];
    CHECK(pdr_index_search(ix, db + 2345 * DIM, 1, K, s, r, &err) == PDR_OK);
    CHECKF(r[0] == 2345 && fabsf(s[0] - 1.0f) < 1e-5f, "row %lld score %f", (long long)r[0], s[0]);
    pdr_index_free(ix);
    free(db);
    free(q);
}

TEST(k_above_count_pads_with_minus_one)
{
    enum { N = 7, DIM = 8, K = 10, NQ = 3 };
    float *db = random_unit(N, DIM), *q = random_unit(NQ, DIM);
    float s[NQ * K], bs[NQ * K];
    int64_t r[NQ * K], br[NQ * K];
    pdr_index *ix = NULL;
    pdr_err err = {0};
    CHECKF(pdr_index_build(db, N, DIM, "Flat", &ix, &err) == PDR_OK, "%s", err.msg);
    CHECKF(pdr_index_search(ix, q, NQ, K, s, r, &err) == PDR_OK, "%s", err.msg);
    CHECK(pdr_topk_bruteforce(db, N, DIM, q, NQ, K, bs, br, &err) == PDR_OK);
    for (int i = 0; i < NQ; i++) {
        for (int j = 0; j < K; j++) {
            if (j < N) {
                CHECKF(r[i * K + j] == br[i * K + j], "query %d place %d: %lld vs %lld", i, j, (long long)r[i * K + j],
                       (long long)br[i * K + j]);
                CHECK(r[i * K + j] >= 0 && r[i * K + j] < N);
            } else {
                CHECKF(r[i * K + j] == -1 && s[i * K + j] == -FLT_MAX, "query %d place %d: %lld %g", i, j,
                       (long long)r[i * K + j], s[i * K + j]);
                CHECK(br[i * K + j] == -1 && bs[i * K + j] == -FLT_MAX);
            }
        }
    }
    CHECK(results_ordered(s, r, NQ, K));
    pdr_index_free(ix);

    /* An empty index answers with padding only. */
    CHECKF(pdr_index_build(NULL, 0, DIM, "Flat", &ix, &err) == PDR_OK, "%s", err.msg);
    CHECK(pdr_index_count(ix) == 0);
    CHECK(pdr_index_search(ix, q, NQ, K, s, r, &err) == PDR_OK);
    int all_pad = 1;
    for (int j = 0; j < NQ * K; j++)
        all_pad &= r[j] == -1 && s[j] == -FLT_MAX;
    CHECK(all_pad);
    pdr_index_free(ix);
    free(db);
    free(q);
}

TEST(equal_scores_ordered_by_row)
{
    /* Rows 5..34 are the same vector, with components exactly representable so that every
     * dot product with it is exactly 1 whatever the summation order: a true tie. */
    enum { N = 200, DIM = 16, K = 10, NQ = 25 };
    float *db = random_unit(N, DIM);
    float u[DIM] = {0};
    for (int j = 0; j < 4; j++)
        u[j] = 0.5f;
    for (int i = 5; i < 35; i++)
        memcpy(db + i * DIM, u, sizeof u);
    float q[NQ * DIM];
    for (int i = 0; i < NQ; i++)
        memcpy(q + i * DIM, u, sizeof u);
    float s[NQ * K];
    int64_t r[NQ * K];
    pdr_index *ix = NULL;
    pdr_err err = {0};
    CHECKF(pdr_index_build(db, N, DIM, "Flat", &ix, &err) == PDR_OK, "%s", err.msg);
    /* 1 query (FAISS's SIMD path) and 25 (its sgemm path), then the brute force. */
    for (int pass = 0; pass < 3; pass++) {
        size_t nq = pass == 0 ? 1 : NQ;
        memset(r, 0, sizeof r);
        int rc = pass < 2 ? pdr_index_search(ix, q, nq, K, s, r, &err)
                          : pdr_topk_bruteforce(db, N, DIM, q, nq, K, s, r, &err);
        CHECKF(rc == PDR_OK, "%s", err.msg);
        int ok = 1;
        for (size_t i = 0; i < nq; i++) {
            for (int j = 0; j < K; j++)
                ok &= r[i * K + j] == 5 + j && s[i * K + j] == 1.0f;
        }
        CHECKF(ok, "pass %d: query 0 got rows %lld %lld %lld ... (expected 5 6 7 ...)", pass, (long long)r[0],
               (long long)r[1], (long long)r[2]);
    }
    pdr_index_free(ix);
    free(db);
}

TEST(nan_and_bad_arguments_rejected)
{
    enum { N = 50, DIM = 8 };
    float *db = random_unit(N, DIM), *q = random_unit(2, DIM);
    float s[20];
    int64_t r[20];
    pdr_index *ix = (pdr_index *)&ix; /* must be reset to NULL on failure */
    pdr_err err = {0};

    db[17 * DIM + 3] = NAN;
    CHECK(pdr_index_build(db, N, DIM, "Flat", &ix, &err) == PDR_EINPUT);
    CHECK(ix == NULL);
    CHECKF(strstr(err.msg, "row 17") && strstr(err.msg, "NaN"), "message: %s", err.msg);
    CHECK(pdr_topk_bruteforce(db, N, DIM, q, 2, 5, s, r, &err) == PDR_EINPUT);
    CHECKF(strstr(err.msg, "row 17"), "message: %s", err.msg);
    db[17 * DIM + 3] = 0.0f;

    CHECKF(pdr_index_build(db, N, DIM, "Flat", &ix, &err) == PDR_OK, "%s", err.msg);
    /* Infinity in an added batch: nothing of the batch is added. */
    db[3 * DIM] = INFINITY;
    CHECK(pdr_index_add(ix, db, 10, &err) == PDR_EINPUT);
    CHECKF(strstr(err.msg, "row 53") && strstr(err.msg, "infinite"), "message: %s", err.msg);
    CHECK(pdr_index_count(ix) == N);
    db[3 * DIM] = 0.0f;

    q[DIM + 1] = NAN;
    CHECK(pdr_index_search(ix, q, 2, 5, s, r, &err) == PDR_EINPUT);
    CHECKF(strstr(err.msg, "query row 1"), "message: %s", err.msg);
    q[DIM + 1] = 0.0f;

    CHECK(pdr_index_search(ix, q, 2, 0, s, r, &err) == PDR_EINPUT);
    CHECK(pdr_index_search(ix, q, 2, -3, s, r, &err) == PDR_EINPUT);
    CHECK(pdr_index_search(ix, NULL, 2, 5, s, r, &err) == PDR_EINPUT);
    CHECK(pdr_index_search(ix, q, 0, 5, s, r, &err) == PDR_OK);
    CHECK(pdr_index_set_nprobe(ix, 0, &err) == PDR_EINPUT);
    CHECK(pdr_topk_bruteforce(db, N, DIM, q, 2, 0, s, r, &err) == PDR_EINPUT);
    CHECK(pdr_topk_bruteforce(db, N, 0, q, 2, 5, s, r, &err) == PDR_EINPUT);
    pdr_index_free(ix);

    ix = (pdr_index *)&ix;
    CHECK(pdr_index_build(db, N, 0, "Flat", &ix, &err) == PDR_EINPUT);
    CHECK(ix == NULL);
    CHECK(pdr_index_build(db, N, -4, "Flat", &ix, &err) == PDR_EINPUT);
    CHECK(pdr_index_build(NULL, N, DIM, "Flat", &ix, &err) == PDR_EINPUT);
    CHECK(pdr_index_build(db, N, DIM, "NoSuchIndex42", &ix, &err) == PDR_EINPUT);
    CHECKF(strstr(err.msg, "NoSuchIndex42") && strstr(err.msg, "FAISS"), "message: %s", err.msg);
    CHECK(ix == NULL);
    /* IVF64 cannot be trained on 50 rows: FAISS's reason comes through. */
    CHECK(pdr_index_build(db, N, DIM, "IVF64,Flat", &ix, &err) == PDR_EINPUT);
    CHECKF(strstr(err.msg, "training") && strstr(err.msg, "FAISS"), "message: %s", err.msg);
    CHECK(ix == NULL);
    pdr_index_free(NULL);
    free(db);
    free(q);
}

/* Search ix twice-loaded style: same queries, bitwise-equal results. */
static int same_results(const pdr_index *a, const pdr_index *b, const float *q, size_t nq, int k)
{
    pdr_err err = {0};
    float *sa = malloc(nq * k * sizeof *sa), *sb = malloc(nq * k * sizeof *sb);
    int64_t *ra = malloc(nq * k * sizeof *ra), *rb = malloc(nq * k * sizeof *rb);
    int same = pdr_index_search(a, q, nq, k, sa, ra, &err) == PDR_OK &&
               pdr_index_search(b, q, nq, k, sb, rb, &err) == PDR_OK && memcmp(sa, sb, nq * k * sizeof *sa) == 0 &&
               memcmp(ra, rb, nq * k * sizeof *ra) == 0;
    free(sa);
    free(sb);
    free(ra);
    free(rb);
    return same;
}

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

TEST(save_load_round_trip)
{
    enum { N = 5000, DIM = 32, NQ = 40, K = 10 };
    float *db = random_clustered(N, DIM, 50, 0.05), *q = queries_near(db, N, DIM, NQ, 0.05);
    char path[512], tmp[600];
    tmp_path(path, sizeof path, "roundtrip.faiss");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    const char *specs[] = {"Flat", "IVF32,Flat", "IVF32,SQ8"};
    for (int t = 0; t < 3; t++) {
        pdr_index *ix = NULL, *back = NULL;
        pdr_err err = {0};
        CHECKF(pdr_index_build(db, N, DIM, specs[t], &ix, &err) == PDR_OK, "%s: %s", specs[t], err.msg);
        CHECK(pdr_index_set_nprobe(ix, 4, &err) == PDR_OK);
        CHECKF(pdr_index_save(ix, path, &err) == PDR_OK, "%s", err.msg);
        CHECK(file_exists(path) && !file_exists(tmp));
        CHECKF(pdr_index_load(path, &back, &err) == PDR_OK, "%s: %s", specs[t], err.msg);
        CHECK(back && pdr_index_count(back) == N && pdr_index_dim(back) == DIM);
        CHECKF(back && strncmp(pdr_index_spec(back), "loaded", 6) == 0, "spec %s", pdr_index_spec(back));
        fprintf(stderr, "%s saved and loaded as \"%s\"\n", specs[t], pdr_index_spec(back));
        /* nprobe is part of a FAISS IVF file, so the loaded index searches the same lists. */
        CHECKF(same_results(ix, back, q, NQ, K), "%s: loaded index answers differently", specs[t]);
        /* Saving again over the existing file (the rename replaces it). */
        CHECKF(pdr_index_save(back, path, &err) == PDR_OK, "%s", err.msg);
        pdr_index_free(back);
        back = NULL;
        CHECK(pdr_index_load(path, &back, &err) == PDR_OK);
        CHECK(same_results(ix, back, q, NQ, K));
        pdr_index_free(back);
        pdr_index_free(ix);
    }
    unlink(path);
    free(db);
    free(q);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        if (len)
            fwrite(data, 1, len, f);
        fclose(f);
    }
}

TEST(load_rejects_missing_garbage_and_truncated_files)
{
    enum { N = 300, DIM = 16 };
    float *db = random_unit(N, DIM);
    char path[512], bad[512];
    tmp_path(path, sizeof path, "good.faiss");
    tmp_path(bad, sizeof bad, "bad.faiss");
    pdr_index *ix = NULL, *back = (pdr_index *)&ix;
    pdr_err err = {0};

    CHECK(pdr_index_load(path, &back, &err) == PDR_EIO); /* not written yet */
    CHECK(back == NULL);
    CHECKF(strstr(err.msg, path) != NULL, "message: %s", err.msg);

    const char *garbage = "this is not a FAISS index, just some text\n";
    write_bytes(bad, garbage, strlen(garbage));
    CHECK(pdr_index_load(bad, &back, &err) == PDR_EFORMAT);
    CHECKF(strstr(err.msg, bad) != NULL, "message: %s", err.msg);
    fprintf(stderr, "garbage: %s\n", err.msg);
    write_bytes(bad, NULL, 0);
    CHECK(pdr_index_load(bad, &back, &err) == PDR_EFORMAT);

    /* Truncations of real Flat and IVF files, at the header, in the middle and one byte short. */
    const char *specs[] = {"Flat", "IVF8,Flat"};
    for (int t = 0; t < 2; t++) {
        CHECKF(pdr_index_build(db, N, DIM, specs[t], &ix, &err) == PDR_OK, "%s", err.msg);
        CHECK(pdr_index_save(ix, path, &err) == PDR_OK);
        pdr_index_free(ix);
        ix = NULL;
        FILE *f = fopen(path, "rb");
        char *buf = malloc(1 << 20);
        size_t len = f ? fread(buf, 1, 1 << 20, f) : 0;
        if (f)
            fclose(f);
        CHECK(len > 100 && len < (1 << 20));
        size_t cuts[] = {3, 4, 20, 60, len / 3, len / 2, len - 8, len - 1};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            write_bytes(bad, buf, cuts[c]);
            back = (pdr_index *)&ix;
            int rc = pdr_index_load(bad, &back, &err);
            CHECKF(rc == PDR_EFORMAT && back == NULL, "%s cut at %zu of %zu bytes: rc %d", specs[t], cuts[c], len, rc);
            if (c == 5)
                fprintf(stderr, "%s truncated: %s\n", specs[t], err.msg);
        }
        /* Trailing bytes after a complete index. */
        memcpy(buf + len, "XYZ", 3);
        write_bytes(bad, buf, len + 3);
        CHECK(pdr_index_load(bad, &back, &err) == PDR_EFORMAT);
        /* And the untouched bytes still load. */
        write_bytes(bad, buf, len);
        CHECKF(pdr_index_load(bad, &back, &err) == PDR_OK, "%s", err.msg);
        pdr_index_free(back);
        free(buf);
    }

    /* A save into a missing directory fails cleanly. */
    char nodir[600];
    snprintf(nodir, sizeof nodir, "%s/no_such_dir_%ld/x.faiss", tmp_dir(), (long)getpid());
    CHECKF(pdr_index_build(db, N, DIM, "Flat", &ix, &err) == PDR_OK, "%s", err.msg);
    CHECK(pdr_index_save(ix, nodir, &err) == PDR_EIO);
    CHECKF(strstr(err.msg, "no_such_dir") != NULL, "message: %s", err.msg);
    pdr_index_free(ix);
    unlink(path);
    unlink(bad);
    free(db);
}

/* An index file whose labels are not row numbers (an IDMap's ids, as a foreign or damaged
 * index.faiss can give) is refused at search: callers index their per-row arrays with them. */
TEST(rows_outside_the_index_are_refused)
{
    enum { N = 50, DIM = 8 };
    float *db = random_unit(N, DIM);
    int64_t ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = 1000 + i;
    char path[512];
    tmp_path(path, sizeof path, "idmap.faiss");
    FaissIndex *fi = NULL;
    CHECK(faiss_index_factory(&fi, DIM, "IDMap,Flat", METRIC_INNER_PRODUCT) == 0);
    CHECK(fi && faiss_Index_add_with_ids(fi, N, db, ids) == 0);
    CHECK(fi && faiss_write_index_fname(fi, path) == 0);
    faiss_Index_free(fi);
    pdr_index *ix = NULL;
    pdr_err err = {0};
    CHECKF(pdr_index_load(path, &ix, &err) == PDR_OK, "%s", err.msg);
    float scores[5];
    int64_t rows[5];
    CHECK(ix && pdr_index_search(ix, db, 1, 5, scores, rows, &err) == PDR_EFORMAT);
    CHECKF(strstr(err.msg, "outside its 50 vectors") != NULL, "message: %s", err.msg);
    pdr_index_free(ix);
    unlink(path);
    free(db);
}

/* The header alone gives what pdr_index_load would (rows, dim) for every kind of index pdr makes,
 * without the codes: it passes a file cut after its header, which the full load refuses, and
 * refuses what has no header, another metric, or no file. */
TEST(read_header_gives_rows_and_dim_without_the_codes)
{
    enum { N = 600, DIM = 24 };
    float *db = random_clustered(N, DIM, 20, 0.1);
    char path[512], bad[512];
    tmp_path(path, sizeof path, "header.faiss");
    tmp_path(bad, sizeof bad, "header_bad.faiss");
    pdr_err err = {0};
    size_t rows = 1;
    int dim = 1;
    const char *specs[] = {"Flat", "IVF8,SQ8", "HNSW8", "PCA16,IVF4,Flat"};
    for (size_t t = 0; t < sizeof specs / sizeof specs[0]; t++) {
        pdr_index *ix = NULL, *back = NULL;
        CHECKF(pdr_index_build(db, N, DIM, specs[t], &ix, &err) == PDR_OK, "%s: %s", specs[t], err.msg);
        CHECKF(ix && pdr_index_save(ix, path, &err) == PDR_OK, "%s", err.msg);
        CHECKF(pdr_index_load(path, &back, &err) == PDR_OK, "%s", err.msg);
        CHECKF(pdr_index_read_header(path, &rows, &dim, &err) == PDR_OK, "%s: %s", specs[t], err.msg);
        CHECKF(rows == N && dim == DIM && rows == pdr_index_count(back) && dim == pdr_index_dim(back),
               "%s: header %zu x %d, loaded %zu x %d", specs[t], rows, dim, pdr_index_count(back), pdr_index_dim(back));
        pdr_index_free(ix);
        pdr_index_free(back);
    }
    /* a Flat file cut after its 37-byte header: header fine, full load refused */
    pdr_index *ix = NULL, *back = NULL;
    CHECKF(pdr_index_build(db, N, DIM, "Flat", &ix, &err) == PDR_OK, "%s", err.msg);
    CHECK(ix && pdr_index_save(ix, path, &err) == PDR_OK);
    pdr_index_free(ix);
    FILE *f = fopen(path, "rb");
    unsigned char head[64];
    size_t len = f ? fread(head, 1, sizeof head, f) : 0;
    if (f)
        fclose(f);
    CHECK(len == sizeof head);
    write_bytes(bad, head, 37);
    CHECKF(pdr_index_read_header(bad, &rows, &dim, &err) == PDR_OK && rows == N && dim == DIM, "%s", err.msg);
    CHECK(pdr_index_load(bad, &back, &err) == PDR_EFORMAT && back == NULL);
    /* shorter than the header, garbage, an empty file, no file */
    write_bytes(bad, head, 36);
    CHECKF(pdr_index_read_header(bad, &rows, &dim, &err) == PDR_EFORMAT && strstr(err.msg, "truncated") && rows == 0 &&
               dim == 0,
           "%s", err.msg);
    const char *garbage = "this is not a FAISS index, just some text\n";
    write_bytes(bad, garbage, strlen(garbage));
    CHECKF(pdr_index_read_header(bad, &rows, &dim, &err) == PDR_EFORMAT && strstr(err.msg, bad), "%s", err.msg);
    write_bytes(bad, NULL, 0);
    CHECK(pdr_index_read_header(bad, &rows, &dim, &err) == PDR_EFORMAT);
    unlink(bad);
    CHECKF(pdr_index_read_header(bad, &rows, &dim, &err) == PDR_EIO && strstr(err.msg, bad), "%s", err.msg);
    /* an L2 index (FAISS can write one; pdr never does) */
    FaissIndex *fi = NULL;
    CHECK(faiss_index_factory(&fi, DIM, "Flat", METRIC_L2) == 0);
    CHECK(fi && faiss_Index_add(fi, N, db) == 0);
    CHECK(fi && faiss_write_index_fname(fi, bad) == 0);
    faiss_Index_free(fi);
    CHECKF(pdr_index_read_header(bad, &rows, &dim, &err) == PDR_EFORMAT && strstr(err.msg, "inner product"), "%s",
           err.msg);
    unlink(bad);
    unlink(path);
    free(db);
}

TEST(ivf_recall_on_clustered_data)
{
    enum { N = 20000, DIM = 32, NQ = 200, K = 10 };
    float *db = random_clustered(N, DIM, 100, 0.15), *q = queries_near(db, N, DIM, NQ, 0.15);
    float *s = malloc(NQ * K * sizeof *s), *es = malloc(NQ * K * sizeof *es);
    int64_t *r = malloc(NQ * K * sizeof *r), *er = malloc(NQ * K * sizeof *er);
    pdr_index *ix = NULL;
    pdr_err err = {0};
    CHECKF(pdr_topk_bruteforce(db, N, DIM, q, NQ, K, es, er, &err) == PDR_OK, "%s", err.msg);
    CHECKF(pdr_index_build(db, N, DIM, "IVF64,Flat", &ix, &err) == PDR_OK, "%s", err.msg);
    CHECK(pdr_index_count(ix) == N);
    double recall[3];
    int nprobes[3] = {1, 16, 64};
    for (int t = 0; t < 3; t++) {
        CHECKF(pdr_index_set_nprobe(ix, nprobes[t], &err) == PDR_OK, "%s", err.msg);
        CHECKF(pdr_index_search(ix, q, NQ, K, s, r, &err) == PDR_OK, "%s", err.msg);
        CHECK(results_ordered(s, r, NQ, K));
        CHECK(scores_are_true(db, DIM, q, NQ, K, s, r));
        recall[t] = pdr_recall_at_k(er, r, NQ, K);
        fprintf(stderr, "IVF64,Flat nprobe %d: recall@%d %.4f\n", nprobes[t], K, recall[t]);
    }
    CHECKF(recall[1] >= 0.9, "recall@10 at nprobe 16: %.4f", recall[1]);
    /* nprobe takes effect: one list finds clearly less than 16 (about 0.74 vs 0.99 here), and
     * all 64 lists are an exhaustive search. */
    CHECKF(recall[0] + 0.05 < recall[1], "nprobe 1 %.4f vs 16 %.4f", recall[0], recall[1]);
    CHECKF(recall[2] >= 0.999, "nprobe 64 of 64 lists: %.4f", recall[2]);
    pdr_index_free(ix);
    free(db);
    free(q);
    free(s);
    free(r);
    free(es);
    free(er);
}

/* A few queries on an IVF with a flat coarse quantizer take pdr's own coarse step (sgemm +
 * best lists, then FAISS's search_preassigned); PDR_FAISS_COARSE=1 turns it off. Both must find
 * the same rows with the same scores, at every nprobe, for Flat and SQ8 lists. */
TEST(ivf_coarse_step_matches_faiss)
{
    enum { N = 8000, DIM = 32, NQ = 60, K = 10 };
    float *db = random_clustered(N, DIM, 50, 0.15), *q = queries_near(db, N, DIM, NQ, 0.15);
    float *s1 = malloc(NQ * K * sizeof *s1), *s2 = malloc(NQ * K * sizeof *s2);
    int64_t *r1 = malloc(NQ * K * sizeof *r1), *r2 = malloc(NQ * K * sizeof *r2);
    const char *specs[] = {"IVF64,Flat", "IVF64,SQ8"};
    int nprobes[] = {1, 7, 64, 100};
    pdr_err err = {0};
    for (int sp = 0; sp < 2; sp++) {
        pdr_index *ix = NULL;
        CHECKF(pdr_index_build(db, N, DIM, specs[sp], &ix, &err) == PDR_OK, "%s", err.msg);
        if (!ix)
            continue;
        for (int t = 0; t < 4; t++) {
            CHECKF(pdr_index_set_nprobe(ix, nprobes[t], &err) == PDR_OK, "%s", err.msg);
            for (int i = 0; i < NQ; i++) /* one query at a time: the fast path */
                CHECKF(pdr_index_search(ix, q + i * DIM, 1, K, s1 + i * K, r1 + i * K, &err) == PDR_OK, "%s", err.msg);
            setenv("PDR_FAISS_COARSE", "1", 1);
            for (int i = 0; i < NQ; i++)
                CHECKF(pdr_index_search(ix, q + i * DIM, 1, K, s2 + i * K, r2 + i * K, &err) == PDR_OK, "%s", err.msg);
            unsetenv("PDR_FAISS_COARSE");
            int rows_differ = 0;
            double max_diff = 0;
            for (int j = 0; j < NQ * K; j++) {
                rows_differ += r1[j] != r2[j];
                if (fabs(s1[j] - s2[j]) > max_diff)
                    max_diff = fabs(s1[j] - s2[j]);
            }
            CHECKF(rows_differ <= 2 && max_diff < 1e-4, "%s nprobe %d: %d of %d rows differ, max score diff %.3g",
                   specs[sp], nprobes[t], rows_differ, NQ * K, max_diff);
            CHECK(results_ordered(s1, r1, NQ, K));
        }
        pdr_index_free(ix);
    }
    free(db);
    free(q);
    free(s1);
    free(s2);
    free(r1);
    free(r2);
}

TEST(ivf_streaming_create_train_add)
{
    enum { N = 8000, DIM = 32, NQ = 100, K = 10 };
    float *db = random_clustered(N, DIM, 40, 0.15), *q = queries_near(db, N, DIM, NQ, 0.15);
    float *s = malloc(NQ * K * sizeof *s), *es = malloc(NQ * K * sizeof *es);
    int64_t *r = malloc(NQ * K * sizeof *r), *er = malloc(NQ * K * sizeof *er);
    pdr_index *ix = NULL;
    pdr_err err = {0};
    CHECKF(pdr_index_create(DIM, "IVF32,Flat", &ix, &err) == PDR_OK, "%s", err.msg);
    CHECK(!pdr_index_is_trained(ix));
    CHECK(pdr_index_add(ix, db, 100, &err) == PDR_EINPUT); /* untrained */
    CHECKF(strstr(err.msg, "not trained"), "message: %s", err.msg);
    CHECK(pdr_index_count(ix) == 0);
    /* Train on every fourth row, as a sample drawn across the store would be. */
    float *sample = malloc(N / 4 * DIM * sizeof *sample);
    for (int i = 0; i < N / 4; i++)
        memcpy(sample + i * DIM, db + 4 * i * DIM, DIM * sizeof *sample);
    CHECKF(pdr_index_train(ix, sample, N / 4, &err) == PDR_OK, "%s", err.msg);
    CHECK(pdr_index_is_trained(ix));
    CHECK(pdr_index_train(ix, sample, N / 4, &err) == PDR_OK); /* already trained: no-op */
    for (int c = 0; c < 4; c++)
        CHECKF(pdr_index_add(ix, db + c * (N / 4) * DIM, N / 4, &err) == PDR_OK, "%s", err.msg);
    CHECK(pdr_index_count(ix) == N);
    CHECK(pdr_index_set_nprobe(ix, 8, &err) == PDR_OK);
    CHECK(pdr_index_search(ix, q, NQ, K, s, r, &err) == PDR_OK);
    CHECK(pdr_topk_bruteforce(db, N, DIM, q, NQ, K, es, er, &err) == PDR_OK);
    double rec = pdr_recall_at_k(er, r, NQ, K);
    fprintf(stderr, "IVF32,Flat streamed, nprobe 8: recall@%d %.4f\n", K, rec);
    CHECKF(rec >= 0.9, "recall %.4f", rec);
    pdr_index_free(ix);
    free(sample);
    free(db);
    free(q);
    free(s);
    free(r);
    free(es);
    free(er);
}

TEST(hnsw_efsearch_reaches_recall)
{
    enum { N = 3000, DIM = 32, NQ = 100, K = 10 };
    float *db = random_clustered(N, DIM, 30, 0.15), *q = queries_near(db, N, DIM, NQ, 0.15);
    float *s = malloc(NQ * K * sizeof *s), *es = malloc(NQ * K * sizeof *es);
    int64_t *r = malloc(NQ * K * sizeof *r), *er = malloc(NQ * K * sizeof *er);
    pdr_index *ix = NULL;
    pdr_err err = {0};
    CHECKF(pdr_index_build(db, N, DIM, "HNSW16", &ix, &err) == PDR_OK, "%s", err.msg);
    CHECK(pdr_topk_bruteforce(db, N, DIM, q, NQ, K, es, er, &err) == PDR_OK);
    double rec[2];
    int ef[2] = {1, 128};
    for (int t = 0; t < 2; t++) {
        CHECKF(pdr_index_set_nprobe(ix, ef[t], &err) == PDR_OK, "%s", err.msg);
        CHECK(pdr_index_search(ix, q, NQ, K, s, r, &err) == PDR_OK);
        CHECK(results_ordered(s, r, NQ, K));
        CHECK(scores_are_true(db, DIM, q, NQ, K, s, r));
        rec[t] = pdr_recall_at_k(er, r, NQ, K);
        fprintf(stderr, "HNSW16 efSearch %d: recall@%d %.4f\n", ef[t], K, rec[t]);
    }
    CHECKF(rec[1] >= 0.95, "recall %.4f", rec[1]);
    /* efSearch takes effect (about 0.46 at 1 here). */
    CHECKF(rec[0] + 0.05 < rec[1], "efSearch 1 %.4f vs 128 %.4f", rec[0], rec[1]);
    pdr_index_free(ix);
    free(db);
    free(q);
    free(s);
    free(r);
    free(es);
    free(er);
}

/* Concurrent searches on one index give what a lone search gives. */
enum { CONC_N = 4000, CONC_DIM = 32, CONC_NQ = 24, CONC_K = 8, CONC_THREADS = 4, CONC_ROUNDS = 10 };

struct conc_job {
    const pdr_index *ix;
    const float *q;
    const float *want_s;
    const int64_t *want_r;
    int mismatches;
};

static void *conc_worker(void *arg)
{
    struct conc_job *job = arg;
    float s[CONC_NQ * CONC_K];
    int64_t r[CONC_NQ * CONC_K];
    pdr_err err = {0};
    for (int round = 0; round < CONC_ROUNDS; round++) {
        if (pdr_index_search(job->ix, job->q, CONC_NQ, CONC_K, s, r, &err) != PDR_OK ||
            memcmp(s, job->want_s, sizeof s) != 0 || memcmp(r, job->want_r, sizeof r) != 0)
            job->mismatches++;
    }
    return NULL;
}

TEST(concurrent_searches_agree)
{
    float *db = random_unit(CONC_N, CONC_DIM), *q = random_unit(CONC_THREADS * CONC_NQ, CONC_DIM);
    static float want_s[CONC_THREADS][CONC_NQ * CONC_K];
    static int64_t want_r[CONC_THREADS][CONC_NQ * CONC_K];
    pdr_index *ix = NULL;
    pdr_err err = {0};
    CHECKF(pdr_index_build(db, CONC_N, CONC_DIM, "Flat", &ix, &err) == PDR_OK, "%s", err.msg);
    struct conc_job jobs[CONC_THREADS];
    pthread_t tid[CONC_THREADS];
    for (int t = 0; t < CONC_THREADS; t++) {
        const float *qt = q + (size_t)t * CONC_NQ * CONC_DIM;
        CHECK(pdr_index_search(ix, qt, CONC_NQ, CONC_K, want_s[t], want_r[t], &err) == PDR_OK);
        jobs[t] = (struct conc_job){ix, qt, want_s[t], want_r[t], 0};
    }
    int started = 0;
    for (int t = 0; t < CONC_THREADS; t++)
        started += pthread_create(&tid[t], NULL, conc_worker, &jobs[t]) == 0;
    CHECK(started == CONC_THREADS);
    int mismatches = 0;
    for (int t = 0; t < started; t++) {
        pthread_join(tid[t], NULL);
        mismatches += jobs[t].mismatches;
    }
    CHECKF(mismatches == 0, "%d concurrent searches differed", mismatches);
    pdr_index_free(ix);
    free(db);
    free(q);
}

TEST(recall_at_k_counts_exact_rows_found)
{
    int64_t exact[] = {0, 1, 2, 3, 4, -1};
    int64_t approx[] = {2, 9, 0, 4, 3, 7};
    double rec = pdr_recall_at_k(exact, approx, 2, 3);
    CHECKF(fabs(rec - 0.8) < 1e-12, "recall %.6f, expected 4/5", rec);
    CHECK(pdr_recall_at_k(exact, exact, 2, 3) == 1.0);
    int64_t none[] = {-1, -1, -1};
    CHECK(pdr_recall_at_k(none, approx, 1, 3) == 1.0);
    CHECK(pdr_recall_at_k(NULL, NULL, 0, 3) == 1.0);
    int64_t miss[] = {5, 6, 8};
    CHECK(pdr_recall_at_k(exact, miss, 1, 3) == 0.0);
}

/* The TSV writer formats numbers itself; its text must be printf's, always: the score ("%.4f")
 * and the E-value ("%.3g", ties near the third digit included: 3.835e-12, which the scaling by a
 * power of ten used to round to "3.84e-12"). */
TEST(report_numbers_are_printf_text)
{
    char mine[64], want[64];
    int score_bad = 0, ev_bad = 0, ev_off_by_more = 0;
    const float fixed_scores[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.99995f, 0.00005f, -0.00004f, 0.12345f, 1.00001f};
    for (size_t i = 0; i < sizeof fixed_scores / sizeof fixed_scores[0]; i++) {
        pdr_report_score(mine, fixed_scores[i]);
        snprintf(want, sizeof want, "%.4f", fixed_scores[i]);
        CHECKF(strcmp(mine, want) == 0, "score %.9g: '%s', printf '%s'", fixed_scores[i], mine, want);
    }
    for (int i = 0; i < 1000000; i++) {
        float x = (float)(2.4 * rng_uniform() - 1.2);
        if (i % 7 == 0) /* exact ties at the 5th decimal */
            x = (float)((double)(int)(rng_uniform() * 20000 - 10000) / 10000.0 + 0.00005);
        pdr_report_score(mine, x);
        snprintf(want, sizeof want, "%.4f", x);
        score_bad += strcmp(mine, want) != 0;
    }
    CHECKF(score_bad == 0, "%d of 1e6 scores differ from %%.4f", score_bad);
    const double fixed_ev[] = {0,     1,           10,       100,        999,       999.5,     999.4,  1000,
                               1e-4,  9.9995e-5,   1e-5,     0.5,        0.125,     12.3,      1e-300, 2.5e-310,
                               1e300, 123456789.0, 0.000999, 0.00099951, 3.835e-12, 0.0001235, 2.675,  1.005e-7};
    for (size_t i = 0; i < sizeof fixed_ev / sizeof fixed_ev[0]; i++) {
        pdr_report_evalue(mine, fixed_ev[i]);
        snprintf(want, sizeof want, "%.3g", fixed_ev[i]);
        CHECKF(strcmp(mine, want) == 0, "evalue %.17g: '%s', printf '%s'", fixed_ev[i], mine, want);
    }
    for (int i = 0; i < 1000000; i++) {
        double x = pow(10.0, 40 * rng_uniform() - 30) * (1 + rng_uniform());
        if (i % 5 == 0) /* the decimal ties of three digits, as strtod reads them */
            x = strtod(
                (snprintf(want, sizeof want, "%d.%02d5e%d", 1 + i % 9, (i / 9) % 100, (i / 900) % 40 - 30), want),
                NULL);
        pdr_report_evalue(mine, x);
        snprintf(want, sizeof want, "%.3g", x);
        if (strcmp(mine, want) != 0) {
            ev_bad++;
            ev_off_by_more += fabs(strtod(mine, NULL) - strtod(want, NULL)) > 0.0051 * strtod(want, NULL);
        }
    }
    CHECKF(ev_bad == 0 && ev_off_by_more == 0, "%d of 1e6 E-values differ from %%.3g (%d by more than a last digit)",
           ev_bad, ev_off_by_more);
    fprintf(stderr, "report numbers: %d of 1e6 E-values differ from %%.3g in the last digit\n", ev_bad);
}

int main(void)
{
    const char *env = getenv("PDR_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 10) : 20261126ULL;
    printf("test_index: seed %llu (set PDR_SEED to repeat)\n", (unsigned long long)seed);
    fflush(stdout);
    rng_state = seed;

    RUN(bruteforce_matches_naive_double_loop);
    RUN(flat_equals_bruteforce);
    RUN(add_after_build_continues_rows);
    RUN(k_above_count_pads_with_minus_one);
    RUN(equal_scores_ordered_by_row);
    RUN(nan_and_bad_arguments_rejected);
    RUN(save_load_round_trip);
    RUN(load_rejects_missing_garbage_and_truncated_files);
    RUN(rows_outside_the_index_are_refused);
    RUN(read_header_gives_rows_and_dim_without_the_codes);
    RUN(ivf_recall_on_clustered_data);
    RUN(ivf_coarse_step_matches_faiss);
    RUN(ivf_streaming_create_train_add);
    RUN(hnsw_efsearch_reaches_recall);
    RUN(concurrent_searches_agree);
    RUN(recall_at_k_counts_exact_rows_found);
    RUN(report_numbers_are_printf_text);
    return CHECK_DONE();
}
