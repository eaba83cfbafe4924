/*
 * python/module.c — module framepool._framepool: exceptions, diagnostics
 * as text, the memory-per-frame tracker, and interned source names.
 */
#include "fpy.h"

#include <stdio.h>
#include <stdlib.h>

PyObject *FpyError;

/* ---- exceptions: one class per framepool error code --------------------------------------- */

typedef struct exc_def {
    int code;
    const char *name;      /* attribute of the module */
    PyObject **builtin;    /* a second base (so `except FileNotFoundError` works), or NULL */
    const char *doc;
    PyObject *cls;
} exc_def;

static exc_def excs[] = {
    {FP_ELIMIT, "LimitError", NULL, "A bound was reached (max_held, a pool, a cache).", NULL},
    {FP_EFORMAT, "FormatError", NULL, "Not a media file, or an unsupported codec or format.", NULL},
    {FP_ENOSTREAM, "NoStreamError", NULL, "The input has no (such) video stream.", NULL},
    {FP_EDECODE, "DecodeError", NULL, "Too many decode errors.", NULL},
    {FP_EIO, "InputOutputError", &PyExc_OSError, "Input/output error.", NULL},
    {FP_ENOENT, "NotFoundError", &PyExc_FileNotFoundError, "No such file.", NULL},
    {FP_ETIMEDOUT, "TimeoutError", &PyExc_TimeoutError, "A deadline (timeout=) passed.", NULL},
    {FP_ECANCELED, "CancelledError", NULL, "The call was interrupted (Reader.interrupt).", NULL},
    {FP_EINVAL, "InvalidError", &PyExc_ValueError, "An invalid argument or input.", NULL},
    {FP_ENOMEM, "OutOfMemoryError", &PyExc_MemoryError, "An allocation failed.", NULL},
    {FP_ENODISPLAY, "NoDisplayError", NULL, "No display.", NULL},
};

PyObject *fpy_raise_obj(int code, PyObject *msg)
{
    PyObject *cls = FpyError;
    for (size_t i = 0; i < sizeof excs / sizeof excs[0]; i++)
        if (excs[i].code == code)
            cls = excs[i].cls;
    PyObject *exc = PyObject_CallOneArg(cls, msg);
    if (!exc)
        return NULL;
    PyObject *c = PyLong_FromLong(code);
    if (c) {
        PyObject_SetAttrString(exc, "code", c);
        Py_DECREF(c);
    }
    PyErr_SetObject(cls, exc);
    Py_DECREF(exc);
    return NULL;
}

PyObject *fpy_raise(int code, const char *msg)
{
    if (!msg || !*msg)
        msg = fp_strerror(code);
    PyObject *m = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace");
    if (!m)
        return NULL;
    fpy_raise_obj(code, m);
    Py_DECREF(m);
    return NULL;
}

/* ---- interned names ------------------------------------------------------------------------- */

/* framepool keeps creation-site pointers for the life of objects (and
 * reports them at exit), so a Python file name passed as a site must live
 * as long as the process: each distinct name is copied once. Few distinct
 * names exist (one per source file and function), bounded here at 4096. */
#define MAX_INTERNED 4096
static struct {
    PyObject *key; /* strong */
    char *s;
} interned[MAX_INTERNED];
static int n_interned;

const char *fpy_intern(PyObject *s)
{
    for (int i = n_interned - 1; i >= 0; i--)
        if (interned[i].key == s)
            return interned[i].s;
    for (int i = n_interned - 1; i >= 0; i--) {
        int eq = PyUnicode_Compare(interned[i].key, s);
        if (eq == 0)
            return interned[i].s;
        if (eq == -1 && PyErr_Occurred())
            PyErr_Clear();
    }
    const char *u = PyUnicode_AsUTF8(s);
    if (!u) {
        PyErr_Clear();
        return "<python>";
    }
    if (n_interned == MAX_INTERNED)
        return "<python>";
    char *copy = strdup(u);
    if (!copy)
        return "<python>";
    interned[n_interned].key = Py_NewRef(s);
    interned[n_interned].s = copy;
    n_interned++;
    return copy;
}

