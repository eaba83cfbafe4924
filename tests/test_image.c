/* image.h: standalone, wrapped, copied and pooled images. */
#include "testutil.h"

#include <framepool.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void fill_pattern(fp_image *img, unsigned seed)
{
    fp_layout l;
    ck_assert_int_eq(fp_image_layout(img, &l), FP_OK);
    for (int p = 0; p < l.planes; p++)
        for (int y = 0; y < l.rows[p]; y++)
            for (int x = 0; x < l.stride[p]; x++)
                img->data[p][(size_t)y * img->stride[p] + x] = (uint8_t)(seed + p * 31 + y * 7 + x);
}

/* Compares the visible pixels of two images of the same format and size. */
static int same_pixels(const fp_image *a, const fp_image *b)
{
    const fp_pixfmt_desc *d = fp_pixfmt_describe(a->format);
    for (int p = 0; p < d->planes; p++) {
        int w = p ? (a->width + (1 << d->log2_chroma_w) - 1) >> d->log2_chroma_w : a->width;
        int h = p ? (a->height + (1 << d->log2_chroma_h) - 1) >> d->log2_chroma_h : a->height;
        for (int y = 0; y < h; y++)
            if (memcmp(a->data[p] + (size_t)y * a->stride[p], b->data[p] + (size_t)y * b->stride[p],
                       (size_t)w * d->bytes_per_pixel[p]))
                return 0;
    }
    return 1;
}

START_TEST(test_new_every_format_is_aligned)
{
    for (int f = FP_PIX_NONE + 1; f < FP_PIX_COUNT_; f++) {
        if (f == FP_PIX_OTHER)
            continue;
        fp_image *img = NULL;
        ck_assert_int_eq(fp_image_new((fp_pixfmt)f, 321, 241, &img), FP_OK);
        ck_assert_int_eq(img->width, 321);
        ck_assert_int_eq(img->height, 241);
        ck_assert_int_eq(img->format, f);
        ck_assert_int_eq(img->index, -1);
        ck_assert(isnan(img->time));
        ck_assert(img->pts == INT64_MIN);
        const fp_pixfmt_desc *d = fp_pixfmt_describe((fp_pixfmt)f);
        for (int p = 0; p < 4; p++) {
            if (p < d->planes) {
                ck_assert_ptr_nonnull(img->data[p]);
                ck_assert_uint_eq((uintptr_t)img->data[p] % 64, 0);
                ck_assert_int_eq(img->stride[p] % 64, 0);
            } else {
                ck_assert_ptr_null(img->data[p]);
            }
        }
        ck_assert(fp_image_is_writable(img));
        ck_assert_ptr_null(tu_pool_of(img));
        ck_assert_uint_ge(img->bytes, (size_t)321 * 241);
        ck_assert_uint_eq(fp_obj_bytes(img), img->bytes);
        fp_unref(&img);
    }
}
END_TEST

START_TEST(test_new_rejects_bad_arguments)
{
    fp_image *img = (fp_image *)1;
    ck_assert_int_eq(fp_image_new(FP_PIX_NONE, 10, 10, &img), FP_EINVAL);
    ck_assert_ptr_null(img);
    ck_assert_int_eq(fp_image_new(FP_PIX_OTHER, 10, 10, &img), FP_EINVAL);
    ck_assert_int_eq(fp_image_new(FP_PIX_BGR24, 0, 10, &img), FP_EINVAL);
    ck_assert_int_eq(fp_image_new(FP_PIX_BGR24, 10, FP_MAX_DIMENSION + 1, &img), FP_EINVAL);
    ck_assert_int_eq(fp_image_new(FP_PIX_BGR24, 10, 10, NULL), FP_EINVAL);
    fp_layout bad = {.planes = 1, .stride = {100}, .rows = {10}, .size = 1000};
    ck_assert_int_eq(fp_image_new_layout(&bad, FP_PIX_OTHER, 0, 10, 10, &img), FP_EINVAL);
}
END_TEST

