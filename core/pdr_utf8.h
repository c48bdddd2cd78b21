/* pdr_utf8.h: UTF-8 validation shared by the FASTA reader (ids), JSON output and the JSON
 * request parser. */
#ifndef PDR_UTF8_H
#define PDR_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length (1-4) of the valid UTF-8 character at s, of which n >= 1 bytes are available, and its
 * code point in *opt_cp (may be NULL); 0 if the bytes are not valid UTF-8 (overlong forms,
 * surrogates and code points above U+10FFFF are invalid). */
size_t pdr_utf8_decode(const unsigned char *s, size_t n, uint32_t *opt_cp);

#endif
