/* Bad input: every broken file gives a clear error or the frames that can
 * be decoded — never a crash, a hang or a leak (this suite also runs under
 * AddressSanitizer/LeakSanitizer), and allocation failures are survived. */
#define _POSIX_C_SOURCE 200809L
#include "avclips.h"
#include "testutil.h"

#include <framepool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SRC "-f lavfi -i testsrc2=size=320x240:rate=25 "

static char dir[1024];

static const char *tmp_path(const char *name)
{
    static char p[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/bad-%ld-%s", clip_dir(), (long)getpid(), name);
    return p[k];
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Opens `path`, expects `code` and a message containing `needle`. */
static void expect_open_error(const char *path, int code, const char *needle)
{
    fp_reader *r = NULL;
    int rc = fp_reader_open(path, NULL, &r);
    ck_assert_msg(rc == code, "%s: got %d (%s), want %d", path, rc, fp_reader_errmsg(r), code);
    ck_assert_ptr_nonnull(r); /* a closed reader that carries the message */
    ck_assert_msg(strstr(fp_reader_errmsg(r), needle) != NULL, "%s: message '%s' lacks '%s'",
                  path, fp_reader_errmsg(r), needle);
    ck_assert_msg(strstr(fp_reader_errmsg(r), path) != NULL, "message names the file");
    fp_image *img = NULL;
    ck_assert_int_eq(fp_reader_next(r, &img), FP_EINVAL);
    fp_reader_info info;
    ck_assert_int_eq(fp_reader_info(r, &info), FP_EINVAL);
    fp_reader_close(&r);
}

START_TEST(missing_directory_empty_text)
{
    expect_open_error("/nonexistent/framepool/clip.mp4", FP_ENOENT, "no such file");
    expect_open_error(clip_dir(), FP_EINVAL, "directory");
    const char *empty = tmp_path("empty.mp4");
    write_file(empty, "", 0);
    expect_open_error(empty, FP_EFORMAT, "empty");
    const char *text = tmp_path("notes.mp4");
    const char *words = "These are notes, not a video.\nLine two.\n";
    write_file(text, words, strlen(words));
    expect_open_error(text, FP_EFORMAT, "text file");
    const char *noise = tmp_path("noise.bin");
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 7919u >> 3) ^ 0x5a;
    write_file(noise, junk, sizeof junk);
    fp_reader *r = NULL;
    int rc = fp_reader_open(noise, NULL, &r);
    ck_assert_int_lt(rc, 0);
    ck_assert_str_ne(fp_reader_errmsg(r), "");
    fp_reader_close(&r);
    unlink(empty);
    unlink(text);
    unlink(noise);
    /* argument errors */
    ck_assert_int_eq(fp_reader_open(NULL, NULL, &r), FP_EINVAL);
    fp_reader_close(&r);
    ck_assert_int_eq(fp_reader_open("x", NULL, NULL), FP_EINVAL);
    fp_image *img = NULL;
    ck_assert_int_eq(fp_reader_next(NULL, &img), FP_EINVAL);
    ck_assert_str_eq(fp_reader_errmsg(NULL), "no reader");
    fp_reader_options o = {0};
    o.end = 1;
    o.start = 2;
    char path[1024];
    ck_assert_ptr_nonnull(clip_make("b_h264.mp4", SRC "-frames:v 30 -c:v libx264 -bf 2", path,
                                    sizeof path));
    ck_assert_int_eq(fp_reader_open(path, &o, &r), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "start"));
    fp_reader_close(&r);
}
END_TEST

START_TEST(audio_only)
{
    char path[1024];
    ck_assert_ptr_nonnull(clip_make("b_sine.wav", "-f lavfi -i sine=duration=0.5", path,
                                    sizeof path));
    expect_open_error(path, FP_ENOSTREAM, "no video stream");
    fp_reader_options o = {0};
    o.stream_set = 1;
    o.stream = 0;
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(path, &o, &r), FP_ENOSTREAM);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "not video"));
    fp_reader_close(&r);
}
END_TEST

