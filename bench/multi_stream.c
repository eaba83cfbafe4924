/*
 * multi_stream — how many live 720p25 cameras one machine keeps at real
 * time: framepool's live readers (ALL and LATEST, one process, one
 * fp_budget) against cv::VideoCapture threads (bench/multi_stream_cv).
 *
 *   multi_stream --find [--seconds S] [--warmup W] [--max N] [--bgr] [--peers LIST]
 *   multi_stream [--streams N] [--seconds S] ...      (one step per peer at N)
 *
 * The streams: an H.264 1280x720 25 fps clip with a 2 s GOP (libx264, no
 * B-frames, ~2.2 Mbit/s, what an IP camera sends), made once with ffmpeg,
 * each frame's number stamped in its top rows (multi_stream.h). A step
 * starts N forked tcp servers on 127.0.0.1 that do not encode: each sends
 * the pre-made MPEG-TS frame by frame at its pace (frame k at t0 + k/25),
 * looped, to one client; then the peer: N readers with one loop thread
 * each (framepool) or N cv::VideoCapture threads (a child process). Every
 * loop does the same work per frame: read the stamp row. Once every stream
 * delivered, a warm-up of W s, then a window of S s in which every frame's
 * age (delivery minus the time its server sent it, see multi_stream.h) and
 * count are recorded, the peer's and the servers' CPU time and the peer's
 * RssAnon measured. Then everything is stopped and the next step starts
 * afresh. --find doubles N from 1 until a step fails, then bisects.
 */
#define _GNU_SOURCE
#include "common/bench_common.h"
#include "multi_stream.h"

#include <framepool.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FPS 25
#define CLIP_SECONDS 8
#define CLIP_FRAMES (FPS * CLIP_SECONDS)

enum peer { PEER_FP_ALL, PEER_FP_LATEST, PEER_CV, PEER_COUNT };
static const char *peer_name[PEER_COUNT] = {"framepool ALL", "framepool LATEST",
                                            "cv::VideoCapture"};
static const char *peer_key[PEER_COUNT] = {"fp-all", "fp-latest", "cv"};

/* What the run was asked for. */
typedef struct config {
    double seconds, warmup;
    int bgr, prefill, find, max_n;
    double budget_mib;
    double all_age;    /* ALL and cv: the most p95 age (s) */
    double latest_age; /* LATEST: the most p95 age (s) */
    int allowance;     /* frames a stream may deliver fewer than were sent in the window */
    FILE *trace;
} config;

/* One step's figures. */
typedef struct result {
    int n, pass, connected;
    double wall;                  /* the window, seconds */
    double sent_fps, deliv_fps;   /* all streams */
    uint64_t delivered, drops, budget_drops, mismatch, errors, reconnects;
    uint64_t win_drops;           /* framepool: dropped + budget_drops within the window */
    uint64_t worst_deliv;         /* the fewest frames one stream delivered in the window */
    double expected;              /* frames one stream was sent in the window (fps x wall) */
    double p50, p95, max;         /* age, seconds */
    double cpu_pf_ms, peer_cpu, srv_cpu; /* ms per delivered frame; CPU shares of the machine */
    double rss_end, rss_max;      /* MiB */
    double rss_slope;             /* KiB/min, Theil-Sen over the window */
    double budget_peak, budget_cap; /* MiB (framepool) */
    double fp_age_max;            /* framepool's own stats.age_max (from packet arrival), s */
    int over_cap, samples, threads, fds;
    char why[128];
} result;

static unsigned char *clip;
static size_t clip_len;
static size_t frame_off[CLIP_FRAMES + 1]; /* frame k of the clip: [off[k], off[k+1]) */
static ms_shared *sh;
static char shared_path[64];

/* Splits the MPEG-TS clip into frames: each video PES start (payload unit
 * start on the PID whose PES has stream id 0xE0..0xEF) begins a frame; the
 * table packets before it travel with the frame before. Returns the number
 * of frames found. */
