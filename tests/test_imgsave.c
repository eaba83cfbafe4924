/*
 * fp_image_save: files decoded back with libavcodec hold the image's pixels
 * exactly (PNG, BMP, PPM, PGM), JPEG decodes at the right size and close to
 * the image, every error case, threads, and allocation-failure sweeps over
 * framepool's allocator and FFmpeg's (sizes and counted calls).
 */
#define _GNU_SOURCE
#include "av_interpose.h"
#include "testutil.h"

#include <framepool.h>
#include <framepool/diag.h>

#include <math.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <pthread.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[512];

static const char *out_path(const char *name)
{
    static _Thread_local char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static void setup(void)
{
    av_log_set_level(AV_LOG_QUIET);
    snprintf(dir, sizeof dir, "%s/imgsave-test-%d", FP_BINARY_DIR, (int)getpid());
    mkdir(dir, 0777);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) ? -1 : 0;
}

/* Each test's output directory goes with it (the pictures were checked). */
static void teardown(void)
{
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

/* A test image with every byte different from its neighbours (so that a
 * swapped channel or a shifted row shows). */
static fp_image *make_image(fp_pixfmt fmt, int w, int h, unsigned seed)
{
    fp_image *img = NULL;
    ck_assert_int_eq(fp_image_new(fmt, w, h, &img), 0);
    const fp_pixfmt_desc *d = fp_pixfmt_describe(fmt);
    for (int p = 0; p < d->planes; p++) {
        int rows = p ? -((-h) >> d->log2_chroma_h) : h;
        int cols = p ? -((-w) >> d->log2_chroma_w) : w;
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < cols * d->bytes_per_pixel[p]; x++)
                img->data[p][(size_t)y * (size_t)img->stride[p] + (size_t)x] =
                    (uint8_t)((x * 7 + y * 13 + p * 50 + (int)seed + ((x * y) >> 3)) & 0xff);
    }
    return img;
}

/* Reads pixel (x, y) of a packed or gray buffer as r, g, b, a. */
static void px(int avfmt, const uint8_t *row, int x, const uint8_t *pal, uint8_t o[4])
{
    const uint8_t *s;
    o[3] = 255;
    switch (avfmt) {
    case AV_PIX_FMT_GRAY8: o[0] = o[1] = o[2] = row[x]; return;
    case AV_PIX_FMT_PAL8: { /* palette entries are native-endian ARGB */
        uint32_t v;
        memcpy(&v, pal + 4 * row[x], 4);
        o[0] = (uint8_t)(v >> 16), o[1] = (uint8_t)(v >> 8), o[2] = (uint8_t)v;
        o[3] = (uint8_t)(v >> 24);
        return;
    }
    case AV_PIX_FMT_RGB24: s = row + 3 * x; o[0] = s[0], o[1] = s[1], o[2] = s[2]; return;
    case AV_PIX_FMT_BGR24: s = row + 3 * x; o[0] = s[2], o[1] = s[1], o[2] = s[0]; return;
    case AV_PIX_FMT_RGBA: s = row + 4 * x; o[0] = s[0], o[1] = s[1], o[2] = s[2], o[3] = s[3]; return;
    case AV_PIX_FMT_BGRA: s = row + 4 * x; o[0] = s[2], o[1] = s[1], o[2] = s[0], o[3] = s[3]; return;
    default: ck_abort_msg("unexpected pixel format %d", avfmt);
    }
}

static int fp_to_av(fp_pixfmt f)
{
    switch (f) {
    case FP_PIX_GRAY8: return AV_PIX_FMT_GRAY8;
    case FP_PIX_RGB24: return AV_PIX_FMT_RGB24;
    case FP_PIX_BGR24: return AV_PIX_FMT_BGR24;
    case FP_PIX_RGBA: return AV_PIX_FMT_RGBA;
    case FP_PIX_BGRA: return AV_PIX_FMT_BGRA;
    default: return -1;
    }
}

