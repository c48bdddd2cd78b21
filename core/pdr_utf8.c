/* pdr_utf8.c: see pdr_utf8.h. */
#include "pdr_utf8.h"

size_t pdr_utf8_decode(const unsigned char *s, size_t n, uint32_t *opt_cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        len = 1, v = c, min = 0;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    if (opt_cp)
        *opt_cp = v;
    return len;
}

int pdr_utf8_clip(const char *s, size_t max_bytes)
{
    size_t n = 0;
    while (n < max_bytes && s[n])
        n++;
    if (s[n] == '\0')
        return (int)n;
    /* s[n] is the first byte left out: while it continues a character, leave that one out too
     * (at most the 3 continuation bytes a character can have) */
    for (int back = 0; back < 3 && n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80; back++)
        n--;
    return (int)n;
}
