/*
 * Private to lib/av: the reader's input — files, memory, callbacks, URLs,
 * the interrupt callback and the deadline armed before every blocking
 * libavformat call, and errors of those calls.
 */
#ifndef FRAMEPOOL_AV_INPUT_H
#define FRAMEPOOL_AV_INPUT_H

#include "avpriv.h"
#include "framepool/reader.h"
#include "redact.h" /* fp__url_redact, for every message that shows the URL */

#include <libavformat/avformat.h>

/* Why the interrupt callback aborted a blocking call (fp_reader.int_reason). */
enum { FP__INT_NONE = 0, FP__INT_CANCEL = 1, FP__INT_TIMEOUT = 2, FP__INT_STALL = 3 };

/* A memory input (fp_reader_open_memory): borrowed bytes and a position. */
typedef struct fp__mem_input {
    const uint8_t *data;
    size_t len, pos;
} fp__mem_input;

/* Before every blocking libavformat call: clears the abort reason and arms
 * the timeout_us deadline. */
void fp__input_arm(fp_reader *r);
/* After a blocking call: disarms the deadline. An interrupt stays pending
 * until it is reported as FP_ECANCELED. */
void fp__input_disarm(fp_reader *r);
/* Maps the error `e` of a blocking libavformat call made while `during`
 * to a framepool code with a message in the reader, telling an interrupt
 * (FP_ECANCELED) from a deadline (FP_ETIMEDOUT). Returns the code. */
int fp__input_error(fp_reader *r, int e, const char *during);
/* Maps an AVERROR code to a framepool error code. */
int fp__averror_map(int e);
/* Opens `url` into the reader made by fp__reader_begin (files and URLs:
 * pre-checks of local files, FFmpeg options from opts.av_options, the
 * interrupt callback, stream info, the decoder). Returns 0 or an error with
 * the message set; the caller then calls fp__reader_open_failed. */
int fp__input_open_url(fp_reader *r, const char *url);
/* The arrival wall-clock time (CLOCK_REALTIME s) of the packet with `pts`,
 * or of the newest packet when it is no longer known. */
double fp__input_wall_time(const fp_reader *r, int64_t pts);
/* Reads the next packet of the video stream into r->pkt. Returns 1 with a
 * packet, 0 at the end of input, or a negative error (message set). Corrupt
 * packets the demuxer rejects count against the error budget. */
int fp__input_read_packet(fp_reader *r);

/* Seeks the demuxer to the keyframe at or before `ts` (stream time base),
 * bounded by the deadline and interrupt. Returns 0 or an error with the
 * message set ("<during>: ..."). */
int fp__input_seek(fp_reader *r, int64_t ts, const char *during);
/* options.loop, at the end of a pass: seeks the demuxer back to the start
 * of the stream (or replays the kept pass, options.loop_cache) and shifts
 * the next pass's packets to begin where this pass ended. Returns 0, or an
 * error with the message set (FP_EIO for an input that cannot seek or a
 * pass without a packet). */
int fp__input_rewind(fp_reader *r);
/* options.loop, after fp_reader_seek: the input's own timestamps again. */
void fp__input_loop_reset(fp_reader *r);
/* options.loop_cache: releases the kept packets (the reader's close). */
void fp__input_cache_free(fp_reader *r);

#endif
