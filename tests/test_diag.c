/* Diagnostics: tracemalloc-format diffs, growth, leak report, FP_DIAG at exit. */
#define _GNU_SOURCE
#include "testutil.h"

#include "internal.h"
#include <framepool.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const fp_type leak_type = {"leaky_thing", NULL};
static const fp_type steady_type = {"steady_thing", NULL};
static const fp_type other_type = {"other_thing", NULL};


/* ---- size formatting: every expected string below is what Python 3's
 * tracemalloc._format_size prints for the same value. ---------------------- */

START_TEST(format_size_matches_tracemalloc)
{
    static const struct {
        double v;
        const char *plain, *sign, *neg;
    } cases[] = {
        {0, "0 B", "+0 B", "+0 B"},
        {1, "1 B", "+1 B", "-1 B"},
        {99, "99 B", "+99 B", "-99 B"},
        {100, "100 B", "+100 B", "-100 B"},
        {1023, "1023 B", "+1023 B", "-1023 B"},
        {1024, "1024 B", "+1024 B", "-1024 B"},
        {1536, "1536 B", "+1536 B", "-1536 B"},
        {10239, "10239 B", "+10239 B", "-10239 B"},
        {10240, "10.0 KiB", "+10.0 KiB", "-10.0 KiB"},
        {10250, "10.0 KiB", "+10.0 KiB", "-10.0 KiB"},
        {102338.56, "99.9 KiB", "+99.9 KiB", "-99.9 KiB"},
        {102348.8, "100.0 KiB", "+100.0 KiB", "-100.0 KiB"},
        {102399, "100.0 KiB", "+100.0 KiB", "-100.0 KiB"},
        {102400, "100 KiB", "+100 KiB", "-100 KiB"},
        {1048576, "1024 KiB", "+1024 KiB", "-1024 KiB"},
        {2764800, "2700 KiB", "+2700 KiB", "-2700 KiB"},
        {5529600, "5400 KiB", "+5400 KiB", "-5400 KiB"},
        {10485759, "10240 KiB", "+10240 KiB", "-10240 KiB"},
        {104857600, "100 MiB", "+100 MiB", "-100 MiB"},
        {5497558138880.0, "5120 GiB", "+5120 GiB", "-5120 GiB"},
        {3377699720527872.0, "3072 TiB", "+3072 TiB", "-3072 TiB"},
        {1.5, "2 B", "+2 B", "-2 B"},
        {2.5, "2 B", "+2 B", "-2 B"},
        {0.5, "0 B", "+0 B", "-0 B"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_str_eq(fp_diag_format_size(buf, sizeof buf, cases[i].v, 0), cases[i].plain);
        ck_assert_str_eq(fp_diag_format_size(buf, sizeof buf, cases[i].v, 1), cases[i].sign);
        ck_assert_str_eq(fp_diag_format_size(buf, sizeof buf, -cases[i].v, 1), cases[i].neg);
    }
}
END_TEST

START_TEST(format_stat_matches_tracemalloc)
{
    char buf[256];
    fp_diag_stat st = {.type = "fp_image", .file = "samples/leak_hunt.c", .line = 57,
                       .size = 5400 * 1024, .size_diff = 2700 * 1024, .count = 2, .count_diff = 1};
    ck_assert_str_eq(fp_diag_format_stat(buf, sizeof buf, &st, FP_DIAG_BY_SITE, 1),
                     "samples/leak_hunt.c:57: size=5400 KiB (+2700 KiB), count=2 (+1), "
                     "average=2700 KiB");
    ck_assert_str_eq(fp_diag_format_stat(buf, sizeof buf, &st, FP_DIAG_BY_SITE, 0),
                     "samples/leak_hunt.c:57: size=5400 KiB, count=2, average=2700 KiB");
    ck_assert_str_eq(fp_diag_format_stat(buf, sizeof buf, &st, FP_DIAG_BY_TYPE, 0),
                     "fp_image: size=5400 KiB, count=2, average=2700 KiB");
    /* Gone from the newer snapshot: size 0, negative diffs, no average. */
    fp_diag_stat gone = {.type = "t", .file = "a.c", .line = 3, .size = 0, .size_diff = -1024,
                         .count = 0, .count_diff = -1};
    ck_assert_str_eq(fp_diag_format_stat(buf, sizeof buf, &gone, FP_DIAG_BY_SITE, 1),
                     "a.c:3: size=0 B (-1024 B), count=0 (-1)");
    fp_diag_stat odd = {.type = "t", .file = "b.c", .line = 9, .size = 5, .size_diff = 0,
                        .count = 2, .count_diff = 0};
    ck_assert_str_eq(fp_diag_format_stat(buf, sizeof buf, &odd, FP_DIAG_BY_SITE, 1),
                     "b.c:9: size=5 B (+0 B), count=2 (+0), average=2 B");
}
END_TEST

/* ---- snapshots ------------------------------------------------------------------- */

static void steady_frame(void)
{
    void *tmp = fp_new(&steady_type, 256);
    ck_assert_ptr_nonnull(tmp);
    fp_unref(&tmp);
}

START_TEST(planted_leak_named_by_diff)
{
    ck_assert_int_eq(fp_diag_configure("sites"), 0);
    void *kept[10];
    fp_snapshot *a = NULL, *b = NULL;
    ck_assert_int_eq(fp_snapshot_take(&a), 0);
    int leak_line = 0;
    for (int i = 0; i < 10; i++) {
        steady_frame();
        kept[i] = fp_new(&leak_type, 1000); leak_line = __LINE__;
        fp_frame_tick();
    }
    ck_assert_int_eq(fp_snapshot_take(&b), 0);
    ck_assert_uint_eq(fp_snapshot_frame(b) - fp_snapshot_frame(a), 10);

    fp_diag_diff *d = NULL;
    ck_assert_int_eq(fp_snapshot_compare(b, a, FP_DIAG_BY_SITE, &d), 0);
    ck_assert_uint_ge(d->n, 1);
    const fp_diag_stat *top = &d->stats[0];
    ck_assert_str_eq(top->file, __FILE__);
    ck_assert_int_eq(top->line, leak_line);
    ck_assert_str_eq(top->type, "leaky_thing");
    ck_assert_str_eq(top->func, "planted_leak_named_by_diff_fn");
    ck_assert_int_eq(top->count, 10);
    ck_assert_int_eq(top->count_diff, 10);
    ck_assert_int_eq(top->size, 10000);
    ck_assert_int_eq(top->size_diff, 10000);
    /* The steady site left nothing behind. */
    for (size_t i = 0; i < d->n; i++)
        ck_assert_str_ne(d->stats[i].type, "steady_thing");
    fp_unref(&d);

    memout m;
    mo_open(&m);
    ck_assert_int_ge(fp_diag_print_diff(m.f, b, a, FP_DIAG_BY_SITE, 1), 1);
    char want[512];
    snprintf(want, sizeof want,
             "%s:%d: size=10000 B (+10000 B), count=10 (+10), average=1000 B\n"
             "    leaky_thing (in planted_leak_named_by_diff_fn)\n",
             __FILE__, leak_line);
    const char *txt = mo_text(&m);
    ck_assert_msg(strncmp(txt, want, strlen(want)) == 0, "got:\n%s\nwant:\n%s", txt, want);
    ck_assert_ptr_nonnull(strstr(txt, "\nTotal: size="));
    mo_close(&m);

    for (int i = 0; i < 10; i++)
        fp_unref(&kept[i]);
    fp_unref(&a);
    fp_unref(&b);
}
END_TEST

START_TEST(pooled_image_site_is_acquire_caller)
{
    ck_assert_int_eq(fp_diag_configure("sites"), 0);
    fp_pool_config cfg = {.name = "frames", .format = FP_PIX_GRAY8, .width = 64, .height = 64,
                          .max_buffers = 4};
    fp_pool *pool = NULL;
    ck_assert_int_eq(fp_pool_new(&cfg, &pool), 0);
    fp_image *warm = NULL;
    ck_assert_int_eq(fp_pool_acquire(pool, 0, &warm), 0);
    fp_unref(&warm); /* now idle: the next acquire revives it */
    fp_snapshot *a = NULL, *b = NULL;
    ck_assert_int_eq(fp_snapshot_take(&a), 0);
    fp_image *img = NULL;
    int line = __LINE__; ck_assert_int_eq(fp_pool_acquire(pool, 0, &img), 0);
    ck_assert_int_eq(fp_snapshot_take(&b), 0);
    fp_diag_diff *d = NULL;
    ck_assert_int_eq(fp_snapshot_compare(b, a, FP_DIAG_BY_SITE, &d), 0);
    ck_assert_uint_ge(d->n, 1);
    ck_assert_str_eq(d->stats[0].file, __FILE__);
    ck_assert_int_eq(d->stats[0].line, line);
    ck_assert_str_eq(d->stats[0].type, "fp_image");
    ck_assert_int_eq(d->stats[0].count_diff, 1);
    ck_assert_int_eq(d->stats[0].size, (int64_t)img->bytes);
    fp_unref(&d);
    /* By type: fp_image +1, the pool unchanged. */
    ck_assert_int_eq(fp_snapshot_compare(b, a, FP_DIAG_BY_TYPE, &d), 0);
    ck_assert_str_eq(d->stats[0].type, "fp_image");
    ck_assert_ptr_null(d->stats[0].file);
    ck_assert_int_eq(d->total_count_diff, 1);
    fp_unref(&d);
    fp_unref(&img);
    fp_unref(&a);
    fp_unref(&b);
    fp_unref(&pool);
}
END_TEST

START_TEST(compare_sorts_like_tracemalloc)
{
    ck_assert_int_eq(fp_diag_configure("sites"), 0);
    void *big = fp_new(&other_type, 50000); /* unchanged, large */
    void *gone[3];
    for (int i = 0; i < 3; i++)
        gone[i] = fp_new(&other_type, 100);
    fp_snapshot *a = NULL, *b = NULL;
    ck_assert_int_eq(fp_snapshot_take(&a), 0);
    for (int i = 0; i < 3; i++)
        fp_unref(&gone[i]); /* -300 B */
    void *grow[2];
    for (int i = 0; i < 2; i++)
        grow[i] = fp_new(&leak_type, 100); /* +200 B */
    ck_assert_int_eq(fp_snapshot_take(&b), 0);
    fp_diag_diff *d = NULL;
    ck_assert_int_eq(fp_snapshot_compare(b, a, FP_DIAG_BY_SITE, &d), 0);
    ck_assert_uint_eq(d->n, 3);
    ck_assert_int_eq(d->stats[0].size_diff, -300); /* largest |size_diff| first */
    ck_assert_int_eq(d->stats[0].size, 0);
    ck_assert_int_eq(d->stats[0].count, 0);
    ck_assert_int_eq(d->stats[0].count_diff, -3);
    ck_assert_int_eq(d->stats[1].size_diff, 200);
    ck_assert_int_eq(d->stats[1].count_diff, 2);
    ck_assert_int_eq(d->stats[2].size_diff, 0);
    ck_assert_int_eq(d->stats[2].size, 50000);
    ck_assert_int_eq(d->total_size, 50200);
    ck_assert_int_eq(d->total_size_diff, -100);
    ck_assert_int_eq(d->total_count, 3);
    ck_assert_int_eq(d->total_count_diff, -1);
    fp_unref(&d);

    memout m;
    mo_open(&m);
    ck_assert_int_eq(fp_diag_print_diff(m.f, b, a, FP_DIAG_BY_SITE, 1), 3);
    const char *txt = mo_text(&m);
    ck_assert_ptr_nonnull(strstr(txt, "2 other: size=49.0 KiB (+200 B), count=3 (+2)\n"));
    ck_assert_ptr_nonnull(strstr(txt, "Total: size=49.0 KiB (-100 B), count=3 (-1)\n"));
    mo_close(&m);

    /* Plain statistics of one snapshot (tracemalloc's Snapshot.statistics). */
    mo_open(&m);
    ck_assert_int_eq(fp_diag_print_diff(m.f, b, NULL, FP_DIAG_BY_TYPE, 0), 2);
    txt = mo_text(&m);
    ck_assert_msg(strncmp(txt, "other_thing: size=48.8 KiB, count=1, average=48.8 KiB\n",
                          strlen("other_thing: size=48.8 KiB, count=1, average=48.8 KiB\n")) == 0,
                  "got %s", txt);
    ck_assert_ptr_nonnull(strstr(txt, "leaky_thing: size=200 B, count=2, average=100 B\n"));
    ck_assert_ptr_nonnull(strstr(txt, "Total: size=49.0 KiB, count=3\n"));
    mo_close(&m);

    for (int i = 0; i < 2; i++)
        fp_unref(&grow[i]);
    fp_unref(&big);
    fp_unref(&a);
    fp_unref(&b);
}
END_TEST

START_TEST(snapshot_without_sites_says_so)
{
    ck_assert_int_eq(fp_diag_configure("off"), 0);
    void *o = fp_new(&leak_type, 10);
    fp_snapshot *s = NULL;
    ck_assert_int_eq(fp_snapshot_take(&s), FP_EINVAL);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "FP_DIAG=sites"));
    uint64_t c = 1, by = 1;
    fp_snapshot_totals(s, &c, &by);
    ck_assert_uint_eq(c, 0);
    fp_unref(&s);
    fp_unref(&o);
    ck_assert_int_eq(fp_diag_configure("sites,bogus"), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "bogus"));
    ck_assert_uint_eq(fp_diag_flags(), FP_DIAG_SITES); /* known items still applied */
}
END_TEST

