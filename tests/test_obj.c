/* obj.h: reference-counted objects, finalizers, per-type statistics. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <framepool.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct thing {
    int value;
    int *finalized; /* incremented by the finalizer */
    struct thing *child;
} thing;

static void thing_finalize(void *obj)
{
    thing *t = obj;
    if (t->finalized)
        (*t->finalized)++;
    fp_unref(&t->child);
}

static const fp_type thing_type = {"thing", thing_finalize};
static const fp_type plain_type = {"plain", NULL};

START_TEST(test_new_is_zeroed_aligned_and_sited)
{
    int line = __LINE__ + 1;
    thing *t = fp_new(&thing_type, sizeof(thing));
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq((uintptr_t)t % 64, 0);
    ck_assert_int_eq(t->value, 0);
    ck_assert_ptr_null(t->child);
    ck_assert_uint_eq(fp_refcount(t), 1);
    ck_assert_ptr_eq(fp_type_of(t), &thing_type);
    ck_assert_uint_eq(fp_obj_bytes(t), sizeof(thing));
    const char *file, *func;
    int l;
    fp_obj_site(t, &file, &l, &func);
    ck_assert_ptr_nonnull(strstr(file, "test_obj.c"));
    ck_assert_int_eq(l, line);
    ck_assert_str_eq(func, "test_new_is_zeroed_aligned_and_sited_fn");
    fp_unref(&t);
    ck_assert_ptr_null(t);
    ck_assert_ptr_null(fp_new(NULL, 8));
}
END_TEST

START_TEST(test_ref_unref_and_finalize_once)
{
    int fin = 0;
    thing *t = fp_new(&thing_type, sizeof(thing));
    t->finalized = &fin;
    thing *a = fp_ref(t);
    ck_assert_ptr_eq(a, t);
    ck_assert_uint_eq(fp_refcount(t), 2);
    fp_unref(&a);
    ck_assert_ptr_null(a);
    ck_assert_int_eq(fin, 0);
    ck_assert_uint_eq(fp_refcount(t), 1);
    fp_unref(&t);
    ck_assert_int_eq(fin, 1);
    /* NULL-safety. */
    ck_assert_ptr_null(fp_ref(NULL));
    fp_unref(&t);
    fp_unref(NULL);
    fp_decref(NULL);
    ck_assert_uint_eq(fp_refcount(NULL), 0);
}
END_TEST

START_TEST(test_finalizer_releases_children)
{
    int fin_parent = 0, fin_child = 0;
    thing *p = fp_new(&thing_type, sizeof(thing));
    thing *c = fp_new(&thing_type, sizeof(thing));
    p->finalized = &fin_parent;
    c->finalized = &fin_child;
    p->child = c; /* p owns the reference from fp_new */
    fp_unref(&p);
    ck_assert_int_eq(fin_parent, 1);
    ck_assert_int_eq(fin_child, 1);
}
END_TEST

START_TEST(test_type_stats_count_live_bytes_peak_created)
{
    static const fp_type counted = {"counted", NULL};
    fp_type_stats st;
    ck_assert_int_eq(fp_type_get_stats(&counted, &st), FP_ENOENT);
    ck_assert_str_eq(st.name, "counted");
    void *objs[10];
    for (int i = 0; i < 10; i++)
        objs[i] = fp_new(&counted, 100);
    ck_assert_int_eq(fp_type_get_stats(&counted, &st), FP_OK);
    ck_assert_uint_eq(st.live, 10);
    ck_assert_uint_eq(st.live_bytes, 1000);
    ck_assert_uint_eq(st.peak, 10);
    ck_assert_uint_eq(st.created, 10);
    fp_obj_set_bytes(objs[0], 5000);
    fp_type_get_stats(&counted, &st);
    ck_assert_uint_eq(st.live_bytes, 5900);
    ck_assert_uint_eq(st.peak_bytes, 5900);
    for (int i = 0; i < 10; i++)
        fp_unref(&objs[i]);
    fp_type_get_stats(&counted, &st);
    ck_assert_uint_eq(st.live, 0);
    ck_assert_uint_eq(st.live_bytes, 0);
    ck_assert_uint_eq(st.peak, 10);
    ck_assert_uint_eq(st.peak_bytes, 5900);
    ck_assert_uint_eq(st.created, 10);
}
END_TEST

