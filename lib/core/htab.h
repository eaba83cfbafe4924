/*
 * Private to the core: one chained hash table keyed by uint64_t, intrusive
 * (the caller's entry embeds an fp__hnode), used by fp_cache (cache.c) and
 * fp_weakmap (weakmap.c). Not installed.
 *
 * Buckets are a power of two; a key's bucket is the top bits of key times
 * the 64-bit golden ratio (Fibonacci hashing), so sequential keys spread.
 * The table doubles when its count reaches the bucket count (load 1); a
 * failed allocation while growing only makes chains longer. The table
 * allocates nothing but its bucket array (through fp_alloc), never touches
 * an entry except its node, and takes no lock: its owner's lock guards it.
 */
#ifndef FRAMEPOOL_HTAB_H
#define FRAMEPOOL_HTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct fp__hnode {
    struct fp__hnode *next; /* the bucket's chain; free for the owner's use once removed */
    uint64_t key;
} fp__hnode;

typedef struct fp__htab {
    fp__hnode **buckets; /* nbuckets chains; read-only to callers (e.g. to walk every node) */
    size_t nbuckets;     /* a power of two */
    size_t count;        /* nodes in the table */
    unsigned shift;      /* 64 - log2(nbuckets) */
} fp__htab;

/* The entry of type T whose member m is the node n (NULL for NULL). */
#define FP__HTAB_ENTRY(n, T, m) ((n) ? (T *)(void *)((char *)(n) - offsetof(T, m)) : (T *)NULL)

/* Pushes entry e (its node is member m) on *list, a list of such entries
 * chained through their nodes' next: for entries out of the table (release
 * lists). Walk it with FP__HTAB_ENTRY(e->m.next, T, m). */
#define FP__HTAB_LIST_PUSH(list, e, m) \
    ((e)->m.next = *(list) ? &(*(list))->m : NULL, *(list) = (e))

/* An empty table of 2^log2_buckets buckets (1..32). 0, FP_EINVAL or
 * FP_ENOMEM (then *t holds nothing to free). */
int fp__htab_init(fp__htab *t, unsigned log2_buckets);
/* Frees the bucket array (not the nodes). */
void fp__htab_fini(fp__htab *t);
/* The node with `key`, or NULL. The most recently inserted first when a
 * caller inserted the same key twice. */
fp__hnode *fp__htab_find(const fp__htab *t, uint64_t key);
/* Inserts n (n->key set by the caller) at the head of its bucket. */
void fp__htab_insert(fp__htab *t, fp__hnode *n);
/* Removes this very node (not another with its key). 1, or 0 when it is
 * not in the table. n->next is cleared. */
int fp__htab_remove(fp__htab *t, fp__hnode *n);

#endif
