/* pdr_db_query.c: embed a batch of queries and search them, with segment vectors when the
 * database scores segments (pdr_segdb.h), then re-rank by alignment (pdr_db_align.c). Shared by
 * `pdr search` and the HTTP service. */
#include <stdlib.h>
#include <string.h>

#include "pdr_batch.h"
#include "pdr_db.h"

int pdr_db_embed_and_search(const pdr_db *db, const pdr_encoder *enc, pdr_encoder_ws *const *ws, int threads,
                            pdr_batch_job *job, const pdr_db_params *p, pdr_hit *hits, size_t *counts, pdr_err *err)
{
    const size_t n = job->n;
    int window = 0, stride = 0, rc = PDR_OK;
    pdr_db_segment_window(db, &window, &stride);
    size_t *n_seg = NULL;
    int32_t **starts = NULL, **ends = NULL;
    float **embs = NULL;
    pdr_query_segments *qseg = NULL;
    if (window > 0) {
        n_seg = calloc(n ? n : 1, sizeof *n_seg);
        starts = calloc(n ? n : 1, sizeof *starts);
        ends = calloc(n ? n : 1, sizeof *ends);
        embs = calloc(n ? n : 1, sizeof *embs);
        qseg = calloc(n ? n : 1, sizeof *qseg);
        if (!n_seg || !starts || !ends || !embs || !qseg) {
            rc = pdr_fail(err, PDR_ENOMEM, "search: out of memory for %zu queries' segments", n);
            goto done;
        }
        job->window = window;
        job->stride = stride;
        job->n_seg = n_seg;
        job->seg_start = starts;
        job->seg_end = ends;
        job->seg_emb = embs;
    }
    if ((rc = pdr_batch_embed(enc, ws, threads, job, err)))
        goto done;
    for (size_t i = 0; qseg && i < n; i++)
        qseg[i] = (pdr_query_segments){n_seg[i], embs[i]};
    int wmodel = 0, smodel = 0;
    pdr_db_queries qs = {.n = n,
                         .vec = job->emb,
                         .bg = pdr_encoder_background(enc),
                         .seg_bg = pdr_encoder_segment_background(enc, &wmodel, &smodel),
                         .seg = qseg,
                         .threads = threads,
                         .no_expand = p->no_expand};
    rc = pdr_db_search_aligned(db, &qs, (const char *const *)job->seqs, job->lengths, 0, p, hits, counts, err);
done:
    for (size_t i = 0; embs && starts && ends && i < n; i++) {
        free(starts[i]);
        free(ends[i]);
        free(embs[i]);
    }
    free(n_seg);
    free(starts);
    free(ends);
    free(embs);
    free(qseg);
    job->window = job->stride = 0;
    job->n_seg = NULL;
    job->seg_start = job->seg_end = NULL;
    job->seg_emb = NULL;
    return rc;
}
