/* framepool-stat (tools/framepool_stat.c) and the socket channel
 * (FP_DIAG=socket, lib/core/diag_socket.c), against a running save_display:
 * the summary arrives within a second; a process that is not framepool's,
 * one that did not ask for the channel, and one of another user are
 * refused with a clear message; the channel is gone after exit. */
#define _GNU_SOURCE
#include "avclips.h"
#include "testutil.h"

#include <framepool.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define STAT FP_BINARY_DIR "/tools/framepool-stat"
#define SAVE_DISPLAY FP_BINARY_DIR "/samples/save_display"

static const char *clip(void)
{
    static char path[512];
    return clip_make("samples_h264.mp4",
                     "-f lavfi -i testsrc2=size=320x240:rate=25:duration=4 -c:v libx264 "
                     "-preset ultrafast -pix_fmt yuv420p -g 25 -bf 2",
                     path, sizeof path);
}

/* Starts save_display looping headless for `seconds`, with FP_DIAG set to
 * `diag` (NULL: unset). Returns its PID. */
static pid_t start_save_display(const char *diag, double seconds)
{
    const char *c = clip();
    ck_assert_ptr_nonnull(c);
    char secs[32];
    snprintf(secs, sizeof secs, "%g", seconds);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        if (diag)
            setenv("FP_DIAG", diag, 1);
        else
            unsetenv("FP_DIAG");
        unsetenv("DISPLAY");
        unsetenv("WAYLAND_DISPLAY");
        execl(SAVE_DISPLAY, "save_display", c, "--loop", "--seconds", secs, "--no-display",
              "--save-every", "0", "--threads", "1", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Where the channel of `pid` lives (the same rule as diag_socket.c). */
static void channel_path(pid_t pid, char *buf, size_t n)
{
    const char *x = getenv("XDG_RUNTIME_DIR");
    struct stat st;
    if (x && x[0] == '/' && stat(x, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid())
        snprintf(buf, n, "%s/framepool/%ld.sock", x, (long)pid);
    else
        snprintf(buf, n, "/tmp/framepool-%ld/%ld.sock", (long)geteuid(), (long)pid);
}

static int wait_for_path(const char *path, double seconds)
{
    double end = tu_now() + seconds;
    struct stat st;
    while (tu_now() < end) {
        if (stat(path, &st) == 0)
            return 1;
        usleep(20000);
    }
    return 0;
}

/* Ends a save_display early. A process killed by a signal runs no exit
 * handler, so its channel stays behind as a stale file: framepool-stat
 * then says so (while the PID is not reused), and the test removes it. */
static void stop(pid_t pid)
{
    int st;
    char path[256];
    channel_path(pid, path, sizeof path);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    unlink(path);
}

/* Waits until /proc says `pid` is stopped (state T); 0 if it never is
 * within a generous bound. */
static int wait_stopped(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    for (int i = 0; i < 2000; i++) {
        FILE *f = fopen(path, "r");
        char state = 0;
        if (f) {
            /* pid (comm) state ...: comm may hold spaces, state follows the last ')' */
            char buf[512];
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            buf[n] = 0;
            fclose(f);
            char *rp = strrchr(buf, ')');
            if (rp && rp[1] == ' ')
                state = rp[2];
        }
        if (state == 'T' || state == 't')
            return 1;
        usleep(5000);
    }
    return 0;
}

START_TEST(summary_of_a_running_save_display_within_a_second)
{
    pid_t pid = start_save_display("socket", 30);
    char path[256];
    channel_path(pid, path, sizeof path);
    ck_assert_msg(wait_for_path(path, 10), "no channel at %s", path);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0600); /* owner-only */
    char dir[256];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);

    /* The channel opens when the library loads, before the first frame:
     * ask until frames are flowing; every answer must come within 1 s. */
    double t0, dt, worst = 0, end = tu_now() + 10;
    do {
        t0 = tu_now();
        int rc = tu_sh("%s %ld", STAT, (long)pid);
        dt = tu_now() - t0;
        ck_assert_msg(rc == 0, "exit %d:\n%s", rc, tu_out);
        ck_assert_msg(strstr(tu_out, "framepool summary at frame") != NULL, "%s", tu_out);
        ck_assert_msg(dt < 1.0, "the summary took %.3f s", dt);
        if (dt > worst)
            worst = dt;
    } while (!strstr(tu_out, "fp_image ") && tu_now() < end && usleep(100000) == 0);
    ck_assert_msg(strstr(tu_out, "fp_image ") != NULL, "%s", tu_out);
    printf("framepool-stat summary of a running save_display: %.1f ms (slowest %.1f ms)\n%s",
           dt * 1e3, worst * 1e3, tu_out);

    ck_assert_int_eq(tu_sh("%s --leaks %ld", STAT, (long)pid), 0);
    ck_assert_msg(strstr(tu_out, "framepool leak report at frame") != NULL, "%s", tu_out);
    ck_assert_int_eq(tu_sh("%s --report %ld", STAT, (long)pid), 0);
    ck_assert_msg(strstr(tu_out, "growth since the last report:") != NULL, "%s", tu_out);
    ck_assert_int_eq(tu_sh("%s --growth %ld", STAT, (long)pid), 0);
    ck_assert_msg(strstr(tu_out, "growth since the last report:") != NULL, "%s", tu_out);

    /* A client that connects and says nothing is dropped; others still get
     * their answer. */
    int idle = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    ck_assert_int_eq(connect(idle, (struct sockaddr *)&sa, sizeof sa), 0);
    t0 = tu_now();
    ck_assert_int_eq(tu_sh("%s --timeout 3 %ld", STAT, (long)pid), 0);
    ck_assert_double_lt(tu_now() - t0, 2.5);
    close(idle);

    /* A process that cannot answer (stopped) gives a clear timeout, not a hang. */
    kill(pid, SIGSTOP);
    /* kill() returns before the stop takes effect: wait for the kernel to
     * report the process stopped, or a busy machine lets it answer first. */
    ck_assert_msg(wait_stopped(pid), "process %ld never showed as stopped", (long)pid);
    ck_assert_int_eq(tu_sh("%s --timeout 0.3 %ld", STAT, (long)pid), 1);
    ck_assert_msg(strstr(tu_out, "no complete reply within 0.3 s") != NULL, "%s", tu_out);
    kill(pid, SIGCONT);
    stop(pid);
}
END_TEST

START_TEST(the_channel_is_removed_at_exit)
{
    pid_t pid = start_save_display("socket", 1.5);
    char path[256];
    channel_path(pid, path, sizeof path);
    ck_assert_msg(wait_for_path(path, 10), "no channel at %s", path);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    struct stat sb;
    ck_assert_msg(stat(path, &sb) != 0 && errno == ENOENT, "%s still exists", path);
    ck_assert_int_ne(tu_sh("%s %ld", STAT, (long)pid), 0);
}
END_TEST

START_TEST(no_channel_unless_asked)
{
    pid_t pid = start_save_display("sites", 30);
    usleep(500000); /* well past framepool's start */
    char path[256];
    channel_path(pid, path, sizeof path);
    struct stat st;
    ck_assert_msg(stat(path, &st) != 0, "%s exists without FP_DIAG=socket", path);
    ck_assert_int_eq(tu_sh("%s %ld", STAT, (long)pid), 1);
    ck_assert_msg(strstr(tu_out, "has no framepool channel") != NULL, "%s", tu_out);
    ck_assert_msg(strstr(tu_out, "FP_DIAG=socket") != NULL, "%s", tu_out);
    stop(pid);
}
END_TEST

START_TEST(refuses_a_process_that_is_not_framepool)
{
    /* The test's own parent (ctest or a shell) and a `sleep`. */
    ck_assert_int_eq(tu_sh("%s %ld", STAT, (long)getppid()), 1);
    ck_assert_msg(strstr(tu_out, "has no framepool channel") != NULL, "%s", tu_out);
    pid_t s = fork();
    if (s == 0) {
        execlp("sleep", "sleep", "5", (char *)NULL);
        _exit(127);
    }
    usleep(100000);
    ck_assert_int_eq(tu_sh("%s %ld", STAT, (long)s), 1);
    ck_assert_msg(strstr(tu_out, "(sleep) has no framepool channel") != NULL, "%s", tu_out);
    kill(s, SIGKILL);
    waitpid(s, NULL, 0);
    ck_assert_int_eq(tu_sh("%s 999999999", STAT), 1);
    ck_assert_msg(strstr(tu_out, "no process with PID 999999999") != NULL, "%s", tu_out);
    ck_assert_int_eq(tu_sh("%s", STAT), 2);
    ck_assert_int_eq(tu_sh("%s --bogus 1", STAT), 2);
}
END_TEST

START_TEST(refuses_a_process_of_another_user)
{
    pid_t other;
    if (geteuid() == 0) {
        /* Running as root: make a process of another user to point at. */
        other = fork();
        if (other == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0)
                _exit(126);
            execlp("sleep", "sleep", "5", (char *)NULL);
            _exit(127);
        }
        usleep(200000);
    } else {
        other = 1; /* root's */
        struct stat st;
        if (stat("/proc/1", &st) != 0 || st.st_uid == geteuid())
            return;
    }
    ck_assert_int_eq(tu_sh("%s %ld", STAT, (long)other), 1);
    ck_assert_msg(strstr(tu_out, "belongs to another user") != NULL, "%s", tu_out);
    if (other != 1) {
        kill(other, SIGKILL);
        waitpid(other, NULL, 0);
    }
}
END_TEST