/* Patches the first occurrence of `from` with `to` (same length). */
static int patch_copy(const char *src, const char *dst, const void *from, const void *to,
                      size_t n)
{
    FILE *f = fopen(src, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    int found = 0;
    for (long i = 0; i + (long)n <= len; i++)
        if (!memcmp(b + i, from, n)) {
            memcpy(b + i, to, n);
            found = 1;
            break;
        }
    write_file(dst, b, (size_t)len);
    free(b);
    return found;
}

START_TEST(unsupported_codec_and_absurd_size)
{
    char path[1024];
    ck_assert_ptr_nonnull(clip_make("b_h264.mkv", SRC "-frames:v 10 -c:v libx264", path,
                                    sizeof path));
    const char *bad = tmp_path("codec.mkv");
    ck_assert(patch_copy(path, bad, "V_MPEG4/ISO/AVC", "V_MPEG4/ISO/ZZZ", 15));
    expect_open_error(bad, FP_EFORMAT, "unsupported codec");
    unlink(bad);
    /* A raw (y4m) stream 20000 pixels wide: FFmpeg accepts it, framepool's
     * limit (FP_MAX_DIMENSION) refuses it before allocating anything. */
    const char *big = tmp_path("wide.y4m");
    const char *hdr = "YUV4MPEG2 W20000 H16 F25:1 Ip A1:1 C420jpeg\nFRAME\n";
    size_t fsz = 20000 * 16 * 3 / 2, hl = strlen(hdr);
    unsigned char *data = calloc(1, hl + fsz);
    memcpy(data, hdr, hl);
    write_file(big, data, hl + fsz);
    free(data);
    expect_open_error(big, FP_EFORMAT, "absurd dimensions");
    unlink(big);
}
END_TEST

typedef struct src_clip {
    const char *name, *args;
    int frames;
} src_clip;

static const src_clip damaged[] = {
    {"b_h264.ts", SRC "-frames:v 30 -c:v libx264 -bf 2 -g 10", 30},
    {"b_h264_fast.mp4", SRC "-frames:v 30 -c:v libx264 -bf 2 -g 10 -movflags +faststart", 30},
    {"b_mjpeg.avi", SRC "-frames:v 30 -c:v mjpeg", 30},
    {"b_mpeg4.avi", SRC "-frames:v 30 -c:v mpeg4 -bf 2", 30},
    {"b_vp9.webm", SRC "-frames:v 20 -c:v libvpx-vp9 -deadline realtime -cpu-used 8", 20},
    {"b_hevc.mkv", SRC "-frames:v 20 -c:v libx265 -preset ultrafast -x265-params log-level=error",
     20},
};
#define NDAMAGED ((int)(sizeof damaged / sizeof damaged[0]))

/* Reads everything; returns frames, stores the final code. Each frame is
 * touched (hashed) so that ASan sees any bad pixel pointer. */
static uint64_t last_corrupt; /* frames flagged FP_IMAGE_CORRUPT by the last drain */

static int drain(const char *path, fp_pixfmt fmt, int *final, int *opened)
{
    last_corrupt = 0;
    fp_reader_options o = {0};
    o.format = fmt;
    fp_reader *r = NULL;
    int rc = fp_reader_open(path, &o, &r);
    *opened = rc == 0;
    if (rc) {
        ck_assert_str_ne(fp_reader_errmsg(r), "");
        fp_reader_close(&r);
        *final = rc;
        return 0;
    }
    int n = 0;
    fp_image *img = NULL;
    while ((rc = fp_reader_next(r, &img)) > 0) {
        char h[33];
        image_md5(img, h);
        n++;
        last_corrupt += (img->flags & FP_IMAGE_CORRUPT) != 0;
    }
    if (rc < 0)
        ck_assert_msg(strlen(fp_reader_errmsg(r)) > 0, "error %d without a message", rc);
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    ck_assert_uint_eq(st.held, 0);
    ck_assert_uint_eq(st.corrupt, last_corrupt); /* stats agree with the flags */
    fp_reader_close(&r);
    *final = rc;
    return n;
}

START_TEST(corrupted_middle_third)
{
    const src_clip *c = &damaged[_i];
    char path[1024];
    ck_assert_ptr_nonnull(clip_make(c->name, c->args, path, sizeof path));
    uint64_t flagged = 0;
    for (int stride = 97; stride >= 13; stride /= 2) {
        const char *bad = tmp_path(c->name);
        ck_assert_int_eq(clip_corrupt_copy(path, bad, stride, 0), 0);
        for (int k = 0; k < 2; k++) {
            int final, opened;
            int n = drain(bad, k ? FP_PIX_BGR24 : FP_PIX_NONE, &final, &opened);
            printf("%s corrupt/%d %s: %d of %d frames (%llu flagged corrupt), end %d\n",
                   c->name, stride, k ? "bgr24" : "native", n, c->frames,
                   (unsigned long long)last_corrupt, final);
            flagged += last_corrupt;
            ck_assert(final == 0 || final == FP_EDECODE || final == FP_EFORMAT ||
                      final == FP_EIO);
            ck_assert_int_le(n, c->frames + 2);
            /* the first third is intact: its frames come out */
            if (opened && strstr(c->name, "mjpeg"))
                ck_assert_int_ge(n, c->frames / 3);
        }
        unlink(bad);
    }
    /* H.264 and MPEG-4 conceal damaged macroblocks: those frames are flagged */
    if (strstr(c->name, "h264") || strstr(c->name, "mpeg4"))
        ck_assert_uint_gt(flagged, 0);
}
END_TEST

START_TEST(truncated)
{
    const src_clip *c = &damaged[_i];
    char path[1024];
    ck_assert_ptr_nonnull(clip_make(c->name, c->args, path, sizeof path));
    const double keeps[] = {0.6, 0.2, 0.01};
    for (int k = 0; k < 3; k++) {
        const char *bad = tmp_path(c->name);
        ck_assert_int_eq(clip_corrupt_copy(path, bad, 0, keeps[k]), 0);
        int final, opened;
        int n = drain(bad, FP_PIX_NONE, &final, &opened);
        printf("%s truncated to %.0f%%: %d of %d frames, end %d\n", c->name, keeps[k] * 100, n,
               c->frames, final);
        ck_assert_int_le(n, c->frames);
        if (opened) /* the frames that are there, then the end */
            ck_assert_msg(final == 0 || final == FP_EDECODE, "%s: end %d", c->name, final);
        if (k == 0 && !strstr(c->name, "webm") && !strstr(c->name, "mkv"))
            ck_assert_int_ge(n, c->frames / 3); /* 60% of the bytes: a good part of the frames */
        unlink(bad);
    }
}
END_TEST

/* Every JPEG's entropy-coded data scrambled: the decoder rejects packet
 * after packet, and past the error budget the reader says so. */
START_TEST(error_budget)
{
    char path[1024];
    ck_assert_ptr_nonnull(clip_make("b_mjpeg60.avi", SRC "-frames:v 60 -c:v mjpeg", path,
                                    sizeof path));
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    int scans = 0;
    for (long i = 0; i + 1 < n; i++) {
        if (b[i] == 0xFF && b[i + 1] == 0xDA) { /* start of scan */
            for (long k = i + 14; k < i + 3000 && k < n; k += 2)
                b[k] = b[k] == 0xFF ? 0x00 : 0xFF;
            scans++;
            i += 1;
        }
    }
    ck_assert_int_ge(scans, 60);
    const char *bad = tmp_path("scrambled.avi");
    write_file(bad, b, (size_t)n);
    free(b);
    fp_reader *r = NULL;
    ck_assert_int_eq(fp_reader_open(bad, NULL, &r), 0);
    fp_image *img = NULL;
    int rc, frames = 0;
    while ((rc = fp_reader_next(r, &img)) > 0)
        frames++;
    ck_assert_int_eq(rc, FP_EDECODE);
    ck_assert_ptr_nonnull(strstr(fp_reader_errmsg(r), "too many decode errors"));
    fp_reader_stats st;
    fp_reader_get_stats(r, &st);
    ck_assert_uint_gt(st.decode_errors, FP_READER_ERROR_BUDGET_MIN);
    ck_assert_uint_gt(st.decode_errors * 3, st.packets * 2);
    ck_assert_int_eq(fp_reader_next(r, &img), 0); /* then at its end */
    fp_reader_close(&r);
    unlink(bad);
}
END_TEST

START_TEST(allocation_failures)
{
    char path[1024];
    ck_assert_ptr_nonnull(clip_make("b_h264.ts", damaged[0].args, path, sizeof path));
    for (int k = 0; k < 2; k++) {
        tu_alloc_install();
        uint64_t n_allocs;
        {
            fp_reader_options o = {0};
            o.format = k ? FP_PIX_BGR24 : FP_PIX_NONE;
            o.threads = 1;
            fp_reader *r = NULL;
            ck_assert_int_eq(fp_reader_open(path, &o, &r), 0);
            fp_image *img = NULL;
            for (int i = 0; i < 5; i++)
                ck_assert_int_eq(fp_reader_next(r, &img), 1);
            fp_unref(&img);
            fp_reader_close(&r);
            n_allocs = tu_alloc_count();
            ck_assert_int_eq(tu_alloc_live(), 0);
        }
        ck_assert_uint_gt(n_allocs, 3);
        for (uint64_t fail = 1; fail <= n_allocs; fail++) {
            tu_alloc_fail_at(fail);
            fp_reader_options o = {0};
            o.format = k ? FP_PIX_BGR24 : FP_PIX_NONE;
            o.threads = 1;
            fp_reader *r = NULL;
            int rc = fp_reader_open(path, &o, &r);
            if (rc == 0) {
                fp_image *img = NULL;
                for (int i = 0; i < 5; i++) {
                    rc = fp_reader_next(r, &img);
                    if (rc <= 0)
                        break;
                }
                ck_assert(rc >= 0 || rc == FP_ENOMEM || rc == FP_ELIMIT || rc == FP_EDECODE);
                fp_unref(&img);
            } else {
                ck_assert_int_eq(rc, FP_ENOMEM);
            }
            fp_reader_close(&r);
            ck_assert_msg(tu_alloc_live() == 0, "failing allocation %llu leaks %lld blocks",
                          (unsigned long long)fail, (long long)tu_alloc_live());
        }
        tu_alloc_fail_at(0);
        tu_alloc_uninstall();
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("badinput");
    TCase *tc = tcase_create("bad");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, missing_directory_empty_text);
    tcase_add_test(tc, audio_only);
    tcase_add_test(tc, unsupported_codec_and_absurd_size);
    tcase_add_loop_test(tc, corrupted_middle_third, 0, NDAMAGED);
    tcase_add_loop_test(tc, truncated, 0, NDAMAGED);
    tcase_add_test(tc, error_budget);
    tcase_add_test(tc, allocation_failures);
    suite_add_tcase(s, tc);
    (void)dir;
    return s;
}

int main(void)
{
    return tu_run(suite());
}
