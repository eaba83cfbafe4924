/*
 * fp_image_save (see framepool/imgsave.h). PNG is streamed row by row
 * through zlib: one filtered row and zlib's state in memory, never a copy
 * of the frame nor the whole file. JPEG, BMP, PPM and PGM go through
 * FFmpeg's encoders, one encoder context per call; the image's pixels go to
 * the encoder without a copy when its format is one the encoder takes, else
 * through one converted framepool image (a channel swap, or swscale).
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#define _POSIX_C_SOURCE 200809L
#include "avpriv.h"
#include "framepool/imgsave.h"

#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* The default PNG setting is cv::imwrite's default: zlib Z_BEST_SPEED,
 * strategy Z_RLE, every row with the "sub" filter. An explicit level uses
 * Z_DEFAULT_STRATEGY, as OpenCV does when given IMWRITE_PNG_COMPRESSION. */
#define FP_SAVE_PNG_DEFAULT_LEVEL 1
#define FP_SAVE_JPEG_DEFAULT_QUALITY 95

typedef struct save_target {
    const char *name;         /* "PNG", ... (messages) */
    enum AVCodecID codec;
    fp_pixfmt direct[5];      /* formats the encoder takes as they are */
    fp_pixfmt swap_from[2];   /* formats made encodable by swapping channels 0 and 2 */
    fp_pixfmt swap_to[2];
    fp_pixfmt convert_to;     /* swscale target for everything else */
} save_target;

static const save_target targets[] = {
    /* PNG: streamed by png_stream (no FFmpeg encoder); BGR order is swapped
     * row by row there. */
    [FP_SAVE_PNG] = {"PNG", AV_CODEC_ID_NONE,
                     {FP_PIX_RGB24, FP_PIX_RGBA, FP_PIX_GRAY8, FP_PIX_BGR24, FP_PIX_BGRA},
                     {FP_PIX_NONE}, {FP_PIX_NONE}, FP_PIX_RGB24},
    [FP_SAVE_JPEG] = {"JPEG", AV_CODEC_ID_MJPEG, {FP_PIX_NONE}, {FP_PIX_NONE}, {FP_PIX_NONE},
                      FP_PIX_YUV420P},
    [FP_SAVE_BMP] = {"BMP", AV_CODEC_ID_BMP, {FP_PIX_BGR24, FP_PIX_BGRA, FP_PIX_GRAY8},
                     {FP_PIX_RGB24, FP_PIX_RGBA}, {FP_PIX_BGR24, FP_PIX_BGRA}, FP_PIX_BGR24},
    [FP_SAVE_PPM] = {"PPM", AV_CODEC_ID_PPM, {FP_PIX_RGB24}, {FP_PIX_BGR24}, {FP_PIX_RGB24},
                     FP_PIX_RGB24},
    [FP_SAVE_PGM] = {"PGM", AV_CODEC_ID_PGM, {FP_PIX_GRAY8}, {FP_PIX_NONE}, {FP_PIX_NONE},
                     FP_PIX_GRAY8},
};

static int format_from_path(const char *path, fp_save_format *out)
{
    static const struct {
        const char *ext;
        fp_save_format f;
    } exts[] = {{"png", FP_SAVE_PNG}, {"jpg", FP_SAVE_JPEG}, {"jpeg", FP_SAVE_JPEG},
                {"jpe", FP_SAVE_JPEG}, {"bmp", FP_SAVE_BMP},  {"ppm", FP_SAVE_PPM},
                {"pgm", FP_SAVE_PGM}};
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (dot && dot != base) {
        for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
            if (!strcasecmp(dot + 1, exts[i].ext)) {
                *out = exts[i].f;
                return 0;
            }
        }
    }
    fp_errmsg_set("save '%s': %s%s%s: the formats are .png, .jpg/.jpeg, .bmp, .ppm, .pgm "
                   "(or set fp_save_options.format)",
                   path, dot && dot != base ? "unknown extension '" : "no extension",
                   dot && dot != base ? dot : "", dot && dot != base ? "'" : "");
    return FP_EFORMAT;
}

