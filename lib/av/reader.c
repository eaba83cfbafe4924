/*
 * fp_reader: the frame iterator over FFmpeg — the decode state machine
 * (next, seek, info, stats, close). Inputs are in input.c, the decoder's
 * opening in decoder.c, conversion in convert.c, converting ahead in ahead.c.
 *
 * The decode loop pulls first (avcodec_receive_frame before reading more),
 * keeps a packet the decoder refused with EAGAIN and resends it, drains
 * exactly once at the end of input, counts rejected packets against an error
 * budget, checks size and format on every frame, drops skipped frames before
 * any conversion, and re-arms the interrupt deadline before every blocking
 * libavformat call.
 */
#define _POSIX_C_SOURCE 200809L
#include "readerpriv.h"

#include "avlog.h"

#include <libavutil/pixdesc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void reader_finalize(void *obj);
static const fp_type reader_type = {"fp_reader", reader_finalize};

/* ---- messages ------------------------------------------------------------------------------ */

int fp__reader_fail(fp_reader *r, int code, const char *fmt, ...)
{
    int n = snprintf(r->errmsg, sizeof r->errmsg, "%s: ", r->what);
    if (n < 0 || (size_t)n >= sizeof r->errmsg)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errmsg + n, sizeof r->errmsg - (size_t)n, fmt, ap);
    va_end(ap);
    fp_errmsg_set("%s", r->errmsg); /* the thread channel (fp_errmsg) too */
    return code;
}

/* ---- open and close ------------------------------------------------------------------------ */

static int check_options(fp_reader *r, const fp_reader_options *o)
{
    if (o->format < FP_PIX_NONE || o->format >= FP_PIX_COUNT_ || o->format == FP_PIX_OTHER)
        return fp__reader_fail(
            r, FP_EINVAL, "invalid output format %d (use FP_PIX_NONE for native)", (int)o->format);
    if (o->format != FP_PIX_NONE && fp__pixfmt_to_av(o->format) == AV_PIX_FMT_NONE)
        return fp__reader_fail(r, FP_EINVAL, "output format %s is not supported",
                               fp_pixfmt_name(o->format));
    if (o->width < 0 || o->height < 0 || o->width > FP_MAX_DIMENSION ||
        o->height > FP_MAX_DIMENSION)
        return fp__reader_fail(r, FP_EINVAL, "invalid output size %dx%d (0..%d)", o->width,
                               o->height, FP_MAX_DIMENSION);
    if (o->every < 0 || o->threads < 0 || o->threads > 64)
        return fp__reader_fail(r, FP_EINVAL, "invalid every (%d) or threads (%d)", o->every,
                               o->threads);
    if (!(o->start >= 0) || !(o->end >= 0) || (o->end > 0 && o->end <= o->start))
        return fp__reader_fail(r, FP_EINVAL,
                               "invalid range start=%g end=%g (need 0 <= start < end)", o->start,
                               o->end);
    if (o->max_held > 4096)
        return fp__reader_fail(r, FP_EINVAL, "max_held %u is absurd (at most 4096)", o->max_held);
    if (o->timeout_us < 0)
        return fp__reader_fail(r, FP_EINVAL, "negative timeout_us");
    if (o->stream_set && o->stream < 0)
        return fp__reader_fail(r, FP_EINVAL, "negative stream index %d", o->stream);
    if (o->convert_ahead < 0 || o->convert_ahead > 1)
        return fp__reader_fail(r, FP_EINVAL, "invalid convert_ahead %d (0 off, the default; 1 on)",
                               o->convert_ahead);
    if (o->loop < -1)
        return fp__reader_fail(r, FP_EINVAL, "invalid loop %d (0 once, N more times, -1 forever)",
                               o->loop);
    if (o->loop_cache < -1)
        return fp__reader_fail(r, FP_EINVAL,
                               "invalid loop_cache %lld (0 the default, N bytes, -1 never)",
                               (long long)o->loop_cache);
    if (o->loop && (o->start > 0 || o->end > 0))
        return fp__reader_fail(r, FP_EINVAL, "loop does not combine with start/end");
    if (o->loop && o->live.mode != FP_LIVE_OFF)
        return fp__reader_fail(r, FP_EINVAL, "a live source cannot loop");
    return fp__live_check(r, o);
}

