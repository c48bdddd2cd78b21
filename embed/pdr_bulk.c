/* pdr_bulk.c: FASTA -> batches -> worker threads -> part files -> merged HDF5 store.
 * See pdr_bulk.h for the crash-safety and resume contract. */
#include "pdr_bulk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pdr_batch.h"
#include "pdr_fasta.h"
#include "pdr_file.h"
#include "pdr_lock.h"
#include "pdr_store.h"
#include "pdr_strset.h"

#define DEFAULT_BATCH_RESIDUES 2000000
#define MAX_BATCH_RECORDS 20000
#define MERGE_ROWS 8192

/* ---------------------------------------------------------------- batch of records */

typedef struct batch {
    size_t n, cap;
    char **ids;
    char **seqs;
    int32_t *lengths;
    uint64_t *seq_hash; /* pdr_store_seq_hash of each record's residues */
    size_t residues;
    float *emb; /* n x dim, filled by workers */
    /* segments, filled by workers into per-record arrays */
    size_t *n_seg;
    int32_t **seg_start, **seg_end;
    float **seg_emb;
} batch;

static void batch_clear(batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->ids[i]);
        free(b->seqs[i]);
        if (b->seg_start) {
            free(b->seg_start[i]);
            free(b->seg_end[i]);
            free(b->seg_emb[i]);
            b->seg_start[i] = b->seg_end[i] = NULL;
            b->seg_emb[i] = NULL;
            b->n_seg[i] = 0;
        }
    }
    b->n = 0;
    b->residues = 0;
}

static void batch_free(batch *b)
{
    batch_clear(b);
    free(b->ids);
    free(b->seqs);
    free(b->lengths);
    free(b->seq_hash);
    free(b->emb);
    free(b->n_seg);
    free(b->seg_start);
    free(b->seg_end);
    free(b->seg_emb);
    memset(b, 0, sizeof *b);
}

static int batch_init(batch *b, int dim, int segments, pdr_err *err)
{
    memset(b, 0, sizeof *b);
    b->cap = MAX_BATCH_RECORDS;
    b->ids = calloc(b->cap, sizeof(char *));
    b->seqs = calloc(b->cap, sizeof(char *));
    b->lengths = calloc(b->cap, sizeof(int32_t));
    b->seq_hash = calloc(b->cap, sizeof(uint64_t));
    b->emb = malloc(b->cap * (size_t)dim * sizeof(float));
    int ok = b->ids && b->seqs && b->lengths && b->seq_hash && b->emb;
    if (segments) {
        b->n_seg = calloc(b->cap, sizeof(size_t));
        b->seg_start = calloc(b->cap, sizeof(int32_t *));
        b->seg_end = calloc(b->cap, sizeof(int32_t *));
        b->seg_emb = calloc(b->cap, sizeof(float *));
        ok = ok && b->n_seg && b->seg_start && b->seg_end && b->seg_emb;
    }
    if (!ok) {
        batch_free(b);
        return pdr_fail(err, PDR_ENOMEM, "embed: out of memory allocating a batch");
    }
    return PDR_OK;
}

static int batch_push(batch *b, const pdr_seq *s, pdr_err *err)
{
    b->ids[b->n] = strdup(s->id);
    b->seqs[b->n] = malloc(s->len + 1);
    if (!b->ids[b->n] || !b->seqs[b->n]) {
        free(b->ids[b->n]);
        free(b->seqs[b->n]);
        return pdr_fail(err, PDR_ENOMEM, "embed: out of memory at record %zu (%s)", s->record_no, s->id);
    }
    memcpy(b->seqs[b->n], s->seq, s->len + 1);
    b->lengths[b->n] = (int32_t)s->len;
    b->seq_hash[b->n] = pdr_store_seq_hash(s->seq, s->len);
    b->residues += s->len;
    b->n++;
    return PDR_OK;
}

static int embed_batch(const pdr_encoder *enc, pdr_encoder_ws *const *ws, const pdr_bulk_opts *o, batch *b,
                       pdr_err *err)
{
    pdr_batch_job job = {.n = b->n, .seqs = b->seqs, .lengths = b->lengths, .ids = b->ids, .emb = b->emb};
    if (o->segments) {
        job.window = o->window;
        job.stride = o->stride;
        job.n_seg = b->n_seg;
        job.seg_start = b->seg_start;
        job.seg_end = b->seg_end;
        job.seg_emb = b->seg_emb;
    }
    return pdr_batch_embed(enc, ws, o->threads, &job, err);
}

/* ---------------------------------------------------------------- files */

