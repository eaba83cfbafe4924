/* fp_pool and fp_budget: bounded, LIFO frame pools with a shared byte cap. */
#define _POSIX_C_SOURCE 200809L
#include "pool_priv.h"
#include "typestat.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AGE_CHECK_INTERVAL_US 100000

struct fp_budget {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t max_bytes;
    _Atomic uint64_t used;
    _Atomic uint64_t peak;
    _Atomic uint64_t refusals;
    _Atomic uint64_t reclaimed;
    _Atomic unsigned waiters;
    struct fp_pool *pools; /* attached pools, under mu */
    unsigned npools;
};

/* A pool's layout and bounds, as one generation has them. */
typedef struct pool_params {
    fp_layout layout;
    fp_pixfmt format;
    int av_format;
    int width, height;
    unsigned min_buffers, max_buffers;
    int64_t max_idle_us;
    int prefault;
} pool_params;

/* Lifetime. The pool object carries two counts: its fp refcount (the
 * owner's references, fp_ref/fp_unref) and `life`: one for the owner side
 * plus one for every buffer the pool has made and not yet freed (idle or
 * out), as FFmpeg's AVBufferPool does. When the owner's last reference goes,
 * pool_dispose closes the pool, frees its idle buffers and drops the owner
 * side's life reference; each buffer that comes back afterwards is freed and
 * drops its own. Whoever drops the last life reference destroys the pool,
 * and every path drops its life references only after it has finished
 * touching the pool (or its budget), so nothing can use a destroyed pool:
 * the last returning buffer is the last thing that touches it. A buffer's
 * life reference lasts from its allocation to its free, so the hot paths
 * (an acquire from the idle list, a release into it) touch no extra atomic. */
struct fp_pool {
    _Atomic uint32_t life;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char name[64];
    pool_params cur; /* the current generation's layout and bounds */
    /* cur.max_idle_us, readable without the lock (the release path decides
     * whether to read the clock before it takes the lock). */
    _Atomic int64_t max_idle_us_hint;
    unsigned generation;
    size_t buffer_bytes;
    /* buffers */
    fp__image *idle; /* LIFO, newest first */
    unsigned n_idle, n_out, n_alloc;
    unsigned n_making; /* misses counted in n_out whose buffer is not made yet */
    uint64_t bytes, idle_bytes;
    uint64_t made; /* buffers this pool created (misses and prefill) */
    int64_t last_age_check_us;
    /* state */
    int canceled;
    int closed; /* the owner's last reference is gone */
    unsigned waiters;
    /* statistics */
    uint64_t peak, hits, misses, waits, timeouts, limits, frees;
    /* budget and registries */
    fp_budget *budget;
    struct fp_pool *budget_next, *budget_prev;
    struct fp_pool *all_next, *all_prev;
};

static void pool_dispose(fp__obj *h);
static void budget_finalize(void *obj);

const fp_type fp_pool_type = {"fp_pool", NULL};
const fp_type fp_budget_type = {"fp_budget", budget_finalize};


/* ---- time helpers ---------------------------------------------------------- */

static void deadline_from_now(struct timespec *ts, int64_t timeout_us)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    int64_t ns = ts->tv_nsec + (timeout_us % 1000000) * 1000;
    ts->tv_sec += (time_t)(timeout_us / 1000000) + (time_t)(ns / 1000000000);
    ts->tv_nsec = (long)(ns % 1000000000);
}

static void cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

/* ---- budget ------------------------------------------------------------------ */

static void budget_finalize(void *obj)
{
    fp_budget *b = obj;
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
}

int fp_budget_new_at(size_t max_bytes, fp_budget **out, const char *file, int line,
                     const char *func)
{
    if (!out)
        return FP_EINVAL;
    *out = NULL;
    if (max_bytes == 0)
        return FP_EINVAL;
    fp_budget *b = fp__obj_new(&fp_budget_type, sizeof *b, sizeof *b, NULL, file, line, func);
    if (!b)
        return FP_ENOMEM;
    pthread_mutex_init(&b->mu, NULL);
    cond_init_monotonic(&b->cv);
    b->max_bytes = max_bytes;
    *out = b;
    return FP_OK;
}

