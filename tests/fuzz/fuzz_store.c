// fuzz-sources: embed/pdr_store.c core/pdr_err.c
// fuzz-libs: -I/usr/include/hdf5/serial -lhdf5_serial
/* fuzz_store.c: libFuzzer harness for the HDF5 embedding store (embed/pdr_store.h).
 *
 * Each input becomes a file that is opened as a store and, if it opens, read in full (ids,
 * lengths, embeddings, segments) in bounded batches, so a header claiming 10^9 rows costs bounded
 * time. pdr_store_open must either succeed or fail with a status and a message.
 *
 * Two modes:
 *  - default, "recipe": the input drives HDF5's writer to build an HDF5 file that is a store or
 *    an almost-store: each attribute present, missing, of the wrong class, fixed-length, an array,
 *    or with an odd value; each dataset of the right or wrong type, rank, row count, width or
 *    layout; /segments present or not; the file cut short at an input-chosen byte. This fuzzes
 *    the validation and reading that pdr owns. When every structural choice is the canonical one
 *    (an input of all zero bytes is), the store must open and read back exactly what was written.
 *  - PDR_FUZZ_STORE_RAW=1: the input bytes are the file, as-is. This fuzzes HDF5's own parser,
 *    and HDF5 1.10.8 (Debian 12) has memory errors there that a few hundred inputs find (e.g. a
 *    memcpy overlap in H5HG_read reading a string attribute; h5py segfaults on the same file).
 *    Those are HDF5's, not fixable here, so this mode is for hunting by hand, not for CI: run
 *      PDR_FUZZ_STORE_RAW=1 /tmp/pdr-fuzz/fuzz_store -max_len=32768 CORPUS tests/fuzz/corpus_store
 *
 * Seeds (tests/fuzz/corpus_store/): stores written by pdr_store with tiny chunks (float32,
 * float16, float16 with segments) and a truncated store. In recipe mode they are just bytes. */
#include "pdr_store.h"

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BATCH_BYTES ((size_t)1 << 20)
#define MAX_BATCHES 8
#define MAX_ROWS 24
#define MAX_DIM 8

static void fail_if(int bad, const char *what)
{
    if (bad) {
        fprintf(stderr, "fuzz_store: %s\n", what);
        abort();
    }
}

/* ------------------------------------------------------------------------------------------ */
/* reading whatever opened                                                                    */

static void read_rows(pdr_store *st, size_t start, size_t n, size_t dim)
{
    pdr_err err = {0, ""};
    char **ids = calloc(n, sizeof *ids);
    int32_t *lengths = calloc(n, sizeof *lengths);
    float *emb = calloc(n * dim, sizeof *emb);
    if (!ids || !lengths || !emb)
        goto done;
    int rc = pdr_store_read_ids(st, start, n, ids, lengths, &err);
    fail_if(rc != 0 && !err.msg[0], "read_ids failed without a message");
    for (size_t i = 0; i < n; i++)
        fail_if(rc == 0 ? ids[i] == NULL : ids[i] != NULL, "read_ids: NULL id on success, or id left on failure");
    pdr_store_free_ids(ids, n);
    err.msg[0] = '\0';
    rc = pdr_store_read(st, start, n, emb, &err);
    fail_if(rc != 0 && !err.msg[0], "read failed without a message");
done:
    free(ids);
    free(lengths);
    free(emb);
}

static void read_segment_rows(pdr_store *st, size_t start, size_t m, size_t dim)
{
    pdr_err err = {0, ""};
    int64_t *protein = calloc(m, sizeof *protein);
    int32_t *s0 = calloc(m, sizeof *s0), *s1 = calloc(m, sizeof *s1);
    float *emb = calloc(m * dim, sizeof *emb);
    if (protein && s0 && s1 && emb) {
        int rc = pdr_store_read_segments(st, start, m, protein, s0, s1, emb, &err);
        fail_if(rc != 0 && !err.msg[0], "read_segments failed without a message");
    }
    free(protein);
    free(s0);
    free(s1);
    free(emb);
}

/* Up to MAX_BATCHES batches from the front and one from the back of count rows. */
static void read_bounded(pdr_store *st, size_t count, size_t dim, int segments)
{
    size_t batch = MAX_BATCH_BYTES / (dim * sizeof(float));
    if (batch == 0)
        batch = 1;
    size_t start = 0;
    for (int b = 0; b < MAX_BATCHES && start < count; b++) {
        size_t n = count - start < batch ? count - start : batch;
        (segments ? read_segment_rows : read_rows)(st, start, n, dim);
        start += n;
    }
    if (start < count) {
        size_t n = count - start < batch ? count - start : batch;
        (segments ? read_segment_rows : read_rows)(st, count - n, n, dim);
    }
}

