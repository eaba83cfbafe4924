/* fp_image: standalone, wrapped and pooled images. */
#define _POSIX_C_SOURCE 200809L
#include "pool_priv.h"

#include <math.h>
#include <string.h>

static void image_finalize(void *obj)
{
    fp__image *im = obj;
    if (im->wrap_free) {
        void (*fn)(void *) = im->wrap_free;
        im->wrap_free = NULL;
        fn(im->wrap_user);
    }
}

const fp_type fp_image_type = {"fp_image", image_finalize};


void fp__image_reset(fp__image *im)
{
    im->pub.pts = INT64_MIN;
    im->pub.time = NAN;
    im->pub.index = -1;
    im->pub.flags = 0;
    im->pub.wall_time = 0;
}

void fp__image_bind_planes(fp__image *im)
{
    for (int p = 0; p < 4; p++) {
        if (p < im->layout.planes) {
            im->pub.data[p] = im->pixels + im->layout.offset[p];
            im->pub.stride[p] = im->layout.stride[p];
        } else {
            im->pub.data[p] = NULL;
            im->pub.stride[p] = 0;
        }
    }
}

/* The largest pixel allocation or charge an image may declare: its object
 * header plus the bytes must stay far from wrapping a size_t. */
#define MAX_PIXEL_BYTES ((size_t)PTRDIFF_MAX / 2)

int fp__layout_check(const fp_layout *l, fp_pixfmt format, int width, int height,
                     const char *who)
{
    if (!l) {
        fp_errmsg_set("%s: NULL layout", who);
        return FP_EINVAL;
    }
    if (format <= FP_PIX_NONE || format >= FP_PIX_COUNT_) {
        fp_errmsg_set("%s: invalid format %d", who, (int)format);
        return FP_EINVAL;
    }
    if (width <= 0 || height <= 0 || width > FP_MAX_DIMENSION || height > FP_MAX_DIMENSION) {
        fp_errmsg_set("%s: invalid size %dx%d (1..%d)", who, width, height, FP_MAX_DIMENSION);
        return FP_EINVAL;
    }
    const fp_pixfmt_desc *d = fp_pixfmt_describe(format);
    if (l->planes < 1 || l->planes > 4 || (d && l->planes != d->planes)) {
        if (d)
            fp_errmsg_set("%s: layout planes = %d, but %s has %d", who, l->planes, d->name,
                           d->planes);
        else
            fp_errmsg_set("%s: layout planes = %d (1..4)", who, l->planes);
        return FP_EINVAL;
    }
    if (l->size == 0 || l->size > MAX_PIXEL_BYTES) {
        fp_errmsg_set("%s: layout size = %zu (1..%zu)", who, l->size, MAX_PIXEL_BYTES);
        return FP_EINVAL;
    }
    for (int p = 0; p < l->planes; p++) {
        if (l->stride[p] <= 0 || (l->stride[p] & 63)) {
            fp_errmsg_set("%s: plane %d stride = %d (a positive multiple of 64)", who, p,
                           l->stride[p]);
            return FP_EINVAL;
        }
        if (l->rows[p] <= 0) {
            fp_errmsg_set("%s: plane %d rows = %d (> 0)", who, p, l->rows[p]);
            return FP_EINVAL;
        }
        if ((l->offset[p] & 63) || l->offset[p] >= l->size) {
            fp_errmsg_set("%s: plane %d offset = %zu (a multiple of 64 below size %zu)", who, p,
                           l->offset[p], l->size);
            return FP_EINVAL;
        }
        /* stride and rows are positive ints: their product fits a 64-bit size_t. */
        size_t span = (size_t)l->stride[p] * (size_t)l->rows[p];
        if (span > l->size - l->offset[p]) {
            fp_errmsg_set("%s: plane %d ends past the allocation (offset %zu + stride %d x "
                           "rows %d > size %zu)",
                           who, p, l->offset[p], l->stride[p], l->rows[p], l->size);
            return FP_EINVAL;
        }
        int pw = width, ph = height;
        if (d) {
            fp__plane_dims(d, p, width, height, &pw, &ph);
            size_t row = (size_t)pw * (size_t)d->bytes_per_pixel[p];
            if ((size_t)l->stride[p] < row) {
                fp_errmsg_set("%s: plane %d stride = %d, below the %zu bytes of a %s row %d "
                               "wide",
                               who, p, l->stride[p], row, d->name, width);
                return FP_EINVAL;
            }
        }
        if ((d || p == 0) && l->rows[p] < ph) {
            fp_errmsg_set("%s: plane %d rows = %d, below the plane's height %d (%s %dx%d)",
                           who, p, l->rows[p], ph, d ? d->name : "image", width, height);
            return FP_EINVAL;
        }
    }
    return FP_OK;
}

