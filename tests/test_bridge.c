/* The FFmpeg bridge (lib/av/bridge.c): decoder buffers from framepool pools.
 *
 * - When the decoder lets go of the last reference to a frame (a flush on
 *   seek, the decoder freed on close), the frame's fp_on_free and weak-map
 *   callbacks run with no framepool lock held, so they may call back into
 *   the reader (stats, info) and the pool.
 * - The bridge's own synchronisation under ThreadSanitizer: several threads
 *   take decoder buffers and release them — the decoder side and callers'
 *   references, in any order, with weak upgrades and callbacks meanwhile —
 *   the way FFmpeg's frame threads do, through the bridge's internal paths
 *   with FFmpeg out of the stacks (tests/tsan.supp silences reports that
 *   involve uninstrumented FFmpeg, which would hide the bridge's). */
#define _GNU_SOURCE
#include "avclips.h"
#include "livesrv.h"
#include "avpriv.h"
#include "avpriv.h"
#include "engine.h"
#include "testutil.h"

#include <errno.h>
#include <framepool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static char clip_h264[1024];

static void setup(void)
{
    ck_assert_ptr_nonnull(clip_make("br_h264.mp4",
                                    "-f lavfi -i testsrc2=size=320x240:rate=25 -frames:v 30 "
                                    "-c:v libx264 -bf 3 -g 10 -pix_fmt yuv420p",
                                    clip_h264, sizeof clip_h264));
}

/* 1 when the calling thread holds `mu` (glibc records the owner's tid). */
static int held_by_me(pthread_mutex_t *mu)
{
    int e = pthread_mutex_trylock(mu);
    if (e == 0) {
        pthread_mutex_unlock(mu);
        return 0;
    }
    return e == EBUSY && mu->__data.__owner == (int)syscall(SYS_gettid);
}

/* Runs fn(arg) on its own thread and fails the test if it does not end
 * within `seconds` (a deadlock). */
static void run_bounded(void *(*fn)(void *), void *arg, int seconds, const char *what)
{
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, fn, arg), 0);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += seconds;
    int e = pthread_timedjoin_np(th, NULL, &dl);
    if (e == ETIMEDOUT)
        ck_abort_msg("%s did not end within %d s: a callback deadlocked on a framepool lock",
                     what, seconds);
    ck_assert_int_eq(e, 0);
}

/* ---- callbacks run when the decoder lets go -------------------------------------- */

typedef struct cb_ctx {
    fp_reader *r;       /* NULL once the reader is closing */
    fp__bridge *bridge; /* +1 */
    fp_pool *pool;      /* +1: the decoder pool */
    int trigger_close;  /* 0: seek (flush), 1: close */
    atomic_int ran, lock_held, reader_rc, pool_ok;
    pthread_t caller;
    atomic_int other_thread;
} cb_ctx;

static void in_callback(cb_ctx *c)
{
    atomic_fetch_add(&c->ran, 1);
    if (!pthread_equal(pthread_self(), c->caller))
        atomic_store(&c->other_thread, 1);
    if (held_by_me(&c->bridge->mu)) {
        /* calling the reader now would deadlock: report instead */
        atomic_store(&c->lock_held, 1);
        return;
    }
    if (c->r) {
        fp_reader_stats st;
        fp_reader_info info;
        int rc = fp_reader_get_stats(c->r, &st);
        if (rc == 0)
            rc = fp_reader_info(c->r, &info);
        if (rc)
            atomic_store(&c->reader_rc, rc);
    }
    fp_pool_stats ps;
    fp_pool_get_stats(c->pool, &ps);
    fp_image *tmp = NULL;
    (void)fp_pool_acquire(c->pool, 0, &tmp); /* may be FP_ELIMIT; must not hang */
    fp_unref(&tmp);
    unsigned held = 0, dec_only = 0;
    fp__bridge_counts(c->bridge, &held, &dec_only);
    atomic_fetch_add(&c->pool_ok, 1);
}

