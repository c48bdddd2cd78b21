/* align_speed.c: speed probe of the Smith-Waterman kernels (index/pdr_align.h; not a test). One
 * random 400-residue query against 64 targets of 350-450 residues: unrelated ones, and copies of
 * the query with one residue in R substituted (related pairs, whose scores overflow the 8-bit
 * pass). Prints billions of cells per second for one pair at a time (pdr_align_score: striped
 * 8-bit, then striped 16-bit) and for the batch (pdr_align_scores: striped 8-bit, then one target
 * per lane), the traceback one pair at a time (pdr_align_trace) and in batches of 16, one target per
 * lane (pdr_align_traces), and the scalar reference, all on one thread, and checks that every
 * kernel gives the reference's scores and the two tracebacks the same alignments.
 *
 *   build-main/align_speed [--reps 30]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pdr_align.h"

#define QLEN 400
#define NT 64

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int reps = 30;
    if (argc == 3 && strcmp(argv[1], "--reps") == 0)
        reps = atoi(argv[2]);
    if (reps < 1 || (argc != 1 && argc != 3)) {
        fprintf(stderr, "usage: align_speed [--reps N]\n");
        return 2;
    }
    static const char aa[] = "ACDEFGHIKLMNPQRSTVWY";
    static char q[QLEN], t[NT][500];
    const char *tp[NT];
    size_t tl[NT];
    int sc[NT];
    srand(1);
    for (int i = 0; i < QLEN; i++)
        q[i] = aa[rand() % 20];
    pdr_err err;
    pdr_align_query *aq = NULL;
    if (pdr_align_query_create(q, QLEN, &aq, &err)) {
        fprintf(stderr, "align_speed: %s\n", err.msg);
        return 1;
    }
    printf("kernels: %s; query %d residues, %d targets of 350-450, %d repetitions, 1 thread\n", pdr_align_simd(), QLEN,
           NT, reps);
    printf("%-22s %12s %12s %12s %12s %12s\n", "targets", "pair GCUPS", "batch GCUPS", "trace GCUPS", "traces GCUPS",
           "ref GCUPS");
    static const int rates[] = {0, 2, 3, 5, 10, 20};
    int bad = 0;
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
        int every = rates[r];
        double cells = 0;
        for (int k = 0; k < NT; k++) {
            tl[k] = 350 + (size_t)(rand() % 101);
            for (size_t i = 0; i < tl[k]; i++)
                t[k][i] = (every > 0 && i < QLEN && rand() % every) ? q[i] : aa[rand() % 20];
            tp[k] = t[k];
            cells += (double)QLEN * (double)tl[k];
        }
        double t0 = now_s();
        for (int it = 0; it < reps; it++)
            for (int k = 0; k < NT; k++)
                sc[k] = pdr_align_score(aq, tp[k], tl[k]);
        double t1 = now_s();
        for (int it = 0; it < reps; it++)
            if (pdr_align_scores(aq, NT, tp, tl, sc, &err)) {
                fprintf(stderr, "align_speed: %s\n", err.msg);
                return 1;
            }
        double t2 = now_s();
        static pdr_alignment al[NT], alb[NT];
        for (int k = 0; k < NT; k++)
            if (pdr_align_trace(q, QLEN, tp[k], tl[k], 0, &al[k], &err) || al[k].score != sc[k])
                bad++;
        double t3 = now_s();
        if (pdr_align_traces(q, QLEN, NT, tp, tl, 0, alb, &err) || memcmp(al, alb, sizeof al) != 0)
            bad++;
        double t4 = now_s();
        for (int k = 0; k < NT; k++)
            bad += pdr_align_score_ref(q, QLEN, tp[k], tl[k]) != sc[k];
        double t5 = now_s();
        char label[32] = "unrelated";
        if (every)
            snprintf(label, sizeof label, "1 in %d substituted", every);
        printf("%-22s %12.2f %12.2f %12.2f %12.2f %12.2f\n", label, reps * cells / (t1 - t0) / 1e9,
               reps * cells / (t2 - t1) / 1e9, cells / (t3 - t2) / 1e9, cells / (t4 - t3) / 1e9,
               cells / (t5 - t4) / 1e9);
    }
    pdr_align_query_free(aq);
    printf("%s\n", bad ? "MISMATCH against the reference" : "all scores equal the reference, both tracebacks agree");
    return bad ? 1 : 0;
}
