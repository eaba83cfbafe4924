/* Test clips generated with the ffmpeg command, and the ffmpeg framemd5
 * oracle. Shared by the reader tests. */
#ifndef FP_AVCLIPS_H
#define FP_AVCLIPS_H

#include <framepool.h>
#include <stddef.h>

/* Directory for generated clips (created on first use, kept between runs
 * under the build directory so that reruns are fast). */
const char *clip_dir(void);

/* Returns the path of clip `name` (e.g. "h264b.mp4"), generating it first
 * with `ffmpeg -y <args> <path>` if it does not exist. The file is written
 * to a temporary name and renamed, so parallel tests never see half a file.
 * Returns NULL (and prints the command) if ffmpeg fails. Static buffer per
 * call slot: copy it if you need several at once. */
const char *clip_make(const char *name, const char *ffmpeg_args, char *path, size_t cap);

/* Runs `ffmpeg -i path -map 0:v:0 -fps_mode passthrough -autoscale 0
 * [extra] -f framemd5 -` and stores up to `max` MD5 strings (33 bytes each).
 * Returns the number of frames, or -1. */
int oracle_md5(const char *path, const char *extra, char (*md5)[33], int max);

/* MD5 of an image's visible pixels, planes packed (ffmpeg's rawvideo). */
void image_md5(const fp_image *img, char hex[33]);

/* The real footage folder (FP_SOURCE_DIR "/../shared/videos"), or NULL with a
 * printed notice when it is absent. */
const char *shared_videos(void);

/* Copies `src` to `dst`, optionally flipping bytes in the middle third
 * (every `stride`-th byte XOR 0xFF) or truncating to `keep` of its size
 * (0 < keep < 1; 0 = no truncation). Returns 0 on success. */
int clip_corrupt_copy(const char *src, const char *dst, int stride, double keep);

#endif
