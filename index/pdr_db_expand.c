/* pdr_db_expand.c: query expansion (pdr_db_expand.h): the arithmetic, DBDIR/expansion.h5 and
 * makedb's expansion step. */
#include "pdr_db_expand.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pdr_db.h"
#include "pdr_db_attr.h"
#include "pdr_file.h"
#include "pdr_store.h"

/* Database rows expanded per search call at makedb. */
#define EXPAND_BATCH 4096
/* Hits fetched per row to pick PDR_EXPAND_K from (room for skipped copies of the row; a row
 * with more copies is searched again, further: expand_row). */
#define EXPAND_FETCH (PDR_EXPAND_K + 5)

size_t pdr_expand_pick(const pdr_hit *hits, const float *cosine, size_t m, int64_t *rows, float *w)
{
    size_t c = 0;
    for (size_t j = 0; j < m && c < PDR_EXPAND_K; j++) {
        /* the adjusted score is the cosine less the pair's levels: move it with the cosine */
        float cos = cosine ? cosine[j] : hits[j].cosine, score = hits[j].score + (cos - hits[j].cosine);
        if (cos >= PDR_EXPAND_SAME || !(score > 0.0f))
            continue;
        rows[c] = hits[j].row;
        w[c++] = score;
    }
    return c;
}

void pdr_expand_vector(const float *e, const float *nb, const float *w, size_t m, int dim, float alpha, float *out)
{
    double wsum = 0.0;
    for (size_t j = 0; j < m; j++)
        wsum += w[j] > 0.0f ? w[j] : 0.0f;
    double norm = 0.0;
    for (int i = 0; i < dim; i++) {
        double v = e[i];
        if (wsum > 0.0) {
            double mean = 0.0;
            for (size_t j = 0; j < m; j++)
                if (w[j] > 0.0f)
                    mean += (double)w[j] * nb[j * (size_t)dim + (size_t)i];
            v += (double)alpha * mean / wsum;
        }
        out[i] = (float)v;
        norm += v * v;
    }
    float inv = norm > 0.0 ? (float)(1.0 / sqrt(norm)) : 0.0f;
    for (int i = 0; i < dim; i++)
        out[i] *= inv;
}

/* ---------------------------------------------------------------- the open expansion */

struct pdr_db_expansion {
    size_t n;
    int dim;
    int fd;           /* expansion.h5, open */
    uint64_t off[2];  /* file offsets of /original and /expanded */
    float *levels;    /* [n] */
    pdr_index *index; /* index_expanded.faiss */
    pdr_calib calib;
    int calibrated;
    char path[4096];
};

void pdr_db_expansion_free(pdr_db_expansion *x)
{
    if (!x)
        return;
    if (x->fd >= 0)
        close(x->fd);
    free(x->levels);
    pdr_index_free(x->index);
    free(x);
}

const pdr_index *pdr_db_expansion_index(const pdr_db_expansion *x) { return x->index; }
const float *pdr_db_expansion_levels(const pdr_db_expansion *x) { return x->levels; }
const pdr_calib *pdr_db_expansion_calib(const pdr_db_expansion *x) { return x->calibrated ? &x->calib : NULL; }
int pdr_db_expansion_set_nprobe(pdr_db_expansion *x, int nprobe, pdr_err *err)
{
    return pdr_index_set_nprobe(x->index, nprobe, err);
}

int pdr_db_expansion_read(const pdr_db_expansion *x, int expanded, int64_t row, float *out, pdr_err *err)
{
    size_t len = (size_t)x->dim * sizeof(float);
    uint64_t at = x->off[expanded ? 1 : 0] + (uint64_t)row * len;
    char *p = (char *)out;
    for (size_t got = 0; got < len;) {
        ssize_t r = pread(x->fd, p + got, len - got, (off_t)(at + got));
        if (r <= 0)
            return pdr_fail(err, PDR_EIO, "%s: cannot read row %lld: %s", x->path, (long long)row + 1,
                            r < 0 ? strerror(errno) : "file truncated");
        got += (size_t)r;
    }
    return PDR_OK;
}

