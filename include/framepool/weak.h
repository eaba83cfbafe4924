/*
 * framepool/weak.h — weak handles, free callbacks and weak maps: the C
 * counterparts of Python's weakref.ref, weakref.finalize,
 * WeakKeyDictionary and WeakValueDictionary.
 *
 * A weak handle (fp_weak) is a plain 64-bit value: copy it, store it in a
 * struct, queue it, send it to another thread. It never keeps its object
 * alive. fp_weak_get() turns it into a new strong reference while the object
 * lives and into NULL forever after — also when the object was a pooled
 * image whose buffer went back to its pool and was handed out again as
 * another frame: the handle names one life of an object, not its memory.
 *
 *   fp_weak w = fp_weak_of(img);          // img: a reference you hold
 *   ...                                   // any thread, any time later:
 *   fp_image *again = fp_weak_get(w);     // +1, or NULL once img died
 *   if (again) { use(again); fp_unref(&again); }
 *
 * How it works: an object that gets a weak handle (or an fp_on_free
 * callback) takes a slot in a process-wide slot table. A slot holds a 32-bit
 * generation and the object pointer; the handle is (slot index << 32 |
 * generation). When the object's strong count reaches zero, the slot's
 * generation is bumped under the slot's lock before anything else happens
 * to the object, so every handle to it stops resolving; fp_weak_get takes the
 * same lock and only adds a reference while the count is still above zero,
 * so an object being destroyed is never resurrected. Slots are reused; a
 * slot whose generation would wrap around is retired instead (never reused),
 * so a handle can never resolve to a later object. Objects that never had a
 * weak handle or callback pay nothing for this on release.
 *
 * Memory: each slot costs 24 bytes, allocated in chunks of 4096 slots that
 * are kept for the life of the process (the table's high-water mark); the
 * table holds up to FP_WEAK_MAX_SLOTS objects with handles at once.
 */
#ifndef FRAMEPOOL_WEAK_H
#define FRAMEPOOL_WEAK_H

#include "obj.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A weak handle: slot index (high 32 bits) and generation (low 32 bits).
 * {0} is "no object": fp_weak_get returns NULL for it. A one-field struct so
 * that the compiler catches mix-ups with other integers. */
typedef struct fp_weak {
    uint64_t id;
} fp_weak;

/* Most objects that can have weak handles or fp_on_free callbacks at once. */
#define FP_WEAK_MAX_SLOTS (1u << 25)

/* Returns a weak handle to `obj`, a framepool object you hold a reference
 * to (images, pooled images, caches, any fp_new object). Every call for the
 * same life of an object returns the same handle. Returns {0} when obj is
 * NULL, when the slot table cannot grow (allocation failure) or is full;
 * fp_weak_create tells these apart. Thread-safe. Cost: a mutex; the first
 * call for an object also takes a slot (a second mutex, rarely an
 * allocation of a 96 KiB chunk). */
FP_API fp_weak fp_weak_of(void *obj);

/* Like fp_weak_of, with an error code: returns 0 and stores the handle in
 * *out, or FP_EINVAL (obj or out NULL, or obj's strong count is already 0,
 * e.g. called from its finalizer), FP_ENOMEM (the slot table could not
 * grow), FP_ELIMIT (FP_WEAK_MAX_SLOTS objects have slots). Thread-safe. */
FP_API int fp_weak_create(void *obj, fp_weak *out);

/* Returns a new strong reference (+1, caller releases) to the object `w`
 * names while it lives, or NULL once its strong count has reached zero (and
 * for {0} or a handle that never existed). Never returns an object that is
 * being destroyed, nor a later object that reuses the memory or the slot.
 * Thread-safe, also against a concurrent last release. Cost: one striped
 * mutex and one atomic compare-and-swap (about 15 ns uncontended together
 * with the fp_decref that ends the reference; see bench/cache_ops). */
FP_API void *fp_weak_get(fp_weak w);
/* fp_weak_get is a macro passing the call site (FP_DIAG=refs history). */
FP_API void *fp_weak_get_at(fp_weak w, const char *file, int line, const char *func);
#define fp_weak_get(w) fp_weak_get_at((w), __FILE__, __LINE__, __func__)

/* Returns 1 while the object `w` names is alive, 0 once it died. A snapshot:
 * the object may die right after it returns 1 (use fp_weak_get to keep it).
 * Thread-safe. */
FP_API int fp_weak_alive(fp_weak w);

