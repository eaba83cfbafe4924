/*
 * python/budget.c — framepool.Budget: fp_budget, a byte cap shared by pools.
 *
 * A Budget is handed to framepool.open(budget=...) (the reader's decoder and
 * conversion pools charge it) and, through set_default_budget(), charged by
 * the frames that belong to no reader: Frame.copy() and unpickled frames.
 * Those come from pools the Budget keeps per (format, size), at most
 * COPY_POOLS of them (the least recently used one is let go: a pool lives
 * while its buffers are out). A copy's buffer is freed, and so released from
 * the budget, when its frame is freed (fpy_frame_drop trims its pool), so
 * `used_bytes` follows the frames Python holds.
 *
 * Every call happens with the GIL held; fp_pool/fp_budget calls take their
 * own locks and never call Python.
 */
#include "fpy.h"

#include <limits.h>
#include <stdint.h>

#define COPY_POOLS 8

typedef struct copy_pool {
    fp_pool *pool; /* +1, NULL when unused */
    fp_pixfmt format;
    int av_format, width, height;
    fp_layout layout; /* FP_PIX_OTHER: the source's layout */
    unsigned long used; /* tick of the last use (LRU) */
} copy_pool;

struct FpyBudget {
    PyObject_HEAD
    fp_budget *b;
    PyObject *name; /* str */
    PyObject *weakreflist;
    copy_pool pools[COPY_POOLS];
    unsigned long tick;
};

static FpyBudget *default_budget; /* strong; guarded by the GIL */

/* ---- the object -------------------------------------------------------------------------- */

static PyObject *budget_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"max_bytes", "name", NULL};
    PyObject *max_obj, *name = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$O:Budget", kw, &max_obj, &name))
        return NULL;
    long long max_bytes;
    if (fpy_arg_ll(max_obj, "max_bytes", 1, LLONG_MAX, &max_bytes) < 0)
        return NULL;
    if (name != Py_None) {
        if (!fpy_arg_str(name, "name"))
            return NULL;
        if (PyUnicode_FindChar(name, 0, 0, PyUnicode_GET_LENGTH(name), 1) != -1) {
            PyErr_SetString(PyExc_ValueError, "Budget name must not contain NUL characters");
            return NULL;
        }
    }
    FpyBudget *self = (FpyBudget *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->name = name == Py_None ? PyUnicode_FromString("budget") : Py_NewRef(name);
    if (!self->name) {
        Py_DECREF(self);
        return NULL;
    }
    int rc = fp_budget_new((size_t)max_bytes, &self->b);
    if (rc < 0) {
        Py_DECREF(self);
        return fpy_raise(rc, fp_errmsg());
    }
    return (PyObject *)self;
}

static void budget_dealloc(FpyBudget *self)
{
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    for (int i = 0; i < COPY_POOLS; i++)
        fp_unref(&self->pools[i].pool); /* each lives while its buffers are out */
    fp_unref(&self->b);                  /* pools hold their own references */
    Py_CLEAR(self->name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *budget_stats(FpyBudget *self, void *closure)
{
    (void)closure;
    fp_budget_stats s;
    fp_budget_get_stats(self->b, &s);
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:I}", "max_bytes",
                         (unsigned long long)s.max_bytes, "used_bytes",
                         (unsigned long long)s.used_bytes, "peak_bytes",
                         (unsigned long long)s.peak_bytes, "refusals",
                         (unsigned long long)s.refusals, "reclaimed",
                         (unsigned long long)s.reclaimed, "pools", s.pools);
}

static PyObject *budget_max_bytes(FpyBudget *self, void *closure)
{
    (void)closure;
    fp_budget_stats s;
    fp_budget_get_stats(self->b, &s);
    return PyLong_FromUnsignedLongLong(s.max_bytes);
}

static PyObject *budget_name(FpyBudget *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->name);
}

static PyObject *budget_repr(FpyBudget *self)
{
    fp_budget_stats s;
    fp_budget_get_stats(self->b, &s);
    return PyUnicode_FromFormat("<framepool.Budget %R max_bytes=%llu used_bytes=%llu pools=%u>",
                                self->name, (unsigned long long)s.max_bytes,
                                (unsigned long long)s.used_bytes, s.pools);
}

static PyObject *budget_reduce(FpyBudget *self, PyObject *noargs)
{
    (void)noargs;
    PyErr_Format(PyExc_TypeError,
                 "cannot pickle framepool.Budget %R: a budget caps the frame memory of the "
                 "process that made it; make one Budget in each process (e.g. one per Dask "
                 "worker) and pass it to framepool.open(budget=...) or set_default_budget() "
                 "there",
                 self->name);
    return NULL;
}

