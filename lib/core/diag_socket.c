/*
 * Diagnostics, the socket channel (FP_DIAG=socket): a UNIX socket through
 * which another terminal asks a running process for its summary, growth
 * or leak report (framepool-stat PID, tools/framepool_stat.c).
 *
 * A forked child has no channel of its own (the serving thread is not
 * forked; the child closes its copies of the descriptors) and leaves its
 * parent's socket in place when it exits.
 *
 * Where: $XDG_RUNTIME_DIR/framepool/PID.sock when XDG_RUNTIME_DIR names a
 * directory of ours that nobody else can write to, else
 * /tmp/framepool-UID/PID.sock. A directory is used only if it is ours, a
 * real directory (not a link) and has no group or other permission; when
 * /tmp/framepool-UID is not (another user made it first), the next of
 * /tmp/framepool-UID.1 ... .8 that is (or can be made) is used instead,
 * and framepool-stat looks in the same places. The socket is 0600. It
 * exists only while a process that asked for it runs (removed at exit, and
 * on SIGTERM/SIGINT with FP_DIAG=socket-cleanup; a process killed otherwise
 * leaves a stale file, which the next process with that PID replaces and
 * framepool-stat reports as stale).
 *
 * Protocol: the client sends one line (at most 63 bytes) naming what it
 * wants — "summary", "growth", "leaks", "report" (summary and growth, as
 * SIGUSR1 prints) — and reads the reply until the server closes the
 * connection. A longer request is read (up to 4 KiB) and refused with
 * "error: request too long"; an unknown one is refused with its text
 * escaped (non-printable bytes as \xNN). A peer of another user
 * (SO_PEERCRED) gets "error: ..." and nothing else.
 *
 * The server is one thread, blocking every signal, serving up to 8 clients
 * at once with poll(): each client must send its request within 1 s of
 * connecting and read its reply within 2 s of it being ready, or it is
 * dropped, so a slow client never holds up another. Each reply is built
 * with the report functions writing into a memory stream
 * (open_memstream) before any of it is written, so no framepool lock is
 * held while a client reads. When the process is short of descriptors
 * (accept fails with EMFILE/ENFILE, or fewer than 16 are free) the server
 * stops accepting and looks again after a growing pause (50 ms up to 2 s):
 * it neither spins nor takes the descriptors the application frees.
 */
#define _GNU_SOURCE /* SO_PEERCRED, struct ucred, open_memstream, accept4 */
#include "diag_internal.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CLIENTS 8
#define REQ_MAX 63                 /* longest request accepted */
#define DISCARD_MAX 4096           /* bytes of a longer request read before refusing */
#define READ_DEADLINE_US 1000000   /* the request must arrive within this of connecting */
#define WRITE_DEADLINE_US 2000000  /* and the reply be read within this */
#define FD_RESERVE 16              /* descriptors left to the application */
#define BACKOFF_MIN_US 50000
#define BACKOFF_MAX_US 2000000

static int listen_fd = -1;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static _Atomic int sock_open;
static volatile pid_t sock_pid; /* the process the channel belongs to */
const char *fp__diag_socket_tmp_base = "/tmp";

typedef struct client {
    int fd;             /* -1: free slot */
    int writing;        /* 0 reading the request, 1 writing the reply */
    int64_t deadline;   /* fp__now_us() */
    size_t k, total;    /* request bytes kept / read */
    char req[REQ_MAX + 1];
    char *out;
    size_t out_len, out_off;
} client;

static client clients[MAX_CLIENTS];
/* Held by the serving thread whenever it is not waiting in poll(), so that
 * a fork (fp__diag_socket_atfork) sees the client table whole. */
static pthread_mutex_t srv_lock = PTHREAD_MUTEX_INITIALIZER;
static void socket_after_fork_child(void);

void fp__diag_socket_atfork(int phase)
{
    if (phase == 0)
        pthread_mutex_lock(&srv_lock);
    else
        pthread_mutex_unlock(&srv_lock);
    if (phase == 2)
        socket_after_fork_child();
}

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

/* In a forked child (pthread_atfork, diag_env.c): no serving thread came
 * along; close the copies of the parent's descriptors. */
static void socket_after_fork_child(void)
{
    atomic_store(&sock_open, 0);
    if (listen_fd < 0)
        return; /* never opened */
    close(listen_fd);
    listen_fd = -1;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (clients[i].fd >= 0)
            close(clients[i].fd);
        free(clients[i].out);
        memset(&clients[i], 0, sizeof clients[i]);
        clients[i].fd = -1;
    }
}

/* ---- where -------------------------------------------------------------------------- */

/* Makes (or checks) the directory: ours, a directory, no group/other bits.
 * Returns 0, or FP_EIO with the reason in `why`. */
static int private_dir(const char *dir, char *why, size_t n)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, n, "cannot create %s: %s", dir, strerror(errno));
        return FP_EIO;
    }
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077)) {
        snprintf(why, n, "%s is not a private directory of this user (want mode 0700, owner "
                         "uid %ld)",
                 dir, (long)geteuid());
        return FP_EIO;
    }
    return FP_OK;
}

