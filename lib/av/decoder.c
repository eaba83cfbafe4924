/*
 * Opening the reader's decoder: the video stream, decoder and thread
 * settings, framepool buffers through get_buffer2 (the bridge, bridge.c), and
 * the size of the decoder pool from what the decoder may hold.
 */
#define _POSIX_C_SOURCE 200809L
#include "decoder.h"
#include "options.h"

#include <libavutil/cpu.h>
#include <stdio.h>
#include <string.h>

/* Buffers the decoder may hold at once: its reference frames plus the
 * reordering delay, plus one frame per frame thread. */
static unsigned decoder_need(const AVCodecContext *dec)
{
    unsigned base;
    switch (dec->codec_id) {
    case AV_CODEC_ID_H264:
        base = 36; /* FFmpeg's picture array (H264_MAX_PICTURE_COUNT): a valid stream
                      holds at most a 16-picture DPB plus the current one, a damaged
                      one can make the decoder keep up to this many */
        break;
    case AV_CODEC_ID_HEVC:
        base = 32; /* FFmpeg's DPB array, likewise (valid streams: 16 + 1) */
        break;
    case AV_CODEC_ID_VVC:
        base = 17; /* a 16-picture DPB plus the current one */
        break;
    case AV_CODEC_ID_VP9:
    case AV_CODEC_ID_AV1:
        base = 10; /* 8 reference slots, current, one shown-existing */
        break;
    case AV_CODEC_ID_VP8:
        base = 5;
        break;
    case AV_CODEC_ID_MJPEG:
    case AV_CODEC_ID_PNG:
    case AV_CODEC_ID_RAWVIDEO:
        base = 2;
        break;
    default:
        base = 4; /* MPEG-1/2/4 and alike: two references, current, one B */
        break;
    }
    unsigned threads = (dec->active_thread_type & FF_THREAD_FRAME) && dec->thread_count > 1
                           ? (unsigned)dec->thread_count
                           : 0;
    return base + threads + 1 + (unsigned)(dec->has_b_frames > 0 ? dec->has_b_frames : 0);
}

/* A live connection decodes without delay: slice threads (a picture comes
 * out when its own packet is decoded; frame threads hold each one back an
 * interval per extra thread), and FFmpeg's low_delay where the decoder
 * honours it (H.264, MPEG-1/2/4; HEVC and the others ignore it) and the
 * stream cannot reorder: the probe saw no reordering delay, or an H.264
 * Baseline profile (no B-frames). With B-frames it would output pictures in
 * decoding order. It matters for H.264 most: without it, a stream whose SPS
 * does not say "no reordering" (no VUI bitstream restriction, common in
 * cameras) is decoded with a one-frame reordering delay. */
static void live_low_delay(AVCodecContext *dec, const AVCodecParameters *par)
{
    dec->thread_type = FF_THREAD_SLICE;
    int no_reorder = par->video_delay == 0;
    switch (par->codec_id) {
    case AV_CODEC_ID_H264:
        no_reorder |= par->profile == FF_PROFILE_H264_BASELINE ||
                      par->profile == FF_PROFILE_H264_CONSTRAINED_BASELINE;
        /* fall through */
    case AV_CODEC_ID_MPEG1VIDEO:
    case AV_CODEC_ID_MPEG2VIDEO:
    case AV_CODEC_ID_MPEG4:
        if (no_reorder)
            dec->flags |= AV_CODEC_FLAG_LOW_DELAY;
        break;
    default:
        break;
    }
}

static int count_streams(AVFormatContext *ic, enum AVMediaType t)
{
    int n = 0;
    for (unsigned i = 0; i < ic->nb_streams; i++)
        n += ic->streams[i]->codecpar->codec_type == t;
    return n;
}

