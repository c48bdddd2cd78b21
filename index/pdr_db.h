/* pdr_db.h: a searchable database directory, as `pdr makedb` writes it and `pdr search` and
 * `pdr serve` read it:
 *
 *   DBDIR/embeddings.h5   the HDF5 embedding store (ids, lengths, vectors, model attributes)
 *   DBDIR/index.faiss     the FAISS index over the store's rows (same row order); a segment
 *                         database's is Flat and not searched (below)
 *   DBDIR/calibration.txt the null-score fit that turns scores into E-values (pdr_calib.h)
 *   DBDIR/background.h5   every protein's background level (pdr_background.h), when the model
 *                         has a background sample: scores are then background-adjusted; for a
 *                         database made with --segments also every segment's (pdr_segdb.h)
 *   DBDIR/expansion.h5, index_expanded.faiss, calibration_expanded.txt
 *                         made with --expand: query expansion (pdr_db_expand.h), which searches
 *                         use unless told not to
 *
 * pdr_db_open loads ids, lengths, the index and the calibration into memory; the vectors stay
 * in the index only. A segment database holds them in its segment part instead (pdr_segdb.h, an
 * exhaustive search of its own): its index.faiss is checked against the store by its header
 * (rows, dim) but not loaded, so the vectors are not held twice. A pdr_db is read-only after
 * opening: concurrent pdr_db_search calls from several threads are safe.
 */
#ifndef PDR_DB_H
#define PDR_DB_H

#include <stddef.h>
#include <stdint.h>

#include "pdr_align.h"
#include "pdr_bulk.h"
#include "pdr_calib.h"
#include "pdr_cancel.h"
#include "pdr_encoder.h"
#include "pdr_segdb.h"
#include "pdr_err.h"
#include "pdr_lock.h"
#include "pdr_store.h"

#define PDR_DB_STORE "embeddings.h5"
#define PDR_DB_INDEX "index.faiss"
#define PDR_DB_CALIB "calibration.txt"
#define PDR_DB_LEVELS "background.h5"
#define PDR_DB_SEQS "sequences.h5"
#define PDR_DB_LOCK "makedb.lock"

typedef struct pdr_db pdr_db;

typedef struct pdr_hit {
    int64_t row;   /* database row */
    float score;   /* background-adjusted score (pdr_adjusted_score), or the cosine when the
                    * database has no levels */
    float cosine;  /* cosine of the two embeddings */
    double evalue; /* expected non-homologous hits at least this good in this database (with
                    * alignment re-ranking: of the combined evidence, pdr_db_align_hits) */
    float bits;    /* Smith-Waterman bit score when the hit was aligned, else 0 (an aligned
                    * pair never scores below 4.6 bits) */
} pdr_hit;

/* Default index: exact Flat below this many proteins; above, IVF(~4 sqrt(n) lists) with SQ8
 * codes: a quarter of Flat's memory (516k x 256 dims: 132 MB instead of 528 MB) and a small
 * fraction of its work per query. */
#define PDR_DB_IVF_MIN_ROWS 100000
/* nprobe is raised until recall@10 against exact search reaches this. */
#define PDR_DB_RECALL_TARGET 0.95

typedef struct pdr_db_index_report {
    char spec[64];       /* the factory string used */
    int nprobe;          /* chosen nprobe/efSearch (0 for Flat) */
    double recall_at_10; /* measured against exact search on n_sampled rows (1 for Flat) */
    size_t n_sampled;    /* database rows sampled as queries: min(n, 1,000); 0 for Flat */
} pdr_db_index_report;

/* Build DBDIR/index.faiss from DBDIR/embeddings.h5 with a FAISS factory spec (NULL or "" for
 * the default above). Approximate indexes get the smallest nprobe reaching the recall target,
 * saved with the index. Writes to a temp name and renames. */
int pdr_db_build_index(const char *dbdir, const char *spec, int threads, pdr_db_index_report *opt_report, pdr_err *err);
/* The same from n x dim vectors in memory, saved to index_path. */
int pdr_db_build_index_from(const float *vec, size_t n, int dim, const char *spec, const char *index_path,
                            pdr_db_index_report *opt_report, pdr_err *err);

