/*
 * Private to lib/av: the ahead stage (fp_reader_options.convert_ahead) —
 * a worker thread converts one frame while the caller's thread decodes the
 * next. One job at most is in flight; the job carries the scaler it uses,
 * which the owner does not change until the job is collected. It reads and
 * writes its own struct only.
 */
#ifndef FRAMEPOOL_AV_AHEAD_H
#define FRAMEPOOL_AV_AHEAD_H

#include "avpriv.h"

#include <libswscale/swscale.h>
#include <pthread.h>

typedef struct fp__ahead {
    int started;                 /* the thread, mutex and condition exist */
    int failed;                  /* the thread could not start: convert on the caller's */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;                   /* guarded by mu */
    int busy;                    /* a job was posted and its image not yet collected */
    AVFrame *src;                /* the decoded frame being converted (the job's ref) */
    fp_image *dst;               /* +1: its pooled output, metadata already set */
    struct SwsContext *sws;      /* borrowed: the scaler of the job */
} fp__ahead;

/* Starts the worker on first use. Returns 1 when it runs, 0 when conversion
 * has to stay on the caller's thread. */
int fp__ahead_start(fp__ahead *a);
/* Hands `f` (its reference moves to the job) and `img` (+1, metadata set)
 * to the worker, which converts with `sws`. */
void fp__ahead_post(fp__ahead *a, struct SwsContext *sws, AVFrame *f, fp_image *img);
/* Waits for the job in flight and returns its image (+1), or NULL if none. */
fp_image *fp__ahead_collect(fp__ahead *a);
/* Makes `img`, collected from the worker, the job in flight again. */
void fp__ahead_putback(fp__ahead *a, fp_image *img);
/* Drops the job in flight, if any (seek). */
void fp__ahead_discard(fp__ahead *a);
/* Drops the job in flight and joins the worker (close). */
void fp__ahead_stop(fp__ahead *a);

#endif