/* Decodes the single image in `path` with libavformat + libavcodec. */
static AVFrame *decode_file(const char *path, enum AVCodecID *codec)
{
    AVFormatContext *ic = NULL;
    ck_assert_msg(avformat_open_input(&ic, path, NULL, NULL) == 0, "cannot open %s", path);
    ck_assert_int_ge(avformat_find_stream_info(ic, NULL), 0);
    const AVCodecParameters *par = ic->streams[0]->codecpar;
    if (codec)
        *codec = par->codec_id;
    const AVCodec *c = avcodec_find_decoder(par->codec_id);
    ck_assert_ptr_nonnull(c);
    AVCodecContext *d = avcodec_alloc_context3(c);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_ge(avcodec_parameters_to_context(d, par), 0);
    ck_assert_int_eq(avcodec_open2(d, c, NULL), 0);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    ck_assert_int_eq(av_read_frame(ic, pkt), 0);
    ck_assert_int_eq(avcodec_send_packet(d, pkt), 0);
    ck_assert_int_eq(avcodec_send_packet(d, NULL), 0);
    ck_assert_msg(avcodec_receive_frame(d, f) == 0, "%s does not decode", path);
    av_packet_free(&pkt);
    avcodec_free_context(&d);
    avformat_close_input(&ic);
    return f;
}

/* Every pixel of the decoded file equals the image's (alpha too when both
 * have one). */
static void assert_same_pixels(const char *path, const fp_image *img, enum AVCodecID want)
{
    enum AVCodecID got_codec;
    AVFrame *f = decode_file(path, &got_codec);
    ck_assert_int_eq(got_codec, want);
    ck_assert_int_eq(f->width, img->width);
    ck_assert_int_eq(f->height, img->height);
    int alpha_img = img->format == FP_PIX_RGBA || img->format == FP_PIX_BGRA;
    int alpha_file = f->format == AV_PIX_FMT_RGBA || f->format == AV_PIX_FMT_BGRA;
    for (int y = 0; y < img->height; y++) {
        for (int x = 0; x < img->width; x++) {
            uint8_t a[4], b[4];
            px(fp_to_av(img->format), img->data[0] + (size_t)y * (size_t)img->stride[0], x, NULL, a);
            px(f->format, f->data[0] + (size_t)y * (size_t)f->linesize[0], x, f->data[1], b);
            int n = alpha_img && alpha_file ? 4 : 3;
            ck_assert_msg(!memcmp(a, b, (size_t)n),
                          "%s: %s pixel (%d,%d) is %d,%d,%d,%d in the file, %d,%d,%d,%d in the "
                          "image",
                          path, fp_pixfmt_name(img->format), x, y, b[0], b[1], b[2], b[3], a[0],
                          a[1], a[2], a[3]);
        }
    }
    av_frame_free(&f);
}

/* ---- exact round trips ------------------------------------------------------------------- */

static const fp_pixfmt exact_fmts[] = {FP_PIX_BGR24, FP_PIX_RGB24, FP_PIX_GRAY8, FP_PIX_BGRA,
                                       FP_PIX_RGBA};

START_TEST(png_exact)
{
    fp_pixfmt fmt = exact_fmts[_i];
    fp_image *img = make_image(fmt, 67, 45, 3u * (unsigned)_i);
    char name[64];
    snprintf(name, sizeof name, "exact_%s.png", fp_pixfmt_name(fmt));
    const char *p = out_path(name);
    ck_assert_msg(fp_image_save(p, img, NULL) == 0, "%s", fp_errmsg());
    assert_same_pixels(p, img, AV_CODEC_ID_PNG);
    /* every compression level writes the same pixels */
    long def = file_size(p);
    int levels[] = {-1, 1, 6, 9};
    long stored = 0;
    for (int i = 0; i < 4; i++) {
        fp_save_options o = {0};
        o.png_compression = levels[i];
        snprintf(name, sizeof name, "exact_%s_l%d.PNG", fp_pixfmt_name(fmt), levels[i]);
        p = out_path(name);
        ck_assert_msg(fp_image_save(p, img, &o) == 0, "%s", fp_errmsg());
        assert_same_pixels(p, img, AV_CODEC_ID_PNG);
        if (levels[i] == -1)
            stored = file_size(p);
    }
    ck_assert_int_lt(def, stored); /* the default compresses */
    fp_unref(&img);
}
END_TEST

