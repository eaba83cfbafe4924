/* Per-type statistics: live counts and bytes, peaks, creations (see
 * typestat.h). */
#define _POSIX_C_SOURCE 200809L
#include "typestat.h"

#include <pthread.h>
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
 * already counts them under its lock on every acquire and release, and
 * registers itself as the source of extra fp_image figures, which a read
 * adds (with the creations of pools that are gone) to the counts of the
 * other images.
 *
 * Peaks are the highest totals seen by a statistics read: every read raises
 * the type's peak to the live count and bytes it has just summed. */

#define TLS_SLOTS FP__TLS_SLOTS
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

typedef fp__tls_slot tls_slot;
typedef fp__tls_counts tls_counts;

enum { TLS_NEW = 0, TLS_ACTIVE = 1, TLS_RETIRED = 2 };
static _Thread_local tls_counts tls_block;
/* The hot path reads only this pointer (typestat.h). */
_Thread_local tls_counts *fp__tls_mine;
#define tls_mine fp__tls_mine
static _Thread_local int tls_state;
static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static tls_counts *tls_list;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_key_ok;

/* Moves the counts of block c into the shared totals (tls_lock held). */
static void fold_block(tls_counts *c)
{
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
}

/* Thread exit: move this thread's counts into the shared totals. */
static void tls_retire(void *arg)
{
    tls_counts *c = arg;
    tls_mine = NULL; /* objects released later in this thread count shared */
    tls_state = TLS_RETIRED;
    pthread_mutex_lock(&tls_lock);
    fold_block(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        tls_list = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&tls_lock);
}

/* fork. The child has only the forking thread; the other threads' blocks
 * are still mapped right after the fork but are freed when the child's
 * first new threads reuse their cached stacks (thread-local storage of a
 * dlopen'ed library lives in malloc'ed memory), and tls_list would then
 * point into freed memory. So the child folds their counts into the shared
 * totals and keeps only its own block. tls_lock is held across the fork so
 * that the list is consistent in the child. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&tls_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&tls_lock);
}

static void fork_child(void)
{
    tls_counts *mine = tls_state == TLS_ACTIVE ? &tls_block : NULL;
    for (tls_counts *c = tls_list; c; c = c->next)
        if (c != mine)
            fold_block(c);
    tls_list = mine;
    if (mine)
        mine->prev = mine->next = NULL;
    pthread_mutex_init(&tls_lock, NULL);
}

static void tls_key_init(void)
{
    tls_key_ok = pthread_key_create(&tls_key, tls_retire) == 0;
    pthread_atfork(fork_prepare, fork_parent, fork_child);
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

_Atomic int fp__typestat_counting = 1;

void fp__obj_set_counting(int on)
{
    atomic_store_explicit(&fp__typestat_counting, on != 0, memory_order_relaxed);
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

/* The first count of a thread (registers it), counts of an exiting thread
 * and of types past the per-thread capacity: out of the hot path. */
__attribute__((noinline, cold)) void fp__typestat_count_slow(fp__typestat *s, int delta,
                                                              int64_t bytes)
{
    tls_counts *c = tls_mine ? tls_mine : tls_register();
    if (c && s->slot < TLS_SLOTS)
        fp__tls_count(&c->slot[s->slot], delta, bytes);
    else
        shared_count(s, delta, bytes);
}

void fp__typestat_set_source(const fp_type *type, fp__count_source fn)
{
    fp__typestat *s = fp__typestat_get(type);
    if (atomic_load_explicit(&s->source, memory_order_relaxed) != fn)
        atomic_store_explicit(&s->source, fn, memory_order_release);
}

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
    /* The source first, outside tls_lock (it takes its own locks): the two
     * sets are disjoint, an object a source counts is never in a thread's
     * block. */
    fp__count_source src = atomic_load_explicit(&s->source, memory_order_acquire);
    if (src)
        src(&extra.live, &extra.bytes, &extra.created);
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
        atomic_load_explicit(&overflow_stat.source, memory_order_relaxed)) {
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
