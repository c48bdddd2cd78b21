/* pdr_bulk.h: bulk embedding of a FASTA file into an HDF5 store (`pdr embed`, `pdr makedb`).
 *
 * Streams the FASTA in batches of about batch_residues residues; each batch is embedded by
 * `threads` worker threads (one sequence at a time per thread, each with its own encoder
 * workspace) and written, in input order, as one part file OUT.partial/part-NNNNNN.h5 (written
 * under a .tmp name, fsynced, then renamed, so a kill never leaves a half-written part). When
 * the input is exhausted the parts (after any existing OUT) are merged into OUT.tmp, which is
 * renamed to OUT. A rerun after a crash, or with an OUT that already exists, skips every id
 * already stored and embeds only the rest. Memory is bounded by the batch, not the input.
 * OUT.partial/ exists only while it holds parts: a run that stores nothing (input missing or
 * without a valid record) leaves no trace. A store keeps the options it was made with: a rerun
 * with another model, --fp16, --segments or --window/--stride than OUT (or its parts) holds is
 * refused before anything is written.
 *
 * A skipped record must be the one stored: every part records the hash of each protein's
 * residues (/seq_hash, pdr_store_seq_hash), the merge carries it into OUT, and a rerun in which a
 * stored id comes with other residues is refused (PDR_EINPUT, naming the FASTA, the record number,
 * the id and the store) before anything is written: the FASTA file is read once for this check
 * before the run. A stream (stdin, a pipe) cannot be read twice; it is checked record by record as
 * the run reads it, so parts of new records embedded before the mismatch stay in OUT.partial/.
 * Stores written before pdr kept hashes (no /seq_hash) are checked on the length only, and so is
 * OUT after a merge with such a store or part (the merge writes /seq_hash only when every row has
 * one).
 *
 * One run at a time per OUT: a run holds an exclusive lock on OUT.lock (pdr_lock.h) from before
 * it looks at OUT and OUT.partial/ until the parts are merged and removed, and deletes OUT.lock
 * when done. A second run into the same OUT meanwhile is refused at once (PDR_EINPUT, "OUT:
 * another pdr run is writing it") and changes nothing there; a lock file left by a killed run
 * does not block (the kernel drops the lock with its holder). `pdr makedb` embeds through here,
 * so DBDIR/embeddings.h5 is covered the same way (its later steps are not).
 *
 * Invalid records are reported through on_warning and skipped, unless strict is set, in which
 * case the first one is fatal. Callers should run OpenBLAS single-threaded (workers are threads).
 * HDF5 I/O happens on the calling thread only.
 */
#ifndef PDR_BULK_H
#define PDR_BULK_H

#include <stddef.h>

#include "pdr_encoder.h"
#include "pdr_err.h"

/* Default longest sequence: above titin (~35k aa), far below what would exhaust memory. */
#define PDR_MAX_LENGTH_DEFAULT 100000

typedef struct pdr_bulk_stats {
    size_t n_records;      /* records read from the input, valid or not */
    size_t n_embedded;     /* embedded in this run */
    size_t n_existing;     /* skipped because already stored */
    size_t n_invalid;      /* skipped because malformed */
    size_t n_residues;     /* residues embedded in this run */
    size_t n_total;        /* rows in the final store */
    double seconds;        /* wall time so far */
    double input_fraction; /* 0..1 of the input file read (pdr_fasta_fraction_read), -1 when unknown (stdin, pipes) */
} pdr_bulk_stats;

typedef struct pdr_bulk_opts {
    int threads;           /* worker threads, >= 1 */
    size_t batch_residues; /* residues per batch/part file; 0 = default (2,000,000) */
    size_t max_length;     /* longest accepted sequence; 0 = unlimited (default PDR_MAX_LENGTH_DEFAULT) */
    int fp16;              /* store embeddings as float16 */
    int strict;            /* first invalid record is fatal */
    int segments;          /* also store per-segment vectors (learned models only) */
    int window, stride;    /* segment window and stride in residues */
    int rerun_checked;     /* 1: the caller has checked this rerun with pdr_bulk_check_rerun (makedb):
                              the stored sequences are not read against the input a second time */
    void (*on_warning)(void *ctx, const char *msg);
    void (*on_progress)(void *ctx, const pdr_bulk_stats *stats, int final);
    void *ctx;
} pdr_bulk_opts;

void pdr_bulk_opts_default(pdr_bulk_opts *opts);

int pdr_bulk_embed(const pdr_encoder *enc, const char *fasta_path, const char *out_path, const pdr_bulk_opts *opts,
                   pdr_bulk_stats *ret_stats, pdr_err *err);

/* Check, changing nothing, that a rerun into out_path can extend what is stored there (OUT and
 * the live parts of an interrupted run, in that order) as a store of fasta_path in input order:
 * the model and options must match, and the stored proteins must be the first valid records of
 * fasta_path (same ids, same lengths and, where a store has /seq_hash, the same residues; read
 * with opts' max_length and strict). Nothing stored:
 * fine. Something stored and fasta_path "-": refused, as stdin cannot be read twice.
 * PDR_EINPUT with a message naming the first mismatch; PDR_EIO / PDR_EFORMAT for unreadable
 * files. `pdr makedb` calls it before it touches a database (pdr_db_make_prepare). */
int pdr_bulk_check_rerun(const pdr_encoder *enc, const char *fasta_path, const char *out_path,
                         const pdr_bulk_opts *opts, pdr_err *err);

#endif
