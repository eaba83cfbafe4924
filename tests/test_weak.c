/* Weak handles and fp_on_free (lib/core/weak.c). */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include "weak_priv.h"
#include <framepool.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>


typedef struct thing {
    uint64_t wid;
    int value;
    _Atomic int alive;
} thing;

static _Atomic int finalized;
static void thing_fin(void *o)
{
    thing *t = o;
    atomic_store(&t->alive, 0);
    atomic_fetch_add(&finalized, 1);
}
static const fp_type thing_type = {"test_thing", thing_fin};

static thing *thing_new(int v)
{
    thing *t = fp_new(&thing_type, sizeof *t);
    ck_assert_ptr_nonnull(t);
    t->value = v;
    atomic_store(&t->alive, 1);
    return t;
}

static uint64_t live_of(const fp_type *t)
{
    fp_type_stats s;
    fp_type_get_stats(t, &s);
    return s.live;
}

START_TEST(handle_basics)
{
    fp_weak_stats s0;
    fp_weak_get_stats(&s0);
    thing *t = thing_new(7);
    ck_assert_uint_eq(atomic_load(&fp__hdr(t)->flags) & (FP__OBJ_WEAK | FP__OBJ_ONFREE), 0);
    fp_weak w = fp_weak_of(t);
    ck_assert(w.id != 0);
    ck_assert(atomic_load(&fp__hdr(t)->flags) & FP__OBJ_WEAK);
    ck_assert_uint_eq(fp_weak_of(t).id, w.id); /* same life, same handle */
    ck_assert_int_eq(fp_weak_alive(w), 1);
    thing *again = fp_weak_get(w);
    ck_assert_ptr_eq(again, t);
    ck_assert_uint_eq(fp_refcount(t), 2);
    fp_unref(&again);
    ck_assert_uint_eq(fp_refcount(t), 1);
    fp_weak_stats s1;
    fp_weak_get_stats(&s1);
    ck_assert_uint_eq(s1.slots_used, s0.slots_used + 1);

    fp_unref(&t); /* the handle does not keep it alive */
    ck_assert_int_eq(atomic_load(&finalized), 1);
    ck_assert_ptr_null(fp_weak_get(w));
    ck_assert_int_eq(fp_weak_alive(w), 0);
    fp_weak_get_stats(&s1);
    ck_assert_uint_eq(s1.slots_used, s0.slots_used);
    ck_assert_uint_eq(s1.deaths, s0.deaths + 1);

    /* A new object reusing the slot gets a different handle; the old one
     * stays dead. */
    thing *u = thing_new(8);
    fp_weak w2 = fp_weak_of(u);
    ck_assert(w2.id != w.id);
    ck_assert_ptr_null(fp_weak_get(w));
    thing *u2 = fp_weak_get(w2);
    ck_assert_ptr_eq(u2, u);
    fp_unref(&u2);
    fp_unref(&u);
    ck_assert_ptr_null(fp_weak_get(w2));
}
END_TEST

START_TEST(handle_edge_cases)
{
    ck_assert_uint_eq(fp_weak_of(NULL).id, 0);
    fp_weak w = {0};
    ck_assert_int_eq(fp_weak_create(NULL, &w), FP_EINVAL);
    ck_assert_int_eq(fp_weak_create(NULL, NULL), FP_EINVAL);
    ck_assert_ptr_null(fp_weak_get(w));
    ck_assert_int_eq(fp_weak_alive(w), 0);
    /* Handles that never existed resolve to nothing. */
    ck_assert_ptr_null(fp_weak_get((fp_weak){0xffffffffull}));
    ck_assert_ptr_null(fp_weak_get((fp_weak){(uint64_t)(FP_WEAK_MAX_SLOTS - 1) << 32}));
    ck_assert_ptr_null(fp_weak_get((fp_weak){UINT64_MAX}));
    thing *t = thing_new(1);
    fp_weak good = fp_weak_of(t);
    ck_assert_ptr_null(fp_weak_get((fp_weak){good.id + 1})); /* wrong generation */
    fp_unref(&t);
    ck_assert_int_eq(fp_on_free(NULL, thing_fin, NULL), FP_EINVAL);
}
END_TEST

