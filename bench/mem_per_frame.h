/*
 * mem_per_frame: the per-scenario harness shared by the C scenarios
 * (mem_per_frame.c) and the OpenCV peer (mem_per_frame_cv.cpp).
 *
 * Every scenario runs in its own process and measures itself the same way:
 * one fp_memtrack (RssAnon, minor faults, framepool live/idle bytes) sampled
 * once per frame by the thread that finishes with the frame, plus a
 * pre-touched series of (frame, RssAnon) points for the plot.
 */
#ifndef MEM_PER_FRAME_H
#define MEM_PER_FRAME_H

#include <framepool.h>

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpf_opts {
    const char *clip;
    long frames;      /* frames to run (scenario 4 may run fewer, see leak_mb) */
    int threads;      /* decoder threads, the same for every scenario */
    int save_every;   /* save every Nth frame as PNG (0 = never) */
    const char *dir;  /* where frames are saved */
    int queue;        /* pipeline queue bound */
    int hold;         /* frames the pipeline worker holds */
    int max_held;     /* 5a's fp_reader max_held; 0 = queue + hold + 2 (the pipeline's
                         full depth: queue, window, one new in the worker's hand, one
                         in the decode thread's) */
    long leak_mb;     /* scenario 4 stops once it leaked about this much */
    int prime;        /* 5a: open the reader with prefill (BGR pool at its bound from the start) */
    int progress_tty; /* 1: redraw one progress line; 0: plain lines */
} mpf_opts;

typedef struct mpf_point {
    uint64_t frame;
    uint64_t rss;
} mpf_point;

typedef struct mpf_run {
    const char *name;
    long target;
    uint64_t frames;
    fp_memtrack *mt;
    fp_procstat proc;     /* this process (statm, stat): RssAnon, threads */
    int proc_open;
    mpf_point *pts;
    size_t npts, cap;
    uint64_t stride;
    double t0, t_end, last_progress;
    double cpu0, cpu;     /* process CPU seconds: at start, spent in the loop */
    uint64_t base_rss;
    /* peak watcher: a thread reading RssAnon every millisecond, so that a
     * peak between two per-frame samples (another thread's moment) counts */
    void *watcher;
    uint64_t watch_peak;    /* RssAnon when the process started, before any clip work */
    long clip_frames;     /* frames in one pass through the clip (estimate; 0 unknown) */
    int tty;
    uint64_t progress_every;
    /* filled by the scenario */
    int width, height, threads;
    int proc_threads;     /* threads of the process at the end of the loop */
    uint64_t frame_bytes; /* w * h * 3, the BGR frame */
    char codec[32];
    char note[160];
} mpf_run;

/* Starts the harness: the tracker (framepool pools count as misses unless
 * manual_misses) and the point series. Returns 0 or a negative FP_E* code. */
int mpf_run_start(mpf_run *r, const char *name, long target, long clip_frames,
                  int manual_misses, int tty);
/* Frames of warm-up for a run of `target` frames over a clip of
 * `clip_frames` (see the rule in mem_per_frame_harness.c). */
long mpf_warmup_frames(long target, long clip_frames);
/* One frame done. Returns 1 when the target is reached, else 0. */
int mpf_frame(mpf_run *r);
/* Marks the end of the timed loop. */
void mpf_run_stop(mpf_run *r);
/* Pool misses for loops whose buffers framepool does not see. */
void mpf_note_misses(mpf_run *r, uint64_t misses);

uint64_t mpf_rss_now(void);
/* Writes the key/value result file and the (frame, RssAnon) points the
 * driver reads back. 0 or -1. */
int mpf_write_result(const char *result, const char *points, mpf_run *r, int rc);
/* Parses a scenario process's arguments (--scenario ID --result F --points F
 * --dir D --clip C --frames N ...). 0 or -1. */
int mpf_child_parse(int argc, char **argv, mpf_opts *o, const char **id, const char **result,
                    const char **points);

#ifdef __cplusplus
}
#endif
#endif
