/*
 * framepool-stat — ask a running framepool process for a report.
 *
 *   framepool-stat [--summary | --growth | --leaks | --report] PID
 *
 * The process must have been started with FP_DIAG=socket (or have called
 * fp_diag_configure with "socket"): framepool then listens on a UNIX socket
 * PID.sock in $XDG_RUNTIME_DIR/framepool/ or /tmp/framepool-UID/ (or, when
 * another user made that first, /tmp/framepool-UID.1/ ... .8/) (a 0700
 * directory, a 0600 socket; see include/framepool/diag.h). This tool finds
 * that socket, sends the request and prints the reply (default: the
 * summary). It only talks to processes of its own user: a PID of another
 * user's process is refused before anything is opened, and the server
 * checks the peer's uid again (SO_PEERCRED). The reply must arrive within
 * the timeout (1 second, --timeout S to change: more than 0, at most 3600),
 * which covers the connection too.
 *
 * Exit status: 0 reply printed, 1 refused or failed (the message says
 * why), 2 usage.
 */
#define _GNU_SOURCE /* struct ucred */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *prog = "framepool-stat";

#define TMP_FALLBACKS 8     /* /tmp/framepool-UID.1 ... .8 */
#define MAX_TIMEOUT 3600.0  /* seconds */

/* Parses --timeout: a finite number of seconds in (0, MAX_TIMEOUT]. */
static int parse_timeout(const char *a, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(a, &end);
    if (end == a || *end || errno == ERANGE || !isfinite(v) || v <= 0 || v > MAX_TIMEOUT) {
        fprintf(stderr, "%s: --timeout '%s': want a number of seconds, more than 0 and at most "
                        "%.0f\n",
                prog, a, MAX_TIMEOUT);
        return -1;
    }
    *out = v;
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: %s [--summary | --growth | --leaks | --report] [--timeout S] PID\n"
                    "  asks a process started with FP_DIAG=socket for a framepool report\n",
            prog);
    return 2;
}

static void comm_of(long pid, char *buf, size_t n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/comm", pid);
    FILE *f = fopen(path, "r");
    buf[0] = 0;
    if (f) {
        if (fgets(buf, (int)n, f))
            buf[strcspn(buf, "\n")] = 0;
        fclose(f);
    }
    if (!buf[0])
        snprintf(buf, n, "?");
}

/* XDG_RUNTIME_DIR as the target process sees it (its environ is readable
 * by its own user only, which is who we are by now). */
static int target_xdg(long pid, char *buf, size_t n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/environ", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    static char env[1 << 16];
    ssize_t len = read(fd, env, sizeof env - 1);
    close(fd);
    if (len <= 0)
        return 0;
    env[len] = 0;
    for (char *p = env; p < env + len; p += strlen(p) + 1) {
        if (!strncmp(p, "XDG_RUNTIME_DIR=", 16) && p[16] == '/') {
            snprintf(buf, n, "%s", p + 16);
            return 1;
        }
    }
    return 0;
}

/* Accepts a socket path only if it is a socket of ours in a directory of
 * ours that nobody else can write to. */
static int trusted_socket(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_uid != getuid())
        return 0;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return 0;
    *slash = 0;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
        (st.st_mode & 022))
        return 0;
    return 1;
}

