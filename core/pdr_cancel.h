/* pdr_cancel.h: how a caller stops long work early (pdr serve: a client that hung up).
 *
 * Long loops (pdr_batch_embed per sequence, pdr_db_align_hits per query) ask
 * pdr_cancel_requested between items and return PDR_ECANCELLED when it says so. The callback
 * is called from the working threads, several at once: it must be thread-safe and cheap.
 */
#ifndef PDR_CANCEL_H
#define PDR_CANCEL_H

typedef struct pdr_cancel {
    int (*requested)(void *ctx); /* nonzero: stop */
    void *ctx;
} pdr_cancel;

/* c may be NULL (never cancelled). */
static inline int pdr_cancel_requested(const pdr_cancel *c) { return c && c->requested && c->requested(c->ctx); }

#endif
