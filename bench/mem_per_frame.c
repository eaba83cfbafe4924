/*
 * mem_per_frame — memory per frame of a video loop: framepool against the
 * loops people write today, on the same clip, with the same decoder threads.
 *
 *   mem_per_frame [options] [CLIP ...]
 *
 * Scenarios, each in its own process (this program re-executes itself with
 * --scenario ID; scenario 2 is the program mem_per_frame_cv next to it, which
 * links OpenCV's videoio), each looping the clip by seeking until it has run
 * --frames:
 *   1   framepool: fp_reader (BGR24) -> fp_image_save (PNG) every Nth -> release
 *   2   OpenCV: cv::VideoCapture::read into one Mat + cv::imwrite every Nth
 *   3   plain libav: decode, a new BGR AVFrame per frame (av_frame_get_buffer
 *       + sws_scale), PNG every Nth with libavcodec's encoder, av_frame_free
 *   4   the same loop forgetting av_frame_free (the classic leak; stops after
 *       leaking about --leak-mb)
 *   5a  pipeline, framepool: decode thread -> queue of 8 -> worker holding a
 *       window of its last --hold frames, releasing the oldest (the worker
 *       starts once the queue is full: a pre-roll)
 *   5b  the same pipeline with plain libav frames (allocated by the decode
 *       thread, freed by the worker)
 * Every scenario measures itself with one fp_memtrack (RssAnon from statm,
 * minor faults from getrusage, framepool live and idle bytes), sampled once
 * per frame, plus a 1 ms RssAnon watcher for the peak (mem_per_frame_harness.c).
 * Prints one table per clip, the goals, and writes --csv, --json and a
 * gnuplot PNG of RssAnon over frames (--plot).
 *
 * This program links framepool and FFmpeg only, not OpenCV: framepool saves
 * with fp_image_save and the plain libav loops with libavcodec's PNG encoder
 * (both at cv::imwrite's default setting, zlib level 1 with the "sub" row
 * filter). So its processes start smaller than mem_per_frame_cv's, which
 * loads OpenCV (imgcodecs alone pulls in 139 libraries on Debian, about
 * 12 MiB of RssAnon before the first frame); the loops themselves differ by
 * one BGR frame (cv::VideoCapture converts into its own buffer and copies
 * into the caller's Mat). The table's notes show each process's RssAnon at
 * start, and the goal line gives the peak ratio both absolute and above each
 * process's start.
 */
#define _GNU_SOURCE
#include "mem_per_frame.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the plain libav decode loop (what a C user writes first) ---------------------------- */

typedef struct lav {
    AVFormatContext *ic;
    AVCodecContext *dec;
    int vs;
    AVPacket *pkt;
    AVFrame *frm;
    struct SwsContext *sws;
    struct SwsContext *save_sws; /* BGR -> RGB for the PNG encoder */
    int rewinds_in_row;
} lav;

static void lav_close(lav *l)
{
    sws_freeContext(l->sws);
    sws_freeContext(l->save_sws);
    av_frame_free(&l->frm);
    av_packet_free(&l->pkt);
    avcodec_free_context(&l->dec);
    avformat_close_input(&l->ic);
}

