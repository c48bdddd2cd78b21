/* pdr_json.h: a strict parser for the one JSON object the HTTP service accepts as a request
 * body (POST /v1/search and /v1/embed):
 *
 *   {"fasta": "...", "k": 10, "min_score": 0.0, "evalue": 1e-3, "expand": false}
 *
 * Strict on purpose, so that a client's typo is a 400 rather than a silently ignored field:
 *  - the body is exactly one JSON object (RFC 8259 syntax; whitespace around it allowed, a
 *    byte-order mark or anything after the object is not);
 *  - the keys are fasta (a string), k (an integer in [1, PDR_JSON_MAX_K]), min_score (a
 *    number in [-1, 1], the range of a cosine), evalue (a finite number > 0) and expand (true or
 *    false); any other key, a
 *    repeated key, or a value of the wrong type is an error naming the key;
 *  - strings must be valid UTF-8 without raw control characters; escapes (\uXXXX with surrogate
 *    pairs too) are decoded; a lone surrogate is an error;
 *  - values of the wrong type are still parsed (for an exact message), to a nesting depth of
 *    PDR_JSON_MAX_DEPTH at most; numbers longer than 64 characters are refused.
 * Whether a field is required (fasta) or allowed for an endpoint is the caller's call.
 *
 * Memory: the decoded fasta string is allocated here and owned by the request (freed with
 * pdr_json_request_clear). The parser never reads outside body[0..len) and keeps no state.
 * Thread-safe (no globals).
 */
#ifndef PDR_JSON_H
#define PDR_JSON_H

#include <stddef.h>

#include "pdr_err.h"

#define PDR_JSON_MAX_DEPTH 32
#define PDR_JSON_MAX_K 2147483647L

typedef struct pdr_json_request {
    char *fasta; /* decoded value of "fasta" (NUL-terminated; may hold NUL bytes from
                         \u0000, hence fasta_len); NULL when the key is absent */
    size_t fasta_len;
    int has_k;
    int k;
    int has_min_score;
    double min_score;
    int has_expand;
    int expand; /* 1 for true, 0 for false */
    int has_evalue;
    double evalue; /* > 0, finite */
} pdr_json_request;

/* Parse body[0..len) into *ret_req (which is overwritten, not freed first).
 * On success returns PDR_OK; the caller frees with pdr_json_request_clear.
 * On a malformed or disallowed body returns PDR_EINPUT, leaves *ret_req empty (nothing to free),
 * sets *ret_code to a static error code and err to a message naming the byte offset or key:
 *   "invalid_json"    syntax error ("invalid JSON at byte 17: expected ':' after a key")
 *   "json_too_deep"   nesting deeper than PDR_JSON_MAX_DEPTH
 *   "not_an_object"   the body is valid JSON but not an object
 *   "unknown_field"   a key other than fasta, k, min_score, evalue, expand
 *   "duplicate_field" a key given twice
 *   "bad_fasta", "bad_k", "bad_min_score", "bad_evalue", "bad_expand"   a value of the wrong type or
 *                     out of range
 * Returns PDR_ENOMEM (code "internal") when the string cannot be allocated. */
int pdr_json_parse_request(const char *body, size_t len, pdr_json_request *ret_req, const char **ret_code,
                           pdr_err *err);

/* Free what a parsed request owns and zero it. NULL and a zeroed request are fine. */
void pdr_json_request_clear(pdr_json_request *req);

#endif
