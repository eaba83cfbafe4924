/*
 * framepool/measure.h — measuring a process's memory: the memory-per-frame
 * verdict (fp_memtrack), process sampling from /proc (fp_procstat), the
 * Theil-Sen slope that judges the samples, and an opt-in glibc malloc
 * policy for long loops.
 *
 * Written once and used by everything that measures: the samples
 * (save_display, camera), the memory-per-frame harness and the long-running
 * benchmarks, and the outside observer bench/rss_watch, which judges another
 * process with the same verdict as the in-process tracker.
 *
 * Part of libframepool (lib/measure, built on the core only: no FFmpeg).
 * Linux: the samples are read from /proc; the malloc policy needs glibc.
 *
 *   fp_memtrack *mt = NULL;
 *   fp_memtrack_new(NULL, &mt);
 *   while (fp_reader_next(r, &img) == FP_OK) {
 *       ... process img ...
 *       fp_memtrack_sample(mt);
 *   }
 *   int verdict = fp_memtrack_print(mt, stdout);   // PASS, FAIL, INCONCLUSIVE
 *   fp_unref(&mt);
 */
#ifndef FRAMEPOOL_MEASURE_H
#define FRAMEPOOL_MEASURE_H

#include "obj.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the Theil-Sen slope --------------------------------------------------------- */

/* Pairs fp_theil_sen uses at most when max_pairs is 0. */
#define FP_THEIL_SEN_MAX_PAIRS 65536

/* The Theil-Sen slope of y against x over the n points (x[i], y[i]): the
 * median of the slopes (y[j] - y[i]) / (x[j] - x[i]) of the pairs i < j with
 * x[j] != x[i]. Robust: a one-time step (a heap extension) or a few outliers
 * move it little, a steady trend moves it fully. `x` NULL: the index is the
 * axis. When the n points have at most max_pairs pairs (0 means
 * FP_THEIL_SEN_MAX_PAIRS), every pair is used; beyond, max_pairs pairs drawn
 * with a fixed-seed generator (the same points give the same slope).
 * Stores the slope in *slope (0 with fewer than two points or no pair of
 * distinct x) and returns 0, or FP_EINVAL (NULL y or slope, with n > 0),
 * FP_ENOMEM (the pairs' slopes need min(pairs, max_pairs) doubles, allocated
 * through fp_set_allocator's allocator and freed before returning).
 * Thread-safe (reads only its arguments). Cost O(n + pairs). */
FP_API int fp_theil_sen(const double *x, const double *y, size_t n, size_t max_pairs,
                        double *slope);

/* ---- process sampling (/proc) ------------------------------------------------------- */

/* An open view of one process's /proc files (this process or another one).
 * A sample allocates nothing and uses no stdio: the files stay open and are
 * read with pread (the fd directory with getdents64 into a stack buffer), so
 * sampling a process from inside does not move the heap it measures, and an
 * outside observer can sample every few milliseconds. A plain struct owned
 * by the caller (not a framepool object); its fields are private. */
typedef struct fp_procstat {
    int statm_fd, stat_fd, fd_dir; /* -1 when not open */
    int self;                      /* this process: fd_dir is one of the fds counted */
    long page;                     /* bytes per page */
    long ticks;                    /* clock ticks per second (utime, stime) */
} fp_procstat;

typedef struct fp_procstat_sample {
    uint64_t rss_anon; /* bytes: statm resident - shared pages (= status RssAnon) */
    uint64_t minflt;   /* minor page faults so far */
    double cpu_s;      /* user + system seconds so far, all threads (clock-tick resolution) */
    int threads;
    int fds;           /* open file descriptors (the view's own not counted); -1 when the
                          view was opened without FP_PROCSTAT_FDS */
} fp_procstat_sample;

enum {
    FP_PROCSTAT_FDS = 1u << 0, /* also count open file descriptors at every sample */
};

