/* pdr_err.h: status codes and the error buffer every fallible pdr function fills.
 *
 * Convention (after Easel): a function that can fail returns an int status, 0 on success,
 * and writes a human-readable message naming the file, record number and id into the
 * caller's pdr_err. All error paths go through pdr_fail(), so one breakpoint catches all.
 */
#ifndef PDR_ERR_H
#define PDR_ERR_H

#include <stddef.h>

enum pdr_status {
    PDR_OK = 0,
    PDR_EOF = 1,       /* end of input: not an error, no message */
    PDR_EINPUT = 2,    /* bad user input (a record, a request); the caller may go on */
    PDR_EIO = 3,       /* file or socket I/O failed */
    PDR_ENOMEM = 4,    /* allocation failed */
    PDR_EFORMAT = 5,   /* a file (model, store, index) is malformed or of the wrong version */
    PDR_ELIMIT = 6,    /* a configured limit was exceeded (length, size, count) */
    PDR_EINTERNAL = 7, /* a library (HDF5, FAISS) failed for a reason we did not foresee */
    PDR_ECANCELLED = 8 /* the caller asked to stop (pdr_cancel.h) */
};

#define PDR_ERRLEN 1024

typedef struct pdr_err {
    int code;
    char msg[PDR_ERRLEN];
} pdr_err;

/* Record an error: formats the message into err (if err is non-NULL) and returns code.
 * Use as `return pdr_fail(err, PDR_EINPUT, "%s: record %zu (%s): empty sequence", ...);` */
int pdr_fail(pdr_err *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Clear an error buffer (code 0, empty message). */
void pdr_err_clear(pdr_err *err);

/* A short name for a status code ("input error", "I/O error", ...). */
const char *pdr_status_name(int code);

#endif
