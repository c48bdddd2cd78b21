/* pdr_db_levels.c: every database protein's background level (pdr_background.h), computed once
 * by `pdr makedb` and stored in DBDIR/background.h5:
 *
 *   /levels        float32 [n], in store row order
 *   attributes     background_id (16 hex, pdr_background_id), model_version, percentile,
 *                  n_background
 * and for a segment database (`pdr makedb --segments`, pdr_segdb.h) also
 *   /segment_levels float32 [m], in store segment order
 *   attributes     segment_background_id, segment_window, segment_stride, whole_weight
 */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pdr_db.h"
#include "pdr_db_attr.h"
#include "pdr_file.h"
#include "pdr_segdb.h"

/* Store rows read and scored per step. */
#define LEVEL_CHUNK 65536

static int save_levels(const char *path, const float *levels, size_t n, const pdr_background *bg,
                       const char *model_version, const float *seg_levels, size_t m, const pdr_background *seg_bg,
                       int window, int stride, pdr_err *err)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return pdr_fail(err, PDR_EIO, "%s: cannot create", path);
    hsize_t dims[1] = {n};
    hid_t s = H5Screate_simple(1, dims, NULL), d = -1;
    double pct = pdr_background_percentile(bg);
    long long nb = (long long)pdr_background_count(bg);
    int ok = s >= 0 && (d = H5Dcreate2(f, "levels", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             (n == 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, levels) >= 0) &&
             pdr_db_attr_write_str(f, "background_id", pdr_background_id(bg)) &&
             pdr_db_attr_write_str(f, "model_version", model_version) &&
             pdr_db_attr_write_num(f, "percentile", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &pct) &&
             pdr_db_attr_write_num(f, "n_background", H5T_STD_I64LE, H5T_NATIVE_LLONG, &nb);
    if (d >= 0)
        H5Dclose(d);
    if (s >= 0)
        H5Sclose(s);
    if (ok && seg_bg) {
        hsize_t sdims[1] = {m};
        long long w = window, st = stride;
        double ww = PDR_SEGDB_WHOLE_WEIGHT;
        d = -1;
        s = H5Screate_simple(1, sdims, NULL);
        ok = s >= 0 &&
             (d = H5Dcreate2(f, "segment_levels", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             (m == 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, seg_levels) >= 0) &&
             pdr_db_attr_write_str(f, "segment_background_id", pdr_background_id(seg_bg)) &&
             pdr_db_attr_write_num(f, "segment_window", H5T_STD_I64LE, H5T_NATIVE_LLONG, &w) &&
             pdr_db_attr_write_num(f, "segment_stride", H5T_STD_I64LE, H5T_NATIVE_LLONG, &st) &&
             pdr_db_attr_write_num(f, "whole_weight", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &ww);
        if (d >= 0)
            H5Dclose(d);
        if (s >= 0)
            H5Sclose(s);
    }
    if (H5Fclose(f) < 0)
        ok = 0;
    return ok ? PDR_OK : pdr_fail(err, PDR_EIO, "%s: write failed (disk full?)", path);
}

int pdr_db_write_levels(const char *dbdir, const pdr_background *bg, const pdr_background *seg_bg, int window,
                        int stride, pdr_err *err)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dbdir, PDR_DB_LEVELS);
    if (!bg) { /* a model without a background: cosine scores; drop levels of an earlier model */
        if (unlink(path) != 0 && errno != ENOENT)
            return pdr_fail(err, PDR_EIO, "%s: cannot remove: %s", path, strerror(errno));
        return PDR_OK;
    }
    char store_path[4096];
    snprintf(store_path, sizeof store_path, "%s/%s", dbdir, PDR_DB_STORE);
    pdr_store *st = NULL;
    int rc = pdr_store_open(store_path, &st, err);
    if (rc)
        return rc;
    size_t n = pdr_store_count(st);
    int dim = pdr_store_meta_of(st)->dim;
    float *levels = NULL, *vec = NULL, *seg_levels = NULL;
    size_t m = seg_bg ? pdr_store_segment_count(st) : 0;
    if (seg_bg && m < n) {
        rc = pdr_fail(err, PDR_EINPUT,
                      "%s: %zu proteins but %zu segment vectors: the store was made without --segments; remove %s "
                      "and rerun 'pdr makedb --segments'",
                      store_path, n, m, dbdir);
        goto done;
    }
    if (dim != pdr_background_dim(bg)) {
        rc = pdr_fail(err, PDR_EINPUT, "%s: dim %d does not match the model's background (dim %d)", store_path, dim,
                      pdr_background_dim(bg));
        goto done;
    }
    size_t big = n > m ? n : m, chunk = big < LEVEL_CHUNK ? big : LEVEL_CHUNK;
    levels = malloc((n ? n : 1) * sizeof(float));
    seg_levels = malloc((m ? m : 1) * sizeof(float));
    vec = malloc((chunk ? chunk : 1) * (size_t)dim * sizeof(float));
    if (!levels || !vec || !seg_levels) {
        rc = pdr_fail(err, PDR_ENOMEM, "%s: out of memory for background levels", store_path);
        goto done;
    }
    for (size_t lo = 0; lo < n && !rc; lo += chunk) {
        size_t c = n - lo < chunk ? n - lo : chunk;
        rc = pdr_store_read(st, lo, c, vec, err);
        if (!rc)
            rc = pdr_background_levels(bg, vec, c, levels + lo, err);
    }
    for (size_t lo = 0; lo < m && !rc; lo += chunk) {
        size_t c = m - lo < chunk ? m - lo : chunk;
        rc = pdr_store_read_segments(st, lo, c, NULL, NULL, NULL, vec, err);
        if (!rc)
            rc = pdr_background_levels(seg_bg, vec, c, seg_levels + lo, err);
    }
    if (rc)
        goto done;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    H5E_auto2_t old_print = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_print, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    rc = save_levels(tmp, levels, n, bg, pdr_store_meta_of(st)->model_version, seg_levels, m, seg_bg, window, stride,
                     err);
    H5Eset_auto2(H5E_DEFAULT, old_print, old_data);
    if (!rc)
        rc = pdr_file_commit(tmp, path, err); /* on disk before the calibration that marks it complete */
    else
        unlink(tmp);
