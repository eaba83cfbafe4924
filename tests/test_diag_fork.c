/* Fork safety: a child forked at any moment — while other threads run
 * reports, acquire from pools on a budget, take and drop references with
 * their history recorded, and the channel's thread answers requests — can
 * use framepool: it makes objects, prints a report and exits. */
#define _GNU_SOURCE
#include "testutil.h"

#include "diag_internal.h"
#include <framepool.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#if UNDER_SANITIZER
#define FORKS 60
#else
#define FORKS 300
#endif

/* AddressSanitizer's allocator (GCC 12's libasan, LLVM 14) takes no lock of
 * its own around fork: a child forked while another thread refills a size
 * class hangs in malloc, whatever framepool does. Under ASan the threads
 * therefore pause at each fork (between two calls, holding nothing) and no
 * thread asks the channel (its thread would allocate the reply): the ASan
 * run checks the child's use of what it inherited; the plain and TSan runs
 * fork in the middle of everything. */
#if defined(__SANITIZE_ADDRESS__)
#define FORK_UNSAFE_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FORK_UNSAFE_MALLOC 1
#endif
#endif
#ifndef FORK_UNSAFE_MALLOC
#define FORK_UNSAFE_MALLOC 0
#endif

static pthread_rwlock_t gate;

static void gate_in(void)
{
    if (FORK_UNSAFE_MALLOC)
        pthread_rwlock_rdlock(&gate);
}

static void gate_out(void)
{
    if (FORK_UNSAFE_MALLOC)
        pthread_rwlock_unlock(&gate);
}

static atomic_int stop;
static fp_pool *shared_pool;
static char channel[256];
static char xdg[] = "/tmp/fp-fork-test-XXXXXX";

static void *reporter(void *arg)
{
    (void)arg;
    FILE *null = fopen("/dev/null", "w");
    ck_assert_ptr_nonnull(null);
    while (!atomic_load(&stop)) {
        gate_in();
        fp_diag_report(null);
        fp_diag_leak_report(null, FP_DIAG_REPORT_INTERNAL | FP_DIAG_REPORT_OBJECTS);
        fp_diag_print_summary(null);
        gate_out();
    }
    fclose(null);
    return NULL;
}

static void *worker(void *arg)
{
    (void)arg;
    fp_weak w;
    while (!atomic_load(&stop)) {
        gate_in();
        fp_image *img = NULL;
        if (fp_pool_acquire(shared_pool, 1000, &img) == FP_OK) {
            fp_image *extra = fp_ref(img);
            fp_weak_create(img, &w);
            fp_unref(&extra);
            fp_unref(&img);
        }
        fp_image *own = NULL;
        if (fp_image_new(FP_PIX_GRAY8, 32, 32, &own) == FP_OK)
            fp_unref(&own);
        gate_out();
    }
    return NULL;
}

/* A client of the channel: its thread keeps building replies. */
static void *asker(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        memcpy(sa.sun_path, channel, strlen(channel) + 1);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
            send(fd, "report\n", 7, MSG_NOSIGNAL) == 7) {
            char buf[4096];
            while (read(fd, buf, sizeof buf) > 0)
                ;
        }
        if (fd >= 0)
            close(fd);
    }
    return NULL;
}

/* In the child: objects, a pool, the shared pool, a report. 0 when all went well. */
static int child_work(void)
{
    if (fp__diag_socket_path()[0])
        return 10; /* the channel is the parent's */
    if (fp_diag_flags() & FP_DIAG_SOCKET)
        return 11;
    fp_image *img = NULL;
    if (fp_image_new(FP_PIX_BGR24, 64, 48, &img) != FP_OK)
        return 12;
    fp_pool_config cfg = {.format = FP_PIX_GRAY8, .width = 16, .height = 16, .max_buffers = 2};
    fp_pool *p = NULL;
    if (fp_pool_new(&cfg, &p) != FP_OK)
        return 13;
    fp_image *a = NULL, *b = NULL;
    if (fp_pool_acquire(p, 0, &a) != FP_OK || fp_pool_acquire(shared_pool, 0, &b) != FP_OK)
        return 14;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fp_diag_report(f);
    fp_diag_leak_report(f, 0);
    fclose(f);
    int ok = text && strstr(text, "framepool summary") && strstr(text, "fp_image");
    free(text);
    fp_unref(&a);
    fp_unref(&b);
    fp_unref(&p);
    fp_unref(&img);
    return ok ? 0 : 15;
}

START_TEST(test_a_child_forked_during_reports_uses_framepool_and_exits)
{
    ck_assert_ptr_nonnull(mkdtemp(xdg));
    setenv("XDG_RUNTIME_DIR", xdg, 1);
    ck_assert_msg(fp_diag_configure("refs,socket") == FP_OK, "%s", fp_errmsg());
    snprintf(channel, sizeof channel, "%s", fp__diag_socket_path());
    ck_assert(channel[0]);
    fp_budget *budget = NULL;
    ck_assert_int_eq(fp_budget_new(1 << 20, &budget), FP_OK);
    fp_pool_config cfg = {.name = "shared", .format = FP_PIX_GRAY8, .width = 64, .height = 64,
                          .max_buffers = 4, .budget = budget};
    ck_assert_int_eq(fp_pool_new(&cfg, &shared_pool), FP_OK);
    fp_unref(&budget);

    pthread_rwlockattr_t ga;
    pthread_rwlockattr_init(&ga);
    pthread_rwlockattr_setkind_np(&ga, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&gate, &ga);
    pthread_rwlockattr_destroy(&ga);
    pthread_t th[4];
    int nth = FORK_UNSAFE_MALLOC ? 3 : 4;
    ck_assert_int_eq(pthread_create(&th[0], NULL, reporter, NULL), 0);
    ck_assert_int_eq(pthread_create(&th[1], NULL, worker, NULL), 0);
    ck_assert_int_eq(pthread_create(&th[2], NULL, worker, NULL), 0);
    if (nth == 4)
        ck_assert_int_eq(pthread_create(&th[3], NULL, asker, NULL), 0);
    int hung = 0, failed = 0, last_status = 0;
    for (int i = 0; i < FORKS && !hung; i++) {
        if (FORK_UNSAFE_MALLOC)
            pthread_rwlock_wrlock(&gate);
        pid_t c = fork();
        if (FORK_UNSAFE_MALLOC && c != 0)
            pthread_rwlock_unlock(&gate);
        ck_assert_int_ge(c, 0);
        if (c == 0)
            _exit(child_work());
        /* Each child must be done within 20 s (it needs milliseconds). */
        int status = 0;
        double end = tu_now() + 20;
        pid_t r;
        while ((r = waitpid(c, &status, WNOHANG)) == 0 && tu_now() < end)
            usleep(2000);
        if (r == 0) {
            hung = i + 1;
            kill(c, SIGKILL);
            waitpid(c, &status, 0);
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed++;
            last_status = status;
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    ck_assert_msg(!hung, "child %d of %d hung (killed after 20 s)", hung, FORKS);
    ck_assert_msg(!failed, "%d children failed (last: exit %d, signal %d)", failed,
                  WIFEXITED(last_status) ? WEXITSTATUS(last_status) : -1,
                  WIFSIGNALED(last_status) ? WTERMSIG(last_status) : 0);
    /* The parent's channel is still there and served. */
    ck_assert_str_eq(fp__diag_socket_path(), channel);
    fp_unref(&shared_pool);
    fp__diag_socket_close();
    tu_sh("rm -rf '%s'", xdg);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("diag_fork");
    TCase *tc = tcase_create("diag_fork");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_a_child_forked_during_reports_uses_framepool_and_exits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
