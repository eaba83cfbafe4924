/*
 * throughput — decode speed of framepool's reader against its peers, on the
 * same input with the same decoder thread count:
 *
 *   ffmpeg -f null        the ffmpeg command, decode only (its -benchmark rtime)
 *   libav decode-only     the plain in-process decode loop, FFmpeg's own buffers
 *   libav + BGR alloc     the loop a C user writes first: decode, then a new BGR
 *                         AVFrame per frame (av_frame_get_buffer + sws_scale + free)
 *   framepool native      fp_reader, native format, zero-copy pooled buffers
 *   framepool BGR24       fp_reader converting to BGR24 into pooled images
 *   ..., convert_ahead    the same, converting on the reader's own thread one frame ahead
 *   cv::VideoCapture      OpenCV's read() into a BGR Mat (bench/throughput_cv)
 *
 *   throughput [--threads N] [--reps R] [--work-us US] [INPUT ...]
 *
 * Without INPUT it generates a 1080p H.264 clip with the ffmpeg command (once,
 * under the build tree) and also runs ../shared/videos/bottle-detection.mp4
 * when that folder exists. Each peer runs R times, interleaved with the
 * others, and the best run counts (the machines are noisy). The table gives
 * wall-clock frames per second and CPU time per frame (user+system of all
 * threads; for the ffmpeg command and the OpenCV peer, measured in those
 * processes from the open on, so start-up is not counted). On a machine
 * shared with other work, CPU ms/frame is the steadier figure. Last, a
 * "busy caller" line: framepool BGR24 with and without convert_ahead when
 * the reading thread also spends --work-us (default 1000; 0 skips it) on
 * each frame, R interleaved runs, best of each.
 */
#define _POSIX_C_SOURCE 200809L
#include "common/bench_common.h"
#include "common/lav_loop.h"

#include <framepool.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int threads = 2, reps = 3, work_us = 1000;
static char self_dir[1024];

/* ---- in-process peers ----------------------------------------------------------------- */

/* The plain libav loop (bench/common/lav_loop.c); bgr != 0 adds the
 * per-frame BGR allocation. Frames decoded, or -1. */
static long libav_loop(const char *path, int bgr)
{
    lav l;
    long n = 0;
    if (lav_open(&l, path, threads, 0) < 0) {
        fprintf(stderr, "throughput: %s\n", l.err);
        lav_close(&l);
        return -1;
    }
    int e;
    while ((e = lav_next(&l)) > 0) {
        if (bgr) {
            AVFrame *out = lav_to_bgr(&l);
            if (!out)
                break;
            av_frame_free(&out);
        } else {
            av_frame_unref(l.frm);
        }
        n++;
    }
    lav_close(&l);
    return e < 0 ? -1 : n;
}

/* Busy-waits `us` microseconds reading the frame: a caller that works on
 * each frame (detection, tracking) on the thread that reads. */
static unsigned busy_work(const fp_image *img, int us)
{
    unsigned sum = 0;
    double end = bench_now() + us * 1e-6;
    for (size_t i = 0; bench_now() < end; i += 4093)
        sum += img->data[0][i % ((size_t)img->stride[0] * (size_t)img->height)];
    return sum;
}

static volatile unsigned work_sink;

static long fp_loop(const char *path, fp_pixfmt fmt, int convert_ahead, int work)
{
    fp_reader_options o = {0};
    o.format = fmt;
    o.convert_ahead = convert_ahead;
    o.threads = threads;
    fp_reader *r = NULL;
    if (fp_reader_open(path, &o, &r) < 0) {
        fprintf(stderr, "throughput: %s\n", fp_reader_errmsg(r));
        fp_reader_close(&r);
        return -1;
    }
    long n = 0;
    FP_FOREACH_FRAME(r, img)
    {
        n++;
        if (work > 0)
            work_sink += busy_work(img, work);
    }
    fp_reader_close(&r);
    return n;
}

/* ---- out-of-process peers -------------------------------------------------------------- */

static long ffmpeg_null(const char *path, double *secs, double *cpu)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -hide_banner -nostdin -benchmark -threads %d -i '%s' -map 0:v:0 -f null - "
             "2>&1",
             threads, path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[1024];
    long frames = -1;
    double rtime = -1, ut = 0, st = 0;
    while (fgets(line, sizeof line, p)) {
        char *s;
        for (s = line; (s = strstr(s, "frame=")) != NULL; s += 6)
            frames = strtol(s + 6, NULL, 10);
        if ((s = strstr(line, "rtime=")) != NULL)
            rtime = strtod(s + 6, NULL);
        if ((s = strstr(line, "utime=")) != NULL)
            ut = strtod(s + 6, NULL);
        if ((s = strstr(line, "stime=")) != NULL)
            st = strtod(s + 6, NULL);
    }
    if (pclose(p) != 0 || rtime <= 0)
        return -1;
    *secs = rtime;
    *cpu = ut + st;
    return frames;
}

