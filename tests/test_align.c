/* test_align.c: Smith-Waterman scores (pdr_align.h) and the alignment re-ranking of a real
 * database (pdr_db_align_hits, pdr_db_seqs.c): the striped kernel against the 32-bit reference
 * and hand-counted scores, the statistics, and a database made from a FASTA with the shipped model
 * whose re-ranked E-values are recomputed here from the plain search and reference alignments. */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "pdr_align.h"
#include "pdr_batch.h"
#include "pdr_bulk.h"
#include "pdr_calib.h"
#include "pdr_db.h"

static const char *data_dir = "data";
static const char *tmp_root = "/tmp";
static uint64_t rng_state = 11;
static int quick; /* PDR_UNDER_VALGRIND (tests/valgrind_run.sh): fewer and shorter sequences */

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void random_protein(char *s, size_t n)
{
    static const char aa[] = "ACDEFGHIKLMNPQRSTVWY";
    for (size_t i = 0; i < n; i++)
        s[i] = aa[rng_next() % 20];
}

/* A copy of src with about one residue in `every` substituted and one in `every` deleted. */
static size_t mutate(const char *src, size_t n, char *dst, unsigned every)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned r = (unsigned)(rng_next() % (2 * every));
        if (r == 0)
            continue;
        char buf[1];
        random_protein(buf, 1);
        dst[m++] = r == 1 ? buf[0] : src[i];
    }
    return m ? m : (dst[0] = src[0], 1);
}

static int striped(const char *a, size_t la, const char *b, size_t lb)
{
    pdr_err err;
    pdr_align_query *q = NULL;
    if (pdr_align_query_create(a, la, &q, &err))
        return -2;
    int s = pdr_align_score(q, b, lb);
    pdr_align_query_free(q);
    return s;
}

TEST(scores_match_hand_counts)
{
    const char *s = "ACDEFGHIKL"; /* BLOSUM62 diagonal: 4+9+6+5+6+6+8+4+5+4 */
    CHECKF(pdr_align_score_ref(s, 10, s, 10) == 57, "%d", pdr_align_score_ref(s, 10, s, 10));
    CHECK(striped(s, 10, s, 10) == 57);
    /* 10 W against 5 W, G, 5 W: one gap of one residue costs 11 + 1, so 10 x 11 - 12 = 98 beats
     * the ungapped 9 x 11 - 2 (W/G) = 97 */
    const char *w = "WWWWWWWWWW", *wg = "WWWWWGWWWWW";
    CHECKF(pdr_align_score_ref(w, 10, wg, 11) == 98, "%d", pdr_align_score_ref(w, 10, wg, 11));
    CHECKF(striped(w, 10, wg, 11) == 98, "%d", striped(w, 10, wg, 11));
    CHECK(striped(wg, 11, w, 10) == 98);
    /* lower case and unknown letters: as upper case, and as X (-1 against all but *) */
    CHECK(striped("acdefghikl", 10, s, 10) == 57);
    CHECK(pdr_align_score_ref("U", 1, "U", 1) == 0);
    CHECK(striped(s, 10, "", 0) == 0);
    pdr_err err;
    pdr_align_query *q = NULL;
    CHECK(pdr_align_query_create(s, 0, &q, &err) == PDR_EINPUT && q == NULL);
}

TEST(striped_equals_reference)
{
    static char a[3000], b[3000];
    int bad = 0;
    int n_pairs = quick ? 60 : 300;
    for (int it = 0; it < n_pairs; it++) {
        size_t la = 1 + rng_next() % (it < n_pairs * 2 / 3 ? 40 : quick ? 200 : 900);
        random_protein(a, la);
        size_t lb = it % 2 ? mutate(a, la, b, 3 + (unsigned)(it % 7)) : 1 + rng_next() % (quick ? 200 : 900);
        if (it % 2 == 0)
            random_protein(b, lb);
        int r = pdr_align_score_ref(a, la, b, lb), s = striped(a, la, b, lb);
        if (r != s && bad++ < 5)
            fprintf(stderr, "  la %zu lb %zu: reference %d, striped %d\n", la, lb, r, s);
    }
    CHECKF(bad == 0, "%d of %d differ", bad, n_pairs);
}

