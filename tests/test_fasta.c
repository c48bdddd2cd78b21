/* test_fasta.c: unit tests of the streaming FASTA reader (core/pdr_fasta.h), one TEST per rule.
 * Files are written under $PDR_TMP (plain and gzip, through zlib); $PDR_DATA/test/small.fasta
 * is the small real database other tests use. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "pdr_fasta.h"
#include "pdr_utf8.h"

/* ---------------------------------------------------------------- helpers */

#define MAX_READS 64

/* What one pdr_fasta_read returned, copied out of the reader. */
typedef struct rec {
    int status;
    char id[160];
    char desc[160];
    char seq[512];
    size_t len, record_no, line_no;
    char msg[PDR_ERRLEN];
} rec;

typedef struct run {
    int n; /* reads made, the last one PDR_EOF, PDR_EIO or the MAX_READS-th */
    rec r[MAX_READS];
    size_t records_read; /* pdr_fasta_records_read at the end */
} run;

static void copy_rec(rec *r, int status, const pdr_seq *s, const pdr_err *err)
{
    memset(r, 0, sizeof *r);
    r->status = status;
    snprintf(r->id, sizeof r->id, "%s", s->id);
    snprintf(r->desc, sizeof r->desc, "%s", s->desc);
    snprintf(r->seq, sizeof r->seq, "%s", s->seq);
    r->len = s->len;
    r->record_no = s->record_no;
    r->line_no = s->line_no;
    if (status != PDR_OK && status != PDR_EOF)
        snprintf(r->msg, sizeof r->msg, "%s", err->msg);
}

/* Read fa until PDR_EOF or PDR_EIO (at most MAX_READS reads) and close it. */
static run *drain(pdr_fasta *fa)
{
    static run res;
    memset(&res, 0, sizeof res);
    while (res.n < MAX_READS) {
        pdr_seq s;
        pdr_err err;
        pdr_err_clear(&err);
        int status = pdr_fasta_read(fa, &s, &err);
        copy_rec(&res.r[res.n++], status, &s, &err);
        if (status == PDR_EOF || status == PDR_EIO)
            break;
    }
    res.records_read = pdr_fasta_records_read(fa);
    pdr_fasta_close(fa);
    return &res;
}

static run *read_text_opts(const char *text, size_t len, const pdr_fasta_opts *opts)
{
    pdr_fasta *fa = NULL;
    pdr_err err;
    int status = pdr_fasta_open_mem(text, len, opts, &fa, &err);
    CHECKF(status == PDR_OK, "open_mem: %d %s", status, err.msg);
    if (status != PDR_OK) {
        static run empty;
        return &empty;
    }
    return drain(fa);
}

static run *read_text(const char *text) { return read_text_opts(text, strlen(text), NULL); }

static const char *tmp_dir(void)
{
    const char *d = getenv("PDR_TMP");
    if (!d || !*d)
        d = "/tmp";
    mkdir(d, 0777);
    return d;
}

static void tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/fasta_%ld_%s", tmp_dir(), (long)getpid(), name);
}

static int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

static int write_gzip(const char *path, const char *text, size_t len)
{
    gzFile gz = gzopen(path, "wb");
    if (!gz)
        return -1;
    int w = gzwrite(gz, text, (unsigned)len);
    return gzclose(gz) == Z_OK && (size_t)w == len ? 0 : -1;
}

/* A FASTA text of n records r1..rn, each 100 residues drawn by an LCG (compresses poorly,
 * so that a gzip of it is many deflate blocks long). Caller frees. */
static char *make_records(int n, size_t *ret_len)
{
    static const char aa[] = "ACDEFGHIKLMNPQRSTVWY";
    size_t cap = (size_t)n * 128 + 1, len = 0;
    char *buf = malloc(cap);
    uint32_t x = 12345;
    for (int i = 1; i <= n; i++) {
        len += (size_t)snprintf(buf + len, cap - len, ">r%d some protein\n", i);
        for (int j = 0; j < 100; j++) {
            x = x * 1664525u + 1013904223u;
            buf[len++] = aa[(x >> 16) % 20];
            if (j == 59 || j == 99)
                buf[len++] = '\n';
        }
    }
    buf[len] = '\0';
    *ret_len = len;
    return buf;
}

/* ---------------------------------------------------------------- basic records */

TEST(fasta_reads_id_desc_and_sequence)
{
    run *r = read_text(">sp|P12345|ABC_HUMAN  Some protein OS=Homo sapiens  \nMKV\nLLA\n");
    CHECK(r->n == 2);
    CHECK(r->r[0].status == PDR_OK);
    CHECK(strcmp(r->r[0].id, "sp|P12345|ABC_HUMAN") == 0);
    CHECKF(strcmp(r->r[0].desc, "Some protein OS=Homo sapiens") == 0, "desc '%s'", r->r[0].desc);
    CHECK(strcmp(r->r[0].seq, "MKVLLA") == 0);
    CHECK(r->r[0].len == 6);
    CHECK(r->r[0].record_no == 1 && r->r[0].line_no == 1);
    CHECK(r->r[1].status == PDR_EOF);
    CHECK(r->records_read == 1);
}

TEST(fasta_header_without_desc_gives_empty_desc)
{
    run *r = read_text(">P1\nMK\n>P2   \nMK\n");
    CHECK(r->r[0].status == PDR_OK && strcmp(r->r[0].desc, "") == 0);
    CHECK(r->r[1].status == PDR_OK && strcmp(r->r[1].id, "P2") == 0 && strcmp(r->r[1].desc, "") == 0);
}

