/*
 * Diagnostics, environment: the switches (FP_DIAG, fp_diag_configure,
 * fp_diag_set_flags), the exit handler, and the ways to ask a running
 * process for a report: SIGUSR1 (FP_DIAG=signal) and the socket channel
 * (FP_DIAG=socket, diag_socket.c).
 */
#define _GNU_SOURCE /* on_exit */
#include "diag_internal.h"
#include "internal.h"
#include "log_priv.h"
#include "typestat.h"

#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every switch (FP_DIAG_*). */
static _Atomic unsigned diag_switches;

/* ---- switches ----------------------------------------------------------------------- */

#define ALL_SWITCHES                                                                       \
    (FP_DIAG_SITES | FP_DIAG_BACKTRACE | FP_DIAG_LEAKS_REPORT | FP_DIAG_LEAKS_ERROR |       \
     FP_DIAG_SIGNAL | FP_DIAG_SUMMARY | FP_DIAG_REFS | FP_DIAG_SOCKET |                   \
     FP_DIAG_SOCKET_CLEANUP)

static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;
static int exit_handler_installed;
static int signal_thread_started;
static int socket_started;
static int cleanup_installed;
static int sig_pipe[2] = {-1, -1};

static void at_exit_handler(int status, void *arg);
static int start_signal_thread(void);

unsigned fp_diag_flags(void)
{
    return atomic_load_explicit(&diag_switches, memory_order_relaxed);
}

int fp_diag_set_flags(unsigned flags)
{
    if (flags & ~(unsigned)ALL_SWITCHES) {
        fp_errmsg_set("diag: unknown flag bits 0x%x", flags & ~(unsigned)ALL_SWITCHES);
        return FP_EINVAL;
    }
    if (flags & FP_DIAG_LEAKS_ERROR)
        flags |= FP_DIAG_LEAKS_REPORT;
    if (flags & (FP_DIAG_LEAKS_REPORT | FP_DIAG_BACKTRACE | FP_DIAG_REFS))
        flags |= FP_DIAG_SITES;
    if (flags & FP_DIAG_SOCKET_CLEANUP)
        flags |= FP_DIAG_SOCKET;
    int rc = FP_OK;
    pthread_mutex_lock(&setup_lock);
    if ((flags & FP_DIAG_SOCKET) && !socket_started) {
        rc = fp__diag_socket_start();
        if (rc == FP_OK)
            socket_started = 1;
        else
            flags &= ~(unsigned)FP_DIAG_SOCKET;
    }
    if ((flags & FP_DIAG_SOCKET_CLEANUP) && socket_started && !cleanup_installed) {
        fp__diag_socket_cleanup_handlers();
        cleanup_installed = 1;
    }
    if ((flags & (FP_DIAG_LEAKS_REPORT | FP_DIAG_SUMMARY | FP_DIAG_SOCKET)) &&
        !exit_handler_installed) {
        on_exit(at_exit_handler, NULL);
        exit_handler_installed = 1;
    }
    if ((flags & FP_DIAG_SIGNAL) && !signal_thread_started) {
        int src = start_signal_thread();
        if (src == FP_OK)
            signal_thread_started = 1;
        else
            flags &= ~(unsigned)FP_DIAG_SIGNAL, rc = src;
    }
    if (flags & FP_DIAG_BACKTRACE) {
        /* The first backtrace() loads the unwinder; do it now, not inside a
         * constructor call on some hot path. */
        void *warm[2];
        backtrace(warm, 2);
    }
    if (socket_started)
        flags |= FP_DIAG_SOCKET; /* the channel stays open until exit */
    atomic_store_explicit(&diag_switches, flags, memory_order_relaxed);
    fp__diag_track_apply((int)(flags & (FP_DIAG_SITES | FP_DIAG_BACKTRACE | FP_DIAG_REFS)));
    pthread_mutex_unlock(&setup_lock);
    return rc;
}

static int item_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && !strncmp(s, word, n);
}

