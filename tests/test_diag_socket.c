/* The socket channel (FP_DIAG=socket, lib/core/diag_socket.c) served by this
 * test process itself, and framepool-stat's own limits (tools/framepool_stat.c):
 * where the directory goes, EMFILE, slow clients, long and hostile requests,
 * SIGTERM, --timeout. Each test runs in its own forked process (check), so
 * each opens its own channel. */
#define _GNU_SOURCE
#include "testutil.h"

#include "diag_internal.h"
#include <framepool.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STAT FP_BINARY_DIR "/tools/framepool-stat"

static char xdg[256];

/* A private XDG_RUNTIME_DIR of our own for this process. */
static void private_xdg(void)
{
    snprintf(xdg, sizeof xdg, "/tmp/fp-sock-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(xdg));
    ck_assert_int_eq(setenv("XDG_RUNTIME_DIR", xdg, 1), 0);
}

static void cleanup_xdg(void)
{
    tu_sh("rm -rf '%s'", xdg);
}

/* Opens this process's channel under a private XDG_RUNTIME_DIR; returns its path. */
static const char *open_channel(const char *spec)
{
    private_xdg();
    ck_assert_msg(fp_diag_configure(spec) == FP_OK, "%s", fp_errmsg());
    const char *path = fp__diag_socket_path();
    ck_assert_msg(path[0], "no channel");
    return path;
}

static int connect_to(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect %s: %s", path,
                  strerror(errno));
    return fd;
}

/* Reads until the server closes (or `seconds` pass). Returns the bytes read
 * (NUL-terminated in buf), or -errno when the read failed. */
static ssize_t read_reply(int fd, char *buf, size_t n, double seconds)
{
    size_t k = 0;
    double end = tu_now() + seconds;
    for (;;) {
        int ms = (int)((end - tu_now()) * 1000);
        if (ms <= 0)
            break;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, ms) <= 0)
            continue;
        ssize_t r = read(fd, buf + k, n - 1 - k);
        if (r < 0) {
            buf[k] = 0;
            return -errno;
        }
        if (r == 0)
            break;
        k += (size_t)r;
        if (k == n - 1)
            break;
    }
    buf[k] = 0;
    return (ssize_t)k;
}

static char reply[1 << 16];

START_TEST(test_channel_dir_is_under_xdg_runtime_dir)
{
    const char *path = open_channel("socket");
    char want[512];
    snprintf(want, sizeof want, "%s/framepool/%ld.sock", xdg, (long)getpid());
    ck_assert_str_eq(path, want);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    fp__diag_socket_close();
    cleanup_xdg();
}
END_TEST

START_TEST(test_tmp_dir_taken_by_another_user_uses_a_fallback_name)
{
    unsetenv("XDG_RUNTIME_DIR");
    char base[] = "/tmp/fp-sock-base-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(base));
    snprintf(xdg, sizeof xdg, "%s", base); /* for cleanup_xdg */
    fp__diag_socket_tmp_base = base;
    char taken[256];
    snprintf(taken, sizeof taken, "%s/framepool-%ld", base, (long)geteuid());
    ck_assert_int_eq(mkdir(taken, 0700), 0);
    if (geteuid() == 0)
        ck_assert_int_eq(chown(taken, 65534, 65534), 0); /* another user made it first */
    else
        ck_assert_int_eq(chmod(taken, 0777), 0); /* not private: not to be used either */
    ck_assert_msg(fp_diag_configure("socket") == FP_OK, "%s", fp_errmsg());
    char want[512];
    snprintf(want, sizeof want, "%s.1/%ld.sock", taken, (long)getpid());
    ck_assert_str_eq(fp__diag_socket_path(), want);
    /* The taken directory is left as it was, and nothing was put in it. */
    char inside[512];
    snprintf(inside, sizeof inside, "%s/%ld.sock", taken, (long)getpid());
    struct stat st;
    ck_assert_int_ne(stat(inside, &st), 0);
    fp__diag_socket_close();
    cleanup_xdg();
}
END_TEST

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

START_TEST(test_emfile_backs_off_and_leaves_freed_descriptors_to_the_application)
{
    const char *path = open_channel("socket");
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(c, 0);
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_cur > 256 ? 256 : rl.rlim_cur;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    static int fill[1024];
    int nfill = 0;
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(null, 0);
    fill[nfill++] = null;
    for (;;) {
        int d = dup(null);
        if (d < 0) {
            ck_assert_int_eq(errno, EMFILE);
            break;
        }
        fill[nfill++] = d;
    }
    ck_assert_int_gt(nfill, 20);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(send(c, "summary\n", 8, MSG_NOSIGNAL), 8);
    /* The server cannot take the connection: it must wait, not spin. */
    double cpu0 = cpu_seconds(), t0 = tu_now();
    usleep(600 * 1000);
    double cpu = cpu_seconds() - cpu0, wall = tu_now() - t0;
    ck_assert_msg(cpu < 0.25 * wall, "the channel used %.3f s of CPU in %.3f s at EMFILE", cpu,
                  wall);
    /* A descriptor the application frees stays the application's. */
    close(fill[--nfill]);
    usleep(300 * 1000);
    int again = dup(fill[0]);
    ck_assert_msg(again >= 0, "the descriptor freed was taken: %s", strerror(errno));
    fill[nfill++] = again;
    /* With descriptors free again, the waiting client is served. */
    for (int i = 0; i < 40 && nfill > 0; i++)
        close(fill[--nfill]);
    ssize_t n = read_reply(c, reply, sizeof reply, 20);
    ck_assert_msg(n > 0 && strstr(reply, "framepool summary"), "reply (%zd): %s", n, reply);
    close(c);
    while (nfill > 0)
        close(fill[--nfill]);
    fp__diag_socket_close();
    cleanup_xdg();
}
END_TEST

