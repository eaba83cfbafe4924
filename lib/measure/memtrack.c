/*
 * Memory per frame (measure.h, fp_memtrack): samples RssAnon and minor
 * faults every frame into a pre-touched array and judges the steady state
 * with the Theil-Sen slope (theilsen.c).
 */
#define _GNU_SOURCE
#include "measure_priv.h"

#include "diag_internal.h"

#include <fcntl.h>
#include <math.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct mt_sample {
    uint64_t frame;
    uint64_t rss;     /* RssAnon bytes */
    uint64_t minflt;  /* minor faults so far */
    uint64_t live;    /* library live bytes */
    uint64_t idle;    /* pool idle bytes */
    uint64_t misses;  /* pool misses so far */
} mt_sample;

struct fp_memtrack {
    fp_memtrack_config cfg;
    mt_sample *s;
    size_t cap, n;
    _Atomic uint64_t *frames_out; /* FP_MEMTRACK_FRAMES: a shared page the observer reads */
    uint64_t stride;
    uint64_t frame;
    uint64_t pushed; /* samples offered (kept or decimated) */
    fp_procstat proc; /* this process's statm */
    _Atomic uint64_t noted_misses;
    uint64_t last_misses, last_miss_frame;
    uint64_t peak_rss;
    int warm;
    mt_sample warm_at;       /* the sample at warm-up end */
    fp_snapshot *warm_snap;  /* sites at warm-up end, when sites are on */
};

static void memtrack_finalize(void *obj)
{
    fp_memtrack *t = obj;
    fp_procstat_close(&t->proc);
    if (t->frames_out)
        munmap((void *)t->frames_out, sizeof *t->frames_out);
    fp_free(t->s, t->cap * sizeof *t->s);
    fp_unref(&t->warm_snap);
}

const fp_type fp_memtrack_type = {"fp_memtrack", memtrack_finalize};

int fp_memtrack_new_at(const fp_memtrack_config *cfg, fp_memtrack **out, const char *file,
                       int line, const char *func)
{
    if (!out)
        return FP_EINVAL;
    *out = NULL;
    fp_memtrack_config c;
    if (cfg)
        c = *cfg;
    else
        memset(&c, 0, sizeof c);
    if (c.capacity == 0)
        c.capacity = 16384;
    if (c.capacity < 64)
        c.capacity = 64;
    c.capacity &= ~(size_t)1;
    if (c.min_warmup == 0)
        c.min_warmup = 60;
    if (c.quiet_frames == 0)
        c.quiet_frames = 10;
    if (c.max_slope == 0)
        c.max_slope = 16;
    if (c.max_faults == 0)
        c.max_faults = 0.05;
    if (c.max_live_slope == 0)
        c.max_live_slope = 1;
    if (c.min_frames == 0)
        c.min_frames = 30;
    if (c.capacity > SIZE_MAX / sizeof(mt_sample))
        return FP_EINVAL;
    fp__diag_own_type_add(&fp_memtrack_type); /* left out of snapshots */
    fp_memtrack *t = fp__obj_new(&fp_memtrack_type, sizeof *t, sizeof *t, NULL, file, line, func);
    if (!t)
        return FP_ENOMEM;
    t->proc.statm_fd = t->proc.stat_fd = t->proc.fd_dir = -1;
    t->cfg = c;
    t->cap = c.capacity;
    t->stride = 1;
    t->s = fp_alloc(t->cap * sizeof *t->s, 64);
    if (!t->s) {
        t->cap = 0;
        fp_unref(&t);
        return FP_ENOMEM;
    }
    /* Touch every page now: the sampler must not fault in its own array. */
    memset(t->s, 0, t->cap * sizeof *t->s);
    fp__obj_charge(fp__hdr(t), sizeof *t + t->cap * sizeof *t->s);
    uint64_t rss;
    if (fp_procstat_open(&t->proc, 0, 0) != FP_OK ||
        fp_procstat_rss_anon(&t->proc, &rss) != FP_OK) {
        fp_errmsg_set("memtrack: cannot read /proc/self/statm");
        fp_unref(&t);
        return FP_EIO;
    }
    /* An outside observer (bench/rss_watch) names a file in FP_MEMTRACK_FRAMES
     * and reads the frame count from it, so that it can report bytes per
     * frame. Best effort: without it the observer uses time. */
    const char *fpath = getenv("FP_MEMTRACK_FRAMES");
    if (fpath && *fpath) {
        int ffd = open(fpath, O_RDWR | O_CLOEXEC);
        if (ffd >= 0) {
            void *m = mmap(NULL, sizeof *t->frames_out, PROT_READ | PROT_WRITE, MAP_SHARED, ffd, 0);
            if (m != MAP_FAILED)
                t->frames_out = m;
            close(ffd);
        }
    }
    *out = t;
    return FP_OK;
}

