/* Reference-counted objects and per-type statistics. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- per-type statistics --------------------------------------------------
 * A fixed open-addressing table keyed by the fp_type pointer: lookups are
 * lock-free (types are never removed), inserts take a mutex. The table is
 * bounded; types beyond its capacity share one overflow record. */

/* Counting is per thread: creating or releasing an object adds to plain
 * counters in the calling thread's own block (relaxed loads and stores, no
 * locked instruction, no shared cache line), and a statistics read sums the
 * blocks of every thread under a mutex. A thread's block is folded into the
 * type's shared totals when the thread exits. (A live count, rather than
 * created - freed, keeps one thread's live count a single word that a
 * reader sees at one instant.)
 * Types past the per-thread capacity, and threads that are exiting, use the
 * shared totals directly (atomic adds).
 *
 * Pooled images (FP__OBJ_POOLED) are not counted here at all: their pool
 * already counts them under its lock on every acquire and release (pool.c),
 * and a read of the fp_image statistics adds every pool's figures (and the
 * creations of pools that are gone) to the counts of the other images.
 *
 * Peaks are the highest totals seen by a statistics read: every read raises
 * the type's peak to the live count and bytes it has just summed. */
struct fp__typestat {
    _Atomic(const fp_type *) type;
    unsigned slot; /* index in the per-thread blocks; TLS_SLOTS = none */
    _Atomic int64_t live;
    _Atomic int64_t live_bytes;
    _Atomic uint64_t created;
    _Atomic uint64_t peak;
    _Atomic uint64_t peak_bytes;
};

#define TLS_SLOTS 256         /* types counted per thread (8 KiB of TLS per thread) */
#define TYPE_TABLE_SIZE 1024 /* power of two */
#define TYPE_TABLE_MAX 768   /* keep the table at most 3/4 full */

static fp__typestat type_table[TYPE_TABLE_SIZE];
static fp__typestat *type_order[TYPE_TABLE_MAX];
static _Atomic unsigned type_count;
static pthread_mutex_t type_lock = PTHREAD_MUTEX_INITIALIZER;
static const fp_type overflow_type = {"(other types)", NULL};
static fp__typestat overflow_stat = {.type = &overflow_type, .slot = TLS_SLOTS};

static size_t type_hash(const fp_type *t)
{
    uintptr_t v = (uintptr_t)t;
    v ^= v >> 17;
    v *= 0x9e3779b97f4a7c15ull;
    return (size_t)(v >> 40) & (TYPE_TABLE_SIZE - 1);
}

static inline fp__typestat *typestat_find(const fp_type *type)
{
    size_t i = type_hash(type);
    for (;;) {
        const fp_type *k = atomic_load_explicit(&type_table[i].type, memory_order_acquire);
        if (k == type)
            return &type_table[i];
        if (k == NULL)
            return NULL;
        i = (i + 1) & (TYPE_TABLE_SIZE - 1);
    }
}

fp__typestat *fp__typestat_get(const fp_type *type)
{
    fp__typestat *s = typestat_find(type);
    if (s)
        return s;
    pthread_mutex_lock(&type_lock);
    s = typestat_find(type);
    if (!s) {
        unsigned n = atomic_load_explicit(&type_count, memory_order_relaxed);
        if (n >= TYPE_TABLE_MAX) {
            s = &overflow_stat;
        } else {
            size_t i = type_hash(type);
            while (atomic_load_explicit(&type_table[i].type, memory_order_relaxed) != NULL)
                i = (i + 1) & (TYPE_TABLE_SIZE - 1);
            s = &type_table[i];
            s->slot = n < TLS_SLOTS ? n : TLS_SLOTS;
            type_order[n] = s;
            atomic_store_explicit(&s->type, type, memory_order_release);
            atomic_store_explicit(&type_count, n + 1, memory_order_release);
        }
    }
    pthread_mutex_unlock(&type_lock);
    return s;
}

