/* cv.h: the OpenCV wrapper's C ABI — imwrite, imshow, resize, convert. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <framepool.h>
#include <framepool/cv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fp_test_cv_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Reads a binary PGM (P5) or PPM (P6) file written by OpenCV. */
static uint8_t *read_pnm(const char *path, int *w, int *h, int *channels)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char magic[3] = {0};
    int maxval = 0;
    ck_assert_int_eq(fscanf(f, "%2s %d %d %d", magic, w, h, &maxval), 4);
    fgetc(f);
    *channels = strcmp(magic, "P6") == 0 ? 3 : 1;
    ck_assert_int_eq(maxval, 255);
    size_t n = (size_t)*w * (size_t)*h * (size_t)*channels;
    uint8_t *buf = malloc(n);
    ck_assert_uint_eq(fread(buf, 1, n, f), n);
    fclose(f);
    return buf;
}

static fp_image *make(fp_pixfmt f, int w, int h)
{
    fp_image *img = NULL;
    ck_assert_int_eq(fp_image_new(f, w, h, &img), FP_OK);
    return img;
}

START_TEST(test_imwrite_gray_and_bgr_are_exact)
{
    fp_image *g = make(FP_PIX_GRAY8, 37, 21);
    for (int y = 0; y < 21; y++)
        for (int x = 0; x < 37; x++)
            g->data[0][y * g->stride[0] + x] = (uint8_t)(x * 7 + y * 3);
    char path[300];
    snprintf(path, sizeof path, "%s/g.pgm", tmpdir);
    ck_assert_int_eq(fp_cv_imwrite(path, g), FP_OK);
    int w, h, c;
    uint8_t *px = read_pnm(path, &w, &h, &c);
    ck_assert_int_eq(w, 37);
    ck_assert_int_eq(h, 21);
    ck_assert_int_eq(c, 1);
    for (int y = 0; y < 21; y++)
        ck_assert_int_eq(memcmp(px + y * 37, g->data[0] + y * g->stride[0], 37), 0);
    free(px);

    /* BGR24 in memory, RGB order in a PPM file. */
    fp_image *b = make(FP_PIX_BGR24, 5, 4);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 5; x++) {
            uint8_t *p = b->data[0] + y * b->stride[0] + x * 3;
            p[0] = 10, p[1] = 20, p[2] = (uint8_t)(30 + x + y);
        }
    snprintf(path, sizeof path, "%s/b.ppm", tmpdir);
    ck_assert_int_eq(fp_cv_imwrite(path, b), FP_OK);
    px = read_pnm(path, &w, &h, &c);
    ck_assert_int_eq(c, 3);
    ck_assert_int_eq(px[0], 30);
    ck_assert_int_eq(px[1], 20);
    ck_assert_int_eq(px[2], 10);
    ck_assert_int_eq(px[(3 * 5 + 4) * 3], 30 + 4 + 3);
    free(px);
    fp_unref(&g);
    fp_unref(&b);
}
END_TEST

START_TEST(test_imwrite_converts_rgb_and_yuv)
{
    fp_image *rgb = make(FP_PIX_RGB24, 8, 8);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            uint8_t *p = rgb->data[0] + y * rgb->stride[0] + x * 3;
            p[0] = 200, p[1] = 100, p[2] = 50;
        }
    char path[300];
    snprintf(path, sizeof path, "%s/rgb.ppm", tmpdir);
    ck_assert_int_eq(fp_cv_imwrite(path, rgb), FP_OK);
    int w, h, c;
    uint8_t *px = read_pnm(path, &w, &h, &c);
    ck_assert_int_eq(px[0], 200); /* PPM is RGB: the same bytes come back */
    ck_assert_int_eq(px[1], 100);
    ck_assert_int_eq(px[2], 50);
    free(px);

    /* Mid-grey YUV (limited range, Y=128, U=V=128) is grey in BGR. */
    fp_image *yuv = make(FP_PIX_YUV420P, 16, 8);
    memset(yuv->data[0], 128, (size_t)yuv->stride[0] * 8);
    memset(yuv->data[1], 128, (size_t)yuv->stride[1] * 4);
    memset(yuv->data[2], 128, (size_t)yuv->stride[2] * 4);
    snprintf(path, sizeof path, "%s/yuv.ppm", tmpdir);
    ck_assert_int_eq(fp_cv_imwrite(path, yuv), FP_OK);
    px = read_pnm(path, &w, &h, &c);
    ck_assert_int_eq(w, 16);
    ck_assert_int_eq(h, 8);
    for (int i = 0; i < 3; i++)
        ck_assert_int_le(abs(px[i] - 130), 2);
    free(px);
    fp_unref(&rgb);
    fp_unref(&yuv);
}
END_TEST

START_TEST(test_imwrite_errors_are_named)
{
    fp_image *g = make(FP_PIX_GRAY8, 4, 4);
    char path[300];
    snprintf(path, sizeof path, "%s/x.notanimage", tmpdir);
    ck_assert_int_eq(fp_cv_imwrite(path, g), FP_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "encoder"));
    snprintf(path, sizeof path, "%s/no/such/dir/x.png", tmpdir);
    ck_assert_int_eq(fp_cv_imwrite(path, g), FP_EIO);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "could not write"));
    ck_assert_int_eq(fp_cv_imwrite(NULL, g), FP_EINVAL);
    ck_assert_int_eq(fp_cv_imwrite(path, NULL), FP_EINVAL);
    fp_unref(&g);
}
END_TEST

