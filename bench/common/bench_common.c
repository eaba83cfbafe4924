/* What every benchmark shares (bench_common.h). */
#define _GNU_SOURCE
#include "bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int bench_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int bench_run_wait(char *const argv[])
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execv(argv[0], argv);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFSIGNALED(st)) {
        fprintf(stderr, "%s died of signal %d\n", argv[0], WTERMSIG(st));
        return -1;
    }
    return WEXITSTATUS(st);
}

void bench_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void bench_csv_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void bench_command_line(char *buf, size_t n, int argc, char **argv)
{
    if (n == 0)
        return;
    buf[0] = 0;
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s%s", i ? " " : "", argv[i]);
    }
}

int bench_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    int ok = s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
             getsockname(s, (struct sockaddr *)&a, &al) == 0;
    if (s >= 0)
        close(s);
    return ok ? ntohs(a.sin_port) : -1;
}

unsigned char *bench_make_clip(const char *ffmpeg_args, size_t *len)
{
    char path[] = "/tmp/fp_bench_clip_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    close(fd);
    size_t n = strlen(ffmpeg_args) + sizeof path + 96;
    char *cmd = malloc(n);
    unsigned char *data = NULL;
    if (cmd) {
        snprintf(cmd, n, "ffmpeg -nostdin -loglevel error -y %s -f mpegts %s", ffmpeg_args, path);
        fflush(stdout);
        int rc = system(cmd);
        free(cmd);
        FILE *f = rc == 0 ? fopen(path, "rb") : NULL;
        long size = f && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
        if (size > 0 && (data = malloc((size_t)size)) != NULL) {
            rewind(f);
            if (fread(data, 1, (size_t)size, f) == (size_t)size) {
                *len = (size_t)size;
            } else {
                free(data);
                data = NULL;
            }
        }
        if (f)
            fclose(f);
    }
    unlink(path);
    return data;
}

int bench_peer_path(const char *name, char *buf, size_t n)
{
    char self[4096];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0)
        return -1;
    self[k] = 0;
    int w = snprintf(buf, n, "%s/%s", dirname(self), name);
    return w > 0 && (size_t)w < n ? 0 : -1;
}
