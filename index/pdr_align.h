/* pdr_align.h: Smith-Waterman local alignment scores (BLOSUM62, gap open 11, extend 1: a gap of
 * k residues costs 11 + k, as BLASTp's defaults), and the statistics that turn them into
 * p-values and combine them with an embedding score's.
 *
 * pdr uses it to re-rank a query's best embedding candidates (pdr_db.h): each candidate's
 * alignment p-value and embedding p-value are combined (pdr_align_combine), so a pair that either
 * signal finds stays found.
 *
 * Speed: Farrar's striped algorithm (8-bit on AVX2, 16-bit over 16 lanes) for one pair at a
 * time, and an inter-sequence kernel (one target per lane) for many (pdr_align_scores). A score
 * too large for 16 bits (above PDR_ALIGN_SAT) is recomputed with the 32-bit scalar reference
 * pdr_align_score_ref, so results never saturate.
 *
 * Threads: a pdr_align_query holds its own work arrays; use one per thread.
 */
#ifndef PDR_ALIGN_H
#define PDR_ALIGN_H

#include <stddef.h>
#include <stdint.h>

#include "pdr_err.h"

#define PDR_ALIGN_GAP_OPEN 11
#define PDR_ALIGN_GAP_EXTEND 1
/* Karlin-Altschul parameters of BLOSUM62 with gaps 11/1 (NCBI BLAST's table). */
#define PDR_ALIGN_LAMBDA 0.267
#define PDR_ALIGN_K 0.041
/* Striped scores at or above this are recomputed in 32 bits. */
#define PDR_ALIGN_SAT 30000
#define PDR_ALIGN_LETTERS 25 /* letter indices (pdr_align_letter): 0 .. 24 */

typedef struct pdr_align_query pdr_align_query;

/* A query's striped score profile for seq[0..len) (letters as in FASTA; lower case is fine,
 * anything outside BLOSUM62's alphabet scores as X). len must be >= 1. */
int pdr_align_query_create(const char *seq, size_t len, pdr_align_query **ret_q, pdr_err *err);
void pdr_align_query_free(pdr_align_query *q); /* NULL is fine */

/* Best local alignment score of the query against target[0..tlen) (0 for tlen 0). */
int pdr_align_score(pdr_align_query *q, const char *target, size_t tlen);

/* The scores of the query against n targets (scores[t] as pdr_align_score gives for targets[t],
 * tlens[t]), faster when many are related to it: pairs whose scores pass the 8-bit first pass go
 * to an inter-sequence kernel (one target per SIMD lane, 16 at a time), whose cost does not grow
 * with the score. PDR_ENOMEM on failure. */
int pdr_align_scores(pdr_align_query *q, size_t n, const char *const *targets, const size_t *tlens, int *scores,
                     pdr_err *err);

/* The same score by the plain 32-bit Gotoh recurrence: the reference the striped code is tested
 * against, and its fallback for scores beyond 16 bits. */
int pdr_align_score_ref(const char *a, size_t alen, const char *b, size_t blen);

/* Composition-scaled scoring, as BLASTp realigns a pair under -comp_based_stats 1: BLOSUM62
 * multiplied by the pair's ratio (pdr_align_comp_ratio, below) and the gap costs left whole, so
 * that a gappy alignment of a biased pair loses more than the ratio. Scores are in units of
 * 1/PDR_ALIGN_UNIT: the matrix entries are round(PDR_ALIGN_UNIT * ratio * BLOSUM62), the gaps
 * PDR_ALIGN_UNIT x 11 to open and x 1 to extend. */
#define PDR_ALIGN_UNIT 8
typedef struct pdr_align_matrix {
    int16_t s[PDR_ALIGN_LETTERS][PDR_ALIGN_LETTERS];
} pdr_align_matrix;
void pdr_align_matrix_scaled(double ratio, pdr_align_matrix *m);

/* The best local score of a and b under m (units of 1/PDR_ALIGN_UNIT), by the 32-bit recurrence;
 * -1 when out of memory. */
int pdr_align_score_scaled_ref(const char *a, size_t alen, const char *b, size_t blen, const pdr_align_matrix *m);

/* The scores of the query against n targets, target t under its own matrix mats[t] (units of
 * 1/PDR_ALIGN_UNIT; equal to pdr_align_score_scaled_ref), by the inter-sequence kernel (one
 * target per lane) and the reference past PDR_ALIGN_SAT. PDR_ENOMEM on failure. */
int pdr_align_scores_scaled(pdr_align_query *q, size_t n, const char *const *targets, const size_t *tlens,
                            const pdr_align_matrix *const *mats, int *scores, pdr_err *err);

/* The kernels this CPU runs: "AVX2: striped 8-bit, then 16-bit one target per lane" or
 * "SSE2: 16-bit one target per lane" (pdr_align_scores; pdr_align_score uses striped 16-bit). */
const char *pdr_align_simd(void);

/* A local alignment with its path, as BLAST's tabular output reports it. */
typedef struct pdr_alignment {
    int score;                          /* raw score: equals pdr_align_score_ref */
    int32_t qstart, qend, tstart, tend; /* 1-based, inclusive */
    int32_t length;                     /* columns: identities + mismatches + gap columns */
    int32_t identities, mismatches;     /* aligned residue pairs, equal or not */
    int32_t gap_opens;                  /* gap runs (in either sequence) */
} pdr_alignment;

/* Cells of direction bytes pdr_align_trace keeps at a time when max_cells is 0 (16 MiB). */
#define PDR_ALIGN_TRACE_CELLS ((size_t)16 << 20)