int fp_diag_configure(const char *spec)
{
    if (!spec) {
        fp_errmsg_set("diag: NULL specification");
        return FP_EINVAL;
    }
    unsigned flags = 0;
    int bad = 0;
    char badbuf[64] = "";
    const char *p = spec;
    while (*p) {
        const char *e = p + strcspn(p, ",");
        size_t n = (size_t)(e - p);
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0 || item_is(p, n, "off") || item_is(p, n, "0")) {
            /* nothing */
        } else if (item_is(p, n, "sites") || item_is(p, n, "on") || item_is(p, n, "1")) {
            flags |= FP_DIAG_SITES;
        } else if (item_is(p, n, "backtrace") || item_is(p, n, "backtraces")) {
            flags |= FP_DIAG_BACKTRACE;
        } else if (n > 10 && !strncmp(p, "backtrace=", 10)) {
            long d = strtol(p + 10, NULL, 10);
            if (d < 1 || d > FP__DIAG_BT_MAX) {
                bad = 1;
                snprintf(badbuf, sizeof badbuf, "%.*s", (int)n, p);
            } else {
                atomic_store(&fp__diag_bt_depth, (int)d);
                flags |= FP_DIAG_BACKTRACE;
            }
        } else if (item_is(p, n, "leaks") || item_is(p, n, "leaks=report")) {
            flags |= FP_DIAG_LEAKS_REPORT;
        } else if (item_is(p, n, "leaks=error")) {
            flags |= FP_DIAG_LEAKS_ERROR;
        } else if (item_is(p, n, "signal")) {
            flags |= FP_DIAG_SIGNAL;
        } else if (item_is(p, n, "summary")) {
            flags |= FP_DIAG_SUMMARY;
        } else if (item_is(p, n, "refs")) {
            flags |= FP_DIAG_REFS;
        } else if (item_is(p, n, "socket")) {
            flags |= FP_DIAG_SOCKET;
        } else if (item_is(p, n, "socket-cleanup")) {
            flags |= FP_DIAG_SOCKET_CLEANUP;
        } else {
            bad = 1;
            snprintf(badbuf, sizeof badbuf, "%.*s", (int)n, p);
        }
        p = *e ? e + 1 : e;
    }
    int rc = fp_diag_set_flags(flags);
    if (bad) {
        fp_errmsg_set("diag: unknown FP_DIAG item '%s' (known: sites, backtrace[=N], "
                       "refs, leaks=report, leaks=error, signal, socket, socket-cleanup, summary, "
                       "off)",
                       badbuf);
        return FP_EINVAL;
    }
    return rc;
}

/* Referred to by obj.c, so that a static link keeps this file and its
 * constructor (diag_internal.h). */
const char fp__diag_env_linked = 1;

/* ---- fork ---------------------------------------------------------------------------- */

/* Before fork, every lock of the library is taken, in the order the library
 * nests them (obj_priv.h), so that no other thread holds one at the moment
 * of the fork: the child finds every structure whole and every lock free.
 * The parent then releases them; the child too, and forgets the threads it
 * does not have (diag.h: what a child inherits). */
static void fork_prepare(void)
{
    pthread_mutex_lock(&setup_lock);
    fp__diag_socket_atfork(0);
    fp__diag_report_atfork(0);
    fp__pool_atfork(0);
    fp__typestat_atfork(0);
    fp__diag_track_atfork(0);
    fp__obj_atfork(0);
    fp__weak_atfork(0);
    fp__log_atfork(0); /* a leaf: nothing is taken under it */
}

static void fork_release(int phase)
{
    fp__log_atfork(phase);
    fp__weak_atfork(phase);
    fp__obj_atfork(phase);
    fp__diag_track_atfork(phase);
    fp__typestat_atfork(phase);
    fp__pool_atfork(phase);
    fp__diag_report_atfork(phase);
    fp__diag_socket_atfork(phase);
}

static void fork_parent(void)
{
    fork_release(1);
    pthread_mutex_unlock(&setup_lock);
}

