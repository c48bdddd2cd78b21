/* pdr_db_attr.h: scalar HDF5 attributes of the database's own files (background.h5,
 * expansion.h5); internal to index/. Each returns 1 on success, 0 on failure (HDF5 error
 * printing is the caller's business). */
#ifndef PDR_DB_ATTR_H
#define PDR_DB_ATTR_H

#include <hdf5.h>
#include <stddef.h>

/* A fixed-length string attribute holding value. */
int pdr_db_attr_write_str(hid_t loc, const char *name, const char *value);
/* A number: file_type as stored (H5T_STD_I64LE, H5T_IEEE_F64LE), mem_type of *value. */
int pdr_db_attr_write_num(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *value);
/* A fixed-length string attribute that fits in cap bytes with its NUL, into out. */
int pdr_db_attr_read_str(hid_t loc, const char *name, char *out, size_t cap);

#endif