START_TEST(traceback_grouping)
{
    ck_assert_int_eq(fp_diag_configure("backtrace=8"), 0);
    ck_assert_uint_eq(fp_diag_flags() & (FP_DIAG_SITES | FP_DIAG_BACKTRACE),
                      FP_DIAG_SITES | FP_DIAG_BACKTRACE);
    fp_snapshot *a = NULL, *b = NULL;
    ck_assert_int_eq(fp_snapshot_take(&a), 0);
    void *o[4];
    for (int i = 0; i < 4; i++)
        o[i] = fp_new(&leak_type, 64);
    ck_assert_int_eq(fp_snapshot_take(&b), 0);
    fp_diag_diff *d = NULL;
    ck_assert_int_eq(fp_snapshot_compare(b, a, FP_DIAG_BY_TRACEBACK, &d), 0);
    ck_assert_uint_ge(d->n, 1);
    ck_assert_ptr_nonnull(d->stats[0].traceback); /* one interned stack for the loop */
    ck_assert_int_eq(d->stats[0].count_diff, 4);
    fp_unref(&d);
    memout m;
    mo_open(&m);
    fp_diag_print_diff(m.f, b, a, FP_DIAG_BY_TRACEBACK, 1);
    ck_assert_ptr_nonnull(strstr(mo_text(&m), "      #0 "));
    mo_close(&m);
    for (int i = 0; i < 4; i++)
        fp_unref(&o[i]);
    fp_unref(&a);
    fp_unref(&b);
}
END_TEST