int fp__reader_begin(fp_reader **out, const fp_reader_options *opts, const char *what,
                        const char *file, int line, const char *func)
{
    *out = NULL;
    fp__avlog_install(); /* FFmpeg's lines through framepool's log hook, redacted */
    fp_reader *r = fp__obj_new(&reader_type, sizeof(fp_reader), sizeof(fp_reader), NULL, file,
                               line, func);
    if (!r)
        return FP_ENOMEM;
    if (opts)
        r->opt = *opts;
    if (r->opt.budget)
        fp_ref(r->opt.budget); /* released by finalize */
    r->vs = -1;
    r->site_file = file;
    r->site_line = line;
    r->site_func = func;
    snprintf(r->what, sizeof r->what, "%s", what);
    *out = r;
    r->loop_left = r->opt.loop;
    r->pass_end = INT64_MIN;
    r->first_dts = AV_NOPTS_VALUE;
    int rc = check_options(r, &r->opt);
    return rc;
}

int fp__reader_open_failed(fp_reader *r, int rc)
{
    /* Keep the reader as a holder of the message; release FFmpeg state now. */
    r->failed_open = 1;
    reader_finalize(r);
    return rc;
}

static void reader_finalize(void *obj)
{
    fp_reader *r = obj;
    if (r->live)
        fp__live_stop(r);
    fp__ahead_stop(r);
    sws_freeContext(r->sws);
    r->sws = NULL;
    av_packet_free(&r->pkt);
    fp__input_cache_free(r);
    av_frame_free(&r->frame);
    /* Frees the decoder's own references to pool buffers; buffers callers
     * hold keep their pools alive. */
    avcodec_free_context(&r->dec);
    if (r->ic)
        avformat_close_input(&r->ic);
    if (r->avio) {
        av_freep(&r->avio->buffer);
        avio_context_free(&r->avio);
    }
    fp_unref(&r->bridge);
    fp_unref(&r->out_pool);
    fp_unref(&r->opt.budget); /* after the decoder: its pools were made on it */
}

void fp_reader_close(fp_reader **pr)
{
    if (pr)
        fp_unref(pr);
}

const char *fp_reader_errmsg(const fp_reader *r)
{
    return r ? r->errmsg : "no reader";
}

/* ---- the decode loop ----------------------------------------------------------------------- */

static unsigned frames_held(fp_reader *r)
{
    unsigned held = 0;
    fp__bridge_counts(r->bridge, &held, NULL);
    if (r->out_pool) {
        fp_pool_stats s;
        fp_pool_get_stats(r->out_pool, &s);
        held += (unsigned)s.outstanding - (r->job_busy ? 1u : 0u);
    }
    return held;
}

static int over_budget(const fp_reader *r)
{
    return r->decode_errors > FP_READER_ERROR_BUDGET_MIN &&
           r->decode_errors * 3 > r->packets * 2;
}

int fp__reader_decode_error(fp_reader *r, int e, const char *during)
{
    r->decode_errors++;
    int lost = 0; /* the error is a buffer the pool could not give (reported as ENOMEM) */
    if (atomic_exchange(&r->bridge->exhausted, 0)) {
        if (r->abort_flag) {
            lost = 1;
            /* a live connection: the decoder pool could not grow (a shared budget is
             * full, or a damaged stream): a lost frame, within the error budget */
            r->budget_drops++;
        } else {
            r->done = 1;
            return fp__reader_fail(r, FP_ELIMIT,
                                   "the decoder needed more than the %u buffers its pool "
                                   "allows (decoder need %u + max_held %u); raise max_held",
                                   r->bridge->pool_max, r->decoder_need, r->max_held);
        }
    }
    if (e == AVERROR(ENOMEM) && !lost) {
        r->done = 1;
        return fp__reader_fail(r, FP_ENOMEM, "out of memory while decoding");
    }
    if (over_budget(r)) {
        char buf[AV_ERROR_MAX_STRING_SIZE];
        av_strerror(e, buf, sizeof buf);
        r->done = 1;
        return fp__reader_fail(
            r, FP_EDECODE,
            "too many decode errors: %llu of %llu packets rejected (last while %s: %s)",
            (unsigned long long)r->decode_errors, (unsigned long long)r->packets, during, buf);
    }
    return FP_OK;
}

