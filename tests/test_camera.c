/*
 * samples/camera, run as users run it, against real loopback servers (the
 * ones test_live uses: ffmpeg serving MPEG-TS over tcp, http and udp, the
 * GStreamer RTSP server over RTP/UDP and RTP/TCP) while the test kills and
 * restarts them (once at another size), stops them with SIGSTOP (a stall with
 * the socket open) and, for tcp, starts camera before its source. From
 * camera's output: the events are printed, the status lines show the frame
 * count growing again after every fault, with frame age and drops, the
 * summary and the memory verdict are printed, and the exit status matches
 * the verdict (0 PASS, 3 FAIL, 4 INCONCLUSIVE; 1 gave up; 2 usage).
 *
 * Every wait is bounded; camera and the servers die with the test
 * (PR_SET_PDEATHSIG). A missing server program fails the test, naming its
 * Debian package. FP_LIVE_VERBOSE=1 prints camera's output after each run.
 */
#define _GNU_SOURCE
#include "livesrv.h"
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CAMERA FP_BINARY_DIR "/samples/camera"
#define SAN UNDER_SANITIZER
/* sanitizers slow decoding down: give every wait more time */
#define SLACK tu_slack() /* sanitizers and load (testutil.h) */

/* ---- camera, as a child process ------------------------------------------------------------ */

typedef struct cam {
    pid_t pid;
    char log[128];
    char text[TU_OUT_SIZE]; /* its output so far (cam_read) */
    int status;             /* exit status once it ended, -1 after a signal */
} cam;

/* Starts camera on `url` with `args` (a NULL-terminated list of extra
 * arguments), its stdout and stderr going to a file. */
static void cam_start(cam *c, const char *url, const char *const *args)
{
    ck_assert_msg(access(CAMERA, X_OK) == 0, "%s is not built (cmake -DFP_BUILD_SAMPLES=ON)",
                  CAMERA);
    static int runs;
    memset(c, 0, sizeof *c);
    snprintf(c->log, sizeof c->log, "/tmp/fp_camera_%ld_%d.log", (long)getpid(), runs++);
    unlink(c->log);
    const char *argv[32];
    int n = 0;
    argv[n++] = CAMERA;
    argv[n++] = url;
    for (; args && *args; args++) {
        ck_assert_int_lt(n, 30);
        argv[n++] = *args;
    }
    argv[n] = NULL;
    c->pid = spawn_logged((char *const *)argv, c->log);
}

/* Reads camera's output so far into c->text; returns its length. */
static size_t cam_read(cam *c)
{
    c->text[0] = '\0';
    int fd = open(c->log, O_RDONLY);
    if (fd < 0)
        return 0;
    size_t n = 0;
    ssize_t k;
    while (n < sizeof c->text - 1 && (k = read(fd, c->text + n, sizeof c->text - 1 - n)) > 0)
        n += (size_t)k;
    close(fd);
    c->text[n] = '\0';
    return n;
}

/* cam_read, for a camera that must still be running: one that ended (a
 * crash, a sanitizer's report) fails the test at once, with its output. */
static void cam_poll(cam *c)
{
    int st;
    pid_t w = waitpid(c->pid, &st, WNOHANG);
    cam_read(c);
    if (w == c->pid) {
        c->pid = 0;
        ck_abort_msg("camera ended early (%s %d):\n%s", WIFEXITED(st) ? "exit" : "signal",
                     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), c->text);
    }
}

static void cam_show(const cam *c)
{
    if (getenv("FP_LIVE_VERBOSE"))
        fprintf(stderr, "---- camera (exit %d):\n%s", c->status, c->text);
}

/* Ends camera as Ctrl-C does (SIGINT: it prints its summary and verdict) and
 * waits for it, at most `seconds`; then reads its output. */
