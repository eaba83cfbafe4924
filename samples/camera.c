/*
 * camera — a live source that survives the camera going away and coming back.
 *
 *   camera URL [--latest|--all] [--seconds S] [--work MS] [--av-options K=V:K=V]
 *              [--stall S] [--open-timeout S] [--max-reconnects N]
 *              [--no-malloc-policy] [--leak-bytes N]
 *
 * Opens URL (rtsp://, http://, tcp://, udp://, ...) as a live source, prints
 * every event (connected — with the connection's first frame and the time it
 * took —, disconnected, stalled, reconnecting, size changed, gave up) as it
 * happens, a status line every second (frames, frame age,
 * drops, reconnects), and at the end the memory-per-frame verdict. --latest
 * (the default) always hands out the newest frame; --all hands out every
 * frame: when the loop is slow, packets wait (the status line's backlog)
 * and the frames get older, until the reader's buffer is full.
 *   --seconds S         stop after S seconds (default: until Ctrl-C or SIGTERM)
 *   --work MS           simulate a loop that spends MS milliseconds on each frame
 *   --av-options K=V    FFmpeg options, e.g. rtsp_transport=tcp
 *   --stall S           no new frame (or the same picture) for S seconds counts
 *                       as a disconnect (default: the library's, 10 s)
 *   --open-timeout S    each connection's connect + probe + first frame must take
 *                       less than S seconds (default: the library's, 20 s)
 *   --max-reconnects N  give up after N failed tries in a row (default 0: never)
 *   --no-malloc-policy  keep glibc's adaptive malloc thresholds (by default the
 *                       loop pins them with fp_memtrack_malloc_policy, see measure.h)
 *   --leak-bytes N      planted bug, to check the verdict: malloc N bytes per
 *                       frame and never free them
 * Exit status: 0 verdict PASS, 3 verdict FAIL, 4 verdict INCONCLUSIVE (a short
 * run, or memory that grew and then stopped: the line says how many frames a
 * run needs), 1 when the source gave up or on an error, 2 usage.
 * The verdict is the tracker's live mode (measure.h, "Live runs"): memory
 * grows for the first few hundred frames of a connection without a leak (the
 * heap of the per-frame headers settling; over MPEG-TS (tcp://, http://,
 * udp://) FFmpeg's seek-back buffer of `probesize` bytes filling with the
 * stream's first 5 MB, ~800 frames at 320x240 MPEG-2), so the verdict waits
 * for 400 frames of warm-up and 1024 judged frames (57 s at 25 fps): a
 * shorter run is INCONCLUSIVE and says how many frames it needs. A
 * reconnection fills the buffers again: the verdict then judges from 400
 * frames after the last CONNECTED.
 * `bench/rss_watch --live -- camera URL ...` judges the same run from outside.
 */
#define _POSIX_C_SOURCE 200809L
#include <framepool.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t quit;
static void *volatile leak_sink; /* --leak-bytes: keeps the compiler from dropping the leak */

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

typedef struct events {
    double t0;
    fp_memtrack *mt;
} events;

/* Runs on the reader's thread, with no framepool lock held. */
static void on_event(const fp_live_event *ev, void *user)
{
    const events *e = user;
    static const char *names[] = {"?",       "CONNECTED",    "DISCONNECTED", "STALLED",
                                  "RECONNECTING", "SIZE_CHANGED", "GAVE_UP"};
    double t0 = e->t0;
    /* a new connection fills its buffers again: the verdict waits for it */
    if (ev->type == FP_LIVE_CONNECTED)
        fp_memtrack_note_connect(e->mt);
    const char *name = ev->type > 0 && ev->type <= FP_LIVE_GAVE_UP ? names[ev->type] : "?";
    printf("[%7.2f s] %-12s %s\n", now_mono() - t0, name, ev->message);
    fflush(stdout);
}