TEST(batch_scores_equal_reference)
{
    /* one query against a mix: unrelated, related at several rates (these pass the 8-bit pass
     * and go to the inter-sequence kernel), empty, one residue, and one whose score passes
     * PDR_ALIGN_SAT (a poly-W query and target: the lane is recomputed in 32 bits) */
    enum { NT = 61 };
    size_t qn = quick ? 300 : 700, wn = quick ? 2800 : 3000;
    char *a = malloc(wn), *store = malloc(NT * (wn + 1000));
    const char *t[NT];
    size_t tl[NT];
    int sc[NT];
    random_protein(a, qn);
    for (int i = 0; i < NT; i++) {
        char *dst = store + (size_t)i * (wn + 1000);
        if (i % 3 == 0) {
            tl[i] = 1 + rng_next() % (qn + 200);
            random_protein(dst, tl[i]);
        } else {
            tl[i] = mutate(a, qn, dst, 2 + (unsigned)(i % 11));
        }
        t[i] = dst;
    }
    tl[5] = 0;
    tl[7] = 1;
    pdr_err err;
    pdr_align_query *q = NULL;
    CHECK(pdr_align_query_create(a, qn, &q, &err) == PDR_OK);
    CHECK(pdr_align_scores(q, NT, t, tl, sc, &err) == PDR_OK);
    int bad = 0;
    for (int i = 0; i < NT; i++) {
        int r = pdr_align_score_ref(a, qn, t[i], tl[i]);
        if (sc[i] != r && bad++ < 5)
            fprintf(stderr, "  target %d (%zu residues): batch %d, reference %d\n", i, tl[i], sc[i], r);
    }
    CHECKF(bad == 0, "%d of %d differ", bad, NT);
    pdr_align_query_free(q);
    /* past 16 bits: a poly-W pair among ordinary targets */
    memset(a, 'W', wn);
    char *w = store;
    memset(w, 'W', wn);
    t[0] = w;
    tl[0] = wn;
    CHECK(pdr_align_query_create(a, wn, &q, &err) == PDR_OK);
    CHECK(pdr_align_scores(q, 3, t, tl, sc, &err) == PDR_OK);
    CHECKF(sc[0] == (int)wn * 11, "%d", sc[0]);
    CHECK(sc[1] == pdr_align_score_ref(a, wn, t[1], tl[1]) && sc[2] == pdr_align_score_ref(a, wn, t[2], tl[2]));
    pdr_align_query_free(q);
    free(a);
    free(store);
}

/* A traced alignment's own consistency: its counts add up, it lies inside both sequences, and the
 * two aligned stretches score exactly the alignment's score on their own. */
static int trace_consistent(const char *a, size_t la, const char *b, size_t lb, const pdr_alignment *r)
{
    if (r->score == 0)
        return r->length == 0 && r->qstart == 0 && r->tend == 0;
    int32_t qspan = r->qend - r->qstart + 1, tspan = r->tend - r->tstart + 1;
    int32_t pairs = r->identities + r->mismatches;
    return r->qstart >= 1 && r->qend <= (int32_t)la && r->tstart >= 1 && r->tend <= (int32_t)lb && qspan >= pairs &&
           tspan >= pairs && qspan + tspan == r->length + pairs && r->gap_opens <= r->length - pairs &&
           (r->gap_opens > 0) == (r->length > pairs) &&
           pdr_align_score_ref(a + r->qstart - 1, (size_t)qspan, b + r->tstart - 1, (size_t)tspan) == r->score;
}

TEST(traceback_by_hand)
{
    pdr_err err;
    pdr_alignment r;
    const char *w = "WWWWWWWWWW", *wg = "WWWWWGWWWWW";
    CHECK(pdr_align_trace(w, 10, wg, 11, 0, &r, &err) == PDR_OK);
    CHECKF(r.score == 98 && r.length == 11 && r.identities == 10 && r.mismatches == 0 && r.gap_opens == 1,
           "score %d length %d id %d mm %d gaps %d", r.score, r.length, r.identities, r.mismatches, r.gap_opens);
    CHECK(r.qstart == 1 && r.qend == 10 && r.tstart == 1 && r.tend == 11);
    /* flanks that do not align are left out; one substitution is a mismatch */
    const char *a = "PPPPMKVLAAGIVGWPPPP", *b = "GGMKVLSAGIVGWGG";
    CHECK(pdr_align_trace(a, strlen(a), b, strlen(b), 0, &r, &err) == PDR_OK);
    CHECKF(r.qstart == 5 && r.qend == 15 && r.tstart == 3 && r.tend == 13, "q %d-%d t %d-%d", r.qstart, r.qend,
           r.tstart, r.tend);
    CHECK(r.length == 11 && r.identities == 10 && r.mismatches == 1 && r.gap_opens == 0);
    CHECK(r.score == pdr_align_score_ref(a, strlen(a), b, strlen(b)));
    /* nothing in common: score 0, no alignment */
    CHECK(pdr_align_trace("WWW", 3, "PPP", 3, 0, &r, &err) == PDR_OK && r.score == 0 && r.length == 0);
    CHECK(pdr_align_trace("", 0, "PPP", 3, 0, &r, &err) == PDR_OK && r.score == 0);
}

TEST(traceback_matches_reference_in_one_strip_or_many)
{
    static char a[1500], b[1500];
    int bad = 0, n_pairs = quick ? 30 : 200;
    for (int it = 0; it < n_pairs; it++) {
        size_t la = 1 + rng_next() % (it < n_pairs / 2 ? 60 : quick ? 300 : 1200);
        random_protein(a, la);
        size_t lb = it % 3 ? mutate(a, la, b, 2 + (unsigned)(it % 9)) : 1 + rng_next() % la + 1;
        if (it % 3 == 0)
            random_protein(b, lb);
        pdr_err err;
        pdr_alignment one, many;
        int ref = pdr_align_score_ref(a, la, b, lb);
        /* the default budget holds these in one strip; 7 x lb cells forces strips of 7 rows */
        int rc1 = pdr_align_trace(a, la, b, lb, 0, &one, &err);
        int rc2 = pdr_align_trace(a, la, b, lb, 7 * lb, &many, &err);
        int ok = rc1 == PDR_OK && rc2 == PDR_OK && one.score == ref && trace_consistent(a, la, b, lb, &one) &&
                 memcmp(&one, &many, sizeof one) == 0;
        if (!ok && bad++ < 5)
            fprintf(stderr, "  la %zu lb %zu: reference %d, traced %d / %d (q %d-%d t %d-%d vs q %d-%d t %d-%d)\n", la,
                    lb, ref, one.score, many.score, one.qstart, one.qend, one.tstart, one.tend, many.qstart, many.qend,
                    many.tstart, many.tend);
    }
    CHECKF(bad == 0, "%d of %d wrong", bad, n_pairs);
}