/* Open path as a store and read all of it. Returns the open status; *ret_st stays open on
 * success for the caller's comparisons. */
static int open_and_read(const char *path, pdr_store **ret_st)
{
    pdr_err err = {0, ""};
    int rc = pdr_store_open(path, ret_st, &err);
    if (rc != 0) {
        fail_if(*ret_st != NULL, "open failed but returned a store");
        fail_if(!err.msg[0], "open failed without a message");
        fail_if(!strstr(err.msg, path), "open failed without naming the file");
        fail_if(rc != PDR_EFORMAT && rc != PDR_EIO && rc != PDR_ENOMEM && rc != PDR_EINTERNAL,
                "open failed with an unexpected status");
        return rc;
    }
    const pdr_store_meta *m = pdr_store_meta_of(*ret_st);
    fail_if(m->dim < 1 || m->dim > PDR_STORE_MAX_DIM, "open accepted a bad dim");
    fail_if(!memchr(m->model_name, '\0', sizeof m->model_name), "model_name not terminated");
    size_t dim = (size_t)m->dim;
    read_bounded(*ret_st, pdr_store_count(*ret_st), dim, 0);
    read_bounded(*ret_st, pdr_store_segment_count(*ret_st), dim, 1);
    static float one[PDR_STORE_MAX_DIM]; /* never written: the read must be refused */
    fail_if(pdr_store_read(*ret_st, pdr_store_count(*ret_st), 1, one, &err) != PDR_EINPUT,
            "read past the end succeeded");
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* recipe mode: the input as choices                                                          */

typedef struct {
    const uint8_t *p;
    size_t n;
    int varied; /* some structural choice was not the canonical one */
} recipe;

/* A structural choice in 0..n-1; 0 is the canonical store (and what an exhausted input gives). */
static unsigned pick(recipe *r, unsigned n)
{
    if (r->n == 0)
        return 0;
    unsigned v = *r->p++ % n;
    r->n--;
    if (v)
        r->varied = 1;
    return v;
}

/* Content (values, strings): any byte is fine for a valid store. */
static unsigned byte(recipe *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

static hid_t half_type(void)
{
    hid_t t = H5Tcopy(H5T_NATIVE_FLOAT);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    return t;
}

static hid_t str_type(int variable, H5T_cset_t cset, size_t fixed_size)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, variable ? H5T_VARIABLE : fixed_size);
    H5Tset_cset(t, cset);
    return t;
}

static void put_str_attr(hid_t file, recipe *r, const char *name, const char *value)
{
    unsigned mode = pick(r, 6);
    if (mode == 1)
        return; /* missing */
    hsize_t two = 2;
    hid_t space = mode == 4 ? H5Screate_simple(1, &two, NULL) : H5Screate(H5S_SCALAR);
    char longv[300];
    if (mode == 5) {
        memset(longv, 'x', sizeof longv - 1);
        longv[sizeof longv - 1] = '\0';
        value = longv;
    }
    if (mode == 2) { /* an integer where a string belongs */
        long long v[2] = {7, 7};
        hid_t a = H5Acreate2(file, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_LLONG, v);
        H5Aclose(a);
    } else if (mode == 3) { /* fixed-length, NUL-padded: readable */
        size_t len = strlen(value) + 1;
        hid_t t = str_type(0, H5T_CSET_ASCII, len);
        hid_t a = H5Acreate2(file, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, value);
        H5Aclose(a);
        H5Tclose(t);
    } else {
        const char *v[2] = {value, value};
        hid_t t = str_type(1, H5T_CSET_UTF8, 0);
        hid_t a = H5Acreate2(file, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, v);
        H5Aclose(a);
        H5Tclose(t);
    }
    H5Sclose(space);
}