void fp_budget_get_stats(fp_budget *b, fp_budget_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!b)
        return;
    out->max_bytes = b->max_bytes;
    out->used_bytes = atomic_load(&b->used);
    out->peak_bytes = atomic_load(&b->peak);
    out->refusals = atomic_load(&b->refusals);
    out->reclaimed = atomic_load(&b->reclaimed);
    pthread_mutex_lock(&b->mu);
    out->pools = b->npools;
    pthread_mutex_unlock(&b->mu);
}

static int budget_try_charge(fp_budget *b, uint64_t bytes)
{
    /* seq_cst: a waiter's look at `used` after announcing itself (see
     * budget_uncharge). */
    uint64_t u = atomic_load_explicit(&b->used, memory_order_seq_cst);
    do {
        if (bytes > b->max_bytes || u > b->max_bytes - bytes)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&b->used, &u, u + bytes, memory_order_relaxed,
                                                    memory_order_relaxed));
    uint64_t now = u + bytes, p = atomic_load_explicit(&b->peak, memory_order_relaxed);
    while (now > p && !atomic_compare_exchange_weak_explicit(&b->peak, &p, now,
                                                             memory_order_relaxed,
                                                             memory_order_relaxed)) {
    }
    return 1;
}

/* A waiter announces itself (waiters++) and then looks at `used`; a release
 * lowers `used` and then looks at `waiters`. Both pairs are sequentially
 * consistent, so at least one side sees the other: either the waiter sees
 * the space, or the release sees the waiter and wakes it (it re-checks under
 * b->mu, which the wake takes, so the wake cannot fall between its check
 * and its sleep). With weaker orders both could read the old values on a
 * weakly ordered CPU, and a waiter without a timeout would sleep forever. */
static void budget_uncharge(fp_budget *b, uint64_t bytes)
{
    atomic_fetch_sub_explicit(&b->used, bytes, memory_order_seq_cst);
    if (atomic_load_explicit(&b->waiters, memory_order_seq_cst)) {
        pthread_mutex_lock(&b->mu);
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
    }
}

/* ---- buffers ------------------------------------------------------------------ */

static void pool_destroy(fp_pool *p);

/* Drops `n` life references (see struct fp_pool); the last one destroys the
 * pool. The caller must not touch p afterwards. */
static void life_drop(fp_pool *p, uint32_t n)
{
    if (n && atomic_fetch_sub_explicit(&p->life, n, memory_order_acq_rel) == n)
        pool_destroy(p);
}

/* Frees buffers no longer counted by their pool (a list linked by
 * next_idle, possibly of several pools on one budget), then drops the life
 * reference each held: a pool is touched only while one of its buffers
 * still holds it alive. */
static __attribute__((noinline)) void free_list_slow(fp__image *list)
{
    while (list) {
        fp__image *next = list->next_idle;
        fp_pool *p = list->pool;
        size_t bytes = list->pub.bytes;
        fp__obj_free_memory(fp__hdr(list));
        if (p->budget)
            budget_uncharge(p->budget, bytes);
        life_drop(p, 1);
        list = next;
    }
}

/* The hot paths call this with NULL nearly always: no call then. */
static inline void free_list(fp__image *list)
{
    if (__builtin_expect(list != NULL, 0))
        free_list_slow(list);
}

/* Allocates a buffer of the pool's current generation (lock not held; the
 * caller holds an owner reference). The new object is live with refs 1 and
 * holds a life reference to the pool; the caller counts it. */
static fp__image *buffer_alloc(fp_pool *p, const fp_layout *l, fp_pixfmt format, int av_format,
                               int w, int h, unsigned gen, int prefault, const char *file,
                               int line, const char *func)
{
    fp__image *im = fp__image_alloc(l, format, av_format, w, h, fp__pool_image_returned, file,
                                    line, func);
    if (!im)
        return NULL;
    if (prefault)
        memset(im->pixels, 0, l->size);
    im->pool = p;
    im->pool_gen = gen;
    /* The buffer's life reference (the caller holds an owner reference, so
     * the pool is alive and stays so). */
    atomic_fetch_add_explicit(&p->life, 1, memory_order_relaxed);
    /* The per-type counters leave pooled images to their pools: the pools
     * are the source of those fp_image figures. */
    fp__typestat_set_source(&fp_image_type, fp__pool_image_counts);
    return im;
}

