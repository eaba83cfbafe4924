/* The concurrency stress suite: several threads acquire, share,
 * weak-upgrade, cache and release images while owners release pools,
 * budgets, caches and weak maps, in every order, with and without budgets
 * and waiters. The run ends with nothing alive: every framepool allocation
 * returned, every fp_on_free callback run exactly once, the leak report
 * empty. Callbacks call back into pools and statistics (which take every
 * pool's lock): a callback run under a framepool lock would deadlock here.
 *
 * FP_STRESS_SECONDS sets the length (default 20 s); scripts/test runs it
 * plain, under ASan+UBSan, under TSan and in a Release+ASan build (where
 * the optimiser reorders the most). */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <framepool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { N_THREADS = 4, N_POOLS = 4, N_BUDGETS = 2, N_CACHES = 2, N_MAPS = 2, N_IMAGES = 16,
       N_WEAK = 64 };

typedef struct world {
    pthread_mutex_t mu; /* guards the pointers below, never held during a framepool call */
    fp_budget *budget[N_BUDGETS];
    fp_pool *pool[N_POOLS];
    fp_cache *cache[N_CACHES];
    fp_weakmap *wkeys[N_MAPS];
    fp_weakmap *wvals[N_MAPS];
    fp_image *img[N_IMAGES];
    _Atomic uint64_t weak[N_WEAK];
    _Atomic uint64_t cb_registered, cb_run, ops, acquired, upgrades, value_frees,
        values_made;
    _Atomic int stop;
} world;

static world W;

static const fp_type value_type = {"stress value", NULL};

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Takes a reference to what *slot points at (NULL when empty). */
static void *take(void **slot)
{
    pthread_mutex_lock(&W.mu);
    void *o = fp_ref(*slot);
    pthread_mutex_unlock(&W.mu);
    return o;
}

/* Stores `o` (a reference the slot now owns) and releases the previous
 * occupant outside the lock. */
static void put(void **slot, void *o)
{
    pthread_mutex_lock(&W.mu);
    void *old = *slot;
    *slot = o;
    pthread_mutex_unlock(&W.mu);
    fp_unref(&old);
}

#define TAKE(slot) take((void **)&(slot))
#define PUT(slot, o) put((void **)&(slot), (o))

/* Runs on whichever thread drops an image's last reference: it must hold
 * no framepool lock, so it calls what takes them all. */
static void on_image_free(void *user)
{
    (void)user;
    fp_type_stats st;
    fp_type_get_stats(&fp_image_type, &st); /* every pool's lock, the counters' lock */
    (void)fp_pool_idle_bytes_total();       /* the pool registry and every pool */
    fp_weak_stats ws;
    fp_weak_get_stats(&ws); /* the weak slot table */
    atomic_fetch_add(&W.cb_run, 1);
}

static void value_free(void *v)
{
    atomic_fetch_add(&W.value_frees, 1);
    fp_decref(v);
}

static void new_pool(uint64_t *s)
{
    fp_budget *b = (rnd(s) % 3) ? TAKE(W.budget[rnd(s) % N_BUDGETS]) : NULL;
    static const fp_pixfmt fmts[] = {FP_PIX_GRAY8, FP_PIX_BGR24, FP_PIX_YUV420P};
    fp_pool_config cfg = {.name = "stress",
                          .format = fmts[rnd(s) % 3],
                          .width = 16 + (int)(rnd(s) % 4) * 16,
                          .height = 16 + (int)(rnd(s) % 2) * 16,
                          .min_buffers = (unsigned)(rnd(s) % 2),
                          .max_buffers = 2 + (unsigned)(rnd(s) % 5),
                          .max_idle_seconds = (rnd(s) % 4 == 0) ? 0.001 : 0.0,
                          .budget = b};
    fp_pool *p = NULL;
    int rc = fp_pool_new(&cfg, &p);
    ck_assert_msg(rc == FP_OK || rc == FP_ELIMIT, "fp_pool_new: %s", fp_strerror(rc));
    fp_unref(&b);
    if (p)
        PUT(W.pool[rnd(s) % N_POOLS], p);
}

static void acquire_one(uint64_t *s)
{
    fp_pool *p = TAKE(W.pool[rnd(s) % N_POOLS]);
    if (!p)
        return;
    fp_image *img = NULL;
    int64_t timeout = (rnd(s) % 4 == 0) ? 500 : 0; /* some waiters */
    int rc = fp_pool_acquire(p, timeout, &img);
    fp_unref(&p);
    ck_assert_msg(rc == FP_OK || rc == FP_ELIMIT || rc == FP_ETIMEDOUT || rc == FP_ECANCELED,
                  "acquire: %s", fp_strerror(rc));
    if (rc)
        return;
    atomic_fetch_add(&W.acquired, 1);
    ck_assert(fp_image_is_writable(img));
    memset(img->data[0], (int)(rnd(s) & 0xff), (size_t)img->stride[0]);
    if (rnd(s) % 2 && fp_on_free(img, on_image_free, NULL) == FP_OK)
        atomic_fetch_add(&W.cb_registered, 1);
    if (rnd(s) % 2)
        atomic_store(&W.weak[rnd(s) % N_WEAK], fp_weak_of(img).id);
    PUT(W.img[rnd(s) % N_IMAGES], img);
}