void fp_memtrack_note_pool_misses(fp_memtrack *t, uint64_t total_misses)
{
    if (t)
        atomic_store_explicit(&t->noted_misses, total_misses, memory_order_relaxed);
}

static int misses_cb(fp_pool *p, const fp_pool_stats *s, int closed, void *user)
{
    (void)p;
    (void)closed;
    *(uint64_t *)user += s->misses;
    return 0;
}

static void decimate(fp_memtrack *t)
{
    size_t half = t->n / 2;
    for (size_t i = 0; i < half; i++)
        t->s[i] = t->s[2 * i];
    t->n = half;
    t->stride *= 2;
}

static void push(fp_memtrack *t, mt_sample x)
{
    if (x.rss > t->peak_rss)
        t->peak_rss = x.rss;
    if (x.frame == 1 || x.misses != t->last_misses) {
        t->last_misses = x.misses;
        t->last_miss_frame = x.frame;
    }
    int warm_now = 0;
    if (!t->warm && x.frame >= t->cfg.min_warmup &&
        x.frame - t->last_miss_frame >= t->cfg.quiet_frames) {
        t->warm = 1;
        t->warm_at = x;
        warm_now = 1;
    }
    int keep = t->pushed++ % t->stride == 0;
    if (warm_now || keep) {
        if (t->n == t->cap)
            decimate(t);
        t->s[t->n++] = x;
    }
    if (warm_now &&
        (atomic_load_explicit(&fp__diag_mode, memory_order_relaxed) & FP_DIAG_SITES)) {
        /* Best effort (NULL on failure). Owned by the tracker, which leak
         * reports list already: mark it internal. */
        fp_snapshot_take(&t->warm_snap);
        if (t->warm_snap)
            atomic_fetch_or_explicit(&fp__hdr(t->warm_snap)->flags, FP__OBJ_INTERNAL,
                                     memory_order_relaxed);
    }
}

int fp_memtrack_sample(fp_memtrack *t)
{
    if (!t)
        return FP_EINVAL;
    mt_sample x;
    x.frame = ++t->frame;
    if (fp_procstat_rss_anon(&t->proc, &x.rss) != FP_OK)
        return FP_EIO;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    x.minflt = (uint64_t)ru.ru_minflt;
    fp_obj_totals(NULL, &x.live);
    x.idle = fp_pool_idle_bytes_total();
    x.misses = atomic_load_explicit(&t->noted_misses, memory_order_relaxed);
    if (!t->cfg.manual_misses)
        fp__pool_foreach(misses_cb, &x.misses);
    push(t, x);
    if (t->frames_out)
        atomic_store_explicit(t->frames_out, x.frame, memory_order_relaxed);
    return FP_OK;
}

int fp_memtrack_record(fp_memtrack *t, uint64_t x, uint64_t rss_anon, uint64_t minflt)
{
    if (!t || x <= t->frame)
        return FP_EINVAL;
    mt_sample m = {.frame = x, .rss = rss_anon, .minflt = minflt};
    t->frame = x;
    push(t, m);
    return FP_OK;
}

/* ---- analysis ------------------------------------------------------------------------ */

typedef uint64_t (*mt_field)(const mt_sample *s);
static uint64_t f_rss(const mt_sample *s)
{
    return s->rss;
}
static uint64_t f_minflt(const mt_sample *s)
{
    return s->minflt;
}
static uint64_t f_live(const mt_sample *s)
{
    return s->live;
}

