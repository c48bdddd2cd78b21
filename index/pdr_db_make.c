/* pdr_db_make.c: the checks `pdr makedb` makes before it changes a database directory.
 *
 * A rerun of makedb into an existing DBDIR resumes an interrupted run or extends the database
 * with records added at the end of its FASTA. Anything else (another FASTA, other options)
 * would fail halfway, after the calibration is gone, and leave a directory that neither search
 * nor a rerun could use; so it is refused here, before anything is touched.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pdr_bulk.h"
#include "pdr_db.h"
#include "pdr_db_expand.h"
#include "pdr_fasta.h"
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

/* The target FASTA opens (stdin is not tried: it can be read only once). */
static int check_fasta_opens(const char *fasta, pdr_err *err)
{
    if (strcmp(fasta, "-") == 0)
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
                        pdr_lock **ret_lock, pdr_err *err)
{
    *ret_lock = NULL;
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
    if (exists && (rc = check_existing(enc, fasta, dbdir, bopts, err)))
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
    *ret_lock = lock;
    return PDR_OK;
fail: /* refused: DBDIR as it was, lock file included */
    pdr_lock_release(lock, 1);
    return rc;
}