/* ---- growth ------------------------------------------------------------------------ */

START_TEST(growth_steady_loop_prints_nothing)
{
    fp_growth *g = NULL;
    ck_assert_int_eq(fp_growth_new(&g), 0);
    void *keep = fp_new(&steady_type, 8);
    memout m;
    mo_open(&m);
    ck_assert_int_ge(fp_growth_check(g, m.f, 0), 1); /* first call: everything alive */
    ck_assert_ptr_nonnull(strstr(mo_text(&m), "steady_thing"));
    mo_close(&m);
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 100; i++)
            steady_frame();
        mo_open(&m);
        ck_assert_int_eq(fp_growth_check(g, m.f, 0), 0);
        ck_assert_str_eq(mo_text(&m), "");
        mo_close(&m);
    }
    /* Three leaked objects: one line, objgraph's "%-*s%9d %+9d". */
    void *leaked[3];
    for (int i = 0; i < 3; i++)
        leaked[i] = fp_new(&leak_type, 8);
    mo_open(&m);
    ck_assert_int_eq(fp_growth_check(g, m.f, 0), 1);
    ck_assert_str_eq(mo_text(&m), "leaky_thing        3        +3\n");
    mo_close(&m);
    /* Dropping and re-creating up to the old peak is not growth. */
    fp_unref(&leaked[2]);
    leaked[2] = fp_new(&leak_type, 8);
    ck_assert_int_eq(fp_growth_check(g, NULL, 0), 0);
    for (int i = 0; i < 3; i++)
        fp_unref(&leaked[i]);
    fp_unref(&keep);
    fp_unref(&g);
}
END_TEST

