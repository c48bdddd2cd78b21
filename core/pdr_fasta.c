/* pdr_fasta.c: the streaming FASTA reader (contract and rules in pdr_fasta.h).
 *
 * The input is read in fixed chunks, through zlib's gzread for files (plain and gzip alike) or
 * straight from the caller's buffer for memory input, and parsed one byte at a time by a small
 * state machine: skip what precedes the first record, read a header line, read sequence lines
 * until the next '>' in column 1. The first problem found in a record is remembered and the
 * rest of the record is read past without storing it, so one bad record never costs memory or
 * desynchronises the stream.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "pdr_fasta.h"
#include "pdr_utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---------------------------------------------------------------- the reader */

#define FA_CHUNK ((size_t)64 * 1024) /* bytes per gzread */
#define FA_END (-1)                  /* fa_getc: input exhausted */
#define FA_FAIL (-2)                 /* fa_getc: fatal error, fa->fatal set */
#define FA_ID_SHOW_BYTES 80          /* id bytes quoted in messages before "..." */
#define FA_SEQ_INIT 1024

enum { C_BAD = 0, C_SPACE = 1, C_GAP = 2, C_STOP = 3, C_NL = 4, C_GT = 5 };

typedef struct fa_idset { /* open addressing, power-of-2 capacity, load <= 1/2 */
    char **keys;
    size_t *first_record;
    size_t cap, n;
} fa_idset;

struct pdr_fasta {
    char *name;       /* for messages */
    gzFile gz;        /* NULL for memory input */
    off_t file_bytes; /* size of a regular input file (plain or gzip), 0 when unknown (stdin, pipes) */
    unsigned char *chunk;
    const unsigned char *pos, *end; /* unread part of the current chunk */
    int eof;                        /* no more bytes to come */
    int fatal;                      /* sticky status (PDR_EIO), 0 if none */
    char fatal_msg[PDR_ERRLEN];

    size_t max_length, max_header;
    int check_duplicates;

    size_t line_no; /* line of the next byte, 1-based */
    int prev_cr;    /* last byte was CR: a following LF ends no new line */
    int at_line_start;
    int started;     /* the text before the first record has been dealt with */
    int have_header; /* the '>' of the next record has been read */
    size_t header_line;
    size_t n_returned; /* records handed out, good or bad */

    char *header; /* max_header + 1 bytes */
    char *seq;
    size_t seq_cap;
    char id_show[FA_ID_SHOW_BYTES * 4 + 8];
    char empty[1];

    /* the current record's first error */
    int rec_code;
    size_t rec_line;
    char rec_detail[320];

    fa_idset ids;
};

/* Byte classes for sequence lines. Every letter maps to its uppercase form (all 26 are accepted:
 * the 20 standard amino acids plus U O B Z X J); everything not listed is C_BAD. A constant
 * table, so that readers on several threads share it without any set-up. */
static const unsigned char fa_class[256] = {
    ['A'] = 'A',   ['a'] = 'A',   ['B'] = 'B',    ['b'] = 'B',     ['C'] = 'C',      ['c'] = 'C',      ['D'] = 'D',
    ['d'] = 'D',   ['E'] = 'E',   ['e'] = 'E',    ['F'] = 'F',     ['f'] = 'F',      ['G'] = 'G',      ['g'] = 'G',
    ['H'] = 'H',   ['h'] = 'H',   ['I'] = 'I',    ['i'] = 'I',     ['J'] = 'J',      ['j'] = 'J',      ['K'] = 'K',
    ['k'] = 'K',   ['L'] = 'L',   ['l'] = 'L',    ['M'] = 'M',     ['m'] = 'M',      ['N'] = 'N',      ['n'] = 'N',
    ['O'] = 'O',   ['o'] = 'O',   ['P'] = 'P',    ['p'] = 'P',     ['Q'] = 'Q',      ['q'] = 'Q',      ['R'] = 'R',
    ['r'] = 'R',   ['S'] = 'S',   ['s'] = 'S',    ['T'] = 'T',     ['t'] = 'T',      ['U'] = 'U',      ['u'] = 'U',
    ['V'] = 'V',   ['v'] = 'V',   ['W'] = 'W',    ['w'] = 'W',     ['X'] = 'X',      ['x'] = 'X',      ['Y'] = 'Y',
    ['y'] = 'Y',   ['Z'] = 'Z',   ['z'] = 'Z',    [' '] = C_SPACE, ['\t'] = C_SPACE, ['\v'] = C_SPACE, ['\f'] = C_SPACE,
    ['-'] = C_GAP, ['.'] = C_GAP, ['*'] = C_STOP, ['\n'] = C_NL,   ['\r'] = C_NL,    ['>'] = C_GT,
};