/* Work space of one analysis: the axis and one field of the judged samples,
 * and the pairs' slopes (also used for the windows' medians). */
typedef struct mt_work {
    double *x, *y, *pairs;
    size_t npairs;
} mt_work;

/* Theil-Sen slope of field(s[i]) against s[i].frame over s[0..n). */
static double theil_sen(const mt_sample *s, size_t n, mt_field f, mt_work *w)
{
    for (size_t i = 0; i < n; i++) {
        w->x[i] = (double)s[i].frame;
        w->y[i] = (double)f(&s[i]);
    }
    return fp__theil_sen(w->x, w->y, n, FP_THEIL_SEN_MAX_PAIRS, w->pairs);
}

/* Median of the first and last 10% windows. */
static int64_t window_delta(const mt_sample *s, size_t n, mt_field f, mt_work *mw)
{
    size_t w = n / 10;
    if (w < 1)
        w = 1;
    double *work = mw->pairs;
    for (size_t i = 0; i < w; i++)
        work[i] = (double)f(&s[i]);
    double a = fp__median(work, w);
    for (size_t i = 0; i < w; i++)
        work[i] = (double)f(&s[n - w + i]);
    double b = fp__median(work, w);
    return (int64_t)llround(b - a);
}

/* Frames between the centres of the two windows. */
static double window_span(const mt_sample *s, size_t n)
{
    size_t w = n / 10;
    if (w < 1)
        w = 1;
    double c0 = ((double)s[0].frame + (double)s[w - 1].frame) / 2;
    double c1 = ((double)s[n - w].frame + (double)s[n - 1].frame) / 2;
    return c1 > c0 ? c1 - c0 : 1;
}

/* Applies the thresholds to the samples s[0..n): RssAnon slope and window,
 * minor faults per frame, and whether the library's live bytes are flat. */
static void judge(const fp_memtrack *t, const mt_sample *s, size_t n, mt_work *mw,
                  fp_memtrack_result *r)
{
    const mt_sample *first = &s[0], *last = &s[n - 1];
    uint64_t after = last->frame - first->frame;
    r->faults_per_frame = after ? (double)(last->minflt - first->minflt) / (double)after : 0;
    r->slope = theil_sen(s, n, f_rss, mw);
    r->window_delta = window_delta(s, n, f_rss, mw);
    r->live_slope = theil_sen(s, n, f_live, mw);
    int64_t live_window = window_delta(s, n, f_live, mw);
    r->live_delta = (int64_t)last->live - (int64_t)first->live;
    double span = window_span(s, n);
    const fp_memtrack_config *c = &t->cfg;
    r->fail_reasons = 0;
    /* RSS grows when the robust slope and the window rate agree: a one-time
     * step (a heap extension) moves the window but not the slope. */
    if (c->max_slope >= 0 && r->slope > c->max_slope &&
        (double)r->window_delta / span > c->max_slope)
        r->fail_reasons |= 1u;
    /* Faults, like RssAnon, are judged by their robust slope: a burst of
     * first touches while memory settles is not a cost per frame; faults
     * that recur (a block mapped and unmapped at every save) are, and show
     * in the slope of the cumulative count as in its mean. */
    r->fault_slope = theil_sen(s, n, f_minflt, mw);
    if (c->max_faults >= 0 && r->fault_slope > c->max_faults &&
        r->faults_per_frame > c->max_faults)
        r->fail_reasons |= 2u;
    /* Library live bytes are exact, but they include the frames in flight at
     * the instant of the sample (a decoder's reference frames, a queue's
     * occupancy), which move by whole frames. They are flat when the robust
     * slope is within the limit and the last window sits within the range
     * the first window already covered: a leak makes new highs. */
    size_t w = n / 10 ? n / 10 : 1;
    uint64_t first_max = 0;
    for (size_t i = 0; i < w; i++)
        if (s[i].live > first_max)
            first_max = s[i].live;
    for (size_t i = 0; i < w; i++)
        mw->pairs[i] = (double)s[n - w + i].live;
    double last_median = fp__median(mw->pairs, w);
    r->live_flat = 1;
    if (c->max_live_slope >= 0 &&
        (r->live_slope > c->max_live_slope ||
         ((double)live_window / span > c->max_live_slope && last_median > (double)first_max)))
        r->live_flat = 0;
    if (!r->live_flat)
        r->fail_reasons |= 4u;
}

