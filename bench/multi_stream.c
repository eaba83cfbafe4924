/*
 * multi_stream — many live cameras in one process under one fp_budget.
 *
 *   multi_stream [--streams N] [--seconds S] [--size WxH] [--budget MiB] [--bgr]
 *
 * N (default 16) local tcp servers (forked children, one client each) serve
 * a 25 fps MPEG-TS clip (made once with ffmpeg, default 1280x720) at its own
 * pace, looped. Phase 1: N framepool live readers (LATEST), one thread each,
 * every reader's pools on one fp_budget; the loop takes each frame and
 * releases it. Every 100 ms the program checks the budget's used bytes
 * against its cap and samples RssAnon; at the end it prints the aggregate
 * fps, CPU per frame, the budget's peak, and the RssAnon Theil-Sen slope per
 * minute after the first 10 s. Phase 2 runs N cv::VideoCapture threads
 * (bench/multi_stream_cv) on fresh servers for the same time and prints the
 * same figures beside. The servers' own CPU is not counted (other processes).
 */
#define _GNU_SOURCE
#include "common/bench_common.h"

#include <framepool.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXS 64
static unsigned char *clip;
static size_t clip_len;
static double clip_seconds = 4;

/* A forked server: listens on `port`, serves one client the clip at its own
 * pace, looped. */
static pid_t serve(int *port_out)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1))
        return -1;
    socklen_t al = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &al);
    *port_out = ntohs(a.sin_port);
    pid_t p = fork();
    if (p != 0) {
        close(l);
        return p;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int c = accept(l, NULL, NULL);
    close(l);
    size_t chunk = 188 * 14;
    double rate = (double)clip_len / clip_seconds, t0 = bench_now(), sent = 0;
    for (size_t off = 0;; off = (off + chunk) % (clip_len / chunk * chunk)) {
        if (send(c, clip + off, chunk, MSG_NOSIGNAL) < 0)
            _exit(0);
        sent += (double)chunk;
        double ahead = sent / rate - (bench_now() - t0);
        if (ahead > 0)
            usleep((useconds_t)(ahead * 1e6));
    }
}

typedef struct stream {
    int port;
    pid_t srv;
    fp_reader *r;
    pthread_t th;
    _Atomic uint64_t frames;
} stream;

static _Atomic int stop;

static void *consume(void *arg)
{
    stream *s = arg;
    fp_image *img = NULL;
    while (!atomic_load(&stop)) {
        int rc = fp_reader_next(s->r, &img);
        if (rc == 1)
            atomic_fetch_add(&s->frames, 1);
        else if (rc == 0)
            break;
    }
    fp_unref(&img);
    return NULL;
}

static int usage(FILE *f, int rc)
{
    fprintf(f,
            "usage: multi_stream [--streams N] [--seconds S] [--size WxH] [--budget MiB] [--bgr]\n"
            "                    [--prefill] [--no-cv] [--trace FILE]\n"
            "  N live streams (default 16, at most %d) of a WxH (default 1280x720) 25 fps\n"
            "  MPEG-2 clip from local tcp servers, one process: first N framepool LATEST\n"
            "  readers on one fp_budget (default: 8 frames per stream), S seconds (default\n"
            "  60) after a 3 s warm-up; then N cv::VideoCapture threads (multi_stream_cv,\n"
            "  BGR) for as long. Prints aggregate fps, CPU per frame, RssAnon (this\n"
            "  process, sampled every 100 ms) and its Theil-Sen slope after the first 10 s,\n"
            "  the budget's peak against its cap, threads and fds.\n"
            "  --bgr    framepool delivers BGR24 too (default: the decoder's native format)\n"
            "  --budget the budget's cap in MiB\n"
            "  --prefill  with --bgr: each reader's conversion pool takes its whole bound\n"
            "           (fp_reader_options.prefill) before the first frame, so it does not\n"
            "           grow later when a loop falls behind\n"
            "  --no-cv  framepool only\n"
            "  --trace FILE  every framepool sample: seconds, RssAnon bytes, budget used bytes\n"
            "Exit status: 0, or 1 when the budget's used bytes were ever above its cap.\n",
            MAXS);
    return rc;
}

