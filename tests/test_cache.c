/* The bounded cache (lib/core/cache.c). */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <framepool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>


typedef struct blob {
    uint64_t key;
} blob;
static const fp_type blob_type = {"test_blob", NULL};

static blob *blob_new(uint64_t key, size_t bytes)
{
    blob *b = fp_new(&blob_type, sizeof *b);
    ck_assert_ptr_nonnull(b);
    b->key = key;
    if (bytes)
        fp_obj_set_bytes(b, bytes);
    return b;
}

static uint64_t live_blobs(void)
{
    fp_type_stats s;
    fp_type_get_stats(&blob_type, &s);
    return s.live;
}

static fp_cache *cache_new(size_t max_bytes, size_t max_entries, fp_cache_policy policy,
                           unsigned flags)
{
    fp_cache_config cfg = {.name = "test", .max_bytes = max_bytes, .max_entries = max_entries,
                           .policy = policy, .flags = flags};
    fp_cache *c;
    ck_assert_int_eq(fp_cache_new(&cfg, &c), 0);
    return c;
}

/* Puts a new blob and drops the caller's reference (the cache's remains). */
static void put_new(fp_cache *c, uint64_t key, size_t bytes)
{
    blob *b = blob_new(key, 0);
    ck_assert_int_eq(fp_cache_put(c, key, b, bytes), 0);
    fp_unref(&b);
}

static int has(fp_cache *c, uint64_t key)
{
    blob *b = fp_cache_get(c, key);
    if (!b)
        return 0;
    ck_assert_uint_eq(b->key, key);
    fp_unref(&b);
    return 1;
}

static fp_cache_stats stats(fp_cache *c)
{
    fp_cache_stats s;
    fp_cache_get_stats(c, &s);
    return s;
}

START_TEST(config)
{
    fp_cache *c = NULL;
    fp_cache_config cfg = {0};
    ck_assert_int_eq(fp_cache_new(&cfg, &c), FP_EINVAL); /* unbounded by accident */
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "FP_CACHE_UNBOUNDED"));
    ck_assert_int_eq(fp_cache_new(NULL, &c), FP_EINVAL);
    cfg.max_entries = 4;
    cfg.policy = (fp_cache_policy)7;
    ck_assert_int_eq(fp_cache_new(&cfg, &c), FP_EINVAL);
    cfg.policy = FP_CACHE_SIEVE;
    cfg.max_entries = 0;
    cfg.flags = FP_CACHE_UNBOUNDED;
    ck_assert_int_eq(fp_cache_new(&cfg, &c), 0);
    ck_assert_ptr_eq(fp_type_of(c), &fp_cache_type);
    for (uint64_t k = 0; k < 1000; k++)
        put_new(c, k, 0);
    ck_assert_uint_eq(stats(c).entries, 1000);
    ck_assert_uint_eq(stats(c).evictions, 0);
    fp_unref(&c);
    ck_assert_uint_eq(live_blobs(), 0);
    ck_assert_int_eq(fp_cache_put(NULL, 1, NULL, 0), FP_EINVAL);
    ck_assert_ptr_null(fp_cache_get(NULL, 1));
}
END_TEST

START_TEST(put_get_and_references)
{
    fp_cache *c = cache_new(0, 8, FP_CACHE_SIEVE, 0);
    blob *b = blob_new(1, 0);
    ck_assert_int_eq(fp_cache_put(c, 1, b, 0), 0);
    ck_assert_uint_eq(fp_refcount(b), 2); /* the cache holds one */
    blob *g = fp_cache_get(c, 1);
    ck_assert_ptr_eq(g, b);
    ck_assert_uint_eq(fp_refcount(b), 3);
    fp_unref(&g);
    ck_assert_ptr_null(fp_cache_get(c, 2));
    fp_cache_stats s = stats(c);
    ck_assert_uint_eq(s.hits, 1);
    ck_assert_uint_eq(s.misses, 1);
    ck_assert_uint_eq(s.entries, 1);
    ck_assert_uint_eq(s.bytes, fp_obj_bytes(b)); /* default charge */
    ck_assert_uint_eq(s.pinned_entries, 1);     /* we still hold b */
    fp_unref(&b);
    ck_assert_uint_eq(stats(c).pinned_entries, 0);
    ck_assert_uint_eq(live_blobs(), 1);
    /* Replace: the old object is released. */
    put_new(c, 1, 10);
    ck_assert_uint_eq(live_blobs(), 1);
    ck_assert_uint_eq(stats(c).bytes, 10);
    ck_assert_int_eq(fp_cache_remove(c, 1), 0);
    ck_assert_int_eq(fp_cache_remove(c, 1), FP_ENOENT);
    ck_assert_uint_eq(live_blobs(), 0);
    for (uint64_t k = 0; k < 5; k++)
        put_new(c, k, 1);
    fp_cache_clear(c);
    ck_assert_uint_eq(stats(c).entries, 0);
    ck_assert_uint_eq(stats(c).bytes, 0);
    ck_assert_uint_eq(live_blobs(), 0);
    put_new(c, 3, 1);
    fp_unref(&c); /* releases its entries */
    ck_assert_uint_eq(live_blobs(), 0);
}
END_TEST