/* Opens the /proc files of process `pid` (0: this process); `flags`:
 * FP_PROCSTAT_* bits. Returns 0, FP_EINVAL (NULL p, negative pid, unknown
 * flag bits), FP_ENOENT (no such process), FP_EIO (the files could not be
 * opened, e.g. another user's process: the message names the file and the
 * reason). On error nothing stays open and fp_procstat_close is harmless.
 * Not thread-safe on one view: a view belongs to one thread at a time. */
FP_API int fp_procstat_open(fp_procstat *p, int pid, unsigned flags);

/* One sample of every field. Returns 0, FP_ENOENT when the process is gone
 * or a zombie (no pages left), FP_EIO when a file could not be parsed,
 * FP_EINVAL for NULL. No allocation, no stdio. */
FP_API int fp_procstat_read(fp_procstat *p, fp_procstat_sample *out);

/* RssAnon alone (bytes; one pread of statm), the cheapest sample: for loops
 * that read it every frame and watcher threads that track a peak. Returns 0,
 * FP_ENOENT (gone or a zombie), FP_EIO, FP_EINVAL. Several threads may call
 * it on one view at once (it only reads the open statm file). */
FP_API int fp_procstat_rss_anon(const fp_procstat *p, uint64_t *rss_anon);

/* Closes the view's files; harmless after a failed open and when called
 * twice. */
FP_API void fp_procstat_close(fp_procstat *p);

/* ---- memory per frame ------------------------------------------------------------------ */

typedef struct fp_memtrack fp_memtrack;
FP_API extern const fp_type fp_memtrack_type; /* "fp_memtrack" */

/* Memory tracker configuration; zero means the documented default. */
typedef struct fp_memtrack_config {
    size_t capacity;        /* samples kept, pre-allocated and pre-touched; default 16384.
                               Beyond it every other sample is dropped and the
                               sampling stride doubles (the run keeps its shape). */
    unsigned min_warmup;    /* warm-up lasts at least this many frames; default 60 */
    unsigned quiet_frames;  /* warm-up ends after this many frames without a pool miss;
                               default 10 */
    double max_slope;       /* PASS needs the RssAnon slope <= this (B/frame); default 16;
                               negative: not checked */
    double max_faults;      /* PASS needs minor faults/frame (steady rate or mean) <= this;
                               default 0.05; negative: not checked */
    double max_live_slope;  /* "flat" library live bytes: slope <= this (B/frame);
                               default 1; negative: not checked */
    unsigned min_frames;    /* frames after warm-up needed for a verdict; default 30 */
    int manual_misses;      /* non-zero: pool misses come only from
                               fp_memtrack_note_pool_misses, not from framepool's pools */
    double skip_fraction;   /* judge from max(warm-up end, this fraction of the run);
                               default 0. An observer that cannot see pool misses
                               (fp_memtrack_record) uses 0.15. At most 0.9. */
} fp_memtrack_config;

/* Creates a tracker: allocates and touches `capacity` samples now so that
 * sampling never faults, and opens /proc/self/statm (fp_procstat). Returns
 * 0 with +1 (caller releases) in *out, FP_EINVAL, FP_ENOMEM, FP_EIO
 * (/proc/self/statm unreadable; the message says so). */
#define fp_memtrack_new(cfg, out) fp_memtrack_new_at((cfg), (out), __FILE__, __LINE__, __func__)
FP_API int fp_memtrack_new_at(const fp_memtrack_config *cfg, fp_memtrack **out,
                              const char *file, int line, const char *func);

/* Records one frame: RssAnon (statm resident - shared pages), minor faults
 * (getrusage), the library's live bytes (fp_obj_totals), pool idle bytes and
 * pool misses. When warm-up ends (>= min_warmup frames and quiet_frames
 * without a pool miss) and FP_DIAG_SITES is on, takes a snapshot for the
 * FAIL report. Returns 0, FP_EINVAL (NULL) or FP_EIO. Call it from one
 * thread (the loop's); a few system calls, no allocation after warm-up. */
FP_API int fp_memtrack_sample(fp_memtrack *t);

