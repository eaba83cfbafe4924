/*
 * The live reader's open path and what it hands out (lib/av/live.c, the
 * decoder stage's live settings), against ffmpeg serving H.264 in MPEG-TS
 * over tcp on 127.0.0.1:
 *
 *  - no decoder delay: LATEST with threads = 2 decodes with slice threads,
 *    and the decoder gives out each picture for the packet just sent (from
 *    the reader's statistics, taken as each frame comes out of the decoder:
 *    packets sent minus frames out is 0); frame threads (opt-in) show their
 *    one-frame delay in the same figure;
 *  - native frames' views: no framepool allocation per delivered frame once
 *    the run has warmed up (the view headers are reused), while each view
 *    stays a new object (its own weak handles and callbacks, the reader's
 *    creation site, counted in stats.held);
 *  - a short probe that misses the picture's parameters (the client joins a
 *    stream mid-GOP and its first SPS comes seconds later): the connection
 *    opens with the size unknown, the packets before the first keyframe do
 *    not count against the decode error budget, and the first frame is that
 *    keyframe, on the first try (no reconnect, no longer probe);
 *  - first frame: a long GOP joined mid-GOP whose packets carry SPS/PPS
 *    each: the first frame delivered is the first keyframe the client
 *    received, at most 0.5 s after it arrived.
 *
 * Every server is started by the test, bounded in time (-t 60), and dies
 * with the test thread (PR_SET_PDEATHSIG). A missing ffmpeg (or its libx264)
 * fails the test: scripts/setup installs them.
 */
#define _GNU_SOURCE
#include "livesrv.h"
#include "testutil.h"

#include <framepool.h>
#include <libavutil/log.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SAN UNDER_SANITIZER
#define SLACK tu_slack()

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- servers ----------------------------------------------------------------------------- */

/* ffmpeg serving 25 fps H.264 (libx264, no B-frames: a camera's stream) in
 * MPEG-TS at tcp://127.0.0.1:port?listen=1, one client, for at most 60 s.
 * `x264` are libx264's parameters, `gop` the keyframe interval in frames,
 * `bsf` optional bitstream filters, `global` non-zero puts SPS/PPS in the
 * stream's extradata (for dump_extra). */
static pid_t h264_server(int port, const char *size, const char *x264, int gop,
                         const char *bsf, int global)
{
    ck_assert_msg(have_program("ffmpeg -hide_banner -h encoder=libx264 | grep -q libx264"),
                  "this test needs the ffmpeg program with libx264 (Debian package ffmpeg; "
                  "scripts/setup)");
    char input[96], g[16], out[96];
    snprintf(input, sizeof input, "testsrc2=size=%s:rate=25", size);
    snprintf(g, sizeof g, "%d", gop);
    snprintf(out, sizeof out, "tcp://127.0.0.1:%d?listen=1", port);
    const char *argv[48];
    int n = 0;
    const char *head[] = {"ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re",
                          "-f", "lavfi", "-i", input, "-t", "60", "-c:v", "libx264",
                          "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0",
                          "-pix_fmt", "yuv420p", "-g", g, "-keyint_min", g,
                          "-sc_threshold", "0"};
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        argv[n++] = head[i];
    if (x264 && *x264) {
        argv[n++] = "-x264-params";
        argv[n++] = x264;
    }
    if (global) {
        argv[n++] = "-flags";
        argv[n++] = "+global_header";
    }
    if (bsf && *bsf) {
        argv[n++] = "-bsf:v";
        argv[n++] = bsf;
    }
    argv[n++] = "-flush_packets";
    argv[n++] = "1";
    argv[n++] = "-f";
    argv[n++] = "mpegts";
    argv[n++] = out;
    argv[n] = NULL;
    return spawn((char *const *)argv);
}

static fp_reader_options live_opts(fp_live_mode mode, lv_events *e)
{
    fp_reader_options o = {0};
    o.live.mode = mode;
    o.live.reconnect_min = 0.2;
    o.live.reconnect_max = 0.5;
    o.live.stall = 3.0 * SLACK;
    o.live.open_timeout = 15.0 * SLACK;
    o.live.on_event = lv_events_record;
    o.live.user = e;
    o.timeout_us = (int64_t)(2e6 * SLACK);
    return o;
}

