/*
 * Live sources (lib/av/live.c) against real servers on 127.0.0.1: ffmpeg
 * serving MPEG-TS over tcp (one client per run, restarted for reconnects),
 * http and udp, and a GStreamer RTSP server (tests/rtsp_server.py) over
 * RTP/UDP and RTP/TCP. Faults: kill -9 and restart, source down at start,
 * SIGSTOP/SIGCONT of the server (a stall with the socket open), the same
 * picture forever, corrupt packets (the noise bitstream filter), a restart at
 * another size, and bad input (refused port, unreachable host, a URL FFmpeg
 * cannot parse, no video stream, garbage from the socket).
 *
 * Every server is started by the test, bounded in time, and killed with the
 * test (PR_SET_PDEATHSIG). A missing server program (ffmpeg, python3-gi,
 * GStreamer's RTSP server) fails the test: scripts/setup installs them.
 */
#define _GNU_SOURCE
#include "livesrv.h"
#include "zoo.h"
#include "testutil.h"

#include <framepool.h>
#include <libavutil/log.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SAN UNDER_SANITIZER
/* time bounds scale with sanitizers and the machine's load (testutil.h) */
#define SLACK tu_slack()

/* ---- events ------------------------------------------------------------------------------ */

static fp_reader_options live_opts(fp_live_mode mode, lv_events *e)
{
    fp_reader_options o = {0};
    o.threads = 1;
    o.live.mode = mode;
    o.live.reconnect_min = 0.1;
    o.live.reconnect_max = 0.4;
    o.live.stall = 2.0 * SLACK;
    o.live.on_event = lv_events_record;
    o.live.user = e;
    return o;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Frame order across everything: time, pts and index only go up. */
typedef struct mono {
    double time;
    int64_t pts, index;
    int n;
} mono;

static void check_frame(mono *m, const fp_image *img)
{
    ck_assert(!isnan(img->time));
    ck_assert_msg(img->wall_time > 0 && fabs(wall_now() - img->wall_time) < 5.0 * SLACK,
                  "wall_time %.3f is not a recent CLOCK_REALTIME time", img->wall_time);
    if (m->n) {
        ck_assert_msg(img->time > m->time, "time went back: %.4f after %.4f", img->time,
                      m->time);
        ck_assert_msg(img->pts > m->pts, "pts went back: %lld after %lld",
                      (long long)img->pts, (long long)m->pts);
        ck_assert_int_gt(img->index, m->index);
    }
    m->time = img->time;
    m->pts = img->pts;
    m->index = img->index;
    m->n++;
}

/* Reads until `n` frames came (each next waits up to 0.5 s), checking order;
 * never accepts the end (0). Returns the frames read within `seconds`. */
static int read_frames(fp_reader *r, mono *m, int n, double seconds, int *w, int *h)
{
    fp_image *img = NULL;
    int got = 0;
    double end = tu_now() + seconds * SLACK;
    while (got < n && tu_now() < end) {
        int rc = fp_reader_next(r, &img);
        ck_assert_msg(rc != 0, "a live reader ended while reconnecting: %s",
                      fp_reader_errmsg(r));
        if (rc == FP_ETIMEDOUT)
            continue;
        ck_assert_msg(rc == 1, "next: %d %s", rc, fp_reader_errmsg(r));
        check_frame(m, img);
        if (w)
            *w = img->width;
        if (h)
            *h = img->height;
        got++;
    }
    fp_unref(&img);
    return got;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static void begin(void)
{
    /* a live reader counts the frames it hands out with fp_on_free: the weak
     * slot table's first chunk, kept for the life of the process, is made here */
    static const fp_type warm_type = {"warm", NULL};
    void *warm = fp_new(&warm_type, 8);
    fp_weak_of(warm);
    fp_unref(&warm);
    tu_alloc_install();
}

static void end(void)
{
    tu_alloc_assert_clean("live reader", 0);
    tu_alloc_uninstall();
}

/* ---- tests ------------------------------------------------------------------------------- */

START_TEST(options_and_api)
{
    begin();
    lv_events e;
    lv_events_init(&e);
    fp_reader *r = NULL;
    fp_reader_options o = live_opts(FP_LIVE_ALL, &e);
    o.live.mode = (fp_live_mode)7;
    ck_assert_int_eq(fp_reader_open("tcp://127.0.0.1:1", &o, &r), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "live.mode"));
    fp_reader_close(&r);
    o = live_opts(FP_LIVE_ALL, &e);
    o.live.queue = 100000;
    ck_assert_int_eq(fp_reader_open("tcp://127.0.0.1:1", &o, &r), FP_EINVAL);
    fp_reader_close(&r);
    o = live_opts(FP_LIVE_ALL, &e);
    o.start = 1;
    ck_assert_int_eq(fp_reader_open("tcp://127.0.0.1:1", &o, &r), FP_EINVAL);
    fp_reader_close(&r);
    o = live_opts(FP_LIVE_LATEST, &e);
    o.live.reconnect_min = 5;
    o.live.reconnect_max = 1;
    ck_assert_int_eq(fp_reader_open("tcp://127.0.0.1:1", &o, &r), FP_EINVAL);
    fp_reader_close(&r);

    /* a live open returns at once even though nothing listens */
    o = live_opts(FP_LIVE_LATEST, &e);
    o.live.reconnect_min = 30;
    o.live.reconnect_max = 30;
    char url[96];
    local_url(url, sizeof url, "tcp", "");
    double t0 = tu_now();
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    ck_assert_double_lt(tu_now() - t0, 0.1 * SLACK);
    fp_reader_info info;
    ck_assert_int_eq(fp_reader_info(r, &info), FP_EAGAIN);
    ck_assert_int_eq(fp_reader_seek(r, 1.0, 0), FP_EINVAL);
    fp_reader_stats st;
    ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
    ck_assert_int_eq(st.connected, 0);
    /* waiting in the 30 s backoff: close ends it at once */
    ck_assert(lv_events_wait(&e, FP_LIVE_RECONNECTING, 1, 2));
    ck_assert_double_ge(e.delay[lv_events_last(&e, FP_LIVE_RECONNECTING)], 15.0);
    t0 = tu_now();
    fp_reader_close(&r);
    ck_assert_double_lt(tu_now() - t0, 0.2 * SLACK);
    end();
}
END_TEST

START_TEST(tcp_down_at_start_kill_restart_resize)
{
    begin();
    int fds0 = count_fds();
    lv_events e;
    lv_events_init(&e);
    char url[96];
    int port = local_url(url, sizeof url, "tcp", "");
    fp_reader_options o = live_opts(FP_LIVE_LATEST, &e);
    o.timeout_us = 300000;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    /* down at start: next times out, never ends; the thread keeps trying */
    fp_image *img = NULL;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(fp_reader_next(r, &img), FP_ETIMEDOUT);
    ck_assert_int_ge(lv_events_count(&e, FP_LIVE_RECONNECTING), 2);
    int k = lv_events_last(&e, FP_LIVE_RECONNECTING);
    ck_assert_int_ge(e.attempt[k], 2);
    ck_assert(e.delay[k] > 0 && e.delay[k] <= 0.4);
    ck_assert_int_eq(e.error[k], FP_EIO);

    mono m = {0};
    pid_t srv = tcp_server(port, "testsrc2", "320x240", NULL);
    int w = 0, h = 0;
    ck_assert_int_eq(read_frames(r, &m, 30, 10, &w, &h), 30);
    ck_assert_int_eq(w, 320);
    ck_assert_int_eq(h, 240);
    ck_assert(lv_events_wait(&e, FP_LIVE_CONNECTED, 1, 1));
    int c = lv_events_last(&e, FP_LIVE_CONNECTED);
    ck_assert_int_eq(e.w[c], 320);
    ck_assert_msg(strstr(e.msg[c], "mpeg2video 320x240, 25 fps, first frame "), "CONNECTED: %s",
                  e.msg[c]);
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    ck_assert_int_eq(st.connected, 1);
    ck_assert_uint_ge(st.reconnects, 2);
    ck_assert_uint_ge(st.delivered, 30);
    fp_reader_info info;
    ck_assert_int_eq(fp_reader_info(r, &info), 0);
    ck_assert_int_eq(info.width, 320);

    /* kill -9, restart at another size: a new pool generation, times go on */
    int cycles = SAN ? 1 : 2;
    for (int cyc = 0; cyc < cycles; cyc++) {
        reap(&srv);
        ck_assert(lv_events_wait(&e, FP_LIVE_DISCONNECTED, cyc + 1, 5));
        /* down: next waits, never ends */
        int rc = fp_reader_next(r, &img);
        ck_assert(rc == FP_ETIMEDOUT || rc == 1);
        if (rc == 1)
            check_frame(&m, img);
        fp_unref(&img);
        const char *size = cyc % 2 == 0 ? "160x120" : "320x240";
        srv = tcp_server(port, "testsrc2", size, NULL);
        ck_assert_int_eq(read_frames(r, &m, 25, 10, &w, &h), 25);
        ck_assert_int_eq(w, cyc % 2 == 0 ? 160 : 320);
        ck_assert_int_eq(lv_events_count(&e, FP_LIVE_SIZE_CHANGED), cyc + 1);
        int s = lv_events_last(&e, FP_LIVE_SIZE_CHANGED);
        ck_assert_int_eq(e.w[s], w);
    }
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.size_changes, (uint64_t)cycles);
    ck_assert_uint_ge(st.connects, (uint64_t)cycles + 1);
    ck_assert_int_eq(lv_events_count(&e, FP_LIVE_CONNECTED), cycles + 1);
    ck_assert_int_eq(lv_events_count(&e, FP_LIVE_GAVE_UP), 0);
    fp_reader_close(&r);
    reap(&srv);
    ck_assert_int_eq(count_fds(), fds0);
    end();
}
END_TEST

