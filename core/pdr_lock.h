/* pdr_lock.h: an exclusive lock on an output, so that two pdr processes never write it at once.
 *
 * The lock is flock(2) on a lock file (created when missing). The kernel drops it when the holder
 * closes it or dies, so a lock file left behind by a killed run never blocks the next run: only
 * a live process holding it does. Taking it never waits: a lock held elsewhere (another process,
 * or another pdr_lock on the same file in this process) is refused at once.
 *
 * Advisory: it keeps out other pdr runs, not other programs. On a file system without flock
 * (ENOLCK, ENOSYS, EOPNOTSUPP: some Lustre mounts) the run goes on unlocked, as HDF5's own file
 * locking does there; Linux NFS emulates flock with POSIX locks, which work across hosts.
 * Not thread-safe (one pdr_lock per holder; take and release it on one thread).
 */
#ifndef PDR_LOCK_H
#define PDR_LOCK_H

#include "pdr_err.h"

typedef struct pdr_lock pdr_lock;

/* Take the lock on lock_path (its directory must exist). `what` names what the lock protects,
 * for the message. On success *ret_lock is the caller's, to pdr_lock_release. Refused because
 * another process holds it: PDR_EINPUT, "WHAT: another pdr run is writing it (its lock
 * LOCK_PATH is held); wait for that run to end, or write elsewhere". Lock file not creatable:
 * PDR_EIO naming it. *ret_lock is NULL on failure. */
int pdr_lock_acquire(const char *lock_path, const char *what, pdr_lock **ret_lock, pdr_err *err);

/* Release the lock and free it; NULL is fine. With remove_file, the lock file is deleted first
 * (while still held, so that a run that opened it meanwhile notices and starts over). */
void pdr_lock_release(pdr_lock *lock, int remove_file);

#endif