static int channel_dir(char *buf, size_t n)
{
    char why[sizeof sock_path + 160] = "";
    const char *x = getenv("XDG_RUNTIME_DIR");
    struct stat st;
    if (x && x[0] == '/' && stat(x, &st) == 0 && S_ISDIR(st.st_mode) &&
        st.st_uid == geteuid() && !(st.st_mode & 022)) {
        if ((size_t)snprintf(buf, n, "%s/framepool", x) < n &&
            private_dir(buf, why, sizeof why) == FP_OK)
            return FP_OK;
    }
    char first[sizeof sock_path + 160] = "";
    for (int i = 0; i <= FP__DIAG_SOCKET_FALLBACKS; i++) {
        int w = i ? snprintf(buf, n, "%s/framepool-%ld.%d", fp__diag_socket_tmp_base,
                             (long)geteuid(), i)
                  : snprintf(buf, n, "%s/framepool-%ld", fp__diag_socket_tmp_base,
                             (long)geteuid());
        if (w < 0 || (size_t)w >= n)
            break;
        if (private_dir(buf, why, sizeof why) == FP_OK)
            return FP_OK;
        if (i == 0)
            snprintf(first, sizeof first, "%s", why);
    }
    fp_errmsg_set("diag: socket: %s, and no fallback directory (.1 to .%d) is usable: "
                   "channel not opened",
                   first[0] ? first : why, FP__DIAG_SOCKET_FALLBACKS);
    return FP_EIO;
}

/* ---- requests ------------------------------------------------------------------------ */

/* The request as text safe to print: printable ASCII kept, the rest \xNN. */
static void escape(char *dst, size_t n, const char *src, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
            dst[o++] = (char)c;
        else
            o += (size_t)snprintf(dst + o, n - o, "\\x%02x", c);
    }
    dst[o] = 0;
}

static void reply(FILE *f, const client *c)
{
    const char *req = c->req;
    if (c->total > REQ_MAX) {
        fprintf(f, "error: request too long (%s%zu bytes; at most %d: summary, growth, leaks, "
                   "report)\n",
                c->total > DISCARD_MAX ? "over " : "", c->total > DISCARD_MAX ? (size_t)DISCARD_MAX : c->total,
                REQ_MAX);
    } else if (!req[0] || !strcmp(req, "summary")) {
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
        char esc[32 * 4 + 8];
        escape(esc, sizeof esc, req, strlen(req) < 32 ? strlen(req) : 32);
        fprintf(f, "error: unknown request '%s%s' (known: summary, growth, leaks, report)\n",
                esc, strlen(req) > 32 ? "..." : "");
    }
}

static void drop(client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->out);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* Switches a client to writing `text` (taken). */
static void start_reply(client *c, char *text, size_t len)
{
    c->writing = 1;
    c->out = text;
    c->out_len = len;
    c->out_off = 0;
    c->deadline = fp__now_us() + WRITE_DEADLINE_US;
}

static void finish_request(client *c)
{
    c->req[c->k] = 0;
    c->req[strcspn(c->req, "\r\n")] = 0;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        drop(c);
        return;
    }
    reply(f, c);
    fclose(f); /* every report is done: no framepool lock is held from here */
    start_reply(c, text, len);
}

static void on_readable(client *c)
{
    char buf[512];
    for (;;) {
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r < 0) {
            drop(c);
            return;
        }
        if (r == 0) { /* the client ended its side: what came is the request */
            finish_request(c);
            return;
        }
        char *nl = memchr(buf, '\n', (size_t)r);
        size_t use = nl ? (size_t)(nl - buf) : (size_t)r;
        size_t room = REQ_MAX - c->k;
        memcpy(c->req + c->k, buf, use < room ? use : room);
        c->k += use < room ? use : room;
        c->total += use;
        if (nl || c->total > DISCARD_MAX) {
            finish_request(c);
            return;
        }
    }
}

static void on_writable(client *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (w <= 0) {
            drop(c);
            return;
        }
        c->out_off += (size_t)w;
    }
    /* Whatever the client sent beyond its request is read before closing,
     * so that it sees the reply and an orderly end, not a reset. */
    char sink[512];
    while (recv(c->fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
        ;
    shutdown(c->fd, SHUT_WR);
    drop(c);
}

/* Descriptors the process may still open (RLIMIT_NOFILE minus those open);
 * a large number when it cannot be told. */
static long fd_headroom(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1L << 20;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return errno == EMFILE || errno == ENFILE ? 0 : 1L << 20;
    long open_fds = -1; /* the directory's own descriptor */
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            open_fds++;
    closedir(d);
    return (long)rl.rlim_cur - open_fds;
}

static void accept_new(int64_t now, int64_t *backoff_us, int64_t *resume_at)
{
    for (;;) {
        int slot = -1;
        for (int i = 0; i < MAX_CLIENTS && slot < 0; i++)
            if (clients[i].fd < 0)
                slot = i;
        if (slot < 0)
            return;
        int fd = fd_headroom() < FD_RESERVE
                     ? (errno = EMFILE, -1)
                     : accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Short of descriptors: pause, growing, instead of retrying at once. */
                *backoff_us = *backoff_us ? *backoff_us * 2 : BACKOFF_MIN_US;
                if (*backoff_us > BACKOFF_MAX_US)
                    *backoff_us = BACKOFF_MAX_US;
                *resume_at = now + *backoff_us;
            }
            return; /* EAGAIN, EINTR, ECONNABORTED: next poll */
        }
        *backoff_us = 0;
        client *c = &clients[slot];
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->deadline = now + READ_DEADLINE_US;
        struct ucred cr;
        socklen_t cl = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cr.uid != geteuid()) {
            static const char no[] = "error: permission denied (the peer is another user)\n";
            char *t = malloc(sizeof no);
            if (!t) {
                drop(c);
                continue;
            }
            memcpy(t, no, sizeof no);
            start_reply(c, t, sizeof no - 1);
        }
    }
}

