/* Allocation-failure sweep over the core: for every N, fail the Nth
 * allocation during pool creation, acquire, image copy and budget use. Every
 * run must end in FP_ENOMEM (or success once N passes the last allocation),
 * with nothing leaked and nothing crashed. */
#include "testutil.h"

#include <framepool.h>
#include <string.h>

static const fp_type user_type = {"user", NULL};

/* Every allocation this scenario makes is required, so failing any one of
 * them must surface as FP_ENOMEM from the call that made it. */
static int scenario(void)
{
    fp_budget *budget = NULL;
    fp_pool *pool = NULL;
    fp_image *a = NULL, *b = NULL, *c = NULL, *copy = NULL, *standalone = NULL, *shared = NULL;
    void *obj = NULL;
    int rc = fp_budget_new(1 << 22, &budget);
    if (rc)
        goto out;
    fp_pool_config cfg = {.name = "sweep", .format = FP_PIX_YUV420P, .width = 96, .height = 64,
                          .min_buffers = 2, .max_buffers = 6, .budget = budget};
    rc = fp_pool_new(&cfg, &pool);
    if (rc)
        goto out;
    if ((rc = fp_pool_acquire(pool, 0, &a)) || (rc = fp_pool_acquire(pool, 0, &b)) ||
        (rc = fp_pool_acquire(pool, 0, &c))) /* the third one allocates */
        goto out;
    memset(a->data[0], 1, (size_t)a->stride[0] * (size_t)a->height);
    rc = fp_image_copy(a, tu_pool_of(a), 0, &copy); /* from the pool: allocates the fourth */
    if (rc)
        goto out;
    rc = fp_image_new(FP_PIX_BGR24, 50, 40, &standalone);
    if (rc)
        goto out;
    shared = fp_ref(standalone);
    rc = fp_image_make_writable(&shared); /* a standalone copy */
    if (rc)
        goto out;
    if (shared == standalone) {
        rc = -1; /* must have copied */
        goto out;
    }
    fp_pool_config cfg2 = cfg;
    cfg2.width = 48;
    cfg2.min_buffers = 1;
    rc = fp_pool_reconfigure(pool, &cfg2); /* preallocates one of the new size */
    if (rc)
        goto out;
    obj = fp_new(&user_type, 100);
    if (!obj)
        rc = FP_ENOMEM;
out:
    fp_unref(&obj);
    fp_unref(&a);
    fp_unref(&b);
    fp_unref(&c);
    fp_unref(&copy);
    fp_unref(&standalone);
    fp_unref(&shared);
    fp_unref(&pool);
    fp_unref(&budget);
    return rc;
}

START_TEST(test_fail_every_allocation)
{
    tu_alloc_install();
    ck_assert_int_eq(scenario(), FP_OK);
    uint64_t total = tu_alloc_count();
    ck_assert_int_eq(tu_alloc_live(), 0);
    ck_assert_uint_ge(total, 9);
    for (uint64_t n = 1; n <= total + 1; n++) {
        tu_alloc_fail_at(n);
        int rc = scenario();
        if (n <= total)
            ck_assert_msg(rc == FP_ENOMEM, "failing allocation %llu of %llu gave %d (%s)",
                          (unsigned long long)n, (unsigned long long)total, rc,
                          fp_strerror(rc));
        else
            ck_assert_int_eq(rc, FP_OK);
        ck_assert_msg(tu_alloc_live() == 0, "failing allocation %llu leaked %lld blocks",
                      (unsigned long long)n, (long long)tu_alloc_live());
    }
    tu_alloc_uninstall();
}
END_TEST

/* A failed allocation inside a pool leaves the pool consistent: the slot it
 * reserved is given back and the next acquire works. */
START_TEST(test_pool_recovers_after_enomem)
{
    tu_alloc_install();
    fp_pool_config cfg = {.format = FP_PIX_GRAY8, .width = 16, .height = 16, .max_buffers = 1};
    fp_pool *p = NULL;
    ck_assert_int_eq(fp_pool_new(&cfg, &p), FP_OK);
    fp_image *img = NULL;
    tu_alloc_fail_at(1);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &img), FP_ENOMEM);
    fp_pool_stats st;
    fp_pool_get_stats(p, &st);
    ck_assert_uint_eq(st.allocated, 0);
    ck_assert_uint_eq(st.outstanding, 0);
    tu_alloc_fail_at(0);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &img), FP_OK);
    fp_unref(&img);
    fp_unref(&p);
    ck_assert_int_eq(tu_alloc_live(), 0);
    tu_alloc_uninstall();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("alloc_fail");
    TCase *tc = tcase_create("sweep");
    tcase_add_test(tc, test_fail_every_allocation);
    tcase_add_test(tc, test_pool_recovers_after_enomem);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
