/* pdr_cnn.h: the pdr encoder in C, a dilated residual CNN that turns a protein sequence into one
 * L2-normalized vector (and, optionally, one vector per window of residues).
 *
 * The computation is train/model.py's Encoder.forward, reproduced step by step; the weights come
 * from the HDF5 file that train/export.py writes (format "pdr-cnn", format_version 1; the layout
 * is described at the top of export.py). tests/test_cnn.c checks the result against PyTorch.
 *
 * Ownership and threads:
 *   - pdr_cnn holds the weights. pdr_cnn_open creates it, pdr_cnn_free frees it. After open it
 *     is never written, so any number of threads may share one pdr_cnn.
 *   - pdr_cnn_ws is one thread's workspace (activations of the last sequence). Create one per
 *     thread; it grows to the longest sequence seen (about 3 * L * d floats, 54 MB for a 35,000
 *     residue protein at d = 128) and is reused, so embedding does not allocate per residue or,
 *     once grown, per sequence.
 *   - With sgemm products the matrix products go through OpenBLAS with whatever thread count
 *     the process set. A caller that embeds one sequence per thread should call
 *     openblas_set_num_threads(1) first, or the BLAS threads of every worker fight over the same
 *     cores. fma and bf16 products run on the calling thread only.
 *   - pdr_cnn_open does HDF5 I/O; HDF5 (Debian's threadsafe build) serializes it on one lock.
 *     Embedding does no I/O.
 *
 * Errors: functions return 0 or a pdr_status code and fill err (see pdr_err.h).
 */
#ifndef PDR_CNN_H
#define PDR_CNN_H

#include <stddef.h>
#include <stdint.h>

#include "pdr_err.h"

typedef struct pdr_cnn pdr_cnn;       /* immutable weights, shared by threads */
typedef struct pdr_cnn_ws pdr_cnn_ws; /* per-thread workspace, reused across calls */

/* Default window and stride of segment vectors, in residues. */
#define PDR_CNN_SEG_WINDOW 100
#define PDR_CNN_SEG_STRIDE 50

/* Load and validate a model file: format name and version, every attribute (types, ranges,
 * alphabet, pooling), every dataset's presence, type and shape against the attributes, that
 * every weight is finite, and that model_version is the hash of the tensors that export.py
 * defines (a damaged or edited file is refused: "its tensors do not match its model_version").
 * A missing, truncated, foreign or malformed file gives PDR_EFORMAT (or
 * PDR_EIO when it cannot be read at all) with a message naming the file and the dataset or
 * attribute at fault; *ret_model is then NULL. On success the caller owns *ret_model. */
int pdr_cnn_open(const char *path, pdr_cnn **ret_model, pdr_err *err);

/* Free a model; NULL is fine. No workspace created from it may be used afterwards. */
void pdr_cnn_free(pdr_cnn *m);

int pdr_cnn_dim(const pdr_cnn *m);                 /* out_dim: floats per embedding */
const char *pdr_cnn_name(const pdr_cnn *m);        /* model_name attribute; owned by m */
const char *pdr_cnn_version(const pdr_cnn *m);     /* model_version (12 hex); owned by m */
const char *pdr_cnn_description(const pdr_cnn *m); /* description (training recipe); owned by m */
/* Multiply-adds * 2 per residue in the blocks, the same count as Encoder.flops_per_residue(). */
double pdr_cnn_flops_per_residue(const pdr_cnn *m);
size_t pdr_cnn_params(const pdr_cnn *m); /* exported parameters, = Encoder.n_params() */

/* 1 when the model file has its own segment projection (pdr_cnn_segments). */
int pdr_cnn_has_segment_projection(const pdr_cnn *m);

