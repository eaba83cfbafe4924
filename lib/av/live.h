/*
 * Private to lib/av: live sources (fp_reader_options.live), a source type
 * of the public reader (source.h) built on the engine's connection
 * interface (engine.h): the reader's thread that connects, drains, decodes
 * and reconnects; the bounded frame queue between it and the caller; stall
 * detection; events; rebased timestamps.
 */
#ifndef FRAMEPOOL_AV_LIVE_H
#define FRAMEPOOL_AV_LIVE_H

#include "err.h"
#include "framepool/reader.h"
#include "source.h"

/* Checks the live options. Returns 0 or FP_EINVAL (message in *err). */
int fp__live_check(const fp_reader_options *o, fp__err *err);
/* Opens a live source over `url` (options checked): starts the thread and
 * returns at once with *out (a source for fp__live_ops), or an error whose
 * whole message is in *err. */
int fp__live_open(const char *url, const fp_reader_options *opts, const fp__source_ctx *ctx,
                  void **out, fp__err *err);

#endif
