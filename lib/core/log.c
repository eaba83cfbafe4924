/*
 * The log hook (framepool/base.h, "Logging"): one process-wide callback and
 * level; lines of framepool and, through lib/av/avlog.c, of FFmpeg.
 *
 * The hook is called with no lock held. fp_log_set_callback waits until the
 * calls of the hook it replaces have returned: each call counts itself in
 * the slot of the hook's generation (two slots, by parity), so a switch
 * waits only for calls of the old hook, never for later ones.
 *
 * fork: the log lock is one of the locks the library takes around a fork
 * (diag_env.c), the last one, since nothing is taken under it; without it a
 * child forked while another thread was passing a line on found the lock
 * held for good and hung at its first line.
 */
#include "log_priv.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define LOG_LINE_MAX 4096

static _Atomic int log_level = FP_LOG_WARNING;

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_cv = PTHREAD_COND_INITIALIZER;
/* guarded by log_mu */
static fp_log_fn log_fn;
static void *log_user;
static unsigned log_gen;
static unsigned log_active[2];
static void (*log_level_hook)(int);

/* Depth of hook calls on this thread: a hook that logs or switches the hook
 * must not wait for itself. */
static _Thread_local int log_depth;

static void default_printer(int level, const char *source, const char *line, void *user)
{
    (void)level;
    (void)user;
    /* one call: stdio locks the stream, so lines of several threads do not mix */
    fprintf(stderr, "framepool [%s] %s\n", source, line);
}

int fp__log_enabled(int level)
{
    return level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void fp_log_set_level(int level)
{
    pthread_mutex_lock(&log_mu);
    atomic_store_explicit(&log_level, level, memory_order_relaxed);
    if (log_level_hook)
        log_level_hook(level);
    pthread_mutex_unlock(&log_mu);
}

int fp_log_get_level(void)
{
    return atomic_load_explicit(&log_level, memory_order_relaxed);
}

void fp__log_on_level(void (*fn)(int level))
{
    pthread_mutex_lock(&log_mu);
    log_level_hook = fn;
    if (fn)
        fn(atomic_load_explicit(&log_level, memory_order_relaxed));
    pthread_mutex_unlock(&log_mu);
}

void fp_log_set_callback(fp_log_fn fn, void *user)
{
    pthread_mutex_lock(&log_mu);
    unsigned old = log_gen & 1u;
    log_fn = fn;
    log_user = user;
    log_gen++;
    if (log_depth == 0)
        while (log_active[old] > 0)
            pthread_cond_wait(&log_cv, &log_mu);
    pthread_mutex_unlock(&log_mu);
}

static void emit_line(int level, const char *source, const char *line)
{
    pthread_mutex_lock(&log_mu);
    fp_log_fn fn = log_fn ? log_fn : default_printer;
    void *user = log_fn ? log_user : NULL;
    unsigned slot = log_gen & 1u;
    log_active[slot]++;
    pthread_mutex_unlock(&log_mu);

    log_depth++;
    fn(level, source, line, user);
    log_depth--;

    pthread_mutex_lock(&log_mu);
    /* (a child forked inside this call starts its counts at 0: fp__log_atfork) */
    if (log_active[slot] > 0 && --log_active[slot] == 0)
        pthread_cond_broadcast(&log_cv);
    pthread_mutex_unlock(&log_mu);
}

void fp__log_atfork(int phase)
{
    if (phase == 0) {
        pthread_mutex_lock(&log_mu);
        return;
    }
    if (phase == 2) {
        /* the hook calls other threads were making are not in the child: a
         * fp_log_set_callback there must not wait for them */
        log_active[0] = log_active[1] = 0;
        pthread_cond_init(&log_cv, NULL);
    }
    pthread_mutex_unlock(&log_mu);
}

void fp__log_text(int level, const char *source, const char *text)
{
    if (!text || !fp__log_enabled(level))
        return;
    if (!source || !*source)
        source = "framepool";
    char line[LOG_LINE_MAX];
    const char *p = text;
    while (*p) {
        size_t n = strcspn(p, "\n");
        size_t len = n;
        while (len > 0 && p[len - 1] == '\r')
            len--;
        if (len > 0) {
            if (len >= sizeof line)
                len = sizeof line - 1;
            memcpy(line, p, len);
            line[len] = '\0';
            emit_line(level, source, line);
        }
        p += n;
        if (*p == '\n')
            p++;
    }
}

void fp__log(int level, const char *source, const char *fmt, ...)
{
    if (!fmt || !fp__log_enabled(level))
        return;
    char text[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fp__log_text(level, source, text);
}
