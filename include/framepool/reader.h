/*
 * framepool/reader.h — fp_reader, the generator-style frame iterator over FFmpeg.
 *
 *   fp_reader *r = NULL;
 *   fp_reader_options o = {0};            // zero = defaults: best stream, native, all frames
 *   o.format = FP_PIX_BGR24;
 *   if (fp_reader_open("in.mp4", &o, &r) < 0) { puts(fp_reader_errmsg(r)); ... }
 *   FP_FOREACH_FRAME(r, img) {             // each step releases the previous frame
 *       use(img);                           // keep one past the step: fp_ref(img)
 *       if (done) break;                    // break and return release it too
 *   }
 *   fp_reader_close(&r);
 *
 * Frames. fp_reader_next(r, &img) REBINDS: it first drops the reference held
 * in *img (like rebinding a name in Python), then stores a new +1 reference
 * to the next frame. A loop that never calls fp_unref cannot leak; a frame
 * kept with fp_ref(img) stays valid (and is never recycled) until its last
 * reference goes, also after fp_reader_close.
 *
 * Native output (options.format == FP_PIX_NONE, no resize) is zero-copy: for
 * decoders that accept custom buffers (AV_CODEC_CAP_DR1, i.e. nearly all of
 * them) the decoder decodes straight into framepool pool buffers, so every
 * byte the decoder holds is counted and bounded. A delivered native image may
 * still be a reference picture of the decoder. framepool expresses that with
 * the reference count, not with a flag: while the decoder uses a buffer it
 * holds one reference of its own, so fp_image_is_writable() is false and
 * fp_image_make_writable() copies; once the decoder lets go, an image you hold
 * alone is writable in place. (FP_IMAGE_READONLY is set only on images
 * wrapping frames of decoders that cannot use framepool buffers, when FFmpeg
 * reports the frame as shared.)
 * Native images of layouts framepool has no enum for (10-bit 4:2:2, planar
 * RGB, ...) have format FP_PIX_OTHER; av_format always holds the
 * AVPixelFormat and fp_image_layout() the planes.
 *
 * Converted output (format set, and/or width/height) goes through swscale into
 * pooled images of the target format; the decoder's frame is released at once.
 * Frames skipped by `every`, `start` or a precise seek are never converted.
 * Conversion uses swscale with options.sws_flags (default SWS_BILINEAR) and
 * BT.601 coefficients, as ffmpeg's own conversion does: BGR24/RGB/GRAY output
 * equals `ffmpeg -pix_fmt bgr24 -sws_flags bilinear` bit for bit (tested).
 * Full-range sources (yuvj*, MJPEG) are expanded correctly to RGB; YUV output
 * keeps the source range, since fp_image carries no range tag (ffmpeg instead
 * compresses full range to limited when asked for yuv420p).
 *
 * Converting ahead (convert_ahead = 1). A converting reader can keep one
 * frame in flight: while the caller works on frame N, the reader's own thread
 * converts frame N+1, and the next fp_reader_next decodes frame N+2 on the
 * caller's thread before it collects N+1. Decoding and conversion then
 * overlap instead of taking turns, and the caller's thread spends only its
 * own work per frame. It pays when the caller's thread works on each frame
 * and cores are idle; for a loop that does nothing with its frames and small
 * frames, where a conversion costs little more than the hand-off to the
 * worker, it can cost throughput (bench/README.md, throughput, has the
 * current figures). It is off by default because it also holds one more
 * output frame and one more decoder frame. Nothing else changes for
 * the caller: the same frames, pixels, order, metadata and errors; an error
 * met while decoding ahead is returned by the call after the one that
 * delivers the frame before it. The extra frames count in the pool caps,
 * not in max_held. The reader owns one thread (signals blocked) that lives
 * until fp_reader_close. Seeking drops the frame in flight.
 *
 * Bounds. The caller may hold at most `max_held` delivered frames at once;
 * fp_reader_next with that many still held returns FP_EHELD (its own code:
 * FP_ELIMIT means a pool bound) without losing the next frame: release one
 * and call again. Pools
 * are sized from the decoder's own need (codec reference frames, reordering
 * delay, frame threads) plus max_held; fp_reader_info reports both.
 *
 * Threads. One reader is used by one thread at a time (not thread-safe),
 * except fp_reader_interrupt, which any thread may call — also while
 * another thread is blocked in fp_reader_open_url on the same reader. Images are ordinary
 * framepool objects: hand them to other threads freely.
 *
 * Errors. Every function returns 0 or a negative FP_E* code;
 * fp_reader_errmsg() names the problem ("open 'x.mp4': no such file", "... no
 * video stream (1 audio stream)", "... unsupported codec", ...).
 */
#ifndef FRAMEPOOL_READER_H
#define FRAMEPOOL_READER_H

#include "image.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fp_reader fp_reader;

