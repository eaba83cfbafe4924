/* fp_reader's convert and ahead stages: output sizes and formats, converting
 * ahead (same frames, errors after frames, close and seek), prefilled
 * pools. */
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

static Suite *suite(void)
{
    Suite *s = suite_create("reader_convert");
    TCase *tc = tu_tcase(s, "convert", setup, 60);
    tcase_add_test(tc, resize_and_formats);
    tcase_add_test(tc, convert_ahead_same_frames);
    tcase_add_test(tc, convert_ahead_error_after_frames);
    tcase_add_test(tc, convert_ahead_close_and_seek);
    tcase_add_test(tc, prefill_pool);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