static void on_free_cb(void *user)
{
    in_callback(user);
}

static void value_free_cb(void *value)
{
    in_callback(value);
}

typedef struct scenario {
    cb_ctx ctx;
    fp_reader *r;
} scenario;

static void *do_trigger(void *arg)
{
    scenario *s = arg;
    s->ctx.caller = pthread_self();
    if (s->ctx.trigger_close) {
        s->ctx.r = NULL;
        fp_reader_close(&s->r); /* avcodec_free_context drops the decoder's references */
    } else {
        ck_assert_int_eq(fp_reader_seek(s->r, 0, FP_SEEK_KEY), 0); /* flushes the decoder */
    }
    return NULL;
}

static void callbacks_case(int trigger_close)
{
    scenario s;
    memset(&s, 0, sizeof s);
    fp_reader_options o = {0};
    o.threads = 1; /* the decoder lets go on the thread that flushes or closes */
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &s.r), 0);
    fp_image *img = NULL;
    /* a frame the decoder still references (a reference picture) */
    int found = 0;
    for (int i = 0; i < 20 && !found; i++) {
        ck_assert_int_eq(fp_reader_next(s.r, &img), 1);
        found = !fp_image_is_writable(img);
    }
    ck_assert_msg(found, "no delivered frame was still referenced by the decoder");
    cb_ctx *c = &s.ctx;
    c->r = s.r;
    c->trigger_close = trigger_close;
    c->bridge = fp_ref(fp__engine_bridge(fp__reader_source(s.r)));
    c->pool = fp_image_get_pool(img);
    ck_assert_ptr_nonnull(c->pool);
    ck_assert_int_eq(fp_on_free(img, on_free_cb, c), 0);
    fp_weakmap_config mc = {0};
    mc.mode = FP_WEAKMAP_WEAK_KEYS;
    mc.value_free = value_free_cb;
    fp_weakmap *m = NULL;
    ck_assert_int_eq(fp_weakmap_new(&mc, &m), 0);
    ck_assert_int_eq(fp_weakmap_put(m, img, c), 0);
    fp_weak w = fp_weak_of(img);
    /* the caller lets go first: the decoder's reference is now the last */
    fp_unref(&img);
    ck_assert(fp_weak_alive(w));
    ck_assert_int_eq(atomic_load(&c->ran), 0);
    run_bounded(do_trigger, &s, 20, trigger_close ? "fp_reader_close" : "fp_reader_seek");
    ck_assert(!fp_weak_alive(w));
    ck_assert_int_eq(atomic_load(&c->ran), 2); /* fp_on_free and the weak map's value_free */
    ck_assert_msg(!atomic_load(&c->lock_held),
                  "a callback ran with the bridge's lock held by its own thread");
    ck_assert_int_eq(atomic_load(&c->reader_rc), 0);
    ck_assert_int_eq(atomic_load(&c->pool_ok), 2);
    ck_assert_int_eq(fp_weakmap_len(m), 0);
    if (!trigger_close) {
        fp_reader_stats st;
        ck_assert_int_eq(fp_reader_get_stats(s.r, &st), 0);
        ck_assert_uint_eq(st.held, 0);
        ck_assert_int_eq(fp_reader_next(s.r, &img), 1); /* still usable */
        fp_unref(&img);
        fp_reader_close(&s.r);
    }
    fp_unref(&m);
    fp_unref(&c->pool);
    fp_unref(&c->bridge);
}

START_TEST(callbacks_outside_locks_on_flush)
{
    callbacks_case(0);
}
END_TEST

START_TEST(callbacks_outside_locks_on_close)
{
    callbacks_case(1);
}
END_TEST

/* ---- the bridge's synchronisation from several threads, without FFmpeg ------------ */

#define NTHREADS 4
#define SLOTS 24

/* A buffer handed around like FFmpeg's frame threads and a caller do: the
 * decoder side (dec) and a caller's reference (user) are released by
 * whichever thread takes the slot next. */
