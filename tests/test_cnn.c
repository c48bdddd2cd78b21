/* test_cnn.c: the C encoder (embed/pdr_cnn.c) against PyTorch and against bad model files.
 *
 * Golden test (after llm.c's test_gpt2.c): train/export.py wrote two random-weight models and the
 * float64 PyTorch embeddings of a fixed set of sequences (data/test/cnn_{tiny,bench}_ref.h5);
 * every C embedding must match within 1e-4 per component. Broken model files are made here with
 * the HDF5 C API in $PDR_TMP. Randomized inputs print their seed; `test_cnn -s SEED` replays.
 */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pdr_cnn.h"
#include "pdr_fma.h"
#include "pdr_sha256.h"

static const char *data_dir = "data";
static const char *tmp_dir = "/tmp";
static unsigned long seed = 12345;

static void data_path(char *buf, size_t size, const char *name) { snprintf(buf, size, "%s/test/%s", data_dir, name); }

static void tmp_path(char *buf, size_t size, const char *name) { snprintf(buf, size, "%s/test_cnn_%s", tmp_dir, name); }

/* xorshift: reproducible random sequences from the printed seed. */
static unsigned long rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static char *random_seq(size_t len)
{
    static const char aa[] = "ACDEFGHIKLMNPQRSTVWY";
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < len; i++)
        s[i] = aa[rnd() % 20];
    s[len] = '\0';
    return s;
}

static pdr_cnn *open_model(const char *name)
{
    char path[512];
    pdr_err err = {0};
    pdr_cnn *m = NULL;
    data_path(path, sizeof path, name);
    int status = pdr_cnn_open(path, &m, &err);
    CHECKF(status == PDR_OK && m, "open %s: %s", path, err.msg);
    return m;
}

/* ---- reference files ---- */

typedef struct ref {
    size_t n, dim;
    char **seqs;
    float *emb; /* [n][dim] */
    char version[64];
    size_t n_seg; /* optional segment references */
    int32_t *seg_seq, *seg_start, *seg_end;
    float *seg_emb; /* [n_seg][dim] */
    long long seg_window, seg_stride;
} ref;

static void ref_free(ref *r)
{
    if (r->seqs)
        for (size_t i = 0; i < r->n; i++)
            free(r->seqs[i]);
    free(r->seqs);
    free(r->emb);
    free(r->seg_seq);
    free(r->seg_start);
    free(r->seg_end);
    free(r->seg_emb);
    memset(r, 0, sizeof *r);
}

static int read_dims(hid_t ds, hsize_t *dims, int max_rank)
{
    hid_t sp = H5Dget_space(ds);
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (rank >= 0 && rank <= max_rank)
        H5Sget_simple_extent_dims(sp, dims, NULL);
    if (sp >= 0)
        H5Sclose(sp);
    return rank;
}

static int read_int32s(hid_t f, const char *name, size_t *n, int32_t **out)
{
    hsize_t dims[1];
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0)
        return -1;
    int ok = read_dims(ds, dims, 1) == 1 && (*out = malloc(dims[0] * sizeof **out + 1)) &&
             H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) >= 0;
    *n = (size_t)dims[0];
    H5Dclose(ds);
    return ok ? 0 : -1;
}

static int read_attr_ll(hid_t f, const char *name, long long *v)
{
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0)
        return -1;
    herr_t rc = H5Aread(a, H5T_NATIVE_LLONG, v);
    H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

static int load_ref(const char *name, ref *r)
{
    char path[512];
    hsize_t dims[2];
    int ok = 0;
    hid_t f, ds, st = H5Tcopy(H5T_C_S1);
    memset(r, 0, sizeof *r);
    data_path(path, sizeof path, name);
    H5Tset_size(st, H5T_VARIABLE);
    if ((f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        goto done;

    ds = H5Dopen2(f, "seqs", H5P_DEFAULT);
    if (ds < 0 || read_dims(ds, dims, 1) != 1)
        goto done;
    r->n = (size_t)dims[0];
    r->seqs = calloc(r->n, sizeof *r->seqs);
    if (H5Dread(ds, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->seqs) < 0)
        goto done;
    H5Dclose(ds);

    ds = H5Dopen2(f, "embeddings", H5P_DEFAULT);
    if (ds < 0 || read_dims(ds, dims, 2) != 2 || dims[0] != r->n)
        goto done;
    r->dim = (size_t)dims[1];
    r->emb = malloc(r->n * r->dim * sizeof *r->emb);
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->emb) < 0)
        goto done;
    H5Dclose(ds);

    hid_t a = H5Aopen(f, "model_version", H5P_DEFAULT), at = H5Aget_type(a);
    char *v = NULL;
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(at));
    if (H5Aread(a, mt, &v) >= 0 && v)
        snprintf(r->version, sizeof r->version, "%s", v);
    H5free_memory(v);
    H5Tclose(mt);
    H5Tclose(at);
    H5Aclose(a);

    if (H5Lexists(f, "seg_embeddings", H5P_DEFAULT) > 0) {
        size_t n1, n2, n3;
        if (read_int32s(f, "seg_seq", &n1, &r->seg_seq) || read_int32s(f, "seg_start", &n2, &r->seg_start) ||
            read_int32s(f, "seg_end", &n3, &r->seg_end) || n1 != n2 || n1 != n3)
            goto done;
        r->n_seg = n1;
        ds = H5Dopen2(f, "seg_embeddings", H5P_DEFAULT);
        r->seg_emb = malloc(r->n_seg * r->dim * sizeof *r->seg_emb);
        if (ds < 0 || H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->seg_emb) < 0)
            goto done;
        H5Dclose(ds);
        if (read_attr_ll(f, "seg_window", &r->seg_window) || read_attr_ll(f, "seg_stride", &r->seg_stride))
            goto done;
    }
    ok = 1;