TEST(fasta_tab_ends_id)
{
    run *r = read_text(">P1\tdesc\there\nMK\n");
    CHECK(r->r[0].status == PDR_OK);
    CHECK(strcmp(r->r[0].id, "P1") == 0);
    CHECKF(strcmp(r->r[0].desc, "desc here") == 0, "desc '%s'", r->r[0].desc);
}

TEST(fasta_accepts_utf8_id)
{
    run *r = read_text(">prot\xc3\xa9in_\xe2\x82\xac desc\nMK\n");
    CHECKF(r->r[0].status == PDR_OK, "%s", r->r[0].msg);
    CHECK(strcmp(r->r[0].id, "prot\xc3\xa9in_\xe2\x82\xac") == 0);
}

TEST(fasta_rejects_empty_id_and_goes_on)
{
    run *r = read_text(">\nMK\n> desc only\nMK\n>ok\nMK\n");
    CHECK(r->n == 4);
    CHECK(r->r[0].status == PDR_EINPUT && strstr(r->r[0].msg, "empty id"));
    CHECK(r->r[0].record_no == 1 && strcmp(r->r[0].id, "") == 0);
    CHECKF(strcmp(r->r[0].msg, "<memory>: record 1, line 1: empty id (no word right after '>')") == 0, "msg '%s'",
           r->r[0].msg);
    CHECK(r->r[1].status == PDR_EINPUT && strstr(r->r[1].msg, "record 2, line 3: empty id"));
    CHECK(strcmp(r->r[1].desc, "desc only") == 0);
    CHECK(r->r[2].status == PDR_OK && strcmp(r->r[2].id, "ok") == 0 && r->r[2].record_no == 3);
    CHECK(r->r[3].status == PDR_EOF);
}

TEST(utf8_clip_never_cuts_a_character)
{
    /* "a\u00e9\u20ac\U0001F600" : 1 + 2 + 3 + 4 bytes */
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    static const int want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 10};
    for (size_t max = 0; max < sizeof want / sizeof want[0]; max++)
        CHECKF(pdr_utf8_clip(s, max) == want[max], "max %zu: %d, want %d", max, pdr_utf8_clip(s, max), want[max]);
    CHECK(pdr_utf8_clip("", 5) == 0);
    CHECK(pdr_utf8_clip("abc", 2) == 2);
    /* bytes that are not UTF-8 are cut where max says, after at most 3 steps back */
    CHECK(pdr_utf8_clip("\x80\x80\x80\x80\x80\x80", 5) == 2);
}

TEST(fasta_rejects_id_with_invalid_utf8)
{
    /* a lone continuation byte, an overlong '/', a surrogate, a truncated 3-byte sequence */
    const char *bad[] = {">ab\x80\nMK\n", ">a\xc0\xaf\nMK\n", ">a\xed\xa0\x80\nMK\n", ">a\xe2\x82 x\nMK\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run *r = read_text(bad[i]);
        CHECKF(r->r[0].status == PDR_EINPUT, "case %zu: status %d", i, r->r[0].status);
        CHECKF(strstr(r->r[0].msg, "not UTF-8") != NULL, "case %zu: '%s'", i, r->r[0].msg);
        CHECK(r->r[1].status == PDR_EOF);
    }
    run *r = read_text(">ab\x80\nMK\n");
    CHECKF(strcmp(r->r[0].id, "ab\\x80") == 0, "id shown as '%s'", r->r[0].id);
    CHECK(strstr(r->r[0].msg, "record 1 (ab\\x80)") != NULL);
}

TEST(fasta_rejects_id_with_control_character)
{
    const char *bad[] = {">a\x01"
                         "b\nMK\n",
                         ">a\x7f\nMK\n",
                         ">a\xc2\x85"
                         "b\nMK\n" /* U+0085 NEL */,
                         ">a\x1b[31m\nMK\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run *r = read_text(bad[i]);
        CHECKF(r->r[0].status == PDR_EINPUT && strstr(r->r[0].msg, "control character"), "case %zu: %d '%s'", i,
               r->r[0].status, r->r[0].msg);
    }
}

TEST(fasta_rejects_nul_byte_in_id)
{
    static const char text[] = ">a\0b\nMK\n>c\nMK\n";
    run *r = read_text_opts(text, sizeof text - 1, NULL);
    CHECK(r->r[0].status == PDR_EINPUT && strstr(r->r[0].msg, "(a\\x00b)"));
    CHECK(r->r[1].status == PDR_OK && strcmp(r->r[1].id, "c") == 0);
}

TEST(fasta_makes_desc_printable)
{
    static const char text[] = ">id a\x01"
                               "b\xff"
                               "c\td\0e  \nMK\n";
    run *r = read_text_opts(text, sizeof text - 1, NULL);
    CHECK(r->r[0].status == PDR_OK);
    CHECKF(strcmp(r->r[0].desc, "a?b?c d?e") == 0, "desc '%s'", r->r[0].desc);
}

TEST(fasta_shows_long_ids_cut_in_messages)
{
    char text[400];
    memset(text, 'Q', sizeof text);
    text[0] = '>';
    memcpy(text + 300, "\n1\n", 4);
    run *r = read_text(text);
    CHECK(r->r[0].status == PDR_EINPUT);
    CHECK(strspn(r->r[0].id, "Q") == sizeof r->r[0].id - 1); /* the copy is cut, not the id */
    CHECKF(strstr(r->r[0].msg, "QQQ...), line 2: invalid character '1'") != NULL, "'%s'", r->r[0].msg);
}

/* ---------------------------------------------------------------- line endings and whitespace */

