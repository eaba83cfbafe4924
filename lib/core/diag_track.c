/*
 * Diagnostics, tracking: the live-object list the object layer's hooks
 * maintain (creation sites, backtraces), the interned backtraces, and the
 * copy of the list that reports work from (fp__diag_collect). FP_DIAG
 * parsing, the exit handler and the signal thread are in diag_env.c; the
 * summary, growth and leak reports in diag_report.c; snapshots and diffs in
 * diag_snapshot.c; memory per frame in lib/measure/memtrack.c.
 *
 * The live list is split into shards (by object address), each a doubly
 * linked list under its own mutex, so that threads creating objects with
 * sites on rarely meet on a lock. diag_on_new and diag_on_free are the
 * object layer's tracking hooks: fp__diag_track_apply registers the first
 * only while sites are on, and the object layer calls the second only for
 * objects flagged FP__OBJ_TRACKED, so with tracking off nothing here runs.
 */
#define _GNU_SOURCE /* dladdr */
#include "diag_internal.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Tracking bits the object layer tests: FP_DIAG_SITES | FP_DIAG_BACKTRACE. */
_Atomic int fp__diag_mode;
_Atomic int fp__diag_bt_depth = 16;
/* ---- live list ------------------------------------------------------------------ */

#define NSHARDS 16

typedef struct shard {
    _Alignas(64) pthread_mutex_t mu;
    fp__obj *head;
    size_t n;
} shard;

static shard shards[NSHARDS] = {
#define SH {.mu = PTHREAD_MUTEX_INITIALIZER}
    SH, SH, SH, SH, SH, SH, SH, SH, SH, SH, SH, SH, SH, SH, SH, SH,
#undef SH
};

static shard *shard_of(const fp__obj *h)
{
    uint64_t v = (uint64_t)(uintptr_t)h >> 6;
    v *= 0x9e3779b97f4a7c15ull;
    return &shards[v >> 60];
}

/* ---- backtraces ------------------------------------------------------------------ */

#define BT_BUCKETS 4096
static fp__bt *bt_table[BT_BUCKETS];
static pthread_mutex_t bt_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t bt_hash(void *const *frames, int n)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)(uintptr_t)frames[i];
        h *= 1099511628211ull;
    }
    return h ^ (uint64_t)n;
}

static fp__bt *bt_find(uint64_t hash, void *const *frames, int n)
{
    for (fp__bt *b = bt_table[hash & (BT_BUCKETS - 1)]; b; b = b->next)
        if (b->hash == hash && b->depth == n && !memcmp(b->frames, frames, n * sizeof(void *)))
            return b;
    return NULL;
}

static fp__bt *bt_capture(void)
{
    void *buf[FP__DIAG_BT_MAX + 1];
    int depth = atomic_load_explicit(&fp__diag_bt_depth, memory_order_relaxed);
    int n = backtrace(buf, depth + 1);
    if (n <= 1)
        return NULL;
    void **frames = buf + 1; /* drop this function's own frame */
    n--;
    uint64_t hash = bt_hash(frames, n);
    pthread_mutex_lock(&bt_lock);
    fp__bt *b = bt_find(hash, frames, n);
    pthread_mutex_unlock(&bt_lock);
    if (b)
        return b;
    /* Allocate outside the lock: the allocator is user code. */
    size_t sz = sizeof(fp__bt) + (size_t)n * sizeof(void *);
    fp__bt *nb = fp_alloc(sz, 16);
    if (!nb)
        return NULL;
    nb->hash = hash;
    nb->depth = n;
    memcpy(nb->frames, frames, (size_t)n * sizeof(void *));
    pthread_mutex_lock(&bt_lock);
    b = bt_find(hash, frames, n);
    if (!b) {
        nb->next = bt_table[hash & (BT_BUCKETS - 1)];
        bt_table[hash & (BT_BUCKETS - 1)] = nb;
        b = nb;
        nb = NULL;
    }
    pthread_mutex_unlock(&bt_lock);
    if (nb)
        fp_free(nb, sz);
    return b;
}

