/* fp_weakmap: WeakKeyDictionary and WeakValueDictionary.
 *
 * Entries are removed eagerly: each entry registers an on-free callback on
 * the object it holds weakly (the key, or the value). The state lives in a
 * `core` separate from the public map object, because those callbacks may
 * run after the map itself has been released: the core lives until the map
 * is gone and every entry is freed.
 *
 * An entry is freed (and its value released) when its count drops to zero.
 * The count holds one for being in the table, one while its on-free
 * callback is registered and has not run, and one per foreach snapshot
 * using it. Whoever takes an entry out of the table (remove, replace,
 * clear, or the callback) cancels the callback if it can; when the object
 * is already dying the cancel fails and the callback, which then runs soon
 * on the releasing thread, drops that count itself.
 *
 * Never release an object with core->mu held: the release could run a
 * callback that takes core->mu.
 */
#define _POSIX_C_SOURCE 200809L
#include "framepool/weak.h"
#include "htab.h"
#include "weak_priv.h"

#include <pthread.h>
#include <string.h>

typedef struct wm_core wm_core;

typedef struct wm_entry {
    fp__hnode h;           /* table node; h.key: WEAK_KEYS the key's weak id, WEAK_VALUES
                              the user's key; h.next chains a to-free list once out of
                              the table */
    uint64_t wid;          /* weak id of the watched object (key or value) */
    fp__onfree *node;      /* the on-free record, while cb_pending */
    void *value;           /* WEAK_KEYS: the user's value */
    wm_core *core;
    unsigned refs;
    unsigned char in_table, cb_pending;
} wm_entry;

struct wm_core {
    pthread_mutex_t mu;
    unsigned long refs; /* the map object + one per allocated entry */
    fp__htab tab; /* tab.count: the entries in the table */
    fp_weakmap_mode mode;
    void (*value_free)(void *);
    void *(*value_ref)(void *);
};

struct fp_weakmap {
    wm_core *core;
};

static void weakmap_finalize(void *obj);
const fp_type fp_weakmap_type = {"fp_weakmap", weakmap_finalize};

#define INITIAL_BUCKETS_LOG2 4 /* 16 */

#define entry_of(n) FP__HTAB_ENTRY(n, wm_entry, h)
#define find(c, k) entry_of(fp__htab_find(&(c)->tab, (k)))

static void core_unref(wm_core *c, unsigned long n)
{
    if (!n)
        return;
    pthread_mutex_lock(&c->mu);
    c->refs -= n;
    int last = c->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (!last)
        return;
    pthread_mutex_destroy(&c->mu);
    fp__htab_fini(&c->tab);
    fp_free(c, sizeof *c);
}

/* Frees entries whose count reached zero (chained through next). Called
 * without the lock. */
static void destroy_list(wm_core *c, wm_entry *list)
{
    unsigned long n = 0;
    void (*vf)(void *) = c->value_free;
    while (list) {
        wm_entry *e = list;
        list = entry_of(e->h.next);
        if (vf && c->mode == FP_WEAKMAP_WEAK_KEYS)
            vf(e->value);
        fp_free(e, sizeof *e);
        n++;
    }
    core_unref(c, n);
}

/* Drops one count of e under the lock; queues e on *dead at zero. */
static void entry_put(wm_entry *e, wm_entry **dead)
{
    if (--e->refs == 0)
        FP__HTAB_LIST_PUSH(dead, e, h);
}

/* Takes e out of the table and cancels its callback if it can. Under the
 * lock. */
static void detach(wm_core *c, wm_entry *e, wm_entry **dead)
{
    fp__htab_remove(&c->tab, &e->h);
    e->in_table = 0;
    if (e->cb_pending && fp__onfree_cancel(e->wid, e->node)) {
        e->cb_pending = 0;
        entry_put(e, dead);
    }
    entry_put(e, dead);
}

/* The watched object died (runs on the releasing thread, outside locks). */
static void on_object_freed(void *user)
{
    wm_entry *e = user;
    wm_core *c = e->core;
    wm_entry *dead = NULL;
    pthread_mutex_lock(&c->mu);
    e->cb_pending = 0;
    if (e->in_table) {
        fp__htab_remove(&c->tab, &e->h); /* this entry, not another with its key */
        e->in_table = 0;
        entry_put(e, &dead);
    }
    entry_put(e, &dead);
    pthread_mutex_unlock(&c->mu);
    destroy_list(c, dead);
}

