/* Weak handles and fp_on_free callbacks.
 *
 * The slot table: slots live in chunks of SLOT_CHUNK that are allocated on
 * demand and never freed or moved, so a slot's address stays valid forever
 * and fp_weak_get can look at any slot index it is given without a global
 * lock. A slot holds {generation, object, callback list}; its fields are
 * guarded by one of STRIPES mutexes chosen by slot index. An object's
 * header field weak_slot (0 = none) is assigned under one of STRIPES
 * "assign" mutexes chosen by object address. Free slots form a LIFO list
 * under free_mu.
 *
 * Lock order: assign stripe -> slot stripe -> free_mu. No user code runs
 * with any of them held.
 *
 * The upgrade race: fp_weak_get holds the slot's stripe while it checks the
 * generation and adds a reference only if the count is still above zero
 * (fp__obj_try_ref). The last release first takes the count to zero, then
 * (weak_dying) takes the same stripe to bump the generation and clear
 * the pointer, and only later frees or recycles the memory. So an upgrade
 * either got its reference before the count reached zero (then it was not
 * the last release), or it sees zero and fails, or it sees a new
 * generation; the object's memory is valid throughout, because it cannot be
 * freed before weak_dying has taken the stripe.
 */
#define _POSIX_C_SOURCE 200809L
#include "framepool/weak.h"
#include "weak_priv.h"

#include <pthread.h>
#include <string.h>

#ifndef FP_WEAK_GEN_BITS
#define FP_WEAK_GEN_BITS 32
#endif
#if FP_WEAK_GEN_BITS < 1 || FP_WEAK_GEN_BITS > 32
#error "FP_WEAK_GEN_BITS must be 1..32"
#endif

#define SLOT_CHUNK_LOG2 12
#define SLOT_CHUNK (1u << SLOT_CHUNK_LOG2)
#define MAX_CHUNKS (FP_WEAK_MAX_SLOTS / SLOT_CHUNK)
#define STRIPES 64 /* power of two */

struct fp__onfree {
    fp__onfree *next, *prev;
    void (*cb)(void *user);
    void *user;
};

typedef struct slot {
    uint32_t gen;        /* under its stripe */
    uint32_t next_free;  /* under free_mu */
    fp__obj *obj;        /* under its stripe; NULL when free, retired or dead */
    fp__onfree *cbs;     /* under its stripe: registration order */
} slot;

typedef struct {
    pthread_mutex_t mu;
    char pad[64 - sizeof(pthread_mutex_t) % 64];
} padded_mutex;

static _Atomic(slot *) chunks[MAX_CHUNKS];
static padded_mutex slot_mu[STRIPES];
static padded_mutex assign_mu[STRIPES];
static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;

static pthread_mutex_t free_mu = PTHREAD_MUTEX_INITIALIZER;
static uint32_t free_head;       /* 0 = empty */
static uint32_t next_unused = 1; /* slot 0 is never used: a handle is never 0 */
static uint32_t n_chunks;
static uint64_t n_free, n_used, n_retired, n_deaths;
static _Atomic uint64_t n_callbacks;

static _Atomic uint32_t gen_max =
    FP_WEAK_GEN_BITS >= 32 ? UINT32_MAX : (uint32_t)((1ull << FP_WEAK_GEN_BITS) - 1);
static _Atomic unsigned gen_bits = FP_WEAK_GEN_BITS;

static fp__onfree *weak_dying(fp__obj *h);
static void weak_run_callbacks(fp__onfree *list);

/* Runs once, before any object gets a weak slot or a callback (every path
 * that sets FP__OBJ_WEAK or FP__OBJ_ONFREE passes here first): it also
 * registers this module's hooks with the object layer. */
static void stripes_init(void)
{
    for (int i = 0; i < STRIPES; i++) {
        pthread_mutex_init(&slot_mu[i].mu, NULL);
        pthread_mutex_init(&assign_mu[i].mu, NULL);
    }
    fp__obj_hook_weak(weak_dying, weak_run_callbacks);
}

static inline pthread_mutex_t *slot_lock_of(uint32_t idx)
{
    return &slot_mu[idx & (STRIPES - 1)].mu;
}

