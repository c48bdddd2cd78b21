// fuzz-sources: core/pdr_fasta.c core/pdr_utf8.c core/pdr_err.c
// fuzz-libs: -lz
/* fuzz_fasta.c: libFuzzer harness for the FASTA reader (core/pdr_fasta.h).
 *
 * The first input byte picks the options, the rest is the FASTA text:
 *   bit 0: max_length = 1 + (byte >> 4)      bit 1: check_duplicates
 *   bit 2: max_header_bytes = 1 + 4 * ((byte >> 4) & 7)
 *   bit 3: read through pdr_fasta_open on a memfd (zlib path: gzip and plain), else open_mem.
 * Beyond "no crash, no leak, no UB", it checks the reader's promises: it ends (each read
 * consumes input), good records hold only uppercase letters within max_length, ids are
 * non-empty printable UTF-8 without whitespace, desc is printable, messages name the input,
 * EOF and EIO stay put.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Icore core/pdr_fasta.c core/pdr_err.c \
 *          tests/fuzz/fuzz_fasta.c -lz -o /tmp/fuzz_fasta      (or tests/fuzz/run_fuzz.sh)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pdr_fasta.h"

#define REQUIRE(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_fasta: %s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

/* 1 if s is valid UTF-8 holding no C0/DEL/C1 control characters. */
static int printable_utf8(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s, n, cp;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            s++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, cp = c & 0x07;
        else
            return 0;
        for (unsigned i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i] & 0x3f);
        }
        if (cp >= 0x80 && cp <= 0x9f)
            return 0;
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        if (cp >= 0xd800 && cp <= 0xdfff)
            return 0;
        s += n + 1;
    }
    return 1;
}

static pdr_fasta *open_input(const uint8_t *data, size_t size, const pdr_fasta_opts *opts, int via_file, int *ret_fd)
{
    pdr_fasta *fa = NULL;
    pdr_err err;
    *ret_fd = -1;
    if (!via_file) {
        REQUIRE(pdr_fasta_open_mem((const char *)data, size, opts, &fa, &err) == PDR_OK);
        return fa;
    }
    int fd = memfd_create("fuzz_fasta", 0);
    if (fd < 0)
        return NULL;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return NULL;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int status = pdr_fasta_open(path, opts, &fa, &err);
    REQUIRE(status == PDR_OK || (status != PDR_OK && fa == NULL));
    *ret_fd = fd;
    return fa;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    data++, size--;
    pdr_fasta_opts opts = {0};
    if (ctl & 1)
        opts.max_length = 1 + (ctl >> 4);
    opts.check_duplicates = (ctl >> 1) & 1;
    if (ctl & 4)
        opts.max_header_bytes = 1 + 4 * ((ctl >> 4) & 7);
    opts.name = "fuzz.fa";
    int fd = -1;
    pdr_fasta *fa = open_input(data, size, &opts, ctl & 8, &fd);
    if (!fa) {
        if (fd >= 0)
            close(fd);
        return 0;
    }

    /* Every read that does not end the stream consumes at least one byte ('>' or stray text);
     * gzip can expand, so bound reads by the output zlib could produce at most. */
    size_t max_reads = (ctl & 8) ? 1032 * size + 2 : size + 2;
    size_t reads = 0, prev_record = 0;
    int status;
    for (;;) {
        pdr_seq s;
        pdr_err err;
        pdr_err_clear(&err);
        status = pdr_fasta_read(fa, &s, &err);
        REQUIRE(++reads <= max_reads);
        REQUIRE(status == PDR_OK || status == PDR_EOF || status == PDR_EINPUT || status == PDR_ELIMIT ||
                status == PDR_EIO || status == PDR_ENOMEM);
        REQUIRE(s.id && s.desc && s.seq);
        if (status == PDR_EOF || status == PDR_EIO)
            break;
        REQUIRE(s.record_no == prev_record + 1);
        REQUIRE(pdr_fasta_records_read(fa) == s.record_no);
        prev_record = s.record_no;
        REQUIRE(s.line_no >= 1);
        REQUIRE(printable_utf8((const unsigned char *)s.desc));
        REQUIRE(s.desc[0] != ' ' && (s.desc[0] == '\0' || s.desc[strlen(s.desc) - 1] != ' '));
        if (opts.max_length)
            REQUIRE(pdr_fasta_seq_capacity(fa) <= opts.max_length + 1);
        if (status == PDR_OK) {
            REQUIRE(s.len > 0 && strlen(s.seq) == s.len);
            if (opts.max_length)
                REQUIRE(s.len <= opts.max_length);
            for (size_t i = 0; i < s.len; i++)
                REQUIRE(s.seq[i] >= 'A' && s.seq[i] <= 'Z');
            REQUIRE(s.id[0] != '\0' && printable_utf8((const unsigned char *)s.id));
            REQUIRE(strpbrk(s.id, " \t\v\f") == NULL);
        } else {
            REQUIRE(s.len == 0 && s.seq[0] == '\0');
            REQUIRE(strncmp(err.msg, "fuzz.fa: record ", 16) == 0);
            REQUIRE(err.code == status);
        }
    }
    if (status == PDR_EIO) {
        pdr_seq s;
        pdr_err err;
        REQUIRE(pdr_fasta_read(fa, &s, &err) == PDR_EIO);
        REQUIRE(strncmp(err.msg, "fuzz.fa: ", 9) == 0);
    } else {
        pdr_seq s;
        REQUIRE(pdr_fasta_read(fa, &s, NULL) == PDR_EOF);
    }
    pdr_fasta_close(fa);
    if (fd >= 0)
        close(fd);
    return 0;
}
