/* pdr_sha256.h: SHA-256 (FIPS 180-4), small and dependency-free.
 *
 * pdr uses it to recompute a model file's model_version (train/export.py: the first 12 hex
 * digits of sha256 over the tensors' float32 little-endian bytes) when the model is opened, so
 * that a damaged or edited weight file is refused rather than silently giving other embeddings.
 * Not for secrets (no constant-time guarantees are needed or made). A pdr_sha256 is a plain
 * value: no allocation, no cleanup; one per thread.
 */
#ifndef PDR_SHA256_H
#define PDR_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct pdr_sha256 {
    uint32_t state[8];
    uint64_t n_bytes; /* message bytes so far */
    unsigned char block[64];
    size_t used; /* bytes waiting in block */
} pdr_sha256;

void pdr_sha256_init(pdr_sha256 *h);
void pdr_sha256_update(pdr_sha256 *h, const void *data, size_t n);
/* Append n floats as IEEE binary32 little-endian bytes (numpy's "<f4".tobytes()), whatever the
 * byte order of this machine. */
void pdr_sha256_update_f32le(pdr_sha256 *h, const float *x, size_t n);
/* Finish: the 32-byte digest. h must be initialized again before reuse. */
void pdr_sha256_final(pdr_sha256 *h, unsigned char digest[32]);
/* Finish and write the digest as 64 lowercase hex digits and a NUL into hex[65]. */
void pdr_sha256_final_hex(pdr_sha256 *h, char hex[65]);

#endif
