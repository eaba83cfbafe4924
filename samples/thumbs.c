/*
 * thumbs — a generator of small frames feeding a bounded thumbnail cache.
 *
 * The reader resizes on decode (the full-size frame is never converted) and
 * delivers every Nth frame; each thumbnail goes into an fp_cache bounded in
 * bytes, keyed by frame index. The cache keeps copies from a pool of its
 * own, so the reader's frames go back to the reader at once (the reader
 * bounds how many of its frames a caller may hold, and a cache is not a
 * good place to hold them). A timeline UI then scrubs around a moving
 * playhead, asking for the thumbnails near it: hits come from the cache,
 * misses are frames that were evicted. However long the video, the cache
 * never holds more than its bound.
 *
 * Usage: thumbs INPUT [--width W] [--every N] [--max-kib K]
 *        (defaults: 160 px wide, every 5th frame, 512 KiB of thumbnails)
 */
#include <framepool.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *input = NULL;
    int width = 160, every = 5;
    long max_kib = 512;
    for (int i = 1; i < argc; i++) {
        int v = i + 1 < argc;
        if (!strcmp(argv[i], "--width") && v)
            width = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--every") && v)
            every = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-kib") && v)
            max_kib = atol(argv[++i]);
        else if (argv[i][0] == '-' || input)
            input = NULL, i = argc;
        else
            input = argv[i];
    }
    if (!input || width <= 0 || every <= 0 || max_kib <= 0) {
        fprintf(stderr, "usage: thumbs INPUT [--width W] [--every N] [--max-kib K]\n");
        return 2;
    }
    fp_reader_options opts = {.format = FP_PIX_BGR24, .width = width, .every = every};
    fp_reader *r = NULL;
    if (fp_reader_open(input, &opts, &r) < 0) {
        fprintf(stderr, "thumbs: %s\n", fp_reader_errmsg(r));
        fp_reader_close(&r);
        return 1;
    }
    fp_cache_config cc = {.name = "thumbnails", .max_bytes = (size_t)max_kib * 1024};
    fp_cache *cache = NULL;
    if (fp_cache_new(&cc, &cache) < 0) {
        fp_reader_close(&r);
        return 1;
    }
    long thumbs = 0;
    uint64_t max_bytes_seen = 0;
    fp_pool *thumb_pool = NULL;
    fp_image *img = NULL;
    int rc;
    while ((rc = fp_reader_next(r, &img)) > 0) {
        if (!thumb_pool) {
            /* As many thumbnails as the cache can hold, plus the ones in use. */
            fp_pool_config pc = {.name = "thumbnails", .format = img->format,
                                 .width = img->width, .height = img->height};
            pc.max_buffers = (unsigned)(cc.max_bytes / img->bytes) + 4;
            if ((rc = fp_pool_new(&pc, &thumb_pool)) < 0)
                break;
        }
        fp_image *thumb = NULL;
        if ((rc = fp_image_copy(img, thumb_pool, 0, &thumb)) < 0) {
            fprintf(stderr, "thumbs: %s\n", fp_errmsg());
            break;
        }
        rc = fp_cache_put(cache, (uint64_t)img->index, thumb, 0);
        fp_unref(&thumb); /* the cache holds it now */
        if (rc < 0)
            break;
        thumbs++;
        /* The UI looks at the thumbnails around the playhead. */
        for (int k = -3 * every; k <= 0; k += every) {
            int64_t want = img->index + k;
            if (want < 0)
                continue;
            fp_image *t = fp_cache_get(cache, (uint64_t)want);
            fp_unref(&t);
        }
        fp_cache_stats cs;
        fp_cache_get_stats(cache, &cs);
        if (cs.bytes > max_bytes_seen)
            max_bytes_seen = cs.bytes;
    }
    fp_unref(&img);
    if (rc < 0)
        fprintf(stderr, "thumbs: stopped: %s\n", fp_strerror(rc));
    fp_reader_info info;
    fp_reader_info(r, &info);
    fp_cache_stats cs;
    fp_cache_get_stats(cache, &cs);
    printf("thumbs: %ld thumbnails of %dx%d from %dx%d frames (every %d)\n", thumbs,
           info.out_width, info.out_height, info.width, info.height, every);
    printf("cache: %llu entries, %llu bytes (bound %zu), hits %llu, misses %llu, evictions %llu\n",
           (unsigned long long)cs.entries, (unsigned long long)cs.bytes, cc.max_bytes,
           (unsigned long long)cs.hits, (unsigned long long)cs.misses,
           (unsigned long long)cs.evictions);
    printf("bound respected: %s (largest %llu bytes)\n",
           max_bytes_seen <= cc.max_bytes ? "yes" : "NO", (unsigned long long)max_bytes_seen);
    fp_unref(&cache);
    fp_unref(&thumb_pool);
    fp_reader_close(&r);
    return rc < 0 ? 1 : 0;
}
