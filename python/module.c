/*
 * python/module.c — module framepool._framepool: exceptions, diagnostics
 * as text, the memory-per-frame tracker, and interned source names.
 */
#include "fpy.h"

#include <limits.h>
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
    {FP_ELIMIT, "LimitError", NULL, "A bound was reached (max_held, a pool, a Budget, a cache).",
     NULL},
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

/* framepool.ErrorCode: an IntEnum of the FP_E* codes (FP_ERROR_TABLE),
 * named without the FP_ prefix; exceptions' `code` is one of its members. */
static PyObject *FpyErrorCode;

#define FPY_ERROR_ROW_(name, value, text) {#name, value, text},
static const struct {
    const char *name;
    int value;
    const char *text;
} error_codes[] = {FP_ERROR_TABLE(FPY_ERROR_ROW_)};
#undef FPY_ERROR_ROW_

/* The ErrorCode member of `code`, or a plain int for a code not in the table
 * (+1; NULL with an exception on failure). */
static PyObject *error_code_obj(int code)
{
    PyObject *i = PyLong_FromLong(code);
    if (!i || !FpyErrorCode)
        return i;
    for (size_t k = 0; k < sizeof error_codes / sizeof error_codes[0]; k++)
        if (error_codes[k].value == code) {
            PyObject *member = PyObject_CallOneArg(FpyErrorCode, i);
            Py_DECREF(i);
            return member;
        }
    return i;
}

/* Creates ErrorCode and adds it, and each member as a module constant
 * (framepool.ELIMIT, ...), to `m`. */
static int add_error_codes(PyObject *m)
{
    PyObject *enum_mod = PyImport_ImportModule("enum");
    if (!enum_mod)
        return -1;
    PyObject *int_enum = PyObject_GetAttrString(enum_mod, "IntEnum");
    Py_DECREF(enum_mod);
    if (!int_enum)
        return -1;
    PyObject *members = PyList_New(0), *doc = NULL, *args = NULL, *kw = NULL;
    int rc = -1;
    if (!members)
        goto out;
    doc = PyUnicode_FromString(
        "framepool's error codes, the C library's FP_E* values (negative ints) without the "
        "FP_ prefix: framepool.Error's `code` is one of them (LimitError.code is ELIMIT for a "
        "full pool, budget or cache, EHELD for the reader's max_held), and each is also a "
        "module constant (framepool.ELIMIT == ErrorCode.ELIMIT == -0x46500001). Members "
        "compare equal to the C values:\n");
    if (!doc)
        goto out;
    for (size_t k = 0; k < sizeof error_codes / sizeof error_codes[0]; k++) {
        if (error_codes[k].value == FP_OK)
            continue;
        PyObject *row = Py_BuildValue("(si)", error_codes[k].name + 3, error_codes[k].value);
        if (!row || PyList_Append(members, row) < 0) {
            Py_XDECREF(row);
            goto out;
        }
        Py_DECREF(row);
        PyObject *line = PyUnicode_FromFormat("  %s: %s\n", error_codes[k].name + 3,
                                              error_codes[k].text);
        if (!line)
            goto out;
        PyUnicode_AppendAndDel(&doc, line);
        if (!doc)
            goto out;
    }
    args = Py_BuildValue("(sO)", "ErrorCode", members);
    kw = Py_BuildValue("{s:s,s:s}", "module", "framepool", "qualname", "ErrorCode");
    if (!args || !kw)
        goto out;
    FpyErrorCode = PyObject_Call(int_enum, args, kw);
    if (!FpyErrorCode || PyObject_SetAttrString(FpyErrorCode, "__doc__", doc) < 0 ||
        PyModule_AddObjectRef(m, "ErrorCode", FpyErrorCode) < 0)
        goto out;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(members); k++) {
        PyObject *row = PyList_GET_ITEM(members, k);
        const char *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(row, 0));
        PyObject *member = name ? PyObject_GetAttrString(FpyErrorCode, name) : NULL;
        if (!member || PyModule_AddObject(m, name, member) < 0) {
            Py_XDECREF(member);
            goto out;
        }
    }
    rc = 0;
