/*
 * framepool/obj.h — reference-counted objects, the C analogue of Python's.
 *
 * Every framepool object (images, pools, budgets, caches, readers' frames)
 * and any object of your own made with fp_new() shares one header: an atomic
 * strong count, its type, the bytes it charges, and the file:line where it
 * was created. Per-type live counts and bytes are kept always, so that
 * diagnostics can name what holds memory; they are counted per thread (plain
 * adds to the calling thread's own counters, no shared cache line) and
 * summed when read. Pooled images are counted by their pool instead (it
 * counts the buffers it hands out anyway), and added in when read.
 *
 *   typedef struct track { double x, y; fp_image *crop; } track;
 *   static void track_fin(void *o) { track *t = o; fp_unref(&t->crop); }
 *   static const fp_type track_type = { "track", track_fin };
 *   track *t = fp_new(&track_type, sizeof *t);   // +1, zero-filled
 *   ...
 *   fp_unref(&t);                                // runs track_fin, frees, t = NULL
 *
 * fork(): a child forked at any moment, from any thread, can use framepool
 * (the library takes every lock of its own around the fork, pthread_atfork,
 * so the child finds its structures whole and its locks free). The child
 * inherits every object with its count (the references other threads held
 * stay held: those threads do not exist in the child), the per-type
 * counters and pool figures as they were, and the pools and budgets, usable
 * (buffers other threads had out stay counted out). A weak handle another
 * thread was creating or resolving at that very instant may be left
 * half-made in the child (its object then reads as gone). Objects a parent thread
 * was inside at that moment through a lock of your own or of a cache,
 * weak map or reader are as your own data would be: do not count on them
 * in the child. See diag.h for what diagnostics a child has.
 */
#ifndef FRAMEPOOL_OBJ_H
#define FRAMEPOOL_OBJ_H

#include "base.h"
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A type: a name for diagnostics and an optional finalizer that releases
 * what the object owns (it must not free the object itself). The struct must
 * outlive every object of the type (make it static const). */
typedef struct fp_type {
    const char *name;
    void (*finalize)(void *obj);
} fp_type;

/* Creates a zero-filled object of `size` payload bytes (64-byte aligned)
 * whose creation site is the caller's file:line. Returns +1 (caller
 * releases), or NULL when allocation fails or `type` is NULL. Thread-safe. */
#define fp_new(type, size) fp_new_at((type), (size), __FILE__, __LINE__, __func__)
FP_API void *fp_new_at(const fp_type *type, size_t size, const char *file, int line,
                       const char *func);

/* Adds a strong reference and returns `obj` (NULL-safe: returns NULL).
 * The caller owns the new reference. Thread-safe (relaxed atomic add).
 * Taking a reference to an object whose last reference is already gone
 * aborts with its type and creation site (see fp_unref for what is
 * checked).
 *
 * fp_ref, fp_unref and fp_decref are macros that pass the caller's
 * file:line and function to the _at functions below, so that with
 * FP_DIAG=refs (diag.h) each object keeps a history of the sites that took
 * and dropped its references and a leak report names the line that kept
 * one. With refs off the site costs nothing but the three arguments. The
 * plain functions stay exported (ABI, and for taking their address, e.g.
 * `.value_ref = fp_ref` in a weak map config): called through a pointer,
 * the site is the one of the framepool call that called them (e.g. the
 * fp_weakmap_get line) or unknown. */
FP_API void *fp_ref(void *obj);
FP_API void *fp_ref_at(void *obj, const char *file, int line, const char *func);
#define fp_ref(obj) fp_ref_at((obj), __FILE__, __LINE__, __func__)

/* Drops the reference held in `*pobj` and sets `*pobj` to NULL. `pobj` is the
 * address of your pointer (a T**, passed as void* so that it works for every
 * type); NULL-safe for both `pobj` and `*pobj`. When the last reference goes
 * the finalizer runs, then fp_on_free callbacks, then the memory is freed (or
 * a pooled image goes back to its pool). Thread-safe (acq_rel decrement).
 *
 * What is checked, in every build (Release included; the cost is one
 * compare on the cache line the count lives in, within the noise of
 * bench/pool_ops): before touching the count, that the object still carries
 * framepool's live marker, and after it, that the count was not already
 * zero. Either failure prints the type and creation site to stderr and
 * aborts instead of corrupting memory. So a double unref (or an fp_ref
 * after the last unref) is caught
 *   - always for a pooled image that is back in its pool (its memory is the
 *     pool's and keeps its header; its count is zero);
 *   - for other objects while their freed memory has not been handed out
 *     again (Debug builds hold freed objects up to 1 MiB back in a small
 *     quarantine, so there it is caught reliably);
 * and it cannot be caught once the memory belongs to something else — an
 * extra unref of an image that a pool has already handed to another user
 * takes that user's reference. AddressSanitizer builds (-DFP_SANITIZE=address)
 * catch those too. A macro passing the call site (see fp_ref). */