START_TEST(summary_table)
{
    void *o[3];
    for (int i = 0; i < 3; i++)
        o[i] = fp_new(&leak_type, 4096);
    void *s = fp_new(&steady_type, 16);
    memout m;
    mo_open(&m);
    fp_diag_print_summary(m.f);
    const char *txt = mo_text(&m);
    ck_assert_ptr_nonnull(strstr(txt, "# objects"));
    const char *l1 = strstr(txt, "\nleaky_thing ");
    const char *l2 = strstr(txt, "\nsteady_thing ");
    ck_assert_ptr_nonnull(l1);
    ck_assert_ptr_nonnull(l2);
    ck_assert(l1 < l2); /* sorted by live bytes */
    unsigned long long n = 0, created = 0;
    char live[16], lu[8], peak[16], pu[8];
    ck_assert_int_eq(sscanf(l1 + 1, "leaky_thing %llu %15s %7s %15s %7s %llu", &n, live, lu, peak,
                            pu, &created),
                     6);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(live, "12.0");
    ck_assert_str_eq(lu, "KiB");
    ck_assert_uint_eq(created, 3);
    ck_assert_ptr_nonnull(strstr(txt, "pool idle bytes: "));
    mo_close(&m);
    for (int i = 0; i < 3; i++)
        fp_unref(&o[i]);
    fp_unref(&s);
}
END_TEST