static int split_frames(void)
{
    int pid = -1, k = 0;
    for (size_t off = 0; off + 188 <= clip_len; off += 188) {
        const unsigned char *p = clip + off;
        if (p[0] != 0x47 || !(p[1] & 0x40))
            continue;
        int this_pid = ((p[1] & 0x1f) << 8) | p[2];
        size_t h = 4;
        if (p[3] & 0x20)
            h += 1 + (size_t)p[4];
        if (!(p[3] & 0x10) || h + 4 > 188)
            continue;
        int pes = p[h] == 0 && p[h + 1] == 0 && p[h + 2] == 1 && (p[h + 3] & 0xf0) == 0xe0;
        if (pid < 0 && pes)
            pid = this_pid;
        if (this_pid != pid || !pes)
            continue;
        if (k < CLIP_FRAMES)
            frame_off[k] = k == 0 ? 0 : off;
        k++;
    }
    frame_off[k < CLIP_FRAMES ? k : CLIP_FRAMES] = clip_len / 188 * 188;
    return k;
}

static void sleep_until(const struct timespec *base, double seconds)
{
    struct timespec t = *base;
    long long ns = (long long)(seconds * 1e9) + t.tv_nsec;
    t.tv_sec += (time_t)(ns / 1000000000);
    t.tv_nsec = (long)(ns % 1000000000);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR) {
    }
}

/* A forked server for stream i: listens on 127.0.0.1, serves one client
 * frame k of the clip (looped) at t0 + k / FPS. It does not encode. */
static pid_t serve(int i, int *port_out)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1)) {
        if (l >= 0)
            close(l);
        return -1;
    }
    socklen_t al = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &al);
    *port_out = ntohs(a.sin_port);
    fflush(stdout);
    pid_t p = fork();
    if (p != 0) {
        close(l);
        return p;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int c = accept(l, NULL, NULL);
    close(l);
    struct timespec m0;
    clock_gettime(CLOCK_MONOTONIC, &m0);
    __atomic_store_n(&sh->s[i].t0_us, ms_wall_us(), __ATOMIC_RELEASE);
    for (uint64_t k = 0;; k++) {
        sleep_until(&m0, (double)k / FPS);
        size_t f = (size_t)(k % CLIP_FRAMES), off = frame_off[f], end = frame_off[f + 1];
        while (off < end) {
            ssize_t w = send(c, clip + off, end - off, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                _exit(0);
            off += (size_t)w;
        }
        __atomic_store_n(&sh->s[i].sent, k + 1, __ATOMIC_RELAXED);
    }
}

/* CPU seconds process `pid` has run, from /proc/PID/schedstat (nanoseconds,
 * unlike stat's clock ticks: a server runs well under a tick per frame). */
static double run_seconds(pid_t pid)
{
    char path[64], buf[128];
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t k = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (k <= 0)
        return 0;
    buf[k] = 0;
    return strtod(buf, NULL) / 1e9;
}

/* ---- the framepool peer ---- */

typedef struct fp_stream {
    int i;
    fp_reader *r;
    pthread_t th;
} fp_stream;

static int fp_stop;

static void *fp_loop(void *arg)
{
    fp_stream *s = arg;
    fp_image *img = NULL;
    uint64_t sum = 0;
    while (!__atomic_load_n(&fp_stop, __ATOMIC_RELAXED)) {
        int rc = fp_reader_next(s->r, &img);
        if (rc == 1) {
            int64_t now = ms_wall_us();
            int code = -1;
            if (img->height > MS_STAMP_ROW) {
                const uint8_t *row = img->data[0] + (size_t)MS_STAMP_ROW * img->stride[0];
                if (img->format == FP_PIX_BGR24)
                    code = ms_touch(row + 1, img->width, 3, &sum);
                else if (img->format == FP_PIX_YUV420P || img->format == FP_PIX_NV12 ||
                         img->format == FP_PIX_GRAY8)
                    code = ms_touch(row, img->width, 1, &sum);
            }
            ms_record(sh, s->i, img->index, code, now, sum);
        } else if (rc == 0) {
            break;
        } else if (rc != FP_ETIMEDOUT && rc != FP_ECANCELED) {
            /* every other error is a defect here: the loop holds at most the
             * frame this call releases */
            __atomic_fetch_add(&sh->s[s->i].errors, 1, __ATOMIC_RELAXED);
            usleep(1000);
        }
    }
    fp_unref(&img);
    return NULL;
}

/* dropped + budget_drops of every reader so far (live readers' stats may be
 * read from any thread) */
static uint64_t reader_drops(fp_stream *fs, int n)
{
    uint64_t d = 0;
    for (int i = 0; i < n; i++) {
        fp_reader_stats st;
        if (fp_reader_get_stats(fs[i].r, &st) == FP_OK)
            d += st.dropped + st.packets_dropped + st.budget_drops;
    }
    return d;
}

/* ---- one step ---- */

static int wait_child(pid_t p, double seconds)
{
    double t = bench_now();
    while (bench_now() - t < seconds) {
        if (waitpid(p, NULL, WNOHANG) == p)
            return 0;
        usleep(10000);
    }
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
    return -1;
}

static double hist_pct(const uint64_t *h, uint64_t total, double q)
{
    if (!total)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total), acc = 0;
    if (want >= total)
        want = total - 1;
    for (int b = 0; b <= MS_BINS; b++) {
        acc += h[b];
        if (acc > want)
            return b == MS_BINS ? MS_BINS / 1000.0 : (b + 0.5) / 1000.0;
    }
    return MS_BINS / 1000.0;
}

