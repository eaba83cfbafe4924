/*
 * live_soak — reconnect soak: a live reader against a tcp source that is
 * killed (SIGKILL) and restarted N times (default 1,000).
 *
 *   live_soak [--cycles N] [--frames F] [--mode latest|all] [--no-malloc-policy]
 *             [--av-options OPTS]
 *
 * The source is a child process (forked, so its start costs milliseconds,
 * not an ffmpeg start-up) serving an MPEG-TS clip made once with ffmpeg
 * over tcp on 127.0.0.1, one client per run, like `ffmpeg ... ?listen=1`.
 * Each cycle: start the server, wait for F (default 5) new frames, kill -9
 * the server, wait for the reader to notice.
 *
 * Measured from outside: a second process (forked before the reader starts)
 * reads this one's RssAnon, open file descriptors and threads from /proc/PID
 * after every cycle while the soak waits for it, so the soak itself reads
 * and allocates nothing to measure itself. It prints the Theil-Sen slope of
 * RssAnon per cycle after the first 50 cycles (the goal: <= 1 KiB/cycle),
 * fds and threads first/last (the goal: constant), and how many cycles
 * recovered (the goal: all). Exit status 0 when every goal is met, 1
 * otherwise, 2 on a usage or set-up error.
 *
 * The soak stands for a camera loop that runs for months, so it starts the
 * way such a program should: fp_memtrack_malloc_policy pins glibc's mmap and
 * trim thresholds (diag.h). Each connection's MPEG-TS demuxer allocates a
 * seek-back buffer of FFmpeg's probesize (5 MB by default) and frees it at
 * the disconnect; with glibc's adaptive thresholds that free raises the mmap
 * threshold to 5 MB, and from then on the buffer is carved from the reader
 * thread's heap at an address that moves now and then, so RssAnon steps up
 * until the heap has held it everywhere (bench/README.md). --no-malloc-policy
 * keeps glibc's adaptive thresholds, to compare. --av-options passes FFmpeg
 * options to every connection (e.g. probesize=500000, a smaller buffer).
 *
 * Also for an outside judge: when FP_MEMTRACK_FRAMES names a file (as
 * bench/rss_watch sets it), the cycle count is written there, so
 * `rss_watch --skip-fraction 0.05 -- live_soak` gives its own slope per cycle.
 * FP_SOAK_MALLOC_STATS=1 prints glibc's malloc_stats (every arena) every 100
 * cycles, to stderr.
 */
#define _GNU_SOURCE
#include "common/bench_common.h"

#include <framepool.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static unsigned char *clip;
static size_t clip_len;

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

/* ---- the outside observer ------------------------------------------------------------ */

typedef struct observer {
    pid_t pid;
    int ask, answer; /* pipes: cycle numbers to it, samples back */
} observer;

/* The observer's process: samples `target` each time it is asked. */
static void observe(pid_t target, int ask, int answer)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    fp_procstat p;
    fp_procstat_sample s;
    int ok = fp_procstat_open(&p, (int)target, FP_PROCSTAT_FDS) == FP_OK;
    int c;
    while (read(ask, &c, sizeof c) == (ssize_t)sizeof c) {
        if (!ok || fp_procstat_read(&p, &s) != FP_OK)
            memset(&s, 0, sizeof s);
        if (write(answer, &s, sizeof s) != (ssize_t)sizeof s)
            break;
    }
    _exit(0);
}

/* Forks the observer (before any thread exists). 0, or -1. */
static int observer_start(observer *o)
{
    int ask[2], answer[2];
    if (pipe2(ask, O_CLOEXEC) || pipe2(answer, O_CLOEXEC))
        return -1;
    pid_t self = getpid();
    o->pid = fork();
    if (o->pid < 0)
        return -1;
    if (o->pid == 0) {
        close(ask[1]);
        close(answer[0]);
        observe(self, ask[0], answer[1]);
    }
    close(ask[0]);
    close(answer[1]);
    o->ask = ask[1];
    o->answer = answer[0];
    return 0;
}

/* This process as the observer sees it now. 0, or -1. */
static int observer_sample(observer *o, int cycle, fp_procstat_sample *s)
{
    if (write(o->ask, &cycle, sizeof cycle) != (ssize_t)sizeof cycle ||
        read(o->answer, s, sizeof *s) != (ssize_t)sizeof *s || s->rss_anon == 0)
        return -1;
    return 0;
}

