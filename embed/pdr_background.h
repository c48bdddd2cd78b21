/* pdr_background.h: background levels, for background-adjusted scores.
 *
 * A cosine between two embeddings is not equally surprising for every protein: proteins with
 * common domains or biased composition sit close to many unrelated ones. A model file may carry
 * a background sample (`/background`: real proteins embedded by that model, drawn from its
 * training pool; train/background.py). A protein's level is the P-th percentile (the model's
 * `background_percentile`, 98 for the shipped model) of its cosines to that sample, and pdr's
 * score of a pair is
 *
 *     score(a, b) = cos(a, b) - (level(a) + level(b)) / 2
 *
 * (pdr_adjusted_score). Database proteins get their levels once, at `pdr makedb`; a query gets
 * its own at search time (one small matrix product per batch).
 */
#ifndef PDR_BACKGROUND_H
#define PDR_BACKGROUND_H

#include <stddef.h>

#include "pdr_err.h"

typedef struct pdr_background pdr_background;

/* Largest background sample a model file may hold. */
#define PDR_BACKGROUND_MAX_ROWS 65536

/* A background of n vectors of dim floats (copied and L2-normalized) at this percentile
 * (0 < percentile < 100). */
int pdr_background_create(const float *vectors, size_t n, int dim, double percentile, pdr_background **ret_bg,
                          pdr_err *err);
/* The model file's /background, or *ret_bg = NULL (and PDR_OK) when it has none. dim is the
 * model's output dimension; a sample of another shape, non-finite values or a missing or bad
 * background_percentile are errors naming the file. */
int pdr_background_load(const char *model_path, int dim, pdr_background **ret_bg, pdr_err *err);
/* The model file's /background_segments (windows of the background proteins: the background of
 * segment vectors) and its window and stride (root attributes background_segment_window and
 * background_segment_stride), or *ret_bg = NULL when it has none. */
int pdr_background_load_segments(const char *model_path, int dim, pdr_background **ret_bg, int *ret_window,
                                 int *ret_stride, pdr_err *err);
void pdr_background_free(pdr_background *bg);

size_t pdr_background_count(const pdr_background *bg);
int pdr_background_dim(const pdr_background *bg);
double pdr_background_percentile(const pdr_background *bg);
/* 16 hex digits identifying the sample and percentile (FNV-1a over both): a database records
 * it, so levels from another background are refused. */
const char *pdr_background_id(const pdr_background *bg);

/* levels[i] for the n vectors x (n x dim, L2-normalized, row-major), by matrix products over
 * tiles of the n rows (fast for a database's rows). Thread-safe. */
int pdr_background_levels(const pdr_background *bg, const float *x, size_t n, float *levels, pdr_err *err);

/* The same, each row by itself (one matrix-vector product per row): a row's level does not
 * depend on the other rows passed with it, in the last bits either, as it does through the tiled
 * products' rounding. For queries, so that a query's scores do not depend on its batch. */
int pdr_background_levels_each(const pdr_background *bg, const float *x, size_t n, float *levels, pdr_err *err);

static inline float pdr_adjusted_score(float cosine, float level_a, float level_b)
{
    return cosine - 0.5f * (level_a + level_b);
}

#endif
