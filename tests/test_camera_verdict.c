/*
 * samples/camera's memory verdict against a loopback live source: a healthy
 * run must not FAIL, a run with a planted leak (--leak-bytes 256) must, and
 * the outside observer (bench/rss_watch --live, when the benchmarks are
 * built) must say the same as camera's own verdict.
 *
 * The source is ffmpeg serving MPEG-TS over tcp at 50 fps (frames come
 * twice as fast as from a 25 fps camera), so that the live verdict's judged
 * length is reached in about a minute: the two runs go side by side, each
 * one ends (SIGINT, as Ctrl-C) once camera has counted FRAMES frames, and
 * every wait is bounded. FP_LIVE_VERBOSE=1 prints camera's output.
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
#define RSS_WATCH FP_BINARY_DIR "/bench/rss_watch"
/* sanitizers slow decoding down: give every wait more time */
#define SLACK (UNDER_SANITIZER ? 3.0 : 1.0)
/* Frames each run delivers before it is stopped: the live verdict needs 400
 * of warm-up and 1024 judged; over MPEG-TS the demuxer frees its seek-back
 * buffer after ~1000 frames, and the judged part then starts after it:
 * 400 + 2 x 1024 = 2448 frames, with some margin. */
#define FRAMES 2700
#define FPS 50

/* ffmpeg serving a 320x240 test pattern, MPEG-2 in MPEG-TS at FPS, for at
 * most 200 s, to one tcp client. */
static pid_t source(int port)
{
    ck_assert_msg(have_program("ffmpeg -version"),
                  "this test needs the ffmpeg program (Debian package ffmpeg; scripts/setup)");
    char input[96], out[96];
    snprintf(input, sizeof input, "testsrc2=size=320x240:rate=%d", FPS);
    snprintf(out, sizeof out, "tcp://127.0.0.1:%d?listen=1", port);
    const char *argv[] = {"ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re",
                          "-f", "lavfi", "-i", input, "-t", "200", "-c:v", "mpeg2video", "-g",
                          "25", "-q:v", "4", "-flags", "+low_delay", "-flush_packets", "1", "-f",
                          "mpegts", out, NULL};
    return spawn((char *const *)argv);
}

/* One camera run, under rss_watch when it is built. */
typedef struct run {
    const char *name;
    pid_t pid;     /* rss_watch, or camera itself */
    int observed;  /* under rss_watch */
    char log[128];
    char *text;    /* its output (run_read) */
    int status;    /* exit status of the spawned process */
} run;

static void run_start(run *r, const char *name, const char *url, const char *leak)
{
    ck_assert_msg(access(CAMERA, X_OK) == 0, "%s is not built (cmake -DFP_BUILD_SAMPLES=ON)",
                  CAMERA);
    memset(r, 0, sizeof *r);
    r->name = name;
    r->observed = access(RSS_WATCH, X_OK) == 0;
    snprintf(r->log, sizeof r->log, "/tmp/fp_camera_verdict_%ld_%s.log", (long)getpid(), name);
    unlink(r->log);
    const char *argv[24];
    int n = 0;
    if (r->observed) {
        argv[n++] = RSS_WATCH;
        argv[n++] = "--live";
        argv[n++] = "--";
    }
    argv[n++] = CAMERA;
    argv[n++] = url;
    argv[n++] = "--all";
    argv[n++] = "--seconds"; /* a bound if this test dies: rss_watch's child outlives it */
    argv[n++] = "200";
    if (leak) {
        argv[n++] = "--leak-bytes";
        argv[n++] = leak;
    }
    argv[n] = NULL;
    r->pid = spawn_logged((char *const *)argv, r->log);
}

static void run_read(run *r)
{
    free(r->text);
    FILE *f = fopen(r->log, "r");
    size_t cap = 1 << 16, n = 0;
    r->text = malloc(cap + 1);
    ck_assert_ptr_nonnull(r->text);
    if (f) {
        size_t k;
        while ((k = fread(r->text + n, 1, cap - n, f)) > 0) {
            n += k;
            if (n == cap) {
                cap *= 2;
                r->text = realloc(r->text, cap + 1);
                ck_assert_ptr_nonnull(r->text);
            }
        }
        fclose(f);
    }
    r->text[n] = '\0';
}