static inline pthread_mutex_t *assign_lock_of(const fp__obj *h)
{
    uint64_t v = (uint64_t)(uintptr_t)h;
    v = (v >> 6) * 0x9e3779b97f4a7c15ull;
    return &assign_mu[v >> 58].mu; /* top 6 bits: STRIPES == 64 */
}

_Static_assert(STRIPES == 64, "assign_lock_of takes the top 6 bits");

/* Returns the slot of a valid index (its chunk exists). */
static inline slot *slot_at(uint32_t idx)
{
    slot *c = atomic_load_explicit(&chunks[idx >> SLOT_CHUNK_LOG2], memory_order_acquire);
    return c ? &c[idx & (SLOT_CHUNK - 1)] : NULL;
}

/* Takes a free slot (its fields belong to the caller until it is
 * published through an object's weak_slot). */
static int slot_take(uint32_t *out)
{
    pthread_mutex_lock(&free_mu);
    uint32_t idx = free_head;
    if (idx) {
        free_head = slot_at(idx)->next_free;
        n_free--;
    } else {
        if (next_unused >= FP_WEAK_MAX_SLOTS) {
            pthread_mutex_unlock(&free_mu);
            fp_errmsg_set("weak handles: %u objects already have weak slots "
                           "(FP_WEAK_MAX_SLOTS)",
                           (unsigned)FP_WEAK_MAX_SLOTS);
            return FP_ELIMIT;
        }
        idx = next_unused;
        uint32_t ci = idx >> SLOT_CHUNK_LOG2;
        if (ci >= n_chunks) {
            slot *c = fp_alloc(sizeof(slot) * SLOT_CHUNK, 64);
            if (!c) {
                pthread_mutex_unlock(&free_mu);
                return FP_ENOMEM;
            }
            memset(c, 0, sizeof(slot) * SLOT_CHUNK);
            atomic_store_explicit(&chunks[ci], c, memory_order_release);
            n_chunks = ci + 1;
        }
        next_unused++;
    }
    n_used++;
    pthread_mutex_unlock(&free_mu);
    *out = idx;
    return FP_OK;
}

/* Gives the slot of `h` (taking one if needed) and sets `flag` on h. Called
 * with a strong reference held. */
static int ensure_slot(fp__obj *h, uint32_t flag, uint32_t *idx_out, uint32_t *gen_out)
{
    if (atomic_load_explicit(&h->refs, memory_order_relaxed) == 0) {
        fp_errmsg_set("weak handle or on-free callback for an object whose last reference "
                       "is gone (called from its finalizer or after fp_unref?)");
        return FP_EINVAL;
    }
    pthread_once(&stripes_once, stripes_init);
    pthread_mutex_t *am = assign_lock_of(h);
    pthread_mutex_lock(am);
    uint32_t idx = h->weak_slot;
    slot *s;
    if (!idx) {
        int rc = slot_take(&idx);
        if (rc) {
            pthread_mutex_unlock(am);
            return rc;
        }
        s = slot_at(idx);
        pthread_mutex_t *sm = slot_lock_of(idx);
        pthread_mutex_lock(sm);
        s->obj = h;
        pthread_mutex_unlock(sm);
        h->weak_slot = idx;
    } else {
        s = slot_at(idx);
    }
    /* The generation only changes when this object dies, which cannot
     * happen while the caller holds a reference: no stripe needed. */
    uint32_t gen = s->gen;
    atomic_fetch_or_explicit(&h->flags, flag, memory_order_relaxed);
    pthread_mutex_unlock(am);
    *idx_out = idx;
    *gen_out = gen;
    return FP_OK;
}

static inline fp_weak make_handle(uint32_t idx, uint32_t gen)
{
    fp_weak w = {((uint64_t)idx << 32) | gen};
    return w;
}

int fp_weak_create(void *obj, fp_weak *out)
{
    if (!out)
        return FP_EINVAL;
    out->id = 0;
    if (!obj)
        return FP_EINVAL;
    uint32_t idx, gen;
    int rc = ensure_slot(fp__hdr(obj), FP__OBJ_WEAK, &idx, &gen);
    if (rc)
        return rc;
    *out = make_handle(idx, gen);
    return FP_OK;
}

fp_weak fp_weak_of(void *obj)
{
    fp_weak w = {0};
    fp_weak_create(obj, &w);
    return w;
}