done:
    H5Tclose(st);
    if (f >= 0)
        H5Fclose(f);
    CHECKF(ok, "reading reference file %s", path);
    if (!ok)
        ref_free(r);
    return ok ? 0 : -1;
}

/* max |a - b| and cosine of two vectors */
static void compare(const float *a, const float *b, size_t n, double *max_diff, double *cosine)
{
    double dot = 0, na = 0, nb = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
        if (fabs((double)a[i] - b[i]) > md)
            md = fabs((double)a[i] - b[i]);
    }
    *max_diff = md;
    *cosine = dot / (sqrt(na) * sqrt(nb) + 1e-30);
}

/* ---- parity with PyTorch ---- */

/* The float32 products (sgemm, fma) must match PyTorch within 1e-4 per component and a cosine of
 * 0.9999. bfloat16 products (pdr_bf16.h), where the CPU has them: their inputs carry 8
 * significant bits, so the bound is 5e-3 per component and the same cosine (measured on the
 * shipped model: 1.2e-3 and 0.99998). Products this CPU cannot run are skipped, saying so. */
static void parity(const char *model_name, const char *ref_name, pdr_cnn_products products)
{
    ref r;
    pdr_cnn *m = open_model(model_name);
    pdr_cnn_ws *ws = NULL;
    pdr_err err = {0};
    const char *kind = pdr_cnn_products_name(products);
    if (m && !pdr_cnn_products_supported(m, products)) {
        printf("parity %s %s: skipped, this CPU cannot run them\n", model_name, kind);
        pdr_cnn_free(m);
        return;
    }
    if (!m || load_ref(ref_name, &r)) {
        pdr_cnn_free(m);
        return;
    }
    CHECK(pdr_cnn_set_products(m, products, &err) == PDR_OK && pdr_cnn_get_products(m) == products);
    const double md_tol = products == PDR_CNN_BF16 ? 5e-3 : 1e-4, cs_tol = 0.9999;
    CHECKF(strcmp(r.version, pdr_cnn_version(m)) == 0, "ref model_version %s, model %s", r.version, pdr_cnn_version(m));
    CHECKF(r.dim == (size_t)pdr_cnn_dim(m), "ref dim %zu, model %d", r.dim, pdr_cnn_dim(m));
    CHECK(pdr_cnn_ws_create(m, &ws, &err) == PDR_OK);
    float *out = malloc(r.dim * sizeof *out);
    double worst_diff = 0, worst_cos = 1;
    for (size_t i = 0; i < r.n && r.dim == (size_t)pdr_cnn_dim(m); i++) {
        double md, cs;
        size_t len = strlen(r.seqs[i]);
        int status = pdr_cnn_embed(m, ws, r.seqs[i], len, out, &err);
        CHECKF(status == PDR_OK, "%s seq %zu: %s", model_name, i, err.msg);
        compare(out, r.emb + i * r.dim, r.dim, &md, &cs);
        CHECKF(md <= md_tol && cs >= cs_tol, "%s seq %zu (length %zu): max diff %.3g, cosine %.7f", model_name, i, len,
               md, cs);
        if (md > worst_diff)
            worst_diff = md;
        if (cs < worst_cos)
            worst_cos = cs;

        /* segment references of this sequence, if any */
        size_t n_seg = 0, cap = pdr_cnn_segment_count(len, (int)r.seg_window, (int)r.seg_stride);
        int32_t *st = NULL, *en = NULL;
        float *seg = NULL;
        int has_ref = 0;
        for (size_t s = 0; s < r.n_seg; s++)
            has_ref |= (size_t)r.seg_seq[s] == i;
        if (!has_ref)
            continue;
        st = malloc(cap * sizeof *st);
        en = malloc(cap * sizeof *en);
        seg = malloc(cap * r.dim * sizeof *seg);
        status = pdr_cnn_segments(m, ws, (int)r.seg_window, (int)r.seg_stride, cap, &n_seg, st, en, seg, &err);
        CHECKF(status == PDR_OK, "%s seq %zu segments: %s", model_name, i, err.msg);
        size_t k = 0;
        for (size_t s = 0; s < r.n_seg; s++) {
            if ((size_t)r.seg_seq[s] != i)
                continue;
            CHECKF(k < n_seg && st[k] == r.seg_start[s] && en[k] == r.seg_end[s],
                   "%s seq %zu segment %zu: C [%d, %d), PyTorch [%d, %d)", model_name, i, k, k < n_seg ? st[k] : -1,
                   k < n_seg ? en[k] : -1, r.seg_start[s], r.seg_end[s]);
            if (k < n_seg) {
                compare(seg + k * r.dim, r.seg_emb + s * r.dim, r.dim, &md, &cs);
                CHECKF(md <= md_tol && cs >= cs_tol, "%s seq %zu segment %zu: max diff %.3g, cos %.7f", model_name, i,
                       k, md, cs);
                if (md > worst_diff)
                    worst_diff = md;
                if (cs < worst_cos)
                    worst_cos = cs;
            }
            k++;
        }
        CHECKF(k == n_seg, "%s seq %zu: %zu segments in C, %zu in the reference", model_name, i, n_seg, k);
        free(st);
        free(en);
        free(seg);
    }
    printf("parity %s %s: %zu sequences, %zu segments: max abs diff %.3g, min cosine %.8f\n", model_name, kind, r.n,
           r.n_seg, worst_diff, worst_cos);
    free(out);
    pdr_cnn_ws_free(ws);
    pdr_cnn_free(m);
    ref_free(&r);
}

