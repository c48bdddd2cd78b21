/* pdr_db_expand.h: query expansion in embedding space (`pdr makedb --expand`), the
 * embedding-space form of an iterative profile search (PSI-BLAST, jackhmmer, MMseqs2
 * --num-iterations): a vector is moved towards the database proteins its first search found,
 *
 *     v' = normalize(e + alpha * sum_j w_j e_j / sum_j w_j),   w_j = max(score(e, e_j), 0),
 *
 * over the PDR_EXPAND_K best hits j by background-adjusted score, skipping hits whose cosine is
 * at least PDR_EXPAND_SAME (the protein itself, or a copy: e already stands for it). A vector
 * with no hit above 0 stays as it is. Database proteins are expanded once, at makedb, against
 * the database itself; a query is expanded at search time from its first search; the pair's
 * score is then the adjusted score of the two expanded vectors (their own background levels),
 * its E-value from a calibration of expanded null scores. train/expand.py is the same procedure
 * in numpy (train/README.md, "Session 19"; bench/README.md has the figures of this code).
 *
 * Files (written after calibration.txt, each to a temporary name and renamed):
 *
 *   DBDIR/expansion.h5             /original float32 [n, dim]  the store's vectors (contiguous:
 *                                  search reads a query's neighbours with pread)
 *                                  /expanded float32 [n, dim]  the expanded vectors
 *                                  /levels   float32 [n]       their background levels
 *                                  attributes neighbours (K), alpha, same, background_id
 *   DBDIR/index_expanded.faiss     the FAISS index over /expanded (same kind as index.faiss)
 *   DBDIR/calibration_expanded.txt the null-score fit of expanded scores (written last: without
 *                                  it the database does not open, so an interrupted
 *                                  `makedb --expand` is never half used)
 *   DBDIR/expansion.pending        an empty file that exists from the start of `makedb --expand`
 *                                  until its expansion is complete: calibration.txt, written
 *                                  before the expansion, would otherwise make a run stopped
 *                                  in the expansion look like a complete plain database
 *
 * Internal to index/: pdr_db.c opens and searches it, cmd_search.c writes it.
 */
#ifndef PDR_DB_EXPAND_H
#define PDR_DB_EXPAND_H

#include <stddef.h>
#include <stdint.h>

#include "pdr_background.h"
#include "pdr_calib.h"
#include "pdr_err.h"
#include "pdr_index.h"

#define PDR_DB_EXPANSION "expansion.h5"
#define PDR_DB_INDEX_X "index_expanded.faiss"
#define PDR_DB_CALIB_X "calibration_expanded.txt"
#define PDR_DB_EXPAND_PENDING "expansion.pending"

#define PDR_EXPAND_K 3
#define PDR_EXPAND_ALPHA 1.0f
#define PDR_EXPAND_SAME 0.9999f

struct pdr_hit;

/* Which of a row's m hits (best first, as pdr_db_search gives them) expand it: at most
 * PDR_EXPAND_K, cosine below PDR_EXPAND_SAME, score above 0. cosine[j], when not NULL, is hit
 * j's exact cosine (of the original vectors; the hit's own may come from a quantized index's
 * codes) and moves its score by the same amount. Writes their rows and weights (rows[], w[] of
 * PDR_EXPAND_K) and returns how many. */
size_t pdr_expand_pick(const struct pdr_hit *hits, const float *cosine, size_t m, int64_t *rows, float *w);

/* out = normalize(e + alpha * sum_j w[j] nb[j] / sum_j w[j]) over the m neighbours nb (m x dim,
 * row-major); out = e when m is 0 or no weight is positive. out may be e. */
void pdr_expand_vector(const float *e, const float *nb, const float *w, size_t m, int dim, float alpha, float *out);

/* An open expansion (the files above). */
typedef struct pdr_db_expansion pdr_db_expansion;

/* Open DBDIR's expansion when it has one (*ret = NULL when there is no expansion.h5): n rows
 * of dim, levels from the background bg_id. With calibrated 0 the expanded calibration is not
 * needed (makedb's own steps); else a missing one, or an expansion.pending, is an error
 * (an interrupted makedb --expand). */
int pdr_db_expansion_open(const char *dbdir, size_t n, int dim, const char *bg_id, int calibrated,
                          pdr_db_expansion **ret, pdr_err *err);
void pdr_db_expansion_free(pdr_db_expansion *x);

const pdr_index *pdr_db_expansion_index(const pdr_db_expansion *x);
const float *pdr_db_expansion_levels(const pdr_db_expansion *x);
const pdr_calib *pdr_db_expansion_calib(const pdr_db_expansion *x); /* NULL when not calibrated */
/* pdr_index_set_nprobe on the expanded index (pdr_db_set_nprobe sets both). */
int pdr_db_expansion_set_nprobe(pdr_db_expansion *x, int nprobe, pdr_err *err);
/* Row `row`'s original (expanded 0) or expanded (expanded 1) vector into out[dim]; thread-safe
 * (pread). */
int pdr_db_expansion_read(const pdr_db_expansion *x, int expanded, int64_t row, float *out, pdr_err *err);

/* pdr_db.c's side: a database's expansion (NULL when it has none), and pdr_db_open that does
 * not need the expanded calibration (used by the step that fits it). */
struct pdr_db;
const pdr_db_expansion *pdr_db_expansion_of(const struct pdr_db *db);
int pdr_db_open_for_calibration(const char *dbdir, struct pdr_db **ret_db, pdr_err *err);

/* Remove DBDIR's expansion files (calibration first) and its expansion.pending, as makedb does
 * before it writes anything: a database rebuilt without --expand must not keep a stale
 * expansion. */
int pdr_db_expansion_remove(const char *dbdir, pdr_err *err);

/* makedb --expand: create DBDIR/expansion.pending (durably) before any step that could leave
 * calibration.txt, and remove it once the expansion is calibrated. While it exists the
 * database does not open (pdr_db_open: "the database's expansion is incomplete"), except for
 * makedb's own steps (pdr_db_open_for_calibration). */
int pdr_db_expansion_begin(const char *dbdir, pdr_err *err);
int pdr_db_expansion_end(const char *dbdir, pdr_err *err);

#endif