START_TEST(entry_bound_sieve)
{
    fp_cache *c = cache_new(0, 4, FP_CACHE_SIEVE, 0);
    for (uint64_t k = 1; k <= 4; k++)
        put_new(c, k, 1);
    ck_assert(has(c, 1)); /* visited */
    ck_assert(has(c, 3));
    put_new(c, 5, 1); /* hand from the oldest: 1 visited (spared), 2 evicted */
    ck_assert_uint_eq(stats(c).entries, 4);
    ck_assert_uint_eq(stats(c).evictions, 1);
    ck_assert(!has(c, 2));
    put_new(c, 6, 1); /* hand continues: 3 visited (spared), 4 evicted */
    ck_assert(!has(c, 4));
    ck_assert(has(c, 1) && has(c, 3) && has(c, 5) && has(c, 6));
    ck_assert_uint_eq(live_blobs(), 4);
    fp_unref(&c);
}
END_TEST

START_TEST(entry_bound_lru)
{
    fp_cache *c = cache_new(0, 4, FP_CACHE_LRU, 0);
    for (uint64_t k = 1; k <= 4; k++)
        put_new(c, k, 1);
    ck_assert(has(c, 1)); /* 1 becomes most recent: order 2,3,4,1 */
    put_new(c, 5, 1);
    ck_assert(!has(c, 2));
    ck_assert(has(c, 3)); /* order 4,1,5,3 */
    put_new(c, 6, 1);
    ck_assert(!has(c, 4));
    ck_assert(has(c, 1) && has(c, 3) && has(c, 5) && has(c, 6));
    ck_assert_uint_eq(stats(c).evictions, 2);
    fp_unref(&c);
}
END_TEST

START_TEST(byte_bound)
{
    fp_cache *c = cache_new(1000, 0, FP_CACHE_SIEVE, 0);
    put_new(c, 1, 400);
    put_new(c, 2, 400);
    ck_assert_uint_eq(stats(c).bytes, 800);
    put_new(c, 3, 400); /* 1 goes */
    ck_assert_uint_eq(stats(c).bytes, 800);
    ck_assert(!has(c, 1));
    put_new(c, 4, 900); /* everything else goes */
    fp_cache_stats s = stats(c);
    ck_assert_uint_eq(s.entries, 1);
    ck_assert_uint_eq(s.bytes, 900);
    ck_assert_uint_eq(s.overshoot_bytes, 0);
    /* Images are charged their pixel memory by default. */
    fp_image *img;
    ck_assert_int_eq(fp_image_new(FP_PIX_GRAY8, 16, 16, &img), 0);
    fp_cache *ci = cache_new(img->bytes * 2, 0, FP_CACHE_SIEVE, 0);
    ck_assert_int_eq(fp_cache_put(ci, 1, img, 0), 0);
    ck_assert_uint_eq(stats(ci).bytes, img->bytes);
    ck_assert_uint_ge(img->bytes, 256);
    fp_unref(&img);
    fp_unref(&ci);
    fp_unref(&c);
}
END_TEST

