/* The live reader against the server zoo (tests/zoo.h): GStreamer RTSP (UDP,
 * TCP, long GOP, basic and digest auth, session timeout), nginx-rtmp, HLS
 * served by nginx, SRT through srt-live-transmit, MJPEG over HTTP — each with
 * its faults: the stream stops and returns, the server restarts, the server
 * process is stopped (SIGSTOP) and continued, the frame size changes.
 * Asserts: frames flow again after every fault, a fraction of the frames sent
 * while the server was up is delivered, a wrong password gives "authentication
 * failed" with the URL redacted and a backoff, not a storm.
 * FP_LIVE_ONLY=name runs the tests whose name contains it (ctest runs the
 * families as test_zoo_rtsp, test_zoo_nginx, test_zoo_misc, in parallel);
 * FP_LIVE_VERBOSE=1 prints the events. */
#define _GNU_SOURCE
#include "livesrv.h"
#include "testutil.h"
#include "zoo.h"

#include <framepool/reader.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SAN UNDER_SANITIZER
#define SLACK (SAN ? 3.0 : 1.0)
/* a fraction of the frames sent while up that must arrive (a busy machine
 * or a sanitizer decodes slower: the bound is for a working reader, not a
 * benchmark; bench/live_matrix measures) */
#define FRACTION (SAN ? 0.25 : 0.6)
#define PASSWORD "Zq9-SECRET"

/* ---- a live reader and its events ------------------------------------------------------------ */

#define MAX_EV 256
typedef struct run {
    pthread_mutex_t mu;
    int nev;
    int type[MAX_EV], error[MAX_EV];
    double delay[MAX_EV], when[MAX_EV];
    char msg[MAX_EV][320];
    int count[8];
    fp_reader *r;
    unsigned long long frames;
    int w, h;
    double t_open, t_first;
} run;

static void on_event(const fp_live_event *ev, void *user)
{
    run *u = user;
    pthread_mutex_lock(&u->mu);
    if (u->nev < MAX_EV) {
        int i = u->nev++;
        u->type[i] = ev->type;
        u->error[i] = ev->error;
        u->delay[i] = ev->delay;
        u->when[i] = tu_now();
        snprintf(u->msg[i], sizeof u->msg[i], "%s", ev->message);
    }
    if (ev->type > 0 && ev->type < 8)
        u->count[ev->type]++;
    pthread_mutex_unlock(&u->mu);
    if (getenv("FP_LIVE_VERBOSE"))
        fprintf(stderr, "[%.2f] event %d: %s\n", tu_now(), ev->type, ev->message);
}

static int count(run *u, int type)
{
    pthread_mutex_lock(&u->mu);
    int n = u->count[type];
    pthread_mutex_unlock(&u->mu);
    return n;
}

/* The events so far, for failure messages. */
static const char *events(run *u)
{
    static char buf[4096];
    size_t n = 0;
    buf[0] = 0;
    pthread_mutex_lock(&u->mu);
    for (int i = u->nev > 12 ? u->nev - 12 : 0; i < u->nev && n < sizeof buf - 1; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "\n  [%+.2f] %d %s", u->when[i] - u->t_open,
                              u->type[i], u->msg[i]);
    pthread_mutex_unlock(&u->mu);
    if (n >= sizeof buf)
        buf[sizeof buf - 1] = 0;
    return buf;
}

static void run_open(run *u, const char *url, const char *av_options, fp_live_mode mode,
                     double stall)
{
    memset(u, 0, sizeof *u);
    pthread_mutex_init(&u->mu, NULL);
    fp_reader_options o = {0};
    o.live.mode = mode;
    o.live.stall = stall; /* 0: the library's default */
    o.live.on_event = on_event;
    o.live.user = u;
    o.av_options = av_options;
    o.timeout_us = 200000; /* per fp_reader_next: the test keeps its own deadlines */
    u->t_open = tu_now();
    ck_assert_msg(fp_reader_open(url, &o, &u->r) == 0, "%s", fp_errmsg());
}

static void run_close(run *u)
{
    fp_reader_close(&u->r);
    pthread_mutex_destroy(&u->mu);
}

/* Takes frames for up to `seconds` or until stop(u, arg) says so; returns
 * whether it did. The reader must not give up. */
