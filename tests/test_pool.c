/* pool.h: bounded LIFO pools, waits, cancel, generations, budgets, threads. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <framepool.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if UNDER_SANITIZER
#define STRESS_BUFFERS 200000 /* sanitizers run ~10x slower */
#else
#define STRESS_BUFFERS 1000000
#endif

static fp_pool *make_pool(unsigned min, unsigned max)
{
    fp_pool_config cfg = {.name = "test", .format = FP_PIX_BGR24, .width = 64, .height = 48,
                          .min_buffers = min, .max_buffers = max};
    fp_pool *p = NULL;
    ck_assert_int_eq(fp_pool_new(&cfg, &p), FP_OK);
    return p;
}

static fp_pool_stats stats(fp_pool *p)
{
    fp_pool_stats st;
    fp_pool_get_stats(p, &st);
    return st;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

START_TEST(test_acquire_release_reuses_lifo)
{
    fp_pool *p = make_pool(0, 4);
    fp_image *a = NULL, *b = NULL, *c = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &b), FP_OK);
    ck_assert_int_eq(a->width, 64);
    ck_assert_int_eq(a->format, FP_PIX_BGR24);
    ck_assert_uint_eq((uintptr_t)a->data[0] % 64, 0);
    ck_assert_ptr_eq(tu_pool_of(a), p);
    ck_assert(fp_image_is_writable(a));
    uint8_t *a_pixels = a->data[0], *b_pixels = b->data[0];
    fp_unref(&a);
    fp_unref(&b);
    /* Most recently returned first. */
    ck_assert_int_eq(fp_pool_acquire(p, 0, &c), FP_OK);
    ck_assert_ptr_eq(c->data[0], b_pixels);
    fp_image *d = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &d), FP_OK);
    ck_assert_ptr_eq(d->data[0], a_pixels);
    fp_pool_stats st = stats(p);
    ck_assert_uint_eq(st.misses, 2);
    ck_assert_uint_eq(st.hits, 2);
    ck_assert_uint_eq(st.allocated, 2);
    ck_assert_uint_eq(st.outstanding, 2);
    ck_assert_uint_eq(st.idle, 0);
    ck_assert_uint_eq(st.peak, 2);
    ck_assert_uint_eq(st.bytes, 2 * st.buffer_bytes);
    ck_assert_uint_eq(st.generation, 1);
    fp_unref(&c);
    fp_unref(&d);
    st = stats(p);
    ck_assert_uint_eq(st.idle, 2);
    ck_assert_uint_eq(st.idle_bytes, 2 * st.buffer_bytes);
    ck_assert_uint_ge(fp_pool_idle_bytes_total(), st.idle_bytes);
    fp_unref(&p);
}
END_TEST

START_TEST(test_returned_buffer_is_reset_and_sited)
{
    fp_pool *p = make_pool(0, 1);
    fp_image *a = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK);
    a->pts = 99;
    a->index = 7;
    a->flags = FP_IMAGE_KEY | FP_IMAGE_CORRUPT;
    memset(a->data[0], 1, 64 * 3);
    fp_unref(&a);
    int line = __LINE__ + 1;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK);
    ck_assert(a->pts == INT64_MIN);
    ck_assert_int_eq(a->index, -1);
    ck_assert_uint_eq(a->flags, 0);
    const char *file;
    int l;
    fp_obj_site(a, &file, &l, NULL);
    ck_assert_str_eq(file, "tests/test_pool.c");
    ck_assert_int_eq(l, line);
#ifdef FP_DEBUG
    /* Debug builds poison returned buffers so stale reads stand out. */
    ck_assert_uint_eq(a->data[0][0], 0xA5);
    ck_assert_uint_eq(a->data[0][64 * 3 - 1], 0xA5);
#endif
    fp_unref(&a);
    fp_unref(&p);
}
END_TEST

START_TEST(test_bad_configs_are_rejected)
{
    fp_pool *p = NULL;
    fp_pool_config cfg = {.format = FP_PIX_GRAY8, .width = 0, .height = 10};
    ck_assert_int_eq(fp_pool_new(&cfg, &p), FP_EINVAL);
    cfg.width = 10;
    cfg.min_buffers = 5;
    cfg.max_buffers = 4;
    ck_assert_int_eq(fp_pool_new(&cfg, &p), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "min_buffers"));
    cfg.min_buffers = 0;
    cfg.format = FP_PIX_OTHER; /* needs an explicit layout */
    ck_assert_int_eq(fp_pool_new(&cfg, &p), FP_EINVAL);
    cfg.format = FP_PIX_GRAY8;
    cfg.align = 3;
    ck_assert_int_eq(fp_pool_new(&cfg, &p), FP_EINVAL);
    cfg.align = 0;
    cfg.width = FP_MAX_DIMENSION + 1;
    ck_assert_int_eq(fp_pool_new(&cfg, &p), FP_EINVAL);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(fp_pool_new(NULL, &p), FP_EINVAL);
    fp_image *img = NULL;
    ck_assert_int_eq(fp_pool_acquire(NULL, 0, &img), FP_EINVAL);
    /* Default cap. */
    cfg.width = 10;
    cfg.max_buffers = 0;
    ck_assert_int_eq(fp_pool_new(&cfg, &p), FP_OK);
    ck_assert_uint_eq(stats(p).max_buffers, FP_POOL_DEFAULT_MAX);
    fp_unref(&p);
}
END_TEST

