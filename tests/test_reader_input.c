/* fp_reader's input stage: custom inputs (memory, callbacks), options.loop
 * and its loop cache, deadlines and interrupts, URLs without credentials in
 * messages. */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#include "avclips.h"
#include "internal.h"
#include "readerfix.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <framepool.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "avpriv.h" /* lib/av: fp__url_redact */

static int file_read(void *user, uint8_t *buf, int size)
{
    return (int)fread(buf, 1, (size_t)size, user);
}

static int64_t file_seek(void *user, int64_t off, int whence)
{
    FILE *f = user;
    if (whence == FP_READER_SEEK_SIZE) {
        long cur = ftell(f);
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, cur, SEEK_SET);
        return n;
    }
    if (fseek(f, (long)off, whence) != 0)
        return -1;
    return ftell(f);
}

START_TEST(memory_and_io)
{
    size_t len;
    unsigned char *buf = slurp(clip_h264, &len);
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open_memory(buf, len, dflt(), &r), 0);
    int n = 0;
    FP_FOREACH_FRAME(r, img)
    {
        char h[33];
        image_md5(img, h);
        ck_assert_str_eq(h, md5_ref[n]);
        n++;
    }
    ck_assert_int_eq(n, NFR);
    ck_assert_int_eq(fp_reader_seek(r, 0.4, FP_SEEK_PRECISE), 0);
    fp_image *img = NULL;
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert_int_eq(img->index, 10);
    fp_unref(&img);
    fp_reader_close(&r);
    ck_assert_int_eq(fp_reader_open_memory(buf, 0, NULL, &r), FP_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "empty"));
    fp_reader_close(&r);
    free(buf);

    FILE *f = fopen(clip_h264, "rb");
    ck_assert_int_eq(fp_reader_open_io(file_read, file_seek, f, dflt(), &r), 0);
    n = 0;
    FP_FOREACH_FRAME(r, im)
    n++;
    ck_assert_int_eq(n, NFR);
    fp_reader_close(&r);
    fclose(f);

    /* a non-seekable stream (MPEG-TS needs no seeking) */
    f = fopen(clip_ts, "rb");
    ck_assert_int_eq(fp_reader_open_io(file_read, NULL, f, dflt(), &r), 0);
    n = 0;
    FP_FOREACH_FRAME(r, im)
    n++;
    ck_assert_int_eq(n, NFR);
    ck_assert_int_eq(fp_reader_seek(r, 0, 0), FP_EIO);
    fp_reader_close(&r);
    fclose(f);
}
END_TEST

/* options.loop: every pass gives the pictures of one plain decode (ffmpeg's
 * framemd5 of the clip), in order, with pts, time and index growing across
 * passes, on clips with B-frames. (ffmpeg -stream_loop itself is no oracle:
 * on MPEG-TS it seeks to the start_time, a pts, and loses the first GOP.) */
static void check_loop(const char *clip, int loops, fp_pixfmt fmt, int64_t cache)
{
    enum { MAXF = 64 };
    static char want[MAXF][33];
    const char *extra = fmt == FP_PIX_BGR24 ? "-pix_fmt bgr24 -sws_flags bilinear" : NULL;
    int per = oracle_md5(clip, extra, want, MAXF);
    ck_assert_int_gt(per, 0);
    ck_assert_int_le(per, MAXF);
    int n = per * (loops + 1);
    fp_reader_options o = *dflt();
    o.loop = loops;
    o.loop_cache = cache;
    o.format = fmt;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(clip, &o, &r), 0);
    int k = 0;
    int64_t last_pts = INT64_MIN;
    double last_t = -1;
    fp_image *img = NULL;
    int rc;
    while ((rc = fp_reader_next(r, &img)) == 1) {
        ck_assert_int_lt(k, n);
        char h[33];
        image_md5(img, h);
        ck_assert_msg(!strcmp(h, want[k % per]), "%s frame %d of %d: %s, ffmpeg %s", clip, k, n,
                      h, want[k % per]);
        ck_assert_int_eq(img->index, k);
        ck_assert_int_gt(img->pts, last_pts);
        ck_assert(img->time > last_t);
        last_pts = img->pts;
        last_t = img->time;
        k++;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(k, n);
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.loops, (uint64_t)loops);
    /* a test clip fits the default bound: read once, then replayed from memory;
     * a bound below one packet (or -1) rewinds the input at every end */
    ck_assert_uint_eq(st.loops_replayed, cache == 0 ? (uint64_t)loops : 0);
    /* the passes follow each other at the clip's frame rate */
    fp_reader_info info;
    fp_reader_info(r, &info);
    ck_assert(fabs(last_t - (n - 1) / info.fps) < 1.5 / info.fps);
    fp_reader_close(&r);
}

