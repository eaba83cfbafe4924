/*
 * Private to lib/av: the convert stage — output geometry, the conversion
 * pool's generations across size changes, and swscale. It reads and writes
 * its own struct only.
 */
#ifndef FRAMEPOOL_AV_CONVERT_H
#define FRAMEPOOL_AV_CONVERT_H

#include "avpriv.h"
#include "err.h"
#include "framepool/reader.h"

#include <libswscale/swscale.h>

typedef struct fp__convert {
    const fp_reader_options *opt; /* borrowed: the engine's copy of the options */
    unsigned max_held;           /* the caller's bound */
    int ahead;                   /* one more output buffer for the frame converted ahead */
    struct SwsContext *sws;
    fp_pool *out_pool;           /* conversion output pool */
    int cur_w, cur_h, cur_fmt;   /* size/format of the last decoded frame (AV_PIX_FMT_NONE:
                                    none yet, or its setup failed) */
    int out_w, out_h;            /* current output size (converted) */
    fp_pixfmt out_fmt;
    uint64_t size_changes;
} fp__convert;

/* Sets up the stage for the options `o` (borrowed for its life). */
void fp__convert_init(fp__convert *c, const fp_reader_options *o, unsigned max_held, int ahead);
/* Releases the scaler and the stage's reference to the output pool. */
void fp__convert_close(fp__convert *c);
/* The output size for a w x h source under the width/height options (one 0
 * keeps the aspect), in *out_w and *out_h (also on failure). Returns 0, or
 * FP_EINVAL when it exceeds FP_MAX_DIMENSION. No side effects. */
int fp__convert_out_size(const fp_reader_options *o, int w, int h, int *out_w, int *out_h);
/* Whether `f` differs in size or format from the last decoded frame. */
int fp__convert_changed(const fp__convert *c, const AVFrame *f);
/* A decoded frame of a new size or format: records it and, when
 * converting, sets up the output geometry and a new generation of the
 * conversion pool. Returns 0 or an error in *err (the frame is then not
 * recorded: the next one sets up the output again). */
int fp__convert_geometry(fp__convert *c, const AVFrame *f, fp__err *err);
/* Sets up the scaler for `f` and takes the output image from the pool (+1
 * in *out): the part of a conversion that can fail. The pixels are written
 * by fp__convert_scale with the scaler c->sws. */
int fp__convert_prepare(fp__convert *c, const AVFrame *f, fp_image **out, const char *file,
                        int line, const char *func, fp__err *err);
/* Converts `f` into `img` with the scaler `s` (set up by fp__convert_prepare). */
void fp__convert_scale(struct SwsContext *s, const AVFrame *f, fp_image *img);
/* Conversion-pool buffers out now (0 when none). */
unsigned fp__convert_outstanding(fp__convert *c);

#endif