static int lav_open(lav *l, const char *path, int threads, mpf_run *r)
{
    memset(l, 0, sizeof *l);
    const AVCodec *codec = NULL;
    if (avformat_open_input(&l->ic, path, NULL, NULL) < 0 ||
        avformat_find_stream_info(l->ic, NULL) < 0) {
        snprintf(r->note, sizeof r->note, "libav cannot open %s", path);
        return -1;
    }
    l->vs = av_find_best_stream(l->ic, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (l->vs < 0 || !codec) {
        snprintf(r->note, sizeof r->note, "no video stream in %s", path);
        return -1;
    }
    l->dec = avcodec_alloc_context3(codec);
    if (!l->dec ||
        avcodec_parameters_to_context(l->dec, l->ic->streams[l->vs]->codecpar) < 0)
        return -1;
    l->dec->thread_count = threads;
    if (avcodec_open2(l->dec, codec, NULL) < 0) {
        snprintf(r->note, sizeof r->note, "cannot open the %s decoder", codec->name);
        return -1;
    }
    l->pkt = av_packet_alloc();
    l->frm = av_frame_alloc();
    if (!l->pkt || !l->frm)
        return -1;
    r->width = l->dec->width;
    r->height = l->dec->height;
    r->threads = l->dec->thread_count;
    AVStream *st = l->ic->streams[l->vs];
    r->clip_frames = (long)st->nb_frames;
    if (r->clip_frames <= 0 && l->ic->duration > 0 && st->avg_frame_rate.den > 0)
        r->clip_frames = (long)((double)l->ic->duration / AV_TIME_BASE *
                                av_q2d(st->avg_frame_rate));
    r->frame_bytes = (uint64_t)r->width * (uint64_t)r->height * 3;
    snprintf(r->codec, sizeof r->codec, "%s", codec->name);
    return 0;
}

/* Decodes the next frame into l->frm, rewinding at the end. 1 or < 0. */
static int lav_next(lav *l)
{
    for (;;) {
        int e = avcodec_receive_frame(l->dec, l->frm);
        if (e == 0) {
            l->rewinds_in_row = 0;
            return 1;
        }
        if (e == AVERROR_EOF) {
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
            avcodec_send_packet(l->dec, NULL); /* drain, then rewind */
            continue;
        }
        if (e < 0)
            return e;
        if (l->pkt->stream_index == l->vs)
            avcodec_send_packet(l->dec, l->pkt); /* corrupt packets are skipped */
        av_packet_unref(l->pkt);
    }
}

/* A new BGR24 frame converted from l->frm (the usual per-frame allocation). */
static AVFrame *lav_to_bgr(lav *l)
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

/* Saves a BGR frame as PNG the way a plain libav program does: BGR -> RGB24
 * with swscale (the PNG encoder takes RGB order only), libavcodec's PNG
 * encoder opened for the call at cv::imwrite's default setting (level 1,
 * "sub" filter), fwrite. 0 or -1. */
static int lav_save_png(lav *l, const char *path, const AVFrame *bgr)
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

static const char *save_path(char *buf, size_t n, const mpf_opts *o, const char *id,
                             uint64_t frame)
{
    /* Four names per scenario, overwritten in turn: the disk does not fill. */
    snprintf(buf, n, "%s/%s_%02d.png", o->dir, id,
             (int)((frame / (uint64_t)o->save_every) % 4));
    return buf;
}

/* ---- scenario 1: framepool loop ------------------------------------------------------------ */

static void note_reader(mpf_run *r, fp_reader *rd)
{
    fp_reader_info in;
    fp_reader_stats st;
    fp_reader_info(rd, &in);
    fp_reader_stats(rd, &st);
    snprintf(r->note, sizeof r->note,
             "decoder pool %llu buffers (cap %u, decoder needs %u), BGR pool %llu (cap %u), "
             "misses %llu+%llu",
             (unsigned long long)st.pool.allocated, in.pool_max_buffers, in.decoder_buffers,
             (unsigned long long)st.out_pool.allocated, in.out_pool_max_buffers,
             (unsigned long long)st.pool.misses, (unsigned long long)st.out_pool.misses);
}

static int open_reader(const mpf_opts *o, unsigned max_held, fp_reader **rd, mpf_run *r)
{
    fp_reader_options ro = {0};
    ro.format = FP_PIX_BGR24;
    ro.threads = o->threads;
    ro.max_held = max_held;
    /* --prime: the pipeline's reader allocates its BGR pool to the bound and
     * touches every page before the first frame (fp_reader_options.prefill) */
    ro.prefill = max_held && o->prime;
    int rc = fp_reader_open(o->clip, &ro, rd);
    if (rc < 0) {
        snprintf(r->note, sizeof r->note, "%s", fp_reader_errmsg(*rd));
        return rc;
    }
    fp_reader_info in;
    fp_reader_info(*rd, &in);
    r->width = in.out_width;
    r->height = in.out_height;
    r->threads = in.threads;
    r->clip_frames = (long)in.frame_count;
    r->frame_bytes = (uint64_t)r->width * (uint64_t)r->height * 3;
    snprintf(r->codec, sizeof r->codec, "%s", in.codec);
    return 0;
}

static int scenario_fp_loop(const mpf_opts *o, mpf_run *r)
{
    fp_reader *rd = NULL;
    int rc = open_reader(o, 0, &rd, r);
    if (rc < 0) {
        fp_reader_close(&rd);
        return rc;
    }
    rc = mpf_run_start(r, "1 framepool loop", o->frames, r->clip_frames, 0, o->progress_tty);
    if (rc < 0)
        return rc;
    fp_image *img = NULL;
    char path[4096];
    int rewinds = 0;
    for (;;) {
        rc = fp_reader_next(rd, &img); /* releases the previous frame */
        if (rc == 0) {
            if (++rewinds > 2 || (rc = fp_reader_seek(rd, 0, FP_SEEK_KEY)) < 0)
                break;
            continue;
        }
        if (rc < 0)
            break;
        rewinds = 0;
        if (o->save_every > 0 && r->frames % (uint64_t)o->save_every == 0 &&
            fp_image_save(save_path(path, sizeof path, o, "fp", r->frames), img, NULL) < 0) {
            snprintf(r->note, sizeof r->note, "%s", fp_image_save_errmsg());
            rc = -1;
            break;
        }
        if (mpf_frame(r))
            break;
    }
    fp_unref(&img);
    mpf_run_stop(r);
    if (rc < 0 && !r->note[0])
        snprintf(r->note, sizeof r->note, "%s", fp_reader_errmsg(rd));
    if (rc >= 0)
        note_reader(r, rd);
    fp_reader_close(&rd);
    return rc < 0 ? rc : 0;
}

/* ---- scenarios 3 and 4: plain libav loop, freed or leaked ---------------------------------- */

static int scenario_lav_loop(const mpf_opts *o, mpf_run *r, int leak)
{
    lav l;
    if (lav_open(&l, o->clip, o->threads, r) < 0) {
        lav_close(&l);
        return -1;
    }
    long target = o->frames;
    if (leak) {
        /* Leak about leak_mb, but run long enough for a verdict. */
        long n = (long)((uint64_t)o->leak_mb * 1048576u / (r->frame_bytes ? r->frame_bytes : 1));
        if (n < 120)
            n = 120;
        if (n < target)
            target = n;
    }
    int rc = mpf_run_start(r, leak ? "4 libav leak" : "3 libav loop", target, r->clip_frames, 1,
                           o->progress_tty);
    if (rc < 0)
        return rc;
    char path[4096];
    for (;;) {
        if ((rc = lav_next(&l)) < 0)
            break;
        AVFrame *bgr = lav_to_bgr(&l);
        if (!bgr) {
            rc = -1;
            break;
        }
        if (o->save_every > 0 && r->frames % (uint64_t)o->save_every == 0 &&
            lav_save_png(&l, save_path(path, sizeof path, o, leak ? "leak" : "lav", r->frames),
                         bgr) < 0) {
            snprintf(r->note, sizeof r->note, "PNG save failed: %.*s", 120, path);
            if (!leak)
                av_frame_free(&bgr);
            rc = -1;
            break;
        }
        if (!leak)
            av_frame_free(&bgr);
        /* else: the frame is forgotten here, as in the bug reports */
        if (mpf_frame(r))
            break;
    }
    mpf_run_stop(r);
    if (rc < 0 && !r->note[0])
        snprintf(r->note, sizeof r->note, "decode failed: %s", av_err2str(rc));
    else if (rc >= 0 && leak)
        snprintf(r->note, sizeof r->note, "stopped after %ld frames (about %ld MiB leaked)",
                 target, (long)((uint64_t)target * r->frame_bytes >> 20));
    lav_close(&l);
    return rc < 0 ? rc : 0;
}

/* ---- scenario 5: the two-thread pipeline ---------------------------------------------------- */

typedef struct queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    void **items;
    int cap, head, n, closed;
} queue;

static int queue_init(queue *q, int cap)
{
    memset(q, 0, sizeof *q);
    q->items = calloc((size_t)cap, sizeof *q->items);
    q->cap = cap;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    return q->items ? 0 : -1;
}

static void queue_destroy(queue *q)
{
    free(q->items);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
}