/* A handle to a pooled frame dies when the frame goes back to its pool, and
 * does not resolve to the next frame that reuses the buffer. */
START_TEST(pooled_frame)
{
    fp_pool_config cfg = {.format = FP_PIX_GRAY8, .width = 32, .height = 16, .max_buffers = 1};
    fp_pool *pool;
    ck_assert_int_eq(fp_pool_new(&cfg, &pool), 0);
    fp_image *a;
    ck_assert_int_eq(fp_pool_acquire(pool, 0, &a), 0);
    fp_image *buffer = a;
    fp_weak wa = fp_weak_of(a);
    ck_assert(wa.id != 0);
    fp_image *tmp = fp_weak_get(wa);
    ck_assert_ptr_eq(tmp, a);
    fp_unref(&tmp);
    fp_unref(&a); /* back to the pool */
    ck_assert_ptr_null(fp_weak_get(wa));

    fp_image *b;
    ck_assert_int_eq(fp_pool_acquire(pool, 0, &b), 0);
    ck_assert_ptr_eq(b, buffer); /* the same buffer handed out again */
    ck_assert_ptr_null(fp_weak_get(wa));
    ck_assert_int_eq(fp_weak_alive(wa), 0);
    ck_assert_uint_eq(atomic_load(&fp__hdr(b)->flags) & FP__OBJ_WEAK, 0);
    fp_weak wb = fp_weak_of(b);
    ck_assert(wb.id != wa.id);
    tmp = fp_weak_get(wb);
    ck_assert_ptr_eq(tmp, b);
    fp_unref(&tmp);
    fp_unref(&b);
    ck_assert_ptr_null(fp_weak_get(wb));
    fp_unref(&pool);
    fp_weak_stats s;
    fp_weak_get_stats(&s);
    ck_assert_uint_eq(s.slots_used, 0);
}
END_TEST

/* ---- fp_on_free ------------------------------------------------------------ */

static char order_log[64];
static _Atomic int order_n;
static fp_weak cb_target;
static int cb_saw_dead_handle = -1;

static void log_cb(void *user)
{
    int n = atomic_fetch_add(&order_n, 1);
    order_log[n] = *(const char *)user;
    /* Outside every lock: weak lookups and new weak objects work here. */
    cb_saw_dead_handle = fp_weak_get(cb_target) == NULL;
    thing *t = thing_new(0);
    fp_weak w = fp_weak_of(t);
    ck_assert(w.id != 0);
    fp_unref(&t);
}

START_TEST(on_free_order_and_once)
{
    thing *t = thing_new(3);
    cb_target = fp_weak_of(t);
    static const char a = 'a', b = 'b', c = 'c', d = 'd';
    ck_assert_int_eq(fp_on_free(t, log_cb, (void *)&a), 0);
    ck_assert_int_eq(fp_on_free(t, log_cb, (void *)&b), 0);
    ck_assert_int_eq(fp_on_free(t, log_cb, (void *)&c), 0);
    ck_assert_int_eq(fp_on_free(t, log_cb, (void *)&d), 0);
    ck_assert(atomic_load(&fp__hdr(t)->flags) & FP__OBJ_ONFREE);
    fp_weak_stats s;
    fp_weak_get_stats(&s);
    ck_assert_uint_eq(s.callbacks, 4);
    ck_assert_int_eq(fp_on_free_cancel(t, log_cb, (void *)&c), 0);
    ck_assert_int_eq(fp_on_free_cancel(t, log_cb, (void *)&c), FP_ENOENT);
    ck_assert_int_eq(atomic_load(&order_n), 0);
    thing *extra = fp_ref(t);
    fp_unref(&t);
    ck_assert_int_eq(atomic_load(&order_n), 0); /* still referenced */
    fp_unref(&extra);
    ck_assert_int_eq(atomic_load(&order_n), 3);
    ck_assert_int_eq(memcmp(order_log, "abd", 3), 0);
    ck_assert_int_eq(cb_saw_dead_handle, 1);
    ck_assert_int_eq(atomic_load(&finalized), 4); /* t and one temporary per callback */
    fp_weak_get_stats(&s);
    ck_assert_uint_eq(s.callbacks, 0);
    ck_assert_uint_eq(s.slots_used, 0);
}
END_TEST