/* Reports the total pool misses so far (monotonic), for loops whose buffers
 * come from elsewhere; used instead of framepool's own pool statistics when
 * cfg.manual_misses is set, and added to them otherwise. Thread-safe. */
FP_API void fp_memtrack_note_pool_misses(fp_memtrack *t, uint64_t total_misses);

/* Records a sample measured elsewhere, instead of fp_memtrack_sample: `x`
 * is the frame number (or any increasing axis, e.g. milliseconds; slopes are
 * then per unit of x), rss_anon in bytes, minflt the minor faults so far
 * (fp_procstat_read gives both for any process). Returns 0, or FP_EINVAL
 * when x does not increase. This is how an outside observer (bench/rss_watch)
 * judges another process with the same verdict.
 *
 * While a tracker samples with fp_memtrack_sample, a process whose
 * environment names a file in FP_MEMTRACK_FRAMES (at least 8 bytes long)
 * writes its frame count there (a shared mapping, no system call per frame),
 * so the observer can count bytes per frame. */
FP_API int fp_memtrack_record(fp_memtrack *t, uint64_t x, uint64_t rss_anon, uint64_t minflt);

typedef enum fp_memtrack_verdict {
    FP_MEMTRACK_PASS = 0,
    FP_MEMTRACK_FAIL = 1,
    FP_MEMTRACK_INCONCLUSIVE = 2, /* too few frames after warm-up, or memory that grew
                                     and then stopped growing: a leak cannot be told from
                                     a late warm-up; frames_needed says how long a run
                                     can tell */
} fp_memtrack_verdict;

typedef struct fp_memtrack_result {
    fp_memtrack_verdict verdict;
    uint64_t frames;          /* frames sampled */
    uint64_t warmup_frames;   /* frames of warm-up */
    int warmup_ended;         /* 0: pool misses never stopped (warm-up taken as half) */
    double slope;             /* Theil-Sen slope of RssAnon after warm-up, B/frame */
    int64_t window_delta;     /* median of the last 10% minus median of the first 10% */
    uint64_t peak_rss;        /* highest RssAnon sampled, bytes */
    uint64_t last_rss;
    double faults_per_frame;  /* minor faults per frame after warm-up (mean) */
    double fault_slope;       /* Theil-Sen slope of the minor fault count, per frame: the
                                 steady rate; FAIL needs both it and the mean above
                                 max_faults (a burst while memory settles is not a cost
                                 per frame) */
    double live_slope;        /* Theil-Sen slope of library live bytes, B/frame */
    int64_t live_delta;       /* library live bytes, last - warm-up end */
    int live_flat;
    uint64_t live_bytes;      /* library live bytes at the last sample */
    uint64_t idle_bytes;      /* pool idle bytes at the last sample */
    uint64_t late_misses;     /* pool misses after warm-up */
    unsigned fail_reasons;    /* bit 0 slope, bit 1 faults, bit 2 live bytes */
    uint64_t judged_from;     /* first frame judged: warm-up end or, with skip_fraction,
                                 later */
    uint64_t settled_at;      /* INCONCLUSIVE after growth: memory is flat from this
                                 frame on (a run judged from judged_from fails, its
                                 second half or last quarter passes); 0 otherwise */
    uint64_t frames_needed;   /* INCONCLUSIVE: frames a run needs for a verdict (the
                                 flat part three times the growing part); 0 otherwise */
} fp_memtrack_result;

/* Analyses the samples so far. Returns 0 and fills *out, or FP_EINVAL,
 * FP_ENOMEM. Cost O(n) time and memory for n samples (each slope uses at
 * most FP_THEIL_SEN_MAX_PAIRS pairs: every pair for short runs, a fixed
 * pseudo-random subset beyond). Allocates temporary memory (freed before
 * returning). Thread-safe with respect to other readers, not to a
 * concurrent fp_memtrack_sample.
 *
 * Verdicts: PASS when memory is flat from judged_from to the end (RssAnon
 * slope and window rate within max_slope, minor faults within max_faults,
 * library live bytes flat); FAIL when it is not, and also not over the
 * second half nor the last quarter (a leak grows in every part of the run);
 * INCONCLUSIVE otherwise (see fp_memtrack_verdict). */
