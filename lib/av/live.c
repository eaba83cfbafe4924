/*
 * Live sources (fp_reader_options.live): a reader whose own thread connects
 * to a camera or stream, drains it all the time, decodes, and hands frames
 * to the caller through a bounded queue; it detects stalls, reconnects with
 * jittered exponential backoff, rebases timestamps across connections and
 * reports what happens as events.
 *
 * Shape. A source type of the public reader (source.h): the caller's
 * fp_reader holds an fp__live. Each connection is a file/stream engine
 * opened, read and closed by the live thread only, through the engine's
 * connection interface (engine.h): its open and each read are bounded by a
 * deadline, every blocking call aborts when the live reader closes (L->stop),
 * and each read says why the connection ended (fp__conn_end).
 *
 * Locking. L->mu guards the queue, the statistics and the flags below it.
 * Nothing is released (fp_unref) and no event is delivered while L->mu is
 * held: a release may run user callbacks (fp_on_free, weak maps) and events
 * are user callbacks. Lock order: L->mu, then a connection's bridge mutex or
 * a pool's lock (counting the frames the caller holds).
 */
#define _POSIX_C_SOURCE 200809L
#include "live.h"

#include "avpriv.h"
#include "engine.h"
#include "options.h"

#include "framepool/weak.h"
#include "log_priv.h"
#include "typestat.h"

#include <errno.h>
#include <libavutil/imgutils.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define LIVE_QUEUE_DEFAULT 8u
#define LIVE_QUEUE_MAX 256u
#define LIVE_BUFFER_DEFAULT ((size_t)8 << 20)
#define LIVE_BUFFER_MAX ((size_t)1 << 30)
#define LIVE_MSG 512

typedef struct live_slot {
    fp_image *img;
    uint64_t conn; /* the connection it came from */
} live_slot;

typedef struct fp__live {
    char errmsg[LIVE_MSG];       /* the caller's side: fp_reader_errmsg */
    char what[160];              /* "read '...'" for the caller's messages */
    char open_what[160];         /* "open '...'" (no credentials): each connection's */
    _Atomic int *interrupted;    /* the reader's interrupt request (borrowed) */
    unsigned max_held;           /* the caller's bound */
    fp_budget *budget;           /* options.budget: a reference of the live reader's own */
    fp_live_options lo;          /* with defaults filled in */
    fp_reader_options iopt;      /* options of each connection */
    char *url;                   /* copies owned by this object (same allocation) */
    char *av_options;
    char shown[256];             /* the URL without credentials */
    const char *site_file, *site_func;
    int site_line;
    int64_t timeout_us;          /* the caller's per-next deadline */
    pthread_t th;
    int started;
    _Atomic int stop;            /* close: every blocking call of the thread aborts */
    pthread_mutex_t mu;
    pthread_cond_t cv_frame;     /* the caller waits for a frame (or the end) */
    pthread_cond_t cv_wake;      /* the thread waits (backoff, caller behind) */
    /* ---- guarded by mu ---- */
    int kick;                    /* fp_reader_interrupt: end the backoff now */
    int ended;                   /* GAVE_UP: no more frames will come */
    int end_rc;
    char end_msg[LIVE_MSG];
    unsigned qcap, qhead, qlen;
    live_slot *q;
    uint64_t conn_id;            /* current connection number (1, 2, ...) */
    struct live_held *held;      /* +1: frames handed to the caller, not yet released */
    fp_reader_stats base;        /* sums over closed connections */
    fp_reader_stats cur;         /* the current connection's last snapshot */
    uint64_t reconnects, connects, dropped, stalls, delivered, size_changes;
    fp__backlog backlog;         /* every connection's read-ahead counts (packets dropped over
                                   all of them, queued now) */
    _Atomic uint64_t conn_budget_drops; /* the current connection's budget_drops, stored by it
                                   as they happen (written by the thread, outside mu while
                                   it reads; reset under mu when the connection ends) */
    int connected;
    double age_last, age_max;
    double first_frame;          /* seconds from the last connection's open to its first frame */
    fp_reader_info info;
    int have_info;
    /* ---- the thread's own ---- */
    uint64_t rng;
    int64_t frame_index;         /* index given to the next frame */
    int64_t conn_index0;         /* the current connection's index 0 in the reader's count */
    int have_last;               /* a frame was produced before (timestamps) */
    double last_time;            /* time of the last frame produced */
    int64_t last_pts;
    int64_t last_mono;           /* CLOCK_MONOTONIC us of the last frame produced */
    AVRational tb0;              /* time base of the first connection */
    int64_t pts_origin;          /* pts of time 0 in tb0 */
    int size_w, size_h;          /* source size of the last frame (0: none yet) */
    int64_t read_deadline;       /* CLOCK_MONOTONIC us by which the next frame must come */
    int64_t open_start;          /* CLOCK_MONOTONIC us when the current connection's open began */
    int long_probe;              /* a short probe missed the parameters: FFmpeg's default from now */
    char probe_opts[1024];       /* the short probe's options, then the caller's ("" = none) */
} fp__live;

static void live_finalize(void *obj)
{
    (void)obj;
}
static const fp_type live_type = {"fp_live", live_finalize};

/* The count of frames the caller holds, whatever connection they came from,
 * and the headers of native frames' views to reuse. Each delivered frame
 * holds a reference to it and gives both back when the frame dies (a view's
 * own last release, a converted frame's fp_on_free callback), so it outlives
 * the reader while the caller keeps frames. */
typedef struct live_view live_view;
typedef struct live_held {
    _Atomic unsigned n;
    pthread_mutex_t mu;          /* guards the free list */
    live_view *free;             /* headers of views that died, to reuse */
    unsigned nfree, free_cap;    /* at most free_cap kept (queue + max_held) */
} live_held;

