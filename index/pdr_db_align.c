/* pdr_db_align.c: re-rank a query's embedding candidates with Smith-Waterman alignments
 * (pdr_align.h) against the database's own sequences (pdr_db_seqs.c).
 *
 * Each candidate has an embedding E-value E in a database of N proteins, so a per-pair p-value
 * p_emb = E / N; the n_align best candidates also get an alignment p-value p_aln from their
 * score and both lengths. They are combined as p = min(1, 2 min(p_emb, p_aln))
 * (pdr_align_combine: valid however the two depend on each other), and an aligned hit's E-value
 * becomes N * p; the alignment score is first scaled for the two sequences' residue composition
 * (pdr_align_comp_ratio, as BLAST's composition-based statistics), so that two sequences rich in
 * the same residues do not look related by that alone; where the alignment decides (p_aln below
 * p_emb) and the ratio is below 1, the pair is also aligned under the scaled matrix with whole gap
 * costs (pdr_align_scores_scaled, as BLASTp realigns) and the lower score kept. A candidate not aligned keeps its
 * embedding E-value (both are
 * E-values of a valid test, so they can be ranked together). Hits are sorted by E-value. The two
 * signals fail in different places: alignments miss remote homologs whose sequences have
 * drifted apart, embeddings miss some that share one domain, so either one finding a pair is
 * enough to keep it found. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pdr_align.h"
#include "pdr_db.h"

typedef struct align_job {
    const pdr_db *db;
    size_t n;
    const char *const *seqs; /* NULL: query q is database row first_row + q */
    const int32_t *lens;
    size_t first_row;
    pdr_hit *hits;
    size_t kc;
    size_t *counts;
    const pdr_db_params *p;
    int threads, worker;
    int rc;
    pdr_err err;
} align_job;

