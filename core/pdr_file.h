/* pdr_file.h: durable replacement of an output file.
 *
 * Every output of pdr (a store, a part, a database file, search hits) is written under a
 * temporary name and renamed onto its own when complete, so that a killed run leaves the old
 * file or none. A kill is not the only way to stop: after a power loss or a kernel crash only
 * what was fsynced is there, and a file system may keep a rename but not the data written
 * before it (a zero-length file under the new name), or keep a later file (DBDIR/calibration.txt,
 * which marks a database complete) but not an earlier rename. pdr_file_commit does the three
 * steps that rule this out: fsync the temporary file, rename it, fsync the directory.
 */
#ifndef PDR_FILE_H
#define PDR_FILE_H

#include "pdr_err.h"

/* fsync the file at path (opened read-only: enough on Linux for data and metadata). */
int pdr_file_sync(const char *path, pdr_err *err);

/* fsync the directory that holds path, so that a rename into it, or a file created or removed
 * there, survives a crash. */
int pdr_file_sync_dir(const char *path, pdr_err *err);

/* fsync tmp, rename it onto path, fsync path's directory. On failure tmp is removed (path is as
 * it was, unless only the directory's fsync failed) and the message names path: "PATH: write
 * failed (disk full?)" for ENOSPC or EDQUOT, else "PATH: cannot finish writing: REASON". */
int pdr_file_commit(const char *tmp, const char *path, pdr_err *err);

#endif
