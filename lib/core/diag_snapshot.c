/*
 * Snapshots of the live tracked objects and their comparison, printed in
 * Python tracemalloc's format.
 */
#define _POSIX_C_SOURCE 200809L
#include "diag_internal.h"

#include <stdlib.h>
#include <string.h>

/* One (type, site, backtrace) group of a snapshot. */
typedef struct snap_group {
    const fp_type *type;
    const char *file;
    const char *func;
    const fp__bt *tb;
    int line;
    int64_t count;
    int64_t size;
} snap_group;

struct fp_snapshot {
    uint64_t frame;
    size_t n;
    snap_group *g;
    uint64_t count, bytes;
};

static void snapshot_finalize(void *obj)
{
    fp_snapshot *s = obj;
    fp_free(s->g, s->n * sizeof *s->g);
}

const fp_type fp_snapshot_type = {"fp_snapshot", snapshot_finalize};
const fp_type fp_diag_diff_type = {"fp_diag_diff", NULL};

static int fine_cmp(const void *a, const void *b)
{
    const fp__diag_item *x = a, *y = b;
    if (x->type != y->type)
        return (uintptr_t)x->type < (uintptr_t)y->type ? -1 : 1;
    int c = strcmp(x->file, y->file);
    if (c)
        return c;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->tb != y->tb)
        return (uintptr_t)x->tb < (uintptr_t)y->tb ? -1 : 1;
    return 0;
}

int fp_snapshot_take_at(fp_snapshot **out, const char *file, int line, const char *func)
{
    if (!out)
        return FP_EINVAL;
    *out = NULL;
    fp_snapshot *s = fp__obj_new(&fp_snapshot_type, sizeof *s, sizeof *s, NULL, file, line, func);
    if (!s)
        return FP_ENOMEM;
    s->frame = fp_frame_now();
    int sites = atomic_load_explicit(&fp__diag_mode, memory_order_relaxed) & FP_DIAG_SITES;
    fp__diag_item *items;
    size_t n, cap;
    if (fp__diag_collect(&items, &n, &cap) != FP_OK) {
        fp_unref(&s);
        return FP_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!fp__diag_own_type(items[i].type))
            items[k++] = items[i];
    qsort(items, k, sizeof *items, fine_cmp);
    size_t ng = 0;
    for (size_t i = 0; i < k; i++)
        if (i == 0 || fine_cmp(&items[i - 1], &items[i]))
            ng++;
    if (ng) {
        s->g = fp_alloc(ng * sizeof *s->g, 16);
        if (!s->g) {
            fp_free(items, cap * sizeof *items);
            fp_unref(&s);
            return FP_ENOMEM;
        }
        s->n = ng;
        size_t j = (size_t)-1;
        for (size_t i = 0; i < k; i++) {
            if (i == 0 || fine_cmp(&items[i - 1], &items[i])) {
                snap_group *g = &s->g[++j];
                g->type = items[i].type;
                g->file = items[i].file;
                g->func = items[i].func;
                g->tb = items[i].tb;
                g->line = items[i].line;
                g->count = 0;
                g->size = 0;
            }
            s->g[j].count++;
            s->g[j].size += (int64_t)items[i].bytes;
            s->count++;
            s->bytes += items[i].bytes;
        }
    }
    fp_free(items, cap * sizeof *items);
    *out = s;
    if (!sites) {
        fp_errmsg_set("snapshot: creation sites are not tracked (set FP_DIAG=sites or call "
                       "fp_diag_configure(\"sites\")); the snapshot holds only objects tracked "
                       "earlier");
        return FP_EINVAL;
    }
    return FP_OK;
}

uint64_t fp_snapshot_frame(const fp_snapshot *s)
{
    return s ? s->frame : 0;
}

void fp_snapshot_totals(const fp_snapshot *s, uint64_t *count, uint64_t *bytes)
{
    if (count)
        *count = s ? s->count : 0;
    if (bytes)
        *bytes = s ? s->bytes : 0;
}

/* ---- comparison ------------------------------------------------------------------------- */

/* A keyed stat under construction: `side` 0 newer, 1 older. */
typedef struct kstat {
    fp_diag_stat st;
    const fp_type *tptr;
    int side;
} kstat;

static int key_cmp_by(const fp_diag_stat *x, const fp_diag_stat *y, fp_diag_by by)
{
    if (by == FP_DIAG_BY_TYPE)
        return strcmp(x->type, y->type);
    int c = strcmp(x->file, y->file);
    if (c)
        return c;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (by == FP_DIAG_BY_TRACEBACK && x->traceback != y->traceback)
        return (uintptr_t)x->traceback < (uintptr_t)y->traceback ? -1 : 1;
    return 0;
}

