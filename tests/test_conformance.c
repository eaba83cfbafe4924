/* Conformance: every native frame's MD5 and the frame count equal ffmpeg's
 * own decode (`ffmpeg -f framemd5`, no frame duplication, no rescaling after
 * a size change), for clips generated here in many codecs and layouts and
 * for the real footage in ../shared/videos. Converted output (BGR24 and
 * friends) equals ffmpeg's conversion with the same swscale flags. */
#define _POSIX_C_SOURCE 200809L
#include "avclips.h"
#include "testutil.h"

#include <framepool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXF 2048
#define SRC "-f lavfi -i testsrc2=size=320x240:rate=25 "

typedef struct clip {
    const char *name;
    const char *args; /* NULL: special (see make_clip) */
    int frames;       /* expected frame count, checked against the oracle too */
} clip;

static const clip clips[] = {
    {"h264_bframes.mp4", SRC "-frames:v 30 -c:v libx264 -bf 3 -g 12 -pix_fmt yuv420p", 30},
    {"mpeg4_bframes.avi", SRC "-frames:v 30 -c:v mpeg4 -bf 2 -g 12", 30},
    {"mjpeg.avi", SRC "-frames:v 15 -c:v mjpeg -q:v 5", 15},
    {"vp9.webm", SRC "-frames:v 20 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 10", 20},
    {"hevc8.mkv", SRC "-frames:v 20 -c:v libx265 -preset ultrafast -x265-params log-level=error "
                  "-pix_fmt yuv420p",
     20},
    {"hevc10.mkv", SRC "-frames:v 20 -c:v libx265 -preset ultrafast -x265-params "
                   "log-level=error -pix_fmt yuv420p10le",
     20},
    {"odd_321x241.mkv", "-f lavfi -i testsrc2=size=321x241:rate=25 -frames:v 15 -c:v libx264 "
                        "-pix_fmt yuv444p",
     15},
    {"odd_mjpeg_321x241.avi", "-f lavfi -i testsrc2=size=321x241:rate=25 -frames:v 10 -c:v "
                              "mjpeg",
     10},
    {"h264_422.mkv", SRC "-frames:v 15 -c:v libx264 -pix_fmt yuv422p", 15},
    {"h264_444.mkv", SRC "-frames:v 15 -c:v libx264 -pix_fmt yuv444p", 15},
    {"h264_422_10.mkv", SRC "-frames:v 10 -c:v libx264 -pix_fmt yuv422p10le", 10},
    {"gray_ffv1.mkv", SRC "-frames:v 10 -c:v ffv1 -pix_fmt gray", 10},
    {"mpeg2.ts", SRC "-frames:v 20 -c:v mpeg2video -bf 2", 20},
    {"size_change.ts", NULL, 30},
    /* rawvideo has no DR1: its frames are wrapped, not pooled */
    {"raw.y4m", "-f lavfi -i testsrc2=size=160x120:rate=25 -frames:v 10", 10},
};
#define NCLIPS ((int)(sizeof clips / sizeof clips[0]))

static const char *make_clip(const clip *c, char *path, size_t cap)
{
    if (c->args)
        return clip_make(c->name, c->args, path, cap);
    /* A mid-stream resolution change: two MPEG-TS clips of different sizes
     * concatenated byte-wise, as a camera or a `cat a.ts b.ts` gives. */
    char a[1024], b[1024];
    if (!clip_make("part_320x240.ts", SRC "-frames:v 15 -c:v libx264 -bf 2 -pix_fmt yuv420p", a,
                   sizeof a) ||
        !clip_make("part_176x144.ts",
                   "-f lavfi -i testsrc2=size=176x144:rate=25 -frames:v 15 -c:v libx264 -bf 2 "
                   "-pix_fmt yuv420p",
                   b, sizeof b))
        return NULL;
    snprintf(path, cap, "%s/%s", clip_dir(), c->name);
    FILE *t = fopen(path, "rb");
    if (t) {
        fclose(t);
        return path;
    }
    char tmp[1100], cmd[8192];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    snprintf(cmd, sizeof cmd, "cat '%s' '%s' > '%s' && mv '%s' '%s'", a, b, tmp, tmp, path);
    return system(cmd) == 0 ? path : NULL;
}

