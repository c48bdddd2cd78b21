/* pdr_err.c: the one function every error path goes through. */
#include "pdr_err.h"

#include <stdarg.h>
#include <stdio.h>

int pdr_fail(pdr_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void pdr_err_clear(pdr_err *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

const char *pdr_status_name(int code)
{
    switch (code) {
    case PDR_OK: return "ok";
    case PDR_EOF: return "end of input";
    case PDR_EINPUT: return "input error";
    case PDR_EIO: return "I/O error";
    case PDR_ENOMEM: return "out of memory";
    case PDR_EFORMAT: return "format error";
    case PDR_ELIMIT: return "limit exceeded";
    case PDR_EINTERNAL: return "internal error";
    default: return "unknown error";
    }
}