/* qsort has no user pointer in C11: sort with an explicit merge sort that
 * carries `by` instead of a global. */
typedef int (*kcmp_fn)(const kstat *a, const kstat *b, fp_diag_by by);

static void msort(kstat *a, kstat *tmp, size_t n, kcmp_fn cmp, fp_diag_by by)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    msort(a, tmp, h, cmp, by);
    msort(a + h, tmp, n - h, cmp, by);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = cmp(&a[j], &a[i], by) < 0 ? a[j++] : a[i++];
    while (i < h)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
}

static int kstat_key_cmp(const kstat *a, const kstat *b, fp_diag_by by)
{
    int c = key_cmp_by(&a->st, &b->st, by);
    if (c)
        return c;
    return a->side - b->side;
}

static int64_t i64abs(int64_t v)
{
    return v < 0 ? -v : v;
}

/* tracemalloc's StatisticDiff._sort_key, descending (reverse=True). */
static int kstat_rank_cmp(const kstat *a, const kstat *b, fp_diag_by by)
{
    const fp_diag_stat *x = &a->st, *y = &b->st;
#define DESC(u, v)                                                                                \
    do {                                                                                          \
        if ((u) != (v))                                                                           \
            return (u) > (v) ? -1 : 1;                                                            \
    } while (0)
    DESC(i64abs(x->size_diff), i64abs(y->size_diff));
    DESC(x->size, y->size);
    DESC(i64abs(x->count_diff), i64abs(y->count_diff));
    DESC(x->count, y->count);
#undef DESC
    return -key_cmp_by(x, y, by);
}

static void fill_from(kstat *k, const snap_group *g, int side)
{
    memset(k, 0, sizeof *k);
    k->tptr = g->type;
    k->st.type = fp__diag_tname(g->type);
    k->st.file = g->file;
    k->st.line = g->line;
    k->st.func = g->func;
    k->st.traceback = g->tb;
    k->side = side;
    if (side == 0) {
        k->st.size = g->size;
        k->st.count = g->count;
        k->st.size_diff = g->size;
        k->st.count_diff = g->count;
    } else {
        k->st.size_diff = -g->size;
        k->st.count_diff = -g->count;
    }
}

int fp_snapshot_compare_at(const fp_snapshot *newer, const fp_snapshot *older, fp_diag_by by,
                           fp_diag_diff **out, const char *file, int line, const char *func)
{
    if (!out)
        return FP_EINVAL;
    *out = NULL;
    if (!newer || (by != FP_DIAG_BY_SITE && by != FP_DIAG_BY_TYPE && by != FP_DIAG_BY_TRACEBACK))
        return FP_EINVAL;
    size_t nn = newer->n, no = older ? older->n : 0, total = nn + no;
    kstat *a = NULL, *tmp = NULL;
    if (total) {
        a = fp_alloc(total * sizeof *a, 16);
        tmp = fp_alloc(total * sizeof *tmp, 16);
        if (!a || !tmp) {
            fp_free(a, total * sizeof *a);
            fp_free(tmp, total * sizeof *tmp);
            return FP_ENOMEM;
        }
    }
    for (size_t i = 0; i < nn; i++)
        fill_from(&a[i], &newer->g[i], 0);
    for (size_t i = 0; i < no; i++)
        fill_from(&a[nn + i], &older->g[i], 1);
    msort(a, tmp, total, kstat_key_cmp, by);
    /* Merge equal keys (newer and older alike) into one stat. */
    size_t m = 0;
    for (size_t i = 0; i < total; i++) {
        if (m > 0 && key_cmp_by(&a[m - 1].st, &a[i].st, by) == 0) {
            kstat *d = &a[m - 1];
            d->st.size += a[i].st.size;
            d->st.count += a[i].st.count;
            d->st.size_diff += a[i].st.size_diff;
            d->st.count_diff += a[i].st.count_diff;
            if (d->tptr != a[i].tptr && strcmp(d->st.type, a[i].st.type) != 0)
                d->st.type = "(several types)";
            if (by == FP_DIAG_BY_SITE && d->st.traceback != a[i].st.traceback)
                d->st.traceback = NULL;
        } else {
            a[m++] = a[i];
        }
    }
    if (by == FP_DIAG_BY_TYPE)
        for (size_t i = 0; i < m; i++) {
            a[i].st.file = NULL;
            a[i].st.line = 0;
            a[i].st.func = NULL;
            a[i].st.traceback = NULL;
        }
    msort(a, tmp, m, kstat_rank_cmp, by);

    size_t payload = sizeof(fp_diag_diff) + 64 + m * sizeof(fp_diag_stat);
    fp_diag_diff *d = fp__obj_new(&fp_diag_diff_type, payload, payload, NULL, file, line, func);
    if (!d) {
        fp_free(a, total * sizeof *a);
        fp_free(tmp, total * sizeof *tmp);
        return FP_ENOMEM;
    }
    fp_diag_stat *stats = (fp_diag_stat *)((char *)d + ((sizeof(fp_diag_diff) + 63) & ~63u));
    for (size_t i = 0; i < m; i++) {
        stats[i] = a[i].st;
        d->total_size += a[i].st.size;
        d->total_size_diff += a[i].st.size_diff;
        d->total_count += a[i].st.count;
        d->total_count_diff += a[i].st.count_diff;
    }
    d->n = m;
    d->stats = stats;
    fp_free(a, total * sizeof *a);
    fp_free(tmp, total * sizeof *tmp);
    *out = d;
    return FP_OK;
}