START_TEST(test_cap_gives_elimit_with_a_message)
{
    fp_pool *p = make_pool(0, 2);
    fp_image *a = NULL, *b = NULL, *c = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &b), FP_OK);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &c), FP_ELIMIT);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "max_buffers"));
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "'test'"));
    ck_assert_uint_eq(stats(p).limits, 1);
    ck_assert_uint_eq(stats(p).allocated, 2);
    fp_unref(&a);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &c), FP_OK);
    fp_unref(&b);
    fp_unref(&c);
    fp_unref(&p);
}
END_TEST

START_TEST(test_timeout_expires_on_time)
{
    fp_pool *p = make_pool(0, 1);
    fp_image *a = NULL, *b = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK);
    double t0 = tu_now();
    ck_assert_int_eq(fp_pool_acquire(p, 50000, &b), FP_ETIMEDOUT);
    double dt = tu_now() - t0;
    ck_assert_double_ge(dt, 0.049);
    ck_assert_double_lt(dt, 2.0);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "50000 us"));
    fp_pool_stats st = stats(p);
    ck_assert_uint_eq(st.waits, 1);
    ck_assert_uint_eq(st.timeouts, 1);
    fp_unref(&a);
    fp_unref(&p);
}
END_TEST

typedef struct waiter_arg {
    fp_pool *pool;
    int64_t timeout_us;
    int rc;
    fp_image *img;
} waiter_arg;

static void *waiter(void *arg)
{
    waiter_arg *w = arg;
    w->rc = fp_pool_acquire(w->pool, w->timeout_us, &w->img);
    return NULL;
}

static void wait_for_waiter(fp_pool *p)
{
    for (int i = 0; i < 2000 && stats(p).waits == 0; i++)
        sleep_ms(1);
    ck_assert_uint_eq(stats(p).waits, 1);
}

START_TEST(test_wait_forever_gets_a_returned_buffer)
{
    fp_pool *p = make_pool(0, 1);
    fp_image *a = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK);
    uint8_t *pixels = a->data[0];
    waiter_arg w = {p, -1, 1, NULL};
    pthread_t th;
    pthread_create(&th, NULL, waiter, &w);
    wait_for_waiter(p);
    fp_unref(&a);
    pthread_join(th, NULL);
    ck_assert_int_eq(w.rc, FP_OK);
    ck_assert_ptr_eq(w.img->data[0], pixels);
    fp_unref(&w.img);
    fp_unref(&p);
}
END_TEST

START_TEST(test_cancel_wakes_waiters_and_sticks_until_resume)
{
    fp_pool *p = make_pool(0, 1);
    fp_image *a = NULL, *b = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK);
    waiter_arg w = {p, -1, 1, NULL};
    pthread_t th;
    pthread_create(&th, NULL, waiter, &w);
    wait_for_waiter(p);
    fp_pool_cancel(p);
    pthread_join(th, NULL);
    ck_assert_int_eq(w.rc, FP_ECANCELED);
    ck_assert_ptr_null(w.img);
    /* Still cancelled: a wait fails at once; a try still reports the cap. */
    ck_assert_int_eq(fp_pool_acquire(p, 1000000, &b), FP_ECANCELED);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &b), FP_ELIMIT);
    fp_unref(&a);
    ck_assert_int_eq(fp_pool_acquire(p, -1, &b), FP_OK); /* a buffer is free: no wait */
    fp_unref(&b);
    fp_pool_resume(p);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK);
    ck_assert_int_eq(fp_pool_acquire(p, 10000, &b), FP_ETIMEDOUT);
    fp_unref(&a);
    fp_unref(&p);
}
END_TEST

