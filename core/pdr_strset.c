/* pdr_strset.c: open-addressing string set with linear probing; grows at 50% load. */
#include "pdr_strset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct pdr_strset {
    char **slots;
    uint64_t *values; /* values[i] belongs to slots[i] */
    size_t cap;       /* power of two */
    size_t count;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int pdr_strset_create(pdr_strset **ret_set, pdr_err *err)
{
    *ret_set = NULL;
    pdr_strset *set = calloc(1, sizeof *set);
    if (!set || !(set->slots = calloc(64, sizeof(char *))) || !(set->values = calloc(64, sizeof(uint64_t)))) {
        pdr_strset_free(set);
        return pdr_fail(err, PDR_ENOMEM, "string set: out of memory");
    }
    set->cap = 64;
    *ret_set = set;
    return PDR_OK;
}

void pdr_strset_free(pdr_strset *set)
{
    if (!set)
        return;
    for (size_t i = 0; set->slots && i < set->cap; i++)
        free(set->slots[i]);
    free(set->slots);
    free(set->values);
    free(set);
}

static size_t find_slot(char **slots, size_t cap, const char *s)
{
    size_t i = (size_t)fnv1a(s) & (cap - 1);
    while (slots[i] && strcmp(slots[i], s) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}

static int grow(pdr_strset *set, pdr_err *err)
{
    size_t cap = set->cap * 2;
    char **slots = calloc(cap, sizeof(char *));
    uint64_t *values = calloc(cap, sizeof(uint64_t));
    if (!slots || !values) {
        free(slots);
        free(values);
        return pdr_fail(err, PDR_ENOMEM, "string set: out of memory growing to %zu", cap);
    }
    for (size_t i = 0; i < set->cap; i++)
        if (set->slots[i]) {
            size_t j = find_slot(slots, cap, set->slots[i]);
            slots[j] = set->slots[i];
            values[j] = set->values[i];
        }
    free(set->slots);
    free(set->values);
    set->slots = slots;
    set->values = values;
    set->cap = cap;
    return PDR_OK;
}

int pdr_strset_add(pdr_strset *set, const char *s, int *opt_added, pdr_err *err)
{
    return pdr_strset_add_value(set, s, 0, opt_added, err);
}

int pdr_strset_add_value(pdr_strset *set, const char *s, uint64_t value, int *opt_added, pdr_err *err)
{
    if (opt_added)
        *opt_added = 0;
    if (2 * (set->count + 1) > set->cap) {
        int rc = grow(set, err);
        if (rc)
            return rc;
    }
    size_t i = find_slot(set->slots, set->cap, s);
    if (set->slots[i])
        return PDR_OK;
    if (!(set->slots[i] = strdup(s)))
        return pdr_fail(err, PDR_ENOMEM, "string set: out of memory");
    set->values[i] = value;
    set->count++;
    if (opt_added)
        *opt_added = 1;
    return PDR_OK;
}

int pdr_strset_contains(const pdr_strset *set, const char *s)
{
    return set->slots[find_slot(set->slots, set->cap, s)] != NULL;
}

int pdr_strset_find(const pdr_strset *set, const char *s, uint64_t *opt_value)
{
    size_t i = find_slot(set->slots, set->cap, s);
    if (!set->slots[i])
        return 0;
    if (opt_value)
        *opt_value = set->values[i];
    return 1;
}

size_t pdr_strset_count(const pdr_strset *set) { return set->count; }
