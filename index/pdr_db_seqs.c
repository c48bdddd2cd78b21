/* pdr_db_seqs.c: DBDIR/sequences.h5, the database proteins' residues, which the alignment
 * re-ranking (pdr_db_align.c) reads.
 *
 *   /residues  uint8 [total]  every protein's residues (FASTA letters, upper case), in store row
 *                              order, back to back; contiguous layout, no compression
 *   /offsets   int64 [n + 1]  row r is residues[offsets[r] .. offsets[r + 1])
 *
 * Opening keeps the file open and notes where /residues starts (it is contiguous, so its file
 * offset is all that is needed); each protein is then read with pread() when it is aligned, so
 * the residues never count in the process's memory (a mapping would: the kernel maps whole
 * neighbourhoods of pages on each fault). pread() is safe from many threads at once. */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pdr_db.h"
#include "pdr_fasta.h"

#define WRITE_CHUNK ((size_t)16 << 20)

static void seqs_path(char *out, size_t cap, const char *dbdir, const char *suffix)
{
    snprintf(out, cap, "%s/%s%s", dbdir, PDR_DB_SEQS, suffix);
}

/* Append buf[0..len) to the 1-d dataset d at offset pos. */
static int write_at(hid_t d, hsize_t pos, const uint8_t *buf, size_t len)
{
    hsize_t start = pos, count = len;
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, &count, NULL);
    int bad = fs < 0 || ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
              H5Dwrite(d, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, buf) < 0;
    if (ms >= 0)
        H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    return bad;
}