START_TEST(test_new_with_explicit_layout)
{
    /* A layout only FFmpeg would know, e.g. a 16-bit gray image with padding. */
    fp_layout l = {.planes = 1, .stride = {128}, .rows = {20}, .offset = {0}, .size = 128 * 20 + 64};
    fp_image *img = NULL;
    ck_assert_int_eq(fp_image_new_layout(&l, FP_PIX_OTHER, 30, 50, 20, &img), FP_OK);
    ck_assert_int_eq(img->format, FP_PIX_OTHER);
    ck_assert_int_eq(img->av_format, 30);
    ck_assert_int_eq(img->stride[0], 128);
    memset(img->data[0], 7, 128 * 20);
    fp_image *copy = NULL;
    ck_assert_int_eq(fp_image_copy(img, NULL, 0, &copy), FP_OK);
    ck_assert_int_eq(copy->av_format, 30);
    ck_assert_int_eq(memcmp(copy->data[0], img->data[0], 128 * 20), 0);
    fp_unref(&copy);
    fp_unref(&img);
}
END_TEST

static int wrap_freed;
static void wrap_free(void *user)
{
    wrap_freed++;
    free(user);
}

START_TEST(test_wrap_calls_free_once)
{
    uint8_t *mem = malloc(64 * 10);
    fp_image_wrap_info info = {.width = 20, .height = 10, .format = FP_PIX_BGR24,
                               .av_format = -1, .data = {mem}, .stride = {64},
                               .bytes = 640, .free_fn = wrap_free, .user = mem};
    fp_image *img = NULL;
    wrap_freed = 0;
    ck_assert_int_eq(fp_image_wrap(&info, &img), FP_OK);
    ck_assert_ptr_eq(img->data[0], mem);
    ck_assert_int_eq(img->stride[0], 64);
    ck_assert_uint_ge(img->bytes, 640);
    ck_assert(fp_image_is_writable(img));
    fp_layout l;
    ck_assert_int_eq(fp_image_layout(img, &l), FP_EINVAL);
    fp_image *r = fp_ref(img);
    fp_unref(&img);
    ck_assert_int_eq(wrap_freed, 0);
    fp_unref(&r);
    ck_assert_int_eq(wrap_freed, 1);
}
END_TEST

START_TEST(test_wrap_failure_leaves_memory_with_caller)
{
    static uint8_t mem[640];
    fp_image_wrap_info info = {.width = 20, .height = 10, .format = FP_PIX_BGR24,
                               .data = {mem}, .stride = {64}, .free_fn = wrap_free, .user = mem};
    fp_image *img = NULL;
    wrap_freed = 0;
    info.width = 0;
    ck_assert_int_eq(fp_image_wrap(&info, &img), FP_EINVAL);
    info.width = 20;
    tu_alloc_install();
    tu_alloc_fail_at(1);
    ck_assert_int_eq(fp_image_wrap(&info, &img), FP_ENOMEM);
    tu_alloc_uninstall();
    ck_assert_ptr_null(img);
    ck_assert_int_eq(wrap_freed, 0);
}
END_TEST

START_TEST(test_readonly_wrap_is_copied_by_make_writable)
{
    static uint8_t mem[64 * 4];
    for (int i = 0; i < 64 * 4; i++)
        mem[i] = (uint8_t)i;
    fp_image_wrap_info info = {.width = 16, .height = 4, .format = FP_PIX_GRAY8,
                               .data = {mem}, .stride = {64}, .flags = FP_IMAGE_READONLY};
    fp_image *img = NULL;
    ck_assert_int_eq(fp_image_wrap(&info, &img), FP_OK);
    ck_assert(!fp_image_is_writable(img));
    fp_image *orig = img;
    ck_assert_int_eq(fp_image_make_writable(&img), FP_OK);
    ck_assert_ptr_ne(img, orig); /* the original was released: its count was 1 */
    ck_assert(fp_image_is_writable(img));
    ck_assert_ptr_ne(img->data[0], mem);
    ck_assert_int_eq(memcmp(img->data[0], mem, 16), 0);
    ck_assert_int_eq(memcmp(img->data[0] + img->stride[0] * 3, mem + 64 * 3, 16), 0);
    ck_assert(!(img->flags & FP_IMAGE_READONLY));
    fp_unref(&img);
}
END_TEST

