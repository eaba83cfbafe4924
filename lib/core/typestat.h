/*
 * Per-type statistics (typestat.c), private to the core: live counts and
 * bytes, peaks and creations for every fp_type.
 *
 * Counting is per thread: creating or releasing an object adds to plain
 * counters in the calling thread's own block (relaxed loads and stores, no
 * locked instruction, no shared cache line), and a statistics read sums the
 * blocks of every thread under a mutex. The hot path is inlined from here
 * into the object layer.
 *
 * Counts kept elsewhere are added when read through a registered source:
 * the pool counts its images under its own lock and registers itself as the
 * source of the fp_image figures (this file does not know pools).
 */
#ifndef FRAMEPOOL_TYPESTAT_H
#define FRAMEPOOL_TYPESTAT_H

#include "framepool/obj.h"

#include <stdatomic.h>
#include <stdint.h>

#define FP__TLS_SLOTS 256 /* types counted per thread (8 KiB of TLS per thread) */

/* Figures a source adds to a type's own counts. */
typedef void (*fp__count_source)(uint64_t *live, uint64_t *bytes, uint64_t *created);

typedef struct fp__typestat {
    _Atomic(const fp_type *) type;
    unsigned slot; /* index in the per-thread blocks; FP__TLS_SLOTS = none */
    _Atomic int64_t live;
    _Atomic int64_t live_bytes;
    _Atomic uint64_t created;
    _Atomic uint64_t peak;
    _Atomic uint64_t peak_bytes;
    _Atomic(fp__count_source) source;
} fp__typestat;

/* One type's counts in one thread: a create or release touches one line. */
typedef struct fp__tls_slot {
    _Atomic int64_t live;
    _Atomic int64_t bytes;
    _Atomic uint64_t created;
    uint64_t pad_;
} fp__tls_slot;

typedef struct fp__tls_counts {
    fp__tls_slot slot[FP__TLS_SLOTS];
    struct fp__tls_counts *prev, *next;
} fp__tls_counts;

/* The calling thread's block while it is registered, NULL before and after.
 * (Default TLS model: an initial-exec variable would put all of the
 * module's TLS in the static block, and dlopen of the library would fail.) */
extern __attribute__((visibility("hidden"))) _Thread_local fp__tls_counts *fp__tls_mine;
extern __attribute__((visibility("hidden"))) _Atomic int fp__typestat_counting;

/* Returns the record of `type`, creating it (never NULL: types past the
 * table's capacity share one overflow record). Lock-free when it exists. */
fp__typestat *fp__typestat_get(const fp_type *type);

/* Registers `fn` as the source of extra figures for `type` (idempotent). */
void fp__typestat_set_source(const fp_type *type, fp__count_source fn);

/* The first count of a thread, counts of exiting threads and of types past
 * the per-thread capacity (out of line). */
void fp__typestat_count_slow(fp__typestat *s, int delta, int64_t bytes);

/* Benchmarks only: switches the per-type counters off (statistics then stop
 * being meaningful), to measure what a build without them would cost. */
void fp__obj_set_counting(int on);

/* Fork safety (obj_priv.h: the other modules' parts): the type table and
 * the per-thread count list locked around fork. */
void fp__typestat_atfork(int phase);

static inline __attribute__((always_inline)) void fp__tls_add(_Atomic int64_t *c, int64_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static inline __attribute__((always_inline)) void fp__tls_count(fp__tls_slot *t, int delta,
                                                                int64_t bytes)
{
    if (delta)
        fp__tls_add(&t->live, delta);
    fp__tls_add(&t->bytes, bytes);
    if (delta > 0)
        atomic_store_explicit(&t->created,
                              atomic_load_explicit(&t->created, memory_order_relaxed) + 1,
                              memory_order_relaxed);
}

/* Counts a creation (+1), a release (-1) or a change of charge only (0).
 * Inlined, so that each call site keeps only its own counter updates. */
static inline __attribute__((always_inline)) void fp__typestat_count(fp__typestat *s, int delta,
                                                                     int64_t bytes)
{
    if (!atomic_load_explicit(&fp__typestat_counting, memory_order_relaxed))
        return;
    fp__tls_counts *c = fp__tls_mine;
    unsigned slot = s->slot;
    if (__builtin_expect(c != NULL && slot < FP__TLS_SLOTS, 1))
        fp__tls_count(&c->slot[slot], delta, bytes);
    else
        fp__typestat_count_slow(s, delta, bytes);
}

#endif
