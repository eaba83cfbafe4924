/*
 * The reader fuzz harness proper, shared by the libFuzzer target
 * (fuzz_reader.c) and the regression test (tests/test_fuzz_regress.c).
 *
 * One input is opened from memory twice — native output, then BGR24 — and
 * every frame is pulled (bounded), each pixel row's ends are read (so that a
 * plane shorter than its declared geometry trips AddressSanitizer), a seek
 * back to the start is tried, and the reader is closed. Invariants of the API
 * contract that do not depend on the input are checked; a violation is
 * reported through fpfz_violation() (which aborts under the fuzzer).
 *
 * Memory is bounded without looking at the input: framepool's allocator hook
 * and av_max_alloc refuse single allocations above FPFZ_MAX_ALLOC, so frames
 * of a few thousand pixels per side decode normally while absurd ones fail
 * cleanly with an error code — which is itself a path worth fuzzing.
 */
#define _POSIX_C_SOURCE 200809L
#include "fuzz_reader_body.h"
#include "internal.h" /* fp__obj_quarantine_flush (debug builds) */

#include <framepool.h>
#include <libavutil/common.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <libavutil/pixdesc.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a bounded, counting allocator ---------------------------------------------------------- */

static struct {
    long long live, live_bytes;
    unsigned long long refused;
} fz_mem;

static void *fz_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    if (size > FPFZ_MAX_ALLOC) {
        fz_mem.refused++;
        return NULL;
    }
    void *p = NULL;
    if (align < sizeof(void *))
        align = sizeof(void *);
    if (posix_memalign(&p, align, size) != 0)
        return NULL;
    __atomic_add_fetch(&fz_mem.live, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&fz_mem.live_bytes, (long long)size, __ATOMIC_RELAXED);
    return p;
}

static void fz_free(void *p, size_t size, void *user)
{
    (void)user;
    if (!p)
        return;
    __atomic_sub_fetch(&fz_mem.live, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&fz_mem.live_bytes, (long long)size, __ATOMIC_RELAXED);
    free(p);
}

void fpfz_init(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    av_log_set_level(AV_LOG_QUIET);
    av_max_alloc(FPFZ_MAX_ALLOC);
    fp_allocator a = {fz_alloc, fz_free, NULL};
    fp_set_allocator(&a);
}

long long fpfz_live_allocations(void)
{
    fp__obj_quarantine_flush(); /* debug builds hold freed objects back for a while */
    return __atomic_load_n(&fz_mem.live, __ATOMIC_RELAXED);
}

/* ---- invariants -------------------------------------------------------------------------- */

static int fz_failed;

static void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz_reader: invariant broken: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fz_failed = 1;
    fpfz_violation();
}

/* Reads the first and last byte of every row of every plane. The geometry
 * comes from FFmpeg's description of av_format (independent of framepool's
 * own layout, and also there for wrapped frames, which have none). */
static unsigned touch_image(const fp_image *img)
{
    const AVPixFmtDescriptor *d = img->av_format >= 0 ? av_pix_fmt_desc_get(img->av_format) : NULL;
    int linesize[4];
    if (!d || av_image_fill_linesizes(linesize, img->av_format, img->width) < 0) {
        fz_fail("delivered %dx%d image has no usable av_format (%d)", img->width, img->height,
                img->av_format);
        return 0;
    }
    int planes = av_pix_fmt_count_planes(img->av_format);
    unsigned sum = 0;
    for (int p = 0; p < planes && p < 4; p++) {
        const uint8_t *base = img->data[p];
        int stride = img->stride[p];
        int rows = (p == 1 || p == 2) ? AV_CEIL_RSHIFT(img->height, d->log2_chroma_h) : img->height;
        if (!base || stride < linesize[p] || linesize[p] <= 0) {
            fz_fail("plane %d of a %dx%d %s image: data %p stride %d, needs %d", p, img->width,
                    img->height, d->name, (const void *)base, stride, linesize[p]);
            return sum;
        }
        for (int y = 0; y < rows; y++) {
            const uint8_t *row = base + (size_t)y * (size_t)stride;
            sum += row[0] + row[linesize[p] - 1];
        }
    }
    return sum;
}

static int valid_next_rc(int rc)
{
    return rc == 1 || rc == 0 || rc == FP_EDECODE || rc == FP_EIO || rc == FP_ENOMEM ||
           rc == FP_EFORMAT || rc == FP_ELIMIT || rc == FP_EHELD ||
           rc == FP_EINVAL;
}

static void check_frame(const fp_reader_options *o, const fp_image *img)
{
    if (img->width < 1 || img->height < 1 || img->width > FP_MAX_DIMENSION ||
        img->height > FP_MAX_DIMENSION)
        fz_fail("frame size %dx%d", img->width, img->height);
    if (o->format != FP_PIX_NONE && img->format != o->format)
        fz_fail("asked for format %d, got %d", (int)o->format, (int)img->format);
    if (o->format == FP_PIX_BGR24 && img->stride[0] < img->width * 3)
        fz_fail("bgr24 stride %d for width %d", img->stride[0], img->width);
    if (fp_refcount(img) < 1)
        fz_fail("delivered frame with refcount 0");
}

/* One pass over the input with `o`. Holds up to two frames at once (the
 * current one and one kept from earlier) to exercise the held-frame limit. */
/* Non-seekable custom input, handed out in uneven small chunks. */
typedef struct fz_stream {
    const uint8_t *data;
    size_t size, pos;
} fz_stream;

static int fz_read(void *user, uint8_t *buf, int want)
{
    fz_stream *s = user;
    size_t left = s->size - s->pos;
    size_t n = (size_t)want < left ? (size_t)want : left;
    if (n > 1 + (s->pos % 997))
        n = 1 + (s->pos % 997);
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    return (int)n;
}

