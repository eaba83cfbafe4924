/*
 * framepool/image.h — fp_image, the pooled, reference-counted image buffer.
 *
 * An fp_image is a framepool object (see obj.h): fp_ref/fp_unref it. The
 * struct is a view: read its fields; never change the geometry fields
 * (width, height, format, data, stride, bytes). The pixel data and the
 * per-frame fields (pts, time, index, flags other than FP_IMAGE_READONLY) may
 * be written only while the image is writable (you hold the only
 * reference and FP_IMAGE_READONLY is not set); fp_image_make_writable() gets
 * you there, copying only when needed.
 *
 * Images made by framepool (fp_image_new, pools, the reader) have every plane
 * start and every row stride a multiple of 64 bytes. Wrapped external memory
 * keeps the caller's pointers and strides as given.
 */
#ifndef FRAMEPOOL_IMAGE_H
#define FRAMEPOOL_IMAGE_H

#include "obj.h"

#ifdef __cplusplus
extern "C" {
#endif

struct fp_pool;

enum {
    FP_IMAGE_KEY = 1u << 0,      /* a key frame */
    FP_IMAGE_CORRUPT = 1u << 1,  /* the decoder concealed errors in this frame */
    FP_IMAGE_READONLY = 1u << 2, /* pixels must not be written (shared with a decoder or wrapped const memory) */
};

typedef struct fp_image {
    int width, height;
    fp_pixfmt format;      /* FP_PIX_OTHER when the layout is only known to FFmpeg */
    int av_format;         /* AVPixelFormat value (-1 when unknown); set for every decoder output */
    uint8_t *data[4];      /* plane pointers; unused planes are NULL */
    int stride[4];         /* bytes per row of each plane */
    int64_t pts;           /* presentation timestamp in stream time base (INT64_MIN if none) */
    double time;           /* presentation time in seconds (NAN if unknown) */
    int64_t index;         /* frame number within the stream (0-based), -1 when not from a reader */
    unsigned flags;        /* FP_IMAGE_* */
    size_t bytes;          /* memory charged to this image (pixel allocation included) */
    double wall_time;      /* CLOCK_REALTIME seconds when the packet of this frame was read
                              (reader frames: for live sources, when it arrived from the
                              network; `now - wall_time` is the frame's age); 0 for images
                              not made by a reader. Copied by fp_image_copy. */
} fp_image;

/* The framepool type of every image (name "fp_image"). */
FP_API extern const fp_type fp_image_type;

/* Creates a standalone, writable, uninitialised image of a known format.
 * Returns 0 and stores +1 (caller releases) in *out; FP_EINVAL for a bad
 * format or dimensions (<= 0 or > FP_MAX_DIMENSION), FP_ENOMEM. */
#define fp_image_new(format, width, height, out) \
    fp_image_new_at((format), (width), (height), (out), __FILE__, __LINE__, __func__)
FP_API int fp_image_new_at(fp_pixfmt format, int width, int height, fp_image **out,
                           const char *file, int line, const char *func);

/* Creates a standalone writable image with an explicit layout (for formats
 * only FFmpeg knows: pass format FP_PIX_OTHER and its av_format). The
 * layout is checked against the format and size it is declared for, with
 * arithmetic that cannot wrap: 1..4 planes (a known format: exactly its
 * planes), size in 1..PTRDIFF_MAX/2, and every plane with a positive
 * stride that is a multiple of 64 and holds a row of the format, rows >=
 * the plane's height (FP_PIX_OTHER: plane 0 only), an offset that is a
 * multiple of 64, and offset + stride * rows <= size. Returns as
 * fp_image_new; FP_EINVAL's fp_errmsg names the plane and the field
 * ("image: plane 1 stride = 256, below the 320 bytes of a yuv420p row ..."). */
#define fp_image_new_layout(layout, format, av_format, width, height, out)                    \
    fp_image_new_layout_at((layout), (format), (av_format), (width), (height), (out), __FILE__, \
                           __LINE__, __func__)
FP_API int fp_image_new_layout_at(const fp_layout *layout, fp_pixfmt format, int av_format,
                                  int width, int height, fp_image **out, const char *file,
                                  int line, const char *func);

/* Describes external memory to wrap without copying. */
typedef struct fp_image_wrap_info {
    int width, height;
    fp_pixfmt format;
    int av_format;                /* -1 if unknown */
    uint8_t *data[4];
    int stride[4];
    size_t bytes;                 /* memory to charge to the image (for diagnostics) */
    unsigned flags;               /* FP_IMAGE_READONLY if the memory must not be written */
    void (*free_fn)(void *user);  /* called once when the image dies (may be NULL) */
    void *user;
} fp_image_wrap_info;

/* Wraps external pixel memory in an image. For a known format every plane
 * of the format must be given (data non-NULL) with a positive stride that
 * holds a row, and `bytes` must not exceed PTRDIFF_MAX/2 (FP_EINVAL naming
 * the plane and the field otherwise); the memory behind each plane
 * (stride * plane height bytes) is the caller's promise. On success stores +1 (caller
 * releases) in *out and the image owns the memory: `free_fn(user)` runs when
 * its last reference goes, from whichever thread drops it. On failure
 * (FP_EINVAL, FP_ENOMEM) `free_fn` is NOT called: the memory stays yours. */
#define fp_image_wrap(info, out) fp_image_wrap_at((info), (out), __FILE__, __LINE__, __func__)
FP_API int fp_image_wrap_at(const fp_image_wrap_info *info, fp_image **out, const char *file,
                            int line, const char *func);

/* Deep-copies `src` (borrowed) into a new writable image with the same size,
 * format, timestamps and flags (minus FP_IMAGE_READONLY). The copy comes from
 * `pool` when it is non-NULL and makes images of src's size and format
 * (waits up to `timeout_us` as fp_pool_acquire does); otherwise it is a new
 * standalone image. (To copy into src's own pool, pass fp_image_get_pool(src) and release it.)
 * Returns 0 with +1 in *out, or FP_EINVAL, FP_ENOMEM, FP_ELIMIT,
 * FP_ETIMEDOUT, FP_ECANCELED. Cost: one pass over the pixels. */
#define fp_image_copy(src, pool, timeout_us, out) \
    fp_image_copy_at((src), (pool), (timeout_us), (out), __FILE__, __LINE__, __func__)
FP_API int fp_image_copy_at(const fp_image *src, struct fp_pool *pool, int64_t timeout_us,
                            fp_image **out, const char *file, int line, const char *func);

/* Makes *img writable. If you hold the only reference and it is not
 * read-only, does nothing. Otherwise copies it — from the same pool when it
 * is pooled and the pool is still open, without waiting (a full pool gives
 * FP_ELIMIT rather than a hang; use fp_image_copy to wait) — drops your
 * reference to the original and stores the copy (+1) in *img. On failure
 * *img is unchanged and still yours. Returns 0, FP_EINVAL, FP_ENOMEM,
 * FP_ELIMIT. */
FP_API int fp_image_make_writable(fp_image **img);

/* Returns true when the caller may write the pixels of `img`: its count is 1
 * and FP_IMAGE_READONLY is not set. */
FP_API bool fp_image_is_writable(const fp_image *img);

/* Returns the pool `img` belongs to, +1 (caller releases), or NULL for
 * standalone and wrapped images and when the pool's owners have all let go
 * (a pool whose owner is gone stays alive only to take its buffers back; it
 * is never handed out again). Thread-safe; `img` must be a reference you
 * hold.
 * (This replaces fp_image_pool, which returned the pool borrowed: after the
 * owner let go, that pointer named a pool whose reference count was already
 * zero, and an fp_ref on it revived it.) */
FP_API struct fp_pool *fp_image_get_pool(const fp_image *img);

/* Returns the layout of `img`'s pixel allocation when framepool allocated it
 * (0), or FP_EINVAL for wrapped images. */
FP_API int fp_image_layout(const fp_image *img, fp_layout *out);

#ifdef __cplusplus
}
#endif
#endif
