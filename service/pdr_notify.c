/* pdr_notify.c: see pdr_notify.h. */
#include "pdr_notify.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int pdr_notify_target_init(pdr_notify_target *t)
{
    memset(t, 0, sizeof *t);
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof t->addr.sun_path)
        return 0;
    t->addr.sun_family = AF_UNIX;
    memcpy(t->addr.sun_path, path, len);
    if (path[0] == '@') /* abstract namespace: a leading NUL, and the length says where the name ends */
        t->addr.sun_path[0] = '\0';
    t->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
    return 1;
}

int pdr_notify_send(const pdr_notify_target *t, const char *state)
{
    if (!t->len)
        return 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    size_t n = strlen(state);
    ssize_t sent = sendto(fd, state, n, MSG_NOSIGNAL, (const struct sockaddr *)&t->addr, t->len);
    close(fd);
    return sent == (ssize_t)n ? 1 : -1;
}
