/* pdr_fma.c: float32 matrix products with AVX2 and FMA (see pdr_fma.h).
 *
 * The kernel keeps a 6 x 16 block of C in 12 ymm registers. For each k it loads the 16 packed
 * values of B's row k (two ymm) once and, per row of A, broadcasts A[i][k] and issues two FMAs:
 * 12 FMAs per 8 loads, with 12 independent sums in flight to cover the FMA latency. The loop runs
 * over 16-column panels of B (K x 16 floats: 8 KB at K = 128, which stays in L1) and, inside,
 * over blocks of 6 rows. The kernels are compiled for AVX2 with a target attribute, so the rest
 * of the program stays baseline x86-64 and pdr_fma_available decides at run time.
 */
#include "pdr_fma.h"

#include <stdlib.h>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define PDR_FMA_X86 1
#include <cpuid.h>
#include <immintrin.h>
#define FMA_TARGET __attribute__((target("avx2,fma")))
#endif

#define MR 6  /* rows of C per block */
#define NR 16 /* columns of C per block: two ymm of 8 floats */

void pdr_fma_pack_b(const float *b, int k, int n, float *out)
{
    for (int j = 0; j < n; j += NR)
        for (int p = 0; p < k; p++)
            for (int q = 0; q < NR; q++)
                out[(size_t)j * (size_t)k + (size_t)p * NR + (size_t)q] = b[(size_t)p * (size_t)n + (size_t)(j + q)];
}

#ifdef PDR_FMA_X86

/* The OS saves the YMM state (OSXSAVE, then XCR0 bits 1 and 2). */
static int os_saves_ymm(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d) || !(c & (1u << 27)))
        return 0;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    return (xcr0_lo & 0x6u) == 0x6u;
}

int pdr_fma_available(void)
{
    unsigned a, b, c, d;
    if (!os_saves_ymm() || !__get_cpuid_count(1, 0, &a, &b, &c, &d) || !(c & (1u << 12))) /* FMA */
        return 0;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 5)); /* AVX2 */
}

int pdr_fma_cpu_has_avx512(void)
{
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 16)); /* AVX512F */
}

/* C[mr rows][NR] (=|+=) A[mr][K] @ B panel, for a compile-time mr (always inlined and the row
 * loops unrolled, so the accumulator arrays live in registers). */
FMA_TARGET __attribute__((always_inline)) static inline void
block(const int mr, const float *a, size_t lda, const float *panel, int k, float *c, size_t ldc, int accumulate)
{
    __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        if (accumulate) {
            c0[i] = _mm256_loadu_ps(c + (size_t)i * ldc);
            c1[i] = _mm256_loadu_ps(c + (size_t)i * ldc + 8);
        } else {
            c0[i] = _mm256_setzero_ps();
            c1[i] = _mm256_setzero_ps();
        }
    }
    for (int p = 0; p < k; p++) {
        const __m256 b0 = _mm256_load_ps(panel + (size_t)p * NR);
        const __m256 b1 = _mm256_load_ps(panel + (size_t)p * NR + 8);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            const __m256 av = _mm256_broadcast_ss(a + (size_t)i * lda + (size_t)p);
            c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        _mm256_storeu_ps(c + (size_t)i * ldc, c0[i]);
        _mm256_storeu_ps(c + (size_t)i * ldc + 8, c1[i]);
    }
}

#define BLOCK_CASE(r) \
    case r: block(r, a, lda, panel, k, c, ldc, accumulate); break;

/* The last mr < MR rows of a panel. */
FMA_TARGET static void block_tail(int mr, const float *a, size_t lda, const float *panel, int k, float *c, size_t ldc,
                                  int accumulate)
{
    switch (mr) {
        BLOCK_CASE(1)
        BLOCK_CASE(2)
        BLOCK_CASE(3)
        BLOCK_CASE(4)
        BLOCK_CASE(5)
    default: break;
    }
}

FMA_TARGET void pdr_fma_gemm(size_t m, int n, int k, const float *a, size_t lda, const float *bp, float *c, size_t ldc,
                             int accumulate)
{
    for (int j = 0; j + NR <= n; j += NR) {
        const float *panel = bp + (size_t)j * (size_t)k;
        size_t i = 0;
        for (; i + MR <= m; i += MR)
            block(MR, a + i * lda, lda, panel, k, c + i * ldc + (size_t)j, ldc, accumulate);
        if (i < m)
            block_tail((int)(m - i), a + i * lda, lda, panel, k, c + i * ldc + (size_t)j, ldc, accumulate);
    }
}

#else /* not x86-64 with GCC or clang: never available */

int pdr_fma_available(void) { return 0; }

int pdr_fma_cpu_has_avx512(void) { return 0; }

void pdr_fma_gemm(size_t m, int n, int k, const float *a, size_t lda, const float *bp, float *c, size_t ldc,
                  int accumulate)
{
    (void)m, (void)n, (void)k, (void)a, (void)lda, (void)bp, (void)c, (void)ldc, (void)accumulate;
    abort(); /* pdr_fma_available() said no */
}

#endif
