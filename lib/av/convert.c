/*
 * Converted output: output geometry, a new conversion-pool generation on
 * every size or format change, and swscale (colour range handled as ffmpeg's
 * scale filter does).
 */
#define _POSIX_C_SOURCE 200809L
#include "convert.h"
#include "options.h"

#include <libavutil/pixdesc.h>
#include <stdio.h>
#include <string.h>

int fp__convert_out_size(const fp_reader_options *o, int w, int h, int *out_w, int *out_h)
{
    int ow = o->width, oh = o->height;
    if (!ow && !oh) {
        ow = w;
        oh = h;
    } else if (!ow) {
        ow = (int)((int64_t)oh * w * 2 / h + 1) / 2;
    } else if (!oh) {
        oh = (int)((int64_t)ow * h * 2 / w + 1) / 2;
    }
    *out_w = ow < 1 ? 1 : ow;
    *out_h = oh < 1 ? 1 : oh;
    return *out_w > FP_MAX_DIMENSION || *out_h > FP_MAX_DIMENSION ? FP_EINVAL : FP_OK;
}

/* A new size or format: new output geometry, new pool generation. */
void fp__convert_init(fp__convert *c, const fp_reader_options *o, unsigned max_held, int ahead)
{
    c->opt = o;
    c->max_held = max_held;
    c->ahead = ahead;
    c->cur_fmt = AV_PIX_FMT_NONE;
    c->out_fmt = o->format;
}

void fp__convert_close(fp__convert *c)
{
    sws_freeContext(c->sws);
    c->sws = NULL;
    fp_unref(&c->out_pool);
}

int fp__convert_changed(const fp__convert *c, const AVFrame *f)
{
    return f->width != c->cur_w || f->height != c->cur_h || f->format != c->cur_fmt;
}

unsigned fp__convert_outstanding(fp__convert *c)
{
    if (!c->out_pool)
        return 0;
    fp_pool_stats s;
    fp_pool_get_stats(c->out_pool, &s);
    return (unsigned)s.outstanding;
}

static int geometry(fp__convert *r, const AVFrame *f, fp__err *err);

int fp__convert_geometry(fp__convert *c, const AVFrame *f, fp__err *err)
{
    int rc = geometry(c, f, err);
    if (rc)
        c->cur_fmt = AV_PIX_FMT_NONE; /* not committed: the next frame sets up the output
                                         again, and does not find no pool */
    return rc;
}

static int geometry(fp__convert *r, const AVFrame *f, fp__err *err)
{
    if (f->width > FP_MAX_DIMENSION || f->height > FP_MAX_DIMENSION || f->width <= 0 ||
        f->height <= 0)
        return fp__err_set(err, FP_EFORMAT, "absurd frame dimensions %dx%d (limit %d)", f->width,
                           f->height, FP_MAX_DIMENSION);
    if (r->cur_fmt != AV_PIX_FMT_NONE)
        r->size_changes++;
    r->cur_w = f->width;
    r->cur_h = f->height;
    r->cur_fmt = f->format;
    int native = fp__native_output(r->opt);
    if (native)
        return FP_OK;
    if (r->opt->format == FP_PIX_NONE) {
        /* resize in the native format: only formats framepool can lay out */
        r->out_fmt = fp__pixfmt_from_av(f->format);
        if (r->out_fmt == FP_PIX_OTHER)
            r->out_fmt = FP_PIX_YUV420P;
    }
    int ow, oh;
    if (fp__convert_out_size(r->opt, f->width, f->height, &ow, &oh))
        return fp__err_set(err, FP_EINVAL, "output size %dx%d exceeds %d", ow, oh,
                           FP_MAX_DIMENSION);
    r->out_w = ow;
    r->out_h = oh;
    fp_pool_config cfg = {0};
    char name[96];
    snprintf(name, sizeof name, "reader %s %dx%d", fp_pixfmt_name(r->out_fmt), r->out_w,
             r->out_h);
    cfg.name = name;
    cfg.format = r->out_fmt;
    cfg.av_format = fp__pixfmt_to_av(r->out_fmt);
    cfg.width = r->out_w;
    cfg.height = r->out_h;
    /* the caller's max_held, and the frame converted ahead */
    cfg.max_buffers = r->max_held + (r->ahead ? 1u : 0u);
    cfg.budget = r->opt->budget;
    if (r->opt->prefill) {
        cfg.min_buffers = cfg.max_buffers;
        cfg.prefault = 1;
    }
    int rc;
    if (r->out_pool) {
        fp_pool_stats s;
        fp_pool_get_stats(r->out_pool, &s);
        fp_layout cur, want;
        fp_pool_layout(r->out_pool, &cur);
        fp_layout_compute(cfg.format, cfg.width, cfg.height, 64, 0, &want);
        if (memcmp(&cur, &want, sizeof cur) == 0)
            return FP_OK;
        rc = fp_pool_reconfigure(r->out_pool, &cfg);
    } else {
        rc = fp_pool_new_at(&cfg, &r->out_pool, __FILE__, __LINE__, __func__);
    }
    if (rc)
        return fp__err_set(err, rc, "cannot create the output pool: %s", fp_errmsg());
    atomic_fetch_or(&fp__hdr(r->out_pool)->flags, FP__OBJ_INTERNAL);
    return FP_OK;
}