out:
    Py_DECREF(int_enum);
    Py_XDECREF(members);
    Py_XDECREF(doc);
    Py_XDECREF(args);
    Py_XDECREF(kw);
    return rc;
}

PyObject *fpy_raise_obj(int code, PyObject *msg)
{
    PyObject *cls = FpyError;
    /* FP_EHELD (the caller's own max_held bound) is a LimitError too; its
     * `code` attribute tells it from a full pool or cache (FP_ELIMIT). */
    int cls_code = code == FP_EHELD ? FP_ELIMIT : code;
    for (size_t i = 0; i < sizeof excs / sizeof excs[0]; i++)
        if (excs[i].code == cls_code)
            cls = excs[i].cls;
    PyObject *exc = PyObject_CallOneArg(cls, msg);
    if (!exc)
        return NULL;
    PyObject *c = error_code_obj(code);
    if (!c) { /* the member could not be made: the plain int still compares equal */
        PyErr_Clear();
        c = PyLong_FromLong(code);
    }
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
    PyObject *text = capture(print_leaks, &flags);
    if (!text)
        return NULL;
    /* Views are holders: frames kept only because a numpy array or a
     * memoryview of them lives are named by the line that took the view. */
    PyObject *lines = PyList_New(0);
    if (!lines || fpy_frames_view_lines(lines) < 0) {
        Py_XDECREF(lines);
        Py_DECREF(text);
        return NULL;
    }
    if (PyList_GET_SIZE(lines) == 0) {
        Py_DECREF(lines);
        return text;
    }
    PyObject *sep = PyUnicode_FromString("\n");
    PyObject *joined = sep ? PyUnicode_Join(sep, lines) : NULL;
    Py_XDECREF(sep);
    Py_DECREF(lines);
    PyObject *res = joined ? PyUnicode_FromFormat(
                                 "%UPython frames pinned by views (views pin frames: a numpy "
                                 "array, memoryview or plane of a frame keeps the frame alive "
                                 "until the view is deleted):\n%U\n",
                                 text, joined)
                           : NULL;
    Py_XDECREF(joined);
    Py_DECREF(text);
    return res;
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
    const char *spec = fpy_arg_str(arg, "spec");
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

/* capacity's upper bound: the samples are pre-touched (48 bytes each). */
#define FPY_MEMTRACK_MAX_CAPACITY (1 << 20)

static int memtrack_init(FpyMemTrack *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"capacity", "min_warmup", "manual_misses", NULL};
    PyObject *capacity = NULL, *min_warmup = NULL;
    int manual = 0;
    long long cap = 0, warm = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOp:MemTrack", kw, &capacity, &min_warmup,
                                     &manual))
        return -1;
    if (capacity && fpy_arg_ll(capacity, "capacity", 0, FPY_MEMTRACK_MAX_CAPACITY, &cap) < 0)
        return -1;
    if (min_warmup && fpy_arg_ll(min_warmup, "min_warmup", 0, UINT_MAX, &warm) < 0)
        return -1;
    fp_memtrack_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.capacity = (size_t)cap;
    cfg.min_warmup = (unsigned)warm;
    cfg.manual_misses = manual;
    fp_memtrack *t = NULL;
    int rc = fp_memtrack_new_at(&cfg, &t, __FILE__, __LINE__, __func__);
    if (rc < 0) {
        fpy_raise(rc, fp_errmsg());
        return -1;
    }
    fp_unref(&self->t); /* a report() running on another thread holds its own reference */
    self->t = t;
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
    long long n;
    if (fpy_arg_ll(arg, "misses", 0, LLONG_MAX, &n) < 0)
        return NULL;
    fp_memtrack_note_pool_misses(self->t, (uint64_t)n);
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
    /* The report runs with the GIL released: it holds its own reference, so
     * __init__ on another thread meanwhile replaces the tracker without
     * freeing the one being printed. */
    fp_memtrack *t = fp_ref(self->t);
    PyObject *s = capture(print_memtrack, t);
    fp_unref(&t);
    return s;
}

