/*
 * cache_ops — costs of weak handles and cache operations, and miss ratios of
 * SIEVE versus LRU on synthetic traces.
 *
 *   build/<dir>/bench/cache_ops [--quick]
 *
 * Part 1 times single-threaded operations (best of 5 runs, ns per op) next
 * to fp_ref+fp_decref, the cheapest thing an object can do, as the peer.
 * Part 2 replays traces through real fp_cache objects (max_entries = the
 * cache size, a miss puts a new object) and prints both policies' miss
 * ratios and SIEVE/LRU.
 */
#define _POSIX_C_SOURCE 200809L
#include <framepool.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct item {
    uint64_t key;
} item;
static const fp_type item_type = {"bench_item", NULL};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rng01(void)
{
    return (double)(rng() >> 11) * (1.0 / 9007199254740992.0);
}

static volatile uintptr_t sink;

/* ---- part 1: operation costs ---------------------------------------------------- */

#define RUNS 5

static double time_ref_pair(item *o, long n)
{
    double best = 1e30;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
            void *p = fp_ref(o);
            sink += (uintptr_t)p;
            fp_decref(p);
        }
        double t = (now_ns() - t0) / (double)n;
        if (t < best)
            best = t;
    }
    return best;
}

static double time_weak_get(fp_weak w, long n)
{
    double best = 1e30;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
            void *p = fp_weak_get(w);
            sink += (uintptr_t)p;
            fp_decref(p);
        }
        double t = (now_ns() - t0) / (double)n;
        if (t < best)
            best = t;
    }
    return best;
}

static double time_weak_get_dead(fp_weak w, long n)
{
    double best = 1e30;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++)
            sink += (uintptr_t)fp_weak_get(w);
        double t = (now_ns() - t0) / (double)n;
        if (t < best)
            best = t;
    }
    return best;
}

#define HOT 1024
#define KEYS_LEN (1 << 16)

static double time_cache_hit(fp_cache_policy pol, const uint64_t *keys, long n)
{
    fp_cache_config cfg = {.max_entries = HOT, .policy = pol};
    fp_cache *c;
    fp_cache_new(&cfg, &c);
    for (uint64_t k = 0; k < HOT; k++) {
        item *o = fp_new(&item_type, sizeof *o);
        fp_cache_put(c, k, o, 64);
        fp_unref(&o);
    }
    double best = 1e30;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
            void *p = fp_cache_get(c, keys[i & (KEYS_LEN - 1)]);
            sink += (uintptr_t)p;
            fp_decref(p);
        }
        double t = (now_ns() - t0) / (double)n;
        if (t < best)
            best = t;
    }
    fp_cache_stats s;
    fp_cache_get_stats(c, &s);
    if (s.misses)
        fprintf(stderr, "cache_ops: unexpected misses in the hit benchmark\n");
    fp_unref(&c);
    return best;
}

/* Puts of new keys into a full cache: each evicts one entry, whose object
 * is then freed. The objects are created beforehand (untimed) and the
 * caller's reference is dropped right after the put, as a user would (an
 * object the caller still holds would be pinned, not evictable). */
static double time_cache_put(fp_cache_policy pol, long n)
{
    enum { BATCH = 1 << 15 };
    item **objs = malloc(BATCH * sizeof *objs);
    double best = 1e30;
    for (int r = 0; r < RUNS; r++) {
        fp_cache_config cfg = {.max_entries = HOT, .policy = pol};
        fp_cache *c;
        fp_cache_new(&cfg, &c);
        for (uint64_t k = 0; k < HOT; k++) {
            item *o = fp_new(&item_type, sizeof *o);
            fp_cache_put(c, k, o, 64);
            fp_unref(&o);
        }
        double total = 0;
        for (long done = 0; done < n; done += BATCH) {
            long m = n - done < BATCH ? n - done : BATCH;
            for (long i = 0; i < m; i++)
                objs[i] = fp_new(&item_type, sizeof(item));
            double t0 = now_ns();
            for (long i = 0; i < m; i++) {
                fp_cache_put(c, (uint64_t)(HOT + done + i), objs[i], 64);
                fp_decref(objs[i]);
            }
            total += now_ns() - t0;
        }
        fp_cache_stats s;
        fp_cache_get_stats(c, &s);
        if (s.entries != HOT || s.evictions != (uint64_t)n)
            fprintf(stderr, "cache_ops: put benchmark: %llu entries, %llu evictions\n",
                    (unsigned long long)s.entries, (unsigned long long)s.evictions);
        double t = total / (double)n;
        if (t < best)
            best = t;
        fp_unref(&c);
    }
    free(objs);
    return best;
}