static int find_type(const fp_type *t, const fp_type_stats *s, void *user)
{
    (void)s;
    return t == user ? 1 : 0;
}

START_TEST(test_foreach_and_totals)
{
    void *o = fp_new(&plain_type, 64);
    ck_assert_int_eq(fp_type_foreach(find_type, (void *)&plain_type), 1);
    static const fp_type never = {"never", NULL};
    ck_assert_int_eq(fp_type_foreach(find_type, (void *)&never), 0);
    uint64_t n0, b0, n1, b1;
    fp_obj_totals(&n0, &b0);
    void *o2 = fp_new(&plain_type, 1000);
    fp_obj_totals(&n1, &b1);
    ck_assert_uint_eq(n1, n0 + 1);
    ck_assert_uint_eq(b1, b0 + 1000);
    fp_unref(&o2);
    fp_unref(&o);
    ck_assert_int_eq(fp_type_foreach(NULL, NULL), FP_EINVAL);
}
END_TEST

START_TEST(test_frame_tick_gives_ages)
{
    uint64_t t0 = fp_frame_now();
    void *o = fp_new(&plain_type, 8);
    ck_assert_uint_eq(fp_obj_birth(o), t0);
    for (int i = 0; i < 5; i++)
        fp_frame_tick();
    ck_assert_uint_eq(fp_frame_now() - fp_obj_birth(o), 5);
    fp_unref(&o);
}
END_TEST

START_TEST(test_allocation_failure_returns_null_and_leaks_nothing)
{
    tu_alloc_install();
    tu_alloc_fail_at(1);
    void *o = fp_new(&plain_type, 32);
    ck_assert_ptr_null(o);
    tu_alloc_fail_at(0);
    o = fp_new(&plain_type, 32);
    ck_assert_ptr_nonnull(o);
    fp_unref(&o);
    ck_assert_int_eq(tu_alloc_live(), 0);
    tu_alloc_uninstall();
}
END_TEST

/* A double unref is caught with a message and abort(), not silent
 * corruption. In Debug builds the object's memory is still held by the
 * quarantine (or by a pool) when the second unref comes; in Release builds
 * the freed header keeps its dead marker (glibc's free writes only its
 * first 32 bytes) until the memory is reused. */
#if defined(FP_DEBUG) || !UNDER_SANITIZER
START_TEST(test_double_unref_aborts)
{
    void *o = fp_new(&plain_type, 16);
    void *alias = o;
    fp_unref(&o);
    fp_unref(&alias); /* aborts */
}
END_TEST
#endif

START_TEST(test_double_unref_of_pooled_image_aborts)
{
    fp_pool_config cfg = {.format = FP_PIX_GRAY8, .width = 16, .height = 16, .max_buffers = 2};
    fp_pool *pool = NULL;
    ck_assert_int_eq(fp_pool_new(&cfg, &pool), FP_OK);
    fp_image *img = NULL;
    ck_assert_int_eq(fp_pool_acquire(pool, 0, &img), FP_OK);
    fp_image *alias = img;
    fp_unref(&img);   /* back to the pool */
    fp_unref(&alias); /* aborts: count would go below zero */
}
END_TEST

/* Exact counts under contention: 4 threads share one object and create and
 * release objects of one type. */
enum { N_THREADS = 4, N_ITERS = 100000 };
static const fp_type held_type = {"held", NULL};
static void *release_elsewhere(void *arg)
{
    fp_decref(arg);
    return NULL;
}
static thing *shared;
static const fp_type mt_type = {"mt", NULL};

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < N_ITERS; i++) {
        thing *r = fp_ref(shared);
        void *o = fp_new(&mt_type, 24);
        fp_unref(&r);
        fp_unref(&o);
    }
    return NULL;
}

