/* fp_reader: skipping and seeking — every, start, end, precise and key
 * seeks. */
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

static Suite *suite(void)
{
    Suite *s = suite_create("reader_seek");
    TCase *tc = tu_tcase(s, "seek", setup, 60);
    tcase_add_test(tc, every_start_end);
    tcase_add_test(tc, seek_precise_and_key);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
