/* pdr_db_attr.c: scalar HDF5 attributes of the database's files (pdr_db_attr.h). */
#include "pdr_db_attr.h"

#include <string.h>

int pdr_db_attr_write_str(hid_t loc, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR), a = -1;
    int ok = t >= 0 && s >= 0 && H5Tset_size(t, strlen(value) + 1) >= 0 &&
             (a = H5Acreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT)) >= 0 && H5Awrite(a, t, value) >= 0;
    if (a >= 0)
        H5Aclose(a);
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    return ok;
}

int pdr_db_attr_write_num(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *value)
{
    hid_t s = H5Screate(H5S_SCALAR), a = -1;
    int ok = s >= 0 && (a = H5Acreate2(loc, name, file_type, s, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(a, mem_type, value) >= 0;
    if (a >= 0)
        H5Aclose(a);
    if (s >= 0)
        H5Sclose(s);
    return ok;
}

int pdr_db_attr_read_str(hid_t loc, const char *name, char *out, size_t cap)
{
    hid_t a = H5Aexists(loc, name) > 0 ? H5Aopen(loc, name, H5P_DEFAULT) : -1;
    hid_t t = a >= 0 ? H5Aget_type(a) : -1, mt = -1;
    int ok = 0;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) && H5Tget_size(t) <= cap &&
        (mt = H5Tcopy(t)) >= 0) {
        memset(out, 0, cap);
        ok = H5Aread(a, mt, out) >= 0 && memchr(out, '\0', cap) != NULL;
    }
    if (mt >= 0)
        H5Tclose(mt);
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    return ok;
}
