/*
 * The live reader's backlog (lib/av/readahead.c and the waits of
 * lib/av/live.c): what happens when packets arrive faster than the caller
 * or the decoder takes them. The source is ffmpeg serving a clip made for
 * the test (H.264, no B-frames, a keyframe every 25 frames, MPEG-TS) over
 * tcp on 127.0.0.1 as fast as the socket takes it: the whole clip arrives
 * in a burst, as an HLS segment or a server's backlog after a stall does.
 * Every delivered frame is checked against ffmpeg's framemd5 of the clip at
 * its position (its time x 25): a frame decoded after dropped packets must
 * be clean, so drops may only end at a keyframe; and its index must be that
 * position (dropped packets count in the index: its gaps are frames lost).
 *
 *  - ALL, a burst and a slow caller: every frame, in order, none dropped
 *    (the burst waits as packets; the old frame queue of 8 dropped frames);
 *  - ALL, a burst and a caller that reads nothing until the server is done,
 *    with live.buffer far smaller than the clip: whole GOPs go, the frames
 *    delivered are clean, the last frame is the clip's last, and every
 *    frame is either delivered or counted in packets_dropped;
 *  - LATEST, a burst the decoder cannot keep up with: the reader skips to
 *    the newest keyframe that has arrived (packets_dropped), decodes fewer
 *    frames than were sent, every frame delivered is clean and the clip's
 *    last frame is delivered;
 *  - ALL, a caller that stops reading for 2.5 stall limits of a real-time
 *    source: no stall, no reconnect, not a frame lost.
 *
 * Servers are started by the test, bounded in time, and die with the test
 * thread (PR_SET_PDEATHSIG). A missing ffmpeg (or libx264) fails the test.
 */
#define _GNU_SOURCE
#include "avclips.h"
#include "livesrv.h"
#include "testutil.h"

#include <framepool.h>
#include <libavutil/log.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLACK tu_slack()
#define MAXF 600

/* A clip of `frames` frames of `size` (25 fps, keyframe every 25), its
 * path in `path`, and its framemd5 oracle in md5 (yuv420p). */
static void make_clip(const char *name, const char *size, int frames, char *path, size_t cap,
                      char (*md5)[33])
{
    ck_assert_msg(have_program("ffmpeg -hide_banner -h encoder=libx264 | grep -q libx264"),
                  "this test needs the ffmpeg program with libx264 (Debian package ffmpeg; "
                  "scripts/setup)");
    char args[512];
    snprintf(args, sizeof args,
             "-f lavfi -i testsrc2=size=%s:rate=25 -frames:v %d -c:v libx264 -preset ultrafast "
             "-bf 0 -g 25 -keyint_min 25 -sc_threshold 0 -pix_fmt yuv420p -f mpegts",
             size, frames);
    ck_assert_ptr_nonnull(clip_make(name, args, path, cap));
    ck_assert_int_eq(oracle_md5(path, "", md5, MAXF), frames);
}

/* ffmpeg sending the clip at `path` to the first client of
 * tcp://127.0.0.1:port as fast as it takes it (`realtime`: at 25 fps), then
 * ending. */
static pid_t clip_server(int port, const char *path, int realtime)
{
    char out[96];
    snprintf(out, sizeof out, "tcp://127.0.0.1:%d?listen=1", port);
    const char *argv[] = {"ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
                          realtime ? "-re" : "-nostats", "-i", path, "-c", "copy", "-f",
                          "mpegts", out, NULL};
    pid_t p = spawn((char *const *)argv);
    wait_listening(port, 20);
    return p;
}

static fp_reader_options live_opts(fp_live_mode mode, lv_events *e)
{
    fp_reader_options o = {0};
    o.live.mode = mode;
    o.live.reconnect_min = 0.5;
    o.live.reconnect_max = 1;
    o.live.stall = 3.0 * SLACK;
    o.live.open_timeout = 15.0 * SLACK;
    o.live.on_event = lv_events_record;
    o.live.user = e;
    o.timeout_us = (int64_t)(5e6 * SLACK);
    return o;
}

/* The clip frame a delivered frame shows: its time at 25 fps (the first
 * connection's timestamps are the source's, from 0). */
static int frame_number(const fp_image *img)
{
    return (int)llround(img->time * 25);
}

typedef struct seen {
    int n, last, gaps;
    uint64_t delivered;
} seen;

/* Checks a delivered frame against the oracle: clean, in order, and after a
 * gap the first frame of a GOP. */
