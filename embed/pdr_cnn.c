/* pdr_cnn.c: the pdr encoder (train/model.py's Encoder) in C, after llama2.c's run.c.
 *
 * Sections: model and weights (load, validate, free), workspace, neural-net blocks (layernorm,
 * convolution, gelu, pointwise, pooling, projection), forward (read it next to model.py),
 * segments. Activations are row-major [L, d] matrices (one row per residue), so every dense
 * step is one matrix product over a tile of rows; the convolution is one product by all taps
 * side by side and a shifted sum (float32), or `kernel` shifted products (bfloat16).
 */
#include "pdr_cnn.h"

#include "pdr_bf16.h"
#include "pdr_fma.h"
#include "pdr_sha256.h"

#include <cblas.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CNN_FORMAT "pdr-cnn"
#define CNN_FORMAT_VERSION 1
#define CNN_VOCAB 21
#define CNN_X_TOKEN 20
#define CNN_ALPHABET "ACDEFGHIKLMNPQRSTVWY"

/* Sanity limits on the attributes, so that a corrupt or hostile file cannot make open allocate
 * gigabytes; the production model (d 128, 6 blocks) is far inside them. */
#define CNN_MAX_D 2048
#define CNN_MAX_BLOCKS 256
#define CNN_MAX_KERNEL 63
#define CNN_MAX_DILATION 65536
#define CNN_MAX_OUT_DIM 65536
#define CNN_MAX_PARAMS ((size_t)1 << 26)
#define CNN_MAX_ATTR_STR ((size_t)1 << 20)

/* Most rows per tile of the block loop: one tile's conv input, output and a block's weights stay
 * in L2 while its kernel + 1 matrix products run. Measured (bench/cnn_speed.c, d 128): 128 to 1024
 * rows are within 3% of each other; no tiling loses 15% at 10,000 residues. */
#ifndef CNN_TILE
#define CNN_TILE 512
#endif

/* The elementwise steps (layer norm, GELU, biases, pooling) are a tenth of the work; on x86-64
 * GCC builds an AVX2 copy of each next to the baseline one and picks at load time. Both give the
 * same bits: the arithmetic is elementwise or in explicit lanes, and -std=c11 contracts no FMAs. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(PDR_CNN_NO_CLONES)
#define CNN_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CNN_VECTOR_CLONES
#endif

/* Every tensor starts on a 64-byte boundary (16 floats) for the BLAS kernels. */
#define CNN_ALIGN_FLOATS 16

/* ------------------------------------------------------------------------------------------ */
/* Model and weights */

typedef struct cnn_block {
    int dilation;
    float *ln_g, *ln_b; /* [d] */
    float *conv_wt;     /* [kernel][d_in][d_out]: tap j of Conv1d weight [out, in, k], transposed */
    float *conv_wcat;   /* [d_in][kernel * d_out]: the same taps side by side (sgemm products only) */
    float *conv_b;      /* [d] */
    float *pw_wt;       /* [d_in][d_out]: Linear weight [out, in], transposed */
    float *pw_b;        /* [d] */
    uint16_t *conv_wp;  /* [kernel][d*d] conv_wt packed for pdr_bf16_gemm (bf16 products only) */
    uint16_t *pw_wp;    /* [d*d] pw_wt packed the same way */
    float *conv_wf;     /* [kernel][d*d] conv_wt packed for pdr_fma_gemm (fma products only) */
    float *pw_wf;       /* [d*d] pw_wt packed the same way */
} cnn_block;

struct pdr_cnn {
    int d, n_blocks, kernel, out_dim;
    float ln_eps;
    char *name, *version, *description;
    size_t n_params;
    float *embed;                   /* [21][d] */
    cnn_block *blocks;              /* [n_blocks] */
    float *final_ln_g, *final_ln_b; /* [d] */
    float *proj_w;                  /* [out_dim][2d], PyTorch layout */
    float *proj_b;                  /* [out_dim] */
    float *seg_proj_w, *seg_proj_b; /* the segment projection: the file's, else proj's copy */
    int has_seg_proj;               /* the file has its own segment projection */
    float *arena;                   /* one allocation: the weights as read (packed copies apart) */
    pdr_cnn_products products;      /* how the dense products run (pdr_cnn_set_products) */
    uint16_t *bf16_arena;           /* the packed weights of bf16 products */
    float *fma_arena;               /* the packed weights of fma products */
    float *sgemm_arena;             /* the side-by-side conv taps of sgemm products */
    unsigned char lut[256];         /* byte -> token: model.py's tokenize */
};

void pdr_cnn_free(pdr_cnn *m)
{
    if (!m)
        return;
    free(m->name);
    free(m->version);
    free(m->description);
    free(m->blocks);
    free(m->arena);
    free(m->bf16_arena);
    free(m->fma_arena);
    free(m->sgemm_arena);
    free(m);
}

int pdr_cnn_has_segment_projection(const pdr_cnn *m) { return m && m->has_seg_proj; }

const char *pdr_cnn_products_name(pdr_cnn_products p)
{
    switch (p) {
    case PDR_CNN_SGEMM: return "sgemm";
    case PDR_CNN_FMA: return "fma";
    case PDR_CNN_BF16: return "bf16";
    }
    return "?";
}

int pdr_cnn_products_supported(const pdr_cnn *m, pdr_cnn_products p)
{
    switch (p) {
    case PDR_CNN_SGEMM: return m != NULL;
    case PDR_CNN_FMA: return m && m->d % 16 == 0 && pdr_fma_available();
    case PDR_CNN_BF16: return m && m->d % 32 == 0 && pdr_bf16_available();
    }
    return 0;
}

pdr_cnn_products pdr_cnn_get_products(const pdr_cnn *m) { return m->products; }

/* One packed copy of every block's conv taps and pointwise weights: per block kernel + 1
 * matrices of d*d elements of `size` bytes, in one 64-byte aligned allocation. */
static void *alloc_packed(const pdr_cnn *m, size_t size)
{
    const size_t dd = (size_t)m->d * (size_t)m->d;
    void *p = NULL;
    return posix_memalign(&p, 64, dd * ((size_t)m->kernel + 1) * (size_t)m->n_blocks * size) == 0 ? p : NULL;
}

/* conv_wcat of every block: for sgemm products' one wide product per tile (see conv1d). */
static int pack_wide(pdr_cnn *m, pdr_err *err)
{
    const size_t d = (size_t)m->d, k = (size_t)m->kernel, per_block = k * d * d;
    if (m->sgemm_arena)
        return PDR_OK;
    void *p = NULL;
    if (posix_memalign(&p, 64, per_block * (size_t)m->n_blocks * sizeof(float)) != 0)
        return pdr_fail(err, PDR_ENOMEM, "out of memory for the side-by-side convolution weights");
    m->sgemm_arena = p;
    for (int b = 0; b < m->n_blocks; b++) {
        cnn_block *blk = &m->blocks[b];
        blk->conv_wcat = m->sgemm_arena + (size_t)b * per_block;
        for (size_t j = 0; j < k; j++)
            for (size_t i = 0; i < d; i++)
                memcpy(blk->conv_wcat + (i * k + j) * d, blk->conv_wt + (j * d + i) * d, d * sizeof(float));
    }
    return PDR_OK;
}

