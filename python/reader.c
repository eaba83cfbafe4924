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
#include <limits.h>
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
    /* owned copies: an open abandoned after Ctrl-C still reads them */
    char *url_copy, *av_options_copy;
    fp_budget *budget; /* +1: opts.budget, held while the open may still read it */
    /* a live source's FP_LIVE_GAVE_UP, recorded by on_live_event (under m) */
    int gave_up, gave_up_error, gave_up_attempts;
    char gave_up_msg[320];
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
    fp_reader_close(&c->r); /* joins a live reader's thread: no event after this */
    pthread_mutex_destroy(&c->m);
    pthread_cond_destroy(&c->cv);
    free(c->url_copy);
    free(c->av_options_copy);
    fp_unref(&c->budget);
    free(c);
}

/* A live reader's events, on its thread with no framepool lock held: only
 * the give-up is kept (in C, no Python), for read() to raise with. */
static void on_live_event(const fp_live_event *ev, void *user)
{
    rd_core *c = user;
    if (ev->type != FP_LIVE_GAVE_UP)
        return;
    pthread_mutex_lock(&c->m);
    c->gave_up = 1;
    c->gave_up_error = ev->error;
    c->gave_up_attempts = ev->attempt;
    snprintf(c->gave_up_msg, sizeof c->gave_up_msg, "%s", ev->message ? ev->message : "");
    pthread_mutex_unlock(&c->m);
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
    int live;              /* opened with live= */
    int inherited;         /* the parent's, seen in a forked child: abandoned */
    unsigned long gen;     /* fpy_fork_gen at the open */
    FpyReader *all_prev, *all_next; /* every Reader object (readers(), fork) */
    PyObject *weakreflist;
};

static FpyReader *all_readers; /* guarded by the GIL */

static void registry_add(FpyReader *rd)
{
    rd->all_prev = NULL;
    rd->all_next = all_readers;
    if (all_readers)
        all_readers->all_prev = rd;
    all_readers = rd;
}

static void registry_remove(FpyReader *rd)
{
    if (rd->all_prev)
        rd->all_prev->all_next = rd->all_next;
    else if (all_readers == rd)
        all_readers = rd->all_next;
    if (rd->all_next)
        rd->all_next->all_prev = rd->all_prev;
    rd->all_prev = rd->all_next = NULL;
}

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
    if (rd->inherited) {
        /* A forked child's copy of the parent's reader: its threads exist only
         * in the parent and its locks may be held there: abandon it as it is. */
        rd->pending = NULL;
        rd->has_pending = 0;
        rd->core = NULL;
        if (rd->has_mem)
            PyBuffer_Release(&rd->mem);
        rd->has_mem = 0;
        return;
    }
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
    if (rd->inherited) {
        PyErr_SetString(FpyError,
                        "this reader was opened by the parent process and inherited through "
                        "fork: a child cannot use it (its threads are the parent's); open the "
                        "source again in the child");
        return -1;
    }
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
    fpy_caller_site_interned(&c->file, &c->line, &c->func);
}

/* Adds one to counts[key] (a dict of str -> int). */
static int count_key(PyObject *counts, PyObject *key)
{
    PyObject *n = PyDict_GetItemWithError(counts, key);
    if (!n && PyErr_Occurred())
        return -1;
    long k = n ? PyLong_AsLong(n) + 1 : 1;
    PyObject *v = PyLong_FromLong(k);
    int rc = v ? PyDict_SetItem(counts, key, v) : -1;
    Py_XDECREF(v);
    return rc;
}

/* Raises LimitError naming the Python lines that hold this reader's frames:
 * the line that received each frame and, for frames pinned by views, the
 * lines that took the views (np.asarray, memoryview, frame.planes). */
