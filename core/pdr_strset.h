/* pdr_strset.h: a set of strings (open addressing, FNV-1a hash), each with a 64-bit value, used
 * to skip ids that are already stored when `pdr embed` resumes (the value says what is stored
 * under the id). The set copies the strings it holds. Not thread-safe. */
#ifndef PDR_STRSET_H
#define PDR_STRSET_H

#include <stddef.h>
#include <stdint.h>

#include "pdr_err.h"

typedef struct pdr_strset pdr_strset;

int pdr_strset_create(pdr_strset **ret_set, pdr_err *err);
void pdr_strset_free(pdr_strset *set);
/* Add s with value 0; *opt_added (may be NULL) says whether it was new. */
int pdr_strset_add(pdr_strset *set, const char *s, int *opt_added, pdr_err *err);
/* Add s with value; a string already in the set keeps the value it has. */
int pdr_strset_add_value(pdr_strset *set, const char *s, uint64_t value, int *opt_added, pdr_err *err);
int pdr_strset_contains(const pdr_strset *set, const char *s);
/* 1 if s is in the set, its value in *opt_value (may be NULL); 0 if not. */
int pdr_strset_find(const pdr_strset *set, const char *s, uint64_t *opt_value);
size_t pdr_strset_count(const pdr_strset *set);

#endif