fp__image *fp__image_alloc(const fp_layout *layout, fp_pixfmt format, int av_format, int width,
                           int height, void (*dispose)(fp__obj *h), const char *file, int line,
                           const char *func)
{
    size_t charge = FP__IMAGE_HDR_SIZE + layout->size;
    /* A pool's buffer is counted by its pool, not by the per-type counters. */
    fp__image *im = dispose != NULL
                        ? fp__obj_new_pooled(&fp_image_type, charge, charge, dispose, file, line,
                                             func)
                        : fp__obj_new(&fp_image_type, charge, charge, dispose, file, line, func);
    if (!im)
        return NULL;
    im->layout = *layout;
    im->pixels = (uint8_t *)im + FP__IMAGE_HDR_SIZE;
    im->pub.width = width;
    im->pub.height = height;
    im->pub.format = format;
    im->pub.av_format = av_format;
    im->pub.bytes = charge;
    fp__image_reset(im);
    fp__image_bind_planes(im);
    return im;
}

int fp_image_new_layout_at(const fp_layout *layout, fp_pixfmt format, int av_format, int width,
                           int height, fp_image **out, const char *file, int line,
                           const char *func)
{
    if (!out)
        return FP_EINVAL;
    *out = NULL;
    int rc = fp__layout_check(layout, format, width, height, "image");
    if (rc)
        return rc;
    fp__image *im = fp__image_alloc(layout, format, av_format, width, height, NULL, file, line,
                                    func);
    if (!im)
        return FP_ENOMEM;
    *out = &im->pub;
    return FP_OK;
}

int fp_image_new_at(fp_pixfmt format, int width, int height, fp_image **out, const char *file,
                    int line, const char *func)
{
    if (!out)
        return FP_EINVAL;
    *out = NULL;
    fp_layout l;
    int rc = fp_layout_compute(format, width, height, 64, 0, &l);
    if (rc)
        return rc;
    return fp_image_new_layout_at(&l, format, -1, width, height, out, file, line, func);
}

/* What a wrap must describe: a known size and format, every plane of a
 * known format present with a stride that holds its row, and a charge
 * that cannot wrap. */
static int wrap_check(const fp_image_wrap_info *info)
{
    if (!info) {
        fp_errmsg_set("image wrap: NULL info");
        return FP_EINVAL;
    }
    if (info->width <= 0 || info->height <= 0 || info->width > FP_MAX_DIMENSION ||
        info->height > FP_MAX_DIMENSION) {
        fp_errmsg_set("image wrap: invalid size %dx%d (1..%d)", info->width, info->height,
                       FP_MAX_DIMENSION);
        return FP_EINVAL;
    }
    if (info->format <= FP_PIX_NONE || info->format >= FP_PIX_COUNT_) {
        fp_errmsg_set("image wrap: invalid format %d", (int)info->format);
        return FP_EINVAL;
    }
    if (info->bytes > MAX_PIXEL_BYTES) {
        fp_errmsg_set("image wrap: bytes = %zu (at most %zu)", info->bytes, MAX_PIXEL_BYTES);
        return FP_EINVAL;
    }
    if (!info->data[0]) {
        fp_errmsg_set("image wrap: plane 0 data is NULL");
        return FP_EINVAL;
    }
    const fp_pixfmt_desc *d = fp_pixfmt_describe(info->format);
    for (int p = 0; d && p < d->planes; p++) {
        int pw, ph;
        fp__plane_dims(d, p, info->width, info->height, &pw, &ph);
        size_t row = (size_t)pw * (size_t)d->bytes_per_pixel[p];
        if (!info->data[p]) {
            fp_errmsg_set("image wrap: plane %d data is NULL (%s has %d planes)", p, d->name,
                           d->planes);
            return FP_EINVAL;
        }
        if (info->stride[p] <= 0 || (size_t)info->stride[p] < row) {
            fp_errmsg_set("image wrap: plane %d stride = %d, below the %zu bytes of a %s row "
                           "%d wide",
                           p, info->stride[p], row, d->name, info->width);
            return FP_EINVAL;
        }
    }
    return FP_OK;
}

int fp_image_wrap_at(const fp_image_wrap_info *info, fp_image **out, const char *file, int line,
                     const char *func)
{
    if (!out)
        return FP_EINVAL;
    *out = NULL;
    int rc = wrap_check(info);
    if (rc)
        return rc;
    size_t charge = FP__IMAGE_HDR_SIZE + info->bytes;
    fp__image *im = fp__obj_new(&fp_image_type, FP__IMAGE_HDR_SIZE, charge, NULL, file, line, func);
    if (!im)
        return FP_ENOMEM;
    im->pub.width = info->width;
    im->pub.height = info->height;
    im->pub.format = info->format;
    im->pub.av_format = info->av_format;
    for (int p = 0; p < 4; p++) {
        im->pub.data[p] = info->data[p];
        im->pub.stride[p] = info->data[p] ? info->stride[p] : 0;
    }
    im->pub.bytes = charge;
    fp__image_reset(im);
    im->pub.flags = info->flags & FP_IMAGE_READONLY;
    im->wrap_free = info->free_fn;
    im->wrap_user = info->user;
    *out = &im->pub;
    return FP_OK;
}