static int pump(run *u, double seconds, int (*stop)(run *, const void *), const void *arg)
{
    double end = tu_now() + seconds;
    fp_image *img = NULL;
    while (!(stop && stop(u, arg)) && tu_now() < end) {
        int rc = fp_reader_next(u->r, &img);
        if (rc > 0) {
            if (u->frames++ == 0)
                u->t_first = tu_now();
            u->w = img->width;
            u->h = img->height;
        } else if (rc == 0) {
            ck_abort_msg("the reader gave up: %s%s", fp_reader_errmsg(u->r), events(u));
        } else {
            ck_assert_msg(rc == FP_ETIMEDOUT, "fp_reader_next: %s", fp_reader_errmsg(u->r));
        }
    }
    fp_unref(&img);
    return stop ? stop(u, arg) : 1;
}

static int frames_reach(run *u, const void *arg)
{
    return u->frames >= *(const unsigned long long *)arg;
}

static int size_is(run *u, const void *arg)
{
    const int *wh = arg;
    return u->w == wh[0] && u->h == wh[1];
}

/* Waits for `more` frames; fails naming `what`. */
static void expect_frames(run *u, unsigned long long more, double seconds, const char *what)
{
    unsigned long long want = u->frames + more;
    ck_assert_msg(pump(u, seconds * SLACK, frames_reach, &want),
                  "%s: %llu frames, wanted %llu within %.0f s%s", what, u->frames, want,
                  seconds * SLACK, events(u));
}

/* Frames over `seconds` of steady streaming against what was sent. */
static void expect_rate(run *u, int fps, double seconds, double fraction, const char *what)
{
    unsigned long long f0 = u->frames;
    double t0 = tu_now();
    pump(u, seconds, NULL, NULL);
    double sent = fps * (tu_now() - t0);
    double got = (double)(u->frames - f0);
    ck_assert_msg(got >= fraction * sent, "%s: %.0f frames of %.0f sent (%.0f%%, want >= %.0f%%)%s",
                  what, got, sent, 100 * got / sent, 100 * fraction, events(u));
}

/* ---- faults ------------------------------------------------------------------------------- */

enum {
    F_FEED = 1,    /* the stream stops for a while and returns */
    F_RESTART = 2, /* the server restarts */
    F_PAUSE = 4,   /* the server process is stopped, then continued */
    F_SIZE = 8,    /* the frame size changes */
};

/* Start, first frames, a steady rate, then every fault in `faults`; frames
 * must flow again after each. */
static void zoo_faults(zoo_kind kind, const char *av_options, unsigned faults)
{
    zoo z;
    zoo_init(&z, kind);
    zoo_start(&z);
    run u;
    run_open(&u, z.url, av_options ? av_options : z.av_options, FP_LIVE_ALL, 0);
    const char *name = zoo_name(kind);
    char what[96];

    snprintf(what, sizeof what, "%s: first frames", name);
    expect_frames(&u, 3, 30, what);
    fp_reader_stats st;
    ck_assert_int_eq(fp_reader_get_stats(u.r, &st), 0);
    ck_assert_msg(st.first_frame > 0 && st.first_frame < 30 * SLACK, "%s: stats.first_frame %g",
                  name, st.first_frame);
    /* kept in the output: the time to first frame next to the GOP */
    fprintf(stderr, "zoo %s: first frame %.2f s after the open began (GOP %.1f s)\n", name,
            st.first_frame, z.gop);
    snprintf(what, sizeof what, "%s: steady", name);
    expect_rate(&u, z.fps, 4, FRACTION, what);
    int need = z.fps * 2 + 8; /* past what ALL mode had queued */

    if (faults & F_FEED) {
        zoo_feed_stop(&z);
        pump(&u, 3, NULL, NULL);
        zoo_feed_start(&z);
        snprintf(what, sizeof what, "%s: after the stream stopped for 3 s and returned", name);
        expect_frames(&u, (unsigned long long)need, 40, what);
    }
    if (faults & F_RESTART) {
        int c0 = count(&u, FP_LIVE_CONNECTED);
        zoo_server_crash(&z);
        snprintf(what, sizeof what, "%s: after a server crash (SIGKILL) and restart", name);
        expect_frames(&u, (unsigned long long)need, 40, what);
        /* HLS opens every segment anew: a quick restart needs no reconnect */
        ck_assert_msg(kind == ZOO_HLS || count(&u, FP_LIVE_CONNECTED) > c0,
                      "%s: no new connection%s", what, events(&u));
    }
    if (faults & F_PAUSE) {
        zoo_server_pause(&z);
        pump(&u, 3, NULL, NULL);
        zoo_server_resume(&z);
        snprintf(what, sizeof what, "%s: after SIGSTOP for 3 s and SIGCONT of the server", name);
        expect_frames(&u, (unsigned long long)need, 40, what);
    }
    if (faults & F_SIZE) {
        int wh[2] = {480, 272};
        zoo_set_size(&z, "480x272");
        snprintf(what, sizeof what, "%s: frames of the new size 480x272", name);
        ck_assert_msg(pump(&u, 40 * SLACK, size_is, wh), "%s: still %dx%d%s", what, u.w, u.h,
                      events(&u));
        expect_frames(&u, (unsigned long long)z.fps, 20, what);
    }
    ck_assert_int_eq(count(&u, FP_LIVE_GAVE_UP), 0);
    run_close(&u);
    zoo_stop(&z);
}

