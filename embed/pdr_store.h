/* pdr_store.h: the embedding store, one HDF5 file per set of proteins.
 *
 * Layout (columnar, readable with h5py in three lines):
 *   /embeddings            N x D  float32, or IEEE half (h5py reads float16) when meta.fp16;
 *                                 chunked by rows, extendible (unlimited rows), uncompressed
 *                                 unless pdr_store_opts asks for deflate
 *   /ids                   N      variable-length UTF-8 strings
 *   /lengths               N      int32, residues per protein
 *   /seq_hash              N      uint64, pdr_store_seq_hash of each protein's residues (optional:
 *                                 present when meta.seq_hash; stores written before pdr kept it
 *                                 lack it). Lets a rerun tell a changed sequence from the stored one
 *   /segments/embeddings   M x D  same type as /embeddings (vectors of protein segments)
 *   /segments/protein      M      int64, row in /embeddings of the owning protein
 *   /segments/start        M      int32, 0-based first residue
 *   /segments/end          M      int32, one past the last residue (half-open)
 *   root attributes: format = "pdr-store", format_version = 1, model_name, model_version,
 *   dim, normalized (0/1), dtype ("float32" or "float16"), pdr_version, created (ISO-8601 UTC);
 *   encoder_products (meta.products, when not empty: absent in older stores);
 *   and, in a store whose segments were cut by pdr embed/makedb --segments, segment_window and
 *   segment_stride (residues; optional: stores written before pdr recorded them lack them).
 * pdr_store_create writes /segments with M = 0, so every store written here has the group;
 * pdr_store_open also accepts a store without it (M = 0). /seq_hash is written when the creator
 * asks for it (meta.seq_hash; pdr embed and makedb do) and read when present.
 *
 *   import h5py
 *   f = h5py.File("set.h5", "r")
 *   emb, ids = f["embeddings"][:], f["ids"].asstr()[:]
 *
 * Ownership: a pdr_store is either writing (pdr_store_create) or read-only (pdr_store_open);
 * pdr_store_close or pdr_store_free releases it. Functions that hand back memory say who frees it.
 *
 * Failure: every function returns 0 or a pdr_status and writes a message naming the file, the
 * dataset and the row into err. A missing or unreadable file is PDR_EIO; a file that is not
 * HDF5, is truncated or corrupt, or is HDF5 but not a valid pdr store (missing dataset or
 * attribute, wrong format_version, shapes that disagree) is PDR_EFORMAT. Bad arguments
 * (NULL id, invalid UTF-8, negative length, rows out of range) are PDR_EINPUT and leave the
 * store as it was. If a write fails inside HDF5 (PDR_EIO / PDR_EINTERNAL), the datasets may
 * disagree: the store refuses further appends and the file should be discarded (the embed
 * pipeline writes part files and renames, so a failed part is simply rewritten).
 *
 * Trust: validation covers what pdr owns (attributes, shapes, types). Parsing the file itself is
 * HDF5's, and HDF5 1.10's parser is not hardened against crafted files (fuzzing finds memory
 * errors in it within seconds; h5py crashes on the same files). Open stores you or pdr made,
 * as you would with h5py; do not open untrusted uploads in a long-running server.
 *
 * Durability: pdr_store_flush leaves the file on disk readable as it stands (everything appended
 * so far); pdr_store_close flushes too.
 *
 * Threads: not thread-safe. Make all HDF5 calls (this module, and any other HDF5 use in the
 * process) from one thread. Debian's HDF5 is built threadsafe with one global lock, so
 * concurrent calls would be correct but serialized anyway: nothing is gained by them.
 */
#ifndef PDR_STORE_H
#define PDR_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "pdr_err.h"

#define PDR_STORE_FORMAT "pdr-store"
#define PDR_STORE_FORMAT_VERSION 1
#define PDR_STORE_MAX_DIM 65536        /* keeps a chunk row and a D-row batch far below HDF5's limits */
#define PDR_STORE_MAX_WINDOW (1 << 20) /* segment window and stride, as the CLI accepts them */

typedef struct pdr_store pdr_store;