/* Under valgrind (PDR_UNDER_VALGRIND, tests/valgrind_run.sh) the production-sized models are
 * left out: memcheck runs float code ~100x slower, and the tiny model goes through the same
 * code. The normal and sanitizer builds run everything. */
static int under_valgrind(void) { return getenv("PDR_UNDER_VALGRIND") != NULL; }
static const char *big_model(void) { return under_valgrind() ? "cnn_tiny.h5" : "cnn_bench.h5"; }

/* Each model under every kind of product this CPU runs (sgemm everywhere; fma on AVX2; bf16 on
 * AVX-512 BF16). */
static void parity_all(const char *model_name, const char *ref_name)
{
    parity(model_name, ref_name, PDR_CNN_SGEMM);
    parity(model_name, ref_name, PDR_CNN_FMA);
    parity(model_name, ref_name, PDR_CNN_BF16);
}

TEST(cnn_matches_pytorch_tiny) { parity_all("cnn_tiny.h5", "cnn_tiny_ref.h5"); }
/* a model with its own segment projection (train/seg_head.py; here random): segments use it */
TEST(cnn_matches_pytorch_with_a_segment_projection) { parity_all("cnn_tiny_seg.h5", "cnn_tiny_seg_ref.h5"); }
/* dilations 1, 100, 200 with kernel 5: the second block's sgemm convolution takes a halo of 200
 * rows each side of a tile (the 1,500-residue reference spans several tiles), the third's reach
 * of 400 rows is past the halo limit and goes through the per-tap products instead; fma and bf16
 * products take per-tap products for every block */
TEST(cnn_matches_pytorch_wide_dilations) { parity_all("cnn_tiny_dil.h5", "cnn_tiny_dil_ref.h5"); }
TEST(cnn_matches_pytorch_production_shape)
{
    if (!under_valgrind())
        parity_all("cnn_bench.h5", "cnn_bench_ref.h5");
}
/* the trained model pdr ships as its default (data/pdr_cnn_v1.h5, exported by train/train.py) */
TEST(cnn_matches_pytorch_shipped_model)
{
    if (!under_valgrind())
        parity_all("../pdr_cnn_v1.h5", "../pdr_cnn_v1_ref.h5");
}

/* The model picks its products by itself (bf16, else fma without AVX-512, else sgemm); the
 * environment overrides: PDR_CNN_FP32 rules out bf16, PDR_CNN_PRODUCTS names one, and a name that
 * is not a kind, or one this CPU cannot run, fails the open with the reason. Switching to a kind
 * the CPU cannot run is refused with the reason. */
TEST(cnn_products_default_and_switch)
{
    static const char *const vars[] = {"PDR_CNN_FP32", "PDR_CNN_PRODUCTS"};
    char *saved[2];
    for (int i = 0; i < 2; i++) { /* the caller's settings, restored at the end */
        const char *v = getenv(vars[i]);
        saved[i] = v ? strdup(v) : NULL;
        unsetenv(vars[i]);
    }
    pdr_cnn *m = open_model("cnn_tiny.h5");
    if (!m)
        return;
    pdr_err err = {0};
    const int bf16 = pdr_cnn_products_supported(m, PDR_CNN_BF16), fma = pdr_cnn_products_supported(m, PDR_CNN_FMA);
    const pdr_cnn_products want = bf16 ? PDR_CNN_BF16 : fma && !pdr_fma_cpu_has_avx512() ? PDR_CNN_FMA : PDR_CNN_SGEMM;
    CHECKF(pdr_cnn_get_products(m) == want, "default %s, expected %s", pdr_cnn_products_name(pdr_cnn_get_products(m)),
           pdr_cnn_products_name(want));
    CHECK(pdr_cnn_set_products(m, PDR_CNN_SGEMM, &err) == PDR_OK && pdr_cnn_get_products(m) == PDR_CNN_SGEMM);
    int rc = pdr_cnn_set_products(m, PDR_CNN_BF16, &err);
    if (bf16)
        CHECK(rc == PDR_OK && pdr_cnn_get_products(m) == PDR_CNN_BF16);
    else
        CHECKF(rc == PDR_EINPUT && strstr(err.msg, "BF16") && pdr_cnn_get_products(m) == PDR_CNN_SGEMM, "%d %s", rc,
               err.msg);
    rc = pdr_cnn_set_products(m, PDR_CNN_FMA, &err);
    if (fma)
        CHECK(rc == PDR_OK && pdr_cnn_get_products(m) == PDR_CNN_FMA);
    else
        CHECKF(rc == PDR_EINPUT && strstr(err.msg, "AVX2"), "%d %s", rc, err.msg);
    CHECKF(pdr_cnn_set_products(m, (pdr_cnn_products)7, &err) == PDR_EINPUT && strstr(err.msg, "unknown"), "%s",
           err.msg);
    pdr_cnn_free(m);

    setenv("PDR_CNN_FP32", "1", 1);
    m = open_model("cnn_tiny.h5");
    CHECK(m && pdr_cnn_get_products(m) != PDR_CNN_BF16);
    pdr_cnn_free(m);
    unsetenv("PDR_CNN_FP32");

    setenv("PDR_CNN_PRODUCTS", "sgemm", 1);
    m = open_model("cnn_tiny.h5");
    CHECK(m && pdr_cnn_get_products(m) == PDR_CNN_SGEMM);
    pdr_cnn_free(m);

    char path[4096];
    data_path(path, sizeof path, "cnn_tiny.h5");
    setenv("PDR_CNN_PRODUCTS", "avx9", 1);
    m = NULL;
    rc = pdr_cnn_open(path, &m, &err);
    CHECKF(rc == PDR_EINPUT && !m && strstr(err.msg, "PDR_CNN_PRODUCTS is 'avx9'") && strstr(err.msg, "cnn_tiny.h5"),
           "%d %s", rc, err.msg);
    setenv("PDR_CNN_PRODUCTS", bf16 ? "sgemm" : "bf16", 1); /* bf16 where the CPU has none */
    rc = pdr_cnn_open(path, &m, &err);
    if (bf16)
        CHECK(rc == PDR_OK && m && pdr_cnn_get_products(m) == PDR_CNN_SGEMM);
    else
        CHECKF(rc == PDR_EINPUT && !m && strstr(err.msg, "BF16"), "%d %s", rc, err.msg);
    pdr_cnn_free(m);

    for (int i = 0; i < 2; i++) {
        if (saved[i])
            setenv(vars[i], saved[i], 1);
        else
            unsetenv(vars[i]);
        free(saved[i]);
    }
}