/* The server checks its peer too (SO_PEERCRED): a client of another uid
 * gets an error line and no report. Only root can reach another user's
 * 0700 directory to try, so this runs when the tests run as root: a child
 * becomes uid 65534 and opens its channel; root connects to it directly. */
START_TEST(the_server_refuses_a_peer_of_another_user)
{
    if (geteuid() != 0)
        return; /* the directory's 0700 already keeps other users out */
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t c = fork();
    if (c == 0) {
        close(ready[0]);
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(126);
        unsetenv("XDG_RUNTIME_DIR");
        char ok = fp_diag_configure("socket") == 0 ? 'y' : 'n';
        if (write(ready[1], &ok, 1) != 1)
            _exit(125);
        sleep(10);
        _exit(0);
    }
    close(ready[1]);
    char ok = 0;
    ck_assert_int_eq(read(ready[0], &ok, 1), 1);
    close(ready[0]);
    ck_assert_int_eq(ok, 'y');
    char path[256];
    snprintf(path, sizeof path, "/tmp/framepool-65534/%ld.sock", (long)c);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_uid, 65534);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    /* The server may refuse before reading: no SIGPIPE for this write. */
    (void)send(fd, "summary\n", 8, MSG_NOSIGNAL);
    char buf[512];
    ssize_t n = 0, r;
    while (n < (ssize_t)sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - (size_t)n)) > 0)
        n += r;
    buf[n > 0 ? n : 0] = 0;
    close(fd);
    ck_assert_msg(strstr(buf, "error: permission denied") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "framepool summary") == NULL, "%s", buf);
    /* And the command refuses the process before connecting. */
    ck_assert_int_eq(tu_sh("%s %ld", STAT, (long)c), 1);
    ck_assert_msg(strstr(tu_out, "belongs to another user") != NULL, "%s", tu_out);
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    unlink(path);
    rmdir("/tmp/framepool-65534"); /* made by this test (fails harmlessly if in use) */
}
END_TEST

