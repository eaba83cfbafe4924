/*
 * python/frame.c — framepool.Frame: one reference to a pooled fp_image,
 * exported to numpy through the buffer protocol without a copy.
 *
 * Buffer layout. Packed formats export one array: gray8 (h, w), bgr24 and
 * rgb24 (h, w, 3), bgra and rgba (h, w, 4), uint8, with the image's row
 * stride (rows are padded to 64 bytes, so arrays are strided, not
 * C-contiguous). Planar formats (yuv420p, nv12, yuv422p, yuv444p,
 * yuv420p10) have no single array shape: exporting the frame raises
 * BufferError saying so, and frame.plane(i) / frame.planes give one array
 * per plane (nv12's UV plane is (h/2, w/2, 2); yuv420p10 planes are uint16).
 *
 * Writability. An export is writable only when framepool says the image is
 * (fp_image_is_writable: this frame holds the only reference and it is not
 * read-only); native frames the decoder still uses as references are
 * read-only, and frame.make_writable() copies them.
 *
 * Lifetime. Every export (and every Plane object) pins the frame: while one
 * lives, release() raises BufferError as memoryview.release() does, and the
 * pixels stay valid; the frame is freed when the last view goes.
 */
#include "fpy.h"

#include <framepool/imgsave.h>
#include <limits.h>
#include <math.h>
#include <structmember.h>

/* ---- the calling Python line ------------------------------------------------------- */

void fpy_caller_site(PyObject **file, int *line, PyObject **func)
{
    *file = NULL;
    *line = 0;
    if (func)
        *func = NULL;
    PyFrameObject *fr = PyEval_GetFrame(); /* borrowed; NULL outside Python code */
    if (!fr)
        return;
    PyCodeObject *code = PyFrame_GetCode(fr); /* new reference */
    *line = PyFrame_GetLineNumber(fr);
    *file = Py_NewRef(code->co_filename);
    if (func)
        *func = Py_NewRef(code->co_name);
    Py_DECREF(code);
}

void fpy_caller_site_interned(const char **file, int *line, const char **func)
{
    PyObject *f = NULL, *fn = NULL;
    fpy_caller_site(&f, line, &fn);
    *file = f ? fpy_intern(f) : "<python>";
    *func = fn ? fpy_intern(fn) : "";
    Py_XDECREF(f);
    Py_XDECREF(fn);
}

/* ---- creation and release --------------------------------------------------------------- */

unsigned long fpy_fork_gen;
static FpyFrame *all_frames; /* every live Frame, guarded by the GIL */

static void track(FpyFrame *f)
{
    /* Attributed to the Python line running now (the GIL is held). Returns
     * -2 when tracemalloc is not tracing: nothing to undo then. */
    uintptr_t p = (uintptr_t)f->img->data[0];
    if (p && PyTraceMalloc_Track(FPY_TRACEMALLOC_DOMAIN, p, f->img->bytes) == 0)
        f->tracked = p;
}

/* Drops a copy charged to a Budget and frees its buffer now (rather than
 * keeping it idle in the Budget's copy pool), so that the budget's used
 * bytes drop with it. */
static void unref_charged(fp_image **img)
{
    if (!*img)
        return;
    fp_pool *pool = fp_image_get_pool(*img); /* +1, NULL once the Budget let go */
    fp_unref(img);
    if (pool) {
        fp_pool_trim(pool, 0);
        fp_unref(&pool);
    }
}

FpyFrame *fpy_frame_new(fp_image *img)
{
    FpyFrame *f = PyObject_GC_New(FpyFrame, &FpyFrame_Type);
    if (!f) {
        fp_unref(&img);
        return NULL;
    }
    f->img = img;
    f->weakreflist = NULL;
    f->owner = NULL;
    f->prev = f->next = NULL;
    f->exports = 0;
    f->views = NULL;
    f->tracked = 0;
    f->charged = 0;
    f->gen = fpy_fork_gen;
    f->pool_name[0] = 0;
    f->all_prev = NULL;
    f->all_next = all_frames;
    if (all_frames)
        all_frames->all_prev = f;
    all_frames = f;
    fp_pool *pool = fp_image_get_pool(img); /* +1, or NULL when its owner let go */
    if (pool) {
        const char *n = fp_pool_name(pool);
        snprintf(f->pool_name, sizeof f->pool_name, "%s", n ? n : "");
        fp_unref(&pool);
    }
    fpy_caller_site(&f->site_file, &f->site_line, NULL);
    track(f);
    PyObject_GC_Track(f);
    return f;
}

void fpy_frame_drop(FpyFrame *f)
{
    if (f->tracked) {
        PyTraceMalloc_Untrack(FPY_TRACEMALLOC_DOMAIN, f->tracked);
        f->tracked = 0;
    }
    if (f->owner)
        fpy_reader_unlink(f);
    if (f->gen != fpy_fork_gen) {
        /* Inherited through fork: its pool's lock may be held by a thread that
         * exists only in the parent. The reference is left as it is (the
         * child's copy of the memory stays as the parent left it). */
        f->img = NULL;
        return;
    }
    if (f->charged) {
        unref_charged(&f->img);
        return;
    }
    fp_unref(&f->img); /* the pool takes its buffer back (its own lock, no Python) */
}