static int pack_bf16(pdr_cnn *m, pdr_err *err)
{
    const size_t dd = (size_t)m->d * (size_t)m->d, per_block = dd * ((size_t)m->kernel + 1);
    if (m->bf16_arena)
        return PDR_OK;
    if (!(m->bf16_arena = alloc_packed(m, sizeof(uint16_t))))
        return pdr_fail(err, PDR_ENOMEM, "out of memory for the bfloat16 weights");
    for (int b = 0; b < m->n_blocks; b++) {
        cnn_block *blk = &m->blocks[b];
        blk->conv_wp = m->bf16_arena + (size_t)b * per_block;
        blk->pw_wp = blk->conv_wp + dd * (size_t)m->kernel;
        for (int j = 0; j < m->kernel; j++)
            pdr_bf16_pack_b(blk->conv_wt + (size_t)j * dd, m->d, m->d, blk->conv_wp + (size_t)j * dd);
        pdr_bf16_pack_b(blk->pw_wt, m->d, m->d, blk->pw_wp);
    }
    return PDR_OK;
}

static int pack_fma(pdr_cnn *m, pdr_err *err)
{
    const size_t dd = (size_t)m->d * (size_t)m->d, per_block = dd * ((size_t)m->kernel + 1);
    if (m->fma_arena)
        return PDR_OK;
    if (!(m->fma_arena = alloc_packed(m, sizeof(float))))
        return pdr_fail(err, PDR_ENOMEM, "out of memory for the packed float32 weights");
    for (int b = 0; b < m->n_blocks; b++) {
        cnn_block *blk = &m->blocks[b];
        blk->conv_wf = m->fma_arena + (size_t)b * per_block;
        blk->pw_wf = blk->conv_wf + dd * (size_t)m->kernel;
        for (int j = 0; j < m->kernel; j++)
            pdr_fma_pack_b(blk->conv_wt + (size_t)j * dd, m->d, m->d, blk->conv_wf + (size_t)j * dd);
        pdr_fma_pack_b(blk->pw_wt, m->d, m->d, blk->pw_wf);
    }
    return PDR_OK;
}

int pdr_cnn_set_products(pdr_cnn *m, pdr_cnn_products p, pdr_err *err)
{
    int status;
    if (!m)
        return pdr_fail(err, PDR_EINPUT, "pdr_cnn_set_products: no model");
    switch (p) {
    case PDR_CNN_SGEMM:
        if ((status = pack_wide(m, err)))
            return status;
        break;
    case PDR_CNN_FMA:
        if (!pdr_fma_available())
            return pdr_fail(err, PDR_EINPUT, "this CPU has no AVX2 and FMA for the fma products");
        if (m->d % 16)
            return pdr_fail(err, PDR_EINPUT, "fma products need a width divisible by 16 (this model's is %d)", m->d);
        if ((status = pack_fma(m, err)))
            return status;
        break;
    case PDR_CNN_BF16:
        if (!pdr_bf16_available())
            return pdr_fail(err, PDR_EINPUT, "this CPU has no AVX-512 BF16 for bfloat16 products");
        if (m->d % 32)
            return pdr_fail(err, PDR_EINPUT, "bfloat16 products need a width divisible by 32 (this model's is %d)",
                            m->d);
        if ((status = pack_bf16(m, err)))
            return status;
        break;
    default: return pdr_fail(err, PDR_EINPUT, "pdr_cnn_set_products: unknown kind %d", (int)p);
    }
    m->products = p;
    return PDR_OK;
}

/* The products pdr_cnn_open starts with (see pdr_cnn.h); PDR_EINPUT for a PDR_CNN_PRODUCTS
 * value that is not a kind. */
static int default_products(const pdr_cnn *m, pdr_cnn_products *ret, pdr_err *err)
{
    const char *want = getenv("PDR_CNN_PRODUCTS"), *fp32 = getenv("PDR_CNN_FP32");
    if (want && *want) {
        for (int p = PDR_CNN_SGEMM; p <= PDR_CNN_BF16; p++)
            if (strcmp(want, pdr_cnn_products_name((pdr_cnn_products)p)) == 0) {
                *ret = (pdr_cnn_products)p;
                return PDR_OK;
            }
        return pdr_fail(err, PDR_EINPUT, "PDR_CNN_PRODUCTS is '%s', expected sgemm, fma or bf16", want);
    }
    if ((!fp32 || !*fp32 || strcmp(fp32, "0") == 0) && pdr_cnn_products_supported(m, PDR_CNN_BF16))
        *ret = PDR_CNN_BF16;
    else if (pdr_cnn_products_supported(m, PDR_CNN_FMA) && !pdr_fma_cpu_has_avx512())
        *ret = PDR_CNN_FMA;
    else
        *ret = PDR_CNN_SGEMM;
    return PDR_OK;
}

int pdr_cnn_dim(const pdr_cnn *m) { return m->out_dim; }
const char *pdr_cnn_name(const pdr_cnn *m) { return m->name; }
const char *pdr_cnn_version(const pdr_cnn *m) { return m->version; }
const char *pdr_cnn_description(const pdr_cnn *m) { return m->description; }
size_t pdr_cnn_params(const pdr_cnn *m) { return m->n_params; }

double pdr_cnn_flops_per_residue(const pdr_cnn *m)
{
    const double d = m->d, k = m->kernel;
    return m->n_blocks * (2.0 * d * d * k + 2.0 * d * d);
}

/* What the loader is working on, for error messages. */
typedef struct cnn_loader {
    const char *path;
    hid_t file;
    pdr_err *err;
    pdr_sha256 hash; /* over every tensor as read, in export.py's order: the model_version */
} cnn_loader;

/* HDF5 keeps a stack of errors; the innermost says what was wrong with the file ("file signature
 * not found", "truncated file: eof = ..."), which is what the user needs to see. */
static herr_t h5_innermost_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    if (n == 0 && e->desc) {
        char *s = data;
        snprintf(s, 256, "%s", e->desc);
        for (; *s; s++) /* a failed read's message holds ctime()'s newline: keep one line */
            if (*s == '\n' || *s == '\r')
                *s = ' ';
    }
    return 0;
}

static const char *h5_reason(char *buf)
{
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_innermost_cb, buf);
    return buf[0] ? buf : "HDF5 gave no reason";
}

static const char *class_name(H5T_class_t cls)
{
    switch (cls) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    default: return "other";
    }
}

/* Open a root attribute, checking that it exists and holds exactly one value of the given class
 * (H5T_NO_CLASS: any class). Returns the attribute id or a negative value with err filled. */
