/*
 * pool_ops — what a frame pool buys over malloc/free and FFmpeg's own pool.
 *
 *   1. ns per acquire+release of one frame: framepool vs malloc+free of the
 *      same size vs av_buffer_pool_get+av_buffer_unref (single thread).
 *   2. A two-thread producer -> consumer run: the producer gets a frame and
 *      writes every byte (as a decoder or a converter would), a queue of 8
 *      carries it, the consumer releases it. Minor page faults per frame after
 *      warm-up and frames per second, framepool vs posix_memalign(64)/free,
 *      which is how av_frame_get_buffer allocates a frame.
 *
 * Usage: pool_ops [--width W] [--height H] [--ops N] [--frames N]
 */
#define _GNU_SOURCE
#include <framepool.h>
#include <libavutil/buffer.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static volatile uintptr_t sink;

/* ---- 1. single-thread cost ------------------------------------------------ */

static double bench_framepool(fp_pool *pool, long ops)
{
    double t0 = now_s();
    for (long i = 0; i < ops; i++) {
        fp_image *img;
        if (fp_pool_acquire(pool, 0, &img) != FP_OK)
            abort();
        sink += (uintptr_t)img->data[0];
        fp_unref(&img);
    }
    return (now_s() - t0) * 1e9 / (double)ops;
}

static double bench_malloc(size_t size, long ops)
{
    double t0 = now_s();
    for (long i = 0; i < ops; i++) {
        void *p = malloc(size);
        if (!p)
            abort();
        sink += (uintptr_t)p;
        free(p);
    }
    return (now_s() - t0) * 1e9 / (double)ops;
}

static double bench_avpool(AVBufferPool *pool, long ops)
{
    double t0 = now_s();
    for (long i = 0; i < ops; i++) {
        AVBufferRef *b = av_buffer_pool_get(pool);
        if (!b)
            abort();
        sink += (uintptr_t)b->data;
        av_buffer_unref(&b);
    }
    return (now_s() - t0) * 1e9 / (double)ops;
}

/* ---- 2. producer -> consumer ------------------------------------------------- */

#define QDEPTH 8
typedef struct pc {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void *items[QDEPTH];
    int head, count, done;
    int use_pool;
    fp_pool *pool;
    size_t size;
    long frames;
    long *faults;    /* minor faults seen before frame i (pre-touched) */
    uint64_t *misses; /* pool misses before frame i */
    double *t;
} pc;

static void push(pc *q, void *it)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == QDEPTH)
        pthread_cond_wait(&q->cv, &q->mu);
    q->items[(q->head + q->count++) % QDEPTH] = it;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static void *pop(pc *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && !q->done)
        pthread_cond_wait(&q->cv, &q->mu);
    void *it = NULL;
    if (q->count) {
        it = q->items[q->head];
        q->head = (q->head + 1) % QDEPTH;
        q->count--;
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return it;
}

static void *producer(void *arg)
{
    pc *q = arg;
    for (long i = 0; i < q->frames; i++) {
        q->faults[i] = minor_faults();
        q->t[i] = now_s();
        if (q->use_pool) {
            fp_pool_stats st;
            fp_pool_get_stats(q->pool, &st);
            q->misses[i] = st.misses;
        }
        void *it;
        if (q->use_pool) {
            fp_image *img;
            if (fp_pool_acquire(q->pool, -1, &img) != FP_OK)
                abort();
            memset(img->data[0], (int)i, q->size);
            it = img;
        } else {
            /* What av_frame_get_buffer does: a 64-byte aligned block. */
            void *p = NULL;
            if (posix_memalign(&p, 64, q->size))
                abort();
            memset(p, (int)i, q->size);
            it = p;
        }
        push(q, it);
    }
    pthread_mutex_lock(&q->mu);
    q->done = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static void *consumer(void *arg)
{
    pc *q = arg;
    void *it;
    while ((it = pop(q)) != NULL) {
        if (q->use_pool) {
            fp_image *img = it;
            sink += img->data[0][0];
            fp_unref(&img);
        } else {
            sink += *(uint8_t *)it;
            free(it);
        }
    }
    return NULL;
}

/* Warm-up ends when the pool stopped missing (its last new buffer has been
 * faulted in), and not before 10% of the frames; the malloc peer uses the 10%
 * rule alone. Faults and fps are measured from there to the last frame. */
static void run_pc(int use_pool, fp_pool *pool, size_t size, long frames, double *faults_per_frame,
                   double *fps, long *warmup_out)
{
    pc q;
    memset(&q, 0, sizeof q);
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.cv, NULL);
    q.use_pool = use_pool;
    q.pool = pool;
    q.size = size;
    q.frames = frames;
    q.faults = calloc((size_t)frames, sizeof *q.faults);
    q.misses = calloc((size_t)frames, sizeof *q.misses);
    q.t = calloc((size_t)frames, sizeof *q.t);
    if (!q.faults || !q.misses || !q.t)
        abort();
    /* Pre-touch the sample arrays so their own faults are not counted. */
    memset(q.faults, 1, (size_t)frames * sizeof *q.faults);
    memset(q.misses, 1, (size_t)frames * sizeof *q.misses);
    memset(q.t, 1, (size_t)frames * sizeof *q.t);
    pthread_t a, b;
    pthread_create(&a, NULL, producer, &q);
    pthread_create(&b, NULL, consumer, &q);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    long warmup = frames / 10;
    if (use_pool)
        for (long i = 1; i < frames; i++)
            if (q.misses[i] != q.misses[i - 1] && i + 1 > warmup)
                warmup = i + 1;
    if (warmup >= frames - 1)
        warmup = frames - 2;
    long last = frames - 1;
    *faults_per_frame = (double)(q.faults[last] - q.faults[warmup]) / (double)(last - warmup);
    *fps = (double)(last - warmup) / (q.t[last] - q.t[warmup]);
    *warmup_out = warmup;
    free(q.faults);
    free(q.misses);
    free(q.t);
    pthread_mutex_destroy(&q.mu);
    pthread_cond_destroy(&q.cv);
}