static void put_int_attr(hid_t file, recipe *r, const char *name, long long value)
{
    unsigned mode = pick(r, 6);
    if (mode == 1)
        return;
    hsize_t two = 2;
    hid_t space = mode == 4 ? H5Screate_simple(1, &two, NULL) : H5Screate(H5S_SCALAR);
    if (mode == 5) { /* an odd value from the input, sign and all */
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u = (u << 8) | byte(r);
        memcpy(&value, &u, sizeof value);
    }
    if (mode == 2) {
        const char *v[2] = {"12", "12"};
        hid_t t = str_type(1, H5T_CSET_UTF8, 0);
        hid_t a = H5Acreate2(file, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, v);
        H5Aclose(a);
        H5Tclose(t);
    } else {
        long long v[2] = {value, value};
        hid_t a = H5Acreate2(file, name, mode == 3 ? H5T_STD_U8LE : H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_LLONG, v);
        H5Aclose(a);
    }
    H5Sclose(space);
}

/* What a dataset holds, as written (for the canonical case's comparison). */
typedef struct {
    size_t rows;
    float emb[MAX_ROWS * MAX_DIM]; /* float rows as pdr should read them back */
    char ids[MAX_ROWS][16];        /* NUL-terminated */
    int64_t ints[MAX_ROWS];        /* lengths, protein, start or end */
} written;

enum kind { K_EMB, K_IDS, K_INT32, K_INT64 };

/* Create dataset name with a canonical shape and type for kind, or a variation the input picks,
 * and fill it from the input. rows and cols are the canonical shape (cols: 0 for rank 1). */
static void put_dset(hid_t loc, recipe *r, const char *name, enum kind kind, int fp16, size_t rows, size_t cols,
                     written *w)
{
    if (pick(r, 8) == 1)
        return; /* missing */
    unsigned type_choice = pick(r, 6);
    unsigned rank_choice = pick(r, 8);
    unsigned rows_choice = pick(r, 8);
    unsigned layout = pick(r, 4);
    int rank = cols ? 2 : 1;
    if (rank_choice == 1)
        rank = cols ? 1 : 2;
    else if (rank_choice == 2)
        rank = 3;
    hsize_t n = rows + (rows_choice == 1) - (rows_choice == 2 && rows > 0);
    hsize_t dims[3] = {n, cols ? cols : 1, 2}, maxdims[3] = {H5S_UNLIMITED, cols ? cols : 1, 2};
    if (cols && rank_choice == 3)
        dims[1] = maxdims[1] = cols + 1; /* wider than dim */

    hid_t ftype, mtype;
    int data_kind; /* 0 floats, 1 strings, 2 integers, 3 none */
    switch (kind) {
    case K_EMB:
        ftype = fp16 ? half_type() : H5Tcopy(H5T_IEEE_F32LE);
        data_kind = 0;
        if (type_choice == 1) {
            H5Tclose(ftype);
            ftype = H5Tcopy(H5T_IEEE_F64LE);
        } else if (type_choice == 2) {
            H5Tclose(ftype);
            ftype = H5Tcopy(H5T_STD_I32LE);
        } else if (type_choice == 3) { /* the other float than dtype says */
            H5Tclose(ftype);
            ftype = fp16 ? H5Tcopy(H5T_IEEE_F32LE) : half_type();
        } else if (type_choice == 4) {
            H5Tclose(ftype);
            ftype = str_type(1, H5T_CSET_UTF8, 0);
            data_kind = 3;
        }
        break;
    case K_IDS:
        ftype = str_type(type_choice != 2, type_choice == 1 ? H5T_CSET_ASCII : H5T_CSET_UTF8, 8);
        data_kind = type_choice == 2 ? 3 : 1;
        if (type_choice == 3) {
            H5Tclose(ftype);
            ftype = H5Tcopy(H5T_STD_I32LE);
            data_kind = 2;
        }
        break;
    default:
        ftype = H5Tcopy(kind == K_INT64 ? H5T_STD_I64LE : H5T_STD_I32LE);
        data_kind = 2;
        if (type_choice == 1) {
            H5Tclose(ftype);
            ftype = H5Tcopy(kind == K_INT64 ? H5T_STD_I32LE : H5T_STD_I64LE); /* other width: fine */
        } else if (type_choice == 2) {
            H5Tclose(ftype);
            ftype = H5Tcopy(H5T_IEEE_F32LE);
            data_kind = 0;
        } else if (type_choice == 3) {
            H5Tclose(ftype);
            ftype = str_type(1, H5T_CSET_UTF8, 0);
            data_kind = 3;
        }
        break;
    }

    hid_t space = H5Screate_simple(rank, dims, layout == 1 ? NULL : maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (layout != 1) {
        hsize_t chunk[3] = {1 + byte(r) % 8, dims[1], dims[2]};
        H5Pset_chunk(dcpl, rank, chunk);
        if (layout == 2)
            H5Pset_deflate(dcpl, 1);
    }
    hid_t d = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    size_t total = (size_t)dims[0] * (rank >= 2 ? (size_t)dims[1] : 1) * (rank == 3 ? 2 : 1);
    if (d >= 0 && total > 0) {
        if (data_kind == 0) {
            /* floats from the input; the canonical half store gets halves made by pdr's own
             * conversion so that the read-back comparison is exact */
            float *f = calloc(total, sizeof *f);
            uint16_t *h = calloc(total, sizeof *h);
            for (size_t i = 0; i < total; i++) {
                uint32_t bits = 0;
                for (int b = 0; b < 4; b++)
                    bits = (bits << 8) | byte(r);
                memcpy(&f[i], &bits, sizeof bits);
                h[i] = pdr_half_from_float(f[i]);
                if (kind == K_EMB && i < MAX_ROWS * MAX_DIM)
                    w->emb[i] = fp16 ? pdr_half_to_float(h[i]) : f[i];
            }
            int as_half = kind == K_EMB && H5Tget_size(ftype) == 2;
            mtype = as_half ? half_type() : H5Tcopy(H5T_NATIVE_FLOAT);
            H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, as_half ? (void *)h : (void *)f);
            H5Tclose(mtype);
            free(f);
            free(h);
        } else if (data_kind == 1) {
            char(*s)[16] = calloc(total, sizeof *s);
            const char **ptrs = calloc(total, sizeof *ptrs);
            for (size_t i = 0; i < total; i++) {
                size_t len = byte(r) % 12;
                for (size_t j = 0; j < len; j++)
                    s[i][j] = (char)(byte(r) | 1); /* no NUL inside */
                ptrs[i] = s[i];
                if (i < MAX_ROWS)
                    memcpy(w->ids[i], s[i], sizeof s[i]);
            }
            mtype = str_type(1, H5T_CSET_UTF8, 0);
            H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs);
            H5Tclose(mtype);
            free(s);
            free(ptrs);
        } else if (data_kind == 2) {
            int64_t *v = calloc(total, sizeof *v);
            for (size_t i = 0; i < total; i++) {
                int64_t hi = byte(r);
                v[i] = (hi << 8) | byte(r);
                if (i < MAX_ROWS)
                    w->ints[i] = v[i];
            }
            H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
            free(v);
        }
    }
    w->rows = (size_t)dims[0];
    if (d >= 0)
        H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Tclose(ftype);
}