static int write_store_file(const char *path, const pdr_store_meta *meta, const batch *b, int dim, int segments,
                            pdr_err *err)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    pdr_store *st = NULL;
    pdr_store_opts so = {.rows_hint = b->n};
    int rc = pdr_store_create_opts(tmp, meta, &so, &st, err);
    if (rc)
        return rc;
    rc = pdr_store_append(st, b->n, (const char *const *)b->ids, b->lengths, b->seq_hash, b->emb, err);
    for (size_t i = 0; !rc && segments && i < b->n; i++) {
        size_t ns = b->n_seg[i];
        int64_t *prot = malloc((ns ? ns : 1) * sizeof(int64_t));
        if (!prot) {
            rc = pdr_fail(err, PDR_ENOMEM, "embed: out of memory");
            break;
        }
        for (size_t j = 0; j < ns; j++)
            prot[j] = (int64_t)i;
        rc = pdr_store_append_segments(st, ns, prot, b->seg_start[i], b->seg_end[i], b->seg_emb[i], err);
        free(prot);
    }
    int rc2 = pdr_store_close(st, rc ? NULL : err);
    if (!rc)
        rc = rc2;
    if (rc) {
        unlink(tmp);
        return rc;
    }
    (void)dim;
    return pdr_file_commit(tmp, path, err); /* durable before the next batch counts on it */
}

/* The options that shape a store (model, --fp16, --segments, --window/--stride) must be those
 * it was made with: rows of another kind would be mixed in (or, merged, the old rows converted). */
static int check_store_options(const char *path, const pdr_store *st, const pdr_encoder *enc, const pdr_bulk_opts *o,
                               pdr_err *err)
{
    const pdr_store_meta *m = pdr_store_meta_of(st);
    if (strcmp(m->model_name, pdr_encoder_name(enc)) != 0 || strcmp(m->model_version, pdr_encoder_version(enc)) != 0 ||
        m->dim != pdr_encoder_dim(enc))
        return pdr_fail(err, PDR_EINPUT,
                        "%s was made with model %s (version %s), not %s (version %s): remove it or "
                        "use the same --model",
                        path, m->model_name, m->model_version, pdr_encoder_name(enc), pdr_encoder_version(enc));
    if (m->fp16 != (o->fp16 != 0))
        return pdr_fail(err, PDR_EINPUT,
                        "%s holds %s embeddings: rerun %s --fp16 (a store keeps the options it was made with), "
                        "or write to a new file",
                        path, m->fp16 ? "float16" : "float32", m->fp16 ? "with" : "without");
    int has_segments = pdr_store_segment_count(st) > 0 || m->segment_window > 0;
    if (has_segments != (o->segments != 0))
        return pdr_fail(err, PDR_EINPUT,
                        "%s %s segment vectors: rerun %s --segments (a store keeps the options it was made with), "
                        "or write to a new file",
                        path, has_segments ? "holds" : "holds no", has_segments ? "with" : "without");
    if (has_segments && m->segment_window > 0 && (m->segment_window != o->window || m->segment_stride != o->stride))
        return pdr_fail(err, PDR_EINPUT,
                        "%s holds segments of window %d and stride %d, not %d and %d: rerun with --window %d "
                        "--stride %d, or write to a new file",
                        path, m->segment_window, m->segment_stride, o->window, o->stride, m->segment_window,
                        m->segment_stride);
    return PDR_OK;
}

/* What a rerun compares a record with when its id is stored already: the hash of the residues
 * where the store keeps one (/seq_hash), else the length alone (stores written before pdr kept
 * hashes). The low bit says which; the hash keeps its other 63 bits. */
static uint64_t stored_key(int hashed, uint64_t seq_hash, size_t length)
{
    return hashed ? seq_hash | 1u : (uint64_t)length << 1;
}

/* The record has the sequence a stored key was made from (as far as the key tells). */
static int same_sequence(uint64_t key, const pdr_seq *s)
{
    return key == stored_key((int)(key & 1u), pdr_store_seq_hash(s->seq, s->len), s->len);
}

/* absorb_existing for a part: also adds the ids it adds to ids to opt_new (when given), and
 * gives a copy of the store's first id in *opt_first (when given; NULL for an empty store).
 * *ret_meta is the store's metadata. */
static int absorb_part(const char *path, const pdr_encoder *enc, const pdr_bulk_opts *o, pdr_strset *ids,
                       pdr_strset *opt_new, char **opt_first, size_t *ret_rows, size_t *ret_known,
                       pdr_store_meta *ret_meta, pdr_err *err)
{
    size_t known = 0;
    if (opt_first)
        *opt_first = NULL;
    pdr_store *st = NULL;
    int rc = pdr_store_open(path, &st, err);
    if (rc)
        return rc;
    if ((rc = check_store_options(path, st, enc, o, err))) {
        pdr_store_free(st);
        return rc;
    }
    size_t n = pdr_store_count(st);
    int hashed = pdr_store_meta_of(st)->seq_hash;
    char *chunk[MERGE_ROWS];
    int32_t lengths[MERGE_ROWS];
    uint64_t hashes[MERGE_ROWS];
    for (size_t start = 0; !rc && start < n; start += MERGE_ROWS) {
        size_t m_rows = n - start < MERGE_ROWS ? n - start : MERGE_ROWS;
        rc = pdr_store_read_ids(st, start, m_rows, chunk, lengths, err);
        if (rc)
            break;
        if (hashed)
            rc = pdr_store_read_seq_hash(st, start, m_rows, hashes, err);
        if (!rc && start == 0 && opt_first && !(*opt_first = strdup(chunk[0])))
            rc = pdr_fail(err, PDR_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < m_rows; i++) {
            int added = 0;
            uint64_t key = stored_key(hashed, hashed ? hashes[i] : 0, (size_t)lengths[i]);
            rc = pdr_strset_add_value(ids, chunk[i], key, &added, err);
            known += !added;
            if (!rc && added && opt_new)
                rc = pdr_strset_add(opt_new, chunk[i], NULL, err);
        }
        pdr_store_free_ids(chunk, m_rows);
    }
    *ret_meta = *pdr_store_meta_of(st);
    pdr_store_free(st);
    *ret_rows = n;
    *ret_known = known;
    return rc;
}