/* Next frame, waiting through timeouts while the reader (re)connects, for at
 * most `seconds`. Returns 1 with a frame, or fails the test. */
static int next_frame(fp_reader *r, fp_image **img, double seconds, lv_events *e)
{
    double end = tu_now() + seconds * SLACK;
    for (;;) {
        int rc = fp_reader_next(r, img);
        if (rc == 1)
            return 1;
        ck_assert_msg(rc == FP_ETIMEDOUT && tu_now() < end,
                      "no frame within %.0f s: next %d (%s); events:%s", seconds * SLACK, rc,
                      fp_reader_errmsg(r), lv_events_text(e));
    }
}

/* ---- no decoder delay -------------------------------------------------------------------- */

typedef struct delay_run {
    unsigned max_delay, last_delay; /* packets sent - frames out, as the last frame came out */
    int threads;
    double age_mean, age_max;       /* seconds, from stats.age_last per frame */
} delay_run;

/* Reads `n` frames from a fresh sliced H.264 server in LATEST mode with 2
 * decoder threads, frame threads or not. */
static void run_delay(int frame_threads, int n, delay_run *out)
{
    lv_events e;
    lv_events_init(&e);
    char url[96];
    int port = local_url(url, sizeof url, "tcp", "");
    pid_t srv = h264_server(port, "640x360", "slices=4", 25, NULL, 0);
    wait_listening(port, 20);
    fp_reader_options o = live_opts(FP_LIVE_LATEST, &e);
    o.threads = 2;
    o.frame_threads = frame_threads;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    fp_image *img = NULL;
    memset(out, 0, sizeof *out);
    double age_sum = 0;
    for (int i = 0; i < n; i++) {
        next_frame(r, &img, 20, &e);
        fp_reader_stats st;
        ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
        /* stats of the connection as the decoder gave out the newest frame
         * (the reader publishes them with it) */
        ck_assert_uint_ge(st.packets, st.decoded);
        unsigned d = (unsigned)(st.packets - st.decoded - st.decode_errors);
        if (i >= 5) { /* past the first GOP's start */
            if (d > out->max_delay)
                out->max_delay = d;
            age_sum += st.age_last;
            if (st.age_last > out->age_max)
                out->age_max = st.age_last;
        }
        out->last_delay = d;
    }
    out->age_mean = age_sum / (n - 5);
    fp_reader_info info;
    ck_assert_int_eq(fp_reader_info_get(r, &info), 0);
    ck_assert_str_eq(info.codec, "h264");
    out->threads = info.threads;
    fp_unref(&img);
    fp_reader_close(&r);
    reap(&srv);
    printf("latest, threads 2, %s: decoder delay max %u frames (last %u), frame age mean "
           "%.1f ms max %.1f ms\n",
           frame_threads ? "frame threads" : "slice threads (default)", out->max_delay,
           out->last_delay, out->age_mean * 1e3, out->age_max * 1e3);
}

START_TEST(latest_no_decoder_delay)
{
    int n = SAN ? 40 : 75;
    delay_run slice, frame;
    run_delay(0, n, &slice);
    ck_assert_int_eq(slice.threads, 2);
    ck_assert_msg(slice.max_delay == 0,
                  "slice threads: the decoder held frames back (packets - frames out = %u)",
                  slice.max_delay);
    /* the observable does show a delay: frame threads hold one frame per extra thread */
    run_delay(1, n, &frame);
    ck_assert_int_eq(frame.threads, 2);
    ck_assert_msg(frame.max_delay == 1 && frame.last_delay == 1,
                  "frame threads (2): expected a one-frame decoder delay, saw max %u last %u",
                  frame.max_delay, frame.last_delay);
}
END_TEST

/* ---- native views: no allocation per frame ----------------------------------------------- */

static int freed_calls;
static void count_free(void *user)
{
    (void)user;
    __atomic_add_fetch(&freed_calls, 1, __ATOMIC_RELAXED);
}

