/* pdr_kmer.h: the hashed 3-mer composition baseline encoder.
 *
 * NOT a learned model: each overlapping 3-mer of the sequence (21-letter alphabet: the 20
 * standard amino acids and X for anything else) adds +1 or -1 to one of `dim` buckets chosen by
 * a fixed hash (feature hashing), then the vector is L2-normalized. Cosine of two such vectors
 * approximates the cosine of their 3-mer count vectors. It exists as the floor that the trained
 * encoder must beat, and as a dependency-free default when no model file is present.
 * Stateless and thread-safe.
 */
#ifndef PDR_KMER_H
#define PDR_KMER_H

#include <stddef.h>

#include "pdr_err.h"

#define PDR_KMER_NAME "kmer3-hash-baseline"
#define PDR_KMER_VERSION "1"
#define PDR_KMER_DIM 256

/* Embed seq (len >= 1 residues, uppercase letters) into out[dim], L2-normalized.
 * Sequences shorter than 3 use their 1-mers. Returns PDR_EINPUT for len == 0. */
int pdr_kmer_embed(const char *seq, size_t len, int dim, float *out, pdr_err *err);

#endif
