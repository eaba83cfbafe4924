/* The core's one chained hash table (htab.h), for fp_cache and fp_weakmap. */
#include "htab.h"

#include "framepool/base.h"

#include <string.h>

static inline size_t bucket_of(const fp__htab *t, uint64_t k)
{
    return (size_t)((k * 0x9e3779b97f4a7c15ull) >> t->shift);
}

int fp__htab_init(fp__htab *t, unsigned log2_buckets)
{
    if (!t || log2_buckets < 1 || log2_buckets > 32)
        return FP_EINVAL;
    size_t nb = (size_t)1 << log2_buckets;
    fp__hnode **b = fp_alloc(nb * sizeof *b, sizeof(void *));
    if (!b)
        return FP_ENOMEM;
    memset(b, 0, nb * sizeof *b);
    t->buckets = b;
    t->nbuckets = nb;
    t->count = 0;
    t->shift = 64 - log2_buckets;
    return FP_OK;
}

void fp__htab_fini(fp__htab *t)
{
    if (!t || !t->buckets)
        return;
    fp_free(t->buckets, t->nbuckets * sizeof *t->buckets);
    t->buckets = NULL;
    t->nbuckets = t->count = 0;
}

fp__hnode *fp__htab_find(const fp__htab *t, uint64_t key)
{
    fp__hnode *n = t->buckets[bucket_of(t, key)];
    while (n && n->key != key)
        n = n->next;
    return n;
}

/* Doubles the bucket array once the load reaches 1. */
static void maybe_grow(fp__htab *t)
{
    if (t->count < t->nbuckets || t->shift <= 1 ||
        t->nbuckets > (SIZE_MAX / sizeof(void *)) / 4)
        return;
    size_t nb = t->nbuckets * 2;
    fp__hnode **b = fp_alloc(nb * sizeof *b, sizeof(void *));
    if (!b)
        return; /* longer chains, still correct */
    memset(b, 0, nb * sizeof *b);
    fp__hnode **old = t->buckets;
    size_t on = t->nbuckets;
    t->buckets = b;
    t->nbuckets = nb;
    t->shift--;
    for (size_t i = 0; i < on; i++) {
        for (fp__hnode *n = old[i], *next; n; n = next) {
            next = n->next;
            size_t j = bucket_of(t, n->key);
            n->next = b[j];
            b[j] = n;
        }
    }
    fp_free(old, on * sizeof *old);
}

void fp__htab_insert(fp__htab *t, fp__hnode *n)
{
    maybe_grow(t);
    fp__hnode **head = &t->buckets[bucket_of(t, n->key)];
    n->next = *head;
    *head = n;
    t->count++;
}

int fp__htab_remove(fp__htab *t, fp__hnode *n)
{
    fp__hnode **link = &t->buckets[bucket_of(t, n->key)];
    while (*link && *link != n)
        link = &(*link)->next;
    if (!*link)
        return 0;
    *link = n->next;
    n->next = NULL;
    t->count--;
    return 1;
}
