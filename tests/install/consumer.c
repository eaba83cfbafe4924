/* A tiny program built against an installed framepool: acquires a frame from
 * a bounded pool, writes it, and checks that it went back to the pool. */
#include <framepool.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    fp_pool_config cfg = {.name = "consumer", .format = FP_PIX_BGR24, .width = 64, .height = 48,
                          .max_buffers = 2};
    fp_pool *pool = NULL;
    if (fp_pool_new(&cfg, &pool) != FP_OK)
        return 1;
    fp_image *img = NULL;
    int rc = fp_pool_acquire(pool, 0, &img);
    if (rc != FP_OK) {
        fprintf(stderr, "acquire: %s\n", fp_strerror(rc));
        return 1;
    }
    memset(img->data[0], 0x80, (size_t)img->stride[0] * (size_t)img->height);
    fp_unref(&img);
    fp_pool_stats st;
    fp_pool_get_stats(pool, &st);
    fp_unref(&pool);
    printf("framepool %s: idle=%llu outstanding=%llu\n", FP_VERSION_STRING,
           (unsigned long long)st.idle, (unsigned long long)st.outstanding);
    return st.idle == 1 && st.outstanding == 0 ? 0 : 1;
}