/* Bytes per row actually holding pixels in plane p, and its rows. */
static int plane_geometry(const fp_image *img, int p, size_t *row_bytes, int *rows)
{
    const fp_pixfmt_desc *d = fp_pixfmt_describe(img->format);
    if (d) {
        if (p >= d->planes)
            return 0;
        int w, h;
        fp__plane_dims(d, p, img->width, img->height, &w, &h);
        *row_bytes = (size_t)w * (size_t)d->bytes_per_pixel[p];
        *rows = h;
        return 1;
    }
    /* FP_PIX_OTHER: only framepool-allocated layouts are known; copy whole strides. */
    const fp__image *im = fp__img(img);
    if (p >= im->layout.planes || !img->data[p])
        return 0;
    *row_bytes = (size_t)img->stride[p];
    *rows = im->layout.rows[p];
    return 1;
}

void fp__image_copy_pixels(fp_image *dst, const fp_image *src)
{
    for (int p = 0; p < 4; p++) {
        size_t row;
        int rows;
        if (!plane_geometry(src, p, &row, &rows))
            continue;
        if (src->stride[p] == dst->stride[p]) {
            memcpy(dst->data[p], src->data[p], (size_t)src->stride[p] * (size_t)(rows - 1) + row);
        } else {
            for (int y = 0; y < rows; y++)
                memcpy(dst->data[p] + (size_t)y * (size_t)dst->stride[p],
                       src->data[p] + (size_t)y * (size_t)src->stride[p], row);
        }
    }
}

static void copy_meta(fp_image *dst, const fp_image *src)
{
    dst->pts = src->pts;
    dst->time = src->time;
    dst->index = src->index;
    dst->wall_time = src->wall_time;
    dst->flags = src->flags & ~(unsigned)FP_IMAGE_READONLY;
    dst->av_format = src->av_format;
}

int fp_image_copy_at(const fp_image *src, fp_pool *pool, int64_t timeout_us, fp_image **out,
                     const char *file, int line, const char *func)
{
    if (!out)
        return FP_EINVAL;
    *out = NULL;
    if (!src)
        return FP_EINVAL;
    const fp__image *s = fp__img(src);
    fp_image *dst = NULL;
    int rc;
    if (pool && fp__pool_matches(pool, src)) {
        rc = fp_pool_acquire_at(pool, timeout_us, &dst, file, line, func);
        if (rc)
            return rc;
        if (dst->width != src->width || dst->height != src->height || dst->format != src->format)
            fp_unref(&dst); /* reconfigured meanwhile: fall back to a standalone copy */
    }
    if (!dst) {
        if (src->format == FP_PIX_OTHER) {
            if (s->layout.planes == 0)
                return FP_EINVAL; /* wrapped memory of a layout framepool does not know */
            rc = fp_image_new_layout_at(&s->layout, src->format, src->av_format, src->width,
                                        src->height, &dst, file, line, func);
        } else {
            rc = fp_image_new_at(src->format, src->width, src->height, &dst, file, line, func);
        }
        if (rc)
            return rc;
        dst->av_format = src->av_format;
    }
    fp__image_copy_pixels(dst, src);
    copy_meta(dst, src);
    *out = dst;
    return FP_OK;
}

bool fp_image_is_writable(const fp_image *img)
{
    return img && fp_refcount(img) == 1 && !(img->flags & FP_IMAGE_READONLY);
}

int fp_image_make_writable(fp_image **img)
{
    if (!img || !*img)
        return FP_EINVAL;
    if (fp_image_is_writable(*img))
        return FP_OK;
    const fp__obj *h = fp__hdr(*img);
    /* From the same pool, if its owner still holds it. */
    fp_pool *pool = fp_image_get_pool(*img);
    fp_image *copy = NULL;
    int rc = fp_image_copy_at(*img, pool, 0, &copy, h->file, h->line, h->func);
    fp_unref(&pool);
    if (rc)
        return rc;
    fp_unref(img);
    *img = copy;
    return FP_OK;
}

fp_pool *fp_image_get_pool(const fp_image *img)
{
    const fp__image *im = img ? fp__img(img) : NULL;
    /* The caller's reference to img keeps the pool's memory valid (every
     * buffer holds a life reference to its pool); the pool object itself
     * is handed out only while some owner still holds it. */
    if (!im || !im->pool || !fp__obj_try_ref(fp__hdr(im->pool)))
        return NULL;
    return im->pool;
}

int fp_image_layout(const fp_image *img, fp_layout *out)
{
    if (!img || !out)
        return FP_EINVAL;
    const fp__image *im = fp__img(img);
    if (im->layout.planes == 0)
        return FP_EINVAL;
    *out = im->layout;
    return FP_OK;
}
