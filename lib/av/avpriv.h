/*
 * Private interfaces of lib/av: the bridge between FFmpeg's decoder buffers
 * and framepool pools. Only lib/av includes this (and FFmpeg headers).
 */
#ifndef FRAMEPOOL_AVPRIV_H
#define FRAMEPOOL_AVPRIV_H

#include "internal.h"
#include "redact.h"

#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <pthread.h>
#include <stdatomic.h>

/* The shared state behind a reader's decoder buffers. It is a framepool
 * object: the reader holds one reference, every live AVBuffer handed to the
 * decoder holds one, and every wrapped image holds one, so it outlives the
 * reader for as long as FFmpeg or the caller still has any of its memory.
 * `mu` guards the fields below it; no framepool object is released while it
 * is held (a release may run user callbacks, which may call back into the
 * reader or the pool), and it nests outside the decoder pool's own lock. */
typedef struct fp__bridge {
    pthread_mutex_t mu;
    fp_pool *pool;              /* decoder pool (native frames live here) */
    int pool_fmt, pool_w, pool_h; /* key of the pool's current generation */
    fp_layout pool_layout;
    unsigned pool_max;          /* cap of the decoder pool */
    char pool_name[64];
    fp_budget *budget;          /* borrowed from the reader (which holds a reference while
                                   its decoder lives): the decoder pool's budget, or NULL */
    /* images referenced by live decoder AVBuffers (one entry per AVBuffer) */
    fp_image **dec_live;
    unsigned n_dec_live, cap_dec_live;
    unsigned releasing;         /* decoder-only buffers FFmpeg let go of, still on their
                                   way back to the pool (buffer_released) */
    _Atomic unsigned wrap_held; /* wrapped images delivered and still alive */
    _Atomic int exhausted;      /* get_buffer2 was refused a buffer: FP__EXHAUSTED_CAP (the
                                   pool cap) or FP__EXHAUSTED_BUDGET (the shared budget is
                                   full; refused_* say how full); 0 once reported */
    _Atomic unsigned budget_refusals; /* budget refusals not yet counted by the decoder */
    uint64_t refused_max, refused_used, refused_bytes; /* the budget's cap and bytes in use,
                                   and the buffer asked for, at the last budget refusal
                                   (under mu) */
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
/* The AVCodecContext.get_buffer2 callback (opaque = the bridge): a buffer
 * from fp__bridge_acquire in an AVBuffer whose free callback is
 * fp__bridge_release. */
int fp__bridge_get_buffer2(AVCodecContext *avctx, AVFrame *frame, int flags);
/* Computes the layout FFmpeg's own buffer pool would use for this decoder
 * and frame (avcodec_align_dimensions2, stride alignment, per-plane slack
 * and input padding), with every stride and plane offset a multiple of 64.
 * Returns 0, or -1 when the format cannot be laid out. */
int fp__bridge_layout(AVCodecContext *avctx, int fmt, int width, int height, fp_layout *l);
/* The decoder side of get_buffer2, without FFmpeg: takes a buffer for an
 * AVPixelFormat `fmt` w x h frame of layout `l` from the decoder pool (a new
 * generation when the key changed), registers it as held by the decoder and
 * stores it in *out — the decoder side's reference, which also holds one
 * reference to `b`; fp__bridge_release(b, fp__img(*out)->pixels) gives both
 * back. Returns 0, FP_ELIMIT (the pool cap or a full budget; `exhausted` says
 * which), FP_ENOMEM,
 * FP_EINVAL. Thread-safe (decoder frame threads call it). */
int fp__bridge_acquire(fp__bridge *b, int fmt, int w, int h, const fp_layout *l, fp_image **out);
/* The decoder lets go of the buffer whose pixels start at `data` (the
 * AVBuffer free callback, on whichever thread drops FFmpeg's last
 * reference). Drops the decoder side's reference to the image and the
 * buffer's reference to `b`. No lock is held while a reference is dropped
 * that may be the last (its fp_on_free and weak-map callbacks may call back
 * into the reader and the pool). Thread-safe. */
void fp__bridge_release(fp__bridge *b, const uint8_t *data);
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

/* fp__url_redact: redact.h. */

/* Maps an AVERROR code to a framepool error code. (input.c) */
int fp__averror_map(int e);

/* Maps an AVPixelFormat to the framepool format with the same memory layout,
 * or FP_PIX_OTHER. */
fp_pixfmt fp__pixfmt_from_av(int av_format);
/* The AVPixelFormat of a framepool format (AV_PIX_FMT_NONE for NONE/OTHER). */
int fp__pixfmt_to_av(fp_pixfmt fmt);

#endif