static void observer_stop(observer *o)
{
    close(o->ask);
    close(o->answer);
    waitpid(o->pid, NULL, 0);
}

/* The cycle count for an outside judge (rss_watch), in the file named by
 * FP_MEMTRACK_FRAMES; NULL when it is not set. */
static _Atomic uint64_t *cycle_counter(void)
{
    const char *path = getenv("FP_MEMTRACK_FRAMES");
    int fd = path ? open(path, O_RDWR | O_CLOEXEC) : -1;
    if (fd < 0)
        return NULL;
    void *m = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return m == MAP_FAILED ? NULL : m;
}

static int usage(FILE *f, int rc)
{
    fprintf(f,
            "usage: live_soak [--cycles N] [--frames F] [--mode latest|all] [--no-malloc-policy]\n"
            "                 [--av-options OPTS]\n"
            "  N kill -9/restart cycles (default 1000) of a local tcp MPEG-TS source, F frames\n"
            "  per cycle (default 5). RssAnon, fds and threads are read from /proc after every\n"
            "  cycle by a forked observer process. Goals: every cycle recovers, RssAnon slope\n"
            "  after cycle 50 <= 1 KiB/cycle, fds and threads constant.\n"
            "  --no-malloc-policy  keep glibc's adaptive malloc thresholds (by default the soak\n"
            "                      pins them with fp_memtrack_malloc_policy, as a camera loop\n"
            "                      that runs for months should; see diag.h)\n"
            "  --av-options OPTS   FFmpeg options for every connection (key=value:key=value)\n"
            "  FP_SOAK_MALLOC_STATS=1: glibc's malloc_stats every 100 cycles, to stderr\n"
            "Exit status: 0 every goal met, 1 not, 2 usage or set-up error.\n");
    return rc;
}