/* Check that an existing store was made with the same model and options and add its ids to
 * the set: *ret_known of its *ret_rows ids were in the set already. */
static int absorb_existing(const char *path, const pdr_encoder *enc, const pdr_bulk_opts *o, pdr_strset *ids,
                           size_t *ret_rows, size_t *ret_known, pdr_store_meta *ret_meta, pdr_err *err)
{
    return absorb_part(path, enc, o, ids, NULL, NULL, ret_rows, ret_known, ret_meta, err);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted list of complete part files in dir (none when dir does not exist); with tidy, removes
 * stale .tmp files. */
static int list_parts(const char *dir, int tidy, char ***ret_names, size_t *ret_n, pdr_err *err)
{
    *ret_names = NULL;
    *ret_n = 0;
    DIR *d = opendir(dir);
    if (!d && errno == ENOENT)
        return PDR_OK;
    if (!d)
        return pdr_fail(err, PDR_EIO, "%s: cannot list: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = PDR_OK;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0) {
            if (tidy)
                unlink(path);
            continue;
        }
        if (strncmp(e->d_name, "part-", 5) != 0 || len < 4 || strcmp(e->d_name + len - 3, ".h5") != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(names, cap * sizeof(char *));
            if (!grown) {
                rc = pdr_fail(err, PDR_ENOMEM, "embed: out of memory");
                break;
            }
            names = grown;
        }
        if (!(names[n] = strdup(path))) {
            rc = pdr_fail(err, PDR_ENOMEM, "embed: out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (rc) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return rc;
    }
    if (n > 1)
        qsort(names, n, sizeof(char *), cmp_str);
    *ret_names = names;
    *ret_n = n;
    return PDR_OK;
}

static void free_names(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Append all rows (and segments) of the store at path to dst, with their sequence hashes when dst
 * keeps them (the store at path must have them then). */
static int copy_store(pdr_store *dst, const char *path, int dim, size_t row_offset, pdr_err *err)
{
    pdr_store *src = NULL;
    int rc = pdr_store_open(path, &src, err);
    if (rc)
        return rc;
    size_t n = pdr_store_count(src);
    int hashed = pdr_store_meta_of(dst)->seq_hash; /* then every source has them (pdr_bulk_embed) */
    char **ids = malloc(MERGE_ROWS * sizeof(char *));
    int32_t *lengths = malloc(MERGE_ROWS * sizeof(int32_t));
    uint64_t *hashes = malloc(MERGE_ROWS * sizeof(uint64_t));
    float *emb = malloc((size_t)MERGE_ROWS * dim * sizeof(float));
    int64_t *prot = malloc(MERGE_ROWS * sizeof(int64_t));
    int32_t *s0 = malloc(MERGE_ROWS * sizeof(int32_t));
    int32_t *s1 = malloc(MERGE_ROWS * sizeof(int32_t));
    if (!ids || !lengths || !hashes || !emb || !prot || !s0 || !s1) {
        rc = pdr_fail(err, PDR_ENOMEM, "embed: out of memory merging %s", path);
        goto done;
    }
    for (size_t start = 0; !rc && start < n; start += MERGE_ROWS) {
        size_t m = n - start < MERGE_ROWS ? n - start : MERGE_ROWS;
        rc = pdr_store_read_ids(src, start, m, ids, lengths, err);
        if (rc)
            break;
        rc = pdr_store_read(src, start, m, emb, err);
        if (!rc && hashed)
            rc = pdr_store_read_seq_hash(src, start, m, hashes, err);
        if (!rc)
            rc = pdr_store_append(dst, m, (const char *const *)ids, lengths, hashed ? hashes : NULL, emb, err);
        pdr_store_free_ids(ids, m);
    }
    size_t ns = pdr_store_segment_count(src);
    for (size_t start = 0; !rc && start < ns; start += MERGE_ROWS) {
        size_t m = ns - start < MERGE_ROWS ? ns - start : MERGE_ROWS;
        rc = pdr_store_read_segments(src, start, m, prot, s0, s1, emb, err);
        for (size_t i = 0; !rc && i < m; i++)
            prot[i] += (int64_t)row_offset;
        if (!rc)
            rc = pdr_store_append_segments(dst, m, prot, s0, s1, emb, err);
    }
done:
    free(ids);
    free(lengths);
    free(hashes);
    free(emb);
    free(prot);
    free(s0);
    free(s1);
    pdr_store_free(src);
    return rc;
}

static int merge(const char *out_path, int have_base, char **parts, size_t n_parts, const pdr_store_meta *meta, int dim,
                 size_t rows_hint, size_t *ret_total, pdr_err *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
    pdr_store *dst = NULL;
    pdr_store_opts so = {.rows_hint = rows_hint};
    int rc = pdr_store_create_opts(tmp, meta, &so, &dst, err);
    if (rc)
        return rc;
    size_t rows = 0;
    if (have_base) {
        rc = copy_store(dst, out_path, dim, 0, err);
        rows = pdr_store_count(dst);
    }
    for (size_t i = 0; !rc && i < n_parts; i++) {
        rc = copy_store(dst, parts[i], dim, rows, err);
        rows = pdr_store_count(dst);
    }
    int rc2 = pdr_store_close(dst, rc ? NULL : err);
    if (!rc)
        rc = rc2;
    /* OUT's rename is on disk before the parts it holds are removed */
    if (!rc)
        rc = pdr_file_commit(tmp, out_path, err);
    else
        unlink(tmp);
    *ret_total = rows;
    return rc;
}

/* ---------------------------------------------------------------- driver */

void pdr_bulk_opts_default(pdr_bulk_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->threads = 1;
    opts->batch_residues = DEFAULT_BATCH_RESIDUES;
    opts->max_length = PDR_MAX_LENGTH_DEFAULT;
    opts->window = 100;
    opts->stride = 50;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void warn(const pdr_bulk_opts *o, const char *msg)
{
    if (o->on_warning)
        o->on_warning(o->ctx, msg);
}

/* ---------------------------------------------------------------- what is stored already */

/* A finished OUT and the live parts of an interrupted run, with every id they hold. */
typedef struct stored {
    pdr_strset *ids; /* each with its stored_key */
    int all_hashed;  /* OUT and every live part have /seq_hash (1 when nothing is stored) */
    int any_stored;  /* OUT or a live part exists: products says how their rows were made */
    char products[sizeof(((pdr_store_meta *)0)->products)];
    int have_base;    /* OUT exists */
    size_t base_rows; /* rows in OUT */
    size_t part_rows; /* rows in the live parts */
    char **parts;     /* live parts, in order */
    size_t n_parts;
    size_t next_part;      /* one past the highest part number found, leftovers included */
    pdr_strset *part_ids;  /* the ids the live parts hold */
    char **first_ids;      /* the first id of each live part */
    pdr_strset *first_set; /* the same ids, to look up */
} stored;

static void stored_free(stored *s)
{
    pdr_strset_free(s->ids);
    pdr_strset_free(s->part_ids);
    pdr_strset_free(s->first_set);
    free_names(s->first_ids, s->n_parts);
    free_names(s->parts, s->n_parts);
    memset(s, 0, sizeof *s);
}

/* The number N of a part file .../part-N.h5. */
static size_t part_number(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = 0;
    return sscanf(base, "part-%zu", &n) == 1 ? n : 0;
}

/* Note how a stored file's rows were made (pdr_store_meta.products): s->products stays the
 * common value, becomes "mixed" when two differ, or "" (not recorded) when one is "". */
static void add_products(stored *s, const char *products)
{
    if (!s->any_stored)
        snprintf(s->products, sizeof s->products, "%s", products);
    else if (!products[0] || !s->products[0])
        s->products[0] = '\0';
    else if (strcmp(s->products, products) != 0)
        snprintf(s->products, sizeof s->products, "mixed");
    s->any_stored = 1;
}

/* Read what OUT and the partial dir hold, checking each store's model and options. A part is
 * either live (none of its ids stored elsewhere) or left over from a run that was killed after
 * renaming OUT but before removing its parts (all of its ids in OUT): leftovers leave the list
 * and, with tidy, the disk (as do stale .tmp files). Without tidy nothing is changed. */
static int stored_load(const pdr_encoder *enc, const char *out_path, const char *partial, const pdr_bulk_opts *o,
                       int tidy, stored *s, pdr_err *err)
{
    memset(s, 0, sizeof *s);
    s->all_hashed = 1;
    int rc = pdr_strset_create(&s->ids, err);
    if (!rc && access(out_path, F_OK) == 0) {
        size_t known = 0;
        pdr_store_meta m;
        rc = absorb_existing(out_path, enc, o, s->ids, &s->base_rows, &known, &m, err);
        s->have_base = !rc;
        if (!rc) {
            s->all_hashed = m.seq_hash;
            add_products(s, m.products);
        }
    }
    if (!rc)
        rc = list_parts(partial, tidy, &s->parts, &s->n_parts, err);
    for (size_t i = 0; i < s->n_parts; i++) /* new parts never overwrite one, whatever the gaps */
        if (part_number(s->parts[i]) + 1 > s->next_part)
            s->next_part = part_number(s->parts[i]) + 1;
    if (!rc && !(s->first_ids = calloc(s->n_parts ? s->n_parts : 1, sizeof(char *))))
        rc = pdr_fail(err, PDR_ENOMEM, "out of memory");
    if (!rc && !(rc = pdr_strset_create(&s->part_ids, err)))
        rc = pdr_strset_create(&s->first_set, err);
    for (size_t i = 0; !rc && i < s->n_parts; i++) {
        size_t rows = 0, known = 0;
        pdr_store_meta m;
        /* a leftover adds no id (all are in OUT), so part_ids gets the live parts' ids only */
        if ((rc = absorb_part(s->parts[i], enc, o, s->ids, s->part_ids, &s->first_ids[i], &rows, &known, &m, err)))
            break;
        if (known == rows) {
            if (tidy)
                unlink(s->parts[i]);
            free(s->parts[i]);
            s->parts[i] = NULL;
            free(s->first_ids[i]);
            s->first_ids[i] = NULL;
        } else if (known != 0) {
            rc = pdr_fail(err, PDR_EFORMAT, "%s: %zu of its %zu ids are also stored elsewhere; remove %s to start over",
                          s->parts[i], known, rows, partial);
        } else {
            s->part_rows += rows;
            s->all_hashed = s->all_hashed && m.seq_hash;
            add_products(s, m.products);
        }
    }
    if (rc) {
        stored_free(s);
        return rc;
    }
    size_t live = 0;
    for (size_t i = 0; i < s->n_parts; i++)
        if (s->parts[i]) {
            s->first_ids[live] = s->first_ids[i];
            s->parts[live++] = s->parts[i];
        }
    s->n_parts = live;
    for (size_t i = 0; !rc && i < live; i++)
        if (s->first_ids[i])
            rc = pdr_strset_add(s->first_set, s->first_ids[i], NULL, err);
    if (rc)
        stored_free(s);
    return rc;
}

/* ---------------------------------------------------------------- the merge order */

/* Rows go into OUT in input order. A part holds a run of consecutive input records that has no
 * stored record inside it (a batch ends where one comes), so ordering the parts by the input
 * position of their first record orders the rows; the parts of an interrupted run get their
 * position when this run reads their first record. A part whose first record this run never
 * reads goes last (by number). */
typedef struct part_order {
    size_t *number, *first_record;
    size_t n, cap;
} part_order;

static int part_order_set(part_order *po, size_t number, size_t first_record, pdr_err *err)
{
    for (size_t i = 0; i < po->n; i++)
        if (po->number[i] == number) {
            po->first_record[i] = first_record;
            return PDR_OK;
        }
    if (po->n == po->cap) {
        size_t cap = po->cap ? 2 * po->cap : 64;
        size_t *a = realloc(po->number, cap * sizeof *a);
        if (a)
            po->number = a;
        size_t *b = a ? realloc(po->first_record, cap * sizeof *b) : NULL;
        if (!b)
            return pdr_fail(err, PDR_ENOMEM, "out of memory");
        po->first_record = b;
        po->cap = cap;
    }
    po->number[po->n] = number;
    po->first_record[po->n++] = first_record;
    return PDR_OK;
}

static size_t part_order_get(const part_order *po, size_t number)
{
    for (size_t i = 0; i < po->n; i++)
        if (po->number[i] == number)
            return po->first_record[i];
    return SIZE_MAX;
}

static void part_order_free(part_order *po)
{
    free(po->number);
    free(po->first_record);
    memset(po, 0, sizeof *po);
}

typedef struct keyed_part {
    size_t first_record, number;
    char *path;
} keyed_part;

static int cmp_keyed_part(const void *a, const void *b)
{
    const keyed_part *x = a, *y = b;
    if (x->first_record != y->first_record)
        return x->first_record < y->first_record ? -1 : 1;
    return (x->number > y->number) - (x->number < y->number);
}

/* Sort parts (paths) into input order. */
static int sort_parts(char **parts, size_t n, const part_order *po, pdr_err *err)
{
    keyed_part *k = calloc(n ? n : 1, sizeof *k);
    if (!k)
        return pdr_fail(err, PDR_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        k[i].number = part_number(parts[i]);
        k[i].first_record = part_order_get(po, k[i].number);
        k[i].path = parts[i];
    }
    qsort(k, n, sizeof *k, cmp_keyed_part);
    for (size_t i = 0; i < n; i++)
        parts[i] = k[i].path;
    free(k);
    return PDR_OK;
}

/* The refusal of a record whose id is stored with other residues: a rerun would skip it and keep
 * the stored vector (and makedb would pair it with the new residues). opt_row: the stored
 * protein's row (1-based) when known, else 0; advice ends the message. */
static int sequence_differs(const char *fasta_path, const pdr_seq *s, const char *store_path, size_t opt_row,
                            const char *advice, pdr_err *err)
{
    char row[48] = "";
    if (opt_row)
        snprintf(row, sizeof row, " (protein %zu)", opt_row);
    return pdr_fail(err, PDR_EINPUT,
                    "%s: record %zu (%s): the sequence differs from the one stored under that id in %s%s%s", fasta_path,
                    s->record_no, s->id, store_path, row, advice);
}

/* The next record of fa that the embedding run would take; PDR_EOF at the end. An invalid
 * record is skipped, as the run skips it, unless strict (where the run would stop at it). */
static int next_valid(pdr_fasta *fa, const pdr_bulk_opts *o, pdr_seq *s, pdr_err *err)
{
    for (;;) {
        pdr_err rerr;
        pdr_err_clear(&rerr);
        int r = pdr_fasta_read(fa, s, &rerr);
        if (r == PDR_OK || r == PDR_EOF)
            return r;
        if ((r != PDR_EINPUT && r != PDR_ELIMIT) || o->strict)
            return pdr_fail(err, r, "%s%s", rerr.msg, o->strict ? " (--strict: the run would stop here)" : "");
    }
}

/* Check the rows of the store at path, in order, against the next valid records of fa: same ids,
 * same lengths and, where the store keeps their hashes (/seq_hash), the same residues. *row
 * counts the stored proteins checked so far (over OUT and the parts). */
static int match_store_rows(const char *path, pdr_fasta *fa, const char *fasta_path, const pdr_bulk_opts *o,
                            size_t *row, pdr_err *err)
{
    pdr_store *st = NULL;
    int rc = pdr_store_open(path, &st, err);
    size_t n = rc ? 0 : pdr_store_count(st);
    int hashed = rc ? 0 : pdr_store_meta_of(st)->seq_hash;
    char *ids[MERGE_ROWS];
    int32_t lengths[MERGE_ROWS];
    uint64_t hashes[MERGE_ROWS];
    for (size_t start = 0; !rc && start < n; start += MERGE_ROWS) {
        size_t m = n - start < MERGE_ROWS ? n - start : MERGE_ROWS;
        if ((rc = pdr_store_read_ids(st, start, m, ids, lengths, err)))
            break;
        if (hashed && (rc = pdr_store_read_seq_hash(st, start, m, hashes, err))) {
            pdr_store_free_ids(ids, m);
            break;
        }
        for (size_t i = 0; !rc && i < m; i++, (*row)++) {
            pdr_seq s;
            int r = next_valid(fa, o, &s, err);
            if (r == PDR_EOF)
                rc = pdr_fail(err, PDR_EINPUT,
                              "%s ends after %zu valid records, but %s holds more: protein %zu is %s: it was not "
                              "made from this FASTA",
                              fasta_path, *row, path, *row + 1, ids[i]);
            else if (r)
                rc = r;
            else if (strcmp(s.id, ids[i]) != 0 || s.len != (size_t)lengths[i])
                rc = pdr_fail(err, PDR_EINPUT,
                              "valid record %zu of %s is %s (%zu residues) but stored protein %zu of %s is %s (%d "
                              "residues): it was not made from the first records of this FASTA",
                              *row + 1, fasta_path, s.id, s.len, *row + 1, path, ids[i], (int)lengths[i]);
            else if (hashed && pdr_store_seq_hash(s.seq, s.len) != hashes[i])
                rc = sequence_differs(fasta_path, &s, path, *row + 1, ": it was not made from this FASTA", err);
        }
        pdr_store_free_ids(ids, m);
    }
    pdr_store_free(st);
    return rc;
}

int pdr_bulk_check_rerun(const pdr_encoder *enc, const char *fasta_path, const char *out_path,
                         const pdr_bulk_opts *opts, pdr_err *err)
{
    char partial[4096];
    snprintf(partial, sizeof partial, "%s.partial", out_path);
    stored s;
    pdr_fasta *fa = NULL;
    int rc = stored_load(enc, out_path, partial, opts, 0, &s, err);
    if (rc)
        return rc;
    size_t n_stored = s.base_rows + s.part_rows, row = 0;
    if (n_stored == 0)
        goto done;
    if (strcmp(fasta_path, "-") == 0) {
        rc = pdr_fail(err, PDR_EINPUT,
                      "%s%s holds %zu proteins already: targets read from stdin cannot be checked against them "
                      "(give the FASTA file)",
                      out_path, s.part_rows ? " (with its .partial)" : "", n_stored);
        goto done;
    }
    pdr_fasta_opts fopts = {.max_length = opts->max_length, .check_duplicates = 1};
    if ((rc = pdr_fasta_open(fasta_path, &fopts, &fa, err)))
        goto done;
    if (s.have_base)
        rc = match_store_rows(out_path, fa, fasta_path, opts, &row, err);
    for (size_t i = 0; !rc && i < s.n_parts; i++)
        rc = match_store_rows(s.parts[i], fa, fasta_path, opts, &row, err);
done:
    pdr_fasta_close(fa);
    stored_free(&s);
    return rc;
}

/* A record whose id is stored already must have the sequence stored under it: the run skips it,
 * and would keep the stored vector for other residues. */
static int check_stored_sequence(const stored *d, const pdr_seq *s, const char *fasta_path, const char *out_path,
                                 pdr_err *err)
{
    uint64_t key;
    if (!pdr_strset_find(d->ids, s->id, &key) || same_sequence(key, s))
        return PDR_OK;
    char base[4200] = "", part[4300] = "", where[8600], advice[8800];
    if (d->have_base)
        snprintf(base, sizeof base, "%s", out_path);
    if (d->part_rows)
        snprintf(part, sizeof part, "%s.partial/", out_path);
    int both = base[0] && part[0];
    snprintf(where, sizeof where, "%s%s%s", base, both ? " or " : "", part);
    snprintf(advice, sizeof advice,
             "; the stored rows are left as they were: use a new OUT, or remove %s%s%s to embed it again", base,
             both ? " and " : "", part);
    return sequence_differs(strcmp(fasta_path, "-") == 0 ? "stdin" : fasta_path, s, where, 0, advice, err);
}

/* Before anything is written: check_stored_sequence for every valid record of fasta_path (invalid
 * ones are the run's to report). A stream (stdin, a pipe) cannot be read twice: there the run
 * checks each record as it reads it instead. */
static int check_stored_sequences(const stored *d, const char *fasta_path, const char *out_path, const pdr_bulk_opts *o,
                                  pdr_err *err)
{
    struct stat sb;
    if (pdr_strset_count(d->ids) == 0 || strcmp(fasta_path, "-") == 0 || stat(fasta_path, &sb) != 0 ||
        !S_ISREG(sb.st_mode))
        return PDR_OK;
    pdr_fasta_opts fopts = {.max_length = o->max_length, .check_duplicates = 1};
    pdr_fasta *fa = NULL;
    int rc = pdr_fasta_open(fasta_path, &fopts, &fa, err);
    while (!rc) {
        pdr_seq s;
        pdr_err rerr;
        pdr_err_clear(&rerr);
        int r = pdr_fasta_read(fa, &s, &rerr);
        if (r == PDR_EOF)
            break;
        if (r == PDR_OK)
            rc = check_stored_sequence(d, &s, fasta_path, out_path, err);
        else if (r != PDR_EINPUT && r != PDR_ELIMIT)
            rc = pdr_fail(err, r, "%s", rerr.msg);
    }
    pdr_fasta_close(fa);
    return rc;
}

/* ---------------------------------------------------------------- the run */

int pdr_bulk_embed(const pdr_encoder *enc, const char *fasta_path, const char *out_path, const pdr_bulk_opts *opts,
                   pdr_bulk_stats *ret_stats, pdr_err *err)
{
    pdr_bulk_opts o = *opts;
    if (o.threads < 1)
        o.threads = 1;
    if (o.batch_residues == 0)
        o.batch_residues = DEFAULT_BATCH_RESIDUES;
    if (o.segments && !pdr_encoder_has_segments(enc))
        return pdr_fail(err, PDR_EINPUT, "model %s gives no segment vectors: drop --segments", pdr_encoder_name(enc));
    if (o.segments && (o.window < 1 || o.stride < 1))
        return pdr_fail(err, PDR_EINPUT, "segment window and stride must be >= 1");

    pdr_bulk_stats st;
    memset(&st, 0, sizeof st);
    st.input_fraction = -1;
    double t0 = now_s();
    int dim = pdr_encoder_dim(enc);
    char partial[4096];
    snprintf(partial, sizeof partial, "%s.partial", out_path);

    stored done;
    memset(&done, 0, sizeof done);
    part_order order;
    memset(&order, 0, sizeof order);
    pdr_fasta *fa = NULL;
    char **parts = NULL;
    size_t n_parts = 0;
    batch b;
    memset(&b, 0, sizeof b);
    pdr_lock *lock = NULL;
    pdr_encoder_ws **ws = calloc((size_t)o.threads, sizeof(pdr_encoder_ws *));
    int rc;

    if (!ws) {
        rc = pdr_fail(err, PDR_ENOMEM, "embed: out of memory");
        goto done;
    }
    pdr_store_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.model_name, sizeof meta.model_name, "%s", pdr_encoder_name(enc));
    snprintf(meta.model_version, sizeof meta.model_version, "%s", pdr_encoder_version(enc));
    meta.dim = dim;
    meta.normalized = 1;
    meta.fp16 = o.fp16;
    meta.seq_hash = 1;
    snprintf(meta.products, sizeof meta.products, "%s", pdr_encoder_precision(enc));
    if (o.segments) {
        meta.segment_window = o.window;
        meta.segment_stride = o.stride;
    }

    /* The input first: a run that cannot read it creates nothing (not even the partial dir). */
    pdr_fasta_opts fopts = {.max_length = o.max_length, .check_duplicates = 1};
    if ((rc = pdr_fasta_open(fasta_path, &fopts, &fa, err)))
        goto done;
    /* One run at a time per OUT, from before the first look at what is stored (which tidies
     * OUT.partial/) until the parts are merged and removed: two runs would each merge only the
     * parts they saw, and the last rename would win. */
    char lock_path[4200];
    snprintf(lock_path, sizeof lock_path, "%s.lock", out_path);
    if ((rc = pdr_lock_acquire(lock_path, out_path, &lock, err)))
        goto done;
    /* What is already stored: a finished OUT, and parts of an interrupted run. */
    if ((rc = stored_load(enc, out_path, partial, &o, 1, &done, err)))
        goto done;
    if (!o.rerun_checked && (rc = check_stored_sequences(&done, fasta_path, out_path, &o, err)))
        goto done;
    if ((rc = batch_init(&b, dim, o.segments, err)))
        goto done;
    for (int t = 0; t < o.threads; t++)
        if ((rc = pdr_encoder_ws_create(enc, &ws[t], err)))
            goto done;

    size_t next_part = done.next_part, batch_first = 0;
    int eof = 0;
    while (!eof) {
        /* Fill a batch: consecutive records not stored yet, ending before one stored in a part. */
        while (b.n < b.cap && b.residues < o.batch_residues) {
            pdr_seq s;
            pdr_err rerr;
            pdr_err_clear(&rerr);
            int r = pdr_fasta_read(fa, &s, &rerr);
            if (r == PDR_EOF) {
                eof = 1;
                break;
            }
            if (r == PDR_EINPUT || r == PDR_ELIMIT) {
                st.n_records++;
                st.n_invalid++;
                if (o.strict) {
                    rc = pdr_fail(err, r, "%s (--strict: stopping at the first invalid record)", rerr.msg);
                    goto done;
                }
                warn(&o, rerr.msg);
                continue;
            }
            if (r) {
                rc = pdr_fail(err, r, "%s", rerr.msg);
                goto done;
            }
            st.n_records++;
            if (pdr_strset_contains(done.ids, s.id)) {
                if ((rc = check_stored_sequence(&done, &s, fasta_path, out_path, err))) /* a stream's check */
                    goto done;
                st.n_existing++;
                if (!pdr_strset_contains(done.part_ids, s.id))
                    continue;
                /* the first record of a stored part: that part's place in the merge */
                for (size_t p = 0; pdr_strset_contains(done.first_set, s.id) && p < done.n_parts; p++) {
                    if (strcmp(done.first_ids[p], s.id) != 0)
                        continue;
                    if ((rc = part_order_set(&order, part_number(done.parts[p]), st.n_records, err)))
                        goto done;
                    break;
                }
                if (b.n > 0)
                    break; /* the batch must not straddle a stored part */
                continue;
            }
            if (b.n == 0)
                batch_first = st.n_records;
            if ((rc = batch_push(&b, &s, err)))
                goto done;
        }
        if (b.n == 0)
            continue;
        if ((rc = embed_batch(enc, ws, &o, &b, err)))
            goto done;
        if (mkdir(partial, 0777) != 0 && errno != EEXIST) {
            rc = pdr_fail(err, PDR_EIO, "%s: cannot create: %s", partial, strerror(errno));
            goto done;
        }
        char part_path[4200];
        if ((rc = part_order_set(&order, next_part, batch_first, err)))
            goto done;
        snprintf(part_path, sizeof part_path, "%s/part-%06zu.h5", partial, next_part++);
        if ((rc = write_store_file(part_path, &meta, &b, dim, o.segments, err)))
            goto done;
        for (size_t i = 0; i < b.n; i++)
            if ((rc = pdr_strset_add_value(done.ids, b.ids[i], stored_key(1, b.seq_hash[i], (size_t)b.lengths[i]), NULL,
                                           err)))
                goto done;
        st.n_embedded += b.n;
        st.n_residues += b.residues;
        st.seconds = now_s() - t0;
        st.input_fraction = pdr_fasta_fraction_read(fa);
        if (o.on_progress)
            o.on_progress(o.ctx, &st, 0);
        batch_clear(&b);
    }

    /* Merge base + parts into OUT, the parts in input order. An input without one valid record
     * is an error even when OUT exists (a failed upstream step must not pass unnoticed). */
    if (st.n_records == st.n_invalid) {
        rc = pdr_fail(err, PDR_EINPUT, "%s: no valid sequences to embed (%zu records read, %zu invalid)", fasta_path,
                      st.n_records, st.n_invalid);
        goto done;
    }
    if ((rc = list_parts(partial, 1, &parts, &n_parts, err)) || (rc = sort_parts(parts, n_parts, &order, err)))
        goto done;
    if (n_parts > 0) {
        /* /seq_hash only where every row has one: an older OUT or part keeps the merge without */
        pdr_store_meta merged = meta;
        merged.seq_hash = done.all_hashed;
        if (st.n_embedded > 0) /* this run's rows are in a part too */
            add_products(&done, meta.products);
        snprintf(merged.products, sizeof merged.products, "%s", done.any_stored ? done.products : meta.products);
        size_t hint = done.base_rows + done.part_rows + st.n_embedded; /* about the rows merged */
        if ((rc = merge(out_path, done.have_base, parts, n_parts, &merged, dim, hint, &st.n_total, err)))
            goto done;
    } else {
        st.n_total = done.base_rows;
    }
    for (size_t i = 0; i < n_parts; i++)
        unlink(parts[i]);

done:
    /* Only an empty partial dir goes: one with parts is the state a rerun resumes from. A run
     * refused the lock leaves it alone (it may be the lock holder's, about to get its first part). */
    if (lock)
        rmdir(partial);
    pdr_lock_release(lock, 1);
    st.seconds = now_s() - t0;
    if (ret_stats)
        *ret_stats = st;
    if (!rc && o.on_progress)
        o.on_progress(o.ctx, &st, 1);
    if (ws)
        for (int t = 0; t < o.threads; t++)
            pdr_encoder_ws_free(ws[t]);
    free(ws);
    batch_free(&b);
    pdr_fasta_close(fa);
    free_names(parts, n_parts);
    stored_free(&done);
    part_order_free(&order);
    return rc;
}