static void check_clean(seen *s, const fp_image *img, char (*md5)[33], int frames,
                        const char *what)
{
    /* LATEST also replaces decoded frames the caller did not take: its gaps
     * may end anywhere (each frame is still checked to be clean) */
    int any_gap = !strncmp(what, "LATEST", 6);
    int k = frame_number(img);
    ck_assert_msg(k >= 0 && k < frames, "%s: frame time %.3f is not in the clip", what,
                  img->time);
    /* index: decoded frames plus dropped packets, so the frame number */
    ck_assert_msg(img->index == k, "%s: frame %d has index %lld", what, k,
                  (long long)img->index);
    char hex[33];
    image_md5(img, hex);
    ck_assert_msg(!strcmp(hex, md5[k]),
                  "%s: delivered frame %d (after frame %d) differs from ffmpeg's decode: a "
                  "frame decoded after dropped packets that did not end at a keyframe",
                  what, k, s->last);
    if (!s->n && !any_gap) /* a connection starts at a keyframe */
        ck_assert_msg(k % 25 == 0, "%s: the first frame is frame %d, not a keyframe", what, k);
    if (s->n) {
        ck_assert_msg(k > s->last, "%s: frame %d after frame %d", what, k, s->last);
        if (k != s->last + 1) {
            s->gaps++;
            ck_assert_msg(any_gap || k % 25 == 0, "%s: a gap from frame %d to %d does not end at a "
                          "keyframe", what, s->last, k);
        }
    }
    s->last = k;
    s->n++;
}

/* Reads until the clip's last frame, checking each; a frame that never
 * comes fails the test with what was seen. */
static void read_to_end(fp_reader *r, seen *s, char (*md5)[33], int frames, unsigned pause_us,
                        const char *what, lv_events *e)
{
    fp_image *img = NULL;
    while (s->last != frames - 1 || !s->n) {
        int rc = fp_reader_next(r, &img);
        ck_assert_msg(rc == 1, "%s: next() = %d (%s) after %d frames, the last %d; events:\n%s",
                      what, rc, fp_reader_errmsg(r), s->n, s->last, lv_events_text(e));
        check_clean(s, img, md5, frames, what);
        if (pause_us)
            usleep(pause_us);
    }
    fp_unref(&img);
}

/* One case: the clip, its oracle, its server and a live reader on it. */
typedef struct backlog_case {
    char md5[MAXF][33];
    int frames;
    lv_events e;
    pid_t srv;
    fp_reader *r;
} backlog_case;

/* Makes clip `name` (`frames` frames of `size`), starts its server
 * (`realtime`: at 25 fps) and opens a live reader of `mode` on it with
 * live.buffer `buffer` (0: the default) and live.stall `stall` (0:
 * live_opts's). */
static void start_case(backlog_case *c, const char *name, const char *size, int frames,
                       int realtime, fp_live_mode mode, size_t buffer, double stall)
{
    signal(SIGPIPE, SIG_IGN);
    char path[512];
    c->frames = frames;
    make_clip(name, size, frames, path, sizeof path, c->md5);
    lv_events_init(&c->e);
    char url[96];
    int port = local_url(url, sizeof url, "tcp", "");
    c->srv = clip_server(port, path, realtime);
    fp_reader_options o = live_opts(mode, &c->e);
    o.live.buffer = buffer;
    if (stall > 0)
        o.live.stall = stall;
    c->r = NULL;
    ck_assert_int_eq(fp_reader_open(url, &o, &c->r), 0);
}

static void end_case(backlog_case *c)
{
    fp_reader_close(&c->r);
    reap(&c->srv);
}

START_TEST(all_burst_slow_caller_keeps_every_frame)
{
    static backlog_case c;
    start_case(&c, "backlog_320.ts", "320x240", 250, 0, FP_LIVE_ALL, 0, 0);
    fp_reader *r = c.r;
    const int frames = c.frames;
    seen s = {0};
    /* 10 ms a frame: the 10 s clip arrives within a fraction of a second,
     * the caller takes 2.5 s */
    read_to_end(r, &s, c.md5, frames, 10000, "ALL burst", &c.e);
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    printf("ALL burst: %d frames, dropped %llu, packets dropped %llu, age max %.3f s\n", s.n,
           (unsigned long long)st.dropped, (unsigned long long)st.packets_dropped, st.age_max);
    ck_assert_int_eq(s.n, frames);
    ck_assert_int_eq(s.gaps, 0);
    ck_assert_uint_eq(st.dropped, 0);
    ck_assert_uint_eq(st.packets_dropped, 0);
    /* the backlog was real: the last frames waited while the caller caught up */
    ck_assert_msg(st.age_max > 1.0, "age max %.3f s: the burst did not wait", st.age_max);
    end_case(&c);
}
END_TEST