static int queue_push(queue *q, void *item)
{
    pthread_mutex_lock(&q->mu);
    while (q->n == q->cap && !q->closed)
        pthread_cond_wait(&q->not_full, &q->mu);
    if (q->closed) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    q->items[(q->head + q->n) % q->cap] = item;
    q->n++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

static void *queue_pop(queue *q)
{
    void *item = NULL;
    pthread_mutex_lock(&q->mu);
    while (q->n == 0 && !q->closed)
        pthread_cond_wait(&q->not_empty, &q->mu);
    if (q->n > 0) {
        item = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->n--;
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->mu);
    return item;
}

/* Waits until the queue is full (or closed). */
static void queue_wait_full(queue *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->n < q->cap && !q->closed)
        pthread_cond_wait(&q->not_empty, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

static void queue_close(queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->mu);
}

/* The worker's "analysis": reads one byte in 64 of every 8th row. */
static unsigned touch(const uint8_t *data, int stride, int w, int h)
{
    unsigned sum = 0;
    for (int y = 0; y < h; y += 8)
        for (int x = 0; x < w * 3; x += 64)
            sum += data[(size_t)y * (size_t)stride + (size_t)x];
    return sum;
}

typedef struct pipe_ctx {
    const mpf_opts *o;
    queue q;
    fp_reader *rd; /* 5a */
    lav l;         /* 5b */
    int rc;
    char err[160];
} pipe_ctx;

static void *fp_producer(void *arg)
{
    pipe_ctx *c = arg;
    fp_image *img = NULL;
    int rewinds = 0;
    for (;;) {
        int rc = fp_reader_next(c->rd, &img);
        if (rc == 0) {
            if (++rewinds > 2 || (rc = fp_reader_seek(c->rd, 0, FP_SEEK_KEY)) < 0) {
                c->rc = -1;
                break;
            }
            continue;
        }
        if (rc == FP_ELIMIT) { /* the worker holds max_held frames: wait for one */
            usleep(500);
            continue;
        }
        if (rc < 0) {
            c->rc = rc;
            snprintf(c->err, sizeof c->err, "%s", fp_reader_errmsg(c->rd));
            break;
        }
        rewinds = 0;
        if (queue_push(&c->q, img) < 0)
            break; /* closed: the run is over */
        img = NULL; /* the queue owns it now */
    }
    fp_unref(&img);
    queue_close(&c->q);
    return NULL;
}

static void *lav_producer(void *arg)
{
    pipe_ctx *c = arg;
    for (;;) {
        int rc = lav_next(&c->l);
        if (rc < 0) {
            c->rc = rc;
            snprintf(c->err, sizeof c->err, "decode failed: %s", av_err2str(rc));
            break;
        }
        AVFrame *bgr = lav_to_bgr(&c->l);
        if (!bgr) {
            c->rc = -1;
            break;
        }
        if (queue_push(&c->q, bgr) < 0) {
            av_frame_free(&bgr);
            break;
        }
    }
    queue_close(&c->q);
    return NULL;
}

static int scenario_pipeline(const mpf_opts *o, mpf_run *r, int use_fp)
{
    pipe_ctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    int hold = o->hold > 0 ? o->hold : 1;
    int rc;
    if (use_fp)
        rc = open_reader(o, (unsigned)(o->max_held > 0 ? o->max_held : o->queue + hold + 2),
                         &c.rd, r);
    else
        rc = lav_open(&c.l, o->clip, o->threads, r);
    if (rc < 0 || queue_init(&c.q, o->queue) < 0) {
        fp_reader_close(&c.rd);
        lav_close(&c.l);
        return -1;
    }
    if ((rc = mpf_run_start(r, use_fp ? "5a framepool pipeline" : "5b libav pipeline", o->frames,
                            r->clip_frames, use_fp ? 0 : 1, o->progress_tty)) < 0)
        return rc;
    void **window = calloc((size_t)hold, sizeof *window);
    pthread_t th;
    if (!window || pthread_create(&th, NULL, use_fp ? fp_producer : lav_producer, &c) != 0) {
        snprintf(r->note, sizeof r->note, "cannot start the decode thread");
        return -1;
    }
    volatile unsigned sink = 0;
    int slot = 0;
    /* Pre-roll, as a player buffers before it starts: the worker begins once
     * the queue is full, so both pipelines reach their full depth (queue +
     * window + the frame in the decode thread's hand) at the start. */
    queue_wait_full(&c.q);
    for (;;) {
        void *item = queue_pop(&c.q);
        if (!item)
            break; /* the producer stopped (error) */
        if (use_fp) {
            fp_image *img = item;
            sink += touch(img->data[0], img->stride[0], img->width, img->height);
            fp_unref(&window[slot]); /* the oldest frame goes */
        } else {
            AVFrame *f = item;
            sink += touch(f->data[0], f->linesize[0], f->width, f->height);
            av_frame_free((AVFrame **)&window[slot]);
        }
        window[slot] = item;
        slot = (slot + 1) % hold;
        if (mpf_frame(r))
            break;
    }
    mpf_run_stop(r);
    queue_close(&c.q);
    pthread_join(th, NULL);
    void *item;
    while ((item = queue_pop(&c.q)) != NULL) {
        if (use_fp)
            fp_unref(&item);
        else
            av_frame_free((AVFrame **)&item);
    }
    for (int i = 0; i < hold; i++) {
        if (use_fp)
            fp_unref(&window[i]);
        else
            av_frame_free((AVFrame **)&window[i]);
    }
    free(window);
    (void)sink;
    if ((long)r->frames < r->target) {
        snprintf(r->note, sizeof r->note, "%s", c.err[0] ? c.err : "the decode thread stopped");
        rc = -1;
    } else if (use_fp) {
        note_reader(r, c.rd);
    }
    fp_reader_close(&c.rd);
    lav_close(&c.l);
    queue_destroy(&c.q);
    return rc < 0 ? rc : 0;
}

/* ---- child: run one scenario, write its result -------------------------------------- */

typedef struct scenario {
    const char *id;
    const char *label;
    int framepool;
} scenario;

static const scenario scenarios[] = {
    {"1", "1 framepool loop", 1},    {"2", "2 cv::VideoCapture", 0},
    {"3", "3 libav loop", 0},        {"4", "4 libav leak", 0},
    {"5a", "5a framepool pipeline", 1}, {"5b", "5b libav pipeline", 0},
};
#define NSCEN ((int)(sizeof scenarios / sizeof scenarios[0]))

static int child_main(int argc, char **argv)
{
    mpf_run r;
    memset(&r, 0, sizeof r);
    r.statm_fd = -1;
    r.base_rss = mpf_rss_now();
    mpf_opts o;
    const char *id, *result, *points;
    if (mpf_child_parse(argc, argv, &o, &id, &result, &points) < 0) {
        fprintf(stderr, "mem_per_frame: bad scenario arguments\n");
        return 2;
    }
    av_log_set_level(AV_LOG_ERROR);
    int rc;
    if (!strcmp(id, "1"))
        rc = scenario_fp_loop(&o, &r);
    else if (!strcmp(id, "3"))
        rc = scenario_lav_loop(&o, &r, 0);
    else if (!strcmp(id, "4"))
        rc = scenario_lav_loop(&o, &r, 1);
    else if (!strcmp(id, "5a"))
        rc = scenario_pipeline(&o, &r, 1);
    else if (!strcmp(id, "5b"))
        rc = scenario_pipeline(&o, &r, 0);
    else {
        fprintf(stderr, "mem_per_frame: unknown scenario '%s'\n", id);
        return 2;
    }
    rc = rc < 0 ? -1 : 0;
    if (r.note[0] && rc < 0)
        fprintf(stderr, "mem_per_frame: scenario %s: %s\n", id, r.note);
    if (mpf_write_result(result, points, &r, rc) < 0)
        rc = -1;
    fp_unref(&r.mt);
    free(r.pts);
    if (r.statm_fd >= 0)
        close(r.statm_fd);
    return rc < 0 ? 1 : 0;
}

/* ---- driver ---------------------------------------------------------------------------- */

typedef struct row {
    const scenario *sc;
    int ran, ok;
    char note[200], codec[32];
    int width, height, threads, proc_threads;
    uint64_t frame_bytes, frames, warmup, peak, live, idle, late_misses;
    double seconds, fps, cpu_ms, slope, faults, live_slope;
    uint64_t base_rss, judged_from;
    long clip_frames;
    double late_slope; /* Theil-Sen slope of RssAnon over the last half after warm-up */
    /* --repeat: every round's fps and verdict (-1 error); the row is the
     * round with the best fps (or the first failed one) */
    int nrounds;
    double round_fps[16];
    int round_verdict[16];
    int64_t window, live_delta;
    int verdict, warmup_ended, live_flat;
    unsigned fail_reasons;
    char points[1200];
} row;

typedef struct goal {
    const char *name;
    int met; /* 1 met, 0 not met, -1 not measured */
    char detail[240];
} goal;

static int parse_result(const char *path, row *w)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *v = strchr(line, ' ');
        if (!v)
            continue;
        *v++ = 0;
        const char *k = line;
        if (!strcmp(k, "ok")) w->ok = atoi(v);
        else if (!strcmp(k, "note")) snprintf(w->note, sizeof w->note, "%s", v);
        else if (!strcmp(k, "codec")) snprintf(w->codec, sizeof w->codec, "%s", v);
        else if (!strcmp(k, "width")) w->width = atoi(v);
        else if (!strcmp(k, "height")) w->height = atoi(v);
        else if (!strcmp(k, "threads")) w->threads = atoi(v);
        else if (!strcmp(k, "proc_threads")) w->proc_threads = atoi(v);
        else if (!strcmp(k, "frame_bytes")) w->frame_bytes = strtoull(v, NULL, 10);
        else if (!strcmp(k, "frames")) w->frames = strtoull(v, NULL, 10);
        else if (!strcmp(k, "seconds")) w->seconds = atof(v);
        else if (!strcmp(k, "fps")) w->fps = atof(v);
        else if (!strcmp(k, "cpu_ms")) w->cpu_ms = atof(v);
        else if (!strcmp(k, "base_rss")) w->base_rss = strtoull(v, NULL, 10);
        else if (!strcmp(k, "clip_frames")) w->clip_frames = atol(v);
        else if (!strcmp(k, "judged_from")) w->judged_from = strtoull(v, NULL, 10);
        else if (!strcmp(k, "verdict")) w->verdict = atoi(v);
        else if (!strcmp(k, "warmup")) w->warmup = strtoull(v, NULL, 10);
        else if (!strcmp(k, "warmup_ended")) w->warmup_ended = atoi(v);
        else if (!strcmp(k, "slope")) w->slope = atof(v);
        else if (!strcmp(k, "window")) w->window = strtoll(v, NULL, 10);
        else if (!strcmp(k, "peak")) w->peak = strtoull(v, NULL, 10);
        else if (!strcmp(k, "faults")) w->faults = atof(v);
        else if (!strcmp(k, "live_slope")) w->live_slope = atof(v);
        else if (!strcmp(k, "live_delta")) w->live_delta = strtoll(v, NULL, 10);
        else if (!strcmp(k, "live_flat")) w->live_flat = atoi(v);
        else if (!strcmp(k, "live")) w->live = strtoull(v, NULL, 10);
        else if (!strcmp(k, "idle")) w->idle = strtoull(v, NULL, 10);
        else if (!strcmp(k, "late_misses")) w->late_misses = strtoull(v, NULL, 10);
        else if (!strcmp(k, "fail_reasons")) w->fail_reasons = (unsigned)atoi(v);
    }
    fclose(f);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Theil-Sen slope of RssAnon over the second half of the frames after
 * warm-up, from the points file (at most 400 points, every pair). A leak
 * grows in both halves; a one-time heap extension shows in one at most. */
