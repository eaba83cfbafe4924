/* Memory per frame: a leaking loop fails with the right slope, a steady loop
 * passes, warm-up ends when pool misses stop. */
#define _GNU_SOURCE
#include "testutil.h"

#include <framepool.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static const fp_type frame_obj_type = {"frame_obj", NULL};

/* AddressSanitizer's fake stack (detect_stack_use_after_return) gives every
 * call with addressable locals a frame from a per-thread ring that is
 * touched for the first time as it fills: about a page of new RSS per loop
 * iteration until the ring wraps. Steady-loop cases then warm up longer. */
#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif
#ifdef TU_ASAN
extern void *__asan_get_current_fake_stack(void);
static int fake_stack_on(void)
{
    return __asan_get_current_fake_stack() != NULL;
}
#else
static int fake_stack_on(void)
{
    return 0;
}
#endif

/* Warm-up frames for steady loops: the default, or enough to wrap ASan's
 * fake stack (see above). */
static unsigned steady_warmup(void)
{
    if (!fake_stack_on())
        return 0;
    printf("note: ASan fake stack active: steady loops warm up for 30000 frames\n");
    return 30000;
}


#define LEAK_BYTES (64 * 1024)
#define FRAMES 400

START_TEST(leaking_loop_fails_with_its_slope)
{
    fp_memtrack *t = NULL;
    ck_assert_int_eq(fp_memtrack_new(NULL, &t), 0);
    void **leaks = calloc(FRAMES, sizeof *leaks);
    int failures = 0;
    for (int f = 0; f < FRAMES; f++) {
        leaks[f] = malloc(LEAK_BYTES);
        memset(leaks[f], f & 0xff, LEAK_BYTES); /* touch: the pages become resident */
        failures += fp_memtrack_sample(t) != 0;
    }
    ck_assert_int_eq(failures, 0);
    fp_memtrack_result r;
    ck_assert_int_eq(fp_memtrack_result_get(t, &r), 0);
    ck_assert_int_eq(r.verdict, FP_MEMTRACK_FAIL);
    ck_assert_uint_eq(r.frames, FRAMES);
    ck_assert_uint_eq(r.warmup_frames, 60); /* no pools: the minimum */
    ck_assert(r.warmup_ended);
    ck_assert(r.fail_reasons & 1u);
    /* About N bytes per frame (a sanitizer's shadow memory adds up to ~1/8). */
    ck_assert_msg(r.slope > 0.9 * LEAK_BYTES && r.slope < 1.6 * LEAK_BYTES, "slope %.1f",
                  r.slope);
    ck_assert_int_gt(r.window_delta, (int64_t)LEAK_BYTES * 200);
    ck_assert(r.faults_per_frame >= 8); /* 16 new pages per frame */
    ck_assert(r.live_flat);
    ck_assert_uint_ge(r.peak_rss, (uint64_t)LEAK_BYTES * FRAMES);
    memout m;
    mo_open(&m);
    ck_assert_int_eq(fp_memtrack_print(t, m.f), FP_MEMTRACK_FAIL);
    const char *txt = mo_text(&m);
    ck_assert_msg(!strncmp(txt, "memory per frame: FAIL slope=", 29), "got %s", txt);
    ck_assert_ptr_nonnull(strstr(txt, " live=flat "));
    ck_assert_ptr_nonnull(strstr(txt, "  RssAnon grows "));
    ck_assert_ptr_nonnull(strstr(txt, "minor page faults per frame"));
    mo_close(&m);
    for (int f = 0; f < FRAMES; f++)
        free(leaks[f]);
    free(leaks);
    fp_unref(&t);
}
END_TEST

static void steady_pool_loop(fp_memtrack *t, int frames)
{
    int small = fake_stack_on(); /* long runs: keep each frame cheap */
    fp_pool_config cfg = {.name = "steady", .format = FP_PIX_GRAY8, .width = small ? 64 : 640,
                          .height = small ? 64 : 480, .max_buffers = 4};
    fp_pool *pool = NULL;
    ck_assert_int_eq(fp_pool_new(&cfg, &pool), 0);
    fp_image *held[3] = {NULL, NULL, NULL};
    /* No check assertions inside the measured loop: each one records its
     * location through a malloc'd message, and under AddressSanitizer (whose
     * quarantine never reuses freed memory at once) that alone grows RSS. */
    int failures = 0;
    for (int f = 0; f < frames; f++) {
        fp_image *img = NULL;
        if (fp_pool_acquire(pool, 0, &img) != 0) {
            failures++;
            break;
        }
        memset(img->data[0], f & 0xff, (size_t)img->stride[0] * (size_t)img->height);
        fp_unref(&held[f % 3]); /* keep the last three frames, like a decoder */
        held[f % 3] = img;
        fp_frame_tick();
        failures += fp_memtrack_sample(t) != 0;
    }
    ck_assert_int_eq(failures, 0);
    for (int i = 0; i < 3; i++)
        fp_unref(&held[i]);
    fp_unref(&pool);
}

