/* pdr_db_make.c: the checks `pdr makedb` makes before it changes a database directory.
 *
 * A rerun of makedb into an existing DBDIR resumes an interrupted run or extends the database
 * with records added at the end of its FASTA. Anything else (another FASTA, other options)
 * would fail halfway, after the calibration is gone, and leave a directory that neither search
 * nor a rerun could use; so it is refused here, before anything is touched.
 */
#define _GNU_SOURCE /* mkstemps */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pdr_bulk.h"
#include "pdr_db.h"
#include "pdr_db_expand.h"
#include "pdr_fasta.h"
#include "pdr_file.h"
#include "pdr_lock.h"

/* dbdir is a directory (*ret_exists = 1) or does not exist (0). */
static int check_dbdir(const char *dbdir, int *ret_exists, pdr_err *err)
{
    struct stat sb;
    *ret_exists = 0;
    if (stat(dbdir, &sb) != 0) {
        if (errno == ENOENT)
            return PDR_OK;
        return pdr_fail(err, PDR_EIO, "%s: cannot access: %s", dbdir, strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode))
        return pdr_fail(err, PDR_EINPUT, "%s: DBDIR exists and is not a directory: give a new DBDIR", dbdir);
    *ret_exists = 1;
    return PDR_OK;
}

int pdr_db_target_is_stream(const char *fasta)
{
    struct stat st;
    if (strcmp(fasta, "-") == 0)
        return 1;
    return stat(fasta, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISSOCK(st.st_mode));
}

/* Copy a target stream into dbdir as a hidden .target-XXXXXX.fasta (as it came, plain or gzip);
 * spool gets its path. */
static int copy_stream(const char *fasta, const char *dbdir, char *spool, size_t size, pdr_err *err)
{
    snprintf(spool, size, "%s/.target-XXXXXX.fasta", dbdir);
    int out = mkstemps(spool, 6);
    if (out < 0) {
        int rc = pdr_fail(err, PDR_EIO, "%s: cannot create a copy of the targets: %s", spool, strerror(errno));
        spool[0] = '\0';
        return rc;
    }
    int from_stdin = strcmp(fasta, "-") == 0, in = from_stdin ? STDIN_FILENO : open(fasta, O_RDONLY | O_CLOEXEC);
    const char *name = from_stdin ? "stdin" : fasta;
    int rc = in < 0 ? pdr_fail(err, PDR_EIO, "%s: cannot open: %s", name, strerror(errno)) : PDR_OK;
    char buf[1 << 16];
    for (ssize_t n; !rc && (n = read(in, buf, sizeof buf)) != 0;) {
        if (n < 0 && errno != EINTR)
            rc = pdr_fail(err, PDR_EIO, "%s: cannot read: %s", name, strerror(errno));
        for (ssize_t off = 0, w; !rc && n > 0 && off < n; off += w)
            if ((w = write(out, buf + off, (size_t)(n - off))) < 0)
                rc = pdr_fail(err, PDR_EIO, "%s: write failed: %s", spool, strerror(errno));
    }
    if (in >= 0 && !from_stdin)
        close(in);
    if (close(out) != 0 && !rc)
        rc = pdr_fail(err, PDR_EIO, "%s: write failed: %s", spool, strerror(errno));
    if (rc) {
        unlink(spool);
        spool[0] = '\0';
    }
    return rc;
}

/* Remove what a killed makedb left in dbdir (a run that ends removes its own): copies of target
 * streams but this run's (keep, "" for none) and the temporary files of its steps. The caller
 * holds dbdir's lock, so no other makedb is writing them; embeddings.h5's own (.tmp, .partial/)
 * are the bulk step's, which resumes from them or overwrites them. */
static int remove_leftovers(const char *dbdir, const char *keep, pdr_err *err)
{
    static const char *const tmp_names[] = {PDR_DB_INDEX ".tmp",  PDR_DB_LEVELS ".tmp",    PDR_DB_SEQS ".tmp",
                                            PDR_DB_CALIB ".tmp",  PDR_DB_EXPANSION ".tmp", PDR_DB_INDEX_X ".tmp",
                                            PDR_DB_CALIB_X ".tmp"};
    char path[4400];
    for (size_t i = 0; i < sizeof tmp_names / sizeof tmp_names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dbdir, tmp_names[i]);
        if (unlink(path) != 0 && errno != ENOENT && errno != EISDIR && errno != EPERM) /* a directory: not ours */
            return pdr_fail(err, PDR_EIO, "%s: cannot remove: %s", path, strerror(errno));
    }
    DIR *d = opendir(dbdir);
    if (!d)
        return pdr_fail(err, PDR_EIO, "%s: cannot list: %s", dbdir, strerror(errno));
    int rc = PDR_OK;
    for (struct dirent *e; !rc && (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, ".target-", 8) != 0 || len < 14 || strcmp(e->d_name + len - 6, ".fasta") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dbdir, e->d_name);
        if (strcmp(path, keep) != 0 && unlink(path) != 0 && errno != ENOENT)
            rc = pdr_fail(err, PDR_EIO, "%s: cannot remove: %s", path, strerror(errno));
    }
    closedir(d);
    return rc;
}