static void late_slope(row *w)
{
    FILE *f = fopen(w->points, "r");
    if (!f)
        return;
    enum { MAXP = 400 };
    static double fx[8192], fy[8192];
    size_t n = 0;
    unsigned long long a, b;
    uint64_t from = w->warmup + (w->frames - w->warmup) / 2;
    while (n < 8192 && fscanf(f, "%llu %llu", &a, &b) == 2)
        if (a >= from) {
            fx[n] = (double)a;
            fy[n] = (double)b;
            n++;
        }
    fclose(f);
    if (n < 3)
        return;
    size_t step = n / MAXP + 1, m = 0;
    double *sl = malloc(sizeof *sl * (MAXP + 1) * (MAXP + 1) / 2);
    if (!sl)
        return;
    for (size_t i = 0; i < n; i += step)
        for (size_t j = i + step; j < n; j += step)
            sl[m++] = (fy[j] - fy[i]) / (fx[j] - fx[i]);
    if (m) {
        qsort(sl, m, sizeof *sl, cmp_double);
        w->late_slope = m % 2 ? sl[m / 2] : (sl[m / 2 - 1] + sl[m / 2]) / 2;
    }
    free(sl);
}

/* 1 when the rounds of a --repeat run did not all give the same verdict */
static int rounds_differ(const row *w)
{
    int n = w->nrounds < 16 ? w->nrounds : 16;
    for (int i = 1; i < n; i++)
        if (w->round_verdict[i] != w->round_verdict[0])
            return 1;
    return 0;
}

static const char *verdict_name(const row *w)
{
    if (!w->ran)
        return "skipped";
    if (!w->ok)
        return "ERROR";
    static const char *const n[] = {"PASS", "FAIL", "INCONCLUSIVE"};
    return w->verdict >= 0 && w->verdict <= 2 ? n[w->verdict] : "?";
}

static int run_and_wait(char *const argv[])
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execv(argv[0], argv);
        execvp(argv[0], argv);
        fprintf(stderr, "mem_per_frame: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFSIGNALED(st)) {
        fprintf(stderr, "mem_per_frame: %s died of signal %d\n", argv[0], WTERMSIG(st));
        return -1;
    }
    return WEXITSTATUS(st);
}

static void print_table(FILE *out, row *rows, int n)
{
    fprintf(out, "%-22s %6s %7s %8s %9s %11s %12s %9s %19s %10s  %s\n", "scenario", "frames",
            "fps", "cpu ms/f", "slope B/f", "window", "peak RssAnon", "faults/f",
            "framepool live", "pool idle", "verdict");
    for (int i = 0; i < n; i++) {
        row *w = &rows[i];
        if (!w->ran)
            continue;
        if (!w->ok) {
            fprintf(out, "%-22s ERROR: %s\n", w->sc->label, w->note);
            continue;
        }
        char win[32], pk[32], live[48], idle[32], lb[32];
        mpf_fmt_size(win, sizeof win, (double)w->window, 1);
        mpf_fmt_size(pk, sizeof pk, (double)w->peak, 0);
        if (w->sc->framepool) {
            mpf_fmt_size(lb, sizeof lb, (double)w->live, 0);
            if (w->live_flat)
                snprintf(live, sizeof live, "flat %s", lb);
            else /* the window test failed: show how far the live bytes moved */
                snprintf(live, sizeof live, "NOT flat %s",
                         mpf_fmt_size(lb, sizeof lb, (double)w->live_delta, 1));
            mpf_fmt_size(idle, sizeof idle, (double)w->idle, 0);
        } else {
            snprintf(live, sizeof live, "-");
            snprintf(idle, sizeof idle, "-");
        }
        fprintf(out, "%-22s %6" PRIu64 " %7.1f %8.3f %9.1f %11s %12s %9.3f %19s %10s  %s%s\n",
                w->sc->label, w->frames, w->fps, w->cpu_ms, w->slope, win, pk, w->faults, live,
                idle, verdict_name(w), rounds_differ(w) ? "*" : "");
    }
}

