/*
 * A live connection's read-ahead: a thread of its own drains the demuxer
 * into a bounded queue of packets, stamping each with the wall-clock time it
 * arrived, and the connection's reader (the live thread, which decodes)
 * takes them from the queue.
 *
 * Why. One thread that both reads and decodes stops reading while it
 * decodes or while it waits for the caller: the backlog then waits in the
 * socket, where nothing can see it (a frame's wall_time is when the decoder
 * got round to it), RTSP sends no keep-alive, and UDP loses packets. With
 * the read-ahead the demuxer is read as packets arrive, whatever the decoder
 * and the caller do, and the backlog is here, in packets (compressed,
 * cheap), where the policy below can act on it:
 *   - LATEST: when a newer keyframe has already arrived, the packets before
 *     it are dropped undecoded (decoding them would only produce frames
 *     older than that keyframe's): the decoder jumps to the newest picture it
 *     can decode cleanly, so a delivered frame's age stays within about one
 *     keyframe interval even when decoding cannot keep up.
 *   - ALL: every packet waits, up to max_bytes; past that the oldest packets
 *     up to the next keyframe go (a whole GOP: the frames after a keyframe
 *     decode cleanly), and when no later keyframe is queued, everything
 *     queued goes and the packets that follow until the next keyframe.
 * Dropped packets of the stream are counted (fp__readahead_dropped).
 *
 * Locking: ra->mu guards the queue and the end state. The thread never
 * waits for room (it drops instead), so it is always either in the demuxer
 * or here for a moment: closing it is the input's abort (ra_quit, seen by
 * the interrupt callback within FFmpeg's polling interval) and a join.
 */
#define _POSIX_C_SOURCE 200809L
#include "input.h"

#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RA_SLOTS 1024u /* packets queued at most (40 s at 25 fps) */

typedef struct ra_slot {
    AVPacket *pkt; /* NULL: a packet the demuxer rejected (code) */
    int code;
    unsigned gap;  /* packets of the stream dropped just before this one */
    double wall;   /* CLOCK_REALTIME s when it was read */
} ra_slot;

typedef struct fp__readahead fp__readahead;
struct fp__readahead {
    fp__input *in;
    pthread_t th;
    int started;
    int latest;
    size_t max_bytes;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* the reader waits for a packet or the end */
    /* ---- guarded by mu ---- */
    ra_slot q[RA_SLOTS];
    unsigned head, n;
    size_t bytes;
    int need_key;      /* ALL after an overflow: drop until a keyframe */
    unsigned pending_gap; /* packets dropped since the last one queued (the next one's gap) */
    int ended;         /* the thread's last word: end_rc (0 = end of input) */
    int end_rc;
    fp__err end_err;
    fp__backlog own;
    fp__backlog *counts; /* &own or the owner's (packets dropped, queued: kept as they change) */
};

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static ra_slot *slot(fp__readahead *ra, unsigned i)
{
    return &ra->q[(ra->head + i) % RA_SLOTS];
}

static int is_key(const ra_slot *s)
{
    return s->pkt && (s->pkt->flags & AV_PKT_FLAG_KEY);
}

/* Under mu: packets of the stream lost before the head went (`gap` of
 * them): they were before the next one queued too (or the next to come). */
static void pass_gap(fp__readahead *ra, unsigned gap)
{
    if (ra->n)
        slot(ra, 0)->gap += gap;
    else
        ra->pending_gap += gap;
}

/* Under mu: drops the first k queued entries (packets counted as dropped,
 * and as the gap before the next one). */
static void drop_first(fp__readahead *ra, unsigned k)
{
    unsigned gap = 0;
    for (unsigned i = 0; i < k; i++) {
        ra_slot *s = slot(ra, 0);
        gap += s->gap;
        if (s->pkt) {
            ra->bytes -= (size_t)s->pkt->size;
            atomic_fetch_add(&ra->counts->dropped, 1);
            av_packet_free(&s->pkt);
            gap++;
        }
        ra->head = (ra->head + 1) % RA_SLOTS;
        ra->n--;
    }
    pass_gap(ra, gap);
    atomic_store(&ra->counts->queued, ra->n);
}