/* The target FASTA opens (a stream is not tried: it can be read only once). */
static int check_fasta_opens(const char *fasta, pdr_err *err)
{
    if (pdr_db_target_is_stream(fasta))
        return PDR_OK;
    pdr_fasta *fa = NULL;
    int rc = pdr_fasta_open(fasta, NULL, &fa, err);
    pdr_fasta_close(fa);
    return rc;
}

/* What is in dbdir can be extended by this run. */
static int check_existing(const pdr_encoder *enc, const char *fasta, const char *dbdir, const pdr_bulk_opts *bopts,
                          pdr_err *err)
{
    char store[4096];
    snprintf(store, sizeof store, "%s/%s", dbdir, PDR_DB_STORE);
    pdr_err why;
    pdr_err_clear(&why);
    int rc = pdr_bulk_check_rerun(enc, fasta, store, bopts, &why);
    if (rc)
        return pdr_fail(err, rc,
                        "%s already holds a database that this run cannot extend (%s); it is left as it was: use a "
                        "new DBDIR, or remove %s to make it again",
                        dbdir, why.msg, dbdir);
    return PDR_OK;
}

int pdr_db_make_prepare(const pdr_encoder *enc, const char *fasta, const char *dbdir, const pdr_bulk_opts *bopts,
                        int expand, pdr_lock **ret_lock, char *spool, size_t spool_size, pdr_err *err)
{
    *ret_lock = NULL;
    spool[0] = '\0';
    int exists = 0, rc;
    if ((rc = check_dbdir(dbdir, &exists, err)) || (rc = check_fasta_opens(fasta, err)))
        return rc;
    if (!exists && mkdir(dbdir, 0777) != 0)
        return pdr_fail(err, PDR_EIO, "%s: cannot create directory: %s", dbdir, strerror(errno));
    /* one makedb at a time: a second one would remove the calibration the first just wrote, or
     * write the same temporary files */
    char path[4096];
    pdr_lock *lock = NULL;
    snprintf(path, sizeof path, "%s/%s", dbdir, PDR_DB_LOCK);
    if ((rc = pdr_lock_acquire(path, dbdir, &lock, err)))
        return rc;
    if (pdr_db_target_is_stream(fasta)) { /* read once into dbdir: the rest reads the copy */
        if ((rc = copy_stream(fasta, dbdir, spool, spool_size, err)))
            goto fail;
        fasta = spool;
    }
    if (exists && (rc = check_existing(enc, fasta, dbdir, bopts, err)))
        goto fail;
    if (exists && (rc = remove_leftovers(dbdir, spool, err)))
        goto fail;
    /* the calibration is written last and a database without one does not open: a makedb killed
     * from here on (a rebuild too) leaves a directory that search refuses and a rerun resumes */
    snprintf(path, sizeof path, "%s/%s", dbdir, PDR_DB_CALIB);
    if (unlink(path) != 0 && errno != ENOENT) {
        rc = pdr_fail(err, PDR_EIO, "%s: cannot remove: %s", path, strerror(errno));
        goto fail;
    }
    if ((rc = pdr_db_expansion_remove(dbdir, err))) /* a rebuild without --expand keeps no stale one */
        goto fail;
    /* these removals on disk before any new file is; and with --expand, a mark that stays until
     * the expansion is complete, since calibration.txt comes before it */
    if ((rc = pdr_file_sync_dir(path, err)) || (expand && (rc = pdr_db_expansion_begin(dbdir, err))))
        goto fail;
    *ret_lock = lock;
    return PDR_OK;
fail: /* refused: DBDIR as it was, lock file included */
    if (spool[0])
        unlink(spool);
    spool[0] = '\0';
    pdr_lock_release(lock, 1);
    return rc;
}