/* Locks and returns the slot a handle names, or NULL (nothing locked). */
static slot *lock_handle(uint64_t id, pthread_mutex_t **mu)
{
    uint32_t idx = (uint32_t)(id >> 32);
    if (idx == 0 || idx >= FP_WEAK_MAX_SLOTS)
        return NULL;
    slot *s = slot_at(idx);
    if (!s)
        return NULL;
    pthread_once(&stripes_once, stripes_init);
    *mu = slot_lock_of(idx);
    pthread_mutex_lock(*mu);
    if (s->gen != (uint32_t)id || !s->obj) {
        pthread_mutex_unlock(*mu);
        return NULL;
    }
    return s;
}

void *fp__weak_get_for(fp_weak w, const char *file, int line, const char *func,
                       const void *ret)
{
    pthread_mutex_t *mu;
    slot *s = lock_handle(w.id, &mu);
    if (!s)
        return NULL;
    fp__obj *h = s->obj;
    void *r = fp__obj_try_ref_at(h, file, line, func, ret) ? fp__payload(h) : NULL;
    pthread_mutex_unlock(mu);
    return r;
}

int fp_weak_alive(fp_weak w)
{
    pthread_mutex_t *mu;
    slot *s = lock_handle(w.id, &mu);
    if (!s)
        return 0;
    int alive = atomic_load_explicit(&s->obj->refs, memory_order_relaxed) > 0;
    pthread_mutex_unlock(mu);
    return alive;
}

uint64_t fp__weak_peek(const fp__obj *h)
{
    pthread_once(&stripes_once, stripes_init);
    pthread_mutex_t *am = assign_lock_of(h);
    pthread_mutex_lock(am);
    uint32_t idx = h->weak_slot;
    uint64_t id = idx ? make_handle(idx, slot_at(idx)->gen).id : 0;
    pthread_mutex_unlock(am);
    return id;
}

/* ---- free callbacks ------------------------------------------------------------ */

int fp__onfree_add(fp__obj *h, void (*cb)(void *user), void *user, fp__onfree **node_out,
                   uint64_t *id_out)
{
    fp__onfree *n = fp_alloc(sizeof *n, sizeof(void *));
    if (!n)
        return FP_ENOMEM;
    n->cb = cb;
    n->user = user;
    n->next = NULL;
    uint32_t idx, gen;
    int rc = ensure_slot(h, FP__OBJ_ONFREE, &idx, &gen);
    if (rc) {
        fp_free(n, sizeof *n);
        return rc;
    }
    slot *s = slot_at(idx);
    pthread_mutex_t *mu = slot_lock_of(idx);
    pthread_mutex_lock(mu);
    /* Append: the list is circular through prev of the head (head->prev is
     * the tail) so that appending is O(1) and order is kept. */
    if (!s->cbs) {
        n->prev = n;
        s->cbs = n;
    } else {
        fp__onfree *tail = s->cbs->prev;
        tail->next = n;
        n->prev = tail;
        s->cbs->prev = n;
    }
    pthread_mutex_unlock(mu);
    atomic_fetch_add_explicit(&n_callbacks, 1, memory_order_relaxed);
    if (node_out)
        *node_out = n;
    if (id_out)
        *id_out = make_handle(idx, gen).id;
    return FP_OK;
}

static void list_unlink(slot *s, fp__onfree *n)
{
    if (n == s->cbs) {
        s->cbs = n->next;
        if (s->cbs)
            s->cbs->prev = n->prev;
    } else {
        n->prev->next = n->next;
        if (n->next)
            n->next->prev = n->prev;
        else
            s->cbs->prev = n->prev;
    }
}

int fp__onfree_cancel(uint64_t id, fp__onfree *node)
{
    pthread_mutex_t *mu;
    slot *s = lock_handle(id, &mu);
    if (!s)
        return 0; /* the object is dying: its callbacks were detached and will run */
    list_unlink(s, node);
    pthread_mutex_unlock(mu);
    atomic_fetch_sub_explicit(&n_callbacks, 1, memory_order_relaxed);
    fp_free(node, sizeof *node);
    return 1;
}

