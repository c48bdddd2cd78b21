/* cmd_version.c: `pdr version`: what this binary is and which model it uses (the default, or --model's). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <H5public.h>
#include <microhttpd.h>

#include "cli.h"
#include "pdr_align.h"
#include "pdr_db.h"
#include "pdr_index.h"

static const char version_usage[] =
    "usage: pdr version [--model PATH]\n\n"
    "Prints the pdr version, the model (the default, or --model's: name, version, whether it is learned or\n"
    "the kmer3 baseline), the alignment settings and library versions.\n";

int cmd_version(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    const char *model = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'h': fputs(version_usage, stdout); return EXIT_OK;
        default: fputs(version_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("version", "unexpected argument '%s'", argv[optind]);
        fputs(version_usage, stderr);
        return EXIT_USAGE;
    }
    printf("pdr %s\n", PDR_VERSION);
    int is_default = model == NULL, default_broken = 0;
    char path[4096];
    if (is_default)
        model = cli_default_model("version", path, sizeof path);
    pdr_encoder *enc = NULL;
    pdr_err err;
    pdr_err_clear(&err);
    if (pdr_encoder_open(model, &enc, &err) == 0) {
        printf("model: %s (version %s, dim %d, %s) from %s\n", pdr_encoder_name(enc), pdr_encoder_version(enc),
               pdr_encoder_dim(enc),
               pdr_encoder_is_learned(enc) ? "trained CNN encoder"
                                           : "NON-LEARNED hashed 3-mer baseline, not the product",
               model);
        if (pdr_encoder_is_learned(enc))
            printf("encoder products: %s%s\n", pdr_encoder_precision(enc),
                   strcmp(pdr_encoder_precision(enc), "bfloat16") == 0 ? " (AVX-512 BF16; PDR_CNN_FP32=1 for float32)"
                                                                       : "");
        const pdr_background *bg = pdr_encoder_background(enc);
        if (bg)
            printf("scores: background-adjusted (cosine - mean of the two background levels; %zu background "
                   "proteins, percentile %g)\n",
                   pdr_background_count(bg), pdr_background_percentile(bg));
        else
            printf("scores: cosine (the model has no background sample)\n");
        int w = 0, st = 0;
        if (pdr_encoder_segment_background(enc, &w, &st))
            printf("segment databases (--segments): available (windows of %d residues every %d)\n", w, st);
        pdr_encoder_free(enc);
    } else {
        if (!is_default) {
            cli_error("version", "cannot open model '%s': %s", model, err.msg);
            return EXIT_RUNTIME;
        }
        /* the rest is still printed (it helps to diagnose), but the exit says the setup is broken */
        printf("model: cannot open default model %s: %s\n", model, err.msg);
        default_broken = 1;
    }
    printf("alignment re-ranking: Smith-Waterman, BLOSUM62, gaps %d/%d, composition-based statistics (lambda "
           "ratio in [%.1f, 1]; realigned under the scaled matrix where the alignment decides), the best %d "
           "candidates per query by default (--align); kernels: %s\n",
           PDR_ALIGN_GAP_OPEN, PDR_ALIGN_GAP_EXTEND, PDR_ALIGN_RATIO_MIN, PDR_DB_ALIGN_DEFAULT, pdr_align_simd());
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    printf("hdf5 %u.%u.%u, libmicrohttpd %s, faiss 1.7.3 (C API; scalar quantizer %s)\n", maj, min, rel,
           MHD_get_version(), pdr_index_simd());
    if (default_broken) {
        cli_error("version", "the default model %s cannot be used: %s", model, err.msg);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}
