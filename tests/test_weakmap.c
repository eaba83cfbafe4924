/* Weak maps (lib/core/weakmap.c). */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include "internal.h"
#include <framepool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>


typedef struct widget {
    int id;
} widget;
static const fp_type widget_type = {"test_widget", NULL};

static widget *widget_new(int id)
{
    widget *w = fp_new(&widget_type, sizeof *w);
    ck_assert_ptr_nonnull(w);
    w->id = id;
    return w;
}

static uint64_t live_widgets(void)
{
    fp_type_stats s;
    fp_type_get_stats(&widget_type, &s);
    return s.live;
}

/* Values for weak-keys maps: counted malloc'd ints. */
static _Atomic int values_freed, values_live;
static void *value_new(int v)
{
    int *p = malloc(sizeof *p);
    *p = v;
    atomic_fetch_add(&values_live, 1);
    return p;
}
static void value_free(void *p)
{
    atomic_fetch_add(&values_freed, 1);
    atomic_fetch_sub(&values_live, 1);
    free(p);
}

static fp_weakmap *keys_map(void)
{
    fp_weakmap_config cfg = {.mode = FP_WEAKMAP_WEAK_KEYS, .value_free = value_free};
    fp_weakmap *m;
    ck_assert_int_eq(fp_weakmap_new(&cfg, &m), 0);
    return m;
}

static fp_weakmap *values_map(void)
{
    fp_weakmap_config cfg = {.mode = FP_WEAKMAP_WEAK_VALUES};
    fp_weakmap *m;
    ck_assert_int_eq(fp_weakmap_new(&cfg, &m), 0);
    return m;
}

static uint64_t pending_callbacks(void)
{
    fp_weak_stats s;
    fp_weak_get_stats(&s);
    return s.callbacks;
}

START_TEST(config_and_modes)
{
    fp_weakmap *m = NULL;
    fp_weakmap_config bad = {0};
    ck_assert_int_eq(fp_weakmap_new(&bad, &m), FP_EINVAL);
    ck_assert_int_eq(fp_weakmap_new(NULL, &m), FP_EINVAL);
    ck_assert_ptr_null(m);
    m = keys_map();
    ck_assert_ptr_eq(fp_type_of(m), &fp_weakmap_type);
    widget *w = widget_new(1);
    void *v;
    ck_assert_int_eq(fp_weakmap_put_u64(m, 1, w), FP_EINVAL); /* wrong mode */
    ck_assert_int_eq(fp_weakmap_get_u64(m, 1, &v), FP_EINVAL);
    ck_assert_int_eq(fp_weakmap_put(m, NULL, NULL), FP_EINVAL);
    fp_unref(&m);
    m = values_map();
    ck_assert_int_eq(fp_weakmap_put(m, w, NULL), FP_EINVAL);
    ck_assert_int_eq(fp_weakmap_get(m, w, &v), FP_EINVAL);
    ck_assert_int_eq(fp_weakmap_put_u64(m, 1, NULL), FP_EINVAL);
    fp_unref(&m);
    fp_unref(&w);
    ck_assert_uint_eq(fp_weakmap_len(NULL), 0);
}
END_TEST