static int fin_before_cb;
static _Atomic int cb_count;
static void after_fin_cb(void *user)
{
    (void)user;
    fin_before_cb = atomic_load(&finalized);
    atomic_fetch_add(&cb_count, 1);
}

START_TEST(on_free_after_finalizer_and_on_pooled)
{
    thing *t = thing_new(1);
    ck_assert_int_eq(fp_on_free(t, after_fin_cb, NULL), 0); /* no weak handle needed */
    fp_unref(&t);
    ck_assert_int_eq(fin_before_cb, 1);
    ck_assert_int_eq(atomic_load(&cb_count), 1);

    fp_pool_config cfg = {.format = FP_PIX_GRAY8, .width = 8, .height = 8, .max_buffers = 1};
    fp_pool *pool;
    ck_assert_int_eq(fp_pool_new(&cfg, &pool), 0);
    fp_image *img;
    ck_assert_int_eq(fp_pool_acquire(pool, 0, &img), 0);
    ck_assert_int_eq(fp_on_free(img, after_fin_cb, NULL), 0);
    fp_unref(&img);
    ck_assert_int_eq(atomic_load(&cb_count), 2);
    ck_assert_int_eq(fp_pool_acquire(pool, 0, &img), 0); /* recycled: no callback left */
    fp_unref(&img);
    ck_assert_int_eq(atomic_load(&cb_count), 2);
    fp_unref(&pool);
}
END_TEST

/* ---- slot retirement ---------------------------------------------------------- */

START_TEST(slot_retirement)
{
    unsigned old = fp__weak_set_gen_bits(2); /* generations 0..3 */
    fp_weak_stats s0, s1;
    fp_weak_get_stats(&s0);
    ck_assert_uint_eq(s0.gen_bits, 2);
    enum { N = 64 };
    fp_weak handles[N];
    for (int i = 0; i < N; i++) {
        thing *t = thing_new(i);
        handles[i] = fp_weak_of(t);
        ck_assert(handles[i].id != 0);
        for (int j = 0; j < i; j++) {
            ck_assert(handles[j].id != handles[i].id); /* never a handle twice */
            ck_assert_ptr_null(fp_weak_get(handles[j]));
        }
        thing *again = fp_weak_get(handles[i]);
        ck_assert_ptr_eq(again, t);
        fp_unref(&again);
        fp_unref(&t);
    }
    fp_weak_get_stats(&s1);
    /* LIFO reuse: each slot serves 4 lives and then retires. */
    ck_assert_uint_ge(s1.slots_retired - s0.slots_retired, N / 4 - 1);
    ck_assert_uint_eq(s1.slots_used, s0.slots_used);
    fp__weak_set_gen_bits(old);
    fp_weak_get_stats(&s1);
    ck_assert_uint_eq(s1.gen_bits, old);
}
END_TEST

/* ---- the reference cycle ---------------------------------------------------------- */

typedef struct node {
    struct node *next; /* strong */
    fp_weak back;      /* weak */
} node;
static void node_fin(void *o)
{
    node *n = o;
    fp_unref(&n->next);
}
static const fp_type node_type = {"test_cycle_node", node_fin};

/* A finalizer cannot hand out weak handles to its own dying object. */
static int fin_rc = 1;
static void self_weak_fin(void *o)
{
    fp_weak w;
    fin_rc = fp_weak_create(o, &w);
    if (fin_rc == FP_EINVAL)
        fin_rc = fp_on_free(o, after_fin_cb, NULL);
}
static const fp_type self_weak_type = {"test_self_weak", self_weak_fin};