START_TEST(test_imshow_without_display_is_an_error_not_an_abort)
{
    unsetenv("DISPLAY");
    unsetenv("WAYLAND_DISPLAY");
    ck_assert_int_eq(fp_cv_has_display(), 0);
    fp_image *g = make(FP_PIX_BGR24, 4, 4);
    ck_assert_int_eq(fp_cv_imshow("win", g), FP_ENODISPLAY);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "no display"));
    ck_assert_int_eq(fp_cv_waitkey(1), -1);
    fp_cv_destroy_all_windows();
    fp_unref(&g);
}
END_TEST

START_TEST(test_resize_into_a_pool)
{
    fp_pool_config cfg = {.format = FP_PIX_BGR24, .width = 32, .height = 24, .max_buffers = 1};
    fp_pool *pool = NULL;
    ck_assert_int_eq(fp_pool_new(&cfg, &pool), FP_OK);
    fp_image *src = make(FP_PIX_BGR24, 64, 48);
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 64; x++) {
            uint8_t *p = src->data[0] + y * src->stride[0] + x * 3;
            p[0] = 1, p[1] = 2, p[2] = (uint8_t)(x < 32 ? 0 : 200);
        }
    src->index = 5;
    fp_image *small = NULL;
    ck_assert_int_eq(fp_cv_resize(src, 32, 24, pool, 0, &small), FP_OK);
    ck_assert_ptr_eq(tu_pool_of(small), pool);
    ck_assert_int_eq(small->width, 32);
    ck_assert_int_eq(small->index, 5);
    ck_assert_int_eq(small->data[0][0], 1);
    ck_assert_int_eq(small->data[0][2], 0);
    ck_assert_int_eq(small->data[0][31 * 3 + 2], 200);
    fp_image *again = NULL;
    ck_assert_int_eq(fp_cv_resize(src, 32, 24, pool, 0, &again), FP_ELIMIT);
    ck_assert_int_eq(fp_cv_resize(src, 40, 24, pool, 0, &again), FP_EINVAL); /* pool misfit */
    ck_assert_int_eq(fp_cv_resize(src, 0, 24, NULL, 0, &again), FP_EINVAL);
    ck_assert_int_eq(fp_cv_resize(src, 128, 96, NULL, 0, &again), FP_OK); /* standalone */
    ck_assert_ptr_null(tu_pool_of(again));
    fp_unref(&again);
    fp_unref(&small);
    fp_unref(&src);
    fp_unref(&pool);
}
END_TEST

START_TEST(test_convert_formats)
{
    fp_image *bgr = make(FP_PIX_BGR24, 6, 2);
    for (int x = 0; x < 12; x++) {
        uint8_t *p = bgr->data[0] + (x / 6) * bgr->stride[0] + (x % 6) * 3;
        p[0] = 11, p[1] = 22, p[2] = 33;
    }
    fp_image *rgba = NULL, *gray = NULL;
    ck_assert_int_eq(fp_cv_convert(bgr, FP_PIX_RGBA, NULL, 0, &rgba), FP_OK);
    ck_assert_int_eq(rgba->format, FP_PIX_RGBA);
    ck_assert_int_eq(rgba->data[0][0], 33);
    ck_assert_int_eq(rgba->data[0][2], 11);
    ck_assert_int_eq(rgba->data[0][3], 255);
    ck_assert_int_eq(fp_cv_convert(bgr, FP_PIX_GRAY8, NULL, 0, &gray), FP_OK);
    ck_assert_int_le(abs(gray->data[0][0] - 24), 1); /* 0.299*33+0.587*22+0.114*11 */
    fp_image *bad = NULL;
    ck_assert_int_eq(fp_cv_convert(bgr, FP_PIX_YUV420P, NULL, 0, &bad), FP_EINVAL);
    fp_image *odd = make(FP_PIX_YUV420P, 5, 5);
    ck_assert_int_eq(fp_cv_convert(odd, FP_PIX_BGR24, NULL, 0, &bad), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "even"));
    fp_unref(&odd);
    fp_unref(&rgba);
    fp_unref(&gray);
    fp_unref(&bgr);
}
END_TEST

/* Saving converted frames in a loop reuses the wrapper's scratch pool: the
 * number of live images does not grow and no image is left behind. */
START_TEST(test_imwrite_loop_holds_no_images)
{
    fp_type_stats before, after;
    fp_image *rgb = make(FP_PIX_RGB24, 64, 48);
    memset(rgb->data[0], 77, (size_t)rgb->stride[0] * 48);
    char path[300];
    snprintf(path, sizeof path, "%s/loop.png", tmpdir);
    ck_assert_int_eq(fp_cv_imwrite(path, rgb), FP_OK); /* warm the scratch pool */
    fp_type_get_stats(&fp_image_type, &before);
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(fp_cv_imwrite(path, rgb), FP_OK);
    fp_type_get_stats(&fp_image_type, &after);
    ck_assert_uint_eq(after.live, before.live);
    ck_assert_uint_eq(after.peak, before.peak); /* one scratch frame at a time, reused */
    fp_unref(&rgb);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cv");
    TCase *tc = tcase_create("cv");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_imwrite_gray_and_bgr_are_exact);
    tcase_add_test(tc, test_imwrite_converts_rgb_and_yuv);
    tcase_add_test(tc, test_imwrite_errors_are_named);
    tcase_add_test(tc, test_imshow_without_display_is_an_error_not_an_abort);
    tcase_add_test(tc, test_resize_into_a_pool);
    tcase_add_test(tc, test_convert_formats);
    tcase_add_test(tc, test_imwrite_loop_holds_no_images);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
