/*
 * The FFmpeg frame bridge: decoder buffers from framepool pools (get_buffer2
 * for DR1 decoders) and wrapped AVFrames for the rest.
 *
 * Ownership. A pool buffer handed to the decoder is an fp_image with one
 * reference owned by "the decoder side": the AVBuffer made around its pixels.
 * FFmpeg refcounts that AVBuffer itself (the decoder's reference pictures,
 * the frame returned by avcodec_receive_frame, frame-thread copies); when the
 * last AVBufferRef goes, the AVBuffer's free callback drops the decoder
 * side's fp reference. A delivered native frame is the same fp_image with one
 * more reference, the caller's. So:
 *   refcount == 1 and in dec_live  -> only the decoder uses it
 *   refcount  > 1 and in dec_live  -> the decoder and a caller use it (not writable)
 *   not in dec_live                -> only callers use it (writable when one)
 * and the frames callers hold = pool outstanding - decoder-only buffers.
 */
#define _POSIX_C_SOURCE 200809L
#include "avpriv.h"
#include "err.h"

#include <libavutil/cpu.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <string.h>

/* ---- pixel formats --------------------------------------------------------------- */

fp_pixfmt fp__pixfmt_from_av(int f)
{
    switch (f) {
    case AV_PIX_FMT_GRAY8: return FP_PIX_GRAY8;
    case AV_PIX_FMT_BGR24: return FP_PIX_BGR24;
    case AV_PIX_FMT_RGB24: return FP_PIX_RGB24;
    case AV_PIX_FMT_BGRA: return FP_PIX_BGRA;
    case AV_PIX_FMT_RGBA: return FP_PIX_RGBA;
    case AV_PIX_FMT_YUV420P:
    case AV_PIX_FMT_YUVJ420P: return FP_PIX_YUV420P;
    case AV_PIX_FMT_NV12: return FP_PIX_NV12;
    case AV_PIX_FMT_YUV422P:
    case AV_PIX_FMT_YUVJ422P: return FP_PIX_YUV422P;
    case AV_PIX_FMT_YUV444P:
    case AV_PIX_FMT_YUVJ444P: return FP_PIX_YUV444P;
    case AV_PIX_FMT_YUV420P10LE: return FP_PIX_YUV420P10;
    default: return FP_PIX_OTHER;
    }
}

int fp__pixfmt_to_av(fp_pixfmt f)
{
    switch (f) {
    case FP_PIX_GRAY8: return AV_PIX_FMT_GRAY8;
    case FP_PIX_BGR24: return AV_PIX_FMT_BGR24;
    case FP_PIX_RGB24: return AV_PIX_FMT_RGB24;
    case FP_PIX_BGRA: return AV_PIX_FMT_BGRA;
    case FP_PIX_RGBA: return AV_PIX_FMT_RGBA;
    case FP_PIX_YUV420P: return AV_PIX_FMT_YUV420P;
    case FP_PIX_NV12: return AV_PIX_FMT_NV12;
    case FP_PIX_YUV422P: return AV_PIX_FMT_YUV422P;
    case FP_PIX_YUV444P: return AV_PIX_FMT_YUV444P;
    case FP_PIX_YUV420P10: return AV_PIX_FMT_YUV420P10LE;
    default: return AV_PIX_FMT_NONE;
    }
}

/* ---- the bridge object ------------------------------------------------------------- */

static void bridge_finalize(void *obj)
{
    fp__bridge *b = obj;
    fp_unref(&b->pool);
    fp_free(b->dec_live, sizeof *b->dec_live * b->cap_dec_live);
    pthread_mutex_destroy(&b->mu);
}

static const fp_type bridge_type = {"fp_reader_bridge", bridge_finalize};

fp__bridge *fp__bridge_new(unsigned pool_max, const char *name)
{
    fp__bridge *b = fp__obj_new(&bridge_type, sizeof *b, sizeof *b, NULL, __FILE__, __LINE__,
                                __func__);
    if (!b)
        return NULL;
    atomic_fetch_or(&fp__hdr(b)->flags, FP__OBJ_INTERNAL);
    pthread_mutex_init(&b->mu, NULL);
    b->pool_max = pool_max;
    b->pool_fmt = AV_PIX_FMT_NONE;
    snprintf(b->pool_name, sizeof b->pool_name, "%s", name ? name : "reader");
    b->site_file = __FILE__;
    b->site_line = __LINE__;
    b->site_func = __func__;
    return b;
}

