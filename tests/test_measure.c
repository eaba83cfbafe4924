/* lib/measure's shared pieces: the Theil-Sen slope (exact on a line, robust
 * to outliers and steps, deterministic beyond the pair limit) and process
 * sampling from /proc (this process, a child, a zombie, bad arguments). The
 * memory verdict built on them is test_memtrack. */
#define _GNU_SOURCE
#include "testutil.h"

#include <framepool.h>

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

START_TEST(theil_sen_is_exact_on_a_line)
{
    double x[50], y[50], s = -1;
    for (int i = 0; i < 50; i++) {
        x[i] = 10.0 + 2 * i;
        y[i] = 7 - 3.5 * x[i];
    }
    ck_assert_int_eq(fp_theil_sen(x, y, 50, 0, &s), FP_OK);
    ck_assert_double_eq_tol(s, -3.5, 1e-12);
    /* x NULL: the index is the axis */
    ck_assert_int_eq(fp_theil_sen(NULL, y, 50, 0, &s), FP_OK);
    ck_assert_double_eq_tol(s, -7.0, 1e-12);
}
END_TEST

START_TEST(theil_sen_ignores_outliers_and_steps)
{
    enum { N = 200 };
    double y[N], s = 0;
    for (int i = 0; i < N; i++)
        y[i] = 1000 + 0.5 * i;
    /* 10% wild outliers: least squares would move, the median does not */
    for (int i = 0; i < N; i += 10)
        y[i] += 1e9;
    ck_assert_int_eq(fp_theil_sen(NULL, y, N, 0, &s), FP_OK);
    ck_assert_double_eq_tol(s, 0.5, 0.05);
    /* a one-time step in a flat series (a heap extension) at 80% of the
     * run: most pairs lie on one side of it */
    for (int i = 0; i < N; i++)
        y[i] = i < N * 4 / 5 ? 5e6 : 5e6 + 300e3;
    ck_assert_int_eq(fp_theil_sen(NULL, y, N, 0, &s), FP_OK);
    ck_assert_double_eq_tol(s, 0, 1e-9);
}
END_TEST

START_TEST(theil_sen_edge_cases)
{
    double x[4] = {1, 1, 1, 1}, y[4] = {1, 2, 3, 4}, s = 42;
    /* fewer than two points, or no pair with distinct x: 0 */
    ck_assert_int_eq(fp_theil_sen(x, y, 0, 0, &s), FP_OK);
    ck_assert_double_eq(s, 0);
    s = 42;
    ck_assert_int_eq(fp_theil_sen(x, y, 1, 0, &s), FP_OK);
    ck_assert_double_eq(s, 0);
    s = 42;
    ck_assert_int_eq(fp_theil_sen(x, y, 4, 0, &s), FP_OK);
    ck_assert_double_eq(s, 0);
    /* pairs with equal x are skipped, the others count */
    double x2[4] = {0, 0, 1, 1}, y2[4] = {0, 0, 2, 2};
    ck_assert_int_eq(fp_theil_sen(x2, y2, 4, 0, &s), FP_OK);
    ck_assert_double_eq_tol(s, 2, 1e-12);
    /* bad arguments are named */
    ck_assert_int_eq(fp_theil_sen(x, NULL, 4, 0, &s), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "y is NULL"));
    ck_assert_int_eq(fp_theil_sen(x, y, 4, 0, NULL), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "slope is NULL"));
}
END_TEST

/* Beyond max_pairs the pairs are drawn with a fixed seed: the same slope
 * every time, close to the true one; and no allocation outlives the call. */
START_TEST(theil_sen_subsets_large_series_deterministically)
{
    enum { N = 3000 }; /* 4.5 million pairs */
    double *y = malloc(N * sizeof *y);
    ck_assert_ptr_nonnull(y);
    uint32_t r = 12345;
    for (int i = 0; i < N; i++) {
        r = r * 1103515245u + 12345u;
        y[i] = 64.0 * i + (double)(r >> 16 & 0xfff); /* slope 64 + noise up to 4 KiB */
    }
    tu_alloc_install();
    double a = 0, b = 0;
    ck_assert_int_eq(fp_theil_sen(NULL, y, N, 0, &a), FP_OK);
    ck_assert_int_eq(fp_theil_sen(NULL, y, N, 0, &b), FP_OK);
    ck_assert_int_eq(tu_alloc_live(), 0);
    /* a failing allocation is an error, not a silent 0 */
    tu_alloc_fail_at(1); /* the next allocation */
    double c = 7;
    ck_assert_int_eq(fp_theil_sen(NULL, y, N, 0, &c), FP_ENOMEM);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "no memory"));
    tu_alloc_fail_at(0);
    tu_alloc_uninstall();
    ck_assert_double_eq(a, b);
    ck_assert_double_eq_tol(a, 64, 1.0);
    /* a smaller limit still finds the trend */
    ck_assert_int_eq(fp_theil_sen(NULL, y, N, 1000, &c), FP_OK);
    ck_assert_double_eq_tol(c, 64, 4.0);
    free(y);
}
END_TEST