static hid_t open_attr(cnn_loader *ld, const char *name, H5T_class_t cls, hssize_t npoints)
{
    char why[256];
    htri_t exists = H5Aexists(ld->file, name);
    if (exists <= 0) {
        pdr_fail(ld->err, PDR_EFORMAT, "%s: not a pdr-cnn model: root attribute '%s' missing", ld->path, name);
        return -1;
    }
    hid_t a = H5Aopen(ld->file, name, H5P_DEFAULT);
    if (a < 0) {
        pdr_fail(ld->err, PDR_EFORMAT, "%s: attribute '%s' unreadable: %s", ld->path, name, h5_reason(why));
        return -1;
    }
    hid_t type = H5Aget_type(a), space = H5Aget_space(a);
    H5T_class_t got = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (type >= 0)
        H5Tclose(type);
    if (space >= 0)
        H5Sclose(space);
    if ((cls != H5T_NO_CLASS && got != cls) || n != npoints) {
        H5Aclose(a);
        pdr_fail(ld->err, PDR_EFORMAT, "%s: attribute '%s' holds %lld %s value(s), expected %lld %s", ld->path, name,
                 (long long)n, class_name(got), (long long)npoints, class_name(cls));
        return -1;
    }
    return a;
}

/* Integer attribute(s) into out[n], each in [lo, hi]. */
static int attr_ints(cnn_loader *ld, const char *name, long long *out, int n, long long lo, long long hi)
{
    char why[256];
    hid_t a = open_attr(ld, name, H5T_INTEGER, n);
    if (a < 0)
        return PDR_EFORMAT;
    herr_t rc = H5Aread(a, H5T_NATIVE_LLONG, out);
    H5Aclose(a);
    if (rc < 0)
        return pdr_fail(ld->err, PDR_EFORMAT, "%s: attribute '%s' unreadable: %s", ld->path, name, h5_reason(why));
    for (int i = 0; i < n; i++)
        if (out[i] < lo || out[i] > hi)
            return pdr_fail(ld->err, PDR_EFORMAT, "%s: attribute '%s'%s is %lld, expected %lld..%lld", ld->path, name,
                            n > 1 ? " entry" : "", out[i], lo, hi);
    return PDR_OK;
}

static int attr_int(cnn_loader *ld, const char *name, int *out, long long lo, long long hi)
{
    long long v;
    int status = attr_ints(ld, name, &v, 1, lo, hi);
    if (status == PDR_OK)
        *out = (int)v;
    return status;
}

static int attr_double(cnn_loader *ld, const char *name, double *out)
{
    char why[256];
    hid_t a = open_attr(ld, name, H5T_FLOAT, 1);
    if (a < 0)
        return PDR_EFORMAT;
    herr_t rc = H5Aread(a, H5T_NATIVE_DOUBLE, out);
    H5Aclose(a);
    if (rc < 0)
        return pdr_fail(ld->err, PDR_EFORMAT, "%s: attribute '%s' unreadable: %s", ld->path, name, h5_reason(why));
    return PDR_OK;
}

/* A string attribute, variable-length (what h5py writes) or fixed-length; *ret is malloc'd. */
static int attr_string(cnn_loader *ld, const char *name, char **ret)
{
    char why[256];
    int status = PDR_EFORMAT;
    char *s = NULL;
    hid_t mem = -1, ftype = -1;
    *ret = NULL;
    hid_t a = open_attr(ld, name, H5T_STRING, 1);
    if (a < 0)
        return PDR_EFORMAT;
    if ((ftype = H5Aget_type(a)) < 0 || (mem = H5Tcopy(H5T_C_S1)) < 0)
        goto h5fail;
    htri_t vlen = H5Tis_variable_str(ftype);
    if (vlen < 0)
        goto h5fail;
    if (vlen) {
        char *v = NULL;
        if (H5Tset_size(mem, H5T_VARIABLE) < 0 || H5Tset_cset(mem, H5Tget_cset(ftype)) < 0 || H5Aread(a, mem, &v) < 0)
            goto h5fail;
        size_t n = v ? strlen(v) : 0;
        if (n > CNN_MAX_ATTR_STR) {
            H5free_memory(v);
            status = pdr_fail(ld->err, PDR_EFORMAT, "%s: attribute '%s' is too long", ld->path, name);
            goto done;
        }
        s = malloc(n + 1);
        if (s)
            memcpy(s, v ? v : "", n + 1);
        H5free_memory(v);
    } else {
        size_t n = H5Tget_size(ftype);
        if (n == 0 || n > CNN_MAX_ATTR_STR) {
            status = pdr_fail(ld->err, PDR_EFORMAT, "%s: attribute '%s' has a bad string size %zu", ld->path, name, n);
            goto done;
        }
        s = calloc(n + 1, 1);
        if (s && (H5Tset_size(mem, n) < 0 || H5Tset_strpad(mem, H5T_STR_NULLPAD) < 0 || H5Aread(a, mem, s) < 0)) {
            free(s);
            s = NULL;
            goto h5fail;
        }
    }
    if (!s) {
        status = pdr_fail(ld->err, PDR_ENOMEM, "%s: out of memory reading attribute '%s'", ld->path, name);
        goto done;
    }
    *ret = s;
    status = PDR_OK;
    goto done;
h5fail:
    status = pdr_fail(ld->err, PDR_EFORMAT, "%s: attribute '%s' unreadable: %s", ld->path, name, h5_reason(why));
done:
    if (mem >= 0)
        H5Tclose(mem);
    if (ftype >= 0)
        H5Tclose(ftype);
    H5Aclose(a);
    return status;
}

static int attr_string_equals(cnn_loader *ld, const char *name, const char *want)
{
    char *s = NULL;
    int status = attr_string(ld, name, &s);
    if (status != PDR_OK)
        return status;
    if (strcmp(s, want) != 0)
        status =
            pdr_fail(ld->err, PDR_EFORMAT, "%s: attribute '%s' is '%.64s', expected '%s'", ld->path, name, s, want);
    free(s);
    return status;
}

static void format_dims(char *buf, size_t size, int rank, const hsize_t *dims)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

/* Read float dataset `name` of exactly the given shape into out, then check every value is
 * finite (a NaN in the weights would silently turn every embedding into NaN). */
