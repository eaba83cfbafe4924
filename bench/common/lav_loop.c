/* The plain libav decode loop (lav_loop.h). */
#include "lav_loop.h"

#include <libavutil/opt.h>
#include <stdio.h>
#include <string.h>

void lav_close(lav *l)
{
    sws_freeContext(l->sws);
    sws_freeContext(l->save_sws);
    l->sws = l->save_sws = NULL;
    av_frame_free(&l->frm);
    av_packet_free(&l->pkt);
    avcodec_free_context(&l->dec);
    avformat_close_input(&l->ic);
}

int lav_open(lav *l, const char *path, int threads, int loop)
{
    memset(l, 0, sizeof *l);
    l->loop = loop;
    const AVCodec *codec = NULL;
    if (avformat_open_input(&l->ic, path, NULL, NULL) < 0 ||
        avformat_find_stream_info(l->ic, NULL) < 0) {
        snprintf(l->err, sizeof l->err, "libav cannot open %s", path);
        return -1;
    }
    l->vs = av_find_best_stream(l->ic, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (l->vs < 0 || !codec) {
        snprintf(l->err, sizeof l->err, "no video stream in %s", path);
        return -1;
    }
    l->dec = avcodec_alloc_context3(codec);
    if (!l->dec ||
        avcodec_parameters_to_context(l->dec, l->ic->streams[l->vs]->codecpar) < 0) {
        snprintf(l->err, sizeof l->err, "out of memory (decoder)");
        return -1;
    }
    l->dec->thread_count = threads;
    if (avcodec_open2(l->dec, codec, NULL) < 0) {
        snprintf(l->err, sizeof l->err, "cannot open the %s decoder", codec->name);
        return -1;
    }
    l->pkt = av_packet_alloc();
    l->frm = av_frame_alloc();
    if (!l->pkt || !l->frm) {
        snprintf(l->err, sizeof l->err, "out of memory (packet, frame)");
        return -1;
    }
    l->width = l->dec->width;
    l->height = l->dec->height;
    l->threads = l->dec->thread_count;
    AVStream *st = l->ic->streams[l->vs];
    l->clip_frames = (long)st->nb_frames;
    if (l->clip_frames <= 0 && l->ic->duration > 0 && st->avg_frame_rate.den > 0)
        l->clip_frames =
            (long)((double)l->ic->duration / AV_TIME_BASE * av_q2d(st->avg_frame_rate));
    snprintf(l->codec, sizeof l->codec, "%s", codec->name);
    return 0;
}

int lav_next(lav *l)
{
    for (;;) {
        int e = avcodec_receive_frame(l->dec, l->frm);
        if (e == 0) {
            l->rewinds_in_row = 0;
            return 1;
        }
        if (e == AVERROR_EOF) {
            if (!l->loop)
                return 0;
            if (++l->rewinds_in_row > 2)
                return -1;
            AVStream *st = l->ic->streams[l->vs];
            int64_t ts = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
            if (av_seek_frame(l->ic, l->vs, ts, AVSEEK_FLAG_BACKWARD) < 0)
                return -1;
            avcodec_flush_buffers(l->dec);
            continue;
        }
        if (e != AVERROR(EAGAIN))
            return e;
        e = av_read_frame(l->ic, l->pkt);
        if (e == AVERROR_EOF) {
            avcodec_send_packet(l->dec, NULL); /* drain, then end or rewind */
            continue;
        }
        if (e < 0)
            return e;
        if (l->pkt->stream_index == l->vs)
            avcodec_send_packet(l->dec, l->pkt); /* corrupt packets are skipped */
        av_packet_unref(l->pkt);
    }
}

AVFrame *lav_to_bgr(lav *l)
{
    AVFrame *f = l->frm;
    AVFrame *bgr = av_frame_alloc();
    if (!bgr)
        return NULL;
    bgr->format = AV_PIX_FMT_BGR24;
    bgr->width = f->width;
    bgr->height = f->height;
    if (av_frame_get_buffer(bgr, 0) < 0) {
        av_frame_free(&bgr);
        return NULL;
    }
    l->sws = sws_getCachedContext(l->sws, f->width, f->height, f->format, f->width, f->height,
                                  AV_PIX_FMT_BGR24, SWS_BILINEAR, NULL, NULL, NULL);
    if (!l->sws) {
        av_frame_free(&bgr);
        return NULL;
    }
    sws_scale(l->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, bgr->data,
              bgr->linesize);
    bgr->pts = f->pts;
    av_frame_unref(f);
    return bgr;
}

int lav_save_png(lav *l, const char *path, const AVFrame *bgr)
{
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
    AVCodecContext *enc = codec ? avcodec_alloc_context3(codec) : NULL;
    AVFrame *rgb = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    int rc = -1;
    if (!enc || !rgb || !pkt)
        goto out;
    rgb->format = AV_PIX_FMT_RGB24;
    rgb->width = bgr->width;
    rgb->height = bgr->height;
    l->save_sws = sws_getCachedContext(l->save_sws, bgr->width, bgr->height, AV_PIX_FMT_BGR24,
                                       bgr->width, bgr->height, AV_PIX_FMT_RGB24, SWS_BILINEAR,
                                       NULL, NULL, NULL);
    if (!l->save_sws || av_frame_get_buffer(rgb, 0) < 0)
        goto out;
    sws_scale(l->save_sws, (const uint8_t *const *)bgr->data, bgr->linesize, 0, bgr->height,
              rgb->data, rgb->linesize);
    enc->width = bgr->width;
    enc->height = bgr->height;
    enc->pix_fmt = AV_PIX_FMT_RGB24;
    enc->time_base = (AVRational){1, 25};
    enc->compression_level = 1;
    if (av_opt_set(enc->priv_data, "pred", "sub", 0) < 0 || avcodec_open2(enc, codec, NULL) < 0 ||
        avcodec_send_frame(enc, rgb) < 0 || avcodec_receive_packet(enc, pkt) < 0)
        goto out;
    FILE *f = fopen(path, "wb");
    if (f) {
        rc = fwrite(pkt->data, 1, (size_t)pkt->size, f) == (size_t)pkt->size ? 0 : -1;
        if (fclose(f) != 0)
            rc = -1;
    }
out:
    av_packet_free(&pkt);
    av_frame_free(&rgb);
    avcodec_free_context(&enc);
    return rc;
}
