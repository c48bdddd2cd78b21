// fuzz-sources: embed/pdr_cnn.c embed/pdr_bf16.c embed/pdr_fma.c embed/pdr_background.c core/pdr_err.c core/pdr_sha256.c
// fuzz-libs: -I/usr/include/hdf5/serial -I/usr/include/x86_64-linux-gnu/openblas-pthread -lhdf5_serial -lopenblas -lm
/* fuzz_model.c: libFuzzer harness for the encoder's model loader (embed/pdr_cnn.h).
 *
 * Each input becomes a file in $TMPDIR that pdr_cnn_open tries. It must either fail with a
 * format/I-O/memory status, no model and a message naming the file, or succeed with a model that
 * embeds a short sequence to a finite vector of norm 1 (or 0 when the projection is all zero) and
 * gives segment vectors. A model that opened then has its optional background sample
 * (embed/pdr_background.h) read: it must be absent, or valid and give a finite level in [-1, 1]
 * for the embedding, or fail with a message naming the file.
 *
 * Two modes:
 *  - default, "recipe": the input drives HDF5's writer to build a model file or an almost-model:
 *    small shapes (d, blocks, kernel, dilations, out_dim chosen by the input); each attribute
 *    present, missing, of the wrong class, fixed-length, an array, or with an odd value; each
 *    dataset right, missing, of the wrong shape, rank or type, holding a NaN, stored as float64
 *    or chunked and compressed, or a group; the file cut short at an input-chosen byte. This
 *    fuzzes the validation that pdr owns. An input of all zero bytes gives the canonical model,
 *    which must open.
 *  - PDR_FUZZ_MODEL_RAW=1: the input bytes are the file, as-is. This fuzzes HDF5's own parser,
 *    where HDF5 1.10.8 (Debian 12) has memory errors of its own (see fuzz_store.c), so it is for
 *    hunting by hand:
 *      PDR_FUZZ_MODEL_RAW=1 /tmp/pdr-fuzz/fuzz_model -max_len=131072 CORPUS data/test
 */
#include "pdr_background.h"
#include "pdr_cnn.h"

#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char model_path[4096];
static int raw_mode;

static void fail_if(int bad, const char *what)
{
    if (bad) {
        fprintf(stderr, "fuzz_model: %s\n", what);
        abort();
    }
}

/* ------------------------------------------------------------------------------------------ */
/* what must hold for any file                                                                */