static void one_pass(const uint8_t *data, size_t size, const fp_reader_options *o, int seek,
                     int stream)
{
    fp_reader *r = NULL;
    fz_stream fs = {data, size, 0};
    int rc = stream ? fp_reader_open_io(fz_read, NULL, &fs, o, &r)
                    : fp_reader_open_memory(data, size, o, &r);
    if (rc != 0) {
        if (rc > 0)
            fz_fail("open returned %d", rc);
        if (r && !fp_reader_errmsg(r)[0])
            fz_fail("open failed (%d) without a message", rc);
        fp_reader_close(&r);
        return;
    }
    if (!r) {
        fz_fail("open succeeded without a reader");
        return;
    }
    fp_reader_info info;
    if (fp_reader_info(r, &info) != 0)
        fz_fail("info on an open reader failed");
    if (info.width < 0 || info.height < 0 || info.width > FP_MAX_DIMENSION ||
        info.height > FP_MAX_DIMENSION)
        fz_fail("open accepted a %dx%d stream", info.width, info.height);
    fp_image *img = NULL, *kept = NULL;
    long long pixels = 0;
    for (int round = 0; round < (seek ? 2 : 1); round++) {
        for (int i = 0; i < FPFZ_MAX_FRAMES; i++) {
            rc = fp_reader_next(r, &img);
            if (!valid_next_rc(rc))
                fz_fail("next returned %d (%s)", rc, fp_reader_errmsg(r));
            if ((rc == 1) != (img != NULL))
                fz_fail("next returned %d with image %p", rc, (void *)img);
            if (rc == FP_EHELD || rc == FP_ELIMIT) {
                fp_reader_stats es;
                fp_reader_get_stats(r, &es);
                fz_fail("held-frame limit hit while holding %d frame(s): %s (stats: held %u, "
                        "decoder_held %u, pool out %llu alloc %llu peak %llu limits %llu gen %u, "
                        "size changes %llu, wrapped %llu, delivered %llu)",
                        kept ? 1 : 0, fp_reader_errmsg(r), es.held, es.decoder_held,
                        (unsigned long long)es.pool.outstanding,
                        (unsigned long long)es.pool.allocated, (unsigned long long)es.pool.peak,
                        (unsigned long long)es.pool.limits, es.pool.generation,
                        (unsigned long long)es.size_changes,
                        (unsigned long long)es.wrapped, (unsigned long long)es.delivered);
            }
            if (rc != 1)
                break;
            check_frame(o, img);
            (void)touch_image(img);
            if (i == 1 && !kept)
                kept = fp_ref(img);
            pixels += (long long)img->width * img->height;
            if (pixels > FPFZ_MAX_PIXELS)
                break;
        }
        fp_unref(&img);
        if (seek && round == 0) {
            rc = fp_reader_seek(r, 0, (size & 1) ? FP_SEEK_PRECISE : FP_SEEK_KEY);
            if (rc > 0 || (stream && rc != FP_EIO))
                fz_fail("seek returned %d%s", rc, stream ? " on a non-seekable input" : "");
            if (rc < 0)
                break;
        }
    }
    fp_reader_stats st;
    if (fp_reader_get_stats(r, &st) != 0)
        fz_fail("stats on an open reader failed");
    else if (st.held != (kept ? 1u : 0u))
        fz_fail("stats.held %u while holding %d", st.held, kept ? 1 : 0);
    else if (st.pool.peak > info.pool_max_buffers ||
             (info.out_pool_max_buffers && st.out_pool.peak > info.out_pool_max_buffers))
        fz_fail("pool peaks %llu/%llu beyond their caps %u/%u",
                (unsigned long long)st.pool.peak, (unsigned long long)st.out_pool.peak,
                info.pool_max_buffers, info.out_pool_max_buffers);
    fp_reader_close(&r);
    if (r)
        fz_fail("close left the pointer set");
    if (kept) { /* a frame outlives its reader */
        (void)touch_image(kept);
        fp_unref(&kept);
    }
}

int fpfz_run_one(const uint8_t *data, size_t size)
{
    fpfz_init();
    fz_failed = 0;
    long long live0 = fpfz_live_allocations();

    /* Options vary with the input's first and last bytes, so that mutations
     * reach every/start/resize and the streaming path too. */
    unsigned h = size ? (unsigned)data[0] * 31u + data[size - 1] : 0;

    fp_reader_options o = {0};
    o.threads = 1; /* deterministic: the fuzzer needs reproducible runs */
    o.max_held = 2;
    if ((h & 7) == 5)
        o.every = 2;
    one_pass(data, size, &o, 1, 0);

    fp_reader_options b = {0};
    b.threads = 1;
    b.max_held = 2;
    b.format = FP_PIX_BGR24;
    switch (h % 5) {
    case 1: b.width = 33; break;                 /* odd width, height keeps the aspect */
    case 2: b.width = 20; b.height = 70; break;  /* both given, aspect changed */
    case 3: b.start = 0.15; break;               /* a precise seek at open */
    default: break;
    }
    one_pass(data, size, &b, 0, 0);

    if ((h & 3) == 2) { /* non-seekable streaming input, native */
        fp_reader_options n = {0};
        n.threads = 1;
        n.max_held = 2;
        one_pass(data, size, &n, 1, 1);
    }

    long long live1 = fpfz_live_allocations();
    if (live1 != live0)
        fz_fail("framepool allocations live before %lld, after closing %lld", live0, live1);
    return fz_failed ? -1 : 0;
}