done:
    free(levels);
    free(seg_levels);
    free(vec);
    pdr_store_free(st);
    return rc;
}

/* Dataset `name` of f: exactly n float levels, each a cosine; *ret is malloc'd. */
static int read_level_array(hid_t f, const char *path, const char *name, size_t n, const char *per, float **ret,
                            pdr_err *err)
{
    hid_t d = H5Lexists(f, name, H5P_DEFAULT) > 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1, s = -1;
    hsize_t dims[1] = {0};
    float *levels = NULL;
    int rc = PDR_OK;
    if (d < 0 || (s = H5Dget_space(d)) < 0 || H5Sget_simple_extent_ndims(s) != 1 ||
        H5Sget_simple_extent_dims(s, dims, NULL) < 0 || dims[0] != n) {
        rc = pdr_fail(err, PDR_EFORMAT, "%s: /%s is not %zu values (one per %s); rebuild with 'pdr makedb'", path, name,
                      n, per);
        goto done;
    }
    if (!(levels = malloc((n ? n : 1) * sizeof(float)))) {
        rc = pdr_fail(err, PDR_ENOMEM, "%s: out of memory for %zu levels", path, n);
        goto done;
    }
    if (n && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, levels) < 0) {
        rc = pdr_fail(err, PDR_EFORMAT, "%s: /%s unreadable (truncated file?)", path, name);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(levels[i]) || fabsf(levels[i]) > 1.0f) {
            rc = pdr_fail(err, PDR_EFORMAT, "%s: /%s value %zu is %g, not a cosine", path, name, i, (double)levels[i]);
            goto done;
        }
    *ret = levels;
    levels = NULL;