/* Default for fp_reader_options.max_held when it is 0. */
#define FP_READER_DEFAULT_MAX_HELD 8
/* Default for fp_reader_options.loop_cache when it is 0: a short clip's
 * compressed stream (2 MiB). */
#define FP_LOOP_CACHE_DEFAULT ((int64_t)2 << 20)
/* Decode errors tolerated before fp_reader_next gives FP_EDECODE: more than
 * this many AND more than 2/3 of the packets sent (ffmpeg's own default
 * max_error_rate). Up to then corrupt packets are counted and skipped. */
#define FP_READER_ERROR_BUDGET_MIN 16

/* ---- live sources -------------------------------------------------------------------------
 *
 * A camera or a stream (rtsp://, http://, tcp://, udp://, ...) drops, stalls,
 * comes back and changes resolution. With options.live.mode set, the reader
 * is a live source:
 *
 *   fp_reader_options o = {0};
 *   o.live.mode = FP_LIVE_LATEST;           // newest frame only: bounded latency
 *   o.live.on_event = log_event;            // optional, on the reader's thread
 *   o.av_options = "rtsp_transport=tcp";    // optional FFmpeg options
 *   fp_reader_open("rtsp://user:pw@cam/live", &o, &r);  // returns at once
 *   fp_image *img = NULL;
 *   while (fp_reader_next(r, &img) > 0) use(img);       // 0 only after GAVE_UP
 *   fp_unref(&img); fp_reader_close(&r);
 *
 * - fp_reader_open returns at once (also when the source is down): it checks
 *   the options, starts the reader's thread and returns 0. Connecting is that
 *   thread's job; an unparsable URL, a refused port or an unreachable host
 *   show up as events (and as fp_reader_errmsg after GAVE_UP), not as an
 *   error of the open. Only bad options (FP_EINVAL) and FP_ENOMEM fail it.
 * - Each connection has two threads: one drains the source all the time
 *   (RTSP/UDP lose packets and RTSP sends no keep-alive when the demuxer is
 *   not read) into a bounded backlog of packets, stamping each with its
 *   arrival (fp_image.wall_time); the reader's thread decodes, converts,
 *   and keeps at most `queue` decoded frames (LATEST: 1).
 * - Backlog. When the caller or the decoder falls behind, packets wait to
 *   be decoded (stats.packets_queued), up to live.buffer bytes (default 8
 *   MiB: seconds of a camera stream; a burst such as an HLS segment that
 *   arrives at once waits there). ALL mode never drops a decoded frame: when
 *   `queue` frames wait for the caller, the reader's thread waits too and
 *   the packets wait behind them; once live.buffer is full, the oldest
 *   packets go a GOP at a time (up to the next keyframe, so that what is
 *   decoded next is clean). LATEST mode replaces the queued frame with each
 *   new one (stats.dropped) and, when a newer keyframe has already arrived,
 *   drops the packets before it undecoded: a decoder that cannot keep up
 *   (a saturated CPU) jumps to the newest picture it can decode cleanly, so
 *   the age of a delivered frame stays within about one keyframe interval
 *   plus decode time. Packets dropped: stats.packets_dropped.
 * - fp_reader_next waits for the next queued frame, up to timeout_us (0 =
 *   without limit): 1 with a frame; FP_ETIMEDOUT when none came in time (the
 *   reader stays usable; reconnecting goes on); FP_ECANCELED after
 *   fp_reader_interrupt; FP_EHELD when the caller holds max_held frames; 0
 *   only after FP_LIVE_GAVE_UP, once the queued frames are delivered. It
 *   never returns 0 while reconnecting.
 * - Reconnecting: forever by default, also when the source is down at start.
 *   The n-th failed try in a row (n = 1, 2, ...; a try that gets no first
 *   frame — refused, timed out, no stream — fails; a connection that
 *   delivered frames and then ended starts a new count as try 1) waits a
 *   uniformly random delay in [d/2, d] (so many readers of one server do
 *   not retry in step). After a connection that delivered (a server that
 *   restarts, a camera that rebooted):
 *     d = reconnect_min / 5                                for n <= 20,
 *     d = min(reconnect_max, reconnect_min * 2^(n-21))     for n > 20;
 *   while no connection has delivered yet (a source down at start, a wrong
 *   URL or password):
 *     d = min(reconnect_max, reconnect_min * 2^(n-1)).
 *   So a server that restarts is tried every 0.05-0.1 s at the defaults for
 *   20 tries (about 1.5 s) and reconnected within 0.1 s of being back: in
 *   time to play before the first keyframe its publisher sends again (an
 *   RTMP server keeps no GOP for late players: a player 0.2 s late waits a
 *   whole GOP); a server that stays down is then tried at reconnect_min and
 *   half as often at each try, down to once every reconnect_max/2 to
 *   reconnect_max seconds (defaults: 15-30 s); one that never worked gets
 *   the doubling from its second try. A wait
 *   costs no CPU (a condition variable) and close ends it at once.
 * - Each connection's open — connect, probe, and up to its first frame — is
 *   bounded by `open_timeout` (default 20 s: an RTMP server's FLV probe takes
 *   about 5 s and an IP camera's first keyframe may come a GOP of 2-5 s
 *   later); the stall limit does not count during it. A connection that
 *   gets no first frame within open_timeout ends as a failed try. The probe
 *   is short (analyzeduration 0.1 s, probesize 500 kB, unless av_options
 *   sets them), so the first frame comes about with the stream's first
 *   keyframe. A picture size the probe did not see (a stream joined between
 *   keyframes whose parameter sets come with them) is not a failure: the
 *   size comes with the first keyframe, and the packets before it are not
 *   counted against the decode error budget. When the open itself fails
 *   with the short probe (no video stream or codec found), the next tries
 *   probe as FFmpeg does by default. Decoding uses one thread
 *   unless options.threads says otherwise (see threads). The time from the
 *   start of a connection's open to its first frame: stats.first_frame and
 *   the CONNECTED event's first_frame (CONNECTED is sent with that frame,
 *   not when the socket opens: nothing should count a connection as up
 *   before it has delivered).
 * - A stall counts as a disconnect: once a connection delivered a frame, no
 *   new frame for `stall` seconds (a server that stopped sending with its
 *   socket open; a frame lost because a shared budget is full counts as a
 *   new frame here: the source is sending; time the reader's thread spends
 *   waiting for the caller in ALL mode does not count), or the same picture
 *   for `stall` seconds (a "connected but dead" camera repeating one frame;
 *   four rows of every frame are hashed; set repeat_ok for sources whose
 *   picture may legitimately stay identical that long).
 * - Every frame carries wall_time (CLOCK_REALTIME when its packet arrived);
 *   `time` and `pts` stay monotonic across reconnects: each connection's
 *   timestamps are rebased to continue after the last frame of the previous
 *   one (plus the wall-clock gap between them), in the time base of the first
 *   connection (fp_reader_info). `index` counts the frames the reader
 *   decoded and the packets it dropped undecoded (stats.packets_dropped), so
 *   within a connection it is the stream's frame number since the
 *   connection's first packet: monotonic, and a gap is frames lost (dropped
 *   packets, LATEST's replaced frames). A new resolution (mid-stream or after a
 *   reconnect) is handled as in a file: a new pool generation, a
 *   FP_LIVE_SIZE_CHANGED event, stats.size_changes.
 * - Events go to live.on_event on the reader's thread with no framepool lock
 *   held (the callback may call fp_reader_get_stats, fp_reader_interrupt, or any
 *   framepool function except fp_reader_close on this reader). A URL in a
 *   message never shows credentials.
 * - Memory is bounded by construction: the decoder's need + queue + max_held
 *   frames per connection (decoder pool, conversion pool), plus live.buffer
 *   bytes of packets (only while behind); give several
 *   readers one fp_budget (options.budget) to cap their pools together.
 *   max_held counts every frame the reader handed out and the caller has
 *   not released (stats.held), whatever connection it came from: frames
 *   kept from before a reconnect stay valid, keep their old pool alive until
 *   released, and count. Native frames (format FP_PIX_NONE) come as
 *   read-only views of the decoder's buffer (zero-copy; the decoder may
 *   keep that buffer as a reference picture after you release the view, and
 *   fp_image_get_pool returns NULL for a view). Each delivered frame carries an fp_on_free
 *   registration (32 bytes, released with the frame) for that count, so the
 *   process's weak slot table (weak.h) exists once a live reader delivered.
 * - fp_reader_interrupt on a live reader makes a waiting (or the next)
 *   fp_reader_next return FP_ECANCELED and cuts a reconnect wait short (the
 *   thread tries again at once); it does not drop a working connection.
 *   fp_reader_close stops the thread at once (ending a blocked connect, read
 *   or backoff through FFmpeg's interrupt callback) and joins it.
 * - fp_reader_seek is not available (FP_EINVAL). Options start and end must
 *   be 0 (FP_EINVAL); `every` applies (skipped frames are never converted);
 *   convert_ahead is ignored (the reader's thread converts anyway).
 * - fp_reader_info gives the current (or last) connection's stream, with the
 *   first connection's time base; FP_EAGAIN before the first connection.
 *   fp_reader_get_stats sums every connection and may be called from any thread
 *   (the on_event callback included) on a live reader.
 */
