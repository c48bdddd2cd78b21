/* pdr_lock.c: see pdr_lock.h. */
#include "pdr_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct pdr_lock {
    int fd; /* -1: unlocked (a file system without flock) */
    char *path;
};

/* Retries when the holder removed the lock file between our open and our flock. */
#define LOCK_TRIES 100

int pdr_lock_acquire(const char *lock_path, const char *what, pdr_lock **ret_lock, pdr_err *err)
{
    *ret_lock = NULL;
    pdr_lock *lk = calloc(1, sizeof *lk);
    if (!lk || !(lk->path = strdup(lock_path))) {
        free(lk);
        return pdr_fail(err, PDR_ENOMEM, "%s: out of memory", lock_path);
    }
    lk->fd = -1;
    for (int tries = 0; tries < LOCK_TRIES; tries++) {
        int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) {
            int rc = pdr_fail(err, PDR_EIO, "%s: cannot create the lock file: %s", lock_path, strerror(errno));
            pdr_lock_release(lk, 0);
            return rc;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(fd);
            if (e == ENOLCK || e == ENOSYS || e == EOPNOTSUPP) { /* no locks here: go on unlocked */
                *ret_lock = lk;
                return PDR_OK;
            }
            pdr_lock_release(lk, 0);
            if (e == EWOULDBLOCK)
                return pdr_fail(err, PDR_EINPUT,
                                "%s: another pdr run is writing it (its lock %s is held); wait for that run to end, "
                                "or write elsewhere",
                                what, lock_path);
            return pdr_fail(err, PDR_EIO, "%s: cannot lock: %s", lock_path, strerror(e));
        }
        /* A holder removes the file before it lets go: if ours is no longer the file at the
         * path, the lock we got guards nothing, and the next open makes (or finds) the real one. */
        struct stat held, named;
        if (fstat(fd, &held) == 0 && stat(lock_path, &named) == 0 && held.st_dev == named.st_dev &&
            held.st_ino == named.st_ino) {
            lk->fd = fd;
            *ret_lock = lk;
            return PDR_OK;
        }
        close(fd);
    }
    pdr_lock_release(lk, 0);
    return pdr_fail(err, PDR_EIO, "%s: cannot lock: the lock file keeps being replaced", lock_path);
}

void pdr_lock_release(pdr_lock *lock, int remove_file)
{
    if (!lock)
        return;
    if (remove_file)
        unlink(lock->path);
    if (lock->fd >= 0)
        close(lock->fd);
    free(lock->path);
    free(lock);
}