/* pdr_align_traces (16 targets per lane batch) gives pdr_align_trace's alignments exactly: scores,
 * coordinates and counts, of every target, in batches that fit and in ones that fall back */
TEST(batch_traces_equal_single_traces)
{
    enum { N_TARGETS = 40 };
    static char q[700], tbuf[N_TARGETS][900];
    int bad = 0, rounds = quick ? 3 : 12;
    for (int it = 0; it < rounds; it++) {
        size_t lq = 1 + rng_next() % (it == 0 ? 5 : 600);
        random_protein(q, lq);
        const char *t[N_TARGETS];
        size_t tl[N_TARGETS];
        for (int k = 0; k < N_TARGETS; k++) {
            char *d = tbuf[k];
            if (k % 4 == 0) { /* unrelated, of any length */
                tl[k] = rng_next() % 900;
                random_protein(d, tl[k]);
            } else { /* a copy of the query with k-dependent changes, sometimes inside random flanks */
                size_t pre = k % 3 ? 0 : rng_next() % 100, l;
                random_protein(d, pre);
                l = mutate(q, lq, d + pre, 2 + (unsigned)(k % 7));
                size_t post = k % 5 ? 0 : rng_next() % 150;
                random_protein(d + pre + l, post);
                tl[k] = pre + l + post;
            }
            if (k == 5)
                d[0] = 'X'; /* an ambiguity letter */
            if (k == 9)
                tl[k] = 0; /* empty */
            t[k] = d;
        }
        pdr_alignment got[N_TARGETS], want;
        pdr_err err;
        /* the default budget, then one that sends the batches of longer targets one by one */
        size_t budget = it % 2 ? 0 : 32 * lq * 300;
        CHECK(pdr_align_traces(q, lq, N_TARGETS, t, tl, budget, got, &err) == PDR_OK);
        for (int k = 0; k < N_TARGETS; k++) {
            CHECK(pdr_align_trace(q, lq, t[k], tl[k], 0, &want, &err) == PDR_OK);
            if (memcmp(&got[k], &want, sizeof want) != 0 && bad++ < 5)
                fprintf(stderr,
                        "  round %d target %d (lq %zu lt %zu): score %d q %d-%d t %d-%d len %d id %d, want %d q %d-%d "
                        "t %d-%d len %d id %d\n",
                        it, k, lq, tl[k], got[k].score, got[k].qstart, got[k].qend, got[k].tstart, got[k].tend,
                        got[k].length, got[k].identities, want.score, want.qstart, want.qend, want.tstart, want.tend,
                        want.length, want.identities);
        }
    }
    CHECKF(bad == 0, "%d traces differ", bad);
    pdr_alignment r[2];
    pdr_err err;
    const char *t2[2] = {"ACDE", "WW"};
    size_t l2[2] = {4, 2};
    CHECK(pdr_align_traces("", 0, 2, t2, l2, 0, r, &err) == PDR_OK && r[0].score == 0 && r[1].length == 0);
    CHECK(pdr_align_traces("ACDE", 4, 0, t2, l2, 0, r, &err) == PDR_OK);
}

/* composition-scaled scoring: the kernel equals the reference under per-target matrices; ratio 1
 * is BLOSUM62 in units of 1/PDR_ALIGN_UNIT; whole gap costs make a gappy alignment lose more
 * than the ratio, an ungapped one about the ratio */
