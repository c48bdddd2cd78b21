/* pdr_cors.c: the CORS origin policy of pdr serve (see pdr_cors.h).
 *
 * Listed origins and a request's Origin go through the same parser, which writes one canonical
 * form (lowercase scheme and host, no default port, IPv6 as inet_ntop writes it); a request is
 * allowed when its canonical form is a listed one. */
#include "pdr_cors.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HOST_NAME_MAX_LEN 253
/* "https://" + a 253-byte name (or a bracketed IPv6 address) + ":65535" + NUL */
#define ORIGIN_MAX_LEN 272

struct pdr_cors_policy {
    int any;
    size_t n;
    char **origins; /* canonical (parse_origin) */
};

static int name_char(int c) { return isalnum(c) || c == '-' || c == '.' || c == '_'; }

/* Parse the len bytes at s as an origin into out (ORIGIN_MAX_LEN bytes), canonical. Returns NULL,
 * or what is wrong with it (for the message). */
static const char *parse_origin(const char *s, size_t len, char *out)
{
    const char *scheme;
    unsigned default_port;
    if (len >= 7 && strncasecmp(s, "http://", 7) == 0) {
        scheme = "http";
        default_port = 80;
    } else if (len >= 8 && strncasecmp(s, "https://", 8) == 0) {
        scheme = "https";
        default_port = 443;
    } else {
        return "it does not start with http:// or https://";
    }
    const char *p = s + strlen(scheme) + 3, *end = s + len;
    for (const char *c = p; c < end; c++)
        if (*c == '/' || *c == '?' || *c == '#')
            return "it has a path, query or fragment (not even a trailing slash is part of an origin)";
    if (memchr(p, '@', (size_t)(end - p)))
        return "it has a user name";
    char host[HOST_NAME_MAX_LEN + 1];
    const char *after;
    int v6 = 0;
    if (p < end && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        size_t n = close ? (size_t)(close - p - 1) : 0;
        struct in6_addr a6;
        if (!close || n == 0 || n >= INET6_ADDRSTRLEN)
            return "its IPv6 address is malformed";
        memcpy(host, p + 1, n);
        host[n] = '\0';
        if (inet_pton(AF_INET6, host, &a6) != 1 || !inet_ntop(AF_INET6, &a6, host, sizeof host))
            return "its IPv6 address is malformed";
        v6 = 1;
        after = close + 1;
    } else {
        size_t n = 0;
        while (p + n < end && p[n] != ':')
            n++;
        if (n == 0)
            return "it has no host";
        if (n > HOST_NAME_MAX_LEN)
            return "its host name is too long";
        for (size_t i = 0; i < n; i++) {
            if (!name_char((unsigned char)p[i]))
                return "its host is not a host name or an IP address (write an international name as xn--...)";
            host[i] = (char)tolower((unsigned char)p[i]);
        }
        host[n] = '\0';
        after = p + n;
    }
    unsigned port = default_port;
    if (after < end) {
        size_t digits = 0;
        port = 0;
        if (*after == ':')
            while (after + 1 + digits < end && isdigit((unsigned char)after[1 + digits]) && digits < 6)
                port = port * 10 + (unsigned)(after[1 + digits++] - '0');
        if (*after != ':' || digits == 0 || after + 1 + digits != end || port < 1 || port > 65535)
            return "its port is not a number in [1, 65535]";
    }
    char port_text[8] = "";
    if (port != default_port)
        snprintf(port_text, sizeof port_text, ":%u", port);
    snprintf(out, ORIGIN_MAX_LEN, "%s://%s%s%s%s", scheme, v6 ? "[" : "", host, v6 ? "]" : "", port_text);
    return NULL;
}

void pdr_cors_policy_free(pdr_cors_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->origins[i]);
    free(p->origins);
    free(p);
}

int pdr_cors_policy_create(const char *origins, pdr_cors_policy **ret, pdr_err *err)
{
    *ret = NULL;
    if (!origins)
        return PDR_OK;
    pdr_cors_policy *p = calloc(1, sizeof *p);
    size_t n = 1;
    for (const char *c = origins; *c; c++)
        n += *c == ',';
    if (!p || !(p->origins = calloc(n, sizeof *p->origins))) {
        pdr_cors_policy_free(p);
        return pdr_fail(err, PDR_ENOMEM, "out of memory");
    }
    for (const char *s = origins;;) {
        size_t len = strcspn(s, ",");
        const char *e = s; /* the entry without the blanks around it */
        size_t elen = len;
        while (elen && (*e == ' ' || *e == '\t')) {
            e++;
            elen--;
        }
        while (elen && (e[elen - 1] == ' ' || e[elen - 1] == '\t'))
            elen--;
        char canon[ORIGIN_MAX_LEN];
        const char *why = NULL;
        if (elen == 1 && e[0] == '*')
            p->any = 1;
        else if (elen == 0)
            why = "it is empty";
        else if (elen == 4 && strncasecmp(e, "null", 4) == 0)
            why = "sandboxed frames and file: pages all send the origin 'null', so it cannot be trusted";
        else if (elen >= ORIGIN_MAX_LEN)
            why = "it is too long";
        else if (!(why = parse_origin(e, elen, canon)) && !(p->origins[p->n++] = strdup(canon))) {
            pdr_cors_policy_free(p);
            return pdr_fail(err, PDR_ENOMEM, "out of memory");
        }
        if (why) {
            pdr_cors_policy_free(p);
            return pdr_fail(err, PDR_EINPUT,
                            "--cors-origin: '%.*s' is not an origin: %s (give a comma-separated list of origins "
                            "such as 'http://localhost:8888' or 'https://lab.example.org', or '*' for any)",
                            (int)(elen > 300 ? 300 : elen), e, why);
        }
        if (!s[len])
            break;
        s += len + 1;
    }
    *ret = p;
    return PDR_OK;
}

int pdr_cors_policy_any(const pdr_cors_policy *p) { return p && p->any; }

size_t pdr_cors_policy_count(const pdr_cors_policy *p) { return p ? p->n : 0; }

const char *pdr_cors_allow_origin(const pdr_cors_policy *p, const char *origin)
{
    if (!p || !origin)
        return NULL;
    if (p->any)
        return "*";
    size_t len = strlen(origin);
    char canon[ORIGIN_MAX_LEN];
    if (len >= ORIGIN_MAX_LEN || parse_origin(origin, len, canon))
        return NULL;
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(canon, p->origins[i]) == 0)
            return origin;
    return NULL;
}
