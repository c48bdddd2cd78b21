// fuzz-sources: index/pdr_calib.c core/pdr_file.c core/pdr_err.c
// fuzz-libs: -lm
/* fuzz_calib.c: libFuzzer harness for the E-value calibration file reader (index/pdr_calib.h),
 * DBDIR/calibration.txt, which a user or a broken disk can damage.
 *
 * Each input is written to a file and loaded. pdr_calib_load must either fail with a status and a
 * message, or give a calibration that keeps the promises search relies on: tail_q in (0, 1],
 * lambda > 0 and finite, threshold finite, n_null >= 100, quantiles finite and in order, scores a
 * known kind; and then p-values in [0, 1] that never rise with the score. A loaded calibration
 * saved and loaded again must load.
 *
 * Build: tests/fuzz/run_fuzz.sh 60 calib
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pdr_calib.h"

#define REQUIRE(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_calib: %s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

static char path[64], path2[64];

static void make_paths(void)
{
    if (path[0])
        return;
    snprintf(path, sizeof path, "/tmp/pdr-fuzz-calib-%ld.txt", (long)getpid());
    snprintf(path2, sizeof path2, "/tmp/pdr-fuzz-calib-%ld-2.txt", (long)getpid());
}

static void check_promises(const pdr_calib *c)
{
    REQUIRE(c->tail_q > 0 && c->tail_q <= 1);
    REQUIRE(c->lambda > 0 && isfinite(c->lambda));
    REQUIRE(isfinite(c->threshold));
    REQUIRE(c->n_null >= 100);
    for (int i = 0; i < PDR_CALIB_NQ; i++) {
        REQUIRE(isfinite(c->quantiles[i]));
        REQUIRE(i == 0 || c->quantiles[i] >= c->quantiles[i - 1]);
    }
    REQUIRE(c->scores == PDR_CALIB_SCORES_UNKNOWN || c->scores == PDR_CALIB_SCORES_COSINE ||
            c->scores == PDR_CALIB_SCORES_ADJUSTED);
    double prev = 2.0;
    for (int i = -300; i <= 300; i++) {
        double p = pdr_calib_pvalue(c, i / 100.0);
        REQUIRE(p >= 0 && p <= 1);
        REQUIRE(p <= prev);
        prev = p;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    make_paths();
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(data, 1, size, f) == size);
    REQUIRE(fclose(f) == 0);
    pdr_calib c;
    pdr_err err;
    pdr_err_clear(&err);
    if (pdr_calib_load(path, &c, &err) != PDR_OK) {
        REQUIRE(err.msg[0] != '\0');
        return 0;
    }
    check_promises(&c);
    pdr_err_clear(&err);
    REQUIRE(pdr_calib_save(&c, path2, &err) == PDR_OK);
    pdr_calib c2;
    REQUIRE(pdr_calib_load(path2, &c2, &err) == PDR_OK);
    check_promises(&c2);
    REQUIRE(c2.scores == c.scores && c2.n_null == c.n_null);
    return 0;
}