static void cam_stop(cam *c, double seconds)
{
    kill(c->pid, SIGINT);
    double end = tu_now() + seconds * SLACK;
    int st = 0;
    pid_t w;
    while ((w = waitpid(c->pid, &st, WNOHANG)) == 0 && tu_now() < end)
        usleep(20000);
    if (w == 0) {
        pid_t p = c->pid;
        reap(&p);
        cam_read(c);
        ck_abort_msg("camera did not end within %.0f s of SIGINT:\n%s", seconds * SLACK,
                     c->text);
    }
    c->pid = 0;
    c->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    cam_read(c);
    cam_show(c);
    unlink(c->log);
}

/* One line of camera's output, after its "[   1.23 s] " prefix: an event
 * (its name in capitals) or a status line ("live" / "down"). */
typedef struct line {
    double t;
    char what[16];
    const char *rest; /* the text after `what` (until the end of the line) */
} line;

/* The next line at or after *pos with a "[ t s] " prefix; 0 at the end. */
static int next_line(const char *text, size_t *pos, line *l)
{
    while (text[*pos]) {
        const char *s = text + *pos;
        const char *eol = strchr(s, '\n');
        if (!eol)
            return 0; /* not complete yet */
        *pos = (size_t)(eol + 1 - text);
        int used = 0;
        if (sscanf(s, "[%lf s] %15s %n", &l->t, l->what, &used) == 2 && used > 0) {
            l->rest = s + used;
            return 1;
        }
    }
    return 0;
}

/* Events named `name` at or after offset `from`. */
static int count_events(const char *text, size_t from, const char *name)
{
    line l;
    int n = 0;
    while (next_line(text, &from, &l))
        n += !strcmp(l.what, name);
    return n;
}

typedef struct status {
    int live;
    unsigned long long frames, dropped, stalls, reconnects;
    unsigned backlog;
    int w, h;
    double age, age_max;
} status;

static int parse_status(const line *l, status *s)
{
    if (strcmp(l->what, "live") && strcmp(l->what, "down"))
        return 0;
    s->live = !strcmp(l->what, "live");
    return sscanf(l->rest,
                  "frames=%llu size=%dx%d age=%lf ms (max %lf) dropped=%llu backlog=%u "
                  "stalls=%llu reconnects=%llu",
                  &s->frames, &s->w, &s->h, &s->age, &s->age_max, &s->dropped, &s->backlog,
                  &s->stalls, &s->reconnects) == 9;
}

/* The last status line at or after `from`; 0 if none. */
static int last_status(const char *text, size_t from, status *out)
{
    line l;
    status s;
    int found = 0;
    while (next_line(text, &from, &l))
        if (parse_status(&l, &s)) {
            *out = s;
            found = 1;
        }
    return found;
}

/* How many times camera printed the event `name` so far. */
static int events(cam *c, const char *name)
{
    cam_read(c);
    return count_events(c->text, 0, name);
}

/* Waits until camera printed `name` at least `n` times in all. */
static void wait_event(cam *c, const char *name, int n, double seconds)
{
    double end = tu_now() + seconds * SLACK;
    do {
        cam_poll(c);
        if (count_events(c->text, 0, name) >= n)
            return;
        usleep(50000);
    } while (tu_now() < end);
    ck_abort_msg("camera did not print %s %d times within %.0f s:\n%s", name, n, seconds * SLACK,
                 c->text);
}

/* Frames the last status line reports (0 before the first). */
static unsigned long long frames_now(cam *c)
{
    cam_read(c);
    status s = {0};
    last_status(c->text, 0, &s);
    return s.frames;
}

/* Waits until a status line printed from now on says "live" with at least
 * `more` frames more than `since`, at `w`x`h` when w > 0. Returns that
 * line's frame count. */