/* Under p->mu: detaches idle buffers beyond `keep` (oldest first) and those
 * older than the idle limit; returns them as a list to free after unlocking. */
static fp__image *detach_idle(fp_pool *p, unsigned keep, int64_t older_than_us)
{
    fp__image **link = &p->idle;
    unsigned i = 0;
    while (*link && i < keep) {
        if (older_than_us && (*link)->idle_since_us < older_than_us && i >= p->cur.min_buffers)
            break;
        link = &(*link)->next_idle;
        i++;
    }
    fp__image *cut = *link;
    *link = NULL;
    unsigned n = 0;
    uint64_t bytes = 0;
    for (fp__image *im = cut; im; im = im->next_idle) {
        n++;
        bytes += im->pub.bytes;
    }
    p->n_idle -= n;
    p->n_alloc -= n;
    p->idle_bytes -= bytes;
    p->bytes -= bytes;
    p->frees += n;
    return cut;
}

static fp__image *age_idle(fp_pool *p, int64_t now_us)
{
    if (p->cur.max_idle_us <= 0 || p->n_idle <= p->cur.min_buffers ||
        now_us - p->last_age_check_us < AGE_CHECK_INTERVAL_US)
        return NULL;
    p->last_age_check_us = now_us;
    return detach_idle(p, p->n_idle, now_us - p->cur.max_idle_us);
}

/* ---- registry of all pools (diagnostics) ---------------------------------------- */

/* The fp_image statistics count pooled images through their pools (obj.c
 * leaves them out of the per-type counters): an image is live from its
 * acquire to its last release, and each acquire creates one. A pool stays in
 * the registry until its last buffer is back, so the images still out of a
 * pool whose owner let go stay counted; when a pool goes, its creations move
 * to `gone_created`, under all_lock, so that a read sees them exactly once. */
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static fp_pool *all_pools;
static uint64_t gone_created; /* images created by pools that are gone; all_lock */

static void all_add(fp_pool *p)
{
    pthread_mutex_lock(&all_lock);
    p->all_next = all_pools;
    if (all_pools)
        all_pools->all_prev = p;
    all_pools = p;
    pthread_mutex_unlock(&all_lock);
}

static void all_remove(fp_pool *p)
{
    pthread_mutex_lock(&all_lock);
    pthread_mutex_lock(&p->mu);
    gone_created += p->hits + p->made; /* no buffer is out: n_alloc is 0 */
    pthread_mutex_unlock(&p->mu);
    if (p->all_prev)
        p->all_prev->all_next = p->all_next;
    else
        all_pools = p->all_next;
    if (p->all_next)
        p->all_next->all_prev = p->all_prev;
    pthread_mutex_unlock(&all_lock);
}

void fp__pool_image_counts(uint64_t *live, uint64_t *bytes, uint64_t *created)
{
    uint64_t n = 0, b = 0, c;
    pthread_mutex_lock(&all_lock);
    c = gone_created;
    for (fp_pool *p = all_pools; p; p = p->all_next) {
        pthread_mutex_lock(&p->mu);
        n += p->n_out - p->n_making;
        b += p->bytes - p->idle_bytes;
        c += p->hits + p->made;
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&all_lock);
    *live = n;
    *bytes = b;
    *created = c;
}

int fp__pool_foreach(int (*fn)(fp_pool *p, const fp_pool_stats *s, int closed, void *user),
                     void *user)
{
    int rc = 0;
    pthread_mutex_lock(&all_lock);
    for (fp_pool *p = all_pools; p && !rc; p = p->all_next) {
        fp_pool_stats st;
        fp_pool_get_stats(p, &st);
        pthread_mutex_lock(&p->mu);
        int closed = p->closed;
        pthread_mutex_unlock(&p->mu);
        rc = fn(p, &st, closed, user);
    }
    pthread_mutex_unlock(&all_lock);
    return rc;
}

/* ---- configuration ---------------------------------------------------------- */


