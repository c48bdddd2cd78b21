/* pdr_json.c: the strict request-object parser of the HTTP service (see pdr_json.h).
 *
 * A recursive-descent reader over a length-bounded buffer: every read checks pos < len, so a
 * body without a NUL terminator, or with NULs inside, is safe. Values of the wrong type are
 * walked by skip_value (depth-limited) only to tell "bad_k: got an array" apart from a syntax
 * error; nothing else is ever built.
 */
#include "pdr_json.h"
#include "pdr_utf8.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NUMBER_CHARS 64

typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
    const char *code; /* error code of the first failure */
    pdr_err *err;
} parser;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
fail(parser *p, const char *code, const char *fmt, ...)
{
    char msg[PDR_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->code = code;
    return pdr_fail(p->err, PDR_EINPUT, "%s", msg);
}

/* A syntax error, located by byte offset (0-based, as editors and jq report them). */
#define SYNTAX(p, what) fail((p), "invalid_json", "invalid JSON at byte %zu: %s", (p)->pos, (what))

static int at_end(const parser *p) { return p->pos >= p->len; }
static int peek(const parser *p) { return p->pos < p->len ? p->s[p->pos] : -1; }

static void skip_ws(parser *p)
{
    while (p->pos < p->len &&
           (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static int hex4(const unsigned char *s, unsigned *ret)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int c = s[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + (unsigned)d;
    }
    *ret = v;
    return 0;
}

static size_t put_utf8(unsigned char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xe0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string at p->pos (which holds '"'). With ret_out, the decoded bytes are allocated
 * (NUL-terminated, *ret_len without the NUL); without, the string is only validated. The
 * decoded form is never longer than the raw one (an escape of 6 or 12 bytes gives at most 3 or
 * 4), so one allocation of the raw length suffices. */
static int parse_string(parser *p, char **ret_out, size_t *ret_len)
{
    size_t start = ++p->pos, end = start;
    while (end < p->len && p->s[end] != '"')
        end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) {
        p->pos = p->len;
        return SYNTAX(p, "unterminated string");
    }
    unsigned char *out = NULL;
    size_t n = 0;
    if (ret_out && !(out = malloc(end - start + 1))) {
        p->code = "internal";
        return pdr_fail(p->err, PDR_ENOMEM, "out of memory for a %zu-byte JSON string", end - start);
    }
    while (p->pos < end) {
        const unsigned char *c = p->s + p->pos;
        if (*c < 0x20) {
            free(out);
            return SYNTAX(p, "control character in a string (escape it)");
        }
        if (*c != '\\') {
            size_t u = pdr_utf8_decode(c, end - p->pos, NULL);
            if (u == 0) {
                free(out);
                return SYNTAX(p, "invalid UTF-8 in a string");
            }
            if (out)
                memcpy(out + n, c, u);
            n += u;
            p->pos += u;
            continue;
        }
        unsigned cp = 0;
        switch (c[1]) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (end - p->pos < 6 || hex4(c + 2, &cp)) {
                free(out);
                return SYNTAX(p, "\\u must be followed by 4 hex digits");
            }
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                free(out);
                return SYNTAX(p, "lone low surrogate in \\u escape");
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo;
                if (end - p->pos < 12 || c[6] != '\\' || c[7] != 'u' || hex4(c + 8, &lo) || lo < 0xdc00 ||
                    lo > 0xdfff) {
                    free(out);
                    return SYNTAX(p, "high surrogate in \\u escape not followed by a low one");
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p->pos += 6;
            }
            p->pos += 4;
            break;
        default: free(out); return SYNTAX(p, "invalid escape in a string");
        }
        p->pos += 2;
        if (out)
            n += put_utf8(out + n, cp);
        else
            n++;
    }
    p->pos = end + 1;
    if (out) {
        out[n] = '\0';
        *ret_out = (char *)out;
        *ret_len = n;
    }
    return PDR_OK;
}

/* A number at p->pos, RFC 8259 grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int parse_number(parser *p, double *ret)
{
    size_t start = p->pos, i = p->pos;
    const unsigned char *s = p->s;
#define DIGIT(j) ((j) < p->len && s[j] >= '0' && s[j] <= '9')
    if (i < p->len && s[i] == '-')
        i++;
    if (!DIGIT(i)) {
        p->pos = i;
        return SYNTAX(p, "expected a digit");
    }
    if (s[i] == '0')
        i++;
    else
        while (DIGIT(i))
            i++;
    if (i < p->len && s[i] == '.') {
        i++;
        if (!DIGIT(i)) {
            p->pos = i;
            return SYNTAX(p, "expected a digit after '.'");
        }
        while (DIGIT(i))
            i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (!DIGIT(i)) {
            p->pos = i;
            return SYNTAX(p, "expected a digit in the exponent");
        }
        while (DIGIT(i))
            i++;
    }
#undef DIGIT
    /* "01", "1x": the number must end at a delimiter, or "k": 01 would read as 0 then fail as bad_k */
    if (i < p->len && !strchr(" \t\r\n,}]", s[i])) {
        p->pos = i;
        return SYNTAX(p, "unexpected character after a number");
    }
    if (i - start > MAX_NUMBER_CHARS)
        return SYNTAX(p, "number longer than 64 characters");
    char copy[MAX_NUMBER_CHARS + 1];
    memcpy(copy, s + start, i - start);
    copy[i - start] = '\0';
    *ret = strtod(copy, NULL); /* out-of-range values become +-HUGE_VAL or 0: range checks catch them */
    p->pos = i;
    return PDR_OK;
}

static int literal(parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return SYNTAX(p, "unexpected character");
    p->pos += n;
    return PDR_OK;
}

static const char *type_name(int c)
{
    switch (c) {
    case '{': return "an object";
    case '[': return "an array";
    case '"': return "a string";
    case 't':
    case 'f': return "a boolean";
    case 'n': return "null";
    default: return "a number";
    }
}

/* Validate any JSON value at p->pos (ws already skipped); depth = containers already open. */
static int skip_value(parser *p, int depth)
{
    int c = peek(p), rc;
    double num;
    switch (c) {
    case -1: return SYNTAX(p, "unexpected end of input, expected a value");
    case '"': return parse_string(p, NULL, NULL);
    case 't': return literal(p, "true");
    case 'f': return literal(p, "false");
    case 'n': return literal(p, "null");
    case '{':
    case '[':
        if (depth + 1 > PDR_JSON_MAX_DEPTH)
            return fail(p, "json_too_deep", "JSON nested deeper than %d levels at byte %zu", PDR_JSON_MAX_DEPTH,
                        p->pos);
        p->pos++;
        skip_ws(p);
        if (peek(p) == (c == '{' ? '}' : ']')) {
            p->pos++;
            return PDR_OK;
        }
        for (;;) {
            if (c == '{') {
                if (peek(p) != '"')
                    return SYNTAX(p, "expected a string key");
                if ((rc = parse_string(p, NULL, NULL)))
                    return rc;
                skip_ws(p);
                if (peek(p) != ':')
                    return SYNTAX(p, "expected ':' after a key");
                p->pos++;
                skip_ws(p);
            }
            if ((rc = skip_value(p, depth + 1)))
                return rc;
            skip_ws(p);
            if (peek(p) == ',') {
                p->pos++;
                skip_ws(p);
                continue;
            }
            if (peek(p) == (c == '{' ? '}' : ']')) {
                p->pos++;
                return PDR_OK;
            }
            return SYNTAX(p, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return parse_number(p, &num);
        return SYNTAX(p, "unexpected character, expected a value");
    }
}

/* A number value for a known key: the wrong type is reported under that key's code. */
static int number_field(parser *p, const char *key, const char *code, double *ret)
{
    int c = peek(p), rc;
    if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(p, ret);
    if ((rc = skip_value(p, 1)))
        return rc;
    return fail(p, code, "\"%s\" must be a number, got %s", key, type_name(c));
}

/* A boolean value (true or false) for a known key. */
static int bool_field(parser *p, const char *key, const char *code, int *ret)
{
    int c = peek(p), rc;
    if (c == 't' || c == 'f') {
        if ((rc = literal(p, c == 't' ? "true" : "false")))
            return rc;
        *ret = c == 't';
        return PDR_OK;
    }
    if ((rc = skip_value(p, 1)))
        return rc;
    return fail(p, code, "\"%s\" must be true or false, got %s", key, type_name(c));
}

static int parse_object(parser *p, pdr_json_request *req)
{
    int rc;
    skip_ws(p);
    if (at_end(p))
        return SYNTAX(p, "empty body, expected an object");
    if (peek(p) != '{') {
        int c = peek(p);
        if ((rc = skip_value(p, 0)))
            return rc;
        return fail(p, "not_an_object", "the body must be a JSON object {\"fasta\": ...}, got %s", type_name(c));
    }
    p->pos++;
    skip_ws(p);
    if (peek(p) == '}') {
        p->pos++;
        return PDR_OK;
    }
    for (;;) {
        if (peek(p) != '"')
            return SYNTAX(p, "expected a string key");
        size_t key_at = p->pos, key_len = 0;
        char *key = NULL;
        if ((rc = parse_string(p, &key, &key_len)))
            return rc;
        skip_ws(p);
        if (peek(p) != ':') {
            free(key);
            return SYNTAX(p, "expected ':' after a key");
        }
        p->pos++;
        skip_ws(p);
        int is_fasta = key_len == 5 && memcmp(key, "fasta", 5) == 0;
        int is_k = key_len == 1 && key[0] == 'k';
        int is_min = key_len == 9 && memcmp(key, "min_score", 9) == 0;
        int is_expand = key_len == 6 && memcmp(key, "expand", 6) == 0;
        int is_evalue = key_len == 6 && memcmp(key, "evalue", 6) == 0;
        if (!is_fasta && !is_k && !is_min && !is_expand && !is_evalue) {
            rc = fail(p, "unknown_field",
                      "unknown field \"%.*s\" at byte %zu (allowed: fasta, k, min_score, evalue, expand)",
                      pdr_utf8_clip(key, 64), key, key_at);
            free(key);
            return rc;
        }
        free(key);
        if ((is_fasta && req->fasta) || (is_k && req->has_k) || (is_min && req->has_min_score) ||
            (is_expand && req->has_expand) || (is_evalue && req->has_evalue))
            return fail(p, "duplicate_field", "field \"%s\" given twice (at byte %zu)",
                        is_fasta    ? "fasta"
                        : is_k      ? "k"
                        : is_min    ? "min_score"
                        : is_evalue ? "evalue"
                                    : "expand",
                        key_at);
        if (is_fasta) {
            int c = peek(p);
            if (c != '"') {
                if ((rc = skip_value(p, 1)))
                    return rc;
                return fail(p, "bad_fasta", "\"fasta\" must be a string holding FASTA text, got %s", type_name(c));
            }
            if ((rc = parse_string(p, &req->fasta, &req->fasta_len)))
                return rc;
        } else if (is_k) {
            double v;
            if ((rc = number_field(p, "k", "bad_k", &v)))
                return rc;
            if (!(v >= 1 && v <= (double)PDR_JSON_MAX_K) || v != floor(v))
                return fail(p, "bad_k", "\"k\" must be an integer in [1, %ld], got %.17g", PDR_JSON_MAX_K, v);
            req->k = (int)v;
            req->has_k = 1;
        } else if (is_expand) {
            if ((rc = bool_field(p, "expand", "bad_expand", &req->expand)))
                return rc;
            req->has_expand = 1;
        } else if (is_evalue) {
            double v;
            if ((rc = number_field(p, "evalue", "bad_evalue", &v)))
                return rc;
            if (!(v > 0 && isfinite(v)))
                return fail(p, "bad_evalue", "\"evalue\" must be a number > 0 (an E-value threshold), got %.17g", v);
            req->evalue = v;
            req->has_evalue = 1;
        } else {
            double v;
            if ((rc = number_field(p, "min_score", "bad_min_score", &v)))
                return rc;
            if (!(v >= -1.0 && v <= 1.0))
                return fail(p, "bad_min_score", "\"min_score\" must be a number in [-1, 1] (a score), got %.17g", v);
            req->min_score = v;
            req->has_min_score = 1;
        }
        skip_ws(p);
        if (peek(p) == ',') {
            p->pos++;
            skip_ws(p);
            continue;
        }
        if (peek(p) == '}') {
            p->pos++;
            return PDR_OK;
        }
        return SYNTAX(p, "expected ',' or '}'");
    }
}

int pdr_json_parse_request(const char *body, size_t len, pdr_json_request *ret_req, const char **ret_code, pdr_err *err)
{
    parser p = {(const unsigned char *)body, len, 0, NULL, err};
    memset(ret_req, 0, sizeof *ret_req);
    *ret_code = NULL;
    int rc = parse_object(&p, ret_req);
    if (!rc) {
        skip_ws(&p);
        if (!at_end(&p))
            rc = SYNTAX(&p, "unexpected data after the object");
    }
    if (rc) {
        pdr_json_request_clear(ret_req);
        *ret_code = p.code ? p.code : "invalid_json";
    }
    return rc;
}

void pdr_json_request_clear(pdr_json_request *req)
{
    if (!req)
        return;
    free(req->fasta);
    memset(req, 0, sizeof *req);
}
