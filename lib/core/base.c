/* Errors, allocator hook, pixel formats and layouts. */
#define _GNU_SOURCE /* CLOCK_MONOTONIC_COARSE */
#include "obj_priv.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

unsigned fp_version(void)
{
    return (FP_VERSION_MAJOR << 16) | (FP_VERSION_MINOR << 8) | FP_VERSION_PATCH;
}

const char *fp_strerror(int err)
{
    switch (err) {
#define FP_ERROR_TEXT_(name, value, text) \
    case name: return text;
        FP_ERROR_TABLE(FP_ERROR_TEXT_)
#undef FP_ERROR_TEXT_
    default: break;
    }
    if (err < 0 && err > -4096) {
        /* Any other negated errno value. strerror is not thread-safe, so give
         * a generic text; callers who need more keep the code. */
        return "system error";
    }
    return "unknown error";
}

const char *fp_errname(int err)
{
    switch (err) {
#define FP_ERROR_NAME_(name, value, text) \
    case name: return #name;
        FP_ERROR_TABLE(FP_ERROR_NAME_)
#undef FP_ERROR_NAME_
    default: return NULL;
    }
}

/* ---- allocator ----------------------------------------------------------- */

static void *default_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    void *p = NULL;
    if (align < sizeof(void *))
        align = sizeof(void *);
    if (posix_memalign(&p, align, size) != 0)
        return NULL;
    return p;
}

static void default_free(void *p, size_t size, void *user)
{
    (void)size;
    (void)user;
    free(p);
}

static const fp_allocator default_allocator = {default_alloc, default_free, NULL};
static fp_allocator current_allocator = {default_alloc, default_free, NULL};

void fp_set_allocator(const fp_allocator *a)
{
    fp__obj_quarantine_flush(); /* memory goes back to the allocator that gave it */
    if (a && a->alloc && a->free)
        current_allocator = *a;
    else
        current_allocator = default_allocator;
}

const fp_allocator *fp_get_allocator(void)
{
    return &current_allocator;
}

void *fp_alloc(size_t size, size_t align)
{
    if (size == 0)
        return NULL;
    if (align < sizeof(void *))
        align = sizeof(void *);
    return current_allocator.alloc(size, align, current_allocator.user);
}

void fp_free(void *p, size_t size)
{
    if (p)
        current_allocator.free(p, size, current_allocator.user);
}

/* ---- pixel formats --------------------------------------------------------- */

static const fp_pixfmt_desc pixfmt_descs[FP_PIX_COUNT_] = {
    [FP_PIX_GRAY8] = {"gray", 1, {1, 0, 0, 0}, 0, 0},
    [FP_PIX_BGR24] = {"bgr24", 1, {3, 0, 0, 0}, 0, 0},
    [FP_PIX_RGB24] = {"rgb24", 1, {3, 0, 0, 0}, 0, 0},
    [FP_PIX_BGRA] = {"bgra", 1, {4, 0, 0, 0}, 0, 0},
    [FP_PIX_RGBA] = {"rgba", 1, {4, 0, 0, 0}, 0, 0},
    [FP_PIX_YUV420P] = {"yuv420p", 3, {1, 1, 1, 0}, 1, 1},
    [FP_PIX_NV12] = {"nv12", 2, {1, 2, 0, 0}, 1, 1},
    [FP_PIX_YUV422P] = {"yuv422p", 3, {1, 1, 1, 0}, 1, 0},
    [FP_PIX_YUV444P] = {"yuv444p", 3, {1, 1, 1, 0}, 0, 0},
    [FP_PIX_YUV420P10] = {"yuv420p10le", 3, {2, 2, 2, 0}, 1, 1},
};

const fp_pixfmt_desc *fp_pixfmt_describe(fp_pixfmt fmt)
{
    if ((int)fmt <= FP_PIX_NONE || fmt >= FP_PIX_COUNT_ || fmt == FP_PIX_OTHER)
        return NULL;
    return &pixfmt_descs[fmt];
}

const char *fp_pixfmt_name(fp_pixfmt fmt)
{
    if (fmt == FP_PIX_NONE)
        return "none";
    if (fmt == FP_PIX_OTHER)
        return "other";
    const fp_pixfmt_desc *d = fp_pixfmt_describe(fmt);
    return d ? d->name : "invalid";
}

fp_pixfmt fp_pixfmt_from_name(const char *name)
{
    if (!name)
        return FP_PIX_NONE;
    for (int f = FP_PIX_NONE + 1; f < FP_PIX_COUNT_; f++) {
        const fp_pixfmt_desc *d = fp_pixfmt_describe((fp_pixfmt)f);
        if (d && strcmp(d->name, name) == 0)
            return (fp_pixfmt)f;
    }
    if (strcmp(name, "gray8") == 0)
        return FP_PIX_GRAY8;
    return FP_PIX_NONE;
}

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

void fp__plane_dims(const fp_pixfmt_desc *d, int plane, int width, int height, int *w, int *h)
{
    *w = width;
    *h = height;
    if (plane > 0) {
        /* Round up, as FFmpeg's AV_CEIL_RSHIFT does for odd sizes. */
        *w = (width + (1 << d->log2_chroma_w) - 1) >> d->log2_chroma_w;
        *h = (height + (1 << d->log2_chroma_h) - 1) >> d->log2_chroma_h;
    }
}

int fp_layout_compute(fp_pixfmt fmt, int width, int height, int align, size_t padding,
                      fp_layout *out)
{
    const fp_pixfmt_desc *d = fp_pixfmt_describe(fmt);
    if (!d || !out || width <= 0 || height <= 0 || width > FP_MAX_DIMENSION ||
        height > FP_MAX_DIMENSION)
        return FP_EINVAL;
    if (align == 0)
        align = 64;
    if (align < 0 || (align & (align - 1)) != 0 || align > 4096)
        return FP_EINVAL;
    memset(out, 0, sizeof *out);
    out->planes = d->planes;
    size_t off = 0;
    for (int p = 0; p < d->planes; p++) {
        int w, h;
        fp__plane_dims(d, p, width, height, &w, &h);
        size_t row = (size_t)w * (size_t)d->bytes_per_pixel[p];
        out->stride[p] = (int)align_up(row, (size_t)align);
        out->rows[p] = h;
        out->offset[p] = off;
        off = align_up(off + (size_t)out->stride[p] * (size_t)h, (size_t)align);
    }
    out->size = off + padding;
    return FP_OK;
}

/* ---- misc ------------------------------------------------------------------ */

int64_t fp__now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t fp__coarse_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The one error channel: every module's detailed messages land here. */
static _Thread_local char errmsg_buf[512];

void fp_errmsg_set(const char *fmt, ...)
{
    if (!fmt) {
        errmsg_buf[0] = '\0';
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg_buf, sizeof errmsg_buf, fmt, ap);
    va_end(ap);
}

const char *fp_errmsg(void)
{
    return errmsg_buf;
}
