/*
 * Internal interfaces shared by framepool's modules (core and av). Not
 * installed. Names use the fp__ prefix.
 */
#ifndef FRAMEPOOL_INTERNAL_H
#define FRAMEPOOL_INTERNAL_H

#include "framepool/base.h"
#include "framepool/image.h"
#include "framepool/obj.h"
#include "framepool/pool.h"

#include <stdatomic.h>
#include <stdio.h>

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
    struct fp__obj *diag_prev;   /* diagnostics live list (diag.c, under its lock) */
    struct fp__obj *diag_next;
    void *diag_extra;            /* diagnostics: backtrace or other per-object record */
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
 * out, or a weak slot under its lock). */
int fp__obj_try_ref(fp__obj *h);

/* Frees an object's memory (for dispose hooks that decide to free). */
void fp__obj_free_memory(fp__obj *h);

/* Debug builds: frees the objects held back to detect double unrefs (the
 * allocator changes, and tests that count live allocations call it). */
void fp__obj_quarantine_flush(void);

/* Benchmarks only: switches the per-type counters off (statistics then stop
 * being meaningful), to measure what a build without them would cost. */
void fp__obj_set_counting(int on);

/* Changes the bytes charged by a live object. */
void fp__obj_charge(fp__obj *h, size_t bytes);

/* Prints "<what>: object of type 'T' created at file:line (func)" and aborts. */
_Noreturn void fp__obj_fatal(const fp__obj *h, const char *what);

/* weak.c: called on the last release of an object with FP__OBJ_WEAK or
 * FP__OBJ_ONFREE set, before its finalizer runs. Invalidates the object's
 * weak handles and returns its fp_on_free callbacks in a list that the
 * caller runs with fp__weak_run_callbacks after finalizing. */
typedef struct fp__onfree fp__onfree;
fp__onfree *fp__weak_dying(fp__obj *h);
void fp__weak_run_callbacks(fp__onfree *list);
/* weak.c, for weak maps: the handle id of h's current life, or 0 when h has
 * no slot (never had a weak handle or callback). */
uint64_t fp__weak_peek(const fp__obj *h);
/* Registers an on-free callback on h (a live object) and returns the record
 * and h's handle id, for fp__onfree_cancel. 0, FP_ENOMEM, FP_ELIMIT. */
int fp__onfree_add(fp__obj *h, void (*cb)(void *user), void *user, fp__onfree **node,
                   uint64_t *id);
/* Cancels a record from fp__onfree_add (at most once per record): returns 1
 * when it will never run (freed), 0 when the object is dying and the
 * callback has been or will be run by the releasing thread. */
int fp__onfree_cancel(uint64_t id, fp__onfree *node);
/* Test hook: sets the generation bits (1..32; other values restore the
 * build default); slots whose generation reaches the limit are retired.
 * Returns the previous value. */
unsigned fp__weak_set_gen_bits(unsigned bits);

/* diag.c: hooks called while diagnostics tracking is on. */
extern _Atomic int fp__diag_mode; /* 0 = off (the one branch on the hot path) */
void fp__diag_on_new(fp__obj *h);
void fp__diag_on_free(fp__obj *h);

/* Type statistics registry (obj.c). */
fp__typestat *fp__typestat_get(const fp_type *type);

/* Width and height in samples of `plane` of a width x height image of the
 * format `d` (chroma planes rounded up, as FFmpeg does). */
void fp__plane_dims(const fp_pixfmt_desc *d, int plane, int width, int height, int *w, int *h);

/* Current time on CLOCK_MONOTONIC in microseconds. */
int64_t fp__now_us(void);
/* The same clock at tick resolution (a few ms), several times cheaper. */
int64_t fp__coarse_now_us(void);

/* A thread-local error message buffer shared by core modules. */
void fp__set_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *fp__get_errmsg(void);

/* image.c: creates/recycles images (used by pool.c and the av bridge). */
typedef struct fp__image fp__image;
struct fp__image {
    fp_image pub;
    fp_layout layout;            /* layout of `pixels` (planes == 0 for wrapped images) */
    uint8_t *pixels;             /* start of the pixel allocation inside the object */
    struct fp_pool *pool;        /* owning pool (holds no reference while idle) */
    unsigned pool_gen;           /* generation the buffer was made for */
    fp__image *next_idle;        /* pool LIFO link */
    int64_t idle_since_us;
    void (*wrap_free)(void *user);
    void *wrap_user;
};

/* Bytes of an image object before its pixels (kept 64-byte aligned). */
#define FP__IMAGE_HDR_SIZE ((sizeof(fp__image) + 63) & ~(size_t)63)

static inline fp__image *fp__img(const fp_image *img)
{
    return (fp__image *)img;
}

/* Resets an image's per-frame fields (timestamps, index, flags). */
void fp__image_reset(fp__image *im);
/* Sets the plane pointers of `im` from its layout and pixel memory. */
void fp__image_bind_planes(fp__image *im);
/* Creates an image object holding `layout` pixels, with `dispose` as its
 * last-release hook (fp__pool_image_returned: a pooled image, counted by its
 * pool). */
fp__image *fp__image_alloc(const fp_layout *layout, fp_pixfmt format, int av_format, int width,
                           int height, void (*dispose)(fp__obj *h), const char *file, int line,
                           const char *func);
/* Copies the pixels of `src` into `dst` (same size and format). */
void fp__image_copy_pixels(fp_image *dst, const fp_image *src);

/* pool.c: returns a pooled image to its pool (its dispose hook). */
void fp__pool_image_returned(fp__obj *h);

/* pool.c: whether `img` fits the pool's current buffers (and the pool is open). */
int fp__pool_matches(struct fp_pool *p, const fp_image *img);
/* pool.c: what every pool counts for the fp_image statistics: images out
 * (acquired and not yet released), their bytes, and images ever created or
 * revived by a pool, including pools that are gone. Takes the pool registry
 * lock and each pool's lock. */
void fp__pool_image_counts(uint64_t *live, uint64_t *bytes, uint64_t *created);
/* pool.c: visits every pool in the process (for leak reports). `fn` runs
 * under the registry lock: it must not read type statistics (a read of the
 * fp_image figures takes that lock). */
int fp__pool_foreach(int (*fn)(struct fp_pool *p, const fp_pool_stats *s, int closed, void *user),
                     void *user);

#ifdef FP_DEBUG
#define FP__DEBUG 1
#else
#define FP__DEBUG 0
#endif

#endif
