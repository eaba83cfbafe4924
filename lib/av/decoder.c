/*
 * Opening the reader's decoder: the video stream, decoder and thread
 * settings, framepool buffers through get_buffer2 (the bridge, bridge.c), and
 * the size of the decoder pool from what the decoder may hold.
 */
#define _POSIX_C_SOURCE 200809L
#include "readerpriv.h"

#include <libavutil/cpu.h>
#include <stdio.h>

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

static int count_streams(AVFormatContext *ic, enum AVMediaType t)
{
    int n = 0;
    for (unsigned i = 0; i < ic->nb_streams; i++)
        n += ic->streams[i]->codecpar->codec_type == t;
    return n;
}

int fp__decoder_open(fp_reader *r)
{
    AVFormatContext *ic = r->ic;
    const AVCodec *codec = NULL;
    int vs;
    if (r->opt.stream_set) {
        vs = r->opt.stream;
        if ((unsigned)vs >= ic->nb_streams)
            return fp__reader_fail(r, FP_ENOSTREAM, "no stream %d (the input has %u streams)", vs,
                                   ic->nb_streams);
        if (ic->streams[vs]->codecpar->codec_type != AVMEDIA_TYPE_VIDEO)
            return fp__reader_fail(r, FP_ENOSTREAM, "stream %d is %s, not video", vs,
                                   av_get_media_type_string(ic->streams[vs]->codecpar->codec_type));
        codec = avcodec_find_decoder(ic->streams[vs]->codecpar->codec_id);
    } else {
        vs = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
        if (vs < 0)
            return fp__reader_fail(
                r, FP_ENOSTREAM,
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
        return fp__reader_fail(r, FP_EFORMAT, "unsupported codec '%s' (tag %s) in video stream %d",
                               par->codec_id != AV_CODEC_ID_NONE ? avcodec_get_name(par->codec_id)
                                                                 : "unknown",
                               tag, vs);
    }
    if (par->width > FP_MAX_DIMENSION || par->height > FP_MAX_DIMENSION || par->width < 0 ||
        par->height < 0)
        return fp__reader_fail(r, FP_EFORMAT,
                               "absurd dimensions %dx%d (framepool's limit is %d per side)",
                               par->width, par->height, FP_MAX_DIMENSION);
    for (unsigned i = 0; i < ic->nb_streams; i++)
        if ((int)i != vs)
            ic->streams[i]->discard = AVDISCARD_ALL; /* other streams cost nothing */
    r->vs = vs;
    r->st = st;

    AVCodecContext *dec = avcodec_alloc_context3(codec);
    if (!dec)
        return fp__reader_fail(r, FP_ENOMEM, "out of memory (decoder)");
    r->dec = dec;
    int e = avcodec_parameters_to_context(dec, par);
    if (e < 0)
        return fp__input_error(r, e, "decoder parameters");
    dec->pkt_timebase = st->time_base;
    /* threads 0: one per CPU as cv::VideoCapture does, not FFmpeg's CPUs + 1:
     * each frame thread keeps pictures and per-picture tables of its own
     * (720p on 2 cores: peak RssAnon 42 -> 38 MiB; docs/bench-history.md). */
    dec->thread_count = r->opt.threads ? r->opt.threads : FFMAX(1, FFMIN(av_cpu_count(), 16));
    dec->max_pixels = (int64_t)FP_MAX_DIMENSION * FP_MAX_DIMENSION;
    r->max_held = r->opt.max_held ? r->opt.max_held : FP_READER_DEFAULT_MAX_HELD;
    r->zero_copy = (codec->capabilities & AV_CODEC_CAP_DR1) != 0;
    char name[64];
    snprintf(name, sizeof name, "reader %s", codec->name);
    /* The pool cap is set once the decoder tells its thread count; the
     * bridge is created now because avcodec_open2 may already allocate. */
    r->bridge = fp__bridge_new(64, name);
    if (r->bridge)
        r->bridge->budget = r->opt.budget;
    if (!r->bridge)
        return fp__reader_fail(r, FP_ENOMEM, "out of memory (bridge)");
    fp__bridge_set_site(r->bridge, r->site_file, r->site_line, r->site_func);
    if (r->zero_copy) {
        dec->opaque = r->bridge;
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
        return fp__input_error(r, e, "opening the decoder");
    r->threads = dec->thread_count;
    r->decoder_need = decoder_need(dec);
    int native = fp__native_output(&r->opt);
    r->ahead = !native && r->opt.convert_ahead;
    /* Converting, the reader holds the frame it converts, and converting
     * ahead also the next one it decoded meanwhile. */
    pthread_mutex_lock(&r->bridge->mu);
    r->bridge->pool_max = r->decoder_need + (native ? r->max_held + 1 : r->ahead ? 2 : 1);
    pthread_mutex_unlock(&r->bridge->mu);

    r->start_pts = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
    r->fps = 0;
    AVRational fr = st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate;
    if (fr.num > 0 && fr.den > 0)
        r->fps = av_q2d(fr);
    r->skip_until = INT64_MIN;
    r->end_pts = INT64_MAX;
    if (r->opt.end > 0)
        r->end_pts = r->start_pts + av_rescale_q((int64_t)(r->opt.end * AV_TIME_BASE),
                                                 AV_TIME_BASE_Q, st->time_base);
    r->cur_fmt = AV_PIX_FMT_NONE;
    r->out_fmt = r->opt.format;
    r->pkt = av_packet_alloc();
    r->frame = av_frame_alloc();
    if (!r->pkt || !r->frame)
        return fp__reader_fail(r, FP_ENOMEM, "out of memory (packet/frame)");
    return FP_OK;
}
