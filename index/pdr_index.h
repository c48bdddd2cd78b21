/* pdr_index.h: the vector index, a thin wrapper over FAISS's C API, plus an exact brute-force
 * top-k (OpenBLAS sgemm) to check it against.
 *
 * Metric: always inner product. Callers L2-normalize their vectors, so scores are cosines.
 * Rows: the index numbers vectors in the order they were added, from 0; these are the rows of
 * the embedding store when it is added in store order.
 * Spec: a FAISS index factory string. "Flat" (exact, the default for NULL or "") or an
 * approximate index such as "IVF1024,SQ8", "IVF4096,PQ32", "HNSW32". IVF needs at least nlist
 * training vectors (FAISS warns on stderr below 39 per list).
 *
 * Results: for each query, k (score, row) pairs sorted by descending score, ties by ascending
 * row. When fewer than k rows come back (k above the count, or an IVF probe that finds fewer),
 * the tail holds row -1 and score -FLT_MAX (FAISS's own filler). k is capped at the count before
 * FAISS sees it, so a huge k on a small index costs nothing.
 *
 * Ownership: pdr_index_build / pdr_index_create / pdr_index_load hand back an index the caller
 * frees with pdr_index_free. Input vectors are copied into the index; the caller keeps its
 * arrays. Output arrays (nq*k scores and rows) belong to the caller.
 *
 * Failure: 0 or a pdr_status, message in err. Bad arguments, a NaN or infinite component (the
 * message names the row and component), or a spec FAISS cannot parse or train: PDR_EINPUT.
 * A file that cannot be opened, written or synced: PDR_EIO. A file that is not a FAISS index,
 * is truncated, or holds a non-inner-product index: PDR_EFORMAT. Messages quote FAISS's own
 * text (faiss_get_last_error) where FAISS failed. A failed call leaves the index as it was,
 * except a failed pdr_index_add, which may have added part of its rows (the count says how many).
 *
 * Threads: pdr_index_search (and save, count, dim, spec) may run concurrently from many threads
 * on one index while nothing modifies it; add, train and set_nprobe must not overlap any other
 * call on the same index. FAISS parallelizes build, add and batched search with OpenMP, and the
 * brute force runs on OpenBLAS threads: set both once in main, e.g. omp_set_num_threads(n) and
 * openblas_set_num_threads(n) (or OMP_NUM_THREADS / OPENBLAS_NUM_THREADS). A server that runs
 * one search per worker thread wants both at 1, or N workers x M threads oversubscribe the cores.
 */
#ifndef PDR_INDEX_H
#define PDR_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "pdr_err.h"

/* At most this many rows train an index that needs training (IVF centroids, PQ/SQ codebooks):
 * a fixed-seed uniform sample when more are given. 256 per list for IVF1024; FAISS itself
 * subsamples further where it wants fewer. */
#define PDR_INDEX_MAX_TRAIN ((size_t)262144)

/* Rows per faiss_Index_add call: bounds the temporary memory of IVF assignment and encoding. */
#define PDR_INDEX_ADD_CHUNK ((size_t)65536)

typedef struct pdr_index pdr_index;

/* Create an index from spec (NULL or "" = "Flat"), train it on vectors when it needs training
 * (on a sample of at most PDR_INDEX_MAX_TRAIN rows), then add all n rows (rows 0..n-1).
 * vectors is n x dim, row-major. n may be 0 for an index that needs no training.
 * For data that does not fit in memory, use pdr_index_create + pdr_index_train on a sample +
 * pdr_index_add in chunks instead. On failure *ret_ix is NULL. */
int pdr_index_build(const float *vectors, size_t n, int dim, const char *spec, pdr_index **ret_ix, pdr_err *err);

/* Create an empty index from spec (NULL or "" = "Flat"). It may need training before rows can
 * be added (pdr_index_is_trained). On failure *ret_ix is NULL. */
int pdr_index_create(int dim, const char *spec, pdr_index **ret_ix, pdr_err *err);

/* 1 when rows can be added (Flat and HNSW always; IVF/PQ/SQ after pdr_index_train). */
int pdr_index_is_trained(const pdr_index *ix);

/* Train on n sample rows (n x dim; a fixed-seed sample of PDR_INDEX_MAX_TRAIN rows is used when
 * n is larger). The sample should look like the data to come: take it uniformly from the whole
 * store, not from its first rows (stores follow FASTA order, often grouped by family).
 * A no-op on an index that is already trained (Flat and HNSW always are). Training needs at
 * least nlist rows for IVF (PDR_EINPUT otherwise, with FAISS's message). */
int pdr_index_train(pdr_index *ix, const float *vectors, size_t n, pdr_err *err);

/* Append n rows (n x dim); they get rows count..count+n-1. PDR_EINPUT on an untrained index or
 * non-finite values (checked before anything is added). */
int pdr_index_add(pdr_index *ix, const float *vectors, size_t n, pdr_err *err);