static long opencv_peer(const char *path, double *secs, double *cpu)
{
    char exe[1200], cmd[2600];
    snprintf(exe, sizeof exe, "%s/throughput_cv", self_dir);
    if (access(exe, X_OK) != 0)
        return -2;
    snprintf(cmd, sizeof cmd, "'%s' '%s'", exe, path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    long n = -1;
    double s = -1, c = -1;
    if (fscanf(p, "%ld %lf %lf", &n, &s, &c) != 3)
        n = -1;
    if (pclose(p) != 0)
        return -1;
    *secs = s;
    *cpu = c;
    return n;
}

/* ---- driver ------------------------------------------------------------------------------- */

enum { P_FFNULL, P_DECODE, P_LIBAV_BGR, P_FP_NATIVE, P_FP_BGR, P_FP_BGR_AHEAD, P_CV, NPEERS };
static const char *const names[NPEERS] = {
    "ffmpeg -f null",  "libav decode-only",
    "libav + BGR alloc", "framepool native",
    "framepool BGR24", "framepool BGR24, convert_ahead",
    "cv::VideoCapture"};

static void run_input(const char *path)
{
    double best[NPEERS], best_cpu[NPEERS];
    long frames[NPEERS];
    for (int p = 0; p < NPEERS; p++) {
        best[p] = best_cpu[p] = 1e30;
        frames[p] = -1;
    }
    libav_loop(path, 0); /* warm-up: file in the page cache, libraries loaded */
    for (int rep = 0; rep < reps; rep++) {
        for (int p = 0; p < NPEERS; p++) {
            double t0 = bench_now(), c0 = bench_cpu_seconds(), secs = -1, cpu = -1;
            long n;
            switch (p) {
            case P_FFNULL: n = ffmpeg_null(path, &secs, &cpu); break;
            case P_DECODE: n = libav_loop(path, 0); break;
            case P_LIBAV_BGR: n = libav_loop(path, 1); break;
            case P_FP_NATIVE: n = fp_loop(path, FP_PIX_NONE, 0, 0); break;
            case P_FP_BGR: n = fp_loop(path, FP_PIX_BGR24, 0, 0); break;
            case P_FP_BGR_AHEAD: n = fp_loop(path, FP_PIX_BGR24, 1, 0); break;
            default: n = opencv_peer(path, &secs, &cpu); break;
            }
            if (secs < 0)
                secs = bench_now() - t0;
            if (cpu < 0)
                cpu = bench_cpu_seconds() - c0;
            if (n > 0) {
                frames[p] = n;
                if (secs < best[p])
                    best[p] = secs;
                if (cpu < best_cpu[p])
                    best_cpu[p] = cpu;
            }
        }
    }
    printf("\n%s  (decoder threads %d, best of %d runs)\n", path, threads, reps);
    printf("| peer | frames | fps (wall) | fps vs decode-only | CPU ms/frame | CPU vs "
           "decode-only |\n|---|---:|---:|---:|---:|---:|\n");
    double fps[NPEERS], cms[NPEERS];
    for (int p = 0; p < NPEERS; p++) {
        fps[p] = frames[p] > 0 ? frames[p] / best[p] : 0;
        cms[p] = frames[p] > 0 ? best_cpu[p] * 1e3 / frames[p] : 0;
    }
    for (int p = 0; p < NPEERS; p++) {
        if (frames[p] <= 0) {
            printf("| %s | - | (not available) | - | - | - |\n", names[p]);
            continue;
        }
        printf("| %s | %ld | %.1f | %.3f | %.3f | %.3f |\n", names[p], frames[p], fps[p],
               fps[P_DECODE] > 0 ? fps[p] / fps[P_DECODE] : 0, cms[p],
               cms[P_DECODE] > 0 ? cms[p] / cms[P_DECODE] : 0);
    }
    if (cms[P_CV] > 0 && cms[P_FP_BGR] > 0)
        printf("CPU per frame: cv::VideoCapture / framepool BGR24 = %.2fx\n",
               cms[P_CV] / cms[P_FP_BGR]);
    if (cms[P_DECODE] > 0 && cms[P_FP_NATIVE] > 0)
        printf("CPU per frame: framepool native / libav decode-only = %.3f\n",
               cms[P_FP_NATIVE] / cms[P_DECODE]);
    if (fps[P_CV] > 0)
        printf("framepool BGR24 / cv::VideoCapture = %.2fx (goal >= 1.15)\n",
               fps[P_FP_BGR] / fps[P_CV]);
    if (fps[P_DECODE] > 0)
        printf("framepool native / libav decode-only = %.3f (goal >= 0.97)\n",
               fps[P_FP_NATIVE] / fps[P_DECODE]);
    if (fps[P_FFNULL] > 0)
        printf("framepool native / ffmpeg -f null = %.3f\n", fps[P_FP_NATIVE] / fps[P_FFNULL]);
    if (fps[P_LIBAV_BGR] > 0)
        printf("framepool BGR24 / libav + BGR alloc = %.2fx\n", fps[P_FP_BGR] / fps[P_LIBAV_BGR]);
    if (fps[P_FP_BGR_AHEAD] > 0)
        printf("framepool BGR24: convert_ahead on / off = %.2fx fps, %.2fx CPU per frame\n",
               fps[P_FP_BGR_AHEAD] / fps[P_FP_BGR], cms[P_FP_BGR_AHEAD] / cms[P_FP_BGR]);
    if (work_us > 0) {
        /* A caller that works on each frame: convert_ahead takes the
         * conversion off its thread. */
        double best2[2] = {1e30, 1e30};
        long n2 = 0;
        for (int rep = 0; rep < reps; rep++)
            for (int k = 0; k < 2; k++) {
                double t0 = bench_now();
                long n = fp_loop(path, FP_PIX_BGR24, k, work_us);
                double t = bench_now() - t0;
                if (n > 0 && t < best2[k]) {
                    best2[k] = t;
                    n2 = n;
                }
            }
        if (n2 > 0)
            printf("busy caller (%d us of work per frame on the reading thread): framepool BGR24 "
                   "%.1f fps, with convert_ahead %.1f fps = %.2fx\n",
                   work_us, n2 / best2[0], n2 / best2[1], best2[0] / best2[1]);
    }
    fflush(stdout);
}

static const char *default_clip(void)
{
    static char path[1200];
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/benchclips", FP_BINARY_DIR);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/h264_1080p.mp4", dir);
    struct stat sb;
    if (stat(path, &sb) == 0 && sb.st_size > 0)
        return path;
    char cmd[4096];
    fprintf(stderr, "generating %s ...\n", path);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -hide_banner -loglevel error -nostdin -y -f lavfi -i "
             "testsrc2=size=1920x1080:rate=30 -frames:v 300 -c:v libx264 -preset veryfast "
             "-bf 3 -pix_fmt yuv420p '%s.tmp.mp4' && mv '%s.tmp.mp4' '%s'",
             path, path, path);
    if (system(cmd) != 0) {
        fprintf(stderr, "throughput: cannot generate the clip\n");
        exit(1);
    }
    return path;
}