START_TEST(no_handles_from_finalizer)
{
    void *o = fp_new(&self_weak_type, 8);
    fp_weak_stats s0, s1;
    fp_weak_get_stats(&s0);
    fp_unref(&o);
    ck_assert_int_eq(fin_rc, FP_EINVAL);
    fp_weak_get_stats(&s1);
    ck_assert_uint_eq(s1.slots_used, s0.slots_used);
    ck_assert_int_eq(atomic_load(&cb_count), 0);
}
END_TEST

START_TEST(reference_cycle)
{
    /* Strong all around: A -> B -> C -> A. Dropping our references leaks
     * all three. */
    node *a = fp_new(&node_type, sizeof *a), *b = fp_new(&node_type, sizeof *b),
         *c = fp_new(&node_type, sizeof *c);
    a->next = fp_ref(b);
    b->next = fp_ref(c);
    c->next = fp_ref(a);
    node *keep = a; /* only to break the cycle at the end */
    fp_unref(&a);
    fp_unref(&b);
    fp_unref(&c);
    ck_assert_uint_eq(live_of(&node_type), 3);
    fp_unref(&keep->next); /* break it: all three go */
    ck_assert_uint_eq(live_of(&node_type), 0);

    /* With a weak back-reference C -> A, all die. */
    a = fp_new(&node_type, sizeof *a);
    b = fp_new(&node_type, sizeof *b);
    c = fp_new(&node_type, sizeof *c);
    a->next = fp_ref(b);
    b->next = fp_ref(c);
    c->back = fp_weak_of(a);
    node *via = fp_weak_get(c->back);
    ck_assert_ptr_eq(via, a);
    fp_unref(&via);
    fp_weak wc = fp_weak_of(c);
    fp_unref(&b);
    fp_unref(&c);
    ck_assert_uint_eq(live_of(&node_type), 3);
    fp_unref(&a);
    ck_assert_uint_eq(live_of(&node_type), 0);
    ck_assert_ptr_null(fp_weak_get(wc));
}
END_TEST

/* ---- allocation failures ---------------------------------------------------------- */

START_TEST(alloc_failures)
{
    tu_alloc_install();
    thing *t = thing_new(1);
    fp_weak w = fp_weak_of(t); /* the table's first chunk */
    ck_assert(w.id != 0);
    int64_t base = tu_alloc_live();

    /* fp_on_free: its record is the one allocation. */
    tu_alloc_fail_at(1);
    ck_assert_int_eq(fp_on_free(t, after_fin_cb, NULL), FP_ENOMEM);
    tu_alloc_fail_at(0);
    ck_assert_int_eq(tu_alloc_live(), base);
    fp_weak_stats s;
    fp_weak_get_stats(&s);
    ck_assert_uint_eq(s.callbacks, 0);
    fp_unref(&t);
    ck_assert_int_eq(atomic_load(&cb_count), 0);

    /* Fill the slot table's chunks so that the next handle needs a new
     * chunk, and fail that allocation. */
    fp_weak_get_stats(&s);
    size_t n = (size_t)(s.slots_capacity - s.slots_used) + 4;
    thing **objs = calloc(n, sizeof *objs);
    size_t k = 0;
    for (;;) {
        fp_weak_get_stats(&s);
        if (s.slots_free == 0 && s.slots_used + s.slots_retired + 1 == s.slots_capacity)
            break;
        ck_assert_uint_lt(k, n);
        objs[k] = thing_new((int)k);
        ck_assert(fp_weak_of(objs[k]).id != 0);
        k++;
    }
    thing *last = thing_new(-1);
    int64_t before = tu_alloc_live();
    tu_alloc_fail_at(1);
    fp_weak none = {1};
    ck_assert_int_eq(fp_weak_create(last, &none), FP_ENOMEM);
    ck_assert_uint_eq(none.id, 0);
    tu_alloc_fail_at(1);
    ck_assert_uint_eq(fp_weak_of(last).id, 0); /* fp_weak_of reports failure as {0} */
    tu_alloc_fail_at(2);
    ck_assert_int_eq(fp_on_free(last, after_fin_cb, NULL), FP_ENOMEM); /* record ok, slot not */
    tu_alloc_fail_at(0);
    ck_assert_int_eq(tu_alloc_live(), before);
    ck_assert_uint_eq(atomic_load(&fp__hdr(last)->flags) & (FP__OBJ_WEAK | FP__OBJ_ONFREE), 0);
    fp_weak ok;
    ck_assert_int_eq(fp_weak_create(last, &ok), 0); /* works again */
    fp_unref(&last);
    ck_assert_ptr_null(fp_weak_get(ok));
    for (size_t i = 0; i < k; i++)
        fp_unref(&objs[i]);
    free(objs);
    fp_weak_get_stats(&s);
    ck_assert_uint_eq(s.slots_used, 0);
    ck_assert_int_eq(atomic_load(&cb_count), 0);
    tu_alloc_uninstall();
}
END_TEST