static void run_step(enum peer peer, int n, const config *cfg, result *res)
{
    memset(res, 0, sizeof *res);
    res->n = n;
    memset(sh, 0, sizeof *sh);
    sh->fps = FPS;
    sh->clip_frames = CLIP_FRAMES;
    pid_t srv[MS_MAXS];
    int port[MS_MAXS];
    int nsrv = 0;
    for (; nsrv < n; nsrv++) {
        srv[nsrv] = serve(nsrv, &port[nsrv]);
        if (srv[nsrv] < 0) {
            snprintf(res->why, sizeof res->why, "could not start server %d", nsrv);
            goto out_servers;
        }
    }

    /* the peer */
    fp_stream fs[MS_MAXS];
    int nfs = 0;
    pid_t cv = -1;
    fp_budget *budget = NULL;
    size_t frame_bytes = cfg->bgr ? (size_t)1280 * 720 * 3 : (size_t)1280 * 720 * 3 / 2;
    unsigned queue = peer == PEER_FP_ALL ? 8 : 1;
    size_t cap = cfg->budget_mib > 0 ? (size_t)(cfg->budget_mib * 1048576)
                                     : (size_t)n * (queue + 8) * frame_bytes;
    __atomic_store_n(&fp_stop, 0, __ATOMIC_RELAXED);
    if (peer == PEER_CV) {
        char path[PATH_MAX];
        if (bench_peer_path("multi_stream_cv", path, sizeof path)) {
            snprintf(res->why, sizeof res->why, "multi_stream_cv not found");
            goto out_servers;
        }
        char *argv[MS_MAXS + 3], urls[MS_MAXS][40];
        argv[0] = path;
        argv[1] = shared_path;
        for (int i = 0; i < n; i++) {
            snprintf(urls[i], sizeof urls[i], "tcp://127.0.0.1:%d", port[i]);
            argv[2 + i] = urls[i];
        }
        argv[2 + n] = NULL;
        fflush(stdout);
        cv = fork();
        if (cv == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            execv(path, argv);
            _exit(127);
        }
    } else {
        if (fp_budget_new(cap, &budget)) {
            snprintf(res->why, sizeof res->why, "cannot make the budget: %s", fp_errmsg());
            goto out_servers;
        }
        res->budget_cap = (double)cap / 1048576;
        for (; nfs < n; nfs++) {
            char url[64];
            snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port[nfs]);
            fp_reader_options o = {0};
            o.max_held = 1;
            o.format = cfg->bgr ? FP_PIX_BGR24 : FP_PIX_NONE;
            o.prefill = cfg->bgr && cfg->prefill;
            o.live.mode = peer == PEER_FP_ALL ? FP_LIVE_ALL : FP_LIVE_LATEST;
            o.live.queue = queue;
            o.live.reconnect_min = 0.05;
            o.live.reconnect_max = 1;
            o.timeout_us = 200000;
            o.budget = budget;
            fs[nfs].i = nfs;
            if (fp_reader_open(url, &o, &fs[nfs].r) < 0) {
                snprintf(res->why, sizeof res->why, "open: %s", fp_reader_errmsg(fs[nfs].r));
                fp_reader_close(&fs[nfs].r);
                goto out_peer;
            }
            pthread_create(&fs[nfs].th, NULL, fp_loop, &fs[nfs]);
        }
    }

    /* every stream delivers, then the warm-up */
    double t_conn = bench_now();
    int up = 0;
    while (bench_now() - t_conn < 20) {
        up = 0;
        for (int i = 0; i < n; i++)
            up += __atomic_load_n(&sh->s[i].frames, __ATOMIC_RELAXED) > 0;
        if (up == n)
            break;
        usleep(20000);
    }
    res->connected = up;
    if (up < n) {
        snprintf(res->why, sizeof res->why, "only %d of %d streams delivered within 20 s", up, n);
        goto out_peer;
    }
    usleep((useconds_t)(cfg->warmup * 1e6));

    fp_procstat self;
    if (fp_procstat_open(&self, peer == PEER_CV ? cv : 0, FP_PROCSTAT_FDS) != FP_OK) {
        snprintf(res->why, sizeof res->why, "procstat: %s", fp_errmsg());
        goto out_peer;
    }
    fp_procstat_sample ps, ps0;
    double srv_c0 = 0, srv_c1 = 0;
    uint64_t sent0 = 0, sent1 = 0;
    for (int i = 0; i < n; i++)
        srv_c0 += run_seconds(srv[i]);
    fp_procstat_read(&self, &ps0);
    for (int i = 0; i < n; i++)
        sent0 += __atomic_load_n(&sh->s[i].sent, __ATOMIC_RELAXED);
    uint64_t drops0 = reader_drops(fs, nfs);
    double t0 = bench_now();
    __atomic_store_n(&sh->measuring, 1, __ATOMIC_RELEASE);
    int scap = (int)(cfg->seconds * 10) + 16;
    double *ts = calloc((size_t)scap, sizeof *ts), *rs = calloc((size_t)scap, sizeof *rs);
    uint64_t peak = 0;
    ps = ps0;
    while (bench_now() - t0 < cfg->seconds) {
        usleep(100000);
        if (budget) {
            fp_budget_stats bs;
            fp_budget_get_stats(budget, &bs);
            if (bs.used_bytes > cap)
                res->over_cap++;
            if (bs.used_bytes > peak)
                peak = bs.used_bytes;
        }
        if (res->samples < scap && ts && rs && fp_procstat_read(&self, &ps) == FP_OK) {
            ts[res->samples] = bench_now() - t0;
            rs[res->samples] = (double)ps.rss_anon;
            if (cfg->trace)
                fprintf(cfg->trace, "%s %d %.3f %llu %llu\n", peer_key[peer], n,
                        ts[res->samples], (unsigned long long)ps.rss_anon,
                        (unsigned long long)peak);
            res->samples++;
        }
    }
    __atomic_store_n(&sh->measuring, 0, __ATOMIC_RELEASE);
    res->wall = bench_now() - t0;
    fp_procstat_sample ps1;
    if (fp_procstat_read(&self, &ps1) != FP_OK)
        ps1 = ps;
    for (int i = 0; i < n; i++)
        srv_c1 += run_seconds(srv[i]);
    for (int i = 0; i < n; i++)
        sent1 += __atomic_load_n(&sh->s[i].sent, __ATOMIC_RELAXED);
    res->win_drops = reader_drops(fs, nfs) - drops0;
    fp_procstat_close(&self);
    usleep(50000); /* a loop that read `measuring` just before it closed finishes its record */

    int ncpu = bench_cpu_count();
    res->threads = ps1.threads;
    res->fds = ps1.fds;
    res->rss_end = (double)ps1.rss_anon / 1048576;
    for (int i = 0; i < res->samples; i++)
        if (rs[i] / 1048576 > res->rss_max)
            res->rss_max = rs[i] / 1048576;
    if (res->samples >= 4) {
        fp_theil_sen(ts, rs, (size_t)res->samples, 0, &res->rss_slope);
        res->rss_slope *= 60.0 / 1024;
    }
    free(ts);
    free(rs);
    res->budget_peak = (double)peak / 1048576;
    res->peer_cpu = (ps1.cpu_s - ps0.cpu_s) / (res->wall * ncpu);
    res->srv_cpu = (srv_c1 - srv_c0) / (res->wall * ncpu);
    res->sent_fps = (double)(sent1 - sent0) / res->wall;
    res->expected = FPS * res->wall;

    static uint64_t h[MS_BINS + 1];
    memset(h, 0, sizeof h);
    uint64_t max_us = 0;
    res->worst_deliv = UINT64_MAX;
    for (int i = 0; i < n; i++) {
        ms_stream *s = &sh->s[i];
        uint64_t d = __atomic_load_n(&s->delivered, __ATOMIC_RELAXED);
        res->delivered += d;
        if (d < res->worst_deliv)
            res->worst_deliv = d;
        res->mismatch += __atomic_load_n(&s->mismatch, __ATOMIC_RELAXED);
        for (int b = 0; b <= MS_BINS; b++)
            h[b] += __atomic_load_n(&s->hist[b], __ATOMIC_RELAXED);
        uint64_t m = __atomic_load_n(&s->age_max_us, __ATOMIC_RELAXED);
        if (m > max_us)
            max_us = m;
    }
    res->deliv_fps = (double)res->delivered / res->wall;
    res->cpu_pf_ms = res->delivered ? (ps1.cpu_s - ps0.cpu_s) / (double)res->delivered * 1e3 : 0;
    res->p50 = hist_pct(h, res->delivered, 0.50);
    res->p95 = hist_pct(h, res->delivered, 0.95);
    res->max = (double)max_us / 1e6;

