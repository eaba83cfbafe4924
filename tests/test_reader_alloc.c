/*
 * Allocation-failure sweeps through the whole reader: open, decode a few
 * frames, seek (precise and key), keep a frame past close, close.
 *
 *  - framepool's allocator hook: for every N, the Nth allocation fails
 *    (tu_alloc_fail_at). Every run must end in success or an error code,
 *    leave no framepool allocation behind (the hook's live count returns to
 *    zero) and no live object (fp_diag_leak_report finds nothing); under the
 *    ASan build LeakSanitizer also checks FFmpeg's side at exit.
 *  - FFmpeg's allocator: av_max_alloc limits sizes, not counts, so the FFmpeg
 *    side is a sweep over size thresholds (every power of two and 1.5 times
 *    one, 16 B .. 16 MiB): each run fails every FFmpeg allocation above the
 *    threshold, starting with the first one that large.
 *  - FFmpeg counted: in the plain build, posix_memalign is interposed for
 *    calls coming from libavutil (av_malloc's only path) and the Nth such
 *    call fails. Sanitizer builds own posix_memalign, so there it is skipped
 *    with a notice (the size sweep still runs).
 *
 * Clips: tiny (64x48, 8 frames) H.264 with B-frames in MP4 (zero-copy
 * decode), MJPEG in AVI, and raw video in Y4M (frames wrapped, not DR1).
 */
#define _GNU_SOURCE
#include "avclips.h"
#include "av_interpose.h"
#include "testutil.h"

#include <framepool.h>
#include <framepool/diag.h>

#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRC "-f lavfi -i testsrc2=size=64x48:rate=10 -frames:v 8 "

typedef struct clip {
    const char *name, *args;
    int seekable_precise; /* the container seeks (y4m and MJPEG-AVI do too) */
} clip;

static const clip clips[] = {
    {"ra_h264.mp4", SRC "-c:v libx264 -preset ultrafast -bf 2 -g 4 -pix_fmt yuv420p", 1},
    {"ra_mjpeg.avi", SRC "-c:v mjpeg -pix_fmt yuvj420p", 1},
    {"ra_raw.y4m", SRC "-pix_fmt yuv420p", 1},
};
#define NCLIPS (int)(sizeof clips / sizeof clips[0])