static PyMethodDef memtrack_methods[] = {
    {"sample", (PyCFunction)memtrack_sample, METH_NOARGS,
     PyDoc_STR("sample($self, /)\n--\n\n"
               "Records one frame (RssAnon, minor faults, library live bytes); ~2 us.")},
    {"note_pool_misses", (PyCFunction)memtrack_note_misses, METH_O,
     PyDoc_STR("note_pool_misses($self, misses, /)\n--\n\n"
               "misses: total allocations so far (an int >= 0) of a loop whose buffers are "
               "not framepool's; warm-up ends when it stops growing.")},
    {"result", (PyCFunction)memtrack_result, METH_NOARGS,
     PyDoc_STR("result($self, /)\n--\n\n"
               "The verdict as a dict: verdict ('PASS', 'FAIL', 'INCONCLUSIVE'), frames, "
               "warmup_frames, slope (RssAnon bytes/frame, Theil-Sen), window_delta (bytes, "
               "first vs last 10%), peak_rss, last_rss (bytes), faults_per_frame, live_slope "
               "(library live bytes/frame), live_flat (1 if flat), live_bytes, idle_bytes "
               "(pool idle bytes).")},
    {"report", (PyCFunction)memtrack_report, METH_NOARGS,
     PyDoc_STR("report($self, /)\n--\n\n"
               "The verdict line (and reasons on FAIL) as text, as fp_memtrack_print prints "
               "it; the GIL is released meanwhile.")},
    {NULL, NULL, 0, NULL},
};

PyTypeObject FpyMemTrack_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "framepool.MemTrack",
    .tp_doc = PyDoc_STR("MemTrack(capacity=0, min_warmup=0, manual_misses=False)\n--\n\n"
                        "The memory-per-frame verdict: call sample() once per frame, then "
                        "result() or report().\n"
                        "capacity: samples kept, pre-allocated and pre-touched (0 = 16384; at "
                        "most 1048576; beyond it the sampling stride doubles).\n"
                        "min_warmup: warm-up lasts at least this many frames (0 = 60).\n"
                        "manual_misses: pool misses come only from note_pool_misses()."),
    .tp_basicsize = sizeof(FpyMemTrack),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)memtrack_init,
    .tp_dealloc = (destructor)memtrack_dealloc,
    .tp_methods = memtrack_methods,
};

/* ---- the module ------------------------------------------------------------------------------ */

/* ---- fork: os.register_at_fork hooks ------------------------------------------------------ */

static PyObject *mod_before_fork(PyObject *m, PyObject *noargs)
{
    (void)m;
    (void)noargs;
    fpy_log_before_fork();
    Py_RETURN_NONE;
}

static PyObject *mod_after_fork_parent(PyObject *m, PyObject *noargs)
{
    (void)m;
    (void)noargs;
    fpy_log_after_fork(0);
    Py_RETURN_NONE;
}

static PyObject *mod_after_fork_child(PyObject *m, PyObject *noargs)
{
    (void)m;
    (void)noargs;
    fpy_fork_gen++; /* everything made before is the parent's */
    fpy_reader_after_fork();
    fpy_log_after_fork(1);
    if (fpy_reader_init() < 0) /* the forking thread is the child's main thread */
        PyErr_Clear();
    Py_RETURN_NONE;
}

