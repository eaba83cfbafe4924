/*
 * Private to lib/av: the reader's input stage — files, memory, callbacks,
 * URLs; the interrupt callback and the deadlines armed before every blocking
 * libavformat call, and the errors of those calls; reading packets of the
 * chosen stream; options.loop and its loop cache; the wall-clock arrival
 * time of recent packets. It reads and writes its own struct only.
 */
#ifndef FRAMEPOOL_AV_INPUT_H
#define FRAMEPOOL_AV_INPUT_H

#include "avpriv.h"
#include "err.h"
#include "framepool/reader.h"
#include "redact.h" /* fp__url_redact, for every message that shows the URL */

#include <libavformat/avformat.h>
#include <stdatomic.h>

/* Why the interrupt callback aborted a blocking call. */
enum { FP__INT_NONE = 0, FP__INT_CANCEL = 1, FP__INT_TIMEOUT = 2, FP__INT_STALL = 3 };

/* fp__input_read_packet: the demuxer rejected a packet (in->rejected holds
 * the AVERROR): count it against the error budget and read again. */
#define FP__INPUT_REJECTED 2

/* A memory input (fp_reader_open_memory): borrowed bytes and a position. */
typedef struct fp__mem_input {
    const uint8_t *data;
    size_t len, pos;
} fp__mem_input;

typedef struct fp__input {
    /* set up by fp__input_init */
    int64_t timeout_us;          /* options.timeout_us */
    const char *av_options;      /* borrowed for the open */
    int loop;                    /* options.loop */
    int64_t cache_bound;         /* options.loop_cache in bytes (0: never keep) */
    _Atomic int *interrupted;    /* the owner's interrupt request: set by another thread,
                                    consumed when reported as FP_ECANCELED */
    _Atomic int *abort_flag;     /* NULL, or non-zero aborts every blocking call */
    /* interrupt */
    _Atomic int int_reason;
    _Atomic int last_reason;     /* cause of the last abort (kept across arm()) */
    _Atomic int64_t deadline_us;
    _Atomic int64_t stall_deadline_us; /* CLOCK_MONOTONIC us by which the next packet must
                                    come, else the blocking call aborts (0 = none) */
    /* a live connection's read-ahead (readahead.c): while it runs, its thread
     * alone calls the demuxer, whose blocking calls then abort only on the
     * interrupt, the abort flag or ra_quit; the deadlines bound the wait for
     * the queue instead */
    struct fp__readahead *ra;
    _Atomic int ra_on, ra_quit;
    /* FFmpeg */
    AVFormatContext *ic;
    AVIOContext *avio;           /* custom input (memory or callbacks), owned */
    fp__mem_input mem;
    fp_reader_read_fn io_read;
    fp_reader_seek_fn io_seek;
    void *io_user;
    /* the stream read (fp__input_set_stream) */
    int vs;
    AVRational tb;
    int64_t start_pts;
    double fps;
    int rejected;                /* the AVERROR of a packet the demuxer rejected */
    /* options.loop: the packets of each pass after the first are shifted by
     * loop_off so that the decoder sees one stream whose pts keep growing */
    int loop_left;               /* passes still to play after this one; -1 = forever */
    uint64_t loops;              /* rewinds done */
    int64_t loop_off;            /* added to the pts and dts of this pass's packets */
    int64_t pass_end;            /* largest raw pts + duration of this pass (or INT64_MIN) */
    uint64_t pass_packets;       /* packets of the stream read in this pass */
    int64_t first_dts;           /* raw dts (else pts) of the first packet read: the rewind
                                    target (MPEG-TS seeks by dts; the start_time is a pts) */
    /* options.loop_cache: the packets of one whole pass, kept (+1 refs, their
     * own timestamps) so that later passes replay them instead of rewinding */
    int lc_state;                /* FP__LC_* */
    int lc_replay;               /* this pass comes from the kept packets */
    AVPacket **lc_pkts;
    size_t lc_n, lc_cap, lc_pos; /* kept, allocated, next to replay */
    int64_t lc_bytes;            /* counted against cache_bound */
    uint64_t loops_replayed;     /* rewinds served from memory */
    /* wall clock (CLOCK_REALTIME s) when recent packets of the stream were
     * read, by pts: a decoded frame takes the arrival time of its packet */
    struct { int64_t pts; double wall; unsigned gap; } wall_ring[32];
    unsigned wall_pos;
    double wall_last;            /* arrival of the newest packet */
} fp__input;

enum {
    FP__LC_NEVER,   /* no loop, loop_cache -1, an input larger than the bound or of
                       unknown size, or a pass over the bound: always rewind */
    FP__LC_FILLING, /* keeping the packets of this pass, from its first */
    FP__LC_IDLE,    /* a seek dropped a part-kept pass: keep the next whole one */
    FP__LC_FULL,    /* a whole pass is kept: rewinds replay it */
};

/* Sets up an input with the options `o` (borrowed for the open), the
 * owner's interrupt flag and an optional abort flag (both borrowed for the
 * input's life). */
void fp__input_init(fp__input *in, const fp_reader_options *o, _Atomic int *interrupted,
                    _Atomic int *abort_flag);