/* Under mu: whether a packet of `size` bytes finds the queue full. */
static int full_for(const fp__readahead *ra, size_t size)
{
    return ra->n && (ra->n == RA_SLOTS || ra->bytes + size > ra->max_bytes);
}

/* Under mu: the index of the newest queued keyframe after the head, or 0. */
static unsigned newest_key(fp__readahead *ra)
{
    for (unsigned i = ra->n; i-- > 1;)
        if (is_key(slot(ra, i)))
            return i;
    return 0;
}

/* Under mu, ALL: makes room for a packet of `size` bytes (which `key` says
 * is a keyframe). Returns 0 to queue it, or 1 when it goes too (no keyframe
 * to resume from yet). */
static int make_room(fp__readahead *ra, size_t size, int key)
{
    while (full_for(ra, size)) {
        unsigned next = 0; /* the oldest keyframe after the head */
        for (unsigned i = 1; i < ra->n && !next; i++)
            if (is_key(slot(ra, i)))
                next = i;
        if (next) {
            drop_first(ra, next);
            continue;
        }
        drop_first(ra, ra->n);
        if (!key) {
            ra->need_key = 1;
            return 1;
        }
    }
    return 0;
}

static void *ra_main(void *arg)
{
    fp__readahead *ra = arg;
    fp__input *in = ra->in;
    for (;;) {
        AVPacket *pkt = av_packet_alloc();
        fp__err err = {0};
        int rejected = 0;
        int rc = pkt ? fp__input_demux(in, pkt, &rejected, &err)
                     : fp__err_set(&err, FP_ENOMEM, "out of memory reading ahead");
        double wall = wall_now();
        pthread_mutex_lock(&ra->mu);
        if (rc == 1) {
            int key = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
            int drop = 0;
            if (ra->need_key && !key) {
                drop = 1;
            } else if (!ra->latest) {
                drop = make_room(ra, (size_t)pkt->size, key);
            } else if (full_for(ra, (size_t)pkt->size)) {
                /* LATEST past its bound: what is queued is older than this packet.
                 * A keyframe makes all of it useless; else cut at the newest queued
                 * keyframe, and with none, wait for the next keyframe */
                unsigned k = key ? ra->n : newest_key(ra);
                drop_first(ra, k);
                if (full_for(ra, (size_t)pkt->size)) {
                    drop = 1;
                    ra->need_key = 1;
                }
            }
            if (drop) {
                atomic_fetch_add(&ra->counts->dropped, 1);
                ra->pending_gap++;
                av_packet_free(&pkt);
            } else {
                ra->need_key = 0;
                *slot(ra, ra->n) = (ra_slot){.pkt = pkt, .gap = ra->pending_gap, .wall = wall};
                ra->pending_gap = 0;
                ra->n++;
                ra->bytes += (size_t)pkt->size;
            }
        } else if (rc == FP__INPUT_REJECTED) {
            av_packet_free(&pkt);
            if (ra->n < RA_SLOTS) {
                *slot(ra, ra->n) = (ra_slot){.code = rejected, .wall = wall};
                ra->n++;
            }
        } else {
            av_packet_free(&pkt);
            ra->ended = 1;
            ra->end_rc = rc;
            ra->end_err = err;
        }
        int end = ra->ended;
        atomic_store(&ra->counts->queued, ra->n);
        pthread_cond_signal(&ra->cv);
        pthread_mutex_unlock(&ra->mu);
        if (end)
            return NULL;
    }
}

