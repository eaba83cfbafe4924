/*
 * Private to framepool (core and lib/av): the object header, the object
 * layer's internal calls and its hook table (obj.c). Not installed.
 *
 * obj.c is the bottom of the core: it knows the header, the strong count,
 * the per-type counters and the hooks below. The modules above register
 * into the hooks (weak handles, diagnostics tracking) and the pool's
 * buffers own their memory through `dispose`; obj.c never calls up.
 */
#ifndef FRAMEPOOL_OBJ_PRIV_H
#define FRAMEPOOL_OBJ_PRIV_H

#include "base_priv.h"
#include "framepool/obj.h"

#include <stddef.h>

#define FP__OBJ_MAGIC 0x46504f424a4c4956ull /* "FPOBJLIV" */
#define FP__OBJ_DEAD 0x46504f424a444541ull  /* "FPOBJDEA" */

/* Object flags (fp__obj.flags). */
enum {
    FP__OBJ_WEAK = 1u << 0,      /* has a weak slot: the last release goes through weak.c */
    FP__OBJ_ONFREE = 1u << 1,    /* has fp_on_free callbacks */
    FP__OBJ_TRACKED = 1u << 2,   /* linked in the diagnostics live list */
    FP__OBJ_SINGLETON = 1u << 3, /* intentional: leave out of leak reports */
    FP__OBJ_INTERNAL = 1u << 4,  /* owned by the library (e.g. a decoder's buffer) */
    FP__OBJ_POOLED = 1u << 5,    /* a pooled image: its pool counts it, the per-type
                                    counters do not (fp__pool_image_counts) */
    FP__OBJ_REFS = 1u << 6,      /* keeps a reference history (FP_DIAG=refs): every
                                    ref and unref calls the refs hook */
};

typedef struct fp__typestat fp__typestat;
/* The header in front of every object's payload: 128 bytes, so that the
 * payload keeps 64-byte alignment. What fp_ref/fp_unref read (refs, flags,
 * type, magic) sits in the first cache line; `magic` sits past the first 32
 * bytes, which glibc's free overwrites with its list pointers, so that a
 * freed object's marker survives until the memory is handed out again. */
typedef struct fp__obj {
    _Atomic uint32_t refs;
    _Atomic uint32_t flags;
    uint32_t weak_slot;          /* owned by weak.c (under its lock); 0 = none */
    int line;
    const fp_type *type;
    fp__typestat *ts;
    uint64_t magic;              /* FP__OBJ_MAGIC while usable, FP__OBJ_DEAD once freed */
    _Atomic size_t bytes;        /* bytes charged to the type statistics (relaxed) */
    size_t alloc_size;           /* bytes allocated for header + payload */
    const char *file;
    const char *func;
    uint64_t birth;              /* frame tick at creation */
    void (*dispose)(struct fp__obj *h); /* NULL: free the memory; else it owns the memory */
    struct fp__obj *diag_prev;   /* diagnostics live list (diag_track.c, under its lock) */
    struct fp__obj *diag_next;
    void *diag_extra;            /* diagnostics: a backtrace, or (FP__OBJ_REFS) the
                                    object's reference history, which holds it */
    uint64_t reserved[2];
} fp__obj;

_Static_assert(sizeof(fp__obj) == 128, "object header must keep payload 64-byte aligned");
_Static_assert(offsetof(fp__obj, magic) >= 32 && offsetof(fp__obj, magic) < 64,
               "magic must be in the first cache line, past glibc's free-list pointers");

static inline fp__obj *fp__hdr(const void *payload)
{
    return (fp__obj *)((char *)payload - sizeof(fp__obj));
}
static inline void *fp__payload(const fp__obj *h)
{
    return (char *)h + sizeof(fp__obj);
}

/* Allocates an object with `extra` payload bytes, initialises its header
 * (refs = 1) and counts it. Returns the payload or NULL. `dispose` may be
 * NULL. */
void *fp__obj_new(const fp_type *type, size_t payload, size_t charge,
                  void (*dispose)(fp__obj *h), const char *file, int line, const char *func);

/* The same for a pooled image (FP__OBJ_POOLED): not counted by the per-type
 * counters; its pool counts it (fp__pool_image_counts). */
void *fp__obj_new_pooled(const fp_type *type, size_t payload, size_t charge,
                         void (*dispose)(fp__obj *h), const char *file, int line,
                         const char *func);

/* Brings a recycled pooled image back to life: refs = 1, new site, new birth
 * tick, flags reset to FP__OBJ_POOLED. Its pool counts it again. */
void fp__obj_revive(fp__obj *h, const char *file, int line, const char *func);

/* Adds a reference only if the object still has one (count > 0); returns 1
 * on success. The memory must be known to be valid (e.g. a pool with buffers
 * out, or a weak slot under its lock). The _at form names the site the
 * reference is taken for (FP_DIAG=refs history); the plain one records
 * framepool's own call. */
