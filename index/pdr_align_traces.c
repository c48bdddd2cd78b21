/* pdr_align_traces.c: the alignments with their paths of one query against many targets
 * (pdr_align.h), for the output formats that report them (BLAST tabular, every kept hit).
 *
 * The targets go 16 at a time through the inter-sequence layout of pdr_align.c's kernel (Rognes
 * 2011): lane l holds target l, and each cell is the scalar recurrence of pdr_align_trace.c, with
 * its tie rules, on 16 pairs at once. Each cell's direction word (the direction byte of
 * pdr_align_trace.c in 16 bits) is kept for the whole batch: column j (target position), row i
 * (query position), lane l at dirs[(j * m + i) * LANES + l]. The best cell is the one scalar row-major order
 * meets first: the smallest row, then the smallest column, of those with the best score. So the
 * walk back, pdr_align_walk, takes the same path as pdr_align_trace.
 *
 * 16-bit arithmetic wraps in unsigned vectors (as pdr_align.c's kernel), and a lane whose best
 * score reaches PDR_ALIGN_SAT is traced again by pdr_align_trace, as are targets of batches whose
 * directions would not fit in max_bytes. */
#include <stdlib.h>
#include <string.h>

#include "pdr_align.h"

/* The vector helpers are static and inlined: GCC's note that 32-byte vector arguments pass
 * differently with and without AVX concerns no ABI anyone sees. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#define LANES 16
#define PAD_SCORE (-1000) /* past a lane's target end: no alignment survives */
#define GAP_NONE (-1000)  /* a gap state no alignment is in, far from wrapping */
#define MAX_POS 32767     /* positions are kept in 16-bit lanes */

typedef int16_t v16 __attribute__((vector_size(2 * LANES)));
typedef uint16_t u16 __attribute__((vector_size(2 * LANES)));

static inline __attribute__((always_inline)) v16 add(v16 a, v16 b) { return (v16)((u16)a + (u16)b); }
static inline __attribute__((always_inline)) v16 sub(v16 a, v16 b) { return (v16)((u16)a - (u16)b); }
/* m is all ones where true (a vector comparison's result) */
static inline __attribute__((always_inline)) v16 pick(v16 m, v16 a, v16 b) { return (m & a) | (~m & b); }

typedef struct batch {
    const uint8_t *qa; /* query letters, m of them */
    size_t m;          /* query length */
    const uint8_t *t[LANES];
    size_t tlen[LANES];
    int nl;          /* lanes in use */
    size_t maxlen;   /* longest target */
    v16 *h, *e;      /* m vectors each: H and L (gap in a) of the previous column */
    v16 *dirs;       /* maxlen * m vectors */
    int best[LANES]; /* per lane: best score, its row and column (0-based) */
    int best_i[LANES], best_j[LANES];
} batch;

static inline __attribute__((always_inline)) void kernel(batch *bt)
{
    const size_t m = bt->m;
    const v16 zero = {0}, none = zero + (int16_t)GAP_NONE;
    const v16 open = zero + (int16_t)(PDR_ALIGN_GAP_OPEN + PDR_ALIGN_GAP_EXTEND),
              ext = zero + (int16_t)PDR_ALIGN_GAP_EXTEND;
    const v16 d_diag = zero + (int16_t)PDR_ALIGN_DIR_DIAG, d_v = zero + (int16_t)PDR_ALIGN_DIR_V,
              d_l = zero + (int16_t)PDR_ALIGN_DIR_L, d_vext = zero + (int16_t)PDR_ALIGN_DIR_V_EXT,
              d_lext = zero + (int16_t)PDR_ALIGN_DIR_L_EXT;
    v16 v_best = zero, v_bi = zero + (int16_t)MAX_POS, v_bj = zero;
    for (size_t i = 0; i < m; i++) {
        bt->h[i] = zero;
        bt->e[i] = none;
    }
    int16_t prof[PDR_ALIGN_LETTERS][LANES] __attribute__((aligned(32)));
    for (size_t j = 0; j < bt->maxlen; j++) {
        for (int l = 0; l < LANES; l++) {
            if (l < bt->nl && j < bt->tlen[l]) {
                const int8_t *row = pdr_align_blosum62_row(bt->t[l][j]); /* symmetric */
                for (int a = 0; a < PDR_ALIGN_LETTERS; a++)
                    prof[a][l] = row[a];
            } else {
                for (int a = 0; a < PDR_ALIGN_LETTERS; a++)
                    prof[a][l] = PAD_SCORE;
            }
        }
        v16 h_diag = zero, h_up = zero, f = none, vj = zero + (int16_t)j;
        v16 *restrict dcol = bt->dirs + j * m;
        for (size_t i = 0; i < m; i++) {
            v16 h_left = bt->h[i], p, vi = zero + (int16_t)i;
            memcpy(&p, prof[bt->qa[i]], sizeof p);
            v16 l_ext = sub(bt->e[i], ext), l_open = sub(h_left, open), le = l_ext > l_open;
            v16 l = pick(le, l_ext, l_open);
            v16 v_ext = sub(f, ext), v_open = sub(h_up, open), ve = v_ext > v_open;
            f = pick(ve, v_ext, v_open);
            v16 x = add(h_diag, p), src = d_diag;
            v16 gv = f > x;
            x = pick(gv, f, x);
            src = pick(gv, d_v, src);
            v16 gl = l > x;
            x = pick(gl, l, x);
            src = pick(gl, d_l, src);
            v16 pos = x > zero;
            x &= pos;
            src &= pos;
            dcol[i] = src | (ve & d_vext) | (le & d_lext);
            /* row-major first of the best: a higher score, or the same in an earlier row */
            v16 gt = x > v_best, upd = gt | ((x == v_best) & (vi < v_bi));
            v_best = pick(gt, x, v_best);
            v_bi = pick(upd, vi, v_bi);
            v_bj = pick(upd, vj, v_bj);
            h_diag = h_left;
            bt->h[i] = x;
            bt->e[i] = l;
            h_up = x;
        }
    }
    for (int l = 0; l < LANES; l++) {
        bt->best[l] = v_best[l];
        bt->best_i[l] = v_bi[l];
        bt->best_j[l] = v_bj[l];
    }
}

