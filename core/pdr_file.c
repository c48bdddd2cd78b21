/* pdr_file.c: see pdr_file.h. */
#include "pdr_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int finish_failed(const char *path, int e, pdr_err *err)
{
    if (e == ENOSPC || e == EDQUOT)
        return pdr_fail(err, PDR_EIO, "%s: write failed (disk full?)", path);
    return pdr_fail(err, PDR_EIO, "%s: cannot finish writing: %s", path, strerror(e));
}

static int sync_fd_of(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int pdr_file_sync(const char *path, pdr_err *err)
{
    if (sync_fd_of(path, O_RDONLY) != 0)
        return finish_failed(path, errno, err);
    return PDR_OK;
}

int pdr_file_sync_dir(const char *path, pdr_err *err)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        slash[slash == dir ? 1 : 0] = '\0'; /* "/x" -> "/" */
    if (sync_fd_of(dir, O_RDONLY | O_DIRECTORY) != 0)
        return pdr_fail(err, PDR_EIO, "%s: cannot sync directory %s: %s", path, dir, strerror(errno));
    return PDR_OK;
}

int pdr_file_commit(const char *tmp, const char *path, pdr_err *err)
{
    if (sync_fd_of(tmp, O_RDONLY) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return finish_failed(path, e, err);
    }
    return pdr_file_sync_dir(path, err);
}
