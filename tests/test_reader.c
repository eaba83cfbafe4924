/* fp_reader: the iterator's contract — rebinding, bounds, zero-copy pools,
 * conversion, skipping, seeking, custom inputs, creation sites, flat memory
 * over a long loop, deadlines and interrupts. */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#include "avclips.h"
#include "input.h" /* lib/av: fp__url_redact */
#include "internal.h"
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

/* Decoder threads for the tests: automatic, so that get_buffer2 and the
 * buffer release callbacks run on FFmpeg's frame threads — also under
 * ThreadSanitizer, where tests/tsan.supp (scripts/test) silences the races
 * TSan reports inside uninstrumented FFmpeg, not those in framepool. */
#define TU_THREADS 0

static const fp_reader_options *dflt(void)
{
    static fp_reader_options o;
    o.threads = TU_THREADS;
    return &o;
}

#define SRC "-f lavfi -i testsrc2=size=320x240:rate=25 "
#define NFR 30

static char clip_h264[1024], clip_ts[1024], clip_small[1024], clip_long_ts[1024];
static char md5_ref[NFR][33]; /* native md5 of clip_h264's frames */

static void setup(void)
{
    ck_assert_ptr_nonnull(clip_make("r_h264.mp4",
                                    SRC "-frames:v 30 -c:v libx264 -bf 3 -g 10 -pix_fmt yuv420p",
                                    clip_h264, sizeof clip_h264));
    ck_assert_ptr_nonnull(clip_make("r_h264.ts",
                                    SRC "-frames:v 30 -c:v libx264 -bf 2 -g 10 -pix_fmt yuv420p",
                                    clip_ts, sizeof clip_ts));
    ck_assert_ptr_nonnull(clip_make("r_small.mp4",
                                    "-f lavfi -i testsrc2=size=160x120:rate=25 -frames:v 25 "
                                    "-c:v libx264 -bf 2 -g 25 -pix_fmt yuv420p",
                                    clip_small, sizeof clip_small));
    /* 10 s: longer than the 5 s libavformat analyses before the open returns */
    ck_assert_ptr_nonnull(clip_make("r_long.ts",
                                    "-f lavfi -i testsrc2=size=160x120:rate=25 -frames:v 250 "
                                    "-c:v libx264 -g 25 -pix_fmt yuv420p",
                                    clip_long_ts, sizeof clip_long_ts));
    ck_assert_int_eq(oracle_md5(clip_h264, NULL, md5_ref, NFR), NFR);
}

START_TEST(defaults_native)
{
    fp_reader *r = NULL;
    uint64_t tick0 = fp_frame_now();
    ck_assert_int_eq(fp_reader_open(clip_h264, dflt(), &r), 0);
    ck_assert_str_eq(fp_reader_errmsg(r), "");
    fp_reader_info info;
    ck_assert_int_eq(fp_reader_info(r, &info), 0);
    ck_assert_int_eq(info.width, 320);
    ck_assert_int_eq(info.height, 240);
    ck_assert_int_eq(info.native_format, FP_PIX_YUV420P);
    ck_assert_int_eq(info.out_format, FP_PIX_YUV420P);
    ck_assert_str_eq(info.codec, "h264");
    ck_assert_double_eq_tol(info.fps, 25.0, 1e-9);
    ck_assert_int_eq(info.frame_count, NFR);
    ck_assert_int_eq(info.zero_copy, 1);
    ck_assert_uint_eq(info.max_held, FP_READER_DEFAULT_MAX_HELD);
    ck_assert_uint_ge(info.decoder_buffers, 17);
    ck_assert_uint_eq(info.pool_max_buffers, info.decoder_buffers + info.max_held + 1);
    int n = 0;
    int64_t last_pts = INT64_MIN;
    FP_FOREACH_FRAME(r, img)
    {
        ck_assert_int_eq(img->index, n);
        ck_assert_int_eq(img->width, 320);
        ck_assert_int_eq(img->format, FP_PIX_YUV420P);
        ck_assert_int_eq(img->av_format, 0 /* AV_PIX_FMT_YUV420P */);
        ck_assert_int_gt(img->pts, last_pts);
        last_pts = img->pts;
        ck_assert_double_eq_tol(img->time, n / 25.0, 1e-6);
        if (n % 10 == 0)
            ck_assert_uint_ne(img->flags & FP_IMAGE_KEY, 0);
        ck_assert_uint_eq(img->flags & FP_IMAGE_CORRUPT, 0);
        ck_assert_ptr_nonnull(tu_pool_of(img));
        ck_assert_uint_eq((uintptr_t)img->data[0] % 64, 0);
        ck_assert_int_eq(img->stride[0] % 64, 0);
        char h[33];
        image_md5(img, h);
        ck_assert_str_eq(h, md5_ref[n]);
        n++;
    }
    ck_assert_int_eq(n, NFR);
    ck_assert_uint_eq(fp_frame_now() - tick0, NFR);
    fp_reader_stats st;
    ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
    ck_assert_uint_eq(st.delivered, NFR);
    ck_assert_uint_eq(st.decoded, NFR);
    ck_assert_uint_eq(st.held, 0);
    ck_assert_uint_eq(st.wrapped, 0);
    ck_assert_uint_le(st.pool.peak, info.pool_max_buffers);
    /* at the end the reader keeps answering 0 */
    fp_image *img = NULL;
    ck_assert_int_eq(fp_reader_next(r, &img), 0);
    ck_assert_ptr_null(img);
    fp_reader_close(&r);
    ck_assert_ptr_null(r);
    fp_reader_close(&r); /* NULL-safe */
}
END_TEST