START_TEST(pinned_entries)
{
    fp_cache *c = cache_new(1000, 0, FP_CACHE_SIEVE, 0);
    blob *p1 = blob_new(1, 0), *p2 = blob_new(2, 0);
    ck_assert_int_eq(fp_cache_put(c, 1, p1, 400), 0);
    ck_assert_int_eq(fp_cache_put(c, 2, p2, 400), 0);
    put_new(c, 3, 100);
    fp_cache_stats s = stats(c);
    ck_assert_uint_eq(s.pinned_entries, 2);
    ck_assert_uint_eq(s.pinned_bytes, 800);
    /* Needs 400 more: 3 is the only evictable entry; the pinned stay and the
     * excess shows as overshoot. */
    put_new(c, 4, 400);
    s = stats(c);
    ck_assert_uint_eq(s.evictions, 1);
    ck_assert(!has(c, 3));
    ck_assert(has(c, 1) && has(c, 2) && has(c, 4));
    ck_assert_uint_eq(s.bytes, 1200);
    ck_assert_uint_eq(s.overshoot_bytes, 200);
    ck_assert_uint_eq(s.peak_overshoot_bytes, 200);
    ck_assert_uint_eq(live_blobs(), 3);
    /* Once the pins are released, trim gets back within bounds. */
    fp_unref(&p1);
    fp_unref(&p2);
    ck_assert_int_ge(fp_cache_trim(c), 1);
    s = stats(c);
    ck_assert_uint_le(s.bytes, 1000);
    ck_assert_uint_eq(s.overshoot_bytes, 0);
    ck_assert_uint_eq(s.peak_overshoot_bytes, 200);
    fp_unref(&c);
    ck_assert_uint_eq(live_blobs(), 0);
}
END_TEST

START_TEST(strict_mode)
{
    fp_cache *c = cache_new(1000, 3, FP_CACHE_SIEVE, FP_CACHE_STRICT);
    blob *p1 = blob_new(1, 0), *p2 = blob_new(2, 0), *p3 = blob_new(3, 0);
    ck_assert_int_eq(fp_cache_put(c, 1, p1, 400), 0);
    ck_assert_int_eq(fp_cache_put(c, 2, p2, 400), 0);
    blob *b = blob_new(9, 0);
    ck_assert_int_eq(fp_cache_put(c, 9, b, 400), FP_ELIMIT); /* bytes */
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "max_bytes=1000"));
    ck_assert_uint_eq(fp_refcount(b), 1); /* not kept */
    ck_assert_int_eq(fp_cache_put(c, 9, b, 2000), FP_ELIMIT); /* bigger than the cache */
    ck_assert_int_eq(fp_cache_put(c, 3, p3, 100), 0);
    ck_assert_int_eq(fp_cache_put(c, 9, b, 10), FP_ELIMIT); /* entries */
    fp_cache_stats s = stats(c);
    ck_assert_uint_eq(s.rejected, 3);
    ck_assert_uint_eq(s.overshoot_bytes, 0);
    ck_assert_uint_eq(s.entries, 3);
    fp_unref(&p3);
    ck_assert_int_eq(fp_cache_put(c, 9, b, 10), 0); /* 3 can go now */
    ck_assert(!has(c, 3));
    fp_unref(&b);
    fp_unref(&p1);
    fp_unref(&p2);
    fp_unref(&c);
    ck_assert_uint_eq(live_blobs(), 0);
}
END_TEST

/* ---- get_or_load ------------------------------------------------------------- */

