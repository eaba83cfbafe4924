/*
 * Diagnostics: the live-object list (sites, backtraces), FP_DIAG switches,
 * the exit handler, the SIGUSR1 thread, the summary table, objgraph-style
 * growth and the leak report. Snapshots and diffs are in diag_snapshot.c,
 * memory per frame in memtrack.c.
 *
 * The live list is split into shards (by object address), each a doubly
 * linked list under its own mutex, so that threads creating objects with
 * sites on rarely meet on a lock. diag_on_new and diag_on_free are the
 * object layer's tracking hooks: fp_diag_set_flags registers the first only
 * while sites are on, and the object layer calls the second only for
 * objects flagged FP__OBJ_TRACKED, so with tracking off nothing here runs.
 */
#define _GNU_SOURCE /* dladdr, on_exit */
#include "diag_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Tracking bits the object layer tests: FP_DIAG_SITES | FP_DIAG_BACKTRACE. */
_Atomic int fp__diag_mode;
/* Every switch (FP_DIAG_*). */
static _Atomic unsigned diag_switches;
static _Atomic int bt_depth = 16;
#define BT_MAX 64

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
    void *buf[BT_MAX + 1];
    int depth = atomic_load_explicit(&bt_depth, memory_order_relaxed);
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

/* ---- hooks called by the object layer ------------------------------------------------- */

static void diag_on_new(fp__obj *h)
{
    int mode = atomic_load_explicit(&fp__diag_mode, memory_order_relaxed);
    if (!(mode & FP_DIAG_SITES))
        return;
    h->diag_extra = (mode & FP_DIAG_BACKTRACE) ? bt_capture() : NULL;
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
    atomic_store_explicit(&h->flags, f | FP__OBJ_TRACKED, memory_order_relaxed);
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
     * flags are reset when it is revived. */
    h->diag_prev = h->diag_next = NULL;
    h->diag_extra = NULL;
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

int fp__diag_collect(fp__diag_item **items, size_t *n, size_t *cap)
{
    *items = NULL;
    *n = *cap = 0;
    for (;;) {
        size_t want = tracked_count() + 64;
        fp__diag_item *a = fp_alloc(want * sizeof *a, 16);
        if (!a)
            return FP_ENOMEM;
        size_t k = 0;
        int overflow = 0;
        for (int i = 0; i < NSHARDS && !overflow; i++) {
            shard *s = &shards[i];
            pthread_mutex_lock(&s->mu);
            if (k + s->n > want) {
                overflow = 1;
            } else {
                for (fp__obj *h = s->head; h; h = h->diag_next) {
                    uint32_t refs = atomic_load_explicit(&h->refs, memory_order_relaxed);
                    if (refs == 0)
                        continue; /* being released right now */
                    fp__diag_item *it = &a[k++];
                    it->type = h->type;
                    it->file = h->file;
                    it->func = h->func;
                    it->line = h->line;
                    it->tb = h->diag_extra;
                    it->obj = fp__payload(h);
                    it->birth = h->birth;
                    it->bytes = atomic_load_explicit(&h->bytes, memory_order_relaxed);
                    it->refs = refs;
                    it->flags = atomic_load_explicit(&h->flags, memory_order_relaxed);
                }
            }
            pthread_mutex_unlock(&s->mu);
        }
        if (!overflow) {
            *items = a;
            *n = k;
            *cap = want;
            return FP_OK;
        }
        fp_free(a, want * sizeof *a);
    }
}

/* ---- switches ----------------------------------------------------------------------- */

#define ALL_SWITCHES                                                                       \
    (FP_DIAG_SITES | FP_DIAG_BACKTRACE | FP_DIAG_LEAKS_REPORT | FP_DIAG_LEAKS_ERROR |       \
     FP_DIAG_SIGNAL | FP_DIAG_SUMMARY)

static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;
static int exit_handler_installed;
static int signal_thread_started;
static int sig_pipe[2] = {-1, -1};

static void at_exit_handler(int status, void *arg);
static int start_signal_thread(void);

const char *fp_diag_errmsg(void)
{
    return fp__get_errmsg();
}

unsigned fp_diag_flags(void)
{
    return atomic_load_explicit(&diag_switches, memory_order_relaxed);
}

int fp_diag_set_flags(unsigned flags)
{
    if (flags & ~(unsigned)ALL_SWITCHES) {
        fp__set_errmsg("diag: unknown flag bits 0x%x", flags & ~(unsigned)ALL_SWITCHES);
        return FP_EINVAL;
    }
    if (flags & FP_DIAG_LEAKS_ERROR)
        flags |= FP_DIAG_LEAKS_REPORT;
    if (flags & (FP_DIAG_LEAKS_REPORT | FP_DIAG_BACKTRACE))
        flags |= FP_DIAG_SITES;
    int rc = FP_OK;
    pthread_mutex_lock(&setup_lock);
    if ((flags & (FP_DIAG_LEAKS_REPORT | FP_DIAG_SUMMARY)) && !exit_handler_installed) {
        on_exit(at_exit_handler, NULL);
        exit_handler_installed = 1;
    }
    if ((flags & FP_DIAG_SIGNAL) && !signal_thread_started) {
        rc = start_signal_thread();
        if (rc == FP_OK)
            signal_thread_started = 1;
        else
            flags &= ~(unsigned)FP_DIAG_SIGNAL;
    }
    if (flags & FP_DIAG_BACKTRACE) {
        /* The first backtrace() loads the unwinder; do it now, not inside a
         * constructor call on some hot path. */
        void *warm[2];
        backtrace(warm, 2);
    }
    atomic_store_explicit(&diag_switches, flags, memory_order_relaxed);
    int mode = (int)(flags & (FP_DIAG_SITES | FP_DIAG_BACKTRACE));
    atomic_store_explicit(&fp__diag_mode, mode, memory_order_relaxed);
    /* The free hook stays once set: objects tracked earlier still leave the
     * live list when they die. */
    fp__obj_hook_tracking((mode & FP_DIAG_SITES) ? diag_on_new : NULL, diag_on_free);
    pthread_mutex_unlock(&setup_lock);
    return rc;
}

static int item_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && !strncmp(s, word, n);
}