FP_API int fp_memtrack_result_get(fp_memtrack *t, fp_memtrack_result *out);

/* Prints the verdict line, e.g.
 *   memory per frame: PASS slope=0.0 B/frame window=+0 B peak=45.2 MiB
 *     faults/frame=0.000 live=flat idle=8.8 MiB frames=1000 warmup=60
 * (one line), followed on FAIL by the reasons and, when a warm-up snapshot
 * exists, the site diff between warm-up end and now (10 lines). `out` NULL
 * prints nothing. Returns the verdict (>= 0) or a negative error. */
FP_API int fp_memtrack_print(fp_memtrack *t, FILE *out);

/* ---- glibc's malloc policy, opt-in, for loops that run for hours ---------------------- */

/* By default glibc adapts: when a block above the mmap threshold (128 KiB at
 * start) is freed, the threshold rises to that block's size (up to 32 MiB)
 * and the trim threshold to twice that. From then on blocks of that size are
 * carved from the heap, and memory freed at the heap's top is kept. In a
 * video loop, where a decoder, an encoder and a rewind allocate and free
 * blocks of many sizes, the heap then reaches new high-water marks now and
 * then for thousands of frames: RssAnon climbs in steps while live memory
 * is flat.
 *
 * fp_memtrack_malloc_policy pins both thresholds: blocks of at least
 * mmap_threshold are mapped and unmapped (each new one costs page faults),
 * and a free heap top above trim_threshold goes back to the kernel (and is
 * faulted in again when the heap grows). Call it once, first thing in main,
 * before threads start; it affects the whole process (it is mallopt). The
 * default mmap threshold, 256 KiB, maps frame-sized blocks (from 480x360
 * up): the buffers a container probe decodes its first frames into go back
 * to the kernel when the open frees them, instead of staying in the heap as
 * resident free memory that a leak could fill before RssAnon moved. A lower
 * threshold maps more block sizes at every use; a lower trim threshold
 * faults the heap's top in again more often. Free heap below the top stays
 * resident whatever the policy; fp_memtrack_malloc_release returns it. The
 * measurements behind these defaults are in docs/results/. The environment
 * variables MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ do the same
 * without code. Returns 0, FP_EINVAL (a value out of range or refused),
 * FP_ENOENT when the C library is not glibc (nothing done). */
#define FP_MALLOC_MMAP_THRESHOLD ((size_t)256 << 10)
#define FP_MALLOC_TRIM_THRESHOLD ((size_t)4 << 20)
typedef struct fp_malloc_policy {
    size_t mmap_threshold; /* M_MMAP_THRESHOLD, bytes (<= 32 MiB); 0 = 256 KiB */
    size_t trim_threshold; /* M_TRIM_THRESHOLD, bytes (<= INT_MAX); 0 = 4 MiB */
    int arena_max;         /* M_ARENA_MAX; 0 = leave glibc's (8 x cores); negative: FP_EINVAL */
} fp_malloc_policy;
FP_API int fp_memtrack_malloc_policy(const fp_malloc_policy *p);

/* Gives the free pages inside the malloc heap back to the kernel (glibc's
 * malloc_trim(0)): RssAnon then counts the heap memory in use, and pages
 * used again later are faulted in again. Not called by framepool itself:
 * after a loop's warm-up, the pages its decoder's allocations reuse later
 * would come back as growth that stops, which the verdict can only call
 * INCONCLUSIVE. Process-wide; cost: a walk of every arena, once. Returns 0,
 * or FP_ENOENT when the C library is not glibc (nothing done). Thread-safe. */
FP_API int fp_memtrack_malloc_release(void);

#ifdef __cplusplus
}
#endif
#endif