START_TEST(stall_with_socket_open)
{
    begin();
    lv_events e;
    lv_events_init(&e);
    char url[96];
    int port = local_url(url, sizeof url, "tcp", "");
    pid_t srv = tcp_server(port, "testsrc2", "320x240", NULL);
    fp_reader_options o = live_opts(FP_LIVE_LATEST, &e);
    o.live.stall = 1.0 * SLACK;
    o.timeout_us = 300000;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    mono m = {0};
    ck_assert_int_eq(read_frames(r, &m, 20, 10, NULL, NULL), 20);
    /* the server freezes with its socket open */
    double t0 = tu_now();
    kill(srv, SIGSTOP);
    ck_assert(lv_events_wait(&e, FP_LIVE_STALLED, 1, 4));
    double dt = tu_now() - t0;
    ck_assert_double_ge(dt, 0.8 * SLACK);
    /* DISCONNECTED follows STALLED on the reader's thread: wait for it */
    ck_assert(lv_events_wait(&e, FP_LIVE_DISCONNECTED, 1, 2));
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.stalls, 1);
    /* it comes back (a new run of the server: the old one dies on its broken socket) */
    kill(srv, SIGCONT);
    reap(&srv);
    srv = tcp_server(port, "testsrc2", "320x240", NULL);
    ck_assert_int_eq(read_frames(r, &m, 20, 10, NULL, NULL), 20);
    fp_reader_close(&r);
    reap(&srv);
    end();
}
END_TEST

