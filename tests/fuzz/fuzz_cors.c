// fuzz-sources: service/pdr_cors.c core/pdr_err.c
// fuzz-libs:
/* fuzz_cors.c: libFuzzer harness for the CORS origin policy of pdr serve (service/pdr_cors.h).
 *
 * The input is "LIST\nORIGIN": a --cors-origin list and an Origin header (no newline in ORIGIN:
 * a header value cannot hold one). Beyond "no crash, no leak, no UB", it checks the promises:
 *  - a list either makes a policy or fails with PDR_EINPUT and a message naming --cors-origin;
 *  - the answer for ORIGIN is NULL, the borrowed ORIGIN itself (echoed as sent), or "*" exactly
 *    when the list allows any; the same answer comes twice;
 *  - an ORIGIN that is itself a valid one-entry list (and not "*") is allowed by that list: the
 *    parser reads what it accepts in a list and in a header the same way.
 *
 * Build: tests/fuzz/run_fuzz.sh 20 cors
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdr_cors.h"

#define REQUIRE(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_cors: %s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t list_len = nl ? (size_t)(nl - data) : size;
    size_t origin_len = nl ? size - list_len - 1 : 0;
    char *list = malloc(list_len + 1), *origin = malloc(origin_len + 1);
    REQUIRE(list && origin);
    memcpy(list, data, list_len);
    list[list_len] = '\0';
    if (origin_len)
        memcpy(origin, nl + 1, origin_len);
    origin[origin_len] = '\0';
    if (memchr(origin, '\n', origin_len) || memchr(origin, '\0', origin_len) || memchr(list, '\0', list_len)) {
        free(list);
        free(origin);
        return 0;
    }
    pdr_err err;
    pdr_cors_policy *listed = NULL, *self = NULL;
    int rc = pdr_cors_policy_create(list, &listed, &err);
    if (rc)
        REQUIRE(rc == PDR_EINPUT && !listed && strstr(err.msg, "--cors-origin"));
    else
        REQUIRE(listed != NULL);
    const char *a = pdr_cors_allow_origin(listed, origin);
    REQUIRE(a == pdr_cors_allow_origin(listed, origin));
    if (pdr_cors_policy_any(listed))
        REQUIRE(a && strcmp(a, "*") == 0);
    else
        REQUIRE(a == NULL || a == origin);
    REQUIRE(pdr_cors_allow_origin(listed, NULL) == NULL);
    if (!strchr(origin, ',') && strcmp(origin, "*") != 0 && pdr_cors_policy_create(origin, &self, &err) == PDR_OK) {
        /* a list entry may carry blanks around it; a header value has none (libmicrohttpd trims) */
        if (origin[0] != ' ' && origin[0] != '\t' && origin_len && origin[origin_len - 1] != ' ' &&
            origin[origin_len - 1] != '\t')
            REQUIRE(pdr_cors_allow_origin(self, origin) == origin);
    }
    pdr_cors_policy_free(listed);
    pdr_cors_policy_free(self);
    free(list);
    free(origin);
    return 0;
}