/* ---- leak report ------------------------------------------------------------------- */

START_TEST(leak_report_lists_forgotten_image)
{
    ck_assert_int_eq(fp_diag_configure("sites"), 0);
    uint64_t start = fp_frame_now();
    fp_image *img = NULL;
    int line = __LINE__; ck_assert_int_eq(fp_image_new(FP_PIX_GRAY8, 32, 32, &img), 0);
    fp_ref(img); /* refcount 2: someone kept an extra reference */
    void *single = fp_new(&other_type, 8);
    fp_diag_mark_singleton(single);
    fp_pool_config cfg = {.name = "leaky pool", .format = FP_PIX_GRAY8, .width = 16,
                          .height = 16, .max_buffers = 2};
    fp_pool *pool = NULL;
    ck_assert_int_eq(fp_pool_new(&cfg, &pool), 0);
    fp_image *pimg = NULL;
    ck_assert_int_eq(fp_pool_acquire(pool, 0, &pimg), 0);
    fp_unref(&pool); /* the owner let go; one buffer is still out */
    while (fp_frame_now() - start < 9500)
        fp_frame_tick();

    memout m;
    mo_open(&m);
    int leaks = fp_diag_leak_report(m.f, 0);
    ck_assert_int_eq(leaks, 2); /* img and pimg; the singleton is left out */
    const char *txt = mo_text(&m);
    char want[512];
    snprintf(want, sizeof want,
             "  fp_image: 1 object, %zu B, created at %s:%d (%s), refcount 2, alive for 9,500 "
             "frames\n",
             img->bytes, __FILE__, line, "leak_report_lists_forgotten_image_fn");
    ck_assert_msg(strstr(txt, want), "got:\n%s\nwant:\n%s", txt, want);
    ck_assert_ptr_nonnull(strstr(txt, "leaked objects"));
    ck_assert_ptr_nonnull(strstr(txt, "pools with buffers still out:\n  pool 'leaky pool' "
                                      "(released by its owner): 1 of 1 buffers out"));
    ck_assert_ptr_nonnull(strstr(txt, "(1 singleton object left out)"));
    ck_assert_ptr_null(strstr(txt, "other_thing"));
    mo_close(&m);

    mo_open(&m);
    ck_assert_int_eq(fp_diag_leak_report(m.f, FP_DIAG_REPORT_SINGLETONS | FP_DIAG_REPORT_OBJECTS),
                     3);
    ck_assert_ptr_nonnull(strstr(mo_text(&m), "other_thing: 1 object"));
    mo_close(&m);

    fp_unref(&pimg); /* the pool goes away with its last buffer */
    fp_decref(img);
    fp_unref(&img);
    fp_unref(&single);
    mo_open(&m);
    ck_assert_int_eq(fp_diag_leak_report(m.f, 0), 0);
    ck_assert_ptr_nonnull(strstr(mo_text(&m), "no leaked objects"));
    ck_assert_ptr_null(strstr(mo_text(&m), "pools with buffers"));
    mo_close(&m);
}
END_TEST