int main(int argc, char **argv)
{
    int w = 1920, h = 1080;
    long ops = 2000000, frames = 5000;
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: pool_ops [--width W] [--height H] [--ops N] [--frames N]\n"
               "  1. ns per acquire+release of a WxH BGR frame (default 1920x1080, N ops):\n"
               "     framepool vs malloc+free vs av_buffer_pool_get+unref\n"
               "  2. producer -> queue of 8 -> consumer for --frames frames: minor faults per\n"
               "     frame after warm-up and fps, framepool vs posix_memalign/free\n");
        return 0;
    }
    if (argc % 2 == 0) {
        fprintf(stderr, "usage: pool_ops [--width W] [--height H] [--ops N] [--frames N]\n");
        return 2;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--width"))
            w = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--height"))
            h = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ops"))
            ops = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--frames"))
            frames = atol(argv[i + 1]);
        else {
            fprintf(stderr, "usage: pool_ops [--width W] [--height H] [--ops N] [--frames N]\n");
            return 2;
        }
    }
    /* Sized for the pipeline (8 queued, one at each end, slack) and warmed up
     * front, as a real-time loop would configure it. */
    fp_pool_config cfg = {.name = "bench", .format = FP_PIX_BGR24, .width = w, .height = h,
                          .min_buffers = QDEPTH + 4, .max_buffers = QDEPTH + 4,
                          .prefault = 1};
    fp_pool *pool;
    if (fp_pool_new(&cfg, &pool) != FP_OK) {
        fprintf(stderr, "pool_ops: cannot create a %dx%d pool: %s\n", w, h, fp_errmsg());
        return 1;
    }
    fp_pool_stats st;
    fp_pool_get_stats(pool, &st);
    size_t size = (size_t)w * 3 * (size_t)h; /* what the frame holds */
    AVBufferPool *avp = av_buffer_pool_init(size, NULL);

    /* Warm all three, then interleave rounds so machine noise hits each alike. */
    bench_framepool(pool, 1000);
    bench_malloc(size, 1000);
    bench_avpool(avp, 1000);
    double fp_ns = 1e30, m_ns = 1e30, av_ns = 1e30;
    for (int round = 0; round < 5; round++) {
        double a = bench_framepool(pool, ops / 5), b = bench_malloc(size, ops / 5),
               c = bench_avpool(avp, ops / 5);
        fp_ns = a < fp_ns ? a : fp_ns;
        m_ns = b < m_ns ? b : m_ns;
        av_ns = c < av_ns ? c : av_ns;
    }
    printf("pool_ops: %dx%d BGR24 frame (%zu bytes), best of 5 rounds of %ld ops\n\n", w, h, size,
           ops / 5);
    printf("%-36s %10s %12s\n", "acquire + release (1 thread)", "ns/op", "vs framepool");
    printf("%-36s %10.1f %12.2f\n", "framepool fp_pool_acquire+fp_unref", fp_ns, 1.0);
    printf("%-36s %10.1f %12.2f\n", "av_buffer_pool_get+av_buffer_unref", av_ns, av_ns / fp_ns);
    printf("%-36s %10.1f %12.2f\n", "malloc+free", m_ns, m_ns / fp_ns);

    double pf_fp, fps_fp, pf_m, fps_m;
    long wu_fp, wu_m;
    run_pc(1, pool, size, frames, &pf_fp, &fps_fp, &wu_fp);
    run_pc(0, NULL, size, frames, &pf_m, &fps_m, &wu_m);
    printf("\n%-36s %14s %10s %10s\n", "producer -> queue(8) -> consumer", "faults/frame", "fps",
           "warm-up");
    printf("%-36s %14.3f %10.0f %10ld\n", "framepool pool", pf_fp, fps_fp, wu_fp);
    printf("%-36s %14.3f %10.0f %10ld\n", "posix_memalign/free", pf_m, fps_m, wu_m);
    if (pf_fp > 0)
        printf("\nframepool vs posix_memalign/free: %.0fx fewer minor faults per frame, %.2fx the fps\n",
               pf_m / pf_fp, fps_fp / fps_m);
    else
        printf("\nframepool vs posix_memalign/free: no faults against %.1f per frame, %.2fx the fps\n",
               pf_m, fps_fp / fps_m);
    printf("goal acquire+release <= av_buffer_pool: %s (%.1f vs %.1f ns)\n",
           fp_ns <= av_ns ? "met" : "NOT met", fp_ns, av_ns);
    printf("goal zero faults per frame after warm-up: %s (%.3f)\n",
           pf_fp == 0.0 ? "met" : "NOT met", pf_fp);

    av_buffer_pool_uninit(&avp);
    fp_unref(&pool);
    return 0;
}
