/*
 * python/reader.c — framepool.Reader: fp_reader as a Python iterator.
 *
 * Decoding runs with the GIL released, so threads iterating their own
 * readers decode in parallel.
 *
 * Ctrl-C. Python runs signal handlers only on the main thread, between
 * bytecodes: a main thread blocked in a read (a stalled network source)
 * would not see KeyboardInterrupt until the read returned. So on the main
 * thread a reader's blocking calls (open, next, seek) run on a helper
 * thread of the reader while the main thread waits in 50 ms slices and runs
 * PyErr_CheckSignals between them. When a handler raises, the main thread
 * calls fp_reader_interrupt (the read ends with FP_ECANCELED as soon as
 * FFmpeg checks its interrupt callback), waits up to 2 s for it, keeps a
 * frame that was decoded meanwhile for the next call, and raises the
 * handler's exception. A read that does not end within those 2 s (a
 * protocol that never checks the callback) is abandoned: the reader then
 * refuses further calls and its helper thread closes it when the read
 * returns. An open is interrupted the same way: the reader is made
 * (fp_reader_new) before the open runs on the helper (fp_reader_open_url),
 * and the header promises that fp_reader_interrupt ends an open blocked in
 * the network with FP_ECANCELED. Other
 * threads call the C functions directly (signals are not theirs to handle),
 * and so does the main thread for regular files and memory: their reads do
 * not block, so Ctrl-C is seen between two frames anyway, and the hand-off
 * to the helper (about 15 us per frame) is saved.
 *
 * max_held. The reader counts the Frames Python holds (each Frame owns one
 * image reference). A step raises LimitError when Python holds max_held
 * frames, not counting the last frame handed out when only one name refers
 * to it (the loop variable that the step rebinds): `for frame in reader`
 * works with max_held=1. The message names the Python lines that received
 * the frames still held. The C reader is opened with max_held + 1, so that
 * the loop variable's frame fits while the next one decodes.
 */
#include "fpy.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

/* ---- the helper thread -------------------------------------------------------------------- */

typedef struct rd_core rd_core;
typedef int (*rd_fn)(rd_core *c);

struct rd_core {
    pthread_mutex_t m;
    pthread_cond_t cv;
    pthread_t thread;
    int has_thread;
    int direct;        /* a regular file or memory: calls never block, no helper */
    rd_fn fn;          /* the call to run; NULL when idle */
    int done;          /* fn returned; result in rc */
    int quit;
    int orphaned;      /* the Python side is gone: clean up after the call */
    int rc;
    fp_reader *r;
    /* arguments */
    const char *url;
    const void *mem;
    size_t mem_len;
    fp_reader_options opts;
    double seek_to;
    int seek_flags;
    fp_image *img;
    const char *file, *func;
    int line;
};

static unsigned long main_ident;

static int op_open(rd_core *c)
{
    if (c->mem)
        return fp_reader_open_memory_at(c->mem, c->mem_len, &c->opts, &c->r, c->file, c->line,
                                        c->func);
    return fp_reader_open_url(c->r, c->url, &c->opts); /* c->r: made before the call */
}

static int op_next(rd_core *c)
{
    return fp_reader_next_at(c->r, &c->img, c->file, c->line, c->func);
}

static int op_seek(rd_core *c)
{
    return fp_reader_seek(c->r, c->seek_to, c->seek_flags);
}

static void core_free(rd_core *c)
{
    fp_unref(&c->img);
    fp_reader_close(&c->r);
    pthread_mutex_destroy(&c->m);
    pthread_cond_destroy(&c->cv);
    free(c);
}

static void *worker_main(void *arg)
{
    rd_core *c = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals belong to Python's main thread */
    pthread_mutex_lock(&c->m);
    for (;;) {
        while (!c->quit && (!c->fn || c->done))
            pthread_cond_wait(&c->cv, &c->m);
        if (c->quit)
            break;
        rd_fn fn = c->fn;
        pthread_mutex_unlock(&c->m);
        int rc = fn(c);
        pthread_mutex_lock(&c->m);
        c->rc = rc;
        c->done = 1;
        pthread_cond_broadcast(&c->cv);
        if (c->orphaned)
            break;
    }
    int orphaned = c->orphaned;
    pthread_mutex_unlock(&c->m);
    if (orphaned)
        core_free(c); /* nobody else refers to it any more */
    return NULL;
}

static rd_core *core_new(void)
{
    rd_core *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&c->m, NULL);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    return c;
}

/* Ends the core from the Python side: joins an idle helper and frees
 * everything, or leaves a busy helper to clean up after its call. */
