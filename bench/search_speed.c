/* search_speed.c: speed probe for single-query index search (not a test). Loads a FAISS index
 * and an HDF5 embedding store, takes N rows of the store as queries (a fixed stride through it),
 * searches them one at a time (as the HTTP service does) and prints ms per query, per
 * CPU-second, next to the exact top-k recall of the approximate search against brute force.
 *
 *   build-main/search_speed --index DBDIR/index.faiss --store DBDIR/embeddings.h5 \
 *       [--n 500] [--k 10] [--nprobe 64]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pdr_index.h"
#include "pdr_store.h"

void openblas_set_num_threads(int n);
void omp_set_num_threads(int n);

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int usage(void)
{
    fprintf(stderr, "usage: search_speed --index FILE --store FILE [--n N] [--k K] [--nprobe P]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *index_path = NULL, *store_path = NULL;
    int n = 500, k = 10, nprobe = 64;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return usage();
        if (!strcmp(argv[i], "--index"))
            index_path = argv[++i];
        else if (!strcmp(argv[i], "--store"))
            store_path = argv[++i];
        else if (!strcmp(argv[i], "--n"))
            n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--k"))
            k = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--nprobe"))
            nprobe = atoi(argv[++i]);
        else
            return usage();
    }
    if (!index_path || !store_path || n < 1 || k < 1 || nprobe < 1)
        return usage();
    openblas_set_num_threads(1);
    omp_set_num_threads(1);

    pdr_err err = {0};
    pdr_index *ix = NULL;
    pdr_store *st = NULL;
    if (pdr_index_load(index_path, &ix, &err) || pdr_index_set_nprobe(ix, nprobe, &err) ||
        pdr_store_open(store_path, &st, &err)) {
        fprintf(stderr, "search_speed: %s\n", err.msg);
        return 1;
    }
    size_t count = pdr_store_count(st);
    int dim = pdr_index_dim(ix);
    float *all = malloc(count * (size_t)dim * sizeof *all);
    float *q = malloc((size_t)n * dim * sizeof *q);
    float *s = malloc((size_t)n * k * sizeof *s), *es = malloc((size_t)n * k * sizeof *es);
    int64_t *r = malloc((size_t)n * k * sizeof *r), *er = malloc((size_t)n * k * sizeof *er);
    if (!all || !q || !s || !es || !r || !er || pdr_store_read(st, 0, count, all, &err)) {
        fprintf(stderr, "search_speed: %s\n", all ? err.msg : "out of memory");
        return 1;
    }
    for (int i = 0; i < n; i++)
        memcpy(q + (size_t)i * dim, all + ((size_t)i * (count / (size_t)n)) * dim, (size_t)dim * sizeof *q);

    double t0 = cpu_s();
    for (int i = 0; i < n; i++)
        if (pdr_index_search(ix, q + (size_t)i * dim, 1, k, s + (size_t)i * k, r + (size_t)i * k, &err)) {
            fprintf(stderr, "search_speed: %s\n", err.msg);
            return 1;
        }
    double t = cpu_s() - t0;

    if (pdr_topk_bruteforce(all, count, dim, q, (size_t)n, k, es, er, &err)) {
        fprintf(stderr, "search_speed: %s\n", err.msg);
        return 1;
    }
    size_t found = 0;
    for (int i = 0; i < n; i++)
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++)
                found += r[(size_t)i * k + a] == er[(size_t)i * k + b] && er[(size_t)i * k + b] >= 0;
    printf("index %s: %zu rows, dim %d, nprobe %d, k %d, %d single-query searches\n", pdr_index_spec(ix), count, dim,
           nprobe, k, n);
    printf("%.3f ms per query (CPU), recall@%d vs exact %.4f\n", 1e3 * t / n, k, (double)found / ((double)n * k));
    pdr_store_free(st);
    pdr_index_free(ix);
    free(all);
    free(q);
    free(s);
    free(es);
    free(r);
    free(er);
    return 0;
}