START_TEST(weak_keys)
{
    fp_weakmap *m = keys_map();
    widget *a = widget_new(1), *b = widget_new(2);
    ck_assert_int_eq(fp_weakmap_put(m, a, value_new(10)), 0);
    ck_assert_int_eq(fp_weakmap_put(m, b, value_new(20)), 0);
    ck_assert_uint_eq(fp_weakmap_len(m), 2);
    ck_assert_uint_eq(fp_refcount(a), 1); /* the map holds no reference */
    void *v;
    ck_assert_int_eq(fp_weakmap_get(m, a, &v), 0);
    ck_assert_int_eq(*(int *)v, 10);
    /* Replacing frees the old value. */
    ck_assert_int_eq(fp_weakmap_put(m, a, value_new(11)), 0);
    ck_assert_int_eq(atomic_load(&values_freed), 1);
    ck_assert_uint_eq(fp_weakmap_len(m), 2);
    ck_assert_int_eq(fp_weakmap_get(m, a, &v), 0);
    ck_assert_int_eq(*(int *)v, 11);
    /* A key that was never in the map (with and without a weak slot). */
    widget *c = widget_new(3);
    ck_assert_int_eq(fp_weakmap_get(m, c, &v), FP_ENOENT);
    ck_assert_ptr_null(v);
    fp_weak wc = fp_weak_of(c);
    (void)wc;
    ck_assert_int_eq(fp_weakmap_get(m, c, &v), FP_ENOENT);
    ck_assert_int_eq(fp_weakmap_remove(m, c), FP_ENOENT);

    /* The key dies: the entry vanishes at once, the value is freed. */
    fp_unref(&a);
    ck_assert_uint_eq(fp_weakmap_len(m), 1);
    ck_assert_int_eq(atomic_load(&values_freed), 2);
    /* Explicit removal frees the value and cancels the callback. */
    uint64_t cb = pending_callbacks();
    ck_assert_int_eq(fp_weakmap_remove(m, b), 0);
    ck_assert_int_eq(fp_weakmap_remove(m, b), FP_ENOENT);
    ck_assert_uint_eq(pending_callbacks(), cb - 1);
    ck_assert_int_eq(atomic_load(&values_freed), 3);
    ck_assert_uint_eq(fp_weakmap_len(m), 0);
    fp_unref(&b);
    fp_unref(&c);
    ck_assert_int_eq(atomic_load(&values_freed), 3);
    fp_unref(&m);
    ck_assert_int_eq(atomic_load(&values_live), 0);
    ck_assert_uint_eq(pending_callbacks(), 0);
}
END_TEST

START_TEST(weak_keys_with_object_values)
{
    fp_weakmap_config cfg = {
        .mode = FP_WEAKMAP_WEAK_KEYS, .value_free = fp_decref, .value_ref = fp_ref};
    fp_weakmap *m;
    ck_assert_int_eq(fp_weakmap_new(&cfg, &m), 0);
    widget *key = widget_new(1), *val = widget_new(2);
    ck_assert_int_eq(fp_weakmap_put(m, key, fp_ref(val)), 0);
    void *got;
    ck_assert_int_eq(fp_weakmap_get(m, key, &got), 0);
    ck_assert_ptr_eq(got, val);
    ck_assert_uint_eq(fp_refcount(val), 3); /* ours, the map's, got */
    fp_decref(got);
    fp_unref(&val);
    ck_assert_uint_eq(live_widgets(), 2);
    fp_unref(&key); /* the value goes with its key */
    ck_assert_uint_eq(live_widgets(), 0);
    fp_unref(&m);
}
END_TEST

START_TEST(weak_values)
{
    fp_weakmap *m = values_map();
    widget *a = widget_new(1), *b = widget_new(2);
    ck_assert_int_eq(fp_weakmap_put_u64(m, 100, a), 0);
    ck_assert_int_eq(fp_weakmap_put_u64(m, 200, b), 0);
    ck_assert_int_eq(fp_weakmap_put_u64(m, 0, b), 0); /* key 0 is a key like any other */
    ck_assert_uint_eq(fp_weakmap_len(m), 3);
    ck_assert_uint_eq(fp_refcount(a), 1);
    void *o;
    ck_assert_int_eq(fp_weakmap_get_u64(m, 100, &o), 0);
    ck_assert_ptr_eq(o, a);
    ck_assert_uint_eq(fp_refcount(a), 2); /* +1 for the caller */
    fp_decref(o);
    ck_assert_int_eq(fp_weakmap_get_u64(m, 300, &o), FP_ENOENT);
    ck_assert_ptr_null(o);
    /* Replacing the value of a key. */
    ck_assert_int_eq(fp_weakmap_put_u64(m, 100, b), 0);
    ck_assert_uint_eq(fp_weakmap_len(m), 3);
    ck_assert_int_eq(fp_weakmap_get_u64(m, 100, &o), 0);
    ck_assert_ptr_eq(o, b);
    fp_decref(o);
    fp_unref(&a); /* not in the map any more: nothing changes */
    ck_assert_uint_eq(fp_weakmap_len(m), 3);
    fp_unref(&b); /* three entries vanish */
    ck_assert_uint_eq(fp_weakmap_len(m), 0);
    ck_assert_int_eq(fp_weakmap_get_u64(m, 200, &o), FP_ENOENT);
    ck_assert_int_eq(fp_weakmap_remove_u64(m, 200), FP_ENOENT);
    widget *c = widget_new(3);
    ck_assert_int_eq(fp_weakmap_put_u64(m, 7, c), 0);
    ck_assert_int_eq(fp_weakmap_remove_u64(m, 7), 0);
    ck_assert_uint_eq(fp_weakmap_len(m), 0);
    fp_unref(&c);
    fp_unref(&m);
    ck_assert_uint_eq(pending_callbacks(), 0);
}
END_TEST