START_TEST(same_picture_is_a_stall)
{
    begin();
    for (int repeat_ok = 0; repeat_ok < 2; repeat_ok++) {
        lv_events e;
        lv_events_init(&e);
        char url[96];
        int port = local_url(url, sizeof url, "tcp", "");
        pid_t srv = tcp_server(port, "color=c=red", "320x240", NULL);
        fp_reader_options o = live_opts(FP_LIVE_LATEST, &e);
        o.live.stall = 1.0 * SLACK;
        o.live.repeat_ok = repeat_ok;
        o.timeout_us = 300000;
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
        mono m = {0};
        ck_assert_int_eq(read_frames(r, &m, 10, 10, NULL, NULL), 10);
        if (!repeat_ok) {
            ck_assert(lv_events_wait(&e, FP_LIVE_STALLED, 1, 4));
            int k = lv_events_last(&e, FP_LIVE_STALLED);
            ck_assert_msg(strstr(e.msg[k], "same picture"), "%s", e.msg[k]);
        } else {
            /* frames keep coming: 2.5 stall periods without a stall */
            ck_assert_int_ge(read_frames(r, &m, 1000, 2.5, NULL, NULL), 30);
            ck_assert_int_eq(lv_events_count(&e, FP_LIVE_STALLED), 0);
        }
        fp_reader_close(&r);
        reap(&srv);
    }
    end();
}
END_TEST

START_TEST(corrupt_packets_keep_flowing)
{
    begin();
    lv_events e;
    lv_events_init(&e);
    char url[96];
    int port = local_url(url, sizeof url, "tcp", "");
    pid_t srv = tcp_server(port, "testsrc2", "320x240", "noise=amount=20000");
    fp_reader_options o = live_opts(FP_LIVE_ALL, &e);
    o.timeout_us = 300000;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    mono m = {0};
    /* 5 s at 25 fps: most frames come through, damaged or not */
    int got = read_frames(r, &m, 1000, 5, NULL, NULL);
    ck_assert_int_ge(got, SAN ? 30 : 60); /* of 125: a loaded machine delays some */
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    ck_assert_uint_gt(st.corrupt + st.decode_errors + st.reconnects, 0);
    fp_reader_close(&r);
    reap(&srv);
    end();
}
END_TEST

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

START_TEST(latest_and_all_when_behind)
{
    begin();
    for (int mode = FP_LIVE_ALL; mode <= FP_LIVE_LATEST; mode++) {
        lv_events e;
        lv_events_init(&e);
        char url[96];
        int port = local_url(url, sizeof url, "tcp", "");
        pid_t srv = tcp_server(port, "testsrc2", "320x240", NULL);
        fp_reader_options o = live_opts((fp_live_mode)mode, &e);
        o.live.queue = 4;
        o.timeout_us = 2000000;
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
        mono m = {0};
        ck_assert_int_eq(read_frames(r, &m, 5, 10, NULL, NULL), 5);
        /* a consumer that takes 100 ms per frame (25 fps source) */
        fp_image *img = NULL;
        double max_age = 0, ages[15];
        int gaps = 0;
        for (int i = 0; i < 15; i++) {
            usleep(100000);
            ck_assert_int_eq(fp_reader_next(r, &img), 1);
            int64_t prev = m.index;
            check_frame(&m, img);
            gaps += m.index > prev + 1;
            double age = wall_now() - img->wall_time;
            if (age > max_age)
                max_age = age;
            ages[i] = age;
            if (getenv("FP_LIVE_VERBOSE"))
                fprintf(stderr, "mode %d frame %lld age %.3f\n", mode, (long long)img->index, age);
            fp_reader_stats st;
            fp_reader_get_stats(r, &st);
            ck_assert_uint_le(st.queued, mode == FP_LIVE_LATEST ? 1 : 4);
        }
        fp_unref(&img);
        fp_reader_stats st;
        fp_reader_get_stats(r, &st);
        ck_assert_double_gt(st.age_max, 0);
        double first_age = ages[0], last_age = ages[14];
        qsort(ages, 15, sizeof ages[0], cmp_double);
        if (mode == FP_LIVE_LATEST) { /* the newest frame: under 2 frame intervals (80 ms) */
            ck_assert_uint_gt(st.dropped, 10);
            ck_assert_int_gt(gaps, 5);
            ck_assert_msg(ages[7] < 0.08 * SLACK && max_age < 0.25 * SLACK,
                          "LATEST frame age median %.3f s, max %.3f s", ages[7], max_age);
        } else {
            /* every frame, in order: the backlog waits as packets (live.buffer),
             * visible in packets_queued, and the frames get older */
            ck_assert_uint_eq(st.dropped, 0);
            ck_assert_uint_eq(st.packets_dropped, 0);
            ck_assert_int_eq(gaps, 0);
            ck_assert_uint_gt(st.packets_queued, 0);
            ck_assert_msg(last_age > first_age + 0.5,
                          "ALL: a consumer at 10 fps of a 25 fps source falls behind: "
                          "ages %.3f -> %.3f s", first_age, last_age);
        }
        fp_reader_close(&r);
        reap(&srv);
    }
    end();
}
END_TEST

START_TEST(max_held_bound)
{
    begin();
    lv_events e;
    lv_events_init(&e);
    char url[96];
    int port = local_url(url, sizeof url, "tcp", "");
    pid_t srv = tcp_server(port, "testsrc2", "320x240", NULL);
    fp_reader_options o = live_opts(FP_LIVE_ALL, &e);
    o.max_held = 2;
    o.format = FP_PIX_BGR24;
    o.timeout_us = 8000000; /* the server's start included */
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    fp_image *a = NULL, *b = NULL, *c = NULL;
    ck_assert_int_eq(fp_reader_next(r, &a), 1);
    ck_assert_int_eq(a->format, FP_PIX_BGR24);
    ck_assert_int_eq(fp_reader_next(r, &b), 1);
    /* next waits for the next queued frame itself, then refuses it */
    ck_assert_int_eq(fp_reader_next(r, &c), FP_EHELD);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "max_held"));
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.held, 2);
    fp_unref(&a);
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.held, 1);
    ck_assert_int_eq(fp_reader_next(r, &c), 1);
    ck_assert_int_gt(c->index, b->index);

    /* frames kept across a reconnect still count: the server dies and comes back
     * while the caller holds b and c */
    reap(&srv);
    ck_assert(lv_events_wait(&e, FP_LIVE_DISCONNECTED, 1, 5));
    srv = tcp_server(port, "testsrc2", "160x120", NULL);
    ck_assert(lv_events_wait(&e, FP_LIVE_CONNECTED, 2, 8));
    for (int i = 0; i < 100; i++) { /* a frame of the new connection is queued */
        fp_reader_get_stats(r, &st);
        if (st.queued)
            break;
        usleep(50000);
    }
    ck_assert_uint_ge(st.queued, 1);
    ck_assert_uint_eq(st.held, 2);
    ck_assert_int_eq(fp_reader_next(r, &a), FP_EHELD);
    fp_unref(&b);
    /* frames of the first connection may still be queued before the new ones */
    int64_t last = c->index;
    int got_new = 0;
    for (int i = 0; i < 60 && !got_new; i++) {
        ck_assert_int_eq(fp_reader_next(r, &a), 1);
        ck_assert_int_gt(a->index, last);
        last = a->index;
        got_new = a->width == 160;
        fp_unref(&a);
    }
    ck_assert(got_new);
    /* a frame kept past close still goes back, and the count with it */
    fp_reader_close(&r);
    ck_assert_int_eq(c->width, 320);
    fp_unref(&c);
    reap(&srv);
    end();
}
END_TEST

