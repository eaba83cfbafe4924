/*
 * Private interfaces of lib/av: the bridge between FFmpeg's decoder buffers
 * and framepool pools. Only lib/av includes this (and FFmpeg headers).
 */
#ifndef FRAMEPOOL_AVPRIV_H
#define FRAMEPOOL_AVPRIV_H

#include "internal.h"

#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <pthread.h>
#include <stdatomic.h>

/* The shared state behind a reader's decoder buffers. It is a framepool
 * object: the reader holds one reference, every live AVBuffer handed to the
 * decoder holds one, and every wrapped image holds one, so it outlives the
 * reader for as long as FFmpeg or the caller still has any of its memory. */
typedef struct fp__bridge {
    pthread_mutex_t mu;
    fp_pool *pool;              /* decoder pool (native frames live here) */
    int pool_fmt, pool_w, pool_h; /* key of the pool's current generation */
    fp_layout pool_layout;
    unsigned pool_max;          /* cap of the decoder pool */
    char pool_name[64];
    /* images referenced by live decoder AVBuffers (one entry per AVBuffer) */
    fp_image **dec_live;
    unsigned n_dec_live, cap_dec_live;
    _Atomic unsigned wrap_held; /* wrapped images delivered and still alive */
    _Atomic int exhausted;      /* get_buffer2 hit the pool cap */
    _Atomic uint64_t fallbacks; /* get_buffer2 calls handed to FFmpeg's default */
    /* creation site given to decoder buffers: the caller of the reader call
     * in progress (guarded by mu) */
    const char *site_file, *site_func;
    int site_line;
} fp__bridge;

/* Creates a bridge whose decoder pool will hold at most `pool_max` buffers. */
fp__bridge *fp__bridge_new(unsigned pool_max, const char *name);
/* Records the creation site for buffers made from now on. */
void fp__bridge_set_site(fp__bridge *b, const char *file, int line, const char *func);
/* The AVCodecContext.get_buffer2 callback (opaque = the bridge). */
int fp__bridge_get_buffer2(AVCodecContext *avctx, AVFrame *frame, int flags);
/* If `frame` lives in one of the bridge's pool buffers that nobody but the
 * decoder references, returns that image with a new reference (+1), else
 * NULL. */
fp_image *fp__bridge_take(fp__bridge *b, const AVFrame *frame);
/* Frames delivered by the pool and still held by someone other than the
 * decoder, and pool buffers only the decoder holds. */
void fp__bridge_counts(fp__bridge *b, unsigned *user_held, unsigned *decoder_only);
/* Wraps a reference to `frame` in an image counted as held (+1 in *out). */
int fp__bridge_wrap(fp__bridge *b, const AVFrame *frame, fp_pixfmt fmt, fp_image **out,
                    const char *file, int line, const char *func);

/* Maps an AVPixelFormat to the framepool format with the same memory layout,
 * or FP_PIX_OTHER. */
fp_pixfmt fp__pixfmt_from_av(int av_format);
/* The AVPixelFormat of a framepool format (AV_PIX_FMT_NONE for NONE/OTHER). */
int fp__pixfmt_to_av(fp_pixfmt fmt);

#endif
