/* Diagnostics under concurrency: exact counters and a consistent live list
 * while 4 threads create and release objects and another reports. */
#define _GNU_SOURCE
#include "testutil.h"

#include <framepool.h>

#include "diag_internal.h" /* fp__diag_socket_path */

#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTHREADS 4
#define ITERS 20000
#define KEEP_EVERY 50
#define OBJ_SIZE 48

static const fp_type worker_type = {"worker_obj", NULL};
static fp_pool *shared_pool;
static _Atomic int stop_reporting;
static _Atomic uint64_t pool_acquires; /* pooled images the workers created */

static void *worker(void *arg)
{
    intptr_t id = (intptr_t)arg;
    void **kept = calloc(ITERS / KEEP_EVERY + 1, sizeof *kept);
    size_t nk = 0;
    for (int i = 0; i < ITERS; i++) {
        void *o = fp_new(&worker_type, OBJ_SIZE);
        ck_assert_ptr_nonnull(o);
        if (i % KEEP_EVERY == 0)
            kept[nk++] = o;
        else
            fp_unref(&o);
        if ((id & 1) && i % 8 == 0) {
            fp_image *img = NULL;
            if (fp_pool_acquire(shared_pool, -1, &img) == 0) {
                atomic_fetch_add(&pool_acquires, 1);
                fp_unref(&img);
            }
        }
    }
    return kept;
}

/* Asks the socket channel for a report, as framepool-stat does. Returns
 * the bytes read. */
static size_t ask_socket(const char *req)
{
    const char *path = fp__diag_socket_path();
    ck_assert(path[0]);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    char buf[4096];
    size_t total = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        total += (size_t)r;
    close(fd);
    return total;
}

static void *reporter(void *arg)
{
    (void)arg;
    int sock = (fp_diag_flags() & FP_DIAG_SOCKET) != 0;
    FILE *null = fopen("/dev/null", "w");
    fp_growth *g = NULL;
    fp_growth_new(&g);
    while (!atomic_load(&stop_reporting)) {
        fp_snapshot *s = NULL;
        fp_snapshot_take(&s);
        fp_diag_print_diff(null, s, NULL, FP_DIAG_BY_SITE, 5);
        fp_growth_check(g, null, 0);
        fp_diag_leak_report(null, 0);
        fp_diag_print_summary(null);
        fp_unref(&s);
        if (sock) {
            ck_assert_uint_gt(ask_socket("leaks\n"), 0);
            ck_assert_uint_gt(ask_socket("report\n"), 0);
        }
    }
    fp_unref(&g);
    fclose(null);
    return NULL;
}

/* Pooled images are counted by their pool: every image the workers took is
 * back, and each acquire created one. */
static void check_images(const fp_type_stats *before)
{
    fp_type_stats st;
    ck_assert_int_eq(fp_type_get_stats(&fp_image_type, &st), 0);
    ck_assert_uint_gt(atomic_load(&pool_acquires), 0);
    ck_assert_uint_eq(st.live, before->live);
    ck_assert_uint_eq(st.live_bytes, before->live_bytes);
    ck_assert_uint_eq(st.created - before->created, atomic_load(&pool_acquires));
}