static int map_av_error(int e, const char *path, const char *what)
{
    char buf[128];
    av_strerror(e, buf, sizeof buf);
    fp_errmsg_set("save '%s': %s: %s", path, what, buf);
    return e == AVERROR(ENOMEM) ? FP_ENOMEM : FP_EUNKNOWN;
}

/* The AVPixelFormat of `img` and whether its samples are full range. */
static int source_av_format(const fp_image *img, int *full_range)
{
    int f = img->format == FP_PIX_OTHER ? img->av_format : fp__pixfmt_to_av(img->format);
    *full_range = 1; /* RGB and gray */
    switch (f) {
    case AV_PIX_FMT_YUVJ420P: return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P: return AV_PIX_FMT_YUV411P;
    default: break;
    }
    const AVPixFmtDescriptor *d = f >= 0 ? av_pix_fmt_desc_get(f) : NULL;
    if (d && !(d->flags & AV_PIX_FMT_FLAG_RGB) && d->nb_components >= 3)
        *full_range = 0;
    return f;
}

static void swap_02(const fp_image *src, fp_image *dst, int bpp)
{
    for (int y = 0; y < src->height; y++) {
        const uint8_t *s = src->data[0] + (size_t)y * (size_t)src->stride[0];
        uint8_t *d = dst->data[0] + (size_t)y * (size_t)dst->stride[0];
        for (int x = 0; x < src->width; x++, s += bpp, d += bpp) {
            d[0] = s[2];
            d[1] = s[1];
            d[2] = s[0];
            if (bpp == 4)
                d[3] = s[3];
        }
    }
}

/* Makes `*out` an image the encoder takes: `img` itself (no copy, *conv
 * stays NULL) or a converted copy (+1 in *conv). */
