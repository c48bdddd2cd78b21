/* pdr_align_stats.c: what an alignment score means (pdr_align.h): Karlin-Altschul p-values and
 * bit scores, their combination with the embedding's p-value, and the composition-based
 * scale of a pair's score (BLAST's -comp_based_stats 1: the ungapped lambda of BLOSUM62 at the
 * two sequences' residue frequencies, against its value at the background frequencies). */
#include <math.h>
#include <stddef.h>

#include "pdr_align.h"

/* ---------------------------------------------------------------- statistics */

double pdr_align_bits(double score) { return (PDR_ALIGN_LAMBDA * score - log(PDR_ALIGN_K)) / log(2.0); }

double pdr_align_pvalue(double score, size_t m, size_t n)
{
    /* no residue pair scores above 0: no alignment, no evidence (the formula would give short
     * sequences a p-value well below 1 for nothing) */
    if (!(score > 0))
        return 1.0;
    double e = PDR_ALIGN_K * (double)m * (double)n * exp(-PDR_ALIGN_LAMBDA * score);
    return e < 1e-5 ? e : -expm1(-e);
}

double pdr_align_combine(double p1, double p2)
{
    p1 = p1 < 1e-300 ? 1e-300 : p1 > 1 ? 1 : p1;
    p2 = p2 < 1e-300 ? 1e-300 : p2 > 1 ? 1 : p2;
    double p = 2.0 * (p1 < p2 ? p1 : p2);
    return p > 1 ? 1 : p;
}

/* ---------------------------------------------------------------- composition */

void pdr_align_composition(const char *seq, size_t len, pdr_align_comp *c)
{
    size_t count[PDR_ALIGN_AA] = {0}, n = 0;
    for (size_t i = 0; i < len; i++) {
        int a = pdr_align_letter(seq[i]);
        if (a < PDR_ALIGN_AA) {
            count[a]++;
            n++;
        }
    }
    for (int a = 0; a < PDR_ALIGN_AA; a++)
        c->f[a] = n ? (double)count[a] / (double)n : 0.0;
}

void pdr_align_background(pdr_align_comp *c)
{
    static const double robinson[PDR_ALIGN_AA] = {0.07805, 0.05129, 0.04487, 0.05364, 0.01925, 0.04264, 0.06295,
                                                  0.07377, 0.02199, 0.05142, 0.09019, 0.05744, 0.02243, 0.03856,
                                                  0.05203, 0.07120, 0.05841, 0.01330, 0.03216, 0.06441};
    double sum = 0;
    for (int a = 0; a < PDR_ALIGN_AA; a++)
        sum += robinson[a];
    for (int a = 0; a < PDR_ALIGN_AA; a++)
        c->f[a] = robinson[a] / sum;
}

#define SCORE_MIN (-4)
#define SCORE_MAX 11

/* sum_s p[s] exp(lambda s) - 1 and its derivative. */
static double lambda_f(const double *p, double lambda, double *deriv)
{
    /* exp(lambda s) as powers of exp(lambda): one exp() per evaluation */
    double f = -1.0, d = 0.0, base = exp(lambda), t = exp(lambda * SCORE_MIN);
    for (int s = SCORE_MIN; s <= SCORE_MAX; s++, t *= base) {
        f += p[s - SCORE_MIN] * t;
        d += p[s - SCORE_MIN] * t * s;
    }
    *deriv = d;
    return f;
}

double pdr_align_lambda_u(const pdr_align_comp *a, const pdr_align_comp *b)
{
    /* the distribution of one aligned pair's score */
    double p[SCORE_MAX - SCORE_MIN + 1] = {0}, mean = 0, total = 0;
    for (int i = 0; i < PDR_ALIGN_AA; i++)
        for (int j = 0; j < PDR_ALIGN_AA; j++) {
            double w = a->f[i] * b->f[j];
            int s = pdr_align_blosum62_row(i)[j];
            p[s - SCORE_MIN] += w;
            mean += w * s;
            total += w;
        }
    int positive = 0; /* without a positive score that can occur there is no root */
    for (int v = 1; v <= SCORE_MAX; v++)
        positive |= p[v - SCORE_MIN] > 0;
    if (total < 0.5 || mean >= 0 || !positive)
        return 0.0;
    /* f(0) = 0 and f'(0) = mean < 0, f convex: one positive root. Bracket it, then Newton from
     * the right (monotone there), with bisection as a guard. */
    double d, lo = 0.0, hi = 0.4; /* just above the background's root: usually one step */
    while (lambda_f(p, hi, &d) <= 0) {
        lo = hi;
        hi *= 2;
        if (hi > 64)
            return 0.0;
    }
    double x = hi;
    for (int it = 0; it < 60; it++) {
        double f = lambda_f(p, x, &d);
        if (fabs(f) < 1e-12)
            break;
        if (f > 0)
            hi = x;
        else
            lo = x;
        double nx = d > 0 ? x - f / d : 0.5 * (lo + hi);
        x = (nx > lo && nx < hi) ? nx : 0.5 * (lo + hi);
        if (hi - lo < 1e-12)
            break;
    }
    return x;
}

double pdr_align_comp_ratio(const pdr_align_comp *a, const pdr_align_comp *b)
{
    double sa = 0, sb = 0;
    for (int i = 0; i < PDR_ALIGN_AA; i++) {
        sa += a->f[i];
        sb += b->f[i];
    }
    if (sa < 0.5 || sb < 0.5)
        return 1.0;
    double r = pdr_align_lambda_u(a, b) / PDR_ALIGN_LAMBDA_UNGAPPED;
    return r > 1.0 ? 1.0 : r < PDR_ALIGN_RATIO_MIN ? PDR_ALIGN_RATIO_MIN : r;
}
