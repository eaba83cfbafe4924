/*
 * The plain libav decode loop — what a C user writes first — written once
 * for every benchmark that runs it as a peer (throughput, mem_per_frame):
 * open, decode the next frame (optionally rewinding at the end), convert to
 * a NEW BGR24 AVFrame per frame (av_frame_get_buffer + sws_scale: the
 * per-frame allocation such loops make), save a BGR frame as PNG with
 * libavcodec's encoder.
 */
#ifndef BENCH_LAV_LOOP_H
#define BENCH_LAV_LOOP_H

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>

typedef struct lav {
    AVFormatContext *ic;
    AVCodecContext *dec;
    int vs;
    AVPacket *pkt;
    AVFrame *frm;                /* the decoded frame lav_next fills */
    struct SwsContext *sws;      /* decoded -> BGR24 */
    struct SwsContext *save_sws; /* BGR -> RGB for the PNG encoder */
    int loop;                    /* 1: lav_next rewinds at the end of the input */
    int rewinds_in_row;
    /* what lav_open found */
    int width, height, threads;
    long clip_frames; /* frames in one pass (nb_frames, or duration x rate; 0 unknown) */
    char codec[32];
    char err[160];    /* why lav_open failed */
} lav;

/* Opens path with `threads` decoder threads (0: FFmpeg's choice); loop as
 * above. 0, or -1 with l->err set. lav_close even on failure. */
int lav_open(lav *l, const char *path, int threads, int loop);
/* Decodes the next frame into l->frm: 1, 0 at the end (loop == 0), < 0 on
 * an error. Corrupt packets are skipped, as a tolerant loop does. */
int lav_next(lav *l);
/* A NEW BGR24 frame converted from l->frm (which it unrefs); NULL on error.
 * av_frame_free it — or forget to, as the leaking scenario does. */
AVFrame *lav_to_bgr(lav *l);
/* Saves a BGR frame as PNG the way a plain libav program does: BGR -> RGB24
 * with swscale (the PNG encoder takes RGB order only), libavcodec's PNG
 * encoder opened for the call at cv::imwrite's default setting (level 1,
 * "sub" filter), fwrite. 0 or -1. */
int lav_save_png(lav *l, const char *path, const AVFrame *bgr);
void lav_close(lav *l);

#endif
