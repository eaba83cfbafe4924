/*
 * Private to lib/av: converted output — output geometry, the conversion
 * pool's generations across size changes, and swscale.
 */
#ifndef FRAMEPOOL_AV_CONVERT_H
#define FRAMEPOOL_AV_CONVERT_H

#include "avpriv.h"
#include "framepool/reader.h"

#include <libswscale/swscale.h>

/* The output size for a w x h source under the width/height options (one 0
 * keeps the aspect), in *out_w and *out_h (also on failure). Returns 0, or
 * FP_EINVAL when it exceeds FP_MAX_DIMENSION. No side effects: info uses it
 * on a const reader. */
int fp__convert_out_size(const fp_reader_options *o, int w, int h, int *out_w, int *out_h);
/* A decoded frame of a new size or format: records it and, when
 * converting, sets up the output geometry and a new generation of the
 * conversion pool. Returns 0 or an error (message set). */
int fp__convert_geometry(fp_reader *r, const AVFrame *f);
/* Sets up the scaler for `f` and takes the output image from the pool (+1
 * in *out): the part of a conversion that can fail. The pixels are written
 * by fp__convert_scale. */
int fp__convert_prepare(fp_reader *r, const AVFrame *f, fp_image **out, const char *file,
                        int line, const char *func);
/* Converts `f` into `img` with the scaler `c` (set up by fp__convert_prepare). */
void fp__convert_scale(struct SwsContext *c, const AVFrame *f, fp_image *img);

#endif