/* fork() copies the exit handler but not the serving thread: a child that
 * exits must not remove its parent's channel. This test process opens a
 * channel itself and answers framepool-stat. */
START_TEST(a_forked_child_leaves_the_parents_channel)
{
    ck_assert_int_eq(fp_diag_configure("socket"), 0);
    char path[256];
    channel_path(getpid(), path, sizeof path);
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "no channel at %s", path);
    /* Fork only once the serving thread is idle in accept(), holding no
     * lock: fork copies a lock held by another thread as held forever, and
     * the child's exit (framepool's exit handler, the sanitizers' at-exit
     * checks) would wait for it. One request served, then a pause. */
    ck_assert_int_eq(tu_sh("%s %ld", STAT, (long)getpid()), 0);
    usleep(200 * 1000);
    pid_t c = fork();
    if (c == 0)
        exit(0);
    ck_assert_int_eq(waitpid(c, NULL, 0), c);
    ck_assert_msg(stat(path, &st) == 0, "a child's exit removed %s", path);
    ck_assert_int_eq(tu_sh("%s %ld", STAT, (long)getpid()), 0);
    ck_assert_msg(strstr(tu_out, "framepool summary at frame") != NULL, "%s", tu_out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stat");
    TCase *tc = tcase_create("stat");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, summary_of_a_running_save_display_within_a_second);
    tcase_add_test(tc, the_channel_is_removed_at_exit);
    tcase_add_test(tc, no_channel_unless_asked);
    tcase_add_test(tc, refuses_a_process_that_is_not_framepool);
    tcase_add_test(tc, refuses_a_process_of_another_user);
    tcase_add_test(tc, a_forked_child_leaves_the_parents_channel);
    tcase_add_test(tc, the_server_refuses_a_peer_of_another_user);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
