/*
 * The file/stream engine: the one orchestrator of the reader's stages —
 * input (input.c), decoder (decoder.c), convert (convert.c) and ahead
 * (ahead.c). It opens them in order, runs the decode state machine (next,
 * seek), answers info and stats, and records the errors the stages return
 * into its message ("<what>: <the stage's message>"). The stages never call
 * it back.
 *
 * The decode loop pulls first (receive a frame before reading more), keeps
 * a packet the decoder refused with EAGAIN and resends it, drains exactly
 * once at the end of input, counts rejected packets against an error
 * budget, checks size and format on every frame, drops skipped frames before
 * any conversion, and the input re-arms the interrupt deadline before every
 * blocking libavformat call.
 */
#define _POSIX_C_SOURCE 200809L
#include "engine.h"

#include "ahead.h"
#include "convert.h"
#include "decoder.h"
#include "input.h"
#include "options.h"

#include <libavutil/pixdesc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct fp__engine {
    fp_reader_options opt;       /* a copy; the engine holds a reference to opt.budget */
    char what[160];              /* "open 'x.mp4'", "read", "seek to 1.000 s" */
    char errmsg[512];
    fp__err err;                 /* what the last stage call returned */
    _Atomic int own_interrupt;   /* a connection's (nobody sets it) */
    _Atomic int *interrupted;    /* the reader's interrupt request, or own_interrupt */
    int conn;                    /* a live connection: frames the pools cannot give are lost */
    fp__input in;
    fp__decoder dec;
    fp__convert cv;
    fp__ahead ah;
    int ahead;                   /* converting ahead is in effect */
    AVPacket *pkt;
    int pkt_pending;             /* pkt holds a packet the decoder has not taken */
    int demux_eof, drain_sent, done;
    /* the timeline */
    int64_t start_pts;           /* stream start time in time base (0 if unknown) */
    int64_t skip_until;          /* precise seek/start: drop frames with pts < this */
    int64_t end_pts;             /* INT64_MAX: no end */
    int64_t next_index;          /* index of the next decoded frame */
    int index_from_time;         /* after a seek: estimate indices from timestamps */
    double fps;
    const char *site_file, *site_func;
    int site_line;
    int pending_rc;              /* error met decoding ahead: returned by the next call */
    char pending_msg[512];
    int loop_rc;                 /* a rewind failed: the end of the stream returns this */
    char loop_msg[512];
    uint64_t delivered, skipped, corrupt, wrapped, budget_drops;
    int64_t rearm_us;            /* live: the stall limit a budget drop re-arms (0 = none) */
    uint64_t rearm_seen;         /* budget drops (decoder + output) when last re-armed */
    _Atomic uint64_t *drops_sink; /* live: where the budget drops are published at once */
    fp_reader_info sinfo;        /* a connection's stream fields (stream_info), taken before its
                                    read-ahead started: the demuxer is that thread's */
};

static void engine_finalize(void *obj);
static const fp_type engine_type = {"fp_reader_engine", engine_finalize};

/* ---- messages ------------------------------------------------------------------------------ */

/* Records "<what>: <msg>" as the engine's message (and the thread's
 * fp_errmsg). Returns code. */
static int record(fp__engine *e, int code, const char *msg)
{
    fp__err_join(e->errmsg, sizeof e->errmsg, e->what, msg);
    fp_errmsg_set("%s", e->errmsg);
    return code;
}

/* Records the error the last stage call returned. */
static int record_err(fp__engine *e, int code)
{
    return record(e, code, e->err.msg);
}

__attribute__((format(printf, 3, 4))) static int fail(fp__engine *e, int code, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err.msg, sizeof e->err.msg, fmt, ap);
    va_end(ap);
    return record(e, code, e->err.msg);
}

/* ---- open and close ------------------------------------------------------------------------ */

static int engine_seek(void *s, double seconds, int flags);

static void engine_finalize(void *obj)
{
    fp__engine *e = obj;
    fp__ahead_stop(&e->ah);
    fp__convert_close(&e->cv);
    av_packet_free(&e->pkt);
    fp__decoder_close(&e->dec);
    fp__input_close(&e->in);
    fp_unref(&e->opt.budget); /* after the decoder: its pools were made on it */
}

