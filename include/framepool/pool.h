/*
 * framepool/pool.h — fp_pool and fp_budget: bounded frame pools.
 *
 * A pool hands out images of one layout. An image goes back to its pool when
 * its last reference is dropped (from any thread); the pool reuses the most
 * recently returned buffer first (LIFO: its pages are warm in cache and
 * resident, so reuse costs no page faults). A pool never holds more than
 * `max_buffers` buffers (idle + outstanding), so a loop that forgets to
 * release frames gets FP_ELIMIT (or waits, if asked) instead of growing.
 *
 * Lifetime: fp_pool_new returns +1. The pool lives until its last reference
 * is dropped AND every buffer it handed out has come back, in any order and
 * from any thread; idle buffers are freed as soon as the owner lets go. As
 * in FFmpeg's AVBufferPool, every buffer holds a counted reference to its
 * pool's memory, so the last buffer to come back is the last thing that
 * touches the pool. Once the owner's references are gone the pool is never
 * handed out again: fp_image_get_pool returns NULL for its images, and
 * fp_ref on a stale pointer to it aborts (obj.h).
 *
 * A budget caps the bytes of several pools together (16 camera streams,
 * "never more than 1 GiB of frames"). When a pool would exceed it, the idle
 * buffers of every pool on the budget are freed first; only then does the
 * acquire fail with FP_ELIMIT or wait.
 *
 * Locking: one mutex per pool, held only to move list pointers and
 * counters; the allocator is never called with a pool lock held.
 */
#ifndef FRAMEPOOL_POOL_H
#define FRAMEPOOL_POOL_H

#include "image.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fp_pool fp_pool;
typedef struct fp_budget fp_budget;

/* The framepool types of pools and budgets ("fp_pool", "fp_budget"). */
FP_API extern const fp_type fp_pool_type;
FP_API extern const fp_type fp_budget_type;

/* Default for max_buffers when the config leaves it 0. */
#define FP_POOL_DEFAULT_MAX 16

/* Pool configuration; zero means the documented default. */
typedef struct fp_pool_config {
    const char *name;          /* for messages and diagnostics (copied); default "pool" */
    fp_pixfmt format;          /* image format; FP_PIX_OTHER requires `layout` */
    int av_format;             /* AVPixelFormat carried on images (-1 or 0 when unused) */
    int width, height;         /* image size, 1..FP_MAX_DIMENSION */
    int align;                 /* row/plane alignment, power of two; default 64 */
    size_t padding;            /* extra bytes after the last plane; default 0 */
    const fp_layout *layout;   /* explicit layout (copied); overrides format/align/padding */
    unsigned min_buffers;      /* buffers allocated up front and kept warm; default 0 */
    unsigned max_buffers;      /* hard cap on buffers (idle + outstanding); default 16 */
    double max_idle_seconds;   /* idle buffers beyond min_buffers older than this are freed
                                  on the next acquire/release/trim; 0 = never */
    fp_budget *budget;         /* borrowed; the pool takes its own reference */
    int prefault;              /* non-zero: zero-fill each new buffer when it is allocated,
                                  so that its pages are resident before the first frame
                                  (with min_buffers: no page faults once running) */
} fp_pool_config;

/* Creates a pool. Allocates `min_buffers` buffers up front. Returns 0 with
 * +1 (caller releases) in *out; FP_EINVAL (bad size, format, alignment, or
 * min_buffers > max_buffers), FP_ENOMEM, FP_ELIMIT (the budget cannot hold
 * min_buffers). Thread-safe. */
#define fp_pool_new(cfg, out) fp_pool_new_at((cfg), (out), __FILE__, __LINE__, __func__)
FP_API int fp_pool_new_at(const fp_pool_config *cfg, fp_pool **out, const char *file, int line,
                          const char *func);

/* Takes a buffer from the pool: an idle one (most recently returned first)
 * or a newly allocated one while the pool has fewer than max_buffers.
 * When the pool is at its cap (or the budget is full):
 *   timeout_us == 0  returns FP_ELIMIT at once (message: fp_errmsg);
 *   timeout_us  > 0  waits that long for a buffer, then FP_ETIMEDOUT;
 *   timeout_us  < 0  waits until a buffer returns.
 * A wait ends early with FP_ECANCELED after fp_pool_cancel. On success stores
 * +1 (caller releases) in *out: a writable image with pts/index/flags reset
 * and uninitialised pixels, whose creation site is the caller's line.
 * Also FP_ENOMEM. Thread-safe; the hit path takes the pool mutex once. */