int pdr_db_write_sequences(const char *dbdir, const char *fasta, size_t max_length, pdr_err *err)
{
    char store_path[4096], path[4096], tmp[4096];
    snprintf(store_path, sizeof store_path, "%s/%s", dbdir, PDR_DB_STORE);
    seqs_path(path, sizeof path, dbdir, "");
    seqs_path(tmp, sizeof tmp, dbdir, ".tmp");
    pdr_store *st = NULL;
    pdr_fasta *fa = NULL;
    char **ids = NULL;
    int32_t *lengths = NULL;
    int64_t *offsets = NULL;
    uint8_t *buf = NULL;
    hid_t f = -1, d = -1, sp = -1, od = -1;
    size_t n = 0, row = 0, fill = 0;
    int rc = pdr_store_open(store_path, &st, err);
    if (rc)
        return rc;
    n = pdr_store_count(st);
    ids = calloc(n ? n : 1, sizeof *ids);
    lengths = malloc((n ? n : 1) * sizeof *lengths);
    offsets = malloc((n + 1) * sizeof *offsets);
    buf = malloc(WRITE_CHUNK);
    if (!ids || !lengths || !offsets || !buf) {
        rc = pdr_fail(err, PDR_ENOMEM, "%s: out of memory for %zu proteins", path, n);
        goto done;
    }
    if (n && (rc = pdr_store_read_ids(st, 0, n, ids, lengths, err)))
        goto done;
    offsets[0] = 0;
    for (size_t r = 0; r < n; r++)
        offsets[r + 1] = offsets[r] + lengths[r];
    hsize_t total = (hsize_t)offsets[n], n1 = n + 1;
    f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    sp = f >= 0 ? H5Screate_simple(1, &total, NULL) : -1;
    d = sp >= 0 ? H5Dcreate2(f, "/residues", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    if (d < 0) {
        rc = pdr_fail(err, PDR_EIO, "%s: cannot create (directory not writable, or disk full?)", tmp);
        goto done;
    }
    /* The store's rows are the FASTA's valid records in order (pdr_bulk_embed): walk both. */
    pdr_fasta_opts fopts = {.max_length = max_length};
    if ((rc = pdr_fasta_open(fasta, &fopts, &fa, err)))
        goto done;
    hsize_t pos = 0;
    while (row < n) {
        pdr_seq s;
        pdr_err rerr;
        int r = pdr_fasta_read(fa, &s, &rerr);
        if (r == PDR_EINPUT || r == PDR_ELIMIT || (r == PDR_OK && strcmp(s.id, ids[row]) != 0))
            continue; /* skipped by the embedding too */
        if (r == PDR_EOF) {
            rc = pdr_fail(err, PDR_EINPUT, "%s: ends before protein %zu of %s (%s): not the FASTA it was made from",
                          fasta, row + 1, store_path, ids[row]);
            goto done;
        }
        if (r) {
            rc = pdr_fail(err, r, "%s", rerr.msg);
            goto done;
        }
        if ((int64_t)s.len != lengths[row]) {
            rc = pdr_fail(err, PDR_EINPUT, "%s: record %zu (%s) has %zu residues, the store %d", fasta, s.record_no,
                          s.id, s.len, (int)lengths[row]);
            goto done;
        }
        for (size_t i = 0; i < s.len;) {
            size_t m = s.len - i < WRITE_CHUNK - fill ? s.len - i : WRITE_CHUNK - fill;
            memcpy(buf + fill, s.seq + i, m);
            fill += m;
            i += m;
            if (fill == WRITE_CHUNK) {
                if (write_at(d, pos, buf, fill)) {
                    rc = pdr_fail(err, PDR_EIO, "%s: write failed (disk full?)", tmp);
                    goto done;
                }
                pos += fill;
                fill = 0;
            }
        }
        row++;
    }
    if (fill && write_at(d, pos, buf, fill)) {
        rc = pdr_fail(err, PDR_EIO, "%s: write failed (disk full?)", tmp);
        goto done;
    }
    H5Sclose(sp);
    sp = H5Screate_simple(1, &n1, NULL);
    od = sp >= 0 ? H5Dcreate2(f, "/offsets", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    if (od < 0 || H5Dwrite(od, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, offsets) < 0) {
        rc = pdr_fail(err, PDR_EIO, "%s: write failed (disk full?)", tmp);
        goto done;
    }
done:
    if (od >= 0)
        H5Dclose(od);
    if (d >= 0)
        H5Dclose(d);
    if (sp >= 0)
        H5Sclose(sp);
    if (f >= 0 && H5Fclose(f) < 0 && !rc)
        rc = pdr_fail(err, PDR_EIO, "%s: write failed (disk full?)", tmp);
    if (!rc && rename(tmp, path) != 0)
        rc = pdr_fail(err, PDR_EIO, "%s: cannot rename to %s", tmp, path);
    if (rc)
        unlink(tmp);
    pdr_fasta_close(fa);
    if (ids)
        pdr_store_free_ids(ids, n);
    free(ids);
    free(lengths);
    free(offsets);
    free(buf);
    pdr_store_free(st);
    return rc;
}

struct pdr_db_seqs {
    int64_t *offsets; /* [n + 1] */
    size_t n;
    int fd;            /* DBDIR/sequences.h5, open */
    uint64_t data_off; /* file offset of /residues */
    char path[4096];
};

void pdr_db_seqs_free(pdr_db_seqs *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    free(s->offsets);
    free(s);
}

int pdr_db_seqs_open(const char *dbdir, const int32_t *lengths, size_t n, pdr_db_seqs **ret, pdr_err *err)
{
    char path[4096];
    seqs_path(path, sizeof path, dbdir, "");
    *ret = NULL;
    if (access(path, F_OK) != 0)
        return PDR_OK; /* an older database: no alignment */
    pdr_db_seqs *s = calloc(1, sizeof *s);
    hid_t f = -1, d = -1, od = -1, sp = -1;
    int fd = -1, rc = PDR_OK;
    if (s)
        s->fd = -1;
    if (!s || !(s->offsets = malloc((n + 1) * sizeof *s->offsets))) {
        rc = pdr_fail(err, PDR_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    s->n = n;
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    d = f >= 0 && H5Lexists(f, "/residues", H5P_DEFAULT) > 0 ? H5Dopen2(f, "/residues", H5P_DEFAULT) : -1;
    od = f >= 0 && H5Lexists(f, "/offsets", H5P_DEFAULT) > 0 ? H5Dopen2(f, "/offsets", H5P_DEFAULT) : -1;
    hsize_t dims[2] = {0, 0}, rdims[2] = {0, 0};
    sp = od >= 0 ? H5Dget_space(od) : -1;
    if (d < 0 || sp < 0 || H5Sget_simple_extent_ndims(sp) != 1 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0 ||
        dims[0] != n + 1 || H5Dread(od, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->offsets) < 0) {
        rc = pdr_fail(err, PDR_EFORMAT, "%s: not a sequence file for %zu proteins; rebuild with 'pdr makedb'", path, n);
        goto fail;
    }
    H5Sclose(sp);
    sp = H5Dget_space(d);
    if (sp < 0 || H5Sget_simple_extent_ndims(sp) != 1 || H5Sget_simple_extent_dims(sp, rdims, NULL) < 0) {
        rc = pdr_fail(err, PDR_EFORMAT, "%s: /residues is not 1-dimensional", path);
        goto fail;
    }
    if (s->offsets[0] != 0 || (hsize_t)s->offsets[n] != rdims[0]) {
        rc = pdr_fail(err, PDR_EFORMAT, "%s: offsets do not span /residues; rebuild with 'pdr makedb'", path);
        goto fail;
    }
    for (size_t r = 0; r < n; r++)
        if (s->offsets[r + 1] - s->offsets[r] != lengths[r]) {
            rc =
                pdr_fail(err, PDR_EFORMAT, "%s: protein %zu has %lld residues, the store %d; rebuild with 'pdr makedb'",
                         path, r + 1, (long long)(s->offsets[r + 1] - s->offsets[r]), (int)lengths[r]);
            goto fail;
        }
    haddr_t off = rdims[0] ? H5Dget_offset(d) : 0;
    struct stat sb;
    fd = open(path, O_RDONLY);
    if (rdims[0] && (off == HADDR_UNDEF || fd < 0 || fstat(fd, &sb) != 0 || (uint64_t)sb.st_size < off + rdims[0])) {
        rc = pdr_fail(err, PDR_EFORMAT, "%s: /residues is not stored contiguously; rebuild with 'pdr makedb'", path);
        goto fail;
    }
    s->fd = fd;
    fd = -1;
    s->data_off = (uint64_t)off;
    snprintf(s->path, sizeof s->path, "%s", path);
    H5Sclose(sp);
    H5Dclose(d);
    H5Dclose(od);
    H5Fclose(f);
    *ret = s;
    return PDR_OK;
fail:
    if (fd >= 0)
        close(fd);
    if (sp >= 0)
        H5Sclose(sp);
    if (d >= 0)
        H5Dclose(d);
    if (od >= 0)
        H5Dclose(od);
    if (f >= 0)
        H5Fclose(f);
    pdr_db_seqs_free(s);
    if (!rc)
        rc = pdr_fail(err, PDR_EFORMAT, "%s: unreadable", path);
    return rc;
}

int pdr_db_seqs_read(const pdr_db_seqs *s, int64_t row, char **buf, size_t *cap, size_t *ret_len, pdr_err *err)
{
    size_t len = (size_t)(s->offsets[row + 1] - s->offsets[row]);
    if (len + 1 > *cap) {
        char *p = realloc(*buf, len + 1);
        if (!p)
            return pdr_fail(err, PDR_ENOMEM, "%s: out of memory for a protein of %zu residues", s->path, len);
        *buf = p;
        *cap = len + 1;
    }
    uint64_t at = s->data_off + (uint64_t)s->offsets[row];
    for (size_t got = 0; got < len;) {
        ssize_t r = pread(s->fd, *buf + got, len - got, (off_t)(at + got));
        if (r <= 0)
            return pdr_fail(err, PDR_EIO, "%s: cannot read protein %lld: %s", s->path, (long long)row + 1,
                            r < 0 ? strerror(errno) : "file truncated");
        got += (size_t)r;
    }
    (*buf)[len] = '\0';
    *ret_len = len;
    return PDR_OK;
}