static void share(uint64_t *s)
{
    fp_image *img = TAKE(W.img[rnd(s) % N_IMAGES]);
    if (img)
        PUT(W.img[rnd(s) % N_IMAGES], img);
}

static void upgrade(uint64_t *s)
{
    fp_weak w = {atomic_load(&W.weak[rnd(s) % N_WEAK])};
    fp_image *img = fp_weak_get(w);
    if (!img)
        return;
    volatile uint8_t px = img->data[0][0]; /* the pixels are still this image's */
    (void)px;
    ck_assert_int_gt((int)fp_refcount(img), 0);
    atomic_fetch_add(&W.upgrades, 1);
    if (rnd(s) % 4 == 0)
        PUT(W.img[rnd(s) % N_IMAGES], img); /* resurrected into a slot: still one life */
    else
        fp_unref(&img);
}

static void cache_op(uint64_t *s)
{
    fp_cache *c = TAKE(W.cache[rnd(s) % N_CACHES]);
    if (!c)
        return;
    uint64_t key = rnd(s) % 16;
    switch (rnd(s) % 4) {
    case 0:
    case 1: {
        fp_image *img = TAKE(W.img[rnd(s) % N_IMAGES]);
        if (img)
            fp_cache_put(c, key, img, 0);
        fp_unref(&img);
        break;
    }
    case 2: {
        fp_image *img = fp_cache_get(c, key);
        fp_unref(&img);
        break;
    }
    default:
        fp_cache_remove(c, key);
    }
    fp_unref(&c);
}

static void map_op(uint64_t *s)
{
    if (rnd(s) % 2) {
        fp_weakmap *m = TAKE(W.wkeys[rnd(s) % N_MAPS]);
        fp_image *key = TAKE(W.img[rnd(s) % N_IMAGES]);
        if (m && key) {
            void *v = fp_new(&value_type, 8);
            if (v) {
                atomic_fetch_add(&W.values_made, 1);
                if (fp_weakmap_put(m, key, v) != FP_OK) {
                    atomic_fetch_add(&W.value_frees, 1); /* not the map's: ours */
                    fp_unref(&v);
                }
            }
            void *got = NULL;
            if (fp_weakmap_get(m, key, &got) == FP_OK)
                fp_unref(&got); /* value_ref = fp_ref */
        }
        fp_unref(&key);
        fp_unref(&m);
    } else {
        fp_weakmap *m = TAKE(W.wvals[rnd(s) % N_MAPS]);
        if (m) {
            uint64_t k = rnd(s) % 16;
            fp_image *img = TAKE(W.img[rnd(s) % N_IMAGES]);
            if (img)
                fp_weakmap_put_u64(m, k, img);
            fp_unref(&img);
            void *got = NULL;
            if (fp_weakmap_get_u64(m, rnd(s) % 16, &got) == FP_OK)
                fp_unref(&got);
        }
        fp_unref(&m);
    }
}

static void owner_op(uint64_t *s)
{
    switch (rnd(s) % 6) {
    case 0: {
        fp_budget *b = NULL;
        ck_assert_int_eq(fp_budget_new(64 * 1024 + (rnd(s) % 4) * 32 * 1024, &b), FP_OK);
        PUT(W.budget[rnd(s) % N_BUDGETS], b);
        break;
    }
    case 1:
        new_pool(s);
        break;
    case 2:
        PUT(W.pool[rnd(s) % N_POOLS], NULL); /* the owner lets go, images still out */
        break;
    case 3: {
        fp_cache_config cfg = {.max_bytes = 32 * 1024, .max_entries = 8,
                               .policy = (fp_cache_policy)(rnd(s) % 2)};
        fp_cache *c = NULL;
        ck_assert_int_eq(fp_cache_new(&cfg, &c), FP_OK);
        PUT(W.cache[rnd(s) % N_CACHES], c);
        break;
    }
    case 4: {
        fp_weakmap_config cfg = {.mode = FP_WEAKMAP_WEAK_KEYS, .value_free = value_free,
                                 .value_ref = fp_ref};
        fp_weakmap *m = NULL;
        ck_assert_int_eq(fp_weakmap_new(&cfg, &m), FP_OK);
        PUT(W.wkeys[rnd(s) % N_MAPS], m);
        fp_weakmap_config vc = {.mode = FP_WEAKMAP_WEAK_VALUES};
        ck_assert_int_eq(fp_weakmap_new(&vc, &m), FP_OK);
        PUT(W.wvals[rnd(s) % N_MAPS], m);
        break;
    }
    default: {
        fp_pool *p = TAKE(W.pool[rnd(s) % N_POOLS]);
        if (p) {
            if (rnd(s) % 2) {
                fp_pool_trim(p, 0);
            } else {
                fp_pool_cancel(p); /* wakes waiters with FP_ECANCELED */
                fp_pool_resume(p);
            }
        }
        fp_unref(&p);
    }
    }
}