START_TEST(rebind_and_keep)
{
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(clip_h264, dflt(), &r), 0);
    fp_image *img = NULL, *kept = NULL;
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    kept = fp_ref(img); /* frame 1, kept past the next step */
    uint32_t before = fp_refcount(kept);
    ck_assert_int_eq(fp_reader_next(r, &img), 1); /* rebinding dropped our other reference */
    ck_assert_uint_lt(fp_refcount(kept), before); /* (the decoder may have let go too) */
    ck_assert_uint_ge(fp_refcount(kept), 1);
    ck_assert_ptr_ne(img, kept);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(fp_reader_next(r, &img), 1);
    /* the kept frame was never recycled or overwritten */
    char h[33];
    image_md5(kept, h);
    ck_assert_str_eq(h, md5_ref[1]);
    ck_assert_int_eq(kept->index, 1);
    /* it outlives the reader */
    fp_unref(&img);
    fp_reader_close(&r);
    image_md5(kept, h);
    ck_assert_str_eq(h, md5_ref[1]);
    ck_assert(fp_image_is_writable(kept)); /* the decoder is gone: ours alone */
    fp_unref(&kept);
}
END_TEST

START_TEST(writable_rules)
{
    /* native: the decoder's reference pictures are not writable while it
     * uses them; make_writable copies from the same pool */
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(clip_h264, dflt(), &r), 0);
    fp_image *img = NULL;
    ck_assert_int_eq(fp_reader_next(r, &img), 1); /* an I frame: a reference */
    ck_assert_uint_ge(fp_refcount(img), 2);
    ck_assert(!fp_image_is_writable(img));
    fp_image *w = fp_ref(img);
    ck_assert_int_eq(fp_image_make_writable(&w), 0);
    ck_assert_ptr_ne(w, img);
    ck_assert(fp_image_is_writable(w));
    char h[33];
    image_md5(w, h);
    ck_assert_str_eq(h, md5_ref[0]);
    memset(w->data[0], 0, (size_t)w->stride[0]); /* writing the copy leaves the decoder alone */
    fp_unref(&w);
    int n = 1;
    while (fp_reader_next(r, &img) > 0) {
        image_md5(img, h);
        ck_assert_str_eq(h, md5_ref[n]);
        n++;
    }
    ck_assert_int_eq(n, NFR);
    fp_reader_close(&r);

    /* converted: the caller's image is its own */
    fp_reader_options o = {0};
    o.threads = TU_THREADS;
    o.format = FP_PIX_BGR24;
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert(fp_image_is_writable(img));
    ck_assert_int_eq(img->format, FP_PIX_BGR24);
    fp_unref(&img);
    fp_reader_close(&r);
}
END_TEST

static void max_held_case(fp_pixfmt fmt, int convert_ahead)
{
    fp_reader_options o = {0};
    o.threads = TU_THREADS;
    o.max_held = 3;
    o.format = fmt;
    o.convert_ahead = convert_ahead;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
    fp_image *held[3] = {0}, *img = NULL;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(fp_reader_next(r, &img), 1);
        held[i] = fp_ref(img);
    }
    /* three held (the rebind dropped img's own reference): a fourth is refused */
    int rc = fp_reader_next(r, &img);
    ck_assert_int_eq(rc, FP_EHELD);
    ck_assert_ptr_null(img);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "max_held"));
    ck_assert_int_eq(fp_reader_next(r, &img), FP_EHELD); /* still, no hang */
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.held, 3);
    fp_unref(&held[0]);
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert_int_eq(img->index, 3); /* nothing was lost */
    fp_unref(&held[1]);
    fp_unref(&held[2]);
    int n = 4;
    while (fp_reader_next(r, &img) > 0)
        ck_assert_int_eq(img->index, n++);
    ck_assert_int_eq(n, NFR);
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.held, 0);
    fp_reader_close(&r);
}