START_TEST(procstat_reads_this_process)
{
    fp_procstat p;
    ck_assert_int_eq(fp_procstat_open(&p, 0, FP_PROCSTAT_FDS), FP_OK);
    fp_procstat_sample a, b;
    ck_assert_int_eq(fp_procstat_read(&p, &a), FP_OK);
    ck_assert_uint_gt(a.rss_anon, 0);
    ck_assert_int_ge(a.threads, 1);
    ck_assert_int_ge(a.fds, 3);
    ck_assert(a.cpu_s >= 0);
    /* two more descriptors, and 16 MiB of touched pages */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    size_t len = (size_t)16 << 20;
    char *m = malloc(len);
    ck_assert_ptr_nonnull(m);
    memset(m, 1, len);
    ck_assert_int_eq(fp_procstat_read(&p, &b), FP_OK);
    ck_assert_int_eq(b.fds, a.fds + 2);
    ck_assert_uint_ge(b.rss_anon, a.rss_anon + ((uint64_t)12 << 20));
    ck_assert_uint_gt(b.minflt, a.minflt); /* fewer with transparent huge pages */
    uint64_t rss = 0;
    ck_assert_int_eq(fp_procstat_rss_anon(&p, &rss), FP_OK);
    ck_assert_uint_ge(rss, a.rss_anon + ((uint64_t)12 << 20));
    free(m);
    close(fds[0]);
    close(fds[1]);
    fp_procstat_close(&p);
    fp_procstat_close(&p); /* harmless twice */
    /* without FP_PROCSTAT_FDS the count is -1 */
    ck_assert_int_eq(fp_procstat_open(&p, (int)getpid(), 0), FP_OK);
    ck_assert_int_eq(fp_procstat_read(&p, &a), FP_OK);
    ck_assert_int_eq(a.fds, -1);
    fp_procstat_close(&p);
}
END_TEST

/* Another process: read while it runs, FP_ENOENT once it is a zombie and
 * once it is gone. */
START_TEST(procstat_follows_a_child_to_its_end)
{
    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char c;
        close(go[1]);
        (void)!read(go[0], &c, 1); /* exits when the parent closes its end */
        _exit(0);
    }
    close(go[0]);
    fp_procstat p;
    ck_assert_int_eq(fp_procstat_open(&p, (int)pid, FP_PROCSTAT_FDS), FP_OK);
    fp_procstat_sample s;
    ck_assert_int_eq(fp_procstat_read(&p, &s), FP_OK);
    ck_assert_uint_gt(s.rss_anon, 0);
    ck_assert_int_eq(s.threads, 1);
    ck_assert_int_ge(s.fds, 1);
    close(go[1]);
    /* a zombie until reaped: wait for the exit without reaping it */
    siginfo_t si;
    ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
    ck_assert_int_eq(fp_procstat_read(&p, &s), FP_ENOENT);
    uint64_t rss = 0;
    ck_assert_int_eq(fp_procstat_rss_anon(&p, &rss), FP_ENOENT);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
    ck_assert_int_eq(fp_procstat_read(&p, &s), FP_ENOENT);
    fp_procstat_close(&p);
    /* a pid that no longer exists */
    ck_assert_int_eq(fp_procstat_open(&p, (int)pid, 0), FP_ENOENT);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "cannot open /proc/"));
    fp_procstat_close(&p); /* harmless after a failed open */
}
END_TEST

START_TEST(procstat_rejects_bad_arguments)
{
    fp_procstat p;
    fp_procstat_sample s;
    uint64_t rss;
    ck_assert_int_eq(fp_procstat_open(NULL, 0, 0), FP_EINVAL);
    ck_assert_int_eq(fp_procstat_open(&p, -1, 0), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "negative pid"));
    ck_assert_int_eq(fp_procstat_open(&p, 0, 1u << 7), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "unknown flag"));
    ck_assert_int_eq(fp_procstat_read(NULL, &s), FP_EINVAL);
    ck_assert_int_eq(fp_procstat_rss_anon(NULL, &rss), FP_EINVAL);
    ck_assert_int_eq(fp_procstat_open(&p, 0, 0), FP_OK);
    ck_assert_int_eq(fp_procstat_read(&p, NULL), FP_EINVAL);
    ck_assert_int_eq(fp_procstat_rss_anon(&p, NULL), FP_EINVAL);
    fp_procstat_close(&p);
    fp_procstat_close(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("measure");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, theil_sen_is_exact_on_a_line);
    tcase_add_test(tc, theil_sen_ignores_outliers_and_steps);
    tcase_add_test(tc, theil_sen_edge_cases);
    tcase_add_test(tc, theil_sen_subsets_large_series_deterministically);
    tcase_add_test(tc, procstat_reads_this_process);
    tcase_add_test(tc, procstat_follows_a_child_to_its_end);
    tcase_add_test(tc, procstat_rejects_bad_arguments);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
