/* pdr_report.c: TSV and JSON renderings of hits (see pdr_report.h).
 *
 * The TSV writer is the hot path of an all-vs-all run (millions of lines), so its numbers are
 * formatted here rather than by printf, which costs ~0.4 us per line in glibc: the text is the
 * same (see pdr_report_score and pdr_report_evalue). */
#include "pdr_report.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdr_align.h"

static char *put_u64(char *p, uint64_t v)
{
    char t[24];
    int n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = t[--n];
    return p;
}

/* A float times 10^4 is exact in a double (24-bit mantissa times a 14-bit number), and nearbyint
 * rounds half to even like glibc's correctly rounded printf: so this is printf's "%.4f". */
size_t pdr_report_score(char *buf, float x)
{
    double v = nearbyint((double)x * 10000.0);
    if (!(fabs(v) < 1e15))
        return (size_t)snprintf(buf, 32, "%.4f", x);
    char *p = buf;
    if (signbit(x))
        *p++ = '-'; /* glibc writes -0.0000 for small negatives too */
    uint64_t u = (uint64_t)fabs(v);
    p = put_u64(p, u / 10000);
    unsigned f = (unsigned)(u % 10000);
    *p++ = '.';
    *p++ = (char)('0' + f / 1000);
    *p++ = (char)('0' + f / 100 % 10);
    *p++ = (char)('0' + f / 10 % 10);
    *p++ = (char)('0' + f % 10);
    *p = '\0';
    return (size_t)(p - buf);
}

/* printf's "%.3g" for E-values (>= 0): three significant digits, trailing zeros dropped, the
 * exponent form below 1e-4 and from 1000 on. The scaling to three digits goes through a power
 * of ten, which can round the wrong way next to a tie (3.835e-12): there glibc's snprintf, which
 * rounds the exact binary value, decides, so the text is always printf's. */
size_t pdr_report_evalue(char *buf, double x)
{
    if (x == 0) {
        memcpy(buf, "0", 2);
        return 1;
    }
    if (!isfinite(x) || x < 0 || x < 1e-300 || x > 1e300)
        return (size_t)snprintf(buf, 32, "%.3g", x);
    int e = (int)floor(log10(x));
    double scaled = x / pow(10.0, e - 2);
    if (scaled >= 999.5 || scaled < 99.5) { /* log10 rounded at a power of ten, or a carry: rescale */
        e += scaled >= 999.5 ? 1 : -1;
        scaled = x / pow(10.0, e - 2);
    }
    if (fabs(scaled - floor(scaled) - 0.5) < 1e-6 || scaled >= 999.5 || scaled < 99.5)
        return (size_t)snprintf(buf, 32, "%.3g", x); /* next to a tie, or still at a boundary */
    long r = lrint(scaled);
    char d[3] = {(char)('0' + r / 100), (char)('0' + r / 10 % 10), (char)('0' + r % 10)};
    int nd = d[2] != '0' ? 3 : d[1] != '0' ? 2 : 1; /* significant digits after dropping zeros */
    char *p = buf;
    if (e < -4 || e >= 3) {
        *p++ = d[0];
        if (nd > 1) {
            *p++ = '.';
            for (int i = 1; i < nd; i++)
                *p++ = d[i];
        }
        *p++ = 'e';
        *p++ = e < 0 ? '-' : '+';
        int ae = abs(e);
        if (ae < 10)
            *p++ = '0';
        p = put_u64(p, (uint64_t)ae);
    } else if (e >= 0) { /* e + 1 integer digits, then what is left */
        for (int i = 0; i <= e; i++)
            *p++ = d[i];
        if (nd > e + 1) {
            *p++ = '.';
            for (int i = e + 1; i < nd; i++)
                *p++ = d[i];
        }
    } else { /* 0.000ddd */
        *p++ = '0';
        *p++ = '.';
        for (int i = 0; i < -e - 1; i++)
            *p++ = '0';
        for (int i = 0; i < nd; i++)
            *p++ = d[i];
    }
    *p = '\0';
    return (size_t)(p - buf);
}

/* The bits of raw score 0 (4.6), which pdr_hit.bits holds for a pair that was aligned but has
 * no residue pair scoring above 0 (a query of only X): there is no local alignment, and 4.6
 * would read as one. A hit has an alignment when its bits are above this (0: not aligned; any
 * alignment of score >= 1 has more). Computed once per call: the TSV writer is a hot path. */
static float no_alignment_bits(void) { return (float)pdr_align_bits(0.0); }

/* An aligned hit's bit score as "%.1f", or "-" (no alignment: bits <= no_aln, see above); buf
 * holds 32 bytes. */
static size_t format_bits(char *buf, float bits, float no_aln)
{
    if (!(bits > no_aln)) {
        memcpy(buf, "-", 2);
        return 1;
    }
    return (size_t)snprintf(buf, 32, "%.1f", bits);
}