static int64_t frame_pts(const AVFrame *f)
{
    return f->best_effort_timestamp != AV_NOPTS_VALUE ? f->best_effort_timestamp : f->pts;
}

/* Turns the decoded frame `f` into an image. Natively or converting on the
 * caller's thread, stores it (+1) in *out. Converting ahead, hands `f` to the
 * worker and stores in *out the image of the job before it (+1), or NULL
 * when there was none. */
static int deliver(fp_reader *r, AVFrame *f, int64_t pts, int64_t index, fp_image **out,
                   const char *file, int line, const char *func)
{
    fp_image *img = NULL, *prev = NULL;
    int native = fp__native_output(&r->opt);
    int ahead = !native && r->ahead && fp__ahead_start(r);
    int rc;
    if (native) {
        img = fp__bridge_take(r->bridge, f);
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
            rc = fp__bridge_wrap(r->bridge, f, fp__pixfmt_from_av(f->format), &img, file, line,
                                 func);
            if (rc)
                return fp__reader_fail(r, rc, "cannot wrap the decoded frame");
            r->wrapped++;
        }
    } else {
        /* The worker must be done with the scaler before it is set up again
         * (a size change replaces it). */
        prev = ahead ? fp__ahead_collect(r) : NULL;
        rc = fp__convert_prepare(r, f, &img, file, line, func);
        if (rc) {
            if (prev)
                fp__ahead_putback(r, prev); /* still delivered, before this error */
            return rc;
        }
    }
    img->index = index;
    img->wall_time = fp__input_wall_time(r, pts);
    img->pts = pts == AV_NOPTS_VALUE ? INT64_MIN : pts;
    img->time = pts == AV_NOPTS_VALUE ? NAN : (double)(pts - r->start_pts) * av_q2d(r->st->time_base);
    img->flags = (img->flags & FP_IMAGE_READONLY) | (f->key_frame ? FP_IMAGE_KEY : 0) |
                 ((f->flags & AV_FRAME_FLAG_CORRUPT) || f->decode_error_flags ? FP_IMAGE_CORRUPT
                                                                              : 0);
    if (ahead) {
        fp__ahead_post(r, f, img);
        *out = prev;
        return FP_OK;
    }
    if (!native)
        fp__convert_scale(r->sws, f, img);
    *out = img;
    return FP_OK;
}

/* Decides what to do with a decoded frame: 1 deliver, 0 skip, -1 end. */
static int frame_wanted(fp_reader *r, int64_t pts, int64_t *index)
{
    if (r->index_from_time && pts != AV_NOPTS_VALUE && r->fps > 0) {
        double t = (double)(pts - r->start_pts) * av_q2d(r->st->time_base);
        r->next_index = llround(t * r->fps);
        r->index_from_time = 0;
    }
    *index = r->next_index++;
    if (pts != AV_NOPTS_VALUE && pts >= r->end_pts)
        return -1;
    if (r->skip_until != INT64_MIN) {
        if (pts != AV_NOPTS_VALUE && pts < r->skip_until)
            return 0;
        r->skip_until = INT64_MIN;
    }
    if (r->opt.every > 1 && *index % r->opt.every)
        return 0;
    return 1;
}

/* The end of the stream: 0, or the error that stopped options.loop. */
static int loop_end(fp_reader *r)
{
    int rc = r->loop_rc;
    if (!rc)
        return 0;
    r->loop_rc = 0;
    snprintf(r->errmsg, sizeof r->errmsg, "%s", r->loop_msg);
    fp_errmsg_set("%s", r->errmsg);
    return rc;
}

/* Decodes up to the next frame to deliver and passes it to deliver().
 * Returns 1 (see deliver() for *img), 0 at the end, or a negative error. */