START_TEST(max_held_native)
{
    max_held_case(FP_PIX_NONE, 0);
}
END_TEST

START_TEST(max_held_bgr)
{
    max_held_case(FP_PIX_BGR24, 1);
    max_held_case(FP_PIX_BGR24, 0);
}
END_TEST

START_TEST(sites_are_the_callers)
{
    for (int k = 0; k < 2; k++) {
        fp_reader_options o = {0};
        o.threads = TU_THREADS;
        o.format = k ? FP_PIX_BGR24 : FP_PIX_NONE;
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
        fp_image *img = NULL;
        int line = __LINE__ + 1;
        while (fp_reader_next(r, &img) > 0) {
            const char *file, *func;
            int l;
            fp_obj_site(img, &file, &l, &func);
            ck_assert_str_eq(file, __FILE__);
            ck_assert_int_eq(l, line);
        }
        fp_reader_close(&r);
    }
}
END_TEST

/* FP_DIAG=refs: the rebinding release counts at the caller's
 * fp_reader_next line, so a kept frame's holder is the fp_ref line only. */
START_TEST(rebinding_is_the_callers_in_refs_history)
{
    ck_assert_int_eq(fp_diag_configure("refs"), 0);
    for (int k = 0; k < 2; k++) {
        fp_reader_options o = {0};
        o.threads = TU_THREADS;
        o.format = k ? FP_PIX_BGR24 : FP_PIX_NONE;
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
        fp_image *img = NULL, *keep = NULL;
        int keep_line = 0;
        for (int i = 0; i < 5 && fp_reader_next(r, &img) > 0; i++) {
            if (i == 1) {
                keep_line = __LINE__ + 1;
                keep = fp_ref(img);
            }
        }
        fp_unref(&img);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        ck_assert_int_eq(fp_diag_print_refs(f, keep), 1);
        fclose(f);
        char want[128];
        snprintf(want, sizeof want, "still held by:\n    +1 at %s:%d in ", __FILE__, keep_line);
        ck_assert_msg(strstr(text, want) != NULL, "%s", text);
        free(text);
        fp_unref(&keep);
        fp_reader_close(&r);
    }
    fp_diag_configure("off");
}
END_TEST

START_TEST(every_start_end)
{
    fp_reader_options o = {0};
    o.threads = TU_THREADS;
    o.every = 3;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
    int n = 0;
    FP_FOREACH_FRAME(r, img)
    {
        ck_assert_int_eq(img->index, 3 * n);
        char h[33];
        image_md5(img, h);
        ck_assert_str_eq(h, md5_ref[3 * n]);
        n++;
    }
    ck_assert_int_eq(n, NFR / 3);
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.skipped, NFR - NFR / 3);
    fp_reader_close(&r);

    /* [0.5 s, 1.0 s): frames 13..24 at 25 fps (0.52 .. 0.96) — wait, 12.5: 13 first */
    memset(&o, 0, sizeof o);
    o.threads = TU_THREADS;
    o.start = 0.5;
    o.end = 1.0;
    o.format = FP_PIX_BGR24; /* skipped frames are never converted: see stats */
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
    n = 0;
    int first = -1;
    FP_FOREACH_FRAME(r, img)
    {
        if (first < 0)
            first = (int)img->index;
        ck_assert_double_ge(img->time, 0.5 - 1e-9);
        ck_assert_double_lt(img->time, 1.0);
        n++;
    }
    ck_assert_int_eq(first, 13);
    ck_assert_int_eq(n, 12);
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.out_pool.misses + st.out_pool.hits, 12);
    fp_reader_close(&r);
}
END_TEST