static _Atomic int loads;
static _Atomic uint64_t expected_waits;
static fp_cache *_Atomic loading_cache; /* set by tests whose loader waits for waiters */
static int slow_loader(uint64_t key, void *user, void **obj, size_t *bytes)
{
    atomic_fetch_add(&loads, 1);
    /* Stay in the load until the other callers wait for it (up to 2 s: threads
     * start late on a loaded machine or under a sanitizer). */
    fp_cache *c = atomic_load(&loading_cache);
    for (int i = 0; i < 400; i++) {
        if (c) {
            fp_cache_stats st;
            fp_cache_get_stats(c, &st);
            if (st.load_waits >= atomic_load(&expected_waits))
                break;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (!c && i >= 9)
            break; /* 50 ms for loaders that do not wait for anyone */
    }
    if (user)
        return *(int *)user;
    *obj = blob_new(key, 0);
    *bytes = 10;
    return 0;
}

typedef struct load_arg {
    fp_cache *c;
    uint64_t key;
    int *err;
    int rc;
    void *obj;
} load_arg;

static void *load_thread(void *p)
{
    load_arg *a = p;
    a->rc = fp_cache_get_or_load(a->c, a->key, slow_loader, a->err, &a->obj);
    return NULL;
}

START_TEST(single_flight_load)
{
    fp_cache *c = cache_new(0, 16, FP_CACHE_SIEVE, 0);
    enum { T = 4 };
    pthread_t th[T];
    load_arg args[T];
    atomic_store(&loading_cache, c);
    atomic_store(&expected_waits, T - 1);
    for (int i = 0; i < T; i++) {
        args[i] = (load_arg){c, 42, NULL, 1, NULL};
        pthread_create(&th[i], NULL, load_thread, &args[i]);
    }
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(atomic_load(&loads), 1); /* no duplicate loads */
    for (int i = 0; i < T; i++) {
        ck_assert_int_eq(args[i].rc, 0);
        ck_assert_ptr_eq(args[i].obj, args[0].obj);
        fp_decref(args[i].obj);
    }
    fp_cache_stats s = stats(c);
    ck_assert_uint_eq(s.entries, 1);
    ck_assert_uint_eq(s.bytes, 10);
    ck_assert_uint_eq(s.misses, 1);
    ck_assert_uint_eq(s.load_waits + s.hits, T - 1); /* late callers may find it cached */
    ck_assert_uint_gt(s.load_waits, 0);
    ck_assert_uint_eq(live_blobs(), 1);

    /* A hit does not load. */
    void *o;
    ck_assert_int_eq(fp_cache_get_or_load(c, 42, slow_loader, NULL, &o), 0);
    ck_assert_int_eq(atomic_load(&loads), 1);
    fp_decref(o);

    /* Errors reach every waiter, and nothing is cached: a caller that comes
     * after a failed load (threads start late under sanitizers) loads again
     * and fails the same way. */
    int err = FP_EIO;
    int loads_before = atomic_load(&loads);
    atomic_store(&expected_waits, stats(c).load_waits + T - 1);
    for (int i = 0; i < T; i++) {
        args[i] = (load_arg){c, 7, &err, 1, (void *)1};
        pthread_create(&th[i], NULL, load_thread, &args[i]);
    }
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < T; i++) {
        ck_assert_int_eq(args[i].rc, FP_EIO);
        ck_assert_ptr_null(args[i].obj);
    }
    int failed_loads = atomic_load(&loads) - loads_before;
    ck_assert_int_ge(failed_loads, 1);
    ck_assert_int_le(failed_loads, T);
    s = stats(c);
    ck_assert_uint_eq(s.load_errors, (uint64_t)failed_loads);
    ck_assert_ptr_null(fp_cache_get(c, 7));
    ck_assert_int_eq(fp_cache_get_or_load(c, 1, NULL, NULL, &o), FP_EINVAL);
    atomic_store(&loading_cache, NULL);
    fp_unref(&c);
    ck_assert_uint_eq(live_blobs(), 0);
}
END_TEST

/* A rejected put (strict) still hands the loaded object to the caller. */
static blob *pin_for_load;
static int pinned_loader(uint64_t key, void *user, void **obj, size_t *bytes)
{
    (void)key, (void)user;
    *obj = blob_new(5, 0);
    *bytes = 10;
    return 0;
}

START_TEST(load_rejected_put)
{
    fp_cache *c = cache_new(0, 1, FP_CACHE_SIEVE, FP_CACHE_STRICT);
    pin_for_load = blob_new(1, 0);
    ck_assert_int_eq(fp_cache_put(c, 1, pin_for_load, 1), 0);
    void *o;
    ck_assert_int_eq(fp_cache_get_or_load(c, 5, pinned_loader, NULL, &o), 0);
    ck_assert_ptr_nonnull(o);
    ck_assert_uint_eq(fp_refcount(o), 1);
    ck_assert_uint_eq(stats(c).rejected, 1);
    fp_decref(o);
    fp_unref(&pin_for_load);
    fp_unref(&c);
    ck_assert_uint_eq(live_blobs(), 0);
}
END_TEST

static int alloc_loader(uint64_t key, void *user, void **obj, size_t *bytes)
{
    (void)key, (void)user, (void)bytes;
    *obj = fp_new(&blob_type, sizeof(blob));
    return *obj ? 0 : FP_ENOMEM;
}

