/* pdr_cors.h: which web origins may call `pdr serve` from a browser (CORS, --cors-origin).
 *
 * A page's script may read a reply from another origin (scheme://host[:port]) only when the
 * reply names the page's origin in Access-Control-Allow-Origin, and may send a request with a
 * JSON body or an Authorization header only after a preflight (OPTIONS) says it may. Off by
 * default: no such header is sent, and only pages served by the server itself (same origin)
 * can use the API.
 *
 * The policy: a comma-separated list of origins, each `http://` or `https://`, a host (a name,
 * an IPv4 address or a bracketed IPv6 address) and an optional port, nothing else (no path, not
 * even a trailing slash, no user, query or fragment: a browser's Origin header never has them);
 * or `*`, any origin. Scheme and host are compared case-insensitively, a scheme's default port
 * is the same as none (`http://x:80` is `http://x`: browsers leave it out), and IPv6 addresses
 * are compared as addresses. `null` (sandboxed frames, file: pages) cannot be listed: every
 * such page sends it.
 *
 * This module only decides; pdr_http.c sends the headers and answers the preflights.
 *
 * Thread-safety: a policy is read-only once created; any number of threads may ask it at once.
 */
#ifndef PDR_CORS_H
#define PDR_CORS_H

#include <stddef.h>

#include "pdr_err.h"

/* What a preflight is told (pdr_http.c): the request headers a page may send (the others it
 * can set are CORS-safelisted anyway), how long the browser may cache the answer, and the reply
 * headers a page may read besides the safelisted ones (Content-Type, Content-Length,
 * Cache-Control): the ones pdr serve sends. */
#define PDR_CORS_ALLOW_HEADERS "Authorization, Content-Type"
#define PDR_CORS_MAX_AGE_S 600
#define PDR_CORS_EXPOSE_HEADERS "Retry-After, WWW-Authenticate, Allow"

typedef struct pdr_cors_policy pdr_cors_policy;

/* origins: the list above (NULL: CORS off, *ret = NULL and PDR_OK). PDR_EINPUT, with a message
 * naming --cors-origin and the entry, for an empty entry or one that is not an origin. */
int pdr_cors_policy_create(const char *origins, pdr_cors_policy **ret, pdr_err *err);
void pdr_cors_policy_free(pdr_cors_policy *policy);

/* Whether any origin is allowed (`*`). 0 for NULL. */
int pdr_cors_policy_any(const pdr_cors_policy *policy);

/* Number of listed origins (0 with `*` alone, or NULL). */
size_t pdr_cors_policy_count(const pdr_cors_policy *policy);

/* The Access-Control-Allow-Origin value for a request whose Origin header is origin (NULL: the
 * request has none): "*" under `*`, origin itself (the borrowed pointer) when it matches a
 * listed origin, NULL when no CORS header is to be sent (CORS off, no Origin, another origin, a
 * malformed or `null` Origin). */
const char *pdr_cors_allow_origin(const pdr_cors_policy *policy, const char *origin);

#endif
