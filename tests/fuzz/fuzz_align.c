// fuzz-sources: index/pdr_align.c index/pdr_align_trace.c index/pdr_align_traces.c core/pdr_err.c
// fuzz-libs: -lm
/* fuzz_align.c: differential libFuzzer harness for the Smith-Waterman kernels (index/pdr_align.h).
 *
 * The input is split at its first NUL byte (or in half without one) into a query and a target of
 * arbitrary bytes (letters outside BLOSUM62's alphabet score as X). The striped kernels (8-bit,
 * 16-bit, and the 32-bit fallback beyond them) must give exactly the score of the plain 32-bit
 * reference, in both directions (the score is symmetric), and reusing one query for a second
 * target must not change the answer. The batch path (pdr_align_scores: the 8-bit pass, then one
 * target per lane) must give the same scores for [target, query, target]. The traced alignment (pdr_align_trace) must have the same
 * score, lie inside both sequences, rescore to that score on its own stretches, and come out the
 * same when traced in strips of 3 rows, and in a batch of [b, a, b] (pdr_align_traces: one target
 * per lane). Under a composition-scaled matrix (ratio from the first byte) the batch kernel must
 * equal the scaled reference. Bytes are copied into exact-size allocations, so ASan sees
 * any read past either sequence.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Icore -Iindex index/pdr_align.c \
 *          index/pdr_align_trace.c index/pdr_align_traces.c core/pdr_err.c tests/fuzz/fuzz_align.c -lm -o /tmp/fuzz_align   (or tests/fuzz/run_fuzz.sh)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdr_align.h"

static int striped(const char *a, size_t la, const char *b, size_t lb, const char *b2, size_t lb2, int *second)
{
    pdr_err err;
    pdr_align_query *q = NULL;
    if (pdr_align_query_create(a, la, &q, &err))
        return -2;
    int s = pdr_align_score(q, b, lb);
    *second = pdr_align_score(q, b2, lb2);
    pdr_align_query_free(q);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t la = nul ? (size_t)(nul - data) : size / 2;
    size_t lb = nul ? size - la - 1 : size - la;
    if (la == 0)
        return 0;
    char *a = malloc(la), *b = malloc(lb ? lb : 1);
    if (!a || !b) {
        free(a);
        free(b);
        return 0;
    }
    memcpy(a, data, la);
    memcpy(b, data + size - lb, lb);
    int ref = pdr_align_score_ref(a, la, b, lb);
    int again = 0, self_ref = pdr_align_score_ref(a, la, a, la);
    int got = striped(a, la, b, lb, a, la, &again);
    if (got != ref || again != self_ref) {
        fprintf(stderr, "fuzz_align: query %zu, target %zu residues: striped %d, reference %d; self %d vs %d\n", la, lb,
                got, ref, again, self_ref);
        abort();
    }
    pdr_err err;
    /* the batch path (8-bit pass, then one target per lane) on [b, a, b] */
    {
        pdr_align_query *q = NULL;
        const char *ts[3] = {b, a, b};
        size_t tls[3] = {lb, la, lb};
        int sc[3];
        if (pdr_align_query_create(a, la, &q, &err) || pdr_align_scores(q, 3, ts, tls, sc, &err) || sc[0] != ref ||
            sc[1] != self_ref || sc[2] != ref) {
            fprintf(stderr, "fuzz_align: batch scores differ from the reference (%d vs %d)\n", q ? sc[0] : -1, ref);
            abort();
        }
        pdr_align_query_free(q);
    }
    {
        pdr_align_matrix m;
        pdr_align_matrix_scaled(0.5 + (double)(data[0] % 128) / 256.0, &m);
        const pdr_align_matrix *mp[2] = {&m, &m};
        pdr_align_query *q = NULL;
        const char *ts[2] = {b, a};
        size_t tls[2] = {lb, la};
        int sc[2] = {-1, -1};
        int r0 = pdr_align_score_scaled_ref(a, la, b, lb, &m), r1 = pdr_align_score_scaled_ref(a, la, a, la, &m);
        if (pdr_align_query_create(a, la, &q, &err) || pdr_align_scores_scaled(q, 2, ts, tls, mp, sc, &err) ||
            sc[0] != r0 || sc[1] != r1) {
            fprintf(stderr, "fuzz_align: scaled scores %d %d, reference %d %d\n", sc[0], sc[1], r0, r1);
            abort();
        }
        pdr_align_query_free(q);
    }
    pdr_alignment t1, t2;
    if (pdr_align_trace(a, la, b, lb, 0, &t1, &err) || pdr_align_trace(a, la, b, lb, 3 * (lb ? lb : 1), &t2, &err)) {
        fprintf(stderr, "fuzz_align: trace failed: %s\n", err.msg);
        abort();
    }
    int inside = t1.score == 0 || (t1.qstart >= 1 && t1.qstart <= t1.qend && t1.qend <= (int32_t)la && t1.tstart >= 1 &&
                                   t1.tstart <= t1.tend && t1.tend <= (int32_t)lb);
    if (t1.score != ref || !inside || memcmp(&t1, &t2, sizeof t1) != 0 ||
        (t1.score > 0 && pdr_align_score_ref(a + t1.qstart - 1, (size_t)(t1.qend - t1.qstart + 1), b + t1.tstart - 1,
                                             (size_t)(t1.tend - t1.tstart + 1)) != ref)) {
        fprintf(stderr, "fuzz_align: trace score %d (strips: %d), reference %d, q %d-%d t %d-%d\n", t1.score, t2.score,
                ref, t1.qstart, t1.qend, t1.tstart, t1.tend);
        abort();
    }
    {
        pdr_alignment tb[3], self;
        const char *ts[3] = {b, a, b};
        size_t tls[3] = {lb, la, lb};
        if (pdr_align_traces(a, la, 3, ts, tls, 0, tb, &err) || pdr_align_trace(a, la, a, la, 0, &self, &err) ||
            memcmp(&tb[0], &t1, sizeof t1) != 0 || memcmp(&tb[2], &t1, sizeof t1) != 0 ||
            memcmp(&tb[1], &self, sizeof self) != 0) {
            fprintf(stderr, "fuzz_align: batch trace differs: score %d q %d-%d t %d-%d, single %d q %d-%d t %d-%d\n",
                    tb[0].score, tb[0].qstart, tb[0].qend, tb[0].tstart, tb[0].tend, t1.score, t1.qstart, t1.qend,
                    t1.tstart, t1.tend);
            abort();
        }
    }
    if (lb > 0) {
        int back = striped(b, lb, a, la, b, lb, &again);
        if (back != ref) {
            fprintf(stderr, "fuzz_align: not symmetric: %d against %d\n", back, ref);
            abort();
        }
    }
    free(a);
    free(b);
    return 0;
}