static void core_release(rd_core *c)
{
    if (!c)
        return;
    if (c->has_thread) {
        pthread_mutex_lock(&c->m);
        int busy = c->fn && !c->done;
        if (busy) {
            c->orphaned = 1;
            pthread_mutex_unlock(&c->m);
            pthread_detach(c->thread);
            return;
        }
        c->quit = 1;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->m);
        pthread_join(c->thread, NULL); /* idle: returns at once, never needs the GIL */
    }
    core_free(c);
}

static int on_main_thread(void)
{
    return PyThread_get_thread_ident() == main_ident;
}

enum { RUN_INTERRUPTED = 1, RUN_ABANDONED = 2 };

/* Waits for the helper's call to finish, at most `ms` milliseconds (< 0:
 * forever), with the GIL released. Returns 1 when it finished. */
static int wait_done(rd_core *c, long ms)
{
    int done;
    Py_BEGIN_ALLOW_THREADS
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->m);
    while (!c->done) {
        if (pthread_cond_timedwait(&c->cv, &c->m, &dl) == ETIMEDOUT)
            break;
    }
    done = c->done;
    pthread_mutex_unlock(&c->m);
    Py_END_ALLOW_THREADS
    return done;
}

/* Runs fn(c) with the GIL released and returns its result in *rc. Returns
 * 0, or RUN_INTERRUPTED / RUN_ABANDONED with a Python exception set (a
 * signal handler raised; the call was interrupted and finished, or did not
 * finish within 2 s and belongs to the helper from now on). */
static int run(rd_core *c, rd_fn fn, int *rc)
{
    if (c->direct || !on_main_thread()) {
        int r;
        Py_BEGIN_ALLOW_THREADS
        r = fn(c);
        Py_END_ALLOW_THREADS
        *rc = r;
        return 0;
    }
    if (!c->has_thread) {
        int e = pthread_create(&c->thread, NULL, worker_main, c);
        if (e) { /* no helper: run here, not interruptible */
            int r;
            Py_BEGIN_ALLOW_THREADS
            r = fn(c);
            Py_END_ALLOW_THREADS
            *rc = r;
            return 0;
        }
        c->has_thread = 1;
    }
    pthread_mutex_lock(&c->m);
    c->fn = fn;
    c->done = 0;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->m);
    int how = 0;
    while (!wait_done(c, 50)) {
        if (PyErr_CheckSignals() < 0) {
            if (c->r)
                fp_reader_interrupt(c->r);
            if (!wait_done(c, 2000))
                return RUN_ABANDONED;
            how = RUN_INTERRUPTED;
            break;
        }
    }
    pthread_mutex_lock(&c->m);
    c->fn = NULL;
    *rc = c->rc;
    pthread_mutex_unlock(&c->m);
    return how;
}

/* ---- the Reader object ------------------------------------------------------------------------ */

struct FpyReader {
    PyObject_HEAD
    rd_core *core;
    PyObject *name;        /* source as given (str) or None for memory */
    Py_buffer mem;         /* memory source, kept while the reader lives */
    int has_mem;
    unsigned max_held;
    FpyFrame *frames;      /* live frames handed out */
    Py_ssize_t nframes;
    FpyFrame *last;        /* borrowed: the last frame handed out, while it lives */
    int busy;              /* a call is in progress (GIL released) */
    int stuck;             /* a read was abandoned after Ctrl-C */
    int close_pending;
    int interrupt_leftover; /* our fp_reader_interrupt was not consumed by a read */
    fp_image *pending;     /* result of an interrupted read, delivered next */
    int pending_rc;
    int has_pending;
    PyObject *weakreflist;
};

void fpy_reader_unlink(FpyFrame *f)
{
    FpyReader *rd = f->owner;
    if (f->prev)
        f->prev->next = f->next;
    else
        rd->frames = f->next;
    if (f->next)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
    f->owner = NULL;
    rd->nframes--;
    if (rd->last == f)
        rd->last = NULL;
}

static void link_frame(FpyReader *rd, FpyFrame *f)
{
    f->owner = rd;
    f->prev = NULL;
    f->next = rd->frames;
    if (rd->frames)
        rd->frames->prev = f;
    rd->frames = f;
    rd->nframes++;
    rd->last = f;
}

static void reader_do_close(FpyReader *rd)
{
    while (rd->frames)
        fpy_reader_unlink(rd->frames); /* frames stay valid: their pools outlive the reader */
    fp_unref(&rd->pending);
    rd->has_pending = 0;
    rd_core *c = rd->core;
    rd->core = NULL;
    int orphan_mem = 0;
    if (c && rd->stuck) {
        /* the abandoned call still runs on the helper: it frees the core */
        pthread_mutex_lock(&c->m);
        int busy = c->fn && !c->done;
        pthread_mutex_unlock(&c->m);
        orphan_mem = busy;
    }
    core_release(c);
    if (rd->has_mem && !orphan_mem)
        PyBuffer_Release(&rd->mem); /* else the helper may still read it: leave it */
    rd->has_mem = 0;
}