int main(int argc, char **argv)
{
    int cycles = 1000, frames = 5, malloc_policy = 1;
    const char *av_options = NULL;
    fp_live_mode mode = FP_LIVE_LATEST;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cycles") && i + 1 < argc)
            cycles = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--frames") && i + 1 < argc)
            frames = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc)
            mode = !strcmp(argv[++i], "all") ? FP_LIVE_ALL : FP_LIVE_LATEST;
        else if (!strcmp(argv[i], "--no-malloc-policy"))
            malloc_policy = 0;
        else if (!strcmp(argv[i], "--av-options") && i + 1 < argc)
            av_options = argv[++i];
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return usage(stdout, 0);
        else
            return usage(stderr, 2);
    }
    if (cycles < 2 || frames < 1)
        return usage(stderr, 2);
    /* A loop that runs for months: pin glibc's malloc thresholds, first thing,
     * before any thread starts (diag.h; the header comment says why here). */
    if (malloc_policy && fp_memtrack_malloc_policy(NULL) != FP_OK)
        fprintf(stderr, "live_soak: fp_memtrack_malloc_policy: not glibc, nothing pinned\n");
    signal(SIGPIPE, SIG_IGN);
    clip = bench_make_clip("-f lavfi -i testsrc2=size=320x240:rate=25 -t 4 -c:v mpeg2video -g 12 "
                           "-q:v 4 -flags +low_delay",
                           &clip_len);
    if (!clip) {
        fprintf(stderr, "live_soak: needs the ffmpeg program\n");
        return 2;
    }
    observer obs;
    if (observer_start(&obs) != 0) {
        perror("live_soak: observer");
        return 2;
    }
    _Atomic uint64_t *counter = cycle_counter();

    int port = bench_free_port();
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    fp_reader_options o = {0};
    o.threads = 1;
    o.live.mode = mode;
    o.live.reconnect_min = 0.02;
    o.live.reconnect_max = 0.1;
    o.live.stall = 3;
    o.timeout_us = 200000;
    o.av_options = av_options;
    fp_reader *r = NULL;
    if (fp_reader_open(url, &o, &r) < 0) {
        fprintf(stderr, "live_soak: %s\n", fp_reader_errmsg(r));
        return 2;
    }
    double *rss = calloc((size_t)cycles, sizeof *rss);
    int fds0 = -1, fds1 = -1, th0 = -1, th1 = -1, recovered = 0, observed = 0;
    /* the highest counts in the first 50 cycles and after them: a reconnect try in
     * progress may hold one more socket at the moment of a sample */
    int fds_early = 0, fds_late = 0, th_early = 0, th_late = 0;
    fp_image *img = NULL;
    double load[3] = {0};
    getloadavg(load, 3);
    double t_start = bench_now();
    printf("live_soak: %d kill -9/restart cycles of %s (%s), %d frames per cycle; malloc: %s%s%s; "
           "load average %.2f %.2f %.2f\n",
           cycles, url, mode == FP_LIVE_ALL ? "ALL" : "LATEST", frames,
           malloc_policy ? "thresholds pinned (fp_memtrack_malloc_policy)"
                         : "glibc's adaptive thresholds (--no-malloc-policy)",
           av_options ? "; av_options " : "", av_options ? av_options : "", load[0], load[1],
           load[2]);
    for (int c = 0; c < cycles; c++) {
        pid_t srv = fork();
        if (srv == 0)
            serve(port);
        int got = 0;
        double until = bench_now() + 10;
        while (got < frames && bench_now() < until) {
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
        until = bench_now() + 5;
        do {
            fp_reader_get_stats(r, &st);
            if (!st.connected)
                break;
            usleep(2000);
        } while (bench_now() < until);
        fp_procstat_sample s;
        if (observer_sample(&obs, c, &s) != 0) {
            fprintf(stderr, "live_soak: the observer failed at cycle %d\n", c + 1);
            break;
        }
        observed++;
        if (counter)
            atomic_store_explicit(counter, (uint64_t)c + 1, memory_order_relaxed);
        rss[c] = (double)s.rss_anon;
        if (c == 0) {
            fds0 = s.fds;
            th0 = s.threads;
        }
        fds1 = s.fds;
        th1 = s.threads;
        int early = c < 50 || c < cycles / 2;
        int *pf = early ? &fds_early : &fds_late, *pt = early ? &th_early : &th_late;
        if (s.fds > *pf)
            *pf = s.fds;
        if (s.threads > *pt)
            *pt = s.threads;
        if ((c + 1) % 100 == 0 || c + 1 == cycles) {
            if (getenv("FP_SOAK_MALLOC_STATS"))
                malloc_stats(); /* every arena's system and in-use bytes, to stderr */
            printf("cycle %5d: RssAnon %.2f MiB, fds %d, threads %d, recovered %d, %.2f s/cycle\n",
                   c + 1, rss[c] / 1048576.0, s.fds, s.threads, recovered,
                   (bench_now() - t_start) / (c + 1));
            fflush(stdout);
        }
    }
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    fp_reader_close(&r);
    observer_stop(&obs);
    getloadavg(load, 3);
    int n = observed, from = n > 100 ? 50 : n / 2;
    double rss_max = 0;
    for (int i = 0; i < n; i++)
        if (rss[i] > rss_max)
            rss_max = rss[i];
    double slope = 0, slope2 = 0;
    fp_theil_sen(NULL, rss + from, (size_t)(n - from), 0, &slope);
    fp_theil_sen(NULL, rss + n / 2, (size_t)(n - n / 2), 0, &slope2);
    printf("\nrecovered %d of %d cycles; %llu connections, %llu reconnect tries, %llu stalls; "
           "load average at the end %.2f %.2f %.2f\n",
           recovered, cycles, (unsigned long long)st.connects, (unsigned long long)st.reconnects,
           (unsigned long long)st.stalls, load[0], load[1], load[2]);
    if (n > 0)
        printf("RssAnon (outside): first %.2f MiB, last %.2f MiB, max %.2f MiB; Theil-Sen slope "
               "after cycle %d: %.1f B/cycle (goal <= 1024); over the second half: %.1f "
               "B/cycle\n",
               rss[0] / 1048576.0, rss[n - 1] / 1048576.0, rss_max / 1048576.0, from, slope,
               slope2);
    printf("fds: first %d, last %d, max in the first 50 cycles %d, max after %d; threads: first "
           "%d, last %d, max early %d, max after %d\n",
           fds0, fds1, fds_early, fds_late, th0, th1, th_early, th_late);
    int ok = observed == cycles && recovered == cycles && slope <= 1024 &&
             fds_late <= fds_early && th_late <= th_early;
    printf("verdict: %s\n", ok ? "PASS" : "FAIL");
    free(rss);
    free(clip);
    return ok ? 0 : 1;
}