static int params_from_config(const fp_pool_config *cfg, pool_params *pp)
{
    if (!cfg || cfg->width <= 0 || cfg->height <= 0 || cfg->width > FP_MAX_DIMENSION ||
        cfg->height > FP_MAX_DIMENSION) {
        fp_errmsg_set("pool: invalid size %dx%d (1..%d)", cfg ? cfg->width : 0,
                       cfg ? cfg->height : 0, FP_MAX_DIMENSION);
        return FP_EINVAL;
    }
    memset(pp, 0, sizeof *pp);
    if (cfg->layout) {
        pp->layout = *cfg->layout;
        int ok = pp->layout.planes >= 1 && pp->layout.planes <= 4 && pp->layout.size > 0;
        for (int i = 0; ok && i < pp->layout.planes; i++)
            ok = pp->layout.stride[i] > 0 && (pp->layout.stride[i] & 63) == 0 &&
                 (pp->layout.offset[i] & 63) == 0 && pp->layout.rows[i] > 0 &&
                 pp->layout.offset[i] + (size_t)pp->layout.stride[i] * pp->layout.rows[i] <=
                     pp->layout.size;
        if (!ok || cfg->format <= FP_PIX_NONE || cfg->format >= FP_PIX_COUNT_) {
            fp_errmsg_set("pool: invalid explicit layout or format");
            return FP_EINVAL;
        }
    } else {
        int rc = fp_layout_compute(cfg->format, cfg->width, cfg->height, cfg->align,
                                   cfg->padding, &pp->layout);
        if (rc) {
            fp_errmsg_set("pool: cannot lay out %s %dx%d with alignment %d",
                           fp_pixfmt_name(cfg->format), cfg->width, cfg->height, cfg->align);
            return rc;
        }
    }
    pp->format = cfg->format;
    pp->av_format = cfg->av_format ? cfg->av_format : -1;
    pp->width = cfg->width;
    pp->height = cfg->height;
    pp->max_buffers = cfg->max_buffers ? cfg->max_buffers : FP_POOL_DEFAULT_MAX;
    pp->min_buffers = cfg->min_buffers;
    if (pp->min_buffers > pp->max_buffers) {
        fp_errmsg_set("pool: min_buffers (%u) exceeds max_buffers (%u)", pp->min_buffers,
                       pp->max_buffers);
        return FP_EINVAL;
    }
    if (cfg->max_idle_seconds < 0) {
        fp_errmsg_set("pool: negative max_idle_seconds");
        return FP_EINVAL;
    }
    pp->max_idle_us = (int64_t)(cfg->max_idle_seconds * 1e6);
    pp->prefault = cfg->prefault != 0;
    return FP_OK;
}

static void apply_params(fp_pool *p, const pool_params *pp)
{
    p->cur = *pp;
    atomic_store_explicit(&p->max_idle_us_hint, pp->max_idle_us, memory_order_relaxed);
    p->buffer_bytes = FP__IMAGE_HDR_SIZE + pp->layout.size;
}

/* ---- allocation of a new buffer (shared by acquire and prefill) ---------------- */

static int budget_reclaim(fp_budget *b, uint64_t need);

/* Charges the budget for one buffer, reclaiming idle buffers of every pool on
 * the budget and, when allowed, waiting until `deadline`. */
static int charge_for_buffer(fp_pool *p, size_t bytes, int64_t timeout_us)
{
    fp_budget *b = p->budget;
    if (!b || budget_try_charge(b, bytes))
        return FP_OK;
    if (budget_reclaim(b, bytes) && budget_try_charge(b, bytes))
        return FP_OK;
    if (timeout_us != 0) {
        struct timespec dl;
        if (timeout_us > 0)
            deadline_from_now(&dl, timeout_us);
        pthread_mutex_lock(&b->mu);
        atomic_fetch_add(&b->waiters, 1);
        int rc = FP_OK;
        for (;;) {
            if (budget_try_charge(b, bytes))
                break;
            pthread_mutex_lock(&p->mu);
            int canceled = p->canceled;
            pthread_mutex_unlock(&p->mu);
            if (canceled) {
                rc = FP_ECANCELED;
                break;
            }
            int w = timeout_us > 0 ? pthread_cond_timedwait(&b->cv, &b->mu, &dl)
                                   : pthread_cond_wait(&b->cv, &b->mu);
            if (w == ETIMEDOUT && !budget_try_charge(b, bytes)) {
                rc = FP_ETIMEDOUT;
                break;
            } else if (w == ETIMEDOUT) {
                break;
            }
        }
        atomic_fetch_sub(&b->waiters, 1);
        pthread_mutex_unlock(&b->mu);
        if (rc == FP_ETIMEDOUT)
            fp_errmsg_set("pool '%s': waited %lld us for the shared budget of %llu bytes "
                           "(%llu in use); raise the budget or release frames sooner",
                           p->name, (long long)timeout_us, (unsigned long long)b->max_bytes,
                           (unsigned long long)atomic_load(&b->used));
        if (rc)
            return rc;
        return FP_OK;
    }
    atomic_fetch_add(&b->refusals, 1);
    fp_errmsg_set("pool '%s': budget of %llu bytes reached (%llu in use, a buffer needs %zu); "
                   "raise the budget given to fp_budget_new or release frames sooner",
                   p->name, (unsigned long long)b->max_bytes,
                   (unsigned long long)atomic_load(&b->used), bytes);
    return FP_ELIMIT;
}