/* The view of a native frame handed to the caller: an fp_image without
 * pixels of its own (fp_image_wrap's shape) that knows whom to give its
 * header back to. */
struct live_view {
    fp__image im;                /* first: the payload is an fp_image */
    live_held *owner;            /* +1 while the view lives */
    live_view *next_free;
};

static void held_finalize(void *obj)
{
    live_held *h = obj;
    while (h->free) {
        live_view *v = h->free;
        h->free = v->next_free;
        fp__obj_free_memory(fp__hdr(v));
    }
    pthread_mutex_destroy(&h->mu);
}
static const fp_type held_type = {"fp_live_held", held_finalize};

static void held_release(void *user)
{
    live_held *h = user;
    atomic_fetch_sub_explicit(&h->n, 1, memory_order_relaxed);
    fp_unref(&h);
}

static void unref_native(void *user)
{
    fp_image *img = user;
    fp_unref(&img);
}

/* The last release of a view (after its finalizer released the frame it
 * showed and after the user's fp_on_free callbacks): its header goes to the
 * free list, and the caller holds one frame less. */
static void view_dispose(fp__obj *hdr)
{
    live_view *v = fp__payload(hdr);
    live_held *h = v->owner;
    v->owner = NULL;
    pthread_mutex_lock(&h->mu);
    int keep = h->nfree < h->free_cap;
    if (keep) {
        v->next_free = h->free;
        h->free = v;
        h->nfree++;
    }
    pthread_mutex_unlock(&h->mu);
    if (!keep)
        fp__obj_free_memory(hdr);
    held_release(h);
}

/* A native frame is the decoder's own buffer, which the decoder keeps as a
 * reference picture after the caller let go: the caller gets a view of the
 * same pixels (read-only, zero-copy) holding the queue's reference, so that
 * the view's death is the caller's release. The view's header is reused
 * from the ones that died (no allocation per frame once the run has warmed
 * up); it is a new object each time all the same (refcount 1, creation site
 * the reader's, its own weak handles and callbacks), counted as an fp_image
 * and in the frames the caller holds. Converted frames are the caller's
 * alone and go as they are (counted by held_track). Returns the frame to
 * hand out (+1, the queue's reference moved into it) or NULL (no memory:
 * `img` untouched). Under L->mu. */
static fp_image *caller_view(fp__live *L, fp_image *img)
{
    if (!fp__native_output(&L->iopt))
        return img;
    live_held *h = L->held;
    pthread_mutex_lock(&h->mu);
    live_view *v = h->free;
    if (v) {
        h->free = v->next_free;
        h->nfree--;
    }
    pthread_mutex_unlock(&h->mu);
    fp__obj *hdr;
    if (v) {
        hdr = fp__hdr(v);
        atomic_store_explicit(&hdr->bytes, FP__IMAGE_HDR_SIZE, memory_order_relaxed);
        fp__obj_revive(hdr, L->site_file, L->site_line, L->site_func);
        /* revived as a pool's image would be; a view is counted by the
         * per-type counters, as a new wrapped image is */
        atomic_fetch_and_explicit(&hdr->flags, ~(uint32_t)FP__OBJ_POOLED, memory_order_relaxed);
        fp__typestat_count(hdr->ts, 1, (int64_t)FP__IMAGE_HDR_SIZE);
    } else {
        v = fp__obj_new(&fp_image_type, sizeof(live_view), FP__IMAGE_HDR_SIZE, view_dispose,
                        L->site_file, L->site_line, L->site_func);
        if (!v)
            return NULL;
        hdr = fp__hdr(v);
    }
    memset(v, 0, sizeof *v);
    fp_image *w = &v->im.pub;
    w->width = img->width;
    w->height = img->height;
    w->format = img->format;
    w->av_format = img->av_format;
    for (int p = 0; p < 4; p++) {
        w->data[p] = img->data[p];
        w->stride[p] = img->data[p] ? img->stride[p] : 0;
    }
    w->bytes = FP__IMAGE_HDR_SIZE;
    w->pts = img->pts;
    w->time = img->time;
    w->index = img->index;
    w->flags = img->flags | FP_IMAGE_READONLY;
    w->wall_time = img->wall_time;
    v->im.wrap_free = unref_native;
    v->im.wrap_user = img;
    v->owner = fp_ref(h);
    atomic_fetch_add_explicit(&h->n, 1, memory_order_relaxed);
    return w;
}

/* Counts `img`, about to be handed to the caller. FP_OK, or fp_on_free's
 * error (FP_ENOMEM, FP_ELIMIT when the weak slot table is full). */
static int held_track(live_held *h, fp_image *img)
{
    live_held *ref = fp_ref(h);
    atomic_fetch_add_explicit(&h->n, 1, memory_order_relaxed);
    int rc = fp_on_free(img, held_release, ref);
    if (rc) {
        atomic_fetch_sub_explicit(&h->n, 1, memory_order_relaxed);
        fp_unref(&ref);
    }
    return rc;
}

static int64_t mono_us(void)
{
    return fp__now_us();
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Waits on `cv` until the CLOCK_MONOTONIC time `until_us` (0 = no limit).
 * Returns ETIMEDOUT after the deadline. */
static int cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t until_us)
{
    if (!until_us)
        return pthread_cond_wait(cv, mu);
    struct timespec ts = {.tv_sec = (time_t)(until_us / 1000000),
                          .tv_nsec = (long)(until_us % 1000000) * 1000};
    return pthread_cond_timedwait(cv, mu, &ts);
}