START_TEST(seek_precise_and_key)
{
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(clip_h264, dflt(), &r), 0);
    fp_image *img = NULL;
    for (int i = 0; i < 25; i++)
        ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert_int_eq(fp_reader_seek(r, 0.6, FP_SEEK_PRECISE), 0);
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert_int_eq(img->index, 15);
    ck_assert_double_eq_tol(img->time, 0.6, 1e-6);
    char h[33];
    image_md5(img, h);
    ck_assert_str_eq(h, md5_ref[15]);
    ck_assert_int_eq(fp_reader_seek(r, 0.6, FP_SEEK_KEY), 0);
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert_uint_ne(img->flags & FP_IMAGE_KEY, 0);
    ck_assert_double_le(img->time, 0.6 + 1e-9);
    ck_assert_int_eq(img->index, 10); /* GOP of 10 */
    image_md5(img, h);
    ck_assert_str_eq(h, md5_ref[10]);
    /* after the end, a seek rewinds */
    while (fp_reader_next(r, &img) > 0) {
    }
    ck_assert_int_eq(fp_reader_seek(r, 0, FP_SEEK_PRECISE), 0);
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert_int_eq(img->index, 0);
    ck_assert_int_eq(fp_reader_seek(r, -1, 0), FP_EINVAL);
    fp_unref(&img);
    fp_reader_close(&r);
}
END_TEST

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len);
    ck_assert_uint_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

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

START_TEST(resize_and_formats)
{
    static const fp_pixfmt fmts[] = {FP_PIX_GRAY8, FP_PIX_BGR24, FP_PIX_RGB24,
                                     FP_PIX_BGRA,  FP_PIX_RGBA,  FP_PIX_YUV420P};
    for (int i = 0; i < 6; i++) {
        fp_reader_options o = {0};
        o.threads = TU_THREADS;
        o.format = fmts[i];
        o.width = 160; /* height 0: keeps the aspect */
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
        fp_reader_info info;
        fp_reader_info(r, &info);
        ck_assert_int_eq(info.out_width, 160);
        ck_assert_int_eq(info.out_height, 120);
        int n = 0;
        FP_FOREACH_FRAME(r, img)
        {
            ck_assert_int_eq(img->format, fmts[i]);
            ck_assert_int_eq(img->width, 160);
            ck_assert_int_eq(img->height, 120);
            n++;
        }
        ck_assert_int_eq(n, NFR);
        fp_reader_stats st;
        fp_reader_get_stats(r, &st);
        ck_assert_uint_le(st.out_pool.misses, 2); /* one buffer reused frame after frame */
        fp_reader_close(&r);
    }
    fp_reader_options o = {0};
    o.threads = TU_THREADS;
    o.format = FP_PIX_OTHER;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), FP_EINVAL);
    fp_reader_close(&r);
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

/* Frames handed to a consumer thread that checks and releases them while the
 * reader keeps decoding: max_held throttles the producer (FP_EHELD, retry),
 * nothing is lost or overwritten, and the buffers go back from that thread. */
typedef struct handoff {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fp_image *q[64];
    char md5_at_delivery[NFR][33];
    int head, tail, done, bad, seen, native;
} handoff;

static void *consumer(void *arg)
{
    handoff *h = arg;
    /* Start once the producer holds its whole bound (4 frames queued): it
     * then meets FP_EHELD however fast either thread runs. */
    pthread_mutex_lock(&h->mu);
    while (h->tail < 4 && !h->done)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    for (;;) {
        pthread_mutex_lock(&h->mu);
        while (h->head == h->tail && !h->done)
            pthread_cond_wait(&h->cv, &h->mu);
        if (h->head == h->tail && h->done) {
            pthread_mutex_unlock(&h->mu);
            return NULL;
        }
        fp_image *img = h->q[h->head++ % 64];
        pthread_mutex_unlock(&h->mu);
        usleep(2000); /* slower than the decoder */
        char md5[33];
        image_md5(img, md5);
        /* unchanged since delivery (never recycled while held), and for
         * native frames equal to ffmpeg's */
        if (img->index < 0 || img->index >= NFR || strcmp(md5, h->md5_at_delivery[img->index]) ||
            (h->native && strcmp(md5, md5_ref[img->index])))
            h->bad++;
        h->seen++;
        fp_unref(&img);
    }
}

