/*
 * rss_watch — the outside observer: runs any command, samples its RssAnon
 * from /proc/PID/statm (resident - shared pages) and its minor faults from
 * /proc/PID/stat (fp_procstat), and judges the samples with the same code as
 * framepool's in-process verdict (fp_memtrack_record + fp_memtrack_result_get,
 * framepool/measure.h): Theil-Sen
 * slope, first-vs-last-10% window delta, peak, faults, over the run after the
 * first --skip-fraction (default 15%).
 *
 * The axis is the child's frame count when the child reports it (a program
 * sampling with fp_memtrack finds the file named in FP_MEMTRACK_FRAMES and
 * writes its frame count there), else milliseconds (the figures are then per
 * second). So `rss_watch -- save_display ...` checks framepool's claim in
 * B/frame, and `rss_watch -- any_program` gives B/s for anything, OpenCV
 * loops included.
 *
 * Usage: rss_watch [--interval-ms N] [--skip-fraction F] [--time] [--quiet]
 *                  [--trace FILE] -- CMD ARGS...
 * Exit status: 0 PASS, 3 FAIL, 4 INCONCLUSIVE (as save_display), 1 when the
 * command could not be run or the observer failed, 2 usage.
 */
#define _GNU_SOURCE
#include "common/bench_common.h"

#include <framepool.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int usage(FILE *f, int rc)
{
    fprintf(f,
            "usage: rss_watch [--interval-ms N] [--skip-fraction F] [--time] [--quiet]\n"
            "                 [--trace FILE] -- CMD ARGS...\n"
            "  Runs CMD, samples its RssAnon and minor faults from outside every N ms\n"
            "  (default 5), and prints the memory verdict over the run after the first\n"
            "  fraction F (default 0.15): Theil-Sen slope, window delta, peak, faults.\n"
            "  Per frame when CMD reports frames (framepool's fp_memtrack does, through\n"
            "  FP_MEMTRACK_FRAMES), per second otherwise or with --time.\n"
            "  --quiet       do not show CMD's standard output\n"
            "  --trace FILE  write every sample to FILE: ms frames rss_anon_bytes minflt\n"
            "Exit status: 0 PASS, 3 FAIL, 4 INCONCLUSIVE, 1 error, 2 usage.\n");
    return rc;
}

static double now_ms(void)
{
    return bench_now() * 1e3;
}

