/* cli_util.c: option parsing, thread settings, model opening and progress output. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <errno.h>
#include <sched.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>
#include <omp.h>

#include "cli.h"
#include "pdr_kmer.h"

void openblas_set_num_threads(int num_threads);

void cli_error(const char *verb, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "pdr %s: ", verb);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* The whole of value as a decimal integer in [min, max]; returns 0 when it is one. */
static int parse_long_in(const char *value, long min, long max, long *ret_v)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || !end || *end || end == value || v < min || v > max)
        return -1;
    *ret_v = v;
    return 0;
}

long cli_parse_long(const char *verb, const char *opt, const char *value, long min, long max)
{
    long v;
    if (parse_long_in(value, min, max, &v)) {
        cli_error(verb, "%s: expected an integer in [%ld, %ld], got '%s'", opt, min, max, value);
        return -1;
    }
    return v;
}

long cli_parse_long_or(const char *verb, const char *opt, const char *value, long min, long max, const char *word,
                       long word_value)
{
    long v;
    if (strcmp(value, word) == 0)
        return word_value;
    if (parse_long_in(value, min, max, &v)) {
        cli_error(verb, "%s: expected an integer in [%ld, %ld] or '%s', got '%s'", opt, min, max, word, value);
        return -1;
    }
    return v;
}

double cli_parse_double(const char *verb, const char *opt, const char *value, int *ok)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(value, &end);
    *ok = !(errno || !end || *end || end == value || v != v);
    if (!*ok)
        cli_error(verb, "%s: expected a number, got '%s'", opt, value);
    return v;
}

int cli_set_threads(int n)
{
    if (n <= 0) { /* the cores this process may run on (taskset, a container's cpuset), else all */
        cpu_set_t set;
        long cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)cores : 1;
    }
    /* PDR_BLAS_THREADS (default 1) exists to measure the other way of using the cores: fewer
     * workers with multi-threaded sgemm. Each worker embeds one sequence at a time. */
    const char *blas = getenv("PDR_BLAS_THREADS");
    int blas_threads = blas ? atoi(blas) : 1;
    openblas_set_num_threads(blas_threads > 0 ? blas_threads : 1);
    omp_set_num_threads(n);
    return n;
}

const char *cli_default_model(const char *verb, char *buf, size_t size)
{
    const char *model = pdr_encoder_default_model(buf, size);
    const char *env = getenv("PDR_MODEL");
    if (strcmp(model, PDR_MODEL_BUILTIN_KMER) == 0 && !(env && *env))
        cli_error(verb, "note: no trained model found (neither share/pdr/pdr_cnn_v1.h5 beside the binary's directory "
                        "nor the source tree's data/pdr_cnn_v1.h5): using the NON-LEARNED kmer3 baseline; set "
                        "PDR_MODEL or pass --model");
    return model;
}

pdr_encoder *cli_open_model(const char *verb, const char *model)
{
    char path[4096];
    if (!model)
        model = cli_default_model(verb, path, sizeof path);
    pdr_encoder *enc = NULL;
    pdr_err err;
    pdr_err_clear(&err);
    if (pdr_encoder_open(model, &enc, &err)) {
        cli_error(verb, "cannot open model '%s': %s", model, err.msg);
        return NULL;
    }
    return enc;
}

pdr_encoder *cli_open_db_model(const char *verb, const pdr_db *db, const char *model)
{
    const pdr_store_meta *m = pdr_db_meta(db);
    if (!model && strcmp(m->model_name, PDR_KMER_NAME) == 0)
        model = PDR_MODEL_BUILTIN_KMER;
    pdr_encoder *enc = cli_open_model(verb, model);
    if (!enc)
        return NULL;
    if (strcmp(pdr_encoder_name(enc), m->model_name) != 0 || strcmp(pdr_encoder_version(enc), m->model_version) != 0) {
        cli_error(verb,
                  "%s was built with model %s (version %s) but the model in use is %s (version %s): "
                  "pass the same --model, or rebuild the database",
                  pdr_db_path(db), m->model_name, m->model_version, pdr_encoder_name(enc), pdr_encoder_version(enc));
        pdr_encoder_free(enc);
        return NULL;
    }
    /* the same name and version with another background (an edited file): refused here, not by
     * every search (a service would otherwise start and answer 500s) */
    pdr_err err;
    pdr_err_clear(&err);
    if (pdr_db_check_backgrounds(db, pdr_encoder_background(enc), pdr_encoder_segment_background(enc, NULL, NULL),
                                 &err)) {
        cli_error(verb, "%s", err.msg);
        pdr_encoder_free(enc);
        return NULL;
    }
    return enc;
}

typedef struct progress_ctx {
    const char *verb;
    int tty;
    size_t warnings;
    /* the input's share read and the time when this run's first batch was embedded: a resumed run
     * skips its stored records in moments, so the ETA is taken from the progress since then */
    double f0, t0;
} progress_ctx;

static progress_ctx progress_state; /* one bulk run per process; set by cli_bulk_callbacks */

static void on_warning(void *ctx, const char *msg)
{
    progress_ctx *p = ctx;
    p->warnings++;
    if (p->tty)
        fputs("\r\033[K", stderr);
    fprintf(stderr, "pdr %s: skipped: %s\n", p->verb, msg);
}

static void on_progress(void *ctx, const pdr_bulk_stats *s, int final)
{
    progress_ctx *p = ctx;
    double rate = s->seconds > 0 ? (double)s->n_residues / s->seconds : 0.0;
    if (final) {
        if (p->tty)
            fputs("\r\033[K", stderr);
        fprintf(stderr,
                "pdr %s: %zu records read, %zu embedded, %zu already stored, %zu invalid skipped; "
                "%zu residues in %.1f s (%.0f residues/s); %zu proteins in the store\n",
                p->verb, s->n_records, s->n_embedded, s->n_existing, s->n_invalid, s->n_residues, s->seconds, rate,
                s->n_total);
        return;
    }
    if (!p->tty)
        return;
    fprintf(stderr, "\r\033[Kpdr %s: %zu sequences, %.1fM residues, %.0f residues/s", p->verb, s->n_embedded,
            (double)s->n_residues / 1e6, rate);
    if (s->n_existing)
        fprintf(stderr, " (resuming: %zu already stored)", s->n_existing);
    double f = s->input_fraction;
    if (p->f0 < 0 && s->n_embedded > 0 && f >= 0) {
        p->f0 = f;
        p->t0 = s->seconds;
    }
    if (f > 0.0 && f < 1.0) {
        fprintf(stderr, ", %.0f%%", 100.0 * f);
        if (p->f0 >= 0 && f > p->f0 && s->seconds > p->t0)
            fprintf(stderr, ", ETA %.0f s", (s->seconds - p->t0) * (1.0 - f) / (f - p->f0));
    }
    fflush(stderr);
}

void cli_bulk_callbacks(pdr_bulk_opts *opts, const char *verb)
{
    progress_state.verb = verb;
    progress_state.tty = isatty(STDERR_FILENO);
    progress_state.warnings = 0;
    progress_state.f0 = -1;
    progress_state.t0 = 0;
    opts->on_warning = on_warning;
    opts->on_progress = on_progress;
    opts->ctx = &progress_state;
}