static int check_usable(FpyReader *rd)
{
    if (!rd->core) {
        PyErr_SetString(PyExc_ValueError, "operation on a closed reader");
        return -1;
    }
    if (rd->stuck) {
        PyErr_SetString(FpyError, "the reader is stuck in a read abandoned after an interrupt; "
                                  "close it");
        return -1;
    }
    if (rd->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the reader is in use by another thread (a reader is read by one thread "
                        "at a time; reader.interrupt() stops a blocked read)");
        return -1;
    }
    return 0;
}

static void set_site(rd_core *c)
{
    PyObject *file = NULL, *func = NULL;
    int line = 0;
    fpy_caller_site(&file, &line, &func);
    c->file = file ? fpy_intern(file) : "<python>";
    c->func = func ? fpy_intern(func) : "";
    c->line = line;
    Py_XDECREF(file);
    Py_XDECREF(func);
}

/* Raises LimitError naming the Python lines that hold this reader's frames. */
static PyObject *raise_limit(FpyReader *rd, Py_ssize_t held, const char *cmsg)
{
    PyObject *counts = PyDict_New(); /* "file:line" -> count, in first-seen order */
    if (!counts)
        return NULL;
    /* the list is newest first: walk to the end, then back, for oldest first */
    FpyFrame *f = rd->frames;
    while (f && f->next)
        f = f->next;
    for (; f; f = f->prev) {
        PyObject *key = f->site_file ? PyUnicode_FromFormat("%U:%d", f->site_file, f->site_line)
                                     : PyUnicode_FromString("<unknown>");
        if (!key)
            goto fail;
        PyObject *n = PyDict_GetItemWithError(counts, key);
        long k = n ? PyLong_AsLong(n) + 1 : 1;
        PyObject *v = PyLong_FromLong(k);
        if (!v || PyDict_SetItem(counts, key, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(key);
            goto fail;
        }
        Py_DECREF(v);
        Py_DECREF(key);
    }
    PyObject *lines = PyList_New(0);
    if (!lines)
        goto fail;
    PyObject *key, *val;
    Py_ssize_t pos = 0;
    while (PyDict_Next(counts, &pos, &key, &val)) {
        long k = PyLong_AsLong(val);
        PyObject *s = PyUnicode_FromFormat("  %U: %ld frame%s", key, k, k == 1 ? "" : "s");
        if (!s || PyList_Append(lines, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(lines);
            goto fail;
        }
        Py_DECREF(s);
    }
    PyObject *sep = PyUnicode_FromString("\n");
    PyObject *joined = sep ? PyUnicode_Join(sep, lines) : NULL;
    Py_XDECREF(sep);
    Py_DECREF(lines);
    if (!joined)
        goto fail;
    PyObject *msg = PyUnicode_FromFormat(
        "Python holds %zd frames of this reader, its max_held bound of %u: release frames "
        "(del, frame.release(), `with frame:`) before asking for more, copy the ones to keep "
        "(frame.copy()), or open the reader with a larger max_held.%s%s\n"
        "Frames held, by the line that received them:\n%U",
        held, rd->max_held, cmsg ? " framepool: " : "", cmsg ? cmsg : "", joined);
    Py_DECREF(joined);
    Py_DECREF(counts);
    if (msg) {
        fpy_raise_obj(FP_ELIMIT, msg);
        Py_DECREF(msg);
    }
    return NULL;
fail:
    Py_DECREF(counts);
    return NULL;
}


/* Runs one call on the reader's core. Returns 0 with *rc, or -1 with a
 * Python exception (a signal handler raised during the call). */
static int reader_run(FpyReader *rd, rd_fn fn, int *rc)
{
    for (;;) {
        rd->busy = 1;
        int how = run(rd->core, fn, rc);
        rd->busy = 0;
        if (how == RUN_ABANDONED) {
            rd->stuck = 1;
            return -1;
        }
        if (how == RUN_INTERRUPTED) {
            if (*rc != FP_ECANCELED)
                rd->interrupt_leftover = 1; /* the next C call would see our interrupt */
            if (fn == op_next && *rc != FP_ECANCELED) {
                rd->pending = rd->core->img; /* decoded meanwhile: delivered next */
                rd->core->img = NULL;
                rd->pending_rc = *rc;
                rd->has_pending = 1;
            }
            return -1;
        }
        if (*rc == FP_ECANCELED && rd->interrupt_leftover) {
            rd->interrupt_leftover = 0; /* our own, already raised as KeyboardInterrupt */
            continue;
        }
        return 0;
    }
}

static void finish_call(FpyReader *rd)
{
    if (rd->close_pending && !rd->busy) {
        rd->close_pending = 0;
        reader_do_close(rd);
    }
}

static PyObject *reader_error(FpyReader *rd, int rc)
{
    const char *msg = rd->core ? fp_reader_errmsg(rd->core->r) : NULL;
    return fpy_raise(rc, msg);
}

/* Frames Python holds, not counting the last one when only one name (the
 * loop variable a step rebinds) refers to it. */
static Py_ssize_t held_now(FpyReader *rd)
{
    Py_ssize_t held = rd->nframes;
    if (rd->last && Py_REFCNT(rd->last) == 1 && rd->last->exports == 0)
        held--;
    return held;
}

static PyObject *reader_next_frame(FpyReader *rd)
{
    if (check_usable(rd) < 0)
        return NULL;
    Py_ssize_t held = held_now(rd);
    if (held >= (Py_ssize_t)rd->max_held)
        return raise_limit(rd, rd->nframes, NULL);
    rd_core *c = rd->core;
    int rc;
    fp_image *img = NULL;
    if (rd->has_pending) {
        rc = rd->pending_rc;
        img = rd->pending;
        rd->pending = NULL;
        rd->has_pending = 0;
    } else {
        set_site(c);
        c->img = NULL;
        if (reader_run(rd, op_next, &rc) < 0) {
            finish_call(rd);
            return NULL;
        }
        img = c->img;
        c->img = NULL;
    }
    if (rc > 0 && img) {
        FpyFrame *f = fpy_frame_new(img);
        if (f)
            link_frame(rd, f);
        finish_call(rd);
        return (PyObject *)f;
    }
    fp_unref(&img);
    PyObject *res = NULL;
    if (rc == FP_EHELD)
        res = raise_limit(rd, rd->nframes, fp_reader_errmsg(c->r));
    else if (rc < 0)
        res = reader_error(rd, rc);
    finish_call(rd);
    return res; /* NULL without an exception: end of stream */
}

static PyObject *reader_iternext(FpyReader *rd)
{
    return reader_next_frame(rd);
}

static PyObject *reader_read(FpyReader *rd, PyObject *noargs)
{
    (void)noargs;
    PyObject *f = reader_next_frame(rd);
    if (!f && !PyErr_Occurred())
        Py_RETURN_NONE;
    return f;
}

static PyObject *reader_seek(FpyReader *rd, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"seconds", "precise", NULL};
    double t;
    int precise = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "d|p:seek", kw, &t, &precise))
        return NULL;
    if (check_usable(rd) < 0)
        return NULL;
    fp_unref(&rd->pending);
    rd->has_pending = 0;
    rd->core->seek_to = t;
    rd->core->seek_flags = precise ? FP_SEEK_PRECISE : FP_SEEK_KEY;
    int rc;
    if (reader_run(rd, op_seek, &rc) < 0) {
        finish_call(rd);
        return NULL;
    }
    PyObject *res = rc < 0 ? reader_error(rd, rc) : Py_NewRef(Py_None);
    finish_call(rd);
    return res;
}

