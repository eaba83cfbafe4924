/*
 * Private to framepool (core and lib/av): the error channel, clocks and
 * plane arithmetic (base.c). Names use the fp__ prefix. Not installed.
 */
#ifndef FRAMEPOOL_BASE_PRIV_H
#define FRAMEPOOL_BASE_PRIV_H

#include "framepool/base.h"

#include <stdatomic.h>
#include <stdio.h>

/* Width and height in samples of `plane` of a width x height image of the
 * format `d` (chroma planes rounded up, as FFmpeg does). */
void fp__plane_dims(const fp_pixfmt_desc *d, int plane, int width, int height, int *w, int *h);

/* Current time on CLOCK_MONOTONIC in microseconds. */
int64_t fp__now_us(void);
/* The same clock at tick resolution (a few ms), several times cheaper. */
int64_t fp__coarse_now_us(void);

/* The one error channel (fp_errmsg): this thread's last message. */
void fp__set_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *fp__get_errmsg(void);


#ifdef FP_DEBUG
#define FP__DEBUG 1
#else
#define FP__DEBUG 0
#endif

#endif