/* Whether spec (NULL or "": the default) is a FAISS factory string an index of dim dimensions
 * can be made from: PDR_EINPUT with FAISS's message if not. Cheap (no vectors): makedb checks
 * --index with it before embedding anything. */
int pdr_db_check_index_spec(const char *spec, int dim, pdr_err *err);

/* makedb's first step (pdr_db_make.c), before it writes anything: dbdir must be a directory or
 * not exist ("DBDIR exists and is not a directory": PDR_EINPUT), the target FASTA must open
 * (unless a stream: below), and a database already in dbdir must be one this run can extend
 * (pdr_bulk_check_rerun on its store with bopts, which must carry the --segments, window and
 * stride the run will use): same model and options, its proteins the first valid records of
 * fasta, in order. A refusal (PDR_EINPUT, message naming the first mismatch) leaves dbdir as it
 * was. dbdir is created if needed and locked (DBDIR/makedb.lock, pdr_lock.h: a second makedb
 * into it while this one runs is refused, PDR_EINPUT); then the calibration (written last, so
 * that a run killed from here on leaves a directory search refuses and a rerun resumes) and any
 * expansion are removed, and so is what a killed makedb left (copies of target streams, the
 * temporary files of its steps); with expand, DBDIR/expansion.pending is created
 * (pdr_db_expansion_begin: the caller removes it with pdr_db_expansion_end once the expansion
 * is calibrated). On success *ret_lock is the caller's, to release (pdr_lock_release,
 * removing the file) when makedb ends; NULL on failure. */
int pdr_db_make_prepare(const pdr_encoder *enc, const char *fasta, const char *dbdir, const pdr_bulk_opts *bopts,
                        int expand, pdr_lock **ret_lock, char *spool, size_t spool_size, pdr_err *err);

/* A target that can be read only once: "-" (stdin), a pipe (a process substitution's
 * /dev/fd/N), a FIFO, a character device or a socket. pdr_db_make_prepare copies such a target
 * into dbdir, once it holds the lock, as a hidden .target-XXXXXX.fasta whose path it gives in
 * spool (spool_size bytes; "" for a file target): the caller makes the database from that copy
 * (read twice: embedding, then sequences; and checked against what dbdir holds like a file) and
 * removes it when makedb ends. On failure nothing is left. */
int pdr_db_target_is_stream(const char *fasta);

/* Open dbdir. Refused (with a message naming the file): no calibration (an interrupted makedb),
 * an index (a segment database's: its header) or levels that disagree with the store, and a calibration fitted on adjusted scores
 * without background.h5 or on cosines with one (pdr_calib.h, "scores"). */
int pdr_db_open(const char *dbdir, pdr_db **ret_db, pdr_err *err);
void pdr_db_free(pdr_db *db);

size_t pdr_db_count(const pdr_db *db);
int pdr_db_dim(const pdr_db *db);
const pdr_store_meta *pdr_db_meta(const pdr_db *db);
const char *pdr_db_path(const pdr_db *db);
/* The database's name: the last component of its directory's absolute path, without trailing
 * slashes (so that "." or "db/.." name the directory; reports and the service show it rather
 * than the path), into buf (size bytes). */
void pdr_db_name(const pdr_db *db, char *buf, size_t size);
/* The index's description (pdr_index_spec: "loaded Flat", "loaded IVF, nlist=1024"), or "Flat"
 * for a segment database, whose search is exhaustive. */
const char *pdr_db_index_spec(const pdr_db *db);
const char *pdr_db_id(const pdr_db *db, int64_t row);
int32_t pdr_db_length(const pdr_db *db, int64_t row);
/* nprobe (or efSearch) of the index and of the expansion's (pdr_index_set_nprobe); a no-op on a
 * segment database, as on Flat. */
int pdr_db_set_nprobe(pdr_db *db, int nprobe, pdr_err *err);
/* For a graph index (HNSW; pdr_index_is_graph), whose tuned breadth cannot be read back: search
 * with efSearch = max(k, nprobe when given (> 0), else PDR_DB_GRAPH_BREADTH), so that k hits come
 * back and the breadth is never below the tuning grid's top. A no-op on IVF and Flat indexes. */