/* Write the index to path atomically: path.tmp is written and fsynced, then renamed over path
 * and the directory fsynced, so a crash never leaves a half-written file under path (one writer
 * per path: two concurrent saves share path.tmp). On failure path.tmp is removed and path is
 * as it was. The file is a plain FAISS index (faiss.read_index reads it). */
int pdr_index_save(const pdr_index *ix, const char *path, pdr_err *err);

/* Read an index written by pdr_index_save (or by FAISS with the inner-product metric).
 * Missing/unreadable file: PDR_EIO; garbage, truncated, trailing bytes, or not inner product:
 * PDR_EFORMAT. pdr_index_spec of a loaded index describes it ("loaded IVF, nlist=1024").
 * Index files are trusted input: FAISS believes the sizes in them, so a crafted file can make
 * it allocate without bound (an error without sanitizers, an abort under ASan). */
int pdr_index_load(const char *path, pdr_index **ret_ix, pdr_err *err);

/* The row count and dimension of the index in path, from the header FAISS writes at the start of
 * every index file, without reading the rest: for a caller that checks a file it does not search
 * (a segment database's index.faiss, pdr_db.c). Missing/unreadable file: PDR_EIO; shorter than
 * the header, no header, or not inner product: PDR_EFORMAT. A file whose header is intact but
 * whose codes are damaged or cut passes (pdr_index_load would refuse a cut one). */
int pdr_index_read_header(const char *path, size_t *ret_count, int *ret_dim, pdr_err *err);

/* Search breadth, nprobe >= 1: IVF lists probed (nprobe, capped at nlist here: more lists than
 * there are would break the fast search path), or the HNSW candidate list (efSearch; give at
 * least k: FAISS 1.7.3 stops an HNSW search after efSearch steps and can return fewer than k
 * hits). A no-op on Flat and on other index types. Saved with the index. Not concurrent with
 * searches: set it before serving. */
int pdr_index_set_nprobe(pdr_index *ix, int nprobe, pdr_err *err);
/* The most lists an IVF index can visit (its nlist), or 0 when the index is not a plain IVF. */
int pdr_index_nprobe_limit(const pdr_index *ix);
/* 1 when the index is neither a plain IVF nor Flat (HNSW, or an IVF inside a transform): its
 * saved breadth cannot be read back through FAISS's C API, so searches set one (pdr_db). */
int pdr_index_is_graph(const pdr_index *ix);

/* Top-k rows for nq queries (nq x dim, row-major) in one batched call: scores[q*k + j] and
 * rows[q*k + j] (both nq*k, caller-allocated) as described at the top. k >= 1; nq may be 0.
 * For fewer than 20 queries on an IVF with a flat coarse quantizer (pdr's IVF indexes), the
 * coarse step (query x centroid scores, the nprobe best lists) runs in OpenBLAS instead of
 * FAISS's scalar loop (~1 ms less per query at 4096 lists); FAISS scans the lists. Environment
 * PDR_FAISS_COARSE=1 leaves it all to FAISS (for comparison). */
int pdr_index_search(const pdr_index *ix, const float *queries, size_t nq, int k, float *scores, int64_t *rows,
                     pdr_err *err);

size_t pdr_index_count(const pdr_index *ix); /* rows added so far */
int pdr_index_dim(const pdr_index *ix);
const char *pdr_index_spec(const pdr_index *ix); /* factory string, or "loaded ..." */

/* Release the index. NULL is fine. */
void pdr_index_free(pdr_index *ix);

/* How FAISS's scalar-quantizer kernels (the IVF,SQ8 list scan) were compiled: "avx2" when the
 * build used PDR_FAISS_AVX2 (see CMakeLists.txt), else "baseline" (Debian's libfaiss.a). */
const char *pdr_index_simd(void);

/* 0 when this CPU runs this build; PDR_EINPUT with a message naming the rebuild option when the
 * build needs AVX2/FMA/F16C and the CPU lacks one. pdr_index_create and pdr_index_load call it. */
int pdr_index_check_cpu(pdr_err *err);

/* Exact inner-product top-k of nq queries over the n x dim matrix db, in blocks with
 * cblas_sgemm: same output contract as pdr_index_search (sorted, ties by ascending row, the
 * k-th place decided by ascending row too, -1 / -FLT_MAX padding past n). Scores agree with
 * FAISS's Flat to float rounding (~1e-6), not bit for bit. Non-finite input: PDR_EINPUT. */
int pdr_topk_bruteforce(const float *db, size_t n, int dim, const float *queries, size_t nq, int k, float *scores,
                        int64_t *rows, pdr_err *err);

/* recall@k: the fraction of exact results (rows >= 0 in exact_rows, nq x k) that appear among
 * the same query's k approximate rows. 1.0 when exact_rows holds no row at all (or nq is 0);
 * 0.0 for k < 1 or NULL arrays. */
double pdr_recall_at_k(const int64_t *exact_rows, const int64_t *approx_rows, size_t nq, int k);

#endif