out_peer:
    __atomic_store_n(&fp_stop, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&sh->stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < nfs; i++) {
        fp_reader_interrupt(fs[i].r);
        pthread_join(fs[i].th, NULL);
        fp_reader_stats st;
        if (fp_reader_get_stats(fs[i].r, &st) == FP_OK) {
            res->drops += st.dropped + st.packets_dropped;
            res->budget_drops += st.budget_drops;
            res->reconnects += st.reconnects;
            if (st.age_max > res->fp_age_max)
                res->fp_age_max = st.age_max;
        }
        fp_reader_close(&fs[i].r);
    }
    fp_unref(&budget);
    if (cv > 0)
        wait_child(cv, 5);
    for (int i = 0; i < n; i++)
        res->errors += __atomic_load_n(&sh->s[i].errors, __ATOMIC_RELAXED);
out_servers:
    for (int i = 0; i < nsrv; i++) {
        kill(srv[i], SIGKILL);
        waitpid(srv[i], NULL, 0);
    }
    if (res->why[0])
        return;

    /* the verdict */
    double min_deliv = res->expected - cfg->allowance;
    if (peer == PEER_FP_LATEST) {
        min_deliv = res->expected * 0.9;
        if (res->p95 > cfg->latest_age)
            snprintf(res->why, sizeof res->why, "age p95 %.0f ms > %.0f", res->p95 * 1e3,
                     cfg->latest_age * 1e3);
    } else {
        if (res->drops || res->budget_drops)
            snprintf(res->why, sizeof res->why, "%llu dropped, %llu lost to the budget",
                     (unsigned long long)res->drops, (unsigned long long)res->budget_drops);
        else if (res->p95 > cfg->all_age)
            snprintf(res->why, sizeof res->why, "age p95 %.0f ms > %.0f", res->p95 * 1e3,
                     cfg->all_age * 1e3);
    }
    if (!res->why[0] && (double)res->worst_deliv < min_deliv)
        snprintf(res->why, sizeof res->why, "a stream got %llu of %.0f frames",
                 (unsigned long long)res->worst_deliv, res->expected);
    if (!res->why[0] && res->errors)
        snprintf(res->why, sizeof res->why, "%llu read errors", (unsigned long long)res->errors);
    if (!res->why[0] && res->mismatch)
        snprintf(res->why, sizeof res->why, "%llu frames not the one expected",
                 (unsigned long long)res->mismatch);
    if (!res->why[0] && res->over_cap)
        snprintf(res->why, sizeof res->why, "budget above its cap in %d checks", res->over_cap);
    res->pass = !res->why[0];
}

