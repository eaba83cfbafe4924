/*
 * python/log.c — framepool's and FFmpeg's log lines reach Python's logging
 * (logger "framepool").
 *
 * The C library calls our callback on whatever thread logged: the caller's,
 * a live reader's thread, an FFmpeg decoder thread. None of them may call
 * into Python there: a decoder thread waiting for the GIL while the GIL's
 * holder waits for that decoder (a read with the GIL released joins it, a
 * close joins it) would deadlock. So the callback only copies the line into
 * a bounded queue (a mutex held for a memcpy, never while waiting for
 * anything) and wakes the emitter: a thread of ours that takes the GIL and
 * calls logger.log(). The queue holds FPY_LOG_QUEUE lines; more are counted
 * and reported as one "N log lines dropped" record.
 *
 * Levels: FFmpeg's (AV_LOG_*, which FP_LOG_* are) map to logging's: ERROR
 * and worse -> ERROR (PANIC/FATAL -> CRITICAL), WARNING -> WARNING, INFO ->
 * INFO, VERBOSE -> 15, DEBUG -> DEBUG. Lines below log_level() (default
 * WARNING) are dropped by the C library before formatting. URLs in lines
 * are already redacted by the C library (user-info shown as "***").
 *
 * The emitter stops at interpreter exit (atexit) and does not exist in a
 * forked child until the child logs (fpy_log_after_fork).
 */
#include "fpy.h"

#include <pthread.h>

#define FPY_LOG_QUEUE 256

#if PY_VERSION_HEX >= 0x030D0000
#define fpy_finalizing() Py_IsFinalizing()
#else
#define fpy_finalizing() _Py_IsFinalizing()
#endif

static PyObject *logger; /* logging.getLogger("framepool"), strong */
static int py_level = 30; /* logging.WARNING */

static int fp_to_py_level(int fp)
{
    if (fp <= 8)
        return 50; /* AV_LOG_PANIC, AV_LOG_FATAL: CRITICAL */
    if (fp <= 16)
        return 40;
    if (fp <= 24)
        return 30;
    if (fp <= 32)
        return 20;
    if (fp <= 40)
        return 15; /* AV_LOG_VERBOSE */
    return 10;
}

/* Handler calls under way on this thread (emit() nests when a handler
 * calls log_flush): a flush from inside a handler must not wait for the log
 * thread, which may itself be waiting for a lock this thread's handler holds. */
static _Thread_local int emit_depth;

/* Emits one line to the logger (GIL held). */
static void emit(int fp_level, const char *source, const char *line)
{
    if (!logger)
        return;
    emit_depth++;
    PyObject *extra = Py_BuildValue("{s:s}", "fp_source", source);
    PyObject *args = Py_BuildValue("(iss" "s)", fp_to_py_level(fp_level), "[%s] %s", source,
                                   line);
    PyObject *kw = extra ? Py_BuildValue("{s:O}", "extra", extra) : NULL;
    PyObject *meth = PyObject_GetAttrString(logger, "log");
    PyObject *r = meth && args && kw ? PyObject_Call(meth, args, kw) : NULL;
    emit_depth--;
    if (!r)
        PyErr_WriteUnraisable(logger);
    Py_XDECREF(r);
    Py_XDECREF(meth);
    Py_XDECREF(kw);
    Py_XDECREF(args);
    Py_XDECREF(extra);
}

typedef struct rec {
    int level;
    char source[32];
    char line[480];
} rec;

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv = PTHREAD_COND_INITIALIZER;
static rec q[FPY_LOG_QUEUE];
static unsigned q_head, q_len;
static unsigned long q_dropped;
static pthread_cond_t idle_cv = PTHREAD_COND_INITIALIZER;
static int emitter_running, emitter_quit;
static int inflight; /* the emitter holds a batch it has not emitted yet */
static pthread_t emitter;

/* Takes up to n queued records into out (q_lock held). */
static unsigned take(rec *out, unsigned n, unsigned long *dropped)
{
    unsigned k = 0;
    while (q_len && k < n) {
        out[k++] = q[q_head];
        q_head = (q_head + 1) % FPY_LOG_QUEUE;
        q_len--;
    }
    *dropped = q_dropped;
    q_dropped = 0;
    return k;
}

static void emit_batch(const rec *b, unsigned n, unsigned long dropped)
{
    for (unsigned i = 0; i < n; i++)
        emit(b[i].level, b[i].source, b[i].line);
    if (dropped) {
        char msg[96];
        snprintf(msg, sizeof msg, "%lu log lines dropped (the queue of %d was full)", dropped,
                 FPY_LOG_QUEUE);
        emit(FP_LOG_WARNING, "framepool", msg);
    }
}

static void *emitter_main(void *arg)
{
    (void)arg;
    static rec batch[32]; /* this thread's alone */
    pthread_mutex_lock(&q_lock);
    for (;;) {
        while (!q_len && !q_dropped && !emitter_quit)
            pthread_cond_wait(&q_cv, &q_lock);
        if (emitter_quit && !q_len && !q_dropped)
            break;
        unsigned long dropped;
        unsigned n = take(batch, 32, &dropped);
        inflight = 1;
        pthread_mutex_unlock(&q_lock); /* never wait for the GIL with the queue locked */
        if (!fpy_finalizing()) {
            PyGILState_STATE g = PyGILState_Ensure();
            emit_batch(batch, n, dropped);
            PyGILState_Release(g);
        }
        pthread_mutex_lock(&q_lock);
        inflight = 0;
        pthread_cond_broadcast(&idle_cv);
    }
    pthread_mutex_unlock(&q_lock);
    return NULL;
}

/* The C library's callback: any thread, no framepool lock held. Copies
 * and wakes the emitter; never calls Python. */
