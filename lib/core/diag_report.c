/*
 * Diagnostics, reports: the summary table, objgraph-style growth, the
 * SIGUSR1/socket report, the leak report and the reference history of one
 * object. They read the per-type counters and a copy of the live list
 * (fp__diag_collect, diag_track.c), never the list itself.
 */
#define _GNU_SOURCE /* dladdr */
#include "diag_internal.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Types of the layers built on diag (lib/measure's memory tracker) that
 * count as diag's own: registered by those layers, so that the core never
 * names them. */
#define OWN_TYPES_MAX 4
static _Atomic(const fp_type *) own_types[OWN_TYPES_MAX];

void fp__diag_own_type_add(const fp_type *t)
{
    for (int i = 0; i < OWN_TYPES_MAX; i++) {
        const fp_type *cur = atomic_load_explicit(&own_types[i], memory_order_acquire);
        if (cur == t)
            return;
        if (!cur && atomic_compare_exchange_strong_explicit(&own_types[i], &cur, t,
                                                            memory_order_acq_rel,
                                                            memory_order_acquire))
            return;
        if (cur == t)
            return;
    }
}

int fp__diag_own_type(const fp_type *t)
{
    if (t == &fp_snapshot_type || t == &fp_diag_diff_type || t == &fp_growth_type)
        return 1;
    for (int i = 0; i < OWN_TYPES_MAX; i++) {
        const fp_type *cur = atomic_load_explicit(&own_types[i], memory_order_acquire);
        if (!cur)
            return 0;
        if (cur == t)
            return 1;
    }
    return 0;
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

static void print_group_holders(FILE *out, const fp__diag_item *items, size_t n);

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
    fp__refcopy *hists;
    size_t n, cap, hcap;
    if (fp__diag_collect_refs(&items, &n, &cap, &hists, &hcap) != FP_OK) {
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
        if (hists)
            fp_free(hists, hcap * sizeof *hists);
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
            print_group_holders(out, &items[g->first], g->n);
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
    if (hists)
        fp_free(hists, hcap * sizeof *hists);
    return (int)(kept + untracked);
}

/* ---- reference history: who holds the references --------------------------------------- */

char *fp__diag_sym(char *buf, size_t n, const void *frame)
{
    Dl_info di;
    const ElfW(Sym) *sym = NULL;
    memset(&di, 0, sizeof di);
    if (frame && dladdr1(frame, &di, (void **)&sym, RTLD_DL_SYMENT) && di.dli_fname) {
        const char *mod = strrchr(di.dli_fname, '/');
        mod = mod ? mod + 1 : di.dli_fname;
        size_t off = (size_t)((uintptr_t)frame - (uintptr_t)di.dli_fbase);
        /* dladdr names the nearest exported symbol below the address; a
         * static function is not one: name it only inside the symbol. */
        if (di.dli_sname && sym && sym->st_size &&
            (uintptr_t)frame - (uintptr_t)di.dli_saddr > sym->st_size)
            di.dli_sname = NULL;
        if (di.dli_sname)
            snprintf(buf, n, "%s (%s+0x%zx)", di.dli_sname, mod, off);
        else
            snprintf(buf, n, "%s+0x%zx", mod, off);
    } else {
        snprintf(buf, n, "%p", frame);
    }
    return buf;
}

static int same_func(const fp__refsite *a, const fp__refsite *b)
{
    return a->file && b->file && a->func && b->func && !strcmp(a->func, b->func);
}

int32_t fp__diag_holders(const fp__refcopy *c, int32_t held[FP__REFS_SITES])
{
    int32_t pool = c->other_net < 0 ? -c->other_net : 0;
    for (unsigned i = 0; i < c->n; i++)
        held[i] = c->site[i].net > 0 ? c->site[i].net : 0;
    /* A release cancels first what its own function took, oldest first (the
     * creator releasing its object, an owner releasing what it got); what is
     * left cancels the oldest takes anywhere (a finalizer or a container
     * releasing what it kept). A cache's reference is released only by the
     * cache. Sites are in the order of their first event. This is inferred:
     * the counts per site are exact, which take a release ended is not
     * recorded. */
    for (unsigned j = 0; j < c->n; j++) {
        int32_t r = c->site[j].net < 0 ? -c->site[j].net : 0;
        for (unsigned i = 0; i < c->n && r; i++) {
            if (!held[i] || c->site[i].kept || !same_func(&c->site[i], &c->site[j]))
                continue;
            int32_t t = held[i] < r ? held[i] : r;
            held[i] -= t;
            r -= t;
        }
        pool += r;
    }
    for (unsigned i = 0; i < c->n && pool; i++) {
        int32_t t = held[i] < pool ? held[i] : pool;
        held[i] -= t;
        pool -= t;
    }
    int32_t sum = 0;
    for (unsigned i = 0; i < c->n; i++)
        sum += held[i];
    return sum;
}

void fp__diag_print_holder(FILE *out, const char *indent, const fp__refsite *s, int32_t n,
                           size_t objects, int details)
{
    char sym[256];
    fprintf(out, "%s+%d at %s:%d in %s", indent, (int)n, s->file ? s->file : "?", s->line,
            s->file && s->func ? s->func : "(unknown: fp_ref called through a pointer)");
    if (s->created)
        fprintf(out, " (its creation)");
    if (s->kept)
        fprintf(out, " (kept by a cache)");
    if (s->caller) {
        fp__diag_sym(sym, sizeof sym, s->caller);
        size_t fl = s->func ? strlen(s->func) : 0;
        /* Leave out a "caller" that is the site's own function. */
        if (!s->func || strncmp(sym, s->func, fl) != 0 || (sym[fl] != ' ' && sym[fl] != 0))
            fprintf(out, ", called from %s", sym);
    }
    fprintf(out, ", never released");
    if (objects > 1)
        fprintf(out, " (%zu objects)", objects);
    if (details)
        fprintf(out, " [last taken by thread %u%s at frame %llu]", s->tid,
                s->tid == (uint32_t)getpid() ? " (main)" : "", (unsigned long long)s->tick);
    fputc('\n', out);
}

typedef struct holder_sum {
    const fp__refsite *s;
    int64_t n;
    size_t objects;
} holder_sum;

static int holder_sum_cmp(const void *a, const void *b)
{
    const holder_sum *x = a, *y = b;
    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    return x->s->first_seq < y->s->first_seq ? -1 : x->s->first_seq > y->s->first_seq;
}

static int site_same(const fp__refsite *a, const fp__refsite *b)
{
    return a->line == b->line && a->caller == b->caller && a->created == b->created &&
           a->kept == b->kept &&
           (a->file == b->file || (a->file && b->file && !strcmp(a->file, b->file)));
}

#define HOLDER_LINES 8

/* The holders of a group of objects (same type and creation site), summed
 * per site. */
static void print_group_holders(FILE *out, const fp__diag_item *items, size_t n)
{
    holder_sum sums[64];
    size_t ns = 0, dropped_sites = 0;
    int64_t other = 0;
    int any = 0;
    for (size_t k = 0; k < n; k++) {
        const fp__refcopy *c = items[k].hist;
        if (!c)
            continue;
        any = 1;
        int32_t held[FP__REFS_SITES];
        int32_t sum = fp__diag_holders(c, held);
        if ((int64_t)items[k].refs > sum)
            other += (int64_t)items[k].refs - sum;
        for (unsigned i = 0; i < c->n; i++) {
            if (held[i] <= 0)
                continue;
            size_t j = 0;
            while (j < ns && !site_same(sums[j].s, &c->site[i]))
                j++;
            if (j == ns) {
                if (ns == sizeof sums / sizeof *sums) {
                    dropped_sites++;
                    continue;
                }
                sums[ns].s = &c->site[i];
                sums[ns].n = 0;
                sums[ns].objects = 0;
                ns++;
            }
            sums[j].n += held[i];
            sums[j].objects++;
        }
    }
    if (!any)
        return;
    qsort(sums, ns, sizeof *sums, holder_sum_cmp);
    for (size_t j = 0; j < ns && j < HOLDER_LINES; j++)
        fp__diag_print_holder(out, "      ", sums[j].s, (int32_t)sums[j].n, sums[j].objects,
                              n == 1);
    if (ns > HOLDER_LINES || dropped_sites)
        fprintf(out, "      ... and %zu more sites\n", ns - (ns > HOLDER_LINES ? HOLDER_LINES : ns) +
                                                          dropped_sites);
    if (other > 0)
        fprintf(out, "      +%lld taken at sites beyond the history's bound (%d per object)\n",
                (long long)other, FP__REFS_SITES);
}

int fp_diag_print_refs(FILE *out, const void *obj)
{
    if (!out || !obj)
        return FP_EINVAL;
    const fp__obj *h = fp__hdr(obj);
    fp__refcopy c;
    int rc = fp__diag_history_copy(h, &c);
    char sz[32];
    fprintf(out, "%s %p: refcount %u, %s, created at %s:%d (%s) at frame %llu\n",
            fp__diag_tname(h->type), obj, fp_refcount(obj),
            fp_diag_format_size(sz, sizeof sz, (double)fp_obj_bytes(obj), 0), h->file, h->line,
            h->func, (unsigned long long)h->birth);
    if (rc != FP_OK) {
        fprintf(out, "  (no reference history: created while FP_DIAG refs was off)\n");
        return FP_ENOENT;
    }
    fprintf(out, "  references by site (taken - released):\n");
    char sym[256];
    for (unsigned i = 0; i < c.n; i++) {
        const fp__refsite *s = &c.site[i];
        fprintf(out, "    %+d at %s:%d in %s%s", (int)s->net, s->file ? s->file : "?", s->line,
                s->file && s->func ? s->func : "(unknown)",
                s->created ? " (its creation)" : (s->kept ? " (kept by a cache)" : ""));
        if (s->caller)
            fprintf(out, ", called from %s", fp__diag_sym(sym, sizeof sym, s->caller));
        fprintf(out, ": taken %u, released %u, last by thread %u at frame %llu\n", s->taken,
                s->dropped, s->tid, (unsigned long long)s->tick);
    }
    if (c.other_events)
        fprintf(out, "    %+d at other sites (%u events beyond the %d sites kept)\n",
                (int)c.other_net, c.other_events, FP__REFS_SITES);
    int32_t held[FP__REFS_SITES];
    int32_t sum = fp__diag_holders(&c, held);
    fprintf(out, "  still held by:\n");
    for (unsigned i = 0; i < c.n; i++)
        if (held[i] > 0)
            fp__diag_print_holder(out, "    ", &c.site[i], held[i], 1, 1);
    if (sum == 0)
        fprintf(out, "    (no site: the references left were taken at sites beyond the bound)\n");
    fflush(out);
    return (int)sum;
}