static void print_header(enum peer peer, const config *cfg)
{
    printf("\n%s (%s)\n", peer_name[peer],
           peer == PEER_CV ? "BGR24, the backend's default threads"
           : cfg->bgr      ? "BGR24, 1 decoder thread per stream"
                           : "native yuv420p, 1 decoder thread per stream");
    printf("%4s %9s %9s %7s %21s %8s %6s %6s %13s  %s\n", "N", "sent fps", "deliv fps",
           "drops", "age ms p50/p95/max", "CPU ms/f", "peer%", "srv%", "RssAnon MiB", "verdict");
    fflush(stdout);
}

static void print_row(const result *r)
{
    char age[32], rss[32];
    if (r->delivered) {
        /* a percentile in the histogram's last bin is "at least" its bound */
        snprintf(age, sizeof age, "%s%.0f/%s%.0f/%.0f", r->p50 >= MS_BINS / 1e3 ? ">" : "",
                 r->p50 * 1e3, r->p95 >= MS_BINS / 1e3 ? ">" : "", r->p95 * 1e3, r->max * 1e3);
        snprintf(rss, sizeof rss, "%.1f/%.1f", r->rss_end, r->rss_max);
    } else {
        snprintf(age, sizeof age, "-");
        snprintf(rss, sizeof rss, "-");
    }
    printf("%4d %9.1f %9.1f %7llu %21s %8.3f %5.0f%% %5.1f%% %13s  %s%s\n", r->n, r->sent_fps,
           r->deliv_fps, (unsigned long long)(r->drops + r->budget_drops), age, r->cpu_pf_ms,
           r->peer_cpu * 100, r->srv_cpu * 100, rss, r->pass ? "ok" : "FAIL: ", r->why);
    if (r->fp_age_max > 0)
        printf("     framepool's own age_max (from the packet's arrival, whole step): %.0f ms; "
               "drops in the window %llu of %llu\n",
               r->fp_age_max * 1e3, (unsigned long long)r->win_drops,
               (unsigned long long)(r->drops + r->budget_drops));
    if (r->errors || r->mismatch || r->reconnects)
        printf("     %llu read errors, %llu frames not the one stamped, %llu reconnects\n",
               (unsigned long long)r->errors, (unsigned long long)r->mismatch,
               (unsigned long long)r->reconnects);
    fflush(stdout);
}