/* Native frames are the decoder's buffers, which it keeps as reference
 * pictures after the caller let go: releasing one must still count as a
 * release (max_held 1, the frame rebound at every call). */
START_TEST(native_frames_count_released)
{
    begin();
    lv_events e;
    lv_events_init(&e);
    char url[96];
    int port = local_url(url, sizeof url, "tcp", "");
    pid_t srv = tcp_server(port, "testsrc2", "320x240", NULL);
    fp_reader_options o = live_opts(FP_LIVE_ALL, &e);
    o.max_held = 1;
    o.timeout_us = 8000000;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    fp_image *img = NULL;
    int64_t last = -1;
    for (int i = 0; i < 30; i++) {
        int rc = fp_reader_next(r, &img);
        ck_assert_msg(rc == 1, "frame %d: %d (%s)", i, rc, fp_reader_errmsg(r));
        ck_assert_int_eq(img->width, 320);
        ck_assert_int_gt(img->index, last);
        last = img->index;
    }
    ck_assert(img->flags & FP_IMAGE_READONLY); /* the decoder's pixels */
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.held, 1);
    ck_assert_int_eq(fp_reader_next(r, &img), 1); /* rebinding releases first */
    fp_unref(&img);
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.held, 0);
    fp_reader_close(&r);
    reap(&srv);
    end();
}
END_TEST

/* A server that sends garbage to every client. */
typedef struct garbage {
    int lfd, port;
    _Atomic int stop;
    pthread_t th;
    const unsigned char *data; /* served instead of garbage when set */
    size_t len;
} garbage;

static void garbage_start(garbage *g)
{
    g->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(g->lfd, (struct sockaddr *)&a, sizeof a), 0);
    listen(g->lfd, 4);
    socklen_t al = sizeof a;
    getsockname(g->lfd, (struct sockaddr *)&a, &al);
    g->port = ntohs(a.sin_port);
}

static void garbage_stop(garbage *g)
{
    atomic_store(&g->stop, 1);
    shutdown(g->lfd, SHUT_RDWR);
    close(g->lfd);
    pthread_join(g->th, NULL);
}

static void *garbage_main(void *arg)
{
    garbage *g = arg;
    unsigned char buf[4096];
    unsigned x = 12345;
    while (!atomic_load(&g->stop)) {
        int c = accept(g->lfd, NULL, NULL);
        if (c < 0)
            break;
        for (int i = 0; i < 64 && !atomic_load(&g->stop); i++) {
            for (size_t k = 0; k < sizeof buf; k++)
                buf[k] = g->data ? g->data[((size_t)i * sizeof buf + k) % g->len]
                                 : (unsigned char)((x = x * 1103515245u + 12345u) >> 16);
            if (send(c, buf, sizeof buf, MSG_NOSIGNAL) < 0)
                break;
            usleep(2000);
        }
        close(c);
    }
    return NULL;
}

/* A server that accepts one client and never answers it (the connection
 * stays open until the server stops). `accepted` is the event a test waits on. */
typedef struct silent {
    int lfd, port, cfd;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int accepted;
} silent;