TEST(scaled_scores_equal_reference)
{
    enum { N = 37 };
    static char q[500], tbuf[N][600];
    const char *t[N];
    size_t tl[N];
    pdr_align_matrix mats[N];
    const pdr_align_matrix *mp[N];
    int got[N], bad = 0, rounds = quick ? 2 : 6;
    pdr_err err;
    for (int it = 0; it < rounds; it++) {
        size_t lq = 1 + rng_next() % 450;
        random_protein(q, lq);
        for (int k = 0; k < N; k++) {
            if (k % 3 == 0) {
                tl[k] = rng_next() % 600;
                random_protein(tbuf[k], tl[k]);
            } else {
                tl[k] = mutate(q, lq, tbuf[k], 2 + (unsigned)(k % 6));
            }
            t[k] = tbuf[k];
            double ratio = k == 0 ? 1.0 : 0.5 + 0.5 * (double)(rng_next() % 1000) / 1000.0;
            pdr_align_matrix_scaled(ratio, &mats[k]);
            mp[k] = &mats[k];
        }
        pdr_align_query *aq = NULL;
        CHECK(pdr_align_query_create(q, lq, &aq, &err) == PDR_OK);
        CHECK(pdr_align_scores_scaled(aq, N, t, tl, mp, got, &err) == PDR_OK);
        pdr_align_query_free(aq);
        for (int k = 0; k < N; k++) {
            int want = pdr_align_score_scaled_ref(q, lq, t[k], tl[k], &mats[k]);
            if (got[k] != want && bad++ < 5)
                fprintf(stderr, "  round %d target %d: kernel %d, reference %d\n", it, k, got[k], want);
        }
    }
    CHECKF(bad == 0, "%d scaled scores differ", bad);
    /* ratio 1: BLOSUM62 and gaps times PDR_ALIGN_UNIT, so the score is the unit times BLOSUM62's */
    pdr_align_matrix one;
    pdr_align_matrix_scaled(1.0, &one);
    random_protein(q, 300);
    size_t l1 = mutate(q, 300, tbuf[0], 3);
    CHECK(pdr_align_score_scaled_ref(q, 300, tbuf[0], l1, &one) ==
          PDR_ALIGN_UNIT * pdr_align_score_ref(q, 300, tbuf[0], l1));
    /* a gapless copy loses the ratio (to rounding); the same copy with gaps loses more */
    pdr_align_matrix half;
    pdr_align_matrix_scaled(0.5, &half);
    const char *copy = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTH"
                       "MKALRPDEDRLSPLHSVYVDQWDWERVMGDGERQFSTLKSTVEAIWAGIKATEAAVSEEFGLAPFLPDQIHFVHSQELLSRYPDLDAKGRERAIA"
                       "KDLGAVFLVGIGGKLSDGHRHDVRAPDYDDWSTPSELGHAGLNGDILVWNPVLEDAFELSSMGIRVDADTLKHQLALTGDEDRLELEWHQALLRG"
                       "EMPQTIGGGIGQSRLTMLLLQLPHIGQVQAGVWPAACRESVPALL";
    size_t lc = strlen(copy);
    char gapped[400];
    size_t lg = 0;
    for (size_t i = 0; i < lc; i++)
        if (i % 40 != 20) /* a residue deleted every 40 */
            gapped[lg++] = copy[i];
    int s_plain = pdr_align_score_ref(copy, lc, copy, lc),
        s_half = pdr_align_score_scaled_ref(copy, lc, copy, lc, &half);
    CHECKF(abs(s_half - PDR_ALIGN_UNIT * s_plain / 2) <= (int)lc, "gapless: %d against %d", s_half,
           PDR_ALIGN_UNIT * s_plain / 2);
    int g_plain = pdr_align_score_ref(copy, lc, gapped, lg),
        g_half = pdr_align_score_scaled_ref(copy, lc, gapped, lg, &half);
    CHECKF(g_half < PDR_ALIGN_UNIT * g_plain / 2 - (int)lc, "gapped: %d against %d", g_half,
           PDR_ALIGN_UNIT * g_plain / 2);
}

TEST(scores_beyond_16_bits_fall_back_to_32)
{
    size_t n = 3200; /* 3200 x 11 = 35200 > 32767 */
    if (quick)       /* the 16-bit overflow path still runs: 2,800 x 11 > PDR_ALIGN_SAT */
        n = 2800;
    char *w = malloc(n);
    memset(w, 'W', n);
    CHECK(pdr_align_score_ref(w, n, w, n) == (int)n * 11);
    CHECKF(striped(w, n, w, n) == (int)n * 11, "%d", striped(w, n, w, n));
    free(w);
}

TEST(statistics)
{
    CHECK(fabs(pdr_align_bits(100) - (0.267 * 100 - log(0.041)) / log(2.0)) < 1e-9);
    CHECK(pdr_align_pvalue(200, 300, 300) < pdr_align_pvalue(100, 300, 300));
    CHECK(pdr_align_pvalue(100, 300, 3000) > pdr_align_pvalue(100, 300, 300));
    CHECK(pdr_align_pvalue(0, 300, 300) <= 1.0 && pdr_align_pvalue(0, 300, 300) > 0.99);
    /* nothing aligned is no evidence, however short the sequences (the formula gives 0.18 for 1 x 5) */
    CHECK(pdr_align_pvalue(0, 1, 5) == 1.0 && pdr_align_pvalue(-3, 10, 39) == 1.0);
    CHECK(pdr_align_pvalue(1, 1, 5) < 1.0);
    /* Bonferroni: twice the smaller p-value, at most 1, whatever the other */
    CHECK(pdr_align_combine(0.25, 1.0) == 0.5);
    CHECK(pdr_align_combine(1e-10, 1.0) == 2e-10 && pdr_align_combine(1.0, 1e-10) == 2e-10);
    CHECK(pdr_align_combine(1e-10, 1e-5) == 2e-10);
    CHECK(pdr_align_combine(0.7, 0.6) == 1.0 && pdr_align_combine(1.0, 1.0) == 1.0);
    CHECK(pdr_align_combine(0.0, 0.0) > 0.0);
    CHECK(pdr_align_combine(1e-3, 1e-4) < pdr_align_combine(1e-3, 1e-3));
}