static written w_emb, w_ids, w_len, w_semb, w_prot, w_s0, w_s1;

/* Build the file at path from the recipe. Returns 0 if HDF5 wrote it. */
static int build(const char *path, recipe *r, int *ret_fp16, size_t *ret_dim)
{
    memset(&w_emb, 0, sizeof w_emb);
    w_ids = w_len = w_semb = w_prot = w_s0 = w_s1 = w_emb;
    size_t dim = 1 + byte(r) % MAX_DIM;
    size_t n = byte(r) % (MAX_ROWS + 1);
    size_t m = byte(r) % (MAX_ROWS + 1);
    int fp16 = byte(r) & 1;
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0)
        return -1;
    put_str_attr(file, r, "format", pick(r, 8) == 1 ? "pdr-stor" : PDR_STORE_FORMAT);
    unsigned fv = pick(r, 8);
    put_int_attr(file, r, "format_version", fv == 1 ? 2 : fv == 2 ? 0 : PDR_STORE_FORMAT_VERSION);
    put_str_attr(file, r, "model_name", "kmer3-β");
    put_str_attr(file, r, "model_version", "1");
    unsigned dv = pick(r, 8);
    put_int_attr(file, r, "dim", dv == 1 ? (long long)dim + 1 : dv == 2 ? 0 : dv == 3 ? 70000 : (long long)dim);
    put_int_attr(file, r, "normalized", pick(r, 8) == 1 ? 2 : byte(r) & 1);
    unsigned tv = pick(r, 8);
    put_str_attr(file, r, "dtype",
                 tv == 1   ? (fp16 ? "float32" : "float16")
                 : tv == 2 ? "float64"
                 : fp16    ? "float16"
                           : "float32");
    put_str_attr(file, r, "pdr_version", "0.1.0");
    put_str_attr(file, r, "created", "2026-01-01T00:00:00Z");

    put_dset(file, r, "embeddings", K_EMB, fp16, n, dim, &w_emb);
    put_dset(file, r, "ids", K_IDS, fp16, n, 0, &w_ids);
    put_dset(file, r, "lengths", K_INT32, fp16, n, 0, &w_len);
    if (pick(r, 4) == 0) {
        hid_t g = H5Gcreate2(file, "segments", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0) {
            put_dset(g, r, "embeddings", K_EMB, fp16, m, dim, &w_semb);
            put_dset(g, r, "protein", K_INT64, fp16, m, 0, &w_prot);
            put_dset(g, r, "start", K_INT32, fp16, m, 0, &w_s0);
            put_dset(g, r, "end", K_INT32, fp16, m, 0, &w_s1);
            H5Gclose(g);
        }
    }
    if (H5Fclose(file) < 0)
        return -1;
    if (pick(r, 8) == 1) { /* cut the file short */
        uint32_t at = 0;
        for (int i = 0; i < 3; i++)
            at = (at << 8) | byte(r);
        FILE *f = fopen(path, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            long size = ftell(f);
            fclose(f);
            if (size > 0 && truncate(path, (off_t)(at % (uint32_t)size)) != 0)
                return -1;
        }
    }
    *ret_fp16 = fp16;
    *ret_dim = dim;
    return 0;
}