/* ---- diagnostics as text ---------------------------------------------------------------------- */

typedef void (*print_fn)(FILE *f, void *arg);

/* Runs fn into a memory stream with the GIL released (diagnostics take
 * framepool's locks; nothing in them calls Python) and returns the text. */
static PyObject *capture(print_fn fn, void *arg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return PyErr_NoMemory();
    Py_BEGIN_ALLOW_THREADS
    fn(f, arg);
    fclose(f);
    Py_END_ALLOW_THREADS
    PyObject *s = PyUnicode_DecodeUTF8(buf ? buf : "", (Py_ssize_t)len, "replace");
    free(buf);
    return s;
}

static void print_summary(FILE *f, void *arg)
{
    (void)arg;
    fp_diag_print_summary(f);
}

static PyObject *mod_summary(PyObject *m, PyObject *noargs)
{
    (void)m;
    (void)noargs;
    return capture(print_summary, NULL);
}

static void print_leaks(FILE *f, void *arg)
{
    fp_diag_leak_report(f, *(unsigned *)arg);
}

static PyObject *mod_leak_report(PyObject *m, PyObject *args, PyObject *kwargs)
{
    (void)m;
    static char *kw[] = {"objects", "singletons", NULL};
    int objects = 0, singletons = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|pp:leak_report", kw, &objects, &singletons))
        return NULL;
    unsigned flags = (objects ? FP_DIAG_REPORT_OBJECTS : 0) |
                     (singletons ? FP_DIAG_REPORT_SINGLETONS : 0);
    return capture(print_leaks, &flags);
}

static fp_growth *growth_tracker;

typedef struct {
    size_t limit;
    int rc;
} growth_arg;

static void print_growth(FILE *f, void *arg)
{
    growth_arg *g = arg;
    g->rc = fp_growth_check(growth_tracker, f, g->limit);
}

static PyObject *mod_growth(PyObject *m, PyObject *args, PyObject *kwargs)
{
    (void)m;
    static char *kw[] = {"limit", NULL};
    Py_ssize_t limit = 10;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|n:growth", kw, &limit))
        return NULL;
    if (!growth_tracker) {
        int rc = fp_growth_new_at(&growth_tracker, __FILE__, __LINE__, __func__);
        if (rc < 0)
            return fpy_raise(rc, NULL);
        fp_diag_mark_singleton(growth_tracker);
    }
    growth_arg g = {limit < 0 ? 0 : (size_t)limit, 0};
    PyObject *s = capture(print_growth, &g);
    if (s && g.rc < 0) {
        Py_DECREF(s);
        return fpy_raise(g.rc, NULL);
    }
    return s;
}

static PyObject *mod_diag_configure(PyObject *m, PyObject *arg)
{
    (void)m;
    const char *spec = PyUnicode_AsUTF8(arg);
    if (!spec)
        return NULL;
    int rc = fp_diag_configure(spec);
    if (rc < 0)
        return fpy_raise(rc, fp_errmsg());
    Py_RETURN_NONE;
}

static PyObject *mod_live_bytes(PyObject *m, PyObject *noargs)
{
    (void)m;
    (void)noargs;
    uint64_t count = 0, bytes = 0;
    fp_obj_totals(&count, &bytes);
    return Py_BuildValue("(KK)", (unsigned long long)count, (unsigned long long)bytes);
}

/* ---- MemTrack: fp_memtrack, the memory-per-frame verdict ------------------------------------- */

typedef struct {
    PyObject_HEAD
    fp_memtrack *t;
} FpyMemTrack;

static int memtrack_init(FpyMemTrack *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"capacity", "min_warmup", "manual_misses", NULL};
    Py_ssize_t capacity = 0;
    unsigned min_warmup = 0;
    int manual = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|nIp:MemTrack", kw, &capacity, &min_warmup,
                                     &manual))
        return -1;
    fp_memtrack_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.capacity = capacity > 0 ? (size_t)capacity : 0;
    cfg.min_warmup = min_warmup;
    cfg.manual_misses = manual;
    fp_unref(&self->t);
    int rc = fp_memtrack_new_at(&cfg, &self->t, __FILE__, __LINE__, __func__);
    if (rc < 0) {
        fpy_raise(rc, fp_errmsg());
        return -1;
    }
    return 0;
}