void fp__bridge_set_site(fp__bridge *b, const char *file, int line, const char *func)
{
    pthread_mutex_lock(&b->mu);
    b->site_file = file;
    b->site_line = line;
    b->site_func = func;
    pthread_mutex_unlock(&b->mu);
}

/* Under b->mu. */
static int dec_live_add(fp__bridge *b, fp_image *img)
{
    if (b->n_dec_live == b->cap_dec_live) {
        unsigned ncap = b->cap_dec_live ? b->cap_dec_live * 2 : 32;
        fp_image **n = fp_alloc(sizeof *n * ncap, 16);
        if (!n)
            return -1;
        if (b->n_dec_live)
            memcpy(n, b->dec_live, sizeof *n * b->n_dec_live);
        fp_free(b->dec_live, sizeof *b->dec_live * b->cap_dec_live);
        b->dec_live = n;
        b->cap_dec_live = ncap;
    }
    b->dec_live[b->n_dec_live++] = img;
    return 0;
}

/* Under b->mu: index of the entry whose pixels start at `data`, or -1. */
static int dec_live_find(const fp__bridge *b, const uint8_t *data)
{
    for (unsigned i = 0; i < b->n_dec_live; i++)
        if (fp__img(b->dec_live[i])->pixels == data)
            return (int)i;
    return -1;
}

/* Drops one reference to `img` unless it is the last (the object layer's
 * primitive: it runs nothing but the decrement, so it may be called under
 * b->mu; the last reference must go through fp_decref, which may run
 * callbacks, after unlocking). */
static int decref_unless_last(fp_image *img)
{
    return fp__obj_decref_unless_last(fp__hdr(img));
}

/* The AVBuffer free callback: the decoder side lets go of a pool buffer.
 * It runs on whichever thread drops FFmpeg's last AVBufferRef (a frame
 * thread, or the caller's during a flush or close). When a caller still
 * holds the image, the decoder side's reference goes under b->mu, so that
 * counts never see the buffer outside dec_live while it is the decoder's.
 * When it is the image's last reference, dropping it runs fp_on_free and
 * weak-map callbacks and returns the buffer to its pool: that happens after
 * b->mu is released, so a callback may call back into the reader (stats,
 * info) or the pool; until then the buffer counts in `releasing`, so
 * fp__bridge_counts never takes it for a frame a caller holds. */
void fp__bridge_release(fp__bridge *b, const uint8_t *data)
{
    fp_image *last = NULL;
    pthread_mutex_lock(&b->mu);
    int i = dec_live_find(b, data);
    if (i >= 0) {
        fp_image *img = b->dec_live[i];
        b->dec_live[i] = b->dec_live[--b->n_dec_live];
        if (!decref_unless_last(img)) {
            last = img;
            b->releasing++;
        }
    }
    pthread_mutex_unlock(&b->mu);
    if (last) {
        fp_decref(last); /* outside b->mu: may run user callbacks */
        pthread_mutex_lock(&b->mu);
        b->releasing--;
        pthread_mutex_unlock(&b->mu);
    }
    fp_decref(b);
}

static void buffer_released(void *opaque, uint8_t *data)
{
    fp__bridge_release(opaque, data);
}

int fp__bridge_layout(AVCodecContext *avctx, int fmt, int width, int height, fp_layout *l)
{
    int w = width, h = height, linesize_align[AV_NUM_DATA_POINTERS];
    avcodec_align_dimensions2(avctx, &w, &h, linesize_align);
    size_t cpu_align = av_cpu_max_align();
    int stride_align = cpu_align > 64 ? (int)cpu_align : 64;
    int linesize[4];
    for (int tries = 0;; tries++) {
        if (av_image_fill_linesizes(linesize, fmt, w) < 0 || tries > 16)
            return -1;
        w += w & ~(w - 1); /* next try: w rounded up to a higher power-of-two multiple */
        int unaligned = 0;
        for (int i = 0; i < 4; i++) {
            int a = linesize_align[i] > stride_align ? linesize_align[i] : stride_align;
            if (linesize[i] % a)
                unaligned = 1;
        }
        if (!unaligned)
            break;
    }
    ptrdiff_t ls[4] = {linesize[0], linesize[1], linesize[2], linesize[3]};
    size_t sizes[4];
    if (av_image_fill_plane_sizes(sizes, fmt, h, ls) < 0)
        return -1;
    memset(l, 0, sizeof *l);
    size_t off = 0, slack = 16 + (size_t)stride_align - 1;
    for (int p = 0; p < 4 && sizes[p]; p++) {
        if (linesize[p] <= 0)
            return -1;
        l->planes = p + 1;
        l->offset[p] = off;
        l->stride[p] = linesize[p];
        l->rows[p] = (int)(sizes[p] / (size_t)linesize[p]);
        off += sizes[p] + slack;
        off = (off + 63) & ~(size_t)63;
    }
    if (!l->planes)
        return -1;
    l->size = off + AV_INPUT_BUFFER_PADDING_SIZE;
    return 0;
}

