// fuzz-sources: service/pdr_json.c core/pdr_utf8.c core/pdr_err.c
// fuzz-libs:
/* fuzz_json.c: libFuzzer harness for the service's strict JSON request parser (service/pdr_json.h).
 *
 * The whole input is the request body. Beyond "no crash, no leak, no UB, no read past the
 * buffer" (the body is copied into an exact-size allocation, without a NUL, so ASan sees any
 * overrun), it checks the parser's promises:
 *  - success: fasta is NUL-terminated at fasta_len, k in [1, PDR_JSON_MAX_K], min_score in
 *    [-1, 1]; writing the request back out as JSON and parsing that gives the same request
 *    (escapes and UTF-8 decode exactly);
 *  - failure: a code and a non-empty message, nothing left to free; parsing again gives the same.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Icore -Iservice service/pdr_json.c \
 *          core/pdr_err.c tests/fuzz/fuzz_json.c -o /tmp/fuzz_json      (or tests/fuzz/run_fuzz.sh)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdr_json.h"

#define REQUIRE(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_json: %s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

/* The request as JSON: fasta escaped (quote, backslash, control bytes; the rest is valid
 * UTF-8 already), numbers with enough digits to round-trip. Returns a malloc'd buffer. */
static char *write_request(const pdr_json_request *r, size_t *ret_len)
{
    size_t cap = 128 + (r->fasta ? r->fasta_len * 6 : 0), n = 0;
    char *out = malloc(cap);
    REQUIRE(out);
    n += (size_t)snprintf(out + n, cap - n, "{");
    const char *sep = "";
    if (r->fasta) {
        n += (size_t)snprintf(out + n, cap - n, "\"fasta\":\"");
        for (size_t i = 0; i < r->fasta_len; i++) {
            unsigned char c = (unsigned char)r->fasta[i];
            if (c == '"' || c == '\\')
                n += (size_t)snprintf(out + n, cap - n, "\\%c", c);
            else if (c < 0x20)
                n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
            else
                out[n++] = (char)c;
        }
        out[n++] = '"';
        sep = ",";
    }
    if (r->has_k) {
        n += (size_t)snprintf(out + n, cap - n, "%s\"k\":%d", sep, r->k);
        sep = ",";
    }
    if (r->has_min_score)
        n += (size_t)snprintf(out + n, cap - n, "%s\"min_score\":%.17g", sep, r->min_score), sep = ",";
    if (r->has_evalue)
        n += (size_t)snprintf(out + n, cap - n, "%s\"evalue\":%.17g", sep, r->evalue), sep = ",";
    if (r->has_expand)
        n += (size_t)snprintf(out + n, cap - n, "%s\"expand\":%s", sep, r->expand ? "true" : "false");
    n += (size_t)snprintf(out + n, cap - n, "}");
    REQUIRE(n < cap);
    *ret_len = n;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size ? size : 1);
    REQUIRE(body);
    if (size)
        memcpy(body, data, size);
    pdr_json_request req;
    const char *code = NULL;
    pdr_err err;
    pdr_err_clear(&err);
    int rc = pdr_json_parse_request(body, size, &req, &code, &err);
    if (rc == PDR_OK) {
        REQUIRE(code == NULL);
        if (req.fasta) {
            REQUIRE(req.fasta_len <= size);
            REQUIRE(req.fasta[req.fasta_len] == '\0');
        } else {
            REQUIRE(req.fasta_len == 0);
        }
        if (req.has_k)
            REQUIRE(req.k >= 1 && (long)req.k <= PDR_JSON_MAX_K);
        if (req.has_min_score)
            REQUIRE(req.min_score >= -1.0 && req.min_score <= 1.0);
        if (req.has_evalue)
            REQUIRE(req.evalue > 0 && isfinite(req.evalue));
        if (req.has_expand)
            REQUIRE(req.expand == 0 || req.expand == 1);

        size_t len2;
        char *again = write_request(&req, &len2);
        pdr_json_request req2;
        const char *code2 = NULL;
        int rc2 = pdr_json_parse_request(again, len2, &req2, &code2, &err);
        if (rc2)
            fprintf(stderr, "fuzz_json: re-parse failed: %s\n", err.msg);
        REQUIRE(rc2 == PDR_OK);
        REQUIRE((req.fasta == NULL) == (req2.fasta == NULL));
        REQUIRE(req.fasta_len == req2.fasta_len);
        REQUIRE(!req.fasta || memcmp(req.fasta, req2.fasta, req.fasta_len) == 0);
        REQUIRE(req.has_k == req2.has_k && (!req.has_k || req.k == req2.k));
        REQUIRE(req.has_min_score == req2.has_min_score && (!req.has_min_score || req.min_score == req2.min_score));
        REQUIRE(req.has_evalue == req2.has_evalue && (!req.has_evalue || req.evalue == req2.evalue));
        REQUIRE(req.has_expand == req2.has_expand && (!req.has_expand || req.expand == req2.expand));
        pdr_json_request_clear(&req2);
        free(again);
        pdr_json_request_clear(&req);
    } else {
        REQUIRE(rc == PDR_EINPUT || rc == PDR_ENOMEM);
        REQUIRE(code != NULL && code[0] != '\0');
        REQUIRE(err.msg[0] != '\0');
        REQUIRE(req.fasta == NULL && !req.has_k && !req.has_min_score && !req.has_evalue && !req.has_expand);
        char first[PDR_ERRLEN];
        memcpy(first, err.msg, sizeof first);
        const char *code2 = NULL;
        REQUIRE(pdr_json_parse_request(body, size, &req, &code2, &err) == rc);
        REQUIRE(strcmp(code, code2) == 0 && strcmp(first, err.msg) == 0);
    }
    free(body);
    return 0;
}
