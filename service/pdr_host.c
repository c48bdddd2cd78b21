/* pdr_host.c: the Host check of pdr serve (see pdr_host.h). */
#include "pdr_host.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HOST_NAME_MAX_LEN 253

struct pdr_host_policy {
    int check;
    size_t n;
    char **names; /* lowercase, without a trailing dot */
};

static int is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static int name_char(int c) { return isalnum(c) || c == '-' || c == '.' || c == '_'; }

/* Copy a name of len bytes lowercased, without a trailing dot. NULL when it is not a host name
 * (empty, too long, other characters). */
static char *normal_name(const char *s, size_t len)
{
    if (len > 0 && s[len - 1] == '.')
        len--;
    if (len == 0 || len > HOST_NAME_MAX_LEN)
        return NULL;
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (!name_char((unsigned char)s[i])) {
            free(out);
            return NULL;
        }
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    out[len] = '\0';
    return out;
}

void pdr_host_policy_free(pdr_host_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->names[i]);
    free(p->names);
    free(p);
}

int pdr_host_policy_create(const char *bind_host, const char *allow, pdr_host_policy **ret, pdr_err *err)
{
    *ret = NULL;
    pdr_host_policy *p = calloc(1, sizeof *p);
    if (!p)
        return pdr_fail(err, PDR_ENOMEM, "out of memory");
    if (!allow) {
        p->check = bind_host && is_loopback(bind_host);
        *ret = p;
        return PDR_OK;
    }
    if (strcmp(allow, "*") == 0) {
        *ret = p;
        return PDR_OK;
    }
    p->check = 1;
    size_t n = 1;
    for (const char *c = allow; *c; c++)
        n += *c == ',';
    if (!(p->names = calloc(n, sizeof *p->names))) {
        pdr_host_policy_free(p);
        return pdr_fail(err, PDR_ENOMEM, "out of memory");
    }
    for (const char *s = allow;;) {
        size_t len = strcspn(s, ",");
        /* ".example.org": example.org and the names under it; kept with its dot */
        int sub = len > 1 && s[0] == '.';
        char *name = normal_name(s + sub, len - (size_t)sub);
        if (!name) {
            pdr_host_policy_free(p);
            return pdr_fail(err, PDR_EINPUT,
                            "--allow-host: '%.*s' is not a host name (a comma-separated list of names, "
                            "'.example.org' for a domain and its subdomains, or '*' for any)",
                            (int)(len > 300 ? 300 : len), s);
        }
        if (sub) {
            size_t nl = strlen(name);
            char *dotted = malloc(nl + 2);
            if (!dotted) {
                free(name);
                pdr_host_policy_free(p);
                return pdr_fail(err, PDR_ENOMEM, "out of memory");
            }
            dotted[0] = '.';
            memcpy(dotted + 1, name, nl + 1);
            free(name);
            name = dotted;
        }
        p->names[p->n++] = name;
        if (!s[len])
            break;
        s += len + 1;
    }
    *ret = p;
    return PDR_OK;
}

int pdr_host_policy_checks(const pdr_host_policy *p) { return p && p->check; }

/* The name part of a Host header ("name", "name:port", "[v6]", "[v6]:port") into out (size
 * bytes). Returns 1 for an IP literal, 0 for a name, -1 when malformed. */
static int split_host(const char *host, char *out, size_t size)
{
    const char *end;
    int literal = 0;
    if (host[0] == '[') {
        end = strchr(host, ']');
        if (!end || (size_t)(end - host - 1) >= size)
            return -1;
        memcpy(out, host + 1, (size_t)(end - host - 1));
        out[end - host - 1] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, out, &a6) != 1)
            return -1;
        literal = 1;
        end++;
    } else {
        end = host + strcspn(host, ":");
        if ((size_t)(end - host) >= size)
            return -1;
        memcpy(out, host, (size_t)(end - host));
        out[end - host] = '\0';
        struct in_addr a4;
        literal = inet_pton(AF_INET, out, &a4) == 1;
    }
    if (*end == ':') { /* a port: 1 to 5 digits */
        size_t digits = strspn(end + 1, "0123456789");
        if (digits == 0 || digits > 5 || end[1 + digits] != '\0')
            return -1;
    } else if (*end != '\0') {
        return -1;
    }
    return literal;
}

int pdr_host_allowed(const pdr_host_policy *p, const char *host)
{
    if (!p || !p->check || !host)
        return 1;
    char raw[HOST_NAME_MAX_LEN + 2];
    int kind = split_host(host, raw, sizeof raw);
    if (kind != 0)
        return kind == 1;
    char *name = normal_name(raw, strlen(raw));
    if (!name)
        return 0;
    int ok = strcmp(name, "localhost") == 0;
    for (size_t i = 0; i < p->n && !ok; i++) {
        const char *a = p->names[i];
        if (a[0] == '.') { /* the domain itself, or a name ending in ".domain" */
            size_t nl = strlen(name), al = strlen(a);
            ok = strcmp(name, a + 1) == 0 || (nl > al && strcmp(name + nl - al, a) == 0);
        } else {
            ok = strcmp(name, a) == 0;
        }
    }
    free(name);
    return ok;
}