/* The last 2,500 characters of a text (check's messages have a size limit):
 * camera's summary, verdict and the observer's lines are at the end. */
static const char *tail(const char *text)
{
    size_t n = text ? strlen(text) : 0;
    return n > 2500 ? text + n - 2500 : text ? text : "";
}

/* The frame count of camera's last status line so far. */
static unsigned long run_frames(run *r)
{
    run_read(r);
    unsigned long frames = 0;
    for (const char *p = r->text; (p = strstr(p, " frames=")); p++)
        frames = strtoul(p + 8, NULL, 10);
    return frames;
}

/* The camera process: the spawned one, or rss_watch's child. */
static pid_t camera_pid(const run *r)
{
    if (!r->observed)
        return r->pid;
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", (long)r->pid, (long)r->pid);
    FILE *f = fopen(path, "r");
    long child = 0;
    if (f) {
        if (fscanf(f, "%ld", &child) != 1)
            child = 0;
        fclose(f);
    }
    return (pid_t)child;
}

/* Ends the run as Ctrl-C does and waits for it (at most 60 s). */
static void run_stop(run *r)
{
    pid_t cam = camera_pid(r);
    ck_assert_msg(cam > 0, "%s: camera is not running:\n%s", r->name, tail(r->text));
    kill(cam, SIGINT);
    double end = tu_now() + 60 * SLACK;
    int st = 0;
    pid_t w;
    while ((w = waitpid(r->pid, &st, WNOHANG)) == 0 && tu_now() < end)
        usleep(20000);
    if (w == 0) {
        kill(cam, SIGKILL);
        reap(&r->pid);
        run_read(r);
        ck_abort_msg("%s: camera did not end within %.0f s of SIGINT:\n%s", r->name, 60 * SLACK,
                     tail(r->text));
    }
    r->pid = 0;
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    run_read(r);
    if (getenv("FP_LIVE_VERBOSE"))
        fprintf(stderr, "---- %s (exit %d):\n%s", r->name, r->status, r->text);
    unlink(r->log);
}

/* The verdict word after `prefix` in the output ("PASS", "FAIL",
 * "INCONCLUSIVE"), its slope in *slope; "" when the line is missing. */
static const char *verdict_of(const run *r, const char *prefix, double *slope)
{
    static char word[4][16];
    static int next;
    char *w = word[next++ % 4];
    w[0] = '\0';
    const char *p = strstr(r->text, prefix);
    if (p && sscanf(p + strlen(prefix), "%15s", w) == 1) {
        const char *s = strstr(p, "slope=");
        if (slope && s)
            *slope = atof(s + 6);
    }
    return w;
}