TEST(cnn_reports_its_shape)
{
    pdr_cnn *m = open_model("cnn_tiny.h5");
    if (!m)
        return;
    /* Encoder.n_params() and flops_per_residue() as export.py printed them */
    CHECKF(pdr_cnn_params(m) == 20592, "params %zu", pdr_cnn_params(m));
    CHECKF(pdr_cnn_flops_per_residue(m) == 36864.0, "flops %g", pdr_cnn_flops_per_residue(m));
    CHECK(pdr_cnn_dim(m) == 16);
    CHECK(strcmp(pdr_cnn_name(m), "pdr-cnn-v1") == 0);
    CHECK(strlen(pdr_cnn_version(m)) == 12);
    CHECK(strstr(pdr_cnn_description(m), "random") != NULL);
    pdr_cnn_free(m);
    m = open_model("cnn_bench.h5");
    if (!m)
        return;
    CHECKF(pdr_cnn_params(m) == 661632, "params %zu", pdr_cnn_params(m));
    CHECKF(fabs(pdr_cnn_flops_per_residue(m) - 1179648.0) < 0.5, "flops %g", pdr_cnn_flops_per_residue(m));
    pdr_cnn_free(m);
}

/* ---- determinism and workspace reuse ---- */

TEST(cnn_is_deterministic_and_ws_reuse_is_clean)
{
    pdr_cnn *m = open_model(big_model());
    pdr_cnn_ws *ws = NULL, *fresh = NULL;
    pdr_err err = {0};
    if (!m)
        return;
    const int dim = pdr_cnn_dim(m);
    float *a = malloc(dim * sizeof *a), *b = malloc(dim * sizeof *b), *c = malloc(dim * sizeof *c);
    char *long_seq = random_seq(3000), *short_seq = random_seq(37);
    CHECK(pdr_cnn_ws_create(m, &ws, &err) == PDR_OK);
    CHECK(pdr_cnn_ws_create(m, &fresh, &err) == PDR_OK);

    CHECK(pdr_cnn_embed(m, ws, short_seq, 37, a, &err) == PDR_OK);
    CHECK(pdr_cnn_embed(m, ws, short_seq, 37, b, &err) == PDR_OK);
    CHECKF(memcmp(a, b, dim * sizeof *a) == 0, "same input twice gave different bits");

    /* long then short on one workspace == short on a fresh one (no stale rows leak in) */
    CHECK(pdr_cnn_embed(m, ws, long_seq, 3000, c, &err) == PDR_OK);
    CHECK(pdr_cnn_embed(m, ws, short_seq, 37, b, &err) == PDR_OK);
    CHECK(pdr_cnn_embed(m, fresh, short_seq, 37, c, &err) == PDR_OK);
    CHECKF(memcmp(a, b, dim * sizeof *a) == 0, "short after long differs from the first short");
    CHECKF(memcmp(a, c, dim * sizeof *a) == 0, "reused workspace differs from a fresh one");

    /* a prefix of the long sequence: the rows past it must not count */
    CHECK(pdr_cnn_embed(m, ws, long_seq, 3000, c, &err) == PDR_OK);
    CHECK(pdr_cnn_embed(m, ws, long_seq, 500, b, &err) == PDR_OK);
    CHECK(pdr_cnn_embed(m, fresh, long_seq, 500, c, &err) == PDR_OK);
    CHECKF(memcmp(b, c, dim * sizeof *b) == 0, "prefix embedding depends on the previous call");

    free(a);
    free(b);
    free(c);
    free(long_seq);
    free(short_seq);
    pdr_cnn_ws_free(ws);
    pdr_cnn_ws_free(fresh);
    pdr_cnn_free(m);
}