static PyObject *raise_limit(FpyReader *rd, Py_ssize_t held, const char *cmsg)
{
    /* "file:line" -> {"frames": n, "views": {"file:line": n}}, first-seen order */
    PyObject *by_line = PyDict_New();
    PyObject *lines = NULL, *msg = NULL;
    Py_ssize_t pinned = 0;
    if (!by_line)
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
        PyObject *entry = PyDict_GetItemWithError(by_line, key); /* borrowed */
        if (!entry) {
            entry = PyErr_Occurred() ? NULL : Py_BuildValue("{s:i,s:N}", "frames", 0, "views",
                                                            PyDict_New());
            if (!entry || PyDict_SetItem(by_line, key, entry) < 0) {
                Py_XDECREF(entry);
                Py_DECREF(key);
                goto fail;
            }
            Py_DECREF(entry); /* the dict holds it */
        }
        Py_DECREF(key);
        PyObject *fk = PyUnicode_FromString("frames");
        int bad = !fk || count_key(entry, fk) < 0;
        Py_XDECREF(fk);
        if (bad)
            goto fail;
        PyObject *views = PyDict_GetItemString(entry, "views");
        PyObject *sites = fpy_frame_view_sites(f); /* list of "file:line" */
        if (!sites)
            goto fail;
        if (PyList_GET_SIZE(sites))
            pinned++;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sites); i++)
            if (count_key(views, PyList_GET_ITEM(sites, i)) < 0) {
                Py_DECREF(sites);
                goto fail;
            }
        Py_DECREF(sites);
    }
    lines = PyList_New(0);
    if (!lines)
        goto fail;
    PyObject *key, *entry;
    Py_ssize_t pos = 0;
    while (PyDict_Next(by_line, &pos, &key, &entry)) {
        long k = PyLong_AsLong(PyDict_GetItemString(entry, "frames"));
        PyObject *s = PyUnicode_FromFormat("  %U: %ld frame%s", key, k, k == 1 ? "" : "s");
        if (!s || PyList_Append(lines, s) < 0) {
            Py_XDECREF(s);
            goto fail;
        }
        Py_DECREF(s);
        PyObject *views = PyDict_GetItemString(entry, "views");
        PyObject *vkey, *vn;
        Py_ssize_t vpos = 0;
        while (PyDict_Next(views, &vpos, &vkey, &vn)) {
            long n = PyLong_AsLong(vn);
            s = PyUnicode_FromFormat("    held by a view taken at %U (%ld view%s)", vkey, n,
                                     n == 1 ? "" : "s");
            if (!s || PyList_Append(lines, s) < 0) {
                Py_XDECREF(s);
                goto fail;
            }
            Py_DECREF(s);
        }
    }
    PyObject *sep = PyUnicode_FromString("\n");
    PyObject *joined = sep ? PyUnicode_Join(sep, lines) : NULL;
    Py_XDECREF(sep);
    if (!joined)
        goto fail;
    msg = PyUnicode_FromFormat(
        "Python holds %zd frames of this reader, its max_held bound of %u: release frames "
        "(del, frame.release(), `with frame:`) before asking for more, copy the ones to keep "
        "(frame.copy()), or open the reader with a larger max_held.%s%s\n"
        "Frames held, by the line that received them:\n%U%s",
        held, rd->max_held, cmsg ? " framepool: " : "", cmsg ? cmsg : "", joined,
        pinned ? "\nViews pin frames: a numpy array, memoryview or plane of a frame "
                 "(np.asarray(frame), memoryview(frame), frame.planes) keeps the frame held "
                 "until the view is deleted; copy the pixels (np.array(frame)) to keep them "
                 "without holding the frame."
               : "");
    Py_DECREF(joined);
    if (msg) {
        fpy_raise_obj(FP_EHELD, msg);
        Py_DECREF(msg);
    }
fail:
    Py_XDECREF(lines);
    Py_DECREF(by_line);
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

/* A live reader ends only when it gave up (max_reconnects tries failed in a
 * row): that is an error with its reason, not an end of stream. */