START_TEST(loop_matches_stream_loop)
{
    /* each clip twice: rewinding the input at each end, and replaying the
     * first pass kept in memory (options.loop_cache) */
    for (int c = 0; c < 2; c++) {
        int64_t cache = c ? 0 : -1;
        check_loop(clip_h264, 2, FP_PIX_NONE, cache);   /* mp4, 3 B-frames, GOP 10 */
        check_loop(clip_ts, 3, FP_PIX_NONE, cache);     /* MPEG-TS */
        check_loop(clip_small, 1, FP_PIX_BGR24, cache); /* converted output */
        char m2[1024]; /* MPEG-PS: no index, seeks by timestamps read from the file */
        ck_assert_ptr_nonnull(clip_make("r_mpeg2.mpg",
                                        SRC "-frames:v 20 -c:v mpeg2video -bf 2 -g 8 -q:v 5", m2,
                                        sizeof m2));
        check_loop(m2, 2, FP_PIX_NONE, cache);
    }
    /* a bound smaller than the clip: dropped at the first pass, every end rewinds */
    check_loop(clip_h264, 2, FP_PIX_NONE, 1000);
}
END_TEST

START_TEST(loop_forever_seek_and_bad_uses)
{
    fp_reader_options o = *dflt();
    o.loop = -1;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
    fp_image *img = NULL;
    for (int i = 0; i < 5 * NFR + 7; i++) {
        ck_assert_int_eq(fp_reader_next(r, &img), 1);
        char h[33];
        image_md5(img, h);
        ck_assert_str_eq(h, md5_ref[i % NFR]);
        ck_assert_int_eq(img->index, i);
    }
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.loops, 5);
    ck_assert_uint_eq(st.loops_replayed, 5); /* the first pass was kept */
    /* the decoder's pools were not remade at the rewinds: no miss after the first pass */
    ck_assert_uint_le(st.pool.misses, NFR);
    /* a seek goes to that time of the input, then the loop goes on from there */
    ck_assert_int_eq(fp_reader_seek(r, 0.4, FP_SEEK_PRECISE), 0);
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert(fabs(img->time - 0.4) < 1e-6);
    double t = img->time;
    for (int i = 0; i < NFR; i++) {
        ck_assert_int_eq(fp_reader_next(r, &img), 1);
        ck_assert(img->time > t);
        t = img->time;
    }
    ck_assert(fabs(t - (0.4 + NFR / 25.0)) < 1e-6);
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.loops_replayed, 6); /* the sought pass ended in a replay */
    fp_unref(&img);
    fp_reader_close(&r);

    /* a seek in the first pass drops what was kept of it; the next rewind
     * reads a whole pass from the input and keeps it; the ends after it replay */
    o.loop = 3;
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert_int_eq(fp_reader_seek(r, 0, FP_SEEK_PRECISE), 0);
    int got = 0, rc1;
    while ((rc1 = fp_reader_next(r, &img)) == 1) {
        char h[33];
        image_md5(img, h);
        ck_assert_str_eq(h, md5_ref[got % NFR]);
        got++;
    }
    ck_assert_int_eq(rc1, 0);
    ck_assert_int_eq(got, 4 * NFR);
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.loops, 3);
    ck_assert_uint_eq(st.loops_replayed, 2);
    fp_reader_close(&r);
    o.loop = -1;

    /* refused: a negative count, with start/end, with a live source */
    o.loop = -2;
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "invalid loop -2"));
    fp_reader_close(&r);
    o.loop = 1;
    o.loop_cache = -2;
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "invalid loop_cache -2"));
    fp_reader_close(&r);
    o.loop_cache = 0;
    o.loop = 1;
    o.start = 0.2;
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "start/end"));
    fp_reader_close(&r);
    o.start = 0;
    o.live.mode = FP_LIVE_LATEST;
    ck_assert_int_eq(fp_reader_open("tcp://127.0.0.1:1", &o, &r), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "cannot loop"));
    fp_reader_close(&r);

    /* an input that cannot seek: the first pass, then FP_EIO naming why */
    o = *dflt();
    o.loop = 1;
    FILE *f = fopen(clip_ts, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fp_reader_open_io(file_read, NULL, f, &o, &r), 0);
    int n = 0, rc;
    while ((rc = fp_reader_next(r, &img)) == 1)
        n++;
    ck_assert_int_eq(n, NFR);
    ck_assert_int_eq(rc, FP_EIO);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "cannot loop: the input cannot seek"));
    ck_assert_int_eq(fp_reader_next(r, &img), 0);
    fp_reader_close(&r);
    fclose(f);
}
END_TEST