/* ---- pool ---------------------------------------------------------------------- */

static void budget_attach(fp_budget *b, fp_pool *p)
{
    pthread_mutex_lock(&b->mu);
    p->budget_next = b->pools;
    p->budget_prev = NULL;
    if (b->pools)
        b->pools->budget_prev = p;
    b->pools = p;
    b->npools++;
    pthread_mutex_unlock(&b->mu);
}

static void budget_detach(fp_budget *b, fp_pool *p)
{
    pthread_mutex_lock(&b->mu);
    if (p->budget_prev)
        p->budget_prev->budget_next = p->budget_next;
    else
        b->pools = p->budget_next;
    if (p->budget_next)
        p->budget_next->budget_prev = p->budget_prev;
    b->npools--;
    pthread_mutex_unlock(&b->mu);
}

/* Frees every idle buffer of every open pool on the budget. Returns the
 * number of buffers freed. */
static int budget_reclaim(fp_budget *b, uint64_t need)
{
    (void)need;
    int freed = 0;
    fp__image *all = NULL;
    /* Detach under b->mu (the list of pools), free after unlocking: the
     * buffers keep their pools alive until free_list drops their life
     * references, and a pool destroyed by that drop detaches itself from
     * the budget under b->mu. A closed pool has already freed its idle
     * buffers (and may be waiting for b->mu to detach): skip it. */
    pthread_mutex_lock(&b->mu);
    for (fp_pool *q = b->pools; q; q = q->budget_next) {
        pthread_mutex_lock(&q->mu);
        fp__image *list = q->closed ? NULL : detach_idle(q, 0, 0);
        pthread_mutex_unlock(&q->mu);
        while (list) {
            fp__image *next = list->next_idle;
            list->next_idle = all;
            all = list;
            list = next;
            freed++;
        }
    }
    pthread_mutex_unlock(&b->mu);
    free_list(all);
    if (freed)
        atomic_fetch_add(&b->reclaimed, (uint64_t)freed);
    return freed;
}

/* The last life reference is gone: no buffer exists and the owner let go. */
static void pool_destroy(fp_pool *p)
{
    if (p->budget) {
        budget_detach(p->budget, p);
        fp_unref(&p->budget);
    }
    all_remove(p);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    fp__obj_free_memory(fp__hdr(p));
}

/* The owner's last reference is gone: free the idle buffers, and the pool
 * itself once every outstanding buffer has come back. */
static void pool_dispose(fp__obj *h)
{
    fp_pool *p = fp__payload(h);
    pthread_mutex_lock(&p->mu);
    p->closed = 1;
    fp__image *list = detach_idle(p, 0, 0);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    free_list(list);
    life_drop(p, 1); /* the owner side's */
}