typedef struct slot {
    fp_image *img;      /* the image pointer (borrowed from whichever side is left) */
    const uint8_t *pixels;
    fp_weak weak;
    int dec, user;      /* which references are still to be released */
} slot;

typedef struct drive {
    fp__bridge *b;
    fp_layout layout;
    int fmt, w, h;
    pthread_mutex_t mu; /* guards the slot table only; never held across a bridge call */
    slot slots[SLOTS];
    atomic_int stop;
    atomic_ulong ops, callbacks, limits;
    atomic_int lock_held;
} drive;

static void drive_cb(void *user)
{
    drive *d = user;
    atomic_fetch_add(&d->callbacks, 1);
    if (held_by_me(&d->b->mu)) {
        atomic_store(&d->lock_held, 1);
        return;
    }
    unsigned held, dec_only;
    fp__bridge_counts(d->b, &held, &dec_only); /* takes the bridge's lock */
}

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

/* Takes slot i out of the table (1) if it holds a buffer. */
static int slot_take(drive *d, unsigned i, slot *out)
{
    pthread_mutex_lock(&d->mu);
    slot *s = &d->slots[i];
    int ok = s->img != NULL;
    if (ok) {
        *out = *s;
        memset(s, 0, sizeof *s);
    }
    pthread_mutex_unlock(&d->mu);
    return ok;
}

static int slot_put(drive *d, unsigned i, const slot *in)
{
    pthread_mutex_lock(&d->mu);
    slot *s = &d->slots[i];
    int ok = s->img == NULL;
    if (ok)
        *s = *in;
    pthread_mutex_unlock(&d->mu);
    return ok;
}

static void slot_release_one(drive *d, slot *s, unsigned r)
{
    /* one side, chosen at random, goes now */
    int dec_first = s->dec && (!s->user || (r & 1));
    if (dec_first) {
        s->dec = 0;
        fp__bridge_release(d->b, s->pixels); /* as FFmpeg's AVBuffer free callback */
    } else {
        s->user = 0;
        fp_image *u = s->img;
        fp_unref(&u);
    }
}

static void *driver(void *arg)
{
    drive *d = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    while (!atomic_load(&d->stop)) {
        unsigned r = rnd(&seed), i = r % SLOTS;
        slot s;
        if (slot_take(d, i, &s)) {
            slot_release_one(d, &s, r >> 5);
            if (s.dec || s.user) {
                if (!slot_put(d, (i + 1 + (r >> 7) % (SLOTS - 1)) % SLOTS, &s) &&
                    !slot_put(d, i, &s))
                    while (s.dec || s.user)
                        slot_release_one(d, &s, rnd(&seed));
            }
        } else {
            /* a frame thread's get_buffer2 */
            fp_image *img = NULL;
            int rc = fp__bridge_acquire(d->b, d->fmt, d->w, d->h, &d->layout, &img);
            if (rc == FP_ELIMIT) {
                atomic_fetch_add(&d->limits, 1);
                atomic_store(&d->b->exhausted, 0);
                continue;
            }
            ck_assert_int_eq(rc, 0);
            memset(img->data[0], (int)(r & 0xff), 64); /* the decoder writes pixels */
            slot n = {img, fp__img(img)->pixels, {0}, 1, 0};
            if (r & 2) { /* delivered: a caller holds it too */
                n.user = 1;
                fp_ref(img);
                n.weak = fp_weak_of(img);
                if (r & 4)
                    ck_assert_int_eq(fp_on_free(img, drive_cb, d), 0);
            }
            if (!slot_put(d, i, &n))
                while (n.dec || n.user)
                    slot_release_one(d, &n, rnd(&seed));
        }
        atomic_fetch_add(&d->ops, 1);
    }
    return NULL;
}

/* A registry looking frames up through weak handles meanwhile, and the
 * reader's thread counting held frames. */
