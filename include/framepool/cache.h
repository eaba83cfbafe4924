/*
 * framepool/cache.h — fp_cache: a cache bounded in bytes and in entries.
 *
 * Keys are uint64_t: a frame index, a timestamp, or a 64-bit hash of
 * whatever identifies the value (the cache compares keys, nothing else).
 * Values are framepool objects; the cache holds one strong reference per
 * entry and charges each entry the bytes given at put (default: the
 * object's fp_obj_bytes, which for an image is its pixel memory).
 *
 *   fp_cache_config cfg = { .max_bytes = 256 << 20 };   // SIEVE, 256 MiB
 *   fp_cache *thumbs; fp_cache_new(&cfg, &thumbs);
 *   fp_cache_put(thumbs, frame_index, thumb, 0);         // the cache takes a reference
 *   fp_image *t = fp_cache_get(thumbs, frame_index);     // +1 or NULL
 *
 * Eviction: SIEVE by default (one FIFO queue, a "visited" bit set by hits,
 * a hand sweeping from the oldest entry that spares visited entries once);
 * LRU can be selected for comparison. A hit never moves list nodes under
 * SIEVE, so hits are cheap.
 *
 * Pinned entries: an entry whose object someone else still references
 * (strong count > 1) is pinned. It stays counted in the budget — its memory
 * is really in use — but eviction skips it, because evicting it would free
 * nothing. When pinned entries alone exceed a bound, a put either fails
 * (FP_CACHE_STRICT: FP_ELIMIT) or goes ahead and the excess is reported as
 * overshoot in the statistics; the next put or fp_cache_trim evicts back to
 * the bounds once the pins are released. Looking for a victim skips pinned
 * entries one by one, so a put into a cache full of pinned entries costs
 * O(entries).
 *
 * Every function is thread-safe: one mutex per cache, never held while an
 * object is released or a loader runs. Cost: get and put are O(1) expected
 * (a hash lookup; a put may evict); a single-threaded hit takes well under
 * 100 ns.
 */
#ifndef FRAMEPOOL_CACHE_H
#define FRAMEPOOL_CACHE_H

#include "obj.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fp_cache fp_cache;

/* The framepool type of caches ("fp_cache"). */
FP_API extern const fp_type fp_cache_type;

typedef enum fp_cache_policy {
    FP_CACHE_SIEVE = 0, /* default */
    FP_CACHE_LRU = 1,   /* least recently used: for comparison */
} fp_cache_policy;

enum {
    /* A put that cannot fit (pinned entries fill the bounds, or the object
     * alone exceeds max_bytes) fails with FP_ELIMIT instead of overshooting. */
    FP_CACHE_STRICT = 1u << 0,
    /* Allows max_bytes == max_entries == 0 (a cache with no bound at all). */
    FP_CACHE_UNBOUNDED = 1u << 1,
};

/* Cache configuration; zero means the documented default. */
typedef struct fp_cache_config {
    const char *name;        /* for messages (copied, up to 47 bytes); default "cache" */
    size_t max_bytes;        /* byte bound; 0 = no byte bound */
    size_t max_entries;      /* entry bound; 0 = no entry bound */
    fp_cache_policy policy;  /* default SIEVE */
    unsigned flags;          /* FP_CACHE_STRICT, FP_CACHE_UNBOUNDED */
} fp_cache_config;

/* Creates a cache. Both bounds 0 is refused (FP_EINVAL) unless flags has
 * FP_CACHE_UNBOUNDED: a cache is bounded unless you ask otherwise. Returns 0
 * with +1 (caller releases) in *out; FP_EINVAL (bad config), FP_ENOMEM.
 * Releasing the cache's last reference releases every entry. */
#define fp_cache_new(cfg, out) fp_cache_new_at((cfg), (out), __FILE__, __LINE__, __func__)
FP_API int fp_cache_new_at(const fp_cache_config *cfg, fp_cache **out, const char *file,
                           int line, const char *func);

/* Stores `obj` (a framepool object; the cache takes its own reference, the
 * caller keeps its own) under `key`, charged `bytes` (0: fp_obj_bytes(obj)).
 * An existing entry for key is replaced (its reference released). Evicts
 * unpinned entries (policy order) until the new entry fits. If it still
 * does not fit: with FP_CACHE_STRICT returns FP_ELIMIT (message in
 * fp_errmsg; counted as a rejected put; the key then has no entry);
 * otherwise stores it and the excess shows as overshoot. Returns 0,
 * FP_EINVAL (NULL cache/obj), FP_ENOMEM, FP_ELIMIT. Thread-safe. Released
 * objects (evicted, replaced) are released after the lock is dropped. */