typedef enum fp_live_mode {
    FP_LIVE_OFF = 0, /* default: file semantics (every frame; end = 0) */
    FP_LIVE_ALL,     /* every frame through a bounded queue; when the caller falls behind
                        longer than live.buffer holds, whole GOPs are dropped */
    FP_LIVE_LATEST   /* only the newest decoded frame: bounded latency (skips to a newer
                        keyframe when decoding falls behind) */
} fp_live_mode;

enum {
    FP_LIVE_CONNECTED = 1, /* a connection delivered its first frame: width x height, and
                              first_frame = seconds from the start of its open (connect,
                              probe, wait for a keyframe) to that frame; message: codec,
                              size, fps, "first frame X s after the open began". A
                              connection that opens but gives no frame is a failed try
                              (RECONNECTING says why), with no CONNECTED or DISCONNECTED */
    FP_LIVE_DISCONNECTED,  /* a connection that had sent CONNECTED ended: error + message
                              say why */
    FP_LIVE_STALLED,       /* no new frame (or the same picture) for `stall` s; a
                              DISCONNECTED follows */
    FP_LIVE_RECONNECTING,  /* waiting `delay` s before try number `attempt` (1, 2, ...);
                              error + message: why the last try failed */
    FP_LIVE_SIZE_CHANGED,  /* frames now have width x height (message says from what) */
    FP_LIVE_GAVE_UP        /* max_reconnects tries failed in a row: the reader is at its end
                              (delivered before fp_reader_next returns 0) */
};

