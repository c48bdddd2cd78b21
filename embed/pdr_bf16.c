/* pdr_bf16.c: bfloat16 matrix products with AVX-512 BF16 (see pdr_bf16.h).
 *
 * The kernel keeps a 12 x 32 block of C in 24 zmm registers. For each pair of K it loads the
 * two 16-column halves of B's packed pair row once and, per row of A, broadcasts that row's
 * bfloat16 pair and issues two VDPBF16PS. The loop runs over 32-column panels of B (K x 32
 * bfloat16: 8 KB at K = 128, which stays in L1) and, inside, over blocks of 12 rows.
 * The kernels are compiled for AVX-512 with a target attribute, so the rest of the program
 * stays baseline x86-64 and pdr_bf16_available decides at run time.
 */
#include "pdr_bf16.h"

#include <stdlib.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define PDR_BF16_X86 1
#include <cpuid.h>
#include <immintrin.h>
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

#define MR 12 /* rows of C per block */
#define NR 32 /* columns of C per block: two zmm of 16 floats */

/* Round one float to bfloat16, nearest even (NaN stays NaN). */
static uint16_t bf16_round(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

void pdr_bf16_pack_b(const float *b, int k, int n, uint16_t *out)
{
    for (int p = 0; p < k / 2; p++)
        for (int j = 0; j < n; j++) {
            out[((size_t)p * (size_t)n + (size_t)j) * 2] = bf16_round(b[(size_t)(2 * p) * (size_t)n + (size_t)j]);
            out[((size_t)p * (size_t)n + (size_t)j) * 2 + 1] =
                bf16_round(b[(size_t)(2 * p + 1) * (size_t)n + (size_t)j]);
        }
}

#ifdef PDR_BF16_X86

int pdr_bf16_available(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE */
        return 0;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 0xe6u) != 0xe6u) /* the OS saves SSE, AVX and the three AVX-512 states */
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    const unsigned need = (1u << 16) | (1u << 30) | (1u << 31); /* AVX512F, BW, VL */
    if ((b & need) != need)
        return 0;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d))
        return 0;
    return (a >> 5) & 1u; /* AVX512_BF16 */
}

BF16_TARGET void pdr_bf16_from_f32(const float *x, size_t n, uint16_t *out)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
        _mm512_storeu_si512((void *)(out + i), (__m512i)v);
    }
    for (; i < n; i++)
        out[i] = bf16_round(x[i]);
}

/* C[mr rows][NR] (=|+=) A[mr][K] @ B panel, for a compile-time mr (always inlined, so the
 * accumulator arrays live in registers). */
BF16_TARGET __attribute__((always_inline)) static inline void block(const int mr, const uint16_t *a, size_t lda,
                                                                    const uint16_t *bp, size_t bstride, int pairs,
                                                                    float *c, size_t ldc, int accumulate)
{
    __m512 c0[MR], c1[MR];
    for (int i = 0; i < mr; i++) {
        if (accumulate) {
            c0[i] = _mm512_loadu_ps(c + (size_t)i * ldc);
            c1[i] = _mm512_loadu_ps(c + (size_t)i * ldc + 16);
        } else {
            c0[i] = _mm512_setzero_ps();
            c1[i] = _mm512_setzero_ps();
        }
    }
    for (int p = 0; p < pairs; p++) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)(bp + (size_t)p * bstride));
        const __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(bp + (size_t)p * bstride + 32));
        for (int i = 0; i < mr; i++) {
            uint32_t pair;
            memcpy(&pair, a + (size_t)i * lda + 2 * (size_t)p, sizeof pair);
            const __m512bh av = (__m512bh)_mm512_set1_epi32((int)pair);
            c0[i] = _mm512_dpbf16_ps(c0[i], av, b0);
            c1[i] = _mm512_dpbf16_ps(c1[i], av, b1);
        }
    }
    for (int i = 0; i < mr; i++) {
        _mm512_storeu_ps(c + (size_t)i * ldc, c0[i]);
        _mm512_storeu_ps(c + (size_t)i * ldc + 16, c1[i]);
    }
}

#define BLOCK_CASE(r) \
    case r: block(r, a, lda, bp, bstride, pairs, c, ldc, accumulate); break;

/* The last mr < MR rows of a panel. */
BF16_TARGET static void block_tail(int mr, const uint16_t *a, size_t lda, const uint16_t *bp, size_t bstride, int pairs,
                                   float *c, size_t ldc, int accumulate)
{
    switch (mr) {
        BLOCK_CASE(1)
        BLOCK_CASE(2)
        BLOCK_CASE(3)
        BLOCK_CASE(4)
        BLOCK_CASE(5)
        BLOCK_CASE(6)
        BLOCK_CASE(7)
        BLOCK_CASE(8)
        BLOCK_CASE(9)
        BLOCK_CASE(10)
        BLOCK_CASE(11)
    default: break;
    }
}

BF16_TARGET void pdr_bf16_gemm(size_t m, int n, int k, const uint16_t *a, size_t lda, const uint16_t *bp, float *c,
                               size_t ldc, int accumulate)
{
    const int pairs = k / 2;
    const size_t bstride = 2 * (size_t)n; /* bfloat16 per packed pair row */
    for (int j = 0; j + NR <= n; j += NR) {
        const uint16_t *panel = bp + 2 * (size_t)j;
        size_t i = 0;
        for (; i + MR <= m; i += MR)
            block(MR, a + i * lda, lda, panel, bstride, pairs, c + i * ldc + (size_t)j, ldc, accumulate);
        if (i < m)
            block_tail((int)(m - i), a + i * lda, lda, panel, bstride, pairs, c + i * ldc + (size_t)j, ldc, accumulate);
    }
}

#else /* not x86-64 with GCC or clang: never available */

int pdr_bf16_available(void) { return 0; }

void pdr_bf16_from_f32(const float *x, size_t n, uint16_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = bf16_round(x[i]);
}

void pdr_bf16_gemm(size_t m, int n, int k, const uint16_t *a, size_t lda, const uint16_t *bp, float *c, size_t ldc,
                   int accumulate)
{
    (void)m, (void)n, (void)k, (void)a, (void)lda, (void)bp, (void)c, (void)ldc, (void)accumulate;
    abort(); /* pdr_bf16_available() said no */
}

#endif