static unsigned long long wait_frames(cam *c, unsigned long long since, unsigned long long more,
                                      int w, int h, double seconds)
{
    size_t from = cam_read(c);
    double end = tu_now() + seconds * SLACK;
    status s = {0};
    do {
        usleep(100000);
        cam_poll(c);
        if (last_status(c->text, from, &s) && s.live && s.frames >= since + more &&
            (w <= 0 || (s.w == w && s.h == h)))
            return s.frames;
    } while (tu_now() < end);
    ck_abort_msg("camera's frame count did not grow from %llu by %llu%s within %.0f s:\n%s", since,
                 more, w > 0 ? " at the new size" : "", seconds * SLACK, c->text);
    return 0;
}

/* The lines every run ends with: the summary (its figures agree with the
 * events printed) and the memory verdict, whose exit status camera returns. */
static void check_ending(const cam *c, int steady)
{
    const char *sum = strstr(c->text, "\ncamera: ");
    ck_assert_msg(sum, "no summary line:\n%s", c->text);
    unsigned long long frames, connects, reconnects, stalls, dropped;
    double secs, age_max;
    ck_assert_msg(sscanf(sum + 1,
                         "camera: %llu frames in %lf s, %llu connections, %llu reconnect tries, "
                         "%llu stalls, %llu dropped, frame age max %lf ms",
                         &frames, &secs, &connects, &reconnects, &stalls, &dropped,
                         &age_max) == 7,
                  "summary line unreadable:\n%s", c->text);
    ck_assert_msg(connects == (unsigned long long)count_events(c->text, 0, "CONNECTED"),
                  "%llu connections, CONNECTED printed %d times:\n%s", connects,
                  count_events(c->text, 0, "CONNECTED"), c->text);
    ck_assert_msg(stalls == (unsigned long long)count_events(c->text, 0, "STALLED"),
                  "%llu stalls, STALLED printed %d times:\n%s", stalls,
                  count_events(c->text, 0, "STALLED"), c->text);
    ck_assert_msg(frames == 0 || age_max > 0, "no frame age:\n%s", c->text);
    /* a status line a second, each with the frame count, frame age and drops */
    size_t pos = 0;
    line l;
    status s, prev = {0};
    int lines = 0;
    while (next_line(c->text, &pos, &l)) {
        if (strcmp(l.what, "live") && strcmp(l.what, "down"))
            continue;
        ck_assert_msg(parse_status(&l, &s), "status line unreadable: %.100s\n%s", l.rest,
                      c->text);
        ck_assert_msg(s.frames >= prev.frames && s.dropped >= prev.dropped,
                      "counts went back at %.2f s:\n%s", l.t, c->text);
        prev = s;
        lines++;
    }
    ck_assert_msg(lines >= 1 && lines >= (int)secs - 1, "%d status lines in %.1f s:\n%s", lines,
                  secs, c->text);
    ck_assert_msg(prev.frames <= frames && prev.dropped <= dropped,
                  "status and summary disagree:\n%s", c->text);

    const char *v = strstr(c->text, "memory per frame: ");
    ck_assert_msg(v, "no memory verdict:\n%s", c->text);
    v += strlen("memory per frame: ");
    int expect = !strncmp(v, "PASS", 4) ? 0 : !strncmp(v, "FAIL", 4) ? 3
               : !strncmp(v, "INCONCLUSIVE", 12) ? 4 : -2;
    ck_assert_msg(expect >= 0, "unknown verdict:\n%s", c->text);
    ck_assert_msg(c->status == expect, "exit status %d for that verdict:\n%s", c->status,
                  c->text);
    /* Which verdict is not asserted: runs of seconds cannot PASS. FFmpeg's
     * MPEG-TS demuxer gives each connection a seekback buffer of `probesize`
     * (5 MB by default) that is faulted in as the stream fills it, one
     * packet's worth of RssAnon per frame (6.4 KB/frame at 320x240 MPEG-2)
     * until it wraps; a reconnect brings new pools (at a new size) and a new
     * buffer. Sanitizer allocators add their own growth. What must hold in
     * every run: framepool's own live bytes are flat when no connection
     * changes (`steady`). */
    if (steady)
        ck_assert_msg(strstr(v, " live=flat "), "framepool's live bytes grew:\n%s", c->text);
}