typedef struct fp_live_event {
    int type;              /* FP_LIVE_* */
    int attempt;           /* RECONNECTING, GAVE_UP: tries failed in a row */
    double delay;          /* RECONNECTING: seconds until the next try */
    int error;             /* FP_E* cause (0 if none) */
    int width, height;     /* CONNECTED, SIZE_CHANGED: frame size */
    const char *message;   /* borrowed for the call; never shows URL credentials */
    double first_frame;    /* CONNECTED: seconds from the start of the connection's open to
                              its first decoded frame (as stats.first_frame); 0 otherwise */
} fp_live_event;

typedef void (*fp_live_event_fn)(const fp_live_event *ev, void *user);

typedef struct fp_live_options {
    fp_live_mode mode;          /* FP_LIVE_OFF (default) = not a live source */
    unsigned queue;             /* FP_LIVE_ALL: decoded frames kept ahead (0 = 8, at most
                                   256); LATEST always keeps 1. A burst (HLS: a whole
                                   segment at once) waits as packets (live.buffer), not
                                   here: a bigger queue only costs memory */
    double reconnect_min;       /* seconds: the base of the backoff (0 = 0.5); the first
                                   tries after a connection that delivered wait a fifth
                                   of it; see "Reconnecting" above */
    double reconnect_max;       /* upper bound of the backoff (0 = 30) */
    int max_reconnects;         /* 0 = reconnect forever (default); N = give up after N
                                   failed tries in a row (FP_LIVE_GAVE_UP) */
    double stall;               /* seconds without a new frame (or with the same picture)
                                   that count as a disconnect (0 = 10) */
    int repeat_ok;              /* non-zero: an identical picture is not a stall */
    fp_live_event_fn on_event;  /* may be NULL; called on the reader's thread, no lock held */
    void *user;                 /* passed to on_event */
    double open_timeout;        /* seconds for each connection's connect + probe + first
                                   frame (0 = 20); `stall` counts only after its first frame */
    size_t buffer;              /* bytes of packets that may wait to be decoded (0 = 8 MiB,
                                   at most 1 GiB; 1024 packets at most in any case); see
                                   "Backlog" above. Keep it above a few keyframe intervals
                                   of the stream: ALL drops whole GOPs, and a GOP larger
                                   than the buffer loses its tail */
} fp_live_options;