static int find_socket(long pid, char *out, size_t n)
{
    char dirs[2 + TMP_FALLBACKS + 1][PATH_MAX];
    int nd = 0;
    char x[PATH_MAX - 16];
    if (target_xdg(pid, x, sizeof x))
        snprintf(dirs[nd++], PATH_MAX, "%s/framepool", x);
    const char *own = getenv("XDG_RUNTIME_DIR");
    if (own && own[0] == '/' && strlen(own) < PATH_MAX - 16)
        snprintf(dirs[nd++], PATH_MAX, "%.*s/framepool", PATH_MAX - 16, own);
    /* The /tmp directory, then the fallback names framepool uses when
     * another user made that one first (lib/core/diag_socket.c). */
    for (int k = 0; k <= TMP_FALLBACKS; k++) {
        if (k)
            snprintf(dirs[nd++], PATH_MAX, "/tmp/framepool-%ld.%d", (long)getuid(), k);
        else
            snprintf(dirs[nd++], PATH_MAX, "/tmp/framepool-%ld", (long)getuid());
    }
    for (int i = 0; i < nd; i++) {
        if ((size_t)snprintf(out, n, "%s/%ld.sock", dirs[i], pid) >= n)
            continue;
        if (trusted_socket(out))
            return 1;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    const char *req = "summary";
    double timeout = 1.0;
    long pid = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--summary") || !strcmp(a, "--growth") || !strcmp(a, "--leaks") ||
            !strcmp(a, "--report"))
            req = a + 2;
        else if (!strcmp(a, "--timeout") && i + 1 < argc) {
            if (parse_timeout(argv[++i], &timeout) != 0)
                return 2;
        }
        else if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return usage();
        else if (a[0] != '-' && !pid) {
            char *end;
            pid = strtol(a, &end, 10);
            if (*end || pid <= 0)
                return usage();
        } else {
            return usage();
        }
    }
    if (!pid || timeout <= 0)
        return usage();

    /* 1. The process must exist and be ours. */
    char proc[64], comm[64];
    snprintf(proc, sizeof proc, "/proc/%ld", pid);
    struct stat st;
    if (stat(proc, &st) != 0) {
        fprintf(stderr, "%s: no process with PID %ld\n", prog, pid);
        return 1;
    }
    comm_of(pid, comm, sizeof comm);
    if (st.st_uid != getuid()) {
        fprintf(stderr,
                "%s: refusing PID %ld (%s): it belongs to another user (uid %ld, you are uid "
                "%ld); framepool-stat only talks to your own processes\n",
                prog, pid, comm, (long)st.st_uid, (long)getuid());
        return 1;
    }
    /* 2. It must have a framepool channel. */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (!find_socket(pid, path, sizeof path)) {
        fprintf(stderr,
                "%s: PID %ld (%s) has no framepool channel: it is not a framepool process, or "
                "it was not started with FP_DIAG=socket\n",
                prog, pid, comm);
        return 1;
    }
    /* The deadline covers the connect: a process that stopped accepting
     * (its backlog full) would otherwise block connect() for good. */
    double deadline = now_s() + timeout;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        fprintf(stderr, "%s: socket: %s\n", prog, strerror(errno));
        return 1;
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int cr_ = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int cerr = cr_ == 0 ? 0 : errno;
    /* A UNIX socket whose backlog is full says EAGAIN: wait and retry until the deadline. */
    while (cerr == EAGAIN || cerr == EINPROGRESS || cerr == EINTR) {
        int ms = (int)((deadline - now_s()) * 1000);
        if (ms <= 0) {
            fprintf(stderr, "%s: PID %ld (%s): could not connect to %s within %.1f s (the "
                            "process is not serving its channel)\n",
                    prog, pid, comm, path, timeout);
            close(fd);
            return 1;
        }
        if (cerr == EINPROGRESS) {
            struct pollfd pf = {fd, POLLOUT, 0};
            int pr = poll(&pf, 1, ms);
            if (pr < 0 && errno != EINTR) {
                cerr = errno;
                break;
            }
            if (pr <= 0)
                continue;
            socklen_t el = sizeof cerr;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &cerr, &el) != 0)
                cerr = errno;
            continue;
        }
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
        cerr = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : errno;
        if (cerr == EISCONN)
            cerr = 0;
    }
    if (cerr != 0) {
        fprintf(stderr, "%s: PID %ld (%s): cannot connect to %s: %s%s\n", prog, pid, comm, path,
                strerror(cerr),
                cerr == ECONNREFUSED ? " (a stale channel: nothing listens on it)" : "");
        close(fd);
        return 1;
    }
    /* 3. The listener must be that process, and ours. */
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cr.uid != getuid() ||
        (long)cr.pid != pid) {
        fprintf(stderr, "%s: refusing %s: it is not served by PID %ld of your user\n", prog,
                path, pid);
        close(fd);
        return 1;
    }
    char line[32];
    int ln = snprintf(line, sizeof line, "%s\n", req);
    if (send(fd, line, (size_t)ln, MSG_NOSIGNAL) != ln) { /* 8 bytes: the buffer is empty */
        fprintf(stderr, "%s: PID %ld: sending the request failed: %s\n", prog, pid,
                strerror(errno));
        close(fd);
        return 1;
    }
    size_t total = 0;
    for (;;) {
        int ms = (int)((deadline - now_s()) * 1000);
        if (ms < 0)
            ms = 0;
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0) {
            fprintf(stderr, "%s: PID %ld (%s): no complete reply within %.1f s\n", prog, pid,
                    comm, timeout);
            close(fd);
            return 1;
        }
        char buf[8192];
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0) {
            fprintf(stderr, "%s: PID %ld: %s\n", prog, pid, strerror(errno));
            close(fd);
            return 1;
        }
        if (r == 0)
            break;
        fwrite(buf, 1, (size_t)r, stdout);
        total += (size_t)r;
    }
    close(fd);
    fflush(stdout);
    if (total == 0) {
        fprintf(stderr, "%s: PID %ld (%s): empty reply\n", prog, pid, comm);
        return 1;
    }
    return 0;
}