/* ---- upgrade vs last release, from many threads --------------------------------------- */

#define CELLS 32
static _Atomic uint64_t cells[CELLS];
static _Atomic int stop_flag;
static _Atomic uint64_t upgrades_ok, upgrades_dead, releases;
static fp_pool *stress_pool;

#if UNDER_SANITIZER
#define OBJECTS_PER_RELEASER 40000
#else
#define OBJECTS_PER_RELEASER 150000
#endif

/* Each releaser keeps its last HOLD objects alive, so that upgrades often
 * succeed and an upgrader's release is often the last one. */
#define HOLD 8
static void *releaser(void *arg)
{
    int id = (int)(intptr_t)arg;
    unsigned seed = (unsigned)id * 7919u + 1;
    void *held[HOLD] = {0};
    for (int i = 0; i < OBJECTS_PER_RELEASER; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned cell = (seed >> 16) % CELLS;
        void *o;
        if (id & 1) {
            /* pooled frames: the buffer comes back as a new frame */
            fp_image *img;
            ck_assert_int_eq(fp_pool_acquire(stress_pool, -1, &img), 0);
            fp_weak w = fp_weak_of(img);
            ck_assert(w.id != 0);
            img->pts = (int64_t)w.id;
            atomic_store_explicit(&cells[cell], w.id, memory_order_release);
            if (seed & 0x100) {
                fp_image *again = fp_weak_get(w);
                ck_assert_ptr_eq(again, img);
                fp_unref(&again);
            }
            o = img;
        } else {
            thing *t = thing_new(i);
            fp_weak w = fp_weak_of(t);
            ck_assert(w.id != 0);
            t->wid = w.id;
            atomic_store_explicit(&cells[cell], w.id, memory_order_release);
            o = t;
        }
        fp_decref(held[i % HOLD]);
        held[i % HOLD] = o;
        atomic_fetch_add_explicit(&releases, 1, memory_order_relaxed);
    }
    for (int i = 0; i < HOLD; i++)
        fp_decref(held[i]);
    return NULL;
}

static void *upgrader(void *arg)
{
    unsigned seed = (unsigned)(intptr_t)arg * 104729u + 3;
    uint64_t ok = 0, dead = 0;
    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
        seed = seed * 1103515245u + 12345u;
        if ((seed & 0xfff) == 0)
            sched_yield(); /* 8 threads on few cores: let the releasers run */
        uint64_t id = atomic_load_explicit(&cells[(seed >> 16) % CELLS], memory_order_acquire);
        if (!id)
            continue;
        void *o = fp_weak_get((fp_weak){id});
        if (!o) {
            dead++;
            continue;
        }
        ok++;
        /* It must be exactly the life the handle was made for. */
        if (fp_type_of(o) == &fp_image_type) {
            fp_image *img = o;
            ck_assert_int_eq(img->pts, (int64_t)id);
        } else {
            thing *t = o;
            ck_assert_int_eq(atomic_load(&t->alive), 1);
            ck_assert_uint_eq(t->wid, id); /* written before the handle was published */
        }
        if (seed & 0x200)
            fp_ref(o), fp_decref(o);
        fp_decref(o); /* sometimes the last release happens here */
    }
    atomic_fetch_add(&upgrades_ok, ok);
    atomic_fetch_add(&upgrades_dead, dead);
    return NULL;
}