FP_API void fp_unref(void *pobj);
FP_API void fp_unref_at(void *pobj, const char *file, int line, const char *func);
#define fp_unref(pobj) fp_unref_at((pobj), __FILE__, __LINE__, __func__)

/* Drops one reference to `obj` without touching any pointer variable (for
 * callbacks that receive the object by value). NULL-safe. A macro passing
 * the call site (see fp_ref); the function can be passed as a callback
 * (`.value_free = fp_decref`). */
FP_API void fp_decref(void *obj);
FP_API void fp_decref_at(void *obj, const char *file, int line, const char *func);
#define fp_decref(obj) fp_decref_at((obj), __FILE__, __LINE__, __func__)

/* Returns the current strong count (a snapshot; racy by nature when other
 * threads hold references). 0 for NULL. */
FP_API uint32_t fp_refcount(const void *obj);

/* Returns the object's type (borrowed), or NULL for NULL. */
FP_API const fp_type *fp_type_of(const void *obj);

/* Returns the bytes charged to the object: its payload size plus whatever
 * fp_obj_set_bytes added (pixel buffers for images). */
FP_API size_t fp_obj_bytes(const void *obj);

/* Sets the bytes charged to `obj` (e.g. a user object that owns a large
 * malloc'd buffer) so that per-type statistics and diagnostics count them.
 * Thread-safe with respect to the statistics; call it while you own obj. */
FP_API void fp_obj_set_bytes(void *obj, size_t bytes);

/* Returns the creation site recorded for `obj` (borrowed static strings). */
FP_API void fp_obj_site(const void *obj, const char **file, int *line, const char **func);

/* Returns the frame tick (see fp_frame_tick) at which `obj` was created. */
FP_API uint64_t fp_obj_birth(const void *obj);

/* Per-type statistics, kept for every type that ever had an object. For
 * fp_image they include pooled images, which their pool counts: an acquired
 * image is live (at its buffer's size, or the charge set with
 * fp_obj_set_bytes) until its last release, and every acquire creates one;
 * images still out of a pool whose owner let go stay counted. */
typedef struct fp_type_stats {
    const char *name;
    uint64_t live;          /* objects alive now */
    uint64_t live_bytes;    /* bytes charged by the live objects */
    uint64_t peak;          /* highest `live` seen by a statistics read (every
                               fp_type_get_stats/fp_type_foreach, so every summary,
                               growth check and memtrack sample); a peak that comes
                               and goes between two reads is not seen */
    uint64_t peak_bytes;    /* the same for `live_bytes` */
    uint64_t created;       /* objects ever created */
} fp_type_stats;

/* Fills `out` with the statistics of `type`. Returns 0, or FP_ENOENT when no
 * object of that type was ever created (out is then zero-filled with the
 * name set). Thread-safe. Counts are exact for everything that happened
 * before the call (in any thread that synchronised with the caller); objects
 * created or released concurrently may or may not be included. Cost: one
 * mutex and a sum over the threads that ever counted an object. */
FP_API int fp_type_get_stats(const fp_type *type, fp_type_stats *out);

/* Calls `fn` for every type that ever had an object, in registration order.
 * Stops early and returns fn's value when it returns non-zero. Thread-safe. */
FP_API int fp_type_foreach(int (*fn)(const fp_type *type, const fp_type_stats *s, void *user),
                           void *user);

/* Total bytes and objects alive across all types. */
FP_API void fp_obj_totals(uint64_t *live_objects, uint64_t *live_bytes);

/* A process-wide frame counter used to give objects an age in frames. The
 * reader advances it once per delivered frame; loops without a reader may
 * call fp_frame_tick() themselves. Returns the new value. Thread-safe. */
FP_API uint64_t fp_frame_tick(void);
/* Returns the current frame counter. */
FP_API uint64_t fp_frame_now(void);

#ifdef __cplusplus
}
#endif
#endif