static int fa_is_space(int c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f'; }

/* ---------------------------------------------------------------- input */

/* Refill the chunk; returns its first byte, FA_END or FA_FAIL. */
static int fa_refill(pdr_fasta *fa)
{
    if (fa->fatal)
        return FA_FAIL;
    if (fa->eof || !fa->gz) {
        fa->eof = 1;
        return FA_END;
    }
    int n = gzread(fa->gz, fa->chunk, (unsigned)FA_CHUNK);
    if (n > 0) {
        fa->pos = fa->chunk;
        fa->end = fa->chunk + n;
        return *fa->pos++;
    }
    int errnum = Z_OK;
    const char *zmsg = gzerror(fa->gz, &errnum);
    if (n == 0 && errnum == Z_OK) {
        fa->eof = 1;
        return FA_END;
    }
    fa->fatal = PDR_EIO;
    char where[64];
    if (fa->n_returned)
        snprintf(where, sizeof where, "after record %zu", fa->n_returned);
    else
        snprintf(where, sizeof where, "before the end of record 1");
    if (errnum == Z_BUF_ERROR)
        snprintf(fa->fatal_msg, sizeof fa->fatal_msg, "%s: truncated gzip stream %s", fa->name, where);
    else if (errnum == Z_ERRNO)
        snprintf(fa->fatal_msg, sizeof fa->fatal_msg, "%s: read error %s: %s", fa->name, where, strerror(errno));
    else
        snprintf(fa->fatal_msg, sizeof fa->fatal_msg, "%s: corrupt gzip stream %s: %s", fa->name, where,
                 zmsg ? zmsg : "unknown zlib error");
    return FA_FAIL;
}

static inline int fa_getc(pdr_fasta *fa)
{
    if (fa->pos < fa->end)
        return *fa->pos++;
    return fa_refill(fa);
}

/* Count a line end. CR, LF and CRLF each end one line. */
static inline void fa_newline(pdr_fasta *fa, int c)
{
    if (c == '\r' || !fa->prev_cr)
        fa->line_no++;
    fa->prev_cr = (c == '\r');
    fa->at_line_start = 1;
}

static inline void fa_other(pdr_fasta *fa)
{
    fa->prev_cr = 0;
    fa->at_line_start = 0;
}

/* ---------------------------------------------------------------- UTF-8 and ids */

static int fa_is_control(uint32_t cp) { return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f); }

/* Write a printable form of id[0..len) into fa->id_show: valid non-control characters as they
 * are, other bytes as \xHH, cut after FA_ID_SHOW_BYTES bytes. Returns 1 if the id is valid. */
static int fa_show_id(pdr_fasta *fa, const unsigned char *id, size_t len)
{
    char *out = fa->id_show;
    int valid = 1;
    size_t i = 0, shown = 0;
    while (i < len) {
        uint32_t cp = 0;
        size_t k = pdr_utf8_decode(id + i, len - i, &cp);
        int ok = k > 0 && !fa_is_control(cp);
        if (!ok)
            valid = 0;
        if (i < FA_ID_SHOW_BYTES) {
            shown = i + (ok ? k : 1);
            if (ok) {
                memcpy(out, id + i, k);
                out += k;
            } else {
                out += sprintf(out, "\\x%02x", id[i]);
            }
        }
        i += ok ? k : 1;
    }
    if (shown < len) {
        memcpy(out, "...", 3);
        out += 3;
    }
    *out = '\0';
    return valid;
}

/* Make desc[0..len) printable UTF-8 in place (tab -> space, other controls and invalid bytes
 * -> '?') and trim it; returns the start of the trimmed text, NUL-terminated. */