START_TEST(release_on_other_thread)
{
    for (int k = 0; k < 2; k++) {
        fp_reader_options o = {0};
        o.threads = TU_THREADS;
        o.max_held = 4;
        o.format = k ? FP_PIX_BGR24 : FP_PIX_NONE;
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
        static handoff h;
        memset(&h, 0, sizeof h);
        pthread_mutex_init(&h.mu, NULL);
        pthread_cond_init(&h.cv, NULL);
        h.native = !k;
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, consumer, &h), 0);
        fp_image *img = NULL;
        int n = 0, limits = 0, rc;
        for (;;) {
            rc = fp_reader_next(r, &img);
            if (rc == FP_EHELD) {
                limits++;
                usleep(500);
                continue;
            }
            if (rc <= 0)
                break;
            ck_assert_int_eq(img->index, n);
            image_md5(img, h.md5_at_delivery[n]);
            pthread_mutex_lock(&h.mu);
            h.q[h.tail++ % 64] = img; /* ownership moves to the consumer */
            img = NULL;
            pthread_cond_signal(&h.cv);
            pthread_mutex_unlock(&h.mu);
            n++;
        }
        ck_assert_int_eq(rc, 0);
        pthread_mutex_lock(&h.mu);
        h.done = 1;
        pthread_cond_signal(&h.cv);
        pthread_mutex_unlock(&h.mu);
        pthread_join(th, NULL);
        ck_assert_int_eq(n, NFR);
        ck_assert_int_eq(h.seen, NFR);
        ck_assert_int_eq(h.bad, 0);
        ck_assert_int_gt(limits, 0); /* the bound did throttle */
        fp_reader_stats st;
        fp_reader_get_stats(r, &st);
        ck_assert_uint_eq(st.held, 0);
        fp_reader_close(&r);
        pthread_mutex_destroy(&h.mu);
        pthread_cond_destroy(&h.cv);
    }
}
END_TEST

/* ---- network: deadline and interrupt ------------------------------------------------ */

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

#define REC_MAX 256

/* Everything the caller sees of one run: each frame and how the run ended. */
typedef struct run_rec {
    int n, rc;
    int64_t index[REC_MAX], pts[REC_MAX];
    unsigned flags[REC_MAX];
    double time[REC_MAX];
    char md5[REC_MAX][33];
    char msg[256];
} run_rec;

/* Reads to the end; after `seek_after` frames (0 = never) seeks precisely to
 * 0.4 s once. */
static void run_collect(fp_reader *r, int seek_after, run_rec *rec)
{
    memset(rec, 0, sizeof *rec);
    fp_image *img = NULL;
    int rc, seeked = 0;
    while ((rc = fp_reader_next(r, &img)) > 0) {
        ck_assert_int_lt(rec->n, REC_MAX);
        rec->index[rec->n] = img->index;
        rec->pts[rec->n] = img->pts;
        rec->time[rec->n] = img->time;
        rec->flags[rec->n] = img->flags;
        image_md5(img, rec->md5[rec->n]);
        rec->n++;
        if (seek_after && rec->n == seek_after && !seeked) {
            ck_assert_int_eq(fp_reader_seek(r, 0.4, FP_SEEK_PRECISE), 0);
            seeked = 1;
        }
    }
    ck_assert_ptr_null(img);
    rec->rc = rc;
    snprintf(rec->msg, sizeof rec->msg, "%s", fp_reader_errmsg(r));
}

static void rec_equal(const run_rec *a, const run_rec *b)
{
    ck_assert_int_eq(a->n, b->n);
    ck_assert_int_eq(a->rc, b->rc);
    ck_assert_str_eq(a->msg, b->msg);
    for (int i = 0; i < a->n; i++) {
        ck_assert_int_eq(a->index[i], b->index[i]);
        ck_assert_int_eq(a->pts[i], b->pts[i]);
        ck_assert_uint_eq(a->flags[i], b->flags[i]);
        ck_assert(a->time[i] == b->time[i]);
        ck_assert_str_eq(a->md5[i], b->md5[i]);
    }
}

/* Opens `clip` with `o`, converting ahead (1) and on the caller's thread
 * (0), and checks that the caller sees exactly the same run. Returns the
 * frames delivered. */
static int same_both_ways(const char *clip, fp_reader_options o, int seek_after, run_rec *out)
{
    static run_rec rec[2];
    for (int k = 0; k < 2; k++) {
        o.convert_ahead = k == 0;
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(clip, &o, &r), 0);
        fp_reader_info info;
        ck_assert_int_eq(fp_reader_info(r, &info), 0);
        ck_assert_int_eq(info.convert_ahead, k == 0);
        ck_assert_uint_eq(info.out_pool_max_buffers, info.max_held + (k == 0));
        run_collect(r, seek_after, &rec[k]);
        fp_reader_stats st;
        fp_reader_get_stats(r, &st);
        ck_assert_uint_eq(st.held, 0);
        ck_assert_uint_eq(st.out_pool.outstanding, 0); /* nothing left in flight */
        ck_assert_uint_le(st.out_pool.allocated, info.out_pool_max_buffers);
        fp_reader_close(&r);
    }
    rec_equal(&rec[0], &rec[1]);
    if (out)
        *out = rec[0];
    return rec[0].n;
}