START_TEST(steady_loop_passes)
{
    fp_memtrack_config cfg = {.min_warmup = steady_warmup()};
    int frames = FRAMES + (int)cfg.min_warmup;
    fp_memtrack *t = NULL;
    ck_assert_int_eq(fp_memtrack_new(&cfg, &t), 0);
    steady_pool_loop(t, frames);
    fp_memtrack_result r;
    ck_assert_int_eq(fp_memtrack_result_get(t, &r), 0);
    ck_assert_msg(r.verdict == FP_MEMTRACK_PASS, "slope %.1f faults %.3f live %.1f reasons %u",
                  r.slope, r.faults_per_frame, r.live_slope, r.fail_reasons);
    ck_assert_uint_eq(r.late_misses, 0);
    ck_assert(r.live_flat);
    memout m;
    mo_open(&m);
    ck_assert_int_eq(fp_memtrack_print(t, m.f), FP_MEMTRACK_PASS);
    ck_assert_msg(!strncmp(mo_text(&m), "memory per frame: PASS slope=", 29), "got %s",
                  mo_text(&m));
    ck_assert_ptr_nonnull(strstr(mo_text(&m), " live=flat "));
    char tail[64];
    snprintf(tail, sizeof tail, " frames=%d warmup=%u\n", frames,
             cfg.min_warmup ? cfg.min_warmup : 60);
    ck_assert_ptr_nonnull(strstr(mo_text(&m), tail));
    mo_close(&m);
    fp_unref(&t);
}
END_TEST

START_TEST(decimation_keeps_long_runs)
{
    fp_memtrack_config cfg = {.capacity = 64, .min_warmup = steady_warmup()};
    int frames = 2000 + (int)cfg.min_warmup;
    fp_memtrack *t = NULL;
    ck_assert_int_eq(fp_memtrack_new(&cfg, &t), 0);
    steady_pool_loop(t, frames);
    fp_memtrack_result r;
    ck_assert_int_eq(fp_memtrack_result_get(t, &r), 0);
    ck_assert_uint_eq(r.frames, (uint64_t)frames);
    ck_assert_int_eq(r.verdict, FP_MEMTRACK_PASS);
    fp_unref(&t);
}
END_TEST

START_TEST(warmup_ends_when_misses_stop)
{
    fp_memtrack_config cfg = {.manual_misses = 1, .quiet_frames = 10};
    fp_memtrack *t = NULL;
    ck_assert_int_eq(fp_memtrack_new(&cfg, &t), 0);
    for (int f = 1; f <= 300; f++) {
        fp_memtrack_note_pool_misses(t, f <= 100 ? (uint64_t)f : 100);
        ck_assert_int_eq(fp_memtrack_sample(t), 0);
    }
    fp_memtrack_result r;
    ck_assert_int_eq(fp_memtrack_result_get(t, &r), 0);
    ck_assert(r.warmup_ended);
    ck_assert_uint_eq(r.warmup_frames, 110);
    ck_assert_uint_eq(r.late_misses, 0);
    fp_unref(&t);

    /* Misses that never stop: warm-up is not detected, the second half is judged. */
    ck_assert_int_eq(fp_memtrack_new(&cfg, &t), 0);
    for (int f = 1; f <= 200; f++) {
        fp_memtrack_note_pool_misses(t, (uint64_t)f);
        ck_assert_int_eq(fp_memtrack_sample(t), 0);
    }
    ck_assert_int_eq(fp_memtrack_result_get(t, &r), 0);
    ck_assert(!r.warmup_ended);
    ck_assert_uint_eq(r.warmup_frames, 101);
    memout m;
    mo_open(&m);
    fp_memtrack_print(t, m.f);
    ck_assert_ptr_nonnull(strstr(mo_text(&m), "pool misses never stopped"));
    mo_close(&m);
    fp_unref(&t);

    /* Too short for a verdict: says how long a run must be. */
    ck_assert_int_eq(fp_memtrack_new(NULL, &t), 0);
    for (int f = 0; f < 70; f++)
        fp_memtrack_sample(t);
    ck_assert_int_eq(fp_memtrack_print(t, NULL), FP_MEMTRACK_INCONCLUSIVE);
    ck_assert_int_eq(fp_memtrack_result_get(t, &r), 0);
    ck_assert_int_eq(r.verdict, FP_MEMTRACK_INCONCLUSIVE);
    ck_assert_uint_eq(r.frames_needed, 60 + 30); /* warm-up + min_frames */
    mo_open(&m);
    fp_memtrack_print(t, m.f);
    ck_assert_msg(strstr(mo_text(&m), "run at least 90 frames"), "got %s", mo_text(&m));
    mo_close(&m);
    fp_unref(&t);
}
END_TEST