START_TEST(native_views_no_alloc)
{
    lv_events e;
    lv_events_init(&e);
    char url[96];
    int port = local_url(url, sizeof url, "tcp", "");
    pid_t srv = h264_server(port, "320x240", NULL, 25, NULL, 0);
    wait_listening(port, 20);
    /* the weak slot table's first chunk, kept for the life of the process */
    static const fp_type warm_type = {"warm", NULL};
    void *warm = fp_new(&warm_type, 8);
    fp_weak_of(warm);
    fp_unref(&warm);
    tu_alloc_install();
    fp_reader_options o = live_opts(FP_LIVE_ALL, &e);
    o.max_held = 4;
    fp_reader *r = NULL;
    int open_line = __LINE__ + 1;
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    fp_image *img = NULL, *kept[3] = {0};
    /* warm-up: the connection, its pools, the view headers (up to max_held alive) */
    for (int i = 0; i < 30; i++) {
        next_frame(r, &img, 20, &e);
        if (i % 10 == 9) /* hold three at once now and then */
            for (int k = 0; k < 3; k++) {
                fp_unref(&kept[k]);
                kept[k] = fp_ref(img);
                next_frame(r, &img, 5, &e);
            }
    }
    for (int k = 0; k < 3; k++)
        fp_unref(&kept[k]);
    /* a weak handle and a callback on one view: its header is reused later */
    fp_weak w = fp_weak_of(img);
    ck_assert_uint_ne(w.id, 0);
    freed_calls = 0;
    ck_assert_int_eq(fp_on_free(img, count_free, NULL), 0);
    next_frame(r, &img, 5, &e); /* rebinds: the old view dies */
    ck_assert_int_eq(__atomic_load_n(&freed_calls, __ATOMIC_RELAXED), 1);
    ck_assert_ptr_null(fp_weak_get(w));

    uint64_t a0 = tu_alloc_count();
    int frames = SAN ? 25 : 50;
    fp_reader_stats st;
    for (int i = 0; i < frames; i++) {
        next_frame(r, &img, 5, &e);
        ck_assert(img->flags & FP_IMAGE_READONLY);
        const char *file = NULL, *func = NULL;
        int line = 0;
        fp_obj_site(img, &file, &line, &func);
        ck_assert_msg(file && strstr(file, "test_live_open.c") && line == open_line,
                      "a view's creation site is %s:%d, not the reader's open (line %d)",
                      file ? file : "?", line, open_line);
        if (i % 10 == 0) {
            fp_image *two = fp_ref(img);
            next_frame(r, &img, 5, &e);
            ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
            ck_assert_uint_eq(st.held, 2);
            fp_unref(&two);
        }
        ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
        ck_assert_uint_eq(st.held, 1);
    }
    uint64_t allocs = tu_alloc_count() - a0;
    ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
    printf("native views: %llu framepool allocations over %d delivered frames after warm-up "
           "(%llu dropped)\n",
           (unsigned long long)allocs, frames + frames / 10, (unsigned long long)st.dropped);
    ck_assert_msg(allocs == 0, "%llu framepool allocations over %d frames after warm-up",
                  (unsigned long long)allocs, frames + frames / 10);
    /* a frame kept past close still reads, and the count goes with it */
    fp_image *keep = fp_ref(img);
    fp_unref(&img);
    fp_reader_close(&r);
    ck_assert_int_gt(keep->width, 0);
    ck_assert_uint_eq(keep->data[0][0] | 1, keep->data[0][0] | 1);
    fp_unref(&keep);
    reap(&srv);
    tu_alloc_assert_clean("live views", 0);
    tu_alloc_uninstall();
}
END_TEST

/* ---- short probe fallback ---------------------------------------------------------------- */