static void join(char *out, size_t cap, const char *dir, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

/* Offset of the contiguous little-endian float32 dataset `name` of shape [rows, cols] (cols 0:
 * rank 1), or HADDR_UNDEF when it is not that. */
static haddr_t float_dataset(hid_t f, const char *name, size_t rows, int cols)
{
    haddr_t off = HADDR_UNDEF;
    hid_t d = H5Lexists(f, name, H5P_DEFAULT) > 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1, t = d >= 0 ? H5Dget_type(d) : -1;
    hsize_t dims[2] = {0, 0};
    int rank = cols ? 2 : 1;
    if (sp >= 0 && t >= 0 && H5Tequal(t, H5T_IEEE_F32LE) > 0 && H5Sget_simple_extent_ndims(sp) == rank &&
        H5Sget_simple_extent_dims(sp, dims, NULL) >= 0 && dims[0] == rows && (!cols || dims[1] == (hsize_t)cols))
        off = rows ? H5Dget_offset(d) : 0;
    if (t >= 0)
        H5Tclose(t);
    if (sp >= 0)
        H5Sclose(sp);
    if (d >= 0)
        H5Dclose(d);
    return off;
}

int pdr_db_expansion_open(const char *dbdir, size_t n, int dim, const char *bg_id, int calibrated,
                          pdr_db_expansion **ret, pdr_err *err)
{
    *ret = NULL;
    char path[4096];
    join(path, sizeof path, dbdir, PDR_DB_EXPAND_PENDING);
    if (calibrated && access(path, F_OK) == 0) /* calibration.txt came before the expansion */
        return pdr_fail(err, PDR_EIO,
                        "%s: the database's expansion is incomplete (%s: pdr makedb --expand was interrupted or "
                        "failed); rerun 'pdr makedb --expand'",
                        dbdir, PDR_DB_EXPAND_PENDING);
    join(path, sizeof path, dbdir, PDR_DB_EXPANSION);
    if (access(path, F_OK) != 0) {
        /* no expansion, unless its other files say one was made (or is being made): then
         * searching unexpanded would silently be another search */
        static const char *const parts[] = {PDR_DB_INDEX_X, PDR_DB_CALIB_X};
        char other[4096];
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            join(other, sizeof other, dbdir, parts[i]);
            if (access(other, F_OK) == 0)
                return pdr_fail(err, PDR_EIO,
                                "%s: the database's expansion is incomplete (%s without %s: pdr makedb --expand "
                                "was interrupted, or the file was removed); rerun 'pdr makedb --expand'",
                                dbdir, parts[i], PDR_DB_EXPANSION);
        }
        return PDR_OK;
    }
    pdr_db_expansion *x = calloc(1, sizeof *x);
    if (!x || !(x->levels = malloc((n ? n : 1) * sizeof(float)))) {
        free(x);
        return pdr_fail(err, PDR_ENOMEM, "%s: out of memory", path);
    }
    x->fd = -1;
    x->n = n;
    x->dim = dim;
    snprintf(x->path, sizeof x->path, "%s", path);
    int rc = PDR_OK;
    char id[64] = "";
    H5E_auto2_t old_print = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_print, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    haddr_t lev = f >= 0 ? float_dataset(f, "/levels", n, 0) : HADDR_UNDEF;
    x->off[0] = f >= 0 ? float_dataset(f, "/original", n, dim) : HADDR_UNDEF;
    x->off[1] = f >= 0 ? float_dataset(f, "/expanded", n, dim) : HADDR_UNDEF;
    int bad = f < 0 || lev == HADDR_UNDEF || x->off[0] == HADDR_UNDEF || x->off[1] == HADDR_UNDEF ||
              !pdr_db_attr_read_str(f, "background_id", id, sizeof id);
    if (!bad && n) {
        hid_t d = H5Dopen2(f, "/levels", H5P_DEFAULT);
        bad = d < 0 || H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x->levels) < 0;
        if (d >= 0)
            H5Dclose(d);
    }
    if (f >= 0)
        H5Fclose(f);
    H5Eset_auto2(H5E_DEFAULT, old_print, old_data);
    if (bad) {
        rc = pdr_fail(err, PDR_EFORMAT,
                      "%s: not an expansion of %zu proteins of dim %d (contiguous float32 /original, /expanded, "
                      "/levels); rerun 'pdr makedb --expand'",
                      path, n, dim);
        goto fail;
    }
    if (strcmp(id, bg_id) != 0) {
        rc = pdr_fail(err, PDR_EFORMAT,
                      "%s: expanded levels from background %s, the database's are from %s; rerun 'pdr makedb "
                      "--expand'",
                      path, id, bg_id);
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x->levels[i])) {
            rc = pdr_fail(err, PDR_EFORMAT, "%s: level of row %zu is not finite", path, i + 1);
            goto fail;
        }
    struct stat sb;
    x->fd = open(path, O_RDONLY);
    uint64_t need = (uint64_t)n * (uint64_t)dim * sizeof(float);
    if (x->fd < 0 || fstat(x->fd, &sb) != 0 || (uint64_t)sb.st_size < x->off[0] + need ||
        (uint64_t)sb.st_size < x->off[1] + need) {
        rc = pdr_fail(err, PDR_EFORMAT, "%s: truncated or unreadable; rerun 'pdr makedb --expand'", path);
        goto fail;
    }
    join(path, sizeof path, dbdir, PDR_DB_INDEX_X);
    if ((rc = pdr_index_load(path, &x->index, err)))
        goto fail;
    if (pdr_index_count(x->index) != n || pdr_index_dim(x->index) != dim) {
        rc = pdr_fail(err, PDR_EFORMAT,
                      "%s: %zu rows of dim %d, the database has %zu of dim %d; rerun 'pdr makedb "
                      "--expand'",
                      path, pdr_index_count(x->index), pdr_index_dim(x->index), n, dim);
        goto fail;
    }
    if (calibrated) {
        join(path, sizeof path, dbdir, PDR_DB_CALIB_X);
        if (access(path, F_OK) != 0) {
            rc = pdr_fail(err, PDR_EIO,
                          "%s: the database's expansion is incomplete (no %s: pdr makedb --expand was "
                          "interrupted?); rerun 'pdr makedb --expand'",
                          dbdir, PDR_DB_CALIB_X);
            goto fail;
        }
        if ((rc = pdr_calib_load(path, &x->calib, err)))
            goto fail;
        x->calibrated = 1;
    }
    *ret = x;
    return PDR_OK;