/* A pooled frame that comes back from its pool is a new key. */
START_TEST(pooled_frame_key)
{
    fp_pool_config cfg = {.format = FP_PIX_GRAY8, .width = 8, .height = 8, .max_buffers = 1};
    fp_pool *pool;
    ck_assert_int_eq(fp_pool_new(&cfg, &pool), 0);
    fp_weakmap *m = keys_map();
    fp_image *img;
    ck_assert_int_eq(fp_pool_acquire(pool, 0, &img), 0);
    fp_image *first = img;
    ck_assert_int_eq(fp_weakmap_put(m, img, value_new(1)), 0);
    fp_unref(&img);
    ck_assert_uint_eq(fp_weakmap_len(m), 0);
    ck_assert_int_eq(atomic_load(&values_freed), 1);
    ck_assert_int_eq(fp_pool_acquire(pool, 0, &img), 0);
    ck_assert_ptr_eq(img, first);
    void *v;
    ck_assert_int_eq(fp_weakmap_get(m, img, &v), FP_ENOENT);
    fp_unref(&img);
    fp_unref(&m);
    fp_unref(&pool);
}
END_TEST

/* The class-level registry: every call registers its instance. A strong
 * registry keeps them all; a weak-keyed one keeps only the live one. */
typedef struct strong_registry {
    widget *items[256];
    int n;
} strong_registry;

static void process_call(int i, strong_registry *strong, fp_weakmap *weak)
{
    widget *w = widget_new(i);
    if (strong)
        strong->items[strong->n++] = fp_ref(w);
    if (weak) {
        ck_assert_int_eq(fp_weakmap_put(weak, w, value_new(i)), 0);
        ck_assert_uint_eq(fp_weakmap_len(weak), 1);
    }
    fp_unref(&w);
}

START_TEST(registry_scenario)
{
    strong_registry reg = {0};
    for (int i = 0; i < 100; i++) {
        process_call(i, &reg, NULL);
        ck_assert_uint_eq(live_widgets(), (uint64_t)i + 1); /* grows by one per call */
    }
    for (int i = 0; i < reg.n; i++)
        fp_unref(&reg.items[i]);
    ck_assert_uint_eq(live_widgets(), 0);

    fp_weakmap *weak = keys_map();
    for (int i = 0; i < 100; i++) {
        process_call(i, NULL, weak);
        ck_assert_uint_eq(live_widgets(), 0);
        ck_assert_uint_eq(fp_weakmap_len(weak), 0);
    }
    ck_assert_int_eq(atomic_load(&values_live), 0);
    fp_unref(&weak);
}
END_TEST