/* ---- RTSP ------------------------------------------------------------------------------------ */

START_TEST(rtsp_udp_faults)
{
    zoo_faults(ZOO_RTSP, "rtsp_transport=udp", F_RESTART | F_PAUSE | F_SIZE);
}
END_TEST

START_TEST(rtsp_tcp_faults)
{
    zoo_faults(ZOO_RTSP, "rtsp_transport=tcp", F_RESTART | F_PAUSE);
}
END_TEST

/* A session timeout shorter than the run: the reader keeps the session
 * alive (FFmpeg sends keep-alives at half the server's timeout), so one
 * connection delivers all along. */
static void session_timeout(const char *transport)
{
    zoo z;
    zoo_init(&z, ZOO_RTSP);
    z.session_timeout = 4;
    zoo_start(&z);
    run u;
    run_open(&u, z.url, transport, FP_LIVE_ALL, 0);
    expect_frames(&u, 3, 30, "first frames");
    expect_rate(&u, z.fps, 11, FRACTION, "over 11 s with a 4 s session timeout");
    ck_assert_msg(count(&u, FP_LIVE_CONNECTED) == 1 && count(&u, FP_LIVE_DISCONNECTED) == 0,
                  "the session was dropped%s", events(&u));
    run_close(&u);
    zoo_stop(&z);
}

START_TEST(rtsp_session_timeout_udp)
{
    session_timeout("rtsp_transport=udp");
}
END_TEST

START_TEST(rtsp_session_timeout_tcp)
{
    session_timeout("rtsp_transport=tcp");
}
END_TEST

/* Right password: frames. Wrong one: every try ends "authentication failed",
 * the URL redacted, the password nowhere, and the tries back off. */
static void auth(const char *method)
{
    zoo z;
    zoo_init(&z, ZOO_RTSP);
    z.auth = method;
    z.user = "admin:" PASSWORD;
    zoo_start(&z);
    char url[300];
    zoo_url_with(&z, "admin:" PASSWORD, url, sizeof url);
    run u;
    run_open(&u, url, "rtsp_transport=tcp", FP_LIVE_LATEST, 0);
    expect_frames(&u, 10, 30, "the right password");
    ck_assert_msg(!strstr(fp_reader_errmsg(u.r), PASSWORD), "%s", fp_reader_errmsg(u.r));
    run_close(&u);

    zoo_url_with(&z, "admin:wrong-" PASSWORD, url, sizeof url);
    run_open(&u, url, "rtsp_transport=tcp", FP_LIVE_LATEST, 0);
    double t0 = tu_now();
    int tries = 0;
    for (int i = 0; i < 3000 && count(&u, FP_LIVE_RECONNECTING) < 4; i++)
        pump(&u, 0.01, NULL, NULL);
    ck_assert_msg(count(&u, FP_LIVE_RECONNECTING) >= 4, "no 4 tries%s", events(&u));
    double elapsed = tu_now() - t0;
    ck_assert_int_eq(u.frames, 0);
    /* copied out: an assertion must not end the test with the event lock held */
    static run seen;
    pthread_mutex_lock(&u.mu);
    seen = u;
    pthread_mutex_unlock(&u.mu);
    double last_delay = 0;
    for (int i = 0; i < seen.nev; i++) {
        ck_assert_msg(!strstr(seen.msg[i], PASSWORD) && !strstr(seen.msg[i], "admin:"),
                      "an event shows the password: %s", seen.msg[i]);
        if (seen.type[i] != FP_LIVE_RECONNECTING)
            continue;
        ck_assert_msg(strstr(seen.msg[i], "authentication failed"), "no clear reason: %s",
                      seen.msg[i]);
        ck_assert_msg(strstr(seen.msg[i], "rtsp://***@127.0.0.1:"), "URL not shown redacted: %s",
                      seen.msg[i]);
        /* jittered exponential backoff: each wait a good part of a second, growing */
        ck_assert_msg(seen.delay[i] >= 0.2 && seen.delay[i] >= 0.6 * last_delay,
                      "backoff: wait %.2f s after %.2f s%s", seen.delay[i], last_delay,
                      events(&u));
        last_delay = seen.delay[i];
        tries++;
    }
    /* 4 tries took at least the sum of the first waits: not a storm */
    ck_assert_msg(elapsed >= 1.5, "4 tries in %.2f s: a storm%s", elapsed, events(&u));
    ck_assert_int_ge(tries, 4);
    run_close(&u);
    zoo_stop(&z);
}

