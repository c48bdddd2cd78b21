/* cmd_embed.c: `pdr embed`: FASTA in, HDF5 embedding store out (see embed/pdr_bulk.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char embed_usage[] =
    "usage: pdr embed IN.fasta[.gz]|- -o OUT.h5 [options]\n\n"
    "Embeds every protein of IN (plain or gzip FASTA, '-' = stdin) into the HDF5 store OUT\n"
    "(format in README.md). Resumable: rerun the same command after a crash or kill and it\n"
    "skips the ids already stored (in OUT or in OUT.partial/). An existing OUT keeps the options\n"
    "it was made with: a rerun with another model, --fp16, --segments, --window or --stride is\n"
    "refused (exit 1), and so is one where a stored id has another sequence. Invalid records are\n"
    "reported on stderr and skipped.\n\n"
    "options:\n"
    "  -o, --out FILE          output HDF5 store (required; a file path: HDF5 cannot go to stdout)\n"
    "  -t, --threads N         worker threads (default: all cores)\n"
    "      --batch-residues R  residues per batch and part file (default 2000000)\n"
    "      --fp16              store embeddings as float16\n"
    "      --strict            stop at the first invalid record (exit 1)\n"
    "      --max-length AA     reject sequences longer than AA residues (default 100000; 0 = no limit)\n"
    "      --segments          also store per-segment vectors (trained model only)\n"
    "      --window W          segment window in residues (default 100)\n"
    "      --stride S          segment stride in residues (default 50)\n"
    "  -m, --model M           model file, or 'kmer3' for the baseline (default: see pdr version)\n"
    "  -h, --help              this help\n";

enum { OPT_BATCH = 256, OPT_FP16, OPT_STRICT, OPT_MAXLEN, OPT_SEGMENTS, OPT_WINDOW, OPT_STRIDE };

/* A symlink OUT stands for its target (a link to a scratch disk): the store is written there
 * and the link kept, rather than replaced by a regular file beside it. A dangling link names the
 * file to create, relative to the link's directory. Returns out or buf. */
static const char *resolve_out(const char *out, char *buf, size_t size)
{
    struct stat st;
    if (lstat(out, &st) != 0 || !S_ISLNK(st.st_mode))
        return out;
    char *abs = realpath(out, NULL);
    if (abs) {
        snprintf(buf, size, "%s", abs);
        free(abs);
        return buf;
    }
    char target[4096];
    ssize_t n = readlink(out, target, sizeof target - 1);
    if (n <= 0)
        return out;
    target[n] = '\0';
    const char *slash = strrchr(out, '/');
    int dir_len = target[0] != '/' && slash ? (int)(slash - out + 1) : 0;
    snprintf(buf, size, "%.*s%s", dir_len, out, target);
    return buf;
}

int cmd_embed(int argc, char **argv)
{
    static const struct option longopts[] = {{"out", required_argument, 0, 'o'},
                                             {"threads", required_argument, 0, 't'},
                                             {"model", required_argument, 0, 'm'},
                                             {"batch-residues", required_argument, 0, OPT_BATCH},
                                             {"fp16", no_argument, 0, OPT_FP16},
                                             {"strict", no_argument, 0, OPT_STRICT},
                                             {"max-length", required_argument, 0, OPT_MAXLEN},
                                             {"segments", no_argument, 0, OPT_SEGMENTS},
                                             {"window", required_argument, 0, OPT_WINDOW},
                                             {"stride", required_argument, 0, OPT_STRIDE},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *out = NULL, *model = NULL;
    int threads = 0, window_given = 0, stride_given = 0;
    long v;
    pdr_bulk_opts opts;
    pdr_bulk_opts_default(&opts);
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:t:m:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'm': model = optarg; break;
        case 't':
            if ((v = cli_parse_long("embed", "--threads", optarg, 1, 1024)) < 0)
                return EXIT_USAGE;
            threads = (int)v;
            break;
        case OPT_BATCH:
            if ((v = cli_parse_long("embed", "--batch-residues", optarg, 1, 1L << 40)) < 0)
                return EXIT_USAGE;
            opts.batch_residues = (size_t)v;
            break;
        case OPT_FP16: opts.fp16 = 1; break;
        case OPT_STRICT: opts.strict = 1; break;
        case OPT_MAXLEN:
            if ((v = cli_parse_long("embed", "--max-length", optarg, 0, 1L << 40)) < 0)
                return EXIT_USAGE;
            opts.max_length = (size_t)v;
            break;
        case OPT_SEGMENTS: opts.segments = 1; break;
        case OPT_WINDOW:
            if ((v = cli_parse_long("embed", "--window", optarg, 1, 1 << 20)) < 0)
                return EXIT_USAGE;
            opts.window = (int)v;
            window_given = 1;
            break;
        case OPT_STRIDE:
            if ((v = cli_parse_long("embed", "--stride", optarg, 1, 1 << 20)) < 0)
                return EXIT_USAGE;
            opts.stride = (int)v;
            stride_given = 1;
            break;
        case 'h': fputs(embed_usage, stdout); return EXIT_OK;
        default: fputs(embed_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind + 1 != argc || !out) {
        cli_error("embed", "%s", !out ? "missing -o OUT.h5" : "expected exactly one input FASTA");
        fputs(embed_usage, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(out, "-") == 0) {
        cli_error("embed", "-o -: embed writes an HDF5 store to a file path, and stdout cannot take HDF5 "
                           "(it needs a seekable file); give a file name, e.g. -o out.h5");
        return EXIT_USAGE;
    }
    if (!opts.segments && (window_given || stride_given)) {
        cli_error("embed", "%s sets the segment windows: it needs --segments", window_given ? "--window" : "--stride");
        return EXIT_USAGE;
    }
    if (opts.segments && opts.stride > opts.window) { /* the defaults are 100 and 50 */
        cli_error("embed",
                  "--stride %d is larger than --window %d: residues between windows would be in no segment; "
                  "use a stride of at most the window",
                  opts.stride, opts.window);
        return EXIT_USAGE;
    }
    opts.threads = cli_set_threads(threads);
    pdr_encoder *enc = cli_open_model("embed", model);
    if (!enc)
        return EXIT_RUNTIME;
    cli_bulk_callbacks(&opts, "embed");
    pdr_err err;
    pdr_err_clear(&err);
    pdr_bulk_stats stats;
    char resolved[4200];
    int rc = pdr_bulk_embed(enc, argv[optind], resolve_out(out, resolved, sizeof resolved), &opts, &stats, &err);
    pdr_encoder_free(enc);
    if (rc) {
        cli_error("embed", "%s", err.msg);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}