/* Doubles N from 1 until a step fails (or max), then bisects between the
 * largest pass and the smallest fail. Returns the largest N that passed. */
static int find(enum peer peer, const config *cfg)
{
    print_header(peer, cfg);
    int lo = 0, hi = 0;
    result r;
    for (int n = 1; n <= cfg->max_n; n = n * 2 > cfg->max_n && n < cfg->max_n ? cfg->max_n : n * 2) {
        run_step(peer, n, cfg, &r);
        print_row(&r);
        if (!r.pass) {
            hi = n;
            break;
        }
        lo = n;
    }
    while (hi && hi - lo > 1) {
        int mid = (lo + hi) / 2;
        run_step(peer, mid, cfg, &r);
        print_row(&r);
        if (r.pass)
            lo = mid;
        else
            hi = mid;
    }
    printf("%s: %d streams kept at real time%s\n", peer_name[peer], lo,
           hi ? "" : " (the most tried)");
    return lo;
}

static int usage(FILE *f, int rc)
{
    fprintf(f,
            "usage: multi_stream --find [--max N] [options]   the most streams kept at real time\n"
            "       multi_stream [--streams N] [options]      one step per peer at N (default 16)\n"
            "options:\n"
            "  --seconds S   the measured window of each step (default 10; 60 without --find)\n"
            "  --warmup W    seconds after every stream delivered, before the window (default 3)\n"
            "  --peers LIST  comma-separated: fp-all, fp-latest, cv (default all three)\n"
            "  --bgr         framepool delivers BGR24 as cv does (default: the decoder's own\n"
            "                format, yuv420p); --prefill: its conversion pools take their\n"
            "                bound before the first frame\n"
            "  --budget MiB  the framepool readers' one fp_budget (default (queue + 8) frames\n"
            "                per stream)\n"
            "  --max N       --find tries at most N streams (default and limit %d)\n"
            "  --all-age MS  ALL and cv: the most age p95 that passes (default 500)\n"
            "  --latest-age MS  LATEST: the most age p95 that passes (default 80, 2 intervals)\n"
            "  --allowance F ALL and cv: frames a stream may get fewer than its server sent\n"
            "                in the window (default 12: half a second)\n"
            "  --trace FILE  every sample: peer, N, seconds, RssAnon bytes, budget peak bytes\n"
            "Streams: H.264 1280x720 25 fps, 2 s GOP, from forked tcp servers on 127.0.0.1\n"
            "that send each frame at its time. A step passes when, in its window:\n"
            "  ALL, cv: no frame dropped, every stream got >= sent - allowance frames, age p95\n"
            "           <= --all-age (a loop that falls behind builds a backlog: its age grows);\n"
            "  LATEST:  age p95 <= --latest-age and every stream got >= 90%% of the frames sent;\n"
            "  and no read error, every frame the one stamped, the budget never above its cap.\n"
            "Age: wall time at delivery - the time the server sent that frame (multi_stream.h).\n"
            "Exit status: 0; 1 when a step failed (without --find) or could not run; 2 usage.\n",
            MS_MAXS);
    return rc;
}