TEST(composition_based_statistics)
{
    pdr_align_comp bg, c, d, empty;
    pdr_align_background(&bg);
    /* BLOSUM62's published ungapped lambda at the background it was made for */
    double lu = pdr_align_lambda_u(&bg, &bg);
    CHECKF(fabs(lu - PDR_ALIGN_LAMBDA_UNGAPPED) < 5e-4, "lambda_u(bg, bg) = %.5f", lu);
    CHECK(fabs(pdr_align_comp_ratio(&bg, &bg) - 1.0) < 2e-3);
    /* frequencies count the 20 standard residues only, in either case */
    pdr_align_composition("AAKKxX*B", 8, &c);
    CHECK(c.f[0] == 0.5 && c.f[11] == 0.5);
    /* a sequence rich in K and E against another like it: matches are common by chance, so the
     * score counts for less */
    const char *ke = "KEKKEEKAKEKKEELKKEEKSKEKKEKEEKKAEEKKEKKEEKEKKEEKKEKE";
    pdr_align_composition(ke, strlen(ke), &c);
    double r = pdr_align_comp_ratio(&c, &c);
    CHECKF(r < 0.9 && r >= PDR_ALIGN_RATIO_MIN, "K/E-rich ratio %g", r);
    /* ... symmetric, and against an ordinary composition nearer 1 */
    pdr_align_composition("MSTNPKPQRKTKRNTNRRPQDVKFPGG", 27, &d);
    CHECK(fabs(pdr_align_comp_ratio(&c, &d) - pdr_align_comp_ratio(&d, &c)) < 1e-12);
    CHECK(pdr_align_comp_ratio(&c, &bg) > r);
    /* no root (poly-W: every pair scores +11) clamps to the lower bound; nothing standard: 1 */
    pdr_align_composition("WWWW", 4, &d);
    CHECK(pdr_align_lambda_u(&d, &d) == 0.0);
    CHECK(pdr_align_comp_ratio(&d, &d) == PDR_ALIGN_RATIO_MIN);
    pdr_align_composition("XXBZ", 4, &empty);
    CHECK(pdr_align_lambda_u(&empty, &bg) == 0.0);
    CHECK(pdr_align_comp_ratio(&empty, &bg) == 1.0);
}

/* A database from a FASTA of families (a random protein and mutated copies) plus unrelated
 * proteins, made as pdr makedb makes one. */
#define N_FAMILIES 6
#define PER_FAMILY 5
#define N_SINGLE 20
typedef struct fixture {
    char dir[512], fasta[600];
    char *seqs[N_FAMILIES * PER_FAMILY + N_SINGLE];
    size_t lens[N_FAMILIES * PER_FAMILY + N_SINGLE];
    size_t n;
    size_t n_family; /* rows 0 .. n_family - 1 are families of PER_FAMILY */
    pdr_encoder *enc;
} fixture;

/* A null fit from synthetic scores (what E-values are does not matter here, only that the
 * re-ranking combines them right), instead of pdr_db_calibrate: that embeds hundreds of random
 * sequences, minutes under valgrind. */
static int write_calibration(const char *dir, pdr_err *err)
{
    size_t m = 20000;
    float *null_scores = malloc(m * sizeof *null_scores);
    if (!null_scores)
        return pdr_fail(err, PDR_ENOMEM, "out of memory");
    for (size_t i = 0; i < m; i++) /* roughly normal, sd 0.1: a sum of uniforms */
        null_scores[i] =
            (float)(((double)(rng_next() % 1000) + (double)(rng_next() % 1000) + (double)(rng_next() % 1000) - 1498.5) /
                    1000.0 * 0.2);
    pdr_calib cal;
    int rc = pdr_calib_fit(null_scores, m, &cal, err);
    free(null_scores);
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, PDR_DB_CALIB);
    return rc ? rc : pdr_calib_save(&cal, path, err);
}