void fp__diag_print_bt(FILE *out, const fp__bt *tb, const char *indent)
{
    if (!tb)
        return;
    /* Start below the outermost framepool entry point (exported fp_*
     * functions) so that the first line is the caller's. Without dynamic
     * symbols (a static link without -rdynamic) every frame is printed. */
    int start = 0;
    for (int i = 0; i < tb->depth; i++) {
        Dl_info di;
        if (dladdr(tb->frames[i], &di) && di.dli_sname && !strncmp(di.dli_sname, "fp_", 3))
            start = i + 1;
    }
    if (start >= tb->depth)
        start = 0;
    for (int i = start; i < tb->depth; i++) {
        Dl_info di;
        void *pc = tb->frames[i];
        int num = i - start;
        memset(&di, 0, sizeof di);
        if (dladdr(pc, &di) && di.dli_fname) {
            const char *obj = strrchr(di.dli_fname, '/');
            obj = obj ? obj + 1 : di.dli_fname;
            uintptr_t off = (uintptr_t)pc - (uintptr_t)di.dli_fbase;
            if (di.dli_sname)
                fprintf(out, "%s#%d %s+0x%zx (%s+0x%zx)\n", indent, num, di.dli_sname,
                        (size_t)((uintptr_t)pc - (uintptr_t)di.dli_saddr), obj, (size_t)off);
            else
                fprintf(out, "%s#%d %p (%s+0x%zx)\n", indent, num, pc, obj, (size_t)off);
        } else {
            fprintf(out, "%s#%d %p\n", indent, num, pc);
        }
    }
}

/* ---- reference history (FP_DIAG=refs) ------------------------------------------------------
 *
 * An object created while refs is on gets a history record (diag_extra
 * points at it, and it holds the creation backtrace) and the flag
 * FP__OBJ_REFS, so that the object layer calls diag_on_ref for each of its
 * references taken and dropped. The record keeps one entry per site (file,
 * line and, for takes, the caller of the site's function), net: taken minus
 * dropped, with the thread and frame tick of the last event; at most
 * FP__REFS_SITES sites, the rest counted together. A small spin lock per
 * record orders the events of threads sharing the object; the record is
 * freed with the object (diag_on_free), and every event happens while its
 * thread holds a reference, so it never races with that. */

typedef struct refhist {
    atomic_flag lock;
    uint32_t seq;
    const fp__bt *bt;
    fp__refcopy c;
} refhist;

static uint32_t thread_id(void)
{
    static _Thread_local uint32_t tid;
    if (!tid)
        tid = (uint32_t)syscall(SYS_gettid);
    return tid;
}

/* The frame above the one `ret` returns into: the caller of the function
 * that took the reference. One short unwind (glibc backtrace). */
static const void *caller_of(const void *ret)
{
    if (!ret)
        return NULL;
    void *buf[8];
    int n = backtrace(buf, 8);
    for (int i = 0; i + 1 < n; i++)
        if (buf[i] == ret)
            return buf[i + 1];
    return NULL;
}

static void hist_lock(refhist *r)
{
    while (atomic_flag_test_and_set_explicit(&r->lock, memory_order_acquire))
        ;
}

static void hist_unlock(refhist *r)
{
    atomic_flag_clear_explicit(&r->lock, memory_order_release);
}

/* Adds an event to the record; the caller holds its lock. */
static void hist_add(refhist *r, int delta, const char *file, int line, const char *func,
                     const void *caller, int created, int kept)
{
    fp__refcopy *c = &r->c;
    fp__refsite *e = NULL;
    for (unsigned i = 0; i < c->n; i++) {
        fp__refsite *x = &c->site[i];
        if (x->line != line ||
            (x->file != file && (!x->file || !file || strcmp(x->file, file) != 0)))
            continue;
        /* A take is its own entry per caller (found once per site, see
         * diag_on_ref); a drop cancels a take made at the same line, one
         * still holding first. */
        if (delta > 0) {
            if (x->caller == caller && x->kept == kept) {
                e = x;
                break;
            }
        } else if (!e || (e->net <= 0 && x->net > 0)) {
            e = x;
        }
    }
    if (!e && c->n < FP__REFS_SITES) {
        e = &c->site[c->n++];
        memset(e, 0, sizeof *e);
        e->file = file;
        e->line = line;
        e->func = func;
        e->caller = delta > 0 ? caller : NULL;
        e->first_seq = r->seq;
        e->created = (unsigned char)created;
        e->kept = (unsigned char)kept;
    }
    r->seq++;
    if (!e) {
        c->other_net += delta;
        c->other_events++;
        return;
    }
    e->net += delta;
    if (delta > 0)
        e->taken++;
    else
        e->dropped++;
    e->tid = thread_id();
    e->tick = fp_frame_now();
}

/* Whether the record has an entry for a take at file:line already; if so
 * stores its caller. The caller holds the record's lock. */
