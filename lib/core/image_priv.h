/*
 * Private to framepool (core and lib/av): the image object behind fp_image
 * (image.c). Not installed.
 */
#ifndef FRAMEPOOL_IMAGE_PRIV_H
#define FRAMEPOOL_IMAGE_PRIV_H

#include "framepool/image.h"
#include "obj_priv.h"

/* image.c: creates/recycles images (used by pool.c and the av bridge). */
typedef struct fp__image fp__image;
struct fp__image {
    fp_image pub;
    fp_layout layout;            /* layout of `pixels` (planes == 0 for wrapped images) */
    uint8_t *pixels;             /* start of the pixel allocation inside the object */
    struct fp_pool *pool;        /* owning pool (holds no reference while idle) */
    unsigned pool_gen;           /* generation the buffer was made for */
    fp__image *next_idle;        /* pool LIFO link */
    int64_t idle_since_us;
    void (*wrap_free)(void *user);
    void *wrap_user;
};

/* Bytes of an image object before its pixels (kept 64-byte aligned). */
#define FP__IMAGE_HDR_SIZE ((sizeof(fp__image) + 63) & ~(size_t)63)

static inline fp__image *fp__img(const fp_image *img)
{
    return (fp__image *)img;
}

/* Resets an image's per-frame fields (timestamps, index, flags). */
void fp__image_reset(fp__image *im);
/* Sets the plane pointers of `im` from its layout and pixel memory. */
void fp__image_bind_planes(fp__image *im);
/* Creates an image object holding `layout` pixels. A non-NULL `dispose` is
 * a pool's last-release hook: the image is then a pooled one (FP__OBJ_POOLED,
 * counted by its pool rather than the per-type counters); NULL makes a
 * standalone image. */
fp__image *fp__image_alloc(const fp_layout *layout, fp_pixfmt format, int av_format, int width,
                           int height, void (*dispose)(fp__obj *h), const char *file, int line,
                           const char *func);
/* Checks an explicit layout against the format and size it is declared
 * for, with overflow-safe arithmetic: 1..4 planes (exactly the format's
 * count for known formats), 0 < size <= PTRDIFF_MAX/2, per plane a
 * positive stride multiple of 64 holding a row, rows >= the plane's
 * height (plane 0 only for FP_PIX_OTHER), a 64-aligned offset and
 * offset + stride*rows <= size. Returns 0, or FP_EINVAL with an fp_errmsg
 * naming `who`, the plane and the field. */
int fp__layout_check(const fp_layout *l, fp_pixfmt format, int width, int height,
                     const char *who);
/* Copies the pixels of `src` into `dst` (same size and format). */
void fp__image_copy_pixels(fp_image *dst, const fp_image *src);

#endif