START_TEST(other_formats_exact)
{
    static const struct {
        const char *ext;
        fp_pixfmt fmt;
        enum AVCodecID codec;
    } c[] = {{"bmp", FP_PIX_BGR24, AV_CODEC_ID_BMP}, {"bmp", FP_PIX_RGB24, AV_CODEC_ID_BMP},
             {"bmp", FP_PIX_GRAY8, AV_CODEC_ID_BMP}, {"ppm", FP_PIX_BGR24, AV_CODEC_ID_PPM},
             {"ppm", FP_PIX_RGB24, AV_CODEC_ID_PPM}, {"pgm", FP_PIX_GRAY8, AV_CODEC_ID_PGM}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        fp_image *img = make_image(c[i].fmt, 33, 21, (unsigned)i);
        char name[64];
        snprintf(name, sizeof name, "other_%s.%s", fp_pixfmt_name(c[i].fmt), c[i].ext);
        const char *p = out_path(name);
        ck_assert_msg(fp_image_save(p, img, NULL) == 0, "%s: %s", name, fp_errmsg());
        assert_same_pixels(p, img, c[i].codec);
        fp_unref(&img);
    }
}
END_TEST

static void free_buf(void *user)
{
    free(user);
}

/* Wrapped memory with rows packed tight (stride = width * 3, no padding
 * after the last row): the encoder reads only the image (ASan checks). */
START_TEST(png_tight_wrapped)
{
    int w = 31, h = 17;
    uint8_t *buf = malloc((size_t)w * 3 * (size_t)h);
    ck_assert_ptr_nonnull(buf);
    for (int i = 0; i < w * 3 * h; i++)
        buf[i] = (uint8_t)(i * 31 + 7);
    fp_image_wrap_info wi = {0};
    wi.width = w;
    wi.height = h;
    wi.format = FP_PIX_BGR24;
    wi.av_format = -1;
    wi.data[0] = buf;
    wi.stride[0] = w * 3;
    wi.bytes = (size_t)w * 3 * (size_t)h;
    wi.flags = FP_IMAGE_READONLY;
    wi.free_fn = free_buf;
    wi.user = buf;
    fp_image *img = NULL;
    ck_assert_int_eq(fp_image_wrap(&wi, &img), 0);
    const char *p = out_path("tight.png");
    ck_assert_msg(fp_image_save(p, img, NULL) == 0, "%s", fp_errmsg());
    assert_same_pixels(p, img, AV_CODEC_ID_PNG);
    /* RGB24 is passed to the encoder without a copy: a tight RGB wrap too */
    fp_image *rgb = NULL;
    wi.format = FP_PIX_RGB24;
    uint8_t *buf2 = malloc((size_t)w * 3 * (size_t)h);
    ck_assert_ptr_nonnull(buf2);
    memcpy(buf2, buf, (size_t)w * 3 * (size_t)h);
    wi.data[0] = buf2;
    wi.user = buf2;
    ck_assert_int_eq(fp_image_wrap(&wi, &rgb), 0);
    ck_assert_int_eq(fp_image_save(p, rgb, NULL), 0);
    assert_same_pixels(p, rgb, AV_CODEC_ID_PNG);
    fp_unref(&rgb);
    fp_unref(&img);
}
END_TEST

/* ---- JPEG and converted formats ----------------------------------------------------------- */

static fp_image *smooth_bgr(int w, int h)
{
    fp_image *img = NULL;
    ck_assert_int_eq(fp_image_new(FP_PIX_BGR24, w, h, &img), 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *s = img->data[0] + (size_t)y * (size_t)img->stride[0] + 3 * (size_t)x;
            s[0] = (uint8_t)(x * 255 / w), s[1] = (uint8_t)(y * 255 / h), s[2] = 160;
        }
    return img;
}