START_TEST(leak_report_counts_untracked)
{
    ck_assert_int_eq(fp_diag_configure("off"), 0);
    void *early = fp_new(&leak_type, 8); /* before sites were on */
    ck_assert_int_eq(fp_diag_configure("sites"), 0);
    memout m;
    mo_open(&m);
    ck_assert_int_eq(fp_diag_leak_report(m.f, 0), 1);
    ck_assert_ptr_nonnull(strstr(mo_text(&m), "not tracked"));
    ck_assert_ptr_nonnull(strstr(mo_text(&m), "  leaky_thing: 1 object\n"));
    mo_close(&m);
    fp_unref(&early);
}
END_TEST

/* ---- FP_DIAG in a child process --------------------------------------------------------- */

static int child_leak_line;

static int child_main(const char *mode)
{
    if (!strcmp(mode, "leak")) {
        fp_image *img = NULL;
        child_leak_line = __LINE__; fp_image_new(FP_PIX_GRAY8, 8, 8, &img);
        for (int i = 0; i < 12; i++)
            fp_frame_tick();
        printf("leak line %d\n", child_leak_line);
        return 0; /* forgot fp_unref(&img) */
    }
    if (!strcmp(mode, "clean")) {
        fp_image *img = NULL;
        fp_image_new(FP_PIX_GRAY8, 8, 8, &img);
        fp_unref(&img);
        return 0;
    }
    if (!strcmp(mode, "failing")) {
        fp_image *img = NULL;
        fp_image_new(FP_PIX_GRAY8, 8, 8, &img);
        return 3; /* leaks, but already failing: status kept */
    }
    if (!strcmp(mode, "signal")) {
        void *o = fp_new(&leak_type, 100);
        struct stat st;
        kill(getpid(), SIGUSR1);
        for (int i = 0; i < 500; i++) { /* wait for the report (stderr is a file) */
            usleep(10000);
            if (fstat(2, &st) == 0 && st.st_size > 0) {
                usleep(50000);
                break;
            }
        }
        fp_unref(&o);
        return 0;
    }
    return 2;
}

/* Runs this test program with FP_DIAG=`diag` in child mode `mode`; returns
 * the exit status and the child's stderr in `err`. */
