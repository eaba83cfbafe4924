/*
 * Private to framepool (core and lib/av): clocks and plane arithmetic
 * (base.c); the error channel is public (fp_errmsg_set, fp_errmsg: base.h).
 * Names use the fp__ prefix. Not installed.
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



#ifdef FP_DEBUG
#define FP__DEBUG 1
#else
#define FP__DEBUG 0
#endif

#endif
