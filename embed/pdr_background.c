/* pdr_background.c: background levels (see pdr_background.h). */
#include "pdr_background.h"

#include <cblas.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows of x scored against the sample per matrix product: a tile of 256 x 4096 floats (4 MiB). */
#define LEVEL_TILE 256

struct pdr_background {
    size_t n;
    int dim;
    double percentile;
    size_t rank; /* the level is the rank-th smallest cosine (0-based) */
    float *vec;  /* [n][dim], L2-normalized */
    char id[17];
};

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int pdr_background_create(const float *vectors, size_t n, int dim, double percentile, pdr_background **ret_bg,
                          pdr_err *err)
{
    *ret_bg = NULL;
    if (n < 1 || n > PDR_BACKGROUND_MAX_ROWS || dim < 1)
        return pdr_fail(err, PDR_EINPUT, "background: %zu vectors of dim %d (expected 1..%d vectors)", n, dim,
                        PDR_BACKGROUND_MAX_ROWS);
    if (!(percentile > 0 && percentile < 100))
        return pdr_fail(err, PDR_EINPUT, "background: percentile %g is not in (0, 100)", percentile);
    pdr_background *bg = calloc(1, sizeof *bg);
    if (!bg || !(bg->vec = malloc(n * (size_t)dim * sizeof(float)))) {
        free(bg);
        return pdr_fail(err, PDR_ENOMEM, "background: out of memory for %zu x %d", n, dim);
    }
    bg->n = n;
    bg->dim = dim;
    bg->percentile = percentile;
    bg->rank = (size_t)floor((double)n * percentile / 100.0);
    if (bg->rank >= n)
        bg->rank = n - 1;
    for (size_t i = 0; i < n; i++) {
        const float *src = vectors + i * (size_t)dim;
        float *dst = bg->vec + i * (size_t)dim;
        double s = 0;
        for (int j = 0; j < dim; j++)
            s += (double)src[j] * src[j];
        if (!(s > 0) || !isfinite(s)) {
            pdr_background_free(bg);
            return pdr_fail(err, PDR_EINPUT, "background: vector %zu is zero or not finite", i);
        }
        float inv = (float)(1.0 / sqrt(s));
        for (int j = 0; j < dim; j++)
            dst[j] = src[j] * inv;
    }
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, bg->vec, n * (size_t)dim * sizeof(float));
    h = fnv1a(h, &percentile, sizeof percentile);
    snprintf(bg->id, sizeof bg->id, "%016llx", (unsigned long long)h);
    *ret_bg = bg;
    return PDR_OK;
}

void pdr_background_free(pdr_background *bg)
{
    if (!bg)
        return;
    free(bg->vec);
    free(bg);
}

size_t pdr_background_count(const pdr_background *bg) { return bg->n; }
int pdr_background_dim(const pdr_background *bg) { return bg->dim; }
double pdr_background_percentile(const pdr_background *bg) { return bg->percentile; }
const char *pdr_background_id(const pdr_background *bg) { return bg->id; }

/* The k-th smallest of a[0..n) (0-based); reorders a. Quickselect, median-of-three pivots. */
static float select_kth(float *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        float x = a[lo], y = a[mid], z = a[hi];
        float pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

/* The level of one row x, by one matrix-vector product (scores: bg->n floats of scratch). */
static float row_level(const pdr_background *bg, const float *x, float *scores)
{
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)bg->n, bg->dim, 1.0f, bg->vec, bg->dim, x, 1, 0.0f, scores, 1);
    float v = select_kth(scores, bg->n, bg->rank);
    return isfinite(v) ? v : 0.0f;
}