fail:
    pdr_db_expansion_free(x);
    return rc;
}

/* Remove the expansion's files, and with pending its expansion.pending too. */
static int remove_files(const char *dbdir, int pending, pdr_err *err)
{
    static const char *const names[] = {PDR_DB_CALIB_X, PDR_DB_INDEX_X, PDR_DB_EXPANSION, PDR_DB_EXPAND_PENDING};
    char path[4096];
    for (size_t i = 0; i < sizeof names / sizeof names[0] - (pending ? 0 : 1); i++) {
        join(path, sizeof path, dbdir, names[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            return pdr_fail(err, PDR_EIO, "%s: cannot remove: %s", path, strerror(errno));
    }
    return PDR_OK;
}

int pdr_db_expansion_remove(const char *dbdir, pdr_err *err) { return remove_files(dbdir, 1, err); }

int pdr_db_expansion_begin(const char *dbdir, pdr_err *err)
{
    char path[4096];
    join(path, sizeof path, dbdir, PDR_DB_EXPAND_PENDING);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return pdr_fail(err, PDR_EIO, "%s: cannot create: %s", path, strerror(errno));
    close(fd);
    return pdr_file_sync_dir(path, err); /* on disk before calibration.txt can be */
}

int pdr_db_expansion_end(const char *dbdir, pdr_err *err)
{
    char path[4096];
    join(path, sizeof path, dbdir, PDR_DB_EXPAND_PENDING);
    if (unlink(path) != 0 && errno != ENOENT)
        return pdr_fail(err, PDR_EIO, "%s: cannot remove: %s", path, strerror(errno));
    return pdr_file_sync_dir(path, err);
}

/* ---------------------------------------------------------------- one vector's expansion */

/* Where the database rows' original vectors come from: memory at makedb (mem), expansion.h5 at
 * search (x). */
typedef struct orig_src {
    const float *mem;
    const pdr_db_expansion *x;
    int dim;
} orig_src;

static int orig_row(const orig_src *o, int64_t row, float *out, pdr_err *err)
{
    if (o->mem) {
        memcpy(out, o->mem + (size_t)row * (size_t)o->dim, (size_t)o->dim * sizeof(float));
        return PDR_OK;
    }
    return pdr_db_expansion_read(o->x, 0, row, out, err);
}

static float dot(const float *a, const float *b, int dim)
{
    double s = 0.0;
    for (int i = 0; i < dim; i++)
        s += (double)a[i] * b[i];
    return (float)s;
}

/* Expand e (its m hits, best first, of a search for `fetch`) into out. Which hits are copies of
 * e is decided on the exact cosine of the original vectors, not the index's (a quantized index
 * scores a protein against itself anywhere in 0.998-1.001). When copies leave fewer than
 * PDR_EXPAND_K neighbours and the search may have stopped short of the next one, e is searched
 * again, further. tmp holds PDR_EXPAND_K vectors. */
static int expand_row(const pdr_db *db, const pdr_background *bg, const orig_src *o, const float *e,
                      const pdr_hit *hits, size_t m, size_t fetch, float *tmp, float *out, pdr_err *err)
{
    int dim = o->dim, rc = PDR_OK;
    pdr_hit *more = NULL;
    float *cos = NULL;
    int64_t rows[PDR_EXPAND_K];
    float w[PDR_EXPAND_K];
    size_t n_db = pdr_db_count(db);
    for (;;) {
        float *c2 = realloc(cos, (m ? m : 1) * sizeof *cos);
        if (!c2) {
            rc = pdr_fail(err, PDR_ENOMEM, "expansion: out of memory");
            goto done;
        }
        cos = c2;
        for (size_t j = 0; j < m && !rc; j++)
            if (!(rc = orig_row(o, hits[j].row, tmp, err)))
                cos[j] = dot(e, tmp, dim);
        if (rc)
            goto done;
        size_t got = pdr_expand_pick(hits, cos, m, rows, w);
        /* stop: enough, the search gave all it had, or its last hit scores <= 0 (so do all later) */
        if (got == PDR_EXPAND_K || m < fetch || fetch >= n_db || !(hits[m - 1].score > 0.0f)) {
            for (size_t j = 0; j < got && !rc; j++)
                rc = orig_row(o, rows[j], tmp + j * (size_t)dim, err);
            if (!rc)
                pdr_expand_vector(e, tmp, w, got, dim, PDR_EXPAND_ALPHA, out);
            goto done;
        }
        fetch = fetch * 4 < n_db ? fetch * 4 : n_db;
        pdr_hit *h2 = realloc(more, fetch * sizeof *more);
        if (!h2) {
            rc = pdr_fail(err, PDR_ENOMEM, "expansion: out of memory for %zu hits", fetch);
            goto done;
        }
        more = h2;
        pdr_db_queries qs = {.n = 1, .vec = e, .bg = bg, .no_expand = 1};
        if ((rc = pdr_db_search(db, &qs, (int)fetch, -HUGE_VALF, HUGE_VAL, more, &m, err)))
            goto done;
        hits = more;
    }
done:
    free(more);
    free(cos);
    return rc;
}

/* ---------------------------------------------------------------- expanding queries */

int pdr_db_expand_queries(const pdr_db *db, const pdr_background *bg, const float *vec, size_t n, float *out,
                          float *out_levels, pdr_err *err)
{
    const pdr_db_expansion *x = pdr_db_expansion_of(db);
    if (!x)
        return pdr_fail(err, PDR_EINPUT, "%s: the database has no expansion (made without --expand)", pdr_db_path(db));
    int dim = pdr_db_dim(db);
    pdr_hit *hits = malloc(n * EXPAND_FETCH * sizeof *hits);
    size_t *counts = malloc((n ? n : 1) * sizeof *counts);
    float *nb = malloc((size_t)PDR_EXPAND_K * (size_t)dim * sizeof(float));
    int rc = PDR_OK;
    if (!hits || !counts || !nb) {
        rc = pdr_fail(err, PDR_ENOMEM, "expansion: out of memory for %zu queries", n);
        goto done;
    }
    pdr_db_queries qs = {.n = n, .vec = vec, .bg = bg, .no_expand = 1};
    orig_src src = {.x = x, .dim = dim};
    if ((rc = pdr_db_search(db, &qs, EXPAND_FETCH, -HUGE_VALF, HUGE_VAL, hits, counts, err)))
        goto done;
    for (size_t q = 0; q < n && !rc; q++) {
        rc = expand_row(db, bg, &src, vec + q * (size_t)dim, hits + q * EXPAND_FETCH, counts[q], EXPAND_FETCH, nb,
                        out + q * (size_t)dim, err);
    }
    if (!rc)
        rc = pdr_background_levels_each(bg, out, n, out_levels, err);
done:
    free(hits);
    free(counts);
    free(nb);
    return rc;
}

/* ---------------------------------------------------------------- makedb's step */

static int write_f32(hid_t f, const char *name, const float *data, size_t rows, int cols)
{
    hsize_t dims[2] = {rows, (hsize_t)cols};
    hid_t s = H5Screate_simple(cols ? 2 : 1, dims, NULL), d = -1;
    /* contiguous (the default layout) and allocated at creation, so that an empty dataset has
     * an offset too */
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int ok = s >= 0 && dcpl >= 0 && H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) >= 0 &&
             (d = H5Dcreate2(f, name, H5T_IEEE_F32LE, s, H5P_DEFAULT, dcpl, H5P_DEFAULT)) >= 0 &&
             (rows == 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    if (d >= 0)
        H5Dclose(d);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (s >= 0)
        H5Sclose(s);
    return ok;
}

static int write_attrs(hid_t f, const pdr_background *bg)
{
    long long k = PDR_EXPAND_K;
    double alpha = PDR_EXPAND_ALPHA, same = PDR_EXPAND_SAME;
    return pdr_db_attr_write_str(f, "background_id", pdr_background_id(bg)) &&
           pdr_db_attr_write_num(f, "neighbours", H5T_STD_I64LE, H5T_NATIVE_LLONG, &k) &&
           pdr_db_attr_write_num(f, "alpha", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &alpha) &&
           pdr_db_attr_write_num(f, "same", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &same);
}

static int save_expansion(const char *path, const float *orig, const float *xvec, const float *xlev, size_t n, int dim,
                          const pdr_background *bg, pdr_err *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    H5E_auto2_t old_print = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_print, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int ok = f >= 0 && write_f32(f, "original", orig, n, dim) && write_f32(f, "expanded", xvec, n, dim) &&
             write_f32(f, "levels", xlev, n, 0) && write_attrs(f, bg);
    if (f >= 0 && H5Fclose(f) < 0)
        ok = 0;
    H5Eset_auto2(H5E_DEFAULT, old_print, old_data);
    if (!ok) {
        unlink(tmp);
        return pdr_fail(err, PDR_EIO, "%s: write failed (disk full?)", tmp);
    }
    return pdr_file_commit(tmp, path, err);
}

int pdr_db_write_expansion(const char *dbdir, const char *index_spec, const pdr_background *bg,
                           pdr_db_expand_progress progress, void *progress_arg, pdr_err *err)
{
    if (!bg)
        return pdr_fail(err, PDR_EINPUT,
                        "--expand: the model has no background sample, and expansion weighs neighbours by "
                        "background-adjusted score");
    int rc = remove_files(dbdir, 0, err); /* expansion.pending stays until the expansion is calibrated */
    if (rc)
        return rc;
    pdr_db *db = NULL;
    if ((rc = pdr_db_open_for_calibration(dbdir, &db, err)))
        return rc;
    size_t n = pdr_db_count(db);
    int dim = pdr_db_dim(db);
    char path[4096];
    float *orig = NULL, *xvec = NULL, *xlev = NULL, *nb = NULL;
    pdr_hit *hits = NULL;
    size_t *counts = NULL;
    pdr_store *st = NULL;
    if (pdr_db_has_segments(db)) {
        rc = pdr_fail(err, PDR_EINPUT, "--expand: not available for a segment database (--segments) yet");
        goto done;
    }
    size_t batch = n < EXPAND_BATCH ? n : EXPAND_BATCH;
    orig = malloc((n ? n : 1) * (size_t)dim * sizeof(float));
    xvec = malloc((n ? n : 1) * (size_t)dim * sizeof(float));
    xlev = malloc((n ? n : 1) * sizeof(float));
    nb = malloc((size_t)PDR_EXPAND_K * (size_t)dim * sizeof(float));
    hits = malloc((batch ? batch : 1) * EXPAND_FETCH * sizeof *hits);
    counts = malloc((batch ? batch : 1) * sizeof *counts);
    if (!orig || !xvec || !xlev || !nb || !hits || !counts) {
        rc = pdr_fail(err, PDR_ENOMEM, "%s: out of memory expanding %zu x %d vectors", dbdir, n, dim);
        goto done;
    }
    join(path, sizeof path, dbdir, PDR_DB_STORE);
    if ((rc = pdr_store_open(path, &st, err)) || (rc = pdr_store_read(st, 0, n, orig, err)))
        goto done;
    for (size_t lo = 0; lo < n; lo += batch) {
        size_t c = n - lo < batch ? n - lo : batch;
        pdr_db_queries qs = {.n = c, .vec = orig + lo * (size_t)dim, .bg = bg, .no_expand = 1};
        if ((rc = pdr_db_search(db, &qs, EXPAND_FETCH, -HUGE_VALF, HUGE_VAL, hits, counts, err)))
            goto done;
        orig_src src = {.mem = orig, .dim = dim};
        for (size_t q = 0; q < c && !rc; q++)
            rc = expand_row(db, bg, &src, orig + (lo + q) * (size_t)dim, hits + q * EXPAND_FETCH, counts[q],
                            EXPAND_FETCH, nb, xvec + (lo + q) * (size_t)dim, err);
        if (rc)
            goto done;
        if (progress)
            progress(progress_arg, lo + c, n);
    }
    if ((rc = pdr_background_levels(bg, xvec, n, xlev, err)))
        goto done;
    join(path, sizeof path, dbdir, PDR_DB_INDEX_X);
    if ((rc = pdr_db_build_index_from(xvec, n, dim, index_spec, path, NULL, err)))
        goto done;
    join(path, sizeof path, dbdir, PDR_DB_EXPANSION);
    rc = save_expansion(path, orig, xvec, xlev, n, dim, bg, err);
done:
    pdr_store_free(st);
    pdr_db_free(db);
    free(orig);
    free(xvec);
    free(xlev);
    free(nb);
    free(hits);
    free(counts);
    return rc;
}
