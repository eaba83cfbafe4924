/*
 * Process sampling, written once for the benchmarks that watch a process
 * over minutes (live_soak, multi_stream, multi_stream_cv, rss_watch): RssAnon,
 * minor faults, CPU time, threads and open file descriptors of this process
 * or another one, read from /proc; and the Theil-Sen slope that judges the
 * samples.
 *
 * A sample allocates nothing and uses no stdio: the files stay open and are
 * read with pread (the fd directory with getdents64 into a stack buffer), so
 * sampling a process from inside does not move the heap it measures, and an
 * observer can sample every few milliseconds.
 */
#ifndef BENCH_PROCSTAT_H
#define BENCH_PROCSTAT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bench_proc {
    int statm_fd, stat_fd, fd_dir; /* -1 when not open */
    int self;                      /* this process: fd_dir is one of the fds counted */
    long page;                     /* bytes per page */
    long ticks;                    /* clock ticks per second (utime, stime) */
} bench_proc;

typedef struct bench_proc_sample {
    uint64_t rss_anon; /* bytes: statm resident - shared (= status RssAnon) */
    uint64_t minflt;   /* minor faults so far */
    double cpu_s;      /* user + system seconds so far, all threads (tick resolution) */
    int threads;
    int fds;           /* open file descriptors (not counting fd_dir); -1 when not asked */
} bench_proc_sample;

/* Opens the /proc files of pid (0 = this process). count_fds: also count its
 * open file descriptors at every sample. 0, or -1 (errno set; nothing open). */
int bench_proc_open(bench_proc *p, int pid, int count_fds);
/* One sample. 0, or -1 when the process is gone (or a zombie: RssAnon 0). */
int bench_proc_read(bench_proc *p, bench_proc_sample *s);
void bench_proc_close(bench_proc *p);

/* Theil-Sen slope of y against x over points [from, n): the median of the
 * slopes of every pair. When there are more than max_pairs pairs (0 =
 * 500,000: every pair of 1,000 points), every k-th point is taken so that
 * they fit: deterministic, and spread over the whole run. x NULL: the index
 * is the axis. 0 with fewer than two points (or no memory for the pairs). */
double bench_theil_sen(const double *x, const double *y, size_t from, size_t n,
                       size_t max_pairs);

#ifdef __cplusplus
}
#endif
#endif