START_TEST(test_min_buffers_are_warm_and_trim_keeps_them)
{
    fp_pool *p = make_pool(3, 8);
    fp_pool_stats st = stats(p);
    ck_assert_uint_eq(st.allocated, 3);
    ck_assert_uint_eq(st.idle, 3);
    fp_image *imgs[6];
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(fp_pool_acquire(p, 0, &imgs[i]), FP_OK);
    st = stats(p);
    ck_assert_uint_eq(st.hits, 3);
    ck_assert_uint_eq(st.misses, 3);
    for (int i = 0; i < 6; i++)
        fp_unref(&imgs[i]);
    ck_assert_uint_eq(stats(p).idle, 6);
    ck_assert_int_eq(fp_pool_trim(p, 4), 2);
    ck_assert_uint_eq(stats(p).idle, 4);
    ck_assert_int_eq(fp_pool_trim(p, 0), 1); /* never below min_buffers */
    st = stats(p);
    ck_assert_uint_eq(st.idle, 3);
    ck_assert_uint_eq(st.allocated, 3);
    ck_assert_uint_eq(st.frees, 3);
    fp_unref(&p);
}
END_TEST

START_TEST(test_prefault_zero_fills_new_buffers)
{
    fp_pool_config cfg = {.format = FP_PIX_NV12, .width = 64, .height = 32, .min_buffers = 1,
                          .max_buffers = 2, .prefault = 1};
    fp_pool *p = NULL;
    ck_assert_int_eq(fp_pool_new(&cfg, &p), FP_OK);
    fp_image *a = NULL, *b = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK); /* the prefilled one */
    ck_assert_int_eq(fp_pool_acquire(p, 0, &b), FP_OK); /* allocated now */
    fp_layout l;
    fp_pool_layout(p, &l);
#ifdef FP_DEBUG
    const uint8_t prefilled = 0xA5; /* went through the pool once: poisoned */
#else
    const uint8_t prefilled = 0;
#endif
    for (size_t i = 0; i < (size_t)l.stride[0] * 32; i++) {
        ck_assert_uint_eq(a->data[0][i], prefilled);
        ck_assert_uint_eq(b->data[0][i], 0);
    }
    ck_assert_uint_eq(b->data[1][(size_t)l.stride[1] * 16 - 1], 0);
    fp_unref(&a);
    fp_unref(&b);
    fp_unref(&p);
}
END_TEST

START_TEST(test_idle_buffers_age_out)
{
    fp_pool_config cfg = {.format = FP_PIX_GRAY8, .width = 32, .height = 32, .min_buffers = 1,
                          .max_buffers = 8, .max_idle_seconds = 0.05};
    fp_pool *p = NULL;
    ck_assert_int_eq(fp_pool_new(&cfg, &p), FP_OK);
    fp_image *imgs[5];
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(fp_pool_acquire(p, 0, &imgs[i]), FP_OK);
    for (int i = 0; i < 5; i++)
        fp_unref(&imgs[i]);
    ck_assert_uint_eq(stats(p).idle, 5);
    sleep_ms(200);
    /* The next pool operation frees what idled too long, keeping min_buffers. */
    fp_image *a = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK);
    fp_pool_stats st = stats(p);
    ck_assert_uint_eq(st.outstanding, 1);
    ck_assert_uint_le(st.idle, 1);
    ck_assert_uint_ge(st.frees, 3);
    fp_unref(&a);
    fp_unref(&p);
}
END_TEST

START_TEST(test_reconfigure_frees_old_generation_on_return)
{
    tu_alloc_install();
    fp_pool *p = make_pool(0, 4);
    fp_image *old1 = NULL, *old2 = NULL, *idle = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &old1), FP_OK);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &old2), FP_OK);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &idle), FP_OK);
    fp_unref(&idle);
    fp_pool_config cfg = {.name = "test", .format = FP_PIX_GRAY8, .width = 320, .height = 240,
                          .max_buffers = 4};
    ck_assert_int_eq(fp_pool_reconfigure(p, &cfg), FP_OK);
    fp_pool_stats st = stats(p);
    ck_assert_uint_eq(st.generation, 2);
    ck_assert_uint_eq(st.idle, 0); /* the idle old buffer was freed at once */
    ck_assert_uint_eq(st.allocated, 2);
    /* Old frames stay valid while held. */
    ck_assert_int_eq(old1->width, 64);
    memset(old1->data[0], 3, 64 * 3);
    fp_image *n = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &n), FP_OK);
    ck_assert_int_eq(n->width, 320);
    ck_assert_int_eq(n->format, FP_PIX_GRAY8);
    st = stats(p);
    ck_assert_int_eq(st.width, 320);
    ck_assert_int_eq(st.height, 240);
    ck_assert_int_eq(st.format, FP_PIX_GRAY8);
    uint64_t frees = stats(p).frees;
    fp_unref(&old1);
    st = stats(p);
    ck_assert_uint_eq(st.frees, frees + 1); /* freed, not kept */
    ck_assert_uint_eq(st.idle, 0);
    fp_unref(&old2);
    fp_unref(&n);
    st = stats(p);
    ck_assert_uint_eq(st.idle, 1);
    ck_assert_uint_eq(st.allocated, 1);
    cfg.width = -1;
    ck_assert_int_eq(fp_pool_reconfigure(p, &cfg), FP_EINVAL);
    ck_assert_uint_eq(stats(p).generation, 2);
    fp_unref(&p);
    ck_assert_int_eq(tu_alloc_live(), 0);
    tu_alloc_uninstall();
}
END_TEST