int fp_diag_configure(const char *spec)
{
    if (!spec) {
        fp__set_errmsg("diag: NULL specification");
        return FP_EINVAL;
    }
    unsigned flags = 0;
    int bad = 0;
    char badbuf[64] = "";
    const char *p = spec;
    while (*p) {
        const char *e = p + strcspn(p, ",");
        size_t n = (size_t)(e - p);
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0 || item_is(p, n, "off") || item_is(p, n, "0")) {
            /* nothing */
        } else if (item_is(p, n, "sites") || item_is(p, n, "on") || item_is(p, n, "1")) {
            flags |= FP_DIAG_SITES;
        } else if (item_is(p, n, "backtrace") || item_is(p, n, "backtraces")) {
            flags |= FP_DIAG_BACKTRACE;
        } else if (n > 10 && !strncmp(p, "backtrace=", 10)) {
            long d = strtol(p + 10, NULL, 10);
            if (d < 1 || d > BT_MAX) {
                bad = 1;
                snprintf(badbuf, sizeof badbuf, "%.*s", (int)n, p);
            } else {
                atomic_store(&bt_depth, (int)d);
                flags |= FP_DIAG_BACKTRACE;
            }
        } else if (item_is(p, n, "leaks") || item_is(p, n, "leaks=report")) {
            flags |= FP_DIAG_LEAKS_REPORT;
        } else if (item_is(p, n, "leaks=error")) {
            flags |= FP_DIAG_LEAKS_ERROR;
        } else if (item_is(p, n, "signal")) {
            flags |= FP_DIAG_SIGNAL;
        } else if (item_is(p, n, "summary")) {
            flags |= FP_DIAG_SUMMARY;
        } else {
            bad = 1;
            snprintf(badbuf, sizeof badbuf, "%.*s", (int)n, p);
        }
        p = *e ? e + 1 : e;
    }
    int rc = fp_diag_set_flags(flags);
    if (bad) {
        fp__set_errmsg("diag: unknown FP_DIAG item '%s' (known: sites, backtrace[=N], "
                       "leaks=report, leaks=error, signal, summary, off)",
                       badbuf);
        return FP_EINVAL;
    }
    return rc;
}