TEST(cnn_tokenizes_like_model_py)
{
    pdr_cnn *m = open_model("cnn_tiny.h5");
    pdr_cnn_ws *ws = NULL;
    pdr_err err = {0};
    if (!m)
        return;
    float a[16], b[16];
    CHECK(pdr_cnn_ws_create(m, &ws, &err) == PDR_OK);
    CHECK(pdr_cnn_embed(m, ws, "MKVLAcdefw", 10, a, &err) == PDR_OK);
    CHECK(pdr_cnn_embed(m, ws, "MKVLACDEFW", 10, b, &err) == PDR_OK);
    CHECK(memcmp(a, b, sizeof a) == 0); /* lowercase = uppercase */
    CHECK(pdr_cnn_embed(m, ws, "MUBZOJ*-x9", 10, a, &err) == PDR_OK);
    CHECK(pdr_cnn_embed(m, ws, "MXXXXXXXXX", 10, b, &err) == PDR_OK);
    CHECK(memcmp(a, b, sizeof a) == 0); /* every non-standard byte is X */
    CHECK(pdr_cnn_embed(m, ws, "MKVLACDEFW", 10, b, &err) == PDR_OK);
    CHECK(memcmp(a, b, sizeof a) != 0);
    /* len, not a NUL, ends the sequence */
    CHECK(pdr_cnn_embed(m, ws, "MKVLACDEFWGGGG", 10, a, &err) == PDR_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(pdr_cnn_embed(m, ws, "", 0, a, &err) == PDR_EINPUT);
    /* a workspace is tied to its model */
    pdr_cnn *other = open_model("cnn_tiny.h5");
    if (other) {
        CHECK(pdr_cnn_embed(other, ws, "MKV", 3, a, &err) == PDR_EINPUT);
        CHECK(strstr(err.msg, "another model") != NULL);
    }
    pdr_cnn_free(other);
    pdr_cnn_ws_free(ws);
    pdr_cnn_free(m);
}

TEST(cnn_embeds_titin_length_to_a_unit_vector)
{
    pdr_cnn *m = open_model(big_model());
    pdr_cnn_ws *ws = NULL;
    pdr_err err = {0};
    if (!m)
        return;
    const size_t len = 35000;
    const int dim = pdr_cnn_dim(m);
    float *out = malloc(dim * sizeof *out);
    char *seq = random_seq(len);
    CHECK(pdr_cnn_ws_create(m, &ws, &err) == PDR_OK);
    int status = pdr_cnn_embed(m, ws, seq, len, out, &err);
    CHECKF(status == PDR_OK, "%s", err.msg);
    double ss = 0;
    int finite = 1;
    for (int i = 0; i < dim; i++) {
        ss += (double)out[i] * out[i];
        finite &= isfinite(out[i]) != 0;
    }
    CHECK(finite);
    CHECKF(fabs(sqrt(ss) - 1) < 1e-5, "norm %.8f", sqrt(ss));

    /* and its segments: 1 + ceil((35000 - 100) / 50) = 699, each 100 residues, last at the end */
    size_t n = pdr_cnn_segment_count(len, 100, 50), got = 0;
    CHECK(n == 1 + (len - 100 + 49) / 50 && (len != 35000 || n == 699));
    int32_t *st = malloc(n * sizeof *st), *en = malloc(n * sizeof *en);
    float *seg = malloc(n * dim * sizeof *seg);
    CHECK(pdr_cnn_segments(m, ws, 100, 50, n, &got, st, en, seg, &err) == PDR_OK);
    CHECK(got == n);
    int windows_ok = 1;
    for (size_t s = 0; s < got; s++)
        windows_ok &= en[s] - st[s] == 100 && st[s] >= 0;
    CHECK(windows_ok);
    CHECK(st[0] == 0 && en[got - 1] == (int32_t)len && st[got - 2] == (int32_t)(got - 2) * 50);
    free(st);
    free(en);
    free(seg);
    free(out);
    free(seq);
    pdr_cnn_ws_free(ws);
    pdr_cnn_free(m);
}

/* ---- segments ---- */

TEST(cnn_segment_count_follows_the_formula)
{
    CHECK(pdr_cnn_segment_count(0, 100, 50) == 0);
    CHECK(pdr_cnn_segment_count(1, 100, 50) == 1);
    CHECK(pdr_cnn_segment_count(100, 100, 50) == 1);
    CHECK(pdr_cnn_segment_count(101, 100, 50) == 2);
    CHECK(pdr_cnn_segment_count(150, 100, 50) == 2);
    CHECK(pdr_cnn_segment_count(151, 100, 50) == 3);
    CHECK(pdr_cnn_segment_count(300, 100, 50) == 5);
    CHECK(pdr_cnn_segment_count(10, 3, 1) == 8);
    CHECK(pdr_cnn_segment_count(10, 0, 1) == 0);
    CHECK(pdr_cnn_segment_count(10, 3, 0) == 0);
    CHECK(pdr_cnn_segment_count(10, -5, 2) == 0);
}

TEST(cnn_segment_of_a_short_sequence_is_the_protein_vector)
{
    pdr_cnn *m = open_model("cnn_tiny.h5");
    pdr_cnn_ws *ws = NULL;
    pdr_err err = {0};
    if (!m)
        return;
    float whole[16], seg[3 * 16];
    int32_t st[3], en[3];
    size_t n = 99;
    char *seq = random_seq(80);
    CHECK(pdr_cnn_ws_create(m, &ws, &err) == PDR_OK);
    CHECK(pdr_cnn_segments(m, ws, 100, 50, 3, &n, st, en, seg, &err) == PDR_EINPUT); /* nothing yet */
    CHECK(n == 0);
    CHECK(pdr_cnn_embed(m, ws, seq, 80, whole, &err) == PDR_OK);
    CHECK(pdr_cnn_segments(m, ws, 100, 50, 3, &n, st, en, seg, &err) == PDR_OK);
    CHECK(n == 1 && st[0] == 0 && en[0] == 80);
    CHECK(memcmp(whole, seg, sizeof whole) == 0);
    /* window 30, stride 20 over 80: [0,30) [20,50) [40,70) [50,80) needs 4 > 3 */
    CHECK(pdr_cnn_segments(m, ws, 30, 20, 3, &n, st, en, seg, &err) == PDR_ELIMIT);
    CHECK(pdr_cnn_segments(m, ws, 0, 20, 3, &n, st, en, seg, &err) == PDR_EINPUT);
    CHECK(pdr_cnn_segments(m, ws, 30, 0, 3, &n, st, en, seg, &err) == PDR_EINPUT);
    /* a window equal to the whole sequence pools the same rows as the protein vector */
    CHECK(pdr_cnn_segments(m, ws, 80, 7, 3, &n, st, en, seg, &err) == PDR_OK);
    CHECK(n == 1 && memcmp(whole, seg, sizeof whole) == 0);
    /* a failed embed forgets the last sequence */
    CHECK(pdr_cnn_embed(m, ws, seq, 0, whole, &err) == PDR_EINPUT);
    CHECK(pdr_cnn_segments(m, ws, 100, 50, 3, &n, st, en, seg, &err) == PDR_EINPUT);
    CHECK(pdr_cnn_has_segment_projection(m) == 0);
    pdr_cnn_ws_free(ws);
    pdr_cnn_free(m);
    /* with a segment projection the one window is projected by it: a different unit vector */
    m = open_model("cnn_tiny_seg.h5");
    if (m && pdr_cnn_ws_create(m, &ws, &err) == PDR_OK) {
        CHECK(pdr_cnn_has_segment_projection(m) == 1);
        CHECKF(pdr_cnn_params(m) == 21632, "params %zu (with the segment projection)", pdr_cnn_params(m));
        CHECK(pdr_cnn_embed(m, ws, seq, 80, whole, &err) == PDR_OK);
        CHECK(pdr_cnn_segments(m, ws, 100, 50, 3, &n, st, en, seg, &err) == PDR_OK);
        double dot = 0, norm = 0;
        for (int i = 0; i < 16; i++) {
            dot += (double)whole[i] * seg[i];
            norm += (double)seg[i] * seg[i];
        }
        CHECKF(n == 1 && fabs(norm - 1) < 1e-5 && dot < 0.999, "n %zu, |seg|^2 %g, cos %g", n, norm, dot);
        pdr_cnn_ws_free(ws);
    }
    pdr_cnn_free(m);
    free(seq);
}

/* ---- bad model files ---- */

static int copy_file(const char *from, const char *to, long keep_bytes /* -1: all */)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[65536];
    long done = 0;
    size_t n;
    int ok = in && out;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (keep_bytes >= 0 && done + (long)n > keep_bytes)
            n = (size_t)(keep_bytes - done);
        ok = fwrite(buf, 1, n, out) == n;
        done += (long)n;
        if (keep_bytes >= 0 && done >= keep_bytes)
            break;
    }
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        ok = 0;
    CHECKF(ok, "copying %s to %s", from, to);
    return ok ? 0 : -1;
}

