/* pdr_segdb.c: exhaustive whole + segment scoring of a segment database (see pdr_segdb.h). */
#include "pdr_segdb.h"

#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <hdf5.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pdr_db.h"
#include "pdr_store.h"

/* Queries scored against each database tile while it is in cache (each query by its own
 * products, so that its scores do not depend on the others), and database segments per tile. */
#define QUERY_BLOCK 32
#define SEG_TILE 4096

struct pdr_segdb {
    size_t n, m;
    int dim, window, stride;
    float *vec;     /* [n][dim] whole-protein vectors */
    float *seg_vec; /* [m][dim] segment vectors, grouped by protein in row order */
    float *seg_lev; /* [m] segment levels */
    int64_t *owner; /* [m] protein row of each segment */
    size_t *first;  /* [n + 1] protein t has segments first[t]..first[t + 1] - 1 */
    char bg_id[32]; /* id of the segment background the levels came from */
};

void pdr_segdb_free(pdr_segdb *sd)
{
    if (!sd)
        return;
    free(sd->vec);
    free(sd->seg_vec);
    free(sd->seg_lev);
    free(sd->owner);
    free(sd->first);
    free(sd);
}

size_t pdr_segdb_segment_count(const pdr_segdb *sd) { return sd->m; }

void pdr_segdb_window(const pdr_segdb *sd, int *window, int *stride)
{
    *window = sd->window;
    *stride = sd->stride;
}

const char *pdr_segdb_background_id(const pdr_segdb *sd) { return sd->bg_id; }

int pdr_segdb_load(const char *dbdir, size_t n, int dim, pdr_segdb **ret, pdr_err *err)
{
    *ret = NULL;
    char path[4096], store_path[4096];
    snprintf(path, sizeof path, "%s/%s", dbdir, PDR_DB_LEVELS);
    snprintf(store_path, sizeof store_path, "%s/%s", dbdir, PDR_DB_STORE);
    if (access(path, F_OK) != 0)
        return PDR_OK;
    pdr_store *st = NULL;
    int rc = pdr_store_open(store_path, &st, err);
    if (rc)
        return rc;
    H5E_auto2_t old_print = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_print, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    pdr_segdb *sd = calloc(1, sizeof *sd);
    float *lev = NULL;
    if (!sd) {
        rc = pdr_fail(err, PDR_ENOMEM, "%s: out of memory", dbdir);
        goto done;
    }
    size_t m = pdr_store_segment_count(st);
    if ((rc = pdr_db_load_segment_levels(dbdir, m, &lev, &sd->window, &sd->stride, sd->bg_id, sizeof sd->bg_id, err)))
        goto done;
    if (!lev) {
        /* not a segment database; unless its store has segments (only makedb --segments
         * embeds them), when the levels were lost and a search would silently be another */
        if (m)
            rc = pdr_fail(err, PDR_EFORMAT,
                          "%s: the store has %zu segment vectors but %s has no segment_levels (damaged or "
                          "replaced?); rerun 'pdr makedb --segments'",
                          dbdir, m, PDR_DB_LEVELS);
        goto done;
    }
    sd->n = n;
    sd->m = m;
    sd->dim = dim;
    sd->seg_lev = lev;
    lev = NULL;
    sd->vec = malloc((n ? n : 1) * (size_t)dim * sizeof(float));
    sd->seg_vec = malloc((m ? m : 1) * (size_t)dim * sizeof(float));
    sd->owner = malloc((m ? m : 1) * sizeof(int64_t));
    sd->first = calloc(n + 1, sizeof(size_t));
    if (!sd->vec || !sd->seg_vec || !sd->owner || !sd->first) {
        rc = pdr_fail(err, PDR_ENOMEM, "%s: out of memory for %zu proteins and %zu segments of dim %d in memory", dbdir,
                      n, m, dim);
        goto done;
    }
    if ((n && (rc = pdr_store_read(st, 0, n, sd->vec, err))) ||
        (m && (rc = pdr_store_read_segments(st, 0, m, sd->owner, NULL, NULL, sd->seg_vec, err))))
        goto done;
    /* Segments must come grouped by protein, in row order, every protein with at least one. */
    int64_t next = 0;
    for (size_t j = 0; j < m; j++) {
        int64_t p = sd->owner[j];
        if (p == next)
            sd->first[next++] = j;
        else if (next == 0 || p != next - 1) { /* next == 0: the first must be protein 0 (not -1) */
            rc = pdr_fail(err, PDR_EFORMAT,
                          "%s: segment %zu belongs to protein %lld, expected %lld or %lld (segments out of order, "
                          "or proteins without segments: was the store made without --segments?); remove %s and "
                          "rerun 'pdr makedb --segments'",
                          store_path, j, (long long)p, (long long)(next - 1), (long long)next, dbdir);
            goto done;
        }
    }
    if ((size_t)next != n) {
        rc = pdr_fail(err, PDR_EFORMAT,
                      "%s: only %lld of %zu proteins have segment vectors (store made without --segments?); remove "
                      "%s and rerun 'pdr makedb --segments'",
                      store_path, (long long)next, n, dbdir);
        goto done;
    }
    sd->first[n] = m;
    *ret = sd;
    sd = NULL;
done:
    free(lev);
    pdr_segdb_free(sd);
    pdr_store_free(st);
    H5Eset_auto2(H5E_DEFAULT, old_print, old_data);
    return rc;
}