static int by_evalue(const void *a, const void *b)
{
    const pdr_hit *x = a, *y = b;
    if (x->evalue != y->evalue)
        return x->evalue < y->evalue ? -1 : 1;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

/* Work buffers of one thread: the query's and a target's residues when read from the database. */
typedef struct align_bufs {
    char *query, *target;
    size_t query_cap, target_cap;
    char *all; /* the aligned candidates' residues, one after another */
    size_t all_cap;
    size_t *off, *len; /* per aligned candidate: where in all, and how long */
    const char **ptr;
    int *score;
    int64_t *row;          /* per aligned candidate: its database row */
    const char **kept_ptr; /* per kept hit (formats with paths): its residues ... */
    size_t *kept_len;      /* ... and their length */
    double *scaled;        /* per aligned candidate: its composition-scaled score, */
    double *ratio, *p_emb; /* its composition ratio, its embedding p-value, */
    char *due;             /* and whether it is still to be realigned */
    pdr_align_matrix *mat; /* per candidate realigned under its scaled matrix: that matrix, ... */
    const pdr_align_matrix **mat_ptr;
    const char **re_ptr; /* ... its residues, their length, its index among the candidates, */
    size_t *re_len, *re_idx;
    int *re_score; /* ... and its score in units of 1/PDR_ALIGN_UNIT */
    size_t n_cap;
} align_bufs;

/* *pp (an array of elements of size bytes) resized to n elements; 0 when out of memory (*pp kept). */
static int resize(void *pp, size_t n, size_t size)
{
    void **p = pp, *q = realloc(*p, n * size);
    if (q)
        *p = q;
    return q != NULL;
}

/* Room for n candidates' offsets, lengths, pointers, scores and rows, and n kept hits'. */
static int grow_candidates(align_bufs *b, size_t n, pdr_err *err)
{
    if (n <= b->n_cap)
        return PDR_OK;
    if (!resize(&b->off, n, sizeof *b->off) || !resize(&b->len, n, sizeof *b->len) ||
        !resize(&b->ptr, n, sizeof *b->ptr) || !resize(&b->score, n, sizeof *b->score) ||
        !resize(&b->row, n, sizeof *b->row) || !resize(&b->kept_ptr, n, sizeof *b->kept_ptr) ||
        !resize(&b->kept_len, n, sizeof *b->kept_len) || !resize(&b->scaled, n, sizeof *b->scaled) ||
        !resize(&b->ratio, n, sizeof *b->ratio) || !resize(&b->p_emb, n, sizeof *b->p_emb) ||
        !resize(&b->due, n, sizeof *b->due) || !resize(&b->mat, n, sizeof *b->mat) ||
        !resize(&b->mat_ptr, n, sizeof *b->mat_ptr) || !resize(&b->re_ptr, n, sizeof *b->re_ptr) ||
        !resize(&b->re_len, n, sizeof *b->re_len) || !resize(&b->re_idx, n, sizeof *b->re_idx) ||
        !resize(&b->re_score, n, sizeof *b->re_score))
        return pdr_fail(err, PDR_ENOMEM, "alignment: out of memory for %zu candidates", n);
    b->n_cap = n;
    return PDR_OK;
}

/* The index among the n aligned candidates of database row `row`; n when it was not aligned. */
static size_t candidate_of(const align_bufs *b, size_t n, int64_t row)
{
    size_t c = 0;
    while (c < n && b->row[c] != row)
        c++;
    return c;
}

/* Append residues to b->all at *used. */
static int append_residues(align_bufs *b, const char *s, size_t n, size_t *used, pdr_err *err)
{
    if (*used + n > b->all_cap) {
        size_t cap = 2 * (*used + n);
        char *p = realloc(b->all, cap);
        if (!p)
            return pdr_fail(err, PDR_ENOMEM, "alignment: out of memory for %zu residues", cap);
        b->all = p;
        b->all_cap = cap;
    }
    memcpy(b->all + *used, s, n);
    *used += n;
    return PDR_OK;
}

static int align_query(const align_job *j, size_t q, align_bufs *b, pdr_err *err)
{
    const pdr_db *db = j->db;
    double n_db = (double)pdr_db_count(db);
    pdr_hit *h = j->hits + q * j->kc;
    size_t m = j->counts[q], qlen = 0;
    const char *qseq = NULL;
    int rc = PDR_OK;
    if (j->seqs) {
        qseq = j->seqs[q];
        qlen = (size_t)j->lens[q];
    } else if (m) {
        if ((rc = pdr_db_sequence(db, (int64_t)(j->first_row + q), &b->query, &b->query_cap, &qlen, err)))
            return rc;
        qseq = b->query;
    }
    pdr_align_query *aq = NULL;
    if (m && (rc = pdr_align_query_create(qseq, qlen, &aq, err)))
        return rc;
    pdr_align_comp qc, tc;
    if (m)
        pdr_align_composition(qseq, qlen, &qc);
    /* the first n_align candidates' residues, then all their scores in one call (related pairs
     * go to the inter-sequence kernel together); the others keep their embedding E-value */
    size_t n_al = m < (size_t)j->p->n_align ? m : (size_t)j->p->n_align, used = 0;
    /* a candidate tied with the last one aligned (an identical sequence, say) is aligned too:
     * which of the two fell inside the cut would otherwise set E-values 50 orders apart */
    while (n_al > 0 && n_al < m && h[n_al].score == h[n_al - 1].score)
        n_al++;
    for (size_t i = 0; i < m; i++)
        h[i].bits = 0;
    if (n_al)
        rc = grow_candidates(b, n_al, err);
    for (size_t i = 0; i < n_al && !rc; i++) {
        size_t tlen;
        if (!(rc = pdr_db_sequence(db, h[i].row, &b->target, &b->target_cap, &tlen, err))) {
            b->off[i] = used;
            b->len[i] = tlen;
            b->row[i] = h[i].row;
            rc = append_residues(b, b->target, tlen, &used, err);
        }
    }
    for (size_t i = 0; i < n_al && !rc; i++)
        b->ptr[i] = b->all + b->off[i];
    if (n_al && !rc)
        rc = pdr_align_scores(aq, n_al, b->ptr, b->len, b->score, err);
    /* composition-based statistics: the score scaled for the pair's residue composition; where
     * that alignment decides the E-value (its p-value below the embedding's), the ratio is below
     * 1 and the E-value is not already beyond doubt (pdr_db.h), the pair is due to be aligned
     * again under the scaled matrix with whole gap costs, as BLASTp does, and the lower score
     * kept. The lower score can only raise the E-value, so the E-value from the scaled score is a
     * lower bound: only the due pairs that rank among the first k by it are realigned, again
     * until none is left there (the kept hits and their order are those of realigning all) */
    for (size_t i = 0; i < n_al && !rc; i++) {
        pdr_align_composition(b->ptr[i], b->len[i], &tc);
        b->ratio[i] = pdr_align_comp_ratio(&qc, &tc);
        b->scaled[i] = b->score[i] * b->ratio[i];
        b->p_emb[i] = h[i].evalue / n_db;
        double p_aln = pdr_align_pvalue(b->scaled[i], qlen, b->len[i]);
        b->due[i] =
            b->ratio[i] < 1 && p_aln < b->p_emb[i] &&
            (b->ratio[i] < PDR_DB_REALIGN_RATIO || n_db * pdr_align_combine(1.0, p_aln) >= PDR_DB_REALIGN_MIN_EVALUE);
        h[i].bits = (float)pdr_align_bits(b->scaled[i]);
        h[i].evalue = n_db * pdr_align_combine(b->p_emb[i], p_aln);
    }
    size_t top = m < (size_t)j->p->k ? m : (size_t)j->p->k;
    for (size_t n_re = 1; n_re && !rc;) {
        qsort(h, m, sizeof *h, by_evalue);
        n_re = 0;
        for (size_t i = 0; i < top; i++) {
            size_t c = candidate_of(b, n_al, h[i].row);
            if (c == n_al || !b->due[c])
                continue;
            b->due[c] = 0;
            pdr_align_matrix_scaled(b->ratio[c], &b->mat[n_re]);
            b->mat_ptr[n_re] = &b->mat[n_re];
            b->re_ptr[n_re] = b->ptr[c];
            b->re_len[n_re] = b->len[c];
            b->re_idx[n_re++] = i;
        }
        if (n_re)
            rc = pdr_align_scores_scaled(aq, n_re, b->re_ptr, b->re_len, b->mat_ptr, b->re_score, err);
        for (size_t r = 0; r < n_re && !rc; r++) {
            pdr_hit *x = &h[b->re_idx[r]];
            size_t c = candidate_of(b, n_al, x->row);
            double s = (double)b->re_score[r] / PDR_ALIGN_UNIT;
            b->scaled[c] = s < b->scaled[c] ? s : b->scaled[c];
            x->bits = (float)pdr_align_bits(b->scaled[c]);
            x->evalue = n_db * pdr_align_combine(b->p_emb[c], pdr_align_pvalue(b->scaled[c], qlen, b->len[c]));
        }
    }
    pdr_align_query_free(aq);
    if (rc)
        return rc;
    size_t keep = top;
    while (keep > 0 && !(h[keep - 1].evalue <= j->p->max_evalue))
        keep--;
    j->counts[q] = keep;
    /* the kept hits' paths, for the formats that report them (all are aligned: n_align >= k, so
     * their residues are among the candidates'), traced together */
    pdr_alignment *aln = j->p->alns ? j->p->alns + q * j->kc : NULL;
    if (!aln || keep == 0)
        return PDR_OK;
    for (size_t i = 0; i < keep; i++) {
        size_t c = candidate_of(b, n_al, h[i].row);
        if (c == n_al)
            return pdr_fail(err, PDR_EINPUT, "alignment: kept hit (row %lld) was not aligned", (long long)h[i].row);
        b->kept_ptr[i] = b->all + b->off[c];
        b->kept_len[i] = b->len[c];
    }
    return pdr_align_traces(qseq, qlen, keep, b->kept_ptr, b->kept_len, 0, aln, err);
}

static void *align_worker(void *arg)
{
    align_job *j = arg;
    align_bufs b = {0};
    for (size_t q = (size_t)j->worker; q < j->n && !j->rc; q += (size_t)j->threads)
        j->rc = pdr_cancel_requested(j->p->cancel) ? pdr_fail(&j->err, PDR_ECANCELLED, "alignment: cancelled")
                                                   : align_query(j, q, &b, &j->err);
    free(b.query);
    free(b.target);
    free(b.all);
    free(b.off);
    free(b.len);
    free(b.ptr);
    free(b.score);
    free(b.row);
    free(b.kept_ptr);
    free(b.kept_len);
    free(b.scaled);
    free(b.ratio);
    free(b.p_emb);
    free(b.due);
    free(b.mat);
    free(b.mat_ptr);
    free(b.re_ptr);
    free(b.re_len);
    free(b.re_idx);
    free(b.re_score);
    return NULL;
}

int pdr_db_align_hits(const pdr_db *db, size_t n, const char *const *seqs, const int32_t *lens, size_t first_row,
                      const pdr_db_params *p, int threads, pdr_hit *hits, size_t kc, size_t *counts, pdr_err *err)
{
    if (p->alns && p->n_align < p->k)
        return pdr_fail(err, PDR_EINPUT, "alignment: tracing every kept hit needs --align >= k (%d < %d)", p->n_align,
                        p->k);
    if (!pdr_db_has_sequences(db))
        return pdr_fail(err, PDR_EINPUT,
                        "%s: the database has no sequences to align (made before pdr 0.6); "
                        "rebuild it with 'pdr makedb', or search with --align 0",
                        pdr_db_path(db));
    if (threads < 1)
        threads = 1;
    if ((size_t)threads > n)
        threads = n ? (int)n : 1;
    align_job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    char *started = calloc((size_t)threads, 1);
    int rc = PDR_OK;
    if (!jobs || !tid || !started) {
        rc = pdr_fail(err, PDR_ENOMEM, "alignment: out of memory");
        goto done;
    }
    for (int t = 0; t < threads; t++) {
        jobs[t] = (align_job){.db = db,
                              .n = n,
                              .seqs = seqs,
                              .lens = lens,
                              .first_row = first_row,
                              .hits = hits,
                              .kc = kc,
                              .counts = counts,
                              .p = p,
                              .threads = threads,
                              .worker = t};
        if (t > 0 && pthread_create(&tid[t], NULL, align_worker, &jobs[t]) == 0)
            started[t] = 1;
        else if (t > 0)
            jobs[t].rc = pdr_fail(&jobs[t].err, PDR_EINTERNAL, "alignment: cannot start a thread");
    }
    align_worker(&jobs[0]);
    for (int t = 1; t < threads; t++)
        if (started[t])
            pthread_join(tid[t], NULL);
    for (int t = 0; t < threads && !rc; t++)
        if (jobs[t].rc) {
            rc = jobs[t].rc;
            *err = jobs[t].err;
        }
done:
    free(started);
    free(jobs);
    free(tid);
    return rc;
}

int pdr_db_search_aligned(const pdr_db *db, const pdr_db_queries *qs, const char *const *seqs, const int32_t *lens,
                          size_t first_row, const pdr_db_params *p, pdr_hit *hits, size_t *counts, pdr_err *err)
{
    if (p->n_align <= 0)
        return pdr_db_search(db, qs, p->k, p->min_score, p->max_evalue, hits, counts, err);
    size_t kc = pdr_db_candidates(db, p->k, p->n_align);
    /* the E-value cut waits for the combined E-values */
    int rc = pdr_db_search(db, qs, (int)kc, p->min_score, HUGE_VAL, hits, counts, err);
    return rc ? rc : pdr_db_align_hits(db, qs->n, seqs, lens, first_row, p, qs->threads, hits, kc, counts, err);
}
