/*
 * framepool/imgsave.h — save an image as PNG, JPEG, BMP, PPM or PGM without
 * OpenCV (part of the FFmpeg side of framepool, lib/av).
 *
 *   if (fp_image_save("frame.png", img, NULL) < 0)
 *       fprintf(stderr, "%s\n", fp_errmsg());
 *
 * Saving a frame needs no OpenCV: a program that only decodes and saves
 * loads FFmpeg's libraries (and zlib, which FFmpeg loads too), which
 * framepool's reader loads anyway, and not OpenCV's imgcodecs (which costs
 * a process several MiB of RssAnon before it does anything).
 *
 * PNG is written by framepool itself, streamed row by row through zlib: the
 * memory it needs is one row, a 64 KiB output buffer and zlib's state,
 * whatever the image size, in one block mapped on its own (mmap, outside
 * the malloc heap and not through fp_set_allocator's allocator) and kept
 * for the next save: one block per process; fp_image_save_release_cache
 * unmaps it. A loop that saves every Nth frame then allocates nothing per
 * save and leaves the heap alone (freed and allocated again from the heap,
 * that block came back in other places as the decoder's packets took the
 * freed space in between, and RssAnon rose in steps for thousands of
 * frames). It is not libavcodec's PNG encoder because that encoder needs
 * the whole frame in RGB order (a full copy of a BGR frame) and an output
 * buffer sized for the raw frame, both mapped and faulted in again at every
 * save. The default setting is cv::imwrite's default (zlib level 1,
 * strategy Z_RLE, the "sub" filter on every row): files of about the same
 * size as cv::imwrite's, for no more CPU. JPEG, BMP, PPM and PGM go through
 * FFmpeg's encoders (mjpeg, bmp, ppm, pgm), one encoder context opened for
 * the call and freed before it returns, so nothing is shared between calls
 * or threads; these hold the encoded file in memory until it is written.
 * Measured figures: bench/README.md (imgsave_cost, mem_per_frame) and
 * docs/results/2026-11-21-image-saving.md.
 *
 * Pixels. PNG takes GRAY8, RGB24, BGR24, RGBA and BGRA as they are (BGR
 * order is swapped row by row); BMP takes BGR24, BGRA and GRAY8 as they are
 * and RGB24/RGBA through one channel-swapped copy; PPM takes RGB24 (BGR24
 * through a swapped copy), PGM takes GRAY8. Every other format framepool
 * knows (YUV420P, NV12, YUV422P, YUV444P, YUV420P10, and FP_PIX_OTHER images
 * whose av_format swscale reads) is converted once with swscale into a
 * temporary framepool image (bilinear, BT.601; YUV is taken as limited range
 * unless av_format is a full-range yuvj* format, GRAY8 as full range). JPEG
 * always goes through swscale into full-range YUV 4:2:0 (what JPEG decoders
 * expect). PNG, BMP, PPM and PGM files of GRAY8/RGB24/BGR24/RGBA/BGRA images
 * hold the image's pixels exactly; PNG keeps the alpha of BGRA/RGBA.
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
    int png_compression;   /* zlib level 1..9 (higher: smaller, slower), with zlib's default
                              strategy, as cv::imwrite does when given
                              IMWRITE_PNG_COMPRESSION; 0 = the default: level 1 with Z_RLE
                              (cv::imwrite's default); -1 = level 0 (stored, no
                              compression). Every level uses the "sub" row filter. Out of
                              range: FP_EINVAL */
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
 *   FP_ENOMEM  an allocation failed (framepool's, zlib's or FFmpeg's; zlib's
 *              go through framepool's allocator);
 *   FP_EUNKNOWN another encoder error (the message has FFmpeg's text).
 * On every error nothing leaks. An existing file at `path` is left as it
 * was when the error comes before writing starts (bad arguments, formats,
 * allocations); once writing started, a failure removes the partly written
 * regular file. Thread-safe. Cost: one encode (plus one conversion pass for
 * formats that need it); PNG writes 64 KiB at a time, the others once. */
FP_API int fp_image_save(const char *path, const fp_image *img, const fp_save_options *opts);

/* Unmaps the PNG encoder block fp_image_save keeps between saves (zlib's
 * state, a 64 KiB output buffer and a row; see above), e.g. when a program stops saving for
 * good, or before a leak check that counts framepool's allocations. The
 * next PNG save allocates it again. Thread-safe (a save running meanwhile
 * keeps its own block and caches it when it ends). */
FP_API void fp_image_save_release_cache(void);

#ifdef __cplusplus
}
#endif
#endif