static int make_db(fixture *fx)
{
    pdr_err err;
    snprintf(fx->dir, sizeof fx->dir, "%s/pdr-test-align-XXXXXX", tmp_root);
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->fasta, sizeof fx->fasta, "%s/in.fasta", fx->dir);
    FILE *f = fopen(fx->fasta, "w");
    if (!f)
        return -1;
    fx->n = 0;
    int n_families = quick ? 3 : N_FAMILIES, n_single = quick ? 4 : N_SINGLE;
    fx->n_family = (size_t)n_families * PER_FAMILY;
    for (int fam = 0; fam < n_families; fam++) {
        size_t len = 60 + rng_next() % (quick ? 40 : 140);
        char *root = malloc(len);
        random_protein(root, len);
        for (int m = 0; m < PER_FAMILY; m++) {
            char *s = malloc(len);
            size_t l = mutate(root, len, s, 4);
            fx->seqs[fx->n] = s;
            fx->lens[fx->n++] = l;
        }
        free(root);
    }
    for (int i = 0; i < n_single; i++) {
        size_t l = 40 + rng_next() % (quick ? 40 : 160);
        fx->seqs[fx->n] = malloc(l);
        random_protein(fx->seqs[fx->n], l);
        fx->lens[fx->n++] = l;
    }
    for (size_t i = 0; i < fx->n; i++) {
        fprintf(f, ">p%zu\n%.*s\n", i, (int)fx->lens[i], fx->seqs[i]);
        if (i == 3) /* a bad record the embedding skips, and so must the sequence file */
            fprintf(f, ">bad\nAC#D\n");
    }
    fclose(f);
    char model[600], store[600];
    snprintf(model, sizeof model, "%s/pdr_cnn_v1.h5", data_dir);
    snprintf(store, sizeof store, "%s/%s", fx->dir, PDR_DB_STORE);
    if (pdr_encoder_open(model, &fx->enc, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    pdr_bulk_opts bo;
    pdr_bulk_opts_default(&bo);
    bo.threads = 1;
    pdr_bulk_stats st;
    int rc = pdr_bulk_embed(fx->enc, fx->fasta, store, &bo, &st, &err) ||
             pdr_db_build_index(fx->dir, "Flat", 1, NULL, &err) ||
             pdr_db_write_levels(fx->dir, pdr_encoder_background(fx->enc), NULL, 0, 0, &err) ||
             write_calibration(fx->dir, &err) || pdr_db_write_sequences(fx->dir, fx->fasta, 0, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    return rc;
}

static void free_db(fixture *fx)
{
    static const char *files[] = {PDR_DB_STORE, PDR_DB_INDEX, PDR_DB_CALIB, PDR_DB_LEVELS, PDR_DB_SEQS, "in.fasta"};
    char p[700];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", fx->dir, files[i]);
        unlink(p);
    }
    rmdir(fx->dir);
    for (size_t i = 0; i < fx->n; i++)
        free(fx->seqs[i]);
    pdr_encoder_free(fx->enc);
}

static int search(const pdr_db *db, fixture *fx, int k, int n_align, double max_evalue, pdr_hit *hits, size_t *counts,
                  pdr_err *err)
{
    pdr_encoder_ws *ws = NULL;
    if (pdr_encoder_ws_create(fx->enc, &ws, err))
        return -1;
    int32_t lens[N_FAMILIES * PER_FAMILY + N_SINGLE];
    for (size_t i = 0; i < fx->n; i++)
        lens[i] = (int32_t)fx->lens[i];
    float *emb = malloc(fx->n * (size_t)pdr_db_dim(db) * sizeof *emb);
    /* seqs are not NUL-terminated here: the search must not need it */
    pdr_batch_job job = {.n = fx->n, .seqs = fx->seqs, .lengths = lens, .emb = emb};
    pdr_db_params p = {.k = k, .n_align = n_align, .min_score = -2.0f, .max_evalue = max_evalue};
    int rc = pdr_db_embed_and_search(db, fx->enc, &ws, 1, &job, &p, hits, counts, err);
    free(emb);
    pdr_encoder_ws_free(ws);
    return rc;
}

/* The fixture's database, made and opened; NULL (fixture freed) when that failed. */
static pdr_db *open_fixture_db(fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    pdr_err err;
    pdr_db *db = NULL;
    CHECK(make_db(fx) == 0);
    CHECK(pdr_db_open(fx->dir, &db, &err) == 0);
    if (!db)
        free_db(fx);
    return db;
}

TEST(rerank_combines_embedding_and_alignment_evidence)
{
    fixture fx;
    pdr_err err;
    pdr_db *db = open_fixture_db(&fx);
    if (!db)
        return;
    CHECK(pdr_db_count(db) == fx.n && pdr_db_has_sequences(db));
    char *buf = NULL;
    size_t cap = 0;
    for (size_t r = 0; r < fx.n; r++) { /* the stored residues are the FASTA's */
        size_t len = 0;
        CHECK(pdr_db_sequence(db, (int64_t)r, &buf, &cap, &len, &err) == 0);
        CHECKF(len == fx.lens[r] && memcmp(buf, fx.seqs[r], len) == 0 && buf[len] == '\0', "row %zu", r);
    }
    free(buf);
    const int k = 20, n_align = 8;
    size_t kc = pdr_db_candidates(db, k, n_align), n = fx.n;
    CHECK(kc == 20 && pdr_db_candidates(db, 5, 8) == 8 && pdr_db_candidates(db, 5, 0) == 5);
    CHECK(pdr_db_candidates(db, 5, 100000) == fx.n); /* never more than the database holds */
    pdr_hit *plain = calloc(n * kc, sizeof *plain), *hits = calloc(n * kc, sizeof *hits);
    size_t *pc = calloc(n, sizeof *pc), *hc = calloc(n, sizeof *hc);
    CHECK(search(db, &fx, k, 0, HUGE_VAL, plain, pc, &err) == 0);
    CHECK(search(db, &fx, k, n_align, HUGE_VAL, hits, hc, &err) == 0);
    double n_db = (double)n;
    int family_first = 0, family_strong = 0, checked = 0, realigned = 0;
    double *aln_e = calloc(kc, sizeof *aln_e); /* a hit's E-value from its alignment alone */
    for (size_t q = 0; q < n; q++) {
        const pdr_hit *p = plain + q * kc, *h = hits + q * kc;
        CHECK(pc[q] == hc[q]);
        for (size_t i = 0; i < hc[q]; i++) {
            /* find the plain hit of this row: its embedding E-value and rank */
            size_t j = 0;
            while (j < pc[q] && p[j].row != h[i].row)
                j++;
            CHECKF(j < pc[q], "query %zu: row %lld not in the plain hits", q, (long long)h[i].row);
            if (j == pc[q])
                continue;
            size_t tl = fx.lens[h[i].row];
            double want = p[j].evalue; /* not aligned: the embedding E-value stands */
            aln_e[i] = HUGE_VAL;
            if (j < (size_t)n_align) {
                int s = pdr_align_score_ref(fx.seqs[q], fx.lens[q], fx.seqs[h[i].row], tl);
                pdr_align_comp qc, tc;
                pdr_align_composition(fx.seqs[q], fx.lens[q], &qc);
                pdr_align_composition(fx.seqs[h[i].row], tl, &tc);
                double ratio = pdr_align_comp_ratio(&qc, &tc), scaled = s * ratio;
                double p0 = pdr_align_pvalue(scaled, fx.lens[q], tl);
                if (ratio < 1 && p0 < p[j].evalue / n_db &&
                    (ratio < PDR_DB_REALIGN_RATIO || n_db * pdr_align_combine(1.0, p0) >= PDR_DB_REALIGN_MIN_EVALUE)) {
                    /* the alignment decides: realigned under the scaled matrix, whole gaps */
                    pdr_align_matrix m;
                    pdr_align_matrix_scaled(ratio, &m);
                    double re = pdr_align_score_scaled_ref(fx.seqs[q], fx.lens[q], fx.seqs[h[i].row], tl, &m) /
                                (double)PDR_ALIGN_UNIT;
                    scaled = re < scaled ? re : scaled;
                    realigned++;
                }
                double p_aln = pdr_align_pvalue(scaled, fx.lens[q], tl);
                want = n_db * pdr_align_combine(p[j].evalue / n_db, p_aln);
                aln_e[i] = n_db * pdr_align_combine(1.0, p_aln);
                CHECKF(fabs(h[i].bits - pdr_align_bits(scaled)) < 1e-3, "query %zu hit %zu bits %g", q, i, h[i].bits);
            } else {
                CHECKF(h[i].bits == 0, "query %zu hit %zu not aligned but bits %g", q, i, h[i].bits);
            }
            CHECKF(fabs(h[i].evalue - want) <= 1e-6 * want, "query %zu hit %zu: E %g, want %g", q, i, h[i].evalue,
                   want);
            CHECK(h[i].score == p[j].score && h[i].cosine == p[j].cosine);
            if (i > 0)
                CHECK(h[i - 1].evalue <= h[i].evalue);
            checked++;
        }
        /* the family members (mutated copies of one root) whose alignment alone is strong evidence
         * (E <= 1e-3) rank above every protein of another family, whatever their embedding rank
         * was. Not for every query: the combination takes the stronger of the two p-values, and
         * these uniform random sequences are unlike real proteins; the model gives a few pairs of
         * them embedding E-values below 1e-4 */
        if (q < fx.n_family) {
            size_t worst_family = 0, best_other = hc[q];
            int strong = 0;
            for (size_t i = 0; i < hc[q]; i++) {
                int fam = h[i].row < (int64_t)fx.n_family && h[i].row / PER_FAMILY == (int64_t)(q / PER_FAMILY);
                if (fam && h[i].row != (int64_t)q && aln_e[i] <= 1e-3) {
                    worst_family = i;
                    strong++;
                } else if (!fam && i < best_other) {
                    best_other = i;
                }
            }
            family_first += worst_family < best_other;
            family_strong += strong;
        }
    }
    free(aln_e);
    CHECKF(checked > (int)n * 10, "%d hits checked", checked);
    CHECKF(realigned > 0, "%d hits realigned under a scaled matrix", realigned);
    CHECKF(family_first * 5 >= (int)fx.n_family * 4, "%d of %zu queries rank their family's strong alignments first",
           family_first, fx.n_family);
    /* not vacuous: most family members (4 per query) align strongly */
    CHECKF(family_strong >= (int)fx.n_family * 2, "%d strong family alignments of %zu", family_strong,
           fx.n_family * (PER_FAMILY - 1));
    /* the E-value cut applies to the combined E-value, after re-ranking */
    double cut = hits[0 * kc + 2].evalue;
    CHECK(search(db, &fx, k, n_align, cut, hits, hc, &err) == 0);
    for (size_t q = 0; q < n; q++)
        for (size_t i = 0; i < hc[q]; i++)
            CHECK(hits[q * kc + i].evalue <= cut);
    CHECK(hc[0] >= 3);
    /* with k below n_align only the candidates that can still rank among the first k are
     * realigned (the E-value of the scaled score bounds the realigned one from below): the kept
     * hits are the first k of realigning every aligned candidate (k = n_align), exactly */
    size_t k_all = pdr_db_candidates(db, 20, 20), k_few = pdr_db_candidates(db, 3, 20); /* hits per query */
    CHECK(k_all <= kc && k_few <= kc);
    size_t *fc = calloc(n, sizeof *fc);
    CHECK(search(db, &fx, 20, 20, HUGE_VAL, hits, hc, &err) == 0);
    CHECK(search(db, &fx, 3, 20, HUGE_VAL, plain, fc, &err) == 0);
    int same = 0;
    for (size_t q = 0; q < n; q++) {
        const pdr_hit *a = plain + q * k_few, *b = hits + q * k_all;
        int ok = fc[q] == (hc[q] < 3 ? hc[q] : 3);
        for (size_t i = 0; ok && i < fc[q]; i++)
            ok = a[i].row == b[i].row && a[i].evalue == b[i].evalue && a[i].bits == b[i].bits;
        same += ok;
    }
    CHECKF(same == (int)n, "%d of %zu queries keep the hits of realigning every candidate", same, n);
    free(fc);
    free(plain);
    free(hits);
    free(pc);
    free(hc);
    pdr_db_free(db);
    free_db(&fx);
}

/* A pdr_cancel that says stop after `after` questions, and counts them. */
typedef struct stop_counter {
    int asked, after;
} stop_counter;

static int stop_after(void *ctx)
{
    stop_counter *c = ctx;
    return ++c->asked > c->after;
}

/* Embedding and alignment ask the caller's cancel once per sequence and once per query, and stop
 * with PDR_ECANCELLED as soon as it says so (pdr serve: a client that hung up). */
TEST(embedding_and_alignment_stop_when_cancelled)
{
    fixture fx;
    pdr_err err;
    pdr_db *db = open_fixture_db(&fx);
    if (!db)
        return;
    pdr_encoder_ws *ws = NULL;
    CHECK(pdr_encoder_ws_create(fx.enc, &ws, &err) == 0);
    size_t n = fx.n, kc = pdr_db_candidates(db, 10, 10);
    int32_t lens[N_FAMILIES * PER_FAMILY + N_SINGLE];
    for (size_t i = 0; i < n; i++)
        lens[i] = (int32_t)fx.lens[i];
    float *emb = malloc(n * (size_t)pdr_db_dim(db) * sizeof *emb);
    pdr_hit *hits = calloc(n * kc, sizeof *hits);
    size_t *counts = calloc(n, sizeof *counts);
    /* never: every sequence and every query asked once, the search done; at 5: the sixth sequence
     * is not embedded; at n + 3: every sequence is, the fourth query's alignment is not */
    int afters[3] = {1 << 30, 5, (int)n + 3}, rcs[3] = {PDR_OK, PDR_ECANCELLED, PDR_ECANCELLED};
    int asked[3] = {2 * (int)n, 6, (int)n + 4};
    for (int t = 0; t < 3 && ws && emb && hits && counts; t++) {
        stop_counter c = {0, afters[t]};
        pdr_cancel cancel = {stop_after, &c};
        pdr_batch_job job = {.n = n, .seqs = fx.seqs, .lengths = lens, .emb = emb, .cancel = &cancel};
        pdr_db_params p = {.k = 10, .n_align = 10, .min_score = -2.0f, .max_evalue = HUGE_VAL, .cancel = &cancel};
        pdr_err_clear(&err);
        int rc = pdr_db_embed_and_search(db, fx.enc, &ws, 1, &job, &p, hits, counts, &err);
        CHECKF(rc == rcs[t] && c.asked == asked[t], "stop after %d: rc %d (%s), asked %d times, want rc %d, %d times",
               afters[t], rc, err.msg, c.asked, rcs[t], asked[t]);
        if (rcs[t])
            CHECKF(strstr(err.msg, "cancelled") != NULL, "%s", err.msg);
    }
    free(emb);
    free(hits);
    free(counts);
    pdr_encoder_ws_free(ws);
    pdr_db_free(db);
    free_db(&fx);
}

TEST(a_database_without_sequences_refuses_to_align)
{
    fixture fx;
    memset(&fx, 0, sizeof fx);
    pdr_err err;
    pdr_db *db = NULL;
    CHECK(make_db(&fx) == 0);
    char p[700];
    snprintf(p, sizeof p, "%s/%s", fx.dir, PDR_DB_SEQS);
    /* a sequence file of another database: refused when opening */
    FILE *f = fopen(p, "r+b");
    CHECK(f != NULL);
    if (f) {
        fclose(f);
        hid_t h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
        hid_t d = H5Dopen2(h, "/offsets", H5P_DEFAULT);
        int64_t off[N_FAMILIES * PER_FAMILY + N_SINGLE + 1];
        H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off);
        off[1] += 1; /* protein 1 one residue longer, protein 2 one shorter */
        H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off);
        H5Dclose(d);
        H5Fclose(h);
    }
    CHECK(pdr_db_open(fx.dir, &db, &err) == PDR_EFORMAT);
    CHECKF(strstr(err.msg, "rebuild") != NULL, "%s", err.msg);
    unlink(p);
    CHECK(pdr_db_open(fx.dir, &db, &err) == 0 && !pdr_db_has_sequences(db));
    if (db) {
        pdr_hit hits[40 * 8];
        size_t counts[40];
        pdr_db_params prm = {.k = 8, .n_align = 8, .min_score = -2.0f, .max_evalue = HUGE_VAL};
        CHECK(pdr_db_align_hits(db, 1, NULL, NULL, 0, &prm, 1, hits, 8, counts, &err) == PDR_EINPUT);
        CHECKF(strstr(err.msg, "--align 0") != NULL, "%s", err.msg);
        pdr_db_free(db);
    }
    /* a FASTA that is not the one the store came from */
    char other[700];
    snprintf(other, sizeof other, "%s/other.fasta", fx.dir);
    f = fopen(other, "w");
    if (f) {
        fprintf(f, ">p0\n%.*s\n", (int)fx.lens[0], fx.seqs[0]);
        fclose(f);
    }
    CHECK(pdr_db_write_sequences(fx.dir, other, 0, &err) == PDR_EINPUT);
    CHECKF(strstr(err.msg, "not the FASTA") != NULL, "%s", err.msg);
    unlink(other);
    free_db(&fx);
}

int main(void)
{
    if (getenv("PDR_DATA"))
        data_dir = getenv("PDR_DATA");
    if (getenv("PDR_TMP"))
        tmp_root = getenv("PDR_TMP");
    quick = getenv("PDR_UNDER_VALGRIND") != NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    RUN(scores_match_hand_counts);
    RUN(striped_equals_reference);
    RUN(batch_scores_equal_reference);
    RUN(traceback_by_hand);
    RUN(traceback_matches_reference_in_one_strip_or_many);
    RUN(batch_traces_equal_single_traces);
    RUN(scaled_scores_equal_reference);
    RUN(scores_beyond_16_bits_fall_back_to_32);
    RUN(statistics);
    RUN(composition_based_statistics);
    RUN(rerank_combines_embedding_and_alignment_evidence);
    RUN(embedding_and_alignment_stop_when_cancelled);
    RUN(a_database_without_sequences_refuses_to_align);
    return CHECK_DONE();
}
