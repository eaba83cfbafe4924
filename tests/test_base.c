/* base.h: errors, allocator hook, pixel formats and layouts. */
#include "testutil.h"

#include <framepool.h>
#include <string.h>

START_TEST(test_strerror_names_every_code)
{
    const int codes[] = {FP_OK,       FP_EINVAL,   FP_ENOMEM,    FP_EAGAIN,   FP_ETIMEDOUT,
                         FP_ECANCELED, FP_ENOENT,  FP_EBUSY,     FP_ELIMIT,   FP_EFORMAT,
                         FP_ENOSTREAM, FP_EDECODE, FP_EIO,       FP_ENODISPLAY, FP_EUNKNOWN,
                         FP_EHELD};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = fp_strerror(codes[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_str_ne(s, "unknown error");
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(s, fp_strerror(codes[j]));
    }
    ck_assert_str_eq(fp_strerror(FP_ELIMIT), "a bound was reached");
    ck_assert_str_eq(fp_strerror(12345), "unknown error");
    ck_assert_str_eq(fp_strerror(-0x46500099), "unknown error");
    /* Library codes do not collide with errno values. */
    ck_assert_int_lt(FP_ELIMIT, -4096);
}
END_TEST

/* Codes, names and texts come from one table; every module reports its
 * detail on one thread channel, which the old per-module names alias. */
START_TEST(test_error_table_and_one_channel)
{
    ck_assert_str_eq(fp_errname(FP_ELIMIT), "FP_ELIMIT");
    ck_assert_str_eq(fp_errname(FP_OK), "FP_OK");
    ck_assert_str_eq(fp_errname(FP_EINVAL), "FP_EINVAL");
    ck_assert_ptr_null(fp_errname(12345));
    ck_assert_str_eq(fp_strerror(FP_EIO), "input/output error");
    ck_assert_str_eq(fp_strerror(-EPERM), "system error");

    fp_pool_config cfg = {.name = "chan", .format = FP_PIX_GRAY8, .width = 8, .height = 8,
                          .max_buffers = 1};
    fp_pool *p = NULL;
    ck_assert_int_eq(fp_pool_new(&cfg, &p), FP_OK);
    fp_image *a = NULL, *b = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &b), FP_ELIMIT);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "max_buffers"));
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "'chan'"));
    /* Success does not clear it. */
    fp_unref(&a);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "max_buffers"));
    /* Libraries on top of framepool write the same channel. */
    fp_errmsg_set("binding: %d frames held", 9);
    ck_assert_str_eq(fp_errmsg(), "binding: 9 frames held");
    fp_unref(&a);
    fp_unref(&p);
}
END_TEST

START_TEST(test_version)
{
    ck_assert_uint_eq(fp_version(),
                      (FP_VERSION_MAJOR << 16) | (FP_VERSION_MINOR << 8) | FP_VERSION_PATCH);
}
END_TEST

START_TEST(test_allocator_hook_sees_every_allocation)
{
    tu_alloc_install();
    void *p = fp_alloc(1000, 256);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 256, 0);
    ck_assert_int_eq(tu_alloc_live(), 1);
    ck_assert_int_eq(tu_alloc_live_bytes(), 1000);
    fp_free(p, 1000);
    ck_assert_int_eq(tu_alloc_live(), 0);
    ck_assert_ptr_null(fp_alloc(0, 64));
    fp_free(NULL, 10); /* NULL-safe */
    tu_alloc_fail_at(1);
    ck_assert_ptr_null(fp_alloc(64, 64));
    tu_alloc_uninstall();
    /* The default allocator is back: the counting one sees nothing more. */
    uint64_t calls = tu_alloc_count();
    p = fp_alloc(100, 64);
    ck_assert_ptr_nonnull(p);
    fp_free(p, 100);
    ck_assert_uint_eq(tu_alloc_count(), calls);
}
END_TEST

START_TEST(test_pixfmt_names_round_trip)
{
    for (int f = FP_PIX_NONE + 1; f < FP_PIX_COUNT_; f++) {
        if (f == FP_PIX_OTHER) {
            ck_assert_ptr_null(fp_pixfmt_describe(FP_PIX_OTHER));
            continue;
        }
        const fp_pixfmt_desc *d = fp_pixfmt_describe((fp_pixfmt)f);
        ck_assert_ptr_nonnull(d);
        ck_assert_int_eq(fp_pixfmt_from_name(d->name), f);
        ck_assert_str_eq(fp_pixfmt_name((fp_pixfmt)f), d->name);
    }
    ck_assert_int_eq(fp_pixfmt_from_name("gray8"), FP_PIX_GRAY8);
    ck_assert_int_eq(fp_pixfmt_from_name("bogus"), FP_PIX_NONE);
    ck_assert_int_eq(fp_pixfmt_from_name(NULL), FP_PIX_NONE);
    ck_assert_str_eq(fp_pixfmt_name(FP_PIX_NONE), "none");
    ck_assert_str_eq(fp_pixfmt_name((fp_pixfmt)999), "invalid");
}
END_TEST