/* Options; zero means the documented default for every field. */
typedef struct fp_reader_options {
    int stream;          /* video stream index in the container; 0 with
                            `stream_set` unset = best video stream (the default) */
    int stream_set;      /* non-zero: use `stream` as given (a zero struct picks the best) */
    fp_pixfmt format;    /* FP_PIX_NONE = native format, zero-copy (default) */
    int width, height;   /* output size; 0 keeps the source size; one 0 keeps the aspect */
    int every;           /* deliver every Nth frame (by frame index); 0/1 = all */
    double start;        /* seconds: deliver frames with time >= start (precise) */
    double end;          /* seconds: stop before the first frame with time >= end; 0 = no end */
    int threads;         /* decoder threads; 0 = one per CPU (at most 16), as cv::VideoCapture.
                            Files use frame threads (each thread decodes its own picture).
                            Live sources add no decoder delay unless told to: 0 = one
                            thread, N > 1 = N slice threads (the threads share the slices
                            of one picture, so a picture comes out as soon as its packet
                            is decoded; a stream with one slice per picture decodes on
                            one of them), and FFmpeg's low_delay flag where the stream
                            has no reordering (H.264, MPEG-1/2/4). See frame_threads. */
    int frame_threads;   /* live sources with threads > 1: non-zero = frame threads instead
                            of slice threads: more throughput on a stream with one slice
                            per picture (high resolutions a single thread cannot decode
                            at the stream's rate), at the price of delay: each extra
                            thread holds every frame back one frame interval (2 threads
                            at 10 fps: frames 100 ms older in LATEST mode). 0 = slice
                            threads (the default). Files: no effect. */
    unsigned max_held;   /* frames the caller may hold at once; 0 = FP_READER_DEFAULT_MAX_HELD */
    int64_t timeout_us;  /* deadline for the open and for each read (network sources);
                            0 = none */
    int sws_flags;       /* swscale flags for conversion; 0 = SWS_BILINEAR */
    int convert_ahead;   /* converted output only: 1 = convert each frame on the reader's
                            own thread while the caller's thread decodes the next one
                            (frames come out in the same order, with the same pixels);
                            0 = convert on the caller's thread (the default). Costs one
                            more output frame and one more decoder frame held by the
                            reader, and one thread per reader (started at the first
                            converted frame; if it cannot start, conversion stays on the
                            caller's thread). See "Converting ahead" above. */
    int prefill;         /* converted output only: non-zero = allocate the conversion pool
                            to its bound (max_held, +1 when converting ahead) and touch
                            every page before the first frame, so a pipeline that later
                            holds max_held frames never allocates or faults mid-run. The
                            price: the whole bound is resident from the start. */
    fp_live_options live;  /* live sources (cameras, streams): see "live sources" above;
                              zero = a file-like reader */
    const char *av_options; /* FFmpeg options for the input (protocol and demuxer), as
                              "key=value:key=value" (':' separates pairs, '=' a key from
                              its value; a '\' escapes either), e.g.
                              "rtsp_transport=tcp:timeout=5000000" (RTSP over TCP, socket
                              timeout in us), "rtsp_transport=udp", "fifo_size=1000000:
                              overrun_nonfatal=1" (udp), "reconnect=1" (http).
                              Copied by the open; NULL = none. An option FFmpeg does not
                              know makes the open fail with FP_EINVAL naming it (live
                              readers: every connect fails, and the events say so). */
    int loop;              /* files: times to play the input again after its end, as
                              ffmpeg's -stream_loop: 0 = once (the default), N = N more
                              times, -1 = forever. At the end the reader rewinds the
                              demuxer (or replays the pass it kept in memory, see
                              loop_cache) and keeps feeding the same decoder: no drain, no
                              flush, so the clip's last frames come out in order, the
                              decoder keeps its state and tables (a seek-to-0 loop frees
                              and reallocates them at every rewind), and pts, time and
                              index go on growing across passes (each pass starts where
                              the last one ended). stats.loops counts the rewinds; a
                              seek restarts pts at the sought time of the input. Not
                              with start/end or a live source (FP_EINVAL); an input
                              that cannot seek ends with FP_EIO at its first end. */
    int64_t loop_cache;    /* with loop: the most bytes of the stream's compressed
                              packets (their buffers, side data and structs) the reader
                              keeps to play the passes after the first from memory. A
                              clip whose whole pass fits is read from the input once;
                              every later pass replays the kept packets, the same stream
                              to the decoder as a rewind gives, without the rewind (each
                              rewind makes FFmpeg's demuxer free its parser and allocate
                              a new one, which on a short clip moves the heap's
                              high-water mark at random). An input larger than the
                              bound (or of unknown size) is never kept, nor a pass that
                              goes over it: then every end rewinds. 0 = FP_LOOP_CACHE_DEFAULT,
                              N = N bytes, -1 = never keep (always rewind); less than -1
                              is FP_EINVAL. The kept packets are released by
                              fp_reader_close; a seek keeps a whole pass (the next end
                              replays it) and drops a part-kept one (the next whole
                              pass is kept). stats.loops_replayed counts the passes
                              played from memory. */
    fp_budget *budget;     /* may be NULL; the reader takes its own reference (release
                              yours when you like): the reader's pools (decoder and
                              conversion) take their bytes from this budget, shared with
                              other readers and pools. A full budget first frees idle
                              buffers elsewhere; then a file reader's next fails with
                              FP_ELIMIT ("the shared budget is full", with its cap, the
                              bytes in use and the buffer asked for), and a live reader
                              loses that frame and goes on (stats.budget_drops, not a
                              decode error: no reconnect): frames come again when the
                              budget has room (frames released, another reader closed).
                              A lost picture may have been a reference: the frames
                              decoded from it until the next keyframe may be damaged
                              (H.264/HEVC conceal it from another picture) */
} fp_reader_options;

/* Custom input: read up to `size` bytes into `buf`; return the number read,
 * 0 at end of input, or a negative value on error. */
typedef int (*fp_reader_read_fn)(void *user, uint8_t *buf, int size);
/* Custom input: seek like lseek (whence SEEK_SET, SEEK_CUR, SEEK_END) and
 * return the new position, or the total size when whence == FP_READER_SEEK_SIZE
 * (negative if unknown); negative on error. */
typedef int64_t (*fp_reader_seek_fn)(void *user, int64_t offset, int whence);
#define FP_READER_SEEK_SIZE 0x10000