/* The canonical recipe made a valid store: it must read back as written. */
static void compare(pdr_store *st, int fp16, size_t dim)
{
    pdr_err err = {0, ""};
    const pdr_store_meta *meta = pdr_store_meta_of(st);
    fail_if(meta->fp16 != fp16 || (size_t)meta->dim != dim, "meta differs from what was written");
    fail_if(strcmp(meta->model_name, "kmer3-β") != 0, "model_name differs");
    size_t n = pdr_store_count(st), m = pdr_store_segment_count(st);
    fail_if(n != w_emb.rows || m != w_semb.rows, "row counts differ from what was written");
    float emb[MAX_ROWS * MAX_DIM];
    char *ids[MAX_ROWS];
    int32_t lengths[MAX_ROWS];
    fail_if(pdr_store_read(st, 0, n, emb, &err) != 0, "canonical store: read failed");
    fail_if(memcmp(emb, w_emb.emb, n * dim * sizeof(float)) != 0, "embeddings differ");
    fail_if(pdr_store_read_ids(st, 0, n, ids, lengths, &err) != 0, "canonical store: read_ids failed");
    for (size_t i = 0; i < n; i++) {
        fail_if(strcmp(ids[i], w_ids.ids[i]) != 0, "ids differ");
        fail_if(lengths[i] != w_len.ints[i], "lengths differ");
    }
    pdr_store_free_ids(ids, n);
    int64_t prot[MAX_ROWS];
    int32_t s0[MAX_ROWS], s1[MAX_ROWS];
    fail_if(pdr_store_read_segments(st, 0, m, prot, s0, s1, emb, &err) != 0, "canonical store: read_segments failed");
    fail_if(memcmp(emb, w_semb.emb, m * dim * sizeof(float)) != 0, "segment embeddings differ");
    for (size_t i = 0; i < m; i++)
        fail_if(prot[i] != w_prot.ints[i] || s0[i] != w_s0.ints[i] || s1[i] != w_s1.ints[i], "segments differ");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    static int raw = -1;
    if (raw < 0) {
        const char *e = getenv("PDR_FUZZ_STORE_RAW");
        raw = e && *e && strcmp(e, "0") != 0;
        snprintf(path, sizeof path, "/tmp/pdr-fuzz-store-%ld.h5", (long)getpid());
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the builder's own HDF5 calls may fail: quietly */
    }
    /* a new file (new inode) each time, so HDF5 can never mistake it for an earlier one */
    unlink(path);
    pdr_store *st = NULL;
    if (raw) {
        FILE *f = fopen(path, "wb");
        if (!f)
            return 0;
        size_t wrote = fwrite(data, 1, size, f);
        if (fclose(f) == 0 && wrote == size && open_and_read(path, &st) == 0)
            pdr_store_close(st, NULL);
        unlink(path);
        return 0;
    }
    recipe r = {data, size, 0};
    int fp16 = 0;
    size_t dim = 1;
    if (build(path, &r, &fp16, &dim) == 0) {
        int rc = open_and_read(path, &st);
        fail_if(rc != 0 && !r.varied, "a canonical store did not open");
        if (rc == 0 && !r.varied)
            compare(st, fp16, dim);
        pdr_store_close(st, NULL);
    }
    unlink(path);
    return 0;
}