static char *fa_clean_desc(char *desc, size_t len)
{
    unsigned char *s = (unsigned char *)desc;
    size_t i = 0;
    while (i < len) {
        uint32_t cp = 0;
        size_t k = pdr_utf8_decode(s + i, len - i, &cp);
        if (k == 0) {
            s[i++] = '?';
        } else if (cp == '\t' || cp == '\v' || cp == '\f') {
            s[i++] = ' ';
        } else if (fa_is_control(cp)) {
            memset(s + i, '?', k);
            i += k;
        } else {
            i += k;
        }
    }
    size_t b = 0, e = len;
    while (b < e && s[b] == ' ')
        b++;
    while (e > b && s[e - 1] == ' ')
        e--;
    s[e] = '\0';
    return desc + b;
}

/* ---------------------------------------------------------------- duplicate set */

static uint64_t fa_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void fa_idset_free(fa_idset *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->keys[i]);
    free(set->keys);
    free(set->first_record);
    memset(set, 0, sizeof *set);
}

static size_t fa_idset_slot(const fa_idset *set, const char *key)
{
    size_t mask = set->cap - 1, i = (size_t)fa_hash(key) & mask;
    while (set->keys[i] && strcmp(set->keys[i], key) != 0)
        i = (i + 1) & mask;
    return i;
}

/* The record key was first seen in (as a valid record), or 0. */
static size_t fa_idset_find(const fa_idset *set, const char *key)
{
    if (set->cap == 0)
        return 0;
    size_t i = fa_idset_slot(set, key);
    return set->keys[i] ? set->first_record[i] : 0;
}

/* Insert key (copied) unless present. Returns 0 and sets *ret_first to 0 if it was new, or to
 * the record it was first seen in; -1 on allocation failure. */
static int fa_idset_add(fa_idset *set, const char *key, size_t record_no, size_t *ret_first)
{
    *ret_first = 0;
    if (2 * (set->n + 1) > set->cap) {
        size_t ncap = set->cap ? 2 * set->cap : 1024;
        fa_idset grown = {calloc(ncap, sizeof(char *)), calloc(ncap, sizeof(size_t)), ncap, 0};
        if (!grown.keys || !grown.first_record) {
            free(grown.keys);
            free(grown.first_record);
            return -1;
        }
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->keys[i])
                continue;
            size_t j = fa_idset_slot(&grown, set->keys[i]);
            grown.keys[j] = set->keys[i];
            grown.first_record[j] = set->first_record[i];
            grown.n++;
        }
        free(set->keys);
        free(set->first_record);
        *set = grown;
    }
    size_t i = fa_idset_slot(set, key);
    if (set->keys[i]) {
        *ret_first = set->first_record[i];
        return 0;
    }
    size_t n = strlen(key) + 1;
    char *copy = malloc(n);
    if (!copy)
        return -1;
    memcpy(copy, key, n);
    set->keys[i] = copy;
    set->first_record[i] = record_no;
    set->n++;
    return 0;
}

/* ---------------------------------------------------------------- open / close */

static int fa_create(const pdr_fasta_opts *opts, const char *default_name, pdr_fasta **ret_fa, pdr_err *err)
{
    *ret_fa = NULL;
    const char *name = opts && opts->name ? opts->name : default_name;
    pdr_fasta *fa = calloc(1, sizeof *fa);
    if (!fa)
        goto fail;
    fa->max_length = opts ? opts->max_length : 0;
    fa->check_duplicates = opts ? opts->check_duplicates : 0;
    fa->max_header = opts && opts->max_header_bytes ? opts->max_header_bytes : PDR_FASTA_MAX_HEADER_DEFAULT;
    if (fa->max_header >= SIZE_MAX / 2)
        fa->max_header = SIZE_MAX / 2;
    fa->name = malloc(strlen(name) + 1);
    fa->header = malloc(fa->max_header + 1);
    if (!fa->name || !fa->header)
        goto fail;
    strcpy(fa->name, name);
    fa->line_no = 1;
    fa->at_line_start = 1;
    *ret_fa = fa;
    return PDR_OK;
fail:
    pdr_fasta_close(fa);
    return pdr_fail(err, PDR_ENOMEM, "%s: out of memory opening a FASTA reader", default_name);
}