START_TEST(rtsp_auth_basic)
{
    auth("basic");
}
END_TEST

START_TEST(rtsp_auth_digest)
{
    auth("digest");
}
END_TEST

/* ---- nginx: RTMP and HLS --------------------------------------------------------------------- */

START_TEST(nginx_rtmp_faults)
{
    zoo_faults(ZOO_RTMP, NULL, F_FEED | F_RESTART | F_PAUSE | F_SIZE);
}
END_TEST

START_TEST(nginx_hls_faults)
{
    zoo_faults(ZOO_HLS, NULL, F_FEED | F_RESTART | F_PAUSE | F_SIZE);
}
END_TEST

/* ---- SRT, MJPEG -------------------------------------------------------------------------------- */

START_TEST(misc_srt_faults)
{
    zoo_faults(ZOO_SRT, NULL, F_FEED | F_RESTART | F_PAUSE | F_SIZE);
}
END_TEST

START_TEST(misc_mjpeg_faults)
{
    zoo_faults(ZOO_MJPEG, NULL, F_RESTART | F_PAUSE | F_SIZE);
}
END_TEST

/* ---- a stall limit shorter than the open ---------------------------------------------------- */

/* The first frame may come long after the connection (a long GOP, an FLV
 * probe): that must not count against a short stall limit. Each case: one
 * connection, the first frame, then frames all along at `fraction` of the
 * rate sent. */
typedef struct steady_case {
    const char *name; /* test name (FP_LIVE_ONLY matches it) */
    zoo_kind kind;
    int fps;          /* 0: the zoo's */
    double gop;       /* 0: the zoo's */
    const char *av_options;
    fp_live_mode mode;
    double stall;
    double fraction;
    const char *what;
} steady_case;

static const steady_case steady_cases[] = {
    /* an IP camera's 5 s GOP at 10 fps with a 2 s stall limit (reasonable at
     * 10 fps): the first keyframe comes up to 5 s after the connection */
    {"rtsp_long_gop_short_stall", ZOO_RTSP, 10, 5, "rtsp_transport=tcp", FP_LIVE_ALL, 2,
     FRACTION, "after the first frame, 5 s GOP, 2 s stall"},
    /* what samples/camera does by default (stall 5 s) against nginx-rtmp:
     * the FLV probe takes about 5 s */
    {"nginx_rtmp_stall5", ZOO_RTMP, 0, 0, NULL, FP_LIVE_LATEST, 5, 0.9 * (SAN ? 0.5 : 1.0),
     "RTMP after the first frame, stall 5 s"},
};

START_TEST(steady)
{
    const steady_case *c = &steady_cases[_i];
    zoo z;
    zoo_init(&z, c->kind);
    if (c->fps)
        z.fps = c->fps;
    if (c->gop > 0)
        z.gop = c->gop;
    zoo_start(&z);
    run u;
    run_open(&u, z.url, c->av_options, c->mode, c->stall);
    char what[160];
    snprintf(what, sizeof what, "%s: first frame", c->name);
    expect_frames(&u, 1, 30, what);
    snprintf(what, sizeof what, "%s: %s", c->name, c->what);
    expect_rate(&u, z.fps, 8, c->fraction, what);
    ck_assert_msg(count(&u, FP_LIVE_CONNECTED) == 1, "%s: reconnected%s", c->name, events(&u));
    run_close(&u);
    zoo_stop(&z);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("zoo");
    TCase *tc = tcase_create("zoo");
    tcase_set_timeout(tc, 240 * SLACK);
    LIVE_ADD(tc, rtsp_udp_faults);
    LIVE_ADD(tc, rtsp_tcp_faults);
    LIVE_ADD(tc, rtsp_session_timeout_udp);
    LIVE_ADD(tc, rtsp_session_timeout_tcp);
    LIVE_ADD(tc, rtsp_auth_basic);
    LIVE_ADD(tc, rtsp_auth_digest);
    LIVE_ADD(tc, nginx_rtmp_faults);
    LIVE_ADD(tc, nginx_hls_faults);
    LIVE_ADD(tc, misc_srt_faults);
    LIVE_ADD(tc, misc_mjpeg_faults);
    const char *only = getenv("FP_LIVE_ONLY");
    for (int i = 0; i < (int)(sizeof steady_cases / sizeof steady_cases[0]); i++)
        if (!only || strstr(steady_cases[i].name, only))
            tcase_add_loop_test(tc, steady, i, i + 1);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