int fp_memtrack_result_get(fp_memtrack *t, fp_memtrack_result *r)
{
    if (!t || !r)
        return FP_EINVAL;
    memset(r, 0, sizeof *r);
    r->frames = t->frame;
    r->peak_rss = t->peak_rss;
    r->verdict = FP_MEMTRACK_INCONCLUSIVE;
    r->frames_needed = (uint64_t)t->cfg.min_warmup + t->cfg.min_frames;
    if (t->n == 0)
        return FP_OK;
    const mt_sample *last = &t->s[t->n - 1];
    r->last_rss = last->rss;
    r->live_bytes = last->live;
    r->idle_bytes = last->idle;
    mt_sample w0;
    if (t->warm) {
        w0 = t->warm_at;
        r->warmup_ended = 1;
    } else {
        /* Pool misses never stopped: judge the second half. */
        w0 = t->s[t->n / 2];
    }
    r->warmup_frames = w0.frame;
    /* The judged part starts at warm-up end, or later when the caller asks
     * to skip a fixed fraction of the run (an outside observer, which cannot
     * see pool misses, skips the first 15%). */
    uint64_t from = w0.frame;
    if (t->cfg.skip_fraction > 0) {
        double f = t->cfg.skip_fraction < 0.9 ? t->cfg.skip_fraction : 0.9;
        uint64_t skip = (uint64_t)((double)last->frame * f);
        if (skip > from)
            from = skip;
    }
    size_t i0 = 0;
    while (i0 < t->n && t->s[i0].frame < from)
        i0++;
    if (i0 == t->n)
        i0 = t->n - 1;
    const mt_sample *s = t->s + i0;
    size_t n = t->n - i0;
    uint64_t after = last->frame - s[0].frame;
    r->late_misses = last->misses - w0.misses;
    r->judged_from = s[0].frame;
    if (after < t->cfg.min_frames || n < 3) {
        r->frames_needed = s[0].frame + t->cfg.min_frames;
        if (t->cfg.skip_fraction > 0 && t->cfg.skip_fraction < 0.9)
            r->frames_needed =
                (uint64_t)ceil((double)r->frames_needed / (1 - t->cfg.skip_fraction));
        return FP_OK;
    }
    /* One block: the axis, one field, and the pairs (at least n: the
     * windows' medians use it too). */
    mt_work mw = {.npairs = fp__theil_sen_work_len(n, FP_THEIL_SEN_MAX_PAIRS)};
    if (mw.npairs < n)
        mw.npairs = n;
    size_t wn = 2 * n + mw.npairs;
    double *work = fp_alloc(wn * sizeof *work, 16);
    if (!work)
        return FP_ENOMEM;
    mw.x = work;
    mw.y = work + n;
    mw.pairs = work + 2 * n;
    judge(t, s, n, &mw, r);
    r->frames_needed = 0;
    r->verdict = r->fail_reasons ? FP_MEMTRACK_FAIL : FP_MEMTRACK_PASS;
    /* FFmpeg and glibc make one-time allocations the pool counters cannot
     * see (a heap extension after a rewind, the largest packet of a clip
     * arriving late). A leak grows in every part of the run; growth that has
     * stopped is warm-up that ended late, and the run is too short to tell
     * the two apart. So a run that fails is judged again on its second half
     * and on its last quarter: when memory was flat in either, the verdict
     * is INCONCLUSIVE, with the run length that would judge it (the flat
     * part three times as long as the growing part). */
    for (int q = 0; r->verdict == FP_MEMTRACK_FAIL && q < 2; q++) {
        size_t h = q == 0 ? n / 2 : n - n / 4;
        if (n - h < 3 || s[n - 1].frame - s[h].frame < t->cfg.min_frames)
            break;
        fp_memtrack_result late = *r;
        judge(t, s + h, n - h, &mw, &late);
        if (!late.fail_reasons) {
            r->verdict = FP_MEMTRACK_INCONCLUSIVE;
            r->settled_at = s[h].frame;
            r->frames_needed = s[0].frame + 4 * (s[h].frame - s[0].frame);
        }
    }
    fp_free(work, wn * sizeof *work);
    return FP_OK;
}

