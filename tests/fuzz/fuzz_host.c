// fuzz-sources: service/pdr_host.c core/pdr_err.c
// fuzz-libs:
/* fuzz_host.c: libFuzzer harness for the Host check of pdr serve (service/pdr_host.h).
 *
 * The input is "ALLOW\nHOST": an --allow-host list and a Host header (no newline in HOST: a
 * header value cannot hold one). Beyond "no crash, no leak, no UB", it checks the promises:
 *  - a list either makes a checking policy ("*": one that does not check) or fails with a
 *    message naming --allow-host;
 *  - "*" and a policy for 0.0.0.0 without a list allow every Host; no Host is always allowed;
 *  - a Host allowed by the default loopback policy is also allowed by any list's policy (a list
 *    only adds names), and the same answer comes twice.
 *
 * Build: tests/fuzz/run_fuzz.sh 20 host
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pdr_host.h"

#define REQUIRE(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_host: %s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t allow_len = nl ? (size_t)(nl - data) : size;
    char *allow = malloc(allow_len + 1);
    size_t host_len = nl ? size - allow_len - 1 : 0;
    char *host = malloc(host_len + 1);
    REQUIRE(allow && host);
    memcpy(allow, data, allow_len);
    allow[allow_len] = '\0';
    if (host_len)
        memcpy(host, nl + 1, host_len);
    host[host_len] = '\0';
    if (memchr(host, '\n', host_len) || memchr(host, '\0', host_len) || memchr(allow, '\0', allow_len)) {
        free(allow);
        free(host);
        return 0;
    }
    pdr_err err;
    pdr_host_policy *loop = NULL, *any = NULL, *open_iface = NULL, *listed = NULL;
    REQUIRE(pdr_host_policy_create("127.0.0.1", NULL, &loop, &err) == PDR_OK);
    REQUIRE(pdr_host_policy_create("127.0.0.1", "*", &any, &err) == PDR_OK);
    REQUIRE(pdr_host_policy_create("0.0.0.0", NULL, &open_iface, &err) == PDR_OK);
    int rc = pdr_host_policy_create("127.0.0.1", allow, &listed, &err);
    if (rc) {
        REQUIRE(rc == PDR_EINPUT && !listed && strstr(err.msg, "--allow-host"));
    } else {
        REQUIRE(listed && pdr_host_policy_checks(listed) == (strcmp(allow, "*") != 0));
    }
    REQUIRE(pdr_host_allowed(any, host) && pdr_host_allowed(open_iface, host));
    REQUIRE(pdr_host_allowed(loop, NULL) && (!listed || pdr_host_allowed(listed, NULL)));
    int a = pdr_host_allowed(loop, host);
    REQUIRE(a == pdr_host_allowed(loop, host));
    if (listed && a)
        REQUIRE(pdr_host_allowed(listed, host));
    pdr_host_policy_free(loop);
    pdr_host_policy_free(any);
    pdr_host_policy_free(open_iface);
    pdr_host_policy_free(listed);
    free(allow);
    free(host);
    return 0;
}
