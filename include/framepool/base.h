/*
 * framepool/base.h — errors, allocator hook, version, pixel formats.
 *
 * Conventions used by every framepool header:
 *   - Functions return an int: 0 (FP_OK) on success, a negative FP_E* code on
 *     failure. Results come back through out-parameters, which are left
 *     untouched (or set to NULL for object out-parameters) on failure.
 *   - "+1 (caller releases)" means the caller owns a new reference and must
 *     drop it with fp_unref(); "borrowed" means the callee keeps ownership and
 *     the pointer is valid only as long as the documented owner keeps it.
 *   - Every function is thread-safe unless its comment says otherwise.
 */
#ifndef FRAMEPOOL_BASE_H
#define FRAMEPOOL_BASE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define FP_API
#elif defined(__GNUC__)
#define FP_API __attribute__((visibility("default")))
#else
#define FP_API
#endif

#define FP_VERSION_MAJOR 0
#define FP_VERSION_MINOR 1
#define FP_VERSION_PATCH 0
#define FP_VERSION_STRING "0.1.0"

/* Returns the library version as (major << 16 | minor << 8 | patch). */
FP_API unsigned fp_version(void);

/* ---- errors --------------------------------------------------------------
 * Errors are negative. The first group are negated errno values, the second
 * are framepool's own codes (chosen far outside the errno range). Codes,
 * names and descriptions come from this one table:
 *   X(name, value, description) */
#define FP_ERROR_TABLE(X)                                                                  \
    X(FP_OK, 0, "success")                                                                 \
    X(FP_EINVAL, -EINVAL, "invalid argument")                                             \
    X(FP_ENOMEM, -ENOMEM, "out of memory")                                                \
    X(FP_EAGAIN, -EAGAIN, "resource temporarily unavailable")                             \
    X(FP_ETIMEDOUT, -ETIMEDOUT, "timed out")                                              \
    X(FP_ECANCELED, -ECANCELED, "cancelled")                                              \
    X(FP_ENOENT, -ENOENT, "no such file or entry")                                        \
    X(FP_EBUSY, -EBUSY, "busy")                                                           \
    X(FP_ELIMIT, -0x46500001, "a bound was reached")                                      \
    X(FP_EFORMAT, -0x46500002, "not a media file or unsupported format")                  \
    X(FP_ENOSTREAM, -0x46500003, "no video stream")                                       \
    X(FP_EDECODE, -0x46500004, "too many decode errors")                                  \
    X(FP_EIO, -0x46500005, "input/output error")                                          \
    X(FP_ENODISPLAY, -0x46500006, "no display available")                                 \
    X(FP_EUNKNOWN, -0x46500007, "unknown error from a dependency")                       \
    X(FP_EHELD, -0x46500008, "the caller holds its max_held frames")

/* FP_EINVAL: an argument is invalid. FP_ENOMEM: an allocation failed.
 * FP_EAGAIN: a non-blocking call had nothing. FP_ETIMEDOUT: a deadline
 * passed. FP_ECANCELED: the wait was cancelled (fp_pool_cancel, interrupt).
 * FP_ENOENT: no such file, key or entry. FP_EBUSY: the object is in use and
 * cannot be changed. FP_ELIMIT: a bound was reached (the message names it
 * and how to raise it). FP_EFORMAT: not a media file, or an unsupported
 * codec/format. FP_ENOSTREAM: the input has no (such) video stream.
 * FP_EDECODE: too many decode errors. FP_EIO: input/output error.
 * FP_ENODISPLAY: no display for imshow. FP_EUNKNOWN: an error from a
 * dependency with no better mapping. FP_EHELD: the caller holds as many
 * delivered frames as it may (a reader's max_held): release one and call
 * again; nothing is lost. */
enum {
#define FP_ERROR_ENUM_(name, value, text) name = value,
    FP_ERROR_TABLE(FP_ERROR_ENUM_)
#undef FP_ERROR_ENUM_
};

/* Returns a static, human-readable description of an error code (never NULL;
 * other negated errno values give "system error", anything else "unknown
 * error"). Thread-safe. */
FP_API const char *fp_strerror(int err);

