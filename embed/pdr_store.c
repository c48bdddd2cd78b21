/* pdr_store.c: the HDF5 embedding store (layout and contract in pdr_store.h).
 *
 * Every HDF5 call is checked; a failure becomes a pdr_err naming the file and the dataset, with
 * the most specific message from HDF5's error stack appended (HDF5's own printing is turned off,
 * so nothing reaches stderr behind the caller's back).
 *
 * Files are written with HDF5's default (earliest) format: superblock version 0 has no
 * "open for writing" flag, so a file that was flushed and then abandoned (a crash) still opens,
 * and every h5py and HDF5 1.8+ reads it. Chunked datasets with one unlimited dimension then use
 * a v1 B-tree chunk index, which stays logarithmic at 10^8 rows.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* gmtime_r, strdup when built outside CMake (fuzzing) */
#endif

#include "pdr_store.h"

#include <errno.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#ifndef PDR_VERSION
#define PDR_VERSION "unknown"
#endif

/* Default chunking: /embeddings chunks of ~1 MiB but at most 4096 rows (1024 rows at D = 256
 * float32), so that a small set (a query file, a part file) does not pay for a huge first chunk;
 * /ids and /lengths chunks of 8192 rows (128 KiB of heap references, 32 KiB of lengths). */
#define EMB_CHUNK_BYTES ((size_t)1 << 20)
#define EMB_CHUNK_MAX_ROWS 4096
#define ROW_CHUNK_ROWS 8192
#define MAX_CHUNK_BYTES ((size_t)256 << 20)
#define CHUNK_CACHE_SLOTS 12421 /* prime, as HDF5 advises; >> chunks held */

struct pdr_store {
    char *path;
    int writing;
    int broken; /* a write failed inside HDF5: datasets may disagree */
    hid_t file;
    hid_t emb, ids, lengths;                        /* datasets */
    hid_t seq_hash;                                 /* H5I_INVALID_HID if absent */
    hid_t seg_emb, seg_protein, seg_start, seg_end; /* H5I_INVALID_HID if absent */
    hid_t half_mem;                                 /* native-order IEEE half */
    hid_t str_mem;                                  /* variable-length UTF-8 string */
    hid_t vlen_dxpl;                                /* reads vlen data with malloc */
    pdr_store_meta meta;
    size_t n, m;
    size_t emb_bytes;   /* bytes per stored /embeddings element: 4 or 2 */
    uint16_t *half_buf; /* fp16 append scratch, grown as needed */
    size_t half_cap;
};

/* ------------------------------------------------------------------------------------------ */
/* IEEE binary16 conversion                                                                   */

uint16_t pdr_half_from_float(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) {
        if (absx > 0x7f800000u) /* NaN: keep the top payload bits, force quiet so it stays NaN */
            return (uint16_t)(sign | 0x7e00u | ((absx >> 13) & 0x3ffu));
        return (uint16_t)(sign | 0x7c00u);
    }
    /* 65520 is halfway between the largest half (65504, odd significand) and 2^16: it and
     * everything above round to infinity. */
    if (absx >= 0x477ff000u)
        return (uint16_t)(sign | 0x7c00u);
    if (absx < 0x38800000u) {    /* below 2^-14, the smallest normal half */
        if (absx <= 0x33000000u) /* at most 2^-25, half the smallest subnormal: ties to 0 */
            return (uint16_t)sign;
        /* The result is a subnormal count of 2^-24: significand * 2^(e-150) / 2^-24. */
        uint32_t e = absx >> 23;
        uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t h = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (h & 1u)))
            h++; /* may carry into the smallest normal, which is the right encoding */
        return (uint16_t)(sign | h);
    }
    /* Normal: rebias the exponent (127 -> 15) and round the 13 dropped significand bits; a
     * carry out of the significand correctly bumps the exponent. */
    uint32_t h = (absx >> 13) - ((uint32_t)(127 - 15) << 10);
    uint32_t rem = absx & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