/* 20,000 frames re-seeking one small clip: the library's live bytes are the
 * same at frame 1,000 and 20,000 and the pools stop allocating. */
START_TEST(long_loop_flat)
{
    for (int k = 0; k < 2; k++) {
        fp_reader_options o = {0};
        o.threads = TU_THREADS;
        o.threads = 1;
        o.format = k ? FP_PIX_BGR24 : FP_PIX_NONE;
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(clip_small, &o, &r), 0);
        fp_image *img = NULL;
        uint64_t bytes_1k = 0, objs_1k = 0, miss_1k = 0, bytes, objs;
        fp_reader_stats st;
        for (int n = 1; n <= 20000; n++) {
            int rc = fp_reader_next(r, &img);
            if (rc == 0) {
                ck_assert_int_eq(fp_reader_seek(r, 0, FP_SEEK_KEY), 0);
                rc = fp_reader_next(r, &img);
            }
            ck_assert_int_eq(rc, 1);
            if (n == 1000 || n == 20000) {
                fp_obj_totals(&objs, &bytes);
                fp_reader_get_stats(r, &st);
                uint64_t miss = st.pool.misses + st.out_pool.misses;
                if (n == 1000) {
                    bytes_1k = bytes;
                    objs_1k = objs;
                    miss_1k = miss;
                } else {
                    ck_assert_uint_eq(bytes, bytes_1k);
                    ck_assert_uint_eq(objs, objs_1k);
                    ck_assert_uint_eq(miss, miss_1k);
                }
            }
        }
        fp_unref(&img);
        fp_reader_close(&r);
    }
}
END_TEST

typedef struct server {
    int lfd, port;
    const unsigned char *data; /* sent after accepting (may be NULL: never answer) */
    size_t len;
    _Atomic int stop; /* set by the test thread, polled by the server thread */
    pthread_t th;
} server;

static void *serve(void *arg)
{
    server *s = arg;
    int c = accept(s->lfd, NULL, NULL);
    if (c >= 0 && s->data) {
        size_t off = 0;
        while (off < s->len) {
            ssize_t w = write(c, s->data + off, s->len - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
    }
    while (!s->stop)
        usleep(10000);
    if (c >= 0)
        close(c);
    return NULL;
}

static void server_start(server *s)
{
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s->lfd, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(s->lfd, 4), 0);
    socklen_t al = sizeof a;
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&s->th, NULL, serve, s), 0);
}