TEST(fasta_handles_crlf_line_endings)
{
    run *r = read_text(">a d\r\nMK\r\nLV\r\n\r\n>b\r\nM#K\r\n");
    CHECK(r->r[0].status == PDR_OK && strcmp(r->r[0].seq, "MKLV") == 0);
    CHECK(strcmp(r->r[0].desc, "d") == 0);
    CHECK(r->r[1].status == PDR_EINPUT && r->r[1].line_no == 5);
    CHECKF(strstr(r->r[1].msg, "record 2 (b), line 6: invalid character '#'") != NULL, "'%s'", r->r[1].msg);
}

TEST(fasta_handles_cr_line_endings)
{
    run *r = read_text(">a d\rMK\rLV\r\r>b\rM#K\r");
    CHECK(r->r[0].status == PDR_OK && strcmp(r->r[0].seq, "MKLV") == 0);
    CHECK(strcmp(r->r[0].id, "a") == 0 && strcmp(r->r[0].desc, "d") == 0);
    CHECK(r->r[1].status == PDR_EINPUT && r->r[1].line_no == 5);
    CHECKF(strstr(r->r[1].msg, "record 2 (b), line 6:") != NULL, "'%s'", r->r[1].msg);
}

TEST(fasta_counts_lines_across_mixed_endings)
{
    /* LF, CRLF, CR, LF CR (two line ends) */
    run *r = read_text(">a\nM\r\nK\rL\n\r>b\n#\n");
    CHECK(r->r[0].status == PDR_OK && strcmp(r->r[0].seq, "MKL") == 0);
    CHECKF(r->r[1].line_no == 6, "line %zu", r->r[1].line_no);
    CHECKF(strstr(r->r[1].msg, "line 7:") != NULL, "'%s'", r->r[1].msg);
}

TEST(fasta_ignores_blank_lines)
{
    run *r = read_text("\n\n>a\n\nMK\n\n   \n\nLV\n\n\n>b\n\nW\n\n");
    CHECK(r->r[0].status == PDR_OK && strcmp(r->r[0].seq, "MKLV") == 0 && r->r[0].line_no == 3);
    CHECK(r->r[1].status == PDR_OK && strcmp(r->r[1].seq, "W") == 0 && r->r[1].line_no == 12);
    CHECK(r->r[2].status == PDR_EOF);
}

TEST(fasta_ignores_whitespace_inside_sequence_lines)
{
    run *r = read_text(">a\n MK LV\t\tW\v\fY \n  A C\n");
    CHECK(r->r[0].status == PDR_OK);
    CHECKF(strcmp(r->r[0].seq, "MKLVWYAC") == 0, "seq '%s'", r->r[0].seq);
}

TEST(fasta_reads_last_line_without_newline)
{
    run *r = read_text(">a\nMK\n>b\nLV");
    CHECK(r->r[1].status == PDR_OK && strcmp(r->r[1].seq, "LV") == 0);
    CHECK(r->r[2].status == PDR_EOF);
}

/* ---------------------------------------------------------------- residues */

TEST(fasta_folds_lowercase)
{
    run *r = read_text(">a\nmkLv\nacdefghiklmnpqrstvwy\n");
    CHECK(strcmp(r->r[0].seq, "MKLVACDEFGHIKLMNPQRSTVWY") == 0);
}

TEST(fasta_accepts_all_26_letters_as_is)
{
    run *r = read_text(">a\nACDEFGHIKLMNPQRSTVWY\nUOBZXJ\nuobzxj\n");
    CHECK(r->r[0].status == PDR_OK);
    CHECK(strcmp(r->r[0].seq, "ACDEFGHIKLMNPQRSTVWYUOBZXJUOBZXJ") == 0);
    CHECK(r->r[0].len == 32);
}

TEST(fasta_drops_single_terminal_stop)
{
    run *r = read_text(">a\nMKL*\n>b\nMK\nL*  \n\n>c\nMKL\n*\n");
    for (int i = 0; i < 3; i++)
        CHECKF(r->r[i].status == PDR_OK && strcmp(r->r[i].seq, "MKL") == 0, "record %d: %d '%s' %s", i + 1,
               r->r[i].status, r->r[i].seq, r->r[i].msg);
}

TEST(fasta_rejects_stop_inside_sequence)
{
    run *r = read_text(">a\nMK*L\n>b\nMK\n*L\n>c\nMKL**\n>d\nMKL*-\n");
    CHECKF(r->r[0].status == PDR_EINPUT && strstr(r->r[0].msg, "line 2: invalid character '*' (0x2a) at residue 3"),
           "'%s'", r->r[0].msg);
    CHECKF(r->r[1].status == PDR_EINPUT && strstr(r->r[1].msg, "line 5: invalid character '*' (0x2a) at residue 3"),
           "'%s'", r->r[1].msg);
    CHECKF(r->r[2].status == PDR_EINPUT && strstr(r->r[2].msg, "at residue 4"), "'%s'", r->r[2].msg);
    CHECKF(r->r[3].status == PDR_EINPUT && strstr(r->r[3].msg, "'*'"), "'%s'", r->r[3].msg);
}

TEST(fasta_removes_gaps)
{
    run *r = read_text(">a\n--MK..L-V.\n");
    CHECK(r->r[0].status == PDR_OK && strcmp(r->r[0].seq, "MKLV") == 0 && r->r[0].len == 4);
}

TEST(fasta_rejects_digit)
{
    run *r = read_text(">a\n1 MKLV\n");
    CHECKF(r->r[0].status == PDR_EINPUT && strstr(r->r[0].msg, "invalid character '1' (0x31) at residue 1"), "'%s'",
           r->r[0].msg);
    CHECK(strcmp(r->r[0].seq, "") == 0 && r->r[0].len == 0);
}

