/*
 * Private to lib/av: the reader object shared by the files of the reader —
 * input.c (inputs, deadlines, interrupt), decoder.c (opening the decoder),
 * convert.c (swscale, geometry), ahead.c (the convert-ahead worker) and
 * reader.c (the decode state machine: next, seek, info, stats, close).
 */
#ifndef FRAMEPOOL_AV_READERPRIV_H
#define FRAMEPOOL_AV_READERPRIV_H

#include "ahead.h"
#include "avpriv.h"
#include "convert.h"
#include "decoder.h"
#include "framepool/reader.h"
#include "input.h"
#include "live.h"

#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
#include <pthread.h>
#include <stdatomic.h>

struct fp_reader {
    fp_reader_options opt;
    char errmsg[512];
    char what[160];              /* "open 'x.mp4'" for messages */
    int failed_open;             /* the open failed: only errmsg/close work */
    /* interrupt */
    _Atomic int interrupted;
    _Atomic int int_reason;
    _Atomic int last_reason;     /* cause of the last abort (kept across arm()) */
    _Atomic int64_t deadline_us;
    /* FFmpeg */
    AVFormatContext *ic;
    AVIOContext *avio;           /* custom input (memory or callbacks), owned */
    fp__mem_input mem;
    fp_reader_read_fn io_read;
    fp_reader_seek_fn io_seek;
    void *io_user;
    AVStream *st;
    int vs;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    struct SwsContext *sws;
    fp__bridge *bridge;
    fp_pool *out_pool;           /* conversion output pool */
    /* state */
    int pkt_pending;             /* pkt holds a packet the decoder has not taken */
    int demux_eof, drain_sent, done;
    int64_t start_pts;           /* stream start time in time base (0 if unknown) */
    int64_t skip_until;          /* precise seek/start: drop frames with pts < this */
    int64_t end_pts;             /* INT64_MAX: no end */
    int64_t next_index;          /* index of the next decoded frame */
    int index_from_time;         /* after a seek: estimate indices from timestamps */
    double fps;
    int cur_w, cur_h, cur_fmt;   /* size/format of the last decoded frame */
    int out_w, out_h;            /* current output size (converted) */
    fp_pixfmt out_fmt;
    unsigned max_held, decoder_need;
    int threads, zero_copy;
    const char *site_file, *site_func;
    int site_line;
    /* converting ahead: the reader's own thread converts job_src into job_dst
     * while the caller's thread decodes the next frame */
    int ahead;                   /* converting ahead is in effect */
    int ahead_started;           /* the thread, mutex and condition exist */
    int ahead_failed;            /* the thread could not start: convert on the caller's */
    pthread_t ahead_th;
    pthread_mutex_t ahead_mu;
    pthread_cond_t ahead_cv;
    int ahead_state;             /* AHEAD_*, guarded by ahead_mu */
    int job_busy;                /* a job was posted and its image not yet collected */
    AVFrame *job_src;            /* the decoded frame being converted (the reader's ref) */
    fp_image *job_dst;           /* +1: its pooled output, metadata already set; the worker
                                    uses r->sws, which only changes once it is collected */
    int pending_rc;              /* error met decoding ahead: returned by the next call */
    char pending_msg[512];
    /* options.loop (input.c): the packets of each pass after the first are shifted by
     * loop_off so that the decoder sees one stream whose pts keep growing */
    int loop_left;               /* passes still to play after this one; -1 = forever */
    uint64_t loops;              /* rewinds done */
    int64_t loop_off;            /* added to the pts and dts of this pass's packets */
    int64_t pass_end;            /* largest raw pts + duration of this pass (or INT64_MIN) */
    uint64_t pass_packets;       /* packets of the stream read in this pass */
    int64_t first_dts;           /* raw dts (else pts) of the first packet read: the rewind
                                    target (MPEG-TS seeks by dts; the start_time is a pts) */
    int loop_rc;                 /* a rewind failed: the end of the stream returns this */
    char loop_msg[512];
    /* options.loop_cache (input.c): the packets of one whole pass, kept (+1 refs,
     * their own timestamps) so that later passes replay them instead of rewinding */
    int lc_state;                /* FP__LC_* */
    int lc_replay;               /* this pass comes from the kept packets */
    AVPacket **lc_pkts;
    size_t lc_n, lc_cap, lc_pos; /* kept, allocated, next to replay */
    int64_t lc_bytes;            /* counted against fp__loop_cache_bound */
    uint64_t loops_replayed;     /* rewinds served from memory */
    /* statistics */
    uint64_t packets, decoded, delivered, skipped, corrupt, decode_errors, size_changes, wrapped;
    uint64_t budget_drops;       /* live connection: frames lost to a pool that could not grow */
    /* wall clock (CLOCK_REALTIME s) when recent packets of the stream were read,
     * by pts: a decoded frame takes the arrival time of its packet */
    struct { int64_t pts; double wall; } wall_ring[32];
    unsigned wall_pos;
    double wall_last;            /* arrival of the newest packet */
    /* live sources (live.c) */
    struct fp__live *live;       /* the live state of a live reader (NULL otherwise) */
    _Atomic int *abort_flag;     /* a live reader's connection: non-zero aborts every
                                    blocking FFmpeg call (the live reader is closing) */
    _Atomic int64_t stall_deadline_us; /* a live reader's connection: CLOCK_MONOTONIC us by
                                    which the next frame must come, else the blocking call
                                    aborts with FP_ETIMEDOUT (0 = none) */
};

enum {
    FP__LC_NEVER,   /* no loop, loop_cache -1, an input larger than the bound or of
                       unknown size, or a pass over the bound: always rewind */
    FP__LC_FILLING, /* keeping the packets of this pass, from its first */
    FP__LC_IDLE,    /* a seek dropped a part-kept pass: keep the next whole one */
    FP__LC_FULL,    /* a whole pass is kept: rewinds replay it */
};

/* options.loop_cache in bytes: 0 when passes are never kept. */
static inline int64_t fp__loop_cache_bound(const fp_reader_options *o)
{
    return o->loop_cache == 0 ? FP_LOOP_CACHE_DEFAULT : o->loop_cache < 0 ? 0 : o->loop_cache;
}

/* Native output: the decoder's own frames, no conversion (format
 * FP_PIX_NONE and no output size). */
static inline int fp__native_output(const fp_reader_options *o)
{
    return o->format == FP_PIX_NONE && !o->width && !o->height;
}

/* Sets the reader's message to "<what>: <fmt...>" and returns `code`. */
__attribute__((format(printf, 3, 4))) int fp__reader_fail(fp_reader *r, int code,
                                                          const char *fmt, ...);
/* Creates the reader object (+1 in *out; NULL only when that allocation
 * failed), copies and checks the options. `what` starts every message (e.g.
 * "open 'x.mp4'"). Returns 0 or the error of the options check. */
int fp__reader_begin(fp_reader **out, const fp_reader_options *opts, const char *what,
                     const char *file, int line, const char *func);
/* An open failed with `rc`: releases the FFmpeg state now and keeps the
 * reader as the holder of its message. Returns rc. */
int fp__reader_open_failed(fp_reader *r, int rc);
/* Counts a rejected packet or frame (`e`, met while `during`) against the
 * error budget. Returns 0 to go on, or the error that ends the reader. */
int fp__reader_decode_error(fp_reader *r, int e, const char *during);

#endif