START_TEST(convert_ahead_same_frames)
{
    fp_reader_options o = {0};
    o.threads = TU_THREADS;
    o.format = FP_PIX_BGR24;
    run_rec rec;
    ck_assert_int_eq(same_both_ways(clip_h264, o, 0, &rec), NFR);
    ck_assert_int_eq(rec.rc, 0);
    /* a seek with a frame in flight: the frame after the seek is the target */
    ck_assert_int_eq(same_both_ways(clip_h264, o, 7, &rec), 7 + NFR - 10);
    ck_assert_int_eq(rec.index[7], 10);
    o.every = 3;
    o.start = 0.2;
    ck_assert_int_eq(same_both_ways(clip_h264, o, 0, NULL), 8); /* 6, 9, ..., 27 */
    o.every = 0;
    o.start = 0;
    o.format = FP_PIX_GRAY8;
    o.width = 100;
    ck_assert_int_eq(same_both_ways(clip_h264, o, 0, NULL), NFR);

    /* a mid-stream size change: a new scaler while a frame is in flight */
    char a[1024], b[1024], both[1100], cmd[4096];
    ck_assert_ptr_nonnull(clip_make("ra_320.ts", SRC "-frames:v 12 -c:v libx264 -bf 2", a,
                                    sizeof a));
    ck_assert_ptr_nonnull(clip_make("ra_176.ts",
                                    "-f lavfi -i testsrc2=size=176x144:rate=25 -frames:v 12 "
                                    "-c:v libx264 -bf 2",
                                    b, sizeof b));
    snprintf(both, sizeof both, "%s/ra_both_%d.ts", clip_dir(), (int)getpid());
    snprintf(cmd, sizeof cmd, "cat '%s' '%s' > '%s'", a, b, both);
    ck_assert_int_eq(system(cmd), 0);
    o.format = FP_PIX_BGR24;
    o.width = 0;
    ck_assert_int_eq(same_both_ways(both, o, 0, &rec), 24);
    ck_assert_str_ne(rec.md5[11], rec.md5[12]);

    /* damaged input: the same frames and the same end (one decoder thread:
     * with frame threads, which frames FFmpeg flags as concealed depends on
     * thread timing, from run to run, converting ahead or not) */
    o.threads = 1;
    char bad[1100];
    snprintf(bad, sizeof bad, "%s/ra_corrupt_%d.mp4", clip_dir(), (int)getpid());
    ck_assert_int_eq(clip_corrupt_copy(clip_h264, bad, 97, 0), 0);
    same_both_ways(bad, o, 0, NULL);
    ck_assert_int_eq(clip_corrupt_copy(clip_ts, bad, 0, 0.6), 0);
    ck_assert_int_gt(same_both_ways(bad, o, 0, NULL), 0);
    unlink(bad);
    unlink(both);
}
END_TEST

/* A non-seekable input whose reads fail after `limit` bytes. */
typedef struct failing_input {
    FILE *f;
    long limit, pos;
} failing_input;

static int failing_read(void *user, uint8_t *buf, int size)
{
    failing_input *in = user;
    if (in->pos >= in->limit)
        return -1;
    if (size > in->limit - in->pos)
        size = (int)(in->limit - in->pos);
    int n = (int)fread(buf, 1, (size_t)size, in->f);
    in->pos += n;
    return n;
}

START_TEST(convert_ahead_error_after_frames)
{
    /* An error met while decoding ahead comes after the frame before it:
     * the caller sees the same frames and the same error either way. */
    run_rec rec[2];
    for (int k = 0; k < 2; k++) {
        failing_input in = {fopen(clip_long_ts, "rb"), 0, 0};
        ck_assert_ptr_nonnull(in.f);
        fseek(in.f, 0, SEEK_END);
        in.limit = ftell(in.f) / 2;
        fseek(in.f, 0, SEEK_SET);
        fp_reader_options o = *dflt();
        o.format = FP_PIX_BGR24;
        o.convert_ahead = k == 0;
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open_io(failing_read, NULL, &in, &o, &r), 0);
        run_collect(r, 0, &rec[k]);
        fp_reader_close(&r);
        fclose(in.f);
    }
    rec_equal(&rec[0], &rec[1]);
    ck_assert_int_gt(rec[0].n, 10);
    ck_assert_int_lt(rec[0].n, 250);
    ck_assert_int_eq(rec[0].rc, FP_EIO);
    ck_assert_ptr_nonnull(strstr(rec[0].msg, "read"));
}
END_TEST