/* An FFmpeg error of the decoder's setup. */
static int av_error(int e, const char *during, fp__err *err)
{
    char buf[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(e, buf, sizeof buf);
    return fp__err_set(err, fp__averror_map(e), "%s: %s", during, buf);
}

int fp__decoder_open(fp__decoder *d, AVFormatContext *ic, const fp_reader_options *o,
                     int lose_frames, const char *file, int line, const char *func,
                     fp__err *err)
{
    d->vs = -1;
    d->lose_frames = lose_frames;
    const AVCodec *codec = NULL;
    int vs;
    if (o->stream_set) {
        vs = o->stream;
        if ((unsigned)vs >= ic->nb_streams)
            return fp__err_set(err, FP_ENOSTREAM, "no stream %d (the input has %u streams)", vs,
                                   ic->nb_streams);
        if (ic->streams[vs]->codecpar->codec_type != AVMEDIA_TYPE_VIDEO)
            return fp__err_set(err, FP_ENOSTREAM, "stream %d is %s, not video", vs,
                                   av_get_media_type_string(ic->streams[vs]->codecpar->codec_type));
        codec = avcodec_find_decoder(ic->streams[vs]->codecpar->codec_id);
    } else {
        vs = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
        if (vs < 0)
            return fp__err_set(
                err, FP_ENOSTREAM,
                "no video stream (the input has %d audio, %d subtitle, %u streams in all)",
                count_streams(ic, AVMEDIA_TYPE_AUDIO), count_streams(ic, AVMEDIA_TYPE_SUBTITLE),
                ic->nb_streams);
        codec = avcodec_find_decoder(ic->streams[vs]->codecpar->codec_id);
    }
    AVStream *st = ic->streams[vs];
    AVCodecParameters *par = st->codecpar;
    if (!codec) {
        char tag[AV_FOURCC_MAX_STRING_SIZE];
        av_fourcc_make_string(tag, par->codec_tag);
        return fp__err_set(err, FP_EFORMAT, "unsupported codec '%s' (tag %s) in video stream %d",
                               par->codec_id != AV_CODEC_ID_NONE ? avcodec_get_name(par->codec_id)
                                                                 : "unknown",
                               tag, vs);
    }
    if (par->width > FP_MAX_DIMENSION || par->height > FP_MAX_DIMENSION || par->width < 0 ||
        par->height < 0)
        return fp__err_set(err, FP_EFORMAT,
                               "absurd dimensions %dx%d (framepool's limit is %d per side)",
                               par->width, par->height, FP_MAX_DIMENSION);
    for (unsigned i = 0; i < ic->nb_streams; i++)
        if ((int)i != vs)
            ic->streams[i]->discard = AVDISCARD_ALL; /* other streams cost nothing */
    d->vs = vs;
    d->st = st;

    AVCodecContext *dec = avcodec_alloc_context3(codec);
    if (!dec)
        return fp__err_set(err, FP_ENOMEM, "out of memory (decoder)");
    d->dec = dec;
    int e = avcodec_parameters_to_context(dec, par);
    if (e < 0)
        return av_error(e, "decoder parameters", err);
    dec->pkt_timebase = st->time_base;
    /* threads 0: one per CPU as cv::VideoCapture does, not FFmpeg's CPUs + 1:
     * each frame thread keeps pictures and per-picture tables of its own. */
    dec->thread_count = o->threads ? o->threads : FFMAX(1, FFMIN(av_cpu_count(), 16));
    if (lose_frames && !o->frame_threads)
        live_low_delay(dec, par);
    dec->max_pixels = (int64_t)FP_MAX_DIMENSION * FP_MAX_DIMENSION;
    d->max_held = o->max_held ? o->max_held : FP_READER_DEFAULT_MAX_HELD;
    d->zero_copy = (codec->capabilities & AV_CODEC_CAP_DR1) != 0;
    char name[64];
    snprintf(name, sizeof name, "reader %s", codec->name);
    /* The pool cap is set once the decoder tells its thread count; the
     * bridge is created now because avcodec_open2 may already allocate. */
    d->bridge = fp__bridge_new(64, name);
    if (d->bridge)
        d->bridge->budget = o->budget;
    if (!d->bridge)
        return fp__err_set(err, FP_ENOMEM, "out of memory (bridge)");
    fp__bridge_set_site(d->bridge, file, line, func);
    if (d->zero_copy) {
        dec->opaque = d->bridge;
        dec->get_buffer2 = fp__bridge_get_buffer2;
#if FF_API_THREAD_SAFE_CALLBACKS
        /* FFmpeg 5.x still asks: the callback is thread-safe (bridge mutex). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        dec->thread_safe_callbacks = 1;
#pragma GCC diagnostic pop
#endif
    }
    e = avcodec_open2(dec, codec, NULL);
    if (e < 0)
        return av_error(e, "opening the decoder", err);
    d->threads = dec->thread_count;
    d->need = decoder_need(dec);
    int native = fp__native_output(o);
    int ahead = fp__ahead_wanted(o);
    /* Converting, the reader holds the frame it converts, and converting
     * ahead also the next one it decoded meanwhile. */
    pthread_mutex_lock(&d->bridge->mu);
    d->bridge->pool_max = d->need + (native ? d->max_held + 1 : ahead ? 2 : 1);
    pthread_mutex_unlock(&d->bridge->mu);

    d->frame = av_frame_alloc();
    if (!d->frame)
        return fp__err_set(err, FP_ENOMEM, "out of memory (packet/frame)");
    return FP_OK;
}

void fp__decoder_close(fp__decoder *d)
{
    av_frame_free(&d->frame);
    /* Frees the decoder's own references to pool buffers; buffers callers
     * hold keep their pools alive. */
    avcodec_free_context(&d->dec);
    fp_unref(&d->bridge);
}

static int over_budget(const fp__decoder *d)
{
    if (d->lose_frames && !d->decoded)
        return 0; /* a live connection before its first frame (decoder.h) */
    uint64_t errors = d->decode_errors - d->budget_errors0;
    return errors > FP_READER_ERROR_BUDGET_MIN &&
           errors * 3 > (d->packets - d->budget_packets0) * 2;
}

int fp__decoder_error(fp__decoder *d, int e, const char *during, fp__err *err)
{
    int lost = 0; /* the error is a buffer the pool could not give (reported as ENOMEM) */
    int why = atomic_exchange(&d->bridge->exhausted, 0);
    if (why == FP__EXHAUSTED_BUDGET) {
        if (d->lose_frames) {
            /* a live connection and a full shared budget: that frame is lost (FFmpeg
             * drops the picture whose buffer it could not get; budget_drops counts
             * it, see budget_check). Not a decode error: the stream is fine, and
             * frames come again when the budget has room. */
            return FP_OK;
        }
        pthread_mutex_lock(&d->bridge->mu);
        uint64_t max = d->bridge->refused_max, used = d->bridge->refused_used,
                 bytes = d->bridge->refused_bytes;
        pthread_mutex_unlock(&d->bridge->mu);
        return fp__err_budget(err, "the decoder", (unsigned long long)max,
                              (unsigned long long)used, (unsigned long long)bytes);
    }
    d->decode_errors++;
    if (why == FP__EXHAUSTED_CAP) {
        if (d->lose_frames) {
            lost = 1;
            /* a live connection whose damaged stream made the decoder keep more
             * pictures than its pool allows: a lost frame, within the error budget */
            d->budget_drops++;
        } else {
            return fp__err_set(err, FP_ELIMIT,
                               "the decoder needed more than the %u buffers its pool "
                               "allows (decoder need %u + max_held %u); raise max_held",
                               d->bridge->pool_max, d->need, d->max_held);
        }
    }
    if (e == AVERROR(ENOMEM) && !lost)
        return fp__err_set(err, FP_ENOMEM, "out of memory while decoding");
    if (over_budget(d)) {
        char buf[AV_ERROR_MAX_STRING_SIZE];
        av_strerror(e, buf, sizeof buf);
        return fp__err_set(
            err, FP_EDECODE,
            "too many decode errors: %llu of %llu packets rejected (last while %s: %s)",
            (unsigned long long)(d->decode_errors - d->budget_errors0),
            (unsigned long long)(d->packets - d->budget_packets0), during, buf);
    }
    return FP_OK;
}

/* After a call into the decoder: buffers a full budget refused. A decoder
 * may get over a refused buffer without returning an error (H.264 skips a
 * picture it could not start), so they are counted here, not from the
 * errors: on a live connection, a lost frame (budget_drops) per call that
 * had refusals (one packet, or one frame received: H.264 asks again for
 * each slice of a picture it could not start); a file reader ends with the
 * budget's FP_ELIMIT, never silently skips a frame. Returns 0 or that
 * error. */
static int budget_check(fp__decoder *d, fp__err *err)
{
    unsigned n = atomic_exchange(&d->bridge->budget_refusals, 0);
    if (!n)
        return FP_OK;
    if (d->lose_frames) {
        d->budget_drops++;
        return FP_OK;
    }
    atomic_store(&d->bridge->exhausted, FP__EXHAUSTED_BUDGET);
    return fp__decoder_error(d, AVERROR(ENOMEM), "decoding", err);
}

int fp__decoder_receive(fp__decoder *d, fp__err *err)
{
    for (;;) {
        int e = avcodec_receive_frame(d->dec, d->frame);
        int rc = budget_check(d, err);
        if (rc) {
            av_frame_unref(d->frame);
            return rc;
        }
        if (e == 0) {
            if (!d->decoded && d->lose_frames) {
                d->budget_packets0 = d->packets;
                d->budget_errors0 = d->decode_errors;
            }
            d->decoded++;
            return 1;
        }
        if (e == AVERROR_EOF)
            return 2;
        if (e == AVERROR(EAGAIN))
            return 0;
        rc = fp__decoder_error(d, e, "decoding", err);
        if (rc)
            return rc;
    }
}

int fp__decoder_send(fp__decoder *d, const AVPacket *pkt, int fresh, fp__err *err)
{
    if (pkt && fresh)
        d->packets++;
    int e = avcodec_send_packet(d->dec, pkt);
    int rc = budget_check(d, err);
    if (rc)
        return rc;
    if (pkt && e == AVERROR(EAGAIN))
        return 0; /* keep the packet; receive first, then resend it */
    if (e < 0 && e != AVERROR_EOF) {
        rc = fp__decoder_error(d, e, pkt ? "sending a packet" : "draining", err);
        if (rc)
            return rc;
    }
    return 1;
}

void fp__decoder_flush(fp__decoder *d)
{
    avcodec_flush_buffers(d->dec);
}

void fp__decoder_counts(fp__decoder *d, unsigned *user_held, unsigned *decoder_only)
{
    fp__bridge_counts(d->bridge, user_held, decoder_only);
}