TEST(fasta_rejects_punctuation)
{
    const char *bad = "#!$%&()+,/:;<=?@[]^_`{|}~'\"\\";
    for (const char *p = bad; *p; p++) {
        char text[32];
        snprintf(text, sizeof text, ">a\nMK%cL\n", *p);
        run *r = read_text(text);
        char want[64];
        snprintf(want, sizeof want, "invalid character '%c' (0x%02x) at residue 3", *p, (unsigned char)*p);
        CHECKF(r->r[0].status == PDR_EINPUT && strstr(r->r[0].msg, want), "'%c': '%s'", *p, r->r[0].msg);
    }
}

TEST(fasta_rejects_nul_byte)
{
    static const char text[] = ">a\nMK\0L\n>b\nW\n";
    run *r = read_text_opts(text, sizeof text - 1, NULL);
    CHECKF(r->r[0].status == PDR_EINPUT && strstr(r->r[0].msg, "line 2: invalid character 0x00 at residue 3"), "'%s'",
           r->r[0].msg);
    CHECK(r->r[1].status == PDR_OK && strcmp(r->r[1].seq, "W") == 0);
}

TEST(fasta_rejects_bytes_above_0x7f)
{
    run *r = read_text(">a\nMK\xc3\xa9L\n>b\nW\n");
    CHECKF(r->r[0].status == PDR_EINPUT && strstr(r->r[0].msg, "invalid character 0xc3 at residue 3"), "'%s'",
           r->r[0].msg);
    CHECK(r->r[1].status == PDR_OK);
}

TEST(fasta_rejects_gt_inside_sequence_line)
{
    run *r = read_text(">a\nMK>b\nLV\n>c\nW\n");
    CHECK(r->n == 3);
    CHECKF(r->r[0].status == PDR_EINPUT && strstr(r->r[0].msg, "line 2: invalid character '>' (0x3e) at residue 3"),
           "'%s'", r->r[0].msg);
    CHECK(r->r[1].status == PDR_OK && strcmp(r->r[1].id, "c") == 0 && r->r[1].record_no == 2);
}

TEST(fasta_gt_at_line_start_always_starts_record)
{
    run *r = read_text(">a\nMK\n>b\n>c\nW\n");
    CHECK(r->r[0].status == PDR_OK);
    CHECK(r->r[1].status == PDR_EINPUT && strcmp(r->r[1].id, "b") == 0 && strstr(r->r[1].msg, "empty sequence"));
    CHECK(r->r[2].status == PDR_OK && strcmp(r->r[2].id, "c") == 0 && r->r[2].record_no == 3);
}

TEST(fasta_gt_after_leading_space_is_invalid)
{
    run *r = read_text(">a\nMK\n >b\nW\n");
    CHECKF(r->r[0].status == PDR_EINPUT && strstr(r->r[0].msg, "line 3: invalid character '>'"), "'%s'", r->r[0].msg);
    CHECK(r->r[1].status == PDR_EOF);
}

TEST(fasta_rejects_empty_sequence)
{
    run *r = read_text(">a\n>b desc\n--..\n>c\n*\n>d\nMK\n>e");
    for (int i = 0; i < 3; i++)
        CHECKF(r->r[i].status == PDR_EINPUT && strstr(r->r[i].msg, "empty sequence"), "record %d: '%s'", i + 1,
               r->r[i].msg);
    CHECKF(strcmp(r->r[1].msg, "<memory>: record 2 (b), line 2: empty sequence") == 0, "'%s'", r->r[1].msg);
    CHECK(r->r[3].status == PDR_OK && strcmp(r->r[3].id, "d") == 0);
    CHECK(r->r[4].status == PDR_EINPUT && strstr(r->r[4].msg, "record 5 (e), line 8: empty sequence"));
    CHECK(r->r[5].status == PDR_EOF);
}

/* ---------------------------------------------------------------- before the first record */

TEST(fasta_empty_input_is_eof)
{
    run *r = read_text("");
    CHECK(r->n == 1 && r->r[0].status == PDR_EOF && r->records_read == 0);
    r = read_text(" \n\r\n\t\n\n");
    CHECK(r->n == 1 && r->r[0].status == PDR_EOF);
    r = read_text_opts(NULL, 0, NULL);
    CHECK(r->n == 1 && r->r[0].status == PDR_EOF);
}

TEST(fasta_skips_whitespace_before_first_header)
{
    run *r = read_text("\n  \n\t\n>a\nMK\n");
    CHECK(r->r[0].status == PDR_OK && r->r[0].record_no == 1 && r->r[0].line_no == 4);
}

TEST(fasta_skips_utf8_bom)
{
    run *r = read_text("\xef\xbb\xbf>a\nMK\n");
    CHECK(r->r[0].status == PDR_OK && strcmp(r->r[0].id, "a") == 0);
}

TEST(fasta_rejects_text_before_first_header)
{
    run *r = read_text("MKLV\nAAA\n>a\nMK\n");
    CHECK(r->n == 3);
    CHECKF(r->r[0].status == PDR_EINPUT &&
               strcmp(r->r[0].msg, "<memory>: record 1: not FASTA: line 1 does not start with '>'") == 0,
           "'%s'", r->r[0].msg);
    CHECK(r->r[0].record_no == 1 && r->r[0].line_no == 1);
    CHECK(r->r[1].status == PDR_OK && strcmp(r->r[1].id, "a") == 0 && r->r[1].record_no == 2);
    CHECK(r->r[1].line_no == 3);
    r = read_text("\n\nhello\n");
    CHECK(r->n == 2 && r->r[0].status == PDR_EINPUT && strstr(r->r[0].msg, "line 3 does not start"));
    CHECK(r->r[1].status == PDR_EOF);
}