static int known_take(const refhist *r, const char *file, int line, int kept,
                      const void **caller)
{
    for (unsigned i = 0; i < r->c.n; i++) {
        const fp__refsite *x = &r->c.site[i];
        if (x->line == line && x->taken && x->kept == kept && !x->created &&
            (x->file == file || (x->file && file && !strcmp(x->file, file)))) {
            *caller = x->caller;
            return 1;
        }
    }
    return 0;
}

static void diag_on_ref(fp__obj *h, int delta, const char *file, int line, const char *func,
                        const void *ret, unsigned how)
{
    refhist *r = h->diag_extra;
    if (!r) /* only after a reference-counting bug: the object is dead */
        return;
    int kept = (how & FP__REF_KEPT) != 0;
    const void *caller = NULL;
    hist_lock(r);
    /* The caller of a site's function is found once per site and object
     * (an unwind costs about a microsecond): later takes at that line are
     * counted with the first one's caller. */
    if (delta > 0 && ret && !known_take(r, file, line, kept, &caller)) {
        hist_unlock(r);
        caller = caller_of(ret);
        hist_lock(r);
    }
    hist_add(r, delta, file, line, func, caller, 0, kept);
    hist_unlock(r);
}

const fp__bt *fp__diag_obj_bt(const fp__obj *h)
{
    uint32_t f = atomic_load_explicit(&h->flags, memory_order_relaxed);
    if (!(f & FP__OBJ_REFS))
        return h->diag_extra;
    const refhist *r = h->diag_extra;
    return r ? r->bt : NULL;
}

int fp__diag_history_copy(const fp__obj *h, fp__refcopy *out)
{
    uint32_t f = atomic_load_explicit(&h->flags, memory_order_relaxed);
    refhist *r = (f & FP__OBJ_REFS) ? h->diag_extra : NULL;
    if (!r) {
        memset(out, 0, sizeof *out);
        return FP_ENOENT;
    }
    hist_lock(r);
    out->n = r->c.n;
    out->other_net = r->c.other_net;
    out->other_events = r->c.other_events;
    memcpy(out->site, r->c.site, r->c.n * sizeof *out->site);
    hist_unlock(r);
    return FP_OK;
}

/* ---- hooks called by the object layer ------------------------------------------------- */

static void diag_on_new(fp__obj *h)
{
    int mode = atomic_load_explicit(&fp__diag_mode, memory_order_relaxed);
    if (!(mode & FP_DIAG_SITES))
        return;
    const fp__bt *bt = (mode & FP_DIAG_BACKTRACE) ? bt_capture() : NULL;
    uint32_t add = FP__OBJ_TRACKED;
    refhist *r = NULL;
    if ((mode & FP_DIAG_REFS) && (r = fp_alloc(sizeof *r, 16)) != NULL) {
        atomic_flag_clear(&r->lock);
        r->seq = 0;
        r->bt = bt;
        r->c.n = 0;
        r->c.other_net = 0;
        r->c.other_events = 0;
        hist_add(r, +1, h->file, h->line, h->func, NULL, 1, 0);
        add |= FP__OBJ_REFS;
    }
    h->diag_extra = r ? (void *)r : (void *)bt;
    shard *s = shard_of(h);
    pthread_mutex_lock(&s->mu);
    h->diag_prev = NULL;
    h->diag_next = s->head;
    if (s->head)
        s->head->diag_prev = h;
    s->head = h;
    s->n++;
    pthread_mutex_unlock(&s->mu);
    /* Only the creating thread knows the object yet (a new object, or a
     * pooled image being revived), so a plain read-modify-write is enough. */
    uint32_t f = atomic_load_explicit(&h->flags, memory_order_relaxed);
    atomic_store_explicit(&h->flags, f | add, memory_order_relaxed);
}

static void diag_on_free(fp__obj *h)
{
    shard *s = shard_of(h);
    pthread_mutex_lock(&s->mu);
    if (h->diag_prev)
        h->diag_prev->diag_next = h->diag_next;
    else
        s->head = h->diag_next;
    if (h->diag_next)
        h->diag_next->diag_prev = h->diag_prev;
    s->n--;
    pthread_mutex_unlock(&s->mu);
    /* FP__OBJ_TRACKED stays set: the object is dead, and a pooled image's
     * flags are reset when it is revived. Out of the list, nobody copies
     * the history any more, and nobody holds a reference to add to it. */
    h->diag_prev = h->diag_next = NULL;
    uint32_t f = atomic_load_explicit(&h->flags, memory_order_relaxed);
    void *extra = h->diag_extra;
    h->diag_extra = NULL;
    if ((f & FP__OBJ_REFS) && extra) {
        atomic_fetch_and_explicit(&h->flags, ~(uint32_t)FP__OBJ_REFS, memory_order_relaxed);
        fp_free(extra, sizeof(refhist));
    }
}