START_TEST(camera_verdict_healthy_and_planted)
{
    /* Sanitizer runtimes: no leak report at exit (the planted leak is on
     * purpose), no fake stack, no quarantine (global or per thread) and no
     * release of free memory to the system: each of them moves RssAnon for
     * its own reasons (measured: ~500 B/frame of growth with the
     * per-thread quarantine and periodic release left on). */
    if (UNDER_SANITIZER) {
        const char *old = getenv("ASAN_OPTIONS");
        char opts[512];
        snprintf(opts, sizeof opts,
                 "%s%sdetect_leaks=0:detect_stack_use_after_return=0:quarantine_size_mb=0:"
                 "thread_local_quarantine_size_kb=0:allocator_release_to_os_interval_ms=-1",
                 old ? old : "", old && *old ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
    }
    int port_ok = free_port(SOCK_STREAM), port_leak = free_port(SOCK_STREAM);
    pid_t srv_ok = source(port_ok), srv_leak = source(port_leak);
    char url_ok[64], url_leak[64];
    snprintf(url_ok, sizeof url_ok, "tcp://127.0.0.1:%d", port_ok);
    snprintf(url_leak, sizeof url_leak, "tcp://127.0.0.1:%d", port_leak);
    run ok, leak;
    /* camera starts before or after its source is up: it connects when it can */
    run_start(&ok, "healthy", url_ok, NULL);
    run_start(&leak, "planted", url_leak, "256");

    /* Until both have FRAMES frames: FRAMES / FPS seconds, bounded. */
    double t0 = tu_now(), end = t0 + (2.0 * FRAMES / FPS + 30) * SLACK;
    unsigned long f_ok = 0, f_leak = 0;
    int stopped_ok = 0, stopped_leak = 0;
    while ((!stopped_ok || !stopped_leak) && tu_now() < end) {
        if (!stopped_ok && (f_ok = run_frames(&ok)) >= FRAMES) {
            run_stop(&ok);
            stopped_ok = 1;
        }
        if (!stopped_leak && (f_leak = run_frames(&leak)) >= FRAMES) {
            run_stop(&leak);
            stopped_leak = 1;
        }
        usleep(100000);
    }
    reap(&srv_ok);
    reap(&srv_leak);
    ck_assert_msg(stopped_ok && stopped_leak,
                  "fewer than %d frames within %.0f s (healthy %lu, planted %lu):\n%s\n%s",
                  FRAMES, end - t0, f_ok, f_leak, tail(ok.text), tail(leak.text));
    printf("runs took %.1f s\n", tu_now() - t0);

    double s_ok = 0, s_leak = 0, o_ok = 0, o_leak = 0;
    const char *v_ok = verdict_of(&ok, "memory per frame: ", &s_ok);
    const char *v_leak = verdict_of(&leak, "memory per frame: ", &s_leak);
    printf("camera, healthy: %s slope %.1f B/frame; planted 256 B/frame: %s slope %.1f B/frame\n",
           v_ok, s_ok, v_leak, s_leak);

    /* A correct loop is never called leaking. */
    ck_assert_msg(*v_ok && strcmp(v_ok, "FAIL"), "healthy run: verdict '%s':\n%s", v_ok, tail(ok.text));
    /* The planted leak fails, on RssAnon, with at least its size per frame
     * (a malloc(256) takes 272 bytes of heap, and each leaked block pins the
     * heap top above the frame's own short-lived blocks: measured 330-600
     * B/frame) and less than a page per frame. */
    ck_assert_msg(!strcmp(v_leak, "FAIL"), "planted leak: verdict '%s':\n%s", v_leak, tail(leak.text));
    ck_assert_msg(strstr(leak.text, "RssAnon grows"), "planted leak fails, but not on RssAnon:\n%s",
                  tail(leak.text));
    ck_assert_msg(s_leak > 200 && s_leak < 4096,
                  "planted leak: slope %.1f B/frame:\n%s", s_leak, tail(leak.text));

    if (!ok.observed) {
        printf("note: %s is not built: no outside observer\n", RSS_WATCH);
        ck_assert_int_eq(ok.status, strcmp(v_ok, "PASS") ? 4 : 0);
        ck_assert_int_eq(leak.status, 3);
    } else {
        /* rss_watch exits with its own verdict and reports camera's status. */
        const char *w_ok = verdict_of(&ok, "rss_watch: ", &o_ok);
        const char *w_leak = verdict_of(&leak, "rss_watch: ", &o_leak);
        printf("rss_watch, healthy: %s slope %.1f B/frame; planted: %s slope %.1f B/frame\n",
               w_ok, o_ok, w_leak, o_leak);
        ck_assert_msg(strstr(ok.text, "the command exited with status ") &&
                          strstr(leak.text, "the command exited with status 3"),
                      "camera's exit status:\n%s\n%s", tail(ok.text), tail(leak.text));
        ck_assert_msg(!strcmp(w_ok, v_ok), "healthy: camera says %s, rss_watch %s:\n%s", v_ok,
                      w_ok, tail(ok.text));
        ck_assert_msg(!strcmp(w_leak, "FAIL") && leak.status == 3,
                      "planted: rss_watch says %s (exit %d):\n%s", w_leak, leak.status,
                      tail(leak.text));
        ck_assert_msg(o_leak > 200 && o_leak < 4096,
                      "planted leak seen from outside: slope %.1f B/frame:\n%s", o_leak,
                      tail(leak.text));
    }
    free(ok.text);
    free(leak.text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("camera_verdict");
    TCase *tc = tcase_create("live");
    tcase_set_timeout(tc, 400);
    tcase_add_test(tc, camera_verdict_healthy_and_planted);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