START_TEST(test_pool_outlives_owner_until_last_buffer)
{
    tu_alloc_install();
    fp_pool *p = make_pool(2, 4);
    fp_image *a = NULL, *b = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &b), FP_OK);
    fp_image *c = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &c), FP_OK);
    fp_unref(&c); /* one idle buffer: freed with the owner's release */
    int64_t live_before = tu_alloc_live();
    fp_unref(&p);
    ck_assert_int_eq(tu_alloc_live(), live_before - 1);
    /* The frames are still fully usable. */
    memset(a->data[0], 9, (size_t)a->stride[0] * (size_t)a->height);
    fp_image *copy = NULL;
    ck_assert_int_eq(fp_image_copy(a, NULL, 0, &copy), FP_OK); /* pool is closed: standalone */
    ck_assert_ptr_null(tu_pool_of(copy));
    ck_assert_int_eq(copy->data[0][10], 9);
    fp_unref(&copy);
    fp_unref(&b);
    ck_assert_int_gt(tu_alloc_live(), 0); /* a keeps the pool alive */
    fp_unref(&a);
    ck_assert_int_eq(tu_alloc_live(), 0); /* last buffer back: pool gone */
    tu_alloc_uninstall();
}
END_TEST

/* Once the owner let go, the pool is never handed out again: an image's pool
 * is NULL, and a reference taken on the pool through a stale pointer aborts
 * rather than reviving it (its last release would then run twice). */
START_TEST(test_image_get_pool_never_returns_a_released_pool)
{
    fp_pool *p = make_pool(0, 4);
    fp_image *a = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK);
    fp_pool *got = fp_image_get_pool(a);
    ck_assert_ptr_eq(got, p);
    ck_assert_uint_eq(fp_refcount(p), 2); /* +1 for the caller */
    fp_unref(&got);
    fp_unref(&p);
    ck_assert_ptr_null(fp_image_get_pool(a));
    ck_assert_ptr_null(fp_image_get_pool(a)); /* and stays so */
    fp_unref(&a);
}
END_TEST

START_TEST(test_ref_on_released_pool_aborts)
{
    fp_pool *p = make_pool(0, 4);
    fp_image *a = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK); /* keeps the pool's memory */
    fp_pool *stale = p;
    fp_unref(&p);
    fp_ref(stale); /* aborts */
}
END_TEST

/* The last two buffers of a released pool come back on two threads at the
 * same instant, many times over (with and without a budget): whichever
 * returns last destroys the pool, and the other must not touch it after
 * its own return. Under AddressSanitizer a use after free shows up here. */
/* Two persistent threads; each round the main thread hands each one image
 * and raises `round`, they spin until they see it and drop their image at
 * the same instant, then report `done`. */
typedef struct race_ctx {
    fp_image *img[2];
    _Atomic int round, done, quit;
} race_ctx;

typedef struct racer {
    race_ctx *ctx;
    int id;
} racer;

static void *race_release(void *arg)
{
    racer *r = arg;
    int seen = 0;
    for (;;) {
        int now;
        while ((now = atomic_load_explicit(&r->ctx->round, memory_order_acquire)) == seen) {
            if (atomic_load_explicit(&r->ctx->quit, memory_order_acquire))
                return NULL;
            sched_yield(); /* three spinners may share two cores */
        }
        seen = now;
        fp_unref(&r->ctx->img[r->id]);
        atomic_fetch_add_explicit(&r->ctx->done, 1, memory_order_acq_rel);
    }
}

static void last_buffers_race(int with_budget, int rounds)
{
    tu_alloc_install();
    race_ctx ctx = {{NULL, NULL}, 0, 0, 0};
    racer r[2] = {{&ctx, 0}, {&ctx, 1}};
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(pthread_create(&t[k], NULL, race_release, &r[k]), 0);
    for (int i = 0; i < rounds; i++) {
        fp_budget *b = NULL;
        if (with_budget)
            ck_assert_int_eq(fp_budget_new(1 << 20, &b), FP_OK);
        fp_pool_config cfg = {.name = "race", .format = FP_PIX_GRAY8, .width = 32,
                              .height = 8, .max_buffers = 4, .budget = b,
                              .max_idle_seconds = (i & 1) ? 10.0 : 0.0};
        fp_pool *p = NULL;
        ck_assert_int_eq(fp_pool_new(&cfg, &p), FP_OK);
        if (i & 2)
            fp_unref(&b); /* the pool holds the budget alone */
        ck_assert_int_eq(fp_pool_acquire(p, 0, &ctx.img[0]), FP_OK);
        ck_assert_int_eq(fp_pool_acquire(p, 0, &ctx.img[1]), FP_OK);
        atomic_store_explicit(&ctx.done, 0, memory_order_relaxed);
        if (i & 4) {
            atomic_fetch_add_explicit(&ctx.round, 1, memory_order_acq_rel);
            fp_unref(&p); /* the owner lets go while they return */
        } else {
            fp_unref(&p);
            atomic_fetch_add_explicit(&ctx.round, 1, memory_order_acq_rel);
        }
        while (atomic_load_explicit(&ctx.done, memory_order_acquire) != 2)
            sched_yield();
        fp_unref(&b);
    }
    atomic_store_explicit(&ctx.quit, 1, memory_order_release);
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    ck_assert_int_eq(tu_alloc_live(), 0); /* every pool and budget is gone */
    tu_alloc_uninstall();
}

