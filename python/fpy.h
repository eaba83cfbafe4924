/*
 * python/fpy.h — shared declarations of the framepool Python binding
 * (module framepool._framepool). One file per concern:
 *   module.c  module init, exceptions, diagnostics (summary, leak report,
 *             growth, memory tracker), interned source names
 *   frame.c   Frame: one fp_image reference, buffer protocol, planes,
 *             tracemalloc tracking, weak references, GC
 *   reader.c  Reader: open, iteration with the GIL released, Ctrl-C,
 *             max_held with the Python lines holding frames, seek/info/stats
 *
 * Rules: every Python call happens with the GIL held and no framepool lock
 * held (framepool functions take their own locks internally and return);
 * decoding runs with the GIL released.
 */
#ifndef FRAMEPOOL_PY_H
#define FRAMEPOOL_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <framepool.h>

/* The tracemalloc domain of framepool pixel buffers ("FP"). Filter with
 * tracemalloc.DomainFilter(True, framepool.TRACEMALLOC_DOMAIN). */
#define FPY_TRACEMALLOC_DOMAIN 0x4650u

typedef struct FpyReader FpyReader;

/* A frame handed to Python. Owns one reference to `img` (NULL once
 * released). While it belongs to a reader it is linked into the reader's
 * list of live frames, with the Python line that received it. */
typedef struct FpyFrame {
    PyObject_HEAD
    fp_image *img;
    PyObject *weakreflist;
    FpyReader *owner;            /* borrowed; cleared when the reader goes */
    struct FpyFrame *prev, *next;
    PyObject *site_file;         /* str, the Python file that received the frame */
    int site_line;
    Py_ssize_t exports;          /* live buffer exports (numpy arrays, memoryviews) */
    uintptr_t tracked;           /* pointer tracked by tracemalloc, 0 if none */
    char pool_name[48];
} FpyFrame;

extern PyTypeObject FpyFrame_Type;
extern PyTypeObject FpyPlane_Type;
extern PyTypeObject FpyReader_Type;
extern PyTypeObject FpyMemTrack_Type;

/* Exceptions: framepool.Error and one subclass per error code. */
extern PyObject *FpyError;

/* Raises the exception class for `code` with `msg` (NULL or "": the
 * code's fp_strerror). Returns NULL. */
PyObject *fpy_raise(int code, const char *msg);
/* The same with a str message (borrowed). */
PyObject *fpy_raise_obj(int code, PyObject *msg);

/* Wraps an image (steals the reference) in a new Frame, tracked by
 * tracemalloc at the calling Python line. Returns NULL with an exception
 * (the image is released). */
FpyFrame *fpy_frame_new(fp_image *img);
/* Drops the frame's image (untracking it). The frame must have no exports. */
void fpy_frame_drop(FpyFrame *f);
/* Records the calling Python line (file, line) in *file (new ref) and *line. */
void fpy_caller_site(PyObject **file, int *line, PyObject **func);
/* A C string for a Python str that lives until process exit (framepool keeps
 * site pointers): interned once per distinct name. Never NULL. */
const char *fpy_intern(PyObject *s);

void fpy_reader_unlink(FpyFrame *f);
/* framepool.open(...) */
PyObject *fpy_open(PyObject *module, PyObject *args, PyObject *kwargs);
/* Records the main thread (where signal handlers run). */
int fpy_reader_init(void);

#endif