int fp__obj_try_ref_at(fp__obj *h, const char *file, int line, const char *func,
                       const void *ret);
#define fp__obj_try_ref(h) fp__obj_try_ref_at((h), __FILE__, __LINE__, __func__, NULL)

/* How a reference taken on the user's behalf is held (refs hook `how`). */
enum {
    FP__REF_KEPT = 1u << 0, /* kept by a framepool container (a cache entry): only the
                               container releases it, not the function of the site */
};

/* fp_ref for framepool's entry points acting for the user: the reference is
 * recorded at the user's site, `ret` being the entry point's return
 * address (into the user's function), `how` FP__REF_* bits. */
void *fp__obj_ref_for(void *obj, const char *file, int line, const char *func, const void *ret,
                      unsigned how);

/* While framepool takes a reference on the user's behalf through a function
 * pointer the user gave it (a weak map's value_ref, usually fp_ref itself),
 * the reference is recorded at the user's call site: set it before the
 * call, clear it (file NULL) after. Thread-local; cheap. */
void fp__obj_acting_for(const char *file, int line, const char *func, const void *ret);

/* Drops one reference unless it is the last one. Returns 1 when it dropped
 * it, 0 when the reference is the last (nothing changed): that one must go
 * through fp_decref, which runs finalizers and callbacks. Runs nothing but
 * the decrement, so a caller may hold its own lock (the FFmpeg bridge). */
int fp__obj_decref_unless_last(fp__obj *h);

/* Frees an object's memory (for dispose hooks that decide to free). */
void fp__obj_free_memory(fp__obj *h);

/* Debug builds: frees the objects held back to detect double unrefs (the
 * allocator changes, and tests that count live allocations call it). */
void fp__obj_quarantine_flush(void);

/* Fork safety (pthread_atfork, registered by diag_env.c): each module's
 * part, `phase` 0 before fork (take every lock of the module), 1 in the
 * parent after it, 2 in the child after it (release them; reset what no
 * longer has an owner, such as condition variables other threads waited
 * on). diag_env.c calls them in one fixed order, the order in which the
 * library nests these locks: diag setup, socket, growth, pools (registry,
 * budgets, pools), type statistics (typestat.h: fp__typestat_atfork), live
 * list, quarantine, weak handles. */
void fp__obj_atfork(int phase);
void fp__pool_atfork(int phase);
void fp__diag_track_atfork(int phase);
void fp__diag_report_atfork(int phase);
void fp__weak_atfork(int phase);

/* Changes the bytes charged by a live object. */
void fp__obj_charge(fp__obj *h, size_t bytes);

/* Prints "<what>: object of type 'T' created at file:line (func)" and aborts. */
_Noreturn void fp__obj_fatal(const fp__obj *h, const char *what);

/* ---- the hook table ----
 * A module sets an object flag only after registering the hook that flag
 * calls, so the last release always finds it. Hooks run on the releasing
 * thread, with no framepool lock held. */
typedef struct fp__onfree fp__onfree;
/* Weak handles (weak.c): on the last release of an object with
 * FP__OBJ_WEAK or FP__OBJ_ONFREE, before its finalizer, `dying` invalidates
 * its handles and returns its fp_on_free callbacks; `run` runs them after
 * the finalizer. */
typedef fp__onfree *(*fp__obj_dying_hook)(fp__obj *h);
typedef void (*fp__obj_callbacks_hook)(fp__onfree *list);
void fp__obj_hook_weak(fp__obj_dying_hook dying, fp__obj_callbacks_hook run);
/* Diagnostics tracking (diag_track.c): `on_new` sees every object created or
 * revived while it is set (NULL: tracking off, one branch per creation);
 * `on_free` sees the last release of objects flagged FP__OBJ_TRACKED (a NULL
 * on_free leaves the previous one in place). */
typedef void (*fp__obj_hook)(fp__obj *h);
void fp__obj_hook_tracking(fp__obj_hook on_new, fp__obj_hook on_free);
/* Reference history (diag_track.c): called for every reference taken
 * (delta +1) or dropped (-1) on an object flagged FP__OBJ_REFS, on the
 * calling thread, while the caller still holds a reference (a drop is
 * recorded before the count goes down), with the site the reference is
 * attributed to (file NULL: unknown, e.g. fp_ref called through a pointer).
 * `ret` is the return address of the framepool entry point that took the
 * reference (an address in the function of the site), NULL for drops.
 * Registered before the first object is flagged; never unset. */
typedef void (*fp__obj_refs_hook)(fp__obj *h, int delta, const char *file, int line,
                                  const char *func, const void *ret, unsigned how);
void fp__obj_hook_refs(fp__obj_refs_hook hook);

#endif