static void kernel_default(batch *bt) { kernel(bt); }

#if defined(__x86_64__)
__attribute__((target("avx2"))) static void kernel_avx2(batch *bt) { kernel(bt); }
#endif

typedef struct lane_ctx {
    const v16 *dirs;
    size_t m;
    int lane;
} lane_ctx;

static uint8_t lane_dir(void *ctx, size_t i, size_t j)
{
    const lane_ctx *c = ctx;
    return (uint8_t)c->dirs[(j - 1) * c->m + (i - 1)][c->lane];
}

typedef struct by_len {
    size_t len, index;
} by_len;

static int cmp_len(const void *a, const void *b)
{
    const by_len *x = a, *y = b;
    return (x->len > y->len) - (x->len < y->len);
}

/* Whether a batch of a query of m residues and targets up to maxlen goes through the lanes. */
static int fits(size_t m, size_t maxlen, size_t max_bytes)
{
    return m > 0 && maxlen > 0 && m <= MAX_POS && maxlen <= MAX_POS && m * maxlen <= max_bytes / sizeof(v16);
}

int pdr_align_traces(const char *a, size_t alen, size_t n, const char *const *b, const size_t *blen, size_t max_bytes,
                     pdr_alignment *r, pdr_err *err)
{
    if (max_bytes == 0)
        max_bytes = PDR_ALIGN_TRACES_BYTES;
    by_len *order = malloc((n ? n : 1) * sizeof *order);
    uint8_t *qa = malloc(alen ? alen : 1);
    size_t total = 0;
    for (size_t t = 0; t < n; t++)
        total += blen[t];
    uint8_t *letters = malloc(total ? total : 1);
    batch bt = {0};
    bt.h = aligned_alloc(sizeof(v16), (alen ? alen : 1) * sizeof(v16));
    bt.e = aligned_alloc(sizeof(v16), (alen ? alen : 1) * sizeof(v16));
    int rc = PDR_OK;
    if (!order || !qa || !letters || !bt.h || !bt.e) {
        rc = pdr_fail(err, PDR_ENOMEM, "alignment: out of memory tracing %zu targets", n);
        goto done;
    }
    for (size_t i = 0; i < alen; i++)
        qa[i] = (uint8_t)pdr_align_letter(a[i]);
    for (size_t t = 0; t < n; t++)
        order[t] = (by_len){blen[t], t};
    qsort(order, n, sizeof *order, cmp_len); /* similar lengths share a batch: less padding */
    bt.qa = qa;
    bt.m = alen;
    size_t off = 0;
    int avx2 = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    avx2 = __builtin_cpu_supports("avx2");
#endif
    /* one direction buffer for every batch: the largest that fits the budget (sorted: the last) */
    size_t fit = 0;
    for (size_t p = 0; p < n; p += LANES) {
        size_t nl = n - p < LANES ? n - p : LANES, maxlen = order[p + nl - 1].len;
        if (fits(alen, maxlen, max_bytes))
            fit = maxlen;
    }
    v16 *dirs = fit ? aligned_alloc(sizeof(v16), alen * fit * sizeof(v16)) : NULL;
    for (size_t p = 0; p < n && !rc; p += LANES) {
        bt.nl = n - p < LANES ? (int)(n - p) : LANES;
        bt.maxlen = order[p + (size_t)bt.nl - 1].len;
        /* without room (or the memory): one at a time below, in bounded memory */
        int lanes = dirs && fits(alen, bt.maxlen, max_bytes);
        for (int l = 0; l < bt.nl; l++) {
            size_t t = order[p + (size_t)l].index;
            uint8_t *dst = letters + off;
            for (size_t j = 0; j < blen[t]; j++)
                dst[j] = (uint8_t)pdr_align_letter(b[t][j]);
            bt.t[l] = dst;
            bt.tlen[l] = blen[t];
            off += blen[t];
        }
        if (lanes) {
            bt.dirs = dirs;
#if defined(__x86_64__)
            if (avx2)
                kernel_avx2(&bt);
            else
#endif
                kernel_default(&bt);
        }
        for (int l = 0; l < bt.nl && !rc; l++) {
            size_t t = order[p + (size_t)l].index;
            if (!lanes || bt.best[l] >= PDR_ALIGN_SAT) {
                rc = pdr_align_trace(a, alen, b[t], blen[t], 0, &r[t], err);
                continue;
            }
            memset(&r[t], 0, sizeof r[t]);
            r[t].score = bt.best[l];
            if (bt.best[l] <= 0)
                continue;
            lane_ctx c = {dirs, alen, l};
            pdr_align_walk(qa, bt.t[l], (size_t)bt.best_i[l] + 1, (size_t)bt.best_j[l] + 1, lane_dir, &c, &r[t]);
        }
    }
    free(dirs);
done:
    free(order);
    free(qa);
    free(letters);
    free(bt.h);
    free(bt.e);
    return rc;
}