__attribute__((constructor)) static void diag_load(void)
{
    const char *s = getenv("FP_DIAG");
    if (s && *s && fp_diag_configure(s) != FP_OK)
        fprintf(stderr, "framepool: FP_DIAG: %s\n", fp__get_errmsg());
}

/* At exit: the summary and leak report when asked for. With leaks=error and
 * leaks found, a program that was exiting with status 0 exits with status 1
 * instead: stdio is flushed and _exit(1) ends the process (exit handlers
 * registered before framepool's, i.e. by libraries loaded earlier, do not
 * run). A non-zero status is kept. on_exit (glibc) is used because it tells
 * the handler which status the program chose. */
static void at_exit_handler(int status, void *arg)
{
    (void)arg;
    unsigned f = fp_diag_flags();
    if (f & (FP_DIAG_SUMMARY | FP_DIAG_LEAKS_REPORT))
        fflush(stdout); /* keep the program's own output first */
    if (f & FP_DIAG_SUMMARY)
        fp_diag_print_summary(stderr);
    if (f & FP_DIAG_LEAKS_REPORT) {
        int leaks = fp_diag_leak_report(stderr, 0);
        if ((f & FP_DIAG_LEAKS_ERROR) && leaks > 0 && status == 0) {
            fprintf(stderr, "framepool: exiting with status 1 because of %d leaked object%s "
                            "(FP_DIAG=leaks=error)\n",
                    leaks, leaks == 1 ? "" : "s");
            fflush(NULL);
            _exit(1);
        }
    }
    fflush(stderr);
}

/* ---- SIGUSR1: a self-pipe and a thread that reads it ----------------------------------- */

static void sigusr1_handler(int sig)
{
    (void)sig;
    int saved = errno;
    char c = 1;
    ssize_t r = write(sig_pipe[1], &c, 1); /* async-signal-safe; a full pipe drops it */
    (void)r;
    errno = saved;
}

