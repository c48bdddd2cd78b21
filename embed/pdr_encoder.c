/* pdr_encoder.c: dispatch between the trained CNN and the kmer3 baseline. */
#include "pdr_encoder.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pdr_cnn.h"
#include "pdr_kmer.h"

#ifndef PDR_SHIPPED_MODEL
#define PDR_SHIPPED_MODEL "data/pdr_cnn_v1.h5"
#endif

struct pdr_encoder {
    pdr_cnn *cnn;           /* NULL for the baseline */
    pdr_background *bg;     /* the model file's background sample, or NULL */
    pdr_background *seg_bg; /* its background of segment windows, or NULL */
    int seg_window, seg_stride;
};

struct pdr_encoder_ws {
    pdr_cnn_ws *cnn_ws;
};

/* BINDIR/../share/pdr/pdr_cnn_v1.h5 of the running binary into buf; 0 if there is none */
static int installed_model(char *buf, size_t size)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return 0;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    char path[4096 + 64], full[PATH_MAX];
    snprintf(path, sizeof path, "%s/../share/pdr/pdr_cnn_v1.h5", exe);
    if (access(path, R_OK) != 0 || !realpath(path, full) || strlen(full) >= size)
        return 0;
    memcpy(buf, full, strlen(full) + 1);
    return 1;
}

const char *pdr_encoder_default_model(char *buf, size_t size)
{
    const char *env = getenv("PDR_MODEL");
    const char *choice = PDR_MODEL_BUILTIN_KMER;
    if (env && *env)
        choice = env;
    else if (installed_model(buf, size))
        return buf;
    else if (access(PDR_SHIPPED_MODEL, R_OK) == 0)
        choice = PDR_SHIPPED_MODEL;
    snprintf(buf, size, "%s", choice);
    return buf;
}

int pdr_encoder_open(const char *model, pdr_encoder **ret_enc, pdr_err *err)
{
    *ret_enc = NULL;
    pdr_encoder *enc = calloc(1, sizeof *enc);
    if (!enc)
        return pdr_fail(err, PDR_ENOMEM, "encoder: out of memory");
    if (model && strcmp(model, PDR_MODEL_BUILTIN_KMER) != 0) {
        int rc = pdr_cnn_open(model, &enc->cnn, err);
        if (!rc)
            rc = pdr_background_load(model, pdr_cnn_dim(enc->cnn), &enc->bg, err);
        if (!rc)
            rc = pdr_background_load_segments(model, pdr_cnn_dim(enc->cnn), &enc->seg_bg, &enc->seg_window,
                                              &enc->seg_stride, err);
        if (rc) {
            pdr_background_free(enc->bg);
            pdr_cnn_free(enc->cnn);
            free(enc);
            return rc;
        }
    }
    *ret_enc = enc;
    return PDR_OK;
}

void pdr_encoder_free(pdr_encoder *enc)
{
    if (!enc)
        return;
    pdr_cnn_free(enc->cnn);
    pdr_background_free(enc->bg);
    pdr_background_free(enc->seg_bg);
    free(enc);
}

const pdr_background *pdr_encoder_background(const pdr_encoder *enc) { return enc->bg; }

const pdr_background *pdr_encoder_segment_background(const pdr_encoder *enc, int *ret_window, int *ret_stride)
{
    if (ret_window)
        *ret_window = enc->seg_bg ? enc->seg_window : 0;
    if (ret_stride)
        *ret_stride = enc->seg_bg ? enc->seg_stride : 0;
    return enc->bg ? enc->seg_bg : NULL; /* segment scores need the whole-protein levels too */
}

const char *pdr_encoder_precision(const pdr_encoder *enc)
{
    if (!enc->cnn)
        return "";
    switch (pdr_cnn_get_products(enc->cnn)) {
    case PDR_CNN_BF16: return "bfloat16";
    case PDR_CNN_FMA: return "float32 (AVX2 FMA kernels)";
    case PDR_CNN_SGEMM: return "float32 (OpenBLAS sgemm)";
    }
    return "";
}

int pdr_encoder_dim(const pdr_encoder *enc) { return enc->cnn ? pdr_cnn_dim(enc->cnn) : PDR_KMER_DIM; }

const char *pdr_encoder_name(const pdr_encoder *enc) { return enc->cnn ? pdr_cnn_name(enc->cnn) : PDR_KMER_NAME; }

const char *pdr_encoder_version(const pdr_encoder *enc)
{
    return enc->cnn ? pdr_cnn_version(enc->cnn) : PDR_KMER_VERSION;
}

int pdr_encoder_is_learned(const pdr_encoder *enc) { return enc->cnn != NULL; }

double pdr_encoder_flops_per_residue(const pdr_encoder *enc)
{
    return enc->cnn ? pdr_cnn_flops_per_residue(enc->cnn) : 0.0;
}

int pdr_encoder_ws_create(const pdr_encoder *enc, pdr_encoder_ws **ret_ws, pdr_err *err)
{
    *ret_ws = NULL;
    pdr_encoder_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return pdr_fail(err, PDR_ENOMEM, "encoder: out of memory");
    if (enc->cnn) {
        int rc = pdr_cnn_ws_create(enc->cnn, &ws->cnn_ws, err);
        if (rc) {
            free(ws);
            return rc;
        }
    }
    *ret_ws = ws;
    return PDR_OK;
}

void pdr_encoder_ws_free(pdr_encoder_ws *ws)
{
    if (!ws)
        return;
    pdr_cnn_ws_free(ws->cnn_ws);
    free(ws);
}

int pdr_encode(const pdr_encoder *enc, pdr_encoder_ws *ws, const char *seq, size_t len, float *out, pdr_err *err)
{
    if (len == 0)
        return pdr_fail(err, PDR_EINPUT, "encoder: empty sequence");
    if (enc->cnn)
        return pdr_cnn_embed(enc->cnn, ws->cnn_ws, seq, len, out, err);
    return pdr_kmer_embed(seq, len, PDR_KMER_DIM, out, err);
}

int pdr_encoder_has_segments(const pdr_encoder *enc) { return enc->cnn != NULL; }

int pdr_encode_segments(const pdr_encoder *enc, pdr_encoder_ws *ws, int window, int stride, size_t max_segments,
                        size_t *ret_n, int32_t *start, int32_t *end, float *out, pdr_err *err)
{
    *ret_n = 0;
    if (!enc->cnn)
        return pdr_fail(err, PDR_EINPUT, "encoder %s gives no segment vectors", PDR_KMER_NAME);
    return pdr_cnn_segments(enc->cnn, ws->cnn_ws, window, stride, max_segments, ret_n, start, end, out, err);
}

size_t pdr_encoder_segment_count(size_t len, int window, int stride)
{
    return pdr_cnn_segment_count(len, window, stride);
}