START_TEST(test_last_buffers_return_on_two_threads_at_once)
{
    last_buffers_race(0, UNDER_SANITIZER ? 20000 : 50000);
}
END_TEST

START_TEST(test_last_buffers_return_on_two_threads_at_once_with_budget)
{
    last_buffers_race(1, UNDER_SANITIZER ? 20000 : 50000);
}
END_TEST

static void *release_in_thread(void *arg)
{
    fp_image *img = arg;
    fp_unref(&img);
    return NULL;
}

START_TEST(test_buffers_return_from_other_threads_after_owner_left)
{
    tu_alloc_install();
    fp_pool *p = make_pool(0, 8);
    fp_image *imgs[8];
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(fp_pool_acquire(p, 0, &imgs[i]), FP_OK);
    fp_unref(&p);
    pthread_t th[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, release_in_thread, imgs[i]);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(tu_alloc_live(), 0);
    tu_alloc_uninstall();
}
END_TEST

/* Pooled images are counted by their pools, not by the per-type counters: a
 * read of the fp_image statistics adds every pool's figures. These pin that
 * the sum is exact whatever the pools' state. */
static fp_type_stats image_stats(void)
{
    fp_type_stats st;
    ck_assert_int_eq(fp_type_get_stats(&fp_image_type, &st), FP_OK);
    return st;
}

/* The difference between two reads, live and bytes signed. */
#define ck_image_delta(before, live_d, bytes_d, created_d)                                 \
    do {                                                                                   \
        fp_type_stats now_ = image_stats();                                                \
        ck_assert_int_eq((int64_t)now_.live - (int64_t)(before).live, (int64_t)(live_d));  \
        ck_assert_int_eq((int64_t)now_.live_bytes - (int64_t)(before).live_bytes,          \
                         (int64_t)(bytes_d));                                              \
        ck_assert_uint_eq(now_.created - (before).created, (uint64_t)(created_d));         \
    } while (0)

START_TEST(test_image_stats_count_pooled_images_out)
{
    fp_image *warm = NULL; /* the fp_image record exists from here on */
    ck_assert_int_eq(fp_image_new(FP_PIX_GRAY8, 8, 8, &warm), FP_OK);
    fp_unref(&warm);
    fp_type_stats before = image_stats();
    fp_pool *p = make_pool(2, 4); /* two prefilled buffers: created, idle, not live */
    size_t bb = stats(p).buffer_bytes;
    ck_image_delta(before, 0, 0, 2);
    fp_image *a = NULL, *b = NULL, *c = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK); /* hit */
    ck_assert_int_eq(fp_pool_acquire(p, 0, &b), FP_OK); /* hit */
    ck_assert_int_eq(fp_pool_acquire(p, 0, &c), FP_OK); /* miss: a new buffer */
    ck_assert_uint_eq(fp_obj_bytes(a), bb);
    ck_image_delta(before, 3, 3 * bb, 5);
    fp_type_stats st = image_stats();
    ck_assert_uint_ge(st.peak, st.live);
    ck_assert_uint_ge(st.peak_bytes, st.live_bytes);
    uint64_t objs0, bytes0, objs1, bytes1;
    fp_obj_totals(&objs0, &bytes0);
    fp_unref(&b);
    ck_image_delta(before, 2, 2 * bb, 5);
    fp_obj_totals(&objs1, &bytes1);
    ck_assert_uint_eq(objs0 - objs1, 1);
    ck_assert_uint_eq(bytes0 - bytes1, bb);
    /* A charge the user changes counts while the image is out and is taken
     * back when the buffer returns to its pool. */
    fp_obj_set_bytes(a, bb + 1000);
    ck_image_delta(before, 2, 2 * bb + 1000, 5);
    fp_unref(&a);
    ck_image_delta(before, 1, bb, 5);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK);
    ck_assert_uint_eq(fp_obj_bytes(a), bb);
    ck_image_delta(before, 2, 2 * bb, 6);
    fp_unref(&a);
    fp_unref(&c);
    ck_image_delta(before, 0, 0, 6);
    fp_unref(&p);
    ck_image_delta(before, 0, 0, 6);
    /* The peak saw the three images out. */
    ck_assert_uint_ge(image_stats().peak, before.live + 3);
}
END_TEST

