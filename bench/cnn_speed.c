/* cnn_speed.c: speed probe for the C encoder (not a test). Embeds N random sequences of length L
 * with one workspace per thread and OpenBLAS at 1 thread, and prints residues/s and GFLOP/s,
 * next to OpenBLAS's own sgemm rate on the block-sized product for scale. On a shared machine
 * read the per-CPU-second line: the wall clock also counts other processes' turns on the core.
 *
 * Built by CMake as build/cnn_speed; PDR_CNN_PRODUCTS=sgemm|fma|bf16 picks the products.
 *   build/cnn_speed [--model data/test/cnn_bench.h5] [--n 2000] [--len 300] [--threads 1]
 */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pdr_cnn.h"

void openblas_set_num_threads(int n);

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

typedef struct job {
    const pdr_cnn *m;
    const char *seqs; /* n * len bytes */
    size_t first, count, len;
    int status;
    pdr_err err;
} job;

static void *worker(void *arg)
{
    job *j = arg;
    pdr_cnn_ws *ws = NULL;
    float *out = malloc((size_t)pdr_cnn_dim(j->m) * sizeof *out);
    j->status = out ? pdr_cnn_ws_create(j->m, &ws, &j->err) : PDR_ENOMEM;
    for (size_t i = j->first; j->status == 0 && i < j->first + j->count; i++)
        j->status = pdr_cnn_embed(j->m, ws, j->seqs + i * j->len, j->len, out, &j->err);
    pdr_cnn_ws_free(ws);
    free(out);
    return NULL;
}

/* OpenBLAS sgemm rate on [m x k] @ [k x n], one thread, per CPU-second, for scale. */
static double sgemm_gflops(int m, int n, int k)
{
    float *a = malloc((size_t)m * k * 4), *b = malloc((size_t)k * n * 4), *c = calloc((size_t)m * n, 4);
    /* non-zero data: untouched calloc pages all map the kernel's one zero page, which stays in
     * L1 and made this probe read 2.3x too fast */
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = (float)(i % 7) * 0.1f - 0.3f;
    for (size_t i = 0; i < (size_t)k * n; i++)
        b[i] = (float)(i % 5) * 0.01f - 0.02f;
    int reps = (int)(2e9 / (2.0 * m * n * k)) + 1;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 1, c, n);
    double t = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int r = 0; r < reps; r++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 1, c, n);
    t = clock_s(CLOCK_PROCESS_CPUTIME_ID) - t;
    free(a);
    free(b);
    free(c);
    return 2.0 * m * n * k * reps / t / 1e9;
}

int main(int argc, char **argv)
{
    const char *model = "data/test/cnn_bench.h5";
    size_t n = 2000, len = 300;
    int threads = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model"))
            model = argv[i + 1];
        else if (!strcmp(argv[i], "--n"))
            n = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--len"))
            len = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: cnn_speed [--model F] [--n N] [--len L] [--threads T]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 64 || n < 1 || len < 1)
        return 2;
    openblas_set_num_threads(1);

    pdr_err err = {0};
    pdr_cnn *m = NULL;
    if (pdr_cnn_open(model, &m, &err)) {
        fprintf(stderr, "cnn_speed: %s\n", err.msg);
        return 1;
    }
    char *seqs = malloc(n * len);
    unsigned long s = 88172645463325252UL;
    for (size_t i = 0; i < n * len; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        seqs[i] = "ACDEFGHIKLMNPQRSTVWY"[s % 20];
    }

    job warm = {m, seqs, 0, n < 20 ? n : 20, len, 0, {0}};
    worker(&warm); /* grow buffers and fault in the weights before timing */

    job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    double t = now_s(), cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int k = 0; k < threads; k++) {
        jobs[k] = (job){m, seqs, n * k / threads, n * (k + 1) / threads - n * k / threads, len, 0, {0}};
        pthread_create(&tid[k], NULL, worker, &jobs[k]);
    }
    int status = 0;
    for (int k = 0; k < threads; k++) {
        pthread_join(tid[k], NULL);
        if (jobs[k].status) {
            fprintf(stderr, "cnn_speed: %s\n", jobs[k].err.msg);
            status = 1;
        }
    }
    t = now_s() - t;
    cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu;

    const double residues = (double)n * (double)len, fpr = pdr_cnn_flops_per_residue(m);
    printf("model %s (%s): %zu params, %.3f MFLOP/residue, %s products\n", pdr_cnn_name(m), model, pdr_cnn_params(m),
           fpr / 1e6, pdr_cnn_products_name(pdr_cnn_get_products(m)));
    printf("%zu sequences x %zu residues, %d thread(s): %.2f s, %.0f residues/s, %.1f GFLOP/s\n", n, len, threads, t,
           residues / t, residues * fpr / t / 1e9);
    /* on a shared machine the wall clock counts other people's work; CPU time does not */
    printf("per CPU-second (%.2f s CPU): %.0f residues/s, %.1f GFLOP/s\n", cpu, residues / cpu,
           residues * fpr / cpu / 1e9);
    printf("OpenBLAS sgemm, 1 thread, per CPU-second: 256x128x128 %.1f GFLOP/s, 1024^3 %.1f GFLOP/s\n",
           sgemm_gflops(256, 128, 128), sgemm_gflops(1024, 1024, 1024));
    free(jobs);
    free(tid);
    free(seqs);
    pdr_cnn_free(m);
    return status;
}