int main(int argc, char **argv)
{
    double interval_ms = 5, skip = 0.15;
    int use_time = 0, quiet = 0, i = 1;
    const char *trace_path = NULL;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            return usage(stdout, 0);
        } else if (!strcmp(a, "--interval-ms") && i + 1 < argc) {
            interval_ms = atof(argv[++i]);
        } else if (!strcmp(a, "--skip-fraction") && i + 1 < argc) {
            skip = atof(argv[++i]);
        } else if (!strcmp(a, "--trace") && i + 1 < argc) {
            trace_path = argv[++i];
        } else if (!strcmp(a, "--time")) {
            use_time = 1;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-') {
            return usage(stderr, 2);
        } else {
            break; /* the command, without "--" */
        }
    }
    if (i >= argc || interval_ms <= 0 || skip < 0 || skip > 0.9)
        return usage(stderr, 2);

    /* The frame counter the child writes: one page in a temporary file. */
    char fpath[] = "/tmp/rss_watch.XXXXXX";
    int ffd = mkstemp(fpath);
    _Atomic uint64_t *frames = NULL;
    if (ffd >= 0 && ftruncate(ffd, 4096) == 0) {
        void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ffd, 0);
        if (m != MAP_FAILED)
            frames = m;
    }
    if (ffd >= 0)
        close(ffd);

    int go[2];
    if (pipe2(go, O_CLOEXEC) != 0) {
        perror("rss_watch: pipe");
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("rss_watch: fork");
        return 1;
    }
    if (pid == 0) {
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1) /* wait until the observer has opened /proc */
            _exit(127);
        if (frames && !use_time)
            setenv("FP_MEMTRACK_FRAMES", fpath, 1);
        if (quiet) {
            int dn = open("/dev/null", O_WRONLY);
            if (dn >= 0)
                dup2(dn, 1);
        }
        execvp(argv[i], argv + i);
        fprintf(stderr, "rss_watch: cannot run '%s': %s\n", argv[i], strerror(errno));
        _exit(127);
    }
    close(go[0]);
    fp_procstat proc;
    int proc_rc = fp_procstat_open(&proc, (int)pid, 0);
    if (write(go[1], "g", 1) != 1 || proc_rc != FP_OK) {
        fprintf(stderr, "rss_watch: %s\n", proc_rc != FP_OK ? fp_errmsg() : strerror(errno));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return 1;
    }
    close(go[1]);

    /* Two trackers judge the same samples, one against frames and one
     * against time; the frame one is used when the child reported frames. */
    fp_memtrack_config cfg = {.capacity = 1 << 16, .skip_fraction = skip, .manual_misses = 1,
                              .min_warmup = 1, .quiet_frames = 1};
    fp_memtrack_config tcfg = cfg;
    tcfg.min_frames = 1000; /* one second of samples */
    fp_memtrack *by_frame = NULL, *by_time = NULL;
    if (fp_memtrack_new(&cfg, &by_frame) != FP_OK || fp_memtrack_new(&tcfg, &by_time) != FP_OK) {
        fprintf(stderr, "rss_watch: %s\n", fp_errmsg());
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return 1;
    }
    FILE *trace = trace_path ? fopen(trace_path, "w") : NULL;
    if (trace_path && !trace)
        fprintf(stderr, "rss_watch: cannot write '%s': %s\n", trace_path, strerror(errno));
    double t0 = now_ms();
    uint64_t last_ms = 0, last_frame = 0, samples = 0, peak = 0, last_rss = 0;
    int status = 0;
    struct timespec pause = {.tv_sec = (time_t)(interval_ms / 1e3),
                             .tv_nsec = (long)(interval_ms * 1e6) % 1000000000L};
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        fp_procstat_sample ps;
        if (fp_procstat_read(&proc, &ps) == FP_OK) { /* a zombie (0 pages) is not sampled */
            uint64_t rss = ps.rss_anon, minflt = ps.minflt;
            uint64_t ms = (uint64_t)(now_ms() - t0) + 1;
            if (ms > last_ms) {
                fp_memtrack_record(by_time, ms, rss, minflt);
                last_ms = ms;
            }
            uint64_t f = frames ? atomic_load_explicit(frames, memory_order_relaxed) : 0;
            if (f > last_frame) {
                fp_memtrack_record(by_frame, f, rss, minflt);
                last_frame = f;
            }
            if (trace)
                fprintf(trace, "%llu %llu %llu %llu\n", (unsigned long long)ms,
                        (unsigned long long)f, (unsigned long long)rss,
                        (unsigned long long)minflt);
            if (rss > peak)
                peak = rss;
            last_rss = rss;
            samples++;
        }
        nanosleep(&pause, NULL);
    }
    fp_procstat_close(&proc);
    if (trace)
        fclose(trace);
    if (frames)
        munmap((void *)frames, 4096);
    unlink(fpath);

    int per_frame = last_frame > 0;
    fp_memtrack_result r;
    fp_memtrack_result_get(per_frame ? by_frame : by_time, &r);
    double scale = per_frame ? 1 : 1000; /* per ms -> per second */
    const char *unit = per_frame ? "frame" : "s";
    static const char *const names[] = {"PASS", "FAIL", "INCONCLUSIVE"};
    char wd[32], pk[32];
    fflush(stdout);
    fprintf(stderr,
            "rss_watch: %s slope=%.1f B/%s window=%s peak=%s faults/%s=%.3f samples=%llu "
            "%s=%llu judged_from=%llu\n",
            names[r.verdict], r.slope * scale, unit,
            fp_diag_format_size(wd, sizeof wd, (double)r.window_delta, 1),
            fp_diag_format_size(pk, sizeof pk, (double)peak, 0), unit, r.faults_per_frame * scale,
            (unsigned long long)samples, per_frame ? "frames" : "ms",
            (unsigned long long)(per_frame ? last_frame : last_ms),
            (unsigned long long)r.judged_from);
    if (r.verdict == FP_MEMTRACK_INCONCLUSIVE)
        fprintf(stderr, "rss_watch: no verdict: %s %llu %s\n",
                r.settled_at ? "memory settled late; judge a run of at least"
                             : "too short; judge a run of at least",
                (unsigned long long)r.frames_needed, per_frame ? "frames" : "ms");
    (void)last_rss;
    if (WIFEXITED(status))
        fprintf(stderr, "rss_watch: the command exited with status %d\n", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        fprintf(stderr, "rss_watch: the command was killed by signal %d\n", WTERMSIG(status));
    fp_unref(&by_frame);
    fp_unref(&by_time);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return 1;
    return r.verdict == FP_MEMTRACK_PASS ? 0 : r.verdict == FP_MEMTRACK_FAIL ? 3 : 4;
}