START_TEST(test_image_stats_exact_after_pool_goes_with_images_out)
{
    fp_image *warm = NULL;
    ck_assert_int_eq(fp_image_new(FP_PIX_GRAY8, 8, 8, &warm), FP_OK);
    fp_unref(&warm);
    fp_type_stats before = image_stats();
    fp_pool *p = make_pool(0, 4);
    size_t bb = stats(p).buffer_bytes;
    fp_image *a = NULL, *b = NULL, *c = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &a), FP_OK);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &b), FP_OK);
    ck_assert_int_eq(fp_pool_acquire(p, 0, &c), FP_OK);
    fp_unref(&c); /* idle: freed when the owner lets go */
    ck_image_delta(before, 2, 2 * bb, 3);
    fp_unref(&p); /* the owner lets go with two images out */
    ck_image_delta(before, 2, 2 * bb, 3);
    fp_unref(&a);
    ck_image_delta(before, 1, bb, 3);
    fp_unref(&b); /* the last buffer back: the pool is gone */
    ck_image_delta(before, 0, 0, 3);
    /* A second pool, gone the same way from another thread: creations add up. */
    p = make_pool(1, 2);
    fp_image *imgs[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(fp_pool_acquire(p, 0, &imgs[i]), FP_OK);
    ck_image_delta(before, 2, 2 * bb, 6); /* prefill, hit, miss */
    fp_unref(&p);
    pthread_t th;
    pthread_create(&th, NULL, release_in_thread, imgs[0]);
    pthread_join(th, NULL);
    ck_image_delta(before, 1, bb, 6);
    fp_unref(&imgs[1]);
    ck_image_delta(before, 0, 0, 6);
}
END_TEST

START_TEST(test_image_stats_mix_pooled_and_standalone)
{
    fp_image *warm = NULL;
    ck_assert_int_eq(fp_image_new(FP_PIX_GRAY8, 8, 8, &warm), FP_OK);
    fp_unref(&warm);
    fp_type_stats before = image_stats();
    fp_pool *p = make_pool(0, 4);
    size_t bb = stats(p).buffer_bytes;
    fp_image *pa = NULL, *pb = NULL, *sa = NULL, *sb = NULL, *copy = NULL;
    ck_assert_int_eq(fp_pool_acquire(p, 0, &pa), FP_OK);
    ck_assert_int_eq(fp_image_new(FP_PIX_BGR24, 64, 48, &sa), FP_OK);
    size_t sab = fp_obj_bytes(sa);
    ck_assert_int_eq(fp_image_new(FP_PIX_GRAY8, 100, 10, &sb), FP_OK);
    size_t sbb = fp_obj_bytes(sb);
    ck_image_delta(before, 3, bb + sab + sbb, 3);
    /* A copy into the pool is a pooled image, a copy without one is not. */
    ck_assert_int_eq(fp_image_copy(sa, p, 0, &pb), FP_OK);
    ck_assert_ptr_eq(tu_pool_of(pb), p);
    ck_assert_int_eq(fp_image_copy(pa, NULL, 0, &copy), FP_OK);
    ck_assert_ptr_null(tu_pool_of(copy));
    ck_image_delta(before, 5, 2 * bb + 2 * sab + sbb, 5);
    fp_unref(&sa);
    fp_unref(&pa);
    ck_image_delta(before, 3, bb + sab + sbb, 5);
    fp_unref(&p);
    ck_image_delta(before, 3, bb + sab + sbb, 5);
    fp_unref(&pb);
    fp_unref(&copy);
    ck_image_delta(before, 1, sbb, 5);
    fp_unref(&sb);
    ck_image_delta(before, 0, 0, 5);
}
END_TEST