static int frame_traverse(FpyFrame *f, visitproc visit, void *arg)
{
    /* A frame refers to no Python object that could be part of a cycle
     * (site_file is a str); it is GC-tracked so that gc.get_objects() and
     * objgraph see frames. */
    (void)f;
    (void)visit;
    (void)arg;
    return 0;
}

static void frame_dealloc(FpyFrame *f)
{
    PyObject_GC_UnTrack(f);
    if (f->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)f);
    fpy_frame_drop(f);
    if (f->all_prev)
        f->all_prev->all_next = f->all_next;
    else if (all_frames == f)
        all_frames = f->all_next;
    if (f->all_next)
        f->all_next->all_prev = f->all_prev;
    Py_CLEAR(f->site_file);
    PyObject_GC_Del(f);
}

static int check_live(FpyFrame *f)
{
    if (!f->img) {
        PyErr_SetString(PyExc_ValueError, "operation on a released frame");
        return -1;
    }
    return 0;
}

/* ---- geometry --------------------------------------------------------------------------- */

/* Channels of a packed format, 0 for planar or unknown ones. */
static int packed_channels(fp_pixfmt fmt)
{
    switch (fmt) {
    case FP_PIX_GRAY8: return 1;
    case FP_PIX_BGR24:
    case FP_PIX_RGB24: return 3;
    case FP_PIX_BGRA:
    case FP_PIX_RGBA: return 4;
    default: return 0;
    }
}

typedef struct geom {
    void *buf;
    int ndim;
    Py_ssize_t shape[3], strides[3];
    Py_ssize_t itemsize;
    const char *format;
} geom;

/* The array of plane `p` (-1: the whole frame, packed formats only). */
static int plane_geom(const fp_image *img, int p, geom *g)
{
    const fp_pixfmt_desc *d = fp_pixfmt_describe(img->format);
    if (!d) {
        PyErr_Format(PyExc_BufferError,
                     "frame format '%s' (AVPixelFormat %d) has no known plane layout; "
                     "open the reader with format='bgr24' (or another packed format)",
                     fp_pixfmt_name(img->format), img->av_format);
        return -1;
    }
    int ch = packed_channels(img->format);
    if (p < 0) {
        if (!ch) {
            PyErr_Format(PyExc_BufferError,
                         "a %s frame has %d planes and no single array shape: use "
                         "frame.plane(i) or frame.planes for one array per plane, or open "
                         "the reader with format='bgr24' (or gray8, rgb24, bgra, rgba)",
                         d->name, d->planes);
            return -1;
        }
        p = 0;
    }
    if (p >= d->planes || !img->data[p]) {
        PyErr_Format(PyExc_IndexError, "a %s frame has planes 0..%d", d->name, d->planes - 1);
        return -1;
    }
    int sub_w = p ? d->log2_chroma_w : 0, sub_h = p ? d->log2_chroma_h : 0;
    int w = -((-img->width) >> sub_w), h = -((-img->height) >> sub_h);
    int bpp = d->bytes_per_pixel[p];
    int wide = img->format == FP_PIX_YUV420P10; /* 16-bit samples */
    g->buf = img->data[p];
    g->itemsize = wide ? 2 : 1;
    g->format = wide ? "H" : "B";
    int comps = (int)(bpp / g->itemsize);
    if (d->planes == 1)
        comps = ch;
    g->shape[0] = h;
    g->shape[1] = w;
    g->strides[0] = img->stride[p];
    g->strides[1] = (Py_ssize_t)comps * g->itemsize;
    if (comps > 1) {
        g->ndim = 3;
        g->shape[2] = comps;
        g->strides[2] = g->itemsize;
    } else {
        g->ndim = 2;
    }
    return 0;
}

/* ---- views: every export, with the Python line that took it ------------------------------ */

/* A new view record of f at the calling Python line (linked, counted as an
 * export); NULL with MemoryError. tracemalloc then attributes the frame's
 * pixels to that line: the view is what keeps them. */
static fpy_view *view_new(FpyFrame *f)
{
    fpy_view *v = PyMem_Malloc(sizeof *v);
    if (!v) {
        PyErr_NoMemory();
        return NULL;
    }
    PyObject *file = NULL;
    fpy_caller_site(&file, &v->line, NULL);
    v->file = file ? fpy_intern(file) : "<unknown>";
    Py_XDECREF(file);
    v->prev = NULL;
    v->next = f->views;
    if (f->views)
        f->views->prev = v;
    f->views = v;
    f->exports++;
    if (f->tracked && f->img)
        PyTraceMalloc_Track(FPY_TRACEMALLOC_DOMAIN, f->tracked, f->img->bytes);
    return v;
}