static int prepare_pixels(const char *path, const save_target *t, const fp_image *img,
                          const fp_image **out, fp_image **conv)
{
    *conv = NULL;
    for (int i = 0; i < 5; i++) {
        if (t->direct[i] != FP_PIX_NONE && img->format == t->direct[i]) {
            *out = img;
            return 0;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (t->swap_from[i] != FP_PIX_NONE && img->format == t->swap_from[i]) {
            int rc = fp_image_new(t->swap_to[i], img->width, img->height, conv);
            if (rc < 0) {
                fp_errmsg_set("save '%s': out of memory for the %s copy of a %dx%d image",
                               path, fp_pixfmt_name(t->swap_to[i]), img->width, img->height);
                return rc;
            }
            swap_02(img, *conv, img->format == FP_PIX_BGR24 || img->format == FP_PIX_RGB24 ? 3 : 4);
            *out = *conv;
            return 0;
        }
    }
    int full = 1;
    int src_fmt = source_av_format(img, &full);
    if (src_fmt < 0 || !sws_isSupportedInput(src_fmt)) {
        const char *n = src_fmt >= 0 ? av_get_pix_fmt_name(src_fmt) : NULL;
        fp_errmsg_set("save '%s': cannot convert pixel format %s (av_format %d) for %s", path,
                       n ? n : fp_pixfmt_name(img->format), img->av_format, t->name);
        return FP_EINVAL;
    }
    int rc = fp_image_new(t->convert_to, img->width, img->height, conv);
    if (rc < 0) {
        fp_errmsg_set("save '%s': out of memory for the %s copy of a %dx%d image", path,
                       fp_pixfmt_name(t->convert_to), img->width, img->height);
        return rc;
    }
    int dst_fmt = fp__pixfmt_to_av(t->convert_to);
    /* Options set before the init: ranges given to sws_setColorspaceDetails
     * after sws_getContext do not reach an RGB -> YUV conversion. BT.601 (the
     * default coefficients); YUV output (JPEG) and gray are full range. */
    struct SwsContext *sws = sws_alloc_context();
    int e = sws ? 0 : AVERROR(ENOMEM);
    if (!e && ((e = av_opt_set_int(sws, "srcw", img->width, 0)) < 0 ||
               (e = av_opt_set_int(sws, "srch", img->height, 0)) < 0 ||
               (e = av_opt_set_int(sws, "dstw", img->width, 0)) < 0 ||
               (e = av_opt_set_int(sws, "dsth", img->height, 0)) < 0 ||
               (e = av_opt_set_int(sws, "src_format", src_fmt, 0)) < 0 ||
               (e = av_opt_set_int(sws, "dst_format", dst_fmt, 0)) < 0 ||
               (e = av_opt_set_int(sws, "sws_flags", SWS_BILINEAR, 0)) < 0 ||
               (e = av_opt_set_int(sws, "src_range", full, 0)) < 0 ||
               (e = av_opt_set_int(sws, "dst_range", 1, 0)) < 0 ||
               (e = sws_init_context(sws, NULL, NULL)) < 0))
        e = e < 0 ? e : AVERROR(EINVAL);
    if (e < 0) {
        sws_freeContext(sws);
        fp_unref(conv);
        return map_av_error(e, path, "cannot set up the pixel conversion");
    }
    int h = sws_scale(sws, (const uint8_t *const *)img->data, img->stride, 0, img->height,
                      (*conv)->data, (*conv)->stride);
    sws_freeContext(sws);
    if (h != img->height) {
        fp_unref(conv);
        return map_av_error(h < 0 ? h : AVERROR(ENOMEM), path, "pixel conversion failed");
    }
    (*conv)->pts = img->pts;
    *out = *conv;
    return 0;
}

/* The system's text for errno `err` (thread-safe). */
static const char *errno_text(int err, char *buf, size_t n)
{
    av_strerror(AVERROR(err), buf, n);
    return buf;
}

static void no_free(void *opaque, uint8_t *data)
{
    (void)opaque;
    (void)data;
}

/* Encodes `img` (a format the encoder takes) into *pkt. */
static int encode(const char *path, const save_target *t, const fp_image *img, int quality,
                  AVPacket *pkt)
{
    const AVCodec *codec = avcodec_find_encoder(t->codec);
    if (!codec) {
        fp_errmsg_set("save '%s': this FFmpeg has no %s encoder", path, t->name);
        return FP_EFORMAT;
    }
    AVCodecContext *enc = avcodec_alloc_context3(codec);
    AVFrame *frm = av_frame_alloc();
    int rc = 0, e;
    if (!enc || !frm) {
        fp_errmsg_set("save '%s': out of memory for the %s encoder", path, t->name);
        rc = FP_ENOMEM;
        goto out;
    }
    enc->width = img->width;
    enc->height = img->height;
    enc->pix_fmt = fp__pixfmt_to_av(img->format);
    enc->time_base = (AVRational){1, 25};
    enc->thread_count = 1;
    if (t->codec == AV_CODEC_ID_MJPEG) {
        /* libjpeg's quality scale (percent of the standard tables) divided
         * by 5 gives about the same quantisers: 95 -> 2, 75 -> 10, 50 -> 20. */
        int s = quality < 50 ? 5000 / quality : 200 - 2 * quality;
        int q = (s + 2) / 5;
        q = q < 1 ? 1 : q > 31 ? 31 : q;
        enc->color_range = AVCOL_RANGE_JPEG;
        enc->flags |= AV_CODEC_FLAG_QSCALE;
        enc->qmin = 1;
        enc->global_quality = FF_QP2LAMBDA * q;
        frm->quality = enc->global_quality;
        frm->color_range = AVCOL_RANGE_JPEG;
    }
    if ((e = avcodec_open2(enc, codec, NULL)) < 0) {
        rc = map_av_error(e, path, "cannot open the encoder");
        goto out;
    }
    /* A refcounted frame over the image's memory: the encoder then reads it
     * in place (a non-refcounted frame would be copied). The buffer's free
     * does nothing: the image is the caller's, and the encoder is done with
     * it before this function returns. */
    frm->buf[0] = av_buffer_create(img->data[0], (size_t)img->stride[0] * (size_t)img->height,
                                   no_free, NULL, AV_BUFFER_FLAG_READONLY);
    if (!frm->buf[0]) {
        fp_errmsg_set("save '%s': out of memory for the frame reference", path);
        rc = FP_ENOMEM;
        goto out;
    }
    for (int i = 0; i < 4; i++) {
        frm->data[i] = img->data[i];
        frm->linesize[i] = img->stride[i];
    }
    frm->width = img->width;
    frm->height = img->height;
    frm->format = enc->pix_fmt;
    frm->pts = 0;
    if ((e = avcodec_send_frame(enc, frm)) < 0 || (e = avcodec_send_frame(enc, NULL)) < 0 ||
        (e = avcodec_receive_packet(enc, pkt)) < 0) {
        rc = map_av_error(e, path, "encoding failed");
        goto out;
    }
out:
    av_frame_free(&frm);
    avcodec_free_context(&enc);
    return rc;
}

static int write_file(const char *path, const AVPacket *pkt)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        char buf[128];
        fp_errmsg_set("save '%s': cannot create the file: %s", path,
                       errno_text(errno, buf, sizeof buf));
        return FP_EIO;
    }
    const uint8_t *p = pkt->data;
    size_t left = (size_t)pkt->size;
    int err = 0;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        p += n;
        left -= (size_t)n;
    }
    struct stat st;
    int regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    if (close(fd) < 0 && !err && errno != EINTR)
        err = errno;
    if (err) {
        if (regular)
            unlink(path); /* no half-written image left behind */
        char buf[128];
        fp_errmsg_set("save '%s': write failed: %s", path, errno_text(err, buf, sizeof buf));
        return FP_EIO;
    }
    return 0;
}