pdr_query_segments pdr_segdb_row_segments(const pdr_segdb *sd, int64_t row)
{
    return (pdr_query_segments){sd->first[row + 1] - sd->first[row], sd->seg_vec + sd->first[row] * (size_t)sd->dim};
}

float pdr_segdb_best_pair(const float *a, const float *la, size_t na, const float *b, const float *lb, size_t nb,
                          int dim)
{
    float best = -FLT_MAX, small[1024];
    float *prod = na * nb <= 1024 ? small : malloc(na * nb * sizeof(float));
    if (!prod) { /* out of memory: the same maximum, one dot product at a time */
        for (size_t i = 0; i < na; i++)
            for (size_t j = 0; j < nb; j++) {
                float s = 0.0f;
                for (int c = 0; c < dim; c++)
                    s += a[i * (size_t)dim + c] * b[j * (size_t)dim + c];
                s -= 0.5f * (la[i] + lb[j]);
                best = s > best ? s : best;
            }
        return best;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)na, (int)nb, dim, 1.0f, a, dim, b, dim, 0.0f, prod,
                (int)nb);
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++) {
            float s = prod[i * nb + j] - 0.5f * (la[i] + lb[j]);
            best = s > best ? s : best;
        }
    if (prod != small)
        free(prod);
    return best;
}

/* Min-heap of the k best (score desc, row asc) candidates. */
static int worse(const pdr_segdb_hit *a, const pdr_segdb_hit *b)
{
    return a->score < b->score || (a->score == b->score && a->row > b->row);
}

static void heap_push(pdr_segdb_hit *h, size_t *size, size_t cap, pdr_segdb_hit x)
{
    size_t i;
    if (*size < cap) {
        i = (*size)++;
        while (i > 0 && worse(&x, &h[(i - 1) / 2])) {
            h[i] = h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h[i] = x;
        return;
    }
    if (!worse(&h[0], &x))
        return; /* not better than the worst kept */
    i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        const pdr_segdb_hit *cur = w == i ? &x : &h[w];
        if (l < *size && worse(&h[l], cur))
            w = l;
        cur = w == i ? &x : &h[w];
        if (r < *size && worse(&h[r], cur))
            w = r;
        if (w == i)
            break;
        h[i] = h[w];
        i = w;
    }
    h[i] = x;
}