static PyMethodDef mod_methods[] = {
    {"open", (PyCFunction)(void (*)(void))fpy_open, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR(
         "open(source, *, format=None, size=None, every=1, start=0, end=None, threads=0, "
         "max_held=8, live=None, timeout=None, stream=None, convert_ahead=False, "
         "prefill=False, av_options=None, loop=0, loop_cache=0, interpolation=None, "
         "frame_threads=False, budget=None)\n--\n\n"
         "Opens a video -> Reader (iterate it for Frames; a context manager).\n"
         "source: a path (str, bytes, os.PathLike) or URL (rtsp://, http://, tcp://, udp://, "
         "...), or a bytes-like object holding a whole file.\n"
         "format: output pixel format: 'gray8', 'bgr24', 'rgb24', 'bgra', 'rgba', 'yuv420p', "
         "'nv12', 'yuv422p', 'yuv444p', 'yuv420p10'; None or 'native': the decoder's own "
         "(zero-copy).\n"
         "size: (width, height) of delivered frames, each 0..16384; 0 or None for one side "
         "keeps the aspect; None keeps the source size.\n"
         "every: deliver every Nth frame (int >= 1).\n"
         "start, end: seconds (finite, 0..1e9): deliver frames with start <= time < end.\n"
         "threads: decoder threads, 0..64 (0 = one per CPU, at most 16).\n"
         "max_held: frames Python may hold at once (1..4095); one more raises LimitError "
         "naming the lines that hold them (and the lines of views pinning them).\n"
         "live: None (a file), 'latest' (newest frame only), 'all' (every frame through a "
         "queue), or a dict with 'mode' and any of 'queue' (0..256), 'reconnect_min', "
         "'reconnect_max', 'stall' (seconds, 0..86400), 'max_reconnects' (0 = forever, up to "
         "1000000; a reader that gives up raises its reason from read()/next()), "
         "'repeat_ok' (bool), 'open_timeout' (seconds for each connection's open and first "
         "frame, 0..86400), 'buffer' (bytes of packets that may wait to be decoded, "
         "0..2**30; 0 = 8 MiB).\n"
         "timeout: seconds (finite, 0..1e9) allowed for the open and for each read, or None "
         "for no deadline; a read past it raises TimeoutError.\n"
         "stream: video stream index in the container (int >= 0), None for the best.\n"
         "convert_ahead: convert each frame on the reader's own thread while the next "
         "decodes.\n"
         "prefill: allocate the conversion pool to its bound before the first frame.\n"
         "av_options: FFmpeg input options as 'key=value:key=value' (e.g. "
         "'rtsp_transport=tcp').\n"
         "loop: play a file again at its end, N more times or -1 forever, without "
         "flushing the decoder; time and index go on growing.\n"
         "loop_cache: bytes of packets kept to replay the later passes from memory "
         "(0 = the default, 2 MiB; -1 = always rewind the file).\n"
         "interpolation: the scaler used by size= and format conversion: 'bilinear' (the "
         "default), 'fast_bilinear', 'bicubic', 'nearest', 'area', 'bicublin', 'gauss', "
         "'sinc', 'lanczos', 'spline', 'experimental' (FFmpeg's sws_flags).\n"
         "frame_threads: a live reader with threads > 1 decodes with frame threads "
         "instead of slice threads (bool, default False): more throughput on a stream of "
         "one slice per picture, at the price of delay (each extra thread holds every "
         "frame back one frame interval). No effect on files, which always use frame "
         "threads.\n"
         "budget: a framepool.Budget (or None) that the reader's decoder and conversion "
         "pools charge, shared with other readers and copies. A full budget first frees "
         "idle buffers of every pool on it; then a file reader's next frame raises "
         "LimitError (code ELIMIT; the message says the budget is full, with its cap, the "
         "bytes in use and the buffer asked for) and a live reader loses that frame and "
         "goes on without reconnecting (stats['budget_drops']; frames come again when the "
         "budget has room).\n"
         "Raises TypeError for a wrong type, ValueError (or OverflowError for ints beyond "
         "64 bits) naming the argument and its range, and framepool.Error subclasses "
         "(NotFoundError, FormatError, ...) for the source.")},
    {"summary", mod_summary, METH_NOARGS,
     PyDoc_STR("summary()\n--\n\n"
               "Live framepool objects by type (count, bytes, peak, created), as text.")},
    {"leak_report", (PyCFunction)(void (*)(void))mod_leak_report, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("leak_report(objects=False, singletons=False)\n--\n\n"
               "Live objects by type and creation line (needs diag_configure('sites')), as "
               "text, followed by the frames pinned by views: 'held by a view taken at "
               "file:line' for every live numpy array, memoryview or plane of a frame.\n"
               "objects: list every live object, not only the totals per line.\n"
               "singletons: include the library's process-wide objects.")},
    {"growth", (PyCFunction)(void (*)(void))mod_growth, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("growth(limit=10)\n--\n\n"
               "Types whose live count reached a new peak since the last call, as "
               "objgraph.show_growth prints them (at most `limit` lines).")},
    {"diag_configure", mod_diag_configure, METH_O,
     PyDoc_STR("diag_configure(spec, /)\n--\n\n"
               "Diagnostics switches as the FP_DIAG variable takes them, e.g. 'sites' "
               "(record creation lines) or 'sites,refs'.")},
    {"live_bytes", mod_live_bytes, METH_NOARGS,
     PyDoc_STR("live_bytes()\n--\n\n"
               "(objects, bytes) of live framepool objects (pooled frames included).")},
    {"readers", fpy_readers, METH_NOARGS,
     PyDoc_STR("readers()\n--\n\n"
               "The open readers of this process -> list of Reader (opened in this process: "
               "readers inherited through fork are not listed).")},
    {"interrupt_all", fpy_interrupt_all, METH_NOARGS,
     PyDoc_STR("interrupt_all()\n--\n\n"
               "Calls interrupt() on every open reader of this process (from any thread): "
               "each blocked read (or open) raises CancelledError; returns how many readers "
               "were interrupted. The readers stay usable.")},
    {"log_level", (PyCFunction)(void (*)(void))fpy_log_level, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("log_level(level=None)\n--\n\n"
               "The least severe logging level of the lines framepool and FFmpeg send to the "
               "'framepool' logger (a logging level: logging.DEBUG, INFO, WARNING, ERROR, an "
               "int 0..100); lines below it are dropped in C at no cost, and the logger's "
               "own level is set to it. Returns the previous level; None only reads it. The "
               "default is logging.WARNING: below it framepool is silent.")},
    {"log_flush", fpy_log_flush, METH_NOARGS,
     PyDoc_STR("log_flush()\n--\n\n"
               "Emits the log lines queued so far to the 'framepool' logger on this thread "
               "(they are otherwise emitted by framepool's log thread within milliseconds) "
               "and waits for those the log thread is emitting; returns how many it emitted. "
               "Called from a logging handler it does not wait for the log thread (that "
               "thread may be waiting for the handler's lock). Do not call it while holding "
               "a lock your handlers take.")},
    {"set_default_budget", fpy_set_default_budget, METH_O,
     PyDoc_STR("set_default_budget(budget, /)\n--\n\n"
               "Makes `budget` (a framepool.Budget, or None for none) the budget of this "
               "process's frames that belong to no reader: Frame.copy() and unpickled frames "
               "take their pixel bytes from it and give them back when the frame is freed; "
               "a copy or unpickling that does not fit raises LimitError (code FP_ELIMIT) "
               "naming the budget and the sizes. Returns the previous default (or None). "
               "Frames made before the call keep the budget they were made under. A forked "
               "child inherits the default. TypeError for anything else.")},
    {"get_default_budget", fpy_get_default_budget, METH_NOARGS,
     PyDoc_STR("get_default_budget()\n--\n\n"
               "The Budget set by set_default_budget(), or None (the default: copies and "
               "unpickled frames are uncapped).")},
    {"_frame_from_state", fpy_frame_from_state, METH_VARARGS,
     PyDoc_STR("_frame_from_state(format, width, height, planes, index, time, pts, "
               "wall_time, flags, /)\n--\n\nRebuilds a pickled Frame (Frame.__reduce__).")},
    {"_before_fork", mod_before_fork, METH_NOARGS,
     PyDoc_STR("_before_fork()\n--\n\nos.register_at_fork hook (before).")},
    {"_after_fork_parent", mod_after_fork_parent, METH_NOARGS,
     PyDoc_STR("_after_fork_parent()\n--\n\nos.register_at_fork hook (after_in_parent).")},
    {"_after_fork_child", mod_after_fork_child, METH_NOARGS,
     PyDoc_STR("_after_fork_child()\n--\n\n"
               "os.register_at_fork hook (after_in_child): the parent's readers and frames "
               "become abandoned in the child (never closed, never joined).")},
    {NULL, NULL, 0, NULL},
};