static int run_child(const char *diag, const char *mode, char *err, size_t errn)
{
    char path[] = "/tmp/fp_test_diag_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd, 2);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        setenv("FP_DIAG", diag, 1);
        setenv("ASAN_OPTIONS", "detect_leaks=0", 1); /* the children leak on purpose */
        char *argv[] = {(char *)"test_diag", (char *)"--child", (char *)mode, NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ssize_t r = pread(fd, err, errn - 1, 0);
    err[r > 0 ? r : 0] = 0;
    close(fd);
    unlink(path);
    ck_assert_msg(WIFEXITED(status), "child died: status 0x%x, stderr:\n%s", status, err);
    return WEXITSTATUS(status);
}

START_TEST(leaks_error_sets_exit_status)
{
    static char err[16384];
    ck_assert_int_eq(run_child("sites,leaks=error", "leak", err, sizeof err), 1);
    ck_assert_ptr_nonnull(strstr(err, "framepool leak report at frame 12: 1 leaked object"));
    ck_assert_msg(strstr(err, "  fp_image: 1 object, ") && strstr(err, "refcount 1, alive for "
                                                                       "12 frames"),
                  "stderr:\n%s", err);
    ck_assert_ptr_nonnull(strstr(err, "test_diag.c:"));
    ck_assert_ptr_nonnull(strstr(err, "(child_main)"));
    ck_assert_ptr_nonnull(strstr(err, "exiting with status 1"));

    ck_assert_int_eq(run_child("leaks=error", "clean", err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, "no leaked objects"));

    ck_assert_int_eq(run_child("leaks=report", "leak", err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, "1 leaked object"));

    ck_assert_int_eq(run_child("leaks=error", "failing", err, sizeof err), 3);
    ck_assert_ptr_nonnull(strstr(err, "1 leaked object"));

    ck_assert_int_eq(run_child("", "leak", err, sizeof err), 0);
    ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(sigusr1_prints_report_from_thread)
{
    static char err[16384];
    ck_assert_int_eq(run_child("signal", "signal", err, sizeof err), 0);
    ck_assert_msg(strstr(err, "framepool report (pid "), "stderr:\n%s", err);
    ck_assert_ptr_nonnull(strstr(err, "# objects"));
    ck_assert_ptr_nonnull(strstr(err, "growth since the last report:\n"));
    ck_assert_ptr_nonnull(strstr(err, "leaky_thing        1        +1\n"));
}
END_TEST


/* ---- allocation failures ----------------------------------------------------------- */

/* Every diag entry point that allocates, with objects around. Returns the
 * first error. */
static int alloc_scenario(FILE *out)
{
    void *o[5] = {NULL};
    fp_snapshot *a = NULL, *b = NULL;
    fp_diag_diff *d = NULL;
    fp_growth *g = NULL;
    fp_memtrack *t = NULL;
    int rc;
    for (int i = 0; i < 3; i++)
        if (!(o[i] = fp_new(&leak_type, 100))) {
            rc = FP_ENOMEM;
            goto out;
        }
    if ((rc = fp_snapshot_take(&a)))
        goto out;
    for (int i = 3; i < 5; i++)
        if (!(o[i] = fp_new(&other_type, 10))) {
            rc = FP_ENOMEM;
            goto out;
        }
    if ((rc = fp_snapshot_take(&b)))
        goto out;
    if ((rc = fp_snapshot_compare(b, a, FP_DIAG_BY_SITE, &d)))
        goto out;
    if ((rc = fp_diag_print_diff(out, b, a, FP_DIAG_BY_TYPE, 1)) < 0)
        goto out;
    if ((rc = fp_growth_new(&g)))
        goto out;
    if ((rc = fp_growth_check(g, out, 0)) < 0)
        goto out;
    fp_diag_leak_report(out, FP_DIAG_REPORT_OBJECTS);
    fp_diag_print_summary(out);
    fp_memtrack_config cfg = {.capacity = 64};
    if ((rc = fp_memtrack_new(&cfg, &t)))
        goto out;
    for (int i = 0; i < 100; i++)
        fp_memtrack_sample(t);
    if ((rc = fp_memtrack_print(t, out)) < 0)
        goto out;
    rc = FP_OK;
out:
    for (int i = 0; i < 5; i++)
        fp_unref(&o[i]);
    fp_unref(&a);
    fp_unref(&b);
    fp_unref(&d);
    fp_unref(&g);
    fp_unref(&t);
    return rc;
}

START_TEST(diag_survives_every_failed_allocation)
{
    ck_assert_int_eq(fp_diag_configure("sites"), 0);
    FILE *null = fopen("/dev/null", "w");
    tu_alloc_install();
    ck_assert_int_eq(alloc_scenario(null), FP_OK);
    uint64_t total = tu_alloc_count();
    ck_assert_int_eq(tu_alloc_live(), 0);
    ck_assert_uint_ge(total, 15);
    for (uint64_t n = 1; n <= total + 1; n++) {
        tu_alloc_fail_at(n);
        int rc = alloc_scenario(null);
        if (n > total)
            ck_assert_int_eq(rc, FP_OK);
        else
            ck_assert_msg(rc == FP_OK || rc == FP_ENOMEM, "allocation %llu: %d",
                          (unsigned long long)n, rc);
        ck_assert_msg(tu_alloc_live() == 0, "failing allocation %llu leaked %lld blocks",
                      (unsigned long long)n, (long long)tu_alloc_live());
    }
    tu_alloc_uninstall();
    fclose(null);
}
END_TEST

static Suite *diag_suite(void)
{
    Suite *s = suite_create("diag");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, format_size_matches_tracemalloc);
    tcase_add_test(tc, format_stat_matches_tracemalloc);
    tcase_add_test(tc, planted_leak_named_by_diff);
    tcase_add_test(tc, pooled_image_site_is_acquire_caller);
    tcase_add_test(tc, compare_sorts_like_tracemalloc);
    tcase_add_test(tc, snapshot_without_sites_says_so);
    tcase_add_test(tc, traceback_grouping);
    tcase_add_test(tc, growth_steady_loop_prints_nothing);
    tcase_add_test(tc, summary_table);
    tcase_add_test(tc, leak_report_lists_forgotten_image);
    tcase_add_test(tc, leak_report_counts_untracked);
    tcase_add_test(tc, leaks_error_sets_exit_status);
    tcase_add_test(tc, sigusr1_prints_report_from_thread);
    tcase_add_test(tc, diag_survives_every_failed_allocation);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--child"))
        return child_main(argv[2]);
    return tu_run(diag_suite());
}
