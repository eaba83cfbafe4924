/* Reference-counted objects: the header, the count, and the release hooks.
 *
 * This is the bottom of the core. It knows the object header, the strong
 * count, the per-type counters (typestat.h) and a small table of hooks that
 * the modules above register into when they first need them: weak handles
 * and fp_on_free (weak.c), diagnostics tracking and reference history
 * (diag_track.c). It never calls those modules by name. */
#define _POSIX_C_SOURCE 200809L
#include "obj_priv.h"
#include "typestat.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* FP_DIAG is read by a constructor in diag_env.c. A static link
 * (libframepool.a) takes an archive member only when something refers to
 * it, and a program that never calls an fp_diag_* function would lose that
 * constructor (FP_DIAG=leaks=error silently off). Every program that makes
 * objects links this file, so it refers to diag_env.c here: one data
 * reference, nothing is called. */
extern const char fp__diag_env_linked;
__attribute__((used)) static const char *const diag_env_anchor = &fp__diag_env_linked;

/* ---- release hooks -------------------------------------------------------- */

static _Atomic(fp__obj_dying_hook) hook_dying;
static _Atomic(fp__obj_callbacks_hook) hook_callbacks;
static _Atomic(fp__obj_hook) hook_on_new;
static _Atomic(fp__obj_hook) hook_on_free;
static _Atomic(fp__obj_refs_hook) hook_refs;

void fp__obj_hook_weak(fp__obj_dying_hook dying, fp__obj_callbacks_hook run)
{
    atomic_store_explicit(&hook_dying, dying, memory_order_release);
    atomic_store_explicit(&hook_callbacks, run, memory_order_release);
}

void fp__obj_hook_tracking(fp__obj_hook on_new, fp__obj_hook on_free)
{
    if (on_free)
        atomic_store_explicit(&hook_on_free, on_free, memory_order_release);
    atomic_store_explicit(&hook_on_new, on_new, memory_order_release);
}

void fp__obj_hook_refs(fp__obj_refs_hook hook)
{
    atomic_store_explicit(&hook_refs, hook, memory_order_release);
}

/* The user's call site while framepool takes a reference for them through a
 * function pointer (fp__obj_acting_for). */
static _Thread_local struct {
    const char *file, *func;
    const void *ret;
    int line;
} acting_for;

void fp__obj_acting_for(const char *file, int line, const char *func, const void *ret)
{
    acting_for.file = file;
    acting_for.line = line;
    acting_for.func = func;
    acting_for.ret = ret;
}

/* Only objects flagged FP__OBJ_REFS get here: the flag is set by diag after
 * it registered the hook, so the hook is there. Out of line, so that the
 * ref and unref paths stay small. */
static __attribute__((noinline)) void record_ref(fp__obj *h, int delta, const char *file,
                                                 int line, const char *func, const void *ret,
                                                 unsigned how)
{
    if (!file && acting_for.file) {
        file = acting_for.file;
        line = acting_for.line;
        func = acting_for.func;
        ret = acting_for.ret;
    }
    fp__obj_refs_hook hook = atomic_load_explicit(&hook_refs, memory_order_acquire);
    if (hook)
        hook(h, delta, file, line, func, ret, how);
}

static inline int has_history(const fp__obj *h)
{
    return __builtin_expect(
        (atomic_load_explicit(&h->flags, memory_order_relaxed) & FP__OBJ_REFS) != 0, 0);
}

/* ---- frame ticks ------------------------------------------------------------ */

static _Atomic uint64_t frame_counter;

uint64_t fp_frame_tick(void)
{
    return atomic_fetch_add_explicit(&frame_counter, 1, memory_order_relaxed) + 1;
}

uint64_t fp_frame_now(void)
{
    return atomic_load_explicit(&frame_counter, memory_order_relaxed);
}

/* ---- objects ------------------------------------------------------------------ */