TEST(fasta_binary_garbage_gives_errors_not_hangs)
{
    /* every byte value, then lines starting with '>' full of junk */
    static const char tail[] = "\n>\x01\x02\n\xff\xfe\n>x\n\x00\x00\n>\n>y\n\x80";
    char buf[256 + sizeof tail];
    for (int i = 0; i < 256; i++)
        buf[i] = (char)(255 - i);
    memcpy(buf + 256, tail, sizeof tail - 1);
    run *r = read_text_opts(buf, 256 + sizeof tail - 1, NULL);
    CHECK(r->n < MAX_READS);
    CHECK(r->r[r->n - 1].status == PDR_EOF);
    for (int i = 0; i + 1 < r->n; i++)
        CHECKF(r->r[i].status == PDR_EINPUT, "read %d: %d", i, r->r[i].status);
    CHECKF(r->n == 6, "reads %d", r->n); /* garbage, 4 bad records, EOF */
}

/* ---------------------------------------------------------------- limits */

TEST(fasta_max_length_gives_elimit_and_next_record_is_read)
{
    pdr_fasta_opts opts = {.max_length = 5};
    const char *text = ">a\nMKLVW\n>b\nMKL\nVWY\n>c\nM\n";
    run *r = read_text_opts(text, strlen(text), &opts);
    CHECK(r->r[0].status == PDR_OK && r->r[0].len == 5);
    CHECKF(r->r[1].status == PDR_ELIMIT &&
               strcmp(r->r[1].msg, "<memory>: record 2 (b), line 5: sequence longer than max_length 5 (6 residues)") ==
                   0,
           "'%s'", r->r[1].msg);
    CHECK(strcmp(r->r[1].id, "b") == 0 && r->r[1].record_no == 2 && r->r[1].len == 0);
    CHECK(r->r[2].status == PDR_OK && strcmp(r->r[2].id, "c") == 0 && r->r[2].record_no == 3);
}

TEST(fasta_long_single_line_sequence_is_not_buffered)
{
    size_t n = 8u << 20;
    char *text = malloc(n + 32);
    memcpy(text, ">big\n", 5);
    memset(text + 5, 'A', n);
    memcpy(text + 5 + n, "\n>small\nMK\n", 12);
    pdr_fasta_opts opts = {.max_length = 1000};
    pdr_fasta *fa = NULL;
    pdr_err err;
    CHECK(pdr_fasta_open_mem(text, n + 16, &opts, &fa, &err) == PDR_OK);
    pdr_seq s;
    int status = pdr_fasta_read(fa, &s, &err);
    CHECK(status == PDR_ELIMIT);
    CHECKF(strstr(err.msg, "(8388608 residues)") != NULL, "'%s'", err.msg);
    CHECKF(pdr_fasta_seq_capacity(fa) <= 1001, "capacity %zu", pdr_fasta_seq_capacity(fa));
    status = pdr_fasta_read(fa, &s, &err);
    CHECK(status == PDR_OK && strcmp(s.id, "small") == 0 && strcmp(s.seq, "MK") == 0);
    CHECK(pdr_fasta_read(fa, &s, &err) == PDR_EOF);
    pdr_fasta_close(fa);
    free(text);
}

TEST(fasta_rejects_header_longer_than_64k)
{
    size_t n = 70000;
    char *text = malloc(n + 64);
    text[0] = '>';
    memset(text + 1, 'H', n);
    memcpy(text + 1 + n, "\nMK\n>next\nLV\n", 14);
    run *r = read_text(text);
    CHECKF(r->r[0].status == PDR_EINPUT && strstr(r->r[0].msg, "record 1 (HHHH") &&
               strstr(r->r[0].msg, "...), line 1: header longer than 65536 bytes"),
           "'%s'", r->r[0].msg);
    CHECK(r->r[1].status == PDR_OK && strcmp(r->r[1].id, "next") == 0 && r->r[1].line_no == 3);
    free(text);

    /* exactly at the limit is fine */
    text = malloc(PDR_FASTA_MAX_HEADER_DEFAULT + 16);
    text[0] = '>';
    memset(text + 1, 'H', PDR_FASTA_MAX_HEADER_DEFAULT);
    memcpy(text + 1 + PDR_FASTA_MAX_HEADER_DEFAULT, "\nMK\n", 5);
    r = read_text(text);
    CHECK(r->r[0].status == PDR_OK);
    free(text);
}

TEST(fasta_max_header_bytes_option)
{
    pdr_fasta_opts opts = {.max_header_bytes = 8};
    const char *text = ">12345678\nMK\n>123456789\nMK\n";
    run *r = read_text_opts(text, strlen(text), &opts);
    CHECK(r->r[0].status == PDR_OK);
    CHECK(r->r[1].status == PDR_EINPUT && strstr(r->r[1].msg, "line 3: header longer than 8 bytes"));
}

TEST(fasta_rejects_duplicate_ids_when_asked)
{
    pdr_fasta_opts opts = {.check_duplicates = 1};
    const char *text = ">a\nMK\n>b\nMK\n>a x\nMK\n>c\nMK\n>b\nMK\n";
    run *r = read_text_opts(text, strlen(text), &opts);
    CHECK(r->r[0].status == PDR_OK && r->r[1].status == PDR_OK && r->r[3].status == PDR_OK);
    CHECKF(r->r[2].status == PDR_EINPUT &&
               strcmp(r->r[2].msg, "<memory>: record 3 (a), line 5: duplicate id (first seen in record 1)") == 0,
           "'%s'", r->r[2].msg);
    CHECK(r->r[4].status == PDR_EINPUT && strstr(r->r[4].msg, "first seen in record 2"));
}