static int engine_new(const fp_reader_options *o, const char *what, _Atomic int *interrupted,
                      _Atomic int *abort_flag, int conn, const char *file, int line,
                      const char *func, fp__engine **out, fp__err *err)
{
    *out = NULL;
    fp__engine *e = fp__obj_new(&engine_type, sizeof *e, sizeof *e, NULL, file, line, func);
    if (!e)
        return fp__err_set(err, FP_ENOMEM, "%s: out of memory", what);
    atomic_fetch_or(&fp__hdr(e)->flags, FP__OBJ_INTERNAL);
    e->opt = *o;
    if (e->opt.budget)
        fp_ref(e->opt.budget); /* released by finalize */
    snprintf(e->what, sizeof e->what, "%s", what);
    e->interrupted = interrupted ? interrupted : &e->own_interrupt;
    e->conn = conn;
    e->site_file = file;
    e->site_line = line;
    e->site_func = func;
    e->skip_until = INT64_MIN;
    e->end_pts = INT64_MAX;
    fp__input_init(&e->in, &e->opt, e->interrupted, abort_flag);
    *out = e;
    return FP_OK;
}

/* Opens the input, the decoder, and sets up the timeline and the convert
 * stage. Returns 0 or an error (recorded). */
static int engine_start(fp__engine *e, const fp__engine_input *in)
{
    int rc;
    switch (in->kind) {
    case FP__IN_MEMORY: rc = fp__input_open_memory(&e->in, in->buf, in->len, &e->err); break;
    case FP__IN_IO: rc = fp__input_open_io(&e->in, in->read, in->seek, in->user, &e->err); break;
    default: rc = fp__input_open_url(&e->in, in->url, &e->err); break;
    }
    e->opt.av_options = NULL; /* borrowed for the open only */
    if (rc)
        return record_err(e, rc);
    rc = fp__decoder_open(&e->dec, e->in.ic, &e->opt, e->conn, e->site_file, e->site_line,
                          e->site_func, &e->err);
    if (rc)
        return record_err(e, rc);
    AVStream *st = e->dec.st;
    e->start_pts = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
    AVRational fr = st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate;
    if (fr.num > 0 && fr.den > 0)
        e->fps = av_q2d(fr);
    if (e->opt.end > 0)
        e->end_pts = e->start_pts + av_rescale_q((int64_t)(e->opt.end * AV_TIME_BASE),
                                                 AV_TIME_BASE_Q, st->time_base);
    fp__input_set_stream(&e->in, e->dec.vs, e->start_pts, e->fps);
    e->ahead = fp__ahead_wanted(&e->opt);
    fp__convert_init(&e->cv, &e->opt, e->dec.max_held, e->ahead);
    e->pkt = av_packet_alloc();
    if (!e->pkt)
        return fail(e, FP_ENOMEM, "out of memory (packet/frame)");
    if (e->opt.start > 0)
        return engine_seek(e, e->opt.start, FP_SEEK_PRECISE);
    return FP_OK;
}

/* A failed open: the whole message to *err, the engine released. */
static int open_failed(fp__engine **pe, int rc, fp__err *err)
{
    fp__err_set(err, rc, "%s", (*pe)->errmsg);
    fp_unref(pe);
    return rc;
}

int fp__engine_open(const fp__engine_input *in, const fp_reader_options *o,
                    const fp__source_ctx *ctx, fp__engine **out, fp__err *err)
{
    int rc = engine_new(o, ctx->what, ctx->interrupted, NULL, 0, ctx->file, ctx->line, ctx->func,
                        out, err);
    if (rc)
        return rc;
    rc = engine_start(*out, in);
    return rc ? open_failed(out, rc, err) : FP_OK;
}

/* ---- the decode loop ----------------------------------------------------------------------- */

static unsigned frames_held(fp__engine *e)
{
    unsigned held = 0;
    fp__decoder_counts(&e->dec, &held, NULL);
    return held + fp__convert_outstanding(&e->cv) - (e->ah.busy ? 1u : 0u);
}

static int64_t frame_pts(const AVFrame *f)
{
    return f->best_effort_timestamp != AV_NOPTS_VALUE ? f->best_effort_timestamp : f->pts;
}