static void view_free(FpyFrame *f, fpy_view *v)
{
    if (!v)
        return;
    if (v->prev)
        v->prev->next = v->next;
    else
        f->views = v->next;
    if (v->next)
        v->next->prev = v->prev;
    f->exports--;
    PyMem_Free(v);
}

PyObject *fpy_frame_view_sites(FpyFrame *f)
{
    PyObject *l = PyList_New(0);
    for (fpy_view *v = f->views; l && v; v = v->next) {
        PyObject *s = PyUnicode_FromFormat("%s:%d", v->file, v->line);
        if (!s || PyList_Append(l, s) < 0)
            Py_CLEAR(l);
        Py_XDECREF(s);
    }
    return l;
}

int fpy_frames_view_lines(PyObject *out)
{
    for (FpyFrame *f = all_frames; f; f = f->all_next) {
        for (fpy_view *v = f->views; v; v = v->next) {
            PyObject *s = PyUnicode_FromFormat(
                "  frame #%lld received at %S:%d, held by a view taken at %s:%d",
                f->img ? (long long)f->img->index : -1LL, f->site_file ? f->site_file : Py_None,
                f->site_line, v->file, v->line);
            int rc = s ? PyList_Append(out, s) : -1;
            Py_XDECREF(s);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

static int export_geom(PyObject *exporter, FpyFrame *f, const geom *g, Py_ssize_t *shape,
                       Py_ssize_t *strides, Py_buffer *view, int flags)
{
    int writable = fp_image_is_writable(f->img);
    if ((flags & PyBUF_WRITABLE) && !writable) {
        PyErr_SetString(PyExc_BufferError,
                        "frame is read-only (the decoder still references it, or it is shared): "
                        "call frame.make_writable() first, or use a read-only view");
        return -1;
    }
    Py_ssize_t rowbytes = g->shape[1] * g->strides[1];
    int contiguous = g->strides[0] == rowbytes;
    if (!(flags & PyBUF_STRIDES) && !contiguous) {
        PyErr_Format(PyExc_BufferError,
                     "frame rows are padded (stride %zd bytes for %zd bytes of pixels): the "
                     "consumer must accept strides (numpy and memoryview do)",
                     g->strides[0], rowbytes);
        return -1;
    }
    memcpy(shape, g->shape, sizeof g->shape);
    memcpy(strides, g->strides, sizeof g->strides);
    Py_ssize_t n = g->itemsize;
    for (int i = 0; i < g->ndim; i++)
        n *= g->shape[i];
    view->buf = g->buf;
    view->obj = Py_NewRef(exporter);
    view->len = n;
    view->readonly = !writable;
    view->itemsize = g->itemsize;
    view->format = (flags & PyBUF_FORMAT) ? (char *)g->format : NULL;
    view->ndim = g->ndim;
    view->shape = (flags & PyBUF_ND) ? shape : NULL;
    view->strides = (flags & PyBUF_STRIDES) ? strides : NULL;
    view->suboffsets = NULL;
    view->internal = NULL;
    if (!(flags & PyBUF_ND))
        view->ndim = 1; /* contiguous bytes; shape NULL means len/itemsize items */
    return 0;
}

static int frame_getbuffer(FpyFrame *f, Py_buffer *view, int flags)
{
    if (!f->img) {
        PyErr_SetString(PyExc_BufferError, "frame was released");
        view->obj = NULL;
        return -1;
    }
    geom g;
    if (plane_geom(f->img, -1, &g) < 0) {
        view->obj = NULL;
        return -1;
    }
    /* shape/strides must outlive the export: they live in the view's
     * record (view->internal, freed in releasebuffer). */
    fpy_view *v = view_new(f);
    if (!v) {
        view->obj = NULL;
        return -1;
    }
    if (export_geom((PyObject *)f, f, &g, v->arrays, v->arrays + 3, view, flags) < 0) {
        view_free(f, v);
        view->obj = NULL;
        return -1;
    }
    view->internal = v;
    return 0;
}

static void frame_releasebuffer(FpyFrame *f, Py_buffer *view)
{
    view_free(f, view->internal);
    view->internal = NULL;
}

static PyBufferProcs frame_as_buffer = {
    (getbufferproc)frame_getbuffer,
    (releasebufferproc)frame_releasebuffer,
};

/* ---- Plane: one plane of a frame, as its own buffer exporter ------------------------------ */

typedef struct {
    PyObject_HEAD
    FpyFrame *frame; /* strong; this plane counts as one export of it */
    fpy_view *view;  /* that export, with the line that took the plane */
    int plane;
    geom g;
} FpyPlane;

static PyObject *plane_new(FpyFrame *f, int p)
{
    geom g;
    if (check_live(f) < 0 || plane_geom(f->img, p, &g) < 0)
        return NULL;
    FpyPlane *pl = PyObject_New(FpyPlane, &FpyPlane_Type);
    if (!pl)
        return NULL;
    pl->view = view_new(f);
    if (!pl->view) {
        PyObject_Free(pl);
        return NULL;
    }
    pl->frame = (FpyFrame *)Py_NewRef(f);
    pl->plane = p;
    pl->g = g;
    return (PyObject *)pl;
}

static void plane_dealloc(FpyPlane *pl)
{
    view_free(pl->frame, pl->view);
    Py_DECREF(pl->frame);
    PyObject_Free(pl);
}

static int plane_getbuffer(FpyPlane *pl, Py_buffer *view, int flags)
{
    fpy_view *v = view_new(pl->frame);
    if (!v) {
        view->obj = NULL;
        return -1;
    }
    if (export_geom((PyObject *)pl, pl->frame, &pl->g, v->arrays, v->arrays + 3, view, flags) <
        0) {
        view_free(pl->frame, v);
        view->obj = NULL;
        return -1;
    }
    view->internal = v;
    return 0;
}

static void plane_releasebuffer(FpyPlane *pl, Py_buffer *view)
{
    view_free(pl->frame, view->internal);
    view->internal = NULL;
}

static PyBufferProcs plane_as_buffer = {
    (getbufferproc)plane_getbuffer,
    (releasebufferproc)plane_releasebuffer,
};

static PyObject *plane_repr(FpyPlane *pl)
{
    return PyUnicode_FromFormat("<framepool.Plane %d of %R: %zdx%zd>", pl->plane, pl->frame,
                                pl->g.shape[1], pl->g.shape[0]);
}

PyTypeObject FpyPlane_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "framepool.Plane",
    .tp_doc = PyDoc_STR("One plane of a frame (frame.planes, frame.plane(i)), exported through "
                        "the buffer protocol "
                        "(np.asarray(plane)); keeps the frame alive."),
    .tp_basicsize = sizeof(FpyPlane),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)plane_dealloc,
    .tp_repr = (reprfunc)plane_repr,
    .tp_as_buffer = &plane_as_buffer,
};

/* ---- methods ------------------------------------------------------------------------------ */

static PyObject *frame_release(FpyFrame *f, PyObject *noargs)
{
    (void)noargs;
    if (f->exports > 0) {
        PyErr_Format(PyExc_BufferError,
                     "frame has %zd exported buffer%s (numpy arrays, memoryviews or planes): "
                     "delete them before releasing the frame",
                     f->exports, f->exports == 1 ? "" : "s");
        return NULL;
    }
    fpy_frame_drop(f);
    Py_RETURN_NONE;
}

static PyObject *frame_enter(FpyFrame *f, PyObject *noargs)
{
    (void)noargs;
    if (check_live(f) < 0)
        return NULL;
    return Py_NewRef(f);
}

static PyObject *frame_exit(FpyFrame *f, PyObject *args)
{
    (void)args;
    return frame_release(f, NULL);
}

static PyObject *frame_sizeof(FpyFrame *f, PyObject *noargs)
{
    (void)noargs;
    size_t n = Py_TYPE(f)->tp_basicsize + (f->img ? f->img->bytes : 0);
    return PyLong_FromSize_t(n);
}

static PyObject *frame_plane(FpyFrame *f, PyObject *arg)
{
    long p = PyLong_AsLong(arg);
    if (p == -1 && PyErr_Occurred())
        return NULL;
    if (p < 0 || p > 3) {
        PyErr_Format(PyExc_IndexError, "plane index must be in 0..3, not %ld", p);
        return NULL;
    }
    return plane_new(f, (int)p);
}

static PyObject *frame_make_writable(FpyFrame *f, PyObject *noargs)
{
    (void)noargs;
    if (check_live(f) < 0)
        return NULL;
    if (fp_image_is_writable(f->img))
        Py_RETURN_NONE;
    if (f->exports > 0) {
        PyErr_SetString(PyExc_BufferError,
                        "frame has exported buffers: a writable copy would change its pixel "
                        "address under them; delete them first");
        return NULL;
    }
    fp_image *img = f->img;
    uintptr_t old = f->tracked;
    int rc = fp_image_make_writable(&img);
    if (rc < 0)
        return fpy_raise(rc, NULL);
    if (img != f->img) {
        /* make_writable dropped our reference to the original */
        if (old)
            PyTraceMalloc_Untrack(FPY_TRACEMALLOC_DOMAIN, old);
        f->tracked = 0;
        f->img = img;
        track(f);
    }
    Py_RETURN_NONE;
}

static PyObject *frame_copy(FpyFrame *f, PyObject *noargs)
{
    (void)noargs;
    if (check_live(f) < 0)
        return NULL;
    fp_image *out = NULL;
    const char *file, *func;
    int line;
    fpy_caller_site_interned(&file, &line, &func);
    int charged = fpy_budget_copy(f->img, &out, "Frame.copy()", file, line, func);
    if (charged < 0)
        return NULL;
    FpyFrame *c = fpy_frame_new(out);
    if (c)
        c->charged = charged;
    return (PyObject *)c;
}

static PyObject *frame_save(FpyFrame *f, PyObject *arg)
{
    if (check_live(f) < 0)
        return NULL;
    PyObject *bytes = NULL;
    if (!PyUnicode_FSConverter(arg, &bytes))
        return NULL;
    int rc;
    /* The encoder reads the pixels with the GIL released: hold a reference
     * of our own, so that frame.release() on another thread meanwhile only
     * drops the frame's (the pixels go back to their pool after the save). */
    fp_image *img = fp_ref(f->img);
    const char *path = PyBytes_AS_STRING(bytes);
    char msg[512] = "";
    Py_BEGIN_ALLOW_THREADS
    rc = fp_image_save(path, img, NULL);
    if (rc < 0)
        snprintf(msg, sizeof msg, "%s", fp_errmsg()); /* thread-local: read on this thread */
    fp_unref(&img); /* an inherited frame keeps its own: never the last one */
    Py_END_ALLOW_THREADS
    Py_DECREF(bytes);
    if (rc < 0)
        return fpy_raise(rc, msg);
    Py_RETURN_NONE;
}

static PyObject *frame_tobytes(FpyFrame *f, PyObject *noargs)
{
    (void)noargs;
    if (check_live(f) < 0)
        return NULL;
    geom g;
    if (plane_geom(f->img, -1, &g) < 0)
        return NULL;
    Py_ssize_t row = g.shape[1] * g.strides[1];
    PyObject *b = PyBytes_FromStringAndSize(NULL, row * g.shape[0]);
    if (!b)
        return NULL;
    char *dst = PyBytes_AS_STRING(b);
    for (Py_ssize_t y = 0; y < g.shape[0]; y++)
        memcpy(dst + y * row, (char *)g.buf + y * g.strides[0], (size_t)row);
    return b;
}

/* ---- pickling: a standalone copy with the metadata ------------------------------------ */

/* Rows of each plane without padding (one copy of the pixels), and the
 * metadata a frame carries. Frames of formats only FFmpeg knows (format
 * 'other') do not pickle. */
static PyObject *frame_reduce(FpyFrame *f, PyObject *noargs)
{
    (void)noargs;
    if (check_live(f) < 0)
        return NULL;
    const fp_image *img = f->img;
    const fp_pixfmt_desc *d = fp_pixfmt_describe(img->format);
    if (!d) {
        PyErr_Format(PyExc_TypeError,
                     "cannot pickle a frame of format '%s' (AVPixelFormat %d): open the reader "
                     "with a known format (format='bgr24', 'yuv420p', ...)",
                     fp_pixfmt_name(img->format), img->av_format);
        return NULL;
    }
    PyObject *planes = PyTuple_New(d->planes);
    if (!planes)
        return NULL;
    for (int p = 0; p < d->planes; p++) {
        geom g;
        if (plane_geom(img, p, &g) < 0) {
            Py_DECREF(planes);
            return NULL;
        }
        Py_ssize_t row = g.shape[1] * g.strides[1];
        PyObject *b = PyBytes_FromStringAndSize(NULL, row * g.shape[0]);
        if (!b) {
            Py_DECREF(planes);
            return NULL;
        }
        char *dst = PyBytes_AS_STRING(b);
        for (Py_ssize_t y = 0; y < g.shape[0]; y++)
            memcpy(dst + y * row, (char *)g.buf + y * g.strides[0], (size_t)row);
        PyTuple_SET_ITEM(planes, p, b);
    }
    PyObject *mod = PyImport_ImportModule("framepool._framepool");
    PyObject *fn = mod ? PyObject_GetAttrString(mod, "_frame_from_state") : NULL;
    Py_XDECREF(mod);
    if (!fn) {
        Py_DECREF(planes);
        return NULL;
    }
    PyObject *pts = img->pts == INT64_MIN ? Py_NewRef(Py_None) : PyLong_FromLongLong(img->pts);
    if (!pts) {
        Py_DECREF(planes);
        Py_DECREF(fn);
        return NULL;
    }
    return Py_BuildValue("(N(siiNLdNdI))", fn, fp_pixfmt_name(img->format), img->width, img->height, planes,
                         (long long)img->index, img->time, pts, img->wall_time,
                         img->flags & ~(unsigned)FP_IMAGE_READONLY);
}

PyObject *fpy_frame_from_state(PyObject *module, PyObject *args)
{
    (void)module;
    const char *fmt_name;
    int w, h;
    PyObject *planes, *pts_obj;
    long long index;
    double time, wall_time;
    unsigned flags;
    if (!PyArg_ParseTuple(args, "siiO!LdOdI:_frame_from_state", &fmt_name, &w, &h,
                          &PyTuple_Type, &planes, &index, &time, &pts_obj, &wall_time, &flags))
        return NULL;
    fp_pixfmt fmt = fp_pixfmt_from_name(fmt_name);
    const fp_pixfmt_desc *d = fp_pixfmt_describe(fmt);
    if (!d || PyTuple_GET_SIZE(planes) != d->planes) {
        PyErr_Format(PyExc_ValueError, "not a pickled frame: format %s with %zd planes",
                     fmt_name, PyTuple_GET_SIZE(planes));
        return NULL;
    }
    int64_t pts = INT64_MIN;
    if (pts_obj != Py_None) {
        long long v;
        if (fpy_arg_ll(pts_obj, "pts", LLONG_MIN, LLONG_MAX, &v) < 0)
            return NULL;
        pts = v;
    }
    const char *cfile, *cfunc;
    int line;
    fpy_caller_site_interned(&cfile, &line, &cfunc);
    fp_image *img = NULL;
    int charged = fpy_budget_image(fmt, w, h, &img, "unpickling a frame", cfile, line, cfunc);
    if (charged < 0)
        return NULL;
    for (int p = 0; p < d->planes; p++) {
        geom g;
        PyObject *b = PyTuple_GET_ITEM(planes, p);
        if (plane_geom(img, p, &g) < 0) {
            unref_charged(&img);
            return NULL;
        }
        Py_ssize_t row = g.shape[1] * g.strides[1];
        if (!PyBytes_Check(b) || PyBytes_GET_SIZE(b) != row * g.shape[0]) {
            PyErr_Format(PyExc_ValueError, "not a pickled frame: plane %d must be %zd bytes", p,
                         row * g.shape[0]);
            unref_charged(&img);
            return NULL;
        }
        const char *src = PyBytes_AS_STRING(b);
        for (Py_ssize_t y = 0; y < g.shape[0]; y++)
            memcpy((char *)g.buf + y * g.strides[0], src + y * row, (size_t)row);
    }
    /* a new image this function alone refers to: its metadata is ours to set */
    img->index = index;
    img->time = time;
    img->pts = pts;
    img->wall_time = wall_time;
    img->flags = flags & (FP_IMAGE_KEY | FP_IMAGE_CORRUPT);
    FpyFrame *f = fpy_frame_new(img);
    if (f)
        f->charged = charged;
    return (PyObject *)f;
}

/* numpy tries the buffer protocol first and, when it fails, quietly makes a
 * 0-d object array; __array__ is its last resort and its errors propagate,
 * so a planar or released frame gives the BufferError that explains why. */
static PyObject *frame_array(FpyFrame *f, PyObject *args)
{
    PyObject *dtype = Py_None, *copy = Py_None;
    if (!PyArg_ParseTuple(args, "|OO:__array__", &dtype, &copy))
        return NULL;
    if (!f->img) {
        PyErr_SetString(PyExc_BufferError, "frame was released");
        return NULL;
    }
    geom g;
    if (plane_geom(f->img, -1, &g) < 0)
        return NULL;
    PyObject *np = PyImport_ImportModule("numpy");
    if (!np)
        return NULL;
    PyObject *mv = PyMemoryView_FromObject((PyObject *)f);
    PyObject *a = mv ? PyObject_CallMethod(np, "asarray", "OO", mv, dtype) : NULL;
    Py_XDECREF(mv);
    Py_DECREF(np);
    return a;
}

static PyMethodDef frame_methods[] = {
    {"__array__", (PyCFunction)frame_array, METH_VARARGS,
     PyDoc_STR("__array__($self, dtype=None, copy=None, /)\n--\n\n"
               "numpy's fallback: the zero-copy array of a packed frame; BufferError saying "
               "why for a planar or released frame.")},
    {"release", (PyCFunction)frame_release, METH_NOARGS,
     PyDoc_STR("release($self, /)\n--\n\n"
               "Gives the pixels back to their pool now. Raises BufferError while numpy "
               "arrays, memoryviews or planes of the frame exist (like memoryview.release()).")},
    {"__enter__", (PyCFunction)frame_enter, METH_NOARGS,
     PyDoc_STR("__enter__($self, /)\n--\n\nReturns the frame (ValueError if released).")},
    {"__exit__", (PyCFunction)frame_exit, METH_VARARGS,
     PyDoc_STR("__exit__($self, exc_type=None, exc=None, tb=None, /)\n--\n\n"
               "Releases the frame as release() does.")},
    {"__sizeof__", (PyCFunction)frame_sizeof, METH_NOARGS,
     PyDoc_STR("__sizeof__($self, /)\n--\n\nObject size plus the pixel bytes the frame holds.")},
    {"__reduce__", (PyCFunction)frame_reduce, METH_NOARGS,
     PyDoc_STR("__reduce__($self, /)\n--\n\n"
               "Pickling: a standalone copy of the pixels (cost: one copy, rows without "
               "padding) with index, time, pts, wall_time, flags and format. The unpickled "
               "frame is an ordinary framepool frame (counted in live_bytes, tracked by "
               "tracemalloc at the unpickling line), writable, and belongs to no reader; "
               "with a default budget (set_default_budget) in the unpickling process it is "
               "charged to it (LimitError when full) and released from it when freed. "
               "TypeError for frames of format 'other'.")},
    {"plane", (PyCFunction)frame_plane, METH_O,
     PyDoc_STR("plane($self, i, /)\n--\n\n"
               "An exporter of plane i (0..3) -> Plane: np.asarray(frame.plane(0)) is the Y "
               "plane of a YUV frame. The Plane is a view: it pins the frame, and the line "
               "that took it is named by LimitError and leak_report(). IndexError for a "
               "plane the format does not have.")},
    {"make_writable", (PyCFunction)frame_make_writable, METH_NOARGS,
     PyDoc_STR("make_writable($self, /)\n--\n\n"
               "Makes the pixels writable, copying them (from the same pool) only when the "
               "decoder still references them. BufferError while views exist.")},
    {"copy", (PyCFunction)frame_copy, METH_NOARGS,
     PyDoc_STR("copy($self, /)\n--\n\n"
               "A standalone writable copy -> Frame (not counted against the reader's "
               "max_held). With a default budget (set_default_budget) the copy's bytes are "
               "charged to it and given back when the copy is freed; LimitError (code "
               "FP_ELIMIT) naming the budget and the sizes when it cannot hold the copy.")},
    {"save", (PyCFunction)frame_save, METH_O,
     PyDoc_STR("save($self, path, /)\n--\n\n"
               "Writes PNG, JPEG, BMP, PPM or PGM by the extension of path (str, bytes or "
               "os.PathLike), without OpenCV; the GIL is released meanwhile and the frame's "
               "pixels stay valid for the whole save even if another thread releases the "
               "frame. framepool.Error subclasses on failure.")},
    {"tobytes", (PyCFunction)frame_tobytes, METH_NOARGS,
     PyDoc_STR("tobytes($self, /)\n--\n\n"
               "The pixels of a packed frame as bytes, rows without padding.")},
    {NULL, NULL, 0, NULL},
};

/* ---- attributes --------------------------------------------------------------------------- */

#define LIVE_OR_NULL(f)          \
    do {                         \
        if (check_live(f) < 0)   \
            return NULL;         \
    } while (0)

static PyObject *get_width(FpyFrame *f, void *c) { (void)c; LIVE_OR_NULL(f); return PyLong_FromLong(f->img->width); }
static PyObject *get_height(FpyFrame *f, void *c) { (void)c; LIVE_OR_NULL(f); return PyLong_FromLong(f->img->height); }
static PyObject *get_format(FpyFrame *f, void *c)
{
    (void)c;
    LIVE_OR_NULL(f);
    return PyUnicode_FromString(fp_pixfmt_name(f->img->format));
}
static PyObject *get_pts(FpyFrame *f, void *c)
{
    (void)c;
    LIVE_OR_NULL(f);
    if (f->img->pts == INT64_MIN)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(f->img->pts);
}
static PyObject *get_wall_time(FpyFrame *f, void *c)
{
    (void)c;
    LIVE_OR_NULL(f);
    return PyFloat_FromDouble(f->img->wall_time);
}
static PyObject *get_time(FpyFrame *f, void *c)
{
    (void)c;
    LIVE_OR_NULL(f);
    if (isnan(f->img->time))
        Py_RETURN_NONE;
    return PyFloat_FromDouble(f->img->time);
}
static PyObject *get_index(FpyFrame *f, void *c) { (void)c; LIVE_OR_NULL(f); return PyLong_FromLongLong(f->img->index); }
static PyObject *get_flags(FpyFrame *f, void *c) { (void)c; LIVE_OR_NULL(f); return PyLong_FromUnsignedLong(f->img->flags); }
static PyObject *get_key(FpyFrame *f, void *c) { (void)c; LIVE_OR_NULL(f); return PyBool_FromLong(f->img->flags & FP_IMAGE_KEY); }
static PyObject *get_corrupt(FpyFrame *f, void *c) { (void)c; LIVE_OR_NULL(f); return PyBool_FromLong(f->img->flags & FP_IMAGE_CORRUPT); }
static PyObject *get_writable(FpyFrame *f, void *c) { (void)c; LIVE_OR_NULL(f); return PyBool_FromLong(fp_image_is_writable(f->img)); }
static PyObject *get_nbytes(FpyFrame *f, void *c) { (void)c; LIVE_OR_NULL(f); return PyLong_FromSize_t(f->img->bytes); }
static PyObject *get_released(FpyFrame *f, void *c) { (void)c; return PyBool_FromLong(f->img == NULL); }
static PyObject *get_pool(FpyFrame *f, void *c)
{
    (void)c;
    if (!f->pool_name[0])
        Py_RETURN_NONE;
    return PyUnicode_FromString(f->pool_name);
}
static PyObject *get_shape(FpyFrame *f, void *c)
{
    (void)c;
    LIVE_OR_NULL(f);
    geom g;
    if (plane_geom(f->img, -1, &g) < 0)
        return NULL;
    if (g.ndim == 2)
        return Py_BuildValue("(nn)", g.shape[0], g.shape[1]);
    return Py_BuildValue("(nnn)", g.shape[0], g.shape[1], g.shape[2]);
}
static PyObject *get_planes(FpyFrame *f, void *c)
{
    (void)c;
    LIVE_OR_NULL(f);
    const fp_pixfmt_desc *d = fp_pixfmt_describe(f->img->format);
    int n = d ? d->planes : 0;
    PyObject *t = PyTuple_New(n);
    for (int i = 0; t && i < n; i++) {
        PyObject *p = plane_new(f, i);
        if (!p) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, p);
    }
    return t;
}
static PyObject *get_site(FpyFrame *f, void *c)
{
    (void)c;
    if (!f->site_file)
        Py_RETURN_NONE;
    return PyUnicode_FromFormat("%U:%d", f->site_file, f->site_line);
}