/* Series fed through fp_memtrack_record, as an outside observer does: the
 * same judge, on curves whose shape is known. */
#define SERIES 4000
static fp_memtrack *judge_series(uint64_t (*rss)(uint64_t frame), uint64_t (*flt)(uint64_t frame),
                                 fp_memtrack_result *r)
{
    fp_memtrack_config cfg = {.manual_misses = 1, .skip_fraction = 0.15};
    fp_memtrack *t = NULL;
    ck_assert_int_eq(fp_memtrack_new(&cfg, &t), 0);
    int bad = 0;
    for (uint64_t f = 1; f <= SERIES; f++)
        bad += fp_memtrack_record(t, f, rss(f), flt ? flt(f) : 0) != 0;
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(fp_memtrack_result_get(t, r), 0);
    return t;
}

/* RssAnon noise a correct loop shows: whole pages coming and going. */
static uint64_t noise(uint64_t f)
{
    uint64_t x = f * 0x9e3779b97f4a7c15ull;
    return ((x >> 40) % 3) * 4096;
}
static uint64_t flat(uint64_t f)
{
    return (40u << 20) + noise(f);
}
static uint64_t leak256(uint64_t f) /* malloc(256) every frame, never freed */
{
    return (40u << 20) + (f * 256 / 4096) * 4096 + noise(f);
}
static uint64_t forget_per_100(uint64_t f) /* one 1 MB frame kept every 100 frames */
{
    return (40u << 20) + (f / 100) * (1u << 20) + noise(f);
}
static uint64_t settles_late(uint64_t f) /* grows 100 B/frame up to frame 2200 */
{
    return (40u << 20) + ((f < 2200 ? f : 2200) * 100 / 4096) * 4096 + noise(f);
}
static uint64_t burst_faults(uint64_t f) /* 600 faults while settling, then none */
{
    return f < 800 ? f * 3 / 4 : 600;
}
static uint64_t save_faults(uint64_t f) /* 240 faults at every 100th frame (a save) */
{
    return (f / 100) * 240;
}

START_TEST(three_verdicts_from_recorded_series)
{
    fp_memtrack_result r;
    fp_memtrack *t = judge_series(flat, NULL, &r);
    ck_assert_msg(r.verdict == FP_MEMTRACK_PASS, "flat: verdict %d slope %.1f", r.verdict,
                  r.slope);
    ck_assert_uint_eq(r.judged_from, SERIES * 15 / 100);
    ck_assert_uint_eq(r.frames_needed, 0);
    fp_unref(&t);

    t = judge_series(leak256, NULL, &r);
    ck_assert_int_eq(r.verdict, FP_MEMTRACK_FAIL);
    ck_assert_msg(r.slope > 200 && r.slope < 320, "leak slope %.1f", r.slope);
    fp_unref(&t);

    t = judge_series(forget_per_100, NULL, &r);
    ck_assert_int_eq(r.verdict, FP_MEMTRACK_FAIL);
    ck_assert_msg(r.slope > 9000, "forgotten frames slope %.1f", r.slope);
    fp_unref(&t);

    /* Grows, then stops: a leak and a late warm-up look alike. */
    t = judge_series(settles_late, NULL, &r);
    ck_assert_int_eq(r.verdict, FP_MEMTRACK_INCONCLUSIVE);
    ck_assert(r.fail_reasons & 1u);
    ck_assert_uint_ge(r.settled_at, 2200);
    ck_assert_uint_gt(r.frames_needed, SERIES);
    memout m;
    mo_open(&m);
    ck_assert_int_eq(fp_memtrack_print(t, m.f), FP_MEMTRACK_INCONCLUSIVE);
    ck_assert_msg(!strncmp(mo_text(&m), "memory per frame: INCONCLUSIVE slope=", 37), "got %s",
                  mo_text(&m));
    ck_assert_ptr_nonnull(strstr(mo_text(&m), "then stayed flat from frame"));
    mo_close(&m);
    fp_unref(&t);

    /* A burst of faults while settling is not a cost per frame; faults at
     * every save are. */
    t = judge_series(flat, burst_faults, &r);
    ck_assert_int_eq(r.verdict, FP_MEMTRACK_PASS);
    ck_assert(r.fault_slope < 0.05);
    fp_unref(&t);
    t = judge_series(flat, save_faults, &r);
    ck_assert_int_eq(r.verdict, FP_MEMTRACK_FAIL);
    ck_assert(r.fail_reasons & 2u);
    ck_assert_msg(r.fault_slope > 2 && r.fault_slope < 3, "fault slope %.3f", r.fault_slope);
    fp_unref(&t);

    /* The axis must increase. */
    ck_assert_int_eq(fp_memtrack_new(NULL, &t), 0);
    ck_assert_int_eq(fp_memtrack_record(t, 5, 4096, 0), 0);
    ck_assert_int_eq(fp_memtrack_record(t, 5, 4096, 0), FP_EINVAL);
    fp_unref(&t);
}
END_TEST

