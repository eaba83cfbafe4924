/*
 * Private to the core: weak slots and on-free records (weak.c) as the weak
 * maps (weakmap.c) and the tests use them. Not installed.
 */
#ifndef FRAMEPOOL_WEAK_PRIV_H
#define FRAMEPOOL_WEAK_PRIV_H

#include "framepool/weak.h"
#include "obj_priv.h"

/* weak.c, for weak maps: the handle id of h's current life, or 0 when h has
 * no slot (never had a weak handle or callback). */
uint64_t fp__weak_peek(const fp__obj *h);
/* Registers an on-free callback on h (a live object) and returns the record
 * and h's handle id, for fp__onfree_cancel. 0, FP_ENOMEM, FP_ELIMIT. */
int fp__onfree_add(fp__obj *h, void (*cb)(void *user), void *user, fp__onfree **node,
                   uint64_t *id);
/* Cancels a record from fp__onfree_add (at most once per record): returns 1
 * when it will never run (freed), 0 when the object is dying and the
 * callback has been or will be run by the releasing thread. */
int fp__onfree_cancel(uint64_t id, fp__onfree *node);
/* Test hook: sets the generation bits (1..32; other values restore the
 * build default); slots whose generation reaches the limit are retired.
 * Returns the previous value. */
unsigned fp__weak_set_gen_bits(unsigned bits);

/* fp_weak_get for an entry point acting for the user (FP_DIAG=refs): the
 * reference is recorded at `file`:`line`, `ret` being the entry point's
 * return address. */
void *fp__weak_get_for(fp_weak w, const char *file, int line, const char *func,
                       const void *ret);

#endif
