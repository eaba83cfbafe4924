/* Loopback servers for the live-source tests: see livesrv.h. */
#define _GNU_SOURCE
#include "livesrv.h"

#include "testutil.h"
#include "zoo.h"

#include <stdarg.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The zoo's helpers (tests/zoo.c) fail the test that called them. */
void zoo_fail(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ck_abort_msg("%s", buf);
    abort(); /* not reached */
}

int free_port(int type)
{
    int s = socket(AF_INET, type, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &al);
    close(s);
    return ntohs(a.sin_port);
}

int local_url(char *url, size_t cap, const char *scheme, const char *path)
{
    int port = free_port(SOCK_STREAM);
    int n = snprintf(url, cap, "%s://127.0.0.1:%d%s", scheme, port, path);
    ck_assert(n > 0 && (size_t)n < cap);
    return port;
}

pid_t spawn_logged(char *const argv[], const char *out)
{
    return zoo_spawn(argv, out);
}

pid_t spawn(char *const argv[])
{
    return spawn_logged(argv, NULL);
}

void reap(pid_t *p)
{
    if (*p > 0) {
        kill(*p, SIGCONT);
        kill(*p, SIGKILL);
        waitpid(*p, NULL, 0);
    }
    *p = 0;
}

int have_program(const char *cmd)
{
    return zoo_have_program(cmd);
}

pid_t ffmpeg_server(const char *src, const char *size, const char *bsf, int listen_http,
                           const char *out)
{
    ck_assert_msg(have_program("ffmpeg -version"),
                  "this test needs the ffmpeg program (Debian package ffmpeg; scripts/setup)");
    zoo_publisher p = {.src = src, .size = size, .fps = 25, .seconds = "60",
                       .codec = "mpeg2video", .gop = 12 / 25.0, .bsf = bsf, .fmt = "mpegts",
                       .listen = listen_http, .out = out};
    zoo_argv *a = calloc(1, sizeof *a); /* large: not on a test thread's stack */
    ck_assert_ptr_nonnull(a);
    zoo_publisher_argv(a, &p);
    pid_t pid = spawn((char *const *)a->v);
    free(a);
    return pid;
}

pid_t tcp_server(int port, const char *src, const char *size, const char *bsf)
{
    char out[96];
    snprintf(out, sizeof out, "tcp://127.0.0.1:%d?listen=1", port);
    return ffmpeg_server(src, size, bsf, 0, out);
}

pid_t rtsp_server(int port, const char *size)
{
    ck_assert_msg(have_program("/usr/bin/python3 -c 'import gi, sys; gi.require_version(\"Gst\", "
                               "\"1.0\"); gi.require_version(\"GstRtspServer\", \"1.0\"); "
                               "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
                               "sys.exit(0 if all(Gst.ElementFactory.find(e) for e in "
                               "(\"videotestsrc\", \"x264enc\", \"rtph264pay\")) else 1)'"),
                  "this test needs python3-gi, gir1.2-gst-rtsp-server-1.0 and "
                  "gstreamer1.0-plugins-{base,good,ugly} (videotestsrc, x264enc, rtph264pay; "
                  "scripts/setup installs them)");
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    const char *argv[] = {"/usr/bin/python3", FP_SOURCE_DIR "/tests/rtsp_server.py", p, size,
                          "60", NULL};
    return spawn((char *const *)argv);
}

/* ---- the event recorder ------------------------------------------------------------------- */

void lv_events_init(lv_events *e)
{
    memset(e, 0, sizeof *e);
    pthread_mutex_init(&e->mu, NULL);
}

void lv_events_record(const fp_live_event *ev, void *user)
{
    lv_events *e = user;
    ck_assert_ptr_nonnull(ev->message);
    pthread_mutex_lock(&e->mu);
    if (e->n < LV_MAX_EV) {
        int i = e->n++;
        e->type[i] = ev->type;
        e->attempt[i] = ev->attempt;
        e->error[i] = ev->error;
        e->delay[i] = ev->delay;
        e->first_frame[i] = ev->first_frame;
        e->w[i] = ev->width;
        e->h[i] = ev->height;
        snprintf(e->msg[i], sizeof e->msg[i], "%s", ev->message);
    }
    if (ev->type > 0 && ev->type < 8)
        e->count[ev->type]++;
    pthread_mutex_unlock(&e->mu);
    if (e->verbose || getenv("FP_LIVE_VERBOSE"))
        fprintf(stderr, "event %d attempt %d delay %.2f err %d: %s\n", ev->type, ev->attempt,
                ev->delay, ev->error, ev->message);
}

int lv_events_count(lv_events *e, int type)
{
    pthread_mutex_lock(&e->mu);
    int c = e->count[type];
    pthread_mutex_unlock(&e->mu);
    return c;
}

int lv_events_wait(lv_events *e, int type, int n, double seconds)
{
    double end = tu_now() + seconds * tu_slack();
    while (tu_now() < end) {
        if (lv_events_count(e, type) >= n)
            return 1;
        usleep(10000);
    }
    return lv_events_count(e, type) >= n;
}

int lv_events_last(lv_events *e, int type)
{
    pthread_mutex_lock(&e->mu);
    int k = -1;
    for (int i = 0; i < e->n; i++)
        if (e->type[i] == type)
            k = i;
    pthread_mutex_unlock(&e->mu);
    return k;
}

const char *lv_events_text(lv_events *e)
{
    static char buf[LV_MAX_EV * 100];
    size_t at = 0;
    buf[0] = 0;
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->n && at + 1 < sizeof buf; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "\n  event %d: %.200s", e->type[i],
                               e->msg[i]);
    pthread_mutex_unlock(&e->mu);
    return buf;
}

void lv_events_assert_no(lv_events *e, const char *secret)
{
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->n; i++)
        ck_assert_msg(!strstr(e->msg[i], secret), "event shows credentials: %s", e->msg[i]);
    pthread_mutex_unlock(&e->mu);
}

void wait_listening(int port, double seconds)
{
    double end = tu_now() + seconds * tu_slack();
    do {
        if (zoo_port_in_state(port, 1, ZOO_TCP_LISTEN))
            return;
        usleep(20000);
    } while (tu_now() < end);
    ck_abort_msg("nothing listens on port %d after %.0f s", port, seconds * tu_slack());
}