/* An outside observer learns the frame count through FP_MEMTRACK_FRAMES. */
START_TEST(frames_reach_the_observer)
{
    char path[] = "/tmp/test_memtrack.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 4096), 0);
    setenv("FP_MEMTRACK_FRAMES", path, 1);
    fp_memtrack *t = NULL;
    ck_assert_int_eq(fp_memtrack_new(NULL, &t), 0);
    unsetenv("FP_MEMTRACK_FRAMES");
    for (int f = 0; f < 25; f++)
        ck_assert_int_eq(fp_memtrack_sample(t), 0);
    uint64_t frames = 0;
    ck_assert_int_eq(pread(fd, &frames, sizeof frames, 0), (ssize_t)sizeof frames);
    ck_assert_uint_eq(frames, 25);
    fp_unref(&t);
    close(fd);
    unlink(path);
}
END_TEST

START_TEST(live_growth_fails_with_site_diff)
{
    ck_assert_int_eq(fp_diag_configure("sites"), 0);
    fp_memtrack *t = NULL;
    ck_assert_int_eq(fp_memtrack_new(NULL, &t), 0);
    void **kept = calloc(FRAMES, sizeof *kept);
    int line = 0;
    int failures = 0;
    for (int f = 0; f < FRAMES; f++) {
        kept[f] = fp_new(&frame_obj_type, 4096); line = __LINE__;
        fp_frame_tick();
        failures += fp_memtrack_sample(t) != 0;
    }
    ck_assert_int_eq(failures, 0);
    fp_memtrack_result r;
    ck_assert_int_eq(fp_memtrack_result_get(t, &r), 0);
    ck_assert_int_eq(r.verdict, FP_MEMTRACK_FAIL);
    ck_assert(!r.live_flat);
    ck_assert(r.fail_reasons & 4u);
    ck_assert_msg(r.live_slope > 4000 && r.live_slope < 4300, "live slope %.1f", r.live_slope);
    memout m;
    mo_open(&m);
    fp_memtrack_print(t, m.f);
    const char *txt = mo_text(&m);
    ck_assert_ptr_nonnull(strstr(txt, "framepool live bytes not flat"));
    ck_assert_ptr_nonnull(strstr(txt, "objects created since warm-up end (frame 60), by site:"));
    char want[512];
    /* 340 objects of 4096 B created after the warm-up snapshot. */
    snprintf(want, sizeof want,
             "%s:%d: size=1600 KiB (+1360 KiB), count=400 (+340), average=4096 B\n", __FILE__,
             line);
    ck_assert_msg(strstr(txt, want), "got:\n%s\nwant:\n%s", txt, want);
    mo_close(&m);
    for (int f = 0; f < FRAMES; f++)
        fp_unref(&kept[f]);
    free(kept);
    fp_unref(&t);
}
END_TEST