static void sigstop(pid_t p)
{
    ck_assert_int_eq(kill(p, SIGSTOP), 0);
}

static void sigcont(pid_t p)
{
    ck_assert_int_eq(kill(p, SIGCONT), 0);
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* tcp: down at start; then a stall with the socket open (SIGSTOP), after
 * which the stopped server is killed (-9) and started again at another
 * size: it takes one client per run, and its client has gone. */
START_TEST(tcp_down_at_start_stall_restart_resize)
{
    char url[96];
    int port = local_url(url, sizeof url, "tcp", "");
    char stall[16];
    snprintf(stall, sizeof stall, "%g", 1.0 * SLACK);
    const char *args[] = {"--stall", stall, "--seconds", "120", NULL};
    cam c;
    cam_start(&c, url, args);
    wait_event(&c, "RECONNECTING", 2, 5);
    ck_assert_int_eq(count_events(c.text, 0, "CONNECTED"), 0);

    pid_t srv = tcp_server(port, "testsrc2", "320x240", NULL);
    wait_event(&c, "CONNECTED", 1, 5);
    wait_frames(&c, 0, 10, 320, 240, 5);

    /* frames that were on their way when the server stopped still come out
     * first, so the stall shows after a few stall limits */
    sigstop(srv);
    wait_event(&c, "STALLED", 1, 8);
    wait_event(&c, "DISCONNECTED", 1, 2);
    sigcont(srv);
    reap(&srv);
    srv = tcp_server(port, "testsrc2", "160x120", NULL);
    wait_event(&c, "SIZE_CHANGED", 1, 6);
    wait_event(&c, "CONNECTED", 2, 1);
    wait_frames(&c, frames_now(&c), 10, 160, 120, 5);

    cam_stop(&c, 5);
    reap(&srv);
    ck_assert_int_eq(count_events(c.text, 0, "GAVE_UP"), 0);
    ck_assert_ptr_nonnull(strstr(c.text, "] down "));
    check_ending(&c, 0);
}
END_TEST

/* http (ffmpeg -listen 1, one client per run): ALL mode with a loop slower
 * than the source, so frames wait (as packets) and get older, none dropped;
 * kill -9 and restart at another size. */
START_TEST(http_all_drops_kill_restart_resize)
{
    char url[96];
    local_url(url, sizeof url, "http", "/x.ts");
    pid_t srv = ffmpeg_server("testsrc2", "320x240", NULL, 1, url);
    char stall[16];
    snprintf(stall, sizeof stall, "%g", 1.5 * SLACK);
    const char *args[] = {"--all", "--work", "60", "--stall", stall, "--seconds", "120", NULL};
    cam c;
    cam_start(&c, url, args);
    wait_event(&c, "CONNECTED", 1, 5);
    wait_frames(&c, 0, 10, 320, 240, 5);

    reap(&srv);
    wait_event(&c, "DISCONNECTED", 1, 5);
    srv = ffmpeg_server("testsrc2", "160x120", NULL, 1, url);
    wait_event(&c, "SIZE_CHANGED", 1, 6);
    wait_frames(&c, frames_now(&c), 10, 160, 120, 5);

    cam_stop(&c, 5);
    reap(&srv);
    ck_assert_int_ge(count_events(c.text, 0, "RECONNECTING"), 1);
    status s;
    ck_assert(last_status(c.text, 0, &s));
    ck_assert_msg(s.dropped == 0 && s.age_max > 300,
                  "a 60 ms loop on a 25 fps source in ALL mode: frames wait, none dropped "
                  "(dropped %llu, age max %.0f ms):\n%s",
                  s.dropped, s.age_max, c.text);
    check_ending(&c, 0);
}
END_TEST

/* udp: SIGSTOP is a stall, and SIGCONT brings the same server back: there is
 * no connection to lose on udp, the datagrams simply come again. (After the
 * source goes silent a few more frames come out over up to ~3 s, so the
 * stall shows later than the stall limit.) */
START_TEST(udp_stop_cont)
{
    int port = free_port(SOCK_DGRAM);
    char url[96], out[128];
    snprintf(url, sizeof url, "udp://127.0.0.1:%d", port);
    snprintf(out, sizeof out, "udp://127.0.0.1:%d?pkt_size=1316", port);
    char stall[16];
    snprintf(stall, sizeof stall, "%g", 1.0 * SLACK);
    const char *args[] = {"--av-options", "fifo_size=100000:overrun_nonfatal=1", "--stall", stall,
                          "--seconds",    "120",  NULL};
    cam c;
    cam_start(&c, url, args);
    usleep(200000);
    pid_t srv = ffmpeg_server("testsrc2", "320x240", NULL, 0, out);
    wait_event(&c, "CONNECTED", 1, 5);
    wait_frames(&c, 0, 10, 320, 240, 5);

    int n = events(&c, "RECONNECTING");
    sigstop(srv);
    wait_event(&c, "STALLED", 1, 8);
    wait_event(&c, "RECONNECTING", n + 1, 3);
    sigcont(srv);
    wait_event(&c, "CONNECTED", 2, 5);
    wait_frames(&c, frames_now(&c), 10, 320, 240, 5);

    cam_stop(&c, 5);
    reap(&srv);
    ck_assert_int_ge(count_events(c.text, 0, "DISCONNECTED"), 1);
    check_ending(&c, 0);
}
END_TEST

/* RTSP (GStreamer): over RTP/UDP and over RTP/TCP, kill -9 and restart at
 * another size; over TCP also a stop and continue of the server. */
static void rtsp(int tcp)
{
    char url[96];
    int port = local_url(url, sizeof url, "rtsp", "/test");
    pid_t srv = rtsp_server(port, "320x240");
    char stall[16];
    snprintf(stall, sizeof stall, "%g", 2.0 * SLACK);
    const char *args[] = {"--av-options",
                          tcp ? "rtsp_transport=tcp" : "rtsp_transport=udp",
                          "--stall",
                          stall,
                          "--seconds",
                          "120",
                          NULL};
    cam c;
    cam_start(&c, url, args);
    wait_event(&c, "CONNECTED", 1, 8);
    wait_frames(&c, 0, 10, 320, 240, 6);

    if (tcp) {
        int n = events(&c, "CONNECTED");
        sigstop(srv);
        wait_event(&c, "STALLED", 1, 10);
        sigcont(srv);
        wait_event(&c, "CONNECTED", n + 1, 8);
        wait_frames(&c, frames_now(&c), 10, 320, 240, 6);
    }

    int n = events(&c, "DISCONNECTED");
    reap(&srv);
    wait_event(&c, "DISCONNECTED", n + 1, 8);
    srv = rtsp_server(port, "160x120");
    wait_event(&c, "SIZE_CHANGED", 1, 10);
    wait_frames(&c, frames_now(&c), 10, 160, 120, 6);

    cam_stop(&c, 5);
    reap(&srv);
    check_ending(&c, 0);
}

START_TEST(rtsp_udp_kill_restart_resize)
{
    rtsp(0);
}
END_TEST

START_TEST(rtsp_tcp_stop_cont_kill_restart_resize)
{
    rtsp(1);
}
END_TEST

/* --seconds ends a run by itself, with the summary and the verdict. */
START_TEST(seconds_ends_the_run)
{
    char url[96];
    int port = local_url(url, sizeof url, "tcp", "");
    pid_t srv = tcp_server(port, "testsrc2", "320x240", NULL);
    wait_listening(port, 5);
    /* 4.5 s: the verdict needs 90 frames (60 of warm-up); a run length, not a
     * bound: it does not grow with the load (the server lives 60 s) */
    double run = 4.5 * (SAN ? 3.0 : 1.0);
    double t0 = tu_now();
    int rc = tu_sh("%s %s --seconds %g", CAMERA, url, run);
    double dt = tu_now() - t0;
    reap(&srv);
    cam c = {0};
    c.status = rc;
    snprintf(c.text, sizeof c.text, "%s", tu_out);
    cam_show(&c);
    ck_assert_msg(dt >= run && dt < run + 3 * SLACK, "camera --seconds %g took %.1f s", run, dt);
    ck_assert_int_eq(count_events(c.text, 0, "RECONNECTING"), 0);
    ck_assert_int_eq(count_events(c.text, 0, "CONNECTED"), 1);
    ck_assert_int_eq(count_events(c.text, 0, "DISCONNECTED"), 0);
    status s;
    ck_assert_msg(last_status(c.text, 0, &s) && s.live && s.frames >= 25,
                  "no live status line with frames:\n%s", c.text);
    check_ending(&c, 1);
}
END_TEST

/* A source that never comes: --max-reconnects N gives up (exit 1); bad
 * arguments: exit 2 with the usage; --help: exit 0. */
START_TEST(gives_up_and_usage)
{
    int port = free_port(SOCK_STREAM);
    int rc = tu_sh("%s tcp://127.0.0.1:%d --max-reconnects 2 --seconds 60", CAMERA, port);
    ck_assert_msg(rc == 1, "exit %d:\n%s", rc, tu_out);
    ck_assert_int_eq(count_events(tu_out, 0, "RECONNECTING"), 2);
    ck_assert_int_eq(count_events(tu_out, 0, "GAVE_UP"), 1);
    ck_assert_int_eq(count_events(tu_out, 0, "CONNECTED"), 0);
    ck_assert_msg(strstr(tu_out, "\ncamera: ") && strstr(tu_out, "gave up"), "%s", tu_out);
    ck_assert_msg(strstr(tu_out, "camera: 0 frames in "), "%s", tu_out);
    ck_assert_msg(strstr(tu_out, "memory per frame: "), "%s", tu_out);

    const char *bad[] = {"", "tcp://127.0.0.1:1 --stall 0", "tcp://127.0.0.1:1 --max-reconnects -1",
                         "tcp://127.0.0.1:1 --bogus", "a b", "tcp://127.0.0.1:1 --seconds",
                         "tcp://127.0.0.1:1 --open-timeout 0", "tcp://127.0.0.1:1 --stall -1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = tu_sh("%s %s", CAMERA, bad[i]);
        ck_assert_msg(rc == 2, "camera %s: exit %d:\n%s", bad[i], rc, tu_out);
        ck_assert_msg(strstr(tu_out, "usage: camera"), "camera %s:\n%s", bad[i], tu_out);
    }
    ck_assert_int_eq(tu_sh("%s --help", CAMERA), 0);
    ck_assert_msg(strstr(tu_out, "--stall S") && strstr(tu_out, "--open-timeout S") &&
                      strstr(tu_out, "--max-reconnects N") &&
                      strstr(tu_out, "--no-malloc-policy") && strstr(tu_out, "4 INCONCLUSIVE"),
                  "%s", tu_out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("camera");
    TCase *tc = tcase_create("camera");
    tcase_set_timeout(tc, SAN ? 180 : 60);
    LIVE_ADD(tc, gives_up_and_usage);
    LIVE_ADD(tc, seconds_ends_the_run);
    LIVE_ADD(tc, tcp_down_at_start_stall_restart_resize);
    LIVE_ADD(tc, http_all_drops_kill_restart_resize);
    LIVE_ADD(tc, udp_stop_cont);
    LIVE_ADD(tc, rtsp_udp_kill_restart_resize);
    LIVE_ADD(tc, rtsp_tcp_stop_cont_kill_restart_resize);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    return tu_run(suite());
}
