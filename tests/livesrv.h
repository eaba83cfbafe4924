/* Loopback servers for the live-source tests (test_live, test_camera): ffmpeg
 * serving MPEG-TS over tcp, http and udp, and a GStreamer RTSP server
 * (tests/rtsp_server.py). Each server is a child process that dies with the
 * test thread that started it (PR_SET_PDEATHSIG) and stops by itself after
 * 60 s. A missing server program fails the test with a message naming the
 * Debian package (scripts/setup installs them). FP_LIVE_VERBOSE=1 shows the
 * servers' stderr. A program using these links tests/zoo.c too: this file
 * defines its zoo_fail (the test fails). */
#ifndef FP_LIVESRV_H
#define FP_LIVESRV_H

#include <framepool.h>

#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* A free port on 127.0.0.1 for SOCK_STREAM or SOCK_DGRAM (bound, then released). */
int free_port(int type);

/* Writes "SCHEME://127.0.0.1:PORT" and then `path` ("" for none) to url, on a
 * free TCP port; returns the port. */
int local_url(char *url, size_t cap, const char *scheme, const char *path);

/* Starts argv (searched in PATH) with stdin and stdout on /dev/null (stderr
 * too, unless FP_LIVE_VERBOSE is set); it gets SIGKILL when the calling
 * thread ends. Returns its PID. */
pid_t spawn(char *const argv[]);

/* The same with stdout and stderr appended to the file `out` (created). */
pid_t spawn_logged(char *const argv[], const char *out);

/* Kills *p (SIGCONT first, in case it is stopped, then SIGKILL), waits for it
 * and sets *p to 0. Nothing when *p <= 0. */
void reap(pid_t *p);

/* Whether the shell command `cmd` succeeds (its output discarded). */
int have_program(const char *cmd);

/* Waits until something listens on TCP port `port` of 127.0.0.1, read from
 * /proc/net/tcp so that no client is spent on a server that takes one; fails
 * the test after `seconds` x tu_slack(). */
void wait_listening(int port, double seconds);

/* ffmpeg serving a 25 fps test pattern (MPEG-2 in MPEG-TS, a keyframe every
 * 12 frames; the zoo's publisher, tests/zoo.h) at `out`, for at most 60 s. `src` is a lavfi source ("testsrc2", "color=c=red"), `size`
 * "WxH", `bsf` an optional bitstream filter; `listen_http` adds -listen 1
 * (an HTTP server for one client). */
pid_t ffmpeg_server(const char *src, const char *size, const char *bsf, int listen_http,
                    const char *out);

/* ffmpeg_server at tcp://127.0.0.1:port?listen=1: one client per run. */
pid_t tcp_server(int port, const char *src, const char *size, const char *bsf);

/* tests/rtsp_server.py at rtsp://127.0.0.1:port/test (H.264, 25 fps, frames
 * of `size`), RTP over UDP or TCP as the client asks, for at most 60 s. */
pid_t rtsp_server(int port, const char *size);

/* An fp_live_event recorder for the live tests: set live.on_event to
 * lv_events_record and live.user to an lv_events made by lv_events_init.
 * The first LV_MAX_EV events are kept whole (count[] counts them all);
 * FP_LIVE_VERBOSE=1 (or verbose) prints each one. */
#define LV_MAX_EV 512
typedef struct lv_events {
    pthread_mutex_t mu;
    int n;
    int type[LV_MAX_EV], attempt[LV_MAX_EV], error[LV_MAX_EV], w[LV_MAX_EV], h[LV_MAX_EV];
    double delay[LV_MAX_EV], first_frame[LV_MAX_EV];
    char msg[LV_MAX_EV][300];
    int count[8];
    int verbose;
} lv_events;

void lv_events_init(lv_events *e);
/* The on_event callback (fails the test if an event has no message). */
void lv_events_record(const fp_live_event *ev, void *user);
/* How many events of `type` came so far. */
int lv_events_count(lv_events *e, int type);
/* Waits until `type` came at least `n` times, up to `seconds` x tu_slack();
 * returns whether it did. */
int lv_events_wait(lv_events *e, int type, int n, double seconds);
/* The index of the last kept event of `type`, or -1. */
int lv_events_last(lv_events *e, int type);
/* Every kept event, one a line, for failure messages (a static buffer). */
const char *lv_events_text(lv_events *e);
/* Fails the test if any kept event's message contains `secret`. */
void lv_events_assert_no(lv_events *e, const char *secret);

/* Adds test `t` to TCase `tc` unless FP_LIVE_ONLY is set and not part of
 * its name (FP_LIVE_ONLY=name runs the tests whose name contains it). */
#define LIVE_ADD(tc, t)                                                                         \
    do {                                                                                        \
        const char *only_ = getenv("FP_LIVE_ONLY");                                             \
        if (!only_ || strstr(#t, only_))                                                        \
            tcase_add_test(tc, t);                                                              \
    } while (0)

#endif