/* Keys dying while nobody touches the map: memory returns to where it was. */
START_TEST(untouched_map_does_not_grow)
{
    tu_alloc_install();
    fp_weakmap *m = keys_map();
    fp_weakmap *mv = values_map();
    widget *warm = widget_new(0);
    fp_weakmap_put(m, warm, value_new(0)); /* the weak table's first chunk */
    fp_unref(&warm);
    int64_t base = tu_alloc_live();
    enum { N = 2000 };
    widget **ws = malloc(N * sizeof *ws);
    for (int i = 0; i < N; i++) {
        ws[i] = widget_new(i);
        ck_assert_int_eq(fp_weakmap_put(m, ws[i], value_new(i)), 0);
        ck_assert_int_eq(fp_weakmap_put_u64(mv, (uint64_t)i, ws[i]), 0);
    }
    ck_assert_uint_eq(fp_weakmap_len(m), N);
    ck_assert_int_gt(tu_alloc_live(), base + N);
    for (int i = 0; i < N; i++)
        fp_unref(&ws[i]);
    free(ws);
    ck_assert_uint_eq(fp_weakmap_len(m), 0);
    ck_assert_uint_eq(fp_weakmap_len(mv), 0);
    /* Only the grown bucket arrays remain (one per map, a few KiB). */
    ck_assert_int_le(tu_alloc_live(), base + 2);
    ck_assert_int_eq(atomic_load(&values_live), 0);
    fp_unref(&m);
    fp_unref(&mv);
    ck_assert_int_le(tu_alloc_live(), base - 4); /* map objects, cores and tables gone */
    tu_alloc_uninstall();
}
END_TEST

/* The map dies before its keys: values freed, callbacks cancelled, keys
 * die later without touching the map. */
START_TEST(map_dies_first)
{
    fp_weakmap *m = keys_map();
    fp_weakmap *mv = values_map();
    widget *ws[10];
    for (int i = 0; i < 10; i++) {
        ws[i] = widget_new(i);
        ck_assert_int_eq(fp_weakmap_put(m, ws[i], value_new(i)), 0);
        ck_assert_int_eq(fp_weakmap_put_u64(mv, (uint64_t)i, ws[i]), 0);
    }
    ck_assert_uint_eq(pending_callbacks(), 20);
    fp_unref(&m);
    fp_unref(&mv);
    ck_assert_int_eq(atomic_load(&values_freed), 10);
    ck_assert_uint_eq(pending_callbacks(), 0);
    for (int i = 0; i < 10; i++)
        fp_unref(&ws[i]);
    ck_assert_int_eq(atomic_load(&values_freed), 10);
}
END_TEST

/* Iteration over a snapshot: keys released inside the callback stay valid
 * for the walk, entries vanish afterwards. */
static widget *iter_keys[8];
static int iter_visits;
static int kill_all_cb(void *key_obj, uint64_t key, void *value, void *user)
{
    (void)key;
    fp_weakmap *m = user;
    widget *w = key_obj;
    ck_assert_int_eq(*(int *)value, w->id * 10);
    iter_visits++;
    for (int i = 0; i < 8; i++)
        fp_unref(&iter_keys[i]); /* our references, all of them, on the first call */
    ck_assert_int_ge(fp_weakmap_len(m), 1);
    return 0;
}

START_TEST(foreach_snapshot)
{
    fp_weakmap *m = keys_map();
    for (int i = 0; i < 8; i++) {
        iter_keys[i] = widget_new(i);
        ck_assert_int_eq(fp_weakmap_put(m, iter_keys[i], value_new(i * 10)), 0);
    }
    ck_assert_int_eq(fp_weakmap_foreach(m, kill_all_cb, m), 0);
    ck_assert_int_eq(iter_visits, 8);
    ck_assert_uint_eq(fp_weakmap_len(m), 0);
    ck_assert_uint_eq(live_widgets(), 0);
    ck_assert_int_eq(atomic_load(&values_live), 0);
    fp_unref(&m);
}
END_TEST

static int count_cb(void *key_obj, uint64_t key, void *value, void *user)
{
    ck_assert_ptr_null(key_obj);
    ck_assert_uint_eq(((widget *)value)->id, key);
    (*(int *)user)++;
    return *(int *)user == 3 ? 42 : 0;
}

START_TEST(foreach_values_and_stop)
{
    fp_weakmap *m = values_map();
    widget *ws[5];
    for (int i = 0; i < 5; i++) {
        ws[i] = widget_new(i);
        ck_assert_int_eq(fp_weakmap_put_u64(m, (uint64_t)i, ws[i]), 0);
    }
    fp_unref(&ws[4]);
    int n = 0;
    ck_assert_int_eq(fp_weakmap_foreach(m, count_cb, &n), 42);
    ck_assert_int_eq(n, 3);
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(fp_refcount(ws[i]), 1); /* the snapshot let go */
    fp_weakmap_clear(m);
    ck_assert_uint_eq(fp_weakmap_len(m), 0);
    for (int i = 0; i < 4; i++)
        fp_unref(&ws[i]);
    fp_unref(&m);
    ck_assert_uint_eq(pending_callbacks(), 0);
}
END_TEST