static int usage(void)
{
    fprintf(stderr, "usage: camera URL [--latest|--all] [--seconds S] [--work MS] "
                    "[--av-options K=V:K=V]\n"
                    "                  [--stall S] [--open-timeout S] [--max-reconnects N]\n"
                    "                  [--no-malloc-policy] [--leak-bytes N]\n"
                    "exit status: 0 PASS, 3 FAIL, 4 INCONCLUSIVE, 1 gave up or error, 2 usage\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *av_options = NULL;
    fp_live_mode mode = FP_LIVE_LATEST;
    /* stall and open timeout: the library's defaults (0) unless told */
    double seconds = 0, work_ms = 0, stall = 0, open_timeout = 0;
    int bad_time = 0; /* --stall or --open-timeout not > 0 */
    int max_reconnects = 0, malloc_policy = 1;
    long leak_bytes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "--latest"))
            mode = FP_LIVE_LATEST;
        else if (!strcmp(a, "--all"))
            mode = FP_LIVE_ALL;
        else if (!strcmp(a, "--seconds") && has_value)
            seconds = atof(argv[++i]);
        else if (!strcmp(a, "--work") && has_value)
            work_ms = atof(argv[++i]);
        else if (!strcmp(a, "--av-options") && has_value)
            av_options = argv[++i];
        else if (!strcmp(a, "--stall") && has_value)
            bad_time |= !((stall = atof(argv[++i])) > 0);
        else if (!strcmp(a, "--open-timeout") && has_value)
            bad_time |= !((open_timeout = atof(argv[++i])) > 0);
        else if (!strcmp(a, "--max-reconnects") && has_value)
            max_reconnects = atoi(argv[++i]);
        else if (!strcmp(a, "--leak-bytes") && has_value)
            leak_bytes = atol(argv[++i]);
        else if (!strcmp(a, "--no-malloc-policy"))
            malloc_policy = 0;
        else if (!strcmp(a, "--help"))
            return usage(), 0;
        else if (a[0] == '-' || url)
            return usage();
        else
            url = a;
    }
    if (!url || bad_time || max_reconnects < 0 || work_ms < 0 || leak_bytes < 0)
        return usage();

    /* A loop that runs for months: pin glibc's malloc thresholds so that the
     * heap stops reaching new high-water marks (measure.h explains). Before any
     * thread starts. */
    if (malloc_policy)
        fp_memtrack_malloc_policy(NULL);
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);

    /* A live source: the tracker's live mode waits out the connection's
     * warm-up and judges only runs long enough (measure.h, "Live runs"). */
    fp_memtrack_config mcfg = {.live = 1};
    fp_memtrack *mt = NULL;
    int rc = fp_memtrack_new(&mcfg, &mt);
    if (rc < 0) {
        fprintf(stderr, "camera: cannot start the memory tracker: %s\n", fp_strerror(rc));
        return 1;
    }

    double t0 = now_mono();
    events ev = {t0, mt};
    fp_reader_options o = {0};
    o.live.mode = mode;
    o.live.queue = 8;
    o.live.stall = stall;               /* 0: the library's default */
    o.live.open_timeout = open_timeout; /* 0: the library's default */
    o.live.max_reconnects = max_reconnects;
    o.live.on_event = on_event;
    o.live.user = &ev;
    o.av_options = av_options;
    o.timeout_us = 500000; /* wake up twice a second to print the status and check the clock */
    fp_reader *r = NULL;
    rc = fp_reader_open(url, &o, &r);
    if (rc < 0) { /* bad options (FP_EINVAL) or no memory: a down source opens fine */
        fprintf(stderr, "camera: %s\n", fp_reader_errmsg(r));
        fp_reader_close(&r);
        fp_unref(&mt);
        return rc == FP_EINVAL ? 2 : 1;
    }

    fp_image *img = NULL;
    uint64_t frames = 0;
    double next_status = t0 + 1, age_max = 0;
    int w = 0, h = 0; /* size of the last frame */
    int gave_up = 0, failed = 0;
    while (!quit && (seconds <= 0 || now_mono() - t0 < seconds)) {
        rc = fp_reader_next(r, &img);
        if (rc == 0) {
            gave_up = 1;
            break;
        }
        /* FP_ETIMEDOUT: no frame within timeout_us (down, reconnecting): print the status */
        if (rc < 0 && rc != FP_ETIMEDOUT && rc != FP_ECANCELED) {
            fprintf(stderr, "camera: %s\n", fp_reader_errmsg(r));
            failed = 1;
            break;
        }
        if (rc == 1) {
            frames++;
            w = img->width;
            h = img->height;
            double age = now_wall() - img->wall_time;
            if (age > age_max)
                age_max = age;
            if (leak_bytes > 0) { /* planted bug: never freed */
                char *leak = malloc((size_t)leak_bytes);
                if (leak)
                    memset(leak, (int)frames, (size_t)leak_bytes);
                leak_sink = leak;
            }
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
            fp_reader_get_stats(r, &s);
            /* dropped: frames lost to the loop being slow, decoded (LATEST) or
             * as packets; backlog: packets waiting to be decoded */
            printf("[%7.2f s] %s frames=%llu size=%dx%d age=%.0f ms (max %.0f) dropped=%llu "
                   "backlog=%u stalls=%llu reconnects=%llu\n",
                   now_mono() - t0, s.connected ? "live        " : "down        ",
                   (unsigned long long)frames, w, h, s.age_last * 1e3, s.age_max * 1e3,
                   (unsigned long long)(s.dropped + s.packets_dropped), s.packets_queued,
                   (unsigned long long)s.stalls, (unsigned long long)s.reconnects);
            fflush(stdout);
        }
    }
    fp_unref(&img);
    if (gave_up)
        printf("camera: %s\n", fp_reader_errmsg(r));
    fp_reader_stats s;
    fp_reader_get_stats(r, &s);
    printf("camera: %llu frames in %.1f s, %llu connections, %llu reconnect tries, %llu stalls, "
           "%llu dropped, frame age max %.2f ms\n",
           (unsigned long long)frames, now_mono() - t0, (unsigned long long)s.connects,
           (unsigned long long)s.reconnects, (unsigned long long)s.stalls,
           (unsigned long long)(s.dropped + s.packets_dropped), age_max * 1e3);
    fp_reader_close(&r);
    int verdict = fp_memtrack_print(mt, stdout);
    fp_unref(&mt);
    if (gave_up || failed || verdict < 0)
        return 1;
    return verdict == FP_MEMTRACK_PASS ? 0 : verdict == FP_MEMTRACK_FAIL ? 3 : 4;
}