typedef struct trickle {
    int fd;
    atomic_int stop;
} trickle;

/* A client sending one byte every 200 ms, never a whole line. */
static void *trickle_main(void *arg)
{
    trickle *t = arg;
    for (int i = 0; i < 100 && !atomic_load(&t->stop); i++) {
        if (send(t->fd, "s", 1, MSG_NOSIGNAL) != 1)
            break;
        usleep(200 * 1000);
    }
    return NULL;
}

START_TEST(test_a_slow_client_does_not_hold_up_others_and_is_dropped)
{
    const char *path = open_channel("socket");
    trickle t = {.fd = connect_to(path)};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, trickle_main, &t), 0);
    usleep(100 * 1000);
    /* Another client is answered while the slow one is still sending. */
    for (int k = 0; k < 3; k++) {
        int fd = connect_to(path);
        ck_assert_int_eq(send(fd, "summary\n", 8, MSG_NOSIGNAL), 8);
        double t0 = tu_now();
        ssize_t n = read_reply(fd, reply, sizeof reply, 10);
        double dt = tu_now() - t0;
        close(fd);
        ck_assert_msg(n > 0 && strstr(reply, "framepool summary"), "reply (%zd): %s", n, reply);
        ck_assert_msg(dt < 5, "answered after %.2f s behind a slow client", dt);
    }
    /* The slow client is dropped at its deadline, well before it stops sending (20 s). */
    double t0 = tu_now();
    ssize_t n = read_reply(t.fd, reply, sizeof reply, 15);
    double dt = tu_now() - t0;
    ck_assert_msg(n >= 0 || n == -ECONNRESET || n == -EPIPE, "read: %s", strerror((int)-n));
    ck_assert_msg(dt < 10, "the slow client was kept %.2f s", dt);
    atomic_store(&t.stop, 1);
    pthread_join(th, NULL);
    close(t.fd);
    fp__diag_socket_close();
    cleanup_xdg();
}
END_TEST

START_TEST(test_a_request_over_63_bytes_is_read_and_refused)
{
    const char *path = open_channel("socket");
    static const size_t lens[] = {64, 200, 3000, 9000};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        char *req = malloc(lens[i] + 1);
        memset(req, 'a', lens[i]);
        req[lens[i]] = '\n';
        int fd = connect_to(path);
        ck_assert_int_eq(send(fd, req, lens[i] + 1, MSG_NOSIGNAL), (ssize_t)lens[i] + 1);
        ssize_t n = read_reply(fd, reply, sizeof reply, 10);
        close(fd);
        free(req);
        ck_assert_msg(n > 0, "%zu bytes: read %s", lens[i], n < 0 ? strerror((int)-n) : "EOF");
        ck_assert_msg(strstr(reply, "error: request too long"), "%zu bytes: %s", lens[i], reply);
        ck_assert_msg(!strstr(reply, "aaaa"), "%zu bytes: the request echoed: %s", lens[i],
                      reply);
    }
    /* 63 bytes is still a request (an unknown one). */
    char req[65];
    memset(req, 'b', 63);
    req[63] = '\n';
    int fd = connect_to(path);
    ck_assert_int_eq(send(fd, req, 64, MSG_NOSIGNAL), 64);
    ck_assert_int_gt(read_reply(fd, reply, sizeof reply, 10), 0);
    close(fd);
    ck_assert_msg(strstr(reply, "error: unknown request"), "%s", reply);
    fp__diag_socket_close();
    cleanup_xdg();
}
END_TEST

START_TEST(test_unknown_request_reply_never_echoes_raw_bytes)
{
    const char *path = open_channel("socket");
    static const char req[] = "\x1b]0;owned\x07\x1b[2J\x9b\\'x\n";
    int fd = connect_to(path);
    ck_assert_int_eq(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)sizeof req - 1);
    ssize_t n = read_reply(fd, reply, sizeof reply, 10);
    close(fd);
    ck_assert_int_gt(n, 0);
    ck_assert_msg(strstr(reply, "error: unknown request"), "%s", reply);
    for (ssize_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)reply[i];
        ck_assert_msg(ch == '\n' || (ch >= 0x20 && ch < 0x7f), "raw byte 0x%02x at %zd in: %s",
                      ch, i, reply);
    }
    ck_assert_msg(strstr(reply, "\\x1b]0;owned\\x07"), "%s", reply);
    fp__diag_socket_close();
    cleanup_xdg();
}
END_TEST