static int read_tensor(cnn_loader *ld, const char *name, int rank, const hsize_t *dims, float *out)
{
    char why[256], got_s[160], want_s[160];
    int status = PDR_EFORMAT;
    hid_t ds = -1, type = -1, space = -1;
    hsize_t got[H5S_MAX_RANK];
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= (size_t)dims[i];
    format_dims(want_s, sizeof want_s, rank, dims);

    if (H5Lexists(ld->file, name, H5P_DEFAULT) <= 0) {
        status = pdr_fail(ld->err, PDR_EFORMAT, "%s: dataset %s missing (expected float32 %s)", ld->path, name, want_s);
        goto done;
    }
    if ((ds = H5Dopen2(ld->file, name, H5P_DEFAULT)) < 0) {
        status = pdr_fail(ld->err, PDR_EFORMAT, "%s: %s is not a readable dataset: %s", ld->path, name, h5_reason(why));
        goto done;
    }
    if ((type = H5Dget_type(ds)) < 0 || H5Tget_class(type) != H5T_FLOAT) {
        status = pdr_fail(ld->err, PDR_EFORMAT, "%s: dataset %s is not floating point", ld->path, name);
        goto done;
    }
    int got_rank = (space = H5Dget_space(ds)) >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (got_rank < 0 || got_rank > H5S_MAX_RANK || H5Sget_simple_extent_dims(space, got, NULL) < 0) {
        status = pdr_fail(ld->err, PDR_EFORMAT, "%s: dataset %s: unreadable shape: %s", ld->path, name, h5_reason(why));
        goto done;
    }
    int same = got_rank == rank;
    for (int i = 0; same && i < rank; i++)
        same = got[i] == dims[i];
    if (!same) {
        format_dims(got_s, sizeof got_s, got_rank, got);
        status =
            pdr_fail(ld->err, PDR_EFORMAT, "%s: dataset %s has shape %s, expected %s", ld->path, name, got_s, want_s);
        goto done;
    }
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
        status = pdr_fail(ld->err, PDR_EFORMAT, "%s: dataset %s unreadable (truncated file?): %s", ld->path, name,
                          h5_reason(why));
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(out[i])) {
            status = pdr_fail(ld->err, PDR_EFORMAT, "%s: dataset %s: value %zu is not finite", ld->path, name, i);
            goto done;
        }
    pdr_sha256_update_f32le(&ld->hash, out, n); /* as export.py hashes it: PyTorch layout, "<f4" */
    status = PDR_OK;
done:
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    if (ds >= 0)
        H5Dclose(ds);
    return status;
}

static size_t aligned_floats(size_t n) { return (n + CNN_ALIGN_FLOATS - 1) / CNN_ALIGN_FLOATS * CNN_ALIGN_FLOATS; }

/* Carve the arena into tensors (place == 0 only counts the floats needed). */
static size_t layout_tensors(pdr_cnn *m, int place)
{
    const size_t d = (size_t)m->d, k = (size_t)m->kernel;
    size_t used = 0;
#define CARVE(ptr, count) \
    do { \
        if (place) \
            (ptr) = m->arena + used; \
        used += aligned_floats(count); \
    } while (0)
    CARVE(m->embed, CNN_VOCAB * d);
    for (int b = 0; b < m->n_blocks; b++) {
        cnn_block *blk = &m->blocks[b];
        CARVE(blk->ln_g, d);
        CARVE(blk->ln_b, d);
        CARVE(blk->conv_wt, k * d * d);
        CARVE(blk->conv_b, d);
        CARVE(blk->pw_wt, d * d);
        CARVE(blk->pw_b, d);
    }
    CARVE(m->final_ln_g, d);
    CARVE(m->final_ln_b, d);
    CARVE(m->proj_w, (size_t)m->out_dim * 2 * d);
    CARVE(m->proj_b, (size_t)m->out_dim);
    CARVE(m->seg_proj_w, (size_t)m->out_dim * 2 * d);
    CARVE(m->seg_proj_b, (size_t)m->out_dim);
#undef CARVE
    return used;
}

/* Read every tensor; conv and pointwise weights go through `scratch` ([d, d, k] floats) and are
 * stored transposed so that the forward multiplies activations [rows, d_in] by [d_in, d_out].
 * The order is export.py's tensors_in_order, which model_version hashes in. */
static int read_weights(cnn_loader *ld, pdr_cnn *m, float *scratch)
{
    const int d = m->d, k = m->kernel;
    const hsize_t dd = (hsize_t)d;
    char name[64];
    int status;
    hsize_t embed_dims[2] = {CNN_VOCAB, dd}, vec[1] = {dd}, conv_dims[3] = {dd, dd, (hsize_t)k};
    hsize_t pw_dims[2] = {dd, dd}, proj_dims[2] = {(hsize_t)m->out_dim, 2 * dd};
    hsize_t proj_b_dims[1] = {(hsize_t)m->out_dim};

    if ((status = read_tensor(ld, "/embed", 2, embed_dims, m->embed)))
        return status;
    for (int b = 0; b < m->n_blocks; b++) {
        cnn_block *blk = &m->blocks[b];
#define BLOCK_TENSOR(field, rank, dims, dst) \
    do { \
        snprintf(name, sizeof name, "/blocks/%d/" field, b); \
        if ((status = read_tensor(ld, name, rank, dims, dst))) \
            return status; \
    } while (0)
        BLOCK_TENSOR("ln_g", 1, vec, blk->ln_g);
        BLOCK_TENSOR("ln_b", 1, vec, blk->ln_b);
        BLOCK_TENSOR("conv_w", 3, conv_dims, scratch);
        for (int o = 0; o < d; o++)
            for (int i = 0; i < d; i++)
                for (int j = 0; j < k; j++)
                    blk->conv_wt[((size_t)j * d + i) * d + o] = scratch[((size_t)o * d + i) * k + j];
        BLOCK_TENSOR("conv_b", 1, vec, blk->conv_b);
        BLOCK_TENSOR("pw_w", 2, pw_dims, scratch);
        for (int o = 0; o < d; o++)
            for (int i = 0; i < d; i++)
                blk->pw_wt[(size_t)i * d + o] = scratch[(size_t)o * d + i];
        BLOCK_TENSOR("pw_b", 1, vec, blk->pw_b);
#undef BLOCK_TENSOR
    }
    if ((status = read_tensor(ld, "/final_ln_g", 1, vec, m->final_ln_g)))
        return status;
    if ((status = read_tensor(ld, "/final_ln_b", 1, vec, m->final_ln_b)))
        return status;
    if ((status = read_tensor(ld, "/proj_w", 2, proj_dims, m->proj_w)))
        return status;
    if ((status = read_tensor(ld, "/proj_b", 1, proj_b_dims, m->proj_b)))
        return status;
    if (!m->has_seg_proj) { /* segments are projected like the whole protein */
        memcpy(m->seg_proj_w, m->proj_w, (size_t)m->out_dim * 2 * (size_t)d * sizeof *m->proj_w);
        memcpy(m->seg_proj_b, m->proj_b, (size_t)m->out_dim * sizeof *m->proj_b);
        return PDR_OK;
    }
    if ((status = read_tensor(ld, "/seg_proj_w", 2, proj_dims, m->seg_proj_w)))
        return status;
    return read_tensor(ld, "/seg_proj_b", 1, proj_b_dims, m->seg_proj_b);
}