int main(int argc, char **argv)
{
    config cfg = {0};
    cfg.seconds = -1;
    cfg.warmup = 3;
    cfg.max_n = MS_MAXS;
    cfg.all_age = 0.5;
    cfg.latest_age = 2.0 / FPS;
    cfg.allowance = FPS / 2;
    int n = 16, want[PEER_COUNT] = {1, 1, 1};
    const char *trace_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--find"))
            cfg.find = 1;
        else if (!strcmp(a, "--bgr"))
            cfg.bgr = 1;
        else if (!strcmp(a, "--prefill"))
            cfg.prefill = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return usage(stdout, 0);
        else if (!v)
            return usage(stderr, 2);
        else if (i++, !strcmp(a, "--streams"))
            n = atoi(v);
        else if (!strcmp(a, "--seconds"))
            cfg.seconds = atof(v);
        else if (!strcmp(a, "--warmup"))
            cfg.warmup = atof(v);
        else if (!strcmp(a, "--max"))
            cfg.max_n = atoi(v);
        else if (!strcmp(a, "--budget"))
            cfg.budget_mib = atof(v);
        else if (!strcmp(a, "--all-age"))
            cfg.all_age = atof(v) / 1e3;
        else if (!strcmp(a, "--latest-age"))
            cfg.latest_age = atof(v) / 1e3;
        else if (!strcmp(a, "--allowance"))
            cfg.allowance = atoi(v);
        else if (!strcmp(a, "--trace"))
            trace_path = v;
        else if (!strcmp(a, "--peers")) {
            char list[128];
            snprintf(list, sizeof list, "%s", v);
            memset(want, 0, sizeof want);
            for (char *save = NULL, *t = strtok_r(list, ",", &save); t;
                 t = strtok_r(NULL, ",", &save)) {
                int k = 0;
                while (k < PEER_COUNT && strcmp(t, peer_key[k]))
                    k++;
                if (k == PEER_COUNT) {
                    fprintf(stderr, "multi_stream: unknown peer '%s' (fp-all, fp-latest, cv)\n", t);
                    return 2;
                }
                want[k] = 1;
            }
        } else
            return usage(stderr, 2);
    }
    if (cfg.seconds < 0)
        cfg.seconds = cfg.find ? 10 : 60;
    if (n < 1 || n > MS_MAXS || cfg.max_n < 1 || cfg.max_n > MS_MAXS || !(cfg.seconds >= 1) ||
        !(cfg.warmup >= 0) || cfg.allowance < 0 || !(cfg.all_age > 0) || !(cfg.latest_age > 0))
        return usage(stderr, 2);
    signal(SIGPIPE, SIG_IGN);

    /* the clip: frame k's number in 8 blocks of the top 16 rows (luma 16 or
     * 235, grey chroma), H.264 as an IP camera sends it */
    char args[1024];
    snprintf(args, sizeof args,
             "-f lavfi -i testsrc2=size=1280x720:rate=%d -t %d -filter_complex "
             "\"[0:v]format=yuv420p,split[a][b];[b]crop=1280:16:0:0,geq=lum='if(bitand(mod(N\\,"
             "%d)\\,pow(2\\,floor(X/%d)))\\,235\\,16)':cb=128:cr=128[t];[a][t]overlay=0:0,"
             "format=yuv420p\" -c:v libx264 -preset veryfast -profile:v main -bf 0 -g %d "
             "-keyint_min %d -sc_threshold 0 -b:v 2M -maxrate 2M -bufsize 2M "
             "-omit_video_pes_length 0",
             FPS, CLIP_SECONDS, CLIP_FRAMES, MS_STAMP_W, 2 * FPS, 2 * FPS);
    clip = bench_make_clip(args, &clip_len);
    if (!clip) {
        fprintf(stderr, "multi_stream: making the clip failed (needs the ffmpeg program with "
                        "libx264)\n");
        return 1;
    }
    int frames = split_frames();
    if (frames != CLIP_FRAMES) {
        fprintf(stderr, "multi_stream: the clip has %d video frames, expected %d\n", frames,
                CLIP_FRAMES);
        return 1;
    }
    snprintf(shared_path, sizeof shared_path, "/tmp/fp_multi_stream_XXXXXX");
    int fd = mkstemp(shared_path);
    if (fd < 0 || ftruncate(fd, sizeof(ms_shared)) != 0) {
        fprintf(stderr, "multi_stream: cannot make %s: %s\n", shared_path, strerror(errno));
        return 1;
    }
    sh = mmap(NULL, sizeof(ms_shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (sh == MAP_FAILED) {
        fprintf(stderr, "multi_stream: cannot map %s: %s\n", shared_path, strerror(errno));
        unlink(shared_path);
        return 1;
    }
    cfg.trace = trace_path ? fopen(trace_path, "w") : NULL;
    if (trace_path && !cfg.trace) {
        fprintf(stderr, "multi_stream: cannot write %s: %s\n", trace_path, strerror(errno));
        unlink(shared_path);
        return 1;
    }

    double load[3] = {0};
    getloadavg(load, 3);
    printf("multi_stream: H.264 1280x720 %d fps, GOP %d, %.2f Mbit/s, %d-frame clip looped, "
           "from forked tcp servers on 127.0.0.1; framepool %s%s; window %.0f s after a %.0f s "
           "warm-up per step; %d CPUs; load average %.2f %.2f %.2f\n",
           FPS, 2 * FPS, (double)clip_len * 8 / CLIP_SECONDS / 1e6, CLIP_FRAMES,
           cfg.bgr ? "BGR24" : "native", cfg.prefill && cfg.bgr ? " (prefilled)" : "",
           cfg.seconds, cfg.warmup, bench_cpu_count(), load[0], load[1], load[2]);
    printf("pass: ALL and cv: no drops, every stream >= sent - %d frames, age p95 <= %.0f ms; "
           "LATEST: age p95 <= %.0f ms, every stream >= 90%% of sent. Age = delivery - the "
           "server's send time of that frame. peer%%, srv%%: CPU share of the machine (the "
           "peer process; all servers).\n",
           cfg.allowance, cfg.all_age * 1e3, cfg.latest_age * 1e3);
    fflush(stdout);

    int rc = 0, kept[PEER_COUNT] = {0};
    for (int p = 0; p < PEER_COUNT; p++) {
        if (!want[p])
            continue;
        if (cfg.find) {
            kept[p] = find((enum peer)p, &cfg);
            continue;
        }
        result r;
        print_header((enum peer)p, &cfg);
        run_step((enum peer)p, n, &cfg, &r);
        print_row(&r);
        printf("     RssAnon slope over the window %.1f KiB/min; threads %d, fds %d at the end",
               r.rss_slope, r.threads, r.fds);
        if (p != PEER_CV)
            printf("; budget peak %.1f of %.1f MiB (above the cap in %d of %d checks); "
                   "%llu reconnects",
                   r.budget_peak, r.budget_cap, r.over_cap, r.samples,
                   (unsigned long long)r.reconnects);
        printf("\n");
        if (!r.pass)
            rc = 1;
    }
    getloadavg(load, 3);
    if (cfg.find) {
        char v[PEER_COUNT][16];
        for (int p = 0; p < PEER_COUNT; p++)
            snprintf(v[p], sizeof v[p], want[p] ? "%d" : "-", kept[p]);
        printf("\nstreams kept at real time: framepool ALL %s, LATEST %s; cv %s\n", v[PEER_FP_ALL],
               v[PEER_FP_LATEST], v[PEER_CV]);
        printf("(framepool %s, cv BGR24)\n", cfg.bgr ? "BGR24" : "native yuv420p");
    }
    printf("load average at the end %.2f %.2f %.2f\n", load[0], load[1], load[2]);
    if (cfg.trace)
        fclose(cfg.trace);
    munmap(sh, sizeof(ms_shared));
    unlink(shared_path);
    free(clip);
    return rc;
}