/* Under b->mu: makes sure the pool serves `fmt` w x h buffers of layout l. */
static int pool_prepare(fp__bridge *b, int fmt, int w, int h, const fp_layout *l)
{
    if (b->pool && b->pool_fmt == fmt && b->pool_w == w && b->pool_h == h &&
        memcmp(&b->pool_layout, l, sizeof *l) == 0)
        return FP_OK;
    fp_pool_config cfg = {0};
    char name[96];
    snprintf(name, sizeof name, "%s %dx%d %s", b->pool_name, w, h, av_get_pix_fmt_name(fmt));
    cfg.name = name;
    cfg.format = fp__pixfmt_from_av(fmt);
    cfg.av_format_plus1 = fmt + 1;
    cfg.width = w;
    cfg.height = h;
    cfg.layout = l;
    cfg.max_buffers = b->pool_max;
    cfg.budget = b->budget;
    int rc = b->pool ? fp_pool_reconfigure(b->pool, &cfg)
                     : fp_pool_new_at(&cfg, &b->pool, __FILE__, __LINE__, __func__);
    if (rc)
        return rc;
    /* owned by the library while the reader lives (diagnostics list it apart) */
    atomic_fetch_or(&fp__hdr(b->pool)->flags, FP__OBJ_INTERNAL);
    b->pool_fmt = fmt;
    b->pool_w = w;
    b->pool_h = h;
    b->pool_layout = *l;
    return FP_OK;
}

/* Under b->mu, after the decoder pool refused a buffer with FP_ELIMIT: why.
 * The pool refuses at its cap (every buffer it may have exists), or below it
 * when its budget could not hold one more buffer; then the budget's figures
 * are kept for the message. */
static int refusal_cause(fp__bridge *b)
{
    fp_pool_stats ps;
    fp_pool_get_stats(b->pool, &ps);
    if (!b->budget || ps.allocated >= ps.max_buffers)
        return FP__EXHAUSTED_CAP;
    fp_budget_stats bs;
    fp_budget_get_stats(b->budget, &bs);
    b->refused_max = bs.max_bytes;
    b->refused_used = bs.used_bytes;
    b->refused_bytes = ps.buffer_bytes;
    return FP__EXHAUSTED_BUDGET;
}

int fp__bridge_acquire(fp__bridge *b, int fmt, int w, int h, const fp_layout *l, fp_image **out)
{
    fp_image *img = NULL;
    *out = NULL;
    pthread_mutex_lock(&b->mu);
    int rc = pool_prepare(b, fmt, w, h, l);
    if (rc == FP_OK)
        rc = fp_pool_acquire_at(b->pool, 0, &img, b->site_file, b->site_line, b->site_func);
    if (rc == FP_OK && dec_live_add(b, img) < 0)
        rc = FP_ENOMEM;
    int why = rc == FP_ELIMIT ? refusal_cause(b) : 0;
    pthread_mutex_unlock(&b->mu);
    if (rc) {
        fp_unref(&img); /* outside b->mu, like every release */
        if (why == FP__EXHAUSTED_BUDGET)
            atomic_fetch_add(&b->budget_refusals, 1);
        if (why)
            atomic_store(&b->exhausted, why);
        return rc;
    }
    fp__image *im = fp__img(img);
    /* A recycled buffer may carry the crop of its previous delivery. */
    im->pub.width = w;
    im->pub.height = h;
    im->pub.format = fp__pixfmt_from_av(fmt);
    im->pub.av_format = fmt;
    fp__image_bind_planes(im);
    atomic_fetch_or_explicit(&fp__hdr(img)->flags, FP__OBJ_INTERNAL, memory_order_relaxed);
    fp_ref(b); /* the buffer's, dropped by fp__bridge_release */
    *out = img;
    return FP_OK;
}