int fp_on_free(void *obj, void (*cb)(void *user), void *user)
{
    if (!obj || !cb)
        return FP_EINVAL;
    return fp__onfree_add(fp__hdr(obj), cb, user, NULL, NULL);
}

int fp_on_free_cancel(void *obj, void (*cb)(void *user), void *user)
{
    if (!obj || !cb)
        return FP_EINVAL;
    uint64_t id = fp__weak_peek(fp__hdr(obj));
    if (!id)
        return FP_ENOENT;
    pthread_mutex_t *mu;
    slot *s = lock_handle(id, &mu);
    if (!s)
        return FP_ENOENT;
    fp__onfree *n = s->cbs;
    while (n && !(n->cb == cb && n->user == user))
        n = n->next;
    if (n)
        list_unlink(s, n);
    pthread_mutex_unlock(mu);
    if (!n)
        return FP_ENOENT;
    atomic_fetch_sub_explicit(&n_callbacks, 1, memory_order_relaxed);
    fp_free(n, sizeof *n);
    return FP_OK;
}

/* ---- the object layer's hooks ---------------------------------------------------- */

/* The object layer's dying hook: called on the last release of an object
 * with FP__OBJ_WEAK or FP__OBJ_ONFREE set, before its finalizer runs.
 * Invalidates its weak handles and returns its fp_on_free callbacks, which
 * the object layer runs (weak_run_callbacks) after finalizing. */
static fp__onfree *weak_dying(fp__obj *h)
{
    pthread_once(&stripes_once, stripes_init);
    pthread_mutex_t *am = assign_lock_of(h);
    pthread_mutex_lock(am);
    uint32_t idx = h->weak_slot;
    h->weak_slot = 0;
    pthread_mutex_unlock(am);
    if (!idx)
        return NULL;
    slot *s = slot_at(idx);
    pthread_mutex_t *mu = slot_lock_of(idx);
    pthread_mutex_lock(mu);
    fp__onfree *list = s->cbs;
    s->cbs = NULL;
    s->obj = NULL;
    int retire = s->gen >= atomic_load_explicit(&gen_max, memory_order_relaxed);
    if (!retire)
        s->gen++;
    pthread_mutex_unlock(mu);

    pthread_mutex_lock(&free_mu);
    n_used--;
    n_deaths++;
    if (retire) {
        n_retired++;
    } else {
        s->next_free = free_head;
        free_head = idx;
        n_free++;
    }
    pthread_mutex_unlock(&free_mu);
    return list;
}

static void weak_run_callbacks(fp__onfree *list)
{
    while (list) {
        fp__onfree *n = list;
        list = n->next;
        void (*cb)(void *) = n->cb;
        void *user = n->user;
        fp_free(n, sizeof *n);
        atomic_fetch_sub_explicit(&n_callbacks, 1, memory_order_relaxed);
        cb(user);
    }
}

/* ---- statistics and test hooks ------------------------------------------------------ */

void fp_weak_get_stats(fp_weak_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&free_mu);
    out->slots_capacity = (uint64_t)n_chunks * SLOT_CHUNK;
    out->slots_used = n_used;
    out->slots_free = n_free;
    out->slots_retired = n_retired;
    out->deaths = n_deaths;
    pthread_mutex_unlock(&free_mu);
    out->callbacks = atomic_load_explicit(&n_callbacks, memory_order_relaxed);
    out->gen_bits = atomic_load_explicit(&gen_bits, memory_order_relaxed);
}

unsigned fp__weak_set_gen_bits(unsigned bits)
{
    unsigned old = atomic_load_explicit(&gen_bits, memory_order_relaxed);
    if (bits < 1 || bits > 32)
        bits = FP_WEAK_GEN_BITS;
    atomic_store_explicit(&gen_bits, bits, memory_order_relaxed);
    atomic_store_explicit(&gen_max, bits >= 32 ? UINT32_MAX : (uint32_t)((1ull << bits) - 1),
                          memory_order_relaxed);
    return old;
}

void *fp_weak_get_at(fp_weak w, const char *file, int line, const char *func)
{
    return fp__weak_get_for(w, file, line, func, __builtin_return_address(0));
}

void *(fp_weak_get)(fp_weak w)
{
    return fp__weak_get_for(w, __FILE__, __LINE__, "fp_weak_get", NULL);
}
