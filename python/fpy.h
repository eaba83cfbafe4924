/*
 * python/fpy.h — shared declarations of the framepool Python binding
 * (module framepool._framepool). One file per concern:
 *   module.c  module init, exceptions, diagnostics (summary, leak report,
 *             growth, memory tracker), interned source names
 *   frame.c   Frame: one fp_image reference, buffer protocol, planes,
 *             tracemalloc tracking, weak references, GC
 *   reader.c  Reader: open, iteration with the GIL released, Ctrl-C,
 *             max_held with the Python lines holding frames, seek/info/stats,
 *             the registry of open readers (readers(), interrupt_all(), fork)
 *   args.c    argument checks: numbers validated before any conversion
 *   log.c     framepool's and FFmpeg's log lines to Python's logging
 *   budget.c  Budget (fp_budget), the default budget of copies and unpickled
 *             frames
 *
 * Fork. A child (os.fork, multiprocessing's fork start method) inherits the
 * parent's readers and frames as abandoned: the threads they would join and
 * the locks they would take exist only in the parent, so the child never
 * closes them (their memory stays as the parent left it, copy-on-write);
 * inherited frames keep their pixels readable. fpy_fork_gen tells them apart.
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

/* The largest time in seconds the binding passes to C (start, end, seek,
 * timeout): about 31 years, far inside int64 microseconds and timestamps. */
#define FPY_MAX_SECONDS 1e9

typedef struct FpyReader FpyReader;
typedef struct FpyBudget FpyBudget;

/* Incremented in every forked child (os.register_at_fork): objects whose
 * `gen` differs were inherited from the parent. */
extern unsigned long fpy_fork_gen;

/* One buffer export (a numpy array, a memoryview, a Plane) of a frame, with
 * the Python line that took it: views are holders. */
typedef struct fpy_view {
    struct fpy_view *prev, *next;
    const char *file; /* interned (fpy_intern) */
    int line;
    Py_ssize_t arrays[6]; /* shape and strides of a buffer export */
} fpy_view;

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
    Py_ssize_t exports;          /* live buffer exports (numpy arrays, memoryviews, planes)
                                    and calls running with the GIL released (save) */
    fpy_view *views;             /* the exports, with the lines that took them */
    struct FpyFrame *all_prev, *all_next; /* every live Frame (leak_report's view section) */
    unsigned long gen;           /* fpy_fork_gen at creation */
    uintptr_t tracked;           /* pointer tracked by tracemalloc, 0 if none */
    int charged;                 /* a copy charged to a Budget: its pool is trimmed when
                                    the frame lets go, so the budget gets the bytes back */
    char pool_name[48];
} FpyFrame;

extern PyTypeObject FpyFrame_Type;
extern PyTypeObject FpyPlane_Type;
extern PyTypeObject FpyReader_Type;
extern PyTypeObject FpyMemTrack_Type;
extern PyTypeObject FpyBudget_Type;

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
/* The calling Python line as framepool creation-site arguments: file and
 * function interned (fpy_intern; "<python>" and "" outside Python code). */
void fpy_caller_site_interned(const char **file, int *line, const char **func);
/* A C string for a Python str that lives until process exit (framepool keeps
 * site pointers): interned once per distinct name. Never NULL. */
const char *fpy_intern(PyObject *s);

/* Appends, for each live frame pinned by views, "frame received at F:L,
 * held by a view taken at F:L" lines to `out` (a list of str). */
int fpy_frames_view_lines(PyObject *out);
/* The view part of a LimitError line for frame f ("" when no view): a new str. */
PyObject *fpy_frame_view_sites(FpyFrame *f);
/* framepool._framepool._frame_from_state (pickle's reconstructor). */
PyObject *fpy_frame_from_state(PyObject *module, PyObject *args);

void fpy_reader_unlink(FpyFrame *f);
/* framepool.open(...) */
PyObject *fpy_open(PyObject *module, PyObject *args, PyObject *kwargs);
/* Records the main thread (where signal handlers run). */
int fpy_reader_init(void);
/* framepool.readers(), framepool.interrupt_all() */
PyObject *fpy_readers(PyObject *module, PyObject *noargs);
PyObject *fpy_interrupt_all(PyObject *module, PyObject *noargs);
/* In a forked child: readers become abandoned (never closed, never joined). */
void fpy_reader_after_fork(void);

/* ---- budgets (budget.c) ------------------------------------------------------------------- */

/* open(budget=...): None -> NULL; a Budget -> its fp_budget (borrowed);
 * TypeError otherwise. */
int fpy_budget_arg(PyObject *v, fp_budget **out);
/* framepool.set_default_budget(b), framepool.get_default_budget() */
PyObject *fpy_set_default_budget(PyObject *module, PyObject *arg);
PyObject *fpy_get_default_budget(PyObject *module, PyObject *noargs);
/* A copy of src (+1 in *out) charged to the default budget, standalone when
 * there is none. Returns 1 (charged), 0 (standalone), or -1 with an
 * exception (LimitError naming the budget and the sizes when it is full;
 * `what` starts the message). */
int fpy_budget_copy(const fp_image *src, fp_image **out, const char *what, const char *file,
                    int line, const char *func);
/* A new writable image charged to the default budget (uninitialised
 * pixels, metadata reset), standalone when there is none. Returns as
 * fpy_budget_copy. */
int fpy_budget_image(fp_pixfmt format, int w, int h, fp_image **out, const char *what,
                     const char *file, int line, const char *func);

/* ---- arguments (args.c): checked before any conversion -------------------------------- */

/* A number (int, float, or an object with __float__/__index__; not str,
 * bytes, None) that is finite and in [lo, hi]. TypeError for a wrong type,
 * ValueError for nan/inf or out of range, each naming `name` and the range. */
int fpy_arg_double(PyObject *v, const char *name, double lo, double hi, double *out);
/* An int (or __index__) in [lo, hi]: TypeError for other types (float
 * included), OverflowError naming `name` and the range when it does not fit
 * 64 bits, ValueError when outside [lo, hi]. */
int fpy_arg_ll(PyObject *v, const char *name, long long lo, long long hi, long long *out);
/* A str (TypeError otherwise) as UTF-8, borrowed from v. */
const char *fpy_arg_str(PyObject *v, const char *name);
/* A bool, or an int 0 or 1 (ValueError for other ints): TypeError for other
 * types (float, str, None included), naming `name`. */
int fpy_arg_bool(PyObject *v, const char *name, int *out);

/* ---- logging (log.c) -------------------------------------------------------------------- */

/* Installs framepool's log callback (lines are queued in C and emitted to
 * logging.getLogger("framepool") by an emitter thread that takes the GIL). */
int fpy_log_init(PyObject *module);
PyObject *fpy_log_level(PyObject *module, PyObject *args, PyObject *kwargs);
PyObject *fpy_log_flush(PyObject *module, PyObject *noargs);
void fpy_log_before_fork(void);
void fpy_log_after_fork(int child);

#endif