int pdr_background_levels(const pdr_background *bg, const float *x, size_t n, float *levels, pdr_err *err)
{
    if (n == 0)
        return PDR_OK;
    size_t tile = n < LEVEL_TILE ? n : LEVEL_TILE;
    float *scores = malloc(tile * bg->n * sizeof(float));
    if (!scores)
        return pdr_fail(err, PDR_ENOMEM, "background levels: out of memory");
    for (size_t lo = 0; lo < n; lo += tile) {
        size_t m = n - lo < tile ? n - lo : tile;
        if (m < 4) { /* a few rows: sgemv, without sgemm's packing of the sample */
            for (size_t i = 0; i < m; i++)
                levels[lo + i] = row_level(bg, x + (lo + i) * bg->dim, scores);
            continue;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)bg->n, bg->dim, 1.0f, x + lo * bg->dim,
                    bg->dim, bg->vec, bg->dim, 0.0f, scores, (int)bg->n);
        for (size_t i = 0; i < m; i++) {
            float v = select_kth(scores + i * bg->n, bg->n, bg->rank);
            levels[lo + i] = isfinite(v) ? v : 0.0f;
        }
    }
    free(scores);
    return PDR_OK;
}

int pdr_background_levels_each(const pdr_background *bg, const float *x, size_t n, float *levels, pdr_err *err)
{
    if (n == 0)
        return PDR_OK;
    float *scores = malloc(bg->n * sizeof(float));
    if (!scores)
        return pdr_fail(err, PDR_ENOMEM, "background levels: out of memory");
    for (size_t i = 0; i < n; i++)
        levels[i] = row_level(bg, x + i * bg->dim, scores);
    free(scores);
    return PDR_OK;
}

/* ---- reading a model file's /background ---- */

/* One numeric root attribute of class cls (H5T_FLOAT or H5T_INTEGER), read as a double. */
static int read_number_attr(hid_t file, const char *path, const char *name, H5T_class_t cls, double *ret, pdr_err *err)
{
    hid_t a = H5Aexists(file, name) > 0 ? H5Aopen(file, name, H5P_DEFAULT) : -1;
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    hid_t s = a >= 0 ? H5Aget_space(a) : -1;
    int rc = PDR_OK;
    if (a < 0 || t < 0 || s < 0 || H5Tget_class(t) != cls || H5Sget_simple_extent_npoints(s) != 1 ||
        H5Aread(a, H5T_NATIVE_DOUBLE, ret) < 0 || !isfinite(*ret))
        rc = pdr_fail(err, PDR_EFORMAT, "%s: attribute '%s' missing or not one %s", path, name,
                      cls == H5T_FLOAT ? "floating-point number" : "integer");
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    return rc;
}

static int read_percentile(hid_t file, const char *path, double *ret, pdr_err *err)
{
    int rc = read_number_attr(file, path, "background_percentile", H5T_FLOAT, ret, err);
    if (!rc && !(*ret > 0 && *ret < 100))
        rc =
            pdr_fail(err, PDR_EFORMAT, "%s: attribute 'background_percentile' is %g, expected 0 < p < 100", path, *ret);
    return rc;
}

static int read_sample(hid_t file, const char *path, const char *name, int dim, float **ret_vec, size_t *ret_n,
                       pdr_err *err)
{
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t t = ds >= 0 ? H5Dget_type(ds) : -1;
    hid_t s = ds >= 0 ? H5Dget_space(ds) : -1;
    hsize_t dims[2] = {0, 0};
    float *vec = NULL;
    int rc = PDR_OK;
    if (ds < 0 || t < 0 || s < 0 || H5Tget_class(t) != H5T_FLOAT || H5Sget_simple_extent_ndims(s) != 2 ||
        H5Sget_simple_extent_dims(s, dims, NULL) < 0) {
        rc = pdr_fail(err, PDR_EFORMAT, "%s: %s is not a 2-D floating-point dataset", path, name);
        goto done;
    }
    if (dims[0] < 1 || dims[0] > PDR_BACKGROUND_MAX_ROWS || dims[1] != (hsize_t)dim) {
        rc = pdr_fail(err, PDR_EFORMAT, "%s: %s has shape [%llu, %llu], expected [1..%d, %d]", path, name,
                      (unsigned long long)dims[0], (unsigned long long)dims[1], PDR_BACKGROUND_MAX_ROWS, dim);
        goto done;
    }
    if (!(vec = malloc((size_t)dims[0] * (size_t)dim * sizeof(float)))) {
        rc = pdr_fail(err, PDR_ENOMEM, "%s: out of memory for %s", path, name);
        goto done;
    }
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, vec) < 0) {
        rc = pdr_fail(err, PDR_EFORMAT, "%s: %s unreadable (truncated file?)", path, name);
        goto done;
    }
    *ret_vec = vec;
    *ret_n = (size_t)dims[0];
    vec = NULL;
