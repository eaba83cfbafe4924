/* fp_cache: a byte- and entry-bounded cache with SIEVE (default) or LRU
 * eviction, pinned entries and single-flight loading.
 *
 * One mutex guards everything. Entries sit in a hash table (htab.h) and in
 * one queue, head = newest. SIEVE: a hit sets `visited`; the hand walks from
 * the tail towards the head, clearing visited bits and evicting the first
 * unvisited, unpinned entry; new entries go to the head. LRU: a hit moves
 * the entry to the head; eviction takes the unpinned entry nearest the tail.
 *
 * Objects are never released with the mutex held (a finalizer may call back
 * into the cache): evicted and replaced entries are collected on a list and
 * released after unlocking.
 */
#define _POSIX_C_SOURCE 200809L
#include "framepool/cache.h"
#include "htab.h"
#include "obj_priv.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

typedef struct centry {
    fp__hnode h;                /* table node (h.key is the key); h.next chains the
                                   release list once removed */
    struct centry *prev, *next; /* queue: prev = newer, next = older */
    void *obj;
    size_t bytes;
    int visited;
} centry;

typedef struct load_rec {
    struct load_rec *next;
    uint64_t key;
    int done, rc;
    unsigned refs; /* the loader + waiters */
    void *obj;     /* one reference, released by the last to leave */
} load_rec;

struct fp_cache {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char name[48];
    size_t max_bytes, max_entries;
    fp_cache_policy policy;
    unsigned flags;
    fp__htab tab; /* tab.count: the entries */
    centry *head, *tail, *hand;
    size_t bytes;
    uint64_t hits, misses, evictions, rejected, peak_over, waits, load_errors;
    load_rec *loading;
};

static void cache_finalize(void *obj);
const fp_type fp_cache_type = {"fp_cache", cache_finalize};

#define INITIAL_BUCKETS_LOG2 6 /* 64 */

#define entry_of(n) FP__HTAB_ENTRY(n, centry, h)
#define find(c, k) entry_of(fp__htab_find(&(c)->tab, (k)))

