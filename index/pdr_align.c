/* pdr_align.c: Smith-Waterman scores: striped (Farrar 2007) and inter-sequence (Rognes 2011)
 * kernels, and the scalar reference they are tested against; the contract is in pdr_align.h.
 *
 * Query position i sits in lane i / seg_len, segment i % seg_len of a vector of LANES 16-bit
 * scores, so the vertical recurrence runs down the segments in parallel and only the gap that
 * crosses from one lane to the next needs the "lazy F" loop. Scores stay >= 0 (local alignment)
 * and gap states >= -(open + extend), so 16 bits only overflow at the top, which is checked.
 */
#include "pdr_align.h"

/* The vector helpers are static and inlined: GCC's note that 32-byte vector arguments pass
 * differently with and without AVX concerns no ABI anyone sees. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- BLOSUM62 */

#define N_LETTERS 25
static const char ALPHABET[N_LETTERS + 1] = "ARNDCQEGHILKMFPSTWYVBJZX*";
#define LETTER_X 23

/* NCBI's BLOSUM62 (half-bit units), rows and columns in ALPHABET order. */
static const int8_t BLOSUM62[N_LETTERS][N_LETTERS] = {
    {4, -1, -2, -2, 0, -1, -1, 0, -2, -1, -1, -1, -1, -2, -1, 1, 0, -3, -2, 0, -2, -1, -1, -1, -4},
    {-1, 5, 0, -2, -3, 1, 0, -2, 0, -3, -2, 2, -1, -3, -2, -1, -1, -3, -2, -3, -1, -2, 0, -1, -4},
    {-2, 0, 6, 1, -3, 0, 0, 0, 1, -3, -3, 0, -2, -3, -2, 1, 0, -4, -2, -3, 4, -3, 0, -1, -4},
    {-2, -2, 1, 6, -3, 0, 2, -1, -1, -3, -4, -1, -3, -3, -1, 0, -1, -4, -3, -3, 4, -3, 1, -1, -4},
    {0, -3, -3, -3, 9, -3, -4, -3, -3, -1, -1, -3, -1, -2, -3, -1, -1, -2, -2, -1, -3, -1, -3, -1, -4},
    {-1, 1, 0, 0, -3, 5, 2, -2, 0, -3, -2, 1, 0, -3, -1, 0, -1, -2, -1, -2, 0, -2, 4, -1, -4},
    {-1, 0, 0, 2, -4, 2, 5, -2, 0, -3, -3, 1, -2, -3, -1, 0, -1, -3, -2, -2, 1, -3, 4, -1, -4},
    {0, -2, 0, -1, -3, -2, -2, 6, -2, -4, -4, -2, -3, -3, -2, 0, -2, -2, -3, -3, -1, -4, -2, -1, -4},
    {-2, 0, 1, -1, -3, 0, 0, -2, 8, -3, -3, -1, -2, -1, -2, -1, -2, -2, 2, -3, 0, -3, 0, -1, -4},
    {-1, -3, -3, -3, -1, -3, -3, -4, -3, 4, 2, -3, 1, 0, -3, -2, -1, -3, -1, 3, -3, 3, -3, -1, -4},
    {-1, -2, -3, -4, -1, -2, -3, -4, -3, 2, 4, -2, 2, 0, -3, -2, -1, -2, -1, 1, -4, 3, -3, -1, -4},
    {-1, 2, 0, -1, -3, 1, 1, -2, -1, -3, -2, 5, -1, -3, -1, 0, -1, -3, -2, -2, 0, -3, 1, -1, -4},
    {-1, -1, -2, -3, -1, 0, -2, -3, -2, 1, 2, -1, 5, 0, -2, -1, -1, -1, -1, 1, -3, 2, -1, -1, -4},
    {-2, -3, -3, -3, -2, -3, -3, -3, -1, 0, 0, -3, 0, 6, -4, -2, -2, 1, 3, -1, -3, 0, -3, -1, -4},
    {-1, -2, -2, -1, -3, -1, -1, -2, -2, -3, -3, -1, -2, -4, 7, -1, -1, -4, -3, -2, -2, -3, -1, -1, -4},
    {1, -1, 1, 0, -1, 0, 0, 0, -1, -2, -2, 0, -1, -2, -1, 4, 1, -3, -2, -2, 0, -2, 0, -1, -4},
    {0, -1, 0, -1, -1, -1, -1, -2, -2, -1, -1, -1, -1, -2, -1, 1, 5, -2, -2, 0, -1, -1, -1, -1, -4},
    {-3, -3, -4, -4, -2, -2, -3, -2, -2, -3, -2, -3, -1, 1, -4, -3, -2, 11, 2, -3, -4, -2, -2, -1, -4},
    {-2, -2, -2, -3, -2, -1, -2, -3, 2, -1, -1, -2, -1, 3, -3, -2, -2, 2, 7, -1, -3, -1, -2, -1, -4},
    {0, -3, -3, -3, -1, -2, -2, -3, -3, 3, 1, -2, 1, -1, -2, -2, 0, -3, -1, 4, -3, 2, -2, -1, -4},
    {-2, -1, 4, 4, -3, 0, 1, -1, 0, -3, -4, 0, -3, -3, -2, 0, -1, -4, -3, -3, 4, -3, 0, -1, -4},
    {-1, -2, -3, -3, -1, -2, -3, -4, -3, 3, 3, -3, 2, 0, -3, -2, -1, -2, -1, 2, -3, 3, -3, -1, -4},
    {-1, 0, 0, 1, -3, 4, 4, -2, 0, -3, -3, 1, -1, -3, -1, 0, -1, -2, -2, -2, 0, -3, 4, -1, -4},
    {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -4},
    {-4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, 1},
};

