/*
 * framemd5 — prints one MD5 per decoded frame in the format of
 * `ffmpeg -i INPUT -map 0:v:0 -fps_mode passthrough -autoscale 0 -f framemd5 -`,
 * the conformance tool for framepool's reader.
 *
 *   framemd5 INPUT [--format bgr24|gray8|rgb24|bgra|rgba|yuv420p|...] [--every N]
 *                  [--threads N] [--size WxH]
 *
 * Each frame's planes are hashed packed (no row padding), as ffmpeg's
 * rawvideo encoder stores them. Exits 1 with the reader's message on error.
 */
#include <framepool.h>

#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/mem.h>
#include <libavutil/md5.h>
#include <libavutil/pixdesc.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: framemd5 INPUT [--format FMT] [--every N] [--threads N] "
                    "[--size WxH]\n");
    return 2;
}

/* MD5 of the frame's visible pixels, planes packed one after another. */
static int frame_md5(const fp_image *img, char hex[33], int *size)
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(img->av_format);
    if (!d)
        return -1;
    struct AVMD5 *md5 = av_md5_alloc();
    if (!md5)
        return -1;
    av_md5_init(md5);
    int linesize[4];
    if (av_image_fill_linesizes(linesize, img->av_format, img->width) < 0) {
        av_free(md5);
        return -1;
    }
    int total = 0;
    int nplanes = av_pix_fmt_count_planes(img->av_format);
    for (int p = 0; p < nplanes; p++) {
        int h = img->height;
        if (p == 1 || p == 2)
            h = -((-h) >> d->log2_chroma_h); /* rounded up */
        for (int y = 0; y < h; y++)
            av_md5_update(md5, img->data[p] + (ptrdiff_t)y * img->stride[p], linesize[p]);
        total += linesize[p] * h;
    }
    uint8_t sum[16];
    av_md5_final(md5, sum);
    av_free(md5);
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", sum[i]);
    *size = total;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *input = NULL;
    fp_reader_options opt = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--format") && i + 1 < argc) {
            opt.format = fp_pixfmt_from_name(argv[++i]);
            if (opt.format == FP_PIX_NONE) {
                fprintf(stderr, "framemd5: unknown format '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--every") && i + 1 < argc) {
            opt.every = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            opt.threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            if (sscanf(argv[++i], "%dx%d", &opt.width, &opt.height) != 2)
                return usage();
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return usage();
        } else {
            input = argv[i];
        }
    }
    if (!input)
        return usage();

    fp_reader *r = NULL;
    int rc = fp_reader_open(input, &opt, &r);
    if (rc < 0) {
        fprintf(stderr, "framemd5: %s (%s)\n", fp_reader_errmsg(r), fp_strerror(rc));
        fp_reader_close(&r);
        return 1;
    }
    fp_reader_info info;
    fp_reader_info(r, &info);
    /* ffmpeg's framemd5 uses 1/frame-rate as the time base of the frames. */
    int tb_num = info.fps_num ? info.fps_den : info.time_base_num;
    int tb_den = info.fps_num ? info.fps_num : info.time_base_den;

    fp_image *img = NULL;
    int64_t n = 0;
    while ((rc = fp_reader_next(r, &img)) > 0) {
        if (n == 0) {
            printf("#format: frame checksums\n#version: 2\n#hash: MD5\n#software: %s\n",
                   LIBAVFORMAT_IDENT);
            printf("#tb 0: %d/%d\n#media_type 0: video\n#codec_id 0: rawvideo\n", tb_num, tb_den);
            printf("#dimensions 0: %dx%d\n#sar 0: %d/%d\n", img->width, img->height,
                   info.sar_num, info.sar_den);
            printf("#stream#, dts,        pts, duration,     size, hash\n");
        }
        char hex[33];
        int size = 0;
        if (frame_md5(img, hex, &size) < 0) {
            fprintf(stderr, "framemd5: cannot hash frame %" PRId64 "\n", n);
            rc = FP_EFORMAT;
            break;
        }
        int64_t pts = n;
        if (!isnan(img->time))
            pts = llround(img->time * tb_den / tb_num);
        printf("0, %10" PRId64 ", %10" PRId64 ", %8d, %8d, %s\n", pts, pts, 1, size, hex);
        n++;
    }
    fp_unref(&img);
    if (rc < 0)
        fprintf(stderr, "framemd5: %s (%s)\n", fp_reader_errmsg(r), fp_strerror(rc));
    fp_reader_close(&r);
    return rc < 0 ? 1 : 0;
}