static void queue_push_head(fp_cache *c, centry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static void queue_unlink(fp_cache *c, centry *e)
{
    if (c->hand == e)
        c->hand = e->prev;
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

/* Takes e out of the table and queue and queues it on *rel. */
static void drop_entry(fp_cache *c, centry *e, centry **rel)
{
    fp__htab_remove(&c->tab, &e->h);
    queue_unlink(c, e);
    c->bytes -= e->bytes;
    FP__HTAB_LIST_PUSH(rel, e, h);
}

static void release_list(centry *rel)
{
    while (rel) {
        centry *e = rel;
        rel = entry_of(e->h.next);
        fp_decref(e->obj);
        fp_free(e, sizeof *e);
    }
}

static inline int pinned(const centry *e)
{
    return fp_refcount(e->obj) > 1;
}

static centry *victim(fp_cache *c)
{
    if (c->policy == FP_CACHE_LRU) {
        for (centry *p = c->tail; p; p = p->prev)
            if (!pinned(p))
                return p;
        return NULL;
    }
    /* SIEVE: two sweeps at most (the first may only clear visited bits). */
    centry *p = c->hand ? c->hand : c->tail;
    for (size_t steps = 2 * c->tab.count + 1; steps && c->tab.count; steps--) {
        if (!p)
            p = c->tail;
        if (p->visited) {
            p->visited = 0;
        } else if (!pinned(p)) {
            c->hand = p->prev;
            return p;
        }
        p = p->prev;
    }
    c->hand = p;
    return NULL;
}

static inline int over(const fp_cache *c, size_t extra_entries, size_t extra_bytes)
{
    return (c->max_entries && c->tab.count + extra_entries > c->max_entries) ||
           (c->max_bytes && c->bytes + extra_bytes > c->max_bytes);
}

/* Evicts until `extra` more fits; returns whether it fits. Under the lock. */
static int make_room(fp_cache *c, size_t extra_entries, size_t extra_bytes, centry **rel,
                     unsigned *n)
{
    while (over(c, extra_entries, extra_bytes)) {
        centry *v = victim(c);
        if (!v)
            return 0;
        drop_entry(c, v, rel);
        c->evictions++;
        if (n)
            (*n)++;
    }
    return 1;
}

int fp_cache_new_at(const fp_cache_config *cfg, fp_cache **out, const char *file, int line,
                    const char *func)
{
    if (!out)
        return FP_EINVAL;
    *out = NULL;
    if (!cfg || (cfg->policy != FP_CACHE_SIEVE && cfg->policy != FP_CACHE_LRU))
        return FP_EINVAL;
    if (!cfg->max_bytes && !cfg->max_entries && !(cfg->flags & FP_CACHE_UNBOUNDED)) {
        fp_errmsg_set("cache '%s': max_bytes and max_entries are both 0 (set one, or pass "
                       "FP_CACHE_UNBOUNDED)",
                       cfg->name ? cfg->name : "cache");
        return FP_EINVAL;
    }
    fp__htab tab;
    if (fp__htab_init(&tab, INITIAL_BUCKETS_LOG2) != FP_OK)
        return FP_ENOMEM;
    fp_cache *c = fp__obj_new(&fp_cache_type, sizeof *c, sizeof *c, NULL, file, line, func);
    if (!c) {
        fp__htab_fini(&tab);
        return FP_ENOMEM;
    }
    c->tab = tab;
    snprintf(c->name, sizeof c->name, "%s", cfg->name ? cfg->name : "cache");
    c->max_bytes = cfg->max_bytes;
    c->max_entries = cfg->max_entries;
    c->policy = cfg->policy;
    c->flags = cfg->flags;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = c;
    return FP_OK;
}

static void cache_finalize(void *obj)
{
    fp_cache *c = obj;
    centry *rel = NULL;
    for (centry *e = c->head, *n; e; e = n) {
        n = e->next;
        FP__HTAB_LIST_PUSH(&rel, e, h);
    }
    c->head = c->tail = c->hand = NULL;
    c->bytes = 0;
    release_list(rel);
    fp__htab_fini(&c->tab);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

/* Put with the lock held; `e` is a preallocated entry (consumed on
 * success, left to the caller on failure). */
static int put_locked(fp_cache *c, uint64_t key, void *obj, size_t bytes, centry *e,
                      centry **rel, const char *file, int line, const char *func,
                      const void *ret)
{
    centry *old = find(c, key);
    if (old)
        drop_entry(c, old, rel);
    int fits = make_room(c, 1, bytes, rel, NULL);
    if (!fits && (c->flags & FP_CACHE_STRICT)) {
        c->rejected++;
        return FP_ELIMIT;
    }
    e->h.key = key;
    /* Recorded at the user's put, as the cache's own reference. */
    e->obj = fp__obj_ref_for(obj, file, line, func, ret, FP__REF_KEPT);
    e->bytes = bytes;
    e->visited = 0;
    fp__htab_insert(&c->tab, &e->h);
    queue_push_head(c, e);
    c->bytes += bytes;
    if (c->max_bytes && c->bytes > c->max_bytes && c->bytes - c->max_bytes > c->peak_over)
        c->peak_over = c->bytes - c->max_bytes;
    return FP_OK;
}

static void set_limit_msg(fp_cache *c, size_t bytes)
{
    fp_errmsg_set("cache '%s': cannot fit an entry of %zu bytes: max_bytes=%zu max_entries=%zu, "
                   "and the entries left are pinned (still referenced elsewhere); raise the "
                   "bounds, release the pinned objects, or drop FP_CACHE_STRICT to allow "
                   "overshoot",
                   c->name, bytes, c->max_bytes, c->max_entries);
}

int fp_cache_put_at(fp_cache *c, uint64_t key, void *obj, size_t bytes, const char *file,
                    int line, const char *func)
{
    if (!c || !obj)
        return FP_EINVAL;
    if (!bytes)
        bytes = fp_obj_bytes(obj);
    centry *e = fp_alloc(sizeof *e, sizeof(void *));
    if (!e)
        return FP_ENOMEM;
    centry *rel = NULL;
    pthread_mutex_lock(&c->mu);
    int rc = put_locked(c, key, obj, bytes, e, &rel, file, line, func,
                        __builtin_return_address(0));
    pthread_mutex_unlock(&c->mu);
    if (rc) {
        fp_free(e, sizeof *e);
        set_limit_msg(c, bytes);
    }
    release_list(rel);
    return rc;
}

/* Lookup with the lock held: +1 or NULL; counts the hit. */
static void *hit_locked(fp_cache *c, uint64_t key, const char *file, int line, const char *func,
                        const void *ret)
{
    centry *e = find(c, key);
    if (!e)
        return NULL;
    c->hits++;
    if (c->policy == FP_CACHE_SIEVE) {
        e->visited = 1;
    } else if (c->head != e) {
        queue_unlink(c, e);
        queue_push_head(c, e);
    }
    return fp__obj_ref_for(e->obj, file, line, func, ret, 0);
}

void *fp_cache_get_at(fp_cache *c, uint64_t key, const char *file, int line, const char *func)
{
    if (!c)
        return NULL;
    pthread_mutex_lock(&c->mu);
    void *r = hit_locked(c, key, file, line, func, __builtin_return_address(0));
    if (!r)
        c->misses++;
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* Leaves a load record under the lock; returns it when the caller must
 * free it (and release its object) after unlocking. */
static load_rec *load_leave(load_rec *ld)
{
    return --ld->refs == 0 ? ld : NULL;
}

static void load_free(load_rec *ld)
{
    if (!ld)
        return;
    if (ld->obj)
        fp_decref(ld->obj);
    fp_free(ld, sizeof *ld);
}

int fp_cache_get_or_load_at(fp_cache *c, uint64_t key, fp_cache_load_fn load, void *user,
                            void **out, const char *file, int line, const char *func)
{
    if (out)
        *out = NULL;
    if (!c || !load || !out)
        return FP_EINVAL;
    pthread_mutex_lock(&c->mu);
    void *r = hit_locked(c, key, file, line, func, __builtin_return_address(0));
    if (r) {
        pthread_mutex_unlock(&c->mu);
        *out = r;
        return FP_OK;
    }
    load_rec *ld = c->loading;
    while (ld && ld->key != key)
        ld = ld->next;
    if (ld) {
        c->waits++;
        ld->refs++;
        while (!ld->done)
            pthread_cond_wait(&c->cv, &c->mu);
        int rc = ld->rc;
        if (rc == FP_OK)
            *out = fp__obj_ref_for(ld->obj, file, line, func, __builtin_return_address(0), 0);
        load_rec *dead = load_leave(ld);
        pthread_mutex_unlock(&c->mu);
        load_free(dead);
        return rc;
    }
    c->misses++;
    /* Allocate the record and the entry now: after the load there must be
     * no allocation failure left to report to the waiters. */
    ld = fp_alloc(sizeof *ld, sizeof(void *));
    centry *e = ld ? fp_alloc(sizeof *e, sizeof(void *)) : NULL;
    if (!e) {
        pthread_mutex_unlock(&c->mu);
        if (ld)
            fp_free(ld, sizeof *ld);
        return FP_ENOMEM;
    }
    memset(ld, 0, sizeof *ld);
    ld->key = key;
    ld->refs = 1;
    ld->next = c->loading;
    c->loading = ld;
    pthread_mutex_unlock(&c->mu);

    void *obj = NULL;
    size_t bytes = 0;
    int rc = load(key, user, &obj, &bytes);
    if (rc == FP_OK && !obj)
        rc = FP_EUNKNOWN;
    if (rc != FP_OK && obj)
        fp_unref(&obj);
    if (rc > 0)
        rc = FP_EUNKNOWN; /* loaders return 0 or a negative code */
    if (rc == FP_OK && !bytes)
        bytes = fp_obj_bytes(obj);

    centry *rel = NULL;
    int put_rc = FP_OK;
    pthread_mutex_lock(&c->mu);
    if (rc == FP_OK)
        put_rc = put_locked(c, key, obj, bytes, e, &rel, file, line, func,
                            __builtin_return_address(0));
    else
        c->load_errors++;
    for (load_rec **l = &c->loading; *l; l = &(*l)->next) {
        if (*l == ld) {
            *l = ld->next;
            break;
        }
    }
    ld->done = 1;
    ld->rc = rc;
    ld->obj = obj; /* the loader's reference, now the record's */
    if (rc == FP_OK)
        *out = fp__obj_ref_for(obj, file, line, func, __builtin_return_address(0), 0);
    pthread_cond_broadcast(&c->cv);
    load_rec *dead = load_leave(ld);
    pthread_mutex_unlock(&c->mu);
    if (rc != FP_OK || put_rc != FP_OK) {
        fp_free(e, sizeof *e);
        if (put_rc != FP_OK)
            set_limit_msg(c, bytes);
    }
    load_free(dead);
    release_list(rel);
    return rc;
}

int fp_cache_remove(fp_cache *c, uint64_t key)
{
    if (!c)
        return FP_EINVAL;
    centry *rel = NULL;
    pthread_mutex_lock(&c->mu);
    centry *e = find(c, key);
    if (e)
        drop_entry(c, e, &rel);
    pthread_mutex_unlock(&c->mu);
    release_list(rel);
    return e ? FP_OK : FP_ENOENT;
}

void fp_cache_clear(fp_cache *c)
{
    if (!c)
        return;
    centry *rel = NULL;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->tab.nbuckets; i++)
        while (c->tab.buckets[i])
            drop_entry(c, entry_of(c->tab.buckets[i]), &rel);
    pthread_mutex_unlock(&c->mu);
    release_list(rel);
}

int fp_cache_trim(fp_cache *c)
{
    if (!c)
        return 0;
    centry *rel = NULL;
    unsigned n = 0;
    pthread_mutex_lock(&c->mu);
    make_room(c, 0, 0, &rel, &n);
    pthread_mutex_unlock(&c->mu);
    release_list(rel);
    return (int)n;
}

void fp_cache_get_stats(fp_cache *c, fp_cache_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    out->entries = c->tab.count;
    out->bytes = c->bytes;
    for (centry *e = c->head; e; e = e->next) {
        if (pinned(e)) {
            out->pinned_entries++;
            out->pinned_bytes += e->bytes;
        }
    }
    out->hits = c->hits;
    out->misses = c->misses;
    out->evictions = c->evictions;
    out->rejected = c->rejected;
    out->overshoot_bytes = c->max_bytes && c->bytes > c->max_bytes ? c->bytes - c->max_bytes : 0;
    out->overshoot_entries =
        c->max_entries && c->tab.count > c->max_entries ? c->tab.count - c->max_entries : 0;
    out->peak_overshoot_bytes = c->peak_over;
    out->load_waits = c->waits;
    out->load_errors = c->load_errors;
    out->max_bytes = c->max_bytes;
    out->max_entries = c->max_entries;
    out->policy = c->policy;
    pthread_mutex_unlock(&c->mu);
}

/* The plain entry points, for the ABI and for callers taking their address;
 * their references are recorded at framepool's own call. */
int(fp_cache_put)(fp_cache *c, uint64_t key, void *obj, size_t bytes)
{
    return fp_cache_put_at(c, key, obj, bytes, __FILE__, __LINE__, "fp_cache_put");
}

void *(fp_cache_get)(fp_cache *c, uint64_t key)
{
    return fp_cache_get_at(c, key, __FILE__, __LINE__, "fp_cache_get");
}

int(fp_cache_get_or_load)(fp_cache *c, uint64_t key, fp_cache_load_fn load, void *user,
                          void **out)
{
    return fp_cache_get_or_load_at(c, key, load, user, out, __FILE__, __LINE__,
                                   "fp_cache_get_or_load");
}