START_TEST(short_probe_misses_parameters)
{
    lv_events e;
    lv_events_init(&e);
    char url[96];
    int port = local_url(url, sizeof url, "tcp", "");
    /* the client joins 1.5 s into a 4 s GOP (the first 38 packets are not
     * sent): no SPS until the keyframe 2.5 s after the first packet, beyond
     * the short probe */
    const char *bsf = "noise=drop=lt(n\\,38)";
    pid_t srv = h264_server(port, "320x240", NULL, 100, bsf, 0);
    wait_listening(port, 20);
    fp_reader_options o = live_opts(FP_LIVE_ALL, &e);
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    fp_image *img = NULL;
    next_frame(r, &img, 30, &e);
    ck_assert_msg(img->flags & FP_IMAGE_KEY, "the first frame is not a keyframe;%s",
                  lv_events_text(&e));
    ck_assert_int_eq(img->width, 320);
    ck_assert_int_eq(img->height, 240);
    fp_reader_stats st;
    ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
    printf("short probe without parameters: first frame %.2f s after the open, %llu decode "
           "errors before it%s\n",
           st.first_frame, (unsigned long long)st.decode_errors, lv_events_text(&e));
    /* one connection: the undecodable packets before the keyframe neither
     * failed the open nor ended the connection */
    ck_assert_msg(lv_events_count(&e, FP_LIVE_CONNECTED) == 1 &&
                      lv_events_count(&e, FP_LIVE_RECONNECTING) == 0 && st.reconnects == 0,
                  "the first try did not deliver;%s", lv_events_text(&e));
    for (int i = 0; i < 10; i++)
        next_frame(r, &img, 5, &e);
    ck_assert_int_eq(lv_events_count(&e, FP_LIVE_RECONNECTING), 0);
    fp_unref(&img);
    fp_reader_close(&r);
    reap(&srv);
}
END_TEST

/* ---- first frame <= first keyframe + 0.5 s ----------------------------------------------- */

START_TEST(first_frame_is_first_keyframe)
{
    lv_events e;
    lv_events_init(&e);
    char url[96];
    int port = local_url(url, sizeof url, "tcp", "");
    /* 4 s GOP joined 1.5 s in; every packet carries SPS/PPS (a camera that
     * repeats them), so the short probe succeeds before the keyframe */
    pid_t srv = h264_server(port, "320x240", NULL, 100,
                            "noise=drop=lt(n\\,38),dump_extra=freq=all", 1);
    wait_listening(port, 20);
    fp_reader_options o = live_opts(FP_LIVE_ALL, &e);
    fp_reader *r = NULL;
    double t_open = wall_now();
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    fp_image *img = NULL;
    next_frame(r, &img, 20, &e);
    double t_got = wall_now();
    fp_reader_stats st;
    ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
    /* its packet's arrival, from the open call (the connection's open began
     * a thread start later: the difference below is that much smaller) */
    double arrived = img->wall_time - t_open;
    printf("first frame: key %d time %.3f s, its packet arrived %.3f s after the open, "
           "stats.first_frame %.3f s, in the caller's hands %.3f s after the arrival%s\n",
           !!(img->flags & FP_IMAGE_KEY), img->time, arrived, st.first_frame,
           t_got - img->wall_time, lv_events_text(&e));
    ck_assert_msg(st.connects == 1 && lv_events_count(&e, FP_LIVE_RECONNECTING) == 0,
                  "the short probe of a stream with SPS in every packet failed");
    ck_assert_msg(img->flags & FP_IMAGE_KEY, "the first frame delivered is not a keyframe");
    /* the keyframe is frame 100 of the server, the client's first packet was
     * frame 38: 62 frames (2.48 s) into what the client received */
    ck_assert_msg(fabs(img->time - 2.48) < 0.1, "first frame at %.3f s, not the first keyframe "
                  "(2.48 s into the stream)", img->time);
    double bound = 0.5 * SLACK;
    ck_assert_msg(st.first_frame - arrived <= bound,
                  "first frame %.3f s after the open, its keyframe arrived at %.3f s",
                  st.first_frame, arrived);
    ck_assert_msg(t_got - img->wall_time <= bound,
                  "the first keyframe reached the caller %.3f s after it arrived",
                  t_got - img->wall_time);
    for (int i = 0; i < 10; i++)
        next_frame(r, &img, 5, &e);
    fp_unref(&img);
    fp_reader_close(&r);
    reap(&srv);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("live_open");
    TCase *tc = tcase_create("live_open");
    tcase_set_timeout(tc, SAN ? 240 : 90);
    LIVE_ADD(tc, latest_no_decoder_delay);
    LIVE_ADD(tc, native_views_no_alloc);
    LIVE_ADD(tc, short_probe_misses_parameters);
    LIVE_ADD(tc, first_frame_is_first_keyframe);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0); /* figures survive a failing check's exit */
    if (!getenv("FP_LIVE_VERBOSE"))
        av_log_set_level(AV_LOG_QUIET); /* refused connects are expected */
    return tu_run(suite());
}