int fp_weakmap_new_at(const fp_weakmap_config *cfg, fp_weakmap **out, const char *file,
                      int line, const char *func)
{
    if (!out)
        return FP_EINVAL;
    *out = NULL;
    if (!cfg || (cfg->mode != FP_WEAKMAP_WEAK_KEYS && cfg->mode != FP_WEAKMAP_WEAK_VALUES))
        return FP_EINVAL;
    wm_core *c = fp_alloc(sizeof *c, sizeof(void *));
    if (!c)
        return FP_ENOMEM;
    memset(c, 0, sizeof *c);
    if (fp__htab_init(&c->tab, INITIAL_BUCKETS_LOG2) != FP_OK) {
        fp_free(c, sizeof *c);
        return FP_ENOMEM;
    }
    c->mode = cfg->mode;
    c->value_free = cfg->value_free;
    c->value_ref = cfg->value_ref;
    c->refs = 1;
    fp_weakmap *m = fp__obj_new(&fp_weakmap_type, sizeof *m, sizeof *m, NULL, file, line, func);
    if (!m) {
        fp__htab_fini(&c->tab);
        fp_free(c, sizeof *c);
        return FP_ENOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    m->core = c;
    *out = m;
    return FP_OK;
}

void fp_weakmap_clear(fp_weakmap *m)
{
    if (!m)
        return;
    wm_core *c = m->core;
    wm_entry *dead = NULL;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->tab.nbuckets; i++) {
        while (c->tab.buckets[i])
            detach(c, entry_of(c->tab.buckets[i]), &dead);
    }
    pthread_mutex_unlock(&c->mu);
    destroy_list(c, dead);
}

static void weakmap_finalize(void *obj)
{
    fp_weakmap *m = obj;
    fp_weakmap_clear(m);
    core_unref(m->core, 1);
    m->core = NULL;
}

/* Creates an entry watching `h` (a live object the caller holds). */
static int entry_new(wm_core *c, fp__obj *h, void *value, wm_entry **out)
{
    wm_entry *e = fp_alloc(sizeof *e, sizeof(void *));
    if (!e)
        return FP_ENOMEM;
    memset(e, 0, sizeof *e);
    e->core = c;
    e->value = value;
    int rc = fp__onfree_add(h, on_object_freed, e, &e->node, &e->wid);
    if (rc) {
        fp_free(e, sizeof *e);
        return rc;
    }
    e->h.key = e->wid; /* WEAK_VALUES callers set their own key */
    e->cb_pending = 1;
    e->refs = 1; /* the callback */
    pthread_mutex_lock(&c->mu);
    c->refs++;
    pthread_mutex_unlock(&c->mu);
    *out = e;
    return FP_OK;
}

/* Inserts e (replacing an entry with the same key). Under the lock. */
static void insert(wm_core *c, wm_entry *e, wm_entry **dead)
{
    wm_entry *old = find(c, e->h.key);
    if (old)
        detach(c, old, dead);
    fp__htab_insert(&c->tab, &e->h);
    e->in_table = 1;
    e->refs++;
}

int fp_weakmap_put(fp_weakmap *m, void *key, void *value)
{
    if (!m || !key || m->core->mode != FP_WEAKMAP_WEAK_KEYS)
        return FP_EINVAL;
    wm_core *c = m->core;
    fp__obj *h = fp__hdr(key);
    /* Fast path: the key is already there, only the value changes. */
    uint64_t id = fp__weak_peek(h);
    if (id) {
        void *old_value = NULL;
        int found = 0;
        pthread_mutex_lock(&c->mu);
        wm_entry *e = find(c, id);
        if (e && e->refs == 2) { /* table + callback: no snapshot is using the value */
            old_value = e->value;
            e->value = value;
            found = 1;
        }
        pthread_mutex_unlock(&c->mu);
        if (found) {
            if (c->value_free && old_value != value)
                c->value_free(old_value);
            return FP_OK;
        }
    }
    wm_entry *e;
    int rc = entry_new(c, h, value, &e);
    if (rc)
        return rc;
    wm_entry *dead = NULL;
    pthread_mutex_lock(&c->mu);
    insert(c, e, &dead);
    pthread_mutex_unlock(&c->mu);
    destroy_list(c, dead);
    return FP_OK;
}