/* Returns the code's name ("FP_ELIMIT"), or NULL for a value not in the
 * table. Static string; thread-safe. */
FP_API const char *fp_errname(int err);

/* This thread's last detailed error message, like dlerror(): the text of the
 * last failure of any framepool call made by this thread that reports one
 * (pools, budgets, caches, weak handles, diagnostics, image saving,
 * framepool_cv) — it names the bound that was reached and how to raise it,
 * the file that could not be written, ... Returns "" when there was none.
 * Success does not clear it. The string is thread-local and valid until the
 * thread's next failing framepool call; copy it to keep it. A reader keeps
 * its messages per object as well: fp_reader_errmsg(r) (the thread channel
 * also gets them). Never contains credentials from a URL. */
FP_API const char *fp_errmsg(void);

/* Sets this thread's message (printf-style, truncated to 511 bytes), for
 * libraries built on framepool (framepool_cv, the Python binding) so that
 * their users read one channel. Thread-safe. */
FP_API void fp_errmsg_set(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* ---- logging ----------------------------------------------------------------
 * What framepool and FFmpeg have to say goes, one line at a time, to one
 * hook: by default framepool prints "framepool [source] line" to stderr;
 * an application routes the lines into its own logger with
 * fp_log_set_callback. FFmpeg's own messages (protocols, demuxers,
 * decoders) come through the same hook once the first reader has been
 * opened: framepool then installs FFmpeg's log callback (av_log_set_callback,
 * process-wide) and FFmpeg's default printing is off; its level follows
 * fp_log_set_level. Every URL in every line has its user-info replaced by
 * "***": passwords never reach a log. */

/* Levels are FFmpeg's AV_LOG_* values so FFmpeg's lines map one to one
 * (FFmpeg's "panic" 0 and "fatal" 8 come through as they are: below
 * FP_LOG_ERROR, so always shown unless FP_LOG_QUIET). */
enum { FP_LOG_QUIET = -8, FP_LOG_ERROR = 16, FP_LOG_WARNING = 24, FP_LOG_INFO = 32,
       FP_LOG_VERBOSE = 40, FP_LOG_DEBUG = 48 };

/* One log line: `source` names who said it ("framepool", or FFmpeg's
 * component such as "tcp", "rtsp", "h264"), `line` is the message without
 * trailing newline, every URL in it already redacted (user-info replaced by
 * "***"). Both strings are borrowed for the duration of the call. Called on
 * whatever thread logged — the caller's, the live reader's thread or an
 * FFmpeg decoder thread, possibly several at once — never while framepool
 * holds a lock; it must not block for long (it delays the thread that
 * logged, maybe a live reader's). */
typedef void (*fp_log_fn)(int level, const char *source, const char *line, void *user);

/* Installs `fn` with `user` as the process-wide log hook; NULL restores the
 * default, which prints "framepool [source] line" to stderr. Calls of the
 * previous hook already under way on other threads have returned when this
 * returns (so its `user` may be freed then): do not call it while holding a
 * lock the previous hook takes (e.g. Python's GIL), or from inside a hook.
 * Thread-safe. */
FP_API void fp_log_set_callback(fp_log_fn fn, void *user);

/* Lines above `level` are dropped (FP_LOG_QUIET: all); the default is
 * FP_LOG_WARNING. It also sets FFmpeg's level (av_log_set_level) once
 * framepool routes FFmpeg's lines. Thread-safe. */
FP_API void fp_log_set_level(int level);

/* Returns the current level. Thread-safe. */
FP_API int fp_log_get_level(void);

/* ---- allocator hook ------------------------------------------------------
 * Every allocation framepool makes (objects, pixel buffers, tables) goes
 * through the installed allocator. `alloc` must return memory aligned to
 * `align` (a power of two, at least sizeof(void*)) or NULL; `free` receives
 * the same size that was asked for. */
typedef struct fp_allocator {
    void *(*alloc)(size_t size, size_t align, void *user);
    void (*free)(void *p, size_t size, void *user);
    void *user;
} fp_allocator;

/* Installs `a` (copied) as the process-wide allocator; NULL restores the
 * default (posix_memalign/free). Call it before creating any framepool
 * object: memory is always returned to the allocator that provided it only
 * if the allocator is not changed while objects live. Not thread-safe with
 * respect to concurrent allocations. */
