/* pdr_kmer.c: hashed 3-mer composition (see pdr_kmer.h). */
#include "pdr_kmer.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static int residue_code(char c)
{
    static const char alphabet[] = "ACDEFGHIKLMNPQRSTVWY";
    const char *p = (c >= 'A' && c <= 'Z') ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : 20;
}

/* splitmix64 finaliser: a fixed, well-mixed hash of the k-mer code. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static void add_feature(uint64_t code, int dim, float *out)
{
    uint64_t h = mix(code);
    out[h % (uint64_t)dim] += (h >> 63) ? 1.0f : -1.0f;
}

int pdr_kmer_embed(const char *seq, size_t len, int dim, float *out, pdr_err *err)
{
    if (len == 0)
        return pdr_fail(err, PDR_EINPUT, "kmer3 encoder: empty sequence");
    if (dim <= 0)
        return pdr_fail(err, PDR_EINPUT, "kmer3 encoder: dimension %d", dim);
    memset(out, 0, sizeof(float) * (size_t)dim);
    if (len < 3) {
        for (size_t i = 0; i < len; i++)
            add_feature(1000000u + (uint64_t)residue_code(seq[i]), dim, out);
    } else {
        int a = residue_code(seq[0]), b = residue_code(seq[1]);
        for (size_t i = 2; i < len; i++) {
            int c = residue_code(seq[i]);
            add_feature((uint64_t)(a * 441 + b * 21 + c), dim, out);
            a = b;
            b = c;
        }
    }
    double norm = 0.0;
    for (int j = 0; j < dim; j++)
        norm += (double)out[j] * out[j];
    if (norm == 0.0) { /* all features cancelled: fall back to a fixed unit vector */
        out[0] = 1.0f;
        return PDR_OK;
    }
    float inv = (float)(1.0 / sqrt(norm));
    for (int j = 0; j < dim; j++)
        out[j] *= inv;
    return PDR_OK;
}
