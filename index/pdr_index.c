/* pdr_index.c: the vector index over FAISS's C API, and the exact brute-force top-k.
 *
 * FAISS does the indexing; this file adds what FAISS leaves to the caller: input checks (FAISS
 * happily indexes NaN), a deterministic result order (FAISS orders equal scores arbitrarily),
 * k capped at the count (FAISS allocates k per query), atomic saves, and errors carried as
 * pdr_err messages with FAISS's exception text. Contract: pdr_index.h.
 */
#include "pdr_index.h"

#include <cblas.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/clone_index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faiss/c_api/utils/distances_c.h>

#if defined(__SANITIZE_ADDRESS__)
#define PDR_HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PDR_HAVE_LSAN 1
#endif
#endif
#ifdef PDR_HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define SPEC_DEFAULT "Flat"
#define PAD_SCORE (-FLT_MAX) /* what FAISS fills missing inner-product results with */

struct pdr_index {
    FaissIndex *faiss;
    int dim;
    char *spec; /* the factory string, or a description of a loaded index */
};

/* ---------------------------------------------------------------------------------------------
 * Helpers
 */

/* FAISS's message for the last failed call on this thread (the C API keeps it thread-local). */
static const char *faiss_msg(void)
{
    const char *msg = faiss_get_last_error();
    return msg ? msg : "unknown FAISS error";
}

/* PDR_EINPUT naming the first non-finite component of an n x dim matrix. FAISS would index a
 * NaN without complaint and every search touching it would then return garbage. */
static int check_finite(const float *x, size_t n, int dim, const char *what, size_t first_row, pdr_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const float *v = x + i * (size_t)dim;
        for (int j = 0; j < dim; j++) {
            if (!isfinite(v[j]))
                return pdr_fail(err, PDR_EINPUT, "%s row %zu, component %d: %s value", what, first_row + i, j,
                                isnan(v[j]) ? "NaN" : "infinite");
        }
    }
    return PDR_OK;
}

/* n x dim must be addressable in floats. */
static int check_size(size_t n, int dim, const char *what, pdr_err *err)
{
    if (dim > 0 && n > SIZE_MAX / sizeof(float) / (size_t)dim)
        return pdr_fail(err, PDR_EINPUT, "%s: %zu rows x %d dims is too large", what, n, dim);
    return PDR_OK;
}

/* Result order: real rows before padding, then descending score, then ascending row. */
static int result_before(float s_a, int64_t r_a, float s_b, int64_t r_b)
{
    if (r_a < 0)
        return 0;
    if (r_b < 0)
        return 1;
    return s_a > s_b || (s_a == s_b && r_a < r_b);
}

/* Put one query's k results in the contract order. FAISS's output is already sorted by score,
 * so insertion sort only moves the few entries whose equal scores came out of order. */
static void sort_results(float *scores, int64_t *rows, int k)
{
    for (int i = 0; i < k; i++) {
        if (rows[i] < 0)
            scores[i] = PAD_SCORE;
    }
    for (int i = 1; i < k; i++) {
        float s = scores[i];
        int64_t r = rows[i];
        int j = i;
        while (j > 0 && result_before(s, r, scores[j - 1], rows[j - 1])) {
            scores[j] = scores[j - 1];
            rows[j] = rows[j - 1];
            j--;
        }
        scores[j] = s;
        rows[j] = r;
    }
}

static void pad_results(float *scores, int64_t *rows, size_t from, size_t to)
{
    for (size_t j = from; j < to; j++) {
        scores[j] = PAD_SCORE;
        rows[j] = -1;
    }
}