static int usage(FILE *f, int rc)
{
    fprintf(f, "usage: throughput [--threads N] [--reps R] [--work-us US] [INPUT ...]\n"
               "  Decode speed of framepool's reader against ffmpeg -f null, the plain libav\n"
               "  loop (decode only; with a new BGR frame per frame) and cv::VideoCapture,\n"
               "  on the same input with the same decoder threads.\n"
               "  --threads N   decoder threads for every peer (default: the CPU count)\n"
               "  --reps R      runs of each peer, interleaved; the best counts (default 3)\n"
               "  --work-us US  the busy-caller line: US of work per frame on the reading\n"
               "                thread (default 1000; 0 skips it)\n"
               "  Without INPUT: a generated 1080p H.264 clip, and\n"
               "  ../shared/videos/bottle-detection.mp4 when it exists.\n"
               "Columns: fps (wall clock), CPU ms/frame (all threads), ratios to framepool.\n");
    return rc;
}

int main(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    threads = ncpu > 0 ? (int)ncpu : 2; /* what cv::VideoCapture uses */
    snprintf(self_dir, sizeof self_dir, "%s", argv[0]);
    char *slash = strrchr(self_dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(self_dir, sizeof self_dir, ".");
    const char *inputs[16];
    int ni = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return usage(stdout, 0);
        else if (argv[i][0] == '-' && (i + 1 >= argc || (strcmp(argv[i], "--threads") &&
                                                        strcmp(argv[i], "--reps") &&
                                                        strcmp(argv[i], "--work-us"))))
            return usage(stderr, 2);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--work-us") && i + 1 < argc)
            work_us = atoi(argv[++i]);
        else if (ni < 16)
            inputs[ni++] = argv[i];
        else
            return usage(stderr, 2);
    }
    if (threads < 1 || reps < 1 || work_us < 0)
        return usage(stderr, 2);
    if (ni == 0) {
        inputs[ni++] = default_clip();
        static char shared[1200];
        snprintf(shared, sizeof shared, "%s/../shared/videos/bottle-detection.mp4",
                 FP_SOURCE_DIR);
        if (access(shared, R_OK) == 0)
            inputs[ni++] = shared;
        else
            printf("NOTICE: %s is absent: only the generated clip runs\n", shared);
    }
    av_log_set_level(AV_LOG_ERROR);
    for (int i = 0; i < ni; i++)
        run_input(inputs[i]);
    return 0;
}