START_TEST(jpeg_decodes)
{
    fp_image *img = smooth_bgr(100, 75); /* not multiples of 16 */
    const char *p = out_path("smooth.jpg");
    ck_assert_msg(fp_image_save(p, img, NULL) == 0, "%s", fp_errmsg());
    enum AVCodecID codec;
    AVFrame *f = decode_file(p, &codec);
    ck_assert_int_eq(codec, AV_CODEC_ID_MJPEG);
    ck_assert_int_eq(f->width, 100);
    ck_assert_int_eq(f->height, 75);
    /* the luma of the decoded file follows the image's (full range) */
    double err = 0;
    for (int y = 0; y < 75; y++)
        for (int x = 0; x < 100; x++) {
            const uint8_t *s = img->data[0] + (size_t)y * (size_t)img->stride[0] + 3 * (size_t)x;
            double Y = 0.114 * s[0] + 0.587 * s[1] + 0.299 * s[2];
            err += fabs(Y - f->data[0][(size_t)y * (size_t)f->linesize[0] + (size_t)x]);
        }
    err /= 100 * 75;
    ck_assert_msg(err < 3.0, "mean luma error %.2f", err);
    av_frame_free(&f);
    long q95 = file_size(p);
    fp_save_options o = {0};
    o.jpeg_quality = 10;
    const char *p10 = out_path("smooth_q10.jpeg");
    ck_assert_int_eq(fp_image_save(p10, img, &o), 0);
    ck_assert_int_lt(file_size(p10), q95);
    /* format chosen by option, whatever the extension says */
    o.jpeg_quality = 0;
    o.format = FP_SAVE_JPEG;
    const char *pf = out_path("smooth_jpeg.bin");
    ck_assert_int_eq(fp_image_save(pf, img, &o), 0);
    f = decode_file(pf, &codec);
    ck_assert_int_eq(codec, AV_CODEC_ID_MJPEG);
    av_frame_free(&f);
    fp_unref(&img);
}
END_TEST