static void server_stop(server *s)
{
    s->stop = 1;
    shutdown(s->lfd, SHUT_RDWR);
    close(s->lfd);
    pthread_join(s->th, NULL);
}

START_TEST(open_deadline)
{
    server s = {0};
    server_start(&s);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", s.port);
    fp_reader_options o = {0};
    o.threads = TU_THREADS;
    o.timeout_us = 300000;
    fp_reader *r = NULL;
    double t0 = tu_now();
    int rc = fp_reader_open(url, &o, &r);
    double dt = tu_now() - t0;
    ck_assert_int_eq(rc, FP_ETIMEDOUT);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "deadline"));
    ck_assert_double_ge(dt, 0.29);
    ck_assert_double_lt(dt, 0.3 + 0.5);
    fp_reader_close(&r);
    server_stop(&s);
}
END_TEST

typedef struct intr {
    fp_reader *r;
    double delay;
    _Atomic double at; /* tu_now() when fp_reader_interrupt was called */
} intr;

static void *interrupter(void *arg)
{
    intr *it = arg;
    usleep((useconds_t)(it->delay * 1e6));
    atomic_store(&it->at, tu_now());
    fp_reader_interrupt(it->r);
    return NULL;
}

START_TEST(interrupt_from_thread)
{
    /* the server sends 80% of a 10 s TS clip, then stalls forever */
    size_t len;
    unsigned char *buf = slurp(clip_long_ts, &len);
    server s = {0};
    s.data = buf;
    s.len = (len * 4 / 5) / 188 * 188;
    server_start(&s);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", s.port);
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(url, dflt(), &r), 0);
    intr it = {r, 0.4, 0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, interrupter, &it), 0);
    fp_image *img = NULL;
    int rc, n = 0;
    while ((rc = fp_reader_next(r, &img)) > 0)
        n++;
    double back = tu_now();
    pthread_join(th, NULL);
    ck_assert_int_eq(rc, FP_ECANCELED);
    ck_assert_int_gt(n, 0);
    /* from the interrupt to the return: the read in progress (a frame of
     * decoding, or the blocked read of the stalled socket) ends within 1 s
     * (3 s under sanitizers, whose decoding is 5-20x slower) */
    double dt = back - atomic_load(&it.at);
    ck_assert_double_lt(dt, UNDER_SANITIZER ? 3.0 : 1.0);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "interrupt"));
    fp_reader_close(&r);
    server_stop(&s);

    /* the same stall with a per-read deadline: FP_ETIMEDOUT, no thread needed */
    server s2 = {0};
    s2.data = buf;
    s2.len = s.len;
    server_start(&s2);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", s2.port);
    fp_reader_options o = {0};
    o.threads = TU_THREADS;
    o.timeout_us = 300000;
    ck_assert_int_eq(fp_reader_open(url, &o, &r), 0);
    n = 0;
    double t_last = tu_now();
    while ((rc = fp_reader_next(r, &img)) > 0) {
        n++;
        t_last = tu_now();
    }
    dt = tu_now() - t_last;
    ck_assert_msg(rc == FP_ETIMEDOUT, "%d: %s", rc, fp_reader_errmsg(r));
    ck_assert_int_gt(n, 0);
    ck_assert_double_ge(dt, 0.29);
    ck_assert_double_lt(dt, 0.3 + (UNDER_SANITIZER ? 2.0 : 0.7));
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "deadline"));
    fp_reader_close(&r);
    server_stop(&s2);
    free(buf);
}
END_TEST

/* ---- converting ahead ------------------------------------------------------------------- */

static void redact_is(const char *url, const char *want)
{
    char out[256];
    size_t n = fp__url_redact(url, out, sizeof out);
    ck_assert_msg(strcmp(out, want) == 0, "'%s' became '%s', want '%s'", url, out, want);
    ck_assert_uint_eq(n, strlen(want));
}