START_TEST(test_budget_shared_by_two_pools)
{
    fp_pool_config cfg = {.name = "cam", .format = FP_PIX_GRAY8, .width = 64, .height = 64,
                          .max_buffers = 8};
    fp_pool *probe = NULL;
    ck_assert_int_eq(fp_pool_new(&cfg, &probe), FP_OK);
    size_t one = stats(probe).buffer_bytes;
    fp_unref(&probe);

    fp_budget *b = NULL;
    ck_assert_int_eq(fp_budget_new(0, &b), FP_EINVAL);
    ck_assert_int_eq(fp_budget_new(3 * one, &b), FP_OK);
    cfg.budget = b;
    fp_pool *pa = NULL, *pb = NULL;
    cfg.name = "cam-a";
    ck_assert_int_eq(fp_pool_new(&cfg, &pa), FP_OK);
    cfg.name = "cam-b";
    ck_assert_int_eq(fp_pool_new(&cfg, &pb), FP_OK);
    fp_budget_stats bs;
    fp_budget_get_stats(b, &bs);
    ck_assert_uint_eq(bs.pools, 2);

    fp_image *a1 = NULL, *a2 = NULL, *b1 = NULL, *b2 = NULL;
    ck_assert_int_eq(fp_pool_acquire(pa, 0, &a1), FP_OK);
    ck_assert_int_eq(fp_pool_acquire(pa, 0, &a2), FP_OK);
    ck_assert_int_eq(fp_pool_acquire(pb, 0, &b1), FP_OK);
    /* Three buffers fill the budget although each pool allows eight. */
    ck_assert_int_eq(fp_pool_acquire(pb, 0, &b2), FP_ELIMIT);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "budget"));
    fp_budget_get_stats(b, &bs);
    ck_assert_uint_eq(bs.used_bytes, 3 * one);
    ck_assert_uint_eq(bs.refusals, 1);
    /* An idle buffer in pool a is reclaimed to make room in pool b. */
    fp_unref(&a2);
    ck_assert_uint_eq(stats(pa).idle, 1);
    ck_assert_int_eq(fp_pool_acquire(pb, 0, &b2), FP_OK);
    ck_assert_uint_eq(stats(pa).idle, 0);
    fp_budget_get_stats(b, &bs);
    ck_assert_uint_eq(bs.reclaimed, 1);
    ck_assert_uint_eq(bs.used_bytes, 3 * one);
    ck_assert_uint_eq(bs.peak_bytes, 3 * one);

    /* A timed acquire waits for the budget and gets the freed bytes. */
    waiter_arg w = {pa, 2000000, 1, NULL};
    pthread_t th;
    pthread_create(&th, NULL, waiter, &w);
    sleep_ms(30);
    fp_unref(&b1); /* pool b has a budget waiter: the buffer is freed, not kept */
    pthread_join(th, NULL);
    ck_assert_int_eq(w.rc, FP_OK);
    fp_unref(&w.img);
    ck_assert_int_eq(fp_pool_acquire(pa, 20000, &a2), FP_OK); /* idle one in a */
    fp_image *x = NULL;
    ck_assert_int_eq(fp_pool_acquire(pa, 20000, &x), FP_ETIMEDOUT);

    fp_unref(&a1);
    fp_unref(&a2);
    fp_unref(&b2);
    fp_unref(&pa);
    fp_unref(&pb);
    fp_budget_get_stats(b, &bs);
    ck_assert_uint_eq(bs.used_bytes, 0);
    ck_assert_uint_eq(bs.pools, 0);
    fp_unref(&b);
}
END_TEST

START_TEST(test_budget_too_small_for_min_buffers)
{
    fp_budget *b = NULL;
    ck_assert_int_eq(fp_budget_new(1000, &b), FP_OK);
    fp_pool_config cfg = {.format = FP_PIX_GRAY8, .width = 64, .height = 64, .min_buffers = 1,
                          .budget = b};
    fp_pool *p = NULL;
    ck_assert_int_eq(fp_pool_new(&cfg, &p), FP_ELIMIT);
    ck_assert_ptr_null(p);
    fp_budget_stats bs;
    fp_budget_get_stats(b, &bs);
    ck_assert_uint_eq(bs.pools, 0);
    ck_assert_uint_eq(bs.used_bytes, 0);
    fp_unref(&b);
}
END_TEST

/* ---- stress: 4 threads, 1,000,000 buffers passed across threads -------------- */

#define QCAP 8
typedef struct queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    fp_image *items[QCAP];
    int head, count, done_producers;
} queue;

typedef struct stress_ctx {
    fp_pool *pool;
    queue q;
    _Atomic long produced, consumed, bad;
    long per_producer;
} stress_ctx;

static void q_push(queue *q, fp_image *img)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == QCAP)
        pthread_cond_wait(&q->not_full, &q->mu);
    q->items[(q->head + q->count) % QCAP] = img;
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

static fp_image *q_pop(queue *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && q->done_producers < 2)
        pthread_cond_wait(&q->not_empty, &q->mu);
    fp_image *img = NULL;
    if (q->count) {
        img = q->items[q->head];
        q->head = (q->head + 1) % QCAP;
        q->count--;
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->mu);
    return img;
}

