/* pdr_fasta.h: a streaming, constant-memory reader of protein FASTA (plain or gzip).
 *
 * One call to pdr_fasta_read() returns one record. A bad record is reported and skipped: the
 * caller decides whether to stop or to go on, and the next call returns the next record. Only
 * an unreadable input (I/O error, corrupt or truncated gzip) or an allocation failure ends the
 * stream.
 *
 * Rules the reader applies:
 *  - A record starts at a '>' in the first column of a line; a '>' anywhere else is an invalid
 *    character. Lines end with LF, CRLF or CR; line numbers count any of them.
 *  - The id is the first word of the header (from after the '>' up to the first space, tab,
 *    \v or \f). An empty id (">" alone, or "> desc") is an error for that record, and so is an
 *    id holding bytes that are not valid UTF-8 or a control character (C0, DEL, C1). desc is the
 *    rest of the header with leading and trailing whitespace trimmed; in desc, control characters
 *    and invalid UTF-8 bytes become '?' (a tab becomes a space) so that desc is always printable
 *    UTF-8 text.
 *  - Headers longer than max_header_bytes (64 KiB by default) are an error for that record; the
 *    rest of the line is read past, never buffered.
 *  - In sequence lines, whitespace (space, tab, \v, \f) and blank lines are ignored; the gap
 *    characters '-' and '.' are removed; lowercase is folded to uppercase. Every letter A-Z is
 *    accepted: the 20 standard amino acids plus U O B Z X J, kept as they are (the encoder maps
 *    those six to its unknown token). One '*' as the very last residue of a record is dropped;
 *    a '*' anywhere else, and every other byte (digits, punctuation, NUL, bytes >= 0x80), is an
 *    invalid character: the error names the byte, its line and its residue position (1-based,
 *    counting the residues kept before it).
 *  - A record with no residues left after this cleaning is an error ("empty sequence").
 *  - A record with more than max_length residues is a PDR_ELIMIT error; the rest of it is read
 *    past without being stored.
 *  - With check_duplicates, a record whose id was already taken by a valid record is an error;
 *    an invalid record takes no id, so a valid repeat after it is kept. The reader keeps a hash
 *    set of the ids.
 *  - Whitespace and blank lines before the first '>' are skipped, as is a UTF-8 byte-order mark
 *    at the very start. Any other text there is reported as record 1 ("not FASTA: line N does
 *    not start with '>'"); the reader then goes on from the first '>' at the start of a line,
 *    which becomes record 2. Binary input thus yields errors, never a crash or a hang.
 *  - An input holding no records (empty, or only whitespace) gives PDR_EOF on the first read;
 *    whether that is an error is the caller's call.
 *
 * Memory: constant in the input size, except the current record's sequence (at most
 * max_length + 1 bytes when max_length is set) and, with check_duplicates, the set of ids.
 *
 * Ownership: the reader owns every string it hands out in a pdr_seq; they stay valid until
 * the next pdr_fasta_read() or pdr_fasta_close(). Copy what you keep.
 *
 * Threads: a reader is used by one thread at a time; distinct readers are independent.
 */
#ifndef PDR_FASTA_H
#define PDR_FASTA_H

#include <stddef.h>

#include "pdr_err.h"

typedef struct pdr_fasta pdr_fasta; /* opaque reader */

/* Options; a zeroed struct (or NULL) gives the defaults. */
typedef struct pdr_fasta_opts {
    size_t max_length;       /* residues per record; 0 = unlimited. A longer record gives PDR_ELIMIT
                                and is read past without being buffered */
    int check_duplicates;    /* 1: a repeated id is an error (PDR_EINPUT) for that record */
    const char *name;        /* name used in messages; NULL = the path ("stdin" for "-"), or
                                "<memory>" for pdr_fasta_open_mem. Copied. */
    size_t max_header_bytes; /* longest header accepted, '>' and line end excluded; 0 = 64 KiB */
} pdr_fasta_opts;

#define PDR_FASTA_MAX_HEADER_DEFAULT ((size_t)64 * 1024)

/* One record. All strings are owned by the reader and valid until the next read. */
typedef struct pdr_seq {
    char *id;         /* first word of the header; "" when empty. For an id with invalid bytes,
                         a printable form in which those bytes are written \xHH */
    char *desc;       /* rest of the header line, trimmed; may be "" */
    char *seq;        /* residues, uppercase, NUL-terminated; "" for a bad record */
    size_t len;       /* residues in seq; 0 for a bad record */
    size_t record_no; /* 1-based record number in the input */
    size_t line_no;   /* line of the header (of the first stray line for "not FASTA") */
} pdr_seq;

/* Open a FASTA file; path "-" reads stdin. gzip input is recognised by its magic bytes (zlib's
 * gzread reads plain and gzip alike). opts may be NULL. On success *ret_fa is a reader the
 * caller closes with pdr_fasta_close(); on failure *ret_fa is NULL.
 * Fails with PDR_EIO (cannot open, is a directory) or PDR_ENOMEM. */
int pdr_fasta_open(const char *path, const pdr_fasta_opts *opts, pdr_fasta **ret_fa, pdr_err *err);

/* Open a reader over buf[0..len) (plain text only: no gzip). buf is not copied and must outlive
 * the reader. For HTTP bodies and fuzzing. Fails only with PDR_ENOMEM. */
int pdr_fasta_open_mem(const char *buf, size_t len, const pdr_fasta_opts *opts, pdr_fasta **ret_fa, pdr_err *err);

/* Read the next record into *ret_seq.
 *  PDR_OK: a valid record.
 *  PDR_EOF: no more records (and on every later call).
 *  PDR_EINPUT / PDR_ELIMIT: this record is bad; *ret_seq has its id, desc, record_no and line_no
 *    and err says why, e.g. "in.fa: record 3 (sp|P1|X), line 17: invalid character '#' (0x23)
 *    at residue 12". The next call returns the next record.
 *  PDR_ENOMEM: this record could not be stored; it is read past, and the caller may go on.
 *  PDR_EIO: the input cannot be read (read error, corrupt gzip, "in.fa.gz: truncated gzip
 *    stream after record 5"); fatal: every later call returns it again. */
int pdr_fasta_read(pdr_fasta *fa, pdr_seq *ret_seq, pdr_err *err);

/* Close the reader and free everything it owns. NULL is fine. */
void pdr_fasta_close(pdr_fasta *fa);

/* Records returned so far, good and bad alike (those ended by PDR_EIO are not counted). */
size_t pdr_fasta_records_read(const pdr_fasta *fa);

/* How much of a regular input file has been read, 0..1 (by file bytes: compressed ones for a
 * gzip file; a little ahead of the records returned, by zlib's buffer), for progress; -1 when
 * unknown (stdin, a pipe, memory input). */
double pdr_fasta_fraction_read(const pdr_fasta *fa);

/* Bytes the reader holds for the current sequence (its buffer capacity); lets tests check that
 * an over-long record was not buffered. */
size_t pdr_fasta_seq_capacity(const pdr_fasta *fa);

#endif