/* ---- part 2: miss ratios ---------------------------------------------------------- */

typedef struct trace {
    const char *name;
    uint64_t *req;
    size_t n;
} trace;

static uint64_t scramble(uint64_t k)
{
    return k * 0x9e3779b97f4a7c15ull ^ 0x5bd1e995u;
}

/* Zipf(alpha) ranks over `keys` items by inverse CDF. */
typedef struct zipf {
    double *cdf;
    size_t n;
} zipf;

static zipf zipf_make(size_t n, double alpha)
{
    zipf z = {malloc(n * sizeof(double)), n};
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += 1.0 / pow((double)(i + 1), alpha);
    double acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += 1.0 / pow((double)(i + 1), alpha) / sum;
        z.cdf[i] = acc;
    }
    return z;
}

static size_t zipf_draw(const zipf *z)
{
    double u = rng01();
    size_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (z->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static trace trace_zipf(const char *name, double alpha, size_t keys, size_t n)
{
    zipf z = zipf_make(keys, alpha);
    trace t = {name, malloc(n * sizeof(uint64_t)), n};
    for (size_t i = 0; i < n; i++)
        t.req[i] = scramble(zipf_draw(&z));
    free(z.cdf);
    return t;
}

/* Zipf(1.0) with a burst of one-time keys (a scan) after every `every`
 * requests: scans make up about a third of the requests. */
static trace trace_scan_mixed(size_t keys, size_t n, size_t every, size_t scan_len)
{
    zipf z = zipf_make(keys, 1.0);
    trace t = {"scan-mixed", malloc(n * sizeof(uint64_t)), n};
    uint64_t next_scan = 1ull << 40;
    for (size_t i = 0; i < n;) {
        for (size_t j = 0; j < every && i < n; j++)
            t.req[i++] = scramble(zipf_draw(&z));
        for (size_t j = 0; j < scan_len && i < n; j++)
            t.req[i++] = scramble(next_scan++);
    }
    free(z.cdf);
    return t;
}

static trace trace_loop(size_t loop_len, size_t n)
{
    trace t = {"looping", malloc(n * sizeof(uint64_t)), n};
    for (size_t i = 0; i < n; i++)
        t.req[i] = scramble(i % loop_len);
    return t;
}

/* A video editor's timeline of `frames` frames: the playhead mostly plays
 * forward, nudges back and forth while scrubbing, now and then jumps a few
 * seconds or seeks anywhere; each step shows the frame under the playhead
 * and, half the time, a frame of the thumbnail strip around it. */
static trace trace_scrub(size_t frames, size_t n)
{
    trace t = {"video-scrub", malloc(n * sizeof(uint64_t)), n};
    long ph = (long)(frames / 2);
    for (size_t i = 0; i < n;) {
        double u = rng01();
        if (u < 0.002)
            ph = (long)(rng() % frames);
        else if (u < 0.02)
            ph += (long)(rng() % 401) - 200;
        else if (u < 0.5)
            ph += (long)(rng() % 9) - 4; /* scrubbing around */
        else
            ph += 1; /* playing */
        if (ph < 0)
            ph = 0;
        if (ph >= (long)frames)
            ph = (long)frames - 1;
        t.req[i++] = scramble((uint64_t)ph);
        if (i < n && (rng() & 1)) {
            long f = ph + (long)(rng() % 121) - 60;
            if (f < 0)
                f = 0;
            if (f >= (long)frames)
                f = (long)frames - 1;
            t.req[i++] = scramble((uint64_t)f);
        }
    }
    return t;
}

static double miss_ratio(const trace *t, size_t cache_size, fp_cache_policy pol)
{
    fp_cache_config cfg = {.max_entries = cache_size, .policy = pol};
    fp_cache *c;
    if (fp_cache_new(&cfg, &c))
        abort();
    for (size_t i = 0; i < t->n; i++) {
        item *o = fp_cache_get(c, t->req[i]);
        if (!o) {
            o = fp_new(&item_type, sizeof *o);
            o->key = t->req[i];
            fp_cache_put(c, t->req[i], o, 64);
        }
        fp_unref(&o);
    }
    fp_cache_stats s;
    fp_cache_get_stats(c, &s);
    fp_unref(&c);
    return (double)s.misses / (double)(s.hits + s.misses);
}

int main(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && strcmp(argv[1], "--quick"))) {
        int help = !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h");
        fprintf(help ? stdout : stderr,
                "usage: cache_ops [--quick]\n"
                "  Part 1: ns per weak-handle and cache operation (best of 5), next to\n"
                "  fp_ref+fp_unref. Part 2: SIEVE vs LRU miss ratios on synthetic traces.\n"
                "  --quick  200,000 operations instead of 2,000,000\n");
        return help ? 0 : 2;
    }
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    long n = quick ? 200000 : 2000000;

    item *o = fp_new(&item_type, sizeof *o);
    fp_weak w = fp_weak_of(o);
    uint64_t *keys = malloc(KEYS_LEN * sizeof *keys);
    for (int i = 0; i < KEYS_LEN; i++)
        keys[i] = rng() % HOT;

    double t_ref = time_ref_pair(o, n);
    double t_weak = time_weak_get(w, n);
    item *dead = fp_new(&item_type, sizeof *dead);
    fp_weak wd = fp_weak_of(dead);
    fp_unref(&dead);
    double t_weak_dead = time_weak_get_dead(wd, n);
    double t_hit_sieve = time_cache_hit(FP_CACHE_SIEVE, keys, n);
    double t_hit_lru = time_cache_hit(FP_CACHE_LRU, keys, n);
    double t_put_sieve = time_cache_put(FP_CACHE_SIEVE, n / 4);
    double t_put_lru = time_cache_put(FP_CACHE_LRU, n / 4);
    fp_unref(&o);
    free(keys);

    printf("operation costs, single thread, best of %d runs of %ld ops\n", RUNS, n);
    printf("%-52s %9s %12s\n", "operation", "ns/op", "vs ref+unref");
    printf("%-52s %9.1f %12.2f\n", "fp_ref + fp_decref (peer)", t_ref, 1.0);
    printf("%-52s %9.1f %12.2f\n", "fp_weak_get (live) + fp_decref", t_weak, t_weak / t_ref);
    printf("%-52s %9.1f %12.2f\n", "fp_weak_get (dead handle)", t_weak_dead, t_weak_dead / t_ref);
    printf("%-52s %9.1f %12.2f\n", "fp_cache_get hit + fp_decref, SIEVE", t_hit_sieve,
           t_hit_sieve / t_ref);
    printf("%-52s %9.1f %12.2f\n", "fp_cache_get hit + fp_decref, LRU", t_hit_lru,
           t_hit_lru / t_ref);
    printf("%-52s %9.1f %12.2f\n", "fp_cache_put + fp_decref (evicts+frees one), SIEVE", t_put_sieve,
           t_put_sieve / t_ref);
    printf("%-52s %9.1f %12.2f\n", "fp_cache_put + fp_decref (evicts+frees one), LRU", t_put_lru,
           t_put_lru / t_ref);
    printf("\n");

    size_t reqs = quick ? 200000 : 1000000;
    trace traces[6];
    traces[0] = trace_zipf("zipf-0.8", 0.8, 100000, reqs);
    traces[1] = trace_zipf("zipf-1.0", 1.0, 100000, reqs);
    traces[2] = trace_scan_mixed(100000, reqs, 20000, 10000);
    traces[3] = trace_loop(1200, reqs);
    traces[4] = trace_scrub(20000, reqs);
    int nt = 5;
    size_t sizes[] = {1000, 10000};

    printf("miss ratio, %zu requests per trace (lower is better)\n", reqs);
    printf("%-12s %8s %10s %10s %12s\n", "trace", "cache", "SIEVE", "LRU", "SIEVE/LRU");
    for (int i = 0; i < nt; i++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t cs = sizes[s];
            if (i == 3) /* a loop of 1200 keys: a cache smaller and larger than it */
                cs = s == 0 ? 1000 : 1500;
            if (i == 4) /* 20000-frame timeline: 256 and 1024 cached frames */
                cs = s == 0 ? 256 : 1024;
            double ms = miss_ratio(&traces[i], cs, FP_CACHE_SIEVE);
            double ml = miss_ratio(&traces[i], cs, FP_CACHE_LRU);
            printf("%-12s %8zu %10.4f %10.4f %12.3f\n", traces[i].name, cs, ms, ml,
                   ml > 0 ? ms / ml : 0.0);
        }
    }
    for (int i = 0; i < nt; i++)
        free(traces[i].req);
    return 0;
}