static void run(const char *mode)
{
    ck_assert_int_eq(fp_diag_configure(mode), 0);
    fp_pool_config cfg = {.name = "shared", .format = FP_PIX_GRAY8, .width = 32, .height = 32,
                          .max_buffers = 4};
    ck_assert_int_eq(fp_pool_new(&cfg, &shared_pool), 0);
    fp_type_stats before, img_before;
    fp_type_get_stats(&worker_type, &before);
    fp_type_get_stats(&fp_image_type, &img_before);
    atomic_store(&pool_acquires, 0);
    pthread_t th[NTHREADS], rep;
    atomic_store(&stop_reporting, 0);
    ck_assert_int_eq(pthread_create(&rep, NULL, reporter, NULL), 0);
    for (intptr_t i = 0; i < NTHREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker, (void *)i), 0);
    void **kept[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], (void **)&kept[i]);
    atomic_store(&stop_reporting, 1);
    pthread_join(rep, NULL);

    const uint64_t per = (ITERS + KEEP_EVERY - 1) / KEEP_EVERY;
    fp_type_stats st;
    ck_assert_int_eq(fp_type_get_stats(&worker_type, &st), 0);
    ck_assert_uint_eq(st.live, NTHREADS * per);
    ck_assert_uint_eq(st.live_bytes, NTHREADS * per * OBJ_SIZE);
    ck_assert_uint_eq(st.created - before.created, (uint64_t)NTHREADS * ITERS);
    ck_assert_uint_ge(st.peak, NTHREADS * per);
    check_images(&img_before);

    fp_snapshot *s = NULL;
    ck_assert_int_eq(fp_snapshot_take(&s), 0);
    fp_diag_diff *d = NULL;
    ck_assert_int_eq(fp_snapshot_compare(s, NULL, FP_DIAG_BY_TYPE, &d), 0);
    int found = 0;
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->stats[i].type, "worker_obj")) {
            ck_assert_int_eq(d->stats[i].count, (int64_t)(NTHREADS * per));
            ck_assert_int_eq(d->stats[i].size, (int64_t)(NTHREADS * per * OBJ_SIZE));
            found = 1;
        }
    ck_assert(found);
    fp_unref(&d);
    fp_unref(&s);
    ck_assert_int_eq(fp_diag_leak_report(NULL, 0), (int)(NTHREADS * per + 1)); /* + the pool */

    for (int i = 0; i < NTHREADS; i++) {
        for (uint64_t k = 0; k < per; k++)
            fp_unref(&kept[i][k]);
        free(kept[i]);
    }
    fp_unref(&shared_pool);
    ck_assert_int_eq(fp_type_get_stats(&worker_type, &st), 0);
    ck_assert_uint_eq(st.live, 0);
    ck_assert_uint_eq(st.live_bytes, 0);
    ck_assert_int_eq(fp_diag_leak_report(NULL, 0), 0);
    ck_assert_int_eq(fp_snapshot_take(&s), 0);
    uint64_t c = 1;
    fp_snapshot_totals(s, &c, NULL);
    ck_assert_uint_eq(c, 0);
    fp_unref(&s);
}

START_TEST(counters_exact_sites_on)
{
    run("sites");
}
END_TEST

START_TEST(counters_exact_backtraces_on)
{
    run("backtrace");
}
END_TEST

/* Reference histories and the socket channel's thread under the same load. */
START_TEST(counters_exact_refs_and_socket_on)
{
    run("refs,socket");
}
END_TEST

START_TEST(counters_exact_off)
{
    ck_assert_int_eq(fp_diag_configure("off"), 0);
    fp_pool_config cfg = {.name = "shared", .format = FP_PIX_GRAY8, .width = 32, .height = 32,
                          .max_buffers = 4};
    ck_assert_int_eq(fp_pool_new(&cfg, &shared_pool), 0);
    fp_type_stats img_before;
    fp_type_get_stats(&fp_image_type, &img_before);
    atomic_store(&pool_acquires, 0);
    pthread_t th[NTHREADS];
    for (intptr_t i = 0; i < NTHREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker, (void *)i), 0);
    void **kept[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], (void **)&kept[i]);
    const uint64_t per = (ITERS + KEEP_EVERY - 1) / KEEP_EVERY;
    fp_type_stats st;
    ck_assert_int_eq(fp_type_get_stats(&worker_type, &st), 0);
    ck_assert_uint_eq(st.live, NTHREADS * per);
    ck_assert_uint_eq(st.created, (uint64_t)NTHREADS * ITERS);
    check_images(&img_before);
    /* Nothing tracked: the report counts them all as untracked. */
    ck_assert_int_eq(fp_diag_leak_report(NULL, 0), (int)(NTHREADS * per + 1));
    for (int i = 0; i < NTHREADS; i++) {
        for (uint64_t k = 0; k < per; k++)
            fp_unref(&kept[i][k]);
        free(kept[i]);
    }
    fp_unref(&shared_pool);
    ck_assert_int_eq(fp_diag_leak_report(NULL, 0), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("diag_threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, counters_exact_off);
    tcase_add_test(tc, counters_exact_sites_on);
    tcase_add_test(tc, counters_exact_backtraces_on);
    tcase_add_test(tc, counters_exact_refs_and_socket_on);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