/* Runs a child that opens its channel with `spec` and waits; sends it
 * `sig`; returns whether the socket file is still there after it died. */
static int socket_left_after(const char *spec, int sig, int own_handler)
{
    private_xdg();
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    pid_t c = fork();
    if (c == 0) {
        close(pfd[0]);
        setpgid(0, 0);
        /* A plain program: the test runner's own handlers are not inherited. */
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        if (own_handler)
            signal(sig, SIG_IGN);
        char path[256] = "";
        if (fp_diag_configure(spec) == FP_OK)
            snprintf(path, sizeof path, "%s", fp__diag_socket_path());
        if (write(pfd[1], path, sizeof path) != (ssize_t)sizeof path)
            _exit(3);
        for (;;)
            pause();
    }
    close(pfd[1]);
    char path[256];
    ck_assert_int_eq(read(pfd[0], path, sizeof path), (ssize_t)sizeof path);
    close(pfd[0]);
    ck_assert_msg(path[0], "the child has no channel");
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    kill(c, sig);
    if (own_handler) {
        usleep(100 * 1000);
        kill(c, SIGKILL);
    }
    int status;
    ck_assert_int_eq(waitpid(c, &status, 0), c);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(WTERMSIG(status), own_handler ? SIGKILL : sig);
    int left = stat(path, &st) == 0;
    unlink(path);
    cleanup_xdg();
    return left;
}

START_TEST(test_sigterm_and_sigint_remove_the_socket_with_socket_cleanup)
{
    ck_assert_msg(!socket_left_after("socket-cleanup", SIGTERM, 0), "SIGTERM left the socket");
    ck_assert_msg(!socket_left_after("socket-cleanup", SIGINT, 0), "SIGINT left the socket");
    /* Without the option (documented), and with the application's own
     * disposition (left alone), the file stays. */
    ck_assert(socket_left_after("socket", SIGTERM, 0));
    ck_assert(socket_left_after("socket-cleanup", SIGTERM, 1));
}
END_TEST

START_TEST(test_stat_timeout_rejects_nan_inf_and_overflow)
{
    static const char *bad[] = {"nan", "inf", "-inf", "1e300", "1e13", "0", "-1", "abc", "1s",
                                ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = tu_sh("%s --timeout '%s' %ld 2>&1", STAT, bad[i], (long)getpid());
        ck_assert_msg(rc == 2, "--timeout '%s': exit %d\n%s", bad[i], rc, tu_out);
        ck_assert_msg(strstr(tu_out, "--timeout"), "--timeout '%s': %s", bad[i], tu_out);
        ck_assert_msg(strstr(tu_out, "at most 3600"), "--timeout '%s': %s", bad[i], tu_out);
    }
}
END_TEST

START_TEST(test_stat_timeout_covers_connect)
{
    /* A listener that never accepts, with its backlog full: connect() would
     * block for good. This process plays the stopped framepool process. */
    private_xdg();
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/framepool", xdg);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/%ld.sock", dir, (long)getpid());
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(l, 0), 0);
    int queued[64], nq = 0;
    for (; nq < 64; nq++) {
        queued[nq] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (connect(queued[nq], (struct sockaddr *)&sa, sizeof sa) != 0) {
            ck_assert_int_eq(errno, EAGAIN);
            close(queued[nq]);
            break;
        }
    }
    ck_assert_int_lt(nq, 64);
    double t0 = tu_now();
    int rc = tu_sh("timeout 30 %s --timeout 0.5 %ld 2>&1", STAT, (long)getpid());
    double dt = tu_now() - t0;
    ck_assert_msg(rc == 1, "exit %d after %.2f s: %s", rc, dt, tu_out);
    ck_assert_msg(strstr(tu_out, "could not connect"), "%s", tu_out);
    ck_assert_msg(dt < 10, "took %.2f s", dt);
    for (int i = 0; i < nq; i++)
        close(queued[i]);
    close(l);
    cleanup_xdg();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("diag_socket");
    TCase *tc = tcase_create("diag_socket");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_channel_dir_is_under_xdg_runtime_dir);
    tcase_add_test(tc, test_tmp_dir_taken_by_another_user_uses_a_fallback_name);
    tcase_add_test(tc, test_emfile_backs_off_and_leaves_freed_descriptors_to_the_application);
    tcase_add_test(tc, test_a_slow_client_does_not_hold_up_others_and_is_dropped);
    tcase_add_test(tc, test_a_request_over_63_bytes_is_read_and_refused);
    tcase_add_test(tc, test_unknown_request_reply_never_echoes_raw_bytes);
    tcase_add_test(tc, test_sigterm_and_sigint_remove_the_socket_with_socket_cleanup);
    tcase_add_test(tc, test_stat_timeout_rejects_nan_inf_and_overflow);
    tcase_add_test(tc, test_stat_timeout_covers_connect);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