static int hit_order(const void *pa, const void *pb)
{
    const pdr_segdb_hit *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

/* The search's arguments, shared by its threads; thread t scores query blocks t, t + T, ... */
typedef struct seg_search {
    const pdr_segdb *sd;
    const float *levels;
    const pdr_background *seg_bg;
    const float *queries, *qlev;
    const pdr_query_segments *qseg;
    size_t nq;
    int k;
    pdr_segdb_hit *hits;
    size_t *counts;
    size_t n_threads;
} seg_search;

typedef struct seg_worker {
    const seg_search *job;
    size_t t;
    int rc;
    pdr_err err;
} seg_worker;

static int search_blocks(const seg_search *job, size_t t, pdr_err *err)
{
    const pdr_segdb *sd = job->sd;
    const float *levels = job->levels, *queries = job->queries, *qlev = job->qlev;
    const pdr_background *seg_bg = job->seg_bg;
    const pdr_query_segments *qseg = job->qseg;
    const size_t nq = job->nq;
    const int k = job->k;
    pdr_segdb_hit *hits = job->hits;
    size_t *counts = job->counts;
    const size_t n = sd->n, m = sd->m, dim = (size_t)sd->dim;
    const size_t kk = (size_t)k < n ? (size_t)k : n;
    size_t qb = nq < QUERY_BLOCK ? nq : QUERY_BLOCK;
    if (nq == 0)
        return PDR_OK;
    size_t max_rows = 0; /* query segment rows in one block */
    for (size_t q0 = 0; q0 < nq; q0 += qb) {
        size_t rows = 0;
        for (size_t q = q0; q < nq && q < q0 + qb; q++) {
            if (qseg[q].n == 0)
                return pdr_fail(err, PDR_EINPUT, "query %zu has no segment vectors", q);
            rows += qseg[q].n;
        }
        max_rows = rows > max_rows ? rows : max_rows;
    }
    /* the product tile: at most 16 M floats (64 MiB) even for very long queries */
    size_t tile = SEG_TILE;
    while (tile > 256 && max_rows * tile > ((size_t)1 << 24))
        tile /= 2;
    if (tile > m)
        tile = m ? m : 1;
    float *cos_w = malloc(qb * (n ? n : 1) * sizeof(float));
    float *best = malloc(qb * (n ? n : 1) * sizeof(float));
    float *rows_v = malloc(max_rows * dim * sizeof(float));
    float *rows_half = malloc(max_rows * sizeof(float)); /* level / 2 of each query segment */
    float *prod = malloc(max_rows * tile * sizeof(float));
    float *vmax = malloc(tile * sizeof(float));
    pdr_segdb_hit *heap = malloc((kk ? kk : 1) * sizeof *heap);
    int rc = PDR_OK;
    if (!cos_w || !best || !rows_v || !rows_half || !prod || !vmax || !heap) {
        rc = pdr_fail(err, PDR_ENOMEM, "segment search: out of memory for %zu queries x %zu proteins", qb, n);
        goto done;
    }
    for (size_t q0 = t * qb; q0 < nq; q0 += job->n_threads * qb) {
        size_t nb = nq - q0 < qb ? nq - q0 : qb, r = 0;
        size_t first_row[QUERY_BLOCK + 1];
        for (size_t b = 0; b < nb; b++) {
            first_row[b] = r;
            const pdr_query_segments *s = &qseg[q0 + b];
            memcpy(rows_v + r * dim, s->vec, s->n * dim * sizeof(float));
            r += s->n;
        }
        first_row[nb] = r;
        /* levels, whole cosines and window products one query at a time: a query's scores must
         * not depend, in the last bits either, on the other queries of its block (a matrix
         * product over the block rounds by a row's place in it) */
        if ((rc = pdr_background_levels_each(seg_bg, rows_v, r, rows_half, err)))
            goto done;
        for (size_t i = 0; i < r; i++)
            rows_half[i] *= 0.5f;
        for (size_t b = 0; b < nb && n; b++)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)dim, 1.0f, sd->vec, (int)dim,
                        queries + (q0 + b) * dim, 1, 0.0f, cos_w + b * n, 1);
        for (size_t i = 0; i < nb * n; i++)
            best[i] = -FLT_MAX;
        for (size_t j0 = 0; j0 < m; j0 += tile) {
            size_t tj = m - j0 < tile ? m - j0 : tile;
            /* one product per query (its own windows), while the tile stays in cache */
            for (size_t b = 0; b < nb; b++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(first_row[b + 1] - first_row[b]), (int)tj,
                            (int)dim, 1.0f, rows_v + first_row[b] * dim, (int)dim, sd->seg_vec + j0 * dim, (int)dim,
                            0.0f, prod + first_row[b] * tj, (int)tj);
            for (size_t b = 0; b < nb; b++) {
                /* vmax[j] = max over the query's segments i of prod[i][j] - level_i / 2 */
                const float *lev = sd->seg_lev + j0;
                for (size_t j = 0; j < tj; j++)
                    vmax[j] = -FLT_MAX;
                for (size_t i = first_row[b]; i < first_row[b + 1]; i++) {
                    const float *p = prod + i * tj, h = rows_half[i];
                    for (size_t j = 0; j < tj; j++) {
                        float v = p[j] - h;
                        vmax[j] = v > vmax[j] ? v : vmax[j];
                    }
                }
                float *bq = best + b * n;
                const int64_t *own = sd->owner + j0;
                for (size_t j = 0; j < tj; j++) {
                    float v = vmax[j] - 0.5f * lev[j];
                    if (v > bq[own[j]])
                        bq[own[j]] = v;
                }
            }
        }
        for (size_t b = 0; b < nb; b++) {
            size_t size = 0, q = q0 + b;
            for (size_t row = 0; row < n; row++) {
                float c = cos_w[b * n + row];
                float s = pdr_segdb_combine(c - 0.5f * (qlev[q] + levels[row]), best[b * n + row]);
                heap_push(heap, &size, kk, (pdr_segdb_hit){(int64_t)row, s, c});
            }
            qsort(heap, size, sizeof *heap, hit_order);
            memcpy(hits + q * (size_t)k, heap, size * sizeof *heap);
            counts[q] = size;
        }
    }