done:
    free(vec);
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    if (ds >= 0)
        H5Dclose(ds);
    return rc;
}

/* One integer root attribute in [lo, hi]. */
static int read_int_attr(hid_t file, const char *path, const char *name, long lo, long hi, int *ret, pdr_err *err)
{
    double v = 0;
    int rc = read_number_attr(file, path, name, H5T_INTEGER, &v, err);
    if (!rc && (v < lo || v > hi))
        rc = pdr_fail(err, PDR_EFORMAT, "%s: attribute '%s' is %g, expected %ld..%ld", path, name, v, lo, hi);
    if (!rc)
        *ret = (int)v;
    return rc;
}

/* The sample in dataset `name` of the model file (absent: *ret_bg = NULL), and for segments
 * (ret_window non-NULL) its window and stride attributes. */
static int load_named(const char *model_path, const char *name, int dim, pdr_background **ret_bg, int *ret_window,
                      int *ret_stride, pdr_err *err)
{
    *ret_bg = NULL;
    H5E_auto2_t old_print = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_print, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    float *vec = NULL;
    size_t n = 0;
    double percentile = 0;
    int rc = PDR_OK;
    hid_t file = H5Fopen(model_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        rc = pdr_fail(err, PDR_EFORMAT, "%s: not a readable HDF5 model file", model_path);
        goto done;
    }
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
        goto done; /* none: cosine scores */
    if ((rc = read_percentile(file, model_path, &percentile, err)) ||
        (rc = read_sample(file, model_path, name, dim, &vec, &n, err)))
        goto done;
    if (ret_window &&
        ((rc = read_int_attr(file, model_path, "background_segment_window", 1, 1000000, ret_window, err)) ||
         (rc = read_int_attr(file, model_path, "background_segment_stride", 1, 1000000, ret_stride, err))))
        goto done;
    for (size_t i = 0; i < n * (size_t)dim; i++)
        if (!isfinite(vec[i])) {
            rc = pdr_fail(err, PDR_EFORMAT, "%s: %s: value %zu is not finite", model_path, name, i);
            goto done;
        }
    if ((rc = pdr_background_create(vec, n, dim, percentile, ret_bg, err))) {
        char why[PDR_ERRLEN];
        snprintf(why, sizeof why, "%s", err ? err->msg : "");
        rc = pdr_fail(err, rc == PDR_ENOMEM ? rc : PDR_EFORMAT, "%s: %s: %s", model_path, name, why);
    }
done:
    free(vec);
    if (file >= 0)
        H5Fclose(file);
    H5Eset_auto2(H5E_DEFAULT, old_print, old_data);
    return rc;
}

int pdr_background_load(const char *model_path, int dim, pdr_background **ret_bg, pdr_err *err)
{
    return load_named(model_path, "/background", dim, ret_bg, NULL, NULL, err);
}

int pdr_background_load_segments(const char *model_path, int dim, pdr_background **ret_bg, int *ret_window,
                                 int *ret_stride, pdr_err *err)
{
    *ret_window = *ret_stride = 0;
    return load_named(model_path, "/background_segments", dim, ret_bg, ret_window, ret_stride, err);
}