static int letter(unsigned char c);

_Static_assert(N_LETTERS == PDR_ALIGN_LETTERS, "pdr_align.h's letter count");
int pdr_align_letter(char c) { return letter((unsigned char)c); }

const int8_t *pdr_align_blosum62_row(int letter_index) { return BLOSUM62[letter_index]; }

static int letter(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        c = (unsigned char)(c - 'a' + 'A');
    const char *p = c ? strchr(ALPHABET, c) : NULL;
    return p ? (int)(p - ALPHABET) : LETTER_X;
}

/* ---------------------------------------------------------------- scalar reference */

void pdr_align_matrix_scaled(double ratio, pdr_align_matrix *m)
{
    for (int i = 0; i < N_LETTERS; i++)
        for (int j = 0; j < N_LETTERS; j++)
            m->s[i][j] = (int16_t)lround(ratio * PDR_ALIGN_UNIT * BLOSUM62[i][j]);
}

/* The Gotoh recurrence under matrix m (NULL: BLOSUM62) and gap costs open (the first residue of
 * a gap, extension included) and ext; -1 when out of memory. */
static int ref_score(const char *a, size_t alen, const char *b, size_t blen, const pdr_align_matrix *m, int open,
                     int ext)
{
    if (alen == 0 || blen == 0)
        return 0;
    int *h = calloc(blen + 1, sizeof *h), *e = calloc(blen + 1, sizeof *e), best = 0;
    uint8_t *bl = malloc(blen);
    if (!h || !e || !bl) {
        free(h);
        free(e);
        free(bl);
        return -1;
    }
    for (size_t j = 0; j < blen; j++)
        bl[j] = (uint8_t)letter((unsigned char)b[j]);
    for (size_t j = 0; j <= blen; j++)
        e[j] = -open; /* a gap state that never beats a fresh start */
    for (size_t i = 0; i < alen; i++) {
        int la = letter((unsigned char)a[i]);
        const int8_t *row = BLOSUM62[la];
        const int16_t *row16 = m ? m->s[la] : NULL;
        int diag = 0, f = -open, left = 0;
        for (size_t j = 1; j <= blen; j++) {
            int up = h[j];
            e[j] = e[j] - ext > up - open ? e[j] - ext : up - open;
            f = f - ext > left - open ? f - ext : left - open;
            int v = diag + (row16 ? row16[bl[j - 1]] : row[bl[j - 1]]);
            v = v > e[j] ? v : e[j];
            v = v > f ? v : f;
            v = v > 0 ? v : 0;
            diag = up;
            h[j] = left = v;
            best = v > best ? v : best;
        }
    }
    free(h);
    free(e);
    free(bl);
    return best;
}