/* ---- PNG, streamed ----------------------------------------------------------------------- */

/* ---- the PNG encoder's memory, kept between saves ---------------------------------------- */

/* Everything a PNG save needs — the IDAT buffer, the row and zlib's state
 * (~270 KiB at windowBits 15, memLevel 8) — is carved from one block that
 * is mapped on its own (mmap) and kept for the next save, so a loop that
 * saves every Nth frame allocates nothing per save and never touches the
 * malloc heap for it. Measured (bench/README.md, run_verdicts): freed and
 * allocated again at every save, those ~340 KiB came back from glibc's heap
 * in other places as the decoder's packets took the freed space in between,
 * and a looped save_display's RssAnon rose in steps of 4-60 KiB for
 * thousands of frames; kept but carved from the heap, the heap around it
 * still settled late (packets then dug into untouched heap). Mapped apart,
 * the loop is as flat as one that never saves. One block is kept per
 * process (a save running at the same time on another thread maps its own
 * and unmaps it after); fp_image_save_release_cache() unmaps it. An
 * allocation zlib makes beyond the block goes through framepool's
 * allocator. */
#define PNG_CHUNK 65536 /* IDAT payload per chunk (and per write) */
#define PNG_ZLIB_NEED ((size_t)288 << 10) /* zlib 1.2's deflate state, with room to spare */
#define ARENA_ALIGN 64

typedef struct save_arena {
    size_t cap;  /* bytes after the header */
    size_t used; /* bytes carved in this save */
} save_arena;
#define ARENA_HDR ((sizeof(save_arena) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

static _Atomic(save_arena *) arena_cache;

static void arena_free(save_arena *a)
{
    if (a)
        munmap(a, ARENA_HDR + a->cap);
}

