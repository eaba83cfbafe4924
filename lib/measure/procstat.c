/*
 * Process sampling from /proc (measure.h, fp_procstat): RssAnon, minor
 * faults, CPU time, threads and open file descriptors of this process or
 * another one, read with pread from files kept open, allocation-free.
 */
#define _GNU_SOURCE
#include "measure_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int fp_procstat_open(fp_procstat *p, int pid, unsigned flags)
{
    if (!p || pid < 0 || (flags & ~(unsigned)FP_PROCSTAT_FDS)) {
        fp_errmsg_set("fp_procstat_open: %s", !p       ? "the view is NULL"
                                              : pid < 0 ? "negative pid"
                                                        : "unknown flag bits");
        return FP_EINVAL;
    }
    p->statm_fd = p->stat_fd = p->fd_dir = -1;
    char dir[32], path[48];
    if (pid > 0)
        snprintf(dir, sizeof dir, "/proc/%d", pid);
    else
        snprintf(dir, sizeof dir, "/proc/self");
    p->self = pid == 0 || pid == (int)getpid();
    p->page = sysconf(_SC_PAGESIZE);
    p->ticks = sysconf(_SC_CLK_TCK);
    static const char *const names[] = {"statm", "stat", "fd"};
    int *fds[] = {&p->statm_fd, &p->stat_fd, &p->fd_dir};
    for (int i = 0; i < 3; i++) {
        if (i == 2 && !(flags & FP_PROCSTAT_FDS))
            break;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        *fds[i] = open(path, O_RDONLY | O_CLOEXEC | (i == 2 ? O_DIRECTORY : 0));
        if (*fds[i] < 0) {
            int e = errno;
            fp_procstat_close(p);
            fp_errmsg_set("fp_procstat_open: cannot open %s: %s", path, strerror(e));
            return e == ENOENT || e == ESRCH ? FP_ENOENT : FP_EIO;
        }
    }
    return FP_OK;
}

void fp_procstat_close(fp_procstat *p)
{
    if (!p)
        return;
    int *fds[] = {&p->statm_fd, &p->stat_fd, &p->fd_dir};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (*fds[i] >= 0) {
            close(*fds[i]);
            *fds[i] = -1;
        }
}

/* Reads an open /proc file from its start into buf (NUL-terminated). 0,
 * FP_ENOENT when the process is gone, FP_EIO. */
static int read_proc_file(int fd, char *buf, size_t n)
{
    ssize_t k = pread(fd, buf, n - 1, 0);
    if (k < 0 && errno == ESRCH)
        return FP_ENOENT;
    if (k <= 0)
        return FP_EIO;
    buf[k] = 0;
    return FP_OK;
}

int fp_procstat_rss_anon(const fp_procstat *p, uint64_t *rss_anon)
{
    if (!p || !rss_anon)
        return FP_EINVAL;
    char buf[128];
    int rc = read_proc_file(p->statm_fd, buf, sizeof buf);
    if (rc != FP_OK)
        return rc;
    unsigned long long size, resident, shared;
    if (sscanf(buf, "%llu %llu %llu", &size, &resident, &shared) != 3)
        return FP_EIO;
    if (resident == 0)
        return FP_ENOENT; /* a zombie: no pages left */
    *rss_anon = (resident >= shared ? resident - shared : 0) * (uint64_t)p->page;
    return FP_OK;
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

int fp_procstat_read(fp_procstat *p, fp_procstat_sample *s)
{
    if (!p || !s)
        return FP_EINVAL;
    int rc = fp_procstat_rss_anon(p, &s->rss_anon);
    if (rc != FP_OK)
        return rc;
    char buf[1024];
    rc = read_proc_file(p->stat_fd, buf, sizeof buf);
    if (rc != FP_OK)
        return rc;
    /* after "pid (comm)" (comm may hold spaces: count from the last ')'):
     * state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime stime cutime cstime priority nice num_threads */
    const char *q = strrchr(buf, ')');
    unsigned long long minflt, utime, stime;
    int threads;
    if (!q || sscanf(q + 1, " %*c %*d %*d %*d %*d %*d %*u %llu %*u %*u %*u %llu %llu %*d %*d %*d "
                            "%*d %d",
                     &minflt, &utime, &stime, &threads) != 4)
        return FP_EIO;
    s->minflt = minflt;
    s->cpu_s = (double)(utime + stime) / (double)(p->ticks > 0 ? p->ticks : 100);
    s->threads = threads;
    s->fds = -1;
    if (p->fd_dir >= 0) {
        int n = count_entries(p->fd_dir);
        s->fds = n < 0 ? -1 : n - p->self;
    }
    return FP_OK;
}