float pdr_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu;
    uint32_t m = h & 0x3ffu;
    uint32_t x;
    if (e == 0x1f) {
        x = sign | 0x7f800000u | (m << 13);
    } else if (e != 0) {
        x = sign | ((e + 112) << 23) | (m << 13);
    } else if (m == 0) {
        x = sign;
    } else { /* subnormal half: normalize, every one is a normal float */
        e = 113;
        while (!(m & 0x400u)) {
            m <<= 1;
            e--;
        }
        x = sign | (e << 23) | ((m & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* ------------------------------------------------------------------------------------------ */
/* HDF5 error plumbing                                                                        */

/* HDF5 prints its error stack to stderr by default. Its error stacks are per thread in
 * threadsafe builds, so this is done at every entry (open, create) rather than once per
 * process; it is cheap and idempotent. */
static void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

typedef struct {
    char *buf;
    size_t cap;
    int no_space; /* a system call on the stack failed with ENOSPC or EDQUOT */
} h5_detail_buf;

/* HDF5's message for a failed read or write (the sec2 driver's) reads "file write failed: time =
 * <ctime, with its newline>, filename = ..., errno = 28, error message = 'No space left on
 * device', buf = 0x..., ...": keep "file write failed: No space left on device", on one line. */
static void h5_tidy_desc(char *buf, size_t cap, const char *desc)
{
    const char *time_at = strstr(desc, ": time = ");
    const char *msg_at = strstr(desc, "error message = '");
    if (time_at && msg_at) {
        msg_at += strlen("error message = '");
        const char *msg_end = strchr(msg_at, '\'');
        int msg_len = msg_end ? (int)(msg_end - msg_at) : (int)strlen(msg_at);
        snprintf(buf, cap, "%.*s: %.*s", (int)(time_at - desc), desc, msg_len, msg_at);
    } else {
        snprintf(buf, cap, "%s", desc);
    }
    for (char *c = buf; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
}

static herr_t h5_detail_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    h5_detail_buf *d = data;
    if (!e || !e->desc)
        return 0;
    char enospc[32], edquot[32];
    snprintf(enospc, sizeof enospc, "errno = %d,", ENOSPC);
    snprintf(edquot, sizeof edquot, "errno = %d,", EDQUOT);
    if (strstr(e->desc, enospc) || strstr(e->desc, edquot))
        d->no_space = 1;
    if (n == 0 && e->desc[0])
        h5_tidy_desc(d->buf, d->cap, e->desc);
    return 0;
}

/* The most specific message on HDF5's error stack (walking upward starts there); *opt_no_space
 * tells whether the disk was full. */
static const char *h5_detail(char *buf, size_t cap, int *opt_no_space)
{
    h5_detail_buf d = {buf, cap, 0};
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_detail_cb, &d);
    if (!buf[0])
        snprintf(buf, cap, "no detail from HDF5");
    if (opt_no_space)
        *opt_no_space = d.no_space;
    return buf;
}

/* "<file>: <object>: <what> (HDF5: <detail>)"; obj NULL for the file as a whole. A full disk is
 * "<file>: write failed (disk full?)", whatever was being written. Call it right after the
 * failing HDF5 call: any other HDF5 call clears the error stack. */
static int h5_fail(pdr_err *err, int code, const char *path, const char *obj, const char *what)
{
    char detail[256];
    int no_space = 0;
    h5_detail(detail, sizeof detail, &no_space);
    if (no_space)
        return pdr_fail(err, PDR_EIO, "%s: write failed (disk full?)", path);
    if (!obj)
        return pdr_fail(err, code, "%s: %s (HDF5: %s)", path, what, detail);
    return pdr_fail(err, code, "%s: %s: %s (HDF5: %s)", path, obj, what, detail);
}

static void close_id(hid_t *id, herr_t (*closer)(hid_t))
{
    if (*id >= 0)
        closer(*id);
    *id = H5I_INVALID_HID;
}

/* ------------------------------------------------------------------------------------------ */
/* types                                                                                      */

/* IEEE half as h5py builds it (numpy float16 <-> this type): a float32 with its fields moved. */
static hid_t half_type(hid_t base)
{
    hid_t t = H5Tcopy(base);
    if (t < 0)
        return H5I_INVALID_HID;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

static hid_t vlen_str_type(H5T_cset_t cset)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return H5I_INVALID_HID;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, cset) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* vlen strings read through this transfer list are malloc'd by us, so callers free() them. */
static void *vlen_alloc(size_t size, void *info)
{
    (void)info;
    return malloc(size ? size : 1);
}

static void vlen_free(void *p, void *info)
{
    (void)info;
    free(p);
}

/* Which float the file holds: 4 (IEEE single), 2 (IEEE half), 0 (something else). */
static int float_kind(hid_t ftype)
{
    if (H5Tget_class(ftype) != H5T_FLOAT)
        return 0;
    size_t size = H5Tget_size(ftype);
    size_t spos, epos, esize, mpos, msize;
    if (H5Tget_fields(ftype, &spos, &epos, &esize, &mpos, &msize) < 0)
        return 0;
    size_t ebias = H5Tget_ebias(ftype);
    if (size == 4 && spos == 31 && epos == 23 && esize == 8 && mpos == 0 && msize == 23 && ebias == 127)
        return 4;
    if (size == 2 && spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 && ebias == 15)
        return 2;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                              */

static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        size_t len;
        unsigned cp;
        if (c < 0x80) {
            p++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += len;
    }
    return 1;
}

static int str_fits(const char *s, size_t cap) { return memchr(s, '\0', cap) != NULL; }

static void now_iso8601(char *buf, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, cap, "1970-01-01T00:00:00Z");
}

/* rows start..start+n-1 inside a dataset of count rows? (written to avoid overflow) */
static int range_ok(size_t start, size_t n, size_t count) { return start <= count && n <= count - start; }

static int range_fail(pdr_err *err, const pdr_store *st, const char *obj, size_t start, size_t n, size_t count)
{
    return pdr_fail(err, PDR_EINPUT, "%s: %s: rows %zu..%zu requested, but it has %zu rows", st->path, obj, start,
                    start + n - 1, count);
}

/* ------------------------------------------------------------------------------------------ */
/* attributes                                                                                 */

static int write_str_attr(pdr_store *st, const char *name, const char *value, pdr_err *err)
{
    hid_t type = vlen_str_type(H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5I_INVALID_HID;
    int rc = PDR_OK;
    if (type < 0 || space < 0 || (attr = H5Acreate2(st->file, name, type, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(attr, type, &value) < 0)
        rc = h5_fail(err, PDR_EIO, st->path, name, "cannot write attribute");
    close_id(&attr, H5Aclose);
    close_id(&space, H5Sclose);
    close_id(&type, H5Tclose);
    return rc;
}

static int write_int_attr(pdr_store *st, const char *name, long long value, pdr_err *err)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5I_INVALID_HID;
    int rc = PDR_OK;
    if (space < 0 || (attr = H5Acreate2(st->file, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(attr, H5T_NATIVE_LLONG, &value) < 0)
        rc = h5_fail(err, PDR_EIO, st->path, name, "cannot write attribute");
    close_id(&attr, H5Aclose);
    close_id(&space, H5Sclose);
    return rc;
}

/* Open root attribute name holding exactly one value of class want; PDR_EFORMAT otherwise. */
static int open_attr(const pdr_store *st, const char *name, H5T_class_t want, hid_t *ret_attr, hid_t *ret_type,
                     pdr_err *err)
{
    *ret_attr = *ret_type = H5I_INVALID_HID;
    htri_t exists = H5Aexists(st->file, name);
    if (exists < 0)
        return h5_fail(err, PDR_EFORMAT, st->path, name, "cannot look up attribute");
    if (exists == 0)
        return pdr_fail(err, PDR_EFORMAT, "%s: root attribute '%s' is missing: not a pdr store, or damaged", st->path,
                        name);
    hid_t attr = H5Aopen(st->file, name, H5P_DEFAULT);
    if (attr < 0)
        return h5_fail(err, PDR_EFORMAT, st->path, name, "cannot open attribute");
    hid_t type = H5Aget_type(attr);
    hid_t space = type >= 0 ? H5Aget_space(attr) : H5I_INVALID_HID;
    hssize_t npoints = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (type < 0 || npoints < 0) {
        int rc = h5_fail(err, PDR_EFORMAT, st->path, name, "cannot read attribute type");
        close_id(&space, H5Sclose);
        close_id(&type, H5Tclose);
        H5Aclose(attr);
        return rc;
    }
    close_id(&space, H5Sclose);
    if (H5Tget_class(type) != want || npoints != 1) {
        H5Tclose(type);
        H5Aclose(attr);
        return pdr_fail(err, PDR_EFORMAT, "%s: root attribute '%s' should be a single %s", st->path, name,
                        want == H5T_STRING ? "string" : "integer");
    }
    *ret_attr = attr;
    *ret_type = type;
    return PDR_OK;
}

/* Read a string attribute (variable- or fixed-length, as h5py or other tools may write it)
 * into out[cap]; longer values are PDR_EFORMAT rather than silently cut. */
static int read_str_attr(const pdr_store *st, const char *name, char *out, size_t cap, pdr_err *err)
{
    hid_t attr, ftype, mtype = H5I_INVALID_HID, space = H5I_INVALID_HID;
    int rc = open_attr(st, name, H5T_STRING, &attr, &ftype, err);
    if (rc)
        return rc;
    htri_t is_var = H5Tis_variable_str(ftype);
    if (is_var > 0) {
        char *value = NULL;
        if ((mtype = vlen_str_type(H5Tget_cset(ftype))) < 0 || (space = H5Aget_space(attr)) < 0 ||
            H5Aread(attr, mtype, &value) < 0) {
            rc = h5_fail(err, PDR_EFORMAT, st->path, name, "cannot read attribute");
        } else {
            const char *v = value ? value : "";
            if (strlen(v) >= cap)
                rc = pdr_fail(err, PDR_EFORMAT, "%s: root attribute '%s' is longer than %zu bytes", st->path, name,
                              cap - 1);
            else
                memcpy(out, v, strlen(v) + 1);
            H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, &value);
        }
    } else if (is_var == 0) {
        size_t size = H5Tget_size(ftype);
        char *buf = size > 0 && size < 65536 ? calloc(1, size + 1) : NULL;
        if (!buf) {
            rc = pdr_fail(err, PDR_EFORMAT, "%s: root attribute '%s' has an unusable size (%zu)", st->path, name, size);
        } else if ((mtype = H5Tcopy(ftype)) < 0 || H5Aread(attr, mtype, buf) < 0) {
            rc = h5_fail(err, PDR_EFORMAT, st->path, name, "cannot read attribute");
        } else {
            size_t len = strlen(buf);
            while (len > 0 && buf[len - 1] == ' ') /* space-padded fixed strings */
                buf[--len] = '\0';
            if (len >= cap)
                rc = pdr_fail(err, PDR_EFORMAT, "%s: root attribute '%s' is longer than %zu bytes", st->path, name,
                              cap - 1);
            else
                memcpy(out, buf, len + 1);
        }
        free(buf);
    } else {
        rc = h5_fail(err, PDR_EFORMAT, st->path, name, "cannot read attribute type");
    }
    close_id(&space, H5Sclose);
    close_id(&mtype, H5Tclose);
    H5Tclose(ftype);
    H5Aclose(attr);
    return rc;
}

static int read_int_attr(const pdr_store *st, const char *name, long long *ret, pdr_err *err)
{
    hid_t attr, ftype;
    int rc = open_attr(st, name, H5T_INTEGER, &attr, &ftype, err);
    if (rc)
        return rc;
    if (H5Aread(attr, H5T_NATIVE_LLONG, ret) < 0)
        rc = h5_fail(err, PDR_EFORMAT, st->path, name, "cannot read attribute");
    H5Tclose(ftype);
    H5Aclose(attr);
    return rc;
}

/* An optional integer attribute: *ret = 0 when it is absent. */
static int read_opt_int_attr(const pdr_store *st, const char *name, long long *ret, pdr_err *err)
{
    *ret = 0;
    htri_t exists = H5Aexists(st->file, name);
    if (exists < 0)
        return h5_fail(err, PDR_EFORMAT, st->path, name, "cannot look up attribute");
    return exists ? read_int_attr(st, name, ret, err) : PDR_OK;
}

/* Both 0 (no segments, or not recorded), or both in 1..PDR_STORE_MAX_WINDOW. */
static int segment_window_ok(long long window, long long stride)
{
    if (window == 0 && stride == 0)
        return 1;
    return window >= 1 && window <= PDR_STORE_MAX_WINDOW && stride >= 1 && stride <= PDR_STORE_MAX_WINDOW;
}

/* ------------------------------------------------------------------------------------------ */
/* datasets                                                                                   */

/* An empty, extendible, chunked dataset of rank 1 (cols = 0) or 2 (rows x cols). */
static int create_dset(pdr_store *st, hid_t loc, const char *obj, const char *name, hid_t ftype, hsize_t cols,
                       hsize_t chunk_rows, int deflate_level, int numeric, hid_t *ret, pdr_err *err)
{
    int rank = cols ? 2 : 1;
    hsize_t dims[2] = {0, cols}, maxdims[2] = {H5S_UNLIMITED, cols}, chunk[2] = {chunk_rows, cols};
    hid_t space = H5Screate_simple(rank, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    int rc = PDR_OK;
    size_t chunk_bytes = (size_t)chunk_rows * (cols ? (size_t)cols : 1) * H5Tget_size(ftype);
    /* Hold a few chunks so that batches not aligned to chunks fill a chunk in memory instead of
     * reading it back; w0 = 1 evicts fully written chunks first, as suits appending. */
    size_t cache = 4 * chunk_bytes > ((size_t)1 << 20) ? 4 * chunk_bytes : ((size_t)1 << 20);
    *ret = H5I_INVALID_HID;
    if (space < 0 || dcpl < 0 || dapl < 0 || H5Pset_chunk(dcpl, rank, chunk) < 0 ||
        H5Pset_chunk_cache(dapl, CHUNK_CACHE_SLOTS, cache, 1.0) < 0 ||
        /* Rows past N are never read: do not write fill values into chunks first. HDF5 does not
         * allow this for variable-length types. */
        (numeric && H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0) ||
        (deflate_level > 0 && (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)deflate_level) < 0))) {
        rc = h5_fail(err, PDR_EINTERNAL, st->path, obj, "cannot set up dataset properties");
        goto done;
    }
    *ret = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, dcpl, dapl);
    if (*ret < 0)
        rc = h5_fail(err, PDR_EIO, st->path, obj, "cannot create dataset");
done:
    close_id(&dapl, H5Pclose);
    close_id(&dcpl, H5Pclose);
    close_id(&space, H5Sclose);
    return rc;
}

/* Open dataset obj (an absolute path) of the given rank; fills dims. */
static int open_dset(pdr_store *st, const char *obj, int rank, size_t cache_bytes, hsize_t dims[2], hid_t *ret,
                     pdr_err *err)
{
    *ret = H5I_INVALID_HID;
    htri_t exists = H5Lexists(st->file, obj, H5P_DEFAULT);
    if (exists < 0)
        return h5_fail(err, PDR_EFORMAT, st->path, obj, "cannot look up dataset");
    if (exists == 0)
        return pdr_fail(err, PDR_EFORMAT, "%s: dataset %s is missing: not a pdr store, or damaged", st->path, obj);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl < 0 || H5Pset_chunk_cache(dapl, CHUNK_CACHE_SLOTS, cache_bytes, 0.75) < 0) {
        close_id(&dapl, H5Pclose);
        return h5_fail(err, PDR_EINTERNAL, st->path, obj, "cannot set up dataset access");
    }
    hid_t d = H5Dopen2(st->file, obj, dapl);
    if (d < 0) {
        int rc = h5_fail(err, PDR_EFORMAT, st->path, obj, "cannot open dataset");
        H5Pclose(dapl);
        return rc;
    }
    H5Pclose(dapl);
    hid_t space = H5Dget_space(d);
    int ndims = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (ndims < 0) {
        int rc = h5_fail(err, PDR_EFORMAT, st->path, obj, "cannot read dataset shape");
        close_id(&space, H5Sclose);
        H5Dclose(d);
        return rc;
    }
    if (ndims != rank) {
        H5Sclose(space);
        H5Dclose(d);
        return pdr_fail(err, PDR_EFORMAT, "%s: dataset %s has %d dimensions, expected %d", st->path, obj, ndims, rank);
    }
    hsize_t got[2] = {0, 0};
    herr_t r = H5Sget_simple_extent_dims(space, got, NULL);
    H5Sclose(space);
    if (r < 0) {
        int rc = h5_fail(err, PDR_EFORMAT, st->path, obj, "cannot read dataset shape");
        H5Dclose(d);
        return rc;
    }
    dims[0] = got[0];
    dims[1] = got[1];
    *ret = d;
    return PDR_OK;
}

/* The class (and, for floats, kind) of a dataset's stored type; PDR_EFORMAT if not as wanted. */
static int check_dset_type(pdr_store *st, hid_t d, const char *obj, H5T_class_t want, int want_float, pdr_err *err)
{
    hid_t t = H5Dget_type(d);
    if (t < 0)
        return h5_fail(err, PDR_EFORMAT, st->path, obj, "cannot read dataset type");
    int rc = PDR_OK;
    H5T_class_t cls = H5Tget_class(t);
    if (want == H5T_STRING) {
        if (cls != H5T_STRING || H5Tis_variable_str(t) <= 0)
            rc = pdr_fail(err, PDR_EFORMAT, "%s: dataset %s should hold variable-length strings", st->path, obj);
    } else if (want == H5T_INTEGER) {
        if (cls != H5T_INTEGER)
            rc = pdr_fail(err, PDR_EFORMAT, "%s: dataset %s should hold integers", st->path, obj);
    } else {
        int kind = float_kind(t);
        if (kind != want_float)
            rc = pdr_fail(err, PDR_EFORMAT, "%s: dataset %s should hold %s, as the dtype attribute says", st->path, obj,
                          want_float == 2 ? "IEEE half floats" : "IEEE single floats");
    }
    H5Tclose(t);
    return rc;
}

/* Grow a dataset from old_rows by rows and write buf into the new rows. */
static int append_rows(pdr_store *st, hid_t d, const char *obj, hsize_t old_rows, hsize_t rows, hsize_t cols,
                       hid_t memtype, const void *buf, pdr_err *err)
{
    int rank = cols ? 2 : 1;
    hsize_t dims[2] = {old_rows + rows, cols}, start[2] = {old_rows, 0}, count[2] = {rows, cols};
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    int rc = PDR_OK;
    if (H5Dset_extent(d, dims) < 0) {
        rc = h5_fail(err, PDR_EIO, st->path, obj, "cannot extend dataset");
    } else if ((fspace = H5Dget_space(d)) < 0 ||
               H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
               (mspace = H5Screate_simple(rank, count, NULL)) < 0) {
        rc = h5_fail(err, PDR_EINTERNAL, st->path, obj, "cannot select rows to write");
    } else if (H5Dwrite(d, memtype, mspace, fspace, H5P_DEFAULT, buf) < 0) {
        char what[96];
        snprintf(what, sizeof what, "cannot write rows %llu..%llu", (unsigned long long)old_rows,
                 (unsigned long long)(old_rows + rows - 1));
        rc = h5_fail(err, PDR_EIO, st->path, obj, what);
    }
    close_id(&mspace, H5Sclose);
    close_id(&fspace, H5Sclose);
    return rc;
}

static int read_rows(pdr_store *st, hid_t d, const char *obj, hsize_t first, hsize_t rows, hsize_t cols, hid_t memtype,
                     hid_t dxpl, void *buf, hid_t *ret_mspace, pdr_err *err)
{
    int rank = cols ? 2 : 1;
    hsize_t start[2] = {first, 0}, count[2] = {rows, cols};
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    int rc = PDR_OK;
    if ((fspace = H5Dget_space(d)) < 0 || H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        (mspace = H5Screate_simple(rank, count, NULL)) < 0) {
        rc = h5_fail(err, PDR_EINTERNAL, st->path, obj, "cannot select rows to read");
    } else if (H5Dread(d, memtype, mspace, fspace, dxpl, buf) < 0) {
        char what[96];
        snprintf(what, sizeof what, "cannot read rows %llu..%llu", (unsigned long long)first,
                 (unsigned long long)(first + rows - 1));
        rc = h5_fail(err, PDR_EFORMAT, st->path, obj, what);
    }
    close_id(&fspace, H5Sclose);
    if (ret_mspace && rc == PDR_OK)
        *ret_mspace = mspace; /* the caller needs it to reclaim vlen data */
    else
        close_id(&mspace, H5Sclose);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* create, open, close                                                                        */

static pdr_store *store_new(const char *path)
{
    pdr_store *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->file = st->emb = st->ids = st->lengths = st->seq_hash = H5I_INVALID_HID;
    st->seg_emb = st->seg_protein = st->seg_start = st->seg_end = H5I_INVALID_HID;
    st->half_mem = st->str_mem = st->vlen_dxpl = H5I_INVALID_HID;
    st->path = strdup(path);
    if (!st->path) {
        free(st);
        return NULL;
    }
    return st;
}

/* Memory types and transfer lists every store uses. */
static int store_init_types(pdr_store *st, pdr_err *err)
{
    if ((st->half_mem = half_type(H5T_NATIVE_FLOAT)) < 0 || (st->str_mem = vlen_str_type(H5T_CSET_UTF8)) < 0 ||
        (st->vlen_dxpl = H5Pcreate(H5P_DATASET_XFER)) < 0 ||
        H5Pset_vlen_mem_manager(st->vlen_dxpl, vlen_alloc, NULL, vlen_free, NULL) < 0)
        return h5_fail(err, PDR_EINTERNAL, st->path, NULL, "cannot set up HDF5 types");
    return PDR_OK;
}

static int store_release(pdr_store *st, pdr_err *err)
{
    int rc = PDR_OK;
    struct {
        hid_t *id;
        const char *name;
    } dsets[] = {{&st->seg_end, "/segments/end"},
                 {&st->seg_start, "/segments/start"},
                 {&st->seg_protein, "/segments/protein"},
                 {&st->seg_emb, "/segments/embeddings"},
                 {&st->seq_hash, "/seq_hash"},
                 {&st->lengths, "/lengths"},
                 {&st->ids, "/ids"},
                 {&st->emb, "/embeddings"}};
    for (size_t i = 0; i < sizeof dsets / sizeof dsets[0]; i++) {
        if (*dsets[i].id >= 0 && H5Dclose(*dsets[i].id) < 0 && !rc)
            rc = h5_fail(err, PDR_EIO, st->path, dsets[i].name, "cannot close dataset");
        *dsets[i].id = H5I_INVALID_HID;
    }
    close_id(&st->half_mem, H5Tclose);
    close_id(&st->str_mem, H5Tclose);
    close_id(&st->vlen_dxpl, H5Pclose);
    if (st->file >= 0 && H5Fclose(st->file) < 0 && !rc)
        rc = h5_fail(err, PDR_EIO, st->path, NULL, st->writing ? "cannot finish writing the file" : "cannot close");
    st->file = H5I_INVALID_HID;
    free(st->half_buf);
    free(st->path);
    free(st);
    return rc;
}

int pdr_store_close(pdr_store *st, pdr_err *err)
{
    if (!st)
        return PDR_OK;
    int rc = PDR_OK;
    if (st->writing && !st->broken && st->file >= 0 && H5Fflush(st->file, H5F_SCOPE_GLOBAL) < 0)
        rc = h5_fail(err, PDR_EIO, st->path, NULL, "cannot flush");
    int rc2 = store_release(st, rc ? NULL : err);
    return rc ? rc : rc2;
}

void pdr_store_process_begin(void) { H5dont_atexit(); }

void pdr_store_process_end(int clean)
{
    if (clean)
        H5close();
}

void pdr_store_free(pdr_store *st)
{
    if (st)
        store_release(st, NULL);
}

static hid_t file_access_plist(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
    /* Lock as HDF5 does by default, but on file systems without locks (some NFS, Lustre) go on
     * rather than fail: part files are renamed into place, never shared while written. */
    if (fapl >= 0 && H5Pset_file_locking(fapl, 1, 1) < 0) {
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
#endif
    return fapl;
}

int pdr_store_create(const char *path, const pdr_store_meta *meta, pdr_store **ret_st, pdr_err *err)
{
    return pdr_store_create_opts(path, meta, NULL, ret_st, err);
}

int pdr_store_create_opts(const char *path, const pdr_store_meta *meta, const pdr_store_opts *opts, pdr_store **ret_st,
                          pdr_err *err)
{
    static const pdr_store_opts defaults = {0, 0, 0};
    if (ret_st)
        *ret_st = NULL;
    if (!path || !meta || !ret_st)
        return pdr_fail(err, PDR_EINPUT, "store create: path, meta and ret_st are required");
    if (!opts)
        opts = &defaults;
    if (meta->dim < 1 || meta->dim > PDR_STORE_MAX_DIM)
        return pdr_fail(err, PDR_EINPUT, "%s: dim %d out of range 1..%d", path, meta->dim, PDR_STORE_MAX_DIM);
    if (!str_fits(meta->model_name, sizeof meta->model_name) ||
        !str_fits(meta->model_version, sizeof meta->model_version) || !str_fits(meta->created, sizeof meta->created) ||
        !str_fits(meta->products, sizeof meta->products))
        return pdr_fail(err, PDR_EINPUT, "%s: model_name, model_version, created or products is not NUL-terminated",
                        path);
    if (!utf8_valid(meta->model_name) || !utf8_valid(meta->model_version) || !utf8_valid(meta->created) ||
        !utf8_valid(meta->products))
        return pdr_fail(err, PDR_EINPUT, "%s: model_name, model_version, created or products is not valid UTF-8", path);
    if (opts->deflate_level < 0 || opts->deflate_level > 9)
        return pdr_fail(err, PDR_EINPUT, "%s: deflate level %d out of range 0..9", path, opts->deflate_level);
    if (!segment_window_ok(meta->segment_window, meta->segment_stride))
        return pdr_fail(err, PDR_EINPUT, "%s: segment window %d and stride %d: both 0, or both in 1..%d", path,
                        meta->segment_window, meta->segment_stride, PDR_STORE_MAX_WINDOW);

    size_t emb_bytes = meta->fp16 ? 2 : 4;
    size_t row_bytes = (size_t)meta->dim * emb_bytes;
    size_t emb_chunk = opts->chunk_rows ? opts->chunk_rows : EMB_CHUNK_BYTES / row_bytes;
    size_t row_chunk = opts->chunk_rows ? opts->chunk_rows : ROW_CHUNK_ROWS;
    if (emb_chunk < 1)
        emb_chunk = 1;
    if (!opts->chunk_rows && emb_chunk > EMB_CHUNK_MAX_ROWS)
        emb_chunk = EMB_CHUNK_MAX_ROWS;
    if (!opts->chunk_rows && opts->rows_hint) { /* a small store: chunks no larger than it */
        emb_chunk = emb_chunk > opts->rows_hint ? opts->rows_hint : emb_chunk;
        row_chunk = row_chunk > opts->rows_hint ? opts->rows_hint : row_chunk;
    }
    if (emb_chunk > MAX_CHUNK_BYTES / row_bytes || row_chunk > MAX_CHUNK_BYTES / sizeof(int64_t))
        return pdr_fail(err, PDR_EINPUT, "%s: chunk of %zu rows is too large (limit %zu bytes per chunk)", path,
                        opts->chunk_rows, MAX_CHUNK_BYTES);

    h5_quiet();
    if (opts->deflate_level > 0 && H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0)
        return pdr_fail(err, PDR_EINPUT, "%s: this HDF5 library has no deflate filter", path);

    pdr_store *st = store_new(path);
    if (!st)
        return pdr_fail(err, PDR_ENOMEM, "%s: out of memory", path);
    st->writing = 1;
    st->meta = *meta;
    st->meta.normalized = meta->normalized ? 1 : 0;
    st->meta.fp16 = meta->fp16 ? 1 : 0;
    st->meta.seq_hash = meta->seq_hash ? 1 : 0;
    st->emb_bytes = emb_bytes;
    snprintf(st->meta.pdr_version, sizeof st->meta.pdr_version, "%s", PDR_VERSION);
    if (!st->meta.created[0])
        now_iso8601(st->meta.created, sizeof st->meta.created);

    int rc = store_init_types(st, err);
    hid_t fapl = H5I_INVALID_HID, ftype = H5I_INVALID_HID, seg = H5I_INVALID_HID;
    if (rc)
        goto fail;
    if ((fapl = file_access_plist()) < 0) {
        rc = h5_fail(err, PDR_EINTERNAL, path, NULL, "cannot set up file access");
        goto fail;
    }
    st->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (st->file < 0) {
        rc = h5_fail(err, PDR_EIO, path, NULL, "cannot create file");
        goto fail;
    }
    if ((rc = write_str_attr(st, "format", PDR_STORE_FORMAT, err)) ||
        (rc = write_int_attr(st, "format_version", PDR_STORE_FORMAT_VERSION, err)) ||
        (rc = write_str_attr(st, "model_name", st->meta.model_name, err)) ||
        (rc = write_str_attr(st, "model_version", st->meta.model_version, err)) ||
        (rc = write_int_attr(st, "dim", st->meta.dim, err)) ||
        (rc = write_int_attr(st, "normalized", st->meta.normalized, err)) ||
        (rc = write_str_attr(st, "dtype", st->meta.fp16 ? "float16" : "float32", err)) ||
        (rc = write_str_attr(st, "pdr_version", st->meta.pdr_version, err)) ||
        (rc = write_str_attr(st, "created", st->meta.created, err)))
        goto fail;
    if (st->meta.products[0] && (rc = write_str_attr(st, "encoder_products", st->meta.products, err)))
        goto fail;
    if (st->meta.segment_window > 0 && ((rc = write_int_attr(st, "segment_window", st->meta.segment_window, err)) ||
                                        (rc = write_int_attr(st, "segment_stride", st->meta.segment_stride, err))))
        goto fail;

    ftype = st->meta.fp16 ? half_type(H5T_IEEE_F32LE) : H5Tcopy(H5T_IEEE_F32LE);
    if (ftype < 0) {
        rc = h5_fail(err, PDR_EINTERNAL, path, "/embeddings", "cannot make the float type");
        goto fail;
    }
    hsize_t dim = (hsize_t)st->meta.dim;
    int lvl = opts->deflate_level;
    if ((rc = create_dset(st, st->file, "/embeddings", "embeddings", ftype, dim, emb_chunk, lvl, 1, &st->emb, err)) ||
        (rc = create_dset(st, st->file, "/ids", "ids", st->str_mem, 0, row_chunk, lvl, 0, &st->ids, err)) ||
        (rc = create_dset(st, st->file, "/lengths", "lengths", H5T_STD_I32LE, 0, row_chunk, lvl, 1, &st->lengths, err)))
        goto fail;
    if (st->meta.seq_hash && (rc = create_dset(st, st->file, "/seq_hash", "seq_hash", H5T_STD_U64LE, 0, row_chunk, lvl,
                                               1, &st->seq_hash, err)))
        goto fail;
    if ((seg = H5Gcreate2(st->file, "segments", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        rc = h5_fail(err, PDR_EIO, path, "/segments", "cannot create group");
        goto fail;
    }
    if ((rc = create_dset(st, seg, "/segments/embeddings", "embeddings", ftype, dim, emb_chunk, lvl, 1, &st->seg_emb,
                          err)) ||
        (rc = create_dset(st, seg, "/segments/protein", "protein", H5T_STD_I64LE, 0, row_chunk, lvl, 1,
                          &st->seg_protein, err)) ||
        (rc = create_dset(st, seg, "/segments/start", "start", H5T_STD_I32LE, 0, row_chunk, lvl, 1, &st->seg_start,
                          err)) ||
        (rc = create_dset(st, seg, "/segments/end", "end", H5T_STD_I32LE, 0, row_chunk, lvl, 1, &st->seg_end, err)))
        goto fail;
    /* An empty store on disk is already a valid store. */
    if (H5Fflush(st->file, H5F_SCOPE_GLOBAL) < 0) {
        rc = h5_fail(err, PDR_EIO, path, NULL, "cannot flush");
        goto fail;
    }
    close_id(&seg, H5Gclose);
    close_id(&ftype, H5Tclose);
    close_id(&fapl, H5Pclose);
    *ret_st = st;
    return PDR_OK;

fail:
    close_id(&seg, H5Gclose);
    close_id(&ftype, H5Tclose);
    close_id(&fapl, H5Pclose);
    st->broken = 1;
    store_release(st, NULL);
    return rc;
}

/* Open /seq_hash when the store has one (stores written before pdr kept it do not): 64-bit
 * integers, one per row. */
static int open_seq_hash(pdr_store *st, size_t cache_bytes, pdr_err *err)
{
    htri_t exists = H5Lexists(st->file, "/seq_hash", H5P_DEFAULT);
    if (exists < 0)
        return h5_fail(err, PDR_EFORMAT, st->path, "/seq_hash", "cannot look up dataset");
    st->meta.seq_hash = exists > 0;
    if (!exists)
        return PDR_OK;
    hsize_t dims[2];
    int rc;
    if ((rc = open_dset(st, "/seq_hash", 1, cache_bytes, dims, &st->seq_hash, err)) ||
        (rc = check_dset_type(st, st->seq_hash, "/seq_hash", H5T_INTEGER, 0, err)))
        return rc;
    hid_t t = H5Dget_type(st->seq_hash);
    size_t size = t >= 0 ? H5Tget_size(t) : 0;
    close_id(&t, H5Tclose);
    if (size != sizeof(uint64_t))
        return pdr_fail(err, PDR_EFORMAT, "%s: dataset /seq_hash should hold 64-bit integers", st->path);
    if (dims[0] != (hsize_t)st->n)
        return pdr_fail(err, PDR_EFORMAT, "%s: /seq_hash has %llu rows, /embeddings %zu", st->path,
                        (unsigned long long)dims[0], st->n);
    return PDR_OK;
}

/* Validate the attributes and datasets of an opened file and fill st. */
static int store_validate(pdr_store *st, pdr_err *err)
{
    char format[64], dtype[16];
    long long format_version, dim, normalized;
    int rc;
    /* format first, so that an unrelated HDF5 file gets the clearest message */
    if ((rc = read_str_attr(st, "format", format, sizeof format, err)))
        return rc;
    if (strcmp(format, PDR_STORE_FORMAT) != 0)
        return pdr_fail(err, PDR_EFORMAT, "%s: format attribute is '%s', not '%s': not a pdr store", st->path, format,
                        PDR_STORE_FORMAT);
    if ((rc = read_int_attr(st, "format_version", &format_version, err)))
        return rc;
    if (format_version != PDR_STORE_FORMAT_VERSION)
        return pdr_fail(err, PDR_EFORMAT, "%s: store format_version %lld is not supported (this pdr reads %d)",
                        st->path, format_version, PDR_STORE_FORMAT_VERSION);
    pdr_store_meta *m = &st->meta;
    if ((rc = read_str_attr(st, "model_name", m->model_name, sizeof m->model_name, err)) ||
        (rc = read_str_attr(st, "model_version", m->model_version, sizeof m->model_version, err)) ||
        (rc = read_int_attr(st, "dim", &dim, err)) || (rc = read_int_attr(st, "normalized", &normalized, err)) ||
        (rc = read_str_attr(st, "dtype", dtype, sizeof dtype, err)) ||
        (rc = read_str_attr(st, "pdr_version", m->pdr_version, sizeof m->pdr_version, err)) ||
        (rc = read_str_attr(st, "created", m->created, sizeof m->created, err)))
        return rc;
    if (dim < 1 || dim > PDR_STORE_MAX_DIM)
        return pdr_fail(err, PDR_EFORMAT, "%s: dim attribute %lld out of range 1..%d", st->path, dim,
                        PDR_STORE_MAX_DIM);
    if (normalized != 0 && normalized != 1)
        return pdr_fail(err, PDR_EFORMAT, "%s: normalized attribute is %lld, not 0 or 1", st->path, normalized);
    if (strcmp(dtype, "float32") == 0)
        m->fp16 = 0;
    else if (strcmp(dtype, "float16") == 0)
        m->fp16 = 1;
    else
        return pdr_fail(err, PDR_EFORMAT, "%s: dtype attribute is '%s', not float32 or float16", st->path, dtype);
    htri_t has_products = H5Aexists(st->file, "encoder_products");
    if (has_products < 0)
        return h5_fail(err, PDR_EFORMAT, st->path, "encoder_products", "cannot look up attribute");
    m->products[0] = '\0';
    /* informational only: a value this pdr cannot take (another type, too long) reads as not recorded
     * rather than making the store unreadable */
    pdr_err ignored;
    if (has_products && read_str_attr(st, "encoder_products", m->products, sizeof m->products, &ignored))
        m->products[0] = '\0';
    long long window, stride;
    if ((rc = read_opt_int_attr(st, "segment_window", &window, err)) ||
        (rc = read_opt_int_attr(st, "segment_stride", &stride, err)))
        return rc;
    if (!segment_window_ok(window, stride))
        return pdr_fail(err, PDR_EFORMAT,
                        "%s: attributes segment_window %lld and segment_stride %lld: both absent, or both in 1..%d",
                        st->path, window, stride, PDR_STORE_MAX_WINDOW);
    m->segment_window = (int)window;
    m->segment_stride = (int)stride;
    m->dim = (int)dim;
    m->normalized = (int)normalized;
    st->emb_bytes = m->fp16 ? 2 : 4;
    int want_float = (int)st->emb_bytes;

    hsize_t de[2], di[2], dl[2];
    size_t emb_cache = (size_t)8 << 20, row_cache = (size_t)2 << 20;
    if ((rc = open_dset(st, "/embeddings", 2, emb_cache, de, &st->emb, err)) ||
        (rc = check_dset_type(st, st->emb, "/embeddings", H5T_FLOAT, want_float, err)) ||
        (rc = open_dset(st, "/ids", 1, row_cache, di, &st->ids, err)) ||
        (rc = check_dset_type(st, st->ids, "/ids", H5T_STRING, 0, err)) ||
        (rc = open_dset(st, "/lengths", 1, row_cache, dl, &st->lengths, err)) ||
        (rc = check_dset_type(st, st->lengths, "/lengths", H5T_INTEGER, 0, err)))
        return rc;
    if (de[1] != (hsize_t)dim)
        return pdr_fail(err, PDR_EFORMAT, "%s: /embeddings has %llu columns but the dim attribute says %lld", st->path,
                        (unsigned long long)de[1], dim);
    if (di[0] != de[0] || dl[0] != de[0])
        return pdr_fail(err, PDR_EFORMAT, "%s: row counts disagree: /embeddings %llu, /ids %llu, /lengths %llu",
                        st->path, (unsigned long long)de[0], (unsigned long long)di[0], (unsigned long long)dl[0]);
    st->n = (size_t)de[0];
    if ((rc = open_seq_hash(st, row_cache, err)))
        return rc;

    htri_t has_seg = H5Lexists(st->file, "segments", H5P_DEFAULT);
    if (has_seg < 0)
        return h5_fail(err, PDR_EFORMAT, st->path, "/segments", "cannot look up group");
    if (has_seg == 0)
        return PDR_OK;
    hsize_t se[2], sp[2], ss[2], sn[2];
    if ((rc = open_dset(st, "/segments/embeddings", 2, emb_cache, se, &st->seg_emb, err)) ||
        (rc = check_dset_type(st, st->seg_emb, "/segments/embeddings", H5T_FLOAT, want_float, err)) ||
        (rc = open_dset(st, "/segments/protein", 1, row_cache, sp, &st->seg_protein, err)) ||
        (rc = check_dset_type(st, st->seg_protein, "/segments/protein", H5T_INTEGER, 0, err)) ||
        (rc = open_dset(st, "/segments/start", 1, row_cache, ss, &st->seg_start, err)) ||
        (rc = check_dset_type(st, st->seg_start, "/segments/start", H5T_INTEGER, 0, err)) ||
        (rc = open_dset(st, "/segments/end", 1, row_cache, sn, &st->seg_end, err)) ||
        (rc = check_dset_type(st, st->seg_end, "/segments/end", H5T_INTEGER, 0, err)))
        return rc;
    if (se[1] != (hsize_t)dim)
        return pdr_fail(err, PDR_EFORMAT, "%s: /segments/embeddings has %llu columns but the dim attribute says %lld",
                        st->path, (unsigned long long)se[1], dim);
    if (sp[0] != se[0] || ss[0] != se[0] || sn[0] != se[0])
        return pdr_fail(err, PDR_EFORMAT,
                        "%s: segment row counts disagree: /segments/embeddings %llu, protein %llu, start %llu, "
                        "end %llu",
                        st->path, (unsigned long long)se[0], (unsigned long long)sp[0], (unsigned long long)ss[0],
                        (unsigned long long)sn[0]);
    st->m = (size_t)se[0];
    return PDR_OK;
}

int pdr_store_open(const char *path, pdr_store **ret_st, pdr_err *err)
{
    if (ret_st)
        *ret_st = NULL;
    if (!path || !ret_st)
        return pdr_fail(err, PDR_EINPUT, "store open: path and ret_st are required");
    /* Tell "cannot read the file" (I/O) from "is not a store" (format) before HDF5 does both
     * under one error. */
    struct stat sb;
    FILE *f = fopen(path, "rb");
    if (!f)
        return pdr_fail(err, PDR_EIO, "%s: cannot open store: %s", path, strerror(errno));
    int is_reg = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode);
    fclose(f);
    if (!is_reg)
        return pdr_fail(err, PDR_EIO, "%s: cannot open store: not a regular file", path);
    if (sb.st_size == 0)
        return pdr_fail(err, PDR_EFORMAT, "%s: not a pdr store: the file is empty", path);

    h5_quiet();
    htri_t is_h5 = H5Fis_hdf5(path);
    if (is_h5 == 0)
        return pdr_fail(err, PDR_EFORMAT, "%s: not a pdr store: not an HDF5 file", path);
    if (is_h5 < 0)
        return h5_fail(err, PDR_EFORMAT, path, NULL, "not a readable HDF5 file");

    pdr_store *st = store_new(path);
    if (!st)
        return pdr_fail(err, PDR_ENOMEM, "%s: out of memory", path);
    int rc = store_init_types(st, err);
    if (rc)
        goto fail;
    hid_t fapl = file_access_plist();
    if (fapl < 0) {
        rc = h5_fail(err, PDR_EINTERNAL, path, NULL, "cannot set up file access");
        goto fail;
    }
    st->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (st->file < 0)
        rc = h5_fail(err, PDR_EFORMAT, path, NULL, "cannot open as HDF5 (truncated, corrupt, or locked by a writer?)");
    H5Pclose(fapl);
    if (rc)
        goto fail;
    if ((rc = store_validate(st, err)))
        goto fail;
    *ret_st = st;
    return PDR_OK;

fail:
    store_release(st, NULL);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* accessors, append, read                                                                    */

const pdr_store_meta *pdr_store_meta_of(const pdr_store *st) { return st ? &st->meta : NULL; }

size_t pdr_store_count(const pdr_store *st) { return st ? st->n : 0; }

size_t pdr_store_segment_count(const pdr_store *st) { return st ? st->m : 0; }

static int check_writable(pdr_store *st, pdr_err *err)
{
    if (!st)
        return pdr_fail(err, PDR_EINPUT, "store append: no store");
    if (!st->writing)
        return pdr_fail(err, PDR_EINPUT, "%s: store is open read-only", st->path);
    if (st->broken)
        return pdr_fail(err, PDR_EIO, "%s: an earlier write failed; the store cannot be appended to", st->path);
    return PDR_OK;
}

/* The buffer to hand HDF5 for rows of emb: emb itself, or its half conversion. */
static int emb_for_write(pdr_store *st, size_t rows, const float *emb, const void **ret_buf, hid_t *ret_type,
                         pdr_err *err)
{
    size_t count = rows * (size_t)st->meta.dim;
    if (!st->meta.fp16) {
        *ret_buf = emb;
        *ret_type = H5T_NATIVE_FLOAT;
        return PDR_OK;
    }
    if (count > st->half_cap) {
        uint16_t *grown = realloc(st->half_buf, count * sizeof *grown);
        if (!grown)
            return pdr_fail(err, PDR_ENOMEM, "%s: out of memory converting %zu rows to half", st->path, rows);
        st->half_buf = grown;
        st->half_cap = count;
    }
    for (size_t i = 0; i < count; i++)
        st->half_buf[i] = pdr_half_from_float(emb[i]);
    *ret_buf = st->half_buf;
    *ret_type = st->half_mem;
    return PDR_OK;
}

int pdr_store_append(pdr_store *st, size_t n, const char *const *ids, const int32_t *lengths,
                     const uint64_t *opt_seq_hash, const float *emb, pdr_err *err)
{
    int rc = check_writable(st, err);
    if (rc || n == 0)
        return rc;
    if (!ids || !lengths || !emb)
        return pdr_fail(err, PDR_EINPUT, "%s: append: ids, lengths and embeddings are required", st->path);
    if (st->meta.seq_hash && !opt_seq_hash)
        return pdr_fail(err, PDR_EINPUT, "%s: append: the store has /seq_hash: sequence hashes are required", st->path);
    if (!st->meta.seq_hash && opt_seq_hash)
        return pdr_fail(err, PDR_EINPUT, "%s: append: the store has no /seq_hash to hold sequence hashes", st->path);
    if (n > (SIZE_MAX / sizeof(float)) / (size_t)st->meta.dim || n > SIZE_MAX - st->n)
        return pdr_fail(err, PDR_ELIMIT, "%s: append of %zu rows is too large", st->path, n);
    /* Check every record before touching the file, so a bad record leaves the store intact. */
    for (size_t i = 0; i < n; i++) {
        if (!ids[i])
            return pdr_fail(err, PDR_EINPUT, "%s: record %zu: id is NULL", st->path, st->n + i);
        if (!utf8_valid(ids[i]))
            return pdr_fail(err, PDR_EINPUT, "%s: record %zu (%s): id is not valid UTF-8", st->path, st->n + i, ids[i]);
        if (lengths[i] < 0)
            return pdr_fail(err, PDR_EINPUT, "%s: record %zu (%s): negative length %d", st->path, st->n + i, ids[i],
                            (int)lengths[i]);
    }
    const void *buf;
    hid_t memtype;
    if ((rc = emb_for_write(st, n, emb, &buf, &memtype, err)))
        return rc;
    hsize_t old = (hsize_t)st->n, rows = (hsize_t)n;
    if ((rc = append_rows(st, st->emb, "/embeddings", old, rows, (hsize_t)st->meta.dim, memtype, buf, err)) ||
        (rc = append_rows(st, st->ids, "/ids", old, rows, 0, st->str_mem, ids, err)) ||
        (rc = append_rows(st, st->lengths, "/lengths", old, rows, 0, H5T_NATIVE_INT32, lengths, err)) ||
        (opt_seq_hash &&
         (rc = append_rows(st, st->seq_hash, "/seq_hash", old, rows, 0, H5T_NATIVE_UINT64, opt_seq_hash, err)))) {
        st->broken = 1;
        return rc;
    }
    st->n += n;
    return PDR_OK;
}

int pdr_store_append_segments(pdr_store *st, size_t m, const int64_t *protein, const int32_t *start, const int32_t *end,
                              const float *emb, pdr_err *err)
{
    int rc = check_writable(st, err);
    if (rc || m == 0)
        return rc;
    if (!protein || !start || !end || !emb)
        return pdr_fail(err, PDR_EINPUT, "%s: append segments: protein, start, end and embeddings are required",
                        st->path);
    if (st->seg_emb < 0)
        return pdr_fail(err, PDR_EINPUT, "%s: store has no /segments group", st->path);
    if (m > (SIZE_MAX / sizeof(float)) / (size_t)st->meta.dim || m > SIZE_MAX - st->m)
        return pdr_fail(err, PDR_ELIMIT, "%s: append of %zu segments is too large", st->path, m);
    for (size_t i = 0; i < m; i++) {
        if (protein[i] < 0 || (uint64_t)protein[i] >= (uint64_t)st->n)
            return pdr_fail(err, PDR_EINPUT, "%s: segment %zu: protein row %lld is not in the store (%zu rows)",
                            st->path, st->m + i, (long long)protein[i], st->n);
        if (start[i] < 0 || end[i] <= start[i])
            return pdr_fail(err, PDR_EINPUT, "%s: segment %zu (protein row %lld): bad range %d..%d", st->path,
                            st->m + i, (long long)protein[i], (int)start[i], (int)end[i]);
    }
    const void *buf;
    hid_t memtype;
    if ((rc = emb_for_write(st, m, emb, &buf, &memtype, err)))
        return rc;
    hsize_t old = (hsize_t)st->m, rows = (hsize_t)m;
    if ((rc = append_rows(st, st->seg_emb, "/segments/embeddings", old, rows, (hsize_t)st->meta.dim, memtype, buf,
                          err)) ||
        (rc = append_rows(st, st->seg_protein, "/segments/protein", old, rows, 0, H5T_NATIVE_INT64, protein, err)) ||
        (rc = append_rows(st, st->seg_start, "/segments/start", old, rows, 0, H5T_NATIVE_INT32, start, err)) ||
        (rc = append_rows(st, st->seg_end, "/segments/end", old, rows, 0, H5T_NATIVE_INT32, end, err))) {
        st->broken = 1;
        return rc;
    }
    st->m += m;
    return PDR_OK;
}

int pdr_store_flush(pdr_store *st, pdr_err *err)
{
    if (!st)
        return pdr_fail(err, PDR_EINPUT, "store flush: no store");
    if (!st->writing)
        return PDR_OK;
    if (H5Fflush(st->file, H5F_SCOPE_GLOBAL) < 0)
        return h5_fail(err, PDR_EIO, st->path, NULL, "cannot flush");
    return PDR_OK;
}

/* Read rows of an embeddings dataset into floats; half rows are read into the front of emb and
 * widened in place from the back (float i covers halves 2i and 2i+1, both at or after i). */
static int read_emb(pdr_store *st, hid_t d, const char *obj, size_t start, size_t rows, float *emb, pdr_err *err)
{
    size_t count = rows * (size_t)st->meta.dim;
    int rc = read_rows(st, d, obj, start, rows, (hsize_t)st->meta.dim, st->meta.fp16 ? st->half_mem : H5T_NATIVE_FLOAT,
                       H5P_DEFAULT, emb, NULL, err);
    if (rc || !st->meta.fp16)
        return rc;
    unsigned char *bytes = (unsigned char *)emb;
    for (size_t i = count; i-- > 0;) {
        uint16_t h;
        memcpy(&h, bytes + 2 * i, sizeof h);
        float f = pdr_half_to_float(h);
        memcpy(bytes + 4 * i, &f, sizeof f);
    }
    return PDR_OK;
}

int pdr_store_read(pdr_store *st, size_t start, size_t n, float *emb, pdr_err *err)
{
    if (!st)
        return pdr_fail(err, PDR_EINPUT, "store read: no store");
    if (!range_ok(start, n, st->n))
        return range_fail(err, st, "/embeddings", start, n, st->n);
    if (n == 0)
        return PDR_OK;
    if (!emb)
        return pdr_fail(err, PDR_EINPUT, "%s: read: no output buffer", st->path);
    return read_emb(st, st->emb, "/embeddings", start, n, emb, err);
}

void pdr_store_free_ids(char **ids, size_t n)
{
    if (!ids)
        return;
    for (size_t i = 0; i < n; i++) {
        free(ids[i]);
        ids[i] = NULL;
    }
}

int pdr_store_read_ids(pdr_store *st, size_t start, size_t n, char **ids, int32_t *lengths, pdr_err *err)
{
    if (ids && n <= SIZE_MAX / sizeof *ids)
        memset(ids, 0, n * sizeof *ids);
    if (!st)
        return pdr_fail(err, PDR_EINPUT, "store read ids: no store");
    if (!range_ok(start, n, st->n))
        return range_fail(err, st, "/ids", start, n, st->n);
    if (n == 0)
        return PDR_OK;
    if (!ids)
        return pdr_fail(err, PDR_EINPUT, "%s: read ids: no output array", st->path);
    int rc;
    if (lengths &&
        (rc = read_rows(st, st->lengths, "/lengths", start, n, 0, H5T_NATIVE_INT32, H5P_DEFAULT, lengths, NULL, err)))
        return rc;
    hid_t mspace = H5I_INVALID_HID;
    if ((rc = read_rows(st, st->ids, "/ids", start, n, 0, st->str_mem, st->vlen_dxpl, ids, &mspace, err))) {
        /* HDF5 may have converted some strings before failing */
        if (mspace >= 0)
            H5Dvlen_reclaim(st->str_mem, mspace, st->vlen_dxpl, ids);
        pdr_store_free_ids(ids, n);
        return rc;
    }
    H5Sclose(mspace);
    /* A NULL string (written by some other tool) reads as "", so callers never see NULL. */
    for (size_t i = 0; i < n; i++) {
        if (!ids[i] && !(ids[i] = strdup(""))) {
            pdr_store_free_ids(ids, n);
            return pdr_fail(err, PDR_ENOMEM, "%s: out of memory reading ids", st->path);
        }
    }
    return PDR_OK;
}

int pdr_store_read_seq_hash(pdr_store *st, size_t start, size_t n, uint64_t *seq_hash, pdr_err *err)
{
    if (!st)
        return pdr_fail(err, PDR_EINPUT, "store read seq_hash: no store");
    if (!st->meta.seq_hash)
        return pdr_fail(err, PDR_EINPUT, "%s: the store has no /seq_hash (written before pdr kept it)", st->path);
    if (!range_ok(start, n, st->n))
        return range_fail(err, st, "/seq_hash", start, n, st->n);
    if (n == 0)
        return PDR_OK;
    if (!seq_hash)
        return pdr_fail(err, PDR_EINPUT, "%s: read seq_hash: no output buffer", st->path);
    return read_rows(st, st->seq_hash, "/seq_hash", start, n, 0, H5T_NATIVE_UINT64, H5P_DEFAULT, seq_hash, NULL, err);
}

uint64_t pdr_store_seq_hash(const char *residues, size_t n)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a 64: offset basis and prime */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)residues[i]) * 1099511628211ULL;
    return h;
}

int pdr_store_read_segments(pdr_store *st, size_t start, size_t m, int64_t *protein, int32_t *seg_start,
                            int32_t *seg_end, float *emb, pdr_err *err)
{
    if (!st)
        return pdr_fail(err, PDR_EINPUT, "store read segments: no store");
    if (!range_ok(start, m, st->m))
        return range_fail(err, st, "/segments", start, m, st->m);
    if (m == 0)
        return PDR_OK;
    int rc;
    if ((protein && (rc = read_rows(st, st->seg_protein, "/segments/protein", start, m, 0, H5T_NATIVE_INT64,
                                    H5P_DEFAULT, protein, NULL, err))) ||
        (seg_start && (rc = read_rows(st, st->seg_start, "/segments/start", start, m, 0, H5T_NATIVE_INT32, H5P_DEFAULT,
                                      seg_start, NULL, err))) ||
        (seg_end && (rc = read_rows(st, st->seg_end, "/segments/end", start, m, 0, H5T_NATIVE_INT32, H5P_DEFAULT,
                                    seg_end, NULL, err))) ||
        (emb && (rc = read_emb(st, st->seg_emb, "/segments/embeddings", start, m, emb, err))))
        return rc;
    return PDR_OK;
}

int pdr_store_read_all(const char *path, pdr_store_meta *meta, size_t *ret_n, char ***ret_ids, int32_t **ret_lengths,
                       float **ret_emb, pdr_err *err)
{
    if (ret_n)
        *ret_n = 0;
    if (ret_ids)
        *ret_ids = NULL;
    if (ret_lengths)
        *ret_lengths = NULL;
    if (ret_emb)
        *ret_emb = NULL;
    if (!ret_n || !ret_ids || !ret_lengths || !ret_emb)
        return pdr_fail(err, PDR_EINPUT, "store read all: output pointers are required");
    pdr_store *st = NULL;
    int rc = pdr_store_open(path, &st, err);
    if (rc)
        return rc;
    size_t n = st->n, dim = (size_t)st->meta.dim;
    char **ids = NULL;
    int32_t *lengths = NULL;
    float *emb = NULL;
    if (meta)
        *meta = st->meta;
    if (n == 0)
        goto done;
    if (n > (SIZE_MAX / sizeof(float)) / dim) {
        rc = pdr_fail(err, PDR_ELIMIT, "%s: %zu rows do not fit in memory", path, n);
        goto done;
    }
    ids = malloc(n * sizeof *ids);
    lengths = malloc(n * sizeof *lengths);
    emb = malloc(n * dim * sizeof *emb);
    if (!ids || !lengths || !emb) {
        rc = pdr_fail(err, PDR_ENOMEM, "%s: out of memory reading %zu rows", path, n);
        goto done;
    }
    if ((rc = pdr_store_read_ids(st, 0, n, ids, lengths, err)))
        goto done;
    if ((rc = pdr_store_read(st, 0, n, emb, err)))
        pdr_store_free_ids(ids, n);
done:
    pdr_store_free(st);
    if (rc) {
        free(ids);
        free(lengths);
        free(emb);
        return rc;
    }
    *ret_n = n;
    *ret_ids = ids;
    *ret_lengths = lengths;
    *ret_emb = emb;
    return PDR_OK;
}
