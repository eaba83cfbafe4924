#define _DEFAULT_SOURCE /* getloadavg */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <framepool.h>
#include "internal.h"
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static _Atomic uint64_t n_calls, fail_at;
static _Atomic int64_t n_live, live_bytes;

static void *tu_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    uint64_t n = atomic_fetch_add(&n_calls, 1) + 1;
    uint64_t f = atomic_load(&fail_at);
    if (f && n == f)
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align, size))
        return NULL;
    atomic_fetch_add(&n_live, 1);
    atomic_fetch_add(&live_bytes, (int64_t)size);
    return p;
}

static void tu_free(void *p, size_t size, void *user)
{
    (void)user;
    atomic_fetch_sub(&n_live, 1);
    atomic_fetch_sub(&live_bytes, (int64_t)size);
    free(p);
}

void tu_alloc_install(void)
{
    atomic_store(&n_calls, 0);
    atomic_store(&fail_at, 0);
    atomic_store(&n_live, 0);
    atomic_store(&live_bytes, 0);
    fp_allocator a = {tu_alloc, tu_free, NULL};
    fp_set_allocator(&a);
}

void tu_alloc_uninstall(void)
{
    fp_set_allocator(NULL);
}

void tu_alloc_fail_at(uint64_t n)
{
    atomic_store(&n_calls, 0);
    atomic_store(&fail_at, n);
}

uint64_t tu_alloc_count(void)
{
    return atomic_load(&n_calls);
}

/* Objects held back by the debug quarantine are not leaks: free them first. */
static void flush_quarantine(void)
{
#ifndef FP_TEST_PUBLIC_ONLY
    fp__obj_quarantine_flush();
#endif
}

int64_t tu_alloc_live(void)
{
    flush_quarantine();
    return atomic_load(&n_live);
}

int64_t tu_alloc_live_bytes(void)
{
    flush_quarantine();
    return atomic_load(&live_bytes);
}

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

TCase *tu_tcase(Suite *s, const char *name, void (*setup)(void), double timeout_s)
{
    TCase *tc = tcase_create(name);
    if (setup)
        tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, timeout_s);
    suite_add_tcase(s, tc);
    return tc;
}

double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double tu_slack(void)
{
    static double slack;
    if (slack > 0)
        return slack;
    double s = UNDER_SANITIZER ? 3.0 : 1.0, load[1];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    /* at most 3 for load: the tests' servers live 60 s */
    if (cpus > 0 && getloadavg(load, 1) == 1 && load[0] > (double)cpus)
        s *= load[0] > 3.0 * (double)cpus ? 3.0 : load[0] / (double)cpus;
    slack = s;
    return slack;
}

char tu_out[TU_OUT_SIZE];

int tu_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    ck_assert_msg(len >= 0 && (size_t)len < sizeof cmd, "command too long: %s", cmd);
    char full[4200];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(tu_out, 1, sizeof tu_out - 1, p);
    tu_out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void mo_open(memout *m)
{
    m->buf = NULL;
    m->len = 0;
    m->f = open_memstream(&m->buf, &m->len);
    ck_assert_ptr_nonnull(m->f);
}

const char *mo_text(memout *m)
{
    fflush(m->f);
    return m->buf ? m->buf : "";
}

void mo_close(memout *m)
{
    fclose(m->f);
    free(m->buf);
}

void tu_alloc_assert_clean(const char *what, unsigned long long n)
{
    tu_alloc_fail_at(0);
    ck_assert_msg(tu_alloc_live() == 0, "%s %llu: %lld framepool allocations leak", what, n,
                  (long long)tu_alloc_live());
    static FILE *devnull;
    if (!devnull)
        devnull = fopen("/dev/null", "w");
    int leaks = fp_diag_leak_report(devnull, FP_DIAG_REPORT_INTERNAL);
    if (leaks != 0)
        fp_diag_leak_report(stderr, FP_DIAG_REPORT_INTERNAL | FP_DIAG_REPORT_OBJECTS);
    ck_assert_msg(leaks == 0, "%s %llu: the leak report finds %d objects", what, n, leaks);
}

struct fp_pool *tu_pool_of(const struct fp_image *img)
{
    fp_pool *p = fp_image_get_pool(img);
    fp_pool *r = p;
    fp_unref(&p);
    return r;
}