/* Turns the decoded frame `f` into an image. Natively or converting on the
 * caller's thread, stores it (+1) in *out. Converting ahead, hands `f` to the
 * worker and stores in *out the image of the job before it (+1), or NULL
 * when there was none. Errors go to e->err (not recorded). */
static int deliver(fp__engine *e, AVFrame *f, int64_t pts, int64_t index, fp_image **out,
                   const char *file, int line, const char *func)
{
    fp_image *img = NULL, *prev = NULL;
    int native = fp__native_output(&e->opt);
    int ahead = !native && e->ahead && fp__ahead_start(&e->ah);
    int rc;
    if (native) {
        img = fp__bridge_take(e->dec.bridge, f);
        if (img) {
            /* The decoder's crop and the frame's own pointers. */
            img->width = f->width;
            img->height = f->height;
            img->format = fp__pixfmt_from_av(f->format);
            img->av_format = f->format;
            for (int p = 0; p < 4; p++) {
                img->data[p] = f->data[p];
                img->stride[p] = f->data[p] ? f->linesize[p] : 0;
            }
        } else {
            rc = fp__bridge_wrap(e->dec.bridge, f, fp__pixfmt_from_av(f->format), &img, file,
                                 line, func);
            if (rc)
                return fp__err_set(&e->err, rc, "cannot wrap the decoded frame");
            e->wrapped++;
        }
    } else {
        /* The worker must be done with the scaler before it is set up again
         * (a size change replaces it). */
        prev = ahead ? fp__ahead_collect(&e->ah) : NULL;
        rc = fp__convert_prepare(&e->cv, f, &img, file, line, func, &e->err);
        if (rc) {
            if (prev)
                fp__ahead_putback(&e->ah, prev); /* still delivered, before this error */
            return rc;
        }
    }
    img->index = index;
    img->wall_time = fp__input_wall_time(&e->in, pts);
    img->pts = pts == AV_NOPTS_VALUE ? INT64_MIN : pts;
    img->time = pts == AV_NOPTS_VALUE
                    ? NAN
                    : (double)(pts - e->start_pts) * av_q2d(e->dec.st->time_base);
    img->flags = (img->flags & FP_IMAGE_READONLY) | (f->key_frame ? FP_IMAGE_KEY : 0) |
                 ((f->flags & AV_FRAME_FLAG_CORRUPT) || f->decode_error_flags ? FP_IMAGE_CORRUPT
                                                                              : 0);
    if (ahead) {
        fp__ahead_post(&e->ah, e->cv.sws, f, img);
        *out = prev;
        return FP_OK;
    }
    if (!native)
        fp__convert_scale(e->cv.sws, f, img);
    *out = img;
    return FP_OK;
}

/* Decides what to do with a decoded frame: 1 deliver, 0 skip, -1 end. */
static int frame_wanted(fp__engine *e, int64_t pts, int64_t *index)
{
    if (e->index_from_time && pts != AV_NOPTS_VALUE && e->fps > 0) {
        double t = (double)(pts - e->start_pts) * av_q2d(e->dec.st->time_base);
        e->next_index = llround(t * e->fps);
        e->index_from_time = 0;
    }
    /* a live connection's read-ahead dropped packets before this frame's: its
     * index goes on by as many, so that a gap in indices is frames lost */
    e->next_index += fp__input_take_gap(&e->in, pts);
    *index = e->next_index++;
    if (pts != AV_NOPTS_VALUE && pts >= e->end_pts)
        return -1;
    if (e->skip_until != INT64_MIN) {
        if (pts != AV_NOPTS_VALUE && pts < e->skip_until)
            return 0;
        e->skip_until = INT64_MIN;
    }
    if (e->opt.every > 1 && *index % e->opt.every)
        return 0;
    return 1;
}

/* The end of the stream: 0, or the error that stopped options.loop. */
static int loop_end(fp__engine *e)
{
    int rc = e->loop_rc;
    if (!rc)
        return 0;
    e->loop_rc = 0;
    snprintf(e->errmsg, sizeof e->errmsg, "%s", e->loop_msg);
    fp_errmsg_set("%s", e->errmsg);
    return rc;
}

