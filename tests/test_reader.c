/* fp_reader, the public reader and its engine: the iterator's contract —
 * rebinding, bounds (max_held, FP_EHELD), zero-copy pools, creation sites,
 * frames released on other threads, FP_FOREACH_FRAME, info. The stages have
 * their own files: test_reader_input.c, test_reader_seek.c,
 * test_reader_convert.c. */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#include "avclips.h"
#include "internal.h"
#include "readerfix.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <framepool.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

START_TEST(defaults_native)
{
    fp_reader *r = NULL;
    uint64_t tick0 = fp_frame_now();
    ck_assert_int_eq(fp_reader_open(clip_h264, dflt(), &r), 0);
    ck_assert_str_eq(fp_reader_errmsg(r), "");
    fp_reader_info info;
    ck_assert_int_eq(fp_reader_info(r, &info), 0);
    ck_assert_int_eq(info.width, 320);
    ck_assert_int_eq(info.height, 240);
    ck_assert_int_eq(info.native_format, FP_PIX_YUV420P);
    ck_assert_int_eq(info.out_format, FP_PIX_YUV420P);
    ck_assert_str_eq(info.codec, "h264");
    ck_assert_double_eq_tol(info.fps, 25.0, 1e-9);
    ck_assert_int_eq(info.frame_count, NFR);
    ck_assert_int_eq(info.zero_copy, 1);
    ck_assert_uint_eq(info.max_held, FP_READER_DEFAULT_MAX_HELD);
    ck_assert_uint_ge(info.decoder_buffers, 17);
    ck_assert_uint_eq(info.pool_max_buffers, info.decoder_buffers + info.max_held + 1);
    int n = 0;
    int64_t last_pts = INT64_MIN;
    FP_FOREACH_FRAME(r, img)
    {
        ck_assert_int_eq(img->index, n);
        ck_assert_int_eq(img->width, 320);
        ck_assert_int_eq(img->format, FP_PIX_YUV420P);
        ck_assert_int_eq(img->av_format, 0 /* AV_PIX_FMT_YUV420P */);
        ck_assert_int_gt(img->pts, last_pts);
        last_pts = img->pts;
        ck_assert_double_eq_tol(img->time, n / 25.0, 1e-6);
        if (n % 10 == 0)
            ck_assert_uint_ne(img->flags & FP_IMAGE_KEY, 0);
        ck_assert_uint_eq(img->flags & FP_IMAGE_CORRUPT, 0);
        ck_assert_ptr_nonnull(tu_pool_of(img));
        ck_assert_uint_eq((uintptr_t)img->data[0] % 64, 0);
        ck_assert_int_eq(img->stride[0] % 64, 0);
        char h[33];
        image_md5(img, h);
        ck_assert_str_eq(h, md5_ref[n]);
        n++;
    }
    ck_assert_int_eq(n, NFR);
    ck_assert_uint_eq(fp_frame_now() - tick0, NFR);
    fp_reader_stats st;
    ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
    ck_assert_uint_eq(st.delivered, NFR);
    ck_assert_uint_eq(st.decoded, NFR);
    ck_assert_uint_eq(st.held, 0);
    ck_assert_uint_eq(st.wrapped, 0);
    ck_assert_uint_le(st.pool.peak, info.pool_max_buffers);
    /* at the end the reader keeps answering 0 */
    fp_image *img = NULL;
    ck_assert_int_eq(fp_reader_next(r, &img), 0);
    ck_assert_ptr_null(img);
    fp_reader_close(&r);
    ck_assert_ptr_null(r);
    fp_reader_close(&r); /* NULL-safe */
}
END_TEST

START_TEST(rebind_and_keep)
{
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(clip_h264, dflt(), &r), 0);
    fp_image *img = NULL, *kept = NULL;
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    kept = fp_ref(img); /* frame 1, kept past the next step */
    uint32_t before = fp_refcount(kept);
    ck_assert_int_eq(fp_reader_next(r, &img), 1); /* rebinding dropped our other reference */
    ck_assert_uint_lt(fp_refcount(kept), before); /* (the decoder may have let go too) */
    ck_assert_uint_ge(fp_refcount(kept), 1);
    ck_assert_ptr_ne(img, kept);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(fp_reader_next(r, &img), 1);
    /* the kept frame was never recycled or overwritten */
    char h[33];
    image_md5(kept, h);
    ck_assert_str_eq(h, md5_ref[1]);
    ck_assert_int_eq(kept->index, 1);
    /* it outlives the reader */
    fp_unref(&img);
    fp_reader_close(&r);
    image_md5(kept, h);
    ck_assert_str_eq(h, md5_ref[1]);
    ck_assert(fp_image_is_writable(kept)); /* the decoder is gone: ours alone */
    fp_unref(&kept);
}
END_TEST