static int src_format_for_sws(int f, int *full_range)
{
    switch (f) {
    case AV_PIX_FMT_YUVJ420P: *full_range = 1; return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: *full_range = 1; return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: *full_range = 1; return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: *full_range = 1; return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P: *full_range = 1; return AV_PIX_FMT_YUV411P;
    default: return f;
    }
}

/* Sets up the scaler for `f` and takes the output image from the pool: the
 * part of a conversion that can fail. The pixels are written by fp__convert_scale(). */
int fp__convert_prepare(fp__convert *r, const AVFrame *f, fp_image **out, const char *file,
                        int line, const char *func, fp__err *err)
{
    int full = f->color_range == AVCOL_RANGE_JPEG;
    int sfmt = src_format_for_sws(f->format, &full);
    int dfmt = fp__pixfmt_to_av(r->out_fmt);
    int flags = r->opt->sws_flags ? r->opt->sws_flags : SWS_BILINEAR;
    struct SwsContext *c = sws_getCachedContext(r->sws, f->width, f->height, sfmt, r->out_w,
                                                r->out_h, dfmt, flags, NULL, NULL, NULL);
    if (!c) {
        r->sws = NULL;
        return fp__err_set(err, FP_EFORMAT, "cannot convert %s %dx%d to %s %dx%d",
                           av_get_pix_fmt_name(f->format), f->width, f->height,
                           fp_pixfmt_name(r->out_fmt), r->out_w, r->out_h);
    }
    r->sws = c;
    {
        int *inv, *tab, srange, drange, bri, con, sat;
        /* YUV output keeps the source range (framepool images carry no
         * range tag), as ffmpeg's scale filter does; RGB/gray expand it. */
        const AVPixFmtDescriptor *dd = av_pix_fmt_desc_get(dfmt);
        int dfull = dd && !(dd->flags & AV_PIX_FMT_FLAG_RGB) && dd->nb_components >= 3 ? full
                                                                                      : -1;
        if (sws_getColorspaceDetails(c, &inv, &srange, &tab, &drange, &bri, &con, &sat) >= 0 &&
            (srange != full || (dfull >= 0 && drange != dfull))) {
            const int *coefs = sws_getCoefficients(SWS_CS_DEFAULT);
            sws_setColorspaceDetails(c, coefs, full, tab, dfull >= 0 ? dfull : drange, bri, con,
                                     sat);
        }
    }
    fp_image *img = NULL;
    int rc = fp_pool_acquire_at(r->out_pool, 0, &img, file, line, func);
    if (rc)
        return fp__err_set(err, rc, "%s", fp_errmsg());
    img->av_format = dfmt;
    *out = img;
    return FP_OK;
}

void fp__convert_scale(struct SwsContext *s, const AVFrame *f, fp_image *img)
{
    sws_scale(s, (const uint8_t *const *)f->data, f->linesize, 0, f->height, img->data,
              img->stride);
}