static PyObject *get_views(FpyFrame *f, void *c)
{
    (void)c;
    return fpy_frame_view_sites(f);
}

static PyGetSetDef frame_getset[] = {
    {"width", (getter)get_width, NULL, PyDoc_STR("int: width in pixels"), NULL},
    {"height", (getter)get_height, NULL, PyDoc_STR("int: height in pixels"), NULL},
    {"format", (getter)get_format, NULL,
     PyDoc_STR("str: pixel format name, e.g. 'bgr24', 'yuv420p' ('other' for formats only "
               "FFmpeg knows)"),
     NULL},
    {"pts", (getter)get_pts, NULL,
     PyDoc_STR("int or None: timestamp in the stream time base (reader.info['time_base'])"),
     NULL},
    {"time", (getter)get_time, NULL, PyDoc_STR("float or None: presentation time in seconds"),
     NULL},
    {"wall_time", (getter)get_wall_time, NULL,
     PyDoc_STR("float: wall clock (time.time() scale) when the frame's packet arrived; 0 for "
               "frames that are not a reader's"),
     NULL},
    {"index", (getter)get_index, NULL,
     PyDoc_STR("int: frame number in the stream (0-based; -1 when not from a reader)"), NULL},
    {"flags", (getter)get_flags, NULL,
     PyDoc_STR("int: FLAG_KEY | FLAG_CORRUPT | FLAG_READONLY bits"), NULL},
    {"key", (getter)get_key, NULL, PyDoc_STR("bool: a key frame"), NULL},
    {"corrupt", (getter)get_corrupt, NULL, PyDoc_STR("bool: the decoder concealed errors"),
     NULL},
    {"writable", (getter)get_writable, NULL,
     PyDoc_STR("bool: exports may be written (this frame holds the only reference)"), NULL},
    {"nbytes", (getter)get_nbytes, NULL, PyDoc_STR("int: memory charged to the frame's image"),
     NULL},
    {"released", (getter)get_released, NULL,
     PyDoc_STR("bool: release() ran (or the frame was inherited through fork and released)"),
     NULL},
    {"pool", (getter)get_pool, NULL,
     PyDoc_STR("str or None: name of the pool the pixels came from"), NULL},
    {"shape", (getter)get_shape, NULL, PyDoc_STR("tuple: (h, w[, c]) of a packed frame"), NULL},
    {"planes", (getter)get_planes, NULL,
     PyDoc_STR("tuple of Plane exporters, one per plane; each is a view that pins the frame"),
     NULL},
    {"site", (getter)get_site, NULL,
     PyDoc_STR("str or None: 'file.py:line' that received the frame"), NULL},
    {"views", (getter)get_views, NULL,
     PyDoc_STR("list of 'file.py:line' where the frame's live views (np.asarray, memoryview, "
               "planes) were taken: the lines that pin it"),
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *frame_repr(FpyFrame *f)
{
    if (!f->img)
        return PyUnicode_FromFormat("<framepool.Frame released, from %S>",
                                    f->site_file ? f->site_file : Py_None);
    char t[32] = "none";
    if (!isnan(f->img->time))
        snprintf(t, sizeof t, "%.3f", f->img->time);
    return PyUnicode_FromFormat("<framepool.Frame %dx%d %s #%lld t=%s %zu bytes pool='%s'%s>",
                                f->img->width, f->img->height, fp_pixfmt_name(f->img->format),
                                (long long)f->img->index, t, f->img->bytes,
                                f->pool_name[0] ? f->pool_name : "(standalone)",
                                fp_image_is_writable(f->img) ? "" : " read-only");
}

PyTypeObject FpyFrame_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "framepool.Frame",
    .tp_doc = PyDoc_STR("A decoded frame: pooled pixels exported to numpy without a copy.\n"
                        "np.asarray(frame) is (h, w[, c]) uint8 for packed formats; "
                        "frame.planes for planar ones. Frames come from a Reader (or "
                        "Frame.copy(), or unpickling); the class is not called directly."),
    .tp_basicsize = sizeof(FpyFrame),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)frame_dealloc,
    .tp_traverse = (traverseproc)frame_traverse,
    .tp_weaklistoffset = offsetof(FpyFrame, weakreflist),
    .tp_repr = (reprfunc)frame_repr,
    .tp_as_buffer = &frame_as_buffer,
    .tp_methods = frame_methods,
    .tp_getset = frame_getset,
};