static void *silent_main(void *arg)
{
    silent *g = arg;
    int c = accept(g->lfd, NULL, NULL);
    pthread_mutex_lock(&g->mu);
    g->cfd = c;
    g->accepted = c >= 0 ? 1 : -1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

static void silent_start(silent *g)
{
    memset(g, 0, sizeof *g);
    g->cfd = -1;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    garbage l = {0};
    garbage_start(&l); /* only its listening socket */
    g->lfd = l.lfd;
    g->port = l.port;
    ck_assert_int_eq(pthread_create(&g->th, NULL, silent_main, g), 0);
}

static void silent_stop(silent *g)
{
    shutdown(g->lfd, SHUT_RDWR); /* ends an accept still waiting */
    pthread_join(g->th, NULL);
    close(g->lfd);
    if (g->cfd >= 0)
        close(g->cfd);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

typedef struct opener {
    fp_reader *r;
    const char *url;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, rc;
} opener;

static void *opener_main(void *arg)
{
    opener *o = arg;
    int rc = fp_reader_open_url(o->r, o->url, NULL);
    pthread_mutex_lock(&o->mu);
    o->rc = rc;
    o->done = 1;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

/* Waits on `cv` until *flag is non-zero, at most `seconds`. Returns *flag. */
static int wait_flag(pthread_mutex_t *mu, pthread_cond_t *cv, int *flag, double seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)seconds;
    pthread_mutex_lock(mu);
    while (!*flag && pthread_cond_timedwait(cv, mu, &until) == 0)
        ;
    int v = *flag;
    pthread_mutex_unlock(mu);
    return v;
}

/* The interrupt handle exists before the open: an open blocked on a server
 * that accepted the connection and never sends a byte (no timeout_us, so
 * nothing else would end it) returns FP_ECANCELED when another thread calls
 * fp_reader_interrupt on the reader made by fp_reader_new. */
START_TEST(interrupt_blocked_open)
{
    silent srv;
    silent_start(&srv);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", srv.port);
    opener o = {.url = url};
    pthread_mutex_init(&o.mu, NULL);
    pthread_cond_init(&o.cv, NULL);
    ck_assert_int_eq(fp_reader_new(&o.r), 0);
    ck_assert_int_eq(fp_reader_next(o.r, &(fp_image *){NULL}), FP_EINVAL); /* not open yet */
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, opener_main, &o), 0);
    /* the event: the server holds the reader's connection */
    ck_assert_msg(wait_flag(&srv.mu, &srv.cv, &srv.accepted, 30) == 1,
                  "the reader never connected to %s", url);
    pthread_mutex_lock(&o.mu);
    int early = o.done;
    pthread_mutex_unlock(&o.mu);
    ck_assert_msg(!early, "the open returned %d before the interrupt: %s", o.rc,
                  fp_reader_errmsg(o.r));
    fp_reader_interrupt(o.r);
    int done = wait_flag(&o.mu, &o.cv, &o.done, 30);
    if (!done) {
        fp_reader_interrupt(o.r); /* unblock the thread before failing */
        pthread_join(th, NULL);
        ck_abort_msg("fp_reader_open_url was still blocked 30 s after fp_reader_interrupt");
    }
    pthread_join(th, NULL);
    ck_assert_msg(o.rc == FP_ECANCELED, "open returned %d (%s): %s", o.rc, fp_strerror(o.rc),
                  fp_reader_errmsg(o.r));
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(o.r), "interrupted"));
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(o.r), url));
    /* opened once: the reader keeps its message */
    ck_assert_int_eq(fp_reader_open_url(o.r, url, NULL), FP_EINVAL);
    fp_reader_close(&o.r);
    /* an interrupt made before the open ends it at once */
    ck_assert_int_eq(fp_reader_new(&o.r), 0);
    fp_reader_interrupt(o.r);
    ck_assert_int_eq(fp_reader_open_url(o.r, url, NULL), FP_ECANCELED);
    fp_reader_close(&o.r);
    pthread_cond_destroy(&o.cv);
    pthread_mutex_destroy(&o.mu);
    silent_stop(&srv);
}
END_TEST