static PyObject *raise_gave_up(FpyReader *rd)
{
    rd_core *c = rd->core;
    char why[320];
    pthread_mutex_lock(&c->m);
    int code = c->gave_up ? c->gave_up_error : 0, attempts = c->gave_up_attempts;
    snprintf(why, sizeof why, "%s", c->gave_up ? c->gave_up_msg : "");
    pthread_mutex_unlock(&c->m);
    if (!why[0])
        snprintf(why, sizeof why, "%s", fp_reader_errmsg(c->r));
    if (code >= 0 || code == FP_ECANCELED)
        code = FP_EIO;
    PyObject *msg = PyUnicode_FromFormat(
        "the live source gave up after %d failed tries in a row (live max_reconnects): %s",
        attempts, why[0] ? why : "no reason given");
    if (!msg)
        return NULL;
    fpy_raise_obj(code, msg);
    Py_DECREF(msg);
    return NULL;
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
    else if (rc == 0 && rd->live)
        res = raise_gave_up(rd);
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
    PyObject *seconds;
    double t;
    int precise = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:seek", kw, &seconds, &precise))
        return NULL;
    if (fpy_arg_double(seconds, "seconds", 0, FPY_MAX_SECONDS, &t) < 0)
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
    if (rd->busy && !rd->inherited) { /* another thread is in a call: stop it, it closes after */
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
    if (!rd->inherited && rd->core && rd->core->r)
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

/* info, stats and repr read the reader's fields, which a decode running on
 * another thread with the GIL released changes (size, stream, pools): they
 * follow the busy rule of every other call. */
static int check_readable(FpyReader *rd)
{
    if (rd->inherited || !rd->core)
        return check_usable(rd);
    if (rd->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the reader is in use by another thread (info and stats are read by "
                        "the thread that reads the frames, between reads)");
        return -1;
    }
    return 0;
}

static PyObject *reader_info(FpyReader *rd, void *closure)
{
    (void)closure;
    if (check_readable(rd) < 0)
        return NULL;
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
    if (check_readable(rd) < 0)
        return NULL;
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
    SET(d, "queued", PyLong_FromUnsignedLong(s.queued));
    SET(d, "budget_drops", PyLong_FromUnsignedLongLong(s.budget_drops));
    SET(d, "packets_dropped", PyLong_FromUnsignedLongLong(s.packets_dropped));
    SET(d, "packets_queued", PyLong_FromUnsignedLong(s.packets_queued));
    SET(d, "first_frame", PyFloat_FromDouble(s.first_frame));
    SET(d, "wrapped", PyLong_FromUnsignedLongLong(s.wrapped));
    return d;
}

static PyObject *reader_closed(FpyReader *rd, void *closure)
{
    (void)closure;
    return PyBool_FromLong(rd->core == NULL || rd->inherited);
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
    if (rd->inherited)
        return PyUnicode_FromFormat("<framepool.Reader %R inherited from the parent process>",
                                    rd->name);
    if (!rd->core)
        return PyUnicode_FromFormat("<framepool.Reader %R closed>", rd->name);
    if (rd->busy) /* its fields change under a decode on another thread */
        return PyUnicode_FromFormat("<framepool.Reader %R busy in another thread, %zd held of %u>",
                                    rd->name, rd->nframes, rd->max_held);
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
    registry_remove(rd);
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
     PyDoc_STR("read($self, /)\n--\n\n"
               "The next Frame, or None at the end of a file. A live reader never ends: "
               "when it gives up (live max_reconnects) this raises the reason (a "
               "framepool.Error subclass, e.g. InputOutputError). Also raises LimitError "
               "(max_held), TimeoutError (timeout=), CancelledError (interrupt()), "
               "RuntimeError (another thread is using the reader), ValueError (closed).")},
    {"seek", (PyCFunction)(void (*)(void))reader_seek, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("seek($self, /, seconds, precise=True)\n--\n\n"
               "seconds: a finite number in [0, 1e9]. The next frame is the first at or "
               "after `seconds` (precise) or the key frame before it (precise=False). "
               "InvalidError for a live reader; InputOutputError when the input cannot "
               "seek.")},
    {"close", (PyCFunction)reader_close, METH_NOARGS,
     PyDoc_STR("close($self, /)\n--\n\n"
               "Closes the reader; frames still held stay valid. From another thread while "
               "a read runs: interrupts it and closes when it returns.")},
    {"interrupt", (PyCFunction)reader_interrupt, METH_NOARGS,
     PyDoc_STR("interrupt($self, /)\n--\n\n"
               "From any thread: makes a blocked read (or the next one) raise "
               "CancelledError. The reader stays usable.")},
    {"__enter__", (PyCFunction)reader_enter, METH_NOARGS,
     PyDoc_STR("__enter__($self, /)\n--\n\nReturns the reader.")},
    {"__exit__", (PyCFunction)reader_exit, METH_VARARGS,
     PyDoc_STR("__exit__($self, exc_type=None, exc=None, tb=None, /)\n--\n\nCloses the reader.")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef reader_getset[] = {
    {"info", (getter)reader_info, NULL,
     PyDoc_STR(
         "dict describing the stream and the output (RuntimeError while another thread "
         "reads):\n"
         "width, height: decoded (source) frame size; native_format: the decoder's pixel "
         "format name (e.g. 'yuv420p'); out_width, out_height, format: what frames are "
         "delivered as; fps: average frame rate (0.0 if unknown); duration: seconds (0.0 if "
         "unknown); frame_count: estimate (-1 if unknown); time_base: (num, den) of "
         "Frame.pts; sar: sample aspect ratio (num, den), (0, 1) if unknown; stream_index; "
         "codec: decoder name (e.g. 'h264'); container: demuxer name; threads: decoder "
         "threads in use; zero_copy: native frames decoded straight into framepool pools; "
         "decoder_buffers: buffers the decoder may hold; max_held: the open's max_held; "
         "pool_max_buffers, out_pool_max_buffers: caps of the decoder and conversion "
         "pools."),
     NULL},
    {"stats", (getter)reader_stats, NULL,
     PyDoc_STR(
         "dict of counters (RuntimeError while another thread reads):\n"
         "packets: packets sent to the decoder; decoded: frames out of the decoder; "
         "delivered: frames handed out; skipped: decoded frames dropped by every/start/end/"
         "precise seek; corrupt: frames with concealed errors; decode_errors: packets or "
         "frames the decoder rejected; size_changes: mid-stream resolution changes; loops: "
         "rewinds for loop=; loops_replayed: passes replayed from memory (loop_cache); held: "
         "frames handed out and not released (C's count); python_held: Frames of this reader "
         "alive in Python; decoder_held: pool buffers only the decoder references; pool, "
         "out_pool: dicts of the decoder and conversion pools (allocated, outstanding, idle, "
         "peak, hits, misses, bytes, idle_bytes, max_buffers).\n"
         "Live sources (0 otherwise): connects: connections that delivered a frame "
         "(CONNECTED); reconnects: connection tries after the first, successful or not; "
         "dropped: LATEST's frames replaced by a newer one before they were read; stalls: "
         "stalls detected; "
         "connected: a connection delivered its first frame and is open now; age_last: "
         "seconds between arrival and delivery of the last frame; "
         "age_max: the largest age_last; queued: frames waiting in the live queue now; "
         "budget_drops: frames lost because a pool could not grow (a shared budget was "
         "full); packets_dropped: packets dropped undecoded (LATEST skipping to a newer "
         "keyframe, ALL a GOP at a time when the live buffer was full); packets_queued: "
         "packets waiting to be decoded now; first_frame: seconds from the last "
         "connection's open to its first frame; wrapped: frames delivered by wrapping FFmpeg memory (decoders without "
         "direct rendering)."),
     NULL},
    {"closed", (getter)reader_closed, NULL,
     PyDoc_STR("bool: closed (or inherited from the parent process through fork)"), NULL},
    {"held", (getter)reader_held, NULL, PyDoc_STR("int: frames of this reader Python holds"),
     NULL},
    {"max_held", (getter)reader_get_max_held, NULL,
     PyDoc_STR("int: the open's max_held bound"), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject FpyReader_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "framepool.Reader",
    .tp_doc = PyDoc_STR("A video reader: iterate it for Frames; made by framepool.open(...), "
                        "not called directly. A context manager (closes on exit)."),
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
    if (!PyTuple_Check(size) && !PyList_Check(size)) {
        PyErr_Format(PyExc_TypeError,
                     "size must be a (width, height) tuple (0 or None keeps one side's aspect), "
                     "not %.80s",
                     Py_TYPE(size)->tp_name);
        return -1;
    }
    if (PySequence_Fast_GET_SIZE(size) != 2) {
        PyErr_Format(PyExc_ValueError, "size must be (width, height), not %zd items",
                     PySequence_Fast_GET_SIZE(size));
        return -1;
    }
    PyObject *ws = PySequence_Fast_GET_ITEM(size, 0), *hs = PySequence_Fast_GET_ITEM(size, 1);
    long long v;
    if (ws != Py_None) {
        if (fpy_arg_ll(ws, "size width", 0, FP_MAX_DIMENSION, &v) < 0)
            return -1;
        *w = (int)v;
    }
    if (hs != Py_None) {
        if (fpy_arg_ll(hs, "size height", 0, FP_MAX_DIMENSION, &v) < 0)
            return -1;
        *h = (int)v;
    }
    return 0;
}

/* live=None/False: a file-like reader; "latest" or "all"; or a dict with
 * "mode" and any of "queue", "reconnect_min", "reconnect_max",
 * "max_reconnects", "stall", "repeat_ok", "open_timeout", "buffer"
 * (fp_live_options). Events are not
 * delivered to Python (the reader's thread would need the GIL); their
 * counts are in reader.stats, and a give-up is raised by the next read. */
static int parse_live_mode(PyObject *v, fp_live_mode *mode)
{
    const char *s = PyUnicode_Check(v) ? PyUnicode_AsUTF8(v) : NULL;
    if (!s && PyErr_Occurred())
        return -1;
    if (s && !strcmp(s, "latest")) {
        *mode = FP_LIVE_LATEST;
        return 0;
    }
    if (s && !strcmp(s, "all")) {
        *mode = FP_LIVE_ALL;
        return 0;
    }
    PyErr_Format(PyUnicode_Check(v) || PyDict_Check(v) ? PyExc_ValueError : PyExc_TypeError,
                 "live mode must be 'latest' or 'all' (or a dict with 'mode'), not %R", v);
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
        long long l = 0;
        char name[64];
        if (!k) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "live options: keys must be strings");
            return -1;
        }
        snprintf(name, sizeof name, "live %s", k);
        if (!strcmp(k, "mode")) {
            if (parse_live_mode(value, &out->mode) < 0)
                return -1;
            have_mode = 1;
        } else if (!strcmp(k, "reconnect_min") || !strcmp(k, "reconnect_max") ||
                   !strcmp(k, "stall") || !strcmp(k, "open_timeout")) {
            if (fpy_arg_double(value, name, 0, 86400, &d) < 0)
                return -1;
            if (!strcmp(k, "reconnect_min"))
                out->reconnect_min = d;
            else if (!strcmp(k, "reconnect_max"))
                out->reconnect_max = d;
            else if (!strcmp(k, "stall"))
                out->stall = d;
            else
                out->open_timeout = d;
        } else if (!strcmp(k, "buffer")) {
            if (fpy_arg_ll(value, name, 0, 1LL << 30, &l) < 0)
                return -1;
            out->buffer = (size_t)l;
        } else if (!strcmp(k, "queue")) {
            if (fpy_arg_ll(value, name, 0, 256, &l) < 0)
                return -1;
            out->queue = (unsigned)l;
        } else if (!strcmp(k, "max_reconnects")) {
            if (fpy_arg_ll(value, name, 0, 1000000, &l) < 0)
                return -1;
            out->max_reconnects = (int)l;
        } else if (!strcmp(k, "repeat_ok")) {
            int t = PyObject_IsTrue(value);
            if (t < 0)
                return -1;
            out->repeat_ok = t;
        } else {
            PyErr_Format(PyExc_ValueError,
                         "unknown live option '%s' (mode, queue, reconnect_min, reconnect_max, "
                         "max_reconnects, stall, repeat_ok, open_timeout, buffer)",
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

/* interpolation= names and libswscale's SWS_* flag values (swscale.h; part
 * of FFmpeg's ABI). */
static const struct {
    const char *name;
    int flags;
} interpolations[] = {
    {"fast_bilinear", 0x1}, {"bilinear", 0x2}, {"bicubic", 0x4},  {"experimental", 0x8},
    {"nearest", 0x10},      {"area", 0x20},    {"bicublin", 0x40}, {"gauss", 0x80},
    {"sinc", 0x100},        {"lanczos", 0x200}, {"spline", 0x400},
};

static int parse_interpolation(PyObject *v, int *flags)
{
    *flags = 0;
    if (v == Py_None)
        return 0;
    const char *s = fpy_arg_str(v, "interpolation");
    if (!s)
        return -1;
    for (size_t i = 0; i < sizeof interpolations / sizeof interpolations[0]; i++)
        if (!strcmp(s, interpolations[i].name)) {
            *flags = interpolations[i].flags;
            return 0;
        }
    PyErr_Format(PyExc_ValueError,
                 "unknown interpolation %R (fast_bilinear, bilinear, bicubic, experimental, "
                 "nearest, area, bicublin, gauss, sinc, lanczos, spline)",
                 v);
    return -1;
}

/* Keyword values, None where not given. */
enum {
    K_FORMAT, K_SIZE, K_EVERY, K_START, K_END, K_THREADS, K_MAX_HELD, K_LIVE, K_TIMEOUT,
    K_STREAM, K_CONVERT_AHEAD, K_PREFILL, K_AV_OPTIONS, K_LOOP, K_LOOP_CACHE, K_INTERPOLATION,
    K_FRAME_THREADS, K_BUDGET, K_COUNT
};

PyObject *fpy_open(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    static char *kw[] = {"source", "format", "size", "every", "start", "end", "threads",
                         "max_held", "live", "timeout", "stream", "convert_ahead", "prefill",
                         "av_options", "loop", "loop_cache", "interpolation", "frame_threads",
                         "budget", NULL};
    PyObject *source, *k[K_COUNT];
    for (int i = 0; i < K_COUNT; i++)
        k[i] = Py_None;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "O|$OOOOOOOOOOOOOOOOOO:open", kw, &source, &k[K_FORMAT], &k[K_SIZE],
            &k[K_EVERY], &k[K_START], &k[K_END], &k[K_THREADS], &k[K_MAX_HELD], &k[K_LIVE],
            &k[K_TIMEOUT], &k[K_STREAM], &k[K_CONVERT_AHEAD], &k[K_PREFILL], &k[K_AV_OPTIONS],
            &k[K_LOOP], &k[K_LOOP_CACHE], &k[K_INTERPOLATION], &k[K_FRAME_THREADS],
            &k[K_BUDGET]))
        return NULL;
    fp_reader_options o;
    memset(&o, 0, sizeof o);
    long long v;
    double d;
    unsigned max_held = FP_READER_DEFAULT_MAX_HELD;
    if (k[K_FORMAT] != Py_None) {
        const char *fs = fpy_arg_str(k[K_FORMAT], "format");
        if (!fs)
            return NULL;
        o.format = fp_pixfmt_from_name(fs);
        if (o.format == FP_PIX_NONE && strcmp(fs, "native") != 0) {
            PyErr_Format(PyExc_ValueError,
                         "unknown format %R (gray8, bgr24, rgb24, bgra, rgba, yuv420p, nv12, "
                         "yuv422p, yuv444p, yuv420p10, or None for the native format)",
                         k[K_FORMAT]);
            return NULL;
        }
    }
    if (parse_size(k[K_SIZE], &o.width, &o.height) < 0)
        return NULL;
    o.every = 1;
    if (k[K_EVERY] != Py_None) {
        if (fpy_arg_ll(k[K_EVERY], "every", 1, INT_MAX, &v) < 0)
            return NULL;
        o.every = (int)v;
    }
    if (k[K_START] != Py_None) {
        if (fpy_arg_double(k[K_START], "start", 0, FPY_MAX_SECONDS, &d) < 0)
            return NULL;
        o.start = d;
    }
    if (k[K_END] != Py_None) {
        if (fpy_arg_double(k[K_END], "end", 0, FPY_MAX_SECONDS, &d) < 0)
            return NULL;
        o.end = d;
    }
    if (k[K_THREADS] != Py_None) {
        if (fpy_arg_ll(k[K_THREADS], "threads", 0, 64, &v) < 0)
            return NULL;
        o.threads = (int)v;
    }
    if (k[K_MAX_HELD] != Py_None) {
        if (fpy_arg_ll(k[K_MAX_HELD], "max_held", 1, 4095, &v) < 0)
            return NULL;
        max_held = (unsigned)v;
    }
    if (parse_live(k[K_LIVE], &o.live) < 0)
        return NULL;
    if (k[K_TIMEOUT] != Py_None) {
        if (fpy_arg_double(k[K_TIMEOUT], "timeout", 0, FPY_MAX_SECONDS, &d) < 0)
            return NULL;
        o.timeout_us = (int64_t)(d * 1e6); /* <= 1e15: exact enough, no overflow */
        if (o.timeout_us <= 0)
            o.timeout_us = 1;
    }
    if (k[K_STREAM] != Py_None) {
        if (fpy_arg_ll(k[K_STREAM], "stream", 0, INT_MAX, &v) < 0)
            return NULL;
        o.stream = (int)v;
        o.stream_set = 1;
    }
    int t;
    if ((t = PyObject_IsTrue(k[K_CONVERT_AHEAD])) < 0)
        return NULL;
    o.convert_ahead = t;
    if ((t = PyObject_IsTrue(k[K_PREFILL])) < 0)
        return NULL;
    o.prefill = t;
    const char *av_options = NULL;
    if (k[K_AV_OPTIONS] != Py_None && !(av_options = fpy_arg_str(k[K_AV_OPTIONS], "av_options")))
        return NULL;
    if (k[K_LOOP] != Py_None) {
        if (fpy_arg_ll(k[K_LOOP], "loop", -1, INT_MAX, &v) < 0)
            return NULL;
        o.loop = (int)v; /* -1 forever, N more passes */
    }
    if (k[K_LOOP_CACHE] != Py_None) {
        if (fpy_arg_ll(k[K_LOOP_CACHE], "loop_cache", -1, LLONG_MAX, &v) < 0)
            return NULL;
        o.loop_cache = v; /* 0 default, N bytes, -1 never */
    }
    if (parse_interpolation(k[K_INTERPOLATION], &o.sws_flags) < 0)
        return NULL;
    if (k[K_FRAME_THREADS] != Py_None && fpy_arg_bool(k[K_FRAME_THREADS], "frame_threads",
                                                      &o.frame_threads) < 0)
        return NULL;
    fp_budget *budget = NULL;
    if (fpy_budget_arg(k[K_BUDGET], &budget) < 0)
        return NULL;
    o.max_held = max_held + 1; /* + the loop variable's frame while the next decodes */

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
    rd->live = o.live.mode != FP_LIVE_OFF;
    rd->inherited = 0;
    rd->gen = fpy_fork_gen;
    rd->all_prev = rd->all_next = NULL;
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
        /* repr() shows the source as every framepool message does: a URL's
         * user-info never appears */
        const char *raw = PyBytes_AS_STRING(path);
        size_t n = fp_url_redact(raw, NULL, 0) + 1;
        char *shown = PyMem_Malloc(n);
        if (!shown) {
            PyErr_NoMemory();
            goto fail;
        }
        fp_url_redact(raw, shown, n);
        rd->name = PyUnicode_DecodeFSDefault(shown);
        PyMem_Free(shown);
    }
    if (!rd->name)
        goto fail;
    rd->core = core_new();
    if (!rd->core) {
        PyErr_NoMemory();
        goto fail;
    }
    rd_core *c = rd->core;
    /* The open reads the path and the options from the core's own copies: an
     * open abandoned after Ctrl-C goes on with them after Python let go. */
    if ((path && !(c->url_copy = strdup(PyBytes_AS_STRING(path)))) ||
        (av_options && !(c->av_options_copy = strdup(av_options)))) {
        PyErr_NoMemory();
        goto fail;
    }
    o.av_options = c->av_options_copy;
    c->budget = budget ? fp_ref(budget) : NULL;
    o.budget = c->budget;
    if (rd->live) {
        o.live.on_event = on_live_event;
        o.live.user = c;
    }
    c->opts = o;
    c->url = c->url_copy;
    c->mem = rd->has_mem ? rd->mem.buf : NULL;
    c->mem_len = rd->has_mem ? (size_t)rd->mem.len : 0;
    struct stat st;
    c->direct = rd->has_mem || (path && stat(PyBytes_AS_STRING(path), &st) == 0 &&
                                S_ISREG(st.st_mode));
    Py_CLEAR(path);
    set_site(c);
    /* The handle exists before the open, so that interrupt() and Ctrl-C can
     * end an open blocked in the network (fp_reader_interrupt's promise). */
    if (!c->mem && fp_reader_new_at(&c->r, c->file, c->line, c->func) != 0) {
        PyErr_NoMemory();
        goto fail;
    }
    registry_add(rd); /* interrupt_all() reaches a blocked open too */
    int rc;
    if (reader_run(rd, op_open, &rc) < 0)
        goto fail;
    if (rc < 0) {
        reader_error(rd, rc);
        goto fail;
    }
    return (PyObject *)rd;
fail:
    Py_XDECREF(path);
    /* another thread may hold it through readers(): it is closed for it too */
    registry_remove(rd);
    reader_do_close(rd);
    Py_DECREF(rd);
    return NULL;
}

PyObject *fpy_readers(PyObject *module, PyObject *noargs)
{
    (void)module;
    (void)noargs;
    PyObject *l = PyList_New(0);
    for (FpyReader *rd = all_readers; l && rd; rd = rd->all_next) {
        if (!rd->core || rd->inherited)
            continue;
        if (PyList_Append(l, (PyObject *)rd) < 0)
            Py_CLEAR(l);
    }
    return l;
}

PyObject *fpy_interrupt_all(PyObject *module, PyObject *noargs)
{
    (void)module;
    (void)noargs;
    long n = 0;
    for (FpyReader *rd = all_readers; rd; rd = rd->all_next) {
        if (!rd->core || rd->inherited)
            continue;
        rd_core *c = rd->core;
        /* c->r is written by the open (on the helper thread while an open
         * runs there): read it as the Ctrl-C path does */
        pthread_mutex_lock(&c->m);
        fp_reader *r = c->r;
        pthread_mutex_unlock(&c->m);
        if (r) {
            fp_reader_interrupt(r);
            n++;
        }
    }
    return PyLong_FromLong(n);
}

void fpy_reader_after_fork(void)
{
    for (FpyReader *rd = all_readers; rd; rd = rd->all_next) {
        if (rd->gen == fpy_fork_gen)
            continue;
        rd->inherited = 1;
        rd->busy = 0; /* the call in progress was the parent's thread's */
    }
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