/* Expected plane geometry for a 321x241 image (odd sizes round chroma up). */
START_TEST(test_layouts_of_every_format)
{
    static const struct {
        fp_pixfmt f;
        int planes;
        int row_bytes[3];
        int rows[3];
    } cases[] = {
        {FP_PIX_GRAY8, 1, {321}, {241}},
        {FP_PIX_BGR24, 1, {963}, {241}},
        {FP_PIX_RGB24, 1, {963}, {241}},
        {FP_PIX_BGRA, 1, {1284}, {241}},
        {FP_PIX_RGBA, 1, {1284}, {241}},
        {FP_PIX_YUV420P, 3, {321, 161, 161}, {241, 121, 121}},
        {FP_PIX_NV12, 2, {321, 322}, {241, 121}},
        {FP_PIX_YUV422P, 3, {321, 161, 161}, {241, 241, 241}},
        {FP_PIX_YUV444P, 3, {321, 321, 321}, {241, 241, 241}},
        {FP_PIX_YUV420P10, 3, {642, 322, 322}, {241, 121, 121}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fp_layout l;
        ck_assert_int_eq(fp_layout_compute(cases[i].f, 321, 241, 0, 16, &l), FP_OK);
        ck_assert_int_eq(l.planes, cases[i].planes);
        size_t end = 0;
        for (int p = 0; p < l.planes; p++) {
            ck_assert_int_ge(l.stride[p], cases[i].row_bytes[p]);
            ck_assert_int_lt(l.stride[p], cases[i].row_bytes[p] + 64);
            ck_assert_int_eq(l.stride[p] % 64, 0);
            ck_assert_int_eq(l.rows[p], cases[i].rows[p]);
            ck_assert_uint_eq(l.offset[p] % 64, 0);
            ck_assert_uint_ge(l.offset[p], end); /* planes do not overlap */
            end = l.offset[p] + (size_t)l.stride[p] * (size_t)l.rows[p];
        }
        ck_assert_uint_ge(l.size, end + 16);
    }
}
END_TEST

START_TEST(test_layout_rejects_bad_input)
{
    fp_layout l;
    ck_assert_int_eq(fp_layout_compute(FP_PIX_NONE, 10, 10, 0, 0, &l), FP_EINVAL);
    ck_assert_int_eq(fp_layout_compute(FP_PIX_OTHER, 10, 10, 0, 0, &l), FP_EINVAL);
    ck_assert_int_eq(fp_layout_compute(FP_PIX_GRAY8, 0, 10, 0, 0, &l), FP_EINVAL);
    ck_assert_int_eq(fp_layout_compute(FP_PIX_GRAY8, 10, -1, 0, 0, &l), FP_EINVAL);
    ck_assert_int_eq(fp_layout_compute(FP_PIX_GRAY8, FP_MAX_DIMENSION + 1, 10, 0, 0, &l),
                     FP_EINVAL);
    ck_assert_int_eq(fp_layout_compute(FP_PIX_GRAY8, 10, 10, 48, 0, &l), FP_EINVAL);
    ck_assert_int_eq(fp_layout_compute(FP_PIX_GRAY8, 10, 10, 64, 0, NULL), FP_EINVAL);
    /* The largest accepted image still computes without overflow. */
    ck_assert_int_eq(
        fp_layout_compute(FP_PIX_BGRA, FP_MAX_DIMENSION, FP_MAX_DIMENSION, 4096, 0, &l), FP_OK);
    ck_assert_uint_eq(l.size, (size_t)FP_MAX_DIMENSION * 4 * FP_MAX_DIMENSION);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("base");
    TCase *tc = tcase_create("base");
    tcase_add_test(tc, test_strerror_names_every_code);
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_error_table_and_one_channel);
    tcase_add_test(tc, test_allocator_hook_sees_every_allocation);
    tcase_add_test(tc, test_pixfmt_names_round_trip);
    tcase_add_test(tc, test_layouts_of_every_format);
    tcase_add_test(tc, test_layout_rejects_bad_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