void pdr_report_tsv(pdr_buf *out, const pdr_db *db, const char *query_id, size_t query_len, const pdr_hit *hits,
                    size_t n_hits)
{
    size_t qlen_id = strlen(query_id);
    float no_aln = no_alignment_bits();
    for (size_t j = 0; j < n_hits; j++) {
        const char *target = pdr_db_id(db, hits[j].row);
        size_t tlen_id = strlen(target);
        char line[512], *p = line;
        if (qlen_id + tlen_id > sizeof line - 120) { /* very long ids: the general path, the same numbers */
            char bits[32], score[32], evalue[32], cosine[32];
            format_bits(bits, hits[j].bits, no_aln);
            pdr_report_score(score, hits[j].score);
            pdr_report_evalue(evalue, hits[j].evalue);
            pdr_report_score(cosine, hits[j].cosine);
            pdr_buf_printf(out, "%s\t%s\t%s\t%s\t%zu\t%zu\t%d\t%s\t%s\n", query_id, target, score, evalue, j + 1,
                           query_len, (int)pdr_db_length(db, hits[j].row), cosine, bits);
            continue;
        }
        memcpy(p, query_id, qlen_id);
        p += qlen_id;
        *p++ = '\t';
        memcpy(p, target, tlen_id);
        p += tlen_id;
        *p++ = '\t';
        p += pdr_report_score(p, hits[j].score);
        *p++ = '\t';
        p += pdr_report_evalue(p, hits[j].evalue);
        *p++ = '\t';
        p = put_u64(p, j + 1);
        *p++ = '\t';
        p = put_u64(p, query_len);
        *p++ = '\t';
        int tl = (int)pdr_db_length(db, hits[j].row);
        if (tl < 0) {
            *p++ = '-';
            tl = -tl;
        }
        p = put_u64(p, (uint64_t)tl);
        *p++ = '\t';
        p += pdr_report_score(p, hits[j].cosine);
        *p++ = '\t';
        p += format_bits(p, hits[j].bits, no_aln);
        *p++ = '\n';
        pdr_buf_append(out, line, (size_t)(p - line));
    }
}

void pdr_report_blast6(pdr_buf *out, const pdr_db *db, const char *query_id, const pdr_hit *hits,
                       const pdr_alignment *alns, size_t n_hits)
{
    for (size_t j = 0; j < n_hits; j++) {
        const pdr_alignment *a = &alns[j];
        if (a->length == 0) /* nothing aligns: BLAST reports no such hit, and it has no coordinates */
            continue;
        char evalue[32];
        pdr_report_evalue(evalue, hits[j].evalue);
        double pident = a->length ? 100.0 * a->identities / a->length : 0.0;
        pdr_buf_printf(out, "%s\t%s\t%.3f\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%.1f\n", query_id,
                       pdr_db_id(db, hits[j].row), pident, (int)a->length, (int)a->mismatches, (int)a->gap_opens,
                       (int)a->qstart, (int)a->qend, (int)a->tstart, (int)a->tend, evalue, hits[j].bits);
    }
}

int pdr_report_json_query(pdr_buf *out, const pdr_db *db, const char *query_id, size_t query_len, const pdr_hit *hits,
                          size_t n_hits, pdr_err *err)
{
    pdr_buf_puts(out, "{\"query\":");
    pdr_buf_json_str(out, query_id);
    pdr_buf_printf(out, ",\"length\":%zu,\"hits\":[", query_len);
    float no_aln = no_alignment_bits();
    int descriptions = pdr_db_has_descriptions(db), rc = PDR_OK;
    char *desc = NULL;
    size_t desc_cap = 0;
    for (size_t j = 0; j < n_hits && !rc; j++) {
        pdr_buf_puts(out, j ? ",{\"target\":" : "{\"target\":");
        pdr_buf_json_str(out, pdr_db_id(db, hits[j].row));
        pdr_buf_printf(out, ",\"score\":%.4f,\"evalue\":", hits[j].score);
        pdr_buf_json_num(out, hits[j].evalue);
        pdr_buf_printf(out, ",\"rank\":%zu,\"length\":%d,\"cosine\":%.4f,\"bits\":", j + 1,
                       (int)pdr_db_length(db, hits[j].row), hits[j].cosine);
        if (hits[j].bits > no_aln)
            pdr_buf_printf(out, "%.1f", hits[j].bits);
        else
            pdr_buf_puts(out, "null");
        if (descriptions && !(rc = pdr_db_description(db, hits[j].row, &desc, &desc_cap, err))) {
            pdr_buf_puts(out, ",\"description\":");
            pdr_buf_json_str(out, desc);
        }
        pdr_buf_puts(out, "}");
    }
    pdr_buf_puts(out, "]}");
    free(desc);
    return rc;
}