/* Opens `url` (files and URLs: pre-checks of local files, FFmpeg options,
 * the interrupt callback, stream info). Returns 0 or an error in *err. */
int fp__input_open_url(fp__input *in, const char *url, fp__err *err);
/* The same over `len` bytes at `buf` (borrowed) or over callbacks. */
int fp__input_open_memory(fp__input *in, const void *buf, size_t len, fp__err *err);
int fp__input_open_io(fp__input *in, fp_reader_read_fn read, fp_reader_seek_fn seek,
                      void *user, fp__err *err);
/* After the decoder chose the stream: which one to read, its time base,
 * start and frame rate. Decides whether options.loop_cache keeps passes. */
void fp__input_set_stream(fp__input *in, int vs, int64_t start_pts, double fps);
/* Closes the input and releases the kept packets. */
void fp__input_close(fp__input *in);

/* Sets the stall deadline (CLOCK_MONOTONIC us, 0 = none). Any thread. */
void fp__input_set_stall_deadline(fp__input *in, int64_t until_us);
/* The cause of the last abort (FP__INT_*). */
int fp__input_last_reason(const fp__input *in);
/* Whether a blocking call of this input can seek (a custom input without a
 * seek callback cannot). */
int fp__input_seekable(const fp__input *in);

/* Maps the error `e` of a blocking libavformat call made while `during`
 * to a framepool code with a message in *err, telling an interrupt
 * (FP_ECANCELED) from a deadline (FP_ETIMEDOUT). Returns the code. */
int fp__input_error(fp__input *in, int e, const char *during, fp__err *err);

/* The arrival wall-clock time (CLOCK_REALTIME s) of the packet with `pts`,
 * or of the newest packet when it is no longer known. */
double fp__input_wall_time(const fp__input *in, int64_t pts);
/* The count of packets of the stream the read-ahead dropped just before
 * the packet with `pts` (recent packets only), handed out once (0 after). A
 * frame index goes on by it, so that gaps in indices are frames lost. */
unsigned fp__input_take_gap(fp__input *in, int64_t pts);
/* Reads the next packet of the stream into `pkt`. Returns 1 with a packet,
 * 0 at the end of input, FP__INPUT_REJECTED (a corrupt packet: count it and
 * call again), or a negative error in *err. */
int fp__input_read_packet(fp__input *in, AVPacket *pkt, fp__err *err);
/* Seeks the demuxer to the keyframe at or before `ts` (stream time base),
 * bounded by the deadline and interrupt. Returns 0 or an error in *err
 * ("<during>: ..."). */
int fp__input_seek(fp__input *in, int64_t ts, const char *during, fp__err *err);
/* The demuxer call itself: the next packet of the stream into `pkt`, as
 * the container gives it. 1, 0 at the end of input, FP__INPUT_REJECTED
 * (the AVERROR in *rejected), or a negative error in *err. */
int fp__input_demux(fp__input *in, AVPacket *pkt, int *rejected, fp__err *err);

/* ---- a live connection's read-ahead (readahead.c) ---- */

/* A read-ahead's counts, readable from any thread at any time (a live
 * reader keeps one for all its connections, so that they go on across
 * them): packets of the stream dropped, packets queued now. */
typedef struct fp__backlog {
    _Atomic uint64_t dropped;
    _Atomic unsigned queued;
} fp__backlog;

/*
 * Starts the thread that drains the demuxer of an opened input (its stream
 * set) into a queue of at most max_bytes of packets (and 1024 packets);
 * from then on fp__input_read_packet takes packets from that queue, waiting
 * up to the stall deadline (FP_ETIMEDOUT, last reason FP__INT_STALL). When
 * behind: `latest` drops the packets before a newer queued keyframe; else the
 * oldest packets go a GOP at a time once the bound is reached. Returns 0 or
 * an error in *err. `counts` (borrowed for the input's life; NULL = its
 * own) receives the counts. Stopped (joined) by fp__input_close. */
int fp__readahead_start(fp__input *in, size_t max_bytes, int latest, fp__backlog *counts,
                        fp__err *err);
void fp__readahead_stop(fp__input *in);
/* The next queued packet (moved into pkt) with its arrival time in *wall
 * and the count of packets dropped just before it in *gap; what
 * fp__input_read_packet returns. */
int fp__readahead_pop(fp__input *in, AVPacket *pkt, double *wall, unsigned *gap, fp__err *err);
/* The counts (NULL without a read-ahead). */
const fp__backlog *fp__readahead_counts(const fp__input *in);

/* options.loop: whether the end of this pass starts another one. */
int fp__input_loops_left(const fp__input *in);
/* options.loop: no more passes (a rewind failed). */
void fp__input_stop_loop(fp__input *in);
/* options.loop, at the end of a pass: seeks the demuxer back to the start
 * of the stream (or replays the kept pass) and shifts the next pass's
 * packets to begin where this pass ended. Returns 0, or an error in *err
 * (FP_EIO for an input that cannot seek or a pass without a packet). */
int fp__input_rewind(fp__input *in, fp__err *err);
/* options.loop, after a seek: the input's own timestamps again. */
void fp__input_loop_reset(fp__input *in);

#endif