void fp__pool_image_returned(fp__obj *h)
{
    fp__image *im = fp__payload(h);
    fp_pool *p = im->pool;
    /* The pool counts its images at their buffer's size: take back a charge
     * the user changed (fp_obj_set_bytes), which the counters hold. */
    if (__builtin_expect(atomic_load_explicit(&h->bytes, memory_order_relaxed) != im->pub.bytes,
                         0))
        fp__obj_charge(h, im->pub.bytes);
    if (FP__DEBUG && im->layout.size)
        memset(im->pixels, 0xA5, im->layout.size); /* poison: stale reads show up */
    fp__image_reset(im);
    /* Reading the clock costs more than the rest of a release: only pools
     * that age idle buffers stamp them. */
    int64_t now = atomic_load_explicit(&p->max_idle_us_hint, memory_order_relaxed) > 0
                      ? fp__coarse_now_us()
                      : 0;
    fp__image *expired = NULL;
    int keep;
    pthread_mutex_lock(&p->mu);
    p->n_out--;
    keep = !p->closed && im->pool_gen == p->generation &&
           !(p->budget && atomic_load_explicit(&p->budget->waiters, memory_order_relaxed));
    if (keep) {
        im->idle_since_us = now;
        im->next_idle = p->idle;
        p->idle = im;
        p->n_idle++;
        p->idle_bytes += im->pub.bytes;
        expired = age_idle(p, now);
    } else {
        p->n_alloc--;
        p->bytes -= im->pub.bytes;
        p->frees++;
    }
    if (p->waiters)
        pthread_cond_signal(&p->cv);
    if (!keep) {
        im->next_idle = expired;
        expired = im;
    }
    pthread_mutex_unlock(&p->mu);
    /* Kept and nothing expired: the pool is not touched after unlocking
     * (its owner may be closing it right now). Otherwise the buffers being
     * freed hold the pool alive until free_list drops them. */
    free_list(expired);
}