#define PDR_DB_GRAPH_BREADTH 256
int pdr_db_fit_breadth(pdr_db *db, int k, int nprobe, pdr_err *err);

/* E-value of a plain (not expanded) score in this database; hits carry their own E-values. */
double pdr_db_evalue(const pdr_db *db, float score);

/* Whether scores are background-adjusted (the database has levels), and the id of the
 * background they came from ("" when not). */
int pdr_db_adjusted(const pdr_db *db);
const char *pdr_db_background_id(const pdr_db *db);

/* Whether a model's backgrounds (pdr_encoder_background, pdr_encoder_segment_background) are
 * the ones the database's levels came from, as pdr_db_search checks on every call: PDR_EINPUT
 * with a message saying to rebuild when not. For a service, to refuse at start what every
 * search would refuse. */
int pdr_db_check_backgrounds(const pdr_db *db, const pdr_background *bg, const pdr_background *seg_bg, pdr_err *err);

/* Whether the database was made with --expand (pdr_db_expand.h): pdr_db_search then expands
 * each query from its first search and scores it against the expanded database (scores,
 * cosines and E-values are those of the expanded vectors) unless queries->no_expand. */
int pdr_db_expanded(const pdr_db *db);

/* Expand n query vectors (n x dim, L2-normalized) against an expanded database: out (n x dim)
 * and their background levels out_levels[n]. PDR_EINPUT when the database has no expansion. */
int pdr_db_expand_queries(const pdr_db *db, const pdr_background *bg, const float *vec, size_t n, float *out,
                          float *out_levels, pdr_err *err);

/* makedb's expansion step, after the calibration (pdr_db_calibrate): expand every database
 * protein against the database, write DBDIR/expansion.h5 and DBDIR/index_expanded.faiss (index
 * spec as pdr_db_build_index); then pdr_db_calibrate(..., expanded = 1) writes the expanded
 * calibration. bg: the model's background (required). progress (may be NULL) is called after
 * each batch of rows with rows done and the total. Not for segment databases (PDR_EINPUT). */
typedef void (*pdr_db_expand_progress)(void *arg, size_t done, size_t total);
int pdr_db_write_expansion(const char *dbdir, const char *index_spec, const pdr_background *bg,
                           pdr_db_expand_progress progress, void *progress_arg, pdr_err *err);

/* Candidates fetched from the index per query when scores are adjusted: the k best by
 * adjusted score are taken from the k + max(k, PDR_DB_RERANK_EXTRA) best by cosine. */
#define PDR_DB_RERANK_EXTRA 64

/* Whether the database scores segments (made with --segments: pdr_segdb.h), and their window
 * and stride (0, 0 when not): queries need segment vectors cut the same way. */
int pdr_db_has_segments(const pdr_db *db);
void pdr_db_segment_window(const pdr_db *db, int *window, int *stride);
/* A segment database's stored segments of one row (to search the database's own proteins
 * without embedding them again, as easy-search does all-vs-all). */
pdr_query_segments pdr_db_row_segments(const pdr_db *db, int64_t row);

/* What a search needs of its queries. */
typedef struct pdr_db_queries {
    size_t n;
    const float *vec;              /* n x dim, L2-normalized */
    const pdr_background *bg;      /* the model's background (pdr_encoder_background) */
    const pdr_background *seg_bg;  /* its background of windows (segment databases) */
    const pdr_query_segments *seg; /* n queries' segment vectors (segment databases), or NULL */
    int threads;                   /* threads for a segment database's search (0: 1) */
    int no_expand;                 /* 1: do not use the database's expansion (pdr_db_expanded) */
} pdr_db_queries;

/* The k best rows for each query, one batched index call (or, for a segment database, one
 * exhaustive pass: pdr_segdb.h). A database with levels needs the same background as it was
 * made with (else PDR_EINPUT), and a segment database also the same segment background and the
 * queries' segments; a database without levels ignores both. hits holds n*k entries;
 * ret_counts[q] says how many of query q's k are real (fewer when the database is small or when
 * scores fall below min_score or E-values above max_evalue). Sorted by descending score, ties
 * by ascending row. */