int fp_memtrack_print(fp_memtrack *t, FILE *out)
{
    fp_memtrack_result r;
    int rc = fp_memtrack_result_get(t, &r);
    if (rc)
        return rc;
    if (!out)
        return (int)r.verdict;
    static const char *const names[] = {"PASS", "FAIL", "INCONCLUSIVE"};
    char w[32], pk[32], idle[32], live[48];
    if (r.live_flat)
        snprintf(live, sizeof live, "flat");
    else
        snprintf(live, sizeof live, "%+.1f B/frame", r.live_slope);
    fprintf(out,
            "memory per frame: %s slope=%.1f B/frame window=%s peak=%s faults/frame=%.3f "
            "live=%s idle=%s frames=%llu warmup=%llu\n",
            names[r.verdict], r.slope, fp_diag_format_size(w, sizeof w, (double)r.window_delta, 1),
            fp_diag_format_size(pk, sizeof pk, (double)r.peak_rss, 0), r.faults_per_frame, live,
            fp_diag_format_size(idle, sizeof idle, (double)r.idle_bytes, 0),
            (unsigned long long)r.frames, (unsigned long long)r.warmup_frames);
    if (r.verdict == FP_MEMTRACK_INCONCLUSIVE && r.settled_at)
        fprintf(out,
                "  memory grew from frame %llu, then stayed flat from frame %llu: a leak or a "
                "late warm-up; run at least %llu frames to tell\n",
                (unsigned long long)r.judged_from, (unsigned long long)r.settled_at,
                (unsigned long long)r.frames_needed);
    else if (r.verdict == FP_MEMTRACK_INCONCLUSIVE)
        fprintf(out, "  fewer than %u frames after frame %llu: no verdict; run at least %llu frames\n",
                t->cfg.min_frames, (unsigned long long)r.judged_from,
                (unsigned long long)r.frames_needed);
    if (!r.warmup_ended && r.frames)
        fprintf(out, "  pool misses never stopped: the second half of the run was judged\n");
    if (r.verdict == FP_MEMTRACK_PASS || !r.fail_reasons)
        return (int)r.verdict;
    char a[32], b[32];
    if (r.fail_reasons & 1u)
        fprintf(out, "  RssAnon grows %.1f B/frame (limit %.1f), window %s\n", r.slope,
                t->cfg.max_slope, fp_diag_format_size(a, sizeof a, (double)r.window_delta, 1));
    if (r.fail_reasons & 2u)
        fprintf(out, "  %.3f minor page faults per frame after warm-up, %.3f steady (limit %.3f)\n",
                r.faults_per_frame, r.fault_slope, t->cfg.max_faults);
    if (r.fail_reasons & 4u)
        fprintf(out, "  framepool live bytes not flat: %+.1f B/frame, %s since warm-up (now %s)\n",
                r.live_slope, fp_diag_format_size(a, sizeof a, (double)r.live_delta, 1),
                fp_diag_format_size(b, sizeof b, (double)r.live_bytes, 0));
    if (t->warm_snap) {
        fp_snapshot *now = NULL;
        if (fp_snapshot_take(&now) == FP_OK) {
            char c1[32];
            fprintf(out, "  objects created since warm-up end (frame %s), by site:\n",
                    fp__diag_commas(c1, sizeof c1, fp_snapshot_frame(t->warm_snap)));
            fp_diag_print_diff(out, now, t->warm_snap, FP_DIAG_BY_SITE, 10);
        }
        fp_unref(&now);
    } else if (r.fail_reasons & 4u) {
        fprintf(out, "  (run with FP_DIAG=sites to see which lines created them)\n");
    }
    return (int)r.verdict;
}
