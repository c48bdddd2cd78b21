/* pdr_calib.h: E-values for embedding cosines.
 *
 * A cosine means different things for different models, so each database carries a fitted null
 * distribution: scores of pairs that are not homologs (random sequences with UniProt residue
 * frequencies and the database's length distribution against database proteins, plus random
 * pairs of database proteins). The upper tail above the 99th percentile u is fitted with an
 * exponential, P(S >= s) = q exp(-lambda (s - u)) (q = 0.01, lambda by maximum likelihood);
 * below u the empirical quantiles are used. E = N_db * P(S >= s): the expected number of
 * non-homologous hits scoring at least s in a database of N_db proteins.
 * Stored as a small text file (calibration.txt in the database directory): a header line
 * "pdr-calibration<TAB>1", the lines n_null, tail_q, threshold, lambda and quantiles in that
 * order, then optional "key<TAB>value" lines. The reader skips keys it does not know, so a newer
 * pdr may add some; pdr releases that predate the optional lines stop reading after quantiles,
 * so they still read newer files. Known optional key:
 *   scores   "adjusted" (fitted on background-adjusted scores: the database must have its
 *            background levels) or "cosine" (plain cosines: it must not); absent in files
 *            written before pdr recorded it (PDR_CALIB_SCORES_UNKNOWN: not checked).
 */
#ifndef PDR_CALIB_H
#define PDR_CALIB_H

#include <stddef.h>

#include "pdr_err.h"

#define PDR_CALIB_NQ 101

/* What kind of score a calibration was fitted on. */
enum pdr_calib_scores { PDR_CALIB_SCORES_UNKNOWN = 0, PDR_CALIB_SCORES_COSINE, PDR_CALIB_SCORES_ADJUSTED };

typedef struct pdr_calib {
    size_t n_null;                  /* null scores the fit used */
    double tail_q;                  /* fraction of null scores in the fitted tail */
    double threshold;               /* u: the (1 - tail_q) quantile */
    double lambda;                  /* exponential tail rate */
    double quantiles[PDR_CALIB_NQ]; /* quantiles[i] = the i-th percentile of null scores */
    int scores;                     /* enum pdr_calib_scores; the caller of pdr_calib_fit sets it */
} pdr_calib;

/* Fit from n >= 100 null scores (the array is sorted in place); scores is left UNKNOWN. */
int pdr_calib_fit(float *scores, size_t n, pdr_calib *ret_cal, pdr_err *err);
/* P(null score >= s). */
double pdr_calib_pvalue(const pdr_calib *cal, double s);
/* Write path (through a temp name and rename); the scores line only when scores is known. */
int pdr_calib_save(const pdr_calib *cal, const char *path, pdr_err *err);
/* Read path; PDR_EFORMAT for a file that is not version 1, or whose scores line holds an
 * unknown kind. */
int pdr_calib_load(const char *path, pdr_calib *ret_cal, pdr_err *err);
/* "adjusted", "cosine" or "unknown". */
const char *pdr_calib_scores_name(int scores);

#endif