static void *producer(void *arg)
{
    stress_ctx *c = arg;
    for (long i = 0; i < c->per_producer; i++) {
        fp_image *img = NULL;
        if (fp_pool_acquire(c->pool, -1, &img) != FP_OK) {
            atomic_fetch_add(&c->bad, 1);
            continue;
        }
        if (!fp_image_is_writable(img))
            atomic_fetch_add(&c->bad, 1);
        img->data[0][0] = (uint8_t)i;
        img->index = i;
        q_push(&c->q, fp_ref(img)); /* the consumer gets its own reference */
        fp_unref(&img);             /* dropped concurrently with the consumer's */
        atomic_fetch_add(&c->produced, 1);
    }
    pthread_mutex_lock(&c->q.mu);
    c->q.done_producers++;
    pthread_cond_broadcast(&c->q.not_empty);
    pthread_mutex_unlock(&c->q.mu);
    return NULL;
}

static void *consumer(void *arg)
{
    stress_ctx *c = arg;
    fp_image *img;
    while ((img = q_pop(&c->q)) != NULL) {
        fp_image *extra = fp_ref(img); /* refs taken and dropped concurrently */
        if (img->data[0][0] != (uint8_t)img->index)
            atomic_fetch_add(&c->bad, 1);
        fp_unref(&extra);
        fp_unref(&img);
        atomic_fetch_add(&c->consumed, 1);
    }
    return NULL;
}

START_TEST(test_stress_four_threads_million_buffers)
{
    stress_ctx c;
    memset(&c, 0, sizeof c);
    fp_pool_config cfg = {.name = "stress", .format = FP_PIX_GRAY8, .width = 64, .height = 16,
                          .max_buffers = 12};
    ck_assert_int_eq(fp_pool_new(&cfg, &c.pool), FP_OK);
    pthread_mutex_init(&c.q.mu, NULL);
    pthread_cond_init(&c.q.not_empty, NULL);
    pthread_cond_init(&c.q.not_full, NULL);
    c.per_producer = STRESS_BUFFERS / 2;
    pthread_t th[4];
    pthread_create(&th[0], NULL, producer, &c);
    pthread_create(&th[1], NULL, producer, &c);
    pthread_create(&th[2], NULL, consumer, &c);
    pthread_create(&th[3], NULL, consumer, &c);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(atomic_load(&c.bad), 0);
    ck_assert_int_eq(atomic_load(&c.produced), STRESS_BUFFERS);
    ck_assert_int_eq(atomic_load(&c.consumed), STRESS_BUFFERS);
    fp_pool_stats st = stats(c.pool);
    ck_assert_uint_eq(st.outstanding, 0);
    ck_assert_uint_eq(st.hits + st.misses, STRESS_BUFFERS);
    ck_assert_uint_le(st.allocated, 12);
    ck_assert_uint_le(st.peak, 12);
    ck_assert_uint_eq(st.idle, st.allocated);
    fp_unref(&c.pool);
    pthread_mutex_destroy(&c.q.mu);
    pthread_cond_destroy(&c.q.not_empty);
    pthread_cond_destroy(&c.q.not_full);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_add_test(tc, test_acquire_release_reuses_lifo);
    tcase_add_test(tc, test_returned_buffer_is_reset_and_sited);
    tcase_add_test(tc, test_bad_configs_are_rejected);
    tcase_add_test(tc, test_cap_gives_elimit_with_a_message);
    tcase_add_test(tc, test_timeout_expires_on_time);
    tcase_add_test(tc, test_wait_forever_gets_a_returned_buffer);
    tcase_add_test(tc, test_cancel_wakes_waiters_and_sticks_until_resume);
    tcase_add_test(tc, test_min_buffers_are_warm_and_trim_keeps_them);
    tcase_add_test(tc, test_prefault_zero_fills_new_buffers);
    tcase_add_test(tc, test_idle_buffers_age_out);
    tcase_add_test(tc, test_reconfigure_frees_old_generation_on_return);
    tcase_add_test(tc, test_pool_outlives_owner_until_last_buffer);
    tcase_add_test(tc, test_buffers_return_from_other_threads_after_owner_left);
    tcase_add_test(tc, test_image_get_pool_never_returns_a_released_pool);
    tcase_add_test_raise_signal(tc, test_ref_on_released_pool_aborts, SIGABRT);
    tcase_add_test(tc, test_image_stats_count_pooled_images_out);
    tcase_add_test(tc, test_image_stats_exact_after_pool_goes_with_images_out);
    tcase_add_test(tc, test_image_stats_mix_pooled_and_standalone);
    tcase_add_test(tc, test_budget_shared_by_two_pools);
    tcase_add_test(tc, test_budget_too_small_for_min_buffers);
    suite_add_tcase(s, tc);
    TCase *st = tcase_create("stress");
    tcase_set_timeout(st, 240);
    tcase_add_test(st, test_stress_four_threads_million_buffers);
    tcase_add_test(st, test_last_buffers_return_on_two_threads_at_once);
    tcase_add_test(st, test_last_buffers_return_on_two_threads_at_once_with_budget);
    suite_add_tcase(s, st);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
