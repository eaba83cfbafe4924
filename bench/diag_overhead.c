/*
 * diag_overhead: what diagnostics cost on the object and pool hot paths.
 *
 * In one process, interleaved rounds (best of N), ns per operation:
 *   fp_new+fp_unref of a 64-byte object, and fp_pool_acquire+fp_unref of a
 *   pooled frame (hit path), each with diagnostics off (the default: per-type
 *   counters plus one branch), sites on (live list), backtraces on;
 *   with the per-type counters switched off (what a build without
 *   diagnostics would cost); peer: malloc+free of the same size;
 *   the same fp_new+fp_unref from 4 threads at once (shard contention);
 *   fp_ref+fp_unref pairs on an object created with diagnostics off, with
 *   sites, and with reference history (FP_DIAG=refs: each pair records its
 *   two call sites in the object's history).
 *
 * Usage: diag_overhead [--ops N] [--rounds R]
 */
#define _POSIX_C_SOURCE 200809L
#include <framepool.h>

#include "internal.h"
#include "typestat.h" /* fp__obj_set_counting: the counters switched off */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const fp_type bench_type = {"bench_obj", NULL};
static long ops = 1000000;
static int rounds = 5;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *volatile sink;

static double run_new_unref(long n)
{
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        void *o = fp_new(&bench_type, 64);
        sink = o;
        fp_unref(&o);
    }
    return (now_s() - t0) * 1e9 / (double)n;
}

static double run_malloc_free(long n)
{
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        void *o = malloc(64 + 128);
        sink = o;
        free(o);
    }
    return (now_s() - t0) * 1e9 / (double)n;
}

static fp_pool *pool;

static double run_pool(long n)
{
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        fp_image *img = NULL;
        if (fp_pool_acquire(pool, 0, &img) != 0) {
            fprintf(stderr, "acquire failed: %s\n", fp_errmsg());
            exit(1);
        }
        sink = img;
        fp_unref(&img);
    }
    return (now_s() - t0) * 1e9 / (double)n;
}

static void *thread_body(void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++) {
        void *o = fp_new(&bench_type, 64);
        fp_unref(&o);
    }
    return NULL;
}

/* fp_ref+fp_unref pairs on one object made while `flags` were on (the
 * history is per object: only objects created with refs on keep one). */
static double run_ref_pairs(long n, unsigned flags)
{
    fp_diag_set_flags(flags);
    void *o = fp_new(&bench_type, 64);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        void *extra = fp_ref(o);
        sink = extra;
        fp_unref(&extra);
    }
    double ns = (now_s() - t0) * 1e9 / (double)n;
    fp_unref(&o);
    fp_diag_set_flags(0);
    return ns;
}

/* Wall time per operation with 4 threads each doing n ops. */
static double run_threads(long n)
{
    pthread_t th[4];
    double t0 = now_s();
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, thread_body, &n);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    return (now_s() - t0) * 1e9 / (double)(4 * n);
}

/* NONE is what a build without diagnostics would cost: the per-type counters
 * switched off through an internal hook (statistics are meaningless then).
 * Pooled images are counted by their pool, which counts its buffers anyway:
 * on the pool hit OFF and NONE run the same code. */
enum { OFF, SITES, BT, NONE, NMODES };
static const unsigned mode_flags[NMODES] = {0, FP_DIAG_SITES, FP_DIAG_SITES | FP_DIAG_BACKTRACE, 0};
static const char *const mode_names[NMODES] = {"off (counters only)", "sites", "sites+backtrace",
                                               "no counters (no diagnostics)"};