static PyObject *reader_close(FpyReader *rd, PyObject *noargs)
{
    (void)noargs;
    if (rd->busy) { /* another thread is in a call: stop it, it closes after */
        fp_reader_interrupt(rd->core->r);
        rd->close_pending = 1;
        Py_RETURN_NONE;
    }
    reader_do_close(rd);
    Py_RETURN_NONE;
}

static PyObject *reader_interrupt(FpyReader *rd, PyObject *noargs)
{
    (void)noargs;
    if (rd->core && rd->core->r)
        fp_reader_interrupt(rd->core->r);
    Py_RETURN_NONE;
}

static PyObject *reader_enter(FpyReader *rd, PyObject *noargs)
{
    (void)noargs;
    if (!rd->core) {
        PyErr_SetString(PyExc_ValueError, "operation on a closed reader");
        return NULL;
    }
    return Py_NewRef(rd);
}

static PyObject *reader_exit(FpyReader *rd, PyObject *args)
{
    (void)args;
    return reader_close(rd, NULL);
}

static PyObject *reader_iter(PyObject *self)
{
    return Py_NewRef(self);
}

#define SET(d, k, v)                                      \
    do {                                                  \
        PyObject *v_ = (v);                               \
        if (!v_ || PyDict_SetItemString(d, k, v_) < 0) { \
            Py_XDECREF(v_);                               \
            Py_DECREF(d);                                 \
            return NULL;                                  \
        }                                                 \
        Py_DECREF(v_);                                    \
    } while (0)