START_TEST(writable_rules)
{
    /* native: the decoder's reference pictures are not writable while it
     * uses them; make_writable copies from the same pool */
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(clip_h264, dflt(), &r), 0);
    fp_image *img = NULL;
    ck_assert_int_eq(fp_reader_next(r, &img), 1); /* an I frame: a reference */
    ck_assert_uint_ge(fp_refcount(img), 2);
    ck_assert(!fp_image_is_writable(img));
    fp_image *w = fp_ref(img);
    ck_assert_int_eq(fp_image_make_writable(&w), 0);
    ck_assert_ptr_ne(w, img);
    ck_assert(fp_image_is_writable(w));
    char h[33];
    image_md5(w, h);
    ck_assert_str_eq(h, md5_ref[0]);
    memset(w->data[0], 0, (size_t)w->stride[0]); /* writing the copy leaves the decoder alone */
    fp_unref(&w);
    int n = 1;
    while (fp_reader_next(r, &img) > 0) {
        image_md5(img, h);
        ck_assert_str_eq(h, md5_ref[n]);
        n++;
    }
    ck_assert_int_eq(n, NFR);
    fp_reader_close(&r);

    /* converted: the caller's image is its own */
    fp_reader_options o = {0};
    o.threads = TU_THREADS;
    o.format = FP_PIX_BGR24;
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert(fp_image_is_writable(img));
    ck_assert_int_eq(img->format, FP_PIX_BGR24);
    fp_unref(&img);
    fp_reader_close(&r);
}
END_TEST

static void max_held_case(fp_pixfmt fmt, int convert_ahead)
{
    fp_reader_options o = {0};
    o.threads = TU_THREADS;
    o.max_held = 3;
    o.format = fmt;
    o.convert_ahead = convert_ahead;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
    fp_image *held[3] = {0}, *img = NULL;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(fp_reader_next(r, &img), 1);
        held[i] = fp_ref(img);
    }
    /* three held (the rebind dropped img's own reference): a fourth is refused */
    int rc = fp_reader_next(r, &img);
    ck_assert_int_eq(rc, FP_EHELD);
    ck_assert_ptr_null(img);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "max_held"));
    ck_assert_int_eq(fp_reader_next(r, &img), FP_EHELD); /* still, no hang */
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.held, 3);
    fp_unref(&held[0]);
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert_int_eq(img->index, 3); /* nothing was lost */
    fp_unref(&held[1]);
    fp_unref(&held[2]);
    int n = 4;
    while (fp_reader_next(r, &img) > 0)
        ck_assert_int_eq(img->index, n++);
    ck_assert_int_eq(n, NFR);
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.held, 0);
    fp_reader_close(&r);
}

START_TEST(max_held_native)
{
    max_held_case(FP_PIX_NONE, 0);
}
END_TEST

START_TEST(max_held_bgr)
{
    max_held_case(FP_PIX_BGR24, 1);
    max_held_case(FP_PIX_BGR24, 0);
}
END_TEST

START_TEST(sites_are_the_callers)
{
    for (int k = 0; k < 2; k++) {
        fp_reader_options o = {0};
        o.threads = TU_THREADS;
        o.format = k ? FP_PIX_BGR24 : FP_PIX_NONE;
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
        fp_image *img = NULL;
        int line = __LINE__ + 1;
        while (fp_reader_next(r, &img) > 0) {
            const char *file, *func;
            int l;
            fp_obj_site(img, &file, &l, &func);
            ck_assert_str_eq(file, __FILE__);
            ck_assert_int_eq(l, line);
        }
        fp_reader_close(&r);
    }
}
END_TEST

/* FP_DIAG=refs: the rebinding release counts at the caller's
 * fp_reader_next line, so a kept frame's holder is the fp_ref line only. */
START_TEST(rebinding_is_the_callers_in_refs_history)
{
    ck_assert_int_eq(fp_diag_configure("refs"), 0);
    for (int k = 0; k < 2; k++) {
        fp_reader_options o = {0};
        o.threads = TU_THREADS;
        o.format = k ? FP_PIX_BGR24 : FP_PIX_NONE;
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
        fp_image *img = NULL, *keep = NULL;
        int keep_line = 0;
        for (int i = 0; i < 5 && fp_reader_next(r, &img) > 0; i++) {
            if (i == 1) {
                keep_line = __LINE__ + 1;
                keep = fp_ref(img);
            }
        }
        fp_unref(&img);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        ck_assert_int_eq(fp_diag_print_refs(f, keep), 1);
        fclose(f);
        char want[128];
        snprintf(want, sizeof want, "still held by:\n    +1 at %s:%d in ", __FILE__, keep_line);
        ck_assert_msg(strstr(text, want) != NULL, "%s", text);
        free(text);
        fp_unref(&keep);
        fp_reader_close(&r);
    }
    fp_diag_configure("off");
}
END_TEST