START_TEST(all_buffer_full_drops_whole_gops)
{
    static backlog_case c;
    /* live.buffer about 3 GOPs: a quarter of the clip */
    start_case(&c, "backlog_320.ts", "320x240", 250, 0, FP_LIVE_ALL, 256 << 10, 0);
    fp_reader *r = c.r;
    const int frames = c.frames;
    /* read nothing until the server has sent the whole clip and ended */
    int status = 0;
    ck_assert_int_eq(waitpid(c.srv, &status, 0), c.srv);
    c.srv = 0;
    seen s = {0};
    read_to_end(r, &s, c.md5, frames, 0, "ALL buffer full", &c.e);
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    printf("ALL buffer full: %d frames, %d gaps, packets dropped %llu, decoded %llu\n", s.n,
           s.gaps, (unsigned long long)st.packets_dropped, (unsigned long long)st.decoded);
    /* frames were lost (between delivered frames, or before the first one
     * when the burst overflowed the buffer before the decoder's first pop) */
    ck_assert_uint_gt(st.packets_dropped, 0);
    ck_assert_int_lt(s.n, frames);
    ck_assert_uint_eq(st.dropped, 0);
    /* every frame of the clip is either delivered or a dropped packet */
    ck_assert_uint_eq((uint64_t)s.n + st.packets_dropped, (uint64_t)frames);
    end_case(&c);
}
END_TEST

START_TEST(latest_skips_to_the_newest_keyframe)
{
    static backlog_case c;
    start_case(&c, "backlog_640.ts", "640x360", 500, 0, FP_LIVE_LATEST, 0, 0);
    fp_reader *r = c.r;
    const int frames = c.frames;
    seen s = {0};
    read_to_end(r, &s, c.md5, frames, 0, "LATEST burst", &c.e);
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    printf("LATEST burst: %d frames delivered, decoded %llu of %d, packets dropped %llu, "
           "frames replaced %llu\n",
           s.n, (unsigned long long)st.decoded, frames, (unsigned long long)st.packets_dropped,
           (unsigned long long)st.dropped);
    /* 20 s of video arrive at once: decoding all of it is 20 s of backlog;
     * the reader jumped to newer keyframes instead */
    ck_assert_uint_gt(st.packets_dropped, 0);
    ck_assert_uint_lt(st.decoded, (uint64_t)frames);
    ck_assert_uint_eq(st.packets + st.packets_dropped, (uint64_t)frames);
    end_case(&c);
}
END_TEST

START_TEST(all_caller_pause_is_not_a_stall)
{
    static backlog_case c;
    const double stall = 1.0 * SLACK;
    start_case(&c, "backlog_320.ts", "320x240", 250, 1 /* at 25 fps: 10 s */, FP_LIVE_ALL, 0,
               stall);
    fp_reader *r = c.r;
    const int frames = c.frames;
    char (*md5)[33] = c.md5;
    fp_image *img = NULL;
    seen s = {0};
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(fp_reader_next(r, &img), 1);
        check_clean(&s, img, md5, frames, "ALL pause");
    }
    fp_unref(&img);
    /* the caller stops for 2.5 stall limits while the source goes on */
    usleep((useconds_t)(2.5 * stall * 1e6));
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    ck_assert_msg(st.packets_queued > 0, "nothing waited while the caller paused");
    ck_assert_msg(lv_events_count(&c.e, FP_LIVE_STALLED) == 0 &&
                      lv_events_count(&c.e, FP_LIVE_DISCONNECTED) == 0,
                  "the caller's pause ended the connection; events:\n%s", lv_events_text(&c.e));
    /* then every frame after the pause, in order, none lost */
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(fp_reader_next(r, &img), 1);
        check_clean(&s, img, md5, frames, "ALL pause");
    }
    fp_unref(&img);
    fp_reader_get_stats(r, &st);
    ck_assert_int_eq(s.gaps, 0);
    ck_assert_uint_eq(st.stalls, 0);
    ck_assert_uint_eq(st.reconnects, 0);
    ck_assert_uint_eq(st.packets_dropped, 0);
    end_case(&c);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("live_backlog");
    TCase *tc = tu_tcase(s, "backlog", NULL, 120);
    LIVE_ADD(tc, all_burst_slow_caller_keeps_every_frame);
    LIVE_ADD(tc, all_buffer_full_drops_whole_gops);
    LIVE_ADD(tc, latest_skips_to_the_newest_keyframe);
    LIVE_ADD(tc, all_caller_pause_is_not_a_stall);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!getenv("FP_LIVE_VERBOSE"))
        av_log_set_level(AV_LOG_QUIET); /* refused reconnects after the clip are expected */
    return tu_run(suite());
}