/* Makes a reader with no source yet (+1 in *out; close it with
 * fp_reader_close). Returns 0, FP_EINVAL (out NULL) or FP_ENOMEM (*out NULL).
 * The reader exists before its open so that another thread can interrupt
 * the open (fp_reader_interrupt). Its only uses until fp_reader_open_url:
 * fp_reader_interrupt, fp_reader_errmsg, fp_reader_close; the other calls
 * return FP_EINVAL. The caller's file:line is recorded and given to the
 * frames the reader makes. */
#define fp_reader_new(out) fp_reader_new_at((out), __FILE__, __LINE__, __func__)
FP_API int fp_reader_new_at(fp_reader **out, const char *file, int line, const char *func);

/* Opens `url` on the reader `r` made by fp_reader_new, as fp_reader_open
 * does (same options, errors and messages; a live source returns at once).
 * A reader is opened once: FP_EINVAL when `r` is NULL or was opened before.
 * Interrupt: fp_reader_interrupt(r) from another thread while this call is
 * blocked (connecting to a server, waiting for its first bytes, probing the
 * stream) makes it return FP_ECANCELED as soon as FFmpeg checks its
 * interrupt callback (every protocol wait does), and an interrupt made
 * before the call makes it return FP_ECANCELED at once. After a failure the
 * reader keeps the message for fp_reader_errmsg; close it. Blocking: as
 * fp_reader_open; not thread-safe except for fp_reader_interrupt. */
FP_API int fp_reader_open_url(fp_reader *r, const char *url, const fp_reader_options *opts);

/* Opens `url` (a file path or anything FFmpeg opens: rtsp://, http://, ...)
 * and prepares its video decoder. `opts` may be NULL (all defaults).
 * On success stores the reader in *out and returns 0. On failure returns
 * FP_ENOENT (missing file), FP_EINVAL (bad option, a directory), FP_EFORMAT
 * (empty file, not a media file, unsupported codec, absurd dimensions),
 * FP_ENOSTREAM (no video stream), FP_ETIMEDOUT (timeout_us passed),
 * FP_EIO, FP_ENOMEM — and still stores a closed reader in *out whose only use
 * is fp_reader_errmsg() and fp_reader_close() (so the message survives; *out
 * is NULL only when even that allocation failed). Not thread-safe with
 * respect to the same `out`. Cost: the container probe and stream-info
 * analysis (reads the first packets). The caller's file:line is recorded and
 * given to the frames the reader makes. The same as fp_reader_new followed by
 * fp_reader_open_url; use those two when another thread may have to
 * interrupt the open. */
#define fp_reader_open(url, opts, out) \
    fp_reader_open_at((url), (opts), (out), __FILE__, __LINE__, __func__)
FP_API int fp_reader_open_at(const char *url, const fp_reader_options *opts, fp_reader **out,
                             const char *file, int line, const char *func);

/* As fp_reader_open over `len` bytes at `buf` (borrowed: it must stay valid
 * and unchanged until fp_reader_close). */
#define fp_reader_open_memory(buf, len, opts, out) \
    fp_reader_open_memory_at((buf), (len), (opts), (out), __FILE__, __LINE__, __func__)
FP_API int fp_reader_open_memory_at(const void *buf, size_t len, const fp_reader_options *opts,
                                    fp_reader **out, const char *file, int line,
                                    const char *func);

/* As fp_reader_open over callbacks: `read` is required, `seek` may be NULL
 * (non-seekable input; fp_reader_seek then fails). `user` is passed back to
 * both and must stay valid until fp_reader_close. */
#define fp_reader_open_io(read, seek, user, opts, out) \
    fp_reader_open_io_at((read), (seek), (user), (opts), (out), __FILE__, __LINE__, __func__)
FP_API int fp_reader_open_io_at(fp_reader_read_fn read, fp_reader_seek_fn seek, void *user,
                                const fp_reader_options *opts, fp_reader **out,
                                const char *file, int line, const char *func);

/* Drops the reference in *img (if any; NULL-safe), then decodes up to the
 * next frame to deliver and stores +1 (caller releases, or the next call
 * rebinds) in *img. Returns 1 with a frame, 0 at the end of the stream (or
 * of [start, end)), or a negative error with *img NULL:
 *   FP_EHELD      the caller holds max_held frames: release one, call again
 *                 (no frame is lost);
 *   FP_ELIMIT     a pool bound: a shared budget is full ("the shared budget
 *                 is full", file readers only), or ("the decoder needed more
 *                 than the N buffers its pool allows") a (damaged) stream
 *                 made the decoder keep more pictures than its codec allows:
 *                 the reader is then at its end;
 *   FP_EDECODE    the error budget was exceeded (see FP_READER_ERROR_BUDGET_MIN);
 *   FP_ETIMEDOUT  a read took longer than timeout_us;
 *   FP_ECANCELED  fp_reader_interrupt was called;
 *   FP_EIO, FP_ENOMEM, FP_EINVAL (NULL or closed reader).
 * After an error other than FP_EHELD/FP_ECANCELED/FP_ETIMEDOUT the reader
 * is at its end. Advances the frame tick (fp_frame_tick) once per delivered
 * frame. The caller's file:line becomes the creation site of the frames.
 * Cost: decoding (plus conversion of the delivered frames only). */