static void hdr_init(fp__obj *h, const char *file, int line, const char *func, int count)
{
    atomic_store_explicit(&h->refs, 1, memory_order_relaxed);
    h->file = file ? file : "?";
    h->line = line;
    h->func = func ? func : "?";
    h->birth = atomic_load_explicit(&frame_counter, memory_order_relaxed);
    h->magic = FP__OBJ_MAGIC;
    if (count)
        fp__typestat_count(h->ts, 1, (int64_t)atomic_load_explicit(&h->bytes, memory_order_relaxed));
    fp__obj_hook on_new = atomic_load_explicit(&hook_on_new, memory_order_acquire);
    if (on_new) /* diagnostics tracking: the one branch while it is off */
        on_new(h);
}

/* Inlined in each caller, so that `flags` is a constant there. */
static inline __attribute__((always_inline)) void *
obj_new(const fp_type *type, size_t payload, size_t charge, void (*dispose)(fp__obj *h),
        uint32_t flags, const char *file, int line, const char *func)
{
    if (!type || payload > SIZE_MAX - sizeof(fp__obj) - 64)
        return NULL;
    size_t total = sizeof(fp__obj) + payload;
    fp__obj *h = fp_alloc(total, 64);
    if (!h)
        return NULL;
    memset(h, 0, total);
    h->type = type;
    h->ts = fp__typestat_get(type); /* lock-free once the type has a record */
    atomic_init(&h->bytes, charge);
    h->alloc_size = total;
    h->dispose = dispose;
    atomic_init(&h->flags, flags);
    hdr_init(h, file, line, func, !(flags & FP__OBJ_POOLED));
    return fp__payload(h);
}

void *fp__obj_new(const fp_type *type, size_t payload, size_t charge,
                  void (*dispose)(fp__obj *h), const char *file, int line, const char *func)
{
    return obj_new(type, payload, charge, dispose, 0, file, line, func);
}

void *fp__obj_new_pooled(const fp_type *type, size_t payload, size_t charge,
                         void (*dispose)(fp__obj *h), const char *file, int line,
                         const char *func)
{
    return obj_new(type, payload, charge, dispose, FP__OBJ_POOLED, file, line, func);
}

void *fp_new_at(const fp_type *type, size_t size, const char *file, int line, const char *func)
{
    return obj_new(type, size, size, NULL, 0, file, line, func);
}

void fp__obj_revive(fp__obj *h, const char *file, int line, const char *func)
{
    atomic_store_explicit(&h->flags, FP__OBJ_POOLED, memory_order_relaxed);
    h->weak_slot = 0;
    hdr_init(h, file, line, func, 0);
}

