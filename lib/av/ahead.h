/*
 * Private to lib/av: converting ahead (fp_reader_options.convert_ahead) —
 * the reader's own worker thread converts one frame while the caller's
 * thread decodes the next. One job at most is in flight; the worker uses
 * r->sws, which only changes once the job is collected.
 */
#ifndef FRAMEPOOL_AV_AHEAD_H
#define FRAMEPOOL_AV_AHEAD_H

#include "avpriv.h"
#include "framepool/reader.h"

/* Starts the worker on first use. Returns 1 when it runs, 0 when conversion
 * has to stay on the caller's thread. */
int fp__ahead_start(fp_reader *r);
/* Hands `f` (its reference moves to the job) and `img` (+1, metadata set)
 * to the worker. */
void fp__ahead_post(fp_reader *r, AVFrame *f, fp_image *img);
/* Waits for the job in flight and returns its image (+1), or NULL if none. */
fp_image *fp__ahead_collect(fp_reader *r);
/* Makes `img`, collected from the worker, the job in flight again. */
void fp__ahead_putback(fp_reader *r, fp_image *img);
/* Drops the frame in flight and any error kept from decoding ahead (seek). */
void fp__ahead_discard(fp_reader *r);
/* Drops the job in flight and joins the worker (close). */
void fp__ahead_stop(fp_reader *r);

#endif
