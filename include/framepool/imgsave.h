/*
 * framepool/imgsave.h — save an image as PNG, JPEG, BMP, PPM or PGM with
 * FFmpeg's own encoders (part of the FFmpeg side of framepool, lib/av).
 *
 *   if (fp_image_save("frame.png", img, NULL) < 0)
 *       fprintf(stderr, "%s\n", fp_image_save_errmsg());
 *
 * Saving a frame needs no OpenCV: a program that only decodes and saves
 * loads FFmpeg's libraries, which framepool's reader loads anyway. (Loading
 * Debian's OpenCV imgcodecs costs a process about 12 MiB of RssAnon before
 * it does anything; see bench/README.md, mem_per_frame.)
 *
 * Pixels. GRAY8, RGB24 and RGBA go to the PNG encoder as they are (zero
 * copy); BGR24 and BGRA are reordered into one temporary RGB24/RGBA image
 * (PNG stores RGB order only); BMP takes BGR24, BGRA and GRAY8 as they are
 * and reorders RGB24/RGBA; PPM takes RGB24, PGM takes GRAY8. Every other
 * format framepool knows (YUV420P, NV12, YUV422P, YUV444P, YUV420P10, and
 * FP_PIX_OTHER images whose av_format swscale reads) is converted once with
 * swscale (bilinear, BT.601; YUV is taken as limited range unless av_format
 * is a full-range yuvj* format, GRAY8 as full range). JPEG always goes
 * through swscale into full-range YUV 4:2:0 (what JPEG decoders expect).
 * PNG, BMP, PPM and PGM of GRAY8/RGB24/BGR24/RGBA/BGRA images hold the
 * image's pixels exactly; PNG keeps the alpha of BGRA/RGBA, BMP of BGRA.
 *
 * Cost. One encode per call, with an encoder context opened for the call
 * and freed before it returns (measured: opening the PNG encoder costs ~0.1%
 * of encoding a 1280x720 frame, see bench/README.md), so nothing grows from
 * call to call and nothing is shared between threads. Temporary memory during
 * the call: the encoded file (in memory until written, at most about the
 * raw frame size for PNG), the encoder's state (zlib: ~300 KiB), and the one
 * converted image when the format needs it (a framepool image, counted by
 * framepool's diagnostics while it lives). The default PNG setting is what
 * cv::imwrite uses by default (zlib level 1, the "sub" row filter), so saving
 * costs about what OpenCV's default costs.
 *
 * Threads. Thread-safe: any number of threads may save at once, also the
 * same image (it is only read). The error message is per thread.
 */
#ifndef FRAMEPOOL_IMGSAVE_H
#define FRAMEPOOL_IMGSAVE_H

#include "image.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fp_save_format {
    FP_SAVE_AUTO = 0, /* from the path's extension (case-insensitive): .png, .jpg/.jpeg,
                         .bmp, .ppm, .pgm */
    FP_SAVE_PNG,
    FP_SAVE_JPEG,
    FP_SAVE_BMP,
    FP_SAVE_PPM,      /* binary PPM (P6), RGB */
    FP_SAVE_PGM,      /* binary PGM (P5), gray */
} fp_save_format;

/* Options; a zeroed struct (or NULL) means the documented default of every
 * field. */
typedef struct fp_save_options {
    fp_save_format format; /* FP_SAVE_AUTO (default): from the extension */
    int png_compression;   /* zlib level 1..9 (higher: smaller, slower); 0 = the default, 1,
                              with the "sub" row filter (cv::imwrite's default); -1 = level 0
                              (stored, no compression). Every level uses the "sub" row
                              filter. Out of range: FP_EINVAL */
    int jpeg_quality;      /* 1..100 (100 best); 0 = 95 (cv::imwrite's default). Mapped to
                              the MJPEG encoder's quantiser scale, so the file sizes match
                              libjpeg's quality scale only roughly. Out of range: FP_EINVAL */
} fp_save_options;

/* Encodes `img` (borrowed; only read) and writes it to `path`, replacing
 * the file if it exists. `opts` may be NULL (all defaults).
 * Returns 0, or:
 *   FP_EINVAL  NULL path or image, an empty path, an image without pixels
 *              (width/height <= 0 or data[0] NULL), bad options, or a pixel
 *              format that cannot be converted (the message names it);
 *   FP_EFORMAT the extension names no format this function writes (the
 *              message names it) — nothing is written;
 *   FP_EIO     the file could not be created or written (missing directory,
 *              permissions, full disk): the message holds the path and the
 *              system's reason; a partly written regular file is removed;
 *   FP_ENOMEM  an allocation failed (framepool's or FFmpeg's);
 *   FP_EUNKNOWN another encoder error (the message has FFmpeg's text).
 * On every error nothing leaks, and an existing file at `path` is left as it
 * was unless the failure was in writing it. Thread-safe. Cost: one encode
 * (plus one conversion pass for formats that need it) and one write. */
FP_API int fp_image_save(const char *path, const fp_image *img, const fp_save_options *opts);

/* Returns the message of this thread's last fp_image_save error ("" if
 * none). Thread-local, valid until the thread's next framepool call that
 * fails. */
FP_API const char *fp_image_save_errmsg(void);

#ifdef __cplusplus
}
#endif
#endif
