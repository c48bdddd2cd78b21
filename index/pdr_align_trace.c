/* pdr_align_trace.c: one local alignment with its path (pdr_align.h), for the output formats
 * that report coordinates and identities (BLAST tabular).
 *
 * Rows are a's residues (1..alen), columns b's (1..blen); row and column 0 are the boundary.
 * H is the best score of an alignment ending at a cell, V one ending in a gap in b (a residue of
 * a against nothing: a vertical move), L one ending in a gap in a (horizontal). Each cell keeps
 * one direction byte: where H came from (DIR_ZERO: a fresh start; diagonal; V; L) and whether V
 * and L extended a gap or opened one.
 *
 * The first pass computes every row in linear memory, finds the best cell and saves H and V at
 * the first row of every strip of `rows` rows (a checkpoint). When the whole matrix fits in the
 * direction budget the first pass keeps the directions and the traceback reads them; otherwise
 * the traceback recomputes the strip it is in from that strip's checkpoint, with the same
 * recurrence and so the same values, up to the best cell's column. */
#include <stdlib.h>
#include <string.h>

#include "pdr_align.h"

enum {
    DIR_ZERO = PDR_ALIGN_DIR_ZERO,
    DIR_DIAG = PDR_ALIGN_DIR_DIAG,
    DIR_V = PDR_ALIGN_DIR_V,
    DIR_L = PDR_ALIGN_DIR_L,
    DIR_V_EXT = PDR_ALIGN_DIR_V_EXT,
    DIR_L_EXT = PDR_ALIGN_DIR_L_EXT
};

typedef struct trace_ws {
    const uint8_t *a, *b; /* letter indices */
    int *h, *v;           /* one row of H and V, columns 0..ncols */
    uint8_t *dirs;        /* directions of rows r0+1..r1, stride ncols, column j at j - 1 */
    size_t r0, r1, stride;
    int best;
    size_t best_i, best_j;
    /* the traceback's strips: rows per strip, checkpoint rows of H and V (cp_len ints each) */
    size_t rows, cp_len;
    const int *cp_h, *cp_v;
} trace_ws;

/* Rows r0+1..r1 over columns 1..ncols, starting from h and v at row r0 (updated in place).
 * Directions of row i go to w->dirs + (i - r0 - 1) * w->stride (stride 0: every row over the
 * same scratch row); the best cell is kept when track is set. Branch-free selects: this loop is
 * the whole cost of a trace. */
static void fill_rows(trace_ws *w, size_t r0, size_t r1, size_t ncols, int track)
{
    const int open = PDR_ALIGN_GAP_OPEN + PDR_ALIGN_GAP_EXTEND, ext = PDR_ALIGN_GAP_EXTEND;
    int *restrict h = w->h, *restrict v = w->v;
    const uint8_t *restrict tb = w->b;
    int best = w->best;
    size_t best_i = w->best_i, best_j = w->best_j;
    for (size_t i = r0 + 1; i <= r1; i++) {
        const int8_t *row = pdr_align_blosum62_row(w->a[i - 1]);
        uint8_t *restrict d = w->dirs + (i - r0 - 1) * w->stride;
        int diag = h[0], l = -open, left = 0; /* h[0] is the boundary: 0 */
        for (size_t j = 1; j <= ncols; j++) {
            int up = h[j];
            int v_ext = v[j] - ext, v_open = up - open, ve = v_ext > v_open;
            int vv = ve ? v_ext : v_open;
            int l_ext = l - ext, l_open = left - open, le = l_ext > l_open;
            l = le ? l_ext : l_open;
            int x = diag + row[tb[j - 1]], src = DIR_DIAG;
            int gv = vv > x;
            x = gv ? vv : x;
            src = gv ? DIR_V : src;
            int gl = l > x;
            x = gl ? l : x;
            src = gl ? DIR_L : src;
            int z = x <= 0;
            x = z ? 0 : x;
            src = z ? DIR_ZERO : src;
            v[j] = vv;
            d[j - 1] = (uint8_t)(src | (ve ? DIR_V_EXT : 0) | (le ? DIR_L_EXT : 0));
            diag = up;
            h[j] = left = x;
            if (x > best) {
                best = x;
                best_i = i;
                best_j = j;
            }
        }
    }
    if (track) {
        w->best = best;
        w->best_i = best_i;
        w->best_j = best_j;
    }
}

void pdr_align_walk(const uint8_t *la, const uint8_t *lb, size_t i, size_t j, pdr_align_dir_fn dir, void *ctx,
                    pdr_alignment *r)
{
    int state = DIR_ZERO; /* DIR_ZERO stands for "in H" here */
    r->qend = (int32_t)i;
    r->tend = (int32_t)j;
    while (i > 0 && j > 0) {
        uint8_t d = dir(ctx, i, j);
        if (state == DIR_ZERO) {
            int src = d & 3;
            if (src == DIR_ZERO)
                break;
            if (src == DIR_DIAG) {
                if (la[i - 1] == lb[j - 1] && la[i - 1] < PDR_ALIGN_AA)
                    r->identities++;
                else
                    r->mismatches++;
                r->length++;
                i--;
                j--;
            } else {
                state = src;
                r->gap_opens++;
            }
        } else if (state == DIR_V) {
            r->length++;
            state = (d & DIR_V_EXT) ? DIR_V : DIR_ZERO;
            i--;
        } else {
            r->length++;
            state = (d & DIR_L_EXT) ? DIR_L : DIR_ZERO;
            j--;
        }
    }
    r->qstart = (int32_t)i + 1;
    r->tstart = (int32_t)j + 1;
}