START_TEST(yuv_converted)
{
    /* mid-gray YUV (limited range: Y 126, U = V = 128) saves as gray RGB */
    static const fp_pixfmt fmts[] = {FP_PIX_YUV420P, FP_PIX_NV12, FP_PIX_YUV444P};
    for (int k = 0; k < 3; k++) {
        fp_image *img = NULL;
        ck_assert_int_eq(fp_image_new(fmts[k], 40, 30, &img), 0);
        const fp_pixfmt_desc *d = fp_pixfmt_describe(fmts[k]);
        for (int p = 0; p < d->planes; p++)
            memset(img->data[p], p ? 128 : 126,
                   (size_t)img->stride[p] * (size_t)(p ? 30 >> d->log2_chroma_h : 30));
        const char *path = out_path("yuv.png");
        ck_assert_msg(fp_image_save(path, img, NULL) == 0, "%s", fp_errmsg());
        AVFrame *f = decode_file(path, NULL);
        ck_assert_int_eq(f->format, AV_PIX_FMT_RGB24);
        ck_assert_int_eq(f->width, 40);
        for (int c = 0; c < 3; c++) /* (126-16)*255/219 = 128 */
            ck_assert_msg(abs(f->data[0][15 * f->linesize[0] + 60 + c] - 128) <= 2, "%s: %d",
                          fp_pixfmt_name(fmts[k]), f->data[0][15 * f->linesize[0] + 60 + c]);
        av_frame_free(&f);
        ck_assert_int_eq(fp_image_save(out_path("yuv.jpg"), img, NULL), 0);
        ck_assert_int_eq(fp_image_save(out_path("yuv.pgm"), img, NULL), 0);
        fp_unref(&img);
    }
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------ */

START_TEST(errors)
{
    fp_image *img = make_image(FP_PIX_BGR24, 16, 8, 1);
    ck_assert_int_eq(fp_image_save(NULL, img, NULL), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "NULL path"));
    ck_assert_int_eq(fp_image_save("", img, NULL), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "empty path"));
    ck_assert_int_eq(fp_image_save(out_path("x.png"), NULL, NULL), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "NULL image"));
    fp_image empty;
    memset(&empty, 0, sizeof empty);
    ck_assert_int_eq(fp_image_save(out_path("empty.png"), &empty, NULL), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "no pixels"));
    ck_assert(!file_exists(out_path("empty.png")));

    /* unknown or missing extension: FP_EFORMAT, nothing written */
    ck_assert_int_eq(fp_image_save(out_path("frame.xyz"), img, NULL), FP_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "unknown extension '.xyz'"));
    ck_assert(!file_exists(out_path("frame.xyz")));
    ck_assert_int_eq(fp_image_save(out_path("frame"), img, NULL), FP_EFORMAT);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "no extension"));
    ck_assert_int_eq(fp_image_save(out_path("dir.png/frame"), img, NULL), FP_EFORMAT);

    /* bad options */
    fp_save_options o = {0};
    o.png_compression = 10;
    ck_assert_int_eq(fp_image_save(out_path("o.png"), img, &o), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "png_compression 10"));
    o.png_compression = 0;
    o.jpeg_quality = 101;
    ck_assert_int_eq(fp_image_save(out_path("o.jpg"), img, &o), FP_EINVAL);
    o.jpeg_quality = 0;
    o.format = (fp_save_format)42;
    ck_assert_int_eq(fp_image_save(out_path("o.png"), img, &o), FP_EINVAL);
    ck_assert(!file_exists(out_path("o.png")));

    /* a format that cannot be converted, named in the message */
    fp_image other = *img;
    other.format = FP_PIX_OTHER;
    other.av_format = -1;
    ck_assert_int_eq(fp_image_save(out_path("other.png"), &other, NULL), FP_EINVAL);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "cannot convert pixel format"));
    other.av_format = AV_PIX_FMT_NB + 5;
    ck_assert_int_eq(fp_image_save(out_path("other.png"), &other, NULL), FP_EINVAL);
    ck_assert(!file_exists(out_path("other.png")));

    /* unwritable paths: FP_EIO with the path and the system's reason */
    char p[1100];
    snprintf(p, sizeof p, "%s/no/such/dir/f.png", dir);
    ck_assert_int_eq(fp_image_save(p, img, NULL), FP_EIO);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), p));
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "No such file or directory"));
    snprintf(p, sizeof p, "%s/adir.png", dir);
    ck_assert_int_eq(mkdir(p, 0777) == 0 || file_exists(p), 1);
    ck_assert_int_eq(fp_image_save(p, img, NULL), FP_EIO);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "Is a directory"));
    /* a full disk: the write fails */
    o = (fp_save_options){0};
    o.format = FP_SAVE_PNG;
    ck_assert_int_eq(fp_image_save("/dev/full", img, &o), FP_EIO);
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "/dev/full"));
    ck_assert_ptr_nonnull(strstr(fp_errmsg(), "No space left on device"));
    if (geteuid() != 0) { /* root writes anywhere */
        snprintf(p, sizeof p, "%s/ro", dir);
        mkdir(p, 0555);
        chmod(p, 0555);
        snprintf(p, sizeof p, "%s/ro/f.png", dir);
        ck_assert_int_eq(fp_image_save(p, img, NULL), FP_EIO);
        ck_assert_ptr_nonnull(strstr(fp_errmsg(), "Permission denied"));
    }
    /* an existing file is left alone when the format is refused */
    const char *keep = out_path("keep.png");
    ck_assert_int_eq(fp_image_save(keep, img, NULL), 0);
    long before = file_size(keep);
    ck_assert_int_gt(before, 0);
    o = (fp_save_options){0};
    o.png_compression = -2;
    ck_assert_int_eq(fp_image_save(keep, img, &o), FP_EINVAL);
    ck_assert_int_eq(file_size(keep), before);
    ck_assert_int_eq(fp_image_save(keep, &other, NULL), FP_EINVAL);
    ck_assert_int_eq(file_size(keep), before);
    fp_unref(&img);
}
END_TEST

/* ---- threads: distinct images and one shared image, saved at once ------------------------- */

typedef struct tjob {
    int id;
    const fp_image *shared;
    int failures;
} tjob;

static void *saver(void *arg)
{
    tjob *j = arg;
    fp_image *own = make_image(j->id & 1 ? FP_PIX_BGR24 : FP_PIX_GRAY8, 48 + j->id, 24, (unsigned)j->id);
    for (int i = 0; i < 10; i++) {
        char name[64];
        snprintf(name, sizeof name, "t%d_%d.png", j->id, i);
        if (fp_image_save(out_path(name), i & 1 ? j->shared : own, NULL) != 0)
            j->failures++;
    }
    char name[64];
    snprintf(name, sizeof name, "t%d_0.png", j->id);
    assert_same_pixels(out_path(name), own, AV_CODEC_ID_PNG);
    snprintf(name, sizeof name, "t%d_1.png", j->id);
    assert_same_pixels(out_path(name), j->shared, AV_CODEC_ID_PNG);
    fp_unref(&own);
    return NULL;
}