static void raise_peak(_Atomic uint64_t *peak, uint64_t v)
{
    uint64_t p = atomic_load_explicit(peak, memory_order_relaxed);
    while (v > p &&
           !atomic_compare_exchange_weak_explicit(peak, &p, v, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

/* One type's counts in one thread: a create or release touches one line. */
typedef struct tls_slot {
    _Atomic int64_t live;
    _Atomic int64_t bytes;
    _Atomic uint64_t created;
    uint64_t pad_;
} tls_slot;

typedef struct tls_counts {
    tls_slot slot[TLS_SLOTS];
    struct tls_counts *prev, *next;
} tls_counts;

enum { TLS_NEW = 0, TLS_ACTIVE = 1, TLS_RETIRED = 2 };
static _Thread_local tls_counts tls_block;
/* The hot path reads only this pointer: &tls_block while the thread is
 * registered, NULL before and after. (Not initial-exec: a module with an
 * initial-exec variable needs all its TLS, tls_block included, in the static
 * TLS block, and then dlopen of the shared library fails.) */
static _Thread_local tls_counts *tls_mine;
static _Thread_local int tls_state;
static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static tls_counts *tls_list;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_key_ok;

/* Thread exit: move this thread's counts into the shared totals. */
static void tls_retire(void *arg)
{
    tls_counts *c = arg;
    tls_mine = NULL; /* objects released later in this thread count shared */
    tls_state = TLS_RETIRED;
    pthread_mutex_lock(&tls_lock);
    unsigned n = atomic_load_explicit(&type_count, memory_order_acquire);
    for (unsigned i = 0; i < n && i < TLS_SLOTS; i++) {
        fp__typestat *s = type_order[i];
        tls_slot *t = &c->slot[i];
        atomic_fetch_add_explicit(&s->live, atomic_load_explicit(&t->live, memory_order_relaxed),
                                  memory_order_relaxed);
        atomic_fetch_add_explicit(&s->live_bytes,
                                  atomic_load_explicit(&t->bytes, memory_order_relaxed),
                                  memory_order_relaxed);
        atomic_fetch_add_explicit(&s->created,
                                  atomic_load_explicit(&t->created, memory_order_relaxed),
                                  memory_order_relaxed);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        tls_list = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&tls_lock);
}

static void tls_key_init(void)
{
    tls_key_ok = pthread_key_create(&tls_key, tls_retire) == 0;
}

/* Returns the calling thread's block, registering the thread on its first
 * count; NULL when the thread counts in the shared totals (exiting, or the
 * registration failed). */
static tls_counts *tls_register(void)
{
    if (tls_state != TLS_NEW)
        return NULL;
    pthread_once(&tls_once, tls_key_init);
    if (!tls_key_ok || pthread_setspecific(tls_key, &tls_block) != 0) {
        tls_state = TLS_RETIRED;
        return NULL;
    }
    pthread_mutex_lock(&tls_lock);
    tls_block.prev = NULL;
    tls_block.next = tls_list;
    if (tls_list)
        tls_list->prev = &tls_block;
    tls_list = &tls_block;
    pthread_mutex_unlock(&tls_lock);
    tls_state = TLS_ACTIVE;
    tls_mine = &tls_block;
    return &tls_block;
}

static inline void tls_add(_Atomic uint64_t *c, uint64_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static inline void tls_add_signed(_Atomic int64_t *c, int64_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static _Atomic int counting = 1;

void fp__obj_set_counting(int on)
{
    atomic_store_explicit(&counting, on != 0, memory_order_relaxed);
}

/* Counts in the shared totals (atomic adds). */
static void shared_count(fp__typestat *s, int delta, int64_t bytes)
{
    if (delta)
        atomic_fetch_add_explicit(&s->live, delta, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->live_bytes, bytes, memory_order_relaxed);
    if (delta > 0)
        atomic_fetch_add_explicit(&s->created, 1, memory_order_relaxed);
}

static inline __attribute__((always_inline)) void tls_count(tls_slot *t, int delta, int64_t bytes)
{
    if (delta)
        tls_add_signed(&t->live, delta);
    tls_add_signed(&t->bytes, bytes);
    if (delta > 0)
        tls_add(&t->created, 1);
}

/* The first count of a thread (registers it), counts of an exiting thread
 * and of types past the per-thread capacity: out of the hot path. */
static __attribute__((noinline, cold)) void typestat_count_slow(fp__typestat *s, int delta,
                                                                 int64_t bytes)
{
    tls_counts *c = tls_mine ? tls_mine : tls_register();
    if (c && s->slot < TLS_SLOTS)
        tls_count(&c->slot[s->slot], delta, bytes);
    else
        shared_count(s, delta, bytes);
}

/* delta: +1 a creation, -1 a release, 0 a change of charge only. Inlined,
 * so that each call site keeps only its own two counter updates. */
static inline __attribute__((always_inline)) void typestat_count(fp__typestat *s, int delta,
                                                                 int64_t bytes)
{
    if (!atomic_load_explicit(&counting, memory_order_relaxed))
        return;
    tls_counts *c = tls_mine;
    unsigned slot = s->slot;
    if (__builtin_expect(c != NULL && slot < TLS_SLOTS, 1))
        tls_count(&c->slot[slot], delta, bytes);
    else
        typestat_count_slow(s, delta, bytes);
}

static void typestat_add(fp__typestat *s, size_t bytes)
{
    typestat_count(s, 1, (int64_t)bytes);
}

static void typestat_sub(fp__typestat *s, size_t bytes)
{
    typestat_count(s, -1, -(int64_t)bytes);
}

/* The record pooled images are charged to (fp_image's), once one exists. */
static _Atomic(fp__typestat *) pooled_ts;

/* Figures counted outside the per-type counters (pooled images). */
typedef struct extra_counts {
    uint64_t live, bytes, created;
} extra_counts;

/* Sums a type's counts over the shared totals, every thread's block and
 * `extra`; tls_lock held. Raises the peaks to what it finds. */
static void typestat_fill_locked(fp__typestat *s, const fp_type *t, const extra_counts *extra,
                                 fp_type_stats *out)
{
    int64_t live = atomic_load_explicit(&s->live, memory_order_relaxed);
    int64_t bytes = atomic_load_explicit(&s->live_bytes, memory_order_relaxed);
    uint64_t created = atomic_load_explicit(&s->created, memory_order_relaxed);
    if (s->slot < TLS_SLOTS) {
        for (tls_counts *c = tls_list; c; c = c->next) {
            const tls_slot *ts = &c->slot[s->slot];
            live += atomic_load_explicit(&ts->live, memory_order_relaxed);
            bytes += atomic_load_explicit(&ts->bytes, memory_order_relaxed);
            created += atomic_load_explicit(&ts->created, memory_order_relaxed);
        }
    }
    live += (int64_t)extra->live;
    bytes += (int64_t)extra->bytes;
    created += extra->created;
    out->name = t->name ? t->name : "(unnamed)";
    /* A thread may release an object another thread counted a moment ago. */
    out->live = live > 0 ? (uint64_t)live : 0;
    out->live_bytes = bytes > 0 ? (uint64_t)bytes : 0;
    out->created = created;
    raise_peak(&s->peak, out->live);
    raise_peak(&s->peak_bytes, out->live_bytes);
    out->peak = atomic_load_explicit(&s->peak, memory_order_relaxed);
    out->peak_bytes = atomic_load_explicit(&s->peak_bytes, memory_order_relaxed);
}

static void typestat_fill(fp__typestat *s, const fp_type *t, fp_type_stats *out)
{
    extra_counts extra = {0, 0, 0};
    /* Pools first, outside tls_lock (pool.c takes its own locks): the two
     * sets are disjoint, a pooled image is never in a thread's block. */
    if (s == atomic_load_explicit(&pooled_ts, memory_order_acquire))
        fp__pool_image_counts(&extra.live, &extra.bytes, &extra.created);
    pthread_mutex_lock(&tls_lock);
    typestat_fill_locked(s, t, &extra, out);
    pthread_mutex_unlock(&tls_lock);
}

int fp_type_get_stats(const fp_type *type, fp_type_stats *out)
{
    if (!type || !out)
        return FP_EINVAL;
    memset(out, 0, sizeof *out);
    fp__typestat *s = typestat_find(type);
    if (!s) {
        out->name = type->name ? type->name : "(unnamed)";
        return FP_ENOENT;
    }
    typestat_fill(s, type, out);
    return FP_OK;
}

int fp_type_foreach(int (*fn)(const fp_type *type, const fp_type_stats *s, void *user),
                    void *user)
{
    if (!fn)
        return FP_EINVAL;
    unsigned n = atomic_load_explicit(&type_count, memory_order_acquire);
    for (unsigned i = 0; i < n; i++) {
        fp__typestat *s = type_order[i];
        const fp_type *t = atomic_load_explicit(&s->type, memory_order_acquire);
        fp_type_stats st;
        typestat_fill(s, t, &st);
        int rc = fn(t, &st, user);
        if (rc)
            return rc;
    }
    if (atomic_load_explicit(&overflow_stat.created, memory_order_relaxed) ||
        atomic_load_explicit(&pooled_ts, memory_order_relaxed) == &overflow_stat) {
        fp_type_stats st;
        typestat_fill(&overflow_stat, &overflow_type, &st);
        return fn(&overflow_type, &st, user);
    }
    return 0;
}

static int totals_cb(const fp_type *t, const fp_type_stats *s, void *user)
{
    (void)t;
    uint64_t *acc = user;
    acc[0] += s->live;
    acc[1] += s->live_bytes;
    return 0;
}

void fp_obj_totals(uint64_t *live_objects, uint64_t *live_bytes)
{
    uint64_t acc[2] = {0, 0};
    fp_type_foreach(totals_cb, acc);
    if (live_objects)
        *live_objects = acc[0];
    if (live_bytes)
        *live_bytes = acc[1];
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
        typestat_add(h->ts, atomic_load_explicit(&h->bytes, memory_order_relaxed));
    if (atomic_load_explicit(&fp__diag_mode, memory_order_relaxed))
        fp__diag_on_new(h);
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
    fp__typestat *ts = typestat_find(type); /* lock-free: the common case */
    h->ts = ts ? ts : fp__typestat_get(type);
    atomic_init(&h->bytes, charge);
    h->alloc_size = total;
    h->dispose = dispose;
    atomic_init(&h->flags, flags);
    if ((flags & FP__OBJ_POOLED) && atomic_load_explicit(&pooled_ts, memory_order_relaxed) != h->ts)
        atomic_store_explicit(&pooled_ts, h->ts, memory_order_release);
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

int fp__obj_try_ref(fp__obj *h)
{
    uint32_t r = atomic_load_explicit(&h->refs, memory_order_relaxed);
    while (r != 0) {
        if (atomic_compare_exchange_weak_explicit(&h->refs, &r, r + 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return 1;
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
    typestat_count(h->ts, 0, (int64_t)bytes - (int64_t)old);
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

void *fp_ref(void *obj)
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
    return obj;
}

static void last_release(fp__obj *h)
{
    fp__onfree *cbs = NULL;
    uint32_t flags = atomic_load_explicit(&h->flags, memory_order_relaxed);
    if (flags & (FP__OBJ_WEAK | FP__OBJ_ONFREE))
        cbs = fp__weak_dying(h);
    if (h->type->finalize)
        h->type->finalize(fp__payload(h));
    if (!(flags & FP__OBJ_POOLED)) /* a pooled image: its pool counts the release */
        typestat_sub(h->ts, atomic_load_explicit(&h->bytes, memory_order_relaxed));
    if (flags & FP__OBJ_TRACKED)
        fp__diag_on_free(h);
    if (cbs)
        fp__weak_run_callbacks(cbs);
    if (h->dispose)
        h->dispose(h);
    else
        fp__obj_free_memory(h);
}

void fp_decref(void *obj)
{
    if (!obj)
        return;
    fp__obj *h = fp__hdr(obj);
    check_live(h, "fp_unref");
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

void fp_unref(void *pobj)
{
    if (!pobj)
        return;
    void *obj;
    memcpy(&obj, pobj, sizeof obj);
    if (!obj)
        return;
    void *null = NULL;
    memcpy(pobj, &null, sizeof null);
    fp_decref(obj);
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