static PyObject *reader_info(FpyReader *rd, void *closure)
{
    (void)closure;
    if (!rd->core) {
        PyErr_SetString(PyExc_ValueError, "operation on a closed reader");
        return NULL;
    }
    fp_reader_info i;
    int rc = fp_reader_info(rd->core->r, &i);
    if (rc < 0)
        return reader_error(rd, rc);
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    SET(d, "width", PyLong_FromLong(i.width));
    SET(d, "height", PyLong_FromLong(i.height));
    SET(d, "native_format", PyUnicode_FromString(i.av_format_name ? i.av_format_name : "?"));
    SET(d, "out_width", PyLong_FromLong(i.out_width));
    SET(d, "out_height", PyLong_FromLong(i.out_height));
    SET(d, "format", PyUnicode_FromString(fp_pixfmt_name(i.out_format)));
    SET(d, "fps", PyFloat_FromDouble(i.fps));
    SET(d, "duration", PyFloat_FromDouble(i.duration));
    SET(d, "frame_count", PyLong_FromLongLong(i.frame_count));
    SET(d, "time_base", Py_BuildValue("(ii)", i.time_base_num, i.time_base_den));
    SET(d, "sar", Py_BuildValue("(ii)", i.sar_num, i.sar_den));
    SET(d, "stream_index", PyLong_FromLong(i.stream_index));
    SET(d, "codec", PyUnicode_FromString(i.codec ? i.codec : "?"));
    SET(d, "container", PyUnicode_FromString(i.container ? i.container : "?"));
    SET(d, "threads", PyLong_FromLong(i.threads));
    SET(d, "zero_copy", PyBool_FromLong(i.zero_copy));
    SET(d, "decoder_buffers", PyLong_FromUnsignedLong(i.decoder_buffers));
    SET(d, "max_held", PyLong_FromUnsignedLong(rd->max_held));
    SET(d, "pool_max_buffers", PyLong_FromUnsignedLong(i.pool_max_buffers));
    SET(d, "out_pool_max_buffers", PyLong_FromUnsignedLong(i.out_pool_max_buffers));
    return d;
}

static PyObject *pool_stats_dict(const fp_pool_stats *s)
{
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    SET(d, "allocated", PyLong_FromUnsignedLongLong(s->allocated));
    SET(d, "outstanding", PyLong_FromUnsignedLongLong(s->outstanding));
    SET(d, "idle", PyLong_FromUnsignedLongLong(s->idle));
    SET(d, "peak", PyLong_FromUnsignedLongLong(s->peak));
    SET(d, "hits", PyLong_FromUnsignedLongLong(s->hits));
    SET(d, "misses", PyLong_FromUnsignedLongLong(s->misses));
    SET(d, "bytes", PyLong_FromUnsignedLongLong(s->bytes));
    SET(d, "idle_bytes", PyLong_FromUnsignedLongLong(s->idle_bytes));
    SET(d, "max_buffers", PyLong_FromUnsignedLong(s->max_buffers));
    return d;
}

static PyObject *reader_stats(FpyReader *rd, void *closure)
{
    (void)closure;
    if (!rd->core) {
        PyErr_SetString(PyExc_ValueError, "operation on a closed reader");
        return NULL;
    }
    if (rd->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the reader is in use by another thread");
        return NULL;
    }
    fp_reader_stats s;
    int rc = fp_reader_get_stats(rd->core->r, &s);
    if (rc < 0)
        return reader_error(rd, rc);
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    SET(d, "packets", PyLong_FromUnsignedLongLong(s.packets));
    SET(d, "decoded", PyLong_FromUnsignedLongLong(s.decoded));
    SET(d, "delivered", PyLong_FromUnsignedLongLong(s.delivered));
    SET(d, "skipped", PyLong_FromUnsignedLongLong(s.skipped));
    SET(d, "corrupt", PyLong_FromUnsignedLongLong(s.corrupt));
    SET(d, "decode_errors", PyLong_FromUnsignedLongLong(s.decode_errors));
    SET(d, "size_changes", PyLong_FromUnsignedLongLong(s.size_changes));
    SET(d, "loops", PyLong_FromUnsignedLongLong(s.loops));
    SET(d, "loops_replayed", PyLong_FromUnsignedLongLong(s.loops_replayed));
    SET(d, "held", PyLong_FromUnsignedLong(s.held));
    SET(d, "python_held", PyLong_FromSsize_t(rd->nframes));
    SET(d, "decoder_held", PyLong_FromUnsignedLong(s.decoder_held));
    SET(d, "pool", pool_stats_dict(&s.pool));
    SET(d, "out_pool", pool_stats_dict(&s.out_pool));
    /* live sources (zero otherwise) */
    SET(d, "reconnects", PyLong_FromUnsignedLongLong(s.reconnects));
    SET(d, "connects", PyLong_FromUnsignedLongLong(s.connects));
    SET(d, "dropped", PyLong_FromUnsignedLongLong(s.dropped));
    SET(d, "stalls", PyLong_FromUnsignedLongLong(s.stalls));
    SET(d, "connected", PyBool_FromLong(s.connected));
    SET(d, "age_last", PyFloat_FromDouble(s.age_last));
    SET(d, "age_max", PyFloat_FromDouble(s.age_max));
    return d;
}