START_TEST(test_concurrent_refs_are_exact)
{
    int fin = 0;
    shared = fp_new(&thing_type, sizeof(thing));
    shared->finalized = &fin;
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        pthread_create(&th[i], NULL, hammer, NULL);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_uint_eq(fp_refcount(shared), 1);
    ck_assert_int_eq(fin, 0);
    fp_unref(&shared);
    ck_assert_int_eq(fin, 1);
    fp_type_stats st;
    fp_type_get_stats(&mt_type, &st);
    ck_assert_uint_eq(st.live, 0);
    ck_assert_uint_eq(st.live_bytes, 0);
    ck_assert_uint_eq(st.created, (uint64_t)N_THREADS * N_ITERS);
    ck_assert_uint_le(st.peak, N_THREADS);
}
END_TEST

/* Counts made by threads that are still running are summed in. */
static pthread_barrier_t made, checked;
static void *make_and_hold(void *arg)
{
    (void)arg;
    void *objs[100];
    for (int i = 0; i < 100; i++)
        objs[i] = fp_new(&held_type, 40);
    pthread_barrier_wait(&made);
    pthread_barrier_wait(&checked);
    for (int i = 0; i < 50; i++)
        fp_unref(&objs[i]);
    pthread_barrier_wait(&made);
    pthread_barrier_wait(&checked);
    for (int i = 50; i < 100; i++)
        fp_unref(&objs[i]);
    return NULL;
}

START_TEST(test_counts_of_running_threads_are_summed)
{
    fp_type_stats st;
    pthread_t th[N_THREADS];
    pthread_barrier_init(&made, NULL, N_THREADS + 1);
    pthread_barrier_init(&checked, NULL, N_THREADS + 1);
    for (int i = 0; i < N_THREADS; i++)
        pthread_create(&th[i], NULL, make_and_hold, NULL);
    pthread_barrier_wait(&made);
    fp_type_get_stats(&held_type, &st);
    ck_assert_uint_eq(st.live, N_THREADS * 100);
    ck_assert_uint_eq(st.live_bytes, N_THREADS * 100 * 40);
    ck_assert_uint_eq(st.created, N_THREADS * 100);
    ck_assert_uint_eq(st.peak, N_THREADS * 100);
    pthread_barrier_wait(&checked);
    pthread_barrier_wait(&made);
    fp_type_get_stats(&held_type, &st);
    ck_assert_uint_eq(st.live, N_THREADS * 50);
    ck_assert_uint_eq(st.peak, N_THREADS * 100);
    pthread_barrier_wait(&checked);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    /* The threads have exited: their counts were folded into the totals. */
    fp_type_get_stats(&held_type, &st);
    ck_assert_uint_eq(st.live, 0);
    ck_assert_uint_eq(st.live_bytes, 0);
    ck_assert_uint_eq(st.created, N_THREADS * 100);
    /* Objects made in one thread and released in another balance out. */
    void *o = fp_new(&held_type, 40);
    pthread_t t;
    pthread_create(&t, NULL, release_elsewhere, o);
    pthread_join(t, NULL);
    fp_type_get_stats(&held_type, &st);
    ck_assert_uint_eq(st.live, 0);
    ck_assert_uint_eq(st.created, N_THREADS * 100 + 1);
    pthread_barrier_destroy(&made);
    pthread_barrier_destroy(&checked);
}
END_TEST

/* fork: the child has only the forking thread. The other threads' counter
 * blocks must not stay on the list: the child's new threads reuse their
 * stacks (and thread-local storage), and a stale entry then aliases a new
 * thread's block (a loop in the list: fp_type_get_stats never returned). */
static const fp_type fork_type = {"fork_counted", NULL};
static pthread_mutex_t fork_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fork_cv = PTHREAD_COND_INITIALIZER;
static int fork_made, fork_go;

static void *hold_ten(void *arg)
{
    void **objs = arg;
    for (int i = 0; i < 10; i++)
        objs[i] = fp_new(&fork_type, 32);
    pthread_mutex_lock(&fork_m);
    fork_made = 1;
    pthread_cond_broadcast(&fork_cv);
    while (!fork_go)
        pthread_cond_wait(&fork_cv, &fork_m);
    pthread_mutex_unlock(&fork_m);
    for (int i = 0; i < 10; i++)
        fp_unref(&objs[i]);
    return NULL;
}

