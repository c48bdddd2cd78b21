/* pdr_bf16.h: matrix products in bfloat16 with float32 sums, on CPUs with AVX-512 BF16 (AMD
 * Zen 4, Intel Sapphire Rapids and later), for the encoder's dense steps.
 *
 * A bfloat16 is the top 16 bits of a float32 (8 exponent bits, 8 significant bits), rounded to
 * nearest even. VDPBF16PS multiplies pairs of bfloat16 and adds both products into a float32
 * lane, twice the multiply-adds per instruction of a float32 FMA, so a product whose inputs are
 * rounded to bfloat16 runs up to 2x faster than OpenBLAS's sgemm. The sums stay float32; the
 * relative error of one product is about 2^-8 of its inputs' magnitude (see pdr_cnn.h for what
 * that does to an embedding).
 *
 * Layouts: A is row-major [M][K] bfloat16 (K even), so each row is K/2 pairs. B is packed once
 * by pdr_bf16_pack_b from a row-major float [K][N] into [K/2][N][2] (the two rows of a pair
 * side by side per column), N a multiple of 32.
 *
 * pdr_bf16_available says whether this CPU (and this build) can run the products; the other
 * functions must not be called when it returns 0. No state: everything is reentrant.
 */
#ifndef PDR_BF16_H
#define PDR_BF16_H

#include <stddef.h>
#include <stdint.h>

/* 1 when this CPU has AVX-512 F/BW/VL and BF16 and the compiler could build the kernels. */
int pdr_bf16_available(void);

/* Round n floats to bfloat16 (nearest even). */
void pdr_bf16_from_f32(const float *x, size_t n, uint16_t *out);

/* Pack row-major float B [K][N] (K even, N a multiple of 32) into out [K/2][N][2] bfloat16
 * (K*N values; out should be 64-byte aligned). */
void pdr_bf16_pack_b(const float *b, int k, int n, uint16_t *out);

/* C[M][N] = A[M][K] @ B (accumulate 0) or C += A @ B (accumulate 1), with A bfloat16 row-major
 * (row stride lda elements, even), Bp packed by pdr_bf16_pack_b, C float row-major (stride ldc).
 * K even, N a multiple of 32. */
void pdr_bf16_gemm(size_t m, int n, int k, const uint16_t *a, size_t lda, const uint16_t *bp, float *c, size_t ldc,
                   int accumulate);

#endif