static PyObject *reader_closed(FpyReader *rd, void *closure)
{
    (void)closure;
    return PyBool_FromLong(rd->core == NULL);
}

static PyObject *reader_held(FpyReader *rd, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(rd->nframes);
}

static PyObject *reader_get_max_held(FpyReader *rd, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLong(rd->max_held);
}

static PyObject *reader_repr(FpyReader *rd)
{
    if (!rd->core)
        return PyUnicode_FromFormat("<framepool.Reader %R closed>", rd->name);
    fp_reader_info i;
    if (fp_reader_info(rd->core->r, &i) < 0)
        return PyUnicode_FromFormat("<framepool.Reader %R>", rd->name);
    return PyUnicode_FromFormat("<framepool.Reader %R %dx%d %s %s -> %dx%d %s, %zd held of %u>",
                                rd->name, i.width, i.height, i.codec ? i.codec : "?",
                                i.av_format_name ? i.av_format_name : "?", i.out_width,
                                i.out_height, fp_pixfmt_name(i.out_format), rd->nframes,
                                rd->max_held);
}

static void reader_dealloc(FpyReader *rd)
{
    PyObject_GC_UnTrack(rd);
    if (rd->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)rd);
    reader_do_close(rd);
    Py_CLEAR(rd->name);
    PyObject_GC_Del(rd);
}

static int reader_traverse(FpyReader *rd, visitproc visit, void *arg)
{
    Py_VISIT(rd->name);
    return 0;
}