static uint64_t rng_next(fp__live *L)
{
    /* xorshift64*: jitter only, no need for quality */
    uint64_t x = L->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    L->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ---- options ----------------------------------------------------------------------------- */

int fp__live_check(const fp_reader_options *o, fp__err *err)
{
    const fp_live_options *l = &o->live;
    if (l->mode == FP_LIVE_OFF)
        return FP_OK;
    if (l->mode != FP_LIVE_ALL && l->mode != FP_LIVE_LATEST)
        return fp__err_set(err, FP_EINVAL, "invalid live.mode %d (OFF, ALL or LATEST)",
                               (int)l->mode);
    if (l->queue > LIVE_QUEUE_MAX)
        return fp__err_set(err, FP_EINVAL, "live.queue %u is too large (at most %u)",
                               l->queue, LIVE_QUEUE_MAX);
    if (!(l->reconnect_min >= 0) || !(l->reconnect_max >= 0) || !(l->stall >= 0) ||
        !(l->open_timeout >= 0) || l->reconnect_min > 86400 || l->reconnect_max > 86400 ||
        l->stall > 86400 || l->open_timeout > 86400)
        return fp__err_set(err, FP_EINVAL,
                               "invalid live times reconnect_min=%g reconnect_max=%g stall=%g "
                               "open_timeout=%g (seconds, 0..86400; 0 = default)",
                               l->reconnect_min, l->reconnect_max, l->stall, l->open_timeout);
    if (l->reconnect_min > 0 && l->reconnect_max > 0 && l->reconnect_max < l->reconnect_min)
        return fp__err_set(err, FP_EINVAL, "live.reconnect_max %g < reconnect_min %g",
                               l->reconnect_max, l->reconnect_min);
    if (l->buffer > LIVE_BUFFER_MAX)
        return fp__err_set(err, FP_EINVAL, "live.buffer %zu is too large (at most %zu bytes)",
                           l->buffer, LIVE_BUFFER_MAX);
    if (l->max_reconnects < 0)
        return fp__err_set(err, FP_EINVAL, "negative live.max_reconnects (0 = forever)");
    if (o->start != 0 || o->end != 0)
        return fp__err_set(err, FP_EINVAL, "start and end do not apply to a live source");
    return FP_OK;
}

/* ---- events ------------------------------------------------------------------------------ */

/* Delivers event `ev` (its message made from fmt) to the user. The thread
 * only, with no lock held. */
static void emit(fp__live *L, fp_live_event ev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void emit(fp__live *L, fp_live_event ev, const char *fmt, ...)
{
    /* every event is also a log line: connections at INFO, trouble at WARNING,
     * the end at ERROR */
    int type = ev.type;
    int level = type == FP_LIVE_GAVE_UP                               ? FP_LOG_ERROR
                : type == FP_LIVE_CONNECTED || type == FP_LIVE_SIZE_CHANGED ? FP_LOG_INFO
                                                                      : FP_LOG_WARNING;
    if (!L->lo.on_event && !fp__log_enabled(level))
        return;
    char msg[LIVE_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fp__log(level, "framepool", "%s", msg);
    if (!L->lo.on_event)
        return;
    ev.message = msg;
    L->lo.on_event(&ev, L->lo.user);
}

/* ---- statistics -------------------------------------------------------------------------- */

static void stats_add(fp_reader_stats *a, const fp_reader_stats *b)
{
    a->packets += b->packets;
    a->decoded += b->decoded;
    a->skipped += b->skipped;
    a->corrupt += b->corrupt;
    a->decode_errors += b->decode_errors;
    a->wrapped += b->wrapped;
    a->budget_drops += b->budget_drops;
}

/* Frames the caller holds (delivered and not yet released). */
static unsigned caller_held(fp__live *L)
{
    return atomic_load_explicit(&L->held->n, memory_order_relaxed);
}

/* ---- the thread: one connection ---------------------------------------------------------- */

enum { END_STOP = 0, END_EOF, END_ERROR, END_STALL, END_REPEAT };

/* Opens a connection. Returns 0 with *out, or an error with its message in
 * msg (no credentials: the connection's messages show the redacted URL). */
static int connect_once(fp__live *L, fp__engine **out, char *msg, size_t cap)
{
    fp__err err = {0};
    /* connecting, the probe and the first frame have the open timeout, not the
     * stall limit: a probe of several seconds (RTMP's FLV) or a long GOP before
     * the first keyframe is not a stall (the caller's timeout_us is for its own
     * waits) */
    L->open_start = mono_us();
    int64_t open_deadline = L->open_start + (int64_t)(L->lo.open_timeout * 1e6);
    /* a short probe: the stream's parameters come with its first keyframe (or
     * the container's header); FFmpeg's default analyzes 5 s of a live stream
     * before the first frame. The caller's av_options come after, so theirs win. */
    int short_probe = !L->long_probe && L->probe_opts[0];
    fp_reader_options o = L->iopt;
    if (short_probe)
        o.av_options = L->probe_opts;
    fp__conn_config cc = {.what = L->open_what,
                          .abort_flag = &L->stop,
                          .open_deadline_us = open_deadline,
                          .buffer_bytes = L->lo.buffer,
                          .latest = L->lo.mode == FP_LIVE_LATEST,
                          .drops_sink = &L->conn_budget_drops,
                          .backlog = &L->backlog};
    int rc = fp__conn_open(L->url, &o, &cc, L->site_file, L->site_line, L->site_func, out, &err);
    if (rc) {
        snprintf(msg, cap, "%s", err.msg);
        /* the server answered but the short probe missed the stream's parameters:
         * the next tries probe as FFmpeg does by default */
        if (short_probe && (rc == FP_EFORMAT || rc == FP_ENOSTREAM || rc == FP_EDECODE ||
                            rc == FP_EINVAL || rc == FP_EUNKNOWN)) {
            L->long_probe = 1;
            fp__log(FP_LOG_INFO, "framepool", "'%s': a short probe failed (%s); probing longer",
                    L->shown, err.msg);
        }
        return rc;
    }
    L->read_deadline = open_deadline; /* the first frame's */
    return FP_OK;
}

/* A cheap fingerprint of a picture: four rows of its first plane. */
static uint64_t picture_hash(const fp_image *img)
{
    uint64_t h = 1469598103934665603ULL;
    int row = img->av_format >= 0 ? av_image_get_linesize(img->av_format, img->width, 0) : 0;
    if (row <= 0 || row > img->stride[0])
        row = img->stride[0];
    if (!img->data[0] || row <= 0)
        return 0;
    for (int k = 1; k <= 4; k++) {
        const uint8_t *p = img->data[0] + (size_t)(img->height * k / 5) * (size_t)img->stride[0];
        for (int i = 0; i < row; i++)
            h = (h ^ p[i]) * 1099511628211ULL;
    }
    return h;
}

/* Rebases the timestamps of a frame of connection `c` (its first frame when
 * `first`) so that they continue after the last frame produced. */
static void rebase(fp__live *L, fp_image *img, const fp_reader_info *ci, int first,
                   double *conn_off, int64_t now)
{
    AVRational tb = {ci->time_base_num, ci->time_base_den > 0 ? ci->time_base_den : 1};
    double fps = ci->fps > 0 ? ci->fps : 25.0;
    double t_in = img->time;
    if (first) {
        if (!L->have_last) {
            L->tb0 = tb.num > 0 ? tb : (AVRational){1, 90000};
            *conn_off = 0;
            double t0 = isnan(t_in) ? 0 : t_in;
            L->pts_origin = img->pts != INT64_MIN ? img->pts - llround(t0 / av_q2d(L->tb0)) : 0;
        } else {
            double gap = (double)(now - L->last_mono) * 1e-6;
            if (gap < 1.0 / fps)
                gap = 1.0 / fps;
            *conn_off = L->last_time + gap - (isnan(t_in) ? 0 : t_in);
        }
    }
    double t = isnan(t_in) ? (L->have_last ? L->last_time + 1.0 / fps : 0) : t_in + *conn_off;
    if (L->have_last && t <= L->last_time)
        t = L->last_time + 1e-6;
    int64_t pts = L->pts_origin + llround(t / av_q2d(L->tb0));
    if (L->have_last && pts <= L->last_pts)
        pts = L->last_pts + 1;
    img->time = t;
    img->pts = pts;
    /* the connection's own index (decoded frames, plus the packets its
     * read-ahead dropped) continues the reader's count */
    if (first)
        L->conn_index0 = L->frame_index;
    img->index += L->conn_index0;
    if (img->index < L->frame_index)
        img->index = L->frame_index;
    L->frame_index = img->index + 1;
    L->have_last = 1;
    L->last_time = t;
    L->last_pts = pts;
    L->last_mono = now;
}

/* Under L->mu: removes the oldest queued frame into *out (to release). */
static fp_image *queue_pop_locked(fp__live *L)
{
    if (!L->qlen)
        return NULL;
    fp_image *img = L->q[L->qhead].img;
    L->q[L->qhead].img = NULL;
    L->qhead = (L->qhead + 1) % L->qcap;
    L->qlen--;
    return img;
}

/* Reads connection `c` until it ends. Returns END_* with the cause in msg
 * (END_REPEAT: a stall by the same picture). */
static int stream(fp__live *L, fp__engine *c, int *delivered_any, char *msg, size_t cap,
                  int *err)
{
    fp_reader_info ci;
    fp__conn_info(c, &ci);
    int64_t stall_us = (int64_t)(L->lo.stall * 1e6);
    int first = 1;
    double conn_off = 0;
    uint64_t last_hash = 0;
    int64_t same_since = 0;
    uint64_t last_changes = 0;
    fp_image *img = NULL;
    for (;;) {
        if (atomic_load(&L->stop))
            return END_STOP;
        fp__conn_end why;
        /* frames lost to a full budget re-arm the stall limit (not during the
         * open: its deadline is open_timeout's) */
        int rc = fp__conn_read(c, &img, L->read_deadline, first ? 0 : stall_us, &why,
                               L->site_file, L->site_line, L->site_func);
        if (why == FP__CONN_HELD) {
            /* the caller holds max_held frames: LATEST makes room by dropping the
             * queued frame; ALL (and LATEST with nothing queued) waits for the
             * caller to release one, while the packets wait in the read-ahead.
             * (A release is not signalled: the wait looks again every 10 ms.) */
            fp_image *old = NULL;
            pthread_mutex_lock(&L->mu);
            if (L->lo.mode == FP_LIVE_LATEST)
                old = queue_pop_locked(L);
            if (old)
                L->dropped++;
            else if (!atomic_load(&L->stop))
                cond_wait_until(&L->cv_wake, &L->mu, mono_us() + 10000);
            pthread_mutex_unlock(&L->mu);
            fp_unref(&old);
            if (!first) /* waiting for the caller is not a stall */
                L->read_deadline = mono_us() + stall_us;
            continue;
        }
        if (rc <= 0) {
            if (atomic_load(&L->stop))
                return END_STOP;
            if (rc == 0) {
                snprintf(msg, cap, "the source ended the stream");
                *err = FP_EIO;
                return END_EOF;
            }
            if (why == FP__CONN_STALLED && first) {
                /* the open phase's deadline: a failed try, not a stall */
                snprintf(msg, cap, "no first frame within the open timeout of %g s",
                         L->lo.open_timeout);
                *err = FP_ETIMEDOUT;
                return END_ERROR;
            }
            snprintf(msg, cap, "%s", fp__conn_errmsg(c));
            *err = rc;
            return why == FP__CONN_STALLED ? END_STALL : END_ERROR;
        }
        /* a frame that the stall deadline's abort flushed out of the demuxer (its
         * last buffered packets): delivered, then the connection ends as stalled;
         * re-arming the deadline for it would report the stall a limit later */
        int flushed_by_stall = why == FP__CONN_STALLED;
        int64_t now = mono_us();
        L->read_deadline = now + stall_us;
        /* the same picture over and over: a "connected but dead" source */
        if (!L->lo.repeat_ok) {
            uint64_t h = picture_hash(img);
            if (!first && h == last_hash) {
                if (now - same_since >= stall_us) {
                    fp_unref(&img);
                    snprintf(msg, cap, "the same picture for %.1f s", L->lo.stall);
                    *err = FP_ETIMEDOUT;
                    return END_REPEAT;
                }
            } else {
                last_hash = h;
                same_since = now;
            }
        }
        if (first) {
            /* the connection delivers: from now on it counts as connected (one that
             * opened but gave no frame was a failed try, reported by RECONNECTING) */
            fp__conn_info(c, &ci);
            double ttff = (double)(now - L->open_start) / 1e6;
            pthread_mutex_lock(&L->mu);
            L->connects++;
            L->connected = 1;
            L->first_frame = ttff;
            pthread_mutex_unlock(&L->mu);
            char rate[32] = ", frame rate unknown";
            if (ci.fps > 0)
                snprintf(rate, sizeof rate, ", %.4g fps", ci.fps);
            emit(L,
                 (fp_live_event){.type = FP_LIVE_CONNECTED, .width = ci.width,
                                 .height = ci.height, .first_frame = ttff},
                 "connected to '%s': %s %dx%d%s, first frame %.2f s after the open began",
                 L->shown, ci.codec, ci.width, ci.height, rate, ttff);
        }
        /* a new source size, mid-stream or since the last connection */
        fp_reader_stats cs;
        fp__conn_stats(c, &cs);
        if (first || cs.size_changes != last_changes) {
            last_changes = cs.size_changes;
            fp__conn_info(c, &ci);
            if (L->size_w && (ci.width != L->size_w || ci.height != L->size_h)) {
                int ow = L->size_w, oh = L->size_h;
                L->size_w = ci.width;
                L->size_h = ci.height;
                pthread_mutex_lock(&L->mu);
                L->size_changes++;
                L->info = ci;
                L->info.time_base_num = L->tb0.num;
                L->info.time_base_den = L->tb0.den;
                pthread_mutex_unlock(&L->mu);
                emit(L,
                     (fp_live_event){.type = FP_LIVE_SIZE_CHANGED, .width = ci.width,
                                     .height = ci.height},
                     "'%s': frames are now %dx%d (were %dx%d)", L->shown, ci.width, ci.height,
                     ow, oh);
            }
            L->size_w = ci.width;
            L->size_h = ci.height;
        }
        rebase(L, img, &ci, first, &conn_off, now);
        if (first) {
            pthread_mutex_lock(&L->mu);
            L->info.time_base_num = L->tb0.num;
            L->info.time_base_den = L->tb0.den;
            pthread_mutex_unlock(&L->mu);
        }
        first = 0;
        *delivered_any = 1;
        /* publish: the frame and the statistics */
        fp_image *drop = NULL;
        pthread_mutex_lock(&L->mu);
        if (L->qlen == L->qcap && L->lo.mode == FP_LIVE_ALL) {
            /* ALL: wait for the caller to take one; the packets wait in the
             * read-ahead, and this wait is not a stall */
            while (L->qlen == L->qcap && !atomic_load(&L->stop))
                pthread_cond_wait(&L->cv_wake, &L->mu);
            L->read_deadline = mono_us() + stall_us;
            if (atomic_load(&L->stop)) {
                pthread_mutex_unlock(&L->mu);
                fp_unref(&img);
                return END_STOP;
            }
        }
        if (L->qlen == L->qcap) {
            drop = queue_pop_locked(L);
            L->dropped++;
        }
        L->q[(L->qhead + L->qlen) % L->qcap] = (live_slot){img, L->conn_id};
        L->qlen++;
        img = NULL;
        L->cur = cs;
        pthread_cond_broadcast(&L->cv_frame);
        pthread_mutex_unlock(&L->mu);
        fp_unref(&drop);
        if (flushed_by_stall) {
            snprintf(msg, cap, "no new frame within the stall limit");
            *err = FP_ETIMEDOUT;
            return END_STALL;
        }
    }
}

/* Waits `delay` seconds or until close or interrupt. */
static void backoff_wait(fp__live *L, double delay)
{
    int64_t until = mono_us() + (int64_t)(delay * 1e6);
    pthread_mutex_lock(&L->mu);
    while (!atomic_load(&L->stop) && !L->kick)
        if (cond_wait_until(&L->cv_wake, &L->mu, until) == ETIMEDOUT)
            break;
    L->kick = 0;
    pthread_mutex_unlock(&L->mu);
}

/* The reconnect schedule (reader.h): the n-th failed try in a row waits a
 * uniformly random delay in [d/2, d]. After a connection that delivered:
 * d = reconnect_min / LIVE_FAST_DIV for n <= LIVE_FAST_TRIES, then
 * d = min(reconnect_max, reconnect_min * 2^(n - LIVE_FAST_TRIES - 1)).
 * Before any connection delivered: d = min(reconnect_max, reconnect_min *
 * 2^(n - 1)). A server that restarts is back within a second or two, and
 * the first clients to play get the first keyframe it sends (nginx-rtmp
 * keeps no GOP: a player that comes 0.2 s after the publisher waits a whole
 * GOP): it is tried about every reconnect_min / 5 for the first 20 tries;
 * one that stays down, or never worked (a wrong URL or password), is tried
 * less and less often. */
#define LIVE_FAST_TRIES 20
#define LIVE_FAST_DIV 5

static double backoff_delay(fp__live *L, int fails, int fast)
{
    double d = L->lo.reconnect_min;
    if (fast && fails <= LIVE_FAST_TRIES)
        d /= LIVE_FAST_DIV;
    else
        for (int i = fast ? LIVE_FAST_TRIES + 1 : 1; i < fails && d < L->lo.reconnect_max; i++)
            d *= 2;
    if (d > L->lo.reconnect_max)
        d = L->lo.reconnect_max;
    return d * (0.5 + 0.5 * (double)(rng_next(L) >> 11) / 9007199254740992.0);
}

static void *live_main(void *arg)
{
    fp__live *L = arg;
    int fails = 0; /* tries failed in a row (a connection that delivered and ended counts
                      as one) */
    int fast = 0;  /* that count started at the end of a connection that delivered */
    char msg[LIVE_MSG];
    for (int tries = 0; !atomic_load(&L->stop); tries++) {
        if (tries) {
            pthread_mutex_lock(&L->mu);
            L->reconnects++;
            pthread_mutex_unlock(&L->mu);
        }
        fp__engine *c = NULL;
        int err = connect_once(L, &c, msg, sizeof msg);
        int delivered_any = 0;
        if (err == FP_OK) {
            fp_reader_info ci;
            fp__conn_info(c, &ci);
            pthread_mutex_lock(&L->mu);
            L->conn_id++;
            int had = L->have_info;
            L->info = ci;
            if (had) {
                L->info.time_base_num = L->tb0.num;
                L->info.time_base_den = L->tb0.den;
            }
            L->have_info = 1;
            memset(&L->cur, 0, sizeof L->cur);
            pthread_mutex_unlock(&L->mu);
            /* CONNECTED comes with the connection's first frame (stream) */
            int end = stream(L, c, &delivered_any, msg, sizeof msg, &err);
            fp_reader_stats cs;
            fp__conn_stats(c, &cs);
            pthread_mutex_lock(&L->mu);
            stats_add(&L->base, &cs);
            memset(&L->cur, 0, sizeof L->cur);
            atomic_store(&L->conn_budget_drops, 0);
            L->connected = 0;
            if (end == END_STALL || end == END_REPEAT)
                L->stalls++;
            pthread_mutex_unlock(&L->mu);
            fp__conn_close(&c);
            if (end == END_STOP)
                break;
            if (delivered_any) {
                /* a connection that delivered ends: STALLED (if so), DISCONNECTED;
                 * one that did not is a failed try (its reason in RECONNECTING) */
                if (end == END_STALL || end == END_REPEAT)
                    emit(L, (fp_live_event){.type = FP_LIVE_STALLED, .error = FP_ETIMEDOUT},
                         "'%s' stalled: %s", L->shown,
                         end == END_REPEAT ? msg : "no new frame within the stall limit");
                emit(L, (fp_live_event){.type = FP_LIVE_DISCONNECTED, .error = err},
                     "disconnected from '%s': %s", L->shown, msg);
                fails = 0;
                fast = 1;
            }
        } else if (atomic_load(&L->stop)) {
            break;
        }
        fails++;
        if (L->lo.max_reconnects > 0 && fails > L->lo.max_reconnects) {
            /* the event first: when fp_reader_next returns 0, it has been delivered */
            emit(L, (fp_live_event){.type = FP_LIVE_GAVE_UP, .attempt = fails - 1, .error = err},
                 "gave up on '%s' after %d failed reconnects: %s", L->shown,
                 L->lo.max_reconnects, msg);
            pthread_mutex_lock(&L->mu);
            L->ended = 1;
            L->end_rc = err ? err : FP_EIO;
            snprintf(L->end_msg, sizeof L->end_msg,
                     "gave up on '%.150s' after %d failed reconnects: %.300s", L->shown,
                     L->lo.max_reconnects, msg);
            pthread_cond_broadcast(&L->cv_frame);
            pthread_mutex_unlock(&L->mu);
            break;
        }
        double delay = backoff_delay(L, fails, fast);
        emit(L,
             (fp_live_event){.type = FP_LIVE_RECONNECTING, .attempt = fails, .delay = delay,
                             .error = err},
             "reconnecting to '%s' in %.2f s (attempt %d): %s", L->shown, delay, fails, msg);
        backoff_wait(L, delay);
    }
    return NULL;
}

/* ---- the caller's side ------------------------------------------------------------------- */

/* Sets the caller's message to "<what>: <fmt...>" (and the thread's
 * fp_errmsg). Returns code. */
__attribute__((format(printf, 3, 4))) static int live_fail(fp__live *L, int code,
                                                           const char *fmt, ...)
{
    fp__err e;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    fp__err_join(L->errmsg, sizeof L->errmsg, L->what, e.msg);
    fp_errmsg_set("%s", L->errmsg);
    return code;
}

/* Stops and joins the thread, releases the queue and the live state. */
static void live_close(void *s)
{
    fp__live *L = s;
    atomic_store(&L->stop, 1);
    pthread_mutex_lock(&L->mu);
    pthread_cond_broadcast(&L->cv_wake);
    pthread_cond_broadcast(&L->cv_frame);
    pthread_mutex_unlock(&L->mu);
    if (L->started)
        pthread_join(L->th, NULL);
    L->started = 0;
    /* the thread is gone: nothing else touches L */
    while (L->qlen) {
        fp_image *img = queue_pop_locked(L);
        fp_unref(&img);
    }
    fp_unref(&L->held); /* frames the caller still holds keep the count alive */
    pthread_cond_destroy(&L->cv_frame);
    pthread_cond_destroy(&L->cv_wake);
    pthread_mutex_destroy(&L->mu);
    fp_unref(&L->budget);
    fp_unref(&L);
}

int fp__live_open(const char *url, const fp_reader_options *opts, const fp__source_ctx *ctx,
                  void **out, fp__err *err)
{
    *out = NULL;
    if (!url || !*url)
        return fp__err_set(err, FP_EINVAL, "%s: empty URL", ctx->what);
    fp_live_options lo = opts->live;
    unsigned qcap = lo.mode == FP_LIVE_LATEST ? 1u : lo.queue ? lo.queue : LIVE_QUEUE_DEFAULT;
    unsigned max_held = opts->max_held ? opts->max_held : FP_READER_DEFAULT_MAX_HELD;
    if (max_held + qcap + 1 > 4096)
        return fp__err_set(err, FP_EINVAL, "%s: max_held %u + live.queue %u is too large",
                           ctx->what, max_held, qcap);
    size_t ulen = strlen(url) + 1;
    size_t alen = opts->av_options ? strlen(opts->av_options) + 1 : 0;
    size_t size = sizeof(fp__live) + qcap * sizeof(live_slot) + ulen + alen;
    const char *file = ctx->file, *func = ctx->func;
    int line = ctx->line;
    fp__live *L = fp__obj_new(&live_type, size, size, NULL, file, line, func);
    if (!L)
        return fp__err_set(err, FP_ENOMEM, "%s: out of memory", ctx->what);
    atomic_fetch_or(&fp__hdr(L)->flags, FP__OBJ_INTERNAL);
    L->held = fp__obj_new(&held_type, sizeof(live_held), sizeof(live_held), NULL, file, line,
                          func);
    if (!L->held) {
        fp_unref(&L);
        return fp__err_set(err, FP_ENOMEM, "%s: out of memory", ctx->what);
    }
    atomic_fetch_or(&fp__hdr(L->held)->flags, FP__OBJ_INTERNAL);
    pthread_mutex_init(&L->held->mu, NULL);
    L->held->free_cap = max_held + qcap;
    L->interrupted = ctx->interrupted;
    L->max_held = max_held;
    L->budget = opts->budget ? fp_ref(opts->budget) : NULL;
    L->q = (live_slot *)(L + 1);
    L->qcap = qcap;
    L->url = (char *)(L->q + qcap);
    memcpy(L->url, url, ulen);
    if (alen) {
        L->av_options = L->url + ulen;
        memcpy(L->av_options, opts->av_options, alen);
    }
    fp__url_redact(url, L->shown, sizeof L->shown);
    snprintf(L->what, sizeof L->what, "%s", ctx->what);
    snprintf(L->open_what, sizeof L->open_what, "%s", ctx->what);
    L->site_file = file;
    L->site_line = line;
    L->site_func = func;
    L->lo = lo;
    if (L->lo.reconnect_min <= 0)
        L->lo.reconnect_min = 0.5;
    if (L->lo.reconnect_max <= 0)
        L->lo.reconnect_max = L->lo.reconnect_min > 30 ? L->lo.reconnect_min : 30;
    if (L->lo.stall <= 0)
        L->lo.stall = 10;
    if (L->lo.open_timeout <= 0)
        L->lo.open_timeout = 20;
    if (!L->lo.buffer)
        L->lo.buffer = LIVE_BUFFER_DEFAULT;
    L->timeout_us = opts->timeout_us;
    L->iopt = *opts;
    memset(&L->iopt.live, 0, sizeof L->iopt.live);
    L->iopt.max_held = max_held + qcap + 1;
    L->iopt.convert_ahead = 0;
    /* no decoder delay by default: frame threads hold each frame back one
     * frame interval per extra thread (2 threads at 10 fps: LATEST frames
     * 200 ms old). A connection decodes with one thread, or options.threads
     * slice threads (the decoder stage sees a live connection: low_delay too);
     * options.frame_threads chooses frame threading. */
    if (L->iopt.threads == 0)
        L->iopt.threads = 1;
    L->iopt.timeout_us = 0; /* the stall limit is the connection's deadline */
    L->iopt.av_options = L->av_options;
    /* 0.1 s / 500 kB instead of 5 s / 5 MB (the caller's av_options may say otherwise):
     * FLV and MPEG-TS have no header, so the probe reads its whole duration of the
     * stream after the first keyframe before the first frame can come */
    int pn = snprintf(L->probe_opts, sizeof L->probe_opts, "analyzeduration=100000:probesize=500000%s%s",
                      L->av_options && *L->av_options ? ":" : "",
                      L->av_options ? L->av_options : "");
    if (pn < 0 || (size_t)pn >= sizeof L->probe_opts)
        L->probe_opts[0] = 0; /* too long to prepend: FFmpeg's default probe */
    L->iopt.budget = L->budget;
    L->rng = (uint64_t)fp__now_us() ^ (uint64_t)(uintptr_t)L ^ 0x9E3779B97F4A7C15ULL;
    if (!L->rng)
        L->rng = 1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv_frame, &ca);
    pthread_cond_init(&L->cv_wake, &ca);
    pthread_condattr_destroy(&ca);
    int e = fp__thread_start(&L->th, live_main, L);
    if (e) {
        fp__err_set(err, e == ENOMEM ? FP_ENOMEM : FP_EAGAIN,
                    "%s: cannot start the reader's thread: %s", ctx->what, strerror(e));
        live_close(L);
        return err->code;
    }
    L->started = 1;
    *out = L;
    return FP_OK;
}

/* fp_reader_interrupt (the flag is set): wakes the caller and the backoff. */
static void live_interrupt(void *s)
{
    fp__live *L = s;
    pthread_mutex_lock(&L->mu);
    L->kick = 1;
    pthread_cond_broadcast(&L->cv_frame);
    pthread_cond_broadcast(&L->cv_wake);
    pthread_mutex_unlock(&L->mu);
}

static int live_next(void *s, fp_image **img, const char *file, int line, const char *func)
{
    (void)file;
    (void)line;
    (void)func;
    fp__live *L = s;
    L->errmsg[0] = 0;
    snprintf(L->what, sizeof L->what, "read '%.140s'", L->shown);
    int64_t until = L->timeout_us > 0 ? mono_us() + L->timeout_us : 0;
    fp_image *got = NULL;
    pthread_mutex_lock(&L->mu);
    for (;;) {
        if (atomic_exchange(L->interrupted, 0)) {
            pthread_mutex_unlock(&L->mu);
            return live_fail(L, FP_ECANCELED, "interrupted (fp_reader_interrupt)");
        }
        if (L->qlen) {
            unsigned held = caller_held(L);
            if (held >= L->max_held) {
                pthread_mutex_unlock(&L->mu);
                fp__err e;
                return live_fail(L, fp__err_held(&e, held, L->max_held), "%s", e.msg);
            }
            /* counted before it leaves the queue: no window in which a frame is
             * neither queued nor the caller's */
            fp_image *view = caller_view(L, L->q[L->qhead].img);
            /* a view counts itself; a converted frame is counted by a callback */
            int trc = !view                           ? FP_ENOMEM
                      : view == L->q[L->qhead].img ? held_track(L->held, view)
                                                    : FP_OK;
            if (trc) {
                pthread_mutex_unlock(&L->mu);
                return live_fail(L, trc,
                                 "cannot count the frame for max_held (%s); "
                                 "the frame stays queued",
                                 fp_strerror(trc));
            }
            queue_pop_locked(L); /* its reference is in `view` */
            got = view;
            double age = wall_now() - got->wall_time;
            L->age_last = age;
            if (age > L->age_max)
                L->age_max = age;
            L->delivered++;
            pthread_cond_broadcast(&L->cv_wake); /* room for a thread waiting on the caller */
            pthread_mutex_unlock(&L->mu);
            *img = got;
            fp_frame_tick();
            return 1;
        }
        if (L->ended) {
            snprintf(L->errmsg, sizeof L->errmsg, "%s", L->end_msg);
            pthread_mutex_unlock(&L->mu);
            return 0;
        }
        if (cond_wait_until(&L->cv_frame, &L->mu, until) == ETIMEDOUT && !L->qlen &&
            !L->ended) {
            int connected = L->connected;
            pthread_mutex_unlock(&L->mu);
            return live_fail(L, FP_ETIMEDOUT, "no frame within timeout_us (%lld us; %s)",
                             (long long)L->timeout_us, connected ? "connected" : "reconnecting");
        }
    }
}

static int live_seek(void *s, double seconds, int flags)
{
    (void)flags;
    fp__live *L = s;
    snprintf(L->what, sizeof L->what, "seek to %.3f s", seconds);
    return live_fail(L, FP_EINVAL, "a live source cannot seek");
}

static int live_info(const void *s, fp_reader_info *out)
{
    fp__live *L = (fp__live *)s;
    pthread_mutex_lock(&L->mu);
    int have = L->have_info;
    if (have) {
        *out = L->info;
        out->max_held = L->max_held;
    }
    pthread_mutex_unlock(&L->mu);
    return have ? FP_OK : FP_EAGAIN;
}

static int live_stats(void *s, fp_reader_stats *out)
{
    fp__live *L = s;
    pthread_mutex_lock(&L->mu);
    *out = L->cur;
    /* budget drops as they happen, not with the next frame */
    uint64_t bd = atomic_load(&L->conn_budget_drops);
    if (bd > out->budget_drops)
        out->budget_drops = bd;
    stats_add(out, &L->base);
    out->packets_dropped = atomic_load(&L->backlog.dropped);
    out->packets_queued = atomic_load(&L->backlog.queued);
    out->delivered = L->delivered;
    out->size_changes = L->size_changes;
    out->held = caller_held(L);
    out->reconnects = L->reconnects;
    out->connects = L->connects;
    out->dropped = L->dropped;
    out->stalls = L->stalls;
    out->connected = L->connected;
    out->queued = L->qlen;
    out->age_last = L->age_last;
    out->age_max = L->age_max;
    out->first_frame = L->first_frame;
    pthread_mutex_unlock(&L->mu);
    return FP_OK;
}

static const char *live_errmsg(const void *s)
{
    return ((const fp__live *)s)->errmsg;
}

const fp__source_ops fp__live_ops = {
    .name = "live",
    .next = live_next,
    .seek = live_seek,
    .info = live_info,
    .stats = live_stats,
    .interrupt = live_interrupt,
    .errmsg = live_errmsg,
    .close = live_close,
};