static char (*oracle)[33];
static char (*ours)[33];

/* Decodes `path` with the reader and compares with the oracle run with
 * `extra` ffmpeg options. Returns the number of frames decoded. */
static int compare(const char *path, const fp_reader_options *o, const char *extra,
                   int expect_pooled)
{
    int n_or = oracle_md5(path, extra, oracle, MAXF);
    ck_assert_msg(n_or > 0, "the ffmpeg oracle failed on %s", path);
    fp_reader *r = NULL;
    int rc = fp_reader_open(path, o, &r);
    ck_assert_msg(rc == 0, "open %s: %s", path, fp_reader_errmsg(r));
    int n = 0;
    fp_image *img = NULL;
    while ((rc = fp_reader_next(r, &img)) > 0) {
        ck_assert_int_lt(n, MAXF);
        image_md5(img, ours[n]);
        if (expect_pooled)
            ck_assert_msg(tu_pool_of(img) != NULL, "%s frame %d is not from a pool", path, n);
        ck_assert_int_eq(img->index, n);
        n++;
    }
    ck_assert_msg(rc == 0, "%s: %s", path, fp_reader_errmsg(r));
    ck_assert_ptr_null(img);
    ck_assert_msg(n == n_or, "%s: %d frames, ffmpeg decodes %d", path, n, n_or);
    for (int i = 0; i < n; i++)
        ck_assert_msg(!strcmp(ours[i], oracle[i]), "%s frame %d: md5 %s, ffmpeg %s", path, i,
                      ours[i], oracle[i]);
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    if (expect_pooled)
        ck_assert_int_eq(st.wrapped, 0);
    ck_assert_int_eq(st.delivered, (uint64_t)n);
    fp_reader_close(&r);
    return n;
}

START_TEST(native_generated)
{
    const clip *c = &clips[_i];
    char path[1024];
    ck_assert_msg(make_clip(c, path, sizeof path) != NULL, "cannot generate %s", c->name);
    fp_reader_options o = {0};
    int dr1 = strstr(c->name, ".y4m") == NULL;
    int n = compare(path, &o, NULL, dr1);
    if (!dr1) { /* wrapped frames are counted as held like pooled ones */
        fp_reader *r = NULL;
        o.max_held = 2;
        ck_assert_int_eq(fp_reader_open(path, &o, &r), 0);
        fp_image *a = NULL, *b = NULL;
        ck_assert_int_eq(fp_reader_next(r, &a), 1);
        ck_assert_int_eq(fp_reader_next(r, &b), 1);
        fp_image *c2 = NULL;
        ck_assert_int_eq(fp_reader_next(r, &c2), FP_EHELD);
        fp_reader_stats st;
        fp_reader_get_stats(r, &st);
        ck_assert_uint_eq(st.held, 2);
        ck_assert_uint_eq(st.wrapped, 2);
        ck_assert_ptr_null(tu_pool_of(a));
        ck_assert_uint_gt(a->bytes, (size_t)160 * 120);
        fp_unref(&a);
        ck_assert_int_eq(fp_reader_next(r, &c2), 1);
        ck_assert_int_eq(c2->index, 2);
        fp_unref(&c2);
        fp_reader_close(&r);
        ck_assert_int_eq(b->width, 160); /* outlives the reader */
        fp_unref(&b);
        o.max_held = 0;
    }
    ck_assert_msg(n == c->frames, "%s: %d frames, generated %d", c->name, n, c->frames);
    if (!c->args) { /* the size change was seen and handled */
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(path, &o, &r), 0);
        int w0 = 0, changes = 0;
        FP_FOREACH_FRAME(r, img)
        {
            if (w0 && img->width != w0)
                changes++;
            w0 = img->width;
        }
        fp_reader_stats st;
        fp_reader_get_stats(r, &st);
        ck_assert_int_eq(changes, 1);
        ck_assert_int_eq(st.size_changes, 1);
        fp_reader_close(&r);
    }
}
END_TEST