int pdr_db_search(const pdr_db *db, const pdr_db_queries *queries, int k, float min_score, double max_evalue,
                  pdr_hit *hits, size_t *ret_counts, pdr_err *err);

/* ---- alignment re-ranking (pdr_db_align.c, pdr_db_seqs.c) */

/* Default number of each query's best embedding candidates that are aligned. */
#define PDR_DB_ALIGN_DEFAULT 50

/* The composition realignment (pdr_db_align.c) skips a hit whose alignment E-value is already
 * below PDR_DB_REALIGN_MIN_EVALUE unless its composition ratio is below PDR_DB_REALIGN_RATIO:
 * realigning only makes an E-value larger, and strong hits of ordinary composition, most of the
 * realignment's cost, lose little by it (at most the ratio's share of their gap costs). */
#define PDR_DB_REALIGN_MIN_EVALUE 1e-10
#define PDR_DB_REALIGN_RATIO 0.9

/* Whether the database has its sequences (DBDIR/sequences.h5), and one row's residues
 * (upper-case letters, NUL-terminated) read into *buf, which grows (realloc) to *cap bytes as
 * needed; the caller frees it. Safe from several threads, each with its own buffer. PDR_EIO if
 * the file cannot be read. */
int pdr_db_has_sequences(const pdr_db *db);
int pdr_db_sequence(const pdr_db *db, int64_t row, char **buf, size_t *cap, size_t *ret_len, pdr_err *err);
/* Whether the database keeps its proteins' FASTA descriptions (sequences.h5 /desc: the header
 * after the id; databases made before pdr kept them have none), and one row's description ("" for
 * a header without one, or a database without descriptions) into *buf as pdr_db_sequence does. */
int pdr_db_has_descriptions(const pdr_db *db);
int pdr_db_description(const pdr_db *db, int64_t row, char **buf, size_t *cap, pdr_err *err);

/* Write DBDIR/sequences.h5 from the FASTA the database's store was embedded from (read with the
 * same max_length, so the records the embedding skipped are skipped again); each record must
 * match its store row by id and length. Writes to a temp name and renames. */
int pdr_db_write_sequences(const char *dbdir, const char *fasta, size_t max_length, pdr_err *err);

/* Candidates per query a search must fetch to output k hits with n_align of them aligned:
 * max(k, min(n_align, database size)), or k when n_align is 0. */
size_t pdr_db_candidates(const pdr_db *db, int k, int n_align);

/* What a search keeps per query, and how it re-ranks. */
typedef struct pdr_db_params {
    int k;                    /* hits kept per query */
    int n_align;              /* best candidates aligned (pdr_db_align_hits); 0: none */
    float min_score;          /* embedding score cut */
    double max_evalue;        /* E-value cut, applied after re-ranking */
    pdr_alignment *alns;      /* NULL, or room like hits: every kept hit's traced alignment
                          * (pdr_align_trace); needs n_align >= k, so that every kept hit is aligned */
    int no_expand;            /* pdr_db_embed_and_search: as pdr_db_queries' no_expand */
    const pdr_cancel *cancel; /* NULL, or asked before each query's alignment: PDR_ECANCELLED */
} pdr_db_params;

/* Re-rank n queries' candidates (hits[q * kc ..], counts[q] of them, best first, as
 * pdr_db_search gives them with k = kc and no E-value cut): the first n_align are aligned to the
 * query (seqs[q], lens[q]; or, with seqs NULL, database row first_row + q), their E-values
 * become those of the combined evidence (see pdr_db_align.c; the others keep the embedding's),
 * and all are sorted by E-value.
 * counts[q] becomes the number kept: at most p->k, E-value <= p->max_evalue. bits is set on
 * aligned hits; with p->alns, alns[q * kc + i] is kept hit i's alignment. Queries are spread over
 * `threads` threads. PDR_EINPUT if the database has no sequences, or if p->alns is given with
 * p->n_align < p->k. */
int pdr_db_align_hits(const pdr_db *db, size_t n, const char *const *seqs, const int32_t *lens, size_t first_row,
                      const pdr_db_params *p, int threads, pdr_hit *hits, size_t kc, size_t *counts, pdr_err *err);

