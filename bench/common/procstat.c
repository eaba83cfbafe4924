/* Process sampling from /proc, and the Theil-Sen slope (procstat.h). */
#define _GNU_SOURCE
#include "procstat.h"

#include "bench_common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int bench_proc_open(bench_proc *p, int pid, int count_fds)
{
    char dir[32], path[48];
    if (pid > 0)
        snprintf(dir, sizeof dir, "/proc/%d", pid);
    else
        snprintf(dir, sizeof dir, "/proc/self");
    p->self = pid <= 0 || pid == (int)getpid();
    p->page = sysconf(_SC_PAGESIZE);
    p->ticks = sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof path, "%s/statm", dir);
    p->statm_fd = open(path, O_RDONLY | O_CLOEXEC);
    snprintf(path, sizeof path, "%s/stat", dir);
    p->stat_fd = open(path, O_RDONLY | O_CLOEXEC);
    p->fd_dir = -1;
    if (count_fds) {
        snprintf(path, sizeof path, "%s/fd", dir);
        p->fd_dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (p->statm_fd < 0 || p->stat_fd < 0 || (count_fds && p->fd_dir < 0)) {
        int e = errno;
        bench_proc_close(p);
        errno = e;
        return -1;
    }
    return 0;
}

void bench_proc_close(bench_proc *p)
{
    int *fds[] = {&p->statm_fd, &p->stat_fd, &p->fd_dir};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (*fds[i] >= 0) {
            close(*fds[i]);
            *fds[i] = -1;
        }
}

/* Entries of an open /proc/PID/fd directory, "." and ".." left out. */
static int count_entries(int dir)
{
    char buf[4096] __attribute__((aligned(8)));
    if (lseek(dir, 0, SEEK_SET) != 0)
        return -1;
    int n = 0;
    for (;;) {
        long k = syscall(SYS_getdents64, dir, buf, sizeof buf);
        if (k < 0)
            return -1;
        if (k == 0)
            return n;
        for (long off = 0; off < k;) {
            /* struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name */
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            const char *name = buf + off + 19;
            n += !(name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0)));
            off += reclen;
        }
    }
}

int bench_proc_read(bench_proc *p, bench_proc_sample *s)
{
    if (bench_statm_rss(p->statm_fd, p->page, &s->rss_anon) != 0 || s->rss_anon == 0)
        return -1; /* gone, or a zombie (no pages) */
    char buf[1024];
    ssize_t k = pread(p->stat_fd, buf, sizeof buf - 1, 0);
    if (k <= 0)
        return -1;
    buf[k] = 0;
    /* after "pid (comm)" (comm may hold spaces: count from the last ')'):
     * state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime stime cutime cstime priority nice num_threads */
    const char *q = strrchr(buf, ')');
    unsigned long long minflt, utime, stime;
    int threads;
    if (!q || sscanf(q + 1, " %*c %*d %*d %*d %*d %*d %*u %llu %*u %*u %*u %llu %llu %*d %*d %*d "
                            "%*d %d",
                     &minflt, &utime, &stime, &threads) != 4)
        return -1;
    s->minflt = minflt;
    s->cpu_s = (double)(utime + stime) / (double)(p->ticks > 0 ? p->ticks : 100);
    s->threads = threads;
    s->fds = -1;
    if (p->fd_dir >= 0) {
        int n = count_entries(p->fd_dir);
        s->fds = n < 0 ? -1 : n - p->self;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_theil_sen(const double *x, const double *y, size_t from, size_t n, size_t max_pairs)
{
    if (n < from + 2)
        return 0;
    if (!max_pairs)
        max_pairs = 500000;
    size_t m = n - from, step = 1;
    while (step < m && (m / step + 1) * (m / step) / 2 > max_pairs)
        step++;
    size_t pts = (m + step - 1) / step, cnt = 0;
    double *sl = malloc(sizeof *sl * (pts * (pts - 1) / 2 + 1));
    if (!sl)
        return 0;
    for (size_t i = from; i < n; i += step)
        for (size_t j = i + step; j < n; j += step) {
            double dx = x ? x[j] - x[i] : (double)(j - i);
            if (dx != 0)
                sl[cnt++] = (y[j] - y[i]) / dx;
        }
    double med = 0;
    if (cnt) {
        qsort(sl, cnt, sizeof *sl, cmp_double);
        med = cnt % 2 ? sl[cnt / 2] : (sl[cnt / 2 - 1] + sl[cnt / 2]) / 2;
    }
    free(sl);
    return med;
}