int pdr_align_score_ref(const char *a, size_t alen, const char *b, size_t blen)
{
    return ref_score(a, alen, b, blen, NULL, PDR_ALIGN_GAP_OPEN + PDR_ALIGN_GAP_EXTEND, PDR_ALIGN_GAP_EXTEND);
}

int pdr_align_score_scaled_ref(const char *a, size_t alen, const char *b, size_t blen, const pdr_align_matrix *m)
{
    return ref_score(a, alen, b, blen, m, PDR_ALIGN_UNIT * (PDR_ALIGN_GAP_OPEN + PDR_ALIGN_GAP_EXTEND),
                     PDR_ALIGN_UNIT * PDR_ALIGN_GAP_EXTEND);
}

/* ---------------------------------------------------------------- striped kernel */

#define LANES 16
/* A gap state no alignment is in: far enough below 0 never to win, far enough above -32768
 * never to wrap while the lazy-F loop lowers it. */
#define GAP_NONE (-1000)
typedef int16_t vec16 __attribute__((vector_size(2 * LANES)));

struct pdr_align_query {
    char *seq; /* the query, for the 32-bit fallback */
    size_t len;
    size_t seg_len;
    vec16 *profile; /* N_LETTERS x seg_len */
    vec16 *h_load, *h_store, *e;
    uint8_t *tletters; /* target letters, grown as needed */
    size_t tcap;
    uint8_t lut[256];   /* byte -> letter index */
    uint8_t *qletters;  /* the query's letter indices (the inter-sequence kernel) */
    vec16 *sw_h, *sw_e; /* len vectors each: the inter-sequence kernel's H and E columns */
    int use_avx2;       /* the CPU has AVX2: the kernels compiled for it run */
    /* the 8-bit pass (AVX2 only): 32 lanes of unsigned scores, biased by BIAS8 */
    size_t seg8;
    uint8_t *profile8; /* N_LETTERS x seg8 x 32 bytes */
    uint8_t *h8_load, *h8_store, *e8;
};

/* 8-bit scores: profile entries are BLOSUM62 + BIAS8 (so >= 0), and a score above MAX8 could
 * saturate on the next column: the pass gives up and the 16-bit one runs. */
#define LANES8 32
#define BIAS8 4
#define MAX8 (255 - 11 - BIAS8)

/* Lane-wise maximum: pmaxsw, on one AVX2 register or two SSE2 halves (x86-64's baseline). */
#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2"))) static inline vec16 vmax_avx2(vec16 a, vec16 b)
{
    return (vec16)_mm256_max_epi16((__m256i)a, (__m256i)b);
}
static inline vec16 vmax_sse2(vec16 a, vec16 b)
{
    __m128i x[2], y[2];
    memcpy(x, &a, sizeof x);
    memcpy(y, &b, sizeof y);
    x[0] = _mm_max_epi16(x[0], y[0]);
    x[1] = _mm_max_epi16(x[1], y[1]);
    memcpy(&a, x, sizeof a);
    return a;
}
#else
static inline vec16 vmax_sse2(vec16 a, vec16 b)
{
    vec16 m = a > b;
    return (a & m) | (b & ~m);
}
#define vmax_avx2 vmax_sse2
#endif

/* Lanes moved up by one, lane 0 getting fill's lane 0: query position i - 1 of lane l's first
 * segment is the last segment of lane l - 1. */
/* always_inline, here and below: called from both the AVX2 and the default kernel, these must
 * never be real calls (32-byte vectors pass differently with and without AVX), -O0 included. */
static inline __attribute__((always_inline)) vec16 shift_lanes(vec16 v, vec16 fill)
{
    return __builtin_shufflevector(v, fill, 16, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14);
}

static inline __attribute__((always_inline)) int any_greater(vec16 a, vec16 b)
{
    vec16 m = a > b;
    uint64_t w[4];
    memcpy(w, &m, sizeof w);
    return (w[0] | w[1] | w[2] | w[3]) != 0;
}

static inline __attribute__((always_inline)) int hmax(vec16 v)
{
    int16_t x[LANES];
    memcpy(x, &v, sizeof x);
    int m = x[0];
    for (int l = 1; l < LANES; l++)
        m = x[l] > m ? x[l] : m;
    return m;
}

