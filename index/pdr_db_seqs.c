/* pdr_db_seqs.c: DBDIR/sequences.h5, the database proteins' residues, which the alignment
 * re-ranking (pdr_db_align.c) reads, and their FASTA descriptions, which JSON hits show.
 *
 *   /residues      uint8 [total]  every protein's residues (FASTA letters, upper case), in store
 *                                 row order, back to back; contiguous layout, no compression
 *   /offsets       int64 [n + 1]  row r is residues[offsets[r] .. offsets[r + 1])
 *   /desc          uint8 [bytes]  every protein's description (its FASTA header after the id,
 *                                 trimmed; UTF-8 as read, no NUL), in the same order, back to back
 *   /desc_offsets  int64 [n + 1]  row r's description is desc[desc_offsets[r] .. desc_offsets[r + 1])
 *                                 (both absent in files written before pdr kept descriptions)
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

#include "pdr_buf.h"
#include "pdr_db.h"
#include "pdr_fasta.h"
#include "pdr_file.h"

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

/* Write data[0..len) as the contiguous uint8 dataset name and offsets[0..n] as int64 dataset
 * offsets_name into f. */
static int write_blob(hid_t f, const char *name, const char *offsets_name, const uint8_t *data, size_t len,
                      const int64_t *offsets, size_t n, const char *path, pdr_err *err)
{
    hsize_t total = len, n1 = n + 1;
    hid_t sp = H5Screate_simple(1, &total, NULL);
    hid_t d = sp >= 0 ? H5Dcreate2(f, name, H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int bad = d < 0 || (len && H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0);
    if (d >= 0)
        H5Dclose(d);
    if (sp >= 0)
        H5Sclose(sp);
    sp = bad ? -1 : H5Screate_simple(1, &n1, NULL);
    d = sp >= 0 ? H5Dcreate2(f, offsets_name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    bad = bad || d < 0 || H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, offsets) < 0;
    if (d >= 0)
        H5Dclose(d);
    if (sp >= 0)
        H5Sclose(sp);
    return bad ? pdr_fail(err, PDR_EIO, "%s: write failed (disk full?)", path) : PDR_OK;
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
    int64_t *offsets = NULL, *desc_offsets = NULL;
    uint8_t *buf = NULL;
    pdr_buf desc;
    pdr_buf_init(&desc);
    hid_t f = -1, d = -1, sp = -1, od = -1;
    size_t n = 0, row = 0, fill = 0;
    int rc = pdr_store_open(store_path, &st, err);
    if (rc)
        return rc;
    n = pdr_store_count(st);
    ids = calloc(n ? n : 1, sizeof *ids);
    lengths = malloc((n ? n : 1) * sizeof *lengths);
    offsets = malloc((n + 1) * sizeof *offsets);
    desc_offsets = malloc((n + 1) * sizeof *desc_offsets);
    buf = malloc(WRITE_CHUNK);
    if (!ids || !lengths || !offsets || !desc_offsets || !buf) {
        rc = pdr_fail(err, PDR_ENOMEM, "%s: out of memory for %zu proteins", path, n);
        goto done;
    }
    if (n && (rc = pdr_store_read_ids(st, 0, n, ids, lengths, err)))
        goto done;
    offsets[0] = desc_offsets[0] = 0;
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
        pdr_buf_puts(&desc, s.desc);
        desc_offsets[row + 1] = (int64_t)desc.len;
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
    if (pdr_buf_failed(&desc)) {
        rc = pdr_fail(err, PDR_ENOMEM, "%s: out of memory for the descriptions", tmp);
        goto done;
    }
    if ((rc = write_blob(f, "/desc", "/desc_offsets", (const uint8_t *)desc.data, desc.len, desc_offsets, n, tmp, err)))
        goto done;
done:
    if (od >= 0)
        H5Dclose(od);
    if (d >= 0)
        H5Dclose(d);
    if (sp >= 0)
        H5Sclose(sp);
    if (f >= 0 && H5Fclose(f) < 0 && !rc)
        rc = pdr_fail(err, PDR_EIO, "%s: write failed (disk full?)", tmp);
    if (!rc)
        rc = pdr_file_commit(tmp, path, err); /* on disk before the calibration that marks it complete */
    else
        unlink(tmp);
    pdr_fasta_close(fa);
    if (ids)
        pdr_store_free_ids(ids, n);
    free(ids);
    free(lengths);
    free(offsets);
    free(desc_offsets);
    pdr_buf_free(&desc);
    free(buf);
    pdr_store_free(st);
    return rc;
}

struct pdr_db_seqs {
    int64_t *offsets; /* [n + 1] */
    size_t n;
    int fd;                 /* DBDIR/sequences.h5, open */
    uint64_t data_off;      /* file offset of /residues */
    int64_t *desc_offsets;  /* [n + 1], or NULL: a file without descriptions */
    uint64_t desc_data_off; /* file offset of /desc */
    char path[4096];
};

void pdr_db_seqs_free(pdr_db_seqs *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    free(s->offsets);
    free(s->desc_offsets);
    free(s);
}

/* The file offset of the contiguous 1-d uint8 dataset d of `bytes` bytes (0 when empty), checked
 * to lie inside the file fd; -1 when it is not stored so. */
static int contiguous_offset(hid_t d, uint64_t bytes, int fd, uint64_t *ret)
{
    *ret = 0;
    if (!bytes)
        return 0;
    haddr_t off = H5Dget_offset(d);
    struct stat sb;
    if (off == HADDR_UNDEF || fstat(fd, &sb) != 0 || (uint64_t)sb.st_size < off + bytes)
        return -1;
    *ret = (uint64_t)off;
    return 0;
}

/* /desc and /desc_offsets when the file has them (a file written before pdr kept descriptions
 * has neither: s->desc_offsets stays NULL). */
static int open_descriptions(hid_t f, pdr_db_seqs *s, int fd, pdr_err *err)
{
    int has_desc = H5Lexists(f, "/desc", H5P_DEFAULT) > 0, has_offsets = H5Lexists(f, "/desc_offsets", H5P_DEFAULT) > 0;
    if (!has_desc && !has_offsets)
        return PDR_OK;
    size_t n = s->n;
    hid_t d = has_desc ? H5Dopen2(f, "/desc", H5P_DEFAULT) : -1;
    hid_t od = has_offsets ? H5Dopen2(f, "/desc_offsets", H5P_DEFAULT) : -1;
    hid_t sp = od >= 0 ? H5Dget_space(od) : -1, dsp = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t dims[2] = {0, 0}, bytes[2] = {0, 0};
    int rc = PDR_OK;
    if (!(s->desc_offsets = malloc((n + 1) * sizeof *s->desc_offsets)))
        rc = pdr_fail(err, PDR_ENOMEM, "%s: out of memory", s->path);
    else if (sp < 0 || dsp < 0 || H5Sget_simple_extent_ndims(sp) != 1 || H5Sget_simple_extent_ndims(dsp) != 1 ||
             H5Sget_simple_extent_dims(sp, dims, NULL) < 0 || H5Sget_simple_extent_dims(dsp, bytes, NULL) < 0 ||
             dims[0] != n + 1 || H5Dread(od, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->desc_offsets) < 0)
        rc = pdr_fail(err, PDR_EFORMAT,
                      "%s: /desc and /desc_offsets are not descriptions of %zu proteins; rebuild "
                      "with 'pdr makedb'",
                      s->path, n);
    for (size_t r = 0; !rc && r <= n; r++)
        if ((r == 0 && s->desc_offsets[0] != 0) || (r > 0 && s->desc_offsets[r] < s->desc_offsets[r - 1]) ||
            (r == n && (hsize_t)s->desc_offsets[n] != bytes[0]))
            rc = pdr_fail(err, PDR_EFORMAT, "%s: /desc_offsets do not span /desc in order; rebuild with 'pdr makedb'",
                          s->path);
    if (!rc && contiguous_offset(d, bytes[0], fd, &s->desc_data_off))
        rc = pdr_fail(err, PDR_EFORMAT, "%s: /desc is not stored contiguously; rebuild with 'pdr makedb'", s->path);
    if (sp >= 0)
        H5Sclose(sp);
    if (dsp >= 0)
        H5Sclose(dsp);
    if (d >= 0)
        H5Dclose(d);
    if (od >= 0)
        H5Dclose(od);
    if (rc) {
        free(s->desc_offsets);
        s->desc_offsets = NULL;
    }
    return rc;
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
    if ((rc = open_descriptions(f, s, s->fd, err)))
        goto fail;
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

/* Read len bytes at file offset at of s's file into *buf (grown to fit, NUL-terminated); what names
 * them in messages ("protein", "the description of protein"). */
static int read_span(const pdr_db_seqs *s, uint64_t at, size_t len, const char *what, int64_t row, char **buf,
                     size_t *cap, pdr_err *err)
{
    if (len + 1 > *cap) {
        char *p = realloc(*buf, len + 1);
        if (!p)
            return pdr_fail(err, PDR_ENOMEM, "out of memory for %s %lld (%zu bytes)", what, (long long)row + 1, len);
        *buf = p;
        *cap = len + 1;
    }
    for (size_t got = 0; got < len;) {
        ssize_t r = pread(s->fd, *buf + got, len - got, (off_t)(at + got));
        if (r <= 0)
            return pdr_fail(err, PDR_EIO, "%s: cannot read %s %lld: %s", s->path, what, (long long)row + 1,
                            r < 0 ? strerror(errno) : "file truncated");
        got += (size_t)r;
    }
    (*buf)[len] = '\0';
    return PDR_OK;
}

int pdr_db_seqs_read(const pdr_db_seqs *s, int64_t row, char **buf, size_t *cap, size_t *ret_len, pdr_err *err)
{
    size_t len = (size_t)(s->offsets[row + 1] - s->offsets[row]);
    int rc = read_span(s, s->data_off + (uint64_t)s->offsets[row], len, "protein", row, buf, cap, err);
    if (!rc)
        *ret_len = len;
    return rc;
}

int pdr_db_seqs_has_descriptions(const pdr_db_seqs *s) { return s && s->desc_offsets; }

int pdr_db_seqs_description(const pdr_db_seqs *s, int64_t row, char **buf, size_t *cap, pdr_err *err)
{
    if (!pdr_db_seqs_has_descriptions(s))
        return read_span(s, 0, 0, "the description of protein", row, buf, cap, err); /* "" */
    size_t len = (size_t)(s->desc_offsets[row + 1] - s->desc_offsets[row]);
    return read_span(s, s->desc_data_off + (uint64_t)s->desc_offsets[row], len, "the description of protein", row, buf,
                     cap, err);
}