START_TEST(alloc_failures)
{
    tu_alloc_install();
    int saw_ok = 0, saw_enomem = 0;
    for (uint64_t n = 1; n < 12; n++) {
        int64_t base = tu_alloc_live();
        tu_alloc_fail_at(n);
        fp_cache_config cfg = {.max_entries = 2};
        fp_cache *c = NULL;
        blob *b = NULL;
        void *o = NULL;
        int rc = fp_cache_new(&cfg, &c);
        if (rc == 0) {
            b = fp_new(&blob_type, sizeof *b);
            rc = b ? 0 : FP_ENOMEM;
        }
        if (rc == 0)
            rc = fp_cache_put(c, 1, b, 1);
        if (rc == 0)
            rc = fp_cache_get_or_load(c, 2, alloc_loader, NULL, &o);
        tu_alloc_fail_at(0);
        ck_assert(rc == 0 || rc == FP_ENOMEM);
        if (rc == 0)
            saw_ok = 1;
        else
            saw_enomem = 1;
        fp_decref(o);
        fp_unref(&b);
        fp_unref(&c);
        ck_assert_int_eq(tu_alloc_live(), base);
        ck_assert_uint_eq(live_blobs(), 0);
    }
    ck_assert(saw_ok && saw_enomem);
    tu_alloc_uninstall();
}
END_TEST

/* ---- threads -------------------------------------------------------------------- */

#if UNDER_SANITIZER
#define MT_OPS 20000
#else
#define MT_OPS 200000
#endif
static fp_cache *mt_cache;

static int mt_loader(uint64_t key, void *user, void **obj, size_t *bytes)
{
    (void)user;
    *obj = blob_new(key, 0);
    *bytes = 1 + key % 7;
    return 0;
}

static void *mt_worker(void *arg)
{
    unsigned seed = (unsigned)(intptr_t)arg * 2654435761u + 7;
    for (int i = 0; i < MT_OPS; i++) {
        seed = seed * 1103515245u + 12345u;
        uint64_t key = (seed >> 12) % 300;
        int op = (int)((seed >> 4) % 16);
        if (op < 8) {
            blob *b = fp_cache_get(mt_cache, key);
            if (b) {
                ck_assert_uint_eq(b->key, key);
                fp_unref(&b);
            }
        } else if (op < 12) {
            void *o;
            ck_assert_int_eq(fp_cache_get_or_load(mt_cache, key, mt_loader, NULL, &o), 0);
            ck_assert_uint_eq(((blob *)o)->key, key);
            fp_decref(o);
        } else if (op < 15) {
            blob *b = blob_new(key, 0);
            ck_assert_int_eq(fp_cache_put(mt_cache, key, b, 1 + key % 7), 0);
            fp_unref(&b);
        } else if (seed & 0x10000) {
            fp_cache_remove(mt_cache, key);
        } else {
            fp_cache_stats s;
            fp_cache_get_stats(mt_cache, &s);
        }
    }
    return NULL;
}

START_TEST(threads)
{
    fp_cache_policy pol = _i ? FP_CACHE_LRU : FP_CACHE_SIEVE;
    mt_cache = cache_new(400, 100, pol, 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, mt_worker, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    fp_cache_trim(mt_cache);
    fp_cache_stats s = stats(mt_cache);
    ck_assert_uint_le(s.entries, 100);
    ck_assert_uint_le(s.bytes, 400);
    ck_assert_uint_gt(s.hits, 0);
    ck_assert_uint_gt(s.evictions, 0);
    ck_assert_uint_eq(live_blobs(), s.entries);
    fp_unref(&mt_cache);
    ck_assert_uint_eq(live_blobs(), 0);
}
END_TEST

static Suite *cache_suite(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, config);
    tcase_add_test(tc, put_get_and_references);
    tcase_add_test(tc, entry_bound_sieve);
    tcase_add_test(tc, entry_bound_lru);
    tcase_add_test(tc, byte_bound);
    tcase_add_test(tc, pinned_entries);
    tcase_add_test(tc, strict_mode);
    tcase_add_test(tc, load_rejected_put);
    tcase_add_test(tc, alloc_failures);
    suite_add_tcase(s, tc);
    TCase *mt = tcase_create("threads");
    tcase_set_timeout(mt, 120);
    tcase_add_test(mt, single_flight_load);
    tcase_add_loop_test(mt, threads, 0, 2);
    suite_add_tcase(s, mt);
    return s;
}

int main(void)
{
    return tu_run(cache_suite());
}