/* An invalid record takes no id: the first valid record of an id is the one kept. */
TEST(fasta_duplicate_ids_count_valid_records_only)
{
    pdr_fasta_opts opts = {.check_duplicates = 1};
    const char *text = ">a\nMK1T\n>a\nMKTA\n>b\nMKT\n>a\nMK\n";
    run *r = read_text_opts(text, strlen(text), &opts);
    CHECK(r->r[0].status == PDR_EINPUT && strstr(r->r[0].msg, "invalid character"));
    CHECKF(r->r[1].status == PDR_OK, "'%s'", r->r[1].msg);
    CHECK(r->r[2].status == PDR_OK);
    CHECKF(r->r[3].status == PDR_EINPUT && strstr(r->r[3].msg, "first seen in record 2"), "'%s'", r->r[3].msg);
}

TEST(fasta_allows_duplicate_ids_by_default)
{
    run *r = read_text(">a\nMK\n>a\nMK\n");
    CHECK(r->r[0].status == PDR_OK && r->r[1].status == PDR_OK);
}

TEST(fasta_duplicate_set_grows)
{
    /* past the set's first resize (1024 slots): every id stays found */
    size_t len = 0, cap = 3000 * 16;
    char *text = malloc(cap);
    for (int i = 0; i < 1500; i++)
        len += (size_t)snprintf(text + len, cap - len, ">id%d\nM\n", i);
    len += (size_t)snprintf(text + len, cap - len, ">id7\nM\n>id1499\nM\n");
    pdr_fasta_opts opts = {.check_duplicates = 1};
    pdr_fasta *fa = NULL;
    pdr_err err;
    CHECK(pdr_fasta_open_mem(text, len, &opts, &fa, &err) == PDR_OK);
    pdr_seq s;
    int n_ok = 0, status;
    while ((status = pdr_fasta_read(fa, &s, &err)) == PDR_OK)
        n_ok++;
    CHECK(n_ok == 1500);
    CHECK(status == PDR_EINPUT && strstr(err.msg, "record 1501 (id7)") && strstr(err.msg, "first seen in record 8"));
    CHECK(pdr_fasta_read(fa, &s, &err) == PDR_EINPUT && strstr(err.msg, "first seen in record 1500"));
    CHECK(pdr_fasta_read(fa, &s, &err) == PDR_EOF);
    pdr_fasta_close(fa);
    free(text);
}

/* ---------------------------------------------------------------- messages and numbering */

TEST(fasta_message_names_file_record_id_line_and_residue)
{
    const char *text = ">P0\nMK\n\n>P2 two\nMKLV\nMKLV\n"
                       "\n\n\n\n\n\n\n\n"                   /* lines 7-14 */
                       ">sp|P1|X desc\nMKLVACDE\nFGH#IK\n"; /* header on line 15 */
    pdr_fasta_opts opts = {.name = "in.fa"};
    run *r = read_text_opts(text, strlen(text), &opts);
    CHECK(r->r[2].status == PDR_EINPUT);
    CHECKF(strcmp(r->r[2].msg, "in.fa: record 3 (sp|P1|X), line 17: invalid character '#' (0x23) at residue 12") == 0,
           "'%s'", r->r[2].msg);
    CHECK(r->r[2].record_no == 3 && r->r[2].line_no == 15 && strcmp(r->r[2].id, "sp|P1|X") == 0);
    CHECK(strcmp(r->r[2].desc, "desc") == 0);
}

TEST(fasta_record_numbers_count_bad_records)
{
    run *r = read_text(">a\nM1\n>b\nMK\n>\nMK\n>d\nMK\n");
    CHECK(r->r[1].record_no == 2 && r->r[1].line_no == 3);
    CHECK(r->r[3].status == PDR_OK && r->r[3].record_no == 4 && r->r[3].line_no == 7);
    CHECK(r->records_read == 4);
}

TEST(fasta_eof_is_sticky)
{
    pdr_fasta *fa = NULL;
    pdr_err err;
    pdr_seq s;
    CHECK(pdr_fasta_open_mem(">a\nM\n", 5, NULL, &fa, &err) == PDR_OK);
    CHECK(pdr_fasta_read(fa, &s, &err) == PDR_OK);
    CHECK(pdr_fasta_read(fa, &s, &err) == PDR_EOF);
    CHECK(pdr_fasta_read(fa, &s, &err) == PDR_EOF);
    CHECK(pdr_fasta_records_read(fa) == 1);
    pdr_fasta_close(fa);
    pdr_fasta_close(NULL);
    CHECK(pdr_fasta_records_read(NULL) == 0);
}

TEST(fasta_streams_10000_tiny_records)
{
    size_t cap = 10000 * 24, len = 0;
    char *text = malloc(cap);
    for (int i = 1; i <= 10000; i++)
        len += (size_t)snprintf(text + len, cap - len, ">r%d\nM%c\n", i, 'A' + i % 20);
    pdr_fasta *fa = NULL;
    pdr_err err;
    CHECK(pdr_fasta_open_mem(text, len, NULL, &fa, &err) == PDR_OK);
    pdr_seq s;
    int n = 0, bad = 0, status;
    while ((status = pdr_fasta_read(fa, &s, &err)) == PDR_OK) {
        n++;
        char want[16];
        snprintf(want, sizeof want, "r%d", n);
        if (strcmp(s.id, want) != 0 || s.len != 2 || s.record_no != (size_t)n || s.line_no != (size_t)(2 * n - 1))
            bad++;
    }
    CHECK(status == PDR_EOF);
    CHECKF(n == 10000 && bad == 0, "n %d bad %d", n, bad);
    CHECK(pdr_fasta_records_read(fa) == 10000);
    CHECKF(pdr_fasta_seq_capacity(fa) <= 1024, "capacity %zu", pdr_fasta_seq_capacity(fa));
    pdr_fasta_close(fa);
    free(text);
}