/* The opt-in malloc policy: bad values are refused; on glibc, a block below
 * the pinned mmap threshold (192 KiB < 256 KiB, which glibc's own start
 * value of 128 KiB would map) comes from the heap and one above it (512 KiB)
 * is mapped. Each check test runs in its own process, so
 * the mallopt calls stay in this one. (Sanitizers replace malloc.) */
START_TEST(malloc_policy_pins_the_thresholds)
{
    fp_malloc_policy bad = {.mmap_threshold = (size_t)64 << 20};
    ck_assert_int_eq(fp_memtrack_malloc_policy(&bad), FP_EINVAL);
    fp_malloc_policy bad_arena = {.arena_max = -1};
    ck_assert_int_eq(fp_memtrack_malloc_policy(&bad_arena), FP_EINVAL);
#if defined(__GLIBC__) && !UNDER_SANITIZER
    ck_assert_int_eq(fp_memtrack_malloc_policy(NULL), FP_OK);
    size_t mapped0 = mallinfo2().hblks;
    void *small = malloc((size_t)192 << 10);
    ck_assert_ptr_nonnull(small);
    ck_assert_uint_eq(mallinfo2().hblks, mapped0);
    void *big = malloc((size_t)512 << 10);
    ck_assert_ptr_nonnull(big);
    ck_assert_uint_eq(mallinfo2().hblks, mapped0 + 1);
    free(big);
    free(small);
#endif
}
END_TEST

#if defined(__GLIBC__) && !UNDER_SANITIZER
static uint64_t rss_anon_now(void)
{
    fp_procstat p;
    uint64_t rss = 0;
    ck_assert_int_eq(fp_procstat_open(&p, 0, 0), FP_OK);
    ck_assert_int_eq(fp_procstat_rss_anon(&p, &rss), FP_OK);
    fp_procstat_close(&p);
    return rss;
}

/* 4 MiB of small blocks, written and freed below a block that stays: free
 * heap that is resident and that no trim of the heap's top gives back. */
static void *make_resident_hole(void)
{
    enum { N = 2048 };
    static void *blocks[N];
    /* through a volatile pointer: the compiler may not drop the writes */
    void *(*volatile fill)(void *, int, size_t) = memset;
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(2048);
        ck_assert_ptr_nonnull(blocks[i]);
        fill(blocks[i], 1, 2048);
    }
    /* the last block, carved from the heap's top after the others, stays */
    for (int i = 0; i < N - 1; i++)
        free(blocks[i]);
    return blocks[N - 1];
}
#endif

/* fp_memtrack_malloc_release gives resident free heap pages back; nothing
 * in framepool calls it, a tracker with the policy installed included. */
START_TEST(malloc_release_gives_free_heap_back)
{
#if defined(__GLIBC__) && !UNDER_SANITIZER
    void *cap = make_resident_hole();
    uint64_t before = rss_anon_now();
    ck_assert_int_eq(fp_memtrack_malloc_release(), FP_OK);
    uint64_t after = rss_anon_now();
    ck_assert_msg(after + ((uint64_t)3 << 20) < before, "RssAnon %llu -> %llu",
                  (unsigned long long)before, (unsigned long long)after);
    free(cap);

    ck_assert_int_eq(fp_memtrack_malloc_policy(NULL), FP_OK);
    fp_memtrack *t = NULL;
    cap = make_resident_hole();
    ck_assert_int_eq(fp_memtrack_new(NULL, &t), 0);
    before = rss_anon_now();
    for (int i = 0; i < 100; i++) /* warm-up ends at frame 60 */
        ck_assert_int_eq(fp_memtrack_sample(t), 0);
    ck_assert_uint_ge(rss_anon_now() + ((uint64_t)1 << 20), before);
    fp_unref(&t);
    free(cap);
#else
    ck_assert_int_eq(fp_memtrack_malloc_release(), UNDER_SANITIZER ? FP_OK : FP_ENOENT);
#endif
}
END_TEST

int main(void)
{
    Suite *s = suite_create("memtrack");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, leaking_loop_fails_with_its_slope);
    tcase_add_test(tc, steady_loop_passes);
    tcase_add_test(tc, decimation_keeps_long_runs);
    tcase_add_test(tc, warmup_ends_when_misses_stop);
    tcase_add_test(tc, live_growth_fails_with_site_diff);
    tcase_add_test(tc, three_verdicts_from_recorded_series);
    tcase_add_test(tc, frames_reach_the_observer);
    tcase_add_test(tc, malloc_policy_pins_the_thresholds);
    tcase_add_test(tc, malloc_release_gives_free_heap_back);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