static int decode_one(fp_reader *r, fp_image **img, const char *file, int line,
                      const char *func)
{
    AVFrame *f = r->frame;
    for (;;) {
        int e = avcodec_receive_frame(r->dec, f);
        if (e == 0) {
            r->decoded++;
            if (f->width != r->cur_w || f->height != r->cur_h || f->format != r->cur_fmt) {
                int rc = fp__convert_geometry(r, f);
                if (rc) {
                    av_frame_unref(f);
                    /* Not committed: a seek revives the reader, and its next
                     * frame must set up the output again, not find no pool. */
                    r->cur_fmt = AV_PIX_FMT_NONE;
                    r->done = 1;
                    return rc;
                }
            }
            int corrupt = (f->flags & AV_FRAME_FLAG_CORRUPT) || f->decode_error_flags;
            int64_t pts = frame_pts(f), index;
            int want = frame_wanted(r, pts, &index);
            if (want <= 0) {
                av_frame_unref(f);
                if (want < 0) {
                    r->done = 1;
                    return 0;
                }
                r->skipped++;
                r->corrupt += corrupt;
                continue;
            }
            int rc = deliver(r, f, pts, index, img, file, line, func);
            av_frame_unref(f);
            if (rc == FP_ELIMIT && r->abort_flag) {
                /* a live connection whose output pool cannot grow (a shared budget
                 * is full): this frame is lost, the stream goes on */
                r->skipped++;
                r->budget_drops++;
                continue;
            }
            if (rc) {
                r->done = 1;
                return rc;
            }
            r->corrupt += corrupt;
            return 1;
        }
        if (e == AVERROR_EOF) {
            r->done = 1;
            return loop_end(r);
        }
        if (e != AVERROR(EAGAIN)) {
            int rc = fp__reader_decode_error(r, e, "decoding");
            if (rc)
                return rc;
            continue;
        }
        if (r->drain_sent) { /* nothing more will come */
            r->done = 1;
            return loop_end(r);
        }
        if (!r->pkt_pending) {
            if (!r->demux_eof) {
                int rc = fp__input_read_packet(r);
                if (rc < 0) {
                    if (rc != FP_ECANCELED && rc != FP_ETIMEDOUT)
                        r->done = 1;
                    return rc;
                }
                if (rc == 0 && r->loop_left != 0) {
                    /* options.loop: the same decoder goes on with the next pass */
                    rc = fp__input_rewind(r);
                    if (rc == FP_ECANCELED || rc == FP_ETIMEDOUT)
                        return rc; /* the next call rewinds again */
                    if (rc == 0)
                        continue;
                    /* the frames still in the decoder first, then the error */
                    r->loop_rc = rc;
                    snprintf(r->loop_msg, sizeof r->loop_msg, "%s", r->errmsg);
                    r->errmsg[0] = 0;
                    r->loop_left = 0;
                    rc = 0;
                }
                if (rc == 0)
                    r->demux_eof = 1;
                else
                    r->pkt_pending = 1;
            }
            if (r->demux_eof) {
                e = avcodec_send_packet(r->dec, NULL);
                r->drain_sent = 1;
                if (e < 0 && e != AVERROR_EOF) {
                    int rc = fp__reader_decode_error(r, e, "draining");
                    if (rc)
                        return rc;
                }
                continue;
            }
            r->packets++;
        }
        e = avcodec_send_packet(r->dec, r->pkt);
        if (e == AVERROR(EAGAIN))
            continue; /* keep the packet; receive first, then resend it */
        r->pkt_pending = 0;
        av_packet_unref(r->pkt);
        if (e < 0 && e != AVERROR_EOF) {
            int rc = fp__reader_decode_error(r, e, "sending a packet");
            if (rc)
                return rc;
        }
    }
}