/* ---------------------------------------------------------------- files */

TEST(fasta_reads_plain_file)
{
    char path[512];
    tmp_path(path, sizeof path, "plain.fa");
    const char *text = ">a first\nMKLV\n>b\nWY\n";
    CHECK(write_file(path, text, strlen(text)) == 0);
    pdr_fasta *fa = NULL;
    pdr_err err;
    CHECK(pdr_fasta_open(path, NULL, &fa, &err) == PDR_OK);
    run *r = drain(fa);
    CHECK(r->n == 3 && r->r[0].status == PDR_OK && strcmp(r->r[0].seq, "MKLV") == 0);
    CHECK(strcmp(r->r[1].id, "b") == 0 && r->r[2].status == PDR_EOF);
    /* messages name the path */
    CHECK(write_file(path, ">a\nM1\n", 6) == 0);
    CHECK(pdr_fasta_open(path, NULL, &fa, &err) == PDR_OK);
    r = drain(fa);
    CHECKF(strncmp(r->r[0].msg, path, strlen(path)) == 0 && strstr(r->r[0].msg, ": record 1 (a), line 2:"), "'%s'",
           r->r[0].msg);
    remove(path);
}

/* Progress: the share of a regular file read grows from near 0 to 1; unknown (-1) for memory
 * input. 4 MiB of records, far more than zlib's 128 KiB buffer. */
TEST(fasta_fraction_read_follows_the_file)
{
    char path[512];
    tmp_path(path, sizeof path, "fraction.fa");
    size_t n = 4096, len = 0;
    char *text = malloc(n * 1100), *p = text;
    CHECK(text != NULL);
    if (!text)
        return;
    for (size_t i = 0; i < n; i++) {
        p += sprintf(p, ">r%zu\n", i);
        memset(p, 'A' + (int)(i % 7), 1000);
        p += 1000;
        *p++ = '\n';
    }
    len = (size_t)(p - text);
    CHECK(write_file(path, text, len) == 0);
    free(text);
    pdr_fasta *fa = NULL;
    pdr_err err;
    CHECK(pdr_fasta_open(path, NULL, &fa, &err) == PDR_OK);
    pdr_seq s;
    double before = pdr_fasta_fraction_read(fa), mid = -1.0;
    for (size_t i = 0; i < n / 2; i++)
        CHECK(pdr_fasta_read(fa, &s, &err) == PDR_OK);
    mid = pdr_fasta_fraction_read(fa);
    while (pdr_fasta_read(fa, &s, &err) == PDR_OK)
        ;
    double end = pdr_fasta_fraction_read(fa);
    CHECKF(before >= 0.0 && before < 0.1 && mid > 0.4 && mid < 0.6 && end == 1.0, "%.3f %.3f %.3f", before, mid, end);
    pdr_fasta_close(fa);
    remove(path);
    CHECK(pdr_fasta_open_mem(">a\nMK\n", 7, NULL, &fa, &err) == PDR_OK);
    CHECK(pdr_fasta_fraction_read(fa) == -1.0);
    pdr_fasta_close(fa);
}

TEST(fasta_reads_gzip_file)
{
    char path[512];
    tmp_path(path, sizeof path, "small.fa.gz");
    size_t len = 0;
    char *text = make_records(300, &len);
    CHECK(write_gzip(path, text, len) == 0);
    pdr_fasta *fa = NULL;
    pdr_err err;
    CHECK(pdr_fasta_open(path, NULL, &fa, &err) == PDR_OK);
    pdr_seq s;
    int n = 0, status;
    while ((status = pdr_fasta_read(fa, &s, &err)) == PDR_OK) {
        n++;
        if (n == 300)
            CHECK(strcmp(s.id, "r300") == 0 && s.len == 100 && s.line_no == 898);
    }
    CHECKF(status == PDR_EOF && n == 300, "status %d n %d %s", status, n, err.msg);
    pdr_fasta_close(fa);
    remove(path);
    free(text);
}