/* Registers `cb(user)` to run once, when `obj` (a framepool object you hold
 * a reference to) dies: after its finalizer, before its memory is freed or
 * returned to its pool, on the thread that drops the last reference and
 * outside every framepool lock (so cb may create, release, or look up
 * objects, including through weak handles, which resolve to NULL for obj).
 * Any number of callbacks per object; they run in registration order. The
 * callback must not use obj itself. Returns 0, FP_EINVAL (obj or cb NULL),
 * FP_ENOMEM (each registration allocates 32 bytes; the slot table may grow),
 * FP_ELIMIT (slot table full). Thread-safe. */
FP_API int fp_on_free(void *obj, void (*cb)(void *user), void *user);

/* Unregisters the earliest registration of (cb, user) on `obj`, a live
 * object you hold a reference to, so that it never runs (weakref.finalize's
 * detach). Returns 0, or FP_ENOENT when no such registration is pending.
 * Thread-safe; cost linear in the object's registrations. */
FP_API int fp_on_free_cancel(void *obj, void (*cb)(void *user), void *user);

/* Statistics of the process-wide weak slot table. */
typedef struct fp_weak_stats {
    uint64_t slots_capacity; /* slots allocated (chunks x 4096), never shrinks */
    uint64_t slots_used;     /* slots held by live objects */
    uint64_t slots_free;     /* slots ready for reuse */
    uint64_t slots_retired;  /* slots whose generation ran out: never reused */
    uint64_t callbacks;      /* fp_on_free registrations pending on live objects */
    uint64_t deaths;         /* objects with slots that died */
    unsigned gen_bits;       /* generation bits in use (32 unless built with FP_WEAK_GEN_BITS) */
} fp_weak_stats;

/* Fills *out with a snapshot of the slot table's figures. Thread-safe. */
FP_API void fp_weak_get_stats(fp_weak_stats *out);

/* ---- weak maps ---------------------------------------------------------------
 *
 * fp_weakmap is a framepool object (type "fp_weakmap") holding entries that
 * vanish when an object dies:
 *
 *   FP_WEAKMAP_WEAK_KEYS   (WeakKeyDictionary) keys are framepool objects held
 *       weakly, values are whatever you store. When a key dies, its entry is
 *       removed and value_free(value) runs (on the thread that dropped the
 *       key's last reference, outside the map's lock). Keys are compared by
 *       identity of one life of an object: a pooled frame that comes back as
 *       a new frame is a new key.
 *   FP_WEAKMAP_WEAK_VALUES (WeakValueDictionary) keys are uint64_t, values
 *       are framepool objects held weakly: the entry vanishes when its value
 *       dies.
 *
 * Removal is eager (through fp_on_free), so a map whose keys die while
 * nobody touches it does not grow: once fp_unref of an object's last
 * reference has returned, its entries are gone from every map. A value
 * stored in a weak-keys map must not hold a strong reference to its own key
 * (the key would then never die — the same caveat as Python's).
 *
 * Every function is thread-safe (one mutex per map). No map call runs
 * value_free or a foreach callback with the map's lock held.
 */
typedef struct fp_weakmap fp_weakmap;

/* The framepool type of weak maps ("fp_weakmap"). */
FP_API extern const fp_type fp_weakmap_type;

typedef enum fp_weakmap_mode {
    FP_WEAKMAP_WEAK_KEYS = 1,
    FP_WEAKMAP_WEAK_VALUES = 2,
} fp_weakmap_mode;

/* Weak map configuration; zero means the documented default. */
typedef struct fp_weakmap_config {
    fp_weakmap_mode mode;          /* required */
    /* WEAK_KEYS only. The map owns the values you put: value_free(value)
     * runs when an entry goes (its key died, it was replaced or removed, the
     * map was cleared or destroyed) and no iteration still uses it. NULL:
     * values are not owned (nothing runs). For framepool objects as values
     * use fp_decref here and fp_ref as value_ref. */
    void (*value_free)(void *value);
    /* WEAK_KEYS only. Called by fp_weakmap_get to give the caller its own
     * reference to the value (e.g. fp_ref); NULL: fp_weakmap_get returns
     * the value borrowed. It runs with the map's lock held, so it must only
     * take a reference (never call into the map or release objects). */
    void *(*value_ref)(void *value);
} fp_weakmap_config;

/* Creates a weak map. Returns 0 with +1 (caller releases) in *out;
 * FP_EINVAL (cfg NULL or bad mode), FP_ENOMEM. Releasing the map's last
 * reference removes every entry (running value_free) and cancels its
 * callbacks on live keys. */