/* Root attributes: identity first (so a foreign file says so), then the architecture. */
static int read_header(cnn_loader *ld, pdr_cnn *m)
{
    int status, version, vocab;
    long long dil[CNN_MAX_BLOCKS];
    double eps;

    if ((status = attr_string_equals(ld, "format", CNN_FORMAT)))
        return status;
    if ((status = attr_int(ld, "format_version", &version, 0, 1000000)))
        return status;
    if (version != CNN_FORMAT_VERSION)
        return pdr_fail(ld->err, PDR_EFORMAT, "%s: format_version %d is not supported (this build reads version %d)",
                        ld->path, version, CNN_FORMAT_VERSION);
    if ((status = attr_string(ld, "model_name", &m->name)))
        return status;
    if ((status = attr_string(ld, "model_version", &m->version)))
        return status;
    if ((status = attr_string(ld, "description", &m->description)))
        return status;
    if ((status = attr_int(ld, "d", &m->d, 1, CNN_MAX_D)))
        return status;
    if ((status = attr_int(ld, "n_blocks", &m->n_blocks, 1, CNN_MAX_BLOCKS)))
        return status;
    if ((status = attr_int(ld, "kernel", &m->kernel, 1, CNN_MAX_KERNEL)))
        return status;
    if (m->kernel % 2 == 0)
        return pdr_fail(ld->err, PDR_EFORMAT, "%s: attribute 'kernel' is %d, expected an odd number", ld->path,
                        m->kernel);
    if ((status = attr_int(ld, "out_dim", &m->out_dim, 1, CNN_MAX_OUT_DIM)))
        return status;
    if ((status = attr_int(ld, "vocab", &vocab, CNN_VOCAB, CNN_VOCAB)))
        return status;
    if ((status = attr_string_equals(ld, "alphabet", CNN_ALPHABET)))
        return status;
    if ((status = attr_string_equals(ld, "pooling", "meanmax")))
        return status;
    if ((status = attr_double(ld, "ln_eps", &eps)))
        return status;
    if (!(eps > 0 && eps < 1))
        return pdr_fail(ld->err, PDR_EFORMAT, "%s: attribute 'ln_eps' is %g, expected 0 < eps < 1", ld->path, eps);
    m->ln_eps = (float)eps;
    if ((status = attr_ints(ld, "dilations", dil, m->n_blocks, 1, CNN_MAX_DILATION)))
        return status;

    m->blocks = calloc((size_t)m->n_blocks, sizeof *m->blocks);
    if (!m->blocks)
        return pdr_fail(ld->err, PDR_ENOMEM, "%s: out of memory", ld->path);
    for (int b = 0; b < m->n_blocks; b++)
        m->blocks[b].dilation = (int)dil[b];

    const size_t d = (size_t)m->d;
    /* either half present asks for both (read_weights names the one missing) */
    m->has_seg_proj =
        H5Lexists(ld->file, "/seg_proj_w", H5P_DEFAULT) > 0 || H5Lexists(ld->file, "/seg_proj_b", H5P_DEFAULT) > 0;
    m->n_params = CNN_VOCAB * d + (size_t)m->n_blocks * (2 * d + (size_t)m->kernel * d * d + d + d * d + d) + 2 * d +
                  (size_t)(1 + m->has_seg_proj) * ((size_t)m->out_dim * 2 * d + (size_t)m->out_dim);
    if (m->n_params > CNN_MAX_PARAMS)
        return pdr_fail(ld->err, PDR_EFORMAT, "%s: the attributes describe %zu parameters, more than the %zu allowed",
                        ld->path, m->n_params, CNN_MAX_PARAMS);
    return PDR_OK;
}

/* model_version is export.py's hash of the tensors (first 12 hex digits of sha256 over their
 * float32 little-endian bytes): recomputed here, so that a damaged or edited weight file is
 * refused instead of giving other embeddings under the name of the model a database was made
 * with. About 1 ms per million weights. */
static int check_model_version(cnn_loader *ld, const pdr_cnn *m)
{
    char hex[65];
    pdr_sha256_final_hex(&ld->hash, hex);
    hex[12] = '\0';
    if (strcmp(m->version, hex) != 0)
        return pdr_fail(ld->err, PDR_EFORMAT,
                        "%s: its tensors do not match its model_version (damaged or edited file): model_version "
                        "is '%.32s', the tensors hash to %s",
                        ld->path, m->version, hex);
    return PDR_OK;
}