static int open_and_use(const char *path, const uint8_t *seq_bytes, size_t seq_n)
{
    pdr_err err = {0, ""};
    pdr_cnn *m = NULL;
    int rc = pdr_cnn_open(path, &m, &err);
    if (rc != 0) {
        fail_if(m != NULL, "open failed but returned a model");
        fail_if(!err.msg[0], "open failed without a message");
        fail_if(!strstr(err.msg, path), "open failed without naming the file");
        fail_if(rc != PDR_EFORMAT && rc != PDR_EIO && rc != PDR_ENOMEM, "unexpected status");
        return rc;
    }
    const int dim = pdr_cnn_dim(m);
    fail_if(dim < 1 || pdr_cnn_params(m) == 0 || !pdr_cnn_name(m) || !pdr_cnn_version(m), "open accepted a bad shape");
    char seq[64];
    size_t len = 1 + (seq_n ? seq_bytes[0] % 63 : 5);
    for (size_t i = 0; i < len; i++)
        seq[i] = (char)(i + 1 < seq_n ? seq_bytes[i + 1] : 'A' + i % 26);
    float *out = malloc((size_t)dim * 32 * sizeof *out);
    int32_t start[32], end[32];
    pdr_cnn_ws *ws = NULL;
    if (out && pdr_cnn_ws_create(m, &ws, &err) == 0) {
        rc = pdr_cnn_embed(m, ws, seq, len, out, &err);
        fail_if(rc != 0, "embedding failed on a model that opened");
        double ss = 0;
        for (int i = 0; i < dim; i++) {
            fail_if(!isfinite(out[i]), "embedding not finite");
            ss += (double)out[i] * out[i];
        }
        fail_if(fabs(ss - 1) > 1e-4 && ss != 0, "embedding not unit length");
        size_t n = 0;
        rc = pdr_cnn_segments(m, ws, 3, 2, 32, &n, start, end, out, &err);
        fail_if(rc != 0 || n != pdr_cnn_segment_count(len, 3, 2), "segments failed");
        for (size_t s = 0; s < n; s++)
            fail_if(start[s] < 0 || end[s] > (int32_t)len || start[s] >= end[s], "bad segment");
        rc = pdr_cnn_embed(m, ws, seq, len, out, &err);
        pdr_background *bg = NULL;
        rc = pdr_background_load(path, dim, &bg, &err);
        if (rc != 0) {
            fail_if(bg != NULL, "background load failed but returned a background");
            fail_if(!strstr(err.msg, path), "background load failed without naming the file");
            fail_if(rc != PDR_EFORMAT && rc != PDR_ENOMEM, "unexpected background status");
        } else if (bg) {
            fail_if(pdr_background_dim(bg) != dim || pdr_background_count(bg) < 1, "background of a bad shape");
            float level = 2.0f;
            if (ss != 0) {
                fail_if(pdr_background_levels(bg, out, 1, &level, &err) != 0, "background levels failed");
                fail_if(!(level >= -1.0001f && level <= 1.0001f), "background level not a cosine");
            }
            pdr_background_free(bg);
        }
    }
    pdr_cnn_ws_free(ws);
    free(out);
    pdr_cnn_free(m);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* recipe mode: the input as choices                                                          */

typedef struct {
    const uint8_t *p;
    size_t n;
} recipe;

/* A structural choice in 0..n-1; 0 is the canonical model (and what an exhausted input gives). */
static unsigned pick(recipe *r, unsigned n)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++ % n;
}

static unsigned byte(recipe *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

static void put_str_attr(hid_t f, recipe *r, const char *name, const char *value)
{
    unsigned mode = pick(r, 5);
    if (mode == 1)
        return; /* missing */
    hid_t space = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1);
    if (mode == 2) { /* an integer where a string belongs */
        long long v = 7;
        hid_t a = H5Acreate2(f, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_LLONG, &v);
        H5Aclose(a);
    } else {
        const char *v = mode == 4 ? "pdr-cnn-X" : value;          /* 4: a wrong value */
        H5Tset_size(t, mode == 3 ? strlen(v) + 1 : H5T_VARIABLE); /* 3: fixed-length */
        H5Tset_cset(t, H5T_CSET_UTF8);
        hid_t a = H5Acreate2(f, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
        if (mode == 3)
            H5Awrite(a, t, v);
        else
            H5Awrite(a, t, &v);
        H5Aclose(a);
    }
    H5Tclose(t);
    H5Sclose(space);
}

static void put_int_attr(hid_t f, recipe *r, const char *name, const long long *v, hsize_t n)
{
    unsigned mode = pick(r, 6);
    if (mode == 1)
        return;
    long long vals[8];
    memcpy(vals, v, (size_t)n * sizeof *v);
    hsize_t count = n;
    if (mode == 3)
        count = n + 1; /* one value too many */
    if (mode == 4)
        vals[0] = (long long)(int8_t)byte(r) * 1000003LL; /* odd value */
    if (count > n)
        vals[n] = 1;
    hid_t space = count == 1 && mode != 3 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &count, NULL);
    if (mode == 2 || mode == 5) { /* a float (5) or a string (2) where an integer belongs */
        hid_t t = mode == 5 ? H5Tcopy(H5T_IEEE_F64LE) : H5Tcopy(H5T_C_S1);
        if (mode == 2)
            H5Tset_size(t, 4);
        double dv[9];
        for (hsize_t i = 0; i < count; i++)
            dv[i] = (double)vals[i];
        hid_t a = H5Acreate2(f, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
        if (mode == 5)
            H5Awrite(a, H5T_NATIVE_DOUBLE, dv);
        else
            H5Awrite(a, t, "1234567890123456789012345678901234");
        H5Aclose(a);
        H5Tclose(t);
    } else {
        hid_t a = H5Acreate2(f, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_LLONG, vals);
        H5Aclose(a);
    }
    H5Sclose(space);
}

static void put_float_attr(hid_t f, recipe *r, const char *name, double v)
{
    unsigned mode = pick(r, 4);
    if (mode == 1)
        return;
    if (mode == 2)
        v = -v;
    if (mode == 3)
        v = NAN;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
    H5Sclose(space);
}

static void put_dataset(hid_t f, recipe *r, const char *name, int rank, const hsize_t *dims_in)
{
    unsigned mode = pick(r, 9);
    if (mode == 1)
        return;      /* missing */
    if (mode == 8) { /* a group where the dataset belongs */
        hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0)
            H5Gclose(g);
        return;
    }
    hsize_t dims[4] = {1, 1, 1, 1};
    memcpy(dims, dims_in, (size_t)rank * sizeof *dims);
    if (mode == 2)
        dims[byte(r) % rank] += 1; /* wrong shape */
    if (mode == 3) {               /* wrong rank */
        dims[rank] = 1;
        rank = rank == 1 ? 2 : rank - 1;
    }
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= (size_t)dims[i];
    float *v = malloc(n * sizeof *v);
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        v[i] = ((float)byte(r) - 128.0f) / 64.0f;
    if (mode == 5)
        v[byte(r) % n] = (byte(r) & 1) ? NAN : INFINITY;
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t type = mode == 4 ? H5T_STD_I32LE : mode == 6 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (mode == 7) { /* chunked and compressed: valid, another read path in HDF5 */
        hsize_t chunk[4] = {1, 1, 1, 1};
        H5Pset_chunk(dcpl, rank, chunk);
        H5Pset_deflate(dcpl, 1);
    }
    hid_t ds = H5Dcreate2(f, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds >= 0) {
        H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        H5Dclose(ds);
    }
    H5Pclose(dcpl);
    H5Sclose(space);
    free(v);
}

