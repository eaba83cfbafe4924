/*
 * mem_per_frame: the measuring harness every scenario process uses (the C
 * scenarios in mem_per_frame.c and the cv::VideoCapture peer in
 * mem_per_frame_cv.cpp), so that all of them are measured the same way.
 */
#define _GNU_SOURCE
#include "mem_per_frame.h"
#include "common/bench_common.h"

#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- the per-scenario harness ------------------------------------------------------------ */

uint64_t mpf_rss_now(void)
{
    uint64_t rss = 0;
    fp_procstat p;
    if (fp_procstat_open(&p, 0, 0) == FP_OK) {
        fp_procstat_rss_anon(&p, &rss);
        fp_procstat_close(&p);
    }
    return rss;
}

typedef struct watcher {
    pthread_t th;
    const fp_procstat *proc; /* the run's: RssAnon reads may share it */
    atomic_int stop;
    _Atomic uint64_t peak;
} watcher;

static void *watch_main(void *arg)
{
    watcher *w = arg;
    struct timespec ms = {0, 1000000};
    while (!atomic_load(&w->stop)) {
        uint64_t rss;
        if (fp_procstat_rss_anon(w->proc, &rss) == FP_OK && rss > atomic_load(&w->peak))
            atomic_store(&w->peak, rss);
        nanosleep(&ms, NULL);
    }
    return NULL;
}

static void watcher_start(mpf_run *r)
{
    watcher *w = calloc(1, sizeof *w);
    if (!w)
        return;
    w->proc = &r->proc;
    if (pthread_create(&w->th, NULL, watch_main, w) != 0) {
        free(w);
        return;
    }
    r->watcher = w;
}

static void watcher_stop(mpf_run *r)
{
    watcher *w = r->watcher;
    if (!w)
        return;
    atomic_store(&w->stop, 1);
    pthread_join(w->th, NULL);
    r->watch_peak = atomic_load(&w->peak);
    free(w);
    r->watcher = NULL;
}

long mpf_warmup_frames(long target, long clip_frames)
{
    /* At least a tenth of the run and 60 frames; and two passes through the
     * clip (the first pass and the first rewind), when that fits in half the
     * run: libavcodec's and libavformat's own buffers (packet buffers sized
     * by the largest packet, per-thread decoder state) reach their high-water
     * mark only once the whole clip went through the decoder and a seek
     * flushed it. The same rule for every scenario. */
    long w = target / 10 > 60 ? target / 10 : 60;
    if (clip_frames > 0) {
        long two = 2 * clip_frames + 30;
        if (two > target / 2)
            two = target / 2;
        if (two > w)
            w = two;
    }
    return w;
}

int mpf_run_start(mpf_run *r, const char *name, long target, long clip_frames,
                  int manual_misses, int tty)
{
    r->name = name;
    r->target = target;
    r->frames = 0;
    r->tty = tty;
    r->clip_frames = clip_frames;
    int prc = fp_procstat_open(&r->proc, 0, 0);
    if (prc != FP_OK)
        return prc;
    r->proc_open = 1;
    /* Warm-up ends after mpf_warmup_frames, and for framepool loops only once
     * its pools stopped missing (fp_memtrack's own rule). */
    fp_memtrack_config mc = {0};
    mc.min_warmup = (unsigned)mpf_warmup_frames(target, clip_frames);
    mc.manual_misses = manual_misses;
    mc.capacity = 16384;
    int rc = fp_memtrack_new(&mc, &r->mt);
    if (rc < 0)
        return rc;
    r->stride = (uint64_t)target / 4000 + 1;
    r->cap = (size_t)((uint64_t)target / r->stride + 4);
    r->pts = calloc(r->cap, sizeof *r->pts);
    if (!r->pts)
        return FP_ENOMEM;
    memset(r->pts, 0xff, r->cap * sizeof *r->pts); /* touch every page now */
    r->npts = 0;
    r->progress_every = (uint64_t)(target >= 10000 ? target / 10 : 1000);
    /* First progress output now, so stdio's buffer exists before warm-up. */
    if (r->tty)
        printf("\r%-22s starting...", name);
    else
        printf("%s: running %ld frames\n", name, target);
    fflush(stdout);
    watcher_start(r);
    r->cpu0 = bench_cpu_seconds();
    r->t0 = r->last_progress = bench_now();
    return 0;
}

void mpf_note_misses(mpf_run *r, uint64_t misses)
{
    fp_memtrack_note_pool_misses(r->mt, misses);
}