/* ---- formatting ---------------------------------------------------------------------------- */

char *fp_diag_format_stat(char *buf, size_t n, const fp_diag_stat *st, fp_diag_by by, int diff)
{
    if (!buf || n == 0)
        return buf;
    if (!st) {
        buf[0] = 0;
        return buf;
    }
    char key[512], s1[32], s2[32], s3[32];
    if (by == FP_DIAG_BY_TYPE || !st->file)
        snprintf(key, sizeof key, "%s", st->type);
    else
        snprintf(key, sizeof key, "%s:%d", st->file, st->line);
    int len;
    if (diff)
        len = snprintf(buf, n, "%s: size=%s (%s), count=%lld (%+lld)", key,
                       fp_diag_format_size(s1, sizeof s1, (double)st->size, 0),
                       fp_diag_format_size(s2, sizeof s2, (double)st->size_diff, 1),
                       (long long)st->count, (long long)st->count_diff);
    else
        len = snprintf(buf, n, "%s: size=%s, count=%lld", key,
                       fp_diag_format_size(s1, sizeof s1, (double)st->size, 0),
                       (long long)st->count);
    if (st->count && len >= 0 && (size_t)len < n)
        snprintf(buf + len, n - (size_t)len, ", average=%s",
                 fp_diag_format_size(s3, sizeof s3, (double)st->size / (double)st->count, 0));
    return buf;
}

int fp_diag_print_diff(FILE *out, const fp_snapshot *newer, const fp_snapshot *older,
                       fp_diag_by by, size_t limit)
{
    fp_diag_diff *d = NULL;
    int rc = fp_snapshot_compare(newer, older, by, &d);
    if (rc)
        return rc;
    int diff = older != NULL;
    size_t shown = (limit && limit < d->n) ? limit : d->n;
    char line[1024], s1[32], s2[32];
    for (size_t i = 0; out && i < shown; i++) {
        const fp_diag_stat *st = &d->stats[i];
        fprintf(out, "%s\n", fp_diag_format_stat(line, sizeof line, st, by, diff));
        if (by != FP_DIAG_BY_TYPE)
            fprintf(out, "    %s (in %s)\n", st->type, st->func ? st->func : "?");
        if (by == FP_DIAG_BY_TRACEBACK && st->traceback)
            fp__diag_print_bt(out, st->traceback, "      ");
    }
    if (out && shown < d->n) {
        int64_t sz = 0, szd = 0, c = 0, cd = 0;
        for (size_t i = shown; i < d->n; i++) {
            sz += d->stats[i].size;
            szd += d->stats[i].size_diff;
            c += d->stats[i].count;
            cd += d->stats[i].count_diff;
        }
        if (diff)
            fprintf(out, "%zu other: size=%s (%s), count=%lld (%+lld)\n", d->n - shown,
                    fp_diag_format_size(s1, sizeof s1, (double)sz, 0),
                    fp_diag_format_size(s2, sizeof s2, (double)szd, 1), (long long)c,
                    (long long)cd);
        else
            fprintf(out, "%zu other: size=%s, count=%lld\n", d->n - shown,
                    fp_diag_format_size(s1, sizeof s1, (double)sz, 0), (long long)c);
    }
    if (out) {
        if (diff)
            fprintf(out, "Total: size=%s (%s), count=%lld (%+lld)\n",
                    fp_diag_format_size(s1, sizeof s1, (double)d->total_size, 0),
                    fp_diag_format_size(s2, sizeof s2, (double)d->total_size_diff, 1),
                    (long long)d->total_count, (long long)d->total_count_diff);
        else
            fprintf(out, "Total: size=%s, count=%lld\n",
                    fp_diag_format_size(s1, sizeof s1, (double)d->total_size, 0),
                    (long long)d->total_count);
    }
    rc = (int)d->n;
    fp_unref(&d);
    return rc;
}