/* Point w->dirs at directions covering row i: recompute i's strip from its checkpoint. */
static void load_strip(trace_ws *w, size_t i, size_t rows, const int *cp_h, const int *cp_v, size_t cp_len)
{
    size_t s = (i - 1) / rows, r0 = s * rows, r1 = r0 + rows < w->best_i ? r0 + rows : w->best_i;
    size_t ncols = w->best_j;
    memcpy(w->h, cp_h + s * cp_len, (ncols + 1) * sizeof(int));
    memcpy(w->v, cp_v + s * cp_len, (ncols + 1) * sizeof(int));
    w->stride = ncols;
    fill_rows(w, r0, r1, ncols, 0);
    w->r0 = r0;
    w->r1 = r1;
}

/* The direction byte of cell (i, j), loading its strip first when it is not in memory. */
static uint8_t strip_dir(void *ctx, size_t i, size_t j)
{
    trace_ws *w = ctx;
    if (i <= w->r0 || i > w->r1)
        load_strip(w, i, w->rows, w->cp_h, w->cp_v, w->cp_len);
    return w->dirs[(i - w->r0 - 1) * w->stride + (j - 1)];
}

int pdr_align_trace(const char *a, size_t alen, const char *b, size_t blen, size_t max_cells, pdr_alignment *r,
                    pdr_err *err)
{
    memset(r, 0, sizeof *r);
    if (alen == 0 || blen == 0)
        return PDR_OK;
    if (alen > INT32_MAX || blen > INT32_MAX)
        return pdr_fail(err, PDR_EINPUT, "alignment: sequence longer than %d residues", INT32_MAX);
    if (max_cells == 0)
        max_cells = PDR_ALIGN_TRACE_CELLS;
    size_t rows = max_cells / blen; /* rows of a strip */
    if (rows < 1)
        rows = 1;
    if (rows > alen)
        rows = alen;
    size_t n_strips = (alen + rows - 1) / rows, cp_len = blen + 1;
    const int open = PDR_ALIGN_GAP_OPEN + PDR_ALIGN_GAP_EXTEND;
    trace_ws w = {0};
    uint8_t *la = malloc(alen), *lb = malloc(blen);
    w.h = malloc(cp_len * sizeof(int));
    w.v = malloc(cp_len * sizeof(int));
    w.dirs = malloc(rows * blen);
    /* one checkpoint row per strip; a single strip needs none (its start is the boundary) */
    int *cp_h = n_strips > 1 ? malloc(n_strips * cp_len * sizeof(int)) : NULL;
    int *cp_v = n_strips > 1 ? malloc(n_strips * cp_len * sizeof(int)) : NULL;
    int rc = PDR_OK;
    if (!la || !lb || !w.h || !w.v || !w.dirs || (n_strips > 1 && (!cp_h || !cp_v))) {
        rc = pdr_fail(err, PDR_ENOMEM, "alignment: out of memory tracing %zu x %zu residues", alen, blen);
        goto done;
    }
    for (size_t i = 0; i < alen; i++)
        la[i] = (uint8_t)pdr_align_letter(a[i]);
    for (size_t j = 0; j < blen; j++)
        lb[j] = (uint8_t)pdr_align_letter(b[j]);
    w.a = la;
    w.b = lb;
    for (size_t j = 0; j <= blen; j++) {
        w.h[j] = 0;
        w.v[j] = -open; /* a gap state that never beats a fresh start */
    }

    /* first pass: the best cell, checkpoints; the directions too when there is one strip (with
     * several, each row's go to the same scratch row) */
    w.stride = n_strips > 1 ? 0 : blen;
    for (size_t s = 0; s < n_strips; s++) {
        size_t r0 = s * rows, r1 = r0 + rows < alen ? r0 + rows : alen;
        if (cp_h) {
            memcpy(cp_h + s * cp_len, w.h, cp_len * sizeof(int));
            memcpy(cp_v + s * cp_len, w.v, cp_len * sizeof(int));
        }
        fill_rows(&w, r0, r1, blen, 1);
    }
    r->score = w.best;
    if (w.best <= 0)
        goto done;
    w.r0 = 0;
    w.r1 = n_strips > 1 ? 0 : alen; /* loaded rows: r0+1..r1 */

    /* traceback from the best cell */
    w.rows = rows;
    w.cp_len = cp_len;
    w.cp_h = cp_h;
    w.cp_v = cp_v;
    pdr_align_walk(la, lb, w.best_i, w.best_j, strip_dir, &w, r);
done:
    free(la);
    free(lb);
    free(w.h);
    free(w.v);
    free(w.dirs);
    free(cp_h);
    free(cp_v);
    return rc;
}
