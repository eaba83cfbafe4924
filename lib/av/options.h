/*
 * Private to lib/av: what the reader's options imply, for every stage.
 */
#ifndef FRAMEPOOL_AV_OPTIONS_H
#define FRAMEPOOL_AV_OPTIONS_H

#include "framepool/reader.h"

/* Native output: the decoder's own frames, no conversion (format
 * FP_PIX_NONE and no output size). */
static inline int fp__native_output(const fp_reader_options *o)
{
    return o->format == FP_PIX_NONE && !o->width && !o->height;
}

/* Converting ahead on the reader's own thread is asked for (and applies). */
static inline int fp__ahead_wanted(const fp_reader_options *o)
{
    return !fp__native_output(o) && o->convert_ahead;
}

#endif