/* Deterministic sampling (splitmix64): the same input trains the same index on every run. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* fsync the directory holding path, so a rename into it survives a crash. */
static int fsync_parent_dir(const char *path, pdr_err *err)
{
    char *dir = strdup(path);
    if (!dir)
        return pdr_fail(err, PDR_ENOMEM, "%s: out of memory", path);
    char *slash = strrchr(dir, '/');
    const char *name = ".";
    if (slash == dir) {
        name = "/";
    } else if (slash) {
        *slash = '\0';
        name = dir;
    }
    int status = PDR_OK;
    int fd = open(name, O_RDONLY | O_DIRECTORY);
    if (fd < 0 || fsync(fd) != 0)
        status = pdr_fail(err, PDR_EIO, "%s: cannot sync directory %s: %s", path, name, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return status;
}

/* ---------------------------------------------------------------------------------------------
 * CPU features (see PDR_FAISS_AVX2 in CMakeLists.txt)
 */

const char *pdr_index_simd(void)
{
#ifdef PDR_FAISS_AVX2
    return "avx2";
#else
    return "baseline";
#endif
}

int pdr_index_check_cpu(pdr_err *err)
{
#ifdef PDR_FAISS_AVX2
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || !__builtin_cpu_supports("f16c"))
        return pdr_fail(err, PDR_EINPUT,
                        "this pdr was built with FAISS's AVX2 scalar-quantizer kernels (cmake "
                        "-DPDR_FAISS_AVX2=ON or AUTO on an AVX2 machine) but this CPU lacks AVX2, FMA or F16C: "
                        "rebuild with -DPDR_FAISS_AVX2=OFF");
#endif
    (void)err;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Building
 */

int pdr_index_create(int dim, const char *spec, pdr_index **ret_ix, pdr_err *err)
{
    pdr_index *ix = NULL;
    int status;

    if (!ret_ix)
        return pdr_fail(err, PDR_EINPUT, "pdr_index_create: ret_ix is NULL");
    *ret_ix = NULL;
    if ((status = pdr_index_check_cpu(err)) != 0)
        return status;
    if (!spec || !*spec)
        spec = SPEC_DEFAULT;
    if (dim <= 0)
        return pdr_fail(err, PDR_EINPUT, "index \"%s\": dimension %d must be positive", spec, dim);

    ix = calloc(1, sizeof *ix);
    if (!ix || !(ix->spec = strdup(spec))) {
        status = pdr_fail(err, PDR_ENOMEM, "index \"%s\": out of memory", spec);
        goto fail;
    }
    ix->dim = dim;
    if (faiss_index_factory(&ix->faiss, dim, spec, METRIC_INNER_PRODUCT) != 0) {
        ix->faiss = NULL;
        status = pdr_fail(err, PDR_EINPUT, "index spec \"%s\" (dim %d) rejected by FAISS: %s", spec, dim, faiss_msg());
        goto fail;
    }
    /* A few factory types (LSH, ...) ignore the metric; their scores would not be cosines. */
    if (faiss_Index_metric_type(ix->faiss) != METRIC_INNER_PRODUCT) {
        status = pdr_fail(err, PDR_EINPUT, "index spec \"%s\": this index type does not support inner product", spec);
        goto fail;
    }
    *ret_ix = ix;
    return PDR_OK;

fail:
    pdr_index_free(ix);
    return status;
}

int pdr_index_is_trained(const pdr_index *ix) { return ix && ix->faiss && faiss_Index_is_trained(ix->faiss); }

/* Train on n rows already checked finite and addressable. */
static int train_checked(pdr_index *ix, const float *vectors, size_t n, pdr_err *err)
{
    float *sample = NULL;
    int status;

    if (n == 0 || !vectors)
        return pdr_fail(err, PDR_EINPUT, "index \"%s\" needs training vectors, got none", ix->spec);
    const float *train = vectors;
    size_t n_train = n;
    if (n > PDR_INDEX_MAX_TRAIN) {
        /* Knuth's selection sampling: one pass, rows kept in store order, fixed seed. */
        size_t row_floats = (size_t)ix->dim;
        n_train = PDR_INDEX_MAX_TRAIN;
        sample = malloc(n_train * row_floats * sizeof *sample);
        if (!sample)
            return pdr_fail(err, PDR_ENOMEM, "index \"%s\": no memory for %zu training rows", ix->spec, n_train);
        uint64_t state = 20240611;
        size_t taken = 0;
        for (size_t i = 0; i < n && taken < n_train; i++) {
            double u = (double)(splitmix64(&state) >> 11) * 0x1.0p-53;
            if ((double)(n - i) * u < (double)(n_train - taken)) {
                memcpy(sample + taken * row_floats, vectors + i * row_floats, row_floats * sizeof *sample);
                taken++;
            }
        }
        n_train = taken; /* == PDR_INDEX_MAX_TRAIN: the algorithm always fills the sample */
        train = sample;
    }
    if (faiss_Index_train(ix->faiss, (idx_t)n_train, train) != 0) {
        status =
            pdr_fail(err, PDR_EINPUT, "training index \"%s\" on %zu rows: FAISS: %s", ix->spec, n_train, faiss_msg());
        goto done;
    }
    status = PDR_OK;
done:
    free(sample);
    return status;
}

int pdr_index_train(pdr_index *ix, const float *vectors, size_t n, pdr_err *err)
{
    int status;

    if (!ix || !ix->faiss)
        return pdr_fail(err, PDR_EINPUT, "pdr_index_train: no index");
    if (faiss_Index_is_trained(ix->faiss))
        return PDR_OK;
    if (n > 0 && vectors &&
        ((status = check_size(n, ix->dim, "training set", err)) != PDR_OK ||
         (status = check_finite(vectors, n, ix->dim, "training", 0, err)) != PDR_OK))
        return status;
    return train_checked(ix, vectors, n, err);
}

/* Add n rows already checked finite and addressable, in chunks. */
static int add_checked(pdr_index *ix, const float *vectors, size_t n, pdr_err *err)
{
    size_t count = pdr_index_count(ix);
    for (size_t off = 0; off < n; off += PDR_INDEX_ADD_CHUNK) {
        size_t chunk = n - off < PDR_INDEX_ADD_CHUNK ? n - off : PDR_INDEX_ADD_CHUNK;
        if (faiss_Index_add(ix->faiss, (idx_t)chunk, vectors + off * (size_t)ix->dim) != 0)
            return pdr_fail(err, PDR_EINTERNAL, "index \"%s\": adding rows %zu..%zu: FAISS: %s", ix->spec, count + off,
                            count + off + chunk - 1, faiss_msg());
    }
    return PDR_OK;
}

int pdr_index_add(pdr_index *ix, const float *vectors, size_t n, pdr_err *err)
{
    int status;

    if (!ix || !ix->faiss)
        return pdr_fail(err, PDR_EINPUT, "pdr_index_add: no index");
    if (n == 0)
        return PDR_OK;
    if (!vectors)
        return pdr_fail(err, PDR_EINPUT, "index \"%s\": adding %zu rows from NULL", ix->spec, n);
    if (!faiss_Index_is_trained(ix->faiss))
        return pdr_fail(err, PDR_EINPUT, "index \"%s\" is not trained: train it before adding rows", ix->spec);
    /* Checked whole before adding: a bad row must not leave half the batch in the index. */
    if ((status = check_size(n, ix->dim, "added rows", err)) != PDR_OK ||
        (status = check_finite(vectors, n, ix->dim, "index", pdr_index_count(ix), err)) != PDR_OK)
        return status;
    return add_checked(ix, vectors, n, err);
}

int pdr_index_build(const float *vectors, size_t n, int dim, const char *spec, pdr_index **ret_ix, pdr_err *err)
{
    pdr_index *ix = NULL;
    int status;

    if (!ret_ix)
        return pdr_fail(err, PDR_EINPUT, "pdr_index_build: ret_ix is NULL");
    *ret_ix = NULL;
    if (n > 0 && !vectors)
        return pdr_fail(err, PDR_EINPUT, "pdr_index_build: %zu rows from NULL", n);
    if ((status = pdr_index_create(dim, spec, &ix, err)) != PDR_OK)
        return status;
    /* One pass of checks for both training and adding (n x dim can be gigabytes). */
    if ((status = check_size(n, dim, "index rows", err)) != PDR_OK ||
        (status = check_finite(vectors, n, dim, "index", 0, err)) != PDR_OK)
        goto fail;
    if (!faiss_Index_is_trained(ix->faiss) && (status = train_checked(ix, vectors, n, err)) != PDR_OK)
        goto fail;
    if ((status = add_checked(ix, vectors, n, err)) != PDR_OK)
        goto fail;
    *ret_ix = ix;
    return PDR_OK;

fail:
    pdr_index_free(ix);
    return status;
}

/* ---------------------------------------------------------------------------------------------
 * Files
 */

int pdr_index_save(const pdr_index *ix, const char *path, pdr_err *err)
{
    char *tmp = NULL;
    FILE *f = NULL;
    int status;

    if (!ix || !ix->faiss || !path || !*path)
        return pdr_fail(err, PDR_EINPUT, "pdr_index_save: no index or no path");
    size_t len = strlen(path);
    tmp = malloc(len + sizeof ".tmp");
    if (!tmp)
        return pdr_fail(err, PDR_ENOMEM, "%s: out of memory", path);
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp", sizeof ".tmp");

    f = fopen(tmp, "wb");
    if (!f) {
        status = pdr_fail(err, PDR_EIO, "cannot create index file %s: %s", tmp, strerror(errno));
        goto fail;
    }
    /* faiss_write_index on our FILE (not the _fname variant) so that flush, fsync and close
     * errors, a full disk among them, are ours to see. */
    if (faiss_write_index(ix->faiss, f) != 0) {
        status = pdr_fail(err, PDR_EIO, "writing index to %s: FAISS: %s", tmp, faiss_msg());
        goto fail;
    }
    if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0) {
        status = pdr_fail(err, PDR_EIO, "writing index to %s: %s", tmp, strerror(errno));
        goto fail;
    }
    int rc = fclose(f);
    f = NULL;
    if (rc != 0) {
        status = pdr_fail(err, PDR_EIO, "closing index file %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        status = pdr_fail(err, PDR_EIO, "renaming %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    free(tmp);
    return fsync_parent_dir(path, err);

fail:
    if (f)
        fclose(f);
    unlink(tmp);
    free(tmp);
    return status;
}

/* A loaded file carries no factory string: describe what it holds. */
static char *describe_loaded(FaissIndex *fi)
{
    char buf[128];
    FaissIndexIVF *ivf = faiss_IndexIVF_cast(fi);
    if (ivf)
        snprintf(buf, sizeof buf, "loaded IVF, nlist=%zu", faiss_IndexIVF_nlist(ivf));
    else if (faiss_IndexFlat_cast(fi))
        snprintf(buf, sizeof buf, "loaded Flat");
    else
        snprintf(buf, sizeof buf, "loaded");
    return strdup(buf);
}

int pdr_index_load(const char *path, pdr_index **ret_ix, pdr_err *err)
{
    FILE *f = NULL;
    FaissIndex *fi = NULL;
    pdr_index *ix = NULL;
    int status;

    if (!ret_ix)
        return pdr_fail(err, PDR_EINPUT, "pdr_index_load: ret_ix is NULL");
    *ret_ix = NULL;
    if ((status = pdr_index_check_cpu(err)) != 0)
        return status;
    if (!path || !*path)
        return pdr_fail(err, PDR_EINPUT, "pdr_index_load: no path");

    f = fopen(path, "rb");
    if (!f)
        return pdr_fail(err, PDR_EIO, "cannot open index file %s: %s", path, strerror(errno));
        /* FAISS 1.7.3's reader leaks the half-built index when it throws on a corrupt file (it
     * holds raw pointers): what was read before the error, which we cannot free. Under
     * LeakSanitizer that would fail every test of a bad file, so this one call is exempt; the
     * pdr_index that owns a loaded index is allocated outside it, so a leaked index still shows. */
#ifdef PDR_HAVE_LSAN
    __lsan_disable();
#endif
    int rc = faiss_read_index(f, 0, &fi);
#ifdef PDR_HAVE_LSAN
    __lsan_enable();
#endif
    if (rc != 0) {
        fi = NULL;
        status =
            pdr_fail(err, PDR_EFORMAT, "%s: not a readable FAISS index (corrupt or truncated): %s", path, faiss_msg());
        goto fail;
    }
    /* FAISS stops reading where the index ends; anything after it means the file is not what
     * pdr_index_save wrote. */
    if (fgetc(f) != EOF) {
        status = pdr_fail(err, PDR_EFORMAT, "%s: unexpected bytes after the end of the index", path);
        goto fail;
    }
    if (ferror(f)) {
        status = pdr_fail(err, PDR_EIO, "reading index file %s: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    f = NULL;

    if (faiss_Index_metric_type(fi) != METRIC_INNER_PRODUCT) {
        status = pdr_fail(err, PDR_EFORMAT, "%s: index uses FAISS metric %d, pdr needs inner product (0)", path,
                          (int)faiss_Index_metric_type(fi));
        goto fail;
    }
    if (faiss_Index_d(fi) <= 0) {
        status = pdr_fail(err, PDR_EFORMAT, "%s: index dimension %d", path, faiss_Index_d(fi));
        goto fail;
    }
    ix = calloc(1, sizeof *ix);
    if (!ix || !(ix->spec = describe_loaded(fi))) {
        status = pdr_fail(err, PDR_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    ix->faiss = fi;
    ix->dim = faiss_Index_d(fi);
    *ret_ix = ix;
    return PDR_OK;

fail:
    if (f)
        fclose(f);
    if (ix)
        free(ix->spec);
    free(ix);
    if (fi)
        faiss_Index_free(fi);
    return status;
}

/* FAISS writes every float index as a four-letter type tag followed by the same header
 * (faiss/impl/index_write.cpp, write_index_header): int32 d, int64 ntotal, two int64
 * placeholders, a one-byte is_trained and an int32 metric type, in the machine's byte order; the
 * codes, lists or graph follow. IndexLattice ("IxLa") alone puts four int32 before its header. */
#define FAISS_HEADER_BYTES 37

int pdr_index_read_header(const char *path, size_t *ret_count, int *ret_dim, pdr_err *err)
{
    unsigned char h[FAISS_HEADER_BYTES];
    *ret_count = 0;
    *ret_dim = 0;
    if (!path || !*path)
        return pdr_fail(err, PDR_EINPUT, "pdr_index_read_header: no path");
    FILE *f = fopen(path, "rb");
    if (!f)
        return pdr_fail(err, PDR_EIO, "cannot open index file %s: %s", path, strerror(errno));
    size_t got = fread(h, 1, sizeof h, f);
    int failed = ferror(f), saved_errno = errno;
    fclose(f);
    if (failed)
        return pdr_fail(err, PDR_EIO, "reading index file %s: %s", path, strerror(saved_errno));
    if (got < sizeof h)
        return pdr_fail(err, PDR_EFORMAT, "%s: not a readable FAISS index (%zu bytes: truncated before its header)",
                        path, got);
    int tag_ok = isalnum(h[0]) && isalnum(h[1]) && isalnum(h[2]) && isalnum(h[3]);
    int32_t d, metric;
    int64_t ntotal;
    memcpy(&d, h + 4, sizeof d);
    memcpy(&ntotal, h + 8, sizeof ntotal);
    memcpy(&metric, h + 33, sizeof metric);
    if (!tag_ok || memcmp(h, "IxLa", 4) == 0 || d <= 0 || ntotal < 0 || h[32] > 1)
        return pdr_fail(err, PDR_EFORMAT, "%s: not a readable FAISS index (no index header at its start)", path);
    if (metric != METRIC_INNER_PRODUCT)
        return pdr_fail(err, PDR_EFORMAT, "%s: index uses FAISS metric %d, pdr needs inner product (0)", path,
                        (int)metric);
    *ret_count = (size_t)ntotal;
    *ret_dim = d;
    return PDR_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Searching
 */

int pdr_index_nprobe_limit(const pdr_index *ix)
{
    FaissIndexIVF *ivf = ix && ix->faiss ? faiss_IndexIVF_cast(ix->faiss) : NULL;
    size_t nlist = ivf ? faiss_IndexIVF_nlist(ivf) : 0;
    return nlist > (size_t)INT_MAX ? INT_MAX : (int)nlist;
}

int pdr_index_is_graph(const pdr_index *ix)
{
    return ix && ix->faiss && !faiss_IndexIVF_cast(ix->faiss) && !faiss_IndexFlat_cast(ix->faiss);
}

int pdr_index_set_nprobe(pdr_index *ix, int nprobe, pdr_err *err)
{
    FaissParameterSpace *ps = NULL;

    if (!ix || !ix->faiss)
        return pdr_fail(err, PDR_EINPUT, "pdr_index_set_nprobe: no index");
    if (nprobe < 1)
        return pdr_fail(err, PDR_EINPUT, "index \"%s\": nprobe %d must be at least 1", ix->spec, nprobe);
    int limit = pdr_index_nprobe_limit(ix); /* an IVF visits at most all of its lists */
    if (limit > 0 && nprobe > limit)
        nprobe = limit;
    if (faiss_ParameterSpace_new(&ps) != 0)
        return pdr_fail(err, PDR_EINTERNAL, "index \"%s\": FAISS: %s", ix->spec, faiss_msg());
    /* ParameterSpace finds the IVF or HNSW part inside wrappers (PCA, refine, ID maps) and
     * throws when the index has no such parameter: then the index has no breadth to set. */
    if (faiss_ParameterSpace_set_index_parameter(ps, ix->faiss, "nprobe", nprobe) != 0)
        (void)faiss_ParameterSpace_set_index_parameter(ps, ix->faiss, "efSearch", nprobe);
    faiss_ParameterSpace_free(ps);
    return PDR_OK;
}

/* ---- IVF search with the coarse step in OpenBLAS ----
 * Debian's FAISS is built for baseline x86-64 and scores each query against the IVF centroids
 * with a scalar loop (pdr_index_search keeps FAISS per query): ~1 ms per query for 4096 x 256, a
 * quarter of a served request. For an IVF whose coarse quantizer is a flat inner-product index,
 * pdr does that step itself, one matrix-vector product per query (a product over the batch
 * would round a query's coarse scores, which SQ8 adds to its distances, by its place in the
 * batch), then the nprobe best lists per query, and hands the lists to FAISS's own scan
 * (search_preassigned). Asked for every vector (k >= ntotal: `--align all`), it probes every
 * list (pdr_index_search), where nprobe alone would return only what the probed lists hold. */

/* The IVF and its centroids (nlist x dim, row-major), or NULL when the fast path does not apply. */
static FaissIndexIVF *ivf_flat_coarse(const pdr_index *ix, const float **ret_centroids, size_t *ret_nlist)
{
    FaissIndexIVF *ivf = faiss_IndexIVF_cast(ix->faiss);
    if (!ivf)
        return NULL;
    FaissIndex *q = faiss_IndexIVF_quantizer(ivf);
    FaissIndexFlat *flat = q ? faiss_IndexFlat_cast(q) : NULL;
    if (!flat || faiss_Index_metric_type(q) != METRIC_INNER_PRODUCT || faiss_Index_d(q) != ix->dim)
        return NULL;
    float *xb = NULL;
    size_t size = 0;
    faiss_IndexFlat_xb(flat, &xb, &size);
    size_t nlist = faiss_IndexIVF_nlist(ivf);
    if (!xb || nlist == 0 || (size != nlist * (size_t)ix->dim && size != nlist))
        return NULL; /* (size is in floats or in vectors depending on the FAISS version) */
    *ret_centroids = xb;
    *ret_nlist = nlist;
    return ivf;
}

/* The nprobe largest of s[0..n) as indices, best first (insertion into a small sorted list:
 * nprobe is at most a few hundred). */
static void top_lists(const float *s, size_t n, size_t nprobe, idx_t *idx, float *val)
{
    size_t have = 0;
    for (size_t i = 0; i < n; i++) {
        if (have == nprobe && s[i] <= val[have - 1])
            continue;
        size_t j = have < nprobe ? have++ : have - 1;
        while (j > 0 && val[j - 1] < s[i]) {
            val[j] = val[j - 1];
            idx[j] = idx[j - 1];
            j--;
        }
        val[j] = s[i];
        idx[j] = (idx_t)i;
    }
    for (size_t j = have; j < nprobe; j++) {
        idx[j] = -1; /* FAISS skips these */
        val[j] = -FLT_MAX;
    }
}

static int ivf_search_preassigned(const pdr_index *ix, FaissIndexIVF *ivf, const float *centroids, size_t nlist,
                                  const float *queries, size_t nq, size_t k, float *scores, int64_t *rows, pdr_err *err)
{
    size_t nprobe = faiss_IndexIVF_nprobe(ivf);
    if (nprobe < 1)
        nprobe = 1;
    if (nprobe > nlist) /* FAISS reads min(nprobe, nlist) lists per query: lay them out so */
        nprobe = nlist;
    float *cs = malloc(nq * nlist * sizeof *cs);
    idx_t *assign = malloc(nq * nprobe * sizeof *assign);
    float *adis = malloc(nq * nprobe * sizeof *adis);
    int status = PDR_OK;
    if (!cs || !assign || !adis) {
        status = pdr_fail(err, PDR_ENOMEM, "index \"%s\": no memory for the coarse step", ix->spec);
        goto done;
    }
    size_t keep = nprobe < nlist ? nprobe : nlist;
#pragma omp parallel for schedule(static) if (nq > 64) /* makedb --expand: every protein a query */
    for (size_t q = 0; q < nq; q++) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)nlist, ix->dim, 1.0f, centroids, ix->dim,
                    queries + q * (size_t)ix->dim, 1, 0.0f, cs + q * nlist, 1);
        top_lists(cs + q * nlist, nlist, keep, assign + q * nprobe, adis + q * nprobe);
        for (size_t j = keep; j < nprobe; j++) {
            assign[q * nprobe + j] = -1;
            adis[q * nprobe + j] = -FLT_MAX;
        }
    }
    if (faiss_IndexIVF_search_preassigned(ivf, (idx_t)nq, queries, (idx_t)k, assign, adis, scores, rows, 0))
        status = pdr_fail(err, PDR_EINTERNAL, "index \"%s\": searching %zu queries (k %zu): FAISS: %s", ix->spec, nq, k,
                          faiss_msg());
done:
    free(cs);
    free(assign);
    free(adis);
    return status;
}

/* FAISS scores a flat index one query at a time below this many queries and by a matrix product
 * over the batch above it, whose rounding depends on a query's place in the batch: per query
 * always, so that a query's hits and scores (to the last bit) do not depend on the other queries
 * searched with it. A process-wide FAISS setting, set once: writing it from every search raced
 * between pdr serve's workers (ThreadSanitizer); nothing else in pdr sets it. */
static pthread_once_t per_query_once = PTHREAD_ONCE_INIT;

static void per_query_products(void) { faiss_set_distance_compute_blas_threshold(INT_MAX); }

int pdr_index_search(const pdr_index *ix, const float *queries, size_t nq, int k, float *scores, int64_t *rows,
                     pdr_err *err)
{
    float *tmp_scores = NULL;
    int64_t *tmp_rows = NULL;
    int status;

    if (!ix || !ix->faiss)
        return pdr_fail(err, PDR_EINPUT, "pdr_index_search: no index");
    if (k < 1)
        return pdr_fail(err, PDR_EINPUT, "index \"%s\": k %d must be at least 1", ix->spec, k);
    if (nq == 0)
        return PDR_OK;
    if (!queries || !scores || !rows)
        return pdr_fail(err, PDR_EINPUT, "index \"%s\": NULL queries or result arrays", ix->spec);
    if (nq > SIZE_MAX / sizeof(int64_t) / (size_t)k)
        return pdr_fail(err, PDR_EINPUT, "index \"%s\": %zu queries x k %d is too large", ix->spec, nq, k);
    if ((status = check_size(nq, ix->dim, "queries", err)) != PDR_OK ||
        (status = check_finite(queries, nq, ix->dim, "query", 0, err)) != PDR_OK)
        return status;

    pthread_once(&per_query_once, per_query_products);
    size_t count = pdr_index_count(ix);
    size_t k_out = (size_t)k;
    size_t k_eff = count < k_out ? count : k_out;
    if (k_eff == 0) {
        pad_results(scores, rows, 0, nq * k_out);
        return PDR_OK;
    }
    /* With k capped, FAISS writes nq x k_eff; spread that into the caller's nq x k after. */
    float *out_scores = scores;
    int64_t *out_rows = rows;
    if (k_eff < k_out) {
        tmp_scores = malloc(nq * k_eff * sizeof *tmp_scores);
        tmp_rows = malloc(nq * k_eff * sizeof *tmp_rows);
        if (!tmp_scores || !tmp_rows) {
            status = pdr_fail(err, PDR_ENOMEM, "index \"%s\": no memory for %zu x %zu results", ix->spec, nq, k_eff);
            goto done;
        }
        out_scores = tmp_scores;
        out_rows = tmp_rows;
    }
    const float *centroids = NULL;
    size_t nlist = 0;
    FaissIndexIVF *ivf = !getenv("PDR_FAISS_COARSE") ? ivf_flat_coarse(ix, &centroids, &nlist) : NULL;
    if (ivf && k_eff >= count) {
        /* Every vector (`--align all`): FAISS's scan reads nprobe lists per query, so a private
         * copy probes them all (the shared index's nprobe may be read by other searches). */
        FaissIndex *copy = NULL;
        FaissIndexIVF *all = NULL;
        if (faiss_clone_index(ix->faiss, &copy) != 0 || !(all = faiss_IndexIVF_cast(copy))) {
            faiss_Index_free(copy);
            status = pdr_fail(err, PDR_ENOMEM, "index \"%s\": cannot copy it to probe every list: %s", ix->spec,
                              faiss_msg());
            goto done;
        }
        faiss_IndexIVF_set_nprobe(all, nlist);
        status = ivf_search_preassigned(ix, all, centroids, nlist, queries, nq, k_eff, out_scores, out_rows, err);
        faiss_Index_free(copy);
        if (status != PDR_OK)
            goto done;
    } else if (ivf) {
        if ((status = ivf_search_preassigned(ix, ivf, centroids, nlist, queries, nq, k_eff, out_scores, out_rows,
                                             err)) != PDR_OK)
            goto done;
    } else if (faiss_Index_search(ix->faiss, (idx_t)nq, queries, (idx_t)k_eff, out_scores, out_rows)) {
        status = pdr_fail(err, PDR_EINTERNAL, "index \"%s\": searching %zu queries (k %zu): FAISS: %s", ix->spec, nq,
                          k_eff, faiss_msg());
        goto done;
    }
    /* A row outside the index is a damaged or foreign index.faiss (an IDMap's ids, say): callers
     * index arrays of count rows with these. */
    for (size_t i = 0; i < nq * k_eff; i++)
        if (out_rows[i] < -1 || out_rows[i] >= (int64_t)count) {
            status = pdr_fail(err, PDR_EFORMAT,
                              "index \"%s\": FAISS returned row %lld, outside its %zu vectors (damaged index file?)",
                              ix->spec, (long long)out_rows[i], count);
            goto done;
        }
    if (k_eff < k_out) {
        for (size_t q = 0; q < nq; q++) {
            memcpy(scores + q * k_out, tmp_scores + q * k_eff, k_eff * sizeof *scores);
            memcpy(rows + q * k_out, tmp_rows + q * k_eff, k_eff * sizeof *rows);
            pad_results(scores + q * k_out, rows + q * k_out, k_eff, k_out);
        }
    }
    for (size_t q = 0; q < nq; q++)
        sort_results(scores + q * k_out, rows + q * k_out, k);
    status = PDR_OK;
done:
    free(tmp_scores);
    free(tmp_rows);
    return status;
}

size_t pdr_index_count(const pdr_index *ix)
{
    if (!ix || !ix->faiss)
        return 0;
    idx_t n = faiss_Index_ntotal(ix->faiss);
    return n > 0 ? (size_t)n : 0;
}

int pdr_index_dim(const pdr_index *ix) { return ix ? ix->dim : 0; }

const char *pdr_index_spec(const pdr_index *ix) { return ix && ix->spec ? ix->spec : ""; }

void pdr_index_free(pdr_index *ix)
{
    if (!ix)
        return;
    if (ix->faiss)
        faiss_Index_free(ix->faiss);
    free(ix->spec);
    free(ix);
}

/* ---------------------------------------------------------------------------------------------
 * Exact top-k and recall
 */

/* Block sizes for the brute force: a QUERY_BLOCK x DB_BLOCK score tile is 1 MiB, small enough
 * to stay in cache while it is scanned, big enough for sgemm to run at full speed. */
#define QUERY_BLOCK 128
#define DB_BLOCK 2048

/* The top-k of one query is a heap whose root is its worst member ("worse": lower score, or
 * equal score and higher row), so the k-th place is decided by row as well as score. */
static int heap_worse(float s_a, int64_t r_a, float s_b, int64_t r_b) { return s_a < s_b || (s_a == s_b && r_a > r_b); }

static void heap_sift_down(float *hs, int64_t *hr, size_t size, size_t i)
{
    for (;;) {
        size_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < size && heap_worse(hs[l], hr[l], hs[worst], hr[worst]))
            worst = l;
        if (r < size && heap_worse(hs[r], hr[r], hs[worst], hr[worst]))
            worst = r;
        if (worst == i)
            return;
        float ts = hs[i];
        int64_t tr = hr[i];
        hs[i] = hs[worst];
        hr[i] = hr[worst];
        hs[worst] = ts;
        hr[worst] = tr;
        i = worst;
    }
}

static void heap_push(float *hs, int64_t *hr, size_t *size, size_t cap, float s, int64_t r)
{
    if (*size == cap) {
        if (!heap_worse(hs[0], hr[0], s, r))
            return;
        hs[0] = s;
        hr[0] = r;
        heap_sift_down(hs, hr, cap, 0);
        return;
    }
    size_t i = (*size)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_worse(s, r, hs[parent], hr[parent]))
            break;
        hs[i] = hs[parent];
        hr[i] = hr[parent];
        i = parent;
    }
    hs[i] = s;
    hr[i] = r;
}

/* Empty the heap into out[0..size), best first. */
static void heap_drain(float *hs, int64_t *hr, size_t size, float *out_s, int64_t *out_r)
{
    while (size > 0) {
        out_s[size - 1] = hs[0];
        out_r[size - 1] = hr[0];
        size--;
        hs[0] = hs[size];
        hr[0] = hr[size];
        heap_sift_down(hs, hr, size, 0);
    }
}

int pdr_topk_bruteforce(const float *db, size_t n, int dim, const float *queries, size_t nq, int k, float *scores,
                        int64_t *rows, pdr_err *err)
{
    float *tile = NULL, *heap_s = NULL;
    int64_t *heap_r = NULL;
    size_t heap_size[QUERY_BLOCK];
    int status;

    if (dim <= 0)
        return pdr_fail(err, PDR_EINPUT, "brute force: dimension %d must be positive", dim);
    if (k < 1)
        return pdr_fail(err, PDR_EINPUT, "brute force: k %d must be at least 1", k);
    if (nq == 0)
        return PDR_OK;
    if ((n > 0 && !db) || !queries || !scores || !rows)
        return pdr_fail(err, PDR_EINPUT, "brute force: NULL matrix or result arrays");
    if (nq > SIZE_MAX / sizeof(int64_t) / (size_t)k)
        return pdr_fail(err, PDR_EINPUT, "brute force: %zu queries x k %d is too large", nq, k);
    if ((status = check_size(n, dim, "database", err)) != PDR_OK ||
        (status = check_size(nq, dim, "queries", err)) != PDR_OK ||
        (status = check_finite(db, n, dim, "database", 0, err)) != PDR_OK ||
        (status = check_finite(queries, nq, dim, "query", 0, err)) != PDR_OK)
        return status;

    size_t k_out = (size_t)k;
    size_t k_eff = n < k_out ? n : k_out;
    if (k_eff == 0) {
        pad_results(scores, rows, 0, nq * k_out);
        return PDR_OK;
    }
    tile = malloc((size_t)QUERY_BLOCK * DB_BLOCK * sizeof *tile);
    heap_s = malloc(QUERY_BLOCK * k_eff * sizeof *heap_s);
    heap_r = malloc(QUERY_BLOCK * k_eff * sizeof *heap_r);
    if (!tile || !heap_s || !heap_r) {
        status = pdr_fail(err, PDR_ENOMEM, "brute force: no memory for k %zu", k_eff);
        goto done;
    }
    for (size_t q0 = 0; q0 < nq; q0 += QUERY_BLOCK) {
        size_t qn = nq - q0 < QUERY_BLOCK ? nq - q0 : QUERY_BLOCK;
        memset(heap_size, 0, sizeof heap_size);
        for (size_t d0 = 0; d0 < n; d0 += DB_BLOCK) {
            size_t dn = n - d0 < DB_BLOCK ? n - d0 : DB_BLOCK;
            /* tile[qn x dn] = Q[q0.., :] . DB[d0.., :]^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)qn, (int)dn, dim, 1.0f,
                        queries + q0 * (size_t)dim, dim, db + d0 * (size_t)dim, dim, 0.0f, tile, (int)dn);
            for (size_t i = 0; i < qn; i++) {
                const float *t = tile + i * dn;
                float *hs = heap_s + i * k_eff;
                int64_t *hr = heap_r + i * k_eff;
                for (size_t j = 0; j < dn; j++)
                    heap_push(hs, hr, &heap_size[i], k_eff, t[j], (int64_t)(d0 + j));
            }
        }
        for (size_t i = 0; i < qn; i++) {
            float *out_s = scores + (q0 + i) * k_out;
            int64_t *out_r = rows + (q0 + i) * k_out;
            heap_drain(heap_s + i * k_eff, heap_r + i * k_eff, heap_size[i], out_s, out_r);
            pad_results(out_s, out_r, heap_size[i], k_out);
        }
    }
    status = PDR_OK;
done:
    free(tile);
    free(heap_s);
    free(heap_r);
    return status;
}

static int cmp_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

double pdr_recall_at_k(const int64_t *exact_rows, const int64_t *approx_rows, size_t nq, int k)
{
    if (nq == 0 || k < 1 || !exact_rows || !approx_rows)
        return nq == 0 ? 1.0 : 0.0;
    size_t k_out = (size_t)k;
    /* Sorted copy of each approximate list for binary search; quadratic if there is no memory
     * (only slow for k in the thousands). */
    int64_t *sorted = malloc(k_out * sizeof *sorted);
    size_t found = 0, total = 0;
    for (size_t q = 0; q < nq; q++) {
        const int64_t *ex = exact_rows + q * k_out, *ap = approx_rows + q * k_out;
        if (sorted) {
            memcpy(sorted, ap, k_out * sizeof *sorted);
            qsort(sorted, k_out, sizeof *sorted, cmp_int64);
        }
        for (size_t j = 0; j < k_out; j++) {
            if (ex[j] < 0)
                continue;
            total++;
            if (sorted) {
                found += bsearch(&ex[j], sorted, k_out, sizeof *sorted, cmp_int64) != NULL;
            } else {
                for (size_t a = 0; a < k_out; a++) {
                    if (ap[a] == ex[j]) {
                        found++;
                        break;
                    }
                }
            }
        }
    }
    free(sorted);
    return total ? (double)found / (double)total : 1.0;
}