void fp__diag_track_apply(int mode)
{
    if (mode & FP_DIAG_REFS) {
        /* Before any object is flagged; the first backtrace() loads the
         * unwinder, so do it now rather than on some hot path. */
        void *warm[2];
        backtrace(warm, 2);
        fp__obj_hook_refs(diag_on_ref);
    }
    atomic_store_explicit(&fp__diag_mode, mode, memory_order_relaxed);
    /* The free hook stays once set: objects tracked earlier still leave the
     * live list when they die. */
    fp__obj_hook_tracking((mode & FP_DIAG_SITES) ? diag_on_new : NULL, diag_on_free);
}

static size_t tracked_count(void)
{
    size_t n = 0;
    for (int i = 0; i < NSHARDS; i++) {
        pthread_mutex_lock(&shards[i].mu);
        n += shards[i].n;
        pthread_mutex_unlock(&shards[i].mu);
    }
    return n;
}

static int collect(fp__diag_item **items, size_t *n, size_t *cap, fp__refcopy **hists,
                   size_t *hcap)
{
    *items = NULL;
    *n = *cap = 0;
    if (hists) {
        *hists = NULL;
        *hcap = 0;
    }
    int refs = hists && (atomic_load_explicit(&fp__diag_mode, memory_order_relaxed) &
                         FP_DIAG_REFS);
    for (;;) {
        size_t want = tracked_count() + 64;
        fp__diag_item *a = fp_alloc(want * sizeof *a, 16);
        if (!a)
            return FP_ENOMEM;
        /* Histories are copied only for objects that have one; room for
         * all of them is made up front (nothing is allocated under a lock). */
        size_t hwant = refs ? want : 0, hk = 0;
        fp__refcopy *hc = hwant ? fp_alloc(hwant * sizeof *hc, 16) : NULL;
        if (hwant && !hc) {
            fp_free(a, want * sizeof *a);
            return FP_ENOMEM;
        }
        size_t k = 0;
        int overflow = 0;
        for (int i = 0; i < NSHARDS && !overflow; i++) {
            shard *s = &shards[i];
            pthread_mutex_lock(&s->mu);
            if (k + s->n > want) {
                overflow = 1;
            } else {
                for (fp__obj *h = s->head; h; h = h->diag_next) {
                    uint32_t refs_now = atomic_load_explicit(&h->refs, memory_order_relaxed);
                    if (refs_now == 0)
                        continue; /* being released right now */
                    fp__diag_item *it = &a[k++];
                    it->type = h->type;
                    it->file = h->file;
                    it->func = h->func;
                    it->line = h->line;
                    it->tb = fp__diag_obj_bt(h);
                    it->obj = fp__payload(h);
                    it->birth = h->birth;
                    it->bytes = atomic_load_explicit(&h->bytes, memory_order_relaxed);
                    it->refs = refs_now;
                    it->flags = atomic_load_explicit(&h->flags, memory_order_relaxed);
                    it->hist = NULL;
                    if (hc && hk < hwant && fp__diag_history_copy(h, &hc[hk]) == FP_OK)
                        it->hist = &hc[hk++];
                }
            }
            pthread_mutex_unlock(&s->mu);
        }
        if (!overflow) {
            *items = a;
            *n = k;
            *cap = want;
            if (hists) {
                if (hk) {
                    *hists = hc;
                    *hcap = hwant;
                } else if (hc) {
                    fp_free(hc, hwant * sizeof *hc);
                }
            }
            return FP_OK;
        }
        fp_free(a, want * sizeof *a);
        if (hc)
            fp_free(hc, hwant * sizeof *hc);
    }
}

int fp__diag_collect(fp__diag_item **items, size_t *n, size_t *cap)
{
    return collect(items, n, cap, NULL, NULL);
}

int fp__diag_collect_refs(fp__diag_item **items, size_t *n, size_t *cap, fp__refcopy **hists,
                          size_t *hcap)
{
    return collect(items, n, cap, hists, hcap);
}