/* The best local alignment of a[0..alen) and b[0..blen) with its path (Gotoh, the scoring
 * above), in O(alen * blen) time. Memory stays within about max_cells bytes (0: the default
 * above) plus checkpoint rows: a larger pair is traced strip by strip, each strip recomputed
 * from a checkpoint row of the first pass, so the result is exact at any length. Of equal-
 * scoring paths it takes the one ending first (row-major) and, going back, prefers a match
 * column, then a gap in b, then a gap in a. An alignment of score 0 (nothing matches) has
 * length 0 and coordinates 0. */
int pdr_align_trace(const char *a, size_t alen, const char *b, size_t blen, size_t max_cells, pdr_alignment *r,
                    pdr_err *err);

/* Cells of 16-bit direction words pdr_align_traces keeps for 16 targets at a time when
 * max_bytes is 0 (32 MiB): a batch whose query x longest target is larger is traced one target at
 * a time by pdr_align_trace. */
#define PDR_ALIGN_TRACES_BYTES ((size_t)32 << 20)

/* pdr_align_trace of a against each of n targets, into r[0..n): the same alignments, the same
 * path among equal-scoring ones. The targets are traced 16 at a time, one per lane of the
 * inter-sequence kernel, while their directions fit in max_bytes (0: the default above); the
 * others, and any whose score passes PDR_ALIGN_SAT, one at a time. */
int pdr_align_traces(const char *a, size_t alen, size_t n, const char *const *b, const size_t *blen, size_t max_bytes,
                     pdr_alignment *r, pdr_err *err);

/* For pdr_align_trace.c and pdr_align_traces.c: the letter index of a residue, BLOSUM62's row of
 * a letter index, and the traceback. A cell's direction byte says where H came from
 * (PDR_ALIGN_DIR_ZERO: a fresh start; the diagonal; V, a gap in b: a residue of a against nothing;
 * L, a gap in a) and whether V and L extended a gap (the _EXT bits) or opened one. */
int pdr_align_letter(char c);
const int8_t *pdr_align_blosum62_row(int letter_index);
enum {
    PDR_ALIGN_DIR_ZERO = 0,
    PDR_ALIGN_DIR_DIAG = 1,
    PDR_ALIGN_DIR_V = 2,
    PDR_ALIGN_DIR_L = 3,
    PDR_ALIGN_DIR_V_EXT = 4,
    PDR_ALIGN_DIR_L_EXT = 8
};
typedef uint8_t (*pdr_align_dir_fn)(void *ctx, size_t i, size_t j);
/* Walk the path back from the best cell (i, j) (1-based; la, lb: letter indices), reading each
 * cell's direction with dir(ctx, i, j), into r's coordinates and counts (r->score is the
 * caller's). */
void pdr_align_walk(const uint8_t *la, const uint8_t *lb, size_t i, size_t j, pdr_align_dir_fn dir, void *ctx,
                    pdr_alignment *r);

/* Bit score of a raw score: (lambda * score - ln K) / ln 2. */
double pdr_align_bits(double score);

/* Probability that two unrelated sequences of m and n residues align at least this well:
 * 1 - exp(-K m n exp(-lambda score)); 1 for a score <= 0 (nothing aligned). */
double pdr_align_pvalue(double score, size_t m, size_t n);

/* Composition-based statistics, as BLAST's mode 1 (Schaffer et al. 2001): two sequences rich
 * in the same residues score higher by chance than BLOSUM62's background assumes, so before the
 * p-value a pair's score is multiplied by lambda_u(a, b) / lambda_u(background), where
 * lambda_u solves sum_ij a_i b_j exp(lambda s_ij) = 1 over the 20 standard residues with their
 * frequencies in the two sequences. The ratio is clamped to [PDR_ALIGN_RATIO_MIN, 1]: it only
 * ever makes a p-value more conservative. */
#define PDR_ALIGN_AA 20
#define PDR_ALIGN_RATIO_MIN 0.5
/* Ungapped lambda of BLOSUM62 at the Robinson and Robinson background frequencies. */
#define PDR_ALIGN_LAMBDA_UNGAPPED 0.3176

typedef struct pdr_align_comp {
    double f[PDR_ALIGN_AA]; /* frequencies in ARNDCQEGHILKMFPSTWYV order; all 0: no standard residue */
} pdr_align_comp;

/* Frequencies of the 20 standard residues in seq[0..len) (others are not counted). */
void pdr_align_composition(const char *seq, size_t len, pdr_align_comp *c);

/* The Robinson and Robinson background frequencies (BLAST's). */
void pdr_align_background(pdr_align_comp *c);

/* lambda_u(a, b): the positive root above; 0 when there is none (the expected score is not
 * negative, or a composition is empty). */
double pdr_align_lambda_u(const pdr_align_comp *a, const pdr_align_comp *b);

/* The score scale for the pair: lambda_u(a, b) / PDR_ALIGN_LAMBDA_UNGAPPED clamped to
 * [PDR_ALIGN_RATIO_MIN, 1]; 1 when a composition is empty. */
double pdr_align_comp_ratio(const pdr_align_comp *a, const pdr_align_comp *b);

/* The combined p-value of two tests of the same pair: min(1, 2 min(p1, p2)) (Bonferroni), valid
 * however the two depend on each other. Among a query's best embedding candidates the embedding
 * and alignment p-values are not independent (pairs that embed close also align better than
 * the alignment null says), and Fisher's method, which assumes independence, gave E-values too
 * small (README.md, "Alignment re-ranking"). Inputs are clamped to [1e-300, 1]. */
double pdr_align_combine(double p1, double p2);

#endif
