/*
 * live_latency — frame age of a slow loop on a live source: framepool's
 * LATEST mode against cv::VideoCapture on the same kind of source, in one run.
 *
 *   live_latency [--seconds S] [--work MS] [--size WxH]
 *
 * The source: ffmpeg serving a 25 fps test pattern over tcp on 127.0.0.1
 * (-re: frame t leaves at T0 + t), one fresh server per peer. The loop spends
 * WORK_MS (default 60) per frame, longer than the 40 ms between frames, so it
 * falls behind. Frame age = now - (T0 + frame time), with T0 taken from the
 * first frame (the loop is idle then); for framepool also the reader's own
 * age (wall clock - fp_image.wall_time, the packet's arrival). framepool
 * LATEST should stay under 2 frame intervals (80 ms) for the whole run; a
 * loop that reads every buffered frame (cv::VideoCapture::read) falls further
 * behind every second. Prints both, per second, and the ratio of the mean
 * ages. The peer is bench/live_latency_cv (C++), next to this program.
 */
#define _GNU_SOURCE
#include "common/bench_common.h"

#include <framepool.h>

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static pid_t server(int port, const char *size, double seconds)
{
    char in[96], out[96], t[32];
    snprintf(in, sizeof in, "testsrc2=size=%s:rate=25", size);
    snprintf(out, sizeof out, "tcp://127.0.0.1:%d?listen=1", port);
    snprintf(t, sizeof t, "%.0f", seconds + 30);
    pid_t p = fork();
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open("/dev/null", O_RDWR);
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execlp("ffmpeg", "ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
               in, "-t", t, "-c:v", "mpeg2video", "-g", "12", "-q:v", "4", "-flags",
               "+low_delay", "-flush_packets", "1", "-f", "mpegts", out, (char *)NULL);
        _exit(127);
    }
    return p;
}

static void reap(pid_t p)
{
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    double seconds = 15, work_ms = 60;
    const char *size = "640x360";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--work") && i + 1 < argc)
            work_ms = atof(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = argv[++i];
        else {
            fprintf(stderr, "usage: live_latency [--seconds S] [--work MS] [--size WxH]\n");
            return 2;
        }
    }
    printf("live_latency: 25 fps %s source (ffmpeg over tcp), a loop taking %.0f ms per frame, "
           "%.0f s per peer\n",
           size, work_ms, seconds);

    /* ---- framepool, LATEST ---- */
    int port = bench_free_port();
    pid_t srv = server(port, size, seconds);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    fp_reader_options o = {0};
    o.live.mode = FP_LIVE_LATEST;
    o.live.reconnect_min = 0.05;
    o.live.reconnect_max = 0.2;
    o.format = FP_PIX_BGR24; /* what the cv::VideoCapture loop gets */
    o.timeout_us = 5000000;
    fp_reader *r = NULL;
    if (fp_reader_open(url, &o, &r) < 0) {
        fprintf(stderr, "live_latency: %s\n", fp_reader_errmsg(r));
        return 1;
    }
    fp_image *img = NULL;
    enum { MAXF = 100000 };
    static double fp_at[MAXF], fp_off[MAXF], cv_at[MAXF], cv_off[MAXF];
    long n = 0, cv_n = 0;
    double start = -1, own_max = 0;
    for (;;) {
        int rc = fp_reader_next(r, &img);
        if (rc != 1) {
            fprintf(stderr, "live_latency: framepool: %d %s\n", rc, fp_reader_errmsg(r));
            break;
        }
        if (start < 0)
            start = bench_now();
        double own = wall() - img->wall_time;
        if (own > own_max)
            own_max = own;
        if (n < MAXF) {
            fp_at[n] = bench_now() - start;
            fp_off[n] = bench_now() - img->time;
            n++;
        }
        if (bench_now() - start >= seconds)
            break;
        sleep_s(work_ms / 1000.0);
    }
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    fp_unref(&img);
    fp_reader_close(&r);
    reap(srv);

    /* ---- cv::VideoCapture (its own process: OpenCV stays out of this one) ---- */
    char peer[PATH_MAX];
    if (bench_peer_path("live_latency_cv", peer, sizeof peer) != 0)
        peer[0] = 0;
    port = bench_free_port();
    srv = server(port, size, seconds);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    sleep_s(1.0); /* VideoCapture does not retry: let the server listen */
    char cmd[PATH_MAX + 200];
    snprintf(cmd, sizeof cmd, "'%s' '%s' %.1f %.1f", peer, url, seconds, work_ms);
    FILE *p = popen(cmd, "r");
    char line[256];
    while (p && fgets(line, sizeof line, p))
        if (cv_n < MAXF && sscanf(line, "x %lf %lf", &cv_at[cv_n], &cv_off[cv_n]) == 2)
            cv_n++;
    int prc = p ? pclose(p) : -1;
    reap(srv);
    if (prc != 0 || cv_n == 0)
        fprintf(stderr, "live_latency: the OpenCV peer (%s) failed\n", peer);

    /* Frame age = delivery - (T0 + frame time). T0, when the source emitted
     * time 0, is at most delivery - frame time for every frame: take the
     * smallest (the frame delivered most promptly). */
    struct { const char *name; double *at, *off; long n; double last, max, mean, max1; } pe[2] = {
        {"framepool LATEST", fp_at, fp_off, n, 0, 0, 0, 0},
        {"cv::VideoCapture", cv_at, cv_off, cv_n, 0, 0, 0, 0}};
    printf("%-18s", "t (s)");
    for (int s2 = 1; s2 <= (int)seconds; s2++)
        printf(" %6d", s2);
    printf("\n");
    for (int k = 0; k < 2; k++) {
        if (!pe[k].n)
            continue;
        double t0 = pe[k].off[0];
        for (long i = 1; i < pe[k].n; i++)
            if (pe[k].off[i] < t0)
                t0 = pe[k].off[i];
        double sum = 0;
        int next_s = 1;
        printf("%-18s", k ? "opencv age (ms)" : "framepool age (ms)");
        for (long i = 0; i < pe[k].n; i++) {
            double age = pe[k].off[i] - t0;
            sum += age;
            if (age > pe[k].max)
                pe[k].max = age;
            if (pe[k].at[i] >= 1.0 && age > pe[k].max1)
                pe[k].max1 = age;
            pe[k].last = age;
            if (pe[k].at[i] >= next_s && next_s <= (int)seconds) {
                printf(" %6.0f", age * 1e3);
                next_s++;
            }
        }
        pe[k].mean = sum / pe[k].n;
        printf("\n");
    }
    printf("\n%-22s %8s %12s %12s %16s %12s\n", "peer", "frames", "age last ms", "age max ms",
           "max after 1 s ms", "age mean ms");
    for (int k = 0; k < 2; k++)
        printf("%-22s %8ld %12.1f %12.1f %16.1f %12.1f\n", pe[k].name, pe[k].n, pe[k].last * 1e3,
               pe[k].max * 1e3, pe[k].max1 * 1e3, pe[k].mean * 1e3);
    printf("(the first second includes the backlog the server sends when a client connects)\n");
    printf("framepool dropped %llu stale frames; its own frame age (wall clock - packet "
           "arrival): max %.1f ms\n",
           (unsigned long long)st.dropped, own_max * 1e3);
    if (pe[0].mean > 0 && pe[1].n)
        printf("ratio: cv::VideoCapture mean age / framepool LATEST mean age = %.1fx\n",
               pe[1].mean / pe[0].mean);
    printf("framepool LATEST under 2 frame intervals (80 ms) after the first second: %s\n",
           pe[0].max1 < 0.080 ? "yes" : "NO");
    return 0;
}
