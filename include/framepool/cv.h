/*
 * framepool/cv.h — save, show, resize and convert images with OpenCV, from C.
 *
 * OpenCV 4 has no C API for imwrite/imshow, so framepool ships framepool_cv:
 * a thin C ABI over OpenCV (link with -lframepool_cv -lframepool, or the
 * CMake target framepool::framepool_cv). Every call builds zero-copy cv::Mat
 * headers over the fp_image planes: GRAY8, BGR24 and BGRA are used as they
 * are; RGB24, RGBA, YUV420P and NV12 are converted once into a pooled BGR24
 * (or BGRA) image that goes back to its pool right after the call, so a loop
 * that saves or shows every frame allocates nothing per frame.
 *
 * Every C++ exception is caught and becomes an error code; the message is in
 * fp_errmsg(). Functions are thread-safe except the highgui ones
 * (imshow, waitkey, destroy_all_windows), which, as in OpenCV, belong to one
 * thread (the one that shows windows).
 */
#ifndef FRAMEPOOL_CV_H
#define FRAMEPOOL_CV_H

#include "image.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes `img` (borrowed) to `path`; the file format follows the extension
 * (.png, .jpg, .bmp, ...). Returns 0; FP_EINVAL (NULL arguments, a format
 * that cannot be converted), FP_EFORMAT (no encoder for the extension),
 * FP_EIO (the file could not be written: missing directory, permissions,
 * full disk), FP_ENOMEM, FP_EUNKNOWN (another OpenCV error). Thread-safe. */
FP_API int fp_cv_imwrite(const char *path, const fp_image *img);

/* Shows `img` (borrowed) in the window `window` (created on first use).
 * Returns 0; FP_ENODISPLAY when there is no display (no DISPLAY or
 * WAYLAND_DISPLAY, or the GUI backend cannot start) — never aborts the
 * process; FP_EINVAL, FP_ENOMEM, FP_EUNKNOWN. GUI thread only. */
FP_API int fp_cv_imshow(const char *window, const fp_image *img);

/* Processes window events for up to `ms` milliseconds (0 = wait for a key).
 * Returns the key code pressed (e.g. 27 for ESC), -1 when none was pressed
 * or there is no display. GUI thread only. */
FP_API int fp_cv_waitkey(int ms);

/* Closes every window opened by fp_cv_imshow. No-op without a display. */
FP_API void fp_cv_destroy_all_windows(void);

/* Returns 1 when a display is available for fp_cv_imshow, else 0 (checks the
 * environment; does not open a window). Thread-safe. */
FP_API int fp_cv_has_display(void);

/* Resizes `src` (borrowed; GRAY8, BGR24, RGB24, BGRA or RGBA) to w x h with
 * area interpolation when shrinking and linear when enlarging. The result
 * comes from `pool` when it is non-NULL (its format and size must match:
 * src's format, w x h; waits up to `timeout_us` as fp_pool_acquire does) or
 * is a new standalone image. Stores +1 (caller releases) in *out. Returns 0,
 * FP_EINVAL (bad sizes, format, or a pool that does not fit), FP_ELIMIT,
 * FP_ETIMEDOUT, FP_ENOMEM, FP_EUNKNOWN. Thread-safe. */
FP_API int fp_cv_resize(const fp_image *src, int w, int h, fp_pool *pool, int64_t timeout_us,
                        fp_image **out);

/* Converts `src` (borrowed) to `format` (GRAY8, BGR24, RGB24, BGRA or RGBA)
 * from any of GRAY8, BGR24, RGB24, BGRA, RGBA, YUV420P, NV12. The result
 * comes from `pool` when non-NULL (it must make `format` at src's size) or is
 * standalone; +1 (caller releases) in *out. Timestamps, index and flags are
 * copied. Returns as fp_cv_resize. Thread-safe. */
FP_API int fp_cv_convert(const fp_image *src, fp_pixfmt format, fp_pool *pool,
                         int64_t timeout_us, fp_image **out);

#ifdef __cplusplus
}
#endif
#endif