int main(int argc, char **argv)
{
    int n = 16;
    double seconds = 60, budget_mib = 0;
    const char *size = "1280x720", *trace_path = NULL;
    int bgr = 0, no_cv = 0, prefill = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--streams") && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = argv[++i];
        else if (!strcmp(argv[i], "--budget") && i + 1 < argc)
            budget_mib = atof(argv[++i]);
        else if (!strcmp(argv[i], "--bgr"))
            bgr = 1;
        else if (!strcmp(argv[i], "--prefill"))
            prefill = 1;
        else if (!strcmp(argv[i], "--no-cv"))
            no_cv = 1;
        else if (!strcmp(argv[i], "--trace") && i + 1 < argc)
            trace_path = argv[++i];
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return usage(stdout, 0);
        else
            return usage(stderr, 2);
    }
    if (n < 1 || n > MAXS || !(seconds > 0))
        return usage(stderr, 2);
    signal(SIGPIPE, SIG_IGN);
    char args[200];
    snprintf(args, sizeof args,
             "-f lavfi -i testsrc2=size=%s:rate=25 -t %.0f -c:v mpeg2video -g 25 -q:v 5 "
             "-flags +low_delay",
             size, clip_seconds);
    clip = bench_make_clip(args, &clip_len);
    if (!clip) {
        fprintf(stderr, "multi_stream: needs the ffmpeg program\n");
        return 2;
    }
    int w = 0, h = 0;
    sscanf(size, "%dx%d", &w, &h);
    /* per stream: the decoder's need (1 thread: a few frames), the queue, the frame held */
    size_t frame_bytes = bgr ? (size_t)w * h * 3 : (size_t)w * h * 3 / 2;
    size_t budget = budget_mib > 0 ? (size_t)(budget_mib * 1048576)
                                   : (size_t)n * 8 * frame_bytes;
    fp_budget *b = NULL;
    if (fp_budget_new(budget, &b)) {
        fprintf(stderr, "multi_stream: cannot make the budget\n");
        return 2;
    }
    double load[3] = {0};
    getloadavg(load, 3);
    printf("multi_stream: %d live %s streams (MPEG-2 over tcp, 25 fps), one budget of %.1f "
           "MiB, %s output%s, %.0f s per peer; load average %.2f %.2f %.2f\n",
           n, size, budget / 1048576.0, bgr ? "BGR24" : "native",
           prefill ? " (conversion pools prefilled)" : "", seconds, load[0], load[1], load[2]);
    fp_procstat self;
    if (fp_procstat_open(&self, 0, FP_PROCSTAT_FDS) != FP_OK) {
        fprintf(stderr, "multi_stream: %s\n", fp_errmsg());
        return 2;
    }
    stream st[MAXS];
    memset(st, 0, sizeof st);
    for (int i = 0; i < n; i++) {
        st[i].srv = serve(&st[i].port);
        char url[64];
        snprintf(url, sizeof url, "tcp://127.0.0.1:%d", st[i].port);
        fp_reader_options o = {0};
        o.threads = 1;
        o.max_held = 1;
        o.format = bgr ? FP_PIX_BGR24 : FP_PIX_NONE;
        o.prefill = prefill;
        o.live.mode = FP_LIVE_LATEST;
        o.live.reconnect_min = 0.05;
        o.live.reconnect_max = 1;
        o.timeout_us = 500000;
        o.budget = b;
        if (fp_reader_open(url, &o, &st[i].r) < 0) {
            fprintf(stderr, "multi_stream: %s\n", fp_reader_errmsg(st[i].r));
            return 1;
        }
    }
    for (int i = 0; i < n; i++)
        pthread_create(&st[i].th, NULL, consume, &st[i]);
    /* warm up 3 s, then measure */
    usleep(3000000);
    uint64_t f0 = 0;
    for (int i = 0; i < n; i++)
        f0 += atomic_load(&st[i].frames);
    double c0 = bench_cpu_seconds(), t0 = bench_now();
    int cap = (int)(seconds * 10) + 16, ns = 0, over = 0;
    double *ts = calloc((size_t)cap, sizeof *ts), *rs = calloc((size_t)cap, sizeof *rs);
    uint64_t peak = 0;
    fp_procstat_sample ps = {0}, ps0 = {0};
    int ps_first = 1;
    FILE *trace = trace_path ? fopen(trace_path, "w") : NULL;
    while (bench_now() - t0 < seconds) {
        usleep(100000);
        fp_budget_stats bs;
        fp_budget_get_stats(b, &bs);
        if (bs.used_bytes > budget)
            over++;
        if (bs.used_bytes > peak)
            peak = bs.used_bytes;
        if (ns < cap && fp_procstat_read(&self, &ps) == FP_OK) {
            if (ps_first)
                ps0 = ps;
            ps_first = 0;
            ts[ns] = bench_now() - t0;
            rs[ns] = (double)ps.rss_anon;
            if (trace)
                fprintf(trace, "%.3f %llu %llu\n", ts[ns], (unsigned long long)ps.rss_anon,
                        (unsigned long long)bs.used_bytes);
            ns++;
        }
    }
    fp_procstat_close(&self);
    if (trace)
        fclose(trace);
    uint64_t f1 = 0, refused = 0;
    for (int i = 0; i < n; i++)
        f1 += atomic_load(&st[i].frames);
    double fp_cpu = bench_cpu_seconds() - c0, fp_wall = bench_now() - t0;
    fp_budget_stats bs;
    fp_budget_get_stats(b, &bs);
    refused = bs.refusals;
    atomic_store(&stop, 1);
    uint64_t drops = 0, reconnects = 0, bdrops = 0;
    for (int i = 0; i < n; i++) {
        fp_reader_interrupt(st[i].r);
        pthread_join(st[i].th, NULL);
        fp_reader_stats s;
        fp_reader_get_stats(st[i].r, &s);
        drops += s.dropped;
        bdrops += s.budget_drops;
        reconnects += s.reconnects;
        fp_reader_close(&st[i].r);
        kill(st[i].srv, SIGKILL);
        waitpid(st[i].srv, NULL, 0);
    }
    fp_unref(&b);
    int from = 0;
    while (from < ns && ts[from] < 10)
        from++;
    if (from >= ns - 2)
        from = ns / 2;
    double slope = 0, slope2 = 0; /* per minute */
    fp_theil_sen(ts + from, rs + from, (size_t)(ns - from), 0, &slope);
    fp_theil_sen(ts + ns / 2, rs + ns / 2, (size_t)(ns - ns / 2), 0, &slope2);
    slope *= 60;
    slope2 *= 60;
    double rs_max = 0;
    for (int i = from; i < ns; i++)
        if (rs[i] > rs_max)
            rs_max = rs[i];
    double fp_fps = (double)(f1 - f0) / fp_wall;

    /* ---- N cv::VideoCapture threads ---- */
    double cv_fps = 0, cv_cpu_pf = 0, cv_rss_slope = 0, cv_rss_slope2 = 0, cv_rss_from = 0,
           cv_rss_last = 0, cv_rss_max = 0;
    long cv_frames = 0;
    char peer[PATH_MAX];
    if (!no_cv && bench_peer_path("multi_stream_cv", peer, sizeof peer) == 0) {
        char *cvcmd = malloc(PATH_MAX + 64 * (size_t)n + 64);
        int k = sprintf(cvcmd, "'%s' %.1f", peer, seconds);
        for (int i = 0; i < n; i++) {
            st[i].srv = serve(&st[i].port);
            k += sprintf(cvcmd + k, " tcp://127.0.0.1:%d", st[i].port);
        }
        FILE *p = popen(cvcmd, "r");
        char line[512];
        while (p && fgets(line, sizeof line, p))
            sscanf(line,
                   "summary frames=%ld fps=%lf cpu_per_frame_ms=%lf rss_slope_per_min=%lf "
                   "rss_from=%lf rss_last=%lf rss_max=%lf rss_slope2_per_min=%lf",
                   &cv_frames, &cv_fps, &cv_cpu_pf, &cv_rss_slope, &cv_rss_from, &cv_rss_last,
                   &cv_rss_max, &cv_rss_slope2);
        if (p)
            pclose(p);
        for (int i = 0; i < n; i++) {
            kill(st[i].srv, SIGKILL);
            waitpid(st[i].srv, NULL, 0);
        }
        free(cvcmd);
    }

    getloadavg(load, 3);
    printf("\n%-24s %10s %12s %24s %28s\n", "peer", "fps (all)", "CPU/frame ms",
           "RssAnon MiB at 10s/end/max", "slope KiB/min from 10s/2nd half");
    printf("%-24s %10.1f %12.3f %10.1f %6.1f %6.1f %18.1f %9.1f\n", "framepool LATEST+budget",
           fp_fps, fp_cpu / (double)(f1 - f0) * 1e3, ns ? rs[from] / 1048576.0 : 0,
           ns ? rs[ns - 1] / 1048576.0 : 0, rs_max / 1048576.0, slope / 1024, slope2 / 1024);
    if (!no_cv)
        printf("%-24s %10.1f %12.3f %10.1f %6.1f %6.1f %18.1f %9.1f\n",
               "cv::VideoCapture threads", cv_fps, cv_cpu_pf, cv_rss_from / 1048576.0,
               cv_rss_last / 1048576.0, cv_rss_max / 1048576.0, cv_rss_slope / 1024,
               cv_rss_slope2 / 1024);
    printf("framepool: threads %d then %d, fds %d then %d (first and last sample); load average "
           "at the end %.2f %.2f %.2f\n",
           ps0.threads, ps.threads, ps0.fds, ps.fds, load[0], load[1], load[2]);
    printf("framepool: budget peak %.1f of %.1f MiB (over the cap in %d of %d checks), %llu "
           "refusals (%llu frames lost to them), %llu stale frames dropped, %llu reconnects\n",
           peak / 1048576.0, budget / 1048576.0, over, ns, (unsigned long long)refused,
           (unsigned long long)bdrops, (unsigned long long)drops,
           (unsigned long long)reconnects);
    if (cv_fps > 0)
        printf("ratio: framepool fps / cv fps = %.2f; CPU per frame cv / framepool = %.2f\n",
               fp_fps / cv_fps, cv_cpu_pf / (fp_cpu / (double)(f1 - f0) * 1e3));
    free(ts);
    free(rs);
    free(clip);
    return over ? 1 : 0;
}