START_TEST(url_redaction)
{
    redact_is("rtsp://user:pass@cam.local:554/stream", "rtsp://***@cam.local:554/stream");
    redact_is("rtsp://user@cam.local/stream", "rtsp://***@cam.local/stream");
    redact_is("rtsp://u:p@host", "rtsp://***@host");
    redact_is("tcp://u:p@127.0.0.1:9?listen=0", "tcp://***@127.0.0.1:9?listen=0");
    redact_is("rtsp://cam.local:554/stream", "rtsp://cam.local:554/stream");
    /* '@' in a path, query or fragment is not user-info */
    redact_is("http://host/path/a@b.ts?q=c@d#e@f", "http://host/path/a@b.ts?q=c@d#e@f");
    redact_is("http://host?u=a@b", "http://host?u=a@b");
    redact_is("http://u:p@host/a@b", "http://***@host/a@b");
    /* an unescaped '@' in a password: up to the last '@' of the authority */
    redact_is("rtsp://admin:p@ss@[::1]:8554/live", "rtsp://***@[::1]:8554/live");
    redact_is("rtsp://[fe80::1]:554/a@b", "rtsp://[fe80::1]:554/a@b");
    redact_is("rtsp://u:p@[2001:db8::7]/x", "rtsp://***@[2001:db8::7]/x");
    /* file paths and file: URLs are never changed */
    redact_is("/tmp/clips/user:pass@x.mp4", "/tmp/clips/user:pass@x.mp4");
    redact_is("clips/a@b.mp4", "clips/a@b.mp4");
    redact_is("a@b:c.mp4", "a@b:c.mp4");
    redact_is("file:/tmp/a@b.mp4", "file:/tmp/a@b.mp4");
    redact_is("file:///tmp/a@b.mp4", "file:///tmp/a@b.mp4");
    redact_is("", "");
    redact_is(NULL, "(null)");
    /* truncation never leaves part of the secret */
    char small[12];
    fp__url_redact("rtsp://user:secret@host/x", small, sizeof small);
    ck_assert_str_eq(small, "rtsp://***@");
}
END_TEST

START_TEST(errors_hide_credentials)
{
    const char *urls[] = {
        "rtsp://alice:s3cret@127.0.0.1:1/stream", /* connection refused */
        "tcp://alice:s3cret@127.0.0.1:1",
        "nosuchproto://alice:s3cret@host/x",       /* no such protocol */
    };
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++) {
        fp_reader_options o = *dflt();
        o.timeout_us = 3000000;
        fp_reader *r = NULL;
        ck_assert_int_lt(fp_reader_open(urls[i], &o, &r), 0);
        const char *m = fp_reader_errmsg(r);
        ck_assert_msg(!strstr(m, "s3cret") && !strstr(m, "alice"), "'%s' shows credentials: %s",
                      urls[i], m);
        ck_assert_msg(strstr(m, "***@"), "'%s': %s", urls[i], m);
        fp_reader_close(&r);
    }
    /* a file name with '@' is shown as it is */
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open("/nonexistent/user:pass@clip.mp4", dflt(), &r), FP_ENOENT);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "/nonexistent/user:pass@clip.mp4"));
    fp_reader_close(&r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("reader_input");
    TCase *tc = tu_tcase(s, "input", setup, 60);
    tcase_add_test(tc, memory_and_io);
    tcase_add_test(tc, loop_matches_stream_loop);
    tcase_add_test(tc, loop_forever_seek_and_bad_uses);
    tcase_add_test(tc, open_deadline);
    tcase_add_test(tc, interrupt_from_thread);
    tcase_add_test(tc, url_redaction);
    tcase_add_test(tc, errors_hide_credentials);
    /* The long loop gets its own time bound: under ASan on a busy machine
     * it takes over a minute. */
    TCase *lc = tu_tcase(s, "long", setup, 200);
    tcase_add_test(lc, long_loop_flat);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