/* Allocates `n` buffers into the idle list (min_buffers). */
static int prefill(fp_pool *p)
{
    for (;;) {
        pthread_mutex_lock(&p->mu);
        if (p->n_alloc >= p->cur.min_buffers || p->closed) {
            pthread_mutex_unlock(&p->mu);
            return FP_OK;
        }
        p->n_alloc++;
        pool_params snap = p->cur;
        unsigned gen = p->generation;
        size_t bytes = p->buffer_bytes;
        pthread_mutex_unlock(&p->mu);
        int rc = charge_for_buffer(p, bytes, 0);
        fp__image *im = NULL;
        if (rc == FP_OK) {
            im = buffer_alloc(p, &snap.layout, snap.format, snap.av_format, snap.width,
                              snap.height, gen, snap.prefault, "(pool prefill)", 0, __func__);
            if (!im) {
                if (p->budget)
                    budget_uncharge(p->budget, bytes);
                rc = FP_ENOMEM;
            }
        }
        if (rc) {
            pthread_mutex_lock(&p->mu);
            p->n_alloc--;
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
        /* Hand it straight back: counts as allocated and idle. */
        pthread_mutex_lock(&p->mu);
        p->n_out++;
        p->made++;
        p->bytes += im->pub.bytes;
        if (p->n_alloc > p->peak)
            p->peak = p->n_alloc;
        pthread_mutex_unlock(&p->mu);
        fp_image *pub = &im->pub;
        fp_unref(&pub);
    }
}

int fp_pool_new_at(const fp_pool_config *cfg, fp_pool **out, const char *file, int line,
                   const char *func)
{
    if (!out)
        return FP_EINVAL;
    *out = NULL;
    pool_params pp;
    int rc = params_from_config(cfg, &pp);
    if (rc)
        return rc;
    fp_pool *p = fp__obj_new(&fp_pool_type, sizeof *p, sizeof *p, pool_dispose, file, line, func);
    if (!p)
        return FP_ENOMEM;
    atomic_init(&p->life, 1); /* the owner side's */
    pthread_mutex_init(&p->mu, NULL);
    cond_init_monotonic(&p->cv);
    snprintf(p->name, sizeof p->name, "%s", cfg->name ? cfg->name : "pool");
    apply_params(p, &pp);
    p->generation = 1;
    if (cfg->budget) {
        p->budget = fp_ref(cfg->budget);
        budget_attach(p->budget, p);
    }
    all_add(p);
    rc = prefill(p);
    if (rc) {
        fp_unref(&p);
        return rc;
    }
    *out = p;
    return FP_OK;
}

/* Takes the newest idle buffer; called with p->mu held and an idle buffer
 * there, returns with it released. */
static inline __attribute__((always_inline)) int acquire_hit(fp_pool *p, fp_image **out,
                                                             const char *file, int line,
                                                             const char *func)
{
    fp__image *expired = NULL;
    fp__image *im = p->idle;
    p->idle = im->next_idle;
    im->next_idle = NULL;
    p->n_idle--;
    p->n_out++;
    p->hits++;
    p->idle_bytes -= im->pub.bytes;
    if (p->cur.max_idle_us > 0)
        expired = age_idle(p, fp__coarse_now_us());
    pthread_mutex_unlock(&p->mu);
    free_list(expired);
    fp__obj_revive(fp__hdr(im), file, line, func);
    *out = &im->pub;
    return FP_OK;
}

/* Everything but a plain hit: a new buffer, the cap, waiting. Called with
 * p->mu held; returns with it released. Out of line, so that the hit path
 * keeps few registers to save. */
static __attribute__((noinline)) int acquire_slow(fp_pool *p, int64_t timeout_us,
                                                  fp_image **out, const char *file, int line,
                                                  const char *func)
{
    struct timespec dl;
    int have_deadline = 0, waited = 0;
    for (;;) {
        if (p->closed) {
            pthread_mutex_unlock(&p->mu);
            fp_errmsg_set("pool '%s': acquire after the pool's last reference was dropped",
                           p->name);
            return FP_EINVAL;
        }
        if (p->idle)
            return acquire_hit(p, out, file, line, func);
        if (p->n_alloc < p->cur.max_buffers) {
            p->n_alloc++;
            p->n_out++;
            p->n_making++;
            p->misses++;
            if (p->n_alloc > p->peak)
                p->peak = p->n_alloc;
            pool_params snap = p->cur;
            unsigned gen = p->generation;
            size_t bytes = p->buffer_bytes;
            pthread_mutex_unlock(&p->mu);
            int rc = charge_for_buffer(p, bytes, timeout_us);
            fp__image *im = NULL;
            if (rc == FP_OK) {
                im = buffer_alloc(p, &snap.layout, snap.format, snap.av_format, snap.width,
                                  snap.height, gen, snap.prefault, file, line, func);
                if (!im) {
                    if (p->budget)
                        budget_uncharge(p->budget, bytes);
                    rc = FP_ENOMEM;
                    fp_errmsg_set("pool '%s': out of memory allocating a %zu-byte buffer",
                                   p->name, bytes);
                }
            }
            pthread_mutex_lock(&p->mu);
            p->n_making--;
            if (rc) {
                p->n_alloc--;
                p->n_out--;
                if (rc == FP_ELIMIT)
                    p->limits++;
                if (rc == FP_ETIMEDOUT)
                    p->timeouts++;
                if (p->waiters)
                    pthread_cond_signal(&p->cv);
            } else {
                p->made++;
                p->bytes += im->pub.bytes;
            }
            pthread_mutex_unlock(&p->mu);
            if (rc)
                return rc;
            *out = &im->pub;
            return FP_OK;
        }
        /* At the cap. */
        if (timeout_us == 0) {
            p->limits++;
            pthread_mutex_unlock(&p->mu);
            fp_errmsg_set("pool '%s': all %u buffers are in use (max_buffers reached); "
                           "release frames sooner or raise max_buffers",
                           p->name, p->cur.max_buffers);
            return FP_ELIMIT;
        }
        if (p->canceled) {
            pthread_mutex_unlock(&p->mu);
            fp_errmsg_set("pool '%s': acquire cancelled", p->name);
            return FP_ECANCELED;
        }
        if (!waited) {
            p->waits++;
            waited = 1;
        }
        if (timeout_us > 0 && !have_deadline) {
            deadline_from_now(&dl, timeout_us);
            have_deadline = 1;
        }
        p->waiters++;
        int w = timeout_us > 0 ? pthread_cond_timedwait(&p->cv, &p->mu, &dl)
                               : pthread_cond_wait(&p->cv, &p->mu);
        p->waiters--;
        if (p->canceled && !p->idle) {
            pthread_mutex_unlock(&p->mu);
            fp_errmsg_set("pool '%s': acquire cancelled", p->name);
            return FP_ECANCELED;
        }
        if (w == ETIMEDOUT && !p->idle && p->n_alloc >= p->cur.max_buffers) {
            p->timeouts++;
            pthread_mutex_unlock(&p->mu);
            fp_errmsg_set("pool '%s': no buffer came back within %lld us (all %u in use); "
                           "release frames sooner or raise max_buffers",
                           p->name, (long long)timeout_us, p->cur.max_buffers);
            return FP_ETIMEDOUT;
        }
    }
}

int fp_pool_acquire_at(fp_pool *p, int64_t timeout_us, fp_image **out, const char *file,
                       int line, const char *func)
{
    if (!out)
        return FP_EINVAL;
    *out = NULL;
    if (!p)
        return FP_EINVAL;
    pthread_mutex_lock(&p->mu);
    if (__builtin_expect(p->idle != NULL && !p->closed, 1))
        return acquire_hit(p, out, file, line, func);
    return acquire_slow(p, timeout_us, out, file, line, func);
}

int fp_pool_trim(fp_pool *p, unsigned keep)
{
    if (!p)
        return 0;
    pthread_mutex_lock(&p->mu);
    if (keep < p->cur.min_buffers)
        keep = p->cur.min_buffers;
    unsigned before = p->n_idle;
    fp__image *list = detach_idle(p, keep, 0);
    unsigned freed = before - p->n_idle;
    pthread_mutex_unlock(&p->mu);
    free_list(list);
    return (int)freed;
}

int fp_pool_reconfigure(fp_pool *p, const fp_pool_config *cfg)
{
    if (!p)
        return FP_EINVAL;
    pool_params pp;
    int rc = params_from_config(cfg, &pp);
    if (rc)
        return rc;
    pthread_mutex_lock(&p->mu);
    apply_params(p, &pp);
    p->generation++;
    fp__image *list = detach_idle(p, 0, 0);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    free_list(list);
    return prefill(p);
}

void fp_pool_cancel(fp_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->canceled = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->budget) {
        pthread_mutex_lock(&p->budget->mu);
        pthread_cond_broadcast(&p->budget->cv);
        pthread_mutex_unlock(&p->budget->mu);
    }
}