static void on_log(int level, const char *source, const char *line, void *user)
{
    (void)user;
    pthread_mutex_lock(&q_lock);
    if (!emitter_running && !emitter_quit) {
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, 256 * 1024);
        if (pthread_create(&emitter, &a, emitter_main, NULL) == 0)
            emitter_running = 1;
        pthread_attr_destroy(&a);
    }
    if (q_len == FPY_LOG_QUEUE) {
        q_dropped++;
    } else {
        rec *r = &q[(q_head + q_len) % FPY_LOG_QUEUE];
        r->level = level;
        snprintf(r->source, sizeof r->source, "%s", source ? source : "");
        snprintf(r->line, sizeof r->line, "%s", line ? line : "");
        q_len++;
    }
    pthread_cond_signal(&q_cv);
    pthread_mutex_unlock(&q_lock);
}

static int py_to_fp_level(int py)
{
    if (py >= 40)
        return FP_LOG_ERROR;
    if (py >= 30)
        return FP_LOG_WARNING;
    if (py >= 20)
        return FP_LOG_INFO;
    if (py > 10)
        return FP_LOG_VERBOSE;
    return FP_LOG_DEBUG;
}

/* atexit: stops the emitter (after emitting what is queued) while the
 * interpreter can still run the handlers. */
static PyObject *log_shutdown(PyObject *m, PyObject *noargs)
{
    (void)m;
    (void)noargs;
    fp_log_set_level(FP_LOG_QUIET);
    pthread_mutex_lock(&q_lock);
    int running = emitter_running;
    emitter_quit = 1;
    pthread_cond_signal(&q_cv);
    pthread_mutex_unlock(&q_lock);
    if (running) {
        Py_BEGIN_ALLOW_THREADS /* the emitter may be waiting for the GIL */
        pthread_join(emitter, NULL);
        Py_END_ALLOW_THREADS
        emitter_running = 0;
    }
    Py_RETURN_NONE;
}

static PyMethodDef shutdown_def = {"_log_shutdown", log_shutdown, METH_NOARGS,
                                   PyDoc_STR("_log_shutdown()\n--\n\natexit hook.")};

PyObject *fpy_log_flush(PyObject *module, PyObject *noargs)
{
    (void)module;
    (void)noargs;
    rec batch[16];
    long total = 0;
    for (;;) {
        unsigned long dropped;
        pthread_mutex_lock(&q_lock);
        unsigned n = take(batch, 16, &dropped);
        pthread_mutex_unlock(&q_lock);
        if (!n && !dropped)
            break;
        emit_batch(batch, n, dropped);
        total += n;
    }
    /* and the batch the emitter took, if any: emitted when this returns. Not
     * from inside a handler (on the emitter or any thread): logging's handlers
     * hold their lock while they emit, and the emitter may be waiting for that
     * very lock to emit its batch — waiting for it here would deadlock. */
    if (emit_depth > 0)
        return PyLong_FromLong(total);
    Py_BEGIN_ALLOW_THREADS /* the emitter needs the GIL to finish it */
    pthread_mutex_lock(&q_lock);
    while (inflight && !(emitter_running && pthread_equal(pthread_self(), emitter)))
        pthread_cond_wait(&idle_cv, &q_lock);
    pthread_mutex_unlock(&q_lock);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(total);
}

void fpy_log_before_fork(void)
{
    pthread_mutex_lock(&q_lock); /* the child gets a consistent, unlocked queue */
}

void fpy_log_after_fork(int child)
{
    if (child) {
        /* the emitter is the parent's; lines queued there are the parent's to emit */
        pthread_mutex_init(&q_lock, NULL);
        pthread_cond_init(&q_cv, NULL);
        pthread_cond_init(&idle_cv, NULL);
        inflight = 0;
        q_head = q_len = 0;
        q_dropped = 0;
        emitter_running = 0;
        emitter_quit = 0;
        return;
    }
    pthread_mutex_unlock(&q_lock);
}

static int log_install(PyObject *module)
{
    PyObject *fn = PyCFunction_NewEx(&shutdown_def, NULL, NULL);
    PyObject *atexit = fn ? PyImport_ImportModule("atexit") : NULL;
    PyObject *r = atexit ? PyObject_CallMethod(atexit, "register", "O", fn) : NULL;
    Py_XDECREF(atexit);
    Py_XDECREF(fn);
    if (!r)
        return -1;
    Py_DECREF(r);
    (void)module;
    fp_log_set_level(py_to_fp_level(py_level));
    fp_log_set_callback(on_log, NULL); /* the default hook it replaces never takes the GIL */
    return 0;
}

static void apply_level(int level)
{
    fp_log_set_level(py_to_fp_level(level));
}


int fpy_log_init(PyObject *module)
{
    PyObject *logging = PyImport_ImportModule("logging");
    if (!logging)
        return -1;
    logger = PyObject_CallMethod(logging, "getLogger", "s", "framepool");
    Py_DECREF(logging);
    if (!logger)
        return -1;
    return log_install(module);
}

PyObject *fpy_log_level(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    static char *kw[] = {"level", NULL};
    PyObject *level = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:log_level", kw, &level))
        return NULL;
    int old = py_level;
    if (level != Py_None) {
        long long v;
        if (fpy_arg_ll(level, "level", 0, 100, &v) < 0)
            return NULL;
        /* the logger's own level too: logging drops records below it */
        PyObject *r = logger ? PyObject_CallMethod(logger, "setLevel", "i", (int)v) : NULL;
        if (!r)
            return NULL;
        Py_DECREF(r);
        py_level = (int)v;
        apply_level(py_level);
    }
    return PyLong_FromLong(old);
}
