/* residue_sw.c: Smith-Waterman over a float score matrix, for train/residue_sw.py (session 26
 * experiment: local alignment of per-residue hidden states). Built by that script with
 * `gcc -O3 -shared -fPIC`; not part of pdr.
 *
 * s is na x nb, row-major: s[i * nb + j] is the score of residue i of a against residue j of b.
 * Gaps cost gap_open for the first skipped residue and gap_extend for each further one. Returns
 * the best local alignment score (0 when every cell is negative), or -1 when out of memory. */
#include <stdlib.h>

float pdr_residue_sw(const float *s, int na, int nb, float gap_open, float gap_extend)
{
    float *h = calloc((size_t)nb + 1, sizeof(float));
    float *e = malloc(((size_t)nb + 1) * sizeof(float));
    float best = 0.0f;

    if (h == NULL || e == NULL) {
        free(h);
        free(e);
        return -1.0f;
    }
    for (int j = 0; j <= nb; j++)
        e[j] = -1e30f;
    for (int i = 1; i <= na; i++) {
        const float *row = s + (size_t)(i - 1) * (size_t)nb;
        float diag = 0.0f, f = -1e30f, left = 0.0f;

        for (int j = 1; j <= nb; j++) {
            float up = h[j];
            float cell;

            e[j] = e[j] - gap_extend > up - gap_open ? e[j] - gap_extend : up - gap_open;
            f = f - gap_extend > left - gap_open ? f - gap_extend : left - gap_open;
            cell = diag + row[j - 1];
            if (e[j] > cell)
                cell = e[j];
            if (f > cell)
                cell = f;
            if (cell < 0.0f)
                cell = 0.0f;
            diag = up;
            h[j] = cell;
            left = cell;
            if (cell > best)
                best = cell;
        }
    }
    free(h);
    free(e);
    return best;
}
