/*
 * Private to lib/av: live sources (fp_reader_options.live) — the reader's
 * thread that connects, drains, decodes and reconnects; the bounded frame
 * queue between it and the caller; stall detection; events; rebased
 * timestamps. A live reader is an fp_reader whose `live` field is set; each
 * connection is an ordinary (file-semantics) fp_reader owned by the thread.
 */
#ifndef FRAMEPOOL_AV_LIVE_H
#define FRAMEPOOL_AV_LIVE_H

#include "framepool/reader.h"

struct fp__live;

/* Checks the live options (message set in r on error). Returns 0 or FP_EINVAL. */
int fp__live_check(fp_reader *r, const fp_reader_options *o);
/* fp_reader_open for a live source: starts the thread and returns at once. */
int fp__live_open(const char *url, const fp_reader_options *opts, fp_reader **out,
                  const char *file, int line, const char *func);
/* fp_reader_next, fp_reader_info, fp_reader_stats of a live reader. */
int fp__live_next(fp_reader *r, fp_image **img);
int fp__live_info(const fp_reader *r, fp_reader_info *out);
int fp__live_stats(fp_reader *r, fp_reader_stats *out);
/* fp_reader_interrupt of a live reader: wakes the caller and the backoff. */
void fp__live_interrupt(fp_reader *r);
/* Stops and joins the thread, releases the queue and the live state (close). */
void fp__live_stop(fp_reader *r);

#endif