static void memtrack_dealloc(FpyMemTrack *self)
{
    fp_unref(&self->t);
    Py_TYPE(self)->tp_free(self);
}

static int memtrack_check(FpyMemTrack *self)
{
    if (!self->t) {
        PyErr_SetString(PyExc_ValueError, "MemTrack not initialised");
        return -1;
    }
    return 0;
}

static PyObject *memtrack_sample(FpyMemTrack *self, PyObject *noargs)
{
    (void)noargs;
    if (memtrack_check(self) < 0)
        return NULL;
    int rc = fp_memtrack_sample(self->t);
    if (rc < 0)
        return fpy_raise(rc, NULL);
    Py_RETURN_NONE;
}

static PyObject *memtrack_note_misses(FpyMemTrack *self, PyObject *arg)
{
    if (memtrack_check(self) < 0)
        return NULL;
    unsigned long long n = PyLong_AsUnsignedLongLong(arg);
    if (n == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    fp_memtrack_note_pool_misses(self->t, n);
    Py_RETURN_NONE;
}

static PyObject *memtrack_result(FpyMemTrack *self, PyObject *noargs)
{
    (void)noargs;
    if (memtrack_check(self) < 0)
        return NULL;
    fp_memtrack_result r;
    int rc = fp_memtrack_result_get(self->t, &r);
    if (rc < 0)
        return fpy_raise(rc, NULL);
    static const char *names[] = {"PASS", "FAIL", "INCONCLUSIVE"};
    return Py_BuildValue(
        "{s:s,s:K,s:K,s:d,s:L,s:K,s:K,s:d,s:d,s:i,s:K,s:K}", "verdict",
        r.verdict <= 2 ? names[r.verdict] : "?", "frames", (unsigned long long)r.frames,
        "warmup_frames", (unsigned long long)r.warmup_frames, "slope", r.slope, "window_delta",
        (long long)r.window_delta, "peak_rss", (unsigned long long)r.peak_rss, "last_rss",
        (unsigned long long)r.last_rss, "faults_per_frame", r.faults_per_frame, "live_slope",
        r.live_slope, "live_flat", r.live_flat, "live_bytes", (unsigned long long)r.live_bytes,
        "idle_bytes", (unsigned long long)r.idle_bytes);
}

static void print_memtrack(FILE *f, void *arg)
{
    fp_memtrack_print(arg, f);
}

static PyObject *memtrack_report(FpyMemTrack *self, PyObject *noargs)
{
    (void)noargs;
    if (memtrack_check(self) < 0)
        return NULL;
    return capture(print_memtrack, self->t);
}

static PyMethodDef memtrack_methods[] = {
    {"sample", (PyCFunction)memtrack_sample, METH_NOARGS,
     PyDoc_STR("Records one frame (RssAnon, minor faults, library live bytes); ~2 us.")},
    {"note_pool_misses", (PyCFunction)memtrack_note_misses, METH_O,
     PyDoc_STR("Total allocations of a loop whose buffers are not framepool's (warm-up).")},
    {"result", (PyCFunction)memtrack_result, METH_NOARGS, PyDoc_STR("The verdict as a dict.")},
    {"report", (PyCFunction)memtrack_report, METH_NOARGS,
     PyDoc_STR("The verdict line (and reasons on FAIL), as fp_memtrack_print prints it.")},
    {NULL, NULL, 0, NULL},
};

PyTypeObject FpyMemTrack_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "framepool.MemTrack",
    .tp_doc = PyDoc_STR("MemTrack(capacity=0, min_warmup=0, manual_misses=False): the "
                        "memory-per-frame verdict (call sample() once per frame)."),
    .tp_basicsize = sizeof(FpyMemTrack),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)memtrack_init,
    .tp_dealloc = (destructor)memtrack_dealloc,
    .tp_methods = memtrack_methods,
};