/* Memory-input variant: the clip's bytes, read once. */
static void *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    ck_assert_int_gt(n, 0);
    void *b = malloc((size_t)n);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* When FFmpeg's own allocations fail it reports whatever its failing code
 * path returns (a failed protocol-table allocation reads "Protocol not
 * found", FP_EUNKNOWN): any documented error code then counts as an error
 * code. framepool-side failures must say FP_ENOMEM or what the API documents. */
static int any_error_ok;

static int ok_error(int rc)
{
    if (any_error_ok)
        return rc < 0 && rc != FP_ELIMIT && strcmp(fp_strerror(rc), "unknown error") != 0;
    return rc == FP_ENOMEM || rc == FP_EDECODE || rc == FP_EIO || rc == FP_EFORMAT;
}

/* The scenario. Returns the number of frames delivered; every step's return
 * must be success or an error code the API documents for it. */
static int scen_threads = 1;
static int scen_ahead = 0; /* fp_reader_options.convert_ahead */

static int scenario(const char *path, const void *mem, size_t len, fp_pixfmt fmt)
{
    fp_reader_options o = {0};
    o.format = fmt;
    o.threads = scen_threads;
    o.max_held = 3;
    o.convert_ahead = scen_ahead;
    fp_reader *r = NULL;
    int rc = mem ? fp_reader_open_memory(mem, len, &o, &r) : fp_reader_open(path, &o, &r);
    if (rc != 0) {
        ck_assert_msg(ok_error(rc), "open: %d (%s)", rc, fp_reader_errmsg(r));
        ck_assert_msg(r == NULL || fp_reader_errmsg(r)[0], "open failed without a message");
        fp_reader_close(&r);
        return 0;
    }
    int frames = 0;
    fp_image *img = NULL, *kept = NULL;
    for (int i = 0; i < 4; i++) {
        rc = fp_reader_next(r, &img);
        ck_assert_msg(rc >= 0 || ok_error(rc), "next: %d (%s)", rc, fp_reader_errmsg(r));
        ck_assert((rc == 1) == (img != NULL));
        if (rc <= 0)
            break;
        frames++;
        if (i == 1)
            kept = fp_ref(img);
    }
    rc = fp_reader_seek(r, 0.35, FP_SEEK_PRECISE);
    ck_assert_msg(rc == 0 || ok_error(rc), "seek: %d (%s)", rc, fp_reader_errmsg(r));
    for (int i = 0; rc == 0 && i < 2; i++) {
        rc = fp_reader_next(r, &img);
        ck_assert_msg(rc >= 0 || ok_error(rc), "next after seek: %d (%s)", rc,
                      fp_reader_errmsg(r));
        if (rc <= 0)
            break;
        frames++;
        rc = 0;
    }
    rc = fp_reader_seek(r, 0, FP_SEEK_KEY);
    ck_assert_msg(rc == 0 || ok_error(rc), "seek 0: %d (%s)", rc, fp_reader_errmsg(r));
    if (rc == 0) {
        rc = fp_reader_next(r, &img);
        ck_assert_msg(rc >= 0 || ok_error(rc), "next after seek 0: %d (%s)", rc,
                      fp_reader_errmsg(r));
        frames += rc == 1;
    }
    fp_reader_stats st;
    ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
    fp_reader_close(&r);
    ck_assert_ptr_null(r);
    if (kept) { /* the frame outlives the reader: read its pixels */
        volatile uint8_t x = kept->data[0][0];
        (void)x;
    }
    fp_unref(&kept);
    fp_unref(&img);
    return frames;
}


static void setup(void)
{
    av_log_set_level(AV_LOG_QUIET);
    ck_assert_int_eq(fp_diag_configure("sites"), 0);
}

/* ---- framepool's allocator: fail the Nth allocation, for every N ------------------------- */

static void sweep_framepool(int c, int use_mem, fp_pixfmt fmt)
{
    char path[1024];
    ck_assert_ptr_nonnull(clip_make(clips[c].name, clips[c].args, path, sizeof path));
    size_t len = 0;
    void *mem = use_mem ? slurp(path, &len) : NULL;
    tu_alloc_install();
    int full = scenario(path, mem, len, fmt);
    uint64_t n = tu_alloc_count();
    ck_assert_int_ge(full, 6); /* 4 + 2 after the precise seek (+1 after seek 0) */
    tu_alloc_assert_clean("dry run", 0);
    ck_assert_uint_gt(n, 3);
    int succeeded = 0;
    for (uint64_t k = 1; k <= n; k++) {
        tu_alloc_fail_at(k);
        int got = scenario(path, mem, len, fmt);
        succeeded += got == full;
        tu_alloc_assert_clean("failing allocation", (unsigned long long)k);
    }
    printf("%s %s %s%s: %llu framepool allocations, each failed once: %d runs still delivered "
           "every frame, the rest ended in an error code; no leak\n",
           clips[c].name, use_mem ? "memory" : "file", fmt ? "bgr24" : "native",
           scen_threads > 1 ? " 2 threads" : "", (unsigned long long)n, succeeded);
    tu_alloc_uninstall();
    free(mem);
}

START_TEST(framepool_sweep_native)
{
    sweep_framepool(_i, 0, FP_PIX_NONE);
}
END_TEST

START_TEST(framepool_sweep_bgr_memory)
{
    sweep_framepool(_i, 1, FP_PIX_BGR24);
}
END_TEST

/* Frame threads: the decoder asks for buffers from its worker threads. The
 * allocation order varies from run to run; every N up to the dry run's count
 * is still failed once. */
START_TEST(framepool_sweep_frame_threads)
{
    scen_threads = 2;
    sweep_framepool(0, _i, _i ? FP_PIX_BGR24 : FP_PIX_NONE);
    scen_threads = 1;
}
END_TEST

/* Converting ahead: the worker's start (its frame, mutex, thread) and every
 * frame handed to it, from file (with frame threads) and from memory. */
START_TEST(framepool_sweep_convert_ahead)
{
    scen_ahead = 1;
    scen_threads = _i ? 2 : 1;
    sweep_framepool(0, _i, FP_PIX_BGR24);
    scen_threads = 1;
    scen_ahead = 0;
}
END_TEST

/* ---- FFmpeg's allocator: size thresholds with av_max_alloc ------------------------------ */

static void sweep_av_max_alloc(int c, fp_pixfmt fmt)
{
    char path[1024];
    ck_assert_ptr_nonnull(clip_make(clips[c].name, clips[c].args, path, sizeof path));
    tu_alloc_install();
    int full = scenario(path, NULL, 0, fmt);
    ck_assert_int_ge(full, 6);
    int runs = 0, failed = 0;
    for (size_t t = 16; t <= ((size_t)16 << 20); t *= 2) {
        for (int half = 0; half < 2; half++) {
            size_t lim = half ? t + t / 2 : t;
            av_max_alloc(lim);
            any_error_ok = 1;
            int got = scenario(path, NULL, 0, fmt);
            av_max_alloc(INT32_MAX);
            runs++;
            failed += got != full;
            tu_alloc_assert_clean("av_max_alloc", (unsigned long long)lim);
        }
    }
    ck_assert_int_gt(failed, 0); /* the small limits must break something */
    printf("%s %s: %d av_max_alloc thresholds, %d runs lost frames (ended in an error code); "
           "no leak\n",
           clips[c].name, fmt ? "bgr24" : "native", runs, failed);
    tu_alloc_uninstall();
}

START_TEST(ffmpeg_size_sweep)
{
    sweep_av_max_alloc(_i, _i == 1 ? FP_PIX_BGR24 : FP_PIX_NONE);
}
END_TEST

/* ---- FFmpeg's allocator counted: fail libavutil's Nth posix_memalign ------------------------ */

#if FP_AV_INTERPOSE
START_TEST(ffmpeg_count_sweep)
{
    av_interpose_init();
    char path[1024];
    /* the last round: clip 1 (BGR24) again, converting ahead */
    int c = _i < NCLIPS ? _i : 1;
    scen_ahead = _i == NCLIPS;
    ck_assert_ptr_nonnull(clip_make(clips[c].name, clips[c].args, path, sizeof path));
    fp_pixfmt fmt = c == 1 ? FP_PIX_BGR24 : FP_PIX_NONE;
    tu_alloc_install();
    av_calls = 0;
    av_fail_at = 0;
    av_armed = 1;
    any_error_ok = 1;
    int full = scenario(path, NULL, 0, fmt);
    unsigned long long n = av_calls;
    ck_assert_int_ge(full, 6);
    ck_assert_uint_gt(n, 10); /* the interposition works: FFmpeg allocates through it */
    int lost = 0;
    for (unsigned long long k = 1; k <= n; k++) {
        av_calls = 0;
        av_fail_at = k;
        int got = scenario(path, NULL, 0, fmt);
        lost += got != full;
        av_fail_at = 0;
        tu_alloc_assert_clean("failing av_malloc", k);
    }
    av_armed = 0;
    ck_assert_int_gt(lost, 0);
    printf("%s %s: %llu av_malloc calls, each failed once: %d runs lost frames (ended in an "
           "error code or FFmpeg concealed it); no framepool leak\n",
           clips[c].name, scen_ahead ? "bgr24 ahead" : fmt ? "bgr24" : "native", n, lost);
    tu_alloc_uninstall();
    scen_ahead = 0;
}
END_TEST
#endif

static Suite *suite(void)
{
    Suite *s = suite_create("reader_alloc");
    TCase *tc = tcase_create("sweep");
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, framepool_sweep_native, 0, NCLIPS);
    tcase_add_loop_test(tc, framepool_sweep_bgr_memory, 0, NCLIPS);
    tcase_add_loop_test(tc, framepool_sweep_frame_threads, 0, 2);
    tcase_add_loop_test(tc, framepool_sweep_convert_ahead, 0, 2);
    tcase_add_loop_test(tc, ffmpeg_size_sweep, 0, NCLIPS);
#if FP_AV_INTERPOSE
    tcase_add_loop_test(tc, ffmpeg_count_sweep, 0, NCLIPS + 1);
#else
    printf("reader_alloc: sanitizer build: the counted FFmpeg sweep (posix_memalign "
           "interposition) is skipped; the av_max_alloc size sweep runs\n");
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