FP_API void fp_set_allocator(const fp_allocator *a);

/* Returns the currently installed allocator (borrowed, never NULL). */
FP_API const fp_allocator *fp_get_allocator(void);

/* Allocates `size` bytes aligned to `align` through the installed allocator.
 * Returns NULL on failure (or when size is 0). Release with fp_free(p, size). */
FP_API void *fp_alloc(size_t size, size_t align);
/* Releases memory from fp_alloc; `size` must be the size asked for. NULL-safe. */
FP_API void fp_free(void *p, size_t size);

/* ---- pixel formats -------------------------------------------------------- */
typedef enum fp_pixfmt {
    FP_PIX_NONE = 0,
    FP_PIX_GRAY8,      /* 1 plane, 1 byte per pixel */
    FP_PIX_BGR24,      /* 1 plane, packed B,G,R (OpenCV's default order) */
    FP_PIX_RGB24,      /* 1 plane, packed R,G,B */
    FP_PIX_BGRA,       /* 1 plane, packed B,G,R,A */
    FP_PIX_RGBA,       /* 1 plane, packed R,G,B,A */
    FP_PIX_YUV420P,    /* 3 planes, chroma halved both ways */
    FP_PIX_NV12,       /* 2 planes: Y, interleaved UV at half height */
    FP_PIX_YUV422P,    /* 3 planes, chroma halved horizontally */
    FP_PIX_YUV444P,    /* 3 planes, full-size chroma */
    FP_PIX_YUV420P10,  /* 3 planes, 16-bit little-endian samples, 10 bits used */
    FP_PIX_OTHER,      /* any other layout: see fp_image.av_format and fp_layout */
    FP_PIX_COUNT_
} fp_pixfmt;

/* Describes one pixel format's planes. */
typedef struct fp_pixfmt_desc {
    const char *name;          /* "bgr24", "yuv420p", ... (FFmpeg's names) */
    int planes;                /* number of planes, 1..4 */
    int bytes_per_pixel[4];    /* bytes per pixel in each plane (per sample pair for NV12 UV) */
    int log2_chroma_w;         /* horizontal subsampling of planes 1.. */
    int log2_chroma_h;         /* vertical subsampling of planes 1.. */
} fp_pixfmt_desc;

/* Returns the description of `fmt` (borrowed, static) or NULL for
 * FP_PIX_NONE, FP_PIX_OTHER and unknown values. */
FP_API const fp_pixfmt_desc *fp_pixfmt_describe(fp_pixfmt fmt);
/* Returns the format's name, or "none"/"other"/"invalid". */
FP_API const char *fp_pixfmt_name(fp_pixfmt fmt);
/* Returns the format whose FFmpeg-style name is `name`, or FP_PIX_NONE. */
FP_API fp_pixfmt fp_pixfmt_from_name(const char *name);

/* Largest width or height framepool accepts for any image (16384). Larger
 * dimensions are rejected with FP_EINVAL before any allocation. */
#define FP_MAX_DIMENSION 16384

/* The memory layout of one image: where each plane starts in a single
 * allocation, its row stride and its number of rows. */
typedef struct fp_layout {
    int planes;           /* 1..4 */
    int stride[4];        /* bytes per row, a multiple of the alignment */
    int rows[4];          /* rows in each plane */
    size_t offset[4];     /* byte offset of each plane, aligned */
    size_t size;          /* total bytes, including `padding` */
} fp_layout;

/* Computes the layout of a `width` x `height` image of `fmt` with every row
 * stride and plane offset a multiple of `align` (a power of two >= 1; 0 means
 * 64) and `padding` extra bytes after the last plane. Returns 0, or FP_EINVAL
 * for FP_PIX_NONE/OTHER, non-positive or > FP_MAX_DIMENSION sizes, or a bad
 * alignment. Pure function, thread-safe. */
FP_API int fp_layout_compute(fp_pixfmt fmt, int width, int height, int align, size_t padding,
                             fp_layout *out);

#ifdef __cplusplus
}
#endif
#endif