int fp__bridge_get_buffer2(AVCodecContext *avctx, AVFrame *frame, int flags)
{
    fp__bridge *b = avctx->opaque;
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(frame->format);
    if (!b || !d ||
        (d->flags & (AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BITSTREAM)) ||
        frame->width <= 0 || frame->height <= 0) {
        if (b)
            atomic_fetch_add(&b->fallbacks, 1);
        return avcodec_default_get_buffer2(avctx, frame, flags);
    }
    if (frame->width > FP_MAX_DIMENSION || frame->height > FP_MAX_DIMENSION)
        return AVERROR(EINVAL);
    fp_layout l;
    if (fp__bridge_layout(avctx, frame->format, frame->width, frame->height, &l) < 0) {
        atomic_fetch_add(&b->fallbacks, 1);
        return avcodec_default_get_buffer2(avctx, frame, flags);
    }
    fp_image *img = NULL;
    int rc = fp__bridge_acquire(b, frame->format, frame->width, frame->height, &l, &img);
    if (rc)
        return rc == FP_ELIMIT || rc == FP_ENOMEM ? AVERROR(ENOMEM) : AVERROR(EINVAL);
    uint8_t *pixels = fp__img(img)->pixels;
    AVBufferRef *buf = av_buffer_create(pixels, l.size, buffer_released, b, 0);
    if (!buf) {
        fp__bridge_release(b, pixels);
        return AVERROR(ENOMEM);
    }
    frame->buf[0] = buf;
    for (int p = 0; p < 4; p++) {
        frame->data[p] = img->data[p];
        frame->linesize[p] = img->stride[p];
    }
    frame->extended_data = frame->data;
    return 0;
}

fp_image *fp__bridge_take(fp__bridge *b, const AVFrame *frame)
{
    if (!frame->buf[0] || frame->buf[1] || av_buffer_get_opaque(frame->buf[0]) != b)
        return NULL;
    fp_image *img = NULL;
    pthread_mutex_lock(&b->mu);
    int i = dec_live_find(b, frame->buf[0]->data);
    if (i >= 0 && fp_refcount(b->dec_live[i]) == 1)
        img = fp_ref(b->dec_live[i]);
    pthread_mutex_unlock(&b->mu);
    if (img)
        atomic_fetch_and_explicit(&fp__hdr(img)->flags, ~(uint32_t)FP__OBJ_INTERNAL,
                                  memory_order_relaxed);
    return img;
}

void fp__bridge_counts(fp__bridge *b, unsigned *user_held, unsigned *decoder_only)
{
    pthread_mutex_lock(&b->mu);
    unsigned dec_only = 0;
    for (unsigned i = 0; i < b->n_dec_live; i++)
        if (fp_refcount(b->dec_live[i]) == 1)
            dec_only++;
    /* Buffers the decoder let go of that are still on their way back to the
     * pool are not the caller's. (Between their return and the end of
     * buffer_released they are subtracted twice: the count errs low for that
     * instant, never high, so a caller is never refused a frame it may have.) */
    unsigned releasing = b->releasing;
    fp_pool_stats s;
    fp_pool_get_stats(b->pool, &s);
    pthread_mutex_unlock(&b->mu);
    unsigned out = (unsigned)s.outstanding, not_users = dec_only + releasing;
    if (user_held)
        *user_held = (out > not_users ? out - not_users : 0) + atomic_load(&b->wrap_held);
    if (decoder_only)
        *decoder_only = dec_only;
}

/* ---- wrapped frames ------------------------------------------------------------------ */

static void wrap_free(void *user)
{
    AVFrame *f = user;
    fp__bridge *b = f->opaque;
    av_frame_free(&f);
    atomic_fetch_sub(&b->wrap_held, 1);
    fp_decref(b);
}

int fp__bridge_wrap(fp__bridge *b, const AVFrame *frame, fp_pixfmt fmt, fp_image **out,
                    const char *file, int line, const char *func)
{
    *out = NULL;
    AVFrame *c = av_frame_clone(frame);
    if (!c)
        return FP_ENOMEM;
    fp_image_wrap_info info = {0};
    info.width = c->width;
    info.height = c->height;
    info.format = fmt;
    info.av_format = c->format;
    for (int p = 0; p < 4; p++) {
        info.data[p] = c->data[p];
        info.stride[p] = c->data[p] ? c->linesize[p] : 0;
    }
    for (int i = 0; i < AV_NUM_DATA_POINTERS && c->buf[i]; i++)
        info.bytes += c->buf[i]->size;
    /* FFmpeg says whether anyone else (the decoder) shares the buffers. */
    info.flags = av_frame_is_writable(c) ? 0 : FP_IMAGE_READONLY;
    info.free_fn = wrap_free;
    info.user = c;
    c->opaque = fp_ref(b);
    atomic_fetch_add(&b->wrap_held, 1);
    int rc = fp_image_wrap_at(&info, out, file, line, func);
    if (rc) {
        atomic_fetch_sub(&b->wrap_held, 1);
        fp_decref(b);
        av_frame_free(&c);
    }
    return rc;
}