int pdr_fasta_open(const char *path, const pdr_fasta_opts *opts, pdr_fasta **ret_fa, pdr_err *err)
{
    pdr_fasta *fa = NULL;
    int fd = -1;
    int is_stdin = strcmp(path, "-") == 0;
    int status = fa_create(opts, is_stdin ? "stdin" : path, &fa, err);
    if (status != PDR_OK)
        goto fail;
    fd = is_stdin ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        status = pdr_fail(err, PDR_EIO, "%s: cannot open: %s", fa->name, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        status = pdr_fail(err, PDR_EIO, "%s: cannot stat: %s", fa->name, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        status = pdr_fail(err, PDR_EIO, "%s: is a directory, not a FASTA file", fa->name);
        goto fail;
    }
    if (!is_stdin && S_ISREG(st.st_mode))
        fa->file_bytes = st.st_size;
    fa->chunk = malloc(FA_CHUNK);
    if (!fa->chunk) {
        status = pdr_fail(err, PDR_ENOMEM, "%s: out of memory opening a FASTA reader", fa->name);
        goto fail;
    }
    fa->gz = gzdopen(fd, "rb");
    if (!fa->gz) {
        status = pdr_fail(err, PDR_ENOMEM, "%s: cannot start zlib reader", fa->name);
        goto fail;
    }
    fd = -1; /* owned by fa->gz now */
    gzbuffer(fa->gz, 128 * 1024);
    fa->pos = fa->end = fa->chunk;
    *ret_fa = fa;
    return PDR_OK;
fail:
    if (fd >= 0)
        close(fd);
    pdr_fasta_close(fa);
    *ret_fa = NULL;
    return status;
}

int pdr_fasta_open_mem(const char *buf, size_t len, const pdr_fasta_opts *opts, pdr_fasta **ret_fa, pdr_err *err)
{
    int status = fa_create(opts, "<memory>", ret_fa, err);
    if (status != PDR_OK)
        return status;
    (*ret_fa)->pos = (const unsigned char *)buf;
    (*ret_fa)->end = (const unsigned char *)buf + (buf ? len : 0);
    return PDR_OK;
}

void pdr_fasta_close(pdr_fasta *fa)
{
    if (!fa)
        return;
    if (fa->gz)
        gzclose(fa->gz);
    fa_idset_free(&fa->ids);
    free(fa->chunk);
    free(fa->header);
    free(fa->seq);
    free(fa->name);
    free(fa);
}

size_t pdr_fasta_records_read(const pdr_fasta *fa) { return fa ? fa->n_returned : 0; }

double pdr_fasta_fraction_read(const pdr_fasta *fa)
{
    if (!fa || !fa->gz || fa->file_bytes <= 0)
        return -1.0;
    off_t at = gzoffset(fa->gz); /* bytes of the file zlib has taken in (compressed ones for gzip) */
    if (at < 0)
        return -1.0;
    double f = (double)at / (double)fa->file_bytes;
    return f > 1.0 ? 1.0 : f;
}

size_t pdr_fasta_seq_capacity(const pdr_fasta *fa) { return fa ? fa->seq_cap : 0; }

/* ---------------------------------------------------------------- records */

/* Remember the record's first error; later ones are consequences or noise. */
static void fa_rec_error(pdr_fasta *fa, int code, size_t line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static void fa_rec_error(pdr_fasta *fa, int code, size_t line, const char *fmt, ...)
{
    if (fa->rec_code)
        return;
    fa->rec_code = code;
    fa->rec_line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fa->rec_detail, sizeof fa->rec_detail, fmt, ap);
    va_end(ap);
}

static void fa_invalid_char(pdr_fasta *fa, int c, size_t line, size_t residue)
{
    if (c > 0x20 && c < 0x7f)
        fa_rec_error(fa, PDR_EINPUT, line, "invalid character '%c' (0x%02x) at residue %zu", c, c, residue);
    else
        fa_rec_error(fa, PDR_EINPUT, line, "invalid character 0x%02x at residue %zu", c, residue);
}

/* Consume bytes until a '>' at the start of a line (consumed, have_header set) or the end. */
static int fa_skip_to_header(pdr_fasta *fa)
{
    for (;;) {
        int c = fa_getc(fa);
        if (c < 0)
            return c;
        if (c == '\n' || c == '\r') {
            fa_newline(fa, c);
        } else if (c == '>' && fa->at_line_start) {
            fa_other(fa);
            fa->have_header = 1;
            fa->header_line = fa->line_no;
            return 0;
        } else {
            fa_other(fa);
        }
    }
}

/* Deal with what precedes the first record: PDR_OK when a header follows, PDR_EOF, PDR_EIO or
 * PDR_EINPUT (stray text, reported as record 1). */
static int fa_start(pdr_fasta *fa, pdr_seq *seq, pdr_err *err)
{
    fa->started = 1;
    if (fa->pos == fa->end) { /* load the first chunk to look for a byte-order mark */
        int c = fa_refill(fa);
        if (c >= 0)
            fa->pos--;
    }
    if (fa->end - fa->pos >= 3 && memcmp(fa->pos, "\xef\xbb\xbf", 3) == 0)
        fa->pos += 3;
    for (;;) {
        int c = fa_getc(fa);
        if (c == FA_END)
            return PDR_EOF;
        if (c == FA_FAIL)
            return pdr_fail(err, fa->fatal, "%s", fa->fatal_msg);
        if (c == '\n' || c == '\r') {
            fa_newline(fa, c);
        } else if (c == '>' && fa->at_line_start) {
            fa_other(fa);
            fa->have_header = 1;
            fa->header_line = fa->line_no;
            return PDR_OK;
        } else if (fa_is_space(c)) {
            fa_other(fa);
        } else {
            size_t line = fa->line_no;
            fa_other(fa);
            if (fa_skip_to_header(fa) == FA_FAIL)
                return pdr_fail(err, fa->fatal, "%s", fa->fatal_msg);
            fa->n_returned++;
            seq->record_no = fa->n_returned;
            seq->line_no = line;
            return pdr_fail(err, PDR_EINPUT,
                            "%s: record %zu: not FASTA: line %zu does not start "
                            "with '>'",
                            fa->name, seq->record_no, line);
        }
    }
}

/* Grow the sequence buffer to hold at least need bytes; 0 on success. */
static int fa_grow_seq(pdr_fasta *fa, size_t need)
{
    size_t cap = fa->seq_cap ? fa->seq_cap : FA_SEQ_INIT;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    if (fa->max_length && cap > fa->max_length + 1)
        cap = fa->max_length + 1;
    if (cap < need)
        cap = need;
    char *p = realloc(fa->seq, cap);
    if (!p)
        return -1;
    fa->seq = p;
    fa->seq_cap = cap;
    return 0;
}

/* Read the header line (the '>' is already consumed) and check the id. */
static int fa_read_header(pdr_fasta *fa, pdr_seq *seq)
{
    size_t hlen = 0;
    int too_long = 0;
    for (;;) {
        int c = fa_getc(fa);
        if (c == FA_FAIL)
            return FA_FAIL;
        if (c == FA_END)
            break;
        if (c == '\n' || c == '\r') {
            fa_newline(fa, c);
            break;
        }
        fa_other(fa);
        if (hlen < fa->max_header)
            fa->header[hlen++] = (char)c;
        else
            too_long = 1;
    }
    size_t id_len = 0;
    while (id_len < hlen && !fa_is_space((unsigned char)fa->header[id_len]))
        id_len++;
    int id_ok = fa_show_id(fa, (const unsigned char *)fa->header, id_len);
    seq->desc = fa_clean_desc(fa->header + id_len, hlen - id_len);
    fa->header[id_len] = '\0';
    seq->id = id_ok ? fa->header : fa->id_show;

    if (too_long)
        fa_rec_error(fa, PDR_EINPUT, seq->line_no, "header longer than %zu bytes", fa->max_header);
    else if (id_len == 0)
        fa_rec_error(fa, PDR_EINPUT, seq->line_no, "empty id (no word right after '>')");
    else if (!id_ok)
        fa_rec_error(fa, PDR_EINPUT, seq->line_no, "id holds a control character or bytes that are not UTF-8");
    else if (fa->check_duplicates) { /* only valid records count: they are added once read */
        size_t first = fa_idset_find(&fa->ids, fa->header);
        if (first)
            fa_rec_error(fa, PDR_EINPUT, seq->line_no, "duplicate id (first seen in record %zu)", first);
    }
    return 0;
}

int pdr_fasta_read(pdr_fasta *fa, pdr_seq *ret_seq, pdr_err *err)
{
    pdr_seq *seq = ret_seq;
    fa->empty[0] = '\0';
    seq->id = seq->desc = seq->seq = fa->empty;
    seq->len = seq->record_no = seq->line_no = 0;
    if (fa->fatal)
        return pdr_fail(err, fa->fatal, "%s", fa->fatal_msg);
    if (!fa->started) {
        int status = fa_start(fa, seq, err);
        if (status != PDR_OK)
            return status;
    }
    if (!fa->have_header)
        return PDR_EOF;
    fa->have_header = 0;
    fa->rec_code = 0;
    seq->record_no = fa->n_returned + 1;
    seq->line_no = fa->header_line;
    if (fa_read_header(fa, seq) == FA_FAIL)
        goto io_fail;

    size_t len = 0;       /* residues stored */
    size_t n_letters = 0; /* residues seen, stored or not (for the length-limit message) */
    int stop_pending = 0; /* a '*' was seen; fine only if nothing follows it */
    size_t stop_line = 0, stop_residue = 0;
    for (;;) {
        int c = fa_getc(fa);
        if (c == FA_END)
            break;
        if (c == FA_FAIL)
            goto io_fail;
        unsigned char k = fa_class[c];
        if (k == C_NL) {
            fa_newline(fa, c);
            continue;
        }
        if (k == C_GT && fa->at_line_start) {
            fa_other(fa);
            fa->have_header = 1;
            fa->header_line = fa->line_no;
            break;
        }
        fa_other(fa);
        if (k == C_SPACE)
            continue;
        if (stop_pending) { /* something follows the '*': it was not the end */
            fa_invalid_char(fa, '*', stop_line, stop_residue);
            stop_pending = 0;
        }
        if (k >= 'A') {
            n_letters++;
            if (fa->rec_code)
                continue;
            if (fa->max_length && len >= fa->max_length) {
                fa_rec_error(fa, PDR_ELIMIT, fa->line_no, "sequence longer than max_length %zu", fa->max_length);
                continue;
            }
            if (len + 1 >= fa->seq_cap && fa_grow_seq(fa, len + 2) != 0) {
                fa_rec_error(fa, PDR_ENOMEM, fa->line_no, "out of memory storing residue %zu", len + 1);
                continue;
            }
            fa->seq[len++] = (char)k;
        } else if (k == C_GAP) {
            continue;
        } else if (k == C_STOP) {
            if (fa->rec_code)
                continue;
            stop_pending = 1;
            stop_line = fa->line_no;
            stop_residue = len + 1;
        } else if (!fa->rec_code) { /* C_BAD, or '>' inside a line */
            fa_invalid_char(fa, c, fa->line_no, len + 1);
        }
    }

    fa->n_returned++;
    if (!fa->rec_code && len == 0)
        fa_rec_error(fa, PDR_EINPUT, seq->line_no, "empty sequence");
    if (!fa->rec_code && fa->check_duplicates) { /* a valid record: its id is now taken */
        size_t first = 0;
        if (fa_idset_add(&fa->ids, seq->id, seq->record_no, &first) != 0)
            fa_rec_error(fa, PDR_ENOMEM, seq->line_no, "out of memory for the duplicate-id set");
    }
    if (fa->rec_code) {
        const char *id = seq->id;
        if (fa->rec_code == PDR_ELIMIT) {
            char *d = fa->rec_detail;
            size_t used = strlen(d);
            snprintf(d + used, sizeof fa->rec_detail - used, " (%zu residues)", n_letters);
        }
        return pdr_fail(err, fa->rec_code, "%s: record %zu%s%s%s, line %zu: %s", fa->name, seq->record_no,
                        id[0] ? " (" : "", fa->id_show, id[0] ? ")" : "", fa->rec_line, fa->rec_detail);
    }
    fa->seq[len] = '\0';
    seq->seq = fa->seq;
    seq->len = len;
    return PDR_OK;

io_fail:
    seq->id = seq->desc = seq->seq = fa->empty;
    return pdr_fail(err, fa->fatal, "%s", fa->fatal_msg);
}