START_TEST(threads)
{
    fp_image *shared = make_image(FP_PIX_BGRA, 64, 40, 9);
    enum { N = 4 };
    pthread_t th[N];
    tjob jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (tjob){i, shared, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, saver, &jobs[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(jobs[i].failures, 0);
    }
    fp_unref(&shared);
}
END_TEST

/* ---- allocation failures ------------------------------------------------------------------ */


/* One save per path kind: BGR24 -> PNG (channel swap copy), RGB24 -> PNG
 * (zero copy), YUV420P -> JPEG (swscale). Returns how many succeeded; every
 * failure must be a documented code with a message, and a success must give
 * a file with the image's pixels. */
static int sweep_any_error;
static size_t av_limit; /* the size sweep's av_max_alloc (0 = none) */

static int save_all(void)
{
    static const struct {
        fp_pixfmt fmt;
        const char *name;
    } c[] = {{FP_PIX_BGR24, "sw_bgr.png"}, {FP_PIX_RGB24, "sw_rgb.png"},
             {FP_PIX_YUV420P, "sw_yuv.jpg"}};
    int ok = 0;
    for (int i = 0; i < 3; i++) {
        fp_image *img = NULL;
        int rc = fp_image_new(c[i].fmt, 36, 20, &img);
        if (rc < 0) {
            ck_assert_int_eq(rc, FP_ENOMEM);
            continue;
        }
        const fp_pixfmt_desc *d = fp_pixfmt_describe(c[i].fmt);
        for (int p = 0; p < d->planes; p++)
            memset(img->data[p], 90 + 20 * p, (size_t)img->stride[p] * (p ? 10 : 20));
        const char *path = out_path(c[i].name);
        unlink(path);
        rc = fp_image_save(path, img, NULL);
        if (rc == 0) {
            ok++;
            int armed = av_armed;
            av_armed = 0; /* the check's own decoding allocates */
            av_max_alloc(INT32_MAX);
            if (c[i].fmt != FP_PIX_YUV420P)
                assert_same_pixels(path, img, AV_CODEC_ID_PNG);
            av_armed = armed;
            if (av_limit)
                av_max_alloc(av_limit);
        } else {
            ck_assert_msg(rc == FP_ENOMEM || (sweep_any_error && rc == FP_EUNKNOWN),
                          "%s: %d (%s)", c[i].name, rc, fp_errmsg());
            ck_assert_msg(fp_errmsg()[0], "failed without a message");
            ck_assert_msg(!file_exists(path), "%s written although the save failed", path);
        }
        fp_unref(&img);
    }
    fp_image_save_release_cache(); /* each run starts without the PNG encoder's block */
    return ok;
}

/* A PNG save maps its encoder's memory once, outside the malloc heap: the
 * next saves allocate nothing, from framepool or from malloc, and
 * fp_image_save_release_cache gives the block back. */
START_TEST(png_block_is_kept_between_saves)
{
    tu_alloc_install();
    fp_image *img = NULL;
    ck_assert_int_eq(fp_image_new(FP_PIX_RGB24, 640, 360, &img), 0);
    memset(img->data[0], 7, (size_t)img->stride[0] * 360);
    int64_t base = tu_alloc_live();
    uint64_t n = tu_alloc_count();
    ck_assert_int_eq(fp_image_save(out_path("kept.png"), img, NULL), 0);
    struct mallinfo2 m0 = mallinfo2();
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(fp_image_save(out_path("kept.png"), img, NULL), 0);
    struct mallinfo2 m1 = mallinfo2();
    ck_assert_uint_eq(tu_alloc_count(), n); /* no framepool allocation at all */
    ck_assert_int_eq(tu_alloc_live(), base);
    ck_assert_uint_eq(m1.uordblks, m0.uordblks); /* nor a byte more of heap in use */
    ck_assert_uint_eq(m1.arena, m0.arena);
    assert_same_pixels(out_path("kept.png"), img, AV_CODEC_ID_PNG);
    /* a wider image needs a bigger block: it replaces the kept one */
    fp_image *wide = NULL;
    ck_assert_int_eq(fp_image_new(FP_PIX_BGRA, 8000, 4, &wide), 0);
    memset(wide->data[0], 9, (size_t)wide->stride[0] * 4);
    ck_assert_int_eq(fp_image_save(out_path("wide.png"), wide, NULL), 0);
    assert_same_pixels(out_path("wide.png"), wide, AV_CODEC_ID_PNG);
    ck_assert_int_eq(fp_image_save(out_path("kept.png"), img, NULL), 0);
    assert_same_pixels(out_path("kept.png"), img, AV_CODEC_ID_PNG);
    fp_unref(&wide);
    fp_unref(&img);
    fp_image_save_release_cache();
    fp_image_save_release_cache(); /* nothing kept: no-op */
    tu_alloc_assert_clean("after release", 0);
    tu_alloc_uninstall();
}
END_TEST

START_TEST(framepool_alloc_sweep)
{
    ck_assert_int_eq(fp_diag_configure("sites"), 0);
    tu_alloc_install();
    ck_assert_int_eq(save_all(), 3);
    uint64_t n = tu_alloc_count();
    tu_alloc_assert_clean("dry run", 0);
    ck_assert_uint_ge(n, 4); /* 3 images + the JPEG's converted copy */
    int failed = 0;
    for (uint64_t k = 1; k <= n; k++) {
        tu_alloc_fail_at(k);
        failed += save_all() < 3;
        tu_alloc_assert_clean("failing allocation", (unsigned long long)k);
    }
    ck_assert_int_gt(failed, 0);
    printf("imgsave: %llu framepool allocations, each failed once: %d runs failed cleanly; "
           "no leak\n",
           (unsigned long long)n, failed);
    tu_alloc_uninstall();
}
END_TEST

START_TEST(ffmpeg_size_sweep)
{
    tu_alloc_install();
    ck_assert_int_eq(save_all(), 3);
    int runs = 0, failed = 0;
    sweep_any_error = 1;
    for (size_t t = 16; t <= ((size_t)4 << 20); t *= 2) {
        for (int half = 0; half < 2; half++) {
            size_t lim = half ? t + t / 2 : t;
            av_limit = lim;
            av_max_alloc(lim);
            int got = save_all();
            av_max_alloc(INT32_MAX);
            av_limit = 0;
            runs++;
            failed += got < 3;
            tu_alloc_assert_clean("av_max_alloc", (unsigned long long)lim);
        }
    }
    sweep_any_error = 0;
    ck_assert_int_gt(failed, 0);
    printf("imgsave: %d av_max_alloc thresholds, %d runs failed cleanly; no leak\n", runs, failed);
    tu_alloc_uninstall();
}
END_TEST

#if FP_AV_INTERPOSE
START_TEST(ffmpeg_count_sweep)
{
    av_interpose_init();
    tu_alloc_install();
    av_calls = 0;
    av_fail_at = 0;
    av_armed = 1;
    ck_assert_int_eq(save_all(), 3);
    unsigned long long n = av_calls;
    ck_assert_uint_gt(n, 10);
    int failed = 0;
    sweep_any_error = 1;
    for (unsigned long long k = 1; k <= n; k++) {
        av_calls = 0;
        av_fail_at = k;
        failed += save_all() < 3;
        av_fail_at = 0;
        tu_alloc_assert_clean("failing av_malloc", k);
    }
    sweep_any_error = 0;
    av_armed = 0;
    ck_assert_int_gt(failed, 0);
    printf("imgsave: %llu av_malloc calls, each failed once: %d runs failed cleanly; no "
           "framepool leak\n",
           n, failed);
    tu_alloc_uninstall();
}
END_TEST
#endif

static Suite *suite(void)
{
    Suite *s = suite_create("imgsave");
    TCase *tc = tcase_create("imgsave");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, png_exact, 0, (int)(sizeof exact_fmts / sizeof exact_fmts[0]));
    tcase_add_test(tc, other_formats_exact);
    tcase_add_test(tc, png_tight_wrapped);
    tcase_add_test(tc, jpeg_decodes);
    tcase_add_test(tc, yuv_converted);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, threads);
    tcase_add_test(tc, png_block_is_kept_between_saves);
    tcase_add_test(tc, framepool_alloc_sweep);
    tcase_add_test(tc, ffmpeg_size_sweep);
#if FP_AV_INTERPOSE
    tcase_add_test(tc, ffmpeg_count_sweep);
#else
    printf("imgsave: sanitizer build: the counted FFmpeg sweep is skipped; the size sweep "
           "runs\n");
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
