/*
 * Diagnostics, the socket channel (FP_DIAG=socket): a UNIX socket through
 * which another terminal asks a running process for its summary, growth
 * or leak report (framepool-stat PID, tools/framepool_stat.c).
 *
 * A forked child has no channel of its own (the serving thread is not
 * forked) and leaves its parent's socket in place when it exits.
 *
 * Where: $XDG_RUNTIME_DIR/framepool/PID.sock when XDG_RUNTIME_DIR names a
 * directory of ours, else /tmp/framepool-UID/PID.sock. The directory is
 * made 0700 and must be ours with no group or other permission (else the
 * channel is not opened); the socket is 0600. It exists only while a
 * process that asked for it runs (removed at exit; a process killed hard
 * leaves a stale file, which the next process with that PID replaces and
 * framepool-stat reports as stale).
 *
 * Protocol: the client sends one line naming what it wants — "summary",
 * "growth", "leaks", "report" (summary and growth, as SIGUSR1 prints) —
 * and reads the reply until the server closes the connection. A peer of
 * another user (SO_PEERCRED) gets "error: ..." and nothing else.
 *
 * The server is one thread, blocking every signal. It builds each reply
 * with the report functions writing into a memory stream (open_memstream)
 * and writes it to the socket afterwards, so no framepool lock is held
 * while a slow client reads.
 */
#define _GNU_SOURCE /* SO_PEERCRED, struct ucred, open_memstream */
#include "diag_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static int listen_fd = -1;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static _Atomic int sock_open;
static pid_t sock_pid; /* the process the channel belongs to */

const char *fp__diag_socket_path(void)
{
    return atomic_load(&sock_open) && getpid() == sock_pid ? sock_path : "";
}

/* Only the process that opened the channel removes it: a forked child that
 * exits runs the same exit handler, and must leave its parent's alone. */
void fp__diag_socket_close(void)
{
    if (getpid() == sock_pid && atomic_exchange(&sock_open, 0))
        unlink(sock_path);
}

/* Makes (or checks) the directory: ours, a directory, no group/other bits. */
static int private_dir(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fp_errmsg_set("diag: socket: cannot create %s: %s", dir, strerror(errno));
        return FP_EIO;
    }
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077)) {
        fp_errmsg_set("diag: socket: %s is not a private directory of this user (want mode "
                       "0700, owner uid %ld): channel not opened",
                       dir, (long)geteuid());
        return FP_EIO;
    }
    return FP_OK;
}

static int channel_dir(char *buf, size_t n)
{
    const char *x = getenv("XDG_RUNTIME_DIR");
    struct stat st;
    if (x && x[0] == '/' && stat(x, &st) == 0 && S_ISDIR(st.st_mode) &&
        st.st_uid == geteuid()) {
        if ((size_t)snprintf(buf, n, "%s/framepool", x) >= n) {
            fp_errmsg_set("diag: socket: XDG_RUNTIME_DIR too long");
            return FP_EINVAL;
        }
    } else {
        snprintf(buf, n, "/tmp/framepool-%ld", (long)geteuid());
    }
    return private_dir(buf);
}

static void reply(FILE *f, const char *req)
{
    if (!strcmp(req, "summary")) {
        fp_diag_print_summary(f);
    } else if (!strcmp(req, "growth")) {
        fprintf(f, "growth since the last report:\n");
        if (fp_growth_check(NULL, f, 0) == 0)
            fprintf(f, "(none)\n");
    } else if (!strcmp(req, "leaks")) {
        fp_diag_leak_report(f, 0);
    } else if (!strcmp(req, "report")) {
        fp_diag_report(f);
    } else {
        fprintf(f, "error: unknown request '%.32s' (known: summary, growth, leaks, report)\n",
                req);
    }
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void serve(int fd)
{
    struct timeval tv = {1, 0}; /* a client that sends nothing is dropped */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cr.uid != geteuid()) {
        static const char no[] = "error: permission denied (the peer is another user)\n";
        send_all(fd, no, sizeof no - 1);
        return;
    }
    char req[64];
    size_t k = 0;
    while (k < sizeof req - 1) {
        ssize_t r = recv(fd, req + k, sizeof req - 1 - k, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        k += (size_t)r;
        if (memchr(req, '\n', k))
            break;
    }
    req[k] = 0;
    req[strcspn(req, "\r\n")] = 0;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return;
    reply(f, req[0] ? req : "summary");
    fclose(f); /* every report is done: no framepool lock is held from here */
    send_all(fd, text, len);
    free(text);
}

static void *socket_thread(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE)
                continue;
            return NULL;
        }
        serve(fd);
        close(fd);
    }
}

int fp__diag_socket_start(void)
{
    char dir[sizeof sock_path];
    int rc = channel_dir(dir, sizeof dir);
    if (rc)
        return rc;
    if ((size_t)snprintf(sock_path, sizeof sock_path, "%s/%ld.sock", dir, (long)getpid()) >=
        sizeof sock_path) {
        fp_errmsg_set("diag: socket: path too long under %s", dir);
        return FP_EINVAL;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fp_errmsg_set("diag: socket: %s", strerror(errno));
        return FP_EIO;
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    unlink(sock_path); /* a stale one left by an earlier process with this PID */
    /* The directory is 0700, so nobody else can reach the socket between
     * bind and chmod. */
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || chmod(sock_path, 0600) != 0 ||
        listen(fd, 4) != 0) {
        fp_errmsg_set("diag: socket: cannot listen on %s: %s", sock_path, strerror(errno));
        close(fd);
        unlink(sock_path);
        return FP_EIO;
    }
    listen_fd = fd;
    int e = fp__diag_start_thread(socket_thread);
    if (e != 0) {
        close(fd);
        listen_fd = -1;
        unlink(sock_path);
        fp_errmsg_set("diag: could not start the socket thread: %s", strerror(e));
        return FP_ENOMEM;
    }
    sock_pid = getpid();
    atomic_store(&sock_open, 1);
    return FP_OK;
}
