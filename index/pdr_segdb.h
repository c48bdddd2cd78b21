/* pdr_segdb.h: the segment part of a database made with `pdr makedb --segments`, for local
 * homology (two proteins that share one domain of several).
 *
 * Every database protein has segment vectors (windows of W residues every S, W and S the
 * model's: pdr_encoder_segment_background), each with its background level against the model's
 * background of windows (pdr_background.h). The score of a query q and a target t is
 *
 *     score = w * adjusted(q, t) + (1 - w) * max over segment pairs (i of q, j of t) of
 *             (cos(q_i, t_j) - (level(q_i) + level(t_j)) / 2)
 *
 * with adjusted(q, t) the whole-protein background-adjusted score and w = PDR_SEGDB_WHOLE_WEIGHT.
 * Search is exhaustive and in memory: every protein and every segment of the database is
 * scored (matrix products in OpenBLAS), so the whole vectors (N x D floats) and the segment
 * vectors (M x D floats) are held in memory, here only: the database's FAISS index is not loaded
 * (pdr_db.c reads its header to check it). Files: DBDIR/background.h5 holds /segment_levels
 * [M] beside /levels (pdr_db_levels.c); the vectors come from DBDIR/embeddings.h5.
 */
#ifndef PDR_SEGDB_H
#define PDR_SEGDB_H

#include <stddef.h>
#include <stdint.h>

#include "pdr_background.h"
#include "pdr_err.h"

#define PDR_SEGDB_WHOLE_WEIGHT 0.4f

typedef struct pdr_segdb pdr_segdb;

/* One query's segment vectors: n x dim, L2-normalized (what pdr_batch_embed gives with the
 * database's window and stride). */
typedef struct pdr_query_segments {
    size_t n;
    const float *vec;
} pdr_query_segments;

/* A candidate as the search returns it: row, combined score, whole-protein cosine. */
typedef struct pdr_segdb_hit {
    int64_t row;
    float score;
    float cosine;
} pdr_segdb_hit;

/* Load the segment part of dbdir (n proteins of dim floats): vectors from the store, segment
 * levels, window, stride and the segment background id from the levels file. *ret = NULL when
 * the levels file has no /segment_levels. */
int pdr_segdb_load(const char *dbdir, size_t n, int dim, pdr_segdb **ret, pdr_err *err);
void pdr_segdb_free(pdr_segdb *sd);

size_t pdr_segdb_segment_count(const pdr_segdb *sd);
void pdr_segdb_window(const pdr_segdb *sd, int *window, int *stride);
const char *pdr_segdb_background_id(const pdr_segdb *sd);

/* The stored segments of database row `row` (0 <= row < n), as a query's. */
pdr_query_segments pdr_segdb_row_segments(const pdr_segdb *sd, int64_t row);

/* The best k targets of each of nq queries by combined score: queries (nq x dim), their
 * whole-protein levels qlev[nq] and segments qseg[nq]; levels[n] are the database's
 * whole-protein levels; seg_bg gives the query segments' levels. hits[q*k ...] sorted by
 * descending score, ties by ascending row; counts[q] = min(k, n). Blocks of 32 queries are
 * shared out among `threads` threads (run OpenBLAS single-threaded then). */
int pdr_segdb_search(const pdr_segdb *sd, const float *levels, const pdr_background *seg_bg, const float *queries,
                     const float *qlev, const pdr_query_segments *qseg, size_t nq, int k, int threads,
                     pdr_segdb_hit *hits, size_t *counts, pdr_err *err);

/* The segment term for two proteins: max over pairs of cos - (level_a + level_b) / 2 of
 * a (na x dim, levels la) and b (nb x dim, levels lb). For calibration. */
float pdr_segdb_best_pair(const float *a, const float *la, size_t na, const float *b, const float *lb, size_t nb,
                          int dim);

/* Combined score from the whole-protein adjusted score and the segment term. */
static inline float pdr_segdb_combine(float whole_adjusted, float best_segment_pair)
{
    return PDR_SEGDB_WHOLE_WEIGHT * whole_adjusted + (1.0f - PDR_SEGDB_WHOLE_WEIGHT) * best_segment_pair;
}

#endif
