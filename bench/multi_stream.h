/*
 * multi_stream's shared record (C and C++): the controller (multi_stream),
 * its forked servers and both peers (framepool's loops in multi_stream, the
 * cv::VideoCapture threads of multi_stream_cv) share one ms_shared through a
 * MAP_SHARED file mapping; multi_stream_cv maps it by path. Each stream's
 * slot is written by one server (t0_us, sent) and one peer thread (the
 * rest); the controller reads it. Counters are touched with GCC's __atomic
 * builtins so that C and C++ agree on the layout.
 *
 * Frame age: the clip stamps each frame's number (mod clip frames) as 8
 * black/white blocks of 160x16 pixels in its top rows. The server sends
 * frame k of its stream at t0 + k / fps (t0: when it accepted the client),
 * as a camera sends a picture when it is taken. A peer that delivers frame
 * k at wall time `now` records the age now - (t0 + k / fps): it includes
 * the transport, any backlog in the socket, the demuxer, the decoder and
 * the queue, so a loop that falls behind shows it whichever library reads.
 * k is the reader's frame index (framepool) or the count of frames read
 * (cv); the stamp read back from row 8 must equal k mod clip frames, else
 * the frame counts as a mismatch (and its age is suspect).
 */
#ifndef MULTI_STREAM_H
#define MULTI_STREAM_H

#include <stdint.h>
#include <time.h>

#define MS_MAXS 64
#define MS_BINS 10000 /* age histogram: 1 ms bins over 0..10 s; bin MS_BINS holds older */
#define MS_STAMP_ROW 8
#define MS_STAMP_BITS 8
#define MS_STAMP_W 160

typedef struct ms_stream {
    int64_t t0_us;      /* server: CLOCK_REALTIME (us) when it accepted its client (0: not yet) */
    uint64_t sent;      /* server: frames sent */
    uint64_t frames;    /* peer: frames delivered since the open */
    uint64_t delivered; /* peer: frames delivered while measuring */
    uint64_t mismatch;  /* peer: frames whose stamp was not k mod clip frames */
    uint64_t touched;   /* peer: sum of the stamp row's bytes (the loop's work) */
    uint64_t age_max_us;
    uint64_t errors;    /* peer: reads that returned an error other than a time-out */
    uint32_t hist[MS_BINS + 1];
} ms_stream;

typedef struct ms_shared {
    int measuring;   /* controller: 1 while the window is open */
    int stop;        /* controller: peers end their loops */
    int fps;         /* frames per second of every stream */
    int clip_frames; /* frames in the clip (the stamp's modulus) */
    ms_stream s[MS_MAXS];
} ms_shared;

static inline int64_t ms_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The loop's work per frame: reads the stamp row (`width` pixels, `step`
 * bytes apart, the luma or green byte first) and returns the stamped frame
 * number; adds the row's bytes to *sum. */
static inline int ms_touch(const uint8_t *row, int width, int step, uint64_t *sum)
{
    uint64_t t = 0;
    for (int x = 0; x < width; x++)
        t += row[x * step];
    *sum += t;
    int code = 0;
    for (int b = 0; b < MS_STAMP_BITS && b * MS_STAMP_W + MS_STAMP_W / 2 < width; b++)
        if (row[(b * MS_STAMP_W + MS_STAMP_W / 2) * step] > 128)
            code |= 1 << b;
    return code;
}

/* Records frame k of stream i delivered at now_us with stamp `code`. Called
 * by the stream's one peer thread. */
static inline void ms_record(ms_shared *sh, int i, int64_t k, int code, int64_t now_us,
                             uint64_t sum)
{
    ms_stream *s = &sh->s[i];
    __atomic_store_n(&s->touched, sum, __ATOMIC_RELAXED);
    __atomic_store_n(&s->frames, __atomic_load_n(&s->frames, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELAXED);
    if (code != (int)(k % sh->clip_frames))
        __atomic_store_n(&s->mismatch, __atomic_load_n(&s->mismatch, __ATOMIC_RELAXED) + 1,
                         __ATOMIC_RELAXED);
    if (!__atomic_load_n(&sh->measuring, __ATOMIC_ACQUIRE))
        return;
    int64_t t0 = __atomic_load_n(&s->t0_us, __ATOMIC_ACQUIRE);
    int64_t age = now_us - (t0 + k * 1000000 / sh->fps);
    if (age < 0)
        age = 0;
    uint64_t bin = (uint64_t)age / 1000;
    if (bin > MS_BINS)
        bin = MS_BINS;
    __atomic_store_n(&s->hist[bin], __atomic_load_n(&s->hist[bin], __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&s->delivered, __atomic_load_n(&s->delivered, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELAXED);
    if ((uint64_t)age > __atomic_load_n(&s->age_max_us, __ATOMIC_RELAXED))
        __atomic_store_n(&s->age_max_us, (uint64_t)age, __ATOMIC_RELAXED);
}

#endif