TEST(fasta_truncated_gzip_is_eio)
{
    char path[512];
    tmp_path(path, sizeof path, "cut.fa.gz");
    size_t len = 0;
    char *text = make_records(2000, &len);
    CHECK(write_gzip(path, text, len) == 0);
    /* cut the file in half */
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *gz = malloc((size_t)size);
    CHECK(fread(gz, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    CHECK(write_file(path, gz, (size_t)size / 2) == 0);

    pdr_fasta *fa = NULL;
    pdr_err err;
    CHECK(pdr_fasta_open(path, NULL, &fa, &err) == PDR_OK);
    pdr_seq s;
    int n = 0, status;
    while ((status = pdr_fasta_read(fa, &s, &err)) == PDR_OK)
        n++;
    CHECKF(status == PDR_EIO, "status %d after %d records: %s", status, n, err.msg);
    CHECK(n > 100 && n < 2000);
    char want[128];
    snprintf(want, sizeof want, "truncated gzip stream after record %d", n);
    CHECKF(strstr(err.msg, want) != NULL && strncmp(err.msg, path, strlen(path)) == 0, "'%s' want '%s'", err.msg, want);
    CHECK(pdr_fasta_read(fa, &s, &err) == PDR_EIO); /* fatal: stays so */
    pdr_fasta_close(fa);
    remove(path);
    free(gz);
    free(text);
}

TEST(fasta_corrupt_gzip_is_eio)
{
    char path[512];
    tmp_path(path, sizeof path, "bad.fa.gz");
    size_t len = 0;
    char *text = make_records(500, &len);
    CHECK(write_gzip(path, text, len) == 0);
    FILE *f = fopen(path, "r+b");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    /* overwrite a stretch of the compressed data in the middle */
    fseek(f, size / 2, SEEK_SET);
    for (int i = 0; i < 64; i++)
        fputc(0xff, f);
    fclose(f);
    pdr_fasta *fa = NULL;
    pdr_err err;
    CHECK(pdr_fasta_open(path, NULL, &fa, &err) == PDR_OK);
    pdr_seq s;
    int status, reads = 0;
    while ((status = pdr_fasta_read(fa, &s, &err)) != PDR_EOF && status != PDR_EIO && reads < 10000)
        reads++;
    CHECKF(status == PDR_EIO && strstr(err.msg, "gzip stream"), "status %d: %s", status, err.msg);
    pdr_fasta_close(fa);
    remove(path);
    free(text);
}

TEST(fasta_missing_file_is_eio)
{
    pdr_fasta *fa = (pdr_fasta *)&fa; /* must be reset to NULL */
    pdr_err err;
    int status = pdr_fasta_open("/nonexistent/dir/x.fa", NULL, &fa, &err);
    CHECK(status == PDR_EIO && fa == NULL);
    CHECKF(strstr(err.msg, "/nonexistent/dir/x.fa: cannot open:") != NULL, "'%s'", err.msg);
    status = pdr_fasta_open(tmp_dir(), NULL, &fa, &err);
    CHECK(status == PDR_EIO && fa == NULL && strstr(err.msg, "is a directory"));
}

TEST(fasta_reads_small_test_database)
{
    const char *data = getenv("PDR_DATA");
    char path[512];
    snprintf(path, sizeof path, "%s/test/small.fasta", data && *data ? data : "data");
    pdr_fasta_opts opts = {.check_duplicates = 1, .max_length = 600};
    pdr_fasta *fa = NULL;
    pdr_err err;
    int status = pdr_fasta_open(path, &opts, &fa, &err);
    CHECKF(status == PDR_OK, "%s", err.msg);
    if (status != PDR_OK)
        return;
    pdr_seq s;
    int n = 0;
    while ((status = pdr_fasta_read(fa, &s, &err)) == PDR_OK) {
        n++;
        CHECKF(s.len >= 50 && s.len <= 600, "%s: %zu residues", s.id, s.len);
        CHECK(strlen(s.seq) == s.len && s.id[0] != '\0');
    }
    CHECKF(status == PDR_EOF, "%s", err.msg);
    CHECK(n == 12);
    pdr_fasta_close(fa);
}

int main(void)
{
    RUN(fasta_reads_id_desc_and_sequence);
    RUN(fasta_header_without_desc_gives_empty_desc);
    RUN(fasta_tab_ends_id);
    RUN(fasta_accepts_utf8_id);
    RUN(fasta_rejects_empty_id_and_goes_on);
    RUN(fasta_rejects_id_with_invalid_utf8);
    RUN(utf8_clip_never_cuts_a_character);
    RUN(fasta_rejects_id_with_control_character);
    RUN(fasta_rejects_nul_byte_in_id);
    RUN(fasta_makes_desc_printable);
    RUN(fasta_shows_long_ids_cut_in_messages);
    RUN(fasta_handles_crlf_line_endings);
    RUN(fasta_handles_cr_line_endings);
    RUN(fasta_counts_lines_across_mixed_endings);
    RUN(fasta_ignores_blank_lines);
    RUN(fasta_ignores_whitespace_inside_sequence_lines);
    RUN(fasta_reads_last_line_without_newline);
    RUN(fasta_folds_lowercase);
    RUN(fasta_accepts_all_26_letters_as_is);
    RUN(fasta_drops_single_terminal_stop);
    RUN(fasta_rejects_stop_inside_sequence);
    RUN(fasta_removes_gaps);
    RUN(fasta_rejects_digit);
    RUN(fasta_rejects_punctuation);
    RUN(fasta_rejects_nul_byte);
    RUN(fasta_rejects_bytes_above_0x7f);
    RUN(fasta_rejects_gt_inside_sequence_line);
    RUN(fasta_gt_at_line_start_always_starts_record);
    RUN(fasta_gt_after_leading_space_is_invalid);
    RUN(fasta_rejects_empty_sequence);
    RUN(fasta_empty_input_is_eof);
    RUN(fasta_skips_whitespace_before_first_header);
    RUN(fasta_skips_utf8_bom);
    RUN(fasta_rejects_text_before_first_header);
    RUN(fasta_binary_garbage_gives_errors_not_hangs);
    RUN(fasta_max_length_gives_elimit_and_next_record_is_read);
    RUN(fasta_long_single_line_sequence_is_not_buffered);
    RUN(fasta_rejects_header_longer_than_64k);
    RUN(fasta_max_header_bytes_option);
    RUN(fasta_rejects_duplicate_ids_when_asked);
    RUN(fasta_duplicate_ids_count_valid_records_only);
    RUN(fasta_allows_duplicate_ids_by_default);
    RUN(fasta_duplicate_set_grows);
    RUN(fasta_message_names_file_record_id_line_and_residue);
    RUN(fasta_record_numbers_count_bad_records);
    RUN(fasta_eof_is_sticky);
    RUN(fasta_streams_10000_tiny_records);
    RUN(fasta_reads_plain_file);
    RUN(fasta_fraction_read_follows_the_file);
    RUN(fasta_reads_gzip_file);
    RUN(fasta_truncated_gzip_is_eio);
    RUN(fasta_corrupt_gzip_is_eio);
    RUN(fasta_missing_file_is_eio);
    RUN(fasta_reads_small_test_database);
    return CHECK_DONE();
}