typedef struct pdr_store_meta {
    char model_name[128];    /* NUL-terminated */
    char model_version[128]; /* NUL-terminated */
    int dim;                 /* D, 1..PDR_STORE_MAX_DIM */
    int normalized;          /* 1 if rows are L2-normalized */
    int fp16;                /* 1: stored as IEEE half; reads always return float */
    char pdr_version[32];    /* set by pdr_store_create to PDR_VERSION; input ignored */
    char created[32];        /* ISO-8601 UTC; pdr_store_create uses the input if non-empty
                              * (reproducible files), else the current time */
    int segment_window;      /* window and stride /segments was cut with (both >= 1), or both 0:
                              * no segments, or a store that predates these attributes */
    int segment_stride;
    char products[64]; /* how the encoder's dense products ran for these rows
                              * (pdr_encoder_precision: "bfloat16", "float32 (AVX2 FMA kernels)",
                              * ...), "mixed" when rows came from runs that differed, or "": not
                              * recorded (kmer3, older stores, or a merge with one of those) */
    int seq_hash;      /* 1: the store has /seq_hash (pdr_store_create makes it, and every
                              * append must then give the hashes); 0: it has none */
} pdr_store_meta;

/* Storage choices that do not change what is stored. Zero-initialized means the defaults. */
typedef struct pdr_store_opts {
    size_t chunk_rows; /* rows per chunk of every dataset; 0: /embeddings chunks of ~1 MiB
                        * and at most 4096 rows (1024 rows at D = 256 float32), /ids and
                        * /lengths chunks of 8192 rows. A chunk is stored whole, so small values
                        * make small files (tests, fuzz corpus); large sets want the default. */
    int deflate_level; /* 0: no compression (default); 1..9: shuffle + deflate */
    size_t rows_hint;  /* the proteins the caller will append, when known (a part file of one batch, a
                        * merge), else 0: with the default chunking, chunks are cut to it, so that a
                        * store of a few proteins is not a whole 1 MiB chunk */
} pdr_store_opts;

/* Create (or truncate) path and write the attributes and empty datasets. meta->dim must be in
 * 1..PDR_STORE_MAX_DIM, the strings NUL-terminated, and segment_window and segment_stride both 0
 * or both in 1..PDR_STORE_MAX_WINDOW (PDR_EINPUT otherwise). On success
 * *ret_st is a writing store; on failure it is NULL. */
int pdr_store_create(const char *path, const pdr_store_meta *meta, pdr_store **ret_st, pdr_err *err);

/* As pdr_store_create, with storage options (opts may be NULL: defaults). */
int pdr_store_create_opts(const char *path, const pdr_store_meta *meta, const pdr_store_opts *opts, pdr_store **ret_st,
                          pdr_err *err);

/* Append n proteins: ids[i] (non-NULL UTF-8), lengths[i] >= 0, opt_seq_hash[i] (the
 * pdr_store_seq_hash of protein i's residues: required when the store has /seq_hash, NULL when it
 * has none; PDR_EINPUT otherwise), emb row-major n x dim. The rows are converted to half here when
 * the store is fp16 (round to nearest even). n = 0 is a no-op. Append in batches (hundreds to
 * thousands of rows): each call extends and writes each dataset once, so 10^8 rows in batches of
 * 1024 is 10^5 calls. */
int pdr_store_append(pdr_store *st, size_t n, const char *const *ids, const int32_t *lengths,
                     const uint64_t *opt_seq_hash, const float *emb, pdr_err *err);

/* Append m segment vectors: protein[i] must be a row already appended (0 <= protein < count),
 * 0 <= start[i] < end[i]; emb is m x dim. That end does not pass the protein's length is the
 * caller's to ensure (checking it would read /lengths back). */
int pdr_store_append_segments(pdr_store *st, size_t m, const int64_t *protein, const int32_t *start, const int32_t *end,
                              const float *emb, pdr_err *err);

/* Write everything appended so far to disk so that the file, as it is on disk now, opens and
 * reads with pdr_store_open and h5py. */
int pdr_store_flush(pdr_store *st, pdr_err *err);

/* Finish (flush and close) a store, writing or read-only. Frees st even on error; NULL is fine.
 * Returns the first error met. */
int pdr_store_close(pdr_store *st, pdr_err *err);

/* Close without reporting errors; NULL is fine. For cleanup paths. */
void pdr_store_free(pdr_store *st);