START_TEST(test_copy_keeps_pixels_and_metadata)
{
    fp_image *a = NULL, *b = NULL;
    ck_assert_int_eq(fp_image_new(FP_PIX_YUV420P, 33, 17, &a), FP_OK);
    fill_pattern(a, 3);
    a->pts = 1234; /* writable: we hold the only reference */
    a->time = 1.5;
    a->index = 42;
    a->flags = FP_IMAGE_KEY;
    ck_assert_int_eq(fp_image_copy(a, NULL, 0, &b), FP_OK);
    ck_assert_ptr_ne(a->data[0], b->data[0]);
    ck_assert(same_pixels(a, b));
    ck_assert(b->pts == 1234);
    ck_assert(b->time == 1.5);
    ck_assert(b->index == 42);
    ck_assert_uint_eq(b->flags, FP_IMAGE_KEY);
    fp_unref(&b);
    ck_assert_int_eq(fp_image_copy(NULL, NULL, 0, &b), FP_EINVAL);
    ck_assert_ptr_null(b);
    fp_unref(&a);
}
END_TEST

START_TEST(test_make_writable_copies_only_when_shared)
{
    fp_image *a = NULL;
    ck_assert_int_eq(fp_image_new(FP_PIX_BGR24, 8, 8, &a), FP_OK);
    fill_pattern(a, 9);
    fp_image *same = a;
    ck_assert_int_eq(fp_image_make_writable(&a), FP_OK);
    ck_assert_ptr_eq(a, same); /* sole owner: no copy */
    fp_image *other = fp_ref(a);
    ck_assert(!fp_image_is_writable(a));
    ck_assert_int_eq(fp_image_make_writable(&a), FP_OK);
    ck_assert_ptr_ne(a, other);
    ck_assert_uint_eq(fp_refcount(other), 1); /* our reference moved to the copy */
    ck_assert(same_pixels(a, other));
    a->data[0][0] ^= 0xff; /* writing the copy leaves the original alone */
    ck_assert(!same_pixels(a, other));
    fp_unref(&a);
    fp_unref(&other);
    ck_assert_int_eq(fp_image_make_writable(NULL), FP_EINVAL);
}
END_TEST

START_TEST(test_make_writable_copies_from_the_same_pool)
{
    fp_pool_config cfg = {.name = "mw", .format = FP_PIX_GRAY8, .width = 32, .height = 8,
                          .max_buffers = 2};
    fp_pool *pool = NULL;
    ck_assert_int_eq(fp_pool_new(&cfg, &pool), FP_OK);
    fp_image *a = NULL;
    ck_assert_int_eq(fp_pool_acquire(pool, 0, &a), FP_OK);
    memset(a->data[0], 5, (size_t)a->stride[0] * 8);
    fp_image *keep = fp_ref(a);
    ck_assert_int_eq(fp_image_make_writable(&a), FP_OK);
    ck_assert_ptr_ne(a, keep);
    ck_assert_ptr_eq(tu_pool_of(a), pool);
    ck_assert_int_eq(a->data[0][31], 5);
    fp_pool_stats st;
    fp_pool_get_stats(pool, &st);
    ck_assert_uint_eq(st.outstanding, 2);
    /* The pool is now full: one more writable copy cannot come from it and
     * fails at once rather than waiting for a buffer that will not return. */
    fp_image *third = fp_ref(a);
    ck_assert_int_eq(fp_image_make_writable(&a), FP_ELIMIT);
    ck_assert_ptr_eq(a, third); /* unchanged and still ours */
    fp_unref(&third);
    fp_unref(&a);
    fp_unref(&keep);
    fp_pool_get_stats(pool, &st);
    ck_assert_uint_eq(st.outstanding, 0);
    fp_unref(&pool);
}
END_TEST