static void image_op(uint64_t *s)
{
    fp_image *img = TAKE(W.img[rnd(s) % N_IMAGES]);
    if (!img)
        return;
    switch (rnd(s) % 3) {
    case 0: {
        /* Its pool, if the owner still holds it, makes a sibling. */
        fp_pool *p = fp_image_get_pool(img);
        if (p) {
            fp_image *sib = NULL;
            if (fp_pool_acquire(p, 0, &sib) == FP_OK)
                PUT(W.img[rnd(s) % N_IMAGES], sib);
        }
        fp_unref(&p);
        break;
    }
    case 1:
        if (fp_image_make_writable(&img) == FP_OK)
            ck_assert(fp_image_is_writable(img));
        break;
    default:
        PUT(W.img[rnd(s) % N_IMAGES], NULL);
    }
    fp_unref(&img);
}

static void *worker(void *arg)
{
    uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)((uintptr_t)arg + 1);
    while (!atomic_load_explicit(&W.stop, memory_order_relaxed)) {
        uint64_t r = rnd(&s) % 100;
        if (r < 30)
            acquire_one(&s);
        else if (r < 42)
            share(&s);
        else if (r < 57)
            upgrade(&s);
        else if (r < 70)
            cache_op(&s);
        else if (r < 82)
            map_op(&s);
        else if (r < 92)
            image_op(&s);
        else
            owner_op(&s);
        atomic_fetch_add_explicit(&W.ops, 1, memory_order_relaxed);
    }
    return NULL;
}

static void release_world(void)
{
    for (int i = 0; i < N_IMAGES; i++)
        PUT(W.img[i], NULL);
    for (int i = 0; i < N_CACHES; i++)
        PUT(W.cache[i], NULL);
    for (int i = 0; i < N_MAPS; i++) {
        PUT(W.wkeys[i], NULL);
        PUT(W.wvals[i], NULL);
    }
    for (int i = 0; i < N_POOLS; i++)
        PUT(W.pool[i], NULL);
    for (int i = 0; i < N_BUDGETS; i++)
        PUT(W.budget[i], NULL);
}

START_TEST(test_everything_at_once)
{
    double seconds = 20;
    const char *env = getenv("FP_STRESS_SECONDS");
    if (env && atof(env) > 0)
        seconds = atof(env);
    /* The weak slot table's first chunk lives for the process: make it
     * before counting allocations. */
    void *warm = fp_new(&value_type, 8);
    fp_weak wk = fp_weak_of(warm);
    ck_assert_uint_ne(wk.id, 0);
    fp_unref(&warm);

    tu_alloc_install();
    memset(&W, 0, sizeof W);
    pthread_mutex_init(&W.mu, NULL);
    uint64_t s = 42;
    for (int i = 0; i < 8; i++)
        owner_op(&s);
    for (int i = 0; i < N_POOLS; i++)
        new_pool(&s);
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i), 0);
    double t0 = tu_now();
    while (tu_now() - t0 < seconds) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&W.stop, 1);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(t[i], NULL);
    release_world();

    fprintf(stderr,
            "stress: %.0f s, %llu ops, %llu acquires, %llu weak upgrades, %llu on-free "
            "callbacks\n",
            seconds, (unsigned long long)W.ops, (unsigned long long)W.acquired,
            (unsigned long long)W.upgrades, (unsigned long long)W.cb_run);
    ck_assert_uint_gt(W.acquired, 1000);
    ck_assert_uint_gt(W.upgrades, 100);
    /* Every callback ran exactly once; every map value was freed once. */
    ck_assert_uint_eq(W.cb_run, W.cb_registered);
    ck_assert_uint_eq(W.value_frees, W.values_made);
    fp_type_stats st;
    fp_type_get_stats(&fp_image_type, &st);
    ck_assert_uint_eq(st.live, 0);
    tu_alloc_assert_clean("stress run", (unsigned long long)W.ops);
    tu_alloc_uninstall();
    pthread_mutex_destroy(&W.mu);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stress");
    TCase *tc = tcase_create("stress");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_everything_at_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
