/*
 * live_soak — reconnect soak: a live reader against a tcp source that is
 * killed (SIGKILL) and restarted N times (default 1,000).
 *
 *   live_soak [--cycles N] [--frames F] [--mode latest|all]
 *
 * The source is a child process (forked, so its start costs milliseconds,
 * not an ffmpeg start-up) serving an MPEG-TS clip made once with ffmpeg
 * over tcp on 127.0.0.1, one client per run, like `ffmpeg ... ?listen=1`.
 * Each cycle: start the server, wait for F (default 5) new frames, kill -9
 * the server, wait for the reader to notice. After every cycle the program
 * records RssAnon (from /proc/self/status: the kernel's figure, the same an
 * outside observer reads from /proc/PID/status), its open file descriptors
 * and threads. It prints the Theil-Sen slope of RssAnon per cycle after the
 * first 50 cycles (the goal: <= 1 KiB/cycle), fds and threads first/last
 * (the goal: constant), and how many cycles recovered (the goal: all).
 * Exit status 0 when every goal is met, 1 otherwise.
 */
#define _GNU_SOURCE
#include <framepool.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
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

static unsigned char *clip;
static size_t clip_len;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long status_field(const char *name)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(name);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, name, n) && line[n] == ':') {
            v = atol(line + n + 1);
            break;
        }
    if (f)
        fclose(f);
    return v;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    while (d && (de = readdir(d)))
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n - 1; /* the directory itself */
}

/* The server: listen, serve one client the clip in a loop at about real
 * pace, exit when it goes away. Runs in a forked child: plain syscalls only. */
static void serve(int port)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1))
        _exit(3);
    int c = accept(l, NULL, NULL);
    close(l);
    for (size_t off = 0;; off = (off + 188 * 14) % (clip_len / 188 * 188)) {
        size_t n = 188 * 14;
        if (off + n > clip_len)
            n = clip_len - off;
        if (send(c, clip + off, n, MSG_NOSIGNAL) < 0)
            _exit(0);
        usleep(4000);
    }
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

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* Theil-Sen slope of v[from..n) against the index. */
static double theil_sen(const double *v, int from, int n)
{
    int m = n - from;
    if (m < 2)
        return 0;
    size_t cnt = 0, cap = (size_t)m * (m - 1) / 2;
    if (cap > 200000)
        cap = 200000;
    double *s = malloc(cap * sizeof *s);
    unsigned seed = 1;
    if ((size_t)m * (m - 1) / 2 <= cap) {
        for (int i = from; i < n; i++)
            for (int j = i + 1; j < n; j++)
                s[cnt++] = (v[j] - v[i]) / (j - i);
    } else {
        while (cnt < cap) {
            int i = from + (int)(rand_r(&seed) % (unsigned)m);
            int j = from + (int)(rand_r(&seed) % (unsigned)m);
            if (i != j)
                s[cnt++] = (v[j] - v[i]) / (j - i);
        }
    }
    qsort(s, cnt, sizeof *s, cmp_double);
    double med = s[cnt / 2];
    free(s);
    return med;
}

