/* pdr_batch.c: a shared counter hands sequences to worker threads (see pdr_batch.h). */
#include "pdr_batch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct shared {
    const pdr_encoder *enc;
    pdr_batch_job *job;
    int dim;
    atomic_size_t next;
    atomic_int failed;
    pthread_mutex_t lock;
    pdr_err err; /* the first failure */
} shared;

typedef struct worker {
    shared *sh;
    pdr_encoder_ws *ws;
} worker;

static int embed_one(shared *sh, pdr_encoder_ws *ws, size_t i, pdr_err *err)
{
    pdr_batch_job *job = sh->job;
    size_t len = (size_t)job->lengths[i];
    int rc = pdr_encode(sh->enc, ws, job->seqs[i], len, job->emb + i * (size_t)sh->dim, err);
    if (rc || job->window <= 0)
        return rc;
    size_t ns = pdr_encoder_segment_count(len, job->window, job->stride);
    job->seg_start[i] = malloc(ns * sizeof(int32_t));
    job->seg_end[i] = malloc(ns * sizeof(int32_t));
    job->seg_emb[i] = malloc(ns * (size_t)sh->dim * sizeof(float));
    if (!job->seg_start[i] || !job->seg_end[i] || !job->seg_emb[i])
        return pdr_fail(err, PDR_ENOMEM, "out of memory for %zu segments", ns);
    return pdr_encode_segments(sh->enc, ws, job->window, job->stride, ns, &job->n_seg[i], job->seg_start[i],
                               job->seg_end[i], job->seg_emb[i], err);
}

static void *worker_main(void *arg)
{
    worker *me = arg;
    shared *sh = me->sh;
    pdr_err err;
    pdr_err_clear(&err);
    while (!atomic_load(&sh->failed)) {
        size_t i = atomic_fetch_add(&sh->next, 1);
        if (i >= sh->job->n)
            break;
        int rc = pdr_cancel_requested(sh->job->cancel) ? pdr_fail(&err, PDR_ECANCELLED, "cancelled")
                                                       : embed_one(sh, me->ws, i, &err);
        if (rc) {
            pthread_mutex_lock(&sh->lock);
            if (!atomic_load(&sh->failed)) {
                const char *id = sh->job->ids ? sh->job->ids[i] : "?";
                pdr_fail(&sh->err, rc, "sequence %zu (%s): %s", i + 1, id, err.msg);
                atomic_store(&sh->failed, 1);
            }
            pthread_mutex_unlock(&sh->lock);
            break;
        }
    }
    return NULL;
}

int pdr_batch_embed(const pdr_encoder *enc, pdr_encoder_ws *const *ws, int threads, pdr_batch_job *job, pdr_err *err)
{
    if (threads < 1)
        threads = 1;
    if ((size_t)threads > job->n)
        threads = job->n ? (int)job->n : 1;
    shared sh = {.enc = enc, .job = job, .dim = pdr_encoder_dim(enc)};
    atomic_init(&sh.next, 0);
    atomic_init(&sh.failed, 0);
    pthread_mutex_init(&sh.lock, NULL);
    worker workers[threads];
    pthread_t tid[threads];
    int started = 0;
    for (int t = 0; t < threads; t++)
        workers[t] = (worker){&sh, ws[t]};
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&tid[t], NULL, worker_main, &workers[t]) != 0)
            break;
        started++;
    }
    worker_main(&workers[0]); /* the calling thread works too */
    for (int t = 1; t <= started; t++)
        pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&sh.lock);
    if (atomic_load(&sh.failed))
        return pdr_fail(err, sh.err.code, "%s", sh.err.msg);
    return PDR_OK;
}