static PyMethodDef reader_methods[] = {
    {"read", (PyCFunction)reader_read, METH_NOARGS,
     PyDoc_STR("The next Frame, or None at the end of the stream.")},
    {"seek", (PyCFunction)(void (*)(void))reader_seek, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("seek(seconds, precise=True): the next frame is the first at or after "
               "`seconds` (precise) or the key frame before it (precise=False).")},
    {"close", (PyCFunction)reader_close, METH_NOARGS,
     PyDoc_STR("Closes the reader; frames still held stay valid.")},
    {"interrupt", (PyCFunction)reader_interrupt, METH_NOARGS,
     PyDoc_STR("From any thread: makes a blocked read raise CancelledError.")},
    {"__enter__", (PyCFunction)reader_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)reader_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef reader_getset[] = {
    {"info", (getter)reader_info, NULL, PyDoc_STR("dict: source, output, pools"), NULL},
    {"stats", (getter)reader_stats, NULL, PyDoc_STR("dict: counters and pool statistics"), NULL},
    {"closed", (getter)reader_closed, NULL, NULL, NULL},
    {"held", (getter)reader_held, NULL, PyDoc_STR("frames of this reader Python holds"), NULL},
    {"max_held", (getter)reader_get_max_held, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject FpyReader_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "framepool.Reader",
    .tp_doc = PyDoc_STR("A video reader: iterate for Frames (framepool.open(...))."),
    .tp_basicsize = sizeof(FpyReader),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_traverse = (traverseproc)reader_traverse,
    .tp_weaklistoffset = offsetof(FpyReader, weakreflist),
    .tp_repr = (reprfunc)reader_repr,
    .tp_iter = reader_iter,
    .tp_iternext = (iternextfunc)reader_iternext,
    .tp_methods = reader_methods,
    .tp_getset = reader_getset,
};

/* ---- framepool.open ---------------------------------------------------------------------------- */

static int parse_size(PyObject *size, int *w, int *h)
{
    *w = *h = 0;
    if (!size || size == Py_None)
        return 0;
    PyObject *ws = NULL, *hs = NULL;
    if (!PyArg_ParseTuple(size, "OO;size must be (width, height)", &ws, &hs))
        return -1;
    if (ws != Py_None && (*w = _PyLong_AsInt(ws)) == -1 && PyErr_Occurred())
        return -1;
    if (hs != Py_None && (*h = _PyLong_AsInt(hs)) == -1 && PyErr_Occurred())
        return -1;
    if (*w < 0 || *h < 0) {
        PyErr_SetString(PyExc_ValueError, "size must be non-negative (0 or None keeps it)");
        return -1;
    }
    return 0;
}

/* live=None/False: a file-like reader; "latest" or "all"; or a dict with
 * "mode" and any of "queue", "reconnect_min", "reconnect_max",
 * "max_reconnects", "stall", "repeat_ok" (fp_live_options). Events are not
 * delivered to Python (the reader's thread would need the GIL); their
 * counts are in reader.stats. */
static int parse_live_mode(PyObject *v, fp_live_mode *mode)
{
    const char *s = PyUnicode_Check(v) ? PyUnicode_AsUTF8(v) : NULL;
    if (s && !strcmp(s, "latest")) {
        *mode = FP_LIVE_LATEST;
        return 0;
    }
    if (s && !strcmp(s, "all")) {
        *mode = FP_LIVE_ALL;
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "live mode must be 'latest' or 'all', not %R", v);
    return -1;
}

static int parse_live(PyObject *live, fp_live_options *out)
{
    memset(out, 0, sizeof *out);
    if (live == Py_None || live == Py_False)
        return 0;
    if (!PyDict_Check(live))
        return parse_live_mode(live, &out->mode);
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    int have_mode = 0;
    while (PyDict_Next(live, &pos, &key, &value)) {
        const char *k = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        double d = 0;
        long l = 0;
        if (!k) {
            PyErr_SetString(PyExc_TypeError, "live options: keys must be strings");
            return -1;
        }
        if (!strcmp(k, "mode")) {
            if (parse_live_mode(value, &out->mode) < 0)
                return -1;
            have_mode = 1;
            continue;
        }
        int is_double = !strcmp(k, "reconnect_min") || !strcmp(k, "reconnect_max") ||
                        !strcmp(k, "stall");
        if (is_double) {
            d = PyFloat_AsDouble(value);
            if (d == -1.0 && PyErr_Occurred())
                return -1;
            if (!(d >= 0)) {
                PyErr_Format(PyExc_ValueError, "live option %s must be >= 0", k);
                return -1;
            }
        } else {
            l = PyLong_AsLong(value);
            if (l == -1 && PyErr_Occurred())
                return -1;
            if (l < 0 || l > 1000000) {
                PyErr_Format(PyExc_ValueError, "live option %s out of range: %ld", k, l);
                return -1;
            }
        }
        if (!strcmp(k, "reconnect_min"))
            out->reconnect_min = d;
        else if (!strcmp(k, "reconnect_max"))
            out->reconnect_max = d;
        else if (!strcmp(k, "stall"))
            out->stall = d;
        else if (!strcmp(k, "queue"))
            out->queue = (unsigned)l;
        else if (!strcmp(k, "max_reconnects"))
            out->max_reconnects = (int)l;
        else if (!strcmp(k, "repeat_ok"))
            out->repeat_ok = l != 0;
        else {
            PyErr_Format(PyExc_ValueError,
                         "unknown live option '%s' (mode, queue, reconnect_min, reconnect_max, "
                         "max_reconnects, stall, repeat_ok)",
                         k);
            return -1;
        }
    }
    if (!have_mode) {
        PyErr_SetString(PyExc_ValueError, "live options need a 'mode' ('latest' or 'all')");
        return -1;
    }
    return 0;
}

PyObject *fpy_open(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    static char *kw[] = {"source", "format", "size", "every", "start", "end", "threads",
                         "max_held", "live", "timeout", "stream", "convert_ahead", "prefill",
                         "av_options", "loop", "loop_cache", NULL};
    PyObject *source, *format = Py_None, *size = Py_None, *end = Py_None, *live = Py_None;
    PyObject *timeout = Py_None, *stream = Py_None;
    const char *av_options = NULL;
    int every = 1, threads = 0, convert_ahead = 0, prefill = 0, loop = 0;
    long long loop_cache = 0;
    unsigned max_held = FP_READER_DEFAULT_MAX_HELD;
    double start = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$OOidOiIOOOppziL:open", kw, &source, &format,
                                     &size, &every, &start, &end, &threads, &max_held, &live,
                                     &timeout, &stream, &convert_ahead, &prefill, &av_options,
                                     &loop, &loop_cache))
        return NULL;
    fp_reader_options o;
    memset(&o, 0, sizeof o);
    o.av_options = av_options; /* copied by the open */
    if (format != Py_None) {
        const char *fs = PyUnicode_AsUTF8(format);
        if (!fs)
            return NULL;
        o.format = fp_pixfmt_from_name(fs);
        if (o.format == FP_PIX_NONE && strcmp(fs, "native") != 0) {
            PyErr_Format(PyExc_ValueError,
                         "unknown format %R (gray8, bgr24, rgb24, bgra, rgba, yuv420p, nv12, "
                         "yuv422p, yuv444p, yuv420p10, or None for the native format)",
                         format);
            return NULL;
        }
    }
    if (parse_size(size, &o.width, &o.height) < 0)
        return NULL;
    if (every < 1) {
        PyErr_SetString(PyExc_ValueError, "every must be >= 1");
        return NULL;
    }
    if (max_held < 1 || max_held > 4095) {
        PyErr_SetString(PyExc_ValueError, "max_held must be between 1 and 4095");
        return NULL;
    }
    if (parse_live(live, &o.live) < 0)
        return NULL;
    o.every = every;
    o.start = start;
    if (end != Py_None && (o.end = PyFloat_AsDouble(end)) == -1.0 && PyErr_Occurred())
        return NULL;
    o.threads = threads;
    o.max_held = max_held + 1; /* + the loop variable's frame while the next decodes */
    if (timeout != Py_None) {
        double t = PyFloat_AsDouble(timeout);
        if (t == -1.0 && PyErr_Occurred())
            return NULL;
        o.timeout_us = (int64_t)(t * 1e6);
        if (o.timeout_us <= 0)
            o.timeout_us = 1;
    }
    if (stream != Py_None) {
        o.stream = _PyLong_AsInt(stream);
        if (o.stream == -1 && PyErr_Occurred())
            return NULL;
        o.stream_set = 1;
    }
    o.convert_ahead = convert_ahead;
    o.prefill = prefill;
    o.loop = loop; /* checked by the open: -1 forever, N more passes */
    o.loop_cache = loop_cache; /* checked by the open: 0 default, N bytes, -1 never */

    FpyReader *rd = PyObject_GC_New(FpyReader, &FpyReader_Type);
    if (!rd)
        return NULL;
    rd->core = NULL;
    rd->name = NULL;
    rd->has_mem = 0;
    rd->max_held = max_held;
    rd->frames = rd->last = NULL;
    rd->nframes = 0;
    rd->busy = rd->stuck = rd->close_pending = rd->interrupt_leftover = 0;
    rd->pending = NULL;
    rd->pending_rc = 0;
    rd->has_pending = 0;
    rd->weakreflist = NULL;
    PyObject_GC_Track(rd);

    PyObject *path = NULL;
    if (PyObject_CheckBuffer(source) && !PyUnicode_Check(source)) {
        if (PyObject_GetBuffer(source, &rd->mem, PyBUF_SIMPLE) < 0)
            goto fail;
        rd->has_mem = 1;
        rd->name = PyUnicode_FromFormat("<%zd bytes>", rd->mem.len);
    } else {
        if (!PyUnicode_FSConverter(source, &path))
            goto fail;
        rd->name = PyUnicode_DecodeFSDefault(PyBytes_AS_STRING(path));
    }
    if (!rd->name)
        goto fail;
    rd->core = core_new();
    if (!rd->core) {
        PyErr_NoMemory();
        goto fail;
    }
    rd_core *c = rd->core;
    c->opts = o;
    c->url = path ? PyBytes_AS_STRING(path) : NULL;
    c->mem = rd->has_mem ? rd->mem.buf : NULL;
    c->mem_len = rd->has_mem ? (size_t)rd->mem.len : 0;
    struct stat st;
    c->direct = rd->has_mem || (path && stat(PyBytes_AS_STRING(path), &st) == 0 &&
                                S_ISREG(st.st_mode));
    set_site(c);
    int rc;
    if (!c->mem && fp_reader_new_at(&c->r, c->file, c->line, c->func) != 0) {
        PyErr_NoMemory();
        goto fail;
    }
    if (reader_run(rd, op_open, &rc) < 0) {
        if (rd->stuck)
            Py_XINCREF(path); /* the abandoned open still reads the path: leave it */
        goto fail;
    }
    c->url = NULL;
    Py_CLEAR(path);
    if (rc < 0) {
        reader_error(rd, rc);
        goto fail;
    }
    return (PyObject *)rd;
fail:
    Py_XDECREF(path);
    Py_DECREF(rd);
    return NULL;
}

int fpy_reader_init(void)
{
    PyObject *threading = PyImport_ImportModule("threading");
    if (!threading)
        return -1;
    PyObject *mt = PyObject_CallMethod(threading, "main_thread", NULL);
    Py_DECREF(threading);
    if (!mt)
        return -1;
    PyObject *ident = PyObject_GetAttrString(mt, "ident");
    Py_DECREF(mt);
    if (!ident)
        return -1;
    main_ident = PyLong_AsUnsignedLong(ident);
    Py_DECREF(ident);
    return PyErr_Occurred() ? -1 : 0;
}