#define fp_pool_acquire(pool, timeout_us, out) \
    fp_pool_acquire_at((pool), (timeout_us), (out), __FILE__, __LINE__, __func__)
FP_API int fp_pool_acquire_at(fp_pool *pool, int64_t timeout_us, fp_image **out,
                              const char *file, int line, const char *func);

/* Frees idle buffers until at most `keep` remain idle (keep is raised to
 * min_buffers). Returns the number of buffers freed. Thread-safe. */
FP_API int fp_pool_trim(fp_pool *pool, unsigned keep);

/* Starts a new generation with a new layout and/or bounds (cfg->budget is
 * ignored: a pool keeps its budget). Idle buffers are freed now; buffers
 * still out are freed, not reused, when they come back. Waiters are woken to
 * retry. Returns 0, FP_EINVAL (bad config; the pool is unchanged), FP_ENOMEM
 * (pre-allocating min_buffers failed; the new config stays in effect).
 * Thread-safe. */
FP_API int fp_pool_reconfigure(fp_pool *pool, const fp_pool_config *cfg);

/* Wakes every waiter in fp_pool_acquire with FP_ECANCELED, and makes later
 * acquires that would wait fail with FP_ECANCELED at once (a try that finds a
 * buffer still succeeds) until fp_pool_resume. Thread-safe. */
FP_API void fp_pool_cancel(fp_pool *pool);
/* Clears the cancelled state. Thread-safe. */
FP_API void fp_pool_resume(fp_pool *pool);

typedef struct fp_pool_stats {
    uint64_t allocated;    /* buffers in existence (idle + outstanding, current generation and older) */
    uint64_t outstanding;  /* buffers handed out and not yet returned */
    uint64_t idle;         /* buffers waiting in the pool */
    uint64_t peak;         /* highest `allocated` ever */
    uint64_t hits;         /* acquires served by an idle buffer */
    uint64_t misses;       /* acquires that allocated a new buffer */
    uint64_t waits;        /* acquires that had to wait */
    uint64_t timeouts;     /* waits that ended with FP_ETIMEDOUT */
    uint64_t limits;       /* acquires refused with FP_ELIMIT */
    uint64_t frees;        /* buffers freed (trim, aging, old generation, budget) */
    uint64_t bytes;        /* bytes of all allocated buffers */
    uint64_t idle_bytes;   /* bytes of the idle buffers */
    size_t buffer_bytes;   /* bytes of one buffer of the current generation */
    unsigned generation;   /* 1 at creation, +1 per fp_pool_reconfigure */
    int width, height;     /* size of the current generation's images */
    fp_pixfmt format;      /* format of the current generation's images */
    unsigned max_buffers;
    unsigned min_buffers;
} fp_pool_stats;

/* Fills *out with a snapshot of the pool's figures. Thread-safe. */
FP_API void fp_pool_get_stats(fp_pool *pool, fp_pool_stats *out);

/* Returns the pool's configuration name (borrowed, valid while you hold the pool). */
FP_API const char *fp_pool_name(const fp_pool *pool);

/* Returns the current layout of the pool's buffers. Thread-safe. */
FP_API void fp_pool_layout(fp_pool *pool, fp_layout *out);

/* Total idle bytes in every pool of the process (for diagnostics). */
FP_API uint64_t fp_pool_idle_bytes_total(void);

/* ---- budget ---------------------------------------------------------------- */

/* Creates a byte budget of `max_bytes` (> 0) for pools to share. Returns 0
 * with +1 (caller releases) in *out, FP_EINVAL, FP_ENOMEM. Pools hold their
 * own references, so the budget lives while any pool uses it. */
#define fp_budget_new(max_bytes, out) fp_budget_new_at((max_bytes), (out), __FILE__, __LINE__, __func__)
FP_API int fp_budget_new_at(size_t max_bytes, fp_budget **out, const char *file, int line,
                            const char *func);

typedef struct fp_budget_stats {
    uint64_t max_bytes;
    uint64_t used_bytes;   /* bytes of buffers allocated by pools on this budget */
    uint64_t peak_bytes;
    uint64_t refusals;     /* charges refused (after freeing idle buffers) */
    uint64_t reclaimed;    /* idle buffers freed to make room */
    unsigned pools;        /* pools currently attached */
} fp_budget_stats;

/* Fills *out with a snapshot. Thread-safe. */
FP_API void fp_budget_get_stats(fp_budget *b, fp_budget_stats *out);

#ifdef __cplusplus
}
#endif
#endif