/* The kernel, inlined into one function per instruction set with that set's vmax. */
static inline __attribute__((always_inline)) int striped(pdr_align_query *q, const uint8_t *t, size_t tlen,
                                                         vec16 (*vmax)(vec16, vec16))
{
    const size_t seg_len = q->seg_len;
    const vec16 v_open = (vec16){0} + (int16_t)(PDR_ALIGN_GAP_OPEN + PDR_ALIGN_GAP_EXTEND);
    const vec16 v_ext = (vec16){0} + (int16_t)PDR_ALIGN_GAP_EXTEND;
    const vec16 zero = {0};
    const vec16 none = zero + (int16_t)GAP_NONE;
    vec16 *h_load = q->h_load, *h_store = q->h_store, *e = q->e, v_best = zero;
    for (size_t s = 0; s < seg_len; s++) {
        h_load[s] = h_store[s] = zero;
        e[s] = none;
    }
    for (size_t j = 0; j < tlen; j++) {
        const vec16 *prof = q->profile + (size_t)t[j] * seg_len;
        vec16 f = none, h = shift_lanes(h_store[seg_len - 1], zero);
        vec16 *tmp = h_load;
        h_load = h_store;
        h_store = tmp;
        for (size_t s = 0; s < seg_len; s++) {
            h = h + prof[s];
            h = vmax(h, e[s]);
            h = vmax(h, f);
            h = vmax(h, zero);
            v_best = vmax(v_best, h);
            h_store[s] = h;
            vec16 h_gap = h - v_open;
            e[s] = vmax(e[s] - v_ext, h_gap);
            f = vmax(f - v_ext, h_gap);
            h = h_load[s];
        }
        /* lazy F: a vertical gap that runs from one lane into the next */
        f = shift_lanes(f, none);
        size_t s = 0;
        while (any_greater(f, h_store[s] - v_open)) {
            h_store[s] = vmax(h_store[s], f);
            v_best = vmax(v_best, h_store[s]);
            e[s] = vmax(e[s], h_store[s] - v_open);
            f = f - v_ext;
            if (++s >= seg_len) {
                s = 0;
                f = shift_lanes(f, none);
            }
        }
        /* a score grows by at most 11 (W-W) a column: checked every 64 columns, one below
         * PDR_ALIGN_SAT cannot pass 32767 before the next check */
        if ((j & 63) == 63 && hmax(v_best) >= PDR_ALIGN_SAT)
            return -1;
    }
    q->h_load = h_load;
    q->h_store = h_store;
    int best = hmax(v_best);
    return best >= PDR_ALIGN_SAT ? -1 : best;
}

__attribute__((target("avx2"))) static int striped_avx2(pdr_align_query *q, const uint8_t *t, size_t tlen)
{
    return striped(q, t, tlen, vmax_avx2);
}

static int striped_default(pdr_align_query *q, const uint8_t *t, size_t tlen) { return striped(q, t, tlen, vmax_sse2); }

#if defined(__x86_64__)
/* Bytes moved up by one lane across the whole 256-bit register, lane 0 getting 0. */
__attribute__((target("avx2"))) static inline __m256i shift8(__m256i v)
{
    return _mm256_alignr_epi8(v, _mm256_permute2x128_si256(v, v, 0x08), 15);
}

/* The first pass: Farrar's 8-bit unsigned kernel, twice the lanes of the 16-bit one. Returns -1
 * when a score passes MAX8 (the 16-bit kernel then recomputes it). */