done:
    free(cos_w);
    free(best);
    free(rows_v);
    free(rows_half);
    free(prod);
    free(vmax);
    free(heap);
    return rc;
}

static void *search_thread(void *arg)
{
    seg_worker *w = arg;
    pdr_err_clear(&w->err);
    w->rc = search_blocks(w->job, w->t, &w->err);
    return NULL;
}

int pdr_segdb_search(const pdr_segdb *sd, const float *levels, const pdr_background *seg_bg, const float *queries,
                     const float *qlev, const pdr_query_segments *qseg, size_t nq, int k, int threads,
                     pdr_segdb_hit *hits, size_t *counts, pdr_err *err)
{
    size_t blocks = (nq + QUERY_BLOCK - 1) / QUERY_BLOCK;
    size_t nt = threads < 1 ? 1 : (size_t)threads;
    if (nt > blocks)
        nt = blocks ? blocks : 1;
    seg_search job = {sd, levels, seg_bg, queries, qlev, qseg, nq, k, hits, counts, nt};
    if (nt == 1)
        return search_blocks(&job, 0, err);
    seg_worker *w = calloc(nt, sizeof *w);
    pthread_t *tid = calloc(nt, sizeof *tid);
    if (!w || !tid) {
        free(w);
        free(tid);
        return pdr_fail(err, PDR_ENOMEM, "segment search: out of memory for %zu threads", nt);
    }
    size_t started = 0;
    for (; started < nt; started++) {
        w[started] = (seg_worker){&job, started, PDR_OK, {0, ""}};
        if (pthread_create(&tid[started], NULL, search_thread, &w[started]) != 0)
            break;
    }
    int rc = started == nt ? PDR_OK : pdr_fail(err, PDR_EINTERNAL, "segment search: cannot start a thread");
    for (size_t i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
        if (!rc && w[i].rc)
            rc = pdr_fail(err, w[i].rc, "%s", w[i].err.msg);
    }
    free(w);
    free(tid);
    return rc;
}