static void *make_five(void *arg)
{
    (void)arg;
    void *o[5];
    for (int i = 0; i < 5; i++)
        o[i] = fp_new(&fork_type, 32);
    for (int i = 0; i < 5; i++)
        fp_unref(&o[i]);
    return NULL;
}

/* ThreadSanitizer cannot start threads in the child of a multi-threaded
 * process (its runtime dies: "starting new threads after multi-threaded fork
 * is not supported"), so under TSan the child checks the inherited counts
 * only; the plain and ASan builds run the new threads too. */
#if defined(__SANITIZE_THREAD__)
#define FORK_CHILD_NEW_THREADS 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FORK_CHILD_NEW_THREADS 0
#endif
#endif
#ifndef FORK_CHILD_NEW_THREADS
#define FORK_CHILD_NEW_THREADS 1
#endif

static int fork_child_checks(void)
{
    fp_type_stats st;
    fp_type_get_stats(&fork_type, &st);
    if (st.live != 10 || st.created != 10)
        return 1;
    if (!FORK_CHILD_NEW_THREADS)
        return 0;
    for (int k = 0; k < 4; k++) { /* new threads on the reclaimed stacks */
        pthread_t t;
        if (pthread_create(&t, NULL, make_five, NULL) != 0)
            return 2;
        pthread_join(t, NULL);
    }
    fp_type_get_stats(&fork_type, &st);
    if (st.live != 10 || st.created != 30)
        return 3;
    return 0;
}

START_TEST(test_fork_child_keeps_exact_counts_with_new_threads)
{
    void *objs[10];
    pthread_t holder;
    ck_assert_int_eq(pthread_create(&holder, NULL, hold_ten, objs), 0);
    pthread_mutex_lock(&fork_m);
    while (!fork_made)
        pthread_cond_wait(&fork_cv, &fork_m);
    pthread_mutex_unlock(&fork_m);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(fork_child_checks());
    int status = 0, waited = 0;
    for (; waited < 1000; waited++) { /* at most 10 s: a hang is a failure */
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    if (waited == 1000) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    pthread_mutex_lock(&fork_m);
    fork_go = 1;
    pthread_cond_broadcast(&fork_cv);
    pthread_mutex_unlock(&fork_m);
    pthread_join(holder, NULL);
    ck_assert_msg(waited < 1000, "the child hung counting (a loop in the counter list)");
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the child's counts were wrong (check %d, status %d)",
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1, status);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("obj");
    TCase *tc = tcase_create("obj");
    tcase_add_test(tc, test_new_is_zeroed_aligned_and_sited);
    tcase_add_test(tc, test_ref_unref_and_finalize_once);
    tcase_add_test(tc, test_finalizer_releases_children);
    tcase_add_test(tc, test_type_stats_count_live_bytes_peak_created);
    tcase_add_test(tc, test_foreach_and_totals);
    tcase_add_test(tc, test_frame_tick_gives_ages);
    tcase_add_test(tc, test_allocation_failure_returns_null_and_leaks_nothing);
#if defined(FP_DEBUG) || !UNDER_SANITIZER
    /* Release builds too: the freed header keeps its marker until the memory
     * is reused (nothing allocates in between here). Under ASan the freed
     * read is ASan's to report. */
    tcase_add_test_raise_signal(tc, test_double_unref_aborts, SIGABRT);
#endif
    tcase_add_test_raise_signal(tc, test_double_unref_of_pooled_image_aborts, SIGABRT);
    suite_add_tcase(s, tc);
    TCase *mt = tcase_create("threads");
    tcase_set_timeout(mt, 120);
    tcase_add_test(mt, test_concurrent_refs_are_exact);
    tcase_add_test(mt, test_counts_of_running_threads_are_summed);
    tcase_add_test(mt, test_fork_child_keeps_exact_counts_with_new_threads);
    suite_add_tcase(s, mt);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
