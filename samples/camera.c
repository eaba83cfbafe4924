/*
 * camera — a live source that survives the camera going away and coming back.
 *
 *   camera URL [--latest|--all] [--seconds S] [--work MS] [--av-options K=V:K=V]
 *
 * Opens URL (rtsp://, http://, tcp://, udp://, ...) as a live source, prints
 * every event (connected, disconnected, stalled, reconnecting, size changed,
 * gave up) as it happens, a status line every second (frames, frame age,
 * drops, reconnects), and at the end the memory-per-frame verdict. --latest
 * (the default) always hands out the newest frame; --all hands out every
 * frame through a bounded queue and drops the oldest when the loop is slow.
 * --work MS simulates a loop that spends MS milliseconds on each frame.
 * Exit status: 0, or 1 when the source gave up, 2 on bad arguments, 3 when
 * the memory verdict is FAIL.
 */
#define _POSIX_C_SOURCE 200809L
#include <framepool.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t quit;

static void on_sigint(int sig)
{
    (void)sig;
    quit = 1;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Runs on the reader's thread, with no framepool lock held. */
static void on_event(const fp_live_event *ev, void *user)
{
    static const char *names[] = {"?",       "CONNECTED",    "DISCONNECTED", "STALLED",
                                  "RECONNECTING", "SIZE_CHANGED", "GAVE_UP"};
    double t0 = *(const double *)user;
    const char *name = ev->type > 0 && ev->type <= FP_LIVE_GAVE_UP ? names[ev->type] : "?";
    printf("[%7.2f s] %-12s %s\n", now_mono() - t0, name, ev->message);
    fflush(stdout);
}

static int usage(void)
{
    fprintf(stderr, "usage: camera URL [--latest|--all] [--seconds S] [--work MS] "
                    "[--av-options K=V:K=V]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *av_options = NULL;
    fp_live_mode mode = FP_LIVE_LATEST;
    double seconds = 0, work_ms = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--latest"))
            mode = FP_LIVE_LATEST;
        else if (!strcmp(argv[i], "--all"))
            mode = FP_LIVE_ALL;
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--work") && i + 1 < argc)
            work_ms = atof(argv[++i]);
        else if (!strcmp(argv[i], "--av-options") && i + 1 < argc)
            av_options = argv[++i];
        else if (argv[i][0] == '-' || url)
            return usage();
        else
            url = argv[i];
    }
    if (!url)
        return usage();
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);

    double t0 = now_mono();
    fp_reader_options o = {0};
    o.live.mode = mode;
    o.live.queue = 8;
    o.live.stall = 5;
    o.live.on_event = on_event;
    o.live.user = &t0;
    o.av_options = av_options;
    o.timeout_us = 500000; /* wake up twice a second to print the status and check the clock */
    fp_reader *r = NULL;
    if (fp_reader_open(url, &o, &r) < 0) {
        fprintf(stderr, "camera: %s\n", fp_reader_errmsg(r));
        fp_reader_close(&r);
        return 2;
    }
    fp_memtrack *mt = NULL;
    fp_memtrack_new(NULL, &mt);

    fp_image *img = NULL;
    uint64_t frames = 0;
    double next_status = t0 + 1, age_max = 0;
    int w = 0, h = 0; /* size of the last frame */
    int rc = 0;
    while (!quit && (seconds <= 0 || now_mono() - t0 < seconds)) {
        rc = fp_reader_next(r, &img);
        if (rc == 0)
            break; /* gave up */
        if (rc == FP_ETIMEDOUT || rc == FP_ECANCELED)
            rc = 1;
        else if (rc < 0) {
            fprintf(stderr, "camera: %s\n", fp_reader_errmsg(r));
            break;
        } else {
            frames++;
            w = img->width;
            h = img->height;
            double age = now_wall() - img->wall_time;
            if (age > age_max)
                age_max = age;
            if (mt)
                fp_memtrack_sample(mt);
            if (work_ms > 0) {
                struct timespec ts = {(time_t)(work_ms / 1000),
                                      (long)(work_ms * 1e6) % 1000000000L};
                nanosleep(&ts, NULL);
            }
        }
        if (now_mono() >= next_status) {
            next_status += 1;
            fp_reader_stats s;
            fp_reader_stats(r, &s);
            printf("[%7.2f s] %s frames=%llu size=%dx%d age=%.0f ms (max %.0f) dropped=%llu "
                   "stalls=%llu reconnects=%llu\n",
                   now_mono() - t0, s.connected ? "live        " : "down        ",
                   (unsigned long long)frames, w, h,
                   s.age_last * 1e3, s.age_max * 1e3, (unsigned long long)s.dropped,
                   (unsigned long long)s.stalls, (unsigned long long)s.reconnects);
            fflush(stdout);
        }
    }
    fp_unref(&img);
    int gave_up = rc == 0;
    if (gave_up)
        printf("camera: %s\n", fp_reader_errmsg(r));
    fp_reader_stats s;
    fp_reader_stats(r, &s);
    printf("camera: %llu frames in %.1f s, %llu connections, %llu reconnect tries, %llu stalls, "
           "%llu dropped, frame age max %.0f ms\n",
           (unsigned long long)frames, now_mono() - t0, (unsigned long long)s.connects,
           (unsigned long long)s.reconnects, (unsigned long long)s.stalls,
           (unsigned long long)s.dropped, age_max * 1e3);
    fp_reader_close(&r);
    int verdict = FP_MEMTRACK_INCONCLUSIVE;
    if (mt) {
        verdict = fp_memtrack_print(mt, stdout);
        fp_unref(&mt);
    }
    return gave_up ? 1 : verdict == FP_MEMTRACK_FAIL ? 3 : 0;
}