/* The cached block if it holds `need` bytes, else a new one (NULL: no memory). */
static save_arena *arena_take(size_t need)
{
    save_arena *a = atomic_exchange(&arena_cache, NULL);
    if (a && a->cap < need) {
        arena_free(a);
        a = NULL;
    }
    if (!a) {
        long pg = sysconf(_SC_PAGESIZE);
        size_t page = pg > 0 ? (size_t)pg : 4096;
        size_t len = (ARENA_HDR + need + page - 1) / page * page;
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        a = m;
        a->cap = len - ARENA_HDR;
    }
    a->used = 0;
    return a;
}

/* Keeps `a` for the next save, or unmaps it when another block is kept. */
static void arena_give(save_arena *a)
{
    save_arena *none = NULL;
    if (!atomic_compare_exchange_strong(&arena_cache, &none, a))
        arena_free(a);
}

static void *arena_carve(save_arena *a, size_t n)
{
    size_t at = (a->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (at > a->cap || n > a->cap - at)
        return NULL;
    a->used = at + n;
    return (uint8_t *)a + ARENA_HDR + at;
}

void fp_image_save_release_cache(void)
{
    arena_free(atomic_exchange(&arena_cache, NULL));
}

/* zlib's allocations: from the block, else from framepool's allocator with
 * their size in front (zlib does not pass the size to free). */
#define ZHDR 16
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    if (size && items > (SIZE_MAX - ZHDR) / size)
        return Z_NULL;
    size_t n = (size_t)items * size;
    void *p = arena_carve(opaque, n);
    if (p)
        return p;
    n += ZHDR;
    uint8_t *q = fp_alloc(n, ZHDR);
    if (!q)
        return Z_NULL;
    memcpy(q, &n, sizeof n);
    return q + ZHDR;
}

static void z_free(voidpf opaque, voidpf address)
{
    save_arena *a = opaque;
    uint8_t *p = address;
    if (!p || (p >= (uint8_t *)a + ARENA_HDR && p < (uint8_t *)a + ARENA_HDR + a->cap))
        return; /* carved from the block: it stays */
    p -= ZHDR;
    size_t n;
    memcpy(&n, p, sizeof n);
    fp_free(p, n);
}


typedef struct png_out {
    int fd;
    int err;           /* errno of the first failed write, 0 if none */
    uint8_t *buf;      /* 8 bytes of chunk header, PNG_CHUNK of data, 4 of CRC */
} png_out;

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void write_all(png_out *o, const uint8_t *p, size_t n)
{
    while (n > 0 && !o->err) {
        ssize_t k = write(o->fd, p, n);
        if (k < 0) {
            if (errno != EINTR)
                o->err = errno;
            continue;
        }
        p += k;
        n -= (size_t)k;
    }
}

/* Writes the chunk whose type and `len` data bytes are at buf + 4. */
static void put_chunk(png_out *o, const char type[4], size_t len)
{
    put32(o->buf, (uint32_t)len);
    memcpy(o->buf + 4, type, 4);
    uLong crc = crc32(0L, o->buf + 4, (uInt)(len + 4));
    put32(o->buf + 8 + len, (uint32_t)crc);
    write_all(o, o->buf, len + 12);
}

/* Deflates `n` bytes at `in` (n == 0 with `flush` Z_FINISH ends the
 * stream), writing an IDAT chunk whenever PNG_CHUNK bytes are ready. */
static int png_deflate(png_out *o, z_stream *z, const uint8_t *in, size_t n, int flush)
{
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)n;
    for (;;) {
        int zr = deflate(z, flush);
        if (zr == Z_STREAM_ERROR)
            return -1;
        if (z->avail_out == 0 || (flush == Z_FINISH && zr == Z_STREAM_END)) {
            size_t len = PNG_CHUNK - z->avail_out;
            if (len)
                put_chunk(o, "IDAT", len);
            z->next_out = o->buf + 8;
            z->avail_out = PNG_CHUNK;
        }
        if (flush == Z_FINISH ? zr == Z_STREAM_END : z->avail_in == 0 && z->avail_out > 0)
            return 0;
    }
}