#define fp_reader_next(r, img) fp_reader_next_at((r), (img), __FILE__, __LINE__, __func__)
FP_API int fp_reader_next_at(fp_reader *r, fp_image **img, const char *file, int line,
                             const char *func);

/* Iterates over the frames of `r`: declares `img` (fp_image *, scoped to the
 * loop) and runs the body once per frame. Each step releases the previous
 * frame (fp_reader_next rebinds); the final step (end of stream or error)
 * leaves img NULL. Leaving the loop early — `break`, `return`, `goto` out
 * of it — releases the frame it holds too: img carries the cleanup
 * attribute, so an ESC-to-quit loop cannot leak. To keep a frame past its
 * step or past the loop, take fp_ref(img) (yours to release). The error, if
 * any, is fp_reader_errmsg(r) after the loop (the return code is not kept:
 * write the loop with fp_reader_next when you need it). longjmp out of the
 * body skips the cleanup, as it skips every cleanup in C.
 *
 * Compilers. With GCC and Clang (and compilers that define __GNUC__, such
 * as ICX) this is the macro above. Other compilers have no cleanup
 * attribute, and a loop variable that `break` would leak is exactly the bug
 * this macro exists to prevent, so there FP_FOREACH_FRAME is NOT defined
 * (a compile error, not a silent leak); write the loop out instead:
 *
 *   fp_image *img = NULL;
 *   while (fp_reader_next(r, &img) > 0) { ... break; ... }
 *   fp_unref(&img);                        // after the loop: also after a break
 *
 * FP_HAVE_FOREACH_FRAME is defined to 1 where the macro exists. */
#if defined(__GNUC__) || defined(__clang__)
/* The cleanup of FP_FOREACH_FRAME's variable (not for direct use). */
static inline void fp__foreach_frame_release(fp_image **img)
{
    fp_unref(img);
}
#define FP_HAVE_FOREACH_FRAME 1
#define FP_FOREACH_FRAME(r, img)                                                               \
    for (fp_image *img __attribute__((cleanup(fp__foreach_frame_release))) = NULL;             \
         fp_reader_next((r), &img) > 0;)
#endif

enum {
    FP_SEEK_KEY = 0,          /* resume at the key frame at or before the time (fast) */
    FP_SEEK_PRECISE = 1 << 0, /* decode from that key frame, deliver from the first frame
                                 with time >= the target */
};

/* Seeks to `seconds` from the start of the stream. Frames already delivered
 * stay valid. Returns 0, FP_EINVAL (NULL, closed, negative time), FP_EIO
 * (the input cannot seek), FP_ETIMEDOUT, FP_ECANCELED. Frame indices after a
 * seek are estimated from the timestamp and the frame rate. Cost: one
 * container seek and a decoder flush. */
FP_API int fp_reader_seek(fp_reader *r, double seconds, int flags);

typedef struct fp_reader_info {
    int width, height;           /* decoded frame size (source) */
    fp_pixfmt native_format;     /* the decoder's format in framepool terms (OTHER if none) */
    int av_format;               /* its AVPixelFormat */
    const char *av_format_name;  /* e.g. "yuv420p10le" (static) */
    int out_width, out_height;   /* size of delivered frames (= source for native) */
    fp_pixfmt out_format;        /* format delivered (native_format when native) */
    double fps;                  /* average frame rate (0 if unknown) */
    int fps_num, fps_den;        /* the same as a fraction (0/1 if unknown) */
    double duration;             /* seconds (0 if unknown) */
    int64_t frame_count;         /* estimate (container count or duration*fps), -1 if unknown */
    int time_base_num, time_base_den; /* stream time base of fp_image.pts */
    int sar_num, sar_den;        /* sample (pixel) aspect ratio, 0/1 if unknown */
    int stream_index;
    const char *codec;           /* decoder name, e.g. "h264" (static) */
    const char *container;       /* demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2" (static) */
    int threads;                 /* decoder threads in use */
    int zero_copy;               /* 1: native frames are decoded into framepool pools */
    unsigned decoder_buffers;    /* buffers the decoder may hold (its need: refs, delay, threads) */
    unsigned max_held;           /* frames the caller may hold */
    unsigned pool_max_buffers;   /* cap of the decoder pool: decoder_buffers (+ max_held + 1
                                    when native) */
    unsigned out_pool_max_buffers; /* cap of the conversion pool (0 when native): max_held,
                                      + 1 when converting ahead */
    int convert_ahead;           /* 1: frames are converted on the reader's own thread, one
                                    frame ahead (see fp_reader_options.convert_ahead) */
} fp_reader_info;

/* Fills *out. Returns 0 or FP_EINVAL (NULL or a reader whose open failed).
 * The strings are static or live as long as the reader. Reads the reader
 * only (nothing changes, not even fp_reader_errmsg); before the first frame
 * the out_* fields say what the first converted frame will get. Not
 * thread-safe with respect to other calls on the same reader. */
