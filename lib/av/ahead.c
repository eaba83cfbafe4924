/*
 * Converting ahead on the reader's own thread (convert_ahead): the worker
 * converts the job's frame into its image while the caller's thread decodes
 * the next frame. The worker's state is guarded by the stage's mutex.
 */
#define _POSIX_C_SOURCE 200809L
#include "ahead.h"
#include "convert.h"

enum { AHEAD_IDLE = 0, AHEAD_WORK, AHEAD_DONE, AHEAD_QUIT };

static void *ahead_main(void *arg)
{
    fp__ahead *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->state == AHEAD_IDLE || a->state == AHEAD_DONE)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->state == AHEAD_QUIT)
            break;
        pthread_mutex_unlock(&a->mu);
        fp__convert_scale(a->sws, a->src, a->dst);
        pthread_mutex_lock(&a->mu);
        a->state = AHEAD_DONE;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

int fp__ahead_start(fp__ahead *a)
{
    if (a->started)
        return 1;
    if (a->failed)
        return 0;
    a->src = av_frame_alloc();
    if (!a->src || pthread_mutex_init(&a->mu, NULL) != 0)
        goto fail_frame;
    if (pthread_cond_init(&a->cv, NULL) != 0)
        goto fail_mutex;
    a->state = AHEAD_IDLE;
    if (fp__thread_start(&a->th, ahead_main, a) != 0)
        goto fail_cond;
    a->started = 1;
    return 1;
fail_cond:
    pthread_cond_destroy(&a->cv);
fail_mutex:
    pthread_mutex_destroy(&a->mu);
fail_frame:
    av_frame_free(&a->src);
    a->failed = 1;
    return 0;
}

fp_image *fp__ahead_collect(fp__ahead *a)
{
    if (!a->busy)
        return NULL;
    pthread_mutex_lock(&a->mu);
    while (a->state != AHEAD_DONE)
        pthread_cond_wait(&a->cv, &a->mu);
    a->state = AHEAD_IDLE;
    pthread_mutex_unlock(&a->mu);
    av_frame_unref(a->src);
    fp_image *img = a->dst;
    a->dst = NULL;
    a->busy = 0;
    return img;
}

void fp__ahead_putback(fp__ahead *a, fp_image *img)
{
    pthread_mutex_lock(&a->mu);
    a->state = AHEAD_DONE;
    pthread_mutex_unlock(&a->mu);
    a->dst = img;
    a->busy = 1;
}

void fp__ahead_discard(fp__ahead *a)
{
    fp_image *img = fp__ahead_collect(a);
    fp_unref(&img);
}

void fp__ahead_stop(fp__ahead *a)
{
    if (!a->started)
        return;
    fp__ahead_discard(a);
    pthread_mutex_lock(&a->mu);
    a->state = AHEAD_QUIT;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->th, NULL);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    av_frame_free(&a->src);
    a->started = 0;
}

void fp__ahead_post(fp__ahead *a, struct SwsContext *sws, AVFrame *f, fp_image *img)
{
    av_frame_move_ref(a->src, f);
    a->dst = img;
    a->sws = sws;
    a->busy = 1;
    pthread_mutex_lock(&a->mu);
    a->state = AHEAD_WORK;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}
