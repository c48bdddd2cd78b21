/* pdr_buf.c: growable buffer and JSON escaping (see pdr_buf.h). */
#include "pdr_buf.h"
#include "pdr_utf8.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pdr_buf_init(pdr_buf *b) { memset(b, 0, sizeof *b); }

void pdr_buf_free(pdr_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void pdr_buf_reset(pdr_buf *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int reserve(pdr_buf *b, size_t extra)
{
    if (b->failed)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void pdr_buf_append(pdr_buf *b, const char *s, size_t n)
{
    if (reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void pdr_buf_puts(pdr_buf *b, const char *s) { pdr_buf_append(b, s, strlen(s)); }

void pdr_buf_printf(pdr_buf *b, const char *fmt, ...)
{
    /* Format straight into the free space (one pass in the common case); grow and redo when
     * it does not fit. */
    if (reserve(b, 128))
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->data[b->len] = '\0';
        return;
    }
    if ((size_t)n >= b->cap - b->len) {
        if (reserve(b, (size_t)n))
            return;
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void pdr_buf_json_str(pdr_buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + strlen(s);
    pdr_buf_append(b, "\"", 1);
    while (*p) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            pdr_buf_append(b, esc, 2);
            p++;
        } else if (c < 0x20) {
            pdr_buf_printf(b, "\\u%04x", c);
            p++;
        } else {
            size_t n = pdr_utf8_decode(p, (size_t)(end - p), NULL);
            if (n == 0) {
                pdr_buf_puts(b, "\\ufffd");
                p++;
            } else {
                pdr_buf_append(b, (const char *)p, n);
                p += n;
            }
        }
    }
    pdr_buf_append(b, "\"", 1);
}

void pdr_buf_json_num(pdr_buf *b, double v)
{
    if (!isfinite(v))
        pdr_buf_puts(b, "null");
    else
        pdr_buf_printf(b, "%.6g", v);
}

int pdr_buf_failed(const pdr_buf *b) { return b->failed; }

char *pdr_buf_steal(pdr_buf *b, size_t *ret_len)
{
    char *p = b->data;
    if (ret_len)
        *ret_len = b->len;
    memset(b, 0, sizeof *b);
    return p;
}
