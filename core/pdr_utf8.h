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

/* Bytes of the NUL-terminated s to print when at most max_bytes fit: min(strlen(s), max_bytes),
 * moved back so that a multi-byte character is not cut in two (for "%.*s" in messages). */
int pdr_utf8_clip(const char *s, size_t max_bytes);

#endif
