/* pdr_batch.h: embed an in-memory set of sequences with several threads.
 *
 * Used by bulk embedding (pdr_bulk.h), by `pdr search` for its queries and by the HTTP service.
 * Threads take sequences one at a time from a shared counter; each thread uses its own
 * workspace ws[t], which the caller creates once and reuses across batches. Run OpenBLAS
 * single-threaded when threads > 1.
 */
#ifndef PDR_BATCH_H
#define PDR_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "pdr_cancel.h"
#include "pdr_encoder.h"
#include "pdr_err.h"

typedef struct pdr_batch_job {
    size_t n;
    char *const *seqs;      /* n uppercase sequences */
    const int32_t *lengths; /* n lengths */
    char *const *ids;       /* n ids, for error messages (may be NULL) */
    float *emb;             /* out: n x dim */
    /* Optional segment vectors: set window > 0 and give n-long arrays; each record's arrays
     * are allocated here (malloc) and owned by the caller afterwards. */
    int window, stride;
    size_t *n_seg;
    int32_t **seg_start, **seg_end;
    float **seg_emb;
    /* Optional: asked before each sequence; when it says stop, PDR_ECANCELLED (the embeddings
     * and segments of the sequences done are left as they are). */
    const pdr_cancel *cancel;
} pdr_batch_job;

int pdr_batch_embed(const pdr_encoder *enc, pdr_encoder_ws *const *ws, int threads, pdr_batch_job *job, pdr_err *err);

#endif
