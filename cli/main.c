/* main.c: the `pdr` executable: one table of subcommands, like mmseqs and diamond.
 *   pdr VERB [options] args...      pdr VERB --help      pdr --help
 * Exit codes: 0 ok, 1 runtime error, 2 usage error. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "pdr_store.h"

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} subcommand;

static const subcommand commands[] = {
    {"embed", cmd_embed, "embed a FASTA file into an HDF5 store (resumable)"},
    {"makedb", cmd_makedb, "embed a FASTA file and build a searchable database directory"},
    {"search", cmd_search, "search query FASTA against a database; tabular hits out"},
    {"easy-search", cmd_easy_search, "embed target FASTA, search query FASTA, write hits (one step)"},
    {"serve", cmd_serve, "HTTP service answering FASTA queries against a database"},
    {"version", cmd_version, "print versions of pdr, the default model and libraries"},
};

static void usage(FILE *f)
{
    fprintf(f,
            "pdr %s: protein homology search by dense retrieval\n\n"
            "usage: pdr <command> [options] <args>\n\ncommands:\n",
            PDR_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nRun 'pdr <command> --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        argv[1] = "pdr";
        return cmd_version(argc - 1, argv + 1);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            /* HDF5's exit-time cleanup crashes after a failed close (disk full): only a run that
             * succeeded is known to have closed every file (pdr_store.h) */
            /* getopt names argv[0] in its messages: "pdr search: unrecognized option" */
            char prog[64];
            snprintf(prog, sizeof prog, "pdr %s", commands[i].name);
            argv[1] = prog;
            pdr_store_process_begin();
            int rc = commands[i].run(argc - 1, argv + 1);
            pdr_store_process_end(rc == EXIT_OK);
            return rc;
        }
    fprintf(stderr, "pdr: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
