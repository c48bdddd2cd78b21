/* pdr_report.c: TSV and JSON renderings of hits (see pdr_report.h). */
#include "pdr_report.h"

void pdr_report_tsv(pdr_buf *out, const pdr_db *db, const char *query_id, size_t query_len, const pdr_hit *hits,
                    size_t n_hits)
{
    for (size_t j = 0; j < n_hits; j++)
        pdr_buf_printf(out, "%s\t%s\t%.4f\t%.3g\t%zu\t%zu\t%d\n", query_id, pdr_db_id(db, hits[j].row), hits[j].score,
                       hits[j].evalue, j + 1, query_len, (int)pdr_db_length(db, hits[j].row));
}

void pdr_report_json_query(pdr_buf *out, const pdr_db *db, const char *query_id, size_t query_len, const pdr_hit *hits,
                           size_t n_hits)
{
    pdr_buf_puts(out, "{\"query\":");
    pdr_buf_json_str(out, query_id);
    pdr_buf_printf(out, ",\"length\":%zu,\"hits\":[", query_len);
    for (size_t j = 0; j < n_hits; j++) {
        pdr_buf_puts(out, j ? ",{\"target\":" : "{\"target\":");
        pdr_buf_json_str(out, pdr_db_id(db, hits[j].row));
        pdr_buf_printf(out, ",\"score\":%.4f,\"evalue\":", hits[j].score);
        pdr_buf_json_num(out, hits[j].evalue);
        pdr_buf_printf(out, ",\"rank\":%zu,\"length\":%d}", j + 1, (int)pdr_db_length(db, hits[j].row));
    }
    pdr_buf_puts(out, "]}");
}
