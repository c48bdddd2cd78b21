/* pdr_report.h: search hits as text, in the formats the CLI and the HTTP service share.
 *
 * TSV (BLAST-tabular style, no header line, one hit per line, tab-separated):
 *   query  target  score  evalue  rank  qlen  tlen  cosine  bits
 * score is the embedding score (pdr_hit; 4 decimals, "%.4f"), evalue "%.3g", rank 1-based
 * within the query, cosine "%.4f", bits the alignment bit score "%.1f", or "-" when the hit
 * has no alignment: not aligned, or aligned with nothing scoring above 0 (pdr_hit.bits then holds
 * the 4.6 bits of raw score 0, which is not shown).
 * BLAST6 (`--format blast6`: the 12 columns of BLAST's -outfmt 6, no header line):
 *   qseqid sseqid pident length mismatch gapopen qstart qend sstart send evalue bitscore
 * from each hit's traced alignment (pdr_alignment): pident = 100 x identities / length ("%.3f"),
 * coordinates 1-based inclusive, evalue as in TSV (pdr's combined E-value), bitscore "%.1f".
 * A hit whose alignment is empty (length 0: no residue pair scores above 0) is left out, as
 * BLAST reports none: a query can have fewer lines than hits.
 * JSON: one object per query: {"query": id, "length": n, "hits": [{"target": id,
 *   "score": s, "evalue": e, "rank": r, "length": tlen, "cosine": c, "bits": b or null (as TSV's "-"),
 *   "description": the target's FASTA description}]}; "description" only from a database that keeps
 *   descriptions (pdr_db_has_descriptions), "" for a header without one.
 */
#ifndef PDR_REPORT_H
#define PDR_REPORT_H

#include <stddef.h>

#include "pdr_buf.h"
#include "pdr_db.h"

/* The TSV numbers: score as "%.4f" (exactly printf's text), E-value as "%.3g" (printf's text
 * but for the last digit in rare exact ties). buf holds at least 32 bytes; returns the length
 * written (NUL-terminated). */
size_t pdr_report_score(char *buf, float score);
size_t pdr_report_evalue(char *buf, double evalue);

void pdr_report_tsv(pdr_buf *out, const pdr_db *db, const char *query_id, size_t query_len, const pdr_hit *hits,
                    size_t n_hits);
void pdr_report_blast6(pdr_buf *out, const pdr_db *db, const char *query_id, const pdr_hit *hits,
                       const pdr_alignment *alns, size_t n_hits);
/* Fails (PDR_EIO, PDR_ENOMEM) only when a description cannot be read. */
int pdr_report_json_query(pdr_buf *out, const pdr_db *db, const char *query_id, size_t query_len, const pdr_hit *hits,
                          size_t n_hits, pdr_err *err);

#endif