static double minv(double a, double b)
{
    return a < b ? a : b;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ops") && i + 1 < argc)
            ops = atol(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else {
            int help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
            fprintf(help ? stdout : stderr,
                    "usage: diag_overhead [--ops N] [--rounds R]\n"
                    "  ns per frame acquire+release with each FP_DIAG mode, against diag off\n");
            return help ? 0 : 2;
        }
    }
    fp_pool_config cfg = {.name = "bench", .format = FP_PIX_BGR24, .width = 1920, .height = 1080,
                          .max_buffers = 2};
    if (fp_pool_new(&cfg, &pool) != 0) {
        fprintf(stderr, "pool: %s\n", fp_errmsg());
        return 1;
    }
    /* Warm-up. */
    run_new_unref(ops / 10);
    run_pool(ops / 10);
    printf("diag_overhead: best of %d interleaved rounds of %ld ops\n", rounds, ops);
    double ratio_new = 0, ratio_pool = 0, counters_new = 0, counters_pool = 0;
    for (int phase = 0; phase < 2; phase++) {
        double best_new[NMODES], best_pool[NMODES];
        double best_malloc = 1e30;
        for (int m = 0; m < NMODES; m++)
            best_new[m] = best_pool[m] = 1e30;
        if (phase == 1) {
            /* glibc's locks take a cheaper path while a process has never had
             * a second thread; a video program always has several. */
            pthread_t th;
            long one = 1;
            pthread_create(&th, NULL, thread_body, &one);
            pthread_join(th, NULL);
        }
        for (int r = 0; r < rounds; r++) {
            best_malloc = minv(best_malloc, run_malloc_free(ops));
            for (int m = 0; m < NMODES; m++) {
                fp_diag_set_flags(mode_flags[m]);
                fp__obj_set_counting(m != NONE);
                best_new[m] = minv(best_new[m], run_new_unref(ops));
                best_pool[m] = minv(best_pool[m], run_pool(ops));
            }
            fp__obj_set_counting(1);
            fp_diag_set_flags(0);
        }
        printf("\n== %s ==\n", phase == 0 ? "single-threaded process (no thread created yet)"
                                           : "after a second thread existed (a real program)");
        printf("%-36s %10s %12s\n", "fp_new(64 B)+fp_unref, 1 thread", "ns/op", "vs off");
        for (int m = 0; m < NMODES; m++)
            printf("%-36s %10.1f %12.2f\n", mode_names[m], best_new[m], best_new[m] / best_new[OFF]);
        printf("%-36s %10.1f %12.2f\n", "peer: malloc+free (192 B)", best_malloc,
               best_malloc / best_new[OFF]);
        printf("%-36s %10s %12s\n", "fp_pool_acquire+fp_unref (hit)", "ns/op", "vs off");
        for (int m = 0; m < NMODES; m++)
            printf("%-36s %10.1f %12.2f\n", mode_names[m], best_pool[m],
                   best_pool[m] / best_pool[OFF]);
        printf("counters only vs no diagnostics: fp_new+fp_unref %+.1f%%, acquire+release %+.1f%%\n",
               100 * (best_new[OFF] / best_new[NONE] - 1), 100 * (best_pool[OFF] / best_pool[NONE] - 1));
        counters_new = best_new[OFF] / best_new[NONE];
        counters_pool = best_pool[OFF] / best_pool[NONE];
        ratio_new = best_new[SITES] / best_new[OFF];
        ratio_pool = best_pool[SITES] / best_pool[OFF];
    }
    double best_thr[NMODES];
    for (int m = 0; m < NMODES; m++)
        best_thr[m] = 1e30;
    for (int r = 0; r < rounds; r++) {
        for (int m = 0; m < NMODES; m++) {
            fp_diag_set_flags(mode_flags[m]);
            fp__obj_set_counting(m != NONE);
            best_thr[m] = minv(best_thr[m], run_threads(ops / 4));
        }
        fp__obj_set_counting(1);
        fp_diag_set_flags(0);
    }
    printf("\n%-36s %10s %12s\n", "fp_new+fp_unref, 4 threads (wall)", "ns/op", "vs off");
    for (int m = 0; m < NMODES; m++)
        printf("%-36s %10.1f %12.2f\n", mode_names[m], best_thr[m], best_thr[m] / best_thr[OFF]);
    static const unsigned ref_flags[3] = {0, FP_DIAG_SITES, FP_DIAG_SITES | FP_DIAG_REFS};
    static const char *const ref_names[3] = {"off (counters only)", "sites", "sites+refs"};
    double best_ref[3] = {1e30, 1e30, 1e30};
    for (int r = 0; r < rounds; r++)
        for (int m = 0; m < 3; m++)
            best_ref[m] = minv(best_ref[m], run_ref_pairs(ops, ref_flags[m]));
    printf("\n%-36s %10s %12s\n", "fp_ref+fp_unref pair, 1 thread", "ns/pair", "vs off");
    for (int m = 0; m < 3; m++)
        printf("%-36s %10.1f %12.2f\n", ref_names[m], best_ref[m], best_ref[m] / best_ref[0]);
    printf("reference history: %+.1f ns per fp_ref or fp_unref\n",
           (best_ref[2] - best_ref[0]) / 2);

    printf("\ngoal sites on within 2x of off (multi-threaded process): fp_new %s (%.2fx), "
           "pool %s (%.2fx)\n",
           ratio_new <= 2 ? "met" : "NOT met", ratio_new, ratio_pool <= 2 ? "met" : "NOT met",
           ratio_pool);
    printf("goal counters only within 5%% of no diagnostics (multi-threaded process): "
           "fp_new %s (%+.1f%%), pool %s (%+.1f%%)\n",
           counters_new <= 1.05 ? "met" : "NOT met", 100 * (counters_new - 1),
           counters_pool <= 1.05 ? "met" : "NOT met", 100 * (counters_pool - 1));
    fp_unref(&pool);
    return 0;
}