void fp_pool_resume(fp_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->canceled = 0;
    pthread_mutex_unlock(&p->mu);
}

void fp_pool_get_stats(fp_pool *p, fp_pool_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    out->allocated = p->n_alloc;
    out->outstanding = p->n_out;
    out->idle = p->n_idle;
    out->peak = p->peak;
    out->hits = p->hits;
    out->misses = p->misses;
    out->waits = p->waits;
    out->timeouts = p->timeouts;
    out->limits = p->limits;
    out->frees = p->frees;
    out->bytes = p->bytes;
    out->idle_bytes = p->idle_bytes;
    out->buffer_bytes = p->buffer_bytes;
    out->generation = p->generation;
    out->width = p->cur.width;
    out->height = p->cur.height;
    out->format = p->cur.format;
    out->max_buffers = p->cur.max_buffers;
    out->min_buffers = p->cur.min_buffers;
    pthread_mutex_unlock(&p->mu);
}

const char *fp_pool_name(const fp_pool *p)
{
    return p ? p->name : NULL;
}

void fp_pool_layout(fp_pool *p, fp_layout *out)
{
    if (!p || !out)
        return;
    pthread_mutex_lock(&p->mu);
    *out = p->cur.layout;
    pthread_mutex_unlock(&p->mu);
}

static int add_idle_bytes(fp_pool *p, const fp_pool_stats *s, int closed, void *user)
{
    (void)p;
    (void)closed;
    *(uint64_t *)user += s->idle_bytes;
    return 0;
}

uint64_t fp_pool_idle_bytes_total(void)
{
    uint64_t total = 0;
    fp__pool_foreach(add_idle_bytes, &total);
    return total;
}

int fp__pool_matches(fp_pool *p, const fp_image *img)
{
    pthread_mutex_lock(&p->mu);
    int ok = !p->closed && p->cur.width == img->width && p->cur.height == img->height &&
             p->cur.format == img->format;
    if (ok && img->format == FP_PIX_OTHER) {
        const fp__image *im = fp__img(img);
        ok = im->layout.planes != 0 && memcmp(&p->cur.layout, &im->layout, sizeof p->cur.layout) == 0;
    }
    pthread_mutex_unlock(&p->mu);
    return ok;
}
