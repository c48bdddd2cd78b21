/* test_fma.c: pdr_fma_gemm (embed/pdr_fma.c) against a double-precision reference, on the shapes
 * the encoder does not reach: every row tail (m = 1..13 around the 6-row blocks), K odd and
 * small, several 16-column panels, row strides wider than the rows, both accumulate modes, and
 * that nothing outside C's m x n block is written. On a CPU without AVX2 and FMA the products
 * are skipped (saying so) and only the packing is checked. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pdr_fma.h"

static uint64_t rng_state = 12345;
static float rnd(void) /* uniform in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* The packed layout: panel j / 16, row p, column j % 16. */
TEST(fma_pack_b_layout)
{
    const int k = 5, n = 32;
    float b[5 * 32], bp[5 * 32];
    for (int i = 0; i < k * n; i++)
        b[i] = (float)i;
    pdr_fma_pack_b(b, k, n, bp);
    int bad = 0;
    for (int p = 0; p < k; p++)
        for (int j = 0; j < n; j++)
            bad += bp[(j / 16) * k * 16 + p * 16 + j % 16] != b[p * n + j];
    CHECKF(bad == 0, "%d misplaced values", bad);
}

static void one_shape(size_t m, int n, int k, int accumulate)
{
    const size_t lda = (size_t)k + 3, ldc = (size_t)n + 5;
    float *a = malloc(m * lda * sizeof *a), *b = malloc((size_t)k * (size_t)n * sizeof *b);
    float *c = malloc(m * ldc * sizeof *c), *c0 = malloc(m * ldc * sizeof *c0);
    float *bp = aligned_alloc(64, ((size_t)k * (size_t)n * sizeof(float) + 63) / 64 * 64);
    if (!a || !b || !c || !c0 || !bp) {
        CHECK(!"out of memory");
        goto done;
    }
    for (size_t i = 0; i < m * lda; i++)
        a[i] = rnd();
    for (size_t i = 0; i < (size_t)k * (size_t)n; i++)
        b[i] = rnd();
    for (size_t i = 0; i < m * ldc; i++)
        c[i] = c0[i] = rnd(); /* the padding columns must keep these */
    pdr_fma_pack_b(b, k, n, bp);
    pdr_fma_gemm(m, n, k, a, lda, bp, c, ldc, accumulate);
    double worst = 0;
    int padding_written = 0;
    for (size_t i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double want = accumulate ? c0[i * ldc + (size_t)j] : 0, mag = fabs(want);
            for (int p = 0; p < k; p++) {
                want += (double)a[i * lda + (size_t)p] * b[(size_t)p * (size_t)n + (size_t)j];
                mag += fabs((double)a[i * lda + (size_t)p] * b[(size_t)p * (size_t)n + (size_t)j]);
            }
            const double err = fabs(c[i * ldc + (size_t)j] - want) / (mag + 1e-30);
            worst = err > worst ? err : worst;
        }
        for (size_t j = (size_t)n; j < ldc; j++)
            padding_written += c[i * ldc + j] != c0[i * ldc + j];
    }
    CHECKF(worst < 1e-6, "m %zu n %d k %d accumulate %d: relative error %.3g", m, n, k, accumulate, worst);
    CHECKF(padding_written == 0, "m %zu n %d k %d: %d values outside C's block written", m, n, k, padding_written);
done:
    free(a);
    free(b);
    free(c);
    free(c0);
    free(bp);
}

TEST(fma_gemm_matches_reference)
{
    if (!pdr_fma_available()) {
        printf("fma products: skipped, this CPU has no AVX2 and FMA\n");
        return;
    }
    static const size_t ms[] = {1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 37};
    static const int ns[] = {16, 48, 128}, ks[] = {1, 3, 128, 130};
    for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++)
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
            for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++)
                for (int acc = 0; acc <= 1; acc++)
                    one_shape(ms[mi], ns[ni], ks[ki], acc);
}

int main(void)
{
    RUN(fma_pack_b_layout);
    RUN(fma_gemm_matches_reference);
    return CHECK_DONE();
}