/* ---- the module ------------------------------------------------------------------------------ */

static PyMethodDef mod_methods[] = {
    {"open", (PyCFunction)(void (*)(void))fpy_open, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("open(source, *, format=None, size=None, every=1, start=0, end=None, threads=0,\n"
               "     max_held=8, live=None, timeout=None, stream=None, convert_ahead=False,\n"
               "     prefill=False, av_options=None, loop=0, loop_cache=0) -> Reader\n"
               "source: a path or URL, or a bytes-like object holding a whole file.\n"
               "loop: play a file again at its end, N more times or -1 forever, without\n"
               "flushing the decoder; time and index go on growing.\n"
               "loop_cache: bytes of packets kept to replay the later passes from memory\n"
               "(0 = the default, 2 MiB; -1 = always rewind the file).")},
    {"summary", mod_summary, METH_NOARGS,
     PyDoc_STR("Live framepool objects by type (count, bytes, peak, created), as text.")},
    {"leak_report", (PyCFunction)(void (*)(void))mod_leak_report, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("Live objects by type and creation line (needs diag_configure('sites')).")},
    {"growth", (PyCFunction)(void (*)(void))mod_growth, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("growth(limit=10): types whose live count reached a new peak since the last "
               "call, as objgraph.show_growth prints them.")},
    {"diag_configure", mod_diag_configure, METH_O,
     PyDoc_STR("diag_configure('sites'): switches as the FP_DIAG variable takes them.")},
    {"live_bytes", mod_live_bytes, METH_NOARGS,
     PyDoc_STR("(objects, bytes) of live framepool objects (pooled frames included).")},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT, "framepool._framepool",
    "framepool: FFmpeg decode into pooled, refcounted frames (C extension).", -1, mod_methods,
    NULL, NULL, NULL, NULL,
};

static int add_type(PyObject *m, PyTypeObject *t, const char *name)
{
    if (PyType_Ready(t) < 0)
        return -1;
    Py_INCREF(t);
    if (PyModule_AddObject(m, name, (PyObject *)t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__framepool(void);

PyMODINIT_FUNC PyInit__framepool(void)
{
    PyObject *m = PyModule_Create(&moddef);
    if (!m)
        return NULL;
    if (fpy_reader_init() < 0)
        goto fail;
    if (add_type(m, &FpyFrame_Type, "Frame") < 0 || add_type(m, &FpyPlane_Type, "Plane") < 0 ||
        add_type(m, &FpyReader_Type, "Reader") < 0 ||
        add_type(m, &FpyMemTrack_Type, "MemTrack") < 0)
        goto fail;
    FpyError = PyErr_NewExceptionWithDoc(
        "framepool.Error", "A framepool error; `code` is the FP_E* value.", PyExc_Exception,
        NULL);
    if (!FpyError || PyModule_AddObjectRef(m, "Error", FpyError) < 0)
        goto fail;
    for (size_t i = 0; i < sizeof excs / sizeof excs[0]; i++) {
        char full[64];
        snprintf(full, sizeof full, "framepool.%s", excs[i].name);
        PyObject *bases = excs[i].builtin ? PyTuple_Pack(2, FpyError, *excs[i].builtin)
                                          : PyTuple_Pack(1, FpyError);
        if (!bases)
            goto fail;
        excs[i].cls = PyErr_NewExceptionWithDoc(full, excs[i].doc, bases, NULL);
        Py_DECREF(bases);
        if (!excs[i].cls || PyModule_AddObjectRef(m, excs[i].name, excs[i].cls) < 0)
            goto fail;
    }
    if (PyModule_AddIntConstant(m, "TRACEMALLOC_DOMAIN", FPY_TRACEMALLOC_DOMAIN) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_KEY", FP_IMAGE_KEY) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_CORRUPT", FP_IMAGE_CORRUPT) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_READONLY", FP_IMAGE_READONLY) < 0 ||
        PyModule_AddStringConstant(m, "C_VERSION", FP_VERSION_STRING) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