__attribute__((target("avx2"))) static int striped8_avx2(pdr_align_query *q, const uint8_t *t, size_t tlen)
{
    const size_t seg_len = q->seg8;
    const __m256i v_bias = _mm256_set1_epi8(BIAS8),
                  v_open = _mm256_set1_epi8(PDR_ALIGN_GAP_OPEN + PDR_ALIGN_GAP_EXTEND),
                  v_ext = _mm256_set1_epi8(PDR_ALIGN_GAP_EXTEND), v_limit = _mm256_set1_epi8((char)(MAX8 + 1)),
                  zero = _mm256_setzero_si256();
    __m256i *h_load = (__m256i *)q->h8_load, *h_store = (__m256i *)q->h8_store, *e = (__m256i *)q->e8;
    const __m256i *profile = (const __m256i *)q->profile8;
    __m256i v_best = zero;
    for (size_t s = 0; s < seg_len; s++)
        h_load[s] = h_store[s] = e[s] = zero;
    for (size_t j = 0; j < tlen; j++) {
        const __m256i *prof = profile + (size_t)t[j] * seg_len;
        __m256i f = zero, h = shift8(h_store[seg_len - 1]);
        __m256i *tmp = h_load;
        h_load = h_store;
        h_store = tmp;
        for (size_t s = 0; s < seg_len; s++) {
            h = _mm256_subs_epu8(_mm256_adds_epu8(h, prof[s]), v_bias);
            h = _mm256_max_epu8(h, e[s]);
            h = _mm256_max_epu8(h, f);
            v_best = _mm256_max_epu8(v_best, h);
            h_store[s] = h;
            __m256i h_gap = _mm256_subs_epu8(h, v_open);
            e[s] = _mm256_max_epu8(_mm256_subs_epu8(e[s], v_ext), h_gap);
            f = _mm256_max_epu8(_mm256_subs_epu8(f, v_ext), h_gap);
            h = h_load[s];
        }
        f = shift8(f);
        size_t s = 0;
        for (;;) { /* lazy F: while some f > h - open */
            __m256i gt = _mm256_subs_epu8(f, _mm256_subs_epu8(h_store[s], v_open));
            if (_mm256_testz_si256(gt, gt))
                break;
            h_store[s] = _mm256_max_epu8(h_store[s], f);
            e[s] = _mm256_max_epu8(e[s], _mm256_subs_epu8(h_store[s], v_open));
            f = _mm256_subs_epu8(f, v_ext);
            if (++s >= seg_len) {
                s = 0;
                f = shift8(f);
            }
        }
        /* any lane at or above MAX8 + 1: max(best, limit) == best there */
        if (_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_max_epu8(v_best, v_limit), v_best)))
            return -1;
    }
    q->h8_load = (uint8_t *)h_load;
    q->h8_store = (uint8_t *)h_store;
    uint8_t b[LANES8];
    memcpy(b, &v_best, sizeof b);
    int best = 0;
    for (int l = 0; l < LANES8; l++)
        best = b[l] > best ? b[l] : best;
    return best;
}
#endif

/* ---------------------------------------------------------------- inter-sequence kernel */

/* One target per lane (Rognes 2011, "SWIPE"): the plain Gotoh recurrence down the query for 16
 * targets at once, column by column of the targets. Unlike the striped kernel its cost does not
 * grow with the score (the striped kernel's vertical-gap correction runs long on related pairs),
 * so it takes the pairs whose scores overflow the 8-bit pass. Lanes past their target's end score
 * SWIPE_PAD, which no alignment survives. A lane whose best reaches PDR_ALIGN_SAT is flagged
 * (its scores could wrap on later columns; the other lanes are independent) and recomputed by the
 * reference. */
#define SWIPE_PAD (-1000)

/* Wrapping 16-bit add and subtract (unsigned arithmetic: a flagged lane may wrap, and signed
 * overflow would be undefined). */
typedef uint16_t uvec16 __attribute__((vector_size(2 * LANES)));
static inline __attribute__((always_inline)) vec16 wadd(vec16 a, vec16 b) { return (vec16)((uvec16)a + (uvec16)b); }
static inline __attribute__((always_inline)) vec16 wsub(vec16 a, vec16 b) { return (vec16)((uvec16)a - (uvec16)b); }

/* Lane l scores with mat[l] (mat NULL: BLOSUM62) and gap costs open (extension included) and
 * ext. */
typedef struct swipe_scoring {
    const pdr_align_matrix *const *mat;
    int open, ext;
} swipe_scoring;