/* Frames handed to a consumer thread that checks and releases them while the
 * reader keeps decoding: max_held throttles the producer (FP_EHELD, retry),
 * nothing is lost or overwritten, and the buffers go back from that thread. */
typedef struct handoff {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fp_image *q[64];
    char md5_at_delivery[NFR][33];
    int head, tail, done, bad, seen, native;
} handoff;

static void *consumer(void *arg)
{
    handoff *h = arg;
    /* Start once the producer holds its whole bound (4 frames queued): it
     * then meets FP_EHELD however fast either thread runs. */
    pthread_mutex_lock(&h->mu);
    while (h->tail < 4 && !h->done)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    for (;;) {
        pthread_mutex_lock(&h->mu);
        while (h->head == h->tail && !h->done)
            pthread_cond_wait(&h->cv, &h->mu);
        if (h->head == h->tail && h->done) {
            pthread_mutex_unlock(&h->mu);
            return NULL;
        }
        fp_image *img = h->q[h->head++ % 64];
        pthread_mutex_unlock(&h->mu);
        usleep(2000); /* slower than the decoder */
        char md5[33];
        image_md5(img, md5);
        /* unchanged since delivery (never recycled while held), and for
         * native frames equal to ffmpeg's */
        if (img->index < 0 || img->index >= NFR || strcmp(md5, h->md5_at_delivery[img->index]) ||
            (h->native && strcmp(md5, md5_ref[img->index])))
            h->bad++;
        h->seen++;
        fp_unref(&img);
    }
}

START_TEST(release_on_other_thread)
{
    for (int k = 0; k < 2; k++) {
        fp_reader_options o = {0};
        o.threads = TU_THREADS;
        o.max_held = 4;
        o.format = k ? FP_PIX_BGR24 : FP_PIX_NONE;
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
        static handoff h;
        memset(&h, 0, sizeof h);
        pthread_mutex_init(&h.mu, NULL);
        pthread_cond_init(&h.cv, NULL);
        h.native = !k;
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, consumer, &h), 0);
        fp_image *img = NULL;
        int n = 0, limits = 0, rc;
        for (;;) {
            rc = fp_reader_next(r, &img);
            if (rc == FP_EHELD) {
                limits++;
                usleep(500);
                continue;
            }
            if (rc <= 0)
                break;
            ck_assert_int_eq(img->index, n);
            image_md5(img, h.md5_at_delivery[n]);
            pthread_mutex_lock(&h.mu);
            h.q[h.tail++ % 64] = img; /* ownership moves to the consumer */
            img = NULL;
            pthread_cond_signal(&h.cv);
            pthread_mutex_unlock(&h.mu);
            n++;
        }
        ck_assert_int_eq(rc, 0);
        pthread_mutex_lock(&h.mu);
        h.done = 1;
        pthread_cond_signal(&h.cv);
        pthread_mutex_unlock(&h.mu);
        pthread_join(th, NULL);
        ck_assert_int_eq(n, NFR);
        ck_assert_int_eq(h.seen, NFR);
        ck_assert_int_eq(h.bad, 0);
        ck_assert_int_gt(limits, 0); /* the bound did throttle */
        fp_reader_stats st;
        fp_reader_get_stats(r, &st);
        ck_assert_uint_eq(st.held, 0);
        fp_reader_close(&r);
        pthread_mutex_destroy(&h.mu);
        pthread_cond_destroy(&h.cv);
    }
}
END_TEST

/* ---- network: deadline and interrupt ------------------------------------------------ */

static uint64_t images_alive(void)
{
    fp_type_stats ts;
    fp_type_get_stats(&fp_image_type, &ts);
    return ts.live;
}

/* Returns from inside the loop with the frame of index `at`. */
static int64_t return_at(fp_reader *r, int64_t at)
{
    FP_FOREACH_FRAME(r, img) {
        if (img->index == at)
            return img->index;
    }
    return -1;
}

