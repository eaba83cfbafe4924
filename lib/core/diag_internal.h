/* Interfaces shared by diag.c, diag_snapshot.c and memtrack.c. */
#ifndef FRAMEPOOL_DIAG_INTERNAL_H
#define FRAMEPOOL_DIAG_INTERNAL_H

#include "framepool/diag.h"
#include "pool_priv.h"

/* Tracking bits (FP_DIAG_SITES | FP_DIAG_BACKTRACE) now on: 0 = off. */
extern _Atomic int fp__diag_mode;

/* A recorded call stack, interned (one record per distinct stack, kept for
 * the life of the process): objects point at it through diag_extra. */
typedef struct fp__bt {
    struct fp__bt *next;
    uint64_t hash;
    int depth;
    void *frames[];
} fp__bt;

/* One live tracked object, copied out of the live list. */
typedef struct fp__diag_item {
    const fp_type *type;
    const char *file;
    const char *func;
    const fp__bt *tb;
    const void *obj;
    uint64_t birth;
    size_t bytes;
    int line;
    uint32_t refs;
    uint32_t flags;
    int hide; /* scratch for reports */
} fp__diag_item;

/* Copies every live tracked object (refcount > 0) into a new array
 * (fp_alloc'd, release with fp_free(*items, *cap * sizeof **items)).
 * Returns 0 or FP_ENOMEM. */
int fp__diag_collect(fp__diag_item **items, size_t *n, size_t *cap);

/* Whether `t` is one of diag's own types (left out of snapshots). */
int fp__diag_own_type(const fp_type *t);

/* Prints the frames of `tb` (symbolized with dladdr), one per line, each
 * preceded by `indent`. */
void fp__diag_print_bt(FILE *out, const fp__bt *tb, const char *indent);

/* Formats n with thousands separators ("9,500"). Returns buf. */
char *fp__diag_commas(char *buf, size_t n, uint64_t v);

/* Type name, never NULL. */
static inline const char *fp__diag_tname(const fp_type *t)
{
    return (t && t->name) ? t->name : "(unnamed)";
}

#endif