int fp__obj_decref_unless_last(fp__obj *h)
{
    uint32_t c = atomic_load_explicit(&h->refs, memory_order_relaxed);
    while (c > 1) {
        /* Recorded before the count goes down, while this reference still
         * keeps the history alive; undone when it turns out to be the last. */
        int hist = has_history(h);
        if (hist)
            record_ref(h, -1, __FILE__, __LINE__, "fp__obj_decref_unless_last", NULL, 0);
        if (atomic_compare_exchange_weak_explicit(&h->refs, &c, c - 1, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return 1;
        if (hist)
            record_ref(h, +1, __FILE__, __LINE__, "fp__obj_decref_unless_last", NULL, 0);
    }
    return 0;
}

int fp__obj_try_ref_at(fp__obj *h, const char *file, int line, const char *func,
                       const void *ret)
{
    uint32_t r = atomic_load_explicit(&h->refs, memory_order_relaxed);
    while (r != 0) {
        if (atomic_compare_exchange_weak_explicit(&h->refs, &r, r + 1, memory_order_acquire,
                                                  memory_order_relaxed)) {
            if (has_history(h))
                record_ref(h, +1, file, line, func, ret, 0);
            return 1;
        }
    }
    return 0;
}

/* Debug builds keep recently freed small objects in a bounded quarantine
 * (header intact, magic set to DEAD) so that a double unref or a use after
 * the last release is reported with the type and creation site, instead of
 * touching memory that has been handed out again. */
#define QUARANTINE_SLOTS 256
#define QUARANTINE_MAX_OBJECT (1u << 20)
#define QUARANTINE_MAX_BYTES (8u << 20)

static pthread_mutex_t quarantine_lock = PTHREAD_MUTEX_INITIALIZER;
static fp__obj *quarantine[QUARANTINE_SLOTS];
static unsigned quarantine_next;
static size_t quarantine_bytes;

void fp__obj_atfork(int phase)
{
    if (phase == 0)
        pthread_mutex_lock(&quarantine_lock);
    else
        pthread_mutex_unlock(&quarantine_lock);
}

void fp__obj_quarantine_flush(void)
{
    pthread_mutex_lock(&quarantine_lock);
    for (unsigned i = 0; i < QUARANTINE_SLOTS; i++) {
        if (quarantine[i]) {
            fp_free(quarantine[i], quarantine[i]->alloc_size);
            quarantine[i] = NULL;
        }
    }
    quarantine_bytes = 0;
    pthread_mutex_unlock(&quarantine_lock);
}

void fp__obj_free_memory(fp__obj *h)
{
    h->magic = FP__OBJ_DEAD;
    if (!FP__DEBUG || h->alloc_size > QUARANTINE_MAX_OBJECT) {
        fp_free(h, h->alloc_size);
        return;
    }
    fp__obj *evict[QUARANTINE_SLOTS];
    unsigned n = 0;
    pthread_mutex_lock(&quarantine_lock);
    /* The ring is FIFO: quarantine_next is the oldest slot. */
    for (;;) {
        fp__obj *old = quarantine[quarantine_next];
        if (old) {
            quarantine_bytes -= old->alloc_size;
            quarantine[quarantine_next] = NULL;
            evict[n++] = old;
        }
        if (quarantine_bytes + h->alloc_size <= QUARANTINE_MAX_BYTES)
            break;
        quarantine_next = (quarantine_next + 1) % QUARANTINE_SLOTS;
    }
    quarantine[quarantine_next] = h;
    quarantine_bytes += h->alloc_size;
    quarantine_next = (quarantine_next + 1) % QUARANTINE_SLOTS;
    pthread_mutex_unlock(&quarantine_lock);
    for (unsigned i = 0; i < n; i++)
        fp_free(evict[i], evict[i]->alloc_size);
}

void fp__obj_charge(fp__obj *h, size_t bytes)
{
    /* An exchange: two threads changing the charge at once still leave the
     * counters matching the last value stored; readers (diagnostics) see
     * one value or the other. */
    size_t old = atomic_exchange_explicit(&h->bytes, bytes, memory_order_relaxed);
    fp__typestat_count(h->ts, 0, (int64_t)bytes - (int64_t)old);
}

_Noreturn void fp__obj_fatal(const fp__obj *h, const char *what)
{
    const char *tname = (h->type && h->type->name) ? h->type->name : "(unnamed)";
    fprintf(stderr,
            "framepool: %s: object %p of type '%s' created at %s:%d (%s)\n"
            "framepool: this is a reference-counting bug in the caller (a reference dropped "
            "twice, or used after its last release)\n",
            what, fp__payload(h), tname, h->file ? h->file : "?", h->line,
            h->func ? h->func : "?");
    fflush(stderr);
    abort();
}

static __attribute__((noinline, cold)) _Noreturn void not_live(const fp__obj *h,
                                                                   const char *what)
{
    if (h->magic == FP__OBJ_DEAD)
        fp__obj_fatal(h, what);
    fprintf(stderr, "framepool: %s: %p is not a framepool object (or its memory was freed "
                    "and reused)\n",
            what, fp__payload(h));
    fflush(stderr);
    abort();
}

/* Every build checks the marker before touching the count: one compare on a
 * cache line the count shares. */
static inline void check_live(const fp__obj *h, const char *what)
{
    if (__builtin_expect(h->magic != FP__OBJ_MAGIC, 0))
        not_live(h, what);
}

static inline __attribute__((always_inline)) void *
ref_for(void *obj, const char *file, int line, const char *func, const void *ret, unsigned how)
{
    if (!obj)
        return NULL;
    fp__obj *h = fp__hdr(obj);
    check_live(h, "fp_ref");
    uint32_t old = atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
    if (__builtin_expect(old == 0, 0)) {
        atomic_fetch_sub_explicit(&h->refs, 1, memory_order_relaxed);
        fp__obj_fatal(h, "fp_ref on an object whose last reference was already dropped");
    }
    if (has_history(h))
        record_ref(h, +1, file, line, func, ret, how);
    return obj;
}

void *fp_ref_at(void *obj, const char *file, int line, const char *func)
{
    return ref_for(obj, file, line, func, __builtin_return_address(0), 0);
}

void *fp__obj_ref_for(void *obj, const char *file, int line, const char *func, const void *ret,
                      unsigned how)
{
    return ref_for(obj, file, line, func, ret, how);
}

void *(fp_ref)(void *obj)
{
    return fp_ref_at(obj, NULL, 0, NULL);
}

/* The flags say which hooks an object needs; a module sets its flag only
 * after registering its hook, and the acq_rel count decrement orders that
 * before this last release. */
static void last_release(fp__obj *h)
{
    fp__onfree *cbs = NULL;
    uint32_t flags = atomic_load_explicit(&h->flags, memory_order_relaxed);
    if (flags & (FP__OBJ_WEAK | FP__OBJ_ONFREE))
        cbs = atomic_load_explicit(&hook_dying, memory_order_acquire)(h);
    if (h->type->finalize)
        h->type->finalize(fp__payload(h));
    if (!(flags & FP__OBJ_POOLED)) /* a pooled image: its pool counts the release */
        fp__typestat_count(h->ts, -1,
                           -(int64_t)atomic_load_explicit(&h->bytes, memory_order_relaxed));
    if (flags & FP__OBJ_TRACKED)
        atomic_load_explicit(&hook_on_free, memory_order_acquire)(h);
    if (cbs)
        atomic_load_explicit(&hook_callbacks, memory_order_acquire)(cbs);
    if (h->dispose)
        h->dispose(h);
    else
        fp__obj_free_memory(h);
}

void fp_decref_at(void *obj, const char *file, int line, const char *func)
{
    if (!obj)
        return;
    fp__obj *h = fp__hdr(obj);
    check_live(h, "fp_unref");
    if (has_history(h)) /* before the decrement: the history lives while we hold this */
        record_ref(h, -1, file, line, func, NULL, 0);
    /* acq_rel: the last releaser sees every write made under other references
     * (a standalone acquire fence would do, but ThreadSanitizer cannot see it). */
    uint32_t old = atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel);
    if (old == 1) {
        last_release(h);
    } else if (old == 0) {
        atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
        fp__obj_fatal(h, "fp_unref of an object whose last reference was already dropped");
    }
}

void (fp_decref)(void *obj)
{
    fp_decref_at(obj, NULL, 0, NULL);
}

void fp_unref_at(void *pobj, const char *file, int line, const char *func)
{
    if (!pobj)
        return;
    void *obj;
    memcpy(&obj, pobj, sizeof obj);
    if (!obj)
        return;
    void *null = NULL;
    memcpy(pobj, &null, sizeof null);
    fp_decref_at(obj, file, line, func);
}

void (fp_unref)(void *pobj)
{
    fp_unref_at(pobj, NULL, 0, NULL);
}

uint32_t fp_refcount(const void *obj)
{
    if (!obj)
        return 0;
    return atomic_load_explicit(&fp__hdr(obj)->refs, memory_order_acquire);
}

const fp_type *fp_type_of(const void *obj)
{
    return obj ? fp__hdr(obj)->type : NULL;
}

size_t fp_obj_bytes(const void *obj)
{
    return obj ? atomic_load_explicit(&fp__hdr(obj)->bytes, memory_order_relaxed) : 0;
}

void fp_obj_set_bytes(void *obj, size_t bytes)
{
    if (obj)
        fp__obj_charge(fp__hdr(obj), bytes);
}

void fp_obj_site(const void *obj, const char **file, int *line, const char **func)
{
    const fp__obj *h = obj ? fp__hdr(obj) : NULL;
    if (file)
        *file = h ? h->file : NULL;
    if (line)
        *line = h ? h->line : 0;
    if (func)
        *func = h ? h->func : NULL;
}

uint64_t fp_obj_birth(const void *obj)
{
    return obj ? fp__hdr(obj)->birth : 0;
}