static void *socket_thread(void *arg)
{
    (void)arg;
    int64_t backoff_us = 0, resume_at = 0;
    pthread_mutex_lock(&srv_lock);
    for (;;) {
        struct pollfd pf[MAX_CLIENTS + 1];
        int who[MAX_CLIENTS + 1];
        nfds_t n = 0;
        int64_t now = fp__now_us(), wake = INT64_MAX;
        int listening = !(backoff_us && now < resume_at);
        if (listening) {
            pf[n].fd = listen_fd;
            pf[n].events = POLLIN;
            who[n++] = -1;
        } else {
            wake = resume_at;
        }
        for (int i = 0; i < MAX_CLIENTS; i++) {
            if (clients[i].fd < 0)
                continue;
            pf[n].fd = clients[i].fd;
            pf[n].events = clients[i].writing ? POLLOUT : POLLIN;
            who[n++] = i;
            if (clients[i].deadline < wake)
                wake = clients[i].deadline;
        }
        int ms = -1;
        if (wake != INT64_MAX)
            ms = wake <= now ? 0 : (int)((wake - now + 999) / 1000);
        pthread_mutex_unlock(&srv_lock);
        int pr = poll(pf, n, ms);
        pthread_mutex_lock(&srv_lock);
        if (pr < 0 && errno != EINTR)
            break;
        now = fp__now_us();
        for (nfds_t j = 0; pr > 0 && j < n; j++) {
            if (!pf[j].revents)
                continue;
            if (who[j] < 0) {
                accept_new(now, &backoff_us, &resume_at);
                continue;
            }
            client *c = &clients[who[j]];
            if (c->writing)
                on_writable(c);
            else
                on_readable(c);
        }
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (clients[i].fd >= 0 && clients[i].deadline <= now)
                drop(&clients[i]); /* too slow: the others go on */
        /* After a pause for descriptors, accept again only with some left over. */
        if (backoff_us && now >= resume_at && fd_headroom() < FD_RESERVE) {
            backoff_us = backoff_us * 2 > BACKOFF_MAX_US ? BACKOFF_MAX_US : backoff_us * 2;
            resume_at = now + backoff_us;
        }
    }
    pthread_mutex_unlock(&srv_lock);
    return NULL;
}

/* ---- SIGTERM / SIGINT (FP_DIAG=socket-cleanup) ----------------------------------------- */

static void cleanup_handler(int sig)
{
    int saved = errno;
    if (getpid() == sock_pid && atomic_load(&sock_open))
        unlink(sock_path); /* async-signal-safe */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig); /* delivered on return: the default action ends the process */
    errno = saved;
}

int fp__diag_socket_cleanup_handlers(void)
{
    static const int sigs[] = {SIGTERM, SIGINT};
    int installed = 0;
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) != 0)
            continue;
        /* The application's own handler (or SIG_IGN) is left alone. */
        if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = cleanup_handler;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = SA_RESETHAND;
            if (sigaction(sigs[i], &sa, NULL) == 0)
                installed++;
        }
    }
    return installed;
}

/* ---- start ---------------------------------------------------------------------------- */

int fp__diag_socket_start(void)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        clients[i].fd = -1;
    char dir[sizeof sock_path];
    int rc = channel_dir(dir, sizeof dir);
    if (rc)
        return rc;
    if ((size_t)snprintf(sock_path, sizeof sock_path, "%s/%ld.sock", dir, (long)getpid()) >=
        sizeof sock_path) {
        fp_errmsg_set("diag: socket: path too long under %s", dir);
        return FP_EINVAL;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
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
        listen(fd, 16) != 0) {
        fp_errmsg_set("diag: socket: cannot listen on %s: %s", sock_path, strerror(errno));
        close(fd);
        unlink(sock_path);
        return FP_EIO;
    }
    listen_fd = fd;
    sock_pid = getpid();
    atomic_store(&sock_open, 1);
    int e = fp__diag_start_thread(socket_thread);
    if (e != 0) {
        atomic_store(&sock_open, 0);
        close(fd);
        listen_fd = -1;
        unlink(sock_path);
        fp_errmsg_set("diag: could not start the socket thread: %s", strerror(e));
        return FP_ENOMEM;
    }
    return FP_OK;
}