done:
    free(levels);
    if (s >= 0)
        H5Sclose(s);
    if (d >= 0)
        H5Dclose(d);
    return rc;
}

/* Open DBDIR/background.h5 quietly (HDF5's own error printing off until close_levels_file). */
static hid_t open_levels_file(const char *path, H5E_auto2_t *old_print, void **old_data, pdr_err *err)
{
    H5Eget_auto2(H5E_DEFAULT, old_print, old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        pdr_fail(err, PDR_EFORMAT, "%s: not a readable HDF5 file; rebuild with 'pdr makedb'", path);
    return f;
}

static void close_levels_file(hid_t f, H5E_auto2_t old_print, void *old_data)
{
    if (f >= 0)
        H5Fclose(f);
    H5Eset_auto2(H5E_DEFAULT, old_print, old_data);
}

int pdr_db_load_levels(const char *dbdir, size_t n, float **ret_levels, char *ret_id, size_t id_cap, pdr_err *err)
{
    char path[4096];
    *ret_levels = NULL;
    snprintf(path, sizeof path, "%s/%s", dbdir, PDR_DB_LEVELS);
    if (access(path, F_OK) != 0)
        return PDR_OK; /* none: cosine scores */
    H5E_auto2_t old_print = NULL;
    void *old_data = NULL;
    hid_t f = open_levels_file(path, &old_print, &old_data, err);
    int rc = f < 0 ? PDR_EFORMAT : read_level_array(f, path, "levels", n, "protein", ret_levels, err);
    if (!rc && !pdr_db_attr_read_str(f, "background_id", ret_id, id_cap)) {
        rc = pdr_fail(err, PDR_EFORMAT, "%s: attribute 'background_id' missing or bad", path);
        free(*ret_levels);
        *ret_levels = NULL;
    }
    close_levels_file(f, old_print, old_data);
    return rc;
}

int pdr_db_load_segment_levels(const char *dbdir, size_t m, float **ret_levels, int *window, int *stride, char *ret_id,
                               size_t id_cap, pdr_err *err)
{
    char path[4096];
    *ret_levels = NULL;
    snprintf(path, sizeof path, "%s/%s", dbdir, PDR_DB_LEVELS);
    if (access(path, F_OK) != 0)
        return PDR_OK;
    H5E_auto2_t old_print = NULL;
    void *old_data = NULL;
    hid_t f = open_levels_file(path, &old_print, &old_data, err);
    int rc = f < 0 ? PDR_EFORMAT : PDR_OK;
    if (rc || H5Lexists(f, "segment_levels", H5P_DEFAULT) <= 0)
        goto done; /* not a segment database */
    static const char *names[2] = {"segment_window", "segment_stride"};
    int *outs[2] = {window, stride};
    for (int i = 0; i < 2 && !rc; i++) {
        long long v = 0;
        hid_t a = H5Aexists(f, names[i]) > 0 ? H5Aopen(f, names[i], H5P_DEFAULT) : -1;
        if (a < 0 || H5Aread(a, H5T_NATIVE_LLONG, &v) < 0 || v < 1 || v > 1000000)
            rc = pdr_fail(err, PDR_EFORMAT, "%s: attribute '%s' missing or out of range", path, names[i]);
        else
            *outs[i] = (int)v;
        if (a >= 0)
            H5Aclose(a);
    }
    if (!rc && !pdr_db_attr_read_str(f, "segment_background_id", ret_id, id_cap))
        rc = pdr_fail(err, PDR_EFORMAT, "%s: attribute 'segment_background_id' missing or bad", path);
    if (!rc)
        rc = read_level_array(f, path, "segment_levels", m, "stored segment", ret_levels, err);
done:
    close_levels_file(f, old_print, old_data);
    return rc;
}