/* Reads the next packet into e->pkt, counting the packets the demuxer
 * rejects against the error budget. 1, 0 at the end, or an error in e->err. */
static int read_packet(fp__engine *e)
{
    for (;;) {
        int rc = fp__input_read_packet(&e->in, e->pkt, &e->err);
        if (rc != FP__INPUT_REJECTED)
            return rc;
        rc = fp__decoder_error(&e->dec, e->in.rejected, "demuxing", &e->err);
        if (rc)
            return rc;
    }
}

/* Decodes up to the next frame to deliver and passes it to deliver().
 * Returns 1 (see deliver() for *img), 0 at the end, or a negative error
 * (recorded). */
/* A live connection: frames lost to a full budget since the last look mean
 * the source is sending; the stall deadline starts again from now. */
static void rearm_on_budget_drop(fp__engine *e)
{
    uint64_t drops = e->dec.budget_drops + e->budget_drops;
    if (drops == e->rearm_seen)
        return;
    e->rearm_seen = drops;
    if (e->drops_sink)
        atomic_store_explicit(e->drops_sink, drops, memory_order_relaxed);
    if (e->rearm_us <= 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    fp__input_set_stall_deadline(&e->in, now + e->rearm_us);
}

static int decode_one(fp__engine *e, fp_image **img, const char *file, int line,
                      const char *func)
{
    fp__decoder *d = &e->dec;
    for (;;) {
        rearm_on_budget_drop(e);
        int rc = fp__decoder_receive(d, &e->err);
        if (rc == 1) {
            AVFrame *f = d->frame;
            if (fp__convert_changed(&e->cv, f)) {
                rc = fp__convert_geometry(&e->cv, f, &e->err);
                if (rc) {
                    av_frame_unref(f);
                    e->done = 1;
                    return record_err(e, rc);
                }
            }
            int corrupt = (f->flags & AV_FRAME_FLAG_CORRUPT) || f->decode_error_flags;
            int64_t pts = frame_pts(f), index;
            int want = frame_wanted(e, pts, &index);
            if (want <= 0) {
                av_frame_unref(f);
                if (want < 0) {
                    e->done = 1;
                    return 0;
                }
                e->skipped++;
                e->corrupt += corrupt;
                continue;
            }
            rc = deliver(e, f, pts, index, img, file, line, func);
            av_frame_unref(f);
            if (rc == FP_ELIMIT && e->conn) {
                /* a live connection whose output pool cannot grow (a shared budget
                 * is full): this frame is lost, the stream goes on */
                e->skipped++;
                e->budget_drops++;
                continue;
            }
            if (rc) {
                e->done = 1;
                return record_err(e, rc);
            }
            e->corrupt += corrupt;
            return 1;
        }
        if (rc == 2) { /* drained */
            e->done = 1;
            return loop_end(e);
        }
        if (rc < 0) {
            e->done = 1;
            return record_err(e, rc);
        }
        if (e->drain_sent) { /* nothing more will come */
            e->done = 1;
            return loop_end(e);
        }
        int fresh = 0;
        if (!e->pkt_pending) {
            if (!e->demux_eof) {
                rc = read_packet(e);
                if (rc < 0) {
                    if (rc != FP_ECANCELED && rc != FP_ETIMEDOUT)
                        e->done = 1;
                    return record_err(e, rc);
                }
                if (rc == 0 && fp__input_loops_left(&e->in)) {
                    /* options.loop: the same decoder goes on with the next pass */
                    rc = fp__input_rewind(&e->in, &e->err);
                    if (rc == FP_ECANCELED || rc == FP_ETIMEDOUT)
                        return record_err(e, rc); /* the next call rewinds again */
                    if (rc == 0)
                        continue;
                    /* the frames still in the decoder first, then the error */
                    e->loop_rc = rc;
                    fp__err_join(e->loop_msg, sizeof e->loop_msg, e->what, e->err.msg);
                    fp__input_stop_loop(&e->in);
                    rc = 0;
                }
                if (rc == 0)
                    e->demux_eof = 1;
                else
                    e->pkt_pending = 1;
            }
            if (e->demux_eof) {
                rc = fp__decoder_send(d, NULL, 0, &e->err);
                e->drain_sent = 1;
                if (rc < 0) {
                    e->done = 1;
                    return record_err(e, rc);
                }
                continue;
            }
            fresh = 1;
        }
        rc = fp__decoder_send(d, e->pkt, fresh, &e->err);
        if (rc == 0)
            continue; /* keep the packet; receive first, then resend it */
        e->pkt_pending = 0;
        av_packet_unref(e->pkt);
        if (rc < 0) {
            e->done = 1;
            return record_err(e, rc);
        }
    }
}

static int engine_next(void *s, fp_image **img, const char *file, int line, const char *func)
{
    fp__engine *e = s;
    if (!e->ah.busy) {
        if (e->pending_rc) { /* met while decoding ahead of the last frame delivered */
            int rc = e->pending_rc;
            e->pending_rc = 0;
            memcpy(e->errmsg, e->pending_msg, sizeof e->errmsg);
            return rc;
        }
        if (e->done)
            return 0;
    }
    e->errmsg[0] = 0;
    snprintf(e->what, sizeof e->what, "read");
    if (atomic_exchange(e->interrupted, 0))
        return fail(e, FP_ECANCELED, "interrupted (fp_reader_interrupt)");
    unsigned held = frames_held(e);
    if (held >= e->dec.max_held)
        return record_err(e, fp__err_held(&e->err, held, e->dec.max_held));
    if (e->site_file != file || e->site_line != line) {
        e->site_file = file;
        e->site_line = line;
        e->site_func = func;
        fp__bridge_set_site(e->dec.bridge, file, line, func);
    }
    for (;;) {
        int rc = e->done ? 0 : decode_one(e, img, file, line, func);
        if (rc > 0 && !*img)
            continue; /* the first frame went to the worker: decode the next meanwhile */
        if (rc <= 0 && e->ah.busy) {
            /* The frame in flight comes first; the end or the error is the
             * next call's answer. */
            if (rc < 0) {
                e->pending_rc = rc;
                memcpy(e->pending_msg, e->errmsg, sizeof e->pending_msg);
                e->errmsg[0] = 0;
            }
            *img = fp__ahead_collect(&e->ah);
            rc = 1;
        }
        if (rc > 0) {
            e->delivered++;
            if (!e->conn) /* a live connection: the live reader ticks per delivery */
                fp_frame_tick();
        }
        return rc;
    }
}

/* ---- seek, info, stats --------------------------------------------------------------------- */

static int engine_seek(void *s, double seconds, int flags)
{
    fp__engine *e = s;
    snprintf(e->what, sizeof e->what, "seek to %.3f s", seconds);
    if (!(seconds >= 0))
        return fail(e, FP_EINVAL, "negative or invalid time");
    if (!fp__input_seekable(&e->in))
        return fail(e, FP_EIO, "the input cannot seek (no seek callback)");
    AVRational tb = e->dec.st->time_base;
    int64_t ts = e->start_pts + av_rescale_q((int64_t)llround(seconds * AV_TIME_BASE),
                                             AV_TIME_BASE_Q, tb);
    int rc = fp__input_seek(&e->in, ts, "cannot seek", &e->err);
    if (rc)
        return record_err(e, rc);
    fp__ahead_discard(&e->ah);
    e->pending_rc = 0;
    fp__input_loop_reset(&e->in);
    fp__decoder_flush(&e->dec);
    av_packet_unref(e->pkt);
    e->pkt_pending = 0;
    e->demux_eof = e->drain_sent = e->done = 0;
    e->skip_until = (flags & FP_SEEK_PRECISE) ? ts : INT64_MIN;
    /* a seek before `start` still honours it */
    if (e->opt.start > 0) {
        int64_t st = e->start_pts + av_rescale_q((int64_t)llround(e->opt.start * AV_TIME_BASE),
                                                 AV_TIME_BASE_Q, tb);
        if (e->skip_until == INT64_MIN || e->skip_until < st)
            e->skip_until = st;
    }
    e->index_from_time = 1;
    e->errmsg[0] = 0;
    return FP_OK;
}

/* The fields of fp_reader_info that come from the demuxer's stream. */
static void stream_info(const fp__engine *e, fp_reader_info *out)
{
    const AVStream *st = e->dec.st;
    AVRational fr = st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate;
    out->fps_num = fr.num > 0 && fr.den > 0 ? fr.num : 0;
    out->fps_den = fr.num > 0 && fr.den > 0 ? fr.den : 1;
    AVRational tb = st->time_base;
    AVFormatContext *ic = e->in.ic;
    if (st->duration != AV_NOPTS_VALUE)
        out->duration = (double)st->duration * av_q2d(tb);
    else if (ic->duration != AV_NOPTS_VALUE)
        out->duration = (double)ic->duration / AV_TIME_BASE;
    if (st->nb_frames > 0)
        out->frame_count = st->nb_frames;
    else if (out->duration > 0 && e->fps > 0)
        out->frame_count = llround(out->duration * e->fps);
    else
        out->frame_count = -1;
    AVRational sar = av_guess_sample_aspect_ratio(ic, (AVStream *)st, NULL);
    out->sar_num = sar.num > 0 ? sar.num : 0;
    out->sar_den = sar.num > 0 ? sar.den : 1;
    out->time_base_num = tb.num;
    out->time_base_den = tb.den;
    out->container = ic->iformat ? ic->iformat->name : "";
}

static int engine_info(const void *s, fp_reader_info *out)
{
    const fp__engine *e = s;
    const AVCodecContext *d = e->dec.dec;
    const fp__convert *cv = &e->cv;
    int fmt = cv->cur_fmt != AV_PIX_FMT_NONE ? cv->cur_fmt : d->pix_fmt;
    out->width = cv->cur_fmt != AV_PIX_FMT_NONE ? cv->cur_w : d->width;
    out->height = cv->cur_fmt != AV_PIX_FMT_NONE ? cv->cur_h : d->height;
    out->av_format = fmt;
    out->native_format = fmt == AV_PIX_FMT_NONE ? FP_PIX_NONE : fp__pixfmt_from_av(fmt);
    out->av_format_name = av_get_pix_fmt_name(fmt);
    if (!out->av_format_name)
        out->av_format_name = "none";
    int native = fp__native_output(&e->opt);
    if (native || !cv->out_w) {
        /* no frame converted yet: what the first one will get */
        out->out_width = out->width;
        out->out_height = out->height;
        out->out_format = native ? out->native_format : e->opt.format;
        int ow, oh;
        if (!native && out->width > 0 && out->height > 0 &&
            fp__convert_out_size(&e->opt, out->width, out->height, &ow, &oh) == 0) {
            out->out_width = ow;
            out->out_height = oh;
        }
    } else {
        out->out_width = cv->out_w;
        out->out_height = cv->out_h;
        out->out_format = cv->out_fmt;
    }
    out->fps = e->fps;
    if (e->in.ra) {
        const fp_reader_info *k = &e->sinfo;
        out->fps_num = k->fps_num;
        out->fps_den = k->fps_den;
        out->duration = k->duration;
        out->frame_count = k->frame_count;
        out->sar_num = k->sar_num;
        out->sar_den = k->sar_den;
        out->time_base_num = k->time_base_num;
        out->time_base_den = k->time_base_den;
        out->container = k->container;
    } else {
        stream_info(e, out);
    }
    out->stream_index = e->dec.vs;
    out->codec = d->codec ? d->codec->name : avcodec_get_name(d->codec_id);
    out->threads = e->dec.threads;
    out->zero_copy = e->dec.zero_copy;
    out->decoder_buffers = e->dec.need;
    out->max_held = e->dec.max_held;
    out->pool_max_buffers = e->dec.bridge->pool_max;
    out->out_pool_max_buffers = native ? 0 : e->dec.max_held + (e->ahead ? 1u : 0u);
    out->convert_ahead = e->ahead && !e->ah.failed;
    return FP_OK;
}

static int engine_stats(void *s, fp_reader_stats *out)
{
    fp__engine *e = s;
    out->packets = e->dec.packets;
    out->decoded = e->dec.decoded;
    out->delivered = e->delivered;
    out->skipped = e->skipped;
    out->corrupt = e->corrupt;
    out->decode_errors = e->dec.decode_errors;
    out->size_changes = e->cv.size_changes;
    out->wrapped = e->wrapped;
    out->loops = e->in.loops;
    out->loops_replayed = e->in.loops_replayed;
    out->budget_drops = e->dec.budget_drops + e->budget_drops;
    const fp__backlog *bl = fp__readahead_counts(&e->in);
    out->packets_dropped = bl ? atomic_load(&bl->dropped) : 0;
    out->packets_queued = bl ? atomic_load(&bl->queued) : 0;
    unsigned held = 0, dec_only = 0;
    fp__decoder_counts(&e->dec, &held, &dec_only);
    out->decoder_held = dec_only;
    fp__bridge *b = e->dec.bridge;
    pthread_mutex_lock(&b->mu);
    fp_pool_get_stats(b->pool, &out->pool);
    pthread_mutex_unlock(&b->mu);
    if (e->cv.out_pool) {
        fp_pool_get_stats(e->cv.out_pool, &out->out_pool);
        held += (unsigned)out->out_pool.outstanding - (e->ah.busy ? 1u : 0u);
    }
    out->held = held;
    return FP_OK;
}

static const char *engine_errmsg(const void *s)
{
    return ((const fp__engine *)s)->errmsg;
}

static void engine_close(void *s)
{
    fp__engine *e = s;
    fp_unref(&e);
}

const fp__source_ops fp__engine_ops = {
    .name = "file",
    .next = engine_next,
    .seek = engine_seek,
    .info = engine_info,
    .stats = engine_stats,
    .interrupt = NULL, /* the input's interrupt callback reads the reader's flag */
    .errmsg = engine_errmsg,
    .close = engine_close,
};

struct fp__bridge *fp__engine_bridge(fp__engine *e)
{
    return e->dec.bridge;
}

/* ---- connections (live.c) ------------------------------------------------------------------ */

int fp__conn_open(const char *url, const fp_reader_options *o, const fp__conn_config *cc,
                  const char *file, int line, const char *func, fp__engine **out, fp__err *err)
{
    int rc = engine_new(o, cc->what, NULL, cc->abort_flag, 1, file, line, func, out, err);
    if (rc)
        return rc;
    fp__engine *e = *out;
    e->drops_sink = cc->drops_sink;
    fp__input_set_stall_deadline(&e->in, cc->open_deadline_us);
    fp__engine_input in = {.kind = FP__IN_URL, .url = url};
    rc = engine_start(e, &in);
    if (!rc) {
        stream_info(e, &e->sinfo);
        rc = fp__readahead_start(&e->in, cc->buffer_bytes, cc->latest, cc->backlog, &e->err);
        if (rc)
            record_err(e, rc);
    }
    return rc ? open_failed(out, rc, err) : FP_OK;
}

int fp__conn_read(fp__engine *c, fp_image **img, int64_t deadline_us, int64_t rearm_us,
                  fp__conn_end *why, const char *file, int line, const char *func)
{
    fp_unref_at(img, file, line, func);
    fp__input_set_stall_deadline(&c->in, deadline_us);
    c->rearm_us = rearm_us;
    c->rearm_seen = c->dec.budget_drops + c->budget_drops;
    int rc = engine_next(c, img, file, line, func);
    int stalled = fp__input_last_reason(&c->in) == FP__INT_STALL;
    if (rc > 0)
        *why = stalled ? FP__CONN_STALLED : FP__CONN_STREAMING;
    else if (rc == 0)
        *why = FP__CONN_EOF;
    else if (rc == FP_EHELD)
        *why = FP__CONN_HELD;
    else if (rc == FP_ETIMEDOUT && stalled)
        *why = FP__CONN_STALLED;
    else if (c->in.abort_flag && atomic_load(c->in.abort_flag))
        *why = FP__CONN_ABORTED;
    else
        *why = FP__CONN_FAILED;
    return rc;
}

const char *fp__conn_errmsg(const fp__engine *c)
{
    return c->errmsg;
}

int fp__conn_info(const fp__engine *c, fp_reader_info *out)
{
    memset(out, 0, sizeof *out);
    return engine_info(c, out);
}

int fp__conn_stats(fp__engine *c, fp_reader_stats *out)
{
    memset(out, 0, sizeof *out);
    return engine_stats(c, out);
}

void fp__conn_close(fp__engine **c)
{
    fp_unref(c);
}
