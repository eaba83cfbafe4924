/*
 * mem_per_frame: the scenarios, each run in its own process
 * (mem_per_frame --scenario ID): framepool's loop and pipeline, the plain
 * libav loop (bench/common/lav_loop.c), its leaking variant and its pipeline.
 * Scenario 2, cv::VideoCapture, is mem_per_frame_cv.cpp.
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
#include "mem_per_frame_report.h"
#include "common/lav_loop.h"

/* lav_open, recording what it found in the run. */
static int lav_open_run(lav *l, const mpf_opts *o, mpf_run *r)
{
    int rc = lav_open(l, o->clip, o->threads, 1);
    if (rc < 0) {
        snprintf(r->note, sizeof r->note, "%s", l->err);
        return rc;
    }
    r->width = l->width;
    r->height = l->height;
    r->threads = l->threads;
    r->clip_frames = l->clip_frames;
    r->frame_bytes = (uint64_t)r->width * (uint64_t)r->height * 3;
    snprintf(r->codec, sizeof r->codec, "%s", l->codec);
    return 0;
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
    fp_reader_get_stats(rd, &st);
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
    ro.loop = -1; /* the clip plays until the run has its frames, one decoder throughout */
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
    for (;;) {
        rc = fp_reader_next(rd, &img); /* releases the previous frame */
        if (rc <= 0)
            break;
        if (o->save_every > 0 && r->frames % (uint64_t)o->save_every == 0 &&
            fp_image_save(save_path(path, sizeof path, o, "fp", r->frames), img, NULL) < 0) {
            snprintf(r->note, sizeof r->note, "%s", fp_errmsg());
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
    if (lav_open_run(&l, o, r) < 0) {
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
    for (;;) {
        int rc = fp_reader_next(c->rd, &img);
        if (rc == 0) { /* options.loop is forever: the end means the clip has no frame */
            c->rc = -1;
            snprintf(c->err, sizeof c->err, "no frame in the clip");
            break;
        }
        if (rc == FP_EHELD) { /* the worker holds max_held frames: wait for one */
            usleep(500);
            continue;
        }
        if (rc < 0) {
            c->rc = rc;
            snprintf(c->err, sizeof c->err, "%s", fp_reader_errmsg(c->rd));
            break;
        }
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
        rc = lav_open_run(&c.l, o, r);
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

const scenario mpf_scenarios[MPF_MAX_SCEN] = {
    {"1", "1 framepool loop", 1},    {"2", "2 cv::VideoCapture", 0},
    {"3", "3 libav loop", 0},        {"4", "4 libav leak", 0},
    {"5a", "5a framepool pipeline", 1}, {"5b", "5b libav pipeline", 0},
};

int mpf_child_main(int argc, char **argv)
{
    mpf_run r;
    memset(&r, 0, sizeof r);
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
    if (r.proc_open)
        fp_procstat_close(&r.proc);
    return rc < 0 ? 1 : 0;
}