static PyMethodDef budget_methods[] = {
    {"__reduce__", (PyCFunction)budget_reduce, METH_NOARGS,
     PyDoc_STR("__reduce__($self, /)\n--\n\n"
               "Refuses: TypeError (a budget belongs to the process that made it).")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef budget_getset[] = {
    {"stats", (getter)budget_stats, NULL,
     PyDoc_STR("A snapshot -> dict: max_bytes (the cap), used_bytes (bytes of the buffers "
               "allocated by the pools on this budget: readers' pools, idle buffers "
               "included, and the frames copied or unpickled under set_default_budget), "
               "peak_bytes (the highest used_bytes), refusals (buffers refused because the "
               "budget was full, after freeing idle buffers), reclaimed (idle buffers freed "
               "to make room), pools (pools attached now: each open reader's, and one per "
               "format and size of copied frames, at most 8).\nThread-safe."),
     NULL},
    {"max_bytes", (getter)budget_max_bytes, NULL, PyDoc_STR("The cap in bytes (int)."), NULL},
    {"name", (getter)budget_name, NULL,
     PyDoc_STR("The name given at creation (str; 'budget' by default), used in messages."),
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject FpyBudget_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "framepool.Budget",
    .tp_doc = PyDoc_STR(
        "Budget(max_bytes, *, name=None)\n--\n\n"
        "A byte cap on frame memory shared by pools (framepool's fp_budget).\n"
        "max_bytes: the cap, an int 1..2**63-1.\n"
        "name: a str shown in repr() and in LimitError messages (default 'budget').\n"
        "Pass it to framepool.open(budget=...) so that the reader's pools charge it (a "
        "full budget first frees idle buffers of every pool on it; then a file reader's "
        "next frame raises LimitError and a live reader drops that frame, counted in "
        "stats['budget_drops']), and to set_default_budget() so that Frame.copy() and "
        "unpickled frames charge it (over the cap they raise LimitError naming the budget "
        "and the sizes; a frame's bytes go back to the budget when the frame is freed).\n"
        "One Budget belongs to one process: it does not pickle (TypeError); a forked child "
        "inherits it usable, with the parent's figures. Weak references work. Thread-safe."),
    .tp_basicsize = sizeof(FpyBudget),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = budget_new,
    .tp_dealloc = (destructor)budget_dealloc,
    .tp_repr = (reprfunc)budget_repr,
    .tp_weaklistoffset = offsetof(FpyBudget, weakreflist),
    .tp_methods = budget_methods,
    .tp_getset = budget_getset,
};

/* ---- framepool.open(budget=...) ------------------------------------------------------------ */

int fpy_budget_arg(PyObject *v, fp_budget **out)
{
    *out = NULL;
    if (v == Py_None)
        return 0;
    if (!PyObject_TypeCheck(v, &FpyBudget_Type)) {
        PyErr_Format(PyExc_TypeError, "budget must be a framepool.Budget or None, not %.80s",
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    *out = ((FpyBudget *)v)->b;
    return 0;
}

/* ---- the default budget ------------------------------------------------------------------- */

PyObject *fpy_set_default_budget(PyObject *module, PyObject *arg)
{
    (void)module;
    if (arg != Py_None && !PyObject_TypeCheck(arg, &FpyBudget_Type)) {
        PyErr_Format(PyExc_TypeError, "set_default_budget takes a framepool.Budget or None, not "
                                      "%.80s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    PyObject *prev = default_budget ? (PyObject *)default_budget : Py_None;
    default_budget = arg == Py_None ? NULL : (FpyBudget *)Py_NewRef(arg);
    return prev == Py_None ? Py_NewRef(Py_None) : prev; /* our reference becomes the caller's */
}

PyObject *fpy_get_default_budget(PyObject *module, PyObject *noargs)
{
    (void)module;
    (void)noargs;
    return Py_NewRef(default_budget ? (PyObject *)default_budget : Py_None);
}

/* The pool of `b` for images of a format and size (and for FP_PIX_OTHER,
 * of an av_format and layout): a borrowed pointer, or NULL with an
 * exception. Copies and unpickled frames of one format and size share it. */
static fp_pool *copy_pool_for(FpyBudget *b, fp_pixfmt format, int av_format, int w, int h,
                              const fp_layout *layout)
{
    copy_pool *free_slot = NULL, *oldest = NULL;
    b->tick++;
    for (int i = 0; i < COPY_POOLS; i++) {
        copy_pool *e = &b->pools[i];
        if (!e->pool) {
            if (!free_slot)
                free_slot = e;
            continue;
        }
        if (e->format == format && e->width == w && e->height == h &&
            (format != FP_PIX_OTHER ||
             (e->av_format == av_format && memcmp(&e->layout, layout, sizeof *layout) == 0))) {
            e->used = b->tick;
            return e->pool;
        }
        if (!oldest || e->used < oldest->used)
            oldest = e;
    }
    copy_pool *e = free_slot ? free_slot : oldest;
    char name[64];
    snprintf(name, sizeof name, "copies %dx%d %s", w, h, fp_pixfmt_name(format));
    fp_pool_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = name;
    cfg.format = format;
    cfg.av_format_plus1 = format == FP_PIX_OTHER && av_format >= 0 ? av_format + 1 : 0;
    cfg.width = w;
    cfg.height = h;
    cfg.layout = format == FP_PIX_OTHER ? layout : NULL;
    cfg.max_buffers = 1u << 24; /* the budget is the bound */
    cfg.budget = b->b;
    fp_pool *p = NULL;
    int rc = fp_pool_new(&cfg, &p);
    if (rc < 0) {
        fpy_raise(rc, fp_errmsg());
        return NULL;
    }
    fp_unref(&e->pool); /* the evicted pool lives while its buffers are out */
    e->pool = p;
    e->format = format;
    e->av_format = av_format;
    e->width = w;
    e->height = h;
    if (layout)
        e->layout = *layout;
    else
        memset(&e->layout, 0, sizeof e->layout);
    e->used = b->tick;
    return p;
}

/* LimitError naming the budget and the sizes. */
static void raise_over(FpyBudget *b, const char *what, int w, int h, fp_pixfmt format,
                       size_t bytes, const char *cmsg)
{
    fp_budget_stats s;
    fp_budget_get_stats(b->b, &s);
    PyObject *msg = PyUnicode_FromFormat(
        "%s: the default budget %R (framepool.Budget, max_bytes=%llu, set by "
        "set_default_budget) cannot hold a %dx%d %s frame of %zu bytes: %llu bytes in use; "
        "raise max_bytes or release frames sooner. framepool: %s",
        what, b->name, (unsigned long long)s.max_bytes, w, h, fp_pixfmt_name(format), bytes,
        (unsigned long long)s.used_bytes, cmsg);
    if (msg) {
        fpy_raise_obj(FP_ELIMIT, msg);
        Py_DECREF(msg);
    }
}

/* Bytes of one buffer of pool p. */
static size_t buffer_bytes(fp_pool *p)
{
    fp_pool_stats s;
    fp_pool_get_stats(p, &s);
    return s.buffer_bytes;
}

int fpy_budget_copy(const fp_image *src, fp_image **out, const char *what, const char *file,
                    int line, const char *func)
{
    *out = NULL;
    FpyBudget *b = default_budget;
    if (!b) {
        int rc = fp_image_copy_at(src, NULL, 0, out, file, line, func);
        return rc < 0 ? (fpy_raise(rc, fp_errmsg()), -1) : 0;
    }
    fp_layout layout;
    memset(&layout, 0, sizeof layout);
    if (src->format == FP_PIX_OTHER && fp_image_layout(src, &layout) < 0) {
        fpy_raise(FP_EINVAL, "copy: a frame of format 'other' over memory framepool did not "
                             "allocate cannot be copied");
        return -1;
    }
    Py_INCREF(b); /* the pool cache stays while we use it */
    fp_pool *p = copy_pool_for(b, src->format, src->av_format, src->width, src->height,
                               src->format == FP_PIX_OTHER ? &layout : NULL);
    int rc = p ? fp_image_copy_at(src, p, 0, out, file, line, func) : -1;
    if (rc == 0)
        (*out)->av_format = src->av_format; /* ours alone: not a geometry field */
    if (p && rc < 0) {
        char cmsg[512];
        snprintf(cmsg, sizeof cmsg, "%s", fp_errmsg()); /* before other framepool calls */
        if (rc == FP_ELIMIT)
            raise_over(b, what, src->width, src->height, src->format, buffer_bytes(p), cmsg);
        else
            fpy_raise(rc, cmsg);
    }
    Py_DECREF(b);
    return rc < 0 ? -1 : 1;
}

int fpy_budget_image(fp_pixfmt format, int w, int h, fp_image **out, const char *what,
                     const char *file, int line, const char *func)
{
    *out = NULL;
    FpyBudget *b = default_budget;
    if (!b) {
        int rc = fp_image_new_at(format, w, h, out, file, line, func);
        return rc < 0 ? (fpy_raise(rc, fp_errmsg()), -1) : 0;
    }
    Py_INCREF(b);
    fp_pool *p = copy_pool_for(b, format, -1, w, h, NULL);
    int rc = p ? fp_pool_acquire_at(p, 0, out, file, line, func) : -1;
    if (p && rc < 0) {
        char cmsg[512];
        snprintf(cmsg, sizeof cmsg, "%s", fp_errmsg()); /* before other framepool calls */
        if (rc == FP_ELIMIT)
            raise_over(b, what, w, h, format, buffer_bytes(p), cmsg);
        else
            fpy_raise(rc, cmsg);
    }
    Py_DECREF(b);
    return rc < 0 ? -1 : 1;
}