static inline __attribute__((always_inline)) void swipe(pdr_align_query *q, const uint8_t *const *tl,
                                                        const size_t *tlen, int nl, const swipe_scoring *sc, int *best,
                                                        vec16 (*vmax)(vec16, vec16))
{
    const size_t m = q->len;
    vec16 *hcol = q->sw_h, *ecol = q->sw_e;
    vec16 zero = {0}, none, v_open, v_ext, v_best = zero;
    for (int l = 0; l < LANES; l++) {
        none[l] = GAP_NONE;
        v_open[l] = (int16_t)sc->open;
        v_ext[l] = (int16_t)sc->ext;
    }
    size_t maxlen = 0;
    for (int l = 0; l < nl; l++)
        maxlen = tlen[l] > maxlen ? tlen[l] : maxlen;
    for (size_t i = 0; i < m; i++) {
        hcol[i] = zero;
        ecol[i] = none;
    }
    int16_t prof[N_LETTERS][LANES] __attribute__((aligned(32)));
    for (size_t j = 0; j < maxlen; j++) {
        for (int l = 0; l < LANES; l++) {
            if (l < nl && j < tlen[l] && sc->mat) {
                const int16_t *row = sc->mat[l]->s[tl[l][j]]; /* symmetric: row c is column c */
                for (int a = 0; a < N_LETTERS; a++)
                    prof[a][l] = row[a];
            } else if (l < nl && j < tlen[l]) {
                const int8_t *row = BLOSUM62[tl[l][j]];
                for (int a = 0; a < N_LETTERS; a++)
                    prof[a][l] = row[a];
            } else {
                for (int a = 0; a < N_LETTERS; a++)
                    prof[a][l] = SWIPE_PAD;
            }
        }
        vec16 h_diag = zero, h_up = zero, f = none;
        for (size_t i = 0; i < m; i++) {
            vec16 h_left = hcol[i], p;
            memcpy(&p, prof[q->qletters[i]], sizeof p);
            vec16 e = vmax(wsub(ecol[i], v_ext), wsub(h_left, v_open));
            f = vmax(wsub(f, v_ext), wsub(h_up, v_open));
            vec16 h = vmax(vmax(vmax(wadd(h_diag, p), e), f), zero);
            h_diag = h_left;
            hcol[i] = h;
            ecol[i] = e;
            h_up = h;
            v_best = vmax(v_best, h);
        }
    }
    /* a lane's H grows by at most 11 per cell, so one that would wrap passed PDR_ALIGN_SAT first,
     * and the running maximum kept that */
    int16_t b[LANES];
    memcpy(b, &v_best, sizeof b);
    for (int l = 0; l < nl; l++)
        best[l] = b[l] >= PDR_ALIGN_SAT ? -1 : b[l];
}