START_TEST(test_copy_into_a_given_pool_checks_fit)
{
    fp_pool_config cfg = {.format = FP_PIX_RGB24, .width = 10, .height = 10, .max_buffers = 1};
    fp_pool *pool = NULL;
    ck_assert_int_eq(fp_pool_new(&cfg, &pool), FP_OK);
    fp_image *src = NULL, *dst = NULL;
    ck_assert_int_eq(fp_image_new(FP_PIX_RGB24, 10, 10, &src), FP_OK);
    fill_pattern(src, 1);
    ck_assert_int_eq(fp_image_copy(src, pool, 0, &dst), FP_OK);
    ck_assert_ptr_eq(tu_pool_of(dst), pool);
    ck_assert(same_pixels(src, dst));
    fp_image *dst2 = NULL;
    ck_assert_int_eq(fp_image_copy(src, pool, 0, &dst2), FP_ELIMIT);
    ck_assert_int_eq(fp_image_copy(src, pool, 1000, &dst2), FP_ETIMEDOUT);
    fp_unref(&dst);
    /* A source of another size is copied standalone instead. */
    fp_image *big = NULL;
    ck_assert_int_eq(fp_image_new(FP_PIX_RGB24, 11, 10, &big), FP_OK);
    ck_assert_int_eq(fp_image_copy(big, pool, 0, &dst2), FP_OK);
    ck_assert_ptr_null(tu_pool_of(dst2));
    fp_unref(&dst2);
    fp_unref(&big);
    fp_unref(&src);
    fp_unref(&pool);
}
END_TEST

START_TEST(test_image_stats_count_pixels)
{
    fp_type_stats before, during, after;
    fp_type_get_stats(&fp_image_type, &before);
    fp_image *img = NULL;
    ck_assert_int_eq(fp_image_new(FP_PIX_BGRA, 100, 100, &img), FP_OK);
    fp_type_get_stats(&fp_image_type, &during);
    ck_assert_uint_eq(during.live, before.live + 1);
    ck_assert_uint_eq(during.live_bytes, before.live_bytes + img->bytes);
    ck_assert_uint_ge(img->bytes, 100 * 100 * 4);
    fp_unref(&img);
    fp_type_get_stats(&fp_image_type, &after);
    ck_assert_uint_eq(after.live, before.live);
    ck_assert_uint_eq(after.live_bytes, before.live_bytes);
}
END_TEST


/* Asserts FP_EINVAL with an fp_errmsg containing each of the words. */
#define ck_einval_naming(call, ...)                                                     \
    do {                                                                                \
        ck_assert_int_eq((call), FP_EINVAL);                                            \
        const char *words_[] = {__VA_ARGS__};                                           \
        for (size_t w_ = 0; w_ < sizeof words_ / sizeof *words_; w_++)                  \
            ck_assert_msg(strstr(fp_errmsg(), words_[w_]), "message '%s' lacks '%s'",   \
                          fp_errmsg(), words_[w_]);                                     \
    } while (0)

START_TEST(test_layout_size_max_is_refused_not_wrapped)
{
    /* size = SIZE_MAX used to wrap header + size to a 255-byte charge. */
    fp_layout l = {.planes = 1, .stride = {64}, .rows = {1}, .size = SIZE_MAX};
    fp_image *img = (fp_image *)1;
    ck_einval_naming(fp_image_new_layout(&l, FP_PIX_GRAY8, -1, 64, 1, &img), "size");
    ck_assert_ptr_null(img);
    l.size = SIZE_MAX - 63;
    ck_einval_naming(fp_image_new_layout(&l, FP_PIX_OTHER, 30, 64, 1, &img), "size");
}
END_TEST

START_TEST(test_layout_offset_near_size_max_is_refused)
{
    /* offset + stride*rows wrapped, putting plane 0 inside the object header. */
    fp_layout l = {.planes = 1, .stride = {64}, .rows = {1}, .offset = {SIZE_MAX - 63},
                   .size = 4096};
    fp_image *img = NULL;
    ck_einval_naming(fp_image_new_layout(&l, FP_PIX_GRAY8, -1, 64, 1, &img), "plane 0",
                     "offset");
    ck_assert_ptr_null(img);
    l.offset[0] = 4096 - 64; /* inside, but 64 rows of 64 do not fit */
    l.rows[0] = 64;
    ck_einval_naming(fp_image_new_layout(&l, FP_PIX_OTHER, 30, 64, 64, &img), "plane 0",
                     "past the allocation");
}
END_TEST