/* Streams `img` (GRAY8, RGB24, BGR24, RGBA or BGRA) to `path` as an 8-bit
 * PNG: each row is put in RGB(A) order and "sub"-filtered into one row
 * buffer, then deflated. Memory: that row, one IDAT buffer and zlib's state. */
static int png_stream(const char *path, const fp_image *img, int level, int strategy)
{
    int ch = img->format == FP_PIX_GRAY8 ? 1
             : img->format == FP_PIX_RGB24 || img->format == FP_PIX_BGR24 ? 3 : 4;
    int swap = img->format == FP_PIX_BGR24 || img->format == FP_PIX_BGRA;
    size_t rowlen = 1 + (size_t)img->width * (size_t)ch;
    size_t buflen = 8 + PNG_CHUNK + 4;
    size_t need = 2 * ARENA_ALIGN + buflen + rowlen + PNG_ZLIB_NEED;
    save_arena *a = arena_take(need);
    png_out o = {-1, 0, a ? arena_carve(a, buflen) : NULL};
    uint8_t *row = a ? arena_carve(a, rowlen) : NULL;
    z_stream z;
    memset(&z, 0, sizeof z);
    z.zalloc = z_alloc;
    z.zfree = z_free;
    z.opaque = a;
    int zinit = 0, rc = 0;
    if (!o.buf || !row) {
        fp_errmsg_set("save '%s': out of memory for the PNG encoder (%zu bytes)", path, need);
        rc = FP_ENOMEM;
        goto out;
    }
    int zr = deflateInit2(&z, level, Z_DEFLATED, 15, 8, strategy);
    if (zr != Z_OK) {
        fp_errmsg_set("save '%s': zlib: %s", path,
                       zr == Z_MEM_ERROR ? "out of memory" : "cannot start the compressor");
        rc = zr == Z_MEM_ERROR ? FP_ENOMEM : FP_EUNKNOWN;
        goto out;
    }
    zinit = 1;
    o.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (o.fd < 0) {
        char buf[128];
        fp_errmsg_set("save '%s': cannot create the file: %s", path,
                       errno_text(errno, buf, sizeof buf));
        rc = FP_EIO;
        goto out;
    }
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    write_all(&o, sig, sizeof sig);
    uint8_t *h = o.buf + 8; /* IHDR */
    put32(h, (uint32_t)img->width);
    put32(h + 4, (uint32_t)img->height);
    h[8] = 8;                                         /* bits per sample */
    h[9] = (uint8_t)(ch == 1 ? 0 : ch == 3 ? 2 : 6); /* gray, RGB, RGBA */
    h[10] = h[11] = h[12] = 0; /* deflate, adaptive filtering, no interlace */
    put_chunk(&o, "IHDR", 13);
    z.next_out = o.buf + 8;
    z.avail_out = PNG_CHUNK;
    for (int y = 0; y < img->height && !o.err && rc == 0; y++) {
        const uint8_t *s = img->data[0] + (size_t)y * (size_t)img->stride[0];
        uint8_t *d = row + 1;
        row[0] = 1; /* filter: sub (each byte minus the same channel one pixel left) */
        if (ch == 1) {
            d[0] = s[0];
            for (int x = 1; x < img->width; x++)
                d[x] = (uint8_t)(s[x] - s[x - 1]);
        } else {
            int r = swap ? 2 : 0, b = swap ? 0 : 2;
            uint8_t pr = 0, pg = 0, pb = 0, pa = 0;
            for (int x = 0; x < img->width; x++, s += ch, d += ch) {
                d[0] = (uint8_t)(s[r] - pr), d[1] = (uint8_t)(s[1] - pg);
                d[2] = (uint8_t)(s[b] - pb);
                pr = s[r], pg = s[1], pb = s[b];
                if (ch == 4)
                    d[3] = (uint8_t)(s[3] - pa), pa = s[3];
            }
        }
        if (png_deflate(&o, &z, row, rowlen, Z_NO_FLUSH) < 0)
            rc = FP_EUNKNOWN;
    }
    if (rc == 0 && !o.err && png_deflate(&o, &z, NULL, 0, Z_FINISH) < 0)
        rc = FP_EUNKNOWN;
    if (rc == FP_EUNKNOWN)
        fp_errmsg_set("save '%s': zlib failed", path);
    if (rc == 0 && !o.err)
        put_chunk(&o, "IEND", 0);
out:
    if (o.fd >= 0) {
        struct stat st;
        int regular = fstat(o.fd, &st) == 0 && S_ISREG(st.st_mode);
        if (close(o.fd) < 0 && !o.err && errno != EINTR)
            o.err = errno;
        if (o.err && rc == 0) {
            char buf[128];
            fp_errmsg_set("save '%s': write failed: %s", path,
                           errno_text(o.err, buf, sizeof buf));
            rc = FP_EIO;
        }
        if (rc < 0 && regular)
            unlink(path); /* no half-written image left behind */
    }
    if (zinit)
        deflateEnd(&z);
    if (a)
        arena_give(a);
    return rc;
}

