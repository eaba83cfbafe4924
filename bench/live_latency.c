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
#include <framepool.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(s, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &al);
    close(s);
    return ntohs(a.sin_port);
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
    int port = free_port();
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
    double t0 = -1, start = 0, next_print = 0, sum = 0, mx = 0, last = 0, own_max = 0;
    long n = 0;
    printf("%-10s %6s %10s %14s\n", "peer", "t (s)", "age (ms)", "own age (ms)");
    for (;;) {
        int rc = fp_reader_next(r, &img);
        if (rc != 1) {
            fprintf(stderr, "live_latency: framepool: %d %s\n", rc, fp_reader_errmsg(r));
            break;
        }
        if (t0 < 0) {
            t0 = mono() - img->time;
            start = mono();
            next_print = start + 1;
        }
        last = mono() - (t0 + img->time);
        double own = wall() - img->wall_time;
        if (own > own_max)
            own_max = own;
        if (last > mx)
            mx = last;
        sum += last;
        n++;
        if (mono() >= next_print) {
            printf("%-10s %6.0f %10.1f %14.1f\n", "framepool", mono() - start, last * 1e3,
                   own * 1e3);
            next_print += 1;
        }
        if (mono() - start >= seconds)
            break;
        sleep_s(work_ms / 1000.0);
    }
    fp_reader_stats st;
    fp_reader_stats(r, &st);
    fp_unref(&img);
    fp_reader_close(&r);
    reap(srv);
    double fp_mean = n ? sum / n : 0;

    /* ---- cv::VideoCapture (its own process: OpenCV stays out of this one) ---- */
    char self[PATH_MAX], peer[PATH_MAX + 32];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    self[len > 0 ? len : 0] = 0;
    snprintf(peer, sizeof peer, "%s/live_latency_cv", dirname(self));
    port = free_port();
    srv = server(port, size, seconds);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    sleep_s(1.0); /* VideoCapture does not retry: let the server listen */
    char cmd[PATH_MAX + 200];
    snprintf(cmd, sizeof cmd, "'%s' '%s' %.1f %.1f", peer, url, seconds, work_ms);
    FILE *p = popen(cmd, "r");
    char line[256];
    long cv_n = 0;
    double cv_last = NAN, cv_max = NAN, cv_mean = NAN;
    while (p && fgets(line, sizeof line, p)) {
        double t, a;
        if (sscanf(line, "age t=%lf age=%lf", &t, &a) == 2)
            printf("%-10s %6.0f %10.1f %14s\n", "opencv", t, a * 1e3, "-");
        else
            sscanf(line, "summary frames=%ld last=%lf max=%lf mean=%lf", &cv_n, &cv_last,
                   &cv_max, &cv_mean);
    }
    int prc = p ? pclose(p) : -1;
    reap(srv);
    if (prc != 0 || isnan(cv_mean))
        fprintf(stderr, "live_latency: the OpenCV peer (%s) failed\n", peer);

    printf("\n%-22s %8s %12s %12s %12s %9s\n", "peer", "frames", "age last ms", "age max ms",
           "age mean ms", "dropped");
    printf("%-22s %8ld %12.1f %12.1f %12.1f %9llu\n", "framepool LATEST", n, last * 1e3,
           mx * 1e3, fp_mean * 1e3, (unsigned long long)st.dropped);
    printf("%-22s %8ld %12.1f %12.1f %12.1f %9s\n", "cv::VideoCapture", cv_n, cv_last * 1e3,
           cv_max * 1e3, cv_mean * 1e3, "-");
    printf("framepool's own frame age (wall clock - packet arrival): max %.1f ms\n",
           own_max * 1e3);
    if (fp_mean > 0 && !isnan(cv_mean))
        printf("ratio: cv::VideoCapture mean age / framepool LATEST mean age = %.1fx\n",
               cv_mean / fp_mean);
    printf("framepool LATEST under 2 frame intervals (80 ms) for the whole run: %s\n",
           mx < 0.080 ? "yes" : "NO");
    return 0;
}