static void *watcher(void *arg)
{
    drive *d = arg;
    unsigned seed = 7;
    while (!atomic_load(&d->stop)) {
        unsigned i = rnd(&seed) % SLOTS;
        pthread_mutex_lock(&d->mu);
        fp_weak w = d->slots[i].weak;
        pthread_mutex_unlock(&d->mu);
        fp_image *img = fp_weak_get(w); /* may race the image's last release */
        if (img) {
            volatile uint8_t v = img->data[0][0];
            (void)v;
            fp_unref(&img);
        }
        unsigned held = 0, dec_only = 0;
        fp__bridge_counts(d->b, &held, &dec_only);
        ck_assert_uint_le(dec_only, SLOTS + NTHREADS);
    }
    return NULL;
}

static void *drive_all(void *arg)
{
    drive *d = arg;
    pthread_t th[NTHREADS + 1];
    for (int i = 0; i < NTHREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, driver, d), 0);
    ck_assert_int_eq(pthread_create(&th[NTHREADS], NULL, watcher, d), 0);
    double t0 = tu_now(), secs = UNDER_SANITIZER ? 2.0 : 1.0;
    while (tu_now() - t0 < secs)
        usleep(10000);
    atomic_store(&d->stop, 1);
    for (int i = 0; i <= NTHREADS; i++)
        pthread_join(th[i], NULL);
    return NULL;
}