static void fork_child(void)
{
    fork_release(2);
    /* No diagnostics thread came along: the channel is closed (the parent
     * keeps its file) and SIGUSR1 has nobody to print; either can be
     * switched on again in the child. */
    if (signal_thread_started) {
        if (sig_pipe[0] >= 0)
            close(sig_pipe[0]);
        if (sig_pipe[1] >= 0)
            close(sig_pipe[1]);
        sig_pipe[0] = sig_pipe[1] = -1;
        signal_thread_started = 0;
    }
    socket_started = 0;
    cleanup_installed = 0;
    atomic_fetch_and_explicit(&diag_switches,
                              ~(unsigned)(FP_DIAG_SIGNAL | FP_DIAG_SOCKET |
                                          FP_DIAG_SOCKET_CLEANUP),
                              memory_order_relaxed);
    pthread_mutex_unlock(&setup_lock);
}

__attribute__((constructor)) static void diag_load(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    const char *s = getenv("FP_DIAG");
    if (s && *s && fp_diag_configure(s) != FP_OK)
        fprintf(stderr, "framepool: FP_DIAG: %s\n", fp_errmsg());
}

/* At exit: the summary and leak report when asked for. With leaks=error and
 * leaks found, a program that was exiting with status 0 exits with status 1
 * instead: stdio is flushed and _exit(1) ends the process (exit handlers
 * registered before framepool's, i.e. by libraries loaded earlier, do not
 * run). A non-zero status is kept. on_exit (glibc) is used because it tells
 * the handler which status the program chose. */
static void at_exit_handler(int status, void *arg)
{
    (void)arg;
    unsigned f = fp_diag_flags();
    if (f & FP_DIAG_SOCKET)
        fp__diag_socket_close(); /* no channel outlives the process */
    if (f & (FP_DIAG_SUMMARY | FP_DIAG_LEAKS_REPORT))
        fflush(stdout); /* keep the program's own output first */
    if (f & FP_DIAG_SUMMARY)
        fp_diag_print_summary(stderr);
    if (f & FP_DIAG_LEAKS_REPORT) {
        int leaks = fp_diag_leak_report(stderr, 0);
        if ((f & FP_DIAG_LEAKS_ERROR) && leaks > 0 && status == 0) {
            fprintf(stderr, "framepool: exiting with status 1 because of %d leaked object%s "
                            "(FP_DIAG=leaks=error)\n",
                    leaks, leaks == 1 ? "" : "s");
            fflush(NULL);
            _exit(1);
        }
    }
    fflush(stderr);
}

/* ---- SIGUSR1: a self-pipe and a thread that reads it ----------------------------------- */

static void sigusr1_handler(int sig)
{
    (void)sig;
    int saved = errno;
    char c = 1;
    ssize_t r = write(sig_pipe[1], &c, 1); /* async-signal-safe; a full pipe drops it */
    (void)r;
    errno = saved;
}

static void *signal_thread(void *arg)
{
    (void)arg;
    for (;;) {
        char buf[16];
        ssize_t r = read(sig_pipe[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return NULL;
        fp_diag_report(stderr);
        fflush(stderr);
    }
}

int fp__diag_start_thread(void *(*fn)(void *))
{
    /* The thread blocks every signal: signal handlers run on other threads. */
    return fp__thread_start(NULL, fn, NULL);
}

static int start_signal_thread(void)
{
    if (pipe(sig_pipe) != 0) {
        fp_errmsg_set("diag: pipe for SIGUSR1 failed: %s", strerror(errno));
        return FP_ENOMEM;
    }
    int rc = fp__diag_start_thread(signal_thread);
    if (rc != 0) {
        close(sig_pipe[0]);
        close(sig_pipe[1]);
        sig_pipe[0] = sig_pipe[1] = -1;
        fp_errmsg_set("diag: could not start the SIGUSR1 thread: %s", strerror(rc));
        return FP_ENOMEM;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sigusr1_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    return FP_OK;
}