/* A value replaced or removed while an iteration uses it is freed only after
 * the iteration. */
static fp_weakmap *replace_map;
static widget *replace_key;
static int replace_cb(void *key_obj, uint64_t key, void *value, void *user)
{
    (void)key, (void)user;
    ck_assert_ptr_eq(key_obj, replace_key);
    ck_assert_int_eq(fp_weakmap_put(replace_map, replace_key, value_new(2)), 0);
    ck_assert_int_eq(atomic_load(&values_freed), 0);
    ck_assert_int_eq(*(int *)value, 1); /* still valid */
    ck_assert_int_eq(fp_weakmap_remove(replace_map, replace_key), 0);
    ck_assert_int_eq(*(int *)value, 1);
    return 0;
}

START_TEST(foreach_value_stays_valid)
{
    replace_map = keys_map();
    replace_key = widget_new(1);
    ck_assert_int_eq(fp_weakmap_put(replace_map, replace_key, value_new(1)), 0);
    ck_assert_int_eq(fp_weakmap_foreach(replace_map, replace_cb, NULL), 0);
    ck_assert_int_eq(atomic_load(&values_freed), 2);
    ck_assert_int_eq(atomic_load(&values_live), 0);
    fp_unref(&replace_key);
    fp_unref(&replace_map);
    ck_assert_uint_eq(pending_callbacks(), 0);
}
END_TEST

static int count_cb_noop(void *key_obj, uint64_t key, void *value, void *user)
{
    (void)key_obj, (void)key, (void)value, (void)user;
    return 0;
}

START_TEST(alloc_failures)
{
    tu_alloc_install();
    widget *warm = widget_new(0);
    fp_weak_of(warm); /* the weak table's first chunk stays */
    fp_unref(&warm);
    int64_t base = tu_alloc_live();
    int saw_ok = 0, saw_enomem = 0;
    for (uint64_t n = 1; n < 40; n++) {
        fp_weakmap *m = NULL, *mv = NULL;
        widget *k = widget_new(1);
        tu_alloc_fail_at(n);
        fp_weakmap_config kc = {.mode = FP_WEAKMAP_WEAK_KEYS, .value_free = value_free};
        fp_weakmap_config vc = {.mode = FP_WEAKMAP_WEAK_VALUES};
        int rc = fp_weakmap_new(&kc, &m);
        if (rc == 0)
            rc = fp_weakmap_new(&vc, &mv);
        void *val = value_new(5);
        if (rc == 0) {
            rc = fp_weakmap_put(m, k, val);
            if (rc == 0)
                val = NULL; /* the map owns it now */
        }
        if (rc == 0)
            rc = fp_weakmap_put_u64(mv, 9, k);
        if (rc == 0)
            rc = fp_weakmap_foreach(m, count_cb_noop, NULL);
        tu_alloc_fail_at(0);
        ck_assert(rc == 0 || rc == FP_ENOMEM);
        if (rc == 0)
            saw_ok = 1;
        else
            saw_enomem = 1;
        if (val)
            value_free(val);
        fp_unref(&k);
        fp_unref(&m);
        fp_unref(&mv);
        ck_assert_int_eq(tu_alloc_live(), base);
        ck_assert_int_eq(atomic_load(&values_live), 0);
        ck_assert_uint_eq(pending_callbacks(), 0);
    }
    ck_assert(saw_ok && saw_enomem);
    tu_alloc_uninstall();
}
END_TEST

/* ---- threads -------------------------------------------------------------------- */

#if UNDER_SANITIZER
#define MT_ROUNDS 20000
#else
#define MT_ROUNDS 40000
#endif
#define MT_SLOTS 16
static fp_weakmap *mt_keys, *mt_vals;
static _Atomic(widget *) mt_shared[MT_SLOTS];
static pthread_mutex_t mt_mu = PTHREAD_MUTEX_INITIALIZER;