/* os.register_at_fork(before=..., after_in_parent=..., after_in_child=...) */
static int register_fork_hooks(PyObject *m)
{
    PyObject *os = PyImport_ImportModule("os");
    if (!os)
        return -1;
    PyObject *reg = PyObject_GetAttrString(os, "register_at_fork");
    Py_DECREF(os);
    if (!reg)
        return -1;
    PyObject *kw = Py_BuildValue("{s:N,s:N,s:N}", "before",
                                 PyObject_GetAttrString(m, "_before_fork"), "after_in_parent",
                                 PyObject_GetAttrString(m, "_after_fork_parent"),
                                 "after_in_child", PyObject_GetAttrString(m, "_after_fork_child"));
    PyObject *empty = PyTuple_New(0);
    PyObject *r = kw && empty ? PyObject_Call(reg, empty, kw) : NULL;
    Py_XDECREF(empty);
    Py_XDECREF(kw);
    Py_DECREF(reg);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

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

/* An exception class whose __text_signature__ is "(*args)" (taken from the
 * type's internal doc, which starts "Name(*args)\n--\n\n") while __doc__
 * is the plain text: inspect.signature works on it. */
static PyObject *new_exception(const char *full, const char *name, const char *doc,
                               PyObject *bases)
{
    char internal[512];
    snprintf(internal, sizeof internal, "%s(*args)\n--\n\n%s", name, doc);
    PyObject *cls = PyErr_NewExceptionWithDoc(full, internal, bases, NULL);
    if (!cls)
        return NULL;
    PyObject *d = PyUnicode_FromString(doc);
    if (!d || PyObject_SetAttrString(cls, "__doc__", d) < 0) {
        Py_XDECREF(d);
        Py_DECREF(cls);
        return NULL;
    }
    Py_DECREF(d);
    return cls;
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
        add_type(m, &FpyMemTrack_Type, "MemTrack") < 0 ||
        add_type(m, &FpyBudget_Type, "Budget") < 0)
        goto fail;
    FpyError = new_exception("framepool.Error", "Error",
                             "A framepool error; `code` is its framepool.ErrorCode (an IntEnum of the C "
                             "library's FP_E* values, ints < 0: e.code == framepool.ELIMIT).",
                             PyExc_Exception);
    if (!FpyError || PyModule_AddObjectRef(m, "Error", FpyError) < 0)
        goto fail;
    for (size_t i = 0; i < sizeof excs / sizeof excs[0]; i++) {
        char full[64];
        snprintf(full, sizeof full, "framepool.%s", excs[i].name);
        PyObject *bases = excs[i].builtin ? PyTuple_Pack(2, FpyError, *excs[i].builtin)
                                          : PyTuple_Pack(1, FpyError);
        if (!bases)
            goto fail;
        excs[i].cls = new_exception(full, excs[i].name, excs[i].doc, bases);
        Py_DECREF(bases);
        if (!excs[i].cls || PyModule_AddObjectRef(m, excs[i].name, excs[i].cls) < 0)
            goto fail;
    }
    if (add_error_codes(m) < 0)
        goto fail;
    if (PyModule_AddIntConstant(m, "TRACEMALLOC_DOMAIN", FPY_TRACEMALLOC_DOMAIN) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_KEY", FP_IMAGE_KEY) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_CORRUPT", FP_IMAGE_CORRUPT) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_READONLY", FP_IMAGE_READONLY) < 0 ||
        PyModule_AddStringConstant(m, "C_VERSION", FP_VERSION_STRING) < 0)
        goto fail;
    if (register_fork_hooks(m) < 0 || fpy_log_init(m) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