FP_API int fp_cache_put(fp_cache *c, uint64_t key, void *obj, size_t bytes);
/* fp_cache_put is a macro passing the call site: with FP_DIAG=refs the
 * cache's reference is recorded at the put. */
FP_API int fp_cache_put_at(fp_cache *c, uint64_t key, void *obj, size_t bytes, const char *file,
                           int line, const char *func);
#define fp_cache_put(c, key, obj, bytes) \
    fp_cache_put_at((c), (key), (obj), (bytes), __FILE__, __LINE__, __func__)

/* Returns the object cached under `key` as a new reference (+1, caller
 * releases), or NULL (a miss; NULL cache). A hit marks the entry visited
 * (SIEVE) or most recently used (LRU). Thread-safe. */
FP_API void *fp_cache_get(fp_cache *c, uint64_t key);
/* fp_cache_get is a macro passing the call site (FP_DIAG=refs history). */
FP_API void *fp_cache_get_at(fp_cache *c, uint64_t key, const char *file, int line,
                             const char *func);
#define fp_cache_get(c, key) fp_cache_get_at((c), (key), __FILE__, __LINE__, __func__)

/* Loader for fp_cache_get_or_load: makes the value of `key`, stores +1 in
 * *obj and its charge in *bytes (0: fp_obj_bytes), returns 0; or returns a
 * negative error. Runs without any cache lock held; it must not call
 * fp_cache_get_or_load for the same key on the same cache (it would wait
 * for itself). */
typedef int (*fp_cache_load_fn)(uint64_t key, void *user, void **obj, size_t *bytes);

/* Returns the cached object of `key`, loading it on a miss: exactly one
 * caller per key runs `load` at a time, concurrent callers for the same key
 * wait for it and all receive its result — the object (+1 each), or its
 * error code. A loaded object is put in the cache (as fp_cache_put; if the
 * put is rejected the object is still returned). Returns 0 with +1 in
 * *out, the loader's error, FP_EINVAL, FP_ENOMEM. Thread-safe. */
FP_API int fp_cache_get_or_load(fp_cache *c, uint64_t key, fp_cache_load_fn load, void *user,
                                void **out);
/* fp_cache_get_or_load is a macro passing the call site: the references
 * given to the caller and kept by the cache are recorded there. */
FP_API int fp_cache_get_or_load_at(fp_cache *c, uint64_t key, fp_cache_load_fn load,
                                   void *user, void **out, const char *file, int line,
                                   const char *func);
#define fp_cache_get_or_load(c, key, load, user, out) \
    fp_cache_get_or_load_at((c), (key), (load), (user), (out), __FILE__, __LINE__, __func__)

/* Removes the entry of `key`. Returns 0, FP_ENOENT, FP_EINVAL. */
FP_API int fp_cache_remove(fp_cache *c, uint64_t key);

/* Removes every entry. Thread-safe. */
FP_API void fp_cache_clear(fp_cache *c);

/* Evicts unpinned entries until the cache is within its bounds (after pins
 * were released). Returns the number of entries evicted. Thread-safe. */
FP_API int fp_cache_trim(fp_cache *c);

typedef struct fp_cache_stats {
    uint64_t entries;           /* entries cached now */
    uint64_t bytes;             /* bytes charged by them */
    uint64_t pinned_entries;    /* entries whose object is also referenced elsewhere */
    uint64_t pinned_bytes;
    uint64_t hits;              /* fp_cache_get / get_or_load calls that found the key */
    uint64_t misses;            /* ... that did not (get_or_load: each load) */
    uint64_t evictions;         /* entries evicted to make room */
    uint64_t rejected;          /* puts refused with FP_ELIMIT (strict) */
    uint64_t overshoot_bytes;   /* bytes above max_bytes now (non-strict, pinned) */
    uint64_t overshoot_entries; /* entries above max_entries now */
    uint64_t peak_overshoot_bytes;
    uint64_t load_waits;        /* get_or_load calls that waited for another caller's load */
    uint64_t load_errors;       /* loads that returned an error */
    size_t max_bytes, max_entries;
    fp_cache_policy policy;
} fp_cache_stats;

/* Fills *out with a snapshot. Thread-safe; O(entries) (it counts pins). */
FP_API void fp_cache_get_stats(fp_cache *c, fp_cache_stats *out);

#ifdef __cplusplus
}
#endif
#endif
