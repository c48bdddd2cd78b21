/* bf16_speed.c: speed probe for the bfloat16 product (embed/pdr_bf16.c) against OpenBLAS sgemm
 * on the encoder's shape, [M x K] @ [K x N] with K = N = d (not a test). One thread; prints
 * GFLOP/s per CPU-second for both and the largest relative difference of the results.
 *
 *   build-main/bf16_speed [--m 512] [--d 128]
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pdr_bf16.h"

void openblas_set_num_threads(int n);

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int m = 512, d = 128;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--m"))
            m = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--d"))
            d = atoi(argv[i + 1]);
    }
    if (m < 1 || d < 32 || d % 32) {
        fprintf(stderr, "usage: bf16_speed [--m M] [--d D (multiple of 32)]\n");
        return 2;
    }
    if (!pdr_bf16_available()) {
        printf("bf16_speed: this CPU has no AVX-512 BF16; nothing to measure\n");
        return 0;
    }
    openblas_set_num_threads(1);
    float *a = malloc((size_t)m * d * 4), *b = malloc((size_t)d * d * 4);
    float *c1 = malloc((size_t)m * d * 4), *c2 = malloc((size_t)m * d * 4);
    uint16_t *ab = malloc((size_t)m * d * 2), *bp = aligned_alloc(64, (size_t)d * d * 2);
    srand(1);
    for (size_t i = 0; i < (size_t)m * d; i++)
        a[i] = (float)rand() / RAND_MAX - 0.5f;
    for (size_t i = 0; i < (size_t)d * d; i++)
        b[i] = ((float)rand() / RAND_MAX - 0.5f) * 0.1f;
    pdr_bf16_pack_b(b, d, d, bp);
    const double flop = 2.0 * m * d * d;
    const int reps = (int)(3e9 / flop) + 1;

    double t = cpu_s();
    for (int r = 0; r < reps; r++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, d, 1.0f, a, d, b, d, 0.0f, c1, d);
    const double t_sgemm = cpu_s() - t;

    t = cpu_s();
    for (int r = 0; r < reps; r++) {
        pdr_bf16_from_f32(a, (size_t)m * d, ab);
        pdr_bf16_gemm((size_t)m, d, d, ab, (size_t)d, bp, c2, (size_t)d, 0);
    }
    const double t_bf16 = cpu_s() - t;

    double max_err = 0, max_ref = 0;
    for (size_t i = 0; i < (size_t)m * d; i++) {
        max_err = fmax(max_err, fabs((double)c1[i] - c2[i]));
        max_ref = fmax(max_ref, fabs((double)c1[i]));
    }
    printf("[%d x %d] @ [%d x %d], %d reps, one thread\n", m, d, d, d, reps);
    printf("sgemm (OpenBLAS)     %7.1f GFLOP/s\n", flop * reps / t_sgemm * 1e-9);
    printf("bf16 (with convert)  %7.1f GFLOP/s  (%.2fx)\n", flop * reps / t_bf16 * 1e-9, t_sgemm / t_bf16);
    printf("max |difference| %.3g of max |C| %.3g\n", max_err, max_ref);
    free(a);
    free(b);
    free(c1);
    free(c2);
    free(ab);
    free(bp);
    return 0;
}
