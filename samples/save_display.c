/*
 * save_display — the read -> save -> display loop, with a memory verdict.
 *
 * Decodes INPUT to BGR frames, saves every Nth frame (fp_image_save, or
 * cv::imwrite with --save-with cv), shows
 * every frame with imshow/waitKey when a display exists (ESC quits), and
 * ends with the memory-per-frame verdict: the RssAnon slope in bytes per
 * frame after warm-up, the window delta, peak, minor faults per frame and
 * the pools' figures. This is the loop whose memory climbs frame after frame
 * in many applications; here it stays flat.
 *
 * Usage: save_display INPUT [--save-every N] [--out DIR] [--no-display]
 *                           [--frames N] [--seconds S] [--loop] [--threads N]
 *                           [--ext png|jpg] [--save-with cv|fp] [--glibc-malloc]
 *                           [--leak-bytes N] [--forget-every N]
 *   --save-every N  save every Nth frame (default 100; 0 = never)
 *   --out DIR       where frames are saved (default ./frames, created)
 *   --no-display    never open a window (also automatic without a display)
 *   --frames N      stop after N frames (default: the whole input)
 *   --seconds S     stop after S seconds
 *   --loop          play the input again at its end (fp_reader_options.loop),
 *                   until --frames or --seconds is reached
 *   --threads N     decoder threads (default: the reader's)
 *   --save-with cv  save with cv::imwrite instead of fp_image_save. Both
 *                   write the same PNG; fp_image_save keeps its encoder's
 *                   memory in one block mapped apart from the heap, so the
 *                   loop's RssAnon settles at once, while cv::imwrite's
 *                   allocations move the heap for the first thousands of
 *                   frames (bench/README.md, run_verdicts)
 *   --glibc-malloc  keep glibc's adaptive malloc thresholds (by default the
 *                   loop pins them with fp_memtrack_malloc_policy, see measure.h)
 * Planted bugs, to check that the verdict catches them:
 *   --leak-bytes N    malloc N bytes per frame and never free them
 *   --forget-every N  take a reference to every Nth frame and never release it
 * Exit status: 0 verdict PASS, 3 verdict FAIL, 4 verdict INCONCLUSIVE (the
 * run was too short, or memory grew and then stopped: the line says how many
 * frames a run needs), 1 error, 2 usage.
 */