int pdr_cnn_open(const char *path, pdr_cnn **ret_model, pdr_err *err)
{
    int status;
    char why[256];
    pdr_cnn *m = NULL;
    float *scratch = NULL;
    hid_t fapl = -1;
    cnn_loader ld = {.path = path, .file = -1, .err = err};
    H5E_auto2_t old_print = NULL;
    void *old_print_data = NULL;

    *ret_model = NULL;
    FILE *probe = fopen(path, "rb");
    if (!probe)
        return pdr_fail(err, PDR_EIO, "%s: cannot open model: %s", path, strerror(errno));
    fclose(probe);

    /* HDF5 prints its error stack to stderr by default; we report through err instead. The
     * setting is per thread in the threadsafe library, and restored before returning. */
    H5Eget_auto2(H5E_DEFAULT, &old_print, &old_print_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

    /* Strong close: H5Fclose also closes anything an error path left open. */
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        status = pdr_fail(err, PDR_EINTERNAL, "%s: HDF5 property list failed", path);
        goto fail;
    }
    if ((ld.file = H5Fopen(path, H5F_ACC_RDONLY, fapl)) < 0) {
        status = pdr_fail(err, PDR_EFORMAT, "%s: not a readable HDF5 model file: %s", path, h5_reason(why));
        goto fail;
    }
    if (!(m = calloc(1, sizeof *m))) {
        status = pdr_fail(err, PDR_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if ((status = read_header(&ld, m)))
        goto fail;
    memset(m->lut, CNN_X_TOKEN, sizeof m->lut);
    for (int i = 0; CNN_ALPHABET[i]; i++) {
        m->lut[(unsigned char)CNN_ALPHABET[i]] = (unsigned char)i;
        m->lut[(unsigned char)(CNN_ALPHABET[i] - 'A' + 'a')] = (unsigned char)i;
    }

    size_t n_floats = layout_tensors(m, 0);
    const size_t d = (size_t)m->d;
    if (posix_memalign((void **)&m->arena, 64, n_floats * sizeof(float)) != 0) {
        m->arena = NULL;
        status = pdr_fail(err, PDR_ENOMEM, "%s: out of memory for %zu weights", path, n_floats);
        goto fail;
    }
    layout_tensors(m, 1);
    if (!(scratch = malloc(d * d * (size_t)m->kernel * sizeof *scratch))) {
        status = pdr_fail(err, PDR_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    pdr_sha256_init(&ld.hash);
    if ((status = read_weights(&ld, m, scratch)) || (status = check_model_version(&ld, m)))
        goto fail;

    pdr_cnn_products products = PDR_CNN_SGEMM;
    pdr_err why_products = {0};
    if ((status = default_products(m, &products, &why_products)) ||
        (status = pdr_cnn_set_products(m, products, &why_products))) {
        pdr_fail(err, status, "%s: %s", path, why_products.msg);
        goto fail;
    }

    free(scratch);
    H5Fclose(ld.file);
    H5Pclose(fapl);
    H5Eset_auto2(H5E_DEFAULT, old_print, old_print_data);
    *ret_model = m;
    return PDR_OK;

fail:
    free(scratch);
    pdr_cnn_free(m);
    if (ld.file >= 0)
        H5Fclose(ld.file);
    if (fapl >= 0)
        H5Pclose(fapl);
    H5Eset_auto2(H5E_DEFAULT, old_print, old_print_data);
    return status;
}

/* ------------------------------------------------------------------------------------------ */
/* Workspace */

struct pdr_cnn_ws {
    const pdr_cnn *m;
    size_t cap;         /* rows allocated in x, h, h_next, tok */
    size_t len;         /* residues of the last embedded sequence; 0 before the first */
    float *x;           /* [cap][d] residual stream; after embed: final hidden states */
    float *h;           /* [cap][d] layer-normed input of the current block */
    float *h_next;      /* [cap][d] the same for the next block, filled tile by tile */
    float *tile;        /* [CNN_TILE][d] conv -> gelu output of one tile */
    uint16_t *hb;       /* [cap][d] h in bfloat16 (bf16 mode) */
    uint16_t *tileb;    /* [CNN_TILE][d] tile in bfloat16 (bf16 mode) */
    float *taps;        /* [2 * CNN_TILE][kernel * d] every tap's product of a tile and its halo */
    unsigned char *tok; /* [cap] */
    double *sum;        /* [d] pooling accumulator */
    float *pool;        /* [2d] pooled vector (mean, max) */
};

static float *alloc_floats(size_t n)
{
    void *p = NULL;
    if (n == 0 || n > SIZE_MAX / sizeof(float) || posix_memalign(&p, 64, n * sizeof(float)) != 0)
        return NULL;
    return p;
}

static void ws_release_rows(pdr_cnn_ws *ws)
{
    free(ws->x);
    free(ws->h);
    free(ws->h_next);
    free(ws->tok);
    free(ws->hb);
    ws->x = ws->h = ws->h_next = NULL;
    ws->tok = NULL;
    ws->hb = NULL;
    ws->cap = 0;
}

void pdr_cnn_ws_free(pdr_cnn_ws *ws)
{
    if (!ws)
        return;
    ws_release_rows(ws);
    free(ws->tile);
    free(ws->tileb);
    free(ws->taps);
    free(ws->sum);
    free(ws->pool);
    free(ws);
}

int pdr_cnn_ws_create(const pdr_cnn *m, pdr_cnn_ws **ret_ws, pdr_err *err)
{
    *ret_ws = NULL;
    if (!m)
        return pdr_fail(err, PDR_EINPUT, "pdr_cnn_ws_create: no model");
    pdr_cnn_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return pdr_fail(err, PDR_ENOMEM, "encoder workspace: out of memory");
    ws->m = m;
    ws->tile = alloc_floats((size_t)CNN_TILE * (size_t)m->d);
    ws->tileb = malloc((size_t)CNN_TILE * (size_t)m->d * sizeof *ws->tileb);
    ws->taps = alloc_floats(2 * (size_t)CNN_TILE * (size_t)m->kernel * (size_t)m->d);
    ws->sum = malloc((size_t)m->d * sizeof *ws->sum);
    ws->pool = alloc_floats(2 * (size_t)m->d);
    if (!ws->tile || !ws->tileb || !ws->taps || !ws->sum || !ws->pool) {
        pdr_cnn_ws_free(ws);
        return pdr_fail(err, PDR_ENOMEM, "encoder workspace: out of memory");
    }
    *ret_ws = ws;
    return PDR_OK;
}

/* Make room for len rows. Grows by half again so a run of slowly growing lengths reallocates
 * O(log) times; the old contents are not kept (every embed rewrites them). */
static int ws_reserve(pdr_cnn_ws *ws, size_t len, pdr_err *err)
{
    const size_t d = (size_t)ws->m->d;
    if (len <= ws->cap)
        return PDR_OK;
    if (len > SIZE_MAX / sizeof(float) / d / 2)
        return pdr_fail(err, PDR_ELIMIT, "sequence of %zu residues is too long", len);
    size_t cap = ws->cap + ws->cap / 2;
    if (cap < len)
        cap = len;
    if (cap > SIZE_MAX / sizeof(float) / d / 2)
        cap = len;
    ws_release_rows(ws);
    ws->x = alloc_floats(cap * d);
    ws->h = alloc_floats(cap * d);
    ws->h_next = alloc_floats(cap * d);
    ws->tok = malloc(cap);
    ws->hb = malloc(cap * d * sizeof *ws->hb); /* also in float32 mode: the model may switch */
    if (!ws->x || !ws->h || !ws->h_next || !ws->tok || !ws->hb) {
        ws_release_rows(ws);
        return pdr_fail(err, PDR_ENOMEM, "out of memory for a sequence of %zu residues", len);
    }
    ws->cap = cap;
    return PDR_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Neural-net blocks */

/* model.py's tokenize, through the table built at open. */
static void tokenize(unsigned char *tok, const unsigned char *lut, const char *seq, size_t len)
{
    for (size_t i = 0; i < len; i++)
        tok[i] = lut[(unsigned char)seq[i]];
}

/* Sum of x[0..d) in CNN_LANES independent partial sums: a dependency chain the compiler can turn
 * into vector adds without reassociating (no -ffast-math needed). */
#define CNN_LANES 8
static float sum_lanes(const float *x, int d)
{
    float acc[CNN_LANES] = {0};
    int i = 0;
    for (; i + CNN_LANES <= d; i += CNN_LANES)
        for (int l = 0; l < CNN_LANES; l++)
            acc[l] += x[i + l];
    for (; i < d; i++)
        acc[0] += x[i];
    float s = 0;
    for (int l = 0; l < CNN_LANES; l++)
        s += acc[l];
    return s;
}

static float sum_sq_dev_lanes(const float *x, float mean, int d)
{
    float acc[CNN_LANES] = {0};
    int i = 0;
    for (; i + CNN_LANES <= d; i += CNN_LANES)
        for (int l = 0; l < CNN_LANES; l++)
            acc[l] += (x[i + l] - mean) * (x[i + l] - mean);
    for (; i < d; i++)
        acc[0] += (x[i] - mean) * (x[i] - mean);
    float s = 0;
    for (int l = 0; l < CNN_LANES; l++)
        s += acc[l];
    return s;
}

/* out[r] = (x[r] - mean) / sqrt(var + eps) * g + b for each of n rows (out may equal x). */
CNN_VECTOR_CLONES
static void layernorm(float *out, const float *x, size_t n, const float *g, const float *b, int d, float eps)
{
    for (size_t r = 0; r < n; r++) {
        const float *xr = x + r * (size_t)d;
        float *orow = out + r * (size_t)d;
        const float mean = sum_lanes(xr, d) / (float)d;
        const float var = sum_sq_dev_lanes(xr, mean, d) / (float)d;
        const float rstd = 1.0f / sqrtf(var + eps);
        for (int i = 0; i < d; i++)
            orow[i] = (xr[i] - mean) * rstd * g[i] + b[i];
    }
}

/* out[r - t0] = sum over taps j of h[r + (j - kernel/2) * dilation] @ conv_w[j], rows r in [t0, t1)
 * of a sequence of L rows (zero padding: taps that fall outside contribute nothing), out being
 * ws->tile. bf16 and fma products: one product per tap, each over the output rows whose input
 * row is inside, the centre tap first (it covers every row and overwrites; the others add).
 * sgemm products: one product of the tile and its halo (reach rows each side) by every tap side
 * by side, [rows, d] x [d, kernel * d], then a shifted sum of the kernel column blocks, because
 * OpenBLAS runs that wide product at about twice the rate of kernel [rows, d] x [d, d] products
 * on AVX2 CPUs (bench/README.md). There a block whose halo would exceed a tile (dilation above
 * CNN_TILE / (kernel - 1)) takes the per-tap products instead. */
CNN_VECTOR_CLONES
static void conv_taps_sum(float *out, const float *taps, size_t y0, size_t L, size_t t0, size_t t1, int dilation, int d,
                          int kernel)
{
    const size_t dz = (size_t)d, kd = (size_t)kernel * dz;
    for (size_t r = t0; r < t1; r++) {
        float *o = out + (r - t0) * dz;
        const float *c = taps + (r - y0) * kd + (size_t)(kernel / 2) * dz; /* the centre tap */
        for (int i = 0; i < d; i++)
            o[i] = c[i];
        for (int j = 0; j < kernel; j++) {
            const long long src = (long long)r + (long long)(j - kernel / 2) * dilation;
            if (j == kernel / 2 || src < 0 || src >= (long long)L)
                continue;
            const float *t = taps + ((size_t)src - y0) * kd + (size_t)j * dz;
            for (int i = 0; i < d; i++)
                o[i] += t[i];
        }
    }
}

static void conv1d(const pdr_cnn *m, pdr_cnn_ws *ws, const cnn_block *blk, const float *h, size_t L, size_t t0,
                   size_t t1)
{
    const int d = m->d, kernel = m->kernel;
    const size_t dz = (size_t)d, reach = (size_t)(kernel / 2) * (size_t)blk->dilation;
    float *out = ws->tile;
    if (m->products == PDR_CNN_SGEMM && 2 * reach <= CNN_TILE) {
        const size_t y0 = t0 > reach ? t0 - reach : 0, y1 = t1 + reach < L ? t1 + reach : L;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(y1 - y0), kernel * d, d, 1.0f, h + y0 * dz, d,
                    blk->conv_wcat, kernel * d, 0.0f, ws->taps, kernel * d);
        conv_taps_sum(out, ws->taps, y0, L, t0, t1, blk->dilation, d, kernel);
        return;
    }
    for (int step = 0; step < kernel; step++) {
        const int j = (kernel / 2 + step) % kernel;
        const long long off = (long long)(j - kernel / 2) * blk->dilation;
        long long lo = (long long)t0, hi = (long long)t1;
        if (lo + off < 0)
            lo = -off;
        if (hi + off > (long long)L)
            hi = (long long)L - off;
        if (lo >= hi)
            continue;
        const size_t rows = (size_t)(hi - lo), src = (size_t)(lo + off), dst = (size_t)(lo - (long long)t0);
        const size_t tap = (size_t)j * dz * dz;
        switch (m->products) {
        case PDR_CNN_BF16:
            pdr_bf16_gemm(rows, d, d, ws->hb + src * dz, dz, blk->conv_wp + tap, out + dst * dz, dz, step != 0);
            break;
        case PDR_CNN_FMA:
            pdr_fma_gemm(rows, d, d, h + src * dz, dz, blk->conv_wf + tap, out + dst * dz, dz, step != 0);
            break;
        case PDR_CNN_SGEMM:
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, d, d, 1.0f, h + src * dz, d,
                        blk->conv_wt + tap, d, step == 0 ? 0.0f : 1.0f, out + dst * dz, d);
            break;
        }
    }
}

/* x clamped to [-4, 4] (NaN to +-4). Done on the bits, where |x| orders like an unsigned int:
 * GCC will not vectorize a float compare-and-select under the default -ftrapping-math. */
static inline float clamp_abs4(float x)
{
    uint32_t u, mag;
    const uint32_t four = 0x40800000u; /* 4.0f */
    memcpy(&u, &x, sizeof u);
    mag = u & 0x7fffffffu;
    mag = mag > four ? four : mag;
    u = (u & 0x80000000u) | mag;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* erf(x) in float as a rational function on [-4, 4] (beyond, erf is +-1 in float), with Eigen's
 * generic_fast_erf_float coefficients: absolute error < 5e-7 against erf on a dense grid, far
 * below the 1e-4 the parity test allows. Unlike libm's erff (a tenth of the forward's time when
 * it was used here) it has no branches or calls, so the GELU loop vectorizes. */
static inline float erf_rational(float x)
{
    x = clamp_abs4(x);
    const float x2 = x * x;
    float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    p = x2 * p + -2.10102402082508e-06f;
    p = x2 * p + -5.69250639462346e-05f;
    p = x2 * p + -7.34990630326855e-04f;
    p = x2 * p + -2.95459980854025e-03f;
    p = x2 * p + -1.60960333262415e-02f;
    float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
    q = x2 * q + -1.68282697438203e-03f;
    q = x2 * q + -7.37332916720468e-03f;
    q = x2 * q + -1.42647390514189e-02f;
    return x * p / q;
}

/* x = gelu(x + b) over n rows of d: the conv bias, then the exact (erf) GELU, F.gelu's default. */
CNN_VECTOR_CLONES
static void bias_gelu(float *x, size_t n, const float *b, int d)
{
    for (size_t r = 0; r < n; r++) {
        float *xr = x + r * (size_t)d;
        for (int i = 0; i < d; i++) {
            const float v = xr[i] + b[i];
            xr[i] = 0.5f * v * (1.0f + erf_rational(v * 0.70710678118654752f));
        }
    }
}

/* x[n rows] += h @ pw_w.T + pw_b: the pointwise layer and the residual add in one product.
 * hb: a buffer of n*d bfloat16 for h (bf16 products). */
CNN_VECTOR_CLONES
static void pointwise_residual(const pdr_cnn *m, float *x, const float *h, uint16_t *hb, size_t n, const cnn_block *blk)
{
    const int d = m->d;
    for (size_t r = 0; r < n; r++)
        for (int i = 0; i < d; i++)
            x[r * (size_t)d + (size_t)i] += blk->pw_b[i];
    switch (m->products) {
    case PDR_CNN_BF16:
        pdr_bf16_from_f32(h, n * (size_t)d, hb);
        pdr_bf16_gemm(n, d, d, hb, (size_t)d, blk->pw_wp, x, (size_t)d, 1);
        break;
    case PDR_CNN_FMA: pdr_fma_gemm(n, d, d, h, (size_t)d, blk->pw_wf, x, (size_t)d, 1); break;
    case PDR_CNN_SGEMM:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, d, d, 1.0f, h, d, blk->pw_wt, d, 1.0f, x, d);
        break;
    }
}

/* pool = concat(mean over rows [r0, r1) of x, max over the same rows). */
CNN_VECTOR_CLONES
static void meanmax(float *pool, double *sum, const float *x, size_t r0, size_t r1, int d)
{
    for (int i = 0; i < d; i++) {
        sum[i] = 0;
        pool[d + i] = -INFINITY;
    }
    for (size_t r = r0; r < r1; r++) {
        const float *xr = x + r * (size_t)d;
        for (int i = 0; i < d; i++) {
            sum[i] += xr[i];
            if (xr[i] > pool[d + i])
                pool[d + i] = xr[i];
        }
    }
    for (int i = 0; i < d; i++)
        pool[i] = (float)(sum[i] / (double)(r1 - r0));
}

/* out = normalize(w @ pool + b), as F.normalize (norm floored at 1e-12); w, b: a projection. */
static void project_normalize(const pdr_cnn *m, const float *w, const float *b, const float *pool, float *out)
{
    memcpy(out, b, (size_t)m->out_dim * sizeof *out);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, m->out_dim, 2 * m->d, 1.0f, w, 2 * m->d, pool, 1, 1.0f, out, 1);
    double ss = 0;
    for (int i = 0; i < m->out_dim; i++)
        ss += (double)out[i] * out[i];
    const double norm = sqrt(ss) > 1e-12 ? sqrt(ss) : 1e-12;
    for (int i = 0; i < m->out_dim; i++)
        out[i] = (float)(out[i] / norm);
}

/* ------------------------------------------------------------------------------------------ */
/* Forward */

/* Encoder.hidden for one sequence of L tokens: leaves the final hidden states in ws->x.
 * Each block runs over tiles of rows; a tile's update of x only needs the block's layer-normed
 * input h (complete before the block starts), so the next block's h_next = layernorm(x) is made
 * tile by tile while the tile is still in cache. */
static void forward(const pdr_cnn *m, pdr_cnn_ws *ws, size_t L)
{
    const int d = m->d;
    const size_t dz = (size_t)d;
    float *x = ws->x, *h = ws->h, *h_next = ws->h_next;
    /* equal tiles (300 rows: 2 x 150, not 256 + 44), so no tile is a sliver of slow small GEMMs */
    const size_t n_tiles = (L + CNN_TILE - 1) / CNN_TILE, tile_rows = (L + n_tiles - 1) / n_tiles;

    for (size_t r = 0; r < L; r++) /* x = embed[tokens] */
        memcpy(x + r * dz, m->embed + (size_t)ws->tok[r] * dz, dz * sizeof *x);
    layernorm(h, x, L, m->blocks[0].ln_g, m->blocks[0].ln_b, d, m->ln_eps); /* h = ln(x) */

    for (int b = 0; b < m->n_blocks; b++) {
        const cnn_block *blk = &m->blocks[b];
        if (m->products == PDR_CNN_BF16) /* every tile's taps read rows of h beyond the tile */
            pdr_bf16_from_f32(h, L * dz, ws->hb);
        for (size_t t0 = 0; t0 < L; t0 += tile_rows) {
            const size_t t1 = L - t0 < tile_rows ? L : t0 + tile_rows, n = t1 - t0;
            conv1d(m, ws, blk, h, L, t0, t1);                                /* conv(h), no bias */
            bias_gelu(ws->tile, n, blk->conv_b, d);                          /* h = gelu(h + conv_b) */
            pointwise_residual(m, x + t0 * dz, ws->tile, ws->tileb, n, blk); /* x = x + pw(h) */
            if (b + 1 < m->n_blocks)                                         /* the next block's h = ln(x) */
                layernorm(h_next + t0 * dz, x + t0 * dz, n, m->blocks[b + 1].ln_g, m->blocks[b + 1].ln_b, d, m->ln_eps);
            else /* x = final_ln(x) */
                layernorm(x + t0 * dz, x + t0 * dz, n, m->final_ln_g, m->final_ln_b, d, m->ln_eps);
        }
        float *swap = h;
        h = h_next;
        h_next = swap;
    }
}

int pdr_cnn_embed(const pdr_cnn *m, pdr_cnn_ws *ws, const char *seq, size_t len, float *out, pdr_err *err)
{
    int status;
    if (!m || !ws || !seq || !out)
        return pdr_fail(err, PDR_EINPUT, "pdr_cnn_embed: NULL argument");
    if (ws->m != m)
        return pdr_fail(err, PDR_EINPUT, "pdr_cnn_embed: workspace belongs to another model");
    ws->len = 0;
    if (len == 0)
        return pdr_fail(err, PDR_EINPUT, "empty sequence");
    if ((status = ws_reserve(ws, len, err)))
        return status;

    tokenize(ws->tok, m->lut, seq, len);
    forward(m, ws, len);
    meanmax(ws->pool, ws->sum, ws->x, 0, len, m->d);
    project_normalize(m, m->proj_w, m->proj_b, ws->pool, out);
    ws->len = len;
    return PDR_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Segments */

size_t pdr_cnn_segment_count(size_t len, int window, int stride)
{
    if (len == 0 || window < 1 || stride < 1)
        return 0;
    if (len <= (size_t)window)
        return 1;
    return 1 + (len - (size_t)window + (size_t)stride - 1) / (size_t)stride;
}

int pdr_cnn_segments(const pdr_cnn *m, pdr_cnn_ws *ws, int window, int stride, size_t max_segments, size_t *ret_n,
                     int32_t *start, int32_t *end, float *out, pdr_err *err)
{
    if (!m || !ws || !ret_n || !start || !end || !out)
        return pdr_fail(err, PDR_EINPUT, "pdr_cnn_segments: NULL argument");
    *ret_n = 0;
    if (ws->m != m)
        return pdr_fail(err, PDR_EINPUT, "pdr_cnn_segments: workspace belongs to another model");
    if (window < 1 || stride < 1)
        return pdr_fail(err, PDR_EINPUT, "segment window %d and stride %d must be >= 1", window, stride);
    if (ws->len == 0)
        return pdr_fail(err, PDR_EINPUT, "pdr_cnn_segments: no sequence embedded in this workspace");
    const size_t len = ws->len;
    if (len > INT32_MAX)
        return pdr_fail(err, PDR_ELIMIT, "sequence of %zu residues is too long for segments", len);
    const size_t n = pdr_cnn_segment_count(len, window, stride);
    if (n > max_segments)
        return pdr_fail(err, PDR_ELIMIT, "a %zu-residue sequence has %zu segments (window %d, stride %d), room for %zu",
                        len, n, window, stride, max_segments);
    for (size_t s = 0; s < n; s++) {
        size_t r0 = s * (size_t)stride, r1 = r0 + (size_t)window;
        if (n == 1) {
            r0 = 0;
            r1 = len;
        } else if (s == n - 1) { /* the last window ends at the last residue */
            r0 = len - (size_t)window;
            r1 = len;
        }
        meanmax(ws->pool, ws->sum, ws->x, r0, r1, m->d);
        project_normalize(m, m->seg_proj_w, m->seg_proj_b, ws->pool, out + s * (size_t)m->out_dim);
        start[s] = (int32_t)r0;
        end[s] = (int32_t)r1;
    }
    *ret_n = n;
    return PDR_OK;
}
