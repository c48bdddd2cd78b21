/* pdr_strset.h: a set of strings (open addressing, FNV-1a hash), used to skip ids that are
 * already stored when `pdr embed` resumes. The set copies the strings it holds.
 * Not thread-safe. */
#ifndef PDR_STRSET_H
#define PDR_STRSET_H

#include <stddef.h>

#include "pdr_err.h"

typedef struct pdr_strset pdr_strset;

int pdr_strset_create(pdr_strset **ret_set, pdr_err *err);
void pdr_strset_free(pdr_strset *set);
/* Add s; *opt_added (may be NULL) says whether it was new. */
int pdr_strset_add(pdr_strset *set, const char *s, int *opt_added, pdr_err *err);
int pdr_strset_contains(const pdr_strset *set, const char *s);
size_t pdr_strset_count(const pdr_strset *set);

#endif