START_TEST(stress_upgrade_vs_release)
{
    fp_pool_config cfg = {.format = FP_PIX_GRAY8, .width = 16, .height = 16, .max_buffers = 64};
    ck_assert_int_eq(fp_pool_new(&cfg, &stress_pool), 0);
    atomic_store(&stop_flag, 0);
    atomic_store(&upgrades_ok, 0);
    atomic_store(&upgrades_dead, 0);
    atomic_store(&releases, 0);
    for (int i = 0; i < CELLS; i++)
        atomic_store(&cells[i], 0);
    fp_weak_stats s0;
    fp_weak_get_stats(&s0);
    pthread_t rel[4], up[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&up[i], NULL, upgrader, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++)
        pthread_create(&rel[i], NULL, releaser, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++)
        pthread_join(rel[i], NULL);
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(up[i], NULL);
    uint64_t ok = atomic_load(&upgrades_ok), dead = atomic_load(&upgrades_dead);
    printf("stress: %llu objects released, %llu upgrades succeeded, %llu found dead\n",
           (unsigned long long)atomic_load(&releases), (unsigned long long)ok,
           (unsigned long long)dead);
    ck_assert_uint_eq(atomic_load(&releases), 4ull * OBJECTS_PER_RELEASER);
    ck_assert_uint_gt(ok, 0);
    ck_assert_uint_gt(dead, 0);
    fp_weak_stats s1;
    fp_weak_get_stats(&s1);
    ck_assert_uint_eq(s1.slots_used, s0.slots_used); /* every slot came back */
    ck_assert_uint_eq(s1.deaths - s0.deaths, 4ull * OBJECTS_PER_RELEASER);
    ck_assert_uint_eq(s1.callbacks, 0);
    for (int i = 0; i < CELLS; i++)
        ck_assert_ptr_null(fp_weak_get((fp_weak){atomic_load(&cells[i])}));
    ck_assert_uint_eq(live_of(&thing_type), 0);
    fp_unref(&stress_pool);
}
END_TEST

/* The same race with slots retiring every few lives. */
START_TEST(stress_with_retirement)
{
    unsigned old = fp__weak_set_gen_bits(3);
    fp_weak_stats s0, s1;
    fp_weak_get_stats(&s0);
    stress_upgrade_vs_release_fn(0);
    fp_weak_get_stats(&s1);
    ck_assert_uint_gt(s1.slots_retired, s0.slots_retired);
    fp__weak_set_gen_bits(old);
}
END_TEST

static Suite *weak_suite(void)
{
    Suite *s = suite_create("weak");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, handle_basics);
    tcase_add_test(tc, handle_edge_cases);
    tcase_add_test(tc, pooled_frame);
    tcase_add_test(tc, on_free_order_and_once);
    tcase_add_test(tc, on_free_after_finalizer_and_on_pooled);
    tcase_add_test(tc, slot_retirement);
    tcase_add_test(tc, reference_cycle);
    tcase_add_test(tc, no_handles_from_finalizer);
    tcase_add_test(tc, alloc_failures);
    suite_add_tcase(s, tc);
    TCase *st = tcase_create("stress");
    tcase_set_timeout(st, 120);
    tcase_add_test(st, stress_upgrade_vs_release);
    tcase_add_test(st, stress_with_retirement);
    suite_add_tcase(s, st);
    return s;
}

int main(void)
{
    return tu_run(weak_suite());
}