START_TEST(convert_ahead_close_and_seek)
{
    fp_reader_options o = *dflt();
    o.format = FP_PIX_BGR24;
    o.convert_ahead = 1;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
    fp_image *img = NULL, *kept = NULL;
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    kept = fp_ref(img);
    char before[33], after[33];
    image_md5(kept, before);
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert_int_eq(img->index, 1);
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.held, 2);
    ck_assert_uint_eq(st.out_pool.outstanding, 3); /* the two held and frame 2 in flight */
    /* a seek drops the frame in flight */
    ck_assert_int_eq(fp_reader_seek(r, 0, FP_SEEK_PRECISE), 0);
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.out_pool.outstanding, 2);
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert_int_eq(img->index, 0);
    image_md5(img, after);
    ck_assert_str_eq(before, after);
    /* closing with a frame in flight and frames held: the held ones stay valid */
    fp_reader_close(&r);
    image_md5(kept, after);
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(kept->index, 0);
    fp_unref(&kept);
    fp_unref(&img);
}
END_TEST

START_TEST(prefill_pool)
{
    for (int prefill = 0; prefill < 2; prefill++) {
        fp_reader_options o = *dflt();
        o.format = FP_PIX_BGR24;
        o.convert_ahead = 1;
        o.max_held = 4;
        o.prefill = prefill;
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
        fp_image *img = NULL, *win[3] = {0};
        ck_assert_int_eq(fp_reader_next(r, &img), 1);
        fp_reader_stats st;
        fp_reader_get_stats(r, &st);
        /* prefilled: the whole bound (max_held + the frame in flight) exists
         * before the first frame; otherwise only what was used */
        ck_assert_uint_eq(st.out_pool.allocated, prefill ? 5 : 2);
        int n = 1;
        do { /* a window of the last 3 frames held, plus the current one */
            fp_unref(&win[n % 3]);
            win[n % 3] = fp_ref(img);
            n++;
        } while (fp_reader_next(r, &img) > 0);
        ck_assert_int_eq(n, NFR + 1);
        fp_reader_get_stats(r, &st);
        ck_assert_uint_eq(st.out_pool.peak, 5);
        ck_assert_uint_eq(st.out_pool.misses, prefill ? 0 : 5);
        for (int i = 0; i < 3; i++)
            fp_unref(&win[i]);
        fp_reader_close(&r);
    }
}
END_TEST

/* ---- FP_FOREACH_FRAME: leaving early releases the frame ----------------------------- */

static uint64_t images_alive(void)
{
    fp_type_stats ts;
    fp_type_get_stats(&fp_image_type, &ts);
    return ts.live;
}

/* Returns from inside the loop with the frame of index `at`. */
static int64_t return_at(fp_reader *r, int64_t at)
{
    FP_FOREACH_FRAME(r, img) {
        if (img->index == at)
            return img->index;
    }
    return -1;
}

START_TEST(foreach_break_releases)
{
    /* The loop users write (ESC quits): open, a few frames, break, close —
     * 1,000 times, native and converted. Nothing may stay alive. */
    uint64_t alive0 = images_alive();
    /* ThreadSanitizer makes an open 20-50x slower: 50 there (the threads
     * are what it checks); 1,000 in the plain and ASan builds */
#if defined(__SANITIZE_THREAD__)
    const int iterations = 50;
#else
    const int iterations = 1000;
#endif
    for (int it = 0; it < iterations; it++) {
        fp_reader_options o = *dflt();
        o.threads = 1 + it % 2; /* quick opens; frame threads too */
        if (it & 2)
            o.format = FP_PIX_BGR24;
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(clip_small, &o, &r), 0);
        int n = 0;
        FP_FOREACH_FRAME(r, img) {
            ck_assert_ptr_nonnull(img);
            if (++n == 3 + it % 4)
                break;
        }
        ck_assert_int_eq(n, 3 + it % 4);
        fp_reader_stats st;
        ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
        ck_assert_uint_eq(st.held, 0); /* the break released it, before the close */
        if (it % 100 == 0) {
            ck_assert_int_eq(return_at(r, n + 2), n + 2);
            ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
            ck_assert_uint_eq(st.held, 0);
        }
        fp_reader_close(&r);
        ck_assert_msg(images_alive() == alive0, "iteration %d: %llu images alive, %llu before",
                      it, (unsigned long long)images_alive(), (unsigned long long)alive0);
    }
    /* running to the end (and past it) releases once, never twice */
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(clip_small, dflt(), &r), 0);
    int n = 0;
    FP_FOREACH_FRAME(r, img) n++;
    ck_assert_int_eq(n, 25);
    FP_FOREACH_FRAME(r, img) n++;
    ck_assert_int_eq(n, 25);
    fp_reader_close(&r);
    ck_assert_uint_eq(images_alive(), alive0);
}
END_TEST