/* Build the file the recipe describes at model_path. */
static void write_recipe(recipe *r)
{
    const long long d = 1 + byte(r) % 6, n_blocks = 1 + byte(r) % 3, kernel = 1 + 2 * (byte(r) % 3);
    const long long out_dim = 1 + byte(r) % 5, one = 1, vocab = 21;
    long long dil[3];
    for (int b = 0; b < 3; b++)
        dil[b] = 1 + byte(r) % 4;

    hid_t f = H5Fcreate(model_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return;
    put_str_attr(f, r, "format", "pdr-cnn");
    put_int_attr(f, r, "format_version", &one, 1);
    put_str_attr(f, r, "model_name", "fuzz");
    put_str_attr(f, r, "model_version", "0123456789ab");
    put_str_attr(f, r, "description", "built by fuzz_model");
    put_int_attr(f, r, "d", &d, 1);
    put_int_attr(f, r, "n_blocks", &n_blocks, 1);
    put_int_attr(f, r, "kernel", &kernel, 1);
    put_int_attr(f, r, "dilations", dil, (hsize_t)n_blocks);
    put_int_attr(f, r, "out_dim", &out_dim, 1);
    put_int_attr(f, r, "vocab", &vocab, 1);
    put_str_attr(f, r, "alphabet", "ACDEFGHIKLMNPQRSTVWY");
    put_float_attr(f, r, "ln_eps", 1e-5);
    put_str_attr(f, r, "pooling", "meanmax");

    const hsize_t hd = (hsize_t)d, embed[2] = {21, hd}, vec[1] = {hd};
    const hsize_t conv[3] = {hd, hd, (hsize_t)kernel}, pw[2] = {hd, hd};
    const hsize_t proj[2] = {(hsize_t)out_dim, 2 * hd}, proj_b[1] = {(hsize_t)out_dim};
    char name[64];
    H5Gclose(H5Gcreate2(f, "blocks", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    put_dataset(f, r, "embed", 2, embed);
    for (int b = 0; b < n_blocks; b++) {
        snprintf(name, sizeof name, "blocks/%d", b);
        H5Gclose(H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
#define BLOCK_DATASET(field, rank, dims) \
    do { \
        snprintf(name, sizeof name, "blocks/%d/" field, b); \
        put_dataset(f, r, name, rank, dims); \
    } while (0)
        BLOCK_DATASET("ln_g", 1, vec);
        BLOCK_DATASET("ln_b", 1, vec);
        BLOCK_DATASET("conv_w", 3, conv);
        BLOCK_DATASET("conv_b", 1, vec);
        BLOCK_DATASET("pw_w", 2, pw);
        BLOCK_DATASET("pw_b", 1, vec);
#undef BLOCK_DATASET
    }
    put_dataset(f, r, "final_ln_g", 1, vec);
    put_dataset(f, r, "final_ln_b", 1, vec);
    put_dataset(f, r, "proj_w", 2, proj);
    put_dataset(f, r, "proj_b", 1, proj_b);
    const hsize_t bg[2] = {1 + (hsize_t)(byte(r) % 5), (hsize_t)out_dim};
    put_dataset(f, r, "background", 2, bg);
    put_float_attr(f, r, "background_percentile", 98.0);
    H5Fclose(f);

    if (pick(r, 4) == 1) { /* cut the file short */
        FILE *fp = fopen(model_path, "rb+");
        if (fp) {
            fseek(fp, 0, SEEK_END);
            long size = ftell(fp);
            long keep = size > 0 ? (long)((byte(r) << 8 | byte(r)) % (unsigned long)size) : 0;
            fclose(fp);
            if (truncate(model_path, keep) != 0)
                return;
        }
    }
}

/* The loader recomputes model_version from the tensors (a hash) and refuses a mismatch: so that
 * the recipe's files get past that check to the rest of the validation, the hash it reports is
 * written into the file (a fixed-length or variable-length string, as the loader takes both). */
static void set_model_version_to_hash(const char *path)
{
    pdr_err err = {0, ""};
    pdr_cnn *m = NULL;
    if (pdr_cnn_open(path, &m, &err) == 0) {
        pdr_cnn_free(m);
        return;
    }
    static const char key[] = "the tensors hash to ";
    const char *at = strstr(err.msg, key);
    if (!at || strlen(at) < sizeof key - 1 + 12)
        return;
    char hex[13];
    memcpy(hex, at + sizeof key - 1, 12);
    hex[12] = '\0';
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0)
        return;
    if (H5Aexists(f, "model_version") > 0)
        H5Adelete(f, "model_version");
    hid_t space = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1);
    const char *v = hex;
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t a = H5Acreate2(f, "model_version", t, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
        H5Awrite(a, t, &v);
        H5Aclose(a);
    }
    H5Tclose(t);
    H5Sclose(space);
    H5Fclose(f);
}

/* ------------------------------------------------------------------------------------------ */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(model_path, sizeof model_path, "%s/fuzz_model_%d.h5", dir, (int)getpid());
    raw_mode = getenv("PDR_FUZZ_MODEL_RAW") && getenv("PDR_FUZZ_MODEL_RAW")[0] == '1';
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (raw_mode) {
        FILE *fp = fopen(model_path, "wb");
        if (!fp)
            return 0;
        int ok = fwrite(data, 1, size, fp) == size;
        if (fclose(fp) != 0 || !ok)
            return 0;
        open_and_use(model_path, data, size < 64 ? size : 64);
    } else {
        recipe r = {data, size};
        int canonical = 1;
        for (size_t i = 0; i < size && canonical; i++)
            canonical = data[i] == 0;
        write_recipe(&r);
        if (pick(&r, 8) != 7) /* mostly; else the mismatch is what is fuzzed */
            set_model_version_to_hash(model_path);
        int rc = open_and_use(model_path, r.p, r.n);
        fail_if(canonical && rc != 0, "the canonical model did not open");
    }
    unlink(model_path);
    return 0;
}