int fp__readahead_start(fp__input *in, size_t max_bytes, int latest, fp__backlog *counts,
                        fp__err *err)
{
    fp__readahead *ra = calloc(1, sizeof *ra);
    if (!ra)
        return fp__err_set(err, FP_ENOMEM, "out of memory for the read-ahead");
    ra->in = in;
    ra->latest = latest;
    ra->max_bytes = max_bytes;
    ra->counts = counts ? counts : &ra->own;
    pthread_mutex_init(&ra->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ra->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_store(&in->ra_on, 1); /* from now on the reader's deadlines are the queue's */
    in->ra = ra;
    int rc = fp__thread_start(&ra->th, ra_main, ra);
    if (rc) {
        atomic_store(&in->ra_on, 0);
        in->ra = NULL;
        pthread_cond_destroy(&ra->cv);
        pthread_mutex_destroy(&ra->mu);
        free(ra);
        return fp__err_set(err, FP_ENOMEM, "cannot start the read-ahead thread (error %d)", rc);
    }
    ra->started = 1;
    return FP_OK;
}

void fp__readahead_stop(fp__input *in)
{
    fp__readahead *ra = in->ra;
    if (!ra)
        return;
    atomic_store(&in->ra_quit, 1);
    pthread_join(ra->th, NULL);
    /* what was still queued goes with the connection: not a drop */
    while (ra->n) {
        ra_slot *s = slot(ra, 0);
        av_packet_free(&s->pkt);
        ra->head = (ra->head + 1) % RA_SLOTS;
        ra->n--;
    }
    atomic_store(&ra->counts->queued, 0);
    pthread_cond_destroy(&ra->cv);
    pthread_mutex_destroy(&ra->mu);
    free(ra);
    in->ra = NULL;
    atomic_store(&in->ra_on, 0);
}

/* Waits on cv until the CLOCK_MONOTONIC time until_us (0 = no limit). */
static int wait_until(fp__readahead *ra, int64_t until_us)
{
    if (!until_us)
        return pthread_cond_wait(&ra->cv, &ra->mu);
    struct timespec ts = {.tv_sec = (time_t)(until_us / 1000000),
                          .tv_nsec = (long)(until_us % 1000000) * 1000};
    return pthread_cond_timedwait(&ra->cv, &ra->mu, &ts);
}

int fp__readahead_pop(fp__input *in, AVPacket *pkt, double *wall, unsigned *gap, fp__err *err)
{
    fp__readahead *ra = in->ra;
    pthread_mutex_lock(&ra->mu);
    for (;;) {
        if (ra->n) {
            if (ra->latest) {
                unsigned k = newest_key(ra);
                if (k)
                    drop_first(ra, k);
            }
            ra_slot s = *slot(ra, 0);
            slot(ra, 0)->pkt = NULL;
            ra->head = (ra->head + 1) % RA_SLOTS;
            ra->n--;
            atomic_store(&ra->counts->queued, ra->n);
            *wall = s.wall;
            *gap = s.gap;
            if (!s.pkt) {
                pass_gap(ra, s.gap); /* a rejected packet: no frame to count them */
                pthread_mutex_unlock(&ra->mu);
                in->rejected = s.code;
                return FP__INPUT_REJECTED;
            }
            ra->bytes -= (size_t)s.pkt->size;
            pthread_mutex_unlock(&ra->mu);
            av_packet_move_ref(pkt, s.pkt);
            av_packet_free(&s.pkt);
            return 1;
        }
        if (ra->ended) {
            int rc = ra->end_rc;
            if (rc < 0)
                *err = ra->end_err;
            pthread_mutex_unlock(&ra->mu);
            return rc;
        }
        /* the stall deadline (moved by the reader's own thread only, so it is
         * read again after each wake) */
        int64_t dl = atomic_load(&in->stall_deadline_us);
        if (dl && fp__now_us() >= dl) {
            pthread_mutex_unlock(&ra->mu);
            atomic_store(&in->last_reason, FP__INT_STALL);
            return fp__err_set(err, FP_ETIMEDOUT, "reading: no new frame within the stall limit");
        }
        wait_until(ra, dl);
    }
}

const fp__backlog *fp__readahead_counts(const fp__input *in)
{
    return in->ra ? in->ra->counts : NULL;
}