static int mt_iter(void *key_obj, uint64_t key, void *value, void *user)
{
    (void)key, (void)user;
    if (key_obj)
        ck_assert_int_eq(*(int *)value, ((widget *)key_obj)->id);
    else
        ck_assert_ptr_nonnull(value);
    return 0;
}

static void *mt_worker(void *arg)
{
    unsigned seed = (unsigned)(intptr_t)arg * 2654435761u + 1;
    for (int i = 0; i < MT_ROUNDS; i++) {
        seed = seed * 1103515245u + 12345u;
        int slot = (int)((seed >> 16) % MT_SLOTS);
        int op = (int)((seed >> 8) % 8);
        if (op <= 1) {
            /* replace the shared object of a slot: the old one dies */
            widget *w = widget_new((int)(seed % 1000));
            ck_assert_int_eq(fp_weakmap_put(mt_keys, w, value_new(w->id)), 0);
            ck_assert_int_eq(fp_weakmap_put_u64(mt_vals, (uint64_t)slot, w), 0);
            pthread_mutex_lock(&mt_mu);
            widget *old = atomic_exchange(&mt_shared[slot], w);
            pthread_mutex_unlock(&mt_mu);
            fp_unref(&old);
        } else if (op <= 4) {
            void *o;
            if (fp_weakmap_get_u64(mt_vals, (uint64_t)slot, &o) == 0) {
                void *v;
                /* the key may have been replaced: both outcomes are fine */
                if (fp_weakmap_get(mt_keys, o, &v) == 0)
                    ck_assert_ptr_nonnull(v);
                fp_decref(o);
            }
        } else if (op == 5) {
            pthread_mutex_lock(&mt_mu);
            widget *w = fp_ref(atomic_load(&mt_shared[slot]));
            pthread_mutex_unlock(&mt_mu);
            if (w) {
                fp_weakmap_remove(mt_keys, w);
                fp_unref(&w);
            }
        } else if (op == 6 && i % 64 == 0) {
            ck_assert_int_eq(fp_weakmap_foreach(mt_keys, mt_iter, NULL), 0);
            ck_assert_int_eq(fp_weakmap_foreach(mt_vals, mt_iter, NULL), 0);
        } else {
            ck_assert_uint_le(fp_weakmap_len(mt_vals), MT_SLOTS);
        }
    }
    return NULL;
}

START_TEST(threads)
{
    mt_keys = keys_map();
    mt_vals = values_map();
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, mt_worker, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ck_assert_uint_le(fp_weakmap_len(mt_keys), MT_SLOTS);
    for (int i = 0; i < MT_SLOTS; i++) {
        widget *w = atomic_exchange(&mt_shared[i], NULL);
        fp_unref(&w);
    }
    ck_assert_uint_eq(fp_weakmap_len(mt_keys), 0);
    ck_assert_uint_eq(fp_weakmap_len(mt_vals), 0);
    ck_assert_uint_eq(live_widgets(), 0);
    ck_assert_int_eq(atomic_load(&values_live), 0);
    fp_unref(&mt_keys);
    fp_unref(&mt_vals);
    ck_assert_uint_eq(pending_callbacks(), 0);
}
END_TEST

static Suite *weakmap_suite(void)
{
    Suite *s = suite_create("weakmap");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, config_and_modes);
    tcase_add_test(tc, weak_keys);
    tcase_add_test(tc, weak_keys_with_object_values);
    tcase_add_test(tc, weak_values);
    tcase_add_test(tc, pooled_frame_key);
    tcase_add_test(tc, registry_scenario);
    tcase_add_test(tc, untouched_map_does_not_grow);
    tcase_add_test(tc, map_dies_first);
    tcase_add_test(tc, foreach_snapshot);
    tcase_add_test(tc, foreach_values_and_stop);
    tcase_add_test(tc, foreach_value_stays_valid);
    tcase_add_test(tc, alloc_failures);
    suite_add_tcase(s, tc);
    TCase *mt = tcase_create("threads");
    tcase_set_timeout(mt, 120);
    tcase_add_test(mt, threads);
    suite_add_tcase(s, mt);
    return s;
}

int main(void)
{
    return tu_run(weakmap_suite());
}
