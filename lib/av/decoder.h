/*
 * Private to lib/av: the decoder stage — stream choice, opening the video
 * decoder (thread settings, the get_buffer2 bridge of bridge.c, the size of
 * the decoder pool from the buffers the decoder may hold), sending packets,
 * receiving frames, and the error budget. It reads and writes its own
 * struct only.
 */
#ifndef FRAMEPOOL_AV_DECODER_H
#define FRAMEPOOL_AV_DECODER_H

#include "avpriv.h"
#include "err.h"
#include "framepool/reader.h"

#include <libavformat/avformat.h>

typedef struct fp__decoder {
    int vs;                      /* the stream decoded */
    AVStream *st;                /* borrowed from the input's AVFormatContext */
    AVCodecContext *dec;
    AVFrame *frame;              /* the frame received last */
    fp__bridge *bridge;
    unsigned max_held;           /* the caller's bound (the pool is sized with it) */
    unsigned need;               /* buffers the decoder may hold */
    int threads, zero_copy;
    int lose_frames;             /* a live connection: a buffer the pool could not give
                                    is a lost frame, not the end */
    uint64_t packets, decoded, decode_errors, budget_drops;
    /* the error budget counts from here: a live connection joins a stream
     * anywhere and its decoder rejects what comes before the first keyframe
     * (the open timeout bounds that wait); set at its first frame */
    uint64_t budget_packets0, budget_errors0;
} fp__decoder;

/* Picks the video stream of `ic` (options.stream or the best one), opens
 * its decoder with framepool buffers (DR1 decoders) whose creation site is
 * file:line, sizes the decoder pool. `lose_frames`: see the struct. Returns
 * 0 or an error in *err; fp__decoder_close releases what was made. */
int fp__decoder_open(fp__decoder *d, AVFormatContext *ic, const fp_reader_options *o,
                     int lose_frames, const char *file, int line, const char *func,
                     fp__err *err);
/* Frees the decoder (its references to pool buffers; buffers callers hold
 * keep their pools alive) and drops the bridge. */
void fp__decoder_close(fp__decoder *d);
/* Receives the next frame into d->frame. Returns 1 with a frame, 0 when the
 * decoder needs a packet, 2 at its end (drained), or an error in *err (the
 * error budget was exceeded, or no memory). */
int fp__decoder_receive(fp__decoder *d, fp__err *err);
/* Sends `pkt` (`fresh`: first try, counted in packets; NULL drains).
 * Returns 1 when the packet was taken (or rejected within the error
 * budget), 0 when the decoder is full (receive first, then send it again),
 * or an error in *err. */
int fp__decoder_send(fp__decoder *d, const AVPacket *pkt, int fresh, fp__err *err);
/* Counts a packet or frame rejected with `e` (while `during`) against the
 * error budget. Returns 0 to go on, or the error that ends the reader. */
int fp__decoder_error(fp__decoder *d, int e, const char *during, fp__err *err);
/* Drops the decoder's state (seek). */
void fp__decoder_flush(fp__decoder *d);
/* Frames the pool delivered and someone other than the decoder holds, and
 * buffers only the decoder holds. */
void fp__decoder_counts(fp__decoder *d, unsigned *user_held, unsigned *decoder_only);

#endif
