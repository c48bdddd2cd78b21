/* fma_speed.c: speed probe for the AVX2 float32 product (embed/pdr_fma.c) against OpenBLAS sgemm
 * on the encoder's shapes (not a test): [M x D] @ [D x D] (a conv tap or the pointwise layer)
 * and [M x D] @ [D x 5D] (OpenBLAS's wide convolution). One thread; prints GFLOP/s by the wall
 * clock and per CPU-second of the process for both, and the largest difference of the results.
 * The two clocks differ for OpenBLAS: even set to one thread, its idle worker thread spins on
 * the other core while a product runs (perf stat: 1.26 CPUs utilized), CPU time that a second
 * encoder thread would have used.
 *
 *   build-main/fma_speed [--m 300] [--d 128]
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pdr_fma.h"

void openblas_set_num_threads(int n);

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One shape: [m x k] @ [k x n]. */
static void measure(int m, int n, int k)
{
    float *a = malloc((size_t)m * k * 4), *b = malloc((size_t)k * n * 4);
    float *c1 = malloc((size_t)m * n * 4), *c2 = malloc((size_t)m * n * 4), *bp = aligned_alloc(64, (size_t)k * n * 4);
    if (!a || !b || !c1 || !c2 || !bp) {
        fprintf(stderr, "fma_speed: out of memory\n");
        exit(1);
    }
    srand(1);
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = (float)rand() / RAND_MAX - 0.5f;
    for (size_t i = 0; i < (size_t)k * n; i++)
        b[i] = ((float)rand() / RAND_MAX - 0.5f) * 0.1f;
    pdr_fma_pack_b(b, k, n, bp);
    const double flop = 2.0 * m * n * k;
    const int reps = (int)(3e9 / flop) + 1;

    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c1, n); /* warm-up */
    pdr_fma_gemm((size_t)m, n, k, a, (size_t)k, bp, c2, (size_t)n, 0);
    double w = clock_s(CLOCK_MONOTONIC), t = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int r = 0; r < reps; r++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c1, n);
    const double w_sgemm = clock_s(CLOCK_MONOTONIC) - w, t_sgemm = clock_s(CLOCK_PROCESS_CPUTIME_ID) - t;
    w = clock_s(CLOCK_MONOTONIC), t = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int r = 0; r < reps; r++)
        pdr_fma_gemm((size_t)m, n, k, a, (size_t)k, bp, c2, (size_t)n, 0);
    const double w_fma = clock_s(CLOCK_MONOTONIC) - w, t_fma = clock_s(CLOCK_PROCESS_CPUTIME_ID) - t;

    double max_err = 0, max_ref = 0;
    for (size_t i = 0; i < (size_t)m * n; i++) {
        max_err = fmax(max_err, fabs((double)c1[i] - c2[i]));
        max_ref = fmax(max_ref, fabs((double)c1[i]));
    }
    printf("[%d x %d] @ [%d x %d], %d reps, GFLOP/s by wall clock | per CPU-second:\n", m, k, k, n, reps);
    printf("  sgemm (OpenBLAS) %5.1f | %5.1f\n", flop * reps / w_sgemm * 1e-9, flop * reps / t_sgemm * 1e-9);
    printf("  pdr_fma          %5.1f | %5.1f   (%.2fx | %.2fx)\n", flop * reps / w_fma * 1e-9,
           flop * reps / t_fma * 1e-9, w_sgemm / w_fma, t_sgemm / t_fma);
    printf("  max |difference| %.3g of max |C| %.3g\n", max_err, max_ref);
    free(a);
    free(b);
    free(c1);
    free(c2);
    free(bp);
}

int main(int argc, char **argv)
{
    int m = 300, d = 128;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--m"))
            m = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--d"))
            d = atoi(argv[i + 1]);
    }
    if (m < 1 || d < 16 || d % 16) {
        fprintf(stderr, "usage: fma_speed [--m M] [--d D (multiple of 16)]\n");
        return 2;
    }
    if (!pdr_fma_available()) {
        printf("fma_speed: this CPU has no AVX2 and FMA; nothing to measure\n");
        return 0;
    }
    openblas_set_num_threads(1);
    printf("one thread%s\n", pdr_fma_cpu_has_avx512() ? " (this CPU has AVX-512: the encoder keeps sgemm)" : "");
    measure(m, d, d);
    measure(m, 5 * d, d);
    return 0;
}