START_TEST(test_layout_too_small_for_its_format_is_refused)
{
    /* A 64-byte layout declared as 1000x1000 bgr24: fp_image_copy used to read past it. */
    fp_layout l = {.planes = 1, .stride = {64}, .rows = {1}, .size = 64};
    fp_image *img = NULL;
    ck_einval_naming(fp_image_new_layout(&l, FP_PIX_BGR24, -1, 1000, 1000, &img), "plane 0",
                     "stride", "3000");
    l.stride[0] = 3008;
    l.size = 3008;
    ck_einval_naming(fp_image_new_layout(&l, FP_PIX_BGR24, -1, 1000, 1000, &img), "plane 0",
                     "rows");
    /* yuv420p: plane 2 missing, then a plane 1 stride below its half-width row. */
    fp_layout y;
    ck_assert_int_eq(fp_layout_compute(FP_PIX_YUV420P, 640, 480, 64, 0, &y), FP_OK);
    fp_layout two = y;
    two.planes = 2;
    ck_einval_naming(fp_image_new_layout(&two, FP_PIX_YUV420P, -1, 640, 480, &img), "planes");
    fp_layout narrow = y;
    narrow.stride[1] = 256;
    ck_einval_naming(fp_image_new_layout(&narrow, FP_PIX_YUV420P, -1, 640, 480, &img),
                     "plane 1", "stride");
    fp_layout short_rows = y;
    short_rows.rows[2] = 239;
    ck_einval_naming(fp_image_new_layout(&short_rows, FP_PIX_YUV420P, -1, 640, 480, &img),
                     "plane 2", "rows");
    /* The exact layout is accepted, and a copy of it stays inside. */
    ck_assert_int_eq(fp_image_new_layout(&y, FP_PIX_YUV420P, -1, 640, 480, &img), FP_OK);
    fp_image *copy = NULL;
    ck_assert_int_eq(fp_image_copy(img, NULL, 0, &copy), FP_OK);
    fp_unref(&copy);
    fp_unref(&img);
}
END_TEST

START_TEST(test_wrap_checks_planes_strides_and_bytes)
{
    static uint8_t mem[64 * 64];
    fp_image_wrap_info wi = {.width = 64, .height = 64, .format = FP_PIX_BGR24, .av_format = -1,
                             .data = {mem}, .stride = {64}};
    fp_image *img = NULL;
    ck_einval_naming(fp_image_wrap(&wi, &img), "plane 0", "stride", "192");
    wi.stride[0] = -192;
    ck_einval_naming(fp_image_wrap(&wi, &img), "plane 0", "stride");
    wi.format = FP_PIX_NV12;
    wi.stride[0] = 64;
    ck_einval_naming(fp_image_wrap(&wi, &img), "plane 1", "NULL");
    wi.format = FP_PIX_GRAY8;
    wi.bytes = SIZE_MAX - 10; /* the charge used to wrap */
    ck_einval_naming(fp_image_wrap(&wi, &img), "bytes");
    wi.bytes = sizeof mem;
    ck_assert_int_eq(fp_image_wrap(&wi, &img), FP_OK);
    fp_unref(&img);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("image");
    tcase_add_test(tc, test_new_every_format_is_aligned);
    tcase_add_test(tc, test_new_rejects_bad_arguments);
    tcase_add_test(tc, test_new_with_explicit_layout);
    tcase_add_test(tc, test_wrap_calls_free_once);
    tcase_add_test(tc, test_wrap_failure_leaves_memory_with_caller);
    tcase_add_test(tc, test_readonly_wrap_is_copied_by_make_writable);
    tcase_add_test(tc, test_copy_keeps_pixels_and_metadata);
    tcase_add_test(tc, test_make_writable_copies_only_when_shared);
    tcase_add_test(tc, test_make_writable_copies_from_the_same_pool);
    tcase_add_test(tc, test_copy_into_a_given_pool_checks_fit);
    tcase_add_test(tc, test_image_stats_count_pixels);
    tcase_add_test(tc, test_layout_size_max_is_refused_not_wrapped);
    tcase_add_test(tc, test_layout_offset_near_size_max_is_refused);
    tcase_add_test(tc, test_layout_too_small_for_its_format_is_refused);
    tcase_add_test(tc, test_wrap_checks_planes_strides_and_bytes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