static void swipe_default(pdr_align_query *q, const uint8_t *const *tl, const size_t *tlen, int nl,
                          const swipe_scoring *sc, int *best)
{
    swipe(q, tl, tlen, nl, sc, best, vmax_sse2);
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static void swipe_avx2(pdr_align_query *q, const uint8_t *const *tl, const size_t *tlen,
                                                       int nl, const swipe_scoring *sc, int *best)
{
    swipe(q, tl, tlen, nl, sc, best, vmax_avx2);
}
#endif

/* ---------------------------------------------------------------- query */

int pdr_align_query_create(const char *seq, size_t len, pdr_align_query **ret_q, pdr_err *err)
{
    *ret_q = NULL;
    if (len == 0)
        return pdr_fail(err, PDR_EINPUT, "alignment: empty query");
    pdr_align_query *q = calloc(1, sizeof *q);
    if (!q)
        return pdr_fail(err, PDR_ENOMEM, "alignment: out of memory");
    q->len = len;
    q->seg_len = (len + LANES - 1) / LANES;
    size_t bytes = q->seg_len * sizeof(vec16);
    q->seq = malloc(len);
    q->profile = aligned_alloc(sizeof(vec16), N_LETTERS * bytes);
    q->h_load = aligned_alloc(sizeof(vec16), bytes);
    q->h_store = aligned_alloc(sizeof(vec16), bytes);
    q->e = aligned_alloc(sizeof(vec16), bytes);
    q->qletters = malloc(len);
    q->sw_h = aligned_alloc(sizeof(vec16), len * sizeof(vec16));
    q->sw_e = aligned_alloc(sizeof(vec16), len * sizeof(vec16));
    __builtin_cpu_init();
    q->use_avx2 = __builtin_cpu_supports("avx2") != 0;
    if (q->use_avx2) {
        q->seg8 = (len + LANES8 - 1) / LANES8;
        size_t bytes8 = q->seg8 * LANES8;
        q->profile8 = aligned_alloc(LANES8, N_LETTERS * bytes8);
        q->h8_load = aligned_alloc(LANES8, bytes8);
        q->h8_store = aligned_alloc(LANES8, bytes8);
        q->e8 = aligned_alloc(LANES8, bytes8);
    }
    if (!q->seq || !q->profile || !q->h_load || !q->h_store || !q->e || !q->qletters || !q->sw_h || !q->sw_e ||
        (q->use_avx2 && (!q->profile8 || !q->h8_load || !q->h8_store || !q->e8))) {
        pdr_align_query_free(q);
        return pdr_fail(err, PDR_ENOMEM, "alignment: out of memory for a query of %zu residues", len);
    }
    memcpy(q->seq, seq, len);
    for (int c = 0; c < 256; c++)
        q->lut[c] = (uint8_t)letter((unsigned char)c);
    for (size_t i = 0; i < len; i++)
        q->qletters[i] = q->lut[(unsigned char)seq[i]];
    for (int a = 0; a < N_LETTERS; a++)
        for (size_t s = 0; s < q->seg_len; s++) {
            int16_t v[LANES];
            for (int l = 0; l < LANES; l++) {
                size_t i = (size_t)l * q->seg_len + s;
                /* padding past the query's end: a score no path through it survives */
                v[l] = i < len ? BLOSUM62[a][letter((unsigned char)seq[i])] : (int16_t)-1000;
            }
            memcpy(&q->profile[(size_t)a * q->seg_len + s], v, sizeof v);
        }
    for (int a = 0; q->use_avx2 && a < N_LETTERS; a++)
        for (size_t s = 0; s < q->seg8; s++)
            for (int l = 0; l < LANES8; l++) {
                size_t i = (size_t)l * q->seg8 + s;
                /* padding: 0, i.e. -BIAS8, never raises a score */
                q->profile8[((size_t)a * q->seg8 + s) * LANES8 + (size_t)l] =
                    (uint8_t)(i < len ? BLOSUM62[a][letter((unsigned char)seq[i])] + BIAS8 : 0);
            }
    *ret_q = q;
    return PDR_OK;
}

void pdr_align_query_free(pdr_align_query *q)
{
    if (!q)
        return;
    free(q->seq);
    free(q->profile);
    free(q->h_load);
    free(q->h_store);
    free(q->e);
    free(q->profile8);
    free(q->h8_load);
    free(q->h8_store);
    free(q->e8);
    free(q->tletters);
    free(q->qletters);
    free(q->sw_h);
    free(q->sw_e);
    free(q);
}

/* target's letter indices into q->tletters (grown as needed); -1 when out of memory. */
static int target_letters(pdr_align_query *q, const char *target, size_t tlen)
{
    if (tlen > q->tcap) {
        uint8_t *p = realloc(q->tletters, tlen);
        if (!p)
            return -1;
        q->tletters = p;
        q->tcap = tlen;
    }
    for (size_t j = 0; j < tlen; j++)
        q->tletters[j] = q->lut[(unsigned char)target[j]];
    return 0;
}

int pdr_align_score(pdr_align_query *q, const char *target, size_t tlen)
{
    if (tlen == 0)
        return 0;
    if (target_letters(q, target, tlen)) /* the reference needs no work arrays of this size */
        return pdr_align_score_ref(q->seq, q->len, target, tlen);
    int s = -1;
#if defined(__x86_64__)
    if (q->use_avx2)
        s = striped8_avx2(q, q->tletters, tlen);
#endif
    if (s < 0)
        s = q->use_avx2 ? striped_avx2(q, q->tletters, tlen) : striped_default(q, q->tletters, tlen);
    return s >= 0 ? s : pdr_align_score_ref(q->seq, q->len, target, tlen);
}

typedef struct pending_target {
    size_t len, index;
} pending_target;

static int by_length(const void *a, const void *b)
{
    const pending_target *x = a, *y = b;
    return (x->len > y->len) - (x->len < y->len);
}

/* The inter-sequence kernel over the pending targets (sorted here by length, 16 per batch), each
 * with its matrix mats[index] (mats NULL: BLOSUM62 and the usual gaps; else the scaled matrices'
 * gaps), into scores[index]; a lane past PDR_ALIGN_SAT by the 32-bit reference. */
static int swipe_pending(pdr_align_query *q, pending_target *pend, size_t n_pend, size_t total,
                         const char *const *targets, const size_t *tlens, const pdr_align_matrix *const *mats,
                         int *scores, pdr_err *err)
{
    qsort(pend, n_pend, sizeof *pend, by_length);
    uint8_t *letters = malloc(total ? total : 1);
    if (!letters)
        return pdr_fail(err, PDR_ENOMEM, "alignment: out of memory for %zu residues", total);
    const int unit = mats ? PDR_ALIGN_UNIT : 1;
    size_t off = 0;
    int rc = PDR_OK;
    for (size_t p = 0; p < n_pend; p += LANES) {
        const uint8_t *tl[LANES];
        const pdr_align_matrix *lane_mat[LANES];
        size_t len[LANES];
        int nl = n_pend - p < LANES ? (int)(n_pend - p) : LANES, best[LANES];
        for (int l = 0; l < nl; l++) {
            const pending_target *pt = &pend[p + (size_t)l];
            uint8_t *dst = letters + off;
            for (size_t j = 0; j < pt->len; j++)
                dst[j] = q->lut[(unsigned char)targets[pt->index][j]];
            tl[l] = dst;
            len[l] = pt->len;
            lane_mat[l] = mats ? mats[pt->index] : NULL;
            off += pt->len;
        }
        swipe_scoring sc = {mats ? lane_mat : NULL, unit * (PDR_ALIGN_GAP_OPEN + PDR_ALIGN_GAP_EXTEND),
                            unit * PDR_ALIGN_GAP_EXTEND};
#if defined(__x86_64__)
        if (q->use_avx2)
            swipe_avx2(q, tl, len, nl, &sc, best);
        else
#endif
            swipe_default(q, tl, len, nl, &sc, best);
        for (int l = 0; l < nl; l++) {
            size_t t = pend[p + (size_t)l].index;
            if (best[l] >= 0)
                scores[t] = best[l];
            else if (mats)
                scores[t] = pdr_align_score_scaled_ref(q->seq, q->len, targets[t], tlens[t], mats[t]);
            else
                scores[t] = pdr_align_score_ref(q->seq, q->len, targets[t], tlens[t]);
            if (scores[t] < 0)
                rc = pdr_fail(err, PDR_ENOMEM, "alignment: out of memory");
        }
    }
    free(letters);
    return rc;
}

/* Both batch entry points: without matrices the 8-bit pass first (AVX2), which settles most
 * unrelated pairs; the rest (with matrices: every pair) go to the inter-sequence kernel. */
static int batch_scores(pdr_align_query *q, size_t n, const char *const *targets, const size_t *tlens,
                        const pdr_align_matrix *const *mats, int *scores, pdr_err *err)
{
    pending_target *pend = malloc((n ? n : 1) * sizeof *pend);
    size_t n_pend = 0, total = 0;
    if (!pend)
        return pdr_fail(err, PDR_ENOMEM, "alignment: out of memory for %zu targets", n);
    for (size_t t = 0; t < n; t++) {
        scores[t] = 0;
        if (tlens[t] == 0 || q->len == 0)
            continue;
        int s = -1;
#if defined(__x86_64__)
        if (q->use_avx2 && !mats) {
            if (target_letters(q, targets[t], tlens[t])) {
                free(pend);
                return pdr_fail(err, PDR_ENOMEM, "alignment: out of memory for a target of %zu residues", tlens[t]);
            }
            s = striped8_avx2(q, q->tletters, tlens[t]);
        }
#endif
        if (s >= 0) {
            scores[t] = s;
        } else {
            pend[n_pend++] = (pending_target){tlens[t], t};
            total += tlens[t];
        }
    }
    int rc = swipe_pending(q, pend, n_pend, total, targets, tlens, mats, scores, err);
    free(pend);
    return rc;
}

int pdr_align_scores(pdr_align_query *q, size_t n, const char *const *targets, const size_t *tlens, int *scores,
                     pdr_err *err)
{
    return batch_scores(q, n, targets, tlens, NULL, scores, err);
}

int pdr_align_scores_scaled(pdr_align_query *q, size_t n, const char *const *targets, const size_t *tlens,
                            const pdr_align_matrix *const *mats, int *scores, pdr_err *err)
{
    return batch_scores(q, n, targets, tlens, mats, scores, err);
}

const char *pdr_align_simd(void)
{
    __builtin_cpu_init();
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2"))
        return "AVX2: striped 8-bit, then 16-bit one target per lane";
#endif
    return "SSE2: 16-bit one target per lane";
}