/* A copy of cnn_tiny.h5 at tmp/<name>, opened read-write for the caller to break. */
/* A writable copy of data/test/`from` under `name`. */
static hid_t broken_copy_of(const char *from, const char *name, char *path, size_t size)
{
    char src[512];
    data_path(src, sizeof src, from);
    tmp_path(path, size, name);
    if (copy_file(src, path, -1))
        return -1;
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECKF(f >= 0, "reopening %s", path);
    return f;
}

static hid_t broken_copy(const char *name, char *path, size_t size)
{
    return broken_copy_of("cnn_tiny.h5", name, path, size);
}

static void set_string_attr(hid_t f, const char *name, const char *value)
{
    H5Adelete(f, name);
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5Tset_size(t, strlen(value) + 1);
    hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(a >= 0 && H5Awrite(a, t, value) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
}

static void set_int_attr(hid_t f, const char *name, const long long *v, hsize_t n)
{
    H5Adelete(f, name);
    hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
    hid_t a = H5Acreate2(f, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(a >= 0 && H5Awrite(a, H5T_NATIVE_LLONG, v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
}

static void replace_dataset(hid_t f, const char *name, int rank, const hsize_t *dims, float fill)
{
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= (size_t)dims[i];
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = 0.01f;
    v[n / 2] = fill;
    H5Ldelete(f, name, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(ds);
    H5Sclose(sp);
    free(v);
}

/* open must fail with `code` and a message naming the file and `what`. */
static void expect_rejected(const char *path, int code, const char *what)
{
    pdr_cnn *m = (pdr_cnn *)&m; /* not NULL, so we see open clear it */
    pdr_err err = {0};
    int status = pdr_cnn_open(path, &m, &err);
    CHECKF(status == code, "%s: status %d (%s), expected %d", path, status, err.msg, code);
    CHECK(m == NULL);
    CHECKF(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
    CHECKF(strstr(err.msg, what) != NULL, "message does not mention '%s': %s", what, err.msg);
    fprintf(stderr, "   rejected as expected: %s\n", err.msg);
}

/* A copy of data/test/`from` without dataset `dataset` must be rejected, naming it. */
static void expect_rejected_without(const char *from, const char *name, const char *dataset)
{
    char path[512], what[128];
    hid_t f = broken_copy_of(from, name, path, sizeof path);
    if (f < 0)
        return;
    H5Ldelete(f, dataset, H5P_DEFAULT);
    H5Fclose(f);
    snprintf(what, sizeof what, "%s missing", dataset);
    expect_rejected(path, PDR_EFORMAT, what);
}

TEST(cnn_open_rejects_bad_files)
{
    char path[512], src[512];
    hid_t f;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the test breaks files on purpose */

    tmp_path(path, sizeof path, "missing.h5");
    remove(path);
    expect_rejected(path, PDR_EIO, "cannot open");

    tmp_path(path, sizeof path, "not_hdf5.h5");
    FILE *fp = fopen(path, "w");
    CHECK(fp != NULL);
    if (fp) {
        fputs(">sp|P12345\nMKVLA\n", fp);
        fclose(fp);
    }
    expect_rejected(path, PDR_EFORMAT, "HDF5");

    data_path(src, sizeof src, "cnn_tiny.h5");
    tmp_path(path, sizeof path, "truncated.h5");
    if (copy_file(src, path, 60000) == 0)
        expect_rejected(path, PDR_EFORMAT, "truncated");
    tmp_path(path, sizeof path, "truncated_head.h5");
    if (copy_file(src, path, 1000) == 0)
        expect_rejected(path, PDR_EFORMAT, "HDF5");

    if ((f = broken_copy("wrong_format.h5", path, sizeof path)) >= 0) {
        set_string_attr(f, "format", "pdr-store");
        H5Fclose(f);
        expect_rejected(path, PDR_EFORMAT, "format");
    }
    if ((f = broken_copy("no_format.h5", path, sizeof path)) >= 0) {
        H5Adelete(f, "format");
        H5Fclose(f);
        expect_rejected(path, PDR_EFORMAT, "'format' missing");
    }
    if ((f = broken_copy("version2.h5", path, sizeof path)) >= 0) {
        long long v = 2;
        set_int_attr(f, "format_version", &v, 1);
        H5Fclose(f);
        expect_rejected(path, PDR_EFORMAT, "format_version 2");
    }
    if ((f = broken_copy("string_d.h5", path, sizeof path)) >= 0) {
        set_string_attr(f, "d", "32");
        H5Fclose(f);
        expect_rejected(path, PDR_EFORMAT, "'d'");
    }
    if ((f = broken_copy("even_kernel.h5", path, sizeof path)) >= 0) {
        long long v = 4;
        set_int_attr(f, "kernel", &v, 1);
        H5Fclose(f);
        expect_rejected(path, PDR_EFORMAT, "kernel");
    }
    if ((f = broken_copy("short_dilations.h5", path, sizeof path)) >= 0) {
        long long v[2] = {1, 2};
        set_int_attr(f, "dilations", v, 2);
        H5Fclose(f);
        expect_rejected(path, PDR_EFORMAT, "dilations");
    }
    if ((f = broken_copy("bad_conv_shape.h5", path, sizeof path)) >= 0) {
        hsize_t dims[3] = {32, 32, 3};
        replace_dataset(f, "/blocks/1/conv_w", 3, dims, 0.01f);
        H5Fclose(f);
        expect_rejected(path, PDR_EFORMAT, "/blocks/1/conv_w has shape [32, 32, 3], expected [32, 32, 5]");
    }
    expect_rejected_without("cnn_tiny.h5", "missing_final_ln.h5", "/final_ln_b");
    /* a segment projection is optional, but when present it must be whole and well formed */
    expect_rejected_without("cnn_tiny_seg.h5", "half_seg_proj.h5", "/seg_proj_b");
    expect_rejected_without("cnn_tiny_seg.h5", "half_seg_proj_w.h5", "/seg_proj_w");
    if ((f = broken_copy_of("cnn_tiny_seg.h5", "bad_seg_proj.h5", path, sizeof path)) >= 0) {
        hsize_t dims[2] = {16, 32};
        replace_dataset(f, "/seg_proj_w", 2, dims, 0.01f);
        H5Fclose(f);
        expect_rejected(path, PDR_EFORMAT, "/seg_proj_w has shape [16, 32], expected [16, 64]");
    }
    if ((f = broken_copy("nan_proj.h5", path, sizeof path)) >= 0) {
        hsize_t dims[1] = {16};
        replace_dataset(f, "/proj_b", 1, dims, NAN);
        H5Fclose(f);
        expect_rejected(path, PDR_EFORMAT, "/proj_b: value 8 is not finite");
    }
    if ((f = broken_copy("huge_d.h5", path, sizeof path)) >= 0) {
        long long v = 2048, nb = 256, k = 63;
        set_int_attr(f, "d", &v, 1);
        set_int_attr(f, "n_blocks", &nb, 1);
        long long dil[256];
        for (int i = 0; i < 256; i++)
            dil[i] = 1;
        set_int_attr(f, "kernel", &k, 1);
        set_int_attr(f, "dilations", dil, 256);
        H5Fclose(f);
        expect_rejected(path, PDR_EFORMAT, "parameters"); /* caught before allocating 270 GB */
    }
}

static void sha256_hex_of(const void *data, size_t n, char hex[65])
{
    pdr_sha256 h;
    pdr_sha256_init(&h);
    pdr_sha256_update(&h, data, n);
    pdr_sha256_final_hex(&h, hex);
}

/* FIPS 180-4 examples and NIST's one-million-'a' vector; hashlib.sha256 gives the same. */
TEST(sha256_matches_known_vectors)
{
    char hex[65];
    sha256_hex_of("", 0, hex);
    CHECKF(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0, "'' -> %s", hex);
    sha256_hex_of("abc", 3, hex);
    CHECKF(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "abc -> %s", hex);
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes: padding spills */
    sha256_hex_of(two_blocks, strlen(two_blocks), hex);
    CHECKF(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0, "448 bits -> %s", hex);
    /* a million 'a' in uneven pieces, so that updates straddle blocks */
    static char a[1000];
    memset(a, 'a', sizeof a);
    pdr_sha256 h;
    pdr_sha256_init(&h);
    for (size_t done = 0, step = 1; done < 1000000; done += step, step = step % 997 + 1)
        pdr_sha256_update(&h, a, done + step > 1000000 ? 1000000 - done : step);
    pdr_sha256_final_hex(&h, hex);
    CHECKF(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0, "1e6 x a -> %s", hex);
    /* floats as numpy's "<f4" bytes: 1.0 = 00 00 80 3f, -2.5 = 00 00 20 c0 */
    const unsigned char le[8] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0};
    const float f[2] = {1.0f, -2.5f};
    char want[65];
    sha256_hex_of(le, sizeof le, want);
    pdr_sha256_init(&h);
    pdr_sha256_update_f32le(&h, f, 2);
    pdr_sha256_final_hex(&h, hex);
    CHECKF(strcmp(hex, want) == 0, "f32le %s, bytes %s", hex, want);
}

/* Every model pdr ships or tests with carries the model_version export.py computed. */
TEST(cnn_model_version_is_the_hash_of_the_tensors)
{
    static const char *models[] = {"cnn_tiny.h5", "cnn_tiny_seg.h5", "cnn_tiny_dil.h5", "cnn_bench.h5",
                                   "../pdr_cnn_v1.h5"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        pdr_cnn *m = open_model(models[i]);
        CHECKF(m && strlen(pdr_cnn_version(m)) == 12, "%s: version %s", models[i], m ? pdr_cnn_version(m) : "-");
        pdr_cnn_free(m);
    }
}

/* A weight changed after export (a damaged file, an h5py edit) must be refused, not give other
 * embeddings under the original model_version. */
TEST(cnn_open_rejects_edited_weights)
{
    char path[512];
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* an h5py-style edit: proj_w *= 0.5, written back as valid float32 */
    hid_t f = broken_copy("halved_proj.h5", path, sizeof path);
    if (f >= 0) {
        hid_t ds = H5Dopen2(f, "/proj_w", H5P_DEFAULT);
        float w[16 * 64];
        CHECK(ds >= 0 && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w) >= 0);
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
            w[i] *= 0.5f;
        CHECK(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w) >= 0);
        H5Dclose(ds);
        H5Fclose(f);
        expect_rejected(path, PDR_EFORMAT, "its tensors do not match its model_version (damaged or edited file)");
    }
    /* damage on disk: 4 bytes flipped inside /proj_w (one weight, still finite at most places) */
    f = broken_copy("flipped_proj.h5", path, sizeof path);
    if (f >= 0) {
        hid_t ds = H5Dopen2(f, "/proj_w", H5P_DEFAULT);
        haddr_t at = ds >= 0 ? H5Dget_offset(ds) : HADDR_UNDEF;
        H5Dclose(ds);
        H5Fclose(f);
        CHECKF(at != HADDR_UNDEF, "/proj_w of %s is not contiguous", path);
        FILE *fp = fopen(path, "r+b");
        unsigned char b[4];
        /* byte 100 of the tensor: the exponent bits stay, so the value stays finite */
        CHECK(fp && fseek(fp, (long)at + 100, SEEK_SET) == 0 && fread(b, 1, 4, fp) == 4);
        if (fp) {
            b[0] ^= 0xff;
            b[1] ^= 0xff;
            b[2] ^= 0x0f;
            b[3] ^= 0x01;
            CHECK(fseek(fp, (long)at + 100, SEEK_SET) == 0 && fwrite(b, 1, 4, fp) == 4);
            fclose(fp);
        }
        expect_rejected(path, PDR_EFORMAT, "do not match its model_version");
    }
    /* a model_version edited to another value is refused the same way */
    f = broken_copy("other_version.h5", path, sizeof path);
    if (f >= 0) {
        set_string_attr(f, "model_version", "0123456789ab");
        H5Fclose(f);
        expect_rejected(path, PDR_EFORMAT, "model_version is '0123456789ab'");
    }
}

int main(int argc, char **argv)
{
    if (getenv("PDR_DATA"))
        data_dir = getenv("PDR_DATA");
    if (getenv("PDR_TMP"))
        tmp_dir = getenv("PDR_TMP");
    if (argc == 3 && strcmp(argv[1], "-s") == 0)
        seed = strtoul(argv[2], NULL, 10);
    if (seed == 0)
        seed = 1;
    printf("test_cnn: seed %lu (replay with -s %lu)\n", seed, seed);

    RUN(cnn_matches_pytorch_tiny);
    RUN(cnn_matches_pytorch_with_a_segment_projection);
    RUN(cnn_matches_pytorch_wide_dilations);
    RUN(cnn_matches_pytorch_production_shape);
    RUN(cnn_matches_pytorch_shipped_model);
    RUN(cnn_products_default_and_switch);
    RUN(cnn_reports_its_shape);
    RUN(cnn_is_deterministic_and_ws_reuse_is_clean);
    RUN(cnn_tokenizes_like_model_py);
    RUN(cnn_embeds_titin_length_to_a_unit_vector);
    RUN(cnn_segment_count_follows_the_formula);
    RUN(cnn_segment_of_a_short_sequence_is_the_protein_vector);
    RUN(cnn_open_rejects_bad_files);
    RUN(sha256_matches_known_vectors);
    RUN(cnn_model_version_is_the_hash_of_the_tensors);
    RUN(cnn_open_rejects_edited_weights);
    return CHECK_DONE();
}