/* ---- messages never show credentials; info does not change the reader ------------- */

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

START_TEST(info_leaves_reader_alone)
{
    /* before any frame, info computes what the output will be without
     * touching the reader: not its geometry, not its message */
    char tall[1024];
    ck_assert_ptr_nonnull(clip_make("r_tall.mp4",
                                    "-f lavfi -i testsrc2=size=16x256:rate=25 -frames:v 5 "
                                    "-c:v libx264 -pix_fmt yuv420p",
                                    tall, sizeof tall));
    fp_reader_options o = *dflt();
    o.format = FP_PIX_BGR24;
    o.width = FP_MAX_DIMENSION; /* keeping the aspect, the height would be 16x too big */
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(tall, &o, &r), 0);
    ck_assert_str_eq(fp_reader_errmsg(r), "");
    fp_reader_info info;
    ck_assert_int_eq(fp_reader_info(r, &info), 0);
    ck_assert_str_eq(fp_reader_errmsg(r), ""); /* no message from a const call */
    ck_assert_int_eq(info.out_width, 16);
    ck_assert_int_eq(info.out_height, 256);
    fp_image *img = NULL;
    ck_assert_int_eq(fp_reader_next(r, &img), FP_EINVAL); /* the frame itself says why */
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "exceeds"));
    fp_reader_close(&r);

    o.width = 0;
    o.height = 120;
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
    fp_reader_info a, b;
    ck_assert_int_eq(fp_reader_info(r, &a), 0);
    ck_assert_int_eq(fp_reader_info(r, &b), 0);
    ck_assert_int_eq(a.out_width, 160);
    ck_assert_int_eq(a.out_height, 120);
    ck_assert_int_eq(b.out_width, 160);
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert_int_eq(img->width, 160);
    ck_assert_int_eq(img->height, 120);
    ck_assert_int_eq(fp_reader_info(r, &a), 0);
    ck_assert_int_eq(a.out_width, 160);
    ck_assert_int_eq(a.out_height, 120);
    fp_unref(&img);
    fp_reader_close(&r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("reader");
    TCase *tc = tcase_create("api");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, defaults_native);
    tcase_add_test(tc, rebind_and_keep);
    tcase_add_test(tc, writable_rules);
    tcase_add_test(tc, max_held_native);
    tcase_add_test(tc, max_held_bgr);
    tcase_add_test(tc, sites_are_the_callers);
    tcase_add_test(tc, rebinding_is_the_callers_in_refs_history);
    tcase_add_test(tc, every_start_end);
    tcase_add_test(tc, seek_precise_and_key);
    tcase_add_test(tc, memory_and_io);
    tcase_add_test(tc, resize_and_formats);
    tcase_add_test(tc, release_on_other_thread);
    tcase_add_test(tc, open_deadline);
    tcase_add_test(tc, interrupt_from_thread);
    tcase_add_test(tc, convert_ahead_same_frames);
    tcase_add_test(tc, convert_ahead_error_after_frames);
    tcase_add_test(tc, convert_ahead_close_and_seek);
    tcase_add_test(tc, prefill_pool);
    tcase_add_test(tc, url_redaction);
    tcase_add_test(tc, errors_hide_credentials);
    tcase_add_test(tc, info_leaves_reader_alone);
    tcase_add_test(tc, loop_matches_stream_loop);
    tcase_add_test(tc, loop_forever_seek_and_bad_uses);
    suite_add_tcase(s, tc);
    /* The two long loops (20,000 frames; 1,000 opens) get their own time
     * bound: under ASan on a busy machine each takes over a minute. */
    TCase *lc = tcase_create("long");
    tcase_add_unchecked_fixture(lc, setup, NULL);
    tcase_set_timeout(lc, 200);
    tcase_add_test(lc, long_loop_flat);
    tcase_add_test(lc, foreach_break_releases);
    suite_add_tcase(s, lc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
