/* pdr_encoder.h: the one interface every caller uses to turn a protein into a vector.
 *
 * A model is either the trained CNN read from an HDF5 weights file (embed/pdr_cnn.h, format in
 * README.md) or the built-in hashed 3-mer baseline (embed/pdr_kmer.h), named "kmer3".
 * The pdr_encoder holds read-only weights shared by all threads; each thread that encodes needs
 * its own pdr_encoder_ws (activation buffers, grown as needed and reused).
 * Output vectors are L2-normalized, so inner product = cosine.
 */
#ifndef PDR_ENCODER_H
#define PDR_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "pdr_background.h"
#include "pdr_err.h"

typedef struct pdr_encoder pdr_encoder;
typedef struct pdr_encoder_ws pdr_encoder_ws;

#define PDR_MODEL_BUILTIN_KMER "kmer3"

/* The model used when none is named: $PDR_MODEL if set; else the trained model installed beside
 * the binary (BINDIR/../share/pdr/pdr_cnn_v1.h5, as `cmake --install` lays it out); else the
 * source tree's data/pdr_cnn_v1.h5; else the kmer3 baseline. Writes the choice into buf (size
 * bytes) and returns buf. */
const char *pdr_encoder_default_model(char *buf, size_t size);

/* Open a model: "kmer3" for the baseline, otherwise a path to a pdr-cnn HDF5 weights file.
 * *ret_enc is the caller's, freed with pdr_encoder_free. */
int pdr_encoder_open(const char *model, pdr_encoder **ret_enc, pdr_err *err);
void pdr_encoder_free(pdr_encoder *enc);

int pdr_encoder_dim(const pdr_encoder *enc);
const char *pdr_encoder_name(const pdr_encoder *enc);
const char *pdr_encoder_version(const pdr_encoder *enc);
int pdr_encoder_is_learned(const pdr_encoder *enc);
/* How a learned model's dense products run (pdr_cnn.h): "bfloat16", "float32 (AVX2 FMA kernels)"
 * or "float32 (OpenBLAS sgemm)"; "" for kmer3. */
const char *pdr_encoder_precision(const pdr_encoder *enc);
/* Multiply-adds x2 per residue (0 for the baseline, whose cost is negligible). */
double pdr_encoder_flops_per_residue(const pdr_encoder *enc);

/* The model's background sample (pdr_background.h), or NULL (kmer3, or a model file without
 * one): then scores are plain cosines. Owned by enc. */
const pdr_background *pdr_encoder_background(const pdr_encoder *enc);
/* The model's background of segment windows and the window and stride it was cut with (what
 * `pdr makedb --segments` uses), or NULL (and 0, 0) when the model has none. */
const pdr_background *pdr_encoder_segment_background(const pdr_encoder *enc, int *ret_window, int *ret_stride);

int pdr_encoder_ws_create(const pdr_encoder *enc, pdr_encoder_ws **ret_ws, pdr_err *err);
void pdr_encoder_ws_free(pdr_encoder_ws *ws);

/* Encode one sequence (uppercase letters, len >= 1) into out[dim]. Not reentrant per ws. */
int pdr_encode(const pdr_encoder *enc, pdr_encoder_ws *ws, const char *seq, size_t len, float *out, pdr_err *err);

/* Whether the model gives per-segment vectors (the CNN does, the baseline does not). */
int pdr_encoder_has_segments(const pdr_encoder *enc);
/* After pdr_encode on the same ws: segment vectors over windows of `window` residues every
 * `stride`; *ret_n segments (at most max_segments) written to start/end (0-based, half-open)
 * and out (n x dim). */
int pdr_encode_segments(const pdr_encoder *enc, pdr_encoder_ws *ws, int window, int stride, size_t max_segments,
                        size_t *ret_n, int32_t *start, int32_t *end, float *out, pdr_err *err);
size_t pdr_encoder_segment_count(size_t len, int window, int stride);

#endif