/* pdr_db_search, then (n_align > 0) pdr_db_align_hits over the first pdr_db_candidates(db, k,
 * n_align) candidates, with the E-value cut applied after re-ranking. Queries' residues as in
 * pdr_db_align_hits (seqs NULL: database rows first_row..). hits holds qs->n times
 * pdr_db_candidates(db, k, n_align) entries: query q's hits start at q times that. */
int pdr_db_search_aligned(const pdr_db *db, const pdr_db_queries *qs, const char *const *seqs, const int32_t *lens,
                          size_t first_row, const pdr_db_params *p, pdr_hit *hits, size_t *counts, pdr_err *err);

/* Embed a batch of queries (job: n, seqs, lengths, ids and emb, n x dim, filled here; ws[threads]
 * as pdr_batch_embed) and search them with pdr_db_search: with their segment vectors, cut with the
 * database's window and stride, when the database scores segments; then, with n_align > 0,
 * re-rank them by alignment (pdr_db_align_hits). enc must be the database's model. hits holds
 * n * pdr_db_candidates(db, k, n_align) entries: query q's hits start at q times that. */
struct pdr_batch_job;
int pdr_db_embed_and_search(const pdr_db *db, const pdr_encoder *enc, pdr_encoder_ws *const *ws, int threads,
                            struct pdr_batch_job *job, const pdr_db_params *p, pdr_hit *hits, size_t *counts,
                            pdr_err *err);

/* Write DBDIR/background.h5 from DBDIR/embeddings.h5 with the model's background
 * (pdr_encoder_background); bg NULL removes a stale one (the model has none). With seg_bg
 * (pdr_encoder_segment_background; the store must hold segments cut with window and stride)
 * the segment levels too. Writes to a temp name and renames. */
int pdr_db_write_levels(const char *dbdir, const pdr_background *bg, const pdr_background *seg_bg, int window,
                        int stride, pdr_err *err);
/* Read DBDIR/background.h5 if present (*ret_levels = NULL if not): n levels and the
 * background id (into ret_id, id_cap >= 17). */
int pdr_db_load_levels(const char *dbdir, size_t n, float **ret_levels, char *ret_id, size_t id_cap, pdr_err *err);
/* A segment database's part of DBDIR/background.h5: m segment levels, window, stride and the
 * segment background id (*ret_levels = NULL when the file has no /segment_levels). */
int pdr_db_load_segment_levels(const char *dbdir, size_t m, float **ret_levels, int *window, int *stride, char *ret_id,
                               size_t id_cap, pdr_err *err);

/* Fit DBDIR/calibration.txt for the database's model (enc must be that model): null scores are
 * scores (background-adjusted when enc has a background) of random sequences (UniProt background frequencies, lengths drawn from the database)
 * against sampled database proteins, plus pairs of sampled database proteins when the database
 * holds at least 1,000; with segments (a database made with --segments) the combined score of
 * pdr_segdb.h. Deterministic (fixed seed). The random sequences are embedded by
 * `threads` worker threads. */
int pdr_db_calibrate(const char *dbdir, const pdr_encoder *enc, int threads, int segments, pdr_err *err);
/* The same fit for the expanded scores of an expanded database (after pdr_db_write_expansion):
 * the random sequences are expanded against the database and scored against the sampled
 * proteins' expanded vectors, with expanded levels. Writes DBDIR/calibration_expanded.txt. */
int pdr_db_calibrate_expanded(const char *dbdir, const pdr_encoder *enc, int threads, pdr_err *err);

/* The sequence file's reader (pdr_db_seqs.c), used by pdr_db_open. */
typedef struct pdr_db_seqs pdr_db_seqs;
int pdr_db_seqs_open(const char *dbdir, const int32_t *lengths, size_t n, pdr_db_seqs **ret, pdr_err *err);
void pdr_db_seqs_free(pdr_db_seqs *s);
int pdr_db_seqs_read(const pdr_db_seqs *s, int64_t row, char **buf, size_t *cap, size_t *ret_len, pdr_err *err);
int pdr_db_seqs_has_descriptions(const pdr_db_seqs *s);
int pdr_db_seqs_description(const pdr_db_seqs *s, int64_t row, char **buf, size_t *cap, pdr_err *err);

#endif