/* How the dense products run (the convolutions and pointwise layers, 90% of the work):
 *   PDR_CNN_SGEMM  float32 in OpenBLAS sgemm; matches PyTorch to ~1e-6.
 *   PDR_CNN_FMA    float32 in pdr_fma.h's AVX2 kernels (weights packed once); matches PyTorch to
 *                  ~1e-6 like sgemm, 1.2x its residues/s on an AVX2 CPU without AVX-512.
 *   PDR_CNN_BF16   bfloat16 inputs and weights, float32 sums (pdr_bf16.h): about 1.7x the speed
 *                  of sgemm where the CPU has AVX-512 BF16; the embedding moves by a cosine of
 *                  about 1e-4 (test_cnn measures it; bench/README.md gives the held-out AUC in
 *                  both precisions).
 * pdr_cnn_open picks BF16 where supported, else FMA where supported and the CPU has no AVX-512
 * (there OpenBLAS's 512-bit kernels stay), else SGEMM. The environment overrides the choice:
 * PDR_CNN_PRODUCTS=sgemm|fma|bf16 asks for one (open fails if this CPU cannot run it), and
 * PDR_CNN_FP32 (set to anything but "" or "0") rules out bfloat16. pdr_cnn_set_products switches
 * afterwards; not while any thread embeds with m. Asking for one the CPU or the model's width
 * cannot run is PDR_EINPUT with the reason. */
typedef enum { PDR_CNN_SGEMM = 0, PDR_CNN_FMA = 1, PDR_CNN_BF16 = 2 } pdr_cnn_products;

/* 1 when this CPU and build can run p for this model (FMA: d % 16 == 0; BF16: d % 32 == 0). */
int pdr_cnn_products_supported(const pdr_cnn *m, pdr_cnn_products p);
pdr_cnn_products pdr_cnn_get_products(const pdr_cnn *m);
int pdr_cnn_set_products(pdr_cnn *m, pdr_cnn_products p, pdr_err *err);
/* "sgemm", "fma" or "bf16" (the PDR_CNN_PRODUCTS spelling); "?" for anything else. */
const char *pdr_cnn_products_name(pdr_cnn_products p);

/* Create a workspace for m (small; it grows on first use). The caller frees it with
 * pdr_cnn_ws_free, before freeing m. */
int pdr_cnn_ws_create(const pdr_cnn *m, pdr_cnn_ws **ret_ws, pdr_err *err);
void pdr_cnn_ws_free(pdr_cnn_ws *ws); /* NULL is fine */

/* Embed one sequence of len >= 1 residues into out[pdr_cnn_dim(m)], L2-normalized.
 * seq is not NUL-terminated necessarily; each byte maps like model.py's tokenize: the 20 standard
 * amino acids ACDEFGHIKLMNPQRSTVWY (upper or lower case) to their token, any other byte to X.
 * Fails with PDR_EINPUT for len 0 and PDR_ENOMEM if the workspace cannot grow. The workspace then
 * keeps this sequence's final hidden states for pdr_cnn_segments. */
int pdr_cnn_embed(const pdr_cnn *m, pdr_cnn_ws *ws, const char *seq, size_t len, float *out, pdr_err *err);

/* Number of segment vectors for a sequence of len residues (0 for len 0 or window/stride < 1).
 * A sequence no longer than window gives one segment, the whole protein. A longer one gives
 * windows of exactly `window` residues starting at 0, stride, 2*stride, ... and a last window
 * [len - window, len) that ends at the last residue:
 *     n = 1 + ceil((len - window) / stride). */
size_t pdr_cnn_segment_count(size_t len, int window, int stride);

/* Segment vectors of the sequence last embedded with ws: the final hidden states (after the
 * final layer norm) pooled (mean and max) over each window, projected and L2-normalized like the
 * whole-protein vector, with the model file's segment projection (/seg_proj_w, /seg_proj_b,
 * trained on windows by train/seg_head.py) when it has one, else the whole-protein projection (a
 * sequence shorter than the window then gets its embedding back).
 * Writes *ret_n = pdr_cnn_segment_count(len, window, stride) segments: start[i], end[i] (0-based,
 * half-open residue range) and out[i * dim .. +dim). out must hold max_segments * dim floats,
 * start and end max_segments entries. Fails with PDR_EINPUT if window or stride < 1 or nothing
 * was embedded with ws yet, PDR_ELIMIT if more than max_segments segments would be needed. */
int pdr_cnn_segments(const pdr_cnn *m, pdr_cnn_ws *ws, int window, int stride, size_t max_segments, size_t *ret_n,
                     int32_t *start, int32_t *end, float *out, pdr_err *err);

#endif
