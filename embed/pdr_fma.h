/* pdr_fma.h: float32 matrix products with AVX2 and FMA, for the encoder's dense steps on CPUs
 * without AVX-512.
 *
 * Why not OpenBLAS: on an AVX2 CPU (OpenBLAS 0.3.21, Haswell/Zen kernels) sgemm runs the
 * encoder's [rows, 128] x [128, 128] product at about 15 GFLOP/s, under half its rate on large
 * matrices: it packs the [rows, 128] operand on every call, and with only 128 output columns
 * that copy is not paid back. Here B (the weights) is packed once, when the model is loaded, and
 * A (the activations) is read where it lies: 2.4x OpenBLAS on that shape by the wall clock
 * (bench/fma_speed.c; 4x per CPU-second, as OpenBLAS keeps a second thread spinning).
 *
 * Layouts: A and C row-major float (any row strides). B is packed once by pdr_fma_pack_b from a
 * row-major float [K][N] into N/16 panels of [K][16], N a multiple of 16.
 *
 * The sums are float32 FMAs in the order k = 0, 1, ..., K-1, so results differ from sgemm's in
 * the last bits only. pdr_fma_available says whether this CPU (and this build) can run the
 * products; pdr_fma_gemm must not be called when it returns 0. No state: everything is reentrant.
 */
#ifndef PDR_FMA_H
#define PDR_FMA_H

#include <stddef.h>

/* 1 when this CPU has AVX2 and FMA (and the OS saves the AVX state) and the compiler could build
 * the kernels. */
int pdr_fma_available(void);

/* 1 when this CPU has AVX-512 F: OpenBLAS then has 512-bit kernels, and the encoder keeps them. */
int pdr_fma_cpu_has_avx512(void);

/* Pack row-major float B [K][N] (N a multiple of 16) into out[K * N] (64-byte aligned). */
void pdr_fma_pack_b(const float *b, int k, int n, float *out);

/* C[M][N] = A[M][K] @ B (accumulate 0) or C += A @ B (accumulate 1); A row stride lda, C row
 * stride ldc (floats), Bp packed by pdr_fma_pack_b. */
void pdr_fma_gemm(size_t m, int n, int k, const float *a, size_t lda, const float *bp, float *c, size_t ldc,
                  int accumulate);

#endif