START_TEST(native_threads_1)
{
    /* the same result without frame threads */
    char path[1024];
    ck_assert_ptr_nonnull(make_clip(&clips[0], path, sizeof path));
    fp_reader_options o = {0};
    o.threads = 1;
    compare(path, &o, NULL, 1);
}
END_TEST

static const char *const shared_files[] = {"bottle-detection.mp4", "car-detection.mp4",
                                           "milk.mkv"};

START_TEST(native_shared)
{
    const char *dir = shared_videos();
    if (!dir)
        return;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, shared_files[_i]);
    fp_reader_options o = {0};
    compare(path, &o, NULL, 1);
}
END_TEST

/* Converted output vs ffmpeg's own swscale conversion with the same flags. */
typedef struct conv {
    fp_pixfmt fmt;
    const char *ff;
} conv;
static const conv convs[] = {
    {FP_PIX_BGR24, "bgr24"}, {FP_PIX_RGB24, "rgb24"}, {FP_PIX_BGRA, "bgra"},
    {FP_PIX_RGBA, "rgba"},   {FP_PIX_GRAY8, "gray"},  {FP_PIX_YUV420P, "yuv420p"},
};
#define NCONV ((int)(sizeof convs / sizeof convs[0]))

static void compare_converted(const char *path, int ci)
{
    fp_reader_options o = {0};
    o.format = convs[ci].fmt;
    char extra[128];
    snprintf(extra, sizeof extra, "-pix_fmt %s -sws_flags bilinear", convs[ci].ff);
    compare(path, &o, extra, 0);
}

START_TEST(converted_generated)
{
    /* three sources: 4:2:0 H.264, full-range MJPEG (4:2:2), 4:4:4 odd size */
    static const int which[] = {0, 2, 6};
    char path[1024];
    for (int k = 0; k < 3; k++) {
        const clip *c = &clips[which[k]];
        ck_assert_ptr_nonnull(make_clip(c, path, sizeof path));
        if (convs[_i].fmt == FP_PIX_YUV420P && which[k] == 2)
            continue; /* full-range YUV is kept as is (documented); ffmpeg compresses it */
        compare_converted(path, _i);
    }
}
END_TEST

START_TEST(converted_shared)
{
    const char *dir = shared_videos();
    if (!dir)
        return;
    char path[1024];
    for (int k = 0; k < 3; k++) {
        if (convs[_i].fmt == FP_PIX_YUV420P && k == 2)
            continue; /* milk.mkv is full range: see converted_generated */
        snprintf(path, sizeof path, "%s/%s", dir, shared_files[k]);
        compare_converted(path, _i);
    }
}
END_TEST

static Suite *suite(void)
{
    oracle = calloc(MAXF, sizeof *oracle);
    ours = calloc(MAXF, sizeof *ours);
    Suite *s = suite_create("conformance");
    TCase *tc = tcase_create("native");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, native_generated, 0, NCLIPS);
    tcase_add_test(tc, native_threads_1);
    tcase_add_loop_test(tc, native_shared, 0, 3);
    suite_add_tcase(s, tc);
    tc = tcase_create("converted");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, converted_generated, 0, NCONV);
    /* real footage: BGR24 (the format every OpenCV user asks for) and gray;
     * the other formats run on the generated clips to keep this fast */
    tcase_add_loop_test(tc, converted_shared, 0, 1);
    tcase_add_loop_test(tc, converted_shared, 4, 5);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