FP_API int fp_reader_info_get(const fp_reader *r, fp_reader_info *out);
#define fp_reader_info(r, out) fp_reader_info_get((r), (out))

typedef struct fp_reader_stats {
    uint64_t packets;         /* packets of the stream sent to the decoder */
    uint64_t decoded;         /* frames out of the decoder */
    uint64_t delivered;       /* frames handed to the caller */
    uint64_t skipped;         /* decoded frames dropped by every/start/end/precise seek */
    uint64_t corrupt;         /* delivered or skipped frames with concealed errors */
    uint64_t decode_errors;   /* packets or frames the decoder rejected */
    uint64_t size_changes;    /* mid-stream resolution/format changes */
    uint64_t wrapped;         /* frames delivered by wrapping FFmpeg memory (non-DR1) */
    uint64_t loops;           /* rewinds done for options.loop */
    uint64_t loops_replayed;  /* of those, passes replayed from the packets kept in memory
                                 (options.loop_cache) instead of rewinding the input */
    unsigned held;            /* frames the caller holds now */
    unsigned decoder_held;    /* decoder pool buffers only the decoder references now */
    fp_pool_stats pool;       /* the decoder pool (native frames) */
    fp_pool_stats out_pool;   /* the conversion pool (zero when native) */
    /* live sources (zero otherwise) */
    uint64_t reconnects;      /* connection tries after the first (successful or not) */
    uint64_t connects;        /* connections that delivered a frame (one CONNECTED each) */
    uint64_t dropped;         /* LATEST: decoded frames replaced by a newer one before the
                                 caller took them (ALL never drops a decoded frame) */
    uint64_t stalls;          /* stalls detected (no new frame / same picture) */
    uint64_t budget_drops;    /* frames lost because a pool could not grow (the shared
                                 budget was full): the stream goes on without them (not
                                 decode errors) */
    int connected;            /* 1 from a connection's first frame (CONNECTED) to its end */
    unsigned queued;          /* frames waiting in the queue now */
    double age_last;          /* seconds: wall clock at delivery - wall_time, last frame */
    double age_max;           /* the largest age_last so far */
    double first_frame;       /* live: seconds from the start of the last connection's open
                                 to its first frame (0 before any) */
    uint64_t packets_dropped; /* live: packets of the stream dropped before decoding (see
                                 "Backlog"): LATEST skipping to a newer keyframe that had
                                 arrived, ALL a GOP at a time when live.buffer was full */
    unsigned packets_queued;  /* live: packets waiting to be decoded now (the backlog) */
} fp_reader_stats;

/* Fills *out with a snapshot. Returns 0 or FP_EINVAL. Not thread-safe with
 * respect to other calls on the same reader (fp_reader_interrupt excepted). */
FP_API int fp_reader_get_stats(fp_reader *r, fp_reader_stats *out);

/* Writes `url` to out[cap] (truncated, always NUL-terminated when cap > 0)
 * with every user-info FFmpeg would parse ("scheme://user:pass@host",
 * "rtsp:/user:pass@host", "rtsp:user:pass@host", nested "cache:http://...")
 * replaced by three stars — the form every framepool message, event and log
 * line shows. Anything else (file names, an '@' in a path or query) is
 * copied as is. Returns the length of the whole result, like snprintf (so
 * a return >= cap means it was truncated); NULL url gives "(null)".
 * Thread-safe, no allocation. For applications and bindings that show a
 * source's name (the Python binding's repr). */
FP_API size_t fp_url_redact(const char *url, char *out, size_t cap);

/* Returns the message of the reader's last error ("" if none; "no reader"
 * for NULL). Borrowed: valid until the next call on the reader. A URL in a
 * message never shows credentials: its user-info is replaced by stars
 * ("open 'rtsp://" "***@cam:554/live': ..."); file names are shown as they are.
 * The same text also goes to the calling thread's fp_errmsg() channel. */
FP_API const char *fp_reader_errmsg(const fp_reader *r);

/* Makes the blocking call in progress on `r` (or the next one) return
 * FP_ECANCELED as soon as FFmpeg checks its interrupt callback (network and
 * file protocols check it in every wait). That includes fp_reader_open_url
 * on a reader made by fp_reader_new: an open blocked in the network ends
 * with FP_ECANCELED. Any thread may call it, at any time between
 * fp_reader_new and fp_reader_close (not concurrently with the close); it
 * only stores a flag (and, on a live reader, wakes its waits). The reader
 * stays usable. NULL-safe. */
FP_API void fp_reader_interrupt(fp_reader *r);

/* Closes the reader and sets *r to NULL (NULL-safe). Frames the caller still
 * holds stay valid: their pools live until the last one is released. */
FP_API void fp_reader_close(fp_reader **r);

#ifdef __cplusplus
}
#endif
#endif