/* Encodes a short MPEG-TS clip with ffmpeg (`args`: input and codec) into buf. */
static size_t make_clip(const char *args, unsigned char *buf, size_t cap)
{
    char clip[] = "/tmp/fp_live_XXXXXX";
    int cfd = mkstemp(clip);
    ck_assert_int_ge(cfd, 0);
    close(cfd);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -loglevel quiet -y %s -f mpegts %s", args, clip);
    ck_assert_msg(system(cmd) == 0, "needs the ffmpeg program (scripts/setup)");
    FILE *f = fopen(clip, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    unlink(clip);
    ck_assert_uint_gt(n, 0);
    return n;
}

/* Opens `url` with max_reconnects=2 and waits for GAVE_UP; returns the
 * error of the last failed try. */
static int gives_up(const char *url, const char *av_options, const char *expect,
                    const char *secret)
{
    lv_events e;
    lv_events_init(&e);
    fp_reader_options o = live_opts(FP_LIVE_LATEST, &e);
    o.live.max_reconnects = 2;
    o.live.reconnect_min = 0.05;
    o.live.reconnect_max = 0.1;
    o.live.stall = 1.5 * SLACK;
    o.av_options = av_options;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    fp_image *img = NULL;
    double t0 = tu_now();
    int rc = fp_reader_next(r, &img); /* waits (no timeout) for the end */
    ck_assert_int_eq(rc, 0);
    ck_assert_double_lt(tu_now() - t0, 10 * SLACK);
    ck_assert_int_eq(lv_events_count(&e, FP_LIVE_GAVE_UP), 1);
    ck_assert_int_eq(lv_events_count(&e, FP_LIVE_RECONNECTING), 2);
    ck_assert_int_eq(lv_events_count(&e, FP_LIVE_CONNECTED) > 0, 0);
    int k = lv_events_last(&e, FP_LIVE_GAVE_UP);
    ck_assert_int_eq(e.attempt[k], 2);
    int err = e.error[k];
    ck_assert_int_lt(err, 0);
    ck_assert_msg(strstr(e.msg[k], expect), "'%s' lacks '%s'", e.msg[k], expect);
    ck_assert_msg(strstr(fp_reader_errmsg(r), "gave up"), "%s", fp_reader_errmsg(r));
    if (secret) {
        lv_events_assert_no(&e, secret);
        ck_assert(!strstr(fp_reader_errmsg(r), secret));
    }
    /* and it stays at its end */
    ck_assert_int_eq(fp_reader_next(r, &img), 0);
    fp_reader_close(&r);
    return err;
}

START_TEST(bad_input)
{
    begin();
    char url[128];
    int port = free_port(SOCK_STREAM);
    /* refused port, with credentials in the URL */
    snprintf(url, sizeof url, "tcp://alice:s3cret@127.0.0.1:%d", port);
    ck_assert_int_eq(gives_up(url, NULL, "refused", "s3cret"), FP_EIO);
    /* a URL FFmpeg cannot parse */
    ck_assert_int_eq(gives_up("nosuchproto://bob:hunter2@x/y", NULL, "Protocol not found",
                              "hunter2"),
                     FP_EINVAL);
    /* an FFmpeg option nobody knows, on a server that serves a good stream */
    static unsigned char ts[1 << 20];
    size_t tslen = make_clip("-f lavfi -i testsrc2=size=160x120:rate=25 -t 2 -c:v mpeg2video",
                             ts, sizeof ts);
    garbage good = {0};
    good.data = ts;
    good.len = tslen;
    garbage_start(&good);
    pthread_create(&good.th, NULL, garbage_main, &good);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", good.port);
    ck_assert_int_eq(gives_up(url, "no_such_option=1", "no_such_option", NULL), FP_EINVAL);
    garbage_stop(&good);
    /* no video stream: a server of MPEG-TS with one audio stream */
    tslen = make_clip("-f lavfi -i sine=frequency=440 -t 2 -c:a mp2", ts, sizeof ts);
    garbage audio = {0};
    audio.data = ts;
    audio.len = tslen;
    garbage_start(&audio);
    pthread_create(&audio.th, NULL, garbage_main, &audio);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", audio.port);
    int err = gives_up(url, NULL, "video", NULL);
    ck_assert_int_eq(err, FP_ENOSTREAM);
    garbage_stop(&audio);
    /* garbage from the socket */
    garbage g = {0};
    garbage_start(&g);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", g.port);
    pthread_create(&g.th, NULL, garbage_main, &g);
    err = gives_up(url, NULL, "", NULL);
    ck_assert_msg(err == FP_EFORMAT || err == FP_EIO || err == FP_ETIMEDOUT, "err %d", err);
    garbage_stop(&g);
    end();
}
END_TEST

typedef struct intr {
    fp_reader *r;
    double delay;
} intr;

static void *interrupter(void *arg)
{
    intr *it = arg;
    usleep((useconds_t)(it->delay * 1e6));
    fp_reader_interrupt(it->r);
    return NULL;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

START_TEST(waits_cost_nothing_and_end_at_once)
{
    begin();
    lv_events e;
    lv_events_init(&e);
    /* an unreachable host (TEST-NET-1): the connect blocks; close ends it */
    fp_reader_options o = live_opts(FP_LIVE_LATEST, &e);
    o.live.stall = 60;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open("tcp://192.0.2.1:9", &o, &r), 0);
    usleep(300000);
    double c0 = cpu_seconds();
    usleep(1000000);
    double cpu = cpu_seconds() - c0;
    ck_assert_msg(cpu < 0.05 * SLACK, "blocked connect used %.3f s CPU in 1 s", cpu);
    /* a blocked next ends at fp_reader_interrupt */
    intr it = {r, 0.2};
    pthread_t th;
    pthread_create(&th, NULL, interrupter, &it);
    fp_image *img = NULL;
    double t0 = tu_now();
    ck_assert_int_eq(fp_reader_next(r, &img), FP_ECANCELED);
    ck_assert_double_lt(tu_now() - t0, 0.5 * SLACK);
    pthread_join(th, NULL);
    t0 = tu_now();
    fp_reader_close(&r);
    ck_assert_double_lt(tu_now() - t0, 0.5 * SLACK);

    /* a refused port in a 2 s backoff: no CPU while waiting */
    lv_events_init(&e);
    o = live_opts(FP_LIVE_LATEST, &e);
    o.live.reconnect_min = 2;
    o.live.reconnect_max = 2;
    char url[96];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", free_port(SOCK_STREAM));
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    ck_assert(lv_events_wait(&e, FP_LIVE_RECONNECTING, 1, 2));
    c0 = cpu_seconds();
    usleep(800000);
    cpu = cpu_seconds() - c0;
    ck_assert_msg(cpu < 0.02 * SLACK, "backoff used %.3f s CPU in 0.8 s", cpu);
    ck_assert_int_eq(lv_events_count(&e, FP_LIVE_RECONNECTING), 1);
    /* interrupt cuts the backoff short: the next try comes at once */
    fp_reader_interrupt(r);
    ck_assert(lv_events_wait(&e, FP_LIVE_RECONNECTING, 2, 0.5));
    fp_reader_close(&r);
    end();
}
END_TEST

static void http_or_udp(int udp)
{
    begin();
    lv_events e;
    lv_events_init(&e);
    int port = free_port(udp ? SOCK_DGRAM : SOCK_STREAM);
    char url[128], out[128];
    if (udp) {
        snprintf(url, sizeof url, "udp://127.0.0.1:%d", port);
        snprintf(out, sizeof out, "udp://127.0.0.1:%d?pkt_size=1316", port);
    } else {
        snprintf(url, sizeof url, "http://127.0.0.1:%d/x.ts", port);
        snprintf(out, sizeof out, "http://127.0.0.1:%d/x.ts", port);
    }
    fp_reader_options o = live_opts(FP_LIVE_LATEST, &e);
    o.timeout_us = 300000;
    o.live.stall = 1.5 * SLACK;
    if (udp)
        o.av_options = "fifo_size=100000:overrun_nonfatal=1";
    fp_reader *r = NULL;
    pid_t srv = 0;
    if (!udp)
        srv = ffmpeg_server("testsrc2", "320x240", NULL, 1, out);
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    if (udp) {
        usleep(200000);
        srv = ffmpeg_server("testsrc2", "320x240", NULL, 0, out);
    }
    mono m = {0};
    ck_assert_int_eq(read_frames(r, &m, 25, 10, NULL, NULL), 25);
    reap(&srv);
    if (!udp)
        ck_assert(lv_events_wait(&e, FP_LIVE_DISCONNECTED, 1, 5));
    else
        ck_assert(lv_events_wait(&e, FP_LIVE_STALLED, 1, 5));
    srv = ffmpeg_server("testsrc2", "320x240", NULL, !udp, out);
    ck_assert_int_eq(read_frames(r, &m, 25, 10, NULL, NULL), 25);
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    ck_assert_uint_ge(st.reconnects, 1);
    fp_reader_close(&r);
    reap(&srv);
    end();
}

START_TEST(http_source)
{
    http_or_udp(0);
}
END_TEST

START_TEST(udp_source)
{
    http_or_udp(1);
}
END_TEST

START_TEST(rtsp_udp_and_tcp)
{
    begin();
    int port = free_port(SOCK_STREAM);
    pid_t srv = rtsp_server(port, "320x240");
    char url[128];
    snprintf(url, sizeof url, "rtsp://127.0.0.1:%d/test", port);
    const char *transports[] = {"rtsp_transport=udp", "rtsp_transport=tcp:timeout=2000000"};
    for (int t = 0; t < 2; t++) {
        lv_events e;
        lv_events_init(&e);
        fp_reader_options o = live_opts(FP_LIVE_LATEST, &e);
        o.av_options = transports[t];
        o.timeout_us = 500000;
        o.live.stall = 3 * SLACK;
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
        mono m = {0};
        int w = 0, h = 0;
        ck_assert_msg(read_frames(r, &m, 25, 15, &w, &h) == 25, "%s: %s", transports[t],
                      fp_reader_errmsg(r));
        ck_assert_int_eq(w, 320);
        if (t == 1) {
            /* the server dies and comes back (kill -9) at another size */
            reap(&srv);
            ck_assert(lv_events_wait(&e, FP_LIVE_DISCONNECTED, 1, 8));
            srv = rtsp_server(port, "160x120");
            ck_assert_int_eq(read_frames(r, &m, 25, 20, &w, &h), 25);
            ck_assert_int_eq(w, 160);
            ck_assert_int_ge(lv_events_count(&e, FP_LIVE_SIZE_CHANGED), 1);
        }
        fp_reader_close(&r);
    }
    reap(&srv);
    end();
}
END_TEST

START_TEST(shared_budget)
{
    begin();
    fp_budget *b = NULL;
    size_t cap = 8u << 20;
    ck_assert_int_eq(fp_budget_new(cap, &b), 0);
    lv_events e[2];
    pid_t srv[2];
    fp_reader *r[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        lv_events_init(&e[i]);
        char url[96];
        int port = local_url(url, sizeof url, "tcp", "");
        srv[i] = tcp_server(port, "testsrc2", "320x240", NULL);
        fp_reader_options o = live_opts(FP_LIVE_LATEST, &e[i]);
        o.budget = b;
        o.format = FP_PIX_BGR24;
        o.timeout_us = 300000;
        ck_assert_int_eq(fp_reader_open(url, &o, &r[i]), 0);
    }
    mono m[2] = {{0}};
    for (int k = 0; k < 20; k++)
        for (int i = 0; i < 2; i++) {
            ck_assert_int_eq(read_frames(r[i], &m[i], 1, 5, NULL, NULL), 1);
            fp_budget_stats bs;
            fp_budget_get_stats(b, &bs);
            ck_assert_uint_le(bs.used_bytes, cap);
            ck_assert_uint_gt(bs.used_bytes, 0);
        }
    for (int i = 0; i < 2; i++) {
        fp_reader_close(&r[i]);
        reap(&srv[i]);
    }
    fp_unref(&b);
    end();
}
END_TEST

/* ---- the reconnect schedule ---------------------------------------------------------------- */

/* The wait reader.h documents for the n-th failed try in a row: [d/2, d];
 * `fast`: the count started at the end of a connection that delivered. */
static void check_delay(const lv_events *e, int i, double rmin, double rmax, int fast)
{
    int n = e->attempt[i];
    double d = rmin;
    if (fast && n <= 20)
        d = rmin / 5;
    else
        for (int k = fast ? 21 : 1; k < n && d < rmax; k++)
            d *= 2;
    if (d > rmax)
        d = rmax;
    ck_assert_msg(n >= 1 && e->delay[i] >= d / 2 - 1e-9 && e->delay[i] <= d + 1e-9,
                  "attempt %d waits %.4f s, the schedule says [%.4f, %.4f]: %s", n, e->delay[i],
                  d / 2, d, e->msg[i]);
}

/* The reconnect schedule (reader.h "Reconnecting"), from the RECONNECTING
 * events' attempt and delay fields (no wall clock): a source down at start
 * gets the plain doubling from reconnect_min; after a connection that
 * delivered, the first 20 failed tries wait [min/10, min/5], then the wait
 * doubles from reconnect_min up to reconnect_max (a server that stays down
 * is not stormed); a
 * connection that delivers starts the count over; a server that comes back
 * is connected by the first try after it listens; CONNECTED comes with the
 * first frame and carries its time (= stats.first_frame). */
START_TEST(reconnect_schedule)
{
    begin();
    lv_events e;
    lv_events_init(&e);
    char url[96];
    int port = local_url(url, sizeof url, "tcp", "");
    const double rmin = 0.1, rmax = 0.8;
    fp_reader_options o = live_opts(FP_LIVE_ALL, &e);
    o.live.reconnect_min = rmin;
    o.live.reconnect_max = rmax;
    o.timeout_us = 300000;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    /* down at start: nothing delivered yet, doubling from the second try */
    ck_assert(lv_events_wait(&e, FP_LIVE_RECONNECTING, 4, 10));
    pthread_mutex_lock(&e.mu);
    for (int i = 0, k = 0; i < e.n && k < 4; i++) {
        ck_assert_int_eq(e.type[i], FP_LIVE_RECONNECTING);
        ck_assert_int_eq(e.attempt[i], ++k);
        check_delay(&e, i, rmin, rmax, 0);
        if (k == 4)
            ck_assert_double_gt(e.delay[i], rmin); /* [0.4, 0.8] */
    }
    pthread_mutex_unlock(&e.mu);
    ck_assert_int_eq(lv_events_count(&e, FP_LIVE_CONNECTED), 0);
    pid_t srv = tcp_server(port, "testsrc2", "320x240", NULL);
    mono m = {0};
    ck_assert_int_eq(read_frames(r, &m, 10, 10, NULL, NULL), 10);
    /* CONNECTED came before its first frame was handed out, with its time */
    ck_assert_int_eq(lv_events_count(&e, FP_LIVE_CONNECTED), 1);
    int c = lv_events_last(&e, FP_LIVE_CONNECTED);
    fp_reader_stats st;
    ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
    ck_assert_msg(e.first_frame[c] > 0 && e.first_frame[c] < 10 * SLACK &&
                      e.first_frame[c] == st.first_frame,
                  "CONNECTED first_frame %.3f, stats.first_frame %.3f: %s", e.first_frame[c],
                  st.first_frame, e.msg[c]);
    ck_assert_msg(strstr(e.msg[c], "first frame") && strstr(e.msg[c], "after the open began"),
                  "%s", e.msg[c]);
    ck_assert_int_eq(st.connects, 1);
    ck_assert_int_eq(st.connected, 1);

    /* the server goes away and stays down for 23 tries: 20 at about
     * reconnect_min / 5, then doubling from reconnect_min to reconnect_max */
    reap(&srv);
    ck_assert(lv_events_wait(&e, FP_LIVE_DISCONNECTED, 1, 5));
    int d1 = lv_events_last(&e, FP_LIVE_DISCONNECTED);
    int base = lv_events_count(&e, FP_LIVE_RECONNECTING);
    ck_assert(lv_events_wait(&e, FP_LIVE_RECONNECTING, base + 23, 10));
    pthread_mutex_lock(&e.mu);
    int seen = 0, maxd = 0;
    for (int i = d1 + 1; i < e.n && seen < 23; i++) {
        if (e.type[i] != FP_LIVE_RECONNECTING)
            continue;
        seen++;
        ck_assert_int_eq(e.attempt[i], seen); /* the count started over */
        ck_assert_int_eq(e.error[i], FP_EIO); /* refused */
        check_delay(&e, i, rmin, rmax, 1);
        if (seen <= 20)
            ck_assert_double_le(e.delay[i], rmin / 5);
        else
            maxd = e.delay[i] > rmin / 5 ? maxd + 1 : maxd;
    }
    pthread_mutex_unlock(&e.mu);
    ck_assert_int_eq(seen, 23);
    ck_assert_int_eq(maxd, 3); /* tries 21, 22, 23 wait longer than the fast tries */

    /* back: the first try after the server listens connects */
    for (int round = 0; round < 2; round++) {
        srv = tcp_server(port, "testsrc2", "320x240", NULL);
        double end = tu_now() + 10 * SLACK;
        /* a try every 10-20 ms may connect before this sees the port listen
         * (ffmpeg closes its listener once it has its client) */
        int listening = 0, connected = 0;
        while (!(listening = zoo_port_in_state(port, 0, ZOO_TCP_LISTEN)) &&
               !(connected = lv_events_count(&e, FP_LIVE_CONNECTED) >= 2 + round) &&
               tu_now() < end)
            usleep(2000);
        ck_assert_msg(listening || connected,
                      "the server does not listen on %d and the reader did not connect; "
                      "events:\n%s",
                      port, lv_events_text(&e));
        int at_back = lv_events_count(&e, FP_LIVE_RECONNECTING);
        ck_assert(lv_events_wait(&e, FP_LIVE_CONNECTED, 2 + round, 10));
        ck_assert_int_eq(read_frames(r, &m, 5, 10, NULL, NULL), 5);
        /* at most the try under way when it came back failed */
        ck_assert_int_le(lv_events_count(&e, FP_LIVE_RECONNECTING), at_back + 1);
        c = lv_events_last(&e, FP_LIVE_CONNECTED);
        ck_assert_double_gt(e.first_frame[c], 0);
        if (round == 1)
            break;
        /* again, back after 2 failed tries: the fast tries, count from 1 */
        reap(&srv);
        ck_assert(lv_events_wait(&e, FP_LIVE_DISCONNECTED, 2, 5));
        int d2 = lv_events_last(&e, FP_LIVE_DISCONNECTED);
        base = lv_events_count(&e, FP_LIVE_RECONNECTING);
        ck_assert(lv_events_wait(&e, FP_LIVE_RECONNECTING, base + 2, 10));
        pthread_mutex_lock(&e.mu);
        seen = 0;
        for (int i = d2 + 1; i < e.n; i++)
            if (e.type[i] == FP_LIVE_RECONNECTING) {
                ck_assert_int_eq(e.attempt[i], ++seen);
                check_delay(&e, i, rmin, rmax, 1);
            }
        pthread_mutex_unlock(&e.mu);
    }
    /* every wait of the run follows the schedule */
    pthread_mutex_lock(&e.mu);
    for (int i = 0, delivered = 0; i < e.n; i++) {
        delivered |= e.type[i] == FP_LIVE_CONNECTED;
        if (e.type[i] == FP_LIVE_RECONNECTING)
            check_delay(&e, i, rmin, rmax, delivered);
    }
    pthread_mutex_unlock(&e.mu);
    ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
    ck_assert_int_eq(st.connects, 3);
    ck_assert_int_eq(lv_events_count(&e, FP_LIVE_DISCONNECTED), 2);
    fp_reader_close(&r);
    reap(&srv);
    end();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("live");
    TCase *tc = tcase_create("live");
    tcase_set_timeout(tc, SAN ? 180 : 60);
    LIVE_ADD(tc, options_and_api);
    LIVE_ADD(tc, tcp_down_at_start_kill_restart_resize);
    LIVE_ADD(tc, reconnect_schedule);
    LIVE_ADD(tc, stall_with_socket_open);
    LIVE_ADD(tc, same_picture_is_a_stall);
    LIVE_ADD(tc, corrupt_packets_keep_flowing);
    LIVE_ADD(tc, latest_and_all_when_behind);
    LIVE_ADD(tc, max_held_bound);
    LIVE_ADD(tc, native_frames_count_released);
    LIVE_ADD(tc, bad_input);
    LIVE_ADD(tc, waits_cost_nothing_and_end_at_once);
    LIVE_ADD(tc, http_source);
    LIVE_ADD(tc, udp_source);
    LIVE_ADD(tc, rtsp_udp_and_tcp);
    LIVE_ADD(tc, shared_budget);
    LIVE_ADD(tc, interrupt_blocked_open);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (!getenv("FP_LIVE_VERBOSE"))
        av_log_set_level(AV_LOG_QUIET); /* refused connects are expected, by the dozen */
    return tu_run(suite());
}