#define _POSIX_C_SOURCE 200809L
#include <framepool.h>
#include <framepool/cv.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void *volatile leak_sink;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int usage(void)
{
    fprintf(stderr, "usage: save_display INPUT [--save-every N] [--out DIR] [--no-display]\n"
                    "                          [--frames N] [--seconds S] [--loop] [--threads N]\n"
                    "                          [--ext png|jpg] [--save-with cv|fp] [--glibc-malloc]\n"
                    "                          [--leak-bytes N] [--forget-every N]\n"
                    "exit status: 0 PASS, 3 FAIL, 4 INCONCLUSIVE, 1 error, 2 usage\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *input = NULL, *out_dir = "frames", *ext = "png";
    long save_every = 100, max_frames = -1, leak_bytes = 0, forget_every = 0;
    double max_seconds = -1;
    int display = 1, loop = 0, threads = 0, use_fp_save = 1, malloc_policy = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "--save-every") && has_value)
            save_every = atol(argv[++i]);
        else if (!strcmp(a, "--out") && has_value)
            out_dir = argv[++i];
        else if (!strcmp(a, "--frames") && has_value)
            max_frames = atol(argv[++i]);
        else if (!strcmp(a, "--seconds") && has_value)
            max_seconds = atof(argv[++i]);
        else if (!strcmp(a, "--threads") && has_value)
            threads = atoi(argv[++i]);
        else if (!strcmp(a, "--glibc-malloc"))
            malloc_policy = 0;
        else if (!strcmp(a, "--save-with") && has_value) {
            const char *w = argv[++i];
            if (strcmp(w, "fp") && strcmp(w, "cv"))
                return usage();
            use_fp_save = !strcmp(w, "fp");
        }
        else if (!strcmp(a, "--leak-bytes") && has_value)
            leak_bytes = atol(argv[++i]);
        else if (!strcmp(a, "--forget-every") && has_value)
            forget_every = atol(argv[++i]);
        else if (!strcmp(a, "--help"))
            return usage(), 0;
        else if (!strcmp(a, "--ext") && has_value)
            ext = argv[++i];
        else if (!strcmp(a, "--no-display"))
            display = 0;
        else if (!strcmp(a, "--loop"))
            loop = 1;
        else if (a[0] == '-' || input)
            return usage();
        else
            input = a;
    }
    if (!input || save_every < 0 || leak_bytes < 0 || forget_every < 0 ||
        (forget_every > 0 && max_frames <= 0) || (loop && max_frames <= 0 && max_seconds <= 0))
        return usage();

    /* A loop that runs for hours: pin glibc's malloc thresholds so that the
     * heap stops reaching new high-water marks (measure.h explains; measured in
     * docs/results/2026-11-30-malloc-policy.md). Before any thread starts. */
    if (malloc_policy)
        fp_memtrack_malloc_policy(NULL);

    if (save_every > 0 && mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "save_display: cannot create '%s': %s\n", out_dir, strerror(errno));
        return 1;
    }
    if (display && !fp_cv_has_display()) {
        printf("save_display: no display (DISPLAY is unset): running headless, saving only\n");
        display = 0;
    }

    /* --loop: the reader rewinds and keeps its decoder (no flush at each end) */
    fp_reader_options opts = {.format = FP_PIX_BGR24, .threads = threads, .loop = loop ? -1 : 0};
    if (forget_every > 0) /* the forgotten frames stay held: let the reader hand them out */
        opts.max_held = (unsigned)(max_frames / forget_every) + FP_READER_DEFAULT_MAX_HELD;
    fp_reader *r = NULL;
    int rc = fp_reader_open(input, &opts, &r);
    if (rc < 0) {
        fprintf(stderr, "save_display: %s\n", fp_reader_errmsg(r));
        fp_reader_close(&r);
        return 1;
    }
    fp_reader_info info;
    fp_reader_info(r, &info);
    printf("save_display: %s: %dx%d %s, %.2f fps, codec %s, %d threads\n", input, info.width,
           info.height, info.av_format_name, info.fps, info.codec, info.threads);

    fp_memtrack *mt = NULL;
    fp_memtrack_config mcfg = {0}; /* long runs are decimated, keeping their shape */
    rc = fp_memtrack_new(&mcfg, &mt);
    if (rc < 0) {
        fprintf(stderr, "save_display: cannot start the memory tracker: %s\n", fp_strerror(rc));
        fp_reader_close(&r);
        return 1;
    }

    fp_image *img = NULL;
    long frames = 0, saved = 0;
    int quit = 0;
    double t0 = now_s();
    char path[4096];
    while (!quit && (max_frames < 0 || frames < max_frames) &&
           (max_seconds < 0 || (frames % 64 != 0 || now_s() - t0 < max_seconds))) {
        rc = fp_reader_next(r, &img); /* releases the previous frame */
        if (rc <= 0)
            break;
        if (save_every > 0 && frames % save_every == 0) {
            snprintf(path, sizeof path, "%s/frame_%06ld.%s", out_dir, frames, ext);
            if (use_fp_save ? (rc = fp_image_save(path, img, NULL)) < 0
                            : (rc = fp_cv_imwrite(path, img)) < 0) {
                fprintf(stderr, "save_display: %s\n",
                        use_fp_save ? fp_errmsg() : fp_errmsg());
                break;
            }
            saved++;
        }
        if (display) {
            if (fp_cv_imshow("framepool", img) == FP_ENODISPLAY) {
                printf("save_display: %s: continuing headless\n", fp_errmsg());
                display = 0;
            } else if (fp_cv_waitkey(1) == 27) {
                quit = 1; /* ESC */
            }
        }
        if (leak_bytes > 0) { /* planted bug: never freed */
            void *leak = malloc((size_t)leak_bytes);
            if (leak)
                memset(leak, (int)frames, (size_t)leak_bytes);
            leak_sink = leak; /* keeps the compiler from dropping the allocation */
        }
        if (forget_every > 0 && frames % forget_every == forget_every - 1)
            (void)fp_ref(img); /* planted bug: this reference is never released */
        frames++;
        fp_memtrack_sample(mt);
    }
    fp_unref(&img);
    double dt = now_s() - t0;
    if (rc < 0) {
        const char *msg = fp_reader_errmsg(r);
        fprintf(stderr, "save_display: stopped after %ld frames: %s\n", frames,
                msg && *msg ? msg : fp_strerror(rc));
    }
    if (display)
        fp_cv_destroy_all_windows();

    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    printf("save_display: %ld frames in %.2f s (%.1f fps), %ld saved to %s/, %llu corrupt, "
           "%llu decode errors\n",
           frames, dt, dt > 0 ? (double)frames / dt : 0.0, saved, out_dir,
           (unsigned long long)st.corrupt, (unsigned long long)st.decode_errors);
    printf("pools: decoder %llu buffers (peak %llu, %llu misses), output %llu buffers (peak "
           "%llu, %llu misses), %llu idle bytes\n",
           (unsigned long long)st.pool.allocated, (unsigned long long)st.pool.peak,
           (unsigned long long)st.pool.misses, (unsigned long long)st.out_pool.allocated,
           (unsigned long long)st.out_pool.peak, (unsigned long long)st.out_pool.misses,
           (unsigned long long)fp_pool_idle_bytes_total());
    fp_memtrack_print(mt, stdout);
    fp_memtrack_result res;
    int verdict_rc = fp_memtrack_result_get(mt, &res);
    fp_unref(&mt);
    fp_reader_close(&r);
    if (rc < 0 || verdict_rc != FP_OK)
        return 1;
    return res.verdict == FP_MEMTRACK_PASS ? 0 : res.verdict == FP_MEMTRACK_FAIL ? 3 : 4;
}