START_TEST(release_from_threads)
{
    drive *d = calloc(1, sizeof *d);
    ck_assert_ptr_nonnull(d);
    pthread_mutex_init(&d->mu, NULL);
    d->fmt = AV_PIX_FMT_YUV420P;
    d->w = 64;
    d->h = 48;
    AVCodecContext *avctx = avcodec_alloc_context3(NULL);
    ck_assert_ptr_nonnull(avctx);
    avctx->codec_id = AV_CODEC_ID_H264;
    avctx->pix_fmt = d->fmt;
    ck_assert_int_eq(fp__bridge_layout(avctx, d->fmt, d->w, d->h, &d->layout), 0);
    avcodec_free_context(&avctx);
    /* a cap below what the threads could hold: FP_ELIMIT is met too */
    d->b = fp__bridge_new(SLOTS - 4, "bridge test");
    ck_assert_ptr_nonnull(d->b);

    run_bounded(drive_all, d, 60, "the bridge threads");

    /* what is left goes now; then nothing is held and the pool is whole */
    for (unsigned i = 0; i < SLOTS; i++) {
        slot s;
        if (slot_take(d, i, &s))
            while (s.dec || s.user)
                slot_release_one(d, &s, i);
    }
    unsigned held = 1, dec_only = 1;
    fp__bridge_counts(d->b, &held, &dec_only);
    ck_assert_uint_eq(held, 0);
    ck_assert_uint_eq(dec_only, 0);
    ck_assert_uint_eq(d->b->n_dec_live, 0);
    ck_assert_uint_eq(d->b->releasing, 0);
    fp_pool_stats ps;
    fp_pool_get_stats(d->b->pool, &ps);
    ck_assert_uint_eq(ps.outstanding, 0);
    ck_assert_uint_gt(atomic_load(&d->ops), 1000);
    ck_assert_uint_gt(atomic_load(&d->callbacks), 0);
    ck_assert_msg(!atomic_load(&d->lock_held),
                  "an fp_on_free callback ran with the bridge's lock held by its own thread");
    fprintf(stderr, "release_from_threads: %lu operations, %lu callbacks, %lu at the cap\n",
            atomic_load(&d->ops), atomic_load(&d->callbacks), atomic_load(&d->limits));
    fp_unref(&d->b);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
END_TEST


/* ---- a full shared budget ---------------------------------------------------------------- */

/* A file reader whose budget cannot hold one decoder buffer: FP_ELIMIT whose
 * message names the budget (its cap, the bytes in use, the buffer asked for)
 * and what to do, not max_held (the pool bound it did not reach). */
START_TEST(file_reader_over_its_budget_names_the_budget)
{
    static const fp_pixfmt fmts[] = {FP_PIX_NONE, FP_PIX_BGR24};
    for (int k = 0; k < 2; k++) {
        fp_budget *b = NULL;
        ck_assert_int_eq(fp_budget_new(100000, &b), 0);
        fp_reader_options o = {0};
        o.budget = b;
        o.format = fmts[k];
        fp_reader *r = NULL;
        int rc = fp_reader_open(clip_h264, &o, &r);
        fp_image *img = NULL;
        while (rc == 0 && (rc = fp_reader_next(r, &img)) == 1)
            ;
        fp_unref(&img);
        const char *msg = r ? fp_reader_errmsg(r) : fp_errmsg();
        fprintf(stderr, "file_reader_over_its_budget (format %d): %d %s\n", (int)fmts[k], rc,
                msg);
        ck_assert_msg(rc == FP_ELIMIT, "rc %d: %s", rc, msg);
        ck_assert_msg(strstr(msg, "budget is full") && strstr(msg, "100000 bytes") &&
                          strstr(msg, "raise the budget") && strstr(msg, "fewer readers") &&
                          !strstr(msg, "max_held"),
                      "%s", msg);
        fp_budget_stats bs;
        fp_budget_get_stats(b, &bs);
        ck_assert_uint_ge(bs.refusals, 1);
        ck_assert_uint_le(bs.peak_bytes, bs.max_bytes);
        fp_reader_close(&r);
        fp_unref(&b);
    }
}
END_TEST

/* The bridge tells the two FP_ELIMITs apart: the decoder pool at its cap
 * (max_held's message) and a budget too full for one more buffer below it
 * (the budget's message, with its figures then). */
START_TEST(bridge_tells_pool_cap_from_full_budget)
{
    fp_layout l;
    ck_assert_int_eq(fp_layout_compute(FP_PIX_GRAY8, 64, 64, 64, 0, &l), 0);
    fp_budget *bud = NULL;
    ck_assert_int_eq(fp_budget_new(64u << 20, &bud), 0);
    fp__bridge *b = fp__bridge_new(1, "cap");
    ck_assert_ptr_nonnull(b);
    b->budget = bud;
    fp_image *a = NULL, *c = NULL;
    ck_assert_int_eq(fp__bridge_acquire(b, AV_PIX_FMT_GRAY8, 64, 64, &l, &a), 0);
    ck_assert_int_eq(fp__bridge_acquire(b, AV_PIX_FMT_GRAY8, 64, 64, &l, &c), FP_ELIMIT);
    ck_assert_int_eq(atomic_load(&b->exhausted), FP__EXHAUSTED_CAP);
    ck_assert_uint_eq(atomic_load(&b->budget_refusals), 0);
    fp__bridge_release(b, fp__img(a)->pixels);
    fp_unref(&b);
    fp_unref(&bud);

    ck_assert_int_eq(fp_budget_new(l.size + l.size / 2, &bud), 0);
    b = fp__bridge_new(8, "budget");
    ck_assert_ptr_nonnull(b);
    b->budget = bud;
    ck_assert_int_eq(fp__bridge_acquire(b, AV_PIX_FMT_GRAY8, 64, 64, &l, &a), 0);
    ck_assert_int_eq(fp__bridge_acquire(b, AV_PIX_FMT_GRAY8, 64, 64, &l, &c), FP_ELIMIT);
    ck_assert_int_eq(atomic_load(&b->exhausted), FP__EXHAUSTED_BUDGET);
    ck_assert_uint_eq(atomic_load(&b->budget_refusals), 1);
    pthread_mutex_lock(&b->mu);
    ck_assert_uint_eq(b->refused_max, l.size + l.size / 2);
    ck_assert_uint_ge(b->refused_used, l.size);
    ck_assert_uint_ge(b->refused_bytes, l.size);
    pthread_mutex_unlock(&b->mu);
    fp__bridge_release(b, fp__img(a)->pixels);
    fp_unref(&b);
    fp_unref(&bud);
}
END_TEST

static _Atomic int disconnects, connects;

static void count_events(const fp_live_event *ev, void *user)
{
    (void)user;
    if (ev->type == FP_LIVE_DISCONNECTED) {
        atomic_fetch_add(&disconnects, 1);
        fprintf(stderr, "live_budget: disconnected: %s\n", ev->message);
    }
    if (ev->type == FP_LIVE_CONNECTED)
        atomic_fetch_add(&connects, 1);
}

/* A live reader (MPEG-2 in MPEG-TS over tcp from ffmpeg, H.264 over RTSP from
 * GStreamer, both on 127.0.0.1) whose
 * budget holds the decoder's pictures but not the many frames the caller
 * keeps: the decoder is refused buffers, each a lost frame
 * (stats.budget_drops), not a decode error; the connection goes on (more
 * drops than the error budget allows errors, no reconnect), and frames come
 * again once the caller releases its frames. The caller holds its frames
 * for well over the stall limit: frames lost to the budget show that the
 * source is sending, so the connection is not taken for stalled. */
START_TEST(live_reader_over_its_budget_goes_on)
{
    atomic_store(&disconnects, 0);
    atomic_store(&connects, 0);
    char url[96];
    pid_t srv;
    if (_i == 0) {
        int port = local_url(url, sizeof url, "tcp", "");
        srv = tcp_server(port, "testsrc2", "320x240", NULL);
    } else { /* H.264 over RTSP: the lost pictures were references */
        int port = local_url(url, sizeof url, "rtsp", "/test");
        srv = rtsp_server(port, "320x240");
    }
    fprintf(stderr, "live_budget: %s\n", _i ? "H.264 over RTSP" : "MPEG-2 over tcp");
    /* a 320x240 yuv420p picture takes about 120 KB: room for about 12 */
    size_t cap = 1500000;
    fp_budget *bud = NULL;
    ck_assert_int_eq(fp_budget_new(cap, &bud), 0);
    fp_reader_options o = {0};
    o.threads = 1;
    o.budget = bud;
    o.max_held = 64;
    o.timeout_us = 200000;
    o.live.mode = FP_LIVE_ALL;
    o.live.reconnect_min = 0.1;
    o.live.reconnect_max = 0.4;
    double stall = 1.0 * tu_slack();
    o.live.stall = stall;
    o.live.on_event = count_events;
    fp_reader *r = NULL;
    ck_assert_msg(fp_reader_open(url, &o, &r) == 0, "%s", fp_errmsg());
    enum { MAX = 64, DROPS = 3 * FP_READER_ERROR_BUDGET_MIN };
    fp_image *held[MAX] = {NULL};
    int n = 0;
    fp_reader_stats st;
    fp_budget_stats bs;
    uint64_t tries = 0, drops_at_last = 0, refusals_at_last = 0;
    /* the budget's refusals count at once; the reader's stats.budget_drops
     * too: checked after the loop against its value at the last frame */
    double end = tu_now() + 30 * tu_slack() + 3 * stall, refused_since = 0;
    for (;;) {
        fp_budget_get_stats(bud, &bs);
        if (bs.refusals && !refused_since)
            refused_since = tu_now();
        /* enough lost frames, and none delivered for 2.5 stall limits */
        if ((bs.refusals >= DROPS && tu_now() - refused_since > 2.5 * stall) ||
            tu_now() > end)
            break;
        fp_image *img = NULL;
        int rc = fp_reader_next(r, &img);
        if (rc == FP_ETIMEDOUT)
            continue;
        ck_assert_msg(rc == 1, "next: %d %s", rc, fp_reader_errmsg(r));
        ck_assert_msg(n < MAX, "the budget of %zu bytes held %d frames", cap, n);
        held[n++] = img;
        fp_reader_stats ls;
        ck_assert_int_eq(fp_reader_get_stats(r, &ls), 0);
        drops_at_last = ls.budget_drops;
        fp_budget_get_stats(bud, &bs);
        refusals_at_last = bs.refusals;
        if (n == 1) { /* connected: tries before the server listened are not counted */
            ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
            tries = st.reconnects;
        }
    }
    ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
    fprintf(stderr,
            "live_budget: holding %d frames, %llu refusals, decode_errors %llu, reconnects %llu, "
            "budget %llu of %llu bytes\n",
            n, (unsigned long long)bs.refusals, (unsigned long long)st.decode_errors,
            (unsigned long long)st.reconnects, (unsigned long long)bs.used_bytes,
            (unsigned long long)bs.max_bytes);
    ck_assert_msg(bs.refusals >= DROPS, "%llu refusals while holding %d frames",
                  (unsigned long long)bs.refusals, n);
    ck_assert_uint_le(bs.peak_bytes, cap);
    ck_assert_uint_eq(st.reconnects, tries);
    ck_assert_int_eq(atomic_load(&disconnects), 0);
    ck_assert_int_eq(st.connected, 1);
    ck_assert_uint_lt(st.decode_errors, FP_READER_ERROR_BUDGET_MIN);
    /* the lost frames show in the reader's statistics while they happen,
     * not with the next frame delivered */
    ck_assert_msg(bs.refusals > refusals_at_last && st.budget_drops > drops_at_last &&
                      st.budget_drops <= bs.refusals,
                  "budget_drops %llu at the last frame delivered, %llu now; refusals %llu "
                  "then, %llu now",
                  (unsigned long long)drops_at_last, (unsigned long long)st.budget_drops,
                  (unsigned long long)refusals_at_last, (unsigned long long)bs.refusals);
    /* the caller lets go: frames come again on the same connection */
    for (int i = 0; i < n; i++)
        fp_unref(&held[i]);
    uint64_t drops = bs.refusals;
    fp_image *img = NULL;
    int got = 0;
    end = tu_now() + 30 * tu_slack();
    while (got < 25 && tu_now() < end) {
        int rc = fp_reader_next(r, &img);
        if (rc == FP_ETIMEDOUT)
            continue;
        ck_assert_msg(rc == 1, "next: %d %s", rc, fp_reader_errmsg(r));
        got++;
    }
    fp_unref(&img);
    ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
    fprintf(stderr, "live_budget: %d frames after the release, budget_drops %llu (%llu refusals "
            "while held), decode_errors %llu\n", got, (unsigned long long)st.budget_drops,
            (unsigned long long)drops, (unsigned long long)st.decode_errors);
    ck_assert_int_eq(got, 25);
    /* a lost frame per packet (H.264 asks again for each slice of a picture) */
    ck_assert_uint_ge(st.budget_drops, _i ? 1 : drops / 2);
    ck_assert_uint_le(st.budget_drops, drops);
    ck_assert_uint_lt(st.decode_errors, FP_READER_ERROR_BUDGET_MIN);
    ck_assert_uint_eq(st.reconnects, tries);
    ck_assert_int_eq(atomic_load(&disconnects), 0);
    ck_assert_int_eq(atomic_load(&connects), 1);
    fp_reader_close(&r);
    fp_unref(&bud);
    reap(&srv);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("bridge");
    TCase *tc = tcase_create("bridge");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, UNDER_SANITIZER ? 240 : 90);
    tcase_add_test(tc, callbacks_outside_locks_on_flush);
    tcase_add_test(tc, callbacks_outside_locks_on_close);
    tcase_add_test(tc, release_from_threads);
    tcase_add_test(tc, file_reader_over_its_budget_names_the_budget);
    tcase_add_test(tc, bridge_tells_pool_cap_from_full_budget);
    {
        const char *only = getenv("FP_LIVE_ONLY");
        if (!only || strstr("live_reader_over_its_budget_goes_on", only))
            tcase_add_loop_test(tc, live_reader_over_its_budget_goes_on, 0, 2);
    }
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