static void *signal_thread(void *arg)
{
    (void)arg;
    for (;;) {
        char buf[16];
        ssize_t r = read(sig_pipe[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return NULL;
        fp_diag_report(stderr);
        fflush(stderr);
    }
}

static int start_signal_thread(void)
{
    if (pipe(sig_pipe) != 0) {
        fp__set_errmsg("diag: pipe for SIGUSR1 failed: %s", strerror(errno));
        return FP_ENOMEM;
    }
    /* The thread blocks every signal: the handler may run on any other. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &at, signal_thread, NULL);
    pthread_attr_destroy(&at);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        close(sig_pipe[0]);
        close(sig_pipe[1]);
        sig_pipe[0] = sig_pipe[1] = -1;
        fp__set_errmsg("diag: could not start the SIGUSR1 thread: %s", strerror(rc));
        return FP_ENOMEM;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sigusr1_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    return FP_OK;
}

/* ---- formatting helpers ------------------------------------------------------------------ */

char *fp_diag_format_size(char *buf, size_t n, double size, int sign)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (!buf || n == 0)
        return buf;
    if (size == 0)
        size = 0; /* sizes are integers: no "-0 B" */
    for (int u = 0; u < 5; u++) {
        double a = size < 0 ? -size : size;
        if (a < 100 && u != 0) {
            snprintf(buf, n, sign ? "%+.1f %s" : "%.1f %s", size, units[u]);
            return buf;
        }
        if (a < 10 * 1024 || u == 4) {
            snprintf(buf, n, sign ? "%+.0f %s" : "%.0f %s", size, units[u]);
            return buf;
        }
        size /= 1024;
    }
    return buf;
}

char *fp__diag_commas(char *buf, size_t n, uint64_t v)
{
    char tmp[32], out[48];
    int len = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    size_t k = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            out[k++] = ',';
        out[k++] = tmp[i];
    }
    out[k] = 0;
    if (n) {
        size_t c = k < n - 1 ? k : n - 1;
        memcpy(buf, out, c);
        buf[c] = 0;
    }
    return buf;
}

int fp__diag_own_type(const fp_type *t)
{
    return t == &fp_snapshot_type || t == &fp_diag_diff_type || t == &fp_growth_type ||
           t == &fp_memtrack_type;
}

/* ---- summary ----------------------------------------------------------------------------- */

typedef struct type_row {
    const fp_type *type;
    fp_type_stats st;
} type_row;

typedef struct type_rows {
    type_row *rows;
    size_t n, cap;
} type_rows;

static int rows_cb(const fp_type *t, const fp_type_stats *s, void *user)
{
    type_rows *r = user;
    if (r->n < r->cap) {
        r->rows[r->n].type = t;
        r->rows[r->n].st = *s;
        r->n++;
    }
    return 0;
}

static int count_cb(const fp_type *t, const fp_type_stats *s, void *user)
{
    (void)t;
    (void)s;
    (*(size_t *)user)++;
    return 0;
}

/* Fills an fp_alloc'd array with every type's statistics. */
static int collect_types(type_rows *r)
{
    size_t n = 0;
    fp_type_foreach(count_cb, &n);
    r->cap = n + 16;
    r->n = 0;
    r->rows = fp_alloc(r->cap * sizeof *r->rows, 16);
    if (!r->rows)
        return FP_ENOMEM;
    fp_type_foreach(rows_cb, r);
    return FP_OK;
}

static void free_types(type_rows *r)
{
    fp_free(r->rows, r->cap * sizeof *r->rows);
    r->rows = NULL;
}

static int row_cmp(const void *a, const void *b)
{
    const fp_type_stats *x = &((const type_row *)a)->st, *y = &((const type_row *)b)->st;
    if (x->live_bytes != y->live_bytes)
        return x->live_bytes > y->live_bytes ? -1 : 1;
    if (x->live != y->live)
        return x->live > y->live ? -1 : 1;
    if (x->peak_bytes != y->peak_bytes)
        return x->peak_bytes > y->peak_bytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

void fp_diag_print_summary(FILE *out)
{
    if (!out)
        return;
    type_rows r;
    char c1[32], s1[32], s2[32], c2[32];
    fprintf(out, "framepool summary at frame %s\n",
            fp__diag_commas(c1, sizeof c1, fp_frame_now()));
    if (collect_types(&r) != FP_OK) {
        fprintf(out, "(out of memory)\n");
        return;
    }
    qsort(r.rows, r.n, sizeof *r.rows, row_cmp);
    int w = 24;
    for (size_t i = 0; i < r.n; i++)
        if ((int)strlen(r.rows[i].st.name) > w)
            w = (int)strlen(r.rows[i].st.name);
    fprintf(out, "%-*s %11s %12s %12s %12s\n", w, "type", "# objects", "live size", "peak",
            "created");
    uint64_t tot_n = 0, tot_b = 0;
    for (size_t i = 0; i < r.n; i++) {
        const fp_type_stats *s = &r.rows[i].st;
        fprintf(out, "%-*s %11llu %12s %12s %12llu\n", w, s->name, (unsigned long long)s->live,
                fp_diag_format_size(s1, sizeof s1, (double)s->live_bytes, 0),
                fp_diag_format_size(s2, sizeof s2, (double)s->peak_bytes, 0),
                (unsigned long long)s->created);
        tot_n += s->live;
        tot_b += s->live_bytes;
    }
    free_types(&r);
    fprintf(out, "pool idle bytes: %s; total: %s objects, %s live\n",
            fp_diag_format_size(s1, sizeof s1, (double)fp_pool_idle_bytes_total(), 0),
            fp__diag_commas(c2, sizeof c2, tot_n),
            fp_diag_format_size(s2, sizeof s2, (double)tot_b, 0));
}

/* ---- growth (objgraph.show_growth) -------------------------------------------------------- */

typedef struct growth_entry {
    const fp_type *type;
    uint64_t peak;
} growth_entry;

struct fp_growth {
    pthread_mutex_t mu;
    growth_entry *e;
    size_t n, cap;
};

static void growth_finalize(void *obj)
{
    fp_growth *g = obj;
    fp_free(g->e, g->cap * sizeof *g->e);
    pthread_mutex_destroy(&g->mu);
}

const fp_type fp_growth_type = {"fp_growth", growth_finalize};
static fp_growth global_growth = {.mu = PTHREAD_MUTEX_INITIALIZER};

int fp_growth_new_at(fp_growth **out, const char *file, int line, const char *func)
{
    if (!out)
        return FP_EINVAL;
    fp_growth *g = fp__obj_new(&fp_growth_type, sizeof *g, sizeof *g, NULL, file, line, func);
    *out = g;
    if (!g)
        return FP_ENOMEM;
    pthread_mutex_init(&g->mu, NULL);
    return FP_OK;
}

typedef struct growth_line {
    const char *name;
    uint64_t count;
    uint64_t delta;
} growth_line;

static int growth_line_cmp(const void *a, const void *b)
{
    const growth_line *x = a, *y = b;
    if (x->delta != y->delta)
        return x->delta > y->delta ? -1 : 1;
    return strcmp(x->name, y->name);
}

int fp_growth_check(fp_growth *g, FILE *out, size_t limit)
{
    if (!g)
        g = &global_growth;
    type_rows r;
    if (collect_types(&r) != FP_OK)
        return FP_ENOMEM;
    growth_line *lines = fp_alloc((r.n + 1) * sizeof *lines, 16);
    if (!lines) {
        free_types(&r);
        return FP_ENOMEM;
    }
    size_t nl = 0;
    int rc = 0;
    pthread_mutex_lock(&g->mu);
    if (g->cap < r.n) {
        size_t nc = r.n + 16;
        growth_entry *ne = fp_alloc(nc * sizeof *ne, 16);
        if (!ne) {
            rc = FP_ENOMEM;
        } else {
            if (g->n)
                memcpy(ne, g->e, g->n * sizeof *ne);
            fp_free(g->e, g->cap * sizeof *g->e);
            g->e = ne;
            g->cap = nc;
        }
    }
    for (size_t i = 0; rc == 0 && i < r.n; i++) {
        growth_entry *ge = NULL;
        for (size_t j = 0; j < g->n; j++)
            if (g->e[j].type == r.rows[i].type) {
                ge = &g->e[j];
                break;
            }
        if (!ge) {
            ge = &g->e[g->n++];
            ge->type = r.rows[i].type;
            ge->peak = 0;
        }
        uint64_t live = r.rows[i].st.live;
        if (live > ge->peak) {
            lines[nl].name = r.rows[i].st.name;
            lines[nl].count = live;
            lines[nl].delta = live - ge->peak;
            nl++;
            ge->peak = live;
        }
    }
    pthread_mutex_unlock(&g->mu);
    if (rc == 0) {
        qsort(lines, nl, sizeof *lines, growth_line_cmp);
        size_t shown = (limit && limit < nl) ? limit : nl;
        int w = 0;
        for (size_t i = 0; i < shown; i++)
            if ((int)strlen(lines[i].name) > w)
                w = (int)strlen(lines[i].name);
        for (size_t i = 0; out && i < shown; i++)
            fprintf(out, "%-*s%9llu %+9lld\n", w, lines[i].name,
                    (unsigned long long)lines[i].count, (long long)lines[i].delta);
        rc = (int)nl;
    }
    fp_free(lines, (r.n + 1) * sizeof *lines);
    free_types(&r);
    return rc;
}

void fp_diag_report(FILE *out)
{
    if (!out)
        return;
    char c[32];
    fprintf(out, "framepool report (pid %ld) at frame %s\n", (long)getpid(),
            fp__diag_commas(c, sizeof c, fp_frame_now()));
    fp_diag_print_summary(out);
    fprintf(out, "growth since the last report:\n");
    int n = fp_growth_check(NULL, out, 0);
    if (n == 0)
        fprintf(out, "(none)\n");
    fflush(out);
}

/* ---- leak report ------------------------------------------------------------------------- */

int fp_diag_mark_singleton(void *obj)
{
    if (!obj)
        return FP_EINVAL;
    atomic_fetch_or_explicit(&fp__hdr(obj)->flags, FP__OBJ_SINGLETON, memory_order_relaxed);
    return FP_OK;
}

static int site_cmp(const fp__diag_item *x, const fp__diag_item *y)
{
    int c = strcmp(fp__diag_tname(x->type), fp__diag_tname(y->type));
    if (c)
        return c;
    if (x->type != y->type)
        return x->type < y->type ? -1 : 1;
    c = strcmp(x->file, y->file);
    if (c)
        return c;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return 0;
}

static int item_cmp(const void *a, const void *b)
{
    const fp__diag_item *x = a, *y = b;
    if (x->hide != y->hide) /* listed objects first */
        return x->hide < y->hide ? -1 : 1;
    int c = site_cmp(x, y);
    if (c)
        return c;
    if (x->birth != y->birth) /* oldest first */
        return x->birth < y->birth ? -1 : 1;
    return 0;
}

typedef struct leak_group {
    size_t first, n;
    uint64_t bytes;
    uint32_t rmin, rmax;
    uint64_t bmin, bmax; /* births */
} leak_group;

static int group_cmp(const void *a, const void *b)
{
    const leak_group *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first;
}

typedef struct pool_ctx {
    FILE *out;
    int header;
    unsigned n;
} pool_ctx;

static int pool_cb(fp_pool *p, const fp_pool_stats *s, int closed, void *user)
{
    pool_ctx *c = user;
    if (s->outstanding == 0)
        return 0;
    c->n++;
    if (!c->out)
        return 0;
    if (!c->header) {
        fprintf(c->out, "pools with buffers still out:\n");
        c->header = 1;
    }
    char sz[32];
    fprintf(c->out, "  pool '%s' (%s): %llu of %llu buffers out, %s\n", fp_pool_name(p),
            closed ? "released by its owner" : "still referenced",
            (unsigned long long)s->outstanding, (unsigned long long)s->allocated,
            fp_diag_format_size(sz, sizeof sz, (double)(s->bytes - s->idle_bytes), 0));
    return 0;
}

typedef struct untracked_ctx {
    const fp__diag_item *items;
    size_t n;
    FILE *out;
    uint64_t total;
    int header;
} untracked_ctx;

static int untracked_cb(const fp_type *t, const fp_type_stats *s, void *user)
{
    untracked_ctx *u = user;
    uint64_t tracked = 0;
    for (size_t i = 0; i < u->n; i++)
        if (u->items[i].type == t)
            tracked++;
    if (s->live <= tracked)
        return 0;
    uint64_t k = s->live - tracked;
    u->total += k;
    if (u->out) {
        if (!u->header) {
            fprintf(u->out, "alive but not tracked (created while FP_DIAG sites were off):\n");
            u->header = 1;
        }
        fprintf(u->out, "  %s: %llu object%s\n", s->name, (unsigned long long)k,
                k == 1 ? "" : "s");
    }
    return 0;
}

int fp_diag_leak_report(FILE *out, unsigned flags)
{
    fp__diag_item *items;
    size_t n, cap;
    if (fp__diag_collect(&items, &n, &cap) != FP_OK) {
        if (out)
            fprintf(out, "framepool leak report: out of memory\n");
        return 0;
    }
    uint64_t now = fp_frame_now();
    /* Count untracked objects against every tracked one (singletons too). */
    untracked_ctx u = {items, n, NULL, 0, 0};
    fp_type_foreach(untracked_cb, &u);
    uint64_t untracked = u.total;

    size_t kept = 0, singletons = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t f = items[i].flags;
        items[i].hide = 1;
        if ((f & FP__OBJ_SINGLETON) && !(flags & FP_DIAG_REPORT_SINGLETONS))
            singletons++;
        else if ((f & FP__OBJ_INTERNAL) && !(flags & FP_DIAG_REPORT_INTERNAL))
            continue;
        else
            items[i].hide = 0, kept++;
    }
    /* Listed objects first, grouped by type and site, oldest first. */
    qsort(items, n, sizeof *items, item_cmp);
    leak_group *groups = kept ? fp_alloc(kept * sizeof *groups, 16) : NULL;
    size_t ng = 0;
    uint64_t total_bytes = 0;
    if (kept && !groups) {
        fp_free(items, cap * sizeof *items);
        if (out)
            fprintf(out, "framepool leak report: out of memory\n");
        return (int)(kept + untracked);
    }
    for (size_t i = 0; i < kept; i++) {
        const fp__diag_item *it = &items[i];
        if (ng == 0 || site_cmp(&items[groups[ng - 1].first], it) != 0) {
            leak_group *g = &groups[ng++];
            g->first = i;
            g->n = 0;
            g->bytes = 0;
            g->rmin = g->rmax = it->refs;
            g->bmin = g->bmax = it->birth;
        }
        leak_group *g = &groups[ng - 1];
        g->n++;
        g->bytes += it->bytes;
        total_bytes += it->bytes;
        if (it->refs < g->rmin)
            g->rmin = it->refs;
        if (it->refs > g->rmax)
            g->rmax = it->refs;
        if (it->birth < g->bmin)
            g->bmin = it->birth;
        if (it->birth > g->bmax)
            g->bmax = it->birth;
    }
    if (ng)
        qsort(groups, ng, sizeof *groups, group_cmp);

    if (out) {
        char c1[32], c2[32], c3[32], sz[32];
        if (kept == 0 && untracked == 0)
            fprintf(out, "framepool leak report at frame %s: no leaked objects\n",
                    fp__diag_commas(c1, sizeof c1, now));
        else
            fprintf(out, "framepool leak report at frame %s: %s leaked object%s, %s\n",
                    fp__diag_commas(c1, sizeof c1, now),
                    fp__diag_commas(c2, sizeof c2, kept + untracked),
                    kept + untracked == 1 ? "" : "s",
                    fp_diag_format_size(sz, sizeof sz, (double)total_bytes, 0));
        for (size_t gi = 0; gi < ng; gi++) {
            const leak_group *g = &groups[gi];
            const fp__diag_item *it = &items[g->first];
            fprintf(out, "  %s: %s object%s, %s, created at %s:%d (%s), ",
                    fp__diag_tname(it->type), fp__diag_commas(c1, sizeof c1, g->n),
                    g->n == 1 ? "" : "s", fp_diag_format_size(sz, sizeof sz, (double)g->bytes, 0),
                    it->file, it->line, it->func);
            if (g->rmin == g->rmax)
                fprintf(out, "refcount %u, ", g->rmin);
            else
                fprintf(out, "refcount %u to %u, ", g->rmin, g->rmax);
            uint64_t amax = now >= g->bmin ? now - g->bmin : 0;
            uint64_t amin = now >= g->bmax ? now - g->bmax : 0;
            if (amin == amax)
                fprintf(out, "alive for %s frame%s\n", fp__diag_commas(c2, sizeof c2, amax),
                        amax == 1 ? "" : "s");
            else
                fprintf(out, "alive for %s to %s frames\n", fp__diag_commas(c2, sizeof c2, amin),
                        fp__diag_commas(c3, sizeof c3, amax));
            if (flags & FP_DIAG_REPORT_OBJECTS) {
                for (size_t k = 0; k < g->n && k < 8; k++) {
                    const fp__diag_item *o = &items[g->first + k];
                    fprintf(out, "    %p refcount %u, %s, alive for %s frames\n", o->obj, o->refs,
                            fp_diag_format_size(sz, sizeof sz, (double)o->bytes, 0),
                            fp__diag_commas(c2, sizeof c2, now - o->birth));
                }
                if (g->n > 8)
                    fprintf(out, "    ... %zu more\n", g->n - 8);
            }
            if ((flags & FP_DIAG_REPORT_BACKTRACES) && it->tb)
                fp__diag_print_bt(out, it->tb, "      ");
        }
        if (untracked) {
            u.out = out;
            u.total = 0;
            fp_type_foreach(untracked_cb, &u);
        }
        if (singletons)
            fprintf(out, "(%zu singleton object%s left out)\n", singletons,
                    singletons == 1 ? "" : "s");
    }
    pool_ctx pc = {out, 0, 0};
    fp__pool_foreach(pool_cb, &pc);
    if (out)
        fflush(out);
    if (groups)
        fp_free(groups, kept * sizeof *groups);
    fp_free(items, cap * sizeof *items);
    return (int)(kept + untracked);
}
