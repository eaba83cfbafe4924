/*
 * Converting ahead on the reader's own thread (convert_ahead): the worker
 * converts job_src into job_dst while the caller's thread decodes the next
 * frame. States of the worker are guarded by ahead_mu.
 */
#define _POSIX_C_SOURCE 200809L
#include "readerpriv.h"

#include <signal.h>

enum { AHEAD_IDLE = 0, AHEAD_WORK, AHEAD_DONE, AHEAD_QUIT };

static void *ahead_main(void *arg)
{
    fp_reader *r = arg;
    pthread_mutex_lock(&r->ahead_mu);
    for (;;) {
        while (r->ahead_state == AHEAD_IDLE || r->ahead_state == AHEAD_DONE)
            pthread_cond_wait(&r->ahead_cv, &r->ahead_mu);
        if (r->ahead_state == AHEAD_QUIT)
            break;
        pthread_mutex_unlock(&r->ahead_mu);
        fp__convert_scale(r->sws, r->job_src, r->job_dst);
        pthread_mutex_lock(&r->ahead_mu);
        r->ahead_state = AHEAD_DONE;
        pthread_cond_broadcast(&r->ahead_cv);
    }
    pthread_mutex_unlock(&r->ahead_mu);
    return NULL;
}

/* Starts the worker on first use. Returns 1 when it runs, 0 when conversion
 * has to stay on the caller's thread. */
int fp__ahead_start(fp_reader *r)
{
    if (r->ahead_started)
        return 1;
    if (r->ahead_failed)
        return 0;
    r->job_src = av_frame_alloc();
    if (!r->job_src || pthread_mutex_init(&r->ahead_mu, NULL) != 0)
        goto fail_frame;
    if (pthread_cond_init(&r->ahead_cv, NULL) != 0)
        goto fail_mutex;
    /* The worker takes no signals: a program's handlers (and FP_DIAG=signal's
     * sigwait thread) keep seeing them where they expect. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r->ahead_state = AHEAD_IDLE;
    int e = pthread_create(&r->ahead_th, NULL, ahead_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0)
        goto fail_cond;
    r->ahead_started = 1;
    return 1;
fail_cond:
    pthread_cond_destroy(&r->ahead_cv);
fail_mutex:
    pthread_mutex_destroy(&r->ahead_mu);
fail_frame:
    av_frame_free(&r->job_src);
    r->ahead_failed = 1;
    return 0;
}

/* Waits for the job in flight and returns its image (+1), or NULL if none. */
fp_image *fp__ahead_collect(fp_reader *r)
{
    if (!r->job_busy)
        return NULL;
    pthread_mutex_lock(&r->ahead_mu);
    while (r->ahead_state != AHEAD_DONE)
        pthread_cond_wait(&r->ahead_cv, &r->ahead_mu);
    r->ahead_state = AHEAD_IDLE;
    pthread_mutex_unlock(&r->ahead_mu);
    av_frame_unref(r->job_src);
    fp_image *img = r->job_dst;
    r->job_dst = NULL;
    r->job_busy = 0;
    return img;
}

/* Makes `img`, collected from the worker, the job in flight again. */
void fp__ahead_putback(fp_reader *r, fp_image *img)
{
    pthread_mutex_lock(&r->ahead_mu);
    r->ahead_state = AHEAD_DONE;
    pthread_mutex_unlock(&r->ahead_mu);
    r->job_dst = img;
    r->job_busy = 1;
}

/* Drops the frame in flight and any error kept from decoding ahead (seek). */
void fp__ahead_discard(fp_reader *r)
{
    fp_image *img = fp__ahead_collect(r);
    fp_unref(&img);
    r->pending_rc = 0;
}

void fp__ahead_stop(fp_reader *r)
{
    if (!r->ahead_started)
        return;
    fp__ahead_discard(r);
    pthread_mutex_lock(&r->ahead_mu);
    r->ahead_state = AHEAD_QUIT;
    pthread_cond_broadcast(&r->ahead_cv);
    pthread_mutex_unlock(&r->ahead_mu);
    pthread_join(r->ahead_th, NULL);
    pthread_cond_destroy(&r->ahead_cv);
    pthread_mutex_destroy(&r->ahead_mu);
    av_frame_free(&r->job_src);
    r->ahead_started = 0;
}

/* Hands `f` (its reference moves to the job) and `img` (+1, metadata set) to
 * the worker. */
void fp__ahead_post(fp_reader *r, AVFrame *f, fp_image *img)
{
    av_frame_move_ref(r->job_src, f);
    r->job_dst = img;
    r->job_busy = 1;
    pthread_mutex_lock(&r->ahead_mu);
    r->ahead_state = AHEAD_WORK;
    pthread_cond_broadcast(&r->ahead_cv);
    pthread_mutex_unlock(&r->ahead_mu);
}