static void progress(mpf_run *r, int final)
{
    uint64_t rss = 0;
    fp_procstat_rss_anon(&r->proc, &rss);
    double dt = bench_now() - r->t0;
    double fps = dt > 0 ? (double)r->frames / dt : 0;
    char s[32];
    fp_diag_format_size(s, sizeof s, (double)rss, 0);
    if (r->tty) {
        char bar[25];
        int fill = (int)(24.0 * (double)r->frames / (double)(r->target > 0 ? r->target : 1));
        for (int i = 0; i < 24; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[24] = 0;
        printf("\r%-22s [%s] %7" PRIu64 "/%-7ld %8.1f fps  RssAnon %10s%s", r->name, bar,
               r->frames, r->target, fps, s, final ? "\n" : "");
    } else {
        printf("%s: %" PRIu64 "/%ld frames, %.1f fps, RssAnon %s\n", r->name, r->frames,
               r->target, fps, s);
    }
    fflush(stdout);
}

int mpf_frame(mpf_run *r)
{
    r->frames++;
    fp_memtrack_sample(r->mt);
    if ((r->frames - 1) % r->stride == 0 && r->npts < r->cap) {
        mpf_point *p = &r->pts[r->npts];
        p->frame = r->frames;
        if (fp_procstat_rss_anon(&r->proc, &p->rss) == FP_OK)
            r->npts++;
    }
    if (r->tty) {
        if ((r->frames & 15) == 0) {
            double t = bench_now();
            if (t - r->last_progress >= 0.25) {
                r->last_progress = t;
                progress(r, 0);
            }
        }
    } else if (r->frames % r->progress_every == 0 && (long)r->frames < r->target) {
        progress(r, 0);
    }
    return (long)r->frames >= r->target;
}

void mpf_run_stop(mpf_run *r)
{
    r->t_end = bench_now();
    r->cpu = bench_cpu_seconds() - r->cpu0;
    fp_procstat_sample ps;
    r->proc_threads = fp_procstat_read(&r->proc, &ps) == FP_OK ? ps.threads : 0;
    r->proc_threads -= r->watcher != NULL;
    watcher_stop(r);
    progress(r, 1);
}


int mpf_write_result(const char *path, const char *points, mpf_run *r, int rc)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "ok %d\n", rc == 0);
    fprintf(f, "note %s\n", r->note);
    fprintf(f, "codec %s\n", r->codec[0] ? r->codec : "-");
    fprintf(f, "width %d\nheight %d\nthreads %d\nframe_bytes %" PRIu64 "\n", r->width, r->height,
            r->threads, r->frame_bytes);
    if (r->mt) {
        fp_memtrack_result m;
        if (fp_memtrack_result_get(r->mt, &m) == 0) {
            double dt = r->t_end - r->t0;
            fprintf(f, "frames %" PRIu64 "\nseconds %.6f\nfps %.3f\ncpu_ms %.5f\n", r->frames,
                    dt, dt > 0 ? (double)r->frames / dt : 0.0,
                    r->frames ? 1000.0 * r->cpu / (double)r->frames : 0.0);
            fprintf(f, "verdict %d\nwarmup %" PRIu64 "\nwarmup_ended %d\n", (int)m.verdict,
                    m.warmup_frames, m.warmup_ended);
            uint64_t peak = m.peak_rss > r->watch_peak ? m.peak_rss : r->watch_peak;
            fprintf(f, "slope %.3f\nwindow %" PRId64 "\npeak %" PRIu64 "\nfaults %.5f\n", m.slope,
                    m.window_delta, peak, m.faults_per_frame);
            fprintf(f, "frame_peak %" PRIu64 "\njudged_from %" PRIu64 "\n", m.peak_rss,
                    m.judged_from);
            fprintf(f, "live_slope %.3f\nlive_delta %" PRId64 "\nlive_flat %d\nlive %" PRIu64
                       "\nidle %" PRIu64 "\nlate_misses %" PRIu64 "\nfail_reasons %u\n",
                    m.live_slope, m.live_delta, m.live_flat, m.live_bytes, m.idle_bytes,
                    m.late_misses, m.fail_reasons);
        }
    }
    fprintf(f, "proc_threads %d\nbase_rss %" PRIu64 "\nclip_frames %ld\n", r->proc_threads,
            r->base_rss, r->clip_frames);
    fclose(f);
    FILE *p = fopen(points, "w");
    if (!p)
        return -1;
    for (size_t i = 0; i < r->npts; i++)
        fprintf(p, "%" PRIu64 " %" PRIu64 "\n", r->pts[i].frame, r->pts[i].rss);
    fclose(p);
    return 0;
}


int mpf_child_parse(int argc, char **argv, mpf_opts *o, const char **id, const char **result,
                    const char **points)
{
    memset(o, 0, sizeof *o);
    *id = *result = *points = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return -1;
        const char *v = argv[++i];
        if (!strcmp(a, "--scenario")) *id = v;
        else if (!strcmp(a, "--result")) *result = v;
        else if (!strcmp(a, "--points")) *points = v;
        else if (!strcmp(a, "--dir")) o->dir = v;
        else if (!strcmp(a, "--clip")) o->clip = v;
        else if (!strcmp(a, "--frames")) o->frames = atol(v);
        else if (!strcmp(a, "--threads")) o->threads = atoi(v);
        else if (!strcmp(a, "--save-every")) o->save_every = atoi(v);
        else if (!strcmp(a, "--leak-mb")) o->leak_mb = atol(v);
        else if (!strcmp(a, "--queue")) o->queue = atoi(v);
        else if (!strcmp(a, "--hold")) o->hold = atoi(v);
        else if (!strcmp(a, "--max-held")) o->max_held = atoi(v);
        else if (!strcmp(a, "--prime")) o->prime = atoi(v);
        else return -1;
    }
    if (!*id || !*result || !*points || !o->dir || !o->clip || o->frames <= 0)
        return -1;
    o->progress_tty = isatty(STDOUT_FILENO);
    return 0;
}