int main(int argc, char **argv)
{
    int cycles = 1000, frames = 5;
    fp_live_mode mode = FP_LIVE_LATEST;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cycles") && i + 1 < argc)
            cycles = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--frames") && i + 1 < argc)
            frames = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc)
            mode = !strcmp(argv[++i], "all") ? FP_LIVE_ALL : FP_LIVE_LATEST;
        else {
            fprintf(stderr, "usage: live_soak [--cycles N] [--frames F] [--mode latest|all]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    char path[] = "/tmp/fp_soak_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=size=320x240:rate=25 -t 4 "
             "-c:v mpeg2video -g 12 -q:v 4 -flags +low_delay -f mpegts %s",
             path);
    if (system(cmd) != 0) {
        fprintf(stderr, "live_soak: needs the ffmpeg program\n");
        return 2;
    }
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    clip_len = (size_t)ftell(f);
    rewind(f);
    clip = malloc(clip_len);
    if (fread(clip, 1, clip_len, f) != clip_len)
        return 2;
    fclose(f);
    unlink(path);

    int port = free_port();
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    fp_reader_options o = {0};
    o.threads = 1;
    o.live.mode = mode;
    o.live.reconnect_min = 0.02;
    o.live.reconnect_max = 0.1;
    o.live.stall = 3;
    o.timeout_us = 200000;
    fp_reader *r = NULL;
    if (fp_reader_open(url, &o, &r) < 0) {
        fprintf(stderr, "live_soak: %s\n", fp_reader_errmsg(r));
        return 2;
    }
    double *rss = calloc((size_t)cycles, sizeof *rss);
    int fds0 = -1, fds1 = -1, th0 = -1, th1 = -1, recovered = 0;
    /* the highest counts in the first 50 cycles and after them: a reconnect try in
     * progress may hold one more socket at the moment of a sample */
    int fds_early = 0, fds_late = 0, th_early = 0, th_late = 0;
    fp_image *img = NULL;
    double t_start = mono();
    printf("live_soak: %d kill -9/restart cycles of %s (%s), %d frames per cycle\n", cycles, url,
           mode == FP_LIVE_ALL ? "ALL" : "LATEST", frames);
    for (int c = 0; c < cycles; c++) {
        pid_t srv = fork();
        if (srv == 0)
            serve(port);
        int got = 0;
        double until = mono() + 10;
        while (got < frames && mono() < until) {
            int rc = fp_reader_next(r, &img);
            if (rc == 1)
                got++;
            else if (rc != FP_ETIMEDOUT) {
                fprintf(stderr, "live_soak: next: %d %s\n", rc, fp_reader_errmsg(r));
                break;
            }
        }
        fp_unref(&img);
        recovered += got == frames;
        kill(srv, SIGKILL);
        waitpid(srv, NULL, 0);
        /* wait for the reader to see the end of the connection */
        fp_reader_stats st;
        until = mono() + 5;
        do {
            fp_reader_stats(r, &st);
            if (!st.connected)
                break;
            usleep(2000);
        } while (mono() < until);
        rss[c] = (double)status_field("RssAnon") * 1024.0;
        int nf = count_fds(), nt = (int)status_field("Threads");
        if (c == 0) {
            fds0 = nf;
            th0 = nt;
        }
        fds1 = nf;
        th1 = nt;
        int early = c < 50 || c < cycles / 2;
        int *pf = early ? &fds_early : &fds_late, *pt = early ? &th_early : &th_late;
        if (nf > *pf)
            *pf = nf;
        if (nt > *pt)
            *pt = nt;
        if ((c + 1) % 100 == 0 || c + 1 == cycles) {
            struct mallinfo2 mi = mallinfo2(); /* ms on a big heap: only every 100 cycles */
            if (getenv("FP_SOAK_MALLOC_STATS"))
                malloc_stats(); /* every arena's system and in-use bytes, to stderr */
            printf("cycle %5d: RssAnon %.1f MiB (main arena in use %.1f MiB), fds %d, threads %d, "
                   "recovered %d, %.2f s/cycle\n",
                   c + 1, rss[c] / 1048576.0, (double)(mi.uordblks + mi.hblkhd) / 1048576.0, nf,
                   nt, recovered, (mono() - t_start) / (c + 1));
            fflush(stdout);
        }
    }
    fp_reader_stats st;
    fp_reader_stats(r, &st);
    fp_reader_close(&r);
    int from = cycles > 100 ? 50 : cycles / 2;
    double slope = theil_sen(rss, from, cycles);
    printf("\nrecovered %d of %d cycles; %llu connections, %llu reconnect tries, %llu stalls\n",
           recovered, cycles, (unsigned long long)st.connects, (unsigned long long)st.reconnects,
           (unsigned long long)st.stalls);
    printf("RssAnon: first %.1f MiB, last %.1f MiB, Theil-Sen slope after cycle %d: %.1f B/cycle "
           "(goal <= 1024); over the second half: %.1f B/cycle\n",
           rss[0] / 1048576.0, rss[cycles - 1] / 1048576.0, from, slope,
           theil_sen(rss, cycles / 2, cycles));
    printf("fds: first %d, last %d, max in the first 50 cycles %d, max after %d; threads: first "
           "%d, last %d, max early %d, max after %d\n",
           fds0, fds1, fds_early, fds_late, th0, th1, th_early, th_late);
    int ok = recovered == cycles && slope <= 1024 && fds_late <= fds_early && th_late <= th_early;
    printf("verdict: %s\n", ok ? "PASS" : "FAIL");
    free(rss);
    free(clip);
    return ok ? 0 : 1;
}