int fp_reader_next_at(fp_reader *r, fp_image **img, const char *file, int line,
                      const char *func)
{
    if (img) /* rebinding: recorded at the caller's line (FP_DIAG=refs) */
        fp_unref_at(img, file, line, func);
    if (!r || !img)
        return FP_EINVAL;
    if (r->failed_open)
        return FP_EINVAL;
    if (r->live)
        return fp__live_next(r, img);
    if (!r->job_busy) {
        if (r->pending_rc) { /* met while decoding ahead of the last frame delivered */
            int rc = r->pending_rc;
            r->pending_rc = 0;
            memcpy(r->errmsg, r->pending_msg, sizeof r->errmsg);
            return rc;
        }
        if (r->done)
            return 0;
    }
    r->errmsg[0] = 0;
    snprintf(r->what, sizeof r->what, "read");
    if (atomic_exchange(&r->interrupted, 0))
        return fp__reader_fail(r, FP_ECANCELED, "interrupted (fp_reader_interrupt)");
    unsigned held = frames_held(r);
    if (held >= r->max_held)
        return fp__reader_fail(
            r, FP_ELIMIT,
            "the caller holds %u frames, the max_held bound of %u; release frames "
            "(fp_unref) before asking for more, or raise fp_reader_options.max_held",
            held, r->max_held);
    if (r->site_file != file || r->site_line != line) {
        r->site_file = file;
        r->site_line = line;
        r->site_func = func;
        fp__bridge_set_site(r->bridge, file, line, func);
    }
    for (;;) {
        int rc = r->done ? 0 : decode_one(r, img, file, line, func);
        if (rc > 0 && !*img)
            continue; /* the first frame went to the worker: decode the next meanwhile */
        if (rc <= 0 && r->job_busy) {
            /* The frame in flight comes first; the end or the error is the
             * next call's answer. */
            if (rc < 0) {
                r->pending_rc = rc;
                memcpy(r->pending_msg, r->errmsg, sizeof r->pending_msg);
                r->errmsg[0] = 0;
            }
            *img = fp__ahead_collect(r);
            rc = 1;
        }
        if (rc > 0) {
            r->delivered++;
            if (!r->abort_flag) /* a live connection: the live reader ticks per delivery */
                fp_frame_tick();
        }
        return rc;
    }
}

/* ---- seek, info, stats --------------------------------------------------------------------- */

int fp_reader_seek(fp_reader *r, double seconds, int flags)
{
    if (r && r->live && !r->failed_open) {
        snprintf(r->what, sizeof r->what, "seek to %.3f s", seconds);
        return fp__reader_fail(r, FP_EINVAL, "a live source cannot seek");
    }
    if (!r || r->failed_open || !r->dec)
        return FP_EINVAL;
    snprintf(r->what, sizeof r->what, "seek to %.3f s", seconds);
    if (!(seconds >= 0))
        return fp__reader_fail(r, FP_EINVAL, "negative or invalid time");
    if (r->avio && !r->avio->seekable)
        return fp__reader_fail(r, FP_EIO, "the input cannot seek (no seek callback)");
    AVRational tb = r->st->time_base;
    int64_t ts = r->start_pts + av_rescale_q((int64_t)llround(seconds * AV_TIME_BASE),
                                             AV_TIME_BASE_Q, tb);
    int rc = fp__input_seek(r, ts, "cannot seek");
    if (rc)
        return rc;
    fp__ahead_discard(r);
    fp__input_loop_reset(r);
    avcodec_flush_buffers(r->dec);
    av_packet_unref(r->pkt);
    r->pkt_pending = 0;
    r->demux_eof = r->drain_sent = r->done = 0;
    r->skip_until = (flags & FP_SEEK_PRECISE) ? ts : INT64_MIN;
    /* a seek before `start` still honours it */
    if (r->opt.start > 0) {
        int64_t s = r->start_pts + av_rescale_q((int64_t)llround(r->opt.start * AV_TIME_BASE),
                                                AV_TIME_BASE_Q, tb);
        if (r->skip_until == INT64_MIN || r->skip_until < s)
            r->skip_until = s;
    }
    r->index_from_time = 1;
    r->errmsg[0] = 0;
    return FP_OK;
}