/* Open path read-only and validate it: the format and format_version attributes, every required
 * attribute (and segment_window/segment_stride when present: both, in range),
 * the datasets' ranks and types, /ids, /lengths and /embeddings with the same N, the
 * dim attribute equal to D, dtype agreeing with the stored type, /seq_hash (if present: 64-bit
 * integers, N of them; meta.seq_hash says whether it is), and the four /segments datasets (if
 * present) with the same M. Any failure is PDR_EFORMAT (PDR_EIO if the file cannot
 * be read at all) with a message naming the file. */
int pdr_store_open(const char *path, pdr_store **ret_st, pdr_err *err);

/* The store's metadata (owned by st). */
const pdr_store_meta *pdr_store_meta_of(const pdr_store *st);

/* N, the number of proteins; M, the number of segment vectors. */
size_t pdr_store_count(const pdr_store *st);
size_t pdr_store_segment_count(const pdr_store *st);

/* Read rows start..start+n-1 of /embeddings into emb (n x dim floats, caller-allocated),
 * converted from half if the store is fp16. Rows past N are PDR_EINPUT. */
int pdr_store_read(pdr_store *st, size_t start, size_t n, float *emb, pdr_err *err);

/* Read ids (and lengths, if non-NULL) of rows start..start+n-1 into the caller's array of n
 * pointers. Each ids[i] is malloc'd: the caller frees them (pdr_store_free_ids). On error, ids[]
 * is all NULL (set before anything else is checked), so freeing it is always safe. */
int pdr_store_read_ids(pdr_store *st, size_t start, size_t n, char **ids, int32_t *lengths, pdr_err *err);

/* Read /seq_hash of rows start..start+n-1 into seq_hash (n values, caller-allocated). A store
 * without /seq_hash (meta.seq_hash 0) is PDR_EINPUT. */
int pdr_store_read_seq_hash(pdr_store *st, size_t start, size_t n, uint64_t *seq_hash, pdr_err *err);

/* Read segment rows start..start+m-1; any output pointer may be NULL to skip that dataset. */
int pdr_store_read_segments(pdr_store *st, size_t start, size_t m, int64_t *protein, int32_t *seg_start,
                            int32_t *seg_end, float *emb, pdr_err *err);

/* Whole-file helper for small and medium sets: open, read everything, close. meta may be NULL.
 * On success the caller owns *ret_ids (pdr_store_free_ids(ids, n) then free(ids)), *ret_lengths
 * and *ret_emb (free); for an empty store they are NULL and *ret_n is 0. On error all are NULL. */
int pdr_store_read_all(const char *path, pdr_store_meta *meta, size_t *ret_n, char ***ret_ids, int32_t **ret_lengths,
                       float **ret_emb, pdr_err *err);

/* Free the n malloc'd strings in ids and set them to NULL; the array itself stays the caller's
 * (it may be on the stack). ids = NULL is fine. */
void pdr_store_free_ids(char **ids, size_t n);

/* Process-wide HDF5 setup for an executable (main calls these; libraries and tests need not).
 * HDF5 closes every file still open at exit, from an atexit handler; a file whose H5Fclose
 * failed (a full disk while writing) stays registered half torn down, and that handler then
 * crashes (SIGSEGV in H5F__close_cb, HDF5 1.10). pdr_store_process_begin, called before any
 * other HDF5 call, turns the handler off; pdr_store_process_end(clean) shuts HDF5 down (H5close,
 * freeing its memory) when clean is 1, which the caller passes only when the run succeeded (so
 * every file closed), and otherwise leaves the library to the operating system. */
void pdr_store_process_begin(void);
void pdr_store_process_end(int clean);

/* The hash /seq_hash keeps: 64-bit FNV-1a over the n residue bytes as embedded (the upper-case
 * letters pdr_fasta hands out), e.g. "" -> 0xcbf29ce484222325. Not cryptographic: it tells an
 * edited sequence from the stored one, it does not stop a forged one. */
uint64_t pdr_store_seq_hash(const char *residues, size_t n);

/* IEEE 754 binary16 conversion used by fp16 stores, round to nearest even; NaN stays NaN,
 * values past the half range become infinity. Exposed so that tests and other modules agree. */
uint16_t pdr_half_from_float(float f);
float pdr_half_to_float(uint16_t h);

#endif