int fp_weakmap_get_at(fp_weakmap *m, const void *key, void **value, const char *file, int line,
                      const char *func)
{
    if (value)
        *value = NULL;
    if (!m || !key || !value || m->core->mode != FP_WEAKMAP_WEAK_KEYS)
        return FP_EINVAL;
    wm_core *c = m->core;
    uint64_t id = fp__weak_peek(fp__hdr(key));
    if (!id)
        return FP_ENOENT;
    int rc = FP_ENOENT;
    pthread_mutex_lock(&c->mu);
    wm_entry *e = find(c, id);
    if (e) {
        if (c->value_ref) {
            /* value_ref is usually fp_ref itself, called through the pointer:
             * its reference is the caller's, taken at their line. */
            fp__obj_acting_for(file, line, func, __builtin_return_address(0));
            *value = c->value_ref(e->value);
            fp__obj_acting_for(NULL, 0, NULL, NULL);
        } else {
            *value = e->value;
        }
        rc = FP_OK;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int remove_key(wm_core *c, uint64_t k)
{
    wm_entry *dead = NULL;
    pthread_mutex_lock(&c->mu);
    wm_entry *e = find(c, k);
    if (e)
        detach(c, e, &dead);
    pthread_mutex_unlock(&c->mu);
    destroy_list(c, dead);
    return e ? FP_OK : FP_ENOENT;
}

int fp_weakmap_remove(fp_weakmap *m, const void *key)
{
    if (!m || !key || m->core->mode != FP_WEAKMAP_WEAK_KEYS)
        return FP_EINVAL;
    uint64_t id = fp__weak_peek(fp__hdr(key));
    return id ? remove_key(m->core, id) : FP_ENOENT;
}

int fp_weakmap_put_u64(fp_weakmap *m, uint64_t key, void *obj)
{
    if (!m || !obj || m->core->mode != FP_WEAKMAP_WEAK_VALUES)
        return FP_EINVAL;
    wm_core *c = m->core;
    wm_entry *e;
    int rc = entry_new(c, fp__hdr(obj), NULL, &e);
    if (rc)
        return rc;
    e->h.key = key;
    wm_entry *dead = NULL;
    pthread_mutex_lock(&c->mu);
    insert(c, e, &dead);
    pthread_mutex_unlock(&c->mu);
    destroy_list(c, dead);
    return FP_OK;
}

int fp_weakmap_get_u64_at(fp_weakmap *m, uint64_t key, void **obj, const char *file, int line,
                          const char *func)
{
    if (obj)
        *obj = NULL;
    if (!m || !obj || m->core->mode != FP_WEAKMAP_WEAK_VALUES)
        return FP_EINVAL;
    wm_core *c = m->core;
    pthread_mutex_lock(&c->mu);
    wm_entry *e = find(c, key);
    void *o = e ? fp__weak_get_for((fp_weak){e->wid}, file, line, func,
                                   __builtin_return_address(0))
                : NULL;
    pthread_mutex_unlock(&c->mu);
    *obj = o;
    return o ? FP_OK : FP_ENOENT;
}

int fp_weakmap_remove_u64(fp_weakmap *m, uint64_t key)
{
    if (!m || m->core->mode != FP_WEAKMAP_WEAK_VALUES)
        return FP_EINVAL;
    return remove_key(m->core, key);
}

size_t fp_weakmap_len(fp_weakmap *m)
{
    if (!m)
        return 0;
    wm_core *c = m->core;
    pthread_mutex_lock(&c->mu);
    size_t n = c->tab.count;
    pthread_mutex_unlock(&c->mu);
    return n;
}

typedef struct snap_item {
    wm_entry *e;   /* WEAK_KEYS: pinned entry */
    void *obj;     /* strong reference: the key or the value */
    uint64_t key;  /* WEAK_VALUES */
} snap_item;

int fp_weakmap_foreach(fp_weakmap *m,
                       int (*fn)(void *key_obj, uint64_t key, void *value, void *user),
                       void *user)
{
    if (!m || !fn)
        return FP_EINVAL;
    wm_core *c = m->core;
    pthread_mutex_lock(&c->mu);
    size_t cap = c->tab.count, n = 0;
    snap_item *items = NULL;
    if (cap) {
        items = fp_alloc(cap * sizeof *items, sizeof(void *));
        if (!items) {
            pthread_mutex_unlock(&c->mu);
            return FP_ENOMEM;
        }
    }
    for (size_t i = 0; i < c->tab.nbuckets; i++) {
        for (wm_entry *e = entry_of(c->tab.buckets[i]); e; e = entry_of(e->h.next)) {
            void *o = fp_weak_get((fp_weak){e->wid});
            if (!o)
                continue; /* dying: its callback is about to remove it */
            items[n].obj = o;
            items[n].key = e->h.key;
            items[n].e = NULL;
            if (c->mode == FP_WEAKMAP_WEAK_KEYS) {
                e->refs++;
                items[n].e = e;
            }
            n++;
        }
    }
    pthread_mutex_unlock(&c->mu);

    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (c->mode == FP_WEAKMAP_WEAK_KEYS)
            rc = fn(items[i].obj, 0, items[i].e->value, user);
        else
            rc = fn(NULL, items[i].key, items[i].obj, user);
    }

    wm_entry *dead = NULL;
    if (c->mode == FP_WEAKMAP_WEAK_KEYS && n) {
        pthread_mutex_lock(&c->mu);
        for (size_t i = 0; i < n; i++)
            entry_put(items[i].e, &dead);
        pthread_mutex_unlock(&c->mu);
    }
    destroy_list(c, dead);
    for (size_t i = 0; i < n; i++)
        fp_decref(items[i].obj);
    if (items)
        fp_free(items, cap * sizeof *items);
    return rc;
}

int(fp_weakmap_get)(fp_weakmap *m, const void *key, void **value)
{
    return fp_weakmap_get_at(m, key, value, NULL, 0, NULL);
}

int(fp_weakmap_get_u64)(fp_weakmap *m, uint64_t key, void **obj)
{
    return fp_weakmap_get_u64_at(m, key, obj, __FILE__, __LINE__, "fp_weakmap_get_u64");
}