START_TEST(foreach_break_releases)
{
    /* The loop users write (ESC quits): open, a few frames, break, close —
     * 1,000 times, native and converted. Nothing may stay alive. */
    uint64_t alive0 = images_alive();
    /* ThreadSanitizer makes an open 20-50x slower: 50 there (the threads
     * are what it checks); 1,000 in the plain and ASan builds */
#if defined(__SANITIZE_THREAD__)
    const int iterations = 50;
#else
    const int iterations = 1000;
#endif
    for (int it = 0; it < iterations; it++) {
        fp_reader_options o = *dflt();
        o.threads = 1 + it % 2; /* quick opens; frame threads too */
        if (it & 2)
            o.format = FP_PIX_BGR24;
        fp_reader *r = NULL;
        ck_assert_int_eq(fp_reader_open(clip_small, &o, &r), 0);
        int n = 0;
        FP_FOREACH_FRAME(r, img) {
            ck_assert_ptr_nonnull(img);
            if (++n == 3 + it % 4)
                break;
        }
        ck_assert_int_eq(n, 3 + it % 4);
        fp_reader_stats st;
        ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
        ck_assert_uint_eq(st.held, 0); /* the break released it, before the close */
        if (it % 100 == 0) {
            ck_assert_int_eq(return_at(r, n + 2), n + 2);
            ck_assert_int_eq(fp_reader_get_stats(r, &st), 0);
            ck_assert_uint_eq(st.held, 0);
        }
        fp_reader_close(&r);
        ck_assert_msg(images_alive() == alive0, "iteration %d: %llu images alive, %llu before",
                      it, (unsigned long long)images_alive(), (unsigned long long)alive0);
    }
    /* running to the end (and past it) releases once, never twice */
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(clip_small, dflt(), &r), 0);
    int n = 0;
    FP_FOREACH_FRAME(r, img) n++;
    ck_assert_int_eq(n, 25);
    FP_FOREACH_FRAME(r, img) n++;
    ck_assert_int_eq(n, 25);
    fp_reader_close(&r);
    ck_assert_uint_eq(images_alive(), alive0);
}
END_TEST

/* ---- messages never show credentials; info does not change the reader ------------- */

START_TEST(info_leaves_reader_alone)
{
    /* before any frame, info computes what the output will be without
     * touching the reader: not its geometry, not its message */
    char tall[1024];
    ck_assert_ptr_nonnull(clip_make("r_tall.mp4",
                                    "-f lavfi -i testsrc2=size=16x256:rate=25 -frames:v 5 "
                                    "-c:v libx264 -pix_fmt yuv420p",
                                    tall, sizeof tall));
    fp_reader_options o = *dflt();
    o.format = FP_PIX_BGR24;
    o.width = FP_MAX_DIMENSION; /* keeping the aspect, the height would be 16x too big */
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(tall, &o, &r), 0);
    ck_assert_str_eq(fp_reader_errmsg(r), "");
    fp_reader_info info;
    ck_assert_int_eq(fp_reader_info(r, &info), 0);
    ck_assert_str_eq(fp_reader_errmsg(r), ""); /* no message from a const call */
    ck_assert_int_eq(info.out_width, 16);
    ck_assert_int_eq(info.out_height, 256);
    fp_image *img = NULL;
    ck_assert_int_eq(fp_reader_next(r, &img), FP_EINVAL); /* the frame itself says why */
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "exceeds"));
    fp_reader_close(&r);

    o.width = 0;
    o.height = 120;
    ck_assert_int_eq(fp_reader_open(clip_h264, &o, &r), 0);
    fp_reader_info a, b;
    ck_assert_int_eq(fp_reader_info(r, &a), 0);
    ck_assert_int_eq(fp_reader_info(r, &b), 0);
    ck_assert_int_eq(a.out_width, 160);
    ck_assert_int_eq(a.out_height, 120);
    ck_assert_int_eq(b.out_width, 160);
    ck_assert_int_eq(fp_reader_next(r, &img), 1);
    ck_assert_int_eq(img->width, 160);
    ck_assert_int_eq(img->height, 120);
    ck_assert_int_eq(fp_reader_info(r, &a), 0);
    ck_assert_int_eq(a.out_width, 160);
    ck_assert_int_eq(a.out_height, 120);
    fp_unref(&img);
    fp_reader_close(&r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("reader_api");
    TCase *tc = tu_tcase(s, "api", setup, 60);
    tcase_add_test(tc, defaults_native);
    tcase_add_test(tc, rebind_and_keep);
    tcase_add_test(tc, writable_rules);
    tcase_add_test(tc, max_held_native);
    tcase_add_test(tc, max_held_bgr);
    tcase_add_test(tc, sites_are_the_callers);
    tcase_add_test(tc, rebinding_is_the_callers_in_refs_history);
    tcase_add_test(tc, release_on_other_thread);
    tcase_add_test(tc, info_leaves_reader_alone);
    /* The long loop gets its own time bound: under ASan on a busy machine
     * it takes over a minute. */
    TCase *lc = tu_tcase(s, "long", setup, 200);
    tcase_add_test(lc, foreach_break_releases);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