int fp_reader_info_get(const fp_reader *r, fp_reader_info *out)
{
    if (!out)
        return FP_EINVAL;
    memset(out, 0, sizeof *out);
    if (r && r->live && !r->failed_open)
        return fp__live_info(r, out);
    if (!r || r->failed_open || !r->dec)
        return FP_EINVAL;
    const AVCodecContext *d = r->dec;
    int fmt = r->cur_fmt != AV_PIX_FMT_NONE ? r->cur_fmt : d->pix_fmt;
    out->width = r->cur_fmt != AV_PIX_FMT_NONE ? r->cur_w : d->width;
    out->height = r->cur_fmt != AV_PIX_FMT_NONE ? r->cur_h : d->height;
    out->av_format = fmt;
    out->native_format = fmt == AV_PIX_FMT_NONE ? FP_PIX_NONE : fp__pixfmt_from_av(fmt);
    out->av_format_name = av_get_pix_fmt_name(fmt);
    if (!out->av_format_name)
        out->av_format_name = "none";
    int native = fp__native_output(&r->opt);
    if (native || !r->out_w) {
        /* no frame converted yet: what the first one will get */
        out->out_width = out->width;
        out->out_height = out->height;
        out->out_format = native ? out->native_format : r->opt.format;
        int ow, oh;
        if (!native && out->width > 0 && out->height > 0 &&
            fp__convert_out_size(&r->opt, out->width, out->height, &ow, &oh) == 0) {
            out->out_width = ow;
            out->out_height = oh;
        }
    } else {
        out->out_width = r->out_w;
        out->out_height = r->out_h;
        out->out_format = r->out_fmt;
    }
    out->fps = r->fps;
    AVRational fr = r->st->avg_frame_rate.num ? r->st->avg_frame_rate : r->st->r_frame_rate;
    out->fps_num = fr.num > 0 && fr.den > 0 ? fr.num : 0;
    out->fps_den = fr.num > 0 && fr.den > 0 ? fr.den : 1;
    AVRational tb = r->st->time_base;
    if (r->st->duration != AV_NOPTS_VALUE)
        out->duration = (double)r->st->duration * av_q2d(tb);
    else if (r->ic->duration != AV_NOPTS_VALUE)
        out->duration = (double)r->ic->duration / AV_TIME_BASE;
    if (r->st->nb_frames > 0)
        out->frame_count = r->st->nb_frames;
    else if (out->duration > 0 && r->fps > 0)
        out->frame_count = llround(out->duration * r->fps);
    else
        out->frame_count = -1;
    AVRational sar = av_guess_sample_aspect_ratio(r->ic, r->st, NULL);
    out->sar_num = sar.num > 0 ? sar.num : 0;
    out->sar_den = sar.num > 0 ? sar.den : 1;
    out->time_base_num = tb.num;
    out->time_base_den = tb.den;
    out->stream_index = r->vs;
    out->codec = d->codec ? d->codec->name : avcodec_get_name(d->codec_id);
    out->container = r->ic->iformat ? r->ic->iformat->name : "";
    out->threads = r->threads;
    out->zero_copy = r->zero_copy;
    out->decoder_buffers = r->decoder_need;
    out->max_held = r->max_held;
    out->pool_max_buffers = r->bridge->pool_max;
    out->out_pool_max_buffers = native ? 0 : r->max_held + (r->ahead ? 1u : 0u);
    out->convert_ahead = r->ahead && !r->ahead_failed;
    return FP_OK;
}

int fp_reader_stats_get(fp_reader *r, fp_reader_stats *out)
{
    if (!out)
        return FP_EINVAL;
    memset(out, 0, sizeof *out);
    if (r && r->live && !r->failed_open)
        return fp__live_stats(r, out);
    if (!r || r->failed_open || !r->dec)
        return FP_EINVAL;
    out->packets = r->packets;
    out->decoded = r->decoded;
    out->delivered = r->delivered;
    out->skipped = r->skipped;
    out->corrupt = r->corrupt;
    out->decode_errors = r->decode_errors;
    out->size_changes = r->size_changes;
    out->wrapped = r->wrapped;
    out->loops = r->loops;
    out->loops_replayed = r->loops_replayed;
    out->budget_drops = r->budget_drops;
    unsigned held = 0, dec_only = 0;
    fp__bridge_counts(r->bridge, &held, &dec_only);
    out->decoder_held = dec_only;
    pthread_mutex_lock(&r->bridge->mu);
    fp_pool_get_stats(r->bridge->pool, &out->pool);
    pthread_mutex_unlock(&r->bridge->mu);
    if (r->out_pool) {
        fp_pool_get_stats(r->out_pool, &out->out_pool);
        held += (unsigned)out->out_pool.outstanding - (r->job_busy ? 1u : 0u);
    }
    out->held = held;
    return FP_OK;
}