#define fp_weakmap_new(cfg, out) fp_weakmap_new_at((cfg), (out), __FILE__, __LINE__, __func__)
FP_API int fp_weakmap_new_at(const fp_weakmap_config *cfg, fp_weakmap **out, const char *file,
                             int line, const char *func);

/* WEAK_KEYS: stores `value` under `key` (a framepool object you hold a
 * reference to; the map does not take one). Replaces (and frees) the value
 * of an existing entry. On success the map owns `value`; on failure it does
 * not. Returns 0, FP_EINVAL (NULL map/key, wrong mode), FP_ENOMEM,
 * FP_ELIMIT (weak slot table full). Cost: a hash insert, the first time a
 * key is used also a weak slot and a 32-byte callback record. */
FP_API int fp_weakmap_put(fp_weakmap *m, void *key, void *value);

/* WEAK_KEYS: looks `key` up. Returns 0 and stores the value in *value
 * (borrowed — valid while the entry stays — or the caller's own reference
 * when the config has value_ref), or FP_ENOENT (*value = NULL), FP_EINVAL. */
FP_API int fp_weakmap_get(fp_weakmap *m, const void *key, void **value);
/* fp_weakmap_get is a macro passing the call site: a reference value_ref
 * takes is recorded there (FP_DIAG=refs history). */
FP_API int fp_weakmap_get_at(fp_weakmap *m, const void *key, void **value, const char *file,
                             int line, const char *func);
#define fp_weakmap_get(m, key, value) \
    fp_weakmap_get_at((m), (key), (value), __FILE__, __LINE__, __func__)

/* WEAK_KEYS: removes the entry of `key` (its value is freed). Returns 0,
 * FP_ENOENT, FP_EINVAL. */
FP_API int fp_weakmap_remove(fp_weakmap *m, const void *key);

/* WEAK_VALUES: stores a weak reference to `obj` (a framepool object you hold
 * a reference to) under `key`, replacing an existing entry. Returns 0,
 * FP_EINVAL, FP_ENOMEM, FP_ELIMIT. */
FP_API int fp_weakmap_put_u64(fp_weakmap *m, uint64_t key, void *obj);

/* WEAK_VALUES: returns 0 and a new strong reference (+1, caller releases)
 * in *obj while the value of `key` lives; FP_ENOENT (*obj = NULL) when
 * there is no entry or its value is dying; FP_EINVAL. */
FP_API int fp_weakmap_get_u64(fp_weakmap *m, uint64_t key, void **obj);
/* fp_weakmap_get_u64 is a macro passing the call site (FP_DIAG=refs). */
FP_API int fp_weakmap_get_u64_at(fp_weakmap *m, uint64_t key, void **obj, const char *file,
                                 int line, const char *func);
#define fp_weakmap_get_u64(m, key, obj) \
    fp_weakmap_get_u64_at((m), (key), (obj), __FILE__, __LINE__, __func__)

/* WEAK_VALUES: removes the entry of `key`. Returns 0, FP_ENOENT, FP_EINVAL. */
FP_API int fp_weakmap_remove_u64(fp_weakmap *m, uint64_t key);

/* Returns the number of entries whose key (WEAK_KEYS) or value
 * (WEAK_VALUES) is alive. An object's entries leave the count before the
 * fp_unref that drops its last reference returns. 0 for NULL. */
FP_API size_t fp_weakmap_len(fp_weakmap *m);

/* Calls fn for every live entry over a snapshot taken at the start: each
 * visited key (WEAK_KEYS) or value (WEAK_VALUES) is held by a strong
 * reference during its call, so objects dying concurrently (or released
 * inside fn) are safe; entries added during the walk are not visited.
 * WEAK_KEYS: fn(key_object, 0, value, user), the value stays valid during
 * the call even if the entry is removed meanwhile. WEAK_VALUES: fn(NULL,
 * key, value_object, user). fn may call any map function. Stops when fn
 * returns non-zero and returns that value; otherwise 0. FP_ENOMEM when the
 * snapshot cannot be allocated, FP_EINVAL. */
FP_API int fp_weakmap_foreach(fp_weakmap *m,
                              int (*fn)(void *key_obj, uint64_t key, void *value, void *user),
                              void *user);

/* Removes every entry (values freed). Thread-safe. */
FP_API void fp_weakmap_clear(fp_weakmap *m);

#ifdef __cplusplus
}
#endif
#endif
