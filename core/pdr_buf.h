/* pdr_buf.h: a growable byte buffer for building TSV and JSON output (CLI and HTTP replies).
 * Appends never fail silently: on allocation failure the buffer is marked failed, later
 * appends are ignored, and pdr_buf_failed() says so. */
#ifndef PDR_BUF_H
#define PDR_BUF_H

#include <stddef.h>

typedef struct pdr_buf {
    char *data; /* NUL-terminated while not failed */
    size_t len;
    size_t cap;
    int failed;
} pdr_buf;

void pdr_buf_init(pdr_buf *b);
void pdr_buf_free(pdr_buf *b);
void pdr_buf_reset(pdr_buf *b); /* len = 0, keeps the memory */
void pdr_buf_append(pdr_buf *b, const char *s, size_t n);
void pdr_buf_puts(pdr_buf *b, const char *s);
void pdr_buf_printf(pdr_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Append s as a JSON string literal, quotes included; invalid UTF-8 bytes become U+FFFD. */
void pdr_buf_json_str(pdr_buf *b, const char *s);
/* Append a number as JSON (non-finite values become null). */
void pdr_buf_json_num(pdr_buf *b, double v);
int pdr_buf_failed(const pdr_buf *b);
/* Take ownership of the data (caller frees); the buffer is left empty. */
char *pdr_buf_steal(pdr_buf *b, size_t *ret_len);

#endif