static row *find_row(row *rows, int n, const char *id)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].sc->id, id) && rows[i].ran && rows[i].ok)
            return &rows[i];
    return NULL;
}

static int eval_goals(row *rows, int n, goal *g)
{
    int k = 0;
    const char *fpids[] = {"1", "5a"};
    for (int i = 0; i < 2; i++) {
        row *w = find_row(rows, n, fpids[i]);
        goal *x = &g[k++];
        x->name = i == 0 ? "single loop: live flat, slope <= 16 B/f, faults <= 0.05/f"
                         : "pipeline: live flat, slope <= 16 B/f, faults <= 0.05/f";
        if (!w) {
            x->met = -1;
            snprintf(x->detail, sizeof x->detail, "scenario %s did not run", fpids[i]);
            continue;
        }
        x->met = w->live_flat && w->slope <= 16 && w->faults <= 0.05 &&
                 w->verdict == FP_MEMTRACK_PASS;
        snprintf(x->detail, sizeof x->detail,
                 "live %s, slope %.1f B/f, faults %.3f/f, verdict %s",
                 w->live_flat ? "flat" : "NOT flat", w->slope, w->faults, verdict_name(w));
    }
    row *a = find_row(rows, n, "5a"), *b = find_row(rows, n, "5b");
    goal *x = &g[k++];
    x->name = "pipeline: faults/f >= 20x lower than libav's, peak <= libav's";
    if (!a || !b) {
        x->met = -1;
        snprintf(x->detail, sizeof x->detail, "scenarios 5a and 5b are both needed");
    } else {
        double ratio = a->faults > 0 ? b->faults / a->faults : (b->faults > 0 ? INFINITY : 0);
        x->met = ratio >= 20 && a->peak <= b->peak;
        char pa[32], pb[32];
        snprintf(x->detail, sizeof x->detail,
                 "faults %.3f vs %.3f per frame (%s%.1fx lower), peak %s vs %s (%.2fx)",
                 a->faults, b->faults, isinf(ratio) ? ">" : "",
                 isinf(ratio) ? b->faults / 0.001 : ratio,
                 mpf_fmt_size(pa, sizeof pa, (double)a->peak, 0),
                 mpf_fmt_size(pb, sizeof pb, (double)b->peak, 0),
                 (double)a->peak / (double)b->peak);
    }
    a = find_row(rows, n, "1");
    b = find_row(rows, n, "2");
    x = &g[k++];
    x->name = "loop vs cv::VideoCapture: peak <= 0.8x, fps >= 1.15x";
    if (!a || !b) {
        x->met = -1;
        snprintf(x->detail, sizeof x->detail, "scenarios 1 and 2 are both needed");
    } else {
        double pr = (double)a->peak / (double)b->peak, fr = a->fps / b->fps;
        double lr = (double)(a->peak - a->base_rss) / (double)(b->peak - b->base_rss);
        double cr = b->cpu_ms / a->cpu_ms;
        x->met = pr <= 0.8 && fr >= 1.15;
        char pa[32], pb[32], sa[32], sb[32];
        snprintf(x->detail, sizeof x->detail,
                 "peak %s vs %s = %.2fx (%s), fps %.2fx (%s); peak above each process's start "
                 "(%s vs %s) %.2fx, CPU per frame %.2fx less",
                 mpf_fmt_size(pa, sizeof pa, (double)a->peak, 0),
                 mpf_fmt_size(pb, sizeof pb, (double)b->peak, 0), pr,
                 pr <= 0.8 ? "met" : "not met", fr, fr >= 1.15 ? "met" : "not met",
                 mpf_fmt_size(sa, sizeof sa, (double)a->base_rss, 0),
                 mpf_fmt_size(sb, sizeof sb, (double)b->base_rss, 0), lr, cr);
    }
    a = find_row(rows, n, "4");
    x = &g[k++];
    x->name = "leak: FAIL with slope close to the frame size";
    if (!a) {
        x->met = -1;
        snprintf(x->detail, sizeof x->detail, "scenario 4 did not run");
    } else {
        double r = a->frame_bytes ? a->slope / (double)a->frame_bytes : 0;
        x->met = a->verdict == FP_MEMTRACK_FAIL && r >= 0.9 && r <= 1.25;
        snprintf(x->detail, sizeof x->detail,
                 "verdict %s, slope %.0f B/f = %.3fx the %" PRIu64 "-byte BGR frame",
                 verdict_name(a), a->slope, r, a->frame_bytes);
    }
    return k;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void csv_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void write_csv_rows(FILE *f, const char *clip, row *rows, int n)
{
    for (int i = 0; i < n; i++) {
        row *w = &rows[i];
        if (!w->ran)
            continue;
        csv_str(f, clip);
        fprintf(f, ",%s,", w->sc->id);
        csv_str(f, w->sc->label);
        fprintf(f,
                ",%d,%d,%d,%" PRIu64 ",%" PRIu64 ",%.3f,%.3f,%.3f,%" PRId64 ",%" PRIu64
                ",%.5f,",
                w->width, w->height, w->threads, w->frame_bytes, w->frames, w->seconds, w->fps,
                w->slope, w->window, w->peak, w->faults);
        if (w->sc->framepool)
            fprintf(f, "%" PRIu64 ",%d,%.3f,%" PRIu64 ",", w->live, w->live_flat, w->live_slope,
                    w->idle);
        else
            fprintf(f, ",,,,");
        fprintf(f, "%" PRIu64 ",%s,%.5f,%" PRIu64 ",", w->warmup, verdict_name(w), w->cpu_ms,
                w->base_rss);
        csv_str(f, w->note);
        fputc('\n', f);
    }
}

static void write_json_clip(FILE *f, const char *clip, row *rows, int n, goal *g, int ng,
                            const char *plot, int first)
{
    fprintf(f, "%s    {\"clip\": ", first ? "" : ",\n");
    json_str(f, clip);
    fprintf(f, ", \"plot\": ");
    if (plot)
        json_str(f, plot);
    else
        fputs("null", f);
    fprintf(f, ",\n     \"scenarios\": [");
    int k = 0;
    for (int i = 0; i < n; i++) {
        row *w = &rows[i];
        if (!w->ran)
            continue;
        fprintf(f, "%s\n      {\"id\": \"%s\", \"label\": ", k++ ? "," : "", w->sc->id);
        json_str(f, w->sc->label);
        fprintf(f, ", \"ok\": %s, \"verdict\": \"%s\", \"codec\": ", w->ok ? "true" : "false",
                verdict_name(w));
        json_str(f, w->codec);
        fprintf(f,
                ", \"width\": %d, \"height\": %d, \"threads\": %d, \"process_threads\": %d, "
                "\"frame_bytes\": %" PRIu64 ", \"frames\": %" PRIu64 ", \"seconds\": %.3f, "
                "\"fps\": %.3f, \"cpu_ms_per_frame\": %.5f, \"start_rss_anon_bytes\": %" PRIu64
                ", \"warmup_frames\": %" PRIu64 ", \"rss_slope_bytes_per_frame\": "
                "%.3f, \"rss_window_delta_bytes\": %" PRId64 ", \"peak_rss_anon_bytes\": %" PRIu64
                ", \"minor_faults_per_frame\": %.5f, \"rss_slope_last_half\": %.3f",
                w->width, w->height, w->threads, w->proc_threads, w->frame_bytes, w->frames,
                w->seconds, w->fps, w->cpu_ms, w->base_rss, w->warmup, w->slope, w->window,
                w->peak, w->faults, w->late_slope);
        if (w->sc->framepool)
            fprintf(f,
                    ", \"framepool_live_bytes\": %" PRIu64 ", \"framepool_live_flat\": %s, "
                    "\"framepool_live_slope\": %.3f, \"pool_idle_bytes\": %" PRIu64
                    ", \"late_pool_misses\": %" PRIu64,
                    w->live, w->live_flat ? "true" : "false", w->live_slope, w->idle,
                    w->late_misses);
        else
            fprintf(f, ", \"framepool_live_bytes\": null, \"pool_idle_bytes\": null");
        fprintf(f, ", \"judged_from_frame\": %" PRIu64 ", \"fail_reasons\": %u, \"rounds\": [",
                w->judged_from, w->fail_reasons);
        for (int r = 0; r < w->nrounds && r < 16; r++)
            fprintf(f, "%s{\"fps\": %.3f, \"verdict\": %d}", r ? ", " : "", w->round_fps[r],
                    w->round_verdict[r]);
        fprintf(f, "], \"note\": ");
        json_str(f, w->note);
        fputc('}', f);
    }
    fprintf(f, "],\n     \"goals\": [");
    for (int i = 0; i < ng; i++) {
        fprintf(f, "%s\n      {\"goal\": ", i ? "," : "");
        json_str(f, g[i].name);
        fprintf(f, ", \"met\": %s, \"detail\": ",
                g[i].met == 1 ? "true" : g[i].met == 0 ? "false" : "null");
        json_str(f, g[i].detail);
        fputc('}', f);
    }
    fprintf(f, "]}");
}

static int make_plot(const char *png, const char *tmp, const char *clip, row *rows, int n)
{
    char script[1200];
    snprintf(script, sizeof script, "%s/plot.gp", tmp);
    FILE *f = fopen(script, "w");
    if (!f)
        return -1;
    const char *base = strrchr(clip, '/') ? strrchr(clip, '/') + 1 : clip;
    row *any = NULL;
    for (int i = 0; i < n && !any; i++)
        if (rows[i].ran && rows[i].ok)
            any = &rows[i];
    if (!any) {
        fclose(f);
        return -1;
    }
    /* framepool in blue/green, the peers in greys and orange, the leak in red */
    const char *colors[] = {"#1f5fbf", "#7f7f7f", "#e08a00", "#d62728", "#2ca02c", "#9467bd"};
    fprintf(f, "set terminal pngcairo size 1100,900 font 'sans,10'\n");
    fprintf(f, "set output '%s'\n", png);
    fprintf(f, "set multiplot layout 2,1 title \"RssAnon per frame: %s (%dx%d %s, %d decoder "
               "threads)\" font 'sans,12'\n",
            base, any->width, any->height, any->codec, any->threads);
    fprintf(f, "set xlabel 'frame'\nset ylabel 'RssAnon (MiB)'\nset grid\n"
               "set key outside right top samplen 2\n");
    for (int pass = 0; pass < 2; pass++) {
        fprintf(f, "set title \"%s\"\n",
                pass == 0 ? "all scenarios" : "without the leak (zoomed)");
        if (pass == 1 && any->warmup > 0)
            fprintf(f, "set arrow 1 from %" PRIu64 ", graph 0 to %" PRIu64 ", graph 1 nohead "
                       "dt 2 lc rgb '#555555'\nset label 1 'warm-up end' at %" PRIu64
                       ", graph 0.96 offset 0.5,0 font 'sans,9'\n",
                    any->warmup, any->warmup, any->warmup);
        fprintf(f, "plot ");
        int k = 0;
        /* the peers first, so that framepool's lines are drawn on top */
        for (int j = 0; j < 2 * n; j++) {
            row *w = &rows[j % n];
            if ((j < n) == (w->sc->framepool != 0))
                continue;
            if (!w->ran || !w->ok || (pass == 1 && !strcmp(w->sc->id, "4")))
                continue;
            fprintf(f, "%s'%s' using 1:($2/1048576) with lines lw %d lc rgb '%s' title '%s'",
                    k++ ? ", \\\n     " : "", w->points, w->sc->framepool ? 3 : 2,
                    colors[(w - rows) % 6], w->sc->label);
        }
        fprintf(f, "\n");
    }
    fprintf(f, "unset multiplot\n");
    fclose(f);
    char *argv[] = {"gnuplot", script, NULL};
    return run_and_wait(argv) == 0 ? 0 : -1;
}

static int make_default_clip(const char *tmp, char *out, size_t n)
{
    snprintf(out, n, "%s/testsrc2-1280x720.mp4", tmp);
    printf("mem_per_frame: no clip given: making %s (10 s of 1280x720 H.264, B-frames) with "
           "ffmpeg\n",
           out);
    char *argv[] = {"ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=1280x720:rate=30:duration=10", "-c:v", "libx264", "-preset",
                    "veryfast", "-pix_fmt", "yuv420p", "-g", "60", "-bf", "2", out, NULL};
    return run_and_wait(argv) == 0 ? 0 : -1;
}

static int rm_rf(const char *dir)
{
    char *argv[] = {"rm", "-rf", (char *)dir, NULL};
    return run_and_wait(argv);
}

static int usage(void)
{
    fprintf(stderr,
            "usage: mem_per_frame [--frames N] [--threads N] [--save-every N] [--leak-mb MB]\n"
            "                     [--queue N] [--hold N] [--max-held N] [--prime] [--repeat N]\n"
            "                     [--only 1,2,3,4,5a,5b] [--csv FILE] [--json FILE]\n"
            "                     [--plot FILE.png] [--keep] [CLIP ...]\n"
            "  --frames N      frames per scenario (default 5000; the clip is looped by seeking)\n"
            "  --threads N     decoder threads for every scenario (default: the CPU count,\n"
            "                  which is what cv::VideoCapture uses and cannot be told otherwise)\n"
            "  --save-every N  save every Nth frame as PNG in scenarios 1-4 (default 100;\n"
            "                  0 = never)\n"
            "  --leak-mb MB    scenario 4 stops after leaking about this much (default 512)\n"
            "  --queue N       pipeline queue bound (default 8)\n"
            "  --hold N        frames the pipeline worker holds (default 4)\n"
            "  --max-held N    5a's reader bound on frames held (default queue + hold + 2, the\n"
            "                  pipeline's full depth; fewer makes the decode thread wait)\n"
            "  --repeat N      run the scenarios N times, interleaved (1..16, default 1); each\n"
            "                  row is the round with the best fps, the notes list all rounds\n"
            "  --prime         5a opens its reader with fp_reader_options.prefill: the BGR\n"
            "                  pool is at its bound, every page touched, before the first frame\n"
            "  --plot FILE     PNG of RssAnon over frames (gnuplot); more clips get -2, -3, ...\n"
            "  --keep          keep the temporary directory (clip, frames, samples)\n"
            "Without CLIP, a 1280x720 H.264 test clip is generated with ffmpeg.\n");
    return 2;
}

static void plot_name(char *buf, size_t n, const char *plot, int idx)
{
    if (idx == 0) {
        snprintf(buf, n, "%s", plot);
        return;
    }
    const char *dot = strrchr(plot, '.');
    const char *slash = strrchr(plot, '/');
    if (!dot || (slash && dot < slash))
        dot = plot + strlen(plot);
    snprintf(buf, n, "%.*s-%d%s", (int)(dot - plot), plot, idx + 1, dot);
}

int main(int argc, char **argv)
{
    mpf_opts o = {0};
    o.frames = 5000;
    o.threads = 0;
    o.save_every = 100;
    o.queue = 8;
    o.hold = 4;
    o.leak_mb = 512;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--scenario"))
            return child_main(argc, argv); /* one scenario in this process */
    const char *csv = NULL, *json = NULL, *plot = NULL, *only = NULL;
    int repeat = 1;
    int keep = 0;
    const char *clips[64];
    int nclips = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int v = i + 1 < argc;
        if (!strcmp(a, "--frames") && v) o.frames = atol(argv[++i]);
        else if (!strcmp(a, "--threads") && v) o.threads = atoi(argv[++i]);
        else if (!strcmp(a, "--save-every") && v) o.save_every = atoi(argv[++i]);
        else if (!strcmp(a, "--leak-mb") && v) o.leak_mb = atol(argv[++i]);
        else if (!strcmp(a, "--queue") && v) o.queue = atoi(argv[++i]);
        else if (!strcmp(a, "--hold") && v) o.hold = atoi(argv[++i]);
        else if (!strcmp(a, "--max-held") && v) o.max_held = atoi(argv[++i]);
        else if (!strcmp(a, "--prime")) o.prime = 1;
        else if (!strcmp(a, "--repeat") && v) repeat = atoi(argv[++i]);
        else if (!strcmp(a, "--csv") && v) csv = argv[++i];
        else if (!strcmp(a, "--json") && v) json = argv[++i];
        else if (!strcmp(a, "--plot") && v) plot = argv[++i];
        else if (!strcmp(a, "--only") && v) only = argv[++i];
        else if (!strcmp(a, "--keep")) keep = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage();
        else if (a[0] == '-') return usage();
        else if (nclips < 64) clips[nclips++] = a;
        else return usage();
    }
    if (o.frames < 200 || o.threads < 0 || o.save_every < 0 || o.queue < 1 || o.hold < 1 ||
        o.max_held < 0 || o.leak_mb < 1 || repeat < 1 || repeat > 16) {
        fprintf(stderr, "mem_per_frame: --frames must be >= 200, --repeat 1..16, the others "
                        "positive\n");
        return 2;
    }
    if (o.threads == 0)
        o.threads = mpf_cpu_count();
    o.progress_tty = isatty(STDOUT_FILENO);

    const char *tdir = getenv("TMPDIR");
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s/mem_per_frame.XXXXXX", tdir && *tdir ? tdir : "/tmp");
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "mem_per_frame: cannot create a temporary directory: %s\n",
                strerror(errno));
        return 1;
    }
    o.dir = tmp;
    char default_clip[4200];
    if (nclips == 0) {
        if (make_default_clip(tmp, default_clip, sizeof default_clip) < 0) {
            fprintf(stderr, "mem_per_frame: ffmpeg could not make the default clip; give a CLIP\n");
            rm_rf(tmp);
            return 1;
        }
        clips[nclips++] = default_clip;
    }
    FILE *fcsv = NULL, *fjson = NULL;
    if (csv && !(fcsv = fopen(csv, "w"))) {
        fprintf(stderr, "mem_per_frame: cannot write %s: %s\n", csv, strerror(errno));
        return 1;
    }
    if (json && !(fjson = fopen(json, "w"))) {
        fprintf(stderr, "mem_per_frame: cannot write %s: %s\n", json, strerror(errno));
        return 1;
    }
    if (fcsv)
        fprintf(fcsv, "clip,id,scenario,width,height,threads,frame_bytes,frames,seconds,fps,"
                      "rss_slope_b_per_frame,rss_window_delta_b,peak_rss_anon_b,"
                      "minor_faults_per_frame,framepool_live_b,framepool_live_flat,"
                      "framepool_live_slope,pool_idle_b,warmup_frames,verdict,cpu_ms_per_frame,"
                      "start_rss_anon_b,note\n");
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
    if (fjson) {
        fprintf(fjson, "{\"tool\": \"mem_per_frame\", \"date\": \"%s\", \"cpus\": %d, "
                       "\"frames_per_scenario\": %ld, \"threads\": %d, \"save_every\": %d, "
                       "\"queue\": %d, \"hold\": %d, \"max_held\": %d, \"prime\": %s, "
                       "\"repeat\": %d, \"command\": ",
                date, mpf_cpu_count(), o.frames, o.threads, o.save_every, o.queue, o.hold,
                o.max_held > 0 ? o.max_held : o.queue + o.hold + 2, o.prime ? "true" : "false",
                repeat);
        char cmd[4096] = "";
        for (int i = 0; i < argc; i++) {
            size_t l = strlen(cmd);
            snprintf(cmd + l, sizeof cmd - l, "%s%s", i ? " " : "", argv[i]);
        }
        json_str(fjson, cmd);
        fprintf(fjson, ",\n  \"clips\": [\n");
    }

    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) {
        fprintf(stderr, "mem_per_frame: cannot find its own executable\n");
        return 1;
    }
    self[sl] = 0;
    /* Scenario 2 is its own program, next to this one. */
    char self_cv[4200];
    snprintf(self_cv, sizeof self_cv, "%s_cv", self);
    if (access(self_cv, X_OK) != 0)
        fprintf(stderr, "mem_per_frame: %s is missing: scenario 2 will fail\n", self_cv);
    int all_ok = 1;
    for (int c = 0; c < nclips; c++) {
        row rows[NSCEN];
        memset(rows, 0, sizeof rows);
        printf("\nmem_per_frame: %s, %ld frames per scenario, %d decoder threads, save every "
               "%d, pipeline queue %d, worker holds %d, 5a max_held %d%s, %d round%s\n",
               clips[c], o.frames, o.threads, o.save_every, o.queue, o.hold,
               o.max_held > 0 ? o.max_held : o.queue + o.hold + 2, o.prime ? " (primed)" : "",
               repeat, repeat > 1 ? "s" : "");
        for (int round = 0; round < repeat; round++) {
            for (int s = 0; s < NSCEN; s++) {
                row *w = &rows[s];
                w->sc = &scenarios[s];
                if (only) {
                    char list[256];
                    snprintf(list, sizeof list, ",%s,", only);
                    char key[8];
                    snprintf(key, sizeof key, ",%s,", w->sc->id);
                    if (!strstr(list, key))
                        continue;
                }
                row t;
                memset(&t, 0, sizeof t);
                t.sc = w->sc;
                char res[4200], fr[32], th[32], se[32], lm[32], qu[32], ho[32], mh[32], pr[8];
                snprintf(res, sizeof res, "%s/result-%d-%s-%d.txt", tmp, c, t.sc->id, round);
                snprintf(t.points, sizeof t.points, "%s/rss-%d-%s-%d.dat", tmp, c, t.sc->id,
                         round);
                snprintf(fr, sizeof fr, "%ld", o.frames);
                snprintf(th, sizeof th, "%d", o.threads);
                snprintf(se, sizeof se, "%d", o.save_every);
                snprintf(lm, sizeof lm, "%ld", o.leak_mb);
                snprintf(qu, sizeof qu, "%d", o.queue);
                snprintf(ho, sizeof ho, "%d", o.hold);
                snprintf(mh, sizeof mh, "%d", o.max_held);
                snprintf(pr, sizeof pr, "%d", o.prime);
                char *cargv[] = {strcmp(t.sc->id, "2") ? self : self_cv,
                                 "--scenario", (char *)t.sc->id, "--result", res,
                                 "--points", t.points, "--dir", tmp, "--frames", fr,
                                 "--threads", th, "--save-every", se, "--leak-mb", lm,
                                 "--queue", qu, "--hold", ho, "--max-held", mh, "--prime", pr,
                                 "--clip", (char *)clips[c], NULL};
                unlink(res);
                t.ran = 1;
                int rc = run_and_wait(cargv);
                if (parse_result(res, &t) < 0 || rc != 0) {
                    t.ok = 0;
                    if (!t.note[0])
                        snprintf(t.note, sizeof t.note, "the scenario process failed (%d)", rc);
                    all_ok = 0;
                } else {
                    late_slope(&t);
                }
                int k = w->nrounds;
                if (k < 16) {
                    w->round_fps[k] = t.ok ? t.fps : 0;
                    w->round_verdict[k] = t.ok ? t.verdict : -1;
                }
                if (!w->ran || !t.ok || (w->ok && t.fps > w->fps)) {
                    double rf[16];
                    int rv[16];
                    memcpy(rf, w->round_fps, sizeof rf);
                    memcpy(rv, w->round_verdict, sizeof rv);
                    *w = t;
                    memcpy(w->round_fps, rf, sizeof rf);
                    memcpy(w->round_verdict, rv, sizeof rv);
                }
                w->nrounds = k + 1;
            }
        }
        row *info = NULL;
        for (int s = 0; s < NSCEN && !info; s++)
            if (rows[s].ran && rows[s].ok)
                info = &rows[s];
        printf("\nclip %s", clips[c]);
        if (info) {
            char fb[32];
            printf(": %dx%d %s, BGR frame %s, %d decoder threads", info->width, info->height,
                   info->codec, mpf_fmt_size(fb, sizeof fb, (double)info->frame_bytes, 0),
                   info->threads);
        }
        printf("\n\n");
        if (info && info->clip_frames > 0 && 2 * info->clip_frames + 30 > o.frames / 2)
            printf("note: %ld frames is less than four passes through this %ld-frame clip: the "
                   "warm-up (capped at half the run)\n      may not cover the decoder's "
                   "first-pass growth; --frames %ld or more judges it fully\n\n",
                   o.frames, info->clip_frames, 4 * info->clip_frames + 60);
        print_table(stdout, rows, NSCEN);
        goal g[8];
        int ng = eval_goals(rows, NSCEN, g);
        printf("\ngoals (same run):\n");
        for (int i = 0; i < ng; i++)
            printf("  [%s] %s: %s\n", g[i].met == 1 ? "met" : g[i].met == 0 ? "NOT MET" : "n/a",
                   g[i].name, g[i].detail);
        printf("\nnotes:\n");
        for (int s = 0; s < NSCEN; s++) {
            row *w = &rows[s];
            if (!w->ran)
                continue;
            char b[32];
            char judged[64] = "";
            if (w->judged_from > w->warmup)
                snprintf(judged, sizeof judged, " (settled late: judged from frame %" PRIu64 ")",
                         w->judged_from);
            printf("  %-22s warm-up %" PRIu64 " frames%s%s, slope over the last half %.1f B/f, "
                   "RssAnon at start %s, %d threads in the process%s%s\n",
                   w->sc->label, w->warmup, w->warmup_ended ? "" : " (pools never settled)",
                   judged, w->late_slope, mpf_fmt_size(b, sizeof b, (double)w->base_rss, 0),
                   w->proc_threads, w->note[0] ? "; " : "", w->note);
            if (w->ok && w->verdict == FP_MEMTRACK_FAIL)
                printf("  %-22s FAIL because:%s%s%s (live bytes: slope %.1f B/f, %s since "
                       "warm-up end)\n",
                       "", w->fail_reasons & 1u ? " RssAnon grows" : "",
                       w->fail_reasons & 2u ? " faults" : "",
                       w->fail_reasons & 4u ? " framepool live bytes not flat" : "",
                       w->live_slope, mpf_fmt_size(b, sizeof b, (double)w->live_delta, 1));
            if (w->nrounds > 1) {
                static const char *const vn[] = {"PASS", "FAIL", "INCONCLUSIVE"};
                printf("  %-22s rounds (fps verdict):", "");
                for (int i = 0; i < w->nrounds && i < 16; i++)
                    printf(" %.1f %s", w->round_fps[i],
                           w->round_verdict[i] < 0 ? "ERROR" : vn[w->round_verdict[i] % 3]);
                printf("%s\n", rounds_differ(w) ? " (* the verdicts differ)" : "");
            }
        }
        char png[4200] = "";
        if (plot) {
            plot_name(png, sizeof png, plot, c);
            if (make_plot(png, tmp, clips[c], rows, NSCEN) == 0)
                printf("plot: %s\n", png);
            else {
                fprintf(stderr, "mem_per_frame: gnuplot failed (apt-get install gnuplot-nox)\n");
                png[0] = 0;
            }
        }
        if (fcsv)
            write_csv_rows(fcsv, clips[c], rows, NSCEN);
        if (fjson)
            write_json_clip(fjson, clips[c], rows, NSCEN, g, ng, png[0] ? png : NULL, c == 0);
    }
    if (fjson) {
        fprintf(fjson, "\n  ]\n}\n");
        fclose(fjson);
    }
    if (fcsv)
        fclose(fcsv);
    if (keep)
        printf("kept %s\n", tmp);
    else
        rm_rf(tmp);
    return all_ok ? 0 : 1;
}
