/* pdr_calib.c: exponential-tail fit of null cosines (see pdr_calib.h). */
#include "pdr_calib.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pdr_file.h"

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int pdr_calib_fit(float *scores, size_t n, pdr_calib *cal, pdr_err *err)
{
    if (n < 100)
        return pdr_fail(err, PDR_EINPUT, "calibration: %zu null scores, need at least 100", n);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(scores[i]))
            return pdr_fail(err, PDR_EINPUT, "calibration: null score %zu is not finite", i);
    qsort(scores, n, sizeof(float), cmp_float);
    memset(cal, 0, sizeof *cal);
    cal->n_null = n;
    for (int i = 0; i < PDR_CALIB_NQ; i++)
        cal->quantiles[i] = scores[(size_t)((double)i / (PDR_CALIB_NQ - 1) * (double)(n - 1))];
    size_t n_tail = n / 100 > 50 ? n / 100 : 50;
    cal->tail_q = (double)n_tail / (double)n;
    cal->threshold = scores[n - n_tail];
    double sum = 0.0;
    for (size_t i = n - n_tail; i < n; i++)
        sum += scores[i] - cal->threshold;
    double mean = sum / (double)n_tail;
    cal->lambda = mean > 1e-9 ? 1.0 / mean : 1e9;
    return PDR_OK;
}

double pdr_calib_pvalue(const pdr_calib *cal, double s)
{
    if (s >= cal->threshold)
        return cal->tail_q * exp(-cal->lambda * (s - cal->threshold));
    /* Below the tail: fraction of null scores >= s, from the percentile table. */
    if (s <= cal->quantiles[0])
        return 1.0;
    for (int i = 1; i < PDR_CALIB_NQ; i++) {
        if (s <= cal->quantiles[i]) {
            double lo = cal->quantiles[i - 1], hi = cal->quantiles[i];
            double frac = hi > lo ? (s - lo) / (hi - lo) : 1.0;
            double cdf = ((double)(i - 1) + frac) / (PDR_CALIB_NQ - 1);
            double p = 1.0 - cdf;
            return p > cal->tail_q ? p : cal->tail_q;
        }
    }
    return cal->tail_q;
}

int pdr_calib_save(const pdr_calib *cal, const char *path, pdr_err *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return pdr_fail(err, PDR_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    fprintf(f, "pdr-calibration\t1\nn_null\t%zu\ntail_q\t%.9g\nthreshold\t%.9g\nlambda\t%.9g\nquantiles", cal->n_null,
            cal->tail_q, cal->threshold, cal->lambda);
    for (int i = 0; i < PDR_CALIB_NQ; i++)
        fprintf(f, "\t%.9g", cal->quantiles[i]);
    fputc('\n', f);
    if (cal->scores != PDR_CALIB_SCORES_UNKNOWN) /* after quantiles: older readers stop before it */
        fprintf(f, "scores\t%s\n", pdr_calib_scores_name(cal->scores));
    int bad = ferror(f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        bad = 1;
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return pdr_fail(err, PDR_EIO, "%s: cannot write: %s", path, strerror(errno));
    }
    return pdr_file_sync_dir(path, err); /* the rename that marks a database complete, on disk */
}

const char *pdr_calib_scores_name(int scores)
{
    switch (scores) {
    case PDR_CALIB_SCORES_COSINE: return "cosine";
    case PDR_CALIB_SCORES_ADJUSTED: return "adjusted";
    default: return "unknown";
    }
}

/* The optional "key<TAB>value" lines after quantiles; unknown keys are skipped. 0, or -1 for a
 * known key with a bad value. */
static int load_optional(FILE *f, pdr_calib *cal)
{
    char line[256];
    int c;
    while ((c = fgetc(f)) == '\n' || c == '\r') /* the end of the quantiles line */
        ;
    if (c == EOF)
        return 0;
    ungetc(c, f);
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        int whole = len > 0 && line[len - 1] == '\n';
        line[strcspn(line, "\r\n")] = '\0';
        while (!whole && (c = fgetc(f)) != EOF && c != '\n') /* an over-long line: skip the rest */
            ;
        char *value = strchr(line, '\t');
        if (!value)
            continue;
        *value++ = '\0';
        if (strcmp(line, "scores") != 0)
            continue;
        if (strcmp(value, "adjusted") == 0)
            cal->scores = PDR_CALIB_SCORES_ADJUSTED;
        else if (strcmp(value, "cosine") == 0)
            cal->scores = PDR_CALIB_SCORES_COSINE;
        else
            return -1;
    }
    return 0;
}

int pdr_calib_load(const char *path, pdr_calib *cal, pdr_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return pdr_fail(err, PDR_EIO, "%s: cannot open: %s", path, strerror(errno));
    memset(cal, 0, sizeof *cal);
    int version = 0, ok = 1;
    ok = ok && fscanf(f, "pdr-calibration\t%d\n", &version) == 1 && version == 1;
    ok = ok && fscanf(f, "n_null\t%zu\n", &cal->n_null) == 1;
    ok = ok && fscanf(f, "tail_q\t%lf\n", &cal->tail_q) == 1;
    ok = ok && fscanf(f, "threshold\t%lf\n", &cal->threshold) == 1;
    ok = ok && fscanf(f, "lambda\t%lf\n", &cal->lambda) == 1;
    ok = ok && fscanf(f, "quantiles") == 0;
    for (int i = 0; ok && i < PDR_CALIB_NQ; i++)
        ok = fscanf(f, "%lf", &cal->quantiles[i]) == 1 && isfinite(cal->quantiles[i]);
    int bad_scores = ok && load_optional(f, cal) != 0;
    fclose(f);
    if (bad_scores)
        return pdr_fail(err, PDR_EFORMAT, "%s: the 'scores' line is neither 'adjusted' nor 'cosine'", path);
    if (!ok || !(cal->tail_q > 0 && cal->tail_q <= 1) || !(cal->lambda > 0 && isfinite(cal->lambda)) ||
        !isfinite(cal->threshold))
        return pdr_fail(err, PDR_EFORMAT, "%s: not a pdr calibration file (version 1)", path);
    /* what pdr_calib_fit writes: at least 100 null scores, their percentiles in order (the
     * p-values below the tail interpolate between them) */
    if (cal->n_null < 100)
        return pdr_fail(err, PDR_EFORMAT, "%s: n_null %zu: a calibration needs at least 100 null scores", path,
                        cal->n_null);
    for (int i = 1; i < PDR_CALIB_NQ; i++)
        if (cal->quantiles[i] < cal->quantiles[i - 1])
            return pdr_fail(err, PDR_EFORMAT, "%s: quantile %d (%g) is below quantile %d (%g): the file is damaged",
                            path, i, cal->quantiles[i], i - 1, cal->quantiles[i - 1]);
    return PDR_OK;
}