int fp_image_save(const char *path, const fp_image *img, const fp_save_options *opts)
{
    if (!path || !path[0]) {
        fp_errmsg_set("save: %s path", path ? "empty" : "NULL");
        return FP_EINVAL;
    }
    if (!img) {
        fp_errmsg_set("save '%s': NULL image", path);
        return FP_EINVAL;
    }
    if (img->width <= 0 || img->height <= 0 || img->width > FP_MAX_DIMENSION ||
        img->height > FP_MAX_DIMENSION || !img->data[0] || img->stride[0] <= 0) {
        fp_errmsg_set("save '%s': the image has no pixels (%dx%d, %s)", path, img->width,
                       img->height, img->data[0] ? "data set" : "no data");
        return FP_EINVAL;
    }
    fp_save_options o = {0};
    if (opts)
        o = *opts;
    int level = o.png_compression == 0 ? FP_SAVE_PNG_DEFAULT_LEVEL
                : o.png_compression == -1 ? 0 : o.png_compression;
    int quality = o.jpeg_quality ? o.jpeg_quality : FP_SAVE_JPEG_DEFAULT_QUALITY;
    if (o.png_compression < -1 || o.png_compression > 9 || quality < 1 || quality > 100 ||
        o.format < FP_SAVE_AUTO || o.format > FP_SAVE_PGM) {
        fp_errmsg_set("save '%s': bad options (format %d, png_compression %d: -1..9, "
                       "jpeg_quality %d: 0..100)",
                       path, (int)o.format, o.png_compression, o.jpeg_quality);
        return FP_EINVAL;
    }
    fp_save_format f = o.format;
    int rc;
    if (f == FP_SAVE_AUTO && (rc = format_from_path(path, &f)) < 0)
        return rc;
    const save_target *t = &targets[f];

    const fp_image *pix = NULL;
    fp_image *conv = NULL;
    if ((rc = prepare_pixels(path, t, img, &pix, &conv)) < 0)
        return rc;
    if (f == FP_SAVE_PNG) {
        rc = png_stream(path, pix, level, o.png_compression == 0 ? Z_RLE : Z_DEFAULT_STRATEGY);
        fp_unref(&conv);
        return rc;
    }
    AVPacket *pkt = av_packet_alloc();
    if (!pkt) {
        fp_errmsg_set("save '%s': out of memory for the packet", path);
        rc = FP_ENOMEM;
    } else if ((rc = encode(path, t, pix, quality, pkt)) == 0) {
        fp_unref(&conv); /* the converted pixels are encoded: free them before the write */
        rc = write_file(path, pkt);
    }
    av_packet_free(&pkt);
    fp_unref(&conv);
    return rc;
}
