/* pdr_host.h: which Host headers `pdr serve` answers, against DNS rebinding.
 *
 * A web page can make a browser send requests to a server on the user's own machine by having
 * its domain name resolve to 127.0.0.1 (DNS rebinding): the browser then treats the server as
 * the page's own origin and lets the page read the replies. Such requests carry the attacker's
 * name in Host. So a server on a loopback address answers only requests whose Host is
 * `localhost` or an IP address (names an attacker cannot point at it), unless more names are
 * allowed (--allow-host). On any other address there is no check by default (the names the
 * machine is reached by are not known), and --allow-host turns it on.
 *
 * The policy: allow is NULL (the default just described), "*" (no check), or a comma-separated
 * list of names (case-insensitive; an entry ".example.org" allows example.org and every name
 * under it), which turns the check on for every address. Under a check, a Host is allowed when
 * it is absent (HTTP/1.0), an IPv4 or bracketed IPv6 literal, `localhost`, or a listed name,
 * each with an optional port and an optional trailing dot on names; anything else (another
 * name, an empty or malformed Host) is refused.
 */
#ifndef PDR_HOST_H
#define PDR_HOST_H

#include <stddef.h>

#include "pdr_err.h"

typedef struct pdr_host_policy pdr_host_policy;

/* bind_host: the address the server listens on (--host). PDR_EINPUT for a malformed list (an
 * empty entry, a character not allowed in a host name). */
int pdr_host_policy_create(const char *bind_host, const char *allow, pdr_host_policy **ret, pdr_err *err);
void pdr_host_policy_free(pdr_host_policy *policy);

/* Whether the policy checks Host at all. */
int pdr_host_policy_checks(const pdr_host_policy *policy);

/* 1 when a request with this Host header (NULL: none) is answered, else 0. */
int pdr_host_allowed(const pdr_host_policy *policy, const char *host);

#endif
