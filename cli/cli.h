/* cli.h: what the subcommand files of the `pdr` executable share.
 * Exit codes: 0 ok, 1 runtime error, 2 usage error. Messages go to stderr as "pdr VERB: ...". */
#ifndef PDR_CLI_H
#define PDR_CLI_H

#include <stddef.h>

#include "pdr_bulk.h"
#include "pdr_db.h"
#include "pdr_encoder.h"

#define EXIT_OK 0
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

int cmd_embed(int argc, char **argv);
int cmd_makedb(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_easy_search(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_version(int argc, char **argv);

/* Print "pdr VERB: message" to stderr. */
void cli_error(const char *verb, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Parse a positive integer option value; prints a usage error and returns -1 when invalid. */
long cli_parse_long(const char *verb, const char *opt, const char *value, long min, long max);
/* As cli_parse_long, but value may also be word (e.g. "all"), which gives word_value (>= 0); the
 * error message names word too. */
long cli_parse_long_or(const char *verb, const char *opt, const char *value, long min, long max, const char *word,
                       long word_value);
double cli_parse_double(const char *verb, const char *opt, const char *value, int *ok);
/* Process-wide thread settings, set once: OpenBLAS single-threaded (workers are threads),
 * OpenMP (FAISS) to n. Returns the effective worker count (n <= 0: all cores). */
int cli_set_threads(int n);
/* The default model (pdr_encoder_default_model) into buf; when that is the kmer3 baseline because
 * no trained model was found, says so on stderr (a baseline is not the product). */
const char *cli_default_model(const char *verb, char *buf, size_t size);
/* Open the model (NULL = default), printing the error. */
pdr_encoder *cli_open_model(const char *verb, const char *model);
/* The model a database was built with: the kmer3 baseline by name, otherwise the given (or
 * default) model file, which must have the same name and version; prints the error. */
pdr_encoder *cli_open_db_model(const char *verb, const pdr_db *db, const char *model);
/* Progress and warning printers for bulk embedding (progress bar on a TTY, else a summary). */
void cli_bulk_callbacks(pdr_bulk_opts *opts, const char *verb);

#endif
